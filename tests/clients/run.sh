#!/bin/bash
# run.sh OBJDIR - the "real clients" stage of tests/run-all.sh: real XPMEM
# clients, built from Debian source packages against an install of this
# tree, run over two processes.
#
#   1. stages an install of OBJDIR's build into PREFIX
#      ($UXP_BUILD_ALL/clients/prefix) and checks that a client can use it
#      from there: xpmem.h, libxpmem.so, both .pc files, xpmem-run and the
#      arena preload;
#   2. runs every tests/clients/stage-*.sh (UCX, Open MPI, libfabric...)
#      with UXP_PREFIX, UXP_SRCDIR, UXP_CLIENTS_CACHE and UXP_CLIENTS_WORK
#      (see clients-lib.sh) and counts the "PASS:/FAIL:/SKIP:" lines they
#      print.
#
# OBJDIR must be configured with --prefix=PREFIX (run-all.sh does that);
# otherwise its source tree is configured and built again here with it.
#
# Environment: UXP_BUILD_ALL (work directory, default SRCDIR/build-all),
# UXP_CLIENTS_CACHE (built clients kept between runs, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/uxpmem-clients), UXP_CLIENTS=ucx,ompi
# (run only these stages), UXP_CLIENTS_TIMEOUT_SCALE (multiplies the hang
# guards).  Ends with "counts: P F S" and "N passed, M failed" (suite-lib.sh);
# non-zero if anything failed.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
# shellcheck source=tests/suite-lib.sh
. "$srcdir/tests/suite-lib.sh"

if [ $# -ne 1 ] || [ ! -f "$1/Makefile" ]; then
	echo "usage: $0 OBJDIR (a configured and built uxpmem build directory)" >&2
	exit 2
fi
obj=$(cd "$1" && pwd)
work=${UXP_BUILD_ALL:-$srcdir/build-all}/clients
prefix=$work/prefix
export UXP_PREFIX=$prefix UXP_SRCDIR=$srcdir UXP_CLIENTS_WORK=$work
export UXP_CLIENTS_CACHE=${UXP_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uxpmem-clients}
t_start=$(date +%s)

# ------------------------------------------------------------ 1. the stage

# install_obj: make install of OBJDIR, or of a build configured for PREFIX.
install_obj() {
	local objprefix top
	objprefix=$(sed -n 's/^prefix = //p' "$obj/Makefile")
	if [ "$objprefix" != "$prefix" ]; then
		top=$(sed -n 's/^abs_top_srcdir = //p' "$obj/Makefile")
		echo "$obj is configured for prefix $objprefix: building $top again for $prefix"
		obj=$work/obj
		rm -rf "$obj" && mkdir -p "$obj" &&
			(cd "$obj" && "$top/configure" -q --prefix="$prefix" &&
				make -j"${JOBS:-2}") || return 1
	fi
	make -C "$obj" install
}

# check_stage: a client finds everything it needs under PREFIX: the header,
# the library through both pkg-config modules (with the right prefix), and
# xpmem-run's preload; a program built that way runs under xpmem-run.
check_stage() {
	local m t=$work/stage-check
	mkdir -p "$t"
	for m in cray-xpmem xpmem; do
		[ "$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --variable=prefix "$m")" = "$prefix" ] || {
			echo "$m.pc: prefix is not $prefix"
			return 1
		}
	done
	[ -f "$prefix/include/xpmem.h" ] && [ -e "$prefix/lib/libxpmem.so" ] &&
		[ -e "$prefix/lib/libxpmem.so.0" ] && [ -x "$prefix/bin/xpmem-run" ] || {
		echo "missing under $prefix:"; ls -R "$prefix"; return 1
	}
	cat >"$t/probe.c" <<'PROBE'
#include <xpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	size_t n = 1 << 20;
	char *buf = NULL, *at;
	xpmem_segid_t seg;
	xpmem_apid_t apid;
	struct xpmem_addr addr;
	if (posix_memalign((void **)&buf, 1 << 16, n))
		return 1;
	memset(buf, 0x5a, n);
	seg = xpmem_make(buf, n, XPMEM_PERMIT_MODE, (void *)0600);
	apid = seg > 0 ? xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL) : -1;
	addr.apid = apid;
	addr.offset = 0;
	at = apid > 0 ? xpmem_attach(addr, n, NULL) : (void *)-1;
	if (xpmem_version() < 0 || at == (void *)-1 || at[n - 1] != 0x5a) {
		perror("probe");
		return 1;
	}
	printf("probe: version 0x%x, attached %zu bytes\n", xpmem_version(), n);
	return 0;
}
PROBE
	# shellcheck disable=SC2046
	gcc -o "$t/probe" "$t/probe.c" $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs cray-xpmem) \
		-Wl,-rpath,"$prefix/lib" || return 1
	ldd "$t/probe" | grep -F "$prefix/lib/libxpmem.so.0" || { ldd "$t/probe"; return 1; }
	"$t/probe" && "$prefix/bin/xpmem-run" "$t/probe" &&
		"$prefix/bin/xpmem-run" sh -c 'case $LD_PRELOAD in '"$prefix"'/lib/uxpmem/libuxpmem-arena.so*) ;; *) exit 1;; esac'
}

rm -rf "$prefix"
step "clients: make install (prefix $prefix)" install_obj || summary_exit
step "clients: the staged install works from $prefix" check_stage || summary_exit

# ------------------------------------------------------------ 2. the clients

# run_stage SCRIPT: run one stage script, echo its output, count its lines.
run_stage() {
	local script=$1 name out st t0 line n=0 bad=0
	name=$(basename "$script" .sh)
	name=${name#stage-}
	out=$work/$name.out
	section "clients: $name"
	t0=$(date +%s)
	"$script" </dev/null 2>&1 | tee "$out"
	st=${PIPESTATUS[0]}
	while IFS= read -r line; do
		case $line in
		"PASS: "*) record pass "$name: ${line#PASS: }"; n=$((n + 1)) ;;
		"FAIL: "*) record fail "$name: ${line#FAIL: }"; n=$((n + 1)); bad=1 ;;
		"SKIP: "*) record skip "$name: ${line#SKIP: }"; n=$((n + 1)) ;;
		esac
	done <"$out"
	# The exit status must agree with the lines: a stage that died, or
	# failed without saying what, is a failure of its own.
	case $st in
	0) [ $bad -eq 0 ] && [ $n -gt 0 ] || record fail "$name: exit 0 disagrees with its results ($out)" ;;
	1) [ $bad -eq 1 ] || record fail "$name: exit 1 without a FAIL line ($out)" ;;
	77) [ $n -gt 0 ] || record skip "$name: skipped (exit 77)" ;;
	*) record fail "$name: $script exited with status $st ($out)" ;;
	esac
	echo "clients: $name took $(($(date +%s) - t0)) s"
}

for script in "$here"/stage-*.sh; do
	[ -e "$script" ] || continue
	name=$(basename "$script" .sh)
	name=${name#stage-}
	if [ -n "${UXP_CLIENTS:-}" ] && [[ ",$UXP_CLIENTS," != *",$name,"* ]]; then
		continue
	fi
	run_stage "$script"
done

echo
echo "clients: $(($(date +%s) - t_start)) s in all; cache $UXP_CLIENTS_CACHE"
summary_exit
