/* config.c - environment variables (all documented in xpmem(7)). */
#include <stdlib.h>
#include <ctype.h>
#include "uxp.h"

const char *uxp_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

uint64_t uxp_env_size(const char *name, uint64_t def)
{
	const char *v = uxp_env(name);
	if (!v)
		return def;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 0);
	if (errno || end == v || strtoll(v, NULL, 0) < 0) /* strtoull wraps "-1" */
		goto bad;
	unsigned shift = 0;
	switch (tolower((unsigned char)*end)) {
	case 't': shift += 10; /* fall through */
	case 'g': shift += 10; /* fall through */
	case 'm': shift += 10; /* fall through */
	case 'k': shift += 10; end++; break;
	case '\0': break;
	default: goto bad;
	}
	if (tolower((unsigned char)*end) == 'i')
		end++;
	if (tolower((unsigned char)*end) == 'b')
		end++;
	if (*end || (shift && n > (UINT64_MAX >> shift)))
		goto bad;
	return (uint64_t)n << shift;
bad:
	uxp_warn("core: ignoring %s=%s (not a size)", name, v);
	return def;
}

long uxp_env_long(const char *name, long def)
{
	const char *v = uxp_env(name);
	if (!v)
		return def;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 0);
	if (errno || end == v || *end) {
		uxp_warn("core: ignoring %s=%s (not an integer)", name, v);
		return def;
	}
	return n;
}
