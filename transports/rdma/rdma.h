/* rdma.h - internals of the remote transport plugin (libuxpmem-rdma.so).
 *
 * One wire back end per process (struct rw_ops: libfabric in fabric.c,
 * libibverbs + librdmacm in verbs.c; XPMEM_RDMA_BACKEND),
 * opened at the first remote get or the first make under a resolver, with
 * a progress thread; its address is published by the resolver
 * (resolver.c).  Control messages (struct rm_*) go as small sends; data
 * only by RMA (read of the exporter's memory, write back).  exporter.c
 * serves this process's segments, importer.c its gets and attachments;
 * they see the back end only through rw_*() below: peers are opaque
 * handles (rw_addr_t), memory regions opaque pointers (struct rw_mr). */
#ifndef UXP_RDMA_H
#define UXP_RDMA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "uxp.h"

#define RF_ADDR_MAX 256

/* ---- settings (rdma.c) ---- */
/* XPMEM_RDMA_TIMEOUT_MS: a request's reply, an RMA batch, and how long an
 * exporter may stay silent before it counts as EXITED (default 5000). */
long rdma_timeout_ms(void);

/* ---- the wire back end ---- */
typedef uint64_t rw_addr_t; /* a peer, as the back end names it */
struct rw_mr;               /* a registered memory region */

/* mr_reg access: a local buffer that RMA reads land in / RMA writes come
 * from; memory peers read / write. */
enum { RW_LOCAL_READ = 1, RW_LOCAL_WRITE = 2, RW_REMOTE_READ = 4, RW_REMOTE_WRITE = 8 };

struct rw_ops {
	const char *name; /* XPMEM_RDMA_BACKEND's value */
	/* What would be used here ("libfabric 1.17, provider tcp;ofi_rxm"),
	 * for probe/xpmem-info: 0, or -errno with why set. */
	int (*describe)(char *buf, size_t len, char *why, size_t whylen);
	/* Open everything once (endpoint, progress thread, address published
	 * through the resolver, rw_self filled): 0 or -errno (logged); a
	 * failure is final for the process. */
	int (*open)(void);
	/* Read completions (any thread: every wait drives progress). */
	void (*progress)(void);
	/* Send a control message; wait: retry while the peer is not ready
	 * (bounded by the timeout), else one try (-EAGAIN): 0 or -errno. */
	int (*send)(rw_addr_t to, const void *msg, size_t len, bool wait);
	/* RMA of [local, local+len) (inside lmr, or lmr NULL when
	 * rw_self.mr_local is false) from/to the peer's (raddr, key); returns
	 * when all completed: 0 or -errno (EIO, ETIMEDOUT). */
	int (*rma)(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
		   uint64_t raddr, uint64_t key);
	/* The same, polling for the completions without ever sleeping (a
	 * thread whose only job is this wait); NULL: rma. */
	int (*rma_spin)(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
			uint64_t raddr, uint64_t key);
	/* Register memory (RW_* access): 0 or -errno. */
	int (*mr_reg)(void *buf, size_t len, unsigned access, struct rw_mr **mr);
	void (*mr_dereg)(struct rw_mr *mr);
	/* What a peer needs to reach mr, registered at buf: key, remote
	 * address of buf. */
	uint64_t (*mr_key)(struct rw_mr *mr);
	uint64_t (*mr_raddr)(struct rw_mr *mr, void *buf);
	/* The handle of a peer's address blob (the same for the same blob). */
	int (*peer_insert)(const void *addr, size_t len, rw_addr_t *peer);
	/* At exit: close the endpoint (providers release what they hold). */
	void (*close_at_exit)(void);
	/* In a forked child: forget the parent's objects (leaked). */
	void (*fork_child)(void);
};

