/* follow.c - an importer's earlier attachment of glibc heap / anonymous
 * memory of a plain exporter (no arena preload) follows what the exporter
 * does to its memory: it reads the exporter's current memory or raises
 * SIGBUS, never the old bytes.  Each case loops:
 *   a) free + malloc at the same address: a 1 MiB chunk (glibc mmaps and
 *      munmaps it: one INVALIDATED event for the whole chunk) and a small
 *      chunk (stays mapped: the importer reads exactly what the exporter
 *      reads, no event);
 *   b) mmap MAP_FIXED over part of an attached range (one event for that
 *      part; the rest stays shared);
 *   c) mremap of the range elsewhere (one event for all of it; SIGBUS at
 *      the old address, the moved memory attachable at the new one);
 *   d) MADV_DONTNEED of part of it: both sides read zeros at once, the
 *      memory stays shared, no event.
 * Re-attaching always shows the new memory.  Case d) is its own program
 * (tests/convert/dontneed, -DFOLLOW_DONTNEED). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

#ifndef FOLLOW_DONTNEED
#define FOLLOW_DONTNEED 0
#endif
#define WAIT_MS 3000
#define ROUNDS 50
#define BUDGET_MS 12000 /* per case: stop looping early on a slow machine */

static int followed, holes;

/* The importer's word at p vs the exporter's at x: the same value, or
 * SIGBUS in the importer; never anything else. */
static void coherent_word(struct peer *e, const void *p, uintptr_t x, const char *what, int round)
{
	uint64_t v = 0;
	int sig = cv_rd(p, &v);
	if (sig == SIGBUS) {
		holes++;
		return;
	}
	ck_assert_msg(sig == 0, "%s round %d: signal %d reading the old attachment", what, round, sig);
	const char *r = peer_cmd(e, "rd %#lx", (unsigned long)x);
	unsigned long long ev = 0;
	ck_assert_msg(sscanf(r, "ok %llu", &ev) == 1,
		      "%s round %d: importer reads %#llx at %#lx but the exporter has no memory there (%s)",
		      what, round, (unsigned long long)v, (unsigned long)x, r);
	ck_assert_msg(ev == v, "%s round %d: importer reads %#llx at %#lx, exporter %#llx (stale)", what, round,
		      (unsigned long long)v, (unsigned long)x, ev);
	followed++;
}

/* The importer's range [p, p+len) holds seed's pattern, or raises SIGBUS
 * (every word that does not is a failure). */
static void pattern_or_sigbus(const char *p, size_t len, uint64_t seed, const char *what, int round)
{
	uint64_t v;
	int sig = cv_rd(p, &v);
	if (sig == SIGBUS) {
		holes++;
		return;
	}
	ck_assert_int_eq(sig, 0);
	long bad = st_check(p, len, seed);
	ck_assert_msg(bad == -1, "%s round %d: the old attachment reads old/wrong bytes at +%ld", what, round, bad);
	followed++;
}

/* Exactly one INVALIDATED event with these fields (none more within 50 ms). */
static void one_event(xpmem_apid_t ap, long long seg, void *addr, size_t size, uintptr_t x, const char *what,
		      int round)
{
	ck_assert_msg(cv_events_wait(1, WAIT_MS) >= 1, "%s round %d: no INVALIDATED event within %d ms", what,
		      round, WAIT_MS);
	st_sleep_ms(20);
	ck_assert_msg(cv_events_count() == 1, "%s round %d: %d events, want 1", what, round, cv_events_count());
	const struct uxpmem_revoke_event *ev = cv_event(0);
	ck_assert_msg(ev->reason == UXPMEM_REVOKE_INVALIDATED && ev->apid == ap && ev->segid == seg,
		      "%s round %d: reason %d apid %#llx segid %#llx", what, round, ev->reason,
		      (long long)ev->apid, (long long)ev->segid);
	ck_assert_msg(ev->addr == addr && ev->size == size && ev->offset == (off_t)x && ev->length == size,
		      "%s round %d: event addr %p size %#zx offset %#llx length %#zx, want %p %#zx %#lx %#zx", what,
		      round, ev->addr, ev->size, (long long)ev->offset, ev->length, addr, size, (unsigned long)x,
		      size);
	cv_events_clear();
}

