/* clientseq.c - see clientseq.h.  One test per client; each starts its own
 * exporter with X->start. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clientseq.h"

/* the exporter of this suite: set by cs_add_tests before the suite runs */
static const struct cs_exporter *X;

static void *attach_try(xpmem_apid_t apid, uintptr_t off, size_t size)
{
	struct xpmem_addr ad = { apid, (off_t)off };
	return xpmem_attach(ad, size, NULL);
}

static void *attach_ok(xpmem_apid_t apid, uintptr_t off, size_t size)
{
	errno = 0;
	void *p = attach_try(apid, off, size);
	ck_assert_msg(p != ATTACH_FAILED, "attach(%lld, %#lx, %#zx) errno %d (%s)", (long long)apid, off, size, errno,
		      strerror(errno));
	ck_assert_msg((uintptr_t)p % PAGE == 0, "attach returned unaligned %p", p);
	return p;
}

static xpmem_apid_t get_ok(long long seg, int flags, void *pv)
{
	errno = 0;
	xpmem_apid_t a = xpmem_get(seg, flags, XPMEM_PERMIT_MODE, pv);
	ck_assert_msg(a > 0, "get(%lld) errno %d (%s)", seg, errno, strerror(errno));
	return a;
}

static long long make_all(struct peer *e, int mode)
{
	long long s = peer_ok(e, "make 0 %#lx %#o", (unsigned long)XPMEM_MAXADDR_SIZE, mode);
	ck_assert_int_gt(s, 0);
	return s;
}

/* ---------------------------------------------------------------- UCX */

struct ucx_region {
	uintptr_t start, end;
	char *p;
};

static struct ucx_region ucx_cache[64];
static int ucx_n;

/* rcache lookup: page_down/page_up, merge with overlapping/adjacent regions */
static char *ucx_map(xpmem_apid_t apid, uintptr_t addr, size_t len)
{
	uintptr_t s = PAGE_DOWN(addr), e = PAGE_UP(addr + len);
	for (int i = 0; i < ucx_n; i++)
		if (ucx_cache[i].start <= s && e <= ucx_cache[i].end)
			return ucx_cache[i].p + (addr - ucx_cache[i].start);
	for (int i = 0; i < ucx_n; i++)
		if (ucx_cache[i].start <= e && s <= ucx_cache[i].end) {
			if (ucx_cache[i].start < s)
				s = ucx_cache[i].start;
			if (ucx_cache[i].end > e)
				e = ucx_cache[i].end;
		}
	char *p = attach_ok(apid, s, e - s);
	int j = 0;
	for (int i = 0; i < ucx_n; i++) {
		if (ucx_cache[i].start >= s && ucx_cache[i].end <= e) {
			ck_assert_msg(xpmem_detach(ucx_cache[i].p) == 0, "detach of a merged region errno %d", errno);
			continue;
		}
		ucx_cache[j++] = ucx_cache[i];
	}
	ucx_n = j;
	ck_assert(ucx_n < 64);
	ucx_cache[ucx_n++] = (struct ucx_region){ s, e, p };
	return p + (addr - s);
}

#define FIFO_SLOTS 8192
#define PUSHES 2000

struct pusher {
	volatile uint64_t *fifo;
	int tid;
};

