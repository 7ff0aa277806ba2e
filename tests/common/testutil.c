/* testutil.c - see testutil.h */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <grp.h>
#include <sys/wait.h>
#include "testutil.h"

static __thread sigjmp_buf probe_env;
static __thread volatile int probing;

static void probe_handler(int sig)
{
	if (probing)
		siglongjmp(probe_env, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read a byte (rval), or a 64-bit word (rval64), at rp, or write wval at wp. */
static int probe(const volatile void *rp, volatile void *wp, unsigned char wval, unsigned char *rval,
		 uint64_t *rval64)
{
	struct sigaction sa, old_bus, old_segv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	int sig = sigsetjmp(probe_env, 1);
	if (sig == 0) {
		probing = 1;
		if (rp && rval64) {
			*rval64 = *(const volatile uint64_t *)rp;
		} else if (rp) {
			unsigned char v = *(const volatile unsigned char *)rp;
			if (rval)
				*rval = v;
		} else {
			*(volatile unsigned char *)wp = wval;
		}
	}
	probing = 0;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return sig;
}

int tu_probe_read(const volatile void *p, unsigned char *val)
{
	return probe(p, NULL, 0, val, NULL);
}

int tu_probe_read64(const volatile void *p, uint64_t *val)
{
	return probe(p, NULL, 0, NULL, val);
}

/* Word 0 of each page of [p, p+len) in v[], 0 or the signal in sig[]; one
 * handler setup for all (probe() costs four system calls per access, this
 * one: the mask saved by sigsetjmp). */
void tu_probe_pages(const volatile char *p, size_t len, size_t page, uint64_t *v, int *sig)
{
	struct sigaction sa, old_bus, old_segv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	for (volatile size_t i = 0; i < len / page; i++) {
		/* the mask is restored: a sanitizer runtime may block the signal
		 * around the handler whatever SA_NODEFER says */
		sig[i] = sigsetjmp(probe_env, 1);
		if (sig[i] == 0) {
			probing = 1;
			v[i] = *(const volatile uint64_t *)(p + i * page);
		}
		probing = 0;
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
}

int tu_probe_write(volatile void *p, unsigned char val)
{
	return probe(NULL, p, val, NULL, NULL);
}

int tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own descriptor */
}

int tu_drop_to_nobody(void)
{
	struct passwd *pw = getpwnam("nobody");
	if (!pw)
		return -1;
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		return -1;
	if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return -1;
	return getuid() == pw->pw_uid ? 0 : -1;
}

int tu_nobody_full_uffd(void)
{
	char buf[16];
	if (!strcmp(tu_read_text("/proc/sys/vm/unprivileged_userfaultfd", buf, sizeof(buf)), "1\n"))
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (tu_drop_to_nobody() < 0)
			_exit(2);
		_exit(open("/dev/userfaultfd", O_RDWR | O_CLOEXEC) >= 0 ? 0 : 1);
	}
	int st = tu_wait_child(pid, 10000);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) < 2 ? WEXITSTATUS(st) == 0 : -1;
}

int tu_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tu_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static double load_factor(void)
{
	double load;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (getloadavg(&load, 1) != 1 || cpus < 1 || load <= (double)cpus)
		return 1.0;
	return load / (double)cpus;
}

#define VALGRIND_FACTOR 20.0
static bool slowdown_given; /* UXP_TEST_SLOWDOWN: applies to peers too */

static double compute_slowdown(void)
{
	const char *v = getenv("UXP_TEST_SLOWDOWN");
	if (v && *v) {
		char *end;
		double f = strtod(v, &end);
		if (*end == 0 && f >= 1.0 && f <= 1000.0) {
			slowdown_given = true;
			return f;
		}
		fprintf(stderr, "testutil: ignoring UXP_TEST_SLOWDOWN=%s (want a number from 1 to 1000)\n", v);
	}
	double f = tu_under_valgrind() ? VALGRIND_FACTOR : 1.0;
#if defined(__SANITIZE_THREAD__)
	f *= 5.0;
#elif defined(__SANITIZE_ADDRESS__)
	f *= 3.0;
#endif
	f *= load_factor();
	return f > 100.0 ? 100.0 : f;
}

static double slowdown;
static pthread_once_t slowdown_once = PTHREAD_ONCE_INIT;

static void init_slowdown(void)
{
	slowdown = compute_slowdown();
}

double tu_slowdown(void)
{
	pthread_once(&slowdown_once, init_slowdown);
	return slowdown;
}

int tu_guard_ms(int ms)
{
	double v = (double)ms * tu_slowdown();
	return v > 2e9 ? 2000000000 : (int)v;
}

int tu_peer_guard_ms(int ms)
{
	double f = tu_slowdown();
	if (!slowdown_given && tu_under_valgrind())
		f /= VALGRIND_FACTOR;
	double v = (double)ms * (f > 1.0 ? f : 1.0);
	return v > 2e9 ? 2000000000 : (int)v;
}

unsigned tu_guard_s(unsigned s)
{
	return (unsigned)((double)s * tu_slowdown() + 0.999);
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
	int status;
	timeout_ms = tu_guard_ms(timeout_ms);
	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

void tu_require_preload(void)
{
#ifdef __SANITIZE_ADDRESS__
	fprintf(stderr, "SKIP: built with AddressSanitizer, which cannot run with the arena preload\n");
	exit(77);
#endif
#ifdef __SANITIZE_THREAD__
	fprintf(stderr, "SKIP: built with ThreadSanitizer, which cannot run with the arena preload\n");
	exit(77);
#endif
}

void tu_require_libc_malloc(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	fprintf(stderr, "SKIP: built with a sanitizer, whose allocator replaces glibc malloc\n");
	exit(77);
#endif
}

int tu_threads_stoppable(const char *what)
{
#ifdef __SANITIZE_THREAD__
	fprintf(stderr, "SKIP %s: ThreadSanitizer's own thread blocks every signal: the exporter's threads "
		"cannot all be stopped, so its .data is not converted\n", what);
	return 0;
#else
	(void)what;
	return 1;
#endif
}

int tu_under_valgrind(void)
{
	const char *v = getenv("UXP_VALGRIND");
	return v && strcmp(v, "1") == 0;
}

const char *tu_builddir_path(const char *rel, char *buf, size_t len)
{
	const char *b = getenv("UXP_BUILDDIR");
	snprintf(buf, len, "%s/%s", b && *b ? b : ".", rel);
	return buf;
}

void tu_log_to(const char *path, const char *level)
{
	if (truncate(path, 0) != 0) {
		fprintf(stderr, "truncate %s: %s\n", path, strerror(errno));
		abort();
	}
	if (level)
		setenv("XPMEM_LOG_LEVEL", level, 1);
	else
		unsetenv("XPMEM_LOG_LEVEL");
	setenv("XPMEM_LOG_FILE", path, 1);
}

const char *tu_read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}
