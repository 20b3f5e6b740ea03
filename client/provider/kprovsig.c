/*
 * kprovsig.c: the provider's signatures: ECDSA, RSA (PKCS#1 v1.5 and
 * PSS) and Ed25519, each signature one keyd request (keyd_sign), the
 * message hashed here first (Ed25519: sent whole, as keyd signs it).
 *
 * What keyd can sign is checked when the application sets it (digest,
 * padding, PSS salt length and MGF1 digest), so that a TLS library that
 * tries a scheme learns at once that it will not work, not at the final
 * call. keyd signs RSA-PSS with SHA-256/384/512, MGF1 with the same
 * digest, and a salt as long as the digest.
 *
 * Verification, and the AlgorithmIdentifier that X.509 signing asks for,
 * are public-key matters: they go to a "shadow" context of the default
 * provider on the key's public key, made only when needed (never on the
 * signing path), with the same parameters.
 */
#include "kprov.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "keyd.h"

#define KPROV_MDNAME_MAX 32u

struct sig_ctx {
	const struct kprov_key *key;  /* OpenSSL's key object; lives
	                                 longer than the operation */
	int type;                     /* enum kprov_type of the algorithm */
	int verify;                   /* 1: a verification context */
	char mdname[KPROV_MDNAME_MAX];
	EVP_MD *md;                   /* NULL: none set */
	size_t mdsize;
	int pad;                      /* RSA_PKCS1_PADDING or _PSS_ */
	int mgf1_nid;                 /* 0: as the digest */
	int saltlen;                  /* RSA_PSS_SALTLEN_DIGEST or bytes */
	EVP_MD_CTX *mdctx;            /* signing: the running hash */
	/* The default provider's context on the public key (see above). */
	EVP_PKEY *pub;
	EVP_PKEY_CTX *shadow;         /* a verify context, owned */
	EVP_MD_CTX *vmd;              /* digest-verify, owned; its own
	                                 EVP_PKEY_CTX is borrowed */
};

static void *
sig_newctx(int type)
{
	struct sig_ctx *ctx;

	if ((ctx = OPENSSL_zalloc(sizeof(*ctx))) == NULL)
		return NULL;
	ctx->type = type;
	ctx->pad = RSA_PKCS1_PADDING;
	ctx->saltlen = RSA_PSS_SALTLEN_DIGEST;
	return ctx;
}

static void *
ecdsa_newctx(void *provctx, const char *propq)
{
	(void)provctx;
	(void)propq;
	return sig_newctx(KPROV_EC);
}

static void *
rsa_newctx(void *provctx, const char *propq)
{
	(void)provctx;
	(void)propq;
	return sig_newctx(KPROV_RSA);
}

static void *
ed25519_newctx(void *provctx, const char *propq)
{
	(void)provctx;
	(void)propq;
	return sig_newctx(KPROV_ED25519);
}

static void
shadow_free(struct sig_ctx *ctx)
{
	EVP_PKEY_CTX_free(ctx->shadow);
	EVP_MD_CTX_free(ctx->vmd);
	EVP_PKEY_free(ctx->pub);
	ctx->shadow = NULL;
	ctx->vmd = NULL;
	ctx->pub = NULL;
}

static void
sig_freectx(void *vctx)
{
	struct sig_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	shadow_free(ctx);
	EVP_MD_CTX_free(ctx->mdctx);
	EVP_MD_free(ctx->md);
	OPENSSL_clear_free(ctx, sizeof(*ctx));
}

static void *
sig_dupctx(void *vctx)
{
	const struct sig_ctx *src = vctx;
	struct sig_ctx *ctx;

	if ((ctx = OPENSSL_malloc(sizeof(*ctx))) == NULL)
		return NULL;
	memcpy(ctx, src, sizeof(*ctx));
	ctx->md = NULL;
	ctx->mdctx = NULL;
	ctx->pub = NULL;
	ctx->shadow = NULL;
	ctx->vmd = NULL;
	if (src->md != NULL) {
		if (!EVP_MD_up_ref(src->md))
			goto fail;
		ctx->md = src->md;
	}
	if (src->mdctx != NULL &&
	    ((ctx->mdctx = EVP_MD_CTX_new()) == NULL ||
	    !EVP_MD_CTX_copy_ex(ctx->mdctx, src->mdctx)))
		goto fail;
	if (src->pub != NULL) {
		if (!EVP_PKEY_up_ref(src->pub))
			goto fail;
		ctx->pub = src->pub;
	}
	if (src->shadow != NULL &&
	    (ctx->shadow = EVP_PKEY_CTX_dup(src->shadow)) == NULL)
		goto fail;
	if (src->vmd != NULL &&
	    ((ctx->vmd = EVP_MD_CTX_new()) == NULL ||
	    !EVP_MD_CTX_copy_ex(ctx->vmd, src->vmd)))
		goto fail;
	return ctx;
fail:
	sig_freectx(ctx);
	return NULL;
}

