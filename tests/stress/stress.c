/* stress.c - fault and load test of the shm transport.
 *
 * The orchestrator (this program without arguments) runs N processes
 * (UXP_STRESS_PROCS, default 16) of itself ("--child SLOT", with the arena
 * preload) for UXP_STRESS_SECONDS (default 20), SIGKILLs random ones and
 * respawns them; children also exit on their own.  Each child is exporter
 * and importer at once, with 2-4 worker threads (which exit and are
 * replaced at random) doing random operations:
 *
 *   exporter: seqlock-versioned, checksummed buffers (header: seq, gen,
 *     owner, token, len, csum; payload derived from gen+token), two in a
 *     whole-address-space segment, two in their own partial segments;
 *     writes, and remove + re-make (partial ones with a new allocation);
 *   importer: get (RDWR or RDONLY) a random published buffer of another
 *     process, a per-apid revocation callback (plus the default one) and
 *     the fd form (uxpmem_revoke_fd), attach, read and validate, detach,
 *     re-attach, release.
 *
 * Everything shared goes through a board (a memfd all processes map):
 * each process's published buffers (segid, address, token, last committed
 * generation, state) and its state.  Exporters mark a segment REMOVING
 * before xpmem_remove, the orchestrator marks a process KILLING before
 * SIGKILL, a child marks itself EXITING before exit: so whenever an
 * importer sees a segment "live" after an operation, nothing had started
 * to take it away.  Invariants (failures, never timing):
 *   - a consistent seqlock read of a live segment validates (owner, token,
 *     checksum) and is not stale: gen >= the committed generation the
 *     exporter published before the read, and never goes backwards;
 *   - no SIGBUS, get or attach failure on a live segment; detach and
 *     release always succeed;
 *   - each held apid whose segment went away gets exactly one event per
 *     registration (callback, fd queue), with a matching segid and reason,
 *     and touching its attachment after them raises SIGBUS; no event for a
 *     live segment, none for an apid released while its segment was live,
 *     none for unknown apids;
 *   - no hang: every child ends (global alarms, bounded waits), no child
 *     dies unless killed;
 *   - processes alive from start to end (two are never killed): at 30% of
 *     the run and at the end, all imports released, non-socket descriptors,
 *     mappings and VmRSS do not grow (bounded), sockets stay bounded by the
 *     number of peers.
 * Prints the seed (UXP_STRESS_SEED) and a summary; exit 0, 1 (failures) or
 * 99 (setup error).  Only the public API (<xpmem.h>, <uxpmem.h>). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "testutil.h"

#define PAGE 4096UL
#define MAXSLOTS 64
#define NBUF 4       /* buffers per process: 0,1 whole-AS segment; 2,3 partial */
#define MAXIMP 1024  /* import records per process */
#define MAXTHR 4
#define MAXPAY (16 * PAGE)
#define FAILLOG 48
#define DOOM_MS 8000 /* how long an importer waits for the events of a gone segment */
#define GRACE_MS 200 /* then how long it watches for duplicates before releasing */

enum { S_EMPTY, S_STARTING, S_LIVE, S_EXITING, S_KILLING, S_DEAD };
enum { E_NONE, E_LIVE, E_REMOVING, E_REMOVED };
enum {
	OP_GET, OP_GETFAIL, OP_ATTACH, OP_READ, OP_READSKIP, OP_DETACH, OP_RELEASE, OP_WRITE,
	OP_REMAKE, OP_SIGBUS, OP_STALEDEAD, OP_THREXIT, NOPS
};
static const char *const opname[NOPS] = {
	"get", "get-failed(gone)", "attach", "read-ok", "read-skipped(busy)", "detach", "release",
	"write", "remove+remake", "sigbus(gone)", "invalid(gone)", "thread-exit",
};
enum { EV_EXPECTED, EV_CB, EV_FD, EV_REMOVED, EV_EXITED, EV_ERROR, EV_PROBED, EV_UNMATCHED, NEV };
static const char *const evname[NEV] = {
	"expected(per registration)", "callback", "fd", "reason REMOVED", "reason EXITED",
	"reason ERROR", "sigbus-after-event", "before-record",
};

struct bhdr { /* head of every exported buffer */
	uint64_t seq, gen, owner, token, len, csum, pad[2];
};

struct pub { /* one published buffer, written under its seqlock ver */
	uint64_t ver;
	int64_t segid;
	uint64_t addr, size, token;
	int whole, state;
	uint64_t committed; /* last generation fully written (stored outside ver) */
};

struct slot {
	int state, pid, immune;
	uint32_t inc;
	struct pub pub[NBUF];
	int base_done, final_done;
	long base[4], fin[4]; /* non-socket fds, sockets, mappings, VmRSS kB */
};

struct board {
	uint64_t seed;
	int nslots, seconds, phase; /* phase 0 run, 1 quiesce, 2 stop */
	long long t0_ms;
	long ops[NOPS], ev[NEV];
	long kills, exits, spawns, failures, nfail;
	char faillog[FAILLOG][200];
	struct slot slot[MAXSLOTS];
};

static struct board *B;
static int me = -1; /* slot of this child, -1 in the orchestrator */
static uint32_t my_inc;

#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define ADD(x, v) __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	int n = me >= 0 ? snprintf(msg, sizeof(msg), "[slot %d inc %u pid %d] ", me, my_inc, (int)getpid())
			: snprintf(msg, sizeof(msg), "[orchestrator] ");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "stress: FAIL %s\n", msg);
	ADD(B->failures, 1);
	long i = ADD(B->nfail, 1);
	if (i < FAILLOG)
		memcpy(B->faillog[i], msg, sizeof(msg));
}

