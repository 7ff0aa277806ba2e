/* fuzz_proto.c - fuzz targets of the shm transport's control protocol.
 *
 * Two targets (see fuzz.h for the input formats):
 *   decode - uxp_msg_decode() against an independent oracle, then the same
 *            bytes and descriptors through a socketpair and uxp_msg_recv();
 *   conn   - a real connection of the service thread's code, fed packet by
 *            packet: conn_event() -> uxp_msg_recv() -> direction check ->
 *            dispatch -> uxp_exp_handle()/handle_get() or deliver_reply() /
 *            uxp_imp_handle(), then the peer closes (conn_close ->
 *            uxp_exp_conn_closed / uxp_imp_conn_closed).  Every message the
 *            library sends back must decode, a granted descriptor must
 *            follow the grant policy (read-only stays read-only, no arena
 *            descriptor across uids for a partial segment), a grant must
 *            never exceed the mode, and nothing may leak (LSan, and
 *            /proc/self/fd counted around each input when uxp_fuzz_fdcheck).
 *
 * service.c is included here so that its static functions (conn_event,
 * conn_new, ...) and state (svc_epfd, svc_listen_fd) are reachable: the
 * harness plays the service thread itself, with no thread, no epoll loop
 * and no listening socket.  The harness therefore replaces service.o: link
 * it before the library archive (libxpmem_core), never with a shared libxpmem.
 */
#include "service.c"

#include <dirent.h>
#include <sys/mman.h>
#include "arena/arena.h"
#include "fuzz.h"

#define FUZZ_MAX_PACKET 4096
#define FUZZ_MAX_RECORDS 64
#define FUZZ_NSEGS 4
#define FUZZ_MAX_GRANTS 8

int uxp_fuzz_fdcheck;
static enum uxp_fuzz_target fuzz_target = UXP_FUZZ_DECODE;
static int devnull = -1;
static int dec_sv[2] = { -1, -1 }; /* decode target: persistent socketpair */

#define FUZZ_CHECK(cond, ...)                                                 \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s: ", \
				__FILE__, __LINE__, #cond);                   \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			abort();                                              \
		}                                                             \
	} while (0)

/* ---- the fake arena: libxpmem looks it up with dlsym(RTLD_DEFAULT) ----- */
static struct uxpmem_arena_v1 fake_arena = { .fd = -1 };

__attribute__((visibility("default"))) int uxpmem_arena_query_v1(struct uxpmem_arena_v1 *out);
__attribute__((visibility("default"))) int uxpmem_arena_query_v1(struct uxpmem_arena_v1 *out)
{
	if (fake_arena.fd < 0)
		return -ENOENT;
	*out = fake_arena;
	return 0;
}

/* ---- segments exported by this process -------------------------------- */
struct fuzz_seg {
	xpmem_segid_t segid;
	uintptr_t vaddr;
	size_t size;
	uint32_t mode;
};
static struct fuzz_seg segs_tab[FUZZ_NSEGS];

static int whole(const struct fuzz_seg *s)
{
	return s->vaddr == 0 && s->size >= uxp_user_top() - uxp_page_size;
}

/* Independent statement of the kernel XPMEM's permission rule. */
static int may(const struct fuzz_seg *s, uid_t uid, gid_t gid, uint32_t flags)
{
	if (uid == 0)
		return 1;
	uint32_t bits = uid == geteuid() ? s->mode >> 6 : gid == getegid() ? s->mode >> 3 : s->mode;
	if (!(bits & 4))
		return 0;
	return flags == XPMEM_RDWR ? !!(bits & 2) : 1;
}

static const struct fuzz_seg *seg_by_id(int64_t segid)
{
	for (int i = 0; i < FUZZ_NSEGS; i++)
		if (segs_tab[i].segid == segid)
			return &segs_tab[i];
	return NULL;
}

