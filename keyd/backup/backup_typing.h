/*
 * backup_typing.h: a share typed at a terminal, word by word, with nothing
 * shown: keyd-backup's prompt for restore and reshare (and whatever else
 * reads typed shares). When standard input is not a terminal, keyd-backup
 * reads whole lines instead (backup_share_read_line), so that scripts
 * keep working.
 *
 * On a terminal the reader turns echo and line editing off and takes one
 * key at a time. SLIP-0039 words are unique by their first four letters,
 * so a word is accepted, and completed, as soon as four letters are typed;
 * letters that begin no word are refused at once. The holder sees only a
 * count of the words accepted, never a letter.
 */
#ifndef KEYD_BACKUP_TYPING_H
#define KEYD_BACKUP_TYPING_H

#include <stddef.h>

#include "bundle.h"
#include "slip39.h"

#define BACKUP_TYPING_WUR __attribute__((warn_unused_result))

/* backup_typing_read_share: reads one share typed on terminal fd (its
 * settings are restored before returning, on every path), talking to the
 * holder on terminal out: label ("share 2") and how many words are
 * accepted of nwords (0: not known). Keys: letters; space or tab ends a
 * word; Enter ends the share; Backspace takes back a letter, or from an
 * empty word the previous word; Ctrl-U starts the share again; Ctrl-C or
 * Ctrl-D stops. Writes the completed words, lowercase and separated by
 * single spaces, NUL-terminated, to buf (cap bytes, the caller's locked
 * memory) and their length to *len.
 * Returns KEYD_OK; KEYD_ERR_CLOSED if the holder stopped (Ctrl-C, Ctrl-D)
 * or the terminal went away; KEYD_ERR_INVALID_ARG if fd is not a
 * terminal; KEYD_ERR_IO. Everything typed is wiped but what is returned
 * in buf (wiped too on error). */
int backup_typing_read_share(int fd, int out, const char *label,
    unsigned nwords, char *buf, size_t cap, size_t *len) BACKUP_TYPING_WUR;

/* backup_typing_needed: what the shares s[0..n) (distinct, of bundle b)
 * still lack to meet b's policy, as one line for the holders, e.g. "2
 * more shares needed" or, with groups, "group 1: done; group 2: 1 more
 * share (2 of 3); 1 more group needed (2 of 3)". Written to buf (cap
 * bytes, NUL-terminated, truncated if need be). Holds no secret: only
 * group and member counts. Returns buf. */
char *backup_typing_needed(const struct bundle *b,
    const struct slip39_share *s, size_t n, char *buf, size_t cap);

#endif
