/* shared.c - the exporter's own MAP_SHARED mappings are exportable (issue
 * 11): SysV shm (UCX's default allocation), POSIX shm after shm_unlink and
 * close (and with the descriptor kept, UCX's posix), memfd, shared
 * anonymous memory (Open MPI 4's FIFO segment) and shared file mappings,
 * with and without the arena preload, as root and as an ordinary user.
 *
 * These mappings are already shared, so the importer must map the same
 * pages: writes by either side are seen by the other, atomics from both
 * sides add up, and munmap (shmdt) in the exporter makes the importer's
 * next touch SIGBUS like any other memory.  Permissions: an importer of
 * another uid never gets more than the file's (or segment's) own mode
 * gives it.  Built twice: tests/shm/shared (plain exporter) and
 * tests/shm/shared_arena (-DSHARED_ARENA: the exporter runs under the arena
 * preload, which tells libxpmem of munmap/shmdt at once). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shmtest.h"
#include "testutil.h"

#define LEN (1 * MiB)
#define CAS_N 20000
#define CAS_THREADS 2

#ifdef SHARED_ARENA
#define FLAVOUR PEER_ARENA
#else
#define FLAVOUR PEER_PLAIN
#endif

/* Invalidation needs the exporter's notifier thread (userfaultfd); the
 * valgrind stage runs without it (XPMEM_USERFAULTFD=0). */
static int notifier_off(void)
{
	const char *v = getenv("XPMEM_USERFAULTFD");
	return v && !strcmp(v, "0");
}

static const char *const kinds[] = { "sysv", "sysvkeep", "posix", "posixfd", "memfd", "anon", "file" };
#define NKINDS (int)(sizeof(kinds) / sizeof(kinds[0]))

/* What an unprivileged exporter can share: it may not open
 * /proc/self/map_files, so it needs a descriptor it holds (posixfd) or a
 * SysV id; the rest are holes (documented in xpmem(7)). */
static int shareable_unprivileged(const char *kind)
{
	return !strncmp(kind, "sysv", 4) || !strcmp(kind, "posixfd");
}

/* Exporter e exports its whole address space; importer i gets it. */
static long long setup(struct peer *e, struct peer *i)
{
	unsigned long long top = (unsigned long long)peer_ok(e, "maxaddr");
	long long seg = peer_ok(e, "make 0 %#llx 0666", top);
	return peer_ok(i, "get %lld 2", seg);
}

static void unmap_in_exporter(struct peer *e, const char *kind, uintptr_t a)
{
	if (!strncmp(kind, "sysv", 4))
		peer_ok(e, "shmdt %#lx", (unsigned long)a);
	else
		peer_ok(e, "munmap %#lx %lu", (unsigned long)a, (unsigned long)LEN);
}

/* The importer's next touch of `at` raises SIGBUS within a bounded time. */
static void expect_sigbus(struct peer *i, uintptr_t at, const char *what)
{
	/* a hang guard: the peer's st_wait_signal() scales it */
	const char *r = peer_cmd(i, "waitsig %#lx 5000", (unsigned long)at);
	ck_assert_msg(!strcmp(r, "ok 7"), "%s: importer's touch gave \"%s\", want SIGBUS (ok 7)", what, r);
}

/* Data both ways, atomics from both sides, SIGBUS after the exporter's
 * unmap. */
