/* kp11obj.c: keyd-pkcs11.so's objects and their attributes. */
#include "kp11obj.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "keyd.h"
#include "kp11mech.h"

/* The most mechanisms CKA_ALLOWED_MECHANISMS lists for one key. */
#define KP11OBJ_MAX_MECHS 16u
/* DER of the OID 1.3.101.112, id-Ed25519 (RFC 8410), as PKCS#11 3.0
 * allows for CKK_EC_EDWARDS's CKA_EC_PARAMS. */
static const uint8_t ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

static const CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

static int64_t
now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
blob_free(struct kp11obj_blob *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static int
blob_set(struct kp11obj_blob *b, const void *p, size_t len)
{
	blob_free(b);
	if (len == 0)
		return KEYD_OK;
	if ((b->p = malloc(len)) == NULL)
		return KEYD_ERR_NOMEM;
	memcpy(b->p, p, len);
	b->len = len;
	return KEYD_OK;
}

/* Takes over OpenSSL's i2d output (n bytes at der, or n <= 0: failed). */
static int
blob_take_der(struct kp11obj_blob *b, unsigned char *der, int n)
{
	int r = KEYD_ERR_CRYPTO;

	if (n > 0 && der != NULL)
		r = blob_set(b, der, (size_t)n);
	OPENSSL_free(der);
	return r;
}

static int
blob_octet_string(struct kp11obj_blob *b, const uint8_t *p, size_t len)
{
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	int n = -1;

	if (os != NULL && len <= INT_MAX &&
	    ASN1_OCTET_STRING_set(os, p, (int)len) == 1)
		n = i2d_ASN1_OCTET_STRING(os, &der);
	ASN1_OCTET_STRING_free(os);
	return blob_take_der(b, der, n);
}

static void
key_free(struct kp11obj_key *k)
{
	free(k->name);
	blob_free(&k->id);
	blob_free(&k->spki);
	blob_free(&k->modulus);
	blob_free(&k->exponent);
	blob_free(&k->ec_params);
	blob_free(&k->ec_point);
	blob_free(&k->cert);
	blob_free(&k->subject);
	blob_free(&k->issuer);
	blob_free(&k->serial);
}

void
kp11obj_table_free(struct kp11obj_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		key_free(&t->keys[i]);
	free(t->keys);
	free(t);
}

static enum kp11_keytype
keytype_of(const char *s)
{
	if (s == NULL)
		return KP11_KEY_NONE;
	if (!strcmp(s, "ec-p256"))
		return KP11_KEY_EC_P256;
	if (!strcmp(s, "ec-p384"))
		return KP11_KEY_EC_P384;
	if (!strcmp(s, "rsa"))
		return KP11_KEY_RSA;
	if (!strcmp(s, "ed25519"))
		return KP11_KEY_ED25519;
	return KP11_KEY_NONE;
}

/* An RSAPublicKey (RFC 8017 A.1.1), SEQUENCE { n INTEGER, e INTEGER },
 * read with the generic ASN.1 parser: OpenSSL 3 deprecates the RSA
 * structure's functions. */
static int
parse_rsa(struct kp11obj_key *k, const uint8_t *der, int len)
{
	STACK_OF(ASN1_TYPE) *seq = NULL;
	const uint8_t *p = der;
	const ASN1_TYPE *n, *e;
	BIGNUM *bn = NULL;
	uint8_t *buf = NULL;
	struct kp11obj_blob *dst;
	int i, nb, r = KEYD_ERR_PROTOCOL;

	if ((seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len)) == NULL ||
	    p != der + len || sk_ASN1_TYPE_num(seq) != 2)
		goto out;
	n = sk_ASN1_TYPE_value(seq, 0);
	e = sk_ASN1_TYPE_value(seq, 1);
	if (n->type != V_ASN1_INTEGER || e->type != V_ASN1_INTEGER)
		goto out;
	for (i = 0; i < 2; i++) {
		dst = i == 0 ? &k->modulus : &k->exponent;
		BN_free(bn);
		if ((bn = ASN1_INTEGER_to_BN((i == 0 ? n : e)->value.integer,
		    NULL)) == NULL || BN_is_negative(bn) || BN_is_zero(bn))
			goto out;
		nb = BN_num_bytes(bn);
		if ((buf = malloc((size_t)nb)) == NULL) {
			r = KEYD_ERR_NOMEM;
			goto out;
		}
		if (BN_bn2bin(bn, buf) != nb)
			goto out;
		blob_free(dst);
		dst->p = buf;
		dst->len = (size_t)nb;
		buf = NULL;
		if (i == 0)
			k->modulus_bits = (CK_ULONG)BN_num_bits(bn);
	}
	k->out_len = k->modulus.len;
	r = KEYD_OK;
out:
	free(buf);
	BN_free(bn);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return r;
}

