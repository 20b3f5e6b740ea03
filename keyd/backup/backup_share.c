/* backup_share.c: share sheets and reading shares back. */
#include "backup_share.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "secmem.h"

/* Words a row of the numbered table on a sheet. */
#define SHEET_WORDS_PER_ROW 4
/* Room for one formatted line of a sheet (not the mnemonic line). */
#define SHEET_MAX_LINE 512
/* The bytes of the set id that name share files. */
#define SHEET_NAME_ID_BYTES 4
/* Field names a program reads from a sheet. */
#define FIELD_MNEMONIC "mnemonic:"
#define FIELD_FINGERPRINT "bundle-fingerprint:"
#define FIELD_SET_ID "set-id:"

#define WUR BACKUP_SHARE_WUR

static int
is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
backup_share_hex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	struct kbuf rd;
	size_t digits = 0;
	uint8_t c = 0;
	int v;

	kbuf_view(&rd, s, slen);
	while (kbuf_get_u8(&rd, &c) == KEYD_OK) {
		if (is_blank(c) || c == ':')
			continue;
		if ((v = hexval(c)) < 0 || digits >= 2 * n)
			return 0;
		if (digits % 2 == 0)
			out[digits / 2] = (uint8_t)(v << 4);
		else
			out[digits / 2] |= (uint8_t)v;
		digits++;
	}
	return digits == 2 * n;
}

/* A line without leading blanks: does it start with field? Then *val is
 * the rest (leading blanks skipped). */
static int
field(const uint8_t *line, size_t len, const char *name, const uint8_t **val,
    size_t *vlen)
{
	size_t n = strlen(name);

	if (len < n || memcmp(line, name, n) != 0)
		return 0;
	line += n;
	len -= n;
	while (len > 0 && is_blank(*line)) {
		line++;
		len--;
	}
	*val = line;
	*vlen = len;
	return 1;
}

int
backup_share_parse(const uint8_t *data, size_t len, struct backup_sheet *out,
    const char **why)
{
	struct kbuf rd;
	const uint8_t *val;
	size_t vlen;
	int colon = memchr(data, ':', len) != NULL;

	secmem_wipe(out, sizeof(*out));
	*why = NULL;
	if (!colon) {
		/* Only the words, on one line or several. */
		if (len >= sizeof(out->mnemonic)) {
			*why = "it is too long to be one share";
			return KEYD_ERR_SHARE_FORMAT;
		}
		memcpy(out->mnemonic, data, len);
		out->len = len;
		return KEYD_OK;
	}
	kbuf_view(&rd, data, len);
	while (kbuf_avail(&rd) > 0) {
		const uint8_t *line = kbuf_ptr(&rd);
		size_t n = 0;
		uint8_t c = 0;

		while (kbuf_get_u8(&rd, &c) == KEYD_OK && c != '\n')
			n++;
		while (n > 0 && is_blank(*line)) {
			line++;
			n--;
		}
		if (field(line, n, FIELD_MNEMONIC, &val, &vlen)) {
			if (out->len > 0) {
				*why = "it has two mnemonic: lines";
				return KEYD_ERR_SHARE_FORMAT;
			}
			if (vlen == 0 || vlen >= sizeof(out->mnemonic)) {
				*why = "its mnemonic: line is empty or too long";
				return KEYD_ERR_SHARE_FORMAT;
			}
			memcpy(out->mnemonic, val, vlen);
			out->len = vlen;
		} else if (field(line, n, FIELD_FINGERPRINT, &val, &vlen)) {
			if (!backup_share_hex((const char *)val, vlen, out->fp,
			    sizeof(out->fp))) {
				*why = "its bundle-fingerprint: line is not 64 hex "
				    "digits";
				return KEYD_ERR_SHARE_FORMAT;
			}
			out->has_fp = 1;
		} else if (field(line, n, FIELD_SET_ID, &val, &vlen)) {
			if (!backup_share_hex((const char *)val, vlen,
			    out->set_id, sizeof(out->set_id))) {
				*why = "its set-id: line is not 32 hex digits";
				return KEYD_ERR_SHARE_FORMAT;
			}
			out->has_set_id = 1;
		}
	}
	if (out->len == 0) {
		*why = "it has no mnemonic: line (a share file is a share sheet "
		    "from keyd-backup create, or only the share's words)";
		return KEYD_ERR_SHARE_FORMAT;
	}
	return KEYD_OK;
}

char *
backup_share_file_name(const struct bundle *b, unsigned group,
    unsigned member, char *buf, size_t cap)
{
	char id[2 * SHEET_NAME_ID_BYTES + 1];

	snprintf(buf, cap, "share-%s-g%u-m%u.txt",
	    bundle_hex(b->set_id, SHEET_NAME_ID_BYTES, id), group, member);
	return buf;
}

