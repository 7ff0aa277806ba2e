/* shared.c - the application's own MAP_SHARED mappings, exported in place
 * (exporter side; convert.c asks, per mapping).
 *
 * SysV and POSIX shared memory, memfds, shared anonymous memory and shared
 * file mappings are already shared: an importer must map the very same
 * pages, never a copy, so that every mapper sees every write.  It gets a
 * descriptor of the file the mapping maps, opened through
 * /proc/self/map_files where this process may (CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE), else a descriptor the application still holds
 * for that file (UCX's POSIX shm keeps one), reopened.  A SysV segment with
 * neither goes by its id: the importer attaches it with shmat(2) itself, so
 * the kernel checks the importer's own permission.  What is left (shared
 * anonymous memory, or a deleted file nobody holds open, in an unprivileged
 * process) is a hole, logged.
 *
 * Permissions: a descriptor never lets an importer do more than the file's
 * own mode (or the SysV segment's) lets that importer's uid do, on top of
 * the segment's mode checked at get. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "shm.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* The device of kernel-internal shmem files (memfds, SysV segments, shared
 * anonymous memory): that of our own hole memfd. */
static int internal_shmem_dev(dev_t dev)
{
	struct stat sb;
	int hole = uxp_hole_fd();
	return hole >= 0 && fstat(hole, &sb) == 0 && sb.st_dev == dev;
}

int uxp_shared_sysv_id(const char *path, dev_t dev, ino_t ino)
{
	/* the kernel names a SysV segment's mapping "/SYSV<key>" and sets its
	 * inode number to the segment id; hugetlb segments live elsewhere */
	if (strncmp(path, "/SYSV", 5) != 0 || !internal_shmem_dev(dev) || ino > INT32_MAX)
		return -1;
	return (int)ino;
}

/* Is fd still the file (dev, ino)? */
static int same_file(int fd, dev_t dev, ino_t ino)
{
	struct stat sb;
	return fstat(fd, &sb) == 0 && sb.st_dev == dev && sb.st_ino == ino;
}

static int reopen(const char *path, int writable)
{
	int fd = writable ? open(path, O_RDWR | O_CLOEXEC) : -1;
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* A descriptor of (dev, ino) that this process holds, reopened; -ENOENT if
 * none.  Raw getdents64 into a stack buffer: no allocation. */
static int reopen_held(dev_t dev, ino_t ino, int writable)
{
	char buf[4096], path[64];
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = -ENOENT;
	if (dir < 0)
		return -errno;
	for (;;) {
		long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n && ret == -ENOENT;) {
			const struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type;
				       char name[]; } *d = (const void *)(buf + off);
			off += d->reclen;
			int fd = atoi(d->name);
			if (d->name[0] < '0' || d->name[0] > '9' || fd == dir || !same_file(fd, dev, ino))
				continue;
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			ret = reopen(path, writable);
			/* the application may have closed and reused it meanwhile */
			if (ret >= 0 && !same_file(ret, dev, ino)) {
				close(ret);
				ret = -ENOENT;
			}
		}
		if (ret != -ENOENT)
			break;
	}
	close(dir);
	return ret;
}

/* Files we can share: regular files, not hugetlbfs (an importer could not
 * map them at page granularity). */
static const char *unshareable(int fd)
{
	struct stat sb;
	struct statfs fs;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return "not a regular file";
	if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC)
		return "hugetlbfs";
	return NULL;
}

int uxp_shared_open(uintptr_t vstart, uintptr_t vend, dev_t dev, ino_t ino, int writable,
		    char *why, size_t whylen)
{
	char path[80];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)vstart,
		 (unsigned long)vend);
	int fd = reopen(path, writable);
	if (fd >= 0 && !same_file(fd, dev, ino)) { /* remapped meanwhile */
		close(fd);
		fd = -ESTALE;
	}
	if (fd < 0)
		fd = reopen_held(dev, ino, writable);
	if (fd < 0) {
		snprintf(why, whylen, "%s",
			 fd == -ENOENT ? "no descriptor: this process may not open /proc/self/map_files "
					 "(needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE) and holds none "
					 "for the file"
				       : strerror(-fd));
		return fd;
	}
	const char *bad = unshareable(fd);
	if (bad) {
		snprintf(why, whylen, "%s", bad);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Permission bits (04 read, 02 write) that mode gives a process with the
 * importer's credentials, like the kernel's owner/group/other rule. */
static unsigned mode_bits(unsigned mode, uid_t uid, gid_t gid, uid_t cuid, gid_t cgid,
			  const struct uxp_conn *c)
{
	if (c->peer_uid == 0)
		return 06; /* root: CAP_DAC_OVERRIDE / CAP_IPC_OWNER */
	if (c->peer_uid == uid || c->peer_uid == cuid)
		return (mode >> 6) & 06;
	if (uxp_conn_in_group(c, gid) || uxp_conn_in_group(c, cgid))
		return (mode >> 3) & 06;
	return mode & 06;
}

unsigned uxp_shared_access(int fd, int shmid, const struct uxp_conn *c)
{
	if (shmid >= 0) {
		struct shmid_ds ds;
		if (shmctl(shmid, IPC_STAT, &ds) < 0)
			return 0;
		return mode_bits(ds.shm_perm.mode, ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_perm.cuid,
				 ds.shm_perm.cgid, c);
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return 0;
	return mode_bits(sb.st_mode, sb.st_uid, sb.st_gid, sb.st_uid, sb.st_gid, c);
}
