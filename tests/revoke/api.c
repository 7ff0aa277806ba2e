/* api.c - argument checking of the revocation API, in this process (the
 * importer) with an rvpeer exporter where an apid is needed:
 * uxpmem_revoke_handler(-1) EINVAL, unknown/released/another process's
 * apid ENOENT, uxpmem_revoke_poll(NULL, 1) and max < 1 EINVAL,
 * uxpmem_revoke_fd() stable and not readable without events, events
 * before the first uxpmem_revoke_fd() not queued. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "rvtest.h"

static void cb(const struct uxpmem_revoke_event *ev, void *arg)
{
	(void)ev;
	(void)arg;
}

#define EXPECT_FAIL(call, err)                                                                     \
	do {                                                                                       \
		errno = 0;                                                                         \
		int r_ = (call);                                                                   \
		int e_ = errno;                                                                    \
		ck_assert_msg(r_ == -1 && e_ == (err), "%s returned %d errno %d (%s), want -1 %s", \
			      #call, r_, e_, strerror(e_), #err);                                  \
	} while (0)

START_TEST(t_invalid)
{
	struct uxpmem_revoke_event ev[2];
	alarm(tu_guard_s(20));
	EXPECT_FAIL(uxpmem_revoke_handler(-1, cb, NULL), EINVAL);
	EXPECT_FAIL(uxpmem_revoke_handler(-1, NULL, NULL), EINVAL);
	EXPECT_FAIL(uxpmem_revoke_handler(12345, cb, NULL), ENOENT);
	EXPECT_FAIL(uxpmem_revoke_handler(12345, NULL, NULL), ENOENT);
	EXPECT_FAIL(uxpmem_revoke_poll(NULL, 1), EINVAL);
	EXPECT_FAIL(uxpmem_revoke_poll(ev, 0), EINVAL);
	EXPECT_FAIL(uxpmem_revoke_poll(ev, -3), EINVAL);
	EXPECT_FAIL(uxpmem_revoke_poll(NULL, 0), EINVAL);
	ck_assert_int_eq(uxpmem_revoke_handler(0, cb, NULL), 0);
	ck_assert_int_eq(uxpmem_revoke_handler(0, NULL, NULL), 0);
	/* before and after the queue exists: nothing to dequeue */
	ck_assert_int_eq(uxpmem_revoke_poll(ev, 2), 0);
	int fd = uxpmem_revoke_fd();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(uxpmem_revoke_fd(), fd);
	struct pollfd p = { fd, POLLIN, 0 };
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	ck_assert_int_eq(uxpmem_revoke_poll(ev, 2), 0);
	alarm(0);
}
END_TEST

START_TEST(t_apid_enoent)
{
	struct peer e, other;
	alarm(tu_guard_s(30));
	rv_start(&e, 0);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %lu 0600", 16 * PAGE);
	xpmem_apid_t ap = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(ap > 0, "xpmem_get: %s", strerror(errno));
	ck_assert_int_eq(uxpmem_revoke_handler(ap, cb, NULL), 0);
	ck_assert_int_eq(uxpmem_revoke_handler(ap, NULL, NULL), 0);
	/* another process's apid is not ours */
	rv_start(&other, 0);
	long long theirs = rv_ok(&other, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	ck_assert(theirs > 0 && theirs != ap);
	EXPECT_FAIL(uxpmem_revoke_handler(theirs, cb, NULL), ENOENT);
	/* released: gone */
	ck_assert_int_eq(xpmem_release(ap), 0);
	EXPECT_FAIL(uxpmem_revoke_handler(ap, cb, NULL), ENOENT);
	EXPECT_FAIL(uxpmem_revoke_handler(ap, NULL, NULL), ENOENT);
	rv_stop(&other);
	rv_stop(&e);
	alarm(0);
}
END_TEST

/* "The first call creates the queue; events before it are not queued." */
START_TEST(t_no_queue_before_fd)
{
	struct peer e;
	struct uxpmem_revoke_event ev[2];
	alarm(tu_guard_s(30));
	rv_start(&e, 0);
	long long s1 = rv_ok(&e, NULL, 0, "make 0 %lu 0600", 16 * PAGE);
	long long s2 = rv_ok(&e, NULL, 0, "make 0 %lu 0600", 32 * PAGE);
	xpmem_apid_t a1 = xpmem_get(s1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	xpmem_apid_t a2 = xpmem_get(s2, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a1 > 0 && a2 > 0);
	rv_ok(&e, NULL, 0, "remove %lld", s1); /* acknowledged after the event was emitted */
	int fd = uxpmem_revoke_fd();
	ck_assert_int_ge(fd, 0);
	struct pollfd p = { fd, POLLIN, 0 };
	ck_assert_int_eq(poll(&p, 1, 200), 0);
	ck_assert_int_eq(uxpmem_revoke_poll(ev, 2), 0);
	/* and after it, they are */
	rv_ok(&e, NULL, 0, "remove %lld", s2);
	ck_assert_int_eq(poll(&p, 1, tu_guard_ms(5000)), 1);
	ck_assert_int_eq(uxpmem_revoke_poll(ev, 2), 1);
	ck_assert_int_eq(ev[0].apid, a2);
	ck_assert_int_eq(ev[0].segid, s2);
	ck_assert_int_eq(ev[0].length, 32 * PAGE);
	/* empty again: not readable */
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	ck_assert_int_eq(xpmem_release(a1), 0);
	ck_assert_int_eq(xpmem_release(a2), 0);
	rv_stop(&e);
	alarm(0);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("revoke-api");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, tu_guard_s(35));
	tcase_add_test(tc, t_invalid);
	tcase_add_test(tc, t_apid_enoent);
	tcase_add_test(tc, t_no_queue_before_fd);
	suite_add_tcase(s, tc);
	return st_run(s);
}
