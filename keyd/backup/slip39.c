/*
 * slip39.c: SLIP-0039 mnemonics: the word list, the RS1024 checksum, the
 * share format, the Feistel encryption of the master secret, and the
 * two-level split and combine. Section names in comments are those of
 * slip-0039.md (the version with the extendable backup flag).
 */
#include "slip39.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kbuf.h"
#include "keyd_err.h"
#include "secmem.h"

/* Longest mnemonic text slip39_decode reads: the longest share with room
 * for generous whitespace (several blanks between words, CRLF). */
#define SLIP39_MAX_TEXT_LEN (SLIP39_MAX_MNEMONIC_LEN * 4)
/* "Encryption of the master secret": four rounds, 2500 << e iterations
 * of PBKDF2-HMAC-SHA256 in each. */
#define SLIP39_FEISTEL_ROUNDS 4
#define SLIP39_BASE_ITERATIONS 2500u
/* Salt prefix for ext = 0: "shamir" || id (two bytes, big-endian). */
#define SLIP39_SALT_TEXT "shamir"
#define SLIP39_SALT_PREFIX_LEN (sizeof(SLIP39_SALT_TEXT) - 1 + 2)
/* RS1024 customization strings ("Format of the share mnemonic"). */
#define SLIP39_CS_EXT0 "shamir"
#define SLIP39_CS_EXT1 "shamir_extendable"
/* Bits of each mnemonic word. */
#define SLIP39_RADIX_BITS 10
#define SLIP39_WORD_MASK 0x3ffu
/* Padding of the share value is at most 8 bits ("Combining the shares"). */
#define SLIP39_MAX_PADDING_BITS 8

/*
 * The word list, generated at configure time (keyd/backup.cmake) from
 * keyd/backup/slip39_wordlist.txt, a copy of satoshilabs/slips
 * slip-0039/wordlist.txt at commit 73c23acf (sha256
 * bcc4555340332d169718aed8bf31dd9d5248cb7da6e5d355140ef4f1e601eec3, checked
 * by CMake). Each row gives the word and the same letters packed
 * big-endian into 64 bits (zero-padded), which the constant-time lookups
 * compare in one operation a row.
 */
#define SLIP39_WORD(text, packed) text,
static const char wordlist[SLIP39_WORD_COUNT][SLIP39_WORD_MAX_LEN + 1] = {
#include "slip39_wordlist.inc"
};
#undef SLIP39_WORD
#define SLIP39_WORD(text, packed) packed,
static const uint64_t wordpack[SLIP39_WORD_COUNT] = {
#include "slip39_wordlist.inc"
};
#undef SLIP39_WORD

/* "Checksum": the generator of the RS1024 code, as in the specification. */
static const uint32_t rs1024_gen[10] = {
	0xe0e040, 0x1c1c080, 0x3838100, 0x7070200, 0xe0e0009,
	0x1c0c2412, 0x38086c24, 0x3090fc48, 0x21b1f890, 0x3f3f120,
};

#define WUR SLIP39_WUR

static void
diag_init(struct slip39_diag *d, int share)
{
	d->code = KEYD_OK;
	d->share = share;
	d->other = -1;
	d->word = -1;
	d->word_index = -1;
	d->group = -1;
	d->member = -1;
	d->need = -1;
	d->have = -1;
	d->field = NULL;
}

/* Returns code after recording it and the failed check in *d. */
static int
diag_fail(struct slip39_diag *d, int code, const char *field)
{
	d->code = code;
	d->field = field;
	return code;
}

const char *
slip39_word(unsigned index)
{
	if (index >= SLIP39_WORD_COUNT)
		return NULL;
	return wordlist[index];
}

int
slip39_passphrase_check(const char *passphrase, size_t len, size_t *bad_pos)
{
	size_t i;

	if (len > SLIP39_MAX_PASSPHRASE_LEN) {
		if (bad_pos != NULL)
			*bad_pos = SLIP39_MAX_PASSPHRASE_LEN;
		return KEYD_ERR_INVALID_ARG;
	}
	if (len > 0 && passphrase == NULL)
		return KEYD_ERR_INVALID_ARG;
	/* "Passphrase": printable ASCII only, code points 32 to 126. */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)passphrase[i];

		if (c < 32 || c > 126) {
			if (bad_pos != NULL)
				*bad_pos = i;
			return KEYD_ERR_INVALID_ARG;
		}
	}
	return KEYD_OK;
}

/* ---- word list ------------------------------------------------------ */

/*
 * Share words are secret, so a word is found by comparing it with all 1024
 * rows and keeping the match through masks, never by a search whose path
 * (or a table index) depends on the word. tok is tlen bytes; only the
 * length, which the text shows anyway, steers a branch.
 * Returns the word's index, or -1.
 */
static int
word_lookup(const uint8_t *tok, size_t tlen)
{
	uint64_t w = 0;
	unsigned bad = 0, found = 0, index = 0, i, k;

	if (tlen == 0 || tlen > SLIP39_WORD_MAX_LEN)
		return -1;
	for (k = 0; k < SLIP39_WORD_MAX_LEN; k++) {
		unsigned c = 0;

		if (k < tlen) {
			unsigned upper, lower;

			c = tok[k];
			upper = (unsigned)(c - 'A') < 26u;
			c |= upper << 5;
			lower = (unsigned)(c - 'a') < 26u;
			bad |= lower ^ 1u;
		}
		w = (w << 8) | c;
	}
	for (i = 0; i < SLIP39_WORD_COUNT; i++) {
		uint64_t d = w ^ wordpack[i];
		unsigned eq = (unsigned)(((d | (0 - d)) >> 63) ^ 1u);

		index |= i & (0u - eq);
		found |= eq;
	}
	secmem_wipe(&w, sizeof(w));
	if (bad != 0 || found == 0)
		return -1;
	return (int)index;
}

/* Copies word number index (secret) to out (SLIP39_WORD_MAX_LEN + 1
 * bytes, NUL-padded), reading every row so that the index does not choose
 * which memory is touched. */
