/* events.c - revocation events of the kernel transport when the exporter
 * runs uxpmem: one exporter (tests/kernel/kpeer) with segments A and B,
 * three importers each holding an apid of each, A with its own callback
 * ("cb"), B with the default handler ("def"), both in the fd form ("fd"):
 *   - remove, normal exit and SIGKILL each give every importer exactly one
 *     event per apid (none more), with the right reason, apid, segid and
 *     length (the segment size), addr NULL, offset 0; the callback and the
 *     fd form agree (same seq);
 *   - remove then exit: REMOVED for the removed segment, EXITED for the
 *     other, nothing more;
 *   - a released apid gets nothing;
 *   - without pidfd_open, exit and SIGKILL still give EXITED;
 *   - a callback may detach, release, get and attach inside itself;
 *   - a process's own segment (self-attach) gets REMOVED;
 *   - a forked child starts clean and gets the events of its own apid only;
 *   - a remove, exit or kill while a GET is in flight reaches its apid;
 *   - descriptors do not accumulate on either side.
 * The XPMEM module is tests/kernel/fakexpmem.c (see ktest.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "fakexpmem.h"
#include "ktest.h"

#define NIMP 3
#define SZ_A (64 * 1024)
#define SZ_B (192 * 1024)

struct kimp {
	struct peer p;
	long long apA, apB;
	unsigned long a1, b1;
	int relB; /* released apB before the revocation */
};

struct kscen {
	struct peer e;
	long long segA, segB;
	struct kimp im[NIMP];
};

/* env: one more "NAME=VALUE" for the importers (or NULL) */
static void scen_setup(struct kscen *s, const char *env)
{
	memset(s, 0, sizeof(*s));
	kt_start(&s->e, KT_KPEER, NULL);
	s->segA = rv_ok(&s->e, NULL, 0, "make 0 %d 0600", SZ_A);
	s->segB = rv_ok(&s->e, NULL, 0, "make 0 %d 0600", SZ_B);
	/* laid out like the module's: the exporter's tgid first */
	ck_assert_int_eq(s->segA, fx_id(s->e.pid, 1));
	ck_assert_int_eq(s->segB, fx_id(s->e.pid, 2));
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s->im[i];
		kt_start(&m->p, KT_KPEER, env);
		ck_assert_int_ge(rv_ok(&m->p, NULL, 0, "fdinit"), 0);
		rv_ok(&m->p, NULL, 0, "handler 0 def rec");
		m->apA = rv_ok(&m->p, NULL, 0, "get %lld %d", s->segA, XPMEM_RDWR);
		m->apB = rv_ok(&m->p, NULL, 0, "get %lld %d", s->segB, XPMEM_RDWR);
		ck_assert(m->apA > 0 && m->apB > 0 && m->apA != m->apB);
		rv_ok(&m->p, NULL, 0, "handler %lld cb rec", m->apA);
		m->a1 = (unsigned long)rv_ok(&m->p, NULL, 0, "attach %lld 0 %d 0", m->apA, SZ_A);
		m->b1 = (unsigned long)rv_ok(&m->p, NULL, 0, "attach %lld 0 %d 0", m->apB, SZ_B);
		ck_assert_int_eq(rv_count(&m->p, ""), 0);
	}
}

/* Every importer knows both sizes (answers to its SUBSCRIBEs), so that an
 * exit right now must report them. */
static void sync_sizes(struct kscen *s)
{
	char a[96], b[96];
	snprintf(a, sizeof(a), "segid %#llx is %d bytes", s->segA, SZ_A);
	snprintf(b, sizeof(b), "segid %#llx is %d bytes", s->segB, SZ_B);
	for (int i = 0; i < NIMP; i++) {
		ck_assert_msg(kt_log_has(s->im[i].p.pid, a, KT_WAIT_MS), "importer %d: no '%s' in its log", i, a);
		ck_assert_msg(kt_log_has(s->im[i].p.pid, b, KT_WAIT_MS), "importer %d: no '%s' in its log", i, b);
	}
}

