/* semantics.c - every row of the semantics table of clients.md, with the
 * errno of every failure, across real processes (this test process and
 * tests/shm/peer). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "shmtest.h"
#include "testutil.h"
#include <uxpmem.h>

#define SEG_PAGES 4
#define SEG_LEN (SEG_PAGES * PAGE)

/* Expect call to fail with -1 and errno e. */
#define CK_FAIL_ERRNO(call, e)                                                          \
	do {                                                                            \
		errno = 0;                                                              \
		long long r_ = (long long)(call);                                       \
		int en_ = errno;                                                        \
		ck_assert_msg(r_ == -1 && en_ == (e), "%s: returned %lld errno %d (%s), want -1 errno %d (%s)", \
			      #call, r_, en_, strerror(en_), (e), strerror(e));         \
	} while (0)

#define CK_ATTACH_ERRNO(call, e)                                                        \
	do {                                                                            \
		errno = 0;                                                              \
		void *r_ = (call);                                                      \
		int en_ = errno;                                                        \
		ck_assert_msg(r_ == ATTACH_FAILED && en_ == (e),                        \
			      "%s: returned %p errno %d (%s), want (void*)-1 errno %d (%s)", #call, r_, \
			      en_, strerror(en_), (e), strerror(e));                    \
	} while (0)

static void *attach(xpmem_apid_t apid, off_t off, size_t size, void *vaddr)
{
	struct xpmem_addr a = { apid, off };
	return xpmem_attach(a, size, vaddr);
}

static xpmem_apid_t get_ok(xpmem_segid_t segid, int flags)
{
	errno = 0;
	xpmem_apid_t a = xpmem_get(segid, flags, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(a > 0, "xpmem_get(%lld, %d) = %lld errno %d (%s)", (long long)segid, flags,
		      (long long)a, errno, strerror(errno));
	return a;
}

static void *attach_ok(xpmem_apid_t apid, off_t off, size_t size, void *vaddr)
{
	errno = 0;
	void *p = attach(apid, off, size, vaddr);
	ck_assert_msg(p != ATTACH_FAILED, "xpmem_attach(%lld, %#llx, %#zx, %p) failed errno %d (%s)",
		      (long long)apid, (long long)off, size, vaddr, errno, strerror(errno));
	ck_assert_msg(((uintptr_t)p & (PAGE - 1)) == 0, "attach returned unaligned %p", p);
	return p;
}

static uint64_t rd64(const void *p)
{
	unsigned char b;
	int sig = tu_probe_read(p, &b);
	ck_assert_msg(sig == 0, "reading %p raised signal %d (%s)", p, sig, strsignal(sig));
	return *(const volatile uint64_t *)p;
}

/* An arena exporter with a SEG_LEN buffer filled with seed 1, exported as
 * its own segment (mode) and as the whole address space (0600). */
struct exp {
	struct peer p;
	uintptr_t buf;
	xpmem_segid_t seg, all;
};

static void exp_start_f(struct exp *e, int mode, int flavour)
{
	peer_start(&e->p, flavour);
	e->buf = (uintptr_t)peer_ok(&e->p, "malloc %lu", SEG_LEN);
	peer_ok(&e->p, "fill %#lx %lu 1", e->buf, SEG_LEN);
	e->seg = peer_ok(&e->p, "make %#lx %lu %#o", e->buf, SEG_LEN, mode);
	ck_assert_int_gt(e->seg, 0);
	e->all = peer_ok(&e->p, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	ck_assert_int_gt(e->all, 0);
}

static void exp_start(struct exp *e, int mode)
{
	exp_start_f(e, mode, PEER_ARENA);
}

START_TEST(t_version)
{
	int v = xpmem_version();
	ck_assert_msg(v >= 0, "xpmem_version() = %d errno %d", v, errno);
	ck_assert_int_eq(xpmem_init(), 0);
}
END_TEST

START_TEST(t_make)
{
	/* Local buffer (this process has no arena: fine for make). */
	void *buf = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);
	xpmem_segid_t s[4];
	s[0] = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_msg(s[0] > 0, "make(0, MAXADDR, 0600) = %lld errno %d", (long long)s[0], errno);
	s[1] = xpmem_make(buf, 8 * PAGE, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_msg(s[1] > 0, "make(buf, 8 pages, 0666) = %lld errno %d", (long long)s[1], errno);
	/* MAXADDR from a non-zero address is clipped, not refused */
	s[2] = xpmem_make(buf, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0);
	ck_assert_msg(s[2] > 0, "make(buf, MAXADDR, 0) = %lld errno %d", (long long)s[2], errno);
	s[3] = xpmem_make(buf, PAGE, XPMEM_PERMIT_MODE, (void *)0777);
	ck_assert_msg(s[3] > 0, "make(buf, 1 page, 0777) = %lld errno %d", (long long)s[3], errno);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < i; j++)
			ck_assert_msg(s[i] != s[j], "segids %d and %d are equal (%lld)", i, j, (long long)s[i]);

	CK_FAIL_ERRNO(xpmem_make(buf, PAGE, 0, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, PAGE, 2, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, PAGE, XPMEM_PERMIT_MODE, (void *)01000), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, PAGE, XPMEM_PERMIT_MODE, (void *)04600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, 0, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make((char *)buf + 1, PAGE, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make((char *)buf + 8, PAGE, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, PAGE + 1, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make(buf, 100, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	/* past the top of user space */
	CK_FAIL_ERRNO(xpmem_make((void *)(uintptr_t)0xfffffffffffff000ULL, PAGE, XPMEM_PERMIT_MODE,
				 (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make((void *)PAGE, (size_t)1 << 62, XPMEM_PERMIT_MODE, (void *)0600), EINVAL);
	CK_FAIL_ERRNO(xpmem_make((void *)PAGE, XPMEM_MAXADDR_SIZE - PAGE + 1, XPMEM_PERMIT_MODE,
				 (void *)0600), EINVAL);

	for (int i = 0; i < 4; i++)
		ck_assert_msg(xpmem_remove(s[i]) == 0, "remove(%lld) errno %d", (long long)s[i], errno);
}
END_TEST

START_TEST(t_get_errors)
{
	struct exp e;
	exp_start_f(&e, 0600, PEER_PLAIN);

	CK_FAIL_ERRNO(xpmem_get(0, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(-1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(e.seg, 0, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(e.seg, XPMEM_RDONLY | XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(e.seg, 4, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(e.seg, XPMEM_RDWR | 0x10, XPMEM_PERMIT_MODE, NULL), EINVAL);
	CK_FAIL_ERRNO(xpmem_get(e.seg, XPMEM_RDWR, 0, NULL), EINVAL);

	/* clients pass NULL, 0600 or 0666 as permit_value: all accepted */
	xpmem_apid_t a1 = xpmem_get(e.seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_msg(a1 > 0, "get(pv 0666) = %lld errno %d (%s)", (long long)a1, errno, strerror(errno));
	xpmem_apid_t a2 = xpmem_get(e.seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_msg(a2 > 0, "get(pv 0600) = %lld errno %d (%s)", (long long)a2, errno, strerror(errno));
	xpmem_apid_t a3 = get_ok(e.seg, XPMEM_RDONLY);
	ck_assert(a1 != a2 && a2 != a3 && a1 != a3);

	/* unknown segid of a live exporter */
	CK_FAIL_ERRNO(xpmem_get(e.seg + 1000, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	/* removed segment */
	peer_ok(&e.p, "remove %lld", (long long)e.seg);
	CK_FAIL_ERRNO(xpmem_get(e.seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	/* exporter exited */
	xpmem_segid_t all = e.all;
	peer_stop(&e.p);
	CK_FAIL_ERRNO(xpmem_get(all, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	ck_assert_int_eq(xpmem_release(a1), 0);
	ck_assert_int_eq(xpmem_release(a2), 0);
	ck_assert_int_eq(xpmem_release(a3), 0);
}
END_TEST

START_TEST(t_attach)
{
	struct exp e;
	exp_start(&e, 0600);
	xpmem_apid_t apid = get_ok(e.seg, XPMEM_RDWR);

	/* whole segment: the exporter's data */
	void *p = attach_ok(apid, 0, SEG_LEN, NULL);
	ck_assert_msg(st_check(p, SEG_LEN, 1) == -1, "attachment does not hold the exporter's data");
	/* offset is relative to the segment start */
	void *p2 = attach_ok(apid, 2 * PAGE, 2 * PAGE, NULL);
	ck_assert_msg(rd64(p2) == st_pattern(1, 2 * PAGE / 8), "offset 2 pages reads the wrong word");
	/* size rounded up to a page: the whole last page is reachable */
	void *p3 = attach_ok(apid, PAGE, 100, NULL);
	ck_assert_msg(rd64((char *)p3 + PAGE - 8) == st_pattern(1, (2 * PAGE - 8) / 8),
		      "attach of 100 bytes: end of the page not mapped with the exporter's data");

	/* fixed vaddr honoured */
	void *hole = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(hole, MAP_FAILED);
	ck_assert_int_eq(munmap(hole, 16 * PAGE), 0);
	void *want = (char *)hole + 4 * PAGE;
	void *p4 = attach_ok(apid, 0, SEG_LEN, want);
	ck_assert_msg(p4 == want, "fixed vaddr %p not honoured: got %p", want, p4);
	ck_assert_msg(st_check(p4, SEG_LEN, 1) == -1, "fixed-vaddr attachment has wrong data");
	/* writes through one attachment are visible to the exporter */
	*(volatile uint64_t *)((char *)p4 + 8) = 0xfeedfacecafebeefULL;
	ck_assert_int_eq(peer_ok(&e.p, "rd %#lx", e.buf + 8), (long long)0xfeedfacecafebeefULL);
	*(volatile uint64_t *)((char *)p4 + 8) = st_pattern(1, 1);

	/* fixed vaddr overlapping an existing mapping */
	void *busy = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(busy, MAP_FAILED);
	CK_ATTACH_ERRNO(attach(apid, 0, PAGE, busy), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 0, SEG_LEN, (char *)busy - PAGE), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 0, PAGE, p4), EINVAL); /* over another attachment */
	/* unaligned offset / vaddr, negative offset, past the segment end */
	CK_ATTACH_ERRNO(attach(apid, 100, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, PAGE + 8, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 0, PAGE, (char *)hole + 8 * PAGE + 16), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, -(off_t)PAGE, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, SEG_LEN, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 8 * SEG_LEN, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 2 * PAGE, 3 * PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 0, SEG_LEN + 1, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(apid, 0, 0, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(0, 0, PAGE, NULL), EINVAL);
	CK_ATTACH_ERRNO(attach(-5, 0, PAGE, NULL), EINVAL);

	/* the apid of another process: EACCES there */
	ck_assert_int_eq(peer_err(&e.p, "attach %lld 0 %lu 0", (long long)apid, PAGE), EACCES);
	ck_assert_int_eq(peer_err(&e.p, "release %lld", (long long)apid), EACCES);
	/* and its own apids still work here */
	ck_assert_msg(rd64(p) == st_pattern(1, 0), "attachment broken after foreign use of the apid");

	/* segment removed: ENOENT (remove waits for the importers' ACK) */
	peer_ok(&e.p, "remove %lld", (long long)e.seg);
	CK_ATTACH_ERRNO(attach(apid, 0, PAGE, NULL), ENOENT);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_detach(p2), 0);
	ck_assert_int_eq(xpmem_detach(p3), 0);
	ck_assert_int_eq(xpmem_detach(p4), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e.p);
}
END_TEST

START_TEST(t_detach)
{
	struct exp e;
	exp_start(&e, 0600);
	xpmem_apid_t apid = get_ok(e.seg, XPMEM_RDWR);
	/* two attachments at different offsets (attachments of the same range
	 * may legitimately share an address) */
	char *p = attach_ok(apid, 0, 2 * PAGE, NULL);
	char *q = attach_ok(apid, 2 * PAGE, 2 * PAGE, NULL);
	ck_assert_msg(p + 2 * PAGE <= q || q + 2 * PAGE <= p, "attachments overlap: %p %p", (void *)p, (void *)q);
	/* an address inside the attachment detaches the whole attachment */
	ck_assert_int_eq(xpmem_detach(p + PAGE + 17), 0);
	CK_FAIL_ERRNO(xpmem_detach(p), EINVAL);
	CK_FAIL_ERRNO(xpmem_detach(p + PAGE), EINVAL);
	/* the other attachment is untouched */
	ck_assert_msg(rd64(q) == st_pattern(1, 2 * PAGE / 8), "second attachment lost its data");
	for (size_t w = 0; w < 2 * PAGE / 8; w++)
		ck_assert_msg(((uint64_t *)q)[w] == st_pattern(1, 2 * PAGE / 8 + w), "second attachment word %zu wrong", w);
	ck_assert_int_eq(xpmem_detach(q), 0);
	CK_FAIL_ERRNO(xpmem_detach(q), EINVAL);
	/* never attached */
	void *m = malloc(3 * PAGE);
	int local = 0;
	CK_FAIL_ERRNO(xpmem_detach(m), EINVAL);
	CK_FAIL_ERRNO(xpmem_detach(&local), EINVAL);
	CK_FAIL_ERRNO(xpmem_detach((void *)(uintptr_t)0x10000), EINVAL);
	free(m);
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e.p);
}
END_TEST

START_TEST(t_release)
{
	struct exp e;
	exp_start(&e, 0600);
	xpmem_apid_t apid = get_ok(e.seg, XPMEM_RDWR);
	xpmem_apid_t other = get_ok(e.seg, XPMEM_RDWR);
	void *p = attach_ok(apid, 0, SEG_LEN, NULL);
	void *hole = mmap(NULL, 8 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(hole, MAP_FAILED);
	ck_assert_int_eq(munmap(hole, 8 * PAGE), 0);
	void *f = attach_ok(apid, PAGE, 2 * PAGE, (char *)hole + 2 * PAGE);
	void *o = attach_ok(other, 0, SEG_LEN, NULL);
	ck_assert(rd64(p) == st_pattern(1, 0) && rd64(f) == st_pattern(1, PAGE / 8));

	ck_assert_int_eq(xpmem_release(apid), 0);
	/* its attachments are gone */
	CK_FAIL_ERRNO(xpmem_detach(p), EINVAL);
	CK_FAIL_ERRNO(xpmem_detach(f), EINVAL);
	unsigned char v;
	int sig = tu_probe_read(f, &v);
	ck_assert_msg(sig == SIGSEGV || sig == SIGBUS,
		      "touching a fixed-vaddr attachment after release: signal %d, want SIGSEGV/SIGBUS", sig);
	sig = tu_probe_read(p, &v);
	ck_assert_msg(sig == SIGSEGV || sig == SIGBUS,
		      "touching an attachment after release: signal %d, want SIGSEGV/SIGBUS", sig);
	/* the other apid's attachment is untouched */
	ck_assert_msg(st_check(o, SEG_LEN, 1) == -1, "release of one apid broke another apid's attachment");
	/* second release */
	errno = 0;
	ck_assert_int_eq(xpmem_release(apid), -1);
	ck_assert_msg(errno == EINVAL || errno == ENOENT, "second release errno %d (%s), want EINVAL/ENOENT",
		      errno, strerror(errno));
	errno = 0;
	ck_assert_msg(attach(apid, 0, PAGE, NULL) == ATTACH_FAILED && (errno == EINVAL || errno == ENOENT),
		      "attach with a released apid: errno %d (%s), want EINVAL/ENOENT", errno, strerror(errno));
	CK_FAIL_ERRNO(xpmem_release(0), EINVAL);
	CK_FAIL_ERRNO(xpmem_release(-3), EINVAL);
	ck_assert_int_eq(xpmem_release(other), 0);
	peer_stop(&e.p);
}
END_TEST

START_TEST(t_remove)
{
	struct exp e;
	exp_start_f(&e, 0666, PEER_PLAIN);
	/* not the owner */
	CK_FAIL_ERRNO(xpmem_remove(e.seg), EACCES);
	CK_FAIL_ERRNO(xpmem_remove(e.all), EACCES);
	CK_FAIL_ERRNO(xpmem_remove(0), EINVAL);
	CK_FAIL_ERRNO(xpmem_remove(-2), EINVAL);
	/* the segment still works after the refused remove */
	xpmem_apid_t a = get_ok(e.seg, XPMEM_RDWR);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_ok(&e.p, "remove %lld", (long long)e.seg);
	ck_assert_int_eq(peer_err(&e.p, "remove %lld", (long long)e.seg), ENOENT);
	ck_assert_int_eq(peer_err(&e.p, "remove %lld", (long long)e.seg + 1000), ENOENT);
	peer_ok(&e.p, "remove %lld", (long long)e.all);
	ck_assert_int_eq(peer_err(&e.p, "remove %lld", (long long)e.all), ENOENT);
	/* our own segment */
	xpmem_segid_t s = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(s, 0);
	ck_assert_int_eq(peer_err(&e.p, "remove %lld", (long long)s), EACCES);
	ck_assert_int_eq(xpmem_remove(s), 0);
	CK_FAIL_ERRNO(xpmem_remove(s), ENOENT);
	peer_stop(&e.p);
}
END_TEST

/* A process may get and attach its own segid (arena exporter). */
START_TEST(t_own_segid_arena)
{
	struct peer p;
	peer_start(&p, PEER_ARENA);
	uintptr_t buf = (uintptr_t)peer_ok(&p, "malloc %lu", SEG_LEN);
	peer_ok(&p, "fill %#lx %lu 7", buf, SEG_LEN);
	long long seg = peer_ok(&p, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	long long apid = peer_ok(&p, "get %lld 2", seg);
	ck_assert_int_gt(apid, 0);
	uintptr_t at = (uintptr_t)peer_ok(&p, "attach %lld %#lx %lu 0", apid, buf, SEG_LEN);
	ck_assert_msg(at % PAGE == 0, "attach returned unaligned %#lx", at);
	ck_assert_msg(strcmp(peer_cmd(&p, "check %#lx %lu 7", at, SEG_LEN), "ok") == 0,
		      "own attachment does not show the buffer");
	peer_ok(&p, "wr %#lx 12345", at + 3 * PAGE + 16);
	ck_assert_int_eq(peer_ok(&p, "rd %#lx", buf + 3 * PAGE + 16), 12345);
	peer_ok(&p, "wr %#lx 777", buf + 64);
	ck_assert_int_eq(peer_ok(&p, "rd %#lx", at + 64), 777);
	peer_ok(&p, "detach %#lx", at);
	peer_ok(&p, "release %lld", apid);
	peer_ok(&p, "remove %lld", seg);
	peer_stop(&p);
}
END_TEST

/* Own segid without the arena: the memory is converted in place and shared
 * both ways, or, where the process cannot convert (no userfaultfd), a hole
 * (SIGBUS). */
START_TEST(t_own_segid_plain)
{
	int level = uxpmem_export_level(NULL, 0);
	void *buf = mmap(NULL, SEG_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);
	memset(buf, 0x5a, SEG_LEN);
	xpmem_segid_t s = xpmem_make(buf, SEG_LEN, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(s, 0);
	xpmem_apid_t a = get_ok(s, XPMEM_RDWR);
	void *p = attach_ok(a, 0, SEG_LEN, NULL);
	unsigned char v = 0;
	int sig = tu_probe_read(p, &v);
	if (level == UXPMEM_EXPORT_ARENA) {
		ck_assert_msg(sig == SIGBUS, "touching own non-arena memory without userfaultfd: "
			      "signal %d (value %#x), want SIGBUS (a hole)", sig, v);
	} else {
		ck_assert_msg(sig == 0 && v == 0x5a, "own non-arena memory through an attachment: "
			      "signal %d, value %#x, want 0x5a", sig, v);
		((volatile unsigned char *)p)[SEG_LEN - 1] = 0xa5;
		ck_assert_int_eq(((volatile unsigned char *)buf)[SEG_LEN - 1], 0xa5);
		((volatile unsigned char *)buf)[7] = 0x11;
		ck_assert_int_eq(((volatile unsigned char *)p)[7], 0x11);
	}
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	ck_assert_int_eq(xpmem_remove(s), 0);
}
END_TEST

START_TEST(t_holes)
{
	struct exp e;
	exp_start(&e, 0600);
	xpmem_apid_t apid = get_ok(e.all, XPMEM_RDWR);
	/* a huge window over mostly unmapped exporter memory */
	void *w = attach_ok(apid, 0x10000, (size_t)1 << 40, NULL);
	int sig = st_wait_signal(w, 0);
	ck_assert_msg(sig == SIGBUS, "touching a hole (exporter address 0x10000): signal %d, want SIGBUS", sig);
	ck_assert_int_eq(xpmem_detach(w), 0);
	/* an 8 MiB-aligned window around the arena buffer: holes allowed, the
	 * buffer reads right */
	uintptr_t base = e.buf & ~((uintptr_t)(8 * MiB) - 1);
	void *w2 = attach_ok(apid, (off_t)base, 16 * MiB, NULL);
	ck_assert_msg(st_check((char *)w2 + (e.buf - base), SEG_LEN, 1) == -1,
		      "arena buffer seen through an aligned window has wrong data");
	ck_assert_int_eq(xpmem_detach(w2), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e.p);

	/* an exporter without the arena: its heap is converted in place and
	 * seen exactly (a hole where the importer's level says the exporter's
	 * would be: same machine, same privileges) */
	int level = uxpmem_export_level(NULL, 0);
	struct peer p;
	peer_start(&p, PEER_PLAIN);
	uintptr_t buf = (uintptr_t)peer_ok(&p, "malloc %lu", SEG_LEN);
	peer_ok(&p, "fill %#lx %lu 3", buf, SEG_LEN);
	long long all = peer_ok(&p, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	long long seg = peer_ok(&p, "make %#lx %lu 0600", buf, SEG_LEN);
	xpmem_apid_t a1 = get_ok(all, XPMEM_RDWR), a2 = get_ok(seg, XPMEM_RDWR);
	void *h1 = attach_ok(a1, (off_t)buf, SEG_LEN, NULL);
	void *h2 = attach_ok(a2, 0, SEG_LEN, NULL);
	unsigned char v;
	if (level == UXPMEM_EXPORT_ARENA) {
		sig = tu_probe_read(h1, &v);
		ck_assert_msg(sig == SIGBUS, "non-arena heap without userfaultfd (whole-space segment): signal %d, want SIGBUS", sig);
		sig = tu_probe_read((char *)h2 + PAGE, &v);
		ck_assert_msg(sig == SIGBUS, "non-arena heap without userfaultfd (own segment): signal %d, want SIGBUS", sig);
	} else {
		ck_assert_msg(st_check(h1, SEG_LEN, 3) == -1, "non-arena heap (whole-space segment) read wrong");
		ck_assert_msg(st_check(h2, SEG_LEN, 3) == -1, "non-arena heap (own segment) read wrong");
	}
	ck_assert_int_eq(xpmem_detach(h1), 0);
	ck_assert_int_eq(xpmem_detach(h2), 0);
	ck_assert_int_eq(xpmem_release(a1), 0);
	ck_assert_int_eq(xpmem_release(a2), 0);
	peer_stop(&p);
}
END_TEST

/* remove -> importers' later touches SIGBUS, later gets ENOENT, detach and
 * release still 0. */
START_TEST(t_remove_revokes)
{
	struct exp e;
	exp_start(&e, 0600);
	xpmem_apid_t a = get_ok(e.seg, XPMEM_RDWR), b = get_ok(e.all, XPMEM_RDWR);
	void *p = attach_ok(a, 0, SEG_LEN, NULL);
	void *q = attach_ok(b, (off_t)e.buf, SEG_LEN, NULL);
	ck_assert(st_check(p, SEG_LEN, 1) == -1 && st_check(q, SEG_LEN, 1) == -1);

	peer_ok(&e.p, "remove %lld", (long long)e.seg);
	long long t0 = st_now_ms();
	int sig = st_wait_signal(p, 2000);
	ck_assert_msg(sig == SIGBUS, "after remove, touching the attachment: %s %d after %lld ms (want SIGBUS within 2 s)",
		      sig ? "signal" : "no signal", sig, st_now_ms() - t0);
	sig = st_wait_signal((char *)p + 3 * PAGE, 0);
	ck_assert_msg(sig == SIGBUS, "after remove, last page: signal %d, want SIGBUS", sig);
	CK_FAIL_ERRNO(xpmem_get(e.seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	CK_ATTACH_ERRNO(attach(a, 0, PAGE, NULL), ENOENT);
	/* the other segment (whole space) is not affected */
	ck_assert_msg(st_check(q, SEG_LEN, 1) == -1, "removing one segment broke another segment's attachment");
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);

	peer_ok(&e.p, "remove %lld", (long long)e.all);
	sig = st_wait_signal(q, 2000);
	ck_assert_msg(sig == SIGBUS, "after remove of the whole-space segment: signal %d, want SIGBUS", sig);
	CK_FAIL_ERRNO(xpmem_get(e.all, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), ENOENT);
	ck_assert_int_eq(xpmem_detach(q), 0);
	ck_assert_int_eq(xpmem_release(b), 0);
	peer_stop(&e.p);
}
END_TEST

/* An importer child: get, attach, check the first page; mode 0: release and
 * exit, 1: exit without release, 2: report and wait to be killed. */
static int importer_child(xpmem_segid_t seg, uintptr_t buf, int mode, int wfd)
{
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (a <= 0)
		return 10;
	struct xpmem_addr ad = { a, (off_t)buf };
	void *p = xpmem_attach(ad, SEG_LEN, NULL);
	if (p == ATTACH_FAILED)
		return 11;
	unsigned char v;
	if (tu_probe_read(p, &v))
		return 12;
	if (*(volatile uint64_t *)p != st_pattern(1, 0) ||
	    ((volatile uint64_t *)p)[SEG_LEN / 8 - 1] != st_pattern(1, SEG_LEN / 8 - 1))
		return 13;
	if (mode == 0 && (xpmem_detach(p) || xpmem_release(a)))
		return 14;
	if (mode == 2) {
		char c = 'r';
		if (write(wfd, &c, 1) != 1)
			return 15;
		pause();
	}
	return 0;
}

static void run_importer(xpmem_segid_t seg, uintptr_t buf, int i)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	int mode = i % 3;
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		alarm(tu_guard_s(20));
		_exit(importer_child(seg, buf, mode, fds[1]));
	}
	close(fds[1]);
	if (mode == 2) {
		char c;
		struct timeval tv = { tu_guard_s(10), 0 };
		fd_set rs;
		FD_ZERO(&rs);
		FD_SET(fds[0], &rs);
		int r = select(fds[0] + 1, &rs, NULL, NULL, &tv);
		if (r == 1 && read(fds[0], &c, 1) == 1)
			kill(pid, SIGKILL);
	}
	close(fds[0]);
	int st = tu_wait_child(pid, 10000);
	ck_assert_msg(st != -1, "importer %d hung", i);
	if (mode == 2)
		ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "importer %d (killed) status %#x", i, st);
	else
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "importer %d (mode %d) status %#x (exit %d)", i,
			      mode, st, WEXITSTATUS(st));
}

START_TEST(t_importer_exit)
{
	struct exp e;
	exp_start(&e, 0600);
	run_importer(e.all, e.buf, 0);
	int base = -1;
	/* the exporter drops the connection asynchronously: let it settle */
	for (long long end = st_now_ms() + tu_guard_ms(2000); st_now_ms() < end; st_sleep_ms(20)) {
		int n = (int)peer_ok(&e.p, "fds");
		if (n == base)
			break;
		base = n;
	}
	for (int i = 1; i <= 50; i++)
		run_importer(e.all, e.buf, i);
	int n = -1;
	for (long long end = st_now_ms() + tu_guard_ms(2000); st_now_ms() < end; st_sleep_ms(20)) {
		n = (int)peer_ok(&e.p, "fds");
		if (n <= base)
			break;
	}
	ck_assert_msg(n <= base, "exporter descriptors grew from %d to %d after 50 importers came and went", base, n);
	/* still serving */
	run_importer(e.all, e.buf, 51);
	ck_assert(xpmem_get(e.seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL) > 0);
	peer_stop(&e.p);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-semantics");
	TCase *tc = tcase_create("table");
	tcase_set_timeout(tc, tu_guard_s(20));
	tcase_add_test(tc, t_version);
	tcase_add_test(tc, t_make);
	tcase_add_test(tc, t_get_errors);
	tcase_add_test(tc, t_attach);
	tcase_add_test(tc, t_detach);
	/* valgrind reports the deliberate read of released memory, and refuses
	 * the 1 TiB window of t_holes: both run in the plain build */
	if (!tu_under_valgrind())
		tcase_add_test(tc, t_release);
	tcase_add_test(tc, t_remove);
	tcase_add_test(tc, t_own_segid_arena);
	tcase_add_test(tc, t_own_segid_plain);
	if (!tu_under_valgrind())
		tcase_add_test(tc, t_holes);
	tcase_add_test(tc, t_remove_revokes);
	tcase_add_test(tc, t_importer_exit);
	suite_add_tcase(s, tc);
	return st_run(s);
}
