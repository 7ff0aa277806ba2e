/* mmwatch.c - the core's userspace MMU notifier for transports that serve
 * this process's memory by other means than shared page tables (an RDMA
 * registration, a copy): they subscribe to changes of a range (munmap,
 * mremap, MAP_FIXED over it, MADV_DONTNEED/REMOVE) and are called back.
 *
 * One userfaultfd of the core's (events UNMAP, REMAP, REMOVE), subscribed
 * ranges registered in write-protect mode with nothing protected: no fault
 * ever, only events.  The thread that unmaps blocks until the watcher
 * thread reads the event and its mapping is gone by then, so before reading
 * the watcher compares every subscribed range with /proc/self/smaps (still
 * mapped and still registered, "uw") and calls the subscribers of those
 * that changed: an munmap, mremap or MAP_FIXED over a subscribed range
 * returns only after the callbacks.  A REMOVE (madvise) changes no mapping:
 * its subscribers are called after the read, while madvise zaps.
 *
 * A range another userfaultfd owns (the shm transport's converted memory)
 * cannot be registered here: its owner reports its changes through
 * uxp_mm_changed(), which calls the subscribers in the caller's thread.
 * Subscriptions are kept even when the registration failed.
 *
 * Callbacks run with no lock of this file held; they may call unwatch. */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "uxp.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

struct mw_sub {
	uint64_t id;
	uintptr_t start, end;
	uxp_mm_cb cb;
	void *arg;
	bool registered; /* with our descriptor (checked by the sweep) */
	bool fired;      /* the sweep saw it change: called already */
};

static pthread_mutex_t mw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mw_sub *subs;
static size_t nsubs, capsubs;
static uint64_t next_id;
static int mw_uffd = -1;
static int mw_err; /* -errno: no watcher in this process */
static bool mw_started;
static char *smaps_buf; /* the watcher's (raw mmap) */
#define SMAPS_MAX (8u << 20)

static int mw_open(void)
{
	if (uxp_env_long("XPMEM_USERFAULTFD", 1) == 0)
		return uxp_fail(ENOSYS, "mmwatch: XPMEM_USERFAULTFD=0: changes of exported memory "
				"are not seen");
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) /* events work in user-mode-only too */
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return uxp_fail(errno, "mmwatch: userfaultfd: %s: changes of exported memory are "
				"not seen", strerror(errno));
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_UNMAP |
				  UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;
		close(fd);
		return uxp_fail(e, "mmwatch: UFFDIO_API (events): %s", strerror(e));
	}
	return fd;
}

/* Read /proc/self/smaps into smaps_buf (raw calls: no allocation, no
 * stdio); length or -errno. */
static ssize_t read_smaps(void)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, smaps_buf + len, SMAPS_MAX - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == SMAPS_MAX - 1)
			break;
	}
	close(fd);
	smaps_buf[len] = 0;
	return (ssize_t)len;
}

struct parts {
	uintptr_t a[8], b[8];
	unsigned n;
};

static void part_add(struct parts *p, uintptr_t a, uintptr_t b)
{
	if (a >= b)
		return;
	if (p->n && p->b[p->n - 1] == a) {
		p->b[p->n - 1] = b;
	} else if (p->n == UXP_ARRAY_SIZE(p->a)) {
		p->b[p->n - 1] = b; /* too many: the last one grows */
	} else {
		p->a[p->n] = a;
		p->b[p->n++] = b;
	}
}

/* The parts of [a, b) no longer covered by mappings registered in
 * write-protect mode ("uw" in VmFlags), from the smaps text (a header
 * line per VMA, then its fields). */
static void changed_parts(uintptr_t a, uintptr_t b, struct parts *out)
{
	char *p = smaps_buf;
	uintptr_t at = a, vs = 0, ve = 0;
	bool in = false; /* the current VMA overlaps [at, b) */
	out->n = 0;
	while (*p && at < b) {
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		unsigned long s, e;
		char *q;
		s = strtoul(p, &q, 16);
		if (*q == '-' && (e = strtoul(q + 1, &q, 16), *q == ' ')) { /* a header */
			if (s >= b)
				break;
			in = e > at;
			vs = s > at ? s : at;
			ve = e < b ? e : b;
		} else if (in && !strncmp(p, "VmFlags:", 8)) {
			*nl = 0;
			bool uw = strstr(p, " uw") != NULL;
			*nl = '\n';
			part_add(out, at, vs); /* a gap before it */
			if (!uw)
				part_add(out, vs, ve);
			at = ve;
			in = false;
		}
		p = nl + 1;
	}
	part_add(out, at, b);
}

