/*
 * arena_test.c - libuxpmem-arena.so: the heap and anonymous mmap come from
 * the memfd arena, purges zero and free memory, another process mapping the
 * memfd follows the owner's addresses, fork keeps memory private, xpmem-run.
 *
 * The binary re-execs itself with LD_PRELOAD set to the build tree's
 * library (UXP_BUILDDIR); "--probe N" only reports whether an arena exists
 * (exit N if so, 99 if not) for the xpmem-run tests.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jemalloc/jemalloc.h>

#include "arena.h"
#include "testutil.h"

#define MiB (1UL << 20)
#define PG 4096UL

static char self_path[4096];
static struct uxpmem_arena_v1 A;

static int query(struct uxpmem_arena_v1 *out)
{
	uxpmem_arena_query_v1_fn q =
		(uxpmem_arena_query_v1_fn)dlsym(RTLD_DEFAULT, UXPMEM_ARENA_QUERY_SYMBOL);
	return q ? q(out) : -ENOENT;
}

static int in_arena(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;
	return a >= A.base && a + n <= A.base + A.size;
}

static off_t off_of(const void *p)
{
	return (off_t)((uintptr_t)p - A.base);
}

static long blocks(void)
{
	struct stat st;
	ck_assert_int_eq(fstat(A.fd, &st), 0);
	return (long)st.st_blocks;
}

/* true if the memfd reads back zero over [p, p + n) */
static int file_zero(const void *p, size_t n)
{
	static unsigned char buf[64 * 1024];
	for (size_t done = 0; done < n;) {
		size_t c = n - done < sizeof(buf) ? n - done : sizeof(buf);
		ck_assert_int_eq(pread(A.fd, buf, c, off_of(p) + (off_t)done), (ssize_t)c);
		for (size_t i = 0; i < c; i++)
			if (buf[i])
				return 0;
		done += c;
	}
	return 1;
}

static void purge_all(void)
{
	char name[64];
	snprintf(name, sizeof(name), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
	/* the preload's mallctl (no link dependency on jemalloc) */
	int (*ctl)(const char *, void *, size_t *, void *, size_t) =
		(int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
	ck_assert_ptr_nonnull(ctl);
	ck_assert_int_eq(ctl(name, NULL, NULL, NULL, 0), 0);
}

static void setup(void)
{
	ck_assert_int_eq(query(&A), 0);
}

/* ---- heap ---- */

static const size_t sizes[] = { 24, 4096, MiB, 4 * MiB, 64 * MiB };

START_TEST(test_query)
{
	struct stat st;
	ck_assert_int_eq(fstat(A.fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, A.size);
	ck_assert_uint_eq(A.size, 8ULL << 30); /* XPMEM_ARENA_SIZE=8g */
	ck_assert_uint_eq(A.base % PG, 0);
	ck_assert_int_eq(fcntl(A.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_uint_ge(A.generation, 1);
}
END_TEST

START_TEST(test_alloc_in_arena)
{
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		void *m = malloc(n), *c = calloc(1, n), *r = realloc(malloc(8), n);
		void *pm = NULL, *aa = aligned_alloc(4096, n);
		ck_assert_int_eq(posix_memalign(&pm, 2 * MiB, n), 0);
		void *all[] = { m, c, r, pm, aa };
		for (unsigned j = 0; j < 5; j++) {
			ck_assert_msg(all[j] && in_arena(all[j], n), "size %zu #%u: %p outside the arena",
				      n, j, all[j]);
			memset(all[j], 0x5a, n);
		}
		ck_assert_uint_eq((uintptr_t)pm % (2 * MiB), 0);
		ck_assert_uint_eq((uintptr_t)aa % 4096, 0);
		/* the file behind the address holds what was written */
		unsigned char b;
		ck_assert_int_eq(pread(A.fd, &b, 1, off_of(m) + (off_t)n - 1), 1);
		ck_assert_uint_eq(b, 0x5a);
		for (unsigned j = 0; j < 5; j++)
			free(all[j]);
	}
	/* many small objects too (slabs of every early size class) */
	for (int i = 0; i < 10000; i++) {
		void *p = malloc((size_t)(i % 512) + 1);
		ck_assert(in_arena(p, 1));
		free(p);
	}
}
END_TEST

START_TEST(test_calloc_zero)
{
	for (int round = 0; round < 3; round++) {
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			unsigned char *p = malloc(n);
			memset(p, 0xff, n);
			free(p);
			unsigned char *c = calloc(n, 1);
			size_t k = 0;
			while (k < n && c[k] == 0)
				k++;
			ck_assert_msg(k == n, "calloc(%zu)[%zu] = %u", n, k, c[k]);
			free(c);
		}
	}
}
END_TEST

START_TEST(test_purge_zeroes_and_frees)
{
	size_t n = 64 * MiB;
	unsigned char *p = malloc(n);
	ck_assert(in_arena(p, n));
	memset(p, 0xab, n);
	long before = blocks();
	ck_assert_int_eq(file_zero(p, n), 0);
	unsigned char *was = p; /* only its address is used after free */
	__asm__("" : "+r"(was));
	free(p);
	purge_all();
	long after = blocks();
	ck_assert_msg(before - after >= (long)(60 * MiB / 512),
		      "memfd blocks %ld -> %ld: purge did not return memory", before, after);
	/* the range reads back zero, through the file and the mapping */
	ck_assert(file_zero(was + 4096, n - 8192));
	unsigned char v = 1;
	ck_assert_int_eq(tu_probe_read(was + n / 2, &v), 0);
	ck_assert_uint_eq(v, 0);
}
END_TEST

/* ---- mmap ---- */

static void *anon(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i / PG * 7 + i);
}

static int check_fill(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i / PG * 7 + i))
			return 0;
	return 1;
}

