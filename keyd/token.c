/* token.c: the PKCS#11 token, through p11-kit. */
#include "token.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "log.h"
#include "secmem.h"

#define TOKEN_MAX_SLOTS 256
#define TOKEN_MAX_MATCHES 8      /* objects fetched per key search */
#define TOKEN_MAX_ATTR 4096      /* bytes of one attribute we read */

struct token {
	CK_FUNCTION_LIST *f;
	int initialized;
	P11KitUri *uri;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char *pin;                 /* locked memory */
	size_t pin_len;
	CK_SESSION_HANDLE keeper;
	int keeper_open;
	int logged_in;
	pthread_rwlock_t lock;     /* writers: recovery; readers: operations */
	atomic_ulong generation;
	atomic_ulong recoveries;
	atomic_int broken;         /* a recovery failed: try again first */
	struct token_key *keys;    /* the config's keys, then the audit key */
	size_t n_keys;             /* the config's keys */
	size_t n_all;              /* n_keys, plus one with an audit key */
	int has_audit_key;
};

/* DER of the curve OIDs keyd serves. */
static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
	0x22 };
static const uint8_t oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
/* OpenSC writes the GnuPG OID for edwards25519. */
static const uint8_t oid_ed25519_gnu[] = { 0x06, 0x09, 0x2b, 0x06, 0x01,
	0x04, 0x01, 0xda, 0x47, 0x0f, 0x01 };
static const uint8_t str_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
	'd', 's', '2', '5', '5', '1', '9' };

const char *
token_rv_name(CK_RV rv)
{
	switch (rv) {
#define N(x) case x: return #x;
	N(CKR_OK) N(CKR_CANCEL) N(CKR_HOST_MEMORY) N(CKR_SLOT_ID_INVALID)
	N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD)
	N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE)
	N(CKR_ATTRIBUTE_TYPE_INVALID) N(CKR_ATTRIBUTE_VALUE_INVALID)
	N(CKR_ACTION_PROHIBITED) N(CKR_DATA_INVALID) N(CKR_DATA_LEN_RANGE)
	N(CKR_DEVICE_ERROR) N(CKR_DEVICE_MEMORY) N(CKR_DEVICE_REMOVED)
	N(CKR_ENCRYPTED_DATA_INVALID) N(CKR_ENCRYPTED_DATA_LEN_RANGE)
	N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_SUPPORTED)
	N(CKR_KEY_HANDLE_INVALID) N(CKR_KEY_SIZE_RANGE)
	N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_KEY_FUNCTION_NOT_PERMITTED)
	N(CKR_KEY_NOT_WRAPPABLE) N(CKR_KEY_UNEXTRACTABLE)
	N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
	N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE)
	N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_PIN_INCORRECT)
	N(CKR_PIN_INVALID) N(CKR_PIN_LEN_RANGE) N(CKR_PIN_EXPIRED)
	N(CKR_PIN_LOCKED) N(CKR_SESSION_CLOSED) N(CKR_SESSION_COUNT)
	N(CKR_SESSION_HANDLE_INVALID) N(CKR_SESSION_READ_ONLY)
	N(CKR_SIGNATURE_INVALID) N(CKR_SIGNATURE_LEN_RANGE)
	N(CKR_TEMPLATE_INCOMPLETE) N(CKR_TEMPLATE_INCONSISTENT)
	N(CKR_TOKEN_NOT_PRESENT) N(CKR_TOKEN_NOT_RECOGNIZED)
	N(CKR_USER_ALREADY_LOGGED_IN) N(CKR_USER_NOT_LOGGED_IN)
	N(CKR_USER_PIN_NOT_INITIALIZED) N(CKR_USER_TYPE_INVALID)
	N(CKR_BUFFER_TOO_SMALL) N(CKR_CRYPTOKI_NOT_INITIALIZED)
	N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef N
	}
	return "CKR_(other)";
}

