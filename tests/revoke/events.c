/* events.c - revocation events when the exporter removes, exits or is
 * killed, with three importer processes each holding two apids (two
 * segments of the one exporter) and attachments:
 *   - each importer gets exactly one event per apid (none more within
 *     500 ms), of the right reason, apid, segid, offset 0, length = the
 *     segment size, addr NULL / size 0;
 *   - the per-apid callback, the default handler (apid 0) and the fd form
 *     (poll on uxpmem_revoke_fd, then uxpmem_revoke_poll) each receive it
 *     and agree (seq, reason, apid); the default handler gets the events of
 *     the apid without its own handler only;
 *   - when an event is seen the memory already raises SIGBUS (probed in
 *     the callback without a signal, in the fd form with a real read).
 * tests/revoke/dup: what follows once the events were delivered.
 */
#include <unistd.h>
#include "scen.h"

START_TEST(t_remove)
{
	struct scen s;
	alarm(tu_guard_s(40));
	scen_setup(&s);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segA);
	rv_ok(&s.e, NULL, 0, "remove %lld", s.segB);
	scen_verify(&s, UXPMEM_REVOKE_REMOVED);
	scen_teardown(&s);
	alarm(0);
}
END_TEST

START_TEST(t_exit)
{
	struct scen s;
	alarm(tu_guard_s(40));
	scen_setup(&s);
	rv_stop(&s.e); /* exit(0) */
	scen_verify(&s, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
	alarm(0);
}
END_TEST

START_TEST(t_sigkill)
{
	struct scen s;
	alarm(tu_guard_s(40));
	scen_setup(&s);
	peer_kill(&s.e);
	scen_verify(&s, UXPMEM_REVOKE_EXITED);
	scen_teardown(&s);
	alarm(0);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("revoke-events");
	TCase *tc = tcase_create("events");
	tcase_set_timeout(tc, tu_guard_s(45));
	tcase_add_test(tc, t_remove);
	tcase_add_test(tc, t_exit);
	tcase_add_test(tc, t_sigkill);
	suite_add_tcase(s, tc);
	return st_run(s);
}
