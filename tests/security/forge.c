/* forge.c - a peer that forges grants, segids, apids or offsets, or sends
 * messages in the wrong direction or out of order, gets nothing and
 * disturbs nobody: the legitimate importer keeps reading its data and its
 * grant stays registered (a later remove still revokes it). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "sectest.h"

#define LEN (16 * PAGE)
#define MAXSZ ((unsigned long)XPMEM_MAXADDR_SIZE)

struct fx {
	struct peer e, a;
	uintptr_t buf;
	long long seg, apid, at;
};

/* exporter with a whole-AS 0666 segment; importer A attached to buf */
static void fx_start(struct fx *f)
{
	peer_start(&f->e, PEER_ARENA);
	f->buf = (uintptr_t)peer_ok(&f->e, "malloc %lu", LEN);
	peer_ok(&f->e, "fill %#lx %lu 5", f->buf, LEN);
	f->seg = peer_ok(&f->e, "make 0 %#lx 0666", MAXSZ);
	peer_start(&f->a, PEER_PLAIN);
	f->apid = peer_ok(&f->a, "get %lld %d", f->seg, XPMEM_RDWR);
	f->at = peer_ok(&f->a, "attach %lld %#lx %lu 0", f->apid, f->buf, LEN);
	ck_assert_str_eq(peer_cmd(&f->a, "check %#llx %lu 5", f->at, LEN), "ok");
}

/* A still reads; a remove still reaches A's grant (SIGBUS). */
static void fx_check_a_intact(struct fx *f)
{
	ck_assert_str_eq(peer_cmd(&f->a, "check %#llx %lu 5", f->at, LEN), "ok");
	long long t0 = st_now_ms();
	peer_ok(&f->e, "remove %lld", f->seg);
	ck_assert_msg(st_now_ms() - t0 < 1500, "remove took %lld ms", st_now_ms() - t0);
	ck_assert_msg(peer_ok(&f->a, "waitsig %#llx 3000", f->at) == 7,
		      "importer A not revoked: its grant was lost");
	peer_stop(&f->a);
	peer_stop(&f->e);
}

/* v[0] own GET status, v[1] own grant, v[2] reply to a GET after the forgeries */
static void forger(void *arg, struct sec_res *r)
{
	struct fx *f = arg;
	struct uxp_msg m;
	int fds[4], nfds;
	int fd = sec_connect(f->e.pid);
	if (fd < 0)
		return;
	sec_get_msg(&m, f->seg, XPMEM_RDONLY, 1);
	sec_send(fd, &m);
	sec_recv(fd, &m, fds, &nfds, 5000);
	r->v[0] = m.status;
	uint64_t own = m.grant;
	r->v[1] = (long)own;
	uint64_t extra[] = { ~0ULL, 1ULL << 63, 1ULL << 40, own + 1000 };
	for (int type = UXP_MSG_RELEASE; type <= UXP_MSG_REVOKE_ACK; type += 2)
		for (uint64_t g = 1; g < own + 200 + 4; g++) {
			uint64_t id = g < own + 200 ? g : extra[g - own - 200];
			if (id == own)
				continue;
			uxp_msg_init(&m, (enum uxp_msg_type)type);
			m.grant = id;
			while (sec_send(fd, &m) == -EAGAIN)
				usleep(1000);
		}
	/* replays of our own: release twice, ack a revoke never sent */
	uxp_msg_init(&m, UXP_MSG_REVOKE_ACK);
	m.grant = own;
	sec_send(fd, &m);
	uxp_msg_init(&m, UXP_MSG_RELEASE);
	m.grant = own;
	sec_send(fd, &m);
	sec_send(fd, &m);
	sec_get_msg(&m, f->seg, XPMEM_RDONLY, 2);
	sec_send(fd, &m);
	long n = sec_recv(fd, &m, fds, &nfds, 5000);
	r->v[2] = n == (long)sizeof(m) && m.seq == 2 ? m.status : -9999;
}

START_TEST(t_forged_release)
{
	struct fx f;
	fx_start(&f);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(getuid() == 0 ? 65534 : -1, forger, &f, &rfd);
	sec_collect(pid, rfd, &r, 30000);
	ck_assert_msg(r.v[0] == 0 && r.v[1] > 0, "forger's own GET: %ld", r.v[0]);
	ck_assert_msg(r.v[2] == 0, "after forged/replayed RELEASE/REVOKE_ACK the exporter answers %ld", r.v[2]);
	fx_check_a_intact(&f);
}
END_TEST

