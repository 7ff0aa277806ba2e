/* importer.c - gets and attachments of other nodes' segments.
 *
 * get: the exporter's address from the resolver, GET -> grant, length,
 * generation.  attach: reserve the range (anonymous memory), ask the
 * exporter for the chunks it covers (REG, cached per apid) and fill it by
 * RDMA read, eagerly; read-only attachments are then mprotect'ed PROT_READ.
 * Read-write ones keep a twin (a copy as fetched): uxpmem_flush() and
 * detach write back the pages that differ from it (RDMA write with delivery
 * complete, from the twin, which is updated first so that stores racing
 * the flush are caught by the next one) - release consistency.
 *
 * Invalidation: INVALIDATE{grant, offset, length} (the exporter unmapped,
 * remapped or discarded that part) is handled on the fault thread: the
 * cached registrations there are forgotten, the pages dropped (the next
 * touch fetches them again; a page where the exporter then has nothing
 * raises SIGBUS), an INVALIDATED event per attachment, then the ack.
 *
 * Revocation: REVOKE (remove) or an exporter silent for the timeout
 * (EXITED; pings every quarter of it): the zero-length memfd is mapped over
 * every attachment of the apid (touch = SIGBUS), then the event goes out.
 *
 * Locks: ap->lock (the apid's attachment list), then att->lock (its
 * mapping); detach never holds both at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "rdma.h"
#include "uxpmem.h"

struct ri_req {
	int done; /* atomic */
	struct rm_msg reply;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct uxp_idtab apids, atts, reqs;
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ri_peer *peers;
static uint32_t serial;
static uint64_t next_req;
static int sigbus_fd = -1;

static void init_once(void)
{
	/* request ids from a random start: an exporter recognises a resent
	 * GET by (node, pid, id), and this pid may be an earlier process's */
	if (getrandom(&next_req, sizeof(next_req), 0) != sizeof(next_req))
		next_req = (uint64_t)uxp_now_ms() << 20;
	next_req >>= 1; /* never wraps to 0 */
	uxp_idtab_init(&apids);
	uxp_idtab_init(&atts);
	uxp_idtab_init(&reqs);
	sigbus_fd = memfd_create("uxpmem-rdma-revoked", MFD_CLOEXEC);
}

static void ap_hold(void *p)
{
	__atomic_add_fetch(&((struct ri_apid *)p)->refs, 1, __ATOMIC_RELAXED);
}

static void ap_put(struct ri_apid *ap)
{
	if (__atomic_sub_fetch(&ap->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (struct ri_chunk *c = ap->chunks, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	pthread_mutex_destroy(&ap->lock);
	free(ap);
}

void ri_att_hold(void *p)
{
	__atomic_add_fetch(&((struct ri_att *)p)->refs, 1, __ATOMIC_RELAXED);
}

void ri_att_put(struct ri_att *a)
{
	if (__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL))
		return;
	pthread_mutex_destroy(&a->lock);
	ap_put(a->ap);
	free(a);
}

/* ---- exporters --------------------------------------------------------- */

static struct ri_peer *peer_find(unsigned node, pid_t pid)
{
	struct ri_peer *p;
	pthread_mutex_lock(&peers_lock);
	for (p = peers; p && (p->node != node || p->pid != pid); p = p->next)
		;
	pthread_mutex_unlock(&peers_lock);
	return p;
}

/* The exporter (node, pid), found through the resolver the first time. */
static int peer_get(unsigned node, pid_t pid, struct ri_peer **out)
{
	struct ri_peer *p = peer_find(node, pid);
	if (p) {
		*out = p;
		return 0;
	}
	struct rr_entry e;
	rw_addr_t fa;
	int ret = rr_lookup(node, pid, &e);
	if (ret == 0 && strcmp(e.prov, rw_self.prov) != 0)
		ret = uxp_fail(EPROTO, "rdma: node %u pid %d uses provider %s, this process %s",
			       node, (int)pid, e.prov, rw_self.prov);
	if (ret == 0)
		ret = rw_peer_insert(e.addr, e.addrlen, &fa);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&peers_lock);
	for (p = peers; p && (p->node != node || p->pid != pid); p = p->next)
		;
	if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
		*p = (struct ri_peer){ .next = peers, .node = node, .pid = pid, .fa = fa,
				       .last_heard = uxp_now_ms() };
		peers = p;
	}
	pthread_mutex_unlock(&peers_lock);
	*out = p;
	return p ? 0 : -ENOMEM;
}

