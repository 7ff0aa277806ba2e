/* route_test.c - one process, several transports: ids of this node go to the
 * local transport (here the kernel transport on the fake module, which
 * records the exact ids it is given), ids of other nodes to the remote
 * transport (tests/core/fakeremote.c, a real plugin loaded from
 * XPMEM_PLUGIN_DIR); this node's id (XPMEM_NODE_ID and the resolver's
 * seam); the plugin loader's strictness.  tests/core/route_shm does the
 * same with a real shm exporter.
 *
 * Selection happens once per process: every test runs in its own forked
 * process (CK_FORK forced) and sets its environment first. */
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "kernel.h"
#include "fakekernel.h"
#include "fakeremote.h"
#include "testutil.h"

#define NOPLUGINS "/nonexistent/uxpmem-plugins"
#define NODE(id, n) uxp_id_with_node((id), (n))
static char device[] = "/tmp/uxp-routedev.XXXXXX";
static char logfile[] = "/tmp/uxp-routelog.XXXXXX";
static char plugin_dir[4096];

/* The kernel transport on the fake module; node id and plugins as given. */
static void env_setup(const char *node_id, const char *plugins)
{
	fk_install();
	setenv("XPMEM_KERNEL_DEVICE", device, 1);
	setenv("XPMEM_TRANSPORT", "kernel", 1);
	setenv("XPMEM_PLUGIN_DIR", plugins, 1);
	if (node_id)
		setenv("XPMEM_NODE_ID", node_id, 1);
	else
		unsetenv("XPMEM_NODE_ID");
}

static const char *read_log(void)
{
	static char buf[16384];
	return tu_read_text(logfile, buf, sizeof(buf));
}

static void *loaded(void)
{
	return fr_loaded(plugin_dir);
}

static const struct fr_stats *fr(void)
{
	const struct fr_stats *s = fr_stats(plugin_dir);
	ck_assert_msg(s, "the remote plugin is not loaded");
	return s;
}

static void fr_emit_removed(xpmem_apid_t apid)
{
	fr_revoke_fn f;
	*(void **)&f = dlsym(loaded(), "fakeremote_revoke");
	ck_assert_ptr_nonnull(f);
	f(apid);
}

