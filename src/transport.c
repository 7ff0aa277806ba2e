/* transport.c - the transport registry, the per-process selection of the
 * local transport and the lazy loading of the remote one.
 *
 * Built-in transports come from transports/builtin.c; others are plugins:
 * $XPMEM_PLUGIN_DIR (default PKGLIBDIR/transports, or the build tree's
 * transports/DIR/.libs when this library is uninstalled)/libuxpmem-NAME.so
 * exporting UXP_TRANSPORT_SYMBOL.  The core knows no transport by name except through
 * this table and XPMEM_TRANSPORT: the remote transport is whichever plugin
 * says it serves other nodes (scope UXP_SCOPE_REMOTE).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "uxp.h"

#ifndef UXP_PLUGIN_DIR
#define UXP_PLUGIN_DIR "/usr/local/lib/uxpmem/transports"
#endif
#define MAX_PLUGINS 16

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct uxp_transport *plugins[MAX_PLUGINS];
static unsigned nplugins;
static bool plugins_scanned;

/* The build tree this library was loaded from, if it is not installed:
 * libtool puts an uninstalled libxpmem.so.0 in BUILD/.libs/ and each plugin
 * in BUILD/transports/DIR/.libs/.  A program run against the build tree
 * (LD_LIBRARY_PATH=BUILD/.libs, the tests' libtool wrappers) then gets that
 * tree's plugins, which match it, not installed ones of another build. */
static char build_tree[4096];
static pthread_once_t build_tree_once = PTHREAD_ONCE_INIT;

static void find_build_tree(void)
{
	Dl_info info;
	if (!dladdr((void *)find_build_tree, &info) || !info.dli_fname)
		return;
	const char *slash = strrchr(info.dli_fname, '/');
	size_t n = slash ? (size_t)(slash - info.dli_fname) : 0;
	if (n < 6 || n - 6 >= sizeof(build_tree) - 16 || strncmp(slash - 6, "/.libs", 6) != 0)
		return;
	char transports[sizeof(build_tree)];
	snprintf(transports, sizeof(transports), "%.*s/transports", (int)(n - 6), info.dli_fname);
	struct stat st;
	if (stat(transports, &st) == 0 && S_ISDIR(st.st_mode)) {
		memcpy(build_tree, transports, strlen(transports) + 1);
		uxp_debug("core: loaded from a build tree: plugins from %s/*/.libs", transports);
	}
}

/* BUILD/transports when the library is uninstalled and XPMEM_PLUGIN_DIR
 * is unset, else NULL. */
static const char *build_tree_transports(void)
{
	if (uxp_env("XPMEM_PLUGIN_DIR"))
		return NULL;
	pthread_once(&build_tree_once, find_build_tree);
	return build_tree[0] ? build_tree : NULL;
}

static const char *plugin_dir(void)
{
	const char *d = uxp_env("XPMEM_PLUGIN_DIR");
	if (d)
		return d;
	return build_tree_transports() ? "the build tree's transports/*/.libs" : UXP_PLUGIN_DIR;
}

/* The plugin files named by a glob pattern for NAME ("*": all of them). */
static int plugin_glob(const char *name, glob_t *g)
{
	char pattern[4300];
	const char *tree = build_tree_transports();
	if (tree)
		snprintf(pattern, sizeof(pattern), "%s/*/.libs/libuxpmem-%s.so", tree, name);
	else
		snprintf(pattern, sizeof(pattern), "%s/libuxpmem-%s.so", plugin_dir(), name);
	return glob(pattern, 0, NULL, g);
}

static const struct uxp_transport *builtin_find(const char *name)
{
	for (unsigned i = 0; uxp_builtin_transports[i]; i++)
		if (strcmp(uxp_builtin_transports[i]->name, name) == 0)
			return uxp_builtin_transports[i];
	return NULL;
}

/* ---- what the core offers plugins ------------------------------------ */

static int core_log_level(void)
{
	return uxp_log_level;
}

static size_t core_page_size(void)
{
	return uxp_page_size;
}

