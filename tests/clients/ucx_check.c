/*
 * ucx_check.c - a data-checked UCP exchange between two processes, for
 * tests/clients/stage-ucx.sh (UCX 1.13's ucx_perftest has no data
 * validation).
 *
 *   ucx_check [-a ucx|malloc] [-s MIN] [-S MAX] [-r ROUNDS]
 *
 * Forks into two ranks before UCP starts; they swap worker addresses and
 * rkeys over a socketpair.  For every size from MIN to MAX (x4 steps) and
 * ROUNDS rounds (a new pattern each round: a stale attachment shows), both
 * ways:
 *   tag  rank A sends a pattern, rank B receives it into a poisoned buffer;
 *   put  rank A puts a pattern into B's mapped region, flushes, tells B;
 *   get  rank A fills its region, B gets it into its own buffer.
 * The receiving side checks every 64-bit word.  Buffers come from
 * ucp_mem_map(UCP_MEM_MAP_ALLOCATE), UCX's default allocation (-a ucx), or
 * from malloc (-a malloc).  Exit 0 when all data arrived intact, 1 on a data
 * error (first bad word printed), 2 on an API error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ucp/api/ucp.h>

#define die(...) do { fprintf(stderr, "[rank %d] ", rank); fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); die_exit(2); } while (0)
#define ucs_ok(call) do { ucs_status_t st_ = (call); if (st_ != UCS_OK) \
		die("%s: %s", #call, ucs_status_string(st_)); } while (0)

static int rank;		/* 0: the parent, 1: the forked child */
static int sock;		/* socketpair end to the peer */
static ucp_context_h ctx;
static ucp_worker_h worker;
static ucp_ep_h ep;
static int use_ucx_alloc = 1;
static pid_t child_pid = -1;
static volatile sig_atomic_t peer_gone; /* rank 0: SIGCHLD came */

static void die_exit(int code);

static void on_sigchld(int sig)
{
	(void)sig;
	peer_gone = 1;
}

/* A crashed rank 1 never answers: rank 0 stops waiting for it and reports
 * how it ended (its signal is raised again by die_exit). */
static void check_peer(const char *waiting_in)
{
	if (peer_gone) {
		fprintf(stderr, "[rank 0] rank 1 ended while rank 0 waited in %s\n", waiting_in);
		die_exit(2);
	}
}

/* ---------------------------------------------------------------- socket */

static void sock_write(const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(sock, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write to peer: %s", strerror(errno));
		c += w;
		n -= (size_t)w;
	}
}

/* sock_read: progresses the worker while it waits, so that the peer's
 * operations that need this side (rendezvous, emulated RMA) complete. */
static void sock_read(void *p, size_t n)
{
	char *c = p;
	while (n > 0) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t r;
		check_peer("a socket read");
		ucp_worker_progress(worker);
		if (poll(&pfd, 1, 0) == 0)
			continue;
		r = read(sock, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read from peer: %s", r ? strerror(errno) : "peer closed");
		c += r;
		n -= (size_t)r;
	}
}

static void send_blob(const void *p, size_t n)
{
	uint64_t len = n;
	sock_write(&len, sizeof(len));
	sock_write(p, n);
}

static void *recv_blob(size_t *n)
{
	uint64_t len;
	void *p;
	sock_read(&len, sizeof(len));
	p = malloc(len ? len : 1);
	if (!p)
		die("malloc %" PRIu64, len);
	sock_read(p, len);
	if (n)
		*n = len;
	return p;
}

/* A one-word message: the peer's step is done. */
static void sync_peer(void)
{
	uint64_t token = 0x600d;
	send_blob(&token, sizeof(token));
	free(recv_blob(NULL));
}

/* ---------------------------------------------------------------- UCP */

static void wait_req(ucs_status_ptr_t req, const char *what)
{
	ucs_status_t st;
	if (req == NULL)
		return;
	if (UCS_PTR_IS_ERR(req))
		die("%s: %s", what, ucs_status_string(UCS_PTR_STATUS(req)));
	while ((st = ucp_request_check_status(req)) == UCS_INPROGRESS) {
		check_peer(what);
		ucp_worker_progress(worker);
	}
	ucp_request_free(req);
	if (st != UCS_OK)
		die("%s: %s", what, ucs_status_string(st));
}

static void flush_ep(void)
{
	ucp_request_param_t prm = { .op_attr_mask = 0 };
	wait_req(ucp_ep_flush_nbx(ep, &prm), "ucp_ep_flush_nbx");
}

