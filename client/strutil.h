/*
 * strutil.h: text helpers for libkeyd. Strings from the daemon are
 * untrusted: they are made printable before a caller or a terminal sees
 * them. Internal to libkeyd.
 */
#ifndef KEYD_CLIENT_STRUTIL_H
#define KEYD_CLIENT_STRUTIL_H

#include <stdarg.h>
#include <stddef.h>

#include "kbuf.h"

/* strutil_printable: copies src into dst[0..n) as printable ASCII: other
 * bytes become '?', and a string that does not fit ends in "...". dst is
 * always NUL-terminated (n must be at least 4). NULL src copies as "". */
void strutil_printable(char *dst, size_t n, const char *src);

/* strutil_has_control: 1 if s[0..len) holds an ASCII control byte (below
 * 0x20, or 0x7f), else 0. */
int strutil_has_control(const char *s, size_t len);

/* strutil_appendf: appends printf-formatted text (without its NUL) to b.
 * KEYD_OK, KEYD_ERR_FRAME_TOO_LARGE past b's maximum, KEYD_ERR_NOMEM. */
int strutil_appendf(struct kbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) KBUF_WUR;

/* strutil_finish: a malloc'ed, NUL-terminated copy of b's unread bytes in
 * *out (the caller frees it). KEYD_OK or KEYD_ERR_NOMEM. */
int strutil_finish(struct kbuf *b, char **out) KBUF_WUR;

#endif