static const struct uxp_core core_services = {
	.log_level = core_log_level,
	.vlog = uxp_log_vwrite,
	.page_size = core_page_size,
	.node_id = uxp_node_id,
	.node_id_set = uxp_node_id_set,
	.revoke_emit = uxp_revoke_emit,
	.revoke_apid_added = uxp_revoke_apid_added,
	.thread_start_id = uxp_thread_start_id,
	.mm_watch = uxp_mm_watch,
	.mm_unwatch = uxp_mm_unwatch,
};

/* The ops the core calls for a transport of this scope are all there. */
static bool ops_complete(const struct uxp_transport *t)
{
	bool common = t->probe && t->get && t->release && t->attach && t->detach;
	if (t->scope == UXP_SCOPE_REMOTE)
		return common;
	return common && t->scope == UXP_SCOPE_LOCAL && t->version && t->make && t->remove;
}

/* Which transport ABI the plugin was built for, to say why it is refused. */
static void other_abi(void *h, char *buf, size_t len)
{
	char sym[64];
	snprintf(buf, len, "no symbol %s", UXP_TRANSPORT_SYMBOL);
	for (int v = 1; v < 16; v++) {
		snprintf(sym, sizeof(sym), "%s%d", UXP_TRANSPORT_SYMBOL_PREFIX, v);
		if (strcmp(sym, UXP_TRANSPORT_SYMBOL) != 0 && dlsym(h, sym)) {
			snprintf(buf, len, "built for another uxpmem (%s; this library loads %s)",
				 sym, UXP_TRANSPORT_SYMBOL);
			return;
		}
	}
}

/* dlopen, check strictly, init.  Caller holds registry_lock. */
static const struct uxp_transport *plugin_open(const char *path, const char *name)
{
	char why[160];
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		uxp_debug("core: no plugin for transport '%s': %s", name, dlerror());
		return NULL;
	}
	const struct uxp_transport *t = dlsym(h, UXP_TRANSPORT_SYMBOL);
	if (!t)
		other_abi(h, why, sizeof(why));
	else if (!t->name || strcmp(t->name, name) != 0)
		snprintf(why, sizeof(why), "its transport is not named '%s'", name);
	else if (!ops_complete(t))
		snprintf(why, sizeof(why), "scope %d or operations missing", (int)t->scope);
	else
		why[0] = '\0';
	if (!why[0] && t->init) {
		uxp_log_init(); /* its copy of the level is taken now */
		int ret = t->init(&core_services);
		if (ret < 0)
			snprintf(why, sizeof(why), "init: %s", strerror(-ret));
	}
	if (why[0]) {
		uxp_warn("core: plugin %s refused: %s", path, why);
		dlclose(h);
		return NULL;
	}
	return t;
}

/* Caller holds registry_lock. */
static const struct uxp_transport *plugin_load(const char *name)
{
	for (unsigned i = 0; i < nplugins; i++)
		if (strcmp(plugins[i]->name, name) == 0)
			return plugins[i];
	if (nplugins == MAX_PLUGINS || strchr(name, '/'))
		return NULL;

	char path[4096];
	glob_t g;
	if (plugin_glob(name, &g) == 0 && g.gl_pathc > 0)
		snprintf(path, sizeof(path), "%s", g.gl_pathv[0]);
	else
		snprintf(path, sizeof(path), "%s/libuxpmem-%s.so", plugin_dir(), name);
	globfree(&g);
	const struct uxp_transport *t = plugin_open(path, name);
	if (t)
		__atomic_store_n(&plugins[nplugins++], t, __ATOMIC_RELEASE);
	return t;
}

const struct uxp_transport *uxp_transport_find(const char *name)
{
	const struct uxp_transport *t = builtin_find(name);
	if (t)
		return t;
	pthread_mutex_lock(&registry_lock);
	t = plugin_load(name);
	pthread_mutex_unlock(&registry_lock);
	return t;
}