/*
 * The public attributes of k from its SubjectPublicKeyInfo, which must be
 * of the type keyd listed. Read from the SPKI's fields rather than from an
 * EVP_PKEY: inside an application that loaded libp11's engine, OpenSSL
 * makes legacy EC keys, whose parameters EVP_PKEY_get_params cannot read.
 */
static int
parse_spki(struct kp11obj_key *k, char *err, size_t errlen)
{
	const uint8_t *p = k->spki.p, *pub = NULL;
	X509_PUBKEY *xpk = NULL;
	ASN1_OBJECT *alg = NULL;
	const void *pval = NULL;
	const X509_ALGOR *algor = NULL;
	const ASN1_OBJECT *curve;
	unsigned char *der = NULL;
	int publen = 0, ptype = 0, n, want, r = KEYD_ERR_PROTOCOL;
	size_t fl;

	if (k->spki.len > LONG_MAX ||
	    (xpk = d2i_X509_PUBKEY(NULL, &p, (long)k->spki.len)) == NULL ||
	    p != k->spki.p + k->spki.len ||
	    X509_PUBKEY_get0_param(&alg, &pub, &publen, (X509_ALGOR **)&algor,
	    xpk) != 1 || pub == NULL || publen <= 0)
		goto bad;
	switch (k->type) {
	case KP11_KEY_RSA:
		if (OBJ_obj2nid(alg) != NID_rsaEncryption ||
		    (r = parse_rsa(k, pub, publen)) != KEYD_OK)
			goto bad;
		break;
	case KP11_KEY_EC_P256:
	case KP11_KEY_EC_P384:
		want = k->type == KP11_KEY_EC_P256 ? NID_X9_62_prime256v1 :
		    NID_secp384r1;
		fl = k->type == KP11_KEY_EC_P256 ? 32 : 48;
		X509_ALGOR_get0(NULL, &ptype, &pval, algor);
		if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey ||
		    ptype != V_ASN1_OBJECT || pval == NULL ||
		    OBJ_obj2nid(pval) != want)
			goto bad;
		curve = pval;
		n = i2d_ASN1_OBJECT(curve, &der);
		if (blob_take_der(&k->ec_params, der, n) != KEYD_OK)
			goto bad;
		/* PKCS#11 wants the point uncompressed, in a DER OCTET
		 * STRING (2.40 section 2.3.3). */
		if ((size_t)publen != 1 + 2 * fl || pub[0] != 0x04 ||
		    blob_octet_string(&k->ec_point, pub, (size_t)publen) !=
		    KEYD_OK)
			goto bad;
		k->out_len = 2 * fl;
		break;
	case KP11_KEY_ED25519:
		if (OBJ_obj2nid(alg) != NID_ED25519 || publen != 32 ||
		    blob_set(&k->ec_params, ed25519_oid,
		    sizeof(ed25519_oid)) != KEYD_OK ||
		    blob_octet_string(&k->ec_point, pub, (size_t)publen) !=
		    KEYD_OK)
			goto bad;
		k->out_len = 64;
		break;
	default:
		goto bad;
	}
	X509_PUBKEY_free(xpk);
	return KEYD_OK;
bad:
	X509_PUBKEY_free(xpk);
	snprintf(err, errlen, "keyd's public key for '%.64s' does not parse as "
	    "the key type it listed", k->name);
	return r == KEYD_ERR_NOMEM ? r : KEYD_ERR_PROTOCOL;
}

/* The certificate's attributes; a certificate that is not for the key is
 * not shown (it would only make TLS fail later, more obscurely). */
