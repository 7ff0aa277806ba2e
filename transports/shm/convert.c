/* convert.c - export any memory: in-place conversion and the userspace MMU
 * notifier (exporter side).
 *
 * An importer attaching memory that is not in the arena sends RESOLVE; the
 * converter thread answers with what backs each piece of the range:
 * - arena memory: the arena memfd the importer already has;
 * - memory converted before and still mapped from our memfd: that memfd;
 * - private anonymous memory (heap, thread stacks, .bss, anonymous mmap):
 *   it is converted in place: writers are frozen with a userfaultfd
 *   write-protect, the contents copied into a new memfd, the memfd mapped
 *   MAP_SHARED|MAP_FIXED over the same addresses and the writers woken:
 *   their writes land in the memfd, none is lost.  Transparent: the same
 *   addresses, contents and protection; memory hooks are not told (they
 *   would run application code in the converter, see uxp_sys_mmap);
 * - private file-backed writable memory (.data): userfaultfd cannot
 *   write-protect it, so every application thread is stopped instead
 *   (uxp_freeze, a signal safepoint) while it is copied and replaced;
 * - anything else: a hole (SIGBUS when touched), logged.
 *
 * Converted ranges stay registered with the userfaultfd (write-protect mode,
 * nothing protected) for UNMAP/REMAP/REMOVE events.  The thread that unmaps
 * blocks until the notifier thread reads the event, and the VMA is already
 * gone by then: before reading, the notifier finds the tracked ranges that
 * no longer map their memfd and has every importer map SIGBUS over them
 * (INVALIDATE, acknowledged).  So an importer never reads memory that is no
 * longer the exporter's.
 *
 * The converter and notifier must never write memory that may be frozen
 * (heap, .data/.bss) or they would wait on their own write-protect fault:
 * they only use their stacks and a private region mapped with the raw
 * syscall; both are excluded from conversion.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "shm.h"
#include "arena/arena.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED /* Linux 6.4; Debian 12's headers predate it */
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define MAX_CONV 4096        /* tracked converted ranges */
#define MAX_USERS 64         /* importer connections per converted range */
#define MAX_EXCLUDED 64      /* our own stacks, state and libraries' data */
#define MAX_ACKERS 256       /* importers one invalidation waits for (arena: 256) */
#define MAPS_BUF (4u << 20)  /* /proc/self/maps snapshot */
#define SMAPS_BUF (64u << 10)
/* A RESOLVE converts for about CONVERT_BUDGET_MS, CONVERT_CHUNK at a time,
 * then answers what is done (the importer asks for the rest): no request
 * waits long behind a large conversion, and importers asking for the same
 * range share the work (each finds what the others converted). */
#define CONVERT_CHUNK ((size_t)32 << 20)
#define CONVERT_BUDGET_MS 250

/* A memfd backing converted memory; shared by the pieces a range splits
 * into.  Or (app) the file of one of the application's own MAP_SHARED
 * mappings (shared.c): never punched, never made private on fork; fd -1
 * and shmid >= 0 for a SysV segment that importers attach by id. */
struct backing {
	int fd;
	dev_t dev;
	ino_t ino;
	unsigned refs;
	int app;
	int shmid;
	int watched;    /* app: its mapping raises UNMAP events (shmem) */
};

struct conv {
	uintptr_t start, end;    /* exporter addresses */
	off_t off;               /* offset of start in the memfd */
	struct backing *b;
	struct uxp_conn *users[MAX_USERS]; /* importers given this memfd */
	unsigned nusers;
};

struct excluded {
	uintptr_t start, end;
};

/* Everything the converter and notifier write lives here (raw mmap). */
struct state {
	pthread_mutex_t lock;           /* conv[], backings, excluded[] */
	pthread_cond_t acked;
	struct conv conv[MAX_CONV];
	unsigned nconv;
	struct backing backing[MAX_CONV];
	struct excluded excluded[MAX_EXCLUDED];
	unsigned nexcluded;
	unsigned nfixed;                /* excluded[] entries that survive fork */
	uint64_t inval_seq;
	unsigned acks_pending;
	struct uxp_conn *ackers[MAX_ACKERS]; /* told, not acknowledged yet (NULL: done) */
	unsigned nackers;
	int inval_busy;                 /* an invalidation is waiting for acks */
	int deferring;                  /* sweep: keep memfds open until events are handled */
	int deferred[MAX_CONV];
	unsigned ndeferred;
	int snapshot[MAX_CONV];         /* fork: copies of conv[] for the child */
	char maps[2][MAPS_BUF];         /* snapshots: converter's, notifier's */
	char smaps[SMAPS_BUF];          /* the converter's window on /proc/self/smaps */
};

enum { MAPS_CONVERTER, MAPS_NOTIFIER };

static struct state *st;
static int uffd = -1;        /* the notifier's: converted ranges, events */
/* The converter's, for the write-protect freeze only: no events, so its own
 * MAP_FIXED over a frozen range never waits for the notifier (which may be
 * waiting for importers), and an application's pending unmap event never
 * makes its UFFDIO_WRITEPROTECT fail with EAGAIN (mmap_changing). */
static int freeze_fd = -1;
static int notifier_wake_fd = -1; /* eventfd: an unwatched range is tracked now */
static int uffd_level; /* UXP_UFFD_* */
static uint64_t uffd_features;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

/* ---- jobs for the converter thread -------------------------------------- */

struct job {
	struct uxp_conn *c;
	struct uxp_msg m;
	int rdonly, arena_ok, whole;
	uintptr_t seg_start, seg_end;
	struct job *next;
};

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static struct job *jobs, **jobs_tail = &jobs;

/* ---- userfaultfd --------------------------------------------------------- */

static int uffd_open(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);
	if (fd >= 0 || flags)
		return fd;
	/* root-less full access through /dev/userfaultfd (Linux >= 6.1) */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

#define WANTED_FEATURES                                                             \
	(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
	 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED)

/* A second descriptor with the flags and features of the notifier's, those
 * of want only (UFFDIO_API may be called once per descriptor). */
static int open_more_uffd(uint64_t want)
{
	int fd = uffd_open(uffd_level == UXP_UFFD_USER ? UFFD_USER_MODE_ONLY : 0);
	struct uffdio_api api = { .api = UFFD_API, .features = uffd_features & want };
	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The level this process can have, and a descriptor with the features we
 * use that this kernel has (or -1).  UFFDIO_API may be called once per
 * descriptor: learn the kernel's features on a throw-away one first. */
static int open_notifier_uffd(int *level)
{
	int flags = 0;
	if (!uxp_userfaultfd_allowed()) {
		*level = UXP_UFFD_NONE;
		return -1;
	}
	int fd = uffd_open(0);
	*level = UXP_UFFD_FULL;
	if (fd < 0) {
		flags = UFFD_USER_MODE_ONLY;
		fd = uffd_open(flags);
		*level = UXP_UFFD_USER;
	}
	struct uffdio_api probe = { .api = UFFD_API };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &probe) < 0) {
		if (fd >= 0)
			close(fd);
		*level = UXP_UFFD_NONE;
		return -1;
	}
	close(fd);
	fd = uffd_open(flags);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = probe.features & (WANTED_FEATURES | UFFD_FEATURE_MINOR_SHMEM) };
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0) {
		if (fd >= 0)
			close(fd);
		*level = UXP_UFFD_NONE;
		return -1;
	}
	uffd_features = api.features;
	return fd;
}

int uxp_uffd_level(char *why, size_t whylen)
{
	int level;
	int fd = open_notifier_uffd(&level);
	if (fd >= 0)
		close(fd);
	if (why)
		snprintf(why, whylen, "%s",
			 level == UXP_UFFD_FULL ? "full (kernel-mode accesses wait for conversion)"
			 : level == UXP_UFFD_USER ? "user-mode-only (vm.unprivileged_userfaultfd=0: a "
						    "system call writing exported memory during a "
						    "conversion fails with EFAULT)"
			 : !uxp_userfaultfd_allowed() ? "none (XPMEM_USERFAULTFD=0: memory outside the arena is holes)"
			 : "none (memory outside the arena cannot be exported: holes)");
	return level;
}

static int features_ok(void)
{
	return (uffd_features & WANTED_FEATURES) == WANTED_FEATURES;
}