static int plugin_file(const struct dirent *e)
{
	size_t n = strlen(e->d_name);
	return n > 13 && n - 13 < 64 && strncmp(e->d_name, "libuxpmem-", 10) == 0 &&
	       strcmp(e->d_name + n - 3, ".so") == 0;
}

/* Every plugin of the directory, in name order (the first usable remote
 * one serves other nodes).  Caller holds registry_lock. */
static void scan_plugins(void)
{
	if (build_tree_transports()) {
		glob_t g;
		if (plugin_glob("*", &g) == 0)
			for (size_t i = 0; i < g.gl_pathc; i++) {
				const char *base = strrchr(g.gl_pathv[i], '/') + 1;
				char name[64];
				size_t len = strlen(base) - 13;
				if (len < sizeof(name)) {
					snprintf(name, sizeof(name), "%.*s", (int)len, base + 10);
					if (!builtin_find(name))
						plugin_load(name);
				}
			}
		globfree(&g);
		return;
	}
	struct dirent **v;
	int n = scandir(plugin_dir(), &v, plugin_file, alphasort);
	for (int i = 0; i < n; i++) {
		char name[64];
		size_t len = strlen(v[i]->d_name) - 13;
		memcpy(name, v[i]->d_name + 10, len);
		name[len] = '\0';
		if (!builtin_find(name))
			plugin_load(name);
		free(v[i]);
	}
	if (n >= 0)
		free(v);
}

unsigned uxp_transport_count(void)
{
	unsigned nb = 0;
	while (uxp_builtin_transports[nb])
		nb++;
	pthread_mutex_lock(&registry_lock);
	if (!plugins_scanned) {
		scan_plugins();
		plugins_scanned = true;
	}
	unsigned n = nb + nplugins;
	pthread_mutex_unlock(&registry_lock);
	return n;
}

const struct uxp_transport *uxp_transport_at(unsigned i)
{
	unsigned nb = 0;
	while (uxp_builtin_transports[nb])
		nb++;
	if (i < nb)
		return uxp_builtin_transports[i];
	pthread_mutex_lock(&registry_lock);
	const struct uxp_transport *t = i - nb < nplugins ? plugins[i - nb] : NULL;
	pthread_mutex_unlock(&registry_lock);
	return t;
}

/* ---- selection ------------------------------------------------------- */

static pthread_once_t select_once = PTHREAD_ONCE_INIT;
static const struct uxp_transport *selected;
static int select_err = -ENODEV;

/* Probe and open t; why[] says why not. */
static int try_open(const struct uxp_transport *t, char *why, size_t whylen)
{
	why[0] = '\0';
	int ret = t->probe(why, whylen);
	if (ret < 0) {
		uxp_debug("core: transport %s not usable: %s", t->name, why);
		return ret;
	}
	ret = t->open ? t->open() : 0;
	if (ret < 0) {
		snprintf(why, whylen, "failed to open: %s", strerror(-ret));
		uxp_debug("core: transport %s %s", t->name, why);
	}
	return ret;
}

/* XPMEM_TRANSPORT=name selects exactly that transport (failing if it is not
 * usable, so a misconfiguration is loud); unset or "auto" takes the first
 * usable built-in in table order (kernel before shm). */
static void select_transport(void)
{
	const char *want = uxp_env("XPMEM_TRANSPORT");
	char why[256];

	uxp_log_init();
	uxp_fork_init();
	select_err = uxp_node_init();
	if (select_err < 0)
		return;
	/* A resolver may assign this node's id: before any make uses it. */
	if (!uxp_node_id() && uxp_env("XPMEM_RESOLVER")) {
		int err;
		uxp_transport_remote(&err);
	}
	if (want && strcmp(want, "auto") != 0) {
		const struct uxp_transport *t = uxp_transport_find(want);
		if (!t || t->scope != UXP_SCOPE_LOCAL) {
			uxp_error("core: XPMEM_TRANSPORT=%s: no such transport%s", want,
				  t ? " for this node (it serves other nodes)" : "");
			select_err = -ENODEV;
			return;
		}
		select_err = try_open(t, why, sizeof(why));
		if (select_err == 0)
			__atomic_store_n(&selected, t, __ATOMIC_RELEASE);
		else
			uxp_error("core: XPMEM_TRANSPORT=%s is not usable here (see XPMEM_LOG_LEVEL=debug)", want);
	} else {
		for (unsigned i = 0; uxp_builtin_transports[i]; i++) {
			select_err = try_open(uxp_builtin_transports[i], why, sizeof(why));
			if (select_err == 0) {
				__atomic_store_n(&selected, uxp_builtin_transports[i], __ATOMIC_RELEASE);
				break;
			}
		}
	}
	if (selected)
		uxp_info("core: using transport %s", selected->name);
}