static int
parse_cert(struct kp11obj_key *k)
{
	const uint8_t *p = k->cert.p;
	X509 *x = NULL;
	unsigned char *der = NULL;
	int n, r = KEYD_ERR_PROTOCOL;

	if (k->cert.len > LONG_MAX ||
	    (x = d2i_X509(NULL, &p, (long)k->cert.len)) == NULL ||
	    p != k->cert.p + k->cert.len)
		goto out;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n <= 0 || (size_t)n != k->spki.len ||
	    memcmp(der, k->spki.p, k->spki.len) != 0)
		goto out;
	OPENSSL_free(der);
	der = NULL;
	n = i2d_X509_NAME(X509_get_subject_name(x), &der);
	r = blob_take_der(&k->subject, der, n);
	der = NULL;
	if (r != KEYD_OK)
		goto out;
	n = i2d_X509_NAME(X509_get_issuer_name(x), &der);
	r = blob_take_der(&k->issuer, der, n);
	der = NULL;
	if (r != KEYD_OK)
		goto out;
	n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);
	r = blob_take_der(&k->serial, der, n);
	der = NULL;
out:
	OPENSSL_free(der);
	X509_free(x);
	if (r != KEYD_OK) {
		blob_free(&k->cert);
		blob_free(&k->subject);
		blob_free(&k->issuer);
		blob_free(&k->serial);
	}
	return r;
}

/* Fills k (named, typed) from keyd: public key, certificate. */
static int
fetch_key(struct keyd_client *c, struct kp11obj_key *k, int has_cert,
    char *err, size_t errlen)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	if ((r = keyd_pubkey(c, k->name, &der, &len)) != KEYD_OK) {
		snprintf(err, errlen, "public key of '%.64s': %s", k->name,
		    keyd_errmsg(c));
		goto out;
	}
	k->spki.p = der;
	k->spki.len = len;
	der = NULL;
	if ((r = parse_spki(k, err, errlen)) != KEYD_OK)
		goto out;
	if (has_cert) {
		r = keyd_certificate(c, k->name, &der, &len);
		if (r == KEYD_ERR_NOT_FOUND) {
			r = KEYD_OK; /* gone since the list */
			goto out;
		}
		if (r != KEYD_OK) {
			snprintf(err, errlen, "certificate of '%.64s': %s",
			    k->name, keyd_errmsg(c));
			goto out;
		}
		k->cert.p = der;
		k->cert.len = len;
		der = NULL;
		/* A certificate that does not parse or fit is left out. */
		(void)parse_cert(k);
	}
	r = KEYD_OK;
out:
	keyd_free(der);
	return r;
}

int
kp11obj_fetch(struct keyd_client *c, int hide_ed25519,
    struct kp11obj_table **out, char *err, size_t errlen)
{
	struct keyd_keylist *l = NULL;
	struct kp11obj_table *t = NULL;
	struct kp11obj_key *k;
	const uint8_t *id;
	size_t i, n, idlen;
	enum kp11_keytype kt;
	unsigned ops;
	int r;

	*out = NULL;
	if ((r = keyd_list(c, &l)) != KEYD_OK) {
		snprintf(err, errlen, "%s", keyd_errmsg(c));
		goto out;
	}
	n = keyd_keylist_count(l);
	if (n > KP11OBJ_MAX_KEYS) {
		snprintf(err, errlen, "keyd lists %zu keys; this module shows "
		    "at most %u", n, KP11OBJ_MAX_KEYS);
		r = KEYD_ERR_LIMIT;
		goto out;
	}
	r = KEYD_ERR_NOMEM;
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (n > 0 && (t->keys = calloc(n, sizeof(*t->keys))) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		kt = keytype_of(keyd_keylist_type(l, i));
		ops = keyd_keylist_ops(l, i) & (KEYD_OP_SIGN | KEYD_OP_DECRYPT);
		/* AES keys (SRTP) and keys this client may not sign or
		 * decrypt with are not PKCS#11 objects here; Ed25519 keys
		 * are hidden on request (libp11's engine sees no keys at
		 * all on a token with one). */
		if (kt == KP11_KEY_NONE || ops == 0 ||
		    (kt == KP11_KEY_ED25519 && hide_ed25519))
			continue;
		k = &t->keys[t->n];
		if ((k->name = strdup(keyd_keylist_name(l, i))) == NULL) {
			snprintf(err, errlen, "out of memory");
			r = KEYD_ERR_NOMEM;
			goto out;
		}
		t->n++;
		k->type = kt;
		k->ops = ops;
		for (int a = KEYD_RSA_OAEP_SHA1; a <= KEYD_RSA_PKCS1; a++)
			if (keyd_keylist_decrypts(l, i, a))
				k->decrypts |= KP11OBJ_DECRYPTS(a);
		id = keyd_keylist_id(l, i, &idlen);
		if (id != NULL && (r = blob_set(&k->id, id, idlen)) != KEYD_OK) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if ((r = fetch_key(c, k, keyd_keylist_has_cert(l, i), err,
		    errlen)) != KEYD_OK)
			goto out;
	}
	t->loaded_ms = now_ms();
	t->generation = keyd_config_generation(c);
	*out = t;
	t = NULL;
	r = KEYD_OK;
out:
	kp11obj_table_free(t);
	keyd_keylist_free(l);
	return r;
}

