/* exporter.c - segments this process exports, and the grants it gave.
 *
 * Not on any hot path: one mutex (exp_lock) guards segments and grants.
 * The service thread answers GET/RELEASE/REVOKE_ACK; xpmem_remove runs in
 * the caller's thread and waits for the importers' acknowledgements.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "shm.h"
#include "arena/arena.h"

struct seg {
	xpmem_segid_t segid;
	uintptr_t vaddr;
	size_t size;
	uint32_t mode;
	uid_t uid;
	gid_t gid;
};

struct grant {
	uint64_t id;
	struct seg *seg;
	struct uxp_conn *conn; /* referenced */
	int flags;
	int revoking;          /* waiting for the importer's ack */
	int has_arena;         /* the importer got the arena descriptor */
	struct grant *next;
};

static pthread_mutex_t exp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t exp_acked = PTHREAD_COND_INITIALIZER;
static struct uxp_idtab segs;     /* serial -> struct seg */
static struct grant *grants;      /* all grants (few: one per importer apid) */
static uint64_t next_grant = 1;
static pthread_once_t exp_once = PTHREAD_ONCE_INIT;
/* read-only reopen of the arena memfd, per arena generation */
static int ro_fd = -1;
static unsigned ro_gen;

static void exp_init(void)
{
	uxp_idtab_init(&segs);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&exp_acked, &ca);
	pthread_condattr_destroy(&ca);
}

int uxp_exp_arena(struct uxpmem_arena_v1 *a)
{
	static int (*query)(struct uxpmem_arena_v1 *);
	if (!query)
		query = (int (*)(struct uxpmem_arena_v1 *))dlsym(RTLD_DEFAULT, "uxpmem_arena_query_v1");
	return query ? query(a) : -ENOENT;
}

int uxp_exp_make(uintptr_t vaddr, size_t size, uint32_t mode, xpmem_segid_t *segid)
{
	pthread_once(&exp_once, exp_init);
	int ret = uxp_svc_listen();
	if (ret < 0)
		return ret;
	uxp_conv_watch_arena();
	struct seg *s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct seg){ .vaddr = vaddr, .size = size, .mode = mode,
			   .uid = geteuid(), .gid = getegid() };
	do {
		s->segid = uxp_id_compose(0, getpid(), uxp_next_serial());
		ret = uxp_idtab_insert(&segs, uxp_id_serial(s->segid), s);
	} while (ret == -EEXIST);
	if (ret < 0) {
		free(s);
		return ret;
	}
	*segid = s->segid;
	uxp_debug("shm: make %#lx+%#zx mode %03o -> segid %#llx", (unsigned long)vaddr, size,
		  mode, (unsigned long long)s->segid);
	return 0;
}

int uxp_conn_in_group(const struct uxp_conn *c, gid_t gid)
{
	if (c->peer_gid == gid)
		return 1;
	for (int i = 0; i < c->npeer_groups; i++)
		if (c->peer_groups[i] == gid)
			return 1;
	return 0;
}

/* The kernel XPMEM's rule: owner, group (primary or supplementary) or
 * other bits of the mode; read always needed, write for RDWR; root may do
 * anything. */
static int permitted(const struct seg *s, const struct uxp_conn *c, int flags)
{
	uint32_t bits;
	if (c->peer_uid == 0)
		return 1;
	if (c->peer_uid == s->uid)
		bits = s->mode >> 6;
	else if (uxp_conn_in_group(c, s->gid))
		bits = s->mode >> 3;
	else
		bits = s->mode;
	if (!(bits & 04))
		return 0;
	return flags == XPMEM_RDWR ? !!(bits & 02) : 1;
}

static int whole_address_space(const struct seg *s)
{
	return s->vaddr == 0 && s->size >= uxp_user_top() - uxp_page_size;
}

/* Descriptor an importer may get for this grant, or -1 (ranges outside
 * it are then holes).  Caller holds exp_lock. */
