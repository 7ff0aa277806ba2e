/* freeze.c - stop the application's threads at a signal safepoint.
 *
 * Userfaultfd cannot write-protect file-backed private memory (.data of
 * the executable and libraries), so converting it in place cannot freeze
 * only its writers.  uxp_freeze() stops every application thread instead:
 * each is sent a signal whose handler parks it on a futex until
 * uxp_thaw().  A thread parks only between instructions of user code, so
 * once all are parked no application write is in flight, not even one a
 * system call was making (a system call either completed before the
 * handler ran or restarts after it).
 *
 * Library threads (uxp_thread_start: every signal blocked) are not stopped
 * and not waited for: they never write application memory, except the
 * revocation dispatcher while it runs an application callback, so a
 * freeze also waits for a running callback to end (uxp_app_code_enter).
 * While threads are parked the freezer must not take any lock or allocate:
 * a parked thread may hold it.
 *
 * XPMEM_FREEZE_SIGNAL picks the signal (a number; 0 disables freezing);
 * by default the highest real-time signal whose disposition is the
 * default when first needed.  An application that later installs its own
 * handler for it disables freezing (checked before every freeze).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "uxp.h"

#define MAX_LIB_THREADS 64
#define MAX_FROZEN 4096

/* tids of library threads (0 = free slot) */
static pid_t lib_tid[MAX_LIB_THREADS];

/* Odd while a freeze is on; threads park until it changes. */
static unsigned fz_gen;
static unsigned fz_nparked;
static pid_t fz_parked[MAX_FROZEN];
static pid_t fz_signaled[MAX_FROZEN];
static unsigned fz_nsignaled;

static pthread_mutex_t fz_lock = PTHREAD_MUTEX_INITIALIZER; /* one freezer */
static pthread_rwlock_t app_code = PTHREAD_RWLOCK_INITIALIZER;
static pthread_once_t sig_once = PTHREAD_ONCE_INIT;
static int fz_sig; /* 0: freezing unavailable */
static pid_t fz_pid;

