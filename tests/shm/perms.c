/* perms.c - grants never exceed the requester's permissions; a read-only
 * grant cannot be upgraded.  Cross-uid cases run as root and drop a peer to
 * "nobody"; they are skipped (with a message) when not root. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "shmtest.h"
#include "testutil.h"

#define LEN (16 * PAGE)

struct setup {
	struct peer e, i;
	uintptr_t buf;
	long long seg;
};

static int need_root(void)
{
	if (getuid() != 0) {
		fprintf(stderr, "SKIP: cross-uid permission test needs root\n");
		return 0;
	}
	return 1;
}

/* exporter (arena) with a filled buffer and make(0, MAXADDR, mode);
 * importer peer dropped to nobody.  drop_exporter: the exporter drops to
 * nobody too (same non-root uid). */
static void setup(struct setup *s, int mode, int drop_exporter)
{
	peer_start(&s->e, PEER_ARENA);
	if (drop_exporter)
		ck_assert_int_gt(peer_ok(&s->e, "drop"), 0);
	s->buf = (uintptr_t)peer_ok(&s->e, "malloc %lu", LEN);
	peer_ok(&s->e, "fill %#lx %lu 5", s->buf, LEN);
	s->seg = peer_ok(&s->e, "make 0 %#lx %#o", (unsigned long)XPMEM_MAXADDR_SIZE, mode);
	peer_start(&s->i, PEER_PLAIN);
	ck_assert_int_gt(peer_ok(&s->i, "drop"), 0);
}

static void teardown(struct setup *s)
{
	peer_stop(&s->i);
	peer_stop(&s->e);
}

/* importer peer: RDONLY grant behaviour (read ok, store SIGSEGV, mprotect
 * RW EACCES) */
static void check_rdonly_grant(struct peer *imp, struct peer *exp, long long seg, uintptr_t buf)
{
	long long apid = peer_ok(imp, "get %lld %d", seg, XPMEM_RDONLY);
	ck_assert_int_gt(apid, 0);
	const char *r = peer_cmd(imp, "attach %lld %#lx %lu 0", apid, buf, LEN);
	long long at = 0;
	ck_assert_msg(sscanf(r, "ok %lli", &at) == 1, "attach with an RDONLY apid: %s (must succeed: reference kernels' "
		      "RDONLY bug is not to be copied)", r);
	r = peer_cmd(imp, "check %#llx %lu 5", at, LEN);
	ck_assert_msg(strcmp(r, "ok") == 0, "read-only grant reads wrong data: %s", r);
	r = peer_cmd(imp, "wr %#llx 99", at + 8);
	ck_assert_msg(strcmp(r, "sig 11") == 0, "store through a read-only grant: '%s', want SIGSEGV (sig 11)", r);
	ck_assert_int_eq(peer_ok(exp, "rd %#lx", buf + 8), (long long)st_pattern(5, 1));
	int e = peer_err(imp, "mprotect %#llx %lu %d", at, PAGE, PROT_READ | PROT_WRITE);
	ck_assert_msg(e == EACCES, "mprotect(PROT_READ|PROT_WRITE) on a read-only attachment: errno %d (%s), want EACCES",
		      e, strerror(e));
	r = peer_cmd(imp, "wr %#llx 99", at + 8);
	ck_assert_msg(strcmp(r, "sig 11") == 0, "store after refused mprotect: '%s', want SIGSEGV", r);
	/* the exporter's later writes are seen through the read-only grant */
	peer_ok(exp, "wr %#lx 4242", buf + 16);
	ck_assert_int_eq(peer_ok(imp, "rd %#llx", at + 16), 4242);
	peer_ok(exp, "wr %#lx %llu", buf + 16, (unsigned long long)st_pattern(5, 2));
	peer_ok(imp, "detach %#llx", at);
	peer_ok(imp, "release %lld", apid);
}

START_TEST(t_cross_0600)
{
	if (!need_root())
		return;
	struct setup s;
	setup(&s, 0600, 0);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s.seg, XPMEM_RDWR), EACCES);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s.seg, XPMEM_RDONLY), EACCES);
	teardown(&s);
}
END_TEST

