/* fabric.c - this process's libfabric endpoint: one RDM endpoint, one
 * completion queue, an address vector, receive buffers for control
 * messages, and the progress thread.
 *
 * Software providers need manual progress, so every wait drives it
 * (rf_progress reads the completion queue from whichever thread waits) and
 * the progress thread does when nobody waits: it blocks on the completion
 * queue's descriptor where the provider has one, else polls with a growing
 * sleep.
 * Received messages are queued and handled by the progress thread only,
 * so a handler may send (and drive progress) without recursion.
 *
 * Ops posted with a context (struct rf_op) outlive a waiter that gives
 * up: the waiter and the completion race on op->state, and whoever loses
 * frees the op (libfabric may still write the context after a timeout). */
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include "fabric.h"

struct rf_state rf;

enum { OP_POSTED = 0, OP_DONE = 1, OP_ABANDONED = 2 };
#define NRECV 32
#define RMA_WINDOW 16
#define RMA_PIECE (1024 * 1024)

static struct rw_once once_open = RW_ONCE_INIT;
static struct rf_op *recv_ops;
static struct fid_mr *recv_mr;
static pthread_mutex_t rxq_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rf_op *rxq_head, **rxq_tail = &rxq_head;
static bool write_plain; /* the provider refused FI_DELIVERY_COMPLETE */

/* ---- the provider ---------------------------------------------------- */

static struct fi_info *hints_new(void)
{
	struct fi_info *h = fi_allocinfo();
	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_MSG | FI_RMA | FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ |
		  FI_REMOTE_WRITE;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	h->domain_attr->threading = FI_THREAD_SAFE;
	/* FI_PROVIDER is honoured by fi_getinfo itself */
	return h;
}

static pthread_mutex_t info_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fi_info *info_cached; /* fi_getinfo takes ~0.5 s: probe's answer is kept */

static int getinfo(struct fi_info **info, char *why, size_t whylen)
{
	pthread_mutex_lock(&info_lock);
	*info = info_cached ? fi_dupinfo(info_cached) : NULL;
	pthread_mutex_unlock(&info_lock);
	if (*info)
		return 0;
	struct fi_info *hints = hints_new();
	if (!hints)
		return -ENOMEM;
	int ret = fi_getinfo(RDMA_FI_VERSION, NULL, NULL, 0, hints, info);
	fi_freeinfo(hints);
	if (ret) {
		const char *p = uxp_env("FI_PROVIDER");
		snprintf(why, whylen, "no libfabric RDM provider with RMA and thread safety%s%s: %s",
			 p ? " among FI_PROVIDER=" : "", p ? p : "", fi_strerror(-ret));
		return -ENODEV;
	}
	if ((*info)->domain_attr->mr_mode & FI_MR_RAW) {
		snprintf(why, whylen, "provider %s needs raw memory keys (FI_MR_RAW): not supported",
			 (*info)->fabric_attr->prov_name);
		fi_freeinfo(*info);
		return -ENODEV;
	}
	pthread_mutex_lock(&info_lock);
	if (!info_cached)
		info_cached = fi_dupinfo(*info);
	pthread_mutex_unlock(&info_lock);
	return 0;
}

int rf_provider(char *name, size_t len, char *why, size_t whylen)
{
	struct fi_info *info = NULL;
	int ret = getinfo(&info, why, whylen);
	if (ret < 0)
		return ret;
	snprintf(name, len, "%s", info->fabric_attr->prov_name);
	fi_freeinfo(info);
	return 0;
}

/* ---- completions ------------------------------------------------------ */

