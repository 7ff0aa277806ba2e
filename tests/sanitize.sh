#!/bin/bash
# sanitize.sh - the sanitizer and valgrind variants of the test suite
# (run by tests/run-all.sh; also usable alone).
#
#   1. a build with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#      and its make check (leaks detected, first error aborts);
#   2. a build with ThreadSanitizer (build-tsan/) and its make check (first
#      report fails the test; suppressions: tests/tsan.supp, proven-benign
#      cases only);
#   3. valgrind memcheck over every Check test binary of a plain build
#      (UXP_PLAIN_BUILD, else one made here in build-valgrind/).
#
# Tests that cannot run in a sanitizer build (anything that preloads the
# jemalloc arena: LD_PRELOAD and ASan or TSan both replace malloc) must
# detect it and exit 77 (skip).  Under valgrind, preload-based test binaries
# are skipped here, and any binary may exit 77 when it sees UXP_VALGRIND=1.
#
# Environment: JOBS (2), UXP_ASAN_BUILD, UXP_TSAN_BUILD, UXP_PLAIN_BUILD,
# UXP_SKIP_ASAN=1, UXP_SKIP_TSAN=1, UXP_SKIP_VALGRIND=1.  Ends with
# "N passed, M failed"; non-zero on failure.
set -u -o pipefail

srcdir=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-2}
# shellcheck source=tests/suite-lib.sh
. "$srcdir/tests/suite-lib.sh"

cd "$srcdir" || exit 1
if [ ! -x configure ]; then
	step "autoreconf" autoreconf -fi || summary_exit
fi

san="-fsanitize=address,undefined"

# ---------------------------------------------------------------- ASan+UBSan
if [ "${UXP_SKIP_ASAN:-0}" != 1 ]; then
	asan=${UXP_ASAN_BUILD:-$srcdir/build-asan}
	rm -rf "$asan" && mkdir -p "$asan" && cd "$asan" || exit 1

	# LeakSanitizer needs ptrace-like access to its own threads, which some
	# containers forbid: probe it, and run without leak checks if it cannot work.
	leaks=1
	printf 'int main(void) { return 0; }\n' >lsan-probe.c
	if gcc $san lsan-probe.c -o lsan-probe 2>/dev/null &&
		! ASAN_OPTIONS=detect_leaks=1 ./lsan-probe >lsan-probe.out 2>&1; then
		leaks=0
		echo "NOTE: LeakSanitizer does not work here ($(head -n 1 lsan-probe.out)); running without leak detection"
	fi
	rm -f lsan-probe lsan-probe.c lsan-probe.out

	export ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=1
	export LSAN_OPTIONS=suppressions=$srcdir/tests/lsan.supp # other projects' leaks only
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	if step "ASan+UBSan: configure" "$srcdir/configure" --enable-werror -q \
			CFLAGS="-O1 -g $san -fno-omit-frame-pointer" LDFLAGS="$san" &&
		step "ASan+UBSan: make -j$jobs" make -j"$jobs"; then
		section "ASan+UBSan: make -j$jobs check (ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS)"
		if timeout 900 make -j"$jobs" check >make-check.out 2>&1; then
			echo "make check: ok"
		else
			tail -n 40 make-check.out
			show_failed_logs .
		fi
		count_suite test-suite.log "ASan+UBSan make check"
	fi
	unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
	cd "$srcdir" || exit 1
fi

# ---------------------------------------------------------------- TSan
# The library's threads (service, converter, notifier, refault, revocation
# dispatcher) against each other and the application's.  The tests that need
# the arena preload skip themselves (tu_require_preload, nm __tsan_init);
# userfaultfd conversion runs (TSan threads are native threads), so
# tests/convert and the shm tests without a preload run.
if [ "${UXP_SKIP_TSAN:-0}" != 1 ]; then
	tsan=${UXP_TSAN_BUILD:-$srcdir/build-tsan}
	supp=$srcdir/tests/tsan.supp
	rm -rf "$tsan" && mkdir -p "$tsan" && cd "$tsan" || exit 1
	if [ ! -f "$supp" ]; then
		record fail "TSan: $supp is missing"
	else
		# history_size=4: enough history for both stacks of a report in
		# these short tests, at a bounded memory cost.
		export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 suppressions=$supp"
		# -Wno-tsan: tests/stress's seqlock uses atomic_thread_fence, which
		# TSan does not model (gcc warns, and --enable-werror would stop);
		# that board is shared between processes, where TSan sees nothing.
		if step "TSan: configure" "$srcdir/configure" --enable-werror -q \
				CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan" \
				LDFLAGS="-fsanitize=thread" &&
			step "TSan: make -j$jobs" make -j"$jobs"; then
			section "TSan: make -j$jobs check (TSAN_OPTIONS=$TSAN_OPTIONS)"
			t0=$(date +%s)
			if timeout 900 make -j"$jobs" check >make-check.out 2>&1; then
				echo "make check: ok"
			else
				tail -n 40 make-check.out
				show_failed_logs .
			fi
			echo "TSan make check: $(($(date +%s) - t0)) s"
			count_suite test-suite.log "TSan make check"
		fi
		unset TSAN_OPTIONS
	fi
	cd "$srcdir" || exit 1
