/* remote.c - the remote transport (transports/rdma) for real: an exporter
 * and an importer (tests/shm/peer, exec'd) on "different nodes" (distinct
 * XPMEM_NODE_ID), joined by libfabric on loopback (FI_PROVIDER tcp;ofi_rxm
 * and shm) and the shared-directory resolver (XPMEM_RESOLVER=dir:TMPDIR).
 * Data byte for byte, write-back after flush and after detach, read-only
 * attachments refuse stores, remove -> SIGBUS + REMOVED, a killed exporter
 * -> EXITED within the documented bound, and so does a stopped (unreachable)
 * one, forged segids and apids refused,
 * this process attaching a local (shm) and a remote segment at once,
 * (tcp, root) exporter and importer as nobody, and invalidation: the
 * exporter's munmap, MAP_FIXED and MADV_DONTNEED of memory importers read
 * reach them before (munmap, MAP_FIXED) or with the INVALIDATED event
 * (MADV_DONTNEED): SIGBUS where nothing is mapped, the new data after a
 * re-touch, never the old; a flush never writes pages the importer did not
 * store to.
 * Skips (77) when the plugin was not built (no libfabric); a provider
 * libfabric does not offer here is skipped with a message.  Built with
 * RDMA_BACKEND_VERBS (remote_ibverbs): the same over the plugin's verbs
 * back end (XPMEM_RDMA_BACKEND=verbs), skipped where no RDMA device exists. */
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef RDMA_BACKEND_VERBS
#include <infiniband/verbs.h>
#else
#include <rdma/fabric.h>
#endif
#include "uxp.h"
#include "uxpmem.h"
#include "shmtest.h"

#define SEGSIZE (1024 * 1024)
#define SEED 31
#define THIS_NODE 3
#ifndef RDMA_PROVIDER
#define RDMA_PROVIDER "tcp;ofi_rxm"
#endif
static const char *provider;
static char resolver_dir[4096];


/* A peer on node `node`: tests/shm/peer with this test's environment. */
static void node_start(struct peer *p, int node)
{
	char n[16];
	snprintf(n, sizeof(n), "%d", node);
	setenv("XPMEM_NODE_ID", n, 1);
	peer_start(p, PEER_PLAIN);
	snprintf(n, sizeof(n), "%d", THIS_NODE);
	setenv("XPMEM_NODE_ID", n, 1);
}

struct exporter {
	struct peer p;
	unsigned long addr;
	long long segid;
};

/* Peers that use userfaultfd whatever this process's XPMEM_USERFAULTFD
 * (0 under valgrind, which runs this program only). */
static void node_start_uffd(struct peer *p, int node)
{
	char *uffd = getenv("XPMEM_USERFAULTFD") ? strdup(getenv("XPMEM_USERFAULTFD")) : NULL;
	unsetenv("XPMEM_USERFAULTFD");
	node_start(p, node);
	if (uffd)
		setenv("XPMEM_USERFAULTFD", uffd, 1);
	free(uffd);
}

static bool with_uffd;

/* Node 1 exports SEGSIZE bytes of anonymous memory filled with SEED. */
static void export_start(struct exporter *e, const char *mode)
{
	if (with_uffd)
		node_start_uffd(&e->p, 1);
	else
		node_start(&e->p, 1);
	e->addr = (unsigned long)peer_ok(&e->p, "mmapanon %d", SEGSIZE);
	peer_ok(&e->p, "fill %#lx %d %d", e->addr, SEGSIZE, SEED);
	e->segid = slow_ok("make", slow_cmd(&e->p, "make %#lx %d %s", e->addr, SEGSIZE, mode));
	ck_assert_uint_eq(uxp_id_node(e->segid), 1);
}

/* The end of a test: the importer detaches, releases and stops, the
 * exporter removes its segment and stops. */
static void finish(struct exporter *e, struct peer *i, unsigned long at, long long apid)
{
	peer_ok(i, "detach %#lx", at);
	peer_ok(i, "release %lld", apid);
	peer_stop(i);
	peer_ok(&e->p, "remove %lld", e->segid);
	peer_stop(&e->p);
	with_uffd = false;
}

/* Node 2 gets and attaches [off, off+size) of the segment. */
static unsigned long import(struct peer *i, long long segid, int flags, long long *apid, long off,
			    long size)
{
	if (with_uffd)
		node_start_uffd(i, 2);
	else
		node_start(i, 2);
	*apid = slow_ok("get", slow_cmd(i, "get %lld %d", segid, flags));
	ck_assert_uint_eq(uxp_id_node(*apid), 1);
	const char *r = slow_cmd(i, "attach %lld %ld %ld 0", *apid, off, size);
	unsigned long at = 0;
	ck_assert_msg(sscanf(r, "ok %li", &at) == 1, "attach: '%s'", r);
	return at;
}

