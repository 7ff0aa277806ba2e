/*
 * mpi_check.c - a data-checked 2-rank MPI exchange, for
 * tests/clients/stage-ompi.sh.
 *
 *   mpirun -n 2 mpi_check [-s MIN] [-S MAX] [-r ROUNDS] [-m MECHANISM]
 *
 * First each rank reads Open MPI's vader single-copy mechanism through
 * MPI_T (the control variable btl_vader_single_copy_mechanism holds the
 * mechanism vader really uses: a failing xpmem_make makes it fall back to
 * CMA) and fails unless it is MECHANISM (default xpmem).  Then, for sizes
 * MIN..MAX (x2 steps, default 1-64 MiB) and ROUNDS rounds with a new pattern
 * each (a stale attachment shows): MPI_Sendrecv both ways at once, then
 * MPI_Send/MPI_Recv one way and back, then an unaligned one (3 bytes in,
 * 5 bytes short).  Every received 64-bit word is checked.  Exit 0 when
 * everything arrived intact, 1 otherwise.
 */
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank;

static uint64_t word(uint64_t seed, size_t i)
{
	uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29);
}

/* Patterns are bytes of words, so that an unaligned slice is checkable. */
static unsigned char byte_at(uint64_t seed, size_t off)
{
	return (unsigned char)(word(seed, off / 8) >> (off % 8 * 8));
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t *w = (uint64_t *)p;
	size_t i;
	for (i = 0; i < n / 8; i++)
		w[i] = word(seed, i);
	for (i = n / 8 * 8; i < n; i++)
		p[i] = byte_at(seed, i);
}

/* check: the first n bytes of p are the pattern seed from byte `skip` on. */
static int check(const char *what, const unsigned char *p, size_t n, uint64_t seed, size_t skip)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != byte_at(seed, skip + i)) {
			printf("[rank %d] DATA ERROR: %s, %zu bytes: byte %zu is %#x, expected %#x\n",
			       rank, what, n, i, p[i], byte_at(seed, skip + i));
			return 1;
		}
	return 0;
}

/* The single-copy mechanism vader settled on, by name ("" if unknown). */
static const char *single_copy_mechanism(char *name, int len)
{
	int provided, idx, val = -1, count, verb, bind, scope, nlen = 0, dlen = 0, items;

	/* MPI_T_cvar_read writes the variable's value: vader's enum is an int */
	MPI_T_cvar_handle h;
	MPI_T_enum en;
	MPI_Datatype dt;

	name[0] = '\0';
	if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS ||
	    MPI_T_cvar_get_index("btl_vader_single_copy_mechanism", &idx) != MPI_SUCCESS ||
	    MPI_T_cvar_get_info(idx, NULL, &nlen, &verb, &dt, &en, NULL, &dlen, &bind, &scope) !=
		    MPI_SUCCESS ||
	    MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) != MPI_SUCCESS ||
	    MPI_T_cvar_read(h, &val) != MPI_SUCCESS)
		return name;
	MPI_T_cvar_handle_free(&h);
	if (en != MPI_T_ENUM_NULL && MPI_T_enum_get_info(en, &items, NULL, &nlen) == MPI_SUCCESS) {
		for (int i = 0; i < items; i++) {
			char item[64];
			int v, l = sizeof(item);
			if (MPI_T_enum_get_item(en, i, &v, item, &l) == MPI_SUCCESS && v == val)
				snprintf(name, len, "%s", item);
		}
	}
	MPI_T_finalize();
	return name;
}

/* One exchange of n bytes in three ways; returns the number of errors. */
static int exchange(unsigned char *out, unsigned char *in, size_t n, uint64_t seed)
{
	int peer = !rank, bad = 0;
	uint64_t mine = seed * 2 + rank, theirs = seed * 2 + peer;

	fill(out, n, mine);
	memset(in, 0xa5, n);
	MPI_Sendrecv(out, (int)n, MPI_BYTE, peer, 1, in, (int)n, MPI_BYTE, peer, 1, MPI_COMM_WORLD,
		     MPI_STATUS_IGNORE);
	bad += check("sendrecv", in, n, theirs, 0);

	for (int from = 0; from < 2; from++) {
		memset(in, 0x5a, n);
		if (rank == from)
			MPI_Send(out, (int)n, MPI_BYTE, peer, 2, MPI_COMM_WORLD);
		else {
			MPI_Recv(in, (int)n, MPI_BYTE, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			bad += check("send/recv", in, n, theirs, 0);
		}
	}

	memset(in, 0x3c, n);
	MPI_Sendrecv(out + 3, (int)n - 8, MPI_BYTE, peer, 3, in + 5, (int)n - 8, MPI_BYTE, peer, 3,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	bad += check("unaligned sendrecv", in + 5, n - 8, theirs, 3);
	return bad;
}

int main(int argc, char **argv)
{
	size_t min = 1 << 20, max = 64 << 20;
	int rounds = 2, opt, size, bad = 0, total;
	const char *want = "xpmem";
	char mech[64];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	while ((opt = getopt(argc, argv, "s:S:r:m:")) != -1) {
		switch (opt) {
		case 's': min = strtoull(optarg, NULL, 0); break;
		case 'S': max = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		case 'm': want = optarg; break;
		default:
			if (rank == 0)
				fprintf(stderr, "usage: mpi_check [-s MIN] [-S MAX] [-r ROUNDS] [-m MECHANISM]\n");
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
	}
	if (size != 2 || min < 16 || min > max || max > (size_t)1 << 30) {
		if (rank == 0)
			fprintf(stderr, "mpi_check: needs 2 ranks and 16 <= MIN <= MAX <= 1 GiB\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}

	single_copy_mechanism(mech, sizeof(mech));
	printf("[rank %d] pid %d: vader single-copy mechanism: %s\n", rank, (int)getpid(),
	       mech[0] ? mech : "(unknown)");
	if (strcmp(mech, want) != 0) {
		printf("[rank %d] FAILED: the single-copy mechanism is not %s\n", rank, want);
		bad++;
	}

	unsigned char *out = malloc(max), *in = malloc(max);
	if (!out || !in)
		MPI_Abort(MPI_COMM_WORLD, 2);
	for (size_t n = min; n <= max; n *= 2) {
		int before = bad;
		for (int r = 0; r < rounds; r++)
			bad += exchange(out, in, n, (uint64_t)n * 16 + (uint64_t)r);
		if (rank == 0)
			printf("[rank 0] %zu bytes, %d rounds: %s\n", n, rounds,
			       bad > before ? "FAILED" : "ok");
		fflush(stdout);
	}
	free(out);
	free(in);

	MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("mpi_check: %s (%d errors)\n", total ? "FAILED" : "all data intact", total);
	MPI_Finalize();
	return total ? 1 : 0;
}