START_TEST(test_mmap_from_arena)
{
	size_t n = 16 * PG;
	unsigned char *p = anon(n);
	ck_assert(in_arena(p, n));
	ck_assert_uint_eq((uintptr_t)p % PG, 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(p[i], 0);
	fill(p, n, 1);
	/* mprotect works on it */
	ck_assert_int_eq(mprotect(p, PG, PROT_READ), 0);
	ck_assert_int_eq(tu_probe_write(p, 1), SIGSEGV);
	ck_assert_int_eq(mprotect(p, PG, PROT_READ | PROT_WRITE), 0);
	long before = blocks();
	/* partial munmap: the middle 4 pages go, the rest keeps its data */
	ck_assert_int_eq(munmap(p + 4 * PG, 4 * PG), 0);
	ck_assert_int_le(blocks(), before - (long)(4 * PG / 512));
	ck_assert(file_zero(p + 4 * PG, 4 * PG));
	unsigned char v;
	ck_assert_int_eq(tu_probe_read(p + 5 * PG, &v), SIGSEGV);
	ck_assert(check_fill(p, 4 * PG, 1));
	ck_assert(check_fill(p + 8 * PG, 8 * PG, 1 + 8 * 7 + 0) || 1);
	for (size_t i = 8 * PG; i < n; i++)
		ck_assert_uint_eq(p[i], (unsigned char)(1 + i / PG * 7 + i));
	/* the hole is reused by the next mmap, zeroed and accessible */
	unsigned char *q = mmap(p + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_eq(q, p + 4 * PG);
	for (size_t i = 0; i < 4 * PG; i++)
		ck_assert_uint_eq(q[i], 0);
	ck_assert_int_eq(munmap(p, n), 0);
	/* MAP_SHARED|MAP_ANONYMOUS and PROT_NONE stay with the kernel */
	void *s = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(!in_arena(s, PG));
	munmap(s, PG);
	/* errors as the kernel's */
	errno = 0;
	ck_assert_int_eq(munmap((char *)A.base + 1, PG), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_mremap)
{
	size_t n = 8 * PG;
	unsigned char *p = anon(n);
	ck_assert(in_arena(p, n));
	fill(p, n, 3);
	/* shrink */
	ck_assert_ptr_eq(mremap(p, n, 4 * PG, 0), p);
	ck_assert(check_fill(p, 4 * PG, 3));
	unsigned char v;
	ck_assert_int_eq(tu_probe_read(p + 5 * PG, &v), SIGSEGV);
	/* grow in place (the tail just freed is free) */
	ck_assert_ptr_eq(mremap(p, 4 * PG, n, 0), p);
	ck_assert(check_fill(p, 4 * PG, 3));
	for (size_t i = 4 * PG; i < n; i++)
		ck_assert_uint_eq(p[i], 0);
	/* block the growth, then move */
	unsigned char *blk = mmap(p + n, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_eq(blk, p + n);
	fill(p, n, 4);
	errno = 0;
	ck_assert_ptr_eq(mremap(p, n, 2 * n, 0), MAP_FAILED);
	ck_assert_int_eq(errno, ENOMEM);
	unsigned char *m = mremap(p, n, 2 * n, MREMAP_MAYMOVE);
	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_ptr_ne(m, p);
	ck_assert(in_arena(m, 2 * n));
	ck_assert(check_fill(m, n, 4));
	for (size_t i = n; i < 2 * n; i++)
		ck_assert_uint_eq(m[i], 0);
	ck_assert_int_eq(tu_probe_read(p, &v), SIGSEGV);
	ck_assert(file_zero(p, n));
	/* MREMAP_FIXED to an address inside the arena */
	unsigned char *dst = anon(2 * n);
	unsigned char *f = mremap(m, 2 * n, 2 * n, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ck_assert_ptr_eq(f, dst);
	ck_assert(check_fill(f, n, 4));
	/* flag errors */
	errno = 0;
	ck_assert_ptr_eq(mremap(f, n, n, MREMAP_FIXED, dst + 4 * n), MAP_FAILED);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_eq(mremap(f, n, 2 * n, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), MAP_FAILED);
	ck_assert_int_eq(errno, EINVAL);
	/* DONTUNMAP: moved, the old range stays mapped and reads zero */
	unsigned char *d = mremap(f, 2 * n, 2 * n, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	ck_assert_ptr_ne(d, MAP_FAILED);
	ck_assert(check_fill(d, n, 4));
	ck_assert_int_eq(tu_probe_read(f, &v), 0);
	ck_assert_uint_eq(v, 0);
	munmap(d, 2 * n);
	munmap(f, 2 * n);
	munmap(blk, PG);
}
END_TEST

START_TEST(test_map_fixed)
{
	size_t n = 4 * PG;
	unsigned char *p = anon(n);
	memset(p, 0x11, n);
	/* anonymous over an arena range: fresh zero pages, still arena */
	unsigned char *q = mmap(p + PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(q, p + PG);
	ck_assert_uint_eq(q[0], 0);
	ck_assert_int_eq(tu_probe_write(q, 1), SIGSEGV);
	ck_assert_uint_eq(p[0], 0x11);
	ck_assert_uint_eq(p[2 * PG], 0x11);
	/* a file over an arena range: the file's contents, then munmap gives it back */
	int fd = memfd_create("other", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, PG), 0);
	ck_assert_int_eq(pwrite(fd, "file", 4, 0), 4);
	char *f = mmap(p + 2 * PG, PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	ck_assert_ptr_eq(f, p + 2 * PG);
	ck_assert_int_eq(memcmp(f, "file", 4), 0);
	ck_assert(file_zero(f, PG)); /* the arena page under it was freed */
	ck_assert_int_eq(munmap(f, PG), 0);
	unsigned char v;
	ck_assert_int_eq(tu_probe_read(f, &v), SIGSEGV);
	unsigned char *r = mmap(f, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_ptr_eq(r, (unsigned char *)f);
	ck_assert_uint_eq(r[0], 0);
	r[0] = 7;
	unsigned char b;
	ck_assert_int_eq(pread(A.fd, &b, 1, off_of(r)), 1);
	ck_assert_uint_eq(b, 7);
	/* MAP_FIXED_NOREPLACE over a used range */
	errno = 0;
	ck_assert_ptr_eq(mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), MAP_FAILED);
	ck_assert_int_eq(errno, EEXIST);
	/* madvise(DONTNEED) zeroes as on private memory */
	p[3 * PG] = 9;
	ck_assert_int_eq(madvise(p + 3 * PG, PG, MADV_DONTNEED), 0);
	ck_assert_uint_eq(p[3 * PG], 0);
	close(fd);
	munmap(p, n);
}
END_TEST

/* ---- another process maps the arena memfd ---- */

static void send_fd(int sock, int fd, const void *msg, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ck_assert_int_eq(sendmsg(sock, &mh, 0), (ssize_t)len);
}

static int recv_fd(int sock, void *msg, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	if (recvmsg(sock, &mh, 0) != (ssize_t)len)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fd = -1;
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

struct imp_msg {
	uint64_t off, len;
	unsigned char expect;
};

/* The importer: maps the owner's memfd once, checks each expectation
 * through the same mapping; exit 0 if all held. */
static void importer(int sock)
{
	struct imp_msg m;
	int fd = recv_fd(sock, &m, sizeof(m));
	if (fd < 0)
		_exit(10);
	unsigned char *map = mmap(NULL, m.len, PROT_READ, MAP_SHARED, fd, (off_t)m.off);
	if (map == MAP_FAILED)
		_exit(11);
	for (;;) {
		for (size_t i = 0; i < m.len; i++)
			if (map[i] != m.expect)
				_exit(12);
		char ok = 'k';
		if (write(sock, &ok, 1) != 1)
			_exit(13);
		if (read(sock, &m, sizeof(m)) != sizeof(m))
			_exit(0); /* owner done */
	}
}

START_TEST(test_importer_follows_addresses)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		importer(sv[1]);
	}
	close(sv[1]);
	size_t n = 4 * MiB;
	unsigned char *p = malloc(n);
	ck_assert(in_arena(p, n));
	memset(p, 'A', n);
	struct imp_msg m = { (uint64_t)off_of(p) & ~(PG - 1), 0, 'A' };
	m.len = n - PG; /* page-aligned window inside the buffer */
	unsigned char *win = (unsigned char *)(A.base + m.off);
	if (win < p) {
		m.off += PG;
		win += PG;
	}
	send_fd(sv[0], A.fd, &m, sizeof(m));
	char ok;
	ck_assert_int_eq(read(sv[0], &ok, 1), 1);
	/* free + malloc at the same address with new contents */
	/* free + malloc: the same address comes back (freed extents keep
	 * their addresses; large buffers start on a page) */
	uintptr_t was = (uintptr_t)p;
	free(p);
	unsigned char *q = malloc(n);
	ck_assert_uint_eq((uintptr_t)q, was);
	memset(q, 'B', n);
	m.expect = 'B';
	ck_assert_int_eq(write(sv[0], &m, sizeof(m)), (ssize_t)sizeof(m));
	ck_assert_int_eq(read(sv[0], &ok, 1), 1);
	close(sv[0]);
	int st = tu_wait_child(pid, 20000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "importer status %#x", st);
	free(q);
}
END_TEST

/* ---- fork ---- */

START_TEST(test_fork_private)
{
	size_t n = MiB;
	unsigned char *h = malloc(n);
	unsigned char *m = anon(4 * PG);
	memset(h, 'P', n);
	memset(m, 'P', 4 * PG);
	ck_assert_int_eq(mprotect(m + 3 * PG, PG, PROT_READ), 0);
	int down[2], up[2];
	ck_assert_int_eq(pipe(down), 0);
	ck_assert_int_eq(pipe(up), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct uxpmem_arena_v1 c;
		char x;
		int bad = 0;
		if (query(&c) || c.generation == A.generation || c.base != A.base)
			bad |= 1;
		struct stat s1, s2;
		fstat(c.fd, &s1);
		if (fstat(A.fd, &s2) == 0 && s1.st_ino == 0)
			bad |= 2;
		if (h[0] != 'P' || h[n - 1] != 'P' || m[0] != 'P' || m[3 * PG] != 'P')
			bad |= 4;
		if (tu_probe_write(m + 3 * PG, 1) != SIGSEGV) /* protections kept */
			bad |= 8;
		memset(h, 'C', n);
		memset(m, 'C', 3 * PG);
		for (int i = 0; i < 200; i++) { /* malloc works */
			void *t = malloc((size_t)(i * 997) + 1);
			if (!t || !in_arena(t, 1))
				bad |= 16;
			memset(t, i, (size_t)(i * 997) + 1);
			free(t);
		}
		void *big = malloc(8 * MiB);
		if (!big || !in_arena(big, 8 * MiB))
			bad |= 16;
		free(big);
		x = (char)bad;
		if (write(up[1], &x, 1) != 1 || read(down[0], &x, 1) != 1)
			_exit(100);
		/* the parent wrote 'Q' after our 'C' */
		if (h[0] != 'C' || h[n - 1] != 'C' || m[0] != 'C')
			bad |= 32;
		_exit(bad);
	}
	char x;
	ck_assert_int_eq(read(up[0], &x, 1), 1);
	ck_assert_msg(x == 0, "child checks failed: %#x", x);
	/* the child's writes did not reach us */
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(h[i], 'P');
	ck_assert_uint_eq(m[0], 'P');
	memset(h, 'Q', n);
	memset(m, 'Q', PG);
	ck_assert_int_eq(write(down[1], &x, 1), 1);
	int st = tu_wait_child(pid, 20000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	ck_assert_uint_eq(h[0], 'Q');
	struct uxpmem_arena_v1 again;
	ck_assert_int_eq(query(&again), 0);
	ck_assert_int_eq(again.fd, A.fd);
	ck_assert_uint_eq(again.generation, A.generation);
	free(h);
	munmap(m, 4 * PG);
}
END_TEST

/* ---- xpmem-run ---- */

static int run(char *const argv[], const char *preload, int limit_as)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		if (limit_as) {
			struct rlimit rl = { 2UL << 30, 2UL << 30 };
			setrlimit(RLIMIT_AS, &rl);
		}
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	int st = tu_wait_child(pid, 20000);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

START_TEST(test_xpmem_run)
{
	char runner[4096];
	tu_builddir_path("transports/shm/arena/xpmem-run", runner, sizeof(runner));
	char *probe[] = { runner, self_path, "--probe", "7", NULL };
	char *probe_dd[] = { runner, "--", self_path, "--probe", "9", NULL };
	char *noarg[] = { runner, NULL };
	char *help[] = { runner, "-h", NULL };
	char *bare[] = { self_path, "--probe", "7", NULL };
	/* with the preload, exit status passed through; not without it */
	ck_assert_int_eq(run(probe, NULL, 0), 7);
	ck_assert_int_eq(run(probe_dd, "libc.so.6", 0), 9); /* prepends */
	ck_assert_int_eq(run(bare, NULL, 0), 99);
	ck_assert_int_eq(run(noarg, NULL, 0), 2);
	ck_assert_int_eq(run(help, NULL, 0), 0);
	/* no room for the arena: still runs, without one */
	ck_assert_int_eq(run(probe, NULL, 1), 99);
}
END_TEST

static int probe_main(int argc, char **argv)
{
	struct uxpmem_arena_v1 a;
	if (query(&a) != 0)
		return 99;
	void *p = malloc(100);
	if (!in_arena(p, 1) && (A = a, !in_arena(p, 1)))
		return 98;
	const char *pl = getenv("LD_PRELOAD");
	if (argc > 2 && atoi(argv[2]) == 9 && (!pl || !strstr(pl, " libc.so.6")))
		return 97;
	free(p);
	return atoi(argv[2]);
}

int main(int argc, char **argv)
{
	tu_require_preload(); /* it re-runs itself with the arena preloaded */
	if (readlink("/proc/self/exe", self_path, sizeof(self_path) - 1) < 0)
		return 1;
	if (argc > 2 && !strcmp(argv[1], "--probe"))
		return probe_main(argc, argv);
	if (!getenv("UXA_TEST_PRELOADED")) {
		char lib[4096];
		tu_builddir_path("transports/shm/arena/.libs/libuxpmem-arena.so", lib, sizeof(lib));
		setenv("XPMEM_ARENA_LIB", lib, 1);
		setenv("LD_PRELOAD", lib, 1);
		setenv("UXA_TEST_PRELOADED", "1", 1);
		setenv("XPMEM_ARENA_SIZE", "8g", 1);
		execv(self_path, argv);
		perror("execv");
		return 1;
	}
	unsetenv("LD_PRELOAD"); /* children we exec choose for themselves */
	Suite *s = suite_create("arena");
	TCase *tc = tcase_create("arena");
	tcase_set_timeout(tc, tu_guard_s(30));
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_query);
	tcase_add_test(tc, test_alloc_in_arena);
	tcase_add_test(tc, test_calloc_zero);
	tcase_add_test(tc, test_purge_zeroes_and_frees);
	tcase_add_test(tc, test_mmap_from_arena);
	tcase_add_test(tc, test_mremap);
	tcase_add_test(tc, test_map_fixed);
	tcase_add_test(tc, test_importer_follows_addresses);
	tcase_add_test(tc, test_fork_private);
	tcase_add_test(tc, test_xpmem_run);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
