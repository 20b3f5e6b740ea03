/*
 * test_p11: the parts of the token access layer (keyd/token/p11.c) that
 * need no token: a SubjectPublicKeyInfo from PKCS#11 attributes, checked
 * against OpenSSL's own encoding of the same key, in every form tokens
 * give the curve and the point; a key URI's search template and what it
 * refuses; the "no token matches" hint; blank-padded strings.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "ktest.h"
#include "p11.h"

/* The GnuPG OID and the printable string OpenSC writes for Ed25519. */
static const uint8_t oid_ed25519_gnu[] = { 0x06, 0x09, 0x2b, 0x06, 0x01,
	0x04, 0x01, 0xda, 0x47, 0x0f, 0x01 };
static const uint8_t str_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
	'd', 's', '2', '5', '5', '1', '9' };
/* secp256k1: a curve keyd does not serve. */
static const uint8_t oid_k256[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
	0x0a };

/* OpenSSL's DER SubjectPublicKeyInfo of pk, malloc'ed. */
static uint8_t *
der_of(EVP_PKEY *pk, size_t *len)
{
	int n = i2d_PUBKEY(pk, NULL);
	uint8_t *der = malloc((size_t)n), *q = der;

	if (n <= 0 || der == NULL || i2d_PUBKEY(pk, &q) != n) {
		fprintf(stderr, "i2d_PUBKEY failed\n");
		exit(1);
	}
	*len = (size_t)n;
	return der;
}

/* p11_spki must give exactly want[0..wlen). */
static void
spki_is_at(int line, CK_KEY_TYPE kt, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen, const uint8_t *want, size_t wlen,
    unsigned bits)
{
	uint8_t *spki = NULL;
	size_t len = 0;
	unsigned got = 0;
	char err[256] = "";
	int r = p11_spki(kt, a, alen, b, blen, &spki, &len, &got, err,
	    sizeof(err));

	CHECKF(r == KEYD_OK && len == wlen && memcmp(spki, want, wlen) == 0 &&
	    got == bits, "line %d: r %d (%s), %zu bytes, %u bits", line, r,
	    err, len, got);
	free(spki);
}
#define SPKI_IS(kt, a, alen, b, blen, want, wlen, bits) \
	spki_is_at(__LINE__, kt, a, alen, b, blen, want, wlen, bits)

/* p11_spki must refuse with code r, and say so in err. */
static void
spki_refused_at(int line, CK_KEY_TYPE kt, const uint8_t *a, size_t alen,
    const uint8_t *b, size_t blen, int want, const char *says)
{
	uint8_t *spki = NULL;
	size_t len = 0;
	unsigned bits = 1;
	char err[256] = "";
	int r = p11_spki(kt, a, alen, b, blen, &spki, &len, &bits, err,
	    sizeof(err));

	CHECKF(r == want && spki == NULL && len == 0 && bits == 0 &&
	    strstr(err, says) != NULL, "line %d: r %d (want %d), err '%s'",
	    line, r, want, err);
	free(spki);
}
#define SPKI_REFUSED(kt, a, alen, b, blen, want, says) \
	spki_refused_at(__LINE__, kt, a, alen, b, blen, want, says)

