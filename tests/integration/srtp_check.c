/*
 * srtp_check: checks of keyd's SRTP operations for the srtp*.sh tests,
 * through libkeyd (so that errors are checked by their exact code) and,
 * for the blob format, through an independent implementation of
 * docs/srtp.md with OpenSSL.
 *
 * usage: srtp_check lengths KEY
 *        srtp_check tamper KEY
 *        srtp_check bind KEY SAME_KEK_KEY OTHER_KEK_KEY
 *        srtp_check verify KEK_HEX KEY CONTEXT BLOB_B64 INLINE
 *        srtp_check kcv KEK_HEX        (prints kek-xxxxxx)
 *        srtp_check blob-kek BLOB_B64  (prints kek-xxxxxx of its header)
 * keyd's socket is $KEYD_SOCKET. Exit 0 when every check passed, else 1
 * with one line on stderr per failed check.
 */
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd.h"

#define HDR_LEN 9
#define IV_LEN 12
#define TAG_LEN 16
#define AAD_DOMAIN "keyd srtp blob"

static const struct {
	int suite;
	const char *name;
	size_t key_len, salt_len;
} suites[] = {
	{ KEYD_SRTP_AES_CM_128_HMAC_SHA1_80, "AES_CM_128_HMAC_SHA1_80", 16, 14 },
	{ KEYD_SRTP_AES_CM_128_HMAC_SHA1_32, "AES_CM_128_HMAC_SHA1_32", 16, 14 },
	{ KEYD_SRTP_AES_256_CM_HMAC_SHA1_80, "AES_256_CM_HMAC_SHA1_80", 32, 14 },
	{ KEYD_SRTP_AES_256_CM_HMAC_SHA1_32, "AES_256_CM_HMAC_SHA1_32", 32, 14 },
	{ KEYD_SRTP_AEAD_AES_128_GCM, "AEAD_AES_128_GCM", 16, 12 },
	{ KEYD_SRTP_AEAD_AES_256_GCM, "AEAD_AES_256_GCM", 32, 12 },
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static int failures;

static void __attribute__((format(printf, 1, 2)))
bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static struct keyd_client *
connect_or_die(void)
{
	struct keyd_client *c;

	if (keyd_connect(NULL, &c) != KEYD_OK) {
		fprintf(stderr, "srtp_check: cannot connect: %s\n",
		    keyd_errmsg(NULL));
		exit(1);
	}
	return c;
}

struct made {
	uint8_t ks[KEYD_SRTP_MAX_KEY_SALT];
	size_t kslen;
	char params[KEYD_SRTP_MAX_KEY_PARAMS];
	uint8_t blob[KEYD_SRTP_MAX_BLOB];
	size_t bloblen;
};

static int
make(struct keyd_client *c, const char *key, int suite, const char *ctx,
    struct made *m)
{
	int r;

	m->kslen = sizeof(m->ks);
	m->bloblen = sizeof(m->blob);
	r = keyd_srtp_new(c, key, suite, ctx, strlen(ctx), m->ks, &m->kslen,
	    m->params, sizeof(m->params), m->blob, &m->bloblen);
	if (r != KEYD_OK)
		bad("srtp-new %s suite %d: %s: %s", key, suite,
		    keyd_strerror(r), keyd_errmsg(c));
	return r;
}

/* Opens a blob; returns the KEYD_ERR_* code. */
static int
open_blob(struct keyd_client *c, const char *key, const uint8_t *blob,
    size_t len, const char *ctx, struct made *out, int *suite)
{
	out->kslen = sizeof(out->ks);
	return keyd_srtp_open(c, key, blob, len, ctx, strlen(ctx), suite,
	    out->ks, &out->kslen, out->params, sizeof(out->params));
}

static int
cmd_lengths(const char *key)
{
	struct keyd_client *c = connect_or_die();
	struct made m, m2, o;
	char want[KEYD_SRTP_MAX_KEY_PARAMS];
	size_t kl, sl, i;
	int suite;

	for (i = 0; i < NSUITES; i++) {
		if (keyd_srtp_suite_lengths(suites[i].suite, &kl, &sl) !=
		    KEYD_OK || kl != suites[i].key_len ||
		    sl != suites[i].salt_len)
			bad("%s: libkeyd says key %zu salt %zu", suites[i].name,
			    kl, sl);
		if (make(c, key, suites[i].suite, "lengths", &m) != KEYD_OK ||
		    make(c, key, suites[i].suite, "lengths", &m2) != KEYD_OK)
			continue;
		if (m.kslen != suites[i].key_len + suites[i].salt_len)
			bad("%s: key||salt is %zu bytes, not %zu+%zu",
			    suites[i].name, m.kslen, suites[i].key_len,
			    suites[i].salt_len);
		memcpy(want, "inline:", 7);
		EVP_EncodeBlock((unsigned char *)want + 7, m.ks, (int)m.kslen);
		if (strcmp(want, m.params) != 0)
			bad("%s: key-params %s is not inline:base64(key||salt)",
			    suites[i].name, m.params);
		if (m.bloblen != HDR_LEN + IV_LEN + m.kslen + TAG_LEN)
			bad("%s: blob is %zu bytes, not %zu", suites[i].name,
			    m.bloblen, HDR_LEN + IV_LEN + m.kslen + TAG_LEN);
		if (memcmp(m.blob, "kSRT", 4) != 0 || m.blob[4] != 1 ||
		    m.blob[5] != suites[i].suite)
			bad("%s: blob header is not kSRT, 1, %d", suites[i].name,
			    suites[i].suite);
		/* Two keys of a suite differ, and so do their IVs. */
		if (m.kslen == m2.kslen && memcmp(m.ks, m2.ks, m.kslen) == 0)
			bad("%s: two srtp-new gave the same key", suites[i].name);
		if (memcmp(m.blob + HDR_LEN, m2.blob + HDR_LEN, IV_LEN) == 0)
			bad("%s: two blobs have the same IV", suites[i].name);
		if (open_blob(c, key, m.blob, m.bloblen, "lengths", &o,
		    &suite) != KEYD_OK) {
			bad("%s: srtp-open of a fresh blob failed: %s",
			    suites[i].name, keyd_errmsg(c));
			continue;
		}
		if (o.kslen != m.kslen || memcmp(o.ks, m.ks, m.kslen) != 0 ||
		    strcmp(o.params, m.params) != 0 ||
		    suite != suites[i].suite)
			bad("%s: srtp-open gave another key, salt or suite",
			    suites[i].name);
		else
			printf("ok: %s: key %zu + salt %zu bytes, blob %zu bytes, "
			    "round trip\n", suites[i].name, suites[i].key_len,
			    suites[i].salt_len, m.bloblen);
	}
	keyd_close(c);
	return failures ? 1 : 0;
}

static void
expect_blob_err(struct keyd_client *c, const char *key, const uint8_t *b,
    size_t len, const char *ctx, const char *what)
{
	struct made o;
	int r = open_blob(c, key, b, len, ctx, &o, NULL);

	if (r != KEYD_ERR_BLOB)
		bad("%s: srtp-open gave %s, not KEYD_ERR_BLOB (%s)", what,
		    keyd_strerror(r), keyd_errmsg(c));
}

static int
cmd_tamper(const char *key)
{
	struct keyd_client *c = connect_or_die();
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	uint8_t t[KEYD_SRTP_MAX_BLOB + 1];
	char what[128];
	struct made m, o;
	size_t i, j, n, checks = 0;

	for (i = 0; i < NSUITES; i++) {
		if (make(c, key, suites[i].suite, "call-1", &m) != KEYD_OK)
			continue;
		for (j = 0; j < m.bloblen; j++)
			for (n = 0; n < sizeof(masks); n++) {
				memcpy(t, m.blob, m.bloblen);
				t[j] ^= masks[n];
				snprintf(what, sizeof(what), "%s: byte %zu ^ "
				    "0x%02x", suites[i].name, j, masks[n]);
				expect_blob_err(c, key, t, m.bloblen, "call-1",
				    what);
				checks++;
			}
		for (j = 0; j < m.bloblen; j++) {
			snprintf(what, sizeof(what), "%s: truncated to %zu",
			    suites[i].name, j);
			expect_blob_err(c, key, m.blob, j, "call-1", what);
			checks++;
		}
		memcpy(t, m.blob, m.bloblen);
		t[m.bloblen] = 0;
		snprintf(what, sizeof(what), "%s: one byte appended",
		    suites[i].name);
		expect_blob_err(c, key, t, m.bloblen + 1, "call-1", what);
		checks++;
		/* The control: the untouched blob still opens. */
		if (open_blob(c, key, m.blob, m.bloblen, "call-1", &o, NULL) !=
		    KEYD_OK || o.kslen != m.kslen ||
		    memcmp(o.ks, m.ks, m.kslen) != 0)
			bad("%s: the untouched blob does not open: %s",
			    suites[i].name, keyd_errmsg(c));
	}
	printf("ok: %zu altered or truncated blobs checked\n", checks);
	keyd_close(c);
	return failures ? 1 : 0;
}

static int
cmd_bind(const char *key, const char *same_kek, const char *other_kek)
{
	struct keyd_client *c = connect_or_die();
	struct made m, o;

	if (make(c, key, KEYD_SRTP_AEAD_AES_128_GCM, "call-A", &m) != KEYD_OK)
		return 1;
	/* Control: the right key and context open it. */
	if (open_blob(c, key, m.blob, m.bloblen, "call-A", &o, NULL) !=
	    KEYD_OK || memcmp(o.ks, m.ks, m.kslen) != 0)
		bad("the blob does not open with its own key and context: %s",
		    keyd_errmsg(c));
	expect_blob_err(c, key, m.blob, m.bloblen, "call-B", "another context");
	expect_blob_err(c, key, m.blob, m.bloblen, "", "no context");
	expect_blob_err(c, key, m.blob, m.bloblen, "call-A\n",
	    "a context one byte longer");
	expect_blob_err(c, same_kek, m.blob, m.bloblen, "call-A",
	    "another key name over the same KEK");
	expect_blob_err(c, other_kek, m.blob, m.bloblen, "call-A",
	    "another key with another KEK");
	/* An empty context is a context too: it must match. */
	if (make(c, key, KEYD_SRTP_AES_CM_128_HMAC_SHA1_80, "", &m) ==
	    KEYD_OK) {
		if (open_blob(c, key, m.blob, m.bloblen, "", &o, NULL) !=
		    KEYD_OK)
			bad("a blob without context does not open: %s",
			    keyd_errmsg(c));
		expect_blob_err(c, key, m.blob, m.bloblen, "x",
		    "a context where none was given");
	}
	if (!failures)
		printf("ok: blobs are bound to their key name and context\n");
	keyd_close(c);
	return failures ? 1 : 0;
}

static int
hex_decode(const char *hex, uint8_t *out, size_t room, size_t *len)
{
	size_t n = strlen(hex), i;
	unsigned v;

	if (n % 2 != 0 || n / 2 > room)
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static int
b64_decode(const char *s, uint8_t *out, size_t room, size_t *len)
{
	size_t n = strlen(s), pad = 0;
	int got;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > room)
		return -1;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (got < 0)
		return -1;
	*len = (size_t)got - pad;
	return 0;
}

static void
kcv(const uint8_t *kek, size_t keklen, uint8_t out[3])
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	uint8_t zero[16] = { 0 }, ct[32];
	int n = 0;

	if (x == NULL || !EVP_EncryptInit_ex(x, keklen == 32 ?
	    EVP_aes_256_ecb() : EVP_aes_128_ecb(), NULL, kek, NULL) ||
	    !EVP_CIPHER_CTX_set_padding(x, 0) ||
	    !EVP_EncryptUpdate(x, ct, &n, zero, 16) || n != 16) {
		fprintf(stderr, "srtp_check: AES-ECB failed\n");
		exit(1);
	}
	EVP_CIPHER_CTX_free(x);
	memcpy(out, ct, 3);
}

