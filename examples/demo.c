/*
 * demo.c - the uxpmem demo: two processes share one buffer through XPMEM.
 *
 *   exporter (this program, no arguments)
 *     1. allocates a buffer with ordinary malloc-family memory and fills it
 *        with a message and a run of numbers;
 *     2. xpmem_make()s it: the buffer becomes a "segment" named by a segid;
 *     3. starts the importer (this same program again, with a role argument)
 *        and hands it the segid on the command line;
 *   importer ("demo import SEGID SIZE")
 *     4. xpmem_get()s the segid (permission to attach: an apid),
 *     5. xpmem_attach()es it: the exporter's buffer appears in its own
 *        address space -- same physical memory, no copy;
 *     6. reads the message, checks the numbers, measures how fast it can copy
 *        through the attachment, and writes a reply into the shared buffer;
 *     7. detaches and releases;
 *   exporter again
 *     8. reads the importer's reply in its own buffer (proof that stores went
 *        both ways), then xpmem_remove()s the segment.
 *
 * Run it with the shm transport (no kernel module needed):
 *     xpmem-run ./demo          or, from a build tree:   make demo
 * "xpmem-run" preloads the memory arena, so malloc() memory can be shared.
 * With the XPMEM kernel module loaded, plain "./demo" works too.
 *
 * Usage: demo [MIB]   (buffer size in MiB, default 64)
 * Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xpmem.h>   /* the XPMEM API: all a client of the reference library needs */
#include <uxpmem.h>  /* uxpmem extensions: here only to print the transport's name */

/* What the buffer holds: a small header, then numbers up to the end. */
struct shared {
	char message[128]; /* written by the exporter */
	char reply[128];   /* written by the importer */
	uint64_t count;    /* how many numbers follow */
	uint64_t numbers[];
};

/* The value stored in slot i: recognisable, and wrong if a page is stale. */
static uint64_t number(uint64_t i)
{
	return i * 0x9e3779b97f4a7c15ull ^ 0x5850454d2d444d4full; /* "XPEM-DMO" */
}

