/* fallback.c - revocation events of the kernel transport when the notice
 * socket is missing, taken, malformed or full:
 *   - an exporter that does not run uxpmem (tests/kernel/rawpeer plays
 *     MAKE itself): its remove gives nothing, its exit and its SIGKILL
 *     give each importer exactly one EXITED per apid (pidfd), length 0;
 *   - an impostor holding the exporter's socket name: importers refuse it
 *     (a debug line), nothing it sends arrives, the exporter warns, and its
 *     exit still gives EXITED (pidfd);
 *   - a well-formed notice sent by hand: REMOVED with the length it
 *     carries, SIZE then exit: EXITED with that length (the wire format of
 *     notice.h);
 *   - malformed notices (length, magic, version, type, segid): exactly one
 *     ERROR per apid, nothing more when the exporter exits afterwards;
 *   - an importer whose queue stays full: the exporter's remove waits
 *     XPMEM_KERNEL_NOTICE_TIMEOUT_MS, closes the connection (a warning), the
 *     importer gets ERROR; another importer is served meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "fakexpmem.h"
#include "notice.h"
#include "ktest.h"

#define NIMP 3
#define SZ (64 * 1024)

struct imp {
	struct peer p;
	long long apA, apB;
};

/* Importers with fd form and default handler, an apid of segA (and of
 * segB if > 0) each. */
static void importers(struct imp *im, int n, long long segA, long long segB)
{
	for (int i = 0; i < n; i++) {
		kt_start(&im[i].p, KT_KPEER, NULL);
		ck_assert_int_ge(rv_ok(&im[i].p, NULL, 0, "fdinit"), 0);
		rv_ok(&im[i].p, NULL, 0, "handler 0 def rec");
		im[i].apA = rv_ok(&im[i].p, NULL, 0, "get %lld %d", segA, XPMEM_RDWR);
		rv_ok(&im[i].p, NULL, 0, "attach %lld 0 %d 0", im[i].apA, SZ);
		im[i].apB = segB > 0 ? rv_ok(&im[i].p, NULL, 0, "get %lld %d", segB, XPMEM_RDWR) : 0;
	}
}

static void stop_importers(struct imp *im, int n)
{
	for (int i = 0; i < n; i++)
		rv_stop(&im[i].p);
}

/* Nothing arrived at any importer within KT_QUIET_MS. */
static void quiet(struct imp *im, int n)
{
	st_sleep_ms(KT_QUIET_MS);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(rv_ok(&im[i].p, NULL, 0, "fdwait 1 0") == 0, "importer %d: an fd event", i);
		ck_assert_msg(rv_count(&im[i].p, "def") == 0, "importer %d: a callback ran", i);
	}
}

/* Importer m has (within KT_WAIT_MS) k events in each form, one of them
 * for apid ap, with these fields. */
static void one_event(struct imp *m, int k, long long ap, int reason, long long seg, size_t len,
		      const char *what)
{
	struct rvev fd, cb;
	int nfd = 0, ncb = 0;
	ck_assert_msg(rv_ok(&m->p, NULL, 0, "fdwait %d %d", k, KT_WAIT_MS) == k, "%s: no fd event", what);
	ck_assert_msg(rv_ok(&m->p, NULL, 0, "wait def %d %d", k, KT_WAIT_MS) == k, "%s: no callback", what);
	for (int i = 0; i < k; i++) {
		struct rvev ev;
		rv_ev(&m->p, "fd", i, &ev);
		if (ev.apid == ap)
			fd = ev, nfd++;
		rv_ev(&m->p, "def", i, &ev);
		if (ev.apid == ap)
			cb = ev, ncb++;
	}
	ck_assert_msg(nfd == 1 && ncb == 1, "%s: %d fd events, %d callbacks of apid %#llx (want 1, 1)", what,
		      nfd, ncb, ap);
	kt_check_ev(&fd, reason, ap, seg, len, what);
	kt_check_ev(&cb, reason, ap, seg, len, what);
	ck_assert_msg(fd.seq == cb.seq, "%s: seqs %llu/%llu", what, fd.seq, cb.seq);
}

/* Exactly k events in each form at every importer (after KT_QUIET_MS). */
static void exactly(struct imp *im, int n, int k)
{
	st_sleep_ms(KT_QUIET_MS);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(rv_ok(&im[i].p, NULL, 0, "fdwait %d 0", k + 1) == k, "importer %d: fd events", i);
		ck_assert_msg(rv_count(&im[i].p, "def") == k, "importer %d: callbacks", i);
	}
}

/* ---- an exporter without uxpmem -------------------------------------- */

