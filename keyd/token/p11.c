/* p11.c: one PKCS#11 session on one token, for keyd-backup. */
#include "p11.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyd_err.h"
#include "token.h"

/* Slots looked at when searching for the token. */
#define P11_MAX_SLOTS 256
/* Attributes in one search template (a URI's plus the class). */
#define P11_MAX_TEMPLATE 32
/* Bytes of a P-384 point (the largest curve here), uncompressed. */
#define P11_MAX_POINT 97
/* Bytes of an Ed25519 public key. */
#define P11_ED25519_LEN 32

struct p11 {
	CK_FUNCTION_LIST *f;
	int initialized;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char label[33];
	CK_SESSION_HANDLE s;
	int open;
	int logged_in;
};

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

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
find_token(struct p11 *p, P11KitUri *uri, const char *text, char *err,
    size_t errlen)
{
	CK_SLOT_ID slots[P11_MAX_SLOTS];
	CK_ULONG n = P11_MAX_SLOTS, i;
	CK_TOKEN_INFO info;
	int found = 0;
	CK_RV rv;

	rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_GetSlotList failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (i = 0; i < n; i++) {
		if (p->f->C_GetTokenInfo(slots[i], &info) != CKR_OK ||
		    !p11_kit_uri_match_token_info(uri, &info))
			continue;
		if (found++ == 0) {
			p->slot = slots[i];
			p->info = info;
		}
	}
	if (found == 0) {
		errf(err, errlen, "no token matches %s (%lu tokens present); "
		    "check the token label with 'p11tool --list-tokens'", text,
		    (unsigned long)n);
		return KEYD_ERR_NOT_FOUND;
	}
	if (found > 1) {
		errf(err, errlen, "%d tokens match %s; add serial= to the URI",
		    found, text);
		return KEYD_ERR_INVALID_ARG;
	}
	memcpy(p->label, p->info.label, 32);
	p->label[32] = '\0';
	for (i = 32; i > 0 && p->label[i - 1] == ' '; i--)
		p->label[i - 1] = '\0';
	return KEYD_OK;
}

int
p11_open(const char *module, const char *token_uri, struct p11 **out,
    char *err, size_t errlen)
{
	struct p11 *p = NULL;
	P11KitUri *uri = NULL;
	CK_C_INITIALIZE_ARGS args;
	char *real = NULL;
	CK_RV rv;
	int pr, r = KEYD_ERR_TOKEN;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (uri = p11_kit_uri_new()) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	pr = p11_kit_uri_parse(token_uri, P11_KIT_URI_FOR_TOKEN, uri);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "token URI %s: %s", token_uri,
		    p11_kit_uri_message(pr));
		r = KEYD_ERR_INVALID_ARG;
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL ||
	    p11_kit_uri_get_pin_source(uri) != NULL) {
		errf(err, errlen, "token URI %s must not carry a PIN; give the "
		    "PIN in a PIN file", token_uri);
		r = KEYD_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = config_check_module(module, &real, err, errlen)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_TOKEN;
	/* Unmanaged, so that we initialise it ourselves with OS locking. */
	p->f = p11_kit_module_load(real, P11_KIT_MODULE_UNMANAGED |
	    P11_KIT_MODULE_CRITICAL);
	if (p->f == NULL) {
		errf(err, errlen, "cannot load PKCS#11 module %s: %s", real,
		    p11_kit_message() ? p11_kit_message() : "unknown error");
		goto out;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = p->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		errf(err, errlen, "C_Initialize of %s failed: %s", real,
		    token_rv_name(rv));
		goto out;
	}
	p->initialized = 1;
	if ((r = find_token(p, uri, token_uri, err, errlen)) != KEYD_OK)
		goto out;
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
	if (p->f != NULL && p->initialized) {
		if (p->open && p->logged_in)
			(void)p->f->C_Logout(p->s);
		if (p->open)
			(void)p->f->C_CloseSession(p->s);
		(void)p->f->C_Finalize(NULL);
	}
	if (p->f != NULL)
		p11_kit_module_release(p->f);
	free(p);
}