static void
word_copy(unsigned index, char *out)
{
	uint64_t v = 0;
	unsigned i, k;

	for (i = 0; i < SLIP39_WORD_COUNT; i++) {
		uint32_t d = i ^ index;
		uint64_t eq = ((uint64_t)d - 1u) >> 63;  /* d == 0 */

		v |= wordpack[i] & (0 - eq);
	}
	for (k = 0; k < SLIP39_WORD_MAX_LEN; k++)
		out[k] = (char)((v >> (8 * (SLIP39_WORD_MAX_LEN - 1 - k))) &
		    0xff);
	out[SLIP39_WORD_MAX_LEN] = '\0';
	secmem_wipe(&v, sizeof(v));
}

unsigned
slip39_word_prefix(const char *prefix, size_t len, char *word)
{
	uint64_t w = 0, mask = 0, v = 0;
	unsigned bad = 0, count = 0, i, k;

	if (len == 0 || len > SLIP39_WORD_MAX_LEN) {
		secmem_wipe(word, SLIP39_WORD_MAX_LEN + 1);
		return 0;
	}
	/* As word_lookup: the letters packed big-endian, case folded by
	 * arithmetic; mask keeps the first len bytes of each row. */
	for (k = 0; k < SLIP39_WORD_MAX_LEN; k++) {
		unsigned c = 0, m = 0;

		if (k < len) {
			unsigned upper, lower;

			c = (unsigned char)prefix[k];
			upper = (unsigned)(c - 'A') < 26u;
			c |= upper << 5;
			lower = (unsigned)(c - 'a') < 26u;
			bad |= lower ^ 1u;
			m = 0xff;
		}
		w = (w << 8) | c;
		mask = (mask << 8) | m;
	}
	for (i = 0; i < SLIP39_WORD_COUNT; i++) {
		uint64_t d = (w ^ wordpack[i]) & mask;
		unsigned eq = (unsigned)(((d | (0 - d)) >> 63) ^ 1u);

		count += eq;
		v |= wordpack[i] & (0 - (uint64_t)eq);
	}
	if (bad != 0)
		count = 0;
	if (count == 1) {
		for (k = 0; k < SLIP39_WORD_MAX_LEN; k++)
			word[k] = (char)((v >> (8 * (SLIP39_WORD_MAX_LEN - 1 -
			    k))) & 0xff);
		word[SLIP39_WORD_MAX_LEN] = '\0';
	} else {
		secmem_wipe(word, SLIP39_WORD_MAX_LEN + 1);
	}
	secmem_wipe(&w, sizeof(w));
	secmem_wipe(&v, sizeof(v));
	return count;
}

/* ---- RS1024 ----------------------------------------------------------- */

/* One step of rs1024_polymod, with the generator picked by masks since the
 * values are share words. */
static uint32_t
rs1024_step(uint32_t chk, uint32_t v)
{
	uint32_t b = chk >> 20;
	int i;

	chk = ((chk & 0xfffffu) << SLIP39_RADIX_BITS) ^ v;
	for (i = 0; i < 10; i++)
		chk ^= rs1024_gen[i] & (0u - ((b >> i) & 1u));
	return chk;
}

/* The state after the customization string for ext. */
static uint32_t
rs1024_start(int ext)
{
	const char *cs = ext ? SLIP39_CS_EXT1 : SLIP39_CS_EXT0;
	uint32_t chk = 1;

	for (; *cs != '\0'; cs++)
		chk = rs1024_step(chk, (uint32_t)(unsigned char)*cs);
	return chk;
}

static uint32_t
rs1024_run(uint32_t chk, const uint16_t *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		chk = rs1024_step(chk, v[i]);
	return chk;
}

static int
ext_of(const uint16_t *words)
{
	/* Word 1 holds the last 5 bits of the id, ext, then e (4 bits). */
	return (words[1] >> 4) & 1;
}

static int
rs1024_verify(const uint16_t *words, size_t n)
{
	return rs1024_run(rs1024_start(ext_of(words)), words, n) == 1;
}

/* Fills the last SLIP39_CHECKSUM_WORDS of words[0 .. n). */
static void
rs1024_create(uint16_t *words, size_t n)
{
	size_t data = n - SLIP39_CHECKSUM_WORDS, i;
	uint32_t chk = rs1024_run(rs1024_start(ext_of(words)), words, data);

	for (i = 0; i < SLIP39_CHECKSUM_WORDS; i++)
		chk = rs1024_step(chk, 0);
	chk ^= 1;
	for (i = 0; i < SLIP39_CHECKSUM_WORDS; i++)
		words[data + i] = (uint16_t)((chk >> (SLIP39_RADIX_BITS *
		    (SLIP39_CHECKSUM_WORDS - 1 - i))) & SLIP39_WORD_MASK);
}

/*
 * The position of the word that, replaced by some other word, makes the
 * checksum valid, or -1. RS1024 has minimum distance 4, so when one word
 * is wrong exactly one position (and one replacement) fixes it. Only the
 * position is reported: the specification (design rationale 5) warns
 * against suggesting corrections.
 *
 * rs1024_step(chk, v) is A(chk) xor v with A linear over GF(2), so xoring
 * word p with d changes the final state by A^(n-1-p)(d). With
 * syn = polymod(words) xor 1, position p can be fixed iff some d in
 * 1 .. 1023 has A^(n-1-p)(d) = syn: the images of the ten bits of d are
 * carried along and all d are tried in Gray-code order, one xor each.
 * Word 1 holds ext, which picks the customization string, so it is
 * tried the slow way: each replacement checksummed from its prefix.
 */
