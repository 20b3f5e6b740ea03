/* bundle.c: the backup bundle's one reader and writer (docs/backup.md). */
#include "bundle.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbuf.h"
#include "keyd_err.h"
#include "secmem.h"

#define BUNDLE_MAGIC "KEYDBKUP"
#define BUNDLE_MAGIC_LEN 8
/* HKDF info of the MAC key, and the domain of share commitments. Both
 * name the format version, so that a later format never shares keys or
 * commitments with this one. */
#define BUNDLE_MAC_INFO "keyd-backup v1 bundle MAC key"
#define BUNDLE_COMMIT_DOMAIN "keyd-backup v1 share commitment"
/* RFC 5649 output: at least two 64-bit blocks, in whole blocks. */
#define BUNDLE_MIN_WRAPPED 16
#define BUNDLE_WRAP_BLOCK 8

#define WUR BUNDLE_WUR

const struct bundle_flag bundle_flags[] = {
	{ BUNDLE_F_SENSITIVE, CKA_SENSITIVE, "sensitive" },
	{ BUNDLE_F_EXTRACTABLE, CKA_EXTRACTABLE, "extractable" },
	{ BUNDLE_F_WRAP_WITH_TRUSTED, CKA_WRAP_WITH_TRUSTED,
	  "wrap-with-trusted" },
	{ BUNDLE_F_PRIVATE, CKA_PRIVATE, "private" },
	{ BUNDLE_F_SIGN, CKA_SIGN, "sign" },
	{ BUNDLE_F_VERIFY, CKA_VERIFY, "verify" },
	{ BUNDLE_F_ENCRYPT, CKA_ENCRYPT, "encrypt" },
	{ BUNDLE_F_DECRYPT, CKA_DECRYPT, "decrypt" },
	{ BUNDLE_F_WRAP, CKA_WRAP, "wrap" },
	{ BUNDLE_F_UNWRAP, CKA_UNWRAP, "unwrap" },
	{ BUNDLE_F_DERIVE, CKA_DERIVE, "derive" },
	{ BUNDLE_F_SIGN_RECOVER, CKA_SIGN_RECOVER, "sign-recover" },
	{ BUNDLE_F_VERIFY_RECOVER, CKA_VERIFY_RECOVER, "verify-recover" },
	{ BUNDLE_F_ALWAYS_AUTHENTICATE, CKA_ALWAYS_AUTHENTICATE,
	  "always-authenticate" },
	{ BUNDLE_F_MODIFIABLE, CKA_MODIFIABLE, "modifiable" },
	{ 0, 0, NULL },
};

struct bundle *
bundle_new(size_t n_keys)
{
	struct bundle *b;

	if (n_keys > BUNDLE_MAX_KEYS || (b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if (n_keys > 0 && (b->keys = calloc(n_keys, sizeof(*b->keys))) ==
	    NULL) {
		free(b);
		return NULL;
	}
	b->n_keys = n_keys;
	b->version = BUNDLE_VERSION;
	return b;
}

void
bundle_free(struct bundle *b)
{
	if (b == NULL)
		return;
	if (b->keys != NULL) {
		/* Not secret, but wrapped keys need not linger either. */
		secmem_wipe(b->keys, b->n_keys * sizeof(*b->keys));
		free(b->keys);
	}
	free(b->raw);
	free(b);
}

char *
bundle_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
	return out;
}

const char *
bundle_key_type_name(const struct bundle_key *k, char *buf, size_t cap)
{
	switch (k->key_type) {
	case CKK_EC:
		snprintf(buf, cap, "ec:p%u", (unsigned)k->bits);
		break;
	case CKK_RSA:
		snprintf(buf, cap, "rsa:%u", (unsigned)k->bits);
		break;
	case CKK_EC_EDWARDS:
		snprintf(buf, cap, "ed25519");
		break;
	case CKK_AES:
		snprintf(buf, cap, "aes:%u", (unsigned)k->bits);
		break;
	default:
		snprintf(buf, cap, "type 0x%lx", (unsigned long)k->key_type);
		break;
	}
	return buf;
}

static WUR int
sha256(const void *p, size_t n, uint8_t out[BUNDLE_HASH_LEN])
{
	unsigned len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != BUNDLE_HASH_LEN)
		return KEYD_ERR_CRYPTO;
	return KEYD_OK;
}

