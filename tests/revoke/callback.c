/* callback.c - what a revocation callback may do and who gets events:
 *   - a callback detaches its attachments, releases the revoked apid
 *     (both return 0) and gets, attaches and reads another live segment
 *     inside itself, without deadlock;
 *   - an apid released before its exporter removes gets no event, in any
 *     form, while another apid of the same segment does;
 *   - an apid released after its event was emitted but before it was
 *     delivered gets nothing (slow callback ahead of it; fd form polled
 *     after the release);
 *   - a handler unregistered (cb NULL) leaves the apid to the default;
 *   - a forked child of an importer gets no events of its parent's apids
 *     (but its own apid's event, once).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "rvtest.h"

#define SEG (1 * MiB)
#define WAIT_MS 5000

/* An exporter with an arena buffer of size len filled with seed, exported. */
static long long exporter(struct peer *e, size_t len, int seed, unsigned long *buf)
{
	rv_start(e, 1);
	*buf = (unsigned long)rv_ok(e, NULL, 0, "malloc %zu", len);
	rv_ok(e, NULL, 0, "fill %#lx %zu %d", *buf, len, seed);
	return rv_ok(e, NULL, 0, "make %#lx %zu 0600", *buf, len);
}

static int rd_word(struct peer *p, unsigned long addr, unsigned long long *val)
{
	const char *r = peer_cmd(p, "rd %#lx", addr);
	int sig = 0;
	if (sscanf(r, "sig %d", &sig) == 1)
		return sig;
	ck_assert_msg(sscanf(r, "ok %llu", val) == 1, "rd %#lx answered '%s'", addr, r);
	return 0;
}

START_TEST(t_callback_cleans_up)
{
	struct peer e1, e2, im;
	unsigned long b1, b2;
	unsigned long long w;
	alarm(tu_guard_s(40));
	long long segA = exporter(&e1, SEG, 7, &b1);
	long long segC = exporter(&e2, 16 * PAGE, 11, &b2);
	rv_start(&im, 0);
	rv_ok(&im, NULL, 0, "handler 0 def rec");
	long long apA = rv_ok(&im, NULL, 0, "get %lld %d", segA, XPMEM_RDWR);
	rv_ok(&im, NULL, 0, "attach %lld 0 %lu 0", apA, SEG);
	rv_ok(&im, NULL, 0, "attach %lld %lu %lu 1", apA, 2 * PAGE, 4 * PAGE);
	rv_ok(&im, NULL, 0, "next %lld %lu 11", segC, 16 * PAGE);
	rv_ok(&im, NULL, 0, "handler %lld clean clean", apA);

	rv_ok(&e1, NULL, 0, "remove %lld", segA);
	ck_assert_msg(rv_ok(&im, NULL, 0, "wait clean 1 %d", WAIT_MS) == 1, "callback did not run");
	long long v[6];
	const char *r = peer_cmd(&im, "cleanres");
	ck_assert_msg(strncmp(r, "ok", 2) == 0, "callback did not finish within 10 s (deadlock?): %s", r);
	rv_ok(&im, v, 6, "cleanres");
	ck_assert_msg(v[0] == 0, "%lld xpmem_detach calls in the callback failed", v[0]);
	ck_assert_msg(v[1] == 0, "xpmem_release of the revoked apid in its callback: %lld errno %lld", v[1], v[2]);
	ck_assert_msg(v[3] > 0, "xpmem_get of a live segment in the callback failed");
	ck_assert_msg(v[4] == 1 && v[5] == 1, "attach %lld / data %lld of the new segment in the callback",
		      v[4], v[5]);
	long long apC = v[3];

	/* released in the callback indeed; the new apid works outside it */
	ck_assert_int_eq(peer_err(&im, "release %lld", apA), ENOENT);
	ck_assert_int_eq(peer_err(&im, "handler %lld x rec", apA), ENOENT);
	unsigned long c = (unsigned long)rv_ok(&im, NULL, 0, "attach %lld %lu %lu 0", apC, PAGE, PAGE);
	ck_assert_int_eq(rd_word(&im, c, &w), 0);
	ck_assert(w == st_pattern(11, PAGE / 8));

	/* exactly that one event; the default handler had none of it; and the
	 * exporter's exit now revokes nothing of the released apid */
	rv_stop(&e1);
	st_sleep_ms(500);
	ck_assert_int_eq(rv_count(&im, "clean"), 1);
	ck_assert_int_eq(rv_count(&im, "def"), 0);

	/* the apid obtained inside the callback is revoked like any other */
	rv_ok(&e2, NULL, 0, "remove %lld", segC);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait def 1 %d", WAIT_MS), 1);
	struct rvev ev;
	rv_ev(&im, "def", 0, &ev);
	ck_assert_int_eq(ev.apid, apC);
	ck_assert_int_eq(ev.segid, segC);
	ck_assert_int_eq(ev.reason, UXPMEM_REVOKE_REMOVED);
	rv_stop(&im);
	rv_stop(&e2);
	alarm(0);
}
END_TEST

