/*
 * test_rsa_ir.c: PKCS#1 v1.5 decoding with implicit rejection (rsa_ir).
 *
 * - OpenSSL's own implicit-rejection test vectors (OpenSSL >= 3.2,
 *   tests/vectors/openssl_rsa_implicit_rejection.json): with the secret set
 *   to SHA-256(d), as OpenSSL keys its KDK, rsa_ir must give OpenSSL's
 *   synthetic messages byte for byte. That proves the KDK, the PRF and the
 *   length choice follow draft-irtf-cfrg-rsa-guidance as OpenSSL does.
 * - Valid paddings against OpenSSL 3.0's RSA_PKCS1_PADDING decryption
 *   (Debian 12's OpenSSL has no implicit rejection to compare with).
 * - Invalid paddings: success, determinism, the length rule, dependence on
 *   the secret and on the ciphertext, and agreement with a plain
 *   (branching) reading of the draft written out below.
 */
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "ktest.h"
#include "rsa_ir.h"

#define MAXK RSA_IR_MAX_BYTES

static int
unhex(const char *s, uint8_t *out, size_t room, size_t *len)
{
	size_t n = strlen(s);

	if (n % 2 != 0 || n / 2 > room)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

/* m = c^d mod n with OpenSSL, k bytes. */
static int
raw_private(EVP_PKEY *pk, const uint8_t *ct, size_t k, uint8_t *em)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
	size_t len = k;
	int ok;

	ok = ctx != NULL && EVP_PKEY_decrypt_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1 &&
	    EVP_PKEY_decrypt(ctx, em, &len, ct, k) == 1 && len == k;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* The secret OpenSSL uses for its KDK: SHA-256(I2OSP(d, k)). */
static int
openssl_secret(EVP_PKEY *pk, size_t k, uint8_t secret[RSA_IR_SECRET_LEN])
{
	BIGNUM *d = NULL;
	uint8_t dbuf[MAXK];
	int ok;

	ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &d) == 1 &&
	    BN_bn2binpad(d, dbuf, (int)k) == (int)k &&
	    SHA256(dbuf, k, secret) != NULL;
	BN_clear_free(d);
	OPENSSL_cleanse(dbuf, sizeof(dbuf));
	return ok ? 0 : -1;
}

/* The draft's decoding, written plainly (with branches) as the reference
 * for the constant-time code. */
static size_t
ref_unpad(const uint8_t *secret, const uint8_t *ct, const uint8_t *em,
    size_t k, uint8_t *out)
{
	uint8_t kdk[RSA_IR_KDK_LEN], synth[MAXK], lens[256];
	size_t max = k - 10, mask = max, len = 0, i, zero = 0;

	if (rsa_ir_kdk(secret, ct, k, kdk) != KEYD_OK ||
	    rsa_ir_prf(kdk, "message", synth, k) != KEYD_OK ||
	    rsa_ir_prf(kdk, "length", lens, sizeof(lens)) != KEYD_OK)
		abort();
	for (i = 1; i < 16; i <<= 1)
		mask |= mask >> i;
	for (i = 0; i < sizeof(lens); i += 2) {
		size_t c = ((size_t)lens[i] << 8 | lens[i + 1]) & mask;

		if (c < max)
			len = c;
	}
	for (i = 2; i < k; i++)
		if (em[i] == 0) {
			zero = i;
			break;
		}
	if (em[0] == 0 && em[1] == 2 && zero >= 10) {
		memcpy(out, em + zero + 1, k - zero - 1);
		return k - zero - 1;
	}
	memcpy(out, synth + k - len, len);
	return len;
}

static EVP_PKEY *
keygen(unsigned bits)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pk = NULL;

	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) != 1 ||
	    EVP_PKEY_keygen(ctx, &pk) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

