/*
 * xpmem-info - what uxpmem can do in this process, in the spirit of
 * fi_info / ucx_info: library version, every transport and why it is or
 * is not usable, the selected one, this node's id and the transport serving
 * other nodes, the export level (uxpmem_export_level)
 * and what an importer gets for each kind of memory, the shm transport's
 * userfaultfd detail, and the environment that influences all this.
 *
 * Uses only the public API (xpmem.h, uxpmem.h) plus kernel probes of its
 * own, so what it reports is what an application would get.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "arena.h" /* ABI of the preload's query function, no link dependency */

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
/* Newer than some installed kernel headers; values are kernel ABI. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UXP_PKGLIBDIR
#define UXP_PKGLIBDIR "/usr/local/lib/uxpmem"
#endif

#define ARENA_SYMBOL UXPMEM_ARENA_QUERY_SYMBOL
#define CAP_SYS_PTRACE_BIT 19

static const struct envvar {
	const char *name;
	const char *what;
} envvars[] = {
	{ "XPMEM_TRANSPORT", "transport to use: kernel, shm, a plugin name, or auto (default)" },
	{ "XPMEM_LOG_LEVEL", "none|error|warn|info|debug|trace (default error)" },
	{ "XPMEM_LOG_FILE", "log destination (default stderr)" },
	{ "XPMEM_KERNEL_DEVICE", "kernel transport device (default " XPMEM_DEV_PATH ")" },
	{ "XPMEM_KERNEL_NOTICE_TIMEOUT_MS", "how long xpmem_remove waits for a full importer (default 1000)" },
	{ "XPMEM_PLUGIN_DIR", "where transport plugins are searched" },
	{ "XPMEM_NODE_ID", "this node's id in segids (1..32767; default 0: local only)" },
	{ "XPMEM_RESOLVER", "dir:PATH or pmix: where processes publish their addresses for other nodes" },
	{ "XPMEM_PMIX_LIBRARY", "PMIx client library XPMEM_RESOLVER=pmix opens (default libpmix.so.2)" },
	{ "XPMEM_RDMA_TIMEOUT_MS", "remote requests' bound; a silent exporter counts as exited after it (default 5000)" },
	{ "XPMEM_RDMA_EAGER_MAX", "remote attachments below this are filled at attach, others on fault (default 256k)" },
	{ "FI_PROVIDER", "libfabric provider of the remote transport (default: libfabric's choice)" },
	{ "XPMEM_RDMA_BACKEND", "remote transport's wire: libfabric or verbs (default: libfabric if built)" },
	{ "XPMEM_VERBS_DEVICE", "RDMA device of the verbs back end (default: first with an active port)" },
	{ "XPMEM_VERBS_PORT", "its port (default: the first active one)" },
	{ "XPMEM_VERBS_ADDR", "IP address the verbs back end listens on (default: the port's netdev's)" },
	{ "XPMEM_SHM_SOCKET_DIR", "shm sockets as files here (default: abstract namespace)" },
	{ "XPMEM_ARENA_SIZE", "arena reservation of the preload (default 64g)" },
	{ "XPMEM_ARENA_LIB", "arena preload used by xpmem-run and xpmem-bench" },
	{ "XPMEM_SHM_REVOKE_TIMEOUT_MS", "how long xpmem_remove waits for importers' ACKs" },
	{ "XPMEM_SHM_TIMEOUT_MS", "how long a request (xpmem_get) waits for its reply (default 10000)" },
	{ "XPMEM_USERFAULTFD", "0: no conversion or re-resolve (export level ARENA; e.g. under valgrind)" },
	{ "XPMEM_SHM_SWEEP_MS", "period of the check of exported SysV/shared-file mappings (without xpmem-run)" },
	{ "XPMEM_FREEZE_SIGNAL", "signal that stops threads to convert .data (0: never; .data a hole)" },
	{ "XPMEM_FREEZE_TIMEOUT_MS", "how long threads may take to stop for a .data conversion (default 1000)" },
	{ "LD_PRELOAD", "libuxpmem-arena.so here: heap shared from birth (required at export level ARENA)" },
};

/* ---- probes ------------------------------------------------------------ */

