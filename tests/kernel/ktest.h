/* ktest.h - helpers of the kernel transport's revocation tests.
 *
 * Peers run with XPMEM_TRANSPORT=kernel on the cross-process fake module
 * (fakexpmem.h; $XPMEM_FAKE_DIR is a directory made per test program) and
 * log at debug level to $XPMEM_FAKE_DIR/log.PID:
 *   tests/kernel/kpeer   tests/revoke/rvpeer's commands (see rvpeer.c)
 *                        with the fake module plugged in: runs uxpmem
 *   tests/kernel/rawpeer an exporter without uxpmem (see rawpeer.c)
 * They are driven with tests/shm/shmtest.c (peer_cmd, peer_kill, ...) and
 * tests/revoke/rvtest.c (rv_ok, rv_ev, rv_count, rv_stop). */
#ifndef UXP_KTEST_H
#define UXP_KTEST_H

#include <uxpmem.h>
#include "rvtest.h"

#define KT_WAIT_MS 5000  /* bound of every wait for something that must happen */
#define KT_QUIET_MS 300  /* how long nothing more must arrive */

enum { KT_KPEER, KT_RAWPEER };

/* First in main(): the fake module's directory, SIGPIPE ignored. */
void kt_init(void);
/* Start a peer; env (may be NULL) is one more "NAME=VALUE" for it. */
void kt_start(struct peer *p, int kind, const char *env);
/* Send a command without reading its answer (the peer is busy with it),
 * then read the answer later. */
void kt_send(struct peer *p, const char *cmd);
const char *kt_answer(struct peer *p);
/* Path of a file in the fake module's directory. */
const char *kt_path(const char *name, int pid, char *buf, size_t len);
/* Wait (bounded) until that file exists. */
int kt_wait_file(const char *path, int ms);
/* The peer's log contains needle (waiting up to ms for it). */
int kt_log_has(pid_t pid, const char *needle, int ms);
/* Open descriptors of process pid. */
int kt_nfds(pid_t pid);
/* Wait (bounded) until process pid has n descriptors; returns the count. */
int kt_wait_nfds(pid_t pid, int n, int ms);

/* Require exactly one event of tag with these fields (and none more). */
void kt_check_ev(const struct rvev *ev, int reason, long long apid, long long segid, size_t length,
		 const char *what);

#endif
