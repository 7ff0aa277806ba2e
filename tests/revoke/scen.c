/* scen.c - see scen.h */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "scen.h"

/* Read the word at addr in peer p: 0 and *val, or the signal raised. */
int rd_word(struct peer *p, unsigned long addr, unsigned long long *val)
{
	const char *r = peer_cmd(p, "rd %#lx", addr);
	int sig = 0;
	if (sscanf(r, "sig %d", &sig) == 1)
		return sig;
	ck_assert_msg(sscanf(r, "ok %llu", val) == 1, "rd %#lx answered '%s'", addr, r);
	return 0;
}

void scen_setup(struct scen *s)
{
	unsigned long long w;

	/* The exporter: an arena buffer (real shared memory) exported as
	 * segment A, and a large segment B from address 0 that contains it. */
	rv_start(&s->e, 1);
	s->buf = (unsigned long)rv_ok(&s->e, NULL, 0, "malloc %lu", SEG_A);
	rv_ok(&s->e, NULL, 0, "fill %#lx %lu %d", s->buf, SEG_A, SEED);
	s->segA = rv_ok(&s->e, NULL, 0, "make %#lx %lu 0600", s->buf, SEG_A);
	s->szB = (s->buf + SEG_A + 2 * MiB - 1) & ~(2 * MiB - 1);
	s->segB = rv_ok(&s->e, NULL, 0, "make 0 %#zx 0600", s->szB);
	ck_assert(s->segA > 0 && s->segB > 0 && s->segA != s->segB);

	for (int i = 0; i < NIMP; i++) {
		struct imp *m = &s->im[i];
		rv_start(&m->p, 0);
		ck_assert_int_ge(rv_ok(&m->p, NULL, 0, "fdinit"), 0);
		rv_ok(&m->p, NULL, 0, "handler 0 def rec");
		m->apA = rv_ok(&m->p, NULL, 0, "get %lld %d", s->segA, XPMEM_RDWR);
		m->apB = rv_ok(&m->p, NULL, 0, "get %lld %d", s->segB, XPMEM_RDWR);
		ck_assert(m->apA > 0 && m->apB > 0 && m->apA != m->apB);
		rv_ok(&m->p, NULL, 0, "handler %lld cb rec", m->apA);
		/* arena pointer, own VMA at a fixed address, and B over the buffer */
		m->a1 = (unsigned long)rv_ok(&m->p, NULL, 0, "attach %lld 0 %lu 0", m->apA, SEG_A);
		m->a2 = (unsigned long)rv_ok(&m->p, NULL, 0, "attach %lld %lu %lu 1", m->apA, 2 * PAGE, 4 * PAGE);
		m->b1 = (unsigned long)rv_ok(&m->p, NULL, 0, "attach %lld %#lx %lu 0", m->apB, s->buf, SEG_A);
		/* the memory is real before the revocation (else SIGBUS after it
		 * would prove nothing), and process_vm_readv can read it */
		ck_assert_int_eq(rd_word(&m->p, m->a1, &w), 0);
		ck_assert(w == st_pattern(SEED, 0));
		ck_assert_int_eq(rd_word(&m->p, m->a2, &w), 0);
		ck_assert(w == st_pattern(SEED, 2 * PAGE / 8));
		ck_assert_int_eq(rd_word(&m->p, m->b1, &w), 0);
		ck_assert(w == st_pattern(SEED, 0));
		const char *r = peer_cmd(&m->p, "vmread %#lx", m->a1);
		ck_assert_msg(sscanf(r, "ok %llu", &w) == 1 && w == st_pattern(SEED, 0),
			      "process_vm_readv of a live attachment: '%s'", r);
		ck_assert_int_eq(rv_count(&m->p, ""), 0);
	}
}

static void check_fields(const struct rvev *ev, int reason, long long apid, long long segid,
			 size_t len, const char *what, int i)
{
	ck_assert_msg(ev->reason == reason, "importer %d %s: reason %d, want %d", i, what, ev->reason, reason);
	ck_assert_msg(ev->apid == apid, "importer %d %s: apid %#llx, want %#llx", i, what, ev->apid, apid);
	ck_assert_msg(ev->segid == segid, "importer %d %s: segid %#llx, want %#llx", i, what, ev->segid, segid);
	ck_assert_msg(ev->addr == 0 && ev->size == 0, "importer %d %s: addr %#lx size %zu, want NULL 0", i,
		      what, ev->addr, ev->size);
	ck_assert_msg(ev->offset == 0 && ev->length == len, "importer %d %s: offset %lld length %#zx, want 0 %#zx",
		      i, what, ev->offset, ev->length, len);
	ck_assert_msg(ev->seq > 0, "importer %d %s: seq 0", i, what);
}

