/*
 * backup_token.h: what keyd-backup does inside a token: generate keys that
 * can only be wrapped under a trusted key, check the token's RFC 5649 key
 * wrap against the RFC's known answers, put the backup master key (BMK)
 * in as a trusted session object, wrap keys under it, and restore them
 * (all or nothing) with their original attributes.
 *
 * Every function takes an open struct p11 (p11.h) with the right user
 * logged in, as its comment says, and writes what went wrong to err
 * (never a secret).
 */
#ifndef KEYD_BACKUP_TOKEN_H
#define KEYD_BACKUP_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backup_drill.h"
#include "bundle.h"
#include "p11.h"

#define BACKUP_TOKEN_WUR __attribute__((warn_unused_result))

/* What keygen makes. */
enum backup_key_kind {
	BACKUP_KIND_EC_P256 = 1,
	BACKUP_KIND_EC_P384,
	BACKUP_KIND_RSA_2048,
	BACKUP_KIND_RSA_3072,
	BACKUP_KIND_ED25519,
	BACKUP_KIND_AES_128,
	BACKUP_KIND_AES_256,
};

/* Usage flags keygen takes (--usage). */
enum {
	BACKUP_USAGE_SIGN = 1u << 0,     /* CKA_SIGN (+ CKA_VERIFY on the pub) */
	BACKUP_USAGE_DECRYPT = 1u << 1,  /* CKA_DECRYPT (+ CKA_ENCRYPT on pub) */
	BACKUP_USAGE_SRTP = 1u << 2,     /* AES: CKA_ENCRYPT and CKA_DECRYPT */
};

struct backup_keygen {
	enum backup_key_kind kind;
	const char *label;
	const uint8_t *id;
	size_t id_len;
	unsigned usage;          /* BACKUP_USAGE_* */
	int backup;              /* 0: not extractable (--no-backup) */
};

/* backup_kind_parse: "ec:p256" ... "aes:256" to a kind; 0 if unknown. */
enum backup_key_kind backup_kind_parse(const char *s);
/* backup_kind_usage_ok: whether usage suits kind; if not, *why says. */
int backup_kind_usage_ok(enum backup_key_kind kind, unsigned usage,
    const char **why);

/* backup_token_keygen: generates the key on the token (user logged in)
 * with CKA_SENSITIVE, CKA_EXTRACTABLE (unless !backup) and
 * CKA_WRAP_WITH_TRUSTED, and exactly the usage asked for, every flag set
 * explicitly; the public key of a pair gets the same label and id. It
 * refuses a label that a key on the token already has. The description
 * of the new key (attributes and fingerprint, no wrapped bytes) goes to
 * *out. */
