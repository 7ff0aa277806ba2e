/* death.c - the exporter dies (SIGKILL) or exits while attached: the
 * importer does not hang, touches raise SIGBUS, detach/release return 0, no
 * descriptor leaks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "shmtest.h"
#include "testutil.h"

#define LEN (64 * PAGE)

static int settle_fds(int want, int ms)
{
	int n = tu_count_fds();
	for (long long end = st_now_ms() + tu_guard_ms(ms); n != want && st_now_ms() < end; st_sleep_ms(10))
		n = tu_count_fds();
	return n;
}

static void exporter_dies(int how_kill)
{
	alarm(tu_guard_s(25));
	/* warm up: the service thread and its descriptors exist before counting */
	struct peer w;
	peer_start(&w, PEER_ARENA);
	uintptr_t wb = (uintptr_t)peer_ok(&w, "malloc %lu", PAGE);
	long long ws = peer_ok(&w, "make %#lx %lu 0600", wb, PAGE);
	xpmem_apid_t wa = xpmem_get(ws, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(wa > 0, "warm-up get errno %d (%s)", errno, strerror(errno));
	struct xpmem_addr wad = { wa, 0 };
	void *wp = xpmem_attach(wad, PAGE, NULL);
	ck_assert(wp != ATTACH_FAILED);
	ck_assert_int_eq(xpmem_detach(wp), 0);
	ck_assert_int_eq(xpmem_release(wa), 0);

	/* and one exporter death already handled (lazily created revocation
	 * resources exist before counting) */
	struct peer w2;
	peer_start(&w2, PEER_ARENA);
	uintptr_t w2b = (uintptr_t)peer_ok(&w2, "malloc %lu", 8 * MiB);
	long long w2s = peer_ok(&w2, "make %#lx %lu 0600", w2b, 8 * MiB);
	xpmem_apid_t w2a = xpmem_get(w2s, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(w2a > 0);
	struct xpmem_addr w2d = { w2a, 0 };
	void *w2p = xpmem_attach(w2d, PAGE, NULL);
	ck_assert(w2p != ATTACH_FAILED);
	peer_kill(&w2);
	ck_assert_int_eq(st_wait_signal(w2p, 2000), SIGBUS);
	ck_assert_int_eq(xpmem_detach(w2p), 0);
	ck_assert_int_eq(xpmem_release(w2a), 0);

	struct peer e;
	peer_start(&e, PEER_ARENA);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %lu", LEN);
	peer_ok(&e, "fill %#lx %lu 9", buf, LEN);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	long long seg2 = peer_ok(&e, "make %#lx %lu 0600", buf, LEN);

	int fds0 = tu_count_fds();
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(a > 0, "get errno %d (%s)", errno, strerror(errno));
	xpmem_apid_t b = xpmem_get(seg2, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(b > 0, "get RDONLY errno %d (%s)", errno, strerror(errno));
	struct xpmem_addr ad = { a, (off_t)buf }, bd = { b, 0 };
	char *p = xpmem_attach(ad, LEN, NULL);
	ck_assert_msg(p != ATTACH_FAILED, "attach errno %d (%s)", errno, strerror(errno));
	char *q = xpmem_attach(bd, LEN, NULL);
	ck_assert_msg(q != ATTACH_FAILED, "attach RDONLY errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(st_check(p, LEN, 9) == -1 && st_check(q, LEN, 9) == -1, "data wrong before the exporter died");

	if (how_kill)
		peer_kill(&e);
	else
		peer_stop(&e);
	long long t0 = st_now_ms();
	int sig = st_wait_signal(p + PAGE, 2000);
	ck_assert_msg(sig == SIGBUS, "exporter %s: touching the attachment gave %s %d after %lld ms, want SIGBUS within 2 s",
		      how_kill ? "SIGKILLed" : "exited", sig ? "signal" : "no signal", sig, st_now_ms() - t0);
	sig = st_wait_signal(q, 2000);
	ck_assert_msg(sig == SIGBUS, "exporter gone: RDONLY attachment touch gave signal %d, want SIGBUS", sig);
	errno = 0;
	ck_assert_msg(xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL) == -1 && errno == ENOENT,
		      "get after the exporter died: errno %d (%s), want ENOENT", errno, strerror(errno));
	struct xpmem_addr nd = { a, 0 };
	errno = 0;
	ck_assert_msg(xpmem_attach(nd, PAGE, NULL) == ATTACH_FAILED && errno == ENOENT,
		      "attach after the exporter died: errno %d (%s), want ENOENT", errno, strerror(errno));
	ck_assert_msg(xpmem_detach(p) == 0, "detach after exporter death errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(xpmem_detach(q) == 0, "detach after exporter death errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(xpmem_release(a) == 0, "release after exporter death errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(xpmem_release(b) == 0, "release after exporter death errno %d (%s)", errno, strerror(errno));
	/* peer_kill/peer_stop closed our 2 pipe descriptors to the peer */
	int fds1 = settle_fds(fds0 - 2, 2000);
	ck_assert_msg(fds1 == fds0 - 2, "importer descriptors: %d before get, %d after release (want %d: leak)", fds0, fds1,
		      fds0 - 2);

	/* the warm-up exporter still works */
	wa = xpmem_get(ws, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(wa > 0, "get from the surviving exporter errno %d", errno);
	ck_assert_int_eq(xpmem_release(wa), 0);
	peer_stop(&w);
	alarm(0);
}

START_TEST(t_exporter_sigkill)
{
	exporter_dies(1);
}
END_TEST

START_TEST(t_exporter_exit)
{
	exporter_dies(0);
}
END_TEST

/* Killed while a thread of the importer is reading in a loop: the reader
 * gets SIGBUS, nothing hangs. */
START_TEST(t_exporter_sigkill_busy_reader)
{
	/* a hang guard, not a timing goal: valgrind runs one thread at a time,
	 * and the reader below spins */
	long long bound = tu_guard_ms(3000);
	alarm(tu_guard_s(20));
	/* and one exporter death already handled (lazily created revocation
	 * resources exist before counting) */
	struct peer w2;
	peer_start(&w2, PEER_ARENA);
	uintptr_t w2b = (uintptr_t)peer_ok(&w2, "malloc %lu", 8 * MiB);
	long long w2s = peer_ok(&w2, "make %#lx %lu 0600", w2b, 8 * MiB);
	xpmem_apid_t w2a = xpmem_get(w2s, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(w2a > 0);
	struct xpmem_addr w2d = { w2a, 0 };
	void *w2p = xpmem_attach(w2d, PAGE, NULL);
	ck_assert(w2p != ATTACH_FAILED);
	peer_kill(&w2);
	ck_assert_int_eq(st_wait_signal(w2p, 2000), SIGBUS);
	ck_assert_int_eq(xpmem_detach(w2p), 0);
	ck_assert_int_eq(xpmem_release(w2a), 0);

	struct peer e;
	peer_start(&e, PEER_ARENA);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %lu", LEN);
	peer_ok(&e, "fill %#lx %lu 9", buf, LEN);
	long long seg = peer_ok(&e, "make %#lx %lu 0600", buf, LEN);
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a > 0);
	struct xpmem_addr ad = { a, 0 };
	char *p = xpmem_attach(ad, LEN, NULL);
	ck_assert(p != ATTACH_FAILED);
	pid_t victim = e.pid;
	/* kill it from a helper child after 100 ms while we spin reading */
	pid_t k = fork();
	if (k == 0) {
		st_sleep_ms(100);
		kill(victim, SIGKILL);
		_exit(0);
	}
	long long t0 = st_now_ms();
	int sig = 0;
	while (!sig && st_now_ms() - t0 < bound) {
		for (size_t off = 0; off < LEN && !sig; off += PAGE) {
			unsigned char v;
			sig = tu_probe_read(p + off, &v);
		}
	}
	ck_assert_msg(sig == SIGBUS, "busy reader: signal %d after %lld ms, want SIGBUS", sig, st_now_ms() - t0);
	tu_wait_child(k, 2000);
	peer_kill(&e);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	alarm(0);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-death");
	TCase *tc = tcase_create("death");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_exporter_sigkill);
	tcase_add_test(tc, t_exporter_exit);
	tcase_add_test(tc, t_exporter_sigkill_busy_reader);
	suite_add_tcase(s, tc);
	return st_run(s);
}
