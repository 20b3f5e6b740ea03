/* rsa_ir.c: RSA PKCS#1 v1.5 decryption with implicit rejection over the
 * token's raw RSA. The decoding follows draft-irtf-cfrg-rsa-guidance,
 * section 7, step by step as OpenSSL 3.2 does it (rsa_pk1.c:
 * ossl_rsa_prf and ossl_rsa_padding_check_PKCS1_type_2; rsa_ossl.c:
 * derive_kdk), so that a key's synthetic messages are those OpenSSL would
 * give if its KDK key were keyd's per-key secret instead of SHA-256(d).
 * tests/unit/test_rsa_ir.c checks that against OpenSSL's own test vectors
 * by feeding SHA-256(d) as the secret. */
#include "rsa_ir.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "secmem.h"

/* The draft's number of 16-bit length candidates: the chance that none of
 * them is short enough (and the length falls back to 0) is 2^-128 or so. */
#define RSA_IR_LEN_CANDIDATES 128
#define RSA_IR_PRF_MAX (8191)    /* I2OSP(len * 8, 2) must fit */
#define RSA_IR_C0_LABEL "keyd implicit rejection v1"

/*
 * Constant-time helpers in the style of OpenSSL's internal/constant_time.h:
 * a mask is all ones (true) or all zeros (false), and every result is
 * computed with arithmetic only. ct_barrier hides a mask's value from the
 * optimiser, so that it cannot turn a select back into a branch.
 */
static inline size_t
ct_barrier(size_t x)
{
	__asm__("" : "+r"(x));
	return x;
}

static inline size_t
ct_msb(size_t a)
{
	return 0 - (a >> (sizeof(a) * 8 - 1));
}

static inline size_t
ct_is_zero(size_t a)
{
	return ct_msb(~a & (a - 1));
}

static inline size_t
ct_eq(size_t a, size_t b)
{
	return ct_is_zero(a ^ b);
}

/* a < b, for any size_t values. */
static inline size_t
ct_lt(size_t a, size_t b)
{
	return ct_msb(a ^ ((a ^ b) | ((a - b) ^ b)));
}

static inline size_t
ct_ge(size_t a, size_t b)
{
	return ~ct_lt(a, b);
}

static inline size_t
ct_select(size_t mask, size_t a, size_t b)
{
	mask = ct_barrier(mask);
	return (mask & a) | (~mask & b);
}

static inline uint8_t
ct_select_u8(size_t mask, uint8_t a, uint8_t b)
{
	return (uint8_t)ct_select(mask, a, b);
}

int
rsa_ir_kdk(const uint8_t secret[RSA_IR_SECRET_LEN], const uint8_t *ct,
    size_t k, uint8_t kdk[RSA_IR_KDK_LEN])
{
	unsigned int len = RSA_IR_KDK_LEN;

	if (HMAC(EVP_sha256(), secret, RSA_IR_SECRET_LEN, ct, k, kdk,
	    &len) == NULL || len != RSA_IR_KDK_LEN)
		return KEYD_ERR_CRYPTO;
	return KEYD_OK;
}

int
rsa_ir_prf(const uint8_t kdk[RSA_IR_KDK_LEN], const char *label,
    uint8_t *out, size_t len)
{
	/* I2OSP(i, 2) || label || I2OSP(bitlen, 2); labels are "message" and
	 * "length". */
	uint8_t in[2 + 16 + 2], block[SHA256_DIGEST_LENGTH];
	size_t llen = strlen(label), bits = len * 8, pos;
	unsigned int blen;
	unsigned iter;
	int r = KEYD_ERR_CRYPTO;

	if (len == 0 || len > RSA_IR_PRF_MAX || llen > 16)
		return KEYD_ERR_INVALID_ARG;
	memcpy(in + 2, label, llen);
	in[2 + llen] = (uint8_t)(bits >> 8);
	in[2 + llen + 1] = (uint8_t)bits;
	for (pos = 0, iter = 0; pos < len; pos += sizeof(block), iter++) {
		size_t n = len - pos < sizeof(block) ? len - pos :
		    sizeof(block);

		in[0] = (uint8_t)(iter >> 8);
		in[1] = (uint8_t)iter;
		blen = sizeof(block);
		if (HMAC(EVP_sha256(), kdk, RSA_IR_KDK_LEN, in, llen + 4,
		    block, &blen) == NULL || blen != sizeof(block))
			goto out;
		memcpy(out + pos, block, n);
	}
	r = KEYD_OK;
out:
	secmem_wipe(block, sizeof(block));
	return r;
}

