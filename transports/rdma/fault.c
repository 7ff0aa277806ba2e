/* fault.c - lazy attachments: the reserved range is registered with a
 * userfaultfd of its own (missing mode) and filled page by page as it is
 * touched.  One fault thread (started at the first lazy attachment) waits
 * on every attachment's descriptor with epoll, reads the faulting address,
 * fetches a window of the exporter's memory by RDMA read into a bounce
 * buffer and installs it with UFFDIO_COPY (which wakes the faulting
 * thread).  The window (read-ahead) is twice the run of fetched pages
 * next to the fault (upwards, or downwards when the run is above), at
 * least RA_MIN, doubling while faults are sequential, at most RA_MAX; it
 * stops at the first page already there.  A failed fetch revokes the apid
 * (UXPMEM_REVOKE_ERROR): the SIGBUS file is mapped over and waiting
 * threads are woken into it.
 *
 * A page where the exporter has nothing mapped (its REG answers EFAULT)
 * gets the SIGBUS file mapped over it (a hole bit): touching it raises
 * SIGBUS.  Invalidations (INVALIDATE, importer.c) run on this thread too
 * (rl_queue_invalidate): rl_drop drops pages with MADV_DONTNEED so they
 * fault again (an eager attachment is registered first; holes get fresh
 * memory, registered, then dropped: a touch between the two reads zeros).
 *
 * The fault thread serves an attachment under att->lock; whoever holds
 * att->lock (flush, detach) must not touch a page not yet fetched (the
 * bitmap says which): that fault would wait for this thread. */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include "rdma.h"
#include "uxpmem.h"

#define RA_MIN (16u << 10)
#define RA_MAX (1u << 20)

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int start_err;
static int epfd = -1;
static struct uxp_idtab lazy; /* lazy_id -> att */
static uint64_t next_id;
static char *bounce;
static struct rw_mr *bounce_mr;
/* invalidations for the fault thread (epoll key 0) */
struct rl_work {
	struct rl_work *next;
	struct rm_msg m;
};
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_work *work, **work_tail = &work;
static int work_fd = -1;

static size_t lazy_from; /* atomic: xpmem-bench's override, 0: none */

void rl_lazy_from(size_t bytes)
{
	__atomic_store_n(&lazy_from, bytes, __ATOMIC_RELAXED);
}

size_t rl_eager_max(void)
{
	if (uxp_env_long("XPMEM_USERFAULTFD", 1) == 0)
		return SIZE_MAX;
	size_t o = __atomic_load_n(&lazy_from, __ATOMIC_RELAXED);
	if (o)
		return o;
	return (size_t)uxp_env_size("XPMEM_RDMA_EAGER_MAX", 256u << 10);
}

/* Full userfaultfd, else user-mode-only (unprivileged: a system call that
 * touches a page not fetched yet fails with EFAULT instead of waiting). */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return uxp_fail(errno, "rdma: userfaultfd: %s: attachments are filled eagerly",
				strerror(errno));
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;
		close(fd);
		return uxp_fail(e, "rdma: UFFDIO_API: %s", strerror(e));
	}
	return fd;
}

static void wake(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = { start, len };
	ioctl(uffd, UFFDIO_WAKE, &r);
}

/* Fetch and install the window at the faulting page.  Caller holds
 * a->lock.  0, or -errno (the caller revokes). */
