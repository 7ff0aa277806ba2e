/*
 * mmap.c - anonymous private mmap served from the arena.
 *
 * mmap(MAP_PRIVATE|MAP_ANONYMOUS[|MAP_NORESERVE|MAP_POPULATE]) with a
 * readable or writable prot and no hint outside the arena is carved from
 * the arena: zeroed, page aligned, shareable like the heap.  Everything
 * else goes to the kernel.  munmap punches the pages (they read back zero
 * in the memfd) and leaves the range PROT_NONE, so a stale access faults as
 * after a real munmap.  MAP_FIXED over the arena keeps the arena whole:
 * anonymous private becomes a fresh arena range, anything else is mapped
 * by the kernel and remembered (FOREIGN) until munmap puts the arena back.
 * Ranges that jemalloc owns are never unmapped or replaced from here.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "arena_int.h"
#include "arena.h"

#define RW (PROT_READ | PROT_WRITE)
#define ARENA_FLAGS_OK (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE | \
			MAP_FIXED | MAP_FIXED_NOREPLACE)

static bool anon_private(int flags, off_t off)
{
	return (flags & MAP_TYPE) == MAP_PRIVATE && (flags & MAP_ANONYMOUS) &&
	       !(flags & ~ARENA_FLAGS_OK) && off == 0;
}

static void *fail(int e)
{
	errno = e;
	return MAP_FAILED;
}

static void populate(void *a, size_t len, int prot)
{
	if (prot & PROT_WRITE)
		uxa_sys_madvise(a, len, MADV_POPULATE_WRITE);
	else if (prot & PROT_READ)
		uxa_sys_madvise(a, len, MADV_POPULATE_READ);
}

/* Map the arena memfd back over [a, a + len) (replacing whatever is there). */
static int remap_arena(uintptr_t a, size_t len, int prot)
{
	void *m = uxa_sys_mmap((void *)a, len, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
			       uxa.fd, (off_t)(a - uxa.base));
	return m == MAP_FAILED ? -errno : 0;
}

static void *arena_anon(void *hint, size_t len, int prot, int flags, int may_wait)
{
	uintptr_t a = 0;
	pthread_mutex_lock(&uxa.lock);
	if (hint && segs_set((uintptr_t)hint & ~(UXA_PAGE - 1), len, SEG_FREE, SEG_MMAP, prot) == 0)
		a = (uintptr_t)hint & ~(UXA_PAGE - 1);
	if (!a)
		a = segs_alloc(len, UXA_PAGE, SEG_MMAP, prot);
	bool reprotect = uxa.free_protected;
	if (a && (prot != RW || reprotect) && mprotect((void *)a, len, prot) < 0) {
		/* e.g. PROT_EXEC on a noexec memfd: let the kernel do it */
		mprotect((void *)a, len, RW);
		segs_set(a, len, SEG_MMAP, SEG_FREE, 0);
		a = 0;
	}
	pthread_mutex_unlock(&uxa.lock);
	if (!a) {
		uxa_log(UXA_DEBUG, "mmap %zu bytes: not from the arena", len);
		return uxa_sys_mmap(hint, len, prot, flags, -1, 0);
	}
	uxa_tell_mapped(a, len, may_wait);
	if (flags & MAP_POPULATE)
		populate((void *)a, len, prot);
	return (void *)a;
}

