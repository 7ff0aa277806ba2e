/* dup.c - an apid already revoked is not revoked again: the exporter
 * removes both segments (one REMOVED event per apid, checked as in
 * events.c), the importers keep the revoked apids, then the exporter exits
 * or is killed.  The exit must deliver no second (EXITED) event for those
 * apids, in any form, within 700 ms.  (transports/shm/importer.c once
 * revoked every apid of the closed connection again, and
 * uxp_revoke_emit() drops only released apids: a second, EXITED, event.) */
#include <unistd.h>
#include "scen.h"

static void remove_then(int kill_it)
{
	struct scen s;
	alarm(tu_guard_s(40));
	scen_setup(&s);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segB);
	scen_verify(&s, UXPMEM_REVOKE_REMOVED);
	if (kill_it)
		peer_kill(&s.e);
	else
		rv_stop(&s.e);
	st_sleep_ms(700);
	for (int i = 0; i < NIMP; i++) {
		struct imp *m = &s.im[i];
		int fd = (int)rv_ok(&m->p, NULL, 0, "fdwait 3 0");
		int cb = rv_count(&m->p, "cb"), def = rv_count(&m->p, "def");
		if (fd != 2 || cb != 1 || def != 1) {
			struct rvev ev;
			rv_ev(&m->p, fd > 2 ? "fd" : cb > 1 ? "cb" : "def", fd > 2 ? 2 : 1, &ev);
			ck_abort_msg("importer %d: after the removal events, the exporter's %s delivered "
				     "more events for the already revoked apids (fd %d, callback %d, default %d, "
				     "want 2 1 1; extra: seq %llu reason %d apid %#llx)", i,
				     kill_it ? "death" : "exit", fd, cb, def, ev.seq, ev.reason, ev.apid);
		}
	}
	scen_teardown(&s);
	alarm(0);
}

START_TEST(t_remove_then_exit)
{
	remove_then(0);
}
END_TEST

START_TEST(t_remove_then_kill)
{
	remove_then(1);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("revoke-dup");
	TCase *tc = tcase_create("dup");
	tcase_set_timeout(tc, tu_guard_s(45));
	tcase_add_test(tc, t_remove_then_exit);
	tcase_add_test(tc, t_remove_then_kill);
	suite_add_tcase(s, tc);
	return st_run(s);
}
