/* dos.c - peers that stall or flood cannot block service to others: an
 * honest importer's get+attach stays fast while they misbehave, and the
 * exporter's descriptors return to their baseline once they are killed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "sectest.h"

#define LEN (4 * PAGE)
#define MAXSZ ((unsigned long)XPMEM_MAXADDR_SIZE)
#define BOUND_MS 2000

struct fx {
	struct peer e, a;
	uintptr_t buf;
	long long seg;
	int nconn;
};

static void fx_start(struct fx *f)
{
	peer_start(&f->e, PEER_ARENA);
	f->buf = (uintptr_t)peer_ok(&f->e, "malloc %lu", LEN);
	peer_ok(&f->e, "fill %#lx %lu 5", f->buf, LEN);
	f->seg = peer_ok(&f->e, "make 0 %#lx 0666", MAXSZ);
	peer_start(&f->a, PEER_PLAIN);
}

/* One honest get+attach+check+release by A, bounded. */
static void honest_cycle(struct fx *f, const char *during)
{
	long long t0 = st_now_ms();
	const char *r = peer_cmd(&f->a, "get %lld %d", f->seg, XPMEM_RDONLY);
	long long ap = 0;
	ck_assert_msg(sscanf(r, "ok %lli", &ap) == 1, "honest get %s: %s", during, r);
	long long at = peer_ok(&f->a, "attach %lld %#lx %lu 0", ap, f->buf, LEN);
	ck_assert_str_eq(peer_cmd(&f->a, "check %#llx %lu 5", at, LEN), "ok");
	peer_ok(&f->a, "detach %#llx", at);
	peer_ok(&f->a, "release %lld", ap);
	long long dt = st_now_ms() - t0;
	ck_assert_msg(dt < tu_guard_ms(BOUND_MS), "honest get+attach took %lld ms %s", dt, during);
}

static void wait_fds_back(struct fx *f, int base)
{
	int n = -1;
	for (long long end = st_now_ms() + tu_guard_ms(3000); st_now_ms() < end; st_sleep_ms(10)) {
		n = sec_count_fds(f->e.pid);
		if (n <= base + 1)
			return;
	}
	ck_abort_msg("exporter holds %d descriptors %d ms after the attackers died (baseline %d)", n,
		     tu_guard_ms(3000), base);
}

/* A child (nobody) running fn forever until killed; ready byte first. */
static pid_t attacker(struct fx *f, void (*fn)(struct fx *, int), int *ready)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		alarm(tu_guard_s(50));
		if (getuid() == 0 && sec_become(65534, 65534) < 0)
			_exit(1);
		fn(f, p[1]);
		for (;;)
			pause();
	}
	close(p[1]);
	char c;
	struct sec_res dummy;
	(void)dummy;
	ck_assert_msg(read(p[0], &c, 1) == 1, "attacker did not start");
	*ready = p[0];
	return pid;
}

static void kill_attacker(pid_t pid, int ready)
{
	kill(pid, SIGKILL);
	tu_wait_child(pid, 5000);
	close(ready);
}

/* garbage, partial and oversized packets on 20 connections, then 20 silent ones */
static void garbage(struct fx *f, int out)
{
	for (int i = 0; i < 20; i++) {
		int fd = sec_connect(f->e.pid);
		struct uxp_msg m;
		char junk[sizeof(m) + 32];
		memset(junk, 0xa5, sizeof(junk));
		sec_get_msg(&m, f->seg, XPMEM_RDONLY, 1);
		switch (i % 5) {
		case 0: sec_send_raw(fd, &m, 10); break;           /* partial */
		case 1: sec_send_raw(fd, junk, sizeof(m)); break;   /* bad magic */
		case 2: m.version = 99; sec_send(fd, &m); break;    /* version */
		case 3: memcpy(junk, &m, sizeof(m)); sec_send_raw(fd, junk, sizeof(junk)); break;
		case 4: sec_send_raw(fd, "", 0); break;             /* empty packet */
		}
	}
	for (int i = 0; i < 20; i++)
		sec_connect(f->e.pid);
	if (write(out, "r", 1) != 1)
		_exit(1);
}

