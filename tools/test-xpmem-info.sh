#!/bin/sh
# xpmem-info: the text fields, valid JSON with the keys, exit status 2 on a
# bad option.  Runs from a (VPATH) build dir; UXP_BUILDDIR is set by make check.
set -u
info=${UXP_BUILDDIR:-.}/tools/xpmem-info
fail() { echo "FAIL: $*"; exit 1; }
has() { printf '%s\n' "$out" | grep -Eq -- "$1" || fail "no line matching '$1' in:
$out"; }

out=$("$info") || fail "xpmem-info exited $?"
has '^uxpmem version: +[0-9]+\.[0-9]+'
has '^compatible with: +XPMEM 2\.6\.3'
has '^  kernel +usable: (yes|no) '
has '^  shm +usable: (yes|no) '
has '^selected transport: +[a-z]'
has '^node id: +[0-9]+ \('
has '^remote transport: +'
has '^  export level: +(FULL|USER|ARENA|none): '
has '^  arena preload: +(active|not active)'
# what an importer gets, from uxpmem_export_level() (arena memory: the arena)
if printf '%s\n' "$out" | grep -Eq '^  export level: +(FULL|USER):'; then
	conv='shared \(converted on attach\)'
else
	conv='hole'
fi
for k in heap stack 'anonymous mmap' '\.bss'; do
	has "^    $k +(shared \(arena\)|$conv)"
done
if [ "$conv" = hole ]; then
	has '^    \.data +hole'
else
	has '^    \.data +shared \(converted on attach, threads stopped\)$'
fi
has '^    MAP_SHARED\|MAP_ANONYMOUS +(hole \(unprivileged|shared in place)'
has '^    SysV shm +shared in place'
printf '%s\n' "$out" | grep -q '^  userfaultfd probe:' && fail "userfaultfd probe shown without -v"
has '^environment:'
for v in XPMEM_TRANSPORT XPMEM_LOG_LEVEL XPMEM_LOG_FILE XPMEM_KERNEL_DEVICE XPMEM_KERNEL_NOTICE_TIMEOUT_MS \
	XPMEM_PLUGIN_DIR XPMEM_NODE_ID XPMEM_SHM_SOCKET_DIR XPMEM_ARENA_SIZE XPMEM_ARENA_LIB \
	XPMEM_SHM_REVOKE_TIMEOUT_MS XPMEM_SHM_TIMEOUT_MS XPMEM_SHM_SWEEP_MS XPMEM_USERFAULTFD \
	XPMEM_FREEZE_SIGNAL XPMEM_FREEZE_TIMEOUT_MS XPMEM_RESOLVER XPMEM_PMIX_LIBRARY LD_PRELOAD; do
	has "^  $v "
done

# Precise reasons: a missing device is named, and a forced unusable transport
# shows up as no selection (plus the library's error line on stderr).
out=$(XPMEM_KERNEL_DEVICE=/nonexistent/xpmem XPMEM_TRANSPORT=kernel "$info" 2>/dev/null) ||
	fail "xpmem-info with XPMEM_TRANSPORT=kernel exited $?"
has '^  kernel +usable: no +cannot open /nonexistent/xpmem: No such file'
has '^selected transport: +none'
has '^  XPMEM_TRANSPORT +kernel$'

# This node's id and the transport serving other nodes (the routing tests'
# fake remote plugin when it is built; none from a directory without one).
out=$(XPMEM_NODE_ID=5 XPMEM_PLUGIN_DIR=/nonexistent/plugins "$info") ||
	fail "xpmem-info with XPMEM_NODE_ID=5 exited $?"
has '^node id: +5 \(XPMEM_NODE_ID\)$'
has '^remote transport: +none \(no plugin serving other nodes in /nonexistent/plugins\)$'
out=$(XPMEM_NODE_ID=40000 "$info" 2>/dev/null) || fail "xpmem-info with a bad node id exited $?"
has '^node id: +-1 \(Invalid argument\)$'
fake=${UXP_BUILDDIR:-.}/tests/core/.libs
if [ -f "$fake/libuxpmem-fakeremote.so" ]; then
	out=$(XPMEM_PLUGIN_DIR=$fake "$info") || fail "xpmem-info with the fake remote plugin exited $?"
	has '^node id: +0 \(local only'
	has '^remote transport: +fakeremote usable: yes +fake remote nodes$'
	has '^  fakeremote +usable: yes '
fi

# The rdma plugin (built only with libfabric): the provider it found (or
# that there is none), and the resolver it needs.
rdma=${UXP_BUILDDIR:-.}/transports/rdma/.libs
if [ -f "$rdma/libuxpmem-rdma.so" ]; then
	out=$(XPMEM_PLUGIN_DIR=$rdma XPMEM_RESOLVER= "$info") || fail "xpmem-info with the rdma plugin exited $?"
	has '^  rdma +usable: no +(libfabric [0-9.]+, provider .*, but no resolver: none|no libfabric RDM provider)'
	has '^remote transport: +none \(rdma: '
	# uninstalled, without XPMEM_PLUGIN_DIR: the build tree's plugins are found
	out=$(env -u XPMEM_PLUGIN_DIR XPMEM_RESOLVER= "$info") ||
		fail "xpmem-info from the build tree exited $?"
	has '^  rdma +usable: no +(libfabric [0-9.]+, provider .*, but no resolver: none|no libfabric RDM provider)'
	has '^resolver: +none \(XPMEM_RESOLVER unset'
	dir=$(mktemp -d)
	out=$(XPMEM_PLUGIN_DIR=$rdma XPMEM_RESOLVER=dir:$dir XPMEM_NODE_ID=5 FI_PROVIDER=shm "$info") ||
		fail "xpmem-info with a resolver exited $?"
	rm -rf "$dir"
	has '^node id: +5 \(XPMEM_NODE_ID\)'
	if printf '%s\n' "$out" | grep -Eq '^  rdma +usable: yes'; then
		has '^remote transport: +rdma usable: yes +libfabric [0-9.]+, provider shm, resolver dir:'
		has '^provider: +shm$'
		has '^resolver: +dir:'
		# without XPMEM_NODE_ID the resolver assigns this host an id, the same each time
		dir=$(mktemp -d)
		for i in 1 2; do
			out=$(XPMEM_PLUGIN_DIR=$rdma XPMEM_RESOLVER=dir:$dir XPMEM_NODE_ID= FI_PROVIDER=shm "$info") ||
				fail "xpmem-info with a resolver assigning ids exited $?"
			has '^node id: +1 \(set by a resolver\)'
		done
		# the node's name: the host name, plus @net:INODE where the initial
		# network namespace is not recognised (Linux < 6.18) or this is
		# another one, @pid:INODE in another pid namespace (xpmem(7))
		set -- "$dir"/nodes/*
		case ${1##*/} in
		"$(uname -n)" | "$(uname -n)"@net:* | "$(uname -n)"@pid:*) ;;
		*) fail "the resolver named this node '${1##*/}', not after $(uname -n)" ;;
		esac
		[ $# -eq 1 ] && [ "$(cat "$1")" = 1 ] && [ -f "$dir/ids/1" ] ||
			fail "the resolver did not record node id 1 for $(uname -n) in $dir: $*"
		rm -rf "$dir"
		# XPMEM_RESOLVER=pmix: the plugin does not link libpmix (it dlopens it),
		# and says why PMIx is not usable (library missing, no launcher)
		if readelf -d "$rdma/libuxpmem-rdma.so" | grep -q 'NEEDED.*libpmix'; then
			fail "the rdma plugin links libpmix"
		fi
		out=$(env -u PMIX_NAMESPACE -u PMIX_RANK XPMEM_PLUGIN_DIR=$rdma XPMEM_RESOLVER=pmix \
			XPMEM_PMIX_LIBRARY=/nonexistent/libpmix.so.2 FI_PROVIDER=shm "$info") ||
			fail "xpmem-info with XPMEM_RESOLVER=pmix exited $?"
		if grep -q '^#define HAVE_PMIX 1' "${UXP_BUILDDIR:-.}/config.h" 2>/dev/null; then
			has '^resolver: +pmix: /nonexistent/libpmix\.so\.2 cannot be loaded: '
			has '^node id: +0 '
			if ldconfig -p 2>/dev/null | grep -q 'libpmix\.so\.2 '; then
				out=$(env -u PMIX_NAMESPACE -u PMIX_RANK -u PMIX_SERVER_URI41 -u PMIX_SERVER_URI4 \
					-u PMIX_SERVER_URI3 -u PMIX_SERVER_URI2 XPMEM_PLUGIN_DIR=$rdma \
					XPMEM_RESOLVER=pmix FI_PROVIDER=shm "$info") ||
					fail "xpmem-info with XPMEM_RESOLVER=pmix exited $?"
				has '^resolver: +pmix: PMIx_Init: .*\(not started by a PMIx launcher\?\)'
			fi
		else
			has '^resolver: +pmix: this plugin was built without PMIx headers'
		fi
	else
		echo "note: libfabric's shm provider is not usable here: provider rows not checked:"
		printf "%s\n" "$out" | grep -E "^  rdma"
	fi
fi

out=$("$info" -v) || fail "xpmem-info -v exited $?"
has '^xpmem_version\(\): '
has '^  arena library: '
has '^  userfaultfd probe: +(full|user-mode-only|none) \('

# Under the arena preload, heap and anonymous mmap come from the arena.
lib=${UXP_BUILDDIR:-.}/transports/shm/arena/.libs/libuxpmem-arena.so
# (not in a sanitizer build: the preload and the sanitizer both replace
# malloc; "$info" is a libtool wrapper, so look at the library)
if [ -f "$lib" ] && ! nm -D "${UXP_BUILDDIR:-.}/.libs/libxpmem.so" 2>/dev/null |
	grep -q -e ' __asan_init' -e ' __tsan_init'; then
	out=$(LD_PRELOAD=$lib "$info") || fail "xpmem-info under the arena exited $?"
	has '^  arena preload: +active'
	has '^    heap +shared \(arena\)$'
	has '^    anonymous mmap +shared \(arena\)$'
fi

if command -v python3 >/dev/null 2>&1; then
	"$info" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("version", "reference_version", "xpmem_version", "transports",
          "selected_transport", "node_id", "node_id_source", "remote_transport",
          "shm", "environment"):
    assert k in d, "missing key " + k
assert d["reference_version"] == "2.6.3", d["reference_version"]
assert isinstance(d["node_id"], int), d["node_id"]
r = d["remote_transport"]
assert set(r) == {"name", "usable", "why", "provider"} and isinstance(r["usable"], bool), r
assert "resolver" in d, "missing key resolver"
names = [t["name"] for t in d["transports"]]
assert "kernel" in names and "shm" in names, names
for t in d["transports"]:
    assert isinstance(t["usable"], bool) and "why" in t, t
assert d["shm"]["userfaultfd"]["level"] in ("full", "user-mode-only", "none")
assert d["shm"]["export_level"] in ("FULL", "USER", "ARENA", "none"), d["shm"]
assert d["shm"]["export_level_value"] in (-1, 0, 1, 2), d["shm"]
assert isinstance(d["shm"]["export_level_why"], str)
assert isinstance(d["shm"]["arena_preload_active"], bool)
mem = d["shm"]["memory"]
assert set(mem) == {"heap", "stack", "anonymous mmap", ".bss", ".data", "SysV shm",
                    "MAP_SHARED, fd held", "MAP_SHARED|MAP_ANONYMOUS"}, mem
if d["shm"]["export_level"] in ("FULL", "USER") and d["selected_transport"] == "shm":
    assert mem["stack"] == mem[".bss"] == "shared (converted on attach)", mem
    assert mem[".data"] == "shared (converted on attach, threads stopped)", mem
elif d["selected_transport"] == "shm":
    assert mem[".data"].startswith("hole"), mem
assert "LD_PRELOAD" in d["environment"] and "XPMEM_TRANSPORT" in d["environment"]
' || fail "--json output invalid or incomplete"
	"$info" -j | python3 -m json.tool >/dev/null || fail "-j is not valid JSON"
else
	echo "python3 not found: JSON not validated"
fi

"$info" -h | grep -q '^Usage: xpmem-info' || fail "-h prints no usage"
"$info" --bogus >/dev/null 2>&1
st=$?
[ $st -eq 2 ] || fail "bad option exited $st, want 2"
err=$("$info" -Z 2>&1 >/dev/null)
printf '%s\n' "$err" | grep -q 'Usage: xpmem-info' || fail "bad option: no usage on stderr"
"$info" extra >/dev/null 2>&1
st=$?
[ $st -eq 2 ] || fail "extra argument exited $st, want 2"
echo "PASS: xpmem-info"
