/* verbs.c - the libibverbs back end (XPMEM_RDMA_BACKEND=verbs): RC queue
 * pairs set up through librdmacm, one device port per process.
 *
 * Device and port: XPMEM_VERBS_DEVICE (a name as ibv_devices prints it)
 * and XPMEM_VERBS_PORT, default the first active port of the first device
 * that has one.  rdma_cm needs an IP address on that port (RoCE: the
 * netdev's; InfiniBand: IPoIB's), taken from the port's netdev, else from
 * an IPv4-mapped GID, or XPMEM_VERBS_ADDR.  The process listens on that
 * address (port chosen by the system); the address blob the resolver
 * publishes is that sockaddr.
 *
 * Connections are made lazily, one per peer in each direction: a process
 * sends and reads only on the queue pair it connected itself (so replies
 * go to the address the resolver attests, never to whoever connected);
 * accepted queue pairs only receive.  Control messages are inline sends
 * into receive buffers posted on every queue pair (receiver not ready:
 * RNR retries, unbounded); data moves by RDMA read and write on the
 * importer's queue pair.  One completion queue (with a channel the
 * progress thread blocks on) serves every queue pair; every wait drives
 * progress: the queue and, when nobody else does, rdma_cm's events.
 *
 * Memory: exporter chunks are registered with IBV_ACCESS_ON_DEMAND when
 * the device offers on-demand paging for RC reads and writes; otherwise
 * pinned (with local write, so no page is pinned copy-on-write), dropped
 * as the libfabric back end drops them. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include "rdma.h"

#define SQ_DEPTH 64
#define RQ_DEPTH 32
#define MSG_MAX 256
#define RMA_WINDOW 16
#define RMA_PIECE (1024 * 1024)
#define CONN_TIMEOUT_MS 2000 /* rdma_resolve_addr/route */
#define CONN_RETRY_MS 200 /* a failed connection is not tried again sooner */

enum { OP_POSTED = 0, OP_DONE = 1, OP_ABANDONED = 2 };
enum vop_kind { VOP_RMA = 1, VOP_SEND, VOP_RECV };
enum conn_state { C_RESOLVING = 0, C_CONNECTING, C_UP, C_FAILED };

struct vconn;
/* A work request's wr_id. */
struct vop {
	int kind;
	int done; /* atomic; VOP_RMA */
	int err;
	size_t len;
	struct vconn *c;
	struct vop *next; /* receive queue */
	char buf[MSG_MAX]; /* VOP_RECV */
};

struct vconn {
	struct rdma_cm_id *id;
	bool active; /* we connected: we send and read on it */
	int state;   /* atomic: enum conn_state */
	int err;     /* C_FAILED: -errno */
	int sq_used; /* atomic: posted, not completed */
	bool was_up;      /* under cm_lock: established once (handed to senders) */
	bool cq_reserved; /* its share of the completion queue */
	long long started; /* uxp_now_ms() when connecting began */
	pthread_mutex_t post_lock;
	struct vop send_op; /* wr_id of every send */
	struct vop *recv;   /* RQ_DEPTH */
	struct ibv_mr *recv_mr;
};

struct vpeer {
	char addr[RF_ADDR_MAX];
	size_t len;
	struct vconn *conn; /* under peers_lock; a failed one that was never up is
			     * torn down (queue pair, id), the struct leaked */
};

static struct {
	struct ibv_context *ctx; /* the listener's (rdma_cm bound it to the device) */
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	int cqe;   /* the queue's size */
	int cq_used; /* what the queue pairs may put in it */
	struct rdma_event_channel *ec;
	struct rdma_cm_id *listen;
	char dev[IBV_SYSFS_NAME_MAX];
	int port;
	char ip[INET6_ADDRSTRLEN];
	bool odp;
	int rd_atom, init_rd_atom;
	size_t max_msg;
	struct sockaddr_storage sa;
	socklen_t salen;
} vb;

static struct rw_once once_open = RW_ONCE_INIT;
static pthread_mutex_t cm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cq_lock = PTHREAD_MUTEX_INITIALIZER; /* cq_used, resizing */
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vpeer *peers;
static size_t npeers, peers_cap;
static pthread_mutex_t rxq_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vop *rxq_head, **rxq_tail = &rxq_head;
static int stopping, parked; /* atomic */

/* ---- the device --------------------------------------------------------- */

/* The device and port to use: XPMEM_VERBS_DEVICE/PORT or the first active
 * port.  0 or -errno with why. */
