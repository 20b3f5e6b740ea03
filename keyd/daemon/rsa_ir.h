/*
 * rsa_ir.h: RSA PKCS#1 v1.5 decryption with implicit rejection, done by
 * keyd over the token's raw RSA (CKM_RSA_X_509).
 *
 * A token's own CKM_RSA_PKCS decryption answers a bad padding with an
 * error (SoftHSM2: CKR_GENERAL_ERROR), which is a Bleichenbacher padding
 * oracle. keyd instead asks the token for m = c^d mod n and removes the
 * padding itself, in constant time, following the implicit rejection of
 * draft-irtf-cfrg-rsa-guidance (section 7) as OpenSSL 3.2 implements it
 * (crypto/rsa/rsa_pk1.c, ossl_rsa_padding_check_PKCS1_type_2): a bad
 * padding yields a synthetic message derived from a per-key secret and
 * the ciphertext, so the answer never says whether the padding was good.
 *
 * The one difference from the draft: its KDK is HMAC-SHA256 keyed with
 * SHA-256(I2OSP(d, k)); a token does not reveal d, so keyd keys it with
 * a per-key secret S = SHA-256(RSADP(c0)), the raw private operation on a
 * fixed input c0 (rsa_ir_fixed_input), computed once at start-up.
 */
#ifndef KEYD_RSA_IR_H
#define KEYD_RSA_IR_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "token.h"

#define RSA_IR_WUR __attribute__((warn_unused_result))

#define RSA_IR_SECRET_LEN 32     /* the per-key secret S (HMAC-SHA256 key) */
#define RSA_IR_KDK_LEN 32
#define RSA_IR_MIN_BYTES 11      /* 00 02, 8 bytes of PS, 00 */
#define RSA_IR_MAX_BYTES 1024    /* RSA-8192 */
/* The longest message a k-byte modulus carries, real or synthetic. */
#define RSA_IR_MAX_MSG(k) ((k) - RSA_IR_MIN_BYTES)

/* rsa_ir_kdk: KDK = HMAC-SHA256(key = secret, msg = ct[0..k)).
 * Returns KEYD_OK or KEYD_ERR_CRYPTO. */
int rsa_ir_kdk(const uint8_t secret[RSA_IR_SECRET_LEN], const uint8_t *ct,
    size_t k, uint8_t kdk[RSA_IR_KDK_LEN]) RSA_IR_WUR;

/* rsa_ir_prf: the draft's IRPRF: len bytes from
 * HMAC-SHA256(kdk, I2OSP(i, 2) || label || I2OSP(len * 8, 2)) for
 * i = 0, 1, ... (len at most 8191). Returns KEYD_OK, KEYD_ERR_INVALID_ARG
 * or KEYD_ERR_CRYPTO. */
int rsa_ir_prf(const uint8_t kdk[RSA_IR_KDK_LEN], const char *label,
    uint8_t *out, size_t len) RSA_IR_WUR;

/* rsa_ir_unpad: the PKCS#1 v1.5 (type 2) decoding with implicit
 * rejection of em[0..k), the raw RSA decryption of ct[0..k) (both k bytes,
 * big-endian, zero-padded on the left). Writes the message, or the
 * synthetic message if the padding is bad, to out (room at least
 * RSA_IR_MAX_MSG(k) bytes; all of them are written) and its length to
 * *outlen. No branch and no memory access depends on the padding or on the
 * message length. Returns KEYD_OK whatever the padding; an error
 * (KEYD_ERR_INVALID_ARG for k or room out of range, KEYD_ERR_CRYPTO if
 * OpenSSL fails) says nothing about it. */
int rsa_ir_unpad(const uint8_t secret[RSA_IR_SECRET_LEN], const uint8_t *ct,
    const uint8_t *em, size_t k, uint8_t *out, size_t room, size_t *outlen)
    RSA_IR_WUR;

/* rsa_ir_fixed_input: c0 for a k-byte modulus: SHA-256("keyd implicit
 * rejection v1" || I2OSP(i, 4)) for i = 0, 1, ... cut to k bytes, with the
 * first byte cleared so that c0 < 256^(k-1) <= n. */
void rsa_ir_fixed_input(uint8_t *c0, size_t k);

/* rsa_ir_secret_from_raw: S = SHA-256(m0), m0 = RSADP(c0), k bytes.
 * Returns KEYD_OK or KEYD_ERR_CRYPTO. */
int rsa_ir_secret_from_raw(const uint8_t *m0, size_t k,
    uint8_t secret[RSA_IR_SECRET_LEN]) RSA_IR_WUR;

/*
 * The daemon's table of per-key secrets. It is filled once at start-up,
 * before the worker threads exist, and only read after that; the secrets
 * live in locked memory and are wiped by rsa_ir_cleanup.
 *
 * The secret is only as good as the rule that no client can get the raw
 * RSA decryption of c0: keyd must never offer raw RSA (CKM_RSA_X_509
 * decryption or signing) with a key that has pkcs1_decrypt.
 */

/* rsa_ir_init: derives S for every key with pkcs1_decrypt (one
 * CKM_RSA_X_509 decryption each, in a session of its own). Fails with
 * KEYD_ERR_CONFIG (not an RSA key, or a modulus out of range) or the
 * token's error, with err naming the key. Call once, before any worker
 * thread starts. */
int rsa_ir_init(const struct config *cfg, struct token *t, char *err,
    size_t errlen) RSA_IR_WUR;

/* rsa_ir_cleanup: wipes and frees the table. Safe to call at any time. */
void rsa_ir_cleanup(void);

/* A table of its own, for one configuration (a reload builds one for the
 * new configuration while requests run under the old one's). rsa_ir_new
 * fails as rsa_ir_init does; *out is NULL when no key has pkcs1_decrypt.
 * rsa_ir_decrypt_in is rsa_ir_decrypt with the table tb. */
struct rsa_ir_table;
int rsa_ir_new(const struct config *cfg, struct token *t,
    struct rsa_ir_table **out, char *err, size_t errlen) RSA_IR_WUR;
void rsa_ir_table_free(struct rsa_ir_table *tb);
int rsa_ir_decrypt_in(const struct rsa_ir_table *tb, struct token *t,
    struct token_session *s, size_t key, const uint8_t *ct, size_t ctlen,
    uint8_t *out, size_t room, size_t *outlen, char *msg, size_t msglen)
    RSA_IR_WUR;

/* rsa_ir_decrypt: PKCS#1 v1.5 decryption with implicit rejection of
 * ct[0..ctlen) with the key of config index key, in the caller's session.
 * Public checks first (length k, ct < n: KEYD_ERR_BAD_LENGTH,
 * KEYD_ERR_DECRYPT), then raw RSA on the token and rsa_ir_unpad. out needs
 * RSA_IR_MAX_MSG(k) bytes of room. Returns KEYD_OK for every ciphertext
 * that passes the public checks, whatever its padding; an error never
 * depends on the padding. msg says why, without secrets. */
int rsa_ir_decrypt(struct token *t, struct token_session *s, size_t key,
    const uint8_t *ct, size_t ctlen, uint8_t *out, size_t room,
    size_t *outlen, char *msg, size_t msglen) RSA_IR_WUR;

#endif