static int grant_fd(const struct seg *s, const struct uxp_conn *c, int flags,
		    struct uxpmem_arena_v1 *a)
{
	if (uxp_exp_arena(a) < 0) {
		uxp_debug("shm: pid %d has no arena (not run under xpmem-run): "
			  "segid %#llx is a hole for importers", (int)getpid(),
			  (unsigned long long)s->segid);
		return -1;
	}
	/* The arena memfd exposes the whole heap: to another uid only when
	 * the segment is the whole address space anyway. */
	if (c->peer_uid != geteuid() && c->peer_uid != 0 && !whole_address_space(s)) {
		uxp_debug("shm: uid %d gets no arena descriptor for partial segid %#llx "
			  "(it would expose more than the segment)", (int)c->peer_uid,
			  (unsigned long long)s->segid);
		return -1;
	}
	if (flags == XPMEM_RDWR)
		return a->fd;
	if (ro_fd < 0 || ro_gen != a->generation) {
		char path[64];
		if (ro_fd >= 0)
			close(ro_fd);
		ro_fd = -1;
		ro_gen = a->generation;
		/* A memfd is created mode 0777: any uid holding a read-only
		 * descriptor of it could reopen /proc/self/fd/N O_RDWR.  Owner
		 * only, so only our uid (which may ptrace us anyway) can. */
		if (fchmod(a->fd, 0600) < 0) {
			uxp_warn("shm: cannot restrict the arena's mode: %s", strerror(errno));
			return -1;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", a->fd);
		ro_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ro_fd < 0) {
			uxp_warn("shm: cannot reopen the arena read-only: %s", strerror(errno));
			return -1;
		}
	}
	return ro_fd;
}

static struct grant *grant_unlink(struct uxp_conn *c, uint64_t id);
static void grant_free(struct grant *g);

static void handle_get(struct uxp_conn *c, const struct uxp_msg *m)
{
	struct uxp_msg r;
	struct uxpmem_arena_v1 a = { 0 };
	int fd = -1;
	struct seg *s = NULL;

	uxp_msg_init(&r, UXP_MSG_GET_REPLY);
	r.seq = m->seq;
	pthread_once(&exp_once, exp_init);
	pthread_mutex_lock(&exp_lock);
	if (uxp_id_pid(m->segid) == getpid() && uxp_id_node(m->segid) == 0)
		s = uxp_idtab_get(&segs, uxp_id_serial(m->segid), NULL);
	if (!s || s->segid != m->segid) {
		r.status = uxp_fail(ENOENT, "shm: get from pid %d: no segid %#llx", (int)c->peer_pid,
				    (unsigned long long)m->segid);
	} else if (!permitted(s, c, (int)m->flags)) {
		r.status = uxp_fail(EACCES, "shm: get from pid %d uid %d gid %d: mode %03o of "
				    "segid %#llx denies %s", (int)c->peer_pid, (int)c->peer_uid,
				    (int)c->peer_gid, s->mode, (unsigned long long)s->segid,
				    m->flags == XPMEM_RDWR ? "read-write" : "read");
	} else {
		struct grant *g = calloc(1, sizeof(*g));
		if (!g) {
			r.status = -ENOMEM;
		} else {
			*g = (struct grant){ .id = next_grant++, .seg = s, .conn = c,
					     .flags = (int)m->flags, .next = grants };
			uxp_conn_get(c);
			grants = g;
			fd = grant_fd(s, c, g->flags, &a);
			r.grant = g->id;
			r.seg_vaddr = s->vaddr;
			r.seg_size = s->size;
			if (fd >= 0) {
				r.arena_base = a.base;
				r.arena_size = a.size;
			}
		}
	}
	if (fd >= 0)
		grants->has_arena = 1;
	/* reply under exp_lock: a remove cannot slip between grant and reply */
	int ret = uxp_msg_send(c->fd, &r, fd, MSG_DONTWAIT);
	struct grant *unsent = NULL;
	if (ret < 0 && r.status == 0) /* a peer that does not read gets no grant */
		unsent = grant_unlink(c, r.grant);
	pthread_mutex_unlock(&exp_lock);
	if (unsent)
		grant_free(unsent);
	if (ret < 0)
		uxp_debug("shm: reply to pid %d failed: %s", (int)c->peer_pid, strerror(-ret));
}

/* Unlink and return the grant id of connection c (NULL if not found).
 * Caller holds exp_lock. */
static struct grant *grant_unlink(struct uxp_conn *c, uint64_t id)
{
	for (struct grant **p = &grants; *p; p = &(*p)->next)
		if ((*p)->conn == c && (*p)->id == id) {
			struct grant *g = *p;
			*p = g->next;
			return g;
		}
	return NULL;
}

