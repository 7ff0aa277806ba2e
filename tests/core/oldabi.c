/* oldabi.c - a plugin built for the first transport ABI (symbol
 * uxpmem_transport_v1): the loader must refuse it, saying so. */
#include "uxp.h"

static int old_probe(char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return 0;
}

UXP_EXPORT const struct { const char *name, *description; int (*probe)(char *, size_t); }
	uxpmem_transport_v1 = { "oldabi", "a plugin of transport ABI v1", old_probe };
