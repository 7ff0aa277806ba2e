/* shmtest.h - helpers of the shm transport tests: driving tests/shm/peer
 * (an exporter/importer process exec'd with argv and commanded over pipes),
 * data patterns, bounded waits.  Test code includes only <xpmem.h> from the
 * library. */
#ifndef UXP_SHMTEST_H
#define UXP_SHMTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <check.h>
#include <xpmem.h>
#include "testutil.h"

#define PAGE 4096UL
#define MiB (1024UL * 1024UL)
#define PAGE_DOWN(x) ((uintptr_t)(x) & ~(PAGE - 1))
#define PAGE_UP(x) (((uintptr_t)(x) + PAGE - 1) & ~(PAGE - 1))
#define ATTACH_FAILED ((void *)-1)

/* A running tests/shm/peer. */
struct peer {
	pid_t pid;
	int to;   /* its stdin */
	int from; /* its stdout */
	char buf[8192];
	size_t have;
	char line[8192];
	char sent[1024]; /* the last command sent */
	int arena;
};

/* Peer flavours for peer_start(). */
enum {
	PEER_PLAIN = 0, /* no preload: its memory is outside any arena */
	PEER_ARENA = 1, /* LD_PRELOAD=libuxpmem-arena.so; fails the test if not built */
};

/* Common setup of every shm test program: XPMEM_TRANSPORT=shm, SIGPIPE
 * ignored.  Call first in main(). */
void st_init(void);
/* Runs the suite (CK_FORK), returns the exit status for main(). */
int st_run(Suite *s);

/* Path of the arena preload library; NULL (and why in msg) if not built. */
const char *st_arena_lib(char *buf, size_t len);

void peer_start(struct peer *p, int flavour);
/* Start the line-protocol program at path (stdin/stdout on pipes,
 * XPMEM_TRANSPORT=shm, the arena preloaded for PEER_ARENA); no handshake. */
void peer_spawn(struct peer *p, const char *path, int flavour);
/* Send a command, return the reply line (without "\n").  Fails the test
 * when the peer does not answer within timeout (10 s) or died. */
const char *peer_cmd(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same in two steps, so that several peers work at once: send a
 * command; later read its reply line, failing the test when none comes
 * within timeout_ms (a hang guard: scaled with tu_guard_ms()). */
void peer_send(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *peer_recv(struct peer *p, int timeout_ms);
/* peer_cmd for a reply that may wait for a network library to start or for
 * the network (the remote transport's tests): a 20 s hang guard, scaled. */
const char *slow_cmd(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Require a slow_cmd reply "ok [v]"; returns v (0 if none). */
long long slow_ok(const char *what, const char *reply);
/* Send a command and require "ok [v ...]"; returns the first value (0 if
 * none).  peer_okv stores 4 values (0 where the reply has fewer) in vals. */
long long peer_ok(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long peer_okv(struct peer *p, long long vals[static 4], const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Send a command and require "err E"; returns E. */
int peer_err(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ask the peer to exit and require exit status 0 within 10 s. */
void peer_stop(struct peer *p);
/* Wait for a peer told to exit; it must exit 0 within 10 s. */
void peer_reap(struct peer *p);
/* SIGKILL and reap. */
void peer_kill(struct peer *p);

/* Deterministic 64-bit word pattern: word i of a buffer filled with seed. */
static inline uint64_t st_pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (i + 1) * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	return x;
}
void st_fill(void *p, size_t len, uint64_t seed);
/* Returns -1 if the buffer holds the pattern, else the first bad byte
 * offset; a signal while reading fails the test with a message. */
long st_check(const void *p, size_t len, uint64_t seed);

/* Touch p (read) until it raises a signal or ms pass; returns the signal
 * or 0 on timeout. */
int st_wait_signal(const volatile void *p, int ms);

/* Milliseconds of CLOCK_MONOTONIC. */
long long st_now_ms(void);

/* Sleep ms milliseconds. */
void st_sleep_ms(int ms);

#endif
