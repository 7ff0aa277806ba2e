/*
 * xpmem-bench - the figures of uxpmem, side by side, in one run.
 *
 * Conventions of osu_* / ucx_perftest: the program spawns its peer (itself,
 * re-executed with a hidden role argument).  The peer is the EXPORTER: it
 * runs with the arena preload, allocates a buffer on its heap, exports its
 * whole address space like UCX does, and announces segid and buffer over a
 * pipe.  This process is the IMPORTER and measures, reading the exporter's
 * buffer: copy through a cached attachment next to local memcpy and
 * process_vm_readv (CMA), attach+detach latency, cold get+attach latency.
 *
 * Adding a figure is adding one entry to tests[]: a measure function per
 * column, optional ratios and targets.  Entries without columns print
 * "n/a (not implemented)".
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xpmem.h>
#include <uxpmem.h>
#include "arena.h" /* ABI of the preload's query function, no link dependency */

#ifndef UXP_PKGLIBDIR
#define UXP_PKGLIBDIR "/usr/local/lib/uxpmem"
#endif

#define ROLE_ARG "--xpmem-bench-exporter-role"
#define ARENA_SYMBOL "uxpmem_arena_query_v1"
#define ARENA_LIB_NAME "libuxpmem-arena.so"
#define PAGE 4096UL
#define MAXCOLS 4
#define MAXRATIOS 3
#define MAXTARGETS 3
#define MAXSIZES 32
#define MAXTESTS 16

/* ---- exporter <-> importer protocol (one pipe each way) ------------------- */

struct hello {
	int err;                 /* errno of the failed step, 0 if exported */
	char what[160];          /* the failed step and why */
	int arena;               /* the arena preload is active in the exporter */
	int in_arena;            /* the buffer lies in the arena */
	uint64_t arena_base, arena_size;
	char transport[32];      /* transport the exporter uses */
	int64_t segid;
	uint64_t seg_base;       /* address of segment offset 0 */
	uint64_t buf, size;      /* the buffer the importer reads */
};

enum { CMD_QUIT = 1 };

/* ---- importer state ----------------------------------------------------------- */

struct bench {
	pid_t peer;
	int cmd_fd, reply_fd;
	struct hello h;
	xpmem_apid_t apid;       /* cached apid and attachment of the buffer */
	char *att;
	bool have_apid;
	char *src, *dst;         /* local buffers */
	size_t maxsize;
	char seg_err[200];       /* why there is no segment/apid, "" if there is */
	char arena_err[200];     /* why the buffer is not shared memory, "" if it is */
	const char *preload, *preload_src;
	char peer_status[96];    /* exporter exit, for the report */
};

typedef int measure_fn(struct bench *b, size_t size, unsigned iters, double *out);

enum need {
	NEED_PEER,               /* only the exporter process */
	NEED_SEGMENT,            /* a segid and an apid */
	NEED_ARENA,              /* the buffer in the exporter's arena, attached */
};

struct column {
	const char *name;
	measure_fn *fn;
	enum need need;
};

struct ratio {
	const char *name;
	int num, den;            /* column indexes; ratio of medians */
};

struct target {
	const char *metric;      /* column or ratio name */
	size_t size;             /* 0: every size */
	bool below;              /* median must be below value (else at least) */
	double value;
};

struct test {
	const char *name;
	const char *title;
	const char *unit;
	bool per_op;             /* one sample per operation, else per repetition */
	uint64_t budget;         /* default iterations: budget/size clamped... */
	unsigned lo, hi;         /* ...to [lo, hi]; budget 0: hi */
	struct column cols[MAXCOLS];
	struct ratio ratios[MAXRATIOS];
	struct target targets[MAXTARGETS];
};

struct cell {
	int err;
	char msg[200];
	unsigned n;
	double med, p10, p90, min, max;
};

struct row {
	size_t size;
	unsigned iters;
	struct cell c[MAXCOLS];
	double ratio[MAXRATIOS]; /* < 0: not available */
};

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

struct opts {
	const struct test *tests[MAXTESTS];
	unsigned ntests;
	size_t sizes[MAXSIZES];
	unsigned nsizes;
	unsigned iters;          /* 0: per test default */
	unsigned reps;
	enum fmt fmt;
	bool quiet;
	const char *transport;
};

/* ---- timing and guarded access ---------------------------------------------- */

static inline double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Keeps the compiler from dropping copies nobody reads. */
static inline void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Touching a hole (or a revoked attachment) raises SIGBUS: report it as a
 * failed measurement instead of dying, so the other columns still print. */
static sigjmp_buf guard_jb;
static volatile sig_atomic_t guard_armed, guard_sig;

