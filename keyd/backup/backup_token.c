/* backup_token.c: keyd-backup inside the token (keygen, wrap, restore). */
#include "backup_token.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backup_share.h"
#include "keyd_err.h"
#include "secmem.h"
#include "token.h"

/* Attributes in one template we build. */
#define BT_MAX_TEMPLATE 40
/* AES block; a KCV is the first BT_KCV_LEN bytes of AES-ECB(key, 0^16). */
#define BT_AES_BLOCK 16
#define BT_KCV_LEN 3
/* Bytes of a signature the self-test takes (RSA-8192). */
#define BT_MAX_SIG 1024
/* Bytes of an RSA ciphertext or plaintext in the decrypt self-test. */
#define BT_MAX_RSA 1024
/* Random CKA_ID keygen makes when none is given. */
#define BT_DEFAULT_ID_LEN 8
/* Public exponent of generated RSA keys: 65537. */
static const uint8_t rsa_e[] = { 0x01, 0x00, 0x01 };
/* What the self-test signs (its SHA-256 for ECDSA). */
static const char selftest_msg[] = "keyd-backup restore self-test";

#define WUR BACKUP_TOKEN_WUR

/* RFC 5649 section 6: the KEK, and the two examples. */
const uint8_t backup_kat_kek[24] = {
	0x58, 0x40, 0xdf, 0x6e, 0x29, 0xb0, 0x2a, 0xf1,
	0xab, 0x49, 0x3b, 0x70, 0x5b, 0xf1, 0x6e, 0xa1,
	0xae, 0x83, 0x38, 0xf4, 0xdc, 0xc1, 0x76, 0xa8,
};
static const uint8_t kat1_key[20] = {
	0xc3, 0x7b, 0x7e, 0x64, 0x92, 0x58, 0x43, 0x40,
	0xbe, 0xd1, 0x22, 0x07, 0x80, 0x89, 0x41, 0x15,
	0x50, 0x68, 0xf7, 0x38,
};
static const uint8_t kat1_wrapped[32] = {
	0x13, 0x8b, 0xde, 0xaa, 0x9b, 0x8f, 0xa7, 0xfc,
	0x61, 0xf9, 0x77, 0x42, 0xe7, 0x22, 0x48, 0xee,
	0x5a, 0xe6, 0xae, 0x53, 0x60, 0xd1, 0xae, 0x6a,
	0x5f, 0x54, 0xf3, 0x73, 0xfa, 0x54, 0x3b, 0x6a,
};
static const uint8_t kat2_key[7] = {
	0x46, 0x6f, 0x72, 0x50, 0x61, 0x73, 0x69,
};
static const uint8_t kat2_wrapped[16] = {
	0xaf, 0xbe, 0xb0, 0xf0, 0x7d, 0xfb, 0xf5, 0x41,
	0x92, 0x00, 0xf2, 0xcc, 0xb5, 0x0b, 0xb2, 0x4f,
};
/* RFC 5649 of the same keys zero-padded to 24 and 8 bytes: SoftHSM2
 * 2.6.1's CKM_AES_KEY_WRAP_PAD pads the key with zeros to a multiple of 8
 * before wrapping (its RFC3394Pad), so its answers are these. */
static const uint8_t kat1_zp_wrapped[32] = {
	0xcf, 0x1e, 0x48, 0x53, 0x60, 0xe1, 0xa8, 0x12,
	0x6f, 0x52, 0x4d, 0x01, 0x77, 0x16, 0x77, 0xf9,
	0x40, 0x0e, 0xdb, 0x4d, 0x07, 0x4f, 0x14, 0x11,
	0x69, 0x88, 0xd7, 0x1e, 0x15, 0x88, 0xe3, 0x67,
};
static const uint8_t kat2_zp_wrapped[16] = {
	0x0e, 0x13, 0xc7, 0x81, 0x7f, 0x2e, 0x66, 0x81,
	0xf6, 0x4d, 0x91, 0x1b, 0x7d, 0xd0, 0x14, 0xd5,
};
const struct backup_kat backup_kats[2] = {
	{ kat1_key, sizeof(kat1_key), kat1_wrapped, sizeof(kat1_wrapped),
	  kat1_zp_wrapped, sizeof(kat1_zp_wrapped) },
	{ kat2_key, sizeof(kat2_key), kat2_wrapped, sizeof(kat2_wrapped),
	  kat2_zp_wrapped, sizeof(kat2_zp_wrapped) },
};

static const CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- templates ---------------------------------------------------------- */

struct tmpl {
	CK_ATTRIBUTE a[BT_MAX_TEMPLATE];
	CK_ULONG n;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
};

static void
tadd(struct tmpl *t, CK_ATTRIBUTE_TYPE type, const void *p, size_t len)
{
	/* Templates are built from fixed lists below: overflowing one is a
	 * bug, not an input error. */
	if (t->n >= BT_MAX_TEMPLATE)
		abort();
	t->a[t->n].type = type;
	t->a[t->n].pValue = (void *)(uintptr_t)p;
	t->a[t->n].ulValueLen = len;
	t->n++;
}

static void
tbool(struct tmpl *t, CK_ATTRIBUTE_TYPE type, int v)
{
	tadd(t, type, v ? &ck_true : &ck_false, sizeof(CK_BBOOL));
}

static void
tclass(struct tmpl *t, CK_OBJECT_CLASS cls, CK_KEY_TYPE kt)
{
	t->cls = cls;
	t->kt = kt;
	tadd(t, CKA_CLASS, &t->cls, sizeof(t->cls));
	tadd(t, CKA_KEY_TYPE, &t->kt, sizeof(t->kt));
}

/* The flags that apply to an object of class cls: SoftHSM2 refuses
 * attributes of another class in a template. */
static unsigned
flags_for(CK_OBJECT_CLASS cls)
{
	unsigned common = BUNDLE_F_PRIVATE | BUNDLE_F_MODIFIABLE |
	    BUNDLE_F_DERIVE;

	if (cls == CKO_PUBLIC_KEY)
		return common | BUNDLE_F_VERIFY | BUNDLE_F_ENCRYPT |
		    BUNDLE_F_WRAP | BUNDLE_F_VERIFY_RECOVER;
	if (cls == CKO_PRIVATE_KEY)
		return common | BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
		    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_SIGN |
		    BUNDLE_F_DECRYPT | BUNDLE_F_UNWRAP |
		    BUNDLE_F_SIGN_RECOVER | BUNDLE_F_ALWAYS_AUTHENTICATE;
	return common | BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
	    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_SIGN | BUNDLE_F_VERIFY |
	    BUNDLE_F_ENCRYPT | BUNDLE_F_DECRYPT | BUNDLE_F_WRAP |
	    BUNDLE_F_UNWRAP;
}

/* Every flag of the class, set to what flags says. */
static void
tflags(struct tmpl *t, CK_OBJECT_CLASS cls, unsigned flags)
{
	unsigned want = flags_for(cls);

	for (const struct bundle_flag *f = bundle_flags; f->bit != 0; f++)
		if (want & f->bit)
			tbool(t, f->attr, (flags & f->bit) != 0);
}

static WUR CK_RV
read_flags(struct p11 *p, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls,
    uint32_t *flags)
{
	unsigned want = flags_for(cls);
	int v;
	CK_RV rv;

	*flags = 0;
	for (const struct bundle_flag *f = bundle_flags; f->bit != 0; f++) {
		if (!(want & f->bit))
			continue;
		rv = p11_get_bool(p11_fn(p), p11_session(p), h, f->attr, &v);
		if (rv == CKR_ATTRIBUTE_TYPE_INVALID)
			continue;
		if (rv != CKR_OK)
			return rv;
		if (v)
			*flags |= f->bit;
	}
	return CKR_OK;
}

/* ---- key kinds ---------------------------------------------------------- */

enum backup_key_kind
backup_kind_parse(const char *s)
{
	static const struct {
		const char *name;
		enum backup_key_kind kind;
	} kinds[] = {
		{ "ec:p256", BACKUP_KIND_EC_P256 },
		{ "ec:p384", BACKUP_KIND_EC_P384 },
		{ "rsa:2048", BACKUP_KIND_RSA_2048 },
		{ "rsa:3072", BACKUP_KIND_RSA_3072 },
		{ "ed25519", BACKUP_KIND_ED25519 },
		{ "aes:128", BACKUP_KIND_AES_128 },
		{ "aes:256", BACKUP_KIND_AES_256 },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i].name) == 0)
			return kinds[i].kind;
	return 0;
}

static int
kind_is_aes(enum backup_key_kind kind)
{
	return kind == BACKUP_KIND_AES_128 || kind == BACKUP_KIND_AES_256;
}

