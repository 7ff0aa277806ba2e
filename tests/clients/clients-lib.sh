# clients-lib.sh - helpers for tests/clients/stage-*.sh (bash, sourced).
#
# A stage script builds one real XPMEM client (UCX, Open MPI, libfabric...)
# from its Debian source package against the staged uxpmem install and runs
# it.  tests/clients/run.sh calls it with:
#   UXP_PREFIX         the staged install of this tree (include/, lib/, bin/)
#   UXP_SRCDIR         the source tree under test
#   UXP_CLIENTS_CACHE  cache of built clients, kept between local runs
#   UXP_CLIENTS_WORK   scratch directory of this run (logs, sockets)
# It prints one line per check, "PASS: name", "FAIL: name" or
# "SKIP: name (reason)", and exits with cl_finish: 0 all passed, 1 a failure,
# 77 everything skipped.

cl_npass=0
cl_nfail=0
cl_nskip=0

cl_pass() { cl_npass=$((cl_npass + 1)); echo "PASS: $1"; }
cl_fail() { cl_nfail=$((cl_nfail + 1)); echo "FAIL: $1"; }
cl_skip() { cl_nskip=$((cl_nskip + 1)); echo "SKIP: $1 ($2)"; }

# cl_finish: the exit status of a stage script from its counts.
cl_finish() {
	if [ "$cl_nfail" -gt 0 ]; then exit 1; fi
	if [ "$cl_npass" -eq 0 ]; then exit 77; fi
	exit 0
}

# cl_note TEXT: a line for the log that is not a result.
cl_note() { echo "  [$(date +%H:%M:%S)] $*"; }

# cl_require_env: the interface variables must be set (a stage run alone
# must be called through run.sh).
cl_require_env() {
	local v
	for v in UXP_PREFIX UXP_SRCDIR UXP_CLIENTS_CACHE UXP_CLIENTS_WORK; do
		if [ -z "${!v:-}" ]; then
			echo "$0: $v is not set; run tests/clients/run.sh OBJDIR" >&2
			exit 2
		fi
	done
	mkdir -p "$UXP_CLIENTS_CACHE" "$UXP_CLIENTS_WORK" || exit 2
}

# cl_scale SECONDS: a hang guard scaled by the machine's load (one unit per
# busy core beyond the ones we have), and by UXP_CLIENTS_TIMEOUT_SCALE.
cl_scale() {
	local base=$1 load ncpu f
	read -r load _ </proc/loadavg
	ncpu=$(nproc 2>/dev/null || echo 1)
	f=$(awk -v l="$load" -v n="$ncpu" 'BEGIN { f = l / n; if (f < 1) f = 1; printf "%d", f + 0.999 }')
	echo $((base * f * ${UXP_CLIENTS_TIMEOUT_SCALE:-1}))
}

# cl_guard SECONDS: the hang guard of one run: cl_scale SECONDS, but never
# past the stage's budget for runs (CL_RUN_BUDGET seconds from the first
# run, default 1200), so that hangs cannot eat the whole CI time; 0 when the
# budget is spent.
cl_budget_end=
cl_guard() {
	local g left
	[ -n "$cl_budget_end" ] || cl_budget_end=$((SECONDS + ${CL_RUN_BUDGET:-1200}))
	g=$(cl_scale "$1")
	left=$((cl_budget_end - SECONDS))
	[ $left -lt 0 ] && left=0
	[ "$g" -gt $left ] && g=$left
	echo "$g"
}

# cl_budget_spent NAME SECONDS: FAIL NAME without running it when its guard
# is 0.
cl_budget_spent() {
	[ "$2" -gt 0 ] && return 1
	cl_fail "$1 (not run: the stage's time budget for runs is spent)"
}

# ------------------------------------------------------------------ apt

cl_apt_lock=/var/lib/apt/uxpmem-clients.lock

# cl_apt ARGS...: apt-get, serialized (several stages or helpers may install
# at once) and non-interactive.
cl_apt() {
	DEBIAN_FRONTEND=noninteractive flock "$cl_apt_lock" \
		apt-get -q -o DPkg::Lock::Timeout=600 "$@" </dev/null
}