static void guard_handler(int sig)
{
	if (!guard_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	guard_sig = sig;
	siglongjmp(guard_jb, 1);
}

static void guard_install(void)
{
	struct sigaction sa = { .sa_handler = guard_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* ---- measurements -------------------------------------------------------------- */

static double copy_loop(char *dst, const char *src, size_t size, unsigned n)
{
	double t0 = now_us();
	for (unsigned i = 0; i < n; i++) {
		memcpy(dst, src, size);
		clobber(dst);
	}
	return now_us() - t0;
}

static double gbs(size_t size, unsigned n, double us)
{
	return us > 0 ? (double)size * n / (us * 1e3) : 0;
}

static int bw_memcpy(struct bench *b, size_t size, unsigned n, double *out)
{
	out[0] = gbs(size, n, copy_loop(b->dst, b->src, size, n));
	return 1;
}

static int bw_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	out[0] = gbs(size, n, copy_loop(b->dst, b->att, size, n));
	return 1;
}

static int cma_read(struct bench *b, size_t size)
{
	size_t done = 0;
	while (done < size) {
		struct iovec l = { b->dst + done, size - done };
		struct iovec r = { (void *)(uintptr_t)(b->h.buf + done), size - done };
		ssize_t got = process_vm_readv(b->peer, &l, 1, &r, 1, 0);
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		done += (size_t)got;
	}
	return 0;
}

static int bw_cma(struct bench *b, size_t size, unsigned n, double *out)
{
	double t0 = now_us();
	for (unsigned i = 0; i < n; i++) {
		int ret = cma_read(b, size);
		if (ret < 0)
			return ret;
	}
	out[0] = gbs(size, n, now_us() - t0);
	return 1;
}

static struct xpmem_addr buf_addr(const struct bench *b, xpmem_apid_t apid)
{
	return (struct xpmem_addr){ .apid = apid, .offset = (off_t)(b->h.buf - b->h.seg_base) };
}

/* A cached arena range: what an MPI library does per message. */
static int lat_attach(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_us();
		void *p = xpmem_attach(buf_addr(b, b->apid), size, NULL);
		if (p == (void *)-1)
			return -errno;
		if (xpmem_detach(p) < 0)
			return -errno;
		out[i] = now_us() - t0;
	}
	return (int)n;
}

/* First contact with a segment: a fresh apid every time (the connection to
 * the exporter exists after the warm-up repetition). */
static int lat_cold(struct bench *b, size_t size, unsigned n, double *out)
{
	for (unsigned i = 0; i < n; i++) {
		double t0 = now_us();
		xpmem_apid_t apid = xpmem_get(b->h.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
		if (apid < 0)
			return -errno;
		void *p = xpmem_attach(buf_addr(b, apid), size, NULL);
		if (p == (void *)-1) {
			int e = errno;
			xpmem_release(apid);
			return -e;
		}
		out[i] = now_us() - t0;
		xpmem_detach(p);
		xpmem_release(apid);
	}
	return (int)n;
}

/* ---- the tests ------------------------------------------------------------------ */

#define MiB (1024UL * 1024)
#define GiB (1024UL * MiB)

static const struct test tests[] = {
	{ "bw", "copy bandwidth, importer reads the exporter's buffer", "GB/s", false,
	  1 * GiB, 10, 10000,
	  { { "memcpy", bw_memcpy, NEED_PEER }, { "attach", bw_attach, NEED_ARENA },
	    { "cma", bw_cma, NEED_PEER } },
	  /* memcpy/cma bounds what attach/cma can reach on this machine */
	  { { "attach/memcpy", 1, 0 }, { "attach/cma", 1, 2 }, { "memcpy/cma", 0, 2 } },
	  { { "attach/memcpy", MiB, false, 0.9 }, { "attach/cma", MiB, false, 2.0 } } },
	{ "attach", "attach+detach of a cached arena range", "us", true,
	  0, 1, 10000,
	  { { "attach+detach", lat_attach, NEED_ARENA } }, { { 0 } },
	  { { "attach+detach", 0, true, 2.0 } } },
	{ "cold", "first get+attach, fresh apid each time", "us", true,
	  0, 1, 200,
	  { { "get+attach", lat_cold, NEED_SEGMENT } }, { { 0 } }, { { 0 } } },
	{ "convert", "in-place conversion cost of private memory", "us", true, 0, 1, 1,
	  { { 0 } }, { { 0 } }, { { 0 } } },
	{ "fault", "fault / re-resolve latency after the exporter remaps", "us", true, 0, 1, 1,
	  { { 0 } }, { { 0 } }, { { 0 } } },
	{ "revoke", "revocation latency (xpmem_remove with attached importers)", "us", true,
	  0, 1, 1, { { 0 } }, { { 0 } }, { { 0 } } },
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

static unsigned ncols(const struct test *t)
{
	unsigned n = 0;
	while (n < MAXCOLS && t->cols[n].name)
		n++;
	return n;
}

static unsigned nratios(const struct test *t)
{
	unsigned n = 0;
	while (n < MAXRATIOS && t->ratios[n].name)
		n++;
	return n;
}

static unsigned default_iters(const struct test *t, size_t size)
{
	if (!t->budget)
		return t->hi;
	uint64_t n = t->budget / (size ? size : 1);
	return n < t->lo ? t->lo : n > t->hi ? t->hi : (unsigned)n;
}

/* ---- statistics ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *v, unsigned n, double p)
{
	double pos = p * (n - 1);
	unsigned i = (unsigned)pos;
	return i + 1 < n ? v[i] + (pos - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static void stats(struct cell *c, double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	c->n = n;
	c->min = v[0];
	c->max = v[n - 1];
	c->med = pct(v, n, 0.5);
	c->p10 = pct(v, n, 0.1);
	c->p90 = pct(v, n, 0.9);
}

/* ---- running --------------------------------------------------------------------- */

static void fmt_size(char *s, size_t len, size_t v)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB" };
	unsigned u = 0;
	while (u < 3 && v >= 1024 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(s, len, "%zu %s", v, unit[u]);
}

static void progress(const struct opts *o, const struct test *t, const char *col,
		     size_t size, unsigned rep)
{
	if (o->quiet || !isatty(STDERR_FILENO))
		return;
	char sz[32];
	fmt_size(sz, sizeof(sz), size);
	if (rep == 0)
		fprintf(stderr, "\r\033[K%s: %s, %s: warm-up", t->name, col, sz);
	else
		fprintf(stderr, "\r\033[K%s: %s, %s: repetition %u/%u", t->name, col, sz, rep,
			o->reps);
}

static void progress_done(const struct opts *o)
{
	if (!o->quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\r\033[K");
}

static void cell_fail(struct cell *c, int err, const char *fmt, const char *arg)
{
	c->err = err;
	snprintf(c->msg, sizeof(c->msg), fmt, arg, strerror(err));
}

/* One repetition under the SIGBUS guard; < 0: -errno. */
static int guarded(const struct column *col, struct bench *b, size_t size, unsigned n,
		   double *out)
{
	guard_sig = 0;
	if (sigsetjmp(guard_jb, 1)) {
		guard_armed = 0;
		return -EFAULT;
	}
	guard_armed = 1;
	int ret = col->fn(b, size, n, out);
	guard_armed = 0;
	return ret;
}

static void run_cell(const struct opts *o, const struct test *t, unsigned ci, struct bench *b,
		     struct row *r)
{
	const struct column *col = &t->cols[ci];
	struct cell *c = &r->c[ci];
	const char *why = col->need >= NEED_SEGMENT && b->seg_err[0] ? b->seg_err :
		col->need >= NEED_ARENA && b->arena_err[0] ? b->arena_err : NULL;
	if (why) {
		c->err = ENOTSUP;
		snprintf(c->msg, sizeof(c->msg), "%s", why);
		return;
	}
	unsigned per = t->per_op ? r->iters : 1;
	double *v = calloc((size_t)per * (o->reps + 1), sizeof(double));
	unsigned nv = 0;
	for (unsigned rep = 0; rep <= o->reps && v; rep++) {
		progress(o, t, col->name, r->size, rep);
		/* rep 0 is the warm-up and is overwritten */
		int got = guarded(col, b, r->size, r->iters, v + nv);
		if (got < 0) {
			if (guard_sig)
				snprintf(c->msg, sizeof(c->msg), "%s while reading the attachment",
					 guard_sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
			else
				cell_fail(c, -got, "%s: %s", col->name);
			c->err = -got;
			break;
		}
		nv = rep ? nv + (unsigned)got : 0;
	}
	if (!v)
		cell_fail(c, ENOMEM, "%s: %s", col->name);
	else if (!c->err)
		stats(c, v, nv);
	free(v);
}

static void run_row(const struct opts *o, const struct test *t, struct bench *b, struct row *r)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		run_cell(o, t, ci, b, r);
	for (unsigned ri = 0; ri < nratios(t); ri++) {
		const struct cell *n = &r->c[t->ratios[ri].num], *d = &r->c[t->ratios[ri].den];
		r->ratio[ri] = n->err || d->err || d->med <= 0 ? -1 : n->med / d->med;
	}
}

/* ---- output ------------------------------------------------------------------------- */

static void fmt_num(char *s, size_t len, double v)
{
	const char *f = v >= 1000 ? "%.0f" : v >= 100 ? "%.1f" : v >= 1 ? "%.2f" : "%.3f";
	snprintf(s, len, f, v);
}

#define TW (2 + 2 * MAXCOLS + MAXRATIOS) /* size, iters, 2 per metric, ratios */
#define CW 40

struct table {
	unsigned ncol, nrow;
	char cell[MAXSIZES + 1][TW][CW];
};

static void table_print(const struct table *tb)
{
	size_t w[TW] = { 0 };
	for (unsigned r = 0; r < tb->nrow; r++)
		for (unsigned c = 0; c < tb->ncol; c++) {
			size_t l = strlen(tb->cell[r][c]);
			w[c] = l > w[c] ? l : w[c];
		}
	for (unsigned r = 0; r < tb->nrow; r++) {
		for (unsigned c = 0; c < tb->ncol; c++)
			printf("%s%*s", c ? "  " : "", (int)w[c], tb->cell[r][c]);
		putchar('\n');
	}
}

static void text_cells(const struct test *t, const struct row *row, char (*cell)[CW])
{
	unsigned k = 0;
	fmt_size(cell[k++], CW, row->size);
	snprintf(cell[k++], CW, "%u", row->iters);
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		const struct cell *c = &row->c[ci];
		if (c->err) {
			snprintf(cell[k++], CW, "failed");
			snprintf(cell[k++], CW, "-");
			continue;
		}
		char a[16], z[16];
		fmt_num(cell[k++], CW, c->med);
		fmt_num(a, sizeof(a), c->p10);
		fmt_num(z, sizeof(z), c->p90);
		snprintf(cell[k++], CW, "%s-%s", a, z);
	}
	for (unsigned ri = 0; ri < nratios(t); ri++) {
		if (row->ratio[ri] < 0)
			snprintf(cell[k++], CW, "-");
		else
			snprintf(cell[k++], CW, "%.2fx", row->ratio[ri]);
	}
}

static bool metric_value(const struct test *t, const struct row *row, const char *name,
			 double *v)
{
	for (unsigned ci = 0; ci < ncols(t); ci++)
		if (!strcmp(t->cols[ci].name, name) && !row->c[ci].err) {
			*v = row->c[ci].med;
			return true;
		}
	for (unsigned ri = 0; ri < nratios(t); ri++)
		if (!strcmp(t->ratios[ri].name, name) && row->ratio[ri] >= 0) {
			*v = row->ratio[ri];
			return true;
		}
	return false;
}

/* One line per target: "met" / "MISSED" at each size it applies to, so a
 * run answers the issue's goals directly. */
static void text_target(const struct test *t, const struct target *g, const struct row *rows,
			unsigned nrows)
{
	const char *sep = ":";
	printf("# target %s %s %g%s%s", g->metric, g->below ? "<" : ">=", g->value,
	       strchr(g->metric, '/') ? "" : " ", strchr(g->metric, '/') ? "" : t->unit);
	for (unsigned r = 0; r < nrows; r++) {
		char sz[32];
		double v;
		if (g->size && rows[r].size != g->size)
			continue;
		fmt_size(sz, sizeof(sz), rows[r].size);
		if (!metric_value(t, &rows[r], g->metric, &v))
			printf("%s %s not measured", sep, sz);
		else
			printf("%s %s %.3g %s", sep, sz, v,
			       (g->below ? v < g->value : v >= g->value) ? "met" : "MISSED");
		sep = ",";
	}
	putchar('\n');
}

static void text_targets(const struct test *t, const struct row *rows, unsigned nrows)
{
	for (unsigned ti = 0; ti < MAXTARGETS && t->targets[ti].metric; ti++) {
		const struct target *g = &t->targets[ti];
		bool applies = !g->size;
		for (unsigned r = 0; r < nrows; r++)
			applies |= rows[r].size == g->size;
		if (applies)
			text_target(t, g, rows, nrows);
	}
}

static void text_test(const struct test *t, const struct row *rows,
		      unsigned nrows)
{
	if (!ncols(t)) {
		printf("\n## %s: %s: n/a (not implemented)\n", t->name, t->title);
		return;
	}
	printf("\n## %s: %s, %s; median and p10-p90 over %s\n", t->name, t->title, t->unit,
	       t->per_op ? "all operations of all repetitions" : "repetitions");
	static struct table tb;
	unsigned k = 0;
	snprintf(tb.cell[0][k++], CW, "size");
	snprintf(tb.cell[0][k++], CW, "iters");
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		snprintf(tb.cell[0][k++], CW, "%s", t->cols[ci].name);
		snprintf(tb.cell[0][k++], CW, "p10-p90");
	}
	for (unsigned ri = 0; ri < nratios(t); ri++)
		snprintf(tb.cell[0][k++], CW, "%s", t->ratios[ri].name);
	tb.ncol = k;
	tb.nrow = nrows + 1;
	for (unsigned r = 0; r < nrows; r++)
		text_cells(t, &rows[r], tb.cell[r + 1]);
	table_print(&tb);
	for (unsigned ci = 0; ci < ncols(t); ci++)
		for (unsigned r = 0; r < nrows; r++)
			if (rows[r].c[ci].err) {
				printf("# %s failed: %s\n", t->cols[ci].name, rows[r].c[ci].msg);
				break;
			}
	text_targets(t, rows, nrows);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_cell(const char *name, const char *unit, const struct cell *c)
{
	printf("{\"metric\": ");
	json_str(name);
	printf(", \"unit\": ");
	json_str(unit);
	if (c->err) {
		printf(", \"status\": \"failed\", \"error\": ");
		json_str(c->msg);
	} else {
		printf(", \"status\": \"ok\", \"samples\": %u, \"median\": %.6g, \"p10\": %.6g, "
		       "\"p90\": %.6g, \"min\": %.6g, \"max\": %.6g", c->n, c->med, c->p10,
		       c->p90, c->min, c->max);
	}
	putchar('}');
}

static void json_row(const struct test *t, const struct row *row)
{
	printf("      {\"size\": %zu, \"iterations\": %u, \"metrics\": [", row->size, row->iters);
	for (unsigned ci = 0; ci < ncols(t); ci++) {
		printf(ci ? ", " : "");
		json_cell(t->cols[ci].name, t->unit, &row->c[ci]);
	}
	printf("], \"ratios\": {");
	for (unsigned ri = 0; ri < nratios(t); ri++) {
		printf("%s", ri ? ", " : "");
		json_str(t->ratios[ri].name);
		if (row->ratio[ri] < 0)
			printf(": null");
		else
			printf(": %.6g", row->ratio[ri]);
	}
	printf("}}");
}

static void json_test(const struct test *t, const struct row *rows, unsigned nrows, bool first)
{
	printf("%s    {\"test\": ", first ? "" : ",\n");
	json_str(t->name);
	printf(", \"title\": ");
	json_str(t->title);
	if (!ncols(t)) {
		printf(", \"status\": \"n/a (not implemented)\"}");
		return;
	}
	printf(", \"status\": \"ok\", \"unit\": ");
	json_str(t->unit);
	printf(", \"samples_per\": \"%s\", \"rows\": [\n", t->per_op ? "operation" : "repetition");
	for (unsigned r = 0; r < nrows; r++) {
		json_row(t, &rows[r]);
		printf(r + 1 < nrows ? ",\n" : "\n");
	}
	printf("    ]}");
}

static void csv_test(const struct test *t, const struct row *rows, unsigned nrows)
{
	if (!ncols(t)) {
		printf("%s,,,,,n/a (not implemented),,,,,,\n", t->name);
		return;
	}
	for (unsigned r = 0; r < nrows; r++) {
		const struct row *w = &rows[r];
		for (unsigned ci = 0; ci < ncols(t); ci++) {
			const struct cell *c = &w->c[ci];
			printf("%s,%zu,%u,%s,%s,", t->name, w->size, w->iters, t->cols[ci].name,
			       t->unit);
			if (c->err)
				printf("failed,,,,,,\n");
			else
				printf("ok,%.6g,%.6g,%.6g,%.6g,%.6g,%u\n", c->med, c->p10, c->p90,
				       c->min, c->max, c->n);
		}
		for (unsigned ri = 0; ri < nratios(t); ri++) {
			printf("%s,%zu,%u,%s,x,", t->name, w->size, w->iters, t->ratios[ri].name);
			if (w->ratio[ri] < 0)
				printf("failed,,,,,,\n");
			else
				printf("ok,%.6g,,,,,\n", w->ratio[ri]);
		}
	}
}

static void ref_version(char *s, size_t len)
{
	unsigned v = UXPMEM_REFERENCE_VERSION;
	snprintf(s, len, "%u.%u.%u", (v >> 16) & 0xff, (v >> 12) & 0xf, v & 0xfff);
}

static const char *importer_transport(void)
{
	const char *t = uxpmem_transport_name();
	return t ? t : "none";
}

static void text_header(const struct opts *o, const struct bench *b)
{
	struct utsname u;
	char ref[32], it[32];
	uname(&u);
	ref_version(ref, sizeof(ref));
	snprintf(it, sizeof(it), "%u", o->iters);
	printf("# xpmem-bench: uxpmem %s (XPMEM %s API), Linux %s, %ld CPUs\n",
	       uxpmem_version_string(), ref, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	printf("# transport: importer %s, exporter %s (XPMEM_TRANSPORT=%s)\n",
	       importer_transport(), b->h.transport[0] ? b->h.transport : "none",
	       o->transport ? o->transport : "auto");
	printf("# exporter: pid %d, LD_PRELOAD %s (%s), arena %s\n", (int)b->peer,
	       b->preload ? b->preload : "none", b->preload_src,
	       b->h.arena ? "active" : "NOT active");
	printf("# repetitions %u (+1 warm-up, discarded), iterations %s\n", o->reps,
	       o->iters ? it : "per size (see iters)");
	if (b->h.arena)
		printf("# exporter arena: %#" PRIx64 "+%" PRIu64 " GiB, buffer %#" PRIx64 " %s\n",
		       b->h.arena_base, b->h.arena_size >> 30, b->h.buf,
		       b->h.in_arena ? "inside" : "OUTSIDE");
	if (b->seg_err[0])
		printf("# no segment: %s\n", b->seg_err);
	else if (b->arena_err[0])
		printf("# no shared buffer: %s\n", b->arena_err);
}

static void json_header(const struct opts *o, const struct bench *b)
{
	char ref[32];
	ref_version(ref, sizeof(ref));
	printf("{\n  \"tool\": \"xpmem-bench\",\n  \"version\": ");
	json_str(uxpmem_version_string());
	printf(",\n  \"reference_version\": ");
	json_str(ref);
	printf(",\n  \"transport\": {\"importer\": ");
	json_str(importer_transport());
	printf(", \"exporter\": ");
	json_str(b->h.transport);
	printf(", \"XPMEM_TRANSPORT\": ");
	json_str(o->transport ? o->transport : "auto");
	printf("},\n  \"exporter\": {\"pid\": %d, \"ld_preload\": ", (int)b->peer);
	json_str(b->preload);
	printf(", \"preload_source\": ");
	json_str(b->preload_src);
	printf(", \"arena_active\": %s},\n", b->h.arena ? "true" : "false");
	printf("  \"segment_error\": ");
	json_str(b->seg_err);
	printf(",\n  \"arena_error\": ");
	json_str(b->arena_err);
	printf(",\n  \"repetitions\": %u,\n  \"warmup_repetitions\": 1,\n  \"tests\": [\n",
	       o->reps);
}

/* ---- exporter --------------------------------------------------------------------- */

static void hello_fail(struct hello *h, const char *what)
{
	h->err = errno;
	snprintf(h->what, sizeof(h->what), "exporter: %s: %s", what, strerror(h->err));
}

/* Is the buffer served from the preload's arena (i.e. shareable)? */
static void arena_check(struct hello *h)
{
	uxpmem_arena_query_v1_fn query;
	struct uxpmem_arena_v1 a;
	*(void **)&query = dlsym(RTLD_DEFAULT, UXPMEM_ARENA_QUERY_SYMBOL);
	if (!query || query(&a) != 0)
		return;
	h->arena = 1;
	h->arena_base = a.base;
	h->arena_size = a.size;
	h->in_arena = h->buf >= a.base && h->buf + h->size <= a.base + a.size;
}

/* Export like UCX (whole address space, 0600) and fall back to the buffer
 * alone if the transport refuses that. */
static void exporter_setup(struct hello *h, size_t size)
{
	void *buf = NULL;
	const char *t = uxpmem_transport_name();
	snprintf(h->transport, sizeof(h->transport), "%s", t ? t : "none");
	size = (size + PAGE - 1) & ~(PAGE - 1);
	if (posix_memalign(&buf, PAGE, size)) {
		errno = ENOMEM;
		hello_fail(h, "posix_memalign");
		return;
	}
	memset(buf, 0x5a, size);
	h->buf = (uintptr_t)buf;
	h->size = size;
	arena_check(h);
	h->segid = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	if (h->segid < 0) {
		h->segid = xpmem_make(buf, size, XPMEM_PERMIT_MODE, (void *)0600);
		h->seg_base = h->buf;
	}
	if (h->segid < 0)
		hello_fail(h, "xpmem_make");
}

static int exporter_main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	int cmd_fd = atoi(argv[2]), reply_fd = atoi(argv[3]);
	struct hello h = { 0 };
	exporter_setup(&h, strtoull(argv[4], NULL, 0));
	if (write(reply_fd, &h, sizeof(h)) != sizeof(h))
		return 1;
	int cmd;
	/* The service thread serves the importer meanwhile. */
	while (read(cmd_fd, &cmd, sizeof(cmd)) == sizeof(cmd) && cmd != CMD_QUIT)
		;
	if (h.segid > 0)
		xpmem_remove(h.segid);
	return 0;
}

/* ---- importer: spawning the exporter ---------------------------------------------- */

static bool readable(const char *p)
{
	return p && *p && access(p, R_OK) == 0;
}

/* $XPMEM_ARENA_LIB, else installed, else build tree; NULL if none exists. */
static void choose_preload(struct bench *b)
{
	const char *env = getenv("XPMEM_ARENA_LIB");
	if (env && *env) {
		b->preload = env;
		b->preload_src = readable(env) ? "from XPMEM_ARENA_LIB" :
			"from XPMEM_ARENA_LIB, NOT readable";
		return;
	}
	if (readable(UXP_PKGLIBDIR "/" ARENA_LIB_NAME)) {
		b->preload = UXP_PKGLIBDIR "/" ARENA_LIB_NAME;
		b->preload_src = "installed";
		return;
	}
#ifdef UXP_ARENA_BUILD_LIB
	if (readable(UXP_ARENA_BUILD_LIB)) {
		b->preload = UXP_ARENA_BUILD_LIB;
		b->preload_src = "build tree";
		return;
	}
#endif
	b->preload = NULL;
	b->preload_src = "no " ARENA_LIB_NAME " found: set XPMEM_ARENA_LIB";
}

/* environ with LD_PRELOAD=arena[:old]; built before fork (no malloc after). */
static char **exporter_env(const struct bench *b)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	const char *old = getenv("LD_PRELOAD");
	size_t k = 0;
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!b->preload || strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	if (b->preload) {
		size_t len = strlen(b->preload) + (old ? strlen(old) : 0) + 16;
		char *v = malloc(len);
		if (!v)
			return NULL;
		snprintf(v, len, "LD_PRELOAD=%s%s%s", b->preload, old && *old ? ":" : "",
			 old ? old : "");
		env[k++] = v;
	}
	return env;
}

static int spawn_exporter(struct bench *b)
{
	int cmd[2], reply[2];
	char a_cmd[16], a_reply[16], a_size[32];
	char **env = exporter_env(b);
	if (!env || pipe2(cmd, O_CLOEXEC) || pipe2(reply, O_CLOEXEC))
		return -errno;
	snprintf(a_cmd, sizeof(a_cmd), "%d", cmd[0]);
	snprintf(a_reply, sizeof(a_reply), "%d", reply[1]);
	snprintf(a_size, sizeof(a_size), "%zu", b->maxsize);
	char *args[] = { "xpmem-bench", ROLE_ARG, a_cmd, a_reply, a_size, NULL };
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fcntl(cmd[0], F_SETFD, 0);
		fcntl(reply[1], F_SETFD, 0);
		execve("/proc/self/exe", args, env);
		_exit(127);
	}
	close(cmd[0]);
	close(reply[1]);
	b->peer = pid;
	b->cmd_fd = cmd[1];
	b->reply_fd = reply[0];
	return 0;
}

static void describe_exit(struct bench *b)
{
	int st;
	if (waitpid(b->peer, &st, 0) != b->peer)
		snprintf(b->peer_status, sizeof(b->peer_status), "unknown");
	else if (WIFSIGNALED(st))
		snprintf(b->peer_status, sizeof(b->peer_status), "killed by signal %d (%s)",
			 WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(b->peer_status, sizeof(b->peer_status), "exited with status %d",
			 WEXITSTATUS(st));
}

static void arena_verdict(struct bench *b)
{
	if (!b->h.arena)
		snprintf(b->arena_err, sizeof(b->arena_err),
			 "the exporter runs without the arena preload (LD_PRELOAD %s, %s)",
			 b->preload ? b->preload : "none", b->preload_src);
	else if (!b->h.in_arena)
		snprintf(b->arena_err, sizeof(b->arena_err),
			 "the exporter's buffer %#" PRIx64 " is outside its arena", b->h.buf);
}

/* Get and attach the whole buffer once: the cached attachment. */
static void importer_attach(struct bench *b)
{
	arena_verdict(b);
	if (b->h.err) {
		snprintf(b->seg_err, sizeof(b->seg_err), "%s", b->h.what);
		return;
	}
	b->apid = xpmem_get(b->h.segid, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (b->apid < 0) {
		snprintf(b->seg_err, sizeof(b->seg_err), "importer: xpmem_get: %s",
			 strerror(errno));
		return;
	}
	b->have_apid = true;
	void *p = xpmem_attach(buf_addr(b, b->apid), b->h.size, NULL);
	if (p == (void *)-1) {
		if (!b->arena_err[0])
			snprintf(b->arena_err, sizeof(b->arena_err), "importer: xpmem_attach: %s",
				 strerror(errno));
		return;
	}
	b->att = p;
}

static int start(struct bench *b)
{
	choose_preload(b);
	/* Page-aligned like the exporter's buffer, so that memcpy and attach
	 * copy with the same relative alignment. */
	if (posix_memalign((void **)&b->src, PAGE, b->maxsize) ||
	    posix_memalign((void **)&b->dst, PAGE, b->maxsize))
		return -ENOMEM;
	memset(b->src, 0xa5, b->maxsize);
	memset(b->dst, 0, b->maxsize);
	int ret = spawn_exporter(b);
	if (ret < 0)
		return ret;
	if (read(b->reply_fd, &b->h, sizeof(b->h)) != sizeof(b->h)) {
		describe_exit(b);
		fprintf(stderr, "xpmem-bench: the exporter (LD_PRELOAD %s) %s before "
			"announcing its segment\n", b->preload ? b->preload : "none",
			b->peer_status);
		return -ECHILD;
	}
	importer_attach(b);
	return 0;
}

static void stop(struct bench *b)
{
	int cmd = CMD_QUIT;
	if (b->att)
		xpmem_detach(b->att);
	if (b->have_apid)
		xpmem_release(b->apid);
	if (write(b->cmd_fd, &cmd, sizeof(cmd)) != sizeof(cmd))
		kill(b->peer, SIGTERM);
	close(b->cmd_fd);
	describe_exit(b);
}

/* ---- options ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: xpmem-bench [options]\n"
		"Spawn an exporter peer (with the arena preload) and measure, side by side:\n"
		"copy bandwidth through an attachment vs memcpy and process_vm_readv, and\n"
		"attach latencies.\n"
		"  -t, --tests=T[,T]       tests to run (default: all):\n");
	for (size_t i = 0; i < NTESTS; i++)
		fprintf(f, "                            %-8s %s%s\n", tests[i].name, tests[i].title,
			ncols(&tests[i]) ? "" : " (not implemented)");
	fprintf(f,
		"  -s, --sizes=S[,S]       sizes, k/m/g suffixes (default 4k,64k,1m,64m)\n"
		"  -n, --iterations=N      iterations per repetition (default: per test and size)\n"
		"  -r, --repetitions=R     repetitions (default 5), after one warm-up\n"
		"  -T, --transport=NAME    set XPMEM_TRANSPORT for both peers\n"
		"  -j, --json              JSON output\n"
		"      --csv               CSV output\n"
		"  -q, --quiet             no progress line on stderr\n"
		"  -h, --help              this help\n"
		"The exporter preloads $XPMEM_ARENA_LIB, else %s/%s,\n"
		"else the build tree's library.\n", UXP_PKGLIBDIR, ARENA_LIB_NAME);
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "xpmem-bench: %s '%s'\n", what, arg);
	usage(stderr);
	return 2;
}

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end || v == 0 || v > (SIZE_MAX >> 1) >> shift)
		return false;
	*out = (size_t)(v << shift);
	return true;
}

static int parse_tests(struct opts *o, char *arg)
{
	o->ntests = 0;
	for (char *s, *p = strtok_r(arg, ",", &s); p; p = strtok_r(NULL, ",", &s)) {
		bool all = !strcmp(p, "all"), found = all;
		for (size_t i = 0; i < NTESTS; i++)
			if ((all || !strcmp(p, tests[i].name)) && o->ntests < MAXTESTS) {
				o->tests[o->ntests++] = &tests[i];
				found = true;
			}
		if (!found)
			return bad("unknown test", p);
	}
	return o->ntests ? 0 : bad("no test in", "");
}

static int parse_sizes(struct opts *o, char *arg)
{
	o->nsizes = 0;
	for (char *s, *p = strtok_r(arg, ",", &s); p; p = strtok_r(NULL, ",", &s)) {
		if (o->nsizes == MAXSIZES || !parse_size(p, &o->sizes[o->nsizes]))
			return bad("bad size", p);
		o->nsizes++;
	}
	return o->nsizes ? 0 : bad("no size in", "");
}

static int parse_count(const char *arg, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || *end || end == arg || v == 0 || v > 100000000 || *arg == '-')
		return bad("bad count", arg);
	*out = (unsigned)v;
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tests", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 's' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "repetitions", required_argument, NULL, 'r' },
		{ "transport", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'C' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char dflt_sizes[] = "4k,64k,1m,64m", dflt_tests[] = "all";
	int c, ret = 0;
	*o = (struct opts){ .reps = 5 };
	parse_sizes(o, dflt_sizes);
	parse_tests(o, dflt_tests);
	while (!ret && (c = getopt_long(argc, argv, "t:s:n:r:T:jqh", lo, NULL)) != -1) {
		switch (c) {
		case 't': ret = parse_tests(o, optarg); break;
		case 's': ret = parse_sizes(o, optarg); break;
		case 'n': ret = parse_count(optarg, &o->iters); break;
		case 'r': ret = parse_count(optarg, &o->reps); break;
		case 'T': o->transport = optarg; break;
		case 'j': o->fmt = FMT_JSON; break;
		case 'C': o->fmt = FMT_CSV; break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (!ret && optind < argc)
		ret = bad("unexpected argument", argv[optind]);
	return ret;
}

/* ---- main ----------------------------------------------------------------------------- */

/* Returns the number of failed cells. */
static unsigned run_test(const struct opts *o, const struct test *t, struct bench *b,
			 bool first)
{
	static struct row rows[MAXSIZES];
	unsigned failed = 0, nrows = ncols(t) ? o->nsizes : 0;
	for (unsigned r = 0; r < nrows; r++) {
		rows[r] = (struct row){ .size = o->sizes[r] };
		rows[r].iters = o->iters ? o->iters : default_iters(t, o->sizes[r]);
		run_row(o, t, b, &rows[r]);
		for (unsigned ci = 0; ci < ncols(t); ci++)
			failed += rows[r].c[ci].err != 0;
	}
	progress_done(o);
	if (o->fmt == FMT_TEXT)
		text_test(t, rows, nrows);
	else if (o->fmt == FMT_JSON)
		json_test(t, rows, nrows, first);
	else
		csv_test(t, rows, nrows);
	fflush(stdout);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], ROLE_ARG))
		return exporter_main(argc, argv);

	struct opts o;
	int ret = parse_opts(&o, argc, argv);
	if (ret)
		return ret == 1 ? 0 : ret;
	if (o.transport)
		setenv("XPMEM_TRANSPORT", o.transport, 1);
	signal(SIGPIPE, SIG_IGN);
	guard_install();

	struct bench b = { .maxsize = PAGE };
	for (unsigned i = 0; i < o.nsizes; i++)
		b.maxsize = o.sizes[i] > b.maxsize ? o.sizes[i] : b.maxsize;
	ret = start(&b);
	if (ret < 0) {
		if (ret != -ECHILD)
			fprintf(stderr, "xpmem-bench: cannot start: %s\n", strerror(-ret));
		return 1;
	}

	unsigned failed = 0;
	if (o.fmt == FMT_TEXT)
		text_header(&o, &b);
	else if (o.fmt == FMT_JSON)
		json_header(&o, &b);
	else
		printf("test,size,iterations,metric,unit,status,median,p10,p90,min,max,samples\n");
	for (unsigned i = 0; i < o.ntests; i++)
		failed += run_test(&o, o.tests[i], &b, i == 0);
	if (o.fmt == FMT_JSON)
		printf("\n  ]\n}\n");
	stop(&b);
	if (failed)
		fprintf(stderr, "xpmem-bench: %u measurement(s) failed (exporter %s)\n", failed,
			b.peer_status);
	return failed ? 1 : 0;
}