int
p11_login(struct p11 *p, CK_USER_TYPE user, const char *pin, size_t len,
    char *err, size_t errlen)
{
	const char *who = user == CKU_SO ? "security officer (SO)" : "user";
	CK_RV rv;

	rv = p->f->C_Login(p->s, user, (CK_UTF8CHAR *)(uintptr_t)pin, len);
	if (rv == CKR_OK) {
		p->logged_in = 1;
		return KEYD_OK;
	}
	if (rv == CKR_PIN_INCORRECT) {
		errf(err, errlen, "%s login to token '%s' failed: the PIN is "
		    "wrong (check the %s PIN file)", who, p->label,
		    user == CKU_SO ? "SO" : "user");
		return KEYD_ERR_CONFIG;
	}
	if (rv == CKR_PIN_LOCKED) {
		errf(err, errlen, "%s login to token '%s' failed: the PIN is "
		    "locked after too many wrong tries", who, p->label);
		return KEYD_ERR_CONFIG;
	}
	errf(err, errlen, "%s login to token '%s' failed: %s", who, p->label,
	    token_rv_name(rv));
	return KEYD_ERR_TOKEN;
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

CK_RV
p11_find(struct p11 *p, CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *found)
{
	CK_RV rv, rv2;

	*found = 0;
	rv = p->f->C_FindObjectsInit(p->s, tmpl, n);
	if (rv != CKR_OK)
		return rv;
	rv = p->f->C_FindObjects(p->s, objs, max, found);
	rv2 = p->f->C_FindObjectsFinal(p->s);
	return rv != CKR_OK ? rv : rv2;
}

/* Searches tmpl plus CKA_CLASS = cls; adds what it finds to objs. */
static CK_RV
find_class(struct p11 *p, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *objs, CK_ULONG *count)
{
	CK_ATTRIBUTE full[P11_MAX_TEMPLATE];
	CK_ULONG m = 0, got = 0;
	CK_RV rv;

	for (CK_ULONG i = 0; i < n && m < P11_MAX_TEMPLATE - 1; i++)
		full[m++] = tmpl[i];
	full[m].type = CKA_CLASS;
	full[m].pValue = &cls;
	full[m].ulValueLen = sizeof(cls);
	m++;
	rv = p11_find(p, full, m, objs + *count, P11_MAX_MATCHES - *count,
	    &got);
	*count += got;
	return rv;
}

int
p11_find_key_uri(struct p11 *p, const char *uri, CK_OBJECT_HANDLE *h,
    char *err, size_t errlen)
{
	P11KitUri *u = NULL;
	CK_ATTRIBUTE *attrs, *cls = NULL;
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES];
	CK_ULONG n = 0, count = 0;
	CK_RV rv = CKR_OK;
	int pr, r = KEYD_ERR_INVALID_ARG;

	*h = CK_INVALID_HANDLE;
	if ((u = p11_kit_uri_new()) == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, u);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "key URI %s: %s", uri,
		    p11_kit_uri_message(pr));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		errf(err, errlen, "key URI %s has attributes keyd-backup does "
		    "not know", uri);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(u) != NULL ||
	    p11_kit_uri_get_pin_source(u) != NULL) {
		errf(err, errlen, "key URI %s must not carry a PIN", uri);
		goto out;
	}
	if (!p11_kit_uri_match_token_info(u, &p->info)) {
		errf(err, errlen, "key URI %s names another token than '%s'",
		    uri, p->label);
		goto out;
	}
	attrs = p11_kit_uri_get_attributes(u, &n);
	if (n == 0 || n >= P11_MAX_TEMPLATE) {
		errf(err, errlen, "key URI %s names no object; add object= "
		    "or id=", uri);
		goto out;
	}
	for (CK_ULONG i = 0; i < n; i++)
		if (attrs[i].type == CKA_CLASS)
			cls = &attrs[i];
	if (cls != NULL) {
		rv = p11_find(p, attrs, n, objs, P11_MAX_MATCHES, &count);
	} else {
		rv = find_class(p, attrs, n, CKO_PRIVATE_KEY, objs, &count);
		if (rv == CKR_OK)
			rv = find_class(p, attrs, n, CKO_SECRET_KEY, objs,
			    &count);
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "searching for key %s failed: %s", uri,
		    token_rv_name(rv));
		r = KEYD_ERR_TOKEN;
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
		goto out;
	}
	*h = objs[0];
	r = KEYD_OK;
