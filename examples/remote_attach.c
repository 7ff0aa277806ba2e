/*
 * remote_attach.c - attach memory of a process on another node (the rdma
 * transport, over libfabric) and the consistency model it gives.
 *
 * One program, two "nodes": it forks before its first xpmem call, and each
 * process takes its own node id (XPMEM_NODE_ID 1: the exporter, 2: the
 * importer); they find each other through the shared-directory resolver
 * (XPMEM_RESOLVER=dir:PATH; a temporary directory unless set).  On two real
 * nodes, run the two halves with the same PATH on a shared file system.
 *
 *   1. the exporter fills 1 MiB and xpmem_make()s it; its segid carries
 *      its node id, so the importer's xpmem_get() goes to the exporter
 *      over the network;
 *   2. the importer attaches it (filled by RDMA on first touch), checks
 *      it, stores into one page and calls uxpmem_flush(): release
 *      consistency, its stores reach the exporter at a flush or detach;
 *   3. the exporter sees them, then maps new memory over another page
 *      (as free + malloc might): the importer gets UXPMEM_REVOKE_INVALIDATED
 *      before that mmap returns, and its next touch reads the new data;
 *   4. the exporter removes the segment: UXPMEM_REVOKE_REMOVED.
 *
 * Run:  XPMEM_RESOLVER=dir:/shared/dir ./remote_attach   (FI_PROVIDER picks
 *       libfabric's provider, e.g. "tcp;ofi_rxm" or "shm").  Exit status 0
 *       and "remote_attach: OK" when all of the above held; 77 when no
 *       remote transport is usable here (the reason is printed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xpmem.h>
#include <uxpmem.h>

#define SIZE (1 << 20)
#define PAGE 4096

static int to_imp[2], to_exp[2]; /* the two nodes' own wire-up channel */

static void say(int fd, long long v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		exit(3);
}

static long long hear(int fd)
{
	long long v;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		exit(3);
	return v;
}

/* The next revocation event (the descriptor form, see uxpmem_revoke_fd(3)). */
static int next_event(struct uxpmem_revoke_event *ev)
{
	struct pollfd p = { uxpmem_revoke_fd(), POLLIN, 0 };
	for (int i = 0; i < 100; i++) {
		if (uxpmem_revoke_poll(ev, 1) == 1)
			return 0;
		poll(&p, 1, 100);
	}
	return -1;
}

static int exporter(void)
{
	char *buf = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	for (int i = 0; i < SIZE; i++)
		buf[i] = (char)(i % 251);
	xpmem_segid_t segid = xpmem_make(buf, SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (segid == -1) {
		perror("exporter: xpmem_make");
		say(to_imp[1], -1);
		return 1;
	}
	say(to_imp[1], segid);
	hear(to_exp[0]); /* the importer flushed */
	int ok = buf[8 * PAGE] == 'N' && buf[8 * PAGE + 1] == 'B';
	printf("exporter (node 1): the importer's stores are here after its flush: %s\n",
	       ok ? "yes" : "NO");
	/* new memory over page 16 (its old contents are gone) */
	char *p = mmap(buf + 16 * PAGE, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	strcpy(p, "new data");
	say(to_imp[1], 1);
	hear(to_exp[0]);
	xpmem_remove(segid);
	say(to_imp[1], 2);
	hear(to_exp[0]);
	return ok ? 0 : 1;
}

static int importer(void)
{
	struct uxpmem_revoke_event ev;
	int bad = 0;
	xpmem_segid_t segid = hear(to_imp[0]);
	if (segid == -1)
		return 1;
	uxpmem_revoke_fd(); /* queue revocation events from now on */
	struct uxpmem_transport_info info;
	if (uxpmem_remote_transport_query(&info) != 0) {
		printf("importer: no remote transport: %s\n", info.why);
		return 77;
	}
	xpmem_apid_t apid = xpmem_get(segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (apid == -1) {
		perror("importer: xpmem_get");
		return 1;
	}
	struct xpmem_addr addr = { apid, 0 };
	char *att = xpmem_attach(addr, SIZE, NULL);
	if (att == (void *)-1) {
		perror("importer: xpmem_attach");
		return 1;
	}
	for (int i = 0; i < SIZE; i++)
		bad += att[i] != (char)(i % 251);
	printf("importer (node 2): segid %#llx of node %lld attached, %d bad bytes\n",
	       (unsigned long long)segid, (long long)(segid >> 48), bad);
	att[8 * PAGE] = 'N';
	att[8 * PAGE + 1] = 'B';
	if (uxpmem_flush(att, SIZE) != 0)
		perror("importer: uxpmem_flush");
	say(to_exp[1], 0);
	hear(to_imp[0]); /* the exporter remapped page 16: we were told already */
	if (next_event(&ev) == 0 && ev.reason == UXPMEM_REVOKE_INVALIDATED)
		printf("importer: invalidated: offset %lld, %zu bytes\n", (long long)ev.offset,
		       ev.length);
	else
		bad++;
	printf("importer: page 16 now reads \"%s\"\n", att + 16 * PAGE);
	bad += strcmp(att + 16 * PAGE, "new data") != 0;
	say(to_exp[1], 0);
	hear(to_imp[0]); /* removed */
	/* an invalidation may be told more than once (an event is a hint to
	 * drop what was cached, never harmful twice): skip those */
	int got;
	while ((got = next_event(&ev)) == 0 && ev.reason == UXPMEM_REVOKE_INVALIDATED)
		;
	if (got == 0 && ev.reason == UXPMEM_REVOKE_REMOVED)
		printf("importer: the exporter removed the segment\n");
	else
		bad++;
	xpmem_detach(att);
	xpmem_release(apid);
	say(to_exp[1], 0);
	return bad ? 1 : 0;
}

int main(void)
{
	char dir[] = "/tmp/uxpmem-remote-XXXXXX", res[64];
	int own_dir = !getenv("XPMEM_RESOLVER");
	setvbuf(stdout, NULL, _IOLBF, 0); /* both processes' lines in order */
	if (own_dir) {
		if (!mkdtemp(dir))
			return 1;
		snprintf(res, sizeof(res), "dir:%s", dir);
		setenv("XPMEM_RESOLVER", res, 1);
	}
	if (pipe(to_imp) || pipe(to_exp))
		return 1;
	pid_t pid = fork(); /* before any xpmem call: one node id each */
	if (pid == 0) {
		setenv("XPMEM_NODE_ID", "1", 1);
		int r = exporter();
		fflush(stdout);
		_exit(r);
	}
	setenv("XPMEM_NODE_ID", "2", 1);
	int ret = importer(), st = 0;
	if (ret == 77)
		kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	if (own_dir) {
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	if (ret == 77) {
		printf("remote_attach: no remote transport here (see xpmem-info)\n");
		return 77;
	}
	int ok = ret == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	printf("remote_attach: %s\n", ok ? "OK" : "FAILED");
	return ok ? 0 : 1;
}