static int wp_register(uintptr_t a, size_t len)
{
	struct uffdio_register r = { .range = { a, len }, .mode = UFFDIO_REGISTER_MODE_WP };
	return ioctl(freeze_fd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Watch converted memory: write-protect mode (nothing protected) for the
 * UNMAP/REMAP/REMOVE events, and, where the kernel has it, minor-fault
 * mode: after MADV_DONTNEED zapped the exporter's page table entries, its
 * next touch of a page still in the memfd waits for the notifier, which
 * punches the memfd first, so the exporter reads zeros as with private
 * memory (never the old bytes).  The entries are populated first, or every
 * first touch after the conversion would be a minor fault.  Only with full
 * userfaultfd: with user-mode-only, a system call touching such a page (a
 * read(2) into memory glibc trimmed) would fail with EFAULT instead of
 * waiting - worse than the microseconds of old bytes it closes. */
static int watch_converted(uintptr_t a, size_t len)
{
	int minor = uffd_level == UXP_UFFD_FULL && (uffd_features & UFFD_FEATURE_MINOR_SHMEM) &&
		    uxp_sys_madvise((void *)a, len, MADV_POPULATE_READ) == 0;
	struct uffdio_register r = { .range = { a, len },
				     .mode = UFFDIO_REGISTER_MODE_WP |
					     (minor ? UFFDIO_REGISTER_MODE_MINOR : 0) };
	return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

static void wake(int fd, uintptr_t a, size_t len);

/* A minor fault on converted memory: map the memfd's page (gone if just
 * punched: then the retry maps a fresh zero page). */
static void resolve_minor(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(uxp_page_size - 1);
	struct uffdio_continue c = { .range = { page, uxp_page_size } };
	if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0)
		wake(uffd, page, uxp_page_size);
}

/* wp_unregister, wp_protect, wake and still_frozen run inside a freeze:
 * raw system calls only.  A libc function a sanitizer or a preloaded tool
 * intercepts may write memory of its own (ThreadSanitizer's open() records
 * a stack in its depot) and that memory may be the frozen range: the
 * converter would wait in a write fault on its own freeze. */
static void wp_unregister(uintptr_t a, size_t len)
{
	struct uffdio_range r = { a, len };
	syscall(SYS_ioctl, freeze_fd, UFFDIO_UNREGISTER, &r);
}

static int wp_protect(uintptr_t a, size_t len, int on)
{
	struct uffdio_writeprotect w = { .range = { a, len },
					 .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
	return syscall(SYS_ioctl, freeze_fd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

static void wake(int fd, uintptr_t a, size_t len)
{
	struct uffdio_range r = { a, len };
	syscall(SYS_ioctl, fd, UFFDIO_WAKE, &r);
}

/* ---- the maps ------------------------------------------------------------ */

struct vma {
	uintptr_t start, end;
	char perms[5];
	unsigned long long off;
	unsigned dev_major, dev_minor;
	unsigned long ino;
	const char *path; /* in line[], "" for anonymous */
	char line[4352];  /* copy of the line: the snapshot stays intact */
};

/* Snapshot /proc/self/maps into st->maps[which] (no malloc); each thread
 * has its own. */
static int read_maps(int which)
{
	char *buf = st->maps[which];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r = read(fd, buf + n, MAPS_BUF - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == MAPS_BUF - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	return n == MAPS_BUF - 1 ? -E2BIG : 0;
}

/* Parse the next line of the snapshot at *pos into v; 0 at the end.  The
 * snapshot is not modified (several scans may walk it). */
static int next_vma(char **pos, struct vma *v)
{
	for (;;) {
		const char *line = *pos;
		if (!*line)
			return 0;
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		*pos += len + (nl ? 1 : 0);
		if (len >= sizeof(v->line))
			len = sizeof(v->line) - 1;
		memcpy(v->line, line, len);
		v->line[len] = '\0';
		int path_at = 0;
		if (sscanf(v->line, "%lx-%lx %4s %llx %x:%x %lu %n", &v->start, &v->end, v->perms,
			   &v->off, &v->dev_major, &v->dev_minor, &v->ino, &path_at) < 7)
			continue;
		v->path = path_at ? v->line + path_at : "";
		return 1;
	}
}

/* ---- tracked ranges ------------------------------------------------------ */

/* The lowest excluded range overlapping [a, b), in *ex. */
static int excluded_overlap(uintptr_t a, uintptr_t b, struct excluded *ex)
{
	int found = 0;
	for (unsigned i = 0; i < st->nexcluded; i++)
		if (st->excluded[i].start < b && a < st->excluded[i].end &&
		    (!found || st->excluded[i].start < ex->start)) {
			*ex = st->excluded[i];
			found = 1;
		}
	return found;
}

static void state_init(void);

/* ---- thread descriptors ------------------------------------------------
 * A thread's descriptor (struct pthread: its tid, its lists) and static TLS
 * are never converted.  They are written from outside the thread's own
 * code: fork's child writes its copy of the forking thread's descriptor
 * (CLONE_CHILD_SETTID, glibc's reclaim of stacks, a sanitizer's fork
 * hooks) before any handler of ours runs in it; were that page shared with
 * the parent (a conversion memfd), the child would overwrite the parent's
 * main thread tid (pthread_kill() then fails with ESRCH in the parent).
 * The main thread's block comes from the dynamic loader (anonymous memory
 * anywhere); other threads' blocks sit at the top of their stacks. */

static uintptr_t main_self; /* pthread_self() of the main thread, 0: unknown */
static size_t tls_static_size, tls_align, tcb_size; /* 0: glibc did not tell */

__attribute__((constructor)) static void note_main_thread(void)
{
	if (getpid() == (pid_t)syscall(SYS_gettid))
		main_self = (uintptr_t)pthread_self();
}

/* Once, from state_init (no lock of ours held: dlsym takes the loader's). */
static void learn_thread_sizes(void)
{
	if (!main_self)
		note_main_thread(); /* called before our constructor ran */
	/* glibc's own (GLIBC_PRIVATE, what libthread_db and sanitizers use) */
	void (*tls_info)(size_t *, size_t *) =
		(void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
	const unsigned *sizeof_pthread = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
	size_t tls = 0, align = 0;
	if (!tls_info || !sizeof_pthread)
		return;
	tls_info(&tls, &align);
	if (tls >= *sizeof_pthread && align && !(align & (align - 1))) {
		tls_static_size = tls;
		tls_align = align;
		tcb_size = *sizeof_pthread;
	}
}

/* [*lo, *hi): whole pages holding the descriptor and static TLS of the
 * thread whose pthread_self() is self; 0 when unknown. */
static int thread_block(uintptr_t self, uintptr_t *lo, uintptr_t *hi)
{
	if (!self || !tcb_size)
		return 0;
#if defined(__x86_64__) || defined(__i386__)
	/* TLS variant II: the static TLS blocks below the descriptor, which
	 * the thread pointer points at; the static size includes it */
	uintptr_t a = self - (tls_static_size - tcb_size), b = self + tcb_size;
#else
	/* variant I: the descriptor below the thread pointer, TLS above it */
	uintptr_t a = self, b = self + tcb_size + tls_static_size;
#endif
	uintptr_t pg = uxp_page_size - 1;
	*lo = a & ~pg;
	*hi = (b + pg) & ~pg;
	return 1;
}

/* The thread block at the top of v, when v is the stack of a thread glibc
 * made (it puts the descriptor at the top of the mapping): application
 * threads' descriptors are written by a fork's child too (glibc marks
 * every other thread's stack free in the child: tid = 0).  x86-64 only:
 * there a descriptor begins with its own address twice (tcbhead_t's tcb
 * and self), which tells it from data.  Read with process_vm_readv: v may
 * be gone since the maps were read. */
static int stack_top_thread_block(const struct vma *v, uintptr_t *lo, uintptr_t *hi)
{
#if defined(__x86_64__)
	if (!tcb_size || v->path[0] || strncmp(v->perms, "rw-p", 4) || v->end - v->start < tls_static_size)
		return 0;
	uintptr_t pd = (v->end - tcb_size) & ~(uintptr_t)(tls_align - 1), w[3];
	struct iovec local = { w, sizeof(w) }, remote = { (void *)pd, sizeof(w) };
	if (syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL) != (long)sizeof(w) ||
	    w[0] != pd || w[2] != pd)
		return 0;
	return thread_block(pd, lo, hi);
#else
	(void)v;
	(void)lo;
	(void)hi;
	return 0;
#endif
}

static void exclude_range(uintptr_t lo, uintptr_t hi)
{
	if (st->nexcluded < MAX_EXCLUDED)
		st->excluded[st->nexcluded++] = (struct excluded){ lo, hi };
}

/* This thread's stack and its thread block: one range where they touch
 * (other threads), two for the main thread (the loader's block is apart). */
static void exclude_own_stack(void)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	uintptr_t lo = 0, hi = 0, tlo, thi, pg = uxp_page_size - 1;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		/* whole pages: the stack's ends need not be aligned (glibc puts
		 * the thread's TLS and descriptor above it), and what is left
		 * of a page next to it could not be converted */
		if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
			lo = (uintptr_t)addr & ~pg;
			hi = ((uintptr_t)addr + size + pg) & ~pg;
		}
		pthread_attr_destroy(&attr);
	}
	if (thread_block((uintptr_t)pthread_self(), &tlo, &thi)) {
		if (hi && tlo <= hi && lo <= thi) {
			lo = tlo < lo ? tlo : lo;
			hi = thi > hi ? thi : hi;
		} else {
			exclude_range(tlo, thi);
		}
	}
	if (hi)
		exclude_range(lo, hi);
}

/* Library threads that may run during a freeze (service, revocation
 * dispatcher) call this first: their stacks are never converted. */
void uxp_conv_exclude_self(void)
{
	pthread_once(&state_once, state_init);
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	exclude_own_stack();
	pthread_mutex_unlock(&st->lock);
}

/* Writable data of the objects whose code library threads run (the C
 * library, the dynamic loader, libxpmem itself, sanitizer runtimes): those
 * threads are never stopped and write it, so it is never converted (a
 * hole).  When libxpmem is linked into the executable (its tests), its
 * globals share the executable's data and only stacks are excluded. */
static int library_object(const char *path)
{
	static const char *const names[] = {
		"libc.so", "ld-linux", "ld64.so", "libxpmem.so", "libuxpmem-arena", "libgcc_s",
		"libpthread", "librt.so", "libdl.so", "libasan", "libubsan", "libtsan", "liblsan",
	};
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (unsigned i = 0; i < UXP_ARRAY_SIZE(names); i++)
		if (strncmp(base, names[i], strlen(names[i])) == 0)
			return 1;
	return 0;
}

static int exclude_object_data(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	if (!info->dlpi_name || !info->dlpi_name[0] || !library_object(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
			continue;
		uintptr_t a = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(uxp_page_size - 1);
		uintptr_t b = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + uxp_page_size - 1) &
			      ~(uintptr_t)(uxp_page_size - 1);
		exclude_range(a, b);
	}
	return 0;
}

static void exclude_library_data(void)
{
	dl_iterate_phdr(exclude_object_data, NULL);
}

static struct conv *find_conv(uintptr_t a)
{
	for (unsigned i = 0; i < st->nconv; i++)
		if (st->conv[i].start <= a && a < st->conv[i].end)
			return &st->conv[i];
	return NULL;
}

static struct backing *alloc_backing(struct backing b)
{
	for (unsigned i = 0; i < MAX_CONV; i++)
		if (st->backing[i].refs == 0) {
			st->backing[i] = b;
			st->backing[i].refs = 1;
			return &st->backing[i];
		}
	return NULL;
}

static struct backing *new_backing(int fd)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return NULL;
	return alloc_backing((struct backing){ .fd = fd, .dev = sb.st_dev, .ino = sb.st_ino, .shmid = -1 });
}

static dev_t vma_dev(const struct vma *v)
{
	return makedev(v->dev_major, v->dev_minor);
}

/* Does the snapshot line v map backing b (at any offset)? */
static int maps_backing(const struct vma *v, const struct backing *b)
{
	return v->ino == b->ino && vma_dev(v) == b->dev && v->perms[3] == 's';
}

static void put_backing(struct backing *b)
{
	if (--b->refs)
		return;
	if (st->deferring && st->ndeferred < MAX_CONV) {
		/* an mremap's REMAP event still has to find it */
		b->refs = 1;
		st->deferred[st->ndeferred++] = (int)(b - st->backing);
	} else if (b->fd >= 0) {
		close(b->fd);
	}
}

static void conv_add_user(struct conv *cv, struct uxp_conn *c)
{
	/* closed while its RESOLVE waited in the queue: uxp_conv_conn_closed
	 * (same lock) has run or will not see it, so do not keep it */
	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return;
	for (unsigned i = 0; i < cv->nusers; i++)
		if (cv->users[i] == c)
			return;
	if (cv->nusers == MAX_USERS) {
		uxp_warn("shm: more than %d importers of %#lx: the oldest is no longer told of changes",
			 MAX_USERS, (unsigned long)cv->start);
		uxp_conn_put(cv->users[0]);
		memmove(cv->users, cv->users + 1, (MAX_USERS - 1) * sizeof(cv->users[0]));
		cv->nusers--;
	}
	uxp_conn_get(c);
	cv->users[cv->nusers++] = c;
}

static void conv_drop(struct conv *cv)
{
	for (unsigned i = 0; i < cv->nusers; i++)
		uxp_conn_put(cv->users[i]);
	put_backing(cv->b);
	*cv = st->conv[--st->nconv];
}

/* ---- conversion (converter thread) ----------------------------------------- */

/* Private file-backed writable memory, such as .data, is converted by
 * stopping every thread; anonymous memory by freezing its writers. */
static int file_backed(const struct vma *v)
{
	return v->ino != 0 && v->path[0] && v->path[0] != '[';
}

/* Can this mapping be converted in place? */
static int convertible(const struct vma *v)
{
	if (v->perms[3] != 'p' || v->perms[0] != 'r' || v->perms[2] == 'x')
		return 0; /* shared (not ours), unreadable/guard, or code */
	if (v->path[0] == '[' && strcmp(v->path, "[heap]") && strcmp(v->path, "[stack]"))
		return 0; /* [vdso], [vvar], [vsyscall] */
	if (strstr(v->path, "anon_hugepage") || strstr(v->path, "/hugepages"))
		return 0; /* hugetlb */
	if (file_backed(v) && (v->perms[1] != 'w' || !uxp_freeze_available()))
		return 0; /* read-only file data, or no way to stop the threads */
	return 1;
}

/* Re-apply what a VMA had that a fresh mapping loses. */
static void restore_flags(uintptr_t a, size_t len, const char *vmflags)
{
	static const struct { const char *flag; int advice; } advices[] = {
		{ "dd", MADV_DONTDUMP }, { "hg", MADV_HUGEPAGE }, { "nh", MADV_NOHUGEPAGE },
		{ "dc", MADV_DONTFORK }, { "mg", MADV_MERGEABLE },
	};
	for (unsigned i = 0; i < UXP_ARRAY_SIZE(advices); i++)
		if (strstr(vmflags, advices[i].flag))
			uxp_sys_madvise((void *)a, len, advices[i].advice);
	if (strstr(vmflags, " lo") && uxp_sys_mlock((void *)a, len) < 0)
		uxp_warn("shm: could not re-lock converted %#lx+%#zx: %s", (unsigned long)a, len,
			 strerror(errno));
}

/* VmFlags of the VMA starting at start, from /proc/self/smaps (into buf;
 * converter thread).  The kernel walks the page tables of every VMA it
 * prints, so this reads in large chunks, with no stdio, and stops at the
 * VMA wanted. */
static void vma_flags(uintptr_t start, char *buf, size_t len)
{
	char head[32];
	char *w = st->smaps;
	size_t have = 0;
	int in = 0;
	buf[0] = '\0';
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t len_head = (size_t)snprintf(head, sizeof(head), "%lx-", (unsigned long)start);
	for (;;) {
		ssize_t n = read(fd, w + have, SMAPS_BUF - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		w[have] = '\0';
		char *line = w, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (!in && strncmp(line, head, len_head) == 0) {
				in = 1;
			} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
				snprintf(buf, len, " %s", line + 8);
				close(fd);
				return;
			}
			line = nl + 1;
		}
		/* keep the incomplete last line */
		have = (size_t)(w + have - line);
		memmove(w, line, have);
		if (have == SMAPS_BUF - 1)
			have = 0; /* a line this long is not one we want */
	}
	close(fd);
}

static int prot_of(const char *perms)
{
	return (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0);
}

/* Copy [a, a+len) into mfd with no allocation and no lock. */
static int copy_out(int mfd, uintptr_t a, size_t len, off_t off)
{
	for (size_t done = 0; done < len;) {
		/* the raw system call: this copies pages, not objects (a sanitizer's
		 * pwrite wrapper would check them against its own heap layout) */
		ssize_t n = syscall(SYS_pwrite64, mfd, (char *)a + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

#define PM_UFFD_WP (1ULL << 57) /* /proc/self/pagemap: the page is uffd write-protected */

/* Is every page of [a, a+len) still write-protected by our freeze?  The
 * application may have replaced the range (mmap MAP_FIXED, munmap + mmap,
 * mremap) or dropped pages of it (MADV_DONTNEED: on anonymous memory the
 * zap drops the write-protect markers) while we copied: the freeze stops
 * writes, not these calls, and the freeze descriptor has no events.  A
 * mapping that is not our frozen VMA, or a page zapped since, has no
 * write-protect bit: mapping our copy over it would silently lose the
 * application's new mapping, its writes, or the zeros it asked for.  Reads
 * the page map in blocks into this thread's stack (no allocation). */
static int still_frozen(uintptr_t a, size_t len)
{
	uint64_t pm[512];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t pages = len / uxp_page_size, at = 0;
	int ok = 1;
	while (ok && at < pages) {
		size_t n = pages - at < UXP_ARRAY_SIZE(pm) ? pages - at : UXP_ARRAY_SIZE(pm);
		ssize_t r = syscall(SYS_pread64, fd, pm, n * sizeof(pm[0]),
				    (off_t)((a / uxp_page_size + at) * sizeof(pm[0])));
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)(n * sizeof(pm[0]))) {
			ok = 0;
			break;
		}
		for (size_t i = 0; i < n && ok; i++)
			ok = (pm[i] & PM_UFFD_WP) != 0;
		at += n;
	}
	syscall(SYS_close, fd);
	return ok;
}

#ifndef PROCMAP_QUERY /* Linux 6.11 <linux/fs.h>; older headers lack it */
struct procmap_query {
	uint64_t size, query_flags, query_addr, vma_start, vma_end, vma_flags, vma_page_size,
		vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#endif

/* After our MAP_FIXED and the registration for events: is [a, a+len) still
 * mapped from memfd ino at off?  Between the two, a munmap/mmap of the
 * application raised no event (the range was registered with nothing), so
 * this is the only way to know.  1 yes, 0 no, 1 also when the kernel
 * cannot tell (PROCMAP_QUERY: Linux >= 6.11; older kernels keep that
 * window of microseconds). */
static int still_mapped(uintptr_t a, size_t len, ino_t ino, off_t off)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	struct procmap_query q = { .size = sizeof(q), .query_addr = a };
	int r = ioctl(fd, PROCMAP_QUERY, &q);
	int e = errno;
	close(fd);
	if (r < 0)
		return e == ENOENT ? 0 : 1; /* ENOENT: nothing mapped at a */
	return q.vma_start <= a && q.vma_end >= a + len && q.inode == ino &&
	       q.vma_offset + (a - q.vma_start) == (uint64_t)off;
}

static uintptr_t cut_conv(struct conv *cv, uintptr_t a, uintptr_t b);

/* Record [a, a+len) of bk at off: extend the record that ends at a, or add
 * one.  Done right after our mmap and BEFORE the registration for events:
 * from the registration on, the notifier must find it (a munmap is swept
 * against it, a MADV_DONTNEED punches it); a record made only when the
 * whole conversion is done missed what the application did to the first
 * chunks meanwhile (DONTNEED not punched: old bytes read back; munmap not
 * seen: the importer handed memory the exporter had unmapped).  The
 * records of a conversion in progress have no users yet (only this thread
 * adds them).  0, or -ENOSPC.  Takes st->lock. */
static int track_chunk(struct backing *bk, uintptr_t a, size_t len, off_t off)
{
	int ret = 0;
	pthread_mutex_lock(&st->lock);
	struct conv *cv = NULL;
	for (unsigned i = 0; i < st->nconv && !cv; i++)
		if (st->conv[i].b == bk && st->conv[i].end == a &&
		    st->conv[i].off + (off_t)(a - st->conv[i].start) == off)
			cv = &st->conv[i];
	if (cv) {
		cv->end = a + len;
	} else if (st->nconv < MAX_CONV) {
		bk->refs++;
		st->conv[st->nconv++] = (struct conv){ .start = a, .end = a + len, .off = off, .b = bk };
	} else {
		ret = -ENOSPC;
	}
	pthread_mutex_unlock(&st->lock);
	return ret;
}

/* Forget [a, a+len) of bk's records (no users yet, see track_chunk). */
static void untrack_chunk(struct backing *bk, uintptr_t a, size_t len)
{
	pthread_mutex_lock(&st->lock);
	for (unsigned i = 0; i < st->nconv;) {
		struct conv *cv = &st->conv[i];
		if (cv->b != bk || cv->end <= a || a + len <= cv->start) {
			i++;
			continue;
		}
		cut_conv(cv, a > cv->start ? a : cv->start, a + len < cv->end ? a + len : cv->end);
		i = 0; /* records moved */
	}
	pthread_mutex_unlock(&st->lock);
}

/* Our copy is mapped at [a, a+len): record it, watch it, and check that the
 * application did not change it before the watch began (-EAGAIN; its
 * change stays, the record goes). */
static int track_and_watch(struct backing *bk, uintptr_t a, size_t len, off_t off)
{
	int ret = track_chunk(bk, a, len, off);
	if (ret < 0)
		return ret; /* converted but untracked: never handed out */
	if (watch_converted(a, len) < 0)
		uxp_warn("shm: converted %#lx+%#zx cannot be watched for changes", (unsigned long)a, len);
	if (!still_mapped(a, len, bk->ino, off)) {
		uxp_debug("shm: converted %#lx+%#zx was changed by the application before it was watched",
			  (unsigned long)a, len);
		untrack_chunk(bk, a, len);
		return -EAGAIN;
	}
	return 0;
}

/* Anonymous memory: freeze its writers with a userfaultfd write-protect,
 * copy, replace, wake them.  -EAGAIN: the application changed the range
 * meanwhile (nothing replaced; the caller looks at the maps again). */
static int replace_wp_frozen(uintptr_t a, size_t len, int prot, struct backing *bk, off_t off)
{
	int ret = wp_register(a, len);
	if (ret < 0)
		return uxp_fail(-ret, "shm: cannot convert %#lx+%#zx: userfaultfd register: %s%s",
				(unsigned long)a, len, strerror(-ret),
				ret == -EBUSY ? " (another userfaultfd owns it)" : "");
	/* freeze: from here no writer of [a, b) proceeds until wake().  The
	 * freeze descriptor has no events: our MAP_FIXED below waits for no
	 * one. */
	ret = wp_protect(a, len, 1);
	if (ret == 0)
		ret = copy_out(bk->fd, a, len, off);
	/* checked after the copy, right before the replacement: what the
	 * application did to the mapping while we copied is not lost (a call
	 * landing between this check and the mmap is not seen: microseconds,
	 * the kernel has no "replace if unchanged") */
	if (ret == 0 && !still_frozen(a, len))
		ret = -EAGAIN;
	/* the system call: a memory hook (UCX, Open MPI) would run in this
	 * thread and write application memory, frozen right now */
	int mapped = ret == 0 && uxp_sys_mmap((void *)a, len, prot, MAP_SHARED | MAP_FIXED, bk->fd, off) !=
					 MAP_FAILED;
	if (ret == 0 && !mapped)
		ret = -errno;
	if (mapped)
		ret = track_and_watch(bk, a, len, off);
	if (!mapped) {
		wp_protect(a, len, 0);
		wp_unregister(a, len);
	}
	wake(freeze_fd, a, len);
	/* thaw: writers resume, into the memfd */
	return ret;
}

/* File-backed private memory (.data): stop every application thread, copy,
 * replace, resume them.  While they are stopped nothing here may lock or
 * allocate (a stopped thread may hold the lock); the mmap is the system
 * call, as everywhere in library threads (memory hooks take locks). */
static int replace_stopped(uintptr_t a, size_t len, int prot, struct backing *bk, off_t off)
{
	int ret = uxp_freeze(uxp_timeout_ms("XPMEM_FREEZE_TIMEOUT_MS", 1000));
	if (ret < 0)
		return uxp_fail(-ret, "shm: cannot convert %#lx+%#zx: its threads did not stop: %s",
				(unsigned long)a, len, strerror(-ret));
	ret = copy_out(bk->fd, a, len, off);
	if (ret == 0 && uxp_sys_mmap((void *)a, len, prot, MAP_SHARED | MAP_FIXED, bk->fd, off) ==
				MAP_FAILED)
		ret = -errno;
	uxp_thaw();
	/* not registered before (file-backed): no UNMAP event was raised; from
	 * now on it is shared memory, watched like every converted range */
	if (ret == 0)
		ret = track_and_watch(bk, a, len, off);
	return ret;
}

/* Convert [a, b) of mapping v, in chunks of CONVERT_CHUNK into one memfd,
 * until done or deadline (at least one chunk): a large range never holds
 * the converter, nor the importers queued behind it, for long.  Returns 1
 * when it recorded a conversion from a (perhaps shorter than [a, b): the
 * importer asks for the rest) of the memfd *ino, 0 for a hole, -EAGAIN
 * when the application changed the mapping meanwhile and nothing was
 * recorded (look at the maps again).  The caller does not hold st->lock. */
static int convert(uintptr_t a, uintptr_t b, const struct vma *v, long long deadline, ino_t *ino)
{
	char flags[256];
	int ret = 0;
	uintptr_t done = a;

	vma_flags(v->start, flags, sizeof(flags));
	int mfd = memfd_create("uxpmem-conv", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)(b - a)) < 0) {
		uxp_warn("shm: memfd for conversion: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		return 0;
	}
	pthread_mutex_lock(&st->lock);
	/* no room for its record: do not convert (converted memory nobody
	 * tracks would not follow the application's MADV_DONTNEED) */
	struct backing *bk = st->nconv < MAX_CONV ? new_backing(mfd) : NULL;
	pthread_mutex_unlock(&st->lock);
	if (!bk) {
		close(mfd);
		uxp_warn("shm: more than %d exported ranges: %#lx+%#lx stays a hole", MAX_CONV,
			 (unsigned long)a, (unsigned long)(b - a));
		return 0;
	}
	*ino = bk->ino;
	while (ret == 0 && done < b && (done == a || uxp_now_ms() < deadline)) {
		size_t len = b - done < CONVERT_CHUNK ? b - done : CONVERT_CHUNK;
		off_t off = (off_t)(done - a);
		ret = file_backed(v) ? replace_stopped(done, len, prot_of(v->perms), bk, off)
				     : replace_wp_frozen(done, len, prot_of(v->perms), bk, off);
		if (ret == 0) {
			restore_flags(done, len, flags);
			done += len;
		}
	}
	pthread_mutex_lock(&st->lock);
	struct conv *cv = find_conv(a);
	int recorded = cv && cv->b == bk;
	put_backing(bk); /* ours; the records hold theirs */
	pthread_mutex_unlock(&st->lock);
	if (ret < 0 && ret != -EAGAIN)
		uxp_log(ret == -EINVAL || ret == -EBUSY || ret == -ENOSYS ? UXP_LOG_DEBUG : UXP_LOG_WARN,
			"shm: converting %#lx+%#lx failed: %s (a hole for importers)", (unsigned long)done,
			(unsigned long)(b - done), strerror(-ret));
	if (done > a)
		uxp_debug("shm: converted %#lx+%#lx of %#lx+%#lx (%s) in place", (unsigned long)a,
			  (unsigned long)(done - a), (unsigned long)a, (unsigned long)(b - a),
			  v->path[0] ? v->path : "anonymous");
	if (!recorded && ret == -EAGAIN)
		uxp_debug("shm: %#lx+%#lx changed during its conversion: looking again", (unsigned long)a,
			  (unsigned long)(b - a));
	return recorded ? 1 : ret == -EAGAIN ? -EAGAIN : 0;
}

/* ---- answering RESOLVE ----------------------------------------------------- */

struct reply {
	struct uxp_msgbuf b;
	int fds[UXP_MAX_FDS];
	unsigned nfds;
	int close_fd[UXP_MAX_FDS]; /* fds opened for this reply */
	long long deadline;        /* CLOCK_MONOTONIC ms: answer what is done by then */
	int stale;                 /* the maps snapshot is out of date: read it again */
	int last_pass;
};

static int add_piece(struct reply *r, uintptr_t a, uintptr_t b, uint32_t kind, int fd, off_t off)
{
	struct uxp_msg *m = &r->b.m;
	struct uxp_piece *last = m->count ? &r->b.piece[m->count - 1] : NULL;
	if (last && last->kind == UXP_PIECE_HOLE && kind == UXP_PIECE_HOLE) {
		last->len += b - a;
		return 0;
	}
	if (m->count == UXP_MAX_PIECES || (kind == UXP_PIECE_FD && r->nfds == UXP_MAX_FDS))
		return -ENOSPC;
	struct uxp_piece *p = &r->b.piece[m->count++];
	*p = (struct uxp_piece){ .addr = a, .len = b - a, .offset = (uint64_t)off, .kind = kind };
	if (kind == UXP_PIECE_FD) {
		p->fd = r->nfds;
		r->close_fd[r->nfds] = -1;
		r->fds[r->nfds++] = fd;
	} else if (kind == UXP_PIECE_SYSV) {
		p->fd = (uint32_t)fd; /* the segment id */
	}
	return 0;
}

/* A read-only descriptor of fd for an RDONLY grant (closed after sending). */
static int reopen_rdonly(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* May this importer be given the application's shared file of cv, and
 * must it be read-only?  (Its own permission on the file; across uids the
 * descriptor reaches the whole file, so the segment must cover all of it,
 * and a read-only grant must not be upgradeable by reopening.)  0, or why
 * not.  Caller holds st->lock. */
static const char *app_refusal(const struct job *j, const struct conv *cv, int *rdonly)
{
	const struct backing *bk = cv->b;
	unsigned bits = uxp_shared_access(bk->fd, bk->shmid, j->c);
	if (!(bits & 04))
		return "the file's mode denies the importer read access";
	*rdonly = j->rdonly || !(bits & 02);
	if (bk->fd >= 0 && !j->whole) {
		struct stat sb;
		if (fstat(bk->fd, &sb) < 0 || cv->off != 0 || cv->start < j->seg_start ||
		    cv->start + (uintptr_t)sb.st_size > j->seg_end)
			return "another uid and the segment does not cover the whole file";
		if (j->rdonly && (bits & 02))
			return "another uid with a read-only grant, and the file lets it write";
	}
	return NULL;
}

/* Piece for [a, min(b, cv->end)) from conversion cv.  Caller holds st->lock. */
static uintptr_t piece_from_conv(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
				 struct conv *cv)
{
	uintptr_t end = b < cv->end ? b : cv->end;
	off_t off = cv->off + (off_t)(a - cv->start);
	int rdonly = j->rdonly;
	const char *why = NULL;
	int fd = -1;
	if (cv->b->app)
		why = app_refusal(j, cv, &rdonly);
	else if (!(j->whole || (cv->start >= j->seg_start && cv->end <= j->seg_end)))
		why = "another uid and the conversion reaches outside the segment";
	if (!why && cv->b->fd < 0) { /* SysV by id: the importer's shmat checks */
		if (add_piece(r, a, end, UXP_PIECE_SYSV, cv->b->shmid, off) < 0)
			return a;
		conv_add_user(cv, j->c);
		return end;
	}
	/* a descriptor of the reply's own: the notifier may close the record's
	 * before the reply is sent */
	if (!why)
		fd = rdonly ? reopen_rdonly(cv->b->fd) : fcntl(cv->b->fd, F_DUPFD_CLOEXEC, 0);
	int full = 0;
	if (fd >= 0) {
		if (add_piece(r, a, end, UXP_PIECE_FD, fd, off) == 0) {
			r->close_fd[r->nfds - 1] = fd;
			conv_add_user(cv, j->c);
			return end;
		}
		full = 1; /* no room for its descriptor: the importer asks again */
		close(fd);
	}
	if (why)
		uxp_debug("shm: %#lx-%#lx stays a hole for pid %d: %s", (unsigned long)a,
			  (unsigned long)end, (int)j->c->peer_pid, why);
	return full || add_piece(r, a, end, UXP_PIECE_HOLE, -1, 0) < 0 ? a : end;
}

/* With UXP_RESOLVE_NEED, an anonymous mapping (no name: an mmap'd
 * allocation) holding part of the need is converted as far as the range
 * goes: it is one allocation, whose neighbouring parts the importer's next
 * attaches are likely to want.  Not the heap, stacks or file data. */
static int expandable(const struct job *j, const struct vma *v)
{
	uintptr_t lo = j->m.seg_vaddr, hi = lo + j->m.seg_size;
	return (j->m.flags & UXP_RESOLVE_NEED) && v->path[0] == '\0' && v->ino == 0 &&
	       v->start < hi && lo < v->end;
}

/* Outside the range the importer attaches (UXP_RESOLVE_NEED) nothing is
 * converted: the end of the part of [a, b) to answer as a hole (up to the
 * need or the next conversion), or a when a may be converted.  Caller
 * holds st->lock. */
static uintptr_t lazy_end(const struct job *j, uintptr_t a, uintptr_t b, const struct vma *v)
{
	uintptr_t lo = j->m.seg_vaddr, hi = lo + j->m.seg_size;
	if (!(j->m.flags & UXP_RESOLVE_NEED) || (a >= lo && a < hi) || expandable(j, v))
		return a;
	uintptr_t end = a < lo && lo < b ? lo : b;
	for (unsigned i = 0; i < st->nconv; i++)
		if (st->conv[i].start > a && st->conv[i].start < end)
			end = st->conv[i].start;
	return end;
}

/* Why [a, b) of the shared mapping v is not the application's to export,
 * or NULL. */
static const char *shared_refusal(const struct vma *v, uintptr_t a, uintptr_t b)
{
	struct uxpmem_arena_v1 ar = { 0 };
	if (uxp_exp_arena(&ar) == 0 && a < ar.base + ar.size && ar.base < b)
		return "the arena, not granted to this importer";
	if (strncmp(v->path, "/memfd:uxpmem-", 14) == 0)
		return "the library's own memory";
	if (uxp_imp_owns(a))
		return "an attachment of another process's memory (not re-exported)";
	if (strstr(v->path, "anon_hugepage") || strstr(v->path, "/hugepages"))
		return "hugetlb";
	return NULL;
}

/* Track [a, b) of the application's shared mapping v; 1, or 0 and why[].
 * Caller does not hold st->lock. */
static int track_shared(uintptr_t a, uintptr_t b, const struct vma *v, char *why,
				 size_t whylen)
{
	dev_t dev = vma_dev(v);
	int shmid = uxp_shared_sysv_id(v->path, dev, v->ino);
	int fd = uxp_shared_open(v->start, v->end, dev, v->ino, v->perms[1] == 'w', why, whylen);
	if (fd < 0 && shmid < 0)
		return 0;
	/* shmem mappings raise UNMAP events once registered; SysV segments and
	 * other files cannot be registered (EINVAL): see foreign_unmapped */
	struct uffdio_register reg = { .range = { v->start, v->end - v->start },
				       .mode = UFFDIO_REGISTER_MODE_WP }; /* the notifier's: events only */
	int watched = uffd >= 0 && features_ok() && ioctl(uffd, UFFDIO_REGISTER, &reg) == 0;
	pthread_mutex_lock(&st->lock);
	struct backing *bk = NULL;
	for (unsigned i = 0; i < MAX_CONV && !bk; i++)
		if (st->backing[i].refs && st->backing[i].app && st->backing[i].dev == dev &&
		    st->backing[i].ino == v->ino)
			bk = &st->backing[i];
	if (bk) {
		bk->refs++;
		if (fd >= 0)
			close(fd);
	} else {
		bk = alloc_backing((struct backing){ .fd = fd, .dev = dev, .ino = v->ino, .app = 1,
						     .shmid = shmid });
		if (!bk && fd >= 0)
			close(fd);
	}
	struct conv *cv = NULL;
	if (bk && st->nconv < MAX_CONV) {
		bk->watched |= watched;
		cv = &st->conv[st->nconv++];
		*cv = (struct conv){ .start = a, .end = b, .off = (off_t)(v->off + (a - v->start)), .b = bk };
	} else if (bk) {
		put_backing(bk);
	}
	pthread_mutex_unlock(&st->lock);
	if (!cv)
		snprintf(why, whylen, "too many exported ranges");
	else if (!watched && notifier_wake_fd >= 0) /* sleep no longer than XPMEM_SHM_SWEEP_MS */
		(void)!write(notifier_wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	return cv != NULL;
}

/* The application's own MAP_SHARED mapping: the importer maps the same
 * pages.  Returns the end of what it covered. */
static uintptr_t resolve_shared(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
				const struct vma *v)
{
	char why[256];
	const char *no = shared_refusal(v, a, b);
	if (!no && (r->b.m.count == UXP_MAX_PIECES || r->nfds == UXP_MAX_FDS))
		return a;
	if (!no && !track_shared(a, b, v, why, sizeof(why)))
		no = why;
	if (no) {
		uxp_debug("shm: shared %#lx-%#lx (%s %s) stays a hole: %s", (unsigned long)a,
			  (unsigned long)b, v->perms, v->path, no);
		return add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	}
	pthread_mutex_lock(&st->lock);
	/* a sweep may have cut the record since (it moves records) */
	struct conv *cv = find_conv(a);
	int same = cv && cv->b->app && maps_backing(v, cv->b);
	if (same)
		uxp_debug("shm: exporting shared %#lx-%#lx (%s) in place%s%s", (unsigned long)a,
			  (unsigned long)b, v->path, cv->b->fd < 0 ? " by SysV id" : "",
			  cv->b->watched ? "" : "; its munmap is seen by the arena preload or a periodic check");
	uintptr_t end = same ? piece_from_conv(j, r, a, b, cv) : a;
	pthread_mutex_unlock(&st->lock);
	if (same || r->last_pass)
		return same ? end : add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	r->stale = 1; /* unmapped meanwhile: look again */
	return a;
}

static uintptr_t resolve_vma(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
			     const struct vma *v)
{
	pthread_mutex_lock(&st->lock);
	struct conv *cv = find_conv(a);
	if (cv && maps_backing(v, cv->b)) {
		uintptr_t end = piece_from_conv(j, r, a, b, cv);
		pthread_mutex_unlock(&st->lock);
		return end;
	}
	uintptr_t lazy = lazy_end(j, a, b, v);
	pthread_mutex_unlock(&st->lock);
	if (lazy > a) {
		uxp_trace("shm: %#lx-%#lx is not what the importer attaches: a hole for now",
			  (unsigned long)a, (unsigned long)lazy);
		return add_piece(r, a, lazy, UXP_PIECE_HOLE, -1, 0) < 0 ? a : lazy;
	}
	if ((j->m.flags & UXP_RESOLVE_NEED) && !expandable(j, v) && b > j->m.seg_vaddr + j->m.seg_size)
		b = j->m.seg_vaddr + j->m.seg_size; /* convert only the need */
	pthread_mutex_lock(&st->lock);
	struct excluded ex = { 0, 0 };
	int excl = excluded_overlap(a, b, &ex);
	pthread_mutex_unlock(&st->lock);
	uintptr_t tlo, thi;
	if (!excl && stack_top_thread_block(v, &tlo, &thi) && tlo < b && a < thi) {
		if (tlo > a) /* first the part before it */
			return resolve_vma(j, r, a, tlo, v);
		uintptr_t end = thi < b ? thi : b;
		uxp_debug("shm: %#lx-%#lx holds a thread's descriptor: a hole", (unsigned long)a, (unsigned long)end);
		return add_piece(r, a, end, UXP_PIECE_HOLE, -1, 0) < 0 ? a : end;
	}
	if (excl && ex.start > a) /* first the part before it */
		return resolve_vma(j, r, a, ex.start, v);
	if (excl) { /* our own stacks and state: never frozen, a hole */
		uintptr_t end = ex.end < b ? ex.end : b;
		uxp_debug("shm: %#lx-%#lx is the library's own memory: a hole", (unsigned long)a,
			  (unsigned long)end);
		return add_piece(r, a, end, UXP_PIECE_HOLE, -1, 0) < 0 ? a : end;
	}
	if (strcmp(v->path, "[stack]") == 0 && a < v->start + uxp_page_size) {
		/* the main stack's lowest page stays: converting it breaks growth */
		uintptr_t guard = v->start + uxp_page_size < b ? v->start + uxp_page_size : b;
		return add_piece(r, a, guard, UXP_PIECE_HOLE, -1, 0) < 0 ? a : guard;
	}
	if (!r->last_pass && v->perms[3] == 's' && strstr(v->path, "memfd:uxpmem-conv")) {
		r->stale = 1; /* converted, and its record already cut: changed since */
		return a;
	}
	if (v->perms[3] == 's' && v->perms[0] == 'r' && (j->whole || (a >= j->seg_start && b <= j->seg_end)))
		return resolve_shared(j, r, a, b, v);
	if (!convertible(v) || uffd < 0 || freeze_fd < 0 || !features_ok() ||
	    (!j->whole && (a < j->seg_start || b > j->seg_end))) {
		uxp_debug("shm: %#lx-%#lx (%s %s) stays a hole%s", (unsigned long)a, (unsigned long)b,
			  v->perms, v->path, uffd < 0 ? ": no userfaultfd in this process" : "");
		return add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	}
	if (r->b.m.count == UXP_MAX_PIECES || r->nfds == UXP_MAX_FDS)
		return a;
	if (r->b.m.count && uxp_now_ms() >= r->deadline)
		return a; /* answer what is done: the importer asks for the rest */
	ino_t ino;
	int conv = convert(a, b, v, r->deadline, &ino);
	if (conv == -EAGAIN && !r->last_pass) {
		r->stale = 1; /* the application changed it meanwhile: look again */
		return a;
	}
	if (conv <= 0)
		return add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	pthread_mutex_lock(&st->lock);
	/* the notifier may have cut the record since (it moves records) */
	cv = find_conv(a);
	int same = cv && cv->b->ino == ino;
	uintptr_t end = same ? piece_from_conv(j, r, a, b, cv) : a;
	pthread_mutex_unlock(&st->lock);
	if (same || r->last_pass)
		return same ? end : add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	r->stale = 1; /* changed meanwhile: look again */
	return a;
}

/* [a, b) of the arena, inside VMA v: the application's memory is ARENA
 * (if readable), what it never allocated or unmapped is a hole (SIGBUS in
 * the importer, remembered in arenaholes.c), what it mapped over the arena
 * resolves like any VMA.  Returns how far it got. */
static uintptr_t arena_pieces(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
			      const struct vma *v, const struct uxpmem_arena_v1 *ar)
{
	while (a < b) {
		uintptr_t e, got;
		int k = uxp_arena_run(j->c, a, b, &e);
		if (k == 2) {
			got = resolve_vma(j, r, a, e, v);
		} else {
			int mem = k == 1 && v->perms[0] == 'r';
			got = add_piece(r, a, e, mem ? UXP_PIECE_ARENA : UXP_PIECE_HOLE, -1,
					mem ? (off_t)(a - ar->base) : 0) < 0 ? a : e;
		}
		if (got == a)
			break;
		a = got;
	}
	return a;
}

/* Walk the converter's maps snapshot over [*at, end), adding pieces to r.
 * Returns 1 when the reply must go now (full, out of time, or the snapshot
 * is stale: then r->stale), 0 at the end of the range. */
static int walk_maps(struct job *j, struct reply *r, uintptr_t *at, uintptr_t end, int have_arena,
		     const struct uxpmem_arena_v1 *ar)
{
	char *pos = st->maps[MAPS_CONVERTER];
	uintptr_t a = *at;
	struct vma v;
	int stop = 0;
	while (!stop && a < end && next_vma(&pos, &v)) {
		if (v.end <= a)
			continue;
		if (v.start >= end)
			break;
		if (v.start > a && add_piece(r, a, v.start, UXP_PIECE_HOLE, -1, 0) < 0)
			break;
		if (v.start > a)
			a = v.start;
		uintptr_t b = v.end < end ? v.end : end;
		if (have_arena && a >= ar->base && b <= ar->base + ar->size) {
			a = arena_pieces(j, r, a, b, &v, ar);
			stop = a < b; /* reply full, time is up, or stale */
			continue;
		}
		while (a < b && !stop) {
			uintptr_t got = resolve_vma(j, r, a, b, &v);
			stop = got == a; /* reply full, time is up, or stale */
			a = got;
		}
	}
	*at = a;
	return stop;
}

static void answer_resolve(struct job *j)
{
	static __thread struct reply r; /* on this thread's (excluded) TLS, not the heap */
	uintptr_t a = j->m.addr, end = j->m.addr + j->m.len;
	struct uxpmem_arena_v1 ar = { 0 };

	memset(&r.b.m, 0, sizeof(r.b.m));
	uxp_msg_init(&r.b.m, UXP_MSG_RESOLVE_REPLY);
	r.b.m.seq = j->m.seq;
	r.b.m.addr = a;
	r.nfds = 0;
	r.deadline = uxp_now_ms() + CONVERT_BUDGET_MS;
	int have_arena = j->arena_ok && uxp_exp_arena(&ar) == 0;
	int ret = 0;
	for (int pass = 0; pass < 4; pass++) {
		/* a mapping of ours without its record: changed since the
		 * snapshot; look again (the last pass answers a hole) */
		r.stale = 0;
		r.last_pass = pass == 3;
		ret = read_maps(MAPS_CONVERTER);
		if (ret < 0) {
			r.b.m.status = uxp_fail(-ret, "shm: resolve: cannot read /proc/self/maps: %s",
						strerror(-ret));
			goto send;
		}
		if (walk_maps(j, &r, &a, end, have_arena, &ar) && !r.stale)
			goto send;
		if (!r.stale)
			break;
	}
	if (a < end && r.b.m.count < UXP_MAX_PIECES && add_piece(&r, a, end, UXP_PIECE_HOLE, -1, 0) == 0) {
		uxp_trace("shm: resolve: nothing mapped at %#lx-%#lx", (unsigned long)a, (unsigned long)end);
		a = end;
	}
send:
	r.b.m.len = a - r.b.m.addr;
	for (unsigned i = 0; i < r.b.m.count; i++)
		uxp_trace("shm: resolve %#llx+%#llx: piece %#llx+%#llx kind %u", (unsigned long long)j->m.addr,
			  (unsigned long long)j->m.len, (unsigned long long)r.b.piece[i].addr,
			  (unsigned long long)r.b.piece[i].len, r.b.piece[i].kind);
	if (r.b.m.status == 0 && r.b.m.len == 0)
		r.b.m.status = -ENOSPC;
	if (r.b.m.status < 0) {
		r.b.m.count = 0;
		r.b.m.len = 0;
	}
	/* the importer waits XPMEM_SHM_TIMEOUT_MS for it: so long at most */
	ret = uxp_msg_send_pieces_within(j->c->fd, &r.b, r.fds, r.b.m.status < 0 ? 0 : r.nfds,
					 uxp_timeout_ms("XPMEM_SHM_TIMEOUT_MS", 10000));
	if (ret < 0)
		uxp_debug("shm: resolve reply to pid %d failed: %s", (int)j->c->peer_pid, strerror(-ret));
	for (unsigned i = 0; i < r.nfds; i++)
		if (r.close_fd[i] >= 0)
			close(r.close_fd[i]);
}

static void *converter_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&st->lock);
	exclude_own_stack();
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		pthread_mutex_lock(&job_lock);
		while (!jobs)
			pthread_cond_wait(&job_cond, &job_lock);
		struct job *j = jobs;
		if (!(jobs = j->next))
			jobs_tail = &jobs;
		pthread_mutex_unlock(&job_lock);
		answer_resolve(j);
		uxp_conn_put(j->c);
		free(j); /* after the freeze: the heap may be written again */
	}
	return NULL;
}

