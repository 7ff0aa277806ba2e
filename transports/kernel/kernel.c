/* kernel.c - the kernel transport: the real /dev/xpmem ioctl ABI.
 *
 * Same ABI as the reference library, without its bugs: one MAKE ioctl per
 * call, the device opened with O_CLOEXEC exactly once under a lock, and
 * after fork (XPMEM_ERRNO_NOPROC) the inherited descriptor is closed and
 * replaced, never leaked.
 *
 * Revocation events (notice.c): make, remove, get and release tell the
 * notice code; attach and detach never do.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "uxp.h"
#include "kernel.h"
#include "notice.h"

static int real_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

static int real_open(const char *path, int flags)
{
	return open(path, flags);
}

int (*uxp_kernel_ioctl)(int, unsigned long, void *) = real_ioctl;
int (*uxp_kernel_open)(const char *, int) = real_open;

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static int dev_fd = -1; /* read lock-free once set */

const char *uxp_kernel_device_path(void)
{
	const char *p = uxp_env("XPMEM_KERNEL_DEVICE");
	return p ? p : XPMEM_DEV_PATH;
}

/* Open the device once; threads racing here all get the same fd. */
static int device_fd(void)
{
	int fd = __atomic_load_n(&dev_fd, __ATOMIC_ACQUIRE);
	if (uxp_likely(fd >= 0))
		return fd;
	pthread_mutex_lock(&dev_lock);
	fd = dev_fd;
	if (fd < 0) {
		fd = uxp_kernel_open(uxp_kernel_device_path(), O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = uxp_fail(errno, "kernel: cannot open %s: %s",
				      uxp_kernel_device_path(), strerror(errno));
		else
			__atomic_store_n(&dev_fd, fd, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&dev_lock);
	return fd;
}

/* After fork the module no longer knows the inherited descriptor's thread
 * group (XPMEM_ERRNO_NOPROC): replace that descriptor, once. */
static int reopen_after_fork(int stale)
{
	pthread_mutex_lock(&dev_lock);
	if (dev_fd == stale) {
		__atomic_store_n(&dev_fd, -1, __ATOMIC_RELEASE);
		close(stale);
	}
	pthread_mutex_unlock(&dev_lock);
	return device_fd();
}

/* ioctl returning its non-negative result or -errno. */
static int xioctl(const char *what, unsigned long request, void *arg)
{
	int fd = device_fd();
	if (fd < 0)
		return fd;
	int ret = uxp_kernel_ioctl(fd, request, arg);
	if (ret < 0 && errno == XPMEM_ERRNO_NOPROC) {
		uxp_debug("kernel: %s: descriptor inherited across fork, reopening", what);
		fd = reopen_after_fork(fd);
		if (fd < 0)
			return fd;
		ret = uxp_kernel_ioctl(fd, request, arg);
	}
	if (ret < 0)
		return uxp_fail(errno, "kernel: %s: %s", what, strerror(errno));
	return ret;
}

static int kernel_probe(char *why, size_t whylen)
{
	const char *path = uxp_kernel_device_path();
	int fd = uxp_kernel_open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(why, whylen, "cannot open %s: %s%s", path, strerror(e),
			 e == ENOENT ? " (xpmem kernel module not loaded)" : "");
		return -e;
	}
	int v = uxp_kernel_ioctl(fd, XPMEM_CMD_VERSION, NULL);
	int e = errno;
	close(fd);
	if (v < 0) {
		snprintf(why, whylen, "%s does not answer XPMEM_CMD_VERSION: %s", path, strerror(e));
		return -e;
	}
	snprintf(why, whylen, "%s, module version %#x", path, (unsigned)v);
	return 0;
}

static int kernel_open(void)
{
	int fd = device_fd();
	return fd < 0 ? fd : 0;
}

static int kernel_version(void)
{
	return xioctl("version", XPMEM_CMD_VERSION, NULL);
}

static int kernel_make(uintptr_t vaddr, size_t size, int permit_type, uint64_t permit_value,
		       xpmem_segid_t *segid)
{
	struct xpmem_cmd_make cmd = {
		.vaddr = vaddr,
		.size = size,
		.permit_type = permit_type,
		.permit_value = permit_value,
	};
	int ret = xioctl("make", XPMEM_CMD_MAKE, &cmd);
	if (ret < 0)
		return ret;
	*segid = cmd.segid;
	uxp_kn_made(cmd.segid, vaddr, size);
	return 0;
}

static int kernel_remove(xpmem_segid_t segid)
{
	struct xpmem_cmd_remove cmd = { .segid = segid };
	int ret = xioctl("remove", XPMEM_CMD_REMOVE, &cmd);
	if (ret < 0)
		return ret;
	uxp_kn_removed(segid); /* the module has zapped the attachments */
	return 0;
}

static int kernel_get(xpmem_segid_t segid, int flags, int permit_type, uint64_t permit_value,
		      xpmem_apid_t *apid)
{
	struct xpmem_cmd_get cmd = {
		.segid = segid,
		.flags = flags,
		.permit_type = permit_type,
		.permit_value = permit_value, /* the module wants 0 */
	};
	/* watch the exporter before the ioctl: nothing said after it is missed */
	void *ticket = uxp_kn_get_begin(segid);
	int ret = xioctl("get", XPMEM_CMD_GET, &cmd);
	uxp_kn_get_end(ticket, segid, ret < 0 ? 0 : cmd.apid);
	if (ret < 0)
		return ret;
	*apid = cmd.apid;
	return 0;
}

static int kernel_release(xpmem_apid_t apid)
{
	struct xpmem_cmd_release cmd = { .apid = apid };
	int ret = xioctl("release", XPMEM_CMD_RELEASE, &cmd);
	if (ret < 0)
		return ret;
	uxp_kn_released(apid);
	return 0;
}

static int kernel_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr)
{
	int fd = device_fd();
	if (fd < 0)
		return fd;
	struct xpmem_cmd_attach cmd = {
		.apid = apid,
		.offset = offset,
		.size = size,
		.vaddr = vaddr,
		.fd = fd,
		.flags = 0,
	};
	int ret = xioctl("attach", XPMEM_CMD_ATTACH, &cmd);
	if (ret < 0)
		return ret;
	*addr = (void *)(uintptr_t)cmd.vaddr;
	return 0;
}

static int kernel_detach(uintptr_t vaddr)
{
	struct xpmem_cmd_detach cmd = { .vaddr = vaddr };
	int ret = xioctl("detach", XPMEM_CMD_DETACH, &cmd);
	return ret < 0 ? ret : 0;
}

void uxp_kernel_reset(void)
{
	/* Only called single-threaded (forked child, tests). */
	if (dev_fd >= 0)
		close(dev_fd);
	dev_fd = -1;
	pthread_mutex_init(&dev_lock, NULL);
}

static void kernel_fork_child(void)
{
	uxp_kernel_reset();
	uxp_kn_fork_child();
}

const struct uxp_transport uxp_kernel_transport = {
	.name = "kernel",
	.description = "the XPMEM kernel module (/dev/xpmem)",
	.probe = kernel_probe,
	.open = kernel_open,
	.version = kernel_version,
	.make = kernel_make,
	.remove = kernel_remove,
	.get = kernel_get,
	.release = kernel_release,
	.attach = kernel_attach,
	.detach = kernel_detach,
	.fork_child = kernel_fork_child,
};
