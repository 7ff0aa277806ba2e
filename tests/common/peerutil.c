/* peerutil.c - see peerutil.h */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peerutil.h"

void pu_reply(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

unsigned long long pu_num(char **save)
{
	char *t = strtok_r(NULL, " \t\n", save);
	return t ? strtoull(t, NULL, 0) : 0;
}

struct cas_job {
	volatile uint64_t *ctr;
	long n;
};
static pthread_t cas_threads[PU_CAS_MAX];
static struct cas_job cas_jobs[PU_CAS_MAX];
static int cas_nthreads;

static void *cas_worker(void *arg)
{
	struct cas_job *j = arg;
	for (long i = 0; i < j->n; i++) {
		uint64_t old = __atomic_load_n(j->ctr, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(j->ctr, &old, old + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
	}
	return NULL;
}

void pu_cas_start(volatile uint64_t *ctr, long n, int nthreads)
{
	if (nthreads > PU_CAS_MAX)
		nthreads = PU_CAS_MAX;
	cas_nthreads = nthreads;
	for (int i = 0; i < nthreads; i++) {
		cas_jobs[i].ctr = ctr;
		cas_jobs[i].n = n;
		pthread_create(&cas_threads[i], NULL, cas_worker, &cas_jobs[i]);
	}
}

void pu_cas_join(void)
{
	for (int i = 0; i < cas_nthreads; i++)
		pthread_join(cas_threads[i], NULL);
	cas_nthreads = 0;
}

unsigned long long pu_maxaddr(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long long lo, hi, top = 0;
	char line[512];
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx", &lo, &hi) != 2 || strstr(line, "[vsyscall]"))
			continue;
		if (hi > top)
			top = hi;
	}
	fclose(f);
	return top;
}