/* MAP_FIXED / MAP_FIXED_NOREPLACE over [a, a + len) inside the arena. */
static void *arena_fixed(uintptr_t a, size_t len, int prot, int flags, int fd, off_t off,
			 int may_wait)
{
	void *ret = (void *)a;
	unsigned may = (flags & MAP_FIXED_NOREPLACE) && !(flags & MAP_FIXED)
			       ? SEG_FREE : SEG_FREE | SEG_MMAP | SEG_FOREIGN;
	pthread_mutex_lock(&uxa.lock);
	if (!segs_all(a, len, may)) {
		pthread_mutex_unlock(&uxa.lock);
		if (may == SEG_FREE)
			return fail(EEXIST);
		uxa_log(UXA_WARN, "MAP_FIXED over heap memory at %#lx refused", (unsigned long)a);
		return fail(EINVAL);
	}
	if (anon_private(flags, off)) {
		int r = uxa_punch(a, len);
		if (r == 0)
			r = remap_arena(a, len, prot);
		if (r == 0)
			r = segs_set(a, len, may, SEG_MMAP, prot);
		if (r < 0)
			ret = fail(-r);
	} else {
		int f = (flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED;
		ret = uxa_sys_mmap((void *)a, len, prot, f, fd, off);
		if (ret == MAP_FAILED) {
			int e = errno;
			remap_arena(a, len, PROT_NONE); /* the kernel may have unmapped it */
			errno = e;
		} else {
			uxa_punch(a, len);
			segs_set(a, len, may, SEG_FOREIGN, 0);
		}
	}
	pthread_mutex_unlock(&uxa.lock);
	if (ret != MAP_FAILED && anon_private(flags, off))
		uxa_tell_mapped(a, len, may_wait);
	if (ret != MAP_FAILED && (flags & MAP_POPULATE) && anon_private(flags, off))
		populate(ret, len, prot);
	return ret;
}

/* ---- telling libxpmem ------------------------------------------------------- */

static uxpmem_arena_unmap_fn unmap_hook; /* libxpmem's, if loaded */
static uxpmem_arena_unmap_fn foreign_hook;

UXA_EXPORT void uxpmem_arena_on_unmap_v1(uxpmem_arena_unmap_fn fn)
{
	__atomic_store_n(&unmap_hook, fn, __ATOMIC_RELEASE);
}

UXA_EXPORT void uxpmem_arena_on_foreign_unmap_v1(uxpmem_arena_unmap_fn fn)
{
	__atomic_store_n(&foreign_hook, fn, __ATOMIC_RELEASE);
}

/* Memory outside the arena was unmapped or replaced (see arena.h). */
static void tell_foreign(uintptr_t a, size_t n)
{
	uxpmem_arena_unmap_fn fn = __atomic_load_n(&foreign_hook, __ATOMIC_ACQUIRE);
	if (fn)
		fn(a, n);
}

UXA_EXPORT int shmdt(const void *addr)
{
	int r = uxa_sys_shmdt(addr);
	if (r == 0)
		tell_foreign((uintptr_t)addr, 0);
	return r;
}

/* The application unmapped [a, a+n) of the arena: importers must not read
 * the zeros left there (the exporter itself now faults). */
static void tell_unmapped(uintptr_t a, size_t n)
{
	uxpmem_arena_unmap_fn fn = __atomic_load_n(&unmap_hook, __ATOMIC_ACQUIRE);
	uintptr_t lo = a > uxa.base ? a : uxa.base;
	uintptr_t hi = a + n < uxa.base + uxa.size ? a + n : uxa.base + uxa.size;
	if (fn && lo < hi)
		fn(lo, hi - lo);
}

/* An mmap of the application (may_wait 1) or of jemalloc (0: it may hold
 * its locks, which the service thread that reads the acknowledgements of
 * the map hook's invalidation can need for its own malloc: waiting would
 * deadlock until the invalidation timed out and the importer was cut off). */
static void *arena_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, int may_wait)
{
	if (!uxa.active || len == 0 || len > uxa.size)
		return uxa_sys_mmap(addr, len, prot, flags, fd, off);
	uintptr_t a = (uintptr_t)addr;
	size_t n = uxa_round_up(len, UXA_PAGE);
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		if (!uxa_overlaps_arena(a, n))
			return uxa_sys_mmap(addr, len, prot, flags, fd, off);
		if (a & (UXA_PAGE - 1))
			return fail(EINVAL);
		if (!uxa_in_arena(a, n))
			return fail(ENOMEM); /* straddles the arena's edge */
		return arena_fixed(a, n, prot, flags, fd, off, may_wait);
	}
	/* a hint outside the arena asks for a place: the kernel's business;
	 * PROT_NONE is an address reservation, not memory to share */
	if (!anon_private(flags, off) || prot == PROT_NONE || (addr && !uxa_in_arena(a, n)))
		return uxa_sys_mmap(addr, len, prot, flags, fd, off);
	return arena_anon(addr, n, prot, flags, may_wait);
}

/* jemalloc's own mmap calls land here (jemalloc.syms): extents that it
 * allocates with its default hooks, before ours are installed (its
 * initialisation allocates), and its metadata (base blocks, allocated with
 * its grow mutex held) live in the arena too.  No uxa_ensure_init(): the
 * arena is set up before jemalloc initialises. */
