/* units_test.c - unit tests of the core's building blocks: the sharded id
 * table, the environment parsers and the id layout.  Runs with CK_FORK=no
 * (valgrind): every test cleans up after itself. */
#include <check.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "uxp.h"
#include "testutil.h"

/* ---- idtab ------------------------------------------------------------- */

static struct uxp_idtab tab;
static void tab_setup(void) { uxp_idtab_init(&tab); }
static void tab_teardown(void) { uxp_idtab_destroy(&tab); }

START_TEST(idtab_basic)
{
	int a, b, c;
	ck_assert_uint_eq(uxp_idtab_count(&tab), 0);
	ck_assert_ptr_null(uxp_idtab_get(&tab, 1, NULL));
	ck_assert_ptr_null(uxp_idtab_remove(&tab, 1, NULL));
	ck_assert_int_eq(uxp_idtab_insert(&tab, 1, &a), 0);
	ck_assert_int_eq(uxp_idtab_insert(&tab, 2, &b), 0);
	ck_assert_int_eq(uxp_idtab_insert(&tab, UINT64_MAX, &c), 0);
	ck_assert_int_eq(uxp_idtab_insert(&tab, 1, &c), -EEXIST);
	ck_assert_uint_eq(uxp_idtab_count(&tab), 3);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 1, NULL), &a); /* EEXIST kept the old one */
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 2, NULL), &b);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, UINT64_MAX, NULL), &c);
	ck_assert_ptr_null(uxp_idtab_get(&tab, 3, NULL));

	/* match: only the entry holding that object goes. */
	ck_assert_ptr_null(uxp_idtab_remove(&tab, 1, &b));
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 1, NULL), &a);
	ck_assert_ptr_eq(uxp_idtab_remove(&tab, 1, &a), &a);
	ck_assert_ptr_null(uxp_idtab_get(&tab, 1, NULL));
	ck_assert_ptr_null(uxp_idtab_remove(&tab, 1, NULL));
	ck_assert_ptr_eq(uxp_idtab_remove(&tab, 2, NULL), &b);
	ck_assert_uint_eq(uxp_idtab_count(&tab), 1);
	/* A removed key can come back. */
	ck_assert_int_eq(uxp_idtab_insert(&tab, 2, &a), 0);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 2, NULL), &a);
	ck_assert_uint_eq(uxp_idtab_count(&tab), 2);
}
END_TEST

static void hold_count(void *obj)
{
	(*(int *)obj)++; /* plain increment: hold() runs under the shard lock */
}

START_TEST(idtab_hold)
{
	int refs = 0;
	ck_assert_int_eq(uxp_idtab_insert(&tab, 42, &refs), 0);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 42, hold_count), &refs);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 42, hold_count), &refs);
	ck_assert_ptr_null(uxp_idtab_get(&tab, 43, hold_count));
	ck_assert_int_eq(refs, 2);
}
END_TEST

#define MANY 20000
struct sum { uint64_t keys, vals; unsigned n; };

static int sum_fn(uint64_t key, void *obj, void *arg)
{
	struct sum *s = arg;
	s->keys += key;
	s->vals += (uintptr_t)obj;
	s->n++;
	return 0;
}

static int stop_at_third(uint64_t key, void *obj, void *arg)
{
	(void)key;
	(void)obj;
	return ++*(int *)arg == 3 ? 77 : 0;
}

