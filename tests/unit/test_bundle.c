/*
 * test_bundle.c: the backup bundle (keyd/backup/bundle.c) and share sheets
 * (keyd/backup/backup_share.c) without a token: round trip, every truncation and
 * every single-bit change refused, the MAC under a wrong BMK, share
 * commitments, policies, limits; and the RFC 5649 known answers that
 * keyd-backup asks tokens for, checked against tests/vectors/ and OpenSSL.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_share.h"
#include "backup_token.h"
#include "bundle.h"
#include "keyd_err.h"
#include "ktest.h"
#include "secmem.h"
#include "slip39.h"

#define VECTOR_FILE "/tests/vectors/rfc5649-kwp.txt"
#define MAX_LINE 512

static uint8_t bmk[BUNDLE_BMK_LEN];

/* An EC P-256 key pair's SPKI, made by OpenSSL. */
static void
fill_pair(struct bundle_key *k)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	unsigned char *q = k->spki;
	unsigned len = 0;
	int n;

	CHECK(pk != NULL);
	n = i2d_PUBKEY(pk, NULL);
	CHECK(n > 0 && (size_t)n <= sizeof(k->spki));
	CHECK(i2d_PUBKEY(pk, &q) == n);
	k->spki_len = (size_t)n;
	k->cls = CKO_PRIVATE_KEY;
	k->key_type = CKK_EC;
	k->bits = 256;
	memcpy(k->label, "sip-tls", 7);
	k->label_len = 7;
	k->id[0] = 1;
	k->id_len = 1;
	k->flags = BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
	    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_SIGN;
	k->pub_flags = BUNDLE_F_VERIFY;
	memcpy(k->pub_a, "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
	k->pub_a_len = 10;
	memset(k->pub_b, 4, 67);
	k->pub_b_len = 67;
	k->fp_kind = BUNDLE_FP_SPKI_SHA256;
	k->fp_len = BUNDLE_HASH_LEN;
	CHECK(EVP_Digest(k->spki, k->spki_len, k->fp, &len, EVP_sha256(),
	    NULL) == 1);
	memset(k->wrapped, 0xa5, 80);
	k->wrapped_len = 80;
	EVP_PKEY_free(pk);
}

static void
fill_secret(struct bundle_key *k)
{
	k->cls = CKO_SECRET_KEY;
	k->key_type = CKK_AES;
	k->bits = 256;
	memcpy(k->label, "srtp-kek", 8);
	k->label_len = 8;
	k->id[0] = 3;
	k->id_len = 1;
	k->flags = BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
	    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_ENCRYPT | BUNDLE_F_DECRYPT;
	k->fp_kind = BUNDLE_FP_KCV;
	memcpy(k->fp, "\x80\x00\x34", 3);
	k->fp_len = 3;
	memset(k->wrapped, 0x5a, 40);
	k->wrapped_len = 40;
}

/* A bundle of two keys for a 2-of-3 split of bmk; its mnemonics in *m. */
static struct bundle *
make_bundle(struct slip39_mnemonic **m, size_t *count)
{
	struct slip39_group g = { 2, 3 };
	struct slip39_share *s = secmem_alloc(sizeof(*s));
	struct bundle *b = bundle_new(2);

	CHECK(b != NULL && s != NULL);
	fill_pair(&b->keys[0]);
	fill_secret(&b->keys[1]);
	CHECK(RAND_bytes(b->set_id, sizeof(b->set_id)) == 1);
	b->created = 1764000000;
	b->wrap_alg = BUNDLE_WRAP_RFC5649;
	b->wrap_mech = 0x210a;
	b->mac_alg = BUNDLE_MAC_HKDF_HMAC_SHA256;
	b->group_threshold = 1;
	b->group_count = 1;
	b->member_threshold[0] = 2;
	b->member_count[0] = 3;
	CHECK_INT(slip39_split(bmk, sizeof(bmk), NULL, 0, 1, &g, 1, 1, 0, m,
	    count), KEYD_OK);
	CHECK_INT(*count, 3);
	for (size_t i = 0; i < *count; i++) {
		CHECK_INT(slip39_decode((*m)[i].text, strlen((*m)[i].text),
		    (int)i, s, NULL), KEYD_OK);
		b->slip39_id = s->id;
		b->ext = s->ext;
		b->iteration_exp = s->iteration_exp;
		b->secret_len = (uint8_t)s->value_len;
		b->commits[i].group = s->group_index;
		b->commits[i].member = s->member_index;
		CHECK_INT(bundle_commit(b->set_id, s, b->commits[i].c), KEYD_OK);
	}
	b->n_commits = *count;
	CHECK_INT(bundle_encode(b, bmk, sizeof(bmk)), KEYD_OK);
	secmem_free(s, sizeof(*s));
	return b;
}