/* OpenSSL's implicit-rejection vectors: real and synthetic messages. */
static void
test_openssl_vectors(void)
{
	const char *src = getenv("KEYD_SOURCE_DIR");
	char path[4096];
	json_object *doc, *keys;
	size_t ntests = 0;

	snprintf(path, sizeof(path), "%s/tests/vectors/"
	    "openssl_rsa_implicit_rejection.json", src != NULL ? src : ".");
	doc = json_object_from_file(path);
	CHECKF(doc != NULL, "cannot read %s", path);
	if (doc == NULL || !json_object_object_get_ex(doc, "keys", &keys))
		return;
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		json_object *key = json_object_array_get_idx(keys, i), *o;
		json_object *tests;
		const char *pem, *name;
		BIO *bio;
		EVP_PKEY *pk;
		uint8_t secret[RSA_IR_SECRET_LEN];
		size_t k;

		CHECK(json_object_object_get_ex(key, "pem", &o));
		pem = json_object_get_string(o);
		json_object_object_get_ex(key, "name", &o);
		name = json_object_get_string(o);
		bio = BIO_new_mem_buf(pem, -1);
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
		CHECKF(pk != NULL, "key %s", name);
		if (pk == NULL)
			continue;
		k = (size_t)EVP_PKEY_get_size(pk);
		CHECK(openssl_secret(pk, k, secret) == 0);
		CHECK(json_object_object_get_ex(key, "tests", &tests));
		for (size_t j = 0; j < json_object_array_length(tests); j++) {
			json_object *t = json_object_array_get_idx(tests, j);
			uint8_t ct[MAXK], em[MAXK], want[MAXK], got[MAXK];
			size_t ctlen, wantlen, gotlen = 0;
			const char *comment;

			json_object_object_get_ex(t, "comment", &o);
			comment = json_object_get_string(o);
			json_object_object_get_ex(t, "ct", &o);
			CHECK(unhex(json_object_get_string(o), ct, sizeof(ct),
			    &ctlen) == 0);
			json_object_object_get_ex(t, "msg", &o);
			CHECK(unhex(json_object_get_string(o), want,
			    sizeof(want), &wantlen) == 0);
			CHECKF(ctlen == k, "%s: %s: ciphertext of %zu bytes",
			    name, comment, ctlen);
			if (ctlen != k || raw_private(pk, ct, k, em) != 0) {
				CHECKF(0, "%s: %s: raw RSA failed", name,
				    comment);
				continue;
			}
			CHECK_INT(rsa_ir_unpad(secret, ct, em, k, got,
			    sizeof(got), &gotlen), KEYD_OK);
			CHECKF(gotlen == wantlen && memcmp(got, want,
			    wantlen) == 0, "%s: %s: got %zu bytes, want %zu",
			    name, comment, gotlen, wantlen);
			ntests++;
		}
		OPENSSL_cleanse(secret, sizeof(secret));
		EVP_PKEY_free(pk);
	}
	CHECKF(ntests >= 20, "only %zu OpenSSL vectors ran", ntests);
	json_object_put(doc);
}

/* Valid paddings of every length class decode to the message, as OpenSSL
 * 3.0's own PKCS#1 v1.5 decryption says. */
static void
test_valid_against_openssl(EVP_PKEY *pk)
{
	size_t k = (size_t)EVP_PKEY_get_size(pk), max = RSA_IR_MAX_MSG(k);
	uint8_t secret[RSA_IR_SECRET_LEN];
	size_t lens[] = { 0, 1, 2, 3, 16, 31, 32, 33, 48, 100, max / 2,
	    max - 2, max - 1, max };

	CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t msg[MAXK], ct[MAXK], em[MAXK], got[MAXK], ref[MAXK];
		size_t mlen = lens[i], ctlen = sizeof(ct), gotlen = 0,
		    reflen = sizeof(ref);
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

		CHECK(RAND_bytes(msg, (int)mlen + 1) == 1);
		CHECK(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_encrypt(ctx, ct, &ctlen, msg, mlen) == 1 &&
		    ctlen == k);
		/* OpenSSL 3.0's decryption, the reference for a valid
		 * padding. */
		CHECK(EVP_PKEY_decrypt_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_decrypt(ctx, ref, &reflen, ct, k) == 1);
		EVP_PKEY_CTX_free(ctx);
		CHECK(raw_private(pk, ct, k, em) == 0);
		CHECK_INT(rsa_ir_unpad(secret, ct, em, k, got, max, &gotlen),
		    KEYD_OK);
		CHECKF(gotlen == mlen && memcmp(got, msg, mlen) == 0 &&
		    reflen == mlen && memcmp(ref, msg, mlen) == 0,
		    "k=%zu, message of %zu bytes: got %zu, OpenSSL %zu", k,
		    mlen, gotlen, reflen);
		/* Bytes past the message are cleared. */
		for (size_t j = gotlen; j < max; j++)
			if (got[j] != 0) {
				CHECKF(0, "byte %zu past the message is set",
				    j);
				break;
			}
	}
}

/* One invalid encoded message: success, the length rule, determinism,
 * agreement with ref_unpad, and dependence on the secret and the
 * ciphertext. */
