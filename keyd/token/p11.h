/*
 * p11.h: the token access layer. Every keyd program that reaches a PKCS#11
 * module does it through these functions: keyd-token through token.c,
 * which adds the daemon's policy (the configured keys, session copies,
 * the OAEP probe, the mechanism checks, recovery), and keyd-backup
 * through the one-session struct p11 at the end of this header.
 *
 * The layer loads and initialises the module, finds the one token a URI
 * names, logs in, reads attributes, searches objects, finds a key by its
 * RFC 7512 URI and builds a SubjectPublicKeyInfo from a key's attributes.
 * Apart from struct p11, the functions keep no state: they take the
 * module's function list and a slot or a session.
 */
#ifndef KEYD_P11_H
#define KEYD_P11_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <stddef.h>
#include <stdint.h>

#define P11_WUR __attribute__((warn_unused_result))

/* PKCS#11 3.0's RFC 5649 mechanism; p11-kit 0.24's header lacks it. */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x210BUL
#endif

/* Largest attribute value p11_get_attr reads (an RSA-8192 modulus is
 * 1024 bytes, a certificate a few). */
#define P11_MAX_ATTR 4096
/* Most objects one search returns. */
#define P11_MAX_MATCHES 16
/* A token label as a C string: 32 bytes and the NUL. */
#define P11_LABEL_LEN 33

/* ---- the module --------------------------------------------------------- */

/* p11_module_load: loads the module at path (already resolved and checked,
 * config_check_module) through p11-kit, unmanaged, and initialises it with
 * CKF_OS_LOCKING_OK: SoftHSM2 runs without its mutexes when given NULL,
 * and crashes with threads. On success *out is the caller's, to release
 * with p11_module_release; on failure err says why. */
int p11_module_load(const char *path, CK_FUNCTION_LIST **out, char *err,
    size_t errlen) P11_WUR;

/* p11_module_release: C_Finalize, then unloads the module. NULL is fine. */
void p11_module_release(CK_FUNCTION_LIST *f);

/* ---- the token ---------------------------------------------------------- */

/* p11_token_uri: parses text as a token URI into *out (the caller frees it
 * with p11_kit_uri_free). A URI that carries a PIN is refused. what names
 * the URI in the messages ("token =", "token URI"). */
int p11_token_uri(const char *text, const char *what, P11KitUri **out,
    char *err, size_t errlen) P11_WUR;

/* p11_find_token: the one token, among the slots with one, that uri
 * (written text) matches: its slot and token info. Returns KEYD_OK;
 * KEYD_ERR_NOT_FOUND when none matches (err lists the labels of the
 * initialised tokens present); KEYD_ERR_CONFIG when several do;
 * KEYD_ERR_TOKEN when the module cannot list them. */
int p11_find_token(CK_FUNCTION_LIST *f, P11KitUri *uri, const char *text,
    CK_SLOT_ID *slot, CK_TOKEN_INFO *info, char *err, size_t errlen) P11_WUR;

/* p11_no_token_hint: appends to err (after a "no token matches") what to
 * check: the labels against the URI, the module, and for SoftHSM2 the
 * SOFTHSM2_CONF that names its tokens. module: the module's path. */
void p11_no_token_hint(const char *module, char *err, size_t errlen);

/* p11_padded: a fixed-width, blank-padded PKCS#11 string (n bytes) as a C
 * string in dst (n + 1 bytes), trailing blanks removed. */
void p11_padded(char *dst, const unsigned char *src, size_t n);

/* p11_login: C_Login of user (CKU_USER, CKU_SO) with pin[0..len) in session
 * s; a user already logged in counts as logged in. *rv: the token's
 * answer. Returns KEYD_OK; KEYD_ERR_CONFIG when the token refuses the PIN
 * as wrong or locked (the PIN is what to fix); else KEYD_ERR_TOKEN. The
 * caller writes the message: it knows which PIN file to name. */
int p11_login(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_USER_TYPE user,
    const char *pin, size_t len, CK_RV *rv) P11_WUR;

/* ---- attributes --------------------------------------------------------- */

/* p11_get_attr: one attribute's value, malloc'ed in *val (the caller
 * frees it), at most P11_MAX_ATTR bytes. Returns the token's CK_RV, or
 * CKR_ATTRIBUTE_VALUE_INVALID for an unavailable or too long value. */
CK_RV p11_get_attr(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, uint8_t **val, size_t *len)
    P11_WUR;
/* p11_get_bool / p11_get_ulong: one CK_BBOOL (as 0 or 1) or CK_ULONG; 0
 * when the token does not give it. */
CK_RV p11_get_bool(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, int *v) P11_WUR;
CK_RV p11_get_ulong(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_ULONG *v) P11_WUR;
/* p11_flag: 1 if the CK_BBOOL attribute is CK_TRUE; 0 if it is false or
 * the token does not give it. */
int p11_flag(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type);

/* ---- searches ----------------------------------------------------------- */

/* No CKA_CLASS added to a search. */
#define P11_ANY_CLASS ((CK_OBJECT_CLASS)~0UL)
/* Search flags: token objects only, never session objects (keyd's own
 * session copies of its keys). */
#define P11_ON_TOKEN 1u

