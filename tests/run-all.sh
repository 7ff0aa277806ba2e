#!/bin/bash
# run-all.sh - the whole uxpmem test suite: exactly what CI runs (.ci/run).
#
#   0. a snapshot of the working tree in build-all/src (tracked files and new,
#      not ignored sources; never a build output), so that an in-tree build
#      (./configure && make in the source directory) or concurrent edits do
#      not disturb the run
#   1. out-of-tree build with --enable-werror        (build-all/obj)
#   1a. the same with clang (library + test programs, not run)
#   2. make check                                    (all unit, multi-process and example tests)
#   2a. tests/clients/run.sh                        (real clients: UCX, Open MPI, ... from
#                                                     Debian source packages, built against
#                                                     an install of this tree; build-all/clients)
#   2b. tests/fuzz/run-fuzz.sh 90                   (short libFuzzer run of the protocol)
#   2c. make check-verbs                             (the remote transport's tests on Soft-RoCE
#                                                     in Debian's kernel under QEMU without
#                                                     KVM; packages cached in ~/.cache/uxpmem-verbs;
#                                                     a skip where QEMU or the packages are missing)
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
# instead of the working tree), UXP_SKIP_DISTCHECK=1 / UXP_SKIP_SANITIZE=1 /
# UXP_SKIP_CLIENTS=1 / UXP_SKIP_CLANG=1 / UXP_SKIP_VERBS=1 (local use; UXP_CLIENTS_CACHE: see tests/clients/run.sh),
# UXP_TEST_SLOWDOWN=F (stretch every hang guard of the tests by F instead of
# the factor tests/common/testutil.c derives from valgrind, sanitizers, load).
set -u -o pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
build=${UXP_BUILD_ALL:-$srcdir/build-all}
jobs=${JOBS:-2}
export JOBS=$jobs
# shellcheck source=tests/suite-lib.sh
. "$srcdir/tests/suite-lib.sh"

# Is the untracked file $1 something a build made (that .gitignore misses)?
# Objects, archives and programs (ELF, ar), libtool wrapper scripts, files
# made from a tracked $1.in.  A VPATH build would trust such a file as up to
# date, so a snapshot never carries one; new sources are none of these.
is_build_output() {
	[ -f "$1.in" ] && git ls-files --error-unmatch -- "$1.in" >/dev/null 2>&1 && return 0
	case $(LC_ALL=C head -c 8 -- "$1" | tr -d '\0') in
	$'\x7f'ELF* | '!<arch>'*) return 0 ;;
	esac
	LC_ALL=C head -n 3 -- "$1" | grep -q 'temporary wrapper script for' && return 0
	return 1
}

# The snapshot's file list (NUL-separated, run in the source directory): the
# tracked files still present, and untracked files that are neither ignored
# nor build outputs (new sources not yet added).
snapshot_files() {
	local f skipped=()
	git ls-files -z -c | while IFS= read -r -d '' f; do
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
	done
	while IFS= read -r -d '' f; do
		if [ -L "$f" ] || { [ -f "$f" ] && ! is_build_output "$f"; }; then
			printf '%s\0' "$f"
		elif [ -e "$f" ]; then
			skipped+=("$f")
		fi
	done < <(git ls-files -z -o --exclude-standard)
	if [ ${#skipped[@]} -gt 0 ]; then
		echo "snapshot: left out ${#skipped[@]} untracked build output(s) (.gitignore should list them): ${skipped[*]}" >&2
	fi
}

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
		(cd "$srcdir" && snapshot_files | tar --null -T - -cf -) | tar -xf - -C "$src" || exit 1
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

# The prefix is where tests/clients/run.sh stages an install of this build.
step "configure --enable-werror" "$src/configure" --enable-werror -q --prefix="$build/clients/prefix" || summary_exit
step "make -j$jobs" make -j"$jobs" || summary_exit

# The same warnings with clang, library and test programs (no run): CI's
# gcc alone would let clang-only warnings (-Wunused-but-set-variable) in.
if [ "${UXP_SKIP_CLANG:-0}" != 1 ]; then
	clang_obj=$build/clang
	mkdir -p "$clang_obj"
	step "clang: configure --enable-werror && make -j$jobs all + test programs" \
		sh -c 'cd "$1" && "$2/configure" --enable-werror -q CC=clang && make -j"$3" &&
			make -j"$3" check TESTS=' sh "$clang_obj" "$src" "$jobs"
	rm -rf "$clang_obj"
fi

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

# Real clients built against an install of this build (long: tens of
# minutes the first time, seconds with the cache of built clients).
if [ "${UXP_SKIP_CLIENTS:-0}" != 1 ]; then
	section "tests/clients/run.sh (real clients)"
	UXP_BUILD_ALL=$build "$src/tests/clients/run.sh" "$obj" 2>&1 | tee clients.out
	merge_counts clients.out
fi

# A short libFuzzer run over the control protocol (docs/fuzzing.md has the
# long one): clang, libFuzzer + ASan + UBSan, both targets, 90 s in all.
if [ "${UXP_SKIP_FUZZ:-0}" != 1 ]; then
	step "tests/fuzz/run-fuzz.sh 90" env UXP_FUZZ_DIR="$build/fuzz" "$src/tests/fuzz/run-fuzz.sh" 90
fi

# The remote transport on a real verbs stack: Soft-RoCE in Debian's kernel
# under QEMU (tcg), 3-6 minutes on 2 cores once the packages are cached
# (tests/verbs/check-verbs.sh; it kills QEMU after UXP_VERBS_TIMEOUT s).
if [ "${UXP_SKIP_VERBS:-0}" != 1 ]; then
	section "make check-verbs (QEMU + Soft-RoCE)"
	timeout 2000 make check-verbs 2>&1 | grep -v -e '^make' -e '^  CC' | tee check-verbs.out
	merge_counts check-verbs.out
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
