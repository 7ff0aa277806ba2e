/* kernel.h - seams of the kernel transport, for its tests. */
#ifndef UXP_KERNEL_H
#define UXP_KERNEL_H

/* Every ioctl on the device goes through this pointer (tests record the
 * exact arguments and play the kernel). */
extern int (*uxp_kernel_ioctl)(int fd, unsigned long request, void *arg);
/* The device is opened through this pointer. */
extern int (*uxp_kernel_open)(const char *path, int flags);
/* pidfd_open(2) of revocation notices (notice.c): tests play a kernel
 * without it. */
extern int (*uxp_kernel_pidfd_open)(int pid);
/* Path of the device: $XPMEM_KERNEL_DEVICE, default XPMEM_DEV_PATH. */
const char *uxp_kernel_device_path(void);
/* Forget the open descriptor (tests; the fork handler does this too). */
void uxp_kernel_reset(void);

#endif
