/* rvtest.h - helpers of the revocation tests: start tests/revoke/rvpeer
 * (exporter or importer, exec'd and commanded over pipes, the pattern of
 * tests/shm), parse its answers, read its event records. */
#ifndef UXP_RVTEST_H
#define UXP_RVTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <check.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "testutil.h"

#define PAGE 4096UL
#define MiB (1024UL * 1024UL)

struct rvp {
	pid_t pid;
	int to, from;
	char buf[8192];
	size_t have;
	char line[8192];
};

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

/* XPMEM_TRANSPORT=shm, SIGPIPE ignored.  First in main(). */
void rv_init(void);
int rv_run(Suite *s);
/* Start a peer; arena: with LD_PRELOAD of the arena library (the test
 * fails if it is not built). */
void rv_start(struct rvp *p, int arena);
const char *rv_cmd(struct rvp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Require "ok ..."; store up to nv values; return the first (0 if none). */
long long rv_ok(struct rvp *p, long long *v, int nv, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Require "err E"; return E. */
int rv_err(struct rvp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Read event number i (0-based) of tag; fails the test if there is none. */
void rv_ev(struct rvp *p, const char *tag, int i, struct rvev *ev);
int rv_count(struct rvp *p, const char *tag);
void rv_stop(struct rvp *p); /* "exit", require status 0 */
void rv_kill(struct rvp *p); /* SIGKILL and reap */
void rv_sleep_ms(int ms);

/* The word pattern of rvpeer's fill/check: word i of a buffer filled with seed. */
static inline uint64_t rv_pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (i + 1) * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	return x;
}

#endif