/* ---- random numbers (per thread) ---- */
static __thread uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t x = rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}
static unsigned rndn(unsigned n)
{
	return n ? (unsigned)(rnd() % n) : 0;
}
static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t x = a * 0x9E3779B97F4A7C15ULL ^ (b + 1) * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	x *= 0x94D049BB133111EBULL;
	return x ^ (x >> 29);
}

/* ---- faults: SIGBUS/SIGSEGV while probing jump back ---- */
static __thread sigjmp_buf probe_env;
static __thread volatile int probing;

static void on_fault(int sig)
{
	if (probing) {
		probing = 0;
		siglongjmp(probe_env, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read one byte at p; 0 or the signal. */
static int probe_byte(const volatile unsigned char *p)
{
	int sig = sigsetjmp(probe_env, 1);
	if (sig == 0) {
		probing = 1;
		(void)*p;
		probing = 0;
	}
	return sig;
}

/* ---- board: published buffers ---- */
static void pub_begin(struct pub *p)
{
	ST(p->ver, p->ver + 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
static void pub_end(struct pub *p)
{
	ST(p->ver, p->ver + 1);
}
static int pub_read(int slot, int i, struct pub *out)
{
	struct pub *p = &B->slot[slot].pub[i];
	for (int t = 0; t < 1000; t++) {
		uint64_t v1 = LD(p->ver);
		if (v1 & 1) {
			sched_yield();
			continue;
		}
		out->segid = __atomic_load_n(&p->segid, __ATOMIC_RELAXED);
		out->addr = __atomic_load_n(&p->addr, __ATOMIC_RELAXED);
		out->size = __atomic_load_n(&p->size, __ATOMIC_RELAXED);
		out->token = __atomic_load_n(&p->token, __ATOMIC_RELAXED);
		out->whole = __atomic_load_n(&p->whole, __ATOMIC_RELAXED);
		out->state = __atomic_load_n(&p->state, __ATOMIC_RELAXED);
		out->committed = __atomic_load_n(&p->committed, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&p->ver, __ATOMIC_RELAXED) == v1)
			return 1;
	}
	return 0;
}

/* Nothing has started to take segment segid (buffer i of slot/inc) away. */
static int seg_live(int slot, uint32_t inc, int i, int64_t segid)
{
	struct slot *s = &B->slot[slot];
	struct pub p;
	if (LD(s->state) != S_LIVE || LD(s->inc) != inc)
		return 0;
	if (!pub_read(slot, i, &p))
		return 1; /* cannot tell: count it live (only makes checks laxer) */
	return p.segid == segid && p.state == E_LIVE && LD(s->state) == S_LIVE;
}

/* ======================= child: exporter side ======================= */
static struct bhdr *bufs[NBUF];
static pthread_mutex_t bm[NBUF] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
				    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t xm = PTHREAD_MUTEX_INITIALIZER; /* remake */
static int64_t whole_seg;

static uint64_t payload_csum(const uint64_t *w, size_t n, uint64_t gen, uint64_t token)
{
	uint64_t c = mix(gen, token);
	for (size_t i = 0; i < n; i++)
		c = (c ^ w[i]) * 0x100000001B3ULL;
	return c;
}

/* One seqlock write of buffer i (caller holds bm[i]). */
static void buf_write(int i)
{
	struct bhdr *h = bufs[i];
	uint64_t s = h->seq;
	__atomic_store_n(&h->seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint64_t gen = h->gen + 1, n = h->len / 8;
	volatile uint64_t *w = (volatile uint64_t *)(h + 1);
	for (uint64_t k = 0; k < n; k++)
		w[k] = mix(gen ^ h->token, k);
	h->csum = payload_csum((const uint64_t *)(h + 1), n, gen, h->token);
	h->gen = gen;
	__atomic_store_n(&h->seq, s + 2, __ATOMIC_RELEASE);
	ST(B->slot[me].pub[i].committed, gen);
}

static struct bhdr *buf_new(int i, size_t size)
{
	void *m = NULL;
	if (posix_memalign(&m, PAGE, size))
		return NULL;
	struct bhdr *h = m;
	memset(h, 0, sizeof(*h));
	h->owner = (uint64_t)me << 32 | my_inc;
	h->token = mix(rnd(), (uint64_t)i) | 1;
	h->len = size - sizeof(*h);
	bufs[i] = h;
	buf_write(i);
	return h;
}

static void publish(int i, int64_t segid, int whole, int state)
{
	struct pub *p = &B->slot[me].pub[i];
	pub_begin(p);
	p->segid = segid;
	p->addr = (uint64_t)(uintptr_t)bufs[i];
	p->size = bufs[i]->len + sizeof(struct bhdr);
	p->token = bufs[i]->token;
	p->whole = whole;
	p->state = state;
	p->committed = bufs[i]->gen;
	pub_end(p);
}

static void set_state(int i, int state)
{
	struct pub *p = &B->slot[me].pub[i];
	pub_begin(p);
	p->state = state;
	pub_end(p);
}

static int64_t make_whole(void)
{
	int64_t s = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0666);
	if (s == -1)
		fail("make(0, MAXADDR): errno %d", errno);
	return s;
}

static int64_t make_part(int i)
{
	int64_t s = xpmem_make(bufs[i], bufs[i]->len + sizeof(struct bhdr), XPMEM_PERMIT_MODE, (void *)0666);
	if (s == -1)
		fail("make(buffer %d): errno %d", i, errno);
	return s;
}

static void op_write(void)
{
	int i = (int)rndn(NBUF);
	pthread_mutex_lock(&bm[i]);
	buf_write(i);
	pthread_mutex_unlock(&bm[i]);
	ADD(B->ops[OP_WRITE], 1);
}

static void op_remake(void)
{
	int i = (int)rndn(3) + 1; /* 1: the whole segment, 2, 3: partial */
	pthread_mutex_lock(&xm);
	if (i == 1) {
		set_state(0, E_REMOVING);
		set_state(1, E_REMOVING);
		if (xpmem_remove(whole_seg))
			fail("remove(whole %#llx): errno %d", (unsigned long long)whole_seg, errno);
		set_state(0, E_REMOVED);
		set_state(1, E_REMOVED);
		whole_seg = make_whole();
		publish(0, whole_seg, 1, E_LIVE);
		publish(1, whole_seg, 1, E_LIVE);
	} else {
		pthread_mutex_lock(&bm[i]);
		struct pub *p = &B->slot[me].pub[i];
		set_state(i, E_REMOVING);
		if (xpmem_remove(p->segid))
			fail("remove(%#llx): errno %d", (unsigned long long)p->segid, errno);
		set_state(i, E_REMOVED);
		free(bufs[i]);
		if (!buf_new(i, (1 + rndn(16)) * PAGE)) {
			fail("posix_memalign: out of memory");
			_exit(3);
		}
		publish(i, make_part(i), 0, E_LIVE);
		pthread_mutex_unlock(&bm[i]);
	}
	pthread_mutex_unlock(&xm);
	ADD(B->ops[OP_REMAKE], 1);
}

/* ======================= child: importer side ======================= */
enum { I_FREE, I_HELD, I_RELEASING, I_RELEASED };

struct imp {
	int state, busy;
	int64_t apid, segid;
	int xslot, pubi, whole;
	uint32_t xinc;
	uint64_t token, off, size, lastgen;
	void *addr;
	int doomed, probed, live_release; /* released while its segment was live */
	long long doomed_ms, evdone_ms, released_ms;
	int cb, fd, reason_cb, reason_fd;
};

static struct imp imps[MAXIMP];
static pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int64_t apid, segid;
	int cb, fd, reason;
} unmatched[256];
static int nunmatched;

static struct imp *imp_find(int64_t apid)
{
	for (int i = 0; i < MAXIMP; i++)
		if (imps[i].state != I_FREE && imps[i].apid == apid)
			return &imps[i];
	return NULL;
}

static int imp_live(const struct imp *e)
{
	return seg_live(e->xslot, e->xinc, e->pubi, e->segid);
}

/* Count one event of kind (0 callback, 1 fd); caller holds tm. */
static void count_event(struct imp *e, int fd, int reason, int64_t segid)
{
	if (fd) {
		e->fd++;
		e->reason_fd = e->reason_fd * 10 + reason;
	} else {
		e->cb++;
		e->reason_cb = e->reason_cb * 10 + reason;
	}
	ADD(B->ev[fd ? EV_FD : EV_CB], 1);
	if (segid != e->segid)
		fail("event of apid %#llx carries segid %#llx, its segment is %#llx",
		     (unsigned long long)e->apid, (unsigned long long)segid, (unsigned long long)e->segid);
	if (e->live_release)
		fail("%s event (reason %d) for apid %#llx, released while its segment was live",
		     fd ? "fd" : "callback", reason, (unsigned long long)e->apid);
	else if (!e->doomed && imp_live(e))
		fail("%s event (reason %d) for apid %#llx of segment %#llx (slot %d inc %u) that is live",
		     fd ? "fd" : "callback", reason, (unsigned long long)e->apid,
		     (unsigned long long)e->segid, e->xslot, e->xinc);
	if (reason != UXPMEM_REVOKE_REMOVED && reason != UXPMEM_REVOKE_EXITED &&
	    reason != UXPMEM_REVOKE_ERROR)
		fail("event of apid %#llx: reason %d", (unsigned long long)e->apid, reason);
	/* the reason must match what happened when the exporter still runs */
	if (reason != UXPMEM_REVOKE_REMOVED && LD(B->slot[e->xslot].state) == S_LIVE &&
	    LD(B->slot[e->xslot].inc) == e->xinc)
		fail("event of apid %#llx: reason %d but its exporter (slot %d) is alive",
		     (unsigned long long)e->apid, reason, e->xslot);
	if (fd)
		ADD(B->ev[reason == UXPMEM_REVOKE_REMOVED ? EV_REMOVED :
			  reason == UXPMEM_REVOKE_EXITED ? EV_EXITED : EV_ERROR], 1);
}

static void note_event(const struct uxpmem_revoke_event *ev, int fd)
{
	pthread_mutex_lock(&tm);
	struct imp *e = imp_find(ev->apid);
	if (e) {
		count_event(e, fd, ev->reason, ev->segid);
	} else if (nunmatched < 256) {
		/* the get returned, the record is not in the table yet */
		unmatched[nunmatched].apid = ev->apid;
		unmatched[nunmatched].segid = ev->segid;
		unmatched[nunmatched].cb = !fd;
		unmatched[nunmatched].fd = fd;
		unmatched[nunmatched].reason = ev->reason;
		nunmatched++;
		ADD(B->ev[EV_UNMATCHED], 1);
	} else {
		fail("too many events of unknown apids");
	}
	pthread_mutex_unlock(&tm);
}

static void rv_cb(const struct uxpmem_revoke_event *ev, void *arg)
{
	(void)arg;
	note_event(ev, 0);
}

/* A new record for apid (busy, owned by the caller). */
static struct imp *imp_add(int64_t apid, int slot, uint32_t inc, int pubi, const struct pub *p)
{
	pthread_mutex_lock(&tm);
	struct imp *e = NULL;
	long long oldest = 0;
	for (int i = 0; i < MAXIMP; i++) {
		if (imps[i].state == I_FREE) {
			e = &imps[i];
			break;
		}
		if (imps[i].state == I_RELEASED && !imps[i].busy && (!e || imps[i].released_ms < oldest)) {
			e = &imps[i];
			oldest = imps[i].released_ms;
		}
	}
	if (!e) {
		pthread_mutex_unlock(&tm);
		return NULL;
	}
	memset(e, 0, sizeof(*e));
	e->state = I_HELD;
	e->busy = 1;
	e->apid = apid;
	e->segid = p->segid;
	e->xslot = slot;
	e->xinc = inc;
	e->pubi = pubi;
	e->whole = p->whole;
	e->token = p->token;
	e->off = p->whole ? p->addr : 0;
	e->size = p->size;
	for (int i = 0; i < nunmatched; i++)
		if (unmatched[i].apid == apid) {
			count_event(e, unmatched[i].fd, unmatched[i].reason, unmatched[i].segid);
			unmatched[i] = unmatched[--nunmatched];
			i--;
		}
	pthread_mutex_unlock(&tm);
	return e;
}

/* Pick a record matching want (1 attached, 0 held unattached, -1 any held),
 * not doomed, and mark it busy. */
static struct imp *imp_pick(int want)
{
	pthread_mutex_lock(&tm);
	int start = (int)rndn(MAXIMP);
	for (int k = 0; k < MAXIMP; k++) {
		struct imp *e = &imps[(start + k) % MAXIMP];
		if (e->state != I_HELD || e->busy || e->doomed)
			continue;
		if ((want == 1 && !e->addr) || (want == 0 && e->addr))
			continue;
		e->busy = 1;
		pthread_mutex_unlock(&tm);
		return e;
	}
	pthread_mutex_unlock(&tm);
	return NULL;
}

static void imp_unbusy(struct imp *e)
{
	pthread_mutex_lock(&tm);
	e->busy = 0;
	pthread_mutex_unlock(&tm);
}

/* Seqlock read of the attachment of e into w; returns 0 (consistent copy
 * in *h and w), 1 (writer busy: skipped) or the signal. */
static int seq_read(struct imp *e, struct bhdr *h, uint64_t *w)
{
	volatile struct bhdr *vh = e->addr;
	volatile uint64_t *vw = (volatile uint64_t *)(vh + 1);
	volatile int ret = 1;
	int sig = sigsetjmp(probe_env, 1);
	if (sig)
		return sig;
	probing = 1;
	for (int t = 0; t < 64; t++) {
		uint64_t s1 = __atomic_load_n(&vh->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		h->gen = vh->gen;
		h->owner = vh->owner;
		h->token = vh->token;
		h->len = vh->len;
		h->csum = vh->csum;
		size_t n = h->len <= e->size - sizeof(*h) ? h->len / 8 : 0;
		for (size_t k = 0; k < n; k++)
			w[k] = vw[k];
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&vh->seq, __ATOMIC_RELAXED) == s1) {
			h->seq = s1;
			ret = 0;
			break;
		}
	}
	probing = 0;
	return ret;
}

static __thread uint64_t *readbuf;

/* Read and validate the attachment of e (busy, attached). */
static void check_read(struct imp *e)
{
	struct pub p;
	uint64_t committed = 0;
	struct bhdr h;
	if (pub_read(e->xslot, e->pubi, &p) && p.segid == e->segid && p.token == e->token)
		committed = p.committed;
	int r = seq_read(e, &h, readbuf);
	if (r == 1) {
		ADD(B->ops[OP_READSKIP], 1);
		return;
	}
	if (r) {
		if (imp_live(e))
			fail("signal %d reading apid %#llx at %p (segment %#llx of slot %d, live)", r,
			     (unsigned long long)e->apid, e->addr, (unsigned long long)e->segid, e->xslot);
		else
			ADD(B->ops[OP_SIGBUS], 1);
		return;
	}
	const char *bad = NULL;
	uint64_t len = e->size - sizeof(h);
	if (h.owner != ((uint64_t)e->xslot << 32 | e->xinc))
		bad = "owner";
	else if (h.token != e->token)
		bad = "token";
	else if (h.len != len)
		bad = "length";
	else if (h.csum != payload_csum(readbuf, len / 8, h.gen, h.token))
		bad = "checksum";
	else if (h.gen < committed)
		bad = "stale (generation older than committed)";
	else if (h.gen < e->lastgen)
		bad = "stale (generation went backwards)";
	if (!bad) {
		e->lastgen = h.gen;
		ADD(B->ops[OP_READ], 1);
	} else if (imp_live(e)) {
		fail("bad data through apid %#llx (slot %d segment %#llx %s off %#llx): %s; gen %llu "
		     "committed %llu last %llu",
		     (unsigned long long)e->apid, e->xslot, (unsigned long long)e->segid,
		     e->whole ? "whole" : "partial", (unsigned long long)e->off, bad,
		     (unsigned long long)h.gen, (unsigned long long)committed,
		     (unsigned long long)e->lastgen);
	} else {
		ADD(B->ops[OP_STALEDEAD], 1);
	}
}

static int do_attach(struct imp *e)
{
	struct xpmem_addr a = { e->apid, (off_t)e->off };
	void *m = xpmem_attach(a, e->size, NULL);
	if (m == (void *)-1) {
		if (imp_live(e))
			fail("attach(apid %#llx, %#llx, %#llx) of a live segment: errno %d",
			     (unsigned long long)e->apid, (unsigned long long)e->off,
			     (unsigned long long)e->size, errno);
		return -1;
	}
	e->addr = m;
	ADD(B->ops[OP_ATTACH], 1);
	return 0;
}

static void do_detach(struct imp *e)
{
	if (!e->addr)
		return;
	if (xpmem_detach(e->addr))
		fail("detach(%p) of apid %#llx: errno %d", e->addr, (unsigned long long)e->apid, errno);
	e->addr = NULL;
	ADD(B->ops[OP_DETACH], 1);
}

/* Detach and release e (busy); returns with e released and not busy. */
static void do_release(struct imp *e)
{
	do_detach(e);
	pthread_mutex_lock(&tm);
	e->state = I_RELEASING;
	pthread_mutex_unlock(&tm);
	if (xpmem_release(e->apid))
		fail("release(apid %#llx): errno %d", (unsigned long long)e->apid, errno);
	int live = !e->doomed && imp_live(e);
	pthread_mutex_lock(&tm);
	e->state = I_RELEASED;
	e->released_ms = now_ms();
	if (live && e->cb + e->fd == 0)
		e->live_release = 1;
	e->busy = 0;
	pthread_mutex_unlock(&tm);
	ADD(B->ops[OP_RELEASE], 1);
}

static void op_get(void)
{
	int k = (int)rndn((unsigned)B->nslots), i = (int)rndn(NBUF);
	struct slot *s = &B->slot[k];
	struct pub p;
	if (k == me || LD(s->state) != S_LIVE)
		return;
	uint32_t inc = LD(s->inc);
	if (!pub_read(k, i, &p) || p.state != E_LIVE)
		return;
	int flags = rndn(2) ? XPMEM_RDWR : XPMEM_RDONLY;
	int64_t apid = xpmem_get(p.segid, flags, XPMEM_PERMIT_MODE, NULL);
	if (apid == -1) {
		int err = errno;
		if (seg_live(k, inc, i, p.segid))
			fail("get(%#llx) of a live segment (slot %d): errno %d", (unsigned long long)p.segid, k, err);
		else
			ADD(B->ops[OP_GETFAIL], 1);
		return;
	}
	ADD(B->ops[OP_GET], 1);
	if (uxpmem_revoke_handler(apid, rv_cb, NULL))
		fail("uxpmem_revoke_handler(%#llx): errno %d", (unsigned long long)apid, errno);
	struct imp *e = imp_add(apid, k, inc, i, &p);
	if (!e) {
		if (xpmem_release(apid))
			fail("release(apid %#llx): errno %d", (unsigned long long)apid, errno);
		return;
	}
	if (do_attach(e) == 0)
		check_read(e);
	imp_unbusy(e);
}

static void op_read(void)
{
	struct imp *e = imp_pick(1);
	if (e) {
		check_read(e);
		imp_unbusy(e);
	}
}

static void op_attach(void)
{
	struct imp *e = imp_pick(0);
	if (e) {
		if (do_attach(e) == 0)
			check_read(e);
		imp_unbusy(e);
	}
}

static void op_detach(void)
{
	struct imp *e = imp_pick(1);
	if (e) {
		do_detach(e);
		imp_unbusy(e);
	}
}

static void op_release(void)
{
	struct imp *e = imp_pick(-1);
	if (e)
		do_release(e);
}

/* Main thread: revocation bookkeeping of held records whose segment went
 * away.  all: also release every held record (quiesce).  Returns how many
 * doomed records still wait for events. */
static int doom_scan(int all)
{
	int pending = 0;
	long long now = now_ms();
	pthread_mutex_lock(&tm);
	for (int i = 0; i < MAXIMP; i++) {
		struct imp *e = &imps[i];
		if (e->state != I_HELD || e->busy)
			continue;
		if (!e->doomed && !imp_live(e)) {
			e->doomed = 1;
			e->doomed_ms = now;
			ADD(B->ev[EV_EXPECTED], 2);
		}
		if (!e->doomed) {
			if (all) {
				e->busy = 1;
				pthread_mutex_unlock(&tm);
				do_release(e);
				pthread_mutex_lock(&tm);
			}
			continue;
		}
		if (e->cb >= 1 && e->fd >= 1) {
			if (!e->evdone_ms)
				e->evdone_ms = now;
			if (e->addr && !e->probed) {
				int sig = probe_byte(e->addr);
				e->probed = 1;
				if (sig != SIGBUS)
					fail("touching apid %#llx at %p after its revocation events: %s %d",
					     (unsigned long long)e->apid, e->addr, sig ? "signal" : "no signal",
					     sig);
				else
					ADD(B->ev[EV_PROBED], 1);
			}
			if (now - e->evdone_ms < GRACE_MS) {
				pending++;
				continue;
			}
			if (e->cb != 1 || e->fd != 1)
				fail("apid %#llx (segment %#llx slot %d inc %u, state %d): %d callback and %d fd "
				     "events (reasons %d, %d), want 1 each",
				     (unsigned long long)e->apid, (unsigned long long)e->segid, e->xslot, e->xinc,
				     LD(B->slot[e->xslot].state), e->cb, e->fd, e->reason_cb, e->reason_fd);
		} else if (now - e->doomed_ms < DOOM_MS) {
			pending++;
			continue;
		} else {
			/* SIGBUS: revoked but the event was lost; none: never revoked */
			int sig = e->addr ? probe_byte(e->addr) : -1;
			fail("missing revocation event: apid %#llx segment %#llx (slot %d inc %u, state %d): "
			     "%d callback, %d fd events after %d ms; touching it: %s",
			     (unsigned long long)e->apid, (unsigned long long)e->segid, e->xslot, e->xinc,
			     LD(B->slot[e->xslot].state), e->cb, e->fd, DOOM_MS,
			     sig < 0 ? "not attached" : sig == SIGBUS ? "SIGBUS" : sig ? "other signal" :
			     "readable (not revoked)");
		}
		e->busy = 1;
		pthread_mutex_unlock(&tm);
		do_release(e);
		pthread_mutex_lock(&tm);
	}
	pthread_mutex_unlock(&tm);
	return pending;
}

static void drain_fd(int rfd, int ms)
{
	struct pollfd pfd = { rfd, POLLIN, 0 };
	struct uxpmem_revoke_event ev[16];
	if (poll(&pfd, 1, ms) <= 0)
		return;
	int n;
	while ((n = uxpmem_revoke_poll(ev, 16)) > 0)
		for (int i = 0; i < n; i++)
			note_event(&ev[i], 1);
	if (n < 0)
		fail("uxpmem_revoke_poll: errno %d", errno);
}

/* ---- workers ---- */
struct worker {
	pthread_t th;
	int running, done, id;
};
static struct worker workers[MAXTHR];
static int nworkers;
static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pc = PTHREAD_COND_INITIALIZER;
static int pause_req, paused, quit;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	rng = mix(B->seed, ((uint64_t)me << 40) ^ ((uint64_t)my_inc << 20) ^ (uint64_t)w->id) | 1;
	readbuf = malloc(MAXPAY);
	if (!readbuf) {
		fail("malloc: out of memory");
		_exit(3);
	}
	for (;;) {
		pthread_mutex_lock(&pm);
		if (pause_req && !quit) {
			paused++;
			pthread_cond_broadcast(&pc);
			while (pause_req && !quit)
				pthread_cond_wait(&pc, &pm);
			paused--;
		}
		int q = quit;
		pthread_mutex_unlock(&pm);
		if (q)
			break;
		unsigned r = rndn(1000);
		if (r < 330)
			op_read();
		else if (r < 530)
			op_write();
		else if (r < 680)
			op_get();
		else if (r < 760)
			op_attach();
		else if (r < 840)
			op_detach();
		else if (r < 960)
			op_release();
		else if (r < 998)
			op_remake();
		else if (rndn(4) == 0) {
			ADD(B->ops[OP_THREXIT], 1);
			break; /* replaced by the main thread */
		}
		if (rndn(3) == 0)
			sleep_us(rndn(800));
	}
	free(readbuf);
	pthread_mutex_lock(&pm);
	w->done = 1;
	pthread_mutex_unlock(&pm);
	return NULL;
}

static void start_worker(struct worker *w, int id)
{
	w->done = 0;
	w->id = id;
	w->running = pthread_create(&w->th, NULL, worker_main, w) == 0;
	if (!w->running)
		fail("pthread_create failed");
}

/* Pause the workers (bounded); 0 or -1. */
static int pause_workers(void)
{
	long long end = now_ms() + 15000;
	pthread_mutex_lock(&pm);
	pause_req = 1;
	for (;;) {
		int active = 0;
		for (int i = 0; i < nworkers; i++)
			active += workers[i].running && !workers[i].done;
		if (paused >= active)
			break;
		if (now_ms() > end) {
			pthread_mutex_unlock(&pm);
			fail("workers did not pause within 15 s (a library call hangs?)");
			return -1;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pc, &pm, &ts);
	}
	pthread_mutex_unlock(&pm);
	return 0;
}

static void resume_workers(void)
{
	pthread_mutex_lock(&pm);
	pause_req = 0;
	pthread_cond_broadcast(&pc);
	pthread_mutex_unlock(&pm);
}

/* non-socket fds, sockets, mappings, VmRSS kB */
static void measure(long *m)
{
	char path[300], link[128], line[256];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	m[0] = m[1] = m[2] = m[3] = 0;
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.' || atoi(d->d_name) == dirfd(dir))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		m[strncmp(link, "socket:", 7) == 0]++;
	}
	if (dir)
		closedir(dir);
	FILE *f = fopen("/proc/self/maps", "r");
	while (f && fgets(line, sizeof(line), f))
		m[2]++;
	if (f)
		fclose(f);
	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			m[3] = atol(line + 6);
	if (f)
		fclose(f);
}

