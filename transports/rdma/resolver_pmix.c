/* resolver_pmix.c - XPMEM_RESOLVER=pmix: the job's PMIx server is the name
 * service (the process was started by a PMIx launcher: mpirun, prterun,
 * srun --mpi=pmix; PMIX_NAMESPACE and PMIX_RANK in its environment).
 *
 * libpmix.so.2 (XPMEM_PMIX_LIBRARY) is opened with dlopen at the first
 * use, so neither libxpmem nor this plugin links it (only PMIx's headers
 * are needed to build); missing, the resolver is unusable with ELIBACC.
 *
 *   node id   PMIX_NODEID of this process, plus 1 (PMIx numbers nodes from
 *             0, where mpirun runs; our 0 means "local only")
 *   publish   PMIx_Publish of "uxpmem.ep.NODE.PID" -> {provider, address}
 *             (range session, persistence proc: the server drops it when
 *             the process ends; we unpublish at exit too)
 *   lookup    PMIx_Lookup of that key, without waiting: the exporter
 *             publishes before its first remote-capable segid exists, an
 *             importer before it sends a request.  Found entries are cached
 *             for RP_CACHE_MS (the exporter looks the requester up on each
 *             request; a round trip to the server costs 0.2-4 ms).
 *
 * Why not Put/Commit + Get: Get names a rank, and a segid carries node id
 * and pid; data committed after the job's fence reaches other nodes only by
 * a direct-modex fetch that is not repeated; and a Fence is collective,
 * impossible at xpmem_make.  Publish/Lookup need no rank and no collective.
 *
 * Attestation (the exporter's permission check): the server names the
 * publisher of an entry (pmix_pdata_t.proc, from its authenticated
 * connection); its uid/gid are PMIX_USERID/PMIX_GRPID of that process when
 * the server knows them, else this process's own: every process a launcher
 * starts in one session runs as the user who launched it (Open MPI 4.1's
 * server reports no PMIX_USERID).
 *
 * A forked child is not a process of the job (the PMIx connection is the
 * parent's): it publishes and looks up nothing (ENOTCONN). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "rdma.h"

#ifdef HAVE_PMIX
#include <pmix.h>

#define RP_LIB "libpmix.so.2"
#define RP_CACHE_MS 10000
#define RP_CACHE_MAX 4096

/* The calls we use, from dlopen. */
static struct {
	pmix_status_t (*init)(pmix_proc_t *, pmix_info_t *, size_t);
	pmix_status_t (*finalize)(const pmix_info_t *, size_t);
	pmix_status_t (*get)(const pmix_proc_t *, const char *, const pmix_info_t *, size_t,
			     pmix_value_t **);
	pmix_status_t (*publish)(const pmix_info_t *, size_t);
	pmix_status_t (*lookup)(pmix_pdata_t *, size_t, const pmix_info_t *, size_t);
	pmix_status_t (*unpublish)(char **, const pmix_info_t *, size_t);
	const char *(*error_string)(pmix_status_t);
	const char *(*version)(void);
	void (*value_destruct)(pmix_value_t *);
} px;

static pthread_mutex_t rp_lock = PTHREAD_MUTEX_INITIALIZER;
static int rp_state;      /* 0 not tried, 1 up, -errno failed (final) */
static char rp_version[64]; /* "OpenPMIx 4.2.2rc2" */
static pid_t rp_pid;      /* the process that initialized */
static bool rp_finalized; /* at exit */
static pmix_proc_t rp_me;
static unsigned rp_node;  /* PMIX_NODEID + 1 */
static char rp_why[200];  /* a failure, for describe */
static char rp_key[PMIX_MAX_KEYLEN + 1]; /* our entry, to unpublish */

struct rp_cached {
	struct rp_cached *next;
	unsigned node;
	pid_t pid;
	long long at;
	struct rr_entry e;
};
static struct rp_cached *rp_cache;
static unsigned rp_ncached;

static long long now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static const char *perr(pmix_status_t rc)
{
	return px.error_string ? px.error_string(rc) : "?";
}

static void info_set(pmix_info_t *i, const char *key, pmix_data_type_t type)
{
	memset(i, 0, sizeof(*i));
	snprintf(i->key, sizeof(i->key), "%s", key);
	i->value.type = type;
}

static void value_release(pmix_value_t *v)
{
	if (v) {
		px.value_destruct(v);
		free(v);
	}
}