static void no_event(const char *what, int round)
{
	int n = cv_events_wait(1, 30);
	ck_assert_msg(n == 0, "%s round %d: %d unexpected events (first: reason %d addr %p size %#zx)", what,
		      round, n, n ? cv_event(0)->reason : 0, n ? cv_event(0)->addr : NULL, n ? cv_event(0)->size : 0);
}

static void report(const char *what, int rounds)
{
	fprintf(stderr, "%s: %d rounds (uid %d); old attachment followed the exporter %d times, SIGBUS %d times\n",
		what, rounds, (int)getuid(), followed, holes);
}

static void large_body(void)
{
	struct peer e;
	long long seg;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	cv_events_init();
	long long end = st_now_ms() + BUDGET_MS, v[4];
	int round, same = 0;
	followed = holes = 0;
	uintptr_t m = (uintptr_t)peer_ok(&e, "malloc %lu", MiB);
	for (round = 0; round < ROUNDS && st_now_ms() < end; round++) {
		uint64_t s1 = 1000 + (uint64_t)round, s2 = 5000 + (uint64_t)round;
		peer_ok(&e, "fill %#lx %lu %llu", m, MiB, (unsigned long long)s1);
		uintptr_t s = PAGE_DOWN(m), en = PAGE_UP(m + MiB);
		char *p = cv_attach(ap, s, en - s);
		ck_assert_msg(st_check(p + (m - s), MiB, s1) == -1, "large round %d: attachment wrong", round);
		cv_events_clear();
		peer_okv(&e, v, "freemalloc %#lx %lu %llu", m, MiB, (unsigned long long)s2);
		uintptr_t m2 = (uintptr_t)v[0];
		same += (int)v[1];
		/* glibc munmapped the chunk [s, en): one event for all of it */
		one_event(ap, seg, p, en - s, s, "free+malloc 1 MiB", round);
		if (m2 == m)
			pattern_or_sigbus(p + (m - s), MiB, s2, "free+malloc 1 MiB", round);
		coherent_word(&e, p + (m - s), m, "free+malloc 1 MiB", round);
		coherent_word(&e, p + (m - s) + MiB / 2, m + MiB / 2, "free+malloc 1 MiB", round);
		/* re-attaching shows the new memory */
		uintptr_t s_2 = PAGE_DOWN(m2), en2 = PAGE_UP(m2 + MiB);
		char *q = cv_attach(ap, s_2, en2 - s_2);
		ck_assert_msg(st_check(q + (m2 - s_2), MiB, s2) == -1, "large round %d: re-attachment wrong", round);
		ck_assert_int_eq(xpmem_detach(q), 0);
		ck_assert_int_eq(xpmem_detach(p), 0);
		m = m2;
	}
	report("free+malloc 1 MiB", round);
	ck_assert_msg(same > 0, "glibc never returned the same 1 MiB chunk address in %d rounds", round);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}

START_TEST(t_large)
{
	large_body();
}
END_TEST

START_TEST(t_large_nobody)
{
	cv_become_nobody();
	large_body();
}
END_TEST

