/* make-corpus.c - writes the seed corpus of the fuzz targets (see fuzz.h
 * for the input formats).  Run by tests/fuzz/make-corpus.sh:
 *   make-corpus OUTDIR   -> OUTDIR/decode/NAME, OUTDIR/conn/NAME
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "xpmem.h"
#include "proto.h"

static const char *outdir;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0) {
		fprintf(stderr, "make-corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* decode target: byte 0 = descriptors, then the packet */
static void dec(const char *name, unsigned nfds, const void *pkt, size_t len)
{
	unsigned char buf[sizeof(struct uxp_msgbuf) + 512];
	buf[0] = (unsigned char)nfds;
	memcpy(buf + 1, pkt, len);
	put("decode", name, buf, len + 1);
}

static void decm(const char *name, unsigned nfds, const struct uxp_msg *m)
{
	dec(name, nfds, m, sizeof(*m));
}

/* conn target: byte 0 = mode, then records [h][len][bytes] */
struct conn_in {
	unsigned char buf[16384];
	size_t len;
};

static void cbegin(struct conn_in *c, unsigned mode)
{
	c->buf[0] = (unsigned char)mode;
	c->len = 1;
}

static void crec(struct conn_in *c, unsigned h, const void *pkt, size_t len)
{
	c->buf[c->len++] = (unsigned char)h;
	c->buf[c->len++] = (unsigned char)len;
	c->buf[c->len++] = (unsigned char)(len >> 8);
	memcpy(c->buf + c->len, pkt, len);
	c->len += len;
}

static void cmsg(struct conn_in *c, unsigned h, const struct uxp_msg *m)
{
	crec(c, h, m, sizeof(*m));
}

#define FIX 0x40 /* record flag: segid 1..4 / grant 1..8 fixed up */

static struct uxp_msg msg(enum uxp_msg_type t)
{
	struct uxp_msg m;
	memset(&m, 0, sizeof(m)); /* as uxp_msg_init(), without linking proto.c */
	m.magic = UXP_PROTO_MAGIC;
	m.version = UXP_PROTO_VERSION;
	m.type = (uint16_t)t;
	m.seq = 1;
	return m;
}

static struct uxp_msg get(int64_t segid, uint32_t flags)
{
	struct uxp_msg m = msg(UXP_MSG_GET);
	m.segid = segid;
	m.flags = flags;
	return m;
}

static struct uxp_msg reply(uint64_t seq, int32_t status, uint64_t grant, int arena)
{
	struct uxp_msg m = msg(UXP_MSG_GET_REPLY);
	m.seq = seq;
	m.status = status;
	if (status == 0) {
		m.grant = grant;
		m.seg_vaddr = 0x7f0000001000ull;
		m.seg_size = 0x2000;
		if (arena) {
			m.arena_base = 0x7f0000000000ull;
			m.arena_size = 0x100000;
		}
	}
	return m;
}

static struct uxp_msg with_grant(enum uxp_msg_type t, uint64_t grant, uint32_t reason)
{
	struct uxp_msg m = msg(t);
	m.grant = grant;
	m.reason = reason;
	return m;
}

static struct uxp_msg range(enum uxp_msg_type t, uint64_t grant, uint64_t addr, uint64_t len)
{
	struct uxp_msg m = msg(t);
	m.grant = grant;
	m.addr = addr;
	m.len = len;
	return m;
}

/* A RESOLVE_REPLY for [0x7f0000000000, +n pages): hole, arena, fd 0, ... */
static size_t resolve_reply(struct uxp_msgbuf *b, uint64_t seq, unsigned n)
{
	memset(b, 0, sizeof(*b));
	b->m = msg(UXP_MSG_RESOLVE_REPLY);
	b->m.seq = seq;
	b->m.count = n;
	b->m.addr = 0x7f0000000000ull;
	b->m.len = (uint64_t)n * 4096;
	for (unsigned i = 0; i < n; i++) {
		struct uxp_piece *p = &b->piece[i];
		p->addr = b->m.addr + (uint64_t)i * 4096;
		p->len = 4096;
		p->kind = UXP_PIECE_HOLE + i % 3;
		p->offset = p->kind == UXP_PIECE_HOLE ? 0 : (uint64_t)i * 4096;
		p->fd = p->kind == UXP_PIECE_FD ? i / 3 : 0;
	}
	return sizeof(b->m) + n * sizeof(b->piece[0]);
}

