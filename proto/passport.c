/*
 * passport.c: TN canonicalisation, the TNAuthList extension and offline
 * PASSporT verification (see passport.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "passport.h"

/* Limits of what is read. */
#define PASSPORT_TNAUTH_MAX_ENTRIES 1024  /* entries of one TNAuthList */
#define PASSPORT_SPC_MAX 64               /* bytes of one SPC */
#define PASSPORT_JSON_DEPTH 8             /* nesting of header and claims */
#define PASSPORT_DEST_MAX 64              /* TNs in dest */
#define PASSPORT_SIG_LEN 64               /* ES256: r || s */
#define PASSPORT_URL_MAX 2048             /* the info= URL */

#define TNAUTH_OID "1.3.6.1.5.5.7.1.26"

enum tnauth_kind { TNAUTH_SPC, TNAUTH_RANGE, TNAUTH_ONE };

struct tnauth_entry {
	enum tnauth_kind kind;
	char tn[PASSPORT_TN_BUF];     /* range start, or the one TN */
	uint64_t count;               /* range only */
};

struct passport_tnauth {
	size_t n;
	struct tnauth_entry *e;
};

static void fmt_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fmt_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static int
is_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int
passport_tn_canon(const char *in, size_t len, char out[PASSPORT_TN_BUF])
{
	size_t i = 0, n = 0;

	out[0] = '\0';
	/* RFC 8224 8.3: a leading '+' goes; no country code is guessed,
	 * since keyd cannot know the caller's dialling context. */
	if (len > 0 && in[0] == '+')
		i = 1;
	for (; i < len; i++) {
		char c = in[i];

		if (c == '-' || c == '.' || c == '(' || c == ')' || c == ' ')
			continue;
		if (c < '0' || c > '9' || n == PASSPORT_TN_MAX)
			return KEYD_ERR_INVALID_ARG;
		out[n++] = c;
	}
	if (n == 0)
		return KEYD_ERR_INVALID_ARG;
	out[n] = '\0';
	return KEYD_OK;
}

/*
 * A bounded reader over DER: each element's header is read by OpenSSL's
 * ASN1_get_object, which checks the length against what is left.
 */
struct der {
	const unsigned char *p;
	long left;
};

struct der_elem {
	int tag, cls, constructed;
	const unsigned char *tlv;     /* the whole element */
	long tlvlen;
	const unsigned char *body;
	long len;
};

static int
der_next(struct der *d, struct der_elem *e)
{
	const unsigned char *q = d->p;
	long len;
	int r;

	if (d->left <= 0)
		return -1;
	r = ASN1_get_object(&q, &len, &e->tag, &e->cls, d->left);
	/* 0x80: error or longer than left; 1: indefinite length (not DER). */
	if ((r & 0x80) != 0 || (r & 0x01) != 0)
		return -1;
	e->constructed = (r & V_ASN1_CONSTRUCTED) != 0;
	e->tlv = d->p;
	e->body = q;
	e->len = len;
	e->tlvlen = (long)(q - d->p) + len;
	d->p = q + len;
	d->left -= e->tlvlen;
	return 0;
}

static struct der
der_inside(const struct der_elem *e)
{
	struct der d = { e->body, e->len };
	return d;
}

/* An IA5String element holding a TN: 1 to 15 of "0123456789#*". */
static int
der_tn(const struct der_elem *e, char out[PASSPORT_TN_BUF])
{
	long i;

	if (e->cls != V_ASN1_UNIVERSAL || e->tag != V_ASN1_IA5STRING ||
	    e->constructed || e->len < 1 || e->len > (long)PASSPORT_TN_MAX)
		return -1;
	for (i = 0; i < e->len; i++) {
		unsigned char c = e->body[i];

		if (!((c >= '0' && c <= '9') || c == '#' || c == '*'))
			return -1;
	}
	memcpy(out, e->body, (size_t)e->len);
	out[e->len] = '\0';
	return 0;
}

/* start TelephoneNumber, count INTEGER (2..MAX), read from d, which must
 * hold nothing else. */