static void heard(unsigned node, pid_t pid)
{
	struct ri_peer *p = peer_find(node, pid);
	if (p)
		__atomic_store_n(&p->last_heard, uxp_now_ms(), __ATOMIC_RELAXED);
}

/* ---- requests ---------------------------------------------------------- */

/* Send m to p and wait for the reply (driving progress): 0 or -errno.
 * The request is sent again while no reply comes, at growing intervals
 * (GET and REG are idempotent: the exporter answers a resent GET with the
 * grant the first one made): a message can be lost when the connection breaks
 * under it, and an RMA through a key the exporter closed meanwhile (an
 * invalidation racing a fetch) breaks it (RC queue pairs go to the error
 * state; tcp;ofi_rxm cancels what was queued) - the REG that follows such
 * a failed read must not wait out the whole timeout. */
static int request(struct ri_peer *p, struct rm_msg *m, struct rm_msg *reply)
{
	struct ri_req rq = { 0 };
	m->req = __atomic_add_fetch(&next_req, 1, __ATOMIC_RELAXED);
	int ret = uxp_idtab_insert(&reqs, m->req, &rq);
	if (ret < 0)
		return ret;
	ret = rw_send(p->fa, m, sizeof(*m), true);
	long long now = uxp_now_ms(), deadline = now + rdma_timeout_ms();
	long long every = 100, again = now + every;
	for (long long since = 0; ret == 0 && !__atomic_load_n(&rq.done, __ATOMIC_ACQUIRE);) {
		now = uxp_now_ms();
		if (__atomic_load_n(&p->dead, __ATOMIC_RELAXED))
			ret = uxp_fail(ENOENT, "rdma: exporter node %u pid %d is gone", p->node, (int)p->pid);
		else if (since && now > deadline)
			ret = uxp_fail(ETIMEDOUT, "rdma: node %u pid %d did not answer within %ld ms "
				       "(XPMEM_RDMA_TIMEOUT_MS)", p->node, (int)p->pid, rdma_timeout_ms());
		else if (now >= again) {
			uxp_debug("rdma: no answer of node %u pid %d to request %llu (type %u) after "
				  "%lld ms: sent again", p->node, (int)p->pid,
				  (unsigned long long)m->req, m->type, now - (deadline - rdma_timeout_ms()));
			(void)rw_send(p->fa, m, sizeof(*m), false); /* a failure: the next try */
			every = every < 1000 ? every * 2 : every;
			again = now + every;
		}
		rw_progress();
		rw_backoff(&since);
	}
	/* the reply handler copies under the shard lock: after this, never */
	uxp_idtab_remove(&reqs, m->req, &rq);
	if (ret == 0)
		*reply = rq.reply;
	return ret;
}

static void handle_reply(const struct rm_msg *m)
{
	uxp_idtab_lock(&reqs, m->req);
	struct ri_req *rq = uxp_idtab_get_locked(&reqs, m->req);
	if (rq) {
		rq->reply = *m;
		__atomic_store_n(&rq->done, 1, __ATOMIC_RELEASE);
	}
	uxp_idtab_unlock(&reqs, m->req);
}

/* ---- get / release ----------------------------------------------------- */

