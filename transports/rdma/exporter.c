/* exporter.c - serving this process's segments to other nodes.
 *
 * xpmem_make (under a resolver) records the segment here; requests arrive
 * on the progress thread:
 *  - GET: the requester's uid/gid are those of its resolver entry (the
 *    resolver attests them; the message's own claims are not trusted), and
 *    the reply goes to the address of that entry, so a forged sender never
 *    sees the grant.  Mode bits as the kernel: owner, group, other; read
 *    always, write for RDWR; uid 0 bypasses.  Reply: a grant token, the
 *    length and this process's generation.
 *  - REG: registration on demand of the chunk (RX_CHUNK bytes, aligned in
 *    the segment) holding an offset, read-only or read-write as the grant,
 *    cached; the reply carries the key and the remote address (the virtual
 *    address or the offset in the region, as the back end addresses).
 *    A chunk is the part of that 2 MiB block mapped around the offset
 *    (nothing mapped there: -EFAULT, the importer's hole).
 *  - PING: PONG (importers' liveness check).
 * xpmem_remove closes the segment's regions (later RMA fails) and sends
 * REVOKE to every grant holder.
 *
 * Invalidation: each registered chunk is watched (uxp_mm_watch, the core's
 * userspace MMU notifier).  When the application unmaps, remaps or
 * MADV_DONTNEEDs memory of a chunk, rx_changed (on the watcher thread,
 * before munmap/mremap returns) closes the chunk's region first (no RMA
 * through its key from then on), then sends INVALIDATE to every grant
 * holder that registered anything and waits (XPMEM_RDMA_TIMEOUT_MS at most)
 * for their acknowledgements: they have dropped those pages by then.  An
 * importer that once did not acknowledge is not waited for again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>
#include "rdma.h"
#include "uxpmem.h"

#define RX_CHUNK (2u << 20)

struct rx_chunk {
	struct rx_chunk *next;
	uint64_t off, len; /* a mapped run inside one RX_CHUNK block */
	bool rw;
	struct rw_mr *mr;
	uint64_t watch; /* uxp_mm_watch id */
};

struct rx_seg;
struct rx_grant {
	struct rx_grant *next;
	uint64_t token;
	unsigned node;
	pid_t pid;
	rw_addr_t fa;
	bool rw;
	uint64_t req; /* the GET that made it: a resent GET gets it again */
	bool used; /* registered something: told of invalidations */
	bool mute; /* did not acknowledge one: not waited for again */
	struct rx_seg *seg;
};

struct rx_seg {
	xpmem_segid_t segid;
	uintptr_t vaddr;
	size_t size;
	uint64_t mode;
	int refs; /* atomic: the table's + holders' */
	pthread_mutex_t lock;
	bool removed;
	struct rx_grant *grants;
	struct rx_chunk *chunks;
};

/* A grant holder to tell of a change (holders_of), and how telling it
 * goes (tell_holders). */
struct holder {
	uint64_t token;
	rw_addr_t fa;
	unsigned node;
	pid_t pid;
	bool mute;
	bool acked;  /* or not waited for; under the acks shard lock */
	bool unsent; /* the back end refused it for now: sent again */
};
/* An invalidation waiting for acknowledgements (acks, by request id). */
struct rx_inval_wait {
	unsigned n, pending;
	struct holder *e;
};

static struct uxp_idtab segs, grants, acks;
static uint64_t next_inval;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static uint64_t generation;

static void tables_init(void)
{
	uxp_idtab_init(&segs);
	uxp_idtab_init(&grants);
	uxp_idtab_init(&acks);
	if (getrandom(&generation, sizeof(generation), 0) != sizeof(generation))
		generation = (uint64_t)getpid() << 32 ^ (uint64_t)uxp_now_ms();
}

static void seg_hold(void *p)
{
	__atomic_add_fetch(&((struct rx_seg *)p)->refs, 1, __ATOMIC_RELAXED);
}

static void seg_put(struct rx_seg *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int rx_export(xpmem_segid_t segid, uintptr_t vaddr, size_t size, uint64_t mode)
{
	int ret = rw_open();
	if (ret < 0)
		return ret;
	pthread_once(&tables_once, tables_init);
	struct rx_seg *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct rx_seg){ .segid = segid, .vaddr = vaddr, .size = size, .mode = mode, .refs = 1 };
	pthread_mutex_init(&s->lock, NULL);
	ret = uxp_idtab_insert(&segs, (uint64_t)segid, s);
	if (ret < 0) {
		free(s);
		return ret;
	}
	uxp_debug("rdma: serving segid %#llx (%#lx+%#zx, mode %#llo) to other nodes",
		  (unsigned long long)segid, (unsigned long)vaddr, size, (unsigned long long)mode);
	return 0;
}