/* Word i of an attachment of the fake remote segment segid at offset. */
static void check_remote(const void *at, xpmem_segid_t segid, off_t offset, size_t size)
{
	const uint64_t *w = at;
	for (size_t i = 0; i < size / 8; i += 509)
		ck_assert_msg(w[i] == fr_word(segid, (uint64_t)offset / 8 + i),
			      "word %zu of the remote attachment is %#llx", i, (unsigned long long)w[i]);
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

/* ---- this node's id and kernel-made ids --------------------------------- */

START_TEST(kernel_ids_carry_the_node_id)
{
	env_setup("7", plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	ck_assert_int_eq(uxpmem_node_id(), 7);
	fk_clear();

	xpmem_segid_t seg = xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_eq(seg, NODE(FK_SEGID, 7));
	ck_assert_uint_eq(fk.calls[0].req, XPMEM_CMD_MAKE);

	/* this node's id and node 0 both reach the module without it */
	xpmem_apid_t apid = get(seg);
	ck_assert_int_eq(apid, FK_APID + 1); /* apids of the local transport: as made */
	ck_assert_uint_eq(fk.calls[1].req, XPMEM_CMD_GET);
	ck_assert_int_eq(fk.calls[1].u.get.segid, FK_SEGID);
	ck_assert_int_eq(get(FK_SEGID), FK_APID + 2);
	ck_assert_int_eq(fk.calls[2].u.get.segid, FK_SEGID);

	ck_assert_ptr_eq(attach(apid, 0, 4096), (void *)FK_ATTACH_ADDR);
	ck_assert_int_eq(fk.calls[3].u.attach.apid, apid);
	ck_assert_int_eq(xpmem_detach((void *)FK_ATTACH_ADDR), 0);
	ck_assert_uint_eq(fk.calls[4].req, XPMEM_CMD_DETACH);
	/* an apid named with this node's id is the same apid */
	ck_assert_int_eq(xpmem_release(NODE(apid, 7)), 0);
	ck_assert_int_eq(fk.calls[5].u.release.apid, apid);
	ck_assert_int_eq(xpmem_remove(seg), 0);
	ck_assert_uint_eq(fk.calls[6].req, XPMEM_CMD_REMOVE);
	ck_assert_int_eq(fk.calls[6].u.remove.segid, FK_SEGID);
	ck_assert_int_eq(fk.ncalls, 7);
	ck_assert_ptr_null(loaded()); /* never a remote id: never loaded */
}
END_TEST

START_TEST(kernel_ids_unchanged_without_a_node_id)
{
	env_setup(NULL, plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	ck_assert_int_eq(uxpmem_node_id(), 0);
	fk_clear();
	ck_assert_int_eq(xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600), FK_SEGID);
	ck_assert_int_eq(get(FK_SEGID), FK_APID + 1);
	ck_assert_int_eq(fk.calls[1].u.get.segid, FK_SEGID);
	ck_assert_int_eq(xpmem_remove(FK_SEGID), 0);
	ck_assert_int_eq(fk.calls[2].u.remove.segid, FK_SEGID);
	ck_assert_ptr_null(loaded());
}
END_TEST

static const char *const bad_node_ids[] = { "32768", "-1", "abc", "7x" };

START_TEST(invalid_node_id_fails_every_call)
{
	env_setup(bad_node_ids[_i], plugin_dir);
	tu_log_to(logfile, NULL);
	errno = 0;
	ck_assert_int_eq(xpmem_init(), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(uxpmem_node_id(), -1);
	ck_assert_msg(strstr(read_log(), " error: core: XPMEM_NODE_ID="), "log: %s", read_log());
}
END_TEST

/* The resolver's seam: set once, before segids are made. */
START_TEST(node_id_set_once)
{
	env_setup(NULL, NOPLUGINS);
	ck_assert_int_eq(xpmem_init(), 0);
	ck_assert_int_eq(uxp_node_id_set(0), -EINVAL);
	ck_assert_int_eq(uxp_node_id_set(UXP_NODE_MAX + 1), -EINVAL);
	ck_assert_int_eq(uxp_node_id_set(5), 0);
	ck_assert_int_eq(uxpmem_node_id(), 5);
	ck_assert_int_eq(uxp_node_id_set(5), 0);
	ck_assert_int_eq(uxp_node_id_set(6), -EBUSY);
	ck_assert_int_eq(xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600), NODE(FK_SEGID, 5));
}
END_TEST

START_TEST(node_id_set_refused)
{
	/* 0: XPMEM_NODE_ID wins; 1: segids were made without an id */
	env_setup(_i == 0 ? "4" : NULL, NOPLUGINS);
	ck_assert_int_eq(xpmem_init(), 0);
	if (_i == 1)
		ck_assert_int_eq(xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600), FK_SEGID);
	ck_assert_int_eq(uxp_node_id_set(5), -EBUSY);
	ck_assert_int_eq(uxpmem_node_id(), _i == 0 ? 4 : 0);
}
END_TEST

/* ---- no remote transport -------------------------------------------------- */

START_TEST(remote_id_without_transport)
{
	/* 0: no plugin at all; 1: the remote plugin is there but unusable */
	env_setup("1", _i == 0 ? NOPLUGINS : plugin_dir);
	if (_i == 1)
		setenv("FAKEREMOTE_UNUSABLE", "1", 1);
	tu_log_to(logfile, "debug");
	ck_assert_int_eq(xpmem_init(), 0);
	fk_clear();
	xpmem_segid_t seg = uxp_id_compose(2, 4242, 1);
	for (int round = 0; round < 2; round++) { /* the second from the cached failure */
		errno = 0;
		ck_assert_int_eq(get(seg), -1);
		ck_assert_int_eq(errno, ENOENT);
	}
	const char *log = read_log();
	char line[128];
	snprintf(line, sizeof(line), "get: segid %#llx is of node 2 (this node: 1) and no transport",
		 (unsigned long long)seg);
	ck_assert_msg(strstr(log, line), "no debug line '%s' for the get: %s", line, log);
	const char *why = _i == 0 ? "no plugin serving other nodes in " NOPLUGINS :
		FR_NAME ": FAKEREMOTE_UNUSABLE is set";
	ck_assert_msg(strstr(log, why), "log does not say '%s': %s", why, log);

	struct uxpmem_transport_info info;
	errno = 0;
	ck_assert_int_eq(uxpmem_remote_transport_query(&info), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(info.name);
	ck_assert_msg(strstr(info.why, why), "why: %s", info.why);

	/* apids of other nodes: none can be ours; segids of other nodes are
	 * never ours to remove */
	xpmem_apid_t mine = uxp_id_compose(2, getpid(), 1), theirs = uxp_id_compose(2, 4242, 1);
	errno = 0;
	ck_assert_int_eq(xpmem_release(mine), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_release(theirs), -1);
	ck_assert_int_eq(errno, EACCES);
	errno = 0;
	ck_assert_ptr_eq(attach(mine, 0, 4096), (void *)-1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_remove(seg), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(fk.ncalls, 0); /* nothing went to the module */
}
END_TEST

/* ---- both at once ------------------------------------------------------------ */

START_TEST(local_and_remote_ids_route)
{
	env_setup("3", plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	fk_clear();
	xpmem_segid_t lseg = xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_eq(lseg, NODE(FK_SEGID, 3));
	xpmem_segid_t rseg = uxp_id_compose(9, 4242, 5);
	ck_assert_ptr_null(loaded());

	xpmem_apid_t rapid = get(rseg); /* loads the plugin */
	ck_assert_int_gt(rapid, 0);
	ck_assert_uint_eq(uxp_id_node(rapid), 9);
	ck_assert_int_eq(uxp_id_pid(rapid), getpid());
	ck_assert_int_eq(fr()->inits, 1);
	ck_assert_int_eq(fr()->opens, 1);
	xpmem_apid_t lapid = get(lseg);
	ck_assert_int_eq(lapid, FK_APID + 1);
	ck_assert_int_eq(fk.calls[1].u.get.segid, FK_SEGID);

	void *rat = attach(rapid, 65536, 65536);
	ck_assert_ptr_ne(rat, (void *)-1);
	check_remote(rat, rseg, 65536, 65536);
	ck_assert_ptr_eq(attach(lapid, 0, 4096), (void *)FK_ATTACH_ADDR);
	ck_assert_int_eq(fk.calls[2].u.attach.apid, lapid);

	/* detach: the remote transport first, which knows only its own */
	ck_assert_int_eq(xpmem_detach((char *)rat + 8192), 0);
	ck_assert_int_eq(fr()->detaches, 1);
	ck_assert_int_eq(fk.ncalls, 3);
	ck_assert_int_eq(xpmem_detach((void *)FK_ATTACH_ADDR), 0);
	ck_assert_int_eq(fr()->detach_misses, 1);
	ck_assert_uint_eq(fk.calls[3].req, XPMEM_CMD_DETACH);

	/* revocation events name the segment as the application does */
	int qfd = uxpmem_revoke_fd();
	ck_assert_int_ge(qfd, 0);
	fr_emit_removed(rapid);
	struct uxpmem_revoke_event ev;
	ck_assert_int_eq(uxpmem_revoke_poll(&ev, 1), 1);
	ck_assert_int_eq(ev.apid, rapid);
	ck_assert_int_eq(ev.segid, rseg);

	ck_assert_int_eq(xpmem_release(rapid), 0);
	ck_assert_int_eq(fr()->releases, 1);
	ck_assert_int_eq(xpmem_release(lapid), 0);
	ck_assert_int_eq(fk.calls[4].u.release.apid, lapid);
	ck_assert_int_eq(fk.ncalls, 5);
	ck_assert_int_eq(fr()->misrouted, 0);
	ck_assert_int_eq(fr()->live_attachments, 0);
}
END_TEST

/* Apids of the remote transport route back to it, and no other. */
START_TEST(remote_apids_of_others_refused)
{
	env_setup("3", plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	ck_assert_int_gt(get(uxp_id_compose(9, 4242, 5)), 0);
	fk_clear();
	errno = 0;
	ck_assert_ptr_eq(attach(uxp_id_compose(9, 4242, 1), 0, 4096), (void *)-1);
	ck_assert_int_eq(errno, EACCES);
	errno = 0;
	ck_assert_int_eq(xpmem_release(uxp_id_compose(9, getpid(), 777)), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(fr()->misrouted, 0);
}
END_TEST

#define NTHREADS 4
#define ROUNDS 300

static void *interleave(void *arg)
{
	xpmem_segid_t rseg = uxp_id_compose(9, 4242, (uint32_t)(uintptr_t)arg);
	xpmem_apid_t rapid = get(rseg), lapid = get(FK_SEGID);
	if (rapid <= 0 || lapid <= 0)
		return "get";
	for (int i = 0; i < ROUNDS; i++) {
		off_t off = (off_t)(i % 16) * 4096;
		uint64_t *r = attach(rapid, off, 8192);
		if (r == (void *)-1 || r[1] != fr_word(rseg, (uint64_t)off / 8 + 1))
			return "remote attach";
		if (attach(lapid, off, 4096) != (void *)FK_ATTACH_ADDR)
			return "local attach";
		if (xpmem_detach(i & 1 ? (void *)FK_ATTACH_ADDR : r) != 0 ||
		    xpmem_detach(i & 1 ? (void *)r : (void *)FK_ATTACH_ADDR) != 0)
			return "detach";
	}
	if (xpmem_release(rapid) || xpmem_release(lapid))
		return "release";
	return NULL;
}

START_TEST(attach_detach_interleaved_from_threads)
{
	env_setup("3", plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	fk_clear();
	pthread_t th[NTHREADS];
	for (uintptr_t i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, interleave, (void *)(i + 1)), 0);
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		ck_assert_msg(ret == NULL, "thread %d failed: %s", i, (const char *)ret);
	}
	const struct fr_stats *s = fr();
	ck_assert_int_eq(s->attaches, NTHREADS * ROUNDS);
	ck_assert_int_eq(s->detaches, NTHREADS * ROUNDS);
	ck_assert_int_eq(s->live_attachments, 0);
	ck_assert_int_eq(s->misrouted, 0);
	/* per thread: GET, RELEASE, and per round ATTACH + DETACH */
	ck_assert_int_eq(fk.ncalls, NTHREADS * (2 + 2 * ROUNDS));
}
END_TEST

/* A forked child has nothing of its parent's, remote or local, and can
 * start again with both. */
START_TEST(fork_child_starts_clean)
{
	env_setup("3", plugin_dir);
	ck_assert_int_eq(xpmem_init(), 0);
	xpmem_segid_t rseg = uxp_id_compose(9, 4242, 5);
	xpmem_apid_t rapid = get(rseg), lapid = get(FK_SEGID);
	ck_assert_int_gt(rapid, 0);
	ck_assert_int_gt(lapid, 0);
	void *rat = attach(rapid, 0, 65536);
	ck_assert_ptr_ne(rat, (void *)-1);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const struct fr_stats *s = fr();
		int bad = 0;
		unsigned char b;
		bad |= (s->fork_children != 1) << 0;
		bad |= (s->live_attachments != 0) << 1;
		bad |= (tu_probe_read(rat, &b) != SIGSEGV) << 2; /* not inherited */
		errno = 0;
		bad |= (attach(rapid, 0, 4096) != (void *)-1 || errno != EACCES) << 3;
		errno = 0;
		bad |= (xpmem_release(rapid) != -1 || errno != EACCES) << 4;
		xpmem_apid_t again = get(rseg);
		bad |= (again <= 0 || uxp_id_pid(again) != getpid()) << 5;
		uint64_t *r = attach(again, 4096, 4096);
		bad |= (r == (void *)-1 || r[0] != fr_word(rseg, 512)) << 6;
		bad |= (xpmem_detach(r) != 0 || fr()->detaches != 1) << 7;
		/* the kernel transport opens the device again (a get would start
		 * the notice thread: not after a multi-threaded fork under TSan) */
		bad |= (xpmem_version() != FK_VERSION) << 8;
		_exit(bad);
	}
	int status = tu_wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	/* the parent's attachment is untouched */
	check_remote(rat, rseg, 0, 65536);
	ck_assert_int_eq(xpmem_detach(rat), 0);
	ck_assert_int_eq(fr()->fork_children, 0);
}
END_TEST

/* ---- the plugin loader ------------------------------------------------------- */

START_TEST(plugin_of_another_abi_refused)
{
	char dir[4096];
	env_setup(NULL, tu_builddir_path("tests/core/oldabi/.libs", dir, sizeof(dir)));
	setenv("XPMEM_TRANSPORT", "oldabi", 1);
	tu_log_to(logfile, "warn");
	errno = 0;
	ck_assert_int_eq(xpmem_init(), -1);
	ck_assert_int_eq(errno, ENODEV);
	const char *log = read_log();
	ck_assert_msg(strstr(log, "libuxpmem-oldabi.so refused: built for another uxpmem "
			     "(uxpmem_transport_v1; this library loads uxpmem_transport_v4)"),
		      "log: %s", log);
}
END_TEST

START_TEST(remote_transport_is_not_a_local_one)
{
	env_setup(NULL, plugin_dir);
	setenv("XPMEM_TRANSPORT", FR_NAME, 1);
	tu_log_to(logfile, NULL);
	errno = 0;
	ck_assert_int_eq(xpmem_init(), -1);
	ck_assert_int_eq(errno, ENODEV);
	ck_assert_msg(strstr(read_log(), "XPMEM_TRANSPORT=" FR_NAME ": no such transport for this "
			     "node (it serves other nodes)"), "log: %s", read_log());
}
END_TEST

START_TEST(remote_transport_query)
{
	env_setup("3", plugin_dir);
	struct uxpmem_transport_info info;
	ck_assert_int_eq(uxpmem_remote_transport_query(&info), 0);
	ck_assert_str_eq(info.name, FR_NAME);
	ck_assert_int_eq(info.usable, 1);
	ck_assert_str_eq(info.why, "fake remote nodes");
	errno = 0;
	ck_assert_int_eq(uxpmem_remote_transport_query(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* and the list of every transport has it too */
	int found = 0;
	for (unsigned i = 0; uxpmem_transport_query(i, &info) == 0; i++)
		found += strcmp(info.name, FR_NAME) == 0;
	ck_assert_int_eq(found, 1);
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("node");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, kernel_ids_carry_the_node_id);
	tcase_add_test(tc, kernel_ids_unchanged_without_a_node_id);
	tcase_add_loop_test(tc, invalid_node_id_fails_every_call, 0, 4);
	tcase_add_test(tc, node_id_set_once);
	tcase_add_loop_test(tc, node_id_set_refused, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("remote");
	tcase_add_loop_test(tc, remote_id_without_transport, 0, 2);
	tcase_add_test(tc, local_and_remote_ids_route);
	tcase_add_test(tc, remote_apids_of_others_refused);
	tcase_add_test(tc, attach_detach_interleaved_from_threads);
	tcase_add_test(tc, fork_child_starts_clean);
	tcase_set_timeout(tc, tu_guard_s(30));
	suite_add_tcase(s, tc);
	tc = tcase_create("loader");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, plugin_of_another_abi_refused);
	tcase_add_test(tc, remote_transport_is_not_a_local_one);
	tcase_add_test(tc, remote_transport_query);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int fd = mkstemp(device);
	if (fd < 0)
		return 99;
	close(fd);
	fd = mkstemp(logfile);
	if (fd < 0)
		return 99;
	close(fd);
	tu_builddir_path("tests/core/.libs", plugin_dir, sizeof(plugin_dir));
	unsetenv("XPMEM_LOG_LEVEL");
	unsetenv("XPMEM_LOG_FILE");
	unsetenv("FAKEREMOTE_UNUSABLE");
	SRunner *sr = srunner_create(route_suite());
	srunner_set_fork_status(sr, CK_FORK); /* one selection per process */
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(device);
	unlink(logfile);
	return failed ? 1 : 0;
}