int ri_get(xpmem_segid_t segid, int flags, xpmem_apid_t *apid)
{
	pthread_once(&once, init_once);
	int ret = rw_open();
	struct ri_peer *p = NULL;
	if (ret == 0)
		ret = peer_get(uxp_id_node(segid), uxp_id_pid(segid), &p);
	if (ret < 0)
		return ret;
	if (__atomic_load_n(&p->dead, __ATOMIC_RELAXED))
		return uxp_fail(ENOENT, "rdma: get %#llx: its exporter is gone", (unsigned long long)segid);
	struct rm_msg m, r;
	rm_init(&m, RM_GET, 0);
	m.u.get.segid = segid;
	m.status = flags;
	ret = request(p, &m, &r);
	if (ret == 0 && r.status < 0)
		ret = uxp_fail(-r.status, "rdma: get %#llx refused by node %u pid %d: %s",
			       (unsigned long long)segid, p->node, (int)p->pid, strerror(-r.status));
	if (ret < 0)
		return ret;
	struct ri_apid *ap = calloc(1, sizeof(*ap));
	if (!ap)
		return -ENOMEM;
	uint32_t n = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
	*ap = (struct ri_apid){ .id = uxp_id_compose(uxp_id_node(segid), getpid(), n), .segid = segid,
				.flags = flags, .grant = r.u.got.grant, .length = r.u.got.length,
				.generation = r.u.got.generation, .peer = p, .refs = 1 };
	pthread_mutex_init(&ap->lock, NULL);
	uxp_revoke_apid_added(ap->id);
	if (__atomic_fetch_add(&p->napids, 1, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&p->last_heard, uxp_now_ms(), __ATOMIC_RELAXED);
	ret = uxp_idtab_insert(&apids, (uint64_t)ap->id, ap);
	if (ret < 0) {
		__atomic_sub_fetch(&p->napids, 1, __ATOMIC_RELAXED);
		ap_put(ap);
		return ret;
	}
	*apid = ap->id;
	uxp_debug("rdma: apid %#llx: segid %#llx of node %u pid %d, %#llx bytes",
		  (unsigned long long)ap->id, (unsigned long long)segid, p->node, (int)p->pid,
		  (unsigned long long)r.u.got.length);
	return 0;
}

static int mine(xpmem_apid_t apid, const char *what)
{
	if (uxp_id_pid(apid) != getpid())
		return uxp_fail(EACCES, "rdma: %s: apid %#llx belongs to pid %d", what,
				(unsigned long long)apid, (int)uxp_id_pid(apid));
	return 0;
}

/* Out of the table (once; revocations no longer find it). */
static void ap_unlist(struct ri_apid *ap)
{
	if (uxp_idtab_remove(&apids, (uint64_t)ap->id, ap) != ap)
		return;
	__atomic_sub_fetch(&ap->peer->napids, 1, __ATOMIC_RELAXED);
	ap_put(ap);
}

/* A released apid stays listed (revocable) until its last detach. */
int ri_release(xpmem_apid_t apid)
{
	pthread_once(&once, init_once);
	int ret = mine(apid, "release");
	if (ret < 0)
		return ret;
	struct ri_apid *ap = uxp_idtab_get(&apids, (uint64_t)apid, ap_hold);
	bool was = true, unused = false;
	if (ap) {
		pthread_mutex_lock(&ap->lock);
		was = ap->released;
		ap->released = true;
		unused = !ap->atts;
		pthread_mutex_unlock(&ap->lock);
		if (!was && unused)
			ap_unlist(ap);
		ap_put(ap);
	}
	if (was)
		return uxp_fail(ENOENT, "rdma: release: no apid %#llx", (unsigned long long)apid);
	return 0;
}

/* ---- attach ------------------------------------------------------------ */

void ri_chunks_drop(struct ri_apid *ap, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&ap->lock);
	ap->chunks_gen++; /* a REG answered before this is not cached */
	for (struct ri_chunk **pp = &ap->chunks, *c; (c = *pp) != NULL;) {
		if (c->off < off + len && off < c->off + c->len) {
			*pp = c->next;
			free(c);
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&ap->lock);
}

/* The exporter's registration of the chunk holding off (cached). */
static int chunk_of(struct ri_apid *ap, uint64_t off, struct ri_chunk *out)
{
	pthread_mutex_lock(&ap->lock);
	struct ri_chunk *c = ap->chunks;
	while (c && !(off >= c->off && off - c->off < c->len))
		c = c->next;
	if (c)
		*out = *c;
	uint64_t gen = ap->chunks_gen;
	pthread_mutex_unlock(&ap->lock);
	if (c)
		return 0;
	struct rm_msg m, r;
	rm_init(&m, RM_REG, 0);
	m.u.reg.grant = ap->grant;
	m.u.reg.generation = ap->generation;
	m.u.reg.offset = off;
	int ret = request(ap->peer, &m, &r);
	if (ret == 0 && r.status < 0)
		ret = uxp_fail(-r.status, "rdma: apid %#llx: offset %#llx not registered by the "
			       "exporter: %s", (unsigned long long)ap->id, (unsigned long long)off,
			       strerror(-r.status));
	if (ret == 0 && (r.u.chunk.length == 0 || off < r.u.chunk.offset ||
			 off - r.u.chunk.offset >= r.u.chunk.length))
		ret = uxp_fail(EPROTO, "rdma: the exporter registered another chunk");
	if (ret < 0)
		return ret;
	*out = (struct ri_chunk){ .off = r.u.chunk.offset, .len = r.u.chunk.length,
				  .key = r.u.chunk.key, .raddr = r.u.chunk.raddr };
	if ((c = malloc(sizeof(*c))) != NULL) {
		*c = *out;
		pthread_mutex_lock(&ap->lock);
		if (ap->chunks_gen == gen) {
			c->next = ap->chunks;
			ap->chunks = c;
			c = NULL;
		}
		pthread_mutex_unlock(&ap->lock);
		free(c);
	}
	return 0;
}

/* RMA between [local, local+len) and the segment at offset off, chunk by
 * chunk.  A read through a registration the exporter closed meanwhile (it
 * unmapped or remapped that memory: its INVALIDATE follows) fails with EIO:
 * the piece is read again, registered anew, RMA_TRIES times in all.  Never
 * a write: stores meant for the memory that went away must not land in
 * what the exporter mapped there since (the kernel XPMEM loses them too). */
#define RMA_TRIES 8

static int rma_range(struct ri_apid *ap, bool write, char *local, struct rw_mr *lmr, uint64_t off,
		     size_t len, bool spin)
{
	for (int tries = 1; len;) {
		struct ri_chunk c;
		int ret = chunk_of(ap, off, &c);
		if (ret < 0)
			return ret;
		size_t n = c.off + c.len - off < len ? (size_t)(c.off + c.len - off) : len;
		ret = (spin ? rw_rma_spin : rw_rma)(write, local, lmr, n, ap->peer->fa,
						    c.raddr + (off - c.off), c.key);
		if (ret == -EIO && !write && tries++ < RMA_TRIES) {
			uxp_debug("rdma: apid %#llx: read at offset %#llx failed: registered anew, "
				  "try %d", (unsigned long long)ap->id, (unsigned long long)off, tries);
			ri_chunks_drop(ap, c.off, c.len);
			continue;
		}
		if (ret < 0)
			return ret;
		local += n;
		off += n;
		len -= n;
		tries = 1;
	}
	return 0;
}

int ri_rma_range(struct ri_apid *ap, bool write, char *local, struct rw_mr *lmr, uint64_t off,
		 size_t len)
{
	return rma_range(ap, write, local, lmr, off, len, false);
}

int ri_rma_range_spin(struct ri_apid *ap, bool write, char *local, struct rw_mr *lmr, uint64_t off,
		      size_t len)
{
	return rma_range(ap, write, local, lmr, off, len, true);
}

struct ri_apid *ri_apid_hold(xpmem_apid_t apid)
{
	pthread_once(&once, init_once);
	return uxp_idtab_get(&apids, (uint64_t)apid, ap_hold);
}

void ri_apid_put(struct ri_apid *ap)
{
	ap_put(ap);
}

/* Caller holds a->lock (or a is not visible yet). */
static void att_free_maps(struct ri_att *a)
{
	rl_unregister(a);
	free(a->fetched);
	free(a->holes);
	a->fetched = a->holes = NULL;
	if (a->mr)
		rw_mr_dereg(a->mr);
	if (a->twin_mr)
		rw_mr_dereg(a->twin_mr);
	if (a->twin)
		munmap(a->twin, a->size);
	munmap(a->addr, a->size);
}

/* Map, register and fill the attachment: 0 or -errno (nothing left). */
static int att_fill(struct ri_att *a, uintptr_t vaddr)
{
	struct ri_apid *ap = a->ap;
	int fixed = vaddr ? MAP_FIXED : 0;
	a->addr = mmap((void *)vaddr, a->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | fixed, -1, 0);
	if (a->addr == MAP_FAILED)
		return uxp_fail(errno, "rdma: attach: mmap of %#zx bytes: %s", a->size, strerror(errno));
	bool local = rw_self.mr_local, rw = ap->flags == XPMEM_RDWR;
	int ret = 0;
	if (rw) { /* the twin first: a lazy fill writes it too */
		a->twin = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (a->twin == MAP_FAILED) {
			a->twin = NULL;
			ret = -ENOMEM;
		} else if (local) {
			ret = rw_mr_reg(a->twin, a->size, RW_LOCAL_WRITE, &a->twin_mr);
		}
	}
	size_t bits = a->size / uxp_page_size / 8 + 1;
	if (ret == 0 && (!(a->fetched = calloc(bits, 1)) || !(a->holes = calloc(bits, 1))))
		ret = -ENOMEM;
	/* nobody touches the range before we return it: lazy, or filled now */
	bool lazy = ret == 0 && a->size >= rl_eager_max() && rl_register(a) == 0;
	/* (pages the kernel gave the range meanwhile, a huge page of a
	 * neighbour's registration, rl_register drops) */
	/* registered only when filled now: registering pins (populates) the
	 * pages, and a lazy range must stay unpopulated for its faults */
	if (ret == 0 && !lazy && local)
		ret = rw_mr_reg(a->addr, a->size, RW_LOCAL_READ | RW_LOCAL_WRITE, &a->mr);
	if (ret == 0 && !lazy)
		ret = ri_rma_range(ap, false, a->addr, a->mr, a->offset, a->size);
	if (ret == 0 && !lazy)
		memset(a->fetched, 0xff, bits);
	if (ret == 0 && !lazy && rw)
		memcpy(a->twin, a->addr, a->size);
	if (ret == 0 && !rw && mprotect(a->addr, a->size, PROT_READ) < 0)
		ret = -errno;
	if (ret < 0)
		att_free_maps(a);
	return ret;
}

int ri_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr)
{
	pthread_once(&once, init_once);
	int ret = mine(apid, "attach");
	if (ret < 0)
		return ret;
	struct ri_apid *ap = uxp_idtab_get(&apids, (uint64_t)apid, ap_hold);
	if (!ap)
		return uxp_fail(ENOENT, "rdma: attach: no apid %#llx", (unsigned long long)apid);
	if ((uint64_t)offset > ap->length || size > ap->length - (uint64_t)offset) {
		ret = uxp_fail(EINVAL, "rdma: attach: %#llx+%#zx is outside the segment (%#llx bytes)",
			       (unsigned long long)offset, size, (unsigned long long)ap->length);
		ap_put(ap);
		return ret;
	}
	struct ri_att *a = calloc(1, sizeof(*a));
	if (!a) {
		ap_put(ap);
		return -ENOMEM;
	}
	*a = (struct ri_att){ .ap = ap, .size = size, .offset = (uint64_t)offset, .refs = 1,
			      .uffd = -1 };
	pthread_mutex_init(&a->lock, NULL);
	ret = att_fill(a, vaddr);
	if (ret == 0) {
		pthread_mutex_lock(&ap->lock);
		if (__atomic_load_n(&ap->revoked, __ATOMIC_RELAXED) || ap->released) {
			ret = uxp_fail(ENOENT, "rdma: attach: segid %#llx was %s",
				       (unsigned long long)ap->segid, ap->released ? "released" : "revoked");
		} else {
			a->next = ap->atts;
			ap->atts = a;
			ret = uxp_idtab_insert(&atts, (uint64_t)(uintptr_t)a->addr, a);
			if (ret < 0)
				ap->atts = a->next;
		}
		pthread_mutex_unlock(&ap->lock);
		if (ret < 0)
			att_free_maps(a);
	}
	if (ret < 0) {
		ri_att_put(a);
		return ret;
	}
	*addr = a->addr;
	return 0;
}