/* ---- replies ---------------------------------------------------------- */

void rm_init(struct rm_msg *m, int type, uint64_t req)
{
	memset(m, 0, sizeof(*m));
	m->magic = RM_MAGIC;
	m->type = (uint16_t)type;
	m->from_node = (uint16_t)uxp_node_id();
	m->from_pid = (uint32_t)getpid();
	m->req = req;
}

/* The requester as the resolver knows it: its address and uid/gid. */
static int requester(const struct rm_msg *m, rw_addr_t *fa, struct rr_entry *e)
{
	int ret = rr_lookup(m->from_node, (pid_t)m->from_pid, e);
	if (ret == 0)
		ret = rw_peer_insert(e->addr, e->addrlen, fa);
	if (ret < 0)
		uxp_debug("rdma: request from node %u pid %u dropped: no address to answer",
			  m->from_node, m->from_pid);
	return ret;
}

static void reply(rw_addr_t to, struct rm_msg *r)
{
	int ret = rw_send(to, r, sizeof(*r), true);
	if (ret < 0)
		uxp_debug("rdma: reply type %u not sent: %s", r->type, strerror(-ret));
}

/* ---- GET -------------------------------------------------------------- */

static int permitted(const struct rx_seg *s, const struct rr_entry *e, int flags)
{
	unsigned want = flags == XPMEM_RDWR ? 6 : 4, bits;
	if (e->uid == 0)
		return 0;
	if (e->uid == geteuid())
		bits = (unsigned)(s->mode >> 6) & 7;
	else if (e->gid == getegid())
		bits = (unsigned)(s->mode >> 3) & 7;
	else
		bits = (unsigned)s->mode & 7;
	if ((bits & want) == want)
		return 0;
	return uxp_fail(EACCES, "rdma: get of segid %#llx (mode %#llo) %s by uid %u gid %u refused",
			(unsigned long long)s->segid, (unsigned long long)s->mode,
			flags == XPMEM_RDWR ? "read-write" : "read-only", (unsigned)e->uid,
			(unsigned)e->gid);
}

static int grant_new(struct rx_seg *s, const struct rm_msg *m, rw_addr_t fa, uint64_t *token)
{
	struct rx_grant *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	*g = (struct rx_grant){ .node = m->from_node, .pid = (pid_t)m->from_pid, .fa = fa,
				.rw = m->status == XPMEM_RDWR, .req = m->req, .seg = s };
	int ret;
	do {
		if (getrandom(&g->token, sizeof(g->token), 0) != sizeof(g->token))
			g->token = (uint64_t)rand() << 32 ^ (uint64_t)rand();
		ret = g->token ? uxp_idtab_insert(&grants, g->token, g) : -EEXIST;
	} while (ret == -EEXIST);
	if (ret < 0) {
		free(g);
		return ret;
	}
	g->next = s->grants;
	s->grants = g;
	*token = g->token;
	return 0;
}

/* The grant a GET with this request id made already (a resent GET: the
 * requester did not see the reply), or 0.  Caller holds s->lock. */
static uint64_t grant_of_request(const struct rx_seg *s, const struct rm_msg *m, rw_addr_t fa)
{
	for (const struct rx_grant *g = s->grants; g; g = g->next)
		if (g->req == m->req && g->node == m->from_node && g->pid == (pid_t)m->from_pid &&
		    g->fa == fa && g->rw == (m->status == XPMEM_RDWR))
			return g->token;
	return 0;
}

