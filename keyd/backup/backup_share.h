/*
 * backup_share.h: share sheets, the printable file each share holder gets
 * from "keyd-backup create", and reading shares back: from a sheet, from
 * a file holding only the words, or typed at a prompt without echo.
 *
 * A sheet is text. Lines "field: value" carry what a program reads:
 * "set-id:", "bundle-fingerprint:" (SHA-256 of the bundle file, hex in
 * groups of four) and "mnemonic:" (the share, words separated by
 * spaces); the rest (numbered words, policy, instructions) is for people.
 */
#ifndef KEYD_BACKUP_SHARE_H
#define KEYD_BACKUP_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "kbuf.h"
#include "slip39.h"

#define BACKUP_SHARE_WUR __attribute__((warn_unused_result))
/* Largest share file: a sheet of a 64-byte secret with its table. */
#define BACKUP_SHARE_MAX_FILE 16384
/* Longest line typed at the prompt or read as a mnemonic. */
#define BACKUP_SHARE_MAX_LINE (2 * SLIP39_MAX_MNEMONIC_LEN)

/* What a share file holds. Keep it in locked memory. */
struct backup_sheet {
	char mnemonic[BACKUP_SHARE_MAX_LINE];
	size_t len;
	int has_fp;                        /* bundle-fingerprint: given */
	uint8_t fp[BUNDLE_HASH_LEN];
	int has_set_id;                    /* set-id: given */
	uint8_t set_id[BUNDLE_SET_ID_LEN];
};

/* backup_share_parse: a share file: a sheet (its "mnemonic:" line and
 * fields), or only the mnemonic's words (no ':' anywhere). Returns
 * KEYD_OK, or KEYD_ERR_SHARE_FORMAT with why (static) saying what is
 * wrong. *out is wiped first. */
int backup_share_parse(const uint8_t *data, size_t len,
    struct backup_sheet *out, const char **why) BACKUP_SHARE_WUR;

/* backup_share_next_word: the next word of the mnemonic text at *t (words
 * separated by spaces): its start, its length in *len (at most
 * SLIP39_WORD_MAX_LEN, else NULL with *len the length found), and *t
 * moved past it; NULL with *len 0 at the end. */
const char *backup_share_next_word(const char **t, size_t *len);

/* backup_share_sheet: writes the sheet of mnemonic m (made for bundle b,
 * written to bundle_name, with commitment c) to w (a KBUF_SECRET
 * buffer). passphrase: whether the set needs one. */
int backup_share_sheet(struct kbuf *w, const struct bundle *b,
    const char *bundle_name, const struct slip39_mnemonic *m,
    const uint8_t c[BUNDLE_HASH_LEN], int passphrase) BACKUP_SHARE_WUR;

/* backup_share_file_name: "share-<first 8 hex of the set id>-g<G>-m<M>.txt"
 * (1-based) into buf. */
char *backup_share_file_name(const struct bundle *b, unsigned group,
    unsigned member, char *buf, size_t cap);

/* backup_share_read_line: one line from fd into buf (cap bytes, the
 * caller's locked memory), without its line break; with echo off while it
 * is typed if fd is a terminal. Returns KEYD_OK, KEYD_ERR_CLOSED at end
 * of input with nothing read, KEYD_ERR_FRAME_TOO_LARGE for a line of cap
 * bytes or more (the rest of it is read and dropped), KEYD_ERR_IO. */
int backup_share_read_line(int fd, char *buf, size_t cap, size_t *len)
    BACKUP_SHARE_WUR;

/* backup_share_grouped_hex: p[0..n) (n <= BUNDLE_HASH_LEN) as hex in
 * groups of four digits separated by spaces, for reading aloud and
 * comparing; out needs 3 * n bytes. Returns out. */
char *backup_share_grouped_hex(const uint8_t *p, size_t n, char *out);

/* backup_share_hex: parses hex (either case; blanks and ':' between
 * digits ignored) of exactly n bytes into out. Returns 1 if it is. */
int backup_share_hex(const char *s, size_t slen, uint8_t *out, size_t n);

#endif
