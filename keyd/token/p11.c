/* p11.c: the token access layer (p11.h), and keyd-backup's session. */
#include "p11.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyd_err.h"
#include "log.h"
#include "token.h"

/* Slots looked at when searching for the token. */
#define P11_MAX_SLOTS 256
/* The token labels a "no token matches" error lists. */
#define P11_SEEN_MAX 160
/* Attributes in one search template (a URI's, the class, CKA_TOKEN). */
#define P11_MAX_TEMPLATE 32
/* Bytes of an Ed25519 public key. */
#define P11_ED25519_LEN 32

const uint8_t p11_oid_p256[10] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x03, 0x01, 0x07 };
const uint8_t p11_oid_p384[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
	0x22 };
const uint8_t p11_oid_ed25519[5] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
/* OpenSC writes the GnuPG OID, or the printable string, for Ed25519. */
static const uint8_t oid_ed25519_gnu[] = { 0x06, 0x09, 0x2b, 0x06, 0x01,
	0x04, 0x01, 0xda, 0x47, 0x0f, 0x01 };
static const uint8_t str_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
	'd', 's', '2', '5', '5', '1', '9' };

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- the module --------------------------------------------------------- */

int
p11_module_load(const char *path, CK_FUNCTION_LIST **out, char *err,
    size_t errlen)
{
	CK_FUNCTION_LIST *f;
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	*out = NULL;
	/* Unmanaged, so that keyd initialises it itself, with OS locking;
	 * from the given path only, never from p11-kit's configuration. */
	f = p11_kit_module_load(path, P11_KIT_MODULE_UNMANAGED |
	    P11_KIT_MODULE_CRITICAL);
	if (f == NULL) {
		errf(err, errlen, "cannot load PKCS#11 module %s: %s", path,
		    p11_kit_message() ? p11_kit_message() : "unknown error");
		return KEYD_ERR_TOKEN;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		errf(err, errlen, "C_Initialize of %s failed: %s", path,
		    token_rv_name(rv));
		p11_kit_module_release(f);
		return KEYD_ERR_TOKEN;
	}
	*out = f;
	return KEYD_OK;
}

void
p11_module_release(CK_FUNCTION_LIST *f)
{
	if (f == NULL)
		return;
	(void)f->C_Finalize(NULL);
	p11_kit_module_release(f);
}

/* ---- the token ---------------------------------------------------------- */

/* Where a URI's query begins: RFC 7512 carries pin-value and pin-source
 * there only, so a message that refuses a PIN shows what comes before. */
static int
query_at(const char *uri)
{
	size_t n = strcspn(uri, "?");

	return n > 1024 ? 1024 : (int)n;
}

int
p11_token_uri(const char *text, const char *what, P11KitUri **out,
    char *err, size_t errlen)
{
	P11KitUri *uri;
	int pr;

	*out = NULL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(text, P11_KIT_URI_FOR_TOKEN, uri);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "%s %s: %s", what, text,
		    p11_kit_uri_message(pr));
		p11_kit_uri_free(uri);
		return KEYD_ERR_CONFIG;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL ||
	    p11_kit_uri_get_pin_source(uri) != NULL) {
		errf(err, errlen, "%s %.*s?...: the URI must not carry a PIN; "
		    "give the PIN in a PIN file", what, query_at(text), text);
		p11_kit_uri_free(uri);
		return KEYD_ERR_CONFIG;
	}
	*out = uri;
	return KEYD_OK;
}

