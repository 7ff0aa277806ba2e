/*
 * uxp.h - internal interfaces of the uxpmem core.
 *
 * Conventions: internal functions return 0 / a value >= 0 on success and
 * -errno on failure.  Only src/api.c turns that into -1 + errno.
 */
#ifndef UXP_H
#define UXP_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <xpmem.h>

#define UXP_EXPORT __attribute__((visibility("default")))
#define UXP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UXP_UNUSED __attribute__((unused))
#define uxp_likely(x) __builtin_expect(!!(x), 1)
#define uxp_unlikely(x) __builtin_expect(!!(x), 0)
#define UXP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- logging (src/log.c) ------------------------------------------------
 * XPMEM_LOG_LEVEL = none|error|warn|info|debug|trace (or 0..5); default
 * "error" is silent for API failures, which are reported by errno.  Debug
 * says why every failing call failed.  XPMEM_LOG_FILE redirects (default
 * stderr).  Lines look like "uxpmem[pid] debug: shm: get: ...".
 */
enum uxp_log_level {
	UXP_LOG_NONE = 0,
	UXP_LOG_ERROR,
	UXP_LOG_WARN,
	UXP_LOG_INFO,
	UXP_LOG_DEBUG,
	UXP_LOG_TRACE,
};
extern int uxp_log_level;
void uxp_log_init(void);
void uxp_log_write(int level, const char *fmt, ...) UXP_PRINTF(2, 3);
void uxp_log_vwrite(int level, const char *fmt, va_list ap) UXP_PRINTF(2, 0);
#define uxp_log(lvl, ...)                                                     \
	do {                                                                  \
		if (uxp_unlikely(uxp_log_level >= (lvl)))                     \
			uxp_log_write((lvl), __VA_ARGS__);                    \
	} while (0)
#define uxp_error(...) uxp_log(UXP_LOG_ERROR, __VA_ARGS__)
#define uxp_warn(...) uxp_log(UXP_LOG_WARN, __VA_ARGS__)
#define uxp_info(...) uxp_log(UXP_LOG_INFO, __VA_ARGS__)
#define uxp_debug(...) uxp_log(UXP_LOG_DEBUG, __VA_ARGS__)
#define uxp_trace(...) uxp_log(UXP_LOG_TRACE, __VA_ARGS__)

/* Log why a call fails at debug level and return -err (err > 0). */
#define uxp_fail(err, ...) ({ uxp_debug(__VA_ARGS__); -(err); })

/* ---- configuration (src/config.c) -------------------------------------- */
/* getenv() that ignores empty values; NULL if unset. */
const char *uxp_env(const char *name);
/* Parse a size with optional k/m/g/t suffix; def if unset or invalid. */
uint64_t uxp_env_size(const char *name, uint64_t def);
/* Integer environment value; def if unset or invalid. */
long uxp_env_long(const char *name, long def);

/* ---- transports (src/transport.c) --------------------------------------
 * One ops table per transport.  The API edge (src/api.c) has already
 * validated everything transport-independent (permit type, mode bits,
 * flags, ids > 0, alignment) before calling in.  Every op returns 0 or
 * -errno and logs why at debug level.
 *
 * Routing (src/api.c): an id whose node id (bits 62..48) is 0 or this
 * node's goes to the LOCAL transport, selected once per process (kernel
 * or shm), with the node id stripped: local transports only ever see and
 * make node-0 ids.  Other ids go to the REMOTE transport, a plugin loaded
 * at the first such segid, with the ids untouched.  A remote transport:
 *  - get: receives the whole segid; returns an apid carrying the segid's
 *    node id (checked by the core) and this process's pid;
 *  - release, attach: receive such apids only;
 *  - detach: once the process attached anything remotely, every detach
 *    asks the remote transport first: for an address it did not attach it
 *    must return -EINVAL at once, without logging;
 *  - make, remove, version, export_level: not called (may be NULL);
 *  - export_segment, unexport_segment: after the local transport made or
 *    removed a segment carrying a node id, in a process with a resolver
 *    (XPMEM_RESOLVER); flush: uxpmem_flush(), once it attached anything.
 */
