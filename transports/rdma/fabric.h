/* fabric.h - the libfabric back end (fabric.c): one RDM endpoint per
 * process; the rest of the plugin reaches it through rw_libfabric. */
#ifndef UXP_RDMA_FABRIC_H
#define UXP_RDMA_FABRIC_H

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include "rdma.h"

#define RDMA_FI_VERSION FI_VERSION(1, 5)

enum rf_op_kind { RF_OP_WAIT = 1, RF_OP_RECV = 2 };
/* A posted operation: the completion's context (fi_context2 first, for
 * providers that require FI_CONTEXT/FI_CONTEXT2). */
struct rf_op {
	struct fi_context2 ctx;
	int kind;
	int done; /* atomic */
	int err;  /* -errno of a failed completion */
	size_t len;
	struct rf_op *next; /* receive queue */
	char buf[256];      /* RF_OP_RECV: the message */
};

struct rf_state {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_ep *ep;
	struct fid_av *av;
	struct fid_cq *cq;
	int cq_fd;      /* the queue's wait descriptor; -1: the thread polls */
	uint64_t mr_mode;
	size_t max_rma;  /* largest single RMA transfer we post */
	size_t inject;   /* largest fi_inject */
	char addr[RF_ADDR_MAX];
	size_t addrlen;
	char prov[64];
	uint64_t next_key; /* requested keys when the provider does not pick them */
};
extern struct rf_state rf;

/* Open everything once (endpoint, progress thread, address published):
 * 0 or -errno (logged). */
int rf_open(void);
bool rf_is_open(void);
/* Provider libfabric gives for our hints, for probe/xpmem-info. */
int rf_provider(char *name, size_t len, char *why, size_t whylen);
/* Read completions (any thread: every wait drives progress). */
void rf_progress(void);
/* Send a control message (retries -FI_EAGAIN while driving progress,
 * bounded by the timeout): 0 or -errno. */
int rf_send(fi_addr_t to, const void *msg, size_t len);
/* RMA of [local, local+len) from/to the peer's (raddr, key), split and
 * pipelined; returns when all completed: 0 or -errno (EIO, ETIMEDOUT). */
int rf_rma(bool write, void *local, void *desc, size_t len, fi_addr_t peer, uint64_t raddr,
	   uint64_t key);
/* Register memory (local descriptors, or exporter chunks with access
 * FI_REMOTE_READ/WRITE): 0 or -errno. */
int rf_mr_reg(void *buf, size_t len, uint64_t access, struct fid_mr **mr);
/* fi_addr of an address blob (inserted once per blob). */
int rf_av_insert(const void *addr, size_t len, fi_addr_t *fa);
/* At exit: close the endpoint (providers release what they hold). */
void rf_close_at_exit(void);
void rf_fork_child(void);

#endif
