/*
 * xpmem-bench - the figures of uxpmem, side by side, in one run.
 *
 * Conventions of osu_* / ucx_perftest: the program spawns its peer (itself,
 * re-executed with a hidden role argument).  The peer is the EXPORTER: it
 * runs with the arena preload, allocates a buffer on its heap, exports its
 * whole address space like UCX does, and announces segid and buffer over a
 * pipe.  This process is the IMPORTER and measures, reading the exporter's
 * buffer: copy through a cached attachment next to local memcpy and
 * process_vm_readv (CMA), attach+detach latency, cold get+attach latency,
 * and the revocation latency of xpmem_remove.
 *
 * Tests of memory outside an arena (conversion on attach, munmap of
 * converted memory, range invalidation) need a second peer, the PLAIN
 * exporter: the same program without the preload (plain glibc malloc), also
 * exporting its whole address space.  It is spawned only when such a test
 * runs.  Both peers obey commands over their pipe (struct cmd -> struct
 * answer): allocate, map, unmap or make/remove a segment, timing their own
 * side with CLOCK_MONOTONIC, which is comparable across processes.
 *
 * The remote tests (rfault, rseq, reager, rflush, rrevoke) measure the
 * rdma plugin between two more processes per libfabric provider: see
 * "remote" below.
 *
 * Adding a figure is adding one entry to tests[]: a measure function per
 * column (or one function filling several columns, see column.from),
 * optional derived metrics (ratio or difference of two columns) and
 * targets.  Entries without columns print "n/a (why)".
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "arena.h" /* ABI of the preload's query function, no link dependency */
#include "bench.h" /* the rdma plugin's raw figures, found with dlsym */

#ifndef UXP_PKGLIBDIR
#define UXP_PKGLIBDIR "/usr/local/lib/uxpmem"
#endif

#define ROLE_ARG "--xpmem-bench-exporter-role"
#define ARENA_SYMBOL "uxpmem_arena_query_v1"
#define ARENA_LIB_NAME "libuxpmem-arena.so"
#define PAGE 4096UL
#define MiB (1024UL * 1024)
#define GiB (1024UL * MiB)
#define MAXCOLS 6
#define MAXRATIOS 4
#define MAXTARGETS 3
#define MAXSIZES 32
#define MAXTESTS 24
#define NPROV 2              /* remote tests: libfabric providers (rprov[]) */

/* ---- exporter <-> importer protocol (one pipe each way) ------------------- */

struct hello {
	int err;                 /* errno of the failed step, 0 if exported */
	char what[160];          /* the failed step and why */
	int arena;               /* the arena preload is active in the exporter */
	int in_arena;            /* the buffer lies in the arena */
	uint64_t arena_base, arena_size;
	char transport[32];      /* transport the exporter uses */
	int64_t segid;
	uint64_t seg_base;       /* address of segment offset 0 */
	uint64_t buf, size;      /* the buffer the importer reads */
	int level;               /* uxpmem_export_level() in the exporter, -1: none */
	char level_why[200];
};

/* Commands to an exporter; one answer each (pipes: atomic, in order). */
enum {
	CMD_QUIT = 1,
	CMD_FRESH,               /* a: size: malloc a fresh buffer, fill it, start the writer */
	CMD_FRESH_FILE,          /* the same with a private writable mapping of a file (as .data) */
	CMD_FREE_FRESH,          /* a, b: attach window (ns): stop the writer (answer: its
				  * longest stall within), free the buffer */
	CMD_MAP,                 /* a: size: mmap anonymous private memory, fill it */
	CMD_UNMAP,               /* a: addr, b: size: munmap, timed (t0, t1) */
	CMD_MAKE,                /* a: size: xpmem_make of the buffer's first a bytes */
	CMD_REMOVE,              /* a: segid: xpmem_remove, timed (t0, t1) */
	CMD_MAP_SHM,             /* a: size, b: SHM_SYSV/SHM_POSIX: shared memory as UCX
				  * allocates it (SysV removed at once; POSIX unlinked and
				  * closed), filled */
};

enum { SHM_SYSV, SHM_POSIX, SHM_KINDS };

struct cmd {
	int op;
	uint64_t a, b;
};

struct answer {
	int err;                 /* errno of the failed step, 0 if done */
	uint64_t addr;
	int64_t segid;
	double t0, t1;           /* CLOCK_MONOTONIC us around the timed call */
	double stall;            /* writer: longest time without a store in the window, us */
	uint64_t writes;         /* writer: stores done */
	uint64_t lost;           /* writer: pages whose count of stores is wrong */
};

#define FILL 0x5a            /* what exporters fill their memory with */
#define CALL_TIMEOUT_MS 30000
#define EVENT_TIMEOUT_MS 10000

/* ---- importer state ----------------------------------------------------------- */

struct rpair {               /* remote tests: the importer process of one provider */
	pid_t pid;               /* 0: none */
	int cmd_fd, reply_fd;
	char err[400];           /* why its columns cannot be measured, "" if they can */
	char prov[64];           /* the provider its endpoint uses */
	char status[96];
};

struct bench {
	pid_t peer;
	int cmd_fd, reply_fd;
	struct hello h;
	xpmem_apid_t apid;       /* cached apid and attachment of the buffer */
	char *att;
	bool have_apid;
	char *src, *dst;         /* local buffers */
	size_t maxsize;
	char seg_err[200];       /* why there is no segment/apid, "" if there is */
	char arena_err[200];     /* why the buffer is not shared memory, "" if it is */
	const char *preload, *preload_src;
	char peer_status[96];    /* exporter exit, for the report */
	/* the plain exporter (no preload), spawned when a test needs it */
	pid_t pl_pid;            /* 0: not spawned */
	int pl_cmd_fd, pl_reply_fd;
	struct hello pl;
	xpmem_apid_t pl_apid;    /* cached apid of its whole address space */
	bool pl_have_apid;
	char plain_err[200];     /* why there is no plain exporter/apid, "" if there is */
	char conv_err[300];      /* why its memory cannot be converted, "" if it can */
	char pl_status[96];
	int qfd;                 /* uxpmem_revoke_fd(), -1 until a test creates it */
	uint64_t shm_buf[SHM_KINDS]; /* shm: the plain exporter's shared buffers (0: none) */
	size_t shm_len[SHM_KINDS];
	uint64_t lf_buf;         /* lfcache: the plain exporter's buffer (0: none)... */
	size_t lf_len, lf_size;  /* ...its length and the transfer size it is for */
	double *more[MAXCOLS];   /* samples of the columns a function fills besides its own */
	struct rpair rp[NPROV];  /* remote tests, started when one runs */
	char rdir[4096];         /* their resolver directory */
	bool rdir_made;
	size_t rmaxsize;         /* the remote exporter's buffer */
};

typedef int measure_fn(struct bench *b, size_t size, unsigned iters, double *out);

enum need {
	NEED_PEER,               /* only the exporter process */
	NEED_SEGMENT,            /* a segid and an apid */
	NEED_ARENA,              /* the buffer in the exporter's arena, attached */
	NEED_PLAIN,              /* the plain exporter and an apid of it */
	NEED_CONVERT,            /* ... whose private memory can be converted on attach */
	NEED_RTCP,               /* the remote pair over tcp;ofi_rxm (rprov[0]) */
	NEED_RSHM,               /* the remote pair over shm (rprov[1]) */
};

struct column {
	const char *name;
	measure_fn *fn;
	enum need need;
	int from;                /* > 0: filled by column from-1's function, through
				  * b->more[] in column order (fn NULL) */
};

enum derive { D_RATIO, D_DIFF, D_DIFF_P99 };

struct ratio {
	const char *name;
	int num, den;            /* column indexes */
	enum derive kind;        /* ratio of medians (x), or difference of medians
				  * or of 99th percentiles (in the test's unit) */
};

struct target {
	const char *metric;      /* column or ratio name */
	size_t size;             /* 0: every size */
	bool below;              /* median must be below value (else at least) */
	double value;
};

struct test {
	const char *name;
	const char *title;
	const char *unit;
	bool per_op;             /* one sample per operation, else per repetition */
	uint64_t budget;         /* default iterations: budget/size clamped... */
	unsigned lo, hi;         /* ...to [lo, hi]; budget 0: hi */
	struct column cols[MAXCOLS];
	struct ratio ratios[MAXRATIOS];
	struct target targets[MAXTARGETS];
	bool tail;               /* show the 99th percentile in the text table too */
	const char *sizes;       /* default sizes of this test (else -s's default) */
	const char *na;          /* no columns: why, printed as "n/a (na)" */
};

struct cell {
	int err;
	char msg[320];
	unsigned n;
	double med, p10, p90, p99, min, max;
};

struct row {
	size_t size;
	unsigned iters;
	struct cell c[MAXCOLS];
	double ratio[MAXRATIOS]; /* NAN: not available */
};

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

struct opts {
	const struct test *tests[MAXTESTS];
	unsigned ntests;
	size_t sizes[MAXSIZES];
	unsigned nsizes;
	bool sizes_set;          /* -s given: it applies to every test */
	unsigned iters;          /* 0: per test default */
	unsigned reps;
	enum fmt fmt;
	bool quiet;
	const char *transport;
};

/* ---- timing and guarded access ---------------------------------------------- */

static inline double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Keeps the compiler from dropping copies nobody reads. */
static inline void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Touching a hole (or a revoked attachment) raises SIGBUS: report it as a
 * failed measurement instead of dying, so the other columns still print. */
static sigjmp_buf guard_jb;
static volatile sig_atomic_t guard_armed, guard_sig;

static void guard_handler(int sig)
{
	if (!guard_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	guard_sig = sig;
	siglongjmp(guard_jb, 1);
}

static void guard_install(void)
{
	struct sigaction sa = { .sa_handler = guard_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* ---- measurements -------------------------------------------------------------- */

static double copy_loop(char *dst, const char *src, size_t size, unsigned n)
{
	double t0 = now_us();
	for (unsigned i = 0; i < n; i++) {
		memcpy(dst, src, size);
		clobber(dst);
	}
	return now_us() - t0;
}

static double gbs(size_t size, unsigned n, double us)
{
	return us > 0 ? (double)size * n / (us * 1e3) : 0;
}

static int bw_memcpy(struct bench *b, size_t size, unsigned n, double *out)
{
	out[0] = gbs(size, n, copy_loop(b->dst, b->src, size, n));
	return 1;
}

static int bw_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	out[0] = gbs(size, n, copy_loop(b->dst, b->att, size, n));
	return 1;
}

static int cma_read(struct bench *b, size_t size)
{
	size_t done = 0;
	while (done < size) {
		struct iovec l = { b->dst + done, size - done };
		struct iovec r = { (void *)(uintptr_t)(b->h.buf + done), size - done };
		ssize_t got = process_vm_readv(b->peer, &l, 1, &r, 1, 0);
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		done += (size_t)got;
	}
	return 0;
}

static int bw_cma(struct bench *b, size_t size, unsigned n, double *out)
{
	double t0 = now_us();
	for (unsigned i = 0; i < n; i++) {
		int ret = cma_read(b, size);
		if (ret < 0)
			return ret;
	}
	out[0] = gbs(size, n, now_us() - t0);
	return 1;
}

static struct xpmem_addr buf_addr(const struct bench *b, xpmem_apid_t apid)
{
	return (struct xpmem_addr){ .apid = apid, .offset = (off_t)(b->h.buf - b->h.seg_base) };
}

/* A cached arena range: what an MPI library does per message. */
static int lat_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_us();
		void *p = xpmem_attach(buf_addr(b, b->apid), size, NULL);
		if (p == (void *)-1)
			return -errno;
		if (xpmem_detach(p) < 0)
			return -errno;
		out[i] = now_us() - t0;
	}
	return (int)n;
}

/* First contact with a segment: a fresh apid every time (the connection to
 * the exporter exists after the warm-up repetition). */
static int lat_cold(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_us();
		xpmem_apid_t apid = xpmem_get(b->h.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
		if (apid < 0)
			return -errno;
		void *p = xpmem_attach(buf_addr(b, apid), size, NULL);
		if (p == (void *)-1) {
			int e = errno;
			xpmem_release(apid);
			return -e;
		}
		out[i] = now_us() - t0;
		xpmem_detach(p);
		xpmem_release(apid);
	}
	return (int)n;
}

/* ---- commands to the exporters ---------------------------------------------------- */

/* One command, one answer; < 0: -errno (ETIMEDOUT if the peer hangs, EPIPE
 * if it is gone). */
static int send_cmd(int cmd_fd, int op, uint64_t a, uint64_t b2)
{
	struct cmd c = { .op = op, .a = a, .b = b2 };
	return write(cmd_fd, &c, sizeof(c)) == sizeof(c) ? 0 : -EPIPE;
}