out:
	p11_kit_uri_free(u);
	return r;
}

CK_RV
p11_get_attr(struct p11 *p, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    uint8_t **val, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = p->f->C_GetAttributeValue(p->s, o, &a, 1);
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > P11_MAX_ATTR)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return CKR_HOST_MEMORY;
	rv = p->f->C_GetAttributeValue(p->s, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

CK_RV
p11_get_bool(struct p11 *p, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    int *v)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = { type, &b, sizeof(b) };
	CK_RV rv;

	*v = 0;
	rv = p->f->C_GetAttributeValue(p->s, o, &a, 1);
	if (rv == CKR_OK)
		*v = b == CK_TRUE;
	return rv;
}

CK_RV
p11_get_ulong(struct p11 *p, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *v)
{
	CK_ATTRIBUTE a = { type, v, sizeof(*v) };

	*v = 0;
	return p->f->C_GetAttributeValue(p->s, o, &a, 1);
}

CK_RV
p11_random(struct p11 *p, uint8_t *out, size_t n)
{
	return p->f->C_GenerateRandom(p->s, out, n);
}

static int
same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point (some tokens give
 * the bare point): the bare point inside buf, if its length is want. */
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
    size_t blen, uint8_t **spki, size_t *spki_len, unsigned *bits)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	const uint8_t *pt = NULL;
	const char *group = NULL, *alg = "EC";
	size_t ptlen = 0;
	int r = KEYD_ERR_CRYPTO;

	*spki = NULL;
	*spki_len = 0;
	*bits = 0;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (kt == CKK_RSA) {
		alg = "RSA";
		if (alen == 0 || blen == 0 || alen > P11_MAX_ATTR ||
		    blen > P11_MAX_ATTR ||
		    (bn = BN_bin2bn(a, (int)alen, NULL)) == NULL ||
		    (be = BN_bin2bn(b, (int)blen, NULL)) == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
			goto out;
		*bits = (unsigned)BN_num_bits(bn);
	} else if (kt == CKK_EC_EDWARDS) {
		if (!same(a, alen, p11_oid_ed25519, sizeof(p11_oid_ed25519)) &&
		    !same(a, alen, oid_ed25519_gnu, sizeof(oid_ed25519_gnu)) &&
		    !same(a, alen, str_ed25519, sizeof(str_ed25519))) {
			r = KEYD_ERR_UNSUPPORTED;
			goto out;
		}
		if (!bare_point(b, blen, P11_ED25519_LEN, &pt))
			goto out;
		if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    pt, P11_ED25519_LEN)) == NULL)
			goto out;
		*bits = 256;
		r = der_of(pk, spki, spki_len);
		goto out;
	} else if (kt == CKK_EC) {
		if (same(a, alen, p11_oid_p256, sizeof(p11_oid_p256))) {
			group = "P-256";
			ptlen = 65;
			*bits = 256;
		} else if (same(a, alen, p11_oid_p384, sizeof(p11_oid_p384))) {
			group = "P-384";
			ptlen = P11_MAX_POINT;
			*bits = 384;
		} else {
			r = KEYD_ERR_UNSUPPORTED;
			goto out;
		}
		if (!bare_point(b, blen, ptlen, &pt) ||
		    !OSSL_PARAM_BLD_push_utf8_string(bld,
		    OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld,
		    OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen))
			goto out;
	} else {
		r = KEYD_ERR_UNSUPPORTED;
		goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	r = der_of(pk, spki, spki_len);
out:
	if (r != KEYD_OK)
		*bits = 0;
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}
