/*
 * kprovcipher.c: the provider's RSA decryption, one keyd request each
 * (keyd_decrypt): OAEP with the hashes keyd takes for the key (MGF1 with
 * the same hash, no label), and PKCS#1 v1.5 only where keyd allows it for
 * the key (keyd then rejects bad padding implicitly: a bad ciphertext
 * decrypts to a random-looking message, never an error). What keyd would
 * refuse is refused here before keyd is asked. Encryption is a public-key
 * operation: the default provider does it on the key's public key.
 */
#include "kprov.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "keyd.h"

struct cipher_ctx {
	const struct kprov_key *key;
	int pad;                 /* RSA_PKCS1_PADDING (OpenSSL's default) */
	int oaep_nid;            /* 0: SHA-1, OpenSSL's default */
	int mgf1_nid;            /* 0: as the OAEP digest */
	int label;               /* 1: a non-empty OAEP label was set */
	EVP_PKEY *pub;           /* encryption: the default provider's */
	EVP_PKEY_CTX *enc;
};

static void *
rsa_newctx(void *provctx)
{
	struct cipher_ctx *ctx;

	(void)provctx;
	if ((ctx = OPENSSL_zalloc(sizeof(*ctx))) == NULL)
		return NULL;
	ctx->pad = RSA_PKCS1_PADDING;
	return ctx;
}

static void
rsa_freectx(void *vctx)
{
	struct cipher_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	EVP_PKEY_CTX_free(ctx->enc);
	EVP_PKEY_free(ctx->pub);
	OPENSSL_clear_free(ctx, sizeof(*ctx));
}

static void *
rsa_dupctx(void *vctx)
{
	const struct cipher_ctx *src = vctx;
	struct cipher_ctx *ctx;

	if ((ctx = OPENSSL_malloc(sizeof(*ctx))) == NULL)
		return NULL;
	memcpy(ctx, src, sizeof(*ctx));
	ctx->pub = NULL;
	ctx->enc = NULL;
	if (src->enc != NULL) {
		if (!EVP_PKEY_up_ref(src->pub) ||
		    (ctx->pub = src->pub, ctx->enc = EVP_PKEY_CTX_dup(src->enc))
		    == NULL) {
			rsa_freectx(ctx);
			return NULL;
		}
	}
	return ctx;
}

static int
md_nid(const char *name, int *nid)
{
	EVP_MD *md;

	if ((md = EVP_MD_fetch(NULL, name, KPROV_DEFAULT_PROPQ)) == NULL) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: unknown digest %s",
		    name);
		return 0;
	}
	*nid = EVP_MD_get_type(md);
	EVP_MD_free(md);
	return 1;
}

static int
rsa_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
	struct cipher_ctx *ctx = vctx;
	const OSSL_PARAM *p;
	const char *s;
	const void *label;
	size_t label_len;
	int v;

	if (params == NULL)
		return 1;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) != NULL) {
		if (p->data_type == OSSL_PARAM_INTEGER) {
			if (!OSSL_PARAM_get_int(p, &v))
				return 0;
		} else {
			if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
				return 0;
			v = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_OAEP) == 0 ?
			    RSA_PKCS1_OAEP_PADDING :
			    strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ?
			    RSA_PKCS1_PADDING : -100;
		}
		if (ctx->enc == NULL && v != RSA_PKCS1_OAEP_PADDING &&
		    v != RSA_PKCS1_PADDING) {
			kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA padding "
			    "mode %d: keyd decrypts OAEP and PKCS#1 v1.5 only",
			    v);
			return 0;
		}
		ctx->pad = v;
	}
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) != NULL &&
	    (!OSSL_PARAM_get_utf8_string_ptr(p, &s) ||
	    !md_nid(s, &ctx->oaep_nid)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) != NULL &&
	    (!OSSL_PARAM_get_utf8_string_ptr(p, &s) ||
	    !md_nid(s, &ctx->mgf1_nid)))
		return 0;
	if ((p = OSSL_PARAM_locate_const(params,
	    OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL)) != NULL) {
		if (!OSSL_PARAM_get_octet_string_ptr(p, &label, &label_len))
			return 0;
		ctx->label = label_len > 0;
		if (ctx->label && ctx->enc == NULL) {
			kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-OAEP with a "
			    "label: keyd decrypts with an empty label only");
			return 0;
		}
	}
	if (ctx->enc != NULL && EVP_PKEY_CTX_set_params(ctx->enc, params) <= 0)
		return 0;
	return 1;
}

static const OSSL_PARAM *
rsa_settable_ctx_params(void *vctx, void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
		    NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
		    NULL, 0),
		OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
		    NULL, 0),
		OSSL_PARAM_END,
	};

	(void)vctx;
	(void)provctx;
	return p;
}

static int
rsa_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
	struct cipher_ctx *ctx = vctx;
	OSSL_PARAM *p;

	if ((p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) !=
	    NULL && p->data_type == OSSL_PARAM_INTEGER &&
	    !OSSL_PARAM_set_int(p, ctx->pad))
		return 0;
	return 1;
}

static const OSSL_PARAM *
rsa_gettable_ctx_params(void *vctx, void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL),
		OSSL_PARAM_END,
	};

	(void)vctx;
	(void)provctx;
	return p;
}

