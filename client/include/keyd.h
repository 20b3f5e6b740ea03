/*
 * keyd.h: libkeyd, the C client of keyd, the key custody daemon.
 *
 * A session controller connects to keyd's Unix socket and asks it to sign
 * or decrypt with keys that stay on the daemon's token:
 *
 *	struct keyd_client *c;
 *	uint8_t sig[KEYD_MAX_SIGNATURE];
 *	size_t siglen = sizeof(sig);
 *
 *	if (keyd_connect(NULL, &c) != KEYD_OK)
 *		errx(1, "%s", keyd_errmsg(NULL));
 *	if (keyd_sign(c, "sip-tls", KEYD_ECDSA_SHA256, digest, 32, sig,
 *	    &siglen) != KEYD_OK)
 *		errx(1, "%s", keyd_errmsg(c));
 *	keyd_close(c);
 *
 * Every function returns KEYD_OK (0) or a negative KEYD_ERR_* code from
 * keyd_err.h; keyd_strerror() names the code and keyd_errmsg() gives the
 * detail (the daemon's message, or a local description).
 *
 * Threads: a connection may be shared between threads. Calls on one
 * connection are serialized by a mutex inside it, so they run one at a
 * time; open one connection per thread to run requests in parallel.
 *
 * Trust: keyd_connect always checks who serves the socket (SO_PEERCRED).
 * Only root or the daemon user (KEYD_DAEMON_USER, else the system user
 * "keyd") is accepted, so a socket planted by another user is refused.
 *
 * Reconnection: if the daemon closed the connection (a restart, say), the
 * next call reconnects once, with the same checks, and retries its request
 * once. Every request libkeyd makes is safe to repeat.
 */
#ifndef KEYD_H
#define KEYD_H

#include <stddef.h>
#include <stdint.h>

#include "keyd_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The socket used when none is named and KEYD_SOCKET is not set. */
#define KEYD_DEFAULT_SOCKET "/run/keyd/keyd.sock"
/* The default time a request may take, connecting included. */
#define KEYD_IO_TIMEOUT_MS 30000u
/* A buffer this large holds any signature keyd makes (RSA up to 16384
 * bits); a smaller one is fine when the key is known. */
#define KEYD_MAX_SIGNATURE 2048u
/* The largest Ed25519 message keyd signs. */
#define KEYD_MAX_ED25519_MESSAGE 16384u
/* The largest RSA ciphertext libkeyd sends (RSA up to 8192 bits). */
#define KEYD_MAX_CIPHERTEXT 1024u

/* A connection to keyd. Opaque. */
struct keyd_client;
/* A list of keys, from keyd_list. Opaque. */
struct keyd_keylist;

/* Signature schemes, for keyd_sign. The values are stable (ABI). */
enum keyd_sign_alg {
	KEYD_ECDSA = 1,                /* a digest of 20 to 64 bytes */
	KEYD_ECDSA_SHA256 = 2,         /* a 32-byte SHA-256 digest */
	KEYD_ECDSA_SHA384 = 3,         /* a 48-byte SHA-384 digest */
	KEYD_ECDSA_SHA512 = 4,         /* a 64-byte SHA-512 digest */
	KEYD_RSA_PKCS1_SHA256 = 5,     /* a 32-byte digest; keyd adds the DigestInfo */
	KEYD_RSA_PKCS1_SHA384 = 6,     /* a 48-byte digest */
	KEYD_RSA_PKCS1_SHA512 = 7,     /* a 64-byte digest */
	KEYD_RSA_PKCS1_DIGESTINFO = 8, /* a DER DigestInfo of SHA-256/384/512 */
	KEYD_RSA_PSS_SHA256 = 9,       /* a 32-byte digest; MGF1-SHA256, salt 32 */
	KEYD_RSA_PSS_SHA384 = 10,      /* a 48-byte digest; MGF1-SHA384, salt 48 */
	KEYD_RSA_PSS_SHA512 = 11,      /* a 64-byte digest; MGF1-SHA512, salt 64 */
	KEYD_ED25519 = 12,             /* the message itself, at most 16384 bytes */
};

/* Decryption schemes, for keyd_decrypt. Stable; distinct from the sign
 * values so that one passed for the other is refused. */