static int pick_port(char *dev, size_t devlen, int *port, char *why, size_t whylen)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	const char *want = uxp_env("XPMEM_VERBS_DEVICE");
	long want_port = uxp_env_long("XPMEM_VERBS_PORT", 0);
	if (!list || n == 0) {
		snprintf(why, whylen, "libibverbs finds no RDMA device (ibv_get_device_list: %s)",
			 !list ? strerror(errno) : "none in /sys/class/infiniband");
		if (list)
			ibv_free_device_list(list);
		return -ENODEV;
	}
	int ret = -ENODEV;
	if (want && *want)
		snprintf(why, whylen, "XPMEM_VERBS_DEVICE=%s: no such device", want);
	else
		snprintf(why, whylen, "no active port on any of %d RDMA devices", n);
	for (int i = 0; i < n && ret; i++) {
		const char *name = ibv_get_device_name(list[i]);
		if (want && *want && strcmp(name, want))
			continue;
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr da;
		if (!ctx || ibv_query_device(ctx, &da)) {
			snprintf(why, whylen, "%s: cannot open it: %s", name, strerror(errno));
			if (ctx)
				ibv_close_device(ctx);
			continue;
		}
		for (int p = 1; p <= da.phys_port_cnt && ret; p++) {
			struct ibv_port_attr pa;
			if (want_port > 0 && p != want_port)
				continue;
			if (ibv_query_port(ctx, (uint8_t)p, &pa))
				continue;
			if (pa.state != IBV_PORT_ACTIVE) {
				snprintf(why, whylen, "%s port %d is %s", name, p,
					 ibv_port_state_str(pa.state));
				continue;
			}
			snprintf(dev, devlen, "%s", name);
			*port = p;
			ret = 0;
		}
		if (ret && want_port > 0 && want_port > da.phys_port_cnt)
			snprintf(why, whylen, "XPMEM_VERBS_PORT=%ld: %s has %d ports", want_port, name,
				 da.phys_port_cnt);
		ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	return ret;
}

/* An address of netdev ifname (IPv4 first). */
static int netdev_ip(const char *ifname, struct sockaddr_storage *sa)
{
	struct ifaddrs *ifa, *i;
	int found = 0;
	if (getifaddrs(&ifa))
		return -errno;
	for (int fam = AF_INET; fam && !found; fam = fam == AF_INET ? AF_INET6 : 0)
		for (i = ifa; i && !found; i = i->ifa_next)
			if (i->ifa_addr && i->ifa_addr->sa_family == fam && !strcmp(i->ifa_name, ifname)) {
				memcpy(sa, i->ifa_addr, fam == AF_INET ? sizeof(struct sockaddr_in)
								     : sizeof(struct sockaddr_in6));
				found = 1;
			}
	freeifaddrs(ifa);
	return found ? 0 : -EADDRNOTAVAIL;
}

/* The IP address rdma_cm reaches dev:port at. */
static int port_ip(const char *dev, int port, struct sockaddr_storage *sa, char *why, size_t whylen)
{
	memset(sa, 0, sizeof(*sa));
	const char *env = uxp_env("XPMEM_VERBS_ADDR");
	if (env && *env) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		if (inet_pton(AF_INET, env, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			return 0;
		}
		if (inet_pton(AF_INET6, env, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			return 0;
		}
		snprintf(why, whylen, "XPMEM_VERBS_ADDR=%s is not an IP address", env);
		return -EINVAL;
	}
	/* the port's netdev (RoCE, IPoIB) */
	for (int g = 0; g < 4; g++) {
		char path[256], ifname[IF_NAMESIZE + 2] = "";
		snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/%d/gid_attrs/ndevs/%d", dev,
			 port, g);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(ifname, sizeof(ifname), f))
			ifname[strcspn(ifname, "\n")] = '\0';
		fclose(f);
		if (*ifname && netdev_ip(ifname, sa) == 0)
			return 0;
	}
	/* an IPv4-mapped GID (RoCE v2) */
	struct ibv_device **list = ibv_get_device_list(NULL);
	for (int i = 0; list && list[i]; i++) {
		if (strcmp(ibv_get_device_name(list[i]), dev))
			continue;
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_port_attr pa;
		for (int g = 0; ctx && !ibv_query_port(ctx, (uint8_t)port, &pa) && g < pa.gid_tbl_len &&
				g < 16; g++) {
			union ibv_gid gid;
			static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
			if (ibv_query_gid(ctx, (uint8_t)port, g, &gid) == 0 &&
			    !memcmp(gid.raw, v4mapped, 12)) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
				s4->sin_family = AF_INET;
				memcpy(&s4->sin_addr, gid.raw + 12, 4);
				break;
			}
		}
		if (ctx)
			ibv_close_device(ctx);
	}
	if (list)
		ibv_free_device_list(list);
	if (sa->ss_family)
		return 0;
	snprintf(why, whylen, "%s port %d has no IP address (rdma_cm needs one: RoCE or IPoIB; "
		 "XPMEM_VERBS_ADDR)", dev, port);
	return -EADDRNOTAVAIL;
}