static void handle_get(const struct rm_msg *m)
{
	rw_addr_t fa;
	struct rr_entry e;
	struct rm_msg r;
	if (requester(m, &fa, &e) < 0)
		return;
	rm_init(&r, RM_GET_REPLY, m->req);
	struct rx_seg *s = uxp_idtab_get(&segs, (uint64_t)m->u.get.segid, seg_hold);
	if (!s) {
		r.status = uxp_fail(ENOENT, "rdma: get from node %u pid %u: no segid %#llx here",
				    m->from_node, m->from_pid, (unsigned long long)m->u.get.segid);
		reply(fa, &r);
		return;
	}
	pthread_mutex_lock(&s->lock);
	r.status = s->removed ? -ENOENT : permitted(s, &e, m->status);
	if (r.status == 0 && !(r.u.got.grant = grant_of_request(s, m, fa)))
		r.status = grant_new(s, m, fa, &r.u.got.grant);
	pthread_mutex_unlock(&s->lock);
	r.u.got.length = s->size;
	r.u.got.generation = generation;
	seg_put(s);
	reply(fa, &r);
}

/* ---- REG -------------------------------------------------------------- */

static bool mapped(uintptr_t a, size_t len)
{
	unsigned char v[RX_CHUNK / 4096];
	return len / uxp_page_size <= sizeof(v) && mincore((void *)a, len, v) == 0;
}

/* The run of [blo, bhi) (addresses) around at mapped with the access a
 * registration needs (readable; writable too for a read-write grant), from
 * /proc/self/maps: 0, or -EFAULT if at itself is not.  A registration must
 * not reach pages it cannot pin: a guard page, code, a read-only mapping
 * next to the memory asked for fails the whole registration (EFAULT), and
 * an exporter of its whole address space (as UCX and Open MPI make) has
 * such neighbours in most blocks. */
static int mapped_run(uintptr_t blo, uintptr_t bhi, uintptr_t at, bool rw, uintptr_t *lo,
		      uintptr_t *hi)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return uxp_fail(errno, "rdma: /proc/self/maps: %s", strerror(errno));
	char line[512];
	uintptr_t rs = 0, re = 0;
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		if (!strchr(line, '\n') && !feof(f)) { /* a long path: the rest of the line */
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
		}
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3 || e <= blo)
			continue;
		if (s >= bhi)
			break;
		s = s < blo ? blo : s;
		e = e > bhi ? bhi : e;
		bool ok = perms[0] == 'r' && (!rw || perms[1] == 'w');
		if (!ok || (re && s != re)) { /* the run ends */
			if (found)
				break;
			rs = re = 0;
		}
		if (!ok)
			continue;
		if (!re)
			rs = s;
		re = e;
		found |= s <= at && at < e;
	}
	fclose(f);
	if (!found)
		return -EFAULT;
	*lo = rs;
	*hi = re;
	return 0;
}

static void rx_changed(void *arg, uintptr_t a, uintptr_t b, int kind);

static void chunk_free(struct rx_chunk *c)
{
	if (c->watch)
		uxp_mm_unwatch(c->watch);
	if (c->mr)
		rw_mr_dereg(c->mr);
	free(c);
}

/* The region of the chunk holding off, registered now if need be (the
 * mapped part of its block, watched).  Caller holds s->lock.  -EFAULT:
 * nothing mapped at off. */
static int chunk_get(struct rx_seg *s, uint64_t off, bool rw, struct rx_chunk **out)
{
	for (struct rx_chunk *c = s->chunks; c; c = c->next)
		if (off >= c->off && off - c->off < c->len && c->rw == rw) {
			*out = c;
			return 0;
		}
	uint64_t base = off & ~(uint64_t)(RX_CHUNK - 1);
	uint64_t end = s->size - base < RX_CHUNK ? s->size : base + RX_CHUNK;
	/* writable: pin only writable memory, even for reads (a provider whose
	 * registrations always ask for local write fails on read-only pages) */
	bool writable = rw;
	for (int tries = 0;; tries++) {
		uintptr_t lo = 0, hi = 0;
		int ret = mapped_run(s->vaddr + base, s->vaddr + end, s->vaddr + off, writable, &lo,
				     &hi);
		if (ret < 0)
			return uxp_fail(-ret, "rdma: REG of segid %#llx offset %#llx: nothing mapped "
					"there with %s access%s (a hole)", (unsigned long long)s->segid,
					(unsigned long long)off, writable ? "read-write" : "read",
					writable && !rw ? ", which this provider's registrations need"
							: "");
		struct rx_chunk *c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		c->off = lo - s->vaddr;
		c->len = hi - lo;
		c->rw = rw;
		/* watched first: a change from now on reaches rx_changed, which
		 * waits for s->lock and finds the chunk */
		ret = uxp_mm_watch(lo, hi - lo, rx_changed, (void *)(intptr_t)s->segid, &c->watch);
		if (ret < 0)
			uxp_debug("rdma: segid %#llx %#lx-%#lx is registered unwatched: an unmap there "
				  "is not seen before remove", (unsigned long long)s->segid,
				  (unsigned long)lo, (unsigned long)hi);
		ret = rw_mr_reg((void *)lo, c->len, RW_REMOTE_READ | (rw ? RW_REMOTE_WRITE : 0), &c->mr);
		if (ret == 0 && !mapped(lo, hi - lo) && tries < 3) {
			chunk_free(c); /* unmapped meanwhile: look again */
			continue;
		}
		if (ret == -EFAULT && !writable) {
			/* libfabric's verbs provider registers through its cache with
			 * local write: read-only pages cannot be served (holes) */
			uxp_info("rdma: segid %#llx %#lx-%#lx: the provider cannot register it for "
				 "reading (read-only pages?): its writable part only",
				 (unsigned long long)s->segid, (unsigned long)lo, (unsigned long)hi);
			chunk_free(c);
			writable = true;
			continue;
		}
		if (ret < 0) {
			chunk_free(c);
			return ret;
		}
		c->next = s->chunks;
		s->chunks = c;
		*out = c;
		return 0;
	}
}

