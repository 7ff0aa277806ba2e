/* arenaholes.c - arena pages the exporter does not have (never allocated,
 * or unmapped): RESOLVE answers them as holes, so an importer's touch
 * raises SIGBUS as with the kernel XPMEM instead of reading the zeros of
 * the sparse memfd.  Each hole given to an importer is remembered; when the
 * application maps memory there again (the arena's map hook), exactly those
 * importers are invalidated and their next touch sees the memory.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "shm.h"
#include "arena/arena.h"

#define MAX_GIVEN 256

struct given {
	struct uxp_conn *c; /* referenced */
	uintptr_t a, b;
};

static pthread_mutex_t holes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct given given[MAX_GIVEN]; /* under holes_lock */
static unsigned ngiven;                /* atomic reads outside the lock */
static int (*mapped_fn)(uint64_t, uint64_t, uint64_t *);
static pthread_once_t fn_once = PTHREAD_ONCE_INIT;

static void find_fn(void)
{
	mapped_fn = (int (*)(uint64_t, uint64_t, uint64_t *))dlsym(RTLD_DEFAULT, "uxpmem_arena_mapped_v1");
}

/* c got [a, b) as a hole (holes_lock held): one record per importer and
 * range; with no room left, an existing record of c grows to cover it. */
static void record_given(struct uxp_conn *c, uintptr_t a, uintptr_t b)
{
	struct given *same = NULL;
	/* closed while its RESOLVE waited: uxp_arena_holes_conn_closed has
	 * run (it takes holes_lock after dead is set), so keep nothing */
	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return;
	for (unsigned i = 0; i < ngiven; i++) {
		struct given *g = &given[i];
		if (g->c != c)
			continue;
		if (a <= g->b && b >= g->a) { /* overlapping or adjacent: merge */
			g->a = a < g->a ? a : g->a;
			g->b = b > g->b ? b : g->b;
			return;
		}
		same = g;
	}
	if (ngiven < MAX_GIVEN) {
		uxp_conn_get(c);
		given[ngiven] = (struct given){ c, a, b };
		__atomic_store_n(&ngiven, ngiven + 1, __ATOMIC_RELEASE);
	} else if (same) {
		same->a = a < same->a ? a : same->a;
		same->b = b > same->b ? b : same->b;
	} else {
		uxp_warn("shm: more than %d arena holes given to importers: pid %d may see SIGBUS at "
			 "%#lx-%#lx after this process maps memory there", MAX_GIVEN, (int)c->peer_pid,
			 (unsigned long)a, (unsigned long)b);
	}
}

static void drop_given(unsigned i)
{
	uxp_conn_put(given[i].c);
	given[i] = given[ngiven - 1];
	__atomic_store_n(&ngiven, ngiven - 1, __ATOMIC_RELEASE);
}

int uxp_arena_run(struct uxp_conn *c, uintptr_t a, uintptr_t b, uintptr_t *end)
{
	pthread_once(&fn_once, find_fn);
	uint64_t run = 0;
	*end = b;
	if (!mapped_fn)
		return 1; /* an arena that cannot say: all of it is memory */
	pthread_mutex_lock(&holes_lock); /* against arena_mapped: query and record at once */
	int k = mapped_fn(a, b - a, &run);
	if (k >= 0 && run > 0 && run <= b - a)
		*end = a + run;
	if (k == 0)
		record_given(c, a, *end);
	pthread_mutex_unlock(&holes_lock);
	return k < 0 ? 1 : k;
}

/* Cut [a, b) out of record i (holes_lock held); 1 if the record went. */
static int cut_given(unsigned i, uintptr_t a, uintptr_t b)
{
	struct given *g = &given[i];
	if (a <= g->a && b >= g->b) {
		drop_given(i);
		return 1;
	}
	if (a <= g->a)
		g->a = b;
	else if (b >= g->b)
		g->b = a;
	else if (ngiven < MAX_GIVEN) { /* split */
		uxp_conn_get(g->c);
		given[ngiven] = (struct given){ g->c, b, g->b };
		g->b = a;
		__atomic_store_n(&ngiven, ngiven + 1, __ATOMIC_RELEASE);
	} /* else: keep it whole (a later map there invalidates once more) */
	return 0;
}

/* Tell c, without waiting, that [a, b) changed (holes_lock held, so c is
 * alive: its records hold references).  Inside the allocator nothing may
 * wait (the service thread that reads acknowledgements may be blocked on
 * the allocator's lock): an INVALIDATE with seq 0, whose ack nobody waits
 * for.  A full socket means the importer reads nothing (as after an
 * invalidation timeout): say so. */
static void tell_now(struct uxp_conn *c, uintptr_t a, uintptr_t b)
{
	struct uxp_msg m;
	uxp_msg_init(&m, UXP_MSG_INVALIDATE);
	m.addr = a;
	m.len = b - a;
	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return;
	int ret = uxp_msg_send(c->fd, &m, -1, MSG_DONTWAIT);
	if (ret < 0)
		uxp_warn("shm: cannot tell pid %d that %#lx-%#lx is memory again (%s): it may see SIGBUS there",
			 (int)c->peer_pid, (unsigned long)a, (unsigned long)b, strerror(-ret));
}

/* The arena's map hook: importers given holes in [start, start+len) map
 * the memory there on their next touch. */
static void arena_mapped(uint64_t start, uint64_t len, int may_wait)
{
	struct uxp_conn *conns[64];
	unsigned n = 0;
	uintptr_t a = start, b = start + len;

	/* always under the lock, never a lock-free peek at ngiven: a RESOLVE
	 * that saw [a, b) free a moment before the arena allocated it records
	 * its hole under this lock, after the allocation */
	pthread_mutex_lock(&holes_lock);
	for (unsigned i = 0; i < ngiven;) {
		struct given *g = &given[i];
		if (g->b <= a || g->a >= b) {
			i++;
			continue;
		}
		unsigned k = 0;
		while (k < n && conns[k] != g->c)
			k++;
		if (k == n && n == UXP_ARRAY_SIZE(conns)) {
			i++; /* no room: its record stays, the next map tells it */
			continue;
		}
		if (k == n) {
			if (may_wait)
				uxp_conn_get(g->c);
			else
				tell_now(g->c, a, b);
			conns[n++] = g->c;
		}
		if (!cut_given(i, a, b))
			i++;
	}
	pthread_mutex_unlock(&holes_lock);
	if (!may_wait || !n)
		return; /* no reference taken: nothing is freed inside the allocator */
	uxp_conv_invalidate(conns, n, a, b);
	for (unsigned i = 0; i < n; i++)
		uxp_conn_put(conns[i]);
}

void uxp_arena_holes_watch(void)
{
	void (*on_map)(uxpmem_arena_map_fn) =
		(void (*)(uxpmem_arena_map_fn))dlsym(RTLD_DEFAULT, "uxpmem_arena_on_map_v1");
	if (on_map)
		on_map(arena_mapped);
}

void uxp_arena_holes_conn_closed(struct uxp_conn *c)
{
	if (!__atomic_load_n(&ngiven, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&holes_lock);
	for (unsigned i = 0; i < ngiven;)
		if (given[i].c == c)
			drop_given(i);
		else
			i++;
	pthread_mutex_unlock(&holes_lock);
}

void uxp_arena_holes_fork_child(void)
{
	/* the parent's importers are not ours; their connections are freed
	 * by uxp_svc_fork_child */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	holes_lock = fresh;
	ngiven = 0;
}