static void check_shared(struct peer *e, struct peer *i, long long apid, const char *kind)
{
	uintptr_t a = (uintptr_t)peer_ok(e, "mkshared %s %lu 0600", kind, (unsigned long)LEN);
	peer_ok(e, "fill %#lx %lu 7", (unsigned long)a, (unsigned long)LEN);
	uintptr_t at = (uintptr_t)peer_ok(i, "attach %lld %#lx %lu 0", apid, (unsigned long)a,
					  (unsigned long)LEN);
	const char *r = peer_cmd(i, "check %#lx %lu 7", (unsigned long)at, (unsigned long)LEN);
	ck_assert_msg(!strcmp(r, "ok"), "%s: the importer reads \"%s\" of the exporter's data", kind, r);

	/* the importer's write is in the exporter's memory, and back */
	peer_ok(i, "wr %#lx 0x1234567", (unsigned long)(at + 8 * PAGE));
	ck_assert_int_eq(peer_ok(e, "rd %#lx", (unsigned long)(a + 8 * PAGE)), 0x1234567);
	peer_ok(e, "fill %#lx %lu 9", (unsigned long)a, (unsigned long)LEN);
	r = peer_cmd(i, "check %#lx %lu 9", (unsigned long)at, (unsigned long)LEN);
	ck_assert_msg(!strcmp(r, "ok"), "%s: after the exporter's rewrite the importer reads \"%s\"", kind, r);

	/* atomics from both processes on one word: the same page, not a copy */
	peer_ok(e, "wr %#lx 0", (unsigned long)(a + 16));
	peer_ok(e, "cas %#lx %d %d", (unsigned long)(a + 16), CAS_N, CAS_THREADS);
	peer_ok(i, "cas %#lx %d %d", (unsigned long)(at + 16), CAS_N, CAS_THREADS);
	peer_ok(e, "join");
	peer_ok(i, "join");
	long long want = 2LL * CAS_N * CAS_THREADS;
	ck_assert_int_eq(peer_ok(e, "rd %#lx", (unsigned long)(a + 16)), want);
	ck_assert_int_eq(peer_ok(i, "rd %#lx", (unsigned long)(at + 16)), want);

	unmap_in_exporter(e, kind, a);
	if (!notifier_off())
		expect_sigbus(i, at + 3 * PAGE, kind);
	peer_ok(i, "detach %#lx", (unsigned long)at);
}

