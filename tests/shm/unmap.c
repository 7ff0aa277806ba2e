/* unmap.c - an attachment follows the exporter's address after the exporter
 * frees or unmaps the memory behind it (clients.md: "exporter munmaps or
 * frees (large chunk) -> importer's next access gets SIGBUS").
 *
 * The rule underneath (issue 4's invariant): the importer reads what the
 * exporter would read at that address, or SIGBUS where the exporter has
 * nothing mapped; never old bytes, never zeros the exporter does not see.
 * - free(): glibc munmaps a large chunk (so the kernel XPMEM gives SIGBUS);
 *   the arena's jemalloc keeps it mapped, so the importer must read exactly
 *   what the exporter reads there.
 * - munmap(): the exporter has nothing mapped: SIGBUS.  Needs the userspace
 *   notice the arena gives libxpmem (importers re-resolve on their next
 *   touch); built as tests/shm/unmap_notify, which also checks that memory
 *   mapped again at the same address is followed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "shmtest.h"
#include "testutil.h"

static void freed_then_touch(const char *alloc_cmd, const char *free_fmt)
{
	const size_t len = 8 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a > 0);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "%s %zu", alloc_cmd, len);
	peer_ok(&e, "fill %#lx %zu 51", buf, len);
	struct xpmem_addr ad = { a, (off_t)buf };
	char *p = xpmem_attach(ad, len, NULL);
	ck_assert(p != ATTACH_FAILED);
	ck_assert(st_check(p, len, 51) == -1);
	peer_ok(&e, free_fmt, buf, len);
	if (strcmp(alloc_cmd, "malloc") == 0) {
		/* the exporter still maps it: both sides must read the same */
		uintptr_t at = buf + len / 2;
		const char *r = peer_cmd(&e, "rd %#lx", (unsigned long)at);
		unsigned long long ev = 0;
		int esig = 0;
		ck_assert_msg(sscanf(r, "ok %lld", (long long *)&ev) == 1 || sscanf(r, "sig %d", &esig) == 1,
			      "exporter rd: %s", r);
		unsigned char v = 0xee;
		int isig = tu_probe_read(p + len / 2, &v);
		if (esig)
			ck_assert_msg(isig == SIGBUS, "exporter faults (sig %d) at a freed address, importer got %d",
				      esig, isig);
		else
			ck_assert_msg(isig == 0 && v == (unsigned char)ev,
				      "after free: importer reads %#x (sig %d), exporter reads %#x there",
				      v, isig, (unsigned)(unsigned char)ev);
	} else if (st_wait_signal(p + len / 2, 2000) != SIGBUS) {
		/* No SIGBUS: right only if the exporter has memory there again
		 * (its allocator's next extent, under load) and the importer
		 * reads what it reads; bracketed by two reads of the exporter. */
		unsigned long at = (unsigned long)(buf + len / 2);
		char ex1[64], ex2[64];
		unsigned char v = 0xee;
		long long ev = 0;
		snprintf(ex1, sizeof(ex1), "%s", peer_cmd(&e, "rd %#lx", at));
		int isig = tu_probe_read(p + len / 2, &v);
		snprintf(ex2, sizeof(ex2), "%s", peer_cmd(&e, "rd %#lx", at));
		ck_assert_msg(!strcmp(ex1, ex2) && sscanf(ex1, "ok %lld", &ev) == 1 && !isig &&
				      v == (unsigned char)ev,
			      "exporter %s'd an 8 MiB chunk: importer's touch gave signal %d (byte %#x) "
			      "while the exporter read '%s', then '%s' there: want SIGBUS where it has "
			      "nothing mapped, its bytes where it has", alloc_cmd, isig, v, ex1, ex2);
		printf("note: %s: the exporter mapped memory at the unmapped address meanwhile (it "
		       "reads '%s'); the importer reads the same\n", alloc_cmd, ex1);
	}
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}

#ifndef UNMAP_NOTIFY
START_TEST(t_free_large)
{
	freed_then_touch("malloc", "free %#lx");
}
END_TEST
#else
START_TEST(t_munmap)
{
	freed_then_touch("mmapanon", "munmap %#lx %zu");
}
END_TEST

/* munmap, then an anonymous mmap the arena serves at the same address: the
 * importer's earlier attachment follows to the new contents. */
START_TEST(t_munmap_remap)
{
	const size_t len = 8 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a > 0);
	uintptr_t buf = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
	peer_ok(&e, "fill %#lx %zu 61", buf, len);
	char *p = xpmem_attach((struct xpmem_addr){ a, (off_t)buf }, len, NULL);
	ck_assert(p != ATTACH_FAILED);
	ck_assert(st_check(p, len, 61) == -1);
	int followed = 0;
	for (int round = 0; round < 20; round++) {
		peer_ok(&e, "munmap %#lx %zu", buf, len);
		uintptr_t again = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
		if (again != buf) { /* not reused: the old address must fault */
			ck_assert_int_eq(st_wait_signal(p, 2000), SIGBUS);
			peer_ok(&e, "munmap %#lx %zu", again, len);
			buf = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
			continue;
		}
		peer_ok(&e, "fill %#lx %zu %d", buf, len, 70 + round);
		long bad = st_check(p, len, (uint64_t)(70 + round));
		ck_assert_msg(bad == -1, "round %d: the attachment shows wrong bytes at %ld after munmap + mmap "
			      "at the same address", round, bad);
		followed++;
	}
	ck_assert_msg(followed > 0, "the arena never served the same address again");
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}
END_TEST
#endif

