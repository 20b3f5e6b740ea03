/*
 * log.h: the daemon's operational log (stderr, which systemd's journal
 * collects). Never pass a secret to these functions: PINs, key bytes,
 * shares and plaintexts must not reach a log line in any build.
 */
#ifndef KEYD_LOG_H
#define KEYD_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* log_set_level: messages above level are dropped (default INFO). */
void log_set_level(enum log_level level);
/* log_set_prefix: the program name put before every line ("keyd"). */
void log_set_prefix(const char *prefix);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* LOG_PLURAL(n): "s" unless n is 1, for "%zu key%s" in what people read. */
#define LOG_PLURAL(n) ((n) == 1 ? "" : "s")

#endif
