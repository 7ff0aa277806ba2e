/* cvpeer.c - the exporter of the conversion tests (tests/convert): a plain
 * process (no arena preload) whose glibc heap, thread stacks, .bss and
 * anonymous mmap memory the importer (the test) attaches.  Commanded line
 * by line on stdin, one reply line on stdout ("ok [v...]" | "err E" |
 * "sig S" | "bad OFF"), the protocol of tests/shm/peer.
 *
 * Command lines are read with read(2) into a private mapping that is never
 * exported: at UXPMEM_EXPORT_USER a system call writing memory that is
 * being converted would fail with EFAULT (documented), and stdio's buffer
 * lives on the heap the tests convert.
 *
 *   hello -> ok PID LEVEL | level | exit
 *   make VA SZ MODE | remove SEG
 *   malloc SZ | memalign SZ | free A | freemalloc A SZ SEED -> ok NEW SAME
 *   fill A SZ SEED | check A SZ SEED | zero A SZ (check zeros) | rd A | wr A V
 *   mmapanon SZ | mmapshared SZ | mmapfixed A SZ SEED | munmap A SZ |
 *   munmapeach A N (page by page) -> ok MS
 *   mremap A SZ -> ok NEW (moved elsewhere) | madv A SZ (DONTNEED, then
 *   verify zeros at once: ok | bad OFF)
 *   static -> ok BSS BSSLEN DATA DATALEN | mstack -> ok A LEN
 *   stackthr -> ok A LEN T (a thread spinning with a buffer on its stack:
 *   word 0 = its iteration count, word 2 = echo of word 1; T its
 *   pthread_t, its descriptor) | stackstop -> ok COUNT
 *   ctrstart NT [data] -> ok BASE STRIDE NCHUNK (counters in the heap, or
 *   with "data" in an initialized global array: .data) | ctrstop -> ok
 *   MISMATCH LOST TOTAL WSUM
 *   pipewait -> ok (a thread blocks in read(2) of a pipe) | pipefeed N -> ok
 *   GOT ERRNO (N bytes written; what that read returned)
 *   sigblock -> ok (a thread blocking every signal spins) | sigblockstop
 *   hooked A SZ -> ok N (mmap/munmap/mremap/madvise calls seen by our
 *   memory hooks that touch [A, A+SZ), as UCX's hooks would see them) |
 *   hookarm A (from now on the hooks take a lock and count in the word at
 *   A) | hookhold (a thread keeps taking that lock and writing A) |
 *   hookstop -> ok ROUNDS (stops it, disarms)
 *   fork SEED PSEED A1 S1 [A2 S2] -> ok CHILDPID | forkend -> ok CHILDSTATUS
 *   cas A N NT | join | maxaddr
 *   tag A SZ GEN (word 0 of page i = pu_tag(i, GEN)) | churn A NHOLES HOLEPAGES
 *   (a thread makes and fills holes in [A, ...) in loops: see churn_main) |
 *   churnstop -> ok ROUNDS | err E (what failed)
 *   convbytes A SZ -> ok N (bytes of it mapped from a conversion memfd)
 *   bgmunmap A SZ (munmap in a thread) | bgjoin -> ok | err E
 *   forkserve -> ok CHILDPID from the child, which serves the next commands
 *   until "exit"; then the parent answers ok STATUS
 *   race A OP (a thread does OP to page A+4096 while the converter has A
 *   frozen: see rc_main) | racestop -> ok RACED BADOFF ACTED (BADOFF -1: P
 *   is right; ACTED 0: the thread saw no freeze and left P alone)
 *   tcb -> ok A (the main thread's pthread_self(): its descriptor) |
 *   tidcheck [T] -> ok | err E (another thread signals the main thread, or
 *   thread T, with 0 and reads its CPU clock: its descriptor still holds
 *   its tid)
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "testutil.h"
#include "cvtest.h"
#include "peerutil.h"

static char bss_area[16 * 4096] __attribute__((aligned(4096)));
static char data_area[4 * 4096] __attribute__((aligned(4096))) = { 1 };
/* initialized, so in .data (file-backed private): counters of "ctrstart N data" */
static char dctr_area[CV_DNCHUNK * CV_CHUNK] __attribute__((aligned(4096))) = { 1 };

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	char out[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, sizeof(out) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > (int)sizeof(out) - 2)
		n = (int)sizeof(out) - 2;
	out[n++] = '\n';
	if (tu_write_all(1, out, (size_t)n) < 0)
		_exit(3);
}

static void fill(void *p, size_t len, uint64_t seed)
{
	volatile uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = cv_pattern(seed, i);
}

static long check(const void *p, size_t len, uint64_t seed)
{
	const volatile uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != cv_pattern(seed, i))
			return (long)i * 8;
	return -1;
}

static long check_zero(const void *p, size_t len)
{
	const volatile uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return (long)i * 8;
	return -1;
}