enum keyd_decrypt_alg {
	KEYD_RSA_OAEP_SHA1 = 101,      /* OAEP, SHA-1, MGF1-SHA1, empty label */
	KEYD_RSA_OAEP_SHA256 = 102,    /* OAEP, SHA-256, MGF1-SHA256, empty label */
	KEYD_RSA_OAEP_SHA384 = 103,
	KEYD_RSA_OAEP_SHA512 = 104,
	/* PKCS#1 v1.5 with implicit rejection, for keys configured with
	 * pkcs1_decrypt = implicit-rejection (others: KEYD_ERR_DENIED). A bad
	 * padding is never an error: it decrypts to a random-looking message
	 * that is the same for the same ciphertext, as the protocol using
	 * it (TLS 1.2 RSA key exchange, say) must expect. */
	KEYD_RSA_PKCS1 = 105,
};

/* Flags for keyd_sign_ex. */
#define KEYD_SIGN_ECDSA_RAW (1u << 0) /* ECDSA as r||s, each padded to the
                                         curve size (PKCS#11); default DER */

/* Operations a client may be allowed, as bits (keyd_client_ops,
 * keyd_keylist_ops). Bit n is the protocol's Op value n + 1. */
#define KEYD_OP_SIGN      (1u << 0)
#define KEYD_OP_DECRYPT   (1u << 1)
#define KEYD_OP_SRTP_NEW  (1u << 2)
#define KEYD_OP_SRTP_OPEN (1u << 3)
#define KEYD_OP_STATUS    (1u << 4)
#define KEYD_OP_PASSPORT  (1u << 5)
#define KEYD_OP_RELOAD    (1u << 6)

/* Formats for keyd_status. */
enum keyd_status_format {
	KEYD_STATUS_TEXT = 0,          /* for people */
	KEYD_STATUS_PROMETHEUS = 1,    /* Prometheus text exposition format */
};

/*
 * keyd_connect: connects to keyd at socket_path (NULL: the KEYD_SOCKET
 * environment variable, else KEYD_DEFAULT_SOCKET), checks that root or the
 * daemon user serves it, and says hello. On success *out is a new
 * connection, which the caller owns and frees with keyd_close.
 * Returns KEYD_OK; KEYD_ERR_CONNECT (no daemon there, or no permission),
 * KEYD_ERR_PEER_UNTRUSTED (served by another uid), KEYD_ERR_VERSION,
 * KEYD_ERR_CLOSED (keyd hung up: this uid is probably not a client in its
 * policy), KEYD_ERR_TIMEOUT, ... On failure *out is NULL and
 * keyd_errmsg(NULL) describes the problem.
 */
KEYD_API int keyd_connect(const char *socket_path, struct keyd_client **out);

/*
 * keyd_connect_timeout: keyd_connect, with connecting and hello bounded by
 * timeout_ms (1 ms to one hour) instead of KEYD_IO_TIMEOUT_MS, and
 * timeout_ms as the connection's timeout for later requests (as
 * keyd_set_timeout sets it). KEYD_ERR_INVALID_ARG for a timeout out of
 * range; otherwise as keyd_connect.
 */
KEYD_API int keyd_connect_timeout(const char *socket_path,
    unsigned timeout_ms, struct keyd_client **out);

/*
 * keyd_close: closes the connection and frees c. NULL is fine. No other
 * thread may be using c.
 */
KEYD_API void keyd_close(struct keyd_client *c);

/*
 * keyd_errmsg: the detail of the last failed call on c: the daemon's
 * message, or a description made here. With c NULL: the detail of the
 * calling thread's last failed keyd_connect. Never NULL (empty if nothing
 * failed yet). The string belongs to libkeyd; it stays valid until the
 * next call on c (on NULL: until this thread's next keyd_connect). When
 * several threads share c, another thread's failing call may overwrite it:
 * read it right away, or use one connection per thread.
 */
KEYD_API const char *keyd_errmsg(const struct keyd_client *c);

/*
 * keyd_client_name: the name of the policy's [client] section this
 * process matched, as keyd said at hello. Owned by c; valid until the next
 * call on c (a reconnect may refresh it).
 */
KEYD_API const char *keyd_client_name(const struct keyd_client *c);

/*
 * keyd_client_ops: the KEYD_OP_* bits keyd's policy grants this client,
 * as keyd said at hello.
 */
KEYD_API unsigned keyd_client_ops(const struct keyd_client *c);

/*
 * keyd_set_timeout: how long each later request on c may take, from 1 ms
 * to one hour (default KEYD_IO_TIMEOUT_MS). A request that takes longer
 * fails with KEYD_ERR_TIMEOUT and the connection is closed (the next call
 * reconnects). Returns KEYD_OK or KEYD_ERR_INVALID_ARG.
 */
KEYD_API int keyd_set_timeout(struct keyd_client *c, unsigned timeout_ms);

/*
 * keyd_sign: signs in[0..inlen) with the key named key, using alg (enum
 * keyd_sign_alg; what in holds depends on it). The caller owns every
 * buffer. *siglen is the size of sig on entry and the signature's length
 * on return. If sig is too small, returns KEYD_ERR_BUFFER_TOO_SMALL with
 * *siglen set to the length needed (KEYD_MAX_SIGNATURE is always enough).
 * ECDSA signatures are DER (as OpenSSL and X.509 want them).
 * Returns KEYD_OK; KEYD_ERR_BAD_LENGTH (a digest of the wrong length,
 * checked here), KEYD_ERR_INVALID_ARG, KEYD_ERR_DENIED, KEYD_ERR_UNKNOWN_KEY,
 * KEYD_ERR_BAD_ALGORITHM, KEYD_ERR_TOKEN, ...
 */
KEYD_API int keyd_sign(struct keyd_client *c, const char *key, int alg,
    const void *in, size_t inlen, uint8_t *sig, size_t *siglen);

/*
 * keyd_sign_ex: keyd_sign with flags (KEYD_SIGN_ECDSA_RAW: r||s instead of
 * DER, for ECDSA algorithms only). Unknown flags: KEYD_ERR_INVALID_ARG.
 */
KEYD_API int keyd_sign_ex(struct keyd_client *c, const char *key, int alg,
    const void *in, size_t inlen, uint8_t *sig, size_t *siglen,
    unsigned flags);

/*
 * keyd_sign_pinned: keyd_sign_ex that signs only if the name key still
 * names the key whose public key (SubjectPublicKeyInfo DER, as
 * keyd_pubkey gives it) has the SHA-256 key_sha256; if a reload pointed
 * the name at another key, KEYD_ERR_UNKNOWN_KEY and no signature.
 */
KEYD_API int keyd_sign_pinned(struct keyd_client *c, const char *key,
    const uint8_t key_sha256[32], int alg, const void *in, size_t inlen,
    uint8_t *sig, size_t *siglen, unsigned flags);

/*
 * keyd_decrypt: decrypts the ciphertext in[0..inlen) (at most
 * KEYD_MAX_CIPHERTEXT bytes) with the key named key, using alg (enum
 * keyd_decrypt_alg). The caller owns every buffer; libkeyd wipes every
 * copy of the plaintext it made. *outlen is the size of out on entry and
 * the plaintext's length on return; if out is too small, returns
 * KEYD_ERR_BUFFER_TOO_SMALL with *outlen set to the length needed (inlen
 * is always enough). Returns KEYD_OK, KEYD_ERR_DECRYPT (a bad ciphertext),
 * KEYD_ERR_DENIED, KEYD_ERR_UNKNOWN_KEY, ...
 */
KEYD_API int keyd_decrypt(struct keyd_client *c, const char *key, int alg,
    const void *in, size_t inlen, uint8_t *out, size_t *outlen);

/*
 * keyd_decrypt_pinned: keyd_decrypt that decrypts only if the name key
 * still names the key whose public key (SubjectPublicKeyInfo DER) has the
 * SHA-256 key_sha256; if a reload pointed the name at another key,
 * KEYD_ERR_UNKNOWN_KEY and no plaintext.
 */
KEYD_API int keyd_decrypt_pinned(struct keyd_client *c, const char *key,
    const uint8_t key_sha256[32], int alg, const void *in, size_t inlen,
    uint8_t *out, size_t *outlen);

/*
 * keyd_pubkey: the public key of the key named key, as DER
 * SubjectPublicKeyInfo (d2i_PUBKEY reads it). On success *spki_der is a
 * new buffer of *len bytes that the caller frees with keyd_free.
 */
KEYD_API int keyd_pubkey(struct keyd_client *c, const char *key,
    uint8_t **spki_der, size_t *len);

/*
 * keyd_list: the keys this client may use. On success *out is a new list
 * that the caller frees with keyd_keylist_free; read it with the
 * keyd_keylist_* functions below.
 */
KEYD_API int keyd_list(struct keyd_client *c, struct keyd_keylist **out);

/* keyd_keylist_count: the number of keys in l (0 for NULL). */
KEYD_API size_t keyd_keylist_count(const struct keyd_keylist *l);
/* keyd_keylist_name: the name of key i, owned by l; NULL if i is out of
 * range. This is the name keyd_sign and the others take. */
KEYD_API const char *keyd_keylist_name(const struct keyd_keylist *l,
    size_t i);
/* keyd_keylist_type: "ec-p256", "ec-p384", "rsa", "ed25519", "aes" or
 * "unknown" (a static string); NULL if i is out of range. */
KEYD_API const char *keyd_keylist_type(const struct keyd_keylist *l,
    size_t i);
/* keyd_keylist_bits: the key size in bits (RSA modulus, curve, AES key);
 * 0 if i is out of range. */
KEYD_API unsigned keyd_keylist_bits(const struct keyd_keylist *l, size_t i);
/* keyd_keylist_ops: the KEYD_OP_* bits this client may do with key i;
 * 0 if i is out of range. */
KEYD_API unsigned keyd_keylist_ops(const struct keyd_keylist *l, size_t i);
/* keyd_keylist_weak: 1 if key i is extractable without
 * CKA_WRAP_WITH_TRUSTED (anyone holding the user PIN could wrap it under a
 * key of their choosing and read it), else 0. */
KEYD_API int keyd_keylist_weak(const struct keyd_keylist *l, size_t i);
/* keyd_keylist_free: frees l. NULL is fine. */
KEYD_API void keyd_keylist_free(struct keyd_keylist *l);

/*
 * keyd_status: keyd's status (tokens, keys, counters), formatted here as
 * format (enum keyd_status_format). A client without the status op sees
 * only its own keys. On success *text is a new NUL-terminated string that
 * the caller frees with keyd_free.
 */
KEYD_API int keyd_status(struct keyd_client *c, int format, char **text);

/*
 * keyd_reload: asks keyd to read its configuration file again, and waits
 * for the outcome (the client needs the op reload; keyd checks the file
 * as at a start before anything changes). KEYD_OK: the new configuration
 * serves, and *text (keyd_free) says "sha256 HEX, generation N: WHAT
 * CHANGED". KEYD_ERR_CONFIG: keyd refused it and keyd_errmsg says why; the
 * running configuration serves on, unchanged.
 */
KEYD_API int keyd_reload(struct keyd_client *c, char **text);

/* keyd_config_generation: the generation of keyd's configuration as the
 * last hello or list reply on c gave it (1 at keyd's start, one more at
 * each reload applied); 0 if none was seen. */
KEYD_API uint64_t keyd_config_generation(const struct keyd_client *c);

/* keyd_config_generation_fetch: asks keyd (one round trip, a hello) for
 * the generation of the configuration in force, into *generation. For
 * clients that cache keyd's keys (keyd-pkcs11.so): a new generation means
 * keys may have been added, removed or replaced. */
KEYD_API int keyd_config_generation_fetch(struct keyd_client *c,
    uint64_t *generation);

/* keyd_free: frees a buffer libkeyd returned (keyd_pubkey, keyd_status).
 * NULL is fine. */
KEYD_API void keyd_free(void *p);

/*
 * keyd_certificate: the X.509 certificate the token holds for the key
 * named key (the certificate object with the key's CKA_ID), as DER. On
 * success *der is a new buffer of *len bytes that the caller frees with
 * keyd_free. Returns KEYD_OK; KEYD_ERR_NOT_FOUND if the token holds no
 * certificate for the key (keyd_keylist_has_cert says so beforehand),
 * KEYD_ERR_UNKNOWN_KEY, KEYD_ERR_DENIED, ...
 */
KEYD_API int keyd_certificate(struct keyd_client *c, const char *key,
    uint8_t **der, size_t *len);

/* keyd_keylist_id: the token object's CKA_ID of key i, owned by l, with
 * its length in *len (at most KEYD_MAX_KEY_ID bytes); NULL with *len 0 if
 * the key has no CKA_ID or i is out of range. */
#define KEYD_MAX_KEY_ID 256u
KEYD_API const uint8_t *keyd_keylist_id(const struct keyd_keylist *l,
    size_t i, size_t *len);
/* keyd_keylist_has_cert: 1 if the token holds a certificate for key i
 * (keyd_certificate fetches it), else 0. */
KEYD_API int keyd_keylist_has_cert(const struct keyd_keylist *l, size_t i);
/* keyd_keylist_decrypts: 1 if keyd decrypts with alg (a keyd_decrypt_alg)
 * for key i, else 0. keyd learns at start-up which OAEP hashes the token
 * takes (SoftHSM2: SHA-1 only) and refuses the others with
 * KEYD_ERR_UNSUPPORTED; KEYD_RSA_PKCS1 is there if the key allows it.
 * From an earlier keyd, which does not name them, any algorithm is 1 for
 * a key with KEYD_OP_DECRYPT. */
KEYD_API int keyd_keylist_decrypts(const struct keyd_keylist *l, size_t i,
    int alg);

/* SRTP crypto suites, for keyd_srtp_new (RFC 4568, RFC 6188, RFC 7714).
 * The values are stable (the protocol's). */
enum keyd_srtp_suite {
	KEYD_SRTP_AES_CM_128_HMAC_SHA1_80 = 1, /* key 16, salt 14 bytes */
	KEYD_SRTP_AES_CM_128_HMAC_SHA1_32 = 2, /* key 16, salt 14 */
	KEYD_SRTP_AES_256_CM_HMAC_SHA1_80 = 3, /* key 32, salt 14 */
	KEYD_SRTP_AES_256_CM_HMAC_SHA1_32 = 4, /* key 32, salt 14 */
	KEYD_SRTP_AEAD_AES_128_GCM = 5,        /* key 16, salt 12 */
	KEYD_SRTP_AEAD_AES_256_GCM = 6,        /* key 32, salt 12 */
};
/* Buffers of these sizes always do: master key || master salt; the SDES
 * key-params string ("inline:" + base64, NUL-terminated); a blob. */
#define KEYD_SRTP_MAX_KEY_SALT 46u
#define KEYD_SRTP_MAX_KEY_PARAMS 80u
#define KEYD_SRTP_MAX_BLOB 128u
/* The longest context (a Call-ID, a trunk id) keyd binds into a blob. */
#define KEYD_SRTP_MAX_CONTEXT 1024u

/*
 * keyd_srtp_suite_lengths: the master key and master salt lengths of
 * suite (enum keyd_srtp_suite). Returns KEYD_OK, or KEYD_ERR_INVALID_ARG
 * for an unknown suite.
 */
KEYD_API int keyd_srtp_suite_lengths(int suite, size_t *key_len,
    size_t *salt_len);

/*
 * keyd_srtp_new: a fresh SRTP master key and salt for suite, drawn from
 * the token's RNG, and a blob holding them wrapped under the current
 * version of the KEK named key (see keyd's docs/srtp.md). context
 * (context_len bytes, at most KEYD_SRTP_MAX_CONTEXT; NULL with 0 for
 * none) is bound into the blob: keyd_srtp_open needs the same bytes.
 * key_salt receives master key || master salt (as libsrtp2 takes them;
 * keyd_srtp_suite_lengths splits them); *key_salt_len is its size on
 * entry and the length on return. key_params, if not NULL, receives the
 * SDES key-params string "inline:" + base64(key || salt), NUL-terminated
 * (key_params_size bytes of room). blob receives the blob (*blob_len: room
 * on entry, length on return); store it, it is not secret. The caller owns
 * every buffer and should wipe key_salt and key_params after use; libkeyd
 * wipes its own copies. If keyd hung up, the request is sent again on a
 * new connection: the first key, if made, is then simply never used.
 * Returns KEYD_OK; KEYD_ERR_BUFFER_TOO_SMALL (the KEYD_SRTP_MAX_* sizes
 * always do), KEYD_ERR_INVALID_ARG, KEYD_ERR_DENIED, KEYD_ERR_UNKNOWN_KEY,
 * KEYD_ERR_LIMIT (the KEK made its last blob: keyd's operator must add a
 * new KEK version), ...
 */
KEYD_API int keyd_srtp_new(struct keyd_client *c, const char *key, int suite,
    const void *context, size_t context_len, uint8_t *key_salt,
    size_t *key_salt_len, char *key_params, size_t key_params_size,
    uint8_t *blob, size_t *blob_len);

/*
 * keyd_srtp_open: the master key and salt in blob (from keyd_srtp_new for
 * the key named key, with the same context). *suite (if not NULL) is set
 * to the blob's suite; key_salt, *key_salt_len, key_params and
 * key_params_size are as for keyd_srtp_new. Returns KEYD_OK;
 * KEYD_ERR_BLOB (the blob was altered or truncated, belongs to another
 * key or context, or its KEK version is no longer configured),
 * KEYD_ERR_BUFFER_TOO_SMALL, KEYD_ERR_DENIED, KEYD_ERR_UNKNOWN_KEY, ...
 */
KEYD_API int keyd_srtp_open(struct keyd_client *c, const char *key,
    const void *blob, size_t blob_len, const void *context,
    size_t context_len, int *suite, uint8_t *key_salt, size_t *key_salt_len,
    char *key_params, size_t key_params_size);

/* STIR/SHAKEN (see keyd's docs/shaken.md). A PASSporT names at most
 * KEYD_PASSPORT_MAX_DEST destination TNs; buffers of KEYD_PASSPORT_MAX
 * bytes always hold its JWS and its Identity header value. */
#define KEYD_PASSPORT_MAX_DEST 16u
#define KEYD_PASSPORT_MAX 8192u

/*
 * keyd_passport: a STIR/SHAKEN PASSporT (RFC 8225, RFC 8588, ppt
 * "shaken") that keyd builds and signs (ES256) with the passport key named
 * key: attestation attest ("A", "B" or "C"), originating TN orig, n_dest
 * (1 to KEYD_PASSPORT_MAX_DEST) destination TNs dest, and origid (a UUID;
 * NULL or "" and keyd makes a random one). TNs are E.164 numbers: keyd
 * drops a leading '+' and the separators - . ( ) and space, and refuses
 * what is then not 1 to 15 digits. keyd sets iat from its own clock and
 * x5u from its configuration, and applies its policy (the client's
 * attest_max and orig_tns, the certificate's validity and TNAuthList).
 * identity (if not NULL) receives the SIP Identity header value,
 * "<jws>;info=<x5u>;alg=ES256;ppt=shaken", and jws (if not NULL) the JWS
 * in Compact Serialization, each NUL-terminated in identity_size /
 * jws_size bytes (KEYD_PASSPORT_MAX always do). On failure both are
 * empty strings. Returns KEYD_OK; KEYD_ERR_INVALID_ARG (a malformed TN,
 * origid or attestation), KEYD_ERR_DENIED (the policy; keyd_errmsg names
 * the rule), KEYD_ERR_CERTIFICATE (the key's certificate has expired or
 * is not valid yet), KEYD_ERR_BUFFER_TOO_SMALL, KEYD_ERR_UNKNOWN_KEY, ...
 */
KEYD_API int keyd_passport(struct keyd_client *c, const char *key,
    const char *attest, const char *orig, const char *const *dest,
    size_t n_dest, const char *origid, char *identity, size_t identity_size,
    char *jws, size_t jws_size);

/*
 * keyd_passport_div: a diversion PASSporT (RFC 8946, ppt "div") for a call
 * from orig, diverted from the TN div to the n_dest TNs dest; the number
 * policy and the TNAuthList apply to div, the number the diverting
 * signer vouches for. Outputs and results as for keyd_passport, with
 * ";ppt=div" at the end of the Identity header value.
 */
KEYD_API int keyd_passport_div(struct keyd_client *c, const char *key,
    const char *div, const char *orig, const char *const *dest,
    size_t n_dest, char *identity, size_t identity_size, char *jws,
    size_t jws_size);

#ifdef __cplusplus
}
#endif
#endif