START_TEST(data_and_write_back)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");

	/* flush: the exporter sees the stores, and nothing else changed */
	peer_ok(&i, "fill %#lx %d %d", at + 65536, 65536, SEED + 1);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 65536, 65536, SEED + 1), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr, 65536, SEED), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d %d", e.addr + 131072, SEGSIZE - 131072,
				  SEED, 131072 / 8), "ok");
	/* an unchanged page is not written back over the exporter's stores */
	peer_ok(&e.p, "fill %#lx %d %d", e.addr + 4 * 65536, 4096, SEED + 2);
	peer_ok(&i, "fill %#lx %d %d", at + 8 * 65536, 8192, SEED + 3);
	/* detach writes back too */
	peer_ok(&i, "detach %#lx", at);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 8 * 65536, 8192, SEED + 3), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 4 * 65536, 4096, SEED + 2), "ok");

	/* attaching again shows the exporter's memory as it is now, at an offset */
	const char *r = slow_cmd(&i, "attach %lld %d %d 0", apid, 4 * 65536, 65536);
	ck_assert_msg(sscanf(r, "ok %li", &at) == 1, "attach: '%s'", r);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, 4096, SEED + 2), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at + 4096, 65536 - 4096, SEED,
				  (4 * 65536 + 4096) / 8), "ok");
	peer_ok(&i, "detach %#lx", at);
	/* beyond the segment */
	ck_assert_int_eq(peer_err(&i, "attach %lld %d %d 0", apid, SEGSIZE - 4096, 8192), EINVAL);
	peer_ok(&i, "release %lld", apid);
	peer_stop(&i);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&e.p);
}
END_TEST

START_TEST(rdonly_refuses_stores)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0644");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, 8192, 16384);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at, 16384, SEED, 1024), "ok");
	ck_assert_str_eq(peer_cmd(&i, "wr %#lx 7", at + 64), "sig 11"); /* SIGSEGV */
	ck_assert_str_eq(peer_cmd(&i, "flush %#lx 16384", at), "ok");  /* nothing to write */
	/* released with an attachment: it stays usable until detached */
	peer_ok(&i, "release %lld", apid);
	ck_assert_int_eq(peer_err(&i, "release %lld", apid), ENOENT);
	ck_assert_int_eq(peer_err(&i, "attach %lld 0 4096 0", apid), ENOENT);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at, 16384, SEED, 1024), "ok");
	peer_ok(&i, "detach %#lx", at);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr, SEGSIZE, SEED), "ok");
	peer_stop(&i);
	peer_stop(&e.p);
}
END_TEST

START_TEST(remove_raises_sigbus)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	peer_ok(&i, "revfd");
	peer_ok(&e.p, "remove %lld", e.segid);
	long long v[4];
	ck_assert_int_eq(sscanf(slow_cmd(&i, "revwait %d", tu_guard_ms(10000)), "ok %lld %lld", &v[0],
				&v[1]), 2);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_REMOVED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 4096), "sig 7"); /* SIGBUS */
	ck_assert_int_eq(peer_err(&i, "get %lld 2", e.segid), ENOENT);
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
	peer_stop(&e.p);
}
END_TEST

START_TEST(killed_exporter_counts_as_exited)
{
	struct exporter e;
	struct peer i;
	long long apid;
	/* short, to see EXITED soon; stretched like a hang guard where
	 * connecting alone may take a second (Soft-RoCE under QEMU) */
	const int timeout_ms = tu_peer_guard_ms(1000);
	char tms[32];
	snprintf(tms, sizeof(tms), "%d", timeout_ms);
	setenv("XPMEM_RDMA_TIMEOUT_MS", tms, 1);
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, 0, 65536);
	peer_ok(&i, "revfd");
	pid_t dead = e.p.pid;
	peer_kill(&e.p);
	/* what a launcher cleans after a killed process: libfabric's shm
	 * provider leaves its region (named after the pid) in /dev/shm */
	char region[64];
	snprintf(region, sizeof(region), "/dev/shm/%d:0:0", (int)dead);
	if (!strcmp(provider, "shm"))
		unlink(region);
	long long v[4];
	/* documented bound: the timeout plus a ping interval; the guard scales */
	const char *r = slow_cmd(&i, "revwait %d", tu_guard_ms(timeout_ms * 5 / 4 + 2000));
	ck_assert_msg(sscanf(r, "ok %lld %lld %lld", &v[0], &v[1], &v[2]) == 3, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_EXITED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at), "sig 7");
	ck_assert_int_eq(peer_err(&i, "get %lld 1", e.segid), ENOENT); /* at once: known gone */
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
}
END_TEST

/* An exporter that stops answering (SIGSTOP: alive, unreachable) counts as
 * exited within the same bound; it is not asked again after SIGCONT. */