/* ---- the spinning thread with a buffer on its stack ---- */
static pthread_t stk_th;
static volatile int stk_stop, stk_running;
static uint64_t *volatile stk_buf;
static volatile uint64_t stk_count;
static pthread_mutex_t stk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stk_cv = PTHREAD_COND_INITIALIZER;

static void *stk_main(void *unused)
{
	(void)unused;
	uint64_t buf[CV_STACK_BUF / 8] __attribute__((aligned(4096)));
	memset(buf, 0, sizeof(buf));
	uint64_t n = 0;
	stk_buf = buf;
	__atomic_store_n(&stk_running, 1, __ATOMIC_RELEASE);
	/* user-mode only while exported: no system call writes this stack */
	while (!__atomic_load_n(&stk_stop, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&buf[0], ++n, __ATOMIC_RELEASE);
		uint64_t m = __atomic_load_n(&buf[1], __ATOMIC_ACQUIRE);
		if (m)
			__atomic_store_n(&buf[2], m, __ATOMIC_RELEASE);
		if ((n & 1023) == 0)
			sched_yield();
	}
	stk_count = n;
	pthread_mutex_lock(&stk_mu);
	stk_running = 2;
	pthread_cond_broadcast(&stk_cv);
	while (stk_running == 2) /* park: the frame (and buf) stays alive */
		pthread_cond_wait(&stk_cv, &stk_mu);
	pthread_mutex_unlock(&stk_mu);
	return NULL;
}

/* ---- counters spread across 64 MiB of glibc heap ---- */
static char *chunks[CV_NCHUNK];
static pthread_t ctr_th[CV_NT];
static uint64_t *tally[CV_NT];
static int ctr_nt, ctr_nch;
static volatile int ctr_stop;

static void *ctr_main(void *arg)
{
	int t = (int)(intptr_t)arg;
	uint64_t *ty = tally[t];
	while (!__atomic_load_n(&ctr_stop, __ATOMIC_RELAXED))
		for (int k = 0; k < ctr_nch; k++)
			for (int s = 0; s < CV_SLOTS; s++) {
				volatile uint64_t *c = (volatile uint64_t *)(chunks[k] + CV_CTR_OFF(s, t));
				*c = *c + 1; /* not atomic: only this thread writes it */
				ty[k * CV_SLOTS + s]++;
			}
	return NULL;
}

/* ---- memory hooks, as UCX (ucm) and Open MPI install them: every mmap,
 * munmap, mremap and madvise call of the process through the dynamic
 * linker (libxpmem's included) comes here first.  Each call is recorded;
 * armed ("hookarm A"), a call also takes hook_mu and counts itself in the
 * word at A: application memory and an application lock, as UCX's hooks
 * update its registration cache under its lock ---- */
#define MAX_HOOKED 4096
static uintptr_t hooked_lo[MAX_HOOKED], hooked_hi[MAX_HOOKED];
static unsigned nhooked;
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t *hook_word;
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
static int (*real_madvise)(void *, size_t, int);

/* the sanitizers' interceptors, when there are any (else libc's) */
__attribute__((constructor)) static void hooks_init(void)
{
	real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
	real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	real_madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
}

static void hook(const void *a, size_t len)
{
	unsigned i = __atomic_fetch_add(&nhooked, 1, __ATOMIC_RELAXED);
	if (i < MAX_HOOKED) {
		hooked_lo[i] = (uintptr_t)a;
		hooked_hi[i] = (uintptr_t)a + len;
	}
	volatile uint64_t *w = __atomic_load_n(&hook_word, __ATOMIC_ACQUIRE);
	if (w) {
		pthread_mutex_lock(&hook_mu);
		(*w)++;
		pthread_mutex_unlock(&hook_mu);
	}
}

void *mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	hook(a, len);
	return real_mmap ? real_mmap(a, len, prot, flags, fd, off)
			 : (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

int munmap(void *a, size_t len)
{
	hook(a, len);
	return real_munmap ? real_munmap(a, len) : (int)syscall(SYS_munmap, a, len);
}

int madvise(void *a, size_t len, int advice)
{
	hook(a, len);
	return real_madvise ? real_madvise(a, len, advice) : (int)syscall(SYS_madvise, a, len, advice);
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *to = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	hook(old, old_len);
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, to);
}

/* Calls seen that touch [a, a+len). */
static int hooked(uintptr_t a, size_t len)
{
	int n = 0;
	unsigned all = __atomic_load_n(&nhooked, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < all && i < MAX_HOOKED; i++)
		n += hooked_lo[i] < a + len && a < hooked_hi[i];
	return n;
}

/* An application thread that keeps taking the hooks' lock and writing the
 * word they update ("hookhold"), until "hookstop". */
static pthread_t hh_th;
static volatile int hh_stop;
static volatile uint64_t hh_rounds;

