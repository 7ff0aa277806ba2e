/* fakeremote.h - a remote transport for the routing tests, built as a real
 * plugin (tests/core/.libs/libuxpmem-fakeremote.so, loaded through
 * XPMEM_PLUGIN_DIR).  It "attaches" another node's segment as private
 * memory holding fr_word(segid, i) in word i of the segment, so a test
 * sees from the data which segment and offset it got. */
#ifndef UXP_FAKEREMOTE_H
#define UXP_FAKEREMOTE_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <xpmem.h>

#define FR_NAME "fakeremote"
#define FR_SEG_SIZE (1024 * 1024) /* every remote segment */

struct fr_stats {
	int inits, probes, opens, gets, releases, attaches, detaches;
	int detach_misses;  /* detaches of addresses it did not attach */
	int misrouted;      /* calls with a local id: the core must never */
	int fork_children;
	int live_attachments;
};

static inline uint64_t fr_word(xpmem_segid_t segid, uint64_t i)
{
	return ((uint64_t)segid * 0x9E3779B97F4A7C15ULL) ^ (i + 1);
}

/* Exported by the plugin (find them with dlsym on its handle). */
typedef const struct fr_stats *(*fr_stats_fn)(void);
typedef void (*fr_revoke_fn)(xpmem_apid_t apid); /* emits REMOVED */

/* The plugin's handle if the library loaded it from dir, else NULL. */
static inline void *fr_loaded(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/libuxpmem-" FR_NAME ".so", dir);
	void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h)
		dlclose(h); /* the library still holds it */
	return h;
}

/* Its counters (NULL if not loaded). */
static inline const struct fr_stats *fr_stats(const char *dir)
{
	void *h = fr_loaded(dir);
	fr_stats_fn f = NULL;
	if (h)
		*(void **)&f = dlsym(h, "fakeremote_stats");
	return f ? f() : NULL;
}

#endif