static void
test_ec(const char *group, const uint8_t *oid, size_t oidlen,
    size_t ptlen, unsigned bits)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
	uint8_t pt[97], wrapped[99], *want;
	size_t n = 0, wlen;

	if (pk == NULL || EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n) != 1 || n != ptlen) {
		fprintf(stderr, "cannot make a %s key\n", group);
		exit(1);
	}
	want = der_of(pk, &wlen);
	CHECK_INT(p11_curve(CKK_EC, oid, oidlen), bits == 256 ?
	    P11_CURVE_P256 : P11_CURVE_P384);
	/* CKA_EC_POINT as PKCS#11 says (a DER OCTET STRING), and bare. */
	wrapped[0] = 0x04;
	wrapped[1] = (uint8_t)ptlen;
	memcpy(wrapped + 2, pt, ptlen);
	SPKI_IS(CKK_EC, oid, oidlen, wrapped, ptlen + 2, want, wlen, bits);
	SPKI_IS(CKK_EC, oid, oidlen, pt, ptlen, want, wlen, bits);
	/* One byte short, and a compressed point's form. */
	SPKI_REFUSED(CKK_EC, oid, oidlen, wrapped, ptlen + 1, KEYD_ERR_TOKEN,
	    "not a point of the expected size");
	pt[0] = 0x02;
	SPKI_REFUSED(CKK_EC, oid, oidlen, pt, ptlen, KEYD_ERR_TOKEN,
	    "not a point of the expected size");
	/* Uncompressed, but not on the curve. */
	pt[0] = 0x04;
	pt[ptlen - 1] ^= 1;
	SPKI_REFUSED(CKK_EC, oid, oidlen, pt, ptlen, KEYD_ERR_CRYPTO,
	    "not a valid point");
	/* The curve's OID under the Edwards key type is no curve of it. */
	SPKI_REFUSED(CKK_EC_EDWARDS, oid, oidlen, wrapped, ptlen + 2,
	    KEYD_ERR_UNSUPPORTED, "curve is not one keyd knows");
	free(want);
	EVP_PKEY_free(pk);
}

static void
test_ed25519(void)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t pt[32], wrapped[34], *want;
	size_t n = sizeof(pt), wlen;

	if (pk == NULL || EVP_PKEY_get_raw_public_key(pk, pt, &n) != 1 ||
	    n != sizeof(pt)) {
		fprintf(stderr, "cannot make an Ed25519 key\n");
		exit(1);
	}
	want = der_of(pk, &wlen);
	wrapped[0] = 0x04;
	wrapped[1] = 32;
	memcpy(wrapped + 2, pt, 32);
	/* RFC 8410's OID, and the two forms OpenSC writes. */
	CHECK_INT(p11_curve(CKK_EC_EDWARDS, p11_oid_ed25519,
	    sizeof(p11_oid_ed25519)), P11_CURVE_ED25519);
	CHECK_INT(p11_curve(CKK_EC_EDWARDS, oid_ed25519_gnu,
	    sizeof(oid_ed25519_gnu)), P11_CURVE_ED25519);
	CHECK_INT(p11_curve(CKK_EC_EDWARDS, str_ed25519, sizeof(str_ed25519)),
	    P11_CURVE_ED25519);
	CHECK_INT(p11_curve(CKK_EC, p11_oid_ed25519, sizeof(p11_oid_ed25519)),
	    P11_CURVE_NONE);
	SPKI_IS(CKK_EC_EDWARDS, p11_oid_ed25519, sizeof(p11_oid_ed25519),
	    wrapped, sizeof(wrapped), want, wlen, 256);
	SPKI_IS(CKK_EC_EDWARDS, oid_ed25519_gnu, sizeof(oid_ed25519_gnu), pt,
	    sizeof(pt), want, wlen, 256);
	SPKI_IS(CKK_EC_EDWARDS, str_ed25519, sizeof(str_ed25519), wrapped,
	    sizeof(wrapped), want, wlen, 256);
	SPKI_REFUSED(CKK_EC_EDWARDS, p11_oid_ed25519, sizeof(p11_oid_ed25519),
	    pt, 31, KEYD_ERR_TOKEN, "not a point of the expected size");
	free(want);
	EVP_PKEY_free(pk);
}

static void
test_rsa(void)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	BIGNUM *n = NULL, *e = NULL;
	uint8_t mod[256], exp[8], *want;
	int elen;
	size_t wlen;

	if (pk == NULL || EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N,
	    &n) != 1 || EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E,
	    &e) != 1 || BN_bn2binpad(n, mod, sizeof(mod)) != sizeof(mod) ||
	    (elen = BN_bn2bin(e, exp)) <= 0) {
		fprintf(stderr, "cannot make an RSA key\n");
		exit(1);
	}
	want = der_of(pk, &wlen);
	SPKI_IS(CKK_RSA, mod, sizeof(mod), exp, (size_t)elen, want, wlen,
	    2048);
	SPKI_REFUSED(CKK_RSA, mod, 0, exp, (size_t)elen, KEYD_ERR_TOKEN,
	    "empty or too long");
	SPKI_REFUSED(CKK_AES, mod, sizeof(mod), exp, (size_t)elen,
	    KEYD_ERR_UNSUPPORTED, "key type 0x1f is not one keyd knows");
	free(want);
	BN_free(n);
	BN_free(e);
	EVP_PKEY_free(pk);
}

