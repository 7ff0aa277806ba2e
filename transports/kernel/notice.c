/* notice.c - revocation events of the kernel transport.
 *
 * The XPMEM module tells an importer nothing when a segment goes away;
 * uxpmem on both sides does:
 *  - an exporter, after its first MAKE, listens on the abstract
 *    SOCK_SEQPACKET socket "\0uxpmem-kernel.TGID" (TGID taken from the
 *    segid, so it is what importers compute even in a pid namespace) and
 *    after every REMOVE (the module has zapped the attachments by then)
 *    sends REMOVED{segid, size} to every importer connection, those still
 *    in the accept backlog included;
 *  - an importer, before its first GET ioctl on an exporter's segment,
 *    connects to that socket, checks SO_PEERCRED.pid == TGID and opens the
 *    exporter's pidfd; without such a connection (the exporter runs
 *    another library) it watches the pidfd alone, in the initial pid
 *    namespace only (the segid carries the global pid).  A REMOVED revokes
 *    the apids of that segid, the exporter's exit all its apids (EXITED),
 *    a closed connection without an exit or a malformed message all its
 *    apids (ERROR); never more than one event per apid.
 * A get in flight is registered ("pending") on its exporter before the
 * ioctl, so a REMOVED or an exit noticed before its apid is recorded is
 * applied to it then.  Segments of this process itself (self-attach) are
 * revoked directly by the remove.
 *
 * One thread per process (lazy, all signals blocked, restarted lazily in a
 * forked child) waits in epoll on the listening socket, the exporter side
 * connections, the importer side connections and the pidfds; epoll data
 * is a token (id, kind), looked up under kn_lock, never a pointer.
 * Everything is under kn_lock except the bounded wait of a remove for a
 * full importer queue (kn_remove_lock: removes one at a time).  Events
 * are emitted after kn_lock is dropped.  Attach and detach never come here.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "uxp.h"
#include "uxpmem.h"
#include "kernel.h"
#include "notice.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define PROC_PID_INIT_INO 0xEFFFFFFCu /* /proc/self/ns/pid of the initial namespace */
#define HUP_WAIT_MS 1000              /* closed connection -> pidfd readable within this: EXITED */
#define REMOVE_WAIT_MS 1000           /* default of XPMEM_KERNEL_NOTICE_TIMEOUT_MS */

enum { K_LISTEN, K_SCONN, K_ICONN, K_PIDFD };
#define TOKEN(id, kind) (((uint64_t)(id) << 2) | (uint64_t)(kind))

struct sconn { /* exporter side: the connection of one importer process */
	uint64_t id;
	int fd;
	struct sconn *next;
};

struct prem { /* a REMOVED received while gets were pending */
	xpmem_segid_t segid;
	uint64_t size;
};

struct expo { /* importer side: one exporter process */
	uint64_t id;
	pid_t tgid;
	int fd;             /* verified connection to its notice socket, or -1 */
	int pidfd;          /* or -1 */
	int pending;        /* gets between get_begin and get_end */
	int napids;         /* its apids not revoked yet ... */
	struct arec *apids; /* ... listed here */
	int dead;           /* 0, or the reason all its apids were revoked with */
	int stale;          /* a get saw it going away: skipped, the thread ends it */
	long long hup_ms;   /* connection closed then, waiting for the pidfd; 0: not */
	struct prem *prem;  /* REMOVED while pending > 0 */
	size_t nprem, cprem;
	struct expo *next;  /* kn_expos (not once dead) */
};

struct arec { /* one apid of this process */
	xpmem_apid_t apid;
	xpmem_segid_t segid;
	struct expo *ex;          /* NULL once revoked (at most one event per apid) */
	uint64_t length;          /* segment size, 0 until known */
	struct arec *prev, *next; /* in ex->apids */
};

struct srec { /* exporter side: one segment of this process */
	uint64_t length;
};

struct kev {
	xpmem_apid_t apid;
	xpmem_segid_t segid;
	int reason;
	uint64_t length;
};

struct evbuf {
	struct kev *v;
	size_t n, cap;
};

