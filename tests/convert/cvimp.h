/* cvimp.h - the importer side of the conversion tests: starting
 * tests/convert/cvpeer (no arena preload), attaching, revocation events.
 * Built on tests/shm/shmtest.c (peer_cmd, peer_ok, peer_stop...). */
#ifndef UXP_CVIMP_H
#define UXP_CVIMP_H

#include <uxpmem.h>
#include "shmtest.h"
#include "cvtest.h"

/* Start cvpeer; require an export level >= USER (else the test cannot
 * mean anything: fail with why).  Returns the level. */
int cv_start(struct peer *p);
/* Run the rest of the test as "nobody" (exporter and importer): copies
 * cvpeer to a temporary directory nobody can read, then drops.  Without
 * root the test already runs unprivileged: says so and goes on. */
void cv_become_nobody(void);
/* Whole-address-space segment of the exporter, and an apid for it. */
xpmem_apid_t cv_get_all(struct peer *e, long long *segid);
void *cv_attach(xpmem_apid_t apid, uintptr_t off, size_t size);
/* Events: the fd form, all collected in this process. */
void cv_events_init(void);
/* Wait up to ms for at least n events in all; returns how many there are. */
int cv_events_wait(int n, int ms);
int cv_events_count(void);
const struct uxpmem_revoke_event *cv_event(int i);
void cv_events_clear(void);
/* Read word at p: 0 and *v, or the signal. */
int cv_rd(const void *p, uint64_t *v);

#endif
