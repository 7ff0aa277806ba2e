/*
 * hooks.c - jemalloc serves the heap from the arena.
 *
 * jemalloc (Debian's libjemalloc_pic.a) is linked into this library with
 * its public functions renamed uxa_je_* (jemalloc.syms): the malloc family
 * below makes sure the arena exists before the first allocation, whatever
 * the order of constructors.  jemalloc's own mmap/munmap/madvise calls go
 * to the interposer (mmap.c), so what it maps before our hooks are on (its
 * initialisation allocates from arena 0) is arena memory too, and its
 * pthread_atfork registration is captured so that our fork handlers run
 * inside its (see arena.c).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <jemalloc/jemalloc.h>

#include "arena_int.h"

/* Renamed jemalloc entry points (objcopy --redefine-syms=jemalloc.syms). */
void *uxa_je_malloc(size_t);
void uxa_je_free(void *);
void *uxa_je_calloc(size_t, size_t);
void *uxa_je_realloc(void *, size_t);
int uxa_je_posix_memalign(void **, size_t, size_t);
void *uxa_je_aligned_alloc(size_t, size_t);
void *uxa_je_memalign(size_t, size_t);
void *uxa_je_valloc(size_t);
size_t uxa_je_malloc_usable_size(void *);
int uxa_je_mallctl(const char *, void *, size_t *, void *, size_t);
int uxa_je_mallctlnametomib(const char *, size_t *, size_t *);
int uxa_je_mallctlbymib(const size_t *, size_t, void *, size_t *, void *, size_t);
void uxa_je_malloc_stats_print(void (*)(void *, const char *), void *, const char *);
void *uxa_je_mallocx(size_t, int);
void *uxa_je_rallocx(void *, size_t, int);
size_t uxa_je_xallocx(void *, size_t, size_t, int);
size_t uxa_je_sallocx(const void *, int);
void uxa_je_dallocx(void *, int);
void uxa_je_sdallocx(void *, size_t, int);
size_t uxa_je_nallocx(size_t, int);

/* No huge arena with default hooks (oversize_threshold:0: a 64 MiB
 * allocation would escape to it otherwise), no background threads (an
 * extra thread per process, purging on its own schedule). */
const char *malloc_conf = "oversize_threshold:0,background_thread:false,retain:true";

/* jemalloc starts a large allocation at a random cache line of its first
 * page (cache_oblivious, fixed at its build time).  Asking for page
 * alignment turns that off: large buffers start on a page (what XPMEM
 * attaches) and a freed extent given out again comes back at the very same
 * address, so importers that cached an attachment see the new buffer. */
#define LARGE_MIN (16 * 1024)
#define LARGE_FLAGS MALLOCX_ALIGN(UXA_PAGE)

/* mallocx/rallocx do not set errno; malloc and realloc must */
static void *enomem_if_null(void *p)
{
	if (!p)
		errno = ENOMEM;
	return p;
}

/* ---- jemalloc's fork handlers, captured ---- */
static void (*je_prefork)(void), (*je_parent)(void), (*je_child)(void);

int uxa_je_register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
int uxa_je_register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	je_prefork = prepare;
	je_parent = parent;
	je_child = child;
	return 0;
}

void uxa_je_prefork(void);
void uxa_je_postfork_parent(void);
void uxa_je_postfork_child(void);
void uxa_je_prefork(void)
{
	if (je_prefork)
		je_prefork();
}
void uxa_je_postfork_parent(void)
{
	if (je_parent)
		je_parent();
}
void uxa_je_postfork_child(void)
{
	if (je_child)
		je_child();
}

/* ---- extent hooks ---------------------------------------------------------
 * Everything they see is arena memory.  FREE ranges read back zero, so a
 * new extent is zeroed and committed without a write; every way back to
 * FREE (dalloc, destroy) and every purge punches the memfd.
 */
