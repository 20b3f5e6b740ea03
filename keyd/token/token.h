/*
 * token.h: everything keyd does with its PKCS#11 token. Two files
 * implement it: token.c, in keyd-token, on top of the token access layer
 * (p11.h), for the one token that process serves; and token_proxy.c, in
 * keyd-serve, which sends each call to a token process (and there is
 * the failover between two tokens, and the bound of token_timeout).
 *
 * In token.c keys are named by RFC 7512 URIs and resolved once at
 * start-up (C_FindObjects is slow on SoftHSM2). One "keeper" session
 * stays open and logged in for the whole run, since closing a token's
 * last session logs it out; each worker thread has its own session, since
 * two threads on one session get CKR_OPERATION_ACTIVE.
 */
#ifndef KEYD_TOKEN_H
#define KEYD_TOKEN_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TOKEN_WUR __attribute__((warn_unused_result))

#define TOKEN_MAX_ID 128        /* bytes of CKA_ID kept */
#define TOKEN_MAX_SIG 1024      /* RSA-8192 */

enum token_key_type {
	TOKEN_KEY_EC_P256 = 1,
	TOKEN_KEY_EC_P384,
	TOKEN_KEY_RSA,
	TOKEN_KEY_ED25519,
	TOKEN_KEY_AES,
	TOKEN_KEY_HMAC,            /* generic secret: only audit_tn_key */
};

struct token_key {
	const char *name;          /* the config's key name (not owned) */
	const char *uri;           /* (not owned) */
	enum token_key_type type;
	unsigned bits;             /* modulus, curve or AES key size */
	CK_ATTRIBUTE *tmpl;        /* the URI's search template */
	CK_ULONG tmpl_n;
	uint8_t id[TOKEN_MAX_ID];
	size_t id_len;
	uint8_t *spki;             /* DER SubjectPublicKeyInfo; NULL for AES */
	size_t spki_len;
	int can_sign, can_decrypt, can_encrypt;
	int extractable, wrap_with_trusted;
	int weak_extractable;      /* extractable, not wrap-with-trusted */
	/* RSA keys with ops = decrypt: the TOKEN_OAEP_* hashes with which
	 * the token decrypted a test ciphertext at start-up (on every
	 * token that was there then). */
	unsigned oaep_hashes;
	uint8_t *cert;             /* DER X.509 with the same CKA_ID, or NULL */
	size_t cert_len;
	uint8_t kcv[3];            /* AES: check value, if has_kcv */
	int has_kcv;
	/* Search templates of the key's URI and of its earlier versions
	 * ([key] previous, SRTP KEKs), in the order of the config. */
	CK_ATTRIBUTE **prev_tmpl;
	CK_ULONG *prev_tmpl_n;
	const char **prev_uri;     /* (not owned) */
	uint8_t (*prev_kcv)[3];    /* their check values ... */
	int *prev_has_kcv;         /* ... where the token gives one */
	size_t n_prev;
};

/* OAEP hashes (each with MGF1 of the same hash and an empty label). */
#define TOKEN_OAEP_SHA1 1u
#define TOKEN_OAEP_SHA256 2u
#define TOKEN_OAEP_SHA384 4u
#define TOKEN_OAEP_SHA512 8u
#define TOKEN_OAEP_N 4

/* The OAEP variants keyd offers, in the order of the bits above. */
struct token_oaep {
	unsigned bit;              /* TOKEN_OAEP_* */
	CK_MECHANISM_TYPE hash;
	CK_RSA_PKCS_MGF_TYPE mgf;  /* MGF1 of the same hash */
	const char *md;            /* OpenSSL's name of the hash */
	const char *name;          /* keyd's: "rsa-oaep-sha256" */
};
extern const struct token_oaep token_oaep_variants[TOKEN_OAEP_N];

/* token_oaep_names: "rsa-oaep-sha1, rsa-oaep-sha256" for the TOKEN_OAEP_*
 * bits, into dst (n bytes); "" for none. */
void token_oaep_names(unsigned bits, char *dst, size_t n);

struct token;

/* A worker's session on the token; zero-initialise before first use. One
 * thread at a time uses it. (token_proxy.c keeps none: the token
 * process's threads have the sessions.) */
struct token_session {
	CK_SESSION_HANDLE h;
	unsigned long generation;  /* the token's recoveries it belongs to */
	int open;
	CK_RV last_rv;             /* the token's answer to the last call */
};

/* token_open: loads the module, finds cfg->token, logs in with pin and
 * resolves every configured key, checking its type against its ops, the
 * token's mechanisms, and for RSA decryption keys the OAEP hashes the
 * token decrypts with. cfg->failover_token is not opened: the failover
 * token's process passes a config with the failover token as token (and
 * serving_failover set). With cfg->key_copies, the keys are copied into
 * session objects, which operations then use.
 * The token keeps a copy of the PIN in locked memory for logging in again
 * after a token reset. err names the key and URI of any failure. */
int token_open(const struct config *cfg, const char *pin, size_t pin_len,
    struct token **out, char *err, size_t errlen) TOKEN_WUR;

/* token_close: closes every session, logs out, finalises and unloads the
 * module, wipes the PIN. NULL is fine. */
void token_close(struct token *t);

/* token_audit_key: the key index of the audit key (for token_sign), or
 * -1 when none is configured. No client can reach it. */
long token_audit_key(const struct token *t);

/* token_key: the resolved key with config index i (or the audit key's). */
const struct token_key *token_key(const struct token *t, size_t i);
/* token_key_count: the config's keys (token_proxy.c only: the supervisor
 * asks it). */