static void
test_round_trip(void)
{
	struct slip39_mnemonic *m = NULL;
	size_t count = 0;
	struct bundle *b = make_bundle(&m, &count), *p = NULL;
	const char *why = NULL;
	uint8_t wrong[BUNDLE_BMK_LEN];

	CHECK_INT(bundle_parse(b->raw, b->raw_len, &p, &why), KEYD_OK);
	CHECK(p != NULL);
	if (p == NULL)
		goto out;
	CHECK(memcmp(p->set_id, b->set_id, BUNDLE_SET_ID_LEN) == 0);
	CHECK(memcmp(p->fingerprint, b->fingerprint, BUNDLE_HASH_LEN) == 0);
	CHECK(p->created == 1764000000);
	CHECK_INT(p->n_keys, 2);
	CHECK_INT(p->wrap_mech, 0x210a);
	CHECK(strcmp(p->keys[0].label, "sip-tls") == 0);
	CHECK(strcmp(p->keys[1].label, "srtp-kek") == 0);
	CHECK_INT(p->keys[0].spki_len, b->keys[0].spki_len);
	CHECK(memcmp(p->keys[0].spki, b->keys[0].spki, p->keys[0].spki_len) ==
	    0);
	CHECK_INT(p->keys[1].fp_len, 3);
	CHECK_INT(p->keys[1].flags, b->keys[1].flags);
	CHECK_INT(p->n_commits, 3);
	CHECK_INT(bundle_verify_mac(p, bmk, sizeof(bmk)), KEYD_OK);
	memcpy(wrong, bmk, sizeof(wrong));
	wrong[31] ^= 1;
	CHECK_INT(bundle_verify_mac(p, wrong, sizeof(wrong)),
	    KEYD_ERR_PASSPHRASE);
	CHECK_INT(bundle_shares_needed(p), 2);
out:
	bundle_free(p);
	bundle_free(b);
	slip39_mnemonics_free(m, count);
}

/* Every prefix is refused; every single-bit change is refused by the
 * parser or, at the latest, by the MAC; a trailing byte is refused. */
static void
test_damage(void)
{
	struct slip39_mnemonic *m = NULL;
	size_t count = 0, caught = 0;
	struct bundle *b = make_bundle(&m, &count), *p = NULL;
	const char *why = NULL;
	uint8_t *copy = malloc(b->raw_len + 1);

	CHECK(copy != NULL);
	for (size_t n = 0; n < b->raw_len; n++) {
		int r = bundle_parse(b->raw, n, &p, &why);

		CHECKF(r == KEYD_ERR_BUNDLE, "prefix of %zu bytes: %d", n, r);
		CHECK(p == NULL);
		bundle_free(p);
		p = NULL;
	}
	for (size_t i = 0; i < b->raw_len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 7) {
			int r;

			memcpy(copy, b->raw, b->raw_len);
			copy[i] ^= (uint8_t)(1u << bit);
			r = bundle_parse(copy, b->raw_len, &p, &why);
			if (r == KEYD_OK) {
				CHECKF(bundle_verify_mac(p, bmk, sizeof(bmk)) ==
				    KEYD_ERR_PASSPHRASE, "byte %zu bit %u passed "
				    "the MAC", i, bit);
				CHECK(memcmp(p->fingerprint, b->fingerprint,
				    BUNDLE_HASH_LEN) != 0);
			} else {
				caught++;
			}
			bundle_free(p);
			p = NULL;
		}
	}
	CHECK(caught > 0);
	memcpy(copy, b->raw, b->raw_len);
	copy[b->raw_len] = 0;
	CHECK_INT(bundle_parse(copy, b->raw_len + 1, &p, &why),
	    KEYD_ERR_BUNDLE);
	CHECK(why != NULL && strcmp(why, "bytes after the MAC") == 0);
	memcpy(copy, b->raw, b->raw_len);
	copy[9] = 2;  /* version 2 */
	CHECK_INT(bundle_parse(copy, b->raw_len, &p, &why), KEYD_ERR_VERSION);
	copy[9] = 1;
	copy[0] = 'X';
	CHECK_INT(bundle_parse(copy, b->raw_len, &p, &why), KEYD_ERR_BUNDLE);
	free(copy);
	bundle_free(b);
	slip39_mnemonics_free(m, count);
}