static socklen_t sa_len(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void sa_text(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	const void *a = sa->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
						 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (!inet_ntop(sa->ss_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static int vb_describe(char *buf, size_t len, char *why, size_t whylen)
{
	char dev[IBV_SYSFS_NAME_MAX], ip[INET6_ADDRSTRLEN];
	int port;
	struct sockaddr_storage sa;
	int ret = pick_port(dev, sizeof(dev), &port, why, whylen);
	if (ret == 0)
		ret = port_ip(dev, port, &sa, why, whylen);
	if (ret < 0)
		return ret;
	sa_text(&sa, ip, sizeof(ip));
	snprintf(buf, len, "libibverbs, provider ibverbs, device %s port %d, address %s", dev, port, ip);
	return 0;
}

/* ---- completions ---------------------------------------------------------- */

static void conn_fail(struct vconn *c, int err)
{
	c->err = err;
	__atomic_store_n(&c->state, C_FAILED, __ATOMIC_RELEASE);
}

/* A completion error: the queue pair is in the error state and whatever
 * goes on it is lost, but the peer does not know.  Its side may retry an
 * RDMA read for seconds (a Soft-RoCE responder that went to error after a
 * read through a closed key answers nothing more) with every later
 * message queued behind it.  Disconnecting tells it at once: it gets
 * DISCONNECTED, its queue pair is flushed and it connects anew. */
static void conn_broken(struct vconn *c, int err)
{
	c->err = err;
	int was = __atomic_exchange_n(&c->state, C_FAILED, __ATOMIC_ACQ_REL);
	if (was == C_UP && c->id)
		rdma_disconnect(c->id);
}

static void op_complete(struct vop *op, int err, size_t len)
{
	if (op->kind == VOP_RECV) {
		if (err) /* flushed: the queue pair is gone */
			return;
		op->len = len;
		op->next = NULL;
		pthread_mutex_lock(&rxq_lock);
		*rxq_tail = op;
		rxq_tail = &op->next;
		pthread_mutex_unlock(&rxq_lock);
		return;
	}
	if (op->kind == VOP_SEND)
		return;
	op->err = err;
	int expect = OP_POSTED;
	if (!__atomic_compare_exchange_n(&op->done, &expect, OP_DONE, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		free(op); /* its waiter gave up */
}

static void poll_cq(void)
{
	struct ibv_wc wc[16];
	int n = ibv_poll_cq(vb.cq, 16, wc);
	for (int i = 0; i < n; i++) {
		struct vop *op = (struct vop *)(uintptr_t)wc[i].wr_id;
		if (!op)
			continue;
		int err = 0;
		if (wc[i].status != IBV_WC_SUCCESS) {
			if (wc[i].status != IBV_WC_WR_FLUSH_ERR)
				uxp_debug("rdma: verbs: completion error: %s (opcode %d)",
					  ibv_wc_status_str(wc[i].status), (int)wc[i].opcode);
			err = -EIO;
			if (op->c)
				conn_broken(op->c, -EIO);
		}
		if (op->kind != VOP_RECV && op->c)
			__atomic_sub_fetch(&op->c->sq_used, 1, __ATOMIC_RELEASE);
		op_complete(op, err, wc[i].byte_len);
	}
}

/* ---- connections ----------------------------------------------------------- */

static int cq_reserve(int n)
{
	int ret = 0;
	pthread_mutex_lock(&cq_lock);
	if (vb.cq_used + n > vb.cqe) {
		int want = vb.cqe * 2 > vb.cq_used + n ? vb.cqe * 2 : vb.cq_used + n;
		if (ibv_resize_cq(vb.cq, want) == 0)
			vb.cqe = vb.cq->cqe;
		if (vb.cq_used + n > vb.cqe)
			ret = uxp_fail(ENOSPC, "rdma: verbs: the completion queue (%d entries) is full: "
				       "too many connections", vb.cqe);
	}
	if (ret == 0)
		vb.cq_used += n;
	pthread_mutex_unlock(&cq_lock);
	return ret;
}

static int post_recv(struct vconn *c, struct vop *op)
{
	struct ibv_sge sge = { (uintptr_t)op->buf, MSG_MAX, c->recv_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = (uintptr_t)op, .sg_list = &sge, .num_sge = 1 }, *bad;
	int ret = ibv_post_recv(c->id->qp, &wr, &bad);
	return ret ? uxp_fail(EIO, "rdma: verbs: ibv_post_recv: %s", strerror(ret)) : 0;
}

/* The queue pair of c->id and its receive buffers. */
static int conn_qp(struct vconn *c)
{
	int ret = cq_reserve(SQ_DEPTH + RQ_DEPTH);
	if (ret < 0)
		return ret;
	c->cq_reserved = true;
	struct ibv_qp_init_attr qa = {
		.send_cq = vb.cq, .recv_cq = vb.cq, .qp_type = IBV_QPT_RC, .sq_sig_all = 1,
		.cap = { .max_send_wr = SQ_DEPTH, .max_recv_wr = RQ_DEPTH, .max_send_sge = 1,
			 .max_recv_sge = 1, .max_inline_data = sizeof(struct rm_msg) },
	};
	if (rdma_create_qp(c->id, vb.pd, &qa))
		return uxp_fail(ENOMEM, "rdma: verbs: rdma_create_qp: %s", strerror(errno));
	c->recv = calloc(RQ_DEPTH, sizeof(*c->recv));
	if (!c->recv)
		return -ENOMEM;
	c->recv_mr = ibv_reg_mr(vb.pd, c->recv, RQ_DEPTH * sizeof(*c->recv), IBV_ACCESS_LOCAL_WRITE);
	if (!c->recv_mr)
		return uxp_fail(ENOMEM, "rdma: verbs: ibv_reg_mr of receive buffers: %s", strerror(errno));
	for (int i = 0; i < RQ_DEPTH && ret == 0; i++) {
		c->recv[i] = (struct vop){ .kind = VOP_RECV, .c = c };
		ret = post_recv(c, &c->recv[i]);
	}
	return ret;
}

static struct rdma_conn_param conn_param(void)
{
	return (struct rdma_conn_param){ .responder_resources = (uint8_t)vb.rd_atom,
					 .initiator_depth = (uint8_t)vb.init_rd_atom,
					 .retry_count = 7, .rnr_retry_count = 7 };
}

static struct vconn *conn_new(bool active)
{
	struct vconn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->active = active;
	pthread_mutex_init(&c->post_lock, NULL);
	c->send_op = (struct vop){ .kind = VOP_SEND, .c = c };
	return c;
}

/* One rdma_cm event (caller holds cm_lock). */
static void cm_event(struct rdma_cm_event *ev)
{
	struct vconn *c = ev->id->context;
	int ret = 0;
	switch (ev->event) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (rdma_resolve_route(ev->id, CONN_TIMEOUT_MS))
			conn_fail(c, uxp_fail(EHOSTUNREACH, "rdma: verbs: rdma_resolve_route: %s",
					      strerror(errno)));
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED: {
		struct rdma_conn_param p = conn_param();
		ret = conn_qp(c);
		if (ret == 0 && rdma_connect(ev->id, &p))
			ret = uxp_fail(ECONNREFUSED, "rdma: verbs: rdma_connect: %s", strerror(errno));
		if (ret < 0)
			conn_fail(c, ret);
		else
			__atomic_store_n(&c->state, C_CONNECTING, __ATOMIC_RELEASE);
		break;
	}
	case RDMA_CM_EVENT_CONNECT_REQUEST: { /* a peer connects: it sends to us on it */
		struct vconn *n = conn_new(false);
		struct rdma_conn_param p = conn_param();
		if (!n) {
			rdma_reject(ev->id, NULL, 0);
			break;
		}
		n->id = ev->id;
		ev->id->context = n;
		ret = conn_qp(n);
		if (ret == 0 && rdma_accept(ev->id, &p))
			ret = uxp_fail(ECONNREFUSED, "rdma: verbs: rdma_accept: %s", strerror(errno));
		if (ret < 0) {
			uxp_debug("rdma: verbs: a connection request refused: %s", strerror(-ret));
			conn_fail(n, ret); /* torn down after this event */
			rdma_reject(ev->id, NULL, 0);
		} else {
			__atomic_store_n(&n->state, C_CONNECTING, __ATOMIC_RELEASE);
		}
		break;
	}
	case RDMA_CM_EVENT_ESTABLISHED:
		c->was_up = true;
		__atomic_store_n(&c->state, C_UP, __ATOMIC_RELEASE);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_REJECTED:
		if (c)
			conn_fail(c, uxp_fail(EHOSTUNREACH, "rdma: verbs: connection: %s (status %d)",
					      rdma_event_str(ev->event), ev->status));
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		if (c) {
			conn_fail(c, -ECONNRESET);
			rdma_disconnect(ev->id);
		}
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		uxp_warn("rdma: verbs: device %s removed", vb.dev);
		if (c)
			conn_fail(c, -ENODEV);
		break;
	default:
		break;
	}
}

/* A connection that failed before it was ever established (refused,
 * unreachable: a dead peer) gives back its queue pair, receive buffers'
 * registration, id and completion queue share at once (caller holds
 * cm_lock, its events acknowledged).  Otherwise every retry to a dead peer
 * leaked them: the queue pair's buffers are mmapped, so they filled holes
 * the application had just unmapped in memory it exports (importers then
 * read those buffers where they must get SIGBUS), then the completion
 * queue.  Never handed to a sender (only an up connection is), so no one
 * posts on it; the struct and its receive ops stay (a flushed completion
 * may still name them). */
static void conn_teardown(struct vconn *c)
{
	if (!c || !c->id || c->was_up || __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != C_FAILED)
		return;
	if (c->id->qp)
		rdma_destroy_qp(c->id);
	if (c->recv_mr)
		ibv_dereg_mr(c->recv_mr);
	c->recv_mr = NULL;
	rdma_destroy_id(c->id);
	c->id = NULL;
	if (c->cq_reserved) {
		pthread_mutex_lock(&cq_lock);
		vb.cq_used -= SQ_DEPTH + RQ_DEPTH;
		pthread_mutex_unlock(&cq_lock);
		c->cq_reserved = false;
	}
}

/* Handle pending rdma_cm events, unless another thread does. */
static void cm_poll(void)
{
	if (pthread_mutex_trylock(&cm_lock))
		return;
	struct rdma_cm_event *ev;
	while (rdma_get_cm_event(vb.ec, &ev) == 0) {
		cm_event(ev);
		struct vconn *c = ev->id->context;
		rdma_ack_cm_event(ev);
		conn_teardown(c);
	}
	pthread_mutex_unlock(&cm_lock);
}

static void vb_progress(void)
{
	poll_cq();
	cm_poll();
}

/* Start connecting to peer p (caller holds peers_lock). */
static int conn_start(struct vpeer *p)
{
	struct vconn *c = conn_new(true);
	if (!c)
		return -ENOMEM;
	if (rdma_create_id(vb.ec, &c->id, c, RDMA_PS_TCP)) {
		int e = errno;
		free(c);
		return uxp_fail(e, "rdma: verbs: rdma_create_id: %s", strerror(e));
	}
	struct sockaddr_storage src = vb.sa, dst;
	((struct sockaddr_in *)&src)->sin_port = 0; /* same offset in sockaddr_in6 */
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, p->addr, p->len < sizeof(dst) ? p->len : sizeof(dst));
	if (rdma_resolve_addr(c->id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
			      CONN_TIMEOUT_MS)) {
		int e = errno;
		rdma_destroy_id(c->id);
		free(c);
		return uxp_fail(EHOSTUNREACH, "rdma: verbs: rdma_resolve_addr: %s", strerror(e));
	}
	c->started = uxp_now_ms();
	p->conn = c;
	return 0;
}

/* The connection to peer (connected now if need be; wait: until it is up
 * or the deadline, else -EAGAIN while it comes up). */
static int conn_get(rw_addr_t peer, bool wait, long long deadline, struct vconn **out)
{
	bool restarted = false, hold = false;
	for (long long since = 0;;) {
		pthread_mutex_lock(&peers_lock);
		int ret = 0;
		struct vpeer *p = peer >= 1 && peer <= npeers ? &peers[peer - 1] : NULL;
		struct vconn *c = NULL;
		hold = false;
		if (!p) {
			ret = uxp_fail(EINVAL, "rdma: verbs: no peer %llu", (unsigned long long)peer);
		} else if (!restarted && (!p->conn || __atomic_load_n(&p->conn->state,
								      __ATOMIC_ACQUIRE) == C_FAILED)) {
			/* again: a failed connection is retried once per call, and not
			 * within CONN_RETRY_MS of the last try (a dead peer refuses at
			 * once: each try costs a queue pair) */
			if (!p->conn || uxp_now_ms() - p->conn->started >= CONN_RETRY_MS) {
				ret = conn_start(p);
				restarted = true;
			} else {
				hold = wait && !(since && uxp_now_ms() > deadline);
			}
		}
		if (p)
			c = p->conn;
		pthread_mutex_unlock(&peers_lock);
		if (ret < 0)
			return ret;
		if (hold) {
			vb_progress();
			rw_backoff(&since);
			continue;
		}
		int st = c ? __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) : C_FAILED;
		if (st == C_UP) {
			*out = c;
			return 0;
		}
		if (st == C_FAILED)
			return c && c->err ? c->err : -EHOSTUNREACH;
		if (!wait)
			return -EAGAIN;
		if (since && uxp_now_ms() > deadline)
			return uxp_fail(ETIMEDOUT, "rdma: verbs: connecting to a peer: no answer within "
					"%ld ms", rdma_timeout_ms());
		vb_progress();
		rw_backoff(&since);
	}
}

/* ---- posting ----------------------------------------------------------- */

/* Post wr on c when its send queue has room: 0 or -errno. */
static int post_send(struct vconn *c, struct ibv_send_wr *wr, long long deadline, bool wait)
{
	for (long long since = 0;;) {
		if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == C_FAILED)
			return c->err ? c->err : -EIO;
		pthread_mutex_lock(&c->post_lock);
		int ret = -EAGAIN;
		if (__atomic_load_n(&c->sq_used, __ATOMIC_ACQUIRE) < SQ_DEPTH) {
			struct ibv_send_wr *bad;
			__atomic_add_fetch(&c->sq_used, 1, __ATOMIC_RELAXED);
			ret = ibv_post_send(c->id->qp, wr, &bad);
			if (ret) {
				__atomic_sub_fetch(&c->sq_used, 1, __ATOMIC_RELAXED);
				ret = uxp_fail(EIO, "rdma: verbs: ibv_post_send: %s", strerror(ret));
			}
		}
		pthread_mutex_unlock(&c->post_lock);
		if (ret != -EAGAIN || !wait)
			return ret;
		if (since && uxp_now_ms() > deadline)
			return uxp_fail(ETIMEDOUT, "rdma: verbs: the send queue stayed full for %ld ms",
					rdma_timeout_ms());
		vb_progress();
		rw_backoff(&since);
	}
}

static int vb_send(rw_addr_t to, const void *msg, size_t len, bool wait)
{
	long long deadline = uxp_now_ms() + rdma_timeout_ms();
	struct vconn *c;
	int ret = conn_get(to, wait, deadline, &c);
	if (ret < 0)
		return ret;
	struct ibv_sge sge = { (uintptr_t)msg, (uint32_t)len, 0 };
	struct ibv_send_wr wr = { .wr_id = (uintptr_t)&c->send_op, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_INLINE };
	return post_send(c, &wr, deadline, wait);
}

static int op_wait(struct vop *op, long long deadline)
{
	for (long long since = 0;;) {
		if (__atomic_load_n(&op->done, __ATOMIC_ACQUIRE) == OP_DONE) {
			int err = op->err;
			free(op);
			return err;
		}
		poll_cq();
		if (since && uxp_now_ms() > deadline) {
			int expect = OP_POSTED;
			if (__atomic_compare_exchange_n(&op->done, &expect, OP_ABANDONED, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return -ETIMEDOUT;
			continue;
		}
		rw_backoff(&since);
	}
}

static int vb_rma(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
		  uint64_t raddr, uint64_t key)
{
	struct ibv_mr *mr = (struct ibv_mr *)lmr;
	long long deadline = uxp_now_ms() + rdma_timeout_ms();
	struct vconn *c;
	int err = conn_get(peer, true, deadline, &c);
	if (err < 0)
		return err;
	if (!mr)
		return uxp_fail(EINVAL, "rdma: verbs: RMA from unregistered memory");
	struct vop *win[RMA_WINDOW];
	unsigned head = 0, n = 0;
	size_t piece_max = vb.max_msg < RMA_PIECE ? vb.max_msg : RMA_PIECE;
	for (size_t off = 0; off < len && !err;) {
		if (n == RMA_WINDOW) {
			int e = op_wait(win[head], deadline);
			err = err ? err : e;
			head = (head + 1) % RMA_WINDOW;
			n--;
			continue;
		}
		size_t piece = len - off < piece_max ? len - off : piece_max;
		struct vop *op = calloc(1, sizeof(*op));
		if (!op) {
			err = -ENOMEM;
			break;
		}
		op->kind = VOP_RMA;
		op->c = c;
		struct ibv_sge sge = { (uintptr_t)local + off, (uint32_t)piece, mr->lkey };
		struct ibv_send_wr wr = { .wr_id = (uintptr_t)op, .sg_list = &sge, .num_sge = 1,
					  .opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ };
		wr.wr.rdma.remote_addr = raddr + off;
		wr.wr.rdma.rkey = (uint32_t)key;
		err = post_send(c, &wr, deadline, true);
		if (err) {
			free(op);
			break;
		}
		win[(head + n++) % RMA_WINDOW] = op;
		off += piece;
	}
	for (; n; n--, head = (head + 1) % RMA_WINDOW) {
		int e = op_wait(win[head], deadline);
		err = err ? err : e;
	}
	if (err && err != -ETIMEDOUT && err != -ENOMEM)
		err = uxp_fail(EIO, "rdma: verbs: RDMA %s of %zu bytes at %#llx failed: %s",
			       write ? "write" : "read", len, (unsigned long long)raddr, strerror(-err));
	return err;
}

/* ---- memory -------------------------------------------------------------- */

static int vb_mr_reg(void *buf, size_t len, unsigned access, struct rw_mr **out)
{
	int a = (access & RW_LOCAL_READ ? IBV_ACCESS_LOCAL_WRITE : 0) |
		(access & RW_REMOTE_READ ? IBV_ACCESS_REMOTE_READ : 0) |
		(access & RW_REMOTE_WRITE ? IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE : 0);
	bool remote = access & (RW_REMOTE_READ | RW_REMOTE_WRITE);
	struct ibv_mr *mr = NULL;
	if (remote && vb.odp)
		mr = ibv_reg_mr(vb.pd, buf, len, a | IBV_ACCESS_ON_DEMAND);
	/* pinned: with local write whatever the access, so that the pages
	 * pinned are the ones later stores land in (never a shared zero page
	 * or a page about to be copied on write); memory we may not write
	 * (a read-only exporter mapping): without */
	if (!mr)
		mr = ibv_reg_mr(vb.pd, buf, len, a | IBV_ACCESS_LOCAL_WRITE);
	if (!mr && !(a & IBV_ACCESS_LOCAL_WRITE))
		mr = ibv_reg_mr(vb.pd, buf, len, a);
	if (!mr)
		return uxp_fail(errno == ENOMEM ? ENOMEM : EFAULT, "rdma: verbs: ibv_reg_mr %p+%#zx: %s",
				buf, len, strerror(errno));
	*out = (struct rw_mr *)mr;
	return 0;
}

static void vb_mr_dereg(struct rw_mr *mr)
{
	int ret = ibv_dereg_mr((struct ibv_mr *)mr);
	if (ret)
		uxp_warn("rdma: verbs: ibv_dereg_mr: %s", strerror(ret));
}

static uint64_t vb_mr_key(struct rw_mr *mr)
{
	return ((struct ibv_mr *)mr)->rkey;
}

static uint64_t vb_mr_raddr(struct rw_mr *mr, void *buf)
{
	(void)mr;
	return (uint64_t)(uintptr_t)buf; /* verbs addresses by virtual address */
}

/* ---- peers ----------------------------------------------------------------- */

static int vb_peer_insert(const void *addr, size_t len, rw_addr_t *peer)
{
	const struct sockaddr *sa = addr;
	if (len < sizeof(struct sockaddr_in) || len > RF_ADDR_MAX ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (sa->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)))
		return uxp_fail(EHOSTUNREACH, "rdma: verbs: a peer's address is not an IP address "
				"(%zu bytes)", len);
	int ret = 0;
	pthread_mutex_lock(&peers_lock);
	size_t i = 0;
	while (i < npeers && (peers[i].len != len || memcmp(peers[i].addr, addr, len)))
		i++;
	if (i == npeers) {
		if (npeers == peers_cap) {
			/* grows, never moves under a holder: callers index under the lock */
			size_t cap = peers_cap ? peers_cap * 2 : 16;
			struct vpeer *n = realloc(peers, cap * sizeof(*n));
			if (!n)
				ret = -ENOMEM;
			else {
				peers = n;
				peers_cap = cap;
			}
		}
		if (ret == 0) {
			memset(&peers[i], 0, sizeof(peers[i]));
			memcpy(peers[i].addr, addr, len);
			peers[i].len = len;
			npeers++;
		}
	}
	pthread_mutex_unlock(&peers_lock);
	if (ret == 0)
		*peer = i + 1;
	return ret;
}

/* ---- the progress thread -------------------------------------------------- */

static struct vop *rxq_pop(void)
{
	pthread_mutex_lock(&rxq_lock);
	struct vop *op = rxq_head;
	if (op && !(rxq_head = op->next))
		rxq_tail = &rxq_head;
	pthread_mutex_unlock(&rxq_lock);
	return op;
}

static int drain_rxq(void)
{
	int n = 0;
	for (struct vop *op; (op = rxq_pop()) != NULL; n++) {
		rx_dispatch((const struct rm_msg *)op->buf, op->len);
		if (__atomic_load_n(&op->c->state, __ATOMIC_ACQUIRE) != C_FAILED)
			post_recv(op->c, op);
	}
	return n;
}

/* Block on the completion channel and rdma_cm's descriptor for at most
 * 50 ms (the tick runs even when nothing arrives). */
static void wait_for_work(void)
{
	struct ibv_cq *cq;
	void *ctx;
	while (ibv_get_cq_event(vb.ch, &cq, &ctx) == 0)
		ibv_ack_cq_events(cq, 1);
	ibv_req_notify_cq(vb.cq, 0);
	vb_progress(); /* what came before the notification was armed */
	pthread_mutex_lock(&rxq_lock);
	bool queued = rxq_head != NULL;
	pthread_mutex_unlock(&rxq_lock);
	if (queued)
		return;
	struct pollfd pfd[2] = { { vb.ch->fd, POLLIN, 0 }, { vb.ec->fd, POLLIN, 0 } };
	poll(pfd, 2, 50);
}

static void *progress_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
		drain_rxq();
		ri_tick();
		wait_for_work();
	}
	__atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* At exit: our connections are closed (peers see DISCONNECTED at once
 * rather than a silent timeout) once the progress thread is parked. */
static void vb_close_at_exit(void)
{
	if (!rw_once_is_open(&once_open))
		return;
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 200 && !__atomic_load_n(&parked, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (!__atomic_load_n(&parked, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&peers_lock);
	for (size_t i = 0; i < npeers; i++)
		if (peers[i].conn && peers[i].conn->state == C_UP)
			rdma_disconnect(peers[i].conn->id);
	pthread_mutex_unlock(&peers_lock);
}

/* ---- opening ------------------------------------------------------------ */

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int open_device(void)
{
	char why[256];
	int ret = pick_port(vb.dev, sizeof(vb.dev), &vb.port, why, sizeof(why));
	if (ret == 0)
		ret = port_ip(vb.dev, vb.port, &vb.sa, why, sizeof(why));
	if (ret < 0)
		return uxp_fail(-ret, "rdma: verbs: %s", why);
	sa_text(&vb.sa, vb.ip, sizeof(vb.ip));
	vb.ec = rdma_create_event_channel();
	if (!vb.ec || nonblock(vb.ec->fd) < 0)
		return uxp_fail(ENODEV, "rdma: verbs: rdma_create_event_channel: %s (is rdma_ucm "
				"loaded?)", strerror(errno));
	if (rdma_create_id(vb.ec, &vb.listen, NULL, RDMA_PS_TCP))
		return uxp_fail(ENODEV, "rdma: verbs: rdma_create_id: %s", strerror(errno));
	if (rdma_bind_addr(vb.listen, (struct sockaddr *)&vb.sa) || rdma_listen(vb.listen, 64))
		return uxp_fail(ENODEV, "rdma: verbs: listening on %s (%s port %d): %s", vb.ip, vb.dev,
				vb.port, strerror(errno));
	if (!vb.listen->verbs)
		return uxp_fail(ENODEV, "rdma: verbs: %s is not an address of an RDMA device", vb.ip);
	vb.ctx = vb.listen->verbs;
	const char *bound = ibv_get_device_name(vb.ctx->device);
	if (strcmp(bound, vb.dev))
		uxp_info("rdma: verbs: address %s belongs to device %s, not %s: %s is used", vb.ip,
			 bound, vb.dev, bound);
	struct ibv_device_attr_ex dx;
	memset(&dx, 0, sizeof(dx));
	if (ibv_query_device_ex(vb.ctx, NULL, &dx))
		return uxp_fail(ENODEV, "rdma: verbs: ibv_query_device: %s", strerror(errno));
	uint32_t rc_odp = dx.odp_caps.per_transport_caps.rc_odp_caps;
	vb.odp = (dx.odp_caps.general_caps & IBV_ODP_SUPPORT) && (rc_odp & IBV_ODP_SUPPORT_READ) &&
		 (rc_odp & IBV_ODP_SUPPORT_WRITE);
	vb.rd_atom = dx.orig_attr.max_qp_rd_atom < 16 ? dx.orig_attr.max_qp_rd_atom : 16;
	vb.init_rd_atom = dx.orig_attr.max_qp_init_rd_atom < 16 ? dx.orig_attr.max_qp_init_rd_atom : 16;
	struct ibv_port_attr pa;
	vb.max_msg = ibv_query_port(vb.ctx, (uint8_t)vb.port, &pa) == 0 && pa.max_msg_sz ?
		     pa.max_msg_sz : RMA_PIECE;
	if (!(vb.pd = ibv_alloc_pd(vb.ctx)))
		return uxp_fail(ENODEV, "rdma: verbs: ibv_alloc_pd: %s", strerror(errno));
	if (!(vb.ch = ibv_create_comp_channel(vb.ctx)) || nonblock(vb.ch->fd) < 0)
		return uxp_fail(ENODEV, "rdma: verbs: ibv_create_comp_channel: %s", strerror(errno));
	vb.cqe = dx.orig_attr.max_cqe < 1024 ? dx.orig_attr.max_cqe : 1024;
	if (!(vb.cq = ibv_create_cq(vb.ctx, vb.cqe, NULL, vb.ch, 0)))
		return uxp_fail(ENODEV, "rdma: verbs: ibv_create_cq: %s", strerror(errno));
	vb.cqe = vb.cq->cqe;
	ibv_req_notify_cq(vb.cq, 0);
	struct sockaddr *local = rdma_get_local_addr(vb.listen);
	vb.salen = sa_len((struct sockaddr_storage *)local);
	memcpy(&vb.sa, local, vb.salen);
	return 0;
}

static int open_all(void)
{
	int ret = open_device();
	if (ret == 0) {
		snprintf(rw_self.prov, sizeof(rw_self.prov), "ibverbs");
		rw_self.mr_local = true;
		ret = rr_publish(uxp_node_id(), getpid(), &vb.sa, vb.salen, rw_self.prov);
	}
	if (ret == 0)
		ret = uxp_thread_start(progress_main, NULL, 0);
	if (ret == 0)
		uxp_info("rdma: verbs: device %s port %d, listening on %s port %u (%s)", vb.dev, vb.port,
			 vb.ip, ntohs(rdma_get_src_port(vb.listen)),
			 vb.odp ? "on-demand paging" : "registration on demand");
	return ret;
}

static int vb_open(void)
{
	return rw_open_once(&once_open, open_all);
}

/* The parent's device objects, threads and connections are not ours: leak
 * them and start over on demand. */
static void vb_fork_child(void)
{
	rw_once_reset(&once_open);
	pthread_mutex_init(&cm_lock, NULL);
	pthread_mutex_init(&cq_lock, NULL);
	pthread_mutex_init(&peers_lock, NULL);
	pthread_mutex_init(&rxq_lock, NULL);
	memset(&vb, 0, sizeof(vb));
	stopping = parked = 0;
	peers = NULL;
	npeers = peers_cap = 0;
	rxq_head = NULL;
	rxq_tail = &rxq_head;
}

const struct rw_ops rw_verbs = {
	.name = "verbs",
	.describe = vb_describe,
	.open = vb_open,
	.progress = vb_progress,
	.send = vb_send,
	.rma = vb_rma,
	.mr_reg = vb_mr_reg,
	.mr_dereg = vb_mr_dereg,
	.mr_key = vb_mr_key,
	.mr_raddr = vb_mr_raddr,
	.peer_insert = vb_peer_insert,
	.close_at_exit = vb_close_at_exit,
	.fork_child = vb_fork_child,
};