/* v[0..5] statuses of GETs of foreign segids; v[6] connection still alive */
static void foreign_gets(void *arg, struct sec_res *r)
{
	struct fx *f = arg;
	int fd = sec_connect(f->e.pid);
	if (fd < 0)
		return;
	int64_t s = f->seg;
	uint32_t serial = (uint32_t)(s & ((1 << 26) - 1));
	int64_t ids[6] = {
		f->apid,                              /* A's (an apid, other pid) */
		sec_id(0, f->a.pid, serial),          /* another process's pid */
		sec_id(1, f->e.pid, serial),          /* another node */
		sec_id(0x7fff, f->e.pid, serial),
		sec_id(0, f->e.pid, serial + 1),      /* a serial never made */
		sec_id(0, f->e.pid, serial ^ 0x2000000),
	};
	for (int i = 0; i < 6; i++) {
		struct uxp_msg m;
		int fds[4], nfds;
		sec_get_msg(&m, ids[i], XPMEM_RDONLY, 10 + i);
		sec_send(fd, &m);
		long n = sec_recv(fd, &m, fds, &nfds, 5000);
		r->v[i] = n == (long)sizeof(m) && m.seq == 10 + (uint64_t)i ? m.status : -9999;
		r->v[10 + i] = nfds;
	}
}

