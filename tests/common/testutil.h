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
/* The same for an aligned 64-bit word. */
int tu_probe_read64(const volatile void *p, uint64_t *val);
/* Word 0 of every page of [p, p+len) into v[i], or the signal it raised
 * into sig[i] (else 0): one signal handler setup for the whole range. */
void tu_probe_pages(const volatile char *p, size_t len, size_t page, uint64_t *v, int *sig);
/* Number of open descriptors of this process (/proc/self/fd). */
int tu_count_fds(void);
/* setgid+setuid to the user "nobody"; returns 0 or -1 (not root, ...). */
int tu_drop_to_nobody(void);
/* 1 when the user nobody has full userfaultfd (kernel-mode faults
 * handled: vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd),
 * 0 when only user-mode-only, -1 if it cannot tell (not root). */
int tu_nobody_full_uffd(void);
/* Write/read a whole buffer on a pipe/socket; 0 or -1. */
int tu_write_all(int fd, const void *buf, size_t len);
int tu_read_all(int fd, void *buf, size_t len);
/* waitpid with a timeout in ms (a hang guard: scaled by tu_slowdown());
 * returns the status or -1 on timeout (the child is then killed with
 * SIGKILL and reaped). */
int tu_wait_child(pid_t pid, int timeout_ms);
/* How much slower than a quiet native run this one may be, for hang
 * guards (never for what a test asserts): UXP_TEST_SLOWDOWN if set (a
 * number >= 1), else valgrind (UXP_VALGRIND=1) x20, a TSan build x5, an
 * ASan build x3, times the 1-minute load average per online CPU when above
 * 1.  Computed once per process. */
double tu_slowdown(void);
/* A hang guard of ms milliseconds / s seconds at normal speed, scaled:
 * for deadlines, alarm() and Check's tcase_set_timeout(). */
int tu_guard_ms(int ms);
unsigned tu_guard_s(unsigned s);
/* The same for a timeout inside peer processes (e.g. XPMEM_RDMA_TIMEOUT_MS),
 * without valgrind's factor: valgrind runs only the test program, the peers
 * it starts run natively. */
int tu_peer_guard_ms(int ms);
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

/* Send the library's log at level (NULL: the default) to path, emptied
 * first (path must exist); call before the library's first call. */
void tu_log_to(const char *path, const char *level);
/* The text of a file (at most len - 1 bytes), "" if unreadable; buf. */
const char *tu_read_text(const char *path, char *buf, size_t len);

#endif
