/*
 * kprovkey.c: the provider's key management (EC, RSA, Ed25519): key
 * objects as kprov.h describes them, one flat block each.
 *
 * A key object is made by the store (kprovstore.c), which hands OpenSSL a
 * reference that load() copies, or by import(), which takes public keys
 * only: OpenSSL imports a certificate's public key here to compare it
 * with ours (X509_check_private_key, in TLS set-up). A private key from
 * elsewhere is refused, so OpenSSL never moves one into this provider.
 *
 * export() gives the public key and never claims a private one: when
 * OpenSSL asks for the whole key (to run an operation in another
 * provider) the export fails, and OpenSSL then uses this provider's own
 * signature and decryption. Public-key operations go to the default
 * provider (kprovsig.c, kprovcipher.c).
 */
#include "kprov.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>

static struct kprov_key *
key_new(int type)
{
	struct kprov_key *k;

	if ((k = OPENSSL_zalloc(sizeof(*k))) == NULL)
		return NULL;
	k->magic = KPROV_KEY_MAGIC;
	k->type = type;
	return k;
}

static void *
ec_new(void *provctx)
{
	(void)provctx;
	return key_new(KPROV_EC);
}

static void *
rsa_new(void *provctx)
{
	(void)provctx;
	return key_new(KPROV_RSA);
}

static void *
ed25519_new(void *provctx)
{
	(void)provctx;
	return key_new(KPROV_ED25519);
}

static void
key_free(void *keydata)
{
	if (keydata != NULL)
		OPENSSL_clear_free(keydata, sizeof(struct kprov_key));
}

/* The store's reference is the address of a key object it owns (in this
 * process, during its load callback): a copy is made for OpenSSL. */
static void *
key_load(int type, const void *reference, size_t reference_sz)
{
	const struct kprov_key *src;
	struct kprov_key *k;

	if (reference == NULL || reference_sz != sizeof(src))
		return NULL;
	memcpy(&src, reference, sizeof(src));
	if (!kprov_key_valid(src) || src->type != type)
		return NULL;
	if ((k = OPENSSL_malloc(sizeof(*k))) == NULL)
		return NULL;
	memcpy(k, src, sizeof(*k));
	return k;
}

static void *
ec_load(const void *reference, size_t reference_sz)
{
	return key_load(KPROV_EC, reference, reference_sz);
}

static void *
rsa_load(const void *reference, size_t reference_sz)
{
	return key_load(KPROV_RSA, reference, reference_sz);
}

static void *
ed25519_load(const void *reference, size_t reference_sz)
{
	return key_load(KPROV_ED25519, reference, reference_sz);
}

static int
key_has(const void *keydata, int selection)
{
	const struct kprov_key *k = keydata;

	if (!kprov_key_valid(k))
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !k->has_name)
		return 0;
	if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
	    OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) && k->spki_len == 0)
		return 0;
	return 1;
}

static int
key_match(const void *a, const void *b, int selection)
{
	const struct kprov_key *k1 = a, *k2 = b;

	if (!kprov_key_valid(k1) || !kprov_key_valid(k2) ||
	    k1->type != k2->type)
		return 0;
	if (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
		return k1->spki_len == k2->spki_len &&
		    CRYPTO_memcmp(k1->spki, k2->spki, k1->spki_len) == 0;
	if (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)
		return strcmp(k1->group, k2->group) == 0;
	return 1;
}

static const char *
type_name(int type)
{
	switch (type) {
	case KPROV_EC:
		return "EC";
	case KPROV_RSA:
		return "RSA";
	default:
		return "ED25519";
	}
}

static int
key_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	struct kprov_key *k = keydata;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *p;
	int len, ok = 0;

	if (!kprov_key_valid(k) || k->spki_len != 0)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0)
		return 0;
	/* Never a private key (see the top of this file). */
	if (OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_PRIV_KEY) != NULL ||
	    OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_RSA_D) != NULL)
		return 0;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, type_name(k->type),
	    KPROV_DEFAULT_PROPQ)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY,
	    (OSSL_PARAM *)params) <= 0)
		goto out;
	if ((len = i2d_PUBKEY(pk, NULL)) <= 0 ||
	    (size_t)len > sizeof(k->spki))
		goto out;
	p = k->spki;
	if (i2d_PUBKEY(pk, &p) != len)
		goto out;
	k->spki_len = (size_t)len;
	ok = kprov_key_fill_public(k);
out:
	if (!ok)
		k->spki_len = 0;
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int
key_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	const struct kprov_key *k = keydata;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pk;
	int ok = 0, sel;

	if (!kprov_key_valid(k) ||
	    (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY))
		return 0;
	sel = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ?
	    EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEY_PARAMETERS;
	if ((pk = kprov_key_pkey(k)) == NULL)
		return 0;
	if (EVP_PKEY_todata(pk, sel, &params) > 0)
		ok = cb(params, cbarg);
	OSSL_PARAM_free(params);
	EVP_PKEY_free(pk);
	return ok;
}

