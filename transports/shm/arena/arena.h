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

/* Called (in the calling thread) after the application unmapped or
 * replaced memory outside the arena: munmap, mremap of the old range,
 * mmap(MAP_FIXED), shmdt (len 0: the segment attached at start).
 * libxpmem checks the application's exported shared mappings that raise
 * no userfaultfd events (SysV segments, shared file mappings). */
void uxpmem_arena_on_foreign_unmap_v1(uxpmem_arena_unmap_fn fn);

/* What backs [addr, addr+len) of the arena, from addr on: 1 memory the
 * application has (heap, anonymous mmap), 0 none (never allocated, or
 * unmapped), 2 something else mapped over the arena (its own mapping);
 * *run: bytes from addr in that state (<= len).  -EINVAL outside. */
int uxpmem_arena_mapped_v1(uint64_t addr, uint64_t len, uint64_t *run);

/* Called (holding no arena lock) after [start, start+len) of the arena
 * became memory of the application again, before the call that mapped it
 * returns.  may_wait 0: inside the allocator (its locks held), so the hook
 * must not wait for anything. */
typedef void (*uxpmem_arena_map_fn)(uint64_t start, uint64_t len, int may_wait);
void uxpmem_arena_on_map_v1(uxpmem_arena_map_fn fn);

typedef int (*uxpmem_arena_query_v1_fn)(struct uxpmem_arena_v1 *out);

#endif /* UXPMEM_ARENA_H */