START_TEST(unreachable_exporter_counts_as_exited)
{
	struct exporter e;
	struct peer i;
	long long apid;
	const int timeout_ms = tu_peer_guard_ms(1000); /* stretched as in killed_exporter */
	char tms[32];
	snprintf(tms, sizeof(tms), "%d", timeout_ms);
	setenv("XPMEM_RDMA_TIMEOUT_MS", tms, 1);
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, 0, 65536);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, 65536, SEED), "ok");
	peer_ok(&i, "revfd");
	ck_assert_int_eq(kill(e.p.pid, SIGSTOP), 0);
	long long v[4];
	const char *r = slow_cmd(&i, "revwait %d", tu_guard_ms(timeout_ms * 5 / 4 + 2000));
	ck_assert_msg(sscanf(r, "ok %lld %lld %lld", &v[0], &v[1], &v[2]) == 3, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_EXITED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at), "sig 7");
	ck_assert_int_eq(peer_err(&i, "get %lld 1", e.segid), ENOENT);
	ck_assert_int_eq(kill(e.p.pid, SIGCONT), 0);
	ck_assert_int_eq(peer_err(&i, "get %lld 1", e.segid), ENOENT); /* known gone */
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
	peer_stop(&e.p);
	unsetenv("XPMEM_RDMA_TIMEOUT_MS");
}
END_TEST

START_TEST(forged_ids_refused)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, 4096);
	/* a serial the exporter never made; a process that published nothing */
	ck_assert_int_eq(peer_err(&i, "get %lld 2", e.segid + 1), ENOENT);
	ck_assert_int_eq(peer_err(&i, "get %lld 2", (long long)uxp_id_compose(1, 4000000, 1)), ENOENT);
	/* an apid of another process */
	long long other = uxp_id_with_node(uxp_id_compose(0, e.p.pid, 1), 1);
	ck_assert_int_eq(peer_err(&i, "attach %lld 0 4096 0", other), EACCES);
	ck_assert_int_eq(peer_err(&i, "release %lld", other), EACCES);
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
	peer_stop(&e.p);
}
END_TEST

/* Can a plain shm exporter (no arena) share anonymous memory here?  It
 * converts it with userfaultfd write-protect of unpopulated and shmem
 * memory (Linux 6.4; not the 6.1 kernel of make check-verbs' guest). */
static int plain_memory_exportable(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (fd < 0)
		return 0;
	struct uffdio_api api = { .api = UFFD_API };
	int ok = ioctl(fd, UFFDIO_API, &api) == 0 &&
		 (api.features & (1ull << 12 | 1ull << 13)) == (1ull << 12 | 1ull << 13);
	close(fd);
	return ok; /* (1 << 12: WP_HUGETLBFS_SHMEM, 1 << 13: WP_UNPOPULATED) */
}

/* This process: a segment of this node (shm exporter, node THIS_NODE) and
 * one of node 1 (rdma), attached at once.  The local exporter's memory is
 * plain anonymous memory, or where this kernel cannot convert it, the
 * arena's (preloaded). */
