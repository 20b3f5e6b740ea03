/*
 * slip39.h: SLIP-0039, Shamir's Secret-Sharing for Mnemonic Codes, in the
 * current version of the specification (15-bit identifier, extendable
 * flag, 4-bit iteration exponent; RS1024 customization string "shamir" for
 * ext = 0 and "shamir_extendable" for ext = 1).
 *
 *   master secret --encrypt(passphrase)--> EMS --split--> mnemonics
 *   mnemonics --decode--> shares --recover--> EMS --decrypt--> master secret
 *
 * Shares, EMS and master secrets are secret: keep the structs below in
 * locked memory (secmem_alloc) and wipe them after use. Functions here wipe
 * every intermediate value they make. Errors are KEYD_ERR_* values; the
 * functions that judge shares also fill a struct slip39_diag saying which
 * share (and which word) is at fault, and slip39_diag_format turns it into
 * a sentence for the user. Neither ever carries secret material.
 */
#ifndef KEYD_SLIP39_H
#define KEYD_SLIP39_H

#include <stddef.h>
#include <stdint.h>

#include "shamir.h"

#define SLIP39_WUR __attribute__((warn_unused_result))

/* Groups and members per group: 4-bit fields. */
#define SLIP39_MAX_GROUPS 16
#define SLIP39_MAX_MEMBERS 16
/* The most shares slip39_recover_ems takes: every member of every group. */
#define SLIP39_MAX_SHARES (SLIP39_MAX_GROUPS * SLIP39_MAX_MEMBERS)
/* Master secret length: at least 128 bits, even, at most 512 bits. */
#define SLIP39_MIN_SECRET_LEN SHAMIR_MIN_SECRET_LEN
#define SLIP39_MAX_SECRET_LEN SHAMIR_MAX_SECRET_LEN
/* The iteration exponent is 4 bits: 2500 << e PBKDF2 iterations a round. */
#define SLIP39_MAX_ITERATION_EXP 15
/* The identifier is 15 bits. */
#define SLIP39_MAX_ID 0x7fff
/* The word list: 1024 words of 4 to 8 lowercase letters. */
#define SLIP39_WORD_COUNT 1024
#define SLIP39_WORD_MAX_LEN 8
/* Words that are not share value: 2 (id, ext, e) + 2 (group and member
 * parameters) + 3 (checksum). */
#define SLIP39_METADATA_WORDS 7
#define SLIP39_CHECKSUM_WORDS 3
/* Words of a share of an n-byte secret: 7 + ceil(8n / 10). */
#define SLIP39_WORDS_FOR(n) (SLIP39_METADATA_WORDS + ((n) * 8 + 9) / 10)
#define SLIP39_MIN_WORDS SLIP39_WORDS_FOR(SLIP39_MIN_SECRET_LEN) /* 20 */
#define SLIP39_MAX_WORDS SLIP39_WORDS_FOR(SLIP39_MAX_SECRET_LEN) /* 59 */
/* Bytes for a mnemonic's text: words, single spaces and a NUL. */
#define SLIP39_MAX_MNEMONIC_LEN (SLIP39_MAX_WORDS * (SLIP39_WORD_MAX_LEN + 1))
/* Longest passphrase accepted (printable ASCII, SLIP-0039 "Passphrase"). */
#define SLIP39_MAX_PASSPHRASE_LEN 1024

/* One decoded share: the fields of SLIP-0039 "Format of the share
 * mnemonic", with thresholds and counts as actual values (not minus 1). */
struct slip39_share {
	uint16_t id;              /* identifier, 0 .. SLIP39_MAX_ID */
	uint8_t ext;              /* extendable backup flag, 0 or 1 */
	uint8_t iteration_exp;    /* e, 0 .. 15 */
	uint8_t group_index;      /* GI: x of the group share, 0 .. 15 */
	uint8_t group_threshold;  /* GT, 1 .. 16 */
	uint8_t group_count;      /* G, GT .. 16 */
	uint8_t member_index;     /* I: x of the member share, 0 .. 15 */
	uint8_t member_threshold; /* T, 1 .. 16 */
	size_t value_len;         /* bytes in value: the secret's length */
	uint8_t value[SLIP39_MAX_SECRET_LEN]; /* share value (secret) */
};

/* An encrypted master secret and what decrypting it needs besides the
 * passphrase. */
struct slip39_ems {
	uint16_t id;
	uint8_t ext;
	uint8_t iteration_exp;
	size_t len;
	uint8_t value[SLIP39_MAX_SECRET_LEN]; /* secret */
};

/* One group of a split: member_threshold of member_count shares rebuild
 * the group's share. */
struct slip39_group {
	unsigned member_threshold;
	unsigned member_count;
};

/* One mnemonic made by a split: words separated by single spaces,
 * NUL-terminated. group_index and member_index are 0-based. */
struct slip39_mnemonic {
	uint8_t group_index;
	uint8_t member_index;
	char text[SLIP39_MAX_MNEMONIC_LEN];
};

