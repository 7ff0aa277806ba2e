/*
 * shared_static.c - share a STACK buffer and a GLOBAL (.bss) array between
 * two processes, with no preload and no kernel module.
 *
 *   exporter (this program, no arguments)
 *     1. asks uxpmem_export_level() what it can export: at FULL or USER the
 *        shm transport converts private memory (stack, .bss, heap) into
 *        shared memory in place the first time an importer attaches it; at
 *        ARENA only memory in the arena (xpmem-run) can be shared;
 *     2. fills a buffer on its stack and a global array (.bss: zero-initialized
 *        statics) and xpmem_make()s each of them;
 *     3. starts the importer (this program again) with the two segids;
 *   importer ("shared_static import SEGID SEGID")
 *     4. xpmem_get()s and xpmem_attach()es both (the exporter converts them
 *        now, while it waits for us), prints what it sees and writes a reply
 *        into each;
 *   exporter again
 *     5. prints the replies, which the importer stored into ITS stack and
 *        global, and xpmem_remove()s both segments.
 *
 * Initialized globals (.data, a file-backed private mapping) are shared
 * too, but converting them stops every thread of the exporter for the copy
 * (see xpmem(7)).  Not shareable this way (holes for importers, SIGBUS when
 * touched): MAP_SHARED|MAP_ANONYMOUS memory.  See uxpmem_export_level(3).
 *
 * Usage: shared_static          exit status 0 when every check passed,
 *                               3 when the export level is ARENA (nothing
 *                               to show without xpmem-run)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xpmem.h>
#include <uxpmem.h>

#define STACK_BYTES (64 * 1024)
#define GLOBAL_WORDS (256 * 1024) /* 2 MiB of uint64_t */

/* Zero-initialized, so in .bss: anonymous private memory.  Page-aligned so
 * that it does not share a page with .data (converting .data would stop
 * every thread of the exporter). */
static uint64_t global_words[GLOBAL_WORDS] __attribute__((aligned(4096)));

struct stack_msg {       /* the layout of the stack buffer */
	char message[128];   /* written by the exporter */
	char reply[128];     /* written by the importer */
};

static void die(const char *who, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", who, what, strerror(errno));
	exit(1);
}

static uint64_t word(uint64_t i)
{
	return i * 0x9e3779b97f4a7c15ull + 1;
}

static const char *level_name(int level)
{
	return level == UXPMEM_EXPORT_FULL ? "FULL" : level == UXPMEM_EXPORT_USER ? "USER" :
		level == UXPMEM_EXPORT_ARENA ? "ARENA" : "none";
}

/* ---- importer --------------------------------------------------------- */

/* Attach all of segment segid (size bytes at offset 0). */
static void *attach_all(xpmem_segid_t segid, size_t size, xpmem_apid_t *apid)
{
	*apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (*apid == -1)
		die("importer", "xpmem_get");
	void *p = xpmem_attach((struct xpmem_addr){ .apid = *apid, .offset = 0 }, size, NULL);
	if (p == (void *)-1)
		die("importer", "xpmem_attach");
	return p;
}

static int importer(xpmem_segid_t seg_stack, xpmem_segid_t seg_global)
{
	xpmem_apid_t a1, a2;
	/* The exporter converts its memory during these attaches. */
	struct stack_msg *msg = attach_all(seg_stack, STACK_BYTES, &a1);
	uint64_t *words = attach_all(seg_global, sizeof(global_words), &a2);

	printf("importer: the exporter's stack buffer says: \"%s\"\n", msg->message);
	unsigned long bad = 0;
	for (uint64_t i = 0; i < GLOBAL_WORDS; i++)
		bad += words[i] != word(i);
	printf("importer: the exporter's global array: %d words, %lu bad\n", GLOBAL_WORDS, bad);

	/* Stores go straight into the exporter's stack and .bss. */
	snprintf(msg->reply, sizeof(msg->reply), "hello back from importer pid %d", (int)getpid());
	words[0] = 42;

	xpmem_detach(msg);
	xpmem_detach(words);
	xpmem_release(a1);
	xpmem_release(a2);
	return bad ? 1 : 0;
}

/* ---- exporter --------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "import"))
		return importer(strtoll(argv[2], NULL, 0), strtoll(argv[3], NULL, 0));

	char why[256];
	int level = uxpmem_export_level(why, sizeof(why));
	printf("exporter: transport %s, export level %s: %s\n", uxpmem_transport_name() ?
	       uxpmem_transport_name() : "none", level_name(level), level < 0 ? strerror(errno) : why);
	if (level < UXPMEM_EXPORT_USER) {
		printf("exporter: stacks and globals are holes at this level: nothing to show "
		       "(run under xpmem-run to share heap memory)\n");
		return 3;
	}

	/* A buffer in this function's stack frame, page-aligned. */
	union {
		struct stack_msg m;
		char bytes[STACK_BYTES];
	} stack_buf __attribute__((aligned(4096)));
	memset(&stack_buf, 0, sizeof(stack_buf));
	snprintf(stack_buf.m.message, sizeof(stack_buf.m.message),
		 "hello from the exporter's stack (pid %d)", (int)getpid());
	for (uint64_t i = 0; i < GLOBAL_WORDS; i++)
		global_words[i] = word(i);
	printf("exporter: stack buffer at %p (%d KiB), global array at %p (%zu KiB)\n",
	       (void *)&stack_buf, STACK_BYTES / 1024, (void *)global_words,
	       sizeof(global_words) / 1024);

	xpmem_segid_t seg_stack = xpmem_make(&stack_buf, sizeof(stack_buf), XPMEM_PERMIT_MODE,
					     (void *)0600);
	xpmem_segid_t seg_global = xpmem_make(global_words, sizeof(global_words),
					      XPMEM_PERMIT_MODE, (void *)0600);
	if (seg_stack == -1 || seg_global == -1)
		die("exporter", "xpmem_make");

	/* Start the importer: this program again. */
	char s1[32], s2[32];
	snprintf(s1, sizeof(s1), "%#llx", (unsigned long long)seg_stack);
	snprintf(s2, sizeof(s2), "%#llx", (unsigned long long)seg_global);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("exporter", "fork");
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "import", s1, s2, (char *)NULL);
		die("importer", "exec");
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		die("exporter", "waitpid");

	/* Our own stack and global, written by the other process. */
	printf("exporter: reply in my stack buffer: \"%s\"\n", stack_buf.m.reply);
	printf("exporter: global_words[0] = %llu (the importer stored 42)\n",
	       (unsigned long long)global_words[0]);
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
		 strstr(stack_buf.m.reply, "hello back from importer") && global_words[0] == 42;
	xpmem_remove(seg_stack);
	xpmem_remove(seg_global);
	printf("shared_static: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
