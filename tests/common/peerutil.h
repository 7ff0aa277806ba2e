/* peerutil.h - shared by the peer programs commanded line by line by the
 * tests (tests/shm/peer, tests/convert/cvpeer, tests/revoke/rvpeer and
 * tests/kernel/kpeer): replies, argument parsing, the CAS
 * worker threads of the "cas"/"join" commands, the highest mapped address
 * ("maxaddr"). */
#ifndef UXP_PEERUTIL_H
#define UXP_PEERUTIL_H

#include <stdint.h>

/* One reply line on stdout (stdio; cvpeer writes its own: its heap is
 * converted under it). */
void pu_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The next argument of a command line being split by strtok_r (decimal or
 * 0x-hex); 0 when there is none. */
unsigned long long pu_num(char **save);

/* Start nthreads threads (at most PU_CAS_MAX) each doing n CAS increments
 * of *ctr; pu_cas_join waits for them. */
#define PU_CAS_MAX 64
void pu_cas_start(volatile uint64_t *ctr, long n, int nthreads);
void pu_cas_join(void);

/* Page tags of the hang tests (tests/convert/hangs): word 0 of page i of a
 * range holds pu_tag(i, gen); an importer reading it must see 0 (memory
 * mapped anew), or the tag of that very page (any generation), never
 * another page's. */
static inline uint64_t pu_tag(uint64_t page, unsigned gen)
{
	return 0x7a9ULL << 48 | (page & 0xffffffffffULL) << 8 | (gen & 0xff);
}
static inline int pu_tag_ok(uint64_t v, uint64_t page)
{
	return v == 0 || (v >> 48 == 0x7a9 && ((v >> 8) & 0xffffffffffULL) == (page & 0xffffffffffULL));
}

/* The end of the highest mapping in /proc/self/maps ([vsyscall] aside);
 * 0 if it cannot be read. */
unsigned long long pu_maxaddr(void);

#endif
