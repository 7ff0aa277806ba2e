/*
 * arena.h - query interface of the memory arena preload (libuxpmem-arena.so).
 *
 * libxpmem has no link dependency on the preload: it looks the function up
 * with dlsym(RTLD_DEFAULT, "uxpmem_arena_query_v1") and treats a missing
 * symbol like -ENOENT.
 *
 * Exporter address X in [base, base + size) is file offset X - base of the
 * arena memfd, for the life of the process (generation).
 */
#ifndef UXPMEM_ARENA_H
#define UXPMEM_ARENA_H

#include <stdint.h>

#define UXPMEM_ARENA_QUERY_SYMBOL "uxpmem_arena_query_v1"

struct uxpmem_arena_v1 {
	uint64_t base;       /* address of file offset 0 */
	uint64_t size;       /* bytes mapped (the memfd's size) */
	int fd;              /* the arena memfd, read-write; owned by the arena: do not close */
	unsigned generation; /* changes whenever fd changes (forked child) */
};

/* 0 and *out filled if this process has an arena; -ENOENT if not. */
int uxpmem_arena_query_v1(struct uxpmem_arena_v1 *out);

/* Called (in the unmapping thread, holding no arena lock) after the
 * application unmapped [start, start+len) of the arena, before munmap or
 * mremap returns: libxpmem invalidates importers there. */
typedef void (*uxpmem_arena_unmap_fn)(uint64_t start, uint64_t len);
void uxpmem_arena_on_unmap_v1(uxpmem_arena_unmap_fn fn);

typedef int (*uxpmem_arena_query_v1_fn)(struct uxpmem_arena_v1 *out);

#endif /* UXPMEM_ARENA_H */