static void setup_ucp(void)
{
	ucp_params_t p = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA,
	};
	ucp_worker_params_t wp = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SINGLE,
	};
	ucp_ep_params_t ep_params;
	ucp_address_t *addr;
	size_t alen;
	void *peer;

	ucs_ok(ucp_init(&p, NULL, &ctx));
	ucs_ok(ucp_worker_create(ctx, &wp, &worker));
	ucs_ok(ucp_worker_get_address(worker, &addr, &alen));
	send_blob(addr, alen);
	peer = recv_blob(NULL);
	ucp_worker_release_address(worker, addr);
	ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
	ep_params.address = peer;
	ucs_ok(ucp_ep_create(worker, &ep_params, &ep));
	free(peer);
	/* wire up both directions before the first measured transfer */
	flush_ep();
	sync_peer();
}

/* A buffer of n bytes, from UCX's allocator or from malloc; *memh is the
 * UCP registration either way (RMA targets need one). */
static void *buffer(size_t n, ucp_mem_h *memh)
{
	ucp_mem_map_params_t mp = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS |
			UCP_MEM_MAP_PARAM_FIELD_ADDRESS,
		.length = n,
	};
	ucp_mem_attr_t attr = { .field_mask = UCP_MEM_ATTR_FIELD_ADDRESS };

	if (use_ucx_alloc) {
		mp.address = NULL;
		mp.flags = UCP_MEM_MAP_ALLOCATE;
	} else {
		if (posix_memalign(&mp.address, 4096, n))
			die("posix_memalign %zu", n);
		mp.flags = 0;
	}
	ucs_ok(ucp_mem_map(ctx, &mp, memh));
	ucs_ok(ucp_mem_query(*memh, &attr));
	return attr.address;
}

static void free_buffer(void *p, ucp_mem_h memh)
{
	ucs_ok(ucp_mem_unmap(ctx, memh));
	if (!use_ucx_alloc)
		free(p);
}

/* ---------------------------------------------------------------- data */

static uint64_t word(uint64_t seed, size_t i)
{
	uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29);
}

static void fill(void *p, size_t n, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < n / 8; i++)
		w[i] = word(seed, i);
}

static int check(const char *what, const void *p, size_t n, uint64_t seed)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < n / 8; i++)
		if (w[i] != word(seed, i)) {
			printf("DATA ERROR: %s, %zu bytes: word %zu (offset %zu) is %#" PRIx64
			       ", expected %#" PRIx64 "\n", what, n, i, i * 8, w[i], word(seed, i));
			return 1;
		}
	return 0;
}

/* ---------------------------------------------------------------- tests */

/* tag: `from` sends, the other receives and checks. */
static int test_tag(size_t n, uint64_t seed, int from)
{
	ucp_request_param_t prm = { .op_attr_mask = 0 };
	ucp_mem_h memh;
	void *buf = buffer(n, &memh);
	int bad = 0;

	if (rank == from) {
		fill(buf, n, seed);
		wait_req(ucp_tag_send_nbx(ep, buf, n, seed, &prm), "ucp_tag_send_nbx");
	} else {
		memset(buf, 0xa5, n);
		wait_req(ucp_tag_recv_nbx(worker, buf, n, seed, (ucp_tag_t)-1, &prm),
			 "ucp_tag_recv_nbx");
		bad = check("tag", buf, n, seed);
	}
	sync_peer();
	free_buffer(buf, memh);
	return bad;
}

/* rma: each rank maps a region and gives the peer its address and rkey;
 * put: `from` writes the peer's region, flushes, then tells it, and the peer
 * checks; get: both fill their region, `from` reads the peer's and checks. */