/* ---- write-back -------------------------------------------------------- */

/* Write back the pages of [from, to) (offsets in the attachment) that
 * differ from the twin.  Caller holds a->lock. */
static int write_back(struct ri_att *a, size_t from, size_t to)
{
	size_t ps = uxp_page_size, run = 0, start = 0;
	int ret = 0;
	for (size_t p = from; p <= to && ret == 0; p += ps) {
		bool dirty = p < to && rl_fetched(a, p / ps) &&
			     memcmp(a->addr + p, a->twin + p, ps) != 0;
		if (dirty) {
			/* twin first: a store racing us differs again afterwards */
			memcpy(a->twin + p, a->addr + p, ps);
			if (!run)
				start = p;
			run += ps;
		} else if (run) {
			ret = ri_rma_range(a->ap, true, a->twin + start, a->twin_mr, a->offset + start,
					   run);
			run = 0;
		}
	}
	return ret;
}

static int att_flush(struct ri_att *a, uintptr_t lo, uintptr_t hi)
{
	uintptr_t s = (uintptr_t)a->addr, e = s + a->size;
	s = s > lo ? s : lo;
	e = e < hi ? e : hi;
	if (s >= e || !a->twin || a->gone || __atomic_load_n(&a->ap->revoked, __ATOMIC_RELAXED))
		return 0;
	size_t ps = uxp_page_size;
	size_t from = (s - (uintptr_t)a->addr) & ~(ps - 1);
	size_t to = (e - (uintptr_t)a->addr + ps - 1) & ~(ps - 1);
	return write_back(a, from, to < a->size ? to : a->size);
}

