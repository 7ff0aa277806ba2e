/* rvtest.h - helpers of the revocation tests: tests/revoke/rvpeer (exporter
 * or importer) is driven like tests/shm/peer, with tests/shm/shmtest.c
 * (peer_cmd, peer_err, peer_kill, st_*); here only what rvpeer adds:
 * answers with many values and its event records. */
#ifndef UXP_RVTEST_H
#define UXP_RVTEST_H

#include <uxpmem.h>
#include "shmtest.h"

/* One event record of a peer (see rvpeer.c "ev"). */
struct rvev {
	unsigned long long seq;
	int reason;
	long long apid, segid;
	unsigned long addr;
	size_t size;
	long long offset;
	size_t length;
	long long t_ns;
	int probe;
};

/* Start rvpeer; arena: with LD_PRELOAD of the arena library (the test
 * fails if it is not built). */
void rv_start(struct peer *p, int arena);
/* Require "ok ..."; store up to nv values; return the first (0 if none). */
long long rv_ok(struct peer *p, long long *v, int nv, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Read event number i (0-based) of tag; fails the test if there is none. */
void rv_ev(struct peer *p, const char *tag, int i, struct rvev *ev);
int rv_count(struct peer *p, const char *tag);
void rv_stop(struct peer *p); /* "exit" (rvpeer answers "ok NS"), require status 0 */

#endif
