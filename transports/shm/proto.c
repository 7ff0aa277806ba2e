/* proto.c - encode, decode and move control messages (see proto.h). */
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

static int check_fields(const struct uxp_msg *m, unsigned nfds)
{
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
	default:
		return -EBADMSG;
	}
}

int uxp_msg_decode(const void *buf, size_t len, unsigned nfds, struct uxp_msg *out)
{
	struct uxp_msg m;

	if (len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, buf, sizeof(m));
	if (m.magic != UXP_PROTO_MAGIC)
		return -EBADMSG;
	if (m.version != UXP_PROTO_VERSION)
		return -EPROTO;
	int ret = check_fields(&m, nfds);
	if (ret < 0)
		return ret;
	*out = m;
	return 0;
}

int uxp_msg_send(int sock, const struct uxp_msg *m, int fd, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
		if (n == (ssize_t)sizeof(*m))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EMSGSIZE;
	}
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

int uxp_msg_recv(int sock, struct uxp_msg *m, int *fd)
{
	char buf[sizeof(*m) + 1]; /* one more byte to see oversized packets */
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	int fds[4];
	unsigned nfds = take_fds(&mh, fds, 4);
	if (n == 0 && nfds == 0)
		return 0;
	int ret = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -EBADMSG
		  : uxp_msg_decode(buf, (size_t)n, nfds, m);
	if (ret < 0) {
		for (unsigned i = 0; i < nfds && i < 4; i++)
			close(fds[i]);
		return ret;
	}
	if (nfds)
		*fd = fds[0];
	return 1;
}
