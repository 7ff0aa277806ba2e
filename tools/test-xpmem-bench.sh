#!/bin/sh
# xpmem-bench: help, exit status 2 on bad options, and a tiny real run whose
# tables must have the expected columns and no failed measurement.  The run
# needs a working shm transport and the arena preload: it fails (it does not
# skip) when they are present but broken.
set -u
bench=${UXP_BUILDDIR:-.}/tools/xpmem-bench
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

out=$("$bench" -q -t all -s 4k,64k -n 100 -r 3) || fail "tiny run exited $?:
$out"
has '^# transport: importer [a-z]+, exporter [a-z]+'
has '^# exporter: pid [0-9]+, LD_PRELOAD .*arena active'
has '^ +size +iters +memcpy +p10-p90 +attach +p10-p90 +cma +p10-p90 +attach/memcpy +attach/cma +memcpy/cma$'
has '^ +4 KiB +100 +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+x +[0-9.]+x +[0-9.]+x$'
has '^64 KiB +100 '
has '^ +size +iters +attach\+detach +p10-p90$'
has '^ +size +iters +get\+attach +p10-p90$'
has '^## (convert|fault|revoke): .*n/a \(not implemented\)'
printf '%s\n' "$out" | grep -q 'failed' && fail "a measurement failed:
$out"

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
' || fail "--json output invalid or incomplete"
fi
out=$("$bench" -q --csv -t attach -s 4k -n 50 -r 2) || fail "--csv exited $?"
has '^test,size,iterations,metric,unit,status,median,p10,p90,min,max,samples$'
has '^attach,4096,50,attach\+detach,us,ok,'
echo "PASS: xpmem-bench"
