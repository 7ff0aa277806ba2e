/* importer.c - apids this process holds and its attachments.
 *
 * Hot path: attaching an arena range without a fixed address is a lookup
 * in two sharded tables and pointer arithmetic into the apid's one mapping
 * of the exporter's arena - no syscall, no message, no new VMA, no
 * process-wide lock.  Other memory is attached through windows: mappings of
 * a range of the exporter, resolved once with a margin around what was
 * asked and kept after the last detach (a few per apid), so that attaching
 * memory resolved before is the same pointer arithmetic.  Windows follow
 * the exporter like attachments do (invalidated parts re-resolve on touch),
 * but an invalidated window takes no new attaches and is unmapped when its
 * last one is detached.  Lock order: apid->lock, then apid->wlock, then a
 * table shard.
 */
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#include "shm.h"
#include "uxpmem.h"

struct apid {
	xpmem_apid_t id;
	xpmem_segid_t segid;
	int refs;               /* atomic: table + attachments + users */
	pthread_mutex_t lock;   /* mapping changes (attach own VMA, revoke, release) */
	struct uxp_conn *conn;  /* referenced */
	uint64_t grant;
	int prot;
	uintptr_t seg_vaddr;
	size_t seg_size;
	uintptr_t arena_base;
	size_t arena_size;
	int arena_fd;           /* -1: the exporter sent none, all holes */
	void *arena_map;        /* atomic: the arena, mapped once on demand */
	int revoked;            /* atomic */
	unsigned inval_gen;     /* invalidations seen, under lock */
	pthread_mutex_t wlock;  /* wins, and each window's users and state */
	struct win *wins;
	unsigned nidle;         /* live windows without users */
	uint64_t wtick;         /* LRU clock of the windows */
};

/* A window: [x, x+len) of the exporter mapped at map. */
enum { WIN_LIVE, WIN_STALE, WIN_DEAD };
struct win {
	uintptr_t x, len;
	uintptr_t lo, hi;       /* where attaches may point: no hole around the first one */
	char *map;
	unsigned users;         /* attachment records pointing into it */
	int state;              /* LIVE: takes attaches; STALE: invalidated or revoked,
				 * unmapped when unused; DEAD: unmapped (release) */
	uint64_t used;          /* wtick of its last attach */
	struct win *next;
};

#define WIN_MARGIN_MIN (4ul << 20)
#define WIN_MARGIN_MAX (128ul << 20)
#define WIN_IDLE_MAX 64

struct att {
	uintptr_t addr;
	size_t size;
	uintptr_t xaddr;        /* the exporter address it shows (own VMAs) */
	struct apid *ap;        /* referenced */
	int own_vma;            /* we mapped [addr, addr+size) for it */
	unsigned count;         /* arena pointers: attaches not yet detached */
	uint64_t serial;        /* tells a record from a later one at the same address */
	struct win *w;          /* a pointer into this window (holds one of its users) */
};

static uint64_t att_serial;

static struct uxp_idtab apids; /* apid -> struct apid */
static struct uxp_idtab atts;  /* address -> struct att */
static pthread_once_t imp_once = PTHREAD_ONCE_INIT;

static void imp_init(void)
{
	uxp_idtab_init(&apids);
	uxp_idtab_init(&atts);
}

static void ap_hold(void *p)
{
	__atomic_add_fetch(&((struct apid *)p)->refs, 1, __ATOMIC_RELAXED);
}

static void free_wins(struct apid *ap, int unmap)
{
	while (ap->wins) {
		struct win *w = ap->wins;
		ap->wins = w->next;
		if (unmap && w->state != WIN_DEAD)
			uxp_sys_munmap(w->map, w->len);
		free(w);
	}
}

