/*
 * fuzz_bundle.c: the backup bundle parser (bundle_parse), on bytes as a
 * bundle file holds them: keyd-backup reads a bundle handed to it on
 * removable media, before any share proves anything about it.
 *
 * Besides the sanitizers it checks bundle.h's contract and the format's
 * round trip: a bundle exactly when KEYD_OK, otherwise a reason; a bundle
 * that parses keeps the file's bytes and their SHA-256, encodes back
 * (bundle_encode, with a fixed BMK) to the same bytes up to the MAC, which
 * bundle_verify_mac then accepts, and its policy and share checks answer
 * without reading out of bounds.
 */
#include <openssl/sha.h>
#include <string.h>

#include "bundle.h"
#include "fuzz.h"
#include "keyd_err.h"

/* A fixed BMK: the round trip needs one, and it is no one's secret. */
static const uint8_t fuzz_bmk[BUNDLE_BMK_LEN] = {
	0x6b, 0x65, 0x79, 0x64, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x62,
	0x6d, 0x6b, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12,
};

/* The share of each commitment, made up from the policy: the check must
 * walk its way to the commitment and answer. */
static void
check_shares(const struct bundle *b)
{
	struct slip39_share s[2];
	const char *why = NULL;
	size_t n = 0;

	for (size_t i = 0; i < b->n_commits && n < 2; i++) {
		struct slip39_share *p = &s[n++];

		memset(p, 0, sizeof(*p));
		p->id = b->slip39_id;
		p->ext = b->ext;
		p->iteration_exp = b->iteration_exp;
		p->group_index = b->commits[i].group;
		p->group_threshold = b->group_threshold;
		p->group_count = b->group_count;
		p->member_index = b->commits[i].member;
		p->member_threshold = b->member_threshold[p->group_index];
		p->value_len = b->secret_len;
		/* Not the share of that commitment (none is known): the
		 * check must get as far as the commitment and refuse it. */
		fuzz_check(bundle_check_share(b, p, &why) ==
		    KEYD_ERR_SHARE_MISMATCH && why != NULL &&
		    strcmp(why, "commitment") == 0);
	}
	(void)bundle_policy_met(b, s, n);
	fuzz_check(bundle_shares_needed(b) >= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle *b = NULL;
	const char *why = NULL;
	uint8_t fp[SHA256_DIGEST_LENGTH];
	char name[64];
	int r;

	r = bundle_parse(data, size, &b, &why);
	if (r != KEYD_OK) {
		fuzz_check(b == NULL && why != NULL);
		fuzz_check(r == KEYD_ERR_BUNDLE || r == KEYD_ERR_VERSION ||
		    r == KEYD_ERR_NOMEM);
		return 0;
	}
	fuzz_check(b != NULL && why == NULL);
	fuzz_check(b->raw_len == size && memcmp(b->raw, data, size) == 0);
	SHA256(data, size, fp);
	fuzz_check(memcmp(fp, b->fingerprint, sizeof(fp)) == 0);
	fuzz_check(b->n_keys >= 1 && b->n_keys <= BUNDLE_MAX_KEYS);
	fuzz_check(size >= BUNDLE_HASH_LEN);
	for (size_t i = 0; i < b->n_keys; i++) {
		const struct bundle_key *k = &b->keys[i];

		fuzz_check(k->label_len <= BUNDLE_MAX_LABEL &&
		    k->label[k->label_len] == '\0' &&
		    strlen(k->label) == k->label_len);
		(void)bundle_key_type_name(k, name, sizeof(name));
	}
	check_shares(b);
	/* A MAC is checked and refused, unless the input was made with
	 * this very BMK. */
	r = bundle_verify_mac(b, fuzz_bmk, sizeof(fuzz_bmk));
	fuzz_check(r == KEYD_OK || r == KEYD_ERR_PASSPHRASE);

	/* Round trip: everything before the MAC is the encoding of what
	 * was parsed. */
	fuzz_check(bundle_encode(b, fuzz_bmk, sizeof(fuzz_bmk)) == KEYD_OK);
	fuzz_check(b->raw_len == size);
	fuzz_check(memcmp(b->raw, data, size - BUNDLE_HASH_LEN) == 0);
	fuzz_check(bundle_verify_mac(b, fuzz_bmk, sizeof(fuzz_bmk)) ==
	    KEYD_OK);
	bundle_free(b);
	return 0;
}
