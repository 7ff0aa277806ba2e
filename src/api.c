/* api.c - the API edge: validate what is transport-independent, call the
 * selected transport, turn -errno into -1 + errno.  Semantics follow the
 * kernel XPMEM (see xpmem(7) and docs/design.md). */
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

	xpmem_segid_t segid = -1;
	int ret = t->make(va, size, permit_type, mode, &segid);
	return ret < 0 ? result(ret) : segid;
}

UXP_EXPORT int xpmem_remove(xpmem_segid_t segid)
{
	TRANSPORT_OR(-1);
	if (segid <= 0)
		return result(uxp_fail(EINVAL, "remove: segid %lld is not positive", (long long)segid));
	return result(t->remove(segid));
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
	int ret = t->get(segid, flags, permit_type, 0, &apid);
	if (ret < 0)
		return result(ret);
	uxp_revoke_apid_added(apid);
	return apid;
}

UXP_EXPORT int xpmem_release(xpmem_apid_t apid)
{
	TRANSPORT_OR(-1);
	if (apid <= 0)
		return result(uxp_fail(EINVAL, "release: apid %lld is not positive", (long long)apid));
	int ret = t->release(apid);
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
	int ret = t->attach(addr.apid, addr.offset, size, va, &at);
	if (ret < 0) {
		errno = -ret;
		return (void *)-1;
	}
	return at;
}

UXP_EXPORT int xpmem_detach(void *vaddr)
{
	TRANSPORT_OR(-1);
	return result(t->detach((uintptr_t)vaddr));
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