static void *h_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
		     bool *zero, bool *commit, unsigned ind)
{
	(void)h;
	(void)ind;
	uintptr_t a = 0;
	pthread_mutex_lock(&uxa.lock);
	if (new_addr) {
		if (segs_set((uintptr_t)new_addr, size, SEG_FREE, SEG_HEAP, 0) == 0)
			a = (uintptr_t)new_addr;
	} else {
		a = segs_alloc(size, alignment, SEG_HEAP, 0);
	}
	bool reprotect = uxa.free_protected;
	pthread_mutex_unlock(&uxa.lock);
	if (!a) {
		if (!new_addr)
			uxa_log(UXA_WARN, "arena full: cannot allocate %zu bytes (raise XPMEM_ARENA_SIZE)", size);
		return NULL;
	}
	/* the range may have been munmap'd (PROT_NONE) by the mmap interposer */
	if (reprotect)
		mprotect((void *)a, size, PROT_READ | PROT_WRITE);
	uxa_tell_mapped(a, size, 0);
	*zero = true;
	*commit = true;
	return (void *)a;
}

/* destroy (a manual arena going away): give the range back */
static bool h_release(void *addr, size_t size)
{
	if (uxa_punch((uintptr_t)addr, size) < 0)
		return true; /* opt out: jemalloc keeps the extent */
	pthread_mutex_lock(&uxa.lock);
	/* SEG_MMAP: extents jemalloc mapped before it had our hooks */
	int r = segs_set((uintptr_t)addr, size, SEG_HEAP | SEG_MMAP, SEG_FREE, 0);
	pthread_mutex_unlock(&uxa.lock);
	return r != 0;
}

/* Opt out (as jemalloc's own hooks do with retain): jemalloc then decommits
 * the extent (our punch: the memory is returned) and keeps its addresses
 * for reuse, so a buffer freed and allocated again comes back at the same
 * address, which importers' cached attachments rely on.  A range handed
 * back to the segment map would be carved anew elsewhere. */
static bool h_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	(void)h; (void)addr; (void)size; (void)committed; (void)ind;
	return true;
}

static void h_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind)
{
	(void)h;
	(void)committed;
	(void)ind;
	h_release(addr, size);
}

/* Decommitted ranges were punched: committing again needs nothing and
 * yields zeroed memory as jemalloc requires. */
static bool h_commit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
		     unsigned ind)
{
	(void)h; (void)addr; (void)size; (void)off; (void)len; (void)ind;
	return false;
}

static bool h_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off,
			   size_t len, unsigned ind)
{
	(void)h;
	(void)size;
	(void)ind;
	return uxa_punch((uintptr_t)addr + off, len) < 0;
}

static bool h_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
		       unsigned ind)
{
	return h_purge_forced(h, addr, size, off, len, ind);
}

/* MADV_FREE does not exist for shared mappings. */
static bool h_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off,
			 size_t len, unsigned ind)
{
	(void)h; (void)addr; (void)size; (void)off; (void)len; (void)ind;
	return true;
}

static bool h_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b,
		    bool committed, unsigned ind)
{
	(void)h; (void)addr; (void)size; (void)a; (void)b; (void)committed; (void)ind;
	return false;
}

static bool h_merge(extent_hooks_t *h, void *a, size_t asz, void *b, size_t bsz,
		    bool committed, unsigned ind)
{
	(void)h; (void)asz; (void)bsz; (void)committed; (void)ind;
	return !uxa_in_arena((uintptr_t)a, 1) || !uxa_in_arena((uintptr_t)b, 1);
}

static extent_hooks_t uxa_hooks = {
	.alloc = h_alloc,
	.dalloc = h_dalloc,
	.destroy = h_destroy,
	.commit = h_commit,
	.decommit = h_decommit,
	.purge_lazy = h_purge_lazy,
	.purge_forced = h_purge_forced,
	.split = h_split,
	.merge = h_merge,
};

/* Put the hooks on every automatic arena; setting them on an arena not yet
 * initialised creates it with them. */
int uxa_hooks_install(void);
int uxa_hooks_install(void)
{
	unsigned narenas;
	size_t sz = sizeof(narenas);
	int r = uxa_je_mallctl("arenas.narenas", &narenas, &sz, NULL, 0);
	if (r)
		return -r;
	size_t mib[3], miblen = 3;
	r = uxa_je_mallctlnametomib("arena.0.extent_hooks", mib, &miblen);
	if (r)
		return -r;
	for (unsigned i = 0; i < narenas; i++) {
		extent_hooks_t *hp = &uxa_hooks;
		mib[1] = i;
		r = uxa_je_mallctlbymib(mib, miblen, NULL, NULL, &hp, sizeof(hp));
		if (r)
			return -r;
	}
	return 0;
}

