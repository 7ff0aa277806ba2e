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
 *   mmapanon SZ | mmapshared SZ | mmapfixed A SZ SEED | munmap A SZ
 *   mremap A SZ -> ok NEW (moved elsewhere) | madv A SZ (DONTNEED, then
 *   verify zeros at once: ok | bad OFF)
 *   static -> ok BSS BSSLEN DATA DATALEN | mstack -> ok A LEN
 *   stackthr -> ok A LEN (a thread spinning with a buffer on its stack:
 *   word 0 = its iteration count, word 2 = echo of word 1) | stackstop -> ok COUNT
 *   ctrstart NT [data] -> ok BASE STRIDE NCHUNK (counters in the heap, or
 *   with "data" in an initialized global array: .data) | ctrstop -> ok
 *   MISMATCH LOST TOTAL WSUM
 *   pipewait -> ok (a thread blocks in read(2) of a pipe) | pipefeed N -> ok
 *   GOT ERRNO (N bytes written; what that read returned)
 *   sigblock -> ok (a thread blocking every signal spins) | sigblockstop
 *   hooked A SZ -> ok N (mremap calls seen by our memory hook that cover
 *   [A, A+SZ), as UCX's hooks would see them)
 *   fork SEED PSEED A1 S1 [A2 S2] -> ok CHILDPID | forkend -> ok CHILDSTATUS
 *   cas A N NT | join | maxaddr
 */
#include <errno.h>
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

/* ---- a memory hook, as UCX and Open MPI install them: every mremap call
 * of the process (libxpmem's included) comes here first ---- */
#define MAX_HOOKED 256
static uintptr_t hooked_lo[MAX_HOOKED], hooked_hi[MAX_HOOKED];
static unsigned nhooked;

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *to = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	unsigned i = __atomic_fetch_add(&nhooked, 1, __ATOMIC_RELAXED);
	if (i < MAX_HOOKED) {
		hooked_lo[i] = (uintptr_t)old;
		hooked_hi[i] = (uintptr_t)old + old_len;
	}
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, to);
}

static int hooked(uintptr_t a, size_t len)
{
	int n = 0;
	unsigned all = __atomic_load_n(&nhooked, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < all && i < MAX_HOOKED; i++)
		n += hooked_lo[i] <= a && a + len <= hooked_hi[i];
	return n;
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
	if (poll(&p, 1, 20000) != 1 || read(go_rd, &b, 1) != 1)
		_exit(11);
	for (int i = 0; i < nr; i++)
		if (check(r[i].a, r[i].sz, seed) >= 0)
			_exit(20 + i); /* the parent's later writes reached the child */
	_exit(0);
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
			reply("ok %#lx %d", (unsigned long)stk_buf, CV_STACK_BUF);
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
			int ok = poll(&p, 1, 20000) == 1 && read(done[0], &b, 1) == 1;
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
		} else if (!strcmp(cmd, "hooked")) {
			uintptr_t a = (uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			reply("ok %d", hooked(a, sz));
		} else if (!strcmp(cmd, "maxaddr")) {
			reply("ok %#llx", pu_maxaddr());
		} else {
			reply("err %d", ENOSYS);
		}
	}
	return 0;
}