const char *
token_key_type_name(enum token_key_type type)
{
	switch (type) {
	case TOKEN_KEY_EC_P256: return "ec-p256";
	case TOKEN_KEY_EC_P384: return "ec-p384";
	case TOKEN_KEY_RSA: return "rsa";
	case TOKEN_KEY_ED25519: return "ed25519";
	case TOKEN_KEY_AES: return "aes";
	}
	return "unknown";
}

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Fixed-width, space-padded PKCS#11 strings to C strings. */
static void
copy_padded(char *dst, const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

/* A session or login that is gone: the session can be reopened and the
 * user logged in again, after which the request may be retried. */
static int
rv_session_lost(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	    rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED ||
	    rv == CKR_TOKEN_NOT_PRESENT;
}

static int
find_slot(struct token *t, char *err, size_t errlen)
{
	CK_SLOT_ID slots[TOKEN_MAX_SLOTS];
	CK_ULONG n = TOKEN_MAX_SLOTS, i;
	CK_TOKEN_INFO info;
	int found = 0;
	CK_RV rv;

	rv = t->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_GetSlotList failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (i = 0; i < n; i++) {
		if (t->f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;
		if (!p11_kit_uri_match_token_info(t->uri, &info))
			continue;
		if (found++ == 0) {
			t->slot = slots[i];
			t->info = info;
		}
	}
	if (found == 0) {
		errf(err, errlen, "no token matches %s (%lu tokens present)",
		    "the configured token URI", (unsigned long)n);
		return KEYD_ERR_TOKEN;
	}
	if (found > 1) {
		errf(err, errlen, "%d tokens match the configured token URI; "
		    "add serial= or model= to it", found);
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* Opens the keeper session and logs the user in. Caller holds the write
 * lock or is the only thread. */
static int
keeper_login(struct token *t, char *err, size_t errlen)
{
	CK_RV rv;

	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &t->keeper);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_OpenSession failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	t->keeper_open = 1;
	rv = t->f->C_Login(t->keeper, CKU_USER, (CK_UTF8CHAR *)t->pin,
	    t->pin_len);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		errf(err, errlen, "login to the token failed: %s%s",
		    token_rv_name(rv), rv == CKR_PIN_INCORRECT ?
		    " (check the PIN file)" : "");
		return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ?
		    KEYD_ERR_CONFIG : KEYD_ERR_TOKEN;
	}
	t->logged_in = 1;
	return KEYD_OK;
}

/* Reads one attribute into a malloc'ed buffer. */
static CK_RV
get_attr(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = t->f->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > TOKEN_MAX_ATTR)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return CKR_HOST_MEMORY;
	rv = t->f->C_GetAttributeValue(s, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

static int
get_bool(struct token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (t->f->C_GetAttributeValue(t->keeper, o, &a, 1) != CKR_OK)
		return 0;
	return v == CK_TRUE;
}

static CK_RV
get_ulong(struct token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *v)
{
	CK_ATTRIBUTE a = { type, v, sizeof(*v) };

	return t->f->C_GetAttributeValue(t->keeper, o, &a, 1);
}

/* Finds the objects matching tmpl (plus class, if class != -1). */
static CK_RV
find_objects(struct token *t, CK_ATTRIBUTE *tmpl, CK_ULONG n, long klass,
    CK_OBJECT_HANDLE *objs, CK_ULONG *nobjs)
{
	CK_ATTRIBUTE full[32];
	CK_OBJECT_CLASS cls = (CK_OBJECT_CLASS)klass;
	CK_ULONG m = 0, i;
	CK_RV rv, rv2;

	for (i = 0; i < n && m < 31; i++)
		full[m++] = tmpl[i];
	if (klass >= 0) {
		full[m].type = CKA_CLASS;
		full[m].pValue = &cls;
		full[m].ulValueLen = sizeof(cls);
		m++;
	}
	rv = t->f->C_FindObjectsInit(t->keeper, full, m);
	if (rv != CKR_OK)
		return rv;
	rv = t->f->C_FindObjects(t->keeper, objs, TOKEN_MAX_MATCHES, nobjs);
	rv2 = t->f->C_FindObjectsFinal(t->keeper);
	return rv != CKR_OK ? rv : rv2;
}

static int
spki_from_pkey(EVP_PKEY *pk, struct token_key *k)
{
	int n = i2d_PUBKEY(pk, NULL);
	uint8_t *p;

	if (n <= 0 || (k->spki = malloc((size_t)n)) == NULL)
		return KEYD_ERR_CRYPTO;
	p = k->spki;
	if (i2d_PUBKEY(pk, &p) != n)
		return KEYD_ERR_CRYPTO;
	k->spki_len = (size_t)n;
	return KEYD_OK;
}

static int
rsa_spki(struct token *t, struct token_key *k)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	int r = KEYD_ERR_CRYPTO;

	if (get_attr(t, t->keeper, k->handle, CKA_MODULUS, &n, &nlen) !=
	    CKR_OK || get_attr(t, t->keeper, k->handle, CKA_PUBLIC_EXPONENT,
	    &e, &elen) != CKR_OK || nlen == 0 || elen == 0) {
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	k->bits = (unsigned)BN_num_bits(bn);
	r = spki_from_pkey(pk, k);
out:
	free(n);
	free(e);
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point (some tokens give
 * the bare point); returns the bare point inside buf. */
static int
unwrap_point(const uint8_t *buf, size_t len, size_t want, const uint8_t **pt)
{
	if (len == want) {
		*pt = buf;
		return 0;
	}
	if (want < 128 && len == want + 2 && buf[0] == 0x04 &&
	    buf[1] == want) {
		*pt = buf + 2;
		return 0;
	}
	if (want >= 128 && want < 256 && len == want + 3 && buf[0] == 0x04 &&
	    buf[1] == 0x81 && buf[2] == want) {
		*pt = buf + 3;
		return 0;
	}
	return -1;
}

static int
ec_spki(struct token *t, struct token_key *k, char *err, size_t errlen)
{
	CK_OBJECT_HANDLE pubs[TOKEN_MAX_MATCHES];
	CK_ULONG npub = 0;
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	uint8_t *point = NULL;
	const uint8_t *pt;
	size_t plen, want;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	CK_RV rv;
	int r = KEYD_ERR_TOKEN;

	/* The private key object does not carry the point: its public
	 * twin, paired by CKA_ID as every PKCS#11 tool pairs them, does. */
	rv = find_objects(t, tmpl, 1, CKO_PUBLIC_KEY, pubs, &npub);
	if (rv != CKR_OK || npub == 0) {
		errf(err, errlen, "key '%s' (%s): no public key object with the "
		    "same CKA_ID on the token; keyd needs it to serve the "
		    "public key", k->name, k->uri);
		goto out;
	}
	if (get_attr(t, t->keeper, pubs[0], CKA_EC_POINT, &point, &plen) !=
	    CKR_OK) {
		errf(err, errlen, "key '%s': cannot read CKA_EC_POINT of its "
		    "public key", k->name);
		goto out;
	}
	want = k->type == TOKEN_KEY_ED25519 ? 32 :
	    k->type == TOKEN_KEY_EC_P256 ? 65 : 97;
	if (unwrap_point(point, plen, want, &pt) != 0 ||
	    (k->type != TOKEN_KEY_ED25519 && pt[0] != 0x04)) {
		errf(err, errlen, "key '%s': its public key's CKA_EC_POINT is "
		    "not a point of the expected size", k->name);
		goto out;
	}
	r = KEYD_ERR_CRYPTO;
	if (k->type == TOKEN_KEY_ED25519) {
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt,
		    want);
		if (pk == NULL)
			goto out;
	} else {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_PKEY_PARAM_GROUP_NAME, k->type == TOKEN_KEY_EC_P256 ?
		    (char *)"prime256v1" : (char *)"secp384r1", 0);
		params[1] = OSSL_PARAM_construct_octet_string(
		    OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)pt, want);
		params[2] = OSSL_PARAM_construct_end();
		if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ==
		    NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
		    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY,
		    params) <= 0) {
			errf(err, errlen, "key '%s': its public key is not a "
			    "valid point", k->name);
			goto out;
		}
	}
	r = spki_from_pkey(pk, k);