static int load(void)
{
	const char *lib = uxp_env("XPMEM_PMIX_LIBRARY");
	if (!lib)
		lib = RP_LIB;
	/* RTLD_GLOBAL: PMIx's own plugins resolve its symbols */
	void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		snprintf(rp_why, sizeof(rp_why), "%s cannot be loaded: %s", lib, dlerror());
		return uxp_fail(ELIBACC, "rdma: resolver pmix: %s", rp_why);
	}
	struct { void **fn; const char *name; } syms[] = {
		{ (void **)&px.init, "PMIx_Init" }, { (void **)&px.finalize, "PMIx_Finalize" },
		{ (void **)&px.get, "PMIx_Get" }, { (void **)&px.publish, "PMIx_Publish" },
		{ (void **)&px.lookup, "PMIx_Lookup" }, { (void **)&px.unpublish, "PMIx_Unpublish" },
		{ (void **)&px.error_string, "PMIx_Error_string" },
		{ (void **)&px.version, "PMIx_Get_version" },
		{ (void **)&px.value_destruct, "PMIx_Value_destruct" },
	};
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (!(*syms[i].fn = dlsym(h, syms[i].name))) {
			snprintf(rp_why, sizeof(rp_why), "%s has no %s", lib, syms[i].name);
			memset(&px, 0, sizeof(px));
			return uxp_fail(ELIBACC, "rdma: resolver pmix: %s", rp_why);
		}
	return 0;
}

static void rp_at_exit(void);

/* PMIx_Init, this process's node id: 0 or -errno; once per process. */
static int init_once(void)
{
	int ret = load();
	if (ret < 0)
		return ret;
	long long t0 = now_us();
	pmix_status_t rc = px.init(&rp_me, NULL, 0);
	if (rc != PMIX_SUCCESS) {
		snprintf(rp_why, sizeof(rp_why), "PMIx_Init: %s (not started by a PMIx launcher?)",
			 perr(rc));
		return uxp_fail(ENOTCONN, "rdma: resolver pmix: %s", rp_why);
	}
	rp_pid = getpid();
	/* ORTE counts a process that initialized PMIx and exits without
	 * finalizing as failed: finalize at exit, before library destructors. */
	atexit(rp_at_exit);
	pmix_value_t *v = NULL;
	rc = px.get(&rp_me, PMIX_NODEID, NULL, 0, &v);
	if (rc != PMIX_SUCCESS || !v || v->type != PMIX_UINT32) {
		snprintf(rp_why, sizeof(rp_why), "PMIx_Get(PMIX_NODEID): %s",
			 rc != PMIX_SUCCESS ? perr(rc) : "not a uint32");
		value_release(v);
		return uxp_fail(ENODATA, "rdma: resolver pmix: %s", rp_why);
	}
	uint32_t id = v->data.uint32;
	value_release(v);
	if (id >= UXP_NODE_MAX) {
		snprintf(rp_why, sizeof(rp_why), "PMIX_NODEID %u + 1 is above %u", id, UXP_NODE_MAX);
		return uxp_fail(ERANGE, "rdma: resolver pmix: %s", rp_why);
	}
	rp_node = id + 1;
	snprintf(rp_version, sizeof(rp_version), "%s", px.version());
	char *paren = strstr(rp_version, " ("); /* "OpenPMIx 4.2.2rc2 (PMIx Standard: ...)" */
	if (paren)
		*paren = '\0';
	uxp_debug("rdma: resolver pmix: %s, namespace %s rank %u, PMIX_NODEID %u (PMIx_Init and "
		  "PMIx_Get: %lld us)", rp_version, rp_me.nspace, rp_me.rank, id, now_us() - t0);
	return 0;
}

/* 0 when PMIx is up for this process, else -errno (logged). */
static int up(void)
{
	pthread_mutex_lock(&rp_lock);
	if (rp_state == 0) {
		int ret = init_once();
		rp_state = ret < 0 ? ret : 1;
	}
	int ret = rp_state < 0 ? rp_state : 0;
	if (ret == 0 && (rp_finalized || rp_pid != getpid()))
		ret = -ENOTCONN;
	pthread_mutex_unlock(&rp_lock);
	if (ret < 0)
		uxp_debug("rdma: resolver pmix: not usable: %s", rp_state < 0 ? rp_why :
			  rp_finalized ? "finalized at exit" :
			  "a forked child is not a process of the job");
	return ret;
}

static int pmix_describe(char *buf, size_t len)
{
	int ret = up();
	if (ret < 0)
		snprintf(buf, len, "pmix: %s", rp_state < 0 ? rp_why : "not usable in this process");
	else
		snprintf(buf, len, "pmix (%s, namespace %s rank %u, PMIX_NODEID %u: node id %u)",
			 rp_version, rp_me.nspace, rp_me.rank, rp_node - 1, rp_node);
	return ret;
}