/* Pause, settle the doomed records, release everything, measure into m. */
static int quiesce(int rfd, long *m)
{
	if (pause_workers())
		return -1;
	long long end = now_ms() + DOOM_MS + 1000;
	while (doom_scan(0) && now_ms() < end)
		drain_fd(rfd, 20);
	drain_fd(rfd, 0);
	doom_scan(1);
	measure(m);
	return 0;
}

static int child_main(int slot)
{
	me = slot;
	struct slot *s = &B->slot[me];
	my_inc = LD(s->inc);
	rng = mix(B->seed ^ 0x5A5A, ((uint64_t)me << 32) ^ my_inc) | 1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	long long t_end = B->t0_ms + B->seconds * 1000LL;
	long long left = t_end - now_ms();
	alarm((unsigned)((left > 0 ? left : 0) / 1000) + tu_guard_s(28)); /* SIGALRM kills a hung child */

	int rfd = uxpmem_revoke_fd();
	if (rfd < 0 || uxpmem_revoke_handler(0, rv_cb, NULL)) {
		fail("revocation setup: errno %d", errno);
		return 3;
	}
	for (int i = 0; i < NBUF; i++)
		if (!buf_new(i, (i < 2 ? 2 + rndn(3) : 1 + rndn(16)) * PAGE)) {
			fail("posix_memalign: out of memory");
			return 3;
		}
	whole_seg = make_whole();
	for (int i = 0; i < NBUF; i++)
		publish(i, i < 2 ? whole_seg : make_part(i), i < 2, E_LIVE);
	if (whole_seg == -1)
		return 3;
	/* the orchestrator may have marked us KILLING meanwhile */
	int st = S_STARTING;
	__atomic_compare_exchange_n(&s->state, &st, S_LIVE, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);

	nworkers = 2 + (int)rndn(3);
	for (int i = 0; i < nworkers; i++)
		start_worker(&workers[i], i);
	int next_id = nworkers;
	/* non-immune processes may exit by themselves */
	long long exit_at = !s->immune && rndn(3) == 0 ? now_ms() + 500 + rndn(6000) : 0;
	long long base_at = my_inc == 0 ? B->t0_ms + B->seconds * 300LL : 0;

	while (LD(B->phase) == 0) {
		drain_fd(rfd, 20);
		doom_scan(0);
		for (int i = 0; i < nworkers; i++) {
			pthread_mutex_lock(&pm);
			int done = workers[i].running && workers[i].done;
			pthread_mutex_unlock(&pm);
			if (done) {
				pthread_join(workers[i].th, NULL);
				start_worker(&workers[i], next_id++);
			}
		}
		if (base_at && now_ms() >= base_at) {
			base_at = 0;
			if (quiesce(rfd, s->base) == 0)
				ST(s->base_done, 1);
			resume_workers();
		}
		if (exit_at && now_ms() >= exit_at) {
			int live = S_LIVE; /* unless the orchestrator is killing us */
			exit_at = 0;
			if (LD(B->phase) == 0 &&
			    __atomic_compare_exchange_n(&s->state, &live, S_EXITING, 0, __ATOMIC_SEQ_CST,
							__ATOMIC_SEQ_CST))
				exit(0); /* other threads keep running: exit(), not _exit() */
		}
	}
	/* quiesce at the end: measure, then wait for the stop */
	if (quiesce(rfd, s->fin) == 0)
		ST(s->final_done, 1);
	while (LD(B->phase) < 2)
		drain_fd(rfd, 20);
	pthread_mutex_lock(&pm);
	quit = 1;
	pthread_cond_broadcast(&pc);
	pthread_mutex_unlock(&pm);
	for (int i = 0; i < nworkers; i++)
		if (workers[i].running)
			pthread_join(workers[i].th, NULL);
	/* everyone released: removing our segments revokes nothing */
	if (xpmem_remove(whole_seg))
		fail("final remove(whole): errno %d", errno);
	for (int i = 2; i < NBUF; i++)
		if (xpmem_remove(s->pub[i].segid))
			fail("final remove(%d): errno %d", i, errno);
	ST(s->state, S_EXITING);
	return 0;
}