static int
kind_is_rsa(enum backup_key_kind kind)
{
	return kind == BACKUP_KIND_RSA_2048 || kind == BACKUP_KIND_RSA_3072;
}

int
backup_kind_usage_ok(enum backup_key_kind kind, unsigned usage,
    const char **why)
{
	*why = NULL;
	if (usage == 0)
		*why = "give at least one usage";
	else if (kind_is_aes(kind) && (usage & BACKUP_USAGE_SIGN))
		*why = "AES keys do not sign; give --usage srtp or decrypt";
	else if (!kind_is_aes(kind) && (usage & BACKUP_USAGE_SRTP))
		*why = "only AES keys wrap SRTP keys (--usage srtp)";
	else if (!kind_is_aes(kind) && !kind_is_rsa(kind) &&
	    (usage & BACKUP_USAGE_DECRYPT))
		*why = "EC and Ed25519 keys only sign; give --usage sign";
	return *why == NULL;
}

/* ---- describing a key --------------------------------------------------- */

/* A label or id already on the token, on a key of any class. */
static WUR int
object_exists(struct p11 *p, CK_ATTRIBUTE_TYPE type, const void *v,
    size_t len, int *exists)
{
	CK_ATTRIBUTE t[1] = { { type, (void *)(uintptr_t)v, len } };
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES];
	CK_ULONG n = 0;
	CK_RV rv;

	*exists = 0;
	rv = p11_find(p11_fn(p), p11_session(p), t, 1, P11_ANY_CLASS, 0, objs,
	    P11_MAX_MATCHES, &n);
	if (rv != CKR_OK)
		return KEYD_ERR_TOKEN;
	*exists = n > 0;
	return KEYD_OK;
}

/* Copies an attribute into a fixed buffer of cap bytes. */
static WUR CK_RV
get_into(struct p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
    uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t *v = NULL;
	size_t n = 0;
	CK_RV rv;

	*len = 0;
	if ((rv = p11_get_attr(p11_fn(p), p11_session(p), h, type, &v, &n)) !=
	    CKR_OK)
		return rv;
	if (n > cap) {
		free(v);
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (n > 0)
		memcpy(buf, v, n);
	*len = n;
	free(v);
	return CKR_OK;
}

/* AES-ECB of a zero block with the key h: its check value (PKCS#11 3.0,
 * CKA_CHECK_VALUE of AES keys). out gets BT_AES_BLOCK bytes. */
static CK_RV
ecb_zero(struct p11 *p, CK_OBJECT_HANDLE h, uint8_t out[BT_AES_BLOCK])
{
	CK_MECHANISM m = { CKM_AES_ECB, NULL, 0 };
	uint8_t zero[BT_AES_BLOCK] = { 0 };
	CK_ULONG olen = BT_AES_BLOCK;
	CK_RV rv;

	rv = p11_fn(p)->C_EncryptInit(p11_session(p), &m, h);
	if (rv != CKR_OK)
		return rv;
	rv = p11_fn(p)->C_Encrypt(p11_session(p), zero, sizeof(zero), out,
	    &olen);
	if (rv == CKR_OK && olen != BT_AES_BLOCK)
		rv = CKR_GENERAL_ERROR;
	return rv;
}

static WUR int
sha256(const uint8_t *p, size_t n, uint8_t out[BUNDLE_HASH_LEN])
{
	unsigned len = 0;

	return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 &&
	    len == BUNDLE_HASH_LEN ? KEYD_OK : KEYD_ERR_CRYPTO;
}

/* The public half of pair k (private key at h): the public key object
 * with the same class, key type and id (or label, without an id). */
static WUR int
describe_public(struct p11 *p, CK_OBJECT_HANDLE h, struct bundle_key *k,
    const char *what, char *err, size_t errlen)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = k->key_type;
	CK_ATTRIBUTE t[3] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_ID, k->id, k->id_len },
	};
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES], pub;
	CK_ATTRIBUTE_TYPE ta = k->key_type == CKK_RSA ? CKA_MODULUS :
	    CKA_EC_PARAMS;
	CK_ATTRIBUTE_TYPE tb = k->key_type == CKK_RSA ? CKA_PUBLIC_EXPONENT :
	    CKA_EC_POINT;
	uint8_t *spki = NULL, *mod = NULL;
	size_t spki_len = 0, mod_len = 0;
	unsigned bits = 0;
	CK_ULONG n = 0;
	CK_RV rv;
	int r = KEYD_ERR_TOKEN;

	if (k->id_len == 0) {
		t[2].type = CKA_LABEL;
		t[2].pValue = k->label;
		t[2].ulValueLen = k->label_len;
	}
	rv = p11_find(p11_fn(p), p11_session(p), t, 3, P11_ANY_CLASS, 0, objs,
	    P11_MAX_MATCHES, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "%s: searching for its public key failed: "
		    "%s", what, token_rv_name(rv));
		goto out;
	}
	if (n != 1) {
		errf(err, errlen, "%s: %s; the public key travels in the "
		    "bundle so that a restored key can be checked", what,
		    n == 0 ? "its public key object (same CKA_ID) is not on "
		    "the token" : "more than one public key has its CKA_ID");
		r = KEYD_ERR_NOT_FOUND;
		goto out;
	}
	pub = objs[0];
	if ((rv = get_into(p, pub, ta, k->pub_a, sizeof(k->pub_a),
	    &k->pub_a_len)) != CKR_OK ||
	    (rv = get_into(p, pub, tb, k->pub_b, sizeof(k->pub_b),
	    &k->pub_b_len)) != CKR_OK ||
	    (rv = read_flags(p, pub, CKO_PUBLIC_KEY, &k->pub_flags)) !=
	    CKR_OK) {
		errf(err, errlen, "%s: cannot read its public key: %s", what,
		    token_rv_name(rv));
		goto out;
	}
	if ((r = p11_spki(k->key_type, k->pub_a, k->pub_a_len, k->pub_b,
	    k->pub_b_len, &spki, &spki_len, &bits, NULL, 0)) != KEYD_OK) {
		errf(err, errlen, "%s: %s", what, r == KEYD_ERR_UNSUPPORTED ?
		    "its curve is not one keyd-backup knows (P-256, P-384, "
		    "Ed25519)" : "its public key is not valid");
		goto out;
	}
	if (spki_len > sizeof(k->spki)) {
		errf(err, errlen, "%s: its public key is too large", what);
		r = KEYD_ERR_UNSUPPORTED;
		goto out;
	}
	/* An RSA private key carries its modulus: it must be the public
	 * key's, or the pair is not a pair. */
	if (k->key_type == CKK_RSA && (p11_get_attr(p11_fn(p), p11_session(p), h,
	    CKA_MODULUS, &mod, &mod_len) != CKR_OK || mod_len != k->pub_a_len ||
	    memcmp(mod, k->pub_a, mod_len) != 0)) {
		errf(err, errlen, "%s: the public key with its CKA_ID has "
		    "another modulus", what);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	memcpy(k->spki, spki, spki_len);
	k->spki_len = spki_len;
	k->bits = bits;
	k->fp_kind = BUNDLE_FP_SPKI_SHA256;
	k->fp_len = BUNDLE_HASH_LEN;
	r = sha256(k->spki, k->spki_len, k->fp);
out:
	free(spki);
	free(mod);
	return r;
}