START_TEST(t_release_before_remove)
{
	struct peer e, im;
	unsigned long b;
	alarm(tu_guard_s(40));
	long long seg = exporter(&e, SEG, 3, &b);
	rv_start(&im, 0);
	rv_ok(&im, NULL, 0, "fdinit");
	rv_ok(&im, NULL, 0, "handler 0 def rec");
	long long apX = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	long long apY = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDONLY);
	rv_ok(&im, NULL, 0, "handler %lld cbx rec", apX);
	rv_ok(&im, NULL, 0, "handler %lld cby rec", apY);
	rv_ok(&im, NULL, 0, "attach %lld 0 %lu 0", apX, SEG);
	rv_ok(&im, NULL, 0, "attach %lld 0 %lu 0", apY, SEG);
	rv_ok(&im, NULL, 0, "release %lld", apX);

	rv_ok(&e, NULL, 0, "remove %lld", seg);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 1 %d", WAIT_MS), 1);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait cby 1 %d", WAIT_MS), 1);
	st_sleep_ms(500);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 2 0"), 1);
	ck_assert_int_eq(rv_count(&im, "cbx"), 0);
	ck_assert_int_eq(rv_count(&im, "def"), 0);
	ck_assert_int_eq(rv_count(&im, "cby"), 1);
	struct rvev ev;
	rv_ev(&im, "fd", 0, &ev);
	ck_assert_int_eq(ev.apid, apY);
	rv_ev(&im, "cby", 0, &ev);
	ck_assert_int_eq(ev.apid, apY);
	rv_stop(&im);
	rv_stop(&e);
	alarm(0);
}
END_TEST

START_TEST(t_release_after_emit)
{
	struct peer e, im;
	unsigned long b;
	alarm(tu_guard_s(40));
	rv_start(&e, 1);
	b = (unsigned long)rv_ok(&e, NULL, 0, "malloc %lu", 2 * SEG);
	long long segA = rv_ok(&e, NULL, 0, "make %#lx %lu 0600", b, SEG);
	long long segB = rv_ok(&e, NULL, 0, "make %#lx %lu 0600", b + SEG, SEG);
	rv_start(&im, 0);
	rv_ok(&im, NULL, 0, "fdinit");
	long long apX = rv_ok(&im, NULL, 0, "get %lld %d", segA, XPMEM_RDWR);
	long long apY = rv_ok(&im, NULL, 0, "get %lld %d", segB, XPMEM_RDWR);
	long long apZ = rv_ok(&im, NULL, 0, "get %lld %d", segB, XPMEM_RDWR);
	rv_ok(&im, NULL, 0, "handler %lld blk block", apX);
	rv_ok(&im, NULL, 0, "handler %lld cby rec", apY);
	rv_ok(&im, NULL, 0, "handler %lld cbz rec", apZ);

	/* X's callback holds the dispatcher */
	rv_ok(&e, NULL, 0, "remove %lld", segA);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait blk 1 %d", WAIT_MS), 1);
	/* Y's and Z's events are emitted (the importer acknowledges the
	 * removal after it emitted them) but not delivered yet */
	rv_ok(&e, NULL, 0, "remove %lld", segB);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdpeek 0"), 1);
	rv_ok(&im, NULL, 0, "release %lld", apY);
	rv_ok(&im, NULL, 0, "unblock");
	/* Z is the positive control: its callback runs after X's */
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait cbz 1 %d", WAIT_MS), 1);
	st_sleep_ms(300);
	ck_assert_msg(rv_count(&im, "cby") == 0, "the callback of apid released before its event was "
		      "delivered ran");
	/* the fd form, polled only now: X and Z, not Y */
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 3 300"), 2);
	struct rvev f0, f1, z;
	rv_ev(&im, "fd", 0, &f0);
	rv_ev(&im, "fd", 1, &f1);
	rv_ev(&im, "cbz", 0, &z);
	ck_assert_int_eq(f0.apid, apX);
	ck_assert_int_eq(f1.apid, apZ);
	ck_assert(f0.seq < f1.seq);
	ck_assert(f1.seq == z.seq);
	rv_stop(&im);
	rv_stop(&e);
	alarm(0);
}
END_TEST