/* Each importer got exactly one event per (unreleased) apid in each form,
 * reason rA for A and rB for B, nothing more within KT_QUIET_MS. */
static void scen_verify(struct kscen *s, int rA, int rB)
{
	char what[64];
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s->im[i];
		int nfd = m->relB ? 1 : 2;
		ck_assert_msg(rv_ok(&m->p, NULL, 0, "fdwait %d %d", nfd, KT_WAIT_MS) == nfd,
			      "importer %d: the fd form did not get %d events", i, nfd);
		ck_assert_msg(rv_ok(&m->p, NULL, 0, "wait cb 1 %d", KT_WAIT_MS) == 1,
			      "importer %d: the callback of apid A did not run", i);
		if (!m->relB)
			ck_assert_msg(rv_ok(&m->p, NULL, 0, "wait def 1 %d", KT_WAIT_MS) == 1,
				      "importer %d: the default handler did not run", i);
	}
	st_sleep_ms(KT_QUIET_MS); /* duplicates would arrive meanwhile */
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s->im[i];
		int nfd = m->relB ? 1 : 2;
		struct rvev cb, def, fd[2];
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "fdwait %d 0", nfd + 1), nfd);
		ck_assert_int_eq(rv_count(&m->p, "cb"), 1);
		ck_assert_int_eq(rv_count(&m->p, "def"), m->relB ? 0 : 1);
		rv_ev(&m->p, "cb", 0, &cb);
		snprintf(what, sizeof(what), "importer %d callback (A)", i);
		kt_check_ev(&cb, rA, m->apA, s->segA, SZ_A, what);
		for (int k = 0; k < nfd; k++) {
			rv_ev(&m->p, "fd", k, &fd[k]);
			int isA = fd[k].apid == m->apA;
			snprintf(what, sizeof(what), "importer %d fd form (%s)", i, isA ? "A" : "B");
			if (isA) {
				kt_check_ev(&fd[k], rA, m->apA, s->segA, SZ_A, what);
				ck_assert_msg(fd[k].seq == cb.seq, "%s: seq %llu, the callback's %llu", what,
					      fd[k].seq, cb.seq);
			} else {
				kt_check_ev(&fd[k], rB, m->apB, s->segB, SZ_B, what);
			}
		}
		if (nfd == 2) {
			ck_assert_msg(fd[0].apid != fd[1].apid, "importer %d: the fd form got apid %#llx twice", i,
				      fd[0].apid);
			rv_ev(&m->p, "def", 0, &def);
			snprintf(what, sizeof(what), "importer %d default handler (B)", i);
			kt_check_ev(&def, rB, m->apB, s->segB, SZ_B, what);
			struct rvev *fb = fd[0].apid == m->apB ? &fd[0] : &fd[1];
			ck_assert_msg(fb->seq == def.seq, "%s: seq %llu, fd form's %llu", what, def.seq, fb->seq);
		}
	}
}

static void scen_teardown(struct kscen *s)
{
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s->im[i];
		rv_ok(&m->p, NULL, 0, "detach %#lx", m->a1);
		rv_ok(&m->p, NULL, 0, "release %lld", m->apA);
		if (!m->relB) {
			rv_ok(&m->p, NULL, 0, "detach %#lx", m->b1);
			rv_ok(&m->p, NULL, 0, "release %lld", m->apB);
		}
		rv_stop(&m->p);
	}
	peer_kill(&s->e);
}

START_TEST(t_remove)
{
	struct kscen s;
	scen_setup(&s, NULL);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segB);
	scen_verify(&s, UXPMEM_REVOKE_REMOVED, UXPMEM_REVOKE_REMOVED);
	/* a removed segment is gone for new gets */
	ck_assert_int_eq(peer_err(&s.im[0].p, "get %lld %d", s.segA, XPMEM_RDWR), ENOENT);
	scen_teardown(&s);
}
END_TEST

