#!/bin/sh
# test-remote-attach.sh - make check: examples/remote_attach, an exporter and
# an importer on two "nodes" (XPMEM_NODE_ID 1 and 2) joined by the rdma
# plugin over libfabric on loopback (tcp;ofi_rxm unless FI_PROVIDER says
# otherwise) and the shared-directory resolver.  Skipped (77) when the
# plugin is not built (no libfabric) or libfabric offers no provider.
. "${UXP_SRCDIR:-.}/examples/example-env.sh"

plugin_dir=$builddir/transports/rdma/.libs
bin=$builddir/examples/remote_attach
if [ ! -f "$plugin_dir/libuxpmem-rdma.so" ]; then
	echo "SKIP: the rdma plugin is not built ($plugin_dir): configure found no libfabric"
	exit 77
fi
if [ ! -x "$bin" ]; then
	echo "ERROR: $bin is not built" >&2
	exit 99
fi
XPMEM_PLUGIN_DIR=$plugin_dir
FI_PROVIDER=${FI_PROVIDER:-tcp;ofi_rxm}
FI_TCP_IFACE=${FI_TCP_IFACE:-lo}
export XPMEM_PLUGIN_DIR FI_PROVIDER FI_TCP_IFACE
echo "+ FI_PROVIDER='$FI_PROVIDER' XPMEM_PLUGIN_DIR=$plugin_dir $bin"
rc=0
out=$(timeout 300 "$bin" 2>&1) || rc=$?
printf '%s\n' "$out"
echo "exit status: $rc"
[ "$rc" -eq 77 ] && exit 77
expect 'importer (node 2): segid .* of node 1 attached, 0 bad bytes'
expect "the importer's stores are here after its flush: yes"
expect 'importer: invalidated: offset 65536, 4096 bytes'
expect 'page 16 now reads "new data"'
expect 'importer: the exporter removed the segment'
expect 'remote_attach: OK'
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
