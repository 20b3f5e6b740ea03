/*
 * fuzz_slip39.c: the SLIP-0039 mnemonic parser, on text as an officer or a
 * share file gives it.
 *
 * The input is read two ways. As a share file, by backup_share_parse (a
 * share sheet, or bare words), whose mnemonic then goes to slip39_decode.
 * And as a list of mnemonics, one a line (at most FUZZ_SLIP39_LINES), each
 * through slip39_decode; the shares that decode go together through
 * slip39_recover_ems, the combining steps before the passphrase (the
 * PBKDF2 of slip39_decrypt would only slow the fuzzer down).
 *
 * Besides the sanitizers it checks slip39.h's contract: a failed decode
 * wipes the share and fills diag with the code returned; a share that
 * decodes encodes back to the same words, in the canonical spelling of the
 * input (lowercase, single spaces), and that text decodes to the same
 * share; a failed recovery wipes the EMS; every diagnostic formats to one
 * NUL-terminated line.
 */
#include <string.h>

#include "backup_share.h"
#include "fuzz.h"
#include "keyd_err.h"
#include "slip39.h"

/* Mnemonics read from one input: several groups' worth, and few enough
 * that a line failing its checksum (slip39_decode then tries every
 * single-word correction) keeps an input fast. */
#define FUZZ_SLIP39_LINES 16

/* Not secret here: the fuzzer's shares are its own inventions. Static, as
 * they are large. */
static struct slip39_share shares[FUZZ_SLIP39_LINES];
static struct slip39_share again;
static struct backup_sheet sheet;
static char text[SLIP39_MAX_MNEMONIC_LEN];
static char canon[SLIP39_MAX_MNEMONIC_LEN];

static int
all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

static int
is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

/* The input spelled as slip39_encode writes it: lowercase words, single
 * spaces. Returns 0 if it does not fit (then it cannot have decoded). */
static int
canonical(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t o = 0, i = 0;

	while (i < n) {
		while (i < n && is_space(p[i]))
			i++;
		if (i == n)
			break;
		if (o > 0) {
			if (o + 1 >= cap)
				return 0;
			out[o++] = ' ';
		}
		for (; i < n && !is_space(p[i]); i++) {
			uint8_t c = p[i];

			if (o + 1 >= cap)
				return 0;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
	}
	out[o] = '\0';
	return 1;
}

static void
check_diag(const struct slip39_diag *diag, int r)
{
	char line[512];

	fuzz_check(diag->code == r);
	slip39_diag_format(diag, line, sizeof(line));
	fuzz_check(memchr(line, '\0', sizeof(line)) != NULL);
	fuzz_check(strchr(line, '\n') == NULL);
}

static int
same_share(const struct slip39_share *a, const struct slip39_share *b)
{
	return a->id == b->id && a->ext == b->ext &&
	    a->iteration_exp == b->iteration_exp &&
	    a->group_index == b->group_index &&
	    a->group_threshold == b->group_threshold &&
	    a->group_count == b->group_count &&
	    a->member_index == b->member_index &&
	    a->member_threshold == b->member_threshold &&
	    a->value_len == b->value_len &&
	    memcmp(a->value, b->value, a->value_len) == 0;
}

/* Decodes one mnemonic into *s; returns 1 if it decoded. */
static int
decode_one(const uint8_t *p, size_t n, int index, struct slip39_share *s)
{
	struct slip39_diag diag;
	int r;

	memset(s, 0xa5, sizeof(*s));
	r = slip39_decode((const char *)p, n, index, s, &diag);
	check_diag(&diag, r);
	fuzz_check(diag.share == index);
	if (r != KEYD_OK) {
		fuzz_check(r == KEYD_ERR_SHARE_FORMAT ||
		    r == KEYD_ERR_SHARE_CHECKSUM);
		fuzz_check(all_zero(s, sizeof(*s)));
		return 0;
	}
	fuzz_check(s->value_len >= SLIP39_MIN_SECRET_LEN &&
	    s->value_len <= SLIP39_MAX_SECRET_LEN && s->value_len % 2 == 0);
	fuzz_check(s->group_index < s->group_count &&
	    s->group_threshold <= s->group_count);
	/* Encode, compare with the input's own words, decode again. */
	fuzz_check(slip39_encode(s, text, sizeof(text)) == KEYD_OK);
	fuzz_check(canonical(p, n, canon, sizeof(canon)));
	fuzz_check(strcmp(text, canon) == 0);
	fuzz_check(slip39_decode(text, strlen(text), index, &again, NULL) ==
	    KEYD_OK);
	fuzz_check(same_share(s, &again));
	return 1;
}

static void
as_share_file(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	int r;

	memset(&sheet, 0xa5, sizeof(sheet));
	r = backup_share_parse(data, size, &sheet, &why);
	if (r != KEYD_OK) {
		fuzz_check(r == KEYD_ERR_SHARE_FORMAT && why != NULL);
		return;
	}
	fuzz_check(sheet.len < sizeof(sheet.mnemonic));
	(void)decode_one((const uint8_t *)sheet.mnemonic, sheet.len, 0,
	    &shares[0]);
}

static void
as_lines(const uint8_t *data, size_t size)
{
	struct slip39_ems ems;
	struct slip39_diag diag;
	size_t off = 0, n = 0, lines = 0;
	int r;

	while (off < size && lines < FUZZ_SLIP39_LINES) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) :
		    size - off;

		if (decode_one(data + off, len, (int)lines, &shares[n]))
			n++;
		lines++;
		off += len + 1;
	}
	if (n == 0)
		return;
	memset(&ems, 0xa5, sizeof(ems));
	r = slip39_recover_ems(shares, n, &ems, &diag);
	check_diag(&diag, r);
	if (r != KEYD_OK) {
		fuzz_check(all_zero(&ems, sizeof(ems)));
		return;
	}
	fuzz_check(ems.id == shares[0].id && ems.ext == shares[0].ext &&
	    ems.iteration_exp == shares[0].iteration_exp &&
	    ems.len == shares[0].value_len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_share_file(data, size);
	as_lines(data, size);
	return 0;
}
