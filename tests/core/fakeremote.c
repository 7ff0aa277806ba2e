/* fakeremote.c - see fakeremote.h.  Written like a real plugin: uxp.h calls
 * only, through libuxpmem_plugin.la. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "fakeremote.h"

struct fr_apid {
	xpmem_segid_t segid;
	int flags;
};

struct fr_att {
	uintptr_t addr;
	size_t size;
	xpmem_apid_t apid;
};

static struct fr_stats st;
static struct uxp_idtab apids, atts;
static uint32_t serial;

#define COUNT(field) __atomic_add_fetch(&st.field, 1, __ATOMIC_RELAXED)

UXP_EXPORT const struct fr_stats *fakeremote_stats(void);
UXP_EXPORT void fakeremote_revoke(xpmem_apid_t apid);

const struct fr_stats *fakeremote_stats(void)
{
	return &st;
}

/* The core routes only ids of other nodes here. */
static int foreign(int64_t id, const char *what)
{
	unsigned node = uxp_id_node(id);
	if (node != 0 && node != uxp_node_id())
		return 0;
	COUNT(misrouted);
	return uxp_fail(EPROTO, "fakeremote: %s: id %#llx is local", what, (unsigned long long)id);
}

static int fr_init(const struct uxp_core *core)
{
	uxp_plugin_init(core);
	uxp_idtab_init(&apids);
	uxp_idtab_init(&atts);
	COUNT(inits);
	return 0;
}

static int fr_probe(char *why, size_t whylen)
{
	COUNT(probes);
	if (uxp_env("FAKEREMOTE_UNUSABLE")) {
		snprintf(why, whylen, "FAKEREMOTE_UNUSABLE is set");
		return -ENODEV;
	}
	snprintf(why, whylen, "fake remote nodes");
	return 0;
}

static int fr_open(void)
{
	COUNT(opens);
	return 0;
}

static int fr_get(xpmem_segid_t segid, int flags, int permit_type, uint64_t permit_value,
		  xpmem_apid_t *apid)
{
	(void)permit_type;
	(void)permit_value;
	int ret = foreign(segid, "get");
	if (ret < 0)
		return ret;
	struct fr_apid *ap = malloc(sizeof(*ap));
	if (!ap)
		return -ENOMEM;
	*ap = (struct fr_apid){ .segid = segid, .flags = flags };
	uint32_t n = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
	*apid = uxp_id_compose(uxp_id_node(segid), getpid(), n);
	uxp_idtab_insert(&apids, (uint64_t)*apid, ap);
	uxp_revoke_apid_added(*apid);
	COUNT(gets);
	return 0;
}

static int own_apid(xpmem_apid_t apid, const char *what)
{
	int ret = foreign(apid, what);
	if (ret == 0 && uxp_id_pid(apid) != getpid())
		ret = uxp_fail(EACCES, "fakeremote: %s: apid %#llx is of pid %d", what,
			       (unsigned long long)apid, (int)uxp_id_pid(apid));
	return ret;
}

struct fr_collect {
	xpmem_apid_t apid;
	uintptr_t addr; /* or the attachment containing addr */
	struct fr_att *found[64];
	int n;
};

static int collect(uint64_t key, void *obj, void *arg)
{
	struct fr_att *a = obj;
	struct fr_collect *c = arg;
	(void)key;
	bool hit = c->apid ? a->apid == c->apid : c->addr - a->addr < a->size;
	if (hit && c->n < 64)
		c->found[c->n++] = a;
	return !c->apid && hit;
}

static int drop_att(struct fr_att *a)
{
	if (uxp_idtab_remove(&atts, a->addr, a) != a)
		return -EINVAL; /* detached concurrently */
	munmap((void *)a->addr, a->size);
	free(a);
	__atomic_sub_fetch(&st.live_attachments, 1, __ATOMIC_RELAXED);
	return 0;
}

static int fr_release(xpmem_apid_t apid)
{
	int ret = own_apid(apid, "release");
	if (ret < 0)
		return ret;
	struct fr_apid *ap = uxp_idtab_remove(&apids, (uint64_t)apid, NULL);
	if (!ap)
		return uxp_fail(ENOENT, "fakeremote: release: no apid %#llx", (unsigned long long)apid);
	struct fr_collect c = { .apid = apid };
	uxp_idtab_foreach(&atts, collect, &c);
	for (int i = 0; i < c.n; i++)
		drop_att(c.found[i]);
	free(ap);
	COUNT(releases);
	return 0;
}

static int fr_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr)
{
	int ret = own_apid(apid, "attach");
	if (ret < 0)
		return ret;
	struct fr_apid *ap = uxp_idtab_get(&apids, (uint64_t)apid, NULL);
	if (!ap)
		return uxp_fail(ENOENT, "fakeremote: attach: no apid %#llx", (unsigned long long)apid);
	if ((uint64_t)offset + size > FR_SEG_SIZE)
		return uxp_fail(EINVAL, "fakeremote: attach past the segment");
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (vaddr ? MAP_FIXED_NOREPLACE : 0);
	uint64_t *m = mmap((void *)vaddr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (m == MAP_FAILED)
		return uxp_fail(errno, "fakeremote: mmap: %s", strerror(errno));
	madvise(m, size, MADV_DONTFORK); /* a child has no attachments */
	for (size_t i = 0; i < size / 8; i++)
		m[i] = fr_word(ap->segid, (uint64_t)offset / 8 + i);
	if (ap->flags == XPMEM_RDONLY)
		mprotect(m, size, PROT_READ);
	struct fr_att *a = malloc(sizeof(*a));
	if (!a) {
		munmap(m, size);
		return -ENOMEM;
	}
	*a = (struct fr_att){ .addr = (uintptr_t)m, .size = size, .apid = apid };
	uxp_idtab_insert(&atts, a->addr, a);
	__atomic_add_fetch(&st.live_attachments, 1, __ATOMIC_RELAXED);
	COUNT(attaches);
	*addr = m;
	return 0;
}

/* Not ours: -EINVAL, silently (the core then asks the local transport). */
static int fr_detach(uintptr_t vaddr)
{
	struct fr_att *a = uxp_idtab_get(&atts, vaddr, NULL);
	if (!a) {
		struct fr_collect c = { .addr = vaddr };
		uxp_idtab_foreach(&atts, collect, &c);
		a = c.n ? c.found[0] : NULL;
	}
	if (!a || drop_att(a) < 0) {
		COUNT(detach_misses);
		return -EINVAL;
	}
	COUNT(detaches);
	return 0;
}

static void fr_fork_child(void)
{
	/* the mappings were MADV_DONTFORK: nothing of the parent's is left */
	uxp_idtab_reset_after_fork(&apids, free);
	uxp_idtab_reset_after_fork(&atts, free);
	st.live_attachments = 0;
	COUNT(fork_children);
}

void fakeremote_revoke(xpmem_apid_t apid)
{
	struct fr_apid *ap = uxp_idtab_get(&apids, (uint64_t)apid, NULL);
	if (ap)
		uxp_revoke_emit(apid, ap->segid, UXPMEM_REVOKE_REMOVED, NULL, 0, 0, FR_SEG_SIZE);
}

UXP_EXPORT const struct uxp_transport uxpmem_transport_v4 = {
	.name = FR_NAME,
	.description = "fake remote nodes (routing tests)",
	.scope = UXP_SCOPE_REMOTE,
	.init = fr_init,
	.probe = fr_probe,
	.open = fr_open,
	.get = fr_get,
	.release = fr_release,
	.attach = fr_attach,
	.detach = fr_detach,
	.fork_child = fr_fork_child,
};
