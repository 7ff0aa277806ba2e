/* netns.c - the remote transport between two network namespaces joined by
 * a veth pair, as on two nodes: the exporter and the importer
 * (tests/shm/peer, forked into a namespace each) share the host name and
 * the shared-directory resolver, and set neither XPMEM_NODE_ID nor
 * FI_PROVIDER: the resolver must give the two namespaces distinct node
 * ids and libfabric's default provider must reach across the veth.  The
 * whole sequence (attach, read, write, flush, detach, check on the
 * exporter, remove -> SIGBUS + REMOVED) while a segment of the importer's
 * own namespace is attached through shm, a killed exporter -> EXITED, the
 * same with XPMEM_NODE_ID and FI_PROVIDER given, and as nobody
 * (user-mode-only userfaultfd: a system call on a page not fetched yet
 * fails with EFAULT; XPMEM_USERFAULTFD=0 fills eagerly and it works).
 *
 * This program creates the namespaces (ip netns add; the addresses exist
 * only inside them) and the resolver directory, runs the suite in a child
 * and deletes them when it ends, whatever happened, or on SIGINT, SIGTERM,
 * SIGHUP (a SIGKILLed run's are deleted by the next run).  Skips (77)
 * with a message when not root, without ip(8), network namespaces or veth,
 * or without the plugin. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "shmtest.h"

#define SEGSIZE (1024 * 1024) /* above XPMEM_RDMA_EAGER_MAX: filled on fault */
#define SEED 41
#define NS_PREFIX "uxpmem-netns-"

static pid_t main_pid;
static char ns_a[64], ns_b[64], veth_a[16], veth_b[16];
static int ns_made; /* 1: namespaces, 2: and the veth pair */
static char resolver_dir[4096];

/* ---- the namespaces ---------------------------------------------------- */

/* Run "ip ARGS" (a shell command line); its output goes to out. */
static int ip(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[1024], args[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "ip %s 2>&1", args);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void ns_cleanup(void)
{
	char out[512];
	if (getpid() != main_pid || !ns_made)
		return;
	ns_made = 0;
	ip(out, sizeof(out), "netns del %s", ns_a); /* takes the veth pair with it */
	ip(out, sizeof(out), "netns del %s", ns_b);
	if (resolver_dir[0]) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", resolver_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", resolver_dir);
	}
}

static pid_t runner; /* the process running the suite */

/* Check's runner kills its process group on SIGINT/SIGTERM, so this process
 * (which only waits for it) is told too: it cleans up and dies of it. */
static void on_signal(int sig)
{
	if (runner > 0)
		kill(runner, SIGKILL);
	ns_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Namespaces and resolver directories of earlier runs of this program
 * that were killed (SIGKILL leaves them). */
static void reap_stale(void)
{
	char out[8192], *save = NULL;
	glob_t g;
	if (glob("/tmp/uxpmem-netns.*", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			int pid;
			char cmd[4200];
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.gl_pathv[i]);
			if (sscanf(g.gl_pathv[i], "/tmp/uxpmem-netns.%d.", &pid) == 1 && kill(pid, 0) < 0 &&
			    errno == ESRCH && system(cmd) != 0)
				fprintf(stderr, "could not remove %s\n", g.gl_pathv[i]);
		}
		globfree(&g);
	}
	if (ip(out, sizeof(out), "netns list") < 0)
		return;
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int pid;
		char name[64], junk[512];
		if (sscanf(l, NS_PREFIX "%*c-%d", &pid) == 1 && kill(pid, 0) < 0 && errno == ESRCH &&
		    sscanf(l, "%63s", name) == 1)
			ip(junk, sizeof(junk), "netns del %s", name);
	}
}

/* Wait until the IPv6 link-local address the kernel gives dev once its
 * carrier is up (asynchronously) exists and has passed duplicate address
 * detection: until then it is "tentative", and a provider that picks it
 * (tcp does) fails to bind with EADDRNOTAVAIL, which made the first test
 * fail.  A node's addresses are settled before its jobs start; these were
 * made a moment ago.  Nothing to wait for where IPv6 is off. */
static int wait_dad(const char *ns, const char *dev)
{
	char ll[1024], tent[1024];
	if (access("/proc/sys/net/ipv6", F_OK) < 0)
		return 0;
	for (int waited = 0; waited < tu_guard_ms(10000); waited += 50) {
		if (ip(ll, sizeof(ll), "-n %s -6 addr show dev %s scope link", ns, dev) < 0 ||
		    ip(tent, sizeof(tent), "-n %s -6 addr show dev %s tentative", ns, dev) < 0)
			return 0; /* no IPv6 in ip(8) here */
		if (ll[0] && !tent[0])
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "%s in %s: no settled IPv6 link-local address after %d ms: '%s' '%s'\n",
		dev, ns, tu_guard_ms(10000), ll, tent);
	return -1;
}

