/*
 * revoke_cache.c - an MPI-style attachment cache that drops a peer's
 * entries when the peer's memory is revoked (uxpmem revocation events).
 *
 * MPI libraries (MPICH, Open MPI, UCX) keep, per peer, the peer's segid and
 * apid and a cache of attachments keyed by page range, and reuse an
 * attachment whenever a later message falls in a cached range.  With the
 * reference XPMEM, when the peer removes its segment or dies, the cache
 * learns nothing: the next message through a cached entry crashes with
 * SIGBUS.  uxpmem tells the importer first.  Two forms (see
 * uxpmem_revoke_handler(3)):
 *
 *   - a callback:  uxpmem_revoke_handler(apid, cb, arg), run on a library
 *                  thread, which may call xpmem_detach()/xpmem_release();
 *                  a library with its own locking can drop entries there;
 *   - a descriptor: uxpmem_revoke_fd() + uxpmem_revoke_poll(), polled from
 *                  the progress engine's own thread, so the cache needs no
 *                  lock at all.  This program shows that form.
 *
 * The program is rank 0 (importer).  It starts rank 1 (the exporter) by
 * running itself with the argument "exporter"; the two talk over a pair of
 * pipes, as MPI ranks would over their wire-up channel:
 *
 *   1. rank 1 exports a buffer; rank 0 gets its segid, xpmem_get()s it and
 *      reads a few ranges through the cache (misses, then hits);
 *   2. rank 1 calls xpmem_remove();
 *   3. rank 0's progress loop sees the descriptor readable, drops every
 *      entry of that peer (detach) and the apid (release): no stale entry,
 *      and the next lookup of that peer fails with ENOENT instead of
 *      crashing on SIGBUS.
 *
 * Run:  xpmem-run ./revoke_cache       (the exporter's memory must be in the
 *       uxpmem arena to be shared; xpmem-run preloads it).  Exit status 0
 *       and "revoke_cache: OK" when all of the above held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xpmem.h>
#include <uxpmem.h>

#define BUF_SIZE (4u << 20) /* what rank 1 exports */
#define CACHE_MAX 16        /* entries per peer */

static size_t page;

static void die(const char *who, const char *what)
{
	fprintf(stderr, "revoke_cache %s: %s failed: %s\n", who, what, strerror(errno));
	exit(1);
}

static uint64_t word(uint64_t i) /* the data rank 1 exports: word i */
{
	return i * 0x9E3779B97F4A7C15ULL + 1;
}

/* ---- rank 1: the exporter -------------------------------------------- */