struct overlap {
	uintptr_t lo, hi;
	struct ri_att *hit[64];
	unsigned n;
	bool more;
};

static int collect(uint64_t key, void *obj, void *arg)
{
	(void)key;
	struct overlap *o = arg;
	struct ri_att *a = obj;
	if ((uintptr_t)a->addr >= o->hi || (uintptr_t)a->addr + a->size <= o->lo)
		return 0;
	if (o->n == UXP_ARRAY_SIZE(o->hit)) {
		o->more = true;
		return 1;
	}
	ri_att_hold(a);
	o->hit[o->n++] = a;
	return 0;
}

int ri_flush(uintptr_t vaddr, size_t size)
{
	pthread_once(&once, init_once);
	struct overlap o = { .lo = vaddr, .hi = vaddr + size };
	int ret = 0;
	uxp_idtab_foreach(&atts, collect, &o);
	if (!o.n)
		return -EINVAL;
	for (unsigned i = 0; i < o.n; i++) {
		struct ri_att *a = o.hit[i];
		pthread_mutex_lock(&a->lock);
		int r = att_flush(a, o.lo, o.hi);
		pthread_mutex_unlock(&a->lock);
		ret = ret ? ret : r;
		ri_att_put(a);
	}
	if (o.more)
		uxp_warn("rdma: flush: more than %zu attachments in %#lx+%#zx: flush the rest apart",
			 UXP_ARRAY_SIZE(o.hit), (unsigned long)vaddr, size);
	return ret;
}