/* p11_find: up to max objects matching tmpl[0..n), plus CKA_CLASS = cls
 * unless P11_ANY_CLASS, plus CKA_TOKEN = true with P11_ON_TOKEN; *found is
 * how many (at most max). Returns the token's CK_RV. */
CK_RV p11_find(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_CLASS cls, unsigned flags,
    CK_OBJECT_HANDLE *objs, CK_ULONG max, CK_ULONG *found) P11_WUR;

/* p11_key_template: parses the RFC 7512 key URI text into a search
 * template, a copy the caller frees with p11_template_free (also on
 * failure). Refused: attributes p11-kit does not know, a PIN, a URI that
 * names no object, and one whose token attributes do not match token
 * (unless NULL). Messages begin with what and the URI ("key 'x': uri
 * pkcs11:..."); token_name names the token in them. */
int p11_key_template(const char *text, const char *what,
    const CK_TOKEN_INFO *token, const char *token_name, CK_ATTRIBUTE **tmpl,
    CK_ULONG *n, char *err, size_t errlen) P11_WUR;
void p11_template_free(CK_ATTRIBUTE *tmpl, CK_ULONG n);

/* p11_find_key: the key object tmpl[0..n) names, with CKA_CLASS = cls
 * unless P11_ANY_CLASS. A template without a class (a key URI without
 * type=) means a private or secret key. *count: how many objects match
 * (up to P11_MAX_MATCHES); *h: the first, if any. flags as p11_find.
 * Returns the token's CK_RV. */
CK_RV p11_find_key(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_CLASS cls, unsigned flags,
    CK_OBJECT_HANDLE *h, CK_ULONG *count) P11_WUR;

/* ---- public keys -------------------------------------------------------- */

/* The curves keyd knows. */
enum p11_curve {
	P11_CURVE_NONE = 0,
	P11_CURVE_P256,
	P11_CURVE_P384,
	P11_CURVE_ED25519,
};

/* p11_curve: the curve of a key of type kt (CKK_EC, CKK_EC_EDWARDS) with
 * CKA_EC_PARAMS params[0..len): the named-curve OIDs of P-256 and P-384;
 * for Ed25519 RFC 8410's OID, and the GnuPG OID and printable string
 * OpenSC writes. P11_CURVE_NONE for anything else. */
enum p11_curve p11_curve(CK_KEY_TYPE kt, const uint8_t *params, size_t len);

/* p11_spki: the DER SubjectPublicKeyInfo of a public key given as its
 * PKCS#11 attributes: for CKK_EC and CKK_EC_EDWARDS a = CKA_EC_PARAMS and
 * b = CKA_EC_POINT (a DER OCTET STRING, or the bare point); for CKK_RSA
 * a = CKA_MODULUS and b = CKA_PUBLIC_EXPONENT. *spki is malloc'ed (the
 * caller frees it); *bits is the key size. Returns KEYD_OK;
 * KEYD_ERR_UNSUPPORTED for another curve or key type; KEYD_ERR_TOKEN for
 * values of the wrong size or form; KEYD_ERR_CRYPTO for values OpenSSL
 * rejects. err (may be NULL) says which, about "its public key". */
int p11_spki(CK_KEY_TYPE kt, const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen, uint8_t **spki, size_t *spki_len, unsigned *bits, char *err,
    size_t errlen) P11_WUR;

/* The DER of the curves keyd-backup keygen makes: P-256, P-384
 * (named-curve OIDs) and Ed25519 (RFC 8410 OID, which SoftHSM2 accepts in
 * CKA_EC_PARAMS). */
extern const uint8_t p11_oid_p256[10];
extern const uint8_t p11_oid_p384[7];
extern const uint8_t p11_oid_ed25519[5];

/* ---- keyd-backup's session ---------------------------------------------- */

/*
 * struct p11: one read-write session on one token, for keyd-backup's
 * ceremonies. The module is checked like the daemon's (config_check_module:
 * owned by root, not writable by group or others) and loaded with
 * p11_module_load. The one session stays open until p11_close, so session
 * objects made in it (the backup master key) survive a change of login
 * from SO to user.
 */
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

/* p11_session_login: logs user (CKU_USER or CKU_SO) in with pin[0..len).
 * A wrong PIN gives KEYD_ERR_CONFIG with "check the PIN file". */
int p11_session_login(struct p11 *p, CK_USER_TYPE user, const char *pin,
    size_t len, char *err, size_t errlen) P11_WUR;

/* p11_logout: logs out whoever is logged in. */
void p11_logout(struct p11 *p);

/* The function list and the session, for the functions above and for
 * direct PKCS#11 calls. */
CK_FUNCTION_LIST *p11_fn(const struct p11 *p);
CK_SESSION_HANDLE p11_session(const struct p11 *p);
/* p11_token_label: the token's label, trailing blanks removed. */
const char *p11_token_label(const struct p11 *p);

/* p11_find_key_uri: the one private or secret key object that the
 * RFC 7512 uri names (a URI without type= means private or secret). The
 * URI must name this token (if it names one at all) and carry no PIN.
 * Returns KEYD_OK or a KEYD_ERR_* code with err saying why. */
int p11_find_key_uri(struct p11 *p, const char *uri, CK_OBJECT_HANDLE *h,
    char *err, size_t errlen) P11_WUR;

#endif