/* ---- the notifier ------------------------------------------------------------ */

/* Ask every importer of cv to map SIGBUS over [a, b) and wait for them.
 * Caller holds st->lock (released while waiting). */
static void invalidate_conns(struct uxp_conn *const *conns, unsigned n, uintptr_t a, uintptr_t b)
{
	struct uxp_msg m;
	struct timespec deadline;
	long ms = uxp_timeout_ms("XPMEM_SHM_REVOKE_TIMEOUT_MS", 2000);

	while (st->inval_busy) /* one at a time: the notifier, or an arena munmap */
		pthread_cond_wait(&st->acked, &st->lock);
	st->inval_busy = 1;
	uxp_msg_init(&m, UXP_MSG_INVALIDATE);
	m.seq = ++st->inval_seq;
	m.addr = a;
	m.len = b - a;
	st->acks_pending = 0;
	st->nackers = 0;
	long long end = uxp_now_ms() + ms;
	for (unsigned i = 0; i < n; i++) {
		long left = (long)(end - uxp_now_ms());
		if (__atomic_load_n(&conns[i]->dead, __ATOMIC_ACQUIRE))
			continue;
		if (st->nackers < MAX_ACKERS &&
		    uxp_msg_send_within(conns[i]->fd, &m, -1, left > 0 ? left : 0) == 0) {
			st->ackers[st->nackers++] = conns[i];
			st->acks_pending++;
		} else {
			/* it cannot be told: it would read the old memory as the
			 * exporter's for ever (disconnected: SIGBUS instead) */
			uxp_conn_disconnect(conns[i], "an invalidation could not be sent in time");
		}
	}
	long left = (long)(end - uxp_now_ms());
	uxp_deadline(&deadline, left > 0 ? left : 0);
	while (st->acks_pending)
		if (pthread_cond_timedwait(&st->acked, &st->lock, &deadline) == ETIMEDOUT) {
			uxp_warn("shm: invalidating %#lx-%#lx: %u importer(s) did not acknowledge in %ld ms",
				 (unsigned long)a, (unsigned long)b, st->acks_pending, ms);
			/* the exporter goes on (the memory is reused): an importer
			 * told late, or never, must not read it meanwhile as fresh */
			for (unsigned i = 0; i < st->nackers; i++)
				if (st->ackers[i])
					uxp_conn_disconnect(st->ackers[i],
							    "it did not acknowledge an invalidation in time");
			break;
		}
	st->acks_pending = 0;
	st->nackers = 0;
	st->inval_busy = 0;
	pthread_cond_broadcast(&st->acked);
}