void *uxa_je_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *uxa_je_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return arena_mmap(addr, len, prot, flags, fd, off, 0);
}

UXA_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uxa_ensure_init();
	void *r = arena_mmap(addr, len, prot, flags, fd, off, 1);
	if (r != MAP_FAILED && (flags & MAP_FIXED) && !uxa_overlaps_arena((uintptr_t)r, len))
		tell_foreign((uintptr_t)r, len); /* replaced whatever was there */
	return r;
}

UXA_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* Give [s, s + n) (MMAP or FOREIGN) back to the arena; uxa.lock held. */
static int release_range(uintptr_t s, size_t n, unsigned state)
{
	int r = state == SEG_FOREIGN ? remap_arena(s, n, PROT_NONE) : 0;
	if (r == 0)
		r = uxa_punch(s, n);
	if (r == 0 && state == SEG_MMAP)
		r = mprotect((void *)s, n, PROT_NONE) < 0 ? -errno : 0;
	if (r == 0) {
		uxa.free_protected = true;
		r = segs_set(s, n, state, SEG_FREE, 0);
	}
	return r;
}

static int arena_unmap(uintptr_t a, size_t n)
{
	uintptr_t lo = a > uxa.base ? a : uxa.base;
	uintptr_t hi = a + n < uxa.base + uxa.size ? a + n : uxa.base + uxa.size;
	int r = 0;
	/* the parts outside the arena are ordinary mappings */
	if (a < lo && uxa_sys_munmap((void *)a, lo - a) < 0)
		return -errno;
	if (a + n > hi && uxa_sys_munmap((void *)hi, a + n - hi) < 0)
		return -errno;
	pthread_mutex_lock(&uxa.lock);
	uintptr_t cur = lo, s;
	size_t len;
	unsigned st;
	while (r == 0 && segs_next(&cur, hi, SEG_MMAP | SEG_FOREIGN, &s, &len, &st))
		r = release_range(s, len, st);
	pthread_mutex_unlock(&uxa.lock);
	return r;
}

static uxpmem_arena_map_fn map_hook;

UXA_EXPORT void uxpmem_arena_on_map_v1(uxpmem_arena_map_fn fn)
{
	__atomic_store_n(&map_hook, fn, __ATOMIC_RELEASE);
}

void uxa_tell_mapped(uintptr_t a, size_t n, int may_wait)
{
	uxpmem_arena_map_fn fn = __atomic_load_n(&map_hook, __ATOMIC_ACQUIRE);
	if (fn)
		fn(a, n, may_wait);
}

/* HEAP and MMAP are both the application's memory. */
static unsigned mapped_class(unsigned state)
{
	return state & (SEG_HEAP | SEG_MMAP) ? SEG_HEAP | SEG_MMAP : state;
}

UXA_EXPORT int uxpmem_arena_mapped_v1(uint64_t addr, uint64_t len, uint64_t *run)
{
	if (!uxa_in_arena(addr, len) || len == 0)
		return -EINVAL;
	pthread_mutex_lock(&uxa.lock);
	unsigned mask = mapped_class(segs_state_at(addr, NULL));
	uintptr_t cur = addr, end = addr + len, e = addr, s;
	size_t n;
	unsigned st;
	while (e < end && segs_next(&cur, end, mask, &s, &n, &st) && s == e)
		e = s + n;
	pthread_mutex_unlock(&uxa.lock);
	*run = e > addr ? e - addr : len;
	return mask == SEG_FREE ? 0 : mask == SEG_FOREIGN ? 2 : 1;
}

static int do_munmap(void *addr, size_t len, bool tell);

UXA_EXPORT int munmap(void *addr, size_t len)
{
	return do_munmap(addr, len, true);
}

/* tell: run the unmap hook (not for jemalloc's own calls, which may hold
 * allocator locks that the hook's acknowledgements could need). */
static int do_munmap(void *addr, size_t len, bool tell)
{
	uintptr_t a = (uintptr_t)addr;
	if (!uxa.active || len == 0 || !uxa_overlaps_arena(a, uxa_round_up(len, UXA_PAGE))) {
		int r = uxa_sys_munmap(addr, len);
		if (r == 0 && tell)
			tell_foreign(a, len);
		return r;
	}
	if (a & (UXA_PAGE - 1)) {
		errno = EINVAL;
		return -1;
	}
	int r = arena_unmap(a, uxa_round_up(len, UXA_PAGE));
	if (r < 0) {
		errno = -r;
		return -1;
	}
	if (tell)
		tell_unmapped(a, uxa_round_up(len, UXA_PAGE));
	return 0;
}