static int
der_range(struct der *d, struct tnauth_entry *t)
{
	struct der_elem s, c;
	const unsigned char *q;
	ASN1_INTEGER *ai = NULL;
	int64_t v = 0;
	size_t n;
	int ok;

	if (der_next(d, &s) != 0 || der_tn(&s, t->tn) != 0 ||
	    der_next(d, &c) != 0 || c.cls != V_ASN1_UNIVERSAL ||
	    c.tag != V_ASN1_INTEGER || d->left != 0)
		return -1;
	q = c.tlv;
	ai = d2i_ASN1_INTEGER(NULL, &q, c.tlvlen);
	ok = ai != NULL && q == c.tlv + c.tlvlen &&
	    ASN1_INTEGER_get_int64(&v, ai) == 1 && v >= 2;
	ASN1_INTEGER_free(ai);
	if (!ok)
		return -1;
	/* RFC 8226 section 9: a count applies to a start of digits only,
	 * and start + count must stay below 10^D (same number of digits). */
	n = strlen(t->tn);
	if (!is_digits(t->tn, n))
		return -1;
	{
		uint64_t start = strtoull(t->tn, NULL, 10), lim = 1;
		size_t i;

		for (i = 0; i < n; i++)
			lim *= 10;
		if ((uint64_t)v > lim || start + (uint64_t)v > lim)
			return -1;
	}
	t->count = (uint64_t)v;
	return 0;
}

/*
 * One TNEntry. The module of RFC 8226 uses explicit tags:
 *   spc   [0] ServiceProviderCode   -> A0 { IA5String }
 *   one   [2] TelephoneNumber       -> A2 { IA5String }
 *   range [1] TelephoneNumberRange  -> A1 { SEQUENCE { start, count } }
 * The last is the encoding of the corrected ASN.1 that pyasn1-modules
 * (rfc8226.py, "with errata corrected") and Botan read. The other
 * published encoding of a range has the [1] tag in place of the
 * SEQUENCE's, A1 { IA5String start, INTEGER count }: keyd reads both, and
 * tells them apart by the first element inside [1].
 */
static int
tnauth_entry(const struct der_elem *e, struct tnauth_entry *t)
{
	struct der in = der_inside(e), seq;
	struct der_elem x;

	if (e->cls != V_ASN1_CONTEXT_SPECIFIC || !e->constructed)
		return -1;
	memset(t, 0, sizeof(*t));
	switch (e->tag) {
	case 0:
		t->kind = TNAUTH_SPC;
		if (der_next(&in, &x) != 0 || in.left != 0 ||
		    x.cls != V_ASN1_UNIVERSAL || x.tag != V_ASN1_IA5STRING ||
		    x.len < 1 || x.len > PASSPORT_SPC_MAX)
			return -1;
		return 0;
	case 1:
		t->kind = TNAUTH_RANGE;
		seq = in;
		if (der_next(&seq, &x) != 0)
			return -1;
		if (x.cls == V_ASN1_UNIVERSAL && x.tag == V_ASN1_SEQUENCE &&
		    x.constructed) {
			if (seq.left != 0)
				return -1;
			seq = der_inside(&x);
			return der_range(&seq, t);
		}
		return der_range(&in, t);
	case 2:
		t->kind = TNAUTH_ONE;
		if (der_next(&in, &x) != 0 || in.left != 0 ||
		    der_tn(&x, t->tn) != 0)
			return -1;
		return 0;
	default:
		return -1;
	}
}

