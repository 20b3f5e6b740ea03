/*
 * fuzz_passport.c: the STIR/SHAKEN reader of proto/passport.c, on what
 * keydctl passport verify is given: certificates' TNAuthList extensions
 * and PASSporTs or SIP Identity header values.
 *
 * The first byte picks what the rest is:
 *   0: the DER of a TNAuthList, put into a certificate and read by
 *      passport_tnauth_read, then asked about a few TNs;
 *   1: the input of passport_verify as it is, against a certificate made
 *      here (P-256, an SPC, a range and one TN);
 *   2: "HEADER\nCLAIMS\nREST": the two JSON texts are base64url-encoded
 *      and signed here with that certificate's key, and REST (Identity
 *      header parameters, or nothing) appended, so that the checks after
 *      the signature (header, claims, iat, TNAuthList) are reached too;
 *      any iat of the past is taken;
 *   3: a TN for passport_tn_canon.
 * It checks passport.h's contract: KEYD_OK comes with claims, each line
 * ending in a newline, and an empty why; a failure with no claims and a
 * non-empty why of one line; a canonical TN is 1 to 15 digits.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fuzz.h"
#include "keyd_err.h"
#include "passport.h"

/* SEQUENCE { [0] "709J", [1] { SEQUENCE { "12155550100", 100 } },
 * [2] "12155551212" } */
static const unsigned char tnauth[] = { 0x30, 0x2b, 0xa0, 0x06, 0x16, 0x04,
	'7', '0', '9', 'J', 0xa1, 0x12, 0x30, 0x10, 0x16, 0x0b, '1', '2',
	'1', '5', '5', '5', '5', '0', '1', '0', '0', 0x02, 0x01, 0x64, 0xa2,
	0x0d, 0x16, 0x0b, '1', '2', '1', '5', '5', '5', '5', '1', '2', '1',
	'2' };

static EVP_PKEY *key;
static X509 *cert;
/* The certificate is valid from notBefore = now at set-up for a year;
 * inputs are verified a minute after set-up, with that "now" fixed so
 * that a replay gives the same results. */
static time_t now;

static X509 *
cert_new(const unsigned char *der, size_t n, EVP_PKEY *k)
{
	X509 *x = X509_new();
	ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.5.5.7.1.26", 1);
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e = NULL;

	fuzz_check(x != NULL && o != NULL && s != NULL);
	fuzz_check(ASN1_OCTET_STRING_set(s, der, (int)n) == 1);
	fuzz_check((e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, s)) != NULL);
	fuzz_check(X509_add_ext(x, e, -1) == 1);
	if (k != NULL) {
		fuzz_check(X509_set_pubkey(x, k) == 1);
		fuzz_check(X509_time_adj_ex(X509_getm_notBefore(x), 0, 0,
		    &now) != NULL);
		fuzz_check(X509_time_adj_ex(X509_getm_notAfter(x), 365, 0,
		    &now) != NULL);
		fuzz_check(X509_sign(x, k, EVP_sha256()) > 0);
	}
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(s);
	ASN1_OBJECT_free(o);
	return x;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	now = time(NULL);
	fuzz_check((key = EVP_EC_gen("P-256")) != NULL);
	cert = cert_new(tnauth, sizeof(tnauth), key);
	now += 60;
	return 0;
}

static void
check_verify(const char *in, size_t n, long max_age)
{
	char why[256], *claims = (char *)why, *nl;
	int r = passport_verify(in, n, cert, now, max_age, &claims, why,
	    sizeof(why));

	if (r == KEYD_OK) {
		size_t len;

		fuzz_check(claims != NULL && why[0] == '\0');
		len = strlen(claims);
		fuzz_check(len > 0 && claims[len - 1] == '\n');
		free(claims);
	} else {
		fuzz_check(r < 0 && claims == NULL && why[0] != '\0');
		nl = strchr(why, '\n');
		fuzz_check(nl == NULL);
	}
}

