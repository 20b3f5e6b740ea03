/*
 * shaken.h: keyd's STIR/SHAKEN signer (docs/shaken.md). For each key with
 * ops = passport it holds the certificate (a PEM file from the config, or
 * the token's certificate object with the key's CKA_ID), checked at
 * start-up to carry the key's own public key, its validity period and
 * its TNAuthList (RFC 8226). Per request it builds the PASSporT itself
 * (RFC 8225, RFC 8588; RFC 8946 for ppt "div"): the JSON with sorted keys
 * and no whitespace, iat from keyd's clock, x5u from the config, and an
 * ES256 signature made on the token (raw r||s, base64url).
 *
 * The client policy (attest_max, orig_tns) is policy.c's; the
 * certificate's rules (validity, TNAuthList) are checked here.
 */
#ifndef KEYD_SHAKEN_H
#define KEYD_SHAKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "keyd.pb-c.h"
#include "passport.h"
#include "token.h"

#define SHAKEN_WUR __attribute__((warn_unused_result))

/* A request names at most this many destination TNs. */
#define SHAKEN_MAX_DEST 16
/* keyd warns about a certificate this many days before it expires. */
#define SHAKEN_WARN_DAYS 14
/* The longest JWS and Identity header value keyd makes: header (with an
 * x5u of CONFIG_X5U_MAX), claims with SHAKEN_MAX_DEST TNs, signature. */
#define SHAKEN_JWS_MAX 4096
#define SHAKEN_IDENTITY_MAX (SHAKEN_JWS_MAX + CONFIG_X5U_MAX + 64)
#define SHAKEN_UUID_BUF 37

struct shaken;

/* What a passport request asked for, canonical, for the audit line. */
struct shaken_claims {
	int is_div;
	char attest[2];                          /* shaken: "A", "B", "C" */
	char orig[PASSPORT_TN_BUF];
	char div[PASSPORT_TN_BUF];               /* div: the diverting TN */
	char dest[SHAKEN_MAX_DEST][PASSPORT_TN_BUF];
	size_t n_dest;
	char origid[SHAKEN_UUID_BUF];            /* shaken */
	int64_t iat;
};

/* A signed PASSporT (out of the heap: not secret). */
struct shaken_result {
	struct shaken_claims claims;
	char jws[SHAKEN_JWS_MAX];
	char identity[SHAKEN_IDENTITY_MAX];
};

/*
 * shaken_init: loads and checks the certificate of every passport key of
 * cfg (resolved on token t): it must hold the key's public key and have a
 * TNAuthList; a key with another op must not share a passport key's
 * public key (on either token: the token layer has checked that both
 * hold the same keys). An expired or not yet valid certificate, or one
 * that expires within SHAKEN_WARN_DAYS, is only a warning here. Without
 * passport keys *out is a valid empty set. Returns KEYD_OK, or
 * KEYD_ERR_CONFIG with err naming the key and what to fix.
 */
int shaken_init(const struct config *cfg, struct token *t,
    struct shaken **out, char *err, size_t errlen) SHAKEN_WUR;

/* A certificate file's bytes read by someone who may read the file (the
 * supervisor, at a reload: the socket-facing process's sandbox does not
 * reach the file's directory). */
struct shaken_pem {
	const char *path;        /* as the configuration names it */
	const uint8_t *pem;
	size_t len;
};

/* shaken_init_pems: shaken_init, with the certificate files taken from
 * pems (by path) where they are there, and read by path otherwise. */
int shaken_init_pems(const struct config *cfg, struct token *t,
    const struct shaken_pem *pems, size_t n_pems, struct shaken **out,
    char *err, size_t errlen) SHAKEN_WUR;

/* shaken_free: frees sh; NULL is fine. */
void shaken_free(struct shaken *sh);

/*
 * shaken_parse: checks and canonicalises the request req into *cl: ppt,
 * attest, the TNs (RFC 8224 section 8.3: '+' and separators dropped, 1 to
 * 15 digits), at most SHAKEN_MAX_DEST dest, origid (a UUID, written in
 * lower case). An empty origid is left empty (shaken_sign makes one).
 * Returns KEYD_OK or KEYD_ERR_INVALID_ARG with msg naming the field.
 */
int shaken_parse(const Keyd__V1__PassportRequest *req,
    struct shaken_claims *cl, char *msg, size_t msglen) SHAKEN_WUR;

/*
 * shaken_check_cert: the certificate rules for a PASSporT under key at
 * time now: the certificate must be valid now, and if its TNAuthList
 * lists TNs or ranges, the signer's TN (orig, or div for ppt div) must be
 * among them. Returns KEYD_OK; KEYD_ERR_CERTIFICATE (expired, not yet
 * valid) or KEYD_ERR_DENIED (TNAuthList), with msg naming the rule.
 */
int shaken_check_cert(const struct shaken *sh, size_t key, time_t now,
    const struct shaken_claims *cl, char *msg, size_t msglen) SHAKEN_WUR;

/*
 * shaken_sign: builds the PASSporT of cl (iat = now; an origid from the
 * token's RNG if cl has none) with the x5u of key, signs it ES256 on the
 * token in session s, and writes the JWS and the Identity header value
 * into res. Returns KEYD_OK or a KEYD_ERR_* code with msg saying why.
 */
int shaken_sign(const struct shaken *sh, struct token *t,
    struct token_session *s, size_t key, time_t now,
    const struct shaken_claims *cl, struct shaken_result *res, char *msg,
    size_t msglen) SHAKEN_WUR;

/*
 * shaken_tick: from the main loop, often: a line in keyd's log once a
 * day for each passport key whose certificate expires within
 * SHAKEN_WARN_DAYS, has expired or is not valid yet (start-up warns
 * too), since a certificate can expire while keyd runs.
 */
void shaken_tick(struct shaken *sh, time_t now);

/*
 * shaken_key_status: for a passport key, sets the certificate fields of
 * ks (days left at now, a warning from SHAKEN_WARN_DAYS before expiry);
 * nothing for other keys. warn: room for the warning (ks points into it).
 */
void shaken_key_status(const struct shaken *sh, size_t key, time_t now,
    Keyd__V1__KeyStatus *ks, char *warn, size_t warnlen);

#endif