/* ---- the malloc family, exported ------------------------------------------ */
UXA_EXPORT void *malloc(size_t n)
{
	uxa_ensure_init();
	if (n >= LARGE_MIN)
		return enomem_if_null(uxa_je_mallocx(n, LARGE_FLAGS));
	return uxa_je_malloc(n);
}

UXA_EXPORT void free(void *p)
{
	uxa_je_free(p);
}

UXA_EXPORT void *calloc(size_t n, size_t m)
{
	uxa_ensure_init();
	size_t t;
	if (!__builtin_mul_overflow(n, m, &t) && t >= LARGE_MIN)
		return enomem_if_null(uxa_je_mallocx(t, LARGE_FLAGS | MALLOCX_ZERO));
	return uxa_je_calloc(n, m);
}

UXA_EXPORT void *realloc(void *p, size_t n)
{
	uxa_ensure_init();
	if (n >= LARGE_MIN)
		return enomem_if_null(p ? uxa_je_rallocx(p, n, LARGE_FLAGS)
					: uxa_je_mallocx(n, LARGE_FLAGS));
	return uxa_je_realloc(p, n);
}

UXA_EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
	size_t t;
	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, t);
}

UXA_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	uxa_ensure_init();
	return uxa_je_posix_memalign(out, align, n);
}

UXA_EXPORT void *aligned_alloc(size_t align, size_t n)
{
	uxa_ensure_init();
	return uxa_je_aligned_alloc(align, n);
}

UXA_EXPORT void *memalign(size_t align, size_t n)
{
	uxa_ensure_init();
	return uxa_je_memalign(align, n);
}

UXA_EXPORT void *valloc(size_t n)
{
	uxa_ensure_init();
	return uxa_je_valloc(n);
}

/* jemalloc has no pvalloc; glibc's would hand out ptmalloc memory. */
void *pvalloc(size_t n);
UXA_EXPORT void *pvalloc(size_t n)
{
	uxa_ensure_init();
	size_t r = uxa_round_up(n ? n : 1, UXA_PAGE);
	if (r < n) {
		errno = ENOMEM;
		return NULL;
	}
	return uxa_je_memalign(UXA_PAGE, r);
}

UXA_EXPORT size_t malloc_usable_size(void *p)
{
	return p ? uxa_je_malloc_usable_size(p) : 0;
}

UXA_EXPORT int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
	uxa_ensure_init();
	return uxa_je_mallctl(name, oldp, oldlenp, newp, newlen);
}

UXA_EXPORT int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp)
{
	uxa_ensure_init();
	return uxa_je_mallctlnametomib(name, mibp, miblenp);
}

UXA_EXPORT int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp,
			    void *newp, size_t newlen)
{
	uxa_ensure_init();
	return uxa_je_mallctlbymib(mib, miblen, oldp, oldlenp, newp, newlen);
}

UXA_EXPORT void malloc_stats_print(void (*cb)(void *, const char *), void *arg, const char *opts)
{
	uxa_ensure_init();
	uxa_je_malloc_stats_print(cb, arg, opts);
}

UXA_EXPORT void *mallocx(size_t n, int flags)
{
	uxa_ensure_init();
	return uxa_je_mallocx(n, flags);
}

UXA_EXPORT void *rallocx(void *p, size_t n, int flags)
{
	uxa_ensure_init();
	return uxa_je_rallocx(p, n, flags);
}

UXA_EXPORT size_t xallocx(void *p, size_t n, size_t extra, int flags)
{
	return uxa_je_xallocx(p, n, extra, flags);
}

UXA_EXPORT size_t sallocx(const void *p, int flags)
{
	return uxa_je_sallocx(p, flags);
}

UXA_EXPORT void dallocx(void *p, int flags)
{
	uxa_je_dallocx(p, flags);
}

UXA_EXPORT void sdallocx(void *p, size_t n, int flags)
{
	uxa_je_sdallocx(p, n, flags);
}

UXA_EXPORT size_t nallocx(size_t n, int flags)
{
	uxa_ensure_init();
	return uxa_je_nallocx(n, flags);
}
