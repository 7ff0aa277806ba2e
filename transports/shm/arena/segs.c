/*
 * segs.c - the arena's segment map: a page-range allocator (first fit,
 * coalescing) that also remembers who owns each range.
 *
 * A sorted doubly linked list of segments partitions the arena.  Nodes come
 * from a pool of raw mmap'd pages, never from malloc (we are the malloc).
 * O(segments) per call: this is the extent/mmap path, not the attach path.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "arena_int.h"

struct seg {
	uintptr_t start, end;
	struct seg *prev, *next;
	unsigned state;
	int prot; /* MMAP only: the prot it was mapped with */
};

static struct seg *seg_head;
static struct seg *pool_free;

#define POOL_CHUNK (64 * 1024)

static int pool_reserve(unsigned n)
{
	unsigned have = 0;
	for (struct seg *s = pool_free; s && have < n; s = s->next)
		have++;
	if (have >= n)
		return 0;
	void *m = uxa_sys_mmap(NULL, POOL_CHUNK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	struct seg *v = m;
	for (size_t i = 0; i < POOL_CHUNK / sizeof(*v); i++) {
		v[i].next = pool_free;
		pool_free = &v[i];
	}
	return 0;
}

static struct seg *node_get(void)
{
	struct seg *s = pool_free;
	pool_free = s->next;
	memset(s, 0, sizeof(*s));
	return s;
}

static void node_put(struct seg *s)
{
	s->next = pool_free;
	pool_free = s;
}

int segs_init(uintptr_t base, size_t size)
{
	if (pool_reserve(1) < 0)
		return -ENOMEM;
	seg_head = node_get();
	seg_head->start = base;
	seg_head->end = base + size;
	seg_head->state = SEG_FREE;
	return 0;
}

static struct seg *seg_find(uintptr_t a)
{
	for (struct seg *s = seg_head; s; s = s->next)
		if (a >= s->start && a < s->end)
			return s;
	return NULL;
}

/* Split s at a (s->start < a < s->end); returns the upper half.  Needs a
 * reserved node. */
static struct seg *seg_split(struct seg *s, uintptr_t a)
{
	struct seg *t = node_get();
	*t = *s;
	t->start = a;
	t->prev = s;
	if (s->next)
		s->next->prev = t;
	s->next = t;
	s->end = a;
	return t;
}

static bool seg_same(const struct seg *a, const struct seg *b)
{
	return a->state == b->state && (a->state != SEG_MMAP || a->prot == b->prot);
}

/* Merge alike neighbours from first's predecessor through last's successor. */
static void seg_coalesce(struct seg *first, struct seg *last)
{
	uintptr_t stop = last->end;
	struct seg *s = first->prev ? first->prev : first;
	while (s && s->start < stop) {
		struct seg *t = s->next;
		if (!t || !seg_same(s, t)) {
			s = t;
			continue;
		}
		s->end = t->end;
		s->next = t->next;
		if (t->next)
			t->next->prev = s;
		node_put(t);
	}
}

bool segs_all(uintptr_t a, size_t len, unsigned mask)
{
	if (!uxa_in_arena(a, len) || len == 0)
		return false;
	for (struct seg *s = seg_find(a); s && s->start < a + len; s = s->next)
		if (!(s->state & mask))
			return false;
	return true;
}

int segs_set(uintptr_t a, size_t len, unsigned from_mask, unsigned state, int prot)
{
	if (len == 0 || !uxa_in_arena(a, len))
		return -EINVAL;
	if (!segs_all(a, len, from_mask))
		return -EINVAL;
	if (pool_reserve(2) < 0)
		return -ENOMEM;
	struct seg *first = seg_find(a);
	if (first->start < a)
		first = seg_split(first, a);
	struct seg *last = seg_find(a + len - 1);
	if (last->end > a + len)
		seg_split(last, a + len);
	for (struct seg *s = first;; s = s->next) {
		s->state = state;
		s->prot = state == SEG_MMAP ? prot : 0;
		if (s == last)
			break;
	}
	seg_coalesce(first, last);
	return 0;
}

uintptr_t segs_alloc(size_t len, size_t align, unsigned state, int prot)
{
	if (align < UXA_PAGE)
		align = UXA_PAGE;
	for (struct seg *s = seg_head; s; s = s->next) {
		if (s->state != SEG_FREE)
			continue;
		uintptr_t a = uxa_round_up(s->start, align);
		if (a < s->start || a >= s->end || s->end - a < len)
			continue;
		return segs_set(a, len, SEG_FREE, state, prot) == 0 ? a : 0;
	}
	return 0;
}

unsigned segs_state_at(uintptr_t a, int *prot)
{
	struct seg *s = uxa_in_arena(a, 1) ? seg_find(a) : NULL;
	if (!s)
		return 0;
	if (prot)
		*prot = s->prot;
	return s->state;
}

bool segs_next(uintptr_t *cursor, uintptr_t end, unsigned mask,
	       uintptr_t *start, size_t *n, unsigned *state)
{
	for (struct seg *s = seg_find(*cursor); s && s->start < end; s = s->next) {
		if (!(s->state & mask))
			continue;
		uintptr_t lo = s->start > *cursor ? s->start : *cursor;
		uintptr_t hi = s->end < end ? s->end : end;
		*start = lo;
		*n = hi - lo;
		*state = s->state;
		*cursor = hi;
		return true;
	}
	*cursor = end;
	return false;
}