/* ---- detach ------------------------------------------------------------ */

int ri_detach(uintptr_t vaddr)
{
	pthread_once(&once, init_once);
	struct ri_att *a = uxp_idtab_remove(&atts, (uint64_t)vaddr, NULL);
	if (!a)
		return -EINVAL; /* not ours: the core asks the local transport */
	struct ri_apid *ap = a->ap;
	pthread_mutex_lock(&a->lock);
	int ret = att_flush(a, (uintptr_t)a->addr, (uintptr_t)a->addr + a->size);
	if (ret < 0)
		uxp_warn("rdma: detach %#lx: its stores were not all written back: %s",
			 (unsigned long)vaddr, strerror(-ret));
	att_free_maps(a);
	a->gone = true;
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_lock(&ap->lock);
	struct ri_att **pp = &ap->atts;
	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	bool last = ap->released && !ap->atts;
	pthread_mutex_unlock(&ap->lock);
	if (last)
		ap_unlist(ap);
	ri_att_put(a);
	return ret;
}

/* ---- revocation -------------------------------------------------------- */

int ri_sigbus_fd(void)
{
	pthread_once(&once, init_once);
	return sigbus_fd;
}

static void att_revoke(struct ri_att *a)
{
	pthread_mutex_lock(&a->lock);
	if (!a->gone && mmap(a->addr, a->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			     sigbus_fd, 0) == MAP_FAILED)
		uxp_error("rdma: revoking %p+%#zx: mmap: %s", (void *)a->addr, a->size,
			  strerror(errno));
	rl_wake_all(a); /* threads waiting for a page retry: SIGBUS */
	pthread_mutex_unlock(&a->lock);
}

/* Lock order: a->lock before ap->lock (the fault thread serves a page
 * under a->lock and looks up ap's chunks), so the attachments are taken
 * out of ap->lock first and revoked after it.  ap->revoked, set under
 * ap->lock, keeps new attachments out meanwhile. */