START_TEST(t_exit)
{
	struct kscen s;
	scen_setup(&s, NULL);
	sync_sizes(&s);
	rv_stop(&s.e); /* exit(0) */
	scen_verify(&s, UXPMEM_REVOKE_EXITED, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
}
END_TEST

START_TEST(t_sigkill)
{
	struct kscen s;
	scen_setup(&s, NULL);
	sync_sizes(&s);
	peer_kill(&s.e);
	scen_verify(&s, UXPMEM_REVOKE_EXITED, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
}
END_TEST

START_TEST(t_remove_then_exit)
{
	struct kscen s;
	scen_setup(&s, NULL);
	sync_sizes(&s);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_stop(&s.e); /* right after: the REMOVED and the exit race to the importers */
	scen_verify(&s, UXPMEM_REVOKE_REMOVED, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
}
END_TEST

START_TEST(t_remove_all_then_exit)
{
	struct kscen s;
	scen_setup(&s, NULL);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segB);
	rv_stop(&s.e);
	scen_verify(&s, UXPMEM_REVOKE_REMOVED, UXPMEM_REVOKE_REMOVED); /* no EXITED */
	scen_teardown(&s);
}
END_TEST

START_TEST(t_released)
{
	struct kscen s;
	scen_setup(&s, NULL);
	struct kimp *m = &s.im[1];
	rv_ok(&m->p, NULL, 0, "detach %#lx", m->b1);
	rv_ok(&m->p, NULL, 0, "release %lld", m->apB);
	m->relB = 1;
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segB);
	scen_verify(&s, UXPMEM_REVOKE_REMOVED, UXPMEM_REVOKE_REMOVED);
	scen_teardown(&s);
}
END_TEST

/* Importers on a kernel without pidfd_open: the exporter's exit is told by
 * its closed connection and /proc. */
START_TEST(t_no_pidfd)
{
	struct kscen s;
	scen_setup(&s, "XPMEM_FAKE_NO_PIDFD=1");
	for (int i = 0; i < NIMP; i++)
		ck_assert(kt_log_has(s.im[i].p.pid, "pidfd_open: Function not implemented", 0));
	sync_sizes(&s);
	_i ? peer_kill(&s.e) : rv_stop(&s.e);
	scen_verify(&s, UXPMEM_REVOKE_EXITED, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
}
END_TEST

/* The callback of apid A detaches and releases it, then gets and attaches
 * segment C: all inside the callback. */
START_TEST(t_callback_cleans)
{
	struct kscen s;
	scen_setup(&s, NULL);
	long long segC = rv_ok(&s.e, NULL, 0, "make 0 %d 0600", SZ_A);
	long long got[NIMP];
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s.im[i];
		rv_ok(&m->p, NULL, 0, "next %lld %d 0", segC, SZ_A);
		rv_ok(&m->p, NULL, 0, "handler %lld clean clean", m->apA);
	}
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s.im[i];
		long long v[6];
		rv_ok(&m->p, v, 6, "cleanres");
		ck_assert_msg(v[0] == 0 && v[1] == 0, "importer %d: in the callback: %lld detach failures, "
			      "release %lld (errno %lld)", i, v[0], v[1], v[2]);
		ck_assert_msg(v[3] > 0 && v[4] == 1, "importer %d: in the callback: get %lld, attach ok %lld",
			      i, v[3], v[4]);
		got[i] = v[3];
		struct rvev ev;
		rv_ev(&m->p, "clean", 0, &ev);
		kt_check_ev(&ev, UXPMEM_REVOKE_REMOVED, m->apA, s.segA, SZ_A, "callback");
		/* the queue drops events of apids released since (by the callback) */
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "fdwait 1 0"), 0);
	}
	/* the apid got inside the callback is watched like any other */
	rv_ok(&s.e, NULL, 0, "remove %lld", segC);
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s.im[i];
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "wait def 1 %d", KT_WAIT_MS), 1);
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "fdwait 1 %d", KT_WAIT_MS), 1);
	}
	st_sleep_ms(KT_QUIET_MS);
	for (int i = 0; i < NIMP; i++) {
		struct kimp *m = &s.im[i];
		struct rvev ev;
		ck_assert_int_eq(rv_count(&m->p, "clean"), 1);
		ck_assert_int_eq(rv_count(&m->p, "def"), 1);
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "fdwait 2 0"), 1);
		rv_ev(&m->p, "def", 0, &ev);
		kt_check_ev(&ev, UXPMEM_REVOKE_REMOVED, got[i], segC, SZ_A, "apid got in the callback");
		rv_ev(&m->p, "fd", 0, &ev);
		kt_check_ev(&ev, UXPMEM_REVOKE_REMOVED, got[i], segC, SZ_A, "apid got in the callback (fd)");
		rv_ok(&m->p, NULL, 0, "detach %#lx", m->b1);
		rv_ok(&m->p, NULL, 0, "release %lld", m->apB);
		rv_ok(&m->p, NULL, 0, "release %lld", got[i]);
		rv_stop(&m->p);
	}
	peer_kill(&s.e);
}
END_TEST