enum uxp_scope {
	UXP_SCOPE_LOCAL = 0,  /* ids of this node (node 0 or this node's id) */
	UXP_SCOPE_REMOTE = 1, /* ids of every other node */
};

struct uxp_core;

struct uxp_transport {
	const char *name;
	const char *description;
	enum uxp_scope scope;
	/* Plugins: called once right after loading, before probe, with the
	 * core's services (a plugin cannot link libxpmem's internals;
	 * src/plugin.c forwards uxp.h's calls through them); -errno refuses
	 * the plugin.  NULL for built-ins. */
	int (*init)(const struct uxp_core *core);
	/* 0 if usable in this process now; else -errno and why[] says why. */
	int (*probe)(char *why, size_t whylen);
	/* Called once when the transport is selected; -errno to refuse. */
	int (*open)(void);
	int (*version)(void);
	int (*make)(uintptr_t vaddr, size_t size, int permit_type,
		    uint64_t permit_value, xpmem_segid_t *segid);
	int (*remove)(xpmem_segid_t segid);
	int (*get)(xpmem_segid_t segid, int flags, int permit_type,
		   uint64_t permit_value, xpmem_apid_t *apid);
	int (*release)(xpmem_apid_t apid);
	int (*attach)(xpmem_apid_t apid, off_t offset, size_t size,
		      uintptr_t vaddr, void **addr);
	int (*detach)(uintptr_t vaddr);
	/* enum uxpmem_export_level of this process; NULL means FULL. */
	int (*export_level)(char *why, size_t whylen);
	/* In a forked child, before anything else: drop inherited per-process
	 * state so the child starts clean (apids, attachments and segments
	 * belong to the parent).  Must not block; may be NULL. */
	void (*fork_child)(void);
	/* Remote scope only (may be NULL).  export_segment: this process made
	 * segid (its node id included) = [vaddr, vaddr+size) with mode, and a
	 * resolver is configured: serve it to other nodes (-errno is logged,
	 * the segment stays usable on this node).  unexport_segment: it was
	 * removed here: revoke it on other nodes.  flush: write back what this
	 * process stored into its attachments within [vaddr, vaddr+size)
	 * (-EINVAL, unlogged: no attachment of this transport there). */
	int (*export_segment)(xpmem_segid_t segid, uintptr_t vaddr, size_t size, uint64_t mode);
	void (*unexport_segment)(xpmem_segid_t segid);
	int (*flush)(uintptr_t vaddr, size_t size);
};

/* Plugins export this symbol (a const struct uxp_transport).  The loader
 * takes exactly this version: a layout change bumps it, and a plugin built
 * for another one is refused with a warning naming both. */
#define UXP_TRANSPORT_SYMBOL "uxpmem_transport_v4"
#define UXP_TRANSPORT_SYMBOL_PREFIX "uxpmem_transport_v"

/* What the core offers plugins (versioned with UXP_TRANSPORT_SYMBOL). */
struct uxp_core {
	int (*log_level)(void);
	void (*vlog)(int level, const char *fmt, va_list ap);
	size_t (*page_size)(void);
	unsigned (*node_id)(void);
	int (*node_id_set)(unsigned node);
	void (*revoke_emit)(xpmem_apid_t apid, xpmem_segid_t segid, int reason, void *addr,
			    size_t size, off_t offset, size_t length);
	void (*revoke_apid_added)(xpmem_apid_t apid);
	int (*thread_start_id)(void *(*fn)(void *), void *arg, size_t stack_size,
			       pthread_t *id);
	int (*mm_watch)(uintptr_t start, size_t len, void (*cb)(void *, uintptr_t, uintptr_t, int),
			void *arg, uint64_t *id);
	void (*mm_unwatch)(uint64_t id);
};
/* Plugins (src/plugin.c): keep core, make uxp.h's calls work; 0. */
int uxp_plugin_init(const struct uxp_core *core);

/* Built-in transports, NULL-terminated (transports/builtin.c). */
extern const struct uxp_transport *const uxp_builtin_transports[];

/* The local transport of this process; selected once (XPMEM_TRANSPORT or
 * automatically).  Returns NULL and sets *err (-errno) if none is usable. */