/* ---- the pure decoder -------------------------------------------------- */
static void decode_corpus(void)
{
	struct uxp_msg m;
	unsigned char big[2 * sizeof(m)];

	/* valid messages of every type */
	m = get(0x1234000001ll, XPMEM_RDONLY); decm("get-rdonly", 0, &m);
	m = get(0x1234000001ll, XPMEM_RDWR); decm("get-rdwr", 0, &m);
	m = reply(1, 0, 7, 1); decm("reply-fd", 1, &m);
	m = reply(1, 0, 7, 0); decm("reply-nofd", 0, &m);
	m = reply(1, -13, 0, 0); decm("reply-eacces", 0, &m);
	m = reply(1, -4095, 0, 0); decm("reply-errmax", 0, &m);
	m = with_grant(UXP_MSG_RELEASE, 7, 0); decm("release", 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 7, UXP_REVOKE_REMOVED); decm("revoke-removed", 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 7, UXP_REVOKE_EXITED); decm("revoke-exited", 0, &m);
	m = with_grant(UXP_MSG_REVOKE_ACK, 7, 0); decm("revoke-ack", 0, &m);

	m = range(UXP_MSG_RESOLVE, 7, 0x7f0000000000ull, 0x3000); decm("resolve", 0, &m);
	m = range(UXP_MSG_INVALIDATE, 0, 0x7f0000000000ull, 0x1000); decm("invalidate", 0, &m);
	m = msg(UXP_MSG_INVALIDATE_ACK); decm("invalidate-ack", 0, &m);
	m = msg(UXP_MSG_RESOLVE_REPLY); m.status = -22; decm("resolve-reply-err", 0, &m);
	{
		static struct uxp_msgbuf b;
		size_t len = resolve_reply(&b, 1, 3);
		dec("resolve-reply-3", 1, &b, len);
		len = resolve_reply(&b, 1, 6);
		dec("resolve-reply-6-2fds", 2, &b, len);
		dec("resolve-reply-6-1fd", 1, &b, len);      /* piece 5 names fd 1 */
		dec("resolve-reply-6-32fds", 32, &b, len);  /* unused descriptors */
		dec("resolve-reply-6-33fds", 33, &b, len);  /* too many */
		dec("resolve-reply-short", 2, &b, len - 8);  /* not a piece multiple */
		b.m.count = 5;
		dec("resolve-reply-count", 2, &b, len);      /* count != pieces */
		len = resolve_reply(&b, 1, 4);
		b.piece[2].addr += 4096;
		dec("resolve-reply-gap", 2, &b, len);
		len = resolve_reply(&b, 1, 2);
		b.piece[1].len = ~0ull;
		dec("resolve-reply-wrap", 0, &b, len);
		len = resolve_reply(&b, 1, 1);
		b.piece[0].kind = 9;
		dec("resolve-reply-kind", 0, &b, len);
		len = resolve_reply(&b, 1, 3); /* hole, arena, SysV segment by id */
		b.piece[2].kind = UXP_PIECE_SYSV;
		b.piece[2].fd = 32769;
		dec("resolve-reply-sysv", 0, &b, len);
		b.piece[2].fd = 0x7fffffff;
		dec("resolve-reply-sysv-idmax", 0, &b, len);
		b.piece[2].fd = 0x80000000u; /* not a shmid */
		dec("resolve-reply-sysv-id-neg", 0, &b, len);
		b.piece[2].kind = UXP_PIECE_SYSV + 1;
		dec("resolve-reply-kind-max+1", 0, &b, len);
		len = resolve_reply(&b, 1, UXP_MAX_PIECES);
		dec("resolve-reply-max", UXP_MAX_PIECES / 3, &b, len);
	}
	m = range(UXP_MSG_RESOLVE, 0, 0x1000, 0x1000); decm("resolve-grant-0", 0, &m);
	m = range(UXP_MSG_RESOLVE, 7, ~0ull - 0xfff, 0x2000); decm("resolve-wrap", 0, &m);
	m = range(UXP_MSG_INVALIDATE, 0, 0x1000, 0); decm("invalidate-len-0", 0, &m);
	m = reply(1, 0, 7, 0); m.count = 100; decm("reply-count", 0, &m);

	/* sizes */
	m = get(0x1234000001ll, XPMEM_RDWR);
	dec("empty", 0, "", 0);
	dec("empty-2fds", 2, "", 0);
	dec("truncated-header", 0, &m, 8);
	dec("truncated-1", 0, &m, sizeof(m) - 1);
	memcpy(big, &m, sizeof(m));
	memset(big + sizeof(m), 0, sizeof(m));
	dec("oversized-1", 0, big, sizeof(m) + 1);
	dec("oversized-2x", 0, big, sizeof(big));

	/* header */
	m = get(0x1234000001ll, XPMEM_RDWR); m.magic ^= 1; decm("bad-magic", 0, &m);
	m = get(0x1234000001ll, XPMEM_RDWR); m.version = 2; decm("bad-version", 0, &m);
	m = get(0x1234000001ll, XPMEM_RDWR); m.version = 0; m.magic = 0; decm("bad-both", 0, &m);
	m = msg(UXP_MSG_GET); m.type = 0; decm("type-0", 0, &m);
	m = with_grant(UXP_MSG_REVOKE_ACK, 7, 0); m.type = UXP_MSG_TYPE_MAX + 1; decm("type-max+1", 0, &m);
	m.type = 0xffff; decm("type-ffff", 0, &m);

	/* out-of-range fields */
	m = get(0, XPMEM_RDWR); decm("get-segid-0", 0, &m);
	m = get(-5, XPMEM_RDWR); decm("get-segid-neg", 0, &m);
	m = get(0x1234000001ll, 0); decm("get-flags-0", 0, &m);
	m = get(0x1234000001ll, 3); decm("get-flags-3", 0, &m);
	m = reply(1, 1, 0, 0); decm("reply-status-pos", 0, &m);
	m = reply(1, -4096, 0, 0); decm("reply-status-low", 0, &m);
	m = reply(1, 0, 0, 0); decm("reply-grant-0", 0, &m);
	m = reply(1, 0, 7, 0); m.seg_size = 0; decm("reply-size-0", 0, &m);
	m = reply(1, 0, 7, 0); m.seg_vaddr = ~0ull - 0xfff; decm("reply-seg-wrap", 0, &m);
	m = reply(1, 0, 7, 1); m.arena_base = ~0ull - 0xfff; decm("reply-arena-wrap", 1, &m);
	m = with_grant(UXP_MSG_RELEASE, 0, 0); decm("release-grant-0", 0, &m);
	m = with_grant(UXP_MSG_REVOKE_ACK, 0, 0); decm("revoke-ack-grant-0", 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 7, 0); decm("revoke-reason-0", 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 7, 3); decm("revoke-reason-3", 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 0, UXP_REVOKE_REMOVED); decm("revoke-grant-0", 0, &m);

	/* wrong descriptor counts */
	m = get(0x1234000001ll, XPMEM_RDWR); decm("get-1fd", 1, &m);
	m = reply(1, 0, 7, 1); decm("reply-fd-missing", 0, &m);
	m = reply(1, 0, 7, 1); decm("reply-2fds", 2, &m);
	m = reply(1, 0, 7, 0); decm("reply-nofd-extra", 1, &m);
	m = reply(1, -2, 0, 0); decm("reply-err-fd", 1, &m);
	m = with_grant(UXP_MSG_RELEASE, 7, 0); decm("release-4fds", 4, &m);
	m = with_grant(UXP_MSG_REVOKE, 7, UXP_REVOKE_REMOVED); decm("revoke-3fds", 3, &m);
	m = with_grant(UXP_MSG_REVOKE_ACK, 7, 0); decm("revoke-ack-1fd", 1, &m);
	m = reply(1, 0, 7, 1); decm("reply-5fds-ctrunc", 5, &m);
	m = reply(1, 0, 7, 1); decm("reply-7fds-ctrunc", 7, &m);
}