static void handle_reg(const struct rm_msg *m)
{
	struct rm_msg r;
	rm_init(&r, RM_REG_REPLY, m->req);
	/* the grant names its holder: a token from anyone else is refused */
	uint64_t token = m->u.reg.grant, off = m->u.reg.offset;
	uxp_idtab_lock(&grants, token);
	struct rx_grant *g = uxp_idtab_get_locked(&grants, token);
	struct rx_seg *s = g && g->node == m->from_node && g->pid == (pid_t)m->from_pid ? g->seg : NULL;
	rw_addr_t fa = g ? g->fa : 0;
	bool rw = g && g->rw;
	if (s) {
		seg_hold(s);
		g->used = true; /* under the grants shard lock; read under it too */
	}
	uxp_idtab_unlock(&grants, token);
	if (!s) { /* answered at the requester's own (resolver) address */
		struct rr_entry e;
		r.status = uxp_fail(EACCES, "rdma: REG from node %u pid %u with grant %#llx refused: "
				    "%s", m->from_node, m->from_pid, (unsigned long long)token,
				    g ? "another process's grant" : "no such grant");
		if (requester(m, &fa, &e) == 0)
			reply(fa, &r);
		return;
	}
	struct rx_chunk *c = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->removed)
		r.status = -ENOENT;
	else if (off >= s->size || m->u.reg.generation != generation)
		r.status = uxp_fail(EINVAL, "rdma: REG offset %#llx of segid %#llx (size %#zx, "
				    "generation %s)", (unsigned long long)off,
				    (unsigned long long)s->segid, s->size,
				    m->u.reg.generation == generation ? "ok" : "stale");
	else
		r.status = chunk_get(s, off, rw, &c);
	if (c) {
		r.u.chunk.offset = c->off;
		r.u.chunk.length = c->len;
		r.u.chunk.key = rw_mr_key(c->mr);
		r.u.chunk.raddr = rw_mr_raddr(c->mr, (void *)(s->vaddr + c->off));
	}
	pthread_mutex_unlock(&s->lock);
	seg_put(s);
	reply(fa, &r);
}

static void handle_ping(const struct rm_msg *m)
{
	rw_addr_t fa;
	struct rr_entry e;
	struct rm_msg r;
	if (requester(m, &fa, &e) < 0)
		return;
	rm_init(&r, RM_PONG, m->req);
	reply(fa, &r);
}

/* ---- invalidation ------------------------------------------------------- */

static void handle_ack(const struct rm_msg *m)
{
	uxp_idtab_lock(&acks, m->req);
	struct rx_inval_wait *w = uxp_idtab_get_locked(&acks, m->req);
	for (unsigned i = 0; w && i < w->n; i++)
		if (w->e[i].token == m->u.inval.grant && !w->e[i].acked) {
			w->e[i].acked = true;
			__atomic_sub_fetch(&w->pending, 1, __ATOMIC_RELEASE);
		}
	uxp_idtab_unlock(&acks, m->req);
}

struct holders {
	struct holder *v; /* malloc'ed: as many as there are grants */
	unsigned n;
};