/* A process attaching its own segment: no socket, the remove tells it. */
START_TEST(t_self)
{
	struct peer e;
	kt_start(&e, KT_KPEER, NULL);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ_A);
	ck_assert_int_ge(rv_ok(&e, NULL, 0, "fdinit"), 0);
	int nfd = kt_nfds(e.pid);
	long long ap = rv_ok(&e, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	ck_assert_msg(kt_nfds(e.pid) == nfd, "self-attach opened %d descriptors (no socket to self)",
		      kt_nfds(e.pid) - nfd);
	rv_ok(&e, NULL, 0, "handler %lld cb rec", ap);
	rv_ok(&e, NULL, 0, "attach %lld 0 %d 0", ap, SZ_A);
	rv_ok(&e, NULL, 0, "remove %lld", seg);
	ck_assert_int_eq(rv_ok(&e, NULL, 0, "fdwait 1 %d", KT_WAIT_MS), 1);
	ck_assert_int_eq(rv_ok(&e, NULL, 0, "wait cb 1 %d", KT_WAIT_MS), 1);
	st_sleep_ms(KT_QUIET_MS);
	ck_assert_int_eq(rv_ok(&e, NULL, 0, "fdwait 2 0"), 1);
	ck_assert_int_eq(rv_count(&e, "cb"), 1);
	struct rvev fd, cb;
	rv_ev(&e, "fd", 0, &fd);
	rv_ev(&e, "cb", 0, &cb);
	kt_check_ev(&fd, UXPMEM_REVOKE_REMOVED, ap, seg, SZ_A, "self, fd form");
	kt_check_ev(&cb, UXPMEM_REVOKE_REMOVED, ap, seg, SZ_A, "self, callback");
	ck_assert(fd.seq == cb.seq);
	rv_ok(&e, NULL, 0, "release %lld", ap);
	rv_stop(&e);
}
END_TEST

/* A forked importer child: no inherited handlers, apids or connections;
 * its own apid is told, the parent's are not (in the child). */