START_TEST(t_foreign_segids)
{
	struct fx f;
	fx_start(&f);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(getuid() == 0 ? 65534 : -1, foreign_gets, &f, &rfd);
	sec_collect(pid, rfd, &r, 30000);
	for (int i = 0; i < 6; i++)
		ck_assert_msg(r.v[i] == -ENOENT && r.v[10 + i] == 0, "GET of foreign segid %d: status %ld nfds %ld",
			      i, r.v[i], r.v[10 + i]);
	/* API: another node, a pid with no service */
	int64_t serial = f.seg & ((1 << 26) - 1);
	errno = 0;
	ck_assert_int_eq(xpmem_get(sec_id(1, f.e.pid, (uint32_t)serial), XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(xpmem_get(sec_id(0, 1, 1), XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, ENOENT);
	fx_check_a_intact(&f);
}
END_TEST

/* v[0] GET_REPLY to exporter: closed?  v[1] REVOKE: closed?  v[2] bad GET fields
 * closed?  v[3] a fresh connection's GET status */
static int closed_after(int fd, const struct uxp_msg *m)
{
	struct uxp_msg r;
	int fds[4], nfds;
	sec_send(fd, m);
	long n = sec_recv(fd, &r, fds, &nfds, 3000);
	return n == 0 || n == -ECONNRESET;
}

static void wrong_direction(void *arg, struct sec_res *r)
{
	struct fx *f = arg;
	struct uxp_msg m;
	int fd = sec_connect(f->e.pid);
	uxp_msg_init(&m, UXP_MSG_GET_REPLY);
	m.seq = 1;
	m.status = 0;
	m.grant = 1;
	m.seg_size = PAGE;
	r->v[0] = closed_after(fd, &m);
	close(fd);
	fd = sec_connect(f->e.pid);
	uxp_msg_init(&m, UXP_MSG_REVOKE);
	m.grant = 1;
	m.reason = UXP_REVOKE_REMOVED;
	r->v[1] = closed_after(fd, &m);
	close(fd);
	fd = sec_connect(f->e.pid);
	sec_get_msg(&m, -f->seg, XPMEM_RDWR | XPMEM_RDONLY, 3);
	r->v[2] = closed_after(fd, &m);
	close(fd);
	fd = sec_connect(f->e.pid);
	int fds[4], nfds;
	sec_get_msg(&m, f->seg, XPMEM_RDONLY, 4);
	sec_send(fd, &m);
	r->v[3] = sec_recv(fd, &m, fds, &nfds, 3000) == (long)sizeof(m) ? m.status : -9999;
}

START_TEST(t_wrong_direction)
{
	struct fx f;
	fx_start(&f);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(getuid() == 0 ? 65534 : -1, wrong_direction, &f, &rfd);
	sec_collect(pid, rfd, &r, 30000);
	ck_assert_msg(r.v[0], "GET_REPLY sent to an exporter did not close the connection");
	ck_assert_msg(r.v[1], "REVOKE sent to an exporter did not close the connection");
	ck_assert_msg(r.v[2], "malformed GET did not close the connection");
	ck_assert_int_eq(r.v[3], 0);
	/* the exporter keeps serving others */
	long long ap2 = peer_ok(&f.a, "get %lld %d", f.seg, XPMEM_RDONLY);
	long long at2 = peer_ok(&f.a, "attach %lld %#lx %lu 0", ap2, f.buf, LEN);
	ck_assert_str_eq(peer_cmd(&f.a, "check %#llx %lu 5", at2, LEN), "ok");
	peer_ok(&f.a, "detach %#llx", at2);
	peer_ok(&f.a, "release %lld", ap2);
	fx_check_a_intact(&f);
}
END_TEST

START_TEST(t_foreign_apid_and_offsets)
{
	struct fx f;
	fx_start(&f);
	/* this process uses A's apid */
	struct xpmem_addr ad = { .apid = f.apid, .offset = (off_t)f.buf };
	errno = 0;
	ck_assert(xpmem_attach(ad, PAGE, NULL) == (void *)-1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(xpmem_release(f.apid), -1);
	ck_assert_int_eq(errno, EACCES);
	/* offsets outside a partial segment */
	long long seg2 = peer_ok(&f.e, "make %#lx %lu 0666", f.buf, LEN);
	long long ap2 = peer_ok(&f.a, "get %lld %d", seg2, XPMEM_RDWR);
	static const struct { unsigned long long off, size; } bad[] = {
		{ LEN, PAGE }, { LEN - PAGE, 2 * PAGE }, { 0, LEN + PAGE }, { 0xfffffffffffff000ULL, 2 * PAGE },
		{ PAGE, 0xfffffffffffff000ULL }, { 1ULL << 62, PAGE }, { 0x8000000000000000ULL, PAGE },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int e = peer_err(&f.a, "attach %lld %#llx %#llx 0", ap2, bad[i].off, bad[i].size);
		ck_assert_msg(e == EINVAL, "attach offset %#llx size %#llx: errno %d, want EINVAL", bad[i].off,
			      bad[i].size, e);
	}
	long long at2 = peer_ok(&f.a, "attach %lld %#lx %lu 0", ap2, LEN - PAGE, PAGE);
	ck_assert_int_eq((unsigned long long)peer_ok(&f.a, "rd %#llx", at2), st_pattern(5, (LEN - PAGE) / 8));
	peer_ok(&f.a, "detach %#llx", at2);
	peer_ok(&f.a, "release %lld", ap2);
	fx_check_a_intact(&f);
}
END_TEST

/* This process plays an exporter for A: replies with unknown seqs, REVOKEs of
 * grants it never gave (A's grant ids with the real exporter), replays. */
START_TEST(t_fake_exporter_replays)
{
	struct fx f;
	fx_start(&f);
	int ls = sec_listen(getpid());
	ck_assert_msg(ls >= 0, "listen: %s", strerror(-ls));
	char line[128];
	snprintf(line, sizeof(line), "get %lld 1\n", (long long)sec_id(0, getpid(), 5));
	sec_peer_send(&f.a, line);
	struct pollfd p = { ls, POLLIN, 0 };
	ck_assert_int_eq(poll(&p, 1, tu_guard_ms(5000)), 1);
	int c = accept(ls, NULL, NULL);
	ck_assert_int_ge(c, 0);
	struct uxp_msg m, get;
	int fds[4], nfds;
	ck_assert_int_eq(sec_recv(c, &get, fds, &nfds, 5000), sizeof(get));
	ck_assert_int_eq(get.type, UXP_MSG_GET);
	/* a reply nobody asked for, with a grant: A must give it back */
	uxp_msg_init(&m, UXP_MSG_GET_REPLY);
	m.seq = get.seq + 1000;
	m.grant = 77;
	m.seg_size = PAGE;
	ck_assert_int_eq(sec_send(c, &m), 0);
	ck_assert_int_eq(sec_recv(c, &m, fds, &nfds, 3000), sizeof(m));
	ck_assert_msg(m.type == UXP_MSG_RELEASE && m.grant == 77, "late reply: got type %u grant %llu", m.type,
		      (unsigned long long)m.grant);
	/* REVOKEs of grant ids that A holds from the real exporter */
	for (uint64_t g = 1; g <= 40; g++) {
		uxp_msg_init(&m, UXP_MSG_REVOKE);
		m.grant = g;
		m.reason = UXP_REVOKE_REMOVED;
		ck_assert_int_eq(sec_send(c, &m), 0);
	}
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(sec_recv(c, &m, fds, &nfds, 3000), sizeof(m));
		ck_assert_int_eq(m.type, UXP_MSG_REVOKE_ACK);
	}
	/* the real answer, then a duplicate of it */
	uxp_msg_init(&m, UXP_MSG_GET_REPLY);
	m.seq = get.seq;
	m.status = -ENOENT;
	ck_assert_int_eq(sec_send(c, &m), 0);
	const char *r = sec_peer_line(&f.a, 5000);
	ck_assert_msg(strcmp(r, "err 2") == 0, "A's get from the fake exporter: %s", r);
	ck_assert_int_eq(sec_send(c, &m), 0);
	ck_assert_int_eq(peer_ok(&f.a, "hello"), f.a.pid); /* A alive */
	ck_assert_str_eq(peer_cmd(&f.a, "check %#llx %lu 5", f.at, LEN), "ok");
	close(c);
	close(ls);
	fx_check_a_intact(&f);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("security-forge");
	TCase *tc = tcase_create("forge");
	tcase_set_timeout(tc, tu_guard_s(40));
	tcase_add_test(tc, t_forged_release);
	tcase_add_test(tc, t_foreign_segids);
	tcase_add_test(tc, t_wrong_direction);
	tcase_add_test(tc, t_foreign_apid_and_offsets);
	tcase_add_test(tc, t_fake_exporter_replays);
	suite_add_tcase(s, tc);
	return st_run(s);
}
