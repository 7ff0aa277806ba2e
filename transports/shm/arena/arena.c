/*
 * arena.c - the per-process memory arena of libuxpmem-arena.so: set-up,
 * query interface, logging, raw system calls, fork handling.
 *
 * Set-up runs in a constructor and, whichever comes first, in the first
 * call of malloc/mmap (uxa_ensure_init); it never calls malloc.  If the
 * arena cannot be created the process runs on jemalloc's default hooks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arena.h"
#include "arena_int.h"

struct uxa_state uxa = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

#define UXA_DEFAULT_SIZE (64ULL << 30)

int uxa_hooks_install(void);     /* hooks.c */
void uxa_je_prefork(void);       /* hooks.c: jemalloc's own fork handlers */
void uxa_je_postfork_parent(void);
void uxa_je_postfork_child(void);

/* ---- raw system calls -------------------------------------------------- */

void *uxa_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int uxa_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

int uxa_sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

int uxa_sys_shmdt(const void *addr)
{
	return (int)syscall(SYS_shmdt, addr);
}

void *uxa_sys_mremap(void *old, size_t oldsz, size_t newsz, int flags, void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, oldsz, newsz, flags, new_addr);
}

/* ---- logging: write(2) only, no stdio, no malloc ------------------------ */

static int log_level = 1; /* error */

static int parse_level(const char *v)
{
	static const char *const names[] = { "none", "error", "warn", "info", "debug", "trace" };
	if (!v || !*v)
		return 1;
	if (v[0] >= '0' && v[0] <= '5' && !v[1])
		return v[0] - '0';
	for (int i = 0; i < 6; i++)
		if (!strcasecmp(v, names[i]))
			return i;
	return 1;
}

void uxa_log(int level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "uxpmem[%d] %s: arena: ", (int)getpid(),
			 level <= UXA_WARN ? "warn" : "debug");
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t r = write(2, buf, (size_t)n);
	(void)r;
}

/* ---- memfd helpers ------------------------------------------------------ */

int uxa_punch(uintptr_t a, size_t len)
{
	if (fallocate(uxa.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(a - uxa.base), (off_t)len) < 0) {
		int e = errno;
		uxa_log(UXA_WARN, "punch %#lx+%#zx: %s", (unsigned long)a, len, strerror(e));
		return -e;
	}
	return 0;
}

static int copy_range(int sfd, off_t src, int dfd, off_t dst, off_t len)
{
	static char bounce[64 * 1024]; /* callers hold uxa.lock */
	while (len > 0) {
		off_t si = src, di = dst;
		ssize_t n = copy_file_range(sfd, &si, dfd, &di, (size_t)len, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			/* no copy_file_range here: read and write */
			size_t chunk = len < (off_t)sizeof(bounce) ? (size_t)len : sizeof(bounce);
			n = pread(sfd, bounce, chunk, src);
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			if (pwrite(dfd, bounce, (size_t)n, dst) != n)
				return -EIO;
		}
		src += n;
		dst += n;
		len -= n;
	}
	return 0;
}

int uxa_copy_data(int sfd, off_t src, int dfd, off_t dst, off_t len)
{
	off_t pos = src, end = src + len;
	while (pos < end) {
		off_t d = lseek(sfd, pos, SEEK_DATA);
		if (d < 0 || d >= end)
			break; /* ENXIO: only holes left */
		off_t h = lseek(sfd, d, SEEK_HOLE);
		if (h < 0 || h > end)
			h = end;
		int r = copy_range(sfd, d, dfd, dst + (d - src), h - d);
		if (r < 0)
			return r;
		pos = h;
	}
	return 0;
}

/* ---- set-up -------------------------------------------------------------- */

static uint64_t parse_size(const char *v, uint64_t def)
{
	if (!v || !*v)
		return def;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || n == 0 || n > (~0ULL >> shift))
		return def;
	return (uint64_t)n << shift;
}

/* Map the memfd at a 2 MiB aligned address (offset and address agree on
 * huge page boundaries, and aligned extents stay aligned in the file). */