/* This process's endpoint, filled by the back end's open. */
struct rw_self {
	char prov[64];  /* published with the address: peers must match it */
	bool mr_local;  /* local buffers of RMA must be registered */
};
extern struct rw_self rw_self;
extern const struct rw_ops *rw_be; /* the selected back end (rdma.c) */
#ifdef HAVE_RW_LIBFABRIC
extern const struct rw_ops rw_libfabric; /* fabric.c */
#endif
#ifdef HAVE_RW_VERBS
extern const struct rw_ops rw_verbs; /* verbs.c */
#endif

/* Select the back end (XPMEM_RDMA_BACKEND) once: 0 or -errno with why. */
int rw_select(char *why, size_t whylen);
/* Select and open the back end: 0 or -errno (logged). */
int rw_open(void);

/* A back end's one-time opening: open_all once (after checking this
 * process has a node id); a failure is final for the process (half-open
 * objects are not reused).  rw_once_reset: a forked child starts over. */
struct rw_once {
	pthread_mutex_t lock;
	int opened; /* atomic: 1 once everything is up */
	int err;
};
#define RW_ONCE_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0 }
int rw_open_once(struct rw_once *o, int (*open_all)(void));
static inline bool rw_once_is_open(struct rw_once *o)
{
	return __atomic_load_n(&o->opened, __ATOMIC_ACQUIRE);
}
static inline void rw_once_reset(struct rw_once *o)
{
	pthread_mutex_init(&o->lock, NULL);
	o->opened = o->err = 0;
}
/* Between two polls of a wait: spin for 100 us, then sleep 20 us (200 us
 * after 10 ms).  *since_us: 0 at the first call. */
void rw_backoff(long long *since_us);

static inline void rw_progress(void)
{
	rw_be->progress();
}
static inline int rw_send(rw_addr_t to, const void *msg, size_t len, bool wait)
{
	return rw_be->send(to, msg, len, wait);
}
static inline int rw_rma(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
			 uint64_t raddr, uint64_t key)
{
	return rw_be->rma(write, local, lmr, len, peer, raddr, key);
}
static inline int rw_rma_spin(bool write, void *local, struct rw_mr *lmr, size_t len,
			      rw_addr_t peer, uint64_t raddr, uint64_t key)
{
	return (rw_be->rma_spin ? rw_be->rma_spin : rw_be->rma)(write, local, lmr, len, peer, raddr,
								 key);
}
static inline int rw_mr_reg(void *buf, size_t len, unsigned access, struct rw_mr **mr)
{
	return rw_be->mr_reg(buf, len, access, mr);
}
static inline void rw_mr_dereg(struct rw_mr *mr)
{
	rw_be->mr_dereg(mr);
}
static inline uint64_t rw_mr_key(struct rw_mr *mr)
{
	return rw_be->mr_key(mr);
}
static inline uint64_t rw_mr_raddr(struct rw_mr *mr, void *buf)
{
	return rw_be->mr_raddr(mr, buf);
}
static inline int rw_peer_insert(const void *addr, size_t len, rw_addr_t *peer)
{
	return rw_be->peer_insert(addr, len, peer);
}

/* ---- the resolver: (node id, pid) -> endpoint address ----
 * resolve.c picks the back end from XPMEM_RESOLVER: dir:PATH (resolver.c)
 * or pmix (resolver_pmix.c); the rr_* calls go to it. */
struct rr_entry {
	char addr[RF_ADDR_MAX];
	size_t addrlen;
	char prov[64];
	uid_t uid; /* the uid/gid the resolver attests for the entry's process */
	gid_t gid;
};
/* Describe the resolver for xpmem-info; 0 or -errno. */
int rr_describe(char *buf, size_t len);
/* Assign this node's id through the resolver if none is set: 0 or -errno. */
int rr_assign_node(void);
int rr_publish(unsigned node, pid_t pid, const void *addr, size_t len, const char *prov);
/* -ENOENT: no such process published. */
int rr_lookup(unsigned node, pid_t pid, struct rr_entry *e);
void rr_unpublish(void);
void rr_fork_child(void);