static void *hh_main(void *unused)
{
	(void)unused;
	while (!__atomic_load_n(&hh_stop, __ATOMIC_RELAXED)) {
		pthread_mutex_lock(&hook_mu);
		(*hook_word)++;
		pthread_mutex_unlock(&hook_mu);
		hh_rounds++;
		if ((hh_rounds & 255) == 0)
			sched_yield();
	}
	return NULL;
}

/* ---- a thread blocked in a system call while others are stopped ---- */
static int pw_fd[2] = { -1, -1 };
static pthread_t pw_th;
static ssize_t pw_got;
static int pw_errno;

static void *pw_main(void *unused)
{
	(void)unused;
	char b[64];
	pw_got = read(pw_fd[0], b, sizeof(b));
	pw_errno = pw_got < 0 ? errno : 0;
	return NULL;
}

/* ---- a thread that blocks every signal (it can never be stopped) ---- */
static pthread_t sb_th;
static volatile int sb_stop;
static volatile int sb_blocked; /* its signals are blocked: it can no longer be stopped */

static void *sb_main(void *unused)
{
	(void)unused;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	__atomic_store_n(&sb_blocked, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sb_stop, __ATOMIC_RELAXED))
		sched_yield();
	return NULL;
}

/* ---- fork ---- */
static pid_t fork_pid;
static int fork_go = -1;
struct region {
	char *a;
	size_t sz;
};

static void fork_child(int done_wr, int go_rd, uint64_t seed, const struct region *r, int nr)
{
	for (int i = 0; i < nr; i++)
		fill(r[i].a, r[i].sz, seed);
	char b = 1;
	if (write(done_wr, &b, 1) != 1)
		_exit(10);
	struct pollfd p = { go_rd, POLLIN, 0 };
	if (poll(&p, 1, tu_guard_ms(20000)) != 1 || read(go_rd, &b, 1) != 1)
		_exit(11);
	for (int i = 0; i < nr; i++)
		if (check(r[i].a, r[i].sz, seed) >= 0)
			_exit(20 + i); /* the parent's later writes reached the child */
	_exit(0);
}

static void tag(char *a, size_t sz, unsigned gen)
{
	for (size_t i = 0; i < sz / 4096; i++)
		*(volatile uint64_t *)(a + i * 4096) = pu_tag(i, gen);
}

/* ---- the churning thread: holes made and removed in an exported range ----
 * Hole k is pages [2k*HP, 2k*HP + HP) of the range: in round r it is
 * unmapped and mapped again, mapped over (MAP_FIXED), moved away with
 * mremap and mapped again, or dropped with MADV_DONTNEED, in turn; then its
 * pages are tagged with generation r. */
static char *ch_base;
static size_t ch_hole;
static int ch_nholes;
static pthread_t ch_th;
static volatile int ch_stop, ch_err;
static unsigned long ch_rounds;

static int churn_hole(char *h, size_t len, int op, char *scratch)
{
	const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
	switch (op) {
	case 0:
		if (munmap(h, len))
			return errno;
		/* never over what another thread mapped in the window */
		return mmap(h, len, rw, anon | MAP_FIXED_NOREPLACE, -1, 0) == h ? 0 : errno ? errno : EEXIST;
	case 1:
		return mmap(h, len, rw, anon | MAP_FIXED, -1, 0) == h ? 0 : errno;
	case 2:
		/* EFAULT: the hole spans mappings of different kinds (an
		 * importer's refault converted part of it): map over it instead */
		if (mremap(h, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, scratch) != scratch)
			return errno == EFAULT ? churn_hole(h, len, 1, scratch) : errno;
		if (mmap(scratch, len, PROT_NONE, anon | MAP_FIXED | MAP_NORESERVE, -1, 0) != scratch)
			return errno;
		return mmap(h, len, rw, anon | MAP_FIXED_NOREPLACE, -1, 0) == h ? 0 : errno ? errno : EEXIST;
	default:
		return madvise(h, len, MADV_DONTNEED) ? errno : 0;
	}
}

