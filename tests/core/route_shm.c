/* route_shm.c - one process, two transports for real: a segment of an shm
 * exporter on this node (tests/shm/peer, a separate process) and segments
 * of "other nodes" (the fake remote plugin, tests/core/fakeremote.c),
 * attached at once, from several threads, across fork, with revocation
 * events naming the segid as the application does.  Both processes run
 * with XPMEM_NODE_ID=3: the exporter's segids carry it. */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "shmtest.h"
#include "fakeremote.h"

#define NODE 3
#define SEGSIZE (256 * 1024)
#define SEED 77
static char plugin_dir[4096];

struct exporter {
	struct peer p;
	uintptr_t addr;
	xpmem_segid_t segid;
};

/* A peer exporting SEGSIZE bytes of its heap (arena), filled with SEED. */
static void export_start(struct exporter *e)
{
	peer_start(&e->p, PEER_ARENA);
	e->addr = (uintptr_t)peer_ok(&e->p, "malloc %d", SEGSIZE);
	peer_ok(&e->p, "fill %#lx %d %d", (unsigned long)e->addr, SEGSIZE, SEED);
	e->segid = peer_ok(&e->p, "make %#lx %d 0600", (unsigned long)e->addr, SEGSIZE);
	ck_assert_uint_eq(uxp_id_node(e->segid), NODE);
}

static xpmem_apid_t get(xpmem_segid_t segid)
{
	return xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
}

static void *attach(xpmem_apid_t apid, off_t offset, size_t size)
{
	struct xpmem_addr a = { .apid = apid, .offset = offset };
	return xpmem_attach(a, size, NULL);
}

static const struct fr_stats *fr(void)
{
	const struct fr_stats *s = fr_stats(plugin_dir);
	ck_assert_msg(s, "the remote plugin is not loaded");
	return s;
}

START_TEST(local_and_remote_at_once)
{
	struct exporter e;
	export_start(&e);
	xpmem_segid_t rseg = uxp_id_compose(9, 4242, 5);
	xpmem_apid_t lapid = get(e.segid), rapid = get(rseg);
	ck_assert_int_gt(lapid, 0);
	ck_assert_int_gt(rapid, 0);
	ck_assert_uint_eq(uxp_id_node(lapid), 0);
	ck_assert_uint_eq(uxp_id_node(rapid), 9);

	uint64_t *l = attach(lapid, 0, SEGSIZE), *r = attach(rapid, 4096, 65536);
	ck_assert_ptr_ne(l, ATTACH_FAILED);
	ck_assert_ptr_ne(r, ATTACH_FAILED);
	ck_assert_int_eq(st_check(l, SEGSIZE, SEED), -1);
	for (size_t i = 0; i < 65536 / 8; i += 97)
		ck_assert_uint_eq(r[i], fr_word(rseg, 512 + i));
	/* stores through the local attachment reach the exporter */
	st_fill(l, SEGSIZE, SEED + 1);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", (unsigned long)e.addr, SEGSIZE, SEED + 1),
			 "ok");

	ck_assert_int_eq(xpmem_detach(l), 0);
	ck_assert_int_eq(fr()->detach_misses, 1); /* asked first, not its own */
	ck_assert_int_eq(xpmem_detach(r), 0);
	ck_assert_int_eq(fr()->detaches, 1);
	ck_assert_int_eq(xpmem_release(lapid), 0);
	ck_assert_int_eq(xpmem_release(rapid), 0);
	ck_assert_int_eq(fr()->misrouted, 0);
	peer_ok(&e.p, "remove %lld", (long long)e.segid);
	peer_stop(&e.p);
}
END_TEST

#define NTHREADS 4
#define ROUNDS 200

struct job {
	xpmem_apid_t lapid;
	xpmem_segid_t rseg;
};

static void *interleave(void *arg)
{
	struct job *j = arg;
	xpmem_apid_t rapid = get(j->rseg);
	if (rapid <= 0)
		return "remote get";
	for (int i = 0; i < ROUNDS; i++) {
		off_t off = (off_t)(i % 32) * 4096;
		uint64_t *l = attach(j->lapid, off, 8192), *r = attach(rapid, off, 4096);
		if (l == ATTACH_FAILED || r == ATTACH_FAILED)
			return "attach";
		if (l[3] != st_pattern(SEED, (uint64_t)off / 8 + 3) ||
		    r[3] != fr_word(j->rseg, (uint64_t)off / 8 + 3))
			return "data";
		if (xpmem_detach(i & 1 ? (void *)l : (void *)r) != 0 ||
		    xpmem_detach(i & 1 ? (void *)r : (void *)l) != 0)
			return "detach";
	}
	return xpmem_release(rapid) ? "release" : NULL;
}

