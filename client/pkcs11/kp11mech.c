/* kp11mech.c: keyd-pkcs11.so's mechanisms: parameters, inputs for keyd,
 * and local verification. */
#include "kp11mech.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "keyd.h"

/* ECDSA digests keyd signs: SHA-1 (20 bytes) to SHA-512 (64). */
#define KP11MECH_ECDSA_MIN 20u
#define KP11MECH_ECDSA_MAX 64u
/* DER DigestInfo prefixes (RFC 8017 section 9.2, note 1). */
#define KP11MECH_DI_PREFIX 19u
/* A DER ECDSA-Sig-Value of two 48-byte integers fits in this. */
#define KP11MECH_ECDSA_DER_MAX 128u

#define SIGNS (CKF_SIGN | CKF_VERIFY)

static const struct kp11mech_info mechs[] = {
	{ CKM_ECDSA, KP11MECH_ECDSA, 0, 1, 0, SIGNS, NULL },
	{ CKM_ECDSA_SHA256, KP11MECH_ECDSA_HASH, 0, 1, 0, SIGNS, "SHA256" },
	{ CKM_ECDSA_SHA384, KP11MECH_ECDSA_HASH, 0, 1, 0, SIGNS, "SHA384" },
	{ CKM_ECDSA_SHA512, KP11MECH_ECDSA_HASH, 0, 1, 0, SIGNS, "SHA512" },
	{ CKM_RSA_PKCS, KP11MECH_RSA_PKCS, 1, 0, 0, SIGNS, NULL },
	{ CKM_SHA256_RSA_PKCS, KP11MECH_RSA_PKCS_HASH, 1, 0, 0, SIGNS,
	    "SHA256" },
	{ CKM_SHA384_RSA_PKCS, KP11MECH_RSA_PKCS_HASH, 1, 0, 0, SIGNS,
	    "SHA384" },
	{ CKM_SHA512_RSA_PKCS, KP11MECH_RSA_PKCS_HASH, 1, 0, 0, SIGNS,
	    "SHA512" },
	{ CKM_RSA_PKCS_PSS, KP11MECH_PSS, 1, 0, 0, SIGNS, NULL },
	{ CKM_SHA256_RSA_PKCS_PSS, KP11MECH_PSS_HASH, 1, 0, 0, SIGNS,
	    "SHA256" },
	{ CKM_SHA384_RSA_PKCS_PSS, KP11MECH_PSS_HASH, 1, 0, 0, SIGNS,
	    "SHA384" },
	{ CKM_SHA512_RSA_PKCS_PSS, KP11MECH_PSS_HASH, 1, 0, 0, SIGNS,
	    "SHA512" },
	{ CKM_EDDSA, KP11MECH_EDDSA, 0, 0, 1, SIGNS, NULL },
	{ CKM_RSA_PKCS_OAEP, KP11MECH_OAEP, 1, 0, 0, CKF_DECRYPT, NULL },
};

/* The hashes keyd's signature and decryption schemes use, and what
 * libkeyd calls each use of them. */
struct hash_info {
	CK_MECHANISM_TYPE ckm;
	CK_RSA_PKCS_MGF_TYPE mgf;
	const char *name;
	size_t len;
	int ecdsa, pkcs1, pss, oaep;    /* libkeyd algorithms; 0: none */
	uint8_t di[KP11MECH_DI_PREFIX]; /* DigestInfo prefix */
};

static const struct hash_info hashes[] = {
	{ CKM_SHA_1, CKG_MGF1_SHA1, "SHA1", 20, 0, 0, 0, KEYD_RSA_OAEP_SHA1,
	    { 0 } },
	{ CKM_SHA256, CKG_MGF1_SHA256, "SHA256", 32, KEYD_ECDSA_SHA256,
	    KEYD_RSA_PKCS1_SHA256, KEYD_RSA_PSS_SHA256, KEYD_RSA_OAEP_SHA256,
	    { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 } },
	{ CKM_SHA384, CKG_MGF1_SHA384, "SHA384", 48, KEYD_ECDSA_SHA384,
	    KEYD_RSA_PKCS1_SHA384, KEYD_RSA_PSS_SHA384, KEYD_RSA_OAEP_SHA384,
	    { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	    0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 } },
	{ CKM_SHA512, CKG_MGF1_SHA512, "SHA512", 64, KEYD_ECDSA_SHA512,
	    KEYD_RSA_PKCS1_SHA512, KEYD_RSA_PSS_SHA512, KEYD_RSA_OAEP_SHA512,
	    { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	    0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 } },
};

