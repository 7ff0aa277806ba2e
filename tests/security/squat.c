/* squat.c - the socket name of a process cannot be squatted to impersonate
 * it or to deny it service: an impostor (another uid) listening on
 * "\0uxpmem.PID" (or on $XPMEM_SHM_SOCKET_DIR/uxpmem.PID.sock) gets
 * importers' connections refused after the SO_PEERCRED check, without one
 * byte of a GET; and the real process's xpmem_make still succeeds (it
 * listens on a random name it advertises in its service thread's name,
 * which only it can set), and importers reach its segment, while the
 * impostor still holds the usual name. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "sectest.h"

struct squat {
	pid_t victim;
	int ready[2];
};

/* Impostor: bind the victim's name, say ready (v[0] bind result), then for
 * 2 s accept and read whatever arrives.  v[1] connections, v[2] bytes read. */
static void impostor(void *arg, struct sec_res *r)
{
	struct squat *s = arg;
	int ls = sec_listen(s->victim);
	r->v[0] = ls;
	char c = ls >= 0 ? 'y' : 'n';
	if (write(s->ready[1], &c, 1) != 1 || ls < 0)
		return;
	long long end = st_now_ms() + 2000;
	while (st_now_ms() < end) {
		struct pollfd p = { ls, POLLIN, 0 };
		if (poll(&p, 1, 100) != 1)
			continue;
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		r->v[1]++;
		for (;;) {
			char buf[512];
			struct pollfd q = { fd, POLLIN, 0 };
			if (poll(&q, 1, 300) != 1)
				break;
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			r->v[2] += n;
		}
		close(fd);
	}
}

static void run_squat(int drop_victim)
{
	if (!sec_need_root("name squatting by another uid"))
		return;
	struct peer v;
	struct squat s;
	peer_start(&v, PEER_ARENA);
	if (drop_victim)
		ck_assert_int_gt(peer_ok(&v, "drop"), 0);
	s.victim = v.pid;
	ck_assert_int_eq(pipe(s.ready), 0);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(UID_OTHER, impostor, &s, &rfd);
	close(s.ready[1]);
	char c = 0;
	ck_assert_int_eq(read(s.ready[0], &c, 1), 1);
	close(s.ready[0]);
	/* an importer asks for a segid naming the victim */
	errno = 0;
	xpmem_apid_t a = xpmem_get(sec_id(0, v.pid, 1), XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	int get_errno = errno;
	/* the victim makes its first segment */
	const char *mk = peer_cmd(&v, "make 0 %#lx 0666", (unsigned long)XPMEM_MAXADDR_SIZE);
	char mkr[64];
	snprintf(mkr, sizeof(mkr), "%s", mk);
	/* while the impostor still holds the name (it serves 2 s) */
	long long seg = 0;
	xpmem_apid_t b = -1;
	int b_errno = 0;
	if (sscanf(mkr, "ok %lli", &seg) == 1) {
		errno = 0;
		b = xpmem_get(seg, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
		b_errno = errno;
	}
	sec_collect(pid, rfd, &r, 10000);
	fprintf(stderr, "squat%s: impostor bind %ld, connections %ld, bytes %ld; get -> %lld errno %d; "
		"victim's make -> '%s'\n", drop_victim ? " (socket dir)" : "", r.v[0], r.v[1], r.v[2],
		(long long)a, get_errno, mkr);
	ck_assert_msg(c == 'y' && r.v[0] >= 0, "impostor could not bind the name: %s", strerror((int)-r.v[0]));
	ck_assert_msg(a == -1 && get_errno == ENOENT, "get via an impostor: %lld errno %d, want ENOENT",
		      (long long)a, get_errno);
	ck_assert_msg(r.v[1] >= 1, "the importer never connected to the impostor (test did not test)");
	ck_assert_msg(r.v[2] == 0, "the impostor read %ld bytes of the importer's request", r.v[2]);
	/* the victim: its name is taken, yet it serves its segments */
	ck_assert_msg(strncmp(mkr, "ok", 2) == 0, "victim's make with a squatted name: '%s'", mkr);
	ck_assert_msg(b > 0, "victim's make succeeded but its segment is unreachable: errno %d", b_errno);
	ck_assert_int_eq(xpmem_release(b), 0);
	peer_stop(&v);
}

START_TEST(t_squat_abstract)
{
	unsetenv("XPMEM_SHM_SOCKET_DIR");
	run_squat(0);
}
END_TEST

START_TEST(t_squat_socket_dir)
{
	char dir[] = "/tmp/uxpmem-squat.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 01777), 0);
	setenv("XPMEM_SHM_SOCKET_DIR", dir, 1);
	run_squat(1);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("security-squat");
	TCase *tc = tcase_create("squat");
	tcase_set_timeout(tc, tu_guard_s(40));
	tcase_add_test(tc, t_squat_abstract);
	tcase_add_test(tc, t_squat_socket_dir);
	suite_add_tcase(s, tc);
	return st_run(s);
}
