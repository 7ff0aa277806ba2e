/* peer.c - the other process of the shm tests: an exporter or importer
 * commanded line by line on stdin, answering one line on stdout:
 *   "ok [values...]"  |  "err ERRNO"  |  "sig SIGNO"  |  "bad OFFSET"
 * Numbers are accepted in decimal or 0x-hex.  Uses only the public API
 * (xpmem.h, uxpmem.h). */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <xpmem.h>
#include <uxpmem.h>
#include <poll.h>
#include "shmtest.h"
#include "peerutil.h"
#include "arena/arena.h"

/* A page-aligned .bss and .data area (Sandia OpenSHMEM exports these). */
static char bss_area[16 * 4096] __attribute__((aligned(4096)));
static char data_area[4 * 4096] __attribute__((aligned(4096))) = { 1 };


/* Word 0 of each page of [a, a+sz), page first+i of the tagged range:
 * SIGBUS, or a tag of that very page (pu_tag_ok).  Returns -1, or the first page showing something else
 * (its word in *bad). */
static uint64_t probe_v[(1u << 30) / PAGE]; /* up to 1 GiB of pages */
static int probe_sig[(1u << 30) / PAGE];

static long touch_pages(const char *a, size_t sz, unsigned long long *sigbus, uint64_t *bad, size_t first)
{
	if (sz > sizeof(probe_v) / sizeof(probe_v[0]) * PAGE) {
		*bad = 0;
		return 0;
	}
	tu_probe_pages(a, sz, PAGE, probe_v, probe_sig);
	for (size_t i = 0; i < sz / PAGE; i++) {
		if (probe_sig[i] == SIGBUS)
			++*sigbus;
		else if (probe_sig[i] || !pu_tag_ok(probe_v[i], first + i)) {
			*bad = probe_sig[i] ? (uint64_t)probe_sig[i] : probe_v[i];
			return (long)i;
		}
	}
	return -1;
}

/* faultloop APID ADDR OFF SZ MS: for MS ms, read every page of the
 * attachment at ADDR (of [OFF, OFF+SZ) of APID), then attach a 1 MiB window
 * of it anew (the next one each round), read it and detach it -> ok ROUNDS
 * SIGBUS EAGAIN | bad PAGE WORD | err E (an attach failing otherwise than
 * with EAGAIN) */
static void faultloop(char **save)
{
	struct xpmem_addr ad;
	ad.apid = (long long)pu_num(save);
	const char *at = (const char *)(uintptr_t)pu_num(save);
	ad.offset = (off_t)pu_num(save);
	size_t sz = pu_num(save);
	long long end = st_now_ms() + (long long)pu_num(save);
	unsigned long long rounds = 0, sigbus = 0, again = 0;
	const size_t win = sz < MiB ? sz : MiB;
	off_t off0 = ad.offset;
	uint64_t bad = 0;
	long page;
	do {
		if ((page = touch_pages(at, sz, &sigbus, &bad, 0)) >= 0)
			break;
		size_t w = (size_t)((rounds + again) % (sz / win));
		ad.offset = off0 + (off_t)(w * win);
		void *p = xpmem_attach(ad, win, NULL);
		if (p == (void *)-1 && errno != EAGAIN) {
			pu_reply("err %d", errno);
			return;
		}
		if (p == (void *)-1) {
			again++;
			continue;
		}
		page = touch_pages(p, win, &sigbus, &bad, w * win / PAGE);
		if (xpmem_detach(p) < 0) {
			pu_reply("err %d", errno);
			return;
		}
		rounds++;
	} while (page < 0 && st_now_ms() < end);
	page >= 0 ? pu_reply("bad %ld %#llx", page, (unsigned long long)bad)
		  : pu_reply("ok %llu %llu %llu", rounds, sigbus, again);
}

/* remaploop ADDR SZ MS: map new memory over [ADDR, ADDR+SZ) (MAP_FIXED)
 * and tag its pages (word 0 of page i = pu_tag(i, round)), over and over
 * for MS ms (at least once) -> ok ROUNDS | err E */
static void remaploop(char **save)
{
	char *a = (char *)(uintptr_t)pu_num(save);
	size_t sz = pu_num(save);
	long long end = st_now_ms() + (long long)pu_num(save);
	unsigned long long rounds = 0;
	do {
		if (mmap(a, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
			 0) == MAP_FAILED) {
			pu_reply("err %d", errno);
			return;
		}
		rounds++;
		for (size_t i = 0; i < sz / PAGE; i++)
			*(volatile uint64_t *)(a + i * PAGE) = pu_tag(i, (unsigned)rounds);
	} while (st_now_ms() < end);
	pu_reply("ok %llu", rounds);
}