static void ap_put(struct apid *ap)
{
	if (__atomic_sub_fetch(&ap->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free_wins(ap, 1);
	pthread_mutex_destroy(&ap->wlock);
	if (ap->arena_fd >= 0)
		close(ap->arena_fd);
	uxp_conn_put(ap->conn);
	pthread_mutex_destroy(&ap->lock);
	free(ap);
}

static int own_id(int64_t id, const char *what)
{
	if (uxp_id_pid(id) == getpid() && uxp_id_node(id) == 0)
		return 0;
	return uxp_fail(EACCES, "shm: %s: apid %#llx belongs to pid %d", what,
			(unsigned long long)id, (int)uxp_id_pid(id));
}

/* ---- get / release --------------------------------------------------- */

static void zap(struct apid *ap, const char *why);

static int new_apid(struct uxp_conn *c, xpmem_segid_t segid, const struct uxp_msg *r, int fd,
		    int flags, xpmem_apid_t *out)
{
	struct apid *ap = calloc(1, sizeof(*ap));
	if (!ap)
		return -ENOMEM;
	*ap = (struct apid){
		.segid = segid, .refs = 1, .conn = c, .grant = r->grant,
		.prot = flags == XPMEM_RDWR ? PROT_READ | PROT_WRITE : PROT_READ,
		.seg_vaddr = r->seg_vaddr, .seg_size = r->seg_size,
		.arena_base = r->arena_base, .arena_size = fd >= 0 ? r->arena_size : 0,
		.arena_fd = fd,
	};
	pthread_mutex_init(&ap->lock, NULL);
	pthread_mutex_init(&ap->wlock, NULL);
	int ret, revoked = 0;
	/* Under c->lock, against zap_by_conn: either it finds this apid, or
	 * we find what it revoked before the apid existed. */
	pthread_mutex_lock(&c->lock);
	do {
		ap->id = uxp_id_compose(0, getpid(), uxp_next_serial());
		/* events from the moment it can be revoked */
		uxp_revoke_apid_added(ap->id);
		ret = uxp_idtab_insert(&apids, (uint64_t)ap->id, ap);
		if (ret < 0)
			uxp_revoke_apid_released(ap->id);
	} while (ret == -EEXIST);
	if (ret == 0 && __atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		revoked = c->close_error ? UXPMEM_REVOKE_ERROR : UXPMEM_REVOKE_EXITED;
	for (unsigned i = 0; ret == 0 && !revoked && i < c->norphans; i++)
		if (c->orphans[i] == ap->grant) {
			c->orphans[i] = c->orphans[--c->norphans];
			revoked = UXPMEM_REVOKE_REMOVED;
		}
	pthread_mutex_unlock(&c->lock);
	if (ret < 0) {
		pthread_mutex_destroy(&ap->wlock);
		free(ap);
		return ret;
	}
	if (revoked) {
		zap(ap, "revoked while the reply was on its way");
		uxp_revoke_emit(ap->id, ap->segid, revoked, NULL, 0, 0, ap->seg_size);
	}
	*out = ap->id;
	return 0;
}

int uxp_imp_get(xpmem_segid_t segid, int flags, xpmem_apid_t *apid)
{
	struct uxp_conn *c;
	struct uxp_msg req;
	struct uxp_msgbuf rb;
	struct uxp_msg *const r = &rb.m;
	int fds[UXP_MAX_FDS];
	unsigned nfds = 0;
	int fd = -1;

	pthread_once(&imp_once, imp_init);
	if (uxp_id_node(segid) != 0)
		return uxp_fail(ENOENT, "shm: get: segid %#llx is on node %u (no remote transport)",
				(unsigned long long)segid, uxp_id_node(segid));
	int ret = uxp_svc_connect(uxp_id_pid(segid), &c);
	if (ret < 0)
		return ret;
	uxp_msg_init(&req, UXP_MSG_GET);
	req.segid = segid;
	req.flags = (uint32_t)flags;
	ret = uxp_svc_request(c, &req, &rb, fds, &nfds);
	if (ret == 0 && (r->type != UXP_MSG_GET_REPLY || nfds > 1)) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		nfds = 0;
		ret = uxp_fail(EPROTO, "shm: get: pid %d answered with message %u", (int)c->peer_pid,
			       r->type);
	}
	if (ret == 0 && nfds)
		fd = fds[0]; /* decode allows exactly one, with an arena */
	if (ret == 0 && r->status < 0)
		ret = uxp_fail(-r->status, "shm: get: exporter pid %d refused segid %#llx: %s",
			       (int)c->peer_pid, (unsigned long long)segid, strerror(-r->status));
	if (ret == 0 && fd < 0 && r->arena_size == 0)
		uxp_debug("shm: get: segid %#llx comes without memory: attachments are holes "
			  "(exporter has no arena, or another uid and not the whole address space)",
			  (unsigned long long)segid);
	if (ret == 0)
		ret = new_apid(c, segid, r, fd, flags, apid);
	if (ret < 0) {
		if (fd >= 0)
			close(fd);
		uxp_conn_put(c);
	}
	return ret;
}

/* Collect the attachments of ap (own VMAs only if own_only). */
struct collect {
	struct apid *ap;
	int own_only;
	struct att **v;
	size_t n, cap;
	int oom;
};

static int collect_att(uint64_t key, void *obj, void *arg)
{
	struct att *a = obj;
	struct collect *cl = arg;
	(void)key;
	if (a->ap != cl->ap || (cl->own_only && !a->own_vma))
		return 0;
	if (cl->n == cl->cap) {
		size_t cap = cl->cap ? cl->cap * 2 : 16;
		struct att **v = realloc(cl->v, cap * sizeof(*v));
		if (!v) {
			cl->oom = 1;
			return 1;
		}
		cl->v = v;
		cl->cap = cap;
	}
	cl->v[cl->n++] = a;
	return 0;
}

/* Map the SIGBUS memfd over every mapping of ap: from now on touching any
 * attachment of it raises SIGBUS, as with the kernel XPMEM after remove. */
static void zap(struct apid *ap, const char *why)
{
	struct collect cl = { .ap = ap, .own_only = 1 };
	int hole = uxp_hole_fd();

	pthread_mutex_lock(&ap->lock);
	__atomic_store_n(&ap->revoked, 1, __ATOMIC_RELEASE);
	ap->inval_gen++; /* a resolve in flight maps nothing */
	if (ap->arena_map && uxp_sys_mmap(ap->arena_map, ap->arena_size, ap->prot,
				  MAP_SHARED | MAP_FIXED | MAP_NORESERVE, hole, 0) == MAP_FAILED)
		uxp_error("shm: cannot revoke the arena mapping of apid %#llx: %s",
			  (unsigned long long)ap->id, strerror(errno));
	uxp_idtab_foreach(&atts, collect_att, &cl);
	for (size_t i = 0; i < cl.n; i++)
		if (uxp_sys_mmap((void *)cl.v[i]->addr, cl.v[i]->size, ap->prot,
			 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, hole, 0) == MAP_FAILED)
			uxp_error("shm: cannot revoke attachment %#lx: %s",
				  (unsigned long)cl.v[i]->addr, strerror(errno));
	pthread_mutex_lock(&ap->wlock);
	for (struct win *w = ap->wins; w; w = w->next) {
		if (w->state == WIN_DEAD)
			continue;
		if (uxp_sys_mmap(w->map, w->len, ap->prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, hole, 0) ==
		    MAP_FAILED)
			uxp_error("shm: cannot revoke window %#lx: %s", (unsigned long)w->map,
				  strerror(errno));
		if (w->state == WIN_LIVE && w->users == 0)
			ap->nidle--;
		w->state = WIN_STALE;
	}
	pthread_mutex_unlock(&ap->wlock);
	if (cl.oom)
		uxp_error("shm: out of memory while revoking apid %#llx", (unsigned long long)ap->id);
	pthread_mutex_unlock(&ap->lock);
	free(cl.v);
	uxp_debug("shm: apid %#llx revoked: %s", (unsigned long long)ap->id, why);
}

/* ---- windows --------------------------------------------------------- */

/* Release: every window is unmapped (caller holds ap->lock); those still
 * pointed to by records being detached are freed by their last win_put. */
static void unmap_wins(struct apid *ap)
{
	pthread_mutex_lock(&ap->wlock);
	for (struct win **pw = &ap->wins; *pw;) {
		struct win *w = *pw;
		if (w->state != WIN_DEAD)
			uxp_sys_munmap(w->map, w->len);
		w->state = WIN_DEAD;
		if (w->users == 0) {
			*pw = w->next;
			free(w);
		} else {
			pw = &w->next;
		}
	}
	ap->nidle = 0;
	pthread_mutex_unlock(&ap->wlock);
}

static void win_unlink(struct apid *ap, struct win *w)
{
	for (struct win **pw = &ap->wins; *pw; pw = &(*pw)->next)
		if (*pw == w) {
			*pw = w->next;
			return;
		}
}

/* The least recently used live window without users (caller holds wlock). */
static struct win *win_lru_idle(struct apid *ap)
{
	struct win *lru = NULL;
	for (struct win *w = ap->wins; w; w = w->next)
		if (w->state == WIN_LIVE && w->users == 0 && (!lru || w->used < lru->used))
			lru = w;
	return lru;
}

/* Unmap an unlinked window (not under ap->lock: taken here, so that a
 * refault in flight maps nothing into the freed range). */
static void win_unmap_free(struct apid *ap, struct win *w)
{
	pthread_mutex_lock(&ap->lock);
	ap->inval_gen++;
	uxp_sys_munmap(w->map, w->len);
	pthread_mutex_unlock(&ap->lock);
	free(w);
}

/* One user less: a stale window goes with its last user, and the oldest
 * idle one when too many are idle.  Not under ap->lock unless w is DEAD. */
static void win_put(struct apid *ap, struct win *w)
{
	struct win *evict = NULL;
	pthread_mutex_lock(&ap->wlock);
	if (--w->users == 0) {
		if (w->state == WIN_DEAD) {
			win_unlink(ap, w);
			free(w);
		} else if (w->state == WIN_STALE) {
			evict = w;
		} else if (++ap->nidle > WIN_IDLE_MAX) {
			evict = win_lru_idle(ap);
			ap->nidle--;
		}
		if (evict)
			win_unlink(ap, evict);
	}
	pthread_mutex_unlock(&ap->wlock);
	if (evict)
		win_unmap_free(ap, evict);
}

/* A live window showing all of [x, x+size), with one more user. */
static struct win *win_find_hold(struct apid *ap, uintptr_t x, size_t size)
{
	struct win *w;
	pthread_mutex_lock(&ap->wlock);
	for (w = ap->wins; w; w = w->next)
		if (w->state == WIN_LIVE && w->lo <= x && x + size <= w->hi)
			break;
	if (w) {
		if (w->users++ == 0)
			ap->nidle--;
		w->used = ++ap->wtick;
	}
	pthread_mutex_unlock(&ap->wlock);
	return w;
}

/* The exporter range a window for [x, x+size) shows: a margin on both
 * sides, within the segment (page aligned). */
static void win_range(const struct apid *ap, uintptr_t x, size_t size, uintptr_t *wx, size_t *wlen)
{
	size_t m = size >= WIN_MARGIN_MAX / 16 ? WIN_MARGIN_MAX
		   : size * 16 < WIN_MARGIN_MIN ? WIN_MARGIN_MIN : size * 16;
	uintptr_t seg_end = (ap->seg_vaddr + ap->seg_size) & ~(uintptr_t)(uxp_page_size - 1);
	uintptr_t lo = x - ap->seg_vaddr > m ? x - m : ap->seg_vaddr;
	uintptr_t hi = seg_end > x + size && seg_end - (x + size) > m ? x + size + m : x + size;
	if (hi == x + size && seg_end > hi)
		hi = seg_end;
	*wx = lo;
	*wlen = hi - lo;
}

static int unmap_att(struct att *a)
{
	if (a->own_vma && uxp_sys_munmap((void *)a->addr, a->size) < 0)
		return uxp_fail(errno, "shm: munmap %#lx: %s", (unsigned long)a->addr, strerror(errno));
	return 0;
}

int uxp_imp_release(xpmem_apid_t id)
{
	int ret = own_id(id, "release");
	if (ret < 0)
		return ret;
	pthread_once(&imp_once, imp_init);
	struct apid *ap = uxp_idtab_remove(&apids, (uint64_t)id, NULL);
	if (!ap)
		return uxp_fail(ENOENT, "shm: release: no apid %#llx (released already?)",
				(unsigned long long)id);

	struct collect cl = { .ap = ap };
	pthread_mutex_lock(&ap->lock);
	ap->inval_gen++; /* a refault in flight must not map into what we unmap */
	unmap_wins(ap);
	uxp_idtab_foreach(&atts, collect_att, &cl);
	for (size_t i = 0; i < cl.n; i++) {
		struct att *a = cl.v[i];
		if (uxp_idtab_remove(&atts, a->addr, a) != a)
			continue; /* detached meanwhile */
		unmap_att(a);
		if (a->w)
			win_put(ap, a->w);
		free(a);
		ap_put(ap);
	}
	if (ap->arena_map)
		uxp_sys_munmap(ap->arena_map, ap->arena_size);
	ap->arena_map = NULL;
	pthread_mutex_unlock(&ap->lock);
	free(cl.v);

	if (!__atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE)) {
		struct uxp_msg m;
		uxp_msg_init(&m, UXP_MSG_RELEASE);
		m.grant = ap->grant;
		uxp_msg_send(ap->conn->fd, &m, -1, MSG_DONTWAIT);
	}
	ap_put(ap);
	return 0;
}

/* ---- attach / detach ------------------------------------------------- */

static void watch_arena(struct apid *ap, uintptr_t at, size_t len);

static void *arena_map(struct apid *ap)
{
	void *map = __atomic_load_n(&ap->arena_map, __ATOMIC_ACQUIRE);
	if (uxp_likely(map))
		return map;
	pthread_mutex_lock(&ap->lock);
	map = ap->arena_map;
	if (!map && !ap->revoked) {
		/* libc's: a new mapping made by the application's thread, as its
		 * own would be (sanitizers reset their view of the range) */
		map = mmap(NULL, ap->arena_size, ap->prot, MAP_SHARED | MAP_NORESERVE, ap->arena_fd, 0);
		if (map == MAP_FAILED) {
			uxp_debug("shm: mapping the arena of pid %d: %s", (int)ap->conn->peer_pid,
				  strerror(errno));
			map = NULL;
		} else {
			uxp_sys_madvise(map, ap->arena_size, MADV_DONTFORK); /* not inherited */
			watch_arena(ap, (uintptr_t)map, ap->arena_size);
			__atomic_store_n(&ap->arena_map, map, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&ap->lock);
	return map;
}

/* Record one more attach of a pointer into the arena or window w (shared
 * record per address).  1 if the record existed (it holds w's user already). */
static int add_ptr_att(struct apid *ap, struct win *w, uintptr_t addr, size_t size)
{
	int ret = 0;
	uxp_idtab_lock(&atts, addr);
	struct att *a = uxp_idtab_get_locked(&atts, addr);
	if (a && a->ap == ap && !a->own_vma && a->w == w) {
		a->count++;
		if (size > a->size)
			a->size = size;
		ret = 1;
	} else if (a) {
		ret = -EEXIST; /* cannot happen: addresses of different maps differ */
	} else if (!(a = malloc(sizeof(*a)))) {
		ret = -ENOMEM;
	} else {
		*a = (struct att){ .addr = addr, .size = size, .ap = ap, .count = 1, .w = w };
		ret = uxp_idtab_insert_locked(&atts, addr, a);
		if (ret < 0)
			free(a);
		else
			ap_hold(ap);
	}
	uxp_idtab_unlock(&atts, addr);
	return ret;
}

static int attach_arena_ptr(struct apid *ap, uintptr_t x, size_t size, void **addr)
{
	char *map = arena_map(ap);
	if (!map)
		return __atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE)
			       ? uxp_fail(ENOENT, "shm: attach: apid %#llx was revoked", (unsigned long long)ap->id)
			       : -ENOMEM;
	uintptr_t at = (uintptr_t)map + (x - ap->arena_base);
	int ret = add_ptr_att(ap, NULL, at, size);
	if (ret < 0)
		return ret;
	*addr = (void *)at;
	return 0;
}

/* Map [x, x+size) of the exporter at vaddr (or anywhere): the arena part
 * from the arena memfd, everything else from the SIGBUS memfd. */
static int map_own_vma(struct apid *ap, uintptr_t x, size_t size, uintptr_t vaddr, char **out)
{
	int flags = MAP_SHARED | MAP_NORESERVE | (vaddr ? MAP_FIXED_NOREPLACE : 0);
	/* libc's mmap for the new mapping (see arena_map); the rest of what the
	 * library maps, here and in its threads, hooks never see (uxp_sys_mmap) */
	char *p = mmap((void *)vaddr, size, ap->prot, flags, uxp_hole_fd(), 0);
	if (p == MAP_FAILED)
		return errno == EEXIST ? uxp_fail(EINVAL, "shm: attach: vaddr %#lx+%#zx overlaps a mapping",
						  (unsigned long)vaddr, size)
				       : uxp_fail(errno, "shm: attach: mmap: %s", strerror(errno));
	if (vaddr && (uintptr_t)p != vaddr) { /* kernel without MAP_FIXED_NOREPLACE */
		uxp_sys_munmap(p, size);
		return uxp_fail(EINVAL, "shm: attach: vaddr %#lx is not free", (unsigned long)vaddr);
	}
	uintptr_t lo = x > ap->arena_base ? x : ap->arena_base;
	uintptr_t hi = x + size < ap->arena_base + ap->arena_size ? x + size : ap->arena_base + ap->arena_size;
	if (ap->arena_fd >= 0 && lo < hi &&
	    uxp_sys_mmap(p + (lo - x), hi - lo, ap->prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
		 ap->arena_fd, (off_t)(lo - ap->arena_base)) == MAP_FAILED) {
		int e = errno;
		uxp_sys_munmap(p, size);
		return uxp_fail(e, "shm: attach: mapping the arena: %s", strerror(e));
	}
	if (ap->arena_fd >= 0 && lo < hi)
		watch_arena(ap, (uintptr_t)p + (lo - x), hi - lo);
	uxp_sys_madvise(p, size, MADV_DONTFORK);
	*out = p;
	return 0;
}

/* Attach [offset, offset+len) of SysV segment shmid at `at` (the exporter
 * sent its id: shmat checks our own permission; read-only if that is all
 * we may).  shmat maps the whole segment: the part is moved into place and
 * the rest unmapped. */
static int map_sysv(struct apid *ap, char *at, const struct uxp_piece *pc)
{
	int shmid = (int)pc->fd;
	struct shmid_ds ds;
	int rdonly = !(ap->prot & PROT_WRITE);
	if (shmctl(shmid, IPC_STAT, &ds) < 0)
		return uxp_fail(errno, "shm: attach: SysV segment %d of pid %d: %s", shmid,
				(int)ap->conn->peer_pid, strerror(errno));
	size_t segsz = (ds.shm_segsz + uxp_page_size - 1) & ~(uxp_page_size - 1);
	if (pc->offset > segsz || pc->len > segsz - pc->offset)
		return uxp_fail(EPROTO, "shm: attach: pid %d sent %#llx+%#llx of a %#zx-byte SysV segment",
				(int)ap->conn->peer_pid, (unsigned long long)pc->offset,
				(unsigned long long)pc->len, segsz);
	char *q = uxp_sys_shmat(shmid, NULL, rdonly ? SHM_RDONLY : 0);
	if (q == (char *)-1 && errno == EACCES && !rdonly)
		q = uxp_sys_shmat(shmid, NULL, SHM_RDONLY);
	if (q == (char *)-1)
		return uxp_fail(errno, "shm: attach: shmat of SysV segment %d of pid %d: %s", shmid,
				(int)ap->conn->peer_pid, strerror(errno));
	if (uxp_sys_mremap(q + pc->offset, pc->len, pc->len, MREMAP_MAYMOVE | MREMAP_FIXED, at) ==
	    MAP_FAILED) {
		int e = errno;
		uxp_sys_shmdt(q);
		return uxp_fail(e, "shm: attach: moving SysV segment %d into place: %s", shmid, strerror(e));
	}
	uxp_sys_madvise(at, pc->len, MADV_DONTFORK); /* attachments are not inherited */
	if (pc->offset)
		uxp_sys_munmap(q, pc->offset);
	if (pc->offset + pc->len < segsz)
		uxp_sys_munmap(q + pc->offset + pc->len, segsz - pc->offset - pc->len);
	return 0;
}

/* Map one piece of a RESOLVE_REPLY at its place in the attachment p (which
 * shows exporter addresses from x); holes are already there. */
static int map_piece(struct apid *ap, char *p, uintptr_t x, const struct uxp_piece *pc, const int *fds)
{
	int fd = pc->kind == UXP_PIECE_FD ? fds[pc->fd] : pc->kind == UXP_PIECE_ARENA ? ap->arena_fd : -1;
	off_t off = (off_t)pc->offset;
	int prot = ap->prot;
	if (pc->kind == UXP_PIECE_SYSV && map_sysv(ap, p + (pc->addr - x), pc) == 0)
		return 0;
	if (fd < 0) { /* a hole: SIGBUS (over a placeholder, too) */
		fd = uxp_hole_fd();
		off = 0;
	} else if (pc->kind == UXP_PIECE_FD && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
		prot &= ~PROT_WRITE; /* the exporter's file is read-only for us: writes fault */
	}
	if (uxp_sys_mmap(p + (pc->addr - x), pc->len, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd,
		 off) == MAP_FAILED)
		return uxp_fail(errno, "shm: attach: mapping %#llx+%#llx of pid %d: %s",
				(unsigned long long)pc->addr, (unsigned long long)pc->len,
				(int)ap->conn->peer_pid, strerror(errno));
	return 0;
}

/* A window's resolve: what the application attaches (need, the only part
 * the exporter may convert) and the hole-free range around it (ok). */
struct usable {
	uintptr_t need_lo, need_hi;
	uintptr_t lo, hi;       /* out */
	int bad;                /* out: a hole inside the need */
};

/* Narrow u->lo/hi to the holes of a reply (they may be memory the exporter
 * did not convert because nobody asked for it yet). */
static void note_holes(const struct apid *ap, const struct uxp_msgbuf *rb, struct usable *u)
{
	for (unsigned i = 0; i < rb->m.count; i++) {
		const struct uxp_piece *pc = &rb->piece[i];
		if (pc->kind == UXP_PIECE_FD || (pc->kind == UXP_PIECE_ARENA && ap->arena_fd >= 0))
			continue;
		uintptr_t a = pc->addr, b = pc->addr + pc->len;
		if (b <= u->need_lo && b > u->lo)
			u->lo = b;
		else if (a >= u->need_hi && a < u->hi)
			u->hi = a;
		else if (a < u->need_hi && b > u->need_lo)
			u->bad = 1;
	}
}

/* The RESOLVE request for [at, at+len): with u, only the need may be converted. */
static void resolve_req(struct uxp_msg *req, const struct apid *ap, uintptr_t at, size_t len,
			const struct usable *u)
{
	uxp_msg_init(req, UXP_MSG_RESOLVE);
	req->grant = ap->grant;
	req->addr = at;
	req->len = len;
	if (!u)
		return;
	req->flags = UXP_RESOLVE_NEED;
	uintptr_t lo = u->need_lo > at ? u->need_lo : at;
	uintptr_t hi = u->need_hi < at + len ? u->need_hi : at + len;
	if (lo < hi) {
		req->seg_vaddr = lo;
		req->seg_size = hi - lo;
	}
}

/* Map piece pc, but of a hole only the part over exporter page `fault`
 * (when not 0: a refault).  The rest of a hole keeps its placeholder and
 * re-resolves when touched: the exporter may be between an munmap and the
 * mmap that reuses the range (glibc's free + malloc), and nothing would tell
 * us of the new mapping over a SIGBUS one. */
static int map_piece_at(struct apid *ap, char *p, uintptr_t x, const struct uxp_piece *pc,
			const int *fds, uintptr_t fault)
{
	if (!fault || pc->kind != UXP_PIECE_HOLE)
		return map_piece(ap, p, x, pc, fds);
	if (fault < pc->addr || fault >= pc->addr + pc->len)
		return 0;
	struct uxp_piece page = *pc;
	page.addr = fault;
	page.len = uxp_page_size;
	return map_piece(ap, p, x, &page, fds);
}

/* Ask the exporter what backs [x, x+size) (converting private memory in
 * place) and map it into p, which shows exporter addresses from x.  Called
 * without ap->lock (the exporter may wait for our acknowledgement of an
 * invalidation meanwhile); each reply is mapped under ap->lock, only if no
 * invalidation came since generation gen, else -EAGAIN.  With u, a window:
 * only u's need is converted, and u tells where the holes are.  fault: see
 * map_piece_at. */
static int resolve_into(struct apid *ap, char *p, uintptr_t x, size_t size, unsigned gen,
			struct usable *u, uintptr_t fault)
{
	static __thread struct uxp_msgbuf rb; /* 2 KiB: not on small stacks */
	int fds[UXP_MAX_FDS];
	unsigned nfds;
	size_t done = 0;
	int ret = 0;

	while (ret == 0 && done < size) {
		struct uxp_msg req;
		resolve_req(&req, ap, x + done, size - done, u);
		ret = uxp_svc_request(ap->conn, &req, &rb, fds, &nfds);
		if (ret < 0)
			break;
		if (rb.m.type != UXP_MSG_RESOLVE_REPLY || rb.m.addr != x + done ||
		    rb.m.len > size - done || (rb.m.status == 0 && rb.m.len == 0)) {
			for (unsigned i = 0; i < nfds; i++)
				close(fds[i]);
			ret = uxp_fail(EPROTO, "shm: attach: bad resolve reply from pid %d",
				       (int)ap->conn->peer_pid);
			break;
		}
		if (rb.m.status < 0)
			ret = uxp_fail(-rb.m.status, "shm: attach: pid %d cannot resolve %#lx+%#zx: %s",
				       (int)ap->conn->peer_pid, (unsigned long)(x + done), size - done,
				       strerror(-rb.m.status));
		pthread_mutex_lock(&ap->lock);
		if (ret == 0 && ap->inval_gen != gen)
			ret = -EAGAIN;
		for (unsigned i = 0; ret == 0 && i < rb.m.count; i++)
			ret = map_piece_at(ap, p, x, &rb.piece[i], fds, fault);
		pthread_mutex_unlock(&ap->lock);
		if (ret == 0 && u)
			note_holes(ap, &rb, u);
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		done += rb.m.len;
	}
	return ret;
}

/* Map what backs [x, x+size) into p.  Called without ap->lock (the
 * exporter may wait for us to acknowledge an invalidation meanwhile);
 * returns with ap->lock held, and no invalidation since the resolve. */
static int resolve_locked(struct apid *ap, char *p, uintptr_t x, size_t size, struct usable *u)
{
	for (int tries = 0; tries < 8; tries++) {
		pthread_mutex_lock(&ap->lock);
		unsigned gen = ap->inval_gen;
		pthread_mutex_unlock(&ap->lock);
		if (u) {
			u->lo = x;
			u->hi = x + size;
			u->bad = 0;
		}
		int ret = resolve_into(ap, p, x, size, gen, u, 0);
		pthread_mutex_lock(&ap->lock);
		if ((ret < 0 && ret != -EAGAIN) || (ret == 0 && gen == ap->inval_gen))
			return ret;
		pthread_mutex_unlock(&ap->lock); /* changed under us: again */
	}
	pthread_mutex_lock(&ap->lock);
	return uxp_fail(EAGAIN, "shm: attach: pid %d keeps changing %#lx+%#zx", (int)ap->conn->peer_pid,
			(unsigned long)x, size);
}

static int attach_own_vma(struct apid *ap, uintptr_t x, size_t size, uintptr_t vaddr, void **addr)
{
	struct att *a = malloc(sizeof(*a));
	char *p = NULL;
	int ret;

	if (!a)
		return -ENOMEM;
	int in_arena = ap->arena_fd >= 0 && x >= ap->arena_base &&
		       x + size <= ap->arena_base + ap->arena_size;
	ret = map_own_vma(ap, x, size, vaddr, &p);
	if (ret == 0 && !in_arena)
		ret = resolve_locked(ap, p, x, size, NULL);
	else
		pthread_mutex_lock(&ap->lock);
	/* under ap->lock: a revoke or invalidation sees all or none of it */
	if (ret == 0 && __atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE))
		ret = uxp_fail(ENOENT, "shm: attach: apid %#llx was revoked", (unsigned long long)ap->id);
	if (ret < 0 && p)
		uxp_sys_munmap(p, size);
	if (ret == 0) {
		*a = (struct att){ .addr = (uintptr_t)p, .size = size, .xaddr = x, .ap = ap,
				   .own_vma = 1, .count = 1,
				   .serial = __atomic_add_fetch(&att_serial, 1, __ATOMIC_RELAXED) };
		ret = uxp_idtab_insert(&atts, a->addr, a);
		if (ret < 0)
			uxp_sys_munmap(p, size);
		else
			ap_hold(ap);
	}
	pthread_mutex_unlock(&ap->lock);
	if (ret < 0) {
		free(a);
		return ret;
	}
	*addr = p;
	return 0;
}

/* A new window around [x, x+size), with its first user. */
static int win_create(struct apid *ap, uintptr_t x, size_t size, struct win **out)
{
	struct win *w = calloc(1, sizeof(*w));
	struct usable u = { .need_lo = x, .need_hi = x + size };
	uintptr_t wx;
	size_t wlen;
	char *p = NULL;

	if (!w)
		return -ENOMEM;
	win_range(ap, x, size, &wx, &wlen);
	int ret = map_own_vma(ap, wx, wlen, 0, &p);
	if (ret == 0)
		ret = resolve_locked(ap, p, wx, wlen, &u);
	else
		pthread_mutex_lock(&ap->lock);
	/* under ap->lock: an invalidation or revoke sees the window or came before */
	if (ret == 0 && __atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE))
		ret = uxp_fail(ENOENT, "shm: attach: apid %#llx was revoked", (unsigned long long)ap->id);
	if (ret == 0) {
		/* a hole in what is attached: resolve again next time */
		*w = (struct win){ .x = wx, .len = wlen, .lo = u.lo, .hi = u.hi, .map = p, .users = 1,
				   .state = u.bad ? WIN_STALE : WIN_LIVE };
		pthread_mutex_lock(&ap->wlock);
		w->used = ++ap->wtick;
		w->next = ap->wins;
		ap->wins = w;
		pthread_mutex_unlock(&ap->wlock);
		uxp_trace("shm: window %#lx+%#zx for %#lx+%#zx, usable %#lx-%#lx%s", (unsigned long)wx,
			  wlen, (unsigned long)x, size, (unsigned long)u.lo, (unsigned long)u.hi,
			  u.bad ? " (holes inside: not cached)" : "");
	} else if (p) {
		uxp_sys_munmap(p, wlen);
	}
	pthread_mutex_unlock(&ap->lock);
	if (ret < 0) {
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

/* Memory outside the arena, no fixed address: a pointer into a window. */
static int attach_window(struct apid *ap, uintptr_t x, size_t size, void **addr)
{
	struct win *w = win_find_hold(ap, x, size);
	int ret = w ? 0 : win_create(ap, x, size, &w);
	if (ret < 0)
		return ret;
	uintptr_t at = (uintptr_t)w->map + (x - w->x);
	ret = add_ptr_att(ap, w, at, size);
	if (ret != 0) /* error, or the record holds a user of w already */
		win_put(ap, w);
	if (ret < 0)
		return ret;
	*addr = (void *)at;
	return 0;
}

int uxp_imp_attach(xpmem_apid_t id, off_t offset, size_t size, uintptr_t vaddr, void **addr)
{
	int ret = own_id(id, "attach");
	if (ret < 0)
		return ret;
	pthread_once(&imp_once, imp_init);
	struct apid *ap = uxp_idtab_get(&apids, (uint64_t)id, ap_hold);
	if (!ap)
		return uxp_fail(ENOENT, "shm: attach: no apid %#llx", (unsigned long long)id);
	uint64_t off = (uint64_t)offset;
	if (__atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE))
		ret = uxp_fail(ENOENT, "shm: attach: segment of apid %#llx was removed or its exporter exited",
			       (unsigned long long)id);
	else if (off >= ap->seg_size || size > ap->seg_size - off)
		ret = uxp_fail(EINVAL, "shm: attach: offset %#llx + size %#zx is past the segment end %#zx",
			       (unsigned long long)off, size, ap->seg_size);
	else {
		uintptr_t x = ap->seg_vaddr + off;
		int in_arena = ap->arena_fd >= 0 && x >= ap->arena_base &&
			       x + size <= ap->arena_base + ap->arena_size;
		ret = vaddr ? attach_own_vma(ap, x, size, vaddr, addr)
		      : in_arena ? attach_arena_ptr(ap, x, size, addr)
				 : attach_window(ap, x, size, addr);
	}
	ap_put(ap);
	return ret;
}

/* Key of the attachment containing addr, for a detach by interior pointer. */
struct find {
	uintptr_t addr;
	uintptr_t key;
};

static int find_containing(uint64_t key, void *obj, void *arg)
{
	struct att *a = obj;
	struct find *f = arg;
	if (f->addr >= a->addr && f->addr < a->addr + a->size) {
		f->key = (uintptr_t)key;
		return 1;
	}
	return 0;
}

static int detach_own_vma(struct att *a)
{
	struct apid *ap = a->ap; /* kept alive by a's reference */
	pthread_mutex_lock(&ap->lock); /* not while a revoke maps over it */
	ap->inval_gen++; /* a refault in flight must not map into the freed range */
	int ours = uxp_idtab_remove(&atts, a->addr, a) == a;
	int ret = ours ? unmap_att(a) : 0;
	pthread_mutex_unlock(&ap->lock);
	if (!ours)
		return uxp_fail(EINVAL, "shm: detach: %#lx detached concurrently", (unsigned long)a->addr);
	free(a);
	ap_put(ap);
	return ret;
}

static int detach_key(uintptr_t key)
{
	struct att *a;
	int release = 0;

	uxp_idtab_lock(&atts, key);
	a = uxp_idtab_get_locked(&atts, key);
	if (a && !a->own_vma && --a->count == 0) {
		uxp_idtab_remove_locked(&atts, key, a);
		release = 1;
	}
	uxp_idtab_unlock(&atts, key);
	if (!a)
		return -EINVAL;
	if (a->own_vma)
		return detach_own_vma(a);
	if (release) {
		if (a->w)
			win_put(a->ap, a->w);
		ap_put(a->ap);
		free(a);
	}
	return 0;
}

int uxp_imp_detach(uintptr_t vaddr)
{
	pthread_once(&imp_once, imp_init);
	int ret = detach_key(vaddr);
	if (ret != -EINVAL)
		return ret;
	struct find f = { .addr = vaddr };
	if (uxp_idtab_foreach(&atts, find_containing, &f) && detach_key(f.key) == 0)
		return 0;
	return uxp_fail(EINVAL, "shm: detach: %#lx is not an attachment", (unsigned long)vaddr);
}

/* ---- events from exporters (service thread) -------------------------- */

struct by_conn {
	struct uxp_conn *c;
	uint64_t grant; /* 0: all */
	struct apid **v;
	size_t n, cap;
};

static int collect_apid(uint64_t key, void *obj, void *arg)
{
	struct apid *ap = obj;
	struct by_conn *b = arg;
	(void)key;
	if (ap->conn != b->c || (b->grant && ap->grant != b->grant))
		return 0;
	/* revoked already (segment removed, then the exporter exits): one
	 * event per apid.  Only the service thread revokes, so no race. */
	if (__atomic_load_n(&ap->revoked, __ATOMIC_ACQUIRE))
		return 0;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct apid **v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return 1;
		b->v = v;
		b->cap = cap;
	}
	ap_hold(ap);
	b->v[b->n++] = ap;
	return 0;
}