/* The op completed (err 0 or -errno): mark it, or free it if abandoned. */
static void op_complete(struct rf_op *op, int err, size_t len)
{
	if (op->kind == RF_OP_RECV) {
		op->err = err;
		op->len = len;
		op->next = NULL;
		pthread_mutex_lock(&rxq_lock);
		*rxq_tail = op;
		rxq_tail = &op->next;
		pthread_mutex_unlock(&rxq_lock);
		if (rf.cq_fd >= 0)
			fi_cq_signal(rf.cq);
		return;
	}
	op->err = err;
	int expect = OP_POSTED;
	if (!__atomic_compare_exchange_n(&op->done, &expect, OP_DONE, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		free(op); /* its waiter gave up */
}

static void consume(const struct fi_cq_msg_entry *e, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++)
		if (e[i].op_context)
			op_complete(e[i].op_context, 0, e[i].len);
}

static void consume_error(void)
{
	struct fi_cq_err_entry e;
	memset(&e, 0, sizeof(e));
	if (fi_cq_readerr(rf.cq, &e, 0) != 1)
		return;
	uxp_debug("rdma: completion error: %s (%s)", fi_strerror(e.err),
		  fi_cq_strerror(rf.cq, e.prov_errno, e.err_data, NULL, 0));
	if (e.op_context)
		op_complete(e.op_context, -(e.err ? e.err : EIO), 0);
}

/* How many completions were read. */
static ssize_t progress_n(void)
{
	struct fi_cq_msg_entry e[16];
	ssize_t n = fi_cq_read(rf.cq, e, 16);
	if (n > 0)
		consume(e, n);
	else if (n == -FI_EAVAIL)
		consume_error();
	return n > 0 ? n : n == -FI_EAVAIL;
}

void rf_progress(void)
{
	progress_n();
}

/* ---- waiting ---------------------------------------------------------- */

/* Drive progress until op completes or the deadline (ms) passes: 0,
 * op->err, or -ETIMEDOUT (op then belongs to its completion). */
static int op_wait(struct rf_op *op, long long deadline, bool spin)
{
	for (long long since = 0;;) {
		if (__atomic_load_n(&op->done, __ATOMIC_ACQUIRE) == OP_DONE) {
			int err = op->err;
			free(op);
			return err;
		}
		rf_progress();
		if (since && uxp_now_ms() > deadline) {
			int expect = OP_POSTED;
			if (__atomic_compare_exchange_n(&op->done, &expect, OP_ABANDONED, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return -ETIMEDOUT;
			continue; /* completed meanwhile */
		}
		if (spin && !since)
			since = 1; /* the deadline applies, no sleep */
		else if (!spin)
			rw_backoff(&since);
	}
}

static struct rf_op *op_new(void)
{
	struct rf_op *op = calloc(1, sizeof(*op));
	if (op)
		op->kind = RF_OP_WAIT;
	return op;
}

/* ---- posting ---------------------------------------------------------- */

int rf_send(fi_addr_t to, const void *msg, size_t len)
{
	long long deadline = uxp_now_ms() + rdma_timeout_ms();
	for (;;) {
		ssize_t ret = fi_inject(rf.ep, msg, len, to);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN)
			return uxp_fail(EIO, "rdma: fi_inject: %s", fi_strerror((int)-ret));
		if (uxp_now_ms() > deadline)
			return uxp_fail(ETIMEDOUT, "rdma: fi_inject: the peer accepts nothing "
					"(-FI_EAGAIN for %ld ms)", rdma_timeout_ms());
		rf_progress();
	}
}

static ssize_t post_rma(bool write, void *buf, size_t len, void *desc, fi_addr_t peer,
			uint64_t raddr, uint64_t key, struct rf_op *op)
{
	if (!write)
		return fi_read(rf.ep, buf, len, desc, peer, raddr, key, op);
	if (!__atomic_load_n(&write_plain, __ATOMIC_RELAXED)) {
		/* the exporter's memory must hold the data when we report it */
		struct iovec iov = { buf, len };
		struct fi_rma_iov rma = { raddr, len, key };
		struct fi_msg_rma m = { .msg_iov = &iov, .desc = &desc, .iov_count = 1, .addr = peer,
					.rma_iov = &rma, .rma_iov_count = 1, .context = op };
		ssize_t ret = fi_writemsg(rf.ep, &m, FI_COMPLETION | FI_DELIVERY_COMPLETE);
		if (ret != -FI_EBADFLAGS && ret != -FI_ENOSYS && ret != -FI_EOPNOTSUPP)
			return ret;
		uxp_info("rdma: provider %s refuses FI_DELIVERY_COMPLETE writes: plain fi_write",
			 rf.prov);
		__atomic_store_n(&write_plain, true, __ATOMIC_RELAXED);
	}
	return fi_write(rf.ep, buf, len, desc, peer, raddr, key, op);
}

/* Post one piece, retrying -FI_EAGAIN with progress: 0 or -errno. */
static int post_piece(bool write, char *buf, size_t len, void *desc, fi_addr_t peer,
		      uint64_t raddr, uint64_t key, struct rf_op *op, long long deadline)
{
	for (;;) {
		ssize_t ret = post_rma(write, buf, len, desc, peer, raddr, key, op);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN)
			return uxp_fail(EIO, "rdma: %s: %s", write ? "fi_write" : "fi_read",
					fi_strerror((int)-ret));
		if (uxp_now_ms() > deadline)
			return uxp_fail(ETIMEDOUT, "rdma: %s: -FI_EAGAIN for %ld ms",
					write ? "fi_write" : "fi_read", rdma_timeout_ms());
		rf_progress();
	}
}

/* Threads polling for their own RMA (spin): the progress thread keeps off
 * the provider meanwhile (wait_for_work). */
static int spinners;

static int rma(bool write, void *local, void *desc, size_t len, fi_addr_t peer, uint64_t raddr,
	       uint64_t key, bool spin)
{
	struct rf_op *win[RMA_WINDOW];
	unsigned head = 0, n = 0;
	long long deadline = uxp_now_ms() + rdma_timeout_ms();
	int err = 0;
	if (spin)
		__atomic_add_fetch(&spinners, 1, __ATOMIC_ACQ_REL);
	for (size_t off = 0; off < len && !err;) {
		if (n == RMA_WINDOW) { /* wait for the oldest */
			int e = op_wait(win[head], deadline, spin);
			err = err ? err : e;
			head = (head + 1) % RMA_WINDOW;
			n--;
			continue;
		}
		size_t piece = len - off < rf.max_rma ? len - off : rf.max_rma;
		struct rf_op *op = op_new();
		if (!op) {
			err = -ENOMEM;
			break;
		}
		err = post_piece(write, (char *)local + off, piece, desc, peer, raddr + off, key, op,
				 deadline);
		if (err) {
			free(op);
			break;
		}
		win[(head + n++) % RMA_WINDOW] = op;
		off += piece;
	}
	for (; n; n--, head = (head + 1) % RMA_WINDOW) {
		int e = op_wait(win[head], deadline, spin);
		err = err ? err : e;
	}
	if (spin)
		__atomic_sub_fetch(&spinners, 1, __ATOMIC_ACQ_REL);
	if (err && err != -ETIMEDOUT && err != -ENOMEM)
		err = uxp_fail(EIO, "rdma: %s of %zu bytes at %#llx failed: %s",
			       write ? "write" : "read", len, (unsigned long long)raddr,
			       fi_strerror(-err));
	return err;
}

int rf_mr_reg(void *buf, size_t len, uint64_t access, struct fid_mr **mr)
{
	uint64_t key = rf.mr_mode & FI_MR_PROV_KEY ? 0 :
		       __atomic_add_fetch(&rf.next_key, 1, __ATOMIC_RELAXED);
	int ret = fi_mr_reg(rf.domain, buf, len, access, 0, key, 0, mr, NULL);
	if (ret)
		return uxp_fail(EFAULT, "rdma: fi_mr_reg %p+%#zx: %s", buf, len, fi_strerror(-ret));
	if (rf.mr_mode & FI_MR_ENDPOINT) {
		ret = fi_mr_bind(*mr, &rf.ep->fid, 0);
		if (!ret)
			ret = fi_mr_enable(*mr);
		if (ret) {
			fi_close(&(*mr)->fid);
			return uxp_fail(EFAULT, "rdma: binding a memory region: %s", fi_strerror(-ret));
		}
	}
	return 0;
}

/* ---- addresses -------------------------------------------------------- */

struct av_entry {
	struct av_entry *next;
	size_t len;
	fi_addr_t fa;
	char addr[RF_ADDR_MAX];
};
static pthread_mutex_t av_lock = PTHREAD_MUTEX_INITIALIZER;
static struct av_entry *av_list;

int rf_av_insert(const void *addr, size_t len, fi_addr_t *fa)
{
	int ret = 0;
	pthread_mutex_lock(&av_lock);
	struct av_entry *e = av_list;
	while (e && (e->len != len || memcmp(e->addr, addr, len)))
		e = e->next;
	if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
		memcpy(e->addr, addr, len);
		e->len = len;
		if (fi_av_insert(rf.av, addr, 1, &e->fa, 0, NULL) != 1) {
			free(e);
			e = NULL;
			ret = uxp_fail(EHOSTUNREACH, "rdma: fi_av_insert refused a peer's address");
		} else {
			e->next = av_list;
			av_list = e;
		}
	} else if (!e) {
		ret = -ENOMEM;
	}
	if (e)
		*fa = e->fa;
	pthread_mutex_unlock(&av_lock);
	return ret;
}