/* ---- helpers ------------------------------------------------------------ */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#define FUZZ_MAX_SEND_FDS 63
/* Send one packet with nfds descriptors of /dev/null (0-63). */
static int send_packet(int sock, const void *buf, size_t len, unsigned nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FUZZ_MAX_SEND_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		int fds[FUZZ_MAX_SEND_FDS];
		for (unsigned i = 0; i < nfds; i++)
			fds[i] = devnull;
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* What the decoder must accept: the protocol of proto.h, stated again. */
static int oracle_pieces(const struct uxp_msgbuf *b, size_t npieces, unsigned nfds)
{
	const struct uxp_msg *m = &b->m;
	if (m->count == 0 || m->count > UXP_MAX_PIECES || npieces != m->count || nfds > UXP_MAX_FDS)
		return 0;
	uint64_t at = m->addr;
	for (size_t i = 0; i < npieces; i++) {
		const struct uxp_piece *p = &b->piece[i];
		if (p->addr != at || p->len == 0 || p->len > UINT64_MAX - p->addr ||
		    p->offset > UINT64_MAX - p->len)
			return 0;
		if (p->kind != UXP_PIECE_HOLE && p->kind != UXP_PIECE_ARENA && p->kind != UXP_PIECE_FD &&
		    p->kind != UXP_PIECE_SYSV)
			return 0;
		if (p->kind == UXP_PIECE_FD && p->fd >= nfds)
			return 0;
		/* a SysV segment id is a non-negative int (shmat's shmid) */
		if (p->kind == UXP_PIECE_SYSV && p->fd > (uint32_t)INT32_MAX)
			return 0;
		at += p->len;
	}
	return m->len <= UINT64_MAX - m->addr && at == m->addr + m->len;
}

static int oracle_valid(const struct uxp_msgbuf *b, size_t npieces, unsigned nfds)
{
	const struct uxp_msg *m = &b->m;
	if (m->magic != UXP_PROTO_MAGIC || m->version != UXP_PROTO_VERSION)
		return 0;
	/* count (and pieces) only in a RESOLVE_REPLY: service.c copies count
	 * pieces of any reply it delivers */
	if ((npieces || m->count) && m->type != UXP_MSG_RESOLVE_REPLY)
		return 0;
	switch (m->type) {
	case UXP_MSG_GET:
		return m->segid > 0 && (m->flags == XPMEM_RDONLY || m->flags == XPMEM_RDWR) && nfds == 0;
	case UXP_MSG_GET_REPLY:
		if (m->status > 0 || m->status < -4095)
			return 0;
		if (m->status < 0)
			return nfds == 0;
		return m->grant != 0 && m->seg_size != 0 &&
		       m->seg_vaddr <= UINT64_MAX - m->seg_size &&
		       m->arena_base <= UINT64_MAX - m->arena_size &&
		       nfds == (m->arena_size ? 1u : 0u);
	case UXP_MSG_RELEASE:
	case UXP_MSG_REVOKE_ACK:
		return m->grant != 0 && nfds == 0;
	case UXP_MSG_REVOKE:
		return m->grant != 0 && nfds == 0 &&
		       (m->reason == UXP_REVOKE_REMOVED || m->reason == UXP_REVOKE_EXITED);
	case UXP_MSG_RESOLVE:
	case UXP_MSG_INVALIDATE:
		return m->len != 0 && m->len <= UINT64_MAX - m->addr && nfds == 0 &&
		       (m->type == UXP_MSG_INVALIDATE || m->grant != 0);
	case UXP_MSG_INVALIDATE_ACK:
		return nfds == 0;
	case UXP_MSG_RESOLVE_REPLY:
		if (m->status > 0 || m->status < -4095)
			return 0;
		if (m->status < 0)
			return npieces == 0 && m->count == 0 && nfds == 0;
		return oracle_pieces(b, npieces, nfds);
	default:
		return 0;
	}
}

/* ---- target 1: decode (+ the same bytes through recvmsg) ---------------- */
int uxp_fuzz_decode(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > FUZZ_MAX_PACKET)
		return 0;
	/* up to UXP_MAX_FDS + 1 (33) also exercises the too-many/MSG_CTRUNC path */
	unsigned nfds = data[0] % (UXP_MAX_FDS + 2);
	const uint8_t *p = data + 1;
	size_t len = size - 1;
	static struct uxp_msgbuf b, poison, raw, again, b2;
	const size_t hdr = sizeof(b.m), psz = sizeof(struct uxp_piece);

	memset(&poison, 0xa5, sizeof(poison));
	b = poison;
	int r = uxp_msg_decode(p, len, nfds, &b);
	FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO, "decode returned %d", r);
	int framed = len >= hdr && len <= sizeof(raw) && (len - hdr) % psz == 0;
	if (framed) {
		memset(&raw, 0, sizeof(raw));
		memcpy(&raw, p, len);
	}
	if (r < 0) {
		FUZZ_CHECK(memcmp(&b, &poison, sizeof(b)) == 0, "decode wrote *out on error %d", r);
		if (framed) {
			FUZZ_CHECK(!oracle_valid(&raw, (len - hdr) / psz, nfds),
				   "valid message refused (%d), type %u", r, raw.m.type);
			FUZZ_CHECK((r == -EPROTO) == (raw.m.magic == UXP_PROTO_MAGIC &&
						      raw.m.version != UXP_PROTO_VERSION),
				   "-EPROTO iff right magic, wrong version (got %d)", r);
		}
	} else {
		FUZZ_CHECK(framed, "accepted %zu bytes", len);
		FUZZ_CHECK(memcmp(&b, p, len) == 0, "decoded message differs from the bytes");
		FUZZ_CHECK(memcmp((char *)&b + len, (char *)&poison + len, sizeof(b) - len) == 0,
			   "decode wrote past the %zu bytes of the message", len);
		FUZZ_CHECK(oracle_valid(&raw, (len - hdr) / psz, nfds),
			   "invalid message accepted: type %u nfds %u", raw.m.type, nfds);
		again = poison;
		FUZZ_CHECK(uxp_msg_decode(&b, len, nfds, &again) == 0 &&
			   memcmp(&again, &b, len) == 0, "decode is not idempotent");
	}

	/* The same packet through the kernel: uxp_msg_recv must agree. */
	if (send_packet(dec_sv[1], p, len, nfds) < 0)
		return 0;
	int fds[UXP_MAX_FDS];
	unsigned got = 12345;
	b2 = poison;
	for (unsigned i = 0; i < UXP_MAX_FDS; i++)
		fds[i] = -2;
	int r2 = uxp_msg_recv(dec_sv[0], &b2, fds, &got);
	int want = len == 0 && nfds == 0 ? 0 : nfds > UXP_MAX_FDS ? -EBADMSG
		   : len > sizeof(b) ? -EBADMSG : r == 0 ? 1 : r;
	FUZZ_CHECK(r2 == want, "uxp_msg_recv returned %d, expected %d (decode %d, len %zu, nfds %u)",
		   r2, want, r, len, nfds);
	if (r2 == 1) {
		FUZZ_CHECK(memcmp(&b2, &b, len) == 0, "recv and decode disagree");
		FUZZ_CHECK(got == nfds, "%u descriptors received, %u sent", got, nfds);
		for (unsigned i = 0; i < got; i++) {
			FUZZ_CHECK(fds[i] >= 0 && (fcntl(fds[i], F_GETFD) & FD_CLOEXEC),
				   "received descriptor %d without CLOEXEC", fds[i]);
			close(fds[i]);
		}
	} else {
		FUZZ_CHECK(got == 0, "no message but *nfds = %u", got);
	}
	return 0;
}