struct uffd_caps {
	const char *level;       /* "full", "user-mode-only", "none" */
	char why[256];           /* how it was obtained, or why not */
	unsigned long long features; /* UFFDIO_API answer, 0 if unknown */
	bool via_dev;            /* obtained through /dev/userfaultfd */
};

struct shm_caps {
	int level;               /* uxpmem_export_level(), -1: no transport */
	char level_why[256];
	const char *transport;   /* selected transport, NULL if none */
	struct uffd_caps uffd;
	bool arena;              /* preload active in this process */
	struct uxpmem_arena_v1 range; /* its range, if the query answers */
	int arena_query;         /* the query's return value */
	const char *arena_lib;   /* which .so xpmem-run would preload */
	const char *arena_lib_src;
	struct utsname uts;
};

static bool has_cap(int bit)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long eff = 0;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> bit) & 1;
}

static int read_sysctl_int(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Handshake so that the answer is what a real user would get. */
static unsigned long long uffd_features(int fd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	unsigned long long f = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
	close(fd);
	return f;
}

static const char *full_reason(void)
{
	if (geteuid() == 0)
		return "root";
	if (has_cap(CAP_SYS_PTRACE_BIT))
		return "CAP_SYS_PTRACE";
	if (read_sysctl_int("/proc/sys/vm/unprivileged_userfaultfd") == 1)
		return "vm.unprivileged_userfaultfd=1";
	return "userfaultfd() allowed";
}

/* full: kernel-mode faults are handled too (root, CAP_SYS_PTRACE,
 * vm.unprivileged_userfaultfd=1, or /dev/userfaultfd); user-mode-only:
 * Linux >= 5.11 without privilege; none otherwise.  Probed for real. */
static void probe_uffd(struct uffd_caps *c)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd >= 0) {
		c->level = "full";
		snprintf(c->why, sizeof(c->why), "userfaultfd() works (%s)", full_reason());
		c->features = uffd_features(fd);
		return;
	}
	int e_plain = errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int e_dev = errno;
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		e_dev = errno;
		close(dev);
		if (fd >= 0) {
			c->level = "full";
			c->via_dev = true;
			snprintf(c->why, sizeof(c->why),
				 "through /dev/userfaultfd (userfaultfd(): %s)", strerror(e_plain));
			c->features = uffd_features(fd);
			return;
		}
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		c->level = "user-mode-only";
		snprintf(c->why, sizeof(c->why),
			 "UFFD_USER_MODE_ONLY only: userfaultfd(): %s, /dev/userfaultfd: %s; "
			 "kernel-mode accesses to frozen pages fail with EFAULT",
			 strerror(e_plain), strerror(e_dev));
		c->features = uffd_features(fd);
		return;
	}
	int e_umo = errno;
	c->level = "none";
	snprintf(c->why, sizeof(c->why), "userfaultfd(): %s; /dev/userfaultfd: %s; "
		 "UFFD_USER_MODE_ONLY: %s%s", strerror(e_plain), strerror(e_dev), strerror(e_umo),
		 e_umo == EINVAL ? " (needs Linux >= 5.11)" : "");
}

/* Same order as xpmem-run: XPMEM_ARENA_LIB, installed, build tree. */
static void find_arena_lib(struct shm_caps *s)
{
	const char *env = getenv("XPMEM_ARENA_LIB");
	if (env && *env) {
		s->arena_lib = env;
		s->arena_lib_src = access(env, R_OK) == 0 ? "XPMEM_ARENA_LIB" :
			"XPMEM_ARENA_LIB, not readable";
		return;
	}
	s->arena_lib = UXP_PKGLIBDIR "/libuxpmem-arena.so";
	s->arena_lib_src = "installed";
#ifdef UXP_ARENA_BUILD_LIB
	if (access(s->arena_lib, R_OK) != 0 && access(UXP_ARENA_BUILD_LIB, R_OK) == 0) {
		s->arena_lib = UXP_ARENA_BUILD_LIB;
		s->arena_lib_src = "build tree";
		return;
	}
#endif
	if (access(s->arena_lib, R_OK) != 0)
		s->arena_lib_src = "not found";
}

