/* notice.h - revocation notices of the kernel transport (notice.c).
 *
 * The XPMEM module tells importers nothing, so uxpmem does it on both
 * sides.  Wire format, on the exporter's AF_UNIX SOCK_SEQPACKET socket in
 * the abstract namespace "\0uxpmem-kernel.TGID" (TGID: the exporter's
 * global pid, as the module writes it into its segids): fixed messages of
 * struct uxp_kn_msg, native byte order (both ends are on one node).
 */
#ifndef UXP_KERNEL_NOTICE_H
#define UXP_KERNEL_NOTICE_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <xpmem.h>

#define UXP_KN_MAGIC 0x4e4b5855u /* "UXKN" */
#define UXP_KN_VERSION 1
#define UXP_KN_NAME "uxpmem-kernel."

enum uxp_kn_type {
	UXP_KN_REMOVED = 1,   /* exporter -> importers: segid was removed (size: its size) */
	UXP_KN_SUBSCRIBE = 2, /* importer -> exporter: it got segid (size: 0) */
	UXP_KN_SIZE = 3,      /* exporter -> that importer: segid's size */
};

struct uxp_kn_msg {
	uint32_t magic;   /* UXP_KN_MAGIC */
	uint16_t version; /* UXP_KN_VERSION */
	uint16_t type;    /* enum uxp_kn_type */
	int64_t segid;    /* > 0, and made by the exporter at the other end */
	uint64_t size;    /* bytes of the segment; 0 if unknown */
};

/* The exporter's tgid in a segid of the module (struct xpmem_id { pid_t
 * tgid; unsigned uniq; } viewed as __s64). */
pid_t uxp_kn_segid_tgid(xpmem_segid_t segid);
/* The address of the notice socket of exporter tgid; returns its length. */
socklen_t uxp_kn_addr(pid_t tgid, struct sockaddr_un *sun);

/* ---- called by kernel.c (never by attach or detach) ---- */
/* After a successful MAKE: record the segment, listen (first time). */
void uxp_kn_made(xpmem_segid_t segid, uintptr_t vaddr, size_t size);
/* After a successful REMOVE: tell the importers (bounded wait). */
void uxp_kn_removed(xpmem_segid_t segid);
/* Before the GET ioctl: watch the exporter; returns a ticket (NULL: no
 * events possible) that uxp_kn_get_end() must be given after the ioctl,
 * with the apid (0 if the GET failed). */
void *uxp_kn_get_begin(xpmem_segid_t segid);
void uxp_kn_get_end(void *ticket, xpmem_segid_t segid, xpmem_apid_t apid);
/* After a successful RELEASE. */
void uxp_kn_released(xpmem_apid_t apid);
/* Forked child: forget the parent's sockets, pidfds, tables, thread. */
void uxp_kn_fork_child(void);

#endif