static int serve(struct ri_att *a, uintptr_t addr)
{
	size_t ps = uxp_page_size, npages = a->size / ps;
	uintptr_t base = (uintptr_t)a->addr;
	addr &= ~(uintptr_t)(ps - 1);
	size_t page = (addr - base) / ps;
	if (addr < base || page >= npages || __atomic_load_n(&a->ap->revoked, __ATOMIC_RELAXED) ||
	    rl_fetched(a, page)) {
		wake(a->uffd, addr, ps); /* retried: served already, or SIGBUS */
		return 0;
	}
	/* read-ahead: twice the fetched run next to this page, so every
	 * stream grows its window however many are interleaved (glibc's large
	 * memcpy reads four at once), doubling while faults are sequential;
	 * downwards when the run is above (memmove copies backwards) */
	size_t below = 0, above = 0, cap = RA_MAX / ps;
	while (below < cap && below < page && rl_fetched(a, page - below - 1))
		below++;
	while (above < cap && page + above + 1 < npages && rl_fetched(a, page + above + 1))
		above++;
	bool down = above > below;
	size_t ra = addr == a->next_fault ? a->ra * 2 : RA_MIN;
	ra = ra > 2 * (down ? above : below) * ps ? ra : 2 * (down ? above : below) * ps;
	a->ra = ra < RA_MAX ? ra : RA_MAX;
	size_t n = 1;
	size_t fpage = page; /* the faulting page */
	uintptr_t faddr = addr;
	if (down) {
		while (n < a->ra / ps && page > 0 && !rl_fetched(a, page - 1)) {
			page--;
			n++;
		}
		addr = base + page * ps;
	} else {
		while (n < a->ra / ps && page + n < npages && !rl_fetched(a, page + n))
			n++;
	}
	/* this thread only waits: poll without sleeping */
	uint64_t off = a->offset + page * ps;
	int ret = ri_rma_range_spin(a->ap, false, bounce, bounce_mr, off, n * ps);
	if (ret < 0 && ret != -EFAULT && ret != -ETIMEDOUT && ret != -ENOENT) {
		/* a registration the exporter closed meanwhile (its INVALIDATE
		 * follows): once more, registered anew */
		ri_chunks_drop(a->ap, off, n * ps);
		n = 1;
		ret = -EAGAIN;
	}
	if (ret == -EFAULT && n > 1) /* the window ran into a hole */
		ret = -EAGAIN;
	if (ret == -EAGAIN) { /* the faulting page alone */
		page = fpage;
		addr = faddr;
		down = false;
		n = 1;
		off = a->offset + page * ps;
		ret = ri_rma_range_spin(a->ap, false, bounce, bounce_mr, off, ps);
	}
	if (ret == -EFAULT) { /* nothing mapped there in the exporter: SIGBUS */
		page = fpage;
		addr = faddr;
		if (uxp_sys_mmap((void *)addr, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
				 ri_sigbus_fd(), 0) == MAP_FAILED)
			return uxp_fail(errno, "rdma: hole at %#lx: mmap: %s", (unsigned long)addr,
					strerror(errno));
		rl_mark(a->holes, page, true);
		wake(a->uffd, addr, ps);
		uxp_debug("rdma: %#lx: the exporter has nothing mapped there: SIGBUS", (unsigned long)addr);
		return 0;
	}
	if (ret < 0)
		return ret;
	if (a->twin)
		memcpy(a->twin + page * ps, bounce, n * ps);
	struct uffdio_copy c = { .dst = addr, .src = (uintptr_t)bounce, .len = n * ps };
	while (ioctl(a->uffd, UFFDIO_COPY, &c) < 0) {
		if (errno != EAGAIN || c.copy < 0)
			return uxp_fail(EFAULT, "rdma: UFFDIO_COPY at %#lx: %s", (unsigned long)c.dst,
					strerror(errno));
		c.dst += (uint64_t)c.copy;
		c.src += (uint64_t)c.copy;
		c.len -= (uint64_t)c.copy;
		c.copy = 0;
	}
	for (size_t i = page; i < page + n; i++)
		rl_mark(a->fetched, i, true);
	uxp_trace("rdma: fault at %#lx: %zu pages fetched", (unsigned long)addr, n);
	a->next_fault = down ? (page ? addr - ps : 0) : addr + n * ps;
	return 0;
}