static int exporter(void)
{
	char cmd[32];
	uint64_t *buf = aligned_alloc(page, BUF_SIZE);
	if (!buf)
		die("exporter", "aligned_alloc");
	for (size_t i = 0; i < BUF_SIZE / 8; i++)
		buf[i] = word(i);
	xpmem_segid_t seg = xpmem_make(buf, BUF_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (seg == -1)
		die("exporter", "xpmem_make");
	printf("%lld %p\n", (long long)seg, (void *)buf); /* the "business card" */
	fflush(stdout);
	while (fgets(cmd, sizeof(cmd), stdin)) {
		if (!strncmp(cmd, "remove", 6)) {
			/* returns once every importer has revoked its mappings */
			if (xpmem_remove(seg) != 0)
				die("exporter", "xpmem_remove");
			printf("removed\n");
			fflush(stdout);
		}
	}
	free(buf);
	return 0; /* rank 0 closed the channel */
}

/* ---- rank 0: the importer's attachment cache -------------------------- */

struct entry {          /* one attachment of a page range of the peer */
	uintptr_t start, end; /* the peer's addresses, page aligned */
	char *local;          /* where that range is attached here */
	unsigned long hits;
};

struct peer {
	int rank;
	xpmem_segid_t segid;
	xpmem_apid_t apid;    /* -1: none (never got, or revoked) */
	uintptr_t seg_base;   /* the peer's address of segment offset 0 */
	struct entry cache[CACHE_MAX];
	int n;
	unsigned long misses;
};

/* A pointer here to the peer's [addr, addr+len), through the cache; NULL
 * with errno ENOENT if the peer's memory is gone (revoked). */
static void *cache_lookup(struct peer *p, uintptr_t addr, size_t len)
{
	if (p->apid == -1) {
		errno = ENOENT;
		return NULL;
	}
	uintptr_t start = addr & ~(page - 1), end = (addr + len + page - 1) & ~(page - 1);
	for (int i = 0; i < p->n; i++)
		if (p->cache[i].start <= start && end <= p->cache[i].end) {
			p->cache[i].hits++;
			return p->cache[i].local + (addr - p->cache[i].start);
		}
	if (p->n == CACHE_MAX) { /* full: evict the last entry (real caches use LRU) */
		xpmem_detach(p->cache[--p->n].local);
	}
	struct xpmem_addr xa = { .apid = p->apid, .offset = (off_t)(start - p->seg_base) };
	char *local = xpmem_attach(xa, end - start, NULL);
	if (local == (void *)-1)
		return NULL; /* errno from xpmem_attach (ENOENT once revoked) */
	p->cache[p->n++] = (struct entry){ start, end, local, 0 };
	p->misses++;
	return local + (addr - start);
}

/* Drop everything of a peer whose memory was revoked. */
static void cache_drop_peer(struct peer *p, const struct uxpmem_revoke_event *ev)
{
	printf("rank 0: revocation of peer %d (seq %llu, reason %s, segid %#llx, %zu bytes): "
	       "dropping %d cached attachments\n", p->rank, ev->seq,
	       ev->reason == UXPMEM_REVOKE_REMOVED ? "removed" :
	       ev->reason == UXPMEM_REVOKE_EXITED ? "exited" : "other",
	       (unsigned long long)ev->segid, ev->length, p->n);
	/* The mappings already raise SIGBUS; detach and release just free
	 * them (both succeed after a revocation). */
	for (int i = 0; i < p->n; i++)
		if (xpmem_detach(p->cache[i].local) != 0)
			die("rank 0", "xpmem_detach");
	p->n = 0;
	if (xpmem_release(p->apid) != 0)
		die("rank 0", "xpmem_release");
	p->apid = -1;
}

/* The progress engine's revocation step: non-blocking, from our thread. */
static int progress(struct peer *peers, int npeers, int timeout_ms)
{
	struct pollfd pfd = { .fd = uxpmem_revoke_fd(), .events = POLLIN };
	struct uxpmem_revoke_event ev[8];
	int n, handled = 0;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	while ((n = uxpmem_revoke_poll(ev, 8)) > 0)
		for (int i = 0; i < n; i++)
			for (int k = 0; k < npeers; k++)
				if (peers[k].apid == ev[i].apid) {
					cache_drop_peer(&peers[k], &ev[i]);
					handled++;
				}
	return handled;
}

static void read_line(FILE *f, char *buf, int len)
{
	if (!fgets(buf, len, f)) {
		errno = EPIPE;
		die("rank 0", "reading from rank 1");
	}
}

int main(int argc, char **argv)
{
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (argc > 1 && !strcmp(argv[1], "exporter"))
		return exporter();

	/* Create the queue before anything can be revoked. */
	if (uxpmem_revoke_fd() < 0)
		die("rank 0", "uxpmem_revoke_fd");

	/* Start rank 1: this program again, over two pipes. */
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		die("rank 0", "pipe");
	pid_t pid = fork();
	if (pid < 0)
		die("rank 0", "fork");
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[0]); close(to[1]); close(from[0]); close(from[1]);
		execl("/proc/self/exe", argv[0], "exporter", (char *)NULL);
		die("rank 1", "exec");
	}
	close(to[0]);
	close(from[1]);
	FILE *in = fdopen(from[0], "r"), *out = fdopen(to[1], "w");
	char line[128];
	long long segid;
	void *base;
	read_line(in, line, sizeof(line));
	if (sscanf(line, "%lld %p", &segid, &base) != 2)
		die("rank 0", "parsing rank 1's segid");

	struct peer peers[1] = { { .rank = 1, .segid = segid, .seg_base = (uintptr_t)base } };
	peers[0].apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (peers[0].apid == -1)
		die("rank 0", "xpmem_get");

	/* "Receive" a few messages through the cache: 3 distinct ranges, each
	 * twice; check the data. */
	const size_t offs[] = { 0, 64 << 10, 1 << 20 }, len = 48 << 10;
	unsigned long bad = 0;
	for (int round = 0; round < 2; round++)
		for (size_t m = 0; m < 3; m++) {
			uint64_t *src = cache_lookup(&peers[0], (uintptr_t)base + offs[m], len);
			if (!src)
				die("rank 0", "cache_lookup");
			for (size_t i = 0; i < len / 8; i++)
				bad += src[i] != word(offs[m] / 8 + i);
		}
	unsigned long hits = 0;
	for (int i = 0; i < peers[0].n; i++)
		hits += peers[0].cache[i].hits;
	printf("rank 0: 6 messages, %d cached entries, %lu misses, %lu hits, %lu bad words\n",
	       peers[0].n, peers[0].misses, hits, bad);
	progress(peers, 1, 0); /* nothing revoked yet */

	/* Rank 1 removes its segment (as at MPI_Finalize, or a peer failure). */
	fprintf(out, "remove\n");
	fflush(out);
	read_line(in, line, sizeof(line));

	/* A progress loop with a deadline: the event is already queued. */
	int dropped = 0;
	for (int tries = 0; tries < 50 && !dropped; tries++)
		dropped = progress(peers, 1, 100);
	printf("rank 0: after the removal: %d cached entries of peer 1, apid %s\n", peers[0].n,
	       peers[0].apid == -1 ? "released" : "still held");

	/* A new message from that peer: a clean error, no SIGBUS. */
	void *p = cache_lookup(&peers[0], (uintptr_t)base, len);
	int e = errno;
	printf("rank 0: lookup after revocation: %s (%s)\n", p ? "found?!" : "failed cleanly",
	       p ? "stale entry" : strerror(e));
	xpmem_apid_t again = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	printf("rank 0: xpmem_get of the removed segid again: %s\n",
	       again == -1 ? strerror(errno) : "succeeded?!");

	fclose(out); /* rank 1 exits */
	fclose(in);
	int st = 0;
	waitpid(pid, &st, 0);
	int ok = bad == 0 && hits == 3 && dropped == 1 && peers[0].n == 0 && peers[0].apid == -1 &&
		 !p && e == ENOENT && again == -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	printf("revoke_cache: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
