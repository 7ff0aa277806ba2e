# example-env.sh - sourced by the example tests (examples/test-*.sh).
#
# Finds the build tree's example binaries, xpmem-run and the arena preload,
# and defines run_example NAME ARGS... which runs one under xpmem-run with a
# time limit, prints its output and leaves it in $out, its status in $rc.
#
# Exit codes follow the automake test driver: 77 = skipped, 99 = hard error.
# shellcheck disable=SC2034 # out, rc and failed are read by the sourcing script

builddir=${UXP_BUILDDIR:-.}
xpmem_run=$builddir/transports/shm/arena/xpmem-run
arena_lib=$builddir/transports/shm/arena/.libs/libuxpmem-arena.so

# The arena preload replaces malloc (jemalloc); so do AddressSanitizer and
# valgrind, and the two cannot share a process.  Skip in sanitizer builds.
is_sanitized() {
	grep -q -e __asan_init -e __tsan_init "$1" 2>/dev/null
}

run_example() {
	name=$1
	shift
	bin=$builddir/examples/$name
	if [ ! -x "$bin" ]; then
		echo "ERROR: $bin is not built" >&2
		exit 99
	fi
	if is_sanitized "$bin"; then
		echo "SKIP: $name is built with a sanitizer, which cannot run with the arena preload (xpmem-run)"
		exit 77
	fi
	if [ ! -x "$xpmem_run" ] || [ ! -f "$arena_lib" ]; then
		echo "error: $xpmem_run or $arena_lib is not built (the shm arena is missing)" >&2
		exit 1
	fi
	echo "+ XPMEM_ARENA_LIB=$arena_lib $xpmem_run $bin $*"
	rc=0
	out=$(XPMEM_ARENA_LIB=$arena_lib timeout 300 "$xpmem_run" "$bin" "$@" 2>&1) || rc=$?
	printf '%s\n' "$out"
	echo "exit status: $rc"
}

# expect PATTERN: fail unless the output of the last run contains PATTERN.
failed=0
expect() {
	if printf '%s\n' "$out" | grep -q -e "$1"; then
		echo "ok: output has \"$1\""
	else
		echo "FAIL: output lacks \"$1\""
		failed=1
	fi
}