#ifdef UNMAP_NOTIFY
/* Arena pages the exporter does not have read as SIGBUS, not zeros (issue
 * 11): never allocated, unmapped after the attach and before it; memory it
 * maps there later is seen, and memory it maps but never touches reads
 * zeros shared with it. */
START_TEST(t_arena_holes)
{
	const size_t len = 2 * MiB;
	struct peer e;
	peer_start(&e, PEER_ARENA);
	long long seg = peer_ok(&e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	xpmem_apid_t a = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a > 0);
	/* the top of the arena: first fit never gets there */
	uintptr_t x = (uintptr_t)peer_ok(&e, "arenaend") - 64 * MiB;
	struct xpmem_addr ad = { a, (off_t)x };
	char *p = xpmem_attach(ad, len, NULL);
	ck_assert(p != ATTACH_FAILED);
	unsigned char v = 0xee;
	int sig = tu_probe_read(p + PAGE, &v);
	ck_assert_msg(sig == SIGBUS, "never allocated arena page: signal %d (byte %#x), want SIGBUS", sig, v);
	ck_assert_int_eq(tu_probe_write(p + len - 1, 1), SIGBUS);
	/* the same through an attachment with its own mapping (fixed address) */
	char *f = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(f != MAP_FAILED);
	munmap(f, len);
	ck_assert(xpmem_attach(ad, len, f) == f);
	ck_assert_int_eq(tu_probe_read(f + 2 * PAGE, &v), SIGBUS);

	/* the exporter maps memory there: seen at once, through both */
	peer_ok(&e, "mmapfixed %#lx %zu 81", x, len);
	long bad = st_check(p, len, 81);
	ck_assert_msg(bad == -1, "memory the exporter mapped over a hole: wrong bytes at %ld", bad);
	bad = st_check(f, len, 81);
	ck_assert_msg(bad == -1, "the same through a fixed-address attachment: wrong bytes at %ld", bad);
	ck_assert_int_eq(xpmem_detach(f), 0);

	/* unmapped: SIGBUS again */
	peer_ok(&e, "munmap %#lx %zu", x, len);
	ck_assert_int_eq(st_wait_signal(p + PAGE, 2000), SIGBUS);
	ck_assert_int_eq(xpmem_detach(p), 0);

	/* mapped, never touched by the exporter: zeros, and shared */
	uintptr_t m = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
	struct xpmem_addr am = { a, (off_t)m };
	char *q = xpmem_attach(am, len, NULL);
	ck_assert(q != ATTACH_FAILED);
	sig = tu_probe_read(q + 3 * PAGE, &v);
	ck_assert_msg(sig == 0 && v == 0, "untouched exporter memory: signal %d, byte %#x, want 0", sig, v);
	ck_assert_int_eq(tu_probe_write(q + 5 * PAGE, 0x5a), 0);
	ck_assert_str_eq(peer_cmd(&e, "rd %#lx", (unsigned long)(m + 5 * PAGE)), "ok 90");
	ck_assert_int_eq(xpmem_detach(q), 0);
	ck_assert_int_eq(xpmem_release(a), 0);

	/* written, then unmapped before this importer's get: SIGBUS, not the
	 * zeros the punched arena file holds there */
	uintptr_t u = (uintptr_t)peer_ok(&e, "mmapanon %zu", len);
	peer_ok(&e, "fill %#lx %zu 83", (unsigned long)u, len);
	peer_ok(&e, "munmap %#lx %zu", (unsigned long)u, len);
	xpmem_apid_t a2 = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert(a2 > 0);
	struct xpmem_addr au = { a2, (off_t)u };
	char *g = xpmem_attach(au, len, NULL);
	ck_assert(g != ATTACH_FAILED);
	sig = tu_probe_read(g + len / 2, &v);
	ck_assert_msg(sig == SIGBUS, "arena memory unmapped before the attach: signal %d (byte %#x), want SIGBUS",
		      sig, v);
	ck_assert_int_eq(xpmem_detach(g), 0);
	ck_assert_int_eq(xpmem_release(a2), 0);
	peer_stop(&e);
}
END_TEST
#endif

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-unmap");
	TCase *tc = tcase_create("unmap");
	tcase_set_timeout(tc, tu_guard_s(20));
#ifdef UNMAP_NOTIFY
	tcase_add_test(tc, t_munmap);
	if (!tu_under_valgrind()) { /* following needs userfaultfd, off under valgrind */
		tcase_add_test(tc, t_munmap_remap);
		tcase_add_test(tc, t_arena_holes);
	}
#else
	tcase_add_test(tc, t_free_large);
#endif
	suite_add_tcase(s, tc);
	return st_run(s);
}
