/* proto.c - encode, decode and move control messages (see proto.h). */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "uxp.h"
#include "proto.h"

void uxp_msg_init(struct uxp_msg *m, enum uxp_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->magic = UXP_PROTO_MAGIC;
	m->version = UXP_PROTO_VERSION;
	m->type = (uint16_t)type;
}

static int check_pieces(const struct uxp_msgbuf *b, unsigned nfds)
{
	const struct uxp_msg *m = &b->m;
	uint64_t at = m->addr;

	if (m->count == 0 || m->count > UXP_MAX_PIECES)
		return -EBADMSG;
	for (unsigned i = 0; i < m->count; i++) {
		const struct uxp_piece *p = &b->piece[i];
		/* pieces tile [addr, addr+len) in order, without overflow */
		if (p->addr != at || p->len == 0 || p->addr + p->len < p->addr)
			return -EBADMSG;
		if (p->kind < UXP_PIECE_HOLE || p->kind > UXP_PIECE_SYSV)
			return -EBADMSG;
		if (p->kind == UXP_PIECE_SYSV && p->fd > INT32_MAX)
			return -EBADMSG;
		if (p->kind == UXP_PIECE_FD && p->fd >= nfds)
			return -EBADMSG;
		if (p->offset + p->len < p->offset)
			return -EBADMSG;
		at += p->len;
	}
	return at == m->addr + m->len ? 0 : -EBADMSG;
}

static int check_fields(const struct uxp_msgbuf *b, size_t npieces, unsigned nfds)
{
	const struct uxp_msg *m = &b->m;

	/* count is used (deliver_reply copies count pieces): 0 but in a RESOLVE_REPLY */
	if (m->type != UXP_MSG_RESOLVE_REPLY && (npieces || m->count))
		return -EBADMSG;
	switch (m->type) {
	case UXP_MSG_GET:
		if (m->segid <= 0 || (m->flags != XPMEM_RDONLY && m->flags != XPMEM_RDWR))
			return -EBADMSG;
		return nfds == 0 ? 0 : -EBADMSG;
	case UXP_MSG_GET_REPLY:
		if (m->status > 0 || m->status < -4095)
			return -EBADMSG;
		if (m->status == 0 && (m->grant == 0 || m->seg_size == 0 ||
				       m->seg_vaddr + m->seg_size < m->seg_vaddr ||
				       m->arena_base + m->arena_size < m->arena_base))
			return -EBADMSG;
		/* exactly one descriptor with an arena, none otherwise */
		return nfds == (m->status == 0 && m->arena_size ? 1u : 0u) ? 0 : -EBADMSG;
	case UXP_MSG_RELEASE:
	case UXP_MSG_REVOKE_ACK:
		return m->grant && nfds == 0 ? 0 : -EBADMSG;
	case UXP_MSG_REVOKE:
		if (m->reason != UXP_REVOKE_REMOVED && m->reason != UXP_REVOKE_EXITED)
			return -EBADMSG;
		return m->grant && nfds == 0 ? 0 : -EBADMSG;
	case UXP_MSG_RESOLVE:
	case UXP_MSG_INVALIDATE:
		if (!m->len || m->addr + m->len < m->addr || (m->type == UXP_MSG_RESOLVE && !m->grant))
			return -EBADMSG;
		return nfds == 0 ? 0 : -EBADMSG;
	case UXP_MSG_INVALIDATE_ACK:
		return nfds == 0 ? 0 : -EBADMSG;
	case UXP_MSG_RESOLVE_REPLY:
		if (m->status > 0 || m->status < -4095)
			return -EBADMSG;
		if (m->status < 0)
			return npieces == 0 && m->count == 0 && nfds == 0 ? 0 : -EBADMSG;
		if (npieces != m->count || nfds > UXP_MAX_FDS)
			return -EBADMSG;
		return check_pieces(b, nfds);
	default:
		return -EBADMSG;
	}
}