int
passport_tnauth_read(X509 *cert, struct passport_tnauth **out, char *why,
    size_t whylen)
{
	struct passport_tnauth *t = NULL;
	ASN1_OBJECT *oid = NULL;
	const ASN1_OCTET_STRING *val;
	struct der top, list;
	struct der_elem seq, e;
	int pos, r = KEYD_ERR_INVALID_ARG;

	*out = NULL;
	if ((oid = OBJ_txt2obj(TNAUTH_OID, 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		fmt_why(why, whylen, "out of memory");
		goto out;
	}
	pos = X509_get_ext_by_OBJ(cert, oid, -1);
	if (pos < 0) {
		r = KEYD_ERR_NOT_FOUND;
		fmt_why(why, whylen, "the certificate has no TNAuthList "
		    "extension (RFC 8226, " TNAUTH_OID ")");
		goto out;
	}
	if (X509_get_ext_by_OBJ(cert, oid, pos) >= 0) {
		fmt_why(why, whylen, "the certificate has two TNAuthList "
		    "extensions");
		goto out;
	}
	val = X509_EXTENSION_get_data(X509_get_ext(cert, pos));
	top.p = ASN1_STRING_get0_data(val);
	top.left = ASN1_STRING_length(val);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		r = KEYD_ERR_NOMEM;
		fmt_why(why, whylen, "out of memory");
		goto out;
	}
	/* TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry */
	if (der_next(&top, &seq) != 0 || top.left != 0 ||
	    seq.cls != V_ASN1_UNIVERSAL || seq.tag != V_ASN1_SEQUENCE ||
	    !seq.constructed)
		goto bad;
	list = der_inside(&seq);
	while (list.left > 0) {
		struct tnauth_entry *ne;

		if (t->n == PASSPORT_TNAUTH_MAX_ENTRIES ||
		    der_next(&list, &e) != 0)
			goto bad;
		ne = realloc(t->e, (t->n + 1) * sizeof(*t->e));
		if (ne == NULL) {
			r = KEYD_ERR_NOMEM;
			fmt_why(why, whylen, "out of memory");
			goto out;
		}
		t->e = ne;
		if (tnauth_entry(&e, &t->e[t->n]) != 0)
			goto bad;
		t->n++;
	}
	if (t->n == 0)
		goto bad;
	*out = t;
	t = NULL;
	r = KEYD_OK;
	goto out;
bad:
	fmt_why(why, whylen, "the certificate's TNAuthList extension is "
	    "malformed (RFC 8226 section 9)");
out:
	passport_tnauth_free(t);
	ASN1_OBJECT_free(oid);
	return r;
}

void
passport_tnauth_free(struct passport_tnauth *t)
{
	if (t == NULL)
		return;
	free(t->e);
	free(t);
}

int
passport_tnauth_spc_only(const struct passport_tnauth *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->e[i].kind != TNAUTH_SPC)
			return 0;
	return 1;
}

int
passport_tnauth_covers(const struct passport_tnauth *t, const char *tn)
{
	size_t i, n = strlen(tn);

	if (n == 0 || n > PASSPORT_TN_MAX || !is_digits(tn, n))
		return 0;
	for (i = 0; i < t->n; i++) {
		const struct tnauth_entry *e = &t->e[i];

		if (e->kind == TNAUTH_ONE && strcmp(e->tn, tn) == 0)
			return 1;
		/* A range is a run of numbers of its start's length: 0150 is
		 * in 0100+100, 150 is another number. */
		if (e->kind == TNAUTH_RANGE && strlen(e->tn) == n) {
			uint64_t v = strtoull(tn, NULL, 10);
			uint64_t s = strtoull(e->tn, NULL, 10);

			if (v >= s && v - s < e->count)
				return 1;
		}
	}
	return 0;
}

/* ---- JWS ---- */

/*
 * base64url without padding (RFC 7515 section 2) into a new buffer: the
 * alphabet is translated to base64's and decoded with EVP_DecodeBlock.
 * A length of 1 mod 4, a foreign character and non-zero unused bits
 * (a non-canonical encoding) are refused.
 */