static int
rsa_decrypt_init(void *vctx, void *key, const OSSL_PARAM params[])
{
	struct cipher_ctx *ctx = vctx;
	const struct kprov_key *k = key != NULL ? key : ctx->key;

	if (!kprov_key_valid(k) || k->type != KPROV_RSA || !k->has_name) {
		kprov_raise(KPROV_R_BAD_KEY, "keyd: not a keyd RSA private "
		    "key");
		return 0;
	}
	ctx->key = k;
	return rsa_set_ctx_params(ctx, params);
}

/* The keyd algorithm for the parameters set, or 0 (error raised). */
static int
decrypt_alg(const struct cipher_ctx *ctx)
{
	int nid, alg;

	if (ctx->pad == RSA_PKCS1_PADDING) {
		alg = KEYD_RSA_PKCS1;
	} else if (ctx->pad == RSA_PKCS1_OAEP_PADDING) {
		nid = ctx->oaep_nid != 0 ? ctx->oaep_nid : NID_sha1;
		if (ctx->label ||
		    (ctx->mgf1_nid != 0 && ctx->mgf1_nid != nid)) {
			kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-OAEP with a "
			    "label or an MGF1 digest other than the OAEP "
			    "digest: keyd decrypts neither");
			return 0;
		}
		switch (nid) {
		case NID_sha1:
			alg = KEYD_RSA_OAEP_SHA1;
			break;
		case NID_sha256:
			alg = KEYD_RSA_OAEP_SHA256;
			break;
		case NID_sha384:
			alg = KEYD_RSA_OAEP_SHA384;
			break;
		case NID_sha512:
			alg = KEYD_RSA_OAEP_SHA512;
			break;
		default:
			kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-OAEP with "
			    "%s: keyd takes SHA-1 and SHA-2 (256, 384, 512)",
			    OBJ_nid2sn(nid));
			return 0;
		}
	} else {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA padding mode %d",
		    ctx->pad);
		return 0;
	}
	if ((ctx->key->decrypts & (1u << (alg - KEYD_RSA_OAEP_SHA1))) == 0) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: keyd does not decrypt "
		    "%s with %s for this client (keydctl list shows what it "
		    "does)", alg == KEYD_RSA_PKCS1 ? "PKCS#1 v1.5" : "this "
		    "OAEP variant", ctx->key->name);
		return 0;
	}
	return alg;
}

static int
rsa_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
    const unsigned char *in, size_t inlen)
{
	struct cipher_ctx *ctx = vctx;
	size_t len;
	int alg;

	if (ctx->key == NULL)
		return 0;
	if ((alg = decrypt_alg(ctx)) == 0)
		return 0;
	if (out == NULL) {
		*outlen = ctx->key->maxsize;
		return 1;
	}
	len = outsize;
	if (kprov_decrypt(ctx->key, alg, in, inlen, out, &len) != KEYD_OK)
		return 0;
	*outlen = len;
	return 1;
}

static int
rsa_encrypt_init(void *vctx, void *key, const OSSL_PARAM params[])
{
	struct cipher_ctx *ctx = vctx;
	const struct kprov_key *k = key != NULL ? key : ctx->key;

	if (!kprov_key_valid(k) || k->type != KPROV_RSA)
		return 0;
	ctx->key = k;
	EVP_PKEY_CTX_free(ctx->enc);
	EVP_PKEY_free(ctx->pub);
	ctx->enc = NULL;
	if ((ctx->pub = kprov_key_pkey(k)) == NULL ||
	    (ctx->enc = EVP_PKEY_CTX_new_from_pkey(NULL, ctx->pub,
	    KPROV_DEFAULT_PROPQ)) == NULL ||
	    EVP_PKEY_encrypt_init(ctx->enc) <= 0)
		return 0;
	return rsa_set_ctx_params(ctx, params);
}

static int
rsa_encrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
    const unsigned char *in, size_t inlen)
{
	struct cipher_ctx *ctx = vctx;

	*outlen = outsize;
	return ctx->enc != NULL &&
	    EVP_PKEY_encrypt(ctx->enc, out, outlen, in, inlen) > 0;
}

#define FN(id, f) { id, (void (*)(void))(f) }
const OSSL_DISPATCH kprov_rsa_cipher[] = {
	FN(OSSL_FUNC_ASYM_CIPHER_NEWCTX, rsa_newctx),
	FN(OSSL_FUNC_ASYM_CIPHER_FREECTX, rsa_freectx),
	FN(OSSL_FUNC_ASYM_CIPHER_DUPCTX, rsa_dupctx),
	FN(OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, rsa_decrypt_init),
	FN(OSSL_FUNC_ASYM_CIPHER_DECRYPT, rsa_decrypt),
	FN(OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, rsa_encrypt_init),
	FN(OSSL_FUNC_ASYM_CIPHER_ENCRYPT, rsa_encrypt),
	FN(OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, rsa_set_ctx_params),
	FN(OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, rsa_settable_ctx_params),
	FN(OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, rsa_get_ctx_params),
	FN(OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, rsa_gettable_ctx_params),
	{ 0, NULL },
};