/* One kind (the loop index). */
START_TEST(t_kind)
{
	const char *kind = kinds[_i];
	struct peer e, i;
	peer_start(&e, FLAVOUR);
	peer_start(&i, PEER_PLAIN);
	check_shared(&e, &i, setup(&e, &i), kind);
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

/* Exporter and importer as nobody: SysV and held descriptors are shared,
 * the rest stays a hole (SIGBUS, never zeros, never a copy). */
START_TEST(t_unprivileged)
{
	const char *kind = kinds[_i];
	if (geteuid() != 0)
		return; /* no other uid to become */
	struct peer e, i;
	peer_start(&e, FLAVOUR);
	peer_start(&i, PEER_PLAIN);
	peer_ok(&e, "drop");
	peer_ok(&i, "drop");
	long long apid = setup(&e, &i);
	if (shareable_unprivileged(kind)) {
		check_shared(&e, &i, apid, kind);
	} else {
		uintptr_t a = (uintptr_t)peer_ok(&e, "mkshared %s %lu 0600", kind, (unsigned long)LEN);
		peer_ok(&e, "fill %#lx %lu 7", (unsigned long)a, (unsigned long)LEN);
		uintptr_t at = (uintptr_t)peer_ok(&i, "attach %lld %#lx %lu 0", apid, (unsigned long)a,
						  (unsigned long)LEN);
		const char *r = peer_cmd(&i, "rd %#lx", (unsigned long)at);
		ck_assert_msg(!strcmp(r, "sig 7"), "%s as nobody: want the documented hole (sig 7), got \"%s\"",
			      kind, r);
	}
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

/* Root exporter, importer of another uid: the file's own mode caps what
 * it gets (0600 root-owned: nothing; 0644: read, and writes fault). */
static void other_uid(const char *kind, int mode, const char *rd_want, const char *wr_want)
{
	if (geteuid() != 0)
		return;
	struct peer e, i;
	peer_start(&e, FLAVOUR);
	peer_start(&i, PEER_PLAIN);
	peer_ok(&i, "drop");
	long long apid = setup(&e, &i);
	uintptr_t a = (uintptr_t)peer_ok(&e, "mkshared %s %lu %#o", kind, (unsigned long)LEN, mode);
	peer_ok(&e, "fill %#lx %lu 5", (unsigned long)a, (unsigned long)LEN);
	peer_ok(&e, "wr %#lx 77", (unsigned long)a);
	uintptr_t at = (uintptr_t)peer_ok(&i, "attach %lld %#lx %lu 0", apid, (unsigned long)a,
					  (unsigned long)LEN);
	const char *r = peer_cmd(&i, "rd %#lx", (unsigned long)at);
	ck_assert_msg(!strcmp(r, rd_want), "%s mode %o, importer nobody: read gave \"%s\", want \"%s\"",
		      kind, mode, r, rd_want);
	r = peer_cmd(&i, "wr %#lx 1", (unsigned long)at);
	ck_assert_msg(!strcmp(r, wr_want), "%s mode %o, importer nobody: write gave \"%s\", want \"%s\"",
		      kind, mode, r, wr_want);
	ck_assert_int_eq(peer_ok(&e, "rd %#lx", (unsigned long)a), 77); /* nothing written */
	peer_stop(&i);
	peer_stop(&e);
}

START_TEST(t_other_uid_denied_sysv)
{
	other_uid("sysvkeep", 0600, "sig 7", "sig 7");
}
END_TEST

START_TEST(t_other_uid_denied_file)
{
	other_uid("file", 0600, "sig 7", "sig 7");
}
END_TEST

START_TEST(t_other_uid_readonly_file)
{
	other_uid("file", 0644, "ok 77", "sig 11");
}
END_TEST

START_TEST(t_other_uid_readonly_sysv)
{
	other_uid("sysvkeep", 0644, "ok 77", "sig 11");
}
END_TEST

/* Every mapper of the object sees the importer's writes: a second mapping
 * of the same POSIX shm object in the exporter (through map_files: root). */
START_TEST(t_importer_write_seen_by_second_mapping)
{
	if (geteuid() != 0)
		return;
	struct peer e, i;
	peer_start(&e, FLAVOUR);
	peer_start(&i, PEER_PLAIN);
	long long apid = setup(&e, &i);
	/* the same POSIX object mapped twice in the exporter */
	uintptr_t a = (uintptr_t)peer_ok(&e, "mkshared posixfd %lu 0600", (unsigned long)LEN);
	uintptr_t a2 = (uintptr_t)peer_ok(&e, "mapagain %#lx %lu", (unsigned long)a, (unsigned long)LEN);
	uintptr_t at = (uintptr_t)peer_ok(&i, "attach %lld %#lx %lu 0", apid, (unsigned long)a,
					  (unsigned long)LEN);
	peer_ok(&i, "wr %#lx 4242", (unsigned long)(at + 5 * PAGE));
	ck_assert_int_eq(peer_ok(&e, "rd %#lx", (unsigned long)(a2 + 5 * PAGE)), 4242);
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

int main(void)
{
#ifdef SHARED_ARENA
	tu_require_preload();
#endif
	st_init();
	Suite *s = suite_create("shm shared mappings");
	TCase *tc = tcase_create("kinds");
	tcase_set_timeout(tc, tu_guard_s(60));
	tcase_add_loop_test(tc, t_kind, 0, NKINDS);
	tcase_add_loop_test(tc, t_unprivileged, 0, NKINDS);
	tcase_add_test(tc, t_other_uid_denied_sysv);
	tcase_add_test(tc, t_other_uid_denied_file);
	tcase_add_test(tc, t_other_uid_readonly_file);
	tcase_add_test(tc, t_other_uid_readonly_sysv);
	tcase_add_test(tc, t_importer_write_seen_by_second_mapping);
	suite_add_tcase(s, tc);
	return st_run(s);
}