static void *ucx_push(void *v)
{
	struct pusher *pu = v;
	for (int k = 0; k < PUSHES; k++) {
		uint64_t h = __atomic_load_n(&pu->fifo[0], __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&pu->fifo[0], &h, h + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			;
		uint64_t slot = 8 + h % (FIFO_SLOTS - 8);
		__atomic_store_n(&pu->fifo[slot], ((uint64_t)(pu->tid + 1) << 32) | (uint64_t)(k + 1), __ATOMIC_RELEASE);
	}
	return NULL;
}

START_TEST(t_ucx)
{
	struct peer e;
	X->start(&e);
	long long seg = make_all(&e, 0600); /* once, never removed */
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, NULL);
	/* two adjacent buffers and one far away; ranges at odd offsets */
	uintptr_t b1 = (uintptr_t)peer_ok(&e, "malloc %lu", 32 * PAGE);
	peer_ok(&e, "fill %#lx %lu 61", b1, 32 * PAGE);
	uintptr_t b2 = (uintptr_t)peer_ok(&e, "malloc %lu", MiB);
	peer_ok(&e, "fill %#lx %lu 62", b2, MiB);
	ucx_n = 0;
	struct {
		uintptr_t base, off;
		size_t len;
		uint64_t seed;
	} r[] = {
		{ b1, 100 * 8, 5000 * 8, 61 },      { b1, 3 * PAGE + 8, 2 * PAGE, 61 }, { b1, 10 * PAGE - 8, 16, 61 },
		{ b1, 0, 32 * PAGE, 61 },           { b2, 12345 * 8, 64 * 1024, 62 },   { b2, 0, 8, 62 },
		{ b1, 17 * PAGE + 24, 4 * PAGE, 61 }, { b2, MiB - 4096, 4096, 62 },
	};
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
			uint64_t *p = (uint64_t *)ucx_map(apid, r[i].base + r[i].off, r[i].len);
			for (size_t w = 0; w < r[i].len / 8; w++)
				ck_assert_msg(p[w] == st_pattern(r[i].seed, r[i].off / 8 + w),
					      "UCX range %zu pass %d: word %zu wrong through a cached/merged attachment", i, pass, w);
		}
	/* the FIFO in the peer's heap, updated with CAS from both sides */
	uintptr_t fifo = (uintptr_t)peer_ok(&e, "malloc %lu", FIFO_SLOTS * 8UL);
	peer_ok(&e, "fill %#lx %lu 0", fifo, FIFO_SLOTS * 8UL);
	volatile uint64_t *f = (volatile uint64_t *)ucx_map(apid, fifo, FIFO_SLOTS * 8UL);
	for (int i = 0; i < FIFO_SLOTS; i++)
		f[i] = 0;
	peer_ok(&e, "cas %#lx %d 2", fifo, PUSHES);
	pthread_t th[2];
	struct pusher pu[2] = { { f, 0 }, { f, 1 } };
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, ucx_push, &pu[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	peer_ok(&e, "join");
	ck_assert_msg(f[0] == 4 * PUSHES, "FIFO head %llu, want %d", (unsigned long long)f[0], 4 * PUSHES);
	ck_assert_int_eq(peer_ok(&e, "rd %#lx", fifo), 4 * PUSHES);
	static unsigned char seen[2][PUSHES];
	memset(seen, 0, sizeof(seen));
	int n = 0;
	for (int i = 8; i < FIFO_SLOTS; i++) {
		uint64_t v = f[i];
		if (!v)
			continue;
		int tid = (int)(v >> 32) - 1, k = (int)(v & 0xffffffff) - 1;
		ck_assert_msg(tid >= 0 && tid < 2 && k >= 0 && k < PUSHES && !seen[tid][k], "FIFO slot %d holds %#llx", i,
			      (unsigned long long)v);
		seen[tid][k] = 1;
		n++;
	}
	ck_assert_msg(n == 2 * PUSHES, "FIFO holds %d of the importer's %d elements", n, 2 * PUSHES);
	/* UCX never detaches before exit: release at the end */
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------- Open MPI */

#define OMPI_ALIGN ((uintptr_t)1 << 23)

static char *ompi_map(xpmem_apid_t apid, uintptr_t addr, size_t len, uintptr_t maxaddr, int *retried)
{
	uintptr_t base = addr & ~(OMPI_ALIGN - 1);
	uintptr_t end = (addr + len + OMPI_ALIGN - 1) & ~(OMPI_ALIGN - 1);
	if (end > maxaddr)
		end = maxaddr;
	char *p = attach_try(apid, base, end - base);
	if (p == ATTACH_FAILED) {
		*retried = 1;
		end = PAGE_UP(addr + len);
		p = attach_ok(apid, base, end - base);
	}
	return p + (addr - base);
}

START_TEST(t_ompi)
{
	struct peer e;
	X->start(&e);
	long long seg = make_all(&e, 0666);
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, (void *)0666);
	uintptr_t maxaddr = (uintptr_t)peer_ok(&e, "maxaddr");
	ck_assert(maxaddr > 0 && maxaddr % PAGE == 0);
	size_t sizes[] = { 4096, MiB, 16 * MiB, 100 * 1024 };
	for (size_t i = 0; i < 4; i++) {
		uintptr_t b = (uintptr_t)peer_ok(&e, "malloc %zu", sizes[i]);
		peer_ok(&e, "fill %#lx %zu %zu", b, sizes[i], 70 + i);
		int retried = 0;
		char *p = ompi_map(apid, b, sizes[i], maxaddr, &retried);
		ck_assert_msg(!retried, "Open MPI: 2^23-aligned window around %#lx refused (holes must be allowed)", b);
		ck_assert_msg(st_check(p, sizes[i], 70 + i) == -1, "Open MPI window: buffer %zu wrong", i);
		ck_assert_int_eq(xpmem_detach(p), 0);
	}
	/* a window at the peer's highest mapped address, capped there */
	int retried = 0;
	char *top = ompi_map(apid, maxaddr - PAGE, PAGE, maxaddr, &retried);
	ck_assert_msg(!retried, "Open MPI: window capped at the peer's highest mapped address %#lx refused", maxaddr);
	ck_assert_int_eq(xpmem_detach(top), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------- MPICH */

START_TEST(t_mpich)
{
	struct peer e;
	X->start(&e);
	long long own = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(own, 0);
	long long seg = make_all(&e, 0600);
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, (void *)0600);
	enum { NBUF = 4, BUFLEN = 128 * 1024 };
	uintptr_t b[NBUF];
	struct {
		uintptr_t start, end;
		char *p;
	} tab[NBUF];
	int ntab = 0, attaches = 0;
	for (int i = 0; i < NBUF; i++)
		b[i] = (uintptr_t)peer_ok(&e, "malloc %d", BUFLEN);
	for (int rep = 0; rep < 6; rep++)
		for (int i = 0; i < NBUF; i++) {
			uint64_t seed = 80 + (uint64_t)rep * 10 + (uint64_t)i;
			peer_ok(&e, "fill %#lx %d %llu", b[i], BUFLEN, (unsigned long long)seed);
			uintptr_t s = PAGE_DOWN(b[i]), en = PAGE_UP(b[i] + BUFLEN);
			char *p = NULL;
			for (int k = 0; k < ntab; k++)
				if (tab[k].start <= s && en <= tab[k].end)
					p = tab[k].p + (s - tab[k].start);
			if (!p) {
				p = attach_ok(apid, s, en - s);
				tab[ntab].start = s;
				tab[ntab].end = en;
				tab[ntab++].p = p;
				attaches++;
			}
			long bad = st_check(p + (b[i] - s), BUFLEN, seed);
			ck_assert_msg(bad == -1, "MPICH cached attachment: buffer %d rep %d stale/wrong at %ld", i, rep, bad);
			/* the receiver writes back (a put) */
			st_fill(p + (b[i] - s), BUFLEN, seed + 1000);
			ck_assert_str_eq(peer_cmd(&e, "check %#lx %d %llu", b[i], BUFLEN, (unsigned long long)seed + 1000), "ok");
		}
	ck_assert_int_eq(attaches, NBUF);
	/* finalize: detach all, release, remove own segid */
	for (int k = 0; k < ntab; k++)
		ck_assert_msg(xpmem_detach(tab[k].p) == 0, "finalize detach errno %d", errno);
	ck_assert_int_eq(xpmem_release(apid), 0);
	ck_assert_int_eq(xpmem_remove(own), 0);
	peer_ok(&e, "remove %lld", seg);
	peer_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------- libfabric */

#define LRU_CAP 8
struct lru_ent {
	uintptr_t start;
	size_t len;
	char *p;
	long used;
};
static struct lru_ent lru[LRU_CAP];
static long lru_clock;
static int lru_evictions;

static char *lru_map(xpmem_apid_t apid, uintptr_t addr, size_t len)
{
	int victim = 0;
	for (int i = 0; i < LRU_CAP; i++) {
		if (lru[i].p && lru[i].start == addr && lru[i].len == len) {
			lru[i].used = ++lru_clock;
			return lru[i].p;
		}
		if (!lru[i].p || (lru[victim].p && lru[i].used < lru[victim].used))
			victim = i;
	}
	if (lru[victim].p) {
		ck_assert_msg(xpmem_detach(lru[victim].p) == 0, "LRU eviction detach errno %d", errno);
		lru_evictions++;
	}
	lru[victim] = (struct lru_ent){ addr, len, attach_ok(apid, addr, len), ++lru_clock };
	return lru[victim].p;
}

struct dup_arg {
	xpmem_apid_t apid;
	uintptr_t addr;
	size_t len;
	pthread_barrier_t *bar;
	pthread_mutex_t *mu;
	char **winner;
	int err;
};

static void *dup_attach(void *v)
{
	struct dup_arg *d = v;
	pthread_barrier_wait(d->bar);
	char *p = attach_try(d->apid, d->addr, d->len);
	if (p == ATTACH_FAILED) {
		d->err = 1000 + errno;
		return NULL;
	}
	pthread_mutex_lock(d->mu);
	int lost = *d->winner != NULL;
	if (!lost)
		*d->winner = p;
	pthread_mutex_unlock(d->mu);
	if (lost && xpmem_detach(p) != 0)
		d->err = 2000 + errno;
	return NULL;
}

START_TEST(t_libfabric)
{
	struct peer e;
	X->start(&e);
	long long seg = make_all(&e, 0666); /* fi_ini */
	long long own = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_int_gt(own, 0);
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, (void *)0666);
	enum { NB = 24, BL = 64 * 1024 };
	uintptr_t b[NB];
	for (int i = 0; i < NB; i++) {
		b[i] = (uintptr_t)peer_ok(&e, "%s %d", X->alloc_aligned, BL);
		peer_ok(&e, "fill %#lx %d %d", b[i], BL, 100 + i);
	}
	memset(lru, 0, sizeof(lru));
	lru_evictions = 0;
	for (int k = 0; k < 200; k++) {
		int i = (k * 7 + k / 13) % NB;
		char *p = lru_map(apid, b[i], BL);
		uint64_t *w = (uint64_t *)p;
		ck_assert_msg(w[0] == st_pattern(100 + i, 0) && w[BL / 8 - 1] == st_pattern(100 + i, BL / 8 - 1) &&
				      w[(k * 31) % (BL / 8)] == st_pattern(100 + i, (k * 31) % (BL / 8)),
			      "libfabric LRU: buffer %d wrong after %d evictions", i, lru_evictions);
	}
	ck_assert(lru_evictions > 0);
	/* concurrent duplicate attaches from 4 threads, the losers detach */
	for (int round = 0; round < 20; round++) {
		pthread_barrier_t bar;
		pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
		char *winner = NULL;
		pthread_barrier_init(&bar, NULL, 4);
		struct dup_arg d[4];
		pthread_t th[4];
		int i = round % NB;
		for (int t = 0; t < 4; t++) {
			d[t] = (struct dup_arg){ apid, b[i], BL, &bar, &mu, &winner, 0 };
			pthread_create(&th[t], NULL, dup_attach, &d[t]);
		}
		for (int t = 0; t < 4; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&bar);
		for (int t = 0; t < 4; t++)
			ck_assert_msg(d[t].err == 0, "duplicate attach round %d thread %d: %s errno %d", round, t,
				      d[t].err >= 2000 ? "loser detach" : "attach", d[t].err % 1000);
		ck_assert(winner != NULL);
		ck_assert_msg(st_check(winner, BL, 100 + i) == -1, "winner's attachment broken after the losers detached");
		ck_assert_int_eq(xpmem_detach(winner), 0);
	}
	/* fi_fini */
	for (int i = 0; i < LRU_CAP; i++)
		if (lru[i].p)
			ck_assert_int_eq(xpmem_detach(lru[i].p), 0);
	ck_assert_int_eq(xpmem_release(apid), 0);
	ck_assert_int_eq(xpmem_remove(own), 0);
	peer_ok(&e, "remove %lld", seg);
	peer_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------- SOS */

static const struct {
	const char *name;
	uint64_t seed;
} cs_kinds[CS_NKINDS] = {
	[CS_BSS] = { ".bss", 121 },
	[CS_DATA] = { ".data", 122 },
	[CS_HEAP] = { "symmetric heap", 123 },
	[CS_SHARED_ANON] = { "MAP_SHARED|MAP_ANONYMOUS memory", 124 },
};

START_TEST(t_sos)
{
	struct peer e;
	X->start(&e);
	struct cs_sos_seg seg[CS_NKINDS];
	memset(seg, 0, sizeof(seg));
	long long v[4];
	peer_okv(&e, v, "static");
	/* the exporter's data of each kind, filled with the kind's seed */
	for (int k = 0; k < CS_NKINDS; k++) {
		struct cs_sos_seg *s = &seg[k];
		if (X->sos[k] == CS_UNUSED)
			continue;
		switch (k) {
		case CS_BSS:
			s->addr = (uintptr_t)v[0];
			s->len = PAGE_UP(v[1]);
			break;
		case CS_DATA:
			s->addr = (uintptr_t)v[2];
			s->len = PAGE_UP(v[3]);
			break;
		case CS_HEAP:
			s->len = 4 * MiB;
			s->addr = (uintptr_t)peer_ok(&e, "malloc %zu", s->len);
			break;
		default:
			s->len = 4 * PAGE;
			s->addr = (uintptr_t)peer_ok(&e, "mmapshared %zu", s->len);
			break;
		}
		peer_ok(&e, "fill %#lx %zu %llu", s->addr, s->len, (unsigned long long)cs_kinds[k].seed);
	}
	/* the segments: the whole pages around the data (a heap buffer may
	 * start inside a page) */
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] != CS_UNUSED)
			seg[k].segid = peer_ok(&e, "make %#lx %zu 0666", PAGE_DOWN(seg[k].addr),
					       PAGE_UP(seg[k].addr + seg[k].len) - PAGE_DOWN(seg[k].addr));
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] != CS_UNUSED)
			seg[k].apid = get_ok(seg[k].segid, XPMEM_RDWR, NULL);
	for (int k = 0; k < CS_NKINDS; k++) {
		struct cs_sos_seg *s = &seg[k];
		if (X->sos[k] == CS_UNUSED)
			continue;
		s->att = attach_ok(s->apid, 0, PAGE_UP(s->addr + s->len) - PAGE_DOWN(s->addr));
		s->p = s->att + (s->addr - PAGE_DOWN(s->addr));
	}
	/* the data first, then the suite's own checks, then the holes */
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] == CS_SHARED)
			ck_assert_msg(st_check(seg[k].p, seg[k].len, cs_kinds[k].seed) == -1, "SOS %s attachment wrong",
				      cs_kinds[k].name);
	if (X->sos_more)
		X->sos_more(&e, seg);
	for (int k = 0; k < CS_NKINDS; k++) {
		unsigned char b;
		if (X->sos[k] == CS_HOLE) {
			ck_assert_msg(tu_probe_read(seg[k].p, &b) == SIGBUS &&
					      tu_probe_read(seg[k].p + seg[k].len - PAGE, &b) == SIGBUS,
				      "SOS: the exporter's %s is not a hole", cs_kinds[k].name);
		} else if (X->sos[k] == CS_HOLE_OR_SHARED) {
			int sig = tu_probe_read(seg[k].p, &b);
			fprintf(stderr, "SOS: touching the exporter's %s through its attachment: %s\n", cs_kinds[k].name,
				sig == SIGBUS ? "SIGBUS (a hole)" : sig ? "other signal" : "readable");
			ck_assert_msg(sig == SIGBUS || sig == 0, "SOS %s touch: signal %d", cs_kinds[k].name, sig);
			if (!sig)
				ck_assert_msg(st_check(seg[k].p, PAGE, cs_kinds[k].seed) == -1,
					      "SOS %s readable but not the exporter's data (stale/zero memory)",
					      cs_kinds[k].name);
		}
	}
	/* finalize */
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] != CS_UNUSED)
			ck_assert_int_eq(xpmem_detach(seg[k].att), 0);
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] != CS_UNUSED)
			ck_assert_int_eq(xpmem_release(seg[k].apid), 0);
	for (int k = 0; k < CS_NKINDS; k++)
		if (X->sos[k] != CS_UNUSED)
			peer_ok(&e, "remove %lld", seg[k].segid);
	peer_stop(&e);
}
END_TEST

