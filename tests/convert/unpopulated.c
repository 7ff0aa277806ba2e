/* unpopulated.c - no write is lost to pages that were never touched before
 * the conversion began.  Writers populate a fresh 64 MiB anonymous mapping
 * slowly, so most pages are still unpopulated when the importer's attach
 * freezes and copies the range: without write-protection of unpopulated
 * pages (UFFD_FEATURE_WP_UNPOPULATED, Linux 6.4) their first writes would
 * land in the old private pages behind the copy and be lost. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uxpmem.h>
#include <xpmem.h>
#include "testutil.h"

#define NPAGES 16384
#define NTHREADS 4

static int stop; /* atomic */
static unsigned char *buf;
static unsigned long written[NTHREADS][NPAGES / NTHREADS];

static void *writer(void *arg)
{
	long t = (long)arg;
	for (unsigned long round = 1; !__atomic_load_n(&stop, __ATOMIC_RELAXED); round++)
		for (int i = 0; i < NPAGES / NTHREADS && !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
			size_t pg = (size_t)t * (NPAGES / NTHREADS) + (size_t)i;
			((volatile unsigned long *)(buf + pg * 4096))[0] = round;
			written[t][i] = round;
			if (round == 1 && (i & 7) == 0)
				usleep(50); /* populate slowly: most pages untouched at the freeze */
		}
	return NULL;
}

static int importer(const char *segid, const char *addr)
{
	xpmem_apid_t ap = xpmem_get(strtoll(segid, NULL, 0), XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL);
	if (ap < 0)
		return 2;
	struct xpmem_addr xa = { ap, (off_t)strtoull(addr, NULL, 0) };
	return xpmem_attach(xa, (size_t)NPAGES * 4096, NULL) == (void *)-1 ? 3 : 0;
}

START_TEST(t_unpopulated)
{
	if (uxpmem_export_level(NULL, 0) == UXPMEM_EXPORT_ARENA)
		return; /* no userfaultfd: nothing is converted */
	buf = mmap(NULL, (size_t)NPAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);
	xpmem_segid_t seg = xpmem_make(0, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600);
	ck_assert_int_gt(seg, 0);
	pthread_t th[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	usleep(200);
	char a1[32], a2[32];
	snprintf(a1, sizeof(a1), "%lld", (long long)seg);
	snprintf(a2, sizeof(a2), "%lu", (unsigned long)buf);
	pid_t c = fork();
	if (c == 0) {
		execl("/proc/self/exe", "unpopulated", a1, a2, (char *)NULL);
		_exit(127);
	}
	int status = tu_wait_child(c, 30000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(status == 0, "importer failed: status %#x", status);
	long lost = 0;
	for (int t = 0; t < NTHREADS; t++)
		for (int i = 0; i < NPAGES / NTHREADS; i++) {
			size_t pg = (size_t)t * (NPAGES / NTHREADS) + (size_t)i;
			lost += ((unsigned long *)(buf + pg * 4096))[0] != written[t][i];
		}
	ck_assert_msg(lost == 0, "%ld pages lost their last write across the conversion", lost);
	ck_assert_int_eq(xpmem_remove(seg), 0);
}
END_TEST

int main(int argc, char **argv)
{
	if (argc == 3)
		return importer(argv[1], argv[2]);
	if (tu_under_valgrind()) /* valgrind runs one thread at a time: no userfaultfd */
		return 77;
	setenv("XPMEM_TRANSPORT", "shm", 1);
	Suite *s = suite_create("convert-unpopulated");
	TCase *tc = tcase_create("unpopulated");
	tcase_set_timeout(tc, tu_guard_s(60));
	for (int i = 0; i < 3; i++)
		tcase_add_test(tc, t_unpopulated);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