/* What went wrong with a set of shares. Indices are 0-based; -1 means
 * "does not apply". Never holds secret material: word_index names a word
 * that failed the checksum, which is by then known to be wrong. */
struct slip39_diag {
	int code;        /* the KEYD_ERR_* returned, KEYD_OK if none */
	int share;       /* the share (mnemonic) at fault, in the caller's list */
	int other;       /* the share it conflicts with (mismatch, duplicate) */
	int word;        /* the word position at fault (or probably wrong) */
	int word_index;  /* word-list index of the word now at that position */
	int group;       /* the group concerned (group index GI) */
	int member;      /* the member index concerned (duplicates) */
	int need;        /* how many shares or groups are needed (too few) */
	int have;        /* how many were given (too few), or words counted */
	const char *field; /* static: the field or check that failed */
};

/* slip39_word: the word of the word list at index (0 .. 1023), or NULL.
 * Returns a static string. Not constant time: for messages and tests, not
 * for share words. */
const char *slip39_word(unsigned index);

/* slip39_word_prefix: the words of the list that begin with the letters
 * prefix[0 .. len) (1 .. SLIP39_WORD_MAX_LEN letters, either case), for
 * completing a word as it is typed: returns how many there are (0 if none,
 * or if prefix holds anything but letters) and, if exactly one, writes it
 * to word (SLIP39_WORD_MAX_LEN + 1 bytes, the caller's, NUL-terminated;
 * wiped otherwise). The scan of the list does not depend on the letters:
 * every row is read and the match is kept through masks; the count it
 * returns (which the caller acts on) does. Four letters name at most one word
 * (SLIP-0039 "Wordlist": unique 4-letter prefixes). */
unsigned slip39_word_prefix(const char *prefix, size_t len, char *word);

/* slip39_passphrase_check: checks that passphrase[0 .. len) is a valid
 * SLIP-0039 passphrase: printable ASCII (32 .. 126) only, at most
 * SLIP39_MAX_PASSPHRASE_LEN bytes. passphrase may be NULL if len is 0.
 * Returns KEYD_OK, or KEYD_ERR_INVALID_ARG with *bad_pos (if not NULL) set
 * to the offset of the first bad byte (or to SLIP39_MAX_PASSPHRASE_LEN if
 * it is too long). */
int slip39_passphrase_check(const char *passphrase, size_t len,
    size_t *bad_pos) SLIP39_WUR;

/* slip39_decode: parses one mnemonic, text[0 .. len) (need not be
 * NUL-terminated; words separated by any ASCII whitespace; case ignored),
 * into *share (the caller's, best in locked memory). Checks the length
 * rules, the words, the RS1024 checksum, the group parameters and the
 * padding bits. index is the mnemonic's position in the caller's list and
 * is copied to diag->share, so that the message names it.
 * On a checksum failure it looks for the one word whose replacement makes
 * the checksum valid and puts its position in diag->word (-1 if no single
 * word explains the failure); it never says what the replacement is.
 * Returns KEYD_OK, KEYD_ERR_SHARE_FORMAT (not a word, wrong length, bad
 * padding or parameters) or KEYD_ERR_SHARE_CHECKSUM, with *diag filled (diag
 * may be NULL); on error *share is wiped. */
int slip39_decode(const char *text, size_t len, int index,
    struct slip39_share *share, struct slip39_diag *diag) SLIP39_WUR;

/* slip39_encode: the mnemonic of *share, written to out (cap bytes, the
 * caller's, best locked; SLIP39_MAX_MNEMONIC_LEN always suffices) as
 * lowercase words separated by single spaces, NUL-terminated.
 * Returns KEYD_OK, KEYD_ERR_INVALID_ARG (a field out of range) or
 * KEYD_ERR_BUFFER_TOO_SMALL; on error out is wiped. */
int slip39_encode(const struct slip39_share *share, char *out, size_t cap)
    SLIP39_WUR;

/* slip39_encrypt: EMS = Encrypt(MS, P, e, id, ext), the four-round Feistel
 * network of SLIP-0039 "Encryption of the master secret" (PBKDF2-HMAC-SHA256,
 * 2500 << e iterations a round, salt "shamir" || id for ext = 0 and no
 * prefix for ext = 1). ms is len bytes (even, 16 .. 64); the passphrase must
 * pass slip39_passphrase_check. Writes id, ext, e, len and the value to
 * *ems (the caller's). Returns KEYD_OK, KEYD_ERR_INVALID_ARG,
 * KEYD_ERR_NOMEM or KEYD_ERR_CRYPTO; on error *ems is wiped. */
int slip39_encrypt(const uint8_t *ms, size_t len, const char *passphrase,
    size_t passlen, uint16_t id, int ext, unsigned iteration_exp,
    struct slip39_ems *ems) SLIP39_WUR;