static void
test_shares(void)
{
	struct slip39_mnemonic *m = NULL, *other = NULL;
	struct slip39_group g = { 2, 3 };
	size_t count = 0, ocount = 0;
	struct bundle *b = make_bundle(&m, &count);
	struct slip39_share *s = secmem_alloc(4 * sizeof(*s));
	const char *why = NULL;

	CHECK(s != NULL);
	for (size_t i = 0; i < count; i++) {
		CHECK_INT(slip39_decode(m[i].text, strlen(m[i].text), (int)i,
		    &s[i], NULL), KEYD_OK);
		CHECK_INT(bundle_check_share(b, &s[i], &why), KEYD_OK);
	}
	CHECK(!bundle_policy_met(b, s, 1));
	CHECK(bundle_policy_met(b, s, 2));
	CHECK(bundle_policy_met(b, &s[1], 2));
	/* The same share value under another identifier: another set. */
	s[3] = s[0];
	s[3].id ^= 1;
	CHECK_INT(bundle_check_share(b, &s[3], &why), KEYD_ERR_SHARE_MISMATCH);
	CHECK(why != NULL && strcmp(why, "identifier") == 0);
	/* Same parameters, another value: not the committed share. */
	s[3] = s[0];
	s[3].value[5] ^= 0x10;
	CHECK_INT(bundle_check_share(b, &s[3], &why), KEYD_ERR_SHARE_MISMATCH);
	CHECK(why != NULL && strcmp(why, "commitment") == 0);
	/* A share of another split with the bundle's identifier forced. */
	CHECK_INT(slip39_split(bmk, sizeof(bmk), NULL, 0, 1, &g, 1, 1, 0,
	    &other, &ocount), KEYD_OK);
	CHECK_INT(slip39_decode(other[0].text, strlen(other[0].text), 0, &s[3],
	    NULL), KEYD_OK);
	s[3].id = b->slip39_id;
	CHECK_INT(bundle_check_share(b, &s[3], &why), KEYD_ERR_SHARE_MISMATCH);
	CHECK(why != NULL && strcmp(why, "commitment") == 0);
	/* The commitment binds the set id. */
	{
		uint8_t c1[BUNDLE_HASH_LEN], c2[BUNDLE_HASH_LEN];
		uint8_t set2[BUNDLE_SET_ID_LEN];

		memcpy(set2, b->set_id, sizeof(set2));
		set2[0] ^= 1;
		CHECK_INT(bundle_commit(b->set_id, &s[0], c1), KEYD_OK);
		CHECK_INT(bundle_commit(set2, &s[0], c2), KEYD_OK);
		CHECK(memcmp(c1, c2, sizeof(c1)) != 0);
	}
	secmem_free(s, 4 * sizeof(*s));
	slip39_mnemonics_free(other, ocount);
	slip39_mnemonics_free(m, count);
	bundle_free(b);
}

static void
test_policy(void)
{
	struct bundle *b = bundle_new(0);
	struct slip39_share s[4];

	CHECK(b != NULL);
	/* 2 of {security 2-of-4, operations 3-of-5, audit 1-of-1}. */
	b->group_threshold = 2;
	b->group_count = 3;
	b->member_threshold[0] = 2;
	b->member_count[0] = 4;
	b->member_threshold[1] = 3;
	b->member_count[1] = 5;
	b->member_threshold[2] = 1;
	b->member_count[2] = 1;
	CHECK_INT(bundle_shares_needed(b), 3);
	memset(s, 0, sizeof(s));
	s[0].group_index = 0;
	s[1].group_index = 0;
	s[2].group_index = 2;
	CHECK(bundle_policy_met(b, s, 3));
	CHECK(!bundle_policy_met(b, s, 2));
	s[2].group_index = 1;
	CHECK(!bundle_policy_met(b, s, 3));
	bundle_free(b);
}

static void
test_limits(void)
{
	struct slip39_mnemonic *m = NULL;
	size_t count = 0;
	struct bundle *b = make_bundle(&m, &count);

	b->keys[0].label_len = BUNDLE_MAX_LABEL + 1;
	CHECK_INT(bundle_encode(b, bmk, sizeof(bmk)), KEYD_ERR_INVALID_ARG);
	b->keys[0].label_len = 7;
	b->keys[1].wrapped_len = BUNDLE_MAX_WRAPPED + 1;
	CHECK_INT(bundle_encode(b, bmk, sizeof(bmk)), KEYD_ERR_INVALID_ARG);
	CHECK(bundle_new(BUNDLE_MAX_KEYS + 1) == NULL);
	bundle_free(b);
	slip39_mnemonics_free(m, count);
}