int
kp11obj_assign(struct kp11obj_registry *reg, struct kp11obj_table *t)
{
	uint8_t fp[KP11OBJ_FP_LEN];
	size_t i, j;

	for (i = 0; i < t->n; i++) {
		if (EVP_Digest(t->keys[i].spki.p, t->keys[i].spki.len, fp, NULL,
		    EVP_sha256(), NULL) != 1)
			return KEYD_ERR_CRYPTO;
		for (j = 0; j < reg->n; j++)
			if (!strcmp(reg->names[j], t->keys[i].name) &&
			    !memcmp(reg->fps[j], fp, sizeof(fp)))
				break;
		if (j == reg->n) {
			char **names;
			uint8_t (*fps)[KP11OBJ_FP_LEN];

			if (reg->n >= KP11OBJ_MAX_NAMES)
				return KEYD_ERR_LIMIT;
			names = realloc(reg->names,
			    (reg->n + 1) * sizeof(*names));
			if (names == NULL)
				return KEYD_ERR_NOMEM;
			reg->names = names;
			fps = realloc(reg->fps, (reg->n + 1) * sizeof(*fps));
			if (fps == NULL)
				return KEYD_ERR_NOMEM;
			reg->fps = fps;
			if ((names[reg->n] = strdup(t->keys[i].name)) == NULL)
				return KEYD_ERR_NOMEM;
			memcpy(fps[reg->n], fp, sizeof(fp));
			reg->n++;
		}
		t->keys[i].slot = j;
		memcpy(t->keys[i].fp, fp, sizeof(fp));
	}
	return KEYD_OK;
}

void
kp11obj_registry_free(struct kp11obj_registry *reg)
{
	size_t i;

	for (i = 0; i < reg->n; i++)
		free(reg->names[i]);
	free(reg->names);
	free(reg->fps);
	reg->names = NULL;
	reg->fps = NULL;
	reg->n = 0;
}

CK_OBJECT_HANDLE
kp11obj_handle(const struct kp11obj_key *k, enum kp11obj_kind kind)
{
	return ((CK_OBJECT_HANDLE)k->slot + 1) << 2 | (CK_OBJECT_HANDLE)kind;
}

const struct kp11obj_key *
kp11obj_lookup(const struct kp11obj_table *t, CK_OBJECT_HANDLE h,
    enum kp11obj_kind *kind)
{
	size_t i, slot;
	unsigned kd = (unsigned)(h & 3u);

	if (t == NULL || kd == 0 || (h >> 2) == 0)
		return NULL;
	slot = (size_t)(h >> 2) - 1;
	for (i = 0; i < t->n; i++) {
		if (t->keys[i].slot != slot)
			continue;
		if (kd == KP11OBJ_CERT && t->keys[i].cert.p == NULL)
			return NULL;
		*kind = (enum kp11obj_kind)kd;
		return &t->keys[i];
	}
	return NULL;
}

/* One attribute's value, with room for the small ones. */
struct attr_val {
	const void *p;
	CK_ULONG len;
	CK_ULONG ul;
	CK_MECHANISM_TYPE mechs[KP11OBJ_MAX_MECHS];
};