START_TEST(t_fork)
{
	struct peer e, im;
#ifdef __SANITIZE_THREAD__
	/* the peers are built with TSan too, which kills a forked child of a
	 * multi-threaded process when it starts a thread (die_after_fork) */
	fprintf(stderr, "t_fork skipped: ThreadSanitizer allows no thread in a forked child\n");
	return;
#endif
	kt_start(&e, KT_KPEER, NULL);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ_A);
	kt_start(&im, KT_KPEER, NULL);
	ck_assert_int_ge(rv_ok(&im, NULL, 0, "fdinit"), 0);
	long long ap = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	rv_ok(&im, NULL, 0, "handler %lld cb rec", ap);
	rv_ok(&im, NULL, 0, "attach %lld 0 %d 0", ap, SZ_A);
	rv_ok(&im, NULL, 0, "fork %lld %d", seg, KT_WAIT_MS);
	rv_ok(&e, NULL, 0, "remove %lld", seg);
	long long v[11];
	rv_ok(&im, v, 11, "forkres %d", 2 * KT_WAIT_MS);
	/* parent_apids enoent own_rc def_rc fd_ok own_apid cb_own cb_parent def_any fd_own fd_parent */
	ck_assert_msg(v[0] >= 1 && v[1] == v[0], "child: %lld of %lld parent apids unknown", v[1], v[0]);
	ck_assert_msg(v[2] == 0 && v[3] == 0 && v[4] == 1 && v[5] > 0 && v[5] != ap,
		      "child: handler %lld, default %lld, fd %lld, own apid %lld", v[2], v[3], v[4], v[5]);
	ck_assert_msg(v[6] == 1 && v[9] == 1, "child: own apid's events: callback %lld, fd %lld (want 1, 1)",
		      v[6], v[9]);
	ck_assert_msg(v[7] == 0 && v[8] == 0 && v[10] == 0,
		      "child: parent apid events: callback %lld, default %lld, fd %lld (want none)", v[7], v[8],
		      v[10]);
	/* the parent got its own, once */
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 1 %d", KT_WAIT_MS), 1);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait cb 1 %d", KT_WAIT_MS), 1);
	st_sleep_ms(KT_QUIET_MS);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 2 0"), 1);
	struct rvev ev;
	rv_ev(&im, "fd", 0, &ev);
	kt_check_ev(&ev, UXPMEM_REVOKE_REMOVED, ap, seg, SZ_A, "parent");
	rv_ok(&im, NULL, 0, "release %lld", ap);
	rv_stop(&im);
	rv_stop(&e);
}
END_TEST

/* The segment is removed, or its exporter exits or is killed, while the
 * importer's GET is in flight (found the segment, apid not yet recorded):
 * the importer hears of it before the apid exists, and applies it to the
 * apid when the GET returns. */
START_TEST(t_get_in_flight)
{
	struct peer e, im;
	char getting[4200], go[4200], cmd[128], line[128];
	const char *r;
	kt_start(&e, KT_KPEER, NULL);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ_A), ap = 0;
	kt_start(&im, KT_KPEER, "XPMEM_FAKE_GET_HOLD=1");
	ck_assert_int_ge(rv_ok(&im, NULL, 0, "fdinit"), 0);
	rv_ok(&im, NULL, 0, "handler 0 def rec");
	snprintf(cmd, sizeof(cmd), "get %lld %d", seg, XPMEM_RDWR);
	kt_send(&im, cmd);
	ck_assert(kt_wait_file(kt_path("getting", im.pid, getting, sizeof(getting)), KT_WAIT_MS));
	if (_i == 0) {
		rv_ok(&e, NULL, 0, "remove %lld", seg);
		snprintf(line, sizeof(line), "segid %#llx removed by pid %d: 0 apid(s) revoked", seg, (int)e.pid);
	} else {
		snprintf(line, sizeof(line), "exporter pid %d exited: 0 apid(s) revoked", (int)e.pid);
		_i == 1 ? rv_stop(&e) : peer_kill(&e);
	}
	ck_assert_msg(kt_log_has(im.pid, line, KT_WAIT_MS), "the importer's log has no '%s'", line);
	int fd = open(kt_path("go", im.pid, go, sizeof(go)), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	r = kt_answer(&im);
	ck_assert_msg(sscanf(r, "ok %lld", &ap) == 1 && ap > 0, "get answered '%s'", r);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 1 %d", KT_WAIT_MS), 1);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "wait def 1 %d", KT_WAIT_MS), 1);
	st_sleep_ms(KT_QUIET_MS);
	ck_assert_int_eq(rv_ok(&im, NULL, 0, "fdwait 2 0"), 1);
	ck_assert_int_eq(rv_count(&im, "def"), 1);
	struct rvev fdev, cb;
	rv_ev(&im, "fd", 0, &fdev);
	rv_ev(&im, "def", 0, &cb);
	/* REMOVED carries the size; the exit came before the size was asked */
	int reason = _i == 0 ? UXPMEM_REVOKE_REMOVED : UXPMEM_REVOKE_EXITED;
	kt_check_ev(&fdev, reason, ap, seg, _i == 0 ? SZ_A : 0, "fd form");
	kt_check_ev(&cb, reason, ap, seg, _i == 0 ? SZ_A : 0, "callback");
	ck_assert(fdev.seq == cb.seq);
	rv_ok(&im, NULL, 0, "release %lld", ap);
	rv_stop(&im);
	if (_i == 0)
		rv_stop(&e);
}
END_TEST