/* ---- target 2: a live connection ---------------------------------------- */
/* RESOLVE converts the exporter's memory in place (convert.c): keep it to a
 * scratch mapping of ours, never libFuzzer's or the sanitizers' memory. */
#define FUZZ_SCRATCH_PAGES 16
static uintptr_t scratch;

static void confine_resolve(uint8_t *buf, size_t len)
{
	struct uxp_msg m;
	if (len < sizeof(m))
		return;
	memcpy(&m, buf, sizeof(m));
	if (m.type != UXP_MSG_RESOLVE)
		return;
	uint64_t size = FUZZ_SCRATCH_PAGES * uxp_page_size;
	uint64_t off = m.addr % size;
	m.addr = scratch + off;
	if (m.len > size - off)
		m.len = size - off;
	memcpy(buf + offsetof(struct uxp_msg, addr), &m.addr, 8);
	memcpy(buf + offsetof(struct uxp_msg, len), &m.len, 8);
}

struct conn_state {
	int importer;           /* we import: the peer is an exporter */
	uid_t uid;
	gid_t gid;
	uint64_t grants[FUZZ_MAX_GRANTS];
	unsigned ngrants;
	int get_pending;        /* the last packet was a valid GET */
	struct uxp_msg get;
};

static void fixup(uint8_t *buf, size_t len, const struct conn_state *st)
{
	size_t so = offsetof(struct uxp_msg, segid), go = offsetof(struct uxp_msg, grant);
	if (len >= so + 8) {
		int64_t v;
		memcpy(&v, buf + so, 8);
		if (v >= 1 && v <= FUZZ_NSEGS)
			memcpy(buf + so, &segs_tab[v - 1].segid, 8);
	}
	if (len >= go + 8) {
		uint64_t v;
		memcpy(&v, buf + go, 8);
		if (v >= 1 && v <= st->ngrants)
			memcpy(buf + go, &st->grants[v - 1], 8);
	}
}