/* ------------------------------------------- concurrent attach/detach */

#define CT_THREADS 8
#define CT_ITERS 10000
#define CT_NB 16
#define CT_BL (64 * 1024)

struct ct_arg {
	xpmem_apid_t apid;
	uintptr_t *b;
	char **cached;
	int tid;
	long errors;
	char what[160];
};

static void *ct_worker(void *v)
{
	struct ct_arg *a = v;
	unsigned r = (unsigned)a->tid * 2654435761u + 1;
	for (int k = 0; k < CT_ITERS; k++) {
		r = r * 1103515245u + 12345u;
		int i = (int)(r >> 8) % CT_NB;
		size_t w = (r >> 4) % (CT_BL / 8);
		char *p = attach_try(a->apid, a->b[i], CT_BL);
		if (p == ATTACH_FAILED) {
			snprintf(a->what, sizeof(a->what), "attach iter %d errno %d", k, errno);
			a->errors++;
			break;
		}
		const uint64_t *q = (const uint64_t *)p, *c = (const uint64_t *)a->cached[i];
		if (q[0] != st_pattern(200 + i, 0) || q[w] != st_pattern(200 + i, w) ||
		    q[CT_BL / 8 - 1] != st_pattern(200 + i, CT_BL / 8 - 1) || c[w] != st_pattern(200 + i, w)) {
			snprintf(a->what, sizeof(a->what), "data wrong, buffer %d word %zu iter %d", i, w, k);
			a->errors++;
		}
		if (xpmem_detach(p + (w * 8) % CT_BL) != 0) {
			snprintf(a->what, sizeof(a->what), "detach iter %d errno %d", k, errno);
			a->errors++;
			break;
		}
	}
	return NULL;
}

