/* access.c - cross-uid access control of the shm transport, checked at the
 * wire level (a raw client running as nobody) and at the API level:
 *  - a denied GET gets -EACCES and no descriptor;
 *  - a partial segment gives another uid no arena descriptor (holes);
 *  - a whole-address-space 0666 segment gives it the whole arena;
 *  - a read-only grant can never be upgraded. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "sectest.h"

#define LEN (16 * PAGE)
#define MAXSZ ((unsigned long)XPMEM_MAXADDR_SIZE)

struct ctx {
	pid_t epid;
	long long seg, seg2;
	uintptr_t buf;
};

/* v[0..4]: GET RDONLY reply len,type,status,nfds,seq; v[5..9]: GET RDWR; same for seg2 at 10.. */
static void raw_two_gets(void *arg, struct sec_res *r)
{
	struct ctx *c = arg;
	int fd = sec_connect(c->epid);
	r->v[30] = fd;
	if (fd < 0)
		return;
	long long segs[2] = { c->seg, c->seg2 };
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < 2; k++) {
			struct uxp_msg m;
			int fds[4], nfds;
			sec_get_msg(&m, segs[s], k ? XPMEM_RDWR : XPMEM_RDONLY, 100 + s * 2 + k);
			sec_send(fd, &m);
			long *v = &r->v[s * 10 + k * 5];
			v[0] = sec_recv(fd, &m, fds, &nfds, 5000);
			v[1] = m.type;
			v[2] = m.status;
			v[3] = nfds;
			v[4] = (long)m.seq;
		}
}

static void start_exporter(struct peer *e, struct ctx *c)
{
	peer_start(e, PEER_ARENA);
	c->epid = e->pid;
	c->buf = (uintptr_t)peer_ok(e, "malloc %lu", LEN);
	peer_ok(e, "fill %#lx %lu 5", c->buf, LEN);
}

START_TEST(t_raw_eacces)
{
	if (!sec_need_root("cross-uid EACCES"))
		return;
	struct peer e;
	struct ctx c;
	start_exporter(&e, &c);
	c.seg = peer_ok(&e, "make %#lx %lu 0600", c.buf, LEN);
	c.seg2 = peer_ok(&e, "make 0 %#lx 0600", MAXSZ);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(65534, raw_two_gets, &c, &rfd);
	sec_collect(pid, rfd, &r, 20000);
	ck_assert_msg(r.v[30] >= 0, "raw connect: %s", strerror((int)-r.v[30]));
	for (int i = 0; i < 4; i++) {
		long *v = &r.v[(i / 2) * 10 + (i % 2) * 5];
		ck_assert_msg(v[0] == (long)sizeof(struct uxp_msg), "reply %d: length %ld", i, v[0]);
		ck_assert_int_eq(v[1], UXP_MSG_GET_REPLY);
		ck_assert_msg(v[2] == -EACCES, "GET %d of a 0600 segment by nobody: status %ld, want -EACCES", i, v[2]);
		ck_assert_msg(v[3] == 0, "GET %d refused but %ld descriptor(s) came with the reply", i, v[3]);
		ck_assert_int_eq(v[4], 100 + i);
	}
	peer_stop(&e);
}
END_TEST

