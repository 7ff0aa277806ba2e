#!/bin/bash
# check-verbs.sh - the remote transport's tests on a real verbs stack with no
# RDMA hardware: Debian's stock kernel booted under QEMU without KVM
# (-accel tcg) with Soft-RoCE (rdma_rxe), into a small initramfs holding
# busybox, the rxe module chain, libibverbs + the rxe provider, librdmacm,
# libfabric (verbs provider) and the test programs of a build tree with
# their shared libraries.  `make check-verbs` runs it.
#
#   tests/verbs/check-verbs.sh BUILDDIR PROGRAM...
#
# PROGRAMs are paths relative to BUILDDIR (tests/rdma/remote_verbs, ...);
# each runs in the guest, as root, at the same absolute path as on this
# host (so UXP_BUILDDIR=BUILDDIR finds tests/shm/peer and the plugins in
# transports/*/.libs), with FI_UNIVERSE_SIZE=16 (rxe's completion queues
# are small).  A PROGRAM may carry arguments and variables:
# "env XPMEM_X=1 tests/rdma/remote_verbs ARG" (split on blanks).
#
# Everything comes from Debian packages, fetched here with apt-get download
# + dpkg-deb -x into a cache (UXP_VERBS_CACHE, default
# ~/.cache/uxpmem-verbs): the kernel linux-image-amd64 depends on,
# busybox-static, ibverbs-utils (ibv_devices, ibv_devinfo), iproute2's
# `rdma` if this host has none.
# libibverbs, the rxe provider, librdmacm and libfabric are this host's (the
# ones the programs were built and linked against: libfabric1 depends on
# ibverbs-providers).  qemu-system-x86 is apt-get installed when missing
# and this runs as root (or with password-less sudo).
#
# Exit status: 0 all passed, 1 a test failed in the guest (or the guest
# broke after booting: module, device, timeout), 77 skipped: QEMU or the
# packages are not available, or the guest did not boot (the reason is
# printed on a line "SKIP: ...").  Ends with the lines tests/suite-lib.sh's
# merge_counts reads ("counts: P F S", "FAILURE: ..." per failure).
#
# Environment: UXP_VERBS_CACHE (package cache), UXP_VERBS_WORK (initramfs
# and logs, default BUILDDIR/tests/verbs/guest), UXP_VERBS_TIMEOUT (whole
# QEMU run, seconds, default 1500), UXP_VERBS_TEST_TIMEOUT (each program,
# guest seconds, default 600), UXP_VERBS_SMP (vCPUs, default 2),
# UXP_VERBS_MEM (MiB, default 2048), UXP_VERBS_NO_INSTALL=1 (never
# apt-get install qemu), UXP_VERBS_KERNEL_PKG (a linux-image package name),
# UXP_TEST_SLOWDOWN (guest hang guards' factor, default 10: TCG).
set -u -o pipefail

me=check-verbs
t_start=$(date +%s)
passed=0 failed=0 skipped=0
failures=()

say() { echo "$me: $*"; }