static int recv_answer(int reply_fd, struct answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	struct pollfd p = { .fd = reply_fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, CALL_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	if (read(reply_fd, ans, sizeof(*ans)) != sizeof(*ans))
		return -EPIPE;
	return ans->err ? -ans->err : 0;
}

static int call_fd(int cmd_fd, int reply_fd, int op, uint64_t a, uint64_t b2, struct answer *ans)
{
	int ret = send_cmd(cmd_fd, op, a, b2);
	if (ret < 0) {
		memset(ans, 0, sizeof(*ans));
		return ret;
	}
	return recv_answer(reply_fd, ans);
}

static int ex_call(struct bench *b, int op, uint64_t a, uint64_t b2, struct answer *ans)
{
	return call_fd(b->cmd_fd, b->reply_fd, op, a, b2, ans);
}

static int pl_call(struct bench *b, int op, uint64_t a, uint64_t b2, struct answer *ans)
{
	return call_fd(b->pl_cmd_fd, b->pl_reply_fd, op, a, b2, ans);
}

/* Attach [addr, addr+size) of the plain exporter through the cached apid. */
static void *pl_attach(struct bench *b, uint64_t addr, size_t size)
{
	struct xpmem_addr xa = { .apid = b->pl_apid, .offset = (off_t)(addr - b->pl.seg_base) };
	return xpmem_attach(xa, size, NULL);
}

/* The attachment shows the exporter's data (byte 1 of each page is never
 * written by the writer thread); a hole raises SIGBUS, caught by guarded(). */
static int check_fill(const void *p)
{
	return ((const volatile unsigned char *)p)[1] == FILL ? 0 : -EIO;
}

/* Revocation events: the callback form records the first event it sees. */
static struct watch {
	sem_t sem;
	volatile double t;
	volatile int reason;
} watch;

static void on_revoke(const struct uxpmem_revoke_event *ev, void *arg)
{
	(void)arg;
	watch.t = now_us();
	watch.reason = ev->reason;
	sem_post(&watch.sem);
}

/* Forget events of earlier operations (queue and callback). */
static void drain(struct bench *b)
{
	struct uxpmem_revoke_event ev[16];
	while (b->qfd >= 0 && uxpmem_revoke_poll(ev, 16) > 0)
		;
	while (sem_trywait(&watch.sem) == 0)
		;
}

/* Wait for the callback; 0 with *t its time, or -errno. */
static int wait_cb(int reason, double *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += EVENT_TIMEOUT_MS / 1000;
	while (sem_timedwait(&watch.sem, &ts) < 0)
		if (errno != EINTR)
			return -errno;
	*t = watch.t;
	return watch.reason == reason ? 0 : -EPROTO;
}

/* Wait for apid's event on the queue, as a progress engine does: sleep in
 * poll(2) on the descriptor, then dequeue.  *t: when it was dequeued. */
static int wait_fd(struct bench *b, xpmem_apid_t apid, int reason, double *t)
{
	double deadline = now_us() + EVENT_TIMEOUT_MS * 1e3;
	struct uxpmem_revoke_event ev[16];
	for (;;) {
		int n = uxpmem_revoke_poll(ev, 16);
		double at = now_us();
		for (int i = 0; i < n; i++)
			if (ev[i].apid == apid) {
				*t = at;
				return ev[i].reason == reason ? 0 : -EPROTO;
			}
		if (at >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = b->qfd, .events = POLLIN };
		if (poll(&p, 1, (int)((deadline - at) / 1e3) + 1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int need_queue(struct bench *b)
{
	if (b->qfd < 0 && (b->qfd = uxpmem_revoke_fd()) < 0)
		return -errno;
	return 0;
}

/* convert: the plain exporter mallocs a fresh buffer (op CMD_FRESH), or
 * maps a file privately like .data (CMD_FRESH_FILE: converted with every
 * thread stopped), and a writer thread stores into it without pause; we
 * attach it (the exporter converts it in place).  Columns: attach (ms),
 * attach per MiB, the writer's longest stall (ms, measured in the
 * exporter). */
static int conv_attach_op(struct bench *b, int op, size_t size, unsigned n, double *out)
{
	double *per_mib = b->more[0], *stall = b->more[1];
	for (unsigned i = 0; i < n; i++) {
		struct answer a, s;
		int ret = pl_call(b, op, size, 0, &a);
		if (ret == -EEXIST)
			fprintf(stderr, "xpmem-bench: convert: the plain exporter's malloc returned "
				"memory that is converted already\n");
		if (ret < 0)
			return ret;
		double t0 = now_us();
		void *p = pl_attach(b, a.addr, size);
		double t1 = now_us();
		int err = p == (void *)-1 ? -errno : 0;
		if (!err) {
			err = check_fill(p);
			xpmem_detach(p);
		}
		ret = pl_call(b, CMD_FREE_FRESH, (uint64_t)(t0 * 1e3), (uint64_t)(t1 * 1e3), &s);
		if (err || ret < 0)
			return err ? err : ret;
		if (s.lost) {
			fprintf(stderr, "xpmem-bench: convert: %" PRIu64 " of the writer's pages lost "
				"updates during the conversion (%" PRIu64 " stores)\n", s.lost, s.writes);
			return -EIO;
		}
		out[i] = (t1 - t0) / 1e3;
		per_mib[i] = out[i] * (double)MiB / (double)size;
		stall[i] = s.stall / 1e3;
	}
	return (int)n;
}

static int conv_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	return conv_attach_op(b, CMD_FRESH, size, n, out);
}

static int conv_attach_file(struct bench *b, size_t size, unsigned n, double *out)
{
	return conv_attach_op(b, CMD_FRESH_FILE, size, n, out);
}

/* munmap in the plain exporter of memory nobody attached. */
static int mu_plain(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++) {
		struct answer a, u;
		int ret = pl_call(b, CMD_MAP, size, 0, &a);
		if (ret < 0 || (ret = pl_call(b, CMD_UNMAP, a.addr, size, &u)) < 0)
			return ret;
		out[i] = u.t1 - u.t0;
	}
	return (int)n;
}

/* Map fresh memory in the plain exporter and attach it (converted).  When
 * *p is set (not -1), the caller unmaps *addr in the exporter. */
static int map_attached(struct bench *b, size_t size, uint64_t *addr, void **p)
{
	struct answer a;
	int ret = pl_call(b, CMD_MAP, size, 0, &a);
	if (ret < 0)
		return ret;
	*addr = a.addr;
	*p = pl_attach(b, a.addr, size);
	if (*p == (void *)-1) {
		ret = -errno;
		pl_call(b, CMD_UNMAP, a.addr, size, &a);
		return ret;
	}
	return check_fill(*p);
}

/* many: k importer processes (forked from this one, each with its own get)
 * attach the same fresh buffer of the plain exporter at once and read one
 * byte of every page.  Per k: the slowest importer's first byte and the
 * last one done, from the moment all are released (CLOCK_MONOTONIC is
 * shared by the processes). */
static const unsigned many_k[] = { 1, 4, 16 };

static void many_child(struct bench *b, uint64_t addr, size_t size, int go, int out)
{
	double t[2] = { -1, -1 };
	char c;
	xpmem_apid_t apid = xpmem_get(b->pl.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (write(out, "r", 1) != 1 || read(go, &c, 1) != 1) /* ready: got (not measured) */
		_exit(1);
	struct xpmem_addr xa = { .apid = apid, .offset = (off_t)(addr - b->pl.seg_base) };
	const volatile unsigned char *p = apid > 0 ? xpmem_attach(xa, size, NULL) : (void *)-1;
	if (p != (void *)-1 && p[1] == FILL) {
		t[0] = now_us();
		size_t i = PAGE;
		while (i < size && p[i + 1] == FILL)
			i += PAGE;
		if (i >= size)
			t[1] = now_us();
	}
	if (write(out, t, sizeof(t)) != (ssize_t)sizeof(t))
		_exit(1);
	_exit(0); /* the attachment and apid go with the process */
}

/* One round of k importers: *first and *total in ms. */
static int many_round(struct bench *b, size_t size, unsigned k, double *first, double *total)
{
	struct answer a;
	int ret = pl_call(b, CMD_MAP, size, 0, &a), go[2], res[2];
	pid_t pids[16];
	unsigned started = 0;
	if (ret < 0)
		return ret;
	if (pipe(go) < 0 || pipe(res) < 0)
		return -errno;
	for (; started < k; started++) {
		pid_t pid = fork();
		if (pid == 0) {
			close(go[1]);
			close(res[0]);
			many_child(b, a.addr, size, go[0], res[1]);
		}
		if (pid < 0)
			break;
		pids[started] = pid;
	}
	close(go[0]);
	close(res[1]);
	ret = started == k ? 0 : -EAGAIN;
	for (unsigned i = 0; i < started; i++) {
		char r;
		if (read(res[0], &r, 1) != 1)
			ret = -EIO;
	}
	double t0 = now_us(), f = 0, l = 0;
	for (unsigned i = 0; i < started; i++)
		if (write(go[1], "g", 1) != 1)
			ret = -EPIPE;
	for (unsigned i = 0; i < started; i++) {
		double t[2];
		if (read(res[0], t, sizeof(t)) != (ssize_t)sizeof(t) || t[0] < 0 || t[1] < 0)
			ret = ret ? ret : -EIO;
		else {
			f = t[0] - t0 > f ? t[0] - t0 : f;
			l = t[1] - t0 > l ? t[1] - t0 : l;
		}
	}
	close(go[1]);
	close(res[0]);
	for (unsigned i = 0; i < started; i++)
		waitpid(pids[i], NULL, 0);
	pl_call(b, CMD_UNMAP, a.addr, size, &a);
	*first = f / 1e3;
	*total = l / 1e3;
	return ret;
}

static int many_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = 0; k < sizeof(many_k) / sizeof(many_k[0]); k++) {
			double *first = k ? b->more[2 * k - 1] : out, *total = b->more[2 * k];
			int ret = many_round(b, size, many_k[k], &first[i], &total[i]);
			if (ret < 0)
				return ret;
		}
	return (int)n;
}

/* munmap in the plain exporter of converted memory we have attached: the
 * exporter's notifier invalidates it in this process before munmap returns. */
static int mu_exported(struct bench *b, size_t size, unsigned n, double *out)
{
	uxpmem_revoke_handler(b->pl_apid, NULL, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct answer u = { 0 };
		uint64_t addr = 0;
		void *p = (void *)-1;
		drain(b);
		int ret = map_attached(b, size, &addr, &p);
		if (p != (void *)-1) {
			int r = pl_call(b, CMD_UNMAP, addr, size, &u);
			ret = ret < 0 ? ret : r;
			xpmem_detach(p);
		}
		if (ret < 0)
			return ret;
		out[i] = u.t1 - u.t0;
	}
	drain(b);
	return (int)n;
}

/* revoke, xpmem_remove: the arena exporter makes a segment of size bytes of
 * its buffer, we get and attach it, the exporter removes it; latency from
 * just before its xpmem_remove() to our notification. */
static int rv_remove(struct bench *b, size_t size, unsigned n, double *out, bool fd)
{
	if (fd && need_queue(b) < 0)
		return -errno;
	for (unsigned i = 0; i < n; i++) {
		struct answer m, r;
		double t = 0;
		drain(b);
		int ret = ex_call(b, CMD_MAKE, size, 0, &m);
		if (ret < 0)
			return ret;
		xpmem_apid_t apid = xpmem_get(m.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
		void *p = (void *)-1;
		if (apid < 0)
			ret = -errno;
		else if ((p = xpmem_attach((struct xpmem_addr){ .apid = apid }, size, NULL)) ==
			 (void *)-1)
			ret = -errno;
		else if (!fd && uxpmem_revoke_handler(apid, on_revoke, NULL) < 0)
			ret = -errno;
		if (ret == 0)
			ret = check_fill(p);
		/* the event may come before the exporter's answer: wait for it first */
		int rr = send_cmd(b->cmd_fd, CMD_REMOVE, (uint64_t)m.segid, 0);
		if (ret == 0 && rr == 0)
			ret = fd ? wait_fd(b, apid, UXPMEM_REVOKE_REMOVED, &t) :
				wait_cb(UXPMEM_REVOKE_REMOVED, &t);
		if (rr == 0)
			rr = recv_answer(b->reply_fd, &r);
		if (p != (void *)-1)
			xpmem_detach(p);
		if (apid >= 0)
			xpmem_release(apid);
		if (ret < 0 || rr < 0)
			return ret < 0 ? ret : rr;
		out[i] = t - r.t0;
	}
	return (int)n;
}

static int rv_remove_cb(struct bench *b, size_t size, unsigned n, double *out)
{
	return rv_remove(b, size, n, out, false);
}

static int rv_remove_fd(struct bench *b, size_t size, unsigned n, double *out)
{
	return rv_remove(b, size, n, out, true);
}

/* revoke, range invalidation: the plain exporter unmaps converted memory we
 * have attached; latency from just before its munmap() to the INVALIDATED
 * event here. */
static int rv_inval(struct bench *b, size_t size, unsigned n, double *out, bool fd)
{
	if (fd && need_queue(b) < 0)
		return -errno;
	uxpmem_revoke_handler(b->pl_apid, fd ? NULL : on_revoke, NULL);
	int ret = 0;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		struct answer u = { 0 };
		uint64_t addr = 0;
		void *p = (void *)-1;
		double t = 0;
		drain(b);
		ret = map_attached(b, size, &addr, &p);
		if (p != (void *)-1) {
			/* munmap returns after our acknowledgement: wait for the
			 * event before reading the exporter's answer */
			int r = send_cmd(b->pl_cmd_fd, CMD_UNMAP, addr, size);
			if (ret == 0 && r == 0)
				ret = fd ? wait_fd(b, b->pl_apid, UXPMEM_REVOKE_INVALIDATED, &t) :
					wait_cb(UXPMEM_REVOKE_INVALIDATED, &t);
			if (r == 0)
				r = recv_answer(b->pl_reply_fd, &u);
			ret = ret < 0 ? ret : r;
			xpmem_detach(p);
		}
		out[i] = t - u.t0;
	}
	uxpmem_revoke_handler(b->pl_apid, NULL, NULL);
	drain(b);
	return ret < 0 ? ret : (int)n;
}

static int rv_inval_cb(struct bench *b, size_t size, unsigned n, double *out)
{
	return rv_inval(b, size, n, out, false);
}

static int rv_inval_fd(struct bench *b, size_t size, unsigned n, double *out)
{
	return rv_inval(b, size, n, out, true);
}

/* Re-resolve: the plain exporter unmaps an attached buffer (importers are
 * invalidated before its munmap returns) and maps new memory at the same
 * address; the importer's first touch of its earlier attachment waits while
 * the library asks the exporter again, converts the new memory and maps it.
 * Timed: that first touch (a read of the first page). */
static int fault_touch(struct bench *b, size_t size, unsigned n, double *out)
{
	unsigned got = 0;
	for (unsigned tries = 0; got < n && tries < 4 * n; tries++) {
		uint64_t addr = 0;
		void *p = (void *)-1;
		struct answer u, again;
		int ret = map_attached(b, size, &addr, &p);
		if (ret < 0)
			return ret;
		ret = pl_call(b, CMD_UNMAP, addr, size, &u);
		if (ret == 0)
			ret = pl_call(b, CMD_MAP, size, 0, &again);
		if (ret == 0 && again.addr == addr) { /* else the old address is a hole */
			double t0 = now_us();
			ret = check_fill(p);
			out[got++] = now_us() - t0;
		}
		xpmem_detach(p);
		if (ret == 0 || again.addr)
			pl_call(b, CMD_UNMAP, again.addr, size, &u);
		if (ret < 0)
			return ret;
	}
	return got ? (int)got : -EADDRNOTAVAIL;
}

/* lfcache: libfabric's shm provider (src/xpmem.c, ofi_mr_cache).  Each
 * transfer attaches the page-aligned range of the peer's buffer through an
 * attach cache: a hit is an entry containing the range; on a miss the
 * entries overlapping it are detached and the range attached, and since two
 * threads may miss at once and the loser detaches its attachment, a miss
 * here attaches twice and detaches one.  Transfers walk a window of up to
 * LF_WINDOW slots of the buffer at an unaligned offset (fabtests' RMA
 * bandwidth tests), so neighbouring ranges share a page and every new range
 * purges a neighbour.  The buffer is anonymous memory of the plain exporter
 * (not in an arena); the cma columns move the same transfers with
 * process_vm_readv/writev. */
#define LF_WINDOW 64
#define LF_SPAN (64 * MiB)   /* at most this much buffer */
#define LF_OFF 64            /* transfers start here in the buffer */

struct lf_ent {
	uint64_t lo, hi;     /* exporter range */
	char *p;
};

struct lf_cache {
	struct lf_ent e[LF_WINDOW + 2];
	unsigned n;
};

static unsigned lf_slots(size_t size)
{
	size_t n = (LF_SPAN - 2 * PAGE) / size;
	return n < 1 ? 1 : n > LF_WINDOW ? LF_WINDOW : (unsigned)n;
}

/* The plain exporter's buffer for transfers of size bytes. */
static int lf_buffer(struct bench *b, size_t size)
{
	struct answer a;
	if (b->lf_buf && b->lf_size == size)
		return 0;
	if (b->lf_buf)
		pl_call(b, CMD_UNMAP, b->lf_buf, b->lf_len, &a);
	b->lf_buf = 0;
	size_t len = (lf_slots(size) * size + LF_OFF + 2 * PAGE) & ~(PAGE - 1);
	int ret = pl_call(b, CMD_MAP, len, 0, &a);
	if (ret < 0)
		return ret;
	b->lf_buf = a.addr;
	b->lf_len = len;
	b->lf_size = size;
	return 0;
}

static void lf_drop(struct lf_cache *c, unsigned i)
{
	xpmem_detach(c->e[i].p);
	c->e[i] = c->e[--c->n];
}

/* The attachment showing [lo, hi), from the cache or attached now. */
static char *lf_lookup(struct bench *b, struct lf_cache *c, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].lo <= lo && hi <= c->e[i].hi)
			return c->e[i].p + (lo - c->e[i].lo);
	for (unsigned i = 0; i < c->n;)
		if (c->e[i].lo < hi && lo < c->e[i].hi)
			lf_drop(c, i);
		else
			i++;
	if (c->n == sizeof(c->e) / sizeof(c->e[0]))
		lf_drop(c, 0);
	char *p = pl_attach(b, lo, hi - lo);
	char *loser = pl_attach(b, lo, hi - lo);
	if (p == (void *)-1 || loser == (void *)-1) {
		int e = errno;
		if (p != (void *)-1)
			xpmem_detach(p);
		if (loser != (void *)-1)
			xpmem_detach(loser);
		errno = e;
		return NULL;
	}
	xpmem_detach(loser);
	c->e[c->n++] = (struct lf_ent){ lo, hi, p };
	return p;
}

