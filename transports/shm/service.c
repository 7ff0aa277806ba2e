/* service.c - the shm transport's service thread and its connections.
 *
 * One thread per process (started lazily, all signals blocked, restarted
 * lazily in a forked child) waits in epoll on the listening socket and on
 * every connection.  It is the only reader of connections: replies are
 * handed to the waiting application thread by sequence number; requests
 * and events go to exporter.c / importer.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "shm.h"

struct uxp_waiter {
	uint64_t seq;
	pthread_cond_t cond;
	int done;
	int status;
	struct uxp_msgbuf *reply; /* the caller's */
	int *fds;                 /* UXP_MAX_FDS slots, the caller's */
	unsigned nfds;
	struct uxp_waiter *next;
};

static void close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static pthread_mutex_t svc_lock = PTHREAD_MUTEX_INITIALIZER;
static int svc_epfd = -1;
static int svc_listen_fd = -1;
static pid_t svc_listen_pid;         /* who created a filesystem socket */
static char svc_listen_path[108];
static struct uxp_conn *svc_conns;   /* registry, under svc_lock */
static uint64_t svc_seq;             /* atomic */
static char listen_marker;           /* epoll tag of the listening socket */

void uxp_conn_get(struct uxp_conn *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void uxp_conn_put(struct uxp_conn *c)
{
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(c->fd);
		pthread_mutex_destroy(&c->lock);
		free(c->peer_groups);
		free(c);
	}
}

/* The socket of process pid: "uxpmem.PID", or with a suffix the name it
 * fell back to because another process had bound that one. */
socklen_t uxp_svc_addr(pid_t pid, const char *suffix, void *sa)
{
	struct sockaddr_un *sun = sa;
	const char *dir = uxp_env("XPMEM_SHM_SOCKET_DIR");
	const char *dot = suffix ? "." : "";

	suffix = suffix ? suffix : "";
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (dir) {
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/uxpmem.%d%s%s.sock", dir, (int)pid, dot,
			 suffix);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1);
	}
	/* abstract namespace: no file to clean up, reachable in this netns */
	int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "uxpmem.%d%s%s", (int)pid, dot,
			 suffix);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* ---- a squatted name ------------------------------------------------------
 * Anyone can bind "uxpmem.PID" before process PID does (abstract names have
 * no owner).  Importers never talk to such an impostor (SO_PEERCRED), and
 * the exporter then listens on "uxpmem.PID.<random>" and advertises the
 * random part in its service thread's name ("uxp" + 12 hex digits, in
 * /proc/PID/task/TID/comm): only a thread of process PID can set that. */
#define ADVERT_PREFIX "uxp"
#define ADVERT_HEX 12

static pthread_t svc_thread;

static int random_suffix(char *out)
{
	unsigned char r[ADVERT_HEX / 2];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	for (unsigned i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

static int is_advert(const char *comm, char *suffix)
{
	size_t lp = strlen(ADVERT_PREFIX);
	if (strncmp(comm, ADVERT_PREFIX, lp) != 0 || strspn(comm + lp, "0123456789abcdef") != ADVERT_HEX)
		return 0;
	memcpy(suffix, comm + lp, ADVERT_HEX);
	suffix[ADVERT_HEX] = '\0';
	return 1;
}

/* The suffix process pid advertises, if any (0 and suffix[] set). */
static int advertised_suffix(pid_t pid, char *suffix)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -ENOENT;
	int ret = -ENOENT;
	struct dirent *e;
	while (ret < 0 && (e = readdir(d))) {
		char comm[32];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/comm", (int)pid, e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, comm, sizeof(comm) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		comm[n] = '\0';
		comm[strcspn(comm, "\n")] = '\0';
		if (is_advert(comm, suffix))
			ret = 0;
	}
	closedir(d);
	return ret;
}

static int peer_creds(int fd, struct uxp_conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	c->peer_pid = cr.pid;
	c->peer_uid = cr.uid;
	c->peer_gid = cr.gid;
	return 0;
}

/* The importer's supplementary groups, for the group bits of a mode as the
 * kernel XPMEM checks them (in_group_p). */
static void peer_groups(int fd, struct uxp_conn *c)
{
	socklen_t len = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 && errno != ERANGE)
		return;
	if (len == 0 || !(c->peer_groups = malloc(len)))
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->peer_groups, &len) < 0) {
		free(c->peer_groups);
		c->peer_groups = NULL;
		return;
	}
	c->npeer_groups = (int)(len / sizeof(gid_t));
}