/* Revoke the apids of connection c (those of one grant, or all), then
 * tell the application: first SIGBUS, then the event. */
static void zap_by_conn(struct uxp_conn *c, uint64_t grant, int reason)
{
	static const char *const why[] = {
		[UXPMEM_REVOKE_REMOVED] = "segment removed",
		[UXPMEM_REVOKE_EXITED] = "exporter exited",
		[UXPMEM_REVOKE_ERROR] = "connection to the exporter failed",
	};
	struct by_conn b = { .c = c, .grant = grant };
	pthread_once(&imp_once, imp_init);
	pthread_mutex_lock(&c->lock); /* see new_apid */
	uxp_idtab_foreach(&apids, collect_apid, &b);
	if (grant && b.n == 0) { /* its apid is not in the table yet */
		if (c->norphans == UXP_ARRAY_SIZE(c->orphans))
			memmove(c->orphans, c->orphans + 1, sizeof(c->orphans) - sizeof(c->orphans[0]));
		else
			c->norphans++;
		c->orphans[c->norphans - 1] = grant;
	}
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < b.n; i++) {
		struct apid *ap = b.v[i];
		zap(ap, why[reason]);
		uxp_revoke_emit(ap->id, ap->segid, reason, NULL, 0, 0, ap->seg_size);
		ap_put(ap);
	}
	free(b.v);
}

