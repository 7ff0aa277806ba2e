#!/bin/bash
# run-fuzz.sh - fuzz the shm control protocol with libFuzzer (clang).
#
#   tests/fuzz/run-fuzz.sh [SECONDS]      default 120, split over the targets
#
# Builds the library's sources with clang -fsanitize=fuzzer-no-link,address,
# undefined and tests/fuzz/fuzz_proto.c with -fsanitize=fuzzer,address,undefined into
# its own directory (UXP_FUZZ_DIR, default SRCDIR/build-fuzz/libfuzzer; the
# source tree must not be configured in-tree), then runs each target
# (UXP_FUZZ_TARGETS, default "decode conn") on a fresh copy of the seed corpus
# tests/fuzz/corpus/TARGET, with descriptors counted around every input.
# Prints executions, exec/s, coverage (cov/ft), corpus size and crashes per
# target; exits non-zero on any crash, leak, timeout or build failure
# (artifacts in UXP_FUZZ_DIR/artifacts).  Extra libFuzzer options:
# UXP_FUZZ_OPTS (e.g. "-jobs=2 -workers=2").  Needs clang and libFuzzer's
# runtime (Debian 12: apt-get install clang libclang-rt-14-dev).
set -u -o pipefail

secs=${1:-120}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
out=${UXP_FUZZ_DIR:-$srcdir/build-fuzz/libfuzzer}
targets=${UXP_FUZZ_TARGETS:-decode conn}
CC=${CLANG:-clang}
jobs=${JOBS:-2}
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

die() { echo "run-fuzz: $*" >&2; exit 1; }

command -v "$CC" >/dev/null || die "$CC not found (apt-get install clang libclang-rt-14-dev)"
mkdir -p "$out" || die "cannot create $out"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	>"$out/probe.c"
"$CC" -fsanitize=fuzzer,address "$out/probe.c" -o "$out/probe" 2>"$out/probe.err" ||
	die "$CC cannot link libFuzzer programs: $(tail -n 3 "$out/probe.err") (apt-get install libclang-rt-14-dev)"

# ---- build ------------------------------------------------------------------
if [ ! -x "$srcdir/configure" ]; then
	(cd "$srcdir" && autoreconf -fi) >"$out/autoreconf.log" 2>&1 || die "autoreconf failed: $out/autoreconf.log"
fi
obj=$out/obj
mkdir -p "$obj"
if [ ! -f "$obj/Makefile" ]; then
	echo "run-fuzz: configure (for config.h) in $obj"
	(cd "$obj" && "$srcdir/configure" -q CC="$CC") >"$out/configure.log" 2>&1 ||
		die "configure failed: $out/configure.log"
fi
# The library's sources by glob (so that new files are picked up without
# editing this script), except service.c, which the harness includes.
echo "run-fuzz: build the library sources and the harness"
mkdir -p "$out/lib"
rm -f "$out"/lib/*.o
: >"$out/build.log"
objs=()
for f in "$srcdir"/src/*.c "$srcdir"/transports/*.c "$srcdir"/transports/kernel/*.c \
	"$srcdir"/transports/shm/*.c; do
	# service.c: the harness plays it; plugin.c: linked into plugins only
	case $f in */transports/shm/service.c | */src/plugin.c) continue ;; esac
	o=$out/lib/$(echo "${f#"$srcdir"/}" | tr / _).o
	"$CC" -g -O1 $san -fsanitize=fuzzer-no-link -std=gnu11 -pthread -fvisibility=hidden \
		-include "$obj/config.h" -I"$srcdir/include" -I"$srcdir/src" -I"$srcdir/transports/shm" \
		-I"$srcdir/transports/kernel" -DUXP_PLUGIN_DIR='"/nonexistent"' -DUXP_PKGLIBDIR='"/nonexistent"' \
		-c "$f" -o "$o" >>"$out/build.log" 2>&1 || die "compiling $f failed: $out/build.log"
	objs+=("$o")
done
"$CC" -g -O1 $san -fsanitize=fuzzer -std=gnu11 -include "$obj/config.h" \
	-I"$srcdir/include" -I"$srcdir/src" -I"$srcdir/transports/shm" -pthread \
	"$srcdir/tests/fuzz/fuzz_proto.c" "${objs[@]}" -ldl -rdynamic \
	-o "$out/fuzz_proto" >>"$out/build.log" 2>&1 || die "harness build failed: $out/build.log"

# ---- fuzz -----------------------------------------------------------------
ntargets=$(echo $targets | wc -w)
per=$((secs / ntargets))
[ "$per" -ge 1 ] || per=1
mkdir -p "$out/artifacts"
fail=0
summary=()
for t in $targets; do
	seed=$srcdir/tests/fuzz/corpus/$t
	[ -d "$seed" ] || die "no seed corpus $seed"
	corpus=$out/corpus-$t
	rm -rf "$corpus" && cp -r "$seed" "$corpus" || die "cannot copy $seed"
	log=$out/fuzz-$t.log
	before=$(find "$out/artifacts" -name "$t-*" -type f | wc -l)
	echo "run-fuzz: target $t for ${per} s (log $log)"
	rc=0
	# -timeout: a hang of one input is a failure; -rss_limit_mb: so is a blow-up.
	UXP_FUZZ_TARGET=$t UXP_FUZZ_FDCHECK=1 \
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$out/fuzz_proto" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 \
		-max_len=8192 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
		${UXP_FUZZ_OPTS:-} "$corpus" >"$log" 2>&1 || rc=$?
	crashes=$(($(find "$out/artifacts" -name "$t-*" -type f | wc -l) - before))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	files=$(find "$corpus" -type f | wc -l)
	line="$t: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus $files files, crashes $crashes, exit $rc"
	summary+=("$line")
	if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
		fail=1
		echo "run-fuzz: target $t FAILED; end of $log:"
		grep -E 'ERROR|SUMMARY|check failed|deadly signal|Test unit written' "$log" | head -n 20
		tail -n 30 "$log"
	fi
done
echo "---- run-fuzz summary (${secs} s) ----"
printf '%s\n' "${summary[@]}"
[ "$fail" -eq 0 ] && echo "run-fuzz: ok, 0 crashes" || echo "run-fuzz: FAILED (artifacts in $out/artifacts)"
exit "$fail"
