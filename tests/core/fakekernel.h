/* fakekernel.h - a recording stand-in for the XPMEM kernel module, plugged
 * into the kernel transport's seams (transports/kernel/kernel.h). */
#ifndef UXP_FAKEKERNEL_H
#define UXP_FAKEKERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <xpmem.h>

#define FK_MAX_CALLS 64
#define FK_VERSION 0x00026003
#define FK_SEGID INT64_C(0x123400000001)
#define FK_APID INT64_C(0x567800000001)
#define FK_ATTACH_ADDR UINT64_C(0x7f1234560000)

struct fk_call {
	int fd;
	unsigned long req;
	bool null_arg;
	union {
		struct xpmem_cmd_make make;
		struct xpmem_cmd_remove remove;
		struct xpmem_cmd_get get;
		struct xpmem_cmd_release release;
		struct xpmem_cmd_attach attach;
		struct xpmem_cmd_detach detach;
	} u; /* the argument as the library passed it in */
};

struct fk_state {
	struct fk_call calls[FK_MAX_CALLS];
	int ncalls;           /* ioctls seen (also those past FK_MAX_CALLS) */
	int opens;            /* opens through the seam (probe included) */
	int open_flags;       /* flags of the last open */
	char open_path[256];  /* path of the last open */
	int version;          /* what VERSION answers */
	int fail[8];          /* errno for the next ioctls; 0 = succeed */
	int nfail;
	int open_fail;        /* errno for the next open; 0 = real open */
	unsigned open_delay_us; /* widen the first-open race window */
	int64_t next_id;      /* serial added to FK_SEGID / FK_APID */
};
extern struct fk_state fk;

/* Forget recorded calls and failures; install the seams. */
void fk_install(void);
void fk_clear(void);
/* Queue errnos for the next ioctls (0 ends the list). */
void fk_fail_next(int e1, int e2);
/* Did fd refer to the device file (same inode as path)? */
bool fk_fd_is_device(int fd, const char *path);

#endif
