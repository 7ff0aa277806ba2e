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
 */
struct uxp_transport {
	const char *name;
	const char *description;
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
};

/* Plugins export this symbol (a const struct uxp_transport). */
#define UXP_TRANSPORT_SYMBOL "uxpmem_transport_v1"

/* Built-in transports, NULL-terminated (transports/builtin.c). */
extern const struct uxp_transport *const uxp_builtin_transports[];

/* The transport this process uses; selected once (XPMEM_TRANSPORT or
 * automatically).  Returns NULL and sets *err (-errno) if none is usable. */
const struct uxp_transport *uxp_transport(int *err);
/* The selected transport or NULL, without selecting (for fork handlers). */
const struct uxp_transport *uxp_transport_selected(void);
/* Transport by name (built-in or plugin), NULL if unknown. */
const struct uxp_transport *uxp_transport_find(const char *name);
/* Number of known transports, and the i-th. */
unsigned uxp_transport_count(void);
const struct uxp_transport *uxp_transport_at(unsigned i);

/* ---- fork (src/fork.c): a forked child starts clean --------------------- */
void uxp_fork_init(void);

/* ---- ids ----------------------------------------------------------------
 * A segid is positive (bit 63 clear) and names its exporter node-wide:
 *   bits 62..48  node id (0 = this node; reserved for remote transports)
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
/* Page size, cached. */
extern size_t uxp_page_size;
/* One past the highest user address (the clip for XPMEM_MAXADDR_SIZE). */
uintptr_t uxp_user_top(void);

#endif /* UXP_H */