int
rsa_ir_unpad(const uint8_t secret[RSA_IR_SECRET_LEN], const uint8_t *ct,
    const uint8_t *em, size_t k, uint8_t *out, size_t room, size_t *outlen)
{
	uint8_t kdk[RSA_IR_KDK_LEN];
	uint8_t synth[RSA_IR_MAX_BYTES], buf[RSA_IR_MAX_BYTES];
	uint8_t lens[RSA_IR_LEN_CANDIDATES * 2];
	size_t max_sep, len_mask, synth_len, good, found, zero_index, msg_index;
	size_t mlen, shift, tail, i, step;
	int r;

	/* Public checks: k is the modulus length, not a secret. */
	if (k < RSA_IR_MIN_BYTES || k > RSA_IR_MAX_BYTES ||
	    room < RSA_IR_MAX_MSG(k))
		return KEYD_ERR_INVALID_ARG;

	/* Draft section 7.2, step 3: the alternative message, computed for
	 * every ciphertext before the padding is looked at. */
	if ((r = rsa_ir_kdk(secret, ct, k, kdk)) != KEYD_OK ||
	    (r = rsa_ir_prf(kdk, "message", synth, k)) != KEYD_OK ||
	    (r = rsa_ir_prf(kdk, "length", lens, sizeof(lens))) != KEYD_OK)
		goto out;

	/* The length: the last of the 128 candidates (each masked to the bit
	 * length of k - 10) that is below k - 10, or 0 if none is. Taking a
	 * mask instead of a modulo avoids both a bias and a division. */
	max_sep = k - 2 - 8;
	len_mask = max_sep;
	len_mask |= len_mask >> 1;
	len_mask |= len_mask >> 2;
	len_mask |= len_mask >> 4;
	len_mask |= len_mask >> 8;
	synth_len = 0;
	for (i = 0; i < sizeof(lens); i += 2) {
		size_t cand = ((size_t)lens[i] << 8 | lens[i + 1]) & len_mask;

		synth_len = ct_select(ct_lt(cand, max_sep), cand, synth_len);
	}

	/* Step 4 (RFC 8017 7.2.2 step 3): EM = 0x00 || 0x02 || PS || 0x00 ||
	 * M with PS at least 8 non-zero bytes; find the first zero after the
	 * 0x02 by looking at every byte. */
	good = ct_is_zero(em[0]) & ct_eq(em[1], 2);
	found = 0;
	zero_index = 0;
	for (i = 2; i < k; i++) {
		size_t eq0 = ct_is_zero(em[i]);

		zero_index = ct_select(~found & eq0, i, zero_index);
		found |= eq0;
	}
	/* No zero at all leaves zero_index 0, which fails here too. */
	good &= ct_ge(zero_index, 2 + 8);

	/* Both the real and the synthetic message sit at the end of a k-byte
	 * buffer; pick every byte of one of the two, and where it starts. */
	msg_index = ct_select(good, zero_index + 1, k - synth_len);
	for (i = 0; i < k; i++)
		buf[i] = ct_select_u8(good, em[i], synth[i]);

	/* Move the message to the front of the tail (from byte 11 on) by
	 * shift = msg_index - 11 bytes, one bit of the shift at a time, with
	 * the same memory accesses whatever the shift (OpenSSL's
	 * RSA_padding_check_PKCS1_type_2 does the same): neither the validity
	 * nor the length shows in the access pattern. */
	tail = RSA_IR_MAX_MSG(k);
	shift = msg_index - RSA_IR_MIN_BYTES;
	mlen = k - msg_index;
	for (step = 1; step < tail; step <<= 1) {
		size_t move = ~ct_is_zero(shift & step);

		for (i = 0; i + step < tail; i++)
			buf[RSA_IR_MIN_BYTES + i] = ct_select_u8(move,
			    buf[RSA_IR_MIN_BYTES + i + step],
			    buf[RSA_IR_MIN_BYTES + i]);
	}
	for (i = 0; i < tail; i++)
		out[i] = ct_select_u8(ct_lt(i, mlen),
		    buf[RSA_IR_MIN_BYTES + i], 0);
	*outlen = mlen;
	r = KEYD_OK;
out:
	secmem_wipe(kdk, sizeof(kdk));
	secmem_wipe(synth, sizeof(synth));
	secmem_wipe(buf, sizeof(buf));
	secmem_wipe(lens, sizeof(lens));
	return r;
}

void
rsa_ir_fixed_input(uint8_t *c0, size_t k)
{
	static const char label[] = RSA_IR_C0_LABEL;
	uint8_t in[sizeof(label) - 1 + 4], block[SHA256_DIGEST_LENGTH];
	size_t pos;
	uint32_t i;

	memcpy(in, label, sizeof(label) - 1);
	for (pos = 0, i = 0; pos < k; pos += sizeof(block), i++) {
		size_t n = k - pos < sizeof(block) ? k - pos : sizeof(block);

		in[sizeof(label) - 1] = (uint8_t)(i >> 24);
		in[sizeof(label)] = (uint8_t)(i >> 16);
		in[sizeof(label) + 1] = (uint8_t)(i >> 8);
		in[sizeof(label) + 2] = (uint8_t)i;
		SHA256(in, sizeof(in), block);
		memcpy(c0 + pos, block, n);
	}
	if (k > 0)
		c0[0] = 0;
}

