/* shm.h - internals shared by the files of the shm transport. */
#ifndef UXP_SHM_H
#define UXP_SHM_H

#include <sys/types.h>
#include "uxp.h"
#include "proto.h"

/* ---- connections (service.c) -------------------------------------------
 * A connection is either accepted from an importer (we export) or made to
 * an exporter (we import).  The service thread is its only reader; any
 * thread may send.  The descriptor is closed when the last reference goes,
 * so a sender never writes to a recycled descriptor. */
enum uxp_conn_role { UXP_CONN_FROM_IMPORTER = 1, UXP_CONN_TO_EXPORTER };

struct uxp_waiter;
struct uxp_conn {
	int fd;
	enum uxp_conn_role role;
	pid_t peer_pid;
	uid_t peer_uid;
	gid_t peer_gid;
	gid_t *peer_groups;  /* supplementary groups (SO_PEERGROUPS) */
	int npeer_groups;
	int refs;           /* atomic */
	int dead;           /* atomic: peer closed or protocol error */
	int close_error;    /* closed for a protocol error (set before dead) */
	/* TO_EXPORTER, under lock: grants revoked before their apid existed
	 * (the REVOKE overtook the thread that got the reply) */
	uint64_t orphans[16];
	unsigned norphans;
	pthread_mutex_t lock;
	struct uxp_waiter *waiters; /* pending requests (TO_EXPORTER) */
	unsigned napids;    /* apids using it (TO_EXPORTER), under lock */
	struct uxp_conn *next; /* in the registry (service.c) */
};

/* Start the service thread (and epoll) if this process has none yet. */
int uxp_svc_ensure(void);
/* Make this process reachable (listening socket named from the pid). */
int uxp_svc_listen(void);
/* Connection to the exporter process pid, shared, new reference.  Checks
 * SO_PEERCRED.pid == pid.  -ENOENT if nobody serves that pid. */
int uxp_svc_connect(pid_t pid, struct uxp_conn **out);
/* Send req on c and wait for the reply with the same seq (bounded).  The
 * reply's descriptors land in fds[] (UXP_MAX_FDS slots), *nfds of them. */
int uxp_svc_request(struct uxp_conn *c, struct uxp_msg *req, struct uxp_msgbuf *reply, int *fds,
		    unsigned *nfds);
void uxp_conn_get(struct uxp_conn *c);
void uxp_conn_put(struct uxp_conn *c);
/* An importer that could not be told of a revocation or invalidation in
 * time: drop its connection (any thread; the service thread tears it down
 * and the importer, when it runs again, maps SIGBUS over everything it had
 * of us before anything else it reads from that connection). */
void uxp_conn_disconnect(struct uxp_conn *c, const char *why);
/* Forget everything inherited from the parent (forked child). */
void uxp_svc_fork_child(void);
/* Socket address of pid's service; returns its length. */
socklen_t uxp_svc_addr(pid_t pid, const char *suffix, void *sockaddr_un);

/* ---- exporter side (exporter.c), called by the service thread ---------- */
void uxp_exp_handle(struct uxp_conn *c, const struct uxp_msg *m);
void uxp_exp_conn_closed(struct uxp_conn *c);
int uxp_exp_make(uintptr_t vaddr, size_t size, uint32_t mode, xpmem_segid_t *segid);
int uxp_exp_remove(xpmem_segid_t segid);
void uxp_exp_fork_child(void);

/* ---- importer side (importer.c) ---------------------------------------- */
void uxp_imp_handle(struct uxp_conn *c, const struct uxp_msg *m);
/* error: closed for a protocol error rather than by the peer */
void uxp_imp_conn_closed(struct uxp_conn *c, int error);
int uxp_imp_get(xpmem_segid_t segid, int flags, xpmem_apid_t *apid);
int uxp_imp_release(xpmem_apid_t apid);
int uxp_imp_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr);
int uxp_imp_detach(uintptr_t vaddr);
void uxp_imp_fork_child(void);