enum { ATTR_OK, ATTR_SENSITIVE, ATTR_INVALID };

static int
val_bool(struct attr_val *v, int b)
{
	v->p = b ? &ck_true : &ck_false;
	v->len = sizeof(CK_BBOOL);
	return ATTR_OK;
}

static int
val_ulong(struct attr_val *v, CK_ULONG ul)
{
	v->ul = ul;
	v->p = &v->ul;
	v->len = sizeof(CK_ULONG);
	return ATTR_OK;
}

static int
val_blob(struct attr_val *v, const struct kp11obj_blob *b)
{
	v->p = b->p;
	v->len = b->len;
	return ATTR_OK;
}

static CK_KEY_TYPE
ck_key_type(enum kp11_keytype t)
{
	switch (t) {
	case KP11_KEY_RSA: return CKK_RSA;
	case KP11_KEY_ED25519: return CKK_EC_EDWARDS;
	default: return CKK_EC;
	}
}

static int
val_mechs(struct attr_val *v, const struct kp11obj_key *k,
    enum kp11obj_kind kind)
{
	const struct kp11mech_info *mi;
	CK_FLAGS want = 0;
	size_t i, n = 0;

	if (kind == KP11OBJ_PUBLIC)
		want = CKF_VERIFY;
	else {
		if (k->ops & KEYD_OP_SIGN)
			want |= CKF_SIGN;
		if (k->ops & KEYD_OP_DECRYPT)
			want |= CKF_DECRYPT;
	}
	for (i = 0; i < kp11mech_count() && n < KP11OBJ_MAX_MECHS; i++) {
		mi = kp11mech_at(i);
		if (kp11mech_fits(mi, k->type) && (mi->flags & want) != 0)
			v->mechs[n++] = mi->type;
	}
	v->p = v->mechs;
	v->len = (CK_ULONG)(n * sizeof(v->mechs[0]));
	return ATTR_OK;
}

static int
key_attr(const struct kp11obj_key *k, enum kp11obj_kind kind,
    CK_ATTRIBUTE_TYPE type, struct attr_val *v)
{
	int priv = kind == KP11OBJ_PRIVATE, rsa = k->type == KP11_KEY_RSA;

	switch (type) {
	case CKA_KEY_TYPE: return val_ulong(v, ck_key_type(k->type));
	case CKA_DERIVE: return val_bool(v, 0);
	/* keyd does not say how the key was made or whether it was ever
	 * extractable (keyd-backup's keys are, for backup): claim nothing. */
	case CKA_LOCAL: return val_bool(v, 0);
	case CKA_START_DATE:
	case CKA_END_DATE:
		v->p = NULL;
		v->len = 0;
		return ATTR_OK;
	case CKA_SUBJECT: return val_blob(v, &k->subject);
	case CKA_PUBLIC_KEY_INFO: return val_blob(v, &k->spki);
	case CKA_ALLOWED_MECHANISMS: return val_mechs(v, k, kind);
	case CKA_MODULUS: return rsa ? val_blob(v, &k->modulus) : ATTR_INVALID;
	case CKA_PUBLIC_EXPONENT:
		return rsa ? val_blob(v, &k->exponent) : ATTR_INVALID;
	case CKA_MODULUS_BITS:
		return rsa && !priv ? val_ulong(v, k->modulus_bits) :
		    ATTR_INVALID;
	case CKA_EC_PARAMS:
		return !rsa ? val_blob(v, &k->ec_params) : ATTR_INVALID;
	case CKA_EC_POINT:
		return !rsa ? val_blob(v, &k->ec_point) : ATTR_INVALID;
	default:
		break;
	}
	if (priv) {
		switch (type) {
		case CKA_SENSITIVE: return val_bool(v, 1);
		case CKA_EXTRACTABLE: return val_bool(v, 0);
		case CKA_SIGN: return val_bool(v, (k->ops & KEYD_OP_SIGN) != 0);
		case CKA_DECRYPT:
			return val_bool(v, (k->ops & KEYD_OP_DECRYPT) != 0);
		case CKA_SIGN_RECOVER:
		case CKA_UNWRAP:
		case CKA_ALWAYS_AUTHENTICATE:
		case CKA_ALWAYS_SENSITIVE:
		case CKA_NEVER_EXTRACTABLE:
		case CKA_WRAP_WITH_TRUSTED:
			return val_bool(v, 0);
		case CKA_VALUE:
		case CKA_PRIVATE_EXPONENT:
		case CKA_PRIME_1:
		case CKA_PRIME_2:
		case CKA_EXPONENT_1:
		case CKA_EXPONENT_2:
		case CKA_COEFFICIENT:
			return ATTR_SENSITIVE;
		default:
			return ATTR_INVALID;
		}
	}
	switch (type) {
	case CKA_VERIFY: return val_bool(v, 1);
	case CKA_ENCRYPT:
	case CKA_VERIFY_RECOVER:
	case CKA_WRAP:
	case CKA_TRUSTED:
		return val_bool(v, 0);
	default:
		return ATTR_INVALID;
	}
}