START_TEST(local_and_remote_at_once)
{
	struct exporter e;
	struct peer l;
	export_start(&e, "0600");
	/* XPMEM_USERFAULTFD=0 (set for valgrind) is this process's: the shm
	 * exporter converts its memory with userfaultfd */
	char *uffd = getenv("XPMEM_USERFAULTFD") ? strdup(getenv("XPMEM_USERFAULTFD")) : NULL;
	unsetenv("XPMEM_USERFAULTFD");
	int plain = plain_memory_exportable();
	if (!plain)
		printf("note: this kernel's userfaultfd cannot convert plain memory: the local "
		       "exporter's memory comes from the arena\n");
	peer_start(&l, plain ? PEER_PLAIN : PEER_ARENA);
	if (uffd)
		setenv("XPMEM_USERFAULTFD", uffd, 1);
	free(uffd);
	unsigned long laddr = (unsigned long)peer_ok(&l, "mmapanon %d", 65536);
	peer_ok(&l, "fill %#lx %d %d", laddr, 65536, SEED + 5);
	long long lseg = slow_ok("make", slow_cmd(&l, "make %#lx %d 0600", laddr, 65536));
	ck_assert_uint_eq(uxp_id_node(lseg), THIS_NODE);

	xpmem_apid_t la = xpmem_get(lseg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	xpmem_apid_t ra = xpmem_get(e.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(la > 0 && ra > 0, "gets: %lld %lld (%s)", (long long)la, (long long)ra,
		      strerror(errno));
	struct xpmem_addr lx = { la, 0 }, rx = { ra, 0 };
	char *lp = xpmem_attach(lx, 65536, NULL), *rp = xpmem_attach(rx, SEGSIZE, NULL);
	ck_assert_ptr_ne(lp, ATTACH_FAILED);
	ck_assert_ptr_ne(rp, ATTACH_FAILED);
	ck_assert_int_eq(st_check(lp, 65536, SEED + 5), -1);
	ck_assert_int_eq(st_check(rp, SEGSIZE, SEED), -1);
	st_fill(lp, 4096, SEED + 6);
	st_fill(rp, 4096, SEED + 7);
	ck_assert_int_eq(uxpmem_flush(rp, SEGSIZE), 0);
	ck_assert_int_eq(uxpmem_flush(lp, 65536), 0); /* local: nothing to do */
	ck_assert_str_eq(peer_cmd(&l, "check %#lx 4096 %d", laddr, SEED + 6), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx 4096 %d", e.addr, SEED + 7), "ok");
	ck_assert_int_eq(xpmem_detach(lp), 0);
	ck_assert_int_eq(xpmem_detach(rp), 0);
	ck_assert_int_eq(xpmem_release(la), 0);
	ck_assert_int_eq(xpmem_release(ra), 0);
	peer_stop(&l);
	peer_stop(&e.p);
}
END_TEST

/* Exporter and importer as nobody (tcp only: the shm provider's
 * cross-memory attach may need ptrace rights nobody lacks): attach, read,
 * write, flush work; a system call on a page not fetched yet fails with
 * EFAULT under user-mode-only userfaultfd (xpmem_attach(3)), and works once
 * a load fetched it.  Its own resolver directory, which nobody can reach. */
START_TEST(as_nobody)
{
	int full = tu_nobody_full_uffd();
	ck_assert_int_ge(full, 0);
	char dir[] = "/tmp/uxpmem-nobody.XXXXXX", env[4200], cmd[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 01777), 0);
	snprintf(env, sizeof(env), "dir:%s", dir);
	setenv("XPMEM_RESOLVER", env, 1);
	/* XPMEM_USERFAULTFD=0 (set for valgrind) is this process's: the
	 * importer must fill on fault */
	char *uffd = getenv("XPMEM_USERFAULTFD") ? strdup(getenv("XPMEM_USERFAULTFD")) : NULL;
	unsetenv("XPMEM_USERFAULTFD");
	struct exporter e;
	struct peer i;
	node_start(&e.p, 1);
	ck_assert_int_gt(peer_ok(&e.p, "drop"), 0);
	e.addr = (unsigned long)peer_ok(&e.p, "mmapanon %d", SEGSIZE);
	peer_ok(&e.p, "fill %#lx %d %d", e.addr, SEGSIZE, SEED);
	e.segid = slow_ok("make", slow_cmd(&e.p, "make %#lx %d 0600", e.addr, SEGSIZE));
	node_start(&i, 2);
	ck_assert_int_gt(peer_ok(&i, "drop"), 0);
	long long apid = slow_ok("get", slow_cmd(&i, "get %lld %d", e.segid, XPMEM_RDWR));
	unsigned long at = 0;
	const char *r = slow_cmd(&i, "attach %lld 0 %d 0", apid, SEGSIZE);
	ck_assert_msg(sscanf(r, "ok %li", &at) == 1, "attach: '%s'", r);
	r = slow_cmd(&i, "pipewrite %#lx 4096", at + 524288);
	if (full)
		ck_assert_msg(!strcmp(r, "ok 4096"), "full userfaultfd: write(pipe, unfetched) gave '%s'", r);
	else
		ck_assert_msg(!strncmp(r, "err ", 4) && atoi(r + 4) == EFAULT,
			      "user-mode-only userfaultfd: write(pipe, unfetched page) gave '%s', want "
			      "the documented 'err %d' (EFAULT)", r, EFAULT);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx 4096 %d %d", at + 524288, SEED, 524288 / 8), "ok");
	ck_assert_str_eq(slow_cmd(&i, "pipewrite %#lx 4096", at + 524288), "ok 4096");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	peer_ok(&i, "fill %#lx 4096 %d", at + 8192, SEED + 1);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx 4096 %d", e.addr + 8192, SEED + 1), "ok");
	peer_ok(&i, "detach %#lx", at);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&i);
	peer_stop(&e.p);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	if (uffd)
		setenv("XPMEM_USERFAULTFD", uffd, 1);
	free(uffd);
	snprintf(env, sizeof(env), "dir:%s", resolver_dir);
	setenv("XPMEM_RESOLVER", env, 1);
}
END_TEST

/* The next event of the importer: INVALIDATED of apid. */
static void expect_invalidated(struct peer *i, long long apid)
{
	long long v[3];
	const char *r = slow_cmd(i, "revwait %d", tu_guard_ms(10000));
	ck_assert_msg(sscanf(r, "ok %lld %lld %lld", &v[0], &v[1], &v[2]) == 3, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_INVALIDATED);
	ck_assert_int_eq(v[1], apid);
}

/* The exporter unmaps part of what the importer read: by the time munmap
 * returned the importer was told (event queued) and touching that part
 * raises SIGBUS; the rest keeps its data and its write-back. */
START_TEST(unmap_invalidates)
{
	struct exporter e;
	struct peer i;
	long long apid;
	with_uffd = true;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE); /* lazy */
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	peer_ok(&i, "revfd");
	peer_ok(&e.p, "munmap %#lx %d", e.addr + 262144, 65536);
	/* no wait: the importer acknowledged before munmap returned */
	long long v[3];
	const char *r = peer_cmd(&i, "revwait 0");
	ck_assert_msg(sscanf(r, "ok %lld %lld %lld", &v[0], &v[1], &v[2]) == 3, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_INVALIDATED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 262144), "sig 7");
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 262144 + 65536 - 8), "sig 7");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, 262144, SEED), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at + 327680, SEGSIZE - 327680, SEED,
				  327680 / 8), "ok");
	/* stores elsewhere still reach the exporter (its chunk registered anew) */
	peer_ok(&i, "fill %#lx %d %d", at + 196608, 65536, SEED + 4);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 196608, 65536, SEED + 4), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr, 196608, SEED), "ok");
	/* a new attachment of the hole: SIGBUS there too */
	r = slow_cmd(&i, "attach %lld %d %d 0", apid, 262144, 65536);
	unsigned long at2 = 0;
	ck_assert_msg(sscanf(r, "ok %li", &at2) == 1 || strncmp(r, "err", 3) == 0, "attach: '%s'", r);
	if (at2) {
		/* A hole, unless the exporter's own runtime (malloc, libfabric, a
		 * sanitizer's) mapped something there since munmap: then the
		 * importer sees that memory, as with the kernel XPMEM. */
		char ex1[64], im[64], ex2[64];
		snprintf(ex1, sizeof(ex1), "%s", peer_cmd(&e.p, "rd %#lx", e.addr + 262144));
		snprintf(im, sizeof(im), "%s", peer_cmd(&i, "rd %#lx", at2));
		snprintf(ex2, sizeof(ex2), "%s", peer_cmd(&e.p, "rd %#lx", e.addr + 262144));
		if (!strcmp(ex1, "sig 11") && !strcmp(ex2, "sig 11"))
			ck_assert_str_eq(im, "sig 7");
		else
			printf("note: unmap_invalidates: the exporter mapped memory in the hole meanwhile "
			       "(it read '%s', then '%s'); the importer read '%s'\n", ex1, ex2, im);
		peer_ok(&i, "detach %#lx", at2);
	}
	finish(&e, &i, at, apid);
}
END_TEST