int
bundle_commit(const uint8_t set_id[BUNDLE_SET_ID_LEN],
    const struct slip39_share *s, uint8_t out[BUNDLE_HASH_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t fields[10];
	unsigned len = 0;
	int r = KEYD_ERR_CRYPTO;

	if (s->value_len > SLIP39_MAX_SECRET_LEN)
		return KEYD_ERR_INVALID_ARG;
	fields[0] = (uint8_t)(s->id >> 8);
	fields[1] = (uint8_t)s->id;
	fields[2] = s->ext;
	fields[3] = s->iteration_exp;
	fields[4] = s->group_index;
	fields[5] = s->group_threshold;
	fields[6] = s->group_count;
	fields[7] = s->member_index;
	fields[8] = s->member_threshold;
	fields[9] = (uint8_t)s->value_len;
	/* The domain string is hashed with its NUL, so that it ends where
	 * the set id begins. */
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, BUNDLE_COMMIT_DOMAIN,
	    sizeof(BUNDLE_COMMIT_DOMAIN)) != 1 ||
	    EVP_DigestUpdate(ctx, set_id, BUNDLE_SET_ID_LEN) != 1 ||
	    EVP_DigestUpdate(ctx, fields, sizeof(fields)) != 1 ||
	    EVP_DigestUpdate(ctx, s->value, s->value_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1 ||
	    len != BUNDLE_HASH_LEN)
		goto out;
	r = KEYD_OK;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* The MAC key: HKDF-SHA256 (RFC 5869) with the BMK as input key, the set
 * id as salt and the format's info string. mackey is the caller's
 * (locked). */
static WUR int
mac_key(const uint8_t *bmk, size_t bmk_len,
    const uint8_t set_id[BUNDLE_SET_ID_LEN], uint8_t *mackey)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5];
	int r = KEYD_ERR_CRYPTO;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (ctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)(uintptr_t)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)(uintptr_t)bmk, bmk_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)(uintptr_t)set_id, BUNDLE_SET_ID_LEN);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)(uintptr_t)BUNDLE_MAC_INFO, sizeof(BUNDLE_MAC_INFO) - 1);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, mackey, BUNDLE_HASH_LEN, params) != 1)
		goto out;
	r = KEYD_OK;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}

