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
has '^    MAP_SHARED\|MAP_ANONYMOUS +hole'
printf '%s\n' "$out" | grep -q '^  userfaultfd probe:' && fail "userfaultfd probe shown without -v"
has '^environment:'
for v in XPMEM_TRANSPORT XPMEM_LOG_LEVEL XPMEM_LOG_FILE XPMEM_KERNEL_DEVICE XPMEM_KERNEL_NOTICE_TIMEOUT_MS \
	XPMEM_PLUGIN_DIR XPMEM_SHM_SOCKET_DIR XPMEM_ARENA_SIZE XPMEM_ARENA_LIB \
	XPMEM_SHM_REVOKE_TIMEOUT_MS XPMEM_SHM_TIMEOUT_MS XPMEM_USERFAULTFD \
	XPMEM_FREEZE_SIGNAL XPMEM_FREEZE_TIMEOUT_MS LD_PRELOAD; do
	has "^  $v "
done

# Precise reasons: a missing device is named, and a forced unusable transport
# shows up as no selection (plus the library's error line on stderr).
out=$(XPMEM_KERNEL_DEVICE=/nonexistent/xpmem XPMEM_TRANSPORT=kernel "$info" 2>/dev/null) ||
	fail "xpmem-info with XPMEM_TRANSPORT=kernel exited $?"
has '^  kernel +usable: no +cannot open /nonexistent/xpmem: No such file'
has '^selected transport: +none'
has '^  XPMEM_TRANSPORT +kernel$'

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
          "selected_transport", "shm", "environment"):
    assert k in d, "missing key " + k
assert d["reference_version"] == "2.6.3", d["reference_version"]
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
assert set(mem) == {"heap", "stack", "anonymous mmap", ".bss", ".data",
                    "MAP_SHARED|MAP_ANONYMOUS"}, mem
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
