/*
 * mpi_pair.c - how an MPI library uses XPMEM for large messages.
 *
 * Two "ranks" (this program and a copy of it that it starts) behave like
 * the XPMEM paths of MPICH, Open MPI and UCX:
 *
 *   init      each rank exports its WHOLE address space once:
 *                 xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, 0600)
 *             and the ranks swap segids over their wire-up channel (here a
 *             pair of pipes; MPI uses its PMI/business-card exchange);
 *             each rank xpmem_get()s its peer's segid once.
 *   send      the sender posts only (address, length) of its buffer;
 *   receive   the receiver maps the pages of that range from the peer --
 *             through a small CACHE of attachments keyed by page range, so
 *             a buffer used again costs no attach at all -- and copies the
 *             data straight into its own buffer: one copy, no kernel on the
 *             data path.  Then it acknowledges, so the sender may reuse
 *             (and overwrite) the buffer.
 *   finalize  detach everything, release the apid, remove the segid.
 *
 * The cache never invalidates an entry when the peer writes new data or
 * even frees and reallocates a buffer: an XPMEM attachment follows the
 * exporter's addresses, like MPI libraries assume.  Every message is
 * checked word by word.
 *
 * Run:  xpmem-run ./mpi_pair [ITERATIONS [MIB]]     (default 200 iterations,
 *       messages up to 4 MiB).  Exit status 0 when every message arrived intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xpmem.h>

#define NBUF 4        /* send buffers each rank cycles through */
#define CACHE_SIZE 8  /* attachments kept per peer (MPICH: unbounded tree; libfabric: 1024) */

static int rank;      /* 0 or 1 */
static size_t page;

static void die(const char *what)
{
	fprintf(stderr, "mpi_pair rank %d: %s failed: %s\n", rank, what, strerror(errno));
	exit(1);
}

static void write_all(int fd, const void *buf, size_t len)
{
	for (const char *p = buf; len;) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write to peer");
		p += n;
		len -= (size_t)n;
	}
}

static void read_all(int fd, void *buf, size_t len)
{
	for (char *p = buf; len;) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EPIPE;
		if (n <= 0)
			die("read from peer");
		p += n;
		len -= (size_t)n;
	}
}

/* ------------------------------------------------------------------------ */
/* The attachment cache: [base, base+len) of the peer -> our mapping.      */
/* ------------------------------------------------------------------------ */

struct cache_entry {
	uintptr_t base;  /* peer address, page aligned (0: unused entry) */
	size_t len;      /* whole pages */
	char *local;     /* where xpmem_attach put it in our address space */
	uint64_t used;   /* for LRU eviction */
};

struct cache {
	xpmem_apid_t apid; /* our access to the peer's segment */
	struct cache_entry e[CACHE_SIZE];
	uint64_t clock, hits, misses, evictions;
};

/* Our address of the peer's bytes [addr, addr+len). */
static void *cache_map(struct cache *c, uintptr_t addr, size_t len)
{
	uintptr_t base = addr & ~(uintptr_t)(page - 1);              /* page down */
	uintptr_t end = (addr + len + page - 1) & ~(uintptr_t)(page - 1); /* page up */
	struct cache_entry *victim = &c->e[0];

	c->clock++;
	for (int i = 0; i < CACHE_SIZE; i++) {
		struct cache_entry *e = &c->e[i];
		if (e->len && e->base <= base && end <= e->base + e->len) {
			e->used = c->clock; /* hit: no system call, no message */
			c->hits++;
			return e->local + (addr - e->base);
		}
		if (e->used < victim->used)
			victim = e; /* unused entries have used == 0: taken first */
	}
	/* An entry overlapping the new range is merged with it into one bigger
	 * attachment that replaces it (UCX does the same with neighbours). */
	for (int i = 0; i < CACHE_SIZE; i++) {
		struct cache_entry *e = &c->e[i];
		if (e->len && e->base < end && base < e->base + e->len) {
			if (e->base < base)
				base = e->base;
			if (e->base + e->len > end)
				end = e->base + e->len;
			victim = e;
			break;
		}
	}

	/* Miss: attach the page range.  The segment covers the whole address
	 * space from 0, so the offset into it IS the peer's address. */
	c->misses++;
	if (victim->len) {
		c->evictions++;
		if (xpmem_detach(victim->local) != 0)
			die("xpmem_detach");
	}
	struct xpmem_addr xa = { .apid = c->apid, .offset = (off_t)base };
	void *p = xpmem_attach(xa, end - base, NULL);
	if (p == (void *)-1)
		die("xpmem_attach");
	*victim = (struct cache_entry){ base, end - base, p, c->clock };
	return victim->local + (addr - base);
}

static void cache_flush(struct cache *c)
{
	for (int i = 0; i < CACHE_SIZE; i++)
		if (c->e[i].len && xpmem_detach(c->e[i].local) != 0)
			die("xpmem_detach");
	memset(c->e, 0, sizeof(c->e));
}

/* ------------------------------------------------------------------------ */
/* Messages.                                                                */
/* ------------------------------------------------------------------------ */

/* What goes over the pipe: only a descriptor of the data. */
struct rts {
	uint64_t addr, len, seq;
};

static uint64_t word(uint64_t seq, uint64_t i)
{
	return (seq << 40) ^ (i * 0x9e3779b97f4a7c15ull);
}

/* Sender: fill the buffer, post it, wait until the peer copied it. */
static void send_msg(int wfd, int rfd, uint64_t *buf, size_t len, uint64_t seq)
{
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = word(seq, i);
	struct rts r = { (uintptr_t)buf, len, seq };
	write_all(wfd, &r, sizeof(r));
	char ack;
	read_all(rfd, &ack, 1);
}