static int
b64url_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	char *t = NULL;
	unsigned char *b = NULL;
	size_t i, pad = (4 - n % 4) % 4, tl = n + pad, dl;
	int got, r = -1;

	*out = NULL;
	*outlen = 0;
	if (n == 0 || n % 4 == 1 || n > PASSPORT_MAX_INPUT)
		return -1;
	if ((t = malloc(tl + 1)) == NULL || (b = malloc(tl / 4 * 3 + 1)) ==
	    NULL)
		goto out;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9')))
			goto out;
		t[i] = c;
	}
	for (; i < tl; i++)
		t[i] = '=';
	t[tl] = '\0';
	got = EVP_DecodeBlock(b, (unsigned char *)t, (int)tl);
	if (got < 0 || (size_t)got < pad)
		goto out;
	dl = (size_t)got - pad;  /* EVP_DecodeBlock counts padding as zeros */
	/* Canonical: the last character's unused bits are zero. */
	{
		static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789+/";
		unsigned v = (unsigned)(strchr(al, t[n - 1]) - al);

		if ((pad == 1 && (v & 0x03) != 0) ||
		    (pad == 2 && (v & 0x0f) != 0))
			goto out;
	}
	*out = b;
	*outlen = dl;
	b = NULL;
	r = 0;
out:
	free(t);
	free(b);
	return r;
}

/* A JSON object from in[0..n): all of it, nothing after. */
static json_object *
json_parse_object(const unsigned char *in, size_t n)
{
	json_tokener *tok;
	json_object *o;

	if (n > PASSPORT_MAX_INPUT || memchr(in, '\0', n) != NULL)
		return NULL;
	if ((tok = json_tokener_new_ex(PASSPORT_JSON_DEPTH)) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, (const char *)in, (int)n);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n ||
	    !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* The string member name of o, or NULL. */
static const char *
json_str(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A canonical TN string: what keyd's signer writes (RFC 8225 section
 * 5.2.1 with RFC 8224 section 8.3). */
static int
tn_is_canonical(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= PASSPORT_TN_MAX && is_digits(s, n);
}

/* claim name must be an object {"tn": canonical TN}; *tn is set. */
static int
claim_tn_object(json_object *pl, const char *name, const char **tn,
    char *why, size_t whylen)
{
	json_object *o;

	if (!json_object_object_get_ex(pl, name, &o)) {
		fmt_why(why, whylen, "claim %s is missing", name);
		return -1;
	}
	if (!json_object_is_type(o, json_type_object) ||
	    (*tn = json_str(o, "tn")) == NULL) {
		fmt_why(why, whylen, "claim %s is not an object with a tn "
		    "string", name);
		return -1;
	}
	if (!tn_is_canonical(*tn)) {
		fmt_why(why, whylen, "claim %s.tn is not a canonical telephone "
		    "number (1 to 15 digits): %.40s", name, *tn);
		return -1;
	}
	return 0;
}

static int
is_uuid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return 1;
}

/* The claims of a ppt of shaken (RFC 8225 + RFC 8588) or div (RFC 8946);
 * *signer_tn is the TN the signer vouches for. */