static void probe_shm(struct shm_caps *s)
{
	memset(s, 0, sizeof(*s));
	probe_uffd(&s->uffd);
	uxpmem_arena_query_v1_fn query;
	*(void **)&query = dlsym(RTLD_DEFAULT, ARENA_SYMBOL);
	s->arena = query != NULL;
	s->arena_query = query ? query(&s->range) : -ENOENT;
	find_arena_lib(s);
	uname(&s->uts);
	s->level = uxpmem_export_level(s->level_why, sizeof(s->level_why));
	if (s->level < 0)
		snprintf(s->level_why, sizeof(s->level_why), "no usable transport: %s",
			 strerror(errno));
	s->transport = uxpmem_transport_name();
}

static const char *level_name(int level)
{
	switch (level) {
	case UXPMEM_EXPORT_FULL: return "FULL";
	case UXPMEM_EXPORT_USER: return "USER";
	case UXPMEM_EXPORT_ARENA: return "ARENA";
	}
	return "none";
}

enum kind_class {
	K_PRIVATE,               /* private anonymous: converted on attach */
	K_FILE_PRIVATE,          /* file-backed private: converted with every thread stopped */
	K_SHARED_FD,             /* the application's shared file: by descriptor */
	K_SHARED_SYSV,           /* SysV shm: by descriptor, or by id */
};

static const struct memkind {
	const char *name;
	bool arena;              /* served from the arena when preloaded */
	enum kind_class cls;
} memkinds[] = {
	{ "heap", true, K_PRIVATE },
	{ "stack", false, K_PRIVATE },
	{ "anonymous mmap", true, K_PRIVATE },
	{ ".bss", false, K_PRIVATE },
	{ ".data", false, K_FILE_PRIVATE },
	{ "SysV shm", false, K_SHARED_SYSV },
	{ "MAP_SHARED, fd held", false, K_SHARED_FD },
	{ "MAP_SHARED|MAP_ANONYMOUS", false, K_SHARED_FD }, /* or a file no fd holds */
};

/* /proc/self/map_files opens (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE):
 * every shared mapping can be given by descriptor. */
static bool map_files_usable(void)
{
	char path[80];
	void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + 4096);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	munmap(p, 4096);
	return fd >= 0;
};

/* What an importer gets for exported memory of one kind, now, with the
 * selected transport at its export level. */
static const char *kind_access(const struct shm_caps *s, const struct memkind *k)
{
	if (s->level < 0)
		return "nothing (no usable transport)";
	if (s->transport && strcmp(s->transport, "shm") != 0)
		return "shared (kernel transport)";
	if (k->arena && s->arena)
		return "shared (arena)";
	const char *fs = getenv("XPMEM_FREEZE_SIGNAL");
	switch (k->cls) {
	case K_FILE_PRIVATE:
		if (s->level < UXPMEM_EXPORT_USER)
			break;
		return fs && !strcmp(fs, "0") ? "hole (file-backed private, XPMEM_FREEZE_SIGNAL=0)"
					      : "shared (converted on attach, threads stopped)";
	case K_SHARED_SYSV:
		return "shared in place (same pages; by descriptor, or by SysV id: the importer shmats)";
	case K_SHARED_FD:
		if (map_files_usable())
			return "shared in place (same pages, descriptor from /proc/self/map_files)";
		return strstr(k->name, "fd held")
			       ? "shared in place (same pages, the descriptor the application holds)"
			       : "hole (unprivileged: no descriptor to be had; see xpmem(7))";
	case K_PRIVATE:
		break;
	}
	if (s->level >= UXPMEM_EXPORT_USER)
		return "shared (converted on attach)";
	return k->arena ? "hole (export level ARENA: run the exporter under xpmem-run)" :
		"hole (export level ARENA)";
}