/* ======================= orchestrator ======================= */
static const char *self_path;
static char arena_lib[1024];

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "stress: FAIL global time limit reached: killing every child\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	for (int i = 0; i < B->nslots; i++)
		if (B->slot[i].pid > 0)
			kill(B->slot[i].pid, SIGKILL);
	_exit(1);
}

static void spawn(int i)
{
	struct slot *s = &B->slot[i];
	ST(s->inc, s->inc + (s->state != S_EMPTY));
	ST(s->state, S_STARTING);
	pid_t pid = fork();
	if (pid == 0) {
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", i);
		setenv("LD_PRELOAD", arena_lib, 1);
		execl(self_path, self_path, "--child", arg, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		fail("fork: errno %d", errno);
		ST(s->state, S_DEAD);
		return;
	}
	ST(s->pid, (int)pid);
	ADD(B->spawns, 1);
}

/* Account for the end of slot i's process with status st. */
static void ended(int i, int st)
{
	struct slot *s = &B->slot[i];
	int state = LD(s->state);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && state == S_KILLING) {
		/* ours */
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && state == S_EXITING) {
		if (LD(B->phase) == 0)
			ADD(B->exits, 1);
	} else if (WIFSIGNALED(st)) {
		fail("slot %d inc %u pid %d died of signal %d%s (state %d)", i, s->inc, s->pid,
		     WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (hang: its time limit)" : "", state);
	} else {
		fail("slot %d inc %u pid %d exited with status %d (state %d)", i, s->inc, s->pid,
		     WEXITSTATUS(st), state);
	}
	ST(s->pid, 0);
	ST(s->state, S_DEAD);
}

static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (int i = 0; i < B->nslots; i++)
			if (B->slot[i].pid == pid)
				ended(i, st);
}

