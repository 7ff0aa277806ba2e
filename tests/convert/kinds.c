/* kinds.c - stack, .bss and .data memory of a plain exporter (no preload)
 * are attachable and coherent both ways, including the stack buffer of a
 * thread that keeps running and writing; converting .data stops the
 * exporter's threads without a system call of theirs noticing, and a
 * thread that cannot be stopped leaves .data a hole (SIGBUS, never stale
 * bytes); and fork: after the exporter forked with converted heap, .bss
 * and .data ranges, the child's writes are not seen by the parent nor the
 * reverse, and the importer keeps following the parent. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "cvimp.h"

/* Both ways through [p, p+len) = exporter's [x, x+len). */
static void both_ways(struct peer *e, char *p, uintptr_t x, size_t len, uint64_t seed, const char *what)
{
	peer_ok(e, "fill %#lx %zu %llu", x, len, (unsigned long long)seed);
	ck_assert_msg(st_check(p, len, seed) == -1, "%s: the exporter's writes are not seen by the importer", what);
	st_fill(p, len, seed + 1);
	const char *r = peer_cmd(e, "check %#lx %zu %llu", x, len, (unsigned long long)seed + 1);
	ck_assert_msg(!strcmp(r, "ok"), "%s: the importer's writes are not seen by the exporter (%s)", what, r);
}

