/* shm.c - placeholder; the shm transport is being written. */
#include "uxp.h"

static int shm_probe(char *why, size_t whylen) { (void)why; (void)whylen; return 0; }
static int shm_version(void) { return 0x00026003; }
static int shm_nosys(void) { return -ENOSYS; }
static int shm_make(uintptr_t a, size_t b, int c, uint64_t d, xpmem_segid_t *e) { (void)a; (void)b; (void)c; (void)d; (void)e; return shm_nosys(); }
static int shm_remove(xpmem_segid_t a) { (void)a; return shm_nosys(); }
static int shm_get(xpmem_segid_t a, int b, int c, uint64_t d, xpmem_apid_t *e) { (void)a; (void)b; (void)c; (void)d; (void)e; return shm_nosys(); }
static int shm_release(xpmem_apid_t a) { (void)a; return shm_nosys(); }
static int shm_attach(xpmem_apid_t a, off_t b, size_t c, uintptr_t d, void **e) { (void)a; (void)b; (void)c; (void)d; (void)e; return shm_nosys(); }
static int shm_detach(uintptr_t a) { (void)a; return shm_nosys(); }

const struct uxp_transport uxp_shm_transport = {
	.name = "shm", .description = "userspace shared memory (memfd + service thread)",
	.probe = shm_probe, .version = shm_version, .make = shm_make, .remove = shm_remove,
	.get = shm_get, .release = shm_release, .attach = shm_attach, .detach = shm_detach,
};