/* ---- parameters ---- */

static int
md_allowed(const struct sig_ctx *ctx, const EVP_MD *md)
{
	if (ctx->verify)
		return 1;
	if (ctx->type == KPROV_EC)
		return EVP_MD_is_a(md, "SHA1") || EVP_MD_is_a(md, "SHA2-224") ||
		    EVP_MD_is_a(md, "SHA2-256") || EVP_MD_is_a(md, "SHA2-384") ||
		    EVP_MD_is_a(md, "SHA2-512");
	if (ctx->type == KPROV_RSA)
		return EVP_MD_is_a(md, "SHA2-256") ||
		    EVP_MD_is_a(md, "SHA2-384") || EVP_MD_is_a(md, "SHA2-512");
	return 0;
}

/* Whether keyd can sign with the parameters set so far; raises an error
 * naming the first one it cannot honour. */
static int
params_signable(const struct sig_ctx *ctx)
{
	if (ctx->verify || ctx->type != KPROV_RSA ||
	    ctx->pad == RSA_PKCS1_PADDING)
		return 1;
	if (ctx->pad != RSA_PKCS1_PSS_PADDING) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA padding mode %d: "
		    "keyd signs with PKCS#1 v1.5 or PSS only", ctx->pad);
		return 0;
	}
	if (ctx->md != NULL && ctx->mgf1_nid != 0 &&
	    ctx->mgf1_nid != EVP_MD_get_type(ctx->md)) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-PSS with an MGF1 "
		    "digest other than the message digest: keyd uses MGF1 "
		    "with the message digest");
		return 0;
	}
	if (ctx->saltlen != RSA_PSS_SALTLEN_DIGEST &&
	    !(ctx->md != NULL && ctx->saltlen == (int)ctx->mdsize)) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-PSS salt length "
		    "%d: keyd uses a salt as long as the digest", ctx->saltlen);
		return 0;
	}
	return 1;
}

static int
set_md(struct sig_ctx *ctx, const char *name)
{
	EVP_MD *md;

	if (strlen(name) >= sizeof(ctx->mdname))
		return 0;
	if ((md = EVP_MD_fetch(NULL, name, KPROV_DEFAULT_PROPQ)) == NULL) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: unknown digest %s",
		    name);
		return 0;
	}
	if (!md_allowed(ctx, md)) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: %s with digest %s: "
		    "keyd signs %s", ctx->type == KPROV_RSA ? "RSA" :
		    ctx->type == KPROV_EC ? "ECDSA" : "Ed25519", name,
		    ctx->type == KPROV_RSA ? "SHA-256, SHA-384 or SHA-512 "
		    "digests" : ctx->type == KPROV_EC ? "SHA-1 and SHA-2 "
		    "digests" : "the message itself, without a digest");
		EVP_MD_free(md);
		return 0;
	}
	EVP_MD_free(ctx->md);
	ctx->md = md;
	ctx->mdsize = (size_t)EVP_MD_get_size(md);
	snprintf(ctx->mdname, sizeof(ctx->mdname), "%s", name);
	return 1;
}

static int
get_pad(const OSSL_PARAM *p, int *pad)
{
	const char *s = NULL;

	if (p->data_type == OSSL_PARAM_INTEGER)
		return OSSL_PARAM_get_int(p, pad);
	if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
		return 0;
	if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0)
		*pad = RSA_PKCS1_PADDING;
	else if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0)
		*pad = RSA_PKCS1_PSS_PADDING;
	else if (strcmp(s, OSSL_PKEY_RSA_PAD_MODE_NONE) == 0)
		*pad = RSA_NO_PADDING;
	else
		*pad = -100;
	return 1;
}

