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
 *   MAP_SHARED|MAP_FIXED over the same addresses (libc mmap, so memory
 *   hooks see it) and the writers woken: their writes land in the memfd,
 *   none is lost;
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#define MAPS_BUF (4u << 20)  /* /proc/self/maps snapshot */
#define SMAPS_BUF (64u << 10)

/* A memfd backing converted memory; shared by the pieces a range splits into. */
struct backing {
	int fd;
	ino_t ino;
	unsigned refs;
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
static int uffd = -1;
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
	return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
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
		    madvise((void *)a, len, MADV_POPULATE_READ) == 0;
	struct uffdio_register r = { .range = { a, len },
				     .mode = UFFDIO_REGISTER_MODE_WP |
					     (minor ? UFFDIO_REGISTER_MODE_MINOR : 0) };
	return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

static void wake(uintptr_t a, size_t len);

/* A minor fault on converted memory: map the memfd's page (gone if just
 * punched: then the retry maps a fresh zero page). */
static void resolve_minor(uintptr_t addr)
{
	uintptr_t page = addr & ~(uintptr_t)(uxp_page_size - 1);
	struct uffdio_continue c = { .range = { page, uxp_page_size } };
	if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0)
		wake(page, uxp_page_size);
}

static void wp_unregister(uintptr_t a, size_t len)
{
	struct uffdio_range r = { a, len };
	ioctl(uffd, UFFDIO_UNREGISTER, &r);
}

static int wp_protect(uintptr_t a, size_t len, int on)
{
	struct uffdio_writeprotect w = { .range = { a, len },
					 .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

static void wake(uintptr_t a, size_t len)
{
	struct uffdio_range r = { a, len };
	ioctl(uffd, UFFDIO_WAKE, &r);
}

/* ---- the maps ------------------------------------------------------------ */

struct vma {
	uintptr_t start, end;
	char perms[5];
	unsigned long long off;
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
		if (sscanf(v->line, "%lx-%lx %4s %llx %*s %lu %n", &v->start, &v->end, v->perms,
			   &v->off, &v->ino, &path_at) < 5)
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

static void exclude_own_stack(void)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0 && st->nexcluded < MAX_EXCLUDED)
		st->excluded[st->nexcluded++] =
			(struct excluded){ (uintptr_t)addr, (uintptr_t)addr + size };
	pthread_attr_destroy(&attr);
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
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W) || st->nexcluded == MAX_EXCLUDED)
			continue;
		uintptr_t a = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(uxp_page_size - 1);
		uintptr_t b = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + uxp_page_size - 1) &
			      ~(uintptr_t)(uxp_page_size - 1);
		st->excluded[st->nexcluded++] = (struct excluded){ a, b };
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

static struct backing *new_backing(int fd)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return NULL;
	for (unsigned i = 0; i < MAX_CONV; i++)
		if (st->backing[i].refs == 0) {
			st->backing[i] = (struct backing){ .fd = fd, .ino = sb.st_ino, .refs = 1 };
			return &st->backing[i];
		}
	return NULL;
}