/* A simple order-dependent checksum (Fletcher-like) of the numbers. */
static uint64_t checksum(const volatile uint64_t *v, uint64_t n)
{
	uint64_t a = 1, b = 0;
	for (uint64_t i = 0; i < n; i++) {
		a += v[i];
		b += a;
	}
	return a ^ (b << 1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best of a few runs of memcpy(dst, src, len), in GB/s (10^9 bytes). */
static double copy_rate(void *dst, const void *src, size_t len)
{
	double best = 1e30;
	for (int run = 0; run < 3; run++) {
		double t0 = now();
		memcpy(dst, src, len);
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	return len / best / 1e9;
}

static void die(const char *who, const char *what)
{
	int e = errno;
	fprintf(stderr, "demo %s: %s failed: %s\n", who, what, strerror(e));
	if (e == ENOSYS || e == EFAULT || e == ENODEV)
		fprintf(stderr, "demo %s: hint: without the XPMEM kernel module, run the demo under "
			"xpmem-run (see README.md)\n", who);
	exit(1);
}

/* ------------------------------------------------------------------------ */
/* The importer: attach the exporter's buffer, read it, answer in it.       */
/* ------------------------------------------------------------------------ */

static int importer(xpmem_segid_t segid, size_t size)
{
	/* 4. A segid names the exporter's segment node-wide.  xpmem_get asks
	 *    for access (XPMEM_RDWR: we want to write the reply) and returns
	 *    an apid, which is valid in this process only.  The last argument
	 *    is ignored by every XPMEM implementation; clients pass NULL. */
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (apid == -1)
		die("importer", "xpmem_get");

	/* 5. Map [offset, offset+size) of the segment.  Offsets and sizes are in
	 *    pages; our segment starts at the buffer, so offset 0 is its first
	 *    byte.  NULL lets the library choose the address. */
	struct xpmem_addr addr = { .apid = apid, .offset = 0 };
	double t0 = now();
	struct shared *sh = xpmem_attach(addr, size, NULL);
	double attach_us = (now() - t0) * 1e6;
	if (sh == (void *)-1)
		die("importer", "xpmem_attach");

	/* 6. It is ordinary memory now: plain loads and stores. */
	printf("[importer %d] attached %zu MiB at %p in %.1f us\n", (int)getpid(), size >> 20,
	       (void *)sh, attach_us);
	printf("[importer %d] message: \"%s\"\n", (int)getpid(), sh->message);

	uint64_t want = checksum(sh->numbers, sh->count); /* also faults the pages in */
	uint64_t bad = 0;
	for (uint64_t i = 0; i < sh->count; i++)
		bad += sh->numbers[i] != number(i);
	printf("[importer %d] checksum of %" PRIu64 " numbers: %016" PRIx64 " (%s)\n",
	       (int)getpid(), sh->count, want, bad ? "MISMATCH" : "all numbers as expected");

	/* A figure: copying out of the attachment runs at local memory speed,
	 * because it IS the exporter's memory (a pipe or socket would need two
	 * copies and system calls). */
	size_t len = size - sizeof(struct shared);
	char *local = malloc(len), *local2 = malloc(len);
	if (!local || !local2)
		die("importer", "malloc");
	memset(local, 1, len);
	memset(local2, 2, len);
	double rate_attach = copy_rate(local, sh->numbers, len);
	double rate_local = copy_rate(local2, local, len);
	printf("[importer %d] copy %.0f MiB: from the attachment %.2f GB/s, local memcpy %.2f GB/s\n",
	       (int)getpid(), len / 1048576.0, rate_attach, rate_local);
	free(local);
	free(local2);

	/* Stores go straight into the exporter's buffer. */
	snprintf(sh->reply, sizeof(sh->reply), "hello back from importer %d: %" PRIu64 " numbers %s",
		 (int)getpid(), sh->count, bad ? "were WRONG" : "checked");

	/* 7. Tidy up.  (Exiting would do both, too.) */
	if (xpmem_detach(sh) != 0)
		die("importer", "xpmem_detach");
	if (xpmem_release(apid) != 0)
		die("importer", "xpmem_release");
	return bad ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The exporter: share a buffer, start the importer, read its reply.        */
/* ------------------------------------------------------------------------ */

static int exporter(const char *argv0, size_t size)
{
	long page = sysconf(_SC_PAGESIZE);

	/* 1. Ordinary heap memory.  XPMEM shares whole pages, so the buffer is
	 *    page aligned and a whole number of pages long.  Under xpmem-run the
	 *    heap lives in the shareable arena; nothing else is special. */
	struct shared *sh;
	if (posix_memalign((void **)&sh, (size_t)page, size) != 0)
		die("exporter", "posix_memalign");
	memset(sh, 0, sizeof(*sh));
	snprintf(sh->message, sizeof(sh->message), "hello from exporter %d, through XPMEM",
		 (int)getpid());
	sh->count = (size - sizeof(*sh)) / sizeof(uint64_t);
	for (uint64_t i = 0; i < sh->count; i++)
		sh->numbers[i] = number(i);

	printf("[exporter %d] XPMEM API version %#x, uxpmem %s, transport \"%s\"\n", (int)getpid(),
	       xpmem_version(), uxpmem_version_string(),
	       uxpmem_transport_name() ? uxpmem_transport_name() : "(none)");
	printf("[exporter %d] buffer of %zu MiB at %p, checksum %016" PRIx64 "\n", (int)getpid(),
	       size >> 20, (void *)sh, checksum(sh->numbers, sh->count));

	/* 2. Export it.  0600: only processes of our own user may attach
	 *    (checked against the importer's uid, as file modes are). */
	xpmem_segid_t segid = xpmem_make(sh, size, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid == -1)
		die("exporter", "xpmem_make");
	printf("[exporter %d] xpmem_make -> segid %#llx\n", (int)getpid(), (long long)segid);

	/* 3. Start the importer: this program again, told its role and the
	 *    segid.  Any channel works (a pipe, a socket, a file, MPI's own
	 *    wire-up): a segid is just a number. */
	char segid_arg[32], size_arg[32];
	snprintf(segid_arg, sizeof(segid_arg), "%lld", (long long)segid);
	snprintf(size_arg, sizeof(size_arg), "%zu", size);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("exporter", "fork");
	if (pid == 0) {
		/* /proc/self/exe: this very program, whatever argv[0] says. */
		execl("/proc/self/exe", argv0, "import", segid_arg, size_arg, (char *)NULL);
		die("importer", "exec");
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		die("exporter", "waitpid");
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	/* 8. The importer wrote into our buffer: we see it without any copy. */
	printf("[exporter %d] importer %s; reply in my buffer: \"%s\"\n", (int)getpid(),
	       ok ? "finished" : "FAILED", sh->reply[0] ? sh->reply : "(none)");
	if (!sh->reply[0])
		ok = 0;

	/* Stop sharing: later xpmem_get calls fail (ENOENT) and any importer
	 * still attached would get SIGBUS on its next access. */
	if (xpmem_remove(segid) != 0)
		die("exporter", "xpmem_remove");
	free(sh);
	printf("[exporter %d] removed the segment: %s\n", (int)getpid(),
	       ok ? "demo OK" : "demo FAILED");
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "import") == 0)
		return importer((xpmem_segid_t)strtoll(argv[2], NULL, 0),
				(size_t)strtoull(argv[3], NULL, 0));

	unsigned long mib = 64;
	if (argc == 2)
		mib = strtoul(argv[1], NULL, 0);
	if (argc > 2 || mib == 0 || mib > 65536) {
		fprintf(stderr, "usage: %s [MIB]   (buffer size in MiB, default 64)\n", argv[0]);
		return 2;
	}
	return exporter(argv[0], (size_t)mib << 20);
}