/* ---- the progress thread ---------------------------------------------- */

static struct rf_op *rxq_pop(void)
{
	pthread_mutex_lock(&rxq_lock);
	struct rf_op *op = rxq_head;
	if (op && !(rxq_head = op->next))
		rxq_tail = &rxq_head;
	pthread_mutex_unlock(&rxq_lock);
	return op;
}

static int post_recv(struct rf_op *op)
{
	void *desc = recv_mr ? fi_mr_desc(recv_mr) : NULL;
	for (;;) {
		ssize_t ret = fi_recv(rf.ep, op->buf, sizeof(op->buf), desc, FI_ADDR_UNSPEC, op);
		if (ret != -FI_EAGAIN)
			return ret ? uxp_fail(EIO, "rdma: fi_recv: %s", fi_strerror((int)-ret)) : 0;
		rf_progress();
	}
}

/* Handle every queued message; returns how many. */
static int drain_rxq(void)
{
	int n = 0;
	for (struct rf_op *op; (op = rxq_pop()) != NULL; n++) {
		if (op->err == 0)
			rx_dispatch((const struct rm_msg *)op->buf, op->len);
		post_recv(op);
	}
	return n;
}

/* Block on the completion queue's descriptor (fi_trywait says when that
 * is safe) for at most 50 ms, so the tick runs even when nothing arrives;
 * without a descriptor, poll with a growing sleep. */