/* 0, or 77 with the reason printed. */
static int ns_setup(void)
{
	char out[1024];
	if (ip(out, sizeof(out), "-V") < 0) {
		printf("SKIP: no ip(8) (apt-get install iproute2): %s\n", out);
		return 77;
	}
	reap_stale();
	snprintf(ns_a, sizeof(ns_a), NS_PREFIX "a-%d", (int)main_pid);
	snprintf(ns_b, sizeof(ns_b), NS_PREFIX "b-%d", (int)main_pid);
	snprintf(veth_a, sizeof(veth_a), "uxa%d", (int)main_pid);
	snprintf(veth_b, sizeof(veth_b), "uxb%d", (int)main_pid);
	if (ip(out, sizeof(out), "netns add %s", ns_a) < 0) {
		printf("SKIP: cannot create a network namespace (ip netns add): %s\n", out);
		return 77;
	}
	ns_made = 1;
	if (ip(out, sizeof(out), "netns add %s", ns_b) < 0) {
		printf("SKIP: cannot create a second network namespace: %s\n", out);
		return 77;
	}
	if (ip(out, sizeof(out), "link add %s netns %s type veth peer name %s netns %s", veth_a, ns_a,
	       veth_b, ns_b) < 0) {
		printf("SKIP: cannot create a veth pair between the namespaces: %s\n", out);
		return 77;
	}
	ns_made = 2;
	/* loopback stays down: only the veth joins the two */
	if (ip(out, sizeof(out), "-n %s addr add 10.199.0.1/24 dev %s", ns_a, veth_a) < 0 ||
	    ip(out, sizeof(out), "-n %s addr add 10.199.0.2/24 dev %s", ns_b, veth_b) < 0 ||
	    ip(out, sizeof(out), "-n %s link set %s up", ns_a, veth_a) < 0 ||
	    ip(out, sizeof(out), "-n %s link set %s up", ns_b, veth_b) < 0) {
		fprintf(stderr, "configuring the veth pair failed: %s\n", out);
		return 1;
	}
	return wait_dad(ns_a, veth_a) < 0 || wait_dad(ns_b, veth_b) < 0 ? 1 : 0;
}

/* ---- peers in a namespace --------------------------------------------- */

/* tests/shm/peer, forked while this thread is in network namespace ns. */
static void spawn_in(struct peer *p, const char *ns)
{
	char path[128];
	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(self >= 0 && fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_msg(setns(fd, CLONE_NEWNET) == 0, "setns %s: %s", ns, strerror(errno));
	peer_start(p, PEER_PLAIN);
	ck_assert_msg(setns(self, CLONE_NEWNET) == 0, "setns back: %s", strerror(errno));
	close(fd);
	close(self);
}


/* The node id the resolver gave process pid (its entry PATH/ep/NODE.PID). */
static unsigned entry_node(pid_t pid)
{
	char ep[4200];
	snprintf(ep, sizeof(ep), "%s/ep", resolver_dir);
	DIR *d = opendir(ep);
	ck_assert_msg(d != NULL, "%s: %s", ep, strerror(errno));
	unsigned node = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		unsigned n;
		int p;
		char end;
		if (sscanf(e->d_name, "%u.%d%c", &n, &p, &end) == 2 && p == (int)pid)
			node = n;
	}
	closedir(d);
	ck_assert_msg(node, "no resolver entry of pid %d in %s", (int)pid, ep);
	return node;
}

/* Node names in PATH/nodes containing "@net:" (the two namespaces'). */
static int netns_node_names(void)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/nodes", resolver_dir);
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "%s: %s", dir, strerror(errno));
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += strstr(e->d_name, "@net:") != NULL;
	closedir(d);
	return n;
}

struct exporter {
	struct peer p;
	unsigned long addr;
	long long segid;
};

/* In namespace A: SEGSIZE bytes of anonymous memory filled with SEED,
 * made with mode (after dropping to nobody if asked). */