/* Call the subscribers of [a, b) that the sweep has not called yet, among
 * those subscribed by upto (an id).  An event read names memory unmapped
 * before the read returned; a subscription made after that watches what
 * was mapped there since (an importer may register the new memory as
 * soon as the unmapper returns, before this thread dispatches) and must
 * not be told. */
static void dispatch(uintptr_t a, uintptr_t b, int kind, uint64_t upto)
{
	struct mw_sub hit[32];
	bool more;
	uint64_t after = 0;
	do {
		unsigned n = 0;
		more = false;
		pthread_mutex_lock(&mw_lock);
		for (size_t i = 0; i < nsubs; i++) {
			struct mw_sub *s = &subs[i];
			if (s->id <= after || s->id > upto || s->start >= b || s->end <= a ||
			    s->fired)
				continue;
			if (n == UXP_ARRAY_SIZE(hit)) {
				more = true;
				break;
			}
			hit[n++] = *s;
		}
		pthread_mutex_unlock(&mw_lock);
		/* ids grow with the index order of insertion: resume after the last */
		for (unsigned i = 0; i < n; i++) {
			uintptr_t lo = a > hit[i].start ? a : hit[i].start;
			uintptr_t hi = b < hit[i].end ? b : hit[i].end;
			hit[i].cb(hit[i].arg, lo, hi, kind);
			if (hit[i].id > after)
				after = hit[i].id;
		}
	} while (more);
}

/* Before the read: the subscribed ranges that are no longer mapped and
 * registered are reported (their unmapper still waits for us). */
static void sweep(void)
{
	if (read_smaps() < 0)
		return;
	for (;;) {
		struct mw_sub s = { 0 };
		struct parts parts;
		pthread_mutex_lock(&mw_lock);
		for (size_t i = 0; i < nsubs; i++) {
			if (!subs[i].registered || subs[i].fired)
				continue;
			changed_parts(subs[i].start, subs[i].end, &parts);
			if (parts.n) {
				subs[i].fired = true;
				s = subs[i];
				break;
			}
		}
		pthread_mutex_unlock(&mw_lock);
		if (!s.id)
			return;
		/* one call (the subscriber may drop everything at the first): from
		 * the first changed part to the end of the last */
		uintptr_t a = parts.a[0], b = parts.b[parts.n - 1];
		uxp_debug("mmwatch: %#lx-%#lx (of %#lx-%#lx) is no longer mapped as it was: telling "
			  "its subscriber", (unsigned long)a, (unsigned long)b, (unsigned long)s.start,
			  (unsigned long)s.end);
		s.cb(s.arg, a, b, UXP_MM_UNMAP);
	}
}

static void *watcher_main(void *unused)
{
	(void)unused;
	for (;;) {
		struct pollfd pfd = { .fd = mw_uffd, .events = POLLIN };
		if (poll(&pfd, 1, -1) <= 0 || !(pfd.revents & POLLIN))
			continue;
		sweep();
		struct uffd_msg msg[16];
		ssize_t n = read(mw_uffd, msg, sizeof(msg));
		pthread_mutex_lock(&mw_lock);
		uint64_t upto = next_id; /* subscribed before the read returned */
		pthread_mutex_unlock(&mw_lock);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			const struct uffd_msg *m = &msg[i];
			if (m->event == UFFD_EVENT_REMOVE)
				dispatch(m->arg.remove.start, m->arg.remove.end, UXP_MM_REMOVE, upto);
			else if (m->event == UFFD_EVENT_UNMAP)
				dispatch(m->arg.remove.start, m->arg.remove.end, UXP_MM_UNMAP, upto);
			else if (m->event == UFFD_EVENT_REMAP)
				dispatch(m->arg.remap.from, m->arg.remap.from + m->arg.remap.len,
					 UXP_MM_REMAP, upto);
		}
	}
	return NULL;
}