/* API level: v[0] first get ret, v[1] errno, v[2..4] fd counts, v[5] arena fds, v[6] later failures */
static void api_gets(void *arg, struct sec_res *r)
{
	struct ctx *c = arg;
	r->v[2] = tu_count_fds();
	xpmem_apid_t a = xpmem_get(c->seg, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
	r->v[0] = a;
	r->v[1] = errno;
	r->v[3] = tu_count_fds();
	for (int i = 0; i < 20; i++) {
		errno = 0;
		a = xpmem_get(i & 1 ? c->seg2 : c->seg, i & 2 ? XPMEM_RDWR : XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL);
		if (a == -1 && errno == EACCES)
			r->v[6]++;
	}
	r->v[4] = tu_count_fds();
	r->v[5] = sec_count_arena_fds();
}

START_TEST(t_api_eacces)
{
	if (!sec_need_root("cross-uid EACCES"))
		return;
	struct peer e;
	struct ctx c;
	start_exporter(&e, &c);
	c.seg = peer_ok(&e, "make 0 %#lx 0600", MAXSZ);
	c.seg2 = peer_ok(&e, "make %#lx %lu 0640", c.buf, LEN);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(65534, api_gets, &c, &rfd);
	sec_collect(pid, rfd, &r, 30000);
	ck_assert_msg(r.v[0] == -1 && r.v[1] == EACCES, "xpmem_get by nobody of a 0600 segment: %ld errno %ld",
		      r.v[0], r.v[1]);
	ck_assert_int_eq(r.v[6], 20);
	ck_assert_msg(r.v[3] <= r.v[2] + 2, "first refused get left %ld descriptors (before %ld)", r.v[3], r.v[2]);
	ck_assert_msg(r.v[4] == r.v[3], "20 refused gets changed the descriptor count %ld -> %ld", r.v[3], r.v[4]);
	ck_assert_msg(r.v[5] == 0, "refused importer holds %ld arena descriptors", r.v[5]);
	peer_stop(&e);
}
END_TEST

/* one GET on seg: v[0] status, v[1] nfds, v[2] arena_size, v[3] seg_size, v[4] seg_vaddr,
 * v[5] arena_base; fds[0] left in v[6] */
static void raw_get_one(int fd, int64_t seg, uint32_t flags, long *v)
{
	struct uxp_msg m;
	int fds[4] = { -1, -1, -1, -1 }, nfds;
	sec_get_msg(&m, seg, flags, 1);
	sec_send(fd, &m);
	long n = sec_recv(fd, &m, fds, &nfds, 5000);
	v[0] = n == (long)sizeof(m) ? m.status : -9999;
	v[1] = nfds;
	v[2] = (long)m.arena_size;
	v[3] = (long)m.seg_size;
	v[4] = (long)m.seg_vaddr;
	v[5] = (long)m.arena_base;
	v[6] = fds[0];
}

static void raw_partial(void *arg, struct sec_res *r)
{
	struct ctx *c = arg;
	int fd = sec_connect(c->epid);
	r->v[30] = fd;
	if (fd < 0)
		return;
	raw_get_one(fd, c->seg, XPMEM_RDONLY, &r->v[0]);
	raw_get_one(fd, c->seg2, XPMEM_RDWR, &r->v[10]);
}

START_TEST(t_partial_cross_uid)
{
	if (!sec_need_root("cross-uid partial segment"))
		return;
	struct peer e, i;
	struct ctx c;
	start_exporter(&e, &c);
	c.seg = peer_ok(&e, "make %#lx %lu 0644", c.buf, LEN);
	c.seg2 = peer_ok(&e, "make %#lx %lu 0666", c.buf, LEN);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(65534, raw_partial, &c, &rfd);
	sec_collect(pid, rfd, &r, 20000);
	for (int k = 0; k < 2; k++) {
		long *v = &r.v[k * 10];
		ck_assert_msg(v[0] == 0, "GET %d of a readable partial segment: status %ld", k, v[0]);
		ck_assert_msg(v[1] == 0 && v[2] == 0,
			      "another uid got %ld descriptor(s) / arena size %#lx for a partial segment: "
			      "it could read all of the exporter's heap", v[1], v[2]);
		ck_assert_int_eq(v[3], LEN);
	}
	/* API: attachments of it are holes */
	peer_start(&i, PEER_PLAIN);
	ck_assert_int_gt(peer_ok(&i, "drop"), 0);
	long long apid = peer_ok(&i, "get %lld %d", c.seg, XPMEM_RDONLY);
	long long at = peer_ok(&i, "attach %lld 0 %lu 0", apid, LEN);
	const char *s = peer_cmd(&i, "rd %#llx", at);
	ck_assert_msg(strcmp(s, "sig 7") == 0, "reading a cross-uid partial attachment: '%s', want SIGBUS", s);
	s = peer_cmd(&i, "rd %#llx", at + LEN - 8);
	ck_assert_msg(strcmp(s, "sig 7") == 0, "reading the end of a cross-uid partial attachment: '%s'", s);
	peer_stop(&i);
	peer_stop(&e);
}
END_TEST

/* whole address space 0666: the descriptor maps the whole arena read-write.
 * v[0..6] GET; v[7] word read at buf, v[8] mmap errno, v[9] word read at secret */
struct whole {
	struct ctx c;
	uintptr_t secret;
};

static void raw_whole(void *arg, struct sec_res *r)
{
	struct whole *w = arg;
	int fd = sec_connect(w->c.epid);
	r->v[30] = fd;
	if (fd < 0)
		return;
	raw_get_one(fd, w->c.seg, XPMEM_RDWR, &r->v[0]);
	if (r->v[0] != 0 || r->v[6] < 0)
		return;
	uintptr_t base = (uintptr_t)r->v[5];
	size_t size = (size_t)r->v[2];
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, (int)r->v[6], 0);
	if (p == MAP_FAILED) {
		r->v[8] = errno;
		return;
	}
	r->v[7] = (long)*(uint64_t *)(p + (w->c.buf - base));
	r->v[9] = (long)*(uint64_t *)(p + (w->secret - base));
	*(uint64_t *)(p + (w->secret - base) + 8) = 0x5ec7e7;
}