static void export_start(struct exporter *e, const char *mode, bool nobody)
{
	spawn_in(&e->p, ns_a);
	if (nobody)
		ck_assert_int_gt(peer_ok(&e->p, "drop"), 0);
	e->addr = (unsigned long)peer_ok(&e->p, "mmapanon %d", SEGSIZE);
	peer_ok(&e->p, "fill %#lx %d %d", e->addr, SEGSIZE, SEED);
	e->segid = slow_ok("make", slow_cmd(&e->p, "make %#lx %d %s", e->addr, SEGSIZE, mode));
	ck_assert_uint_ne(uxp_id_node(e->segid), 0);
}

/* In namespace B: get and attach [off, off+size). */
static unsigned long import(struct peer *i, bool nobody, long long segid, int flags,
			    long long *apid, long off, long size)
{
	spawn_in(i, ns_b);
	if (nobody)
		ck_assert_int_gt(peer_ok(i, "drop"), 0);
	*apid = slow_ok("get", slow_cmd(i, "get %lld %d", segid, flags));
	ck_assert_uint_eq(uxp_id_node(*apid), uxp_id_node(segid));
	const char *r = slow_cmd(i, "attach %lld %ld %ld 0", *apid, off, size);
	unsigned long at = 0;
	ck_assert_msg(sscanf(r, "ok %li", &at) == 1, "attach: '%s'", r);
	return at;
}

static void check_at(struct peer *p, unsigned long a, long len, int seed, long from)
{
	const char *r = peer_cmd(p, "check %#lx %ld %d %ld", a, len, seed, from / 8);
	ck_assert_msg(!strcmp(r, "ok"), "pid %d: check %#lx+%ld (seed %d): %s", (int)p->pid, a, len,
		      seed, r);
}

/* attach, read, write, flush, detach, check on the exporter, attach again,
 * remove -> REMOVED + SIGBUS, later gets ENOENT. */
static void sequence(void)
{
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600", false);
	unsigned long at = import(&i, false, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	ck_assert_uint_eq(entry_node(e.p.pid), uxp_id_node(e.segid));
	ck_assert_uint_ne(entry_node(i.pid), uxp_id_node(e.segid));
	check_at(&i, at, SEGSIZE, SEED, 0);

	/* a second exporter in the importer's namespace is on its node: its
	 * segment is attached through the local transport (an apid without
	 * node id), at the same time as the remote one */
	struct peer l;
	spawn_in(&l, ns_b);
	unsigned long laddr = (unsigned long)peer_ok(&l, "mmapanon %d", 65536);
	peer_ok(&l, "fill %#lx %d %d", laddr, 65536, SEED + 5);
	long long lseg = slow_ok("make", slow_cmd(&l, "make %#lx %d 0600", laddr, 65536));
	ck_assert_uint_eq(uxp_id_node(lseg), entry_node(i.pid));
	long long lapid = slow_ok("get", slow_cmd(&i, "get %lld %d", lseg, XPMEM_RDWR));
	ck_assert_uint_eq(uxp_id_node(lapid), 0);
	unsigned long lat = 0;
	const char *r = slow_cmd(&i, "attach %lld 0 65536 0", lapid);
	ck_assert_msg(sscanf(r, "ok %li", &lat) == 1, "local attach: '%s'", r);
	check_at(&i, lat, 65536, SEED + 5, 0);
	peer_ok(&i, "fill %#lx 4096 %d", lat, SEED + 6);
	check_at(&l, laddr, 4096, SEED + 6, 0); /* shared memory: no flush */
	check_at(&i, at, SEGSIZE, SEED, 0);
	peer_ok(&i, "detach %#lx", lat);
	peer_ok(&i, "release %lld", lapid);
	peer_ok(&l, "remove %lld", lseg);
	peer_stop(&l);

	/* flush: the exporter sees the stores, and nothing else changed */
	peer_ok(&i, "fill %#lx %d %d", at + 131072, 65536, SEED + 1);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	check_at(&e.p, e.addr + 131072, 65536, SEED + 1, 0);
	check_at(&e.p, e.addr, 131072, SEED, 0);
	check_at(&e.p, e.addr + 196608, SEGSIZE - 196608, SEED, 196608);
	/* detach writes back the importer's stores, not over the exporter's */
	peer_ok(&e.p, "fill %#lx %d %d", e.addr + 786432, 4096, SEED + 2);
	peer_ok(&i, "fill %#lx %d %d", at + 524288, 8192, SEED + 3);
	peer_ok(&i, "detach %#lx", at);
	check_at(&e.p, e.addr + 524288, 8192, SEED + 3, 0);
	check_at(&e.p, e.addr + 786432, 4096, SEED + 2, 0);
	check_at(&e.p, e.addr + 532480, 786432 - 532480, SEED, 532480);

	/* a new attachment shows the exporter's memory as it is now */
	r = slow_cmd(&i, "attach %lld 0 %d 0", apid, SEGSIZE);
	ck_assert_msg(sscanf(r, "ok %li", &at) == 1, "attach again: '%s'", r);
	check_at(&i, at + 786432, 4096, SEED + 2, 0);
	check_at(&i, at + 131072, 65536, SEED + 1, 0);
	check_at(&i, at + 524288, 8192, SEED + 3, 0);

	peer_ok(&i, "revfd");
	peer_ok(&e.p, "remove %lld", e.segid);
	long long v[4];
	r = slow_cmd(&i, "revwait %d", tu_guard_ms(10000));
	ck_assert_msg(sscanf(r, "ok %lld %lld", &v[0], &v[1]) == 2, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_REMOVED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at + 4096), "sig 7"); /* SIGBUS */
	ck_assert_int_eq(peer_err(&i, "get %lld 2", e.segid), ENOENT);
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
	peer_stop(&e.p);
}