out:
	free(point);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

static int
same_der(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Reads what keyd needs to know of a key and checks it against its ops. */
static int
describe_key(struct token *t, struct token_key *k, unsigned ops, char *err,
    size_t errlen)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	uint8_t *buf = NULL;
	size_t len;
	CK_ULONG vlen;
	int r = KEYD_ERR_CONFIG;

	if (get_ulong(t, k->handle, CKA_CLASS, &cls) != CKR_OK ||
	    get_ulong(t, k->handle, CKA_KEY_TYPE, &kt) != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): cannot read its class and "
		    "type", k->name, k->uri);
		return KEYD_ERR_TOKEN;
	}
	if (get_attr(t, t->keeper, k->handle, CKA_ID, &buf, &len) == CKR_OK &&
	    len <= TOKEN_MAX_ID) {
		memcpy(k->id, buf, len);
		k->id_len = len;
	}
	free(buf);
	buf = NULL;
	k->can_sign = get_bool(t, k->handle, CKA_SIGN);
	k->can_decrypt = get_bool(t, k->handle, CKA_DECRYPT);
	k->can_encrypt = get_bool(t, k->handle, CKA_ENCRYPT);
	k->extractable = get_bool(t, k->handle, CKA_EXTRACTABLE);
	k->wrap_with_trusted = get_bool(t, k->handle, CKA_WRAP_WITH_TRUSTED);
	k->weak_extractable = k->extractable && !k->wrap_with_trusted;

	if (cls == CKO_SECRET_KEY && kt == CKK_AES) {
		k->type = TOKEN_KEY_AES;
		if (get_ulong(t, k->handle, CKA_VALUE_LEN, &vlen) == CKR_OK)
			k->bits = (unsigned)vlen * 8;
	} else if (cls == CKO_PRIVATE_KEY && kt == CKK_RSA) {
		k->type = TOKEN_KEY_RSA;
		if ((r = rsa_spki(t, k)) != KEYD_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "modulus and public exponent", k->name, k->uri);
			return r;
		}
	} else if (cls == CKO_PRIVATE_KEY &&
	    (kt == CKK_EC || kt == CKK_EC_EDWARDS)) {
		if (get_attr(t, t->keeper, k->handle, CKA_EC_PARAMS, &buf,
		    &len) != CKR_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "CKA_EC_PARAMS", k->name, k->uri);
			return KEYD_ERR_TOKEN;
		}
		if (kt == CKK_EC && same_der(buf, len, oid_p256,
		    sizeof(oid_p256))) {
			k->type = TOKEN_KEY_EC_P256;
			k->bits = 256;
		} else if (kt == CKK_EC && same_der(buf, len, oid_p384,
		    sizeof(oid_p384))) {
			k->type = TOKEN_KEY_EC_P384;
			k->bits = 384;
		} else if (kt == CKK_EC_EDWARDS && (same_der(buf, len,
		    oid_ed25519, sizeof(oid_ed25519)) || same_der(buf, len,
		    oid_ed25519_gnu, sizeof(oid_ed25519_gnu)) ||
		    same_der(buf, len, str_ed25519, sizeof(str_ed25519)))) {
			k->type = TOKEN_KEY_ED25519;
			k->bits = 256;
		} else {
			free(buf);
			errf(err, errlen, "key '%s' (%s): its curve is not one "
			    "keyd serves (P-256, P-384, Ed25519)", k->name,
			    k->uri);
			return KEYD_ERR_CONFIG;
		}
		free(buf);
		if ((r = ec_spki(t, k, err, errlen)) != KEYD_OK)
			return r;
	} else {
		errf(err, errlen, "key '%s' (%s): a %s of type 0x%lx is not a "
		    "key keyd serves (a private key, or an AES secret key)",
		    k->name, k->uri, cls == CKO_PUBLIC_KEY ? "public key" :
		    "object", (unsigned long)kt);
		return KEYD_ERR_CONFIG;
	}

	if ((ops & CONFIG_OP_SIGN) && (k->type == TOKEN_KEY_AES ||
	    !k->can_sign)) {
		errf(err, errlen, "key '%s' (%s) has ops = sign, but it is %s",
		    k->name, k->uri, k->type == TOKEN_KEY_AES ?
		    "an AES key" : "not allowed to sign (CKA_SIGN is false)");
		return KEYD_ERR_CONFIG;
	}
	if ((ops & CONFIG_OP_DECRYPT) && (k->type != TOKEN_KEY_RSA ||
	    !k->can_decrypt)) {
		errf(err, errlen, "key '%s' (%s) has ops = decrypt, but %s",
		    k->name, k->uri, k->type != TOKEN_KEY_RSA ?
		    "only RSA keys decrypt" :
		    "CKA_DECRYPT is false on the token");
		return KEYD_ERR_CONFIG;
	}
	if ((ops & (CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN)) &&
	    (k->type != TOKEN_KEY_AES || !k->can_encrypt ||
	    !k->can_decrypt)) {
		errf(err, errlen, "key '%s' (%s) has SRTP ops, but %s",
		    k->name, k->uri, k->type != TOKEN_KEY_AES ?
		    "only AES keys wrap SRTP keys" :
		    "it lacks CKA_ENCRYPT or CKA_DECRYPT");
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* Looks the key up by its URI's attributes. With no class in the URI
 * (type=), a private or secret key is what is meant. */
static int
find_key(struct token *t, struct token_key *k, char *err, size_t errlen)
{
	CK_OBJECT_HANDLE objs[TOKEN_MAX_MATCHES];
	CK_ULONG n = 0, total = 0;
	int has_class = 0;
	CK_RV rv;

	for (CK_ULONG i = 0; i < k->tmpl_n; i++)
		if (k->tmpl[i].type == CKA_CLASS)
			has_class = 1;
	if (has_class) {
		rv = find_objects(t, k->tmpl, k->tmpl_n, -1, objs, &n);
		total = n;
	} else {
		CK_OBJECT_HANDLE more[TOKEN_MAX_MATCHES];
		CK_ULONG m = 0;

		rv = find_objects(t, k->tmpl, k->tmpl_n, CKO_PRIVATE_KEY, objs,
		    &n);
		if (rv == CKR_OK)
			rv = find_objects(t, k->tmpl, k->tmpl_n, CKO_SECRET_KEY,
			    more, &m);
		total = n + m;
		if (n == 0 && m > 0)
			objs[0] = more[0];
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): search failed: %s", k->name,
		    k->uri, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if (total == 0) {
		errf(err, errlen, "key '%s' (%s) is not on the token", k->name,
		    k->uri);
		return KEYD_ERR_CONFIG;
	}
	if (total > 1) {
		errf(err, errlen, "key '%s' (%s) matches %lu objects; add id= "
		    "or type= to the URI", k->name, k->uri,
		    (unsigned long)total);
		return KEYD_ERR_CONFIG;
	}
	k->handle = objs[0];
	return KEYD_OK;
}

/* The certificate object with the key's CKA_ID, if the token has one. */
static void
find_cert(struct token *t, struct token_key *k)
{
	CK_OBJECT_HANDLE objs[TOKEN_MAX_MATCHES];
	CK_ULONG n = 0;
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	uint8_t *der = NULL;
	size_t len = 0;

	if (k->id_len == 0 || k->type == TOKEN_KEY_AES)
		return;
	if (find_objects(t, tmpl, 1, CKO_CERTIFICATE, objs, &n) != CKR_OK ||
	    n == 0)
		return;
	if (n > 1)
		log_warn("key '%s': %lu certificates share its CKA_ID; serving "
		    "the first", k->name, (unsigned long)n);
	if (get_attr(t, t->keeper, objs[0], CKA_VALUE, &der, &len) !=
	    CKR_OK || len == 0) {
		free(der);
		return;
	}
	k->cert = der;
	k->cert_len = len;
}

/* Parses a URI into a search template, and checks that any token it names
 * is the configured token. what names it in messages. */
static int
parse_uri(struct token *t, const char *name, const char *uri,
    CK_ATTRIBUTE **out, CK_ULONG *nout, char *err, size_t errlen);

static int
parse_key_uri(struct token *t, struct token_key *k, char *err, size_t errlen)
{
	return parse_uri(t, k->name, k->uri, &k->tmpl, &k->tmpl_n, err,
	    errlen);
}

/* Finds an earlier version of a key by its template: one AES secret key. */
static int
find_prev(struct token *t, struct token_key *k, size_t v, const char *uri,
    char *err, size_t errlen)
{
	CK_OBJECT_HANDLE objs[TOKEN_MAX_MATCHES];
	CK_ULONG n = 0;
	CK_KEY_TYPE kt = 0;
	CK_RV rv;

	rv = find_objects(t, k->prev_tmpl[v], k->prev_tmpl_n[v],
	    CKO_SECRET_KEY, objs, &n);
	if (rv != CKR_OK || n != 1) {
		errf(err, errlen, "key '%s': previous version %s %s", k->name,
		    uri, rv != CKR_OK ? token_rv_name(rv) : n == 0 ?
		    "is not on the token (as a secret key)" :
		    "matches more than one object; add id=");
		return rv != CKR_OK ? KEYD_ERR_TOKEN : KEYD_ERR_CONFIG;
	}
	if (get_ulong(t, objs[0], CKA_KEY_TYPE, &kt) != CKR_OK ||
	    kt != CKK_AES) {
		errf(err, errlen, "key '%s': previous version %s is not an AES "
		    "key", k->name, uri);
		return KEYD_ERR_CONFIG;
	}
	k->prev[v] = objs[0];
	return KEYD_OK;
}

static int
resolve_prev(struct token *t, struct token_key *k,
    const struct config_key *ck, char *err, size_t errlen)
{
	int r;

	if (ck->n_previous == 0)
		return KEYD_OK;
	k->prev = calloc(ck->n_previous, sizeof(*k->prev));
	k->prev_tmpl = calloc(ck->n_previous, sizeof(*k->prev_tmpl));
	k->prev_tmpl_n = calloc(ck->n_previous, sizeof(*k->prev_tmpl_n));
	if (k->prev == NULL || k->prev_tmpl == NULL || k->prev_tmpl_n == NULL)
		return KEYD_ERR_NOMEM;
	k->n_prev = ck->n_previous;
	for (size_t v = 0; v < ck->n_previous; v++) {
		if ((r = parse_uri(t, k->name, ck->previous[v],
		    &k->prev_tmpl[v], &k->prev_tmpl_n[v], err, errlen)) !=
		    KEYD_OK ||
		    (r = find_prev(t, k, v, ck->previous[v], err, errlen)) !=
		    KEYD_OK)
			return r;
	}
	return KEYD_OK;
}

static int
parse_uri(struct token *t, const char *name, const char *uri,
    CK_ATTRIBUTE **out, CK_ULONG *nout, char *err, size_t errlen)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_ATTRIBUTE *attrs, *tmpl = NULL;
	CK_ULONG n, i = 0;
	int pr, r = KEYD_ERR_CONFIG;

	*out = NULL;
	*nout = 0;
	if (u == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, u);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "key '%s': uri %s: %s", name, uri,
		    p11_kit_uri_message(pr));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		errf(err, errlen, "key '%s': uri %s has attributes keyd does "
		    "not know", name, uri);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(u) != NULL ||
	    p11_kit_uri_get_pin_source(u) != NULL) {
		errf(err, errlen, "key '%s': uri must not carry a PIN; keyd "
		    "reads the PIN from pin_file", name);
		goto out;
	}
	if (!p11_kit_uri_match_token_info(u, &t->info)) {
		errf(err, errlen, "key '%s': uri %s names another token than "
		    "[keyd] token", name, uri);
		goto out;
	}
	attrs = p11_kit_uri_get_attributes(u, &n);
	if (n == 0) {
		errf(err, errlen, "key '%s': uri %s names no object; add "
		    "object= or id=", name, uri);
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
	/* The caller owns the template even on failure: it frees n entries. */
	r = KEYD_OK;
out:
	*out = tmpl;
	*nout = i;
	p11_kit_uri_free(u);
	return r;
}