fi

# ---------------------------------------------------------------- valgrind
# print_var BUILDDIR VAR: the value of a make variable of that build.
print_var() {
	make -s --no-print-directory -C "$1" -f Makefile -f - uxp-print-var UXP_VAR="$2" <<'EOF'
uxp-print-var:
	@echo $($(UXP_VAR))
EOF
}

if [ "${UXP_SKIP_VALGRIND:-0}" != 1 ]; then
	if ! command -v valgrind >/dev/null; then
		record fail "valgrind is not installed (apt-get install valgrind)"
		summary_exit
	fi
	plain=${UXP_PLAIN_BUILD:-}
	if [ -z "$plain" ]; then
		plain=$srcdir/build-valgrind
		rm -rf "$plain" && mkdir -p "$plain" && cd "$plain" || exit 1
		step "valgrind: configure" "$srcdir/configure" --enable-werror -q CFLAGS="-O1 -g" ||
			summary_exit
		cd "$srcdir" || exit 1
	fi
	section "valgrind: build the test binaries in $plain"
	# (Not "make check TESTS=": that would delete the plain build's test logs.)
	# shellcheck disable=SC2046 # word splitting of the target lists is intended
	if ! make -s -C "$plain" -j"$jobs" all >"$plain/valgrind-build.out" 2>&1 ||
		! make -s -C "$plain" -j"$jobs" $(print_var "$plain" check_LTLIBRARIES) \
			$(print_var "$plain" check_PROGRAMS) >>"$plain/valgrind-build.out" 2>&1; then
		tail -n 60 "$plain/valgrind-build.out"
		record fail "valgrind: building the test binaries"
		summary_exit
	fi

	vglogs=$plain/valgrind-logs
	rm -rf "$vglogs" && mkdir -p "$vglogs"
	tests=" $(print_var "$plain" TESTS) "
	for prog in $(print_var "$plain" check_PROGRAMS); do
		case $prog in tests/*) ;; *) continue ;; esac
		# Test programs only (not helpers such as peer processes).
		case $tests in *" $prog "*) ;; *) continue ;; esac
		canon=$(printf '%s' "${prog%"$(print_var "$plain" EXEEXT)"}" | tr -c 'a-zA-Z0-9_\n' '_')
		# Only the Check suites.
		ldadd=$(print_var "$plain" "${canon}_LDADD")
		case " $ldadd " in *-lcheck*) ;; *) continue ;; esac
		sources=()
		for s in $(print_var "$plain" "${canon}_SOURCES"); do
			if [ -f "$srcdir/$s" ]; then sources+=("$srcdir/$s"); fi
		done
		name="valgrind $prog"
		section "$name"

		# The arena's own tests run preloaded, which conflicts with valgrind's
		# malloc.  (Tests that only start preloaded peers run: valgrind does
		# not follow exec, so the peers run natively.)
		case $prog in tests/arena/*)
			record skip "$name: runs with the jemalloc arena preloaded, which conflicts with valgrind's malloc"
			continue ;;
		esac
		# Run in one process (CK_FORK=no) unless a suite needs Check's fork
		# mode (signal and exit tests); valgrind follows Check's forks anyway.
		fork_env="CK_FORK=no"
		if [ ${#sources[@]} -gt 0 ] && grep -qE 'tcase_add_(loop_)?(test_raise_signal|exit_test)' "${sources[@]}"; then
			fork_env="CK_FORK=yes"
		fi
		log=$vglogs/$(basename "$prog").log
		echo "$fork_env valgrind --leak-check=full --errors-for-leak-kinds=definite $prog  (log: $log)"
		rc=0
		t0=$(date +%s)
		# A smaller arena in the (native) peers: valgrind's address space
		# manager refuses to map a 64 GiB arena in the importer (ENOMEM).
		# UXP_VALGRIND=1 also stretches every hang guard, Check's timeouts
		# included (tu_slowdown() in tests/common/testutil.c).
		env UXP_BUILDDIR="$plain" UXP_SRCDIR="$srcdir" UXP_VALGRIND=1 XPMEM_USERFAULTFD=0 $fork_env \
			XPMEM_ARENA_SIZE="${XPMEM_ARENA_SIZE:-1G}" \
			CK_VERBOSITY=normal \
			timeout 900 "$plain/libtool" --mode=execute \
			valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
			--show-leak-kinds=definite \
			"$plain/$prog" >"$log" 2>&1 || rc=$?
		tail -n 3 "$log"
		echo "($(($(date +%s) - t0)) s)"
		case $rc in
		0) record pass "$name" ;;
		77) record skip "$name: the test skipped itself under valgrind" ;;
		*) echo "---- $log (exit $rc) ----"; tail -n 150 "$log"
		   record fail "$name (exit $rc; log $log)" ;;
		esac
	done
fi

summary_exit
