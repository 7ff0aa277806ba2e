/* log.c - the library's log facility (XPMEM_LOG_LEVEL, XPMEM_LOG_FILE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <fcntl.h>
#include "uxp.h"

int uxp_log_level = UXP_LOG_ERROR;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
	"none", "error", "warn", "info", "debug", "trace",
};

static int parse_level(const char *s)
{
	for (unsigned i = 0; i < UXP_ARRAY_SIZE(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end && v >= UXP_LOG_NONE && v <= UXP_LOG_TRACE)
		return (int)v;
	return -1;
}

static void log_init_once(void)
{
	const char *lvl = uxp_env("XPMEM_LOG_LEVEL");
	const char *file = uxp_env("XPMEM_LOG_FILE");

	if (lvl) {
		int l = parse_level(lvl);
		if (l >= 0)
			uxp_log_level = l;
		else
			uxp_log_write(UXP_LOG_WARN, "core: ignoring XPMEM_LOG_LEVEL=%s "
				      "(want none|error|warn|info|debug|trace)", lvl);
	}
	if (file) {
		int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0)
			log_fd = fd;
		else
			uxp_log_write(UXP_LOG_WARN, "core: cannot open XPMEM_LOG_FILE=%s: %s",
				      file, strerror(errno));
	}
}

/* Idempotent: selection and the plugin loader both call it. */
void uxp_log_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, log_init_once);
}

/* One write(2) per line so lines of concurrent threads and processes do not
 * interleave; no stdio, no malloc (usable from the service thread and
 * after fork).  errno is preserved. */
void uxp_log_write(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	uxp_log_vwrite(level, fmt, ap);
	va_end(ap);
}

void uxp_log_vwrite(int level, const char *fmt, va_list ap)
{
	char buf[1024];
	int saved = errno;
	int n = snprintf(buf, sizeof(buf), "uxpmem[%d] %s: ", (int)getpid(),
			 level_names[level < 0 ? 0 : level > UXP_LOG_TRACE ? UXP_LOG_TRACE : level]);
	if (n > 0 && (size_t)n < sizeof(buf))
		n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(buf) - 1)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t UXP_UNUSED w = write(log_fd, buf, (size_t)n);
	errno = saved;
}