static int lf_run(struct bench *b, size_t size, unsigned n, double *out, bool write, bool cma)
{
	int ret = lf_buffer(b, size);
	if (ret < 0)
		return ret;
	struct lf_cache c = { .n = 0 };
	unsigned slots = lf_slots(size);
	double t0 = now_us();
	for (unsigned k = 0; k < n && ret == 0; k++) {
		uint64_t r = b->lf_buf + LF_OFF + (uint64_t)(k % slots) * size;
		if (cma) {
			struct iovec l = { write ? b->src : b->dst, size };
			struct iovec rv = { (void *)(uintptr_t)r, size };
			ssize_t got = write ? process_vm_writev(b->pl_pid, &l, 1, &rv, 1, 0)
					    : process_vm_readv(b->pl_pid, &l, 1, &rv, 1, 0);
			ret = got == (ssize_t)size ? 0 : got < 0 ? -errno : -EIO;
			continue;
		}
		uint64_t lo = r & ~(PAGE - 1), hi = (r + size + PAGE - 1) & ~(PAGE - 1);
		char *p = lf_lookup(b, &c, lo, hi);
		if (!p) {
			ret = -errno;
			break;
		}
		p += r - lo;
		if (write)
			memcpy(p, b->src, size);
		else
			memcpy(b->dst, p, size);
		clobber(b->dst);
	}
	double t = now_us() - t0;
	while (c.n)
		lf_drop(&c, 0);
	if (ret < 0)
		return ret;
	out[0] = gbs(size, n, t);
	return 1;
}

static int lf_read(struct bench *b, size_t size, unsigned n, double *out)
{
	return lf_run(b, size, n, out, false, false);
}

static int lf_write(struct bench *b, size_t size, unsigned n, double *out)
{
	return lf_run(b, size, n, out, true, false);
}

static int lf_cma_read(struct bench *b, size_t size, unsigned n, double *out)
{
	return lf_run(b, size, n, out, false, true);
}

static int lf_cma_write(struct bench *b, size_t size, unsigned n, double *out)
{
	return lf_run(b, size, n, out, true, true);
}

/* ---- shm: client-shaped, the plain exporter's SysV / POSIX shared memory --------- */

/* The plain exporter's shared buffer of this kind, at least size bytes. */
static int shm_buffer(struct bench *b, int kind, size_t size)
{
	struct answer a;
	if (b->shm_buf[kind] && b->shm_len[kind] >= size)
		return 0;
	if (b->shm_buf[kind])
		pl_call(b, CMD_UNMAP, b->shm_buf[kind], b->shm_len[kind], &a);
	b->shm_buf[kind] = 0;
	int ret = pl_call(b, CMD_MAP_SHM, size, (uint64_t)kind, &a);
	if (ret < 0)
		return ret;
	b->shm_buf[kind] = a.addr;
	b->shm_len[kind] = size;
	return 0;
}

/* Copy out through one attachment (cached, as UCX's rcache keeps it); the
 * first pass faults the attachment in and checks the exporter's data. */
static int shm_copy(struct bench *b, int kind, size_t size, unsigned n, double *out)
{
	int ret = shm_buffer(b, kind, size);
	if (ret < 0)
		return ret;
	char *p = pl_attach(b, b->shm_buf[kind], size);
	if (p == (void *)-1)
		return -errno;
	memcpy(b->dst, p, size);
	ret = check_fill(p) ? -EIO : 0;
	for (size_t off = PAGE; off < size && ret == 0; off += PAGE)
		ret = check_fill(p + off) ? -EIO : 0;
	if (ret == 0)
		out[0] = gbs(size, n, copy_loop(b->dst, p, size, n));
	xpmem_detach(p);
	return ret < 0 ? ret : 1;
}

static int shm_sysv(struct bench *b, size_t size, unsigned n, double *out)
{
	return shm_copy(b, SHM_SYSV, size, n, out);
}

static int shm_posix(struct bench *b, size_t size, unsigned n, double *out)
{
	return shm_copy(b, SHM_POSIX, size, n, out);
}

static int shm_cma(struct bench *b, size_t size, unsigned n, double *out)
{
	int ret = shm_buffer(b, SHM_SYSV, size);
	double t0 = now_us();
	for (unsigned i = 0; i < n && ret == 0; i++) {
		struct iovec l = { b->dst, size };
		struct iovec r = { (void *)(uintptr_t)b->shm_buf[SHM_SYSV], size };
		ssize_t got = process_vm_readv(b->pl_pid, &l, 1, &r, 1, 0);
		ret = got == (ssize_t)size ? 0 : got < 0 ? -errno : -EIO;
		clobber(b->dst);
	}
	if (ret < 0)
		return ret;
	out[0] = gbs(size, n, now_us() - t0);
	return 1;
}

static void describe_exit(pid_t peer, char *status, size_t len);
/* ---- remote: the rdma transport between two "nodes" on loopback -------------------- */

/* Per libfabric provider a pair of processes: the remote IMPORTER (this
 * program re-executed with ROLE_RIMP, FI_PROVIDER set, node 2) spawns its
 * own remote EXPORTER (ROLE_ARG "remote", node 1), both with the
 * shared-directory resolver in a fresh directory.  The importer gets the
 * exporter's segment (read-only and read-write apids) and runs the
 * measurements below when this process asks (r_call): each column's
 * function here is a proxy.  The raw fi_read/fi_write figures come from the
 * plugin itself (bench.h), so this program links no libfabric. */
#define ROLE_RIMP "--xpmem-bench-remote-importer-role"
#define RCALL_TIMEOUT_MS 600000 /* one repetition of a remote measurement, at most */
#define NPROV 2
/* XPMEM_BENCH_REMOTE="A,B" picks the two pairs' back ends: a libfabric
 * provider each (FI_PROVIDER), or "ibverbs" (the plugin's own verbs back
 * end, XPMEM_RDMA_BACKEND=verbs, whose raw figures are plain ibv_post_send
 * RDMA reads and writes).  The columns are named after them (remote_setup). */
static const char *rprov[NPROV] = { "tcp;ofi_rxm", "shm" };
static char rprov_buf[NPROV][64];

static bool is_ibverbs(const char *prov)
{
	return !strcmp(prov, "ibverbs");
}

enum rfn {
	RF_READ_PAGE = 64,       /* (not a CMD_*) raw fi_read of size, us per 4 KiB page */
	RF_FAULT,                /* first touch of every page of a fresh lazy attachment, us/page */
	RF_READ_GBS,             /* raw fi_read of size, GB/s */
	RF_SEQ,                  /* memcpy out of a fresh lazy attachment, GB/s */
	RF_EAGER,                /* attach filled eagerly, GB/s */
	RF_WRITE_GBS,            /* raw fi_write (delivery complete) of size, GB/s */
	RF_FLUSH,                /* uxpmem_flush of size dirty bytes, GB/s */
	RF_REVOKE,               /* exporter's xpmem_remove -> importer's callback, us */
};

struct rhello {
	int err;
	char what[300];
	char prov[64];           /* the provider the plugin's endpoint uses */
};

struct rreply {
	int err;
	int got;                 /* samples of the column (then as many per extra column) */
	unsigned nmore;
};

/* The remote importer's state (ROLE_RIMP). */
static struct rimp {
	struct bench b;          /* b.peer etc.: its remote exporter */
	xpmem_apid_t ro, rw;     /* apids of the exporter's whole address space */
	const struct uxpmem_rdma_bench_v1 *pb;
} rs;

/* timeout_ms < 0: none */
static int full_read(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;
	while (len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t n = r < 0 ? -1 : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int full_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Asked by the bench process: run fn and send the samples back. */
static int r_proxy(struct bench *b, int pi, enum rfn fn, unsigned nmore, size_t size,
		   unsigned n, double *out)
{
	if (!b->rp[pi].pid)
		return -ENOTCONN;
	struct cmd c = { .op = (int)fn, .a = size, .b = (uint64_t)n | (uint64_t)nmore << 32 };
	struct rreply r;
	int ret = full_write(b->rp[pi].cmd_fd, &c, sizeof(c));
	if (ret == 0)
		ret = full_read(b->rp[pi].reply_fd, &r, sizeof(r), RCALL_TIMEOUT_MS);
	if (ret < 0)
		return ret;
	if (r.err)
		return -r.err;
	if (r.got < 0 || (unsigned)r.got > n || r.nmore != nmore)
		return -EPROTO;
	ret = full_read(b->rp[pi].reply_fd, out, (size_t)r.got * sizeof(double), RCALL_TIMEOUT_MS);
	for (unsigned k = 0; k < nmore && ret == 0; k++)
		ret = full_read(b->rp[pi].reply_fd, b->more[k], (size_t)r.got * sizeof(double),
				 RCALL_TIMEOUT_MS);
	return ret < 0 ? ret : r.got;
}

#define RPROXY(fname, pi, fn, nmore)                                                        \
	static int fname(struct bench *b, size_t size, unsigned n, double *out)             \
	{                                                                                   \
		return r_proxy(b, pi, fn, nmore, size, n, out);                             \
	}
RPROXY(rt_read_page, 0, RF_READ_PAGE, 0)
RPROXY(rs_read_page, 1, RF_READ_PAGE, 0)
RPROXY(rt_fault, 0, RF_FAULT, 0)
RPROXY(rs_fault, 1, RF_FAULT, 0)
RPROXY(rt_read_gbs, 0, RF_READ_GBS, 0)
RPROXY(rs_read_gbs, 1, RF_READ_GBS, 0)
RPROXY(rt_seq, 0, RF_SEQ, 0)
RPROXY(rs_seq, 1, RF_SEQ, 0)
RPROXY(rt_eager, 0, RF_EAGER, 0)
RPROXY(rs_eager, 1, RF_EAGER, 0)
RPROXY(rt_write_gbs, 0, RF_WRITE_GBS, 0)
RPROXY(rs_write_gbs, 1, RF_WRITE_GBS, 0)
RPROXY(rt_flush, 0, RF_FLUSH, 0)
RPROXY(rs_flush, 1, RF_FLUSH, 0)
RPROXY(rt_revoke, 0, RF_REVOKE, 0)
RPROXY(rs_revoke, 1, RF_REVOKE, 0)

/* --- the floor of any lazy fill: userfaultfd alone, no network ---
 * What a fault served by another thread and the install of fetched pages
 * cost on this machine with the data already at hand: a remote fault or a
 * lazy read can be no faster (rfault's and rseq's "uffd" columns). */

struct uffd_floor {
	int fd, stop[2];
	char *src; /* the data, FILL */
	uintptr_t base; /* atomic: the range being touched */
	size_t size;
};

static int uffd_floor_open(struct uffd_floor *u, size_t size)
{
	if (posix_memalign((void **)&u->src, PAGE, size))
		return -ENOMEM;
	memset(u->src, FILL, size);
	u->fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u->fd < 0 && errno == EPERM)
		u->fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* USER_MODE_ONLY */);
	struct uffdio_api api = { .api = UFFD_API };
	if (u->fd < 0 || ioctl(u->fd, UFFDIO_API, &api) < 0 || pipe2(u->stop, O_CLOEXEC) < 0) {
		int e = errno;
		if (u->fd >= 0)
			close(u->fd);
		free(u->src);
		return -e;
	}
	u->size = size;
	u->base = 0;
	return 0;
}

static void uffd_floor_close(struct uffd_floor *u)
{
	close(u->fd);
	close(u->stop[0]);
	close(u->stop[1]);
	free(u->src);
}

