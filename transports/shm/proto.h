/* proto.h - the shm transport's control protocol.
 *
 * One fixed-size message per SOCK_SEQPACKET packet; a GET_REPLY may carry
 * one descriptor (SCM_RIGHTS).  uxp_msg_decode() is a pure function over
 * the received bytes so that it can be fuzzed; every message is checked
 * before any field is used.
 */
#ifndef UXP_SHM_PROTO_H
#define UXP_SHM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define UXP_PROTO_MAGIC 0x4d505855u /* "UXPM" */
#define UXP_PROTO_VERSION 1

enum uxp_msg_type {
	UXP_MSG_GET = 1,       /* importer -> exporter: segid, flags */
	UXP_MSG_GET_REPLY,     /* exporter -> importer: status, grant, ranges [+ fd] */
	UXP_MSG_RELEASE,       /* importer -> exporter: grant (no reply) */
	UXP_MSG_REVOKE,        /* exporter -> importer: grant, reason */
	UXP_MSG_REVOKE_ACK,    /* importer -> exporter: grant, after zapping */
	UXP_MSG_RESOLVE,       /* importer -> exporter: grant, exporter range addr+len
				* [, UXP_RESOLVE_NEED] */
	UXP_MSG_RESOLVE_REPLY, /* exporter -> importer: status, count pieces [+ fds] */
	UXP_MSG_INVALIDATE,    /* exporter -> importer: exporter range addr+len changed */
	UXP_MSG_INVALIDATE_ACK, /* importer -> exporter: seq, after zapping */
	UXP_MSG_TYPE_MAX = UXP_MSG_INVALIDATE_ACK,
};

/* RESOLVE flag: convert nothing outside [seg_vaddr, seg_vaddr+seg_size),
 * the range the importer attaches (within addr+len); the rest of addr+len is
 * answered from what is shared already, else a hole.  0+0: convert nothing. */
#define UXP_RESOLVE_NEED 0x1u

/* What backs one piece of an exporter range (RESOLVE_REPLY). */
enum uxp_piece_kind {
	UXP_PIECE_HOLE = 1,   /* nothing shareable: SIGBUS when touched */
	UXP_PIECE_ARENA,      /* the arena memfd the importer got with the grant */
	UXP_PIECE_FD,         /* descriptor number fd of the reply, at offset */
	UXP_PIECE_SYSV,       /* SysV segment id fd (no descriptor), at offset: the
			       * importer attaches it with shmat(2) itself */
};

struct uxp_piece {
	uint64_t addr;        /* exporter address, page aligned */
	uint64_t len;         /* bytes, page multiple */
	uint64_t offset;      /* in the backing file */
	uint32_t kind;
	uint32_t fd;          /* index into the reply's descriptors (UXP_PIECE_FD),
			       * or the SysV segment id (UXP_PIECE_SYSV) */
};

#define UXP_MAX_PIECES 64
#define UXP_MAX_FDS 32

/* Why a grant is revoked. */
enum uxp_revoke_reason {
	UXP_REVOKE_REMOVED = 1, /* xpmem_remove */
	UXP_REVOKE_EXITED,      /* exporter exited (connection closed) */
};

struct uxp_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	int32_t status;       /* replies: 0 or -errno */
	uint32_t flags;       /* GET: XPMEM_RDONLY or XPMEM_RDWR; RESOLVE: UXP_RESOLVE_NEED */
	uint64_t seq;         /* request id, echoed by the reply */
	int64_t segid;        /* GET */
	uint64_t grant;       /* GET_REPLY, RELEASE, REVOKE, REVOKE_ACK */
	uint64_t seg_vaddr;   /* GET_REPLY: segment range in the exporter; RESOLVE: need */
	uint64_t seg_size;
	uint64_t arena_base;  /* GET_REPLY: arena range; size 0 = no descriptor */
	uint64_t arena_size;
	uint32_t reason;      /* REVOKE */
	uint32_t count;       /* RESOLVE_REPLY: pieces that follow the message */
	uint64_t addr;        /* RESOLVE, INVALIDATE: exporter range */
	uint64_t len;
};

/* A message with the pieces of a RESOLVE_REPLY. */
struct uxp_msgbuf {
	struct uxp_msg m;
	struct uxp_piece piece[UXP_MAX_PIECES];
};

/* Fill the header of a message of the given type (other fields zero). */
void uxp_msg_init(struct uxp_msg *m, enum uxp_msg_type type);

/* Validate len bytes received with nfds descriptors; on success copy them
 * to *out (pieces included) and return 0, else -EBADMSG (malformed) or
 * -EPROTO (version). */
int uxp_msg_decode(const void *buf, size_t len, unsigned nfds, struct uxp_msgbuf *out);

/* Send m (and fd if >= 0).  flags: extra send flags (MSG_DONTWAIT).
 * 0 or -errno. */
int uxp_msg_send(int sock, const struct uxp_msg *m, int fd, int flags);

/* Send a RESOLVE_REPLY with its pieces and nfds descriptors. */
int uxp_msg_send_pieces(int sock, const struct uxp_msgbuf *b, const int *fds, unsigned nfds,
			int flags);

/* The same, waiting at most timeout_ms while the peer's queue is full
 * (-ETIMEDOUT), never longer: a reader that is slow, not one that is
 * stuck, must not lose the message. */
int uxp_msg_send_within(int sock, const struct uxp_msg *m, int fd, long timeout_ms);
int uxp_msg_send_pieces_within(int sock, const struct uxp_msgbuf *b, const int *fds, unsigned nfds,
			       long timeout_ms);

/* Receive one message without blocking.  1 and its descriptors (fds[],
 * *nfds; at most UXP_MAX_FDS) on a message, 0 on end of stream, -EAGAIN if
 * nothing is pending, -EBADMSG / -EPROTO for a bad message (descriptors
 * received with it are closed), other -errno on error. */
int uxp_msg_recv(int sock, struct uxp_msgbuf *b, int *fds, unsigned *nfds);

#endif