static long futex(unsigned *word, int op, unsigned val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

static pid_t gettid_raw(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ---- library threads ------------------------------------------------------ */

void uxp_thread_register_self(void)
{
	pid_t me = gettid_raw();
	for (unsigned i = 0; i < MAX_LIB_THREADS; i++) {
		pid_t zero = 0;
		if (__atomic_compare_exchange_n(&lib_tid[i], &zero, me, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return;
	}
	uxp_warn("core: more than %d library threads: freezing will wait for thread %d",
		 MAX_LIB_THREADS, (int)me);
}

void uxp_thread_unregister_self(void)
{
	pid_t me = gettid_raw();
	for (unsigned i = 0; i < MAX_LIB_THREADS; i++)
		if (__atomic_load_n(&lib_tid[i], __ATOMIC_ACQUIRE) == me)
			__atomic_store_n(&lib_tid[i], 0, __ATOMIC_RELEASE);
}

static int is_lib_thread(pid_t tid)
{
	for (unsigned i = 0; i < MAX_LIB_THREADS; i++)
		if (__atomic_load_n(&lib_tid[i], __ATOMIC_ACQUIRE) == tid)
			return 1;
	return 0;
}

/* ---- application code run by library threads ------------------------------ */

void uxp_app_code_enter(void)
{
	pthread_rwlock_rdlock(&app_code);
}

void uxp_app_code_leave(void)
{
	pthread_rwlock_unlock(&app_code);
}

/* ---- the safepoint ---------------------------------------------------------- */

static void park(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	int saved = errno;
	unsigned g = __atomic_load_n(&fz_gen, __ATOMIC_ACQUIRE);
	/* only our own tgkill, and only while a freeze is on (a late signal of
	 * an earlier freeze finds an even generation and returns) */
	if (si->si_code == SI_TKILL && si->si_pid == fz_pid && (g & 1)) {
		unsigned slot = __atomic_fetch_add(&fz_nparked, 1, __ATOMIC_ACQ_REL);
		if (slot < MAX_FROZEN)
			__atomic_store_n(&fz_parked[slot], gettid_raw(), __ATOMIC_RELEASE);
		futex(&fz_nparked, FUTEX_WAKE_PRIVATE, 1, NULL);
		while (__atomic_load_n(&fz_gen, __ATOMIC_ACQUIRE) == g)
			futex(&fz_gen, FUTEX_WAIT_PRIVATE, g, NULL);
	}
	errno = saved;
}

static int handler_is_ours(int sig)
{
	struct sigaction sa;
	return sigaction(sig, NULL, &sa) == 0 && (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == park;
}

static int install(int sig)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = park;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask); /* nothing else runs on a parked thread */
	if (sigaction(sig, NULL, &old) < 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
		return -EBUSY;
	return sigaction(sig, &sa, NULL) < 0 ? -errno : 0;
}

static void choose_signal(void)
{
	fz_pid = getpid();
	long want = uxp_env_long("XPMEM_FREEZE_SIGNAL", -1);
	if (want == 0) {
		uxp_info("core: XPMEM_FREEZE_SIGNAL=0: threads are never stopped (.data is not exported)");
		return;
	}
	if (want > 0) {
		if (want > SIGRTMAX || install((int)want) < 0)
			uxp_warn("core: XPMEM_FREEZE_SIGNAL=%ld is not a free signal: threads are never "
				 "stopped (.data is not exported)", want);
		else
			fz_sig = (int)want;
		return;
	}
	for (int s = SIGRTMAX; s > SIGRTMIN + 1; s--)
		if (install(s) == 0) {
			fz_sig = s;
			uxp_debug("core: signal %d stops threads for conversions of .data", s);
			return;
		}
	uxp_warn("core: no free real-time signal: threads are never stopped (.data is not exported)");
}

/* ---- freezing --------------------------------------------------------------- */

static int parked(pid_t tid)
{
	unsigned n = __atomic_load_n(&fz_nparked, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n && i < MAX_FROZEN; i++)
		if (__atomic_load_n(&fz_parked[i], __ATOMIC_ACQUIRE) == tid)
			return 1;
	return 0;
}

static int signaled(pid_t tid)
{
	for (unsigned i = 0; i < fz_nsignaled; i++)
		if (fz_signaled[i] == tid)
			return 1;
	return 0;
}

static int tkill(pid_t tid, int sig)
{
	return syscall(SYS_tgkill, fz_pid, tid, sig) < 0 ? -errno : 0;
}

/* Signal every application thread not signaled yet; how many were new, or
 * -errno.  Reads /proc/self/task with getdents64 into a stack buffer (no
 * allocation: threads already parked may hold the allocator's locks). */
static int signal_new_threads(pid_t self)
{
	char buf[4096];
	int newly = 0;
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n <= 0) {
			int e = n < 0 ? -errno : 0;
			close(fd);
			return e ? e : newly;
		}
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			pid_t tid = (pid_t)strtol(d->d_name, NULL, 10);
			if (tid <= 0 || tid == self || is_lib_thread(tid) || signaled(tid))
				continue;
			if (fz_nsignaled == MAX_FROZEN) {
				close(fd);
				return -E2BIG;
			}
			if (tkill(tid, fz_sig) == 0) {
				fz_signaled[fz_nsignaled++] = tid;
				newly++;
			}
		}
	}
}

/* 1 when every signaled thread parked or is gone. */
static int all_parked(void)
{
	for (unsigned i = 0; i < fz_nsignaled; i++) {
		pid_t tid = fz_signaled[i];
		if (!tid || parked(tid))
			continue;
		if (tkill(tid, 0) == -ESRCH) {
			fz_signaled[i] = 0; /* exited */
			continue;
		}
		return 0;
	}
	return 1;
}

static void release_parked(void)
{
	__atomic_add_fetch(&fz_gen, 1, __ATOMIC_ACQ_REL); /* even: go */
	futex(&fz_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

int uxp_freeze(long timeout_ms)
{
	pthread_once(&sig_once, choose_signal);
	if (!fz_sig)
		return -ENOSYS;
	if (!handler_is_ours(fz_sig))
		return uxp_fail(EBUSY, "core: freeze: the application took signal %d over", fz_sig);
	struct timespec dl;
	uxp_deadline(&dl, timeout_ms);
	pthread_mutex_lock(&fz_lock);
	/* no application callback runs on a library thread from here */
	if (pthread_rwlock_clockwrlock(&app_code, CLOCK_MONOTONIC, &dl) != 0) {
		pthread_mutex_unlock(&fz_lock);
		return uxp_fail(ETIMEDOUT, "core: freeze: a revocation callback did not return in %ld ms",
				timeout_ms);
	}
	long long end = uxp_now_ms() + timeout_ms;
	pid_t self = gettid_raw();
	fz_nsignaled = 0;
	__atomic_store_n(&fz_nparked, 0, __ATOMIC_RELEASE);
	memset(fz_parked, 0, sizeof(fz_parked));
	__atomic_add_fetch(&fz_gen, 1, __ATOMIC_ACQ_REL); /* odd: park */
	int ret;
	for (;;) {
		ret = signal_new_threads(self);
		if (ret < 0)
			break;
		/* all parked and no thread appeared since the last scan: done */
		if (ret == 0 && all_parked())
			break;
		while (!all_parked() && uxp_now_ms() < end) {
			unsigned seen = __atomic_load_n(&fz_nparked, __ATOMIC_ACQUIRE);
			struct timespec ts = { 0, 1000000 };
			futex(&fz_nparked, FUTEX_WAIT_PRIVATE, seen, &ts);
		}
		if (uxp_now_ms() >= end && !all_parked()) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	if (ret < 0) {
		unsigned n = __atomic_load_n(&fz_nparked, __ATOMIC_ACQUIRE);
		pid_t late = 0;
		for (unsigned i = 0; i < fz_nsignaled && !late; i++)
			if (fz_signaled[i] && !parked(fz_signaled[i]))
				late = fz_signaled[i];
		release_parked();
		pthread_rwlock_unlock(&app_code);
		pthread_mutex_unlock(&fz_lock);
		return uxp_fail(-ret, "core: freeze: %u of %u threads stopped in %ld ms: %s (thread %d "
				"did not: a thread blocking signal %d never stops)", n, fz_nsignaled,
				timeout_ms, strerror(-ret), (int)late, fz_sig);
	}
	return 0;
}

void uxp_thaw(void)
{
	release_parked();
	pthread_rwlock_unlock(&app_code);
	pthread_mutex_unlock(&fz_lock);
}

int uxp_freeze_available(void)
{
	pthread_once(&sig_once, choose_signal);
	return fz_sig != 0 && handler_is_ours(fz_sig);
}

void uxp_freeze_fork_child(void)
{
	/* The parent's library threads do not exist here; a freeze never spans
	 * a fork (the freezer is a library thread, which does not fork). */
	memset(lib_tid, 0, sizeof(lib_tid));
	pthread_mutex_init(&fz_lock, NULL);
	pthread_rwlock_init(&app_code, NULL);
	fz_pid = getpid();
}