/* ---- text output --------------------------------------------------------- */

static void print_version_text(bool verbose)
{
	unsigned v = UXPMEM_REFERENCE_VERSION;
	printf("uxpmem version:       %s\n", uxpmem_version_string());
	printf("compatible with:      XPMEM %u.%u.%u (reference API level %#010x)\n",
	       (v >> 16) & 0xff, (v >> 12) & 0xf, v & 0xfff, v);
	if (verbose) {
		int xv = xpmem_version();
		if (xv < 0)
			printf("xpmem_version():      -1 (%s)\n", strerror(errno));
		else
			printf("xpmem_version():      %#x\n", (unsigned)xv);
	}
}

static void print_transports_text(bool verbose)
{
	struct uxpmem_transport_info ti;
	printf("\ntransports:\n");
	for (unsigned i = 0; uxpmem_transport_query(i, &ti) == 0; i++) {
		printf("  %-8s usable: %-3s  %s\n", ti.name, ti.usable ? "yes" : "no",
		       ti.why[0] ? ti.why : "-");
		if (verbose)
			printf("  %-8s %s\n", "", ti.description);
	}
	errno = 0;
	const char *sel = uxpmem_transport_name();
	if (sel)
		printf("selected transport:   %s\n", sel);
	else
		printf("selected transport:   none (%s%s%s)\n", strerror(errno ? errno : ENODEV),
		       getenv("XPMEM_TRANSPORT") ? "; XPMEM_TRANSPORT=" : "",
		       getenv("XPMEM_TRANSPORT") ? getenv("XPMEM_TRANSPORT") : "");
}

/* The node id and why it is what it is. */
static const char *node_id_source(int node)
{
	if (node < 0)
		return strerror(errno);
	if (getenv("XPMEM_NODE_ID") && *getenv("XPMEM_NODE_ID"))
		return "XPMEM_NODE_ID";
	return node ? "set by a resolver" : "local only: XPMEM_NODE_ID unset, no resolver";
}

/* The provider a remote transport names in its why ("provider NAME,"). */
static const char *remote_provider(const struct uxpmem_transport_info *ti, char *buf, size_t len)
{
	const char *p = ti->name ? strstr(ti->why, "provider ") : NULL;
	if (!p)
		return NULL;
	snprintf(buf, len, "%s", p + 9);
	buf[strcspn(buf, ", ")] = '\0';
	return buf;
}

/* The resolver as the remote transport describes it in its why ("resolver
 * TEXT" or "no resolver: TEXT"), else from XPMEM_RESOLVER. */
static const char *resolver_text(const struct uxpmem_transport_info *ti, char *buf, size_t len)
{
	const char *p = ti->why[0] ? strstr(ti->why, "resolver ") : NULL;
	const char *q = ti->why[0] ? strstr(ti->why, "no resolver: ") : NULL;
	if (q || p) {
		snprintf(buf, len, "%s", q ? q + 13 : p + 9);
		return buf;
	}
	const char *r = getenv("XPMEM_RESOLVER");
	return r && *r ? r : "none (XPMEM_RESOLVER unset: nothing is reachable from other nodes)";
}

static void print_remote_text(bool verbose)
{
	char prov[64];
	errno = 0;
	int node = uxpmem_node_id();
	printf("node id:              %d (%s)\n", node, node_id_source(node));
	struct uxpmem_transport_info ti;
	if (uxpmem_remote_transport_query(&ti) == 0)
		printf("remote transport:     %s usable: %s  %s\n", ti.name, ti.usable ? "yes" : "no",
		       ti.why[0] ? ti.why : "-");
	else
		printf("remote transport:     none (%s)\n", ti.why[0] ? ti.why : strerror(errno));
	const char *pv = remote_provider(&ti, prov, sizeof(prov));
	printf("provider:             %s\n", pv ? pv : "none");
	char res[300];
	printf("resolver:             %s\n", resolver_text(&ti, res, sizeof(res)));
	if (verbose && ti.name)
		printf("                      %s\n", ti.description);
}

