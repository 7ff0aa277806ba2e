/* node.c - this node's id, the node field (bits 62..48) of the segids this
 * process makes and the test that routes an id to the local transport.
 *
 * XPMEM_NODE_ID sets it at selection; otherwise it is 0 ("local only")
 * until a resolver calls uxp_node_id_set() (the remote transport, through
 * struct uxp_core).  Readers are lock-free; it changes at most once, and
 * never after an xpmem_make handed out segids without it. */
#include <stdlib.h>
#include <string.h>
#include "uxp.h"

static unsigned node_id_value;
static pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;
static int node_frozen; /* an xpmem_make used the current value */

int uxp_node_init(void)
{
	const char *s = uxp_env("XPMEM_NODE_ID");
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || *end || v < 0 || v > (long)UXP_NODE_MAX) {
		uxp_error("core: XPMEM_NODE_ID=%s is not a node id (0..%u)", s, UXP_NODE_MAX);
		return -EINVAL;
	}
	if (v)
		__atomic_store_n(&node_id_value, (unsigned)v, __ATOMIC_RELEASE);
	uxp_info("core: node id %ld (XPMEM_NODE_ID)", v);
	return 0;
}

unsigned uxp_node_id(void)
{
	return __atomic_load_n(&node_id_value, __ATOMIC_ACQUIRE);
}

int uxp_node_id_set(unsigned node)
{
	int ret = 0;
	if (node == 0 || node > UXP_NODE_MAX)
		return uxp_fail(EINVAL, "core: node id %u is not in 1..%u", node, UXP_NODE_MAX);
	pthread_mutex_lock(&node_lock);
	unsigned cur = node_id_value;
	if (cur == node)
		;
	else if (cur)
		ret = uxp_fail(EBUSY, "core: node id %u refused: this node is %u (XPMEM_NODE_ID "
			       "or an earlier resolver)", node, cur);
	else if (__atomic_load_n(&node_frozen, __ATOMIC_SEQ_CST))
		ret = uxp_fail(EBUSY, "core: node id %u refused: segids were made without a node id",
			       node);
	else
		__atomic_store_n(&node_id_value, node, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&node_lock);
	if (ret == 0 && cur != node)
		uxp_info("core: node id %u (set by a resolver)", node);
	return ret;
}

/* Freeze first, then read: a concurrent uxp_node_id_set() either sees the
 * freeze or stores before our read (both sequentially consistent). */
unsigned uxp_node_id_freeze(void)
{
	if (!__atomic_load_n(&node_frozen, __ATOMIC_RELAXED))
		__atomic_store_n(&node_frozen, 1, __ATOMIC_SEQ_CST);
	return __atomic_load_n(&node_id_value, __ATOMIC_SEQ_CST);
}

void uxp_node_fork_child(void)
{
	/* the id is the node's: the child keeps it (and the freeze) */
	pthread_mutex_init(&node_lock, NULL);
}