int
rsa_ir_secret_from_raw(const uint8_t *m0, size_t k,
    uint8_t secret[RSA_IR_SECRET_LEN])
{
	return SHA256(m0, k, secret) == NULL ? KEYD_ERR_CRYPTO : KEYD_OK;
}

/* The daemon's table. Written by rsa_ir_init before any worker thread is
 * created (pthread_create orders those writes before the workers' reads),
 * read-only afterwards. struct dispatch would be the natural owner; it is
 * kept here so that the dispatcher's interface stays as it is. */
struct rsa_ir_key {
	int enabled;
	size_t k;
	uint8_t *n;          /* the modulus, k bytes (public) */
};

struct rsa_ir_table {
	struct rsa_ir_key *keys;
	uint8_t *secrets;    /* n_keys * RSA_IR_SECRET_LEN, secmem */
	size_t n_keys;
};

/* The table of rsa_ir_init; a reload builds its own (rsa_ir_new). */
static struct rsa_ir_table *ir;

void
rsa_ir_table_free(struct rsa_ir_table *tb)
{
	if (tb == NULL)
		return;
	if (tb->keys != NULL)
		for (size_t i = 0; i < tb->n_keys; i++)
			free(tb->keys[i].n);
	free(tb->keys);
	secmem_free(tb->secrets, tb->n_keys * RSA_IR_SECRET_LEN);
	free(tb);
}

void
rsa_ir_cleanup(void)
{
	rsa_ir_table_free(ir);
	ir = NULL;
}

/* The modulus of an RSA key's SubjectPublicKeyInfo, as k big-endian
 * bytes; *n is malloc'ed. */
