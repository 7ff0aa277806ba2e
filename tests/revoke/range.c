/* range.c - range invalidation (issue 4): a plain exporter (tests/shm/peer,
 * no arena preload) munmaps part of an exported, attached anonymous range;
 * each of 3 importers gets exactly one UXPMEM_REVOKE_INVALIDATED event in
 * each form it registered (per-apid callback or default handler, and the
 * fd form), with the importer's addr/size of the invalidated part and the
 * exporter's offset/length in the segment; the invalidated part raises
 * SIGBUS, the rest stays readable. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "rvtest.h"
#include "shmtest.h"

#define NI 3
#define LEN (1 * MiB)
#define HOLE_OFF (256 * 1024UL)
#define HOLE_LEN (128 * 1024UL)

static void check_ev(const struct rvev *ev, long long apid, long long seg, unsigned long addr, const char *what,
		     int i)
{
	ck_assert_msg(ev->reason == UXPMEM_REVOKE_INVALIDATED, "importer %d %s: reason %d", i, what, ev->reason);
	ck_assert_msg(ev->apid == apid && ev->segid == seg, "importer %d %s: apid %#llx segid %#llx, want %#llx %#llx",
		      i, what, ev->apid, ev->segid, apid, seg);
	ck_assert_msg(ev->addr == addr + HOLE_OFF && ev->size == HOLE_LEN,
		      "importer %d %s: addr %#lx size %#zx, want %#lx %#lx", i, what, ev->addr, ev->size,
		      addr + HOLE_OFF, HOLE_LEN);
	ck_assert_msg(ev->offset == (long long)HOLE_OFF && ev->length == HOLE_LEN,
		      "importer %d %s: offset %#llx length %#zx, want %#lx %#lx", i, what, ev->offset, ev->length,
		      HOLE_OFF, HOLE_LEN);
}

START_TEST(t_range)
{
	struct peer e;
	struct peer im[NI];
	long long ap[NI];
	unsigned long at[NI];
	peer_start(&e, PEER_PLAIN);
	uintptr_t a = (uintptr_t)peer_ok(&e, "mmapanon %lu", LEN);
	peer_ok(&e, "fill %#lx %lu 7", a, LEN);
	long long seg = peer_ok(&e, "make %#lx %lu 0600", a, LEN);
	for (int i = 0; i < NI; i++) {
		rv_start(&im[i], 0);
		ck_assert_int_ge(rv_ok(&im[i], NULL, 0, "fdinit"), 0);
		ap[i] = rv_ok(&im[i], NULL, 0, "get %lld %d", seg, XPMEM_RDWR);
		if (i < 2)
			rv_ok(&im[i], NULL, 0, "handler %lld cb rec", ap[i]);
		else
			rv_ok(&im[i], NULL, 0, "handler 0 def rec");
		at[i] = (unsigned long)rv_ok(&im[i], NULL, 0, "attach %lld 0 %lu 0", ap[i], LEN);
		const char *r = peer_cmd(&im[i], "rd %#lx", at[i] + HOLE_OFF);
		unsigned long long w = 0;
		ck_assert_msg(sscanf(r, "ok %llu", &w) == 1 && w == st_pattern(7, HOLE_OFF / 8),
			      "importer %d: attachment of the exporter's anonymous memory reads '%s'", i, r);
	}
	peer_ok(&e, "munmap %#lx %lu", a + HOLE_OFF, HOLE_LEN);
	for (int i = 0; i < NI; i++) {
		const char *tag = i < 2 ? "cb" : "def";
		ck_assert_msg(rv_ok(&im[i], NULL, 0, "fdwait 1 5000") == 1, "importer %d: no fd event", i);
		ck_assert_msg(rv_ok(&im[i], NULL, 0, "wait %s 1 5000", tag) >= 1, "importer %d: no %s event", i, tag);
	}
	st_sleep_ms(300); /* duplicates would arrive meanwhile */
	for (int i = 0; i < NI; i++) {
		const char *tag = i < 2 ? "cb" : "def";
		struct rvev cb, fd;
		ck_assert_int_eq(rv_ok(&im[i], NULL, 0, "fdwait 2 0"), 1);
		ck_assert_msg(rv_count(&im[i], tag) == 1 && rv_count(&im[i], "") == 2,
			      "importer %d: %d %s events, %d in all (want 1 and 2)", i, rv_count(&im[i], tag), tag,
			      rv_count(&im[i], ""));
		rv_ev(&im[i], tag, 0, &cb);
		rv_ev(&im[i], "fd", 0, &fd);
		check_ev(&cb, ap[i], seg, at[i], tag, i);
		check_ev(&fd, ap[i], seg, at[i], "fd form", i);
		ck_assert_msg(cb.seq == fd.seq, "importer %d: callback seq %llu, fd seq %llu", i, cb.seq, fd.seq);
		unsigned long long w;
		const char *r = peer_cmd(&im[i], "rd %#lx", at[i] + HOLE_OFF + 4096);
		ck_assert_msg(!strcmp(r, "sig 7"), "importer %d: the unmapped part reads '%s', want SIGBUS", i, r);
		r = peer_cmd(&im[i], "rd %#lx", at[i] + HOLE_OFF + HOLE_LEN);
		ck_assert_msg(sscanf(r, "ok %llu", &w) == 1 && w == st_pattern(7, (HOLE_OFF + HOLE_LEN) / 8),
			      "importer %d: the part after the hole reads '%s'", i, r);
	}
	for (int i = 0; i < NI; i++) {
		rv_ok(&im[i], NULL, 0, "detach %#lx", at[i]);
		rv_ok(&im[i], NULL, 0, "release %lld", ap[i]);
		rv_stop(&im[i]);
	}
	peer_stop(&e);
}
END_TEST

int main(void)
{
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("revoke-range");
	TCase *tc = tcase_create("range");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, t_range);
	suite_add_tcase(s, tc);
	return st_run(s);
}
