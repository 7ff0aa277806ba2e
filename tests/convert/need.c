/* need.c - an importer's refault converts only what it attached.  The
 * importer attaches one page of the exporter's glibc heap (a window around
 * it: 4 MiB of margin on each side); the exporter maps new memory over that
 * page (the importer's window part becomes a re-resolving placeholder); the
 * importer touches it.  The refault resolves 2 MiB from the page, and of
 * that the exporter may convert only the attached page, not the heap
 * around it that nobody attached (conversion changes the exporter's memory:
 * MAP_SHARED memfd pages, fork copies, DONTNEED punches). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

#define NCHUNK 48
#define CHUNK (64 * 1024) /* below cvpeer's mmap threshold: the brk heap */

START_TEST(t_refault_converts_need_only)
{
	struct peer e;
	cv_start(&e);
	xpmem_apid_t ap = cv_get_all(&e, NULL);
	uintptr_t first = 0;
	for (int i = 0; i < NCHUNK; i++) {
		uintptr_t m = (uintptr_t)peer_ok(&e, "malloc %d", CHUNK);
		if (!first)
			first = m;
	}
	uintptr_t a = PAGE_UP(first) + PAGE; /* a heap page, heap above it for > 2 MiB */
	peer_ok(&e, "fill %#lx %lu 71", (unsigned long)a, PAGE);
	char *p = cv_attach(ap, a, PAGE);
	ck_assert_int_eq(st_check(p, PAGE, 71), -1);
	long long before = peer_ok(&e, "convbytes %#lx %lu", (unsigned long)a, 4 * MiB);
	ck_assert_msg(before == (long long)PAGE, "the attach converted %lld bytes, want one page", before);

	/* new memory over the attached page: the importer's part of the window
	 * re-resolves on its next touch */
	peer_ok(&e, "mmapfixed %#lx %lu 72", (unsigned long)a, PAGE);
	uint64_t w = 0;
	int sig = cv_rd(p, &w);
	ck_assert_msg(sig == 0 && w == cv_pattern(72, 0), "the refault reads %#llx (signal %d), want the "
		      "exporter's new memory", (unsigned long long)w, sig);
	long long after = peer_ok(&e, "convbytes %#lx %lu", (unsigned long)a, 4 * MiB);
	ck_assert_msg(after <= (long long)PAGE, "the refault converted %lld bytes of the exporter's heap "
		      "around the attached page (nobody attached them)", after);
	ck_assert_int_eq(xpmem_detach(p), 0);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	/* the exporter's small chunks must be glibc's brk heap ([heap]: converted
	 * only as far as attached); a sanitizer's allocator mmaps anonymous
	 * regions, which are converted as one allocation by design */
	tu_require_libc_malloc();
	st_init();
	Suite *s = suite_create("convert-need");
	TCase *tc = tcase_create("need");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_refault_converts_need_only);
	suite_add_tcase(s, tc);
	return st_run(s);
}
