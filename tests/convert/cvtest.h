/* cvtest.h - shared by tests/convert/cvpeer (the exporter) and the test
 * programs (the importer): layout constants and the data pattern. */
#ifndef UXP_CVTEST_H
#define UXP_CVTEST_H

#include <stdint.h>

#define CV_LINE 4096           /* command line buffer of cvpeer */
#define CV_STACK_BUF (16 * 4096) /* the spinning thread's stack buffer */
#define CV_MSTACK (8 * 4096)   /* the buffer in cvpeer's main() frame */

/* lost-update test: CV_NT threads, each with one counter per page slot of
 * CV_NCHUNK glibc heap chunks of CV_CHUNK bytes (64 MiB in all) */
#define CV_NT 4
#define CV_CHUNK (64 * 1024)   /* below glibc's mmap threshold: brk heap */
#define CV_NCHUNK 1024
#define CV_DNCHUNK 8          /* the same in .data: 512 KiB of initialized globals */
#define CV_SLOTS 15
#define CV_CTR_OFF(s, t) (64 + (size_t)(s) * 4096 + (size_t)(t) * 8)
#define CV_WEIGHT(k, s, t) ((((uint64_t)(k) * CV_SLOTS + (uint64_t)(s)) * CV_NT + (uint64_t)(t)) * 2 + 1)

/* The word pattern (the same as tests/shm st_pattern). */
static inline uint64_t cv_pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL ^ (i + 1) * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	return x;
}

#endif