/* A fresh anonymous range of u->size bytes registered with u->fd, or NULL. */
static char *uffd_floor_range(struct uffd_floor *u)
{
	char *p = mmap(NULL, u->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct uffdio_register reg = { .range = { (uintptr_t)p, u->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0) {
		munmap(p, u->size);
		return NULL;
	}
	return p;
}

/* The whole range from u->src (EAGAIN: the address space is changing,
 * e.g. another thread's munmap: the rest again); else zeros, and -errno. */
static int uffd_floor_copy(struct uffd_floor *u, uintptr_t to)
{
	struct uffdio_copy c = { .dst = to, .src = (uintptr_t)u->src, .len = u->size };
	while (ioctl(u->fd, UFFDIO_COPY, &c) < 0) {
		if (errno != EAGAIN || c.copy < 0) {
			int e = errno;
			struct uffdio_zeropage z = { .range = { c.dst, c.len } };
			ioctl(u->fd, UFFDIO_ZEROPAGE, &z); /* the toucher must not wait */
			return -e;
		}
		c.dst += (uint64_t)c.copy;
		c.src += (uint64_t)c.copy;
		c.len -= (uint64_t)c.copy;
		c.copy = 0;
	}
	return 0;
}

/* The serving thread: sleeps in poll as a fault thread does when idle, and
 * fills the whole range at its first fault. */
static void *uffd_floor_serve(void *arg)
{
	struct uffd_floor *u = arg;
	for (;;) {
		struct pollfd p[2] = { { u->fd, POLLIN, 0 }, { u->stop[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		struct uffd_msg m;
		if (read(u->fd, &m, sizeof(m)) == sizeof(m) && m.event == UFFD_EVENT_PAGEFAULT)
			uffd_floor_copy(u, __atomic_load_n(&u->base, __ATOMIC_ACQUIRE));
	}
}

/* us per page: the first touch of every page of a fresh range, the first
 * fault served by the other thread with UFFDIO_COPY of the whole range. */
static int uffd_fault(struct bench *b, size_t size, unsigned n, double *out)
{
	(void)b;
	size_t npages = size / PAGE ? size / PAGE : 1;
	struct uffd_floor u;
	int ret = uffd_floor_open(&u, npages * PAGE);
	pthread_t th;
	if (ret == 0 && (ret = -pthread_create(&th, NULL, uffd_floor_serve, &u)) < 0)
		uffd_floor_close(&u);
	if (ret < 0)
		return ret;
	unsigned i = 0;
	for (; i < n; i++) {
		volatile unsigned char *p = (void *)uffd_floor_range(&u);
		if (!p) {
			ret = -errno;
			break;
		}
		__atomic_store_n(&u.base, (uintptr_t)p, __ATOMIC_RELEASE);
		unsigned sum = 0;
		double t0 = now_us();
		for (size_t k = 0; k < npages; k++)
			sum += p[k * PAGE + 1];
		out[i] = (now_us() - t0) / (double)npages;
		munmap((void *)p, u.size);
		if (sum != FILL * npages) {
			ret = -EIO;
			break;
		}
	}
	(void)!write(u.stop[1], "", 1);
	pthread_join(th, NULL);
	uffd_floor_close(&u);
	return ret < 0 ? ret : (int)n;
}

/* GB/s: UFFDIO_COPY of size bytes into a fresh registered range (no
 * waiting thread): installing fetched pages, which a lazy read pays on top
 * of the read. */
static int uffd_install(struct bench *b, size_t size, unsigned n, double *out)
{
	(void)b;
	struct uffd_floor u;
	int ret = uffd_floor_open(&u, size);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < n && ret == 0; i++) {
		char *p = uffd_floor_range(&u);
		if (!p) {
			ret = -errno;
			break;
		}
		double t0 = now_us();
		ret = uffd_floor_copy(&u, (uintptr_t)p);
		out[i] = gbs(size, 1, now_us() - t0);
		if (ret == 0 && memcmp(p + size - PAGE, u.src + size - PAGE, PAGE))
			ret = -EIO;
		munmap(p, size);
	}
	uffd_floor_close(&u);
	return ret < 0 ? ret : (int)n;
}

/* --- in the remote importer --- */

static void *r_attach(xpmem_apid_t apid, size_t size)
{
	struct xpmem_addr xa = { .apid = apid, .offset = (off_t)rs.b.h.buf };
	return xpmem_attach(xa, size, NULL);
}

/* Every byte of [p, p+len) holds FILL (pages sampled: byte 1 of each). */
static int r_check(const char *p, size_t len)
{
	for (size_t o = 1; o < len; o += PAGE)
		if ((unsigned char)p[o] != FILL)
			return -EIO;
	return (unsigned char)p[len - 1] == FILL ? 0 : -EIO;
}

static int r_raw(size_t size, unsigned n, double *out, int write, bool per_page)
{
	int ret = rs.pb->raw(write ? rs.rw : rs.ro, rs.b.h.buf, size, write, n, out);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < n; i++)
		out[i] = per_page ? out[i] / ((double)size / PAGE) : gbs(size, 1, out[i]);
	return (int)n;
}

static int r_fault(size_t size, unsigned n, double *out)
{
	rs.pb->lazy_from(1);
	size_t npages = size / PAGE ? size / PAGE : 1;
	for (unsigned i = 0; i < n; i++) {
		volatile unsigned char *p = r_attach(rs.ro, npages * PAGE);
		if (p == (void *)-1)
			return -errno;
		unsigned sum = 0;
		double t0 = now_us();
		for (size_t k = 0; k < npages; k++)
			sum += p[k * PAGE + 1];
		out[i] = (now_us() - t0) / (double)npages;
		int ret = sum == FILL * npages ? 0 : -EIO;
		xpmem_detach((void *)p);
		if (ret < 0)
			return ret;
	}
	return (int)n;
}

static int r_seq(size_t size, unsigned n, double *out)
{
	rs.pb->lazy_from(1);
	for (unsigned i = 0; i < n; i++) {
		char *p = r_attach(rs.ro, size);
		if (p == (void *)-1)
			return -errno;
		double t0 = now_us();
		memcpy(rs.b.dst, p, size);
		clobber(rs.b.dst);
		out[i] = gbs(size, 1, now_us() - t0);
		xpmem_detach(p);
		int ret = r_check(rs.b.dst, size);
		if (ret < 0)
			return ret;
	}
	return (int)n;
}

static int r_eager(size_t size, unsigned n, double *out)
{
	rs.pb->lazy_from(SIZE_MAX);
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_us();
		char *p = r_attach(rs.ro, size);
		if (p == (void *)-1)
			return -errno;
		out[i] = gbs(size, 1, now_us() - t0);
		int ret = r_check(p, size);
		xpmem_detach(p);
		if (ret < 0)
			return ret;
	}
	return (int)n;
}

/* Every page dirty (FILL+1), flushed; then FILL again, flushed: two
 * samples per round, the exporter's buffer as it was after each round. */
static int r_flush(size_t size, unsigned n, double *out)
{
	rs.pb->lazy_from(SIZE_MAX);
	char *p = r_attach(rs.rw, size);
	if (p == (void *)-1)
		return -errno;
	int ret = 0;
	unsigned i = 0;
	for (int v = FILL + 1; ret == 0 && (i < n || v != FILL + 1); v = v == FILL ? FILL + 1 : FILL) {
		memset(p, v, size);
		double t0 = now_us();
		if (uxpmem_flush(p, size) < 0)
			ret = -errno;
		if (i < n)
			out[i++] = gbs(size, 1, now_us() - t0);
	}
	if (xpmem_detach(p) < 0 && ret == 0)
		ret = -errno;
	return ret < 0 ? ret : (int)n;
}

static int r_run(enum rfn fn, size_t size, unsigned n, double *out)
{
	if (size > rs.b.h.size)
		return -E2BIG;
	switch (fn) {
	case RF_READ_PAGE: return r_raw(size, n, out, 0, true);
	case RF_FAULT: return r_fault(size, n, out);
	case RF_READ_GBS: return r_raw(size, n, out, 0, false);
	case RF_SEQ: return r_seq(size, n, out);
	case RF_EAGER: return r_eager(size, n, out);
	case RF_WRITE_GBS: return r_raw(size, n, out, 1, false);
	case RF_FLUSH: return r_flush(size, n, out);
	case RF_REVOKE: return rv_remove(&rs.b, size, n, out, false);
	}
	return -EINVAL;
}

static void rimp_fail(struct rhello *rh, int err, const char *fmt, const char *arg)
{
	rh->err = err;
	snprintf(rh->what, sizeof(rh->what), fmt, arg, strerror(err));
}

static int spawn_exporter(struct bench *b, int kind, pid_t *peer, int *cmd_fd, int *reply_fd);
static void quit_peer(pid_t pid, int cmd_fd, char *status, size_t len);

/* The remote exporter, the apids, the plugin's bench interface. */
static void rimp_setup(struct rhello *rh)
{
	struct bench *b = &rs.b;
	/* the exporter is node 1; environ is copied before this process starts a thread */
	setenv("XPMEM_NODE_ID", "1", 1);
	int ret = spawn_exporter(b, 2, &b->peer, &b->cmd_fd, &b->reply_fd);
	setenv("XPMEM_NODE_ID", "2", 1);
	if (ret < 0)
		{
		rimp_fail(rh, -ret, "cannot spawn the remote exporter%s: %s", "");
		return;
	}
	if (full_read(b->reply_fd, &b->h, sizeof(b->h), RCALL_TIMEOUT_MS) < 0) {
		describe_exit(b->peer, b->peer_status, sizeof(b->peer_status));
		b->peer = 0;
		rh->err = EPIPE;
		snprintf(rh->what, sizeof(rh->what), "the remote exporter %s before announcing "
			 "its segment", b->peer_status);
		return;
	}
	if (b->h.err) {
		rh->err = b->h.err;
		snprintf(rh->what, sizeof(rh->what), "remote %s", b->h.what);
		return;
	}
	if (b->h.seg_base != 0)
		{
		rimp_fail(rh, EINVAL, "the remote exporter could not export its whole address "
				 "space%s (%s)", "");
		return;
	}
	rs.ro = xpmem_get(b->h.segid, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	rs.rw = rs.ro < 0 ? -1 : xpmem_get(b->h.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (rs.ro < 0 || rs.rw < 0)
		{
		rimp_fail(rh, errno, "xpmem_get of the remote segment%s: %s (the rdma plugin, "
				 "libfabric or the provider is missing? XPMEM_LOG_LEVEL=debug says)", "");
		return;
	}
	/* the plugin is loaded now: its bench interface */
	char path[4300];
	const char *dir = getenv("XPMEM_PLUGIN_DIR");
	snprintf(path, sizeof(path), "%s/libuxpmem-rdma.so", dir ? dir : UXP_PKGLIBDIR "/transports");
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h)
		*(void **)&rs.pb = dlsym(h, UXPMEM_RDMA_BENCH_SYMBOL);
	if (!rs.pb || rs.pb->size < sizeof(*rs.pb))
		{
		rimp_fail(rh, ENOSYS, "%s: no " UXPMEM_RDMA_BENCH_SYMBOL " of this version: %s",
				 path);
		return;
	}
	snprintf(rh->prov, sizeof(rh->prov), "%s", rs.pb->provider());
	/* the first touch of each 2 MiB chunk registers it: not what is measured */
	double *t = malloc(sizeof(double));
	for (uint64_t off = 0; t && off < b->h.size; off += 2 * MiB) {
		size_t len = b->h.size - off < PAGE ? b->h.size - off : PAGE;
		if (rs.pb->raw(rs.ro, b->h.buf + off, len, 0, 1, t) < 0 ||
		    rs.pb->raw(rs.rw, b->h.buf + off, len, 0, 1, t) < 0)
			break;
	}
	free(t);
}

static int rimp_main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	int cmd_fd = atoi(argv[2]), reply_fd = atoi(argv[3]);
	struct rhello rh = { 0 };
	struct bench *b = &rs.b;
	*b = (struct bench){ .maxsize = strtoull(argv[4], NULL, 0), .qfd = -1 };
	sem_init(&watch.sem, 0, 0);
	if (posix_memalign((void **)&b->dst, PAGE, b->maxsize))
		rimp_fail(&rh, ENOMEM, "buffer%s: %s", "");
	else
		rimp_setup(&rh);
	if (full_write(reply_fd, &rh, sizeof(rh)) < 0)
		return 1;
	struct cmd c;
	while (!rh.err && full_read(cmd_fd, &c, sizeof(c), -1) == 0 && c.op != CMD_QUIT) {
		unsigned n = (unsigned)c.b, nmore = (unsigned)(c.b >> 32);
		double *v = calloc((size_t)n * (1 + nmore) + 1, sizeof(double));
		for (unsigned k = 0; k < nmore && v; k++)
			b->more[k] = v + (size_t)n * (1 + k);
		struct rreply r = { .nmore = nmore };
		r.got = v ? r_run((enum rfn)c.op, c.a, n, v) : -ENOMEM;
		if (r.got < 0) {
			r.err = -r.got;
			r.got = 0;
		}
		int ret = full_write(reply_fd, &r, sizeof(r));
		for (unsigned k = 0; k <= nmore && ret == 0; k++)
			ret = full_write(reply_fd, v + (size_t)n * k, (size_t)r.got * sizeof(double));
		free(v);
		if (ret < 0)
			break;
	}
	if (rs.ro > 0)
		xpmem_release(rs.ro);
	if (rs.rw > 0)
		xpmem_release(rs.rw);
	if (b->peer)
		quit_peer(b->peer, b->cmd_fd, b->peer_status, sizeof(b->peer_status));
	return 0;
}

/* ---- the tests ------------------------------------------------------------------ */

static struct test tests[] = {
	{ "bw", "copy bandwidth, importer reads the exporter's buffer", "GB/s", false,
	  1 * GiB, 10, 10000,
	  { { "memcpy", bw_memcpy, NEED_PEER }, { "attach", bw_attach, NEED_ARENA },
	    { "cma", bw_cma, NEED_PEER } },
	  /* memcpy/cma bounds what attach/cma can reach on this machine */
	  { { "attach/memcpy", 1, 0 }, { "attach/cma", 1, 2 }, { "memcpy/cma", 0, 2 } },
	  { { "attach/memcpy", MiB, false, 0.9 }, { "attach/cma", MiB, false, 2.0 } } },
	{ "attach", "attach+detach of a cached arena range", "us", true,
	  0, 1, 10000,
	  { { "attach+detach", lat_attach, NEED_ARENA } }, { { 0 } },
	  { { "attach+detach", 0, true, 2.0 } } },
	{ "cold", "first get+attach, fresh apid each time", "us", true,
	  0, 1, 200,
	  { { "get+attach", lat_cold, NEED_SEGMENT } }, { { 0 } }, { { 0 } } },
	{ .name = "convert",
	  .title = "attach of a fresh malloc buffer of the plain exporter (converted in place) "
		   "while its writer thread stores",
	  .unit = "ms", .per_op = true, .budget = 256 * MiB, .lo = 3, .hi = 20,
	  .cols = { { "attach", conv_attach, NEED_CONVERT },
		    { "attach/MiB", NULL, NEED_CONVERT, 1 },
		    { "stall", NULL, NEED_CONVERT, 1 } },
	  .targets = { { "attach/MiB", 0, true, 0.5 } },
	  .sizes = "1m,16m,64m" },
	{ .name = "convert-file",
	  .title = "attach of a private writable file mapping (like .data) of the plain exporter "
		   "(converted with all its threads stopped) while its writer thread stores",
	  .unit = "ms", .per_op = true, .budget = 256 * MiB, .lo = 3, .hi = 20,
	  .cols = { { "attach", conv_attach_file, NEED_CONVERT },
		    { "attach/MiB", NULL, NEED_CONVERT, 1 },
		    { "stall", NULL, NEED_CONVERT, 1 } },
	  .targets = { { "attach/MiB", 0, true, 0.5 } },
	  .sizes = "1m,16m,64m" },
	{ .name = "munmap",
	  .title = "munmap in the plain exporter: memory never attached vs converted and attached",
	  .unit = "us", .per_op = true, .lo = 1, .hi = 200,
	  .cols = { { "plain", mu_plain, NEED_PLAIN }, { "exported", mu_exported, NEED_CONVERT } },
	  .ratios = { { "extra", 1, 0, D_DIFF }, { "extra p99", 1, 0, D_DIFF_P99 } },
	  .tail = true, .sizes = "4k,64k,1m" },
	{ .name = "fault",
	  .title = "importer's first touch after the exporter unmapped and mapped new memory "
		   "at the same address (re-resolve + conversion)",
	  .unit = "us", .per_op = true, .lo = 1, .hi = 100,
	  .cols = { { "first touch", fault_touch, NEED_CONVERT } },
	  .tail = true, .sizes = "4k,64k,1m" },
	{ .name = "lfcache",
	  .title = "libfabric's pattern: transfers through an attach cache of overlapping "
		   "page-aligned ranges of the plain exporter's memory vs CMA",
	  .unit = "GB/s", .per_op = false, .budget = 256 * MiB, .lo = 8, .hi = 4000,
	  .cols = { { "read", lf_read, NEED_CONVERT }, { "write", lf_write, NEED_CONVERT },
		    { "cma read", lf_cma_read, NEED_PLAIN },
		    { "cma write", lf_cma_write, NEED_PLAIN } },
	  .ratios = { { "read/cma", 0, 2 }, { "write/cma", 1, 3 } },
	  .targets = { { "read/cma", MiB, false, 1.5 }, { "write/cma", MiB, false, 1.5 } },
	  .sizes = "64k,1m,16m" },
	{ .name = "shm",
	  .title = "client-shaped: the plain exporter's SysV and POSIX-shm buffers (UCX's "
		   "default allocation) copied out through a cached attachment, vs local memcpy "
		   "and process_vm_readv",
	  .unit = "GB/s", .per_op = false, .budget = 1 * GiB, .lo = 10, .hi = 10000,
	  .cols = { { "sysv", shm_sysv, NEED_PLAIN }, { "posix", shm_posix, NEED_PLAIN },
		    { "memcpy", bw_memcpy, NEED_PEER }, { "cma", shm_cma, NEED_PLAIN } },
	  .ratios = { { "sysv/cma", 0, 3 }, { "posix/cma", 1, 3 }, { "sysv/memcpy", 0, 2 } },
	  .targets = { { "sysv/memcpy", MiB, false, 0.9 }, { "sysv/cma", MiB, false, 1.5 } },
	  .sizes = "64k,1m,16m,64m" },
	{ .name = "many",
	  .title = "1, 4, 16 importers attach and read the same fresh buffer of the plain exporter "
		   "at once (converted once): slowest first byte and last importer done",
	  .unit = "ms", .per_op = true, .lo = 1, .hi = 3,
	  .cols = { { "1 first", many_attach, NEED_CONVERT }, { "1 total", NULL, NEED_CONVERT, 1 },
		    { "4 first", NULL, NEED_CONVERT, 1 }, { "4 total", NULL, NEED_CONVERT, 1 },
		    { "16 first", NULL, NEED_CONVERT, 1 }, { "16 total", NULL, NEED_CONVERT, 1 } },
	  .ratios = { { "16/1 total", 5, 1 } },
	  .sizes = "64m" },
	{ .name = "revoke",
	  .title = "revocation latency, exporter's xpmem_remove or munmap to the importer's event",
	  .unit = "us", .per_op = true, .lo = 1, .hi = 100,
	  .cols = { { "remove cb", rv_remove_cb, NEED_ARENA },
		    { "remove fd", rv_remove_fd, NEED_ARENA },
		    { "inval cb", rv_inval_cb, NEED_CONVERT },
		    { "inval fd", rv_inval_fd, NEED_CONVERT } },
	  .tail = true, .sizes = "4k,1m" },
	{ .name = "rfault",
	  .title = "remote (rdma plugin, two nodes on loopback): first touch of every page of a "
		   "fresh lazy attachment of size (4 KiB: one cold fault; larger: per page with "
		   "read-ahead) vs one raw fi_read of size, per 4 KiB page; uffd: the same "
		   "touch served by another thread from local memory, no network (the floor)",
	  .unit = "us/page", .per_op = true, .budget = 64 * MiB, .lo = 5, .hi = 200,
	  .cols = { { "tcp read", rt_read_page, NEED_RTCP }, { "tcp fault", rt_fault, NEED_RTCP },
		    { "shm read", rs_read_page, NEED_RSHM }, { "shm fault", rs_fault, NEED_RSHM },
		    { "uffd", uffd_fault, NEED_PEER } },
	  .ratios = { { "tcp fault/read", 1, 0 }, { "shm fault/read", 3, 2 },
		      { "tcp uffd/read", 4, 0 }, { "shm uffd/read", 4, 2 } },
	  .targets = { { "tcp fault/read", 4096, true, 1.5 }, { "shm fault/read", 4096, true, 1.5 } },
	  .tail = true, .sizes = "4k,64k,1m" },
	{ .name = "rseq",
	  .title = "remote: sequential read (memcpy) of a fresh lazy attachment of size vs raw "
		   "fi_read of size; uffd: UFFDIO_COPY of size into a fresh range, which a lazy "
		   "read pays besides the read (the ceiling)",
	  .unit = "GB/s", .per_op = true, .budget = 256 * MiB, .lo = 3, .hi = 200,
	  .cols = { { "tcp read", rt_read_gbs, NEED_RTCP }, { "tcp lazy", rt_seq, NEED_RTCP },
		    { "shm read", rs_read_gbs, NEED_RSHM }, { "shm lazy", rs_seq, NEED_RSHM },
		    { "uffd", uffd_install, NEED_PEER } },
	  .ratios = { { "tcp lazy/read", 1, 0 }, { "shm lazy/read", 3, 2 },
		      { "tcp uffd/read", 4, 0 }, { "shm uffd/read", 4, 2 } },
	  .targets = { { "tcp lazy/read", MiB, false, 0.8 }, { "shm lazy/read", MiB, false, 0.8 } },
	  .sizes = "1m,16m,64m" },
	{ .name = "reager",
	  .title = "remote: attach filled at once (eager) vs raw fi_read of size",
	  .unit = "GB/s", .per_op = true, .budget = 256 * MiB, .lo = 3, .hi = 200,
	  .cols = { { "tcp read", rt_read_gbs, NEED_RTCP }, { "tcp eager", rt_eager, NEED_RTCP },
		    { "shm read", rs_read_gbs, NEED_RSHM }, { "shm eager", rs_eager, NEED_RSHM } },
	  .ratios = { { "tcp eager/read", 1, 0 }, { "shm eager/read", 3, 2 } },
	  .sizes = "64k,1m,16m" },
	{ .name = "rflush",
	  .title = "remote: uxpmem_flush of a read-write attachment with every page changed vs "
		   "raw fi_write (delivery complete) of size",
	  .unit = "GB/s", .per_op = true, .budget = 256 * MiB, .lo = 3, .hi = 200,
	  .cols = { { "tcp write", rt_write_gbs, NEED_RTCP }, { "tcp flush", rt_flush, NEED_RTCP },
		    { "shm write", rs_write_gbs, NEED_RSHM }, { "shm flush", rs_flush, NEED_RSHM } },
	  .ratios = { { "tcp flush/write", 1, 0 }, { "shm flush/write", 3, 2 } },
	  .targets = { { "tcp flush/write", MiB, false, 0.8 },
		       { "shm flush/write", MiB, false, 0.8 } },
	  .sizes = "64k,1m,16m" },
	{ .name = "rrevoke",
	  .title = "remote: revocation latency, the remote exporter's xpmem_remove to the "
		   "importer's callback",
	  .unit = "us", .per_op = true, .lo = 1, .hi = 50,
	  .cols = { { "tcp remove", rt_revoke, NEED_RTCP }, { "shm remove", rs_revoke, NEED_RSHM } },
	  .tail = true, .sizes = "4k" },
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

/* A column label for a remote back end: tcp, shm, rxm (verbs;ofi_rxm),
 * ibv (ibverbs), else the provider's name up to its first ';'. */
static void remote_label(const char *prov, char *out, size_t len)
{
	if (is_ibverbs(prov))
		snprintf(out, len, "ibv");
	else if (!strcmp(prov, "verbs;ofi_rxm"))
		snprintf(out, len, "rxm");
	else
		snprintf(out, len, "%.*s", (int)strcspn(prov, ";"), prov);
}

/* name with its first word, a default pair's label (tcp, shm), replaced
 * by that pair's label now. */
static const char *relabel(const char *name, char lab[NPROV][16])
{
	static const char *const dflt[NPROV] = { "tcp", "shm" };
	for (int pi = 0; name && pi < NPROV; pi++) {
		size_t n = strlen(dflt[pi]);
		char *r;
		if (!strncmp(name, dflt[pi], n) && name[n] == ' ')
			return asprintf(&r, "%s%s", lab[pi], name + n) < 0 ? name : r;
	}
	return name;
}

/* XPMEM_BENCH_REMOTE: the pairs' back ends, and the remote tests' columns,
 * ratios and targets named after them. */
static int remote_setup(void)
{
	const char *v = getenv("XPMEM_BENCH_REMOTE");
	if (!v || !*v)
		return 0;
	const char *comma = strchr(v, ',');
	if (!comma || strchr(comma + 1, ',') || comma == v || !comma[1] ||
	    (size_t)(comma - v) >= sizeof(rprov_buf[0]) || strlen(comma + 1) >= sizeof(rprov_buf[1])) {
		fprintf(stderr, "xpmem-bench: XPMEM_BENCH_REMOTE=%s: want two back ends, "
			"PROVIDER,PROVIDER (a libfabric provider or ibverbs)\n", v);
		return -1;
	}
	snprintf(rprov_buf[0], sizeof(rprov_buf[0]), "%.*s", (int)(comma - v), v);
	snprintf(rprov_buf[1], sizeof(rprov_buf[1]), "%s", comma + 1);
	char lab[NPROV][16];
	for (int pi = 0; pi < NPROV; pi++) {
		rprov[pi] = rprov_buf[pi];
		remote_label(rprov[pi], lab[pi], sizeof(lab[pi]));
	}
	if (!strcmp(lab[0], lab[1])) {
		fprintf(stderr, "xpmem-bench: XPMEM_BENCH_REMOTE=%s: two different back ends, "
			"please\n", v);
		return -1;
	}
	for (size_t i = 0; i < NTESTS; i++) {
		struct test *t = &tests[i];
		for (unsigned c = 0; c < MAXCOLS; c++)
			t->cols[c].name = relabel(t->cols[c].name, lab);
		for (unsigned r = 0; r < MAXRATIOS; r++)
			t->ratios[r].name = relabel(t->ratios[r].name, lab);
		for (unsigned g = 0; g < MAXTARGETS; g++)
			t->targets[g].metric = relabel(t->targets[g].metric, lab);
	}
	return 0;
}

static unsigned ncols(const struct test *t)
{
	unsigned n = 0;
	while (n < MAXCOLS && t->cols[n].name)
		n++;
	return n;
}

static unsigned nratios(const struct test *t)
{
	unsigned n = 0;
	while (n < MAXRATIOS && t->ratios[n].name)
		n++;
	return n;
}

static unsigned default_iters(const struct test *t, size_t size)
{
	if (!t->budget)
		return t->hi;
	uint64_t n = t->budget / (size ? size : 1);
	return n < t->lo ? t->lo : n > t->hi ? t->hi : (unsigned)n;
}

/* ---- statistics ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *v, unsigned n, double p)
{
	double pos = p * (n - 1);
	unsigned i = (unsigned)pos;
	return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static void stats(struct cell *c, double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	c->n = n;
	c->min = v[0];
	c->max = v[n - 1];
	c->med = pct(v, n, 0.5);
	c->p10 = pct(v, n, 0.1);
	c->p90 = pct(v, n, 0.9);
	c->p99 = pct(v, n, 0.99);
}

/* ---- running --------------------------------------------------------------------- */

static void fmt_size(char *s, size_t len, size_t v)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB" };
	unsigned u = 0;
	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(s, len, "%zu %s", v, unit[u]);
}

static void progress(const struct opts *o, const struct test *t, const char *col,
		     size_t size, unsigned rep)
{
	if (o->quiet || !isatty(STDERR_FILENO))
		return;
	char sz[32];
	fmt_size(sz, sizeof(sz), size);
	if (rep == 0)
		fprintf(stderr, "\r\033[K%s: %s, %s: warm-up", t->name, col, sz);
	else
		fprintf(stderr, "\r\033[K%s: %s, %s: repetition %u/%u", t->name, col, sz, rep,
			o->reps);
}

static void progress_done(const struct opts *o)
{
	if (!o->quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");
}

static void cell_fail(struct cell *c, int err, const char *fmt, const char *arg)
{
	c->err = err;
	snprintf(c->msg, sizeof(c->msg), fmt, arg, strerror(err));
}

/* One repetition under the SIGBUS guard; < 0: -errno. */
static int guarded(const struct column *col, struct bench *b, size_t size, unsigned n,
		   double *out)
{
	guard_sig = 0;
	if (sigsetjmp(guard_jb, 1)) {
		guard_armed = 0;
		return -EFAULT;
	}
	guard_armed = 1;
	int ret = col->fn(b, size, n, out);
	guard_armed = 0;
	return ret;
}

/* Why a column cannot be measured, NULL if it can. */
static const char *unmet(const struct bench *b, enum need need)
{
	switch (need) {
	case NEED_PEER:
		return NULL;
	case NEED_SEGMENT:
		return b->seg_err[0] ? b->seg_err : NULL;
	case NEED_ARENA:
		return b->seg_err[0] ? b->seg_err : b->arena_err[0] ? b->arena_err : NULL;
	case NEED_PLAIN:
		return b->plain_err[0] ? b->plain_err : NULL;
	case NEED_CONVERT:
		return b->plain_err[0] ? b->plain_err : b->conv_err[0] ? b->conv_err : NULL;
	case NEED_RTCP:
	case NEED_RSHM:
		return b->rp[need - NEED_RTCP].err[0] ? b->rp[need - NEED_RTCP].err : NULL;
	}
	return NULL;
}

/* Column ci and the columns its function fills besides (from == ci + 1). */
static void run_cell(const struct opts *o, const struct test *t, unsigned ci, struct bench *b,
		     struct row *r)
{
	const struct column *col = &t->cols[ci];
	unsigned dep[MAXCOLS], ndep = 0;
	for (unsigned k = 0; k < ncols(t); k++)
		if (t->cols[k].from == (int)ci + 1)
			dep[ndep++] = k;
	struct cell *c = &r->c[ci];
	const char *why = unmet(b, col->need);
	if (why) {
		c->err = ENOTSUP;
		snprintf(c->msg, sizeof(c->msg), "%s", why);
		for (unsigned k = 0; k < ndep; k++)
			r->c[dep[k]] = *c;
		return;
	}
	unsigned per = t->per_op ? r->iters : 1;
	size_t nsamp = (size_t)per * (o->reps + 1);
	double *v = calloc(nsamp * (1 + ndep), sizeof(double));
	unsigned nv = 0;
	for (unsigned rep = 0; rep <= o->reps && v; rep++) {
		progress(o, t, col->name, r->size, rep);
		for (unsigned k = 0; k < ndep; k++)
			b->more[k] = v + nsamp * (1 + k) + nv;
		/* rep 0 is the warm-up and is overwritten */
		int got = guarded(col, b, r->size, r->iters, v + nv);
		if (got < 0) {
			if (guard_sig)
				snprintf(c->msg, sizeof(c->msg), "%s while reading the attachment",
					 guard_sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
			else
				cell_fail(c, -got, "%s: %s", col->name);
			c->err = -got;
			break;
		}
		nv = rep ? nv + (unsigned)got : 0;
	}
	if (!v)
		cell_fail(c, ENOMEM, "%s: %s", col->name);
	else if (!c->err)
		stats(c, v, nv);
	for (unsigned k = 0; k < ndep; k++) {
		if (c->err || !v)
			r->c[dep[k]] = *c;
		else
			stats(&r->c[dep[k]], v + nsamp * (1 + k), nv);
	}
	free(v);
}

static double derive(const struct ratio *d, const struct cell *n, const struct cell *q)
{
	if (n->err || q->err)
		return NAN;
	switch (d->kind) {
	case D_DIFF:
		return n->med - q->med;
	case D_DIFF_P99:
		return n->p99 - q->p99;
	case D_RATIO:
		break;
	}
	return q->med > 0 ? n->med / q->med : NAN;
}

static void run_row(const struct opts *o, const struct test *t, struct bench *b, struct row *r)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		if (!t->cols[ci].from)
			run_cell(o, t, ci, b, r);
	for (unsigned ri = 0; ri < nratios(t); ri++)
		r->ratio[ri] = derive(&t->ratios[ri], &r->c[t->ratios[ri].num],
				      &r->c[t->ratios[ri].den]);
}

/* ---- output ------------------------------------------------------------------------- */

static void fmt_num(char *s, size_t len, double v)
{
	double a = v < 0 ? -v : v;
	const char *f = a >= 1000 ? "%.0f" : a >= 100 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f";
	snprintf(s, len, f, v);
}

/* A derived metric's value as text: "1.23x" for a ratio, else a number. */
static void fmt_derived(char *s, size_t len, const struct ratio *d, double v)
{
	if (isnan(v))
		snprintf(s, len, "-");
	else if (d->kind == D_RATIO)
		snprintf(s, len, "%.2fx", v);
	else
		fmt_num(s, len, v);
}

#define TW (2 + 3 * MAXCOLS + MAXRATIOS) /* size, iters, up to 3 per metric, derived */
#define CW 40

struct table {
	unsigned ncol, nrow;
	char cell[MAXSIZES + 1][TW][CW];
};

static void table_print(const struct table *tb)
{
	size_t w[TW] = { 0 };
	for (unsigned r = 0; r < tb->nrow; r++)
		for (unsigned c = 0; c < tb->ncol; c++) {
			size_t l = strlen(tb->cell[r][c]);
			w[c] = l > w[c] ? l : w[c];
		}
	for (unsigned r = 0; r < tb->nrow; r++) {
		for (unsigned c = 0; c < tb->ncol; c++)
			printf("%s%*s", c ? "  " : "", (int)w[c], tb->cell[r][c]);
		putchar('\n');
	}
}

static void text_cells(const struct test *t, const struct row *row, char (*cell)[CW])
{
	unsigned k = 0;
	fmt_size(cell[k++], CW, row->size);
	snprintf(cell[k++], CW, "%u", row->iters);
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		const struct cell *c = &row->c[ci];
		if (c->err) {
			snprintf(cell[k++], CW, "failed");
			snprintf(cell[k++], CW, "-");
			if (t->tail)
				snprintf(cell[k++], CW, "-");
			continue;
		}
		char a[16], z[16];
		fmt_num(cell[k++], CW, c->med);
		fmt_num(a, sizeof(a), c->p10);
		fmt_num(z, sizeof(z), c->p90);
		snprintf(cell[k++], CW, "%s-%s", a, z);
		if (t->tail)
			fmt_num(cell[k++], CW, c->p99);
	}
	for (unsigned ri = 0; ri < nratios(t); ri++)
		fmt_derived(cell[k++], CW, &t->ratios[ri], row->ratio[ri]);
}

static bool metric_value(const struct test *t, const struct row *row, const char *name,
			 double *v)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		if (!strcmp(t->cols[ci].name, name) && !row->c[ci].err) {
			*v = row->c[ci].med;
			return true;
		}
	for (unsigned ri = 0; ri < nratios(t); ri++)
		if (!strcmp(t->ratios[ri].name, name) && !isnan(row->ratio[ri])) {
			*v = row->ratio[ri];
			return true;
		}
	return false;
}

/* A ratio has no unit; columns and differences have the test's. */
static bool is_ratio(const struct test *t, const char *name)
{
	for (unsigned ri = 0; ri < nratios(t); ri++)
		if (!strcmp(t->ratios[ri].name, name))
			return t->ratios[ri].kind == D_RATIO;
	return false;
}

/* One line per target: "met" / "MISSED" at each size it applies to, so a
 * run answers the issue's goals directly. */
static void text_target(const struct test *t, const struct target *g, const struct row *rows,
			unsigned nrows)
{
	const char *sep = ":";
	bool ratio = is_ratio(t, g->metric);
	printf("# target %s %s %g%s%s", g->metric, g->below ? "<" : ">=", g->value,
	       ratio ? "" : " ", ratio ? "" : t->unit);
	for (unsigned r = 0; r < nrows; r++) {
		char sz[32];
		double v;
		if (g->size && rows[r].size != g->size)
			continue;
		fmt_size(sz, sizeof(sz), rows[r].size);
		if (!metric_value(t, &rows[r], g->metric, &v))
			printf("%s %s not measured", sep, sz);
		else
			printf("%s %s %.3g %s", sep, sz, v,
			       (g->below ? v < g->value : v >= g->value) ? "met" : "MISSED");
		sep = ",";
	}
	putchar('\n');
}

static void text_targets(const struct test *t, const struct row *rows, unsigned nrows)
{
	for (unsigned ti = 0; ti < MAXTARGETS && t->targets[ti].metric; ti++) {
		const struct target *g = &t->targets[ti];
		bool applies = !g->size;
		for (unsigned r = 0; r < nrows; r++)
			applies |= rows[r].size == g->size;
		if (applies)
			text_target(t, g, rows, nrows);
	}
}

static void text_test(const struct test *t, const struct row *rows,
		      unsigned nrows)
{
	if (!ncols(t)) {
		printf("\n## %s: %s: n/a (%s)\n", t->name, t->title,
		       t->na ? t->na : "not implemented");
		return;
	}
	printf("\n## %s: %s, %s; median and p10-p90 over %s\n", t->name, t->title, t->unit,
	       t->per_op ? "all operations of all repetitions" : "repetitions");
	static struct table tb;
	unsigned k = 0;
	snprintf(tb.cell[0][k++], CW, "size");
	snprintf(tb.cell[0][k++], CW, "iters");
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		snprintf(tb.cell[0][k++], CW, "%s", t->cols[ci].name);
		snprintf(tb.cell[0][k++], CW, "p10-p90");
		if (t->tail)
			snprintf(tb.cell[0][k++], CW, "p99");
	}
	for (unsigned ri = 0; ri < nratios(t); ri++)
		snprintf(tb.cell[0][k++], CW, "%s", t->ratios[ri].name);
	tb.ncol = k;
	tb.nrow = nrows + 1;
	for (unsigned r = 0; r < nrows; r++)
		text_cells(t, &rows[r], tb.cell[r + 1]);
	table_print(&tb);
	for (unsigned ci = 0; ci < ncols(t); ci++)
		for (unsigned r = 0; r < nrows; r++)
			if (rows[r].c[ci].err) {
				printf("# %s failed: %s\n", t->cols[ci].name, rows[r].c[ci].msg);
				break;
			}
	text_targets(t, rows, nrows);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_cell(const char *name, const char *unit, const struct cell *c)
{
	printf("{\"metric\": ");
	json_str(name);
	printf(", \"unit\": ");
	json_str(unit);
	if (c->err) {
		printf(", \"status\": \"failed\", \"error\": ");
		json_str(c->msg);
	} else {
		printf(", \"status\": \"ok\", \"samples\": %u, \"median\": %.6g, \"p10\": %.6g, "
		       "\"p90\": %.6g, \"p99\": %.6g, \"min\": %.6g, \"max\": %.6g", c->n, c->med,
		       c->p10, c->p90, c->p99, c->min, c->max);
	}
	putchar('}');
}

static void json_row(const struct test *t, const struct row *row)
{
	printf("      {\"size\": %zu, \"iterations\": %u, \"metrics\": [", row->size, row->iters);
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		printf(ci ? ", " : "");
		json_cell(t->cols[ci].name, t->unit, &row->c[ci]);
	}
	printf("], \"ratios\": {");
	for (unsigned ri = 0; ri < nratios(t); ri++) {
		printf("%s", ri ? ", " : "");
		json_str(t->ratios[ri].name);
		if (isnan(row->ratio[ri]))
			printf(": null");
		else
			printf(": %.6g", row->ratio[ri]);
	}
	printf("}}");
}