# cl_deb_src: a deb-src entry for every deb entry of Debian's sources
# (/etc/apt/sources.list.d/debian.sources), in its own file; apt-get update
# when it is new or the source index is missing.  Idempotent.
cl_deb_src_file=/etc/apt/sources.list.d/uxpmem-deb-src.sources
cl_deb_src() {
	local src=/etc/apt/sources.list.d/debian.sources want
	if [ ! -r "$src" ]; then
		echo "cl_deb_src: no $src" >&2
		return 1
	fi
	want=$(awk 'BEGIN { RS = ""; ORS = "\n\n" }
		/(^|\n)Types:[^\n]*deb([ \n]|$)/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$src")
	if [ ! -f "$cl_deb_src_file" ] || [ "$(cat "$cl_deb_src_file")" != "$want" ]; then
		printf '# deb-src for tests/clients (uxpmem), mirrors debian.sources\n%s\n' \
			"$want" >"$cl_deb_src_file.tmp" && mv -f "$cl_deb_src_file.tmp" "$cl_deb_src_file" || return 1
		cl_apt update >/dev/null || return 1
	elif ! apt-cache showsrc dpkg 2>/dev/null | grep '^Package:' >/dev/null; then
		cl_apt update >/dev/null || return 1
	fi
}

# cl_src_version PKG: the version `apt-get source PKG` fetches.
cl_src_version() {
	apt-cache showsrc "$1" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1
}

# cl_apt_install PKG...: install the packages that are missing.
cl_apt_install() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	cl_note "apt-get install ${missing[*]}"
	cl_apt install -y --no-install-recommends "${missing[@]}" >/dev/null
}