static void grant_free(struct grant *g)
{
	uxp_conn_put(g->conn);
	free(g);
}

/* An importer asks what backs a range of its grant's segment; the
 * converter thread answers (conversion may freeze writers, so never here). */
/* UXP_RESOLVE_NEED names a page-aligned part of the range (0+0: none). */
static int need_ok(const struct uxp_msg *m)
{
	if (m->flags & ~UXP_RESOLVE_NEED)
		return 0;
	if (!(m->flags & UXP_RESOLVE_NEED))
		return 1;
	if (!m->seg_size) /* convert nothing */
		return m->seg_vaddr == 0;
	return m->seg_vaddr >= m->addr && m->seg_size <= m->len &&
	       m->seg_vaddr - m->addr <= m->len - m->seg_size &&
	       !((m->seg_vaddr | m->seg_size) & (uxp_page_size - 1));
}

static void handle_resolve(struct uxp_conn *c, const struct uxp_msg *m)
{
	struct uxp_msg r;
	int ret = 0;
	pthread_mutex_lock(&exp_lock);
	struct grant *g = grants;
	while (g && !(g->conn == c && g->id == m->grant))
		g = g->next;
	if (!g) {
		ret = uxp_fail(ENOENT, "shm: resolve from pid %d: no grant %llu", (int)c->peer_pid,
			       (unsigned long long)m->grant);
	} else if (m->addr < g->seg->vaddr || m->addr + m->len > g->seg->vaddr + g->seg->size ||
		   (m->addr | m->len) & (uxp_page_size - 1)) {
		ret = uxp_fail(EINVAL, "shm: resolve from pid %d: %#llx+%#llx is outside its segment",
			       (int)c->peer_pid, (unsigned long long)m->addr, (unsigned long long)m->len);
	} else if (!need_ok(m)) {
		ret = uxp_fail(EINVAL, "shm: resolve from pid %d: bad flags %#x or need %#llx+%#llx",
			       (int)c->peer_pid, m->flags, (unsigned long long)m->seg_vaddr,
			       (unsigned long long)m->seg_size);
	} else {
		int same_uid = c->peer_uid == geteuid() || c->peer_uid == 0;
		ret = uxp_conv_submit(c, m, g->flags == XPMEM_RDONLY, g->has_arena, g->seg->vaddr,
				      g->seg->vaddr + g->seg->size, same_uid || whole_address_space(g->seg));
	}
	pthread_mutex_unlock(&exp_lock);
	if (ret == 0)
		return;
	uxp_msg_init(&r, UXP_MSG_RESOLVE_REPLY);
	r.seq = m->seq;
	r.status = ret;
	uxp_msg_send(c->fd, &r, -1, MSG_DONTWAIT);
}

void uxp_exp_handle(struct uxp_conn *c, const struct uxp_msg *m)
{
	struct grant *g = NULL;

	switch (m->type) {
	case UXP_MSG_GET:
		handle_get(c, m);
		return;
	case UXP_MSG_RESOLVE:
		handle_resolve(c, m);
		return;
	case UXP_MSG_INVALIDATE_ACK:
		uxp_conv_acked(c, m->seq);
		return;
	case UXP_MSG_RELEASE:
	case UXP_MSG_REVOKE_ACK:
		pthread_mutex_lock(&exp_lock);
		g = grant_unlink(c, m->grant);
		if (g && g->revoking)
			pthread_cond_broadcast(&exp_acked);
		pthread_mutex_unlock(&exp_lock);
		if (g)
			grant_free(g);
		return;
	default:
		return;
	}
}

void uxp_exp_conn_closed(struct uxp_conn *c)
{
	uxp_conv_conn_closed(c);
	struct grant *dead = NULL;
	int woke = 0;

	pthread_mutex_lock(&exp_lock);
	for (struct grant **p = &grants; *p;) {
		struct grant *g = *p;
		if (g->conn != c) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		woke |= g->revoking;
		g->next = dead;
		dead = g;
	}
	if (woke)
		pthread_cond_broadcast(&exp_acked);
	pthread_mutex_unlock(&exp_lock);
	while (dead) {
		struct grant *g = dead;
		dead = g->next;
		grant_free(g);
	}
}