START_TEST(idtab_growth_and_foreach)
{
	/* Sequential ids (the common case) and scattered ones. */
	for (uint64_t i = 1; i <= MANY; i++) {
		uint64_t key = i & 1 ? i : i << 40;
		ck_assert_int_eq(uxp_idtab_insert(&tab, key, (void *)(uintptr_t)(i * 3)), 0);
	}
	ck_assert_uint_eq(uxp_idtab_count(&tab), MANY);
	struct sum want = { 0, 0, 0 };
	for (uint64_t i = 1; i <= MANY; i++) {
		uint64_t key = i & 1 ? i : i << 40;
		ck_assert_ptr_eq(uxp_idtab_get(&tab, key, NULL), (void *)(uintptr_t)(i * 3));
		want.keys += key;
		want.vals += i * 3;
	}
	struct sum got = { 0, 0, 0 };
	ck_assert_int_eq(uxp_idtab_foreach(&tab, sum_fn, &got), 0);
	ck_assert_uint_eq(got.n, MANY);
	ck_assert_uint_eq(got.keys, want.keys);
	ck_assert_uint_eq(got.vals, want.vals);

	int calls = 0;
	ck_assert_int_eq(uxp_idtab_foreach(&tab, stop_at_third, &calls), 77);
	ck_assert_int_eq(calls, 3);

	for (uint64_t i = 1; i <= MANY; i += 2)
		ck_assert_ptr_eq(uxp_idtab_remove(&tab, i, NULL), (void *)(uintptr_t)(i * 3));
	ck_assert_uint_eq(uxp_idtab_count(&tab), MANY / 2);
	ck_assert_ptr_null(uxp_idtab_get(&tab, 1, NULL));
	ck_assert_ptr_eq(uxp_idtab_get(&tab, (uint64_t)2 << 40, NULL), (void *)(uintptr_t)6);
}
END_TEST

START_TEST(idtab_empty_foreach)
{
	struct sum got = { 0, 0, 0 };
	ck_assert_int_eq(uxp_idtab_foreach(&tab, sum_fn, &got), 0);
	ck_assert_uint_eq(got.n, 0);
}
END_TEST

#define NTHR 4
#define PER_THREAD 5000
#define NSHARED 16
#define RACED 2000
#define ROUNDS 20000

struct shared_obj { uint64_t key; int refs; };
static struct shared_obj shared[NSHARED];
static int raced_owner[NTHR]; /* distinct address per thread = its token */
static pthread_barrier_t barrier;

struct worker { int id; unsigned gets, won, removed; int bad; };

static void hold_shared(void *obj)
{
	((struct shared_obj *)obj)->refs++; /* lost updates if not under the lock */
}

static void *hammer(void *arg)
{
	struct worker *w = arg;
	uint64_t base = (uint64_t)(w->id + 1) << 32;
	pthread_barrier_wait(&barrier);
	for (uint64_t i = 0; i < PER_THREAD; i++)
		if (uxp_idtab_insert(&tab, base + i, (void *)(uintptr_t)(base + i)) != 0)
			w->bad++;
	/* Everyone races for the same keys; exactly one insert wins each. */
	for (uint64_t k = 0; k < RACED; k++) {
		int r = uxp_idtab_insert(&tab, 1000 + k, &raced_owner[w->id]);
		if (r == 0)
			w->won++;
		else if (r != -EEXIST)
			w->bad++;
	}
	for (unsigned r = 0; r < ROUNDS; r++) {
		struct shared_obj *o = uxp_idtab_get(&tab, shared[r % NSHARED].key, hold_shared);
		if (o != &shared[r % NSHARED])
			w->bad++;
		w->gets++;
		uint64_t mine = base + r % PER_THREAD;
		if (uxp_idtab_get(&tab, mine, NULL) != (void *)(uintptr_t)mine)
			w->bad++;
	}
	/* Remove only what we won, via match, once nobody inserts any more
	 * (or a late thread could win a key again after our removal). */
	pthread_barrier_wait(&barrier);
	for (uint64_t k = 0; k < RACED; k++)
		if (uxp_idtab_remove(&tab, 1000 + k, &raced_owner[w->id]))
			w->removed++;
	for (uint64_t i = 0; i < PER_THREAD; i += 2)
		if (uxp_idtab_remove(&tab, base + i, NULL) != (void *)(uintptr_t)(base + i))
			w->bad++;
	return NULL;
}

