/* peer.c - the other process of the shm tests: an exporter or importer
 * commanded line by line on stdin, answering one line on stdout:
 *   "ok [values...]"  |  "err ERRNO"  |  "sig SIGNO"  |  "bad OFFSET"
 * Numbers are accepted in decimal or 0x-hex.  Uses only the public API. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <xpmem.h>
#include "shmtest.h"
#include "peerutil.h"

/* A page-aligned .bss and .data area (Sandia OpenSHMEM exports these). */
static char bss_area[16 * 4096] __attribute__((aligned(4096)));
static char data_area[4 * 4096] __attribute__((aligned(4096))) = { 1 };


int main(void)
{
	char line[1024];
	setvbuf(stdout, NULL, _IOLBF, 0);
	data_area[0] = 1;
	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL;
		char *cmd = strtok_r(line, " \t\n", &save);
		if (!cmd)
			continue;
		errno = 0;
		if (!strcmp(cmd, "hello")) {
			int arena = dlsym(RTLD_DEFAULT, "uxpmem_arena_query_v1") != NULL;
			pu_reply("ok %d %d", (int)getpid(), arena);
		} else if (!strcmp(cmd, "exit")) {
			pu_reply("ok");
			exit(0);
		} else if (!strcmp(cmd, "version")) {
			int v = xpmem_version();
			v < 0 ? pu_reply("err %d", errno) : pu_reply("ok %d", v);
		} else if (!strcmp(cmd, "make")) {
			unsigned long long va = pu_num(&save), sz = pu_num(&save), mode = pu_num(&save);
			xpmem_segid_t s = xpmem_make((void *)(uintptr_t)va, (size_t)sz, XPMEM_PERMIT_MODE,
						     (void *)(uintptr_t)mode);
			s == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)s);
		} else if (!strcmp(cmd, "remove")) {
			long long s = (long long)pu_num(&save);
			xpmem_remove(s) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "get")) {
			long long s = (long long)pu_num(&save);
			int fl = (int)pu_num(&save);
			xpmem_apid_t a = xpmem_get(s, fl, XPMEM_PERMIT_MODE, NULL);
			a == -1 ? pu_reply("err %d", errno) : pu_reply("ok %lld", (long long)a);
		} else if (!strcmp(cmd, "release")) {
			long long a = (long long)pu_num(&save);
			xpmem_release(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "attach")) {
			struct xpmem_addr ad;
			ad.apid = (long long)pu_num(&save);
			ad.offset = (off_t)pu_num(&save);
			size_t sz = pu_num(&save);
			void *va = (void *)(uintptr_t)pu_num(&save);
			void *r = xpmem_attach(ad, sz, va);
			r == (void *)-1 ? pu_reply("err %d", errno) : pu_reply("ok %#lx", (unsigned long)r);
		} else if (!strcmp(cmd, "detach")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			xpmem_detach(a) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "malloc")) {
			void *m = NULL;
			size_t sz = pu_num(&save);
			int e = posix_memalign(&m, 4096, sz);
			e ? pu_reply("err %d", e) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "free")) {
			free((void *)(uintptr_t)pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "mmapanon")) {
			size_t sz = pu_num(&save);
			void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			m == MAP_FAILED ? pu_reply("err %d", errno) : pu_reply("ok %#lx", (unsigned long)m);
		} else if (!strcmp(cmd, "mmapfixed")) {
			/* new private anonymous memory over ADDR (MAP_FIXED), filled with SEED */
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			void *m = mmap(a, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (m == MAP_FAILED) {
				pu_reply("err %d", errno);
			} else {
				st_fill(m, sz, seed);
				pu_reply("ok %#lx", (unsigned long)m);
			}
		} else if (!strcmp(cmd, "munmap")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			munmap(a, sz) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "realloc_same")) {
			/* free ADDR and allocate SIZE until the same address comes back;
			 * then fill it with SEED. */
			void *old = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			static void *held[512];
			int nh = 0;
			void *m = NULL;
			free(old);
			for (int i = 0; i < 512; i++) {
				if (posix_memalign(&m, 4096, sz))
					break;
				if (m == old)
					break;
				held[nh++] = m;
				m = NULL;
			}
			for (int i = 0; i < nh; i++)
				free(held[i]);
			/* then cycle malloc/free without holding */
			for (int i = 0; m != old && i < 20000; i++) {
				if (m)
					free(m);
				m = NULL;
				if (posix_memalign(&m, 4096, sz))
					break;
			}
			if (m != old) {
				if (m)
					free(m);
				pu_reply("err %d", EAGAIN);
			} else {
				st_fill(m, sz, seed);
				pu_reply("ok %#lx %d", (unsigned long)m, nh);
			}
		} else if (!strcmp(cmd, "fill")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			st_fill(a, sz, pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "check")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			uint64_t seed = pu_num(&save);
			const uint64_t *w = a;
			long bad = -1;
			for (size_t i = 0; i < sz / 8; i++)
				if (w[i] != st_pattern(seed, i)) {
					bad = (long)i * 8;
					break;
				}
			bad < 0 ? pu_reply("ok") : pu_reply("bad %ld", bad);
		} else if (!strcmp(cmd, "rd")) {
			/* read a 64-bit word, catching SIGBUS/SIGSEGV (reported as "sig N") */
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			unsigned char b;
			int sig = tu_probe_read(a, &b);
			sig ? pu_reply("sig %d", sig) : pu_reply("ok %lld", (long long)*a);
		} else if (!strcmp(cmd, "wr")) {
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			uint64_t v = pu_num(&save);
			int sig = tu_probe_write(a, (unsigned char)v);
			if (!sig)
				*a = v;
			sig ? pu_reply("sig %d", sig) : pu_reply("ok");
		} else if (!strcmp(cmd, "waitsig")) {
			const volatile void *a = (const void *)(uintptr_t)pu_num(&save);
			int ms = (int)pu_num(&save);
			int sig = st_wait_signal(a, ms);
			sig ? pu_reply("ok %d", sig) : pu_reply("err %d", ETIMEDOUT);
		} else if (!strcmp(cmd, "mprotect")) {
			void *a = (void *)(uintptr_t)pu_num(&save);
			size_t sz = pu_num(&save);
			int prot = (int)pu_num(&save);
			mprotect(a, sz, prot) ? pu_reply("err %d", errno) : pu_reply("ok");
		} else if (!strcmp(cmd, "cas")) {
			/* start THREADS threads doing N CAS increments each on ADDR */
			volatile uint64_t *a = (volatile uint64_t *)(uintptr_t)pu_num(&save);
			long n = (long)pu_num(&save);
			pu_cas_start(a, n, (int)pu_num(&save));
			pu_reply("ok");
		} else if (!strcmp(cmd, "join")) {
			pu_cas_join();
			pu_reply("ok");
		} else if (!strcmp(cmd, "fds")) {
			pu_reply("ok %d", tu_count_fds());
		} else if (!strcmp(cmd, "drop")) {
			tu_drop_to_nobody() ? pu_reply("err %d", errno ? errno : EPERM) : pu_reply("ok %d", (int)getuid());
		} else if (!strcmp(cmd, "static")) {
			pu_reply("ok %#lx %zu %#lx %zu", (unsigned long)bss_area, sizeof(bss_area),
			      (unsigned long)data_area, sizeof(data_area));
		} else if (!strcmp(cmd, "maxaddr")) {
			pu_reply("ok %#llx", pu_maxaddr());
		} else if (!strcmp(cmd, "sleep")) {
			st_sleep_ms((int)pu_num(&save));
			pu_reply("ok");
		} else {
			pu_reply("err %d", ENOSYS);
		}
	}
	return 0;
}