/* ---- mremap ---------------------------------------------------------------- */

static void *mremap_to_kernel(uintptr_t old, size_t oldsz, size_t newsz, int prot, uintptr_t to)
{
	void *m = uxa_sys_mmap((void *)to, newsz, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (m == MAP_FAILED)
		return m;
	size_t n = oldsz < newsz ? oldsz : newsz;
	if (pread(uxa.fd, m, n, (off_t)(old - uxa.base)) != (ssize_t)n) {
		int e = errno ? errno : EIO;
		uxa_sys_munmap(m, newsz);
		return fail(e);
	}
	if (prot != RW)
		mprotect(m, newsz, prot);
	return m;
}

static void *arena_mremap(uintptr_t old, size_t oldsz, size_t newsz, int flags, uintptr_t to)
{
	int prot = 0;
	pthread_mutex_lock(&uxa.lock);
	if (!segs_all(old, oldsz, SEG_MMAP) || segs_state_at(old, &prot) != SEG_MMAP) {
		pthread_mutex_unlock(&uxa.lock);
		return fail(EFAULT);
	}
	void *ret = MAP_FAILED;
	int err = ENOMEM;
	uintptr_t dst = 0;
	if (!(flags & MREMAP_FIXED) && !(flags & MREMAP_DONTUNMAP)) {
		if (newsz <= oldsz) { /* shrink in place */
			if (newsz < oldsz)
				release_range(old + newsz, oldsz - newsz, SEG_MMAP);
			pthread_mutex_unlock(&uxa.lock);
			return (void *)old;
		}
		if (segs_set(old + oldsz, newsz - oldsz, SEG_FREE, SEG_MMAP, prot) == 0) {
			mprotect((void *)(old + oldsz), newsz - oldsz, prot);
			pthread_mutex_unlock(&uxa.lock);
			uxa_tell_mapped(old + oldsz, newsz - oldsz, 1);
			return (void *)old;
		}
		if (!(flags & MREMAP_MAYMOVE))
			goto out;
		dst = segs_alloc(newsz, UXA_PAGE, SEG_MMAP, prot);
		if (!dst)
			goto out;
		mprotect((void *)dst, newsz, prot);
	} else if (flags & MREMAP_FIXED) {
		if (uxa_overlaps_arena(to, newsz)) {
			err = EINVAL;
			if (!uxa_in_arena(to, newsz) || !segs_all(to, newsz, SEG_FREE | SEG_MMAP | SEG_FOREIGN) ||
			    (to < old + oldsz && old < to + newsz))
				goto out;
			if (uxa_punch(to, newsz) < 0 || remap_arena(to, newsz, prot) < 0 ||
			    segs_set(to, newsz, SEG_FREE | SEG_MMAP | SEG_FOREIGN, SEG_MMAP, prot) < 0)
				goto out;
			dst = to;
		} else {
			ret = mremap_to_kernel(old, oldsz, newsz, prot, to);
			err = errno;
			if (ret == MAP_FAILED)
				goto out;
		}
	} else { /* DONTUNMAP without FIXED */
		dst = segs_alloc(newsz, UXA_PAGE, SEG_MMAP, prot);
		if (!dst)
			goto out;
		mprotect((void *)dst, newsz, prot);
	}
	if (dst) {
		size_t n = oldsz < newsz ? oldsz : newsz;
		int r = uxa_copy_data(uxa.fd, (off_t)(old - uxa.base), uxa.fd,
				      (off_t)(dst - uxa.base), (off_t)n);
		if (r < 0) {
			release_range(dst, newsz, SEG_MMAP);
			err = -r;
			goto out;
		}
		ret = (void *)dst;
	}
	/* the old range: gone, or (DONTUNMAP) still mapped and empty */
	if (flags & MREMAP_DONTUNMAP)
		uxa_punch(old, oldsz);
	else
		release_range(old, oldsz, SEG_MMAP);
out:
	pthread_mutex_unlock(&uxa.lock);
	if (ret == MAP_FAILED)
		errno = err;
	else if (dst)
		uxa_tell_mapped(dst, newsz, 1);
	return ret;
}

UXA_EXPORT void *mremap(void *old_addr, size_t oldsz, size_t newsz, int flags, ...)
{
	void *new_addr = NULL;
	if (flags & MREMAP_FIXED) {
		va_list ap;
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	uintptr_t old = (uintptr_t)old_addr, to = (uintptr_t)new_addr;
	bool old_in = uxa_overlaps_arena(old, oldsz ? oldsz : 1);
	bool new_in = (flags & MREMAP_FIXED) && uxa_overlaps_arena(to, newsz);
	if (!old_in && !new_in) {
		void *r = uxa_sys_mremap(old_addr, oldsz, newsz, flags, new_addr);
		if (r != MAP_FAILED && (r != old_addr || newsz < oldsz))
			tell_foreign(old, oldsz); /* moved or shrunk (new place: libxpmem rereads) */
		return r;
	}
	if ((old & (UXA_PAGE - 1)) || newsz == 0 || oldsz == 0 ||
	    (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) ||
	    ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) && !(flags & MREMAP_MAYMOVE)) ||
	    ((flags & MREMAP_DONTUNMAP) && oldsz != newsz) ||
	    ((flags & MREMAP_FIXED) && (to & (UXA_PAGE - 1))))
		return fail(EINVAL);
	if (!old_in) {
		/* moving outside memory into the arena would punch a hole in it */
		uxa_log(UXA_WARN, "mremap of %#lx into the arena refused", (unsigned long)old);
		return fail(EINVAL);
	}
	size_t o = uxa_round_up(oldsz, UXA_PAGE), n = uxa_round_up(newsz, UXA_PAGE);
	void *r = arena_mremap(old, o, n, flags, to);
	if (r == MAP_FAILED)
		return r;
	if ((uintptr_t)r != old && !(flags & MREMAP_DONTUNMAP))
		tell_unmapped(old, o); /* moved away */
	else if ((uintptr_t)r == old && n < o)
		tell_unmapped(old + n, o - n); /* shrunk */
	return r;
}

