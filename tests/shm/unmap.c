/* unmap.c - clients.md: "exporter munmaps or frees (large chunk) ->
 * importer's next access gets SIGBUS" (kernel XPMEM behaviour).  Kept
 * separate from data.c because design.md's arena (free = PUNCH_HOLE, address
 * = file offset) may read zeros instead: a disagreement to settle. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "shmtest.h"

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
	int sig = st_wait_signal(p + len / 2, 2000);
	unsigned char v = 0xee;
	if (!sig)
		tu_probe_read(p + len / 2, &v);
	ck_assert_msg(sig == SIGBUS, "exporter %s'd an 8 MiB chunk: importer's touch gave %s %d (byte now %#x), "
		      "clients.md wants SIGBUS", alloc_cmd, sig ? "signal" : "no signal", sig, v);
	ck_assert_int_eq(xpmem_detach(p), 0);
	ck_assert_int_eq(xpmem_release(a), 0);
	peer_stop(&e);
}

START_TEST(t_free_large)
{
	freed_then_touch("malloc", "free %#lx");
}
END_TEST

START_TEST(t_munmap)
{
	freed_then_touch("mmapanon", "munmap %#lx %zu");
}
END_TEST

int main(void)
{
	st_init();
	Suite *s = suite_create("shm-unmap");
	TCase *tc = tcase_create("unmap");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, t_free_large);
	tcase_add_test(tc, t_munmap);
	suite_add_tcase(s, tc);
	return st_run(s);
}