void ri_revoke_apid(struct ri_apid *ap, int reason)
{
	pthread_mutex_lock(&ap->lock);
	bool first = !__atomic_exchange_n(&ap->revoked, true, __ATOMIC_RELAXED);
	size_t n = 0;
	for (struct ri_att *a = ap->atts; first && a; a = a->next)
		n++;
	struct ri_att **v = n ? malloc(n * sizeof(*v)) : NULL;
	n = 0;
	for (struct ri_att *a = ap->atts; v && a; a = a->next) {
		ri_att_hold(a);
		v[n++] = a;
	}
	bool nested = first && ap->atts && !v;
	for (struct ri_att *a = ap->atts; nested && a; a = a->next)
		att_revoke(a); /* out of memory: the old way (a fault meanwhile may wait) */
	pthread_mutex_unlock(&ap->lock);
	for (size_t i = 0; i < n; i++) {
		att_revoke(v[i]);
		ri_att_put(v[i]);
	}
	free(v);
	if (first)
		uxp_revoke_emit(ap->id, ap->segid, reason, NULL, 0, 0, ap->length);
}

struct revoke_match {
	struct ri_peer *peer;
	uint64_t grant; /* 0: every apid of peer */
	struct ri_apid *hit[64];
	unsigned n;
	bool more;
};

static int match(uint64_t key, void *obj, void *arg)
{
	(void)key;
	struct revoke_match *rm = arg;
	struct ri_apid *ap = obj;
	if (ap->peer != rm->peer || (rm->grant && ap->grant != rm->grant) ||
	    __atomic_load_n(&ap->revoked, __ATOMIC_RELAXED))
		return 0;
	if (rm->n == UXP_ARRAY_SIZE(rm->hit)) {
		rm->more = true;
		return 1;
	}
	ap_hold(ap);
	rm->hit[rm->n++] = ap;
	return 0;
}

static void revoke_where(struct ri_peer *peer, uint64_t grant, int reason)
{
	struct revoke_match rm;
	do {
		rm = (struct revoke_match){ .peer = peer, .grant = grant };
		uxp_idtab_foreach(&apids, match, &rm);
		for (unsigned i = 0; i < rm.n; i++) {
			ri_revoke_apid(rm.hit[i], reason);
			ap_put(rm.hit[i]);
		}
	} while (rm.more);
}

struct inval_hit {
	void *addr;
	size_t size;
	uint64_t off;
};

/* Drop [off, off+len) of the segment from ap's attachments (fault thread). */
static void invalidate_apid(struct ri_apid *ap, uint64_t off, uint64_t len)
{
	struct ri_att *hit[64];
	struct inval_hit ev[64];
	unsigned n = 0, nev = 0;
	size_t ps = uxp_page_size;
	ri_chunks_drop(ap, off, len);
	pthread_mutex_lock(&ap->lock);
	for (struct ri_att *a = ap->atts; a; a = a->next) {
		if (a->offset >= off + len || off >= a->offset + a->size)
			continue;
		if (n == UXP_ARRAY_SIZE(hit)) {
			uxp_warn("rdma: apid %#llx: more than %zu attachments invalidated at once: the "
				 "rest keep their pages", (unsigned long long)ap->id, UXP_ARRAY_SIZE(hit));
			break;
		}
		ri_att_hold(a);
		hit[n++] = a;
	}
	pthread_mutex_unlock(&ap->lock);
	for (unsigned i = 0; i < n; i++) {
		struct ri_att *a = hit[i];
		pthread_mutex_lock(&a->lock);
		if (!a->gone && !__atomic_load_n(&ap->revoked, __ATOMIC_RELAXED)) {
			uint64_t s = off > a->offset ? off : a->offset;
			uint64_t e = off + len < a->offset + a->size ? off + len : a->offset + a->size;
			size_t from = (size_t)(s - a->offset) / ps, to = (size_t)(e - a->offset + ps - 1) / ps;
			rl_drop(a, from, to);
			ev[nev++] = (struct inval_hit){ a->addr + from * ps, (to - from) * ps,
							a->offset + from * ps };
		}
		pthread_mutex_unlock(&a->lock);
		ri_att_put(a);
	}
	for (unsigned i = 0; i < nev; i++) {
		uxp_debug("rdma: apid %#llx: %p+%#zx invalidated by the exporter",
			  (unsigned long long)ap->id, ev[i].addr, ev[i].size);
		uxp_revoke_emit(ap->id, ap->segid, UXPMEM_REVOKE_INVALIDATED, ev[i].addr, ev[i].size,
				(off_t)ev[i].off, ev[i].size);
	}
}