static void nouxpmem(int kill_it)
{
	struct peer r;
	struct imp im[NIMP];
	kt_start(&r, KT_RAWPEER, NULL);
	long long segA = rv_ok(&r, NULL, 0, "make %d", SZ), segB = rv_ok(&r, NULL, 0, "make %d", SZ);
	importers(im, NIMP, segA, segB);
	for (int i = 0; i < NIMP; i++)
		ck_assert(kt_log_has(im[i].p.pid, "no notices (it does not run uxpmem?)", 0));
	rv_ok(&r, NULL, 0, "remove %lld", segA); /* nobody tells the importers */
	quiet(im, NIMP);
	if (kill_it)
		peer_kill(&r);
	else
		rv_stop(&r);
	char what[64];
	for (int i = 0; i < NIMP; i++) {
		snprintf(what, sizeof(what), "importer %d, apid A", i);
		one_event(&im[i], 2, im[i].apA, UXPMEM_REVOKE_EXITED, segA, 0, what);
		snprintf(what, sizeof(what), "importer %d, apid B", i);
		one_event(&im[i], 2, im[i].apB, UXPMEM_REVOKE_EXITED, segB, 0, what);
	}
	exactly(im, NIMP, 2);
	stop_importers(im, NIMP);
}

START_TEST(t_nouxpmem_exit)
{
	nouxpmem(0);
}
END_TEST

START_TEST(t_nouxpmem_kill)
{
	nouxpmem(1);
}
END_TEST

/* ---- an impostor holds the exporter's name --------------------------------- */

START_TEST(t_impostor)
{
	struct peer e, r;
	struct imp im[NIMP];
	char line[128];
	kt_start(&e, KT_KPEER, NULL);
	kt_start(&r, KT_RAWPEER, NULL);
	rv_ok(&r, NULL, 0, "listen %d", (int)e.pid);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ);
	snprintf(line, sizeof(line), "cannot listen on @" UXP_KN_NAME "%d", (int)e.pid);
	ck_assert_msg(kt_log_has(e.pid, line, 0) && kt_log_has(e.pid, "another process holds the name", 0),
		      "the exporter did not warn that its notice name is taken");
	importers(im, NIMP, seg, 0);
	snprintf(line, sizeof(line), "is served by pid %d: refusing it", (int)r.pid);
	for (int i = 0; i < NIMP; i++)
		ck_assert_msg(kt_log_has(im[i].p.pid, line, 0), "importer %d: no '%s' in its log", i, line);
	/* they did connect, and were gone before the impostor could talk */
	ck_assert_int_eq(rv_ok(&r, NULL, 0, "conns"), NIMP);
	ck_assert_int_eq(rv_ok(&r, NULL, 0, "send %d %lld %d", UXP_KN_REMOVED, seg, SZ), 0);
	rv_ok(&r, NULL, 0, "sendraw garbage");
	quiet(im, NIMP);
	rv_stop(&e); /* exit: the importers' pidfds */
	char what[64];
	for (int i = 0; i < NIMP; i++) {
		snprintf(what, sizeof(what), "importer %d", i);
		one_event(&im[i], 1, im[i].apA, UXPMEM_REVOKE_EXITED, seg, 0, what);
	}
	exactly(im, NIMP, 1);
	stop_importers(im, NIMP);
	rv_stop(&r);
}
END_TEST

/* ---- notices by hand -------------------------------------------------------- */

/* The wire format as notice.h has it, from a process that is not uxpmem. */
START_TEST(t_wellformed)
{
	struct peer r;
	struct imp im[NIMP];
	kt_start(&r, KT_RAWPEER, NULL);
	rv_ok(&r, NULL, 0, "listen");
	long long segA = rv_ok(&r, NULL, 0, "make %d", SZ), segB = rv_ok(&r, NULL, 0, "make %d", SZ);
	importers(im, NIMP, segA, segB);
	ck_assert_int_eq(rv_ok(&r, NULL, 0, "send %d %lld %d", UXP_KN_SIZE, segB, 8192), NIMP);
	ck_assert_int_eq(rv_ok(&r, NULL, 0, "send %d %lld %d", UXP_KN_REMOVED, segA, 12288), NIMP);
	char what[64];
	for (int i = 0; i < NIMP; i++) {
		snprintf(what, sizeof(what), "importer %d, REMOVED", i);
		one_event(&im[i], 1, im[i].apA, UXPMEM_REVOKE_REMOVED, segA, 12288, what);
	}
	rv_stop(&r);
	for (int i = 0; i < NIMP; i++) {
		snprintf(what, sizeof(what), "importer %d, EXITED", i);
		one_event(&im[i], 2, im[i].apB, UXPMEM_REVOKE_EXITED, segB, 8192, what);
	}
	exactly(im, NIMP, 2);
	stop_importers(im, NIMP);
}
END_TEST

