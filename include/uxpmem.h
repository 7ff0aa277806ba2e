/*
 * uxpmem.h - uxpmem extensions to the XPMEM API.
 *
 * Programs written for the reference XPMEM library never need this header.
 * It adds introspection (which transport is in use and why) and
 * revocation events.  All names start with uxpmem_ / UXPMEM_.
 */
#ifndef UXPMEM_H
#define UXPMEM_H

#include <stddef.h>
#include <sys/types.h>
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

/*
 * This node's id, carried in bits 62..48 of the segids this process makes:
 * XPMEM_NODE_ID, else the id a resolver of the remote transport assigned,
 * else 0 ("local only": segids carry no node id).  -1 with errno if no
 * transport is usable (EINVAL: XPMEM_NODE_ID is not a node id).
 */
int uxpmem_node_id(void);

/*
 * Fill *info for the transport that serves segids of other nodes (a
 * plugin), loading it now if no such segid did yet.  Returns 0, or -1 with
 * errno ENOENT when no usable transport serves other nodes (info->name is
 * then NULL and info->why says why), EINVAL (info is NULL).
 */
int uxpmem_remote_transport_query(struct uxpmem_transport_info *info);

/*
 * Write back to the exporter what this process stored into its attachments
 * of segments of other nodes within [addr, addr+size) (whole pages), and
 * return once the exporter's memory holds it (release consistency: the
 * exporter, or an importer attaching anew, sees the stores after this).
 * Attachments of this node's segments are the exporter's memory itself:
 * nothing to do.  Returns 0, or -1 with errno EINVAL (the range wraps),
 * EIO (a write failed: the exporter is gone or revoked the segment),
 * ETIMEDOUT (the exporter did not complete the writes in time).
 */
int uxpmem_flush(void *addr, size_t size);

/* How much of this process's memory the selected transport can export. */
enum uxpmem_export_level {
	UXPMEM_EXPORT_ARENA = 0,  /* only memory in the arena (xpmem-run); the rest is holes */
	UXPMEM_EXPORT_USER = 1,   /* any private memory; a system call that writes exported
				   * memory during its conversion fails with EFAULT
				   * (userfaultfd user-mode-only) */
	UXPMEM_EXPORT_FULL = 2,   /* any private memory (and the kernel transport) */
};

/*
 * The export level of the selected transport in this process (enum
 * uxpmem_export_level); why (if not NULL) receives an explanation.  -1 with
 * errno if no transport is usable.
 */
int uxpmem_export_level(char *why, size_t whylen);

/* ---- revocation ---------------------------------------------------------
 * Importers are told when what they attached goes away, before they touch
 * it (touching it raises SIGBUS, as with the kernel XPMEM).  Two forms:
 * callbacks (per apid, or a process-wide default for apids without one),
 * run by a library thread; and a queue with a pollable descriptor for
 * progress engines that must not be called from a foreign thread.  Each
 * registration (every callback registration, and the queue once
 * uxpmem_revoke_fd() was called) receives each event exactly once, in
 * order per segment; events of apids already released are not delivered.
 */

/* Why an attachment was revoked. */
enum uxpmem_revoke_reason {
	UXPMEM_REVOKE_REMOVED = 1,     /* the exporter called xpmem_remove() */
	UXPMEM_REVOKE_EXITED = 2,      /* the exporter exited or was killed */
	UXPMEM_REVOKE_INVALIDATED = 3, /* the exporter changed an exported range */
	UXPMEM_REVOKE_ACCESS = 4,      /* access withdrawn for permission reasons */
	UXPMEM_REVOKE_ERROR = 5,       /* the transport lost the exporter */
};

struct uxpmem_revoke_event {
	xpmem_apid_t apid;   /* the importer's handle */
	xpmem_segid_t segid; /* the exporter's segment */
	int reason;          /* enum uxpmem_revoke_reason */
	void *addr;          /* importer range affected; NULL: every attachment of apid */
	size_t size;         /* bytes from addr (0 when addr is NULL) */
	off_t offset;        /* exporter range affected: offset in the segment ... */
	size_t length;       /* ... and bytes (offset 0, length = segment size: all of it) */
	unsigned long long seq; /* per-process event number, increasing */
};

typedef void (*uxpmem_revoke_cb)(const struct uxpmem_revoke_event *ev, void *arg);

/*
 * Register cb for revocations of apid (> 0), or as the process-wide
 * default (apid 0) for apids without their own.  cb NULL unregisters.
 * Callbacks run one at a time on a library thread that holds no library
 * lock: they may call any xpmem_* function, including xpmem_detach() and
 * xpmem_release() of the revoked apid.  Returns 0, or -1 with errno
 * EINVAL (apid < 0), ENOENT (no such apid in this process).
 */
int uxpmem_revoke_handler(xpmem_apid_t apid, uxpmem_revoke_cb cb, void *arg);

/*
 * A descriptor that is readable while revocation events are queued (poll,
 * epoll, select).  The first call creates the queue; events before it are
 * not queued.  Do not close it or read from it yourself.  -1 with errno on
 * failure.
 */
int uxpmem_revoke_fd(void);

/*
 * Dequeue up to max events into ev without blocking.  Returns how many
 * (0 if none), or -1 with errno EINVAL (ev NULL or max < 1).
 */
int uxpmem_revoke_poll(struct uxpmem_revoke_event *ev, int max);

#ifdef __cplusplus
}
#endif

#endif /* UXPMEM_H */
