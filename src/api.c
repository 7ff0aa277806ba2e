/* api.c - the API edge: validate what is transport-independent, route each
 * call to its transport, turn -errno into -1 + errno.  Semantics follow the
 * kernel XPMEM (see xpmem(7) and docs/design.md).
 *
 * Routing (see uxp.h): ids of node 0 or of this node go to the local
 * transport with the node id stripped, others to the remote transport.
 * A process that never names another node pays one test of the id's node
 * bits per call; detach asks the remote transport only once something was
 * attached through it. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"

size_t uxp_page_size;

static inline int page_aligned(uint64_t v)
{
	return (v & (uxp_page_size - 1)) == 0;
}

/* Resolve the transport or fail with its selection error. */
#define TRANSPORT_OR(ret_fail)                                      \
	int err_ = 0;                                               \
	const struct uxp_transport *t = uxp_transport(&err_);       \
	if (uxp_unlikely(!t)) {                                     \
		errno = -err_;                                      \
		return ret_fail;                                    \
	}

/* Every exported call lands here first; done once per process. */
__attribute__((constructor)) static void api_init(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	uxp_page_size = ps > 0 ? (size_t)ps : 4096;
}

/* Node 0 or this node: the local transport. */
static inline bool id_is_local(int64_t id)
{
	unsigned node = uxp_id_node(id);
	return uxp_likely(node == 0) || node == uxp_node_id();
}

/* Set (and never cleared but in a forked child) by the first remote
 * attach: from then on detach asks the remote transport first. */
static int remote_attached;

/* The remote transport for an apid this process may hold: loaded already,
 * or the apid is not ours (no remote get ever succeeded here). */
static int remote_for_apid(xpmem_apid_t apid, const char *what,
			   const struct uxp_transport **r)
{
	*r = uxp_transport_remote_loaded();
	if (*r)
		return 0;
	if (uxp_id_pid(apid) != getpid())
		return uxp_fail(EACCES, "%s: apid %#llx belongs to pid %d", what,
				(unsigned long long)apid, (int)uxp_id_pid(apid));
	return uxp_fail(ENOENT, "%s: no apid %#llx: no segid of node %u was got here", what,
			(unsigned long long)apid, uxp_id_node(apid));
}