/* Applied already?  (The fault thread only.) */
static bool inval_seen(const struct ri_peer *p, const struct rm_msg *m)
{
	for (size_t i = 0; i < UXP_ARRAY_SIZE(p->inval_seen); i++)
		if (p->inval_seen[i].req == m->req && p->inval_seen[i].grant == m->u.inval.grant)
			return true;
	return false;
}

static void inval_ack(const struct ri_peer *p, const struct rm_msg *m)
{
	struct rm_msg r;
	rm_init(&r, RM_INVAL_ACK, m->req);
	r.u.inval = m->u.inval;
	int ret = rw_send(p->fa, &r, sizeof(r), true);
	if (ret < 0)
		uxp_debug("rdma: invalidation ack to node %u pid %d not sent: %s", p->node, (int)p->pid,
			  strerror(-ret));
}

void ri_invalidate(const struct rm_msg *m)
{
	pthread_once(&once, init_once);
	struct ri_peer *p = peer_find(m->from_node, (pid_t)m->from_pid);
	if (!p || !m->u.inval.grant)
		return;
	if (inval_seen(p, m)) {
		uxp_debug("rdma: INVALIDATE %llu of node %u pid %d again (our ack lost or late): acked",
			  (unsigned long long)m->req, p->node, (int)p->pid);
		inval_ack(p, m);
		return;
	}
	struct revoke_match rm;
	do {
		rm = (struct revoke_match){ .peer = p, .grant = m->u.inval.grant };
		uxp_idtab_foreach(&apids, match, &rm);
		for (unsigned i = 0; i < rm.n; i++) {
			invalidate_apid(rm.hit[i], m->u.inval.offset, m->u.inval.length);
			ap_put(rm.hit[i]);
		}
	} while (rm.more);
	unsigned k = p->inval_next++ % UXP_ARRAY_SIZE(p->inval_seen);
	p->inval_seen[k].req = m->req;
	p->inval_seen[k].grant = m->u.inval.grant;
	inval_ack(p, m);
}

/* Pings, and exporters silent for the timeout count as EXITED. */
void ri_tick(void)
{
	static long long last;
	long long now = uxp_now_ms(), limit = rdma_timeout_ms(), every = limit / 4 ? limit / 4 : 1;
	if (now - last < every / 2 && now >= last)
		return;
	last = now;
	pthread_mutex_lock(&peers_lock);
	struct ri_peer *list = peers;
	pthread_mutex_unlock(&peers_lock);
	for (struct ri_peer *p = list; p; p = p->next) { /* appended at the head only */
		if (!__atomic_load_n(&p->napids, __ATOMIC_RELAXED) || p->dead)
			continue;
		if (now - __atomic_load_n(&p->last_heard, __ATOMIC_RELAXED) > limit) {
			uxp_info("rdma: exporter node %u pid %d silent for %lld ms: it counts as exited",
				 p->node, (int)p->pid, limit);
			__atomic_store_n(&p->dead, 1, __ATOMIC_RELAXED);
			revoke_where(p, 0, UXPMEM_REVOKE_EXITED);
		} else if (now - p->last_ping >= every) {
			struct rm_msg m;
			rm_init(&m, RM_PING, 0);
			p->last_ping = now;
			rw_send(p->fa, &m, sizeof(m), false); /* a full queue: next time */
		}
	}
}

void ri_handle(const struct rm_msg *m)
{
	pthread_once(&once, init_once);
	heard(m->from_node, (pid_t)m->from_pid);
	switch (m->type) {
	case RM_GET_REPLY:
	case RM_REG_REPLY:
		handle_reply(m);
		break;
	case RM_INVALIDATE:
		rl_queue_invalidate(m);
		break;
	case RM_REVOKE: {
		struct ri_peer *p = peer_find(m->from_node, (pid_t)m->from_pid);
		if (p && m->u.revoke.grant)
			revoke_where(p, m->u.revoke.grant, m->status);
		break;
	}
	}
}

void ri_fork_child(void)
{
	/* the parent's apids, attachments and exporters are not the child's */
	uxp_idtab_reset_after_fork(&apids, NULL);
	uxp_idtab_reset_after_fork(&atts, NULL);
	uxp_idtab_reset_after_fork(&reqs, NULL);
	pthread_mutex_init(&peers_lock, NULL);
	peers = NULL;
}