/* tagcheck ADDR SZ GEN [HOLES]: every page shows exactly pu_tag(page, GEN)
 * (with HOLES=1: or raises SIGBUS) -> ok NSIGBUS | bad PAGE WORD | sig PAGE
 * SIGNO */
static void tagcheck(char **save)
{
	const char *a = (const char *)(uintptr_t)pu_num(save);
	size_t sz = pu_num(save);
	unsigned gen = (unsigned)pu_num(save);
	int holes_ok = (int)pu_num(save);
	unsigned long long sigbus = 0;
	if (sz > sizeof(probe_v) / sizeof(probe_v[0]) * PAGE) {
		pu_reply("err %d", E2BIG);
		return;
	}
	tu_probe_pages(a, sz, PAGE, probe_v, probe_sig);
	for (size_t i = 0; i < sz / PAGE; i++) {
		uint64_t v = probe_v[i];
		int sig = probe_sig[i];
		if (sig == SIGBUS && holes_ok) {
			sigbus++;
		} else if (sig) {
			pu_reply("sig %zu %d", i, sig);
			return;
		} else if (v != pu_tag(i, gen)) {
			pu_reply("bad %zu %#llx", i, (unsigned long long)v);
			return;
		}
	}
	pu_reply("ok %llu", sigbus);
}

/* The kinds of shared memory clients export (UCX's SysV and POSIX shm,
 * Open MPI's shared anonymous segment...):
 *   sysv      shmget + shmat + IPC_RMID (UCX's default)
 *   sysvkeep  the same, not marked for removal
 *   posix     shm_open + mmap + shm_unlink + close
 *   posixfd   shm_open + mmap + shm_unlink, descriptor kept (UCX's posix)
 *   memfd     memfd_create + mmap + close
 *   anon      MAP_SHARED | MAP_ANONYMOUS
 *   file      a file in $TMPDIR (or /tmp), mapped MAP_SHARED, closed */
/* The "file" kind's files, removed at exit (they stay named while mapped:
 * an unprivileged exporter shares a file mapping by its path). */
static char made_files[16][256];
static unsigned nmade_files;

static void unlink_made_files(void)
{
	for (unsigned k = 0; k < nmade_files; k++)
		unlink(made_files[k]);
}

static void *mk_shared(const char *kind, size_t sz, int mode)
{
	char name[64];
	int fd = -1;
	void *m = MAP_FAILED;
	snprintf(name, sizeof(name), "/uxptest-%d-%s", (int)getpid(), kind);
	if (!strncmp(kind, "sysv", 4)) {
		int id = shmget(IPC_PRIVATE, sz, IPC_CREAT | mode);
		m = id < 0 ? MAP_FAILED : shmat(id, NULL, 0);
		if (m == (void *)-1)
			return MAP_FAILED;
		if (!strcmp(kind, "sysv"))
			shmctl(id, IPC_RMID, NULL);
		return m;
	}
	if (!strcmp(kind, "anon"))
		return mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!strncmp(kind, "posix", 5))
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, (mode_t)mode);
	else if (!strcmp(kind, "memfd"))
		fd = memfd_create(name + 1, MFD_CLOEXEC);
	else if (!strcmp(kind, "file")) {
		/* unique, not just by pid: a file another uid left under the same
		 * name in a sticky /tmp can be neither removed nor reused */
		const char *dir = getenv("TMPDIR");
		static unsigned seq;
		char path[256];
		snprintf(path, sizeof(path), "%s%s-%u-%ld", dir ? dir : "/tmp", name, seq++,
			 (long)st_now_ms());
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
		if (fd < 0)
			return MAP_FAILED; /* errno: open's */
		fchmod(fd, (mode_t)mode); /* whatever the umask */
		if (nmade_files < sizeof(made_files) / sizeof(made_files[0])) {
			if (!nmade_files)
				atexit(unlink_made_files);
			snprintf(made_files[nmade_files++], sizeof(made_files[0]), "%s", path);
		}
	}
	if (fd >= 0 && ftruncate(fd, (off_t)sz) == 0)
		m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!strncmp(kind, "posix", 5))
		shm_unlink(name);
	if (fd >= 0 && strcmp(kind, "posixfd"))
		close(fd);
	return m;
}

/* revwait MS: wait for the next queued revocation event (revfd first). */
static void revwait(int ms)
{
	struct uxpmem_revoke_event ev;
	long long t0 = st_now_ms();
	struct pollfd pfd = { uxpmem_revoke_fd(), POLLIN, 0 };
	for (;;) {
		int n = uxpmem_revoke_poll(&ev, 1);
		if (n == 1) {
			pu_reply("ok %d %lld %lld", ev.reason, (long long)ev.apid, st_now_ms() - t0);
			return;
		}
		long long left = t0 + ms - st_now_ms();
		if (n < 0 || left <= 0) {
			pu_reply("err %d", n < 0 ? errno : ETIMEDOUT);
			return;
		}
		poll(&pfd, 1, (int)left);
	}
}

