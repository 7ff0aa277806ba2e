/* bench.c - the plugin's side of xpmem-bench (bench.h): raw RMA figures
 * of this process's endpoint, and the eager/lazy switch. */
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "bench.h"
#include "rdma.h"

static const char *bench_provider(void)
{
	return rw_self.prov;
}

static double mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int bench_raw(int64_t apid, uint64_t offset, size_t len, int write, unsigned iters,
		     double *us)
{
	struct ri_apid *ap = ri_apid_hold(apid);
	if (!ap)
		return uxp_fail(ENOENT, "rdma bench: no apid %#llx", (unsigned long long)apid);
	int ret = 0;
	struct rw_mr *mr = NULL;
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		ret = -errno;
		buf = NULL;
	} else {
		memset(buf, 0, len); /* populated, as a raw benchmark's buffer is */
	}
	if (ret == 0 && rw_self.mr_local)
		ret = rw_mr_reg(buf, len, RW_LOCAL_READ | RW_LOCAL_WRITE, &mr);
	/* writes put back what is there: the exporter's memory stays as it was */
	if (ret == 0 && write)
		ret = ri_rma_range_spin(ap, false, buf, mr, offset, len);
	for (unsigned i = 0; ret == 0 && i < iters; i++) {
		double t0 = mono_us();
		ret = ri_rma_range_spin(ap, write != 0, buf, mr, offset, len);
		us[i] = mono_us() - t0;
	}
	if (mr)
		rw_mr_dereg(mr);
	if (buf)
		munmap(buf, len);
	ri_apid_put(ap);
	return ret;
}

UXP_EXPORT const struct uxpmem_rdma_bench_v1 uxpmem_rdma_bench_v1 = {
	.size = sizeof(struct uxpmem_rdma_bench_v1),
	.provider = bench_provider,
	.raw = bench_raw,
	.lazy_from = rl_lazy_from,
};