void
p11_padded(char *dst, const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

/* Adds "'label'" to list, the labels a "no token matches" error shows
 * (printable; "..." once the list is full). */
static void
seen_add(char *list, size_t n, const CK_TOKEN_INFO *info)
{
	char label[sizeof(info->label) + 1];
	size_t l = strlen(list);

	if (l >= n - 4)
		return;
	p11_padded(label, info->label, sizeof(info->label));
	for (size_t i = 0; label[i] != '\0'; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			label[i] = '?';
	if ((size_t)snprintf(list + l, n - l, "%s'%s'", l > 0 ? ", " : "",
	    label) >= n - l)
		memcpy(list + n - 4, "...", 4);
}

int
p11_find_token(CK_FUNCTION_LIST *f, P11KitUri *uri, const char *text,
    CK_SLOT_ID *slot, CK_TOKEN_INFO *info, char *err, size_t errlen)
{
	CK_SLOT_ID slots[P11_MAX_SLOTS];
	CK_ULONG n = P11_MAX_SLOTS, i;
	CK_TOKEN_INFO ti;
	char seen[P11_SEEN_MAX] = "";
	int found = 0;
	CK_RV rv;

	rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_GetSlotList failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (ti.flags & CKF_TOKEN_INITIALIZED)
			seen_add(seen, sizeof(seen), &ti);
		if (!p11_kit_uri_match_token_info(uri, &ti))
			continue;
		if (found++ == 0) {
			*slot = slots[i];
			*info = ti;
		}
	}
	if (found == 0) {
		errf(err, errlen, "no token matches %s (%lu token%s "
		    "present%s%s)", text, (unsigned long)n, LOG_PLURAL(n),
		    seen[0] != '\0' ? "; initialised: " : ", none initialised",
		    seen);
		return KEYD_ERR_NOT_FOUND;
	}
	if (found > 1) {
		errf(err, errlen, "%d tokens match %s; add serial= or model= "
		    "to it", found, text);
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* The usual cause of a token that matches no URI is a module that sees
 * other tokens than the ones meant, e.g. SoftHSM2 run without the
 * SOFTHSM2_CONF that names its tokendir. */
void
p11_no_token_hint(const char *module, char *err, size_t errlen)
{
	const char *conf = secure_getenv("SOFTHSM2_CONF");
	size_t l = strlen(err);
	int n;

	n = snprintf(err + l, errlen - l, "; check the token URI against the "
	    "labels present, and that module %s is the one that holds the "
	    "token", module);
	if (n < 0 || (size_t)n >= errlen - l ||
	    strstr(module, "softhsm") == NULL)
		return;
	l += (size_t)n;
	snprintf(err + l, errlen - l, "; SoftHSM2 finds its tokens through "
	    "the SOFTHSM2_CONF environment variable, which is %s%s%s here "
	    "('softhsm2-util --show-slots' with the same SOFTHSM2_CONF lists "
	    "them)", conf != NULL ? "'" : "", conf != NULL ? conf : "not set",
	    conf != NULL ? "'" : "");
}

int
p11_login(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_USER_TYPE user,
    const char *pin, size_t len, CK_RV *rv)
{
	*rv = f->C_Login(s, user, (CK_UTF8CHAR *)(uintptr_t)pin, len);
	if (*rv == CKR_OK || *rv == CKR_USER_ALREADY_LOGGED_IN)
		return KEYD_OK;
	return *rv == CKR_PIN_INCORRECT || *rv == CKR_PIN_LOCKED ?
	    KEYD_ERR_CONFIG : KEYD_ERR_TOKEN;
}

/* ---- attributes --------------------------------------------------------- */

CK_RV
p11_get_attr(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = f->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > P11_MAX_ATTR)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return CKR_HOST_MEMORY;
	rv = f->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

CK_RV
p11_get_bool(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, int *v)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = { type, &b, sizeof(b) };
	CK_RV rv;

	*v = 0;
	rv = f->C_GetAttributeValue(s, o, &a, 1);
	if (rv == CKR_OK)
		*v = b == CK_TRUE;
	return rv;
}

CK_RV
p11_get_ulong(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, CK_ULONG *v)
{
	CK_ATTRIBUTE a = { type, v, sizeof(*v) };

	*v = 0;
	return f->C_GetAttributeValue(s, o, &a, 1);
}

int
p11_flag(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type)
{
	int v;

	return p11_get_bool(f, s, o, type, &v) == CKR_OK && v;
}

/* ---- searches ----------------------------------------------------------- */

CK_RV
p11_find(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, const CK_ATTRIBUTE *tmpl,
    CK_ULONG n, CK_OBJECT_CLASS cls, unsigned flags, CK_OBJECT_HANDLE *objs,
    CK_ULONG max, CK_ULONG *found)
{
	CK_ATTRIBUTE full[P11_MAX_TEMPLATE];
	CK_BBOOL on_token = CK_TRUE;
	CK_ULONG m = 0;
	CK_RV rv, rv2;

	*found = 0;
	for (CK_ULONG i = 0; i < n && m < P11_MAX_TEMPLATE - 2; i++)
		full[m++] = tmpl[i];
	if (cls != P11_ANY_CLASS) {
		full[m].type = CKA_CLASS;
		full[m].pValue = &cls;
		full[m].ulValueLen = sizeof(cls);
		m++;
	}
	if (flags & P11_ON_TOKEN) {
		full[m].type = CKA_TOKEN;
		full[m].pValue = &on_token;
		full[m].ulValueLen = sizeof(on_token);
		m++;
	}
	rv = f->C_FindObjectsInit(s, full, m);
	if (rv != CKR_OK)
		return rv;
	rv = f->C_FindObjects(s, objs, max, found);
	rv2 = f->C_FindObjectsFinal(s);
	return rv != CKR_OK ? rv : rv2;
}

void
p11_template_free(CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	for (CK_ULONG i = 0; tmpl != NULL && i < n; i++)
		free(tmpl[i].pValue);
	free(tmpl);
}

int
p11_key_template(const char *text, const char *what,
    const CK_TOKEN_INFO *token, const char *token_name, CK_ATTRIBUTE **out,
    CK_ULONG *nout, char *err, size_t errlen)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_ATTRIBUTE *attrs, *tmpl = NULL;
	CK_ULONG n, i = 0;
	int pr, r = KEYD_ERR_CONFIG;

	*out = NULL;
	*nout = 0;
	if (u == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(text, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, u);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "%s %s: %s", what, text,
		    p11_kit_uri_message(pr));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		errf(err, errlen, "%s %s has attributes keyd does not know",
		    what, text);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(u) != NULL ||
	    p11_kit_uri_get_pin_source(u) != NULL) {
		errf(err, errlen, "%s %.*s?... must not carry a PIN; give the "
		    "PIN in a PIN file", what, query_at(text), text);
		goto out;
	}
	if (token != NULL && !p11_kit_uri_match_token_info(u, token)) {
		errf(err, errlen, "%s %s names another token than %s", what,
		    text, token_name);
		goto out;
	}
	attrs = p11_kit_uri_get_attributes(u, &n);
	if (n == 0 || n > P11_MAX_TEMPLATE - 2) {
		errf(err, errlen, "%s %s names %s; add object= or id=", what,
		    text, n == 0 ? "no object" : "too many attributes");
		goto out;
	}
	if ((tmpl = calloc(n, sizeof(*tmpl))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		tmpl[i].type = attrs[i].type;
		tmpl[i].ulValueLen = attrs[i].ulValueLen;
		tmpl[i].pValue = malloc(attrs[i].ulValueLen ?
		    attrs[i].ulValueLen : 1);
		if (tmpl[i].pValue == NULL) {
			r = KEYD_ERR_NOMEM;
			goto out;
		}
		memcpy(tmpl[i].pValue, attrs[i].pValue, attrs[i].ulValueLen);
	}
	r = KEYD_OK;
out:
	/* The caller owns the template even on failure: it frees i
	 * entries. */
	*out = tmpl;
	*nout = i;
	p11_kit_uri_free(u);
	return r;
}

CK_RV
p11_find_key(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_CLASS cls, unsigned flags,
    CK_OBJECT_HANDLE *h, CK_ULONG *count)
{
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES];
	CK_ULONG got = 0, more = 0;
	int has_class = 0;
	CK_RV rv;

	*h = CK_INVALID_HANDLE;
	*count = 0;
	for (CK_ULONG i = 0; i < n; i++)
		if (tmpl[i].type == CKA_CLASS)
			has_class = 1;
	if (cls != P11_ANY_CLASS || has_class) {
		rv = p11_find(f, s, tmpl, n, cls, flags, objs, P11_MAX_MATCHES,
		    &got);
	} else {
		/* A key URI without type=: a private or a secret key. */
		rv = p11_find(f, s, tmpl, n, CKO_PRIVATE_KEY, flags, objs,
		    P11_MAX_MATCHES, &got);
		if (rv == CKR_OK)
			rv = p11_find(f, s, tmpl, n, CKO_SECRET_KEY, flags,
			    objs + got, P11_MAX_MATCHES - got, &more);
		got += more;
	}
	if (rv != CKR_OK)
		return rv;
	*count = got;
	if (got > 0)
		*h = objs[0];
	return CKR_OK;
}