finish() { # finish STATUS: the counts lines, then exit
	say "$(($(date +%s) - t_start)) s"
	if [ ${#failures[@]} -gt 0 ]; then
		printf 'FAILURE: %s\n' "${failures[@]}"
	fi
	echo "counts: $passed $failed $skipped"
	exit "$1"
}

skip() {
	echo "SKIP: $me: $*"
	skipped=$((skipped + 1))
	finish 77
}

fail() {
	echo "FAILED: $me: $*"
	failed=$((failed + 1))
	failures+=("$me: $*")
	finish 1
}

[ $# -ge 1 ] || { echo "usage: $0 BUILDDIR PROGRAM..." >&2; exit 2; }
builddir=$(cd "$1" && pwd) || exit 2
shift
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=(tests/rdma/remote_verbs)

cache=${UXP_VERBS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uxpmem-verbs}
work=${UXP_VERBS_WORK:-$builddir/tests/verbs/guest}
timeout_s=${UXP_VERBS_TIMEOUT:-1500}
test_timeout=${UXP_VERBS_TEST_TIMEOUT:-600}
smp=${UXP_VERBS_SMP:-2}
mem=${UXP_VERBS_MEM:-2048}
slowdown=${UXP_TEST_SLOWDOWN:-10}
multiarch=x86_64-linux-gnu

[ "$(uname -m)" = x86_64 ] || skip "this host is $(uname -m); the guest is Debian amd64"
for p in "${progs[@]}"; do
	for w in $p; do
		case $w in env | *=*) continue ;; esac
		[ -x "$builddir/$w" ] || fail "$builddir/$w is not built (make check-verbs builds it)"
		break
	done
done
[ -x "$builddir/tests/shm/peer" ] || fail "$builddir/tests/shm/peer is not built"
ls "$builddir"/transports/rdma/.libs/libuxpmem-*.so >/dev/null 2>&1 ||
	skip "the rdma plugin is not built ($builddir/transports/rdma/.libs): configure found no libfabric (apt-get install libfabric-dev)"

# ---------------------------------------------------------------- QEMU
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

# The cache first: the qemu install below logs into it, and on a fresh
# machine ~/.cache does not exist yet.
mkdir -p "$cache/debs" "$cache/x" || skip "cannot create the package cache $cache"

qemu=$(command -v qemu-system-x86_64)
if [ -z "$qemu" ] && [ "${UXP_VERBS_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null; then
	say "installing qemu-system-x86 (apt-get)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		qemu-system-x86 </dev/null >"$cache.qemu-install.log" 2>&1 ||
		tail -n 5 "$cache.qemu-install.log" 2>/dev/null
	qemu=$(command -v qemu-system-x86_64)
fi
[ -n "$qemu" ] || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86; not installed here: not root, or apt failed)"

# ---------------------------------------------------------------- packages
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
	skip "no apt-get/dpkg-deb: the guest's kernel and tools come from Debian packages"

# fetch PACKAGE: download it (once) and unpack it into $cache/x/PACKAGE;
# prints that directory.  A package fetched before is used offline.
fetch() {
	local pkg=$1 deb dir=$cache/x/$1
	if [ -f "$dir/.done" ]; then
		echo "$dir"
		return 0
	fi
	(cd "$cache/debs" && apt-get download -q "$pkg" </dev/null >"$pkg.log" 2>&1) || {
		echo "apt-get download $pkg failed: $(tail -n 2 "$cache/debs/$pkg.log" | tr '\n' ' ')" >&2
		return 1
	}
	deb=$(ls -t "$cache/debs/${pkg}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || { echo "apt-get download $pkg: no .deb" >&2; return 1; }
	rm -rf "$dir" && mkdir -p "$dir" && dpkg-deb -x "$deb" "$dir" || return 1
	touch "$dir/.done"
	rm -f "$deb" # the unpacked tree is the cache
	echo "$dir"
}

kpkg=${UXP_VERBS_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
	# offline, no package lists: a kernel fetched before
	[ -n "$kpkg" ] || kpkg=$(ls -t "$cache/x" 2>/dev/null | grep -m 1 '^linux-image-')
fi
[ -n "$kpkg" ] || skip "cannot name Debian's amd64 kernel package (apt-cache depends linux-image-amd64; run apt-get update)"
kx=$(fetch "$kpkg") || skip "cannot fetch the kernel package $kpkg"
bbx=$(fetch busybox-static) || skip "cannot fetch busybox-static"
utx=$(fetch ibverbs-utils) || skip "cannot fetch ibverbs-utils"
bb=$bbx/bin/busybox
kver=$(ls "$kx/lib/modules" | head -n 1)
vmlinuz=$kx/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || skip "no $vmlinuz in $kpkg"
# modules.dep: Debian's package has none (depmod runs at installation)
if [ ! -f "$kx/lib/modules/$kver/modules.dep" ]; then
	"$bb" depmod -b "$kx" "$kver" || fail "busybox depmod of $kpkg failed"
fi
# iproute2's rdma (rdma link add): this host's, else Debian's with its libraries
sysroots=()
rdma_tool=$(command -v rdma)
if [ -z "$rdma_tool" ]; then
	for p in iproute2 libmnl0 libbsd0 libmd0 libcap2 libelf1 libbpf1 libdb5.3 libselinux1 libtirpc3 libxtables12 libpcre2-8-0; do
		d=$(fetch $p) || skip "cannot fetch $p (iproute2's rdma tool)"
		sysroots+=("$d")
	done
	rdma_tool=$cache/x/iproute2/bin/rdma
fi

# ---------------------------------------------------------------- initramfs
root=$work/root
rm -rf "$work" && mkdir -p "$root" || fail "cannot create $work"
(cd "$root" && mkdir -p usr/bin usr/sbin usr/lib/$multiarch usr/lib64 proc sys dev tmp etc run root &&
	ln -s usr/bin bin && ln -s usr/sbin sbin && ln -s usr/lib lib && ln -s usr/lib64 lib64) ||
	fail "cannot lay out $root"

# put SRC [DEST]: copy a file (following links) to DEST (default SRC) in the guest
put() {
	local dest=${2:-$1}
	mkdir -p "$root$(dirname "$dest")" && cp -L "$1" "$root$dest"
}

# put_elf FILE [DEST]: a program or library and every library it needs (ldd,
# the unpacked packages' libraries first).  A library from an unpacked
# package goes to its path inside the package.
# (the build tree's libxpmem too: tools/.libs/xpmem-bench links it; the guest
# finds it through LD_LIBRARY_PATH, at the same path)
ldpath=$builddir/.libs:
for d in "${sysroots[@]}"; do
	ldpath+="$d/lib/$multiarch:$d/usr/lib/$multiarch:"
done
put_elf() {
	local f=$1 dest=${2:-$1} lib d
	put "$f" "$dest" || return 1
	while read -r lib; do
		[ -f "$root$lib" ] && continue
		d=$lib
		for s in "${sysroots[@]}"; do
			d=${d#"$s"}
		done
		[ -f "$root$d" ] || put "$lib" "$d" || return 1
	done < <(LD_LIBRARY_PATH=$ldpath ldd "$f" 2>/dev/null |
		sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p')
	if LD_LIBRARY_PATH=$ldpath ldd "$f" 2>/dev/null | grep -q 'not found'; then
		echo "$me: $f: $(LD_LIBRARY_PATH=$ldpath ldd "$f" | grep 'not found' | tr -s '\t\n' '  ')" >&2
		return 1
	fi
}

put "$bb" /usr/bin/busybox || fail "cannot copy busybox"
for a in $("$bb" --list); do
	case $a in busybox) ;; *) ln -s busybox "$root/usr/bin/$a" ;; esac
done

# kernel modules: rxe, the rdma_cm user interface (librdmacm), crc32_generic
# (rxe's ICRC: without it loading rdma_rxe fails), dummy (rxe's netdev) and
# everything they depend on according to modules.dep
mods=(crc32_generic dummy rdma_rxe rdma_ucm ib_uverbs)
mdir=$kx/lib/modules/$kver
declare -A want=()
queue=()
for m in "${mods[@]}"; do
	line=$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$mdir/modules.dep") || fail "no module $m in $kpkg"
	queue+=("${line%%:*}")
done
while [ ${#queue[@]} -gt 0 ]; do
	m=${queue[0]}
	queue=("${queue[@]:1}")
	[ -n "${want[$m]:-}" ] && continue
	want[$m]=1
	line=$(grep -E "^$m:" "$mdir/modules.dep")
	for dep in ${line#*:}; do
		queue+=("$dep")
	done
done
for m in "${!want[@]}"; do
	put "$mdir/$m" "/lib/modules/$kver/$m" || fail "cannot copy $m"
	grep -E "^$m:" "$mdir/modules.dep" >>"$root/lib/modules/$kver/modules.dep"
done
for f in modules.builtin modules.order; do
	[ -f "$mdir/$f" ] && cp "$mdir/$f" "$root/lib/modules/$kver/"
done

# user space: verbs + rxe provider, rdmacm, libfabric (verbs;ofi_rxm), tools
so() { # the first existing library of that name in the usual places
	local n
	for n in "/lib/$multiarch/$1" "/usr/lib/$multiarch/$1"; do
		[ -e "$n" ] && { echo "$n"; return 0; }
	done
	return 1
}
rxe=$(ls /usr/lib/$multiarch/libibverbs/librxe-rdmav*.so 2>/dev/null | head -n 1)
[ -n "$rxe" ] && [ -f /etc/libibverbs.d/rxe.driver ] ||
	skip "no rxe provider for libibverbs here (apt-get install ibverbs-providers; libfabric1 depends on it)"
put_elf "$rxe" || fail "cannot copy $rxe"
put /etc/libibverbs.d/rxe.driver || fail "cannot copy rxe.driver"
for l in libibverbs.so.1 librdmacm.so.1 libfabric.so.1; do
	f=$(so $l) || skip "no $l on this host (libfabric-dev brings it)"
	put_elf "$f" || fail "cannot copy $f"
done
# libfabric's dlopen'ed providers, if this build has any
if [ -d /usr/lib/$multiarch/libfabric ]; then
	for f in /usr/lib/$multiarch/libfabric/*.so; do
		[ -f "$f" ] && { put_elf "$f" || fail "cannot copy $f"; }
	done
fi
put_elf "$utx/usr/bin/ibv_devices" /usr/bin/ibv_devices || fail "cannot copy ibv_devices"
put_elf "$utx/usr/bin/ibv_devinfo" /usr/bin/ibv_devinfo || fail "cannot copy ibv_devinfo"
put_elf "$rdma_tool" /usr/bin/rdma || fail "cannot copy $rdma_tool"

# the build tree's programs and plugins at their own paths
for p in "${progs[@]}" tests/shm/peer; do
	for w in $p; do
		case $w in env | *=*) continue ;; esac
		put_elf "$builddir/$w" || fail "cannot copy $builddir/$w and its libraries"
		break
	done
done
while IFS= read -r -d '' f; do
	put_elf "$f" || fail "cannot copy $f and its libraries"
done < <(find "$builddir" -path "$work" -prune -o -path '*/.libs/*.so' -type f -print0)

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n10.11.0.1 guest\n' >"$root/etc/hosts"
echo guest >"$root/etc/hostname"

# the programs to run, one a line
: >"$root/tests.list"
for p in "${progs[@]}"; do
	echo "$p" >>"$root/tests.list"
done

cat >"$root/init" <<EOF
#!/bin/sh
# the guest's init: bring up Soft-RoCE, run the tests, report on the console
export PATH=/usr/sbin:/usr/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
hostname guest
echo "UXPMEM-GUEST: booted \$(uname -r), \$(nproc) vCPUs, \$(awk '/MemTotal/ {print int(\$2/1024)}' /proc/meminfo) MiB"
end() { echo "UXPMEM-GUEST: done"; sync; poweroff -f; sleep 60; }
setup() {
	for m in crc32_generic rdma_rxe ib_uverbs rdma_ucm dummy; do
		modprobe \$m || { echo "UXPMEM-GUEST: setup failed: modprobe \$m"; return 1; }
	done
	ip link set lo up && ip link set dummy0 up && ip addr add 10.11.0.1/24 dev dummy0 ||
		{ echo "UXPMEM-GUEST: setup failed: dummy0"; return 1; }
	rdma link add rxe0 type rxe netdev dummy0 ||
		{ echo "UXPMEM-GUEST: setup failed: rdma link add rxe0 type rxe netdev dummy0"; return 1; }
	ibv_devices
	ibv_devinfo -d rxe0 | grep -E 'state|active_mtu|transport'
	ibv_devinfo -d rxe0 | grep -q PORT_ACTIVE || { echo "UXPMEM-GUEST: setup failed: rxe0 not active"; return 1; }
}
if ! setup; then
	end
fi
echo "UXPMEM-GUEST: setup ok"
export UXP_BUILDDIR=$builddir UXP_SRCDIR=$srcdir FI_UNIVERSE_SIZE=16 UXP_TEST_SLOWDOWN=$slowdown
export LD_LIBRARY_PATH=$builddir/.libs
cd $builddir
while read -r t; do
	[ -n "\$t" ] || continue
	echo "UXPMEM-GUEST: run \$t"
	start=\$(date +%s)
	timeout -s KILL $test_timeout \$t </dev/null 2>&1
	rc=\$?
	echo "UXPMEM-GUEST: result \$rc \$((\$(date +%s) - start)) s \$t"
done </tests.list
end
EOF
chmod +x "$root/init"

say "initramfs: kernel $kver, $(find "$root" -type f | wc -l) files, $(du -sm "$root" | cut -f1) MiB"
(cd "$root" && find . | "$bb" cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio" ||
	fail "cannot make the initramfs (busybox cpio)"

# ---------------------------------------------------------------- boot
log=$work/console.log
say "booting QEMU (tcg, $smp vCPUs, $mem MiB; at most $timeout_s s; console: $log)"
t_boot=$(date +%s)
timeout -k 10 "$timeout_s" "$qemu" -accel tcg -cpu max -smp "$smp" -m "$mem" -nographic \
	-no-reboot -nic none -kernel "$vmlinuz" -initrd "$work/initrd.cpio" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" </dev/null 2>&1 |
	sed -u 's/\r//g' >"$log"
qrc=$?
say "QEMU ran $(($(date +%s) - t_boot)) s (status $qrc)"
sed -n '/UXPMEM-GUEST: booted/,$p' "$log"

if ! grep -q 'UXPMEM-GUEST: booted' "$log"; then
	tail -n 20 "$log"
	if [ "$qrc" -eq 124 ]; then
		skip "the guest did not boot within $timeout_s s (QEMU killed)"
	fi
	skip "QEMU did not boot the guest (status $qrc; $log)"
fi
if ! grep -q '^UXPMEM-GUEST: setup ok' "$log"; then
	fail "the guest's Soft-RoCE setup failed: $(grep -m 1 'setup failed' "$log" || echo 'no message')"
fi
# one result line per program run, in order: a program listed N times (a
# loop of one test) is judged on each of its N results, and its name must
# match exactly (not as the tail of a longer one)
mapfile -t results < <(grep '^UXPMEM-GUEST: result ' "$log")
declare -A nth=()
for p in "${progs[@]}"; do
	k=${nth[$p]:-0}
	nth[$p]=$((k + 1))
	r=
	for line in "${results[@]}"; do
		# "UXPMEM-GUEST: result RC SECONDS s PROGRAM"
		[ "${line#UXPMEM-GUEST: result * * s }" = "$p" ] || continue
		if [ "$k" -eq 0 ]; then
			r=$line
			break
		fi
		k=$((k - 1))
	done
	if [ -z "$r" ]; then
		echo "FAILED: $p in the guest: no result (guest died or QEMU was killed after $timeout_s s)"
		failed=$((failed + 1))
		failures+=("$me: $p: no result")
		continue
	fi
	rc=$(echo "$r" | awk '{print $3}')
	case $rc in
	0) passed=$((passed + 1)); echo "PASS: $p (guest)" ;;
	77) skipped=$((skipped + 1)); echo "SKIP: $p (guest)" ;;
	*) failed=$((failed + 1)); failures+=("$me: $p (guest, status $rc)"); echo "FAILED: $p (guest, status $rc)" ;;
	esac
done
if ! grep -q '^UXPMEM-GUEST: done' "$log"; then
	failed=$((failed + 1))
	failures+=("$me: the guest did not finish (QEMU status $qrc)")
fi
if [ "$failed" -gt 0 ]; then
	finish 1
fi
[ "$passed" -gt 0 ] || finish 77
finish 0