#define NHASHES (sizeof(hashes) / sizeof(hashes[0]))

static const struct hash_info *
hash_by_ckm(CK_MECHANISM_TYPE ckm)
{
	size_t i;

	for (i = 0; i < NHASHES; i++)
		if (hashes[i].ckm == ckm)
			return &hashes[i];
	return NULL;
}

static const struct hash_info *
hash_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < NHASHES; i++)
		if (!strcmp(hashes[i].name, name))
			return &hashes[i];
	return NULL;
}

static const EVP_MD *
hash_md(const struct hash_info *h)
{
	switch (h->len) {
	case 20: return EVP_sha1();
	case 32: return EVP_sha256();
	case 48: return EVP_sha384();
	default: return EVP_sha512();
	}
}

size_t
kp11mech_count(void)
{
	return sizeof(mechs) / sizeof(mechs[0]);
}

const struct kp11mech_info *
kp11mech_at(size_t i)
{
	return i < kp11mech_count() ? &mechs[i] : NULL;
}

const struct kp11mech_info *
kp11mech_find(CK_MECHANISM_TYPE type)
{
	size_t i;

	for (i = 0; i < kp11mech_count(); i++)
		if (mechs[i].type == type)
			return &mechs[i];
	return NULL;
}

int
kp11mech_fits(const struct kp11mech_info *mi, enum kp11_keytype kt)
{
	switch (kt) {
	case KP11_KEY_EC_P256:
	case KP11_KEY_EC_P384:
		return mi->ec;
	case KP11_KEY_RSA:
		return mi->rsa;
	case KP11_KEY_ED25519:
		return mi->ed;
	default:
		return 0;
	}
}

void
kp11mech_get_info(const struct kp11mech_info *mi, CK_MECHANISM_INFO *info)
{
	memset(info, 0, sizeof(*info));
	info->flags = mi->flags | CKF_HW;
	if (mi->ec) {
		/* keyd serves P-256 and P-384, named curves, uncompressed. */
		info->ulMinKeySize = 256;
		info->ulMaxKeySize = 384;
		info->flags |= CKF_EC_F_P | CKF_EC_NAMEDCURVE |
		    CKF_EC_UNCOMPRESS;
	} else if (mi->ed) {
		info->ulMinKeySize = 255;
		info->ulMaxKeySize = 255;
	} else {
		info->ulMinKeySize = 1024;
		info->ulMaxKeySize = 16384;
	}
	/* Verification runs here, in software. */
	if (mi->flags & CKF_VERIFY)
		info->flags |= CKF_VERIFY;
}

void
kp11mech_op_reset(struct kp11mech_op *op)
{
	EVP_MD_CTX_free(op->mdctx);
	EVP_PKEY_free(op->pkey);
	if (op->buf != NULL) {
		OPENSSL_cleanse(op->buf, KP11MECH_MAX_MESSAGE);
		free(op->buf);
	}
	OPENSSL_cleanse(op, sizeof(*op));
	op->active = 0;
}

static int
params_absent(const CK_MECHANISM *m)
{
	return m->pParameter == NULL || m->ulParameterLen == 0;
}

/* CK_RSA_PKCS_PSS_PARAMS: the hash and MGF1 with that hash, and a salt
 * as long as the hash (keyd's PSS, and TLS 1.3's). */
static CK_RV
check_pss(const CK_MECHANISM *m, const struct hash_info *want,
    const struct hash_info **out)
{
	CK_RSA_PKCS_PSS_PARAMS pss;
	const struct hash_info *h;

	if (m->pParameter == NULL || m->ulParameterLen != sizeof(pss))
		return CKR_MECHANISM_PARAM_INVALID;
	memcpy(&pss, m->pParameter, sizeof(pss));
	if ((h = hash_by_ckm(pss.hashAlg)) == NULL || h->pss == 0 ||
	    (want != NULL && h != want) || pss.mgf != h->mgf ||
	    pss.sLen != h->len)
		return CKR_MECHANISM_PARAM_INVALID;
	*out = h;
	return CKR_OK;
}

