/* addr.c - facts about this process's address space. */
#include "uxp.h"

/* One past the highest address a process can map.  x86-64 with 4-level
 * page tables and arm64 with 48-bit VA: 2^47 - one page / 2^48.  The kernel
 * clips XPMEM_MAXADDR_SIZE to its TASK_SIZE the same way.  (5-level paging
 * only hands out higher addresses to callers that ask for them.) */
uintptr_t uxp_user_top(void)
{
#if defined(__x86_64__)
	return (UINT64_C(1) << 47) - 4096;
#elif defined(__aarch64__)
	return UINT64_C(1) << 48;
#else
	return UINTPTR_MAX & ~(uintptr_t)0xfff;
#endif
}
