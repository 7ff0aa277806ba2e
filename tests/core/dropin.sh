#!/bin/sh
# dropin.sh - libxpmem is a drop-in for the reference library: exported
# symbols, SONAME, install layout, pkg-config names, and a program written
# only against the reference header builds (C and C++, three ways) and runs
# against the staged install.  Runs from the build directory.
set -u

builddir=${UXP_BUILDDIR:-$(pwd)}
srcdir=${UXP_SRCDIR:-${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}}
lib=$builddir/.libs/libxpmem.so
# An AddressSanitizer or ThreadSanitizer build of the library cannot be
# loaded by the plain reference programs (the sanitizer runtime must come
# first): nothing to check.
if nm -D "$lib" 2>/dev/null | grep -q -e ' __asan_init' -e ' __tsan_init'; then
	echo "SKIP: libxpmem.so is built with a sanitizer (AddressSanitizer or ThreadSanitizer)"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uxp-dropin.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP # so that EXIT cleans up on a timeout too
CC=${CC:-cc}
CXX=${CXX:-c++}
failed=0

fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok: $*"; }

[ -f "$lib" ] || { echo "ERROR: $lib not built"; exit 99; }

# ---- exported symbols: the 8 reference calls + uxpmem_* functions -------
nm -D --defined-only "$lib" | awk '{ print $2, $3 }' | sort -k2 >"$tmp/syms"
for s in xpmem_init xpmem_version xpmem_make xpmem_remove xpmem_get \
	xpmem_release xpmem_attach xpmem_detach; do
	grep -qx "T $s" "$tmp/syms" || fail "$s is not exported as a function"
done
extra=$(grep -v -E '^T (xpmem_(init|version|make|remove|get|release|attach|detach)|uxpmem_[A-Za-z0-9_]+)$' "$tmp/syms")
[ -z "$extra" ] || fail "unexpected exports: $(echo $extra)"
grep -q '^T uxpmem_transport_query$' "$tmp/syms" || fail "uxpmem_transport_query not exported"
[ $failed = 0 ] && ok "exports: $(awk '{ print $2 }' "$tmp/syms" | tr '\n' ' ')"

# ---- SONAME ---------------------------------------------------------------
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libxpmem.so.0 ] || fail "SONAME is '$soname', want libxpmem.so.0"

# ---- install layout (staged with DESTDIR; the build is not modified) -----
prefix=$(sed -n 's/^prefix = //p' "$builddir/Makefile")
stage=$tmp/dest$prefix
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s -C "$builddir" install \
	DESTDIR="$tmp/dest" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	echo "ERROR: make install failed"
	exit 99
}
for f in lib/libxpmem.so lib/libxpmem.so.0 include/xpmem.h include/uxpmem.h \
	lib/pkgconfig/cray-xpmem.pc lib/pkgconfig/xpmem.pc; do
	[ -e "$stage/$f" ] || fail "install did not create $prefix/$f"
done
misplaced=$(find "$tmp/dest" -name 'libxpmem.so*' ! -path "$stage/lib/libxpmem.so*")
[ -z "$misplaced" ] || fail "libxpmem outside $prefix/lib: $misplaced"
lib64=$(find "$tmp/dest" -name lib64)
[ -z "$lib64" ] || fail "install created $lib64 (clients must find it in lib only)"
cmp -s "$stage/include/xpmem.h" "$srcdir/include/xpmem.h" || fail "installed xpmem.h differs"
[ $failed = 0 ] && ok "install layout under $prefix"

# ---- a reference client builds --------------------------------------------
pc() {
	PKG_CONFIG_PATH=$stage/lib/pkgconfig PKG_CONFIG_LIBDIR=$stage/lib/pkgconfig \
		pkg-config --define-variable=prefix="$stage" "$@"
}
build() { # name compiler-and-flags...
	name=$1; shift
	if "$@" >"$tmp/$name.log" 2>&1; then
		ok "builds: $name"
	else
		cat "$tmp/$name.log"
		fail "refprog does not build: $name: $*"
	fi
}
for m in cray-xpmem xpmem; do
	flags=$(pc --cflags --libs $m) || { fail "pkg-config $m"; continue; }
	case "$flags" in
	*"-I$stage/include"*"-L$stage/lib"*) ;;
	*) fail "pkg-config $m gives '$flags'" ;;
	esac
	build "c-$m" $CC -Wall -Wextra -Werror -o "$tmp/refprog-$m" "$srcdir/tests/core/refprog.c" $flags
done
build c-plain $CC -Wall -Wextra -Werror -I"$stage/include" -o "$tmp/refprog-plain" \
	"$srcdir/tests/core/refprog.c" -L"$stage/lib" -lxpmem
build c++ $CXX -x c++ -Wall -Wextra -Werror -o "$tmp/refprog-cxx" \
	"$srcdir/tests/core/refprog.c" $(pc --cflags --libs cray-xpmem)
[ $failed = 0 ] || exit 1

# ---- and runs against the staged library ---------------------------------
for p in refprog-cray-xpmem refprog-plain refprog-cxx; do
	LD_LIBRARY_PATH=$stage/lib ldd "$tmp/$p" | grep -q "=> $stage/lib/libxpmem.so.0" ||
		fail "$p does not resolve libxpmem.so.0 to the staged library"
done
run() { # program args...
	LD_LIBRARY_PATH=$stage/lib XPMEM_TRANSPORT=shm XPMEM_LOG_LEVEL=debug \
		XPMEM_LOG_FILE="$tmp/xpmem.log" "$@" >"$tmp/run.log" 2>&1
	rc=$?
	cat "$tmp/run.log"
	case $rc in
	0) ok "runs: $*" ;;
	77)
		echo "SKIP: the shm transport cannot run it yet (ENOSYS)"
		exit 77 ;;
	*)
		tail -n 20 "$tmp/xpmem.log" 2>/dev/null
		fail "$* exited $rc" ;;
	esac
}
run "$tmp/refprog-cray-xpmem"
run "$tmp/refprog-cxx"
# Data through the attachments needs the heap in the arena (xpmem-run).
xrun=$builddir/transports/shm/arena/xpmem-run
alib=$builddir/transports/shm/arena/.libs/libuxpmem-arena.so
if [ -x "$xrun" ] && [ -f "$alib" ]; then
	XPMEM_ARENA_LIB=$alib run "$xrun" "$tmp/refprog-plain" --touch
else
	echo "note: no xpmem-run/arena in the build tree; data not checked"
fi
exit $failed
