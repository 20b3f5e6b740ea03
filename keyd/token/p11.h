/*
 * p11.h: one PKCS#11 session on one token, for keyd-backup's ceremonies.
 * The module is checked like the daemon's (config_check_module: owned by
 * root, not writable by group or others), loaded through p11-kit
 * unmanaged and initialised with CKF_OS_LOCKING_OK (FIELD-NOTES: SoftHSM2
 * runs without its mutexes otherwise). The token is named by an RFC 7512
 * URI that must match exactly one token. The one read-write session stays
 * open until p11_close, so session objects made in it (the backup master
 * key) survive a change of login from SO to user.
 */
#ifndef KEYD_P11_H
#define KEYD_P11_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stddef.h>
#include <stdint.h>

#define P11_WUR __attribute__((warn_unused_result))

/* PKCS#11 3.0's RFC 5649 mechanism; p11-kit 0.24's header lacks it. */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x210BUL
#endif

/* Largest attribute value p11_get_attr reads (an RSA-8192 modulus is
 * 1024 bytes; a certificate would be more, but none is read here). */
#define P11_MAX_ATTR 4096
/* Most objects one search returns. */
#define P11_MAX_MATCHES 16

struct p11;

/* p11_open: checks and loads the module at path, finds the one token
 * token_uri names and opens a read-write session on it. The URI must not
 * carry a PIN. On failure err says what to fix. *out is the caller's, to
 * free with p11_close. */
int p11_open(const char *module, const char *token_uri, struct p11 **out,
    char *err, size_t errlen) P11_WUR;

/* p11_close: logs out, closes the session, finalises and unloads the
 * module. Session objects are destroyed by the token with the session.
 * NULL is fine. */
void p11_close(struct p11 *p);

/* p11_login: logs user (CKU_USER or CKU_SO) in with pin[0..len). A
 * wrong PIN gives KEYD_ERR_CONFIG with "check the PIN file". */
int p11_login(struct p11 *p, CK_USER_TYPE user, const char *pin, size_t len,
    char *err, size_t errlen) P11_WUR;

/* p11_logout: logs out whoever is logged in. */
void p11_logout(struct p11 *p);

/* The function list and the session, for direct PKCS#11 calls. */
CK_FUNCTION_LIST *p11_fn(const struct p11 *p);
CK_SESSION_HANDLE p11_session(const struct p11 *p);
/* p11_token_label: the token's label, trailing blanks removed. */
const char *p11_token_label(const struct p11 *p);

/* p11_find: up to max objects matching tmpl[0..n); *found is how many
 * (at most max). Returns the token's CK_RV. */
CK_RV p11_find(struct p11 *p, CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *found) P11_WUR;

/* p11_find_key_uri: the one private or secret key object that the
 * RFC 7512 uri names (a URI without type= means private or secret). The
 * URI must name this token (if it names one at all) and carry no PIN.
 * Returns KEYD_OK or a KEYD_ERR_* code with err saying why. */
int p11_find_key_uri(struct p11 *p, const char *uri, CK_OBJECT_HANDLE *h,
    char *err, size_t errlen) P11_WUR;

/* p11_get_attr: one attribute's value, malloc'ed in *val (the caller
 * frees it), at most P11_MAX_ATTR bytes. Returns the token's CK_RV, or
 * CKR_ATTRIBUTE_VALUE_INVALID for an unavailable or too long value. */
CK_RV p11_get_attr(struct p11 *p, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    uint8_t **val, size_t *len) P11_WUR;
/* p11_get_bool / p11_get_ulong: one CK_BBOOL (as 0 or 1) or CK_ULONG. */
CK_RV p11_get_bool(struct p11 *p, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    int *v) P11_WUR;
CK_RV p11_get_ulong(struct p11 *p, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, CK_ULONG *v) P11_WUR;

/* p11_random: n bytes from the token's C_GenerateRandom. */
CK_RV p11_random(struct p11 *p, uint8_t *out, size_t n) P11_WUR;

/* p11_spki: the DER SubjectPublicKeyInfo of a public key given as its
 * PKCS#11 attributes: for CKK_EC and CKK_EC_EDWARDS a = CKA_EC_PARAMS and
 * b = CKA_EC_POINT (a DER OCTET STRING, or the bare point); for CKK_RSA
 * a = CKA_MODULUS and b = CKA_PUBLIC_EXPONENT. Curves: P-256, P-384 and
 * Ed25519. *spki is malloc'ed (the caller frees it); *bits is the key
 * size. Returns KEYD_OK, KEYD_ERR_UNSUPPORTED for another curve or key
 * type, KEYD_ERR_CRYPTO for values OpenSSL rejects. */
int p11_spki(CK_KEY_TYPE kt, const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen, uint8_t **spki, size_t *spki_len, unsigned *bits) P11_WUR;

/* The DER of the curves keygen makes: P-256, P-384 (named-curve OIDs) and
 * Ed25519 (RFC 8410 OID, which SoftHSM2 accepts in CKA_EC_PARAMS). */
extern const uint8_t p11_oid_p256[10];
extern const uint8_t p11_oid_p384[7];
extern const uint8_t p11_oid_ed25519[5];

#endif