static void
check_invalid(const char *what, const uint8_t *em, size_t k)
{
	uint8_t s1[RSA_IR_SECRET_LEN], s2[RSA_IR_SECRET_LEN];
	uint8_t ct[MAXK], ct2[MAXK], a[MAXK], b[MAXK], c[MAXK], ref[MAXK];
	size_t alen = 0, blen = 0, clen = 0, reflen, max = RSA_IR_MAX_MSG(k);

	CHECK(RAND_bytes(s1, sizeof(s1)) == 1);
	memcpy(s2, s1, sizeof(s2));
	s2[7] ^= 0x40;
	CHECK(RAND_bytes(ct, (int)k) == 1);
	memcpy(ct2, ct, k);
	ct2[k - 1] ^= 1;

	CHECK_INT(rsa_ir_unpad(s1, ct, em, k, a, max, &alen), KEYD_OK);
	CHECKF(alen <= max, "%s: synthetic length %zu over %zu", what, alen,
	    max);
	CHECK_INT(rsa_ir_unpad(s1, ct, em, k, b, max, &blen), KEYD_OK);
	CHECKF(alen == blen && memcmp(a, b, alen) == 0, "%s: not "
	    "deterministic", what);
	reflen = ref_unpad(s1, ct, em, k, ref);
	CHECKF(alen == reflen && memcmp(a, ref, alen) == 0, "%s: differs "
	    "from the reference (%zu vs %zu bytes)", what, alen, reflen);
	/* Another key's secret, or another ciphertext, gives another
	 * message: equal outputs are only possible (about 1 in 245) when
	 * both are empty, so compare the KDKs as well. */
	CHECK_INT(rsa_ir_unpad(s2, ct, em, k, c, max, &clen), KEYD_OK);
	CHECKF(clen != alen || (alen > 0 && memcmp(a, c, alen) != 0) ||
	    alen == 0, "%s: same output under another secret", what);
	CHECK_INT(rsa_ir_unpad(s1, ct2, em, k, c, max, &clen), KEYD_OK);
	CHECKF(clen != alen || (alen > 0 && memcmp(a, c, alen) != 0) ||
	    alen == 0, "%s: same output for another ciphertext", what);
	{
		uint8_t k1[RSA_IR_KDK_LEN], k2[RSA_IR_KDK_LEN],
		    k3[RSA_IR_KDK_LEN];

		CHECK(rsa_ir_kdk(s1, ct, k, k1) == KEYD_OK &&
		    rsa_ir_kdk(s2, ct, k, k2) == KEYD_OK &&
		    rsa_ir_kdk(s1, ct2, k, k3) == KEYD_OK);
		CHECK(memcmp(k1, k2, sizeof(k1)) != 0 &&
		    memcmp(k1, k3, sizeof(k1)) != 0);
	}
}

static const uint8_t fixed_secret[RSA_IR_SECRET_LEN] = "0123456789abcdef"
    "0123456789abcde";