/* ---- a live connection -------------------------------------------------- */
static void conn_corpus(void)
{
	struct conn_in c;
	struct uxp_msg m;
	static const char *const uid_name[] = { "self", "root", "other", "group" };

	/* exporter side: GET of each segment, each flag, each uid; then the
	 * grant is released (grant index 1 = the first grant received) */
	for (unsigned u = 0; u < 4; u++)
		for (unsigned s = 1; s <= 4; s++) {
			char name[64];
			cbegin(&c, u << 1);
			m = get(s, XPMEM_RDONLY); cmsg(&c, FIX, &m);
			m = get(s, XPMEM_RDWR); m.seq = 2; cmsg(&c, FIX, &m);
			m = with_grant(UXP_MSG_RELEASE, 1, 0); cmsg(&c, FIX, &m);
			m = with_grant(UXP_MSG_REVOKE_ACK, 2, 0); cmsg(&c, FIX, &m);
			snprintf(name, sizeof(name), "exp-get-seg%u-%s", s, uid_name[u]);
			put("conn", name, c.buf, c.len);
		}

	cbegin(&c, 0); /* replayed release, then release of a never-granted id */
	m = get(1, XPMEM_RDWR); cmsg(&c, FIX, &m);
	m = with_grant(UXP_MSG_RELEASE, 1, 0); cmsg(&c, FIX, &m);
	m = with_grant(UXP_MSG_RELEASE, 1, 0); cmsg(&c, FIX, &m);
	m = with_grant(UXP_MSG_REVOKE_ACK, 1, 0); cmsg(&c, FIX, &m);
	m = with_grant(UXP_MSG_RELEASE, 0x7fffffff, 0); cmsg(&c, 0, &m);
	put("conn", "exp-release-replayed", c.buf, c.len);

	cbegin(&c, 0); /* grants left to the close */
	for (int i = 0; i < 6; i++) {
		m = get(1 + i % 4, i & 1 ? XPMEM_RDWR : XPMEM_RDONLY);
		m.seq = (uint64_t)i;
		cmsg(&c, FIX, &m);
	}
	put("conn", "exp-grants-at-close", c.buf, c.len);

	cbegin(&c, 0);
	m = get(1, XPMEM_RDWR); cmsg(&c, FIX, &m);
	m = get(0x1234000001ll, XPMEM_RDWR); cmsg(&c, 0, &m); /* no such segid */
	m = get(99, XPMEM_RDWR); cmsg(&c, FIX, &m);
	put("conn", "exp-get-unknown", c.buf, c.len);

	cbegin(&c, 0); /* a grant, then a malformed message closes */
	m = get(1, XPMEM_RDWR); cmsg(&c, FIX, &m);
	crec(&c, 0, &m, sizeof(m) - 4);
	m = with_grant(UXP_MSG_RELEASE, 1, 0); cmsg(&c, FIX, &m);
	put("conn", "exp-truncated-closes", c.buf, c.len);

	cbegin(&c, 0);
	m = get(1, XPMEM_RDWR); cmsg(&c, FIX | 1, &m); /* with a descriptor */
	put("conn", "exp-get-with-fd", c.buf, c.len);

	cbegin(&c, 0);
	m = get(3, XPMEM_RDWR); cmsg(&c, FIX, &m);
	m = with_grant(UXP_MSG_REVOKE, 1, UXP_REVOKE_REMOVED); cmsg(&c, FIX, &m);
	put("conn", "exp-wrong-direction", c.buf, c.len);

	cbegin(&c, 0);
	m = get(2, XPMEM_RDONLY); m.version = 2; cmsg(&c, FIX, &m);
	put("conn", "exp-bad-version", c.buf, c.len);

	cbegin(&c, 0);
	m = get(2, XPMEM_RDONLY); cmsg(&c, FIX, &m);
	crec(&c, 0, "", 0); /* empty packet: end of stream */
	put("conn", "exp-empty-packet", c.buf, c.len);

	/* importer side: waiters for seq 1 and 2 */
	cbegin(&c, 1);
	m = reply(1, 0, 5, 1); cmsg(&c, 1, &m);
	m = reply(2, 0, 6, 0); cmsg(&c, 0, &m);
	put("conn", "imp-replies", c.buf, c.len);

	cbegin(&c, 1);
	m = reply(1, -13, 0, 0); cmsg(&c, 0, &m);
	m = reply(1, 0, 5, 1); cmsg(&c, 1, &m);   /* duplicate: late */
	m = reply(77, 0, 9, 0); cmsg(&c, 0, &m);  /* unknown seq: late, released */
	put("conn", "imp-late-replies", c.buf, c.len);

	cbegin(&c, 1);
	m = reply(1, 0, 5, 1); cmsg(&c, 0, &m);   /* descriptor missing */
	put("conn", "imp-reply-fd-missing", c.buf, c.len);

	cbegin(&c, 1);
	m = reply(2, 0, 5, 0); cmsg(&c, 4, &m);   /* 4 unexpected descriptors */
	put("conn", "imp-reply-4fds", c.buf, c.len);

	cbegin(&c, 1);
	m = reply(1, 0, 5, 1); cmsg(&c, 1, &m);
	m = with_grant(UXP_MSG_REVOKE, 5, UXP_REVOKE_REMOVED); cmsg(&c, 0, &m);
	m = with_grant(UXP_MSG_REVOKE, 5, UXP_REVOKE_REMOVED); cmsg(&c, 0, &m); /* replayed */
	m = with_grant(UXP_MSG_REVOKE, 99, UXP_REVOKE_EXITED); cmsg(&c, 0, &m);
	put("conn", "imp-revoke", c.buf, c.len);

	cbegin(&c, 1);
	{
		static struct uxp_msgbuf b;
		size_t len = resolve_reply(&b, 2, 6);
		crec(&c, 2, &b, len);
		len = resolve_reply(&b, 1, 3);
		crec(&c, 4, &b, len); /* 3 unused descriptors */
		len = resolve_reply(&b, 9, 2);
		crec(&c, 1, &b, len); /* late */
	}
	m = range(UXP_MSG_INVALIDATE, 0, 0x7f0000000000ull, 0x1000); cmsg(&c, 0, &m);
	put("conn", "imp-resolve-replies", c.buf, c.len);

	cbegin(&c, 1); /* a GET_REPLY whose count field is not 0 */
	m = reply(1, 0, 5, 0); m.count = 1000; cmsg(&c, 0, &m);
	put("conn", "imp-reply-count", c.buf, c.len);

	cbegin(&c, 0);
	m = get(1, XPMEM_RDWR); cmsg(&c, FIX, &m);
	m = range(UXP_MSG_RESOLVE, 1, 0x100000000ull, 0x1000); cmsg(&c, FIX, &m);
	m = msg(UXP_MSG_INVALIDATE_ACK); cmsg(&c, 0, &m);
	put("conn", "exp-resolve", c.buf, c.len);

	cbegin(&c, 1);
	m = with_grant(UXP_MSG_RELEASE, 5, 0); cmsg(&c, 0, &m); /* exporter-bound message */
	put("conn", "imp-wrong-direction", c.buf, c.len);

	cbegin(&c, 1);
	m = get(1, XPMEM_RDWR); cmsg(&c, 0, &m);
	put("conn", "imp-get-wrong-direction", c.buf, c.len);

	cbegin(&c, 1 | 4);
	m = reply(1, 0, 5, 0); m.magic = 0; cmsg(&c, 0, &m);
	put("conn", "imp-bad-magic", c.buf, c.len);

	cbegin(&c, 1);
	unsigned char big[200] = { 0 };
	m = reply(1, 0, 5, 0);
	memcpy(big, &m, sizeof(m));
	crec(&c, 0, big, sizeof(big)); /* oversized packet */
	put("conn", "imp-oversized", c.buf, c.len);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make-corpus OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	char path[4096];
	mkdir(outdir, 0755);
	snprintf(path, sizeof(path), "%s/decode", outdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/conn", outdir);
	mkdir(path, 0755);
	decode_corpus();
	conn_corpus();
	return 0;
}