static inline int result(int ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

UXP_EXPORT int xpmem_init(void)
{
	TRANSPORT_OR(-1);
	(void)t;
	return 0;
}

UXP_EXPORT int xpmem_version(void)
{
	TRANSPORT_OR(-1);
	return result(t->version());
}

/* With a resolver (XPMEM_RESOLVER), segments are served to other nodes by
 * the remote transport, loaded now if need be; else NULL (no cost). */
static const struct uxp_transport *remote_exporter(void)
{
	if (!uxp_env("XPMEM_RESOLVER"))
		return NULL;
	int err = 0;
	const struct uxp_transport *r = uxp_transport_remote(&err);
	if (!r)
		uxp_warn("make: XPMEM_RESOLVER is set but no transport serves other nodes: %s",
			 uxp_transport_remote_why());
	return r;
}

UXP_EXPORT xpmem_segid_t xpmem_make(void *vaddr, size_t size, int permit_type, void *permit_value)
{
	TRANSPORT_OR(-1);
	uintptr_t va = (uintptr_t)vaddr, top = uxp_user_top();
	uint64_t mode = (uint64_t)(uintptr_t)permit_value;

	if (permit_type != XPMEM_PERMIT_MODE)
		return result(uxp_fail(EINVAL, "make: permit_type %d is not XPMEM_PERMIT_MODE", permit_type));
	if (mode & ~(uint64_t)0777)
		return result(uxp_fail(EINVAL, "make: mode %#llo has bits outside 0777",
				       (unsigned long long)mode));
	if (size == 0)
		return result(uxp_fail(EINVAL, "make: size 0"));
	if (!page_aligned(va))
		return result(uxp_fail(EINVAL, "make: vaddr %#lx is not page aligned", (unsigned long)va));
	if (va >= top)
		return result(uxp_fail(EINVAL, "make: vaddr %#lx is above user space", (unsigned long)va));
	if (size == XPMEM_MAXADDR_SIZE)
		; /* the whole address space from vaddr up: each transport clips it
		   * to its own top (the kernel module to its TASK_SIZE) */
	else if (!page_aligned(size))
		return result(uxp_fail(EINVAL, "make: size %#zx is not a multiple of the page size", size));
	else if (size > top - va)
		return result(uxp_fail(EINVAL, "make: range %#lx+%#zx extends past the top of user space",
				       (unsigned long)va, size));

	const struct uxp_transport *r = remote_exporter();
	unsigned node = uxp_node_id_freeze();
	xpmem_segid_t segid = -1;
	int ret = t->make(va, size, permit_type, mode, &segid);
	if (ret < 0)
		return result(ret);
	if (!node)
		return segid;
	segid = uxp_id_with_node(segid, node);
	if (r && r->export_segment) {
		size_t len = size == XPMEM_MAXADDR_SIZE ? top - va : size;
		ret = r->export_segment(segid, va, len, mode);
		if (ret < 0)
			uxp_warn("make: segid %#llx is not reachable from other nodes: %s",
				 (unsigned long long)segid, strerror(-ret));
	}
	return segid;
}

UXP_EXPORT int xpmem_remove(xpmem_segid_t segid)
{
	TRANSPORT_OR(-1);
	if (segid <= 0)
		return result(uxp_fail(EINVAL, "remove: segid %lld is not positive", (long long)segid));
	if (uxp_unlikely(!id_is_local(segid)))
		return result(uxp_fail(EACCES, "remove: segid %#llx is of node %u, not this one (%u)",
				       (unsigned long long)segid, uxp_id_node(segid), uxp_node_id()));
	int ret = t->remove(uxp_id_strip_node(segid));
	const struct uxp_transport *r = uxp_transport_remote_loaded();
	if (ret == 0 && uxp_id_node(segid) && r && r->unexport_segment)
		r->unexport_segment(segid);
	return result(ret);
}

/* A segid of another node: the remote transport, loaded now if need be;
 * its apid must carry the segid's node (that is how it routes back). */
static int remote_get(xpmem_segid_t segid, int flags, xpmem_apid_t *apid)
{
	int err = 0;
	const struct uxp_transport *r = uxp_transport_remote(&err);
	if (!r)
		return uxp_fail(-err, "get: segid %#llx is of node %u (this node: %u) and no "
				"transport serves other nodes: %s", (unsigned long long)segid,
				uxp_id_node(segid), uxp_node_id(), uxp_transport_remote_why());
	int ret = r->get(segid, flags, XPMEM_PERMIT_MODE, 0, apid);
	if (ret < 0 || uxp_id_node(*apid) == uxp_id_node(segid))
		return ret;
	uxp_error("core: transport %s made apid %#llx for segid %#llx: node ids differ",
		  r->name, (unsigned long long)*apid, (unsigned long long)segid);
	r->release(*apid);
	return -EPROTO;
}

UXP_EXPORT xpmem_apid_t xpmem_get(xpmem_segid_t segid, int flags, int permit_type, void *permit_value)
{
	TRANSPORT_OR(-1);
	if (segid <= 0)
		return result(uxp_fail(EINVAL, "get: segid %lld is not positive", (long long)segid));
	if (flags != XPMEM_RDONLY && flags != XPMEM_RDWR)
		return result(uxp_fail(EINVAL, "get: flags %#x must be XPMEM_RDONLY or XPMEM_RDWR", flags));
	if (permit_type != XPMEM_PERMIT_MODE)
		return result(uxp_fail(EINVAL, "get: permit_type %d is not XPMEM_PERMIT_MODE", permit_type));
	/* Clients pass NULL, 0600 or 0666 as permit_value; like the reference
	 * library we do not interpret it (the exporter's mode decides). */
	(void)permit_value;

	xpmem_apid_t apid = -1;
	int ret;
	if (uxp_likely(id_is_local(segid)))
		ret = t->get(uxp_id_strip_node(segid), flags, permit_type, 0, &apid);
	else
		ret = remote_get(segid, flags, &apid);
	if (ret < 0)
		return result(ret);
	uxp_revoke_apid_named(apid, segid);
	return apid;
}

UXP_EXPORT int xpmem_release(xpmem_apid_t apid)
{
	TRANSPORT_OR(-1);
	if (apid <= 0)
		return result(uxp_fail(EINVAL, "release: apid %lld is not positive", (long long)apid));
	int ret;
	const struct uxp_transport *r;
	if (uxp_likely(id_is_local(apid)))
		ret = t->release(uxp_id_strip_node(apid));
	else if ((ret = remote_for_apid(apid, "release", &r)) == 0)
		ret = r->release(apid);
	if (ret == 0)
		uxp_revoke_apid_released(apid);
	return result(ret);
}

UXP_EXPORT void *xpmem_attach(struct xpmem_addr addr, size_t size, void *vaddr)
{
	TRANSPORT_OR((void *)-1);
	uintptr_t va = (uintptr_t)vaddr;

	if (addr.apid <= 0) {
		errno = -uxp_fail(EINVAL, "attach: apid %lld is not positive", (long long)addr.apid);
		return (void *)-1;
	}
	if (addr.offset < 0 || !page_aligned((uint64_t)addr.offset)) {
		errno = -uxp_fail(EINVAL, "attach: offset %#llx is negative or not page aligned",
				  (long long)addr.offset);
		return (void *)-1;
	}
	if (!page_aligned(va)) {
		errno = -uxp_fail(EINVAL, "attach: vaddr %#lx is not page aligned", (unsigned long)va);
		return (void *)-1;
	}
	if (size == 0 || size > uxp_user_top()) {
		errno = -uxp_fail(EINVAL, "attach: size %#zx is 0 or larger than user space", size);
		return (void *)-1;
	}
	size = (size + uxp_page_size - 1) & ~(uxp_page_size - 1);

	void *at = NULL;
	int ret;
	const struct uxp_transport *r;
	if (uxp_likely(id_is_local(addr.apid))) {
		ret = t->attach(uxp_id_strip_node(addr.apid), addr.offset, size, va, &at);
	} else if ((ret = remote_for_apid(addr.apid, "attach", &r)) == 0) {
		ret = r->attach(addr.apid, addr.offset, size, va, &at);
		if (ret == 0 && !__atomic_load_n(&remote_attached, __ATOMIC_RELAXED))
			__atomic_store_n(&remote_attached, 1, __ATOMIC_RELEASE);
	}
	if (ret < 0) {
		errno = -ret;
		return (void *)-1;
	}
	return at;
}

/* Detach takes only an address.  Until something was attached remotely it
 * is the local transport's (no lookup); after that the remote transport
 * answers first (-EINVAL: not one of its attachments): the kernel module's
 * detach succeeds for any address without an attachment, so it cannot be
 * asked first. */
UXP_EXPORT int xpmem_detach(void *vaddr)
{
	TRANSPORT_OR(-1);
	if (vaddr == (void *)-1) /* the transport answers (the kernel module: 0) */
		uxp_debug("detach: (void *)-1 is the value of a failed xpmem_attach, not an attachment");
	if (uxp_unlikely(__atomic_load_n(&remote_attached, __ATOMIC_ACQUIRE))) {
		int ret = uxp_transport_remote_loaded()->detach((uintptr_t)vaddr);
		if (ret != -EINVAL)
			return result(ret);
	}
	return result(t->detach((uintptr_t)vaddr));
}

/* Write back what this process stored into remote attachments; local
 * attachments are the exporter's memory itself (nothing to do). */
UXP_EXPORT int uxpmem_flush(void *addr, size_t size)
{
	TRANSPORT_OR(-1);
	(void)t;
	uintptr_t a = (uintptr_t)addr;
	if (size > UINTPTR_MAX - a)
		return result(uxp_fail(EINVAL, "flush: range %#lx+%#zx wraps", (unsigned long)a, size));
	if (__atomic_load_n(&remote_attached, __ATOMIC_ACQUIRE)) {
		const struct uxp_transport *r = uxp_transport_remote_loaded();
		int ret = r->flush ? r->flush(a, size) : -EINVAL;
		if (ret != -EINVAL)
			return result(ret);
	}
	return 0;
}

/* Forked child: its attachments are gone (transports' fork_child). */
void uxp_api_fork_child(void)
{
	remote_attached = 0;
}

/* ---- extensions (uxpmem.h) ------------------------------------------- */

UXP_EXPORT const char *uxpmem_version_string(void)
{
	return PACKAGE_VERSION;
}

UXP_EXPORT const char *uxpmem_transport_name(void)
{
	TRANSPORT_OR(NULL);
	return t->name;
}

UXP_EXPORT int uxpmem_export_level(char *why, size_t whylen)
{
	TRANSPORT_OR(-1);
	char buf[256] = "the transport follows every mapping";
	int level = t->export_level ? t->export_level(buf, sizeof(buf)) : UXPMEM_EXPORT_FULL;
	if (why && whylen)
		snprintf(why, whylen, "%s", buf);
	return level;
}

UXP_EXPORT int uxpmem_transport_query(unsigned index, struct uxpmem_transport_info *info)
{
	uxp_fork_init();
	const struct uxp_transport *t = index < uxp_transport_count() ? uxp_transport_at(index) : NULL;
	if (!t || !info) {
		errno = t ? EINVAL : ENOENT;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	info->name = t->name;
	info->description = t->description;
	info->usable = t->probe(info->why, sizeof(info->why)) == 0;
	return 0;
}

UXP_EXPORT int uxpmem_node_id(void)
{
	TRANSPORT_OR(-1);
	(void)t;
	return (int)uxp_node_id();
}

UXP_EXPORT int uxpmem_remote_transport_query(struct uxpmem_transport_info *info)
{
	if (!info) {
		errno = EINVAL;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	int err = 0;
	/* select first (even if that fails): this node's id is known before
	 * a plugin's init may ask for it */
	uxp_transport(&err);
	const struct uxp_transport *r = uxp_transport_remote(&err);
	if (!r) {
		snprintf(info->why, sizeof(info->why), "%s", uxp_transport_remote_why());
		errno = -err;
		return -1;
	}
	info->name = r->name;
	info->description = r->description;
	info->usable = r->probe(info->why, sizeof(info->why)) == 0;
	return 0;
}