static int
rs1024_locate(const uint16_t *words, size_t n)
{
	uint32_t img[SLIP39_RADIX_BITS], syn, pre[2] = { 0, 0 };
	int ext = ext_of(words), found = -1, b, e;
	size_t p, q;
	unsigned d;

	syn = rs1024_run(rs1024_start(ext), words, n) ^ 1u;
	for (b = 0; b < SLIP39_RADIX_BITS; b++)
		img[b] = 1u << b;
	for (p = n; p-- > 0 && found < 0;) {
		if (p == 1) {
			for (e = 0; e < 2; e++)
				pre[e] = rs1024_step(rs1024_start(e), words[0]);
			for (d = 0; d < SLIP39_WORD_COUNT && found < 0; d++) {
				uint32_t chk;

				if (d == words[1])
					continue;
				chk = rs1024_step(pre[(d >> 4) & 1], d);
				for (q = 2; q < n; q++)
					chk = rs1024_step(chk, words[q]);
				if (chk == 1)
					found = 1;
			}
		} else {
			uint32_t acc = 0;

			for (d = 1; d < SLIP39_WORD_COUNT; d++) {
				acc ^= img[__builtin_ctz(d)];
				if (acc == syn) {
					found = (int)p;
					break;
				}
			}
		}
		for (b = 0; b < SLIP39_RADIX_BITS; b++)
			img[b] = rs1024_step(img[b], 0);
	}
	secmem_wipe(&syn, sizeof(syn));
	secmem_wipe(pre, sizeof(pre));
	return found;
}

/* ---- share <-> words -------------------------------------------------- */

/* Splits text into word-list indices. Everything is read through a
 * bounded kbuf view; a token longer than a word is not a word. */
static WUR int
text_to_words(const char *text, size_t len, uint16_t *words, size_t *nwords,
    struct slip39_diag *d)
{
	struct kbuf b;
	uint8_t tok[SLIP39_WORD_MAX_LEN];
	size_t tlen = 0, n = 0;
	int too_long = 0, r = KEYD_OK;

	*nwords = 0;
	if (len > SLIP39_MAX_TEXT_LEN)
		return diag_fail(d, KEYD_ERR_SHARE_FORMAT, "too long");
	kbuf_view(&b, text, len);
	for (;;) {
		uint8_t c = 0;
		int end = kbuf_get_u8(&b, &c) != KEYD_OK;
		int idx;

		if (!end && c != ' ' && c != '\t' && c != '\n' && c != '\r' &&
		    c != '\v' && c != '\f') {
			if (tlen < sizeof(tok))
				tok[tlen++] = c;
			else
				too_long = 1;
			continue;
		}
		if (tlen > 0) {
			if (n >= SLIP39_MAX_WORDS) {
				d->have = (int)n + 1;
				r = diag_fail(d, KEYD_ERR_SHARE_FORMAT,
				    "length");
				goto out;
			}
			idx = too_long ? -1 : word_lookup(tok, tlen);
			if (idx < 0) {
				d->word = (int)n;
				r = diag_fail(d, KEYD_ERR_SHARE_FORMAT, "word");
				goto out;
			}
			words[n++] = (uint16_t)idx;
			tlen = 0;
			too_long = 0;
		}
		if (end)
			break;
	}
	*nwords = n;
out:
	secmem_wipe(tok, sizeof(tok));
	if (r != KEYD_OK)
		secmem_wipe(words, SLIP39_MAX_WORDS * sizeof(*words));
	return r;
}

/* The share value, left-padded with zero bits to whole words, big-endian
 * ("Format of the share mnemonic"). Writes ceil(8 len / 10) words. */
static size_t
value_to_words(const uint8_t *v, size_t len, uint16_t *w)
{
	size_t nw = (len * 8 + SLIP39_RADIX_BITS - 1) / SLIP39_RADIX_BITS;
	unsigned bits = (unsigned)(nw * SLIP39_RADIX_BITS - len * 8);
	uint32_t acc = 0;
	size_t i, k = 0;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | v[i];
		bits += 8;
		while (bits >= SLIP39_RADIX_BITS) {
			w[k++] = (uint16_t)((acc >> (bits - SLIP39_RADIX_BITS)) &
			    SLIP39_WORD_MASK);
			bits -= SLIP39_RADIX_BITS;
			acc &= (1u << bits) - 1u;
		}
	}
	secmem_wipe(&acc, sizeof(acc));
	return k;
}

/* The inverse of value_to_words for nw words (padding already known to
 * be at most 8 bits). Returns KEYD_OK or KEYD_ERR_SHARE_FORMAT if a
 * padding bit is set ("All padding bits MUST be 0"). */
