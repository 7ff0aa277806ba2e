/* revoke.c - revocation events: registrations, the queue and the thread
 * that runs callbacks.
 *
 * Transports call uxp_revoke_emit() after they made the revoked memory
 * raise SIGBUS.  Callbacks run on a dedicated dispatcher thread, not on a
 * transport's service thread, so that a callback may call any xpmem_*
 * function (even one that waits for the service thread) and a slow
 * callback never delays the protocol.  Nothing here is on the attach or
 * detach path; one mutex guards it all.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"

struct entry { /* one per live apid */
	uxpmem_revoke_cb cb;
	void *arg;
	xpmem_segid_t segid; /* as the application named it; 0 until the get returned */
};

struct qev {
	struct uxpmem_revoke_event ev;
	struct qev *next;
};

struct fifo {
	struct qev *head, **tail;
};

static pthread_mutex_t rv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rv_wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t rv_once = PTHREAD_ONCE_INIT;
static struct uxp_idtab live;       /* apid -> struct entry */
static struct entry dflt;           /* the process-wide default */
static struct fifo queue;           /* the pollable form */
static struct fifo dispatch;        /* for the callback thread */
static int queue_fd = -1;           /* eventfd; -1 until uxpmem_revoke_fd() */
static int dispatcher_running;
static unsigned long long rv_seq;

static void rv_init(void)
{
	uxp_idtab_init(&live);
	queue.tail = &queue.head;
	dispatch.tail = &dispatch.head;
}

static void fifo_push(struct fifo *f, struct qev *q)
{
	q->next = NULL;
	*f->tail = q;
	f->tail = &q->next;
}

static struct qev *fifo_pop(struct fifo *f)
{
	struct qev *q = f->head;
	if (q && !(f->head = q->next))
		f->tail = &f->head;
	return q;
}

/* Idempotent: transports that can revoke call it before the apid can be
 * revoked; the API edge calls it again after every successful get. */
void uxp_revoke_apid_added(xpmem_apid_t apid)
{
	pthread_once(&rv_once, rv_init);
	struct entry *e = calloc(1, sizeof(*e));
	int ret = e ? uxp_idtab_insert(&live, (uint64_t)apid, e) : -ENOMEM;
	if (ret < 0)
		free(e);
	if (ret < 0 && ret != -EEXIST) /* EEXIST: the transport added it first */
		uxp_warn("core: cannot track apid %#llx for revocation events", (unsigned long long)apid);
}

void uxp_revoke_apid_named(xpmem_apid_t apid, xpmem_segid_t segid)
{
	uxp_revoke_apid_added(apid);
	pthread_mutex_lock(&rv_lock); /* emit reads it under it */
	struct entry *e = uxp_idtab_get(&live, (uint64_t)apid, NULL);
	if (e)
		e->segid = segid;
	pthread_mutex_unlock(&rv_lock);
}

/* Local transports name segments without the node id (src/api.c strips
 * it): the event carries the segid the application used, or before the
 * get returned, the one it will most likely have used. */
static xpmem_segid_t app_segid(const struct entry *e, xpmem_segid_t segid)
{
	if (e->segid && uxp_id_strip_node(e->segid) == uxp_id_strip_node(segid))
		return e->segid;
	unsigned node = uxp_id_node(segid) ? 0 : uxp_node_id();
	return node ? uxp_id_with_node(segid, node) : segid;
}

void uxp_revoke_apid_released(xpmem_apid_t apid)
{
	pthread_once(&rv_once, rv_init);
	pthread_mutex_lock(&rv_lock); /* the dispatcher reads entries under it */
	free(uxp_idtab_remove(&live, (uint64_t)apid, NULL));
	pthread_mutex_unlock(&rv_lock);
}

static void *dispatcher_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&rv_lock);
	for (;;) {
		struct qev *q;
		while (!(q = fifo_pop(&dispatch)))
			pthread_cond_wait(&rv_wake, &rv_lock);
		/* look the handler up now: one registered meanwhile gets it, a
		 * released apid gets nothing */
		struct entry *e = uxp_idtab_get(&live, (uint64_t)q->ev.apid, NULL);
		uxpmem_revoke_cb cb = e ? (e->cb ? e->cb : dflt.cb) : NULL;
		void *arg = e ? (e->cb ? e->arg : dflt.arg) : NULL;
		pthread_mutex_unlock(&rv_lock);
		if (cb) {
			uxp_app_code_enter(); /* application code: a freeze waits for it */
			cb(&q->ev, arg);
			uxp_app_code_leave();
		}
		free(q);
		pthread_mutex_lock(&rv_lock);
	}
	return NULL;
}

