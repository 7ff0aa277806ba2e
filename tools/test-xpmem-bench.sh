#!/bin/sh
# xpmem-bench: help, exit status 2 on bad options, and a tiny real run whose
# tables must have the expected columns and no failed measurement.  The run
# needs a working shm transport and the arena preload: it fails (it does not
# skip) when they are present but broken.  The tests of memory outside the
# arena (convert, munmap exported, revoke inval) need an export level of USER
# or FULL in the plain exporter; at level ARENA their cells must say why.
set -u
bench=${UXP_BUILDDIR:-.}/tools/xpmem-bench
# Its exporter peer runs with the arena preload, which cannot share a
# process with AddressSanitizer or ThreadSanitizer.
if nm -D "${UXP_BUILDDIR:-.}/.libs/libxpmem.so" 2>/dev/null | grep -q -e ' __asan_init' -e ' __tsan_init'; then
	echo "SKIP: xpmem-bench is built with a sanitizer (AddressSanitizer or ThreadSanitizer)"
	exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
has() { printf '%s\n' "$out" | grep -Eq -- "$1" || fail "no line matching '$1' in:
$out"; }

out=$("$bench" -h) || fail "-h exited $?"
has '^Usage: xpmem-bench'
for bad in --bogus '-s 4q' '-s 0' '-t nosuchtest' '-n 0' '-r x' 'extra'; do
	# shellcheck disable=SC2086
	"$bench" $bad >/dev/null 2>"${TMPDIR:-/tmp}/xb.$$"
	st=$?
	grep -q 'Usage: xpmem-bench' "${TMPDIR:-/tmp}/xb.$$" || fail "'$bad': no usage on stderr"
	rm -f "${TMPDIR:-/tmp}/xb.$$"
	[ $st -eq 2 ] || fail "'$bad' exited $st, want 2"
done

out=$("$bench" -q -t bw,attach,cold,convert,convert-file,munmap,fault,lfcache,shm,many,revoke -s 4k,64k -n 50 -r 3) || fail "tiny run exited $?:
$out"
has '^# transport: importer [a-z]+, exporter [a-z]+'
has '^# exporter: pid [0-9]+, LD_PRELOAD .*arena active'
has '^ +size +iters +memcpy +p10-p90 +attach +p10-p90 +cma +p10-p90 +attach/memcpy +attach/cma +memcpy/cma$'
has '^ +4 KiB +50 +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+x +[0-9.]+x +[0-9.]+x$'
has '^64 KiB +50 '
has '^ +size +iters +attach\+detach +p10-p90$'
has '^ +size +iters +get\+attach +p10-p90$'
has '^# plain exporter: pid [0-9]+, no arena preload \(arena not active\), glibc malloc, export level (FULL|USER|ARENA) '
has '^ +size +iters +first touch +p10-p90 +p99$'
has '^## lfcache: libfabric.s pattern'
has '^ +size +iters +read +p10-p90 +write +p10-p90 +cma read +p10-p90 +cma write +p10-p90 +read/cma +write/cma$'
has '^ +size +iters +attach +p10-p90 +attach/MiB +p10-p90 +stall +p10-p90$'
has '^# target attach/MiB < 0.5 ms: 4 KiB '
has '^## shm: client-shaped: the plain exporter.s SysV and POSIX-shm buffers'
has '^ +size +iters +sysv +p10-p90 +posix +p10-p90 +memcpy +p10-p90 +cma +p10-p90 +sysv/cma +posix/cma +sysv/memcpy$'
has '^## convert-file: attach of a private writable file mapping '
has '^ +size +iters +plain +p10-p90 +p99 +exported +p10-p90 +p99 +extra +extra p99$'
has '^ +size +iters +remove cb +p10-p90 +p99 +remove fd +p10-p90 +p99 +inval cb +p10-p90 +p99 +inval fd +p10-p90 +p99$'
has '^ +4 KiB +50 +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +-?[0-9.]+ +-?[0-9.]+$'
if printf '%s\n' "$out" | grep -q 'export level ARENA'; then
	# no userfaultfd here: only the conversion cells may fail, and say why
	printf '%s\n' "$out" | grep -q "^# .* failed: the plain exporter's export level is ARENA" ||
		fail "level ARENA but no reason for the failed cells:
$out"
	printf '%s\n' "$out" | grep -v -e '^## ' -e '^# ' | grep -E '^ *(4|64) KiB' |
		grep -E '^ *[0-9]+ KiB +[0-9]+ +failed' && fail "a measurement failed:
$out"
else
	printf '%s\n' "$out" | grep -q 'failed' && fail "a measurement failed:
$out"
fi

if command -v python3 >/dev/null 2>&1; then
	"$bench" -q -j -t bw,attach -s 4k -n 50 -r 2 | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["exporter"]["arena_active"] is True, d["exporter"]
t = {x["test"]: x for x in d["tests"]}
row = t["bw"]["rows"][0]
assert row["size"] == 4096 and row["iterations"] == 50, row
assert [m["metric"] for m in row["metrics"]] == ["memcpy", "attach", "cma"], row
assert all(m["status"] == "ok" and m["median"] > 0 for m in row["metrics"]), row
assert row["ratios"]["attach/memcpy"] > 0, row
assert all("p99" in m for m in row["metrics"]), row
' || fail "--json output invalid or incomplete"
	"$bench" -q -j -t munmap,fault,revoke -s 4k -n 20 -r 1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = d["plain_exporter"]
assert p and p["export_level"] in ("FULL", "USER", "ARENA") and p["arena_active"] is False, p
t = {x["test"]: x for x in d["tests"]}
f = t["fault"]["rows"][0]
assert [x["metric"] for x in f["metrics"]] == ["first touch"], f
m = t["munmap"]["rows"][0]
assert [x["metric"] for x in m["metrics"]] == ["plain", "exported"], m
assert set(m["ratios"]) == {"extra", "extra p99"}, m
r = t["revoke"]["rows"][0]
assert [x["metric"] for x in r["metrics"]] == ["remove cb", "remove fd", "inval cb", "inval fd"], r
for x in r["metrics"][:2] + m["metrics"][:1]:
    assert x["status"] == "ok" and x["median"] > 0 and x["p99"] >= x["median"], x
if p["export_level"] != "ARENA":
    for x in r["metrics"] + m["metrics"] + f["metrics"]:
        assert x["status"] == "ok" and x["median"] > 0, x
' || fail "--json output of munmap/revoke invalid or incomplete"
fi
out=$("$bench" -q --csv -t attach -s 4k -n 50 -r 2) || fail "--csv exited $?"
has '^test,size,iterations,metric,unit,status,median,p10,p90,min,max,samples,p99$'
has '^attach,4096,50,attach\+detach,us,ok,([^,]*,){6}[0-9.e+]+$'
out=$("$bench" -q --csv -t munmap,fault -s 4k -n 20 -r 1) || fail "--csv munmap exited $?"
has '^munmap,4096,20,extra,us,ok,'
has '^fault,4096,20,first touch,us,ok,'
# Remote tests: the rdma plugin between two processes per provider
# (tcp;ofi_rxm, shm) on loopback with the shared-directory resolver; every
# cell measured (data checked by the tool), or, without the plugin (no
# libfabric at configure), every remote cell says why.
out=$("$bench" -q -t rfault,rseq,reager,rflush,rrevoke -s 64k -n 3 -r 1 2>&1)
st=$?
has '^## rfault: remote'
has '^ +size +iters +tcp read +p10-p90 +p99 +tcp fault +p10-p90 +p99 +shm read +p10-p90 +p99 +shm fault +p10-p90 +p99 +uffd +p10-p90 +p99 +tcp fault/read +shm fault/read +tcp uffd/read +shm uffd/read$'
has '^ +size +iters +tcp read +p10-p90 +tcp lazy +p10-p90 +shm read +p10-p90 +shm lazy +p10-p90 +uffd +p10-p90 +tcp lazy/read +shm lazy/read +tcp uffd/read +shm uffd/read$'
has '^ +size +iters +tcp read +p10-p90 +tcp eager +p10-p90 +shm read +p10-p90 +shm eager +p10-p90 +tcp eager/read +shm eager/read$'
has '^ +size +iters +tcp write +p10-p90 +tcp flush +p10-p90 +shm write +p10-p90 +shm flush +p10-p90 +tcp flush/write +shm flush/write$'
has '^ +size +iters +tcp remove +p10-p90 +p99 +shm remove +p10-p90 +p99$'
if [ -e "${UXP_BUILDDIR:-.}/transports/rdma/.libs/libuxpmem-rdma.so" ]; then
	[ $st -eq 0 ] || fail "remote run exited $st:
$out"
	has '^# remote tcp;ofi_rxm: importer pid [0-9]+ \(node 2, provider tcp;ofi_rxm\)'
	has '^# remote shm: importer pid [0-9]+ \(node 2, provider shm\)'
	has '^64 KiB +3 +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +([0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+x +[0-9.]+x +[0-9.]+x +[0-9.]+x|failed +- +- +[0-9.]+x +[0-9.]+x +- +-)$'
	# (the uffd columns need userfaultfd itself: a seccomp profile may deny it)
	printf '%s\n' "$out" | grep 'failed' |
		grep -v -E '^# uffd failed: uffd: (Operation not permitted|Function not implemented)$' |
		grep -q . && fail "a remote measurement failed:
$out"
else
	has '^# remote tcp;ofi_rxm: no libuxpmem-rdma.so '
	has '^# tcp read failed: no libuxpmem-rdma.so '
fi

echo "PASS: xpmem-bench"