/* Caller holds mw_lock. */
static int start_locked(void)
{
	if (mw_started)
		return mw_err;
	mw_started = true;
	smaps_buf = (char *)syscall(SYS_mmap, NULL, SMAPS_MAX, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (smaps_buf == MAP_FAILED) {
		smaps_buf = NULL;
		return mw_err = -ENOMEM;
	}
	int fd = mw_open();
	if (fd < 0)
		return mw_err = fd;
	mw_uffd = fd;
	int ret = uxp_thread_start(watcher_main, NULL, 0);
	if (ret < 0) {
		close(fd);
		mw_uffd = -1;
		return mw_err = uxp_fail(-ret, "mmwatch: no watcher thread: %s", strerror(-ret));
	}
	return 0;
}

int uxp_mm_watch(uintptr_t start, size_t len, uxp_mm_cb cb, void *arg, uint64_t *id)
{
	size_t ps = uxp_page_size;
	uintptr_t a = start & ~(uintptr_t)(ps - 1), b = (start + len + ps - 1) & ~(uintptr_t)(ps - 1);
	pthread_mutex_lock(&mw_lock);
	if (nsubs == capsubs) {
		size_t cap = capsubs ? capsubs * 2 : 16;
		struct mw_sub *n = realloc(subs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&mw_lock);
			return -ENOMEM;
		}
		subs = n;
		capsubs = cap;
	}
	struct mw_sub *s = &subs[nsubs++];
	*s = (struct mw_sub){ .id = ++next_id, .start = a, .end = b, .cb = cb, .arg = arg };
	*id = s->id;
	int ret = start_locked();
	if (ret == 0) {
		struct uffdio_register reg = { .range = { a, b - a }, .mode = UFFDIO_REGISTER_MODE_WP };
		if (ioctl(mw_uffd, UFFDIO_REGISTER, &reg) == 0)
			s->registered = true;
		else
			ret = uxp_fail(errno, "mmwatch: %#lx-%#lx cannot be watched here (UFFDIO_REGISTER: "
				       "%s): only its owner's reports reach the subscriber",
				       (unsigned long)a, (unsigned long)b, strerror(errno));
	}
	pthread_mutex_unlock(&mw_lock);
	return ret;
}

void uxp_mm_unwatch(uint64_t id)
{
	pthread_mutex_lock(&mw_lock);
	for (size_t i = 0; i < nsubs; i++) {
		if (subs[i].id != id)
			continue;
		struct mw_sub s = subs[i];
		memmove(&subs[i], &subs[i + 1], (nsubs - i - 1) * sizeof(*subs)); /* ids stay sorted */
		nsubs--;
		bool shared = false;
		for (size_t j = 0; j < nsubs; j++)
			if (subs[j].registered && subs[j].start < s.end && s.start < subs[j].end)
				shared = true;
		/* fired: no longer ours (gone, or mapped anew: maybe another
		 * userfaultfd's, which an unregister must not touch) */
		if (s.registered && !s.fired && !shared) {
			struct uffdio_range r = { s.start, s.end - s.start };
			(void)ioctl(mw_uffd, UFFDIO_UNREGISTER, &r);
		}
		break;
	}
	pthread_mutex_unlock(&mw_lock);
}

void uxp_mm_changed(uintptr_t start, uintptr_t end, int kind)
{
	dispatch(start, end, kind, UINT64_MAX);
}

/* A forked child: the registrations were not inherited (no EVENT_FORK),
 * nor the thread; the subscribers' state is dropped by their own handlers. */
void uxp_mm_fork_child(void)
{
	pthread_mutex_init(&mw_lock, NULL);
	if (mw_uffd >= 0)
		close(mw_uffd);
	mw_uffd = -1;
	mw_err = 0;
	mw_started = false;
	free(subs);
	subs = NULL;
	nsubs = capsubs = 0;
	if (smaps_buf)
		syscall(SYS_munmap, smaps_buf, SMAPS_MAX);
	smaps_buf = NULL;
}