const struct uxp_transport *uxp_transport(int *err)
{
	pthread_once(&select_once, select_transport);
	if (uxp_unlikely(!selected))
		*err = select_err < 0 ? select_err : -ENODEV;
	return selected;
}

const struct uxp_transport *uxp_transport_selected(void)
{
	return __atomic_load_n(&selected, __ATOMIC_ACQUIRE);
}

/* ---- the remote transport ------------------------------------------- */

static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct uxp_transport *remote; /* set once, read lock-free */
static int remote_err;                      /* -errno once loading failed */
static char remote_why[512];

/* The first usable plugin (name order) of scope REMOTE.  Caller holds
 * remote_lock. */
static void load_remote(void)
{
	unsigned n = uxp_transport_count(); /* scans the plugin directory */
	size_t len = 0;
	remote_why[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		const struct uxp_transport *t = uxp_transport_at(i);
		if (!t || t->scope != UXP_SCOPE_REMOTE)
			continue;
		char why[256];
		if (try_open(t, why, sizeof(why)) == 0) {
			uxp_info("core: transport %s serves other nodes", t->name);
			__atomic_store_n(&remote, t, __ATOMIC_RELEASE);
			return;
		}
		len += (size_t)snprintf(remote_why + len, len < sizeof(remote_why) ?
					sizeof(remote_why) - len : 0, "%s%s: %s",
					len ? "; " : "", t->name, why);
	}
	if (!len)
		snprintf(remote_why, sizeof(remote_why),
			 "no plugin serving other nodes in %s", plugin_dir());
	uxp_debug("core: no transport for other nodes: %s", remote_why);
	__atomic_store_n(&remote_err, -ENOENT, __ATOMIC_RELEASE);
}

const struct uxp_transport *uxp_transport_remote(int *err)
{
	const struct uxp_transport *r = __atomic_load_n(&remote, __ATOMIC_ACQUIRE);
	if (uxp_likely(r))
		return r;
	int e = __atomic_load_n(&remote_err, __ATOMIC_ACQUIRE);
	if (!e) {
		pthread_mutex_lock(&remote_lock);
		if (!remote && !remote_err)
			load_remote();
		r = remote;
		e = remote_err;
		pthread_mutex_unlock(&remote_lock);
	}
	if (!r)
		*err = e;
	return r;
}

const struct uxp_transport *uxp_transport_remote_loaded(void)
{
	return __atomic_load_n(&remote, __ATOMIC_ACQUIRE);
}

const char *uxp_transport_remote_why(void)
{
	return __atomic_load_n(&remote_err, __ATOMIC_ACQUIRE) ? remote_why : "";
}

/* ---- fork ------------------------------------------------------------ */

void uxp_transport_fork_child(void)
{
	/* A thread of the parent may have held them; the tables are only
	 * ever appended to with complete entries. */
	pthread_mutex_init(&registry_lock, NULL);
	pthread_mutex_init(&remote_lock, NULL);
	/* Not uxp_transport(): its pthread_once may be mid-flight in a thread
	 * that does not exist in the child. */
	const struct uxp_transport *t = uxp_transport_selected();
	if (t && t->fork_child)
		t->fork_child();
	t = uxp_transport_remote_loaded();
	if (t && t->fork_child)
		t->fork_child();
}