static WUR int
words_to_value(const uint16_t *w, size_t nw, uint8_t *v, size_t *len)
{
	unsigned pad = (unsigned)((nw * SLIP39_RADIX_BITS) % 16);
	unsigned bits = 0;
	uint32_t acc = 0;
	size_t i, k = 0;

	*len = 0;
	/* The padding is not secret: a valid share always has zeros here. */
	if ((w[0] >> (SLIP39_RADIX_BITS - pad)) != 0)
		return KEYD_ERR_SHARE_FORMAT;
	for (i = 0; i < nw; i++) {
		acc = (acc << SLIP39_RADIX_BITS) | w[i];
		bits += SLIP39_RADIX_BITS;
		if (i == 0) {
			bits -= pad;
			acc &= (1u << bits) - 1u;
		}
		while (bits >= 8) {
			v[k++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
			acc &= (1u << bits) - 1u;
		}
	}
	secmem_wipe(&acc, sizeof(acc));
	*len = k;
	return KEYD_OK;
}

/* The name of the first field of s that is out of range, or NULL. */
static const char *
share_field_error(const struct slip39_share *s)
{
	if (s->id > SLIP39_MAX_ID)
		return "identifier";
	if (s->ext > 1)
		return "extendable flag";
	if (s->iteration_exp > SLIP39_MAX_ITERATION_EXP)
		return "iteration exponent";
	if (s->group_count < 1 || s->group_count > SLIP39_MAX_GROUPS)
		return "group count";
	if (s->group_threshold < 1 || s->group_threshold > s->group_count)
		return "group threshold";
	if (s->group_index >= s->group_count)
		return "group index";
	if (s->member_threshold < 1 ||
	    s->member_threshold > SLIP39_MAX_MEMBERS)
		return "member threshold";
	if (s->member_index >= SLIP39_MAX_MEMBERS)
		return "member index";
	if (s->value_len < SLIP39_MIN_SECRET_LEN ||
	    s->value_len > SLIP39_MAX_SECRET_LEN || s->value_len % 2 != 0)
		return "length";
	return NULL;
}

int
slip39_decode(const char *text, size_t len, int index,
    struct slip39_share *share, struct slip39_diag *diag)
{
	struct slip39_diag local;
	uint16_t words[SLIP39_MAX_WORDS];
	size_t n = 0, nvalue;
	uint32_t id_exp = 0, params = 0;
	int r;

	if (diag == NULL)
		diag = &local;
	diag_init(diag, index);
	if (share == NULL || (text == NULL && len > 0))
		return diag_fail(diag, KEYD_ERR_INVALID_ARG, NULL);
	memset(share, 0, sizeof(*share));

	if ((r = text_to_words(text, len, words, &n, diag)) != KEYD_OK)
		goto out;
	if (n == 0) {
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "empty");
		goto out;
	}
	/* Length rules: at least 20 words (a 128-bit secret) and at most 8
	 * bits of padding, so the value is a whole number of 16-bit units
	 * written in as few words as possible. */
	diag->have = (int)n;
	if (n < SLIP39_MIN_WORDS ||
	    ((n - SLIP39_METADATA_WORDS) * SLIP39_RADIX_BITS) % 16 >
	    SLIP39_MAX_PADDING_BITS) {
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "length");
		goto out;
	}
	diag->have = -1;
	if (!rs1024_verify(words, n)) {
		diag->word = rs1024_locate(words, n);
		if (diag->word >= 0)
			diag->word_index = words[diag->word];
		r = diag_fail(diag, KEYD_ERR_SHARE_CHECKSUM, "checksum");
		goto out;
	}

	id_exp = ((uint32_t)words[0] << SLIP39_RADIX_BITS) | words[1];
	params = ((uint32_t)words[2] << SLIP39_RADIX_BITS) | words[3];
	share->id = (uint16_t)(id_exp >> 5);
	share->ext = (uint8_t)((id_exp >> 4) & 1);
	share->iteration_exp = (uint8_t)(id_exp & 0xf);
	share->group_index = (uint8_t)((params >> 16) & 0xf);
	share->group_threshold = (uint8_t)(((params >> 12) & 0xf) + 1);
	share->group_count = (uint8_t)(((params >> 8) & 0xf) + 1);
	share->member_index = (uint8_t)((params >> 4) & 0xf);
	share->member_threshold = (uint8_t)((params & 0xf) + 1);
	if (share->group_threshold > share->group_count) {
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "group threshold");
		goto out;
	}
	/* Not in the specification's list, but a group index at or above the
	 * group count is never produced by GenerateShares. */
	if (share->group_index >= share->group_count) {
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "group index");
		goto out;
	}

	nvalue = n - SLIP39_METADATA_WORDS;
	if (words_to_value(words + 4, nvalue, share->value,
	    &share->value_len) != KEYD_OK) {
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "padding");
		goto out;
	}
	if (share_field_error(share) != NULL) {
		/* Unreachable given the length rules; kept as a guard. */
		r = diag_fail(diag, KEYD_ERR_SHARE_FORMAT, "length");
		goto out;
	}
	r = KEYD_OK;
out:
	secmem_wipe(words, sizeof(words));
	secmem_wipe(&id_exp, sizeof(id_exp));
	secmem_wipe(&params, sizeof(params));
	if (r != KEYD_OK)
		secmem_wipe(share, sizeof(*share));
	return r;
}

/* The word indices of *s (a checked share). Returns the word count. */
static size_t
share_to_words(const struct slip39_share *s, uint16_t *w)
{
	uint32_t id_exp = ((uint32_t)s->id << 5) | ((uint32_t)s->ext << 4) |
	    s->iteration_exp;
	uint32_t params = ((uint32_t)s->group_index << 16) |
	    ((uint32_t)(s->group_threshold - 1) << 12) |
	    ((uint32_t)(s->group_count - 1) << 8) |
	    ((uint32_t)s->member_index << 4) | (uint32_t)(s->member_threshold - 1);
	size_t n;

	w[0] = (uint16_t)(id_exp >> SLIP39_RADIX_BITS);
	w[1] = (uint16_t)(id_exp & SLIP39_WORD_MASK);
	w[2] = (uint16_t)(params >> SLIP39_RADIX_BITS);
	w[3] = (uint16_t)(params & SLIP39_WORD_MASK);
	n = 4 + value_to_words(s->value, s->value_len, w + 4);
	n += SLIP39_CHECKSUM_WORDS;
	rs1024_create(w, n);
	return n;
}

int
slip39_encode(const struct slip39_share *share, char *out, size_t cap)
{
	uint16_t words[SLIP39_MAX_WORDS];
	char word[SLIP39_WORD_MAX_LEN + 1];
	size_t n, i, k, pos = 0;
	int r = KEYD_ERR_INVALID_ARG;

	if (share == NULL || out == NULL || cap == 0)
		return KEYD_ERR_INVALID_ARG;
	if (share_field_error(share) != NULL)
		goto out;
	n = share_to_words(share, words);
	for (i = 0; i < n; i++) {
		word_copy(words[i], word);
		if (i > 0) {
			if (pos + 1 >= cap) {
				r = KEYD_ERR_BUFFER_TOO_SMALL;
				goto out;
			}
			out[pos++] = ' ';
		}
		for (k = 0; k < SLIP39_WORD_MAX_LEN && word[k] != '\0'; k++) {
			if (pos + 1 >= cap) {
				r = KEYD_ERR_BUFFER_TOO_SMALL;
				goto out;
			}
			out[pos++] = word[k];
		}
	}
	out[pos] = '\0';
	r = KEYD_OK;
out:
	secmem_wipe(words, sizeof(words));
	secmem_wipe(word, sizeof(word));
	if (r != KEYD_OK)
		secmem_wipe(out, cap);
	return r;
}

/* ---- encryption of the master secret ---------------------------------- */

/*
 * The Feistel network of "Encryption of the master secret": L and R are the
 * halves, and each round does (L, R) = (R, L xor F(i, R)) with
 * F(i, R) = PBKDF2-HMAC-SHA256(password = i || passphrase,
 *                             salt = salt_prefix || R,
 *                             iterations = 2500 << e, dkLen = n / 2).
 * Encryption runs i = 0, 1, 2, 3 and decryption i = 3, 2, 1, 0; both
 * output R || L. in and out may be the same buffer.
 */