/* An importer's watch of an exporter (connection + pidfd) lives as long as
 * its apids; the exporter closes a connection when the importer leaves. */
START_TEST(t_fds)
{
	struct peer e, im;
	kt_start(&e, KT_KPEER, NULL);
	long long seg = rv_ok(&e, NULL, 0, "make 0 %d 0600", SZ_A);
	int ne = kt_nfds(e.pid); /* with its listening socket and epoll set */
	kt_start(&im, KT_KPEER, NULL);
	/* a first call opens the device and the log */
	ck_assert_int_eq(peer_err(&im, "get -1 %d", XPMEM_RDWR), EINVAL);
	int ni = kt_nfds(im.pid);
	for (int k = 0; k < 20; k++) {
		long long ap = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
		/* + connection, pidfd (and the epoll set, from the first get on) */
		ck_assert_int_eq(kt_nfds(im.pid), ni + 3);
		ck_assert_int_eq(kt_wait_nfds(e.pid, ne + 1, KT_WAIT_MS), ne + 1);
		rv_ok(&im, NULL, 0, "release %lld", ap);
		ck_assert_int_eq(kt_nfds(im.pid), ni + 1);
		ck_assert_int_eq(kt_wait_nfds(e.pid, ne, KT_WAIT_MS), ne);
	}
	/* two apids of one exporter share one watch */
	long long a1 = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	long long a2 = rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDONLY);
	ck_assert_int_eq(kt_nfds(im.pid), ni + 3);
	rv_ok(&im, NULL, 0, "release %lld", a1);
	ck_assert_int_eq(kt_nfds(im.pid), ni + 3);
	rv_ok(&im, NULL, 0, "release %lld", a2);
	ck_assert_int_eq(kt_nfds(im.pid), ni + 1);
	/* a failed get keeps nothing */
	ck_assert_int_eq(peer_err(&im, "get %lld %d", (long long)fx_id(e.pid, 999), XPMEM_RDWR), ENOENT);
	ck_assert_int_eq(kt_nfds(im.pid), ni + 1);
	rv_ok(&im, NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
	ck_assert_int_eq(kt_wait_nfds(e.pid, ne + 1, KT_WAIT_MS), ne + 1);
	rv_stop(&im); /* exits holding it */
	ck_assert_int_eq(kt_wait_nfds(e.pid, ne, KT_WAIT_MS), ne);
	rv_stop(&e);
}
END_TEST

int main(void)
{
	kt_init();
	Suite *s = suite_create("kernel-events");
	TCase *tc = tcase_create("events");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_remove);
	tcase_add_test(tc, t_exit);
	tcase_add_test(tc, t_sigkill);
	tcase_add_test(tc, t_remove_then_exit);
	tcase_add_test(tc, t_remove_all_then_exit);
	tcase_add_test(tc, t_released);
	tcase_add_loop_test(tc, t_no_pidfd, 0, 2);
	tcase_add_test(tc, t_callback_cleans);
	tcase_add_test(tc, t_self);
	tcase_add_test(tc, t_fork);
	tcase_add_loop_test(tc, t_get_in_flight, 0, 3);
	tcase_add_test(tc, t_fds);
	suite_add_tcase(s, tc);
	return st_run(s);
}
