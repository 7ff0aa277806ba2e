#!/bin/bash
# stage-ucx.sh - UCX against the staged uxpmem (see clients-lib.sh for the
# interface).
#
# Builds Debian's ucx source package (bookworm: 1.13.x) with
# --with-xpmem=$UXP_PREFIX, minimal (no verbs, rdmacm, cuda, rocm, knem,
# numa, java, go, docs), into the cache; then, plain and under xpmem-run:
#   - ucx_info -d lists the xpmem transport;
#   - ucx_perftest server/client pairs, 64 KiB-16 MiB: UCT put_bw and get
#     (1.13's get bandwidth test) over -x xpmem, UCP tag_bw and ucp_put_bw
#     with UCX_TLS=posix,xpmem and UCX's default allocation (ucp_mem_map ALLOCATE: SysV/POSIX shm); the
#     UCP runs must have put xpmem in their lanes (UCX_LOG_LEVEL=info prints
#     "ep_cfg[N]: tag(...) rma(...)");
#   - ucx_check (tests/clients/ucx_check.c): tag, put and get both ways with
#     every byte checked (1.13's perftest cannot validate data), buffers
#     from UCX's default allocation and from malloc.
# A crash (signal), a hang (scaled guard, both peers killed), a non-zero
# exit, a data error or a missing xpmem lane is a FAIL.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/clients/clients-lib.sh
. "$here/clients-lib.sh"
cl_require_env
: "${CL_RUN_BUDGET:=600}" # seconds for all runs (builds excluded), see cl_guard

# What a minimal build needs beyond the suite's own packages (README.md):
# none, UCX's autogen.sh and configure use autoconf, automake, libtool and
# pkg-config.  Keep .ci/run in sync.
ucx_packages=(build-essential autoconf automake libtool pkg-config)
ucx_configure=(--without-verbs --without-rdmacm --without-cuda --without-rocm --without-knem
	--without-java --without-go --without-fuse3 --without-bfd --without-mpi --without-valgrind
	--disable-numa --disable-doxygen-doc --disable-gtest --disable-examples)
sizes=(65536 1048576 16777216)

# build_ucx: sets $ucx, the install prefix of a UCX built against
# $UXP_PREFIX, from the cache or built now.
build_ucx() {
	local ver src t0 log
	cl_deb_src || { cl_fail "ucx: deb-src entry and apt-get update"; return 1; }
	ver=$(cl_src_version ucx)
	[ -n "$ver" ] || { cl_fail "ucx: no ucx source package"; return 1; }
	ucx=$(cl_cache_dir ucx "$ver")
	if [ -f "$ucx/.built" ]; then
		cl_pass "build ucx $ver (cached: $(cat "$ucx/.built"))"
		return 0
	fi
	rm -rf "$ucx"
	cl_apt_install "${ucx_packages[@]}" || { cl_fail "ucx: install build dependencies"; return 1; }
	log=$UXP_CLIENTS_WORK/ucx-build.log
	t0=$(date +%s)
	cl_note "building ucx $ver into $ucx (log $log)"
	if src=$(cl_apt_source ucx "$UXP_CLIENTS_WORK/ucx-src") && [ -n "$src" ] &&
		(cd "$src" && nice -n 10 ./autogen.sh &&
			nice -n 10 ./configure --prefix="$ucx" --with-xpmem="$UXP_PREFIX" \
				"${ucx_configure[@]}" &&
			nice -n 10 make -j"${JOBS:-2}" && make install &&
			test -e "$ucx/lib/ucx/libuct_xpmem.so") >"$log" 2>&1; then
		echo "$(($(date +%s) - t0)) s on $(date -u +%F)" >"$ucx/.built"
		cl_pass "build ucx $ver ($(($(date +%s) - t0)) s)"
		rm -rf "$UXP_CLIENTS_WORK/ucx-src"
		return 0
	fi
	cl_show "$log" "ucx build failed"
	cl_fail "build ucx $ver"
	return 1
}

# build_ucx_check: the data-checking UCP program, against this UCX.
build_ucx_check() {
	local log=$UXP_CLIENTS_WORK/ucx_check-build.log
	ucx_check=$UXP_CLIENTS_WORK/ucx_check
	if gcc -O2 -Wall -Wextra -Werror -o "$ucx_check" "$here/ucx_check.c" -I"$ucx/include" \
		-L"$ucx/lib" -Wl,-rpath,"$ucx/lib" -lucp -lucs >"$log" 2>&1; then
		cl_pass "build ucx_check"
		return 0
	fi
	cl_show "$log" "ucx_check does not build"
	cl_fail "build ucx_check"
	return 1
}