static void
test_sheet(void)
{
	struct slip39_mnemonic *m = NULL;
	size_t count = 0;
	struct bundle *b = make_bundle(&m, &count);
	struct backup_sheet *sh = secmem_alloc(sizeof(*sh));
	struct kbuf w;
	const char *why = NULL;
	static const char bad[] = "set-id: 00\nno words here: yes\n";
	char name[64];

	kbuf_init(&w, BACKUP_SHARE_MAX_FILE, KBUF_SECRET);
	CHECK(sh != NULL);
	CHECK_INT(backup_share_sheet(&w, b, "b.kbk", &m[1], b->commits[1].c,
	    0), KEYD_OK);
	CHECK_INT(backup_share_parse(kbuf_ptr(&w), kbuf_avail(&w), sh, &why),
	    KEYD_OK);
	CHECK_INT(sh->len, strlen(m[1].text));
	CHECK(memcmp(sh->mnemonic, m[1].text, sh->len) == 0);
	CHECK(sh->has_fp && memcmp(sh->fp, b->fingerprint,
	    BUNDLE_HASH_LEN) == 0);
	CHECK(sh->has_set_id && memcmp(sh->set_id, b->set_id,
	    BUNDLE_SET_ID_LEN) == 0);
	/* Only the words. */
	CHECK_INT(backup_share_parse((const uint8_t *)m[0].text,
	    strlen(m[0].text), sh, &why), KEYD_OK);
	CHECK_INT(sh->len, strlen(m[0].text));
	CHECK(!sh->has_fp);
	/* Fields but no mnemonic. */
	CHECK_INT(backup_share_parse((const uint8_t *)bad, sizeof(bad) - 1, sh,
	    &why), KEYD_ERR_SHARE_FORMAT);
	CHECK(strcmp(backup_share_file_name(b, 1, 2, name, sizeof(name)) + 14,
	    "-g1-m2.txt") == 0);
	kbuf_free(&w);
	secmem_free(sh, sizeof(*sh));
	bundle_free(b);
	slip39_mnemonics_free(m, count);
}

static int
unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s);

	if (n % 2 != 0 || n / 2 > cap)
		return 0;
	*len = n / 2;
	return backup_share_hex(s, n, out, n / 2);
}

/* OpenSSL's RFC 5649 (id-aes192-wrap-pad) of in. */
static size_t
openssl_kwp(const uint8_t *kek, const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;

	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	CHECK(EVP_EncryptInit_ex(c, EVP_aes_192_wrap_pad(), NULL, kek, NULL) ==
	    1);
	CHECK(EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1);
	CHECK(EVP_EncryptFinal_ex(c, out + n, &m) == 1);
	EVP_CIPHER_CTX_free(c);
	return (size_t)(n + m);
}

static void
test_rfc5649_vectors(void)
{
	const char *src = getenv("KEYD_SOURCE_DIR");
	char path[1024], line[MAX_LINE], *val;
	uint8_t kek[24], key[32], buf[64], padded[32], out[64];
	size_t kek_len = 0, key_len = 0, len = 0, example = 0;
	FILE *f;

	CHECK(src != NULL);
	if (src == NULL)
		return;
	snprintf(path, sizeof(path), "%s%s", src, VECTOR_FILE);
	CHECK((f = fopen(path, "r")) != NULL);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0' ||
		    (val = strchr(line, ' ')) == NULL)
			continue;
		*val++ = '\0';
		if (strcmp(line, "kek") == 0) {
			CHECK(unhex(val, kek, sizeof(kek), &kek_len));
			CHECK_INT(kek_len, 24);
			CHECK(memcmp(kek, backup_kat_kek, 24) == 0);
		} else if (strcmp(line, "key") == 0) {
			CHECK(unhex(val, key, sizeof(key), &key_len));
			CHECK(example < 2);
			CHECK_INT(key_len, backup_kats[example].key_len);
			CHECK(memcmp(key, backup_kats[example].key, key_len) ==
			    0);
		} else if (strcmp(line, "wrapped") == 0) {
			CHECK(unhex(val, buf, sizeof(buf), &len));
			CHECK_INT(len, backup_kats[example].wrapped_len);
			CHECK(memcmp(buf, backup_kats[example].wrapped, len) ==
			    0);
			CHECK_INT(openssl_kwp(kek, key, key_len, out), len);
			CHECK(memcmp(out, buf, len) == 0);
		} else if (strcmp(line, "zp-wrapped") == 0) {
			size_t plen = (key_len + 7) / 8 * 8;

			CHECK(unhex(val, buf, sizeof(buf), &len));
			CHECK_INT(len, backup_kats[example].zp_wrapped_len);
			CHECK(memcmp(buf, backup_kats[example].zp_wrapped,
			    len) == 0);
			memset(padded, 0, sizeof(padded));
			memcpy(padded, key, key_len);
			CHECK_INT(openssl_kwp(kek, padded, plen, out), len);
			CHECK(memcmp(out, buf, len) == 0);
			example++;
		}
	}
	fclose(f);
	CHECK_INT(example, 2);
}

int
main(void)
{
	CHECK(RAND_bytes(bmk, sizeof(bmk)) == 1);
	test_round_trip();
	test_damage();
	test_shares();
	test_policy();
	test_limits();
	test_sheet();
	test_rfc5649_vectors();
	return ktest_result("test_bundle");
}