static int
get_saltlen(const OSSL_PARAM *p, int *saltlen)
{
	const char *s = NULL;

	if (p->data_type == OSSL_PARAM_INTEGER)
		return OSSL_PARAM_get_int(p, saltlen);
	if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
		return 0;
	if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
		*saltlen = RSA_PSS_SALTLEN_DIGEST;
	else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0)
		*saltlen = RSA_PSS_SALTLEN_MAX;
	else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
		*saltlen = RSA_PSS_SALTLEN_AUTO;
	else if (strcmp(s, "auto-digestmax") == 0)
		*saltlen = -4;
	else
		*saltlen = atoi(s);
	return 1;
}

static int
sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;
	const OSSL_PARAM *p;
	const char *s;
	EVP_MD *mgf1;
	int v;

	if (params == NULL)
		return 1;
	if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST))
	    != NULL) {
		if (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || !set_md(ctx, s))
			return 0;
	}
	if (ctx->type == KPROV_RSA) {
		if ((p = OSSL_PARAM_locate_const(params,
		    OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
			if (!get_pad(p, &v))
				return 0;
			ctx->pad = v;
		}
		if ((p = OSSL_PARAM_locate_const(params,
		    OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
			if (!get_saltlen(p, &v))
				return 0;
			/* OpenSSL 3.1's auto-digestmax signs with a salt
			 * as long as the digest for any key keyd holds. */
			ctx->saltlen = v == -4 ? RSA_PSS_SALTLEN_DIGEST : v;
		}
		if ((p = OSSL_PARAM_locate_const(params,
		    OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
			if (!OSSL_PARAM_get_utf8_string_ptr(p, &s))
				return 0;
			if ((mgf1 = EVP_MD_fetch(NULL, s,
			    KPROV_DEFAULT_PROPQ)) == NULL) {
				kprov_raise(KPROV_R_UNSUPPORTED, "keyd: unknown "
				    "MGF1 digest %s", s);
				return 0;
			}
			ctx->mgf1_nid = EVP_MD_get_type(mgf1);
			EVP_MD_free(mgf1);
		}
		if (!params_signable(ctx))
			return 0;
	}
	/* A verification (or AlgorithmIdentifier) context in use follows. */
	if (ctx->shadow != NULL && EVP_PKEY_CTX_set_params(ctx->shadow,
	    params) <= 0)
		return 0;
	if (ctx->vmd != NULL && EVP_PKEY_CTX_set_params(
	    EVP_MD_CTX_get_pkey_ctx(ctx->vmd), params) <= 0)
		return 0;
	return 1;
}

static const OSSL_PARAM *
sig_settable_ctx_params(void *vctx, void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
		OSSL_PARAM_END,
	};

	(void)vctx;
	(void)provctx;
	return p;
}

/* The shadow verify context: made on first need, with the digest and
 * RSA parameters set so far. */
static EVP_PKEY_CTX *
shadow_get(struct sig_ctx *ctx)
{
	OSSL_PARAM params[5];
	size_t n = 0;

	if (ctx->vmd != NULL)
		return EVP_MD_CTX_get_pkey_ctx(ctx->vmd);
	if (ctx->shadow != NULL)
		return ctx->shadow;
	if (ctx->pub == NULL && (ctx->pub = kprov_key_pkey(ctx->key)) == NULL)
		return NULL;
	if ((ctx->shadow = EVP_PKEY_CTX_new_from_pkey(NULL, ctx->pub,
	    KPROV_DEFAULT_PROPQ)) == NULL ||
	    EVP_PKEY_verify_init(ctx->shadow) <= 0)
		goto fail;
	if (ctx->md != NULL)
		params[n++] = OSSL_PARAM_construct_utf8_string(
		    OSSL_SIGNATURE_PARAM_DIGEST, ctx->mdname, 0);
	if (ctx->type == KPROV_RSA) {
		params[n++] = OSSL_PARAM_construct_int(
		    OSSL_SIGNATURE_PARAM_PAD_MODE, &ctx->pad);
		if (ctx->pad == RSA_PKCS1_PSS_PADDING)
			params[n++] = OSSL_PARAM_construct_int(
			    OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &ctx->saltlen);
	}
	params[n] = OSSL_PARAM_construct_end();
	if (n > 0 && EVP_PKEY_CTX_set_params(ctx->shadow, params) <= 0)
		goto fail;
	return ctx->shadow;
fail:
	EVP_PKEY_CTX_free(ctx->shadow);
	ctx->shadow = NULL;
	return NULL;
}

static int
sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;
	EVP_PKEY_CTX *sh;
	OSSL_PARAM *p;

	/* Ed25519's AlgorithmIdentifier is its OID alone (RFC 8410); the
	 * default provider offers no plain verify context to ask. */
	static const unsigned char ed25519_aid[] = {
		0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
	};

	if (params == NULL)
		return 1;
	if (ctx->type == KPROV_ED25519 && (p = OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) != NULL) {
		if (!OSSL_PARAM_set_octet_string(p, ed25519_aid,
		    sizeof(ed25519_aid)))
			return 0;
	} else if (OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_ALGORITHM_ID) != NULL) {
		/* The default provider knows the encodings. */
		if ((sh = shadow_get(ctx)) == NULL ||
		    !EVP_PKEY_CTX_get_params(sh, params))
			return 0;
	}
	if ((p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) !=
	    NULL && !OSSL_PARAM_set_utf8_string(p, ctx->mdname))
		return 0;
	if (ctx->type == KPROV_RSA &&
	    (p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) !=
	    NULL) {
		if (p->data_type == OSSL_PARAM_INTEGER) {
			if (!OSSL_PARAM_set_int(p, ctx->pad))
				return 0;
		} else if (!OSSL_PARAM_set_utf8_string(p,
		    ctx->pad == RSA_PKCS1_PSS_PADDING ?
		    OSSL_PKEY_RSA_PAD_MODE_PSS :
		    OSSL_PKEY_RSA_PAD_MODE_PKCSV15)) {
			return 0;
		}
	}
	if (ctx->type == KPROV_RSA && (p = OSSL_PARAM_locate(params,
	    OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL &&
	    p->data_type == OSSL_PARAM_INTEGER &&
	    !OSSL_PARAM_set_int(p, ctx->saltlen))
		return 0;
	return 1;
}

static const OSSL_PARAM *
sig_gettable_ctx_params(void *vctx, void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID,
		    NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
		OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
		OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL),
		OSSL_PARAM_END,
	};

	(void)vctx;
	(void)provctx;
	return p;
}

/* ---- signing ---- */

static int
init_key(struct sig_ctx *ctx, void *key, int verify)
{
	const struct kprov_key *k = key;

	/* No key: OpenSSL starts the operation again with the same key (a
	 * BIO_f_md reset, EVP_DigestSignInit with no key). */
	if (k == NULL)
		k = ctx->key;
	if (!kprov_key_valid(k) || k->type != ctx->type) {
		kprov_raise(KPROV_R_BAD_KEY, "keyd: not a keyd key of this "
		    "type");
		return 0;
	}
	if (!verify && !k->has_name) {
		kprov_raise(KPROV_R_BAD_KEY, "keyd: this key is a public key "
		    "only; load the private key by its keyd: URI");
		return 0;
	}
	/* A context used again with another key starts afresh. */
	if (ctx->key != k)
		shadow_free(ctx);
	ctx->key = k;
	ctx->verify = verify;
	return 1;
}

static int
sig_sign_init(void *vctx, void *key, const OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;

	return init_key(ctx, key, 0) && sig_set_ctx_params(ctx, params);
}

/* The keyd algorithm for a digest of dlen bytes, or 0 (error raised). */
static int
keyd_alg(struct sig_ctx *ctx, size_t dlen)
{
	if (!params_signable(ctx))
		return 0;
	if (ctx->type == KPROV_EC)
		return KEYD_ECDSA;
	if (ctx->type == KPROV_ED25519)
		return KEYD_ED25519;
	if (ctx->md == NULL) {
		/* A DigestInfo that the caller made (EVP_PKEY_sign without
		 * a digest); keyd checks it. */
		if (ctx->pad == RSA_PKCS1_PADDING)
			return KEYD_RSA_PKCS1_DIGESTINFO;
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: RSA-PSS needs its "
		    "digest set");
		return 0;
	}
	if (dlen != ctx->mdsize) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: a %zu-byte input for "
		    "a %zu-byte digest", dlen, ctx->mdsize);
		return 0;
	}
	switch (dlen) {
	case 32:
		return ctx->pad == RSA_PKCS1_PADDING ? KEYD_RSA_PKCS1_SHA256 :
		    KEYD_RSA_PSS_SHA256;
	case 48:
		return ctx->pad == RSA_PKCS1_PADDING ? KEYD_RSA_PKCS1_SHA384 :
		    KEYD_RSA_PSS_SHA384;
	case 64:
		return ctx->pad == RSA_PKCS1_PADDING ? KEYD_RSA_PKCS1_SHA512 :
		    KEYD_RSA_PSS_SHA512;
	}
	kprov_raise(KPROV_R_UNSUPPORTED, "keyd: no RSA signature over a "
	    "%zu-byte digest", dlen);
	return 0;
}

