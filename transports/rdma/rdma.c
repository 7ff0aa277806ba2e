/* rdma.c - the remote transport (plugin libuxpmem-rdma.so): segids of
 * other nodes over a wire back end: libfabric RDM endpoints (fabric.c) or
 * libibverbs RC queue pairs (verbs.c), XPMEM_RDMA_BACKEND (see rdma.h for
 * the parts).
 *
 * Usable when the back end works here (libfabric: an RDM provider with
 * RMA, FI_PROVIDER honoured; verbs: an active port with an IP address)
 * and a resolver is configured (XPMEM_RESOLVER=dir:PATH); open only assigns this node's id through the resolver when none is set: the
 * endpoint and its progress thread start at the first remote get or the
 * first make under the resolver, so a process that does neither pays a
 * dlopen and nothing else. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "rdma.h"

struct rw_self rw_self;
const struct rw_ops *rw_be;
static pthread_once_t select_once = PTHREAD_ONCE_INIT;
static int select_err;
static char select_why[256];

static void select_backend(void)
{
	const char *want = uxp_env("XPMEM_RDMA_BACKEND");
	static const struct rw_ops *const all[] = {
#ifdef HAVE_RW_LIBFABRIC
		&rw_libfabric,
#endif
#ifdef HAVE_RW_VERBS
		&rw_verbs,
#endif
		NULL
	};
	if (!want || !*want) {
		rw_be = all[0];
		if (!rw_be) {
			select_err = -ENODEV;
			snprintf(select_why, sizeof(select_why), "the plugin was built without a back end");
		}
		return;
	}
	for (unsigned i = 0; all[i]; i++)
		if (!strcmp(all[i]->name, want))
			rw_be = all[i];
	if (!rw_be) {
		select_err = -ENODEV;
		snprintf(select_why, sizeof(select_why),
			 "XPMEM_RDMA_BACKEND=%s: no such back end in this build", want);
	}
}

int rw_select(char *why, size_t whylen)
{
	pthread_once(&select_once, select_backend);
	if (select_err)
		snprintf(why, whylen, "%s", select_why);
	return select_err;
}

int rw_open(void)
{
	char why[256];
	int ret = rw_select(why, sizeof(why));
	if (ret < 0)
		return uxp_fail(-ret, "rdma: %s", why);
	return rw_be->open();
}

int rw_open_once(struct rw_once *o, int (*open_all)(void))
{
	if (uxp_likely(rw_once_is_open(o)))
		return 0;
	pthread_mutex_lock(&o->lock);
	if (!o->opened && !o->err) {
		if (!uxp_node_id())
			o->err = uxp_fail(ENODEV, "rdma: this process has no node id (XPMEM_NODE_ID or "
					  "a resolver that assigns one)");
		else
			o->err = open_all();
		if (!o->err)
			__atomic_store_n(&o->opened, 1, __ATOMIC_RELEASE);
	}
	int ret = o->err;
	pthread_mutex_unlock(&o->lock);
	return ret;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

void rw_backoff(long long *since_us)
{
	long long now = now_us();
	if (!*since_us)
		*since_us = now;
	long long waited = now - *since_us;
	if (waited < 100) /* a round trip of a local provider: spin */
		return;
	struct timespec ts = { 0, waited < 10000 ? 20000 : 200000 };
	nanosleep(&ts, NULL);
}

long rdma_timeout_ms(void)
{
	long v = uxp_env_long("XPMEM_RDMA_TIMEOUT_MS", 5000);
	return v > 0 ? v : 5000;
}

/* Everything received goes through here (progress thread). */
void rx_dispatch(const struct rm_msg *m, size_t len)
{
	if (len < sizeof(*m) || m->magic != RM_MAGIC) {
		uxp_debug("rdma: dropped a %zu-byte message that is not ours (or of another version)",
			  len);
		return;
	}
	switch (m->type) {
	case RM_GET:
	case RM_REG:
	case RM_PING:
	case RM_INVAL_ACK:
		rx_handle(m);
		break;
	default:
		ri_handle(m);
	}
}

static int rdma_probe(char *why, size_t whylen)
{
	char be[200], res[300];
	int ret = rw_select(why, whylen);
	if (ret == 0)
		ret = rw_be->describe(be, sizeof(be), why, whylen);
	if (ret < 0)
		return ret;
	if (rr_describe(res, sizeof(res)) < 0) {
		snprintf(why, whylen, "%s, but no resolver: %s", be, res);
		return -ENOENT;
	}
	snprintf(why, whylen, "%s, resolver %s", be, res);
	return 0;
}

static int rdma_open(void)
{
	return rr_assign_node();
}

static int rdma_get(xpmem_segid_t segid, int flags, int permit_type, uint64_t permit_value,
		    xpmem_apid_t *apid)
{
	(void)permit_type;
	(void)permit_value;
	return ri_get(segid, flags, apid);
}

static int rdma_detach(uintptr_t vaddr)
{
	return ri_detach(vaddr);
}

static void rdma_fork_child(void)
{
	if (rw_be)
		rw_be->fork_child();
	rx_fork_child();
	ri_fork_child();
	rl_fork_child();
	rr_fork_child();
}

/* Our resolver entry and endpoint go with us (a killed process's stay:
 * see importer.c for how importers find out). */
__attribute__((destructor)) static void rdma_fini(void)
{
	rr_unpublish();
	if (rw_be)
		rw_be->close_at_exit();
}

UXP_EXPORT const struct uxp_transport uxpmem_transport_v4 = {
	.name = "rdma",
	.description = "other nodes over RDMA (libfabric or libibverbs)",
	.scope = UXP_SCOPE_REMOTE,
	.init = uxp_plugin_init,
	.probe = rdma_probe,
	.open = rdma_open,
	.get = rdma_get,
	.release = ri_release,
	.attach = ri_attach,
	.detach = rdma_detach,
	.fork_child = rdma_fork_child,
	.export_segment = rx_export,
	.unexport_segment = rx_unexport,
	.flush = ri_flush,
};