/* ---- automatic re-resolve ---------------------------------------------
 * After an invalidation the affected part of an attachment becomes an
 * anonymous placeholder registered with our userfaultfd (missing mode):
 * the next touch waits while the refault thread asks the exporter again
 * and maps what is there now (or SIGBUS where the exporter has nothing).
 * Without userfaultfd the part is a SIGBUS mapping at once. */

static int refault_fd = -1;
static pthread_once_t refault_once = PTHREAD_ONCE_INIT;

struct found {
	uintptr_t addr;       /* in: faulting address */
	struct att *att;      /* out: only compared, never dereferenced later */
	struct apid *ap;      /* referenced */
	uint64_t serial;
	uintptr_t at, size, xaddr;
};

static int find_att_hold(uint64_t key, void *obj, void *arg)
{
	struct att *a = obj;
	struct found *f = arg;
	(void)key;
	if (!a->own_vma || f->addr < a->addr || f->addr >= a->addr + a->size)
		return 0;
	ap_hold(a->ap);
	*f = (struct found){ .addr = f->addr, .att = a, .ap = a->ap, .serial = a->serial,
			     .at = a->addr, .size = a->size, .xaddr = a->xaddr };
	return 1;
}

static __thread uint64_t seen_serial;

static void note_serial(void *obj)
{
	seen_serial = ((struct att *)obj)->serial;
}