static bool rxq_empty(void)
{
	pthread_mutex_lock(&rxq_lock);
	bool empty = !rxq_head;
	pthread_mutex_unlock(&rxq_lock);
	return empty;
}

static long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

#define HOT_US 200

/* A message queued by this thread's progress, or by another thread's
 * before fi_trywait consumed the signal that thread gave, is handled
 * before any sleep (it used to wait for the 50 ms timeout: every reply to
 * a waiting get/attach and every REVOKE over tcp;ofi_rxm).  After
 * traffic the thread stays hot for HOT_US (this process may be the target
 * of an RMA in flight, which completes nothing here), yielding the CPU.
 *
 * While another thread polls for its own RMA (the fault thread), this one
 * only yields: both progressing at once hand the provider's lock back and
 * forth, and each handoff is a wake-up across CPUs (perf sched: the fault
 * thread and this one waking each other per 4 KiB fault; a cold fault over
 * tcp;ofi_rxm took ~100 us, about half without).  Messages the poller's
 * progress queues are still dispatched here (drain_rxq). */
static void wait_for_work(unsigned *idle)
{
	static long long hot; /* this thread only: busy until then (us) */
	if (__atomic_load_n(&spinners, __ATOMIC_ACQUIRE)) {
		hot = mono_us() + HOT_US;
		sched_yield();
		return;
	}
	if (progress_n() > 0 || !rxq_empty()) {
		*idle = 0;
		hot = mono_us() + HOT_US;
		return;
	}
	if (rf.cq_fd >= 0) {
		if (mono_us() < hot) {
			sched_yield();
			return;
		}
		struct fid *f = &rf.cq->fid;
		if (fi_trywait(rf.fabric, &f, 1) == FI_SUCCESS && rxq_empty()) {
			struct pollfd pfd = { rf.cq_fd, POLLIN, 0 };
			if (poll(&pfd, 1, 50) > 0)
				hot = mono_us() + HOT_US;
		}
		return;
	}
	/* polled: spin briefly, sleep 50 us for a second or two after the last
	 * message (the provider may need us as an RMA target meanwhile, e.g.
	 * shm's delivery-complete writes, where no completion tells), then 1 ms */
	if (++*idle > 200) {
		struct timespec ts = { 0, *idle > 20000 ? 1000000 : 50000 };
		nanosleep(&ts, NULL);
	}
}