/* Grant holders of s that registered something (caller holds s->lock):
 * 0, or -ENOMEM (logged: nobody can be told). */
static int holders_of(struct rx_seg *s, struct holders *h)
{
	size_t cap = 0;
	for (struct rx_grant *g = s->grants; g; g = g->next)
		cap++;
	h->n = 0;
	h->v = cap ? calloc(cap, sizeof(*h->v)) : NULL;
	if (cap && !h->v)
		return uxp_fail(ENOMEM, "rdma: segid %#llx: no memory to tell its %zu importer(s) "
				"of a change", (unsigned long long)s->segid, cap);
	for (struct rx_grant *g = s->grants; g; g = g->next) {
		uxp_idtab_lock(&grants, g->token);
		bool used = g->used, mute = g->mute;
		uxp_idtab_unlock(&grants, g->token);
		if (used)
			h->v[h->n++] = (struct holder){ .token = g->token, .fa = g->fa, .node = g->node,
							.pid = g->pid, .mute = mute };
	}
	return 0;
}

static void mute_grant(uint64_t token)
{
	uxp_idtab_lock(&grants, token);
	struct rx_grant *g = uxp_idtab_get_locked(&grants, token);
	if (g)
		g->mute = true;
	uxp_idtab_unlock(&grants, token);
}

/* Not waited for any more (caller: not under the shard lock). */
static void inval_done(struct rx_inval_wait *w, uint64_t req, unsigned k)
{
	uxp_idtab_lock(&acks, req);
	if (!w->e[k].acked) {
		w->e[k].acked = true;
		__atomic_sub_fetch(&w->pending, 1, __ATOMIC_RELEASE);
	}
	uxp_idtab_unlock(&acks, req);
}

/* Tell the holders that [off, off+len) of segid changed and wait for their
 * acknowledgements.  A holder whose resolver entry is gone exited:
 * skipped.  The others get one try each; those the back end refuses for
 * now (connecting, or dead without a trace) are retried together until
 * one deadline (XPMEM_RDMA_TIMEOUT_MS), which bounds the acks too.  A
 * holder that was not reached or did not acknowledge is muted: later
 * invalidations try it once and do not wait for it.  Those not acknowledged
 * yet are sent the message again at growing intervals (a connection that
 * broke under an importer's RMA through a key closed here loses messages;
 * the importer acks a repeated one without applying it twice). */
static void tell_holders(xpmem_segid_t segid, struct holders *h, uint64_t off, uint64_t len)
{
	struct rx_inval_wait w = { .n = h->n, .e = h->v };
	struct rm_msg m;
	uint64_t req = __atomic_add_fetch(&next_inval, 1, __ATOMIC_RELAXED);
	rm_init(&m, RM_INVALIDATE, req);
	m.u.inval.segid = segid;
	m.u.inval.offset = off;
	m.u.inval.length = len;
	if (uxp_idtab_insert(&acks, req, &w) < 0)
		return;
	for (unsigned k = 0; k < w.n; k++) {
		struct holder *o = &w.e[k];
		struct rr_entry e;
		bool exited = rr_lookup(o->node, o->pid, &e) < 0;
		/* waited for before the send: the ack may come at once */
		uxp_idtab_lock(&acks, req);
		o->acked = exited;
		if (!exited)
			__atomic_add_fetch(&w.pending, 1, __ATOMIC_RELEASE);
		uxp_idtab_unlock(&acks, req);
		if (exited)
			continue;
		m.u.inval.grant = o->token;
		int ret = rw_send(o->fa, &m, sizeof(m), false);
		o->unsent = ret == -EAGAIN && !o->mute;
		if (ret < 0 && !o->unsent) {
			uxp_debug("rdma: INVALIDATE of segid %#llx not sent to node %u pid %d: %s",
				  (unsigned long long)segid, o->node, (int)o->pid, strerror(-ret));
			mute_grant(o->token);
		}
		if ((ret < 0 && !o->unsent) || o->mute)
			inval_done(&w, req, k); /* not waited for */
	}
	long long now = uxp_now_ms(), deadline = now + rdma_timeout_ms();
	long long every = 100, again = now + every;
	for (long long since = 0; __atomic_load_n(&w.pending, __ATOMIC_ACQUIRE);) {
		if (since && uxp_now_ms() > deadline)
			break;
		rw_progress();
		now = uxp_now_ms();
		bool late = now > deadline, resend = now >= again;
		if (resend) { /* the message or its ack may be lost: see ri_invalidate */
			every = every < 1000 ? every * 2 : every;
			again = now + every;
		}
		for (unsigned k = 0; k < w.n; k++) {
			uxp_idtab_lock(&acks, req);
			bool acked = w.e[k].acked;
			uxp_idtab_unlock(&acks, req);
			if (acked || !(w.e[k].unsent || (resend && !late)))
				continue;
			m.u.inval.grant = w.e[k].token;
			int ret = late ? -ETIMEDOUT : rw_send(w.e[k].fa, &m, sizeof(m), false);
			if (ret == -EAGAIN)
				continue;
			w.e[k].unsent = false;
			if (ret < 0) {
				uxp_debug("rdma: INVALIDATE of segid %#llx not sent to grant %#llx: %s",
					  (unsigned long long)segid, (unsigned long long)w.e[k].token,
					  strerror(-ret));
				mute_grant(w.e[k].token);
				inval_done(&w, req, k);
			}
		}
		rw_backoff(&since);
	}
	uxp_idtab_remove(&acks, req, &w); /* the ack handler writes w under the shard lock */
	for (unsigned k = 0; k < w.n; k++) {
		if (w.e[k].acked)
			continue;
		uxp_warn("rdma: segid %#llx: grant %#llx did not acknowledge an invalidation within "
			 "%ld ms (XPMEM_RDMA_TIMEOUT_MS): not waited for again",
			 (unsigned long long)segid, (unsigned long long)w.e[k].token, rdma_timeout_ms());
		mute_grant(w.e[k].token);
	}
}