static long envnum(const char *name, long def)
{
	const char *v = getenv(name);
	return v && *v ? strtol(v, NULL, 0) : def;
}

int main(int argc, char **argv)
{
	tu_require_preload(); /* its peers run with the arena preload */
	if (argc == 3 && !strcmp(argv[1], "--child")) {
		int fd = (int)envnum("UXP_STRESS_BOARD_FD", -1);
		B = mmap(NULL, sizeof(*B), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (B == MAP_FAILED)
			return 3;
		close(fd);
		return child_main(atoi(argv[2]));
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	self_path = argv[0];
	if (!strchr(self_path, '/'))
		return fprintf(stderr, "stress: run me with a path\n"), 99;
	int fd = memfd_create("uxp-stress-board", 0); /* inherited by the children */
	if (fd < 0 || ftruncate(fd, sizeof(*B)))
		return perror("stress: memfd"), 99;
	B = mmap(NULL, sizeof(*B), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (B == MAP_FAILED)
		return perror("stress: mmap"), 99;
	char num[32];
	snprintf(num, sizeof(num), "%d", fd);
	setenv("UXP_STRESS_BOARD_FD", num, 1);
	setenv("XPMEM_TRANSPORT", "shm", 1);
	if (!getenv("XPMEM_ARENA_SIZE"))
		setenv("XPMEM_ARENA_SIZE", "1G", 1);
	signal(SIGPIPE, SIG_IGN);
	struct stat stb;
	tu_builddir_path("transports/shm/arena/.libs/libuxpmem-arena.so", arena_lib, sizeof(arena_lib));
	if (stat(arena_lib, &stb))
		return fprintf(stderr, "stress: arena preload %s is not built\n", arena_lib), 99;

	B->seed = (uint64_t)envnum("UXP_STRESS_SEED", (long)(time(NULL) ^ getpid()));
	B->seconds = (int)envnum("UXP_STRESS_SECONDS", 20);
	B->nslots = (int)envnum("UXP_STRESS_PROCS", 16);
	if (B->seconds < 2)
		B->seconds = 2;
	if (B->nslots < 2)
		B->nslots = 2;
	if (B->nslots > MAXSLOTS)
		B->nslots = MAXSLOTS;
	rng = mix(B->seed, 0) | 1;
	int nimmune = B->nslots > 4 ? 2 : 1;
	printf("stress: UXP_STRESS_SEED=%llu UXP_STRESS_SECONDS=%d UXP_STRESS_PROCS=%d (%d never killed)\n",
	       (unsigned long long)B->seed, B->seconds, B->nslots, nimmune);

	signal(SIGALRM, on_alarm);
	alarm((unsigned)B->seconds + tu_guard_s(38));
	B->t0_ms = now_ms();
	for (int i = 0; i < B->nslots; i++) {
		B->slot[i].immune = i < nimmune;
		spawn(i);
	}
	long long end = B->t0_ms + B->seconds * 1000LL;
	long long dead_since[MAXSLOTS] = { 0 };
	while (now_ms() < end) {
		long long next = now_ms() + 100 + rndn(400);
		while (now_ms() < next) {
			reap();
			sleep_us(10000);
		}
		/* SIGKILL one (live or still starting) */
		int k = nimmune + (int)rndn((unsigned)(B->nslots - nimmune));
		struct slot *s = &B->slot[k];
		int st = S_LIVE;
		if (k < B->nslots && s->pid > 0 && rndn(4) != 0 &&
		    (__atomic_compare_exchange_n(&s->state, &st, S_KILLING, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ||
		     (st = S_STARTING,
		      __atomic_compare_exchange_n(&s->state, &st, S_KILLING, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)))) {
			pid_t pid = s->pid;
			kill(pid, SIGKILL);
			int ws = tu_wait_child(pid, 5000);
			if (ws == -1)
				fail("slot %d pid %d did not die of SIGKILL within 5 s", k, (int)pid);
			else
				ended(k, ws);
			B->kills++;
		}
		/* respawn the dead after a while */
		for (int i = 0; i < B->nslots; i++) {
			if (LD(B->slot[i].state) != S_DEAD) {
				dead_since[i] = 0;
				continue;
			}
			if (!dead_since[i])
				dead_since[i] = now_ms();
			else if (now_ms() - dead_since[i] > 200)
				spawn(i);
		}
	}
	/* quiesce: wait for every live process to release and measure */
	ST(B->phase, 1);
	long long qend = now_ms() + 24000;
	for (;;) {
		reap();
		int waiting = 0;
		for (int i = 0; i < B->nslots; i++) {
			int st = LD(B->slot[i].state);
			waiting += (st == S_LIVE || st == S_STARTING) && !LD(B->slot[i].final_done);
		}
		if (!waiting)
			break;
		if (now_ms() > qend) {
			for (int i = 0; i < B->nslots; i++)
				if (LD(B->slot[i].state) == S_LIVE && !LD(B->slot[i].final_done))
					fail("slot %d (pid %d) did not finish its final checks within 24 s (hang)",
					     i, B->slot[i].pid);
			break;
		}
		sleep_us(20000);
	}
	ST(B->phase, 2);
	long long send = now_ms() + 8000;
	for (;;) {
		reap();
		int alive = 0;
		for (int i = 0; i < B->nslots; i++)
			alive += B->slot[i].pid > 0;
		if (!alive || now_ms() > send)
			break;
		sleep_us(20000);
	}
	for (int i = 0; i < B->nslots; i++)
		if (B->slot[i].pid > 0) {
			fail("slot %d pid %d did not exit within 8 s of the stop (hang)", i, B->slot[i].pid);
			ST(B->slot[i].state, S_KILLING);
			kill(B->slot[i].pid, SIGKILL);
			tu_wait_child(B->slot[i].pid, 5000);
		}

	/* steady-state invariants of the processes that lived throughout */
	int survivors = 0;
	for (int i = 0; i < B->nslots; i++) {
		struct slot *s = &B->slot[i];
		if (!s->base_done || !s->final_done)
			continue;
		survivors++;
		long *b = s->base, *f = s->fin;
		printf("stress: survivor slot %d: fds %ld->%ld, sockets %ld->%ld, mappings %ld->%ld, VmRSS %ld->%ld kB\n",
		       i, b[0], f[0], b[1], f[1], b[2], f[2], b[3], f[3]);
		if (f[0] > b[0] + 2)
			fail("slot %d: descriptors (not sockets) grew from %ld to %ld", i, b[0], f[0]);
		if (f[1] > 2L * B->nslots + 4)
			fail("slot %d: %ld sockets for %d processes", i, f[1], B->nslots);
		if (f[2] > b[2] + 16)
			fail("slot %d: mappings grew from %ld to %ld", i, b[2], f[2]);
		if (f[3] > b[3] + 16384)
			fail("slot %d: VmRSS grew from %ld to %ld kB", i, b[3], f[3]);
	}
	if (survivors < 1)
		fail("no process measured at 30%% and at the end");

	printf("stress: processes %ld started, %ld SIGKILLed, %ld exited by themselves, %d survivors measured\n",
	       B->spawns, B->kills, B->exits, survivors);
	long total = 0;
	for (int i = 0; i < NOPS; i++)
		total += B->ops[i];
	printf("stress: operations %ld:", total);
	for (int i = 0; i < NOPS; i++)
		printf("%s %s %ld", i ? "," : "", opname[i], B->ops[i]);
	printf("\nstress: events:");
	for (int i = 0; i < NEV; i++)
		printf("%s %s %ld", i ? "," : "", evname[i], B->ev[i]);
	printf("\nstress: failures %ld\n", B->failures);
	for (long i = 0; i < B->nfail && i < FAILLOG; i++)
		printf("stress:   %s\n", B->faillog[i]);
	if (B->failures)
		printf("stress: repeat with UXP_STRESS_SEED=%llu\n", (unsigned long long)B->seed);
	return B->failures ? 1 : 0;
}
