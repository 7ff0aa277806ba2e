#!/bin/bash
# run-all.sh - the whole uxpmem test suite: exactly what CI runs (.ci/run).
#
#   0. a snapshot of the working tree (tracked and new, not ignored files:
#      git ls-files) in build-all/src, so that an in-tree build (./configure
#      in the source directory) or concurrent edits do not disturb the run
#   1. out-of-tree build with --enable-werror        (build-all/obj)
#   2. make check                                    (all unit, multi-process and example tests)
#   2b. tests/fuzz/run-fuzz.sh 90                   (short libFuzzer run of the protocol)
#   3. make distcheck                                (the tarball builds and passes from scratch)
#   4. tests/sanitize.sh                             (ASan+UBSan build + make check,
#                                                     valgrind memcheck over the Check binaries)
#      (build-all/asan)
#
# Installs nothing; needs the packages listed in README.md.  Runs on 2 cores
# in well under 15 minutes.  Ends with a line "N passed, M failed" and exits
# non-zero if anything failed.
#
# Environment: JOBS (default 2), UXP_BUILD_ALL (work directory, default
# SRCDIR/build-all), UXP_NO_SNAPSHOT=1 (build SRCDIR itself, which must not
# be configured in-tree), UXP_SNAPSHOT_REF=COMMIT (test a commit, e.g. HEAD,
# instead of the working tree), UXP_SKIP_DISTCHECK=1 / UXP_SKIP_SANITIZE=1 (local use).
set -u -o pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
build=${UXP_BUILD_ALL:-$srcdir/build-all}
jobs=${JOBS:-2}
export JOBS=$jobs
# shellcheck source=tests/suite-lib.sh
. "$srcdir/tests/suite-lib.sh"

t_start=$(date +%s)
rm -rf "$build" && mkdir -p "$build" || exit 1

src=$srcdir
if [ "${UXP_NO_SNAPSHOT:-0}" != 1 ] && git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
	section "snapshot of the working tree -> $build/src"
	src=$build/src
	mkdir -p "$src"
	if [ -n "${UXP_SNAPSHOT_REF:-}" ]; then # a commit instead of the working tree
		git -C "$srcdir" archive "$UXP_SNAPSHOT_REF" | tar -xf - -C "$src" || exit 1
	else
		(cd "$srcdir" && git ls-files -z -c -o --exclude-standard |
			while IFS= read -r -d '' f; do
				if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
			done | tar --null -T - -cf -) | tar -xf - -C "$src" || exit 1
	fi
	echo "$(cd "$src" && find . -type f | wc -l) files"
	rm -f "$src/configure" # always regenerate the build system of a snapshot
fi
cd "$src" || exit 1

# Generated build system (a fresh clone has no configure).
if [ ! -x configure ]; then
	step "autoreconf -fi" autoreconf -fi || summary_exit
fi

obj=$build/obj
mkdir -p "$obj" && cd "$obj" || exit 1

step "configure --enable-werror" "$src/configure" --enable-werror -q || summary_exit
step "make -j$jobs" make -j"$jobs" || summary_exit

# make check: count the individual tests from test-suite.log.
section "make -j$jobs check"
if timeout 900 make -j"$jobs" check >make-check.out 2>&1; then
	echo "make check: ok"
else
	tail -n 40 make-check.out
	echo "make check: FAILED; logs of the failing tests:"
	show_failed_logs .
fi
count_suite test-suite.log "make check"

# A short libFuzzer run over the control protocol (docs/fuzzing.md has the
# long one): clang, libFuzzer + ASan + UBSan, both targets, 90 s in all.
if [ "${UXP_SKIP_FUZZ:-0}" != 1 ]; then
	step "tests/fuzz/run-fuzz.sh 90" env UXP_FUZZ_DIR="$build/fuzz" "$src/tests/fuzz/run-fuzz.sh" 90
fi

# make distcheck: one result.
if [ "${UXP_SKIP_DISTCHECK:-0}" != 1 ]; then
	section "make distcheck"
	if timeout 1200 make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
		>make-distcheck.out 2>&1; then
		grep -A3 '^===.*archives ready' make-distcheck.out || tail -n 4 make-distcheck.out
		record pass "make distcheck"
	else
		tail -n 60 make-distcheck.out
		# The failing tests' logs inside the distcheck tree, if it got that far.
		for d in uxpmem-*/_build/sub; do
			[ -d "$d" ] && show_failed_logs "$d"
		done
		record fail "make distcheck (full output: $obj/make-distcheck.out)"
	fi
fi

# Sanitizers and valgrind (reuses this build for the valgrind pass).
if [ "${UXP_SKIP_SANITIZE:-0}" != 1 ]; then
	section "tests/sanitize.sh"
	UXP_PLAIN_BUILD=$obj UXP_ASAN_BUILD=$build/asan UXP_TSAN_BUILD=$build/tsan "$src/tests/sanitize.sh" 2>&1 | tee sanitize.out
	merge_counts sanitize.out
fi

echo
echo "run-all: $(($(date +%s) - t_start)) s; build directory $build"
summary_exit
