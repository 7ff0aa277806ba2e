/*
 * uxpmem.h - uxpmem extensions to the XPMEM API.
 *
 * Programs written for the reference XPMEM library never need this header.
 * It adds introspection (which transport is in use and why) and, in later
 * versions, revocation events.  All names start with uxpmem_ / UXPMEM_.
 */
#ifndef UXPMEM_H
#define UXPMEM_H

#include <stddef.h>
#include <xpmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XPMEM API level implemented (the reference's XPMEM_CURRENT_VERSION). */
#define UXPMEM_REFERENCE_VERSION 0x00026003

/* Version of this library, e.g. "0.1.0". */
const char *uxpmem_version_string(void);

/*
 * Name of the transport the library selected for this process ("kernel",
 * "shm", ...), selecting it now if no call did yet.  NULL (errno set) if
 * no transport is usable.
 */
const char *uxpmem_transport_name(void);

/* Information about one transport known to the library. */
struct uxpmem_transport_info {
	const char *name;        /* "kernel", "shm", ... */
	const char *description; /* one line */
	int usable;              /* 1 if it would work in this process now */
	char why[256];           /* if !usable: precisely why not; else details */
};

/*
 * Fill *info for transport number index (0, 1, ...).  Returns 0, or -1 with
 * errno ENOENT past the last transport.
 */
int uxpmem_transport_query(unsigned index, struct uxpmem_transport_info *info);

#ifdef __cplusplus
}
#endif

#endif /* UXPMEM_H */