/* The audit key signs the audit log's checkpoints. It sits after the
 * config's keys, where no client's key list can reach it, and it must not
 * be the same token object as any served key: compared by handle, which
 * names one object within one token, not by URI. */
static int
resolve_audit_key(struct token *t, const struct config *cfg, char *err,
    size_t errlen)
{
	struct token_key *k = &t->keys[t->n_keys];
	int r;

	k->name = "audit_key";
	k->uri = cfg->audit_key;
	t->n_all = t->n_keys + 1;
	if ((r = parse_key_uri(t, k, err, errlen)) != KEYD_OK ||
	    (r = find_key(t, k, err, errlen)) != KEYD_OK ||
	    (r = describe_key(t, k, CONFIG_OP_SIGN, err, errlen)) != KEYD_OK)
		return r;
	for (size_t i = 0; i < t->n_keys; i++) {
		int same = t->keys[i].handle == k->handle;

		for (size_t v = 0; !same && v < t->keys[i].n_prev; v++)
			same = t->keys[i].prev[v] == k->handle;
		if (same) {
			errf(err, errlen, "audit_key %s is the same token object "
			    "as [key %s]; the audit key must be a key that no "
			    "client can use", cfg->audit_key, t->keys[i].name);
			return KEYD_ERR_CONFIG;
		}
	}
	t->has_audit_key = 1;
	return KEYD_OK;
}