/* The exporter maps new memory over part of what importers read (MAP_FIXED,
 * new data): a lazy and an eager attachment both show the new data at the
 * next touch, never the old. */
START_TEST(remap_shows_new_data)
{
	struct exporter e;
	struct peer i;
	long long apid;
	with_uffd = true;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, 0, SEGSIZE); /* lazy */
	const char *r = slow_cmd(&i, "attach %lld %d %d 0", apid, 524288, 65536); /* eager */
	unsigned long small = 0;
	ck_assert_msg(sscanf(r, "ok %li", &small) == 1, "attach: '%s'", r);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", small, 65536, SEED, 524288 / 8), "ok");
	peer_ok(&i, "revfd");
	peer_ok(&e.p, "mmapfixed %#lx %d %d", e.addr + 524288, 65536, SEED + 9);
	expect_invalidated(&i, apid);
	expect_invalidated(&i, apid);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at + 524288, 65536, SEED + 9), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", small, 65536, SEED + 9), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, 524288, SEED), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at + 589824, SEGSIZE - 589824, SEED,
				  589824 / 8), "ok");
	/* and again: the new memory's registration is watched too */
	peer_ok(&e.p, "mmapfixed %#lx %d %d", e.addr + 524288, 8192, SEED + 10);
	expect_invalidated(&i, apid);
	expect_invalidated(&i, apid);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", small, 8192, SEED + 10), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at + 524288, 8192, SEED + 10), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", small + 8192, 65536 - 8192, SEED + 9,
				  8192 / 8), "ok");
	peer_ok(&i, "detach %#lx", small);
	finish(&e, &i, at, apid);
}
END_TEST

/* More grants than the exporter once told (64: the rest kept the old
 * pages, silently): one importer gets the segment NGRANTS times and reads
 * through each apid; the exporter maps new data there; every attachment
 * shows the new data at the next touch. */