int main(void)
{
	char line[1024];
	setvbuf(stdout, NULL, _IOLBF, 0);
	data_area[0] = 1;
	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL;
		char *cmd = strtok_r(line, " \t\n", &save);
		if (!cmd)
			continue;
		errno = 0;
		if (!strcmp(cmd, "hello")) {
			int arena = dlsym(RTLD_DEFAULT, "uxpmem_arena_query_v1") != NULL;
			pu_reply("ok %d %d", (int)getpid(), arena);
		} else if (!strcmp(cmd, "exit")) {
			pu_reply("ok");
			exit(0);
		} else if (!strcmp(cmd, "version")) {
			int v = xpmem_version();
			v < 0 ? pu_reply("err %d", errno) : pu_reply("ok %d", v);
		} else if (!strcmp(cmd, "make")) {
			unsigned long long va = pu_num(&save), sz = pu_num(&save), mode = pu_num(&save);
			xpmem_segid_t s = xpmem_make((void *)(uintptr_t)va, (size_t)sz, XPMEM_PERMIT_MODE,
						     (void *)(uintptr_t)mode);
			s == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)s);
		} else if (!strcmp(cmd, "remove")) {
			long long s = (long long)pu_num(&save);
			xpmem_remove(s) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "get")) {
			long long s = (long long)pu_num(&save);
			int fl = (int)pu_num(&save);
			xpmem_apid_t a = xpmem_get(s, fl, XPMEM_PERMIT_MODE, NULL);
			a == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)a);
		} else if (!strcmp(cmd, "release")) {
			long long a = (long long)pu_num(&save);
			xpmem_release(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "attach")) {
			struct xpmem_addr ad;
			ad.apid = (long long)pu_num(&save);
			ad.offset = (off_t)pu_num(&save);
			size_t sz = pu_num(&save);
			void *va = (void *)(uintptr_t)pu_num(&save);
			void *r = xpmem_attach(ad, sz, va);
			r == (void *)-1 ? pu_reply("err %d", errno) : pu_reply("ok %#lx", (unsigned long)r);
		} else if (!strcmp(cmd, "detach")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			xpmem_detach(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "malloc")) {
			void *m = NULL;
			size_t sz = pu_num(&save);
			int e = posix_memalign(&m, 4096, sz);
			e ? pu_reply("err %d", e) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "free")) {
			free((void *)(uintptr_t)pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "mmapanon")) {
			size_t sz = pu_num(&save);
			void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			m == MAP_FAILED ? pu_reply("err %d", errno) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "mmapfixed")) {
			/* new private anonymous memory over ADDR (MAP_FIXED), filled with SEED */
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			void *m = mmap(a, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (m == MAP_FAILED) {
				pu_reply("err %d", errno);
			} else {
				st_fill(m, sz, seed);
				pu_reply("ok %#lx", (unsigned long)m);
			}
		} else if (!strcmp(cmd, "mkshared")) {
			/* a MAP_SHARED mapping of KIND (see mk_shared), SIZE bytes, MODE */
			const char *kind = strtok_r(NULL, " \t\n", &save);
			size_t sz = pu_num(&save);
			int mode = (int)pu_num(&save);
			void *m = kind ? mk_shared(kind, sz, mode ? mode : 0600) : MAP_FAILED;
			m == MAP_FAILED ? pu_reply("err %d", errno ? errno : EINVAL)
					: pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "mapagain")) {
			/* map what ADDR+LEN maps a second time (through map_files: root) */
			char path[80];
			unsigned long a = pu_num(&save), sz = pu_num(&save);
			snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", a, a + sz);
			int fd = open(path, O_RDWR | O_CLOEXEC);
			void *m = fd < 0 ? MAP_FAILED : mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (fd >= 0)
				close(fd);
			m == MAP_FAILED ? pu_reply("err %d", errno) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "shmdt")) {
			shmdt((void *)(uintptr_t)pu_num(&save)) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "munmap")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			munmap(a, sz) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "dontneed")) {
			/* madvise(ADDR, LEN, MADV_DONTNEED) */
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			madvise(a, sz, MADV_DONTNEED) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "realloc_same")) {
			/* free ADDR and allocate SIZE until the same address comes back;
			 * then fill it with SEED. */
			void *old = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			static void *held[512];
			int nh = 0;
			void *m = NULL;
			free(old);
			for (int i = 0; i < 512; i++) {
				if (posix_memalign(&m, 4096, sz))
					break;
				if (m == old)
					break;
				held[nh++] = m;
				m = NULL;
			}
			for (int i = 0; i < nh; i++)
				free(held[i]);
			/* then cycle malloc/free without holding */
			for (int i = 0; m != old && i < 20000; i++) {
				if (m)
					free(m);
				m = NULL;
				if (posix_memalign(&m, 4096, sz))
					break;
			}
			if (m != old) {
				if (m)
					free(m);
				pu_reply("err %d", EAGAIN);
			} else {
				st_fill(m, sz, seed);
				pu_reply("ok %#lx %d", (unsigned long)m, nh);
			}
		} else if (!strcmp(cmd, "fill")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			st_fill(a, sz, pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "check")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save), first = pu_num(&save); /* word index of ADDR */
			const uint64_t *w = a;
			long bad = -1;
			for (size_t i = 0; i < sz / 8; i++)
				if (w[i] != st_pattern(seed, first + i)) {
					bad = (long)i * 8;
					break;
				}
			bad < 0 ? pu_reply("ok") : pu_reply("bad %ld", bad);
		} else if (!strcmp(cmd, "rd")) {
			/* read a 64-bit word, catching SIGBUS/SIGSEGV (reported as "sig N") */
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			unsigned char b;
			int sig = tu_probe_read(a, &b);
			sig ? pu_reply("sig %d", sig) : pu_reply("ok %lld", (long long)*a);
		} else if (!strcmp(cmd, "wr")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			uint64_t v = pu_num(&save);
			int sig = tu_probe_write(a, (unsigned char)v);
			if (!sig)
				*a = v;
			sig ? pu_reply("sig %d", sig) : pu_reply("ok");
		} else if (!strcmp(cmd, "waitsig")) {
			const volatile void *a = (const void *)(uintptr_t)pu_num(&save);
			int ms = (int)pu_num(&save);
			int sig = st_wait_signal(a, ms);
			sig ? pu_reply("ok %d", sig) : pu_reply("err %d", ETIMEDOUT);
		} else if (!strcmp(cmd, "mprotect")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			int prot = (int)pu_num(&save);
			mprotect(a, sz, prot) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "cas")) {
			/* start THREADS threads doing N CAS increments each on ADDR */
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			long n = (long)pu_num(&save);
			pu_cas_start(a, n, (int)pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "join")) {
			pu_cas_join();
			pu_reply("ok");
		} else if (!strcmp(cmd, "fds")) {
			pu_reply("ok %d", tu_count_fds());
		} else if (!strcmp(cmd, "pipewrite")) {
			/* pipewrite ADDR LEN: write(2) LEN bytes at ADDR into a pipe (a
			 * system call reading the memory, not a load) -> ok N | err E */
			const void *a = (const void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			int pfd[2];
			if (sz > 65536 || pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
				pu_reply("err %d", sz > 65536 ? E2BIG : errno);
			} else {
				ssize_t n = write(pfd[1], a, sz);
				int e = errno;
				close(pfd[0]);
				close(pfd[1]);
				n < 0 ? pu_reply("err %d", e) : pu_reply("ok %zd", n);
			}
		} else if (!strcmp(cmd, "drop")) {
			tu_drop_to_nobody() ? pu_reply("err %d", errno ? errno : EPERM) : pu_reply("ok %d", (int)getuid());
		} else if (!strcmp(cmd, "static")) {
			pu_reply("ok %#lx %zu %#lx %zu", (unsigned long)bss_area, sizeof(bss_area),
			      (unsigned long)data_area, sizeof(data_area));
		} else if (!strcmp(cmd, "arenaend")) {
			/* the address just past the arena (with the preload) */
			uxpmem_arena_query_v1_fn q =
				(uxpmem_arena_query_v1_fn)dlsym(RTLD_DEFAULT, UXPMEM_ARENA_QUERY_SYMBOL);
			struct uxpmem_arena_v1 ar;
			int r = q ? q(&ar) : -ENOENT;
			r < 0 ? pu_reply("err %d", -r) : pu_reply("ok %#llx", (unsigned long long)(ar.base + ar.size));
		} else if (!strcmp(cmd, "maxaddr")) {
			pu_reply("ok %#llx", pu_maxaddr());
		} else if (!strcmp(cmd, "faultloop")) {
			faultloop(&save);
		} else if (!strcmp(cmd, "remaploop")) {
			remaploop(&save);
		} else if (!strcmp(cmd, "tagcheck")) {
			tagcheck(&save);
		} else if (!strcmp(cmd, "flush")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uxpmem_flush(a, sz) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "revfd")) {
			/* queue revocation events from now on */
			uxpmem_revoke_fd() < 0 ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "revwait")) {
			/* the next revocation event within MS -> ok REASON APID MS_WAITED */
			revwait((int)pu_num(&save));
		} else if (!strcmp(cmd, "sleep")) {
			st_sleep_ms((int)pu_num(&save));
			pu_reply("ok");
		} else {
			pu_reply("err %d", ENOSYS);
		}
	}
	return 0;
}