static int
spki_modulus(const uint8_t *spki, size_t spki_len, uint8_t **n, size_t *k)
{
	const unsigned char *p = spki;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL;
	int len, r = KEYD_ERR_CRYPTO;

	*n = NULL;
	if (spki == NULL || spki_len > (size_t)LONG_MAX ||
	    (pk = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL ||
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn) != 1)
		goto out;
	len = BN_num_bytes(bn);
	if (len < RSA_IR_MIN_BYTES || len > RSA_IR_MAX_BYTES) {
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if ((*n = malloc((size_t)len)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	if (BN_bn2binpad(bn, *n, len) != len) {
		free(*n);
		*n = NULL;
		goto out;
	}
	*k = (size_t)len;
	r = KEYD_OK;
out:
	BN_free(bn);
	EVP_PKEY_free(pk);
	return r;
}

/* Raw RSA on the token: em = ct^d mod n, k bytes. A token that drops the
 * leading zero bytes of its output is right-aligned here; such a token
 * already shows them in the length it returns, which keyd cannot hide. */
static int
raw_decrypt(struct token *t, struct token_session *s, size_t key,
    const uint8_t *ct, size_t k, uint8_t *em, char *msg, size_t msglen)
{
	CK_MECHANISM mech = { CKM_RSA_X_509, NULL, 0 };
	size_t emlen = k;
	int r;

	r = token_decrypt(t, s, key, &mech, ct, k, em, &emlen, msg, msglen);
	if (r != KEYD_OK)
		return r;
	if (emlen > k) {
		secmem_wipe(em, k);
		snprintf(msg, msglen, "the token's raw RSA output is longer "
		    "than the modulus");
		return KEYD_ERR_TOKEN;
	}
	if (emlen < k) {
		memmove(em + (k - emlen), em, emlen);
		memset(em, 0, k - emlen);
	}
	return KEYD_OK;
}

int
rsa_ir_new(const struct config *cfg, struct token *t,
    struct rsa_ir_table **out, char *err, size_t errlen)
{
	struct rsa_ir_table *tb = NULL;
	struct token_session s;
	uint8_t c0[RSA_IR_MAX_BYTES], m0[RSA_IR_MAX_BYTES];
	char msg[256];
	size_t i, n = 0;
	int r = KEYD_OK;

	*out = NULL;
	for (i = 0; i < cfg->n_keys; i++)
		n += cfg->keys[i].pkcs1_decrypt != 0;
	if (n == 0)
		return KEYD_OK;

	memset(&s, 0, sizeof(s));
	if ((tb = calloc(1, sizeof(*tb))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	tb->keys = calloc(cfg->n_keys, sizeof(*tb->keys));
	tb->secrets = secmem_alloc(cfg->n_keys * RSA_IR_SECRET_LEN);
	tb->n_keys = cfg->n_keys;
	if (tb->keys == NULL || tb->secrets == NULL) {
		snprintf(err, errlen, "out of memory");
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < cfg->n_keys; i++) {
		const struct config_key *ck = &cfg->keys[i];
		const struct token_key *tk = token_key(t, i);
		struct rsa_ir_key *e = &tb->keys[i];

		if (!ck->pkcs1_decrypt)
			continue;
		if (tk->type != TOKEN_KEY_RSA) {
			snprintf(err, errlen, "[key %s] has pkcs1_decrypt = "
			    "implicit-rejection but is not an RSA key (%s); "
			    "remove the setting", ck->name,
			    token_key_type_name(tk->type));
			r = KEYD_ERR_CONFIG;
			goto out;
		}
		if ((r = spki_modulus(tk->spki, tk->spki_len, &e->n, &e->k)) !=
		    KEYD_OK) {
			snprintf(err, errlen, "[key %s]: cannot read the RSA "
			    "modulus for pkcs1_decrypt (keyd takes %d to %d "
			    "bits)", ck->name, RSA_IR_MIN_BYTES * 8,
			    RSA_IR_MAX_BYTES * 8);
			goto out;
		}
		rsa_ir_fixed_input(c0, e->k);
		msg[0] = '\0';
		r = raw_decrypt(t, &s, i, c0, e->k, m0, msg, sizeof(msg));
		if (r == KEYD_OK)
			r = rsa_ir_secret_from_raw(m0, e->k,
			    tb->secrets + i * RSA_IR_SECRET_LEN);
		secmem_wipe(m0, sizeof(m0));
		if (r != KEYD_OK) {
			snprintf(err, errlen, "[key %s]: cannot derive the "
			    "implicit-rejection secret for pkcs1_decrypt: %s "
			    "(the token must allow raw RSA decryption, "
			    "CKM_RSA_X_509, with this key)", ck->name,
			    msg[0] ? msg : keyd_strerror(r));
			goto out;
		}
		e->enabled = 1;
	}
out:
	token_session_close(t, &s);
	secmem_wipe(m0, sizeof(m0));
	if (r != KEYD_OK)
		rsa_ir_table_free(tb);
	else
		*out = tb;
	return r;
}

int
rsa_ir_init(const struct config *cfg, struct token *t, char *err,
    size_t errlen)
{
	if (ir != NULL) {
		snprintf(err, errlen, "rsa_ir_init called twice");
		return KEYD_ERR_INTERNAL;
	}
	return rsa_ir_new(cfg, t, &ir, err, errlen);
}

int
rsa_ir_decrypt(struct token *t, struct token_session *s, size_t key,
    const uint8_t *ct, size_t ctlen, uint8_t *out, size_t room,
    size_t *outlen, char *msg, size_t msglen)
{
	return rsa_ir_decrypt_in(ir, t, s, key, ct, ctlen, out, room, outlen,
	    msg, msglen);
}

int
rsa_ir_decrypt_in(const struct rsa_ir_table *tb, struct token *t,
    struct token_session *s, size_t key, const uint8_t *ct, size_t ctlen,
    uint8_t *out, size_t room, size_t *outlen, char *msg, size_t msglen)
{
	const struct rsa_ir_key *e;
	uint8_t em[RSA_IR_MAX_BYTES];
	int r;

	if (tb == NULL || key >= tb->n_keys || !tb->keys[key].enabled) {
		snprintf(msg, msglen, "keyd has no implicit-rejection secret "
		    "for this key (it is derived at start-up for keys with "
		    "pkcs1_decrypt)");
		return KEYD_ERR_INTERNAL;
	}
	e = &tb->keys[key];
	/* Length and range are public properties of the ciphertext: an
	 * error for them tells nothing about any padding. */
	if (ctlen != e->k) {
		snprintf(msg, msglen, "an RSA ciphertext for this key is %zu "
		    "bytes, not %zu", e->k, ctlen);
		return KEYD_ERR_BAD_LENGTH;
	}
	if (memcmp(ct, e->n, e->k) >= 0) {
		snprintf(msg, msglen, "the ciphertext is not smaller than the "
		    "modulus");
		return KEYD_ERR_DECRYPT;
	}
	if (room < RSA_IR_MAX_MSG(e->k))
		return KEYD_ERR_INTERNAL;
	r = raw_decrypt(t, s, key, ct, e->k, em, msg, msglen);
	if (r == KEYD_OK) {
		r = rsa_ir_unpad(tb->secrets + key * RSA_IR_SECRET_LEN, ct, em,
		    e->k, out, room, outlen);
		if (r != KEYD_OK)
			snprintf(msg, msglen, "PKCS#1 v1.5 decoding failed "
			    "inside keyd (%s)", keyd_strerror(r));
	}
	secmem_wipe(em, sizeof(em));
	return r;
}