static int
do_sign(struct sig_ctx *ctx, unsigned char *sig, size_t *siglen,
    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
	size_t len;
	int alg;

	if (sig == NULL) {
		*siglen = ctx->key->maxsize;
		return 1;
	}
	if ((alg = keyd_alg(ctx, tbslen)) == 0)
		return 0;
	len = sigsize;
	if (kprov_sign(ctx->key, alg, tbs, tbslen, sig, &len) != KEYD_OK)
		return 0;
	*siglen = len;
	return 1;
}

static int
sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
    const unsigned char *tbs, size_t tbslen)
{
	struct sig_ctx *ctx = vctx;

	/* Ed25519: tbs is the message itself, as keyd signs it. */
	return do_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
}

static int
sig_digest_sign_init(void *vctx, const char *mdname, void *key,
    const OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;

	if (!init_key(ctx, key, 0))
		return 0;
	EVP_MD_CTX_free(ctx->mdctx);
	ctx->mdctx = NULL;
	if (ctx->type == KPROV_ED25519) {
		if (mdname != NULL && mdname[0] != '\0') {
			kprov_raise(KPROV_R_UNSUPPORTED, "keyd: Ed25519 takes "
			    "no digest (%s given)", mdname);
			return 0;
		}
		return sig_set_ctx_params(ctx, params);
	}
	if (mdname == NULL || mdname[0] == '\0')
		mdname = "SHA256";
	if (!set_md(ctx, mdname) || !sig_set_ctx_params(ctx, params))
		return 0;
	if ((ctx->mdctx = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex2(ctx->mdctx, ctx->md, NULL))
		return 0;
	return 1;
}

static int
sig_digest_sign_update(void *vctx, const unsigned char *data, size_t len)
{
	struct sig_ctx *ctx = vctx;

	if (ctx->mdctx == NULL) {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: Ed25519 signs the "
		    "whole message at once (EVP_DigestSign)");
		return 0;
	}
	return EVP_DigestUpdate(ctx->mdctx, data, len);
}

