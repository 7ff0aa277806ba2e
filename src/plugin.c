/* plugin.c - linked into each plugin transport (libuxpmem_plugin.la), not
 * into libxpmem: a plugin cannot reach libxpmem's internal symbols, so the
 * calls of uxp.h it makes land here and go to the core through the struct
 * uxp_core the loader hands to the plugin's init.  Stateless helpers
 * (config.c, idtab.c, addr.c) are linked into the plugin as they are. */
#include <stdarg.h>
#include "uxp.h"

static const struct uxp_core *core;
int uxp_log_level = UXP_LOG_ERROR;
size_t uxp_page_size = 4096;

int uxp_plugin_init(const struct uxp_core *c)
{
	core = c;
	uxp_log_level = c->log_level();
	uxp_page_size = c->page_size();
	return 0;
}

void uxp_log_vwrite(int level, const char *fmt, va_list ap)
{
	core->vlog(level, fmt, ap);
}

void uxp_log_write(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	core->vlog(level, fmt, ap);
	va_end(ap);
}

unsigned uxp_node_id(void)
{
	return core->node_id();
}

int uxp_node_id_set(unsigned node)
{
	return core->node_id_set(node);
}

void uxp_revoke_emit(xpmem_apid_t apid, xpmem_segid_t segid, int reason, void *addr,
		     size_t size, off_t offset, size_t length)
{
	core->revoke_emit(apid, segid, reason, addr, size, offset, length);
}

void uxp_revoke_apid_added(xpmem_apid_t apid)
{
	core->revoke_apid_added(apid);
}

int uxp_thread_start_id(void *(*fn)(void *), void *arg, size_t stack_size, pthread_t *id)
{
	return core->thread_start_id(fn, arg, stack_size, id);
}

int uxp_thread_start(void *(*fn)(void *), void *arg, size_t stack_size)
{
	return core->thread_start_id(fn, arg, stack_size, NULL);
}

int uxp_mm_watch(uintptr_t start, size_t len, uxp_mm_cb cb, void *arg, uint64_t *id)
{
	return core->mm_watch(start, len, cb, arg, id);
}

void uxp_mm_unwatch(uint64_t id)
{
	core->mm_unwatch(id);
}
