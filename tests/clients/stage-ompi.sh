#!/bin/bash
# stage-ompi.sh - Open MPI against the staged uxpmem (see clients-lib.sh for
# the interface).
#
# Builds Debian's openmpi source package (bookworm: 4.1.x; the upstream tree,
# whose configure matches its sources, without Debian's patches, which would
# need autogen.pl) with --with-xpmem=$UXP_PREFIX, minimal: C bindings only,
# no oshmem, MPI-IO, ucx, ofi, verbs, cuda; hwloc, libevent and PMIx from
# Debian; only the components a 2-rank shared-memory job needs; into the
# cache.  Then, plain and under xpmem-run, tests/clients/mpi_check.c on 2
# ranks with vader forced to the xpmem single-copy mechanism:
#   mpirun --allow-run-as-root --oversubscribe -n 2 --mca pml ob1
#          --mca btl self,vader --mca btl_vader_single_copy_mechanism xpmem
# 1-64 MiB messages both ways, every byte checked.  vader falls back to CMA
# with only a warning when xpmem_make fails: each rank reads the mechanism
# vader settled on through MPI_T, and anything but xpmem is a FAIL, as is
# the warning, a crash, a hang (scaled guard) or a data error.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/clients/clients-lib.sh
. "$here/clients-lib.sh"
cl_require_env
: "${CL_RUN_BUDGET:=300}" # seconds for all runs (builds excluded), see cl_guard

# What a minimal build needs beyond the suite's own packages (README.md).
# Keep .ci/run in sync.
ompi_packages=(build-essential pkg-config libhwloc-dev libevent-dev libpmix-dev)
ompi_no_build=btl-openib,btl-tcp,btl-usnic,btl-uct,btl-ofi,btl-portals4,btl-smcuda,btl-sm
ompi_no_build+=,btl-scif,btl-ugni,coll-hcoll,coll-fca,coll-ucc,coll-cuda,coll-portals4
ompi_no_build+=,coll-monitoring,coll-adapt,coll-han,coll-spacc,osc-ucx,osc-portals4
ompi_no_build+=,osc-monitoring,osc-pt2pt,osc-rdma,pml-ucx,pml-cm,pml-monitoring,pml-v,mtl
ompi_no_build+=,vprotocol,topo-treematch,fbtl,fcoll,fs,sharedfp,common-monitoring,common-ompio
ompi_no_build+=,rcache-udreg,rcache-gpusm,rcache-rgpusm,mpool-memkind
ompi_configure=(--disable-mpi-fortran --disable-oshmem --disable-mpi-java --disable-mpi-cxx
	--disable-io-romio --disable-io-ompio --disable-dlopen --without-ucx --without-ofi
	--without-verbs --without-psm --without-psm2 --without-cuda --without-knem --without-portals4
	--without-ugni --without-slurm --without-tm --without-lsf --without-alps --without-sge
	--with-hwloc=external --with-libevent=external
	--enable-mca-no-build="$ompi_no_build")

# build_ompi: sets $ompi, the install prefix of an Open MPI built against
# $UXP_PREFIX, from the cache or built now.
build_ompi() {
	local ver src t0 log pmix
	cl_deb_src || { cl_fail "ompi: deb-src entry and apt-get update"; return 1; }
	ver=$(cl_src_version openmpi)
	[ -n "$ver" ] || { cl_fail "ompi: no openmpi source package"; return 1; }
	ompi=$(cl_cache_dir openmpi "$ver")
	if [ -f "$ompi/.built" ]; then
		cl_pass "build openmpi $ver (cached: $(cat "$ompi/.built"))"
		return 0
	fi
	rm -rf "$ompi"
	cl_apt_install "${ompi_packages[@]}" || { cl_fail "ompi: install build dependencies"; return 1; }
	pmix=/usr/lib/$(gcc -print-multiarch)/pmix2 # Debian's libpmix-dev
	log=$UXP_CLIENTS_WORK/ompi-build.log
	t0=$(date +%s)
	cl_note "building openmpi $ver into $ompi (log $log)"
	if src=$(cl_apt_source openmpi "$UXP_CLIENTS_WORK/ompi-src" --skip-patches) &&
		mkdir -p "$src/build" &&
		(cd "$src/build" &&
			nice -n 10 ../configure --prefix="$ompi" --with-xpmem="$UXP_PREFIX" \
				--with-pmix="$pmix" "${ompi_configure[@]}" &&
			nice -n 10 make -j"${JOBS:-2}" && make install) >"$log" 2>&1; then
		echo "$(($(date +%s) - t0)) s on $(date -u +%F)" >"$ompi/.built"
		cl_pass "build openmpi $ver ($(($(date +%s) - t0)) s)"
		rm -rf "$UXP_CLIENTS_WORK/ompi-src"
		return 0
	fi
	cl_show "$log" "openmpi build failed"
	cl_fail "build openmpi $ver"
	return 1
}