/* Check a GET_REPLY of the exporter side against the GET it answers. */
static void check_reply(struct conn_state *st, const struct uxp_msg *r, const int *fds,
			unsigned nfds)
{
	FUZZ_CHECK(st->get_pending, "GET_REPLY without a GET");
	st->get_pending = 0;
	FUZZ_CHECK(r->seq == st->get.seq, "reply seq %llu for GET seq %llu",
		   (unsigned long long)r->seq, (unsigned long long)st->get.seq);
	const struct fuzz_seg *s = seg_by_id(st->get.segid);
	int ok = s && may(s, st->uid, st->gid, st->get.flags);
	if (!s) {
		FUZZ_CHECK(r->status == -ENOENT, "GET of an unknown segid: status %d", r->status);
	} else if (!ok) {
		FUZZ_CHECK(r->status == -EACCES, "uid %d gid %d mode %03o flags %u: status %d",
			   (int)st->uid, (int)st->gid, s->mode, st->get.flags, r->status);
	} else {
		FUZZ_CHECK(r->status == 0, "permitted GET refused: %d", r->status);
	}
	FUZZ_CHECK(nfds <= 1, "%u descriptors with a GET_REPLY", nfds);
	if (r->status != 0) {
		FUZZ_CHECK(nfds == 0, "descriptor with a refusal");
		return;
	}
	FUZZ_CHECK(r->seg_vaddr == s->vaddr && r->seg_size == s->size, "wrong segment range");
	int fd_allowed = st->uid == 0 || st->uid == geteuid() || whole(s);
	FUZZ_CHECK((nfds == 1) == fd_allowed, "%u arena descriptors to uid %d for segid mode %03o",
		   nfds, (int)st->uid, s->mode);
	if (nfds) {
		int acc = fcntl(fds[0], F_GETFL) & O_ACCMODE;
		FUZZ_CHECK(acc == (st->get.flags == XPMEM_RDWR ? O_RDWR : O_RDONLY),
			   "grant flags %u but descriptor access mode %d", st->get.flags, acc);
		FUZZ_CHECK(r->arena_base == fake_arena.base && r->arena_size == fake_arena.size,
			   "wrong arena range");
	}
	if (st->ngrants < FUZZ_MAX_GRANTS)
		st->grants[st->ngrants++] = r->grant;
}