static char *
b64url(const unsigned char *p, size_t n)
{
	char *out = malloc((n + 2) / 3 * 4 + 1);
	size_t i, m;

	fuzz_check(out != NULL);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	m = strlen(out);
	while (m > 0 && out[m - 1] == '=')
		out[--m] = '\0';
	for (i = 0; i < m; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

/* header\nclaims\nrest, signed here. */
static void
signed_verify(const uint8_t *d, size_t n)
{
	const uint8_t *nl1 = memchr(d, '\n', n), *nl2;
	char *h, *p, *s, *tok;
	unsigned char *der = NULL, raw[64];
	const unsigned char *q;
	size_t siglen = 0, hl, pl, rl, tl;
	EVP_MD_CTX *md;
	ECDSA_SIG *es;

	if (nl1 == NULL || (nl2 = memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 -
	    d))) == NULL)
		return;
	h = b64url(d, (size_t)(nl1 - d));
	p = b64url(nl1 + 1, (size_t)(nl2 - nl1 - 1));
	hl = strlen(h);
	pl = strlen(p);
	rl = n - (size_t)(nl2 + 1 - d);
	tl = hl + 1 + pl + 1 + 86 + rl;
	fuzz_check((tok = malloc(tl + 1)) != NULL);
	memcpy(tok, h, hl);
	tok[hl] = '.';
	memcpy(tok + hl + 1, p, pl);
	fuzz_check((md = EVP_MD_CTX_new()) != NULL);
	fuzz_check(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1);
	fuzz_check(EVP_DigestSign(md, NULL, &siglen, (unsigned char *)tok,
	    hl + 1 + pl) == 1);
	fuzz_check((der = malloc(siglen)) != NULL);
	fuzz_check(EVP_DigestSign(md, der, &siglen, (unsigned char *)tok,
	    hl + 1 + pl) == 1);
	q = der;
	fuzz_check((es = d2i_ECDSA_SIG(NULL, &q, (long)siglen)) != NULL);
	fuzz_check(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) == 32);
	fuzz_check(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) == 32);
	s = b64url(raw, sizeof(raw));
	fuzz_check(strlen(s) == 86);
	tok[hl + 1 + pl] = '.';
	memcpy(tok + hl + 1 + pl + 1, s, 86);
	memcpy(tok + hl + 1 + pl + 1 + 86, nl2 + 1, rl);
	tok[tl] = '\0';
	/* Any iat of the past passes, so that a fixed corpus reaches the
	 * TNAuthList check on every later day. */
	check_verify(tok, tl, LONG_MAX);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	free(der);
	free(h);
	free(p);
	free(s);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct passport_tnauth *t = NULL;
	char why[256], tn[PASSPORT_TN_BUF];
	X509 *x;
	size_t n;
	int r;

	if (size < 1 || size > PASSPORT_MAX_INPUT)
		return 0;
	n = size - 1;
	switch (data[0] % 4) {
	case 0:
		x = cert_new(data + 1, n, NULL);
		r = passport_tnauth_read(x, &t, why, sizeof(why));
		fuzz_check((r == KEYD_OK) == (t != NULL));
		if (t != NULL) {
			(void)passport_tnauth_spc_only(t);
			(void)passport_tnauth_covers(t, "12155550150");
			(void)passport_tnauth_covers(t, "1");
			(void)passport_tnauth_covers(t, "123456789012345");
		}
		passport_tnauth_free(t);
		X509_free(x);
		break;
	case 1:
		check_verify((const char *)data + 1, n, 60);
		break;
	case 2:
		signed_verify(data + 1, n);
		break;
	default:
		if (passport_tn_canon((const char *)data + 1, n, tn) ==
		    KEYD_OK) {
			size_t l = strlen(tn), i;

			fuzz_check(l >= 1 && l <= PASSPORT_TN_MAX);
			for (i = 0; i < l; i++)
				fuzz_check(tn[i] >= '0' && tn[i] <= '9');
		}
		break;
	}
	return 0;
}