START_TEST(t_garbage_and_silence)
{
	struct fx f;
	fx_start(&f);
	honest_cycle(&f, "before");
	int base = sec_count_fds(f.e.pid);
	int ready;
	pid_t pid = attacker(&f, garbage, &ready);
	for (int i = 0; i < 5; i++)
		honest_cycle(&f, "while peers send garbage and stall");
	kill_attacker(pid, ready);
	wait_fds_back(&f, base);
	honest_cycle(&f, "after");
	peer_stop(&f.a);
	peer_stop(&f.e);
}
END_TEST

/* GETs as fast as possible, never reading a reply */
static void flood(struct fx *f, int out)
{
	int fd = sec_connect(f->e.pid);
	struct uxp_msg m;
	sec_get_msg(&m, f->seg, XPMEM_RDONLY, 1);
	if (write(out, "r", 1) != 1)
		_exit(1);
	for (uint64_t s = 1;; s++) {
		m.seq = s;
		if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno != EINTR)
			_exit(0);
	}
}

START_TEST(t_get_flood_never_read)
{
	struct fx f;
	fx_start(&f);
	honest_cycle(&f, "before");
	int base = sec_count_fds(f.e.pid);
	int ready;
	pid_t pid = attacker(&f, flood, &ready);
	for (int i = 0; i < 10; i++) {
		honest_cycle(&f, "during a GET flood that never reads its replies");
		st_sleep_ms(100);
	}
	ck_assert_int_eq(peer_ok(&f.e, "hello"), f.e.pid);
	kill_attacker(pid, ready);
	wait_fds_back(&f, base);
	honest_cycle(&f, "after");
	peer_stop(&f.a);
	peer_stop(&f.e);
}
END_TEST

static void idle200(struct fx *f, int out)
{
	for (int i = 0; i < f->nconn; i++)
		sec_connect(f->e.pid);
	if (write(out, "r", 1) != 1)
		_exit(1);
}

START_TEST(t_idle_200)
{
	struct fx f;
	fx_start(&f);
	f.nconn = 200;
	honest_cycle(&f, "before");
	int base = sec_count_fds(f.e.pid);
	int ready;
	pid_t pid = attacker(&f, idle200, &ready);
	honest_cycle(&f, "with 200 idle connections");
	int during = sec_count_fds(f.e.pid);
	ck_assert_msg(during >= base + 200, "exporter fds %d with 200 idle peers (baseline %d)", during, base);
	kill_attacker(pid, ready);
	wait_fds_back(&f, base);
	honest_cycle(&f, "after");
	peer_stop(&f.a);
	peer_stop(&f.e);
}
END_TEST

/* More idle connections than the exporter may hold descriptors: it must not
 * spin (level-triggered accept failing EMFILE), and it recovers afterwards. */
START_TEST(t_fd_exhaustion)
{
	struct fx f;
	fx_start(&f);
	honest_cycle(&f, "before");
	struct rlimit rl = { 64, 64 };
	ck_assert_int_eq(prlimit(f.e.pid, RLIMIT_NOFILE, &rl, NULL), 0);
	int base = sec_count_fds(f.e.pid);
	f.nconn = 200;
	int ready;
	pid_t pid = attacker(&f, idle200, &ready);
	st_sleep_ms(200);
	long t0 = sec_cpu_ticks(f.e.pid);
	st_sleep_ms(1000);
	long ticks = sec_cpu_ticks(f.e.pid) - t0;
	long hz = sysconf(_SC_CLK_TCK);
	kill_attacker(pid, ready);
	wait_fds_back(&f, base);
	honest_cycle(&f, "after the descriptor exhaustion");
	peer_stop(&f.a);
	peer_stop(&f.e);
	ck_assert_msg(ticks * 4 < hz, "exporter burnt %ld/%ld CPU ticks in 1 s while out of descriptors "
		      "(service thread spinning on accept EMFILE)", ticks, hz);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("security-dos");
	TCase *tc = tcase_create("dos");
	tcase_set_timeout(tc, tu_guard_s(50));
	tcase_add_test(tc, t_garbage_and_silence);
	tcase_add_test(tc, t_get_flood_never_read);
	tcase_add_test(tc, t_idle_200);
	tcase_add_test(tc, t_fd_exhaustion);
	suite_add_tcase(s, tc);
	return st_run(s);
}