int uxp_msg_decode(const void *buf, size_t len, unsigned nfds, struct uxp_msgbuf *out)
{
	struct uxp_msgbuf b;
	size_t npieces;

	if (len < sizeof(b.m) || len > sizeof(b) ||
	    (len - sizeof(b.m)) % sizeof(struct uxp_piece))
		return -EBADMSG;
	memcpy(&b, buf, len);
	npieces = (len - sizeof(b.m)) / sizeof(struct uxp_piece);
	if (b.m.magic != UXP_PROTO_MAGIC)
		return -EBADMSG;
	if (b.m.version != UXP_PROTO_VERSION)
		return -EPROTO;
	int ret = check_fields(&b, npieces, nfds);
	if (ret < 0)
		return ret;
	memcpy(out, &b, len);
	return 0;
}

static int send_buf(int sock, const void *buf, size_t len, const int *fds, unsigned nfds, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(UXP_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > UXP_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EMSGSIZE;
	}
}

/* send_buf without blocking for more than timeout_ms while the peer's
 * queue is full (it reads slowly); -ETIMEDOUT then. */
static int send_buf_within(int sock, const void *buf, size_t len, const int *fds, unsigned nfds,
			   long timeout_ms)
{
	long long deadline = uxp_now_ms() + timeout_ms;
	for (;;) {
		int ret = send_buf(sock, buf, len, fds, nfds, MSG_DONTWAIT);
		long long left = deadline - uxp_now_ms();
		if (ret != -EAGAIN)
			return ret;
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = sock, .events = POLLOUT };
		if (poll(&p, 1, (int)(left < 100 ? left : 100)) < 0 && errno != EINTR)
			return -errno;
	}
}

int uxp_msg_send_within(int sock, const struct uxp_msg *m, int fd, long timeout_ms)
{
	return send_buf_within(sock, m, sizeof(*m), &fd, fd >= 0 ? 1 : 0, timeout_ms);
}

int uxp_msg_send_pieces_within(int sock, const struct uxp_msgbuf *b, const int *fds, unsigned nfds,
			       long timeout_ms)
{
	if (b->m.count > UXP_MAX_PIECES)
		return -EINVAL;
	return send_buf_within(sock, b, sizeof(b->m) + b->m.count * sizeof(struct uxp_piece), fds, nfds,
			       timeout_ms);
}

int uxp_msg_send(int sock, const struct uxp_msg *m, int fd, int flags)
{
	return send_buf(sock, m, sizeof(*m), &fd, fd >= 0 ? 1 : 0, flags);
}

int uxp_msg_send_pieces(int sock, const struct uxp_msgbuf *b, const int *fds, unsigned nfds,
			int flags)
{
	if (b->m.count > UXP_MAX_PIECES)
		return -EINVAL;
	return send_buf(sock, b, sizeof(b->m) + b->m.count * sizeof(struct uxp_piece), fds, nfds, flags);
}

/* Collect the descriptors of a received message; closes extras beyond max. */
static unsigned take_fds(struct msghdr *mh, int *fds, unsigned max)
{
	unsigned n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < cnt; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n] = fd;
			else
				close(fd);
			n++;
		}
	}
	return n;
}

int uxp_msg_recv(int sock, struct uxp_msgbuf *b, int *fds, unsigned *nfds)
{
	char buf[sizeof(*b) + 1]; /* one more byte to see oversized packets */
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE((UXP_MAX_FDS + 1) * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	unsigned got = take_fds(&mh, fds, UXP_MAX_FDS);
	if (n == 0 && got == 0)
		return 0;
	int ret = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || got > UXP_MAX_FDS ? -EBADMSG
		  : uxp_msg_decode(buf, (size_t)n, got, b);
	if (ret < 0) {
		for (unsigned i = 0; i < got && i < UXP_MAX_FDS; i++)
			close(fds[i]);
		return ret;
	}
	*nfds = got;
	return 1;
}
