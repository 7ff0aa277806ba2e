# shellcheck shell=bash
# libfabric-lib.sh - libfabric (shm provider) and its fabtests built against
# the staged uxpmem install; sourced by stage-libfabric.sh and
# bench-libfabric.sh (after clients-lib.sh).
#
# Debian 12's libfabric predates the shm provider's XPMEM support, so this
# builds upstream libfabric at commit af8ddbe from a `git archive` tarball,
# the first of these that exists (lf_places): $UXP_LIBFABRIC_TARBALL;
# shared/clients/ next to the source tree or any of its parents (a clone in
# /check/work/main finds /check/work/shared/clients, /check/shared/clients
# ...); /work/shared/clients; the clients cache.  Only the shm provider is
# built (--enable-only --enable-shm) and of the fabtests only the three
# benchmarks used.

lf_rev=af8ddbe
lf_bins="fi_rma_bw fi_rdm_bw fi_rdm_tagged_bw"

# lf_places: every path where the tarball may be, one a line, in order.
lf_places() {
	local name=libfabric-$lf_rev.tar.xz d
	[ -n "${UXP_LIBFABRIC_TARBALL:-}" ] && echo "$UXP_LIBFABRIC_TARBALL"
	d=$(cd "$UXP_SRCDIR" 2>/dev/null && pwd -P) || d=$UXP_SRCDIR
	while :; do
		echo "${d%/}/shared/clients/$name"
		[ -z "$d" ] || [ "$d" = / ] && break
		d=${d%/*}
	done
	echo "/work/shared/clients/$name"
	echo "$UXP_CLIENTS_CACHE/$name"
}

# lf_tarball: the path of the source tarball, or nothing.
lf_tarball() {
	local t
	while IFS= read -r t; do
		[ -r "$t" ] && { echo "$t"; return 0; }
	done < <(lf_places)
	return 1
}

# lf_build SRC INST: configure, build and install libfabric and the
# benchmarks (under nice, -j2: the machine is shared).
lf_build() {
	local tar=$1 inst=$2 w=$UXP_CLIENTS_WORK/libfabric-build b
	rm -rf "$w" && mkdir -p "$w" && tar -xJf "$tar" -C "$w" || return 1
	src=$(find "$w" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	[ -f "$src/autogen.sh" ] || { echo "no autogen.sh in $tar"; return 1; }
	cl_note "building libfabric $lf_rev (shm provider only) into $inst"
	(cd "$src" && nice -n 10 ./autogen.sh && mkdir -p build && cd build &&
		nice -n 10 ../configure --prefix="$inst" --enable-only --enable-shm \
			--enable-xpmem="$UXP_PREFIX" --disable-debug &&
		grep -q '^#define HAVE_XPMEM 1' config.h &&
		nice -n 10 make -j2 && make install) >"$w/libfabric.log" 2>&1 ||
		{ tail -n 40 "$w/libfabric.log"; return 1; }
	cl_note "building fabtests ($lf_bins)"
	(cd "$src/fabtests" && nice -n 10 ./autogen.sh && mkdir -p build && cd build &&
		nice -n 10 ../configure --prefix="$inst" --with-libfabric="$inst" --disable-efa &&
		for b in $lf_bins; do nice -n 10 make -j2 "benchmarks/$b" || exit 1; done &&
		mkdir -p "$inst/bin" &&
		for b in $lf_bins; do install -m 755 "benchmarks/$b" "$inst/bin/$b" || exit 1; done) >"$w/fabtests.log" 2>&1 || { tail -n 40 "$w/fabtests.log"; return 1; }
	rm -rf "$w"
}

# lf_setup: lf_inst is a cached build of libfabric + the benchmarks against
# this tree's xpmem.h (built now if missing).  Returns 77 (and sets
# lf_why) when it cannot be had here.
lf_setup() {
	local tar
	lf_why=
	lf_inst=$(cl_cache_dir libfabric "$lf_rev")/inst
	if [ -x "$lf_inst/bin/fi_rdm_tagged_bw" ]; then
		return 0
	fi
	if ! tar=$(lf_tarball); then
		lf_why="no libfabric-$lf_rev.tar.xz in any of: $(lf_places | paste -sd ' ')"
		lf_why+="; set UXP_LIBFABRIC_TARBALL"
		return 77
	fi
	cl_apt_install autoconf automake libtool make gcc pkg-config xz-utils || {
		lf_why="cannot install the build tools"
		return 77
	}
	rm -rf "$lf_inst"
	lf_build "$tar" "$lf_inst" || { rm -rf "$lf_inst"; return 1; }
}

# lf_env XPMEM: the environment of a benchmark process (FI_SHM_USE_XPMEM=0
# is the CMA path); libxpmem from the staged install, whatever the cached
# build's rpath says.
lf_env() {
	echo "FI_PROVIDER=shm FI_SHM_USE_XPMEM=$1 LD_LIBRARY_PATH=$UXP_PREFIX/lib:$lf_inst/lib"
}

# lf_args TEST: the benchmark and its arguments for a test name.
lf_args() {
	case $1 in
	rma_read) echo "fi_rma_bw -o read" ;;
	rma_write) echo "fi_rma_bw -o write" ;;
	rdm_bw) echo "fi_rdm_bw" ;;
	rdm_tagged_bw) echo "fi_rdm_tagged_bw" ;;
	esac
}