size_t token_key_count(const struct token *t);
/* token_warn_weak: logs the loud warning for each key that is extractable
 * without CKA_WRAP_WITH_TRUSTED (token_proxy.c: at a start and at every
 * reload). Returns how many. */
size_t token_warn_weak(const struct token *t);
/* token_slot_count: the config's keys, then the audit key's and the
 * audit_tn key's slots where they are configured. */
size_t token_slot_count(const struct token *t);
/* token_tn_key: the slot of audit_tn_key (the last), or -1. */
long token_tn_key(const struct token *t);

/* token_session_close: closes a worker's session. */
void token_session_close(struct token *t, struct token_session *s);

/* token_sign / token_decrypt: one operation with the key of config index
 * key, in the caller's session. *outlen: room in out on entry, bytes
 * written on return. A session or login lost (CKR_SESSION_HANDLE_INVALID,
 * CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT) makes keyd reopen, log in again and retry once.
 * Returns KEYD_OK or a KEYD_ERR_* code, with msg saying why. */
int token_sign(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen) TOKEN_WUR;
int token_decrypt(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen) TOKEN_WUR;

/* token_sign_audit_line: signs an audit line (a checkpoint or a start
 * record without its "sig") with the audit key, as keyd-audit verifies
 * it: ECDSA over SHA-256 (returned as raw r||s), RSA PKCS#1 v1.5 with
 * SHA-256, or pure Ed25519. token.c signs in a session of its own;
 * token_proxy.c waits at most token_timeout. The token process signs
 * only a line that continues the chain of lines it signed. */
int token_sign_audit_line(struct token *t, const uint8_t *line, size_t len,
    uint8_t *out, size_t *outlen, char *msg, size_t msglen) TOKEN_WUR;

/* token_kcv: the check value of the AES key of config index key, in
 * version version (0: the key, v: its v-th `previous`): AES-ECB of a zero
 * block, else CKA_CHECK_VALUE; *how says which (static text). */
int token_kcv(struct token *t, struct token_session *s, size_t key,
    size_t version, uint8_t kcv[3], const char **how, char *msg,
    size_t msglen) TOKEN_WUR;

/* token_gcm: one single-part CKM_AES_GCM encryption (encrypt = 1) or
 * decryption with that key and version. *outlen: on entry the exact
 * number of bytes the result must have (at most 1024), on return the
 * same. *rv: the token's return value of the last try (CKR_OK when the
 * token was not reached). */
int token_gcm(struct token *t, struct token_session *s, size_t key,
    size_t version, int encrypt, const uint8_t *iv, size_t ivlen,
    const uint8_t *aad, size_t aadlen, unsigned tag_bits, const uint8_t *in,
    size_t inlen, uint8_t *out, size_t *outlen, CK_RV *rv, char *msg,
    size_t msglen) TOKEN_WUR;

/* token_hmac_sha256: HMAC-SHA256 (CKM_SHA256_HMAC) of in[0..inlen) under
 * the configured audit_tn_key (a generic secret key on the token that no
 * client can use), into out, in the caller's session, with token_sign's
 * recovery. For the audit log's TNs (audit_tn = hmac): a plain hash of a
 * number of at most 15 digits is reversed by trying them all. Returns
 * KEYD_OK, KEYD_ERR_INTERNAL without audit_tn_key, or token_sign's
 * errors. */
#define TOKEN_HMAC_LEN 32
int token_hmac_sha256(struct token *t, struct token_session *s,
    const uint8_t *in, size_t inlen, uint8_t out[TOKEN_HMAC_LEN], char *msg,
    size_t msglen) TOKEN_WUR;

/* token_random: n bytes from the token's C_GenerateRandom. */
int token_random(struct token *t, struct token_session *s, uint8_t *out,
    size_t n, char *msg, size_t msglen) TOKEN_WUR;

struct token_info {
	char label[33];
	char manufacturer[33];
	char model[17];
	char serial[17];
	const char *role;          /* "primary", "failover" */
	const char *state;         /* serving, standby, failed, hung, ... */
	int active;                /* served the last request */
	int logged_in;
	unsigned key_copies;       /* keys served from session copies */
	unsigned long recoveries;
};

/* token_probe: keyd's own health probe: C_GenerateRandom in a session of
 * its own; if that fails, a re-login and one more try. KEYD_OK, or the
 * error of the last try: the module has lost its device. */
int token_probe(struct token *t, char *msg, size_t msglen) TOKEN_WUR;

/* token_pin_refused: the token refused keyd's PIN (no retries follow). */
int token_pin_refused(struct token *t);

/* token_count: token_proxy.c: 1, or 2 with a failover token; token.c: 1. */
size_t token_count(const struct token *t);

/* token_get_info: identity and state of token i (0: the primary; token.c
 * has only its own token, and ignores i). */
void token_get_info(struct token *t, size_t i, struct token_info *info);

/* token_reload: the keys are read again from the token (handles, session
 * copies) before its next operation; a key whose public key changed is
 * refused. */
void token_reload(struct token *t);

/* token_key_type_name: "ec-p256", "rsa", ... */
const char *token_key_type_name(enum token_key_type type);

/* token_uri_label: the token label a token URI names, else the URI. */
void token_uri_label(const char *uri, char *out, size_t n);

/* token_rv_name: the CKR_* name of a PKCS#11 return value. */
const char *token_rv_name(CK_RV rv);

#endif
