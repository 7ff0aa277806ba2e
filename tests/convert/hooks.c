/* hooks.c - memory hooks (UCX's ucm, Open MPI's patcher) on the exporter's
 * mmap, munmap, mremap and madvise never run in a library thread.
 *
 * The exporter (tests/convert/cvpeer) hooks those calls as UCX does: each
 * takes a lock and updates a word of application memory (UCX's
 * registration cache).  Here that word lies in the heap block the importer
 * attaches, and an application thread keeps taking the lock and writing
 * the word, so a hook run by the converter while the block is frozen would
 * wait on the converter's own write-protect, or on a thread frozen by it:
 * the attach would time out (the bug UCX's data checks met with malloc'd
 * buffers).  The attach must succeed, the data be coherent both ways, and
 * the conversion run no hook at all (it is transparent to the exporter:
 * same addresses, contents and protection).  Each wait for a peer is
 * bounded by a hang guard that grows with tu_slowdown(). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include "cvimp.h"

#define SZ (2 * MiB) /* a glibc allocation of its own mapping */

static struct peer exporter;

/* A failed test leaves no peer behind (its converter may be stuck). */
static void kill_peer(void)
{
	if (exporter.pid > 0)
		kill(exporter.pid, SIGKILL);
}

START_TEST(t_heap)
{
	long long v[4];
	cv_start(&exporter);
	xpmem_apid_t ap = cv_get_all(&exporter, NULL);
	peer_okv(&exporter, v, "memalign %zu", SZ);
	uintptr_t a = (uintptr_t)v[0];
	size_t data = SZ - PAGE; /* the last page holds the hooks' word */
	peer_ok(&exporter, "fill %#lx %zu 31", a, data);
	peer_ok(&exporter, "hookarm %#lx", a + SZ - 8);
	peer_ok(&exporter, "hookhold");

	char *p = cv_attach(ap, a, SZ);
	ck_assert_msg(st_check(p, data, 31) == -1, "the exporter's writes are not seen by the importer");
	st_fill(p, data, 32);
	const char *r = peer_cmd(&exporter, "check %#lx %zu 32", a, data);
	ck_assert_msg(!strcmp(r, "ok"), "the importer's writes are not seen by the exporter (%s)", r);
	/* the application thread went on writing the word through it all */
	uint64_t w1 = *(volatile uint64_t *)(p + SZ - 8);
	ck_assert_int_gt(peer_ok(&exporter, "hookstop"), 0);
	ck_assert_int_ge(*(volatile uint64_t *)(p + SZ - 8), w1);
	ck_assert_int_eq(peer_ok(&exporter, "hooked %#lx %zu", a, SZ), 0);

	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&exporter);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-hooks");
	TCase *tc = tcase_create("hooks");
	tcase_set_timeout(tc, 60 * tu_slowdown());
	tcase_add_checked_fixture(tc, NULL, kill_peer);
	tcase_add_test(tc, t_heap);
	suite_add_tcase(s, tc);
	return st_run(s);
}