static void
test_invalid(size_t k)
{
	uint8_t em[MAXK], out[MAXK];
	size_t outlen, i, seen_len[MAXK] = { 0 }, distinct = 0, maxlen = 0;
	char what[64];

	/* A valid base: 00 02 PS(nonzero) 00 "Test". */
#define BASE() do { \
		CHECK(RAND_bytes(em, (int)k) == 1); \
		for (i = 0; i < k; i++) \
			em[i] |= em[i] == 0; \
		em[0] = 0; em[1] = 2; em[k - 5] = 0; \
		memcpy(em + k - 4, "Test", 4); \
	} while (0)

	BASE();
	CHECK_INT(rsa_ir_unpad(fixed_secret, em, em, k, out,
	    RSA_IR_MAX_MSG(k), &outlen), KEYD_OK);
	CHECK(outlen == 4 && memcmp(out, "Test", 4) == 0);

	BASE(); em[0] = 1; check_invalid("first byte 1", em, k);
	BASE(); em[1] = 0; check_invalid("block type 0", em, k);
	BASE(); em[1] = 1; check_invalid("block type 1", em, k);
	BASE(); em[1] = 0xff; check_invalid("block type ff", em, k);
	BASE(); em[k - 5] = 1; check_invalid("no separator", em, k);
	for (size_t z = 2; z < 10; z++) {
		BASE();
		em[z] = 0;
		snprintf(what, sizeof(what), "zero at %zu (PS too short)", z);
		check_invalid(what, em, k);
	}
	memset(em, 0, k);
	check_invalid("all zero", em, k);
	memset(em, 0xff, k);
	check_invalid("all ff", em, k);

	/* PS of exactly 8 bytes is valid; 7 is not. */
	BASE(); em[10] = 0;
	CHECK_INT(rsa_ir_unpad(fixed_secret, em, em, k, out,
	    RSA_IR_MAX_MSG(k), &outlen), KEYD_OK);
	CHECK(outlen == RSA_IR_MAX_MSG(k) && memcmp(out, em + 11,
	    outlen) == 0);
	/* A valid empty message: the separator is the last byte. */
	BASE(); em[k - 5] = 1; em[k - 1] = 0;
	CHECK_INT(rsa_ir_unpad(fixed_secret, em, em, k, out,
	    RSA_IR_MAX_MSG(k), &outlen), KEYD_OK);
	CHECK_INT(outlen, 0);

	/* Synthetic lengths spread over [0, k - 11]. */
	for (int n = 0; n < 300; n++) {
		uint8_t secret[RSA_IR_SECRET_LEN], ct[MAXK];

		CHECK(RAND_bytes(secret, sizeof(secret)) == 1 &&
		    RAND_bytes(ct, (int)k) == 1);
		BASE(); em[1] = 3;
		CHECK_INT(rsa_ir_unpad(secret, ct, em, k, out,
		    RSA_IR_MAX_MSG(k), &outlen), KEYD_OK);
		if (outlen > RSA_IR_MAX_MSG(k)) {
			CHECKF(0, "length %zu", outlen);
			continue;
		}
		distinct += seen_len[outlen]++ == 0;
		maxlen = outlen > maxlen ? outlen : maxlen;
	}
	CHECKF(distinct > 100, "k=%zu: only %zu distinct synthetic lengths "
	    "in 300", k, distinct);
	CHECKF(maxlen > RSA_IR_MAX_MSG(k) * 3 / 4, "k=%zu: longest synthetic "
	    "message %zu", k, maxlen);
#undef BASE
}

static void
test_args(void)
{
	uint8_t secret[RSA_IR_SECRET_LEN] = { 0 }, buf[MAXK + 16] = { 0 };
	uint8_t kdk[RSA_IR_KDK_LEN] = { 0 }, c0[300], c1[300];
	size_t outlen;

	CHECK_INT(rsa_ir_unpad(secret, buf, buf, RSA_IR_MIN_BYTES - 1, buf,
	    sizeof(buf), &outlen), KEYD_ERR_INVALID_ARG);
	CHECK_INT(rsa_ir_unpad(secret, buf, buf, MAXK + 1, buf, sizeof(buf),
	    &outlen), KEYD_ERR_INVALID_ARG);
	CHECK_INT(rsa_ir_unpad(secret, buf, buf, 256, buf,
	    RSA_IR_MAX_MSG(256) - 1, &outlen), KEYD_ERR_INVALID_ARG);
	CHECK_INT(rsa_ir_prf(kdk, "message", buf, 0), KEYD_ERR_INVALID_ARG);
	/* The smallest modulus keyd takes: only a zero-length synthetic
	 * message fits. */
	CHECK_INT(rsa_ir_unpad(secret, buf, buf, RSA_IR_MIN_BYTES, buf,
	    0, &outlen), KEYD_OK);
	CHECK_INT(outlen, 0);

	/* c0: fixed, below any modulus of its length, and a prefix of the
	 * longer one. */
	rsa_ir_fixed_input(c0, 257);
	rsa_ir_fixed_input(c1, 257);
	CHECK(memcmp(c0, c1, 257) == 0);
	CHECK(c0[0] == 0 && c0[1] != 0);
	rsa_ir_fixed_input(c1, 100);
	CHECK(memcmp(c0, c1, 100) == 0);
	{
		static const char label[] = "keyd implicit rejection v1";
		uint8_t in[sizeof(label) - 1 + 4] = { 0 }, h[32];

		memcpy(in, label, sizeof(label) - 1);
		SHA256(in, sizeof(in), h);
		CHECK(memcmp(c0 + 1, h + 1, 31) == 0);
	}
}

int
main(void)
{
	EVP_PKEY *k2048 = keygen(2048), *k1025 = keygen(1025);

	CHECK(k2048 != NULL && k1025 != NULL);
	test_openssl_vectors();
	if (k2048 != NULL)
		test_valid_against_openssl(k2048);
	if (k1025 != NULL)
		test_valid_against_openssl(k1025);
	test_invalid(256);
	test_invalid(129);
	test_invalid(1024);
	test_args();
	EVP_PKEY_free(k2048);
	EVP_PKEY_free(k1025);
	return ktest_result("test_rsa_ir");
}
