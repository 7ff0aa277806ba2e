/* data.c - data and atomics through attachments, and address following
 * (an attachment follows the exporter's virtual address). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "shmtest.h"
#include "testutil.h"

static xpmem_apid_t get_all(struct peer *p, xpmem_segid_t *segp)
{
	long long seg = peer_ok(p, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	ck_assert_int_gt(seg, 0);
	errno = 0;
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(a > 0, "get(%lld) errno %d (%s)", seg, errno, strerror(errno));
	if (segp)
		*segp = seg;
	return a;
}

static void *attach_ok(xpmem_apid_t apid, uintptr_t off, size_t size)
{
	struct xpmem_addr ad = { apid, (off_t)off };
	errno = 0;
	void *p = xpmem_attach(ad, size, NULL);
	ck_assert_msg(p != ATTACH_FAILED, "attach(%#lx, %#zx) errno %d (%s)", off, size, errno, strerror(errno));
	return p;
}

/* 64 MiB arena buffer both ways, checked fully. */
START_TEST(t_data_64m)
{
	const size_t len = 64 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	xpmem_apid_t a = get_all(&e, NULL);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %zu", len);
	peer_ok(&e, "fill %#lx %zu 11", buf, len);
	void *p = attach_ok(a, buf, len);
	long bad = st_check(p, len, 11);
	ck_assert_msg(bad == -1, "importer reads wrong data at byte %ld of the exporter's 64 MiB buffer", bad);
	st_fill(p, len, 12);
	const char *r = peer_cmd(&e, "check %#lx %zu 12", buf, len);
	ck_assert_msg(strcmp(r, "ok") == 0, "exporter does not see the importer's writes: %s", r);
	/* and again the other way, after both sides have faulted everything in */
	peer_ok(&e, "fill %#lx %zu 13", buf, len);
	bad = st_check(p, len, 13);
	ck_assert_msg(bad == -1, "importer reads stale data at byte %ld after the exporter rewrote", bad);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST

/* Private anonymous mmap of an arena process is shareable too (design.md). */
START_TEST(t_data_mmap_anon)
{
	const size_t len = 4 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	xpmem_apid_t a = get_all(&e, NULL);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
	peer_ok(&e, "fill %#lx %zu 21", buf, len);
	void *p = attach_ok(a, buf, len);
	long bad = st_check(p, len, 21);
	ck_assert_msg(bad == -1, "private anonymous mmap of the exporter: wrong data at %ld", bad);
	st_fill(p, len, 22);
	ck_assert_str_eq(peer_cmd(&e, "check %#lx %zu 22", buf, len), "ok");
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST

#define CAS_N 200000L

struct cas_arg {
	volatile uint64_t *ctr;
	long n;
};

static void *cas_thread(void *v)
{
	struct cas_arg *c = v;
	for (long i = 0; i < c->n; i++) {
		uint64_t old = __atomic_load_n(c->ctr, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(c->ctr, &old, old + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
	}
	return NULL;
}

START_TEST(t_cas)
{
	struct peer e;
	peer_start(&e, PEER_ARENA);
	xpmem_apid_t a = get_all(&e, NULL);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %lu", PAGE);
	peer_ok(&e, "wr %#lx 0", buf + 64);
	char *p = attach_ok(a, buf, PAGE);
	volatile uint64_t *ctr = (volatile uint64_t *)(p + 64);
	ck_assert_int_eq(*ctr, 0);
	pthread_t th[2];
	struct cas_arg ca = { ctr, CAS_N };
	peer_ok(&e, "cas %#lx %ld 2", buf + 64, CAS_N);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, cas_thread, &ca), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	peer_ok(&e, "join");
	uint64_t want = 4 * (uint64_t)CAS_N;
	ck_assert_msg(*ctr == want, "importer sees counter %llu, want %llu", (unsigned long long)*ctr,
		      (unsigned long long)want);
	long long ev = peer_ok(&e, "rd %#lx", buf + 64);
	ck_assert_msg((uint64_t)ev == want, "exporter sees counter %lld, want %llu", ev, (unsigned long long)want);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST

/* free + malloc at the same address: the attachment made before reads the
 * new contents. */
static void follow_realloc(size_t len)
{
	struct peer e;
	peer_start(&e, PEER_ARENA);
	xpmem_apid_t a = get_all(&e, NULL);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "malloc %zu", len);
	peer_ok(&e, "fill %#lx %zu 31", buf, len);
	void *p = attach_ok(a, buf, len);
	ck_assert_msg(st_check(p, len, 31) == -1, "initial contents wrong");
	for (int round = 0; round < 3; round++) {
		uint64_t seed = 32 + (uint64_t)round;
		const char *r = peer_cmd(&e, "realloc_same %#lx %zu %llu", buf, len, (unsigned long long)seed);
		ck_assert_msg(strncmp(r, "ok", 2) == 0,
			      "exporter could not get the same %zu MiB address back after free (%s): 512 held + 20000 "
			      "malloc/free cycles never returned it", len / MiB, r);
		long bad = st_check(p, len, seed);
		ck_assert_msg(bad == -1, "round %d: attachment made before free+malloc reads stale/wrong data at byte %ld",
			      round, bad);
	}
	/* the exporter rewriting in place is followed too */
	peer_ok(&e, "fill %#lx %zu 40", buf, len);
	ck_assert_msg(st_check(p, len, 40) == -1, "in-place rewrite not seen");
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}

START_TEST(t_follow_realloc_1m)
{
	follow_realloc(1 * MiB);
}
END_TEST

START_TEST(t_follow_realloc_8m)
{
	follow_realloc(8 * MiB);
}
END_TEST

/* new memory mapped (MAP_FIXED) over the address: the attachment shows it */
START_TEST(t_follow_map_fixed)
{
	const size_t len = 8 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	xpmem_apid_t a = get_all(&e, NULL);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
	peer_ok(&e, "fill %#lx %zu 41", buf, len);
	void *p = attach_ok(a, buf, len);
	ck_assert_msg(st_check(p, len, 41) == -1, "initial contents wrong");
	ck_assert_int_eq(peer_ok(&e, "mmapfixed %#lx %zu 42", buf, len), (long long)buf);
	long bad = st_check(p, len, 42);
	ck_assert_msg(bad == -1, "after the exporter mapped new memory at the same address (MAP_FIXED) the old "
		      "attachment reads stale/wrong data at byte %ld", bad);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-data");
	TCase *tc = tcase_create("data");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_data_64m);
	tcase_add_test(tc, t_data_mmap_anon);
	tcase_add_test(tc, t_cas);
	tcase_add_test(tc, t_follow_realloc_1m);
	tcase_add_test(tc, t_follow_realloc_8m);
	tcase_add_test(tc, t_follow_map_fixed);
	suite_add_tcase(s, tc);
	return st_run(s);
}