START_TEST(t_concurrent)
{
	struct peer e;
	X->start(&e);
	long long seg = make_all(&e, 0600);
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, NULL);
	uintptr_t b[CT_NB];
	char *cached[CT_NB];
	for (int i = 0; i < CT_NB; i++) {
		b[i] = (uintptr_t)peer_ok(&e, "%s %d", X->alloc_aligned, CT_BL);
		peer_ok(&e, "fill %#lx %d %d", b[i], CT_BL, 200 + i);
		cached[i] = attach_ok(apid, b[i], CT_BL); /* long-lived, shared by all threads */
	}
	pthread_t th[CT_THREADS];
	static struct ct_arg args[CT_THREADS];
	for (int t = 0; t < CT_THREADS; t++) {
		args[t] = (struct ct_arg){ apid, b, cached, t, 0, "" };
		ck_assert_int_eq(pthread_create(&th[t], NULL, ct_worker, &args[t]), 0);
	}
	for (int t = 0; t < CT_THREADS; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < CT_THREADS; t++)
		ck_assert_msg(args[t].errors == 0, "thread %d: %ld errors, last: %s", t, args[t].errors, args[t].what);
	for (int i = 0; i < CT_NB; i++) {
		ck_assert_msg(st_check(cached[i], CT_BL, 200 + i) == -1, "cached attachment %d broken by others' detaches", i);
		ck_assert_int_eq(xpmem_detach(cached[i]), 0);
	}
	ck_assert_int_eq(xpmem_release(apid), 0);
	peer_stop(&e);
}
END_TEST

void cs_add_tests(TCase *tc, const struct cs_exporter *x)
{
	X = x;
	tcase_add_test(tc, t_ucx);
	tcase_add_test(tc, t_ompi);
	tcase_add_test(tc, t_mpich);
	tcase_add_test(tc, t_libfabric);
	tcase_add_test(tc, t_sos);
	if (x->concurrent)
		tcase_add_test(tc, t_concurrent);
}