#define NGRANTS 70
START_TEST(many_grants_all_told)
{
	struct exporter e;
	struct peer i;
	long long apid[NGRANTS];
	unsigned long at[NGRANTS];
	with_uffd = true;
	export_start(&e, "0600");
	at[0] = import(&i, e.segid, XPMEM_RDONLY, &apid[0], 0, 65536); /* eager */
	for (int k = 1; k < NGRANTS; k++) {
		apid[k] = slow_ok("get", slow_cmd(&i, "get %lld %d", e.segid, XPMEM_RDONLY));
		const char *r = slow_cmd(&i, "attach %lld 0 65536 0", apid[k]);
		ck_assert_msg(sscanf(r, "ok %li", &at[k]) == 1, "attach %d: '%s'", k, r);
	}
	for (int k = 0; k < NGRANTS; k++)
		ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at[k], 65536, SEED), "ok");
	peer_ok(&e.p, "mmapfixed %#lx %d %d", e.addr, 65536, SEED + 9);
	for (int k = 0; k < NGRANTS; k++) {
		const char *r = peer_cmd(&i, "check %#lx %d %d", at[k], 65536, SEED + 9);
		ck_assert_msg(!strcmp(r, "ok"), "grant %d of %d: after the exporter's remap: '%s' "
			      "(stale: not told)", k + 1, NGRANTS, r);
	}
	for (int k = 1; k < NGRANTS; k++) {
		peer_ok(&i, "detach %#lx", at[k]);
		peer_ok(&i, "release %lld", apid[k]);
	}
	finish(&e, &i, at[0], apid[0]);
}
END_TEST

/* A segment with a PROT_NONE page and a read-only page inside: the
 * exporter registers, around what an importer asks for, only memory it can
 * pin with that access.  (A registration reaching the guard page failed as
 * a whole over verbs, which pins: SIGBUS on pages that are fine.) */
START_TEST(guard_pages_inside)
{
	struct exporter e;
	struct peer i, r;
	long long apid, rapid;
	const int guard = 524288, ro = guard + 4096;
	with_uffd = true;
	export_start(&e, "0600");
	peer_ok(&e.p, "mprotect %#lx %d %d", e.addr + guard, 4096, PROT_NONE);
	peer_ok(&e.p, "mprotect %#lx %d %d", e.addr + ro, 4096, PROT_READ);
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE); /* lazy */
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, 65536, SEED), "ok");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at + ro + 4096, 65536, SEED,
				  (ro + 4096) / 8), "ok");
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + guard), "sig 7");
	peer_ok(&i, "fill %#lx %d %d", at, 65536, SEED + 1);
	peer_ok(&i, "flush %#lx %d", at, 65536);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr, 65536, SEED + 1), "ok");
	/* read-only: the read-only page is readable - except through
	 * libfabric's verbs provider, whose registrations always ask for local
	 * write (its MR cache): a hole there, documented in xpmem(7) */
	unsigned long rat = import(&r, e.segid, XPMEM_RDONLY, &rapid, 0, SEGSIZE);
	if (strstr(provider, "verbs") && strstr(provider, "ofi_rxm"))
		ck_assert_str_eq(peer_cmd(&r, "rd %#lx", rat + ro), "sig 7");
	else
		ck_assert_str_eq(peer_cmd(&r, "check %#lx %d %d %d", rat + ro, 4096, SEED, ro / 8),
				 "ok");
	ck_assert_str_eq(peer_cmd(&r, "check %#lx %d %d %d", rat + 65536, 65536, SEED, 65536 / 8),
			 "ok");
	peer_ok(&r, "detach %#lx", rat);
	peer_stop(&r);
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&e.p);
	with_uffd = false;
}
END_TEST

/* The exporter maps new memory over what the importer keeps reading, over
 * and over: fetches race invalidations, and an RMA through a key the
 * exporter has just closed breaks the connection under the requests that
 * follow (RC queue pairs go to the error state; tcp;ofi_rxm cancels).  The
 * importer sees each page's own tag or zeros (mapped anew, not tagged
 * yet), never SIGBUS: the attachment is never revoked. */
START_TEST(remap_during_reads)
{
	struct exporter e;
	struct peer i;
	long long apid;
	const int off = 524288, len = 131072, ms = 3000;
	with_uffd = true;
	export_start(&e, "0600");
	ck_assert_str_eq(peer_cmd(&e.p, "remaploop %#lx %d 0", e.addr + off, len), "ok 1");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, off, len);
	peer_send(&e.p, "remaploop %#lx %d %d", e.addr + off, len, ms);
	peer_send(&i, "faultloop %lld %#lx %d %d %d", apid, at, off, len, ms);
	const char *r = peer_recv(&i, tu_guard_ms(ms + 30000));
	unsigned long long rounds, sigbus, again;
	ck_assert_msg(sscanf(r, "ok %llu %llu %llu", &rounds, &sigbus, &again) == 3, "faultloop: '%s'",
		      r);
	ck_assert_uint_eq(sigbus, 0);
	ck_assert_uint_gt(rounds, 0);
	r = peer_recv(&e.p, tu_guard_ms(ms + 30000));
	unsigned long long remaps = 0;
	/* how many remaps fit in ms is timing (each waits for the importer's
	 * ack, XPMEM_RDMA_TIMEOUT_MS at most): not asserted */
	ck_assert_msg(sscanf(r, "ok %llu", &remaps) == 1 && remaps >= 1, "remaploop: '%s'", r);
	printf("remap_during_reads: %llu remaps, %llu attach rounds (%llu EAGAIN)\n", remaps, rounds,
	       again);
	finish(&e, &i, at, apid);
}
END_TEST

