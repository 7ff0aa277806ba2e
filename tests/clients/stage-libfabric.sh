#!/bin/bash
# stage-libfabric.sh - libfabric's shm provider over uxpmem (issue 14).
#
# Builds upstream libfabric (shm provider only) and the fabtests benchmarks
# against $UXP_PREFIX (cached in $UXP_CLIENTS_CACHE, see libfabric-lib.sh),
# then runs fi_rma_bw read and write, fi_rdm_bw and fi_rdm_tagged_bw between
# two processes at 64 KiB, 1 MiB and 16 MiB, with FI_SHM_USE_XPMEM=1
# (uxpmem) and 0 (CMA), plain and under xpmem-run, with fabtests' data
# checks (-v).  A crash, a hang (both peers killed after a guard scaled by
# the load) or a data error is a FAIL.  UXP_LIBFABRIC_TESTS / _SIZES
# narrow the grid (e.g. "rma_write", "65536").
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/clients/clients-lib.sh
. "$here/clients-lib.sh"
# shellcheck source=tests/clients/libfabric-lib.sh
. "$here/libfabric-lib.sh"
cl_require_env

tests=${UXP_LIBFABRIC_TESTS:-rma_read rma_write rdm_bw rdm_tagged_bw}
sizes=${UXP_LIBFABRIC_SIZES:-65536 1048576 16777216}

lf_setup
case $? in
0) cl_pass "libfabric: build $lf_rev with --enable-xpmem=$UXP_PREFIX" ;;
77) cl_skip "libfabric" "$lf_why"; cl_finish ;;
*) cl_fail "libfabric: build $lf_rev with --enable-xpmem=$UXP_PREFIX"; cl_finish ;;
esac

# The build must really use this tree's library.
if ! LD_LIBRARY_PATH=$UXP_PREFIX/lib ldd "$lf_inst/lib/libfabric.so.1" | grep -qF "$UXP_PREFIX/lib/libxpmem.so.0"; then
	cl_fail "libfabric: libfabric.so does not load $UXP_PREFIX/lib/libxpmem.so.0"
	cl_finish
fi

# Iterations and window: enough transfers to wrap fabtests' window (64
# transfers of the buffer, neighbours sharing a page) twice; at 16 MiB a
# window of 8 (-v fills and checks the whole window each time round).
size_args() {
	if [ "$1" -ge 16777216 ]; then echo "-W 8 -I 24"
	elif [ "$1" -ge 1048576 ]; then echo "-I 140"
	else echo "-I 300"; fi
}

# The client prints its result line (a run that measured nothing fails).
# shellcheck disable=SC2016
client_checked='out=$("$@"); st=$?; printf "%s\n" "$out"; [ $st -eq 0 ] || exit $st
printf "%s\n" "$out" | grep -Eq "^[0-9]+[kmg]? +[0-9]+[kmg]? " || { echo "no result line"; exit 3; }'

# one TEST SIZE XPMEM RUNNER: a server/client pair, both must exit 0.
one() {
	local t=$1 size=$2 x=$3 runner=$4 name port args wrap=()
	name="libfabric: $t $size FI_SHM_USE_XPMEM=$x${runner:+ under xpmem-run}"
	[ -n "$runner" ] && wrap=("$UXP_PREFIX/bin/xpmem-run")
	port=$(cl_free_port)
	read -r -a args <<<"$(lf_args "$t")"
	args[0]=$lf_inst/bin/${args[0]}
	# shellcheck disable=SC2207
	args+=(-p shm -E="$port" -S "$size" $(size_args "$size") -w 10 -v)
	# shellcheck disable=SC2046
	cl_pair "$name" "$(cl_scale 120)" "$port" \
		env $(lf_env "$x") "${wrap[@]}" "${args[@]}" -- \
		env $(lf_env "$x") "${wrap[@]}" bash -c "$client_checked" client "${args[@]}" 127.0.0.1
}

for t in $tests; do
	for size in $sizes; do
		for runner in "" xpmem-run; do
			for x in 1 0; do
				one "$t" "$size" "$x" "$runner"
			done
		done
	done
done
cl_finish
