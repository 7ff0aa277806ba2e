/*
 * arena_int.h - internals of libuxpmem-arena.so (never installed).
 *
 * The arena is one sparse memfd mapped MAP_SHARED at [base, base + size).
 * A segment map partitions it into page ranges, each FREE, HEAP (an extent
 * jemalloc got from our hooks), MMAP (served to an anonymous private mmap)
 * or FOREIGN (the application mapped something else over it with
 * MAP_FIXED).  Invariant: a FREE range reads back zero in the memfd (it was
 * punched before it became free), so allocations are zero without writing.
 * One mutex (uxa.lock) guards the map; callers of segs_* hold it.
 */
#ifndef UXA_ARENA_INT_H
#define UXA_ARENA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#define UXA_EXPORT __attribute__((visibility("default")))
#define UXA_PAGE 4096UL
#define UXA_HUGE (2UL << 20)
#define uxa_likely(x) __builtin_expect(!!(x), 1)
#define uxa_unlikely(x) __builtin_expect(!!(x), 0)

static inline uintptr_t uxa_round_up(uintptr_t x, uintptr_t a)
{
	return (x + a - 1) & ~(a - 1);
}

enum uxa_seg_state {
	SEG_FREE = 1,
	SEG_HEAP = 2,
	SEG_MMAP = 4,
	SEG_FOREIGN = 8,
};

struct uxa_state {
	uintptr_t base;
	size_t size;
	int fd;
	unsigned generation;
	bool active;          /* arena usable (set once, before the hooks) */
	bool free_protected;  /* some FREE pages may be PROT_NONE (munmap) */
	pthread_mutex_t lock;
};
extern struct uxa_state uxa;

/* ---- arena.c ---- */
void uxa_ensure_init(void);
static inline bool uxa_in_arena(uintptr_t a, size_t len)
{
	return uxa.active && a >= uxa.base && len <= uxa.size && a - uxa.base <= uxa.size - len;
}
static inline bool uxa_overlaps_arena(uintptr_t a, size_t len)
{
	return uxa.active && a < uxa.base + uxa.size && a + len > uxa.base;
}
/* Punch [a, a + len) out of the memfd: frees the pages, reads back zero. */
int uxa_punch(uintptr_t a, size_t len);
/* Copy the populated parts of [src, src + len) of file sfd to offset dst of
 * dfd (holes stay holes).  0 or -errno. */
int uxa_copy_data(int sfd, off_t src, int dfd, off_t dst, off_t len);
void uxa_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define UXA_WARN 2
#define UXA_DEBUG 4

/* ---- mmap.c ---- */
/* [a, a + n) became memory of the application (FREE before): tell
 * libxpmem (no arena lock held; may_wait 0 inside jemalloc). */
void uxa_tell_mapped(uintptr_t a, size_t n, int may_wait);

/* ---- raw system calls (also what jemalloc's own mmap calls become) ---- */
void *uxa_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int uxa_sys_munmap(void *addr, size_t len);
int uxa_sys_madvise(void *addr, size_t len, int advice);
void *uxa_sys_mremap(void *old, size_t oldsz, size_t newsz, int flags, void *new_addr);
int uxa_sys_shmdt(const void *addr);

/* ---- segs.c: the segment map (caller holds uxa.lock) ---- */
int segs_init(uintptr_t base, size_t size);
/* First fit of a FREE range of len bytes aligned to align; the range
 * becomes state/prot.  Returns its address or 0. */
uintptr_t segs_alloc(size_t len, size_t align, unsigned state, int prot);
/* Set [a, a + len) to state/prot if every page of it is in from_mask:
 * 0, -EINVAL (outside the arena or a page in another state), -ENOMEM. */
int segs_set(uintptr_t a, size_t len, unsigned from_mask, unsigned state, int prot);
/* true if every page of [a, a + len) is in mask. */
bool segs_all(uintptr_t a, size_t len, unsigned mask);
/* State and prot of the segment containing a (0 if none). */
unsigned segs_state_at(uintptr_t a, int *prot);
/* The first maximal part of [*cursor, end) whose state is in mask: true
 * and *s, *n, *state filled, *cursor moved past it; false if none.  The map
 * may be changed between calls. */
bool segs_next(uintptr_t *cursor, uintptr_t end, unsigned mask,
	       uintptr_t *s, size_t *n, unsigned *state);

#endif /* UXA_ARENA_INT_H */
