/* refprog.c - a client written only against the reference <xpmem.h>, the
 * way UCX/MPICH use it: export the whole address space, get it back
 * read-write, attach page-aligned ranges, detach, release, remove.
 * Compiles as C and as C++.
 *
 * Exit 0 on success, 77 if the library has no working transport for this
 * (ENOSYS), 1 otherwise.  With --touch, also checks the data through the
 * attachments (needs the memory to be shareable: kernel XPMEM, or the shm
 * transport under xpmem-run). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xpmem.h>

static int fail(const char *what)
{
	fprintf(stderr, "refprog: %s: %s\n", what, strerror(errno));
	return errno == ENOSYS ? 77 : 1;
}

int main(int argc, char **argv)
{
	int touch = argc > 1 && strcmp(argv[1], "--touch") == 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = 16 * page;
	void *mem = NULL;

	if (xpmem_init() != 0)
		return fail("xpmem_init");
	if (xpmem_version() < 0)
		return fail("xpmem_version");
	if (posix_memalign(&mem, page, len) != 0)
		return 1;
	unsigned char *buf = (unsigned char *)mem;
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + 1);

	xpmem_segid_t segid = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid == -1)
		return fail("xpmem_make");
	if (segid <= 0) {
		fprintf(stderr, "refprog: segid %lld is not positive\n", (long long)segid);
		return 1;
	}
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (apid == -1)
		return fail("xpmem_get");
	if (apid <= 0)
		return 1;

	/* Whole buffer, then a sub-range, then a size that is rounded up. */
	struct { size_t off, size; } r[3] = { { 0, len }, { 4 * page, 2 * page }, { page, 100 } };
	for (int k = 0; k < 3; k++) {
		struct xpmem_addr addr;
		addr.apid = apid;
		addr.offset = (off_t)((uintptr_t)buf + r[k].off);
		unsigned char *p = (unsigned char *)xpmem_attach(addr, r[k].size, NULL);
		if (p == (unsigned char *)-1)
			return fail("xpmem_attach");
		if ((uintptr_t)p % page) {
			fprintf(stderr, "refprog: attachment %p is not page aligned\n", (void *)p);
			return 1;
		}
		if (touch) {
			if (memcmp(p, buf + r[k].off, r[k].size) != 0) {
				fprintf(stderr, "refprog: attachment %d does not show the data\n", k);
				return 1;
			}
			p[0] ^= 0xff; /* a store through the attachment is seen */
			if (buf[r[k].off] != (unsigned char)((r[k].off * 7 + 1) ^ 0xff)) {
				fprintf(stderr, "refprog: store through attachment %d not seen\n", k);
				return 1;
			}
			p[0] ^= 0xff;
		}
		if (xpmem_detach(p) != 0)
			return fail("xpmem_detach");
	}
	if (xpmem_release(apid) != 0)
		return fail("xpmem_release");
	if (xpmem_remove(segid) != 0)
		return fail("xpmem_remove");
	free(mem);
	printf("refprog: ok (segid %#llx)\n", (unsigned long long)segid);
	return 0;
}