# check_linkage: UCX's xpmem module loads the staged libxpmem, and UCX
# reports the xpmem transport.
check_linkage() {
	local mod=$ucx/lib/ucx/libuct_xpmem.so out
	# (no grep -q on a pipe: with pipefail, ldd's SIGPIPE would fail it)
	if [[ $(ldd "$mod" 2>&1) == *"$UXP_PREFIX/lib/libxpmem.so.0 "* ]]; then
		cl_pass "libuct_xpmem.so uses the staged libxpmem"
	else
		ldd "$mod" 2>&1 | sed 's/^/    /'
		cl_fail "libuct_xpmem.so uses the staged libxpmem"
	fi
	out=$(cl_log_path "ucx_info -d")
	if timeout "$(cl_scale 60)" "$ucx/bin/ucx_info" -d >"$out" 2>&1 &&
		grep -q 'Transport: xpmem' "$out"; then
		cl_pass "ucx_info -d lists xpmem"
	else
		cl_show "$out" "ucx_info -d does not list the xpmem transport"
		cl_fail "ucx_info -d lists xpmem"
	fi
}

# lanes_use_xpmem FEATURE LOG...: every log shows an endpoint
# configuration whose FEATURE lanes (tag, rma) include xpmem.
lanes_use_xpmem() {
	local feature=$1 log
	shift
	for log in "$@"; do
		if ! grep -Eq "ep_cfg\[[0-9]+\]:.*(^|[ ;])$feature\([^)]*xpmem" "$log"; then
			echo "---- $log: no ep_cfg line with xpmem in $feature(...):"
			grep 'ep_cfg' "$log" | sed 's/^/    /' | head -n 10
			return 1
		fi
	done
}

# perftest_pair NAME WRAP FEATURE ARGS...: an ucx_perftest server and
# client on localhost; FEATURE (tag, rma or -) lanes must use xpmem.
perftest_pair() {
	local name=$1 wrap=$2 feature=$3 port
	shift 3
	local cmd=("$ucx/bin/ucx_perftest")
	[ "$wrap" = xpmem-run ] && cmd=("$UXP_PREFIX/bin/xpmem-run" -- "${cmd[@]}")
	cl_free_port >/dev/null
	port=$cl_port
	# the server takes the test's parameters from the client
	cl_pair "$name" "$(cl_guard 120)" "$port" "${cmd[@]}" -p "$port" :: \
		"${cmd[@]}" 127.0.0.1 -p "$port" "$@" || return 1
	if [ "$feature" != - ] && ! lanes_use_xpmem "$feature" \
		"$(cl_log_path "$name.server")" "$(cl_log_path "$name.client")"; then
		cl_fail "$name: xpmem in the $feature lanes"
		return 1
	fi
	grep -E '^ *Final:|^\s+[0-9]+ +[0-9]' "$(cl_log_path "$name.client")" | tail -n 1 |
		sed "s/^/  $name: /"
}

# perftests WRAP: every ucx_perftest case, plain or under xpmem-run.
perftests() {
	local wrap=$1 s n
	for s in "${sizes[@]}"; do
		n=$(((256 << 20) / s))
		[ $n -gt 2000 ] && n=2000
		[ $n -lt 16 ] && n=16
		local common=(-s "$s" -n "$n" -w 4 -f)
		perftest_pair "uct put_bw xpmem $s $wrap" "$wrap" - -t put_bw -x xpmem -d memory \
			-D bcopy "${common[@]}"
		# 1.13 has no get_bw: its "get" test is get latency/bandwidth
		perftest_pair "uct get xpmem $s $wrap" "$wrap" - -t get -x xpmem -d memory \
			-D bcopy "${common[@]}"
		UCX_TLS=posix,xpmem UCX_LOG_LEVEL=info \
			perftest_pair "ucp tag_bw posix,xpmem $s $wrap" "$wrap" tag -t tag_bw "${common[@]}"
		UCX_TLS=posix,xpmem UCX_LOG_LEVEL=info \
			perftest_pair "ucp ucp_put_bw posix,xpmem $s $wrap" "$wrap" rma -t ucp_put_bw "${common[@]}"
	done
}

# datachecks WRAP: ucx_check with UCX's default allocation and with malloc.
datachecks() {
	local wrap=$1 alloc name log cmd
	for alloc in ucx malloc; do
		name="ucp data check (tag, put, get) alloc=$alloc $wrap"
		cmd=("$ucx_check" -a "$alloc" -s 65536 -S 16777216 -r 2)
		[ "$wrap" = xpmem-run ] && cmd=("$UXP_PREFIX/bin/xpmem-run" -- "${cmd[@]}")
		UCX_TLS=posix,xpmem UCX_LOG_LEVEL=info cl_run "$name" "$(cl_guard 120)" "${cmd[@]}" ||
			continue
		log=$(cl_log_path "$name")
		grep '^\[rank 0\] .* bytes' "$log" | tail -n 1 | sed "s/^/  /"
		lanes_use_xpmem tag "$log" || cl_fail "$name: xpmem in the tag lanes"
		lanes_use_xpmem rma "$log" || cl_fail "$name: xpmem in the rma lanes"
	done
}

export LD_LIBRARY_PATH=$UXP_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
unset UCX_ALLOC_PRIO # UCX's default allocation, always

if build_ucx && build_ucx_check; then
	check_linkage
	for wrap in plain xpmem-run; do
		perftests "$wrap"
		datachecks "$wrap"
	done
fi
cl_finish