/* slip39_decrypt: MS = Decrypt(EMS, P, e, id, ext). Writes ems->len bytes
 * to ms (the caller's). There is no way to tell a wrong passphrase: it
 * gives another master secret (SLIP-0039 "Passphrase"). Returns KEYD_OK,
 * KEYD_ERR_INVALID_ARG, KEYD_ERR_NOMEM or KEYD_ERR_CRYPTO; on error ms is
 * wiped. */
int slip39_decrypt(const struct slip39_ems *ems, const char *passphrase,
    size_t passlen, uint8_t *ms) SLIP39_WUR;

/* slip39_split_ems: splits an already encrypted master secret into
 * mnemonics: group_threshold of the group_count groups, and in group i
 * groups[i].member_threshold of groups[i].member_count members (SLIP-0039
 * GenerateShares steps 5 to 7). A member threshold of 1 requires a member
 * count of 1 (step 1). On success *out is an array of *count mnemonics in
 * locked memory, group 0's members first, in member order; the caller owns
 * it and frees it with slip39_mnemonics_free.
 * Returns KEYD_OK, KEYD_ERR_INVALID_ARG, KEYD_ERR_NOMEM or KEYD_ERR_CRYPTO;
 * on error *out is NULL and *count 0. */
int slip39_split_ems(const struct slip39_ems *ems, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count,
    struct slip39_mnemonic **out, size_t *count) SLIP39_WUR;

/* slip39_split: GenerateShares of SLIP-0039: a random 15-bit identifier,
 * EMS = slip39_encrypt(ms, passphrase, e, id, ext), then slip39_split_ems.
 * ext should be 1 for new shares (the specification's SHOULD). Same
 * arguments, ownership and returns as slip39_encrypt and slip39_split_ems. */
int slip39_split(const uint8_t *ms, size_t len, const char *passphrase,
    size_t passlen, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count, int ext,
    unsigned iteration_exp, struct slip39_mnemonic **out, size_t *count)
    SLIP39_WUR;

/* slip39_mnemonics_free: wipes and frees count mnemonics from a split.
 * NULL is fine. */
void slip39_mnemonics_free(struct slip39_mnemonic *m, size_t count);

/* slip39_recover_ems: steps 1 to 3 of SLIP-0039 "Combining the shares":
 * checks that the n shares (1 .. SLIP39_MAX_SHARES, from slip39_decode or
 * built by the caller) belong together (same id, ext, e, group threshold,
 * group count and length; in each group the same member threshold and
 * distinct member indices) and are enough (at least group_threshold
 * groups, each with at least its member threshold of members), rebuilds
 * every group's share, then the EMS, checking each digest. The
 * specification asks for exactly the thresholds; more shares are accepted
 * and are all used, so each of them must be consistent with the others.
 * Writes *ems (the caller's). Returns KEYD_OK, KEYD_ERR_SHARE_FORMAT,
 * KEYD_ERR_SHARE_MISMATCH, KEYD_ERR_SHARE_DUPLICATE, KEYD_ERR_SHARE_TOO_FEW,
 * KEYD_ERR_SHARE_DIGEST, KEYD_ERR_INVALID_ARG, KEYD_ERR_NOMEM or
 * KEYD_ERR_CRYPTO, with *diag filled (diag may be NULL); on error *ems is
 * wiped. */
int slip39_recover_ems(const struct slip39_share *shares, size_t n,
    struct slip39_ems *ems, struct slip39_diag *diag) SLIP39_WUR;

/* slip39_combine: slip39_recover_ems, then slip39_decrypt with the
 * passphrase: the whole of "Combining the shares". Writes the master
 * secret to ms (cap bytes, the caller's) and its length to *ms_len.
 * Returns what slip39_recover_ems and slip39_decrypt return, and
 * KEYD_ERR_INVALID_ARG (diag->field "passphrase") for a passphrase that
 * fails slip39_passphrase_check, KEYD_ERR_BUFFER_TOO_SMALL if cap is less
 * than the secret; on error ms is wiped and *ms_len is 0. */
int slip39_combine(const struct slip39_share *shares, size_t n,
    const char *passphrase, size_t passlen, uint8_t *ms, size_t cap,
    size_t *ms_len, struct slip39_diag *diag) SLIP39_WUR;

/* slip39_diag_format: a one-line English sentence for the user describing
 * *diag: which share (1-based, "share 2"), which word ("word 7"), what is
 * wrong and what to do. Written to buf (cap bytes, NUL-terminated,
 * truncated if needed). Contains no secret material. Returns buf. */
char *slip39_diag_format(const struct slip39_diag *diag, char *buf,
    size_t cap);

/* slip39_diag_format_as: as slip39_diag_format, but the share at fault
 * (diag->share) is called name (e.g. "share 2 (sheet.txt)") instead of
 * "share N", for a caller that names shares its own way; the sentence
 * then names it once. name NULL is slip39_diag_format. Returns buf. */
char *slip39_diag_format_as(const struct slip39_diag *diag, const char *name,
    char *buf, size_t cap);

#endif