static pthread_mutex_t kn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t kn_remove_lock = PTHREAD_MUTEX_INITIALIZER;
static int kn_inited;
static struct uxp_idtab kn_apids; /* apid -> struct arec */
static struct uxp_idtab kn_segs;  /* segid -> struct srec */
static int kn_ep = -1;            /* the thread's epoll set; -1: no thread */
static int kn_listen = -1;
static int kn_spare = -1;         /* closed to accept (and drop) a connection at EMFILE */
static int kn_listen_tried;
static pid_t kn_self;             /* our tgid as the module writes it; 0 before our first MAKE */
static struct sconn *kn_sconns;
static struct expo *kn_expos;
static struct expo kn_selfex = { .fd = -1, .pidfd = -1 };
static uint64_t kn_next_id;
static int kn_initns = -1;
static int *kn_wait;              /* dups of full connections during a remove (kn_remove_lock) */
static size_t kn_nwait, kn_cwait;

/* ---- small helpers ------------------------------------------------------ */

pid_t uxp_kn_segid_tgid(xpmem_segid_t segid)
{
	pid_t tgid;
	memcpy(&tgid, &segid, sizeof(tgid)); /* the first member, as the module lays it out */
	return tgid;
}

socklen_t uxp_kn_addr(pid_t tgid, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, UXP_KN_NAME "%d", (int)tgid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static struct uxp_kn_msg kn_msg(int type, xpmem_segid_t segid, uint64_t size)
{
	struct uxp_kn_msg m = {
		.magic = UXP_KN_MAGIC, .version = UXP_KN_VERSION, .type = (uint16_t)type,
		.segid = segid, .size = size,
	};
	return m;
}

/* NULL if buf (n bytes) is a well-formed message, else what is wrong. */
static const char *kn_parse(const void *buf, ssize_t n, struct uxp_kn_msg *m)
{
	if (n != (ssize_t)sizeof(*m))
		return "wrong length";
	memcpy(m, buf, sizeof(*m));
	if (m->magic != UXP_KN_MAGIC)
		return "bad magic";
	if (m->version != UXP_KN_VERSION)
		return "unknown version";
	if (m->segid <= 0)
		return "segid not positive";
	return NULL;
}

static int real_pidfd_open(int pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int (*uxp_kernel_pidfd_open)(int) = real_pidfd_open;

static int kn_pidfd_open(pid_t pid)
{
	return uxp_kernel_pidfd_open((int)pid);
}

static int in_init_pidns(void)
{
	if (kn_initns < 0) {
		struct stat st;
		kn_initns = stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == PROC_PID_INIT_INO;
	}
	return kn_initns;
}

/* Without a pidfd: has process tgid exited (gone or a zombie)? */
static int proc_gone(pid_t tgid)
{
	char path[64], buf[512];
	if (!in_init_pidns())
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tgid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static void ev_push(struct evbuf *b, const struct arec *r, int reason)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct kev *v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			uxp_error("kernel: out of memory: revocation event of apid %#llx lost",
				  (unsigned long long)r->apid);
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = (struct kev){ r->apid, r->segid, reason, r->length };
}

/* Emit what was collected; caller holds no lock. */
static void ev_flush(struct evbuf *b)
{
	for (size_t i = 0; i < b->n; i++)
		uxp_revoke_emit(b->v[i].apid, b->v[i].segid, b->v[i].reason, NULL, 0, 0,
				(size_t)b->v[i].length);
	free(b->v);
	b->v = NULL;
	b->n = b->cap = 0;
}

/* ---- tables (caller holds kn_lock) --------------------------------------- */

static void kn_init(void)
{
	if (kn_inited)
		return;
	uxp_idtab_init(&kn_apids);
	uxp_idtab_init(&kn_segs);
	kn_inited = 1;
}

static void watch(int fd, uint64_t token)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = token };
	if (epoll_ctl(kn_ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		uxp_warn("kernel: epoll_ctl: %s: a notice descriptor is not watched", strerror(errno));
}

static void close_watched(int *fd)
{
	if (*fd < 0)
		return;
	epoll_ctl(kn_ep, EPOLL_CTL_DEL, *fd, NULL); /* a dup may keep the file open */
	close(*fd);
	*fd = -1;
}

static void arec_link(struct expo *ex, struct arec *r)
{
	r->ex = ex;
	r->prev = NULL;
	r->next = ex->apids;
	if (ex->apids)
		ex->apids->prev = r;
	ex->apids = r;
	ex->napids++;
}

static void arec_unlink(struct arec *r)
{
	struct expo *ex = r->ex;
	if (r->prev)
		r->prev->next = r->next;
	else
		ex->apids = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->ex = NULL;
	r->prev = r->next = NULL;
	ex->napids--;
}

/* ex's live apids of segid (0: all): note the size if known (size > 0);
 * with a reason, revoke them.  Returns how many were revoked. */
static int revoke_apids(struct expo *ex, xpmem_segid_t segid, uint64_t size, int reason,
			struct evbuf *b)
{
	int n = 0;
	for (struct arec *r = ex->apids, *nx; r; r = nx) {
		nx = r->next;
		if (segid && r->segid != segid)
			continue;
		if (size)
			r->length = size;
		if (reason) {
			arec_unlink(r);
			ev_push(b, r, reason);
			n++;
		}
	}
	return n;
}

static void expo_unlink(struct expo *ex)
{
	for (struct expo **p = &kn_expos; *p; p = &(*p)->next)
		if (*p == ex) {
			*p = ex->next;
			return;
		}
}

static struct expo *expo_find(uint64_t id)
{
	for (struct expo *ex = kn_expos; ex; ex = ex->next)
		if (ex->id == id)
			return ex;
	return NULL;
}

/* Free ex once nothing refers to it (no pending get, no live apid). */
static void expo_maybe_free(struct expo *ex)
{
	if (ex == &kn_selfex || ex->pending || ex->napids)
		return;
	if (!ex->dead)
		expo_unlink(ex);
	close_watched(&ex->fd);
	close_watched(&ex->pidfd);
	free(ex->prem);
	free(ex);
}

static void prem_add(struct expo *ex, xpmem_segid_t segid, uint64_t size)
{
	if (ex->nprem == ex->cprem) {
		size_t c = ex->cprem ? ex->cprem * 2 : 4;
		struct prem *p = realloc(ex->prem, c * sizeof(*p));
		if (!p) {
			uxp_error("kernel: out of memory: a get racing the removal of segid %#llx "
				  "may not be told", (unsigned long long)segid);
			return;
		}
		ex->prem = p;
		ex->cprem = c;
	}
	ex->prem[ex->nprem++] = (struct prem){ segid, size };
}

static const struct prem *prem_find(const struct expo *ex, xpmem_segid_t segid)
{
	for (size_t i = 0; i < ex->nprem; i++)
		if (ex->prem[i].segid == segid)
			return &ex->prem[i];
	return NULL;
}

/* segid of exporter ex was removed. */
static void expo_removed(struct expo *ex, xpmem_segid_t segid, uint64_t size, struct evbuf *b)
{
	int n = revoke_apids(ex, segid, size, UXPMEM_REVOKE_REMOVED, b);
	uxp_debug("kernel: segid %#llx removed by pid %d: %d apid(s) revoked",
		  (unsigned long long)segid, (int)ex->tgid, n);
	if (ex->pending)
		prem_add(ex, segid, size);
}

/* Exporter ex is gone (reason EXITED or ERROR): revoke all its apids.  ex
 * may be freed: the caller must not use it afterwards. */
static void expo_dead(struct expo *ex, int reason, struct evbuf *b)
{
	if (ex->dead)
		return;
	ex->dead = reason;
	expo_unlink(ex);
	close_watched(&ex->fd);
	close_watched(&ex->pidfd);
	int n = revoke_apids(ex, 0, 0, reason, b);
	uxp_debug("kernel: exporter pid %d %s: %d apid(s) revoked", (int)ex->tgid,
		  reason == UXPMEM_REVOKE_EXITED ? "exited" : "lost (ERROR)", n);
	expo_maybe_free(ex);
}

static int expo_gone(const struct expo *ex)
{
	if (ex->pidfd >= 0) {
		struct pollfd p = { ex->pidfd, POLLIN, 0 };
		return poll(&p, 1, 0) > 0;
	}
	return proc_gone(ex->tgid);
}

/* ---- the thread ------------------------------------------------------------ */

static void sconn_close(struct sconn *c)
{
	for (struct sconn **p = &kn_sconns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	close_watched(&c->fd);
	free(c);
}

static void accept_all(void)
{
	while (kn_listen >= 0) {
		int fd = accept4(kn_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && kn_spare >= 0) {
				/* take the connection off the backlog and close it: the
				 * importer reports ERROR rather than wait forever */
				close(kn_spare);
				fd = accept4(kn_listen, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				kn_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
				uxp_warn("kernel: out of descriptors: an importer's notice connection closed");
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				uxp_warn("kernel: accept: %s: no more notice connections", strerror(errno));
				close_watched(&kn_listen);
			}
			return;
		}
		struct sconn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->id = ++kn_next_id;
		c->fd = fd;
		c->next = kn_sconns;
		kn_sconns = c;
		watch(fd, TOKEN(c->id, K_SCONN));
	}
}

/* Exporter side: an importer's SUBSCRIBE (answered with SIZE), or it left. */
static void sconn_event(struct sconn *c)
{
	for (;;) {
		unsigned char buf[64];
		struct uxp_kn_msg m;
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			sconn_close(c); /* the importer closed (exited, released all, forked child) */
			return;
		}
		const char *bad = kn_parse(buf, n, &m);
		if (!bad && m.type != UXP_KN_SUBSCRIBE)
			bad = "not a SUBSCRIBE";
		if (bad) {
			uxp_debug("kernel: malformed notice from an importer (%s): closing its connection", bad);
			sconn_close(c);
			return;
		}
		struct srec *s = uxp_idtab_get(&kn_segs, (uint64_t)m.segid, NULL);
		if (!s)
			continue; /* removed: its REMOVED went first on this connection */
		struct uxp_kn_msg r = kn_msg(UXP_KN_SIZE, m.segid, s->length);
		if (send(c->fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(r))
			uxp_debug("kernel: size of segid %#llx not sent to an importer: %s",
				  (unsigned long long)m.segid, strerror(errno));
	}
}

/* Importer side: the exporter closed the connection.  Returns 1 if ex is
 * gone (freed). */
static int iconn_hup(struct expo *ex, struct evbuf *b)
{
	close_watched(&ex->fd);
	if (expo_gone(ex)) {
		expo_dead(ex, UXPMEM_REVOKE_EXITED, b);
		return 1;
	}
	ex->hup_ms = uxp_now_ms();
	uxp_debug("kernel: exporter pid %d closed its notice connection; waiting up to %d ms for "
		  "its exit", (int)ex->tgid, HUP_WAIT_MS);
	return 0;
}

/* Importer side: read everything the exporter sent.  Returns 1 if ex is
 * gone (freed). */
static int iconn_drain(struct expo *ex, struct evbuf *b)
{
	while (ex->fd >= 0) {
		unsigned char buf[64];
		struct uxp_kn_msg m;
		ssize_t n = recv(ex->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return iconn_hup(ex, b);
		const char *bad = kn_parse(buf, n, &m);
		if (!bad && m.type != UXP_KN_REMOVED && m.type != UXP_KN_SIZE)
			bad = "unknown type";
		if (!bad && uxp_kn_segid_tgid(m.segid) != ex->tgid)
			bad = "segid of another process";
		if (bad) {
			uxp_debug("kernel: malformed notice from exporter pid %d (%s)", (int)ex->tgid, bad);
			expo_dead(ex, UXPMEM_REVOKE_ERROR, b);
			return 1;
		}
		if (m.type == UXP_KN_REMOVED) {
			expo_removed(ex, m.segid, m.size, b);
		} else { /* SIZE: only the length */
			revoke_apids(ex, m.segid, m.size, 0, b);
			uxp_debug("kernel: segid %#llx is %llu bytes", (unsigned long long)m.segid,
				  (unsigned long long)m.size);
		}
	}
	return 0;
}

static void dispatch(const struct epoll_event *ev, struct evbuf *b)
{
	uint64_t id = ev->data.u64 >> 2;
	struct sconn *c;
	struct expo *ex;

	switch ((int)(ev->data.u64 & 3)) {
	case K_LISTEN:
		accept_all();
		break;
	case K_SCONN:
		for (c = kn_sconns; c && c->id != id; c = c->next)
			;
		if (c)
			sconn_event(c);
		break;
	case K_ICONN:
		if ((ex = expo_find(id)))
			iconn_drain(ex, b);
		break;
	case K_PIDFD:
		/* what it sent before exiting comes first (remove, then exit) */
		if ((ex = expo_find(id)) && !iconn_drain(ex, b))
			expo_dead(ex, UXPMEM_REVOKE_EXITED, b);
		break;
	}
}

/* Connections closed HUP_WAIT_MS ago without an exit: ERROR.  Returns the
 * epoll timeout until the next look (-1: nothing to wait for). */
static int expire(struct evbuf *b)
{
	long long now = uxp_now_ms(), next = -1;
	for (struct expo *ex = kn_expos, *nx; ex; ex = nx) {
		nx = ex->next;
		if (!ex->hup_ms)
			continue;
		long long left = ex->hup_ms + HUP_WAIT_MS - now;
		if (ex->pidfd < 0 && expo_gone(ex)) /* no pidfd: /proc says */
			expo_dead(ex, UXPMEM_REVOKE_EXITED, b);
		else if (left <= 0)
			expo_dead(ex, expo_gone(ex) ? UXPMEM_REVOKE_EXITED : UXPMEM_REVOKE_ERROR, b);
		else {
			long long want = ex->pidfd < 0 && left > 10 ? 10 : left;
			if (next < 0 || want < next)
				next = want;
		}
	}
	return (int)next;
}

static void *kn_main(void *arg)
{
	int ep = (int)(intptr_t)arg, timeout = -1;
	struct epoll_event evs[32];
	for (;;) {
		int n = epoll_wait(ep, evs, (int)UXP_ARRAY_SIZE(evs), timeout);
		if (n < 0 && errno != EINTR) {
			uxp_error("kernel: notice thread: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		struct evbuf b = { 0 };
		pthread_mutex_lock(&kn_lock);
		for (int i = 0; i < n; i++)
			dispatch(&evs[i], &b);
		timeout = expire(&b);
		pthread_mutex_unlock(&kn_lock);
		ev_flush(&b);
	}
	return NULL;
}

/* Start the thread once; caller holds kn_lock. */
static int kn_thread(void)
{
	if (kn_ep >= 0)
		return 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return uxp_fail(errno, "kernel: epoll_create1: %s", strerror(errno));
	int ret = uxp_thread_start(kn_main, (void *)(intptr_t)ep, 256 * 1024);
	if (ret < 0) {
		close(ep);
		return uxp_fail(-ret, "kernel: cannot start the notice thread: %s", strerror(-ret));
	}
	kn_ep = ep;
	return 0;
}

/* ---- exporter side ---------------------------------------------------------- */

static void listen_start(pid_t tgid)
{
	struct sockaddr_un sun;
	socklen_t len = uxp_kn_addr(tgid, &sun);
	int ret = kn_thread();
	if (ret < 0) {
		uxp_warn("kernel: no revocation notices for importers: %s", strerror(-ret));
		return;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		uxp_warn("kernel: cannot listen on @%s: %s%s: importers get no REMOVED events, only "
			 "EXITED from their pidfd", sun.sun_path + 1, strerror(e),
			 e == EADDRINUSE ? " (another process holds the name)" : "");
		if (fd >= 0)
			close(fd);
		return;
	}
	kn_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	kn_listen = fd;
	watch(fd, TOKEN(0, K_LISTEN));
	uxp_debug("kernel: revocation notices on @%s", sun.sun_path + 1);
}

void uxp_kn_made(xpmem_segid_t segid, uintptr_t vaddr, size_t size)
{
	uintptr_t top = uxp_user_top();
	uint64_t length = vaddr >= top ? 0 : size > top - vaddr ? top - vaddr : size; /* the module clips */
	struct srec *s = malloc(sizeof(*s));

	pthread_mutex_lock(&kn_lock);
	kn_init();
	if (!kn_self)
		kn_self = uxp_kn_segid_tgid(segid);
	if (s) {
		s->length = length;
		if (uxp_idtab_insert(&kn_segs, (uint64_t)segid, s) < 0) {
			free(s);
			s = NULL;
		}
	}
	if (!s)
		uxp_debug("kernel: segid %#llx: size not recorded (events say length 0)",
			  (unsigned long long)segid);
	if (!kn_listen_tried) {
		kn_listen_tried = 1;
		listen_start(kn_self);
	}
	pthread_mutex_unlock(&kn_lock);
}

/* Send m to the connections in kn_wait as they drain, for at most
 * XPMEM_KERNEL_NOTICE_TIMEOUT_MS; close those still full.  Holds
 * kn_remove_lock only: the thread goes on serving. */
static void wait_and_send(const struct uxp_kn_msg *m)
{
	long ms = uxp_env_long("XPMEM_KERNEL_NOTICE_TIMEOUT_MS", REMOVE_WAIT_MS);
	if (ms <= 0)
		ms = REMOVE_WAIT_MS;
	long long end = uxp_now_ms() + ms;
	struct pollfd *p = calloc(kn_nwait, sizeof(*p));
	for (;;) {
		size_t k = 0;
		for (size_t i = 0; i < kn_nwait; i++)
			if (kn_wait[i] >= 0 && p)
				p[k++] = (struct pollfd){ kn_wait[i], POLLOUT, 0 };
		long long left = end - uxp_now_ms();
		if (!k || left <= 0 || poll(p, k, (int)left) < 0)
			break;
		for (size_t j = 0; j < k; j++) {
			if (!p[j].revents)
				continue;
			ssize_t n = send(p[j].fd, m, sizeof(*m), MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				continue;
			for (size_t i = 0; i < kn_nwait; i++) /* sent, or the importer is gone */
				if (kn_wait[i] == p[j].fd) {
					close(kn_wait[i]);
					kn_wait[i] = -1;
				}
		}
	}
	free(p);
	for (size_t i = 0; i < kn_nwait; i++) {
		if (kn_wait[i] < 0)
			continue;
		uxp_warn("kernel: remove of segid %#llx: an importer's notice queue stayed full for %ld ms: "
			 "closing its connection (it reports ERROR)", (unsigned long long)m->segid, ms);
		shutdown(kn_wait[i], SHUT_RDWR); /* the thread sees the hang-up and closes its fd */
		close(kn_wait[i]);
		kn_wait[i] = -1;
	}
	kn_nwait = 0;
}

void uxp_kn_removed(xpmem_segid_t segid)
{
	struct evbuf b = { 0 };
	int sent = 0;

	pthread_mutex_lock(&kn_remove_lock);
	pthread_mutex_lock(&kn_lock);
	kn_init();
	struct srec *s = uxp_idtab_remove(&kn_segs, (uint64_t)segid, NULL);
	uint64_t length = s ? s->length : 0;
	free(s);
	expo_removed(&kn_selfex, segid, length, &b); /* our own apids of it */
	struct uxp_kn_msg m = kn_msg(UXP_KN_REMOVED, segid, length);
	accept_all(); /* importers that connected before their GET must hear it */
	for (struct sconn *c = kn_sconns; c; c = c->next) {
		ssize_t n = send(c->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof(m)) {
			sent++;
			continue;
		}
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			continue; /* the importer is gone: the thread closes its connection */
		if (kn_nwait == kn_cwait) {
			size_t cap = kn_cwait ? kn_cwait * 2 : 8;
			int *w = realloc(kn_wait, cap * sizeof(*w));
			if (!w) {
				shutdown(c->fd, SHUT_RDWR);
				continue;
			}
			kn_wait = w;
			kn_cwait = cap;
		}
		int d = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
		if (d < 0)
			shutdown(c->fd, SHUT_RDWR); /* cannot wait for it: it reports ERROR */
		else
			kn_wait[kn_nwait++] = d;
	}
	uxp_debug("kernel: segid %#llx removed: REMOVED sent to %d importer(s), %zu full",
		  (unsigned long long)segid, sent, kn_nwait);
	pthread_mutex_unlock(&kn_lock);
	ev_flush(&b);
	if (kn_nwait)
		wait_and_send(&m);
	pthread_mutex_unlock(&kn_remove_lock);
}

/* ---- importer side ------------------------------------------------------------- */

/* A connection to tgid's notice socket whose peer is tgid, or -1. */
static int notice_connect(pid_t tgid)
{
	struct sockaddr_un sun;
	socklen_t len = uxp_kn_addr(tgid, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		uxp_debug("kernel: socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
		uxp_debug("kernel: exporter pid %d: no notice socket @%s (%s)", (int)tgid, sun.sun_path + 1,
			  strerror(errno));
		close(fd);
		return -1;
	}
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || cr.pid != tgid) {
		uxp_debug("kernel: exporter pid %d: notice socket @%s is served by pid %d: refusing it "
			  "(another process, or another pid namespace)", (int)tgid, sun.sun_path + 1,
			  crlen == sizeof(cr) ? (int)cr.pid : -1);
		close(fd);
		return -1;
	}
	return fd;
}

/* Watch exporter tgid: a verified connection and its pidfd, or its pidfd
 * alone.  NULL if neither. */
static struct expo *expo_new(pid_t tgid)
{
	int ret = kn_thread();
	if (ret < 0) {
		uxp_debug("kernel: exporter pid %d: no revocation events (%s)", (int)tgid, strerror(-ret));
		return NULL;
	}
	int fd = notice_connect(tgid), pidfd = -1;
	if (fd >= 0) {
		pidfd = kn_pidfd_open(tgid);
		if (pidfd < 0)
			uxp_debug("kernel: exporter pid %d: pidfd_open: %s (its exit is told by its socket "
				  "only)", (int)tgid, strerror(errno));
		/* still connected, so the pidfd is the exporter's, not a reused pid's */
		struct pollfd p = { fd, POLLRDHUP, 0 };
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			uxp_debug("kernel: exporter pid %d closed its notice socket already", (int)tgid);
			close(fd);
			if (pidfd >= 0)
				close(pidfd);
			return NULL;
		}
	} else if (!in_init_pidns()) {
		uxp_debug("kernel: exporter pid %d: not in the initial pid namespace, so no pidfd of the "
			  "global pid either: no revocation events for its segments", (int)tgid);
		return NULL;
	} else if ((pidfd = kn_pidfd_open(tgid)) < 0) {
		uxp_debug("kernel: exporter pid %d: pidfd_open: %s: no revocation events for its segments",
			  (int)tgid, strerror(errno));
		return NULL;
	} else {
		uxp_debug("kernel: exporter pid %d: no notices (it does not run uxpmem?): EXITED events only, "
			  "from its pidfd", (int)tgid);
	}
	struct expo *ex = calloc(1, sizeof(*ex));
	if (!ex) {
		if (fd >= 0)
			close(fd);
		if (pidfd >= 0)
			close(pidfd);
		return NULL;
	}
	ex->id = ++kn_next_id;
	ex->tgid = tgid;
	ex->fd = fd;
	ex->pidfd = pidfd;
	if (fd >= 0)
		watch(fd, TOKEN(ex->id, K_ICONN));
	if (pidfd >= 0)
		watch(pidfd, TOKEN(ex->id, K_PIDFD));
	ex->next = kn_expos;
	kn_expos = ex;
	return ex;
}

/* Is ex usable for a new get: not closed, not exited (maybe unread)? */
static int expo_alive(const struct expo *ex)
{
	struct pollfd p[2];
	int n = 0;
	if (ex->fd >= 0)
		p[n++] = (struct pollfd){ ex->fd, POLLRDHUP, 0 };
	if (ex->pidfd >= 0)
		p[n++] = (struct pollfd){ ex->pidfd, POLLIN, 0 };
	if (poll(p, (nfds_t)n, 0) <= 0)
		return 1;
	for (int i = 0; i < n; i++)
		if (p[i].revents & (POLLRDHUP | POLLHUP | POLLERR | (p[i].fd == ex->pidfd ? POLLIN : 0)))
			return 0;
	return 1;
}

void *uxp_kn_get_begin(xpmem_segid_t segid)
{
	pid_t tgid = uxp_kn_segid_tgid(segid);
	struct expo *ex = NULL;

	pthread_mutex_lock(&kn_lock);
	kn_init();
	if (tgid <= 0) {
		uxp_debug("kernel: segid %#llx names no process: no revocation events",
			  (unsigned long long)segid);
	} else if (kn_self && tgid == kn_self) {
		ex = &kn_selfex; /* our own segment: the remove revokes directly */
	} else {
		for (ex = kn_expos; ex; ex = ex->next) {
			if (ex->tgid != tgid || ex->stale || ex->hup_ms)
				continue;
			if (expo_alive(ex))
				break;
			ex->stale = 1; /* the thread will revoke its apids */
			uxp_debug("kernel: exporter pid %d is going away: watching pid %d anew", (int)tgid,
				  (int)tgid);
		}
		if (!ex)
			ex = expo_new(tgid);
	}
	if (ex)
		ex->pending++;
	pthread_mutex_unlock(&kn_lock);
	return ex;
}

void uxp_kn_get_end(void *ticket, xpmem_segid_t segid, xpmem_apid_t apid)
{
	struct expo *ex = ticket;
	struct evbuf b = { 0 };
	if (!ex)
		return;
	pthread_mutex_lock(&kn_lock);
	ex->pending--;
	if (apid > 0) {
		/* before anything can revoke it (the API edge adds it again) */
		uxp_revoke_apid_added(apid);
		struct arec *r = calloc(1, sizeof(*r));
		if (r) {
			r->apid = apid;
			r->segid = segid;
		}
		if (!r || uxp_idtab_insert(&kn_apids, (uint64_t)apid, r) < 0) {
			uxp_warn("kernel: apid %#llx: not tracked, no revocation events for it",
				 (unsigned long long)apid);
			free(r);
		} else {
			const struct prem *pr = prem_find(ex, segid);
			int why = ex->dead ? ex->dead : pr ? UXPMEM_REVOKE_REMOVED : 0;
			if (ex == &kn_selfex) {
				struct srec *s = uxp_idtab_get(&kn_segs, (uint64_t)segid, NULL);
				r->length = s ? s->length : 0;
			}
			if (pr && pr->size)
				r->length = pr->size;
			if (why) { /* removed or gone while the GET was in flight */
				ev_push(&b, r, why);
				uxp_debug("kernel: apid %#llx revoked as soon as got (segid %#llx)",
					  (unsigned long long)apid, (unsigned long long)segid);
			} else {
				arec_link(ex, r);
				if (ex->fd >= 0) {
					struct uxp_kn_msg m = kn_msg(UXP_KN_SUBSCRIBE, segid, 0);
					if (send(ex->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) !=
					    (ssize_t)sizeof(m))
						uxp_debug("kernel: SUBSCRIBE of segid %#llx not sent (%s): events "
							  "may say length 0", (unsigned long long)segid,
							  strerror(errno));
				}
			}
		}
	}
	if (!ex->pending) {
		free(ex->prem);
		ex->prem = NULL;
		ex->nprem = ex->cprem = 0;
	}
	expo_maybe_free(ex);
	pthread_mutex_unlock(&kn_lock);
	ev_flush(&b);
}

void uxp_kn_released(xpmem_apid_t apid)
{
	pthread_mutex_lock(&kn_lock);
	if (kn_inited) {
		struct arec *r = uxp_idtab_remove(&kn_apids, (uint64_t)apid, NULL);
		if (r && r->ex) {
			struct expo *ex = r->ex;
			arec_unlink(r);
			expo_maybe_free(ex);
		}
		free(r);
	}
	pthread_mutex_unlock(&kn_lock);
}

/* ---- fork ------------------------------------------------------------------------ */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void uxp_kn_fork_child(void)
{
	/* Single-threaded; the parent's thread, connections, segments and
	 * apids are not ours.  Only close: the epoll set is the parent's too
	 * (no EPOLL_CTL_DEL), and closing a copy leaves the parent's sockets. */
	pthread_mutex_init(&kn_lock, NULL);
	pthread_mutex_init(&kn_remove_lock, NULL);
	close_fd(&kn_ep);
	close_fd(&kn_listen);
	close_fd(&kn_spare);
	for (struct sconn *c = kn_sconns, *n; c; c = n) {
		n = c->next;
		close(c->fd);
		free(c);
	}
	kn_sconns = NULL;
	for (struct expo *ex = kn_expos, *n; ex; ex = n) {
		n = ex->next;
		close_fd(&ex->fd);
		close_fd(&ex->pidfd);
		free(ex->prem);
		free(ex);
	}
	kn_expos = NULL;
	free(kn_selfex.prem);
	memset(&kn_selfex, 0, sizeof(kn_selfex));
	kn_selfex.fd = kn_selfex.pidfd = -1;
	for (size_t i = 0; i < kn_nwait; i++)
		close_fd(&kn_wait[i]);
	kn_nwait = 0;
	if (kn_inited) {
		uxp_idtab_reset_after_fork(&kn_apids, free);
		uxp_idtab_reset_after_fork(&kn_segs, free);
	}
	kn_self = 0;
	kn_listen_tried = 0;
	kn_initns = -1;
}