START_TEST(t_small)
{
	struct peer e;
	long long seg;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	cv_events_init();
	enum { SZ = 200 };
	long long v[4], end = st_now_ms() + BUDGET_MS;
	uintptr_t m = (uintptr_t)peer_ok(&e, "malloc %d", SZ);
	uintptr_t s = PAGE_DOWN(m), en = PAGE_UP(m + SZ);
	char *p = cv_attach(ap, s, en - s);
	int round, same = 0;
	for (round = 0; round < 4 * ROUNDS && st_now_ms() < end; round++) {
		uint64_t seed = 9000 + (uint64_t)round;
		peer_okv(&e, v, "freemalloc %#lx %d %llu", m, SZ, (unsigned long long)seed);
		if ((uintptr_t)v[0] != m) { /* glibc chose another chunk: follow it once, not an error */
			peer_ok(&e, "free %#llx", v[0]);
			continue;
		}
		same++;
		/* the page stayed mapped: exactly what the exporter reads */
		ck_assert_str_eq(peer_cmd(&e, "check %#lx %d %llu", m, SZ, (unsigned long long)seed), "ok");
		long bad = st_check(p + (m - s), SZ, seed);
		ck_assert_msg(bad == -1, "small chunk round %d: importer reads old bytes at +%ld", round, bad);
		/* and the other way */
		*(volatile uint64_t *)(p + (m - s) + 8) = 0x5eed0000ULL + (uint64_t)round;
		ck_assert_int_eq(peer_ok(&e, "rd %#lx", m + 8), 0x5eed0000LL + round);
		no_event("small chunk", round);
	}
	fprintf(stderr, "small chunk: %d rounds, %d at the same address\n", round, same);
	ck_assert_msg(same >= round / 2, "glibc returned the same small chunk only %d times in %d", same, round);
	char *q = cv_attach(ap, s, en - s);
	ck_assert_int_eq(memcmp(q, p, en - s), 0);
	ck_assert_int_eq(xpmem_detach(q), 0);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

/* The importer keeps a window after its last detach (importer.c): attaching
 * the range again reuses it, but not once the exporter changed the memory. */
START_TEST(t_idle_window)
{
	struct peer e;
	long long seg, v[4];
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	uintptr_t m = (uintptr_t)peer_ok(&e, "malloc %lu", MiB);
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t s1 = 7000 + (uint64_t)round, s2 = 8000 + (uint64_t)round;
		peer_ok(&e, "fill %#lx %lu %llu", m, MiB, (unsigned long long)s1);
		uintptr_t s = PAGE_DOWN(m), en = PAGE_UP(m + MiB);
		char *p = cv_attach(ap, s, en - s);
		ck_assert_msg(st_check(p + (m - s), MiB, s1) == -1, "idle window round %d: attachment wrong", round);
		ck_assert_int_eq(xpmem_detach(p), 0);
		char *again = cv_attach(ap, s + PAGE, en - s - PAGE);
		ck_assert_msg(again == p + PAGE, "idle window round %d: a range inside the last one was not "
			      "served from its window (%p, want %p)", round, (void *)again, (void *)(p + PAGE));
		ck_assert_int_eq(xpmem_detach(again), 0);
		peer_okv(&e, v, "freemalloc %#lx %lu %llu", m, MiB, (unsigned long long)s2);
		uintptr_t m2 = (uintptr_t)v[0], s_2 = PAGE_DOWN(m2), en2 = PAGE_UP(m2 + MiB);
		char *q = cv_attach(ap, s_2, en2 - s_2);
		ck_assert_msg(st_check(q + (m2 - s_2), MiB, s2) == -1,
			      "idle window round %d: an attach after free+malloc shows old bytes", round);
		ck_assert_int_eq(xpmem_detach(q), 0);
		m = m2;
	}
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

#define RL (256 * 1024UL)
#define K64 (64 * 1024UL)

START_TEST(t_fixed)
{
	struct peer e;
	long long seg;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	cv_events_init();
	long long end = st_now_ms() + BUDGET_MS;
	int round;
	followed = holes = 0;
	for (round = 0; round < ROUNDS && st_now_ms() < end; round++) {
		uint64_t s1 = 100 + (uint64_t)round, s2 = 700 + (uint64_t)round;
		uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %lu", RL);
		peer_ok(&e, "fill %#lx %lu %llu", a, RL, (unsigned long long)s1);
		char *p = cv_attach(ap, a, RL);
		ck_assert(st_check(p, RL, s1) == -1);
		cv_events_clear();
		peer_ok(&e, "mmapfixed %#lx %lu %llu", a + K64, K64, (unsigned long long)s2);
		one_event(ap, seg, p + K64, K64, a + K64, "MAP_FIXED", round);
		pattern_or_sigbus(p + K64, K64, s2, "MAP_FIXED", round);
		coherent_word(&e, p + K64 + 8, a + K64 + 8, "MAP_FIXED", round);
		/* the rest is still the shared memory */
		ck_assert_msg(st_check(p, K64, s1) == -1, "MAP_FIXED round %d: part before lost", round);
		ck_assert_msg(((volatile uint64_t *)p)[2 * K64 / 8 + 5] == st_pattern(s1, 2 * K64 / 8 + 5), "MAP_FIXED round %d: part after lost", round);
		peer_ok(&e, "wr %#lx %llu", a + 3 * K64, 0xabcdULL + (unsigned long long)round);
		ck_assert_msg(*(volatile uint64_t *)(p + 3 * K64) == 0xabcdULL + (uint64_t)round,
			      "MAP_FIXED round %d: part after no longer shared", round);
		/* re-attach */
		char *q = cv_attach(ap, a, RL);
		ck_assert(st_check(q, K64, s1) == -1);
		ck_assert_msg(st_check(q + K64, K64, s2) == -1, "MAP_FIXED round %d: re-attachment misses the new memory", round);
		ck_assert(*(volatile uint64_t *)(q + 3 * K64) == 0xabcdULL + (uint64_t)round);
		ck_assert_int_eq(xpmem_detach(q), 0);
		ck_assert_int_eq(xpmem_detach(p), 0);
		peer_ok(&e, "munmap %#lx %lu", a, RL);
		cv_events_clear();
	}
	report("MAP_FIXED", round);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

START_TEST(t_mremap)
{
	struct peer e;
	long long seg;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	cv_events_init();
	long long end = st_now_ms() + BUDGET_MS;
	int round;
	for (round = 0; round < ROUNDS && st_now_ms() < end; round++) {
		uint64_t s1 = 300 + (uint64_t)round;
		uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %lu", RL);
		peer_ok(&e, "fill %#lx %lu %llu", a, RL, (unsigned long long)s1);
		char *p = cv_attach(ap, a, RL);
		ck_assert(st_check(p, RL, s1) == -1);
		cv_events_clear();
		uintptr_t b = (uintptr_t)peer_ok(&e, "mremap %#lx %lu", a, RL);
		ck_assert(b != a);
		one_event(ap, seg, p, RL, a, "mremap", round);
		/* the old addresses are gone in the exporter: SIGBUS */
		ck_assert_msg(strncmp(peer_cmd(&e, "rd %#lx", a), "sig", 3) == 0, "exporter still has memory at %#lx", a);
		uint64_t v;
		ck_assert_msg(cv_rd(p, &v) == SIGBUS && cv_rd(p + RL - 8, &v) == SIGBUS,
			      "mremap round %d: the old attachment is readable after the range moved away", round);
		char *q = cv_attach(ap, a, RL);
		ck_assert_msg(cv_rd(q, &v) == SIGBUS, "mremap round %d: re-attaching the old range is not a hole", round);
		/* the moved memory, attached at its new address, is the same */
		char *r = cv_attach(ap, b, RL);
		ck_assert_msg(st_check(r, RL, s1) == -1, "mremap round %d: moved memory wrong", round);
		peer_ok(&e, "wr %#lx %llu", b + 16, 0x7777ULL + (unsigned long long)round);
		ck_assert(*(volatile uint64_t *)(r + 16) == 0x7777ULL + (uint64_t)round);
		*(volatile uint64_t *)(r + 24) = 0x8888ULL + (uint64_t)round;
		ck_assert_int_eq(peer_ok(&e, "rd %#lx", b + 24), 0x8888LL + round);
		ck_assert_int_eq(xpmem_detach(r), 0);
		ck_assert_int_eq(xpmem_detach(q), 0);
		ck_assert_int_eq(xpmem_detach(p), 0);
		peer_ok(&e, "munmap %#lx %lu", b, RL);
		cv_events_clear();
	}
	fprintf(stderr, "mremap: %d rounds\n", round);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

START_TEST(t_dontneed)
{
	struct peer e;
	long long seg;
	if (cv_start(&e) < UXPMEM_EXPORT_FULL) {
		/* documented: with user-mode-only userfaultfd the exporter may read
		 * the old bytes for microseconds after madvise (xpmem(7)) */
		fprintf(stderr, "MADV_DONTNEED: exporter below export level FULL, not checked\n");
		peer_stop(&e);
		return;
	}
	xpmem_apid_t ap = cv_get_all(&e, &seg);
	cv_events_init();
	long long end = st_now_ms() + BUDGET_MS;
	int round;
	for (round = 0; round < ROUNDS && st_now_ms() < end; round++) {
		uint64_t s1 = 500 + (uint64_t)round;
		uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %lu", RL);
		peer_ok(&e, "fill %#lx %lu %llu", a, RL, (unsigned long long)s1);
		char *p = cv_attach(ap, a, RL);
		ck_assert(st_check(p, RL, s1) == -1);
		cv_events_clear();
		/* the exporter checks zeros right after madvise returns */
		const char *r = peer_cmd(&e, "madv %#lx %lu", a + K64, 2 * K64);
		ck_assert_msg(!strcmp(r, "ok"), "MADV_DONTNEED round %d: the exporter reads old bytes right after "
			      "madvise returned (%s: offset in the range)", round, r);
		for (size_t w = 0; w < 2 * K64 / 8; w++)
			ck_assert_msg(((volatile uint64_t *)(p + K64))[w] == 0,
				      "MADV_DONTNEED round %d: importer reads old bytes at +%#zx", round, K64 + w * 8);
		ck_assert(st_check(p, K64, s1) == -1);
		no_event("MADV_DONTNEED", round);
		/* still shared both ways */
		peer_ok(&e, "wr %#lx %llu", a + K64 + 8, 0x4242ULL + (unsigned long long)round);
		ck_assert(*(volatile uint64_t *)(p + K64 + 8) == 0x4242ULL + (uint64_t)round);
		*(volatile uint64_t *)(p + 2 * K64) = 0x4343ULL + (uint64_t)round;
		ck_assert_int_eq(peer_ok(&e, "rd %#lx", a + 2 * K64), 0x4343LL + round);
		char *q = cv_attach(ap, a, RL);
		ck_assert(*(volatile uint64_t *)(q + K64 + 8) == 0x4242ULL + (uint64_t)round);
		ck_assert(*(volatile uint64_t *)(q + K64 + 16) == 0);
		ck_assert_int_eq(xpmem_detach(q), 0);
		ck_assert_int_eq(xpmem_detach(p), 0);
		peer_ok(&e, "munmap %#lx %lu", a, RL);
		cv_events_clear();
	}
	fprintf(stderr, "MADV_DONTNEED: %d rounds\n", round);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	tu_require_libc_malloc(); /* free must munmap, as glibc's does */
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-follow");
	TCase *tc = tcase_create("follow");
	tcase_set_timeout(tc, tu_guard_s(30));
	if (FOLLOW_DONTNEED) {
		tcase_add_test(tc, t_dontneed);
	} else {
		tcase_add_test(tc, t_large);
		tcase_add_test(tc, t_large_nobody);
		tcase_add_test(tc, t_small);
		tcase_add_test(tc, t_idle_window);
		tcase_add_test(tc, t_fixed);
		tcase_add_test(tc, t_mremap);
	}
	suite_add_tcase(s, tc);
	return st_run(s);
}
