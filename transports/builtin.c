/* builtin.c - transports compiled into libxpmem, in auto-selection order:
 * the real kernel module when it is usable, else the userspace shm. */
#include "uxp.h"

extern const struct uxp_transport uxp_kernel_transport;
extern const struct uxp_transport uxp_shm_transport;

const struct uxp_transport *const uxp_builtin_transports[] = {
	&uxp_kernel_transport,
	&uxp_shm_transport,
	NULL,
};