unsigned uxp_exp_arena_conns(struct uxp_conn **conns, unsigned max)
{
	unsigned n = 0;
	pthread_once(&exp_once, exp_init);
	pthread_mutex_lock(&exp_lock);
	for (struct grant *g = grants; g && n < max; g = g->next) {
		if (!g->has_arena)
			continue;
		unsigned i = 0;
		while (i < n && conns[i] != g->conn)
			i++;
		if (i == n) {
			uxp_conn_get(g->conn);
			conns[n++] = g->conn;
		}
	}
	pthread_mutex_unlock(&exp_lock);
	return n;
}

static int revoking_grants_of(const struct seg *s)
{
	for (struct grant *g = grants; g; g = g->next)
		if (g->seg == s)
			return 1;
	return 0;
}

int uxp_exp_remove(xpmem_segid_t segid)
{
	pthread_once(&exp_once, exp_init);
	if (uxp_id_pid(segid) != getpid() || uxp_id_node(segid) != 0)
		return uxp_fail(EACCES, "shm: remove: segid %#llx belongs to pid %d, not to us",
				(unsigned long long)segid, (int)uxp_id_pid(segid));
	pthread_mutex_lock(&exp_lock);
	struct seg *s = uxp_idtab_get(&segs, uxp_id_serial(segid), NULL);
	if (!s || s->segid != segid) {
		pthread_mutex_unlock(&exp_lock);
		return uxp_fail(ENOENT, "shm: remove: no segid %#llx (removed already?)",
				(unsigned long long)segid);
	}
	uxp_idtab_remove(&segs, uxp_id_serial(segid), s); /* later gets: ENOENT */

	/* Tell every importer; each maps SIGBUS over its attachments first,
	 * then acknowledges, so after we return no importer reads it. */
	for (struct grant *g = grants; g; g = g->next) {
		if (g->seg != s)
			continue;
		struct uxp_msg m;
		uxp_msg_init(&m, UXP_MSG_REVOKE);
		m.grant = g->id;
		m.reason = UXP_REVOKE_REMOVED;
		g->revoking = 1;
		if (uxp_msg_send(g->conn->fd, &m, -1, MSG_DONTWAIT) < 0) {
			/* never told, it would keep reading the segment as if
			 * granted: cut it off (it maps SIGBUS over all of ours) */
			g->revoking = 0;
			uxp_conn_disconnect(g->conn, "a revocation could not be sent (its queue is full)");
		}
	}
	struct timespec deadline;
	long ms = uxp_timeout_ms("XPMEM_SHM_REVOKE_TIMEOUT_MS", 2000);
	uxp_deadline(&deadline, ms);
	while (revoking_grants_of(s))
		if (pthread_cond_timedwait(&exp_acked, &exp_lock, &deadline) == ETIMEDOUT) {
			uxp_warn("shm: remove segid %#llx: an importer did not acknowledge within %ld ms",
				 (unsigned long long)segid, ms);
			break;
		}
	/* grants whose importer did not answer: forget them (its later
	 * REVOKE_ACK or RELEASE finds nothing), and disconnect it: it may not
	 * have been told (stopped, stuck), and must not go on reading the
	 * segment as granted when it runs again */
	for (struct grant *g = grants; g; g = g->next)
		if (g->seg == s && g->revoking)
			uxp_conn_disconnect(g->conn, "it did not acknowledge a revocation in time");
	struct grant *dead = NULL;
	for (struct grant **p = &grants; *p;) {
		struct grant *g = *p;
		if (g->seg != s) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		g->next = dead;
		dead = g;
	}
	pthread_mutex_unlock(&exp_lock);
	while (dead) {
		struct grant *g = dead;
		dead = g->next;
		grant_free(g);
	}
	free(s);
	uxp_debug("shm: removed segid %#llx", (unsigned long long)segid);
	return 0;
}

void uxp_exp_fork_child(void)
{
	/* Segments and grants are the parent's; their connections are freed
	 * by uxp_svc_fork_child (not touched here). */
	for (struct grant *g = grants, *next; g; g = next) {
		next = g->next;
		free(g);
	}
	grants = NULL;
	uxp_idtab_reset_after_fork(&segs, free);
	pthread_mutex_init(&exp_lock, NULL);
	if (ro_fd >= 0)
		close(ro_fd);
	ro_fd = -1;
	ro_gen = 0;
}
