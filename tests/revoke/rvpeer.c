/* rvpeer.c - the exporter/importer process of the revocation tests,
 * commanded line by line on stdin and answering one line on stdout:
 *   "ok [values...]"  |  "err ERRNO"  |  "sig SIGNO"  |  "bad OFFSET"
 * (the protocol of tests/shm/peer, plus revocation commands).
 *
 * Every event this process receives is recorded with a tag: the tag of
 * the callback registration that ran (per-apid or default), or "fd" for
 * events dequeued with uxpmem_revoke_poll() after poll() on
 * uxpmem_revoke_fd().  Each record carries a probe of the apid's first
 * live attachment made the moment the event was seen: in a callback with
 * process_vm_readv() (errno, the dispatcher thread blocks all signals so
 * a SIGBUS there would kill us), in the fd form with a real read (signal
 * number).  Uses only the public API (<xpmem.h>, <uxpmem.h>).
 *
 * Commands (numbers decimal or 0x-hex):
 *   hello | exit | malloc SZ | fill A SZ SEED | check A SZ SEED
 *   make VA SZ MODE | remove SEG | get SEG FLAGS | release AP
 *   attach AP OFF SZ [FIXED] | detach A | rd A | vmread A
 *   handler AP TAG MODE      MODE: rec | clean | block | none (cb NULL)
 *   fdinit | fdwait N MS | fdpeek MS | count TAG | wait TAG N MS
 *   ev TAG I -> ok seq reason apid segid addr size offset length t_ns probe
 *   next SEG SZ SEED | cleanres | unblock | fork SEG MS | forkres
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "testutil.h"
#include "peerutil.h"

#define MAXREC 512
#define MAXATT 128
#define MAXREG 64

struct rec {
	char tag[16];
	struct uxpmem_revoke_event ev;
	long long t_ns;
	int probe; /* callbacks: errno of process_vm_readv (0 = readable); fd: signal; -1: no attachment */
};

struct att {
	xpmem_apid_t apid;
	void *addr;
	size_t size;
	int live;
};

enum { M_REC, M_CLEAN, M_BLOCK };

struct reg {
	char tag[16];
	int mode;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct rec recs[MAXREC];
static int nrec;
static struct att atts[MAXATT];
static int natt;
static struct reg regs[MAXREG];
static int nreg;
static int blocked_release; /* "unblock" sets it */

/* what a "clean" callback gets and verifies after releasing the revoked apid */
static xpmem_segid_t next_seg;
static size_t next_size;
static uint64_t next_seed;
static struct {
	int done, det_fail, rel_rc, rel_errno, att_ok, data_ok;
	xpmem_apid_t got;
} cres;



static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (i + 1) * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	return x;
}

/* Read len bytes at addr of this process without touching them (no signal
 * on a revoked page: EFAULT).  0 or errno. */
static int vm_read(const void *addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	return n == (ssize_t)len ? 0 : n < 0 ? errno : EIO;
}

/* Caller holds mu. */
static struct att *first_live_att(xpmem_apid_t apid)
{
	for (int i = 0; i < natt; i++)
		if (atts[i].live && atts[i].apid == apid)
			return &atts[i];
	return NULL;
}

static int count_tag(const char *tag)
{
	int n = 0;
	for (int i = 0; i < nrec; i++)
		n += !strcmp(recs[i].tag, tag);
	return n;
}

/* Caller holds mu. */
static void record(const char *tag, const struct uxpmem_revoke_event *ev, long long t, int probe)
{
	if (nrec < MAXREC) {
		struct rec *r = &recs[nrec++];
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
		r->ev = *ev;
		r->t_ns = t;
		r->probe = probe;
	}
	pthread_cond_broadcast(&cv);
}

/* In the callback: detach the revoked apid's attachments, release it, then
 * get, attach and read another (live) segment. */
