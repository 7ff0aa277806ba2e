/* fakekernel.c - see fakekernel.h.  It plays the module like the real one
 * would: an ioctl on a descriptor opened by another process (inherited
 * across fork) fails with XPMEM_ERRNO_NOPROC. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fakekernel.h"
#include "kernel.h"

struct fk_state fk;
static pthread_mutex_t fk_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t fd_owner[1024]; /* which process opened each descriptor */

void fk_clear(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.version = FK_VERSION;
}

void fk_fail_next(int e1, int e2)
{
	fk.fail[0] = e1;
	fk.fail[1] = e2;
	fk.nfail = e2 ? 2 : 1;
}

static int fk_open(const char *path, int flags)
{
	pthread_mutex_lock(&fk_lock);
	fk.opens++;
	fk.open_flags = flags;
	snprintf(fk.open_path, sizeof(fk.open_path), "%s", path);
	int e = fk.open_fail;
	fk.open_fail = 0;
	unsigned delay = fk.open_delay_us;
	pthread_mutex_unlock(&fk_lock);
	if (delay)
		usleep(delay);
	if (e) {
		errno = e;
		return -1;
	}
	int fd = open(path, flags);
	if (fd >= 0 && fd < (int)(sizeof(fd_owner) / sizeof(fd_owner[0])))
		fd_owner[fd] = getpid();
	return fd;
}

static size_t arg_size(unsigned long req)
{
	switch (req) {
	case XPMEM_CMD_MAKE: return sizeof(struct xpmem_cmd_make);
	case XPMEM_CMD_REMOVE: return sizeof(struct xpmem_cmd_remove);
	case XPMEM_CMD_GET: return sizeof(struct xpmem_cmd_get);
	case XPMEM_CMD_RELEASE: return sizeof(struct xpmem_cmd_release);
	case XPMEM_CMD_ATTACH: return sizeof(struct xpmem_cmd_attach);
	case XPMEM_CMD_DETACH: return sizeof(struct xpmem_cmd_detach);
	default: return 0;
	}
}

/* The module's answer to a well-formed request. */
static int play(unsigned long req, void *arg)
{
	switch (req) {
	case XPMEM_CMD_VERSION:
		return fk.version;
	case XPMEM_CMD_MAKE:
		((struct xpmem_cmd_make *)arg)->segid = FK_SEGID + fk.next_id++;
		return 0;
	case XPMEM_CMD_GET:
		((struct xpmem_cmd_get *)arg)->apid = FK_APID + fk.next_id++;
		return 0;
	case XPMEM_CMD_ATTACH: {
		struct xpmem_cmd_attach *a = arg;
		if (!a->vaddr)
			a->vaddr = FK_ATTACH_ADDR;
		return 0;
	}
	case XPMEM_CMD_REMOVE:
	case XPMEM_CMD_RELEASE:
	case XPMEM_CMD_DETACH:
		return 0;
	default:
		errno = ENOTTY;
		return -1;
	}
}

static int fk_ioctl(int fd, unsigned long req, void *arg)
{
	pthread_mutex_lock(&fk_lock);
	int i = fk.ncalls++;
	if (i < FK_MAX_CALLS) {
		struct fk_call *c = &fk.calls[i];
		c->fd = fd;
		c->req = req;
		c->null_arg = arg == NULL;
		if (arg)
			memcpy(&c->u, arg, arg_size(req));
	}
	int e = 0;
	if (fk.nfail) {
		e = fk.fail[0];
		memmove(fk.fail, fk.fail + 1, sizeof(fk.fail) - sizeof(fk.fail[0]));
		fk.nfail--;
	} else if (fd >= 0 && fd < 1024 && fd_owner[fd] && fd_owner[fd] != getpid()) {
		e = XPMEM_ERRNO_NOPROC;
	}
	int ret = e ? -1 : play(req, arg);
	pthread_mutex_unlock(&fk_lock);
	if (e)
		errno = e;
	return ret;
}

void fk_install(void)
{
	fk_clear();
	uxp_kernel_ioctl = fk_ioctl;
	uxp_kernel_open = fk_open;
}

bool fk_fd_is_device(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}