/* The application unmapped part of its arena (in its own thread, before
 * munmap returns): importers given the arena must not read the zeros left
 * there; their next touch re-resolves (SIGBUS, or the memory mapped there
 * again). */
static void arena_unmapped(uint64_t start, uint64_t len)
{
	struct uxp_conn *conns[256];
	unsigned n = uxp_exp_arena_conns(conns, UXP_ARRAY_SIZE(conns));
	if (n)
		uxp_conv_invalidate(conns, n, start, start + len);
	for (unsigned i = 0; i < n; i++)
		uxp_conn_put(conns[i]);
}

void uxp_conv_invalidate(struct uxp_conn *const *conns, unsigned n, uintptr_t a, uintptr_t b)
{
	pthread_once(&state_once, state_init);
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	invalidate_conns(conns, n, a, b);
	pthread_mutex_unlock(&st->lock);
}

static void foreign_unmapped(uint64_t start, uint64_t len);

static void register_arena_hook(void)
{
	void (*on_unmap)(uxpmem_arena_unmap_fn) =
		(void (*)(uxpmem_arena_unmap_fn))dlsym(RTLD_DEFAULT, "uxpmem_arena_on_unmap_v1");
	void (*on_foreign)(uxpmem_arena_unmap_fn) =
		(void (*)(uxpmem_arena_unmap_fn))dlsym(RTLD_DEFAULT, "uxpmem_arena_on_foreign_unmap_v1");
	if (on_unmap)
		on_unmap(arena_unmapped);
	if (on_foreign)
		on_foreign(foreign_unmapped);
	uxp_arena_holes_watch();
}