/* A back end: the calls above (NULL fork_child: nothing to do). */
struct rr_ops {
	const char *name;
	int (*describe)(char *buf, size_t len);
	int (*assign_node)(void);
	int (*publish)(unsigned node, pid_t pid, const void *addr, size_t len, const char *prov);
	int (*lookup)(unsigned node, pid_t pid, struct rr_entry *e);
	void (*unpublish)(void);
	void (*fork_child)(void);
};
extern const struct rr_ops rr_dir_ops;  /* resolver.c */
extern const struct rr_ops rr_pmix_ops; /* resolver_pmix.c */

/* ---- control messages ---- */
#define RM_MAGIC 0x55584d31u /* "UXM1": the protocol's version too */
enum rm_type {
	RM_GET = 1,   /* importer -> exporter: u.get; status = XPMEM_RDONLY/RDWR */
	RM_GET_REPLY, /* u.got */
	RM_REG,       /* u.reg: the chunk holding offset, registered */
	RM_REG_REPLY, /* u.chunk */
	RM_PING,      /* importer -> exporter: still there? */
	RM_PONG,
	RM_REVOKE,    /* exporter -> importer: u.revoke; status = the reason */
	RM_INVALIDATE, /* exporter -> importer: u.inval changed; drop it, then ack */
	RM_INVAL_ACK,  /* importer -> exporter: u.inval.grant done (req echoed) */
};
/* At most 64 bytes: what tcp;ofi_rxm of libfabric 1.17 injects. */
struct rm_msg {
	uint32_t magic;
	uint16_t type;
	uint16_t from_node; /* the sender (resolver key of its address) */
	uint32_t from_pid;
	int32_t status;     /* replies: 0 or -errno; see the types */
	uint64_t req;       /* request id, echoed in the reply */
	union {
		struct { int64_t segid; } get;
		struct { uint64_t grant, length, generation; } got;
		struct { uint64_t grant, generation, offset; } reg;
		struct { uint64_t offset, length, key, raddr; } chunk;
		struct { int64_t segid; uint64_t grant; } revoke;
		struct { int64_t segid; uint64_t grant, offset, length; } inval;
	} u;
};
_Static_assert(sizeof(struct rm_msg) <= 64, "control messages are injected");
void rm_init(struct rm_msg *m, int type, uint64_t req);
/* Handle a received message (progress thread). */
void rx_dispatch(const struct rm_msg *m, size_t len);

/* ---- exporter.c ---- */
int rx_export(xpmem_segid_t segid, uintptr_t vaddr, size_t size, uint64_t mode);
void rx_unexport(xpmem_segid_t segid);
void rx_handle(const struct rm_msg *m);
void rx_fork_child(void);

/* ---- importer.c ---- */
struct ri_peer {
	struct ri_peer *next;
	unsigned node;
	pid_t pid;
	rw_addr_t fa;
	int napids;           /* atomic */
	long long last_heard; /* atomic, ms */
	long long last_ping;
	int dead;             /* atomic */
	/* INVALIDATEs applied lately (the fault thread's only): one the
	 * exporter sends again because our ack was lost is acked, not redone */
	struct { uint64_t req, grant; } inval_seen[8];
	unsigned inval_next;
};

struct ri_chunk {
	struct ri_chunk *next;
	uint64_t off, len, key, raddr;
};

struct ri_att;
struct ri_apid {
	xpmem_apid_t id;
	xpmem_segid_t segid;
	int flags;
	uint64_t grant, length, generation;
	struct ri_peer *peer;
	int refs; /* atomic */
	pthread_mutex_t lock;
	bool revoked;  /* atomic (read without ap->lock) */
	bool released; /* under ap->lock: listed until its last detach */
	struct ri_chunk *chunks;
	uint64_t chunks_gen; /* under ap->lock: bumped when chunks are dropped */
	struct ri_att *atts;
};

