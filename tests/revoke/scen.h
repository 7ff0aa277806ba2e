/* scen.h - the scenario of the revocation event tests: one exporter with
 * an arena buffer exported twice (segment A = the buffer, segment B = a
 * large range from address 0 containing it) and three importer processes,
 * each with one apid per segment, the apid of A with its own callback
 * ("cb"), a default handler ("def") and the fd form ("fd"), and
 * attachments (arena pointer, own VMA at a fixed address, and B over the
 * buffer). */
#ifndef UXP_RV_SCEN_H
#define UXP_RV_SCEN_H
#include "rvtest.h"

#define NIMP 3
#define SEG_A (1 * MiB)
#define SEED 7
#define WAIT_MS 5000

struct imp {
	struct peer p;
	long long apA, apB;
	unsigned long a1, a2, b1;
};

struct scen {
	struct peer e;
	unsigned long buf;
	long long segA, segB;
	size_t szB;
	struct imp im[NIMP];
};

/* Read the word at addr in peer p: 0 and *val, or the signal raised. */
int rd_word(struct peer *p, unsigned long addr, unsigned long long *val);
void scen_setup(struct scen *s);
/* Every importer got exactly one event per apid in every form (none more
 * within 500 ms), with these fields, after its memory raised SIGBUS. */
void scen_verify(struct scen *s, int reason);
/* Detach, release (all return 0), stop the importers, kill the exporter. */
void scen_teardown(struct scen *s);

#endif
