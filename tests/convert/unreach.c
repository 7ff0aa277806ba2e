/* unreach.c - an importer that cannot be reached within
 * XPMEM_SHM_REVOKE_TIMEOUT_MS (stopped: SIGSTOP) while the exporter unmaps
 * memory it attached, and reuses the addresses.  The exporter goes on after
 * the timeout; the importer, when it runs again, must never read the old
 * memory as the exporter's: every page reads the exporter's new data or
 * raises SIGBUS.  The exporter unmaps page by page, so that its
 * invalidations fill the stopped importer's socket: the later ones cannot
 * even be sent (the importer would never hear of them).  The exporter
 * disconnects such an importer, which then gets a revocation event.
 * Importer: tests/shm/peer; exporter: tests/convert/cvpeer. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

#define NPAGES 768 /* more than the 512 messages a socket queue holds here */
#define SEED_OLD 61
#define SEED_NEW 62

START_TEST(t_stopped_importer)
{
	struct peer e, i;
	long long v[4];
	setenv("XPMEM_SHM_REVOKE_TIMEOUT_MS", "4", 1); /* for both peers */
	cv_start(&e);
	peer_start(&i, PEER_PLAIN);
	uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %lu", NPAGES * PAGE);
	peer_ok(&e, "fill %#lx %lu %d", (unsigned long)a, NPAGES * PAGE, SEED_OLD);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	peer_ok(&i, "revfd");
	long long ap = peer_ok(&i, "get %lld %d", seg, XPMEM_RDWR);
	uintptr_t p = (uintptr_t)peer_ok(&i, "attach %lld %#lx %lu 0", ap, (unsigned long)a, NPAGES * PAGE);
	peer_ok(&i, "check %#lx %lu %d 0", (unsigned long)p, NPAGES * PAGE, SEED_OLD);

	ck_assert_int_eq(kill(i.pid, SIGSTOP), 0);
	peer_okv(&e, v, "munmapeach %#lx %d", (unsigned long)a, NPAGES);
	fprintf(stderr, "exporter unmapped %d pages one by one in %lld ms\n", NPAGES, v[0]);
	ck_assert_int_eq((long long)peer_ok(&e, "mmapfixed %#lx %lu %d", (unsigned long)a, NPAGES * PAGE,
					    SEED_NEW), (long long)a);
	ck_assert_int_eq(kill(i.pid, SIGCONT), 0);

	/* told (late) or cut off: either way a revocation event comes */
	peer_okv(&i, v, "revwait %d", tu_guard_ms(5000));
	ck_assert_msg(v[0] == UXPMEM_REVOKE_EXITED || v[0] == UXPMEM_REVOKE_ERROR ||
		      v[0] == UXPMEM_REVOKE_INVALIDATED, "event reason %lld", v[0]);
	unsigned sigbus = 0, fresh = 0;
	for (unsigned k = 0; k < NPAGES; k++) {
		uintptr_t at = p + k * PAGE;
		const char *r = peer_cmd(&i, "rd %#lx", (unsigned long)at);
		long long w;
		if (sscanf(r, "sig %lld", &w) == 1) {
			ck_assert_int_eq(w, SIGBUS);
			sigbus++;
			continue;
		}
		ck_assert_msg(sscanf(r, "ok %lld", &w) == 1, "rd: %s", r);
		uint64_t want = cv_pattern(SEED_NEW, k * PAGE / 8), old = cv_pattern(SEED_OLD, k * PAGE / 8);
		ck_assert_msg((uint64_t)w != old, "page %u: the importer reads the memory the exporter unmapped "
			      "(it was never told: stale data as fresh)", k);
		ck_assert_msg((uint64_t)w == want, "page %u: importer reads %#llx, exporter has %#llx", k,
			      (unsigned long long)w, (unsigned long long)want);
		fresh++;
	}
	fprintf(stderr, "importer: %u pages SIGBUS, %u pages the exporter's new data\n", sigbus, fresh);
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

/* A child forked while the exporter waits for an importer's acknowledgement
 * (the importer is stopped; inval_busy set, the lock released in the wait)
 * exports memory of its own to another importer and unmaps it: its
 * invalidation must not wait for the parent's (it never ends there). */
START_TEST(t_fork_during_invalidation)
{
	struct peer e, i;
	long long v[4];
#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer kills a child forked by a multithreaded process
	 * once it starts threads (die_after_fork): the child here must */
	fprintf(stderr, "SKIP t_fork_during_invalidation: ThreadSanitizer cannot run the forked child\n");
	return;
#endif
	setenv("XPMEM_SHM_REVOKE_TIMEOUT_MS", "1500", 1);
	cv_start(&e);
	peer_start(&i, PEER_PLAIN);
	size_t sz = 16 * PAGE;
	uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %zu", sz);
	peer_ok(&e, "fill %#lx %zu %d", (unsigned long)a, sz, SEED_OLD);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	long long ap = peer_ok(&i, "get %lld %d", seg, XPMEM_RDWR);
	uintptr_t p = (uintptr_t)peer_ok(&i, "attach %lld %#lx %zu 0", ap, (unsigned long)a, sz);
	peer_ok(&i, "check %#lx %zu %d 0", (unsigned long)p, sz, SEED_OLD);

	ck_assert_int_eq(kill(i.pid, SIGSTOP), 0);
	peer_ok(&e, "bgmunmap %#lx %zu", (unsigned long)a, sz); /* waits for the stopped importer */
	st_sleep_ms(300);
	long long child = peer_ok(&e, "forkserve");
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(peer_okv(&e, v, "hello"), child); /* the child answers now */

	/* the child exports memory of its own to us, then unmaps it */
	uintptr_t b = (uintptr_t)peer_ok(&e, "mmapanon %zu", sz);
	peer_ok(&e, "fill %#lx %zu %d", (unsigned long)b, sz, SEED_NEW);
	xpmem_apid_t ap2 = cv_get_all(&e, NULL);
	char *q = cv_attach(ap2, b, sz);
	ck_assert_int_eq(st_check(q, sz, SEED_NEW), -1);
	long long t0 = st_now_ms();
	peer_ok(&e, "munmap %#lx %zu", (unsigned long)b, sz); /* hung here before */
	fprintf(stderr, "the child's munmap of exported memory took %lld ms\n", st_now_ms() - t0);
	ck_assert_int_eq(cv_rd(q, NULL), SIGBUS);
	ck_assert_int_eq(xpmem_detach(q), 0);
	peer_send(&e, "exit");
	ck_assert_str_eq(peer_recv(&e, 10000), "ok"); /* the child */
	const char *r = peer_recv(&e, 10000);           /* the parent: ok STATUS */
	ck_assert_msg(strcmp(r, "ok 0") == 0, "forked child: %s", r);

	ck_assert_int_eq(kill(i.pid, SIGCONT), 0);
	peer_ok(&e, "bgjoin");
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-unreach");
	TCase *tc = tcase_create("unreach");
	tcase_set_timeout(tc, tu_guard_s(60));
	tcase_add_test(tc, t_stopped_importer);
	tcase_add_test(tc, t_fork_during_invalidation);
	suite_add_tcase(s, tc);
	return st_run(s);
}
