/*
 * passport.h: what keyd and keydctl share about STIR/SHAKEN PASSporTs
 * (RFC 8225, RFC 8588, RFC 8946) and the certificates that sign them
 * (RFC 8226): telephone-number canonicalisation, the TNAuthList
 * certificate extension, and the offline verification of a PASSporT or a
 * SIP Identity header value (RFC 8224) against a certificate.
 *
 * It lives beside the protocol code, in its own static library
 * (keydpassport), because both sides need it: keydctl's "passport verify"
 * and keyd's passport op (keyd/shaken.c) for TN canonicalisation and
 * the TNAuthList check. It is not in keydproto, whose objects go into
 * libkeyd.so, so that libkeyd does not gain OpenSSL and json-c.
 */
#ifndef KEYD_PASSPORT_H
#define KEYD_PASSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "keyd_err.h"

#define PASSPORT_WUR __attribute__((warn_unused_result))

/* A canonical TN: 1 to 15 digits (E.164 without the '+'), and its NUL. */
#define PASSPORT_TN_MAX 15u
#define PASSPORT_TN_BUF (PASSPORT_TN_MAX + 1u)

/*
 * passport_tn_canon: canonicalises the telephone number in[0..len) as
 * RFC 8224 section 8.3 says for what keyd can know: a leading '+' and the
 * visual separators '-', '.', '(', ')' and space are dropped; no country
 * code is ever guessed. Writes the digits and a NUL to out. Returns
 * KEYD_OK, or KEYD_ERR_INVALID_ARG if what is left is not 1 to 15 digits.
 */
int passport_tn_canon(const char *in, size_t len,
    char out[PASSPORT_TN_BUF]) PASSPORT_WUR;

/* A certificate's TNAuthList, read by passport_tnauth_read. */
struct passport_tnauth;

/*
 * passport_tnauth_read: reads the TNAuthList extension (RFC 8226, OID
 * 1.3.6.1.5.5.7.1.26) of cert into a new *out, which the caller frees with
 * passport_tnauth_free. Both published encodings of a range entry are
 * read (see passport.c). Returns KEYD_OK; KEYD_ERR_NOT_FOUND if cert has
 * no such extension (*out is then NULL); KEYD_ERR_INVALID_ARG if the
 * extension is malformed or appears twice, with a reason in why.
 */
int passport_tnauth_read(X509 *cert, struct passport_tnauth **out,
    char *why, size_t whylen) PASSPORT_WUR;

/* passport_tnauth_free: frees t; NULL is fine. */
void passport_tnauth_free(struct passport_tnauth *t);

/*
 * passport_tnauth_spc_only: 1 if t lists no TN and no TN range, only
 * service provider codes: which numbers those cover is then the client
 * policy's choice. 0 otherwise.
 */
int passport_tnauth_spc_only(const struct passport_tnauth *t);

/*
 * passport_tnauth_covers: 1 if the canonical TN tn (digits only) is one of
 * t's TNs or falls in one of its ranges, else 0. Service provider codes
 * cover nothing here.
 */
int passport_tnauth_covers(const struct passport_tnauth *t, const char *tn);

/* The default maximum age of iat (RFC 8224 section 6.2.2 recommends 60 s)
 * and the clock skew allowed for an iat in the future. */
#define PASSPORT_MAX_AGE_DEFAULT 60
#define PASSPORT_FUTURE_SKEW 5
/* The longest PASSporT or Identity header value verified. */
#define PASSPORT_MAX_INPUT 8192u

/*
 * passport_verify: verifies in[0..len), a PASSporT in JWS Compact
 * Serialization or a whole SIP Identity header value
 * "<jws>;info=<URL>;alg=ES256;ppt=shaken", against cert at time now,
 * with iat at most max_age seconds old. On success returns KEYD_OK and
 * sets *claims to a new string, one "name: value" line per claim, that
 * the caller frees with free(). On failure returns a KEYD_ERR_* value and
 * writes one line naming what failed to why (*claims is then NULL).
 */
int passport_verify(const char *in, size_t len, X509 *cert, time_t now,
    long max_age, char **claims, char *why, size_t whylen) PASSPORT_WUR;

#endif