/* Each test starts from the same environment (CK_FORK=no runs them in one
 * process): what the peers get is what a test sets.  XPMEM_USERFAULTFD=0
 * (set for valgrind) is this process's, not the native peers'. */
static void reset_env(void)
{
	unsetenv("XPMEM_NODE_ID");
	unsetenv("FI_PROVIDER");
	unsetenv("FI_TCP_IFACE");
	unsetenv("XPMEM_RDMA_TIMEOUT_MS");
	unsetenv("XPMEM_USERFAULTFD");
}

/* No XPMEM_NODE_ID, no FI_PROVIDER: the resolver names the two
 * namespaces apart, libfabric's default provider crosses the veth. */
START_TEST(defaults)
{
	sequence();
	ck_assert_int_eq(netns_node_names(), 2);
}
END_TEST

/* Node ids and provider given explicitly (the shm provider too: one pid
 * namespace and /dev/shm, so it reaches across network namespaces). */
static const char *const given_provider[] = { "tcp;ofi_rxm", "shm" };

START_TEST(ids_and_provider_given)
{
	setenv("FI_PROVIDER", given_provider[_i], 1);
	setenv("XPMEM_NODE_ID", "21", 1);
	struct exporter e;
	export_start(&e, "0600", false);
	ck_assert_uint_eq(uxp_id_node(e.segid), 21);
	setenv("XPMEM_NODE_ID", "22", 1);
	struct peer i;
	long long apid;
	unsigned long at = import(&i, false, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	ck_assert_uint_eq(entry_node(i.pid), 22);
	check_at(&i, at, SEGSIZE, SEED, 0);
	peer_ok(&i, "fill %#lx %d %d", at + 8192, 4096, SEED + 1);
	peer_ok(&i, "detach %#lx", at);
	check_at(&e.p, e.addr + 8192, 4096, SEED + 1, 0);
	check_at(&e.p, e.addr + 12288, SEGSIZE - 12288, SEED, 12288);
	peer_ok(&i, "release %lld", apid);
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&i);
	peer_stop(&e.p);
}
END_TEST

START_TEST(killed_exporter_counts_as_exited)
{
	const int timeout_ms = 1000;
	setenv("XPMEM_RDMA_TIMEOUT_MS", "1000", 1);
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600", false);
	unsigned long at = import(&i, false, e.segid, XPMEM_RDONLY, &apid, 0, 65536);
	check_at(&i, at, 65536, SEED, 0);
	peer_ok(&i, "revfd");
	peer_kill(&e.p);
	long long v[4];
	/* documented bound: the timeout plus a ping interval; the guard scales */
	const char *r = slow_cmd(&i, "revwait %d", tu_guard_ms(timeout_ms * 5 / 4 + 2000));
	ck_assert_msg(sscanf(r, "ok %lld %lld", &v[0], &v[1]) == 2, "revwait: '%s'", r);
	ck_assert_int_eq(v[0], UXPMEM_REVOKE_EXITED);
	ck_assert_int_eq(v[1], apid);
	ck_assert_str_eq(peer_cmd(&i, "rd %#lx", at), "sig 7");
	ck_assert_int_eq(peer_err(&i, "get %lld 2", e.segid), ENOENT);
	peer_ok(&i, "detach %#lx", at);
	peer_stop(&i);
}
END_TEST

/* Exporter and importer as nobody: attach, read, write work; a system
 * call reading a page not fetched yet fails with EFAULT under
 * user-mode-only userfaultfd (works once the page was touched, and with
 * XPMEM_USERFAULTFD=0, which fills the attachment at attach). */