static void
token_info(CK_TOKEN_INFO *ti, const char *label)
{
	memset(ti, 0, sizeof(*ti));
	memset(ti->label, ' ', sizeof(ti->label));
	memcpy(ti->label, label, strlen(label));
	memset(ti->manufacturerID, ' ', sizeof(ti->manufacturerID));
	memset(ti->model, ' ', sizeof(ti->model));
	memset(ti->serialNumber, ' ', sizeof(ti->serialNumber));
}

/* p11_key_template of uri must refuse it, saying says. */
static void
template_refused_at(int line, const char *uri, const CK_TOKEN_INFO *ti,
    const char *says)
{
	CK_ATTRIBUTE *tmpl = NULL;
	CK_ULONG n = 7;
	char err[512] = "";
	int r = p11_key_template(uri, "key 'k': uri", ti, "[keyd] token",
	    &tmpl, &n, err, sizeof(err));

	CHECKF(r == KEYD_ERR_CONFIG && strncmp(err, "key 'k': uri ", 13) == 0 &&
	    strstr(err, says) != NULL && strstr(err, "1234") == NULL,
	    "line %d: %s: r %d, err '%s'", line, uri, r, err);
	p11_template_free(tmpl, n);
}
#define TEMPLATE_REFUSED(uri, ti, says) \
	template_refused_at(__LINE__, uri, ti, says)

static void
test_key_template(void)
{
	CK_TOKEN_INFO a, b;
	CK_ATTRIBUTE *tmpl = NULL;
	CK_ULONG n = 0;
	char err[512] = "";
	int label = 0, id = 0, cls = 0;

	token_info(&a, "A");
	token_info(&b, "B");
	CHECK_INT(p11_key_template("pkcs11:token=A;object=sip%20tls;id=%01%02;"
	    "type=private", "key 'k': uri", &a, "[keyd] token", &tmpl, &n, err,
	    sizeof(err)), KEYD_OK);
	for (CK_ULONG i = 0; i < n; i++) {
		if (tmpl[i].type == CKA_LABEL)
			label = tmpl[i].ulValueLen == 7 &&
			    memcmp(tmpl[i].pValue, "sip tls", 7) == 0;
		if (tmpl[i].type == CKA_ID)
			id = tmpl[i].ulValueLen == 2 &&
			    memcmp(tmpl[i].pValue, "\x01\x02", 2) == 0;
		if (tmpl[i].type == CKA_CLASS)
			cls = tmpl[i].ulValueLen == sizeof(CK_OBJECT_CLASS) &&
			    *(CK_OBJECT_CLASS *)tmpl[i].pValue ==
			    CKO_PRIVATE_KEY;
	}
	CHECK_INT(n, 3);
	CHECK(label && id && cls);
	p11_template_free(tmpl, n);
	/* Without a token to check against (the failover token's process),
	 * another token's name is no error. */
	CHECK_INT(p11_key_template("pkcs11:token=B;object=x", "key 'k': uri",
	    NULL, "[keyd] token", &tmpl, &n, err, sizeof(err)), KEYD_OK);
	p11_template_free(tmpl, n);

	TEMPLATE_REFUSED("pkcs11:token=B;object=x", &a,
	    "names another token than [keyd] token");
	/* Never the PIN itself in the message. */
	TEMPLATE_REFUSED("pkcs11:object=x?pin-value=1234", &a,
	    "uri pkcs11:object=x?... must not carry a PIN");
	TEMPLATE_REFUSED("pkcs11:object=x?pin-source=/etc/1234", &b,
	    "must not carry a PIN");
	TEMPLATE_REFUSED("pkcs11:token=A", &a, "names no object");
	TEMPLATE_REFUSED("https://example.com/", &a, "key 'k': uri https:");
}