/* Exporters call this once: the arena tells us of its unmaps. */
void uxp_conv_watch_arena(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, register_arena_hook);
}

/* An importer's connection closed: it needs no more invalidations (and
 * its descriptor must not stay open for as long as the ranges live). */
void uxp_conv_conn_closed(struct uxp_conn *c)
{
	uxp_arena_holes_conn_closed(c);
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	for (unsigned i = 0; i < st->nconv; i++) {
		struct conv *cv = &st->conv[i];
		for (unsigned u = 0; u < cv->nusers;)
			if (cv->users[u] == c) {
				cv->users[u] = cv->users[--cv->nusers];
				uxp_conn_put(c);
			} else {
				u++;
			}
	}
	pthread_mutex_unlock(&st->lock);
}

void uxp_conv_acked(struct uxp_conn *c, uint64_t seq)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	for (unsigned i = 0; seq == st->inval_seq && i < st->nackers; i++)
		if (st->ackers[i] == c) {
			st->ackers[i] = NULL;
			if (st->acks_pending && --st->acks_pending == 0)
				pthread_cond_broadcast(&st->acked);
			break;
		}
	pthread_mutex_unlock(&st->lock);
}

/* Part of cv still mapped from its memfd, from the maps snapshot: the
 * first [*a, *b) inside cv that is NOT mapped any more; 0 if none. */
