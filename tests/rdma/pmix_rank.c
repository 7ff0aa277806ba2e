/* pmix_rank.c - one rank of tests/rdma/pmix.sh, started by mpirun -np 2
 * (no MPI: the PMIx resolver is what is tested).  argv[1]: a directory the
 * two ranks share; files in it pass the segid and the steps (written to a
 * temporary name and renamed).
 *
 * rank 0, the exporter: XPMEM_RESOLVER=pmix, its node id from PMIX_NODEID
 *   (+1); makes 1 MiB (mode 0600) filled with a pattern, writes the segid,
 *   waits for "flushed", checks every byte (rank 1's stores where it wrote,
 *   the pattern elsewhere), writes "checked".
 * rank 1, the importer: XPMEM_RESOLVER unset (a PMIx launcher is detected),
 *   XPMEM_NODE_ID=2000 so the segid routes to the remote transport; gets,
 *   attaches read-write, checks every byte, stores into two ranges,
 *   uxpmem_flush, writes "flushed", waits for "checked", detaches and
 *   releases, writes "detached" (then rank 0 removes the segment).
 * Any failure prints "FAIL: rank R: why" and exits 1; waits are bounded. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xpmem.h>
#include "uxpmem.h"
#include "testutil.h"

#define SIZE (1 << 20)
#define IMPORTER_NODE 2000
static int rank = -1;
static const char *dir;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL: rank %d: ", rank);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(1);
}

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 4096 + 3);
}

/* rank 1's stores: [64 KiB, 320 KiB) and the last page */
static bool stored(size_t i)
{
	return (i >= 65536 && i < 327680) || i >= SIZE - 4096;
}

static unsigned char stored_value(size_t i)
{
	return (unsigned char)(0xa5 ^ i ^ i >> 8);
}

static void put(const char *name, const char *text)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
		fail("writing %s: %s", path, strerror(errno));
}

/* The contents of dir/name once it exists (bounded wait). */
static void await(const char *name, char *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int ms = tu_guard_ms(60000);
	for (int waited = 0; waited < ms; waited += 10) {
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(buf, 1, len - 1, f);
			buf[n] = '\0';
			fclose(f);
			return;
		}
		usleep(10000);
	}
	fail("no %s after %d ms (the other rank failed?)", path, ms);
}

static void exporter(void)
{
	setenv("XPMEM_RESOLVER", "pmix", 1);
	unsetenv("XPMEM_NODE_ID");
	unsigned char *buf = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
	if (buf == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	for (size_t i = 0; i < SIZE; i++)
		buf[i] = pattern(i);
	xpmem_segid_t segid = xpmem_make(buf, SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid == -1)
		fail("xpmem_make: %s (XPMEM_LOG_LEVEL=debug tells why)", strerror(errno));
	int node = uxpmem_node_id();
	if (node < 1 || node == IMPORTER_NODE)
		fail("node id %d: PMIX_NODEID + 1 expected", node);
	if ((int)((unsigned long long)segid >> 48 & 0x7fff) != node)
		fail("segid %#llx does not carry node id %d", (long long)segid, node);
	printf("rank 0: node id %d (from PMIx), segid %#llx\n", node, (long long)segid);
	char text[64];
	snprintf(text, sizeof(text), "%lld\n", (long long)segid);
	put("segid", text);
	await("flushed", text, sizeof(text));
	size_t bad = 0, first = 0;
	for (size_t i = 0; i < SIZE; i++)
		if (buf[i] != (stored(i) ? stored_value(i) : pattern(i)) && bad++ == 0)
			first = i;
	if (bad)
		fail("%zu bytes differ after the importer's flush, the first at %#zx: %#x", bad,
		     first, buf[first]);
	printf("rank 0: the importer's stores are here after its flush, every other byte kept\n");
	put("checked", "ok\n");
	await("detached", text, sizeof(text));
	if (xpmem_remove(segid) != 0)
		fail("xpmem_remove: %s", strerror(errno));
}

static void importer(void)
{
	char text[64], node[16];
	unsetenv("XPMEM_RESOLVER");
	snprintf(node, sizeof(node), "%d", IMPORTER_NODE);
	setenv("XPMEM_NODE_ID", node, 1);
	await("segid", text, sizeof(text));
	xpmem_segid_t segid = strtoll(text, NULL, 0);
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (apid == -1)
		fail("xpmem_get(%#llx): %s (XPMEM_LOG_LEVEL=debug tells why)", (long long)segid,
		     strerror(errno));
	struct xpmem_addr a = { .apid = apid, .offset = 0 };
	unsigned char *p = xpmem_attach(a, SIZE, NULL);
	if (p == (void *)-1)
		fail("xpmem_attach: %s", strerror(errno));
	for (size_t i = 0; i < SIZE; i++)
		if (p[i] != pattern(i))
			fail("byte %#zx is %#x, the exporter wrote %#x", i, p[i], pattern(i));
	printf("rank 1: node id %d, attached %#llx over the remote transport, 1 MiB verified\n",
	       uxpmem_node_id(), (long long)segid);
	for (size_t i = 0; i < SIZE; i++)
		if (stored(i))
			p[i] = stored_value(i);
	if (uxpmem_flush(p, SIZE) != 0)
		fail("uxpmem_flush: %s", strerror(errno));
	put("flushed", "ok\n");
	await("checked", text, sizeof(text));
	if (xpmem_detach(p) != 0)
		fail("xpmem_detach: %s", strerror(errno));
	if (xpmem_release(apid) != 0)
		fail("xpmem_release: %s", strerror(errno));
	put("detached", "ok\n");
}

int main(int argc, char **argv)
{
	const char *r = getenv("PMIX_RANK");
	if (argc != 2 || !r || !getenv("PMIX_NAMESPACE"))
		fail("usage: mpirun -np 2 %s DIR (PMIX_RANK and PMIX_NAMESPACE are unset)", argv[0]);
	rank = atoi(r);
	dir = argv[1];
	if (rank == 0)
		exporter();
	else if (rank == 1)
		importer();
	else
		fail("only ranks 0 and 1");
	printf("rank %d: PASS\n", rank);
	return 0;
}
