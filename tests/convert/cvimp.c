/* cvimp.c - see cvimp.h */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "cvimp.h"

static char peer_path[4096];

int cv_start(struct peer *p)
{
	if (!peer_path[0])
		tu_builddir_path("tests/convert/cvpeer", peer_path, sizeof(peer_path));
	peer_spawn(p, peer_path, PEER_PLAIN); /* the point: no arena */
	long long v[4];
	peer_okv(p, v, "hello");
	int level = (int)v[1];
	ck_assert_msg(level >= UXPMEM_EXPORT_USER,
		      "exporter (uid %d) export level %d: without userfaultfd memory outside the arena "
		      "cannot be exported, this test cannot run", (int)getuid(), level);
	return level;
}

void cv_become_nobody(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "not root: the unprivileged case runs as uid %d\n", (int)getuid());
		return;
	}
	char src[4096], dir[] = "/tmp/uxpmem-cv.XXXXXX";
	tu_builddir_path("tests/convert/cvpeer", src, sizeof(src));
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	snprintf(peer_path, sizeof(peer_path), "%s/cvpeer", dir);
	int fi = open(src, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fi >= 0, "%s: %s", src, strerror(errno));
	int fo = open(peer_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ck_assert(fo >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(fi, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(tu_write_all(fo, buf, (size_t)n), 0);
	close(fi);
	close(fo);
	ck_assert_msg(tu_drop_to_nobody() == 0, "cannot become nobody: %s", strerror(errno));
	/* the copy stays in /tmp (the test process is nobody now): tiny */
}

xpmem_apid_t cv_get_all(struct peer *e, long long *segid)
{
	long long s = peer_ok(e, "make 0 %#lx 0600", (unsigned long)XPMEM_MAXADDR_SIZE);
	ck_assert_int_gt(s, 0);
	errno = 0;
	xpmem_apid_t a = xpmem_get(s, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_msg(a > 0, "get(%lld) errno %d (%s)", s, errno, strerror(errno));
	if (segid)
		*segid = s;
	return a;
}

void *cv_attach(xpmem_apid_t apid, uintptr_t off, size_t size)
{
	struct xpmem_addr ad = { apid, (off_t)off };
	errno = 0;
	void *p = xpmem_attach(ad, size, NULL);
	ck_assert_msg(p != ATTACH_FAILED, "attach(%lld, %#lx, %#zx) errno %d (%s)", (long long)apid, off, size,
		      errno, strerror(errno));
	return p;
}

#define MAXEV 256
static struct uxpmem_revoke_event evs[MAXEV];
static int nev, evfd = -1;

void cv_events_init(void)
{
	evfd = uxpmem_revoke_fd();
	ck_assert_msg(evfd >= 0, "uxpmem_revoke_fd: %s", strerror(errno));
	nev = 0;
}

static void drain(void)
{
	struct uxpmem_revoke_event ev[16];
	int n;
	while ((n = uxpmem_revoke_poll(ev, 16)) > 0)
		for (int i = 0; i < n; i++) {
			ck_assert_msg(nev < MAXEV, "more than %d revocation events", MAXEV);
			evs[nev++] = ev[i];
		}
	ck_assert_int_ge(n, 0);
}

int cv_events_wait(int n, int ms)
{
	long long end = st_now_ms() + tu_guard_ms(ms);
	for (;;) {
		drain();
		long long left = end - st_now_ms();
		if (nev >= n || left <= 0)
			return nev;
		struct pollfd p = { evfd, POLLIN, 0 };
		poll(&p, 1, (int)left);
	}
}

int cv_events_count(void)
{
	drain();
	return nev;
}

const struct uxpmem_revoke_event *cv_event(int i)
{
	ck_assert(i >= 0 && i < nev);
	return &evs[i];
}

void cv_events_clear(void)
{
	drain();
	nev = 0;
}

int cv_rd(const void *p, uint64_t *v)
{
	unsigned char b;
	int sig = tu_probe_read(p, &b);
	if (!sig && v)
		*v = *(const volatile uint64_t *)p;
	return sig;
}
