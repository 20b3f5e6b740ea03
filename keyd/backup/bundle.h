/*
 * bundle.h: the backup bundle of keyd-backup. A bundle is not secret: it
 * holds the keys wrapped (RFC 5649) under the backup master key (BMK),
 * their PKCS#11 attributes and fingerprints, the SLIP-0039 share policy,
 * one hash commitment per share, and an HMAC-SHA256 over all of it under
 * a key derived from the BMK with HKDF-SHA256. docs/backup.md describes
 * the byte layout; bundle.c is its one reader and writer, and every byte
 * it reads goes through a bounded kbuf.
 *
 * Fingerprint of a bundle: SHA-256 of the whole file, MAC included. It is
 * printed on every share sheet and names the bundle the shares belong to.
 *
 * Share commitment: SHA-256 of a domain string, the bundle's set id and
 * every field of the decoded share (identifier, flags, group and member
 * parameters and the share value). It lets one officer check one share
 * alone, with no token and no other share; since a share value is as
 * unpredictable as the 256-bit BMK it shares, the hash reveals nothing
 * that can be searched for.
 */
#ifndef KEYD_BUNDLE_H
#define KEYD_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "slip39.h"

#define BUNDLE_WUR __attribute__((warn_unused_result))

#define BUNDLE_VERSION 1
/* Limits a bundle must keep; bundle_parse refuses anything beyond. */
#define BUNDLE_MAX_SIZE (1u << 20)   /* bytes of a bundle file */
#define BUNDLE_MAX_KEYS 64
#define BUNDLE_MAX_LABEL 128         /* bytes of CKA_LABEL */
#define BUNDLE_MAX_ID 128            /* bytes of CKA_ID */
#define BUNDLE_MAX_PUB 1100          /* one public attribute (RSA-8192) */
#define BUNDLE_MAX_SPKI 1200         /* DER SubjectPublicKeyInfo */
#define BUNDLE_MAX_WRAPPED 8192      /* a wrapped RSA-8192 PKCS#8 key */
#define BUNDLE_MAX_KCV 16
#define BUNDLE_SET_ID_LEN 16
#define BUNDLE_HASH_LEN 32           /* SHA-256, HMAC-SHA256 */
/* The BMK: 256 bits, the SLIP-0039 master secret of the shares. */
#define BUNDLE_BMK_LEN 32

/* Wrap algorithm and MAC algorithm codes stored in the header. */
#define BUNDLE_WRAP_RFC5649 1        /* AES key wrap with padding */
/* RFC 5649 of the key zero-padded to a multiple of 8 bytes first: what
 * SoftHSM2 2.6.1's CKM_AES_KEY_WRAP_PAD gives. RFC 5649 unwrapping gives
 * the key followed by up to 7 zero bytes. */
#define BUNDLE_WRAP_RFC5649_ZERO_PAD 2
#define BUNDLE_MAC_HKDF_HMAC_SHA256 1

/* Fingerprint kinds. */
#define BUNDLE_FP_SPKI_SHA256 1      /* SHA-256 of the DER SPKI */
#define BUNDLE_FP_KCV 2              /* CKA_CHECK_VALUE: AES-ECB(0)[0..3) */

/* Attribute flags of a key (private, secret or public key object): the
 * CK_BBOOL attributes a bundle records. bundle_flags lists them. */
enum {
	BUNDLE_F_SENSITIVE = 1u << 0,
	BUNDLE_F_EXTRACTABLE = 1u << 1,
	BUNDLE_F_WRAP_WITH_TRUSTED = 1u << 2,
	BUNDLE_F_PRIVATE = 1u << 3,
	BUNDLE_F_SIGN = 1u << 4,
	BUNDLE_F_VERIFY = 1u << 5,
	BUNDLE_F_ENCRYPT = 1u << 6,
	BUNDLE_F_DECRYPT = 1u << 7,
	BUNDLE_F_WRAP = 1u << 8,
	BUNDLE_F_UNWRAP = 1u << 9,
	BUNDLE_F_DERIVE = 1u << 10,
	BUNDLE_F_SIGN_RECOVER = 1u << 11,
	BUNDLE_F_VERIFY_RECOVER = 1u << 12,
	BUNDLE_F_ALWAYS_AUTHENTICATE = 1u << 13,
	BUNDLE_F_MODIFIABLE = 1u << 14,
};
#define BUNDLE_F_ALL ((1u << 15) - 1)

struct bundle_flag {
	unsigned bit;
	unsigned long attr;   /* the CKA_* it stands for */
	const char *name;     /* "sensitive", "sign", ... */
};
/* The table of flags, terminated by a row with bit 0. */
extern const struct bundle_flag bundle_flags[];

/* One key. For a key pair (cls CKO_PRIVATE_KEY) the public key travels
 * too: pub_a/pub_b are its PKCS#11 values (EC: CKA_EC_PARAMS and
 * CKA_EC_POINT; RSA: CKA_MODULUS and CKA_PUBLIC_EXPONENT) and spki its DER
 * SubjectPublicKeyInfo; fp is SHA-256(spki). For a secret key pub_* and
 * spki are empty and fp is its check value. */