int backup_token_keygen(struct p11 *p, const struct backup_keygen *req,
    struct bundle_key *out, char *err, size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_pick_wrap: the RFC 5649 mechanism to use on this token
 * (user logged in): CKM_AES_KEY_WRAP_KWP if the token has it, else
 * CKM_AES_KEY_WRAP_PAD; either only after the token's answers to RFC
 * 5649's known-answer examples (section 6) are checked. Unwrapping must
 * give the RFC's keys exactly. Wrapping must give the RFC's bytes (*alg =
 * BUNDLE_WRAP_RFC5649) or, with for_wrap, the RFC 5649 wrap of the keys
 * zero-padded to 8 bytes (*alg = BUNDLE_WRAP_RFC5649_ZERO_PAD: SoftHSM2
 * 2.6.1's 0x210A). Without for_wrap (restore) only unwrapping is checked.
 * Returns KEYD_OK, KEYD_ERR_UNSUPPORTED (neither mechanism) or
 * KEYD_ERR_TOKEN (the token's answers differ). */
int backup_token_pick_wrap(struct p11 *p, int for_wrap,
    CK_MECHANISM_TYPE *mech, uint8_t *alg, char *err, size_t errlen)
    BACKUP_TOKEN_WUR;

/* backup_token_describe: reads the key at h (found by uri; user logged
 * in) into *k: class, type, size, label, id, flags, and for a pair the
 * public key object (same id) with its SPKI and fingerprint, for a secret
 * key its check value. Refuses, naming the attribute, a key that is not
 * extractable or is extractable without CKA_WRAP_WITH_TRUSTED. */
int backup_token_describe(struct p11 *p, CK_OBJECT_HANDLE h, const char *uri,
    struct bundle_key *k, char *err, size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_new_bmk: 32 bytes of C_GenerateRandom XOR getrandom()
 * into bmk (the caller's, locked). */
int backup_token_new_bmk(struct p11 *p, uint8_t *bmk, char *err,
    size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_trusted_bmk: logs the SO in (so_pin), creates the BMK as
 * a public session object with CKA_TRUSTED, CKA_WRAP and CKA_UNWRAP,
 * logs the SO out and the user in (user_pin). *h is the BMK object,
 * which lives until it is destroyed or the session closes. Whoever was
 * logged in before is logged out first. */
int backup_token_trusted_bmk(struct p11 *p, const char *so_pin,
    size_t so_len, const char *user_pin, size_t user_len,
    const uint8_t *bmk, CK_OBJECT_HANDLE *h, char *err, size_t errlen)
    BACKUP_TOKEN_WUR;

/* backup_token_wrap: wraps the key object h under the BMK object bmk
 * with mech, into k->wrapped (user logged in). */
int backup_token_wrap(struct p11 *p, CK_MECHANISM_TYPE mech,
    CK_OBJECT_HANDLE bmk, CK_OBJECT_HANDLE h, struct bundle_key *k,
    char *err, size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_destroy: destroys a session or token object; errors are
 * ignored (used in clean-up). */
void backup_token_destroy(struct p11 *p, CK_OBJECT_HANDLE h);

/* backup_token_restore: restores every key of the bundle b (its MAC
 * already checked) onto the token (user logged in): checks that no
 * object has a label or id of the bundle's keys, checks the wrap
 * mechanism's known answers, imports bmk as a session object, unwraps
 * each key with its recorded attributes, re-creates each public key,
 * checks each fingerprint, runs a sign/verify or encrypt/decrypt
 * self-test, and destroys the BMK object. Writes one line a key to
 * report. All or nothing: on failure every object it made is destroyed.
 * Returns KEYD_OK or a KEYD_ERR_* code with err saying why. */
int backup_token_restore(struct p11 *p, const struct bundle *b,
    const uint8_t *bmk, size_t bmk_len, FILE *report, char *err,
    size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_drill: proves that bmk (the bundle's, its MAC already
 * checked) restores every key of b, changing nothing the token keeps
 * (user logged in): the same checks as backup_token_restore but for the
 * blank-token check, with the BMK and every key as session objects of
 * this session. Each key is unwrapped, re-created with its public key,
 * checked, self-tested and destroyed before the next; res[i] (b->n_keys
 * of them, the caller's) says how key i fared, and one line a key goes
 * to report. Every object it made is destroyed before it returns.
 * Returns KEYD_OK if every key passed, KEYD_ERR_BUNDLE if one or more
 * failed (err says how many), or another KEYD_ERR_* if the drill could
 * not start (err says why; every res[i] is BACKUP_DRILL_NOT_RUN). */
int backup_token_drill(struct p11 *p, const struct bundle *b,
    const uint8_t *bmk, size_t bmk_len, FILE *report,
    struct backup_drill_key *res, char *err, size_t errlen)
    BACKUP_TOKEN_WUR;

/* backup_token_find: the one key object on the token (user logged in)
 * with k's class, label and id, into *h. Returns KEYD_OK,
 * KEYD_ERR_NOT_FOUND (none, or more than one; err says which) or
 * KEYD_ERR_TOKEN. Handles of private objects die when the user logs out
 * (SoftHSM2), so a key is found again after the SO's login. */
int backup_token_find(struct p11 *p, const struct bundle_key *k,
    CK_OBJECT_HANDLE *h, char *err, size_t errlen) BACKUP_TOKEN_WUR;

/* backup_token_match: finds on the token (user logged in) the one key
 * object with old's class, label and id, describes it into *now as
 * backup_token_describe does (with its refusals), and checks that it is
 * still old's key: type, size and fingerprint (SPKI SHA-256 or check
 * value). *h is its handle. Returns KEYD_OK, KEYD_ERR_NOT_FOUND (not on
 * the token, or more than once), KEYD_ERR_BUNDLE (another key under that
 * label and id), or describe's errors; err names the key. */
int backup_token_match(struct p11 *p, const struct bundle_key *old,
    CK_OBJECT_HANDLE *h, struct bundle_key *now, char *err, size_t errlen)
    BACKUP_TOKEN_WUR;

/* The RFC 5649 section 6 known answers (KEK, then per example the key
 * and the wrapped key), and the wrap of the key zero-padded to 8 bytes
 * (computed with OpenSSL's id-aes192-wrap-pad), for the unit test that
 * checks them against OpenSSL and tests/vectors/. */
struct backup_kat {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *wrapped;
	size_t wrapped_len;
	const uint8_t *zp_wrapped;
	size_t zp_wrapped_len;
};
extern const uint8_t backup_kat_kek[24];
extern const struct backup_kat backup_kats[2];

#endif
