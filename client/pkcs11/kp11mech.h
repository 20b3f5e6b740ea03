/*
 * kp11mech.h: the mechanisms of keyd-pkcs11.so: which ones each key type
 * takes, their parameters, what keyd is asked for (libkeyd's algorithm
 * and input), and local verification with OpenSSL. An operation's state
 * lives in a struct kp11mech_op. Internal to the module.
 */
#ifndef KEYD_KP11MECH_H
#define KEYD_KP11MECH_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kbuf.h"
#include "kp11.h"

/* Data buffered for a multi-part EdDSA operation: keyd signs Ed25519
 * messages of at most this many bytes (KEYD_MAX_ED25519_MESSAGE). */
#define KP11MECH_MAX_MESSAGE 16384u
/* A raw input (a digest, a DigestInfo): SHA-512's DigestInfo is 83. */
#define KP11MECH_MAX_RAW_INPUT 128u

enum kp11mech_kind {
	KP11MECH_ECDSA,          /* CKM_ECDSA: a digest in */
	KP11MECH_ECDSA_HASH,     /* CKM_ECDSA_SHA*: the module hashes */
	KP11MECH_RSA_PKCS,       /* CKM_RSA_PKCS: a DigestInfo in */
	KP11MECH_RSA_PKCS_HASH,  /* CKM_SHA*_RSA_PKCS */
	KP11MECH_PSS,            /* CKM_RSA_PKCS_PSS: a digest in */
	KP11MECH_PSS_HASH,       /* CKM_SHA*_RSA_PKCS_PSS */
	KP11MECH_EDDSA,          /* CKM_EDDSA: the message in */
	KP11MECH_OAEP,           /* CKM_RSA_PKCS_OAEP: decryption */
};

struct kp11mech_info {
	CK_MECHANISM_TYPE type;
	enum kp11mech_kind kind;
	int rsa, ec, ed;         /* the key types it takes */
	CK_FLAGS flags;          /* CKF_SIGN | CKF_VERIFY, or CKF_DECRYPT */
	const char *md;          /* the hash it applies (hashing kinds) */
};

/* kp11mech_count / kp11mech_at: the mechanism table, in order. */
size_t kp11mech_count(void);
const struct kp11mech_info *kp11mech_at(size_t i);
/* kp11mech_find: the entry for type, or NULL. */
const struct kp11mech_info *kp11mech_find(CK_MECHANISM_TYPE type);
/* kp11mech_fits: 1 if mechanism mi works with keys of type kt. */
int kp11mech_fits(const struct kp11mech_info *mi, enum kp11_keytype kt);
/* kp11mech_get_info: C_GetMechanismInfo's answer for mi. */
void kp11mech_get_info(const struct kp11mech_info *mi,
    CK_MECHANISM_INFO *info);

/* An operation in progress on a session (sign, verify or decrypt). */
struct kp11mech_op {
	int active;
	const struct kp11mech_info *mi;
	CK_FLAGS what;             /* CKF_SIGN, CKF_VERIFY or CKF_DECRYPT */
	enum kp11_keytype keytype;
	CK_OBJECT_HANDLE obj;
	char key[KP11_KEY_NAME_MAX + 1]; /* keyd's name for the key */
	/* SHA-256 of the public key found under that name (set by kp11.c):
	 * keyd signs only while the name still names that key. */
	uint8_t key_sha256[32];
	int has_key_sha256;
	size_t out_len;            /* signature (or modulus) length */
	int keyd_alg;              /* libkeyd's enum keyd_sign/decrypt_alg */
	const EVP_MD *md;          /* the hash of a hashing or PSS mechanism */
	EVP_MD_CTX *mdctx;         /* the running hash (hashing mechanisms) */
	EVP_PKEY *pkey;            /* the public key (verification) */
	uint8_t *buf;              /* buffered message (EdDSA multi-part) */
	size_t len;
	int parts;                 /* an Update has been made */
};

/*
 * kp11mech_op_init: starts op for mechanism m on a key of type kt named
 * key with an output of out_len bytes (what is CKF_SIGN, CKF_VERIFY or
 * CKF_DECRYPT). For CKF_VERIFY, spki_der is the key's public key. Checks
 * the mechanism's parameters. Returns CKR_OK, CKR_MECHANISM_INVALID,
 * CKR_MECHANISM_PARAM_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKR_HOST_MEMORY.
 * On failure op is left inactive.
 */
CK_RV kp11mech_op_init(struct kp11mech_op *op, const CK_MECHANISM *m,
    CK_FLAGS what, enum kp11_keytype kt, const char *key, size_t out_len,
    const uint8_t *spki_der, size_t spki_len) KBUF_WUR;

/* kp11mech_op_update: adds a part (multi-part sign or verify). Hashing
 * mechanisms hash it; EdDSA buffers it (bounded); the raw mechanisms are
 * single-part only (CKR_FUNCTION_NOT_SUPPORTED). */
CK_RV kp11mech_op_update(struct kp11mech_op *op, const uint8_t *data,
    size_t len) KBUF_WUR;

/*
 * kp11mech_op_input: what keyd signs for this operation, into in (room
 * for KP11MECH_MAX_RAW_INPUT bytes) or, for EdDSA, a pointer to the
 * message in *msg. data is the single-part input, or NULL for the final
 * step of a multi-part operation. Raw inputs are checked strictly:
 * CKR_DATA_LEN_RANGE, CKR_DATA_INVALID (a DigestInfo of an unknown hash).
 */
CK_RV kp11mech_op_input(struct kp11mech_op *op, const uint8_t *data,
    size_t len, uint8_t *in, size_t *inlen, const uint8_t **msg) KBUF_WUR;

/* kp11mech_op_verify: verifies sig over the operation's input (data for
 * single-part, or what the updates gave) with OpenSSL. CKR_OK,
 * CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE, ... */
CK_RV kp11mech_op_verify(struct kp11mech_op *op, const uint8_t *data,
    size_t len, const uint8_t *sig, size_t siglen) KBUF_WUR;

/* kp11mech_op_reset: ends op, wiping and freeing what it held. */
void kp11mech_op_reset(struct kp11mech_op *op);

/* kp11mech_oaep_max: the longest OAEP plaintext for a modulus of k bytes
 * with the operation's hash. */
size_t kp11mech_oaep_max(const struct kp11mech_op *op, size_t k);

#endif