static struct uxp_conn *conn_new(int fd, enum uxp_conn_role role)
{
	struct uxp_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->role = role;
	c->refs = 1; /* the service thread's, dropped when it closes c */
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

/* Register c with the service thread; caller holds svc_lock. */
static int conn_register(struct uxp_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (epoll_ctl(svc_epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return -errno;
	c->next = svc_conns;
	svc_conns = c;
	return 0;
}

static void conn_unregister(struct uxp_conn *c)
{
	pthread_mutex_lock(&svc_lock);
	for (struct uxp_conn **p = &svc_conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	pthread_mutex_unlock(&svc_lock);
}

/* Fail every pending request of c. */
static void fail_waiters(struct uxp_conn *c, int status)
{
	pthread_mutex_lock(&c->lock);
	for (struct uxp_waiter *w = c->waiters; w; w = w->next) {
		w->done = 1;
		w->status = status;
		pthread_cond_signal(&w->cond);
	}
	c->waiters = NULL;
	pthread_mutex_unlock(&c->lock);
}

void uxp_conn_disconnect(struct uxp_conn *c, const char *why)
{
	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return;
	uxp_warn("shm: disconnecting pid %d: %s", (int)c->peer_pid, why);
	/* not torn down here: the service thread sees the hang-up and does it
	 * (conn_close), as for a peer that closed */
	shutdown(c->fd, SHUT_RDWR);
}

/* Service thread: the peer is gone (or misbehaved); tear c down. */
static void conn_close(struct uxp_conn *c, const char *why, int error)
{
	c->close_error = error;
	if (__atomic_exchange_n(&c->dead, 1, __ATOMIC_ACQ_REL))
		return;
	uxp_debug("shm: connection with pid %d closed: %s", (int)c->peer_pid, why);
	epoll_ctl(svc_epfd, EPOLL_CTL_DEL, c->fd, NULL);
	shutdown(c->fd, SHUT_RDWR); /* wakes blocked senders; fd closed on last put */
	fail_waiters(c, -ENOENT);
	if (c->role == UXP_CONN_FROM_IMPORTER)
		uxp_exp_conn_closed(c);
	else
		uxp_imp_conn_closed(c, error);
	conn_unregister(c);
	uxp_conn_put(c);
}

static void deliver_reply(struct uxp_conn *c, const struct uxp_msgbuf *b, const int *fds,
			  unsigned nfds)
{
	const struct uxp_msg *m = &b->m;
	struct uxp_waiter *w, **p;

	pthread_mutex_lock(&c->lock);
	for (p = &c->waiters; (w = *p); p = &w->next)
		if (w->seq == m->seq)
			break;
	if (w) {
		*p = w->next;
		memcpy(w->reply, b, sizeof(b->m) + m->count * sizeof(b->piece[0]));
		memcpy(w->fds, fds, nfds * sizeof(int));
		w->nfds = nfds;
		w->status = 0;
		w->done = 1;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&c->lock);
	if (w)
		return;
	/* Late reply to a request that timed out: give the grant back. */
	uxp_debug("shm: late reply seq %llu from pid %d dropped",
		  (unsigned long long)m->seq, (int)c->peer_pid);
	close_fds(fds, nfds);
	if (m->type == UXP_MSG_GET_REPLY && m->status == 0 && m->grant) {
		struct uxp_msg rel;
		uxp_msg_init(&rel, UXP_MSG_RELEASE);
		rel.grant = m->grant;
		uxp_msg_send(c->fd, &rel, -1, MSG_DONTWAIT);
	}
}

/* Which side may send a message type. */
static int sent_by_importer(unsigned type)
{
	return type == UXP_MSG_GET || type == UXP_MSG_RELEASE || type == UXP_MSG_REVOKE_ACK ||
	       type == UXP_MSG_RESOLVE || type == UXP_MSG_INVALIDATE_ACK;
}

static void dispatch(struct uxp_conn *c, const struct uxp_msgbuf *b, const int *fds, unsigned nfds)
{
	if (c->role == UXP_CONN_FROM_IMPORTER)
		uxp_exp_handle(c, &b->m); /* decode guarantees no descriptor here */
	else if (b->m.type == UXP_MSG_GET_REPLY || b->m.type == UXP_MSG_RESOLVE_REPLY)
		deliver_reply(c, b, fds, nfds);
	else
		uxp_imp_handle(c, &b->m);
}

static void conn_event(struct uxp_conn *c)
{
	for (;;) {
		struct uxp_msgbuf b;
		int fds[UXP_MAX_FDS];
		unsigned nfds;
		int r = uxp_msg_recv(c->fd, &b, fds, &nfds);
		if (r == -EAGAIN)
			return;
		if (r == 0 || r == -ECONNRESET) {
			conn_close(c, "peer closed", 0);
			return;
		}
		if (r < 0) {
			uxp_warn("shm: dropping connection with pid %d: %s", (int)c->peer_pid,
				 r == -EBADMSG ? "malformed message" : r == -EPROTO ? "protocol version mismatch"
				 : strerror(-r));
			conn_close(c, "error", 1);
			return;
		}
		if ((c->role == UXP_CONN_FROM_IMPORTER) != sent_by_importer(b.m.type)) {
			close_fds(fds, nfds);
			uxp_warn("shm: dropping connection with pid %d: message %u in the wrong direction",
				 (int)c->peer_pid, b.m.type);
			conn_close(c, "protocol error", 1);
			return;
		}
		dispatch(c, &b, fds, nfds);
		if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
			return;
	}
}

/* Out of descriptors, a pending connection keeps the listening socket
 * readable and epoll would spin: give up the spare descriptor to accept it,
 * close it at once, and take the spare back. */
static int svc_spare_fd = -1;

/* Returns 1 if a pending connection was shed, 0 if none was pending (accept4
 * fails with EMFILE before it looks at the queue). */
static int shed_connection(void)
{
	static time_t last_warned;
	if (svc_spare_fd >= 0)
		close(svc_spare_fd);
	int fd = accept4(__atomic_load_n(&svc_listen_fd, __ATOMIC_ACQUIRE), NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	svc_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	time_t now = time(NULL);
	if (fd >= 0 && now != last_warned) {
		last_warned = now;
		uxp_warn("shm: out of descriptors: refusing importers");
	}
	return fd >= 0;
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(__atomic_load_n(&svc_listen_fd, __ATOMIC_ACQUIRE), NULL, NULL,
				 SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				if (shed_connection())
					continue;
				return;
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				uxp_warn("shm: accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		struct uxp_conn *c = conn_new(fd, UXP_CONN_FROM_IMPORTER);
		if (!c || peer_creds(fd, c) < 0) {
			free(c);
			close(fd);
			continue;
		}
		peer_groups(fd, c);
		pthread_mutex_lock(&svc_lock);
		int ret = conn_register(c);
		pthread_mutex_unlock(&svc_lock);
		if (ret < 0)
			uxp_conn_put(c);
		else
			uxp_debug("shm: importer pid %d uid %d connected", (int)c->peer_pid, (int)c->peer_uid);
	}
}

static void *svc_main(void *arg)
{
	int ep = (int)(intptr_t)arg;
	struct epoll_event evs[32];

	uxp_conv_exclude_self(); /* never frozen: it carries invalidation acks */
	for (;;) {
		int n = epoll_wait(ep, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			uxp_error("shm: service thread: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &listen_marker)
				accept_all();
			else
				conn_event(evs[i].data.ptr);
		}
	}
}

int uxp_svc_ensure(void)
{
	int ret = 0;
	pthread_mutex_lock(&svc_lock);
	if (svc_epfd < 0) {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		if (ep < 0) {
			ret = uxp_fail(errno, "shm: epoll_create1: %s", strerror(errno));
			goto out;
		}
		ret = uxp_thread_start_id(svc_main, (void *)(intptr_t)ep, 256 * 1024, &svc_thread);
		if (ret < 0) {
			close(ep);
			ret = uxp_fail(-ret, "shm: cannot start the service thread: %s", strerror(-ret));
			goto out;
		}
		svc_epfd = ep;
	}
out:
	pthread_mutex_unlock(&svc_lock);
	return ret;
}

static void unlink_listen_path(void)
{
	if (svc_listen_path[0] && svc_listen_pid == getpid())
		unlink(svc_listen_path);
}

int uxp_svc_listen(void)
{
	struct sockaddr_un sun;
	int ret = uxp_svc_ensure();
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&svc_lock);
	if (svc_listen_fd >= 0)
		goto out;
	socklen_t len = uxp_svc_addr(getpid(), NULL, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = uxp_fail(errno, "shm: socket: %s", strerror(errno));
		goto out;
	}
	if (sun.sun_path[0])
		unlink(sun.sun_path); /* left by a dead process with our pid */
	int bound = bind(fd, (struct sockaddr *)&sun, len) == 0;
	char suffix[ADVERT_HEX + 1], name[16];
	if (!bound && errno == EADDRINUSE && random_suffix(suffix) == 0) {
		uxp_warn("shm: %s%s is bound by another process: listening on a name of our own, "
			 "advertised in the service thread's name", sun.sun_path[0] ? "" : "@",
			 sun.sun_path[0] ? sun.sun_path : sun.sun_path + 1);
		len = uxp_svc_addr(getpid(), suffix, &sun);
		snprintf(name, sizeof(name), "%s%s", ADVERT_PREFIX, suffix);
		bound = bind(fd, (struct sockaddr *)&sun, len) == 0 &&
			pthread_setname_np(svc_thread, name) == 0;
	}
	if (!bound || listen(fd, 4096) < 0) {
		ret = -errno;
		uxp_error("shm: cannot listen on %s%s: %s", sun.sun_path[0] ? "" : "@",
			  sun.sun_path[0] ? sun.sun_path : sun.sun_path + 1, strerror(errno));
		close(fd);
		goto out;
	}
	if (sun.sun_path[0]) {
		/* access control is SO_PEERCRED against the segment's mode */
		chmod(sun.sun_path, 0777);
		snprintf(svc_listen_path, sizeof(svc_listen_path), "%s", sun.sun_path);
		svc_listen_pid = getpid();
		static int registered;
		if (!registered++)
			atexit(unlink_listen_path);
	}
	if (svc_spare_fd < 0)
		svc_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* Published before the service thread can see the socket's first event
	 * (it reads svc_listen_fd without svc_lock). */
	__atomic_store_n(&svc_listen_fd, fd, __ATOMIC_RELEASE);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_marker };
	if (epoll_ctl(svc_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = uxp_fail(errno, "shm: epoll_ctl: %s", strerror(errno));
		__atomic_store_n(&svc_listen_fd, -1, __ATOMIC_RELAXED);
		close(fd);
		goto out;
	}
out:
	pthread_mutex_unlock(&svc_lock);
	return ret;
}

static struct uxp_conn *cached_conn(pid_t pid)
{
	for (struct uxp_conn *c = svc_conns; c; c = c->next)
		if (c->role == UXP_CONN_TO_EXPORTER && c->peer_pid == pid &&
		    !__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) {
			uxp_conn_get(c);
			return c;
		}
	return NULL;
}

/* A connection to the socket of pid, served by pid itself (never talk to
 * an impostor that bound the name). */
static int connect_name(pid_t pid, const char *suffix, int *out)
{
	struct sockaddr_un sun;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	socklen_t len = uxp_svc_addr(pid, suffix, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return uxp_fail(errno, "shm: socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
		int e = errno;
		close(fd);
		return uxp_fail(ENOENT, "shm: no exporter process %d (%s)%s", (int)pid, strerror(e),
				sun.sun_path[0] ? "" : ": not running, or in another network "
				"namespace (its abstract socket is out of reach: a node id of its own)");
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || cr.pid != pid) {
		uxp_warn("shm: socket of pid %d is served by pid %d (uid %d): refusing", (int)pid,
			 (int)cr.pid, (int)cr.uid);
		close(fd);
		return -ENOENT;
	}
	*out = fd;
	return 0;
}

static int connect_to(pid_t pid, int *out)
{
	char suffix[ADVERT_HEX + 1];
	int ret = connect_name(pid, NULL, out);
	if (ret == 0 || advertised_suffix(pid, suffix) < 0)
		return ret;
	uxp_debug("shm: pid %d listens on the name it advertises (.%s)", (int)pid, suffix);
	return connect_name(pid, suffix, out);
}

int uxp_svc_connect(pid_t pid, struct uxp_conn **out)
{
	int ret = uxp_svc_ensure();
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&svc_lock);
	struct uxp_conn *c = cached_conn(pid);
	if (c)
		goto out;
	int fd = -1;
	ret = connect_to(pid, &fd);
	if (ret < 0)
		goto out;
	c = conn_new(fd, UXP_CONN_TO_EXPORTER);
	if (!c) {
		close(fd);
		ret = -ENOMEM;
		goto out;
	}
	ret = peer_creds(fd, c); /* the pid was checked in connect_name */
	if (ret == 0)
		ret = conn_register(c);
	if (ret < 0) {
		uxp_conn_put(c);
		c = NULL;
		goto out;
	}
	uxp_conn_get(c); /* the caller's */
out:
	pthread_mutex_unlock(&svc_lock);
	*out = c;
	return c ? 0 : ret;
}

int uxp_svc_request(struct uxp_conn *c, struct uxp_msg *req, struct uxp_msgbuf *reply, int *fds,
		    unsigned *nfds)
{
	struct uxp_waiter w = { .reply = reply, .fds = fds };
	pthread_condattr_t ca;
	struct timespec deadline;
	long ms = uxp_timeout_ms("XPMEM_SHM_TIMEOUT_MS", 10000);

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	w.seq = req->seq = __atomic_add_fetch(&svc_seq, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&c->lock);
	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&c->lock);
		pthread_cond_destroy(&w.cond);
		return uxp_fail(ENOENT, "shm: exporter pid %d is gone", (int)c->peer_pid);
	}
	w.next = c->waiters;
	c->waiters = &w;
	pthread_mutex_unlock(&c->lock);

	uxp_deadline(&deadline, ms);
	int ret = uxp_msg_send_within(c->fd, req, -1, ms);
	pthread_mutex_lock(&c->lock);
	while (ret == 0 && !w.done)
		if (pthread_cond_timedwait(&w.cond, &c->lock, &deadline) == ETIMEDOUT)
			ret = -ETIMEDOUT;
	if (!w.done) /* still queued: unlink */
		for (struct uxp_waiter **p = &c->waiters; *p; p = &(*p)->next)
			if (*p == &w) {
				*p = w.next;
				break;
			}
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w.cond);

	if (ret < 0)
		return uxp_fail(ret == -ETIMEDOUT ? ETIMEDOUT : ENOENT,
				"shm: request to pid %d failed: %s", (int)c->peer_pid, strerror(-ret));
	if (w.status < 0)
		return uxp_fail(-w.status, "shm: exporter pid %d went away during the request",
				(int)c->peer_pid);
	*nfds = w.nfds;
	return 0;
}

void uxp_svc_fork_child(void)
{
	/* The service thread does not exist here; drop its descriptors (the
	 * parent keeps its own) and free the connections.  Objects of
	 * importer.c/exporter.c referring to them are dropped by their own
	 * fork handlers without touching them. */
	for (struct uxp_conn *c = svc_conns, *next; c; c = next) {
		next = c->next;
		close(c->fd);
		free(c);
	}
	svc_conns = NULL;
	if (svc_listen_fd >= 0)
		close(svc_listen_fd);
	if (svc_epfd >= 0)
		close(svc_epfd);
	if (svc_spare_fd >= 0)
		close(svc_spare_fd);
	svc_listen_fd = svc_epfd = svc_spare_fd = -1;
	svc_listen_path[0] = '\0';
	pthread_mutex_init(&svc_lock, NULL);
}