struct ri_att {
	struct ri_att *next; /* in ap->atts */
	struct ri_apid *ap;
	char *addr;
	size_t size;
	uint64_t offset; /* in the segment */
	char *twin;      /* read-write: the pages as last fetched or written back */
	struct rw_mr *mr, *twin_mr;
	int refs; /* atomic */
	pthread_mutex_t lock;
	bool gone;
	/* lazy attachments (fault.c): filled on fault; fetched pages marked */
	int uffd;           /* -1: not registered (filled eagerly, never invalidated) */
	uint64_t lazy_id;   /* fault.c's key */
	unsigned char *fetched; /* bitmap of pages holding the exporter's data */
	unsigned char *holes;   /* bitmap of pages the SIGBUS file is mapped over */
	size_t ra;          /* read-ahead, grows on sequential faults */
	uintptr_t next_fault;
};

int ri_get(xpmem_segid_t segid, int flags, xpmem_apid_t *apid);
int ri_release(xpmem_apid_t apid);
int ri_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr);
int ri_detach(uintptr_t vaddr);
int ri_flush(uintptr_t vaddr, size_t size);
void ri_handle(const struct rm_msg *m);
/* Progress thread, every pass: pings, silent exporters -> EXITED. */
void ri_tick(void);
void ri_fork_child(void);
/* RMA between local memory and the apid's segment at offset off. */
int ri_rma_range(struct ri_apid *ap, bool write, char *local, struct rw_mr *lmr, uint64_t off,
		 size_t len);
int ri_rma_range_spin(struct ri_apid *ap, bool write, char *local, struct rw_mr *lmr, uint64_t off,
		      size_t len);
/* The apid's record, held (NULL: none); ri_apid_put drops it. */
struct ri_apid *ri_apid_hold(xpmem_apid_t apid);
void ri_apid_put(struct ri_apid *ap);
void ri_att_hold(void *att);
void ri_att_put(struct ri_att *a);
/* Map the SIGBUS file over every attachment of ap and emit the event. */
void ri_revoke_apid(struct ri_apid *ap, int reason);
/* INVALIDATE from an exporter (fault thread): drop the pages, events, ack. */
void ri_invalidate(const struct rm_msg *m);
/* Forget the cached registrations of ap overlapping [off, off+len). */
void ri_chunks_drop(struct ri_apid *ap, uint64_t off, uint64_t len);
/* The zero-length memfd mapped over revoked memory and holes. */
int ri_sigbus_fd(void);

/* ---- fault.c: lazy attachments (userfaultfd) ---- */
/* Attachments of at least this size are filled on fault when userfaultfd
 * works (XPMEM_RDMA_EAGER_MAX, default 256 KiB; XPMEM_USERFAULTFD=0: never). */
size_t rl_eager_max(void);
/* xpmem-bench (bench.h): attachments of at least bytes are lazy (0: the
 * variable again). */
void rl_lazy_from(size_t bytes);
/* Register a's range (mapped; pages not marked fetched are dropped, then fault): 0, or
 * -errno (then the caller fills eagerly). */
int rl_register(struct ri_att *a);
/* Drop pages [from, to) of a (page indexes; caller holds a->lock): the
 * next touch fetches them again (registered with userfaultfd first if
 * need be), or, without userfaultfd, raises SIGBUS. */
void rl_drop(struct ri_att *a, size_t from, size_t to);
/* Run ri_invalidate(m) on the fault thread (never on the progress thread:
 * it takes att->lock, whose holder may wait for a reply). */
void rl_queue_invalidate(const struct rm_msg *m);
/* Stop serving a (caller holds a->lock; the range is unmapped next). */
void rl_unregister(struct ri_att *a);
/* Is page i of a fetched (or a eager)? */
static inline bool rl_fetched(const struct ri_att *a, size_t i)
{
	return a->fetched[i / 8] >> (i % 8) & 1;
}
static inline void rl_mark(unsigned char *bits, size_t i, bool on)
{
	if (on)
		bits[i / 8] |= (unsigned char)(1u << (i % 8));
	else
		bits[i / 8] &= (unsigned char)~(1u << (i % 8));
}
/* Wake threads waiting for pages of a (after the SIGBUS file replaced it). */
void rl_wake_all(struct ri_att *a);
void rl_fork_child(void);

#endif
