/* shm.c - the shm transport's ops table: XPMEM between processes of one
 * node with memfds, a service thread per process and Unix sockets.  See
 * docs/design.md for the path of an attach. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include "shm.h"
#include "uxpmem.h"

static pthread_once_t hole_once = PTHREAD_ONCE_INIT;
static int hole_fd = -1;

static void make_hole(void)
{
	int fd = memfd_create("uxpmem-hole", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		uxp_error("shm: memfd_create: %s", strerror(errno));
		return;
	}
	/* size 0 forever: every access through a mapping of it is SIGBUS */
	fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	hole_fd = fd;
}

int uxp_hole_fd(void)
{
	pthread_once(&hole_once, make_hole);
	return hole_fd;
}

static uint32_t serial;

uint32_t uxp_next_serial(void)
{
	uint32_t s;
	if (uxp_unlikely(__atomic_load_n(&serial, __ATOMIC_RELAXED) == 0)) {
		/* random start: a stale segid of a dead process whose pid was
		 * reused is unlikely to name a live segment */
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u;
		uint32_t zero = 0;
		__atomic_compare_exchange_n(&serial, &zero, (r & UXP_ID_SERIAL_MASK) | 1, 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	do
		s = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED) & UXP_ID_SERIAL_MASK;
	while (s == 0);
	return s;
}

/* XPMEM_USERFAULTFD=0 turns off conversion and re-resolve (e.g. under
 * valgrind, which runs one thread at a time: a frozen writer would block
 * the thread that must thaw it). */
int uxp_userfaultfd_allowed(void)
{
	return uxp_env_long("XPMEM_USERFAULTFD", 1) != 0;
}

long uxp_timeout_ms(const char *env, long def)
{
	long v = uxp_env_long(env, def);
	return v > 0 ? v : def;
}

static int shm_probe(char *why, size_t whylen)
{
	int fd = memfd_create("uxpmem-probe", MFD_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(why, whylen, "memfd_create: %s", strerror(e));
		return -e;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(why, whylen, "AF_UNIX SOCK_SEQPACKET: %s", strerror(e));
		return -e;
	}
	close(fd);
	const char *dir = uxp_env("XPMEM_SHM_SOCKET_DIR");
	snprintf(why, whylen, "memfd + Unix sockets (%s%s)", dir ? "socket dir " : "abstract socket names",
		 dir ? dir : "");
	return 0;
}

static int shm_version(void)
{
	return 0x00026003; /* the reference API level we implement */
}

static int shm_make(uintptr_t vaddr, size_t size, int permit_type, uint64_t permit_value,
		    xpmem_segid_t *segid)
{
	(void)permit_type;
	if (size == XPMEM_MAXADDR_SIZE)
		size = uxp_user_top() - vaddr;
	return uxp_exp_make(vaddr, size, (uint32_t)permit_value, segid);
}

static int shm_get(xpmem_segid_t segid, int flags, int permit_type, uint64_t permit_value,
		   xpmem_apid_t *apid)
{
	(void)permit_type;
	(void)permit_value;
	return uxp_imp_get(segid, flags, apid);
}

static int shm_attach(xpmem_apid_t apid, off_t offset, size_t size, uintptr_t vaddr, void **addr)
{
	return uxp_imp_attach(apid, offset, size, vaddr, addr);
}

static int shm_export_level(char *why, size_t whylen)
{
	switch (uxp_uffd_level(why, whylen)) {
	case UXP_UFFD_FULL:
		return UXPMEM_EXPORT_FULL;
	case UXP_UFFD_USER:
		return UXPMEM_EXPORT_USER;
	default:
		return UXPMEM_EXPORT_ARENA;
	}
}

static void shm_fork_child(void)
{
	uxp_conv_fork_child(); /* first: converted memory becomes private again */
	uxp_imp_fork_child();
	uxp_exp_fork_child();
	uxp_svc_fork_child();
}

const struct uxp_transport uxp_shm_transport = {
	.name = "shm",
	.description = "userspace shared memory: memfd arena, service thread, Unix sockets",
	.probe = shm_probe,
	.version = shm_version,
	.make = shm_make,
	.remove = uxp_exp_remove,
	.get = shm_get,
	.release = uxp_imp_release,
	.attach = shm_attach,
	.detach = uxp_imp_detach,
	.export_level = shm_export_level,
	.fork_child = shm_fork_child,
};