static int
check_claims(json_object *pl, int is_div, const char **signer_tn, char *why,
    size_t whylen)
{
	json_object *dest = NULL, *arr = NULL, *iat = NULL;
	const char *orig, *divtn, *attest, *origid;
	size_t i, n;

	if (claim_tn_object(pl, "orig", &orig, why, whylen) != 0)
		return -1;
	if (!json_object_object_get_ex(pl, "dest", &dest)) {
		fmt_why(why, whylen, "claim dest is missing");
		return -1;
	}
	if (!json_object_is_type(dest, json_type_object) ||
	    !json_object_object_get_ex(dest, "tn", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    (n = json_object_array_length(arr)) == 0 ||
	    n > PASSPORT_DEST_MAX) {
		fmt_why(why, whylen, "claim dest is not an object with a tn "
		    "array of 1 to %d TNs", PASSPORT_DEST_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(v, json_type_string) ||
		    !tn_is_canonical(json_object_get_string(v))) {
			fmt_why(why, whylen, "claim dest.tn[%zu] is not a "
			    "canonical telephone number (1 to 15 digits)", i);
			return -1;
		}
	}
	if (!json_object_object_get_ex(pl, "iat", &iat) ||
	    !json_object_is_type(iat, json_type_int)) {
		fmt_why(why, whylen, "claim iat is %s", iat == NULL ?
		    "missing" : "not an integer");
		return -1;
	}
	if (is_div) {
		if (claim_tn_object(pl, "div", &divtn, why, whylen) != 0)
			return -1;
		*signer_tn = divtn;
		return 0;
	}
	*signer_tn = orig;
	attest = json_str(pl, "attest");
	if (attest == NULL || (strcmp(attest, "A") != 0 &&
	    strcmp(attest, "B") != 0 && strcmp(attest, "C") != 0)) {
		fmt_why(why, whylen, "claim attest is not \"A\", \"B\" or "
		    "\"C\" (RFC 8588)");
		return -1;
	}
	origid = json_str(pl, "origid");
	if (origid == NULL || !is_uuid(origid)) {
		fmt_why(why, whylen, "claim origid is not a UUID (RFC 8588)");
		return -1;
	}
	return 0;
}

/* ES256 over signing input: the 64 bytes r || s against key. */
static int
es256_verify(EVP_PKEY *key, const char *in, size_t inlen,
    const unsigned char *sig, size_t siglen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	int derlen, ok = 0;

	if (siglen != PASSPORT_SIG_LEN)
		return 0;
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
	    (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL ||
	    ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL;
	if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0 ||
	    (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)derlen,
	    (const unsigned char *)in, inlen) == 1;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

/* The certificate: in its validity period at now, with a P-256 key. */
static int
check_cert(X509 *cert, time_t now, EVP_PKEY **key, char *why, size_t whylen)
{
	char grp[64];
	size_t gl = 0;

	if (X509_cmp_time(X509_get0_notBefore(cert), &now) >= 0) {
		fmt_why(why, whylen, "the certificate is not valid yet "
		    "(notBefore is in the future)");
		return -1;
	}
	if (X509_cmp_time(X509_get0_notAfter(cert), &now) <= 0) {
		fmt_why(why, whylen, "the certificate has expired (notAfter "
		    "is in the past)");
		return -1;
	}
	if ((*key = X509_get0_pubkey(cert)) == NULL ||
	    EVP_PKEY_get_base_id(*key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(*key, "group", grp, sizeof(grp),
	    &gl) != 1 || strcmp(grp, "prime256v1") != 0) {
		fmt_why(why, whylen, "the certificate's key is not an EC "
		    "P-256 key (ES256 needs one)");
		return -1;
	}
	return 0;
}

/*
 * Splits an Identity header value (RFC 8224 section 4.1) at its first
 * ';' and checks its parameters: info=<URL> (required; its URL is
 * returned in url), alg (ES256 if present), ppt (returned in ppt).
 */
static int
identity_params(const char *p, size_t n, char *url, size_t urlcap,
    char *ppt, size_t pptcap, char *why, size_t whylen)
{
	size_t i = 0;
	int have_info = 0;

	url[0] = ppt[0] = '\0';
	while (i < n) {
		size_t j, e, k;
		const char *eq;

		/* SEMI = SWS ";" SWS (RFC 3261 section 25.1) */
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		for (j = i; j < n && p[j] != ';'; j++)
			;
		for (e = j; e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'); e--)
			;
		eq = memchr(p + i, '=', e - i);
		if (eq == NULL) {
			fmt_why(why, whylen, "Identity header parameter "
			    "without a value");
			return -1;
		}
		k = (size_t)(eq - (p + i));
		if (k == 4 && strncmp(p + i, "info", 4) == 0) {
			size_t vl = e - i - 5;
			const char *v = eq + 1;

			if (vl < 3 || v[0] != '<' || v[vl - 1] != '>' ||
			    vl - 2 >= urlcap || memchr(v + 1, '>', vl - 2)) {
				fmt_why(why, whylen, "Identity header info "
				    "parameter is not <URL>");
				return -1;
			}
			memcpy(url, v + 1, vl - 2);
			url[vl - 2] = '\0';
			have_info = 1;
		} else if (k == 3 && strncmp(p + i, "alg", 3) == 0) {
			if (e - i - 4 != 5 ||
			    strncmp(eq + 1, "ES256", 5) != 0) {
				fmt_why(why, whylen, "Identity header alg "
				    "parameter is not ES256");
				return -1;
			}
		} else if (k == 3 && strncmp(p + i, "ppt", 3) == 0) {
			size_t vl = e - i - 4;

			if (vl == 0 || vl >= pptcap) {
				fmt_why(why, whylen, "Identity header ppt "
				    "parameter is malformed");
				return -1;
			}
			memcpy(ppt, eq + 1, vl);
			ppt[vl] = '\0';
		}
		i = j + 1;
	}
	if (!have_info) {
		fmt_why(why, whylen, "Identity header has no info parameter");
		return -1;
	}
	return 0;
}

static int
is_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/*
 * "name: value\n" for each claim of pl, in a new string. A string value
 * of printable ASCII comes out as it is, anything else as JSON, so that
 * no claim can forge a line or send a terminal escape.
 */
static char *
claims_text(json_object *pl)
{
	const int plain = JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	json_object_object_foreach(pl, k, v) {
		json_object *name = NULL;
		const char *val = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string) ||
		    !is_printable(val))
			val = json_object_to_json_string_ext(v, plain);
		if (is_printable(k)) {
			fprintf(f, "%s: %s\n", k, val);
		} else if ((name = json_object_new_string(k)) != NULL) {
			fprintf(f, "%s: %s\n",
			    json_object_to_json_string_ext(name, plain), val);
			json_object_put(name);
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int
passport_verify(const char *in, size_t len, X509 *cert, time_t now,
    long max_age, char **claims, char *why, size_t whylen)
{
	struct passport_tnauth *tna = NULL;
	json_object *hdr = NULL, *pl = NULL, *iatv;
	unsigned char *hb = NULL, *pb = NULL, *sb = NULL;
	size_t hl, pll, sl, jwslen;
	const char *d1, *d2, *semi, *alg, *typ, *ppt, *x5u, *signer_tn = NULL;
	char url[PASSPORT_URL_MAX], hppt[16];
	EVP_PKEY *key;
	int64_t iat;
	int is_div, r = KEYD_ERR_INVALID_ARG;

	*claims = NULL;
	fmt_why(why, whylen, "internal error");
	/* Trailing white space: a line from a file or a terminal. */
	while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r' ||
	    in[len - 1] == ' ' || in[len - 1] == '\t'))
		len--;
	if (len == 0 || len > PASSPORT_MAX_INPUT ||
	    memchr(in, '\0', len) != NULL) {
		fmt_why(why, whylen, "the input is empty, holds a NUL or is "
		    "over %u bytes", PASSPORT_MAX_INPUT);
		goto out;
	}
	if (check_cert(cert, now, &key, why, whylen) != 0)
		goto out;
	semi = memchr(in, ';', len);
	jwslen = semi != NULL ? (size_t)(semi - in) : len;
	while (semi != NULL && jwslen > 0 && (in[jwslen - 1] == ' ' ||
	    in[jwslen - 1] == '\t'))
		jwslen--;
	if (semi != NULL && identity_params(semi + 1,
	    len - (size_t)(semi - in) - 1, url, sizeof(url), hppt,
	    sizeof(hppt), why, whylen) != 0)
		goto out;
	/* header.payload.signature: exactly two dots, no empty part (RFC
	 * 8225's compact form, with the payload left out, is not taken). */
	d1 = memchr(in, '.', jwslen);
	d2 = d1 != NULL ? memchr(d1 + 1, '.', jwslen - (size_t)(d1 + 1 - in)) :
	    NULL;
	if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.',
	    jwslen - (size_t)(d2 + 1 - in)) != NULL || d1 == in ||
	    d2 == d1 + 1 || d2 + 1 == in + jwslen) {
		fmt_why(why, whylen, "not a JWS in compact serialization "
		    "(header.payload.signature)");
		goto out;
	}
	if (b64url_decode(in, (size_t)(d1 - in), &hb, &hl) != 0 ||
	    b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pb, &pll) != 0 ||
	    b64url_decode(d2 + 1, jwslen - (size_t)(d2 + 1 - in), &sb,
	    &sl) != 0) {
		fmt_why(why, whylen, "a JWS part is not base64url without "
		    "padding");
		goto out;
	}
	/* The signature first: nothing of the header or the claims is
	 * looked at before it holds. Only ES256 is accepted, so checking it
	 * as ES256 before reading alg gives nothing away; the signing input
	 * is the first two parts as they came (RFC 7515 section 5.2),
	 * whatever order or spacing their JSON has. */
	if (!es256_verify(key, in, (size_t)(d2 - in), sb, sl)) {
		fmt_why(why, whylen, "the signature does not verify with the "
		    "certificate's key");
		goto out;
	}
	if ((hdr = json_parse_object(hb, hl)) == NULL) {
		fmt_why(why, whylen, "the JWS header is not a JSON object");
		goto out;
	}
	if ((alg = json_str(hdr, "alg")) == NULL || strcmp(alg, "ES256") != 0) {
		fmt_why(why, whylen, "header alg is not ES256");
		goto out;
	}
	if ((typ = json_str(hdr, "typ")) == NULL ||
	    strcmp(typ, "passport") != 0) {
		fmt_why(why, whylen, "header typ is not passport");
		goto out;
	}
	if ((ppt = json_str(hdr, "ppt")) == NULL ||
	    (strcmp(ppt, "shaken") != 0 && strcmp(ppt, "div") != 0)) {
		fmt_why(why, whylen, "header ppt is not shaken or div");
		goto out;
	}
	is_div = strcmp(ppt, "div") == 0;
	if (semi != NULL && hppt[0] != '\0' && strcmp(hppt, ppt) != 0) {
		fmt_why(why, whylen, "Identity header ppt parameter does not "
		    "match header ppt");
		goto out;
	}
	if ((x5u = json_str(hdr, "x5u")) == NULL || x5u[0] == '\0') {
		fmt_why(why, whylen, "header x5u is missing");
		goto out;
	}
	if (semi != NULL && strcmp(x5u, url) != 0) {
		fmt_why(why, whylen, "header x5u does not match the Identity "
		    "header info URL");
		goto out;
	}
	if ((pl = json_parse_object(pb, pll)) == NULL) {
		fmt_why(why, whylen, "the JWS payload is not a JSON object");
		goto out;
	}
	if (check_claims(pl, is_div, &signer_tn, why, whylen) != 0)
		goto out;
	(void)json_object_object_get_ex(pl, "iat", &iatv);
	iat = json_object_get_int64(iatv);
	/* Before 1970 is no PASSporT's, and now - iat must not overflow. */
	if (iat < 0) {
		fmt_why(why, whylen, "claim iat is negative");
		goto out;
	}
	if (iat > (int64_t)now + PASSPORT_FUTURE_SKEW) {
		fmt_why(why, whylen, "claim iat %lld is more than %d s in the "
		    "future (check the clocks)", (long long)iat,
		    PASSPORT_FUTURE_SKEW);
		goto out;
	}
	if ((int64_t)now - iat > max_age) {
		fmt_why(why, whylen, "claim iat %lld is more than %ld s old "
		    "(--max-age)", (long long)iat, max_age);
		goto out;
	}
	if ((r = passport_tnauth_read(cert, &tna, why, whylen)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_INVALID_ARG;
	/* A list of only SPCs leaves the number to the verifier's policy. */
	if (!passport_tnauth_spc_only(tna) &&
	    !passport_tnauth_covers(tna, signer_tn)) {
		fmt_why(why, whylen, "%s %s is not in the certificate's "
		    "TNAuthList", is_div ? "div" : "orig", signer_tn);
		goto out;
	}
	if ((*claims = claims_text(pl)) == NULL) {
		r = KEYD_ERR_NOMEM;
		fmt_why(why, whylen, "out of memory");
		goto out;
	}
	r = KEYD_OK;
	if (whylen > 0)
		why[0] = '\0';
out:
	passport_tnauth_free(tna);
	json_object_put(hdr);
	json_object_put(pl);
	free(hb);
	free(pb);
	free(sb);
	return r;
}
