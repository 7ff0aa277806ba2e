/* rawpeer.c - an exporter of the kernel transport tests that does not run
 * uxpmem: it plays MAKE and REMOVE on the fake module itself (no notice
 * socket), and on command serves a hand-made notice socket: as itself (to
 * send well-formed or malformed notices) or under another process's name
 * (an impostor).  Not linked with libxpmem.
 *
 * Commands, one per line on stdin, one answer line on stdout ("ok ..." or
 * "err ERRNO"; numbers decimal or 0x-hex):
 *   hello                  -> ok PID
 *   exit                   -> ok, then exit(0)
 *   make SIZE              -> ok SEGID
 *   remove SEGID           -> ok
 *   listen [PID]           -> ok: listen on the notice name of PID (default: ours)
 *   conns                  -> ok N: accept what waits, N connections in all
 *   send TYPE SEGID SIZE [MAGIC [VERSION]]
 *                          -> ok N: accept what waits, send that message to
 *                             every connection, N sent
 *   sendraw TEXT           -> ok N: the bytes of TEXT instead
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "fakexpmem.h"
#include "notice.h"

#define MAXCONN 64

static int lfd = -1;
static int conns[MAXCONN];
static int nconn;

static unsigned long long num(char **save, unsigned long long def)
{
	char *t = strtok_r(NULL, " \t\n", save);
	return t ? strtoull(t, NULL, 0) : def;
}

static void accept_waiting(void)
{
	while (lfd >= 0 && nconn < MAXCONN) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		conns[nconn++] = fd;
	}
}

static int send_all(const void *buf, size_t len)
{
	int n = 0;
	accept_waiting();
	for (int i = 0; i < nconn; i++)
		n += send(conns[i], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len;
	return n;
}

int main(void)
{
	char line[1024];
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL;
		char *cmd = strtok_r(line, " \t\n", &save);
		if (!cmd)
			continue;
		if (!strcmp(cmd, "hello")) {
			printf("ok %d\n", (int)getpid());
		} else if (!strcmp(cmd, "exit")) {
			printf("ok\n");
			exit(0);
		} else if (!strcmp(cmd, "make")) {
			struct xpmem_cmd_make c = { .size = num(&save, 4096), .permit_type = XPMEM_PERMIT_MODE,
						    .permit_value = 0600 };
			fx_ioctl(-1, XPMEM_CMD_MAKE, &c) ? printf("err %d\n", errno)
							 : printf("ok %lld\n", (long long)c.segid);
		} else if (!strcmp(cmd, "remove")) {
			struct xpmem_cmd_remove c = { .segid = (int64_t)num(&save, 0) };
			fx_ioctl(-1, XPMEM_CMD_REMOVE, &c) ? printf("err %d\n", errno) : printf("ok\n");
		} else if (!strcmp(cmd, "listen")) {
			/* the name notice.h documents: "\0uxpmem-kernel.PID" */
			int pid = (int)num(&save, (unsigned long long)getpid());
			struct sockaddr_un sun = { .sun_family = AF_UNIX };
			int n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, UXP_KN_NAME "%d", pid);
			socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
			lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, len) < 0 || listen(lfd, 64) < 0)
				printf("err %d\n", errno);
			else
				printf("ok\n");
		} else if (!strcmp(cmd, "conns")) {
			accept_waiting();
			printf("ok %d\n", nconn);
		} else if (!strcmp(cmd, "send")) {
			struct uxp_kn_msg m = { .type = (uint16_t)num(&save, 0) };
			m.segid = (int64_t)num(&save, 0);
			m.size = num(&save, 0);
			m.magic = (uint32_t)num(&save, UXP_KN_MAGIC);
			m.version = (uint16_t)num(&save, UXP_KN_VERSION);
			printf("ok %d\n", send_all(&m, sizeof(m)));
		} else if (!strcmp(cmd, "sendraw")) {
			char *t = strtok_r(NULL, "\n", &save);
			printf("ok %d\n", t ? send_all(t, strlen(t)) : 0);
		} else {
			printf("err %d\n", ENOSYS);
		}
	}
	return 0;
}
