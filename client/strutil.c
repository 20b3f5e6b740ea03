/* strutil.c: making daemon-supplied text safe to show, and building text. */
#include "strutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"

/* Longest piece strutil_appendf formats in one go. */
#define STRUTIL_APPEND_MAX 4096u

void
strutil_printable(char *dst, size_t n, const char *src)
{
	size_t i;

	if (n == 0)
		return;
	if (src == NULL)
		src = "";
	for (i = 0; src[i] != '\0' && i + 1 < n; i++) {
		unsigned char ch = (unsigned char)src[i];

		/* No escape sequences, no invalid UTF-8 reach a terminal. */
		dst[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[i] = '\0';
	if (src[i] != '\0' && n >= 4)
		memcpy(dst + n - 4, "...", 4);
}

int
strutil_has_control(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return 1;
	}
	return 0;
}

int
strutil_appendf(struct kbuf *b, const char *fmt, ...)
{
	char tmp[STRUTIL_APPEND_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return KEYD_ERR_INTERNAL; /* callers bound their pieces */
	return kbuf_put(b, tmp, (size_t)n);
}

int
strutil_finish(struct kbuf *b, char **out)
{
	size_t n = kbuf_avail(b);
	char *s;

	*out = NULL;
	if ((s = malloc(n + 1)) == NULL)
		return KEYD_ERR_NOMEM;
	if (n > 0)
		memcpy(s, kbuf_ptr(b), n);
	s[n] = '\0';
	*out = s;
	return KEYD_OK;
}