/* Malformed notices from the verified exporter: ERROR, once. */
START_TEST(t_garbage)
{
	struct peer r;
	struct imp im[NIMP];
	kt_start(&r, KT_RAWPEER, NULL);
	rv_ok(&r, NULL, 0, "listen");
	long long seg = rv_ok(&r, NULL, 0, "make %d", SZ);
	importers(im, NIMP, seg, 0);
	long long other = fx_id(r.pid + 1, 1); /* a segid of another process */
	switch (_i) {
	case 0: ck_assert_int_eq(rv_ok(&r, NULL, 0, "sendraw garbage"), NIMP); break;
	case 1: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 1 %lld %d 0x12345678", seg, SZ), NIMP); break;
	case 2: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 1 %lld %d %#x 2", seg, SZ, UXP_KN_MAGIC), NIMP); break;
	case 3: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 9 %lld %d", seg, SZ), NIMP); break;
	case 4: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send %d %lld %d", UXP_KN_SUBSCRIBE, seg, SZ), NIMP); break;
	case 5: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 1 %lld %d", other, SZ), NIMP); break;
	case 6: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 1 0 %d", SZ), NIMP); break;
	case 7: ck_assert_int_eq(rv_ok(&r, NULL, 0, "send 1 -5 %d", SZ), NIMP); break;
	}
	char what[64];
	for (int i = 0; i < NIMP; i++) {
		snprintf(what, sizeof(what), "importer %d (garbage %d)", i, _i);
		one_event(&im[i], 1, im[i].apA, UXPMEM_REVOKE_ERROR, seg, 0, what);
		ck_assert(kt_log_has(im[i].p.pid, "malformed notice from exporter", 0));
	}
	rv_stop(&r); /* nothing more */
	exactly(im, NIMP, 1);
	stop_importers(im, NIMP);
}
END_TEST

/* ---- a full importer queue --------------------------------------------------- */

START_TEST(t_slow_importer)
{
	struct peer e;
	struct imp slow, fast;
	char line[128];
	kt_start(&e, KT_KPEER, "XPMEM_KERNEL_NOTICE_TIMEOUT_MS=200");
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ);
	importers(&slow, 1, seg, 0);
	importers(&fast, 1, seg, 0);
	snprintf(line, sizeof(line), "segid %#llx is %d bytes", seg, SZ);
	ck_assert(kt_log_has(slow.p.pid, line, KT_WAIT_MS));
	/* the slow importer's notice thread stops reading */
	ck_assert_int_eq(kill(slow.p.pid, SIGSTOP), 0);
	int st;
	ck_assert_int_eq(waitpid(slow.p.pid, &st, WUNTRACED), slow.p.pid);
	ck_assert(WIFSTOPPED(st));
	/* removes of other segments until its queue is full (the send buffer's
	 * size decides when: look at the exporter's log) */
	int full = 0;
	for (int k = 0; k < 20000 && !full; k++) {
		long long s = rv_ok(&e, NULL, 0, "make 0 4096 0600");
		rv_ok(&e, NULL, 0, "remove %lld", s);
		if (k % 100 == 99)
			full = kt_log_has(e.pid, "stayed full for 200 ms", 0);
	}
	ck_assert_msg(full, "the exporter never found the stopped importer's queue full");
	rv_ok(&e, NULL, 0, "remove %lld", seg);
	one_event(&fast, 1, fast.apA, UXPMEM_REVOKE_REMOVED, seg, SZ, "the other importer");
	ck_assert_int_eq(kill(slow.p.pid, SIGCONT), 0);
	one_event(&slow, 1, slow.apA, UXPMEM_REVOKE_ERROR, seg, SZ, "the stopped importer");
	exactly(&slow, 1, 1);
	exactly(&fast, 1, 1);
	stop_importers(&slow, 1);
	stop_importers(&fast, 1);
	rv_stop(&e);
}
END_TEST

int main(void)
{
	kt_init();
	Suite *s = suite_create("kernel-fallback");
	TCase *tc = tcase_create("fallback");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_nouxpmem_exit);
	tcase_add_test(tc, t_nouxpmem_kill);
	tcase_add_test(tc, t_impostor);
	tcase_add_test(tc, t_wellformed);
	tcase_add_loop_test(tc, t_garbage, 0, 8);
	tcase_add_test(tc, t_slow_importer);
	suite_add_tcase(s, tc);
	return st_run(s);
}