/* ---- public keys -------------------------------------------------------- */

static int
same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

enum p11_curve
p11_curve(CK_KEY_TYPE kt, const uint8_t *params, size_t len)
{
	if (kt == CKK_EC && same(params, len, p11_oid_p256,
	    sizeof(p11_oid_p256)))
		return P11_CURVE_P256;
	if (kt == CKK_EC && same(params, len, p11_oid_p384,
	    sizeof(p11_oid_p384)))
		return P11_CURVE_P384;
	if (kt == CKK_EC_EDWARDS && (same(params, len, p11_oid_ed25519,
	    sizeof(p11_oid_ed25519)) || same(params, len, oid_ed25519_gnu,
	    sizeof(oid_ed25519_gnu)) || same(params, len, str_ed25519,
	    sizeof(str_ed25519))))
		return P11_CURVE_ED25519;
	return P11_CURVE_NONE;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point (some tokens give
 * the bare point): the bare point inside buf, if its length is want. The
 * largest point here (P-384's, 97 bytes) has a one-byte DER length. */
static int
bare_point(const uint8_t *buf, size_t len, size_t want, const uint8_t **pt)
{
	if (len == want) {
		*pt = buf;
		return 1;
	}
	if (want < 128 && len == want + 2 && buf[0] == 0x04 &&
	    buf[1] == want) {
		*pt = buf + 2;
		return 1;
	}
	return 0;
}

static int
der_of(EVP_PKEY *pk, uint8_t **spki, size_t *spki_len)
{
	int n = i2d_PUBKEY(pk, NULL);
	uint8_t *der, *q;

	if (n <= 0 || (der = malloc((size_t)n)) == NULL)
		return KEYD_ERR_CRYPTO;
	q = der;
	if (i2d_PUBKEY(pk, &q) != n) {
		free(der);
		return KEYD_ERR_CRYPTO;
	}
	*spki = der;
	*spki_len = (size_t)n;
	return KEYD_OK;
}

int
p11_spki(CK_KEY_TYPE kt, const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen, uint8_t **spki, size_t *spki_len, unsigned *bits, char *err,
    size_t errlen)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	const uint8_t *pt = NULL;
	const char *alg = "EC";
	enum p11_curve curve = P11_CURVE_NONE;
	size_t ptlen = 0;
	int r = KEYD_ERR_CRYPTO;

	*spki = NULL;
	*spki_len = 0;
	*bits = 0;
	if (kt == CKK_EC || kt == CKK_EC_EDWARDS) {
		if ((curve = p11_curve(kt, a, alen)) == P11_CURVE_NONE) {
			errf(err, errlen, "its curve is not one keyd knows "
			    "(P-256, P-384, Ed25519)");
			return KEYD_ERR_UNSUPPORTED;
		}
		ptlen = curve == P11_CURVE_ED25519 ? P11_ED25519_LEN :
		    curve == P11_CURVE_P256 ? 65 : 97;
		/* EC points in the uncompressed form, as PKCS#11 gives them. */
		if (!bare_point(b, blen, ptlen, &pt) ||
		    (curve != P11_CURVE_ED25519 && pt[0] != 0x04)) {
			errf(err, errlen, "its public key's CKA_EC_POINT is not "
			    "a point of the expected size");
			return KEYD_ERR_TOKEN;
		}
	} else if (kt == CKK_RSA) {
		if (alen == 0 || blen == 0 || alen > P11_MAX_ATTR ||
		    blen > P11_MAX_ATTR) {
			errf(err, errlen, "its public key's modulus or exponent "
			    "is empty or too long");
			return KEYD_ERR_TOKEN;
		}
	} else {
		errf(err, errlen, "its key type 0x%lx is not one keyd knows",
		    (unsigned long)kt);
		return KEYD_ERR_UNSUPPORTED;
	}
	if (curve == P11_CURVE_ED25519) {
		if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    pt, ptlen)) == NULL)
			goto out;
		*bits = 256;
		r = der_of(pk, spki, spki_len);
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (kt == CKK_RSA) {
		alg = "RSA";
		if ((bn = BN_bin2bn(a, (int)alen, NULL)) == NULL ||
		    (be = BN_bin2bn(b, (int)blen, NULL)) == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
			goto out;
		*bits = (unsigned)BN_num_bits(bn);
	} else {
		*bits = curve == P11_CURVE_P256 ? 256 : 384;
		if (!OSSL_PARAM_BLD_push_utf8_string(bld,
		    OSSL_PKEY_PARAM_GROUP_NAME, curve == P11_CURVE_P256 ?
		    "P-256" : "P-384", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld,
		    OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen))
			goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	r = der_of(pk, spki, spki_len);
out:
	if (r != KEYD_OK) {
		*bits = 0;
		errf(err, errlen, "its public key is not a valid %s",
		    kt == CKK_RSA ? "RSA public key" : "point");
	}
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

/* ---- keyd-backup's session ---------------------------------------------- */

struct p11 {
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char label[P11_LABEL_LEN];
	CK_SESSION_HANDLE s;
	int open;
	int logged_in;
};

int
p11_open(const char *module, const char *token_uri, struct p11 **out,
    char *err, size_t errlen)
{
	struct p11 *p = NULL;
	P11KitUri *uri = NULL;
	char *real = NULL;
	CK_RV rv;
	int r;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	if ((r = p11_token_uri(token_uri, "token URI", &uri, err,
	    errlen)) != KEYD_OK ||
	    (r = config_check_module(module, &real, err, errlen)) !=
	    KEYD_OK ||
	    (r = p11_module_load(real, &p->f, err, errlen)) != KEYD_OK)
		goto out;
	if ((r = p11_find_token(p->f, uri, token_uri, &p->slot, &p->info, err,
	    errlen)) != KEYD_OK) {
		if (r == KEYD_ERR_NOT_FOUND)
			p11_no_token_hint(real, err, errlen);
		goto out;
	}
	p11_padded(p->label, p->info.label, sizeof(p->info.label));
	rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, &p->s);
	if (rv != CKR_OK) {
		errf(err, errlen, "cannot open a session on token '%s': %s",
		    p->label, token_rv_name(rv));
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	p->open = 1;
	*out = p;
	p = NULL;
	r = KEYD_OK;
out:
	if (uri != NULL)
		p11_kit_uri_free(uri);
	free(real);
	p11_close(p);
	return r;
}

void
p11_close(struct p11 *p)
{
	if (p == NULL)
		return;
	if (p->f != NULL) {
		if (p->open && p->logged_in)
			(void)p->f->C_Logout(p->s);
		if (p->open)
			(void)p->f->C_CloseSession(p->s);
	}
	p11_module_release(p->f);
	free(p);
}

int
p11_session_login(struct p11 *p, CK_USER_TYPE user, const char *pin,
    size_t len, char *err, size_t errlen)
{
	const char *who = user == CKU_SO ? "security officer (SO)" : "user";
	CK_RV rv;
	int r;

	if ((r = p11_login(p->f, p->s, user, pin, len, &rv)) == KEYD_OK) {
		p->logged_in = 1;
		return KEYD_OK;
	}
	if (rv == CKR_PIN_INCORRECT)
		errf(err, errlen, "%s login to token '%s' failed: the PIN is "
		    "wrong (check the %s PIN file)", who, p->label,
		    user == CKU_SO ? "SO" : "user");
	else if (rv == CKR_PIN_LOCKED)
		errf(err, errlen, "%s login to token '%s' failed: the PIN is "
		    "locked after too many wrong tries", who, p->label);
	else
		errf(err, errlen, "%s login to token '%s' failed: %s", who,
		    p->label, token_rv_name(rv));
	return r;
}

void
p11_logout(struct p11 *p)
{
	if (p->logged_in)
		(void)p->f->C_Logout(p->s);
	p->logged_in = 0;
}

CK_FUNCTION_LIST *
p11_fn(const struct p11 *p)
{
	return p->f;
}

CK_SESSION_HANDLE
p11_session(const struct p11 *p)
{
	return p->s;
}

const char *
p11_token_label(const struct p11 *p)
{
	return p->label;
}

int
p11_find_key_uri(struct p11 *p, const char *uri, CK_OBJECT_HANDLE *h,
    char *err, size_t errlen)
{
	CK_ATTRIBUTE *tmpl = NULL;
	CK_ULONG n = 0, count = 0;
	char token[P11_LABEL_LEN + 2];
	CK_RV rv;
	int r;

	*h = CK_INVALID_HANDLE;
	snprintf(token, sizeof(token), "'%s'", p->label);
	if ((r = p11_key_template(uri, "key URI", &p->info, token, &tmpl, &n,
	    err, errlen)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_TOKEN;
	rv = p11_find_key(p->f, p->s, tmpl, n, P11_ANY_CLASS, 0, h, &count);
	if (rv != CKR_OK) {
		errf(err, errlen, "searching for key %s failed: %s", uri,
		    token_rv_name(rv));
		goto out;
	}
	if (count == 0) {
		errf(err, errlen, "key %s is not on token '%s' (as a private "
		    "or secret key)", uri, p->label);
		r = KEYD_ERR_NOT_FOUND;
		goto out;
	}
	if (count > 1) {
		errf(err, errlen, "key URI %s matches %lu objects; add id= or "
		    "type= to it", uri, (unsigned long)count);
		*h = CK_INVALID_HANDLE;
		r = KEYD_ERR_INVALID_ARG;
		goto out;
	}
	r = KEYD_OK;
out:
	p11_template_free(tmpl, n);
	return r;
}
