/* fuzz.h - the control-protocol fuzz targets (fuzz_proto.c), shared by the
 * libFuzzer build (tests/fuzz/run-fuzz.sh) and the corpus replay driver
 * (replay.c, a regular test of make check). */
#ifndef UXP_FUZZ_H
#define UXP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Targets:
 *   decode: byte 0 = number of descriptors (mod 34: 0..32 valid counts, 33 =
 *           one too many), the rest = one packet; uxp_msg_decode() against an
 *           independent oracle of proto.h, then the same packet through a
 *           SOCK_SEQPACKET socketpair (SCM_RIGHTS /dev/null descriptors) and
 *           uxp_msg_recv(), which must agree with the decoder.
 *   conn:   byte 0 = who we are (bit 0: 0 exporter / 1 importer, with two
 *           requests seq 1 and 2 waiting) and the peer's credentials
 *           (bits 1-2: our uid, root, another uid, another uid in our
 *           group), then records [h][len lo][len hi][len bytes]: h bits 0-5
 *           = descriptors sent with the packet (0-63), bit 6 = fix-up
 *           (segid 1..4 -> a real segment, grant 1..8 -> the n-th grant
 *           received); each packet is written into a socketpair whose other
 *           end is a real connection of the service thread's code
 *           (conn_event -> uxp_msg_recv -> direction check -> dispatch ->
 *           exporter.c / importer.c / deliver_reply); finally the peer
 *           closes. */
enum uxp_fuzz_target { UXP_FUZZ_DECODE, UXP_FUZZ_CONN };

/* Set up once (segments, fake arena, fake service).  0 or -errno. */
int uxp_fuzz_setup(void);
/* Select the target of LLVMFuzzerTestOneInput. */
void uxp_fuzz_select(enum uxp_fuzz_target t);
/* Count /proc/self/fd before and after every input (abort on a leak). */
extern int uxp_fuzz_fdcheck;

int uxp_fuzz_decode(const uint8_t *data, size_t size);
int uxp_fuzz_conn(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
