/* clients.c - the call sequences of the real XPMEM clients (clients.md "How
 * each client calls it"; tests/shm/clientseq.c) against the shm transport:
 * an exporter running with the arena preload (tests/shm/peer). */
#include "clientseq.h"
#include "testutil.h"

static void start(struct peer *e)
{
	peer_start(e, PEER_ARENA);
}

static const struct cs_exporter arena_peer = {
	.start = start,
	.alloc_aligned = "malloc", /* the peer's malloc is posix_memalign(4096) */
	.sos = {
		[CS_HEAP] = CS_SHARED,
		/* .bss/.data of a preloaded exporter are outside the arena:
		 * attach succeeds; a touch must either raise SIGBUS (a hole,
		 * current design) or show the exporter's real data, never
		 * something else. */
		[CS_BSS] = CS_HOLE_OR_SHARED,
		[CS_DATA] = CS_HOLE_OR_SHARED,
	},
	.concurrent = 1,
};

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("shm-clients");
	TCase *tc = tcase_create("clients");
	tcase_set_timeout(tc, tu_guard_s(30));
	cs_add_tests(tc, &arena_peer);
	suite_add_tcase(s, tc);
	return st_run(s);
}