/* Every fault queued on a's descriptor. */
static void serve_all(struct ri_att *a)
{
	struct uffd_msg msg;
	int err = 0;
	pthread_mutex_lock(&a->lock);
	while (!err && a->uffd >= 0 && read(a->uffd, &msg, sizeof(msg)) == sizeof(msg))
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			err = serve(a, (uintptr_t)msg.arg.pagefault.address);
	pthread_mutex_unlock(&a->lock);
	if (err) {
		uxp_warn("rdma: a page of %p could not be fetched (%s): the attachment is revoked",
			 (void *)a->addr, strerror(-err));
		ri_revoke_apid(a->ap, UXPMEM_REVOKE_ERROR);
	}
}

static void run_work(void)
{
	uint64_t v;
	(void)!read(work_fd, &v, sizeof(v));
	for (;;) {
		pthread_mutex_lock(&work_lock);
		struct rl_work *w = work;
		if (w && !(work = w->next))
			work_tail = &work;
		pthread_mutex_unlock(&work_lock);
		if (!w)
			return;
		ri_invalidate(&w->m);
		free(w);
	}
}

static long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* After serving, look for the next fault without sleeping for SPIN_US: a
 * thread reading sequentially faults again soon, and waking this thread
 * from sleep on another CPU costs more than the fetch itself.  Yielding
 * between looks: the faulting thread UFFDIO_COPY just woke may be queued on
 * this CPU, and a spinner that does not yield keeps it waiting for the
 * scheduler's preemption (tens of us to a tick). */
#define SPIN_US 100

static void *fault_main(void *arg)
{
	(void)arg;
	struct epoll_event ev[16];
	long long busy = 0; /* when the last fault was served, us */
	for (;;) {
		int n = epoll_wait(epfd, ev, 16, busy && mono_us() - busy < SPIN_US ? 0 : -1);
		if (n > 0)
			busy = mono_us();
		else if (n == 0)
			sched_yield();
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == 0) {
				run_work();
				continue;
			}
			struct ri_att *a = uxp_idtab_get(&lazy, ev[i].data.u64, ri_att_hold);
			if (a) {
				serve_all(a);
				ri_att_put(a);
			}
		}
	}
	return NULL;
}

static void start(void)
{
	uxp_idtab_init(&lazy);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	bounce = mmap(NULL, RA_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (epfd < 0 || bounce == MAP_FAILED) {
		start_err = uxp_fail(errno, "rdma: fault thread: %s", strerror(errno));
		return;
	}
	if (rw_self.mr_local)
		start_err = rw_mr_reg(bounce, RA_MAX, RW_LOCAL_READ, &bounce_mr);
	work_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	if (!start_err && (work_fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, work_fd, &ev) < 0))
		start_err = uxp_fail(errno, "rdma: fault thread: %s", strerror(errno));
	if (!start_err)
		start_err = uxp_thread_start(fault_main, NULL, 0);
}