static int first_gap(const struct conv *cv, uintptr_t *a, uintptr_t *b)
{
	char *pos = st->maps[MAPS_NOTIFIER];
	struct vma v;
	uintptr_t at = cv->start;
	while (at < cv->end && next_vma(&pos, &v)) {
		if (v.end <= at)
			continue;
		uintptr_t want_off = (uintptr_t)cv->off + (v.start > at ? v.start : at) - cv->start;
		int ours = maps_backing(&v, cv->b) &&
			   v.off + ((v.start > at ? v.start : at) - v.start) == want_off;
		if (v.start > at || !ours) {
			*a = at;
			*b = ours ? v.start : (v.end < cv->end ? v.end : cv->end);
			if (*b > cv->end)
				*b = cv->end;
			return 1;
		}
		at = v.end;
	}
	if (at < cv->end) {
		*a = at;
		*b = cv->end;
		return 1;
	}
	return 0;
}

/* Cut [a, b) out of cv (split in two if in the middle).  Returns the end of
 * what was cut: b, or cv's old end when the table has no room for the tail
 * (then the tail is forgotten too, and the caller must invalidate it with
 * [a, b): an importer keeping it would never hear of its later changes). */
static uintptr_t cut_conv(struct conv *cv, uintptr_t a, uintptr_t b)
{
	if (a <= cv->start && b >= cv->end) {
		conv_drop(cv);
	} else if (a <= cv->start) {
		cv->off += (off_t)(b - cv->start);
		cv->start = b;
	} else if (b >= cv->end) {
		cv->end = a;
	} else if (st->nconv < MAX_CONV) {
		struct conv *tail = &st->conv[st->nconv++];
		*tail = *cv;
		tail->start = b;
		tail->off = cv->off + (off_t)(b - cv->start);
		for (unsigned i = 0; i < tail->nusers; i++)
			uxp_conn_get(tail->users[i]);
		tail->b->refs++;
		cv->end = a;
	} else {
		uxp_warn("shm: more than %d exported ranges: %#lx-%#lx is invalidated with the part "
			 "that changed", MAX_CONV, (unsigned long)b, (unsigned long)cv->end);
		b = cv->end;
		cv->end = a; /* table full: forget the tail, invalidated with [a, b) */
	}
	return b;
}