long
token_audit_key(const struct token *t)
{
	return t->has_audit_key ? (long)t->n_keys : -1;
}

int
token_open(const struct config *cfg, const char *pin, size_t pin_len,
    struct token **out, char *err, size_t errlen)
{
	struct token *t = NULL;
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;
	int pr, r = KEYD_ERR_TOKEN;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return KEYD_ERR_NOMEM;
	pthread_rwlock_init(&t->lock, NULL);
	if ((t->pin = secmem_alloc(pin_len + 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	memcpy(t->pin, pin, pin_len);
	t->pin_len = pin_len;

	if ((t->uri = p11_kit_uri_new()) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	pr = p11_kit_uri_parse(cfg->token, P11_KIT_URI_FOR_TOKEN, t->uri);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "token = %s: %s", cfg->token,
		    p11_kit_uri_message(pr));
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if (p11_kit_uri_get_pin_value(t->uri) != NULL ||
	    p11_kit_uri_get_pin_source(t->uri) != NULL) {
		errf(err, errlen, "token = %s: the URI must not carry a PIN; "
		    "use pin_file", cfg->token);
		r = KEYD_ERR_CONFIG;
		goto out;
	}

	/* p11-kit loads the module from the configured path only; unmanaged,
	 * so that keyd initialises it itself with OS locking (SoftHSM2 runs
	 * without its mutexes when given NULL, and crashes with threads). */
	t->f = p11_kit_module_load(cfg->module_real,
	    P11_KIT_MODULE_UNMANAGED | P11_KIT_MODULE_CRITICAL);
	if (t->f == NULL) {
		errf(err, errlen, "cannot load PKCS#11 module %s: %s",
		    cfg->module_real, p11_kit_message() ? p11_kit_message() :
		    "unknown error");
		goto out;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = t->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		errf(err, errlen, "C_Initialize of %s failed: %s",
		    cfg->module_real, token_rv_name(rv));
		goto out;
	}
	t->initialized = 1;
	if ((r = find_slot(t, err, errlen)) != KEYD_OK)
		goto out;
	if ((r = keeper_login(t, err, errlen)) != KEYD_OK)
		goto out;

	if ((t->keys = calloc(cfg->n_keys + 1, sizeof(*t->keys))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	t->n_keys = cfg->n_keys;
	t->n_all = cfg->n_keys;
	for (size_t i = 0; i < cfg->n_keys; i++) {
		struct token_key *k = &t->keys[i];

		k->name = cfg->keys[i].name;
		k->uri = cfg->keys[i].uri;
		if ((r = parse_key_uri(t, k, err, errlen)) != KEYD_OK ||
		    (r = find_key(t, k, err, errlen)) != KEYD_OK ||
		    (r = describe_key(t, k, cfg->keys[i].ops, err, errlen)) !=
		    KEYD_OK ||
		    (r = resolve_prev(t, k, &cfg->keys[i], err, errlen)) !=
		    KEYD_OK)
			goto out;
		find_cert(t, k);
	}
	if (cfg->audit_key != NULL &&
	    (r = resolve_audit_key(t, cfg, err, errlen)) != KEYD_OK)
		goto out;
	*out = t;
	t = NULL;
	r = KEYD_OK;
out:
	token_close(t);
	return r;
}

void
token_close(struct token *t)
{
	if (t == NULL)
		return;
	if (t->f != NULL && t->initialized) {
		if (t->keeper_open && t->logged_in)
			(void)t->f->C_Logout(t->keeper);
		(void)t->f->C_CloseAllSessions(t->slot);
		(void)t->f->C_Finalize(NULL);
	}
	if (t->f != NULL)
		p11_kit_module_release(t->f);
	for (size_t i = 0; i < t->n_all; i++) {
		for (CK_ULONG j = 0; j < t->keys[i].tmpl_n; j++)
			free(t->keys[i].tmpl[j].pValue);
		free(t->keys[i].tmpl);
		free(t->keys[i].spki);
		free(t->keys[i].cert);
		for (size_t v = 0; v < t->keys[i].n_prev; v++) {
			for (CK_ULONG j = 0; t->keys[i].prev_tmpl != NULL &&
			    t->keys[i].prev_tmpl[v] != NULL &&
			    j < t->keys[i].prev_tmpl_n[v]; j++)
				free(t->keys[i].prev_tmpl[v][j].pValue);
			if (t->keys[i].prev_tmpl != NULL)
				free(t->keys[i].prev_tmpl[v]);
		}
		free(t->keys[i].prev);
		free(t->keys[i].prev_tmpl);
		free(t->keys[i].prev_tmpl_n);
	}
	free(t->keys);
	if (t->uri != NULL)
		p11_kit_uri_free(t->uri);
	secmem_free(t->pin, t->pin_len + 1);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

const struct token_key *
token_key(const struct token *t, size_t i)
{
	return i < t->n_all ? &t->keys[i] : NULL;
}

size_t
token_key_count(const struct token *t)
{
	return t->n_keys;
}

void
token_session_close(struct token *t, struct token_session *s)
{
	if (s->open)
		(void)t->f->C_CloseSession(s->h);
	s->open = 0;
}

/* Reopens everything after the token lost our sessions or login: all
 * sessions, the slot (a re-inserted token may sit in another slot), the
 * login, and the key handles (they may have changed). Only one thread
 * does it per loss: the others see the generation move on. */
static int
token_recover(struct token *t, unsigned long seen, char *msg, size_t msglen)
{
	char err[256], label[sizeof(t->info.label) + 1];
	int r = KEYD_OK;

	pthread_rwlock_wrlock(&t->lock);
	if (atomic_load(&t->generation) != seen)
		goto out;
	copy_padded(label, t->info.label, sizeof(t->info.label));
	if (!atomic_load(&t->broken))
		log_warn("token '%s' lost its session or login; reopening",
		    label);
	atomic_store(&t->broken, 1);
	(void)t->f->C_CloseAllSessions(t->slot);
	t->keeper_open = 0;
	t->logged_in = 0;
	if ((r = find_slot(t, err, sizeof(err))) != KEYD_OK ||
	    (r = keeper_login(t, err, sizeof(err))) != KEYD_OK) {
		snprintf(msg, msglen, "token unavailable: %s", err);
		log_error("cannot reopen the token: %s", err);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	for (size_t i = 0; i < t->n_all; i++) {
		int fr = find_key(t, &t->keys[i], err, sizeof(err));

		for (size_t v = 0; fr == KEYD_OK && v < t->keys[i].n_prev; v++)
			fr = find_prev(t, &t->keys[i], v, "(previous)", err,
			    sizeof(err));
		if (fr != KEYD_OK) {
			snprintf(msg, msglen, "token reopened, but %s", err);
			log_error("after reopening the token: %s", err);
			r = KEYD_ERR_TOKEN;
			goto out;
		}
	}
	atomic_fetch_add(&t->generation, 1);
	atomic_fetch_add(&t->recoveries, 1);
	atomic_store(&t->broken, 0);
	log_info("token '%s' reopened and logged in again", label);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Makes sure the worker's session belongs to the current generation.
 * Caller holds the read lock. */
static CK_RV
session_ready(struct token *t, struct token_session *s)
{
	unsigned long gen = atomic_load(&t->generation);
	CK_RV rv;

	if (s->open && s->generation == gen)
		return CKR_OK;
	if (s->open)
		(void)t->f->C_CloseSession(s->h);
	s->open = 0;
	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s->h);
	if (rv != CKR_OK)
		return rv;
	s->open = 1;
	s->generation = gen;
	return CKR_OK;
}

enum token_op { TOKEN_OP_SIGN, TOKEN_OP_DECRYPT };

struct crypt_arg {
	enum token_op op;
	CK_MECHANISM *mech;
	const uint8_t *in;
	size_t inlen;
	uint8_t *out;
	size_t room;
	size_t outlen;
};

static CK_RV
crypt_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct crypt_arg *a = arg;
	CK_ULONG olen = a->room;
	/* Some tokens refuse a NULL pointer even with length 0 (SoftHSM2's
	 * Ed25519 sign of an empty message): give them an empty buffer. */
	static const CK_BYTE empty[1];
	CK_BYTE *in = a->in != NULL ? (CK_BYTE *)(uintptr_t)a->in :
	    (CK_BYTE *)(uintptr_t)empty;
	CK_RV rv;

	if (a->op == TOKEN_OP_SIGN) {
		rv = f->C_SignInit(s, a->mech, key);
		if (rv == CKR_OK)
			rv = f->C_Sign(s, in, a->inlen, a->out, &olen);
	} else {
		rv = f->C_DecryptInit(s, a->mech, key);
		if (rv == CKR_OK)
			rv = f->C_Decrypt(s, in, a->inlen, a->out, &olen);
	}
	if (rv == CKR_OK)
		a->outlen = olen;
	return rv;
}

static int
map_rv(CK_RV rv, enum token_op op, char *msg, size_t msglen)
{
	switch (rv) {
	case CKR_OK:
		return KEYD_OK;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
		snprintf(msg, msglen, "the token does not support this "
		    "mechanism (%s)", token_rv_name(rv));
		return KEYD_ERR_UNSUPPORTED;
	case CKR_DATA_LEN_RANGE:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
		snprintf(msg, msglen, "input length is out of range for this "
		    "key (%s)", token_rv_name(rv));
		return KEYD_ERR_BAD_LENGTH;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_DATA_INVALID:
		if (op == TOKEN_OP_DECRYPT) {
			snprintf(msg, msglen, "decryption failed");
			return KEYD_ERR_DECRYPT;
		}
		snprintf(msg, msglen, "the token rejected the input (%s)",
		    token_rv_name(rv));
		return KEYD_ERR_INVALID_ARG;
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
	case CKR_KEY_TYPE_INCONSISTENT:
		snprintf(msg, msglen, "the token does not allow this key to do "
		    "that (%s)", token_rv_name(rv));
		return KEYD_ERR_BAD_ALGORITHM;
	case CKR_ARGUMENTS_BAD:
		if (op == TOKEN_OP_DECRYPT) {
			/* SoftHSM2's answer to OAEP parameters it does not
			 * implement (any hash but SHA-1). */
			snprintf(msg, msglen, "the token rejected the "
			    "mechanism's parameters (%s)", token_rv_name(rv));
			return KEYD_ERR_UNSUPPORTED;
		}
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
		if (op == TOKEN_OP_DECRYPT) {
			/* SoftHSM2 reports a bad OAEP ciphertext this way.
			 * One answer for every bad ciphertext. */
			snprintf(msg, msglen, "decryption failed");
			return KEYD_ERR_DECRYPT;
		}
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	default:
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
}

/* Runs fn with the session and key, reopening and retrying once when the
 * token lost the session or login. Returns the CK_RV of the last try, or
 * sets *r to a KEYD_ERR_* code if recovery itself failed. */
static CK_RV
run_fn(struct token *t, struct token_session *s, size_t key, size_t version,
    token_op_fn fn, void *arg, int *r, char *msg, size_t msglen)
{
	unsigned long gen;
	CK_OBJECT_HANDLE h;
	CK_RV rv = CKR_GENERAL_ERROR;

	*r = KEYD_OK;
	/* A recovery that failed earlier (the token was gone) is retried
	 * first: until it succeeds nothing is logged in, and a token shows
	 * private keys only to a logged-in session, so the operation itself
	 * would fail with a misleading CKR_KEY_HANDLE_INVALID. */
	if (atomic_load(&t->broken)) {
		gen = atomic_load(&t->generation);
		s->open = 0;
		if ((*r = token_recover(t, gen, msg, msglen)) != KEYD_OK)
			return CKR_TOKEN_NOT_PRESENT;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_rwlock_rdlock(&t->lock);
		gen = atomic_load(&t->generation);
		h = key >= t->n_all ? CK_INVALID_HANDLE : version == 0 ?
		    t->keys[key].handle : t->keys[key].prev[version - 1];
		rv = session_ready(t, s);
		if (rv == CKR_OK)
			rv = fn(t->f, s->h, h, arg);
		if (rv != CKR_OK && s->open && !rv_session_lost(rv)) {
			/* The standard ends an operation on most errors, but
			 * not all (CKR_BUFFER_TOO_SMALL), and tokens differ
			 * (SoftHSM2 keeps it after CKR_ARGUMENTS_BAD): close
			 * the session, which is cheap, so that no operation
			 * left behind can fail the next client's request. */
			(void)t->f->C_CloseSession(s->h);
			s->open = 0;
		}
		pthread_rwlock_unlock(&t->lock);
		if (!rv_session_lost(rv) || attempt == 1)
			break;
		s->open = 0;
		if ((*r = token_recover(t, gen, msg, msglen)) != KEYD_OK)
			return rv;
	}
	if (rv_session_lost(rv)) {
		snprintf(msg, msglen, "token failed again after reopening the "
		    "session: %s", token_rv_name(rv));
		*r = KEYD_ERR_TOKEN;
	}
	return rv;
}

int
token_run(struct token *t, struct token_session *s, size_t key,
    size_t version, token_op_fn fn, void *arg, char *msg, size_t msglen)
{
	CK_RV rv;
	int r;

	if (key >= t->n_all || version > t->keys[key].n_prev)
		return KEYD_ERR_INTERNAL;
	rv = run_fn(t, s, key, version, fn, arg, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	return map_rv(rv, TOKEN_OP_DECRYPT, msg, msglen);
}

static int
run_crypt(struct token *t, struct token_session *s, enum token_op op,
    size_t key, CK_MECHANISM *mech, const uint8_t *in, size_t inlen,
    uint8_t *out, size_t *outlen, char *msg, size_t msglen)
{
	struct crypt_arg a = { op, mech, in, inlen, out, *outlen, 0 };
	CK_RV rv;
	int r;

	if (key >= t->n_all)
		return KEYD_ERR_INTERNAL;
	rv = run_fn(t, s, key, 0, crypt_fn, &a, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	if (rv == CKR_OK)
		*outlen = a.outlen;
	return map_rv(rv, op, msg, msglen);
}

int
token_sign(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	return run_crypt(t, s, TOKEN_OP_SIGN, key, mech, in, inlen, out,
	    outlen, msg, msglen);
}

int
token_decrypt(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	return run_crypt(t, s, TOKEN_OP_DECRYPT, key, mech, in, inlen, out,
	    outlen, msg, msglen);
}

struct random_arg {
	uint8_t *out;
	size_t n;
};

static CK_RV
random_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct random_arg *a = arg;

	(void)key;
	return f->C_GenerateRandom(s, a->out, a->n);
}

int
token_random(struct token *t, struct token_session *s, uint8_t *out,
    size_t n, char *msg, size_t msglen)
{
	struct random_arg a = { out, n };
	CK_RV rv;
	int r;

	rv = run_fn(t, s, 0, 0, random_fn, &a, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	return map_rv(rv, TOKEN_OP_SIGN, msg, msglen);
}

void
token_get_info(struct token *t, struct token_info *info)
{
	memset(info, 0, sizeof(*info));
	pthread_rwlock_rdlock(&t->lock);
	copy_padded(info->label, t->info.label, 32);
	copy_padded(info->manufacturer, t->info.manufacturerID, 32);
	copy_padded(info->model, t->info.model, 16);
	copy_padded(info->serial, t->info.serialNumber, 16);
	info->logged_in = t->logged_in;
	pthread_rwlock_unlock(&t->lock);
	info->recoveries = atomic_load(&t->recoveries);
}
