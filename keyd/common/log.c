/* log.c: one line per message on stderr, written with a single write(2)
 * so that lines from different threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024

static enum log_level max_level = LOG_LVL_INFO;
static const char *log_prefix = "keyd";

void
log_set_level(enum log_level level)
{
	max_level = level;
}

void
log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

static void __attribute__((format(printf, 2, 0)))
vlog(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "", "debug" };
	char line[LOG_LINE_MAX];
	int n, m;

	if (level > max_level)
		return;
	if (level == LOG_LVL_INFO)
		n = snprintf(line, sizeof(line), "%s: ", log_prefix);
	else
		n = snprintf(line, sizeof(line), "%s: %s: ", log_prefix,
		    names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define DEFINE_LOG(fn, level)                   \
	void fn(const char *fmt, ...)           \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		vlog(level, fmt, ap);           \
		va_end(ap);                     \
	}

DEFINE_LOG(log_error, LOG_LVL_ERROR)
DEFINE_LOG(log_warn, LOG_LVL_WARN)
DEFINE_LOG(log_info, LOG_LVL_INFO)
DEFINE_LOG(log_debug, LOG_LVL_DEBUG)