/* ---- exporting any memory (convert.c) ----------------------------------- */
enum { UXP_UFFD_NONE = 0, UXP_UFFD_USER, UXP_UFFD_FULL };
/* The userfaultfd level of this process; why[] explains it. */
int uxp_uffd_level(char *why, size_t whylen);
/* Queue a RESOLVE for the converter thread (it replies on c). */
int uxp_conv_submit(struct uxp_conn *c, const struct uxp_msg *m, int rdonly, int arena_ok,
		    uintptr_t seg_start, uintptr_t seg_end, int whole);
/* An importer's connection closed (service thread). */
void uxp_conv_conn_closed(struct uxp_conn *c);
/* An importer acknowledged INVALIDATE seq. */
void uxp_conv_acked(struct uxp_conn *c, uint64_t seq);
/* Library threads that may run during a conversion call this first. */
void uxp_conv_exclude_self(void);
void uxp_conv_fork_child(void);
/* Register for the arena's unmap notices (exporters, once). */
void uxp_conv_watch_arena(void);
/* Send INVALIDATE [a, b) to conns and wait (bounded) for their acknowledgements. */
void uxp_conv_invalidate(struct uxp_conn *const *conns, unsigned n, uintptr_t a, uintptr_t b);

/* ---- arena holes (arenaholes.c) ------------------------------------------
 * What the arena has from a on (uxpmem_arena_mapped_v1: 1 memory, 0 none,
 * 2 something mapped over it) up to *end <= b; a hole is remembered as
 * given to c, which is invalidated when memory is mapped there. */
int uxp_arena_run(struct uxp_conn *c, uintptr_t a, uintptr_t b, uintptr_t *end);
void uxp_arena_holes_watch(void);
void uxp_arena_holes_conn_closed(struct uxp_conn *c);
void uxp_arena_holes_fork_child(void);
/* Connections holding a grant with the arena descriptor (references
 * taken), at most max of them. */
unsigned uxp_exp_arena_conns(struct uxp_conn **conns, unsigned max);
/* This process's arena, if it has one (exporter.c). */
struct uxpmem_arena_v1;
int uxp_exp_arena(struct uxpmem_arena_v1 *a);

/* ---- the application's shared mappings (shared.c) ----------------------- */
/* The SysV segment id a mapping (its /proc/self/maps path, device and
 * inode) maps, or -1 if it is no SysV segment. */
int uxp_shared_sysv_id(const char *path, dev_t dev, ino_t ino);
/* A descriptor of the file (dev, ino) that the mapping [vstart, vend) of
 * this process maps: read-write if writable and permitted, else read-only.
 * -errno and why[] if there is none to be had. */
int uxp_shared_open(uintptr_t vstart, uintptr_t vend, dev_t dev, ino_t ino, int writable,
		    char *why, size_t whylen);
/* What the importer of c may do with the file fd (or SysV segment shmid
 * if >= 0) by its own permissions: 04 read, 02 write. */
unsigned uxp_shared_access(int fd, int shmid, const struct uxp_conn *c);
/* Is gid c's peer's primary or a supplementary group? (exporter.c) */
int uxp_conn_in_group(const struct uxp_conn *c, gid_t gid);
/* Does [a, ...) lie in one of this process's own attachments (importer.c)?
 * Then it is not ours to export. */
int uxp_imp_owns(uintptr_t a);

/* ---- helpers (shm.c) ---------------------------------------------------- */
/* A sealed zero-length memfd: mapping it makes every touch raise SIGBUS. */
int uxp_hole_fd(void);
/* A fresh non-zero serial for segids/apids of this process. */
uint32_t uxp_next_serial(void);
/* 0 if XPMEM_USERFAULTFD=0. */
int uxp_userfaultfd_allowed(void);
/* Milliseconds from an environment variable. */
long uxp_timeout_ms(const char *env, long def);

#endif
