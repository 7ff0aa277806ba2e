#!/bin/sh
# check-man.sh - lint the manual pages (run by "make check").
#
#  1. every page renders with groff (tbl, man macros) without a single
#     warning (-ww enables them all); a ".so" link page must point at an
#     existing page;
#     the EXAMPLES program of every man3 page compiles (-Wall -Werror);
#  2. no unescaped "-" where a minus/option dash is meant (" -x", "--");
#  3. every function declared in include/xpmem.h and include/uxpmem.h has a
#     man3 page, and every page is installed by man/Makefile.inc.
#
# Works from a VPATH build directory: $srcdir (exported by automake's test
# harness) is the top source directory; by default the script's dir/..
set -u

top=${srcdir:-$(dirname "$0")/..}
mandir=$top/man
fail=0

err() {
	echo "check-man: $*" >&2
	fail=1
}

if ! command -v groff >/dev/null 2>&1; then
	echo "check-man: groff not found (apt-get install -y groff-base); skipping" >&2
	exit 77
fi

pages=$(ls "$mandir"/*.[1-8] 2>/dev/null)
[ -n "$pages" ] || { err "no pages in $mandir"; exit 1; }

tmp=${TMPDIR:-/tmp}/check-man.$$
trap 'rm -f "$tmp" "$tmp.c"' EXIT INT TERM

# A C compiler for the examples (optional: skipped if there is none).
cc=
for c in "${CC:-}" cc gcc; do
	if [ -n "$c" ] && command -v "${c%% *}" >/dev/null 2>&1; then
		cc=$c
		break
	fi
done

for page in $pages; do
	name=$(basename "$page")
	sect=${name##*.}
	base=${name%.*}
	first=$(sed -n 1p "$page")
	case $first in
	.so\ *)
		target=${first#.so }
		# Installed pages live in $(mandir)/manN/; ours are flat in man/.
		[ -f "$mandir/$(basename "$target")" ] ||
			err "$name: .so target $target does not exist"
		[ "$(wc -l < "$page")" -eq 1 ] ||
			err "$name: a .so link page must hold only the .so line"
		continue
		;;
	esac

	# 1. groff warnings (stderr) and errors (status), for the terminal
	# (utf8, at man's default 78 columns and a narrower 70) and for
	# typesetting (ps).  LC_ALL=C keeps the messages stable; -t runs tbl.
	for opts in "-Tutf8 -rLL=78n" "-Tutf8 -rLL=70n" "-Tps"; do
		# shellcheck disable=SC2086
		if ! LC_ALL=C groff -t -man -ww -z $opts "$page" >"$tmp" 2>&1; then
			err "$name: groff $opts failed"
		fi
		if [ -s "$tmp" ]; then
			err "$name: groff $opts warnings:"
			sed 's/^/    /' "$tmp" >&2
		fi
	done

	# Examples in man3 pages are complete C programs: they must compile
	# (against the headers only) without warnings.
	if [ "$sect" = 3 ] && [ -n "$cc" ] && grep -q '^\.SH EXAMPLES' "$page"; then
		sed -n '/^\.SH EXAMPLES/,/^\.SH/{/^\.nf/,/^\.fi/p}' "$page" |
			sed '/^\.nf$/d; /^\.fi$/d; s/\\-/-/g; s/\\e/\\/g; s/\\(aq/'"'"'/g; s/\\(dq/"/g; s/\\&//g' \
			> "$tmp.c"
		if ! $cc -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$top/include" "$tmp.c" \
			>"$tmp" 2>&1; then
			err "$name: the EXAMPLES program does not compile:"
			sed 's/^/    /' "$tmp" >&2
		fi
	fi

	# 2. Unescaped dashes: an option or a negative number in roff source
	# must be written \- (otherwise it renders as a hyphen and cannot be
	# searched or copied).  Comment lines are ignored.
	grep -n -E '(^|[[:space:]"(])-[-[:alnum:]]' "$page" | grep -v -E '^[0-9]+:\.\\"' > "$tmp"
	if [ -s "$tmp" ]; then
		err "$name: unescaped '-' (write '\\-'):"
		sed 's/^/    /' "$tmp" >&2
	fi

	# Basic structure: .TH with the right name and section, and a NAME section.
	th=$(grep -m1 '^\.TH ' "$page")
	# shellcheck disable=SC2086
	set -- $th
	if [ "$#" -lt 3 ]; then
		err "$name: missing or short .TH line"
	else
		want=$(echo "$base" | tr '[:lower:]' '[:upper:]')
		got=$(echo "$2" | tr -d '"' | tr '[:lower:]' '[:upper:]' | sed 's/\\-/-/g')
		[ "$got" = "$want" ] || err "$name: .TH title '$2' is not '$want'"
		[ "$3" = "$sect" ] || err "$name: .TH section '$3' is not '$sect'"
	fi
	grep -q '^\.SH NAME' "$page" || err "$name: no NAME section"
	grep -q '^\.SH "SEE ALSO"' "$page" || err "$name: no SEE ALSO section"
done

# 3. Every declared function has a man3 page.  Declarations start in
# column 0 and end with ");".
funcs=$(grep -h -E '^[a-z].*\(.*\);' "$top/include/xpmem.h" "$top/include/uxpmem.h" |
	sed -n 's/.*[^a-z0-9_]\(u\{0,1\}xpmem_[a-z0-9_]*\)[[:space:]]*(.*/\1/p' | sort -u)
n=0
for f in $funcs; do
	n=$((n + 1))
	if [ ! -f "$mandir/$f.3" ]; then
		err "function $f has no page man/$f.3"
	elif ! grep -q -E "^\\.so man3/|^$f\\b|^\\.B[RI]? $f\\b|\\\\fB$f\\\\f" "$mandir/$f.3"; then
		err "man/$f.3 does not mention $f"
	fi
done
[ "$n" -ge 11 ] || err "found only $n functions in the headers (expected 11): the grep is broken"

# Every page is installed (listed in man/Makefile.inc).
for page in $pages; do
	name=$(basename "$page")
	grep -q "man/$name" "$mandir/Makefile.inc" || err "$name is not in dist_man_MANS (man/Makefile.inc)"
done

[ "$fail" -eq 0 ] && echo "check-man: $(echo "$pages" | wc -w) pages, $n functions: ok"
exit "$fail"
