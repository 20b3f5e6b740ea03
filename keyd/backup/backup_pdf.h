/*
 * backup_pdf.h: share sheets as one-page PDFs for printing (cairo), with
 * the share as a QR code (libqrencode) for typing it in on the offline
 * machine. The text sheet (backup_share.h) stays what programs read; the
 * PDF is what a holder gets on paper. docs/backup.md "Share sheets".
 *
 * Rendering runs in a short-lived child process: cairo, fontconfig and
 * libqrencode copy the words into memory of their own that they free
 * without wiping, so those copies die with the child (its memory not
 * dumpable and, where the process may, locked) instead of lingering in
 * keyd-backup's heap. Only the finished PDF comes back, into the caller's
 * locked buffer.
 */
#ifndef KEYD_BACKUP_PDF_H
#define KEYD_BACKUP_PDF_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "kbuf.h"
#include "slip39.h"

#define BACKUP_PDF_WUR __attribute__((warn_unused_result))

/* Which files are written for each share (write_sheets in keyd_backup.c):
 * the text sheet always, the PDF with --pdf. */
enum {
	BACKUP_SHEET_TEXT = 1u << 0,
	BACKUP_SHEET_PDF = 1u << 1,
};

/* Largest PDF sheet. A sheet with its subset fonts is about 30 KB. */
#define BACKUP_PDF_MAX_FILE (1024 * 1024)

/* backup_pdf_sheet: renders the PDF sheet of mnemonic m (made for bundle
 * b, written to bundle_name, with commitment c; passphrase: whether the
 * set needs one, never the passphrase itself) and appends it to w, which
 * must be a KBUF_SECRET buffer of at least BACKUP_PDF_MAX_FILE bytes.
 * Returns KEYD_OK; otherwise why (static, no secret) says what failed:
 * KEYD_ERR_IO (no child process), KEYD_ERR_INTERNAL (cairo or libqrencode
 * failed), KEYD_ERR_FRAME_TOO_LARGE (over BACKUP_PDF_MAX_FILE),
 * KEYD_ERR_NOMEM. */
int backup_pdf_sheet(struct kbuf *w, const struct bundle *b,
    const char *bundle_name, const struct slip39_mnemonic *m,
    const uint8_t c[BUNDLE_HASH_LEN], int passphrase, const char **why)
    BACKUP_PDF_WUR;

/* backup_pdf_file_name: "share-<first 8 hex of the set id>-g<G>-m<M>.pdf"
 * (1-based, the text sheet's name with .pdf) into buf. */
char *backup_pdf_file_name(const struct bundle *b, unsigned group,
    unsigned member, char *buf, size_t cap);

#endif