static void clean(const struct uxpmem_revoke_event *ev)
{
	void *mine[MAXATT];
	int n = 0, det_fail = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < natt; i++)
		if (atts[i].live && atts[i].apid == ev->apid) {
			mine[n++] = atts[i].addr;
			atts[i].live = 0;
		}
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < n; i++)
		det_fail += xpmem_detach(mine[i]) != 0;
	int rel = xpmem_release(ev->apid);
	int rel_errno = rel ? errno : 0;
	int att_ok = 0, data_ok = 0;
	xpmem_apid_t got = 0;
	if (next_seg > 0) {
		got = xpmem_get(next_seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
		if (got > 0) {
			struct xpmem_addr a = { got, 0 };
			uint64_t *p = xpmem_attach(a, next_size, NULL);
			if (p != (void *)-1) {
				uint64_t w[2] = { 0, 0 };
				att_ok = 1;
				data_ok = vm_read(p, w, sizeof(w)) == 0 && w[0] == pattern(next_seed, 0) &&
					  w[1] == pattern(next_seed, 1);
				pthread_mutex_lock(&mu);
				if (natt < MAXATT)
					atts[natt++] = (struct att){ got, p, next_size, 1 };
				pthread_mutex_unlock(&mu);
			}
		}
	}
	pthread_mutex_lock(&mu);
	cres.det_fail = det_fail;
	cres.rel_rc = rel;
	cres.rel_errno = rel_errno;
	cres.got = got;
	cres.att_ok = att_ok;
	cres.data_ok = data_ok;
	cres.done = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void on_revoke(const struct uxpmem_revoke_event *ev, void *arg)
{
	struct reg *g = arg;
	long long t = now_ns();
	uint64_t w;
	pthread_mutex_lock(&mu);
	struct att *a = first_live_att(ev->apid);
	int probe = a ? vm_read(a->addr, &w, sizeof(w)) : -1;
	record(g->tag, ev, t, probe);
	pthread_mutex_unlock(&mu);
	if (g->mode == M_CLEAN) {
		clean(ev);
	} else if (g->mode == M_BLOCK) {
		struct timespec end;
		clock_gettime(CLOCK_REALTIME, &end);
		end.tv_sec += 20; /* bounded: the test gives up long before */
		pthread_mutex_lock(&mu);
		while (!blocked_release)
			if (pthread_cond_timedwait(&cv, &mu, &end) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&mu);
	}
}

/* Dequeue what the fd form has, recording each event with a real read of
 * the apid's first live attachment (must raise SIGBUS by now). */
static int drain_fd(void)
{
	struct uxpmem_revoke_event ev[8];
	int n, total = 0;
	while ((n = uxpmem_revoke_poll(ev, 8)) > 0) {
		long long t = now_ns();
		for (int i = 0; i < n; i++) {
			pthread_mutex_lock(&mu);
			struct att *a = first_live_att(ev[i].apid);
			void *addr = a ? a->addr : NULL;
			pthread_mutex_unlock(&mu);
			unsigned char b;
			int probe = addr ? tu_probe_read(addr, &b) : -1;
			pthread_mutex_lock(&mu);
			record("fd", &ev[i], t, probe);
			pthread_mutex_unlock(&mu);
		}
		total += n;
	}
	return n < 0 ? -1 : total;
}

static struct reg *new_reg(const char *tag, int mode)
{
	for (int i = 0; i < nreg; i++)
		if (!strcmp(regs[i].tag, tag) && regs[i].mode == mode)
			return &regs[i];
	if (nreg == MAXREG)
		return NULL;
	snprintf(regs[nreg].tag, sizeof(regs[nreg].tag), "%s", tag);
	regs[nreg].mode = mode;
	return &regs[nreg++];
}

/* ---- fork: the child reports what it received ---- */
struct forkres {
	int parent_apids, enoent, own_rc, def_rc, fd_ok;
	long long own_apid;
	int cb_own, cb_parent, def_any, fd_own, fd_parent;
};
static int fork_pipe = -1;
static pid_t fork_pid;

static int is_parent_apid(const xpmem_apid_t *pa, int n, xpmem_apid_t a)
{
	for (int i = 0; i < n; i++)
		if (pa[i] == a)
			return 1;
	return 0;
}

static void fork_child(int wr, xpmem_segid_t seg, int ms)
{
	struct forkres r = { 0 };
	xpmem_apid_t pa[MAXATT];
	int npa = 0;
	pthread_mutex_init(&mu, NULL);
	pthread_cond_init(&cv, NULL);
	nrec = 0;
	for (int i = 0; i < natt; i++)
		if (!is_parent_apid(pa, npa, atts[i].apid))
			pa[npa++] = atts[i].apid;
	natt = 0;
	r.parent_apids = npa;
	static struct reg own = { "child", M_REC }, dflt = { "childdef", M_REC };
	for (int i = 0; i < npa; i++)
		r.enoent += uxpmem_revoke_handler(pa[i], on_revoke, &own) == -1 && errno == ENOENT;
	r.def_rc = uxpmem_revoke_handler(0, on_revoke, &dflt);
	int fd = uxpmem_revoke_fd();
	r.fd_ok = fd >= 0;
	r.own_apid = xpmem_get(seg, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	r.own_rc = r.own_apid > 0 ? uxpmem_revoke_handler(r.own_apid, on_revoke, &own) : -1;
	char c = 'r';
	if (write(wr, &c, 1) != 1)
		_exit(3);
	long long end = now_ns() + (long long)tu_guard_ms(ms) * 1000000LL, quiet_end = 0;
	for (;;) {
		long long t = now_ns();
		if (t >= end || (quiet_end && t >= quiet_end))
			break;
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 10) > 0) {
			struct uxpmem_revoke_event ev[8];
			int n = uxpmem_revoke_poll(ev, 8);
			for (int i = 0; i < n; i++) {
				r.fd_own += ev[i].apid == r.own_apid;
				r.fd_parent += is_parent_apid(pa, npa, ev[i].apid);
			}
		}
		pthread_mutex_lock(&mu);
		int own_seen = 0;
		for (int i = 0; i < nrec; i++)
			own_seen |= recs[i].ev.apid == r.own_apid;
		pthread_mutex_unlock(&mu);
		if (own_seen && r.fd_own && !quiet_end)
			quiet_end = now_ns() + 500000000LL; /* then 500 ms for anything else */
	}
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nrec; i++) {
		if (!strcmp(recs[i].tag, "child")) {
			r.cb_own += recs[i].ev.apid == r.own_apid;
			r.cb_parent += is_parent_apid(pa, npa, recs[i].ev.apid);
		} else {
			r.def_any++;
		}
	}
	pthread_mutex_unlock(&mu);
	_exit(write(wr, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 4);
}