static WUR int
feistel(const uint8_t *in, size_t len, const char *passphrase,
    size_t passlen, uint16_t id, int ext, unsigned iteration_exp,
    int decrypt, uint8_t *out)
{
	uint8_t *mem = NULL, *l, *rr, *f, *pw, *salt;
	size_t half = len / 2, memlen = 0, prefix = 0, k;
	int round, r = KEYD_ERR_INVALID_ARG;

	if (in == NULL || out == NULL || len < SLIP39_MIN_SECRET_LEN ||
	    len > SLIP39_MAX_SECRET_LEN || len % 2 != 0 ||
	    iteration_exp > SLIP39_MAX_ITERATION_EXP || id > SLIP39_MAX_ID ||
	    (ext != 0 && ext != 1) ||
	    slip39_passphrase_check(passphrase, passlen, NULL) != KEYD_OK)
		return KEYD_ERR_INVALID_ARG;

	memlen = 3 * half + 1 + passlen + SLIP39_SALT_PREFIX_LEN + half;
	if ((mem = secmem_alloc(memlen)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	l = mem;
	rr = l + half;
	f = rr + half;
	pw = f + half;
	salt = pw + 1 + passlen;

	if (passlen > 0)
		memcpy(pw + 1, passphrase, passlen);
	if (ext == 0) {
		/* salt_prefix = "shamir" || id, id big-endian. */
		memcpy(salt, SLIP39_SALT_TEXT, sizeof(SLIP39_SALT_TEXT) - 1);
		prefix = sizeof(SLIP39_SALT_TEXT) - 1;
		salt[prefix++] = (uint8_t)(id >> 8);
		salt[prefix++] = (uint8_t)(id & 0xff);
	}
	memcpy(l, in, half);
	memcpy(rr, in + half, half);
	for (round = 0; round < SLIP39_FEISTEL_ROUNDS; round++) {
		int i = decrypt ? SLIP39_FEISTEL_ROUNDS - 1 - round : round;

		pw[0] = (uint8_t)i;
		memcpy(salt + prefix, rr, half);
		if (PKCS5_PBKDF2_HMAC((const char *)pw, (int)(1 + passlen),
		    salt, (int)(prefix + half),
		    (int)(SLIP39_BASE_ITERATIONS << iteration_exp),
		    EVP_sha256(), (int)half, f) != 1) {
			r = KEYD_ERR_CRYPTO;
			goto out;
		}
		for (k = 0; k < half; k++)
			f[k] ^= l[k];
		memcpy(l, rr, half);
		memcpy(rr, f, half);
	}
	memcpy(out, rr, half);
	memcpy(out + half, l, half);
	r = KEYD_OK;
out:
	secmem_free(mem, memlen);
	if (r != KEYD_OK)
		secmem_wipe(out, len);
	return r;
}

int
slip39_encrypt(const uint8_t *ms, size_t len, const char *passphrase,
    size_t passlen, uint16_t id, int ext, unsigned iteration_exp,
    struct slip39_ems *ems)
{
	int r;

	if (ems == NULL)
		return KEYD_ERR_INVALID_ARG;
	memset(ems, 0, sizeof(*ems));
	if ((r = feistel(ms, len, passphrase, passlen, id, ext, iteration_exp,
	    0, ems->value)) != KEYD_OK) {
		secmem_wipe(ems, sizeof(*ems));
		return r;
	}
	ems->id = id;
	ems->ext = (uint8_t)ext;
	ems->iteration_exp = (uint8_t)iteration_exp;
	ems->len = len;
	return KEYD_OK;
}

int
slip39_decrypt(const struct slip39_ems *ems, const char *passphrase,
    size_t passlen, uint8_t *ms)
{
	if (ems == NULL || ems->len > SLIP39_MAX_SECRET_LEN)
		return KEYD_ERR_INVALID_ARG;
	return feistel(ems->value, ems->len, passphrase, passlen, ems->id,
	    ems->ext, ems->iteration_exp, 1, ms);
}

/* ---- splitting --------------------------------------------------------- */

/* The rules of SplitSecret and GenerateShares step 1 for a policy. */
static int
policy_ok(unsigned group_threshold, const struct slip39_group *groups,
    size_t group_count)
{
	size_t i;

	if (groups == NULL || group_count < 1 ||
	    group_count > SLIP39_MAX_GROUPS || group_threshold < 1 ||
	    group_threshold > group_count)
		return 0;
	for (i = 0; i < group_count; i++) {
		unsigned t = groups[i].member_threshold;
		unsigned c = groups[i].member_count;

		if (t < 1 || t > c || c > SLIP39_MAX_MEMBERS)
			return 0;
		/* "If T_i = 1 and N_i > 1 for any i, then abort." */
		if (t == 1 && c > 1)
			return 0;
	}
	return 1;
}

void
slip39_mnemonics_free(struct slip39_mnemonic *m, size_t count)
{
	secmem_free(m, count * sizeof(*m));
}

int
slip39_split_ems(const struct slip39_ems *ems, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count,
    struct slip39_mnemonic **out, size_t *count)
{
	struct slip39_mnemonic *m = NULL;
	struct slip39_share *share = NULL;
	uint8_t *gshares = NULL, *mshares = NULL;
	size_t total = 0, k = 0, g, j, len = 0;
	int r = KEYD_ERR_INVALID_ARG;

	if (out == NULL || count == NULL)
		return KEYD_ERR_INVALID_ARG;
	*out = NULL;
	*count = 0;
	if (ems == NULL || !policy_ok(group_threshold, groups, group_count) ||
	    ems->len < SLIP39_MIN_SECRET_LEN ||
	    ems->len > SLIP39_MAX_SECRET_LEN || ems->len % 2 != 0 ||
	    ems->id > SLIP39_MAX_ID || ems->ext > 1 ||
	    ems->iteration_exp > SLIP39_MAX_ITERATION_EXP)
		return KEYD_ERR_INVALID_ARG;
	len = ems->len;
	for (g = 0; g < group_count; g++)
		total += groups[g].member_count;  /* <= 16 * 16 */

	if ((m = secmem_alloc(total * sizeof(*m))) == NULL ||
	    (share = secmem_alloc(sizeof(*share))) == NULL ||
	    (gshares = secmem_alloc(group_count * len)) == NULL ||
	    (mshares = secmem_alloc(SLIP39_MAX_MEMBERS * len)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	/* GenerateShares step 5: the group shares. */
	if ((r = shamir_split(group_threshold, (unsigned)group_count,
	    ems->value, len, gshares)) != KEYD_OK)
		goto out;
	for (g = 0; g < group_count; g++) {
		/* Step 6: each group share split among the members. */
		if ((r = shamir_split(groups[g].member_threshold,
		    groups[g].member_count, gshares + g * len, len,
		    mshares)) != KEYD_OK)
			goto out;
		/* Step 7: (id, ext, e, i - 1, GT - 1, j - 1, T_i - 1, s_ij);
		 * struct slip39_share holds the actual values, not minus 1. */
		for (j = 0; j < groups[g].member_count; j++) {
			share->id = ems->id;
			share->ext = ems->ext;
			share->iteration_exp = ems->iteration_exp;
			share->group_index = (uint8_t)g;
			share->group_threshold = (uint8_t)group_threshold;
			share->group_count = (uint8_t)group_count;
			share->member_index = (uint8_t)j;
			share->member_threshold =
			    (uint8_t)groups[g].member_threshold;
			share->value_len = len;
			memcpy(share->value, mshares + j * len, len);
			m[k].group_index = (uint8_t)g;
			m[k].member_index = (uint8_t)j;
			if ((r = slip39_encode(share, m[k].text,
			    sizeof(m[k].text))) != KEYD_OK)
				goto out;
			k++;
		}
	}
	*out = m;
	*count = total;
	m = NULL;
	r = KEYD_OK;
out:
	slip39_mnemonics_free(m, total);
	secmem_free(share, sizeof(*share));
	secmem_free(gshares, group_count * len);
	secmem_free(mshares, SLIP39_MAX_MEMBERS * len);
	return r;
}

int
slip39_split(const uint8_t *ms, size_t len, const char *passphrase,
    size_t passlen, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count, int ext,
    unsigned iteration_exp, struct slip39_mnemonic **out, size_t *count)
{
	struct slip39_ems *ems = NULL;
	uint8_t idb[2];
	uint16_t id;
	int r = KEYD_ERR_INVALID_ARG;

	if (out == NULL || count == NULL)
		return KEYD_ERR_INVALID_ARG;
	*out = NULL;
	*count = 0;
	if (!policy_ok(group_threshold, groups, group_count))
		return KEYD_ERR_INVALID_ARG;
	/* GenerateShares step 2: a random 15-bit identifier. It is public
	 * (the first words of every share), so RAND_bytes rather than
	 * RAND_priv_bytes; dropping the top bit keeps it uniform. */
	if (RAND_bytes(idb, sizeof(idb)) != 1)
		return KEYD_ERR_CRYPTO;
	id = (uint16_t)(((idb[0] << 8) | idb[1]) & SLIP39_MAX_ID);

	if ((ems = secmem_alloc(sizeof(*ems))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	if ((r = slip39_encrypt(ms, len, passphrase, passlen, id, ext,
	    iteration_exp, ems)) != KEYD_OK)
		goto out;
	r = slip39_split_ems(ems, group_threshold, groups, group_count, out,
	    count);
out:
	secmem_free(ems, sizeof(*ems));
	return r;
}

/* ---- combining --------------------------------------------------------- */

/* Which common parameter of a differs from b ("All shares MUST have the
 * same identifier id, extendable backup flag ext, iteration exponent e,
 * group threshold GT, group count G and length"), or NULL. */
static const char *
common_mismatch(const struct slip39_share *a, const struct slip39_share *b)
{
	if (a->id != b->id)
		return "identifier";
	if (a->ext != b->ext)
		return "extendable flag";
	if (a->iteration_exp != b->iteration_exp)
		return "iteration exponent";
	if (a->group_threshold != b->group_threshold)
		return "group threshold";
	if (a->group_count != b->group_count)
		return "group count";
	if (a->value_len != b->value_len)
		return "length";
	return NULL;
}

int
slip39_recover_ems(const struct slip39_share *shares, size_t n,
    struct slip39_ems *ems, struct slip39_diag *diag)
{
	struct slip39_diag local;
	uint8_t *mem = NULL, *ys, *gys;
	uint8_t xs[SLIP39_MAX_MEMBERS], gxs[SLIP39_MAX_GROUPS];
	int first[SLIP39_MAX_GROUPS], members[SLIP39_MAX_GROUPS];
	size_t memlen = 0, len, i, j, ngroups = 0;
	unsigned g, gt, gc;
	const char *bad;
	int r = KEYD_ERR_INVALID_ARG;

	if (diag == NULL)
		diag = &local;
	diag_init(diag, -1);
	if (ems == NULL || (shares == NULL && n > 0))
		return diag_fail(diag, KEYD_ERR_INVALID_ARG, NULL);
	memset(ems, 0, sizeof(*ems));
	if (n == 0) {
		diag->have = 0;
		return diag_fail(diag, KEYD_ERR_SHARE_TOO_FEW, "none");
	}
	if (n > SLIP39_MAX_SHARES)
		return diag_fail(diag, KEYD_ERR_INVALID_ARG, "too many");

	/* Each share on its own (a caller may build shares by hand). */
	for (i = 0; i < n; i++) {
		if ((bad = share_field_error(&shares[i])) != NULL) {
			diag->share = (int)i;
			return diag_fail(diag, KEYD_ERR_SHARE_FORMAT, bad);
		}
	}
	/* Step 1: the common parameters, then per group the member
	 * threshold and distinct member indices. */
	for (i = 1; i < n; i++) {
		if ((bad = common_mismatch(&shares[i], &shares[0])) != NULL) {
			diag->share = (int)i;
			diag->other = 0;
			return diag_fail(diag, KEYD_ERR_SHARE_MISMATCH, bad);
		}
	}
	for (i = 1; i < n; i++) {
		for (j = 0; j < i; j++) {
			if (shares[i].group_index != shares[j].group_index)
				continue;
			diag->share = (int)i;
			diag->other = (int)j;
			diag->group = shares[i].group_index;
			if (shares[i].member_threshold !=
			    shares[j].member_threshold)
				return diag_fail(diag, KEYD_ERR_SHARE_MISMATCH,
				    "member threshold");
			if (shares[i].member_index == shares[j].member_index) {
				diag->member = shares[i].member_index;
				return diag_fail(diag, KEYD_ERR_SHARE_DUPLICATE,
				    CRYPTO_memcmp(shares[i].value,
				    shares[j].value, shares[i].value_len) == 0 ?
				    "same share" : "member index");
			}
		}
	}
	diag->share = diag->other = diag->group = -1;

	gt = shares[0].group_threshold;
	gc = shares[0].group_count;
	len = shares[0].value_len;
	for (g = 0; g < SLIP39_MAX_GROUPS; g++) {
		first[g] = -1;
		members[g] = 0;
	}
	for (i = 0; i < n; i++) {
		g = shares[i].group_index;
		if (first[g] < 0) {
			first[g] = (int)i;
			ngroups++;
		}
		members[g]++;
	}
	/* Enough members in every group given, then enough groups. The
	 * specification wants exactly the thresholds; more are used too. */
	for (g = 0; g < SLIP39_MAX_GROUPS; g++) {
		const struct slip39_share *s;

		if (first[g] < 0)
			continue;
		s = &shares[first[g]];
		if (members[g] < s->member_threshold) {
			diag->share = first[g];
			diag->group = (int)g;
			diag->need = s->member_threshold;
			diag->have = members[g];
			return diag_fail(diag, KEYD_ERR_SHARE_TOO_FEW,
			    gc == 1 ? "shares" : "members");
		}
	}
	if (ngroups < gt) {
		diag->need = (int)gt;
		diag->have = (int)ngroups;
		return diag_fail(diag, KEYD_ERR_SHARE_TOO_FEW, "groups");
	}

	memlen = (SLIP39_MAX_MEMBERS + SLIP39_MAX_GROUPS) * len;
	if ((mem = secmem_alloc(memlen)) == NULL) {
		r = diag_fail(diag, KEYD_ERR_NOMEM, NULL);
		goto out;
	}
	ys = mem;
	gys = mem + SLIP39_MAX_MEMBERS * len;

	/* Step 2: each group's share from its members. */
	ngroups = 0;
	for (g = 0; g < SLIP39_MAX_GROUPS; g++) {
		size_t m = 0;

		if (first[g] < 0)
			continue;
		for (i = (size_t)first[g]; i < n; i++) {
			if (shares[i].group_index != g)
				continue;
			xs[m] = shares[i].member_index;
			memcpy(ys + m * len, shares[i].value, len);
			m++;
		}
		gxs[ngroups] = (uint8_t)g;
		r = shamir_recover(shares[first[g]].member_threshold, xs, ys,
		    m, len, gys + ngroups * len);
		secmem_wipe(ys, SLIP39_MAX_MEMBERS * len);
		if (r != KEYD_OK) {
			diag->share = first[g];
			diag->group = (int)g;
			r = diag_fail(diag, r, gc == 1 ? "shares" : "members");
			goto out;
		}
		ngroups++;
	}
	/* Step 3: the EMS from the group shares. */
	if ((r = shamir_recover(gt, gxs, gys, ngroups, len, ems->value)) !=
	    KEYD_OK) {
		r = diag_fail(diag, r, "groups");
		goto out;
	}
	ems->id = shares[0].id;
	ems->ext = shares[0].ext;
	ems->iteration_exp = shares[0].iteration_exp;
	ems->len = len;
	r = KEYD_OK;
out:
	secmem_free(mem, memlen);
	if (r != KEYD_OK)
		secmem_wipe(ems, sizeof(*ems));
	return r;
}

int
slip39_combine(const struct slip39_share *shares, size_t n,
    const char *passphrase, size_t passlen, uint8_t *ms, size_t cap,
    size_t *ms_len, struct slip39_diag *diag)
{
	struct slip39_diag local;
	struct slip39_ems *ems = NULL;
	int r = KEYD_ERR_INVALID_ARG;

	if (diag == NULL)
		diag = &local;
	diag_init(diag, -1);
	if (ms == NULL || ms_len == NULL)
		return diag_fail(diag, KEYD_ERR_INVALID_ARG, NULL);
	*ms_len = 0;
	if (slip39_passphrase_check(passphrase, passlen, NULL) != KEYD_OK) {
		r = diag_fail(diag, KEYD_ERR_INVALID_ARG, "passphrase");
		goto out;
	}
	if ((ems = secmem_alloc(sizeof(*ems))) == NULL) {
		r = diag_fail(diag, KEYD_ERR_NOMEM, NULL);
		goto out;
	}
	if ((r = slip39_recover_ems(shares, n, ems, diag)) != KEYD_OK)
		goto out;
	if (cap < ems->len) {
		r = diag_fail(diag, KEYD_ERR_BUFFER_TOO_SMALL, NULL);
		goto out;
	}
	/* Step 4. */
	if ((r = slip39_decrypt(ems, passphrase, passlen, ms)) != KEYD_OK) {
		r = diag_fail(diag, r, NULL);
		goto out;
	}
	*ms_len = ems->len;
	r = KEYD_OK;
out:
	secmem_free(ems, sizeof(*ems));
	if (r != KEYD_OK)
		secmem_wipe(ms, cap);
	return r;
}

/* ---- messages ---------------------------------------------------------- */

/* What a user can look at to see that a common parameter differs. */
static const char *
mismatch_hint(const char *field)
{
	if (field == NULL)
		return "";
	if (strcmp(field, "identifier") == 0 ||
	    strcmp(field, "extendable flag") == 0 ||
	    strcmp(field, "iteration exponent") == 0)
		return "; shares of one split begin with the same two words";
	if (strcmp(field, "group threshold") == 0 ||
	    strcmp(field, "group count") == 0)
		return "; shares of one split agree in their third word";
	if (strcmp(field, "length") == 0)
		return "; shares of one split have the same number of words";
	return "";
}

static int
field_is(const struct slip39_diag *d, const char *name)
{
	return d->field != NULL && strcmp(d->field, name) == 0;
}

char *
slip39_diag_format(const struct slip39_diag *d, char *buf, size_t cap)
{
	return slip39_diag_format_as(d, NULL, buf, cap);
}

char *
slip39_diag_format_as(const struct slip39_diag *d, const char *name,
    char *buf, size_t cap)
{
	/* "share 2147483647" and its NUL. */
	char num[24];
	const char *self;
	int s, o, more;

	if (buf == NULL || cap == 0)
		return buf;
	if (d == NULL) {
		snprintf(buf, cap, "unknown error");
		return buf;
	}
	s = d->share + 1;
	o = d->other + 1;
	snprintf(num, sizeof(num), "share %d", s);
	self = name != NULL ? name : num;
	more = d->need - d->have;
	switch (d->code) {
	case KEYD_OK:
		snprintf(buf, cap, "no error");
		break;
	case KEYD_ERR_SHARE_CHECKSUM:
		if (d->word >= 0 && slip39_word((unsigned)d->word_index) != NULL)
			snprintf(buf, cap, "%s: word %d (\"%s\") is "
			    "probably wrong: checksum does not match; compare "
			    "that word with the written share", self,
			    d->word + 1, slip39_word((unsigned)d->word_index));
		else
			snprintf(buf, cap, "%s: checksum does not match "
			    "and no single wrong word explains it; compare every "
			    "word and the word order with the written share",
			    self);
		break;
	case KEYD_ERR_SHARE_FORMAT:
		if (field_is(d, "word"))
			snprintf(buf, cap, "%s: word %d is not in the "
			    "SLIP-0039 word list; check its spelling against the "
			    "written share", self, d->word + 1);
		else if (field_is(d, "length") && d->have > 0)
			snprintf(buf, cap, "%s has %s%d words, which is "
			    "not a valid SLIP-0039 share length (20 words for a "
			    "128-bit secret, 33 for 256 bits); look for a missing "
			    "or extra word", self,
			    d->have > SLIP39_MAX_WORDS ? "more than " : "",
			    d->have > SLIP39_MAX_WORDS ? SLIP39_MAX_WORDS :
			    d->have);
		else if (field_is(d, "too long"))
			snprintf(buf, cap, "%s is too long to be a "
			    "SLIP-0039 share; give one share per line", self);
		else if (field_is(d, "empty"))
			snprintf(buf, cap, "%s is empty", self);
		else if (field_is(d, "padding"))
			snprintf(buf, cap, "%s is not valid: its padding "
			    "bits are not zero, so it was altered or made by a "
			    "faulty tool", self);
		else if (field_is(d, "group threshold"))
			snprintf(buf, cap, "%s is not valid: it needs more "
			    "groups than it says exist; it was altered or made "
			    "by a faulty tool", self);
		else if (field_is(d, "group index"))
			snprintf(buf, cap, "%s is not valid: its group "
			    "number is beyond its group count; it was altered or "
			    "made by a faulty tool", self);
		else
			snprintf(buf, cap, "%s is not valid: bad %s", self,
			    d->field != NULL ? d->field : "format");
		break;
	case KEYD_ERR_SHARE_MISMATCH:
		if (field_is(d, "member threshold"))
			snprintf(buf, cap, "%s does not fit with share %d: "
			    "both are in group %d but ask for different numbers "
			    "of shares; they come from different splits", self,
			    o, d->group + 1);
		else
			snprintf(buf, cap, "%s comes from a different "
			    "split than share %d (the %s differs)%s; combine "
			    "only shares of one split", self, o,
			    d->field != NULL ? d->field : "set",
			    mismatch_hint(d->field));
		break;
	case KEYD_ERR_SHARE_DUPLICATE:
		if (field_is(d, "same share"))
			snprintf(buf, cap, "%s is the same as share %d; "
			    "give each share only once", self, o);
		else
			snprintf(buf, cap, "%s and share %d are both "
			    "member %d of group %d; one of them is wrong or from "
			    "another split", self, o, d->member + 1,
			    d->group + 1);
		break;
	case KEYD_ERR_SHARE_TOO_FEW:
		if (field_is(d, "none"))
			snprintf(buf, cap, "no shares were given");
		else if (field_is(d, "shares"))
			snprintf(buf, cap, "%d of the %d shares needed were "
			    "given; add %d more", d->have, d->need, more);
		else if (field_is(d, "members"))
			snprintf(buf, cap, "group %d: %d of the %d shares it "
			    "needs were given (%s is one); add %d more "
			    "from that group", d->group + 1, d->have, d->need,
			    self, more);
		else
			snprintf(buf, cap, "shares of %d of the %d groups "
			    "needed were given; add shares of %d more group%s",
			    d->have, d->need, more, more == 1 ? "" : "s");
		break;
	case KEYD_ERR_SHARE_DIGEST:
		if (field_is(d, "members"))
			snprintf(buf, cap, "the shares of group %d do not combine "
			    "to a valid secret (digest mismatch): one of them "
			    "was altered or comes from another split",
			    d->group + 1);
		else if (field_is(d, "groups"))
			snprintf(buf, cap, "the groups do not combine to a valid "
			    "secret (digest mismatch): a share was altered or "
			    "comes from another split");
		else
			snprintf(buf, cap, "the shares do not combine to a valid "
			    "secret (digest mismatch): one of them was altered "
			    "or comes from another split");
		break;
	case KEYD_ERR_INVALID_ARG:
		if (field_is(d, "passphrase"))
			snprintf(buf, cap, "the passphrase must be printable "
			    "ASCII (characters 32 to 126), at most %d of them",
			    SLIP39_MAX_PASSPHRASE_LEN);
		else if (field_is(d, "too many"))
			snprintf(buf, cap, "more than %d shares were given; no "
			    "SLIP-0039 split has that many", SLIP39_MAX_SHARES);
		else
			snprintf(buf, cap, "shares cannot be combined: %s",
			    keyd_strerror(d->code));
		break;
	default:
		snprintf(buf, cap, "shares cannot be combined: %s",
		    keyd_strerror(d->code));
		break;
	}
	return buf;
}