static void json_test(const struct test *t, const struct row *rows, unsigned nrows, bool first)
{
	printf("%s    {\"test\": ", first ? "" : ",\n");
	json_str(t->name);
	printf(", \"title\": ");
	json_str(t->title);
	if (!ncols(t)) {
		printf(", \"status\": ");
		char na[160];
		snprintf(na, sizeof(na), "n/a (%s)", t->na ? t->na : "not implemented");
		json_str(na);
		putchar('}');
		return;
	}
	printf(", \"status\": \"ok\", \"unit\": ");
	json_str(t->unit);
	printf(", \"samples_per\": \"%s\", \"rows\": [\n", t->per_op ? "operation" : "repetition");
	for (unsigned r = 0; r < nrows; r++) {
		json_row(t, &rows[r]);
		printf(r + 1 < nrows ? ",\n" : "\n");
	}
	printf("    ]}");
}

static void csv_test(const struct test *t, const struct row *rows, unsigned nrows)
{
	if (!ncols(t)) {
		printf("%s,,,,,n/a (%s),,,,,,,\n", t->name, t->na ? t->na : "not implemented");
		return;
	}
	for (unsigned r = 0; r < nrows; r++) {
		const struct row *w = &rows[r];
		for (unsigned ci = 0; ci < ncols(t); ci++) {
			const struct cell *c = &w->c[ci];
			printf("%s,%zu,%u,%s,%s,", t->name, w->size, w->iters, t->cols[ci].name,
			       t->unit);
			if (c->err)
				printf("failed,,,,,,,\n");
			else
				printf("ok,%.6g,%.6g,%.6g,%.6g,%.6g,%u,%.6g\n", c->med, c->p10,
				       c->p90, c->min, c->max, c->n, c->p99);
		}
		for (unsigned ri = 0; ri < nratios(t); ri++) {
			const struct ratio *d = &t->ratios[ri];
			printf("%s,%zu,%u,%s,%s,", t->name, w->size, w->iters, d->name,
			       d->kind == D_RATIO ? "x" : t->unit);
			if (isnan(w->ratio[ri]))
				printf("failed,,,,,,,\n");
			else
				printf("ok,%.6g,,,,,,\n", w->ratio[ri]);
		}
	}
}

