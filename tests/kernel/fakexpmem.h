/* fakexpmem.h - a cross-process stand-in for the XPMEM kernel module, for
 * the kernel transport's revocation tests (there is no /dev/xpmem here).
 *
 * Segids and apids are laid out like the module's (struct xpmem_id {
 * pid_t tgid; unsigned uniq; } viewed as __s64, tgid = getpid(): the tests
 * run in the initial pid namespace).  A segment is the file
 * $XPMEM_FAKE_DIR/seg.SEGID holding its size, so that a GET in another
 * process finds it, and fails with ENOENT after the REMOVE or once the
 * exporter is gone.  ATTACH maps anonymous memory (the content is not the
 * point), DETACH unmaps it, RELEASE forgets the apid.  With
 * XPMEM_FAKE_GET_HOLD set, a GET that found its segment waits (see
 * fx_get) so that a test can remove it or end its exporter while the GET
 * is in flight.
 *
 * fakeinstall.c plugs fx_ioctl into the kernel transport's seam before
 * main() when XPMEM_FAKE_DIR is set; tests/kernel/rawpeer calls it
 * directly (an exporter that does not run uxpmem). */
#ifndef UXP_FAKEXPMEM_H
#define UXP_FAKEXPMEM_H

#include <stdint.h>
#include <sys/types.h>
#include <xpmem.h>

#define FX_VERSION 0x00026003

/* The ioctl of the fake module (same contract as ioctl(2)). */
int fx_ioctl(int fd, unsigned long request, void *arg);
/* A segid/apid as the module composes it. */
int64_t fx_id(pid_t tgid, unsigned uniq);

#endif