/* Read everything the library sent to the peer; all of it must decode. */
static void drain_peer(int sock, struct conn_state *st)
{
	static struct uxp_msgbuf b;
	for (;;) {
		int fds[UXP_MAX_FDS];
		unsigned nfds;
		int r = uxp_msg_recv(sock, &b, fds, &nfds);
		if (r == -EAGAIN || r == 0)
			return;
		FUZZ_CHECK(r == 1, "the library sent a bad message: %d", r);
		if (st->importer) {
			FUZZ_CHECK(b.m.type == UXP_MSG_RELEASE || b.m.type == UXP_MSG_REVOKE_ACK ||
				   b.m.type == UXP_MSG_INVALIDATE_ACK || b.m.type == UXP_MSG_RESOLVE,
				   "importer sent type %u", b.m.type);
		} else if (b.m.type == UXP_MSG_GET_REPLY) {
			check_reply(st, &b.m, fds, nfds);
		} else {
			FUZZ_CHECK(b.m.type == UXP_MSG_RESOLVE_REPLY || b.m.type == UXP_MSG_REVOKE ||
				   b.m.type == UXP_MSG_INVALIDATE, "exporter sent type %u", b.m.type);
		}
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

#define FUZZ_NWAITERS 2

int uxp_fuzz_conn(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct conn_state st = { .importer = data[0] & 1 };
	unsigned who = (data[0] >> 1) & 3;
	switch (who) {
	case 0: st.uid = geteuid(); st.gid = getegid(); break;
	case 1: st.uid = 0; st.gid = 0; break;
	case 2: st.uid = 65534; st.gid = 65534; break;
	default: st.uid = 65534; st.gid = getegid(); break; /* group bits */
	}
	if (who >= 2 && st.uid == geteuid()) /* running as 65534 */
		st.uid = 65533;
	data++;
	size--;

	int sv[2];
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
		   strerror(errno));
	struct uxp_conn *c = conn_new(sv[0], st.importer ? UXP_CONN_TO_EXPORTER
							 : UXP_CONN_FROM_IMPORTER);
	FUZZ_CHECK(c, "conn_new");
	c->peer_pid = getpid();
	c->peer_uid = st.uid;
	c->peer_gid = st.gid;
	pthread_mutex_lock(&svc_lock);
	FUZZ_CHECK(conn_register(c) == 0, "conn_register");
	pthread_mutex_unlock(&svc_lock);
	uxp_conn_get(c); /* ours: c stays readable after conn_close */

	/* Importer side: requests seq 1 and 2 waiting for replies, as
	 * application threads in uxp_svc_request would be.  Heap buffers of
	 * exactly the size the callers have, so that ASan sees overflows. */
	struct uxp_waiter w[FUZZ_NWAITERS];
	if (st.importer)
		for (int i = 0; i < FUZZ_NWAITERS; i++) {
			memset(&w[i], 0, sizeof(w[i]));
			w[i].seq = (uint64_t)i + 1;
			w[i].reply = malloc(sizeof(*w[i].reply));
			w[i].fds = malloc(UXP_MAX_FDS * sizeof(int));
			FUZZ_CHECK(w[i].reply && w[i].fds, "malloc");
			pthread_cond_init(&w[i].cond, NULL);
			pthread_mutex_lock(&c->lock);
			w[i].next = c->waiters;
			c->waiters = &w[i];
			pthread_mutex_unlock(&c->lock);
		}

	static uint8_t buf[FUZZ_MAX_PACKET];
	for (int rec = 0; rec < FUZZ_MAX_RECORDS && size >= 3; rec++) {
		uint8_t h = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, data, len);
		data += len;
		size -= len;
		if (h & 0x40)
			fixup(buf, len, &st);
		if (!st.importer)
			confine_resolve(buf, len);
		unsigned nfds = h & 0x3f;

		st.get_pending = 0;
		if (!st.importer && len == sizeof(struct uxp_msg) && nfds == 0) {
			memcpy(&st.get, buf, sizeof(st.get));
			st.get_pending = st.get.type == UXP_MSG_GET &&
					 oracle_valid((const struct uxp_msgbuf *)&st.get, 0, 0);
		}
		if (send_packet(sv[1], buf, len, nfds) < 0)
			break;
		conn_event(c);
		drain_peer(sv[1], &st);
		int dead = __atomic_load_n(&c->dead, __ATOMIC_ACQUIRE);
		FUZZ_CHECK(!st.get_pending || dead, "GET seq %llu not answered",
			   (unsigned long long)st.get.seq);
		if (dead)
			break;
	}

	/* The peer goes away: the service sees end of stream and tears down. */
	close(sv[1]);
	if (!__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		conn_event(c);
	FUZZ_CHECK(__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE), "connection alive after peer close");
	FUZZ_CHECK(c->waiters == NULL, "waiters left on a closed connection");
	if (st.importer)
		for (int i = 0; i < FUZZ_NWAITERS; i++) {
			FUZZ_CHECK(w[i].done, "waiter %d not woken", i);
			if (w[i].status == 0) {
				const struct uxp_msg *r = &w[i].reply->m;
				FUZZ_CHECK(r->seq == w[i].seq && (r->type == UXP_MSG_GET_REPLY ||
								   r->type == UXP_MSG_RESOLVE_REPLY),
					   "waiter %llu got seq %llu type %u", (unsigned long long)w[i].seq,
					   (unsigned long long)r->seq, r->type);
				FUZZ_CHECK(w[i].nfds <= UXP_MAX_FDS, "%u descriptors", w[i].nfds);
				for (unsigned k = 0; k < w[i].nfds; k++)
					close(w[i].fds[k]); /* the application's now */
			} else {
				FUZZ_CHECK(w[i].status == -ENOENT && w[i].nfds == 0,
					   "waiter failed with %d, %u descriptors", w[i].status, w[i].nfds);
			}
			pthread_cond_destroy(&w[i].cond);
			free(w[i].reply);
			free(w[i].fds);
		}
	/* Grants of this connection hold references: all must be gone.  A
	 * request handed to another thread (RESOLVE -> converter) may hold one
	 * a little longer: give it 2 s, then it is a leak (or a hang). */
	for (int i = 0; i < 20000 && __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) > 1; i++)
		usleep(100);
	FUZZ_CHECK(__atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) == 1, "%d references left",
		   c->refs);
	uxp_conn_put(c); /* closes sv[0] */
	return 0;
}