/* HMAC-SHA256 of data[0..len) under the key derived from bmk. */
static WUR int
compute_mac(const uint8_t *bmk, size_t bmk_len,
    const uint8_t set_id[BUNDLE_SET_ID_LEN], const uint8_t *data, size_t len,
    uint8_t out[BUNDLE_HASH_LEN])
{
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	uint8_t *key = NULL;
	size_t outlen = 0;
	int r = KEYD_ERR_CRYPTO;

	if ((key = secmem_alloc(BUNDLE_HASH_LEN)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	if ((r = mac_key(bmk, bmk_len, set_id, key)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_CRYPTO;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)(uintptr_t)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(ctx, key, BUNDLE_HASH_LEN, params) != 1 ||
	    EVP_MAC_update(ctx, data, len) != 1 ||
	    EVP_MAC_final(ctx, out, &outlen, BUNDLE_HASH_LEN) != 1 ||
	    outlen != BUNDLE_HASH_LEN)
		goto out;
	r = KEYD_OK;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	secmem_free(key, BUNDLE_HASH_LEN);
	return r;
}

/* ---- writing ------------------------------------------------------------ */

static WUR int
put_bytes16(struct kbuf *w, const uint8_t *p, size_t n)
{
	int r;

	if (n > UINT16_MAX)
		return KEYD_ERR_INVALID_ARG;
	if ((r = kbuf_put_u16(w, (uint16_t)n)) != KEYD_OK)
		return r;
	return kbuf_put(w, p, n);
}

static WUR int
put_key(struct kbuf *w, const struct bundle_key *k)
{
	int r;

	if (k->label_len > BUNDLE_MAX_LABEL || k->id_len > BUNDLE_MAX_ID ||
	    k->pub_a_len > BUNDLE_MAX_PUB || k->pub_b_len > BUNDLE_MAX_PUB ||
	    k->spki_len > BUNDLE_MAX_SPKI || k->fp_len > BUNDLE_HASH_LEN ||
	    k->wrapped_len > BUNDLE_MAX_WRAPPED)
		return KEYD_ERR_INVALID_ARG;
	if ((r = kbuf_put_u32(w, k->cls)) != KEYD_OK ||
	    (r = kbuf_put_u32(w, k->key_type)) != KEYD_OK ||
	    (r = kbuf_put_u32(w, k->bits)) != KEYD_OK ||
	    (r = put_bytes16(w, (const uint8_t *)k->label, k->label_len)) !=
	    KEYD_OK ||
	    (r = put_bytes16(w, k->id, k->id_len)) != KEYD_OK ||
	    (r = kbuf_put_u32(w, k->flags)) != KEYD_OK ||
	    (r = kbuf_put_u32(w, k->pub_flags)) != KEYD_OK ||
	    (r = put_bytes16(w, k->pub_a, k->pub_a_len)) != KEYD_OK ||
	    (r = put_bytes16(w, k->pub_b, k->pub_b_len)) != KEYD_OK ||
	    (r = put_bytes16(w, k->spki, k->spki_len)) != KEYD_OK ||
	    (r = kbuf_put_u8(w, k->fp_kind)) != KEYD_OK ||
	    (r = kbuf_put_u8(w, (uint8_t)k->fp_len)) != KEYD_OK ||
	    (r = kbuf_put(w, k->fp, k->fp_len)) != KEYD_OK ||
	    (r = put_bytes16(w, k->wrapped, k->wrapped_len)) != KEYD_OK)
		return r;
	return KEYD_OK;
}

int
bundle_encode(struct bundle *b, const uint8_t *bmk, size_t bmk_len)
{
	struct kbuf w;
	size_t i;
	int r;

	kbuf_init(&w, BUNDLE_MAX_SIZE, 0);
	if (b->n_keys == 0 || b->n_keys > BUNDLE_MAX_KEYS ||
	    b->group_count == 0 || b->group_count > SLIP39_MAX_GROUPS ||
	    b->n_commits > SLIP39_MAX_SHARES) {
		r = KEYD_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = kbuf_put(&w, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN)) != KEYD_OK ||
	    (r = kbuf_put_u16(&w, b->version)) != KEYD_OK ||
	    (r = kbuf_put_u16(&w, 0)) != KEYD_OK ||
	    (r = kbuf_put(&w, b->set_id, BUNDLE_SET_ID_LEN)) != KEYD_OK ||
	    (r = kbuf_put_u32(&w, (uint32_t)(b->created >> 32))) != KEYD_OK ||
	    (r = kbuf_put_u32(&w, (uint32_t)b->created)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->wrap_alg)) != KEYD_OK ||
	    (r = kbuf_put_u32(&w, b->wrap_mech)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->mac_alg)) != KEYD_OK ||
	    (r = kbuf_put_u16(&w, b->slip39_id)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->ext)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->iteration_exp)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->secret_len)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->group_threshold)) != KEYD_OK ||
	    (r = kbuf_put_u8(&w, b->group_count)) != KEYD_OK)
		goto out;
	for (i = 0; i < b->group_count; i++)
		if ((r = kbuf_put_u8(&w, b->member_threshold[i])) != KEYD_OK ||
		    (r = kbuf_put_u8(&w, b->member_count[i])) != KEYD_OK)
			goto out;
	if ((r = kbuf_put_u16(&w, (uint16_t)b->n_keys)) != KEYD_OK)
		goto out;
	for (i = 0; i < b->n_keys; i++)
		if ((r = put_key(&w, &b->keys[i])) != KEYD_OK)
			goto out;
	if ((r = kbuf_put_u16(&w, (uint16_t)b->n_commits)) != KEYD_OK)
		goto out;
	for (i = 0; i < b->n_commits; i++)
		if ((r = kbuf_put_u8(&w, b->commits[i].group)) != KEYD_OK ||
		    (r = kbuf_put_u8(&w, b->commits[i].member)) != KEYD_OK ||
		    (r = kbuf_put(&w, b->commits[i].c, BUNDLE_HASH_LEN)) !=
		    KEYD_OK)
			goto out;
	if ((r = compute_mac(bmk, bmk_len, b->set_id, kbuf_ptr(&w),
	    kbuf_avail(&w), b->mac)) != KEYD_OK ||
	    (r = kbuf_put(&w, b->mac, BUNDLE_HASH_LEN)) != KEYD_OK ||
	    (r = sha256(kbuf_ptr(&w), kbuf_avail(&w), b->fingerprint)) !=
	    KEYD_OK)
		goto out;
	free(b->raw);
	if ((b->raw = malloc(kbuf_avail(&w))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	b->raw_len = kbuf_avail(&w);
	memcpy(b->raw, kbuf_ptr(&w), b->raw_len);
	r = KEYD_OK;
out:
	kbuf_free(&w);
	return r;
}

/* ---- reading ------------------------------------------------------------ */

/* Each reader sets *why on failure; the first failure is what is told. */
#define NEED(cond, what) \
	do { \
		if (!(cond)) { \
			*why = (what); \
			return KEYD_ERR_BUNDLE; \
		} \
	} while (0)

static WUR int
get_bytes16(struct kbuf *rd, uint8_t *out, size_t max, size_t *len,
    const char *what, const char **why)
{
	uint16_t n = 0;

	NEED(kbuf_get_u16(rd, &n) == KEYD_OK, "truncated in a key record");
	NEED(n <= max, what);
	NEED(kbuf_get_bytes(rd, out, n) == KEYD_OK,
	    "truncated in a key record");
	*len = n;
	return KEYD_OK;
}

static WUR int
parse_key(struct kbuf *rd, struct bundle_key *k, const char **why)
{
	uint8_t fp_len = 0, digest[BUNDLE_HASH_LEN];
	int pair, r;

	NEED(kbuf_get_u32(rd, &k->cls) == KEYD_OK &&
	    kbuf_get_u32(rd, &k->key_type) == KEYD_OK &&
	    kbuf_get_u32(rd, &k->bits) == KEYD_OK, "truncated key record");
	NEED(k->cls == CKO_PRIVATE_KEY || k->cls == CKO_SECRET_KEY,
	    "a key of an unknown object class");
	pair = k->cls == CKO_PRIVATE_KEY;
	NEED(pair ? k->key_type == CKK_EC || k->key_type == CKK_RSA ||
	    k->key_type == CKK_EC_EDWARDS : k->key_type == CKK_AES,
	    "a key of an unknown key type");
	if ((r = get_bytes16(rd, (uint8_t *)k->label, BUNDLE_MAX_LABEL,
	    &k->label_len, "a bad key label", why)) != KEYD_OK)
		return r;
	k->label[k->label_len] = '\0';
	NEED(memchr(k->label, '\0', k->label_len) == NULL,
	    "a key label with a NUL byte");
	if ((r = get_bytes16(rd, k->id, BUNDLE_MAX_ID, &k->id_len,
	    "a bad key id", why)) != KEYD_OK)
		return r;
	NEED(kbuf_get_u32(rd, &k->flags) == KEYD_OK &&
	    kbuf_get_u32(rd, &k->pub_flags) == KEYD_OK,
	    "truncated key flags");
	NEED((k->flags & ~BUNDLE_F_ALL) == 0 &&
	    (k->pub_flags & ~BUNDLE_F_ALL) == 0, "unknown key flags");
	if ((r = get_bytes16(rd, k->pub_a, BUNDLE_MAX_PUB, &k->pub_a_len,
	    "a bad public key", why)) != KEYD_OK ||
	    (r = get_bytes16(rd, k->pub_b, BUNDLE_MAX_PUB, &k->pub_b_len,
	    "a bad public key", why)) != KEYD_OK ||
	    (r = get_bytes16(rd, k->spki, BUNDLE_MAX_SPKI, &k->spki_len,
	    "a bad SubjectPublicKeyInfo", why)) != KEYD_OK)
		return r;
	NEED(kbuf_get_u8(rd, &k->fp_kind) == KEYD_OK &&
	    kbuf_get_u8(rd, &fp_len) == KEYD_OK &&
	    fp_len <= BUNDLE_HASH_LEN &&
	    kbuf_get_bytes(rd, k->fp, fp_len) == KEYD_OK,
	    "a bad key fingerprint");
	k->fp_len = fp_len;
	if (pair) {
		NEED(k->pub_a_len > 0 && k->pub_b_len > 0 && k->spki_len > 0,
		    "a key pair without its public key");
		NEED(k->fp_kind == BUNDLE_FP_SPKI_SHA256 &&
		    k->fp_len == BUNDLE_HASH_LEN, "a key pair without its "
		    "SPKI fingerprint");
		NEED(sha256(k->spki, k->spki_len, digest) == KEYD_OK &&
		    memcmp(digest, k->fp, BUNDLE_HASH_LEN) == 0,
		    "a public key that does not match its fingerprint");
	} else {
		NEED(k->pub_a_len == 0 && k->pub_b_len == 0 &&
		    k->spki_len == 0 && k->pub_flags == 0,
		    "a secret key with a public part");
		NEED(k->fp_kind == BUNDLE_FP_KCV && k->fp_len > 0 &&
		    k->fp_len <= BUNDLE_MAX_KCV, "a secret key without its "
		    "check value");
	}
	if ((r = get_bytes16(rd, k->wrapped, BUNDLE_MAX_WRAPPED,
	    &k->wrapped_len, "a bad wrapped key", why)) != KEYD_OK)
		return r;
	NEED(k->wrapped_len >= BUNDLE_MIN_WRAPPED &&
	    k->wrapped_len % BUNDLE_WRAP_BLOCK == 0,
	    "a wrapped key of a length RFC 5649 never gives");
	return KEYD_OK;
}

static WUR int
parse_policy(struct kbuf *rd, struct bundle *b, const char **why)
{
	NEED(kbuf_get_u16(rd, &b->slip39_id) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->ext) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->iteration_exp) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->secret_len) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->group_threshold) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->group_count) == KEYD_OK,
	    "truncated share policy");
	NEED(b->slip39_id <= SLIP39_MAX_ID && b->ext <= 1 &&
	    b->iteration_exp <= SLIP39_MAX_ITERATION_EXP &&
	    b->secret_len == BUNDLE_BMK_LEN, "a bad share policy");
	NEED(b->group_threshold >= 1 && b->group_count >= b->group_threshold &&
	    b->group_count <= SLIP39_MAX_GROUPS, "a bad group policy");
	for (size_t g = 0; g < b->group_count; g++) {
		NEED(kbuf_get_u8(rd, &b->member_threshold[g]) == KEYD_OK &&
		    kbuf_get_u8(rd, &b->member_count[g]) == KEYD_OK,
		    "truncated share policy");
		NEED(b->member_threshold[g] >= 1 &&
		    b->member_count[g] >= b->member_threshold[g] &&
		    b->member_count[g] <= SLIP39_MAX_MEMBERS &&
		    (b->member_threshold[g] > 1 || b->member_count[g] == 1),
		    "a bad group policy");
	}
	return KEYD_OK;
}

