/* arena.h - the query interface of libuxpmem-arena.so, found by libxpmem
 * with dlsym(RTLD_DEFAULT, "uxpmem_arena_query_v1") (no link dependency). */
#ifndef UXPMEM_ARENA_H
#define UXPMEM_ARENA_H

#include <stdint.h>

struct uxpmem_arena_v1 {
	uint64_t base;        /* address of the arena in this process */
	uint64_t size;        /* its length (the memfd's size) */
	int fd;               /* the arena memfd, read-write; owned by the arena: do not close */
	unsigned generation;  /* changes when fd changes (forked child) */
};

/* 0 and *out filled if this process has an arena; -ENOENT if not. */
int uxpmem_arena_query_v1(struct uxpmem_arena_v1 *out);

#endif