/* MADV_DONTNEED in the exporter: with the INVALIDATED event the importer's
 * pages are dropped; it reads the zeros the exporter reads now. */
START_TEST(dontneed_invalidates)
{
	struct exporter e;
	struct peer i;
	long long apid;
	with_uffd = true;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	peer_ok(&i, "revfd");
	peer_ok(&e.p, "dontneed %#lx %d", e.addr + 131072, 8192);
	expect_invalidated(&i, apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 131072), "ok 0");
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 131072 + 8192 - 8), "ok 0");
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d %d", at + 139264, 65536, SEED, 139264 / 8),
			 "ok");
	finish(&e, &i, at, apid);
}
END_TEST

/* An importer killed after it registered memory: the exporter's munmaps do
 * not hang on it (one XPMEM_RDMA_TIMEOUT_MS at most, then it is not waited
 * for), and a live importer is still invalidated each time. */
START_TEST(dead_importer_no_hang)
{
	struct exporter e;
	struct peer i, j;
	long long apid, apid2;
	char tms[32];
	snprintf(tms, sizeof(tms), "%d", tu_peer_guard_ms(1000));
	setenv("XPMEM_RDMA_TIMEOUT_MS", tms, 1);
	with_uffd = true;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDONLY, &apid, 0, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	unsigned long at2 = import(&j, e.segid, XPMEM_RDONLY, &apid2, 0, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&j, "check %#lx %d %d", at2, SEGSIZE, SEED), "ok");
	peer_ok(&j, "revfd");
	peer_kill(&i);
	ck_assert_str_eq(slow_cmd(&e.p, "munmap %#lx %d", e.addr + 262144, 65536), "ok");
	expect_invalidated(&j, apid2);
	ck_assert_str_eq(peer_cmd(&j, "rd %#lx", at2 + 262144), "sig 7");
	ck_assert_str_eq(slow_cmd(&e.p, "munmap %#lx %d", e.addr + 524288, 65536), "ok");
	expect_invalidated(&j, apid2);
	ck_assert_str_eq(peer_cmd(&j, "rd %#lx", at2 + 524288), "sig 7");
	ck_assert_str_eq(peer_cmd(&j, "check %#lx %d %d", at2, 262144, SEED), "ok");
	peer_ok(&j, "detach %#lx", at2);
	peer_stop(&j);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&e.p);
	with_uffd = false;
	unsetenv("XPMEM_RDMA_TIMEOUT_MS");
}
END_TEST

/* Release consistency: a flush writes the pages the importer stored to and
 * no other, so the exporter's own stores to other pages (even after the
 * importer fetched them) survive the importer's flush and detach. */
START_TEST(flush_keeps_exporter_stores)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600");
	unsigned long at = import(&i, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&i, "check %#lx %d %d", at, SEGSIZE, SEED), "ok");
	/* the exporter changes page 3 (the importer has it, never writes it) */
	peer_ok(&e.p, "fill %#lx %d %d", e.addr + 3 * 4096, 4096, SEED + 20);
	peer_ok(&i, "fill %#lx %d %d", at + 5 * 4096, 4096, SEED + 21);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 3 * 4096, 4096, SEED + 20), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 5 * 4096, 4096, SEED + 21), "ok");
	/* again between a flush and the detach */
	peer_ok(&e.p, "fill %#lx %d %d", e.addr + 7 * 4096, 4096, SEED + 22);
	peer_ok(&i, "fill %#lx %d %d", at + 9 * 4096, 4096, SEED + 23);
	peer_ok(&i, "detach %#lx", at);
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 7 * 4096, 4096, SEED + 22), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 9 * 4096, 4096, SEED + 23), "ok");
	ck_assert_str_eq(peer_cmd(&e.p, "check %#lx %d %d", e.addr + 3 * 4096, 4096, SEED + 20), "ok");
	peer_ok(&i, "release %lld", apid);
	peer_stop(&i);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&e.p);
}
END_TEST

#ifdef RDMA_BACKEND_VERBS
/* The plugin's verbs back end (XPMEM_RDMA_BACKEND=verbs) needs a device. */
static int provider_here(const char *prov)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	(void)prov;
	if (list)
		ibv_free_device_list(list);
	return n > 0;
}
#else
/* Does libfabric offer prov (an RDM endpoint with RMA) here? */
static int provider_here(const char *prov)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;
	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_MSG | FI_RMA;
	/* every mode the plugin accepts (transports/rdma/fabric.c): verbs
	 * offers nothing to a caller without FI_MR_LOCAL ... FI_MR_PROV_KEY */
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	hints->fabric_attr->prov_name = strdup(prov);
	int ret = fi_getinfo(FI_VERSION(1, 5), NULL, NULL, 0, hints, &info);
	fi_freeinfo(hints);
	if (info)
		fi_freeinfo(info);
	return ret == 0;
}
#endif