/* Is the attachment found still there (not detached, nor detached and
 * replaced by another record that malloc placed at the same address)? */
static int att_still_there(const struct found *f)
{
	seen_serial = 0;
	return uxp_idtab_get(&atts, f->at, note_serial) == f->att && seen_serial == f->serial;
}

static void refault_wake(uintptr_t a, size_t len)
{
	struct uffdio_range r = { a, len };
	ioctl(refault_fd, UFFDIO_WAKE, &r);
}

/* A mapping that shows a whole range of the exporter: an apid's arena
 * mapping or one of its windows. */
struct map_found {
	uintptr_t addr;  /* in: faulting page */
	struct apid *ap; /* referenced */
	uintptr_t map, len, x;
	int win;
};

static int find_map_hold(uint64_t key, void *obj, void *arg)
{
	struct apid *ap = obj;
	struct map_found *f = arg;
	uintptr_t map = (uintptr_t)__atomic_load_n(&ap->arena_map, __ATOMIC_ACQUIRE);
	(void)key;
	if (map && f->addr >= map && f->addr < map + ap->arena_size) {
		*f = (struct map_found){ f->addr, ap, map, ap->arena_size, ap->arena_base, 0 };
	} else {
		pthread_mutex_lock(&ap->wlock);
		struct win *w = ap->wins;
		while (w && (w->state == WIN_DEAD || f->addr < (uintptr_t)w->map ||
			     f->addr >= (uintptr_t)w->map + w->len))
			w = w->next;
		if (w)
			*f = (struct map_found){ f->addr, ap, (uintptr_t)w->map, w->len, w->x, 1 };
		pthread_mutex_unlock(&ap->wlock);
		if (!w)
			return 0;
	}
	ap_hold(ap);
	return 1;
}