/* The application changed [a, b) (watcher thread, or an owner's report):
 * the chunks there are closed, then importers drop those pages. */
static void rx_changed(void *arg, uintptr_t a, uintptr_t b, int kind)
{
	xpmem_segid_t segid = (xpmem_segid_t)(intptr_t)arg;
	struct rx_seg *s = uxp_idtab_get(&segs, (uint64_t)segid, seg_hold);
	if (!s)
		return;
	struct rx_chunk *dropped = NULL;
	struct holders h = { NULL, 0 };
	uint64_t lo = UINT64_MAX, hi = 0;
	pthread_mutex_lock(&s->lock);
	for (struct rx_chunk **pp = &s->chunks, *c; (c = *pp) != NULL;) {
		uintptr_t cs = s->vaddr + c->off, ce = cs + c->len;
		if (cs >= b || a >= ce) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = dropped;
		dropped = c;
		uint64_t l = (a > cs ? a : cs) - s->vaddr, r = (b < ce ? b : ce) - s->vaddr;
		lo = l < lo ? l : lo;
		hi = r > hi ? r : hi;
	}
	if (dropped) /* (ENOMEM: logged; the registrations close all the same) */
		(void)holders_of(s, &h);
	pthread_mutex_unlock(&s->lock);
	if (dropped)
		uxp_debug("rdma: segid %#llx: %#llx+%#llx %s in this process: its registrations are "
			  "closed, %u importer(s) told", (unsigned long long)segid,
			  (unsigned long long)lo, (unsigned long long)(hi - lo),
			  kind == UXP_MM_REMOVE ? "discarded" : "unmapped or moved", h.n);
	/* the regions first: no RMA through their keys from now on */
	bool any = dropped != NULL;
	struct { uintptr_t lo, hi; bool rw; } rest[16];
	unsigned nrest = 0;
	for (struct rx_chunk *n; dropped; dropped = n) {
		n = dropped->next;
		uintptr_t cs = s->vaddr + dropped->off, ce = cs + dropped->len;
		if (cs < a && nrest < UXP_ARRAY_SIZE(rest))
			rest[nrest++] = (typeof(rest[0])){ cs, a < ce ? a : ce, dropped->rw };
		if (b < ce && nrest < UXP_ARRAY_SIZE(rest))
			rest[nrest++] = (typeof(rest[0])){ b > cs ? b : cs, ce, dropped->rw };
		chunk_free(dropped);
	}
	/* the unchanged rest of those chunks stays registered and watched
	 * (importers keep their pages there: a later change must reach them) */
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < nrest && !s->removed; i++) {
		struct rx_chunk *c = calloc(1, sizeof(*c));
		if (!c)
			break;
		*c = (struct rx_chunk){ .off = rest[i].lo - s->vaddr, .len = rest[i].hi - rest[i].lo,
					.rw = rest[i].rw };
		(void)uxp_mm_watch(rest[i].lo, c->len, rx_changed, (void *)(intptr_t)s->segid, &c->watch);
		if (!mapped(rest[i].lo, c->len) ||
		    rw_mr_reg((void *)rest[i].lo, c->len,
			      RW_REMOTE_READ | (c->rw ? RW_REMOTE_WRITE : 0), &c->mr) < 0) {
			chunk_free(c); /* changed too: its own report follows */
			continue;
		}
		c->next = s->chunks;
		s->chunks = c;
	}
	pthread_mutex_unlock(&s->lock);
	if (any && h.n)
		tell_holders(segid, &h, lo, hi - lo);
	free(h.v);
	seg_put(s);
}