START_TEST(t_whole_0666)
{
	if (!sec_need_root("cross-uid whole address space"))
		return;
	struct peer e;
	struct whole w;
	start_exporter(&e, &w.c);
	/* memory the application never meant to share, next to the segment */
	w.secret = (uintptr_t)peer_ok(&e, "malloc %lu", PAGE);
	peer_ok(&e, "fill %#lx %lu 77", w.secret, PAGE);
	w.c.seg = peer_ok(&e, "make 0 %#lx 0666", MAXSZ);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(65534, raw_whole, &w, &rfd);
	sec_collect(pid, rfd, &r, 20000);
	ck_assert_msg(r.v[0] == 0 && r.v[1] == 1 && r.v[2] > 0,
		      "whole-address-space 0666 GET RDWR by nobody: status %ld nfds %ld arena %#lx", r.v[0],
		      r.v[1], r.v[2]);
	ck_assert_msg(r.v[8] == 0, "mapping the arena descriptor: %s", strerror((int)r.v[8]));
	ck_assert_int_eq((uint64_t)r.v[7], st_pattern(5, 0));
	/* documented exposure: every heap allocation, read-write */
	ck_assert_int_eq((uint64_t)r.v[9], st_pattern(77, 0));
	ck_assert_int_eq(peer_ok(&e, "rd %#lx", w.secret + 8), 0x5ec7e7);
	peer_stop(&e);
}
END_TEST

/* read-only grant: v[0..6] GET RDONLY; v[7] O_ACCMODE; v[8] mmap RW errno;
 * v[9] mprotect errno; v[10] reopen O_RDWR fd/-errno; v[11] word read;
 * v[12..18] GET RDWR; v[19] fallocate punch errno; v[20] ftruncate errno;
 * v[21] write() errno; v[22] mmap via reopened fd errno */