/* Cut [a, b) out of cv, then invalidate it in every importer given it.
 * In this order: while we wait for the acknowledgements (st->lock
 * released), a RESOLVE answered from a maps snapshot older than the change
 * must not find [a, b) and hand it to an importer that is not among those
 * told (it would keep reading memory that is no longer the exporter's).
 * Caller holds st->lock. */
static void invalidate(struct conv *cv, uintptr_t a, uintptr_t b)
{
	struct uxp_conn *users[MAX_USERS] = { 0 };
	unsigned n = cv->nusers;
	for (unsigned i = 0; i < n; i++)
		uxp_conn_get(users[i] = cv->users[i]);
	b = cut_conv(cv, a, b);
	invalidate_conns(users, n, a, b);
	for (unsigned i = 0; i < n; i++)
		uxp_conn_put(users[i]);
	/* the core's subscribers (rdma registrations): this descriptor owns
	 * the range's userfaultfd registration, so the core cannot see it */
	uxp_mm_changed(a, b, UXP_MM_UNMAP);
}

/* Every tracked range that no longer maps its memfd is invalidated in
 * every importer, then forgotten.  Caller holds st->lock. */
static void sweep_locked(void)
{
	if (read_maps(MAPS_NOTIFIER) < 0)
		return;
	for (unsigned i = 0; i < st->nconv;) {
		uintptr_t a, b;
		struct conv *cv = &st->conv[i];
		if (!first_gap(cv, &a, &b)) {
			i++;
			continue;
		}
		uxp_debug("shm: exported %#lx-%#lx (record %#lx-%#lx ino %lu off %lld) changed in the "
			  "exporter: invalidating importers", (unsigned long)a, (unsigned long)b,
			  (unsigned long)cv->start, (unsigned long)cv->end, (unsigned long)cv->b->ino,
			  (long long)cv->off);
		invalidate(cv, a, b); /* the cut may move another record to i: look at i again */
		/* st->lock was released while waiting: the converter may have
		 * added a record the snapshot predates */
		if (read_maps(MAPS_NOTIFIER) < 0)
			break;
	}
}

/* Before the unmapping thread may go on (notifier thread). */
static void sweep(void)
{
	pthread_mutex_lock(&st->lock);
	st->deferring = 1;
	sweep_locked();
	pthread_mutex_unlock(&st->lock);
}

/* Is an application shared mapping that raises no userfaultfd events
 * (SysV, shared file) exported in [a, b)?  Caller holds st->lock. */
static int unwatched_in(uintptr_t a, uintptr_t b)
{
	for (unsigned i = 0; i < st->nconv; i++) {
		const struct conv *cv = &st->conv[i];
		if (cv->b->app && !cv->b->watched && cv->start < b && a < cv->end)
			return 1;
	}
	return 0;
}

/* The application unmapped or replaced [start, start+len) outside the arena
 * (len 0: shmdt at start), told by the arena preload before that call
 * returns: importers of an unwatched shared mapping there are invalidated
 * now, not at the next periodic sweep. */
static void foreign_unmapped(uint64_t start, uint64_t len)
{
	if (!__atomic_load_n(&st, __ATOMIC_ACQUIRE))
		return;
	uintptr_t end = len ? start + len : start + 1;
	pthread_mutex_lock(&st->lock);
	if (unwatched_in(start, end))
		sweep_locked();
	pthread_mutex_unlock(&st->lock);
}

/* How long the notifier may sleep: for ever, unless exported shared
 * mappings raise no events (SysV, shared files): then they are checked
 * every XPMEM_SHM_SWEEP_MS (20 ms) - the arena preload tells of their
 * munmap/shmdt at once. */
static int notifier_timeout_ms(void)
{
	pthread_mutex_lock(&st->lock);
	int any = unwatched_in(0, UINTPTR_MAX);
	pthread_mutex_unlock(&st->lock);
	return any ? (int)uxp_timeout_ms("XPMEM_SHM_SWEEP_MS", 20) : -1;
}