static void print_shm_text(const struct shm_caps *s, bool verbose)
{
	printf("\nexport capabilities (euid %u, Linux %s):\n", (unsigned)geteuid(),
	       s->uts.release);
	printf("  export level:       %s: %s\n", level_name(s->level), s->level_why);
	if (verbose)
		printf("  userfaultfd probe:  %s (%s)\n", s->uffd.level, s->uffd.why);
	if (verbose && s->uffd.features) {
		unsigned long long f = s->uffd.features;
		printf("  uffd features:      %#llx: write-protect %s, WP unpopulated %s, "
		       "unmap/remap/remove events %s\n", f,
		       f & UFFD_FEATURE_PAGEFAULT_FLAG_WP ? "yes" : "no",
		       f & UFFD_FEATURE_WP_UNPOPULATED ? "yes" : "no (Linux < 6.4)",
		       (f & (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
			     UFFD_FEATURE_EVENT_REMOVE)) ==
		       (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
			UFFD_FEATURE_EVENT_REMOVE) ? "yes" : "no");
	}
	printf("  arena preload:      %s\n", s->arena ? "active (" ARENA_SYMBOL " found)" :
	       "not active in this process (xpmem-run; required only at export level ARENA)");
	if (verbose && s->arena && s->arena_query == 0)
		printf("  arena range:        %#llx-%#llx (%llu GiB), memfd %d, generation %u\n",
		       (unsigned long long)s->range.base,
		       (unsigned long long)(s->range.base + s->range.size),
		       (unsigned long long)(s->range.size >> 30), s->range.fd, s->range.generation);
	else if (verbose && s->arena)
		printf("  arena range:        none (%s: %s)\n", ARENA_SYMBOL, strerror(-s->arena_query));
	if (verbose)
		printf("  arena library:      %s (%s)\n", s->arena_lib, s->arena_lib_src);
	printf("  exported memory, what an importer gets now:\n");
	for (size_t i = 0; i < sizeof(memkinds) / sizeof(memkinds[0]); i++)
		printf("    %-24s  %s\n", memkinds[i].name, kind_access(s, &memkinds[i]));
}

static void print_env_text(bool verbose)
{
	printf("\nenvironment:\n");
	for (size_t i = 0; i < sizeof(envvars) / sizeof(envvars[0]); i++) {
		const char *v = getenv(envvars[i].name);
		printf("  %-30s %s\n", envvars[i].name, v ? v : "(unset)");
		if (verbose)
			printf("  %-30s   %s\n", "", envvars[i].what);
	}
}

/* ---- JSON output --------------------------------------------------------- */