START_TEST(t_bss_mstack)
{
	struct peer e;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	long long v[4];
	peer_okv(&e, v, "static");
	uintptr_t bss = (uintptr_t)v[0];
	size_t bl = (size_t)v[1];
	char *pb = cv_attach(ap, bss, bl);
	both_ways(&e, pb, bss, bl, 11, ".bss");
	peer_okv(&e, v, "mstack");
	uintptr_t ms = (uintptr_t)v[0];
	size_t ml = (size_t)v[1];
	char *pm = cv_attach(ap, ms, ml);
	both_ways(&e, pm, ms, ml, 21, "main thread stack buffer");
	/* later writes, single words */
	peer_ok(&e, "wr %#lx 77", bss + 4096);
	ck_assert(*(volatile uint64_t *)(pb + 4096) == 77);
	ck_assert_int_eq(xpmem_detach(pb), 0);
	ck_assert_int_eq(xpmem_detach(pm), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

/* An exporter, an apid for all of it, and its .data area. */
struct dpeer {
	struct peer e;
	xpmem_apid_t ap;
	uintptr_t data;
	size_t dl;
};

static void data_start(struct dpeer *d)
{
	long long v[4];
	cv_start(&d->e);
	d->ap = cv_get_all(&d->e, NULL);
	peer_okv(&d->e, v, "static");
	d->data = (uintptr_t)v[2];
	d->dl = (size_t)v[3];
}

/* Attach the exporter's .data: converted, not a hole. */
static char *data_attach(struct dpeer *d, const char *what)
{
	uint64_t w;
	char *pd = cv_attach(d->ap, d->data, d->dl);
	ck_assert_msg(cv_rd(pd, &w) == 0, "%s: the exporter's .data is a hole (signal on touch)", what);
	return pd;
}

static void data_stop(struct dpeer *d, char *pd)
{
	ck_assert_int_eq(xpmem_detach(pd), 0);
	ck_assert_int_eq(xpmem_release(d->ap), 0);
	peer_stop(&d->e);
}

START_TEST(t_data)
{
	if (!tu_threads_stoppable("t_data"))
		return;
	struct dpeer d;
	data_start(&d);
	ck_assert_int_eq(peer_ok(&d.e, "hooked %#lx %zu", d.data, d.dl), 0);
	char *pd = data_attach(&d, "t_data");
	/* a conversion is transparent: no memory hook ran for it (hooks are
	 * application code; tests/convert/hooks) */
	ck_assert_int_eq(peer_ok(&d.e, "hooked %#lx %zu", d.data, d.dl), 0);
	both_ways(&d.e, pd, d.data, d.dl, 41, ".data");
	peer_ok(&d.e, "wr %#lx 78", d.data + 8192);
	ck_assert(*(volatile uint64_t *)(pd + 8192) == 78);
	*(volatile uint64_t *)(pd + 4096 + 8) = 79;
	ck_assert_int_eq(peer_ok(&d.e, "rd %#lx", d.data + 4096 + 8), 79);
	data_stop(&d, pd);
}
END_TEST

/* A thread blocked in read(2) while .data is converted (all threads
 * stopped by a signal): its read goes on and returns what was written. */
START_TEST(t_data_syscall)
{
	if (!tu_threads_stoppable("t_data_syscall"))
		return;
	struct dpeer d;
	long long v[4];
	data_start(&d);
	peer_ok(&d.e, "pipewait");
	char *pd = data_attach(&d, "t_data_syscall");
	peer_okv(&d.e, v, "pipefeed 7");
	ck_assert_msg(v[0] == 7 && v[1] == 0, "the blocked read(2) returned %lld (errno %lld), want 7 bytes",
		      v[0], v[1]);
	data_stop(&d, pd);
}
END_TEST

/* A thread that blocks every signal cannot be stopped: .data stays a hole
 * (SIGBUS when touched, never the exporter's old bytes); once it is gone
 * a new attachment converts it. */
START_TEST(t_data_unstoppable)
{
	if (!tu_threads_stoppable("t_data_unstoppable"))
		return;
	struct dpeer d;
	uint64_t w;
	data_start(&d);
	peer_ok(&d.e, "fill %#lx %zu 51", d.data, d.dl);
	peer_ok(&d.e, "sigblock");
	char *pd = cv_attach(d.ap, d.data, d.dl);
	ck_assert_int_eq(cv_rd(pd, &w), SIGBUS);
	ck_assert_int_eq(xpmem_detach(pd), 0);
	peer_ok(&d.e, "sigblockstop");
	pd = data_attach(&d, "after the unstoppable thread ended");
	ck_assert_msg(st_check(pd, d.dl, 51) == -1, ".data converted late does not hold the exporter's data");
	data_stop(&d, pd);
}
END_TEST

START_TEST(t_thread_stack)
{
	struct peer e;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	long long v[4];
	peer_okv(&e, v, "stackthr");
	uintptr_t sb = (uintptr_t)v[0];
	size_t sl = (size_t)v[1];
	ck_assert_int_eq(sl, CV_STACK_BUF);
	/* attached while the thread spins writing word 0 */
	volatile uint64_t *w = cv_attach(ap, sb, sl);
	uint64_t c1 = w[0], c2 = c1;
	/* bounded wait: a starved thread may not run for a while */
	for (long long end = st_now_ms() + tu_guard_ms(10000); c2 == c1 && st_now_ms() < end;) {
		st_sleep_ms(10);
		c2 = w[0];
	}
	ck_assert_msg(c2 > c1, "the running thread's stack counter does not move in the importer (%llu -> %llu)",
		      (unsigned long long)c1, (unsigned long long)c2);
	/* importer -> running thread -> importer: the thread echoes word 1 into word 2 */
	for (uint64_t k = 1; k <= 20; k++) {
		w[1] = 0x1000 + k;
		long long end = st_now_ms() + tu_guard_ms(2000);
		while (w[2] != 0x1000 + k && st_now_ms() < end)
			;
		ck_assert_msg(w[2] == 0x1000 + k, "the running thread did not echo %llu (word 2 = %llu)",
			      (unsigned long long)(0x1000 + k), (unsigned long long)w[2]);
	}
	/* the rest of the buffer, both ways, while the thread runs */
	both_ways(&e, (char *)w + 4096, sb + 4096, sl - 4096, 31, "running thread's stack buffer");
	/* the top of its stack, where glibc keeps its descriptor: never
	 * converted, or a fork's child, which marks every other thread's stack
	 * free (tid = 0), would do it to the parent's running thread */
	uintptr_t tcb = (uintptr_t)v[2] & ~(uintptr_t)(PAGE - 1);
	void *pt = cv_attach(ap, tcb, PAGE);
	ck_assert_int_eq(peer_ok(&e, "convbytes %#lx %zu", tcb, (size_t)PAGE), 0);
	const char *r = peer_cmd(&e, "fork 999 0 0 0 0 0");
	ck_assert_msg(!strncmp(r, "ok", 2), "fork: %s", r);
	int fst = (int)peer_ok(&e, "forkend");
	ck_assert_msg(WIFEXITED(fst) && WEXITSTATUS(fst) == 0, "fork child status %#x", fst);
	r = peer_cmd(&e, "tidcheck %#lx", (unsigned long)v[2]);
	ck_assert_msg(!strcmp(r, "ok"), "after a fork the parent's running thread is not found by its tid (%s)", r);
	ck_assert_int_eq(xpmem_detach(pt), 0);
	uint64_t final = (uint64_t)peer_ok(&e, "stackstop");
	ck_assert_msg(w[0] == final, "after the thread stopped the importer reads %llu, its count is %llu",
		      (unsigned long long)w[0], (unsigned long long)final);
	ck_assert_int_eq(xpmem_detach((void *)w), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

START_TEST(t_fork)
{
	struct peer e;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	long long v[4];
	peer_okv(&e, v, "static");
	uintptr_t bss = (uintptr_t)v[0];
	size_t bl = (size_t)v[1];
	uintptr_t data = (uintptr_t)v[2];
	size_t dl = (size_t)v[3];
	const size_t hl = 256 * 1024;
	uintptr_t h = (uintptr_t)peer_ok(&e, "memalign %zu", hl);
	peer_ok(&e, "fill %#lx %zu 41", h, hl);
	peer_ok(&e, "fill %#lx %zu 42", bss, bl);
	peer_ok(&e, "fill %#lx %zu 43", data, dl);
	char *ph = cv_attach(ap, h, hl), *pb = cv_attach(ap, bss, bl); /* converted now */
	int with_data = tu_threads_stoppable("t_fork: .data");
	char *pd = with_data ? cv_attach(ap, data, dl) : NULL;
	ck_assert(st_check(ph, hl, 41) == -1 && st_check(pb, bl, 42) == -1);
	ck_assert(!pd || st_check(pd, dl, 43) == -1);
	/* the page of the main thread's descriptor too: never converted (a
	 * hole), or the child writing its copy of it would rewrite the
	 * parent's (its tid: the parent's pthread_kill() would fail) */
	uintptr_t tcb = (uintptr_t)peer_ok(&e, "tcb") & ~(uintptr_t)(PAGE - 1);
	char *pt = cv_attach(ap, tcb, PAGE);
	ck_assert_int_eq(peer_ok(&e, "convbytes %#lx %zu", tcb, (size_t)PAGE), 0);
	for (int round = 0; round < 3; round++) {
		uint64_t ps = 400 + (uint64_t)round * 10; /* the parent's */
		peer_ok(&e, "fill %#lx %zu %llu", h, hl, (unsigned long long)ps);
		peer_ok(&e, "fill %#lx %zu %llu", bss, bl, (unsigned long long)ps + 1);
		/* the child fills both with 999: the parent must still read its own */
		const char *r = peer_cmd(&e, "fork 999 %llu %#lx %zu 0 0", (unsigned long long)ps, h, hl);
		ck_assert_msg(!strncmp(r, "ok", 2), "round %d: fork (heap): the child's writes reached the parent (%s)",
			      round, r);
		ck_assert_msg(st_check(ph, hl, ps) == -1, "round %d: the importer sees the child's heap writes", round);
		peer_ok(&e, "fill %#lx %zu %llu", h, hl, (unsigned long long)ps + 5);
		ck_assert_msg(st_check(ph, hl, ps + 5) == -1, "round %d: the importer stopped following the parent", round);
		int st = (int)peer_ok(&e, "forkend");
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "round %d: fork child status %#x (exit 20: the parent's later writes reached it)", round, st);
		r = peer_cmd(&e, "tidcheck");
		ck_assert_msg(!strcmp(r, "ok"), "round %d: after a fork (heap) the parent's main thread is not found by "
			      "its tid (%s)", round, r);
		r = peer_cmd(&e, "fork 998 %llu %#lx %zu 0 0", (unsigned long long)ps + 1, bss, bl);
		ck_assert_msg(!strncmp(r, "ok", 2), "round %d: fork (.bss): the child's writes reached the parent (%s)",
			      round, r);
		ck_assert_msg(st_check(pb, bl, ps + 1) == -1, "round %d: the importer sees the child's .bss writes", round);
		peer_ok(&e, "fill %#lx %zu %llu", bss, bl, (unsigned long long)ps + 6);
		ck_assert(st_check(pb, bl, ps + 6) == -1);
		st = (int)peer_ok(&e, "forkend");
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: .bss fork child status %#x", round, st);
		r = peer_cmd(&e, "tidcheck");
		ck_assert_msg(!strcmp(r, "ok"), "round %d: after a fork (.bss) the parent's main thread is not found by "
			      "its tid (%s)", round, r);
		if (!pd)
			goto importer_writes;
		peer_ok(&e, "fill %#lx %zu %llu", data, dl, (unsigned long long)ps + 2);
		r = peer_cmd(&e, "fork 997 %llu %#lx %zu 0 0", (unsigned long long)ps + 2, data, dl);
		ck_assert_msg(!strncmp(r, "ok", 2), "round %d: fork (.data): the child's writes reached the parent (%s)",
			      round, r);
		ck_assert_msg(st_check(pd, dl, ps + 2) == -1, "round %d: the importer sees the child's .data writes", round);
		peer_ok(&e, "fill %#lx %zu %llu", data, dl, (unsigned long long)ps + 8);
		ck_assert(st_check(pd, dl, ps + 8) == -1);
		st = (int)peer_ok(&e, "forkend");
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: .data fork child status %#x", round, st);
		r = peer_cmd(&e, "tidcheck");
		ck_assert_msg(!strcmp(r, "ok"), "round %d: after a fork (.data) the parent's main thread is not found by "
			      "its tid (%s)", round, r);
importer_writes:
		/* and the importer's writes still reach the parent */
		st_fill(ph, hl, ps + 7);
		ck_assert_str_eq(peer_cmd(&e, "check %#lx %zu %llu", h, hl, (unsigned long long)ps + 7), "ok");
	}
	ck_assert_int_eq(xpmem_detach(ph), 0);
	ck_assert_int_eq(xpmem_detach(pb), 0);
	ck_assert_int_eq(xpmem_detach(pt), 0);
	if (pd)
		ck_assert_int_eq(xpmem_detach(pd), 0);
	ck_assert_int_eq(xpmem_release(ap), 0);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-kinds");
	TCase *tc = tcase_create("kinds");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_bss_mstack);
	tcase_add_test(tc, t_data);
	tcase_add_test(tc, t_data_syscall);
	tcase_add_test(tc, t_data_unstoppable);
	tcase_add_test(tc, t_thread_stack);
	tcase_add_test(tc, t_fork);
	suite_add_tcase(s, tc);
	return st_run(s);
}