const struct uxp_transport *uxp_transport(int *err);
/* The selected transport or NULL, without selecting (for fork handlers). */
const struct uxp_transport *uxp_transport_selected(void);
/* The transport serving other nodes, loaded (probe, open) the first time;
 * NULL and *err = -ENOENT if none is usable (why: uxp_transport_remote_why). */
const struct uxp_transport *uxp_transport_remote(int *err);
/* The remote transport if it is loaded already, else NULL (lock-free). */
const struct uxp_transport *uxp_transport_remote_loaded(void);
/* Why no remote transport is usable ("" before the first attempt). */
const char *uxp_transport_remote_why(void);
/* Transport by name (built-in or plugin), NULL if unknown. */
const struct uxp_transport *uxp_transport_find(const char *name);
/* Number of known transports, and the i-th. */
unsigned uxp_transport_count(void);
const struct uxp_transport *uxp_transport_at(unsigned i);
/* Forked child: registry locks reset, every loaded transport's fork_child. */
void uxp_transport_fork_child(void);

/* ---- this node's id (src/node.c) ---------------------------------------
 * Bits 62..48 of the segids this process makes.  XPMEM_NODE_ID (1..32767)
 * sets it at selection; else it stays 0 ("local only": segids carry no
 * node id) until a resolver (the remote transport) sets it.  It can be set
 * once, and only before the first xpmem_make (whose segids carry it). */
#define UXP_NODE_MAX ((1u << 15) - 1)
/* Parse XPMEM_NODE_ID (at selection): 0 or -EINVAL (logged as an error). */
int uxp_node_init(void);
/* This node's id, 0 if none; lock-free. */
unsigned uxp_node_id(void);
/* Set it: 0, -EINVAL (0 or > UXP_NODE_MAX), -EBUSY (another id is set, or
 * segids were made without one). */
int uxp_node_id_set(unsigned node);
/* xpmem_make: the node id its segid carries; no later change. */
unsigned uxp_node_id_freeze(void);
void uxp_node_fork_child(void);

/* ---- fork (src/fork.c): a forked child starts clean --------------------- */
void uxp_fork_init(void);
void uxp_api_fork_child(void);

/* ---- ids ----------------------------------------------------------------
 * A segid is positive (bit 63 clear) and names its exporter node-wide:
 *   bits 62..48  node id (0 = this node; else uxp_node_id() of the exporter's
 *                node: see routing above; kernel-made ids have them 0)
 *   bits 47..26  exporter pid (22 bits, pid_max <= 4194304)
 *   bits 25..0   per-process serial (never 0)
 * An apid has the same layout with the importer's pid, so an apid used by
 * another process is recognised (EACCES) without a lookup.
 */
#define UXP_ID_NODE_SHIFT 48
#define UXP_ID_NODE_BITS 15
#define UXP_ID_PID_SHIFT 26
#define UXP_ID_PID_BITS 22
#define UXP_ID_SERIAL_BITS 26
#define UXP_ID_SERIAL_MASK ((UINT64_C(1) << UXP_ID_SERIAL_BITS) - 1)

static inline int64_t uxp_id_compose(unsigned node, pid_t pid, uint32_t serial)
{
	return (int64_t)(((uint64_t)node << UXP_ID_NODE_SHIFT) |
			 ((uint64_t)pid << UXP_ID_PID_SHIFT) |
			 ((uint64_t)serial & UXP_ID_SERIAL_MASK));
}
static inline unsigned uxp_id_node(int64_t id)
{
	return (unsigned)(((uint64_t)id >> UXP_ID_NODE_SHIFT) &
			  ((1u << UXP_ID_NODE_BITS) - 1));
}
static inline pid_t uxp_id_pid(int64_t id)
{
	return (pid_t)(((uint64_t)id >> UXP_ID_PID_SHIFT) &
		       ((1u << UXP_ID_PID_BITS) - 1));
}
static inline uint32_t uxp_id_serial(int64_t id)
{
	return (uint32_t)((uint64_t)id & UXP_ID_SERIAL_MASK);
}
#define UXP_ID_NODE_MASK ((uint64_t)UXP_NODE_MAX << UXP_ID_NODE_SHIFT)
/* id without its node id (what local transports see) */
static inline int64_t uxp_id_strip_node(int64_t id)
{
	return (int64_t)((uint64_t)id & ~UXP_ID_NODE_MASK);
}
/* a node-0 id with node's id added */
static inline int64_t uxp_id_with_node(int64_t id, unsigned node)
{
	return (int64_t)(((uint64_t)id & ~UXP_ID_NODE_MASK) |
			 ((uint64_t)node << UXP_ID_NODE_SHIFT));
}