static void
put_lp(uint8_t *aad, size_t *n, const void *p, size_t len)
{
	aad[(*n)++] = (uint8_t)(len >> 24);
	aad[(*n)++] = (uint8_t)(len >> 16);
	aad[(*n)++] = (uint8_t)(len >> 8);
	aad[(*n)++] = (uint8_t)len;
	memcpy(aad + *n, p, len);
	*n += len;
}

/* Opens a blob as docs/srtp.md describes it, with the KEK's value. */
static int
cmd_verify(const char *kekhex, const char *key, const char *ctx,
    const char *blob64, const char *inl)
{
	uint8_t kek[32], blob[256], aad[2048], pt[64], k3[3];
	char want[128];
	size_t keklen, bloblen, aadlen = 0, ctlen;
	EVP_CIPHER_CTX *x;
	int n, ok;

	if (hex_decode(kekhex, kek, sizeof(kek), &keklen) != 0 ||
	    (keklen != 16 && keklen != 32) ||
	    b64_decode(strncmp(blob64, "blob:", 5) == 0 ? blob64 + 5 : blob64,
	    blob, sizeof(blob), &bloblen) != 0 || bloblen < HDR_LEN + IV_LEN +
	    TAG_LEN || strlen(key) + strlen(ctx) > 1024) {
		fprintf(stderr, "srtp_check verify: bad arguments\n");
		return 1;
	}
	kcv(kek, keklen, k3);
	if (memcmp(blob + 6, k3, 3) != 0)
		bad("the blob's KEK version is not the KEK's check value");
	put_lp(aad, &aadlen, AAD_DOMAIN, strlen(AAD_DOMAIN));
	put_lp(aad, &aadlen, blob, HDR_LEN);
	put_lp(aad, &aadlen, key, strlen(key));
	put_lp(aad, &aadlen, ctx, strlen(ctx));
	ctlen = bloblen - HDR_LEN - IV_LEN - TAG_LEN;
	if ((x = EVP_CIPHER_CTX_new()) == NULL || ctlen > sizeof(pt))
		return 1;
	ok = EVP_DecryptInit_ex(x, keklen == 32 ? EVP_aes_256_gcm() :
	    EVP_aes_128_gcm(), NULL, NULL, NULL) &&
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) &&
	    EVP_DecryptInit_ex(x, NULL, NULL, kek, blob + HDR_LEN) &&
	    EVP_DecryptUpdate(x, NULL, &n, aad, (int)aadlen) &&
	    EVP_DecryptUpdate(x, pt, &n, blob + HDR_LEN + IV_LEN, (int)ctlen) &&
	    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
	    blob + bloblen - TAG_LEN) &&
	    EVP_DecryptFinal_ex(x, pt + n, &n) > 0;
	EVP_CIPHER_CTX_free(x);
	if (!ok) {
		bad("OpenSSL cannot open the blob as docs/srtp.md describes it");
		return 1;
	}
	memcpy(want, "inline:", 7);
	EVP_EncodeBlock((unsigned char *)want + 7, pt, (int)ctlen);
	if (strcmp(want, inl) != 0)
		bad("the blob holds another key than %s", inl);
	if (!failures)
		printf("ok: OpenSSL opened the blob per docs/srtp.md: same key\n");
	return failures ? 1 : 0;
}