START_TEST(attach_detach_interleaved_from_threads)
{
	struct exporter e;
	export_start(&e);
	xpmem_apid_t lapid = get(e.segid);
	ck_assert_int_gt(lapid, 0);
	pthread_t th[NTHREADS];
	struct job jobs[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		jobs[i] = (struct job){ .lapid = lapid, .rseg = uxp_id_compose(9 + i, 4242, 1) };
		ck_assert_int_eq(pthread_create(&th[i], NULL, interleave, &jobs[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		ck_assert_msg(ret == NULL, "thread %d failed: %s", i, (const char *)ret);
	}
	ck_assert_int_eq(fr()->attaches, NTHREADS * ROUNDS);
	ck_assert_int_eq(fr()->detaches, NTHREADS * ROUNDS);
	ck_assert_int_eq(fr()->live_attachments, 0);
	ck_assert_int_eq(fr()->misrouted, 0);
	/* the local apid is intact after all that */
	uint64_t *l = attach(lapid, 0, SEGSIZE);
	ck_assert_ptr_ne(l, ATTACH_FAILED);
	ck_assert_int_eq(st_check(l, SEGSIZE, SEED), -1);
	ck_assert_int_eq(xpmem_release(lapid), 0);
	peer_stop(&e.p);
}
END_TEST

/* A child has neither kind of apid or attachment, and can start again. */
START_TEST(fork_child_starts_clean)
{
	struct exporter e;
	export_start(&e);
	xpmem_segid_t rseg = uxp_id_compose(9, 4242, 5);
	xpmem_apid_t lapid = get(e.segid), rapid = get(rseg);
	ck_assert_int_gt(lapid, 0);
	ck_assert_int_gt(rapid, 0);
	uint64_t *r = attach(rapid, 0, 4096), *l = attach(lapid, 0, SEGSIZE);
	ck_assert_ptr_ne(r, ATTACH_FAILED);
	ck_assert_ptr_ne(l, ATTACH_FAILED);

	int res[2];
	ck_assert_int_eq(pipe(res), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int bad = 0;
		unsigned char b;
		bad |= (fr_stats(plugin_dir)->fork_children != 1) << 0;
		bad |= (tu_probe_read(r, &b) != SIGSEGV) << 1;
		errno = 0;
		bad |= (attach(lapid, 0, 4096) != ATTACH_FAILED || errno != EACCES) << 2;
		errno = 0;
		bad |= (attach(rapid, 0, 4096) != ATTACH_FAILED || errno != EACCES) << 3;
		xpmem_apid_t l2 = get(e.segid), r2 = get(rseg);
		bad |= (l2 <= 0 || r2 <= 0) << 4;
		uint64_t *lm = attach(l2, 0, SEGSIZE), *rm = attach(r2, 0, 4096);
		bad |= (lm == ATTACH_FAILED || st_check(lm, SEGSIZE, SEED) != -1) << 5;
		bad |= (rm == ATTACH_FAILED || rm[7] != fr_word(rseg, 7)) << 6;
		bad |= (xpmem_detach(rm) || xpmem_detach(lm) || xpmem_release(l2) ||
			xpmem_release(r2)) << 7;
		/* valgrind does not know that the parent's MADV_DONTFORK arena
		 * mapping is not in the child: its leak check at exit (also at a
		 * SIGKILL the child sends itself) would read all of it for
		 * minutes.  So the result goes by the pipe and, under valgrind,
		 * the parent kills the child. */
		if (write(res[1], &bad, sizeof(bad)) == sizeof(bad) && tu_under_valgrind())
			pause();
		_exit(bad);
	}
	close(res[1]);
	struct pollfd pfd = { .fd = res[0], .events = POLLIN };
	int bad = -1;
	ck_assert_msg(poll(&pfd, 1, tu_guard_ms(10000)) == 1, "child hung");
	ck_assert_int_eq(tu_read_all(res[0], &bad, sizeof(bad)), 0);
	close(res[0]);
	if (tu_under_valgrind())
		kill(pid, SIGKILL);
	int status = tu_wait_child(pid, 10000);
	ck_assert_msg(bad == 0, "child failures %#x", bad);
	ck_assert_msg(tu_under_valgrind() ? WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
					  : WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %#x", status);
	ck_assert_int_eq(st_check(l, SEGSIZE, SEED), -1);
	ck_assert_uint_eq(r[7], fr_word(rseg, 7));
	ck_assert_int_eq(xpmem_detach(l), 0);
	ck_assert_int_eq(xpmem_detach(r), 0);
	ck_assert_int_eq(xpmem_release(lapid), 0);
	ck_assert_int_eq(xpmem_release(rapid), 0);
	peer_stop(&e.p);
}
END_TEST

/* Events name the segment with the node id the exporter gave it (the shm
 * transport itself only knows it without). */
START_TEST(revocation_names_the_segid)
{
	struct exporter e;
	export_start(&e);
	int fd = uxpmem_revoke_fd();
	ck_assert_int_ge(fd, 0);
	xpmem_apid_t lapid = get(e.segid);
	ck_assert_int_gt(lapid, 0);
	peer_ok(&e.p, "remove %lld", (long long)e.segid);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, tu_guard_ms(10000)), 1);
	struct uxpmem_revoke_event ev;
	ck_assert_int_eq(uxpmem_revoke_poll(&ev, 1), 1);
	ck_assert_int_eq(ev.apid, lapid);
	ck_assert_int_eq(ev.reason, UXPMEM_REVOKE_REMOVED);
	ck_assert_int_eq(ev.segid, e.segid);
	ck_assert_int_eq(xpmem_release(lapid), 0);
	peer_stop(&e.p);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its exporter runs with the arena preload */
	st_init();
	setenv("XPMEM_NODE_ID", "3", 1);
	setenv("XPMEM_PLUGIN_DIR", tu_builddir_path("tests/core/.libs", plugin_dir,
						    sizeof(plugin_dir)), 1);
	Suite *s = suite_create("route_shm");
	TCase *tc = tcase_create("shm+remote");
	tcase_add_test(tc, local_and_remote_at_once);
	tcase_add_test(tc, attach_detach_interleaved_from_threads);
	tcase_add_test(tc, fork_child_starts_clean);
	tcase_add_test(tc, revocation_names_the_segid);
	tcase_set_timeout(tc, tu_guard_s(60));
	suite_add_tcase(s, tc);
	return st_run(s);
}
