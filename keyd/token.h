/*
 * token.h: everything keyd does with its PKCS#11 token. The module is
 * loaded through p11-kit from the configured path only and initialised
 * with CKF_OS_LOCKING_OK; keys are named by RFC 7512 URIs and resolved
 * once at start-up (C_FindObjects is slow on SoftHSM2). One "keeper"
 * session stays open and logged in for the whole run, since closing a
 * token's last session logs it out; each worker thread has its own
 * session, since two threads on one session get CKR_OPERATION_ACTIVE.
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
};

struct token_key {
	const char *name;          /* the config's key name (not owned) */
	const char *uri;           /* (not owned) */
	enum token_key_type type;
	unsigned bits;             /* modulus, curve or AES key size */
	CK_OBJECT_HANDLE handle;   /* private or secret key */
	CK_ATTRIBUTE *tmpl;        /* the URI's search template */
	CK_ULONG tmpl_n;
	uint8_t id[TOKEN_MAX_ID];
	size_t id_len;
	uint8_t *spki;             /* DER SubjectPublicKeyInfo; NULL for AES */
	size_t spki_len;
	int can_sign, can_decrypt, can_encrypt;
	int extractable, wrap_with_trusted;
	int weak_extractable;      /* extractable, not wrap-with-trusted */
	uint8_t *cert;             /* DER X.509 with the same CKA_ID, or NULL */
	size_t cert_len;
	/* Earlier versions of the key ([key] previous, SRTP KEKs): their
	 * handles, in the order of the config, checked to be AES keys. */
	CK_OBJECT_HANDLE *prev;
	CK_ATTRIBUTE **prev_tmpl;
	CK_ULONG *prev_tmpl_n;
	size_t n_prev;
};

struct token;

/* Per-thread session; zero-initialise before first use. */
struct token_session {
	CK_SESSION_HANDLE h;
	unsigned long generation;
	int open;
};

/* token_open: loads the module, finds the token, logs in with pin and
 * resolves every configured key, checking its type against its ops.
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
size_t token_key_count(const struct token *t);

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

/* token_op_fn: one PKCS#11 operation in session s with the key object
 * key; returns the token's CK_RV. */
typedef CK_RV (*token_op_fn)(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE key, void *arg);

/* token_run: runs fn in the caller's session with the key of config index
 * key: version 0 is the key itself, version v >= 1 is its v-th
 * `previous` entry. Same recovery and retry as token_sign. fn must be
 * safe to run twice (a retry), and must leave no operation active when it
 * fails. Returns KEYD_OK, or a KEYD_ERR_* code with msg saying why. */
int token_run(struct token *t, struct token_session *s, size_t key,
    size_t version, token_op_fn fn, void *arg, char *msg, size_t msglen)
    TOKEN_WUR;

/* token_random: n bytes from the token's C_GenerateRandom. */
int token_random(struct token *t, struct token_session *s, uint8_t *out,
    size_t n, char *msg, size_t msglen) TOKEN_WUR;

struct token_info {
	char label[33];
	char manufacturer[33];
	char model[17];
	char serial[17];
	int logged_in;
	unsigned long recoveries;
};

/* token_get_info: identity and state, for status. */
void token_get_info(struct token *t, struct token_info *info);

/* token_key_type_name: "ec-p256", "rsa", ... */
const char *token_key_type_name(enum token_key_type type);

/* token_rv_name: the CKR_* name of a PKCS#11 return value. */
const char *token_rv_name(CK_RV rv);

#endif
