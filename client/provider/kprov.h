/*
 * kprov.h: keyd.so, keyd's OpenSSL 3 provider (docs/provider.md). Internal
 * to the provider.
 *
 * The provider's rule, which every file here keeps: memory that OpenSSL
 * allocates (key objects, operation contexts) may be shared between
 * processes, because an application such as Kamailio replaces OpenSSL's
 * allocator with one over shared memory. So:
 *   - a key object (struct kprov_key) is one flat block of immutable bytes:
 *     the key's name, its public key, the socket to use. No pointer, no
 *     descriptor, no lock. A key made in one process works in its siblings.
 *   - connections to keyd and their locks live in the provider's own
 *     malloc'd memory (kprov.c's pools), per process, and are made again
 *     when getpid() changes (fork).
 *   - the provider context is static data of keyd.so, never allocated.
 */
#ifndef KEYD_KPROV_H
#define KEYD_KPROV_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/types.h>

#include "kbuf.h"

/* The longest key name a keyd: URI may give (keyd's own names are
 * shorter: an audit line holds at most 4096 bytes). */
#define KPROV_NAME_MAX 255u
/* sockaddr_un's sun_path holds 107 bytes and a NUL. */
#define KPROV_SOCKET_MAX 107u
/* A DER SubjectPublicKeyInfo of RSA up to 16384 bits fits. */
#define KPROV_SPKI_MAX 2200u
/* EC group names ("prime256v1", "secp384r1"), point formats. */
#define KPROV_GROUP_MAX 24u
/* An encoded EC point (P-521 uncompressed: 133) or Ed25519 key (32). */
#define KPROV_PUB_MAX 160u

enum kprov_type {
	KPROV_EC = 1,
	KPROV_RSA = 2,
	KPROV_ED25519 = 3,
};

#define KPROV_KEY_MAGIC 0x6b65796bu /* "keyk" */

/* A key object: see the top of this file. Allocated with OPENSSL_zalloc,
 * copied whole by dup, compared by its public key. A key without a name
 * (has_name 0) is a public key OpenSSL imported, for comparisons only. */
struct kprov_key {
	uint32_t magic;
	int type;                          /* enum kprov_type */
	int has_name;                      /* 1: keyd's private key */
	unsigned bits, secbits, maxsize;   /* as OpenSSL asks for them */
	unsigned decrypts;                 /* bit (alg - 101): keyd decrypts
	                                      with that keyd_decrypt_alg */
	char name[KPROV_NAME_MAX + 1];
	char socket[KPROV_SOCKET_MAX + 1]; /* empty: the configured one */
	char group[KPROV_GROUP_MAX + 1];   /* EC only */
	char pointfmt[KPROV_GROUP_MAX + 1];/* EC only */
	/* The public key as OpenSSL encodes it (EC point, Ed25519 key),
	 * answered from here: asking the default provider would mean
	 * decoding, whose locks a process must not take in memory its
	 * siblings share while they run. */
	size_t pub_len;
	uint8_t pub[KPROV_PUB_MAX];
	size_t spki_len;
	uint8_t spki[KPROV_SPKI_MAX];
	/* SHA-256 of spki, for keyd's private keys: each signature is
	 * pinned to it, so that a reload pointing the name at another key
	 * makes it fail rather than sign with that key. */
	int has_spki_sha256;
	uint8_t spki_sha256[32];
};

/* Reason codes of the provider's errors (kprov_reasons in kprov.c). */
enum kprov_reason {
	KPROV_R_KEYD = 1,         /* keyd refused or failed; the detail says why */
	KPROV_R_BAD_URI = 2,
	KPROV_R_BAD_KEY = 3,
	KPROV_R_UNSUPPORTED = 4,  /* parameters keyd cannot honour */
	KPROV_R_INTERNAL = 5,
	KPROV_R_CONFIG = 6,
};

/* kprov_raise: an OpenSSL error from the provider with reason and a
 * message (printf format). Never give it a secret. */
void kprov_raise(int reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* kprov_raise_keyd: an OpenSSL error for a failed libkeyd call: what was
 * being done (what, e.g. "sign with sip-tls"), keyd's error code r and its
 * detail msg. */
void kprov_raise_keyd(const char *what, int r, const char *msg);

/*
 * kprov_sign / kprov_decrypt / kprov_pubkey_fetch: one libkeyd request on
 * a pooled connection to the socket named by key (or the configured
 * one). On failure an OpenSSL error is raised and a KEYD_ERR_* returned.
 */
int kprov_sign(const struct kprov_key *k, int alg, const void *in,
    size_t inlen, uint8_t *sig, size_t *siglen) KBUF_WUR;
int kprov_decrypt(const struct kprov_key *k, int alg, const void *in,
    size_t inlen, uint8_t *out, size_t *outlen) KBUF_WUR;

/*
 * kprov_describe: fills k (zeroed by the caller) for the key named name
 * at socket (empty: configured): its type, public key and sizes, from
 * keyd (keyd_list and keyd_pubkey). *cert (if not NULL) receives the
 * key's certificate (DER, freed with OPENSSL_free) when keyd holds one,
 * else NULL. Raises an OpenSSL error on failure.
 */
int kprov_describe(struct kprov_key *k, const char *name, const char *socket,
    uint8_t **cert, size_t *certlen) KBUF_WUR;

/* kprov_key_fill_public: sets type, bits, secbits, maxsize and group of k
 * from k->spki. Returns 1 or 0 (an error raised). */
int kprov_key_fill_public(struct kprov_key *k);

/* kprov_key_pkey: a new EVP_PKEY of the default provider holding k's
 * public key, for the public-key operations done here; NULL with an
 * error raised. Free with EVP_PKEY_free. */
EVP_PKEY *kprov_key_pkey(const struct kprov_key *k);

/* kprov_key_valid: 1 if p looks like a key object of ours. */
int kprov_key_valid(const void *p);

/* The algorithm tables (kprovkey.c, kprovsig.c, kprovcipher.c,
 * kprovstore.c). */
extern const OSSL_DISPATCH kprov_ec_keymgmt[];
extern const OSSL_DISPATCH kprov_rsa_keymgmt[];
extern const OSSL_DISPATCH kprov_ed25519_keymgmt[];
extern const OSSL_DISPATCH kprov_ecdsa_signature[];
extern const OSSL_DISPATCH kprov_rsa_signature[];
extern const OSSL_DISPATCH kprov_ed25519_signature[];
extern const OSSL_DISPATCH kprov_rsa_cipher[];
extern const OSSL_DISPATCH kprov_store[];

/* The property query for what the provider does with OpenSSL's default
 * provider (public-key operations, digests, decoding public keys). */
#define KPROV_DEFAULT_PROPQ "provider=default"

#endif
