/* resolver.c - XPMEM_RESOLVER=dir:PATH, a directory shared by the job's
 * nodes (a shared file system, or one directory for processes of one host):
 *
 *   PATH/ep/NODE.PID    a process's endpoint: provider and address (hex),
 *                       written under a temporary name and renamed (atomic);
 *                       its owner uid/gid is what the resolver attests about
 *                       the process (the exporter's permission check)
 *   PATH/nodes/NAME     the node id of node NAME: the host name, followed
 *                       by @net:INODE and @pid:INODE when this process's
 *                       network or pid namespace is not the host's initial
 *                       one (see node_name)
 *   PATH/ids/N          claims node id N (created O_EXCL: one node wins)
 *
 * Entries are removed at exit; a killed process's entry stays, and gets
 * to it fail once the exporter stays silent (see importer.c). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rdma.h"

static char published[4400]; /* our entry, to remove at exit */
static pid_t published_by;

/* PATH of XPMEM_RESOLVER=dir:PATH, or NULL (logged). */
static const char *dir_path(void)
{
	const char *r = uxp_env("XPMEM_RESOLVER");
	if (!r) {
		uxp_debug("rdma: no resolver (XPMEM_RESOLVER unset)");
		return NULL;
	}
	if (strncmp(r, "dir:", 4) != 0 || !r[4]) {
		uxp_debug("rdma: XPMEM_RESOLVER=%s: only dir:PATH is supported", r);
		return NULL;
	}
	return r + 4;
}

static int dir_describe(char *buf, size_t len)
{
	const char *d = dir_path();
	if (!d) {
		snprintf(buf, len, "%s", uxp_env("XPMEM_RESOLVER") ?
			 "XPMEM_RESOLVER is not dir:PATH" : "none (XPMEM_RESOLVER unset)");
		return -ENOENT;
	}
	snprintf(buf, len, "dir:%s", d);
	return access(d, R_OK | W_OK | X_OK) == 0 ? 0 : -errno;
}

/* PATH/sub exists, writable by every process of the job (sticky, like /tmp). */
static int subdir(const char *d, const char *sub, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", d, sub);
	if (mkdir(out, 01777) == 0)
		chmod(out, 01777); /* whatever the umask */
	else if (errno != EEXIST)
		return uxp_fail(errno, "rdma: resolver: mkdir %s: %s", out, strerror(errno));
	return 0;
}

/* Write text to path atomically (temporary file + rename). */
static int write_atomic(const char *path, const char *text, bool replace)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return uxp_fail(errno, "rdma: resolver: %s: %s", tmp, strerror(errno));
	size_t n = strlen(text);
	int ok = write(fd, text, n) == (ssize_t)n;
	ok = close(fd) == 0 && ok;
	/* rename replaces; link does not (the first writer wins) */
	int ret = !ok ? -EIO : replace ? (rename(tmp, path) ? -errno : 0) : (link(tmp, path) ? -errno : 0);
	if (ret < 0 || !replace)
		unlink(tmp);
	if (ret < 0 && ret != -EEXIST)
		uxp_debug("rdma: resolver: writing %s: %s", path, strerror(-ret));
	return ret;
}

static long read_long(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Inode numbers of the host's initial namespaces (include/linux/proc_ns.h):
 * the pid one's is fixed since Linux 3.8, the network one's since 6.18
 * (before, it is numbered like any other: such a kernel names every node
 * with its network namespace, consistently). */
#define INIT_PID_NS_INO 0xEFFFFFFCUL
#define INIT_NET_NS_INO 0xEFFFFFF9UL

/* This node's name: what the local transport reaches.  Processes of one
 * host in different network namespaces cannot reach each other's abstract
 * Unix sockets (the shm transport), and in different pid namespaces their
 * pids (in every segid) mean different processes: each (host, network
 * namespace, pid namespace) is a node of its own.  The name depends on
 * nothing else (not on privilege), so every process of a namespace finds
 * the same one; without /proc/self/ns it is the host name alone (logged). */
static int node_name(char *out, size_t len)
{
	char host[256];
	if (gethostname(host, sizeof(host)) < 0 || !host[0] || strchr(host, '/') || host[0] == '.')
		return uxp_fail(EINVAL, "rdma: resolver: no usable host name");
	size_t n = (size_t)snprintf(out, len, "%s", host);
	static const struct { const char *ns; unsigned long init; } kinds[] = {
		{ "net", INIT_NET_NS_INO }, { "pid", INIT_PID_NS_INO } };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && n < len; i++) {
		char path[64];
		struct stat st;
		snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i].ns);
		if (stat(path, &st) < 0) {
			uxp_debug("rdma: resolver: %s: %s: the node is named by its host name %s alone "
				  "(processes of other %s namespaces of this host get its id too)",
				  path, strerror(errno), host, kinds[i].ns);
			continue;
		}
		if ((unsigned long)st.st_ino != kinds[i].init)
			n += (size_t)snprintf(out + n, len - n, "@%s:%lu", kinds[i].ns,
					      (unsigned long)st.st_ino);
	}
	return n < len ? 0 : uxp_fail(ENAMETOOLONG, "rdma: resolver: node name of %s too long", host);
}