static void
test_token_uri(void)
{
	P11KitUri *u = NULL;
	char err[512] = "";

	CHECK_INT(p11_token_uri("pkcs11:token=A;serial=1", "token =", &u, err,
	    sizeof(err)), KEYD_OK);
	CHECK(u != NULL);
	p11_kit_uri_free(u);
	CHECK_INT(p11_token_uri("pkcs11:token=A?pin-value=1234", "token =", &u,
	    err, sizeof(err)), KEYD_ERR_CONFIG);
	CHECK(u == NULL && strstr(err, "token = pkcs11:token=A?...: the URI "
	    "must not carry a PIN") == err && strstr(err, "1234") == NULL);
	CHECK_INT(p11_token_uri("pkcs11:token=%zz", "token URI", &u, err,
	    sizeof(err)), KEYD_ERR_CONFIG);
	CHECK(u == NULL && strncmp(err, "token URI pkcs11:token=%zz: ", 28) ==
	    0);
}

static void
test_hint(void)
{
	char err[1024];

	setenv("SOFTHSM2_CONF", "/tmp/s.conf", 1);
	snprintf(err, sizeof(err), "no token matches pkcs11:token=X");
	p11_no_token_hint("/usr/lib/softhsm/libsofthsm2.so", err, sizeof(err));
	CHECK(strcmp(err, "no token matches pkcs11:token=X; check the token "
	    "URI against the labels present, and that module "
	    "/usr/lib/softhsm/libsofthsm2.so is the one that holds the token; "
	    "SoftHSM2 finds its tokens through the SOFTHSM2_CONF environment "
	    "variable, which is '/tmp/s.conf' here ('softhsm2-util "
	    "--show-slots' with the same SOFTHSM2_CONF lists them)") == 0);
	unsetenv("SOFTHSM2_CONF");
	snprintf(err, sizeof(err), "x");
	p11_no_token_hint("/usr/lib/softhsm/libsofthsm2.so", err, sizeof(err));
	CHECK(strstr(err, "which is not set here") != NULL);
	snprintf(err, sizeof(err), "x");
	p11_no_token_hint("/usr/lib/pkcs11/libtpm2_pkcs11.so", err,
	    sizeof(err));
	CHECK(strstr(err, "SOFTHSM2_CONF") == NULL &&
	    strstr(err, "libtpm2_pkcs11.so is the one") != NULL);
	/* A short buffer is cut, never overrun. */
	snprintf(err, 40, "no token matches pkcs11:token=X");
	p11_no_token_hint("/usr/lib/softhsm/libsofthsm2.so", err, 40);
	CHECK(strlen(err) == 39);
}

static void
test_padded(void)
{
	char out[33];

	p11_padded(out, (const unsigned char *)"keyd token  " "        "
	    "            ", 32);
	CHECK(strcmp(out, "keyd token") == 0);
	p11_padded(out, (const unsigned char *)"                                ",
	    32);
	CHECK(strcmp(out, "") == 0);
}

int
main(void)
{
	test_ec("P-256", p11_oid_p256, sizeof(p11_oid_p256), 65, 256);
	test_ec("P-384", p11_oid_p384, sizeof(p11_oid_p384), 97, 384);
	CHECK_INT(p11_curve(CKK_EC, oid_k256, sizeof(oid_k256)),
	    P11_CURVE_NONE);
	SPKI_REFUSED(CKK_EC, oid_k256, sizeof(oid_k256), oid_k256,
	    sizeof(oid_k256), KEYD_ERR_UNSUPPORTED, "curve is not one keyd "
	    "knows");
	test_ed25519();
	test_rsa();
	test_key_template();
	test_token_uri();
	test_hint();
	test_padded();
	return ktest_result("test_p11");
}