static void json_str(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_kv(const char *indent, const char *key, const char *val, bool comma)
{
	printf("%s\"%s\": ", indent, key);
	json_str(val);
	puts(comma ? "," : "");
}

static void print_transports_json(void)
{
	struct uxpmem_transport_info ti;
	printf("  \"transports\": [");
	for (unsigned i = 0; uxpmem_transport_query(i, &ti) == 0; i++) {
		printf("%s\n    {\"name\": ", i ? "," : "");
		json_str(ti.name);
		printf(", \"usable\": %s, \"why\": ", ti.usable ? "true" : "false");
		json_str(ti.why);
		printf(", \"description\": ");
		json_str(ti.description);
		putchar('}');
	}
	printf("\n  ],\n");
	errno = 0;
	const char *sel = uxpmem_transport_name();
	json_kv("  ", "selected_transport", sel, true);
	json_kv("  ", "selection_error", sel ? NULL : strerror(errno ? errno : ENODEV), true);
	int node = uxpmem_node_id();
	printf("  \"node_id\": %d,\n", node);
	json_kv("  ", "node_id_source", node_id_source(node), true);
	struct uxpmem_transport_info rt;
	bool have = uxpmem_remote_transport_query(&rt) == 0;
	printf("  \"remote_transport\": {\"name\": ");
	json_str(rt.name);
	printf(", \"usable\": %s, \"why\": ", have && rt.usable ? "true" : "false");
	json_str(rt.why);
	char prov[64];
	printf(", \"provider\": ");
	json_str(remote_provider(&rt, prov, sizeof(prov)));
	printf("},\n");
	json_kv("  ", "resolver", getenv("XPMEM_RESOLVER"), true);
	char res[300];
	json_kv("  ", "resolver_detail", resolver_text(&rt, res, sizeof(res)), true);
}

static void print_shm_json(const struct shm_caps *s)
{
	printf("  \"shm\": {\n");
	json_kv("    ", "kernel", s->uts.release, true);
	printf("    \"euid\": %u,\n", (unsigned)geteuid());
	printf("    \"export_level\": ");
	json_str(level_name(s->level));
	printf(",\n    \"export_level_value\": %d,\n", s->level);
	json_kv("    ", "export_level_why", s->level_why, true);
	printf("    \"userfaultfd\": {\"level\": ");
	json_str(s->uffd.level);
	printf(", \"why\": ");
	json_str(s->uffd.why);
	printf(", \"via_dev_userfaultfd\": %s, \"features\": %llu},\n",
	       s->uffd.via_dev ? "true" : "false", s->uffd.features);
	printf("    \"arena_preload_active\": %s,\n", s->arena ? "true" : "false");
	if (s->arena && s->arena_query == 0)
		printf("    \"arena\": {\"base\": %llu, \"size\": %llu},\n",
		       (unsigned long long)s->range.base, (unsigned long long)s->range.size);
	else
		printf("    \"arena\": null,\n");
	json_kv("    ", "arena_lib", s->arena_lib, true);
	json_kv("    ", "arena_lib_source", s->arena_lib_src, true);
	printf("    \"memory\": {");
	for (size_t i = 0; i < sizeof(memkinds) / sizeof(memkinds[0]); i++) {
		printf("%s\n      ", i ? "," : "");
		json_str(memkinds[i].name);
		printf(": ");
		json_str(kind_access(s, &memkinds[i]));
	}
	printf("\n    }\n  },\n");
}

static void print_env_json(void)
{
	printf("  \"environment\": {");
	for (size_t i = 0; i < sizeof(envvars) / sizeof(envvars[0]); i++) {
		printf("%s\n    ", i ? "," : "");
		json_str(envvars[i].name);
		printf(": ");
		json_str(getenv(envvars[i].name));
	}
	printf("\n  }\n");
}

static void print_json(const struct shm_caps *s)
{
	unsigned v = UXPMEM_REFERENCE_VERSION;
	char ref[32];
	snprintf(ref, sizeof(ref), "%u.%u.%u", (v >> 16) & 0xff, (v >> 12) & 0xf, v & 0xfff);
	printf("{\n");
	json_kv("  ", "version", uxpmem_version_string(), true);
	json_kv("  ", "reference_version", ref, true);
	int xv = xpmem_version();
	printf("  \"xpmem_version\": %d,\n", xv);
	print_transports_json();
	print_shm_json(s);
	print_env_json();
	printf("}\n");
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "Usage: xpmem-info [-v] [-j|--json] [-h]\n"
		"Show the uxpmem version, the transports and why each is usable or not,\n"
		"the selected transport, its export level and what an importer gets for\n"
		"each kind of memory, and the environment that influences them.\n"
		"  -v, --verbose  more detail (descriptions, userfaultfd probe and features,\n"
		"                 arena library)\n"
		"  -j, --json     machine-readable output\n"
		"  -h, --help     this help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool verbose = false, json = false;
	int c;

	while ((c = getopt_long(argc, argv, "vjh", opts, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "xpmem-info: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	struct shm_caps shm;
	probe_shm(&shm);
	if (json) {
		print_json(&shm);
		return 0;
	}
	print_version_text(verbose);
	print_transports_text(verbose);
	print_remote_text(verbose);
	print_shm_text(&shm, verbose);
	print_env_text(verbose);
	return 0;
}