static void ref_version(char *s, size_t len)
{
	unsigned v = UXPMEM_REFERENCE_VERSION;
	snprintf(s, len, "%u.%u.%u", (v >> 16) & 0xff, (v >> 12) & 0xf, v & 0xfff);
}

static const char *importer_transport(void)
{
	const char *t = uxpmem_transport_name();
	return t ? t : "none";
}

static const char *level_name(int level)
{
	switch (level) {
	case UXPMEM_EXPORT_FULL: return "FULL";
	case UXPMEM_EXPORT_USER: return "USER";
	case UXPMEM_EXPORT_ARENA: return "ARENA";
	}
	return "none";
}

static void text_header(const struct opts *o, const struct bench *b)
{
	struct utsname u;
	char ref[32], it[32];
	uname(&u);
	ref_version(ref, sizeof(ref));
	snprintf(it, sizeof(it), "%u", o->iters);
	printf("# xpmem-bench: uxpmem %s (XPMEM %s API), Linux %s, %ld CPUs\n",
	       uxpmem_version_string(), ref, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	printf("# transport: importer %s, exporter %s (XPMEM_TRANSPORT=%s)\n",
	       importer_transport(), b->h.transport[0] ? b->h.transport : "none",
	       o->transport ? o->transport : "auto");
	printf("# exporter: pid %d, LD_PRELOAD %s (%s), arena %s\n", (int)b->peer,
	       b->preload ? b->preload : "none", b->preload_src,
	       b->h.arena ? "active" : "NOT active");
	printf("# repetitions %u (+1 warm-up, discarded), iterations %s\n", o->reps,
	       o->iters ? it : "per size (see iters)");
	if (b->h.arena)
		printf("# exporter arena: %#" PRIx64 "+%" PRIu64 " GiB, buffer %#" PRIx64 " %s\n",
		       b->h.arena_base, b->h.arena_size >> 30, b->h.buf,
		       b->h.in_arena ? "inside" : "OUTSIDE");
	if (b->seg_err[0])
		printf("# no segment: %s\n", b->seg_err);
	else if (b->arena_err[0])
		printf("# no shared buffer: %s\n", b->arena_err);
	if (b->pl_pid)
		printf("# plain exporter: pid %d, no arena preload (arena %s), glibc malloc, "
		       "export level %s (%s)\n", (int)b->pl_pid,
		       b->pl.arena ? "ACTIVE" : "not active", level_name(b->pl.level),
		       b->pl.level_why);
	if (b->plain_err[0])
		printf("# no plain exporter: %s\n", b->plain_err);
	else if (b->conv_err[0])
		printf("# no conversion: %s\n", b->conv_err);
	for (int pi = 0; pi < NPROV && b->rdir_made; pi++)
		if (b->rp[pi].err[0])
			printf("# remote %s: %s\n", rprov[pi], b->rp[pi].err);
		else
			printf("# remote %s: importer pid %d (node 2, provider %s) and its exporter "
			       "(node 1), XPMEM_RESOLVER=dir:%s\n", rprov[pi], (int)b->rp[pi].pid,
			       b->rp[pi].prov, b->rdir);
}

static void json_header(const struct opts *o, const struct bench *b)
{
	char ref[32];
	ref_version(ref, sizeof(ref));
	printf("{\n  \"tool\": \"xpmem-bench\",\n  \"version\": ");
	json_str(uxpmem_version_string());
	printf(",\n  \"reference_version\": ");
	json_str(ref);
	printf(",\n  \"transport\": {\"importer\": ");
	json_str(importer_transport());
	printf(", \"exporter\": ");
	json_str(b->h.transport);
	printf(", \"XPMEM_TRANSPORT\": ");
	json_str(o->transport ? o->transport : "auto");
	printf("},\n  \"exporter\": {\"pid\": %d, \"ld_preload\": ", (int)b->peer);
	json_str(b->preload);
	printf(", \"preload_source\": ");
	json_str(b->preload_src);
	printf(", \"arena_active\": %s},\n", b->h.arena ? "true" : "false");
	printf("  \"plain_exporter\": ");
	if (b->pl_pid) {
		printf("{\"pid\": %d, \"arena_active\": %s, \"export_level\": ", (int)b->pl_pid,
		       b->pl.arena ? "true" : "false");
		json_str(level_name(b->pl.level));
		printf(", \"export_level_why\": ");
		json_str(b->pl.level_why);
		printf("},\n");
	} else {
		printf("null,\n");
	}
	printf("  \"segment_error\": ");
	json_str(b->seg_err);
	printf(",\n  \"arena_error\": ");
	json_str(b->arena_err);
	printf(",\n  \"plain_error\": ");
	json_str(b->plain_err);
	printf(",\n  \"convert_error\": ");
	json_str(b->conv_err);
	printf(",\n  \"remote\": [");
	for (int pi = 0; pi < NPROV && b->rdir_made; pi++) {
		printf("%s{\"FI_PROVIDER\": ", pi ? ", " : "");
		json_str(rprov[pi]);
		printf(", \"provider\": ");
		json_str(b->rp[pi].prov);
		printf(", \"error\": ");
		json_str(b->rp[pi].err);
		printf("}");
	}
	printf("]");
	printf(",\n  \"repetitions\": %u,\n  \"warmup_repetitions\": 1,\n  \"tests\": [\n",
	       o->reps);
}

/* ---- exporter --------------------------------------------------------------------- */

static void hello_fail(struct hello *h, const char *what)
{
	h->err = errno;
	snprintf(h->what, sizeof(h->what), "exporter: %s: %s", what, strerror(h->err));
}

/* Is the buffer served from the preload's arena (i.e. shareable)? */
static void arena_check(struct hello *h)
{
	uxpmem_arena_query_v1_fn query;
	struct uxpmem_arena_v1 a;
	*(void **)&query = dlsym(RTLD_DEFAULT, UXPMEM_ARENA_QUERY_SYMBOL);
	if (!query || query(&a) != 0)
		return;
	h->arena = 1;
	h->arena_base = a.base;
	h->arena_size = a.size;
	h->in_arena = h->buf >= a.base && h->buf + h->size <= a.base + a.size;
}

/* Export like UCX (whole address space, 0600) and fall back to the buffer
 * alone if the transport refuses that. */
static void exporter_setup(struct hello *h, size_t size)
{
	void *buf = NULL;
	const char *t = uxpmem_transport_name();
	snprintf(h->transport, sizeof(h->transport), "%s", t ? t : "none");
	size = (size + PAGE - 1) & ~(PAGE - 1);
	if (posix_memalign(&buf, PAGE, size)) {
		errno = ENOMEM;
		hello_fail(h, "posix_memalign");
		return;
	}
	memset(buf, 0x5a, size);
	h->buf = (uintptr_t)buf;
	h->size = size;
	arena_check(h);
	h->segid = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (h->segid < 0) {
		h->segid = xpmem_make(buf, size, XPMEM_PERMIT_MODE, (void *)0600);
		h->seg_base = h->buf;
	}
	if (h->segid < 0)
		hello_fail(h, "xpmem_make");
}

/* The writer thread of CMD_FRESH: stores into every page of the buffer in
 * turn, as fast as it can, and records every time between two stores
 * longer than GAP_MIN (frozen by the conversion, or not scheduled). */
#define GAP_MIN 2.0      /* us */
#define MAXGAPS 65536
static struct writer {
	pthread_t th;
	char *buf;
	size_t size;
	bool mapped;             /* buf is a file mapping (munmap it), else malloc'ed */
	volatile int stop;
	volatile int started;    /* the first store is done */
	bool running;
	uint64_t writes;
	unsigned ngaps;
	struct gap {             /* times without a store longer than GAP_MIN */
		double from, to;
	} gaps[MAXGAPS];
} wr;

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	double last = now_us();
	uint64_t k = 0;

	size_t off = 0;
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		((volatile char *)w->buf)[off]++; /* byte 0 of a page; importers check byte 1 */
		double t = now_us();
		if (t - last > GAP_MIN && w->ngaps < MAXGAPS)
			w->gaps[w->ngaps++] = (struct gap){ last, t };
		last = t;
		if (!k++)
			__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
		off = off + PAGE < w->size ? off + PAGE : 0;
	}
	/* the time since the last store counts too: a writer that could not
	 * run at all (CPU contention) did not store either */
	if (w->ngaps < MAXGAPS)
		w->gaps[w->ngaps++] = (struct gap){ last, now_us() };
	w->writes = k;
	return NULL;
}

