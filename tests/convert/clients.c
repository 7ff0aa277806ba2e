/* clients.c - the call sequences of the real XPMEM clients (UCX, Open MPI,
 * MPICH, libfabric, SOS; written after tests/shm/clients.c) against an
 * exporter WITHOUT the arena preload (tests/convert/cvpeer): its glibc heap
 * and .bss are converted in place on attach; MAP_SHARED|MAP_ANONYMOUS
 * memory stays a hole (SIGBUS). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cvimp.h"

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
	cv_start(&e);
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
	cv_start(&e);
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
	cv_start(&e);
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
	cv_start(&e);
	long long seg = make_all(&e, 0666); /* fi_ini */
	long long own = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_int_gt(own, 0);
	xpmem_apid_t apid = get_ok(seg, XPMEM_RDWR, (void *)0666);
	enum { NB = 24, BL = 64 * 1024 };
	uintptr_t b[NB];
	for (int i = 0; i < NB; i++) {
		b[i] = (uintptr_t)peer_ok(&e, "memalign %d" /* page-aligned registrations */, BL);
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

START_TEST(t_sos)
{
	struct peer e;
	cv_start(&e);
	long long v[4];
	peer_okv(&e, v, "static");
	uintptr_t bss = (uintptr_t)v[0];
	size_t bss_len = PAGE_UP(v[1]);
	peer_ok(&e, "fill %#lx %zu 121", bss, bss_len);
	size_t heap_len = 4 * MiB;
	uintptr_t heap = (uintptr_t)peer_ok(&e, "malloc %zu", heap_len);
	peer_ok(&e, "fill %#lx %zu 123", heap, heap_len);
	uintptr_t shm = (uintptr_t)peer_ok(&e, "mmapshared %lu", 4 * PAGE);
	peer_ok(&e, "fill %#lx %lu 124", shm, 4 * PAGE);
	long long sb = peer_ok(&e, "make %#lx %zu 0666", bss, bss_len);
	long long sh = peer_ok(&e, "make %#lx %zu 0666", PAGE_DOWN(heap), PAGE_UP(heap + heap_len) - PAGE_DOWN(heap));
	long long ss = peer_ok(&e, "make %#lx %lu 0666", shm, 4 * PAGE);
	xpmem_apid_t ab = get_ok(sb, XPMEM_RDWR, NULL), ah = get_ok(sh, XPMEM_RDWR, NULL), as = get_ok(ss, XPMEM_RDWR, NULL);
	char *pb = attach_ok(ab, 0, bss_len);
	char *ph = attach_ok(ah, 0, PAGE_UP(heap + heap_len) - PAGE_DOWN(heap));
	char *ps = attach_ok(as, 0, 4 * PAGE);
	ck_assert_msg(st_check(pb, bss_len, 121) == -1, "SOS .bss of a plain exporter: attachment wrong");
	ck_assert_msg(st_check(ph + (heap - PAGE_DOWN(heap)), heap_len, 123) == -1, "SOS symmetric heap attachment wrong");
	/* puts both ways */
	st_fill(pb, bss_len, 125);
	ck_assert_str_eq(peer_cmd(&e, "check %#lx %zu 125", bss, bss_len), "ok");
	st_fill(ph + (heap - PAGE_DOWN(heap)), heap_len, 126);
	ck_assert_str_eq(peer_cmd(&e, "check %#lx %zu 126", heap, heap_len), "ok");
	peer_ok(&e, "fill %#lx %zu 127", bss, bss_len);
	ck_assert(st_check(pb, bss_len, 127) == -1);
	/* MAP_SHARED|MAP_ANONYMOUS is never converted: a hole */
	unsigned char b;
	ck_assert_msg(tu_probe_read(ps, &b) == SIGBUS && tu_probe_read(ps + 3 * PAGE, &b) == SIGBUS,
		      "SOS: the exporter's MAP_SHARED|MAP_ANONYMOUS memory is not a hole");
	/* finalize */
	ck_assert_int_eq(xpmem_detach(pb), 0);
	ck_assert_int_eq(xpmem_detach(ph), 0);
	ck_assert_int_eq(xpmem_detach(ps), 0);
	ck_assert_int_eq(xpmem_release(ab), 0);
	ck_assert_int_eq(xpmem_release(ah), 0);
	ck_assert_int_eq(xpmem_release(as), 0);
	peer_ok(&e, "remove %lld", sb);
	peer_ok(&e, "remove %lld", sh);
	peer_ok(&e, "remove %lld", ss);
	peer_stop(&e);
}
END_TEST

int main(void)
{
	tu_require_libc_malloc(); /* free must munmap, as glibc's does */
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	st_init();
	Suite *s = suite_create("convert-clients");
	TCase *tc = tcase_create("clients");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, t_ucx);
	tcase_add_test(tc, t_ompi);
	tcase_add_test(tc, t_mpich);
	tcase_add_test(tc, t_libfabric);
	tcase_add_test(tc, t_sos);
	suite_add_tcase(s, tc);
	return st_run(s);
}