/* Receiver: map the peer's buffer through the cache, copy, check, ack. */
static uint64_t recv_msg(int wfd, int rfd, struct cache *c, uint64_t *dst, uint64_t seq,
			 double *copy_time)
{
	struct rts r;
	read_all(rfd, &r, sizeof(r));
	if (r.seq != seq) {
		fprintf(stderr, "mpi_pair rank %d: message %" PRIu64 " expected, got %" PRIu64 "\n",
			rank, seq, r.seq);
		exit(1);
	}
	const void *src = cache_map(c, (uintptr_t)r.addr, r.len);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memcpy(dst, src, r.len); /* THE copy: peer memory -> our buffer */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*copy_time += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
	char ack = 1;
	write_all(wfd, &ack, 1);

	uint64_t bad = 0;
	for (size_t i = 0; i < r.len / 8; i++)
		bad += dst[i] != word(seq, i);
	return bad;
}

/* ------------------------------------------------------------------------ */

static int run(int rfd, int wfd, unsigned iters, size_t max_len)
{
	/* init: export everything, swap segids, get the peer's. */
	xpmem_segid_t mine = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (mine == -1)
		die("xpmem_make (under the shm transport, run me with xpmem-run)");
	xpmem_segid_t theirs;
	write_all(wfd, &mine, sizeof(mine));
	read_all(rfd, &theirs, sizeof(theirs));
	struct cache c = { 0 };
	c.apid = xpmem_get(theirs, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (c.apid == -1)
		die("xpmem_get");

	/* Ordinary malloc buffers, deliberately NOT page aligned: the cache
	 * rounds to pages as the MPI libraries do. */
	uint64_t *sendbuf[NBUF], *recvbuf = malloc(max_len);
	for (int b = 0; b < NBUF; b++)
		if (!(sendbuf[b] = malloc(max_len)))
			die("malloc");
	if (!recvbuf)
		die("malloc");

	uint64_t bad = 0, bytes = 0;
	double copy_time = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned it = 0; it < iters; it++) {
		/* sizes from 64 KiB (MPICH's threshold) up to max_len */
		size_t len = (size_t)64 << 10 << (it % 7);
		if (len > max_len)
			len = max_len;
		uint64_t *sb = sendbuf[it % NBUF];
		/* Now and then free and reallocate a buffer: the peer's cached
		 * attachment follows the memory at that address, no invalidation. */
		if (it % 50 == 49) {
			free(sendbuf[it % NBUF]);
			sb = sendbuf[it % NBUF] = malloc(max_len);
			if (!sb)
				die("malloc");
		}
		uint64_t seq = 2 * (uint64_t)it;
		if (rank == 0) { /* ping: 0 -> 1, then pong: 1 -> 0 */
			send_msg(wfd, rfd, sb, len, seq);
			bad += recv_msg(wfd, rfd, &c, recvbuf, seq + 1, &copy_time);
		} else {
			bad += recv_msg(wfd, rfd, &c, recvbuf, seq, &copy_time);
			send_msg(wfd, rfd, sb, len, seq + 1);
		}
		bytes += len;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;

	printf("rank %d: received %u messages, %.1f MiB, %" PRIu64 " bad words; "
	       "copy %.2f GB/s, ping-pong %.2f GB/s; cache %" PRIu64 " hits, %" PRIu64
	       " misses, %" PRIu64 " evictions\n",
	       rank, iters, bytes / 1048576.0, bad, copy_time > 0 ? bytes / copy_time / 1e9 : 0.0,
	       2 * bytes / secs / 1e9, c.hits, c.misses, c.evictions);

	/* finalize, in MPICH's order: detach, release, (barrier), remove. */
	cache_flush(&c);
	if (xpmem_release(c.apid) != 0)
		die("xpmem_release");
	char fin = 0;
	write_all(wfd, &fin, 1);
	read_all(rfd, &fin, 1);
	if (xpmem_remove(mine) != 0)
		die("xpmem_remove");
	for (int b = 0; b < NBUF; b++)
		free(sendbuf[b]);
	free(recvbuf);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	page = (size_t)sysconf(_SC_PAGESIZE);

	/* rank 1, started by rank 0: mpi_pair rank1 RFD WFD ITERS MIB */
	if (argc == 6 && strcmp(argv[1], "rank1") == 0) {
		rank = 1;
		return run(atoi(argv[2]), atoi(argv[3]), (unsigned)strtoul(argv[4], NULL, 0),
			   (size_t)strtoul(argv[5], NULL, 0) << 20);
	}

	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 200;
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 4;
	if (argc > 3 || iters == 0 || mib == 0 || mib > 4096) {
		fprintf(stderr, "usage: %s [ITERATIONS [MIB]]\n", argv[0]);
		return 2;
	}

	/* Two pipes make the wire-up and control channel; inherited across exec. */
	int to1[2], to0[2];
	if (pipe(to1) != 0 || pipe(to0) != 0)
		die("pipe");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char r[16], w[16], n[24], m[24];
		close(to1[1]);
		close(to0[0]);
		snprintf(r, sizeof(r), "%d", to1[0]);
		snprintf(w, sizeof(w), "%d", to0[1]);
		snprintf(n, sizeof(n), "%lu", iters);
		snprintf(m, sizeof(m), "%lu", mib);
		execl("/proc/self/exe", argv[0], "rank1", r, w, n, m, (char *)NULL);
		die("exec");
	}
	close(to1[0]);
	close(to0[1]);
	int ret = run(to0[0], to1[1], (unsigned)iters, (size_t)mib << 20);

	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		ret = 1;
	printf("mpi_pair: %s\n", ret ? "FAILED" : "OK");
	return ret;
}