struct bundle_key {
	uint32_t cls;           /* CKO_PRIVATE_KEY or CKO_SECRET_KEY */
	uint32_t key_type;      /* CKK_* */
	uint32_t bits;          /* modulus, curve or AES key size */
	char label[BUNDLE_MAX_LABEL + 1];
	size_t label_len;
	uint8_t id[BUNDLE_MAX_ID];
	size_t id_len;
	uint32_t flags;         /* BUNDLE_F_* of the private or secret key */
	uint32_t pub_flags;     /* BUNDLE_F_* of the public key; 0 for secret */
	uint8_t pub_a[BUNDLE_MAX_PUB];
	size_t pub_a_len;
	uint8_t pub_b[BUNDLE_MAX_PUB];
	size_t pub_b_len;
	uint8_t spki[BUNDLE_MAX_SPKI];
	size_t spki_len;
	uint8_t fp_kind;        /* BUNDLE_FP_* */
	uint8_t fp[BUNDLE_HASH_LEN];
	size_t fp_len;
	uint8_t wrapped[BUNDLE_MAX_WRAPPED];
	size_t wrapped_len;
};

/* The commitment to one share, by its group and member index (0-based). */
struct bundle_commit {
	uint8_t group;
	uint8_t member;
	uint8_t c[BUNDLE_HASH_LEN];
};

struct bundle {
	uint16_t version;
	uint8_t set_id[BUNDLE_SET_ID_LEN];
	uint64_t created;       /* Unix time */
	uint8_t wrap_alg;       /* BUNDLE_WRAP_* */
	uint32_t wrap_mech;     /* the CKM_* used at creation */
	uint8_t mac_alg;        /* BUNDLE_MAC_* */
	/* The SLIP-0039 policy and parameters of the shares. */
	uint16_t slip39_id;
	uint8_t ext;
	uint8_t iteration_exp;
	uint8_t secret_len;
	uint8_t group_threshold;
	uint8_t group_count;
	uint8_t member_threshold[SLIP39_MAX_GROUPS];
	uint8_t member_count[SLIP39_MAX_GROUPS];
	struct bundle_key *keys;    /* n_keys, malloc'ed */
	size_t n_keys;
	struct bundle_commit commits[SLIP39_MAX_SHARES];
	size_t n_commits;
	uint8_t mac[BUNDLE_HASH_LEN];
	uint8_t fingerprint[BUNDLE_HASH_LEN]; /* SHA-256 of the file */
	uint8_t *raw;           /* the encoded bundle, malloc'ed */
	size_t raw_len;
};

/* bundle_new: an empty bundle with room for n_keys keys (zeroed). */
struct bundle *bundle_new(size_t n_keys);
/* bundle_free: frees b and all it holds. NULL is fine. */
void bundle_free(struct bundle *b);

/* bundle_commit: the commitment to share s in the bundle of set_id. */
int bundle_commit(const uint8_t set_id[BUNDLE_SET_ID_LEN],
    const struct slip39_share *s, uint8_t out[BUNDLE_HASH_LEN]) BUNDLE_WUR;

/* bundle_encode: writes b (header, policy, keys and commitments filled
 * in by the caller) to b->raw, MACs it under the key that HKDF derives
 * from bmk, and sets b->mac and b->fingerprint. Returns KEYD_OK,
 * KEYD_ERR_INVALID_ARG for a field out of range, KEYD_ERR_NOMEM or
 * KEYD_ERR_CRYPTO. */
int bundle_encode(struct bundle *b, const uint8_t *bmk, size_t bmk_len)
    BUNDLE_WUR;

/* bundle_parse: reads data[0..len) into a new bundle *out (the caller's,
 * freed with bundle_free). Checks the structure, every length and limit,
 * the consistency of each key (its fingerprint is SHA-256 of its SPKI)
 * and that nothing trails the MAC; it cannot check the MAC (that needs
 * the BMK). Returns KEYD_OK, or KEYD_ERR_BUNDLE with why (static) saying
 * what is wrong, or KEYD_ERR_VERSION, or KEYD_ERR_NOMEM. */
int bundle_parse(const uint8_t *data, size_t len, struct bundle **out,
    const char **why) BUNDLE_WUR;

/* bundle_verify_mac: KEYD_OK if the MAC of b matches under the key
 * derived from bmk, else KEYD_ERR_PASSPHRASE (a wrong passphrase gives a
 * wrong BMK). KEYD_ERR_CRYPTO if OpenSSL fails. */
int bundle_verify_mac(const struct bundle *b, const uint8_t *bmk,
    size_t bmk_len) BUNDLE_WUR;

/* bundle_check_share: whether share s belongs to bundle b: the same
 * SLIP-0039 identifier and parameters as the bundle's policy, then the
 * commitment of its group and member. Returns KEYD_OK, or
 * KEYD_ERR_SHARE_MISMATCH with why (static) naming what differs:
 * "identifier" (another backup set), a parameter, or "commitment" (a share
 * of another bundle, or altered). */
int bundle_check_share(const struct bundle *b, const struct slip39_share *s,
    const char **why) BUNDLE_WUR;

/* bundle_policy_met: whether the shares (by group and member index, n of
 * them, distinct) meet the bundle's thresholds. */
int bundle_policy_met(const struct bundle *b, const struct slip39_share *s,
    size_t n);

/* bundle_shares_needed: how many shares the policy needs at the least. */
unsigned bundle_shares_needed(const struct bundle *b);

/* bundle_hex: lowercase hex of p[0..n) into out (2n + 1 bytes). */
char *bundle_hex(const uint8_t *p, size_t n, char *out);

/* bundle_key_type_name: "ec:p256", "rsa:2048", "ed25519", "aes:256". */
const char *bundle_key_type_name(const struct bundle_key *k, char *buf,
    size_t cap);

#endif