static void handle_event(const struct uffd_msg *msg)
{
	if (msg->event == UFFD_EVENT_REMOVE) {
		/* MADV_DONTNEED/REMOVE on converted memory: private memory would read
		 * zeros afterwards; a shared mapping would not, so punch the memfd */
		uintptr_t a = msg->arg.remove.start, b = msg->arg.remove.end;
		pthread_mutex_lock(&st->lock);
		for (unsigned i = 0; i < st->nconv; i++) {
			struct conv *cv = &st->conv[i];
			uintptr_t lo = a > cv->start ? a : cv->start, hi = b < cv->end ? b : cv->end;
			if (lo < hi && !cv->b->app) /* the application's own: its business */
				fallocate(cv->b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  cv->off + (off_t)(lo - cv->start), (off_t)(hi - lo));
		}
		pthread_mutex_unlock(&st->lock);
		uxp_mm_changed(a, b, UXP_MM_REMOVE);
	} else if (msg->event == UFFD_EVENT_REMAP) {
		/* the memfd now backs the new addresses (old ones were swept) */
		uintptr_t to = msg->arg.remap.to;
		size_t len = msg->arg.remap.len;
		pthread_mutex_lock(&st->lock);
		struct backing *bk = NULL;
		off_t off = 0;
		if (read_maps(MAPS_NOTIFIER) == 0) {
			char *pos = st->maps[MAPS_NOTIFIER];
			struct vma v;
			while (next_vma(&pos, &v))
				if (v.start <= to && to < v.end && v.perms[3] == 's') {
					for (unsigned i = 0; i < MAX_CONV; i++)
						if (st->backing[i].refs && maps_backing(&v, &st->backing[i]))
							bk = &st->backing[i];
					off = (off_t)(v.off + (to - v.start));
					break;
				}
		}
		if (bk && st->nconv < MAX_CONV) {
			bk->refs++;
			st->conv[st->nconv++] = (struct conv){ .start = to, .end = to + len, .off = off, .b = bk };
		}
		pthread_mutex_unlock(&st->lock);
	}
	/* UNMAP: swept before the read.  PAGEFAULT: a minor fault after a
	 * REMOVE (handled above, in order: punched first); writers frozen by a
	 * conversion wait on the converter's own descriptor. */
	if (msg->event == UFFD_EVENT_PAGEFAULT && (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
		resolve_minor(msg->arg.pagefault.address);
}

static void *notifier_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&st->lock);
	exclude_own_stack();
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = uffd, .events = POLLIN },
					 { .fd = notifier_wake_fd, .events = POLLIN } };
		int n_ready = poll(pfd, 2, notifier_timeout_ms());
		if (n_ready < 0)
			continue;
		if (pfd[1].revents & POLLIN) {
			uint64_t v;
			(void)!read(notifier_wake_fd, &v, sizeof(v));
		}
		sweep(); /* the unmapper still waits for our read */
		if (pfd[0].revents & POLLIN) {
			struct uffd_msg msg[16];
			ssize_t n = read(uffd, msg, sizeof(msg));
			for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
				handle_event(&msg[i]);
		}
		pthread_mutex_lock(&st->lock);
		st->deferring = 0;
		for (unsigned i = 0; i < st->ndeferred; i++)
			put_backing(&st->backing[st->deferred[i]]);
		st->ndeferred = 0;
		pthread_mutex_unlock(&st->lock);
	}
	return NULL;
}

/* ---- setup ------------------------------------------------------------------- */


static void fork_prepare(void);
static void fork_parent(void);

static void state_init(void)
{
	/* raw syscall: never from the arena, never converted */
	void *p = (void *)syscall(SYS_mmap, NULL, sizeof(struct state), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	struct state *s = p;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->acked, &ca);
	pthread_condattr_destroy(&ca);
	s->excluded[s->nexcluded++] = (struct excluded){
		(uintptr_t)p, ((uintptr_t)p + sizeof(*s) + uxp_page_size - 1) & ~(uintptr_t)(uxp_page_size - 1) };
	__atomic_store_n(&st, s, __ATOMIC_RELEASE); /* see fork_prepare */
	exclude_library_data();
	learn_thread_sizes();
	uintptr_t lo, hi;
	if (thread_block(main_self, &lo, &hi))
		exclude_range(lo, hi); /* the main thread's: it survives fork */
	s->nfixed = s->nexcluded;
	pthread_atfork(fork_prepare, fork_parent, NULL); /* child: uxp_conv_fork_child */
}

static void threads_init(void)
{
	pthread_once(&state_once, state_init);
	if (!st)
		return;
	uffd = open_notifier_uffd(&uffd_level);
	if (uffd >= 0)
		freeze_fd = open_more_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
					   UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	if (uffd < 0 || freeze_fd < 0)
		uxp_info("shm: no userfaultfd: memory outside the arena cannot be exported (holes)");
	else if (!features_ok())
		uxp_info("shm: this kernel's userfaultfd lacks write-protect of unpopulated/shmem "
			 "memory: memory outside the arena cannot be exported (holes)");
	if (uffd >= 0)
		notifier_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (uxp_thread_start(converter_main, NULL, 0) < 0 || (uffd >= 0 && uxp_thread_start(notifier_main, NULL, 0) < 0))
		uxp_error("shm: cannot start the conversion threads");
}

int uxp_conv_submit(struct uxp_conn *c, const struct uxp_msg *m, int rdonly, int arena_ok,
		    uintptr_t seg_start, uintptr_t seg_end, int whole)
{
	pthread_once(&threads_once, threads_init);
	if (!st)
		return -ENOMEM;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct job){ .c = c, .m = *m, .rdonly = rdonly, .arena_ok = arena_ok,
			   .seg_start = seg_start, .seg_end = seg_end, .whole = whole };
	uxp_conn_get(c);
	pthread_mutex_lock(&job_lock);
	*jobs_tail = j;
	jobs_tail = &j->next;
	pthread_cond_signal(&job_cond);
	pthread_mutex_unlock(&job_lock);
	return 0;
}

/* ---- fork ----------------------------------------------------------------------
 * Converted memory is MAP_SHARED: without care a forked child would share it
 * with its parent.  Before fork, copy each converted range; the child maps
 * private anonymous memory there and fills it from the copy (as POSIX says,
 * what other threads write meanwhile may be missing in the child). */

static void fork_prepare(void)
{
	/* state_init may have run in another thread (pthread_once): st and its
	 * mutex were published before this handler was registered, but through
	 * libc's atfork lock, which ThreadSanitizer does not see.  Say so. */
	(void)__atomic_load_n(&st, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&st->lock);
	for (unsigned i = 0; i < st->nconv; i++) {
		struct conv *cv = &st->conv[i];
		size_t len = cv->end - cv->start;
		st->snapshot[i] = -1;
		if (cv->b->app)
			continue; /* the application's shared mapping stays shared */
		int fd = memfd_create("uxpmem-fork", MFD_CLOEXEC);
		if (fd >= 0 && (ftruncate(fd, (off_t)len) < 0 || copy_out(fd, cv->start, len, 0) < 0)) {
			close(fd);
			fd = -1;
		}
		st->snapshot[i] = fd;
	}
}

static void fork_parent(void)
{
	for (unsigned i = 0; i < st->nconv; i++)
		if (st->snapshot[i] >= 0)
			close(st->snapshot[i]);
	pthread_mutex_unlock(&st->lock);
}

void uxp_conv_fork_child(void)
{
	uxp_arena_holes_fork_child();
	if (!st)
		return;
	pthread_mutex_init(&st->lock, NULL);
	for (unsigned i = 0; i < st->nconv; i++) {
		struct conv *cv = &st->conv[i];
		size_t len = cv->end - cv->start;
		int prot = PROT_READ | PROT_WRITE;
		if (cv->b->app)
			continue;
		if (read_maps(MAPS_NOTIFIER) == 0) {
			char *pos = st->maps[MAPS_NOTIFIER];
			struct vma v;
			while (next_vma(&pos, &v))
				if (v.start <= cv->start && cv->start < v.end) {
					prot = prot_of(v.perms);
					break;
				}
		}
		/* nothing static between the mmap and the pread: the range may
		 * hold our own globals (libxpmem linked into the executable, its
		 * .bss converted), zero until the copy is back; st itself is one */
		struct state *s = st;
		int snap = s->snapshot[i];
		void *p = (void *)syscall(SYS_mmap, cv->start, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED || snap < 0 || syscall(SYS_pread64, snap, p, len, 0) != (ssize_t)len) {
			/* never share the parent's memory silently */
			uxp_error("shm: forked child cannot make converted %#lx+%#zx private: exiting",
				  (unsigned long)cv->start, len);
			_exit(127);
		}
		mprotect(p, len, prot);
		close(st->snapshot[i]);
	}
	for (unsigned i = 0; i < MAX_CONV; i++) /* once each: records may share one */
		if (st->backing[i].refs && st->backing[i].fd >= 0)
			close(st->backing[i].fd);
	memset(st->backing, 0, sizeof(st->backing));
	st->nconv = 0;
	st->nexcluded = st->nfixed; /* the threads and their stacks are gone */
	/* forked while the notifier (or an arena munmap) waited for acks, the
	 * lock released in the wait: inval_busy would stay 1 for ever here and
	 * the child's first invalidation would wait on it for ever; the wait
	 * (its condition variable included) belongs to a parent's thread */
	st->acks_pending = 0;
	st->nackers = 0;
	st->inval_busy = 0;
	st->deferring = 0;
	st->ndeferred = 0; /* their backings were closed with the rest above */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->acked, &ca);
	pthread_condattr_destroy(&ca);
	if (uffd >= 0)
		close(uffd);
	if (freeze_fd >= 0)
		close(freeze_fd);
	uffd = freeze_fd = -1;
	if (notifier_wake_fd >= 0)
		close(notifier_wake_fd);
	notifier_wake_fd = -1;
	pthread_once_t fresh = PTHREAD_ONCE_INIT;
	threads_once = fresh; /* threads restart on the next resolve */
	pthread_mutex_init(&job_lock, NULL);
	pthread_cond_init(&job_cond, NULL);
	jobs = NULL;
	jobs_tail = &jobs;
}
