/* rvtest.c - see rvtest.h (the peer driving pattern of tests/shm/shmtest.c) */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "rvtest.h"

#define PEER_TIMEOUT_MS 15000

void rv_init(void)
{
	setenv("XPMEM_TRANSPORT", "shm", 1);
	signal(SIGPIPE, SIG_IGN);
}

int rv_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rv_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void rv_start(struct rvp *p, int arena)
{
	char path[4096], lib[4096];
	struct stat st;
	int in[2], out[2];

	memset(p, 0, sizeof(*p));
	tu_builddir_path("tests/revoke/rvpeer", path, sizeof(path));
	ck_assert_msg(access(path, X_OK) == 0, "peer program %s missing: %s", path, strerror(errno));
	tu_builddir_path("transports/shm/arena/.libs/libuxpmem-arena.so", lib, sizeof(lib));
	if (arena)
		ck_assert_msg(stat(lib, &st) == 0, "arena preload %s is not built: this test needs "
			      "arena memory in the exporter", lib);
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (arena)
			setenv("LD_PRELOAD", lib, 1);
		else
			unsetenv("LD_PRELOAD");
		setenv("XPMEM_TRANSPORT", "shm", 1);
		execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->pid = pid;
	p->to = in[1];
	p->from = out[0];
	long long v;
	rv_ok(p, &v, 1, "hello");
	ck_assert_int_eq(v, pid);
}

static const char *read_line(struct rvp *p, const char *what)
{
	long long deadline = now_ms() + PEER_TIMEOUT_MS;
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
		long long left = deadline - now_ms();
		ck_assert_msg(left > 0, "peer %d did not answer '%s' within %d ms", (int)p->pid, what,
			      PEER_TIMEOUT_MS);
		struct pollfd pfd = { p->from, POLLIN, 0 };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		ck_assert_msg(p->have < sizeof(p->buf) - 1, "peer reply too long");
		ssize_t n = read(p->from, p->buf + p->have, sizeof(p->buf) - 1 - p->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int st = tu_wait_child(p->pid, 2000);
			ck_abort_msg("peer %d died while answering '%s' (status %#x: %s %d)", (int)p->pid,
				     what, st, WIFSIGNALED(st) ? "signal" : "exit",
				     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		}
		p->have += (size_t)n;
	}
}

static const char *vcmd(struct rvp *p, const char *fmt, va_list ap)
{
	char cmd[1024];
	int n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	ck_assert(n > 0 && n < (int)sizeof(cmd) - 1);
	cmd[n++] = '\n';
	cmd[n] = 0;
	ck_assert_msg(tu_write_all(p->to, cmd, (size_t)n) == 0, "cannot send '%s' to peer %d: %s", fmt,
		      (int)p->pid, strerror(errno));
	cmd[n - 1] = 0;
	static char what[1024];
	snprintf(what, sizeof(what), "%s", cmd);
	return read_line(p, what);
}

const char *rv_cmd(struct rvp *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *r = vcmd(p, fmt, ap);
	va_end(ap);
	return r;
}

long long rv_ok(struct rvp *p, long long *v, int nv, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	const char *r = rv_cmd(p, "%s", cmd);
	ck_assert_msg(strncmp(r, "ok", 2) == 0 && (r[2] == 0 || r[2] == ' '),
		      "peer %d: '%s' answered '%s' (want ok)", (int)p->pid, cmd, r);
	long long first = 0;
	const char *s = r + 2;
	for (int i = 0;; i++) {
		char *end;
		errno = 0;
		long long x = strtoll(s, &end, 0);
		if (end == s)
			break;
		if (i == 0)
			first = x;
		if (v && i < nv)
			v[i] = x;
		s = end;
	}
	return first;
}

int rv_err(struct rvp *p, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	const char *r = rv_cmd(p, "%s", cmd);
	int e = 0;
	ck_assert_msg(sscanf(r, "err %d", &e) == 1, "peer %d: '%s' answered '%s' (want err)",
		      (int)p->pid, cmd, r);
	return e;
}

void rv_ev(struct rvp *p, const char *tag, int i, struct rvev *ev)
{
	const char *r = rv_cmd(p, "ev %s %d", tag, i);
	memset(ev, 0, sizeof(*ev));
	ck_assert_msg(sscanf(r, "ok %llu %d %lld %lld %lx %zu %lld %zu %lld %d", &ev->seq, &ev->reason,
			     &ev->apid, &ev->segid, &ev->addr, &ev->size, &ev->offset, &ev->length,
			     &ev->t_ns, &ev->probe) == 10,
		      "peer %d has no event %d of '%s': '%s'", (int)p->pid, i, tag, r);
}

int rv_count(struct rvp *p, const char *tag)
{
	return (int)rv_ok(p, NULL, 0, "count %s", tag);
}

void rv_stop(struct rvp *p)
{
	if (p->pid <= 0)
		return;
	rv_ok(p, NULL, 0, "exit");
	int st = tu_wait_child(p->pid, 10000);
	ck_assert_msg(st != -1, "peer %d did not exit within 10 s", (int)p->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer %d exit status %#x", (int)p->pid, st);
	close(p->to);
	close(p->from);
	p->pid = 0;
}

void rv_kill(struct rvp *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	tu_wait_child(p->pid, 10000);
	close(p->to);
	close(p->from);
	p->pid = 0;
}