static void *map_aligned(int fd, size_t size)
{
	size_t span = size + UXA_HUGE;
	char *r = uxa_sys_mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	char *a = (char *)uxa_round_up((uintptr_t)r, UXA_HUGE);
	void *m = uxa_sys_mmap(a, size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED) {
		uxa_sys_munmap(r, span);
		return MAP_FAILED;
	}
	if (a > r)
		uxa_sys_munmap(r, (size_t)(a - r));
	if (r + span > a + size)
		uxa_sys_munmap(a + size, (size_t)(r + span - (a + size)));
	return a;
}

static void uxa_prepare(void);
static void uxa_parent(void);
static void uxa_child(void);

static int arena_create(void)
{
	uint64_t size = uxa_round_up(parse_size(getenv("XPMEM_ARENA_SIZE"), UXA_DEFAULT_SIZE), UXA_HUGE);
	int fd = memfd_create("uxpmem-arena", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	void *m = map_aligned(fd, size);
	if (m == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	uxa.fd = fd;
	uxa.base = (uintptr_t)m;
	uxa.size = size;
	uxa.generation = 1;
	int r = segs_init(uxa.base, size);
	if (r < 0) {
		uxa_sys_munmap(m, size);
		close(fd);
		return r;
	}
	return 0;
}

static void arena_setup(void)
{
	log_level = parse_level(getenv("XPMEM_LOG_LEVEL"));
	int r = arena_create();
	if (r < 0) {
		uxa_log(UXA_WARN, "no arena (%s): heap and mmap stay private, not shareable",
			strerror(-r));
	} else {
		uxa.active = true;
		r = uxa_hooks_install();
		if (r < 0) {
			/* the hooks may be on some arenas: keep the mapping */
			uxa_log(UXA_WARN, "installing jemalloc extent hooks failed (%s)", strerror(-r));
		}
	}
	/* jemalloc's fork handlers are called from ours, in the right order */
	pthread_atfork(uxa_prepare, uxa_parent, uxa_child);
	uxa_log(UXA_DEBUG, "arena %#lx+%#zx fd %d", (unsigned long)uxa.base, uxa.size, uxa.fd);
}

static atomic_int init_state; /* 0 not started, 1 running, 2 done */
static pthread_t init_owner;

void uxa_ensure_init(void)
{
	if (uxa_likely(atomic_load_explicit(&init_state, memory_order_acquire) == 2))
		return;
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	/* a call made by the set-up itself proceeds without the arena */
	if (atomic_load(&init_state) == 1 && pthread_equal(init_owner, pthread_self()))
		return;
	pthread_mutex_lock(&m);
	if (atomic_load(&init_state) == 0) {
		init_owner = pthread_self();
		atomic_store(&init_state, 1);
		arena_setup();
		atomic_store_explicit(&init_state, 2, memory_order_release);
	}
	pthread_mutex_unlock(&m);
}

__attribute__((constructor(101))) static void uxa_constructor(void)
{
	uxa_ensure_init();
}

UXA_EXPORT int uxpmem_arena_query_v1(struct uxpmem_arena_v1 *out)
{
	uxa_ensure_init();
	if (!uxa.active)
		return -ENOENT;
	out->base = uxa.base;
	out->size = uxa.size;
	out->fd = uxa.fd;
	out->generation = uxa.generation;
	return 0;
}

/* ---- fork ------------------------------------------------------------------
 * The arena is MAP_SHARED: a plain fork would leave parent and child writing
 * the same heap.  prepare (after jemalloc's prefork, so no thread is inside
 * the allocator) copies the populated parts of the memfd into a new memfd
 * and records the arena's VMAs; the child maps the copy over them with the
 * same protections and makes it its arena; the parent closes the copy.
 * Memory written by other threads of the parent between prepare and fork
 * is not in the child's copy: POSIX already forbids a multi-threaded
 * parent's child to rely on anything but async-signal-safe calls.
 */
struct vma_rec {
	uintptr_t start, end;
	int prot;
};
static struct vma_rec *vmas;   /* raw mmap'd, reused */
static size_t vmas_cap, vmas_n;
static int snap_fd = -1;

static int vmas_push(uintptr_t s, uintptr_t e, int prot)
{
	if (vmas_n == vmas_cap) {
		size_t cap = vmas_cap ? vmas_cap * 2 : 4096;
		struct vma_rec *v = uxa_sys_mmap(NULL, cap * sizeof(*v), PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (v == MAP_FAILED)
			return -ENOMEM;
		if (vmas) {
			memcpy(v, vmas, vmas_n * sizeof(*v));
			uxa_sys_munmap(vmas, vmas_cap * sizeof(*v));
		}
		vmas = v;
		vmas_cap = cap;
	}
	vmas[vmas_n++] = (struct vma_rec){ s, e, prot };
	return 0;
}

static int parse_maps_line(const char *l, ino_t ino)
{
	unsigned long s, e, off, inode;
	char perm[5];
	unsigned dmaj, dmin;
	if (sscanf(l, "%lx-%lx %4s %lx %x:%x %lu", &s, &e, perm, &off, &dmaj, &dmin, &inode) != 7)
		return 0;
	if (inode != ino || e <= uxa.base || s >= uxa.base + uxa.size)
		return 0; /* not ours (FOREIGN ranges keep what the kernel does) */
	int prot = (perm[0] == 'r' ? PROT_READ : 0) | (perm[1] == 'w' ? PROT_WRITE : 0) |
		   (perm[2] == 'x' ? PROT_EXEC : 0);
	return vmas_push(s, e, prot);
}

/* The arena's own VMAs (those of its memfd inode) with their protections. */
static int collect_vmas(void)
{
	struct stat st;
	if (fstat(uxa.fd, &st) < 0)
		return -errno;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	static char buf[8192];
	size_t have = 0;
	int r = 0;
	vmas_n = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *l = buf, *nl;
		while ((nl = strchr(l, '\n'))) {
			*nl = 0;
			if (r == 0)
				r = parse_maps_line(l, st.st_ino);
			l = nl + 1;
		}
		have = strlen(l);
		memmove(buf, l, have);
	}
	close(fd);
	return r;
}

static int snapshot(void)
{
	int fd = memfd_create("uxpmem-arena", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = ftruncate(fd, (off_t)uxa.size) < 0 ? -errno : 0;
	if (r == 0)
		r = uxa_copy_data(uxa.fd, 0, fd, 0, (off_t)uxa.size);
	if (r == 0)
		r = collect_vmas();
	if (r < 0) {
		close(fd);
		return r;
	}
	snap_fd = fd;
	return 0;
}

static void uxa_prepare(void)
{
	uxa_je_prefork();
	if (!uxa.active)
		return;
	pthread_mutex_lock(&uxa.lock);
	int r = snapshot();
	if (r < 0)
		uxa_log(0, "fork: cannot copy the arena (%s): the child will exit", strerror(-r));
}

static void uxa_parent(void)
{
	if (uxa.active) {
		if (snap_fd >= 0)
			close(snap_fd);
		snap_fd = -1;
		pthread_mutex_unlock(&uxa.lock);
	}
	uxa_je_postfork_parent();
}

static void die_in_child(const char *why)
{
	static const char pre[] = "uxpmem: arena: forked child cannot get a private copy of the heap: ";
	ssize_t r = write(2, pre, sizeof(pre) - 1);
	r = write(2, why, strlen(why));
	r = write(2, "\n", 1);
	(void)r;
	_exit(127);
}

static void uxa_child(void)
{
	if (uxa.active) {
		if (snap_fd < 0)
			die_in_child("no snapshot (see the parent's log)");
		for (size_t i = 0; i < vmas_n; i++) {
			struct vma_rec *v = &vmas[i];
			if (uxa_sys_mmap((void *)v->start, v->end - v->start, v->prot,
					 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, snap_fd,
					 (off_t)(v->start - uxa.base)) == MAP_FAILED)
				die_in_child(strerror(errno));
		}
		/* same descriptor number, new file: nothing can keep the old one */
		if (dup3(snap_fd, uxa.fd, O_CLOEXEC) < 0)
			die_in_child(strerror(errno));
		close(snap_fd);
		snap_fd = -1;
		uxa.generation++;
		pthread_mutex_unlock(&uxa.lock);
	}
	uxa_je_postfork_child();
}