START_TEST(t_cross_0666)
{
	if (!need_root())
		return;
	struct setup s;
	setup(&s, 0666, 0);
	long long apid = peer_ok(&s.i, "get %lld %d", s.seg, XPMEM_RDWR);
	ck_assert_int_gt(apid, 0);
	long long at = peer_ok(&s.i, "attach %lld %#lx %lu 0", apid, s.buf, LEN);
	const char *r = peer_cmd(&s.i, "check %#llx %lu 5", at, LEN);
	ck_assert_msg(strcmp(r, "ok") == 0, "0666 cross-uid grant reads wrong data: %s", r);
	peer_ok(&s.i, "wr %#llx 31337", at + 24);
	ck_assert_int_eq(peer_ok(&s.e, "rd %#lx", s.buf + 24), 31337);
	peer_ok(&s.i, "detach %#llx", at);
	peer_ok(&s.i, "release %lld", apid);
	/* RDONLY on 0666 is admitted too, and is read-only */
	peer_ok(&s.e, "wr %#lx %llu", s.buf + 24, (unsigned long long)st_pattern(5, 3));
	check_rdonly_grant(&s.i, &s.e, s.seg, s.buf);
	teardown(&s);
}
END_TEST

START_TEST(t_cross_0644)
{
	if (!need_root())
		return;
	struct setup s;
	setup(&s, 0644, 0);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s.seg, XPMEM_RDWR), EACCES);
	check_rdonly_grant(&s.i, &s.e, s.seg, s.buf);
	teardown(&s);
}
END_TEST

/* Same non-root uid on both sides: owner bits apply (no uid-0 bypass). */
START_TEST(t_same_uid_owner_bits)
{
	if (!need_root())
		return;
	struct setup s;
	setup(&s, 0200, 1);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s.seg, XPMEM_RDONLY), EACCES);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s.seg, XPMEM_RDWR), EACCES);
	long long s4 = peer_ok(&s.e, "make %#lx %lu 0400", s.buf, LEN);
	long long s6 = peer_ok(&s.e, "make %#lx %lu 0600", s.buf, LEN);
	ck_assert_int_eq(peer_err(&s.i, "get %lld %d", s4, XPMEM_RDWR), EACCES);
	long long a = peer_ok(&s.i, "get %lld %d", s4, XPMEM_RDONLY);
	ck_assert_int_gt(a, 0);
	peer_ok(&s.i, "release %lld", a);
	a = peer_ok(&s.i, "get %lld %d", s6, XPMEM_RDWR);
	ck_assert_int_gt(a, 0);
	peer_ok(&s.i, "release %lld", a);
	teardown(&s);
}
END_TEST

/* Same uid (this process and the exporter), RDONLY grant. */
START_TEST(t_same_uid_rdonly)
{
	struct peer e;
	peer_start(&e, PEER_ARENA);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %lu", LEN);
	peer_ok(&e, "fill %#lx %lu 5", buf, LEN);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	long long seg2 = peer_ok(&e, "make %#lx %lu 0600", buf, LEN);
	/* through another peer process ... */
	struct peer i;
	peer_start(&i, PEER_PLAIN);
	check_rdonly_grant(&i, &e, seg, buf);
	peer_stop(&i);
	/* ... and in this process, on a small segment */
	errno = 0;
	xpmem_apid_t a = xpmem_get(seg2, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(a > 0, "get RDONLY errno %d", errno);
	struct xpmem_addr ad = { a, 0 };
	char *p = xpmem_attach(ad, LEN, NULL);
	ck_assert_msg(p != ATTACH_FAILED, "attach RDONLY errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(st_check(p, LEN, 5) == -1, "RDONLY attachment data wrong");
	int sig = tu_probe_write(p + 64, 1);
	ck_assert_msg(sig == SIGSEGV, "store through a read-only attachment: signal %d, want SIGSEGV", sig);
	errno = 0;
	ck_assert_int_eq(mprotect(p, PAGE, PROT_READ | PROT_WRITE), -1);
	ck_assert_msg(errno == EACCES, "mprotect RW on RDONLY attachment errno %d (%s), want EACCES", errno, strerror(errno));
	ck_assert_int_eq(mprotect(p, LEN, PROT_READ | PROT_WRITE | PROT_EXEC) == -1 && errno == EACCES, 1);
	sig = tu_probe_write(p + 64, 1);
	ck_assert_msg(sig == SIGSEGV, "store after refused mprotect: signal %d", sig);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-perms");
	TCase *tc = tcase_create("perms");
	tcase_set_timeout(tc, tu_guard_s(20));
	tcase_add_test(tc, t_cross_0600);
	tcase_add_test(tc, t_cross_0666);
	tcase_add_test(tc, t_cross_0644);
	tcase_add_test(tc, t_same_uid_owner_bits);
	tcase_add_test(tc, t_same_uid_rdonly);
	suite_add_tcase(s, tc);
	return st_run(s);
}