/* The id of this node: the one recorded, else the first free one claimed. */
static int assign(const char *d, unsigned *node)
{
	char host[512], nodes[4096], ids[4096], path[4700];
	int ret = node_name(host, sizeof(host));
	if (ret < 0)
		return ret;
	ret = subdir(d, "nodes", nodes, sizeof(nodes));
	if (ret == 0)
		ret = subdir(d, "ids", ids, sizeof(ids));
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/%s", nodes, host);
	for (unsigned id = 1; id <= UXP_NODE_MAX; id++) {
		long have = read_long(path);
		if (have > 0 && have <= UXP_NODE_MAX) {
			*node = (unsigned)have;
			uxp_debug("rdma: resolver: node %s has id %ld (%s)", host, have, path);
			return 0;
		}
		char claim[4400], text[32];
		snprintf(claim, sizeof(claim), "%s/%u", ids, id);
		int fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			if (errno != EEXIST)
				return uxp_fail(errno, "rdma: resolver: %s: %s", claim, strerror(errno));
			continue;
		}
		ret = write(fd, host, strlen(host)) < 0 ? -errno : 0;
		close(fd);
		snprintf(text, sizeof(text), "%u\n", id);
		ret = ret ? ret : write_atomic(path, text, false);
		if (ret == -EEXIST) /* another process of this node won: take its id */
			unlink(claim), id = 0;
		else if (ret < 0)
			return ret;
	}
	return uxp_fail(ENOSPC, "rdma: resolver: every node id of %s is taken", d);
}

/* A node id set by XPMEM_NODE_ID is claimed too, so the resolver gives it
 * to no other node; a claim by another node is warned about (the two nodes'
 * segids would be taken for local ones by each other). */
static void claim_given(const char *d, unsigned node)
{
	char name[512], ids[4096], claim[4700], have[512] = "";
	if (node_name(name, sizeof(name)) < 0 || subdir(d, "ids", ids, sizeof(ids)) < 0)
		return;
	snprintf(claim, sizeof(claim), "%s/%u", ids, node);
	int fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, name, strlen(name)) < 0)
			uxp_debug("rdma: resolver: %s: %s", claim, strerror(errno));
		close(fd);
		return;
	}
	if (errno == EEXIST && (fd = open(claim, O_RDONLY | O_CLOEXEC)) >= 0) {
		ssize_t n = read(fd, have, sizeof(have) - 1);
		close(fd);
		have[n > 0 ? n : 0] = '\0';
		if (n > 0 && strcmp(have, name) != 0)
			uxp_warn("rdma: resolver: XPMEM_NODE_ID=%u is also node %s's id (%s); this is "
				 "node %s: each takes the other's segids for its own", node, have,
				 claim, name);
	}
}

static int dir_assign_node(void)
{
	const char *d = dir_path();
	if (d && uxp_node_id())
		claim_given(d, uxp_node_id());
	if (!d || uxp_node_id())
		return 0;
	unsigned node = 0;
	int ret = assign(d, &node);
	if (ret == 0)
		ret = uxp_node_id_set(node);
	return ret;
}

static int dir_publish(unsigned node, pid_t pid, const void *addr, size_t len,
		       const char *prov)
{
	const char *d = dir_path();
	char ep[4096], path[4400], text[1024];
	if (!d)
		return uxp_fail(ENOENT, "rdma: nothing publishes this process's address: set "
				"XPMEM_RESOLVER=dir:PATH");
	int ret = subdir(d, "ep", ep, sizeof(ep));
	if (ret < 0)
		return ret;
	size_t n = (size_t)snprintf(text, sizeof(text), "uxpmem-endpoint 1\nprovider %s\naddress ",
				    prov);
	for (size_t i = 0; i < len; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", ((const unsigned char *)addr)[i]);
	snprintf(text + n, sizeof(text) - n, "\n");
	snprintf(path, sizeof(path), "%s/%u.%d", ep, node, (int)pid);
	ret = write_atomic(path, text, true);
	if (ret == 0) {
		snprintf(published, sizeof(published), "%s", path);
		published_by = pid;
	}
	return ret;
}

static int parse(const char *text, struct rr_entry *e)
{
	const char *p = strstr(text, "\nprovider "), *a = strstr(text, "\naddress ");
	if (strncmp(text, "uxpmem-endpoint 1\n", 18) != 0 || !p || !a)
		return -EPROTO;
	sscanf(p + 10, "%63s", e->prov);
	a += 9;
	for (e->addrlen = 0; e->addrlen < RF_ADDR_MAX; e->addrlen++) {
		unsigned b;
		if (sscanf(a + 2 * e->addrlen, "%2x", &b) != 1)
			break;
		e->addr[e->addrlen] = (char)b;
	}
	return e->addrlen ? 0 : -EPROTO;
}

static int dir_lookup(unsigned node, pid_t pid, struct rr_entry *e)
{
	const char *d = dir_path();
	char path[4400], text[1024];
	if (!d)
		return uxp_fail(ENOENT, "rdma: no resolver to find node %u pid %d (XPMEM_RESOLVER)",
				node, (int)pid);
	snprintf(path, sizeof(path), "%s/ep/%u.%d", d, node, (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return uxp_fail(ENOENT, "rdma: resolver: no process %d of node %u published (%s: %s)",
				(int)pid, node, path, strerror(errno));
	struct stat st;
	ssize_t n = fstat(fd, &st) == 0 ? read(fd, text, sizeof(text) - 1) : -1;
	close(fd);
	memset(e, 0, sizeof(*e));
	text[n > 0 ? n : 0] = '\0';
	if (n <= 0 || parse(text, e) < 0)
		return uxp_fail(EPROTO, "rdma: resolver: %s is not an endpoint entry", path);
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	return 0;
}

static void dir_unpublish(void)
{
	if (published[0] && published_by == getpid())
		unlink(published);
	published[0] = '\0';
}

const struct rr_ops rr_dir_ops = {
	.name = "dir",
	.describe = dir_describe,
	.assign_node = dir_assign_node,
	.publish = dir_publish,
	.lookup = dir_lookup,
	.unpublish = dir_unpublish,
};