/* Caller holds rv_lock. */
static int start_dispatcher(void)
{
	if (dispatcher_running)
		return 0;
	int ret = uxp_thread_start(dispatcher_main, NULL, 0);
	if (ret < 0)
		return uxp_fail(-ret, "core: cannot start the revocation thread: %s", strerror(-ret));
	dispatcher_running = 1;
	return 0;
}

static struct qev *new_event(const struct uxpmem_revoke_event *ev)
{
	struct qev *q = malloc(sizeof(*q));
	if (q)
		q->ev = *ev;
	else
		uxp_error("core: out of memory: revocation event of apid %#llx lost",
			  (unsigned long long)ev->apid);
	return q;
}

void uxp_revoke_emit(xpmem_apid_t apid, xpmem_segid_t segid, int reason, void *addr,
		     size_t size, off_t offset, size_t length)
{
	struct uxpmem_revoke_event ev = {
		.apid = apid, .segid = segid, .reason = reason, .addr = addr,
		.size = size, .offset = offset, .length = length,
	};
	struct qev *q;

	pthread_once(&rv_once, rv_init);
	pthread_mutex_lock(&rv_lock);
	struct entry *e = uxp_idtab_get(&live, (uint64_t)apid, NULL);
	if (!e)
		goto out; /* released: not delivered */
	ev.segid = app_segid(e, segid);
	ev.seq = ++rv_seq;
	uxp_debug("core: revoke event %llu: apid %#llx segid %#llx reason %d", ev.seq,
		  (unsigned long long)apid, (unsigned long long)ev.segid, reason);
	if (queue_fd >= 0 && (q = new_event(&ev))) {
		fifo_push(&queue, q);
		uint64_t one = 1;
		ssize_t UXP_UNUSED n = write(queue_fd, &one, sizeof(one));
	}
	if ((e->cb || dflt.cb) && start_dispatcher() == 0 && (q = new_event(&ev))) {
		fifo_push(&dispatch, q);
		pthread_cond_signal(&rv_wake);
	}
out:
	pthread_mutex_unlock(&rv_lock);
}

UXP_EXPORT int uxpmem_revoke_handler(xpmem_apid_t apid, uxpmem_revoke_cb cb, void *arg)
{
	int ret = 0;
	if (apid < 0) {
		errno = -uxp_fail(EINVAL, "revoke_handler: apid %lld is negative", (long long)apid);
		return -1;
	}
	pthread_once(&rv_once, rv_init);
	pthread_mutex_lock(&rv_lock);
	if (apid == 0) {
		dflt.cb = cb;
		dflt.arg = arg;
	} else {
		struct entry *e = uxp_idtab_get(&live, (uint64_t)apid, NULL);
		if (e) {
			e->cb = cb;
			e->arg = arg;
		} else {
			ret = uxp_fail(ENOENT, "revoke_handler: no apid %#llx in this process",
				       (unsigned long long)apid);
		}
	}
	pthread_mutex_unlock(&rv_lock);
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

UXP_EXPORT int uxpmem_revoke_fd(void)
{
	int ret;
	pthread_once(&rv_once, rv_init);
	pthread_mutex_lock(&rv_lock);
	if (queue_fd < 0) {
		queue_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (queue_fd < 0)
			uxp_debug("core: eventfd: %s", strerror(errno));
	}
	ret = queue_fd;
	pthread_mutex_unlock(&rv_lock);
	return ret;
}

UXP_EXPORT int uxpmem_revoke_poll(struct uxpmem_revoke_event *ev, int max)
{
	int n = 0;
	if (!ev || max < 1) {
		errno = EINVAL;
		return -1;
	}
	pthread_once(&rv_once, rv_init);
	pthread_mutex_lock(&rv_lock);
	struct qev *q;
	while (n < max && (q = fifo_pop(&queue))) {
		if (uxp_idtab_get(&live, (uint64_t)q->ev.apid, NULL))
			ev[n++] = q->ev; /* else released since: not delivered */
		free(q);
	}
	if (!queue.head && queue_fd >= 0) { /* empty: no longer readable */
		uint64_t cnt;
		ssize_t UXP_UNUSED r = read(queue_fd, &cnt, sizeof(cnt));
	}
	pthread_mutex_unlock(&rv_lock);
	return n;
}

void uxp_revoke_fork_child(void)
{
	/* The parent's apids, handlers, events and threads are not ours. */
	pthread_mutex_init(&rv_lock, NULL);
	pthread_cond_init(&rv_wake, NULL);
	uxp_idtab_reset_after_fork(&live, free);
	queue.head = dispatch.head = NULL;
	queue.tail = &queue.head;
	dispatch.tail = &dispatch.head;
	if (queue_fd >= 0)
		close(queue_fd);
	queue_fd = -1;
	dispatcher_running = 0;
	dflt.cb = NULL;
	dflt.arg = NULL;
}