/* ---- id tables (src/idtab.c) -------------------------------------------
 * Thread-safe map from a 64-bit key to an object, sharded so that lookups
 * of different keys rarely share a lock (no process-wide mutex on the hot
 * path).  The caller owns object lifetime; uxp_idtab_get() calls hold()
 * under the shard lock so the caller can take a reference atomically.
 */
#define UXP_IDTAB_SHARDS 64
struct uxp_idtab_node;
struct uxp_idtab_shard {
	pthread_mutex_t lock;
	struct uxp_idtab_node **buckets;
	size_t nbuckets;
	size_t count;
} __attribute__((aligned(64)));
struct uxp_idtab {
	struct uxp_idtab_shard shard[UXP_IDTAB_SHARDS];
};
void uxp_idtab_init(struct uxp_idtab *t);
/* 0, -EEXIST, -ENOMEM */
int uxp_idtab_insert(struct uxp_idtab *t, uint64_t key, void *obj);
/* Object or NULL; hold(obj) (if not NULL) runs under the shard lock. */
void *uxp_idtab_get(struct uxp_idtab *t, uint64_t key, void (*hold)(void *));
/* Remove and return the object (NULL if absent).  If match is not NULL only
 * an entry whose object is match is removed. */
void *uxp_idtab_remove(struct uxp_idtab *t, uint64_t key, void *match);
/* Call fn on every object, one shard locked at a time; fn must not call
 * back into the table.  Returns the first non-zero fn result. */
int uxp_idtab_foreach(struct uxp_idtab *t, int (*fn)(uint64_t key, void *obj, void *arg), void *arg);
size_t uxp_idtab_count(struct uxp_idtab *t);
/* Lock the shard of key and work on it with the _locked calls (read, then
 * modify or remove, atomically with respect to other threads). */
void uxp_idtab_lock(struct uxp_idtab *t, uint64_t key);
void uxp_idtab_unlock(struct uxp_idtab *t, uint64_t key);
void *uxp_idtab_get_locked(struct uxp_idtab *t, uint64_t key);
int uxp_idtab_insert_locked(struct uxp_idtab *t, uint64_t key, void *obj);
void *uxp_idtab_remove_locked(struct uxp_idtab *t, uint64_t key, void *match);
/* Forget every entry (forked child: locks may be held by threads that no
 * longer exist); free_obj (if not NULL) is called on each object. */
void uxp_idtab_reset_after_fork(struct uxp_idtab *t, void (*free_obj)(void *));
void uxp_idtab_destroy(struct uxp_idtab *t);

/* ---- revocation (src/revoke.c) ----------------------------------------
 * Transports report revocations here (from any thread; never while
 * holding a lock a callback could need).  The API edge tells it which
 * apids are live. */
struct uxpmem_revoke_event;
void uxp_revoke_emit(xpmem_apid_t apid, xpmem_segid_t segid, int reason, void *addr,
		     size_t size, off_t offset, size_t length);
void uxp_revoke_apid_added(xpmem_apid_t apid);
/* The API edge, after a get: events of apid carry segid as the caller
 * named it (with the node id local transports never see). */
void uxp_revoke_apid_named(xpmem_apid_t apid, xpmem_segid_t segid);
void uxp_revoke_apid_released(xpmem_apid_t apid);
void uxp_revoke_fork_child(void);

/* ---- helpers (src/util.c) ---------------------------------------------- */
/* A detached library thread with every signal blocked; stack_size 0 for the
 * default.  0 or -errno. */
int uxp_thread_start(void *(*fn)(void *), void *arg, size_t stack_size);
/* The same, and the new thread's id in *id. */
int uxp_thread_start_id(void *(*fn)(void *), void *arg, size_t stack_size, pthread_t *id);
/* ---- stopping the application's threads (src/freeze.c) -----------------
 * uxp_freeze() parks every application thread at a signal safepoint (not
 * library threads, which never write application memory) and returns 0,
 * or -errno (ENOSYS: no signal to use; EBUSY; ETIMEDOUT: a thread did not
 * stop in time, e.g. it blocks the signal) with nothing stopped.  Until
 * uxp_thaw() the caller must not take locks or allocate.  Library threads
 * that run application code (revocation callbacks) bracket it with
 * uxp_app_code_enter/leave. */