/* ---- madvise ----------------------------------------------------------------
 * Private anonymous memory reads back zero after MADV_DONTNEED (and may
 * after MADV_FREE); on the shared arena only a punch gives that. */
UXA_EXPORT int madvise(void *addr, size_t len, int advice)
{
	uintptr_t a = (uintptr_t)addr;
	bool discard = advice == MADV_DONTNEED || advice == MADV_FREE ||
		       advice == MADV_DONTNEED_LOCKED;
	if (!discard || !uxa.active || (a & (UXA_PAGE - 1)) || len == 0 ||
	    !uxa_overlaps_arena(a, uxa_round_up(len, UXA_PAGE)))
		return uxa_sys_madvise(addr, len, advice);
	size_t n = uxa_round_up(len, UXA_PAGE);
	uintptr_t lo = a > uxa.base ? a : uxa.base;
	uintptr_t hi = a + n < uxa.base + uxa.size ? a + n : uxa.base + uxa.size;
	bool outside = a < lo || a + n > hi;
	pthread_mutex_lock(&uxa.lock);
	uintptr_t cur = lo, s;
	size_t l;
	unsigned st;
	int r = 0;
	while (r == 0 && segs_next(&cur, hi, SEG_HEAP | SEG_MMAP, &s, &l, &st))
		r = uxa_punch(s, l);
	cur = lo;
	if (segs_next(&cur, hi, SEG_FOREIGN, &s, &l, &st))
		outside = true;
	pthread_mutex_unlock(&uxa.lock);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	/* foreign and outside parts: the kernel (MADV_FREE on arena pages
	 * would be EINVAL: use DONTNEED, a no-op on them after the punch) */
	if (outside)
		return uxa_sys_madvise(addr, len, advice == MADV_FREE ? MADV_DONTNEED : advice);
	return 0;
}

/* jemalloc's own munmap/madvise calls (jemalloc.syms) */
int uxa_je_munmap(void *addr, size_t len);
int uxa_je_munmap(void *addr, size_t len)
{
	return do_munmap(addr, len, false);
}

int uxa_je_madvise(void *addr, size_t len, int advice);
int uxa_je_madvise(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice);
}
