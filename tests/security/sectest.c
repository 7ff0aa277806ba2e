/* sectest.c - see sectest.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "sectest.h"

int sec_need_root(const char *what)
{
	if (getuid() != 0) {
		fprintf(stderr, "SKIP: %s needs root\n", what);
		return 0;
	}
	return 1;
}

int sec_become(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return -1;
	return getuid() == uid && geteuid() == uid ? 0 : -1;
}

static socklen_t addr_of(pid_t pid, struct sockaddr_un *sun)
{
	const char *dir = getenv("XPMEM_SHM_SOCKET_DIR");
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (dir && *dir) {
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/uxpmem.%d.sock", dir, (int)pid);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1);
	}
	int n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1, "uxpmem.%d", (int)pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int sec_connect(pid_t pid)
{
	struct sockaddr_un sun;
	socklen_t len = addr_of(pid, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int sec_listen(pid_t pid)
{
	struct sockaddr_un sun;
	socklen_t len = addr_of(pid, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, len) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int sec_send_raw(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EMSGSIZE;
}

int sec_send(int fd, const struct uxp_msg *m)
{
	return sec_send_raw(fd, m, sizeof(*m));
}

long sec_recv(int fd, struct uxp_msg *m, int *fds, int *nfds, int ms)
{
	char buf[sizeof(*m) + 64];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(16 * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	struct pollfd p = { fd, POLLIN, 0 };
	*nfds = 0;
	int r = poll(&p, 1, ms);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int d;
			memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < 4 && fds)
				fds[*nfds] = d;
			else
				close(d);
			(*nfds)++;
		}
	}
	memset(m, 0, sizeof(*m));
	memcpy(m, buf, (size_t)n < sizeof(*m) ? (size_t)n : sizeof(*m));
	return (long)n;
}

void sec_get_msg(struct uxp_msg *m, int64_t segid, uint32_t flags, uint64_t seq)
{
	uxp_msg_init(m, UXP_MSG_GET);
	m->segid = segid;
	m->flags = flags;
	m->seq = seq;
}

pid_t sec_spawn(long uid, sec_fn fn, void *arg, int *rfd)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sec_res r;
		memset(&r, 0, sizeof(r));
		close(p[0]);
		alarm(tu_guard_s(50));
		if (uid >= 0 && sec_become((uid_t)uid, (gid_t)uid) < 0) {
			r.v[31] = -1;
		} else {
			fn(arg, &r);
		}
		tu_write_all(p[1], &r, sizeof(r));
		_exit(0);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

void sec_collect(pid_t pid, int rfd, struct sec_res *r, int ms)
{
	struct pollfd p = { rfd, POLLIN, 0 };
	ms = tu_guard_ms(ms);
	int ok = poll(&p, 1, ms) == 1 && tu_read_all(rfd, r, sizeof(*r)) == 0;
	close(rfd);
	int st = tu_wait_child(pid, 5000);
	ck_assert_msg(ok, "child %d reported nothing within %d ms (status %#x)", (int)pid, ms, st);
	ck_assert_msg(r->v[31] != -1, "child %d could not change uid", (int)pid);
}

long sec_cpu_ticks(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

int sec_count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int sec_count_arena_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], link[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(path, link, sizeof(link) - 1);
		if (k > 0) {
			link[k] = 0;
			if (strstr(link, "uxpmem-arena"))
				n++;
		}
	}
	closedir(d);
	return n;
}

void sec_peer_send(struct peer *p, const char *line)
{
	ck_assert_int_eq(tu_write_all(p->to, line, strlen(line)), 0);
}

const char *sec_peer_line(struct peer *p, int ms)
{
	long long end = st_now_ms() + tu_guard_ms(ms);
	for (;;) {
		char *nl = memchr(p->buf, '\n', p->have);
		if (nl) {
			size_t n = (size_t)(nl - p->buf);
			memcpy(p->line, p->buf, n);
			p->line[n] = 0;
			memmove(p->buf, nl + 1, p->have - n - 1);
			p->have -= n + 1;
			return p->line;
		}
		long long left = end - st_now_ms();
		ck_assert_msg(left > 0, "peer %d did not answer within %d ms", (int)p->pid, ms);
		struct pollfd pfd = { p->from, POLLIN, 0 };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(p->from, p->buf + p->have, sizeof(p->buf) - 1 - p->have);
		ck_assert_msg(n > 0 || (n < 0 && errno == EINTR), "peer %d died", (int)p->pid);
		if (n > 0)
			p->have += (size_t)n;
	}
}
