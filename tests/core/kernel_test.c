/* kernel_test.c - the kernel transport's marshalling and descriptor
 * handling, and the API edge's validation, through the ioctl/open seams.
 *
 * Works with CK_FORK=no too (for valgrind): the fixture selects the kernel
 * transport once and then forgets the device descriptor before each test,
 * so every test sees a lazy first open. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "kernel.h"
#include "fakekernel.h"
#include "testutil.h"

static char device[] = "/tmp/uxp-fakedev.XXXXXX";
static size_t page;

static void setup(void)
{
	fk_install();
	ck_assert_int_eq(xpmem_init(), 0);
	ck_assert_str_eq(uxpmem_transport_name(), "kernel");
	uxp_kernel_reset();
	fk_clear();
}

static void teardown(void)
{
	uxp_kernel_reset();
}

/* The descriptor the library used for call i: our device, O_RDWR, CLOEXEC. */
static void assert_device_fd(int i)
{
	int fd = fk.calls[i].fd;
	ck_assert_msg(fk_fd_is_device(fd, device), "call %d on fd %d, not the device", i, fd);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* ---- marshalling ------------------------------------------------------ */

START_TEST(abi_request_numbers)
{
	/* _IO('x', n) of the module; a change here breaks every kernel. */
	ck_assert_uint_eq(XPMEM_CMD_VERSION, 0x7800);
	ck_assert_uint_eq(XPMEM_CMD_MAKE, 0x7801);
	ck_assert_uint_eq(XPMEM_CMD_REMOVE, 0x7802);
	ck_assert_uint_eq(XPMEM_CMD_GET, 0x7803);
	ck_assert_uint_eq(XPMEM_CMD_RELEASE, 0x7804);
	ck_assert_uint_eq(XPMEM_CMD_ATTACH, 0x7805);
	ck_assert_uint_eq(XPMEM_CMD_DETACH, 0x7806);
	ck_assert_uint_eq(sizeof(struct xpmem_cmd_make), 40);
	ck_assert_uint_eq(sizeof(struct xpmem_cmd_get), 32);
	ck_assert_uint_eq(sizeof(struct xpmem_cmd_attach), 40);
}
END_TEST

START_TEST(version_marshalling)
{
	fk.version = 0x12345;
	ck_assert_int_eq(xpmem_version(), 0x12345);
	ck_assert_int_eq(fk.ncalls, 1);
	ck_assert_uint_eq(fk.calls[0].req, XPMEM_CMD_VERSION);
	ck_assert(fk.calls[0].null_arg);
	assert_device_fd(0);
	ck_assert_int_eq(fk.opens, 1);
	ck_assert_int_eq(fk.open_flags, O_RDWR | O_CLOEXEC);
	ck_assert_str_eq(fk.open_path, device);
}
END_TEST

START_TEST(make_marshalling)
{
	static char buf[8 * 65536] __attribute__((aligned(65536)));
	xpmem_segid_t s = xpmem_make(buf, 3 * page, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_eq(s, FK_SEGID);
	ck_assert_int_eq(fk.ncalls, 1); /* exactly one MAKE (the reference did two) */
	const struct fk_call *c = &fk.calls[0];
	ck_assert_uint_eq(c->req, XPMEM_CMD_MAKE);
	ck_assert(!c->null_arg);
	assert_device_fd(0);
	ck_assert_uint_eq(c->u.make.vaddr, (uintptr_t)buf);
	ck_assert_uint_eq(c->u.make.size, 3 * page);
	ck_assert_int_eq(c->u.make.permit_type, XPMEM_PERMIT_MODE);
	ck_assert_uint_eq(c->u.make.permit_value, 0600);

	s = xpmem_make(buf + page, page, XPMEM_PERMIT_MODE, (void *)0);
	ck_assert_int_eq(s, FK_SEGID + 1);
	ck_assert_int_eq(fk.ncalls, 2);
	ck_assert_uint_eq(fk.calls[1].u.make.vaddr, (uintptr_t)buf + page);
	ck_assert_uint_eq(fk.calls[1].u.make.permit_value, 0);
	ck_assert_int_eq(fk.opens, 1);
}
END_TEST

START_TEST(make_maxaddr_clipped)
{
	/* Like the reference library, XPMEM_MAXADDR_SIZE reaches the module
	 * unchanged: the module clips it to its own TASK_SIZE (which a
	 * library cannot know on arm64 or with 5-level paging). */
	xpmem_segid_t s = xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_int_eq(s, FK_SEGID);
	ck_assert_int_eq(fk.ncalls, 1);
	ck_assert_uint_eq(fk.calls[0].u.make.vaddr, 0);
	ck_assert_uint_eq(fk.calls[0].u.make.size, XPMEM_MAXADDR_SIZE);
	ck_assert_uint_eq(fk.calls[0].u.make.permit_value, 0666);

	/* From a non-zero start, likewise. */
	uintptr_t va = 0x10000000;
	ck_assert_int_eq(xpmem_make((void *)va, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, NULL),
			 FK_SEGID + 1);
	ck_assert_uint_eq(fk.calls[1].u.make.vaddr, va);
	ck_assert_uint_eq(fk.calls[1].u.make.size, XPMEM_MAXADDR_SIZE);
}
END_TEST

START_TEST(get_marshalling)
{
	xpmem_apid_t a = xpmem_get(FK_SEGID, XPMEM_RDWR, XPMEM_PERMIT_MODE, (void *)0666);
	ck_assert_int_eq(a, FK_APID);
	ck_assert_int_eq(fk.ncalls, 1);
	const struct fk_call *c = &fk.calls[0];
	ck_assert_uint_eq(c->req, XPMEM_CMD_GET);
	assert_device_fd(0);
	ck_assert_int_eq(c->u.get.segid, FK_SEGID);
	ck_assert_int_eq(c->u.get.flags, XPMEM_RDWR);
	ck_assert_int_eq(c->u.get.permit_type, XPMEM_PERMIT_MODE);
	ck_assert_uint_eq(c->u.get.permit_value, 0); /* the module insists */

	a = xpmem_get(FK_SEGID + 7, XPMEM_RDONLY, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_eq(a, FK_APID + 1);
	ck_assert_int_eq(fk.calls[1].u.get.segid, FK_SEGID + 7);
	ck_assert_int_eq(fk.calls[1].u.get.flags, XPMEM_RDONLY);
	ck_assert_uint_eq(fk.calls[1].u.get.permit_value, 0);

	a = xpmem_get(FK_SEGID, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	ck_assert_int_eq(a, FK_APID + 2);
	ck_assert_uint_eq(fk.calls[2].u.get.permit_value, 0);
	ck_assert_int_eq(fk.ncalls, 3);
}
END_TEST

START_TEST(attach_marshalling)
{
	struct xpmem_addr addr = { .apid = FK_APID, .offset = 5 * (off_t)page };
	void *p = xpmem_attach(addr, 1, NULL);
	ck_assert_ptr_eq(p, (void *)(uintptr_t)FK_ATTACH_ADDR);
	ck_assert_int_eq(fk.ncalls, 1);
	const struct fk_call *c = &fk.calls[0];
	ck_assert_uint_eq(c->req, XPMEM_CMD_ATTACH);
	assert_device_fd(0);
	ck_assert_int_eq(c->u.attach.apid, FK_APID);
	ck_assert_int_eq(c->u.attach.offset, 5 * (off_t)page);
	ck_assert_uint_eq(c->u.attach.size, page); /* rounded up */
	ck_assert_uint_eq(c->u.attach.vaddr, 0);
	ck_assert_int_eq(c->u.attach.fd, c->fd); /* the device's descriptor */
	ck_assert_int_eq(c->u.attach.flags, 0);

	/* A fixed address is passed and returned; size rounds up to pages. */
	uintptr_t want = 0x200000000000;
	addr.offset = 0;
	p = xpmem_attach(addr, 3 * page + 5, (void *)want);
	ck_assert_ptr_eq(p, (void *)want);
	c = &fk.calls[1];
	ck_assert_uint_eq(c->u.attach.size, 4 * page);
	ck_assert_uint_eq(c->u.attach.vaddr, want);
	ck_assert_int_eq(c->u.attach.offset, 0);
	ck_assert_int_eq(c->u.attach.fd, c->fd);
	ck_assert_int_eq(c->u.attach.flags, 0);

	/* An exact multiple is not rounded further. */
	p = xpmem_attach(addr, 2 * page, NULL);
	ck_assert_ptr_eq(p, (void *)(uintptr_t)FK_ATTACH_ADDR);
	ck_assert_uint_eq(fk.calls[2].u.attach.size, 2 * page);
	ck_assert_int_eq(fk.ncalls, 3);
	ck_assert_int_eq(fk.opens, 1);
}
END_TEST

START_TEST(detach_release_remove_marshalling)
{
	ck_assert_int_eq(xpmem_detach((void *)(uintptr_t)FK_ATTACH_ADDR), 0);
	ck_assert_int_eq(xpmem_release(FK_APID), 0);
	ck_assert_int_eq(xpmem_remove(FK_SEGID), 0);
	ck_assert_int_eq(fk.ncalls, 3);
	ck_assert_uint_eq(fk.calls[0].req, XPMEM_CMD_DETACH);
	ck_assert_uint_eq(fk.calls[0].u.detach.vaddr, FK_ATTACH_ADDR);
	ck_assert_uint_eq(fk.calls[1].req, XPMEM_CMD_RELEASE);
	ck_assert_int_eq(fk.calls[1].u.release.apid, FK_APID);
	ck_assert_uint_eq(fk.calls[2].req, XPMEM_CMD_REMOVE);
	ck_assert_int_eq(fk.calls[2].u.remove.segid, FK_SEGID);
	for (int i = 0; i < 3; i++)
		assert_device_fd(i);
}
END_TEST

/* ---- errno and descriptor handling ---------------------------------- */

START_TEST(errno_passes_through)
{
	fk_fail_next(EACCES, 0);
	errno = 0;
	ck_assert_int_eq(xpmem_get(FK_SEGID, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, EACCES);

	fk_fail_next(ENOENT, 0);
	errno = 0;
	struct xpmem_addr addr = { .apid = FK_APID, .offset = 0 };
	ck_assert_ptr_eq(xpmem_attach(addr, page, NULL), (void *)-1);
	ck_assert_int_eq(errno, ENOENT);

	fk_fail_next(EINVAL, 0);
	errno = 0;
	ck_assert_int_eq(xpmem_detach((void *)0x1000), -1);
	ck_assert_int_eq(errno, EINVAL);

	fk_fail_next(ENOENT, 0);
	ck_assert_int_eq(xpmem_remove(FK_SEGID), -1);
	ck_assert_int_eq(errno, ENOENT);

	fk_fail_next(EACCES, 0);
	ck_assert_int_eq(xpmem_release(FK_APID), -1);
	ck_assert_int_eq(errno, EACCES);

	fk_fail_next(ENOMEM, 0);
	ck_assert_int_eq(xpmem_make(NULL, page, XPMEM_PERMIT_MODE, (void *)0600), -1);
	ck_assert_int_eq(errno, ENOMEM);

	fk_fail_next(ENOTTY, 0);
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENOTTY);

	/* Ordinary failures are not retried and never reopen the device. */
	ck_assert_int_eq(fk.ncalls, 7);
	ck_assert_int_eq(fk.opens, 1);
}
END_TEST

START_TEST(noproc_reopens_once_without_leak)
{
	ck_assert_int_eq(xpmem_version(), FK_VERSION);
	ck_assert_int_eq(fk.opens, 1);
	/* The first make also opens the revocation notice socket (and its
	 * thread's epoll set): count descriptors after it. */
	ck_assert_int_eq(xpmem_make(NULL, page, XPMEM_PERMIT_MODE, (void *)0600), FK_SEGID);
	int nfd = tu_count_fds();

	fk_fail_next(XPMEM_ERRNO_NOPROC, 0);
	xpmem_segid_t s = xpmem_make(NULL, page, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_eq(s, FK_SEGID + 1);
	ck_assert_int_eq(fk.opens, 2);
	ck_assert_int_eq(fk.open_flags, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(fk.ncalls, 4); /* version, make, failed make, retried make */
	ck_assert_uint_eq(fk.calls[3].req, XPMEM_CMD_MAKE);
	ck_assert_uint_eq(fk.calls[3].u.make.size, page);
	assert_device_fd(3);
	ck_assert_int_eq(tu_count_fds(), nfd); /* old one closed */

	/* The retry's failure reaches the caller as is, and only one retry. */
	fk_fail_next(XPMEM_ERRNO_NOPROC, XPMEM_ERRNO_NOPROC);
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, XPMEM_ERRNO_NOPROC);
	ck_assert_int_eq(fk.ncalls, 6);
	ck_assert_int_eq(fk.opens, 3);
	ck_assert_int_eq(tu_count_fds(), nfd);

	fk_fail_next(XPMEM_ERRNO_NOPROC, EACCES);
	ck_assert_int_eq(xpmem_get(FK_SEGID, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(fk.ncalls, 8);
	ck_assert_int_eq(tu_count_fds(), nfd);
}
END_TEST

START_TEST(noproc_reopen_failure)
{
	ck_assert_int_eq(xpmem_version(), FK_VERSION);
	int nfd = tu_count_fds();

	fk_fail_next(XPMEM_ERRNO_NOPROC, 0);
	fk.open_fail = ENXIO;
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENXIO);
	ck_assert_int_eq(fk.ncalls, 2);
	ck_assert_int_eq(tu_count_fds(), nfd - 1); /* stale one closed */

	/* The next call opens again. */
	ck_assert_int_eq(xpmem_version(), FK_VERSION);
	ck_assert_int_eq(fk.opens, 3);
	ck_assert_int_eq(tu_count_fds(), nfd);
}
END_TEST

START_TEST(open_failure_is_errno)
{
	fk.open_fail = EACCES;
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(xpmem_version(), FK_VERSION); /* not cached */
	ck_assert_int_eq(fk.opens, 2);
}
END_TEST

#define NTHREADS 8
static pthread_barrier_t barrier;

static void *first_call(void *arg)
{
	pthread_barrier_wait(&barrier);
	*(int *)arg = xpmem_version();
	return NULL;
}

START_TEST(first_open_once_under_race)
{
	pthread_t th[NTHREADS];
	int ret[NTHREADS];
	fk.open_delay_us = 20000; /* keep the door open for the others */
	pthread_barrier_init(&barrier, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, first_call, &ret[i]), 0);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(ret[i], FK_VERSION);
	}
	pthread_barrier_destroy(&barrier);
	ck_assert_int_eq(fk.opens, 1);
	ck_assert_int_eq(fk.open_flags, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(fk.ncalls, NTHREADS);
	for (int i = 1; i < NTHREADS; i++)
		ck_assert_int_eq(fk.calls[i].fd, fk.calls[0].fd);
	assert_device_fd(0);
}
END_TEST

/* In the child, return 0 or the number of the first failed check. */
static int child_first_call(int parent_fd)
{
	/* The fork handler must drop the inherited fd.  Its number may have
	 * been reused already (valgrind opens files in the child), so check
	 * what it refers to: nothing opened the device since the fork. */
	if (fk_fd_is_device(parent_fd, device))
		return 1;
	int opens = fk.opens, calls = fk.ncalls, nfd = tu_count_fds();
	if (xpmem_version() != FK_VERSION)
		return 2;
	if (fk.opens != opens + 1)
		return 3;
	if (fk.ncalls != calls + 1) /* no NOPROC round trip needed */
		return 4;
	if (tu_count_fds() != nfd + 1)
		return 5;
	if (!fk_fd_is_device(fk.calls[calls].fd, device))
		return 6;
	return 0;
}

START_TEST(fork_child_opens_new_descriptor)
{
	ck_assert_int_eq(xpmem_version(), FK_VERSION);
	int fd = fk.calls[0].fd;
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_first_call(fd));
	int st = tu_wait_child(pid, 20000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child check %d failed (status %#x)",
		      WIFEXITED(st) ? WEXITSTATUS(st) : -1, st);
	/* The parent keeps its descriptor. */
	ck_assert_int_eq(xpmem_version(), FK_VERSION);
	ck_assert_int_eq(fk.opens, 1);
	ck_assert_int_eq(fk.calls[1].fd, fd);
}
END_TEST

/* ---- API edge: rejected before any ioctl ---------------------------- */

#define ASSERT_EINVAL(call)                                              \
	do {                                                             \
		errno = 0;                                               \
		ck_assert_int_eq((call), -1);                            \
		ck_assert_int_eq(errno, EINVAL);                         \
	} while (0)

START_TEST(make_edge)
{
	static char buf[4 * 65536] __attribute__((aligned(65536)));
	uintptr_t top = uxp_user_top();
	ASSERT_EINVAL(xpmem_make(buf, page, 0, (void *)0600));
	ASSERT_EINVAL(xpmem_make(buf, page, 2, (void *)0600));
	ASSERT_EINVAL(xpmem_make(buf, page, XPMEM_PERMIT_MODE, (void *)01000));
	ASSERT_EINVAL(xpmem_make(buf, page, XPMEM_PERMIT_MODE, (void *)04600));
	ASSERT_EINVAL(xpmem_make(buf, page, XPMEM_PERMIT_MODE, (void *)-1L));
	ASSERT_EINVAL(xpmem_make(buf, 0, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make(buf + 1, page, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make(buf, page + 1, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make(buf, page / 2, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make((void *)(top - page), 2 * page, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make((void *)top, page, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make((void *)top, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600));
	ASSERT_EINVAL(xpmem_make(NULL, top + page, XPMEM_PERMIT_MODE, (void *)0600));
	/* size wrapping around the address space */
	ASSERT_EINVAL(xpmem_make((void *)(2 * page), (size_t)0 - page, XPMEM_PERMIT_MODE, (void *)0600));
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(fk.opens, 0);

	/* The last page of user space is fine. */
	ck_assert_int_eq(xpmem_make((void *)(top - page), page, XPMEM_PERMIT_MODE, (void *)0777),
			 FK_SEGID);
	ck_assert_int_eq(fk.ncalls, 1);
}
END_TEST

START_TEST(get_edge)
{
	ASSERT_EINVAL(xpmem_get(0, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(-5, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(INT64_MIN, XPMEM_RDONLY, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, 0, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, XPMEM_RDONLY | XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, 0x4, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, XPMEM_RDWR | 0x100, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, -1, XPMEM_PERMIT_MODE, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, XPMEM_RDWR, 0, NULL));
	ASSERT_EINVAL(xpmem_get(FK_SEGID, XPMEM_RDWR, 2, (void *)0600));
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(fk.opens, 0);
}
END_TEST

#define ASSERT_ATTACH_EINVAL(apid_, off_, size_, va_)                            \
	do {                                                                     \
		struct xpmem_addr a_ = { .apid = (apid_), .offset = (off_) };    \
		errno = 0;                                                       \
		ck_assert_ptr_eq(xpmem_attach(a_, (size_), (void *)(va_)), (void *)-1); \
		ck_assert_int_eq(errno, EINVAL);                                 \
	} while (0)

START_TEST(attach_edge)
{
	ASSERT_ATTACH_EINVAL(0, 0, page, 0);
	ASSERT_ATTACH_EINVAL(-1, 0, page, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, -(off_t)page, page, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, -1, page, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, 1, page, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, (off_t)page + 8, page, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, 0, page, 0x200000000001);
	ASSERT_ATTACH_EINVAL(FK_APID, 0, page, page / 2);
	ASSERT_ATTACH_EINVAL(FK_APID, 0, 0, 0);
	ASSERT_ATTACH_EINVAL(FK_APID, 0, XPMEM_MAXADDR_SIZE, 0);
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(fk.opens, 0);
}
END_TEST

START_TEST(release_remove_edge)
{
	ASSERT_EINVAL(xpmem_release(0));
	ASSERT_EINVAL(xpmem_release(-1));
	ASSERT_EINVAL(xpmem_release(INT64_MIN));
	ASSERT_EINVAL(xpmem_remove(0));
	ASSERT_EINVAL(xpmem_remove(-1));
	ASSERT_EINVAL(xpmem_remove(INT64_MIN));
	ck_assert_int_eq(fk.ncalls, 0);
	ck_assert_int_eq(fk.opens, 0);
}
END_TEST

static Suite *kernel_suite(void)
{
	Suite *s = suite_create("kernel");
	TCase *tc = tcase_create("marshalling");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, abi_request_numbers);
	tcase_add_test(tc, version_marshalling);
	tcase_add_test(tc, make_marshalling);
	tcase_add_test(tc, make_maxaddr_clipped);
	tcase_add_test(tc, get_marshalling);
	tcase_add_test(tc, attach_marshalling);
	tcase_add_test(tc, detach_release_remove_marshalling);
	suite_add_tcase(s, tc);

	tc = tcase_create("descriptor");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_test(tc, errno_passes_through);
	tcase_add_test(tc, noproc_reopens_once_without_leak);
	tcase_add_test(tc, noproc_reopen_failure);
	tcase_add_test(tc, open_failure_is_errno);
	tcase_add_test(tc, first_open_once_under_race);
	tcase_add_test(tc, fork_child_opens_new_descriptor);
	suite_add_tcase(s, tc);

	tc = tcase_create("edge");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, make_edge);
	tcase_add_test(tc, get_edge);
	tcase_add_test(tc, attach_edge);
	tcase_add_test(tc, release_remove_edge);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int fd = mkstemp(device);
	if (fd < 0)
		return 99;
	close(fd);
	page = (size_t)sysconf(_SC_PAGESIZE);
	setenv("XPMEM_TRANSPORT", "kernel", 1);
	setenv("XPMEM_KERNEL_DEVICE", device, 1);
	SRunner *sr = srunner_create(kernel_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(device);
	return failed ? 1 : 0;
}
