/* transport.c - the transport registry and the per-process selection.
 *
 * Built-in transports come from transports/builtin.c; others are plugins:
 * $XPMEM_PLUGIN_DIR (default PKGLIBDIR/transports)/libuxpmem-NAME.so exporting
 * UXP_TRANSPORT_SYMBOL.  The core knows no transport by name except through
 * this table and XPMEM_TRANSPORT.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "uxp.h"

#ifndef UXP_PLUGIN_DIR
#define UXP_PLUGIN_DIR "/usr/local/lib/uxpmem/transports"
#endif
#define MAX_PLUGINS 16

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct uxp_transport *plugins[MAX_PLUGINS];
static unsigned nplugins;
static bool plugins_scanned;

static const char *plugin_dir(void)
{
	const char *d = uxp_env("XPMEM_PLUGIN_DIR");
	return d ? d : UXP_PLUGIN_DIR;
}

static const struct uxp_transport *builtin_find(const char *name)
{
	for (unsigned i = 0; uxp_builtin_transports[i]; i++)
		if (strcmp(uxp_builtin_transports[i]->name, name) == 0)
			return uxp_builtin_transports[i];
	return NULL;
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
	snprintf(path, sizeof(path), "%s/libuxpmem-%s.so", plugin_dir(), name);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		uxp_debug("core: no plugin for transport '%s': %s", name, dlerror());
		return NULL;
	}
	const struct uxp_transport *t = dlsym(h, UXP_TRANSPORT_SYMBOL);
	if (!t || !t->name || strcmp(t->name, name) != 0) {
		uxp_warn("core: %s does not export a transport named '%s'", path, name);
		dlclose(h);
		return NULL;
	}
	plugins[nplugins++] = t;
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

static void scan_plugins(void)
{
	DIR *d = opendir(plugin_dir());
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n <= 14 || strncmp(e->d_name, "libuxpmem-", 10) || strcmp(e->d_name + n - 3, ".so"))
			continue;
		char name[64];
		if (n - 13 >= sizeof(name))
			continue;
		memcpy(name, e->d_name + 10, n - 13);
		name[n - 13] = '\0';
		if (!builtin_find(name))
			plugin_load(name);
	}
	closedir(d);
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

static int try_open(const struct uxp_transport *t)
{
	char why[256] = "";
	int ret = t->probe(why, sizeof(why));
	if (ret < 0) {
		uxp_debug("core: transport %s not usable: %s", t->name, why);
		return ret;
	}
	ret = t->open ? t->open() : 0;
	if (ret < 0)
		uxp_debug("core: transport %s failed to open: %s", t->name, strerror(-ret));
	return ret;
}

/* XPMEM_TRANSPORT=name selects exactly that transport (failing if it is not
 * usable, so a misconfiguration is loud); unset or "auto" takes the first
 * usable built-in in table order (kernel before shm). */
static void select_transport(void)
{
	const char *want = uxp_env("XPMEM_TRANSPORT");

	uxp_log_init();
	uxp_fork_init();
	if (want && strcmp(want, "auto") != 0) {
		const struct uxp_transport *t = uxp_transport_find(want);
		if (!t) {
			uxp_error("core: XPMEM_TRANSPORT=%s: no such transport", want);
			select_err = -ENODEV;
			return;
		}
		select_err = try_open(t);
		if (select_err == 0)
			__atomic_store_n(&selected, t, __ATOMIC_RELEASE);
		else
			uxp_error("core: XPMEM_TRANSPORT=%s is not usable here (see XPMEM_LOG_LEVEL=debug)", want);
	} else {
		for (unsigned i = 0; uxp_builtin_transports[i]; i++) {
			select_err = try_open(uxp_builtin_transports[i]);
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
