/*
 * kp11obj.h: keyd-pkcs11.so's objects. From keyd's list, public keys and
 * certificates it builds, for each key this client may use, a private key
 * object, a public key object and (when the token holds one) a
 * certificate object, with their PKCS#11 attributes. A table is immutable
 * once built and shared by reference; a newer one replaces it. Internal to
 * the module.
 *
 * Object handles stay the same for the life of the process, across keyd
 * restarts, reloads and table rebuilds: a key's handles derive from the
 * index its name and public key got in a registry that only grows. A key
 * whose public key changed under the same name (rotated by a reload) gets
 * a new index, so never an old handle; a removed key's handles find
 * nothing (CKR_OBJECT_HANDLE_INVALID), never another key.
 */
#ifndef KEYD_KP11OBJ_H
#define KEYD_KP11OBJ_H

#include <stddef.h>
#include <stdint.h>

#include "kbuf.h"
#include "kp11.h"

struct keyd_client;

/* Keys one table holds, and names the registry keeps. */
#define KP11OBJ_MAX_KEYS 1024u
#define KP11OBJ_MAX_NAMES 4096u

/* The three objects of a key; the low two bits of a handle. */
enum kp11obj_kind {
	KP11OBJ_PRIVATE = 1,
	KP11OBJ_PUBLIC = 2,
	KP11OBJ_CERT = 3,
};

struct kp11obj_blob {
	uint8_t *p;
	size_t len;
};

/* A keyd_decrypt_alg as a bit of kp11obj_key's decrypts. */
#define KP11OBJ_DECRYPTS(alg) (1u << ((alg) - KEYD_RSA_OAEP_SHA1))

struct kp11obj_key {
	char *name;
	struct kp11obj_blob id;
	enum kp11_keytype type;
	unsigned ops;                /* KEYD_OP_* this client may do */
	unsigned decrypts;           /* KP11OBJ_DECRYPTS(alg) of the
	                                keyd_decrypt_alg keyd does */
	size_t out_len;              /* signature or modulus bytes */
	size_t slot;                 /* registry index: the handles */
	uint8_t fp[32];              /* SHA-256 of spki (kp11obj_assign) */
	struct kp11obj_blob spki, modulus, exponent, ec_params, ec_point;
	CK_ULONG modulus_bits;
	struct kp11obj_blob cert, subject, issuer, serial;
};

struct kp11obj_table {
	unsigned refs;               /* counted by the module, under its lock */
	size_t n;
	struct kp11obj_key *keys;
	int64_t loaded_ms;           /* monotonic time it was built */
	uint64_t generation;         /* keyd's configuration it lists */
};

#define KP11OBJ_FP_LEN 32

struct kp11obj_registry {
	char **names;
	uint8_t (*fps)[KP11OBJ_FP_LEN]; /* SHA-256 of each one's SPKI */
	size_t n;
};

/*
 * kp11obj_fetch: asks keyd (over c) for the keys, their public keys and
 * certificates, and builds a new table in *out (refs 0, slots unset).
 * Ed25519 keys are left out if hide_ed25519. Returns KEYD_OK or a libkeyd
 * error, with err saying why.
 */
int kp11obj_fetch(struct keyd_client *c, int hide_ed25519,
    struct kp11obj_table **out, char *err, size_t errlen) KBUF_WUR;

/* kp11obj_table_free: frees t. NULL is fine. */
void kp11obj_table_free(struct kp11obj_table *t);

/* kp11obj_assign: gives every key of t its registry index, adding new
 * names. KEYD_OK, or KEYD_ERR_LIMIT when the registry is full. */
int kp11obj_assign(struct kp11obj_registry *r, struct kp11obj_table *t)
    KBUF_WUR;
/* kp11obj_registry_free: empties r. */
void kp11obj_registry_free(struct kp11obj_registry *r);

/* kp11obj_handle: the handle of the kind object of key k. */
CK_OBJECT_HANDLE kp11obj_handle(const struct kp11obj_key *k,
    enum kp11obj_kind kind);
/* kp11obj_lookup: the key and kind of handle h in t, if it exists there
 * (a certificate only if the key has one); NULL if not. */
const struct kp11obj_key *kp11obj_lookup(const struct kp11obj_table *t,
    CK_OBJECT_HANDLE h, enum kp11obj_kind *kind);

/* kp11obj_get_attrs: C_GetAttributeValue for object (k, kind), with the
 * spec's rules for unknown and sensitive attributes and short buffers. */
CK_RV kp11obj_get_attrs(const struct kp11obj_key *k, enum kp11obj_kind kind,
    CK_ATTRIBUTE *tmpl, CK_ULONG n) KBUF_WUR;

/* kp11obj_match: 1 if object (k, kind) has every attribute of tmpl with
 * exactly its value. */
int kp11obj_match(const struct kp11obj_key *k, enum kp11obj_kind kind,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n);

#endif
