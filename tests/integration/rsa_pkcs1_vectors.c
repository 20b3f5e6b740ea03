/*
 * rsa_pkcs1_vectors.c: Wycheproof's RSAES-PKCS1-v1_5 vectors against a
 * running keyd, for rsa_pkcs1.sh. Reads the first test group of
 * tests/vectors/wycheproof_rsa_pkcs1_2048_test.json (json-c).
 *
 *   rsa_pkcs1_vectors keyder VECTORS OUT.der
 *	the group's private key, parsed and checked by OpenSSL, written as
 *	unencrypted PKCS#8 DER for pkcs11-tool --write-object
 *   rsa_pkcs1_vectors file VECTORS TCID ct|msg OUT
 *	one test's ciphertext or message, as bytes
 *   rsa_pkcs1_vectors check VECTORS KEY OTHERKEY DUMP
 *	every test through libkeyd (KEYD_SOCKET) on KEY, which has
 *	pkcs1_decrypt = implicit-rejection: valid cases decrypt to their
 *	message; every InvalidPkcs1Padding case succeeds with a message of
 *	a valid one's form, the same twice; malformed ciphertexts (wrong
 *	length, c >= n) get an error. OTHERKEY, without pkcs1_decrypt, must
 *	refuse. The answers to the invalid cases go to DUMP (hex, one a
 *	line), so that the script can compare them across a restart.
 *
 * Prints one line per failure and "N passed, M failed" at the end.
 */
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd.h"

#define MAX_CT 600
#define KEY_BYTES 256   /* the group's key is RSA-2048 */

static int passed, failed;

#define EXPECT(cond, ...) \
	do { \
		if (cond) { \
			passed++; \
		} else { \
			failed++; \
			fprintf(stderr, "FAIL: "); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

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

static json_object *
group(const char *path, json_object **doc)
{
	json_object *groups;

	*doc = json_object_from_file(path);
	if (*doc == NULL || !json_object_object_get_ex(*doc, "testGroups",
	    &groups) || json_object_array_length(groups) < 1) {
		fprintf(stderr, "cannot read the test groups of %s\n", path);
		exit(2);
	}
	return json_object_array_get_idx(groups, 0);
}

static const char *
str(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v))
		return "";
	return json_object_get_string(v);
}

static int
has_flag(json_object *t, const char *flag)
{
	json_object *flags;

	if (!json_object_object_get_ex(t, "flags", &flags))
		return 0;
	for (size_t i = 0; i < json_object_array_length(flags); i++)
		if (strcmp(json_object_get_string(
		    json_object_array_get_idx(flags, i)), flag) == 0)
			return 1;
	return 0;
}

static int
cmd_keyder(const char *vec, const char *out)
{
	json_object *doc, *g = group(vec, &doc), *pkey;
	uint8_t der[4096], n[KEY_BYTES + 1];
	const unsigned char *p = der;
	size_t len, nlen;
	EVP_PKEY *pk;
	BIGNUM *bn = NULL;
	BIO *bio;
	int ok;

	if (unhex(str(g, "privateKeyPkcs8"), der, sizeof(der), &len) != 0 ||
	    (pk = d2i_AutoPrivateKey(NULL, &p, (long)len)) == NULL) {
		fprintf(stderr, "the vector's privateKeyPkcs8 is not a key\n");
		return 1;
	}
	/* The key OpenSSL read is the one the tests are for. */
	json_object_object_get_ex(g, "privateKey", &pkey);
	ok = unhex(str(pkey, "modulus"), n, sizeof(n), &nlen) == 0 &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn) == 1 &&
	    EVP_PKEY_get_size(pk) == KEY_BYTES;
	if (ok) {
		BIGNUM *want = BN_bin2bn(n, (int)nlen, NULL);

		ok = want != NULL && BN_cmp(bn, want) == 0;
		BN_free(want);
	}
	if (!ok) {
		fprintf(stderr, "the vector's key does not match its "
		    "modulus\n");
		return 1;
	}
	bio = BIO_new_file(out, "wb");
	ok = bio != NULL && i2d_PKCS8PrivateKey_bio(bio, pk, NULL, NULL, 0,
	    NULL, NULL) == 1;
	BIO_free(bio);
	BN_free(bn);
	EVP_PKEY_free(pk);
	json_object_put(doc);
	if (!ok) {
		fprintf(stderr, "cannot write %s\n", out);
		return 1;
	}
	return 0;
}

static int
cmd_file(const char *vec, int tcid, const char *field, const char *out)
{
	json_object *doc, *g = group(vec, &doc), *tests;
	uint8_t buf[MAX_CT];
	size_t len;
	FILE *f;

	json_object_object_get_ex(g, "tests", &tests);
	for (size_t i = 0; i < json_object_array_length(tests); i++) {
		json_object *t = json_object_array_get_idx(tests, i), *id;

		json_object_object_get_ex(t, "tcId", &id);
		if (json_object_get_int(id) != tcid)
			continue;
		if (unhex(str(t, field), buf, sizeof(buf), &len) != 0 ||
		    (f = fopen(out, "wb")) == NULL ||
		    fwrite(buf, 1, len, f) != len || fclose(f) != 0)
			return 1;
		json_object_put(doc);
		return 0;
	}
	fprintf(stderr, "no test %d\n", tcid);
	return 1;
}

static void
hexline(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
	fputc('\n', f);
}