/* ---- set-up and entry points -------------------------------------------- */
int uxp_fuzz_setup(void)
{
	static int done;
	if (done)
		return 0;
	done = 1;
	if (!uxp_page_size)
		uxp_page_size = (size_t)sysconf(_SC_PAGESIZE);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, dec_sv) < 0)
		return -errno;
	/* Be the service without its thread: uxp_svc_ensure/uxp_svc_listen see
	 * an epoll instance and a listening descriptor and do nothing. */
	svc_epfd = epoll_create1(EPOLL_CLOEXEC);
	svc_listen_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (svc_epfd < 0 || svc_listen_fd < 0)
		return -errno;
	/* A small arena (memfd), as libuxpmem-arena.so would report it. */
	fake_arena.fd = memfd_create("uxpmem-fuzz-arena", MFD_CLOEXEC);
	if (fake_arena.fd < 0 || ftruncate(fake_arena.fd, (off_t)(4 * uxp_page_size)) < 0)
		return -errno;
	fake_arena.base = 0x100000000ull;
	fake_arena.size = 4 * uxp_page_size;
	fake_arena.generation = 1;

	void *sp = mmap(NULL, FUZZ_SCRATCH_PAGES * uxp_page_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sp == MAP_FAILED)
		return -errno;
	memset(sp, 0x5a, FUZZ_SCRATCH_PAGES * uxp_page_size);
	scratch = (uintptr_t)sp;

	const struct fuzz_seg proto[FUZZ_NSEGS] = {
		{ 0, 0x100000000ull, uxp_page_size, 0600 },            /* owner only */
		{ 0, 0x100000000ull + uxp_page_size, uxp_page_size, 0444 }, /* read for all */
		{ 0, 0, uxp_user_top(), 0666 },                        /* whole address space */
		{ 0, 0x200000000ull, uxp_page_size, 0060 },            /* group only */
	};
	for (int i = 0; i < FUZZ_NSEGS; i++) {
		segs_tab[i] = proto[i];
		int ret = uxp_exp_make(segs_tab[i].vaddr, segs_tab[i].size, segs_tab[i].mode,
				       &segs_tab[i].segid);
		if (ret < 0)
			return ret;
	}
	/* Warm up what the exporter keeps for the process's life, so that the
	 * fd count of the first real input does not see it: the cached
	 * read-only reopen of the arena (a read-only GET from our uid) and the
	 * conversion of the scratch mapping (a RESOLVE of all of it through
	 * the whole-address-space segment 3). */
	struct uxp_msg m;
	uxp_msg_init(&m, UXP_MSG_GET);
	m.seq = 7;
	m.segid = 3; /* fixed up */
	m.flags = XPMEM_RDONLY;
	uint8_t in[1 + 2 * (3 + sizeof(m))] = { 0, 0x40, (uint8_t)sizeof(m), 0 };
	memcpy(in + 4, &m, sizeof(m));
	/* ... and a RESOLVE of that grant: the converter's lazy state too */
	uxp_msg_init(&m, UXP_MSG_RESOLVE);
	m.seq = 8;
	m.grant = 1; /* fixed up */
	m.addr = 0; /* confined: the scratch */
	m.len = FUZZ_SCRATCH_PAGES * uxp_page_size;
	uint8_t *r = in + 4 + sizeof(m);
	r[0] = 0x40;
	r[1] = (uint8_t)sizeof(m);
	r[2] = 0;
	memcpy(r + 3, &m, sizeof(m));
	return uxp_fuzz_conn(in, sizeof(in));
}

void uxp_fuzz_select(enum uxp_fuzz_target t)
{
	fuzz_target = t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *t = getenv("UXP_FUZZ_TARGET");
	if (t && strcmp(t, "conn") == 0)
		fuzz_target = UXP_FUZZ_CONN;
	else if (t && strcmp(t, "decode") != 0) {
		fprintf(stderr, "fuzz_proto: UXP_FUZZ_TARGET=%s: want decode or conn\n", t);
		exit(2);
	}
	const char *fc = getenv("UXP_FUZZ_FDCHECK");
	if (fc)
		uxp_fuzz_fdcheck = atoi(fc);
	int ret = uxp_fuzz_setup();
	if (ret < 0) {
		fprintf(stderr, "fuzz_proto: set-up failed: %s\n", strerror(-ret));
		exit(2);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int before = uxp_fuzz_fdcheck ? count_fds() : 0;
	if (fuzz_target == UXP_FUZZ_CONN)
		uxp_fuzz_conn(data, size);
	else
		uxp_fuzz_decode(data, size);
	if (uxp_fuzz_fdcheck) {
		int after = count_fds();
		FUZZ_CHECK(after == before, "descriptor leak: %d open before the input, %d after",
			   before, after);
	}
	return 0;
}