static int pmix_assign_node(void)
{
	int ret = up();
	if (ret < 0 || uxp_node_id())
		return ret;
	return uxp_node_id_set(rp_node);
}

/* The key of (node, pid). */
static void key_of(char *key, size_t len, unsigned node, pid_t pid)
{
	snprintf(key, len, "uxpmem.ep.%u.%d", node, (int)pid);
}

/* Entry blob: version 1, provider length, provider, address. */
static int pmix_publish(unsigned node, pid_t pid, const void *addr, size_t len, const char *prov)
{
	int ret = up();
	if (ret < 0)
		return ret;
	unsigned char blob[2 + 64 + RF_ADDR_MAX];
	size_t plen = strlen(prov);
	if (plen >= 64 || len > RF_ADDR_MAX || len == 0)
		return uxp_fail(EINVAL, "rdma: resolver pmix: provider name or address too long");
	blob[0] = 1;
	blob[1] = (unsigned char)plen;
	memcpy(blob + 2, prov, plen);
	memcpy(blob + 2 + plen, addr, len);
	pmix_info_t info[3];
	char key[PMIX_MAX_KEYLEN + 1];
	key_of(key, sizeof(key), node, pid);
	info_set(&info[0], key, PMIX_BYTE_OBJECT);
	info[0].value.data.bo.bytes = (char *)blob;
	info[0].value.data.bo.size = 2 + plen + len;
	info_set(&info[1], PMIX_RANGE, PMIX_DATA_RANGE);
	info[1].value.data.range = PMIX_RANGE_SESSION;
	info_set(&info[2], PMIX_PERSISTENCE, PMIX_PERSIST);
	info[2].value.data.persist = PMIX_PERSIST_PROC;
	long long t0 = now_us();
	pmix_status_t rc = px.publish(info, 3);
	if (rc != PMIX_SUCCESS)
		return uxp_fail(EIO, "rdma: resolver pmix: PMIx_Publish(%s): %s", key, perr(rc));
	pthread_mutex_lock(&rp_lock);
	snprintf(rp_key, sizeof(rp_key), "%s", key);
	pthread_mutex_unlock(&rp_lock);
	uxp_debug("rdma: resolver pmix: published %s (%zu-byte address, %lld us)", key, len,
		  now_us() - t0);
	return 0;
}

static bool cache_find(unsigned node, pid_t pid, struct rr_entry *e)
{
	long long now = uxp_now_ms();
	bool found = false;
	pthread_mutex_lock(&rp_lock);
	for (struct rp_cached *c = rp_cache; c; c = c->next)
		if (c->node == node && c->pid == pid && now - c->at < RP_CACHE_MS) {
			*e = c->e;
			found = true;
			break;
		}
	pthread_mutex_unlock(&rp_lock);
	return found;
}

static void cache_put(unsigned node, pid_t pid, const struct rr_entry *e)
{
	pthread_mutex_lock(&rp_lock);
	struct rp_cached *c;
	for (c = rp_cache; c && (c->node != node || c->pid != pid); c = c->next)
		;
	if (!c && rp_ncached < RP_CACHE_MAX && (c = calloc(1, sizeof(*c)))) {
		c->next = rp_cache;
		rp_cache = c;
		rp_ncached++;
	}
	if (c) {
		c->node = node;
		c->pid = pid;
		c->at = uxp_now_ms();
		c->e = *e;
	}
	pthread_mutex_unlock(&rp_lock);
}

/* uid/gid of the publisher, as the server knows them, else ours. */
static void attest(const pmix_proc_t *who, struct rr_entry *e)
{
	e->uid = geteuid();
	e->gid = getegid();
	pmix_info_t imm;
	info_set(&imm, PMIX_IMMEDIATE, PMIX_BOOL);
	imm.value.data.flag = true;
	pmix_value_t *v = NULL;
	if (px.get(who, PMIX_USERID, &imm, 1, &v) == PMIX_SUCCESS && v && v->type == PMIX_UINT32)
		e->uid = v->data.uint32;
	value_release(v);
	v = NULL;
	if (px.get(who, PMIX_GRPID, &imm, 1, &v) == PMIX_SUCCESS && v && v->type == PMIX_UINT32)
		e->gid = v->data.uint32;
	value_release(v);
}