static int read_timeout(int fd, void *buf, size_t len, int ms)
{
	char *p = buf;
	long long end = now_ns() + (long long)tu_guard_ms(ms) * 1000000LL;
	while (len) {
		long long left = (end - now_ns()) / 1000000LL;
		if (left <= 0)
			return ETIMEDOUT;
		struct pollfd pf = { fd, POLLIN, 0 };
		if (poll(&pf, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(void)
{
	char line[1024];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL;
		char *cmd = strtok_r(line, " \t\n", &save);
		if (!cmd)
			continue;
		errno = 0;
		if (!strcmp(cmd, "hello")) {
			pu_reply("ok %d", (int)getpid());
		} else if (!strcmp(cmd, "exit")) {
			pu_reply("ok %lld", now_ns());
			exit(0);
		} else if (!strcmp(cmd, "malloc")) {
			void *m = NULL;
			int e = posix_memalign(&m, 4096, pu_num(&save));
			e ? pu_reply("err %d", e) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "fill") || !strcmp(cmd, "check")) {
			uint64_t *w = (uint64_t *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			long bad = -1;
			for (size_t i = 0; i < sz / 8 && bad < 0; i++) {
				if (cmd[0] == 'f')
					w[i] = pattern(seed, i);
				else if (w[i] != pattern(seed, i))
					bad = (long)i * 8;
			}
			bad < 0 ? pu_reply("ok") : pu_reply("bad %ld", bad);
		} else if (!strcmp(cmd, "make")) {
			unsigned long long va = pu_num(&save), sz = pu_num(&save), mode = pu_num(&save);
			xpmem_segid_t s = xpmem_make((void *)(uintptr_t)va, (size_t)sz, XPMEM_PERMIT_MODE,
						     (void *)(uintptr_t)mode);
			s == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)s);
		} else if (!strcmp(cmd, "remove")) {
			long long s = (long long)pu_num(&save);
			long long t = now_ns();
			xpmem_remove(s) ? pu_reply("err %d", errno) : pu_reply("ok %lld", t);
		} else if (!strcmp(cmd, "get")) {
			long long s = (long long)pu_num(&save);
			int fl = (int)pu_num(&save);
			xpmem_apid_t a = xpmem_get(s, fl, XPMEM_PERMIT_MODE, NULL);
			a == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)a);
		} else if (!strcmp(cmd, "release")) {
			long long a = (long long)pu_num(&save);
			pthread_mutex_lock(&mu);
			for (int i = 0; i < natt; i++)
				if (atts[i].apid == a)
					atts[i].live = 0;
			pthread_mutex_unlock(&mu);
			xpmem_release(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "attach")) {
			struct xpmem_addr ad;
			ad.apid = (long long)pu_num(&save);
			ad.offset = (off_t)pu_num(&save);
			size_t sz = pu_num(&save);
			void *va = NULL;
			if (pu_num(&save)) { /* a fixed address: find a free range */
				va = mmap(NULL, sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (va == MAP_FAILED) {
					pu_reply("err %d", errno);
					continue;
				}
				munmap(va, sz);
			}
			void *r = xpmem_attach(ad, sz, va);
			if (r == (void *)-1) {
				pu_reply("err %d", errno);
				continue;
			}
			if (va && r != va) {
				pu_reply("err %d", EFAULT);
				continue;
			}
			pthread_mutex_lock(&mu);
			if (natt < MAXATT)
				atts[natt++] = (struct att){ ad.apid, r, sz, 1 };
			pthread_mutex_unlock(&mu);
			pu_reply("ok %#lx", (unsigned long)r);
		} else if (!strcmp(cmd, "detach")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			pthread_mutex_lock(&mu);
			for (int i = 0; i < natt; i++)
				if (atts[i].addr == a)
					atts[i].live = 0;
			pthread_mutex_unlock(&mu);
			xpmem_detach(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "rd")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			unsigned char b;
			int sig = tu_probe_read(a, &b);
			sig ? pu_reply("sig %d", sig) : pu_reply("ok %llu", (unsigned long long)*a);
		} else if (!strcmp(cmd, "vmread")) {
			uint64_t w;
			int e = vm_read((void *)(uintptr_t)pu_num(&save), &w, sizeof(w));
			e ? pu_reply("err %d", e) : pu_reply("ok %llu", (unsigned long long)w);
		} else if (!strcmp(cmd, "handler")) {
			long long a = (long long)pu_num(&save);
			char *tag = strtok_r(NULL, " \t\n", &save);
			char *mode = strtok_r(NULL, " \t\n", &save);
			if (!tag || !mode) {
				pu_reply("err %d", EINVAL);
				continue;
			}
			struct reg *g = NULL;
			if (strcmp(mode, "none")) {
				g = new_reg(tag, !strcmp(mode, "clean") ? M_CLEAN : !strcmp(mode, "block") ? M_BLOCK : M_REC);
				if (!g) {
					pu_reply("err %d", ENOMEM);
					continue;
				}
			}
			uxpmem_revoke_handler(a, g ? on_revoke : NULL, g) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "fdinit")) {
			int fd = uxpmem_revoke_fd();
			fd < 0 ? pu_reply("err %d", errno) : pu_reply("ok %d", fd);
		} else if (!strcmp(cmd, "fdwait")) {
			/* until N fd events were recorded in all, or MS ms pass */
			int want = (int)pu_num(&save), ms = (int)pu_num(&save);
			int fd = uxpmem_revoke_fd();
			long long end = now_ns() + (long long)tu_guard_ms(ms) * 1000000LL;
			int err = 0, have = 0;
			for (;;) {
				if (drain_fd() < 0) {
					err = errno;
					break;
				}
				pthread_mutex_lock(&mu);
				have = count_tag("fd");
				pthread_mutex_unlock(&mu);
				long long left = (end - now_ns()) / 1000000LL;
				if (have >= want || left <= 0)
					break;
				struct pollfd p = { fd, POLLIN, 0 };
				poll(&p, 1, (int)left);
			}
			err ? pu_reply("err %d", err) : pu_reply("ok %d", have);
		} else if (!strcmp(cmd, "fdpeek")) {
			/* is the descriptor readable (within MS), without dequeuing */
			struct pollfd p = { uxpmem_revoke_fd(), POLLIN, 0 };
			int r = poll(&p, 1, (int)pu_num(&save));
			r < 0 ? pu_reply("err %d", errno) : pu_reply("ok %d", r > 0 && (p.revents & POLLIN));
		} else if (!strcmp(cmd, "count")) {
			char *tag = strtok_r(NULL, " \t\n", &save);
			pthread_mutex_lock(&mu);
			int n = tag ? count_tag(tag) : nrec;
			pthread_mutex_unlock(&mu);
			pu_reply("ok %d", n);
		} else if (!strcmp(cmd, "wait")) {
			char *tag = strtok_r(NULL, " \t\n", &save);
			int want = (int)pu_num(&save), ms = tu_guard_ms((int)pu_num(&save));
			struct timespec end;
			clock_gettime(CLOCK_REALTIME, &end);
			end.tv_sec += ms / 1000;
			end.tv_nsec += (ms % 1000) * 1000000L;
			if (end.tv_nsec >= 1000000000L) {
				end.tv_sec++;
				end.tv_nsec -= 1000000000L;
			}
			pthread_mutex_lock(&mu);
			while (tag && count_tag(tag) < want)
				if (pthread_cond_timedwait(&cv, &mu, &end) == ETIMEDOUT)
					break;
			int n = tag ? count_tag(tag) : -1;
			pthread_mutex_unlock(&mu);
			pu_reply("ok %d", n);
		} else if (!strcmp(cmd, "ev")) {
			char *tag = strtok_r(NULL, " \t\n", &save);
			int want = (int)pu_num(&save), k = 0;
			struct rec r;
			int found = 0;
			pthread_mutex_lock(&mu);
			for (int i = 0; tag && i < nrec && !found; i++)
				if (!strcmp(recs[i].tag, tag) && k++ == want) {
					r = recs[i];
					found = 1;
				}
			pthread_mutex_unlock(&mu);
			if (!found)
				pu_reply("err %d", ENOENT);
			else
				pu_reply("ok %llu %d %lld %lld %#lx %zu %lld %zu %lld %d", r.ev.seq, r.ev.reason,
				      (long long)r.ev.apid, (long long)r.ev.segid, (unsigned long)r.ev.addr,
				      r.ev.size, (long long)r.ev.offset, r.ev.length, r.t_ns, r.probe);
		} else if (!strcmp(cmd, "next")) {
			next_seg = (xpmem_segid_t)pu_num(&save);
			next_size = pu_num(&save);
			next_seed = pu_num(&save);
			pu_reply("ok");
		} else if (!strcmp(cmd, "cleanres")) {
			/* wait (bounded) for a "clean" callback to finish */
			struct timespec end;
			clock_gettime(CLOCK_REALTIME, &end);
			end.tv_sec += 10;
			pthread_mutex_lock(&mu);
			while (!cres.done)
				if (pthread_cond_timedwait(&cv, &mu, &end) == ETIMEDOUT)
					break;
			int done = cres.done;
			pthread_mutex_unlock(&mu);
			if (!done)
				pu_reply("err %d", ETIMEDOUT);
			else
				pu_reply("ok %d %d %d %lld %d %d", cres.det_fail, cres.rel_rc, cres.rel_errno,
				      (long long)cres.got, cres.att_ok, cres.data_ok);
		} else if (!strcmp(cmd, "unblock")) {
			pthread_mutex_lock(&mu);
			blocked_release = 1;
			pthread_cond_broadcast(&cv);
			pthread_mutex_unlock(&mu);
			pu_reply("ok");
		} else if (!strcmp(cmd, "fork")) {
			xpmem_segid_t seg = (xpmem_segid_t)pu_num(&save);
			int ms = (int)pu_num(&save);
			int pfd[2];
			if (pipe(pfd)) {
				pu_reply("err %d", errno);
				continue;
			}
			pid_t pid = fork();
			if (pid == 0) {
				close(pfd[0]);
				fork_child(pfd[1], seg, ms);
			}
			close(pfd[1]);
			char c;
			int e = pid < 0 ? errno : read_timeout(pfd[0], &c, 1, 10000);
			if (e) {
				close(pfd[0]);
				pu_reply("err %d", e);
				continue;
			}
			fork_pipe = pfd[0];
			fork_pid = pid;
			pu_reply("ok %d", (int)pid);
		} else if (!strcmp(cmd, "forkres")) {
			/* forkres MS: the child's report, waiting up to MS ms */
			struct forkres r;
			int e = fork_pipe < 0 ? EINVAL : read_timeout(fork_pipe, &r, sizeof(r), (int)pu_num(&save));
			int st = fork_pipe < 0 ? -1 : tu_wait_child(fork_pid, 5000);
			if (fork_pipe >= 0)
				close(fork_pipe);
			fork_pipe = -1;
			if (e || st == -1 || !WIFEXITED(st) || WEXITSTATUS(st))
				pu_reply("err %d", e ? e : ECHILD);
			else
				pu_reply("ok %d %d %d %d %d %lld %d %d %d %d %d", r.parent_apids, r.enoent,
				      r.own_rc, r.def_rc, r.fd_ok, r.own_apid, r.cb_own, r.cb_parent,
				      r.def_any, r.fd_own, r.fd_parent);
		} else {
			pu_reply("err %d", ENOSYS);
		}
	}
	return 0;
}