void rx_handle(const struct rm_msg *m)
{
	pthread_once(&tables_once, tables_init);
	switch (m->type) {
	case RM_GET:
		handle_get(m);
		break;
	case RM_REG:
		handle_reg(m);
		break;
	case RM_PING:
		handle_ping(m);
		break;
	case RM_INVAL_ACK:
		handle_ack(m);
		break;
	}
}

/* ---- remove ----------------------------------------------------------- */

/* One try to send g's holder the REVOKE of segid: 0, -EAGAIN (not now)
 * or -errno (logged). */
static int revoke_try(xpmem_segid_t segid, const struct rx_grant *g)
{
	struct rm_msg r;
	rm_init(&r, RM_REVOKE, 0);
	r.u.revoke.segid = segid;
	r.u.revoke.grant = g->token;
	r.status = UXPMEM_REVOKE_REMOVED;
	int ret = rw_send(g->fa, &r, sizeof(r), false);
	if (ret < 0 && ret != -EAGAIN)
		uxp_debug("rdma: REVOKE to node %u pid %d not sent: %s", g->node, (int)g->pid,
			  strerror(-ret));
	return ret;
}

void rx_unexport(xpmem_segid_t segid)
{
	pthread_once(&tables_once, tables_init);
	struct rx_seg *s = uxp_idtab_remove(&segs, (uint64_t)segid, NULL);
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->removed = true;
	/* regions first: from now on no importer reads or writes */
	for (struct rx_chunk *c = s->chunks, *n; c; c = n) {
		n = c->next;
		chunk_free(c);
	}
	s->chunks = NULL;
	struct rx_grant *g = s->grants;
	s->grants = NULL;
	pthread_mutex_unlock(&s->lock);
	/* REVOKE to every grant holder still there.  One whose resolver entry
	 * is gone exited: skipped.  The others get one try each, and those
	 * the provider refuses for now (connecting, or the holder died
	 * without a trace) are retried together until one shared deadline:
	 * dead holders cost a remove XPMEM_RDMA_TIMEOUT_MS at most, whatever
	 * their number. */
	struct rx_grant *pending = NULL;
	for (struct rx_grant *n; g; g = n) {
		n = g->next;
		uxp_idtab_remove(&grants, g->token, g);
		struct rr_entry e;
		if (rr_lookup(g->node, g->pid, &e) < 0 || revoke_try(segid, g) != -EAGAIN) {
			free(g);
			continue;
		}
		g->next = pending;
		pending = g;
	}
	long long deadline = uxp_now_ms() + rdma_timeout_ms(), since = 0;
	while (pending) {
		bool late = uxp_now_ms() > deadline;
		rw_progress();
		for (struct rx_grant **pp = &pending, *p; (p = *pp) != NULL;) {
			if (!late && revoke_try(segid, p) == -EAGAIN) {
				pp = &p->next;
				continue;
			}
			if (late)
				uxp_debug("rdma: remove %#llx: node %u pid %d unreachable for %ld ms: "
					  "no REVOKE", (unsigned long long)segid, p->node, (int)p->pid,
					  rdma_timeout_ms());
			*pp = p->next;
			free(p);
		}
		rw_backoff(&since);
	}
	seg_put(s);
}

void rx_fork_child(void)
{
	/* the parent's segments are not the child's (their records leak) */
	uxp_idtab_reset_after_fork(&segs, NULL);
	uxp_idtab_reset_after_fork(&grants, NULL);
}