static int test_rma(size_t n, uint64_t seed, int from, int is_put)
{
	ucp_request_param_t prm = { .op_attr_mask = 0 };
	ucp_mem_h memh, lmemh;
	void *region = buffer(n, &memh), *local = buffer(n, &lmemh), *rkbuf, *blob;
	uint64_t addr = (uintptr_t)region, peer_addr;
	size_t rklen;
	ucp_rkey_h rkey;
	int bad = 0;

	if (is_put)
		memset(region, 0xa5, n);
	else
		fill(region, n, seed);
	memset(local, 0x5a, n);
	ucs_ok(ucp_rkey_pack(ctx, memh, &rkbuf, &rklen));
	send_blob(&addr, sizeof(addr));
	send_blob(rkbuf, rklen);
	ucp_rkey_buffer_release(rkbuf);
	blob = recv_blob(NULL);
	memcpy(&peer_addr, blob, sizeof(peer_addr));
	free(blob);
	blob = recv_blob(NULL);
	ucs_ok(ucp_ep_rkey_unpack(ep, blob, &rkey));
	free(blob);

	if (rank == from && is_put) {
		fill(local, n, seed);
		wait_req(ucp_put_nbx(ep, local, n, peer_addr, rkey, &prm), "ucp_put_nbx");
		flush_ep();
	} else if (rank == from) {
		wait_req(ucp_get_nbx(ep, local, n, peer_addr, rkey, &prm), "ucp_get_nbx");
		bad = check("get", local, n, seed);
	}
	sync_peer();
	if (rank != from && is_put)
		bad = check("put", region, n, seed);
	sync_peer(); /* the peer is done with my region before I unmap it */
	ucp_rkey_destroy(rkey);
	free_buffer(local, lmemh);
	free_buffer(region, memh);
	return bad;
}

/* rank 0 reports how rank 1 ended; a signal is raised again, so that the
 * caller sees the crash as it happened. */
static int reap_child(pid_t child, int kill_it)
{
	int status;
	if (kill_it && waitpid(child, &status, WNOHANG) == 0)
		kill(child, SIGKILL);
	if (waitpid(child, &status, 0) != child)
		return 2;
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		printf("[rank 0] rank 1 (pid %d) died by signal %d (%s)\n", child, sig, strsignal(sig));
		fflush(stdout);
		signal(sig, SIG_DFL);
		raise(sig);
		return 128 + sig;
	}
	return WEXITSTATUS(status);
}

static void die_exit(int code)
{
	fflush(NULL);
	if (rank == 0 && child_pid > 0) {
		int c = reap_child(child_pid, 1);
		if (c > code)
			code = c;
	}
	exit(code);
}

int main(int argc, char **argv)
{
	size_t min = 64 << 10, max = 16 << 20;
	int rounds = 2, opt, sv[2], bad = 0;

	while ((opt = getopt(argc, argv, "a:s:S:r:")) != -1) {
		switch (opt) {
		case 'a': use_ucx_alloc = strcmp(optarg, "malloc") != 0; break;
		case 's': min = strtoull(optarg, NULL, 0); break;
		case 'S': max = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-a ucx|malloc] [-s MIN] [-S MAX] [-r ROUNDS]\n", argv[0]);
			return 2;
		}
	}
	if (min < 8 || min > max)
		die("bad sizes %zu..%zu", min, max);
	signal(SIGCHLD, on_sigchld);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair: %s", strerror(errno));
	fflush(NULL);
	child_pid = fork();
	if (child_pid < 0)
		die("fork: %s", strerror(errno));
	rank = child_pid == 0;
	if (rank == 1) {
		signal(SIGCHLD, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed rank 0 */
	}
	sock = sv[rank];
	close(sv[!rank]);
	setup_ucp();
	if (rank == 0) {
		printf("[rank 0] pid %d, rank 1 pid %d; buffers from %s; endpoint:\n", getpid(),
		       child_pid, use_ucx_alloc ? "ucp_mem_map(ALLOCATE)" : "malloc");
		ucp_ep_print_info(ep, stdout);
	}
	for (size_t n = min; n <= max; n *= 4) {
		for (int r = 0; r < rounds; r++) {
			for (int from = 0; from < 2; from++) {
				uint64_t seed = (uint64_t)n << 8 | (uint64_t)r << 1 | (uint64_t)from;
				bad |= test_tag(n, seed, from);
				bad |= test_rma(n, seed, from, 1);
				bad |= test_rma(n, seed, from, 0);
			}
		}
		if (rank == 0)
			printf("[rank 0] %zu bytes, %d rounds, both ways: tag, put, get %s\n", n, rounds,
			       bad ? "FAILED" : "ok");
		fflush(stdout);
	}
	sync_peer(); /* both done before either tears down */
	if (rank == 0)
		signal(SIGCHLD, SIG_DFL);
	ucp_ep_destroy(ep);
	ucp_worker_destroy(worker);
	ucp_cleanup(ctx);
	if (rank == 1)
		return bad;
	close(sock);
	{
		int c = reap_child(child_pid, 0);
		return bad || c ? (c > 1 ? c : 1) : 0;
	}
}
