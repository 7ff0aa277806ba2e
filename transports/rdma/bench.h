/* bench.h - what xpmem-bench asks of the rdma plugin besides the XPMEM API
 * (the tool links no libfabric, so the provider's raw figures come from
 * here).  Found with dlsym(UXPMEM_RDMA_BENCH_SYMBOL) in the loaded plugin;
 * no libfabric type appears here.  Not a public interface: it changes with
 * the plugin (the size field tells). */
#ifndef UXPMEM_RDMA_BENCH_H
#define UXPMEM_RDMA_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define UXPMEM_RDMA_BENCH_SYMBOL "uxpmem_rdma_bench_v1"

struct uxpmem_rdma_bench_v1 {
	size_t size; /* sizeof(struct uxpmem_rdma_bench_v1) */
	/* The provider of this process's endpoint ("" before it is open). */
	const char *(*provider)(void);
	/* iters transfers of len bytes between a private registered buffer and
	 * apid's segment at offset: fi_read, or (write) fi_write with delivery
	 * complete as a flush posts them; pieces of at most 1 MiB, 16 in
	 * flight; each transfer waited for by polling the completion queue.
	 * us[i]: the time of transfer i.  0 or -errno. */
	int (*raw)(int64_t apid, uint64_t offset, size_t len, int write, unsigned iters,
		   double *us);
	/* Attachments of at least bytes are filled on fault from now on
	 * (XPMEM_RDMA_EAGER_MAX of this process; SIZE_MAX: always eagerly;
	 * 0: back to the variable).  Without userfaultfd they stay eager. */
	void (*lazy_from)(size_t bytes);
};

#endif
