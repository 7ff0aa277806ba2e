/* clients.c - the call sequences of the real XPMEM clients (UCX, Open MPI,
 * MPICH, libfabric, SOS; tests/shm/clientseq.c, also run by
 * tests/shm/clients) against an exporter WITHOUT the arena preload
 * (tests/convert/cvpeer): its glibc heap, .bss and .data are converted in
 * place on attach; MAP_SHARED|MAP_ANONYMOUS memory stays a hole (SIGBUS). */
#include <unistd.h>
#include "clientseq.h"
#include "cvimp.h"

static void start(struct peer *e)
{
	cv_start(e);
}

/* SOS: puts both ways through the converted .bss and heap */
static void sos_puts(struct peer *e, struct cs_sos_seg seg[CS_NKINDS])
{
	struct cs_sos_seg *bss = &seg[CS_BSS], *heap = &seg[CS_HEAP];
	st_fill(bss->p, bss->len, 125);
	ck_assert_str_eq(peer_cmd(e, "check %#lx %zu 125", bss->addr, bss->len), "ok");
	st_fill(heap->p, heap->len, 126);
	ck_assert_str_eq(peer_cmd(e, "check %#lx %zu 126", heap->addr, heap->len), "ok");
	peer_ok(e, "fill %#lx %zu 127", bss->addr, bss->len);
	ck_assert(st_check(bss->p, bss->len, 127) == -1);
}

static struct cs_exporter plain_peer = {
	.start = start,
	.alloc_aligned = "memalign", /* glibc's malloc is not page-aligned */
	.sos = {
		[CS_BSS] = CS_SHARED,
		[CS_DATA] = CS_SHARED, /* all threads stopped for the copy */
		[CS_HEAP] = CS_SHARED,
		/* MAP_SHARED|MAP_ANONYMOUS is exported in place, never copied
		 * (the same pages); unprivileged, without /proc/self/map_files,
		 * it stays a hole (see main) */
		[CS_SHARED_ANON] = CS_SHARED,
	},
	.sos_more = sos_puts,
};

int main(void)
{
	tu_require_libc_malloc(); /* free must munmap, as glibc's does */
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	if (geteuid() != 0)
		plain_peer.sos[CS_SHARED_ANON] = CS_HOLE; /* the documented unprivileged hole */
	Suite *s = suite_create("convert-clients");
	TCase *tc = tcase_create("clients");
	tcase_set_timeout(tc, tu_guard_s(30));
	cs_add_tests(tc, &plain_peer);
	suite_add_tcase(s, tc);
	return st_run(s);
}