static void raw_rdonly(void *arg, struct sec_res *r)
{
	struct ctx *c = arg;
	int fd = sec_connect(c->epid);
	r->v[30] = fd;
	if (fd < 0)
		return;
	raw_get_one(fd, c->seg, XPMEM_RDONLY, &r->v[0]);
	raw_get_one(fd, c->seg, XPMEM_RDWR, &r->v[12]);
	int afd = (int)r->v[6];
	if (r->v[0] != 0 || afd < 0)
		return;
	size_t size = (size_t)r->v[2];
	r->v[7] = fcntl(afd, F_GETFL) & O_ACCMODE;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, afd, 0);
	r->v[8] = p == MAP_FAILED ? errno : 0;
	p = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_NORESERVE, afd, 0);
	if (p != MAP_FAILED) {
		r->v[11] = (long)*(uint64_t *)((char *)p + (c->buf - (uintptr_t)r->v[5]));
		r->v[9] = mprotect(p, PAGE, PROT_READ | PROT_WRITE) ? errno : 0;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", afd);
	int rw = open(path, O_RDWR | O_CLOEXEC);
	r->v[10] = rw < 0 ? -errno : rw;
	if (rw >= 0) {
		void *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, (off_t)(c->buf - (uintptr_t)r->v[5]));
		r->v[22] = q == MAP_FAILED ? errno : 0;
		if (q != MAP_FAILED)
			((volatile char *)q)[64] = 'X'; /* a write the exporter would see */
	}
	r->v[19] = fallocate(afd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)PAGE) ? errno : 0;
	r->v[20] = ftruncate(afd, 0) ? errno : 0;
	r->v[21] = write(afd, "x", 1) < 0 ? errno : 0;
}

START_TEST(t_rdonly_no_upgrade)
{
	if (!sec_need_root("cross-uid read-only grant"))
		return;
	struct peer e;
	struct ctx c;
	start_exporter(&e, &c);
	c.seg = peer_ok(&e, "make 0 %#lx 0644", MAXSZ);
	int rfd;
	struct sec_res r;
	pid_t pid = sec_spawn(65534, raw_rdonly, &c, &rfd);
	sec_collect(pid, rfd, &r, 20000);
	ck_assert_msg(r.v[0] == 0 && r.v[1] == 1, "GET RDONLY of a whole-AS 0644 segment: status %ld nfds %ld",
		      r.v[0], r.v[1]);
	ck_assert_msg(r.v[12] == -EACCES && r.v[13] == 0,
		      "second GET RDWR on a 0644 segment by another uid: status %ld nfds %ld, want -EACCES and none",
		      r.v[12], r.v[13]);
	ck_assert_int_eq(r.v[7], O_RDONLY);
	ck_assert_int_eq((uint64_t)r.v[11], st_pattern(5, 0));
	ck_assert_msg(r.v[8] == EACCES, "mmap(PROT_WRITE, MAP_SHARED) of a read-only grant: errno %ld", r.v[8]);
	ck_assert_msg(r.v[9] == EACCES, "mprotect(PROT_WRITE) of a read-only grant: errno %ld", r.v[9]);
	ck_assert_msg(r.v[19] == EBADF, "fallocate(PUNCH_HOLE) through a read-only grant: errno %ld", r.v[19]);
	ck_assert_msg(r.v[20] == EINVAL || r.v[20] == EBADF, "ftruncate through a read-only grant: errno %ld", r.v[20]);
	ck_assert_msg(r.v[21] == EBADF, "write() through a read-only grant: errno %ld", r.v[21]);
	ck_assert_msg(r.v[10] < 0,
		      "another uid reopened its read-only arena descriptor O_RDWR via /proc/self/fd "
		      "(mmap RW of it: errno %ld): the read-only grant is upgradable", r.v[22]);
	ck_assert_int_eq(peer_ok(&e, "rd %#lx", c.buf + 64), (long long)st_pattern(5, 8));
	peer_stop(&e);
}
END_TEST

int main(void)
{
	tu_require_preload(); /* its peers run with the arena preload */
	st_init();
	Suite *s = suite_create("security-access");
	TCase *tc = tcase_create("access");
	tcase_set_timeout(tc, tu_guard_s(40));
	tcase_add_test(tc, t_raw_eacces);
	tcase_add_test(tc, t_api_eacces);
	tcase_add_test(tc, t_partial_cross_uid);
	tcase_add_test(tc, t_whole_0666);
	tcase_add_test(tc, t_rdonly_no_upgrade);
	suite_add_tcase(s, tc);
	return st_run(s);
}