static WUR int
parse_commits(struct kbuf *rd, struct bundle *b, const char **why)
{
	uint16_t n = 0;
	size_t total = 0;

	for (size_t g = 0; g < b->group_count; g++)
		total += b->member_count[g];
	NEED(kbuf_get_u16(rd, &n) == KEYD_OK, "truncated share commitments");
	NEED(n == total, "a share commitment count that differs from the "
	    "policy");
	for (size_t i = 0; i < n; i++) {
		struct bundle_commit *c = &b->commits[i];

		NEED(kbuf_get_u8(rd, &c->group) == KEYD_OK &&
		    kbuf_get_u8(rd, &c->member) == KEYD_OK &&
		    kbuf_get_bytes(rd, c->c, BUNDLE_HASH_LEN) == KEYD_OK,
		    "truncated share commitments");
		NEED(c->group < b->group_count &&
		    c->member < b->member_count[c->group],
		    "a commitment to a share the policy does not have");
		for (size_t j = 0; j < i; j++)
			NEED(b->commits[j].group != c->group ||
			    b->commits[j].member != c->member,
			    "two commitments to one share");
	}
	b->n_commits = n;
	return KEYD_OK;
}

static WUR int
parse_body(struct kbuf *rd, struct bundle *b, const char **why)
{
	uint8_t magic[BUNDLE_MAGIC_LEN];
	uint32_t hi = 0, lo = 0;
	uint16_t reserved = 1, n = 0;
	int r;

	NEED(kbuf_get_bytes(rd, magic, sizeof(magic)) == KEYD_OK &&
	    memcmp(magic, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) == 0,
	    "not a keyd-backup bundle (no KEYDBKUP magic)");
	NEED(kbuf_get_u16(rd, &b->version) == KEYD_OK, "truncated header");
	if (b->version != BUNDLE_VERSION) {
		*why = "a bundle format version this keyd-backup does not "
		    "read";
		return KEYD_ERR_VERSION;
	}
	NEED(kbuf_get_u16(rd, &reserved) == KEYD_OK &&
	    kbuf_get_bytes(rd, b->set_id, BUNDLE_SET_ID_LEN) == KEYD_OK &&
	    kbuf_get_u32(rd, &hi) == KEYD_OK &&
	    kbuf_get_u32(rd, &lo) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->wrap_alg) == KEYD_OK &&
	    kbuf_get_u32(rd, &b->wrap_mech) == KEYD_OK &&
	    kbuf_get_u8(rd, &b->mac_alg) == KEYD_OK, "truncated header");
	NEED(reserved == 0, "reserved header bits set");
	b->created = ((uint64_t)hi << 32) | lo;
	NEED(b->wrap_alg == BUNDLE_WRAP_RFC5649 ||
	    b->wrap_alg == BUNDLE_WRAP_RFC5649_ZERO_PAD,
	    "an unknown wrap algorithm");
	NEED(b->mac_alg == BUNDLE_MAC_HKDF_HMAC_SHA256,
	    "an unknown MAC algorithm");
	if ((r = parse_policy(rd, b, why)) != KEYD_OK)
		return r;
	NEED(kbuf_get_u16(rd, &n) == KEYD_OK, "truncated key list");
	NEED(n >= 1 && n <= BUNDLE_MAX_KEYS, "a key count out of range");
	if ((b->keys = calloc(n, sizeof(*b->keys))) == NULL)
		return KEYD_ERR_NOMEM;
	b->n_keys = n;
	for (size_t i = 0; i < n; i++) {
		if ((r = parse_key(rd, &b->keys[i], why)) != KEYD_OK)
			return r;
		for (size_t j = 0; j < i; j++)
			NEED(b->keys[j].label_len != b->keys[i].label_len ||
			    memcmp(b->keys[j].label, b->keys[i].label,
			    b->keys[i].label_len) != 0,
			    "two keys with the same label");
	}
	if ((r = parse_commits(rd, b, why)) != KEYD_OK)
		return r;
	NEED(kbuf_get_bytes(rd, b->mac, BUNDLE_HASH_LEN) == KEYD_OK,
	    "truncated: the MAC is missing");
	NEED(kbuf_avail(rd) == 0, "bytes after the MAC");
	return KEYD_OK;
}

