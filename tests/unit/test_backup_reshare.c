/*
 * test_backup_reshare.c: a new share set for the same master secret
 * (backup_reshare.c), without a token: the new shares give the old
 * secret under the same passphrase, have a new identifier, the extendable
 * flag and the old iteration exponent, need the new threshold, and never
 * combine with the old shares; a set without the extendable flag, too few
 * old shares and a bad policy are refused; the new bundle keeps the keys
 * and takes a new set id.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

#include "backup_reshare.h"
#include "bundle.h"
#include "keyd_err.h"
#include "ktest.h"
#include "slip39.h"

#define PASS "correct horse"
#define SECRET_LEN 32

/* Splits ms 2 of 3 (ext as given, e = 0) and decodes shares a and b of it
 * into sh[0], sh[1]; fills the old bundle's SLIP-0039 fields. */
static int
old_set(const uint8_t *ms, int ext, unsigned a, unsigned b,
    struct slip39_share *sh, struct bundle *old)
{
	struct slip39_group g = { 2, 3 };
	struct slip39_mnemonic *m = NULL;
	size_t count = 0;
	int r;

	if ((r = slip39_split(ms, SECRET_LEN, PASS, strlen(PASS), 1, &g, 1,
	    ext, 0, &m, &count)) != KEYD_OK)
		return r;
	if ((r = slip39_decode(m[a].text, strlen(m[a].text), 0, &sh[0],
	    NULL)) == KEYD_OK)
		r = slip39_decode(m[b].text, strlen(m[b].text), 1, &sh[1],
		    NULL);
	slip39_mnemonics_free(m, count);
	old->slip39_id = sh[0].id;
	old->ext = sh[0].ext;
	old->iteration_exp = sh[0].iteration_exp;
	old->secret_len = SECRET_LEN;
	return r;
}

static void
test_split(void)
{
	static struct slip39_share old_sh[2], new_sh[5], mix[3];
	struct slip39_group g35 = { 3, 5 }, bad = { 1, 3 };
	struct slip39_mnemonic *m = NULL;
	struct slip39_diag d;
	struct bundle *old = bundle_new(1);
	uint8_t ms[SECRET_LEN], out[SECRET_LEN];
	size_t count = 0, len = 0, i;

	CHECK(old != NULL);
	if (old == NULL)
		return;
	CHECK(RAND_bytes(ms, sizeof(ms)) == 1);
	CHECK_INT(old_set(ms, 1, 0, 2, old_sh, old), KEYD_OK);

	CHECK_INT(backup_reshare_split(old, old_sh, 2, 1, &g35, 1, &m, &count,
	    &d), KEYD_OK);
	CHECK_INT(count, 5);
	for (i = 0; i < count && i < 5; i++) {
		CHECK_INT(slip39_decode(m[i].text, strlen(m[i].text), (int)i,
		    &new_sh[i], NULL), KEYD_OK);
		CHECK(new_sh[i].id != old->slip39_id);
		CHECK_INT(new_sh[i].ext, 1);
		CHECK_INT(new_sh[i].iteration_exp, 0);
		CHECK_INT(new_sh[i].member_threshold, 3);
	}
	/* Three new shares give the old secret under the same passphrase. */
	CHECK_INT(slip39_combine(&new_sh[1], 3, PASS, strlen(PASS), out,
	    sizeof(out), &len, &d), KEYD_OK);
	CHECK(len == SECRET_LEN && memcmp(out, ms, SECRET_LEN) == 0);
	CHECK_INT(slip39_combine(&new_sh[0], 2, PASS, strlen(PASS), out,
	    sizeof(out), &len, &d), KEYD_ERR_SHARE_TOO_FEW);
	CHECK_INT(slip39_combine(&new_sh[0], 3, "wrong", 5, out, sizeof(out),
	    &len, &d), KEYD_OK);
	CHECK(memcmp(out, ms, SECRET_LEN) != 0);
	/* Old and new shares never combine. */
	mix[0] = old_sh[0];
	mix[1] = new_sh[1];
	mix[2] = new_sh[2];
	CHECK_INT(slip39_combine(mix, 3, PASS, strlen(PASS), out, sizeof(out),
	    &len, &d), KEYD_ERR_SHARE_MISMATCH);
	CHECK(strcmp(d.field, "identifier") == 0);
	slip39_mnemonics_free(m, count);
	m = NULL;

	/* Refusals. */
	CHECK_INT(backup_reshare_split(old, old_sh, 1, 1, &g35, 1, &m, &count,
	    &d), KEYD_ERR_SHARE_TOO_FEW);
	CHECK(m == NULL && count == 0);
	CHECK_INT(backup_reshare_split(old, old_sh, 2, 1, &bad, 1, &m, &count,
	    &d), KEYD_ERR_INVALID_ARG);
	CHECK(m == NULL && count == 0);
	CHECK_INT(old_set(ms, 0, 1, 2, old_sh, old), KEYD_OK);
	CHECK_INT(backup_reshare_split(old, old_sh, 2, 1, &g35, 1, &m, &count,
	    &d), KEYD_ERR_UNSUPPORTED);
	CHECK(m == NULL && count == 0);
	bundle_free(old);
}

static void
test_bundle(void)
{
	struct bundle *old = bundle_new(2), *nb = NULL;

	CHECK(old != NULL);
	if (old == NULL)
		return;
	memset(old->set_id, 0xab, BUNDLE_SET_ID_LEN);
	old->created = 1;
	old->wrap_alg = BUNDLE_WRAP_RFC5649_ZERO_PAD;
	old->wrap_mech = 0x210a;
	old->mac_alg = BUNDLE_MAC_HKDF_HMAC_SHA256;
	old->ext = 1;
	old->iteration_exp = 3;
	old->secret_len = SECRET_LEN;
	old->group_threshold = 1;
	old->group_count = 1;
	old->n_commits = 3;
	memcpy(old->keys[0].label, "sip-tls", 8);
	old->keys[0].label_len = 7;
	old->keys[1].wrapped_len = 40;
	memset(old->keys[1].wrapped, 0x5a, 40);

	CHECK_INT(backup_reshare_bundle(old, &nb), KEYD_OK);
	CHECK(nb != NULL);
	if (nb == NULL) {
		bundle_free(old);
		return;
	}
	CHECK(memcmp(nb->set_id, old->set_id, BUNDLE_SET_ID_LEN) != 0);
	CHECK(nb->created > old->created);
	CHECK_INT(nb->version, BUNDLE_VERSION);
	CHECK_INT(nb->wrap_alg, BUNDLE_WRAP_RFC5649_ZERO_PAD);
	CHECK_INT(nb->wrap_mech, 0x210a);
	CHECK_INT(nb->mac_alg, BUNDLE_MAC_HKDF_HMAC_SHA256);
	CHECK_INT(nb->ext, 1);
	CHECK_INT(nb->iteration_exp, 3);
	CHECK_INT(nb->secret_len, SECRET_LEN);
	CHECK_INT(nb->n_keys, 2);
	CHECK(memcmp(nb->keys, old->keys, 2 * sizeof(*nb->keys)) == 0);
	/* The policy and commitments are the caller's to fill. */
	CHECK_INT(nb->group_count, 0);
	CHECK_INT(nb->n_commits, 0);
	bundle_free(nb);
	bundle_free(old);
}

int
main(void)
{
	test_split();
	test_bundle();
	return ktest_result("test_backup_reshare");
}
