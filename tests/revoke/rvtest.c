/* rvtest.c - see rvtest.h */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rvtest.h"

void rv_start(struct peer *p, int arena)
{
	char path[4096];
	peer_spawn(p, tu_builddir_path("tests/revoke/rvpeer", path, sizeof(path)),
		   arena ? PEER_ARENA : PEER_PLAIN);
	long long v;
	rv_ok(p, &v, 1, "hello");
	ck_assert_int_eq(v, p->pid);
}

long long rv_ok(struct peer *p, long long *v, int nv, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	const char *r = peer_cmd(p, "%s", cmd);
	ck_assert_msg(strncmp(r, "ok", 2) == 0 && (r[2] == 0 || r[2] == ' '),
		      "peer %d: '%s' answered '%s' (want ok)", (int)p->pid, cmd, r);
	long long first = 0;
	const char *s = r + 2;
	for (int i = 0;; i++) {
		char *end;
		errno = 0;
		long long x = strtoll(s, &end, 0);
		if (end == s)
			break;
		if (i == 0)
			first = x;
		if (v && i < nv)
			v[i] = x;
		s = end;
	}
	return first;
}

void rv_ev(struct peer *p, const char *tag, int i, struct rvev *ev)
{
	const char *r = peer_cmd(p, "ev %s %d", tag, i);
	memset(ev, 0, sizeof(*ev));
	ck_assert_msg(sscanf(r, "ok %llu %d %lld %lld %lx %zu %lld %zu %lld %d", &ev->seq, &ev->reason,
			     &ev->apid, &ev->segid, &ev->addr, &ev->size, &ev->offset, &ev->length,
			     &ev->t_ns, &ev->probe) == 10,
		      "peer %d has no event %d of '%s': '%s'", (int)p->pid, i, tag, r);
}

int rv_count(struct peer *p, const char *tag)
{
	return (int)rv_ok(p, NULL, 0, "count %s", tag);
}

void rv_stop(struct peer *p)
{
	if (p->pid <= 0)
		return;
	rv_ok(p, NULL, 0, "exit");
	peer_reap(p);
}