int rl_register(struct ri_att *a)
{
	pthread_once(&once, start);
	if (start_err)
		return start_err;
	int fd = uffd_open();
	if (fd < 0)
		return fd;
	struct uffdio_register reg = { .range = { (uintptr_t)a->addr, a->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	int ret = ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? uxp_fail(errno, "rdma: UFFDIO_REGISTER: %s",
								   strerror(errno)) : 0;
	/* A page not fetched must not be there once registered (it would
	 * never fault: zeros instead of the exporter's data).  The range may
	 * have such pages although nobody touched it: a fresh anonymous
	 * mapping merges with an adjacent one of the same flags (the twin,
	 * the bounce buffer), and pinning that one for a registration can
	 * fault in a transparent huge page covering both.  Dropped before the
	 * fault thread can serve the range (no fetched page is lost). */
	for (size_t i = 0, n = a->size / uxp_page_size; ret == 0 && i < n;) {
		size_t j = i;
		while (j < n && !rl_fetched(a, j))
			j++;
		if (j > i)
			uxp_sys_madvise(a->addr + i * uxp_page_size, (j - i) * uxp_page_size,
					MADV_DONTNEED);
		i = j + 1;
	}
	a->lazy_id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	a->ra = RA_MIN;
	a->uffd = fd;
	if (ret == 0)
		ret = uxp_idtab_insert(&lazy, a->lazy_id, a);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = a->lazy_id };
	if (ret == 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
		uxp_idtab_remove(&lazy, a->lazy_id, a);
	}
	if (ret < 0) {
		close(fd);
		a->uffd = -1;
	}
	return ret;
}

void rl_unregister(struct ri_att *a)
{
	if (a->uffd < 0)
		return;
	uxp_idtab_remove(&lazy, a->lazy_id, a);
	epoll_ctl(epfd, EPOLL_CTL_DEL, a->uffd, NULL);
	close(a->uffd); /* wakes any thread still waiting in the range */
	a->uffd = -1;
}

void rl_drop(struct ri_att *a, size_t from, size_t to)
{
	size_t ps = uxp_page_size;
	char *p = a->addr + from * ps;
	size_t len = (to - from) * ps;
	int prot = a->ap->flags == XPMEM_RDWR ? PROT_READ | PROT_WRITE : PROT_READ;
	if (a->uffd < 0 && (uxp_env_long("XPMEM_USERFAULTFD", 1) == 0 || rl_register(a) < 0)) {
		/* no userfaultfd: SIGBUS there until attached again */
		if (uxp_sys_mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ri_sigbus_fd(),
				 0) == MAP_FAILED)
			uxp_error("rdma: invalidating %p+%#zx: mmap: %s", (void *)p, len, strerror(errno));
		for (size_t i = from; i < to; i++) {
			rl_mark(a->fetched, i, false);
			rl_mark(a->holes, i, true);
		}
		return;
	}
	for (size_t i = from; i < to; i++) {
		if (!(a->holes[i / 8] >> (i % 8) & 1))
			continue;
		size_t j = i;
		while (j < to && (a->holes[j / 8] >> (j % 8) & 1))
			rl_mark(a->holes, j++, false);
		struct uffdio_register reg = { .range = { (uintptr_t)(a->addr + i * ps), (j - i) * ps },
					       .mode = UFFDIO_REGISTER_MODE_MISSING };
		if (uxp_sys_mmap(a->addr + i * ps, (j - i) * ps, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0) == MAP_FAILED || ioctl(a->uffd, UFFDIO_REGISTER, &reg) < 0)
			uxp_error("rdma: refilling the hole %p+%#zx: %s", (void *)(a->addr + i * ps),
				  (j - i) * ps, strerror(errno));
		i = j;
	}
	uxp_sys_madvise(p, len, MADV_DONTNEED);
	for (size_t i = from; i < to; i++)
		rl_mark(a->fetched, i, false);
}

void rl_queue_invalidate(const struct rm_msg *m)
{
	pthread_once(&once, start);
	struct rl_work *w = malloc(sizeof(*w));
	if (!w || start_err) {
		free(w);
		uxp_error("rdma: an invalidation from node %u pid %u is not applied: no fault thread",
			  m->from_node, m->from_pid);
		return;
	}
	w->m = *m;
	w->next = NULL;
	pthread_mutex_lock(&work_lock);
	*work_tail = w;
	work_tail = &w->next;
	pthread_mutex_unlock(&work_lock);
	(void)!write(work_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
}

void rl_wake_all(struct ri_att *a)
{
	if (a->uffd >= 0)
		wake(a->uffd, (uintptr_t)a->addr, a->size);
}

/* The parent's fault thread is gone; the child's lazy ranges (its copies
 * of the parent's mappings) are not registered in it: they read zeros
 * where nothing was fetched. */
void rl_fork_child(void)
{
	once = (pthread_once_t)PTHREAD_ONCE_INIT;
	start_err = 0;
	epfd = -1;
	work_fd = -1;
	pthread_mutex_init(&work_lock, NULL);
	work = NULL;
	work_tail = &work;
	bounce = NULL;
	bounce_mr = NULL;
}
