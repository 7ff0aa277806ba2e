/* ktest.c - see ktest.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ktest.h"

static char fake_dir[] = "/tmp/uxp-kernel-test.XXXXXX";

static void cleanup(void)
{
	DIR *d = opendir(fake_dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", fake_dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(fake_dir);
}

static pid_t main_pid;

static void at_exit(void)
{
	if (getpid() == main_pid) /* not in Check's forked test processes */
		cleanup();
}

void kt_init(void)
{
	if (!mkdtemp(fake_dir)) {
		perror("mkdtemp");
		exit(99);
	}
	setenv("XPMEM_FAKE_DIR", fake_dir, 1);
	signal(SIGPIPE, SIG_IGN);
	main_pid = getpid();
	atexit(at_exit);
}

void kt_start(struct peer *p, int kind, const char *env)
{
	char path[4096];
	int in[2], out[2];
	tu_builddir_path(kind == KT_KPEER ? "tests/kernel/kpeer" : "tests/kernel/rawpeer", path,
			 sizeof(path));
	memset(p, 0, sizeof(*p));
	ck_assert_msg(access(path, X_OK) == 0, "peer program %s missing: %s", path, strerror(errno));
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char log[4200];
		dup2(in[0], 0);
		dup2(out[1], 1);
		snprintf(log, sizeof(log), "%s/log.%d", fake_dir, (int)getpid());
		unsetenv("LD_PRELOAD");
		setenv("XPMEM_TRANSPORT", "kernel", 1);
		setenv("XPMEM_KERNEL_DEVICE", "/dev/null", 1); /* opened, never really used */
		setenv("XPMEM_FAKE_DIR", fake_dir, 1);
		setenv("XPMEM_LOG_LEVEL", "debug", 1);
		setenv("XPMEM_LOG_FILE", log, 1);
		if (env)
			putenv((char *)env);
		execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->pid = pid;
	p->to = in[1];
	p->from = out[0];
	long long v = 0;
	const char *r = peer_cmd(p, "hello");
	ck_assert_msg(sscanf(r, "ok %lld", &v) == 1 && v == pid, "peer hello: '%s'", r);
}

int kt_log_has(pid_t pid, const char *needle, int ms)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/log.%d", fake_dir, (int)pid);
	long long end = st_now_ms() + tu_guard_ms(ms);
	for (;;) {
		FILE *f = fopen(path, "r");
		if (f) {
			char line[2048];
			int found = 0;
			while (!found && fgets(line, sizeof(line), f))
				found = strstr(line, needle) != NULL;
			fclose(f);
			if (found)
				return 1;
		}
		if (st_now_ms() >= end)
			return 0;
		st_sleep_ms(10);
	}
}

int kt_nfds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int kt_wait_nfds(pid_t pid, int n, int ms)
{
	long long end = st_now_ms() + tu_guard_ms(ms);
	int have;
	while ((have = kt_nfds(pid)) != n && st_now_ms() < end)
		st_sleep_ms(10);
	return have;
}

void kt_check_ev(const struct rvev *ev, int reason, long long apid, long long segid, size_t length,
		 const char *what)
{
	ck_assert_msg(ev->reason == reason, "%s: reason %d, want %d", what, ev->reason, reason);
	ck_assert_msg(ev->apid == apid, "%s: apid %#llx, want %#llx", what, ev->apid, apid);
	ck_assert_msg(ev->segid == segid, "%s: segid %#llx, want %#llx", what, ev->segid, segid);
	ck_assert_msg(ev->addr == 0 && ev->size == 0, "%s: addr %#lx size %zu, want NULL 0", what, ev->addr,
		      ev->size);
	ck_assert_msg(ev->offset == 0 && ev->length == length, "%s: offset %lld length %zu, want 0 %zu",
		      what, ev->offset, ev->length, length);
	ck_assert_msg(ev->seq > 0, "%s: seq 0", what);
}

void kt_send(struct peer *p, const char *cmd)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);
	ck_assert_int_eq(tu_write_all(p->to, line, (size_t)n), 0);
}

const char *kt_answer(struct peer *p)
{
	/* a blank command: the peer answers nothing, we read the pending answer */
	return peer_cmd(p, " ");
}

const char *kt_path(const char *name, int pid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.%d", fake_dir, name, pid);
	return buf;
}

int kt_wait_file(const char *path, int ms)
{
	long long end = st_now_ms() + tu_guard_ms(ms);
	while (access(path, F_OK) < 0) {
		if (st_now_ms() >= end)
			return 0;
		st_sleep_ms(5);
	}
	return 1;
}