static void put_backing(struct backing *b)
{
	if (--b->refs)
		return;
	if (st->deferring && st->ndeferred < MAX_CONV) {
		/* an mremap's REMAP event still has to find it */
		b->refs = 1;
		st->deferred[st->ndeferred++] = (int)(b - st->backing);
	} else {
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
			madvise((void *)a, len, advices[i].advice);
	if (strstr(vmflags, " lo") && mlock((void *)a, len) < 0)
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
static int copy_out(int mfd, uintptr_t a, size_t len)
{
	for (size_t done = 0; done < len;) {
		/* the raw system call: this copies pages, not objects (a sanitizer's
		 * pwrite wrapper would check them against its own heap layout) */
		ssize_t n = syscall(SYS_pwrite64, mfd, (char *)a + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Anonymous memory: freeze its writers with a userfaultfd write-protect,
 * copy, replace, wake them. */
static int replace_wp_frozen(uintptr_t a, size_t len, int prot, int mfd)
{
	int ret = wp_register(a, len);
	if (ret < 0)
		return uxp_fail(-ret, "shm: cannot convert %#lx+%#zx: userfaultfd register: %s%s",
				(unsigned long)a, len, strerror(-ret),
				ret == -EBUSY ? " (another userfaultfd owns it)" : "");
	/* freeze: from here no writer of [a, b) proceeds until wake().  Our own
	 * MAP_FIXED below raises an UNMAP event the notifier reads; the range
	 * has no record yet, so its sweep leaves it alone. */
	ret = wp_protect(a, len, 1);
	if (ret == 0)
		ret = copy_out(mfd, a, len);
	/* libc's mmap: memory hooks of UCX/Open MPI see the change */
	if (ret == 0 && mmap((void *)a, len, prot, MAP_SHARED | MAP_FIXED, mfd, 0) == MAP_FAILED)
		ret = -errno;
	if (ret == 0 && watch_converted(a, len) < 0)
		uxp_warn("shm: converted %#lx+%#zx cannot be watched for changes", (unsigned long)a, len);
	if (ret < 0) {
		wp_protect(a, len, 0);
		wp_unregister(a, len);
	}
	wake(a, len);
	/* thaw: writers resume, into the memfd */
	return ret;
}

/* File-backed private memory (.data): stop every application thread, copy,
 * replace, resume them.  While they are stopped nothing here may lock or
 * allocate (a stopped thread may hold the lock): the raw mmap system call,
 * not libc's, whose memory hooks (UCX, Open MPI) take locks.  The hooks
 * learn of the change afterwards from a same-size mremap through libc: a
 * no-op for the kernel that they see as the range being remapped (a second
 * MAP_FIXED could clobber what the application mapped there meanwhile). */
static int replace_stopped(uintptr_t a, size_t len, int prot, int mfd)
{
	int ret = uxp_freeze(uxp_timeout_ms("XPMEM_FREEZE_TIMEOUT_MS", 1000));
	if (ret < 0)
		return uxp_fail(-ret, "shm: cannot convert %#lx+%#zx: its threads did not stop: %s",
				(unsigned long)a, len, strerror(-ret));
	ret = copy_out(mfd, a, len);
	if (ret == 0 && syscall(SYS_mmap, a, len, prot, MAP_SHARED | MAP_FIXED, mfd, 0) == -1)
		ret = -errno;
	uxp_thaw();
	if (ret == 0 && mremap((void *)a, len, len, 0) == MAP_FAILED)
		uxp_debug("shm: telling memory hooks of converted %#lx+%#zx: %s", (unsigned long)a, len,
			  strerror(errno));
	/* not registered before (file-backed): no UNMAP event was raised; from
	 * now on it is shared memory, watched like every converted range */
	if (ret == 0 && watch_converted(a, len) < 0)
		uxp_warn("shm: converted %#lx+%#zx cannot be watched for changes", (unsigned long)a, len);
	return ret;
}

/* Convert [a, b) of mapping v; returns the new record or NULL (hole). The
 * caller does not hold st->lock. */
static struct conv *convert(uintptr_t a, uintptr_t b, const struct vma *v)
{
	size_t len = b - a;
	char flags[256];
	int ret;

	vma_flags(v->start, flags, sizeof(flags));
	int mfd = memfd_create("uxpmem-conv", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0) {
		uxp_warn("shm: memfd for conversion: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		return NULL;
	}
	if (file_backed(v))
		ret = replace_stopped(a, len, prot_of(v->perms), mfd);
	else
		ret = replace_wp_frozen(a, len, prot_of(v->perms), mfd);
	pthread_mutex_lock(&st->lock);
	struct conv *cv = NULL;
	struct backing *bk = ret == 0 ? new_backing(mfd) : NULL;
	if (bk && st->nconv < MAX_CONV) {
		cv = &st->conv[st->nconv++];
		*cv = (struct conv){ .start = a, .end = b, .off = 0, .b = bk };
	} else if (bk) {
		put_backing(bk);
	}
	pthread_mutex_unlock(&st->lock);
	if (!bk)
		close(mfd);
	if (ret < 0) {
		uxp_log(ret == -EINVAL || ret == -EBUSY || ret == -ENOSYS ? UXP_LOG_DEBUG : UXP_LOG_WARN,
			"shm: converting %#lx+%#zx failed: %s (a hole for importers)", (unsigned long)a, len,
			strerror(-ret));
		return NULL;
	}
	restore_flags(a, len, flags);
	uxp_debug("shm: converted %#lx+%#zx (%s) in place", (unsigned long)a, len,
		  v->path[0] ? v->path : "anonymous");
	return cv;
}

/* ---- answering RESOLVE ----------------------------------------------------- */

struct reply {
	struct uxp_msgbuf b;
	int fds[UXP_MAX_FDS];
	unsigned nfds;
	int close_fd[UXP_MAX_FDS]; /* fds opened for this reply */
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

/* Piece for [a, b) ⊆ one VMA v: existing conversion, new one, or hole.
 * Returns the end of what it covered. */
/* Piece for [a, min(b, cv->end)) from conversion cv.  Caller holds st->lock. */
static uintptr_t piece_from_conv(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
				 struct conv *cv)
{
	uintptr_t end = b < cv->end ? b : cv->end;
	int ok = j->whole || (cv->start >= j->seg_start && cv->end <= j->seg_end);
	int fd = -1;
	if (ok)
		fd = j->rdonly ? reopen_rdonly(cv->b->fd) : cv->b->fd;
	if (fd >= 0 && add_piece(r, a, end, UXP_PIECE_FD, fd, cv->off + (off_t)(a - cv->start)) == 0) {
		if (j->rdonly)
			r->close_fd[r->nfds - 1] = fd;
		conv_add_user(cv, j->c);
		return end;
	}
	if (fd >= 0 && j->rdonly)
		close(fd);
	return add_piece(r, a, end, UXP_PIECE_HOLE, -1, 0) < 0 ? a : end;
}

static uintptr_t resolve_vma(struct job *j, struct reply *r, uintptr_t a, uintptr_t b,
			     const struct vma *v)
{
	pthread_mutex_lock(&st->lock);
	struct conv *cv = find_conv(a);
	if (cv && v->ino == cv->b->ino) {
		uintptr_t end = piece_from_conv(j, r, a, b, cv);
		pthread_mutex_unlock(&st->lock);
		return end;
	}
	struct excluded ex = { 0, 0 };
	int excl = excluded_overlap(a, b, &ex);
	pthread_mutex_unlock(&st->lock);
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
	if (!convertible(v) || uffd < 0 || !features_ok() ||
	    (!j->whole && (a < j->seg_start || b > j->seg_end))) {
		uxp_debug("shm: %#lx-%#lx (%s %s) stays a hole%s", (unsigned long)a, (unsigned long)b,
			  v->perms, v->path, uffd < 0 ? ": no userfaultfd in this process" : "");
		return add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	}
	if (r->b.m.count == UXP_MAX_PIECES || r->nfds == UXP_MAX_FDS)
		return a;
	cv = convert(a, b, v);
	if (!cv)
		return add_piece(r, a, b, UXP_PIECE_HOLE, -1, 0) < 0 ? a : b;
	pthread_mutex_lock(&st->lock);
	uintptr_t end = piece_from_conv(j, r, a, b, cv);
	pthread_mutex_unlock(&st->lock);
	return end;
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
	int have_arena = j->arena_ok && uxp_exp_arena(&ar) == 0;
	int ret = read_maps(MAPS_CONVERTER);
	if (ret < 0) {
		r.b.m.status = uxp_fail(-ret, "shm: resolve: cannot read /proc/self/maps: %s", strerror(-ret));
		goto send;
	}
	char *pos = st->maps[MAPS_CONVERTER];
	struct vma v;
	while (a < end && next_vma(&pos, &v)) {
		if (v.end <= a)
			continue;
		if (v.start >= end)
			break;
		if (v.start > a && add_piece(&r, a, v.start, UXP_PIECE_HOLE, -1, 0) < 0)
			break;
		if (v.start > a)
			a = v.start;
		uintptr_t b = v.end < end ? v.end : end;
		if (have_arena && a >= ar.base && b <= ar.base + ar.size && v.perms[0] == 'r') {
			if (add_piece(&r, a, b, UXP_PIECE_ARENA, -1, (off_t)(a - ar.base)) < 0)
				break;
			a = b;
			continue;
		}
		while (a < b) {
			uintptr_t got = resolve_vma(j, &r, a, b, &v);
			if (got == a)
				goto send; /* reply full: the importer asks for the rest */
			a = got;
		}
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
		uxp_msg_send(j->c->fd, &r.b.m, -1, MSG_DONTWAIT);
	} else if (uxp_msg_send_pieces(j->c->fd, &r.b, r.fds, r.nfds, MSG_DONTWAIT) < 0) {
		uxp_debug("shm: resolve reply to pid %d failed", (int)j->c->peer_pid);
	}
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
	for (unsigned i = 0; i < n; i++)
		if (!__atomic_load_n(&conns[i]->dead, __ATOMIC_ACQUIRE) &&
		    uxp_msg_send(conns[i]->fd, &m, -1, MSG_DONTWAIT) == 0)
			st->acks_pending++;
	uxp_deadline(&deadline, ms);
	while (st->acks_pending)
		if (pthread_cond_timedwait(&st->acked, &st->lock, &deadline) == ETIMEDOUT) {
			uxp_warn("shm: invalidating %#lx-%#lx: %u importer(s) did not acknowledge in %ld ms",
				 (unsigned long)a, (unsigned long)b, st->acks_pending, ms);
			break;
		}
	st->acks_pending = 0;
	st->inval_busy = 0;
	pthread_cond_broadcast(&st->acked);
}

static void invalidate(struct conv *cv, uintptr_t a, uintptr_t b)
{
	invalidate_conns(cv->users, cv->nusers, a, b);
}

/* The application unmapped part of its arena (in its own thread, before
 * munmap returns): importers given the arena must not read the zeros left
 * there; their next touch re-resolves (SIGBUS, or the memory mapped there
 * again). */
static void arena_unmapped(uint64_t start, uint64_t len)
{
	struct uxp_conn *conns[256];
	unsigned n = uxp_exp_arena_conns(conns, UXP_ARRAY_SIZE(conns));
	if (n) {
		pthread_once(&state_once, state_init);
		if (st) {
			pthread_mutex_lock(&st->lock);
			invalidate_conns(conns, n, start, start + len);
			pthread_mutex_unlock(&st->lock);
		}
	}
	for (unsigned i = 0; i < n; i++)
		uxp_conn_put(conns[i]);
}

static void register_arena_hook(void)
{
	void (*on_unmap)(uxpmem_arena_unmap_fn) =
		(void (*)(uxpmem_arena_unmap_fn))dlsym(RTLD_DEFAULT, "uxpmem_arena_on_unmap_v1");
	if (on_unmap)
		on_unmap(arena_unmapped);
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
	(void)c;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	if (seq == st->inval_seq && st->acks_pending && --st->acks_pending == 0)
		pthread_cond_broadcast(&st->acked);
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
		int ours = v.ino == cv->b->ino && v.perms[3] == 's' &&
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

/* Cut [a, b) out of cv (split in two if in the middle). */
static void cut_conv(struct conv *cv, uintptr_t a, uintptr_t b)
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
		cv->end = a; /* table full: forget the tail (already invalidated) */
	}
}

/* Before the unmapping thread may go on: every tracked range that no
 * longer maps its memfd is invalidated in every importer, then forgotten. */
static void sweep(void)
{
	pthread_mutex_lock(&st->lock);
	st->deferring = 1;
	if (read_maps(MAPS_NOTIFIER) < 0) {
		pthread_mutex_unlock(&st->lock);
		return;
	}
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
		invalidate(cv, a, b);
		cut_conv(cv, a, b); /* may move another record to i: look at i again */
	}
	pthread_mutex_unlock(&st->lock);
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
			if (lo < hi)
				fallocate(cv->b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  cv->off + (off_t)(lo - cv->start), (off_t)(hi - lo));
		}
		pthread_mutex_unlock(&st->lock);
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
						if (st->backing[i].refs && st->backing[i].ino == v.ino)
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
	 * REMOVE (handled above, in order: punched first), or a writer frozen
	 * by a conversion (the converter wakes it). */
	if (msg->event == UFFD_EVENT_PAGEFAULT && (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR))
		resolve_minor(msg->arg.pagefault.address);
	else if (msg->event == UFFD_EVENT_PAGEFAULT)
		uxp_trace("shm: write fault at %#llx (flags %#llx) during a conversion",
			  (unsigned long long)msg->arg.pagefault.address,
			  (unsigned long long)msg->arg.pagefault.flags);
}

static void *notifier_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&st->lock);
	exclude_own_stack();
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		if (poll(&pfd, 1, -1) < 0)
			continue;
		sweep(); /* the unmapper still waits for our read */
		struct uffd_msg msg[16];
		ssize_t n = read(uffd, msg, sizeof(msg));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			handle_event(&msg[i]);
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
	s->excluded[s->nexcluded++] = (struct excluded){ (uintptr_t)p, (uintptr_t)p + sizeof(*s) };
	__atomic_store_n(&st, s, __ATOMIC_RELEASE); /* see fork_prepare */
	exclude_library_data();
	s->nfixed = s->nexcluded;
	pthread_atfork(fork_prepare, fork_parent, NULL); /* child: uxp_conv_fork_child */
}

static void threads_init(void)
{
	pthread_once(&state_once, state_init);
	if (!st)
		return;
	uffd = open_notifier_uffd(&uffd_level);
	if (uffd < 0)
		uxp_info("shm: no userfaultfd: memory outside the arena cannot be exported (holes)");
	else if (!features_ok())
		uxp_info("shm: this kernel's userfaultfd lacks write-protect of unpopulated/shmem "
			 "memory: memory outside the arena cannot be exported (holes)");
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
		int fd = memfd_create("uxpmem-fork", MFD_CLOEXEC);
		if (fd >= 0 && (ftruncate(fd, (off_t)len) < 0 || copy_out(fd, cv->start, len) < 0)) {
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
	if (!st)
		return;
	pthread_mutex_init(&st->lock, NULL);
	for (unsigned i = 0; i < st->nconv; i++) {
		struct conv *cv = &st->conv[i];
		size_t len = cv->end - cv->start;
		int prot = PROT_READ | PROT_WRITE;
		if (read_maps(MAPS_NOTIFIER) == 0) {
			char *pos = st->maps[MAPS_NOTIFIER];
			struct vma v;
			while (next_vma(&pos, &v))
				if (v.start <= cv->start && cv->start < v.end) {
					prot = prot_of(v.perms);
					break;
				}
		}
		void *p = (void *)syscall(SYS_mmap, cv->start, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED || st->snapshot[i] < 0 ||
		    syscall(SYS_pread64, st->snapshot[i], p, len, 0) != (ssize_t)len) {
			/* never share the parent's memory silently */
			uxp_error("shm: forked child cannot make converted %#lx+%#zx private: exiting",
				  (unsigned long)cv->start, len);
			_exit(127);
		}
		mprotect(p, len, prot);
		close(st->snapshot[i]);
		close(cv->b->fd);
	}
	memset(st->backing, 0, sizeof(st->backing));
	st->nconv = 0;
	st->nexcluded = st->nfixed; /* the threads and their stacks are gone */
	st->acks_pending = 0;
	if (uffd >= 0)
		close(uffd);
	uffd = -1;
	pthread_once_t fresh = PTHREAD_ONCE_INIT;
	threads_once = fresh; /* threads restart on the next resolve */
	pthread_mutex_init(&job_lock, NULL);
	pthread_cond_init(&job_cond, NULL);
	jobs = NULL;
	jobs_tail = &jobs;
}