static int stopping, parked; /* atomic: rf_close_at_exit */

/* Does the provider leave named state behind an unclosed endpoint? */
static bool provider_leaves_files(void)
{
	return strcmp(rf.prov, "shm") == 0;
}

static void *progress_main(void *arg)
{
	(void)arg;
	unsigned idle = 0;
	while (!__atomic_load_n(&stopping, __ATOMIC_ACQUIRE)) {
		if (drain_rxq())
			idle = 0;
		ri_tick();
		wait_for_work(&idle);
	}
	__atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* At exit the progress thread is parked (bounded wait; application
 * threads still calling in at exit are on their own): libfabric's own
 * destructor runs after ours and must not find it in the provider.
 *
 * Only the shm provider's endpoint is closed: it leaves a region in
 * /dev/shm otherwise.  The kernel tears down every other provider's
 * connections with the process, and closing an ofi_rxm endpoint with
 * traffic in flight (a peer that was stopped, pings it never answered)
 * can crash inside libfabric 1.17 (rxm flushes its connections' queues
 * and handles their completions: SIGSEGV at exit, seen with
 * verbs;ofi_rxm in tests/rdma/remote_verbs' unreachable exporter). */
void rf_close_at_exit(void)
{
	if (!rf_is_open())
		return;
	__atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 200 && !__atomic_load_n(&parked, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) && provider_leaves_files())
		fi_close(&rf.ep->fid);
}

/* ---- opening ---------------------------------------------------------- */

static int fab_fail(const char *what, int ret)
{
	return uxp_fail(ENODEV, "rdma: %s (provider %s): %s", what, rf.prov, fi_strerror(-ret));
}

static int open_cq(void)
{
	struct fi_cq_attr attr = { .format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_FD };
	int ret = fi_cq_open(rf.domain, &attr, &rf.cq, NULL);
	rf.cq_fd = -1;
	if (ret == 0 && fi_control(&rf.cq->fid, FI_GETWAIT, &rf.cq_fd) != 0) {
		rf.cq_fd = -1;
		fi_close(&rf.cq->fid);
		ret = -FI_ENOSYS;
	}
	if (ret) {
		attr.wait_obj = FI_WAIT_NONE;
		ret = fi_cq_open(rf.domain, &attr, &rf.cq, NULL);
	}
	return ret ? fab_fail("fi_cq_open", ret) : 0;
}

static int open_endpoint(void)
{
	char why[256];
	int ret = getinfo(&rf.info, why, sizeof(why));
	if (ret < 0)
		return uxp_fail(-ret, "rdma: %s", why);
	snprintf(rf.prov, sizeof(rf.prov), "%s", rf.info->fabric_attr->prov_name);
	rf.mr_mode = rf.info->domain_attr->mr_mode;
	rf.inject = rf.info->tx_attr->inject_size;
	rf.max_rma = rf.info->ep_attr->max_msg_size < RMA_PIECE ? rf.info->ep_attr->max_msg_size
								: RMA_PIECE;
	if (rf.inject < sizeof(struct rm_msg))
		return uxp_fail(ENODEV, "rdma: provider %s injects only %zu bytes (need %zu)", rf.prov,
				rf.inject, sizeof(struct rm_msg));
	struct fi_av_attr av = { .type = FI_AV_UNSPEC };
	if ((ret = fi_fabric(rf.info->fabric_attr, &rf.fabric, NULL)))
		return fab_fail("fi_fabric", ret);
	if ((ret = fi_domain(rf.fabric, rf.info, &rf.domain, NULL)))
		return fab_fail("fi_domain", ret);
	if ((ret = open_cq()) < 0)
		return ret;
	if ((ret = fi_av_open(rf.domain, &av, &rf.av, NULL)))
		return fab_fail("fi_av_open", ret);
	if ((ret = fi_endpoint(rf.domain, rf.info, &rf.ep, NULL)))
		return fab_fail("fi_endpoint", ret);
	if ((ret = fi_ep_bind(rf.ep, &rf.av->fid, 0)) ||
	    (ret = fi_ep_bind(rf.ep, &rf.cq->fid, FI_TRANSMIT | FI_RECV)))
		return fab_fail("fi_ep_bind", ret);
	if ((ret = fi_enable(rf.ep)))
		return fab_fail("fi_enable", ret);
	rf.addrlen = sizeof(rf.addr);
	if ((ret = fi_getname(&rf.ep->fid, rf.addr, &rf.addrlen)))
		return fab_fail("fi_getname (address longer than 256 bytes?)", ret);
	return 0;
}

static int post_receives(void)
{
	recv_ops = calloc(NRECV, sizeof(*recv_ops));
	if (!recv_ops)
		return -ENOMEM;
	if (rf.mr_mode & FI_MR_LOCAL) {
		int ret = rf_mr_reg(recv_ops, NRECV * sizeof(*recv_ops), FI_RECV, &recv_mr);
		if (ret < 0)
			return ret;
	}
	for (int i = 0; i < NRECV; i++) {
		recv_ops[i].kind = RF_OP_RECV;
		int ret = post_recv(&recv_ops[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int open_all(void)
{
	int ret = open_endpoint();
	if (ret == 0)
		ret = post_receives();
	if (ret == 0) {
		snprintf(rw_self.prov, sizeof(rw_self.prov), "%s", rf.prov);
		rw_self.mr_local = rf.mr_mode & FI_MR_LOCAL;
		ret = rr_publish(uxp_node_id(), getpid(), rf.addr, rf.addrlen, rf.prov);
	}
	if (ret == 0)
		ret = uxp_thread_start(progress_main, NULL, 0);
	if (ret == 0)
		uxp_info("rdma: endpoint open (provider %s, mr_mode %#llx, %s completion waits, "
			 "address %zu bytes)", rf.prov, (unsigned long long)rf.mr_mode,
			 rf.cq_fd >= 0 ? "descriptor" : "polled", rf.addrlen);
	return ret;
}

bool rf_is_open(void)
{
	return rw_once_is_open(&once_open);
}

int rf_open(void)
{
	return rw_open_once(&once_open, open_all);
}

/* The parent's fabric objects, threads and connections are not ours: leak
 * them and start over on demand. */
void rf_fork_child(void)
{
	rw_once_reset(&once_open);
	pthread_mutex_init(&info_lock, NULL);
	pthread_mutex_init(&rxq_lock, NULL);
	pthread_mutex_init(&av_lock, NULL);
	memset(&rf, 0, sizeof(rf));
	stopping = 0;
	parked = 0;
	recv_ops = NULL;
	recv_mr = NULL;
	rxq_head = NULL;
	rxq_tail = &rxq_head;
	av_list = NULL;
}

/* ---- the back end's ops ----------------------------------------------- */

static int lf_describe(char *buf, size_t len, char *why, size_t whylen)
{
	char prov[64];
	int ret = rf_provider(prov, sizeof(prov), why, whylen);
	if (ret == 0)
		snprintf(buf, len, "libfabric %u.%u, provider %s", FI_MAJOR(fi_version()),
			 FI_MINOR(fi_version()), prov);
	return ret;
}

static int lf_send(rw_addr_t to, const void *msg, size_t len, bool wait)
{
	if (wait)
		return rf_send(to, msg, len);
	return fi_inject(rf.ep, msg, len, to) == 0 ? 0 : -EAGAIN;
}

/* struct rw_mr is libfabric's struct fid_mr */
static struct fid_mr *fmr(struct rw_mr *mr)
{
	return (struct fid_mr *)mr;
}

int rf_rma(bool write, void *local, void *desc, size_t len, fi_addr_t peer, uint64_t raddr,
	   uint64_t key)
{
	return rma(write, local, desc, len, peer, raddr, key, false);
}

static int lf_rma(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
		  uint64_t raddr, uint64_t key)
{
	return rf_rma(write, local, lmr ? fi_mr_desc(fmr(lmr)) : NULL, len, peer, raddr, key);
}

static int lf_rma_spin(bool write, void *local, struct rw_mr *lmr, size_t len, rw_addr_t peer,
		       uint64_t raddr, uint64_t key)
{
	return rma(write, local, lmr ? fi_mr_desc(fmr(lmr)) : NULL, len, peer, raddr, key, true);
}

static int lf_mr_reg(void *buf, size_t len, unsigned access, struct rw_mr **mr)
{
	uint64_t a = (access & RW_LOCAL_READ ? FI_READ : 0) | (access & RW_LOCAL_WRITE ? FI_WRITE : 0) |
		     (access & RW_REMOTE_READ ? FI_REMOTE_READ : 0) |
		     (access & RW_REMOTE_WRITE ? FI_REMOTE_WRITE : 0);
	struct fid_mr *m;
	int ret = rf_mr_reg(buf, len, a, &m);
	if (ret == 0)
		*mr = (struct rw_mr *)m;
	return ret;
}

static void lf_mr_dereg(struct rw_mr *mr)
{
	fi_close(&fmr(mr)->fid);
}

static uint64_t lf_mr_key(struct rw_mr *mr)
{
	return fi_mr_key(fmr(mr));
}

/* the virtual address with FI_MR_VIRT_ADDR, else the offset in the region
 * (every region we hand out starts at its chunk) */
static uint64_t lf_mr_raddr(struct rw_mr *mr, void *buf)
{
	(void)mr;
	return rf.mr_mode & FI_MR_VIRT_ADDR ? (uint64_t)(uintptr_t)buf : 0;
}

static int lf_peer_insert(const void *addr, size_t len, rw_addr_t *peer)
{
	fi_addr_t fa;
	int ret = rf_av_insert(addr, len, &fa);
	if (ret == 0)
		*peer = fa;
	return ret;
}

const struct rw_ops rw_libfabric = {
	.name = "libfabric",
	.describe = lf_describe,
	.open = rf_open,
	.progress = rf_progress,
	.send = lf_send,
	.rma = lf_rma,
	.rma_spin = lf_rma_spin,
	.mr_reg = lf_mr_reg,
	.mr_dereg = lf_mr_dereg,
	.mr_key = lf_mr_key,
	.mr_raddr = lf_mr_raddr,
	.peer_insert = lf_peer_insert,
	.close_at_exit = rf_close_at_exit,
	.fork_child = rf_fork_child,
};
