/* fakeinstall.c - peers linked with the library (tests/kernel/kpeer) play
 * the XPMEM module with fakexpmem.c: the seam is set before main(), so
 * before the library selects its transport. */
#include <stdlib.h>
#include "kernel.h"
#include "fakexpmem.h"

__attribute__((constructor)) static void fx_install(void)
{
	if (getenv("XPMEM_FAKE_DIR"))
		uxp_kernel_ioctl = fx_ioctl;
}
