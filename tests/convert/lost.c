/* lost.c - converting memory that other threads are writing loses no
 * update.  CV_NT exporter threads increment their own counters (one per
 * page slot of 1024 glibc heap chunks, 64 MiB of brk heap) and keep a
 * tally in private memory of their own; the importer attaches the whole
 * 64 MiB meanwhile (in-place conversion under the writers).  Afterwards
 * every counter equals its thread's tally (0 lost), and the importer reads
 * the same final values through its attachment.  As root (full
 * userfaultfd) and as nobody (user-mode-only userfaultfd).
 *
 * The same with the counters in 512 KiB of initialized globals (.data, a
 * file-backed private mapping that userfaultfd cannot write-protect: the
 * exporter stops all its threads to convert it). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

static void lost_body(const char *who, int data)
{
	struct peer e;
	int level = cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	long long v[4];
	peer_okv(&e, v, "ctrstart %d%s", CV_NT, data ? " data" : "");
	uintptr_t base = (uintptr_t)v[0];
	long stride = (long)v[1];
	int nch = (int)v[2];
	if (data)
		ck_assert_msg(stride == CV_CHUNK && nch == CV_DNCHUNK, ".data chunks: stride %ld, %d", stride, nch);
	else
		ck_assert_msg(stride >= CV_CHUNK && stride < 2 * CV_CHUNK, "heap chunk stride %ld", stride);
	uintptr_t s = PAGE_DOWN(base), en = PAGE_UP(base + (uintptr_t)(nch - 1) * (uintptr_t)stride + CV_CHUNK);
	ck_assert(en - s >= (data ? (size_t)CV_DNCHUNK * CV_CHUNK : 64 * MiB));
	st_sleep_ms(50); /* the writers are at full speed */
	long long t0 = st_now_ms();
	char *p = cv_attach(ap, s, en - s);
	long long t1 = st_now_ms();
	/* live: the importer sees the counters move after the conversion */
	volatile uint64_t *c0 = (volatile uint64_t *)(p + (base - s) + CV_CTR_OFF(7, CV_NT - 1));
	uint64_t before = *c0, after = before;
	/* wait (bounded) for it to move: on a loaded machine, or under a
	 * sanitizer, a writer may not run at all for a while */
	for (long long end = st_now_ms() + tu_guard_ms(10000); after == before && st_now_ms() < end;) {
		st_sleep_ms(10);
		after = *c0;
	}
	ck_assert_msg(after > before, "%s: a counter did not move in the importer's view (%llu -> %llu)", who,
		      (unsigned long long)before, (unsigned long long)after);
	peer_okv(&e, v, "ctrstop");
	unsigned long long mism = (unsigned long long)v[0], lost = (unsigned long long)v[1];
	unsigned long long total = (unsigned long long)v[2], wsum = (unsigned long long)v[3];
	fprintf(stderr, "%s (export level %d): attach of %zu KiB of live %s took %lld ms; %llu increments, "
		"%llu counters differ from their tally, %llu increments lost\n", who, level, (en - s) / 1024,
		data ? ".data" : "heap", t1 - t0, total, mism, lost);
	ck_assert_msg(mism == 0 && lost == 0,
		      "%s: %llu counters differ from their thread's tally, %llu increments lost by the conversion",
		      who, mism, lost);
	ck_assert(total > 0);
	/* the importer reads the final values */
	unsigned long long itotal = 0, iwsum = 0;
	long zero = 0;
	for (int t = 0; t < CV_NT; t++)
		for (int k = 0; k < nch; k++)
			for (int sl = 0; sl < CV_SLOTS; sl++) {
				uintptr_t x = base + (uintptr_t)k * (uintptr_t)stride + CV_CTR_OFF(sl, t);
				uint64_t c = *(volatile uint64_t *)(p + (x - s));
				itotal += c;
				iwsum += c * CV_WEIGHT(k, sl, t);
				zero += c == 0;
			}
	ck_assert_msg(zero == 0, "%s: %ld counters read 0 through the attachment", who, zero);
	ck_assert_msg(itotal == total && iwsum == wsum,
		      "%s: importer reads total %llu weighted %llu, exporter's tallies %llu %llu", who, itotal,
		      iwsum, total, wsum);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}

START_TEST(t_lost_privileged)
{
	lost_body(geteuid() == 0 ? "root" : "unprivileged user", 0);
}
END_TEST

START_TEST(t_lost_nobody)
{
	cv_become_nobody();
	lost_body("nobody", 0);
}
END_TEST

START_TEST(t_lost_data_privileged)
{
	if (!tu_threads_stoppable(".data lost updates"))
		return;
	lost_body(geteuid() == 0 ? "root" : "unprivileged user", 1);
}
END_TEST

START_TEST(t_lost_data_nobody)
{
	if (!tu_threads_stoppable(".data lost updates (nobody)"))
		return;
	cv_become_nobody();
	lost_body("nobody", 1);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-lost");
	TCase *tc = tcase_create("lost");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_lost_privileged);
	tcase_add_test(tc, t_lost_nobody);
	tcase_add_test(tc, t_lost_data_privileged);
	tcase_add_test(tc, t_lost_data_nobody);
	suite_add_tcase(s, tc);
	return st_run(s);
}
