# suite-lib.sh - counting and reporting helpers for tests/run-all.sh and
# tests/sanitize.sh (bash, sourced).
#
# Results are counted per test where a test driver reports them (automake's
# test-suite.log, one valgrind run per binary) and per step otherwise
# (configure, make, distcheck).

passed=0
failed=0
skipped=0
failures=()

section() {
	echo
	echo "=============================================================="
	echo "== $*"
	echo "=============================================================="
}

# record pass|fail|skip WHAT
record() {
	case $1 in
	pass) passed=$((passed + 1)) ;;
	skip) skipped=$((skipped + 1)); echo "SKIP: $2" ;;
	*) failed=$((failed + 1)); failures+=("$2"); echo "FAILED: $2" ;;
	esac
}

# step NAME COMMAND...: run a build step quietly; show its output if it fails.
step() {
	local name=$1 out
	shift
	section "$name"
	out=$(mktemp)
	if "$@" >"$out" 2>&1; then
		tail -n 3 "$out"
		rm -f "$out"
		record pass "$name"
		return 0
	fi
	tail -n 80 "$out"
	rm -f "$out"
	record fail "$name"
	return 1
}

# show_failed_logs BUILDDIR: automake's test-suite.log holds the logs of
# every test that did not pass.
show_failed_logs() {
	local log=$1/test-suite.log
	if [ -f "$log" ]; then
		echo "---------------- $log ----------------"
		head -n 600 "$log"
		echo "---------------- end of $log ----------------"
	fi
}

# count_suite TEST-SUITE.LOG LABEL: add automake's per-test counts.
count_suite() {
	local log=$1 label=$2 n name
	if [ ! -f "$log" ]; then
		record fail "$label: no $log (the tests did not build or run)"
		return
	fi
	_n() { sed -n "s/^# $1: *\([0-9]*\)\$/\1/p" "$log" | head -n 1; }
	n=$(_n PASS); passed=$((passed + ${n:-0}))
	n=$(_n XFAIL); passed=$((passed + ${n:-0}))
	n=$(_n SKIP); skipped=$((skipped + ${n:-0}))
	for kind in FAIL XPASS ERROR; do
		n=$(_n $kind); failed=$((failed + ${n:-0}))
	done
	# Names of the tests that failed, for the closing list.
	while read -r name; do
		failures+=("$label: $name")
	done < <(awk '/^=+$/ && prev ~ /^(FAIL|XPASS|ERROR): / { sub(/:/, "", prev); print prev }
		{ prev = $0 }' "$log" | sort -u)
	echo "$label: $(_n TOTAL) tests: $(_n PASS) pass, $(_n SKIP) skip, $(_n XFAIL) xfail," \
		"$(_n FAIL) fail, $(_n XPASS) xpass, $(_n ERROR) error"
}

# merge_counts OUTPUT-OF-A-NESTED-SCRIPT: take over its "counts:" line and
# its "FAILURE:" lines.
merge_counts() {
	local out=$1 line p f s
	line=$(grep '^counts: ' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		record fail "$out: no counts (the script died)"
		return
	fi
	read -r _ p f s <<<"$line"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	while read -r name; do
		failures+=("$name")
	done < <(sed -n 's/^FAILURE: //p' "$out")
}

# summary_exit: the closing summary; exit status 1 if anything failed.
summary_exit() {
	echo
	if [ ${#failures[@]} -gt 0 ]; then
		printf 'FAILURE: %s\n' "${failures[@]}"
	fi
	echo "counts: $passed $failed $skipped"
	echo "($skipped skipped)"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}