/* Stop the writer; its stall: the longest time without a store within
 * [from, to] (the importer's attach, us), clipped to it. */
static void writer_stop(struct answer *a, double from, double to)
{
	if (!wr.running)
		return;
	__atomic_store_n(&wr.stop, 1, __ATOMIC_RELAXED);
	pthread_join(wr.th, NULL);
	wr.running = false;
	for (unsigned i = 0; i < wr.ngaps; i++) {
		double lo = wr.gaps[i].from > from ? wr.gaps[i].from : from;
		double hi = wr.gaps[i].to < to ? wr.gaps[i].to : to;
		if (hi - lo > a->stall)
			a->stall = hi - lo;
	}
	a->writes = wr.writes;
	/* page i got writes/npages stores, one more if i < writes % npages:
	 * a store lost by the conversion shows here */
	size_t npages = (wr.size + PAGE - 1) / PAGE;
	for (size_t i = 0; i < npages; i++) {
		uint64_t n = wr.writes / npages + (i < wr.writes % npages);
		a->lost += (unsigned char)wr.buf[i * PAGE] != (unsigned char)(FILL + n);
	}
	if (wr.mapped)
		munmap(wr.buf, wr.size);
	else
		free(wr.buf);
	wr.buf = NULL;
}

/* Is [p, p+len) mapped from a memfd of the library's conversion (i.e. not
 * fresh private memory)?  From /proc/self/maps. */
static bool converted(const void *p, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool conv = false;
	uintptr_t a = (uintptr_t)p, b = a + len;
	while (f && !conv && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < b && a < hi &&
		    strstr(line, "memfd:"))
			conv = true;
	}
	if (f)
		fclose(f);
	return conv;
}

/* size bytes of a new unlinked temporary file, mapped private and
 * writable (the kind of mapping .data is); NULL with errno. */
static void *map_private_file(size_t size)
{
	char path[] = "/tmp/xpmem-bench.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	unlink(path);
	void *p = MAP_FAILED;
	if (ftruncate(fd, (off_t)size) == 0)
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	errno = e;
	return p == MAP_FAILED ? NULL : p;
}

/* Shared memory the way UCX's allocator makes it (ucx_info -m: sysv, posix):
 * nothing but the mapping keeps it alive.  NULL + errno on failure. */
static void *map_shared_memory(size_t size, int kind)
{
	if (kind == SHM_SYSV) {
		int id = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
		if (id < 0)
			return NULL;
		void *p = shmat(id, NULL, 0);
		int e = errno;
		shmctl(id, IPC_RMID, NULL);
		errno = e;
		return p == (void *)-1 ? NULL : p;
	}
	char name[64];
	snprintf(name, sizeof(name), "/xpmem-bench-%d", (int)getpid());
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	shm_unlink(name);
	void *p = ftruncate(fd, (off_t)size) < 0 ? MAP_FAILED
		: mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	errno = e;
	return p == MAP_FAILED ? NULL : p;
}

static void exporter_do(const struct hello *h, const struct cmd *c, struct answer *a)
{
	void *p;
	switch (c->op) {
	case CMD_FRESH: /* glibc malloc: a fresh mapping (see the mmap threshold) */
	case CMD_FRESH_FILE: /* a file mapped private and writable, as .data is */
		writer_stop(a, 0, 0);
		if (c->op == CMD_FRESH_FILE) {
			p = map_private_file(c->a);
			if (!p) {
				a->err = errno;
				break;
			}
		} else if (posix_memalign(&p, PAGE, c->a)) {
			a->err = ENOMEM;
			break;
		}
		if (converted(p, c->a)) { /* the test would measure no conversion */
			free(p);
			a->err = EEXIST;
			break;
		}
		memset(p, FILL, c->a);
		wr = (struct writer){ .buf = p, .size = c->a, .mapped = c->op == CMD_FRESH_FILE };
		a->err = pthread_create(&wr.th, NULL, writer_main, &wr);
		wr.running = a->err == 0;
		if (a->err && wr.mapped)
			munmap(p, c->a);
		else if (a->err)
			free(p);
		else /* the writer is storing before the importer attaches */
			while (!__atomic_load_n(&wr.started, __ATOMIC_ACQUIRE))
				sched_yield();
		a->addr = (uintptr_t)p;
		break;
	case CMD_FREE_FRESH:
		writer_stop(a, c->a / 1e3, c->b / 1e3);
		break;
	case CMD_MAP:
		p = mmap(NULL, c->a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			a->err = errno;
			break;
		}
		memset(p, FILL, c->a);
		a->addr = (uintptr_t)p;
		break;
	case CMD_MAP_SHM:
		p = map_shared_memory(c->a, (int)c->b);
		if (!p) {
			a->err = errno;
			break;
		}
		memset(p, FILL, c->a);
		a->addr = (uintptr_t)p;
		break;
	case CMD_UNMAP:
		a->t0 = now_us();
		if (munmap((void *)(uintptr_t)c->a, c->b) < 0)
			a->err = errno;
		a->t1 = now_us();
		break;
	case CMD_MAKE:
		if (!h->buf || c->a > h->size) {
			a->err = EINVAL;
			break;
		}
		a->segid = xpmem_make((void *)(uintptr_t)h->buf, c->a, XPMEM_PERMIT_MODE,
				      (void *)0600);
		a->addr = h->buf;
		if (a->segid < 0)
			a->err = errno;
		break;
	case CMD_REMOVE:
		a->t0 = now_us();
		if (xpmem_remove((xpmem_segid_t)c->a) < 0)
			a->err = errno;
		a->t1 = now_us();
		break;
	default:
		a->err = EINVAL;
	}
}

static int exporter_main(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	int cmd_fd = atoi(argv[2]), reply_fd = atoi(argv[3]);
	if (!strcmp(argv[5], "plain")) {
		/* every malloc of a page or more is a fresh mapping: not served
		 * from the top of the brk heap (trimmed at once), never reused */
		mallopt(M_MMAP_THRESHOLD, (int)PAGE);
		mallopt(M_TOP_PAD, 0);
		mallopt(M_TRIM_THRESHOLD, 0);
	}
	struct hello h = { 0 };
	exporter_setup(&h, strtoull(argv[4], NULL, 0));
	h.level = uxpmem_export_level(h.level_why, sizeof(h.level_why));
	if (h.level < 0)
		snprintf(h.level_why, sizeof(h.level_why), "%s", strerror(errno));
	if (write(reply_fd, &h, sizeof(h)) != sizeof(h))
		return 1;
	struct cmd c;
	struct answer a;
	/* The service thread serves the importer meanwhile. */
	while (read(cmd_fd, &c, sizeof(c)) == sizeof(c) && c.op != CMD_QUIT) {
		memset(&a, 0, sizeof(a));
		exporter_do(&h, &c, &a);
		if (write(reply_fd, &a, sizeof(a)) != sizeof(a))
			break;
	}
	writer_stop(&a, 0, 0);
	if (h.segid > 0)
		xpmem_remove(h.segid);
	return 0;
}

/* ---- importer: spawning the exporter ---------------------------------------------- */

static bool readable(const char *p)
{
	return p && *p && access(p, R_OK) == 0;
}

/* $XPMEM_ARENA_LIB, else installed, else build tree; NULL if none exists. */
static void choose_preload(struct bench *b)
{
	const char *env = getenv("XPMEM_ARENA_LIB");
	if (env && *env) {
		b->preload = env;
		b->preload_src = readable(env) ? "from XPMEM_ARENA_LIB" :
			"from XPMEM_ARENA_LIB, NOT readable";
		return;
	}
	if (readable(UXP_PKGLIBDIR "/" ARENA_LIB_NAME)) {
		b->preload = UXP_PKGLIBDIR "/" ARENA_LIB_NAME;
		b->preload_src = "installed";
		return;
	}
#ifdef UXP_ARENA_BUILD_LIB
	if (readable(UXP_ARENA_BUILD_LIB)) {
		b->preload = UXP_ARENA_BUILD_LIB;
		b->preload_src = "build tree";
		return;
	}
#endif
	b->preload = NULL;
	b->preload_src = "no " ARENA_LIB_NAME " found: set XPMEM_ARENA_LIB";
}

/* environ with LD_PRELOAD=arena[:old], or for the plain exporter without
 * an LD_PRELOAD that names the arena; built before fork (no malloc after). */
static char **exporter_env(const struct bench *b, bool plain)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	const char *old = getenv("LD_PRELOAD");
	size_t k = 0;
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool lp = !strncmp(environ[i], "LD_PRELOAD=", 11);
		if (!lp || (plain ? !strstr(environ[i], "uxpmem-arena") &&
			    !(b->preload && strstr(environ[i], b->preload)) : !b->preload))
			env[k++] = environ[i];
	}
	if (b->preload && !plain) {
		size_t len = strlen(b->preload) + (old ? strlen(old) : 0) + 16;
		char *v = malloc(len);
		if (!v)
			return NULL;
		snprintf(v, len, "LD_PRELOAD=%s%s%s", b->preload, old && *old ? ":" : "",
			 old ? old : "");
		env[k++] = v;
	}
	return env;
}

/* kind 0: the arena exporter, 1: the plain one, 2: a remote one (no
 * preload, buffer of b->maxsize). */
static int spawn_exporter(struct bench *b, int kind, pid_t *peer, int *cmd_fd, int *reply_fd)
{
	bool plain = kind != 0;
	int cmd[2], reply[2];
	char a_cmd[16], a_reply[16], a_size[32];
	char **env = exporter_env(b, plain);
	if (!env || pipe2(cmd, O_CLOEXEC) || pipe2(reply, O_CLOEXEC))
		return -errno;
	snprintf(a_cmd, sizeof(a_cmd), "%d", cmd[0]);
	snprintf(a_reply, sizeof(a_reply), "%d", reply[1]);
	snprintf(a_size, sizeof(a_size), "%zu", kind == 1 ? PAGE : b->maxsize);
	char *args[] = { "xpmem-bench", ROLE_ARG, a_cmd, a_reply, a_size,
			 kind == 1 ? "plain" : kind == 2 ? "remote" : "arena", NULL };
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fcntl(cmd[0], F_SETFD, 0);
		fcntl(reply[1], F_SETFD, 0);
		execve("/proc/self/exe", args, env);
		_exit(127);
	}
	close(cmd[0]);
	close(reply[1]);
	*peer = pid;
	*cmd_fd = cmd[1];
	*reply_fd = reply[0];
	return 0;
}