int
main(int argc, char **argv)
{
	uint8_t kek[32], blob[256], k3[3];
	size_t n;

	if (argc == 3 && strcmp(argv[1], "lengths") == 0)
		return cmd_lengths(argv[2]);
	if (argc == 3 && strcmp(argv[1], "tamper") == 0)
		return cmd_tamper(argv[2]);
	if (argc == 5 && strcmp(argv[1], "bind") == 0)
		return cmd_bind(argv[2], argv[3], argv[4]);
	if (argc == 7 && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argv[2], argv[3], argv[4], argv[5], argv[6]);
	if (argc == 3 && strcmp(argv[1], "kcv") == 0 &&
	    hex_decode(argv[2], kek, sizeof(kek), &n) == 0 &&
	    (n == 16 || n == 32)) {
		kcv(kek, n, k3);
		printf("kek-%02x%02x%02x\n", k3[0], k3[1], k3[2]);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "blob-kek") == 0 &&
	    b64_decode(strncmp(argv[2], "blob:", 5) == 0 ? argv[2] + 5 :
	    argv[2], blob, sizeof(blob), &n) == 0 && n >= HDR_LEN) {
		printf("kek-%02x%02x%02x\n", blob[6], blob[7], blob[8]);
		return 0;
	}
	fprintf(stderr, "usage: srtp_check lengths|tamper|bind|verify|kcv|"
	    "blob-kek ... (see the source)\n");
	return 2;
}
