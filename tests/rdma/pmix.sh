#!/bin/sh
# The PMIx resolver (XPMEM_RESOLVER=pmix) under a real PMIx launcher: Open
# MPI's mpirun (Debian's openmpi-bin; OMPI_MPIRUN overrides) starts
# tests/rdma/pmix_rank twice over libfabric tcp;ofi_rxm on loopback; rank 0
# exports with its node id from PMIX_NODEID, rank 1 (another node id,
# resolver detected from the launcher's environment) attaches, checks every
# byte, writes, flushes; rank 0 checks the write-back.  Skips (77) with a
# message without the plugin, PMIx support in it, libpmix.so.2 or mpirun.
set -u
b=${UXP_BUILDDIR:-.}
plugin=$b/transports/rdma/.libs
rank=$b/tests/rdma/pmix_rank
skip() { echo "SKIP: $*"; exit 77; }
[ -f "$plugin/libuxpmem-rdma.so" ] || skip "the rdma plugin was not built (no libfabric)"
grep -q '^#define HAVE_PMIX 1' "$b/config.h" 2>/dev/null ||
	skip "the rdma plugin was built without PMIx headers (apt-get install libpmix-dev)"
mpirun=${OMPI_MPIRUN:-$(command -v mpirun)} || skip "no mpirun (apt-get install openmpi-bin)"
"$mpirun" --version 2>/dev/null | grep -q 'Open MPI' || skip "$mpirun is not Open MPI's"
ldconfig -p 2>/dev/null | grep -q 'libpmix\.so\.2 ' || skip "no libpmix.so.2 (apt-get install libpmix2)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/uxpmem-pmix.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
# hang guard: 120 s, more under valgrind/sanitizers (UXP_TEST_SLOWDOWN)
guard=$(awk -v s="${UXP_TEST_SLOWDOWN:-1}" 'BEGIN { printf "%d", 120 * (s < 1 ? 1 : s) }')
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# ASan builds: libpmix 4.2.2 leaks a few bytes it allocates itself (PMIx_Lookup's key list,
# pmix_rte_init); only leaks allocated inside libpmix are suppressed
printf 'leak:libpmix.so\n' >"$dir/lsan.supp"
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$dir/lsan.supp
export XPMEM_PLUGIN_DIR=$plugin FI_PROVIDER='tcp;ofi_rxm' XPMEM_LOG_LEVEL=debug \
	XPMEM_LOG_FILE=$dir/log
# (each rank sets XPMEM_RESOLVER and XPMEM_NODE_ID itself)
timeout -k 10 "$guard" "$mpirun" --oversubscribe -np 2 \
	-x XPMEM_PLUGIN_DIR -x FI_PROVIDER -x XPMEM_LOG_LEVEL -x XPMEM_LOG_FILE \
	"$rank" "$dir" >"$dir/out" 2>&1
rc=$?
cat "$dir/out"
grep -h 'resolver pmix' "$dir"/log* 2>/dev/null | sed 's/^/log: /'
[ $rc -eq 124 ] && { echo "FAIL: mpirun did not finish within $guard s"; exit 1; }
[ $rc -eq 0 ] || { echo "FAIL: mpirun exited $rc"; exit 1; }
for r in 0 1; do
	grep -q "^rank $r: PASS" "$dir/out" || { echo "FAIL: rank $r did not pass"; exit 1; }
done
grep -q 'resolver pmix: published' "$dir"/log* || { echo "FAIL: nothing published through PMIx"; exit 1; }
echo "PASS: the PMIx resolver under $mpirun"