/* The probe runs in a child: libfabric keeps the verbs device contexts
 * fi_getinfo opened, and a forked process (each Check test) cannot use
 * them (the kernel refuses writes to an inherited uverbs descriptor with
 * EACCES; libfabric retries that as -FI_EAGAIN until the timeout). */
static int provider_here_forked(const char *prov)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(provider_here(prov) ? 0 : 1);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		perror("provider probe");
		exit(1);
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
	char plugin[4096], path[4200];
	st_init();
	tu_builddir_path("transports/rdma/.libs", plugin, sizeof(plugin));
	snprintf(path, sizeof(path), "%s/libuxpmem-rdma.so", plugin);
	if (access(path, R_OK) != 0) {
		printf("SKIP: the rdma plugin is not built (%s): configure found no libfabric "
		       "(apt-get install libfabric-dev)\n", path);
		return 77;
	}
	provider = argc > 1 ? argv[1] : RDMA_PROVIDER;
#ifdef RDMA_BACKEND_VERBS
	setenv("XPMEM_RDMA_BACKEND", "verbs", 1);
	if (!provider_here_forked(provider)) {
		printf("SKIP: no RDMA device here (libibverbs lists none): the verbs back end runs "
		       "in make check-verbs (Soft-RoCE under QEMU)\n");
		return 77;
	}
#else
	/* before libfabric's first call in this process: it reads it once */
	setenv("FI_PROVIDER", provider, 1);
	if (!provider_here_forked(provider)) {
		printf("SKIP: libfabric offers no provider %s here\n", provider);
		return 77;
	}
#endif
	snprintf(resolver_dir, sizeof(resolver_dir), "%s/uxpmem-resolver.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(resolver_dir)) {
		perror(resolver_dir);
		return 1;
	}
	snprintf(path, sizeof(path), "dir:%s", resolver_dir);
	setenv("XPMEM_RESOLVER", path, 1);
	setenv("XPMEM_PLUGIN_DIR", plugin, 1);
	setenv("XPMEM_NODE_ID", "3", 1);
	/* peers log to this test's log: at info, a failure's log says which
	 * process counted which as exited, and which invalidation went
	 * unacknowledged (about 150 lines a run) */
	setenv("XPMEM_LOG_LEVEL", "info", 0);
	if (strstr(provider, "tcp"))
		setenv("FI_TCP_IFACE", "lo", 0); /* loopback only */

	Suite *s = suite_create(provider);
	TCase *tc = tcase_create("remote");
	tcase_set_timeout(tc, tu_guard_s(120));
	tcase_add_test(tc, data_and_write_back);
	tcase_add_test(tc, rdonly_refuses_stores);
	tcase_add_test(tc, remove_raises_sigbus);
	tcase_add_test(tc, killed_exporter_counts_as_exited);
	tcase_add_test(tc, unreachable_exporter_counts_as_exited);
	tcase_add_test(tc, forged_ids_refused);
	tcase_add_test(tc, local_and_remote_at_once);
	if (geteuid() == 0 && strstr(provider, "tcp"))
		tcase_add_test(tc, as_nobody);
	else
		printf("as_nobody: not run (%s)\n", geteuid() ? "not root: cannot become nobody"
							       : "tcp provider only");
	tcase_add_test(tc, guard_pages_inside);
	tcase_add_test(tc, unmap_invalidates);
	tcase_add_test(tc, remap_shows_new_data);
	tcase_add_test(tc, many_grants_all_told);
	/* Known open bug over libfabric's verbs;ofi_rxm (Soft-RoCE in make
	 * check-verbs): after an RDMA read through a key the exporter closed,
	 * the responder's queue pair goes to the error state and answers
	 * nothing more; the importer's read is retried for seconds with every
	 * later message behind it, and the attach under way fails with
	 * ETIMEDOUT.  The verbs back end disconnects on a completion error (the
	 * peer learns at once); through rxm we cannot.  UXP_TEST_VERBS_REMAP=1
	 * runs it there anyway. */
	if (!(strstr(provider, "verbs") && strstr(provider, "ofi_rxm")) ||
	    getenv("UXP_TEST_VERBS_REMAP"))
		tcase_add_test(tc, remap_during_reads);
	else
		printf("remap_during_reads: not run over verbs;ofi_rxm (a known open bug: see the "
		       "comment in tests/rdma/remote.c; UXP_TEST_VERBS_REMAP=1 runs it)\n");
	tcase_add_test(tc, dontneed_invalidates);
	tcase_add_test(tc, flush_keeps_exporter_stores);
	tcase_add_test(tc, dead_importer_no_hang);
	suite_add_tcase(s, tc);
	int ret = st_run(s);
	snprintf(path, sizeof(path), "rm -rf '%s'", resolver_dir);
	if (system(path) != 0)
		fprintf(stderr, "could not remove %s\n", resolver_dir);
	return ret;
}
