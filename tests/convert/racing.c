/* racing.c - the application changes a range while the converter has it
 * frozen (copying it into the memfd): the conversion must not map its
 * older copy over what the application did.
 *   mapfixed: mmap MAP_FIXED over a page of it (the application's new
 *     mapping and what it wrote there would be lost);
 *   dontneed: MADV_DONTNEED of a page (its zeros and the later writes
 *     would be lost: the old bytes come back);
 *   remap: munmap + mmap MAP_FIXED_NOREPLACE of a page.
 * The exporter (cvpeer "race") does the call from a thread that sees the
 * freeze in its page map, after the copy has passed that page; afterwards
 * the exporter and the importer both read what the exporter wrote last.
 * Each case needs a few rounds where the call really landed during the
 * freeze (the thread may be late on a loaded machine: the round is then
 * repeated, bounded). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

#define RANGE (32 * MiB) /* one conversion chunk: copied in milliseconds */
#define WANT_RACED 3
#define MAX_ROUNDS 30
#define RC_TAG 0x7a9c0ffee0ddf00dULL

static void race_body(int op, const char *what)
{
	struct peer e;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	int raced = 0, rounds = 0;
	for (; raced < WANT_RACED && rounds < MAX_ROUNDS; rounds++) {
		long long v[4];
		uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %zu", (size_t)RANGE);
		peer_ok(&e, "fill %#lx %zu %d", (unsigned long)a, (size_t)RANGE, 40 + rounds);
		long long t0 = st_now_ms();
		peer_ok(&e, "race %#lx %d", (unsigned long)a, op);
		char *p = cv_attach(ap, a, RANGE); /* converts, while the thread races */
		long long t1 = st_now_ms();
		peer_okv(&e, v, "racestop");
		fprintf(stderr, "%s round %d: attach %lld ms, raced %lld (%lld ms)\n", what, rounds, t1 - t0, v[0],
			st_now_ms() - t0);
		if (v[0]) {
			raced++;
			ck_assert_msg(v[1] < 0, "%s round %d: after the conversion the exporter reads a wrong word at "
				      "+%lld of the page it changed during it (the old copy was mapped over its "
				      "change)", what, rounds, v[1]);
		}
		/* both sides see what the exporter wrote last: the tag, or the
		 * fill where the thread saw no freeze (a loaded machine: the
		 * conversion was over before it looked) and left the page alone */
		uint64_t want = v[2] ? RC_TAG : cv_pattern(40 + (uint64_t)rounds, PAGE / 8);
		if (v[2])
			ck_assert_int_eq((uint64_t)peer_ok(&e, "rd %#lx", (unsigned long)a + PAGE), RC_TAG);
		else /* the whole range, the page too (a word may not fit a long long) */
			peer_ok(&e, "check %#lx %zu %d", (unsigned long)a, (size_t)RANGE, 40 + rounds);
		uint64_t w = 0;
		int sig = cv_rd(p + PAGE, &w);
		/* SIGBUS only where the page was unmapped for a moment (the
		 * conversion, looking again, may have seen it so: a hole) */
		ck_assert_msg((sig == 0 && w == want) || (v[2] && op == 2 && sig == SIGBUS),
			      "%s round %d: importer reads %#llx (signal %d) at the %s page, want %#llx",
			      what, rounds, (unsigned long long)w, sig, v[2] ? "changed" : "untouched",
			      (unsigned long long)want);
		/* the rest of the range: the exporter's data (no ck_assert per word:
		 * each one is a message to Check's parent process) */
		const volatile uint64_t *pw = (const volatile uint64_t *)p;
		size_t bad = 0;
		for (size_t i = 0; i < RANGE / 8 && !bad; i++)
			if ((i < PAGE / 8 || i >= 2 * PAGE / 8) && pw[i] != cv_pattern(40 + (uint64_t)rounds, i))
				bad = i * 8;
		ck_assert_msg(!bad, "%s round %d: the rest of the range lost its data at +%zu", what, rounds, bad);
		ck_assert_int_eq(xpmem_detach(p), 0);
		peer_ok(&e, "munmap %#lx %zu", (unsigned long)a, (size_t)RANGE);
	}
	fprintf(stderr, "%s: %d of %d rounds raced the conversion\n", what, raced, rounds);
	ck_assert_msg(raced > 0, "%s: the call never landed during a conversion in %d rounds: the test "
		      "proved nothing", what, rounds);
	peer_stop(&e);
}

START_TEST(t_mapfixed)
{
	race_body(0, "mmap MAP_FIXED");
}
END_TEST

START_TEST(t_dontneed)
{
	race_body(1, "MADV_DONTNEED");
}
END_TEST

START_TEST(t_remap)
{
	race_body(2, "munmap + mmap");
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-racing");
	/* one case each: CK_RUN_CASE=remap runs one */
	TCase *tc = tcase_create("mapfixed");
	tcase_set_timeout(tc, tu_guard_s(60));
	tcase_add_test(tc, t_mapfixed);
	suite_add_tcase(s, tc);
	tc = tcase_create("dontneed");
	tcase_set_timeout(tc, tu_guard_s(60));
	tcase_add_test(tc, t_dontneed);
	suite_add_tcase(s, tc);
	tc = tcase_create("remap");
	tcase_set_timeout(tc, tu_guard_s(60));
	tcase_add_test(tc, t_remap);
	suite_add_tcase(s, tc);
	return st_run(s);
}
