/* testutil.h - small helpers shared by the multi-process tests. */
#ifndef UXP_TESTUTIL_H
#define UXP_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read/write one byte at p; return 0 or the signal it raised (SIGBUS,
 * SIGSEGV).  *val receives the byte read. */
int tu_probe_read(const volatile void *p, unsigned char *val);
int tu_probe_write(volatile void *p, unsigned char val);
/* Number of open descriptors of this process (/proc/self/fd). */
int tu_count_fds(void);
/* setgid+setuid to the user "nobody"; returns 0 or -1 (not root, ...). */
int tu_drop_to_nobody(void);
/* Write/read a whole buffer on a pipe/socket; 0 or -1. */
int tu_write_all(int fd, const void *buf, size_t len);
int tu_read_all(int fd, void *buf, size_t len);
/* waitpid with a timeout in ms; returns the status or -1 on timeout (the
 * child is then killed with SIGKILL and reaped). */
int tu_wait_child(pid_t pid, int timeout_ms);
/* A program built with AddressSanitizer or ThreadSanitizer cannot host the
 * arena preload (both replace malloc): programs whose peers need the arena
 * call this first and are skipped (exit 77) in the ASan and TSan builds. */
void tu_require_preload(void);
/* Programs that test glibc malloc's behaviour (munmap on free, the mmap
 * threshold) skip (exit 77) in sanitizer builds, whose allocator replaces it. */
void tu_require_libc_malloc(void);
/* 0 (and why on stderr) when this program's threads cannot all be stopped
 * at a signal: ThreadSanitizer's runtime has a thread of its own that
 * blocks every signal, so an exporter built with it never converts .data
 * (tests of .data skip there). */
int tu_threads_stoppable(const char *what);
/* 1 when running under valgrind (UXP_VALGRIND=1, set by tests/sanitize.sh). */
int tu_under_valgrind(void);
/* Path of a file in the build tree ($UXP_BUILDDIR or "."). */
const char *tu_builddir_path(const char *rel, char *buf, size_t len);

#endif