/* Every importer got one event per apid in every form, nothing more. */
void scen_verify(struct scen *s, int reason)
{
	for (int i = 0; i < NIMP; i++) {
		struct imp *m = &s->im[i];
		ck_assert_msg(rv_ok(&m->p, NULL, 0, "fdwait 2 %d", WAIT_MS) == 2,
			      "importer %d: the fd form did not get 2 events within %d ms", i, WAIT_MS);
		ck_assert_msg(rv_ok(&m->p, NULL, 0, "wait cb 1 %d", WAIT_MS) >= 1,
			      "importer %d: the apid's callback did not run within %d ms", i, WAIT_MS);
		ck_assert_msg(rv_ok(&m->p, NULL, 0, "wait def 1 %d", WAIT_MS) >= 1,
			      "importer %d: the default handler did not run within %d ms", i, WAIT_MS);
	}
	st_sleep_ms(500); /* duplicates would arrive meanwhile */
	for (int i = 0; i < NIMP; i++) {
		struct imp *m = &s->im[i];
		struct rvev cb, def, fd[2], *fa, *fb;
		ck_assert_int_eq(rv_ok(&m->p, NULL, 0, "fdwait 3 0"), 2);
		ck_assert_int_eq(rv_count(&m->p, "cb"), 1);
		ck_assert_int_eq(rv_count(&m->p, "def"), 1);
		rv_ev(&m->p, "cb", 0, &cb);
		rv_ev(&m->p, "def", 0, &def);
		rv_ev(&m->p, "fd", 0, &fd[0]);
		rv_ev(&m->p, "fd", 1, &fd[1]);
		check_fields(&cb, reason, m->apA, s->segA, SEG_A, "callback", i);
		check_fields(&def, reason, m->apB, s->segB, s->szB, "default handler", i);
		ck_assert_msg(fd[0].apid != fd[1].apid, "importer %d: fd form got apid %#llx twice", i, fd[0].apid);
		fa = fd[0].apid == m->apA ? &fd[0] : &fd[1];
		fb = fd[0].apid == m->apA ? &fd[1] : &fd[0];
		check_fields(fa, reason, m->apA, s->segA, SEG_A, "fd form (A)", i);
		check_fields(fb, reason, m->apB, s->segB, s->szB, "fd form (B)", i);
		ck_assert_msg(fa->seq == cb.seq && fb->seq == def.seq,
			      "importer %d: fd seqs %llu/%llu, callbacks %llu/%llu", i, fa->seq, fb->seq,
			      cb.seq, def.seq);
		ck_assert(cb.seq != def.seq);
		/* already revoked when the event was seen */
		ck_assert_msg(cb.probe == EFAULT && def.probe == EFAULT,
			      "importer %d: reading the attachment in the callback: %d/%d, want EFAULT %d "
			      "(memory still mapped when the event was delivered)", i, cb.probe, def.probe, EFAULT);
		ck_assert_msg(fa->probe == SIGBUS && fb->probe == SIGBUS,
			      "importer %d: touching the attachment right after uxpmem_revoke_poll: %d/%d, "
			      "want SIGBUS", i, fa->probe, fb->probe);
		unsigned long long w;
		ck_assert_int_eq(rd_word(&m->p, m->a1, &w), SIGBUS);
		ck_assert_int_eq(rd_word(&m->p, m->a2, &w), SIGBUS);
		ck_assert_int_eq(rd_word(&m->p, m->b1, &w), SIGBUS);
	}
}

void scen_teardown(struct scen *s)
{
	for (int i = 0; i < NIMP; i++) {
		struct imp *m = &s->im[i];
		rv_ok(&m->p, NULL, 0, "detach %#lx", m->a1);
		rv_ok(&m->p, NULL, 0, "detach %#lx", m->a2);
		rv_ok(&m->p, NULL, 0, "detach %#lx", m->b1);
		rv_ok(&m->p, NULL, 0, "release %lld", m->apA);
		rv_ok(&m->p, NULL, 0, "release %lld", m->apB);
		rv_stop(&m->p);
	}
	peer_kill(&s->e);
}