START_TEST(as_nobody)
{
	int full = tu_nobody_full_uffd();
	ck_assert_int_ge(full, 0);
	struct exporter e;
	struct peer i;
	long long apid;
	export_start(&e, "0600", true);
	unsigned long at = import(&i, true, e.segid, XPMEM_RDWR, &apid, 0, SEGSIZE);
	const char *r = slow_cmd(&i, "pipewrite %#lx 4096", at + 524288);
	if (full)
		ck_assert_msg(!strcmp(r, "ok 4096"), "full userfaultfd: write(pipe, unfetched) gave '%s'", r);
	else
		ck_assert_msg(atoi(r + 4) == EFAULT && !strncmp(r, "err ", 4),
			      "user-mode-only userfaultfd: write(pipe, unfetched page) gave '%s', "
			      "want the documented 'err %d' (EFAULT)", r, EFAULT);
	check_at(&i, at + 524288, 4096, SEED, 524288); /* a load fetches it */
	ck_assert_str_eq(slow_cmd(&i, "pipewrite %#lx 4096", at + 524288), "ok 4096");
	check_at(&i, at, SEGSIZE, SEED, 0);
	peer_ok(&i, "fill %#lx %d %d", at + 4096, 4096, SEED + 1);
	peer_ok(&i, "flush %#lx %d", at, SEGSIZE);
	check_at(&e.p, e.addr + 4096, 4096, SEED + 1, 0);
	peer_ok(&i, "detach %#lx", at);

	/* XPMEM_USERFAULTFD=0: filled at attach, system calls see the data */
	struct peer j;
	setenv("XPMEM_USERFAULTFD", "0", 1);
	at = import(&j, true, e.segid, XPMEM_RDONLY, &apid, 0, SEGSIZE);
	ck_assert_str_eq(slow_cmd(&j, "pipewrite %#lx 4096", at + 786432), "ok 4096");
	check_at(&j, at + 4096, 4096, SEED + 1, 0);
	peer_ok(&j, "detach %#lx", at);
	/* removed while its importers live (they get REMOVED) */
	peer_ok(&e.p, "remove %lld", e.segid);
	peer_stop(&j);
	peer_stop(&i);
	peer_stop(&e.p);
}
END_TEST

int main(void)
{
	char plugin[4096], path[4200];
	main_pid = getpid();
	st_init();
	tu_builddir_path("transports/rdma/.libs", plugin, sizeof(plugin));
	snprintf(path, sizeof(path), "%s/libuxpmem-rdma.so", plugin);
	if (access(path, R_OK) != 0) {
		printf("SKIP: the rdma plugin is not built (%s): configure found no libfabric "
		       "(apt-get install libfabric-dev)\n", path);
		return 77;
	}
	if (geteuid() != 0) {
		printf("SKIP: network namespaces and a veth pair need root\n");
		return 77;
	}
	atexit(ns_cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	int ret = ns_setup();
	if (ret)
		return ret;
	/* /tmp: nobody must reach it (the as_nobody case) */
	snprintf(resolver_dir, sizeof(resolver_dir), "/tmp/uxpmem-netns.%d.XXXXXX", (int)main_pid);
	if (!mkdtemp(resolver_dir) || chmod(resolver_dir, 01777) < 0) {
		perror(resolver_dir);
		resolver_dir[0] = '\0';
		return 1;
	}
	snprintf(path, sizeof(path), "dir:%s", resolver_dir);
	setenv("XPMEM_RESOLVER", path, 1);
	setenv("XPMEM_PLUGIN_DIR", plugin, 1);

	/* the suite runs in a child; this process deletes the namespaces
	 * whatever becomes of it */
	fflush(stdout);
	runner = fork();
	if (runner < 0) {
		perror("fork");
		return 1;
	}
	if (runner == 0) {
		Suite *s = suite_create("netns");
		TCase *tc = tcase_create("veth");
		tcase_set_timeout(tc, tu_guard_s(120));
		tcase_add_checked_fixture(tc, reset_env, NULL);
		tcase_add_test(tc, defaults);
		tcase_add_loop_test(tc, ids_and_provider_given, 0, 2);
		tcase_add_test(tc, killed_exporter_counts_as_exited);
		tcase_add_test(tc, as_nobody);
		suite_add_tcase(s, tc);
		exit(st_run(s));
	}
	int st;
	while (waitpid(runner, &st, 0) < 0 && errno == EINTR)
		;
	runner = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