static WUR int
describe_secret(struct p11 *p, CK_OBJECT_HANDLE h, struct bundle_key *k,
    const char *what, char *err, size_t errlen)
{
	uint8_t block[BT_AES_BLOCK];
	CK_ULONG vlen = 0;
	CK_RV rv;

	if ((rv = p11_get_ulong(p11_fn(p), p11_session(p), h, CKA_VALUE_LEN,
	    &vlen)) != CKR_OK) {
		errf(err, errlen, "%s: cannot read CKA_VALUE_LEN: %s", what,
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	k->bits = (uint32_t)(vlen * 8);
	k->fp_kind = BUNDLE_FP_KCV;
	rv = get_into(p, h, CKA_CHECK_VALUE, k->fp, BUNDLE_MAX_KCV,
	    &k->fp_len);
	if (rv == CKR_OK && k->fp_len > 0)
		return KEYD_OK;
	/* No check value on the token: compute it, if the key may encrypt. */
	if (!(k->flags & BUNDLE_F_ENCRYPT) ||
	    ecb_zero(p, h, block) != CKR_OK) {
		errf(err, errlen, "%s has no CKA_CHECK_VALUE and may not "
		    "encrypt, so its restore could not be checked; keyd-backup "
		    "refuses to back it up", what);
		return KEYD_ERR_UNSUPPORTED;
	}
	memcpy(k->fp, block, BT_KCV_LEN);
	k->fp_len = BT_KCV_LEN;
	return KEYD_OK;
}

int
backup_token_describe(struct p11 *p, CK_OBJECT_HANDLE h, const char *uri,
    struct bundle_key *k, char *err, size_t errlen)
{
	char what[BUNDLE_MAX_LABEL + 64];
	CK_ULONG cls = 0, kt = 0;
	CK_RV rv;

	memset(k, 0, sizeof(*k));
	if ((rv = p11_get_ulong(p11_fn(p), p11_session(p), h, CKA_CLASS,
	    &cls)) != CKR_OK ||
	    (rv = p11_get_ulong(p11_fn(p), p11_session(p), h, CKA_KEY_TYPE,
	    &kt)) != CKR_OK ||
	    (rv = get_into(p, h, CKA_LABEL, (uint8_t *)k->label,
	    BUNDLE_MAX_LABEL, &k->label_len)) != CKR_OK ||
	    (rv = get_into(p, h, CKA_ID, k->id, BUNDLE_MAX_ID, &k->id_len)) !=
	    CKR_OK) {
		errf(err, errlen, "key %s: cannot read its attributes: %s (a "
		    "label and id of at most %d bytes each)", uri,
		    token_rv_name(rv), BUNDLE_MAX_LABEL);
		return KEYD_ERR_TOKEN;
	}
	k->label[k->label_len] = '\0';
	if (memchr(k->label, '\0', k->label_len) != NULL) {
		errf(err, errlen, "key %s: its label holds a NUL byte", uri);
		return KEYD_ERR_UNSUPPORTED;
	}
	snprintf(what, sizeof(what), "key '%s' (%s)", k->label, uri);
	k->cls = (uint32_t)cls;
	k->key_type = (uint32_t)kt;
	if (!(cls == CKO_PRIVATE_KEY && (kt == CKK_EC || kt == CKK_RSA ||
	    kt == CKK_EC_EDWARDS)) && !(cls == CKO_SECRET_KEY &&
	    kt == CKK_AES)) {
		errf(err, errlen, "%s is a key of a type keyd-backup does not "
		    "back up (EC, Ed25519 and RSA private keys, AES keys)", what);
		return KEYD_ERR_UNSUPPORTED;
	}
	if ((rv = read_flags(p, h, cls, &k->flags)) != CKR_OK) {
		errf(err, errlen, "%s: cannot read its flags: %s", what,
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	/* The refusals of the issue: a backup must never be a way to take a
	 * key out of the token. */
	if (!(k->flags & BUNDLE_F_EXTRACTABLE)) {
		errf(err, errlen, "%s cannot be backed up: it is not "
		    "extractable (CKA_EXTRACTABLE is false); only keys made "
		    "with 'keyd-backup keygen' without --no-backup can be", what);
		return KEYD_ERR_DENIED;
	}
	if (!(k->flags & BUNDLE_F_WRAP_WITH_TRUSTED)) {
		errf(err, errlen, "%s is refused: it is extractable without "
		    "CKA_WRAP_WITH_TRUSTED, so anyone holding the user PIN can "
		    "wrap it under a key of their own and take it out; make "
		    "backup-able keys with 'keyd-backup keygen', and replace "
		    "this one", what);
		return KEYD_ERR_DENIED;
	}
	if (cls == CKO_PRIVATE_KEY)
		return describe_public(p, h, k, what, err, errlen);
	return describe_secret(p, h, k, what, err, errlen);
}

/* ---- keygen ------------------------------------------------------------- */

static void
common_private(struct tmpl *t, const struct backup_keygen *req,
    const uint8_t *id, size_t id_len)
{
	tbool(t, CKA_TOKEN, 1);
	tbool(t, CKA_PRIVATE, 1);
	tadd(t, CKA_LABEL, req->label, strlen(req->label));
	tadd(t, CKA_ID, id, id_len);
	tbool(t, CKA_SENSITIVE, 1);
	tbool(t, CKA_EXTRACTABLE, req->backup);
	tbool(t, CKA_WRAP_WITH_TRUSTED, 1);
	tbool(t, CKA_DECRYPT, (req->usage & (BACKUP_USAGE_DECRYPT |
	    BACKUP_USAGE_SRTP)) != 0);
	tbool(t, CKA_UNWRAP, 0);
	tbool(t, CKA_DERIVE, 0);
	tbool(t, CKA_SIGN, (req->usage & BACKUP_USAGE_SIGN) != 0);
}

/* For a key that never leaves the token (--no-backup), on a token that
 * refused the full template: only what makes the key what it must be
 * (class, type, size or curve, label, id, on the token, private,
 * sensitive, not extractable, the uses asked for) stays; the attributes
 * that only forbid other uses go, and CKA_WRAP_WITH_TRUSTED, which
 * governs wrapping a key that cannot be wrapped at all. tpm2-pkcs11
 * refuses CKA_DECRYPT false (it lets every key sign and decrypt);
 * opencryptoki 3.8 does not know CKA_WRAP_WITH_TRUSTED. */
static void
tmpl_minimal(struct tmpl *t)
{
	CK_ULONG j = 0;

	for (CK_ULONG i = 0; i < t->n; i++) {
		const CK_ATTRIBUTE *a = &t->a[i];
		int is_false = a->ulValueLen == sizeof(CK_BBOOL) &&
		    a->pValue == (const void *)&ck_false;

		if (a->type == CKA_WRAP_WITH_TRUSTED || (is_false &&
		    a->type != CKA_EXTRACTABLE && a->type != CKA_PRIVATE &&
		    a->type != CKA_TOKEN))
			continue;
		t->a[j++] = *a;
	}
	t->n = j;
}

/* What a token answers to a template it will not take. */
static int
rv_template(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_VALUE_INVALID ||
	    rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    rv == CKR_TEMPLATE_INCONSISTENT;
}

int
backup_token_keygen(struct p11 *p, const struct backup_keygen *req,
    struct bundle_key *out, char *err, size_t errlen)
{
	struct tmpl pub, priv;
	CK_MECHANISM mech = { 0, NULL, 0 };
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_ULONG modbits = 0, vlen = 0;
	uint8_t rid[BT_DEFAULT_ID_LEN];
	const uint8_t *id = req->id;
	size_t id_len = req->id_len;
	char uri[BUNDLE_MAX_LABEL + 32];
	int exists = 0, r;
	CK_RV rv, first = CKR_OK;

	memset(&pub, 0, sizeof(pub));
	memset(&priv, 0, sizeof(priv));
	if (strlen(req->label) == 0 || strlen(req->label) > BUNDLE_MAX_LABEL) {
		errf(err, errlen, "the label must be 1 to %d bytes",
		    BUNDLE_MAX_LABEL);
		return KEYD_ERR_INVALID_ARG;
	}
	if ((r = object_exists(p, CKA_LABEL, req->label, strlen(req->label),
	    &exists)) != KEYD_OK) {
		errf(err, errlen, "cannot search the token for label '%s'",
		    req->label);
		return r;
	}
	if (exists) {
		errf(err, errlen, "token '%s' already has an object labelled "
		    "'%s'; choose another label", p11_token_label(p),
		    req->label);
		return KEYD_ERR_INVALID_ARG;
	}
	if (id_len == 0) {
		if ((rv = p11_fn(p)->C_GenerateRandom(p11_session(p), rid,
		    sizeof(rid))) != CKR_OK) {
			errf(err, errlen, "C_GenerateRandom failed: %s",
			    token_rv_name(rv));
			return KEYD_ERR_TOKEN;
		}
		id = rid;
		id_len = sizeof(rid);
	} else if ((r = object_exists(p, CKA_ID, id, id_len, &exists)) !=
	    KEYD_OK || exists) {
		errf(err, errlen, "token '%s' already has an object with that "
		    "id; choose another --id", p11_token_label(p));
		return r != KEYD_OK ? r : KEYD_ERR_INVALID_ARG;
	}

	if (kind_is_aes(req->kind)) {
		vlen = req->kind == BACKUP_KIND_AES_128 ? 16 : 32;
		mech.mechanism = CKM_AES_KEY_GEN;
		tclass(&priv, CKO_SECRET_KEY, CKK_AES);
		common_private(&priv, req, id, id_len);
		tadd(&priv, CKA_VALUE_LEN, &vlen, sizeof(vlen));
		tbool(&priv, CKA_ENCRYPT, (req->usage & BACKUP_USAGE_SRTP) != 0);
		tbool(&priv, CKA_VERIFY, 0);
		tbool(&priv, CKA_WRAP, 0);
		rv = p11_fn(p)->C_GenerateKey(p11_session(p), &mech, priv.a,
		    priv.n, &hpriv);
		if (!req->backup && rv_template(rv)) {
			first = rv;
			tmpl_minimal(&priv);
			rv = p11_fn(p)->C_GenerateKey(p11_session(p), &mech,
			    priv.a, priv.n, &hpriv);
		}
	} else {
		/* The key type comes from the mechanism. */
		pub.cls = CKO_PUBLIC_KEY;
		tadd(&pub, CKA_CLASS, &pub.cls, sizeof(pub.cls));
		tbool(&pub, CKA_TOKEN, 1);
		tbool(&pub, CKA_PRIVATE, 0);
		tadd(&pub, CKA_LABEL, req->label, strlen(req->label));
		tadd(&pub, CKA_ID, id, id_len);
		tbool(&pub, CKA_VERIFY, (req->usage & BACKUP_USAGE_SIGN) != 0);
		tbool(&pub, CKA_ENCRYPT,
		    (req->usage & BACKUP_USAGE_DECRYPT) != 0);
		tbool(&pub, CKA_WRAP, 0);
		tbool(&pub, CKA_VERIFY_RECOVER, 0);
		tbool(&pub, CKA_DERIVE, 0);
		priv.cls = CKO_PRIVATE_KEY;
		tadd(&priv, CKA_CLASS, &priv.cls, sizeof(priv.cls));
		common_private(&priv, req, id, id_len);
		tbool(&priv, CKA_SIGN_RECOVER, 0);
		switch (req->kind) {
		case BACKUP_KIND_EC_P256:
			mech.mechanism = CKM_EC_KEY_PAIR_GEN;
			tadd(&pub, CKA_EC_PARAMS, p11_oid_p256,
			    sizeof(p11_oid_p256));
			break;
		case BACKUP_KIND_EC_P384:
			mech.mechanism = CKM_EC_KEY_PAIR_GEN;
			tadd(&pub, CKA_EC_PARAMS, p11_oid_p384,
			    sizeof(p11_oid_p384));
			break;
		case BACKUP_KIND_ED25519:
			mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
			tadd(&pub, CKA_EC_PARAMS, p11_oid_ed25519,
			    sizeof(p11_oid_ed25519));
			break;
		default:
			mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
			modbits = req->kind == BACKUP_KIND_RSA_2048 ? 2048 :
			    3072;
			tadd(&pub, CKA_MODULUS_BITS, &modbits, sizeof(modbits));
			tadd(&pub, CKA_PUBLIC_EXPONENT, rsa_e, sizeof(rsa_e));
			break;
		}
		rv = p11_fn(p)->C_GenerateKeyPair(p11_session(p), &mech, pub.a,
		    pub.n, priv.a, priv.n, &hpub, &hpriv);
		/* tpm2-pkcs11 answers CKR_GENERAL_ERROR to a usage flag
		 * that differs from what it sets itself. */
		if (!req->backup && (rv_template(rv) ||
		    rv == CKR_GENERAL_ERROR)) {
			first = rv;
			tmpl_minimal(&pub);
			tmpl_minimal(&priv);
			rv = p11_fn(p)->C_GenerateKeyPair(p11_session(p), &mech,
			    pub.a, pub.n, priv.a, priv.n, &hpub, &hpriv);
		}
	}
	if (rv != CKR_OK && req->backup && rv_template(rv)) {
		errf(err, errlen, "token '%s' cannot hold this key so that it "
		    "can be backed up: it refused a key that is sensitive, "
		    "extractable and wrap-with-trusted (%s); make it with "
		    "--no-backup (it then exists on this token alone), or on a "
		    "token that can", p11_token_label(p), token_rv_name(rv));
		return KEYD_ERR_UNSUPPORTED;
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "generating the key on token '%s' failed: %s",
		    p11_token_label(p), token_rv_name(rv));
		return rv == CKR_MECHANISM_INVALID ||
		    rv == CKR_FUNCTION_NOT_SUPPORTED ? KEYD_ERR_UNSUPPORTED :
		    KEYD_ERR_TOKEN;
	}
	if (first != CKR_OK)
		printf("token '%s' refused the full template (%s): the key was "
		    "made with only what it must be (sensitive, not "
		    "extractable, the uses asked for); the token may allow it "
		    "more uses, shown below\n", p11_token_label(p),
		    token_rv_name(first));
	snprintf(uri, sizeof(uri), "label '%s'", req->label);
	if (!req->backup) {
		/* Not extractable: describe it without the refusals. */
		memset(out, 0, sizeof(*out));
		out->cls = priv.cls;
		out->label_len = strlen(req->label);
		memcpy(out->label, req->label, out->label_len);
		memcpy(out->id, id, id_len);
		out->id_len = id_len;
		out->key_type = kind_is_aes(req->kind) ? CKK_AES :
		    kind_is_rsa(req->kind) ? CKK_RSA :
		    req->kind == BACKUP_KIND_ED25519 ? CKK_EC_EDWARDS : CKK_EC;
		if ((rv = read_flags(p, hpriv, priv.cls, &out->flags)) !=
		    CKR_OK) {
			errf(err, errlen, "the new key's flags cannot be read: "
			    "%s", token_rv_name(rv));
			return KEYD_ERR_TOKEN;
		}
		if ((out->flags & BUNDLE_F_EXTRACTABLE) ||
		    !(out->flags & BUNDLE_F_SENSITIVE)) {
			backup_token_destroy(p, hpriv);
			if (hpub != CK_INVALID_HANDLE)
				backup_token_destroy(p, hpub);
			errf(err, errlen, "token '%s' made the key %s: keyd-backup "
			    "destroyed it", p11_token_label(p),
			    (out->flags & BUNDLE_F_EXTRACTABLE) ? "extractable" :
			    "not sensitive");
			return KEYD_ERR_UNSUPPORTED;
		}
		if (out->cls == CKO_PRIVATE_KEY)
			return describe_public(p, hpriv, out, uri, err, errlen);
		return describe_secret(p, hpriv, out, uri, err, errlen);
	}
	return backup_token_describe(p, hpriv, uri, out, err, errlen);
}

/* ---- the wrap mechanism and its known answers --------------------------- */

static WUR CK_RV
session_secret(struct p11 *p, CK_KEY_TYPE kt, const uint8_t *v, size_t len,
    int kek, CK_OBJECT_HANDLE *h)
{
	struct tmpl t;

	memset(&t, 0, sizeof(t));
	tclass(&t, CKO_SECRET_KEY, kt);
	tbool(&t, CKA_TOKEN, 0);
	tbool(&t, CKA_PRIVATE, 0);
	tadd(&t, CKA_VALUE, v, len);
	tbool(&t, CKA_SENSITIVE, 0);
	tbool(&t, CKA_EXTRACTABLE, 1);
	tbool(&t, CKA_WRAP, kek);
	tbool(&t, CKA_UNWRAP, kek);
	tbool(&t, CKA_ENCRYPT, 0);
	tbool(&t, CKA_DECRYPT, 0);
	return p11_fn(p)->C_CreateObject(p11_session(p), t.a, t.n, h);
}

/* Runs RFC 5649's two examples through mech. Unwrapping the RFC's bytes
 * must give the key; *exact says whether wrapping gave the RFC's bytes,
 * *zero_pad whether it gave the wrap of the zero-padded key. Every object
 * is a session object, destroyed before return. */
static WUR CK_RV
kat_run(struct p11 *p, CK_MECHANISM_TYPE mtype, int *unwrap_ok, int *exact,
    int *zero_pad)
{
	CK_MECHANISM m = { mtype, NULL, 0 };
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE, key = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE back = CK_INVALID_HANDLE;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE ut[6] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, (void *)(uintptr_t)&ck_false, sizeof(CK_BBOOL) },
		{ CKA_SENSITIVE, (void *)(uintptr_t)&ck_false,
		  sizeof(CK_BBOOL) },
		{ CKA_EXTRACTABLE, (void *)(uintptr_t)&ck_true,
		  sizeof(CK_BBOOL) },
		{ CKA_PRIVATE, (void *)(uintptr_t)&ck_false,
		  sizeof(CK_BBOOL) },
	};
	uint8_t out[64], *val = NULL;
	size_t vlen = 0;
	CK_ULONG olen;
	CK_RV rv;

	*unwrap_ok = *exact = *zero_pad = 1;
	rv = session_secret(p, CKK_AES, backup_kat_kek, sizeof(backup_kat_kek),
	    1, &kek);
	if (rv != CKR_OK)
		goto out;
	for (size_t i = 0; i < sizeof(backup_kats) / sizeof(backup_kats[0]);
	    i++) {
		const struct backup_kat *v = &backup_kats[i];

		rv = p11_fn(p)->C_UnwrapKey(p11_session(p), &m, kek,
		    (CK_BYTE *)(uintptr_t)v->wrapped, v->wrapped_len, ut, 6,
		    &back);
		if (rv != CKR_OK)
			goto out;
		rv = p11_get_attr(p11_fn(p), p11_session(p), back, CKA_VALUE, &val,
		    &vlen);
		backup_token_destroy(p, back);
		back = CK_INVALID_HANDLE;
		if (rv != CKR_OK)
			goto out;
		if (vlen != v->key_len || memcmp(val, v->key, vlen) != 0)
			*unwrap_ok = 0;
		free(val);
		val = NULL;

		rv = session_secret(p, CKK_GENERIC_SECRET, v->key, v->key_len,
		    0, &key);
		if (rv != CKR_OK)
			goto out;
		olen = sizeof(out);
		rv = p11_fn(p)->C_WrapKey(p11_session(p), &m, kek, key, out,
		    &olen);
		backup_token_destroy(p, key);
		key = CK_INVALID_HANDLE;
		if (rv != CKR_OK)
			goto out;
		if (olen != v->wrapped_len ||
		    memcmp(out, v->wrapped, olen) != 0)
			*exact = 0;
		if (olen != v->zp_wrapped_len ||
		    memcmp(out, v->zp_wrapped, olen) != 0)
			*zero_pad = 0;
	}
out:
	if (rv != CKR_OK)
		*unwrap_ok = *exact = *zero_pad = 0;
	free(val);
	if (kek != CK_INVALID_HANDLE)
		backup_token_destroy(p, kek);
	return rv;
}

static int
has_mechanism(struct p11 *p, CK_SLOT_ID slot, CK_MECHANISM_TYPE m)
{
	CK_MECHANISM_INFO info;

	return p11_fn(p)->C_GetMechanismInfo(slot, m, &info) == CKR_OK &&
	    (info.flags & CKF_WRAP) && (info.flags & CKF_UNWRAP);
}

int
backup_token_pick_wrap(struct p11 *p, int for_wrap, CK_MECHANISM_TYPE *mech,
    uint8_t *alg, char *err, size_t errlen)
{
	static const CK_MECHANISM_TYPE order[2] = { CKM_AES_KEY_WRAP_KWP,
		CKM_AES_KEY_WRAP_PAD };
	CK_SESSION_INFO si;
	int unwrap_ok = 0, exact = 0, zero_pad = 0;
	CK_RV rv;

	*mech = 0;
	*alg = 0;
	if ((rv = p11_fn(p)->C_GetSessionInfo(p11_session(p), &si)) != CKR_OK) {
		errf(err, errlen, "C_GetSessionInfo failed: %s",
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (size_t i = 0; i < 2; i++) {
		if (!has_mechanism(p, si.slotID, order[i]))
			continue;
		/* 0x210A is RFC 5649 on SoftHSM2 and nShield but RFC 3394 with
		 * PKCS#7 padding on others (PKCS#11 3.1, kryoptic): only the
		 * RFC's own answers tell which (FIELD-NOTES). */
		rv = kat_run(p, order[i], &unwrap_ok, &exact, &zero_pad);
		if (rv == CKR_OK && unwrap_ok && (!for_wrap || exact ||
		    zero_pad)) {
			*mech = order[i];
			*alg = !for_wrap || exact ? BUNDLE_WRAP_RFC5649 :
			    BUNDLE_WRAP_RFC5649_ZERO_PAD;
			return KEYD_OK;
		}
		errf(err, errlen, "token '%s': mechanism 0x%lx does not give "
		    "RFC 5649's known answers (section 6) when %s%s%s; "
		    "keyd-backup will not use it", p11_token_label(p),
		    (unsigned long)order[i], rv != CKR_OK ? "asked" :
		    !unwrap_ok ? "unwrapping" : "wrapping",
		    rv != CKR_OK ? ": " : "",
		    rv != CKR_OK ? token_rv_name(rv) : "");
		return KEYD_ERR_TOKEN;
	}
	errf(err, errlen, "token '%s' has neither CKM_AES_KEY_WRAP_KWP "
	    "(0x210B) nor CKM_AES_KEY_WRAP_PAD (0x210A): it cannot wrap keys "
	    "with RFC 5649", p11_token_label(p));
	return KEYD_ERR_UNSUPPORTED;
}

/* ---- the BMK ------------------------------------------------------------ */

int
backup_token_new_bmk(struct p11 *p, uint8_t *bmk, char *err, size_t errlen)
{
	uint8_t *host = NULL;
	size_t got = 0;
	ssize_t n;
	CK_RV rv;
	int r = KEYD_ERR_CRYPTO;

	if ((host = secmem_alloc(BUNDLE_BMK_LEN)) == NULL)
		return KEYD_ERR_NOMEM;
	if ((rv = p11_fn(p)->C_GenerateRandom(p11_session(p), bmk,
	    BUNDLE_BMK_LEN)) != CKR_OK) {
		errf(err, errlen, "C_GenerateRandom failed: %s",
		    token_rv_name(rv));
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	while (got < BUNDLE_BMK_LEN) {
		n = getrandom(host + got, BUNDLE_BMK_LEN - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errlen, "getrandom failed: %s",
			    strerror(errno));
			goto out;
		}
		got += (size_t)n;
	}
	/* Either source alone, if good, makes the BMK unpredictable. */
	for (size_t i = 0; i < BUNDLE_BMK_LEN; i++)
		bmk[i] ^= host[i];
	r = KEYD_OK;
out:
	if (r != KEYD_OK)
		secmem_wipe(bmk, BUNDLE_BMK_LEN);
	secmem_free(host, BUNDLE_BMK_LEN);
	return r;
}

int
backup_token_trusted_bmk(struct p11 *p, const char *so_pin, size_t so_len,
    const char *user_pin, size_t user_len, const uint8_t *bmk,
    CK_OBJECT_HANDLE *h, char *err, size_t errlen)
{
	struct tmpl t;
	CK_RV rv;
	int r;

	*h = CK_INVALID_HANDLE;
	p11_logout(p);
	if ((r = p11_session_login(p, CKU_SO, so_pin, so_len, err,
	    errlen)) != KEYD_OK)
		return r;
	/* Only the SO may set CKA_TRUSTED, and the SO can only make public
	 * objects; a session object of this session, so that it never
	 * reaches the token's storage and dies with the session. */
	memset(&t, 0, sizeof(t));
	tclass(&t, CKO_SECRET_KEY, CKK_AES);
	tbool(&t, CKA_TOKEN, 0);
	tbool(&t, CKA_PRIVATE, 0);
	tadd(&t, CKA_VALUE, bmk, BUNDLE_BMK_LEN);
	tbool(&t, CKA_TRUSTED, 1);
	tbool(&t, CKA_WRAP, 1);
	tbool(&t, CKA_UNWRAP, 1);
	tbool(&t, CKA_ENCRYPT, 0);
	tbool(&t, CKA_DECRYPT, 0);
	tbool(&t, CKA_SIGN, 0);
	tbool(&t, CKA_VERIFY, 0);
	tbool(&t, CKA_DERIVE, 0);
	tbool(&t, CKA_SENSITIVE, 1);
	tbool(&t, CKA_EXTRACTABLE, 0);
	rv = p11_fn(p)->C_CreateObject(p11_session(p), t.a, t.n, h);
	p11_logout(p);
	if (rv != CKR_OK) {
		*h = CK_INVALID_HANDLE;
		errf(err, errlen, "the SO cannot create the trusted backup "
		    "master key on token '%s': %s", p11_token_label(p),
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if ((r = p11_session_login(p, CKU_USER, user_pin, user_len, err,
	    errlen)) != KEYD_OK) {
		backup_token_destroy(p, *h);
		*h = CK_INVALID_HANDLE;
		return r;
	}
	return KEYD_OK;
}

void
backup_token_destroy(struct p11 *p, CK_OBJECT_HANDLE h)
{
	if (h != CK_INVALID_HANDLE)
		(void)p11_fn(p)->C_DestroyObject(p11_session(p), h);
}

int
backup_token_wrap(struct p11 *p, CK_MECHANISM_TYPE mech,
    CK_OBJECT_HANDLE bmk, CK_OBJECT_HANDLE h, struct bundle_key *k,
    char *err, size_t errlen)
{
	CK_MECHANISM m = { mech, NULL, 0 };
	CK_ULONG len = 0;
	CK_RV rv;

	rv = p11_fn(p)->C_WrapKey(p11_session(p), &m, bmk, h, NULL, &len);
	if (rv == CKR_OK && len > sizeof(k->wrapped))
		rv = CKR_BUFFER_TOO_SMALL;
	if (rv == CKR_OK) {
		len = sizeof(k->wrapped);
		rv = p11_fn(p)->C_WrapKey(p11_session(p), &m, bmk, h,
		    k->wrapped, &len);
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "wrapping key '%s' under the backup master "
		    "key failed: %s%s", k->label, token_rv_name(rv),
		    rv == CKR_KEY_NOT_WRAPPABLE ? " (the key is wrap-with-trusted "
		    "and the backup key trusted, so this token cannot wrap keys "
		    "of this type; SoftHSM2 2.6 cannot wrap Ed25519 keys)" : "");
		return KEYD_ERR_TOKEN;
	}
	k->wrapped_len = len;
	return KEYD_OK;
}

/* ---- restore ------------------------------------------------------------ */

/* An EVP_PKEY of the bundle's SPKI. */
static EVP_PKEY *
pkey_of(const struct bundle_key *k)
{
	const unsigned char *q = k->spki;

	return d2i_PUBKEY(NULL, &q, (long)k->spki_len);
}

/* Raw r || s (PKCS#11) to DER (OpenSSL). */
static WUR int
ecdsa_der(const uint8_t *raw, size_t len, uint8_t *der, size_t *der_len)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *q = der;
	int n, ret = KEYD_ERR_CRYPTO;

	if (len == 0 || len % 2 != 0 || (sig = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, (int)(len / 2), NULL)) == NULL ||
	    (s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL)) == NULL ||
	    ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > *der_len || i2d_ECDSA_SIG(sig, &q) != n)
		goto out;
	*der_len = (size_t)n;
	ret = KEYD_OK;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return ret;
}

/* Signs on the token, verifies with OpenSSL against the bundle's SPKI:
 * a signature that verifies proves the private key is the SPKI's. */
static WUR int
selftest_sign(struct p11 *p, CK_OBJECT_HANDLE h, const struct bundle_key *k)
{
	CK_MECHANISM m = { 0, NULL, 0 };
	uint8_t digest[BUNDLE_HASH_LEN], sig[BT_MAX_SIG], der[BT_MAX_SIG];
	const uint8_t *in = (const uint8_t *)selftest_msg;
	size_t inlen = sizeof(selftest_msg) - 1, der_len = sizeof(der);
	CK_ULONG slen = sizeof(sig);
	EVP_MD_CTX *md = NULL;
	EVP_PKEY *pk = NULL;
	const EVP_MD *hash = EVP_sha256();
	int r = KEYD_ERR_CRYPTO;

	if (k->key_type == CKK_EC) {
		/* SoftHSM2 has no CKM_ECDSA_SHA256: hash here. */
		m.mechanism = CKM_ECDSA;
		if (sha256(in, inlen, digest) != KEYD_OK)
			goto out;
		in = digest;
		inlen = sizeof(digest);
	} else if (k->key_type == CKK_RSA) {
		m.mechanism = CKM_SHA256_RSA_PKCS;
	} else {
		m.mechanism = CKM_EDDSA;
		hash = NULL;
	}
	if (p11_fn(p)->C_SignInit(p11_session(p), &m, h) != CKR_OK ||
	    p11_fn(p)->C_Sign(p11_session(p), (CK_BYTE *)(uintptr_t)in, inlen,
	    sig, &slen) != CKR_OK) {
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if (k->key_type == CKK_EC) {
		if (ecdsa_der(sig, slen, der, &der_len) != KEYD_OK)
			goto out;
	} else {
		memcpy(der, sig, slen);
		der_len = slen;
	}
	if ((pk = pkey_of(k)) == NULL || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, hash, NULL, pk) != 1)
		goto out;
	if (EVP_DigestVerify(md, der, der_len,
	    (const uint8_t *)selftest_msg, sizeof(selftest_msg) - 1) != 1) {
		r = KEYD_ERR_DECRYPT;
		goto out;
	}
	r = KEYD_OK;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return r;
}

/* Encrypts with OpenSSL under the SPKI (OAEP with SHA-1, all SoftHSM2
 * does) and decrypts on the token. */
static WUR int
selftest_rsa_decrypt(struct p11 *p, CK_OBJECT_HANDLE h,
    const struct bundle_key *k)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep = { CKM_SHA_1, CKG_MGF1_SHA1,
		CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	uint8_t ct[BT_MAX_RSA], pt[BT_MAX_RSA];
	size_t ctlen = sizeof(ct);
	CK_ULONG ptlen = sizeof(pt);
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	int r = KEYD_ERR_CRYPTO;

	if ((pk = pkey_of(k)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new(pk, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) != 1 ||
	    EVP_PKEY_encrypt(ctx, ct, &ctlen, (const uint8_t *)selftest_msg,
	    sizeof(selftest_msg) - 1) != 1)
		goto out;
	if (p11_fn(p)->C_DecryptInit(p11_session(p), &m, h) != CKR_OK ||
	    p11_fn(p)->C_Decrypt(p11_session(p), ct, ctlen, pt, &ptlen) !=
	    CKR_OK) {
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	r = ptlen == sizeof(selftest_msg) - 1 &&
	    memcmp(pt, selftest_msg, ptlen) == 0 ? KEYD_OK : KEYD_ERR_DECRYPT;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

/* AES: encrypt a zero block on the token (the first bytes must be the
 * recorded check value), then decrypt it back to zeros. */
static WUR int
selftest_aes(struct p11 *p, CK_OBJECT_HANDLE h, const struct bundle_key *k)
{
	CK_MECHANISM m = { CKM_AES_ECB, NULL, 0 };
	uint8_t ct[BT_AES_BLOCK], pt[BT_AES_BLOCK], zero[BT_AES_BLOCK] = { 0 };
	CK_ULONG ptlen = sizeof(pt);

	if (ecb_zero(p, h, ct) != CKR_OK)
		return KEYD_ERR_TOKEN;
	if (k->fp_len > BT_AES_BLOCK || memcmp(ct, k->fp, k->fp_len) != 0)
		return KEYD_ERR_DECRYPT;
	if (p11_fn(p)->C_DecryptInit(p11_session(p), &m, h) != CKR_OK ||
	    p11_fn(p)->C_Decrypt(p11_session(p), ct, sizeof(ct), pt, &ptlen) !=
	    CKR_OK)
		return KEYD_ERR_TOKEN;
	return ptlen == BT_AES_BLOCK && memcmp(pt, zero, ptlen) == 0 ?
	    KEYD_OK : KEYD_ERR_DECRYPT;
}

/* Refuses a restore onto a token that already has one of the bundle's
 * labels or ids: the token must be blank for these keys. */
static WUR int
check_free(struct p11 *p, const struct bundle *b, char *err, size_t errlen)
{
	char hex[2 * BUNDLE_MAX_ID + 1];
	int exists = 0, r;

	for (size_t i = 0; i < b->n_keys; i++) {
		const struct bundle_key *k = &b->keys[i];

		if ((r = object_exists(p, CKA_LABEL, k->label, k->label_len,
		    &exists)) != KEYD_OK || exists) {
			errf(err, errlen, "token '%s' already has an object "
			    "labelled '%s'; restore onto a blank token (or "
			    "delete that object first)", p11_token_label(p),
			    k->label);
			return r != KEYD_OK ? r : KEYD_ERR_INVALID_ARG;
		}
		if (k->id_len > 0 && ((r = object_exists(p, CKA_ID, k->id,
		    k->id_len, &exists)) != KEYD_OK || exists)) {
			errf(err, errlen, "token '%s' already has an object "
			    "with id %s (key '%s'); restore onto a blank token "
			    "(or delete that object first)", p11_token_label(p),
			    bundle_hex(k->id, k->id_len, hex), k->label);
			return r != KEYD_OK ? r : KEYD_ERR_INVALID_ARG;
		}
	}
	return KEYD_OK;
}

static WUR CK_RV
import_bmk(struct p11 *p, const uint8_t *bmk, size_t len, CK_OBJECT_HANDLE *h)
{
	struct tmpl t;

	/* Unwrapping needs no trust: the user imports it, private. */
	memset(&t, 0, sizeof(t));
	tclass(&t, CKO_SECRET_KEY, CKK_AES);
	tbool(&t, CKA_TOKEN, 0);
	tbool(&t, CKA_PRIVATE, 1);
	tadd(&t, CKA_VALUE, bmk, len);
	tbool(&t, CKA_UNWRAP, 1);
	tbool(&t, CKA_WRAP, 0);
	tbool(&t, CKA_ENCRYPT, 0);
	tbool(&t, CKA_DECRYPT, 0);
	tbool(&t, CKA_SIGN, 0);
	tbool(&t, CKA_VERIFY, 0);
	tbool(&t, CKA_DERIVE, 0);
	tbool(&t, CKA_SENSITIVE, 1);
	tbool(&t, CKA_EXTRACTABLE, 0);
	return p11_fn(p)->C_CreateObject(p11_session(p), t.a, t.n, h);
}

/* Checks that the private key at h is the bundle's: its public values
 * where the token shows them (RSA modulus and exponent, EC curve). */
static WUR int
check_private(struct p11 *p, CK_OBJECT_HANDLE h, const struct bundle_key *k)
{
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int r = KEYD_ERR_BUNDLE;

	if (k->key_type == CKK_RSA) {
		if (p11_get_attr(p11_fn(p), p11_session(p), h, CKA_MODULUS, &a,
		    &alen) != CKR_OK || p11_get_attr(p11_fn(p), p11_session(p), h,
		    CKA_PUBLIC_EXPONENT, &b, &blen) != CKR_OK)
			goto out;
		if (alen == k->pub_a_len && memcmp(a, k->pub_a, alen) == 0 &&
		    blen == k->pub_b_len && memcmp(b, k->pub_b, blen) == 0)
			r = KEYD_OK;
	} else {
		if (p11_get_attr(p11_fn(p), p11_session(p), h, CKA_EC_PARAMS, &a,
		    &alen) != CKR_OK)
			goto out;
		if (alen == k->pub_a_len && memcmp(a, k->pub_a, alen) == 0)
			r = KEYD_OK;
	}
out:
	free(a);
	free(b);
	return r;
}

struct created {
	CK_OBJECT_HANDLE h[2 * BUNDLE_MAX_KEYS];
	size_t n;
};

/*
 * Unwraps key k under the BMK object bmk with its recorded attributes,
 * re-creates its public key from the bundle, checks it and runs its
 * self-test. persist: token objects (restore) or session objects of this
 * session (drill), which never reach the token's storage. Every object
 * made goes to made, on failure too, for the caller to keep or destroy.
 * On success *test says what the self-test proved.
 */
/* The drill's objects must be session objects: a token that ignored
 * CKA_TOKEN false would keep a copy of the key under its label and id if
 * the drill died before destroying it. The caller destroys h (in made). */
static WUR int
session_only(struct p11 *p, CK_OBJECT_HANDLE h, const char *label,
    char *err, size_t errlen)
{
	CK_BBOOL on_token = CK_TRUE;
	CK_ATTRIBUTE a = { CKA_TOKEN, &on_token, sizeof(on_token) };
	CK_RV rv = p11_fn(p)->C_GetAttributeValue(p11_session(p), h, &a, 1);

	if (rv == CKR_OK && on_token == CK_FALSE)
		return KEYD_OK;
	errf(err, errlen, "key '%s': the token %s", label, rv != CKR_OK ?
	    "does not say whether the drill's object is a session object" :
	    "made the drill's object a token object, not a session object");
	return KEYD_ERR_TOKEN;
}

static WUR int
unwrap_check(struct p11 *p, CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE bmk,
    const struct bundle_key *k, int persist, struct created *made,
    const char **test, char *err, size_t errlen)
{
	CK_MECHANISM m = { mech, NULL, 0 };
	struct tmpl t, pt;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, hp = CK_INVALID_HANDLE;
	CK_ATTRIBUTE cv = { CKA_CHECK_VALUE, (void *)(uintptr_t)k->fp,
		k->fp_len };
	char type[32];
	int r;
	CK_RV rv;

	*test = NULL;
	memset(&t, 0, sizeof(t));
	memset(&pt, 0, sizeof(pt));
	bundle_key_type_name(k, type, sizeof(type));
	tclass(&t, k->cls, k->key_type);
	tbool(&t, CKA_TOKEN, persist);
	tadd(&t, CKA_LABEL, k->label, k->label_len);
	tadd(&t, CKA_ID, k->id, k->id_len);
	tflags(&t, k->cls, k->flags);
	rv = p11_fn(p)->C_UnwrapKey(p11_session(p), &m, bmk,
	    (CK_BYTE *)(uintptr_t)k->wrapped, k->wrapped_len, t.a, t.n, &h);
	if (rv != CKR_OK) {
		errf(err, errlen, "unwrapping key '%s' (%s) failed: %s",
		    k->label, type, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	made->h[made->n++] = h;
	if (!persist && (r = session_only(p, h, k->label, err, errlen)) !=
	    KEYD_OK)
		return r;

	if (k->cls == CKO_PRIVATE_KEY) {
		/* The public key object, from the bundle's public part. */
		tclass(&pt, CKO_PUBLIC_KEY, k->key_type);
		tbool(&pt, CKA_TOKEN, persist);
		tadd(&pt, CKA_LABEL, k->label, k->label_len);
		tadd(&pt, CKA_ID, k->id, k->id_len);
		if (k->key_type == CKK_RSA) {
			tadd(&pt, CKA_MODULUS, k->pub_a, k->pub_a_len);
			tadd(&pt, CKA_PUBLIC_EXPONENT, k->pub_b, k->pub_b_len);
		} else {
			tadd(&pt, CKA_EC_PARAMS, k->pub_a, k->pub_a_len);
			tadd(&pt, CKA_EC_POINT, k->pub_b, k->pub_b_len);
		}
		tflags(&pt, CKO_PUBLIC_KEY, k->pub_flags);
		rv = p11_fn(p)->C_CreateObject(p11_session(p), pt.a, pt.n, &hp);
		if (rv != CKR_OK) {
			errf(err, errlen, "creating the public key of '%s' "
			    "failed: %s", k->label, token_rv_name(rv));
			return KEYD_ERR_TOKEN;
		}
		made->h[made->n++] = hp;
		if (!persist && (r = session_only(p, hp, k->label, err,
		    errlen)) != KEYD_OK)
			return r;
		if (check_private(p, h, k) != KEYD_OK) {
			errf(err, errlen, "key '%s': the unwrapped private key "
			    "does not match the bundle's public key", k->label);
			return KEYD_ERR_BUNDLE;
		}
		if (k->flags & BUNDLE_F_SIGN) {
			r = selftest_sign(p, h, k);
			*test = "signature made on the token verified with the "
			    "bundle's public key";
		} else if (k->key_type == CKK_RSA &&
		    (k->flags & BUNDLE_F_DECRYPT)) {
			r = selftest_rsa_decrypt(p, h, k);
			*test = "OAEP encryption to the bundle's public key "
			    "decrypted on the token";
		} else {
			r = k->key_type == CKK_RSA ? KEYD_OK : KEYD_ERR_UNSUPPORTED;
			*test = "modulus and exponent match (the key may neither "
			    "sign nor decrypt)";
		}
		if (r == KEYD_ERR_UNSUPPORTED) {
			errf(err, errlen, "key '%s' may neither sign nor decrypt, "
			    "so the restored key cannot be proved to be the "
			    "bundle's", k->label);
			return r;
		}
	} else {
		/* FIELD-NOTES: an unwrapped key's CKA_CHECK_VALUE is empty,
		 * and C_SetAttributeValue accepts only the right one. */
		rv = p11_fn(p)->C_SetAttributeValue(p11_session(p), h, &cv, 1);
		if (rv == CKR_ATTRIBUTE_VALUE_INVALID) {
			errf(err, errlen, "key '%s': the unwrapped key's check "
			    "value differs from the bundle's", k->label);
			return KEYD_ERR_BUNDLE;
		}
		if (rv != CKR_OK && !(k->flags & BUNDLE_F_ENCRYPT)) {
			errf(err, errlen, "key '%s': the token will not take "
			    "its check value (%s) and the key may not encrypt, "
			    "so it cannot be checked", k->label,
			    token_rv_name(rv));
			return KEYD_ERR_TOKEN;
		}
		if (k->flags & BUNDLE_F_ENCRYPT) {
			r = selftest_aes(p, h, k);
			*test = "AES-ECB of a zero block gives the check value and "
			    "decrypts back";
		} else {
			r = KEYD_OK;
			*test = "the token accepted the check value (the key may "
			    "not encrypt)";
		}
	}
	if (r != KEYD_OK) {
		errf(err, errlen, "key '%s': the self-test failed (%s)",
		    k->label, keyd_strerror(r));
		*test = NULL;
		return r;
	}
	return KEYD_OK;
}

/* One line about key k, "<verb> ec:p256 key 'x' id 01: SPKI SHA-256 ...
 * matches; self-test: ...", the report restore and drill print. */
static void
report_key(FILE *report, const char *verb, const struct bundle_key *k,
    const char *test)
{
	char type[32], fphex[2 * BUNDLE_HASH_LEN + 1];
	char idhex[2 * BUNDLE_MAX_ID + 1];

	fprintf(report, "%s %s key '%s' id %s: %s %s matches; self-test: "
	    "%s\n", verb, bundle_key_type_name(k, type, sizeof(type)),
	    k->label, k->id_len ? bundle_hex(k->id, k->id_len, idhex) :
	    "(none)", k->cls == CKO_PRIVATE_KEY ? "SPKI SHA-256" :
	    "check value", bundle_hex(k->fp, k->fp_len, fphex), test);
}

/* What restore and drill do before any key: the bundle's public values
 * must give its SPKIs; the wrap mechanism's unwrapping must give RFC
 * 5649's known answers; then the BMK goes in as a private session object
 * (*hbmk, CKA_UNWRAP only). */
static WUR int
unwrap_begin(struct p11 *p, const struct bundle *b, const uint8_t *bmk,
    size_t bmk_len, CK_MECHANISM_TYPE *mech, CK_OBJECT_HANDLE *hbmk,
    char *err, size_t errlen)
{
	uint8_t *spki = NULL, alg = 0;
	size_t spki_len = 0;
	unsigned bits = 0;
	CK_RV rv;
	int r = KEYD_OK;

	*hbmk = CK_INVALID_HANDLE;
	for (size_t i = 0; i < b->n_keys; i++) {
		const struct bundle_key *k = &b->keys[i];

		if (k->cls != CKO_PRIVATE_KEY)
			continue;
		r = p11_spki(k->key_type, k->pub_a, k->pub_a_len, k->pub_b,
		    k->pub_b_len, &spki, &spki_len, &bits, NULL, 0);
		if (r != KEYD_OK || spki_len != k->spki_len ||
		    memcmp(spki, k->spki, spki_len) != 0) {
			errf(err, errlen, "key '%s': its public key values do "
			    "not give its SPKI", k->label);
			r = KEYD_ERR_BUNDLE;
			goto out;
		}
		free(spki);
		spki = NULL;
	}
	if ((r = backup_token_pick_wrap(p, 0, mech, &alg, err, errlen)) !=
	    KEYD_OK)
		goto out;
	if ((rv = import_bmk(p, bmk, bmk_len, hbmk)) != CKR_OK) {
		errf(err, errlen, "importing the backup master key as a session "
		    "object failed: %s", token_rv_name(rv));
		*hbmk = CK_INVALID_HANDLE;
		r = KEYD_ERR_TOKEN;
		goto out;
	}
out:
	free(spki);
	return r;
}

int
backup_token_restore(struct p11 *p, const struct bundle *b,
    const uint8_t *bmk, size_t bmk_len, FILE *report, char *err,
    size_t errlen)
{
	struct created *made = NULL;
	CK_OBJECT_HANDLE hbmk = CK_INVALID_HANDLE;
	CK_MECHANISM_TYPE mech = 0;
	const char *test = NULL;
	int r;

	if ((made = calloc(1, sizeof(*made))) == NULL)
		return KEYD_ERR_NOMEM;
	/* Everything that can be checked before the token is changed. */
	if ((r = check_free(p, b, err, errlen)) != KEYD_OK ||
	    (r = unwrap_begin(p, b, bmk, bmk_len, &mech, &hbmk, err,
	    errlen)) != KEYD_OK)
		goto out;
	for (size_t i = 0; i < b->n_keys; i++) {
		if ((r = unwrap_check(p, mech, hbmk, &b->keys[i], 1, made,
		    &test, err, errlen)) != KEYD_OK)
			goto out;
		report_key(report, "restored", &b->keys[i], test);
	}
	r = KEYD_OK;
out:
	backup_token_destroy(p, hbmk);
	if (r != KEYD_OK)
		while (made->n > 0)
			backup_token_destroy(p, made->h[--made->n]);
	free(made);
	return r;
}

/* ---- drill -------------------------------------------------------------- */

int
backup_token_drill(struct p11 *p, const struct bundle *b,
    const uint8_t *bmk, size_t bmk_len, FILE *report,
    struct backup_drill_key *res, char *err, size_t errlen)
{
	struct created *made = NULL;
	CK_OBJECT_HANDLE hbmk = CK_INVALID_HANDLE;
	CK_MECHANISM_TYPE mech = 0;
	const char *test = NULL;
	size_t failed = 0, first = 0;
	int r;

	for (size_t i = 0; i < b->n_keys; i++) {
		res[i].state = BACKUP_DRILL_NOT_RUN;
		res[i].detail[0] = '\0';
	}
	if ((made = calloc(1, sizeof(*made))) == NULL)
		return KEYD_ERR_NOMEM;
	if ((r = unwrap_begin(p, b, bmk, bmk_len, &mech, &hbmk, err,
	    errlen)) != KEYD_OK)
		goto out;
	/* Each key on its own: one key's failure must not hide whether the
	 * others restore, and its session objects go before the next. */
	for (size_t i = 0; i < b->n_keys; i++) {
		const struct bundle_key *k = &b->keys[i];

		r = unwrap_check(p, mech, hbmk, k, 0, made, &test,
		    res[i].detail, sizeof(res[i].detail));
		while (made->n > 0)
			backup_token_destroy(p, made->h[--made->n]);
		if (r == KEYD_OK) {
			res[i].state = BACKUP_DRILL_PASS;
			snprintf(res[i].detail, sizeof(res[i].detail), "%s",
			    test);
			report_key(report, "pass", k, test);
		} else {
			res[i].state = BACKUP_DRILL_FAIL;
			if (failed++ == 0)
				first = i;
			fprintf(report, "FAIL key '%s': %s\n", k->label,
			    res[i].detail);
		}
	}
	r = KEYD_OK;
	if (failed > 0) {
		errf(err, errlen, "%zu of %zu keys failed, the first key '%s': "
		    "%s", failed, b->n_keys, b->keys[first].label,
		    res[first].detail);
		r = KEYD_ERR_BUNDLE;
	}
out:
	backup_token_destroy(p, hbmk);
	while (made->n > 0)
		backup_token_destroy(p, made->h[--made->n]);
	free(made);
	return r;
}

/* ---- rekey -------------------------------------------------------------- */

int
backup_token_find(struct p11 *p, const struct bundle_key *k,
    CK_OBJECT_HANDLE *h, char *err, size_t errlen)
{
	CK_OBJECT_CLASS cls = k->cls;
	CK_ATTRIBUTE t[3] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)(uintptr_t)k->label, k->label_len },
		{ CKA_ID, (void *)(uintptr_t)k->id, k->id_len },
	};
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES];
	char idhex[2 * BUNDLE_MAX_ID + 1];
	CK_ULONG n = 0;
	CK_RV rv;

	*h = CK_INVALID_HANDLE;
	rv = p11_find(p11_fn(p), p11_session(p), t, 3, P11_ANY_CLASS, 0, objs,
	    P11_MAX_MATCHES, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s': searching token '%s' failed: %s",
		    k->label, p11_token_label(p), token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if (n != 1) {
		errf(err, errlen, "key '%s' id %s is %s token '%s'", k->label,
		    k->id_len ? bundle_hex(k->id, k->id_len, idhex) : "(none)",
		    n == 0 ? "no longer on" : "more than once on",
		    p11_token_label(p));
		return KEYD_ERR_NOT_FOUND;
	}
	*h = objs[0];
	return KEYD_OK;
}

int
backup_token_match(struct p11 *p, const struct bundle_key *old,
    CK_OBJECT_HANDLE *h, struct bundle_key *now, char *err, size_t errlen)
{
	char what[BUNDLE_MAX_LABEL + 2 * BUNDLE_MAX_ID + 64];
	char idhex[2 * BUNDLE_MAX_ID + 1], was[3 * BUNDLE_HASH_LEN];
	char is[3 * BUNDLE_HASH_LEN];
	size_t n;
	int r;

	if ((r = backup_token_find(p, old, h, err, errlen)) != KEYD_OK) {
		n = strlen(err);
		if (r == KEYD_ERR_NOT_FOUND && n < errlen)
			snprintf(err + n, errlen - n, "; rekey takes every key "
			    "of the old bundle from the token that holds them");
		return r;
	}
	snprintf(what, sizeof(what), "key '%s' id %s", old->label,
	    old->id_len ? bundle_hex(old->id, old->id_len, idhex) : "(none)");
	if ((r = backup_token_describe(p, *h, what, now, err, errlen)) !=
	    KEYD_OK)
		goto out;
	if (now->key_type != old->key_type || now->bits != old->bits ||
	    now->fp_kind != old->fp_kind || now->fp_len != old->fp_len ||
	    memcmp(now->fp, old->fp, old->fp_len) != 0) {
		errf(err, errlen, "%s on token '%s' no longer matches its "
		    "fingerprint in the old bundle (%s %s there, %s here): it "
		    "is another key under the same label and id", what,
		    p11_token_label(p), old->fp_kind == BUNDLE_FP_KCV ?
		    "check value" : "SPKI SHA-256",
		    backup_share_grouped_hex(old->fp, old->fp_len, was),
		    backup_share_grouped_hex(now->fp, now->fp_len, is));
		r = KEYD_ERR_BUNDLE;
		goto out;
	}
	r = KEYD_OK;
out:
	if (r != KEYD_OK)
		*h = CK_INVALID_HANDLE;
	return r;
}