static const OSSL_PARAM ec_types[] = {
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM rsa_types[] = {
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM ed25519_types[] = {
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *
ec_types_fn(int selection)
{
	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? NULL : ec_types;
}

static const OSSL_PARAM *
rsa_types_fn(int selection)
{
	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? NULL : rsa_types;
}

static const OSSL_PARAM *
ed25519_types_fn(int selection)
{
	return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) ? NULL :
	    ed25519_types;
}

/* Parameters answered from the key object itself, without a lock or a
 * decoder (what signing and TLS ask); any other is asked of the default
 * provider's copy of the public key. */
static int
is_cached_param(const struct kprov_key *k, const char *key)
{
	if (strcmp(key, OSSL_PKEY_PARAM_BITS) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_SECURITY_BITS) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_MAX_SIZE) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_DEFAULT_DIGEST) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_MANDATORY_DIGEST) == 0)
		return 1;
	if (k->type == KPROV_RSA)
		return 0;
	if (strcmp(key, OSSL_PKEY_PARAM_PUB_KEY) == 0)
		return 1;
	return k->type == KPROV_EC &&
	    (strcmp(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_GROUP_NAME) == 0 ||
	    strcmp(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT) == 0);
}

static int
key_get_params(void *keydata, OSSL_PARAM params[])
{
	const struct kprov_key *k = keydata;
	OSSL_PARAM *p;
	EVP_PKEY *pk;
	int other = 0, ok;

	if (!kprov_key_valid(k))
		return 0;
	for (p = params; p != NULL && p->key != NULL; p++)
		if (!is_cached_param(k, p->key))
			other = 1;
	if (other) {
		/* The public key's own answers (encoded point, modulus,
		 * default digest, ...); never anything private, as that
		 * copy holds no private key. */
		if ((pk = kprov_key_pkey(k)) == NULL)
			return 0;
		ok = EVP_PKEY_get_params(pk, params);
		EVP_PKEY_free(pk);
		if (!ok)
			return 0;
	}
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
	    !OSSL_PARAM_set_int(p, (int)k->bits))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) !=
	    NULL && !OSSL_PARAM_set_int(p, (int)k->secbits))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL &&
	    !OSSL_PARAM_set_int(p, (int)k->maxsize))
		return 0;
	/* As the default provider answers: a default digest for EC and RSA,
	 * none at all (mandatory "") for Ed25519. */
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_DEFAULT_DIGEST)) !=
	    NULL && k->type != KPROV_ED25519 &&
	    !OSSL_PARAM_set_utf8_string(p, "SHA256"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MANDATORY_DIGEST)) !=
	    NULL && k->type == KPROV_ED25519 &&
	    !OSSL_PARAM_set_utf8_string(p, ""))
		return 0;
	if (k->type == KPROV_EC &&
	    (p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY))
	    != NULL && !OSSL_PARAM_set_octet_string(p, k->pub, k->pub_len))
		return 0;
	if (k->type != KPROV_RSA &&
	    (p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PUB_KEY)) != NULL &&
	    !OSSL_PARAM_set_octet_string(p, k->pub, k->pub_len))
		return 0;
	if (k->type == KPROV_EC &&
	    (p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_GROUP_NAME)) != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, k->group))
		return 0;
	if (k->type == KPROV_EC && (p = OSSL_PARAM_locate(params,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT)) != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, k->pointfmt))
		return 0;
	return 1;
}

static const OSSL_PARAM *
key_gettable_params(void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
		OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
		OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
		    NULL, 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		    NULL, 0),
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
		OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return p;
}

static const char *
ec_query_name(int op)
{
	return op == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}

static const char *
rsa_query_name(int op)
{
	return (op == OSSL_OP_SIGNATURE || op == OSSL_OP_ASYM_CIPHER) ?
	    "RSA" : NULL;
}

static const char *
ed25519_query_name(int op)
{
	return op == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

static void *
key_dup(const void *keydata, int selection)
{
	const struct kprov_key *src = keydata;
	struct kprov_key *k;

	if (!kprov_key_valid(src) ||
	    (k = OPENSSL_malloc(sizeof(*k))) == NULL)
		return NULL;
	memcpy(k, src, sizeof(*k));
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0)
		k->has_name = 0;
	return k;
}

#define FN(id, f) { id, (void (*)(void))(f) }
#define KEYMGMT(prefix)                                                    \
const OSSL_DISPATCH kprov_##prefix##_keymgmt[] = {                         \
	FN(OSSL_FUNC_KEYMGMT_NEW, prefix##_new),                           \
	FN(OSSL_FUNC_KEYMGMT_FREE, key_free),                              \
	FN(OSSL_FUNC_KEYMGMT_LOAD, prefix##_load),                         \
	FN(OSSL_FUNC_KEYMGMT_HAS, key_has),                                \
	FN(OSSL_FUNC_KEYMGMT_MATCH, key_match),                            \
	FN(OSSL_FUNC_KEYMGMT_IMPORT, key_import),                          \
	FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, prefix##_types_fn),             \
	FN(OSSL_FUNC_KEYMGMT_EXPORT, key_export),                          \
	FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, prefix##_types_fn),             \
	FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, key_get_params),                  \
	FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, key_gettable_params),        \
	FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, prefix##_query_name),   \
	FN(OSSL_FUNC_KEYMGMT_DUP, key_dup),                                \
	{ 0, NULL },                                                       \
}

KEYMGMT(ec);
KEYMGMT(rsa);
KEYMGMT(ed25519);
