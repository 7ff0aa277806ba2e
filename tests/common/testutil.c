/* testutil.c - see testutil.h */
#include <errno.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
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

static int probe(const volatile void *rp, volatile void *wp, unsigned char wval, unsigned char *rval)
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
		if (rp) {
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
	return probe(p, NULL, 0, val);
}

int tu_probe_write(volatile void *p, unsigned char val)
{
	return probe(NULL, p, val, NULL);
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

int tu_wait_child(pid_t pid, int timeout_ms)
{
	int status;
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