#undef NEED

int
bundle_parse(const uint8_t *data, size_t len, struct bundle **out,
    const char **why)
{
	struct bundle *b = NULL;
	struct kbuf rd;
	int r = KEYD_ERR_BUNDLE;

	*out = NULL;
	*why = "too large";
	if (len > BUNDLE_MAX_SIZE)
		goto out;
	if ((b = bundle_new(0)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	kbuf_view(&rd, data, len);
	if ((r = parse_body(&rd, b, why)) != KEYD_OK)
		goto out;
	if ((b->raw = malloc(len)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	memcpy(b->raw, data, len);
	b->raw_len = len;
	if ((r = sha256(data, len, b->fingerprint)) != KEYD_OK)
		goto out;
	*out = b;
	b = NULL;
	*why = NULL;
	r = KEYD_OK;
out:
	bundle_free(b);
	return r;
}

int
bundle_verify_mac(const struct bundle *b, const uint8_t *bmk, size_t bmk_len)
{
	uint8_t mac[BUNDLE_HASH_LEN];
	int r;

	if (b->raw == NULL || b->raw_len < BUNDLE_HASH_LEN)
		return KEYD_ERR_INTERNAL;
	if ((r = compute_mac(bmk, bmk_len, b->set_id, b->raw,
	    b->raw_len - BUNDLE_HASH_LEN, mac)) != KEYD_OK)
		return r;
	r = CRYPTO_memcmp(mac, b->mac, BUNDLE_HASH_LEN) == 0 ? KEYD_OK :
	    KEYD_ERR_PASSPHRASE;
	secmem_wipe(mac, sizeof(mac));
	return r;
}

int
bundle_check_share(const struct bundle *b, const struct slip39_share *s,
    const char **why)
{
	uint8_t c[BUNDLE_HASH_LEN];
	int r;

	*why = NULL;
	if (s->id != b->slip39_id)
		*why = "identifier";
	else if (s->ext != b->ext)
		*why = "extendable flag";
	else if (s->iteration_exp != b->iteration_exp)
		*why = "iteration exponent";
	else if (s->value_len != b->secret_len)
		*why = "length";
	else if (s->group_threshold != b->group_threshold ||
	    s->group_count != b->group_count)
		*why = "group policy";
	else if (s->group_index >= b->group_count ||
	    s->member_threshold != b->member_threshold[s->group_index])
		*why = "member threshold";
	if (*why != NULL)
		return KEYD_ERR_SHARE_MISMATCH;
	if ((r = bundle_commit(b->set_id, s, c)) != KEYD_OK)
		return r;
	for (size_t i = 0; i < b->n_commits; i++) {
		if (b->commits[i].group != s->group_index ||
		    b->commits[i].member != s->member_index)
			continue;
		if (CRYPTO_memcmp(c, b->commits[i].c, BUNDLE_HASH_LEN) == 0)
			return KEYD_OK;
		break;
	}
	*why = "commitment";
	return KEYD_ERR_SHARE_MISMATCH;
}

int
bundle_policy_met(const struct bundle *b, const struct slip39_share *s,
    size_t n)
{
	unsigned have[SLIP39_MAX_GROUPS] = { 0 }, groups = 0;

	for (size_t i = 0; i < n; i++)
		if (s[i].group_index < SLIP39_MAX_GROUPS)
			have[s[i].group_index]++;
	for (size_t g = 0; g < b->group_count; g++)
		if (have[g] >= b->member_threshold[g])
			groups++;
	return groups >= b->group_threshold;
}

unsigned
bundle_shares_needed(const struct bundle *b)
{
	uint8_t t[SLIP39_MAX_GROUPS];
	unsigned sum = 0;
	size_t n = b->group_count;

	/* The cheapest groups: the smallest member thresholds. */
	memcpy(t, b->member_threshold, n);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && t[j - 1] > t[j]; j--) {
			uint8_t x = t[j];

			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	for (size_t i = 0; i < b->group_threshold && i < n; i++)
		sum += t[i];
	return sum;
}
