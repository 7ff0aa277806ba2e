/* fakexpmem.c - see fakexpmem.h */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "fakexpmem.h"
#include "testutil.h"

#define FX_MAX 4096

struct fx_ap {
	xpmem_apid_t apid;
	xpmem_segid_t segid;
};
struct fx_att {
	void *addr;
	size_t size;
};

static pthread_mutex_t fx_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned fx_uniq;
static struct fx_ap fx_aps[FX_MAX];
static int fx_naps;
static struct fx_att fx_atts[FX_MAX];
static int fx_natts;

int64_t fx_id(pid_t tgid, unsigned uniq)
{
	struct {
		pid_t tgid;
		unsigned uniq;
	} id = { tgid, uniq };
	int64_t v;
	memcpy(&v, &id, sizeof(v));
	return v;
}

static pid_t id_tgid(int64_t id)
{
	pid_t t;
	memcpy(&t, &id, sizeof(t));
	return t;
}

static int seg_path(char *buf, size_t len, xpmem_segid_t segid)
{
	const char *dir = getenv("XPMEM_FAKE_DIR");
	if (!dir)
		return -1;
	snprintf(buf, len, "%s/seg.%llx", dir, (unsigned long long)segid);
	return 0;
}

/* Process pid exists and has not exited (not a zombie). */
static int alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int fx_make(struct xpmem_cmd_make *c)
{
	char path[4096], line[64];
	pthread_mutex_lock(&fx_lock);
	xpmem_segid_t s = fx_id(getpid(), ++fx_uniq);
	pthread_mutex_unlock(&fx_lock);
	if (seg_path(path, sizeof(path), s) < 0)
		return EINVAL;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)c->size);
	int ok = write(fd, line, (size_t)n) == n;
	close(fd);
	if (!ok)
		return EIO;
	c->segid = s;
	return 0;
}

static int fx_remove(struct xpmem_cmd_remove *c)
{
	char path[4096];
	if (id_tgid(c->segid) != getpid())
		return EACCES;
	if (seg_path(path, sizeof(path), c->segid) < 0)
		return EINVAL;
	return unlink(path) < 0 ? ENOENT : 0;
}

/* XPMEM_FAKE_GET_HOLD: a GET that found its segment announces it
 * ($XPMEM_FAKE_DIR/getting.PID) and completes only when the test says so
 * (go.PID): the test removes or ends the segment meanwhile. */
static void hold(void)
{
	char getting[4200], go[4200];
	const char *dir = getenv("XPMEM_FAKE_DIR");
	snprintf(getting, sizeof(getting), "%s/getting.%d", dir, (int)getpid());
	snprintf(go, sizeof(go), "%s/go.%d", dir, (int)getpid());
	int fd = open(getting, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	int max_ms = tu_guard_ms(10000); /* a hang guard */
	for (int waited = 0; waited < max_ms && access(go, F_OK) < 0; waited += 5)
		usleep(5000);
	unlink(go);
	unlink(getting);
}

static int fx_get(struct xpmem_cmd_get *c)
{
	char path[4096];
	if (seg_path(path, sizeof(path), c->segid) < 0)
		return EINVAL;
	if (access(path, F_OK) < 0 || !alive(id_tgid(c->segid)))
		return ENOENT; /* removed, or its exporter is gone (the module flushes) */
	if (getenv("XPMEM_FAKE_GET_HOLD"))
		hold(); /* it has been found: it succeeds */
	pthread_mutex_lock(&fx_lock);
	int e = 0;
	if (fx_naps == FX_MAX) {
		e = ENOMEM;
	} else {
		c->apid = fx_id(getpid(), ++fx_uniq);
		fx_aps[fx_naps++] = (struct fx_ap){ c->apid, c->segid };
	}
	pthread_mutex_unlock(&fx_lock);
	return e;
}

static int find_ap(xpmem_apid_t apid)
{
	for (int i = 0; i < fx_naps; i++)
		if (fx_aps[i].apid == apid)
			return i;
	return -1;
}

static int fx_release(struct xpmem_cmd_release *c)
{
	pthread_mutex_lock(&fx_lock);
	int i = find_ap(c->apid);
	if (i >= 0)
		fx_aps[i] = fx_aps[--fx_naps];
	pthread_mutex_unlock(&fx_lock);
	return i < 0 ? EINVAL : 0;
}

static int fx_attach(struct xpmem_cmd_attach *c)
{
	pthread_mutex_lock(&fx_lock);
	int known = find_ap(c->apid) >= 0, full = fx_natts == FX_MAX;
	pthread_mutex_unlock(&fx_lock);
	if (!known)
		return EINVAL;
	if (full)
		return ENOMEM;
	void *want = (void *)(uintptr_t)c->vaddr;
	void *p = mmap(want, c->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (want ? MAP_FIXED : 0), -1, 0);
	if (p == MAP_FAILED)
		return errno;
	pthread_mutex_lock(&fx_lock);
	fx_atts[fx_natts++] = (struct fx_att){ p, c->size };
	pthread_mutex_unlock(&fx_lock);
	c->vaddr = (uintptr_t)p;
	return 0;
}

static int fx_detach(struct xpmem_cmd_detach *c)
{
	pthread_mutex_lock(&fx_lock);
	for (int i = 0; i < fx_natts; i++)
		if ((uintptr_t)fx_atts[i].addr == c->vaddr) {
			munmap(fx_atts[i].addr, fx_atts[i].size);
			fx_atts[i] = fx_atts[--fx_natts];
			break;
		}
	pthread_mutex_unlock(&fx_lock);
	return 0;
}

int fx_ioctl(int fd, unsigned long request, void *arg)
{
	(void)fd;
	int e;
	switch (request) {
	case XPMEM_CMD_VERSION:
		return FX_VERSION;
	case XPMEM_CMD_MAKE:
		e = fx_make(arg);
		break;
	case XPMEM_CMD_REMOVE:
		e = fx_remove(arg);
		break;
	case XPMEM_CMD_GET:
		e = fx_get(arg);
		break;
	case XPMEM_CMD_RELEASE:
		e = fx_release(arg);
		break;
	case XPMEM_CMD_ATTACH:
		e = fx_attach(arg);
		break;
	case XPMEM_CMD_DETACH:
		e = fx_detach(arg);
		break;
	default:
		e = ENOTTY;
	}
	if (e) {
		errno = e;
		return -1;
	}
	return 0;
}