START_TEST(t_unregister)
{
	struct peer e, im;
	unsigned long b;
	alarm(tu_guard_s(40));
	long long seg = exporter(&e, SEG, 5, &b);
	rv_start(&im, 0);
	long long ap = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	rv_ok(&im, NULL, 0, "handler 0 def rec");
	rv_ok(&im, NULL, 0, "handler %lld cb rec", ap);
	rv_ok(&im, NULL, 0, "handler %lld cb none", ap);
	rv_ok(&e, NULL, 0, "remove %lld", seg);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait def 1 %d", WAIT_MS), 1);
	st_sleep_ms(300);
	ck_assert_int_eq(rv_count(&im, "cb"), 0);
	ck_assert_int_eq(rv_count(&im, "def"), 1);
	rv_stop(&im);
	rv_stop(&e);
	alarm(0);
}
END_TEST

START_TEST(t_fork_child)
{
	struct peer e, im;
	unsigned long b;
	alarm(tu_guard_s(40));
	long long seg = exporter(&e, SEG, 9, &b);
	rv_start(&im, 0);
	rv_ok(&im, NULL, 0, "fdinit");
	rv_ok(&im, NULL, 0, "handler 0 def rec");
	long long ap = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	rv_ok(&im, NULL, 0, "handler %lld cb rec", ap);
	rv_ok(&im, NULL, 0, "attach %lld 0 %lu 0", ap, SEG);
	/* the child registers a default handler, a per-apid handler and the
	 * queue, and gets its own apid of the segment */
	rv_ok(&im, NULL, 0, "fork %lld 8000", seg);
	rv_ok(&e, NULL, 0, "remove %lld", seg);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait cb 1 %d", WAIT_MS), 1);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 1 %d", WAIT_MS), 1);
	long long v[11];
	rv_ok(&im, v, 11, "forkres 12000");
	ck_assert_msg(v[0] == 1 && v[1] == 1, "child: uxpmem_revoke_handler(parent's apid) gave ENOENT "
		      "for %lld of %lld", v[1], v[0]);
	ck_assert_msg(v[2] == 0 && v[3] == 0 && v[4] == 1, "child: registration failed (own %lld, default "
		      "%lld, fd %lld)", v[2], v[3], v[4]);
	ck_assert_msg(v[5] > 0 && v[5] != ap, "child: xpmem_get gave %lld", v[5]);
	ck_assert_msg(v[7] == 0 && v[10] == 0, "child got events of its parent's apid: callback %lld, "
		      "fd %lld", v[7], v[10]);
	ck_assert_msg(v[8] == 0, "child's default handler ran %lld times", v[8]);
	ck_assert_msg(v[6] == 1 && v[9] == 1, "child: its own apid's event: callback %lld, fd %lld "
		      "(want 1, 1)", v[6], v[9]);
	/* the parent: its one event, to its own handler */
	ck_assert_int_eq(rv_count(&im, "cb"), 1);
	ck_assert_int_eq(rv_count(&im, "def"), 0);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 2 0"), 1);
	rv_stop(&im);
	rv_stop(&e);
	alarm(0);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("revoke-callback");
	TCase *tc = tcase_create("callback");
	tcase_set_timeout(tc, tu_guard_s(45));
	tcase_add_test(tc, t_callback_cleans_up);
	tcase_add_test(tc, t_release_before_remove);
	tcase_add_test(tc, t_release_after_emit);
	tcase_add_test(tc, t_unregister);
	tcase_add_test(tc, t_fork_child);
	suite_add_tcase(s, tc);
	return st_run(s);
}