static void describe_exit(pid_t peer, char *status, size_t len)
{
	int st;
	if (waitpid(peer, &st, 0) != peer)
		snprintf(status, len, "unknown");
	else if (WIFSIGNALED(st))
		snprintf(status, len, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(status, len, "exited with status %d", WEXITSTATUS(st));
}

static void arena_verdict(struct bench *b)
{
	if (!b->h.arena)
		snprintf(b->arena_err, sizeof(b->arena_err),
			 "the exporter runs without the arena preload (LD_PRELOAD %s, %s)",
			 b->preload ? b->preload : "none", b->preload_src);
	else if (!b->h.in_arena)
		snprintf(b->arena_err, sizeof(b->arena_err),
			 "the exporter's buffer %#" PRIx64 " is outside its arena", b->h.buf);
}

/* Get and attach the whole buffer once: the cached attachment. */
static void importer_attach(struct bench *b)
{
	arena_verdict(b);
	if (b->h.err) {
		snprintf(b->seg_err, sizeof(b->seg_err), "%s", b->h.what);
		return;
	}
	b->apid = xpmem_get(b->h.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (b->apid < 0) {
		snprintf(b->seg_err, sizeof(b->seg_err), "importer: xpmem_get: %s",
			 strerror(errno));
		return;
	}
	b->have_apid = true;
	void *p = xpmem_attach(buf_addr(b, b->apid), b->h.size, NULL);
	if (p == (void *)-1) {
		if (!b->arena_err[0])
			snprintf(b->arena_err, sizeof(b->arena_err), "importer: xpmem_attach: %s",
				 strerror(errno));
		return;
	}
	b->att = p;
}

/* The plain exporter and a cached apid of its whole address space. */
static void start_plain(struct bench *b)
{
	int ret = spawn_exporter(b, 1, &b->pl_pid, &b->pl_cmd_fd, &b->pl_reply_fd);
	if (ret < 0) {
		b->pl_pid = 0;
		snprintf(b->plain_err, sizeof(b->plain_err), "cannot spawn the plain exporter: %s",
			 strerror(-ret));
		return;
	}
	if (read(b->pl_reply_fd, &b->pl, sizeof(b->pl)) != sizeof(b->pl)) {
		describe_exit(b->pl_pid, b->pl_status, sizeof(b->pl_status));
		snprintf(b->plain_err, sizeof(b->plain_err),
			 "the plain exporter %s before announcing its segment", b->pl_status);
		b->pl_pid = 0;
		return;
	}
	if (b->pl.err) {
		snprintf(b->plain_err, sizeof(b->plain_err), "plain %s", b->pl.what);
		return;
	}
	if (b->pl.seg_base != 0) {
		snprintf(b->plain_err, sizeof(b->plain_err),
			 "the plain exporter could not export its whole address space");
		return;
	}
	b->pl_apid = xpmem_get(b->pl.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (b->pl_apid < 0) {
		snprintf(b->plain_err, sizeof(b->plain_err), "importer: xpmem_get (plain): %s",
			 strerror(errno));
		return;
	}
	b->pl_have_apid = true;
	if (b->pl.arena)
		snprintf(b->conv_err, sizeof(b->conv_err),
			 "the plain exporter runs with the arena (LD_PRELOAD not cleared)");
	else if (b->pl.level < UXPMEM_EXPORT_USER)
		snprintf(b->conv_err, sizeof(b->conv_err),
			 "the plain exporter's export level is %s: %s", level_name(b->pl.level),
			 b->pl.level_why);
}

/* ---- importer: the remote pairs ----------------------------------------------------- */

/* Where the rdma plugin is: $XPMEM_PLUGIN_DIR, else installed, else the
 * build tree; NULL if none has it. */
static const char *plugin_dir(void)
{
	static char p[4300];
	const char *env = getenv("XPMEM_PLUGIN_DIR");
	const char *dirs[] = { env, UXP_PKGLIBDIR "/transports",
#ifdef UXP_RDMA_BUILD_DIR
			       UXP_RDMA_BUILD_DIR,
#endif
	};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(p, sizeof(p), "%s/libuxpmem-rdma.so", dirs[i]);
		if (readable(p))
			return dirs[i];
	}
	return NULL;
}

static bool env_key(const char *e, const char *key)
{
	size_t n = strlen(key);
	return !strncmp(e, key, n) && e[n] == '=';
}

/* The remote importer's environment: ours without the arena preload, with
 * the provider, the resolver, node 2 and the plugin's directory. */
static char **rimp_env(const struct bench *b, int pi, const char *plugins)
{
	static const char *const keys[] = { "FI_PROVIDER", "XPMEM_RESOLVER", "XPMEM_NODE_ID",
					    "XPMEM_PLUGIN_DIR", "XPMEM_RDMA_BACKEND" };
	char **base = exporter_env(b, true);
	size_t n = 0, k = 0;
	while (base && base[n])
		n++;
	char **env = base ? calloc(n + 8, sizeof(*env)) : NULL;
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool drop = false;
		for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
			drop |= env_key(base[i], keys[j]);
		if (!drop)
			env[k++] = base[i];
	}
	char *v[4];
	size_t len = strlen(b->rdir) + strlen(plugins) + 64;
	for (int i = 0; i < 4; i++)
		if (!(v[i] = malloc(len)))
			return NULL;
	if (is_ibverbs(rprov[pi]))
		snprintf(v[0], len, "XPMEM_RDMA_BACKEND=verbs");
	else
		snprintf(v[0], len, "FI_PROVIDER=%s", rprov[pi]);
	snprintf(v[1], len, "XPMEM_RESOLVER=dir:%s", b->rdir);
	snprintf(v[2], len, "XPMEM_NODE_ID=2");
	snprintf(v[3], len, "XPMEM_PLUGIN_DIR=%s", plugins);
	for (int i = 0; i < 4; i++)
		env[k++] = v[i];
	if (strstr(rprov[pi], "tcp") && !getenv("FI_TCP_IFACE"))
		env[k++] = "FI_TCP_IFACE=lo"; /* loopback only */
	free(base);
	return env;
}

static void start_remote_pair(struct bench *b, int pi, const char *plugins)
{
	struct rpair *rp = &b->rp[pi];
	int cmd[2], reply[2];
	char a_cmd[16], a_reply[16], a_size[32];
	char **env = rimp_env(b, pi, plugins);
	if (!env || pipe2(cmd, O_CLOEXEC) || pipe2(reply, O_CLOEXEC)) {
		snprintf(rp->err, sizeof(rp->err), "cannot spawn the remote importer: %s",
			 strerror(errno ? errno : ENOMEM));
		return;
	}
	snprintf(a_cmd, sizeof(a_cmd), "%d", cmd[0]);
	snprintf(a_reply, sizeof(a_reply), "%d", reply[1]);
	snprintf(a_size, sizeof(a_size), "%zu", b->rmaxsize);
	char *args[] = { "xpmem-bench", ROLE_RIMP, a_cmd, a_reply, a_size, NULL };
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(rp->err, sizeof(rp->err), "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fcntl(cmd[0], F_SETFD, 0);
		fcntl(reply[1], F_SETFD, 0);
		execve("/proc/self/exe", args, env);
		_exit(127);
	}
	close(cmd[0]);
	close(reply[1]);
	rp->pid = pid;
	rp->cmd_fd = cmd[1];
	rp->reply_fd = reply[0];
	struct rhello rh;
	int ret = full_read(rp->reply_fd, &rh, sizeof(rh), RCALL_TIMEOUT_MS);
	if (ret < 0) {
		close(rp->cmd_fd);
		describe_exit(pid, rp->status, sizeof(rp->status));
		rp->pid = 0;
		snprintf(rp->err, sizeof(rp->err), "%s: the remote importer %s", rprov[pi],
			 ret == -ETIMEDOUT ? "did not answer" : rp->status);
		return;
	}
	snprintf(rp->prov, sizeof(rp->prov), "%s", rh.prov);
	if (rh.err)
		snprintf(rp->err, sizeof(rp->err), "FI_PROVIDER=%s: %s", rprov[pi], rh.what);
}

static void start_remote(struct bench *b)
{
	const char *plugins = plugin_dir();
	char *tmp = getenv("TMPDIR");
	snprintf(b->rdir, sizeof(b->rdir), "%s/xpmem-bench-resolver.XXXXXX", tmp ? tmp : "/tmp");
	for (int pi = 0; pi < NPROV; pi++) {
		if (!plugins)
			snprintf(b->rp[pi].err, sizeof(b->rp[pi].err), "no libuxpmem-rdma.so (built "
				 "only with libfabric) in XPMEM_PLUGIN_DIR, %s/transports or the build "
				 "tree", UXP_PKGLIBDIR);
		else if (!b->rdir_made && !mkdtemp(b->rdir))
			snprintf(b->rp[pi].err, sizeof(b->rp[pi].err), "mkdtemp in %s: %s",
				 tmp ? tmp : "/tmp", strerror(errno));
		else {
			b->rdir_made = true;
			start_remote_pair(b, pi, plugins);
		}
	}
}

static int rm_tree(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void stop_remote(struct bench *b)
{
	for (int pi = 0; pi < NPROV; pi++)
		if (b->rp[pi].pid)
			quit_peer(b->rp[pi].pid, b->rp[pi].cmd_fd, b->rp[pi].status,
				  sizeof(b->rp[pi].status));
	if (b->rdir_made)
		nftw(b->rdir, rm_tree, 8, FTW_DEPTH | FTW_PHYS);
}

static int start(struct bench *b, bool plain, bool remote)
{
	choose_preload(b);
	/* Page-aligned like the exporter's buffer, so that memcpy and attach
	 * copy with the same relative alignment. */
	if (posix_memalign((void **)&b->src, PAGE, b->maxsize) ||
	    posix_memalign((void **)&b->dst, PAGE, b->maxsize))
		return -ENOMEM;
	memset(b->src, 0xa5, b->maxsize);
	memset(b->dst, 0, b->maxsize);
	int ret = spawn_exporter(b, 0, &b->peer, &b->cmd_fd, &b->reply_fd);
	if (ret < 0)
		return ret;
	if (read(b->reply_fd, &b->h, sizeof(b->h)) != sizeof(b->h)) {
		describe_exit(b->peer, b->peer_status, sizeof(b->peer_status));
		fprintf(stderr, "xpmem-bench: the exporter (LD_PRELOAD %s) %s before "
			"announcing its segment\n", b->preload ? b->preload : "none",
			b->peer_status);
		return -ECHILD;
	}
	importer_attach(b);
	if (plain)
		start_plain(b);
	else
		snprintf(b->plain_err, sizeof(b->plain_err), "no plain exporter");
	if (remote)
		start_remote(b);
	return 0;
}

static void quit_peer(pid_t pid, int cmd_fd, char *status, size_t len)
{
	struct cmd c = { .op = CMD_QUIT };
	if (write(cmd_fd, &c, sizeof(c)) != sizeof(c))
		kill(pid, SIGTERM);
	close(cmd_fd);
	describe_exit(pid, status, len);
}

static void stop(struct bench *b)
{
	if (b->att)
		xpmem_detach(b->att);
	if (b->have_apid)
		xpmem_release(b->apid);
	if (b->pl_have_apid)
		xpmem_release(b->pl_apid);
	quit_peer(b->peer, b->cmd_fd, b->peer_status, sizeof(b->peer_status));
	if (b->pl_pid)
		quit_peer(b->pl_pid, b->pl_cmd_fd, b->pl_status, sizeof(b->pl_status));
	stop_remote(b);
}

/* ---- options ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: xpmem-bench [options]\n"
		"Spawn an exporter peer (with the arena preload) and measure, side by side:\n"
		"copy bandwidth through an attachment vs memcpy and process_vm_readv, and\n"
		"attach latencies; tests of memory outside the arena (conversion, munmap,\n"
		"invalidation) spawn a second, plain exporter without the preload; the remote\n"
		"tests (r*) a pair of processes per libfabric provider (tcp;ofi_rxm, shm) joined\n"
		"on loopback by the rdma plugin, next to the provider's raw fi_read/fi_write.\n"
		"  -t, --tests=T[,T]       tests to run (default: all):\n");
	for (size_t i = 0; i < NTESTS; i++)
		fprintf(f, "                            %-12s %s%s%s%s\n", tests[i].name,
			tests[i].title, ncols(&tests[i]) ? "" : " (n/a: ",
			ncols(&tests[i]) ? "" : tests[i].na ? tests[i].na : "not implemented",
			ncols(&tests[i]) ? "" : ")");
	fprintf(f,
		"  -s, --sizes=S[,S]       sizes, k/m/g suffixes, for every test (default\n"
		"                          4k,64k,1m,64m; convert and convert-file 1m,16m,64m,\n"
		"                          munmap and fault 4k,64k,1m, lfcache 64k,1m,16m,\n"
		"                          shm 64k,1m,16m,64m, many 64m, revoke 4k,1m, rfault\n"
		"                          4k,64k,1m, rseq 1m,16m,64m, reager and rflush\n"
		"                          64k,1m,16m, rrevoke 4k)\n"
		"  -n, --iterations=N      iterations per repetition (default: per test and size)\n"
		"  -r, --repetitions=R     repetitions (default 5), after one warm-up\n"
		"  -T, --transport=NAME    set XPMEM_TRANSPORT for both peers\n"
		"  -j, --json              JSON output\n"
		"      --csv               CSV output\n"
		"  -q, --quiet             no progress line on stderr\n"
		"  -h, --help              this help\n"
		"The exporter preloads $XPMEM_ARENA_LIB, else %s/%s,\n"
		"else the build tree's library.\n", UXP_PKGLIBDIR, ARENA_LIB_NAME);
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "xpmem-bench: %s '%s'\n", what, arg);
	usage(stderr);
	return 2;
}

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v == 0 || v > (SIZE_MAX >> 1) >> shift)
		return false;
	*out = (size_t)(v << shift);
	return true;
}

static int parse_tests(struct opts *o, char *arg)
{
	o->ntests = 0;
	for (char *s, *p = strtok_r(arg, ",", &s); p; p = strtok_r(NULL, ",", &s)) {
		bool all = !strcmp(p, "all"), found = all;
		for (size_t i = 0; i < NTESTS; i++)
			if ((all || !strcmp(p, tests[i].name)) && o->ntests < MAXTESTS) {
				o->tests[o->ntests++] = &tests[i];
				found = true;
			}
		if (!found)
			return bad("unknown test", p);
	}
	return o->ntests ? 0 : bad("no test in", "");
}

static int parse_sizes(struct opts *o, char *arg)
{
	o->nsizes = 0;
	for (char *s, *p = strtok_r(arg, ",", &s); p; p = strtok_r(NULL, ",", &s)) {
		if (o->nsizes == MAXSIZES || !parse_size(p, &o->sizes[o->nsizes]))
			return bad("bad size", p);
		o->nsizes++;
	}
	return o->nsizes ? 0 : bad("no size in", "");
}

static int parse_count(const char *arg, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || v == 0 || v > 100000000 || *arg == '-')
		return bad("bad count", arg);
	*out = (unsigned)v;
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tests", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 's' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "repetitions", required_argument, NULL, 'r' },
		{ "transport", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char dflt_sizes[] = "4k,64k,1m,64m", dflt_tests[] = "all";
	int c, ret = 0;
	*o = (struct opts){ .reps = 5 };
	parse_sizes(o, dflt_sizes);
	parse_tests(o, dflt_tests);
	while (!ret && (c = getopt_long(argc, argv, "t:s:n:r:T:jqh", lo, NULL)) != -1) {
		switch (c) {
		case 't': ret = parse_tests(o, optarg); break;
		case 's': ret = parse_sizes(o, optarg); o->sizes_set = true; break;
		case 'n': ret = parse_count(optarg, &o->iters); break;
		case 'r': ret = parse_count(optarg, &o->reps); break;
		case 'T': o->transport = optarg; break;
		case 'j': o->fmt = FMT_JSON; break;
		case 'C': o->fmt = FMT_CSV; break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (!ret && optind < argc)
		ret = bad("unexpected argument", argv[optind]);
	return ret;
}

/* ---- main ----------------------------------------------------------------------------- */

/* The sizes test t runs at: -s, else its own default, else -s's default. */
static unsigned test_sizes(const struct opts *o, const struct test *t, size_t *sizes)
{
	struct opts own = { .nsizes = 0 };
	char buf[128];
	const struct opts *from = o;
	if (!o->sizes_set && t->sizes) {
		snprintf(buf, sizeof(buf), "%s", t->sizes);
		for (char *s, *p = strtok_r(buf, ",", &s); p && own.nsizes < MAXSIZES;
		     p = strtok_r(NULL, ",", &s))
			if (parse_size(p, &own.sizes[own.nsizes]))
				own.nsizes++;
		from = &own;
	}
	memcpy(sizes, from->sizes, from->nsizes * sizeof(*sizes));
	return from->nsizes;
}

static bool needs_plain(const struct test *t)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		if (t->cols[ci].need == NEED_PLAIN || t->cols[ci].need == NEED_CONVERT)
			return true;
	return false;
}

static bool needs_remote(const struct test *t)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		if (t->cols[ci].need == NEED_RTCP || t->cols[ci].need == NEED_RSHM)
			return true;
	return false;
}

/* Returns the number of failed cells. */
static unsigned run_test(const struct opts *o, const struct test *t, struct bench *b,
			 bool first)
{
	static struct row rows[MAXSIZES];
	size_t sizes[MAXSIZES];
	unsigned failed = 0, nrows = ncols(t) ? test_sizes(o, t, sizes) : 0;
	for (unsigned r = 0; r < nrows; r++) {
		rows[r] = (struct row){ .size = sizes[r] };
		rows[r].iters = o->iters ? o->iters : default_iters(t, sizes[r]);
		run_row(o, t, b, &rows[r]);
		for (unsigned ci = 0; ci < ncols(t); ci++)
			failed += rows[r].c[ci].err != 0;
	}
	progress_done(o);
	if (o->fmt == FMT_TEXT)
		text_test(t, rows, nrows);
	else if (o->fmt == FMT_JSON)
		json_test(t, rows, nrows, first);
	else
		csv_test(t, rows, nrows);
	fflush(stdout);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], ROLE_ARG))
		return exporter_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], ROLE_RIMP))
		return rimp_main(argc, argv);

	if (remote_setup() < 0)
		return 2;
	struct opts o;
	int ret = parse_opts(&o, argc, argv);
	if (ret)
		return ret == 1 ? 0 : ret;
	if (o.transport)
		setenv("XPMEM_TRANSPORT", o.transport, 1);
	signal(SIGPIPE, SIG_IGN);
	guard_install();

	struct bench b = { .maxsize = PAGE, .qfd = -1, .rmaxsize = 2 * MiB };
	bool plain = false, remote = false;
	sem_init(&watch.sem, 0, 0);
	for (unsigned i = 0; i < o.ntests; i++) {
		size_t sizes[MAXSIZES];
		unsigned n = test_sizes(&o, o.tests[i], sizes);
		bool r = needs_remote(o.tests[i]);
		for (unsigned k = 0; k < n; k++) {
			size_t *m = r ? &b.rmaxsize : &b.maxsize;
			*m = sizes[k] > *m ? sizes[k] : *m;
		}
		plain |= needs_plain(o.tests[i]);
		remote |= r;
	}
	ret = start(&b, plain, remote);
	if (ret < 0) {
		if (ret != -ECHILD)
			fprintf(stderr, "xpmem-bench: cannot start: %s\n", strerror(-ret));
		return 1;
	}

	unsigned failed = 0;
	if (o.fmt == FMT_TEXT)
		text_header(&o, &b);
	else if (o.fmt == FMT_JSON)
		json_header(&o, &b);
	else
		printf("test,size,iterations,metric,unit,status,median,p10,p90,min,max,samples,p99\n");
	for (unsigned i = 0; i < o.ntests; i++)
		failed += run_test(&o, o.tests[i], &b, i == 0);
	if (o.fmt == FMT_JSON)
		printf("\n  ]\n}\n");
	stop(&b);
	if (failed)
		fprintf(stderr, "xpmem-bench: %u measurement(s) failed (exporter %s%s%s)\n", failed,
			b.peer_status, b.pl_pid ? ", plain exporter " : "",
			b.pl_pid ? b.pl_status : "");
	return failed ? 1 : 0;
}