START_TEST(idtab_threads)
{
	for (int i = 0; i < NSHARED; i++) {
		shared[i] = (struct shared_obj){ .key = 0xabc0000 + (uint64_t)i, .refs = 0 };
		ck_assert_int_eq(uxp_idtab_insert(&tab, shared[i].key, &shared[i]), 0);
	}
	pthread_t th[NTHR];
	struct worker w[NTHR];
	pthread_barrier_init(&barrier, NULL, NTHR);
	for (int i = 0; i < NTHR; i++) {
		w[i] = (struct worker){ .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
	}
	unsigned gets = 0, won = 0;
	for (int i = 0; i < NTHR; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].bad, 0);
		ck_assert_uint_eq(w[i].won, w[i].removed);
		gets += w[i].gets;
		won += w[i].won;
	}
	pthread_barrier_destroy(&barrier);
	ck_assert_uint_eq(won, RACED);
	int refs = 0;
	for (int i = 0; i < NSHARED; i++)
		refs += shared[i].refs;
	ck_assert_int_eq(refs, (int)gets);
	/* No lost entries: the shared ones and the odd half of each thread's. */
	ck_assert_uint_eq(uxp_idtab_count(&tab), NSHARED + NTHR * PER_THREAD / 2);
	for (int t = 0; t < NTHR; t++) {
		uint64_t base = (uint64_t)(t + 1) << 32;
		for (uint64_t i = 0; i < PER_THREAD; i++) {
			void *want = i & 1 ? (void *)(uintptr_t)(base + i) : NULL;
			ck_assert_ptr_eq(uxp_idtab_get(&tab, base + i, NULL), want);
		}
	}
	for (uint64_t k = 0; k < RACED; k++)
		ck_assert_ptr_null(uxp_idtab_get(&tab, 1000 + k, NULL));
}
END_TEST

/* Read-modify-write under the shard lock: each increment replaces the
 * entry's object; a lost update shows as a wrong final value. */
#define RMW_KEYS 8
#define RMW_ROUNDS 5000
static uintptr_t rmw_slots[RMW_KEYS * (NTHR * RMW_ROUNDS + 1)];

static void *rmw(void *arg)
{
	unsigned id = *(unsigned *)arg, bad = 0;
	pthread_barrier_wait(&barrier);
	for (unsigned r = 0; r < RMW_ROUNDS; r++) {
		uint64_t key = 500 + (r + id) % RMW_KEYS;
		uxp_idtab_lock(&tab, key);
		uintptr_t *cur = uxp_idtab_get_locked(&tab, key);
		uintptr_t *next = cur + RMW_KEYS; /* the next slot of this key */
		*next = *cur + 1;
		if (uxp_idtab_remove_locked(&tab, key, cur) != cur)
			bad++;
		if (uxp_idtab_insert_locked(&tab, key, next) != 0)
			bad++;
		uxp_idtab_unlock(&tab, key);
	}
	return (void *)(uintptr_t)bad;
}

START_TEST(idtab_locked_rmw)
{
	for (unsigned k = 0; k < RMW_KEYS; k++) {
		rmw_slots[k] = 0;
		ck_assert_int_eq(uxp_idtab_insert(&tab, 500 + k, &rmw_slots[k]), 0);
	}
	pthread_t th[NTHR];
	unsigned ids[NTHR];
	pthread_barrier_init(&barrier, NULL, NTHR);
	for (unsigned i = 0; i < NTHR; i++) {
		ids[i] = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, rmw, &ids[i]), 0);
	}
	for (unsigned i = 0; i < NTHR; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		ck_assert_ptr_null(bad);
	}
	pthread_barrier_destroy(&barrier);
	uintptr_t total = 0;
	for (unsigned k = 0; k < RMW_KEYS; k++) {
		uxp_idtab_lock(&tab, 500 + k);
		uintptr_t *v = uxp_idtab_get_locked(&tab, 500 + k);
		uxp_idtab_unlock(&tab, 500 + k);
		ck_assert_ptr_nonnull(v);
		total += *v;
	}
	ck_assert_uint_eq(total, NTHR * RMW_ROUNDS);
	ck_assert_uint_eq(uxp_idtab_count(&tab), RMW_KEYS);
}
END_TEST

static int child_after_reset(void)
{
	uxp_idtab_reset_after_fork(&tab, NULL);
	if (uxp_idtab_count(&tab) != 0)
		return 1;
	if (uxp_idtab_get(&tab, 7, NULL))
		return 2;
	if (uxp_idtab_insert(&tab, 7, &tab) != 0 || uxp_idtab_get(&tab, 7, NULL) != &tab)
		return 3;
	if (uxp_idtab_count(&tab) != 1)
		return 4;
	uxp_idtab_destroy(&tab);
	return 0;
}


static int walker_inside, forked;

