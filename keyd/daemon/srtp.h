/*
 * srtp.h: SRTP master keys (srtp-new, srtp-open). keyd draws a master key
 * and salt from the token's RNG and wraps them with CKM_AES_GCM on the
 * token under a key-encryption key (KEK) that never leaves it. The blob
 * format, its associated data and KEK rotation are described byte by byte
 * in docs/srtp.md.
 *
 * A KEK version is named by its key check value (KCV): the first 3 bytes
 * of AES-ECB(KEK, 16 zero bytes), the value PKCS#11 defines for an AES
 * key's CKA_CHECK_VALUE. It is a property of the key itself, so listing,
 * removing or reordering versions in the configuration, or restoring the
 * KEK onto another token, never makes a blob open under another KEK.
 *
 * The number of blobs made under each KEK (each a GCM encryption with a
 * random 96-bit IV) is counted in [keyd] state_dir, durably, and srtp-new
 * is refused once SRTP_LIMIT blobs were made (NIST SP 800-38D, 8.3).
 */
#ifndef KEYD_SRTP_H
#define KEYD_SRTP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keyd.pb-c.h"
#include "token.h"

#define SRTP_WUR __attribute__((warn_unused_result))

#define SRTP_MAX_KEY 32          /* AES-256 master key */
#define SRTP_MAX_SALT 14         /* AES-CM master salt (GCM's is 12) */
#define SRTP_KCV_LEN 3           /* a KEK version's name on the wire */
#define SRTP_HDR_LEN 9           /* magic, format, suite, KEK version */
#define SRTP_IV_LEN 12           /* 96-bit GCM IV */
#define SRTP_TAG_LEN 16          /* 128-bit GCM tag */
#define SRTP_BLOB_MAX (SRTP_HDR_LEN + SRTP_IV_LEN + SRTP_MAX_KEY + \
	SRTP_MAX_SALT + SRTP_TAG_LEN)
#define SRTP_MAX_CONTEXT 1024    /* bytes of a request's context */
/* "inline:" and base64 of key||salt (46 bytes -> 64 characters), NUL. */
#define SRTP_KEY_PARAMS_MAX 80
#define SRTP_MECH_MAX 64         /* "AEAD_AES_256_GCM kek-3f9a1c" */

/* Blobs per KEK version: refused at SRTP_LIMIT, warned past SRTP_WARN.
 * Random 96-bit IVs allow 2^32 encryptions under one key; keyd stops at
 * half of that. */
#define SRTP_LIMIT (UINT64_C(1) << 31)
#define SRTP_WARN (UINT64_C(1) << 30)

struct srtp;

/* Storage for one SRTP reply. Allocate it with secmem_alloc (it holds key
 * material) and free it with secmem_free once the reply is packed. */
struct srtp_result {
	Keyd__V1__SrtpNewReply new_reply;
	Keyd__V1__SrtpOpenReply open_reply;
	/* key||salt; the tag's room too, since a token may want room for
	 * all of C_Decrypt's input (SoftHSM2 does) */
	uint8_t key_salt[SRTP_MAX_KEY + SRTP_MAX_SALT + SRTP_TAG_LEN];
	char key_params[SRTP_KEY_PARAMS_MAX];
	uint8_t blob[SRTP_BLOB_MAX];
	char mech[SRTP_MECH_MAX];    /* for the audit record */
};

/* srtp_init: for every key with srtp-new or srtp-open, computes the check
 * value of each KEK version on the token (refusing two versions with the
 * same one), and for every KEK that makes blobs, opens state_dir (creating
 * it 0700, owned by the daemon user, if missing), takes its lock and reads
 * the KEK's counter. check_only: read what exists, create and lock
 * nothing. With no SRTP keys, state_dir is not touched. *out is owned by
 * the caller (srtp_free). On failure err says what to fix. */
int srtp_init(const struct config *cfg, struct token *t, int check_only,
    struct srtp **out, char *err, size_t errlen) SRTP_WUR;

/* srtp_reinit: srtp_init for a reload's new configuration while prev
 * (the running one's, or NULL) serves on: it shares prev's lock of
 * state_dir, and the blob count of every KEK both count (one counter,
 * one lock, whichever configuration a request runs under), so that a
 * reload neither counts a blob twice nor skips any of a KEK's allowance. */
int srtp_reinit(const struct config *cfg, struct token *t, struct srtp *prev,
    int check_only, struct srtp **out, char *err, size_t errlen) SRTP_WUR;

/* srtp_free: releases the lock and frees st. NULL is fine. */
void srtp_free(struct srtp *st);

/* srtp_suite_name: "AES_CM_128_HMAC_SHA1_80", ...; "unknown" otherwise. */
const char *srtp_suite_name(int suite);

/* handle_srtp_new: a fresh master key and salt for req->suite from the
 * token's RNG, and their blob under the current version of key (a config
 * index the policy already allowed for srtp-new). Fills res->new_reply,
 * points resp at it and writes res->mech. Returns KEYD_OK, or
 * KEYD_ERR_BAD_ALGORITHM (unknown suite), KEYD_ERR_BAD_LENGTH (context),
 * KEYD_ERR_LIMIT (the KEK made its last blob), KEYD_ERR_IO (state_dir
 * cannot be written), KEYD_ERR_TOKEN..., with msg saying why. */
int handle_srtp_new(struct srtp *st, struct token *t, struct token_session *s,
    size_t key, const Keyd__V1__SrtpNewRequest *req, Keyd__V1__Response *resp,
    struct srtp_result *res, char *msg, size_t msglen) SRTP_WUR;

/* handle_srtp_open: the master key and salt in req->blob, if it is a blob
 * of key (srtp-open allowed by the policy) under one of its configured KEK
 * versions, with the same context. Fills res->open_reply and points resp
 * at it. Returns KEYD_OK, KEYD_ERR_BLOB (altered, truncated, another key
 * or context, or a KEK version not configured), KEYD_ERR_TOKEN..., with
 * msg saying why. */
int handle_srtp_open(struct srtp *st, struct token *t,
    struct token_session *s, size_t key, const Keyd__V1__SrtpOpenRequest *req,
    Keyd__V1__Response *resp, struct srtp_result *res, char *msg,
    size_t msglen) SRTP_WUR;

/* srtp_key_status: sets the SRTP fields of ks for key (config index): the
 * current KEK version, its blob count and limit, and a warning past
 * SRTP_WARN. Strings stay owned by st. Nothing for keys without srtp-new. */
void srtp_key_status(struct srtp *st, size_t key, Keyd__V1__KeyStatus *ks);

#endif