static int
cmd_check(const char *vec, const char *key, const char *other,
    const char *dump)
{
	json_object *doc, *g = group(vec, &doc), *tests, *pkey;
	struct keyd_client *c = NULL;
	uint8_t n[KEY_BYTES + 1], first[KEY_BYTES];
	size_t nlen, firstlen = 0, n_invalid = 0, n_same_as_first = 0;
	size_t n_valid = 0, n_malformed = 0;
	FILE *df;
	int r;

	if ((r = keyd_connect(NULL, &c)) != KEYD_OK) {
		fprintf(stderr, "cannot connect: %s\n", keyd_errmsg(NULL));
		return 1;
	}
	if ((df = fopen(dump, "w")) == NULL)
		return 1;
	json_object_object_get_ex(g, "privateKey", &pkey);
	if (unhex(str(pkey, "modulus"), n, sizeof(n), &nlen) != 0 ||
	    nlen != KEY_BYTES + 1)
		return 1;
	json_object_object_get_ex(g, "tests", &tests);
	for (size_t i = 0; i < json_object_array_length(tests); i++) {
		json_object *t = json_object_array_get_idx(tests, i), *id;
		uint8_t ct[MAX_CT], msg[MAX_CT], a[KEY_BYTES], b[KEY_BYTES];
		size_t ctlen, msglen, alen = sizeof(a), blen = sizeof(b);
		int tc, ra, rb, malformed;
		const char *result = str(t, "result");

		json_object_object_get_ex(t, "tcId", &id);
		tc = json_object_get_int(id);
		if (unhex(str(t, "ct"), ct, sizeof(ct), &ctlen) != 0 ||
		    unhex(str(t, "msg"), msg, sizeof(msg), &msglen) != 0) {
			EXPECT(0, "tcId %d: bad hex in the vector", tc);
			continue;
		}
		/* Public malformations: the wrong length, or c >= n. */
		malformed = ctlen != KEY_BYTES || memcmp(ct, n + 1,
		    KEY_BYTES) >= 0;
		ra = keyd_decrypt(c, key, KEYD_RSA_PKCS1, ct, ctlen, a, &alen);
		if (malformed) {
			n_malformed++;
			EXPECT(ra == KEYD_ERR_BAD_LENGTH || ra ==
			    KEYD_ERR_DECRYPT || ra == KEYD_ERR_INVALID_ARG,
			    "tcId %d (%s): malformed ciphertext of %zu bytes: "
			    "%s (%s)", tc, str(t, "comment"), ctlen,
			    keyd_strerror(ra), keyd_errmsg(c));
			continue;
		}
		EXPECT(ra == KEYD_OK, "tcId %d (%s): %s (%s)", tc,
		    str(t, "comment"), keyd_strerror(ra), keyd_errmsg(c));
		if (ra != KEYD_OK)
			continue;
		EXPECT(alen <= KEY_BYTES - 11, "tcId %d: %zu bytes", tc, alen);
		if (strcmp(result, "valid") == 0) {
			n_valid++;
			EXPECT(alen == msglen && memcmp(a, msg, msglen) == 0,
			    "tcId %d (%s): plaintext differs (%zu bytes, want "
			    "%zu)", tc, str(t, "comment"), alen, msglen);
			continue;
		}
		EXPECT(has_flag(t, "InvalidPkcs1Padding"), "tcId %d: invalid "
		    "but neither malformed nor InvalidPkcs1Padding", tc);
		n_invalid++;
		/* The same answer twice. */
		rb = keyd_decrypt(c, key, KEYD_RSA_PKCS1, ct, ctlen, b, &blen);
		EXPECT(rb == KEYD_OK && blen == alen && memcmp(a, b, alen) == 0,
		    "tcId %d (%s): a second decryption differs", tc,
		    str(t, "comment"));
		/* Synthetic, not the message the padding was built around. */
		EXPECT(!(alen == msglen && memcmp(a, msg, msglen) == 0),
		    "tcId %d: the invalid padding was accepted", tc);
		if (n_invalid == 1) {
			memcpy(first, a, alen);
			firstlen = alen;
		} else if (alen == firstlen && memcmp(a, first, alen) == 0) {
			n_same_as_first++;
		}
		fprintf(df, "%d ", tc);
		hexline(df, a, alen);
	}
	/* Each ciphertext gets its own synthetic message. */
	EXPECT(n_same_as_first == 0, "%zu invalid cases share one answer",
	    n_same_as_first + 1);
	EXPECT(n_valid >= 10 && n_invalid >= 15 && n_malformed >= 5,
	    "ran %zu valid, %zu invalid, %zu malformed cases", n_valid,
	    n_invalid, n_malformed);
	printf("ok: %zu valid, %zu InvalidPkcs1Padding, %zu malformed cases\n",
	    n_valid, n_invalid, n_malformed);

	/* A key without pkcs1_decrypt refuses, with a clear error. */
	{
		uint8_t ct[MAX_CT], out[KEY_BYTES];
		size_t ctlen, outlen = sizeof(out);

		unhex(str(json_object_array_get_idx(tests, 2), "ct"), ct,
		    sizeof(ct), &ctlen);
		r = keyd_decrypt(c, other, KEYD_RSA_PKCS1, ct, ctlen, out,
		    &outlen);
		EXPECT(r == KEYD_ERR_DENIED && strstr(keyd_errmsg(c),
		    "pkcs1_decrypt = implicit-rejection") != NULL,
		    "key %s without pkcs1_decrypt: %s (%s)", other,
		    keyd_strerror(r), keyd_errmsg(c));
	}
	fclose(df);
	keyd_close(c);
	json_object_put(doc);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "keyder") == 0)
		return cmd_keyder(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "file") == 0)
		return cmd_file(argv[2], atoi(argv[3]), argv[4], argv[5]);
	if (argc == 6 && strcmp(argv[1], "check") == 0)
		return cmd_check(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: rsa_pkcs1_vectors keyder VECTORS OUT | file "
	    "VECTORS TCID ct|msg OUT | check VECTORS KEY OTHERKEY DUMP\n");
	return 2;
}