/* Is the mapping found still mapped (caller holds ap->lock)? */
static int map_still_there(struct apid *ap, const struct map_found *f)
{
	if (!f->win)
		return ap->arena_map == (void *)f->map;
	pthread_mutex_lock(&ap->wlock);
	struct win *w = ap->wins;
	while (w && (w->state == WIN_DEAD || (uintptr_t)w->map != f->map))
		w = w->next;
	pthread_mutex_unlock(&ap->wlock);
	return w != NULL;
}

/* The part of [lo, hi) to resolve again for a fault at page: up to
 * REFAULT_WINDOW from the page, upwards; downwards when the fault is just
 * below the previous window (a copy walking down through an invalidated
 * range, as glibc's memmove does for large copies), or every page would be
 * a refault of its own (a RESOLVE, and for the exporter a record, each).
 * Refault thread only. */
#define REFAULT_WINDOW ((uintptr_t)2 << 20)
static void refault_window(uintptr_t page, uintptr_t lo, uintptr_t hi, uintptr_t *start,
			   uintptr_t *end)
{
	static uintptr_t last;
	if (last > page && last - page <= REFAULT_WINDOW) {
		*end = last < hi ? last : hi;
		*start = *end - lo > REFAULT_WINDOW ? *end - REFAULT_WINDOW : lo;
	} else {
		*start = page;
		*end = hi - page > REFAULT_WINDOW ? page + REFAULT_WINDOW : hi;
	}
	last = *start;
}

/* The exporter range the live attachments of f's mapping show inside
 * [lo, hi) (exporter addresses): their hull in need_lo/need_hi. */
struct att_hull {
	const struct map_found *f;
	uintptr_t lo, hi;
	uintptr_t need_lo, need_hi;
};

static int hull_att(uint64_t key, void *obj, void *arg)
{
	struct att *t = obj;
	struct att_hull *h = arg;
	(void)key;
	if (t->ap != h->f->ap || t->addr < h->f->map || t->addr >= h->f->map + h->f->len)
		return 0;
	uintptr_t x = h->f->x + (t->addr - h->f->map);
	uintptr_t lo = x > h->lo ? x : h->lo, hi = x + t->size < h->hi ? x + t->size : h->hi;
	if (lo >= hi)
		return 0;
	if (h->need_lo == h->need_hi || lo < h->need_lo)
		h->need_lo = lo;
	if (hi > h->need_hi)
		h->need_hi = hi;
	return 0;
}

/* A touch of a placeholder in an apid's arena mapping or a window: resolve
 * a window of it again.  0 if addr is in no such mapping. */
