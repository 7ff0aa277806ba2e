/* resolve.c - the resolver's entry points (rdma.h): XPMEM_RESOLVER picks
 * the back end, read at each call (tests change it between calls; a
 * process normally sets it once):
 *
 *   dir:PATH   a directory shared by the job's nodes (resolver.c)
 *   pmix       the job's PMIx server (resolver_pmix.c)
 *   unset      pmix when this process was started by a PMIx launcher
 *              (PMIX_NAMESPACE and PMIX_RANK set), else none.  The core
 *              loads this plugin at make only with XPMEM_RESOLVER set, so
 *              unset, the plugin runs (and PMIx is used) only for a get
 *              of another node's segid: making reachable segments opens
 *              an endpoint in each process that makes one, which a job
 *              asks for (XPMEM_RESOLVER=pmix), never gets by default. */
#include <stdio.h>
#include <string.h>
#include "rdma.h"

/* The back end, or NULL with why (for the caller's log line). */
static const struct rr_ops *backend(const char **why)
{
	const char *r = uxp_env("XPMEM_RESOLVER");
	if (r && strncmp(r, "dir:", 4) == 0 && r[4])
		return &rr_dir_ops;
	if (r && strcmp(r, "pmix") == 0)
		return &rr_pmix_ops;
	if (!r && uxp_env("PMIX_NAMESPACE") && uxp_env("PMIX_RANK"))
		return &rr_pmix_ops;
	*why = r ? "XPMEM_RESOLVER is neither dir:PATH nor pmix" : "none (XPMEM_RESOLVER unset)";
	return NULL;
}

int rr_describe(char *buf, size_t len)
{
	const char *why;
	const struct rr_ops *b = backend(&why);
	if (!b) {
		snprintf(buf, len, "%s", why);
		return -ENOENT;
	}
	int ret = b->describe(buf, len);
	if (!uxp_env("XPMEM_RESOLVER")) {
		size_t n = strlen(buf);
		snprintf(buf + n, len - n, ", found from the launcher's environment: for gets only "
			 "(XPMEM_RESOLVER unset)");
	}
	return ret;
}

int rr_assign_node(void)
{
	const char *why;
	const struct rr_ops *b = backend(&why);
	return b ? b->assign_node() : 0;
}

int rr_publish(unsigned node, pid_t pid, const void *addr, size_t len, const char *prov)
{
	const char *why;
	const struct rr_ops *b = backend(&why);
	if (!b)
		return uxp_fail(ENOENT, "rdma: nothing publishes this process's address: %s", why);
	return b->publish(node, pid, addr, len, prov);
}

int rr_lookup(unsigned node, pid_t pid, struct rr_entry *e)
{
	const char *why;
	const struct rr_ops *b = backend(&why);
	if (!b)
		return uxp_fail(ENOENT, "rdma: no resolver to find node %u pid %d: %s", node,
				(int)pid, why);
	return b->lookup(node, pid, e);
}

/* Every back end that may have published (XPMEM_RESOLVER may have changed). */
void rr_unpublish(void)
{
	rr_dir_ops.unpublish();
	rr_pmix_ops.unpublish();
}

void rr_fork_child(void)
{
	if (rr_dir_ops.fork_child)
		rr_dir_ops.fork_child();
	if (rr_pmix_ops.fork_child)
		rr_pmix_ops.fork_child();
}
