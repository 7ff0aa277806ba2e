/* fakeinstall.c - peers linked with the library (tests/kernel/kpeer) play
 * the XPMEM module with fakexpmem.c: the seam is set before main(), so
 * before the library selects its transport.  XPMEM_FAKE_NO_PIDFD plays a
 * kernel without pidfd_open(2). */
#include <errno.h>
#include <stdlib.h>
#include "kernel.h"
#include "fakexpmem.h"

static int no_pidfd(int pid)
{
	(void)pid;
	errno = ENOSYS;
	return -1;
}

__attribute__((constructor)) static void fx_install(void)
{
	if (getenv("XPMEM_FAKE_DIR"))
		uxp_kernel_ioctl = fx_ioctl;
	if (getenv("XPMEM_FAKE_NO_PIDFD"))
		uxp_kernel_pidfd_open = no_pidfd;
}
