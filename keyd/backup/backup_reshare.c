/* backup_reshare.c: a new share set for the same backup master key. */
#include "backup_reshare.h"

#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keyd_err.h"
#include "secmem.h"

/* How often a new identifier equal to the old one is drawn again before
 * giving up (each draw has a 1 in 32768 chance of it). */
#define RESHARE_ID_TRIES 16

/* A random 15-bit identifier other than old ("Generating the shares" step
 * 2; public, so RAND_bytes; dropping the top bit keeps it uniform). */
static BACKUP_RESHARE_WUR int
new_identifier(uint16_t old, uint16_t *id)
{
	uint8_t b[2];

	for (int i = 0; i < RESHARE_ID_TRIES; i++) {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return KEYD_ERR_CRYPTO;
		*id = (uint16_t)(((b[0] << 8) | b[1]) & SLIP39_MAX_ID);
		/* A fresh identifier keeps SLIP-0039's check that shares
		 * belong together: old and new shares are never mixed. */
		if (*id != old)
			return KEYD_OK;
	}
	return KEYD_ERR_CRYPTO;
}

int
backup_reshare_split(const struct bundle *old,
    const struct slip39_share *shares, size_t n, unsigned group_threshold,
    const struct slip39_group *groups, size_t group_count,
    struct slip39_mnemonic **out, size_t *count, struct slip39_diag *diag)
{
	struct slip39_ems *ems = NULL, *check = NULL;
	struct slip39_share *news = NULL;
	struct slip39_mnemonic *m = NULL;
	size_t nm = 0;
	uint16_t id = 0;
	int r = KEYD_ERR_NOMEM;

	*out = NULL;
	*count = 0;
	/* SLIP-0039 "Format of the share mnemonic": with ext = 0 the
	 * identifier salts the encryption of the master secret, so the EMS
	 * cannot take a new identifier. keyd-backup create always sets
	 * ext = 1; a set without it is not resplit here. */
	if (old->ext != 1)
		return KEYD_ERR_UNSUPPORTED;
	if ((ems = secmem_alloc(sizeof(*ems))) == NULL ||
	    (check = secmem_alloc(sizeof(*check))) == NULL ||
	    (news = secmem_alloc(SLIP39_MAX_SHARES * sizeof(*news))) == NULL)
		goto out;
	if ((r = slip39_recover_ems(shares, n, ems, diag)) != KEYD_OK)
		goto out;
	if (ems->ext != 1 || ems->id != old->slip39_id) {
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	if ((r = new_identifier(old->slip39_id, &id)) != KEYD_OK)
		goto out;
	/* The extendable rule: the same EMS, the same ext and iteration
	 * exponent, a new identifier. Decryption does not read the
	 * identifier when ext = 1, so the new shares give the same master
	 * secret under the same passphrase. */
	ems->id = id;
	if ((r = slip39_split_ems(ems, group_threshold, groups, group_count,
	    &m, &nm)) != KEYD_OK)
		goto out;
	/* Every new share takes part in rebuilding the EMS, which must be
	 * the one split: a fault here must not leave officers with shares
	 * that do not open the bundle. */
	for (size_t i = 0; i < nm; i++)
		if ((r = slip39_decode(m[i].text, strlen(m[i].text), (int)i,
		    &news[i], NULL)) != KEYD_OK)
			goto out;
	if ((r = slip39_recover_ems(news, nm, check, NULL)) != KEYD_OK ||
	    check->id != id || check->ext != 1 ||
	    check->iteration_exp != old->iteration_exp ||
	    check->len != ems->len ||
	    CRYPTO_memcmp(check->value, ems->value, ems->len) != 0) {
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	*out = m;
	*count = nm;
	m = NULL;
	r = KEYD_OK;
out:
	slip39_mnemonics_free(m, nm);
	secmem_free(ems, sizeof(*ems));
	secmem_free(check, sizeof(*check));
	secmem_free(news, SLIP39_MAX_SHARES * sizeof(*news));
	return r;
}

int
backup_reshare_bundle(const struct bundle *old, struct bundle **out)
{
	struct bundle *b = NULL;

	*out = NULL;
	if ((b = bundle_new(old->n_keys)) == NULL)
		return KEYD_ERR_NOMEM;
	if (RAND_bytes(b->set_id, BUNDLE_SET_ID_LEN) != 1) {
		bundle_free(b);
		return KEYD_ERR_CRYPTO;
	}
	b->version = old->version;
	b->created = (uint64_t)time(NULL);
	b->wrap_alg = old->wrap_alg;
	b->wrap_mech = old->wrap_mech;
	b->mac_alg = old->mac_alg;
	b->ext = old->ext;
	b->iteration_exp = old->iteration_exp;
	b->secret_len = old->secret_len;
	memcpy(b->keys, old->keys, old->n_keys * sizeof(*b->keys));
	*out = b;
	return KEYD_OK;
}