# build_mpi_check: the 2-rank data-checking program, with this Open MPI.
build_mpi_check() {
	local log=$UXP_CLIENTS_WORK/mpi_check-build.log
	mpi_check=$UXP_CLIENTS_WORK/mpi_check
	if "$ompi/bin/mpicc" -O2 -Wall -Wextra -Werror -o "$mpi_check" "$here/mpi_check.c" \
		>"$log" 2>&1; then
		cl_pass "build mpi_check"
		return 0
	fi
	cl_show "$log" "mpi_check does not build"
	cl_fail "build mpi_check"
	return 1
}

# check_xpmem_support: vader was built with xpmem, against the staged
# library.
check_xpmem_support() {
	local out
	out=$(cl_log_path "ompi_info vader")
	if timeout "$(cl_scale 60)" "$ompi/bin/ompi_info" --param btl vader --level 9 >"$out" 2>&1 &&
		grep -q 'single_copy_mechanism.*xpmem' "$out"; then
		cl_pass "ompi_info: vader offers the xpmem single-copy mechanism"
	else
		cl_show "$out" "vader has no xpmem single-copy mechanism"
		cl_fail "ompi_info: vader offers the xpmem single-copy mechanism"
	fi
	# (no grep -q on a pipe: with pipefail, ldd's SIGPIPE would fail it)
	if [[ $(ldd "$ompi/lib/libopen-pal.so" 2>&1) == *"$UXP_PREFIX/lib/libxpmem.so.0 "* ]]; then
		cl_pass "libopen-pal.so uses the staged libxpmem"
	else
		ldd "$ompi/lib/libopen-pal.so" 2>&1 | sed 's/^/    /'
		cl_fail "libopen-pal.so uses the staged libxpmem"
	fi
}

# mpi_run WRAP: mpi_check on 2 ranks, xpmem forced.
mpi_run() {
	local wrap=$1 name log n
	local cmd=("$ompi/bin/mpirun" --allow-run-as-root --oversubscribe -n 2 --mca pml ob1
		--mca btl self,vader --mca btl_vader_single_copy_mechanism xpmem
		"$mpi_check" -s $((1 << 20)) -S $((64 << 20)) -r 2)
	[ "$wrap" = xpmem-run ] && cmd=("$UXP_PREFIX/bin/xpmem-run" -- "${cmd[@]}")
	name="mpi_check 1-64 MiB vader xpmem $wrap"
	cl_run "$name" "$(cl_guard 300)" "${cmd[@]}" || return 1
	log=$(cl_log_path "$name")
	n=$(grep -c 'vader single-copy mechanism: xpmem$' "$log")
	if [ "$n" -ne 2 ] || grep -q 'Could not generate an xpmem segment' "$log"; then
		cl_show "$log" "$name: vader did not use xpmem in both ranks"
		cl_fail "$name: single-copy mechanism xpmem in both ranks"
		return 1
	fi
	grep '^mpi_check:' "$log" | sed 's/^/  /'
}

export LD_LIBRARY_PATH=$UXP_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

if build_ompi && build_mpi_check; then
	check_xpmem_support
	for wrap in plain xpmem-run; do
		mpi_run "$wrap"
	done
fi
cl_finish
