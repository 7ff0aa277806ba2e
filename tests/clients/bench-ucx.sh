#!/bin/bash
# bench-ucx.sh [-o FILE] - issue 11's table: ucx_perftest between two
# processes over xpmem (uxpmem) vs cma vs posix, UCP tag_bw and ucp_put_bw
# with UCX's default allocation (SysV/POSIX shm, exported in place), 1-64
# MiB, MB/s min/median/max of 3 runs, side by side in one run, with the
# ratios xpmem/cma and xpmem/posix.  The xpmem column also runs under
# xpmem-run.  Markdown on stdout (and into FILE with -o, e.g.
# docs/clients-bench.md's UCX section).
#
# Needs the environment of a stage (UXP_PREFIX, UXP_SRCDIR,
# UXP_CLIENTS_CACHE, UXP_CLIENTS_WORK; see clients-lib.sh) and the UCX that
# stage-ucx.sh built into the cache (run `UXP_CLIENTS=ucx
# tests/clients/run.sh OBJDIR` first).  UXP_UCX_TESTS, UXP_UCX_SIZES and
# UXP_UCX_REPS narrow it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/clients/clients-lib.sh
. "$here/clients-lib.sh"

out=
if [ "${1:-}" = -o ] && [ $# -eq 2 ]; then
	out=$2
elif [ $# -ne 0 ]; then
	echo "usage: $0 [-o FILE]" >&2
	exit 2
fi
cl_require_env
tests=${UXP_UCX_TESTS:-tag_bw ucp_put_bw}
sizes=${UXP_UCX_SIZES:-1048576 4194304 16777216 67108864}
reps=${UXP_UCX_REPS:-3}

ucx=
for d in "$UXP_CLIENTS_CACHE"/ucx-*-"$(sha256sum "$UXP_PREFIX/include/xpmem.h" | cut -c1-12)"; do
	[ -f "$d/.built" ] && ucx=$d
done
if [ -z "$ucx" ]; then
	echo "bench-ucx: no UCX built against this xpmem.h in $UXP_CLIENTS_CACHE" \
		"(run UXP_CLIENTS=ucx tests/clients/run.sh OBJDIR first)" >&2
	exit 77
fi
export LD_LIBRARY_PATH=$UXP_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
unset UCX_ALLOC_PRIO # UCX's default allocation

# mbs TEST SIZE TLS RUNNER: MB/s (overall) of one ucx_perftest pair, or "failed".
mbs() {
	local t=$1 size=$2 tls=$3 runner=$4 name port n cmd=("$ucx/bin/ucx_perftest")
	name="bench $t $size $tls $runner"
	[ "$runner" = xpmem-run ] && cmd=("$UXP_PREFIX/bin/xpmem-run" -- "${cmd[@]}")
	n=$(((1024 << 20) / size))
	[ $n -gt 1000 ] && n=1000
	[ $n -lt 16 ] && n=16
	cl_free_port >/dev/null
	port=$cl_port
	if UCX_TLS=$tls cl_pair "$name" "$(cl_scale 300)" "$port" "${cmd[@]}" -p "$port" :: \
		"${cmd[@]}" 127.0.0.1 -p "$port" -t "$t" -s "$size" -n "$n" -w 4 -f >/dev/null 2>&1; then
		# -f prints one line: iterations, 3 latencies, 2 bandwidths, 2 rates
		awk 'NF == 8 && $1 ~ /^[0-9]+$/ { v = $6 } END { if (v == "") print "failed"; else printf "%.0f\n", v }' \
			"$(cl_log_path "$name.client")"
	else
		echo failed
	fi
}


human() { echo "$(($1 >> 20)) MiB"; }

ratio() {
	if [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
	else
		echo -
	fi
}

columns=("posix,xpmem|" "posix,cma|" "posix|" "posix,xpmem|xpmem-run")
table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
	echo "## UCX: xpmem (uxpmem) vs cma vs posix"
	echo
	echo "\`tests/clients/bench-ucx.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs," \
		"load $(cut -d' ' -f1-3 /proc/loadavg) at the start; UCX $(basename "$ucx" | cut -d- -f2-3)" \
		"(Debian source package) against this tree; \`ucx_perftest -t TEST -s SIZE -w 4 -f\`," \
		"1 GiB per run (16-1000 iterations), UCX's default allocation; MB/s (overall)," \
		"min / **median** / max of $reps runs. Columns: \`UCX_TLS=posix,xpmem\`, \`posix,cma\`," \
		"\`posix\`, and \`posix,xpmem\` with both peers under \`xpmem-run\`."
	echo
	echo "| test | size | xpmem | cma | posix | xpmem (xpmem-run) | xpmem/cma | xpmem/posix |"
	echo "|---|---|---|---|---|---|---|---|"
} >"$table"
for t in $tests; do
	for size in $sizes; do
		row="| \`$t\` | $(human "$size") |"
		med=()
		for col in "${columns[@]}"; do
			vals=()
			for ((r = 0; r < reps; r++)); do
				vals+=("$(mbs "$t" "$size" "${col%|*}" "${col#*|}")")
			done
			s=$(cl_stats "${vals[@]}")
			if [ "$s" = failed ]; then
				row="$row failed |"
				med+=("")
			else
				read -r lo m hi <<<"$s"
				row="$row $lo / **$m** / $hi |"
				med+=("$m")
			fi
		done
		row="$row $(ratio "${med[0]}" "${med[1]}") | $(ratio "${med[0]}" "${med[2]}") |"
		echo "$row" >>"$table"
		echo "$row" >&2
	done
done
cat "$table"
[ -n "$out" ] && cp "$table" "$out"
exit 0