static int refault_map(uintptr_t page)
{
	struct map_found f = { .addr = page };
	if (!uxp_idtab_foreach(&apids, find_map_hold, &f))
		return 0;
	struct apid *ap = f.ap;
	/* only the segment's part of the arena may be resolved */
	uintptr_t seg_end = ap->seg_vaddr + ap->seg_size;
	uintptr_t lo = f.map, hi = f.map + f.len, start, end;
	if (ap->seg_vaddr > f.x)
		lo = ap->seg_vaddr - f.x < f.len ? f.map + (ap->seg_vaddr - f.x) : hi;
	if (seg_end < f.x + f.len)
		hi = seg_end > f.x ? f.map + (seg_end - f.x) : f.map;
	refault_window(page, lo, hi, &start, &end);
	/* A window (or the arena mapping) reaches well beyond what was
	 * attached: only the attached part may be converted (UXP_RESOLVE_NEED),
	 * as for the attach itself; a resolve without a need would convert the
	 * exporter's memory around it that nobody attached.  The need: what the
	 * live attachments show of [start, end), else the touched page (a
	 * pointer kept after its detach). */
	struct att_hull h = { .f = &f, .lo = f.x + (start - f.map), .hi = f.x + (end - f.map) };
	uxp_idtab_foreach(&atts, hull_att, &h);
	if (h.need_lo == h.need_hi) {
		h.need_lo = f.x + (page - f.map);
		h.need_hi = h.need_lo + uxp_page_size;
	}
	int ret = page >= lo && page < hi ? -EAGAIN : -EINVAL;
	for (int tries = 0; ret == -EAGAIN && tries < 8; tries++) {
		pthread_mutex_lock(&ap->lock);
		unsigned gen = ap->inval_gen;
		int live = map_still_there(ap, &f) && !ap->revoked;
		pthread_mutex_unlock(&ap->lock);
		if (!live)
			break;
		struct usable u = { .need_lo = h.need_lo, .need_hi = h.need_hi, .lo = h.lo, .hi = h.hi };
		ret = resolve_into(ap, (char *)start, f.x + (start - f.map), end - start, gen, &u,
				   f.x + (page - f.map));
	}
	if (ret == -EINVAL) /* outside the segment: this page only */
		start = page, end = page + uxp_page_size;
	if (ret < 0 && ret != -EAGAIN) { /* -EAGAIN: see refault() */
		pthread_mutex_lock(&ap->lock);
		if (map_still_there(ap, &f))
			uxp_sys_mmap((void *)page, end - page, ap->prot,
				     MAP_SHARED | MAP_FIXED | MAP_NORESERVE, uxp_hole_fd(), 0);
		pthread_mutex_unlock(&ap->lock);
	}
	refault_wake(start, end - start);
	ap_put(ap);
	return 1;
}

/* Resolve a window of the attachment around the faulting page again. */
static void refault(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(uxp_page_size - 1), start, end;
	struct found f = { .addr = page };

	if (!uxp_idtab_foreach(&atts, find_att_hold, &f)) {
		if (!refault_map(page))
			refault_wake(page, uxp_page_size); /* detached: the retry faults normally */
		return;
	}
	struct apid *ap = f.ap;
	refault_window(page, f.at, f.at + f.size, &start, &end);
	int ret = -EAGAIN;
	for (int tries = 0; ret == -EAGAIN && tries < 8; tries++) {
		pthread_mutex_lock(&ap->lock);
		unsigned gen = ap->inval_gen;
		int live = att_still_there(&f) && !ap->revoked;
		pthread_mutex_unlock(&ap->lock);
		if (!live)
			break;
		ret = resolve_into(ap, (char *)start, f.xaddr + (start - f.at), end - start, gen, NULL,
				   f.xaddr + (page - f.at));
	}
	uxp_debug("shm: refault at %#lx: window %#lx+%#lx: %s", (unsigned long)addr,
		  (unsigned long)start, (unsigned long)(end - start), ret < 0 ? strerror(-ret) : "resolved");
	if (ret < 0 && ret != -EAGAIN) {
		/* revoked, detached, or the exporter cannot say: SIGBUS, not a hang.
		 * -EAGAIN (the exporter keeps changing the range): the placeholder
		 * stays, the woken thread faults again and we resolve again */
		pthread_mutex_lock(&ap->lock);
		if (att_still_there(&f))
			uxp_sys_mmap((void *)page, end - page, ap->prot,
				     MAP_SHARED | MAP_FIXED | MAP_NORESERVE, uxp_hole_fd(), 0);
		pthread_mutex_unlock(&ap->lock);
	}
	refault_wake(start, end - start);
	ap_put(ap);
}

static int in_arena_map(uint64_t key, void *obj, void *arg)
{
	struct apid *ap = obj;
	uintptr_t a = *(uintptr_t *)arg;
	uintptr_t map = (uintptr_t)__atomic_load_n(&ap->arena_map, __ATOMIC_ACQUIRE);
	(void)key;
	return map && a >= map && a < map + ap->arena_size;
}

int uxp_imp_owns(uintptr_t a)
{
	struct find f = { .addr = a };
	pthread_once(&imp_once, imp_init);
	return uxp_idtab_foreach(&atts, find_containing, &f) ||
	       uxp_idtab_foreach(&apids, in_arena_map, &a);
}

static void *refault_main(void *unused)
{
	(void)unused;
	for (;;) {
		struct pollfd pfd = { .fd = refault_fd, .events = POLLIN };
		if (poll(&pfd, 1, -1) < 0)
			continue;
		struct uffd_msg msg[8];
		ssize_t n = read(refault_fd, msg, sizeof(msg));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				refault(msg[i].arg.pagefault.address);
	}
	return NULL;
}

static void refault_init(void)
{
	if (!uxp_userfaultfd_allowed())
		return;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) /* ordinary users: a kernel-mode touch gets EFAULT, not a wait */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = { .api = UFFD_API };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0) {
		if (fd >= 0)
			close(fd);
		uxp_info("shm: no userfaultfd: invalidated attachments raise SIGBUS until re-attached");
		return;
	}
	refault_fd = fd;
	if (uxp_thread_start(refault_main, NULL, 0) < 0) {
		close(fd);
		refault_fd = -1;
	}
}

