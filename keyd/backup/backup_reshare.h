/*
 * backup_reshare.h: a new share set for the same backup master key
 * ("keyd-backup reshare"), following SLIP-0039's extendable backups: with
 * the extendable flag set, the identifier is not part of the encryption of
 * the master secret, so the encrypted master secret (EMS) that a quorum of
 * the current shares rebuilds can be split again, under a new policy and a
 * fresh identifier, without the passphrase and without the master secret
 * ever being decrypted for it. The new shares give the same master secret
 * under the same passphrase and iteration exponent.
 *
 * The new bundle carries the old one's wrapped keys, byte for byte, under
 * the same BMK; what changes is its set id, date, policy, commitments,
 * MAC and so its fingerprint. Nothing here retires the old shares: a
 * quorum of them still opens the old bundle (docs/backup.md).
 */
#ifndef KEYD_BACKUP_RESHARE_H
#define KEYD_BACKUP_RESHARE_H

#include <stddef.h>

#include "bundle.h"
#include "slip39.h"

#define BACKUP_RESHARE_WUR __attribute__((warn_unused_result))

/* backup_reshare_split: rebuilds the EMS from shares[0..n) (decoded and
 * already checked against bundle old: a quorum of its set) and splits it
 * under group_threshold and groups[0..group_count) with a new random
 * identifier (never the old one), the same extendable flag (1) and
 * iteration exponent. Then rebuilds the EMS from all the new shares and
 * checks that it is the old one. On success *out holds *count mnemonics
 * in locked memory (free with slip39_mnemonics_free).
 * Returns KEYD_OK; KEYD_ERR_UNSUPPORTED if the old set is not extendable
 * (its identifier is bound into the EMS: only a rekey makes a new set);
 * KEYD_ERR_INVALID_ARG (a bad policy); what slip39_recover_ems returns,
 * with *diag filled (diag may be NULL); KEYD_ERR_NOMEM, KEYD_ERR_CRYPTO,
 * or KEYD_ERR_INTERNAL if the check fails. */
int backup_reshare_split(const struct bundle *old,
    const struct slip39_share *shares, size_t n, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count,
    struct slip39_mnemonic **out, size_t *count, struct slip39_diag *diag)
    BACKUP_RESHARE_WUR;

/* backup_reshare_bundle: a new bundle *out (the caller's, freed with
 * bundle_free) holding old's format version, wrap and MAC algorithms and
 * every key as it is, with a fresh random set id, the time now, and the
 * SLIP-0039 parameters ext and iteration exponent of old. Its policy and
 * commitments are for the caller to fill from the new shares before
 * bundle_encode. Returns KEYD_OK, KEYD_ERR_NOMEM or KEYD_ERR_CRYPTO (the
 * random number generator failed). */
int backup_reshare_bundle(const struct bundle *old, struct bundle **out)
    BACKUP_RESHARE_WUR;

#endif