/* Hold the shard lock (we are inside foreach) until the parent forked. */
static int wait_for_fork(uint64_t key, void *obj, void *arg)
{
	(void)key;
	(void)obj;
	(void)arg;
	__atomic_store_n(&walker_inside, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&forked, __ATOMIC_ACQUIRE))
		usleep(1000);
	return 1;
}

static void *walker(void *arg)
{
	(void)arg;
	uxp_idtab_foreach(&tab, wait_for_fork, NULL);
	return NULL;
}

START_TEST(idtab_reset_after_fork)
{
	for (uint64_t i = 1; i <= 500; i++)
		ck_assert_int_eq(uxp_idtab_insert(&tab, i, (void *)(uintptr_t)i), 0);
	walker_inside = forked = 0;
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, walker, NULL), 0);
	while (!__atomic_load_n(&walker_inside, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* A shard lock is held by a thread that will not exist in the child. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_after_reset());
	__atomic_store_n(&forked, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	int st = tu_wait_child(pid, 20000);
	ck_assert_msg(st != -1, "child blocked (a lock survived the reset?)");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child check %d failed",
		      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* The parent's table is untouched. */
	ck_assert_uint_eq(uxp_idtab_count(&tab), 500);
	ck_assert_ptr_eq(uxp_idtab_get(&tab, 250, NULL), (void *)(uintptr_t)250);
}
END_TEST

/* ---- config ------------------------------------------------------------ */

#define VAR "UXP_UNITS_TEST_VAR"

static uint64_t size_of(const char *v, uint64_t def)
{
	setenv(VAR, v, 1);
	uint64_t r = uxp_env_size(VAR, def);
	unsetenv(VAR);
	return r;
}

static long long_of(const char *v, long def)
{
	setenv(VAR, v, 1);
	long r = uxp_env_long(VAR, def);
	unsetenv(VAR);
	return r;
}

START_TEST(env_plain)
{
	unsetenv(VAR);
	ck_assert_ptr_null(uxp_env(VAR));
	setenv(VAR, "", 1);
	ck_assert_ptr_null(uxp_env(VAR)); /* empty = unset */
	setenv(VAR, "x", 1);
	ck_assert_str_eq(uxp_env(VAR), "x");
	unsetenv(VAR);
}
END_TEST

START_TEST(env_size)
{
	const uint64_t def = 12345;
	ck_assert_uint_eq(uxp_env_size(VAR, def), def); /* unset */
	ck_assert_uint_eq(size_of("", def), def);
	ck_assert_uint_eq(size_of("4096", def), 4096);
	ck_assert_uint_eq(size_of("0", def), 0);
	ck_assert_uint_eq(size_of("0x1000", def), 4096);
	ck_assert_uint_eq(size_of("4k", def), 4096);
	ck_assert_uint_eq(size_of("4K", def), 4096);
	ck_assert_uint_eq(size_of("4kb", def), 4096);
	ck_assert_uint_eq(size_of("4KiB", def), 4096);
	ck_assert_uint_eq(size_of("1MiB", def), UINT64_C(1) << 20);
	ck_assert_uint_eq(size_of("2m", def), UINT64_C(2) << 20);
	ck_assert_uint_eq(size_of("64G", def), UINT64_C(64) << 30);
	ck_assert_uint_eq(size_of("64GiB", def), UINT64_C(64) << 30);
	ck_assert_uint_eq(size_of("3t", def), UINT64_C(3) << 40);
	ck_assert_uint_eq(size_of("garbage", def), def);
	ck_assert_uint_eq(size_of("4x", def), def);
	ck_assert_uint_eq(size_of("4kk", def), def);
	ck_assert_uint_eq(size_of("4kB!", def), def);
	ck_assert_uint_eq(size_of("k", def), def);
	ck_assert_uint_eq(size_of("16777216T", def), def); /* 2^64 overflows */
	ck_assert_uint_eq(size_of("16777215T", def), UINT64_C(16777215) << 40);
	ck_assert_uint_eq(size_of("99999999999999999999999", def), def);
}
END_TEST

START_TEST(env_size_negative)
{
	/* strtoull accepts "-1" as 2^64-1: a negative size is garbage. */
	ck_assert_uint_eq(size_of("-1", 77), 77);
	ck_assert_uint_eq(size_of("-4k", 77), 77);
	ck_assert_uint_eq(size_of(" -4k", 77), 77);
}
END_TEST

START_TEST(env_long)
{
	ck_assert_int_eq(uxp_env_long(VAR, -3), -3);
	ck_assert_int_eq(long_of("", 9), 9);
	ck_assert_int_eq(long_of("42", 9), 42);
	ck_assert_int_eq(long_of("-7", 9), -7);
	ck_assert_int_eq(long_of("0x10", 9), 16);
	ck_assert_int_eq(long_of("010", 9), 8);
	ck_assert_int_eq(long_of("12abc", 9), 9);
	ck_assert_int_eq(long_of("abc", 9), 9);
	ck_assert_int_eq(long_of("4k", 9), 9);
	ck_assert_int_eq(long_of("99999999999999999999999", 9), 9);
}
END_TEST

/* ---- id layout --------------------------------------------------------- */

START_TEST(id_round_trip)
{
	const unsigned nodes[] = { 0, 1, 77, (1u << UXP_ID_NODE_BITS) - 1 };
	const pid_t pids[] = { 1, 2, 4242, 65536, (1 << UXP_ID_PID_BITS) - 1 };
	const uint32_t serials[] = { 1, 2, 1000, (1u << UXP_ID_SERIAL_BITS) - 1 };
	for (unsigned n = 0; n < UXP_ARRAY_SIZE(nodes); n++)
		for (unsigned p = 0; p < UXP_ARRAY_SIZE(pids); p++)
			for (unsigned s = 0; s < UXP_ARRAY_SIZE(serials); s++) {
				int64_t id = uxp_id_compose(nodes[n], pids[p], serials[s]);
				ck_assert_int_gt(id, 0);
				ck_assert_uint_eq(uxp_id_node(id), nodes[n]);
				ck_assert_int_eq(uxp_id_pid(id), pids[p]);
				ck_assert_uint_eq(uxp_id_serial(id), serials[s]);
			}
	/* Our own pid fits (pid_max <= 2^22). */
	int64_t id = uxp_id_compose(0, getpid(), 1);
	ck_assert_int_eq(uxp_id_pid(id), getpid());
	ck_assert_int_gt(id, 0);
	/* The fields do not overlap. */
	ck_assert_int_eq(UXP_ID_PID_SHIFT, UXP_ID_SERIAL_BITS);
	ck_assert_int_eq(UXP_ID_NODE_SHIFT, UXP_ID_PID_SHIFT + UXP_ID_PID_BITS);
	ck_assert_int_eq(UXP_ID_NODE_SHIFT + UXP_ID_NODE_BITS, 63);
	/* A serial wraps inside its field instead of spilling into the pid. */
	id = uxp_id_compose(0, 5, 1u << UXP_ID_SERIAL_BITS | 3);
	ck_assert_int_eq(uxp_id_pid(id), 5);
	ck_assert_uint_eq(uxp_id_serial(id), 3);
	/* Another process's id differs in the pid field only. */
	ck_assert_int_ne(uxp_id_compose(0, 100, 9), uxp_id_compose(0, 101, 9));
}
END_TEST

static Suite *units_suite(void)
{
	Suite *s = suite_create("units");
	TCase *tc = tcase_create("idtab");
	tcase_add_checked_fixture(tc, tab_setup, tab_teardown);
	tcase_set_timeout(tc, tu_guard_s(50));
	tcase_add_test(tc, idtab_basic);
	tcase_add_test(tc, idtab_hold);
	tcase_add_test(tc, idtab_growth_and_foreach);
	tcase_add_test(tc, idtab_empty_foreach);
	tcase_add_test(tc, idtab_threads);
	tcase_add_test(tc, idtab_locked_rmw);
	tcase_add_test(tc, idtab_reset_after_fork);
	suite_add_tcase(s, tc);
	tc = tcase_create("config");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, env_plain);
	tcase_add_test(tc, env_size);
	tcase_add_test(tc, env_size_negative);
	tcase_add_test(tc, env_long);
	suite_add_tcase(s, tc);
	tc = tcase_create("ids");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, id_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(units_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