static void *churn_main(void *unused)
{
	(void)unused;
	char *scratch = mmap(NULL, ch_hole, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (scratch == MAP_FAILED) {
		ch_err = errno;
		return NULL;
	}
	for (unsigned long r = 0; !__atomic_load_n(&ch_stop, __ATOMIC_RELAXED) && !ch_err; r++) {
		for (int k = 0; k < ch_nholes && !ch_err; k++) {
			char *h = ch_base + (size_t)k * 2 * ch_hole;
			ch_err = churn_hole(h, ch_hole, (int)((r + (unsigned long)k) % 4), scratch);
			if (!ch_err)
				for (size_t i = 0; i < ch_hole / 4096; i++)
					*(volatile uint64_t *)(h + i * 4096) =
						pu_tag((size_t)(h - ch_base) / 4096 + i, (unsigned)r);
		}
		ch_rounds = r + 1;
	}
	munmap(scratch, ch_hole);
	return NULL;
}

/* ---- racing a conversion ("race A OP", "racestop"): a thread waits until
 * page A is write-protected by the converter's freeze (the page map's
 * uffd-wp bit) and the copy has passed the next page (its memfd's blocks), then does OP to
 * the next page P = A + 4096 (0: mmap MAP_FIXED over it, 1: MADV_DONTNEED,
 * 2: munmap + mmap MAP_FIXED_NOREPLACE) and writes a tag into P's word 0.
 * When the freeze is over, P must hold the tag and zeros elsewhere: the
 * conversion must not map its older copy over what the application did. */
#define RC_TAG 0x7a9c0ffee0ddf00dULL
static pthread_t rc_th;
static char *rc_base;
static int rc_op;
static volatile int rc_stop;
static int rc_raced, rc_acted, rc_err;
static long rc_bad = -1; /* offset in P of the first wrong word */

static int rc_frozen(int pm, const void *p)
{
	uint64_t e = 0;
	if (pread(pm, &e, sizeof(e), (off_t)((uintptr_t)p / 4096 * sizeof(e))) != (ssize_t)sizeof(e))
		return -1;
	return (e >> 57) & 1;
}

/* Blocks of the newest conversion memfd (a "memfd:uxpmem-conv" descriptor
 * whose inode is not in old[]), or -1; with old == NULL, records them. */
#define RC_MAXOLD 256
static ino_t rc_old[RC_MAXOLD];
static int rc_nold;

static long long rc_conv_blocks(int record)
{
	long long blocks = -1;
	for (int fd = 3; fd < 1024; fd++) {
		char path[64], link[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		struct stat sb;
		if (!strstr(link, "memfd:uxpmem-conv") || stat(path, &sb) < 0)
			continue;
		int old = 0;
		for (int i = 0; i < rc_nold && !old; i++)
			old = rc_old[i] == sb.st_ino;
		if (record && !old && rc_nold < RC_MAXOLD)
			rc_old[rc_nold++] = sb.st_ino;
		else if (!record && !old)
			blocks = (long long)sb.st_blocks;
	}
	return blocks;
}

static void *rc_main(void *unused)
{
	(void)unused;
	char *p = rc_base + 4096;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		rc_err = errno;
		return NULL;
	}
	while (!__atomic_load_n(&rc_stop, __ATOMIC_RELAXED) && rc_frozen(pm, rc_base) == 0)
		;
	if (__atomic_load_n(&rc_stop, __ATOMIC_RELAXED) || rc_frozen(pm, rc_base) != 1) {
		close(pm);
		return NULL; /* no freeze seen */
	}
	/* the converter copies now (milliseconds for 32 MiB): wait until its
	 * memfd has more than P's worth of pages (the copy is sequential),
	 * or give up when the freeze ends first */
	struct timespec ms1 = { 0, 1000000 };
	while (rc_frozen(pm, rc_base) == 1 && rc_conv_blocks(0) < 3 * 4096 / 512)
		;
	if (rc_frozen(pm, rc_base) != 1) {
		close(pm);
		return NULL;
	}
	const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
	int e = 0;
	if (rc_op == 0)
		e = mmap(p, 4096, rw, anon | MAP_FIXED, -1, 0) == p ? 0 : errno;
	else if (rc_op == 1)
		e = madvise(p, 4096, MADV_DONTNEED) ? errno : 0;
	else
		e = munmap(p, 4096) ? errno
		    : mmap(p, 4096, rw, anon | MAP_FIXED_NOREPLACE, -1, 0) == p ? 0 : errno ? errno : EEXIST;
	if (e) {
		rc_err = e;
		close(pm);
		return NULL;
	}
	*(volatile uint64_t *)p = RC_TAG;
	rc_acted = 1;
	/* still frozen after the write: the conversion's mmap comes after it */
	rc_raced = rc_frozen(pm, rc_base) == 1;
	for (int i = 0; rc_frozen(pm, rc_base) == 1 && i < tu_guard_ms(20000); i++)
		nanosleep(&ms1, NULL);
	close(pm);
	if (*(volatile uint64_t *)p != RC_TAG)
		rc_bad = 0;
	for (size_t i = 1; i < 4096 / 8 && rc_bad < 0; i++)
		if (((volatile uint64_t *)p)[i])
			rc_bad = (long)i * 8;
	return NULL;
}

/* ---- the main thread's descriptor ("tcb", "tidcheck") ---- */
static pthread_t main_th;

static void *tid_main(void *arg)
{
	pthread_t t = *(pthread_t *)arg;
	clockid_t cid;
	struct timespec ts;
	int e = pthread_kill(t, 0);
	if (!e)
		e = pthread_getcpuclockid(t, &cid);
	if (!e && clock_gettime(cid, &ts) < 0)
		e = errno;
	return (void *)(intptr_t)e;
}

/* ---- munmap in a thread ("bgmunmap A SZ", "bgjoin"): it may wait long for
 * the notifier, and the main thread goes on serving commands ---- */
static pthread_t bg_th;
static void *bg_a;
static size_t bg_sz;
static int bg_err;

static void *bg_main(void *unused)
{
	(void)unused;
	bg_err = munmap(bg_a, bg_sz) ? errno : 0;
	return NULL;
}

/* A line of at most len-1 bytes from fd 0 into buf (a private mapping). */
static int read_line(char *buf, size_t len, char *pend, size_t *have)
{
	for (;;) {
		char *nl = memchr(pend, '\n', *have);
		if (nl) {
			size_t n = (size_t)(nl - pend);
			if (n >= len)
				n = len - 1;
			memcpy(buf, pend, n);
			buf[n] = 0;
			memmove(pend, nl + 1, *have - (size_t)(nl - pend) - 1);
			*have -= (size_t)(nl - pend) + 1;
			return 0;
		}
		if (*have >= CV_LINE)
			return -1;
		ssize_t n = read(0, pend + *have, CV_LINE - *have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
}

int main(void)
{
	/* a page-aligned buffer in main()'s frame: main thread stack memory */
	uint64_t mstack[CV_MSTACK / 8] __attribute__((aligned(4096)));
	memset(mstack, 0, sizeof(mstack));
	signal(SIGPIPE, SIG_IGN);
	main_th = pthread_self();
	data_area[0] = 1;
	/* a fixed mmap threshold: glibc would raise it when the first mmapped
	 * chunk is freed, and the next 1 MiB malloc would come from the brk heap */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	/* command buffers: never exported */
	char *io = mmap(NULL, 4 * CV_LINE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (io == MAP_FAILED)
		return 2;
	char *line = io, *pend = io + 2 * CV_LINE;
	size_t have = 0;
	while (read_line(line, CV_LINE, pend, &have) == 0) {
		char *save = NULL;
		char *cmd = strtok_r(line, " \t\n", &save);
		if (!cmd)
			continue;
		errno = 0;
		if (!strcmp(cmd, "hello") || !strcmp(cmd, "level")) {
			int lv = uxpmem_export_level(NULL, 0);
			!strcmp(cmd, "hello") ? reply("ok %d %d", (int)getpid(), lv) : reply("ok %d", lv);
		} else if (!strcmp(cmd, "exit")) {
			reply("ok");
			exit(0);
		} else if (!strcmp(cmd, "make")) {
			unsigned long long va = pu_num(&save), sz = pu_num(&save), mode = pu_num(&save);
			xpmem_segid_t s = xpmem_make((void *)(uintptr_t)va, (size_t)sz, XPMEM_PERMIT_MODE,
						     (void *)(uintptr_t)mode);
			s == -1 ? reply("err %d", errno) : reply("ok %lld", (long long)s);
		} else if (!strcmp(cmd, "remove")) {
			xpmem_remove((long long)pu_num(&save)) ? reply("err %d", errno) : reply("ok");
		} else if (!strcmp(cmd, "malloc")) {
			void *m = malloc(pu_num(&save));
			m ? reply("ok %#lx", (unsigned long)m) : reply("err %d", errno);
		} else if (!strcmp(cmd, "memalign")) {
			void *m = NULL;
			int e = posix_memalign(&m, 4096, pu_num(&save));
			e ? reply("err %d", e) : reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "free")) {
			free((void *)(uintptr_t)pu_num(&save));
			reply("ok");
		} else if (!strcmp(cmd, "freemalloc")) {
			void *old = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			free(old);
			void *m = malloc(sz);
			if (!m) {
				reply("err %d", ENOMEM);
				continue;
			}
			fill(m, sz, seed);
			reply("ok %#lx %d", (unsigned long)m, m == old);
		} else if (!strcmp(cmd, "fill")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			fill(a, sz, pu_num(&save));
			reply("ok");
		} else if (!strcmp(cmd, "check")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			long bad = check(a, sz, pu_num(&save));
			bad < 0 ? reply("ok") : reply("bad %ld", bad);
		} else if (!strcmp(cmd, "zero")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			long bad = check_zero(a, pu_num(&save));
			bad < 0 ? reply("ok") : reply("bad %ld", bad);
		} else if (!strcmp(cmd, "rd")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			unsigned char b;
			int sig = tu_probe_read(a, &b);
			sig ? reply("sig %d", sig) : reply("ok %llu", (unsigned long long)*a);
		} else if (!strcmp(cmd, "wr")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			uint64_t v = pu_num(&save);
			*a = v;
			reply("ok");
		} else if (!strcmp(cmd, "mmapanon") || !strcmp(cmd, "mmapshared")) {
			size_t sz = pu_num(&save);
			int fl = cmd[4] == 'a' ? MAP_PRIVATE : MAP_SHARED;
			void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, fl | MAP_ANONYMOUS, -1, 0);
			m == MAP_FAILED ? reply("err %d", errno) : reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "mmapfixed")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			void *m = mmap(a, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (m == MAP_FAILED) {
				reply("err %d", errno);
				continue;
			}
			fill(m, sz, seed);
			reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "munmap")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			munmap(a, sz) ? reply("err %d", errno) : reply("ok");
		} else if (!strcmp(cmd, "munmapeach")) {
			/* munmap N pages from A one by one: one invalidation each */
			char *a = (char *)(uintptr_t)pu_num(&save);
			size_t n = pu_num(&save), i = 0;
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			while (i < n && munmap(a + i * 4096, 4096) == 0)
				i++;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			long long ms = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
			i == n ? reply("ok %lld", ms) : reply("err %d", errno);
		} else if (!strcmp(cmd, "mremap")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			/* a fresh destination, far from the old range */
			void *dst = mmap(NULL, sz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (dst == MAP_FAILED) {
				reply("err %d", errno);
				continue;
			}
			void *m = mremap(a, sz, sz, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
			m == MAP_FAILED ? reply("err %d", errno) : reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "madv")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			if (madvise(a, sz, MADV_DONTNEED)) {
				reply("err %d", errno);
				continue;
			}
			long bad = check_zero(a, sz); /* at once: private memory reads zeros now */
			bad < 0 ? reply("ok") : reply("bad %ld", bad);
		} else if (!strcmp(cmd, "static")) {
			reply("ok %#lx %zu %#lx %zu", (unsigned long)bss_area, sizeof(bss_area),
			      (unsigned long)data_area, sizeof(data_area));
		} else if (!strcmp(cmd, "mstack")) {
			reply("ok %#lx %zu", (unsigned long)mstack, sizeof(mstack));
		} else if (!strcmp(cmd, "stackthr")) {
			stk_stop = 0;
			stk_running = 0;
			if (pthread_create(&stk_th, NULL, stk_main, NULL)) {
				reply("err %d", EAGAIN);
				continue;
			}
			while (!__atomic_load_n(&stk_running, __ATOMIC_ACQUIRE))
				sched_yield();
			reply("ok %#lx %d %#lx", (unsigned long)stk_buf, CV_STACK_BUF, (unsigned long)stk_th);
		} else if (!strcmp(cmd, "stackstop")) {
			__atomic_store_n(&stk_stop, 1, __ATOMIC_RELEASE);
			pthread_mutex_lock(&stk_mu);
			while (stk_running != 2)
				pthread_cond_wait(&stk_cv, &stk_mu);
			pthread_mutex_unlock(&stk_mu);
			reply("ok %llu", (unsigned long long)stk_count);
		} else if (!strcmp(cmd, "ctrstart")) {
			int nt = (int)pu_num(&save);
			if (nt < 1 || nt > CV_NT) {
				reply("err %d", EINVAL);
				continue;
			}
			char *where = strtok_r(NULL, " \t\n", &save);
			ctr_nch = where && !strcmp(where, "data") ? CV_DNCHUNK : CV_NCHUNK;
			for (int k = 0; k < ctr_nch; k++)
				if (!(chunks[k] = ctr_nch == CV_DNCHUNK ? dctr_area + (size_t)k * CV_CHUNK
									: malloc(CV_CHUNK))) {
					reply("err %d", ENOMEM);
					exit(4);
				}
			long stride = chunks[1] - chunks[0];
			for (int k = 1; k < ctr_nch; k++)
				if (chunks[k] - chunks[k - 1] != stride) {
					reply("err %d", EAGAIN); /* the heap is not one run: cannot describe it */
					exit(5);
				}
			for (int k = 0; k < ctr_nch; k++)
				memset(chunks[k], 0, CV_CHUNK);
			ctr_stop = 0;
			ctr_nt = nt;
			for (int t = 0; t < nt; t++) {
				tally[t] = mmap(NULL, CV_NCHUNK * CV_SLOTS * 8, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (tally[t] == MAP_FAILED)
					exit(6);
				pthread_create(&ctr_th[t], NULL, ctr_main, (void *)(intptr_t)t);
			}
			reply("ok %#lx %ld %d", (unsigned long)chunks[0], stride, ctr_nch);
		} else if (!strcmp(cmd, "ctrstop")) {
			__atomic_store_n(&ctr_stop, 1, __ATOMIC_RELAXED);
			for (int t = 0; t < ctr_nt; t++)
				pthread_join(ctr_th[t], NULL);
			unsigned long long mism = 0, lost = 0, total = 0, wsum = 0;
			for (int t = 0; t < ctr_nt; t++)
				for (int k = 0; k < ctr_nch; k++)
					for (int s = 0; s < CV_SLOTS; s++) {
						uint64_t c = *(volatile uint64_t *)(chunks[k] + CV_CTR_OFF(s, t));
						uint64_t y = tally[t][k * CV_SLOTS + s];
						mism += c != y;
						lost += y > c ? y - c : 0;
						total += y;
						wsum += y * CV_WEIGHT(k, s, t);
					}
			reply("ok %llu %llu %llu %llu", mism, lost, total, wsum);
		} else if (!strcmp(cmd, "fork")) {
			uint64_t seed = pu_num(&save), pseed = pu_num(&save);
			struct region r[2];
			int nr = 0;
			for (; nr < 2; nr++) {
				r[nr].a = (char *)(uintptr_t)pu_num(&save);
				r[nr].sz = pu_num(&save);
				if (!r[nr].a)
					break;
			}
			int done[2], go[2];
			if (pipe(done) || pipe(go)) {
				reply("err %d", errno);
				continue;
			}
			pid_t pid = fork();
			if (pid < 0) {
				reply("err %d", errno);
				continue;
			}
			if (pid == 0) {
				close(done[0]);
				close(go[1]);
				fork_child(done[1], go[0], seed, r, nr);
			}
			close(done[1]);
			close(go[0]);
			char b;
			struct pollfd p = { done[0], POLLIN, 0 };
			int ok = poll(&p, 1, tu_guard_ms(20000)) == 1 && read(done[0], &b, 1) == 1;
			close(done[0]);
			fork_pid = pid;
			fork_go = go[1];
			if (!ok) {
				reply("err %d", ETIMEDOUT);
				continue;
			}
			long bad = -1;
			for (int i = 0; i < nr && bad < 0; i++)
				if ((bad = check(r[i].a, r[i].sz, pseed)) >= 0)
					bad += (long)i << 32;
			bad < 0 ? reply("ok %d", (int)pid) : reply("bad %ld", bad); /* the child's writes reached us */
		} else if (!strcmp(cmd, "forkend")) {
			char b = 1;
			if (fork_go < 0 || write(fork_go, &b, 1) != 1) {
				reply("err %d", EPIPE);
				continue;
			}
			close(fork_go);
			fork_go = -1;
			int st = tu_wait_child(fork_pid, 20000);
			reply("ok %d", st);
		} else if (!strcmp(cmd, "tcb")) {
			reply("ok %lu", (unsigned long)main_th);
		} else if (!strcmp(cmd, "tidcheck")) {
			pthread_t t, which = (pthread_t)pu_num(&save);
			void *e = NULL;
			if (!which)
				which = main_th;
			if (pthread_create(&t, NULL, tid_main, &which) || pthread_join(t, &e)) {
				reply("err %d", EAGAIN);
				continue;
			}
			e ? reply("err %d", (int)(intptr_t)e) : reply("ok");
		} else if (!strcmp(cmd, "cas")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			long n = (long)pu_num(&save);
			pu_cas_start(a, n, (int)pu_num(&save));
			reply("ok");
		} else if (!strcmp(cmd, "pipewait")) {
			if (pipe(pw_fd) || pthread_create(&pw_th, NULL, pw_main, NULL)) {
				reply("err %d", errno ? errno : EAGAIN);
				continue;
			}
			reply("ok");
		} else if (!strcmp(cmd, "pipefeed")) {
			size_t n = pu_num(&save);
			static const char bytes[64] = "0123456789";
			if (n > sizeof(bytes) || write(pw_fd[1], bytes, n) != (ssize_t)n) {
				reply("err %d", errno ? errno : EINVAL);
				continue;
			}
			pthread_join(pw_th, NULL);
			close(pw_fd[0]);
			close(pw_fd[1]);
			reply("ok %zd %d", pw_got, pw_errno);
		} else if (!strcmp(cmd, "sigblock")) {
			sb_stop = 0;
			sb_blocked = 0;
			if (pthread_create(&sb_th, NULL, sb_main, NULL)) {
				reply("err %d", EAGAIN);
				continue;
			}
			while (!__atomic_load_n(&sb_blocked, __ATOMIC_ACQUIRE))
				sched_yield(); /* until then a freeze could still stop it */
			reply("ok");
		} else if (!strcmp(cmd, "sigblockstop")) {
			__atomic_store_n(&sb_stop, 1, __ATOMIC_RELAXED);
			pthread_join(sb_th, NULL);
			reply("ok");
		} else if (!strcmp(cmd, "join")) {
			pu_cas_join();
			reply("ok");
		} else if (!strcmp(cmd, "hookarm")) {
			__atomic_store_n(&hook_word, (volatile uint64_t *)(uintptr_t)pu_num(&save),
					 __ATOMIC_RELEASE);
			reply("ok");
		} else if (!strcmp(cmd, "hookhold")) {
			hh_stop = 0;
			int e = hook_word ? pthread_create(&hh_th, NULL, hh_main, NULL) : EINVAL;
			e ? reply("err %d", e) : reply("ok");
		} else if (!strcmp(cmd, "hookstop")) {
			__atomic_store_n(&hh_stop, 1, __ATOMIC_RELAXED);
			pthread_join(hh_th, NULL);
			__atomic_store_n(&hook_word, NULL, __ATOMIC_RELEASE);
			reply("ok %llu", (unsigned long long)hh_rounds);
		} else if (!strcmp(cmd, "hooked")) {
			uintptr_t a = (uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			reply("ok %d", hooked(a, sz));
		} else if (!strcmp(cmd, "tag")) {
			char *a = (char *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			tag(a, sz, (unsigned)pu_num(&save));
			reply("ok");
		} else if (!strcmp(cmd, "churn")) {
			ch_base = (char *)(uintptr_t)pu_num(&save);
			ch_nholes = (int)pu_num(&save);
			ch_hole = pu_num(&save) * 4096;
			ch_stop = ch_err = 0;
			ch_rounds = 0;
			int e = pthread_create(&ch_th, NULL, churn_main, NULL);
			e ? reply("err %d", e) : reply("ok");
		} else if (!strcmp(cmd, "churnstop")) {
			__atomic_store_n(&ch_stop, 1, __ATOMIC_RELAXED);
			pthread_join(ch_th, NULL);
			ch_err ? reply("err %d", ch_err) : reply("ok %lu", ch_rounds);
		} else if (!strcmp(cmd, "race")) {
			rc_base = (char *)(uintptr_t)pu_num(&save);
			rc_op = (int)pu_num(&save);
			rc_stop = rc_raced = rc_acted = rc_err = 0;
			rc_bad = -1;
			rc_nold = 0;
			rc_conv_blocks(1);
			int e = pthread_create(&rc_th, NULL, rc_main, NULL);
			e ? reply("err %d", e) : reply("ok");
		} else if (!strcmp(cmd, "racestop")) {
			__atomic_store_n(&rc_stop, 1, __ATOMIC_RELAXED);
			pthread_join(rc_th, NULL);
			rc_err ? reply("err %d", rc_err)
			       : reply("ok %d %ld %d", rc_raced, rc_bad, rc_acted);
		} else if (!strcmp(cmd, "convbytes")) {
			/* bytes of [A, A+SZ) converted (mapped from a uxpmem-conv memfd) */
			uintptr_t a = (uintptr_t)pu_num(&save), b = a + pu_num(&save);
			int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
			static char maps[1 << 20]; /* .bss, written by read(2): not exported by the tests using this */
			size_t n = 0;
			ssize_t r;
			while (fd >= 0 && n < sizeof(maps) - 1 && (r = read(fd, maps + n, sizeof(maps) - 1 - n)) > 0)
				n += (size_t)r;
			if (fd >= 0)
				close(fd);
			maps[n] = 0;
			unsigned long long conv = 0;
			for (char *l = maps; l && *l;) {
				char *nl = strchr(l, '\n');
				unsigned long lo, hi;
				if (sscanf(l, "%lx-%lx", &lo, &hi) == 2 && strstr(l, "uxpmem-conv") &&
				    (!nl || strstr(l, "uxpmem-conv") < nl)) {
					uintptr_t x = lo > a ? lo : a, y = hi < b ? hi : b;
					if (x < y)
						conv += y - x;
				}
				l = nl ? nl + 1 : NULL;
			}
			fd < 0 ? reply("err %d", errno) : reply("ok %llu", conv);
		} else if (!strcmp(cmd, "bgmunmap")) {
			bg_a = (void *)(uintptr_t)pu_num(&save);
			bg_sz = pu_num(&save);
			int e = pthread_create(&bg_th, NULL, bg_main, NULL);
			e ? reply("err %d", e) : reply("ok");
		} else if (!strcmp(cmd, "bgjoin")) {
			pthread_join(bg_th, NULL);
			bg_err ? reply("err %d", bg_err) : reply("ok");
		} else if (!strcmp(cmd, "forkserve")) {
			/* the child answers the next commands; the parent waits
			 * for it (reading nothing), then answers ok STATUS */
			pid_t pid = fork();
			if (pid < 0) {
				reply("err %d", errno);
			} else if (pid == 0) {
				reply("ok %d", (int)getpid());
			} else {
				int st = tu_wait_child(pid, 120000); /* a hang guard */
				reply("ok %d", st);
			}
		} else if (!strcmp(cmd, "maxaddr")) {
			reply("ok %#llx", pu_maxaddr());
		} else {
			reply("err %d", ENOSYS);
		}
	}
	return 0;
}