int uxp_freeze(long timeout_ms);
void uxp_thaw(void);
int uxp_freeze_available(void);
void uxp_app_code_enter(void);
void uxp_app_code_leave(void);
void uxp_thread_register_self(void);
void uxp_thread_unregister_self(void);
void uxp_freeze_fork_child(void);

/* *ts = now + ms on CLOCK_MONOTONIC (for condition variables using it). */
struct timespec;
void uxp_deadline(struct timespec *ts, long ms);
/* CLOCK_MONOTONIC now, in milliseconds. */
long long uxp_now_ms(void);

/* ---- address space ------------------------------------------------------ */
/* Memory-map calls for library threads: the system calls themselves, never
 * libc's symbols, which memory hooks (UCX's ucm, Open MPI's patcher) patch
 * or interpose.  A hook is application code: it writes application memory
 * (that a conversion may have frozen, or whose .data is being copied) and
 * takes application locks (whose holder may wait for this thread).  What a
 * library thread maps is invisible to the application, as with the kernel
 * XPMEM (docs/design.md, "No application code in library threads"). */
static inline void *uxp_sys_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}
static inline int uxp_sys_munmap(void *a, size_t len)
{
	return (int)syscall(SYS_munmap, a, len);
}
static inline int uxp_sys_madvise(void *a, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, a, len, advice);
}
static inline int uxp_sys_mlock(const void *a, size_t len)
{
	return (int)syscall(SYS_mlock, a, len);
}
static inline void *uxp_sys_mremap(void *old, size_t old_len, size_t len, int flags, void *to)
{
	return (void *)syscall(SYS_mremap, old, old_len, len, flags, to);
}
static inline void *uxp_sys_shmat(int shmid, const void *a, int flags)
{
	return (void *)syscall(SYS_shmat, shmid, a, flags);
}
static inline int uxp_sys_shmdt(const void *a)
{
	return (int)syscall(SYS_shmdt, a);
}

/* ---- changes of this process's memory (src/mmwatch.c) -----------------
 * A userspace MMU notifier for transports that serve memory of this
 * process otherwise than through page tables importers share (an RDMA
 * registration, a copy).  uxp_mm_watch subscribes cb(arg, start, end, kind)
 * to changes of [start, start+len) (page-rounded): an munmap, mremap or
 * MAP_FIXED over it is reported before that call returns (kind UNMAP or
 * REMAP), MADV_DONTNEED/REMOVE while madvise zaps (REMOVE).  Callbacks run
 * on the watcher thread (or in the thread of an owner calling
 * uxp_mm_changed), without a lock of the core held; they may unwatch, and
 * should return in bounded time (the unmapper waits).  *id is set even on
 * failure (-ENOSYS etc.: no userfaultfd; -EBUSY: another userfaultfd owns
 * part of the range; -EINVAL: memory userfaultfd cannot watch): the
 * subscription stays, and only reports of uxp_mm_changed reach it. */
enum uxp_mm_change { UXP_MM_UNMAP = 1, UXP_MM_REMAP = 2, UXP_MM_REMOVE = 3 };
typedef void (*uxp_mm_cb)(void *arg, uintptr_t start, uintptr_t end, int kind);
int uxp_mm_watch(uintptr_t start, size_t len, uxp_mm_cb cb, void *arg, uint64_t *id);
void uxp_mm_unwatch(uint64_t id);
/* The owner of a userfaultfd registration (the shm converter) reports a
 * change of [start, end) to the subscribers (in the caller's thread). */
void uxp_mm_changed(uintptr_t start, uintptr_t end, int kind);
void uxp_mm_fork_child(void);
/* Page size, cached. */
extern size_t uxp_page_size;
/* One past the highest user address (the clip for XPMEM_MAXADDR_SIZE). */
uintptr_t uxp_user_top(void);

#endif /* UXP_H */