/* CK_RSA_PKCS_OAEP_PARAMS: a hash keyd knows, MGF1 with it, no label. */
static CK_RV
check_oaep(const CK_MECHANISM *m, const struct hash_info **out)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	const struct hash_info *h;

	if (m->pParameter == NULL || m->ulParameterLen != sizeof(oaep))
		return CKR_MECHANISM_PARAM_INVALID;
	memcpy(&oaep, m->pParameter, sizeof(oaep));
	if ((h = hash_by_ckm(oaep.hashAlg)) == NULL || oaep.mgf != h->mgf ||
	    (oaep.source != 0 && oaep.source != CKZ_DATA_SPECIFIED) ||
	    oaep.ulSourceDataLen != 0)
		return CKR_MECHANISM_PARAM_INVALID;
	*out = h;
	return CKR_OK;
}

CK_RV
kp11mech_op_init(struct kp11mech_op *op, const CK_MECHANISM *m,
    CK_FLAGS what, enum kp11_keytype kt, const char *key, size_t out_len,
    const uint8_t *spki_der, size_t spki_len)
{
	const struct kp11mech_info *mi;
	const struct hash_info *h = NULL;
	const uint8_t *p;
	CK_RV rv;

	memset(op, 0, sizeof(*op));
	if ((mi = kp11mech_find(m->mechanism)) == NULL ||
	    (mi->flags & what) == 0)
		return CKR_MECHANISM_INVALID;
	if (!kp11mech_fits(mi, kt))
		return CKR_KEY_TYPE_INCONSISTENT;
	if (strlen(key) > KP11_KEY_NAME_MAX)
		return CKR_GENERAL_ERROR;
	switch (mi->kind) {
	case KP11MECH_ECDSA:
		if (!params_absent(m))
			return CKR_MECHANISM_PARAM_INVALID;
		op->keyd_alg = KEYD_ECDSA;
		break;
	case KP11MECH_ECDSA_HASH:
		if (!params_absent(m))
			return CKR_MECHANISM_PARAM_INVALID;
		if ((h = hash_by_name(mi->md)) == NULL)
			return CKR_GENERAL_ERROR;
		op->keyd_alg = h->ecdsa;
		break;
	case KP11MECH_RSA_PKCS:
		if (!params_absent(m))
			return CKR_MECHANISM_PARAM_INVALID;
		op->keyd_alg = KEYD_RSA_PKCS1_DIGESTINFO;
		break;
	case KP11MECH_RSA_PKCS_HASH:
		if (!params_absent(m))
			return CKR_MECHANISM_PARAM_INVALID;
		if ((h = hash_by_name(mi->md)) == NULL)
			return CKR_GENERAL_ERROR;
		op->keyd_alg = h->pkcs1;
		break;
	case KP11MECH_PSS:
		if ((rv = check_pss(m, NULL, &h)) != CKR_OK)
			return rv;
		op->keyd_alg = h->pss;
		break;
	case KP11MECH_PSS_HASH:
		if ((h = hash_by_name(mi->md)) == NULL)
			return CKR_GENERAL_ERROR;
		if ((rv = check_pss(m, h, &h)) != CKR_OK)
			return rv;
		op->keyd_alg = h->pss;
		break;
	case KP11MECH_EDDSA:
		/* CK_EDDSA_PARAMS select Ed25519ctx or Ed25519ph; keyd
		 * signs pure Ed25519 only, which takes no parameters. */
		if (!params_absent(m))
			return CKR_MECHANISM_PARAM_INVALID;
		op->keyd_alg = KEYD_ED25519;
		break;
	case KP11MECH_OAEP:
		if ((rv = check_oaep(m, &h)) != CKR_OK)
			return rv;
		op->keyd_alg = h->oaep;
		break;
	}
	op->mi = mi;
	op->what = what;
	op->keytype = kt;
	op->out_len = out_len;
	memcpy(op->key, key, strlen(key) + 1);
	if (h != NULL)
		op->md = hash_md(h);
	rv = CKR_HOST_MEMORY;
	if (mi->kind == KP11MECH_ECDSA_HASH ||
	    mi->kind == KP11MECH_RSA_PKCS_HASH ||
	    mi->kind == KP11MECH_PSS_HASH) {
		if ((op->mdctx = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(op->mdctx, op->md, NULL) != 1)
			goto fail;
	}
	if (what == CKF_VERIFY) {
		p = spki_der;
		if (spki_der == NULL || spki_len == 0 || spki_len > LONG_MAX ||
		    (op->pkey = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL) {
			rv = CKR_KEY_HANDLE_INVALID;
			goto fail;
		}
	}
	op->active = 1;
	return CKR_OK;
fail:
	kp11mech_op_reset(op);
	return rv;
}

static int
hashing(const struct kp11mech_op *op)
{
	return op->mdctx != NULL;
}

CK_RV
kp11mech_op_update(struct kp11mech_op *op, const uint8_t *data, size_t len)
{
	if (hashing(op)) {
		if (EVP_DigestUpdate(op->mdctx, data, len) != 1)
			return CKR_GENERAL_ERROR;
		op->parts = 1;
		return CKR_OK;
	}
	if (op->mi->kind != KP11MECH_EDDSA)
		return CKR_FUNCTION_NOT_SUPPORTED; /* single-part mechanisms */
	if (op->buf == NULL &&
	    (op->buf = malloc(KP11MECH_MAX_MESSAGE)) == NULL)
		return CKR_HOST_MEMORY;
	if (len > KP11MECH_MAX_MESSAGE - op->len)
		return CKR_DATA_LEN_RANGE;
	if (len > 0)
		memcpy(op->buf + op->len, data, len);
	op->len += len;
	op->parts = 1;
	return CKR_OK;
}

/* The digest of a hashing operation: data (single-part) or the parts. */
static CK_RV
finish_hash(struct kp11mech_op *op, const uint8_t *data, size_t len,
    uint8_t *out, size_t *outlen)
{
	unsigned n = 0;

	if (data != NULL && EVP_DigestUpdate(op->mdctx, data, len) != 1)
		return CKR_GENERAL_ERROR;
	if (EVP_DigestFinal_ex(op->mdctx, out, &n) != 1)
		return CKR_GENERAL_ERROR;
	*outlen = n;
	return CKR_OK;
}

/* PKCS#11's CKM_RSA_PKCS takes any data up to k - 11 bytes, and would
 * sign it as it is. keyd signs only a DER DigestInfo of a hash it knows,
 * matched byte for byte (DER is canonical), so that no one can have a
 * signature made over bytes of their choosing through this module. */
static CK_RV
check_digestinfo(const uint8_t *data, size_t len)
{
	size_t i;

	for (i = 0; i < NHASHES; i++)
		if (hashes[i].pkcs1 != 0 &&
		    len == KP11MECH_DI_PREFIX + hashes[i].len &&
		    memcmp(data, hashes[i].di, KP11MECH_DI_PREFIX) == 0)
			return CKR_OK;
	return CKR_DATA_INVALID;
}

CK_RV
kp11mech_op_input(struct kp11mech_op *op, const uint8_t *data, size_t len,
    uint8_t *in, size_t *inlen, const uint8_t **msg)
{
	CK_RV rv;

	*msg = NULL;
	if (hashing(op))
		return finish_hash(op, data, len, in, inlen);
	if (op->mi->kind == KP11MECH_EDDSA) {
		if (data == NULL) {
			data = op->buf;
			len = op->len;
		}
		if (len > KP11MECH_MAX_MESSAGE)
			return CKR_DATA_LEN_RANGE;
		*msg = data;
		*inlen = len;
		return CKR_OK;
	}
	if (data == NULL)
		return CKR_FUNCTION_NOT_SUPPORTED;
	switch (op->mi->kind) {
	case KP11MECH_ECDSA:
		if (len < KP11MECH_ECDSA_MIN || len > KP11MECH_ECDSA_MAX)
			return CKR_DATA_LEN_RANGE;
		break;
	case KP11MECH_RSA_PKCS:
		if ((rv = check_digestinfo(data, len)) != CKR_OK)
			return rv;
		break;
	case KP11MECH_PSS:
		if (len != (size_t)EVP_MD_get_size(op->md))
			return CKR_DATA_LEN_RANGE;
		break;
	default:
		return CKR_GENERAL_ERROR;
	}
	if (len > KP11MECH_MAX_RAW_INPUT)
		return CKR_DATA_LEN_RANGE;
	memcpy(in, data, len);
	*inlen = len;
	return CKR_OK;
}

/* r||s, each half the length, to a DER ECDSA-Sig-Value. */
static CK_RV
ecdsa_raw_to_der(const uint8_t *sig, size_t siglen, uint8_t *der,
    size_t *derlen)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = NULL, *ss = NULL;
	uint8_t *p = der;
	CK_RV rv = CKR_SIGNATURE_INVALID;
	int n;

	if (s == NULL)
		return CKR_HOST_MEMORY;
	r = BN_bin2bn(sig, (int)(siglen / 2), NULL);
	ss = BN_bin2bn(sig + siglen / 2, (int)(siglen / 2), NULL);
	if (r == NULL || ss == NULL || ECDSA_SIG_set0(s, r, ss) != 1)
		goto out;
	r = ss = NULL;
	if ((n = i2d_ECDSA_SIG(s, NULL)) <= 0 ||
	    (size_t)n > KP11MECH_ECDSA_DER_MAX)
		goto out;
	if (i2d_ECDSA_SIG(s, &p) != n)
		goto out;
	*derlen = (size_t)n;
	rv = CKR_OK;
out:
	BN_free(r);
	BN_free(ss);
	ECDSA_SIG_free(s);
	return rv;
}

CK_RV
kp11mech_op_verify(struct kp11mech_op *op, const uint8_t *data, size_t len,
    const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	uint8_t dig[EVP_MAX_MD_SIZE], der[KP11MECH_ECDSA_DER_MAX];
	const uint8_t *tbs = data, *s = sig;
	size_t tbslen = len, slen = siglen;
	CK_RV rv;
	int ok;

	if (siglen != op->out_len)
		return CKR_SIGNATURE_LEN_RANGE;
	if (hashing(op)) {
		if ((rv = finish_hash(op, data, len, dig, &tbslen)) != CKR_OK)
			return rv;
		tbs = dig;
	} else if (data == NULL) {
		if (op->mi->kind != KP11MECH_EDDSA)
			return CKR_FUNCTION_NOT_SUPPORTED;
		tbs = op->buf;
		tbslen = op->len;
	}
	if (tbs == NULL && tbslen == 0)
		tbs = (const uint8_t *)"";
	if (op->mi->kind == KP11MECH_EDDSA) {
		if ((mctx = EVP_MD_CTX_new()) == NULL)
			return CKR_HOST_MEMORY;
		ok = EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, op->pkey) ==
		    1 && EVP_DigestVerify(mctx, sig, siglen, tbs, tbslen) == 1;
		EVP_MD_CTX_free(mctx);
		return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
	}
	if (op->mi->ec) {
		if ((rv = ecdsa_raw_to_der(sig, siglen, der, &slen)) != CKR_OK)
			return rv;
		s = der;
	}
	rv = CKR_HOST_MEMORY;
	if ((ctx = EVP_PKEY_CTX_new(op->pkey, NULL)) == NULL)
		goto out;
	rv = CKR_GENERAL_ERROR;
	if (EVP_PKEY_verify_init(ctx) != 1)
		goto out;
	switch (op->mi->kind) {
	case KP11MECH_RSA_PKCS:
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)
			goto out;
		break;
	case KP11MECH_RSA_PKCS_HASH:
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, op->md) != 1)
			goto out;
		break;
	case KP11MECH_PSS:
	case KP11MECH_PSS_HASH:
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) !=
		    1 || EVP_PKEY_CTX_set_signature_md(ctx, op->md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, op->md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    EVP_MD_get_size(op->md)) != 1)
			goto out;
		/* The raw mechanism's input is the digest itself. */
		if (op->mi->kind == KP11MECH_PSS &&
		    tbslen != (size_t)EVP_MD_get_size(op->md)) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		break;
	default:
		break;
	}
	rv = EVP_PKEY_verify(ctx, s, slen, tbs, tbslen) == 1 ? CKR_OK :
	    CKR_SIGNATURE_INVALID;
out:
	OPENSSL_cleanse(dig, sizeof(dig));
	EVP_PKEY_CTX_free(ctx);
	return rv;
}

size_t
kp11mech_oaep_max(const struct kp11mech_op *op, size_t k)
{
	size_t h = op->md != NULL ? (size_t)EVP_MD_get_size(op->md) : 20;

	return k > 2 * h + 2 ? k - 2 * h - 2 : 0;
}