static int
cert_attr(const struct kp11obj_key *k, CK_ATTRIBUTE_TYPE type,
    struct attr_val *v)
{
	switch (type) {
	case CKA_CERTIFICATE_TYPE: return val_ulong(v, CKC_X_509);
	case CKA_TRUSTED: return val_bool(v, 0);
	case CKA_CERTIFICATE_CATEGORY: return val_ulong(v, 0);
	case CKA_SUBJECT: return val_blob(v, &k->subject);
	case CKA_ISSUER: return val_blob(v, &k->issuer);
	case CKA_SERIAL_NUMBER: return val_blob(v, &k->serial);
	case CKA_VALUE: return val_blob(v, &k->cert);
	default: return ATTR_INVALID;
	}
}

static int
attr_get(const struct kp11obj_key *k, enum kp11obj_kind kind,
    CK_ATTRIBUTE_TYPE type, struct attr_val *v)
{
	v->p = NULL;
	v->len = 0;
	switch (type) {
	case CKA_CLASS:
		return val_ulong(v, kind == KP11OBJ_PRIVATE ? CKO_PRIVATE_KEY :
		    kind == KP11OBJ_PUBLIC ? CKO_PUBLIC_KEY : CKO_CERTIFICATE);
	case CKA_TOKEN: return val_bool(v, 1);
	case CKA_PRIVATE: return val_bool(v, kind == KP11OBJ_PRIVATE);
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
		return val_bool(v, 0);
	case CKA_LABEL:
		v->p = k->name;
		v->len = (CK_ULONG)strlen(k->name);
		return ATTR_OK;
	case CKA_ID: return val_blob(v, &k->id);
	default:
		break;
	}
	return kind == KP11OBJ_CERT ? cert_attr(k, type, v) :
	    key_attr(k, kind, type, v);
}

CK_RV
kp11obj_get_attrs(const struct kp11obj_key *k, enum kp11obj_kind kind,
    CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	struct attr_val v;
	CK_RV rv = CKR_OK;
	CK_ULONG i;

	/* Every attribute is answered; the result is the last problem
	 * (PKCS#11 2.40 section 5.7, C_GetAttributeValue). */
	for (i = 0; i < n; i++) {
		switch (attr_get(k, kind, tmpl[i].type, &v)) {
		case ATTR_SENSITIVE:
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_SENSITIVE;
			continue;
		case ATTR_INVALID:
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
			continue;
		default:
			break;
		}
		if (tmpl[i].pValue == NULL) {
			tmpl[i].ulValueLen = v.len;
		} else if (tmpl[i].ulValueLen < v.len) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			if (v.len > 0)
				memcpy(tmpl[i].pValue, v.p, v.len);
			tmpl[i].ulValueLen = v.len;
		}
	}
	return rv;
}

int
kp11obj_match(const struct kp11obj_key *k, enum kp11obj_kind kind,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	struct attr_val v;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (attr_get(k, kind, tmpl[i].type, &v) != ATTR_OK ||
		    v.len != tmpl[i].ulValueLen)
			return 0;
		if (v.len > 0 && (tmpl[i].pValue == NULL ||
		    memcmp(v.p, tmpl[i].pValue, v.len) != 0))
			return 0;
	}
	return 1;
}