static int
sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
    size_t sigsize)
{
	struct sig_ctx *ctx = vctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int ok;

	if (ctx->mdctx == NULL)
		return 0;
	if (sig == NULL) {
		*siglen = ctx->key->maxsize;
		return 1;
	}
	if (!EVP_DigestFinal_ex(ctx->mdctx, dgst, &dlen))
		return 0;
	ok = do_sign(ctx, sig, siglen, sigsize, dgst, dlen);
	OPENSSL_cleanse(dgst, sizeof(dgst));
	return ok;
}

/* One-shot: what TLS uses (EVP_DigestSign), and Ed25519's only way. */
static int
sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen,
    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
	struct sig_ctx *ctx = vctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int ok;

	if (ctx->type == KPROV_ED25519)
		return do_sign(ctx, sig, siglen, sigsize, tbs, tbslen);
	if (sig == NULL) {
		*siglen = ctx->key->maxsize;
		return 1;
	}
	if (ctx->mdctx == NULL ||
	    !EVP_DigestUpdate(ctx->mdctx, tbs, tbslen) ||
	    !EVP_DigestFinal_ex(ctx->mdctx, dgst, &dlen))
		return 0;
	ok = do_sign(ctx, sig, siglen, sigsize, dgst, dlen);
	OPENSSL_cleanse(dgst, sizeof(dgst));
	return ok;
}