static WUR int __attribute__((format(printf, 2, 3)))
putf(struct kbuf *w, const char *fmt, ...)
{
	char line[SHEET_MAX_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return KEYD_ERR_INTERNAL;
	n = kbuf_put(w, line, (size_t)n);
	secmem_wipe(line, sizeof(line));
	return n;
}

char *
backup_share_grouped_hex(const uint8_t *p, size_t n, char *out)
{
	char hex[2 * BUNDLE_HASH_LEN + 1];
	size_t o = 0;

	if (n > BUNDLE_HASH_LEN)
		n = BUNDLE_HASH_LEN;
	bundle_hex(p, n, hex);
	for (size_t i = 0; i < 2 * n; i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = ' ';
		out[o++] = hex[i];
	}
	out[o] = '\0';
	return out;
}

const char *
backup_share_next_word(const char **t, size_t *len)
{
	const char *w = *t;

	while (*w == ' ')
		w++;
	*len = strcspn(w, " ");
	*t = w + *len;
	if (*len == 0 || *len > SLIP39_WORD_MAX_LEN)
		return NULL;
	return w;
}

int
backup_share_sheet(struct kbuf *w, const struct bundle *b,
    const char *bundle_name, const struct slip39_mnemonic *m,
    const uint8_t c[BUNDLE_HASH_LEN], int passphrase)
{
	char set[2 * BUNDLE_SET_ID_LEN + 1], fp[3 * BUNDLE_HASH_LEN];
	char cm[3 * BUNDLE_HASH_LEN], when[64], word[SLIP39_WORD_MAX_LEN + 1];
	const char *t = m->text;
	time_t created = (time_t)b->created;
	struct tm tm;
	unsigned g = m->group_index, nwords = 0;
	const char *wp;
	size_t wl;
	int r;

	if (gmtime_r(&created, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		return KEYD_ERR_INTERNAL;
	for (const char *q = t; *q != '\0'; q++)
		if (*q != ' ' && (q == t || q[-1] == ' '))
			nwords++;
	if ((r = putf(w, "KEYD-BACKUP SHARE SHEET. SECRET: keep it sealed. Do "
	    "not copy, photograph\nor type it into a networked computer.\n\n"))
	    != KEYD_OK ||
	    (r = putf(w, "%s %s\n", FIELD_SET_ID,
	    bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, set))) != KEYD_OK ||
	    (r = putf(w, "created: %s\n", when)) != KEYD_OK ||
	    (r = putf(w, "bundle: %.200s\n", bundle_name)) != KEYD_OK ||
	    (r = putf(w, "%s %s\n", FIELD_FINGERPRINT,
	    backup_share_grouped_hex(b->fingerprint, BUNDLE_HASH_LEN, fp))) !=
	    KEYD_OK ||
	    (r = putf(w, "policy: %u of %u groups\n", b->group_threshold,
	    b->group_count)) != KEYD_OK)
		return r;
	for (unsigned i = 0; i < b->group_count; i++)
		if ((r = putf(w, "  group %u: %u of %u shares\n", i + 1,
		    b->member_threshold[i], b->member_count[i])) != KEYD_OK)
			return r;
	if ((r = putf(w, "share: group %u, member %u of %u\n", g + 1,
	    m->member_index + 1u, b->member_count[g])) != KEYD_OK ||
	    (r = putf(w, "share-commitment: %s\n",
	    backup_share_grouped_hex(c, BUNDLE_HASH_LEN, cm))) != KEYD_OK ||
	    (r = putf(w, "passphrase: %s\n", passphrase ? "needed (it is not "
	    "on any sheet)" : "none")) != KEYD_OK ||
	    (r = putf(w, "words: %u\n\n", nwords)) != KEYD_OK)
		return r;
	/* The numbered words, read aloud and checked one by one. */
	for (unsigned i = 1; (wp = backup_share_next_word(&t, &wl)) != NULL;
	    i++) {
		memcpy(word, wp, wl);
		word[wl] = '\0';
		r = putf(w, "%2u %-*s%s", i, SLIP39_WORD_MAX_LEN + 3, word,
		    i % SHEET_WORDS_PER_ROW == 0 || i == nwords ? "\n" : "");
		secmem_wipe(word, sizeof(word));
		if (r != KEYD_OK)
			return r;
	}
	if (wl > 0)
		return KEYD_ERR_INTERNAL;
	if ((r = putf(w, "\nCheck this share each year, alone, with:\n"
	    "  keyd-backup verify --bundle BUNDLE --bundle-fingerprint '<the "
	    "fingerprint above>' --share-file FILE\n\n")) != KEYD_OK ||
	    (r = kbuf_put(w, FIELD_MNEMONIC " ", sizeof(FIELD_MNEMONIC))) !=
	    KEYD_OK ||
	    (r = kbuf_put(w, m->text, strlen(m->text))) != KEYD_OK ||
	    (r = kbuf_put_u8(w, '\n')) != KEYD_OK)
		return r;
	return KEYD_OK;
}

int
backup_share_read_line(int fd, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	int tty = isatty(fd), restore = 0, r = KEYD_ERR_IO, too_long = 0;
	size_t n = 0;
	char c;
	ssize_t got;

	*len = 0;
	if (tty && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0)
			restore = 1;
	}
	/* One byte at a time: nothing beyond the line is taken from fd, and
	 * no stdio buffer keeps a copy of the share. */
	for (;;) {
		got = read(fd, &c, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0) {
			if (n == 0 && !too_long) {
				r = KEYD_ERR_CLOSED;
				goto out;
			}
			break;
		}
		if (c == '\n')
			break;
		if (n + 1 >= cap) {
			too_long = 1;
			continue;
		}
		buf[n++] = c;
	}
	c = 0;
	if (too_long) {
		secmem_wipe(buf, cap);
		r = KEYD_ERR_FRAME_TOO_LARGE;
		goto out;
	}
	buf[n] = '\0';
	*len = n;
	r = KEYD_OK;
out:
	if (restore) {
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	return r;
}
