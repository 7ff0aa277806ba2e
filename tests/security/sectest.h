/* sectest.h - helpers of the security tests: a raw client (or fake server)
 * speaking the shm wire format directly (transports/shm/proto.h), and
 * forked children running as another uid that report results over a pipe.
 * The exporter/importer peers are tests/shm/peer (driven with shmtest.h). */
#ifndef UXP_SECTEST_H
#define UXP_SECTEST_H

#include <stdint.h>
#include <sys/types.h>
#include "shmtest.h"
#include "proto.h"

#define UID_OTHER 12346 /* a uid with no passwd entry: neither root nor nobody */

/* Segid/apid layout (docs/design.md): node 62..48, pid 47..26, serial 25..0. */
static inline int64_t sec_id(unsigned node, pid_t pid, uint32_t serial)
{
	return (int64_t)(((uint64_t)node << 48) | ((uint64_t)pid << 26) | (serial & ((1u << 26) - 1)));
}
static inline pid_t sec_id_pid(int64_t id)
{
	return (pid_t)(((uint64_t)id >> 26) & ((1u << 22) - 1));
}

/* Skip (return 0, message on stderr) unless root. */
int sec_need_root(const char *what);
/* Become uid/gid (no supplementary groups); 0 or -1. */
int sec_become(uid_t uid, gid_t gid);

/* Raw client: connect to pid's service socket (abstract name or
 * $XPMEM_SHM_SOCKET_DIR).  fd or -errno. */
int sec_connect(pid_t pid);
/* Bind+listen the service name of pid (an impostor/fake exporter). fd or -errno. */
int sec_listen(pid_t pid);
int sec_send(int fd, const struct uxp_msg *m);
/* Send raw bytes as one packet. */
int sec_send_raw(int fd, const void *buf, size_t len);
/* Wait up to ms for one packet.  Returns its length (0: EOF), -ETIMEDOUT,
 * or -errno.  *nfds: descriptors that came with it (kept open in fds[0..3],
 * others closed); m filled with the first sizeof(*m) bytes. */
long sec_recv(int fd, struct uxp_msg *m, int *fds, int *nfds, int ms);
/* A GET for segid/flags with seq. */
void sec_get_msg(struct uxp_msg *m, int64_t segid, uint32_t flags, uint64_t seq);

/* Results a child reports: up to 32 longs. */
struct sec_res {
	long v[32];
};
typedef void (*sec_fn)(void *arg, struct sec_res *r);
/* Fork a child that becomes uid (>= 0) / stays (-1), runs fn and writes r
 * to the parent.  Returns the pid; *rfd the read end. */
pid_t sec_spawn(long uid, sec_fn fn, void *arg, int *rfd);
/* Wait for the child's results (ms) and reap it: fails the test if none. */
void sec_collect(pid_t pid, int rfd, struct sec_res *r, int ms);

/* Sum of utime+stime ticks of pid (from /proc/pid/stat), -1 on error. */
long sec_cpu_ticks(pid_t pid);
/* Number of descriptors of pid (/proc/pid/fd), -1 on error. */
int sec_count_fds(pid_t pid);
/* Number of this process's descriptors that are memfds named uxpmem-arena. */
int sec_count_arena_fds(void);
/* Read one line from a peer without sending a command (after writing one
 * directly with sec_peer_send). */
void sec_peer_send(struct peer *p, const char *line);
const char *sec_peer_line(struct peer *p, int ms);

#endif