/* ---- verification, by the default provider ---- */

static int
sig_verify_init(void *vctx, void *key, const OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;

	if (!init_key(ctx, key, 1) || !sig_set_ctx_params(ctx, params))
		return 0;
	return shadow_get(ctx) != NULL;
}

static int
sig_verify(void *vctx, const unsigned char *sig, size_t siglen,
    const unsigned char *tbs, size_t tbslen)
{
	struct sig_ctx *ctx = vctx;
	EVP_PKEY_CTX *sh;

	if ((sh = shadow_get(ctx)) == NULL)
		return 0;
	return EVP_PKEY_verify(sh, sig, siglen, tbs, tbslen) == 1;
}

static int
sig_digest_verify_init(void *vctx, const char *mdname, void *key,
    const OSSL_PARAM params[])
{
	struct sig_ctx *ctx = vctx;

	if (!init_key(ctx, key, 1))
		return 0;
	shadow_free(ctx);
	if (mdname != NULL && mdname[0] != '\0' && !set_md(ctx, mdname))
		return 0;
	if ((ctx->pub = kprov_key_pkey(ctx->key)) == NULL ||
	    (ctx->vmd = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestVerifyInit_ex(ctx->vmd, NULL,
	    mdname != NULL && mdname[0] != '\0' ? mdname : NULL, NULL,
	    KPROV_DEFAULT_PROPQ, ctx->pub, NULL))
		return 0;
	return sig_set_ctx_params(ctx, params);
}

static int
sig_digest_verify_update(void *vctx, const unsigned char *data, size_t len)
{
	struct sig_ctx *ctx = vctx;

	return ctx->vmd != NULL && EVP_DigestVerifyUpdate(ctx->vmd, data, len);
}

static int
sig_digest_verify_final(void *vctx, const unsigned char *sig, size_t siglen)
{
	struct sig_ctx *ctx = vctx;

	return ctx->vmd != NULL &&
	    EVP_DigestVerifyFinal(ctx->vmd, sig, siglen) == 1;
}

static int
sig_digest_verify(void *vctx, const unsigned char *sig, size_t siglen,
    const unsigned char *tbs, size_t tbslen)
{
	struct sig_ctx *ctx = vctx;

	return ctx->vmd != NULL &&
	    EVP_DigestVerify(ctx->vmd, sig, siglen, tbs, tbslen) == 1;
}

#define FN(id, f) { id, (void (*)(void))(f) }
#define COMMON(prefix)                                                     \
	FN(OSSL_FUNC_SIGNATURE_NEWCTX, prefix##_newctx),                   \
	FN(OSSL_FUNC_SIGNATURE_FREECTX, sig_freectx),                      \
	FN(OSSL_FUNC_SIGNATURE_DUPCTX, sig_dupctx),                        \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, sig_digest_sign_init),    \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN, sig_digest_sign),              \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, sig_digest_verify_init),\
	FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, sig_digest_verify),          \
	FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, sig_set_ctx_params),        \
	FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,                        \
	    sig_settable_ctx_params),                                      \
	FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, sig_get_ctx_params),        \
	FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,                        \
	    sig_gettable_ctx_params)

#define HASHED                                                             \
	FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, sig_sign_init),                  \
	FN(OSSL_FUNC_SIGNATURE_SIGN, sig_sign),                            \
	FN(OSSL_FUNC_SIGNATURE_VERIFY_INIT, sig_verify_init),              \
	FN(OSSL_FUNC_SIGNATURE_VERIFY, sig_verify),                        \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, sig_digest_sign_update),\
	FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, sig_digest_sign_final),  \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,                       \
	    sig_digest_verify_update),                                     \
	FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, sig_digest_verify_final)

const OSSL_DISPATCH kprov_ecdsa_signature[] = {
	COMMON(ecdsa), HASHED, { 0, NULL },
};
const OSSL_DISPATCH kprov_rsa_signature[] = {
	COMMON(rsa), HASHED, { 0, NULL },
};
const OSSL_DISPATCH kprov_ed25519_signature[] = {
	COMMON(ed25519),
	FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, sig_sign_init),
	FN(OSSL_FUNC_SIGNATURE_SIGN, sig_sign),
	{ 0, NULL },
};