# cl_apt_source PKG DIR [DPKG-SOURCE-OPTION...]: fetch the source package
# into DIR (a fresh one) and unpack it (options: --skip-patches for the
# upstream tree, whose generated build system matches its sources); prints
# the path of the unpacked tree.
cl_apt_source() {
	local pkg=$1 dir=$2
	shift 2
	rm -rf "$dir" && mkdir -p "$dir" || return 1
	(cd "$dir" && apt-get -q source --download-only "$pkg" &&
		dpkg-source -x "$@" ./*.dsc "$pkg-src") >"$dir/apt-source.out" 2>&1 || {
		cat "$dir/apt-source.out" >&2
		return 1
	}
	echo "$dir/$pkg-src"
}

# ------------------------------------------------------------------ cache

# cl_cache_dir NAME VERSION: the cache directory of a client built from
# source VERSION against this tree's xpmem.h (the ABI it compiles in).
cl_cache_dir() {
	local h
	h=$(sha256sum "$UXP_PREFIX/include/xpmem.h" | cut -c1-12)
	echo "$UXP_CLIENTS_CACHE/$1-$2-$h"
}

# ------------------------------------------------------------------ running

# cl_stats V...: "min median max" of a benchmark's runs (bench-*.sh); a
# failed run makes it "failed".
cl_stats() {
	printf '%s\n' "$@" | sort -g | awk '
		/failed/ { bad = 1 } { v[NR] = $1 }
		END { if (bad || NR == 0) { print "failed"; exit }
		      printf "%.0f %.0f %.0f\n", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }'
}

# cl_status_text STATUS: "exit N", "signal NAME" or "timeout" for
# the exit status of `timeout ... cmd`.
cl_status_text() {
	local st=$1
	if [ "$st" -eq 124 ]; then
		echo "timeout"
	elif [ "$st" -gt 128 ] && [ "$st" -lt 160 ]; then
		echo "signal $(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128)))"
	else
		echo "exit $st"
	fi
}

# cl_run NAME SECONDS CMD...: run a command with a hang guard; PASS when it
# exits 0, else FAIL with its output.  The output is kept in
# $UXP_CLIENTS_WORK/logs/NAME.log (also for cl_check_log).
cl_run() {
	local name=$1 secs=$2 log st
	shift 2
	cl_budget_spent "$name" "$secs" && return 1
	log=$(cl_log_path "$name")
	timeout -k 10 "$secs" "$@" >"$log" 2>&1
	st=$?
	if [ "$st" -eq 0 ]; then
		cl_pass "$name"
		return 0
	fi
	cl_show "$log" "$name: $(cl_status_text $st) (guard ${secs}s): $*"
	cl_fail "$name"
	return 1
}

# cl_log_path NAME: where the output of check NAME goes.
cl_log_path() {
	mkdir -p "$UXP_CLIENTS_WORK/logs"
	echo "$UXP_CLIENTS_WORK/logs/$(printf '%s' "$1" | tr -c 'A-Za-z0-9._=-' '_').log"
}

# cl_show LOG HEADER: print the tail of a log after a failure.
cl_show() {
	echo "---- $2"
	tail -n "${CL_SHOW_LINES:-60}" "$1" | sed 's/^/    /'
	echo "---- end ($1)"
}

# cl_port_listening PORT: some socket listens on TCP PORT (v4 or v6).
cl_port_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# cl_free_port: sets cl_port to a TCP port nothing listens on, a new one
# each call when not called in a subshell (>/dev/null: the counter advances).
cl_next_port=${CL_PORT_BASE:-$((20000 + $$ % 20000))}
cl_free_port() {
	while cl_port_listening "$cl_next_port"; do
		cl_next_port=$((cl_next_port + 1))
	done
	cl_port=$cl_next_port
	cl_next_port=$((cl_next_port + 1))
	echo "$cl_port" # for port=$(cl_free_port): then only the listening check
}

# cl_pair NAME SECONDS PORT SERVER-CMD... :: CLIENT-CMD... (or -- when the
# commands contain no --): a client-server
# pair: the server starts, the client starts once the server listens on
# PORT.  Both must exit 0 within SECONDS; on a timeout both are killed.  A
# signal, a non-zero exit or a hang is a FAIL that prints both outputs.
# The outputs are kept in logs/NAME.server.log and logs/NAME.client.log.
cl_pair() {
	local name=$1 secs=$2 port=$3 server=() client=() slog clog spid cpid
	local sst cst deadline t0=$SECONDS why=
	shift 3
	cl_budget_spent "$name" "$secs" && return 1
	# "::" separates them when given (wrappers such as xpmem-run take
	# "--"), else the first "--"
	local sep=-- a
	for a in "$@"; do [ "$a" = :: ] && sep=::; done
	while [ $# -gt 0 ] && [ "$1" != "$sep" ]; do server+=("$1"); shift; done
	shift
	client=("$@")
	slog=$(cl_log_path "$name.server")
	clog=$(cl_log_path "$name.client")
	deadline=$((SECONDS + secs))

	setsid "${server[@]}" >"$slog" 2>&1 </dev/null &
	spid=$!
	while ! cl_port_listening "$port"; do
		if ! kill -0 "$spid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			break
		fi
		sleep 0.1
	done
	setsid "${client[@]}" >"$clog" 2>&1 </dev/null &
	cpid=$!

	# When one peer fails, the other often waits for it forever: it gets
	# 10 s more, not the whole guard.
	sst= cst=
	while [ -z "$sst" ] || [ -z "$cst" ]; do
		if [ -z "$sst" ] && ! kill -0 "$spid" 2>/dev/null; then
			wait "$spid"; sst=$?
			[ "$sst" -ne 0 ] && [ $deadline -gt $((SECONDS + 10)) ] && deadline=$((SECONDS + 10))
		fi
		if [ -z "$cst" ] && ! kill -0 "$cpid" 2>/dev/null; then
			wait "$cpid"; cst=$?
			[ "$cst" -ne 0 ] && [ $deadline -gt $((SECONDS + 10)) ] && deadline=$((SECONDS + 10))
		fi
		if [ $SECONDS -ge $deadline ]; then
			why="hang: killed after $((SECONDS - t0))s"
			[ -n "$sst" ] || [ -n "$cst" ] && why="one peer failed, the other hung: killed"
			kill -KILL -- "-$spid" "-$cpid" 2>/dev/null
			[ -n "$sst" ] || { wait "$spid"; sst=$?; }
			[ -n "$cst" ] || { wait "$cpid"; cst=$?; }
			break
		fi
		sleep 0.2
	done
	if [ -z "$why" ] && [ "$sst" -eq 0 ] && [ "$cst" -eq 0 ]; then
		cl_pass "$name"
		return 0
	fi
	why="${why:+$why; }server $(cl_status_text $sst), client $(cl_status_text $cst)"
	cl_show "$slog" "$name: $why; server: ${server[*]}"
	cl_show "$clog" "$name: client: ${client[*]}"
	cl_fail "$name"
	return 1
}
