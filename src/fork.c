/* fork.c - a forked child starts clean: no apids, attachments or segments
 * of the parent (as with the kernel XPMEM).  Transports drop their
 * per-process state in fork_child; service threads restart lazily. */
#include "uxp.h"

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void child_after_fork(void)
{
	uxp_freeze_fork_child();
	uxp_revoke_fork_child();
	uxp_mm_fork_child();
	uxp_node_fork_child();
	uxp_api_fork_child();
	uxp_transport_fork_child();
}

static void register_handlers(void)
{
	pthread_atfork(NULL, NULL, child_after_fork);
}

void uxp_fork_init(void)
{
	pthread_once(&fork_once, register_handlers);
}
