/* clientseq.h - the call sequences of the real XPMEM clients (clients.md
 * "How each client calls it": UCX, Open MPI, MPICH, libfabric, Sandia
 * OpenSHMEM), written once and run against two exporters:
 *   tests/shm/clients      tests/shm/peer with the arena preload;
 *   tests/convert/clients  tests/convert/cvpeer, a plain process whose
 *                          memory is converted in place on attach.
 * What differs between the two is a struct cs_exporter.  Built on
 * tests/shm/shmtest.c (peer_cmd, peer_ok, ...). */
#ifndef UXP_CLIENTSEQ_H
#define UXP_CLIENTSEQ_H

#include "shmtest.h"

/* The memory kinds the SOS test exports (each its own segment). */
enum cs_kind {
	CS_BSS,         /* the peer's page-aligned .bss area ("static") */
	CS_DATA,        /* its page-aligned .data area ("static") */
	CS_HEAP,        /* 4 MiB of its heap ("malloc"): the symmetric heap */
	CS_SHARED_ANON, /* 4 pages of MAP_SHARED|MAP_ANONYMOUS ("mmapshared") */
	CS_NKINDS
};

/* What the importer must find through the attachment of a kind. */
enum cs_expect {
	CS_UNUSED = 0,     /* not exported in this suite */
	CS_SHARED,         /* the exporter's data, all of it */
	CS_HOLE,           /* SIGBUS on a touch of its first and last page */
	CS_HOLE_OR_SHARED, /* a touch raises SIGBUS, or shows the exporter's data */
};

/* One exported range of the SOS test, attached. */
struct cs_sos_seg {
	uintptr_t addr; /* the exporter's data (filled with the kind's seed) */
	size_t len;
	long long segid; /* of the whole pages around it */
	xpmem_apid_t apid;
	char *att; /* the attachment of the segment */
	char *p;   /* the data through it */
};

struct cs_exporter {
	/* starts the exporter (a handshake included) */
	void (*start)(struct peer *e);
	/* the peer's command allocating a page-aligned buffer: libfabric's
	 * registrations are attached at their own address, and an attach
	 * offset must be page-aligned */
	const char *alloc_aligned;
	/* SOS: which kinds are exported, and what the importer must find */
	enum cs_expect sos[CS_NKINDS];
	/* SOS: the suite's own checks (may be NULL), run after the CS_SHARED
	 * kinds are checked and before the holes are touched */
	void (*sos_more)(struct peer *e, struct cs_sos_seg seg[CS_NKINDS]);
	/* also the concurrent attach/detach test (t_concurrent) */
	int concurrent;
};

/* Adds t_ucx, t_ompi, t_mpich, t_libfabric, t_sos (and t_concurrent) to
 * tc, run against x (which must outlive the suite). */
void cs_add_tests(TCase *tc, const struct cs_exporter *x);

#endif
