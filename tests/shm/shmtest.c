/* shmtest.c - see shmtest.h */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "shmtest.h"

#define PEER_TIMEOUT_MS 10000

void st_init(void)
{
	setenv("XPMEM_TRANSPORT", "shm", 1);
	signal(SIGPIPE, SIG_IGN);
}

int st_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

long long st_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void st_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *st_arena_lib(char *buf, size_t len)
{
	struct stat st;
	tu_builddir_path("transports/shm/arena/.libs/libuxpmem-arena.so", buf, len);
	return stat(buf, &st) == 0 ? buf : NULL;
}

void peer_spawn(struct peer *p, const char *path, int flavour)
{
	char lib[4096];
	int in[2], out[2];

	memset(p, 0, sizeof(*p));
	p->arena = flavour == PEER_ARENA;
	ck_assert_msg(access(path, X_OK) == 0, "peer program %s missing: %s", path, strerror(errno));
	if (p->arena)
		ck_assert_msg(st_arena_lib(lib, sizeof(lib)) != NULL,
			      "arena preload library %s is not built yet: this test needs an "
			      "arena-backed exporter (transports/shm/arena)", lib);
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (p->arena)
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
}

void peer_start(struct peer *p, int flavour)
{
	char path[4096], lib[4096];
	peer_spawn(p, tu_builddir_path("tests/shm/peer", path, sizeof(path)), flavour);
	/* The peer announces itself (and whether it found the arena). */
	const char *r = peer_cmd(p, "hello");
	long long arena = 0;
	ck_assert_msg(sscanf(r, "ok %*d %lld", &arena) == 1, "peer hello reply '%s'", r);
	if (p->arena)
		ck_assert_msg(arena == 1, "peer started with LD_PRELOAD=%s does not see the arena "
			      "(uxpmem_arena_query_v1 not found)", st_arena_lib(lib, sizeof(lib)));
}

static const char *read_line_ms(struct peer *p, const char *what, int timeout_ms)
{
	timeout_ms = tu_guard_ms(timeout_ms);
	long long deadline = st_now_ms() + timeout_ms;
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
		long long left = deadline - st_now_ms();
		ck_assert_msg(left > 0, "peer %d did not answer '%s' within %d ms", (int)p->pid, what,
			      timeout_ms);
		struct pollfd pfd = { p->from, POLLIN, 0 };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
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

static const char *read_line(struct peer *p, const char *what)
{
	return read_line_ms(p, what, PEER_TIMEOUT_MS);
}

static void vsend(struct peer *p, const char *fmt, va_list ap)
{
	char cmd[1024];
	int n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	ck_assert(n > 0 && n < (int)sizeof(cmd) - 1);
	cmd[n++] = '\n';
	cmd[n] = 0;
	ck_assert_msg(tu_write_all(p->to, cmd, (size_t)n) == 0, "cannot send '%s' to peer %d: %s", fmt,
		      (int)p->pid, strerror(errno));
	cmd[n - 1] = 0;
	snprintf(p->sent, sizeof(p->sent), "%s", cmd);
}

static const char *vcmd(struct peer *p, const char *fmt, va_list ap)
{
	vsend(p, fmt, ap);
	return read_line(p, p->sent);
}

void peer_send(struct peer *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsend(p, fmt, ap);
	va_end(ap);
}

const char *peer_recv(struct peer *p, int timeout_ms)
{
	return read_line_ms(p, p->sent, timeout_ms);
}

const char *peer_cmd(struct peer *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	const char *r = vcmd(p, fmt, ap);
	va_end(ap);
	return r;
}

static long long parse_ok(const char *r, long long *vals, const char *cmd)
{
	long long v[4] = { 0, 0, 0, 0 };
	ck_assert_msg(strncmp(r, "ok", 2) == 0 && (r[2] == 0 || r[2] == ' '),
		      "peer command '%s' answered '%s' (want ok)", cmd, r);
	sscanf(r + 2, "%lli %lli %lli %lli", &v[0], &v[1], &v[2], &v[3]);
	if (vals)
		memcpy(vals, v, sizeof(v));
	return v[0];
}

const char *slow_cmd(struct peer *p, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	peer_send(p, "%s", buf);
	return peer_recv(p, tu_guard_ms(20000));
}

long long slow_ok(const char *what, const char *reply)
{
	long long v = 0;
	ck_assert_msg(sscanf(reply, "ok %lli", &v) == 1 || strcmp(reply, "ok") == 0,
		      "%s: peer replied '%s'", what, reply);
	return v;
}

long long peer_ok(struct peer *p, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return parse_ok(peer_cmd(p, "%s", cmd), NULL, cmd);
}

long long peer_okv(struct peer *p, long long vals[static 4], const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return parse_ok(peer_cmd(p, "%s", cmd), vals, cmd);
}

int peer_err(struct peer *p, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	const char *r = peer_cmd(p, "%s", cmd);
	int e = 0;
	ck_assert_msg(sscanf(r, "err %d", &e) == 1, "peer command '%s' answered '%s' (want err)", cmd, r);
	return e;
}

void peer_stop(struct peer *p)
{
	if (p->pid <= 0)
		return;
	const char *r = peer_cmd(p, "exit");
	ck_assert_msg(strcmp(r, "ok") == 0, "peer exit: %s", r);
	peer_reap(p);
}

void peer_reap(struct peer *p)
{
	int st = tu_wait_child(p->pid, 10000);
	ck_assert_msg(st != -1, "peer %d did not exit within 10 s", (int)p->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer %d exit status %#x", (int)p->pid, st);
	close(p->to);
	close(p->from);
	p->pid = 0;
}

void peer_kill(struct peer *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	tu_wait_child(p->pid, 10000);
	close(p->to);
	close(p->from);
	p->pid = 0;
}

void st_fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = st_pattern(seed, i);
}

static sigjmp_buf check_env;
static volatile size_t check_at;

static void check_handler(int sig)
{
	siglongjmp(check_env, sig);
}

long st_check(const void *p, size_t len, uint64_t seed)
{
	const volatile uint64_t *w = p;
	struct sigaction sa, ob, os;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = check_handler;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, &ob);
	sigaction(SIGSEGV, &sa, &os);
	volatile long bad = -1;
	check_at = 0;
	int sig = sigsetjmp(check_env, 1);
	if (sig == 0) {
		for (size_t i = 0; i < len / 8; i++) {
			check_at = i;
			if (w[i] != st_pattern(seed, i)) {
				bad = (long)(i * 8);
				break;
			}
		}
	}
	sigaction(SIGBUS, &ob, NULL);
	sigaction(SIGSEGV, &os, NULL);
	ck_assert_msg(sig == 0, "signal %d (%s) reading byte %zu of %p (+%zu bytes)", sig, strsignal(sig),
		      (size_t)check_at * 8, p, len);
	return bad;
}

int st_wait_signal(const volatile void *p, int ms)
{
	long long end = st_now_ms() + tu_guard_ms(ms);
	do {
		unsigned char v;
		int sig = tu_probe_read(p, &v);
		if (sig)
			return sig;
		st_sleep_ms(5);
	} while (st_now_ms() < end);
	return 0;
}