static int pmix_lookup(unsigned node, pid_t pid, struct rr_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (cache_find(node, pid, e))
		return 0;
	int ret = up();
	if (ret < 0)
		return ret;
	pmix_pdata_t pd;
	memset(&pd, 0, sizeof(pd));
	pd.value.type = PMIX_UNDEF;
	key_of(pd.key, sizeof(pd.key), node, pid);
	pmix_info_t range;
	info_set(&range, PMIX_RANGE, PMIX_DATA_RANGE);
	range.value.data.range = PMIX_RANGE_SESSION;
	long long t0 = now_us();
	pmix_status_t rc = px.lookup(&pd, 1, &range, 1);
	if (rc == PMIX_ERR_NOT_FOUND)
		return uxp_fail(ENOENT, "rdma: resolver pmix: no process %d of node %u published "
				"(%s not found)", (int)pid, node, pd.key);
	if (rc != PMIX_SUCCESS) {
		px.value_destruct(&pd.value);
		return uxp_fail(EIO, "rdma: resolver pmix: PMIx_Lookup(%s): %s", pd.key, perr(rc));
	}
	const unsigned char *b = pd.value.type == PMIX_BYTE_OBJECT ?
		(const unsigned char *)pd.value.data.bo.bytes : NULL;
	size_t n = b ? pd.value.data.bo.size : 0;
	if (!b || n < 3 || b[0] != 1 || b[1] >= 64 || n <= 2u + b[1] || n - 2 - b[1] > RF_ADDR_MAX) {
		px.value_destruct(&pd.value);
		return uxp_fail(EPROTO, "rdma: resolver pmix: %s is not an endpoint entry", pd.key);
	}
	memcpy(e->prov, b + 2, b[1]);
	e->prov[b[1]] = '\0';
	e->addrlen = n - 2 - b[1];
	memcpy(e->addr, b + 2 + b[1], e->addrlen);
	px.value_destruct(&pd.value);
	attest(&pd.proc, e);
	uxp_debug("rdma: resolver pmix: %s -> %s:%u, provider %s, uid %u gid %u (%lld us)", pd.key,
		  pd.proc.nspace, pd.proc.rank, e->prov, (unsigned)e->uid, (unsigned)e->gid,
		  now_us() - t0);
	cache_put(node, pid, e);
	return 0;
}

static void unpublish_locked(void)
{
	if (rp_key[0] && rp_state == 1 && !rp_finalized && rp_pid == getpid()) {
		char *keys[] = { rp_key, NULL };
		pmix_status_t rc = px.unpublish(keys, NULL, 0);
		if (rc != PMIX_SUCCESS)
			uxp_debug("rdma: resolver pmix: PMIx_Unpublish(%s): %s", rp_key, perr(rc));
	}
	rp_key[0] = '\0';
}

static void pmix_unpublish(void)
{
	pthread_mutex_lock(&rp_lock);
	unpublish_locked();
	pthread_mutex_unlock(&rp_lock);
}

static void rp_at_exit(void)
{
	pthread_mutex_lock(&rp_lock);
	if (rp_state == 1 && !rp_finalized && rp_pid == getpid()) {
		unpublish_locked();
		rp_finalized = true;
		px.finalize(NULL, 0);
	}
	pthread_mutex_unlock(&rp_lock);
}

/* The parent's connection is not ours: never use it (rp_pid differs); the
 * cache's entries stay valid (other processes' addresses). */
static void pmix_fork_child(void)
{
	pthread_mutex_init(&rp_lock, NULL);
	rp_key[0] = '\0';
}

#else /* !HAVE_PMIX */

static int pmix_none(void)
{
	return uxp_fail(ENOSYS, "rdma: resolver pmix: this plugin was built without PMIx headers "
			"(libpmix-dev)");
}

static int pmix_describe(char *buf, size_t len)
{
	snprintf(buf, len, "pmix: this plugin was built without PMIx headers (libpmix-dev)");
	return pmix_none();
}

static int pmix_assign_node(void)
{
	return pmix_none();
}

static int pmix_publish(unsigned node, pid_t pid, const void *addr, size_t len, const char *prov)
{
	(void)node, (void)pid, (void)addr, (void)len, (void)prov;
	return pmix_none();
}

static int pmix_lookup(unsigned node, pid_t pid, struct rr_entry *e)
{
	(void)node, (void)pid, (void)e;
	return pmix_none();
}

static void pmix_unpublish(void)
{
}

#define pmix_fork_child NULL
#endif

const struct rr_ops rr_pmix_ops = {
	.name = "pmix",
	.describe = pmix_describe,
	.assign_node = pmix_assign_node,
	.publish = pmix_publish,
	.lookup = pmix_lookup,
	.unpublish = pmix_unpublish,
	.fork_child = pmix_fork_child,
};