/* The next touch of [at, at+len) re-resolves (caller holds ap->lock). */
static void map_placeholder(struct apid *ap, uintptr_t at, size_t len)
{
	pthread_once(&refault_once, refault_init);
	if (refault_fd >= 0 &&
	    uxp_sys_mmap((void *)at, len, ap->prot,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED) {
		struct uffdio_register r = { .range = { at, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
		if (ioctl(refault_fd, UFFDIO_REGISTER, &r) == 0) {
			/* an application thread touching the range between the
			 * mmap and the registration got a page of its own, which
			 * would show zeros (or its write) for ever instead of
			 * re-resolving: drop it; from here every touch faults */
			uxp_sys_madvise((void *)at, len, MADV_DONTNEED);
			uxp_sys_madvise((void *)at, len, MADV_DONTFORK);
			return;
		}
		uxp_debug("shm: placeholder %#lx+%#zx: userfaultfd register: %s", (unsigned long)at,
			  len, strerror(errno));
	}
	if (uxp_sys_mmap((void *)at, len, ap->prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
			 uxp_hole_fd(), 0) == MAP_FAILED)
		uxp_error("shm: cannot invalidate %#lx+%#zx: %s", (unsigned long)at, len, strerror(errno));
}

/* Pages of [at, at+len) of ap's arena mapping that the memfd lacks (the
 * exporter never touched them, or has no memory there) fault to the
 * refault thread, which asks the exporter: its memory is mapped, its holes
 * become SIGBUS.  Pages the memfd holds never fault: the fast path stays. */
static void watch_arena(struct apid *ap, uintptr_t at, size_t len)
{
	pthread_once(&refault_once, refault_init);
	if (refault_fd < 0)
		return; /* no userfaultfd: holes of the arena read zeros */
	struct uffdio_register r = { .range = { at, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(refault_fd, UFFDIO_REGISTER, &r) < 0)
		uxp_debug("shm: arena of pid %d: userfaultfd register: %s: its holes read zeros",
			  (int)ap->conn->peer_pid, strerror(errno));
}

/* The exporter's arena changed at [x, x+len), shown at at: map the memfd
 * there again, watched (caller holds ap->lock).  A touch between the mmap
 * and the registration finds what the memfd has (at worst a page it makes
 * in a hole: zeros).  Without userfaultfd: a SIGBUS placeholder, as for
 * other mappings. */
static void reopen_arena(struct apid *ap, uintptr_t at, size_t len, uintptr_t x)
{
	pthread_once(&refault_once, refault_init);
	if (refault_fd >= 0 && uxp_sys_mmap((void *)at, len, ap->prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
					    ap->arena_fd, (off_t)(x - ap->arena_base)) != MAP_FAILED) {
		uxp_sys_madvise((void *)at, len, MADV_DONTFORK);
		watch_arena(ap, at, len);
		return;
	}
	map_placeholder(ap, at, len);
}

struct hit {
	uintptr_t at;
	size_t len;
	uintptr_t x;
};

static void emit_hits(struct apid *ap, const struct hit *hits, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uxp_debug("shm: apid %#llx: %#lx+%#zx invalidated by the exporter",
			  (unsigned long long)ap->id, (unsigned long)hits[i].at, hits[i].len);
		uxp_revoke_emit(ap->id, ap->segid, UXPMEM_REVOKE_INVALIDATED, (void *)hits[i].at,
				hits[i].len, (off_t)(hits[i].x - ap->seg_vaddr), hits[i].len);
	}
}

/* Windows showing part of [a, b): that part re-resolves on the next touch
 * and the window takes no new attaches; one without users goes now.  The
 * parts of windows in use, for the events (caller holds ap->lock). */
static struct hit *invalidate_wins(struct apid *ap, uintptr_t a, uintptr_t b, size_t *n)
{
	struct hit *hits = NULL;
	size_t cap = 0;
	*n = 0;
	pthread_mutex_lock(&ap->wlock);
	for (struct win **pw = &ap->wins; *pw;) {
		struct win *w = *pw;
		uintptr_t lo = a > w->x ? a : w->x;
		uintptr_t hi = b < w->x + w->len ? b : w->x + w->len;
		if (w->state == WIN_DEAD || lo >= hi) {
			pw = &w->next;
			continue;
		}
		if (w->users == 0) { /* nothing points into it */
			if (w->state == WIN_LIVE)
				ap->nidle--;
			*pw = w->next;
			uxp_sys_munmap(w->map, w->len);
			free(w);
			continue;
		}
		uintptr_t at = (uintptr_t)w->map + (lo - w->x);
		map_placeholder(ap, at, hi - lo);
		w->state = WIN_STALE;
		if (*n == cap) {
			size_t c = cap ? 2 * cap : 4;
			struct hit *v = realloc(hits, c * sizeof(*v));
			if (v) {
				hits = v;
				cap = c;
			}
		}
		if (*n < cap)
			hits[(*n)++] = (struct hit){ at, hi - lo, lo };
		pw = &w->next;
	}
	pthread_mutex_unlock(&ap->wlock);
	return hits;
}

/* The exporter's mapping of [a, b) changed: what our attachments of ap show
 * of it re-resolves on the next touch; tell the application. */
static void invalidate_apid(struct apid *ap, uintptr_t a, uintptr_t b)
{
	struct collect cl = { .ap = ap, .own_only = 1 };
	struct hit *hits = NULL;
	size_t nhits = 0, nwhits = 0;

	pthread_mutex_lock(&ap->lock);
	ap->inval_gen++; /* an attach resolving right now resolves again */
	uxp_idtab_foreach(&atts, collect_att, &cl);
	if (cl.n)
		hits = calloc(cl.n, sizeof(*hits));
	for (size_t i = 0; hits && i < cl.n; i++) {
		struct att *t = cl.v[i];
		uintptr_t lo = a > t->xaddr ? a : t->xaddr;
		uintptr_t hi = b < t->xaddr + t->size ? b : t->xaddr + t->size;
		if (lo >= hi)
			continue;
		uintptr_t at = t->addr + (lo - t->xaddr);
		map_placeholder(ap, at, hi - lo);
		hits[nhits++] = (struct hit){ at, hi - lo, lo };
	}
	struct hit *whits = invalidate_wins(ap, a, b, &nwhits);
	/* the arena mapping (the exporter unmapped part of its arena) */
	uintptr_t lo = a > ap->arena_base ? a : ap->arena_base;
	uintptr_t hi = b < ap->arena_base + ap->arena_size ? b : ap->arena_base + ap->arena_size;
	struct hit arena_hit = { 0, 0, 0 };
	if (ap->arena_map && !ap->revoked && lo < hi) {
		uintptr_t at = (uintptr_t)ap->arena_map + (lo - ap->arena_base);
		reopen_arena(ap, at, hi - lo, lo);
		arena_hit = (struct hit){ at, hi - lo, lo };
	}
	pthread_mutex_unlock(&ap->lock);
	free(cl.v);
	if (arena_hit.len)
		uxp_revoke_emit(ap->id, ap->segid, UXPMEM_REVOKE_INVALIDATED, (void *)arena_hit.at,
				arena_hit.len, (off_t)(arena_hit.x - ap->seg_vaddr), arena_hit.len);
	emit_hits(ap, hits, nhits);
	emit_hits(ap, whits, nwhits);
	free(hits);
	free(whits);
}

static void handle_invalidate(struct uxp_conn *c, const struct uxp_msg *m)
{
	struct by_conn b = { .c = c };
	pthread_once(&imp_once, imp_init);
	uxp_idtab_foreach(&apids, collect_apid, &b);
	for (size_t i = 0; i < b.n; i++) {
		invalidate_apid(b.v[i], m->addr, m->addr + m->len);
		ap_put(b.v[i]);
	}
	free(b.v);
	struct uxp_msg ack;
	uxp_msg_init(&ack, UXP_MSG_INVALIDATE_ACK);
	ack.seq = m->seq;
	uxp_msg_send_within(c->fd, &ack, -1, uxp_timeout_ms("XPMEM_SHM_REVOKE_TIMEOUT_MS", 2000));
}

void uxp_imp_handle(struct uxp_conn *c, const struct uxp_msg *m)
{
	if (m->type == UXP_MSG_INVALIDATE) {
		handle_invalidate(c, m);
		return;
	}
	if (m->type != UXP_MSG_REVOKE)
		return;
	zap_by_conn(c, m->grant, UXPMEM_REVOKE_REMOVED);
	struct uxp_msg ack;
	uxp_msg_init(&ack, UXP_MSG_REVOKE_ACK);
	ack.grant = m->grant;
	uxp_msg_send_within(c->fd, &ack, -1, uxp_timeout_ms("XPMEM_SHM_REVOKE_TIMEOUT_MS", 2000));
}

void uxp_imp_conn_closed(struct uxp_conn *c, int error)
{
	zap_by_conn(c, 0, error ? UXPMEM_REVOKE_ERROR : UXPMEM_REVOKE_EXITED);
}

/* Forked child: the apid's connection is freed by uxp_svc_fork_child. */
static void free_child_apid(void *obj)
{
	struct apid *ap = obj;
	free_wins(ap, 0); /* not inherited (MADV_DONTFORK) */
	if (ap->arena_fd >= 0)
		close(ap->arena_fd);
	free(ap);
}

void uxp_imp_fork_child(void)
{
	/* Attachments are not inherited (MADV_DONTFORK); apids are per
	 * process: the child starts with none. */
	uxp_idtab_reset_after_fork(&atts, free);
	uxp_idtab_reset_after_fork(&apids, free_child_apid);
	if (refault_fd >= 0) /* the thread does not exist here */
		close(refault_fd);
	refault_fd = -1;
	pthread_once_t fresh = PTHREAD_ONCE_INIT;
	refault_once = fresh;
}
