/* token.c: the PKCS#11 token, through p11-kit. */
#include "token.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyd_err.h"
#include "log.h"
#include "secmem.h"

#define TOKEN_MAX_SLOTS 256
/* The token labels a "no token matches" error lists. */
#define TOKEN_SEEN_MAX 160
#define TOKEN_MAX_MATCHES 8      /* objects fetched per key search */
#define TOKEN_MAX_ATTR 4096      /* bytes of one attribute we read */

#define TOKEN_NDEV 2
#define TOKEN_MAX_CALLERS 256    /* sessions whose calls are watched */
#define TOKEN_PROBE_MS 1000      /* a failed primary is retried this often */

/* What one token holds of a key: the token object that the URI names,
 * and the handle keyd uses, which is the object's session copy when the
 * token made one. Index 0 is the key, 1..n_prev its previous versions. */
struct dev_key {
	CK_OBJECT_HANDLE *obj;
	CK_OBJECT_HANDLE *use;
	size_t n;
	int copied;                /* use[] are session copies */
	unsigned oaep;             /* TOKEN_OAEP_* this token decrypted with */
};

/* One token: the primary ([keyd] token) or the failover token. Both are
 * reached through the same module. */
struct dev {
	struct token *t;
	int idx;
	const char *role;          /* "primary", "failover" */
	const char *uri_str;       /* as configured (not owned) */
	P11KitUri *uri;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	int have_info;             /* the token was found at least once */
	int no_match;              /* the last find_slot matched no token */
	char label[33];
	CK_SESSION_HANDLE keeper;
	int keeper_open;
	int logged_in;
	pthread_rwlock_t lock;     /* writers: recovery; readers: operations */
	atomic_ulong generation;
	atomic_ulong recoveries;
	atomic_int broken;         /* must be reopened before use */
	atomic_int reload;         /* SIGHUP: read the keys again */
	atomic_int hung;           /* a call older than the timeout */
	atomic_long last_probe;    /* ms, when a failed token was last tried */
	atomic_int pin_refused;    /* the token refused the PIN: no retries */
	int pairs_checked;         /* pair_check done on this token's keys */
	struct dev_key *keys;      /* n_all of them */
	/* What status shows, readable while a recovery holds the lock. */
	pthread_mutex_t shown_mu;
	CK_TOKEN_INFO shown;
	int shown_have, shown_logged_in;
	unsigned shown_copies;
};

/* A session's call in progress, for the hang watch. */
struct call_slot {
	atomic_long start;         /* ms since keyd's clock start; 0: none */
	atomic_int dev;
};

/* The signer: one thread with a session of its own that makes the
 * signatures a caller must not wait on for longer than token_timeout
 * (the audit log's checkpoints, signed while the log's lock is held). A
 * caller that gives up leaves the job to finish, or hang, alone; until it
 * is back, further jobs are refused at once. */
#define SIGNER_MAX_IN 4096
enum signer_state { SIGNER_IDLE, SIGNER_POSTED, SIGNER_RUNNING, SIGNER_DONE };

struct signer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int started, quit, abandoned;
	enum signer_state state;
	size_t key;
	CK_MECHANISM mech;         /* without parameters */
	uint8_t in[SIGNER_MAX_IN];
	size_t inlen;
	uint8_t out[TOKEN_MAX_SIG];
	size_t outlen;
	int r;
	char msg[256];
	struct token_session sess;
};

struct token {
	CK_FUNCTION_LIST *f;
	int initialized;
	char *pin;                 /* locked memory */
	size_t pin_len;
	struct dev dev[TOKEN_NDEV];
	size_t ndev;               /* 1, or 2 with a failover token */
	atomic_int active;         /* the device that served last */
	int key_copies;
	long timeout_ms;
	const struct config *cfg;
	struct token_key *keys;    /* the config's keys, then the audit key */
	size_t n_keys;             /* the config's keys */
	size_t n_all;              /* n_keys, plus the audit key's and the
	                              audit_tn HMAC key's slots, if any */
	int has_audit_key;
	int has_tn_key;            /* audit_tn_key: the last slot */
	int described;             /* keys[] describe what the tokens hold */
	int opened;                /* token_open returned: workers read keys[] */
	int oaep_known;            /* keys[].oaep_hashes hold a token's answer */
	struct call_slot calls[TOKEN_MAX_CALLERS];
	atomic_uint n_callers;
	struct signer signer;
};

/* DER of the curve OIDs keyd serves. */
static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
	0x22 };
static const uint8_t oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
/* OpenSC writes the GnuPG OID for edwards25519. */
static const uint8_t oid_ed25519_gnu[] = { 0x06, 0x09, 0x2b, 0x06, 0x01,
	0x04, 0x01, 0xda, 0x47, 0x0f, 0x01 };
static const uint8_t str_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
	'd', 's', '2', '5', '5', '1', '9' };

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Fixed-width, space-padded PKCS#11 strings to C strings. */
static void
copy_padded(char *dst, const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

/* A session or login that is gone: the session can be reopened and the
 * user logged in again, after which the request may be retried. */
static int
rv_session_lost(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	    rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED ||
	    rv == CKR_TOKEN_NOT_PRESENT;
}

/* A failure of the token itself, rather than of the request: with a
 * failover token, the request is tried there. */
static int
rv_device_failed(CK_RV rv)
{
	return rv_session_lost(rv) || rv == CKR_DEVICE_ERROR ||
	    rv == CKR_DEVICE_MEMORY || rv == CKR_TOKEN_NOT_RECOGNIZED ||
	    rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_KEY_HANDLE_INVALID;
}

/* What a recovery (reopen, log in, find the keys again) may cure: the
 * request is retried once after it. A key handle that went invalid means
 * the session copies went with their session. */
static int
rv_retry(CK_RV rv)
{
	return rv_session_lost(rv) || rv == CKR_KEY_HANDLE_INVALID;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Never 0, which marks a free call slot. */
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L + 1;
}

/* Adds "'label'" to list, the labels a "no token matches" error shows
 * (printable; "..." once the list is full). */
static void
seen_add(char *list, size_t n, const CK_TOKEN_INFO *info)
{
	char label[sizeof(info->label) + 1];
	size_t l = strlen(list);

	if (l >= n - 4)
		return;
	copy_padded(label, info->label, sizeof(info->label));
	for (size_t i = 0; label[i] != '\0'; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			label[i] = '?';
	if ((size_t)snprintf(list + l, n - l, "%s'%s'", l > 0 ? ", " : "",
	    label) >= n - l)
		memcpy(list + n - 4, "...", 4);
}

static int
find_slot(struct dev *d, char *err, size_t errlen)
{
	struct token *t = d->t;
	CK_SLOT_ID slots[TOKEN_MAX_SLOTS];
	CK_ULONG n = TOKEN_MAX_SLOTS, i;
	CK_TOKEN_INFO info;
	char seen[TOKEN_SEEN_MAX] = "";
	int found = 0;
	CK_RV rv;

	rv = t->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_GetSlotList failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (i = 0; i < n; i++) {
		if (t->f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
			continue;
		if (info.flags & CKF_TOKEN_INITIALIZED)
			seen_add(seen, sizeof(seen), &info);
		if (!p11_kit_uri_match_token_info(d->uri, &info))
			continue;
		if (found++ == 0) {
			d->slot = slots[i];
			d->info = info;
		}
	}
	d->no_match = found == 0;
	if (found == 0) {
		errf(err, errlen, "no token matches %s (%lu token%s "
		    "present%s%s)", d->uri_str, (unsigned long)n, LOG_PLURAL(n),
		    seen[0] != '\0' ? "; initialised: " : ", none initialised",
		    seen);
		return KEYD_ERR_TOKEN;
	}
	if (found > 1) {
		errf(err, errlen, "%d tokens match %s; add serial= or model= "
		    "to it", found, d->uri_str);
		return KEYD_ERR_CONFIG;
	}
	d->have_info = 1;
	copy_padded(d->label, d->info.label, sizeof(d->info.label));
	pthread_mutex_lock(&d->shown_mu);
	d->shown = d->info;
	d->shown_have = 1;
	pthread_mutex_unlock(&d->shown_mu);
	return KEYD_OK;
}

static void
show_logged_in(struct dev *d, int v)
{
	d->logged_in = v;
	pthread_mutex_lock(&d->shown_mu);
	d->shown_logged_in = v;
	pthread_mutex_unlock(&d->shown_mu);
}

/* Opens the keeper session and logs the user in. Caller holds the write
 * lock or is the only thread. */
static int
keeper_login(struct dev *d, char *err, size_t errlen)
{
	struct token *t = d->t;
	CK_RV rv;

	rv = t->f->C_OpenSession(d->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &d->keeper);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_OpenSession failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	d->keeper_open = 1;
	rv = t->f->C_Login(d->keeper, CKU_USER, (CK_UTF8CHAR *)t->pin,
	    t->pin_len);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		errf(err, errlen, "login to token '%s' failed: %s%s", d->label,
		    token_rv_name(rv), rv == CKR_PIN_INCORRECT ?
		    " (check the PIN file)" : "");
		/* Every refused login brings a token closer to locking the
		 * PIN: keyd does not try again by itself. */
		if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
		    rv == CKR_PIN_EXPIRED)
			atomic_store(&d->pin_refused, 1);
		return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ?
		    KEYD_ERR_CONFIG : KEYD_ERR_TOKEN;
	}
	show_logged_in(d, 1);
	return KEYD_OK;
}

/* Reads one attribute into a malloc'ed buffer. */
static CK_RV
get_attr(struct dev *d, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    uint8_t **val, size_t *len)
{
	CK_FUNCTION_LIST *f = d->t->f;
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = f->C_GetAttributeValue(d->keeper, o, &a, 1);
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > TOKEN_MAX_ATTR)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return CKR_HOST_MEMORY;
	rv = f->C_GetAttributeValue(d->keeper, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

static int
get_bool(struct dev *d, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (d->t->f->C_GetAttributeValue(d->keeper, o, &a, 1) != CKR_OK)
		return 0;
	return v == CK_TRUE;
}

static CK_RV
get_ulong(struct dev *d, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *v)
{
	CK_ATTRIBUTE a = { type, v, sizeof(*v) };

	return d->t->f->C_GetAttributeValue(d->keeper, o, &a, 1);
}

/* Finds the objects matching tmpl (plus class, if class != -1). */
static CK_RV
find_objects(struct dev *d, CK_ATTRIBUTE *tmpl, CK_ULONG n, long klass,
    CK_OBJECT_HANDLE *objs, CK_ULONG *nobjs)
{
	CK_FUNCTION_LIST *f = d->t->f;
	CK_ATTRIBUTE full[32];
	CK_OBJECT_CLASS cls = (CK_OBJECT_CLASS)klass;
	CK_BBOOL on_token = CK_TRUE;
	CK_ULONG m = 0, i;
	CK_RV rv, rv2;

	for (i = 0; i < n && m < 30; i++)
		full[m++] = tmpl[i];
	if (klass >= 0) {
		full[m].type = CKA_CLASS;
		full[m].pValue = &cls;
		full[m].ulValueLen = sizeof(cls);
		m++;
	}
	/* Token objects only: never keyd's own session copies. */
	full[m].type = CKA_TOKEN;
	full[m].pValue = &on_token;
	full[m].ulValueLen = sizeof(on_token);
	m++;
	rv = f->C_FindObjectsInit(d->keeper, full, m);
	if (rv != CKR_OK)
		return rv;
	rv = f->C_FindObjects(d->keeper, objs, TOKEN_MAX_MATCHES, nobjs);
	rv2 = f->C_FindObjectsFinal(d->keeper);
	return rv != CKR_OK ? rv : rv2;
}

static int
spki_from_pkey(EVP_PKEY *pk, struct token_key *k)
{
	int n = i2d_PUBKEY(pk, NULL);
	uint8_t *p;

	if (n <= 0 || (k->spki = malloc((size_t)n)) == NULL)
		return KEYD_ERR_CRYPTO;
	p = k->spki;
	if (i2d_PUBKEY(pk, &p) != n)
		return KEYD_ERR_CRYPTO;
	k->spki_len = (size_t)n;
	return KEYD_OK;
}

static int
rsa_spki(struct dev *d, struct token_key *k, CK_OBJECT_HANDLE h)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	int r = KEYD_ERR_CRYPTO;

	if (get_attr(d, h, CKA_MODULUS, &n, &nlen) != CKR_OK ||
	    get_attr(d, h, CKA_PUBLIC_EXPONENT, &e, &elen) != CKR_OK ||
	    nlen == 0 || elen == 0) {
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	k->bits = (unsigned)BN_num_bits(bn);
	r = spki_from_pkey(pk, k);
out:
	free(n);
	free(e);
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

/* CKA_EC_POINT is a DER OCTET STRING holding the point (some tokens give
 * the bare point); returns the bare point inside buf. */
static int
unwrap_point(const uint8_t *buf, size_t len, size_t want, const uint8_t **pt)
{
	if (len == want) {
		*pt = buf;
		return 0;
	}
	if (want < 128 && len == want + 2 && buf[0] == 0x04 &&
	    buf[1] == want) {
		*pt = buf + 2;
		return 0;
	}
	if (want >= 128 && want < 256 && len == want + 3 && buf[0] == 0x04 &&
	    buf[1] == 0x81 && buf[2] == want) {
		*pt = buf + 3;
		return 0;
	}
	return -1;
}

static int
ec_spki(struct dev *d, struct token_key *k, char *err, size_t errlen)
{
	CK_OBJECT_HANDLE pubs[TOKEN_MAX_MATCHES];
	CK_ULONG npub = 0;
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	uint8_t *point = NULL;
	const uint8_t *pt;
	size_t plen, want;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	CK_RV rv;
	int r = KEYD_ERR_TOKEN;

	/* The private key object does not carry the point: its public
	 * twin, paired by CKA_ID as every PKCS#11 tool pairs them, does. */
	rv = find_objects(d, tmpl, 1, CKO_PUBLIC_KEY, pubs, &npub);
	if (rv != CKR_OK || npub == 0) {
		errf(err, errlen, "key '%s' (%s): no public key object with the "
		    "same CKA_ID on token '%s'; keyd needs it to serve the "
		    "public key", k->name, k->uri, d->label);
		goto out;
	}
	if (npub > 1) {
		errf(err, errlen, "key '%s' (%s): %lu public key objects on "
		    "token '%s' share its CKA_ID; keyd cannot tell which is "
		    "the key's", k->name, k->uri, (unsigned long)npub,
		    d->label);
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if (get_attr(d, pubs[0], CKA_EC_POINT, &point, &plen) != CKR_OK) {
		errf(err, errlen, "key '%s': cannot read CKA_EC_POINT of its "
		    "public key", k->name);
		goto out;
	}
	want = k->type == TOKEN_KEY_ED25519 ? 32 :
	    k->type == TOKEN_KEY_EC_P256 ? 65 : 97;
	if (unwrap_point(point, plen, want, &pt) != 0 ||
	    (k->type != TOKEN_KEY_ED25519 && pt[0] != 0x04)) {
		errf(err, errlen, "key '%s': its public key's CKA_EC_POINT is "
		    "not a point of the expected size", k->name);
		goto out;
	}
	r = KEYD_ERR_CRYPTO;
	if (k->type == TOKEN_KEY_ED25519) {
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt,
		    want);
		if (pk == NULL)
			goto out;
	} else {
		params[0] = OSSL_PARAM_construct_utf8_string(
		    OSSL_PKEY_PARAM_GROUP_NAME, k->type == TOKEN_KEY_EC_P256 ?
		    (char *)"prime256v1" : (char *)"secp384r1", 0);
		params[1] = OSSL_PARAM_construct_octet_string(
		    OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)pt, want);
		params[2] = OSSL_PARAM_construct_end();
		if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ==
		    NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
		    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY,
		    params) <= 0) {
			errf(err, errlen, "key '%s': its public key is not a "
			    "valid point", k->name);
			goto out;
		}
	}
	r = spki_from_pkey(pk, k);
out:
	free(point);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return r;
}

static int
same_der(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	/* AES keys have no public key: both NULL, length 0. */
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The check value of an AES key: CKA_CHECK_VALUE, or the first three
 * bytes of the encryption of a zero block. Returns 0 when the token gives
 * neither. */
static int
aes_check_value(struct dev *d, CK_OBJECT_HANDLE h, uint8_t kcv[3])
{
	CK_FUNCTION_LIST *f = d->t->f;
	CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
	uint8_t zero[16], out[16];
	CK_ULONG olen = sizeof(out);
	CK_ATTRIBUTE a = { CKA_CHECK_VALUE, kcv, 3 };

	if (f->C_GetAttributeValue(d->keeper, h, &a, 1) == CKR_OK &&
	    a.ulValueLen == 3)
		return 1;
	memset(zero, 0, sizeof(zero));
	if (f->C_EncryptInit(d->keeper, &ecb, h) != CKR_OK)
		return 0;
	if (f->C_Encrypt(d->keeper, zero, sizeof(zero), out, &olen) != CKR_OK ||
	    olen != sizeof(out))
		return 0;
	memcpy(kcv, out, 3);
	secmem_wipe(out, sizeof(out));
	return 1;
}

/* An EC or Ed25519 key's public half comes from the public key object with
 * the same CKA_ID: a test signature by the private key must verify with
 * it, or keyd would serve a public key that is not the key's (a stray
 * object, or a key pair replaced by halves). */
static int
pair_check(struct dev *d, const struct token_key *k, CK_OBJECT_HANDLE h,
    char *err, size_t errlen)
{
	static const uint8_t msg[] = "keyd: a key and its public key object";
	CK_FUNCTION_LIST *f = d->t->f;
	uint8_t dig[32], raw[TOKEN_MAX_SIG], *der = NULL;
	CK_ULONG rawlen = sizeof(raw);
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	const unsigned char *p = k->spki;
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	int ok = 0, derlen;
	CK_RV rv;

	if (!k->can_sign)
		return KEYD_OK;
	if (k->type == TOKEN_KEY_ED25519) {
		m.mechanism = CKM_EDDSA;
		rv = f->C_SignInit(d->keeper, &m, h);
		if (rv == CKR_OK)
			rv = f->C_Sign(d->keeper, (CK_BYTE *)(uintptr_t)msg,
			    sizeof(msg) - 1, raw, &rawlen);
	} else {
		EVP_Digest(msg, sizeof(msg) - 1, dig, NULL, EVP_sha256(), NULL);
		rv = f->C_SignInit(d->keeper, &m, h);
		if (rv == CKR_OK)
			rv = f->C_Sign(d->keeper, dig, sizeof(dig), raw, &rawlen);
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s' on token '%s': cannot make a test "
		    "signature: %s", k->name, d->label, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if ((pk = d2i_PUBKEY(NULL, &p, (long)k->spki_len)) == NULL)
		goto out;
	if (k->type == TOKEN_KEY_ED25519) {
		ok = (mctx = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestVerify(mctx, raw, rawlen, msg, sizeof(msg) - 1) ==
		    1;
		goto out;
	}
	if (rawlen % 2 != 0 || (es = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(raw, (int)(rawlen / 2), NULL)) == NULL ||
	    (bs = BN_bin2bn(raw + rawlen / 2, (int)(rawlen / 2), NULL)) ==
	    NULL || !ECDSA_SIG_set0(es, br, bs))
		goto out;
	br = bs = NULL;
	if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto out;
	ok = (ctx = EVP_PKEY_CTX_new(pk, NULL)) != NULL &&
	    EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_verify(ctx, der, (size_t)derlen, dig, sizeof(dig)) == 1;
out:
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(ctx);
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(pk);
	if (ok)
		return KEYD_OK;
	errf(err, errlen, "key '%s' (%s) on token '%s': a signature by the "
	    "private key does not verify with the public key object of the "
	    "same CKA_ID", k->name, k->uri, d->label);
	return KEYD_ERR_CONFIG;
}


/* Which OAEP hashes token d decrypts with RSA key h, into *found: a test
 * message is encrypted here under its public key with each, and must come
 * back. C_GetMechanismInfo cannot tell: it names CKM_RSA_PKCS_OAEP, not
 * the hashes (SoftHSM2 takes SHA-1 only). It runs in a session of its
 * own, so that an operation a token keeps after a failure cannot get in
 * the way of anything else. A hash the token refuses or gets wrong is
 * left out; a failure of the token itself (its session, its login, the
 * device) is an error, so that a token that failed for a moment does not
 * take a hash away for the whole run. what[] gets each hash's answer, for
 * the messages. */
static int
oaep_probe(struct dev *d, const struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned *found, CK_RV what[4], char *err, size_t errlen)
{
	static const uint8_t msg[] = "keyd: which OAEP hashes";
	CK_FUNCTION_LIST *f = d->t->f;
	const unsigned char *p = k->spki;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)k->spki_len);
	CK_SESSION_HANDLE sess;
	CK_RV rv;
	int r = KEYD_OK;

	*found = 0;
	if (pk == NULL) {
		errf(err, errlen, "key '%s': cannot read its public key",
		    k->name);
		return KEYD_ERR_INTERNAL;
	}
	if ((rv = f->C_OpenSession(d->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &sess)) != CKR_OK) {
		EVP_PKEY_free(pk);
		errf(err, errlen, "token '%s': cannot open a session to test "
		    "key '%s': %s", d->label, k->name, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	for (size_t i = 0; i < TOKEN_OAEP_N && r == KEYD_OK; i++) {
		const struct token_oaep *v = &token_oaep_variants[i];
		CK_RSA_PKCS_OAEP_PARAMS prm = { v->hash, v->mgf,
			CKZ_DATA_SPECIFIED, NULL, 0 };
		CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &prm, sizeof(prm) };
		uint8_t ct[TOKEN_MAX_SIG], pt[TOKEN_MAX_SIG];
		size_t ctlen = sizeof(ct);
		CK_ULONG ptlen = sizeof(pt);
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
		const EVP_MD *md = EVP_get_digestbyname(v->md);
		int ok;

		ok = ctx != NULL && md != NULL &&
		    EVP_PKEY_encrypt_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx,
		    RSA_PKCS1_OAEP_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
		    EVP_PKEY_encrypt(ctx, ct, &ctlen, msg, sizeof(msg)) == 1;
		EVP_PKEY_CTX_free(ctx);
		if (!ok) {
			errf(err, errlen, "key '%s': OpenSSL cannot encrypt "
			    "to it with %s", k->name, v->name);
			r = KEYD_ERR_INTERNAL;
			break;
		}
		rv = f->C_DecryptInit(sess, &m, h);
		if (rv == CKR_OK)
			rv = f->C_Decrypt(sess, ct, (CK_ULONG)ctlen, pt, &ptlen);
		what[i] = rv;
		if (rv == CKR_OK && ptlen == sizeof(msg) &&
		    memcmp(pt, msg, sizeof(msg)) == 0)
			*found |= v->bit;
		else if (rv == CKR_OK)
			what[i] = CKR_FUNCTION_FAILED; /* another plaintext */
		else if (rv_device_failed(rv) || rv == CKR_HOST_MEMORY) {
			errf(err, errlen, "token '%s' failed while keyd tested "
			    "key '%s' with %s: %s", d->label, k->name,
			    v->name, token_rv_name(rv));
			r = KEYD_ERR_TOKEN;
		}
		OPENSSL_cleanse(pt, sizeof(pt));
	}
	(void)f->C_CloseSession(sess);
	EVP_PKEY_free(pk);
	return r;
}

/* Reads what keyd needs to know of the key object h into k and checks it
 * against the key's ops. */
static int
describe_key(struct dev *d, struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned ops, int pair, char *err, size_t errlen)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	uint8_t *buf = NULL;
	size_t len;
	CK_ULONG vlen;
	int r = KEYD_ERR_CONFIG;

	if (get_ulong(d, h, CKA_CLASS, &cls) != CKR_OK ||
	    get_ulong(d, h, CKA_KEY_TYPE, &kt) != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): cannot read its class and "
		    "type", k->name, k->uri);
		return KEYD_ERR_TOKEN;
	}
	if (get_attr(d, h, CKA_ID, &buf, &len) == CKR_OK &&
	    len <= TOKEN_MAX_ID) {
		memcpy(k->id, buf, len);
		k->id_len = len;
	}
	free(buf);
	buf = NULL;
	k->can_sign = get_bool(d, h, CKA_SIGN);
	k->can_decrypt = get_bool(d, h, CKA_DECRYPT);
	k->can_encrypt = get_bool(d, h, CKA_ENCRYPT);
	k->extractable = get_bool(d, h, CKA_EXTRACTABLE);
	k->wrap_with_trusted = get_bool(d, h, CKA_WRAP_WITH_TRUSTED);
	k->weak_extractable = k->extractable && !k->wrap_with_trusted;

	if (cls == CKO_SECRET_KEY && kt == CKK_AES) {
		k->type = TOKEN_KEY_AES;
		if (get_ulong(d, h, CKA_VALUE_LEN, &vlen) == CKR_OK)
			k->bits = (unsigned)vlen * 8;
		k->has_kcv = aes_check_value(d, h, k->kcv);
	} else if (cls == CKO_SECRET_KEY && (kt == CKK_GENERIC_SECRET ||
	    kt == CKK_SHA256_HMAC)) {
		/* Only as audit_tn_key (key_ops 0): HMAC-SHA256 of the TNs
		 * in the audit log (token_hmac_sha256). */
		k->type = TOKEN_KEY_HMAC;
		if (get_ulong(d, h, CKA_VALUE_LEN, &vlen) == CKR_OK)
			k->bits = (unsigned)vlen * 8;
		if (ops != 0 || !k->can_sign) {
			errf(err, errlen, "key '%s' (%s) is an HMAC secret key%s",
			    k->name, k->uri, ops != 0 ? ": keyd serves no op "
			    "with one (it can be audit_tn_key)" :
			    " without CKA_SIGN: it cannot make an HMAC");
			return KEYD_ERR_CONFIG;
		}
	} else if (cls == CKO_PRIVATE_KEY && kt == CKK_RSA) {
		k->type = TOKEN_KEY_RSA;
		if ((r = rsa_spki(d, k, h)) != KEYD_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "modulus and public exponent", k->name, k->uri);
			return r;
		}
	} else if (cls == CKO_PRIVATE_KEY &&
	    (kt == CKK_EC || kt == CKK_EC_EDWARDS)) {
		if (get_attr(d, h, CKA_EC_PARAMS, &buf, &len) != CKR_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "CKA_EC_PARAMS", k->name, k->uri);
			return KEYD_ERR_TOKEN;
		}
		if (kt == CKK_EC && same_der(buf, len, oid_p256,
		    sizeof(oid_p256))) {
			k->type = TOKEN_KEY_EC_P256;
			k->bits = 256;
		} else if (kt == CKK_EC && same_der(buf, len, oid_p384,
		    sizeof(oid_p384))) {
			k->type = TOKEN_KEY_EC_P384;
			k->bits = 384;
		} else if (kt == CKK_EC_EDWARDS && (same_der(buf, len,
		    oid_ed25519, sizeof(oid_ed25519)) || same_der(buf, len,
		    oid_ed25519_gnu, sizeof(oid_ed25519_gnu)) ||
		    same_der(buf, len, str_ed25519, sizeof(str_ed25519)))) {
			k->type = TOKEN_KEY_ED25519;
			k->bits = 256;
		} else {
			free(buf);
			errf(err, errlen, "key '%s' (%s): its curve is not one "
			    "keyd serves (P-256, P-384, Ed25519)", k->name,
			    k->uri);
			return KEYD_ERR_CONFIG;
		}
		free(buf);
		if ((r = ec_spki(d, k, err, errlen)) != KEYD_OK)
			return r;
	} else {
		errf(err, errlen, "key '%s' (%s): a %s of type 0x%lx is not a "
		    "key keyd serves (a private key, or an AES secret key)",
		    k->name, k->uri, cls == CKO_PUBLIC_KEY ? "public key" :
		    "object", (unsigned long)kt);
		return KEYD_ERR_CONFIG;
	}

	if ((ops & CONFIG_OP_SIGN) && (k->type == TOKEN_KEY_AES ||
	    !k->can_sign)) {
		errf(err, errlen, "key '%s' (%s) has ops = sign, but it is %s",
		    k->name, k->uri, k->type == TOKEN_KEY_AES ?
		    "an AES key" : "not allowed to sign (CKA_SIGN is false)");
		return KEYD_ERR_CONFIG;
	}
	if ((ops & CONFIG_OP_DECRYPT) && (k->type != TOKEN_KEY_RSA ||
	    !k->can_decrypt)) {
		errf(err, errlen, "key '%s' (%s) has ops = decrypt, but %s",
		    k->name, k->uri, k->type != TOKEN_KEY_RSA ?
		    "only RSA keys decrypt" :
		    "CKA_DECRYPT is false on the token");
		return KEYD_ERR_CONFIG;
	}
	if ((ops & (CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN)) &&
	    (k->type != TOKEN_KEY_AES || !k->can_encrypt ||
	    !k->can_decrypt)) {
		errf(err, errlen, "key '%s' (%s) has SRTP ops, but %s",
		    k->name, k->uri, k->type != TOKEN_KEY_AES ?
		    "only AES keys wrap SRTP keys" :
		    "it lacks CKA_ENCRYPT or CKA_DECRYPT");
		return KEYD_ERR_CONFIG;
	}
	/* ES256 (RFC 8588): the SHAKEN key is EC P-256. */
	if ((ops & CONFIG_OP_PASSPORT) && (k->type != TOKEN_KEY_EC_P256 ||
	    !k->can_sign)) {
		errf(err, errlen, "key '%s' (%s) has ops = passport, but %s",
		    k->name, k->uri, k->type != TOKEN_KEY_EC_P256 ?
		    "a PASSporT is signed with ES256: the key must be EC P-256" :
		    "it is not allowed to sign (CKA_SIGN is false)");
		return KEYD_ERR_CONFIG;
	}
	if (pair && (k->type == TOKEN_KEY_EC_P256 ||
	    k->type == TOKEN_KEY_EC_P384 || k->type == TOKEN_KEY_ED25519))
		return pair_check(d, k, h, err, errlen);
	return KEYD_OK;
}

/* Checks that the object h on token d is the key that keyd describes in
 * k (read from the first token that served, at start-up): same type, same
 * public key, same AES check value. A failover token restored from a
 * backup holds the same keys; a key rotated under keyd's feet is not the
 * key keyd announced to its clients. */
static int
check_same_key(struct dev *d, const struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned ops, int pair, char *err, size_t errlen)
{
	struct token_key now;
	int r;

	memset(&now, 0, sizeof(now));
	now.name = k->name;
	now.uri = k->uri;
	if ((r = describe_key(d, &now, h, ops, pair, err, errlen)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_CONFIG;
	/* Some tokens leave CKA_VALUE_LEN off an unwrapped AES key. */
	if (now.type != k->type || (now.bits != k->bits && now.bits != 0 &&
	    k->bits != 0)) {
		errf(err, errlen, "key '%s' on token '%s' is a %s-%u key, not "
		    "the %s-%u key keyd serves", k->name, d->label,
		    token_key_type_name(now.type), now.bits,
		    token_key_type_name(k->type), k->bits);
		goto out;
	}
	if (!same_der(now.spki, now.spki_len, k->spki, k->spki_len)) {
		errf(err, errlen, "key '%s' on token '%s' has another public "
		    "key than the one keyd serves (restart keyd to serve a "
		    "new key)", k->name, d->label);
		goto out;
	}
	if (k->type == TOKEN_KEY_AES && (!now.has_kcv || !k->has_kcv)) {
		errf(err, errlen, "key '%s' on token '%s': no check value "
		    "(CKA_CHECK_VALUE, or AES-ECB of a zero block) to show it is "
		    "the AES key keyd serves", k->name, d->label);
		goto out;
	}
	if (k->type == TOKEN_KEY_AES &&
	    memcmp(now.kcv, k->kcv, sizeof(k->kcv)) != 0) {
		errf(err, errlen, "key '%s' on token '%s' has another check "
		    "value than the AES key keyd serves", k->name, d->label);
		goto out;
	}
	if (now.weak_extractable && !k->weak_extractable)
		log_warn("KEY '%s' ON TOKEN '%s' IS EXTRACTABLE WITHOUT "
		    "CKA_WRAP_WITH_TRUSTED, unlike on the first token: anyone "
		    "holding the user PIN can read it in the clear there",
		    k->name, d->label);
	r = KEYD_OK;
out:
	free(now.spki);
	return r;
}

/* Looks an object up by a URI's attributes. With no class in the URI
 * (type=), a private or secret key is what is meant; prev_only: an AES
 * secret key (a previous KEK version). */
static int
find_key_obj(struct dev *d, const char *name, const char *uri,
    CK_ATTRIBUTE *tmpl, CK_ULONG tmpl_n, int prev_only,
    CK_OBJECT_HANDLE *out, char *err, size_t errlen)
{
	CK_OBJECT_HANDLE objs[TOKEN_MAX_MATCHES];
	CK_ULONG n = 0, total = 0;
	int has_class = 0;
	CK_RV rv;

	for (CK_ULONG i = 0; i < tmpl_n; i++)
		if (tmpl[i].type == CKA_CLASS)
			has_class = 1;
	if (prev_only || has_class) {
		rv = find_objects(d, tmpl, tmpl_n, prev_only ?
		    (long)CKO_SECRET_KEY : -1L, objs, &n);
		total = n;
	} else {
		CK_OBJECT_HANDLE more[TOKEN_MAX_MATCHES];
		CK_ULONG m = 0;

		rv = find_objects(d, tmpl, tmpl_n, CKO_PRIVATE_KEY, objs, &n);
		if (rv == CKR_OK)
			rv = find_objects(d, tmpl, tmpl_n, CKO_SECRET_KEY, more,
			    &m);
		total = n + m;
		if (n == 0 && m > 0)
			objs[0] = more[0];
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): search on token '%s' failed: "
		    "%s", name, uri, d->label, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if (total == 0) {
		errf(err, errlen, "key '%s'%s (%s) is not on token '%s'%s", name,
		    prev_only ? ", previous version" : "", uri, d->label,
		    prev_only ? " (as a secret key)" : "");
		return KEYD_ERR_CONFIG;
	}
	if (total > 1) {
		errf(err, errlen, "key '%s' (%s) matches %lu objects on token "
		    "'%s'; add id= or type= to the URI", name, uri,
		    (unsigned long)total, d->label);
		return KEYD_ERR_CONFIG;
	}
	*out = objs[0];
	return KEYD_OK;
}

/* The certificate object with the key's CKA_ID, if the token has one. */
static void
find_cert(struct dev *d, struct token_key *k)
{
	CK_OBJECT_HANDLE objs[TOKEN_MAX_MATCHES];
	CK_ULONG n = 0;
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	uint8_t *der = NULL;
	size_t len = 0;

	if (k->id_len == 0 || k->type == TOKEN_KEY_AES)
		return;
	if (find_objects(d, tmpl, 1, CKO_CERTIFICATE, objs, &n) != CKR_OK ||
	    n == 0)
		return;
	if (n > 1)
		log_warn("key '%s': %lu certificates share its CKA_ID; serving "
		    "the first", k->name, (unsigned long)n);
	if (get_attr(d, objs[0], CKA_VALUE, &der, &len) != CKR_OK ||
	    len == 0) {
		free(der);
		return;
	}
	k->cert = der;
	k->cert_len = len;
}

/* Parses a URI into a search template. The token attributes of a key's
 * URI must name the primary token, as the token URI does; a failover
 * token is searched by the object attributes alone. */
static int
parse_uri(struct token *t, const char *name, const char *uri,
    CK_ATTRIBUTE **out, CK_ULONG *nout, char *err, size_t errlen)
{
	P11KitUri *u = p11_kit_uri_new();
	struct dev *p = &t->dev[0];
	CK_ATTRIBUTE *attrs, *tmpl = NULL;
	CK_ULONG n, i = 0;
	int pr, r = KEYD_ERR_CONFIG;

	*out = NULL;
	*nout = 0;
	if (u == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, u);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "key '%s': uri %s: %s", name, uri,
		    p11_kit_uri_message(pr));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		errf(err, errlen, "key '%s': uri %s has attributes keyd does "
		    "not know", name, uri);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(u) != NULL ||
	    p11_kit_uri_get_pin_source(u) != NULL) {
		errf(err, errlen, "key '%s': uri must not carry a PIN; keyd "
		    "reads the PIN from pin_file", name);
		goto out;
	}
	/* A primary absent at start-up (keyd serves from the failover
	 * token) cannot be checked. */
	if (p->have_info && !t->cfg->serving_failover &&
	    !p11_kit_uri_match_token_info(u, &p->info)) {
		errf(err, errlen, "key '%s': uri %s names another token than "
		    "[keyd] token", name, uri);
		goto out;
	}
	attrs = p11_kit_uri_get_attributes(u, &n);
	if (n == 0) {
		errf(err, errlen, "key '%s': uri %s names no object; add "
		    "object= or id=", name, uri);
		goto out;
	}
	if ((tmpl = calloc(n, sizeof(*tmpl))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		tmpl[i].type = attrs[i].type;
		tmpl[i].ulValueLen = attrs[i].ulValueLen;
		tmpl[i].pValue = malloc(attrs[i].ulValueLen ?
		    attrs[i].ulValueLen : 1);
		if (tmpl[i].pValue == NULL) {
			r = KEYD_ERR_NOMEM;
			goto out;
		}
		memcpy(tmpl[i].pValue, attrs[i].pValue, attrs[i].ulValueLen);
	}
	/* The caller owns the template even on failure: it frees n entries. */
	r = KEYD_OK;
out:
	*out = tmpl;
	*nout = i;
	p11_kit_uri_free(u);
	return r;
}

/* The config's ops for key i (the audit key: sign; the audit_tn HMAC
 * key: none a client could ask for). */
static unsigned
key_ops(const struct token *t, size_t i)
{
	if (t->has_tn_key && i == t->n_all - 1)
		return 0;
	return i < t->n_keys ? t->cfg->keys[i].ops : CONFIG_OP_SIGN;
}

static size_t
copied_keys(const struct dev *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->t->n_all; i++)
		n += d->keys[i].copied != 0;
	return n;
}

/* Makes session copies of a token's keys in its keeper session, so that
 * operations do not re-read the key from the token's storage. A token
 * that refuses (CKA_COPYABLE false, or no C_CopyObject) is served from the
 * token object. The copies vanish with the keeper session. */
static void
copy_keys(struct dev *d)
{
	struct token *t = d->t;
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE tmpl[1] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_RV rv;

	for (size_t i = 0; i < t->n_all; i++) {
		struct dev_key *dk = &d->keys[i];

		dk->copied = 0;
		for (size_t v = 0; v < dk->n; v++)
			dk->use[v] = dk->obj[v];
		if (!t->key_copies)
			continue;
		for (size_t v = 0; v < dk->n; v++) {
			rv = t->f->C_CopyObject(d->keeper, dk->obj[v], tmpl, 1,
			    &dk->use[v]);
			if (rv != CKR_OK) {
				log_warn("token '%s' will not copy key '%s' "
				    "into a session object (%s); serving the "
				    "token object", d->label, t->keys[i].name,
				    token_rv_name(rv));
				for (size_t w = 0; w < v; w++)
					(void)t->f->C_DestroyObject(d->keeper,
					    dk->use[w]);
				for (size_t w = 0; w < dk->n; w++)
					dk->use[w] = dk->obj[w];
				break;
			}
			dk->copied = v + 1 == dk->n;
		}
	}
	pthread_mutex_lock(&d->shown_mu);
	d->shown_copies = (unsigned)copied_keys(d);
	pthread_mutex_unlock(&d->shown_mu);
}

/* Finds every key on token d. The first token to do so describes the keys
 * (type, public key, certificate) and checks them against their ops;
 * afterwards every lookup, on either token, must find the same keys. */
/* What an op needs of the token's mechanisms. */
struct mech_need {
	enum token_key_type type;
	unsigned ops;              /* any of these CONFIG_OP_* needs it */
	int pkcs1;                 /* -1: any; 0/1: the key's pkcs1_decrypt */
	CK_MECHANISM_TYPE mech;
	const char *mech_name;
	CK_FLAGS flags;            /* what C_GetMechanismInfo must say */
	int required;              /* 0: a warning names the requests that
	                              will fail */
	const char *what;
};

#define OPS_SRTP (CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN)
static const struct mech_need mech_needs[] = {
	{ TOKEN_KEY_EC_P256, CONFIG_OP_SIGN, -1, CKM_ECDSA, "CKM_ECDSA",
	  CKF_SIGN, 1, "ECDSA signatures" },
	{ TOKEN_KEY_EC_P384, CONFIG_OP_SIGN, -1, CKM_ECDSA, "CKM_ECDSA",
	  CKF_SIGN, 1, "ECDSA signatures" },
	{ TOKEN_KEY_EC_P256, CONFIG_OP_PASSPORT, -1, CKM_ECDSA, "CKM_ECDSA",
	  CKF_SIGN, 1, "PASSporT signatures (ES256)" },
	{ TOKEN_KEY_ED25519, CONFIG_OP_SIGN, -1, CKM_EDDSA, "CKM_EDDSA",
	  CKF_SIGN, 1, "Ed25519 signatures" },
	{ TOKEN_KEY_RSA, CONFIG_OP_SIGN, -1, CKM_RSA_PKCS, "CKM_RSA_PKCS",
	  CKF_SIGN, 1, "RSA PKCS#1 v1.5 signatures" },
	{ TOKEN_KEY_RSA, CONFIG_OP_SIGN, -1, CKM_RSA_PKCS_PSS,
	  "CKM_RSA_PKCS_PSS", CKF_SIGN, 0, "rsa-pss-* signatures" },
	{ TOKEN_KEY_RSA, CONFIG_OP_DECRYPT, 0, CKM_RSA_PKCS_OAEP,
	  "CKM_RSA_PKCS_OAEP", CKF_DECRYPT, 1, "RSA-OAEP decryption" },
	{ TOKEN_KEY_RSA, CONFIG_OP_DECRYPT, 1, CKM_RSA_X_509,
	  "CKM_RSA_X_509", CKF_DECRYPT, 1,
	  "PKCS#1 v1.5 decryption with implicit rejection (raw RSA)" },
	{ TOKEN_KEY_AES, OPS_SRTP, -1, CKM_AES_GCM, "CKM_AES_GCM",
	  CKF_ENCRYPT | CKF_DECRYPT, 1,
	  "SRTP key wrapping (AES-GCM, see docs/srtp.md)" },
};

static const char *
op_names(unsigned ops)
{
	if (ops & CONFIG_OP_SIGN)
		return "sign";
	if (ops & CONFIG_OP_DECRYPT)
		return "decrypt";
	if (ops & CONFIG_OP_PASSPORT)
		return "passport";
	return "srtp-new/srtp-open";
}

/* The first time keyd uses token d: every key's ops against the token's
 * mechanism list (C_GetMechanismList, C_GetMechanismInfo). A key whose
 * op the token cannot do is a start-up error naming the op, the key and
 * the mechanism; a variant it lacks (RSA-PSS) is a warning. */
static int
check_mechanisms(struct dev *d, char *err, size_t errlen)
{
	struct token *t = d->t;
	CK_FUNCTION_LIST *f = t->f;
	CK_MECHANISM_TYPE *list = NULL;
	CK_ULONG n = 0;
	CK_RV rv;
	int r = KEYD_OK;

	if ((rv = f->C_GetMechanismList(d->slot, NULL, &n)) != CKR_OK ||
	    n == 0 || (list = calloc(n, sizeof(*list))) == NULL ||
	    (rv = f->C_GetMechanismList(d->slot, list, &n)) != CKR_OK) {
		log_warn("token '%s': cannot read its mechanism list (%s): "
		    "the keys' ops are not checked against it", d->label,
		    rv != CKR_OK ? token_rv_name(rv) : n == 0 ? "it is empty" :
		    "out of memory");
		free(list);
		return KEYD_OK;
	}
	for (size_t i = 0; i < t->n_all && r == KEYD_OK; i++) {
		const struct token_key *k = &t->keys[i];
		unsigned ops = key_ops(t, i);
		int pkcs1 = i < t->n_keys ? t->cfg->keys[i].pkcs1_decrypt : 0;

		for (size_t j = 0; j < sizeof(mech_needs) /
		    sizeof(mech_needs[0]); j++) {
			const struct mech_need *m = &mech_needs[j];
			CK_MECHANISM_INFO info;
			const char *why = NULL;
			CK_ULONG x;

			/* No client uses the audit key but to sign the
			 * log's checkpoints: only what that needs. */
			if (m->type != k->type || !(ops & m->ops) ||
			    (m->pkcs1 >= 0 && m->pkcs1 != (pkcs1 != 0)) ||
			    (i >= t->n_keys && !m->required))
				continue;
			for (x = 0; x < n && list[x] != m->mech; x++)
				;
			if (x == n) {
				why = "is not in its mechanism list";
			} else if (f->C_GetMechanismInfo(d->slot, m->mech,
			    &info) == CKR_OK && (info.flags & m->flags) !=
			    m->flags) {
				/* The flags are advisory, and some modules
				 * leave some out: the call itself decides. */
				log_warn("token '%s' lists %s without the flags "
				    "for %s (C_GetMechanismInfo): if it refuses, "
				    "those requests with key '%s' fail", d->label,
				    m->mech_name, m->what, k->name);
				continue;
			}
			if (why == NULL)
				continue;
			if (!m->required) {
				log_warn("token '%s' lacks %s (it %s): requests "
				    "for %s with key '%s' will fail", d->label,
				    m->mech_name, why, m->what, k->name);
				continue;
			}
			if (i < t->n_keys)
				errf(err, errlen, "key '%s' has ops = %s, but "
				    "token '%s' cannot do %s: %s %s", k->name,
				    op_names(ops & m->ops), d->label, m->what,
				    m->mech_name, why);
			else
				errf(err, errlen, "audit_key %s signs the "
				    "audit log's checkpoints, but token '%s' "
				    "cannot do %s: %s %s", k->uri, d->label,
				    m->what, m->mech_name, why);
			r = KEYD_ERR_CONFIG;
			break;
		}
	}
	free(list);
	return r;
}

/* The first time keyd uses token d: which OAEP hashes it decrypts with,
 * for each key with ops = decrypt (into d->keys[].oaep). A key that
 * decrypts with none is an error, unless PKCS#1 v1.5 (implicit rejection,
 * through raw RSA) is what it is for; so is a token present at start-up
 * that shares no OAEP hash with the tokens before it. */
static int
probe_oaep(struct dev *d, char *err, size_t errlen)
{
	const struct token *t = d->t;
	char names[128];
	int r;

	for (size_t i = 0; i < t->n_keys; i++) {
		const struct token_key *k = &t->keys[i];
		unsigned *got = &d->keys[i].oaep;
		CK_RV what[4] = { 0 };
		size_t used = 0;

		*got = 0;
		if (!(key_ops(t, i) & CONFIG_OP_DECRYPT) ||
		    k->type != TOKEN_KEY_RSA)
			continue;
		if ((r = oaep_probe(d, k, d->keys[i].obj[0], got, what, err,
		    errlen)) != KEYD_OK)
			return r;
		if (*got == 0 && t->cfg->keys[i].pkcs1_decrypt) {
			log_warn("key '%s' on token '%s' decrypted a test "
			    "ciphertext with no OAEP hash: keyd offers only "
			    "PKCS#1 v1.5 decryption with it", k->name,
			    d->label);
			continue;
		}
		if (*got == 0) {
			names[0] = '\0';
			for (size_t v = 0; v < 4 && used < sizeof(names); v++)
				used += (size_t)snprintf(names + used,
				    sizeof(names) - used, "%s%s: %s",
				    v > 0 ? ", " : "", token_oaep_variants[v].name +
				    strlen("rsa-oaep-"), token_rv_name(what[v]));
			errf(err, errlen, "key '%s' (%s) has ops = decrypt, "
			    "but token '%s' decrypted a test ciphertext with no "
			    "OAEP hash (CKM_RSA_PKCS_OAEP, MGF1 of the same "
			    "hash, no label; %s)", k->name, k->uri, d->label,
			    names);
			return KEYD_ERR_CONFIG;
		}
		if (!t->opened && t->oaep_known &&
		    (*got & k->oaep_hashes) == 0 &&
		    !t->cfg->keys[i].pkcs1_decrypt) {
			token_oaep_names(*got, names, sizeof(names));
			errf(err, errlen, "key '%s' decrypts with %s on token "
			    "'%s', which shares no OAEP hash with the token keyd "
			    "read first", k->name, names, d->label);
			return KEYD_ERR_CONFIG;
		}
	}
	return KEYD_OK;
}

/* Token d passed every check: keyd offers the OAEP hashes that every
 * token present at start-up decrypted with. A token that comes later and
 * lacks one of them fails those requests while it serves. */
static void
merge_oaep(struct dev *d)
{
	struct token *t = d->t;
	char lacks[128];

	for (size_t i = 0; i < t->n_keys; i++) {
		struct token_key *k = &t->keys[i];
		unsigned got = d->keys[i].oaep;

		if (!(key_ops(t, i) & CONFIG_OP_DECRYPT) ||
		    k->type != TOKEN_KEY_RSA)
			continue;
		if (!t->oaep_known) {
			k->oaep_hashes = got;
			continue;
		}
		if ((k->oaep_hashes & ~got) == 0)
			continue;
		token_oaep_names(k->oaep_hashes & ~got, lacks, sizeof(lacks));
		if (!t->opened) {
			k->oaep_hashes &= got;
			log_warn("key '%s' on token '%s' does not decrypt with "
			    "%s: keyd does not offer it for that key", k->name,
			    d->label, lacks);
		} else {
			log_warn("key '%s' on token '%s' does not decrypt with "
			    "%s, which keyd offers for it: those requests fail "
			    "while this token serves", k->name, d->label,
			    lacks);
		}
	}
	if (!t->opened)
		t->oaep_known = 1;
}

static int
resolve_keys(struct dev *d, char *err, size_t errlen)
{
	struct token *t = d->t;
	int r;

	/* Every object first: a token that lacks one is found out before
	 * any private-key operation (the test signatures and decryptions). */
	for (size_t i = 0; i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];
		struct dev_key *dk = &d->keys[i];

		if ((r = find_key_obj(d, k->name, k->uri, k->tmpl, k->tmpl_n, 0,
		    &dk->obj[0], err, errlen)) != KEYD_OK)
			return r;
		for (size_t v = 0; v < k->n_prev; v++)
			if ((r = find_key_obj(d, k->name, k->prev_uri[v],
			    k->prev_tmpl[v], k->prev_tmpl_n[v], 1,
			    &dk->obj[v + 1], err, errlen)) != KEYD_OK)
				return r;
	}
	for (size_t i = 0; i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];
		struct dev_key *dk = &d->keys[i];

		if (!t->described) {
			/* What an earlier token described before it failed
			 * on a later key is described again. */
			free(k->spki);
			free(k->cert);
			k->spki = k->cert = NULL;
			k->spki_len = k->cert_len = 0;
			r = describe_key(d, k, dk->obj[0], key_ops(t, i), 1,
			    err, errlen);
			if (r == KEYD_OK)
				find_cert(d, k);
		} else {
			r = check_same_key(d, k, dk->obj[0], key_ops(t, i),
			    !d->pairs_checked, err, errlen);
		}
		if (r != KEYD_OK)
			return r;
		for (size_t v = 0; v < k->n_prev; v++) {
			CK_KEY_TYPE kt = 0;
			uint8_t kcv[3];
			int has;

			if (get_ulong(d, dk->obj[v + 1], CKA_KEY_TYPE, &kt) !=
			    CKR_OK || kt != CKK_AES) {
				errf(err, errlen, "key '%s': previous version %s "
				    "is not an AES key", k->name,
				    k->prev_uri[v]);
				return KEYD_ERR_CONFIG;
			}
			has = aes_check_value(d, dk->obj[v + 1], kcv);
			if (!t->described) {
				memcpy(k->prev_kcv[v], kcv, sizeof(kcv));
				k->prev_has_kcv[v] = has;
			} else if (!has || !k->prev_has_kcv[v] ||
			    memcmp(kcv, k->prev_kcv[v], sizeof(kcv)) != 0) {
				errf(err, errlen, "key '%s': previous version %s "
				    "on token '%s' %s", k->name, k->prev_uri[v],
				    d->label, has && k->prev_has_kcv[v] ?
				    "has another check value than the one keyd "
				    "serves" : "has no check value to compare");
				return KEYD_ERR_CONFIG;
			}
		}
	}
	/* The mechanisms, once a token; then the OAEP probes (a missing
	 * CKM_RSA_PKCS_OAEP is named as such first). */
	if (!d->pairs_checked && ((r = check_mechanisms(d, err, errlen)) !=
	    KEYD_OK || (r = probe_oaep(d, err, errlen)) != KEYD_OK))
		return r;
	/* The audit key must be no key a client can use. The handle names
	 * one object within one token; the same key pair can also sit in
	 * another object (a copy, a restore under another label), so the
	 * public keys are compared too. An EC or Ed25519 key's public key is
	 * the one its test signature verified with (pair_check), so it is
	 * the private key's own, not a stray object's. */
	if (t->has_audit_key) {
		const struct token_key *ak = &t->keys[t->n_keys];
		CK_OBJECT_HANDLE ah = d->keys[t->n_keys].obj[0];

		for (size_t i = 0; i < t->n_keys; i++) {
			const struct token_key *sk = &t->keys[i];

			for (size_t v = 0; v < d->keys[i].n; v++)
				if (d->keys[i].obj[v] == ah) {
					errf(err, errlen, "audit_key %s is the "
					    "same token object as [key %s]; the "
					    "audit key must be a key that no "
					    "client can use", t->cfg->audit_key,
					    sk->name);
					return KEYD_ERR_CONFIG;
				}
			/* AES keys have no public key to compare (and an
			 * audit key is never one: it signs). */
			if (ak->spki_len > 0 && same_der(ak->spki,
			    ak->spki_len, sk->spki, sk->spki_len)) {
				errf(err, errlen, "audit_key %s has the same "
				    "public key as [key %s] (%s): they hold the "
				    "same key pair, and the audit key must be a "
				    "key that no client can use",
				    t->cfg->audit_key, sk->name, sk->uri);
				return KEYD_ERR_CONFIG;
			}
		}
	}
	t->described = 1;
	if (!d->pairs_checked)
		merge_oaep(d);
	/* The test signatures, once a token: a recovery finds the same
	 * objects again, and public keys are compared all the same. */
	d->pairs_checked = 1;
	copy_keys(d);
	return KEYD_OK;
}

long
token_audit_key(const struct token *t)
{
	return t->has_audit_key ? (long)t->n_keys : -1;
}

/* Parses the key URIs of the config (and the audit key's) into search
 * templates, once. */
static int
parse_keys(struct token *t, const struct config *cfg, char *err,
    size_t errlen)
{
	int r;

	for (size_t i = 0; i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];
		const struct config_key *ck = i < cfg->n_keys ? &cfg->keys[i] :
		    NULL;

		k->name = ck != NULL ? ck->name : (t->has_tn_key &&
		    i == t->n_all - 1) ? "audit_tn_key" : "audit_key";
		k->uri = ck != NULL ? ck->uri : (t->has_tn_key &&
		    i == t->n_all - 1) ? cfg->audit_tn_key : cfg->audit_key;
		if ((r = parse_uri(t, k->name, k->uri, &k->tmpl, &k->tmpl_n, err,
		    errlen)) != KEYD_OK)
			return r;
		if (ck == NULL || ck->n_previous == 0)
			continue;
		k->prev_uri = (const char **)ck->previous;
		k->prev_tmpl = calloc(ck->n_previous, sizeof(*k->prev_tmpl));
		k->prev_tmpl_n = calloc(ck->n_previous,
		    sizeof(*k->prev_tmpl_n));
		k->prev_kcv = calloc(ck->n_previous, sizeof(*k->prev_kcv));
		k->prev_has_kcv = calloc(ck->n_previous,
		    sizeof(*k->prev_has_kcv));
		if (k->prev_tmpl == NULL || k->prev_tmpl_n == NULL ||
		    k->prev_kcv == NULL || k->prev_has_kcv == NULL)
			return KEYD_ERR_NOMEM;
		k->n_prev = ck->n_previous;
		for (size_t v = 0; v < k->n_prev; v++)
			if ((r = parse_uri(t, k->name, ck->previous[v],
			    &k->prev_tmpl[v], &k->prev_tmpl_n[v], err,
			    errlen)) != KEYD_OK)
				return r;
	}
	for (size_t j = 0; j < t->ndev; j++) {
		struct dev *d = &t->dev[j];

		if ((d->keys = calloc(t->n_all + 1, sizeof(*d->keys))) == NULL)
			return KEYD_ERR_NOMEM;
		for (size_t i = 0; i < t->n_all; i++) {
			d->keys[i].n = t->keys[i].n_prev + 1;
			d->keys[i].obj = calloc(d->keys[i].n, sizeof(CK_ULONG));
			d->keys[i].use = calloc(d->keys[i].n, sizeof(CK_ULONG));
			if (d->keys[i].obj == NULL || d->keys[i].use == NULL)
				return KEYD_ERR_NOMEM;
		}
	}
	return KEYD_OK;
}

static int
dev_init(struct token *t, struct dev *d, int idx, const char *uri,
    char *err, size_t errlen)
{
	int pr;

	d->t = t;
	d->idx = idx;
	d->role = idx == 0 ? "primary" : "failover";
	d->uri_str = uri;
	snprintf(d->label, sizeof(d->label), "%s", uri);
	/* Writers first: with glibc's default, a recovery waits for as long
	 * as workers keep reading, and under load that is for ever. */
	{
		pthread_rwlockattr_t ra;

		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra,
		    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&d->lock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	pthread_mutex_init(&d->shown_mu, NULL);
	if ((d->uri = p11_kit_uri_new()) == NULL)
		return KEYD_ERR_NOMEM;
	pr = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_TOKEN, d->uri);
	if (pr != P11_KIT_URI_OK) {
		errf(err, errlen, "%s = %s: %s", idx == 0 ? "token" :
		    "failover_token", uri, p11_kit_uri_message(pr));
		return KEYD_ERR_CONFIG;
	}
	if (p11_kit_uri_get_pin_value(d->uri) != NULL ||
	    p11_kit_uri_get_pin_source(d->uri) != NULL) {
		errf(err, errlen, "%s = %s: the URI must not carry a PIN; use "
		    "pin_file", idx == 0 ? "token" : "failover_token", uri);
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* Opens one token at start-up: slot, login, keys. */
static int
dev_open(struct dev *d, char *err, size_t errlen)
{
	int r;

	if ((r = find_slot(d, err, errlen)) != KEYD_OK ||
	    (r = keeper_login(d, err, errlen)) != KEYD_OK ||
	    (r = resolve_keys(d, err, errlen)) != KEYD_OK)
		return r;
	return KEYD_OK;
}

/* After a start-up error: if a token matched no URI, what to check. The
 * usual cause is a module that sees other tokens than the ones meant,
 * e.g. SoftHSM2 run without the SOFTHSM2_CONF that names its tokendir. */
static void
no_token_hint(const struct token *t, char *err, size_t errlen)
{
	const char *conf = secure_getenv("SOFTHSM2_CONF");
	size_t l = strlen(err);
	int n;

	if (!t->dev[0].no_match && !(t->ndev == 2 && t->dev[1].no_match))
		return;
	n = snprintf(err + l, errlen - l, "; check the token URI against the "
	    "labels present, and that module %s is the one that holds the "
	    "token", t->cfg->module_real);
	if (n < 0 || (size_t)n >= errlen - l ||
	    strstr(t->cfg->module_real, "softhsm") == NULL)
		return;
	l += (size_t)n;
	snprintf(err + l, errlen - l, "; SoftHSM2 finds its tokens through "
	    "the SOFTHSM2_CONF environment variable, which is %s%s%s here "
	    "('softhsm2-util --show-slots' with the same SOFTHSM2_CONF lists "
	    "them)", conf != NULL ? "'" : "", conf != NULL ? conf : "not set",
	    conf != NULL ? "'" : "");
}

int
token_open(const struct config *cfg, const char *pin, size_t pin_len,
    struct token **out, char *err, size_t errlen)
{
	struct token *t = NULL;
	CK_C_INITIALIZE_ARGS args;
	char err2[512];
	CK_RV rv;
	int r = KEYD_ERR_TOKEN, r2 = KEYD_ERR_TOKEN;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return KEYD_ERR_NOMEM;
	t->cfg = cfg;
	pthread_mutex_init(&t->signer.mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->signer.cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	t->key_copies = cfg->key_copies;
	t->timeout_ms = (long)cfg->token_timeout_ms;
	t->ndev = cfg->failover_token != NULL ? 2 : 1;
	if ((t->pin = secmem_alloc(pin_len + 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	memcpy(t->pin, pin, pin_len);
	t->pin_len = pin_len;
	for (size_t j = 0; j < t->ndev; j++)
		if ((r = dev_init(t, &t->dev[j], (int)j, j == 0 ? cfg->token :
		    cfg->failover_token, err, errlen)) != KEYD_OK)
			goto out;

	/* p11-kit loads the module from the configured path only; unmanaged,
	 * so that keyd initialises it itself with OS locking (SoftHSM2 runs
	 * without its mutexes when given NULL, and crashes with threads). */
	t->f = p11_kit_module_load(cfg->module_real,
	    P11_KIT_MODULE_UNMANAGED | P11_KIT_MODULE_CRITICAL);
	if (t->f == NULL) {
		errf(err, errlen, "cannot load PKCS#11 module %s: %s",
		    cfg->module_real, p11_kit_message() ? p11_kit_message() :
		    "unknown error");
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = t->f->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		errf(err, errlen, "C_Initialize of %s failed: %s",
		    cfg->module_real, token_rv_name(rv));
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	t->initialized = 1;

	t->n_keys = cfg->n_keys;
	t->has_tn_key = cfg->audit_tn == CONFIG_AUDIT_TN_HMAC &&
	    cfg->audit_tn_key != NULL;
	t->n_all = cfg->n_keys + (cfg->audit_key != NULL) +
	    (t->has_tn_key != 0);
	t->has_audit_key = cfg->audit_key != NULL;
	if ((t->keys = calloc(t->n_all + 1, sizeof(*t->keys))) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	/* The primary's token info first, if it is there: key URIs are
	 * checked against it. */
	if ((r = find_slot(&t->dev[0], err, errlen)) != KEYD_OK &&
	    t->ndev == 1) {
		no_token_hint(t, err, errlen);
		goto out;
	}
	if ((r = parse_keys(t, cfg, err, errlen)) != KEYD_OK)
		goto out;

	/* keyd starts if either token can serve every key. */
	r = dev_open(&t->dev[0], err, errlen);
	if (t->ndev == 2) {
		r2 = dev_open(&t->dev[1], err2, sizeof(err2));
		if (t->dev[0].have_info && t->dev[1].have_info &&
		    t->dev[0].slot == t->dev[1].slot) {
			errf(err, errlen, "failover_token %s names the same "
			    "token as token %s", cfg->failover_token,
			    cfg->token);
			r = KEYD_ERR_CONFIG;
			goto out;
		}
		if (r != KEYD_OK && r2 != KEYD_OK) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l, "; and the failover token "
			    "cannot serve either: %s", err2);
			no_token_hint(t, err, errlen);
			goto out;
		}
		if (r != KEYD_OK) {
			log_error("primary token: %s; serving from the failover "
			    "token '%s' and trying the primary again every %d "
			    "s", err, t->dev[1].label, TOKEN_PROBE_MS / 1000);
			atomic_store(&t->dev[0].broken, 1);
			atomic_store(&t->active, 1);
		} else if (r2 != KEYD_OK) {
			log_error("failover token: %s; it will be tried again "
			    "when the primary fails", err2);
			atomic_store(&t->dev[1].broken, 1);
		} else {
			log_info("failover token '%s' holds every key",
			    t->dev[1].label);
		}
		r = KEYD_OK;
	} else if (r != KEYD_OK) {
		no_token_hint(t, err, errlen);
		goto out;
	}
	for (size_t j = 0; j < t->ndev; j++)
		if (!atomic_load(&t->dev[j].broken) && t->key_copies)
			log_info("token '%s': %zu of %zu key%s served from "
			    "session copies", t->dev[j].label,
			    copied_keys(&t->dev[j]), t->n_all,
			    LOG_PLURAL(t->n_all));
	t->opened = 1;
	*out = t;
	t = NULL;
	r = KEYD_OK;
out:
	token_close(t);
	return r;
}

/* Stops the signer; 0 if it is still inside a token call (then nothing
 * may be finalised or freed). */
static int
signer_stop(struct token *t)
{
	struct signer *sg = &t->signer;
	struct timespec until;
	int stuck;

	pthread_mutex_lock(&sg->mu);
	if (!sg->started) {
		pthread_mutex_unlock(&sg->mu);
		return 1;
	}
	sg->quit = 1;
	pthread_cond_broadcast(&sg->cv);
	pthread_mutex_unlock(&sg->mu);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	stuck = pthread_timedjoin_np(sg->th, NULL, &until) != 0;
	if (stuck)
		log_error("the audit checkpoint signer still waits on the token; "
		    "leaving the token open");
	else
		sg->started = 0;
	return !stuck;
}

void
token_close(struct token *t)
{
	if (t == NULL)
		return;
	if (!signer_stop(t))
		return;
	for (size_t j = 0; j < t->ndev; j++) {
		struct dev *d = &t->dev[j];

		if (t->f != NULL && t->initialized && d->have_info) {
			if (d->keeper_open && d->logged_in)
				(void)t->f->C_Logout(d->keeper);
			(void)t->f->C_CloseAllSessions(d->slot);
		}
		for (size_t i = 0; d->keys != NULL && i < t->n_all; i++) {
			free(d->keys[i].obj);
			free(d->keys[i].use);
		}
		free(d->keys);
		if (d->uri != NULL)
			p11_kit_uri_free(d->uri);
		if (d->t != NULL) {
			pthread_rwlock_destroy(&d->lock);
			pthread_mutex_destroy(&d->shown_mu);
		}
	}
	if (t->f != NULL && t->initialized)
		(void)t->f->C_Finalize(NULL);
	if (t->f != NULL)
		p11_kit_module_release(t->f);
	for (size_t i = 0; t->keys != NULL && i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];

		for (CK_ULONG j = 0; j < k->tmpl_n; j++)
			free(k->tmpl[j].pValue);
		free(k->tmpl);
		free(k->spki);
		free(k->cert);
		for (size_t v = 0; v < k->n_prev; v++) {
			for (CK_ULONG j = 0; k->prev_tmpl != NULL &&
			    k->prev_tmpl[v] != NULL && j < k->prev_tmpl_n[v];
			    j++)
				free(k->prev_tmpl[v][j].pValue);
			if (k->prev_tmpl != NULL)
				free(k->prev_tmpl[v]);
		}
		free(k->prev_tmpl);
		free(k->prev_tmpl_n);
		free(k->prev_kcv);
		free(k->prev_has_kcv);
	}
	free(t->keys);
	secmem_free(t->pin, t->pin_len + 1);
	secmem_wipe(t->signer.in, sizeof(t->signer.in));
	pthread_mutex_destroy(&t->signer.mu);
	pthread_cond_destroy(&t->signer.cv);
	free(t);
}

const struct token_key *
token_key(const struct token *t, size_t i)
{
	return i < t->n_all ? &t->keys[i] : NULL;
}

size_t
token_key_count(const struct token *t)
{
	return t->n_keys;
}

size_t
token_slot_count(const struct token *t)
{
	return t->n_all;
}

long
token_tn_key(const struct token *t)
{
	return t->has_tn_key ? (long)t->n_all - 1 : -1;
}

void
token_session_close(struct token *t, struct token_session *s)
{
	for (size_t j = 0; j < t->ndev; j++) {
		if (s->open[j] && s->generation[j] ==
		    atomic_load(&t->dev[j].generation))
			(void)t->f->C_CloseSession(s->h[j]);
		s->open[j] = 0;
	}
}

/* Reopens everything after the token lost our sessions or login, or when
 * told to read the keys again: all sessions, the slot (a re-inserted
 * token may sit in another slot), the login, the key handles (they may
 * have changed) and their session copies. Only one thread does it per
 * loss: the others see the generation move on. */
static int
token_recover(struct dev *d, unsigned long seen, char *msg, size_t msglen)
{
	struct token *t = d->t;
	char err[512];
	int r = KEYD_OK, reload;

	pthread_rwlock_wrlock(&d->lock);
	if (atomic_load(&d->generation) != seen)
		goto out;
	reload = atomic_exchange(&d->reload, 0);
	if (reload) {
		log_info("token '%s': reading the keys again", d->label);
		atomic_store(&d->pin_refused, 0);
	} else if (!atomic_load(&d->broken)) {
		log_warn("token '%s' lost its session or login; reopening",
		    d->label);
	}
	atomic_store(&d->broken, 1);
	if (atomic_load(&d->pin_refused)) {
		snprintf(msg, msglen, "token '%s' refused keyd's PIN; keyd "
		    "does not log in to it again until SIGUSR2 or a restart",
		    d->label);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if (d->have_info)
		(void)t->f->C_CloseAllSessions(d->slot);
	/* Every session is gone, with the session copies of the keys: no
	 * worker may close its old handle (a module may reuse the number),
	 * nor use a copy's handle. */
	atomic_fetch_add(&d->generation, 1);
	for (size_t i = 0; d->keys != NULL && i < t->n_all; i++) {
		d->keys[i].copied = 0;
		for (size_t v = 0; v < d->keys[i].n; v++)
			d->keys[i].use[v] = CK_INVALID_HANDLE;
	}
	d->keeper_open = 0;
	show_logged_in(d, 0);
	pthread_mutex_lock(&d->shown_mu);
	d->shown_copies = 0;
	pthread_mutex_unlock(&d->shown_mu);
	if ((r = find_slot(d, err, sizeof(err))) != KEYD_OK ||
	    (r = keeper_login(d, err, sizeof(err))) != KEYD_OK) {
		snprintf(msg, msglen, "token unavailable: %s", err);
		log_error("cannot reopen token %s: %s", d->label, err);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if ((r = resolve_keys(d, err, sizeof(err))) != KEYD_OK) {
		snprintf(msg, msglen, "token '%s' reopened, but %s", d->label,
		    err);
		log_error("after reopening token '%s': %s", d->label, err);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	atomic_fetch_add(&d->generation, 1);
	atomic_fetch_add(&d->recoveries, 1);
	atomic_store(&d->broken, 0);
	atomic_store(&d->last_probe, 0);
	log_info("token '%s' reopened and logged in again%s", d->label,
	    copied_keys(d) > 0 ? "; session copies of the keys made again" :
	    "");
out:
	pthread_rwlock_unlock(&d->lock);
	return r;
}

/* Makes sure the worker's session on d belongs to the current generation.
 * Caller holds the read lock. */
static CK_RV
session_ready(struct dev *d, struct token_session *s)
{
	unsigned long gen = atomic_load(&d->generation);
	int j = d->idx;
	CK_RV rv;

	if (s->open[j] && s->generation[j] == gen)
		return CKR_OK;
	/* A session of an earlier generation was closed by the recovery's
	 * C_CloseAllSessions: forget it, never close it again. */
	s->open[j] = 0;
	rv = d->t->f->C_OpenSession(d->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s->h[j]);
	if (rv != CKR_OK)
		return rv;
	s->open[j] = 1;
	s->generation[j] = gen;
	return CKR_OK;
}

/* The hang watch: a session's call slot, taken on its first call. */
static struct call_slot *
call_slot(struct token *t, struct token_session *s)
{
	if (s->call == 0) {
		unsigned n = atomic_fetch_add(&t->n_callers, 1);

		s->call = n < TOKEN_MAX_CALLERS ? n + 1 : UINT_MAX;
	}
	return s->call <= TOKEN_MAX_CALLERS ? &t->calls[s->call - 1] : NULL;
}

/* Runs fn on token d with the session and key, reopening and retrying
 * once when the token lost the session or login. Returns the CK_RV of the
 * last try, or sets *r to a KEYD_ERR_* code if recovery itself failed. */
static CK_RV
dev_run(struct dev *d, struct token_session *s, size_t key, size_t version,
    token_op_fn fn, void *arg, int *r, char *msg, size_t msglen)
{
	struct token *t = d->t;
	struct call_slot *cs = call_slot(t, s);
	unsigned long gen;
	CK_OBJECT_HANDLE h;
	CK_RV rv = CKR_GENERAL_ERROR;
	int j = d->idx;

	*r = KEYD_OK;
	if (cs != NULL) {
		atomic_store(&cs->dev, j);
		atomic_store(&cs->start, now_ms());
	}
	/* A recovery that failed earlier (the token was gone) is retried
	 * first: until it succeeds nothing is logged in, and a token shows
	 * private keys only to a logged-in session, so the operation itself
	 * would fail with a misleading CKR_KEY_HANDLE_INVALID. */
	if (atomic_load(&d->broken) || atomic_load(&d->reload)) {
		gen = atomic_load(&d->generation);
		s->open[j] = 0;
		if ((*r = token_recover(d, gen, msg, msglen)) != KEYD_OK) {
			rv = CKR_TOKEN_NOT_PRESENT;
			goto out;
		}
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_rwlock_rdlock(&d->lock);
		gen = atomic_load(&d->generation);
		h = key >= t->n_all ? CK_INVALID_HANDLE : d->keys[key].use[version];
		rv = session_ready(d, s);
		if (rv == CKR_OK)
			rv = fn(t->f, s->h[j], h, arg);
		if (rv != CKR_OK && s->open[j] && !rv_session_lost(rv)) {
			/* The standard ends an operation on most errors, but
			 * not all (CKR_BUFFER_TOO_SMALL), and tokens differ
			 * (SoftHSM2 keeps it after CKR_ARGUMENTS_BAD): close
			 * the session, which is cheap, so that no operation
			 * left behind can fail the next client's request. */
			(void)t->f->C_CloseSession(s->h[j]);
			s->open[j] = 0;
		}
		pthread_rwlock_unlock(&d->lock);
		if (!rv_retry(rv) || attempt == 1)
			break;
		s->open[j] = 0;
		if ((*r = token_recover(d, gen, msg, msglen)) != KEYD_OK)
			goto out;
	}
	if (rv_retry(rv)) {
		snprintf(msg, msglen, "token failed again after reopening the "
		    "session: %s", token_rv_name(rv));
		*r = KEYD_ERR_TOKEN;
	}
out:
	if (cs != NULL)
		atomic_store(&cs->start, 0);
	s->last_rv = rv;
	return rv;
}

static int
timeout_error(struct token *t, struct dev *d, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "token '%s' has not answered a call for more "
	    "than %ld ms", d->label, t->timeout_ms);
	return KEYD_ERR_TIMEOUT;
}

/* Whether a failed primary is due another try (one request a second
 * tries it; the rest go to the failover token meanwhile). */
static int
probe_due(struct dev *d)
{
	long now = now_ms(), last = atomic_load(&d->last_probe);

	if (now - last < TOKEN_PROBE_MS)
		return 0;
	return atomic_compare_exchange_strong(&d->last_probe, &last, now);
}

/* Runs fn on the token that should serve: the primary while it works,
 * else the failover token. A request that the primary fails for a reason
 * of its own (rv_device_failed) is tried on the failover token. */
static CK_RV
run_fn(struct token *t, struct token_session *s, size_t key, size_t version,
    token_op_fn fn, void *arg, int *r, char *msg, size_t msglen)
{
	struct dev *p = &t->dev[0], *f;
	CK_RV rv;

	if (t->ndev == 1) {
		if (atomic_load(&p->hung)) {
			*r = timeout_error(t, p, msg, msglen);
			return CKR_FUNCTION_FAILED;
		}
		return dev_run(p, s, key, version, fn, arg, r, msg, msglen);
	}
	f = &t->dev[1];
	if (!atomic_load(&p->hung) && (!atomic_load(&p->broken) ||
	    atomic_load(&p->reload) || probe_due(p))) {
		rv = dev_run(p, s, key, version, fn, arg, r, msg, msglen);
		if (*r == KEYD_OK && !rv_device_failed(rv)) {
			if (atomic_exchange(&t->active, 0) != 0)
				log_info("primary token '%s' serves again",
				    p->label);
			return rv;
		}
		/* Recovery of the primary is left to the probe. */
		if (*r == KEYD_OK)
			atomic_store(&p->broken, 1);
		atomic_store(&p->last_probe, now_ms());
	}
	if (atomic_load(&f->hung)) {
		*r = timeout_error(t, atomic_load(&p->hung) ? p : f, msg, msglen);
		return CKR_FUNCTION_FAILED;
	}
	/* A failed failover token is tried again once a second too: each
	 * try may be a login, and every request would be one. */
	if (atomic_load(&f->broken) && !atomic_load(&f->reload) &&
	    !probe_due(f)) {
		snprintf(msg, msglen, "token '%s' is %s and the failover token "
		    "'%s' failed too", p->label, atomic_load(&p->hung) ? "hung" :
		    "failing", f->label);
		*r = KEYD_ERR_TOKEN;
		return CKR_DEVICE_ERROR;
	}
	rv = dev_run(f, s, key, version, fn, arg, r, msg, msglen);
	if (*r == KEYD_OK && !rv_device_failed(rv)) {
		if (atomic_exchange(&t->active, 1) != 1)
			log_warn("primary token '%s' is %s; serving from the "
			    "failover token '%s'", p->label,
			    atomic_load(&p->hung) ? "hung" : "failing",
			    f->label);
		return rv;
	}
	if (*r == KEYD_OK)
		atomic_store(&f->broken, 1);
	atomic_store(&f->last_probe, now_ms());
	return rv;
}

void
token_watch(struct token *t, size_t *stuck)
{
	long now = now_ms();
	int hung[TOKEN_NDEV] = { 0, 0 };
	unsigned n = atomic_load(&t->n_callers);

	*stuck = 0;
	if (n > TOKEN_MAX_CALLERS)
		n = TOKEN_MAX_CALLERS;
	for (unsigned i = 0; i < n; i++) {
		long start = atomic_load(&t->calls[i].start);
		int j = atomic_load(&t->calls[i].dev);

		if (start != 0 && now - start > t->timeout_ms && j >= 0 &&
		    (size_t)j < t->ndev) {
			hung[j] = 1;
			(*stuck)++;
		}
	}
	for (size_t j = 0; j < t->ndev; j++) {
		struct dev *d = &t->dev[j];

		if (hung[j] && !atomic_exchange(&d->hung, 1))
			log_error("token '%s' has not answered a call for %ld "
			    "ms: %s", d->label, t->timeout_ms, t->ndev == 1 ?
			    "requests fail with a timeout until it answers" :
			    j == 0 ? "requests go to the failover token" :
			    "the failover token is not used until it answers");
		else if (!hung[j] && atomic_exchange(&d->hung, 0))
			log_info("token '%s' answers again", d->label);
	}
}

void
token_abandon(struct token *t)
{
	unsigned n = atomic_load(&t->n_callers);

	if (n > TOKEN_MAX_CALLERS)
		n = TOKEN_MAX_CALLERS;
	for (unsigned i = 0; i < n; i++) {
		int j = atomic_load(&t->calls[i].dev);

		if (atomic_load(&t->calls[i].start) != 0 && j >= 0 &&
		    (size_t)j < t->ndev)
			atomic_store(&t->dev[j].hung, 1);
	}
}

void
token_reload(struct token *t)
{
	for (size_t j = 0; j < t->ndev; j++) {
		atomic_store(&t->dev[j].reload, 1);
		atomic_store(&t->dev[j].last_probe, 0);
	}
}

enum token_op { TOKEN_OP_SIGN, TOKEN_OP_DECRYPT };

struct crypt_arg {
	enum token_op op;
	CK_MECHANISM *mech;
	const uint8_t *in;
	size_t inlen;
	uint8_t *out;
	size_t room;
	size_t outlen;
};

static CK_RV
crypt_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct crypt_arg *a = arg;
	CK_ULONG olen = a->room;
	/* Some tokens refuse a NULL pointer even with length 0 (SoftHSM2's
	 * Ed25519 sign of an empty message): give them an empty buffer. */
	static const CK_BYTE empty[1];
	CK_BYTE *in = a->in != NULL ? (CK_BYTE *)(uintptr_t)a->in :
	    (CK_BYTE *)(uintptr_t)empty;
	CK_RV rv;

	if (a->op == TOKEN_OP_SIGN) {
		rv = f->C_SignInit(s, a->mech, key);
		if (rv == CKR_OK)
			rv = f->C_Sign(s, in, a->inlen, a->out, &olen);
	} else {
		rv = f->C_DecryptInit(s, a->mech, key);
		if (rv == CKR_OK)
			rv = f->C_Decrypt(s, in, a->inlen, a->out, &olen);
	}
	if (rv == CKR_OK)
		a->outlen = olen;
	return rv;
}

static int
map_rv(CK_RV rv, enum token_op op, char *msg, size_t msglen)
{
	switch (rv) {
	case CKR_OK:
		return KEYD_OK;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
		snprintf(msg, msglen, "the token does not support this "
		    "mechanism (%s)", token_rv_name(rv));
		return KEYD_ERR_UNSUPPORTED;
	case CKR_DATA_LEN_RANGE:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
		snprintf(msg, msglen, "input length is out of range for this "
		    "key (%s)", token_rv_name(rv));
		return KEYD_ERR_BAD_LENGTH;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_DATA_INVALID:
		if (op == TOKEN_OP_DECRYPT) {
			snprintf(msg, msglen, "decryption failed");
			return KEYD_ERR_DECRYPT;
		}
		snprintf(msg, msglen, "the token rejected the input (%s)",
		    token_rv_name(rv));
		return KEYD_ERR_INVALID_ARG;
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
	case CKR_KEY_TYPE_INCONSISTENT:
		snprintf(msg, msglen, "the token does not allow this key to do "
		    "that (%s)", token_rv_name(rv));
		return KEYD_ERR_BAD_ALGORITHM;
	case CKR_ARGUMENTS_BAD:
		if (op == TOKEN_OP_DECRYPT) {
			/* SoftHSM2's answer to OAEP parameters it does not
			 * implement (any hash but SHA-1). */
			snprintf(msg, msglen, "the token rejected the "
			    "mechanism's parameters (%s)", token_rv_name(rv));
			return KEYD_ERR_UNSUPPORTED;
		}
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
		if (op == TOKEN_OP_DECRYPT) {
			/* SoftHSM2 reports a bad OAEP ciphertext this way.
			 * One answer for every bad ciphertext. */
			snprintf(msg, msglen, "decryption failed");
			return KEYD_ERR_DECRYPT;
		}
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	default:
		snprintf(msg, msglen, "the token failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
}

int
token_run(struct token *t, struct token_session *s, size_t key,
    size_t version, token_op_fn fn, void *arg, char *msg, size_t msglen)
{
	CK_RV rv;
	int r;

	if (key >= t->n_all || version > t->keys[key].n_prev)
		return KEYD_ERR_INTERNAL;
	rv = run_fn(t, s, key, version, fn, arg, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	return map_rv(rv, TOKEN_OP_DECRYPT, msg, msglen);
}

static int
run_crypt(struct token *t, struct token_session *s, enum token_op op,
    size_t key, CK_MECHANISM *mech, const uint8_t *in, size_t inlen,
    uint8_t *out, size_t *outlen, char *msg, size_t msglen)
{
	struct crypt_arg a = { op, mech, in, inlen, out, *outlen, 0 };
	CK_RV rv;
	int r;

	if (key >= t->n_all)
		return KEYD_ERR_INTERNAL;
	rv = run_fn(t, s, key, 0, crypt_fn, &a, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	if (rv == CKR_OK)
		*outlen = a.outlen;
	return map_rv(rv, op, msg, msglen);
}

int
token_sign(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	return run_crypt(t, s, TOKEN_OP_SIGN, key, mech, in, inlen, out,
	    outlen, msg, msglen);
}

int
token_hmac_sha256(struct token *t, struct token_session *s,
    const uint8_t *in, size_t inlen, uint8_t out[TOKEN_HMAC_LEN], char *msg,
    size_t msglen)
{
	CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
	size_t outlen = TOKEN_HMAC_LEN;
	int r;

	if (!t->has_tn_key) {
		snprintf(msg, msglen, "no audit_tn_key is configured");
		return KEYD_ERR_INTERNAL;
	}
	r = token_sign(t, s, t->n_all - 1, &mech, in, inlen, out, &outlen, msg,
	    msglen);
	if (r == KEYD_OK && outlen != TOKEN_HMAC_LEN) {
		snprintf(msg, msglen, "the token made an HMAC-SHA256 of %zu "
		    "bytes", outlen);
		return KEYD_ERR_TOKEN;
	}
	return r;
}

static void *
signer_main(void *arg)
{
	struct token *t = arg;
	struct signer *sg = &t->signer;
	uint8_t out[TOKEN_MAX_SIG];
	size_t outlen;
	char msg[sizeof(sg->msg)];
	int r;

	pthread_mutex_lock(&sg->mu);
	for (;;) {
		while (sg->state != SIGNER_POSTED && !sg->quit)
			pthread_cond_wait(&sg->cv, &sg->mu);
		if (sg->quit)
			break;
		sg->state = SIGNER_RUNNING;
		pthread_mutex_unlock(&sg->mu);
		/* The job's fields are the signer's while it runs: a caller
		 * that gave up posts nothing until the state is idle. */
		outlen = sizeof(out);
		msg[0] = '\0';
		r = token_sign(t, &sg->sess, sg->key, &sg->mech, sg->in,
		    sg->inlen, out, &outlen, msg, sizeof(msg));
		pthread_mutex_lock(&sg->mu);
		secmem_wipe(sg->in, sg->inlen);
		if (sg->abandoned) {
			sg->abandoned = 0;
			sg->state = SIGNER_IDLE;
			log_info("a late audit checkpoint signature was "
			    "discarded");
		} else {
			memcpy(sg->out, out, outlen);
			sg->outlen = outlen;
			sg->r = r;
			snprintf(sg->msg, sizeof(sg->msg), "%s", msg);
			sg->state = SIGNER_DONE;
		}
		pthread_cond_broadcast(&sg->cv);
	}
	pthread_mutex_unlock(&sg->mu);
	token_session_close(t, &sg->sess);
	return NULL;
}

int
token_sign_within(struct token *t, size_t key, CK_MECHANISM_TYPE mech,
    const uint8_t *in, size_t inlen, uint8_t *out, size_t *outlen, char *msg,
    size_t msglen)
{
	struct signer *sg = &t->signer;
	struct timespec until;
	int r;

	if (inlen > sizeof(sg->in))
		return KEYD_ERR_INTERNAL;
	pthread_mutex_lock(&sg->mu);
	if (!sg->started) {
		if (pthread_create(&sg->th, NULL, signer_main, t) != 0) {
			pthread_mutex_unlock(&sg->mu);
			snprintf(msg, msglen, "cannot start the signer thread");
			return KEYD_ERR_NOMEM;
		}
		sg->started = 1;
	}
	if (sg->state != SIGNER_IDLE) {
		pthread_mutex_unlock(&sg->mu);
		snprintf(msg, msglen, "an earlier signature still waits on the "
		    "token");
		return KEYD_ERR_TIMEOUT;
	}
	sg->key = key;
	sg->mech.mechanism = mech;
	sg->mech.pParameter = NULL;
	sg->mech.ulParameterLen = 0;
	memcpy(sg->in, in, inlen);
	sg->inlen = inlen;
	sg->state = SIGNER_POSTED;
	pthread_cond_broadcast(&sg->cv);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += t->timeout_ms / 1000;
	until.tv_nsec += (t->timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (sg->state != SIGNER_DONE)
		if (pthread_cond_timedwait(&sg->cv, &sg->mu, &until) ==
		    ETIMEDOUT && sg->state != SIGNER_DONE) {
			/* Posted but not taken yet: take it back. */
			if (sg->state == SIGNER_POSTED) {
				secmem_wipe(sg->in, sg->inlen);
				sg->state = SIGNER_IDLE;
			} else {
				sg->abandoned = 1;
			}
			pthread_mutex_unlock(&sg->mu);
			snprintf(msg, msglen, "the token has not answered for "
			    "%ld ms", t->timeout_ms);
			return KEYD_ERR_TIMEOUT;
		}
	r = sg->r;
	if (r == KEYD_OK) {
		if (sg->outlen > *outlen) {
			r = KEYD_ERR_INTERNAL;
		} else {
			memcpy(out, sg->out, sg->outlen);
			*outlen = sg->outlen;
		}
	} else {
		snprintf(msg, msglen, "%s", sg->msg);
	}
	sg->state = SIGNER_IDLE;
	pthread_mutex_unlock(&sg->mu);
	return r;
}

int
token_decrypt(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	return run_crypt(t, s, TOKEN_OP_DECRYPT, key, mech, in, inlen, out,
	    outlen, msg, msglen);
}

struct random_arg {
	uint8_t *out;
	size_t n;
};

static CK_RV
random_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct random_arg *a = arg;

	(void)key;
	return f->C_GenerateRandom(s, a->out, a->n);
}

int
token_random(struct token *t, struct token_session *s, uint8_t *out,
    size_t n, char *msg, size_t msglen)
{
	struct random_arg a = { out, n };
	CK_RV rv;
	int r;

	rv = run_fn(t, s, 0, 0, random_fn, &a, &r, msg, msglen);
	if (r != KEYD_OK)
		return r;
	return map_rv(rv, TOKEN_OP_SIGN, msg, msglen);
}

size_t
token_count(const struct token *t)
{
	return t->ndev;
}

void
token_get_info(struct token *t, size_t j, struct token_info *info)
{
	struct dev *d = &t->dev[j];

	memset(info, 0, sizeof(*info));
	info->role = d->role;
	info->recoveries = atomic_load(&d->recoveries);
	/* Not the token's lock: status must answer while a recovery holds
	 * it, or waits on a hung token. */
	pthread_mutex_lock(&d->shown_mu);
	if (d->shown_have) {
		copy_padded(info->label, d->shown.label, 32);
		copy_padded(info->manufacturer, d->shown.manufacturerID, 32);
		copy_padded(info->model, d->shown.model, 16);
		copy_padded(info->serial, d->shown.serialNumber, 16);
	} else {
		/* Never found: its URI. */
		snprintf(info->label, sizeof(info->label), "%s", d->uri_str);
	}
	info->logged_in = d->shown_logged_in;
	info->key_copies = d->shown_copies;
	pthread_mutex_unlock(&d->shown_mu);
	info->active = t->ndev == 1 || (size_t)atomic_load(&t->active) == j;
	info->state = atomic_load(&d->hung) ? "hung" :
	    atomic_load(&d->broken) ? "failed" : info->active ? "serving" :
	    "standby";
}

struct kcv_arg {
	uint8_t kcv[3];
	const char *how;
};

/* The check value of PKCS#11 3.0 (CKA_CHECK_VALUE of an AES key): the
 * first 3 bytes of the key's AES-ECB encryption of a zero block. Computed
 * here because SoftHSM2 leaves CKA_CHECK_VALUE empty on a key made by
 * C_UnwrapKey (a restored KEK); read from CKA_CHECK_VALUE when the token
 * will not do ECB with the key. Both give the same value for one key. */
static CK_RV
kcv_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct kcv_arg *a = arg;
	CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
	uint8_t zero[16], out[16], cv[16];
	CK_ULONG olen = sizeof(out);
	CK_ATTRIBUTE at = { CKA_CHECK_VALUE, cv, sizeof(cv) };
	CK_RV rv;

	memset(zero, 0, sizeof(zero));
	rv = f->C_EncryptInit(s, &ecb, key);
	if (rv == CKR_OK)
		rv = f->C_Encrypt(s, zero, sizeof(zero), out, &olen);
	if (rv == CKR_OK && olen == sizeof(out)) {
		memcpy(a->kcv, out, sizeof(a->kcv));
		a->how = "AES-ECB of a zero block";
		secmem_wipe(out, sizeof(out));
		return CKR_OK;
	}
	if (rv == CKR_OK)
		rv = CKR_FUNCTION_FAILED;
	if (rv_session_lost(rv))
		return rv;
	if (f->C_GetAttributeValue(s, key, &at, 1) == CKR_OK &&
	    at.ulValueLen == sizeof(a->kcv)) {
		memcpy(a->kcv, cv, sizeof(a->kcv));
		a->how = "CKA_CHECK_VALUE";
		return CKR_OK;
	}
	return rv;
}

int
token_kcv(struct token *t, struct token_session *s, size_t key,
    size_t version, uint8_t kcv[3], const char **how, char *msg,
    size_t msglen)
{
	struct kcv_arg a;
	int r;

	memset(&a, 0, sizeof(a));
	a.how = "";
	if ((r = token_run(t, s, key, version, kcv_fn, &a, msg, msglen)) !=
	    KEYD_OK)
		return r;
	memcpy(kcv, a.kcv, sizeof(a.kcv));
	*how = a.how;
	return KEYD_OK;
}

#define TOKEN_GCM_MAX 1024

struct gcm_arg {
	int encrypt;
	CK_GCM_PARAMS p;
	const uint8_t *in;
	size_t inlen;
	uint8_t out[TOKEN_GCM_MAX + 16];
	size_t want;             /* exact output length */
	CK_RV rv;                /* of the last try */
};

/* One single-part GCM operation (SoftHSM2 does GCM single-part only). A
 * retry after a lost session repeats it with the same IV, key and input,
 * so it yields the same ciphertext: no IV is ever used for two different
 * plaintexts. SoftHSM2 wants room for the whole input, tag included. */
static CK_RV
gcm_fn(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
    void *arg)
{
	struct gcm_arg *a = arg;
	CK_MECHANISM m = { CKM_AES_GCM, &a->p, sizeof(a->p) };
	CK_ULONG olen = sizeof(a->out);
	CK_RV rv;

	if (a->encrypt) {
		rv = f->C_EncryptInit(s, &m, key);
		if (rv == CKR_OK)
			rv = f->C_Encrypt(s, (CK_BYTE *)(uintptr_t)a->in,
			    a->inlen, a->out, &olen);
	} else {
		rv = f->C_DecryptInit(s, &m, key);
		if (rv == CKR_OK)
			rv = f->C_Decrypt(s, (CK_BYTE *)(uintptr_t)a->in,
			    a->inlen, a->out, &olen);
	}
	if (rv == CKR_OK && olen != a->want)
		rv = CKR_FUNCTION_FAILED;
	a->rv = rv;
	return rv;
}

int
token_gcm(struct token *t, struct token_session *s, size_t key,
    size_t version, int encrypt, const uint8_t *iv, size_t ivlen,
    const uint8_t *aad, size_t aadlen, unsigned tag_bits, const uint8_t *in,
    size_t inlen, uint8_t *out, size_t *outlen, CK_RV *rv, char *msg,
    size_t msglen)
{
	struct gcm_arg *a;
	int r;

	*rv = CKR_OK;
	if (inlen > TOKEN_GCM_MAX || *outlen > TOKEN_GCM_MAX ||
	    tag_bits == 0 || tag_bits > 128 || tag_bits % 8 != 0) {
		snprintf(msg, msglen, "a GCM operation out of keyd's bounds");
		return KEYD_ERR_INTERNAL;
	}
	if ((a = secmem_alloc(sizeof(*a))) == NULL)
		return KEYD_ERR_NOMEM;
	a->encrypt = encrypt;
	a->p.pIv = (CK_BYTE *)(uintptr_t)iv;
	a->p.ulIvLen = ivlen;
	a->p.ulIvBits = ivlen * 8;
	a->p.pAAD = (CK_BYTE *)(uintptr_t)aad;
	a->p.ulAADLen = aadlen;
	a->p.ulTagBits = tag_bits;
	a->in = in;
	a->inlen = inlen;
	a->want = *outlen;
	a->rv = CKR_OK;
	r = token_run(t, s, key, version, gcm_fn, a, msg, msglen);
	*rv = a->rv;
	if (r == KEYD_OK)
		memcpy(out, a->out, a->want);
	secmem_free(a, sizeof(*a));
	return r;
}

/* C_GenerateRandom in a session of its own, under the read lock. */
static CK_RV
probe_once(struct dev *d)
{
	CK_SESSION_HANDLE s;
	uint8_t b[8];
	CK_RV rv;

	pthread_rwlock_rdlock(&d->lock);
	rv = d->t->f->C_OpenSession(d->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s);
	if (rv == CKR_OK) {
		rv = d->t->f->C_GenerateRandom(s, b, sizeof(b));
		(void)d->t->f->C_CloseSession(s);
	}
	pthread_rwlock_unlock(&d->lock);
	return rv;
}

int
token_probe(struct token *t, char *msg, size_t msglen)
{
	struct dev *d = &t->dev[0];
	CK_RV rv;
	int r;

	if (d->have_info && probe_once(d) == CKR_OK)
		return KEYD_OK;
	/* A re-login (the keys found again too), then the probe once more:
	 * a key that is gone is not a device that is lost. */
	atomic_store(&d->broken, 1);
	r = token_recover(d, atomic_load(&d->generation), msg, msglen);
	if (r != KEYD_OK && !d->logged_in)
		return r;
	if ((rv = probe_once(d)) != CKR_OK) {
		snprintf(msg, msglen, "C_GenerateRandom after a re-login: %s",
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	return KEYD_OK;
}

int
token_pin_refused(struct token *t)
{
	for (size_t j = 0; j < t->ndev; j++)
		if (atomic_load(&t->dev[j].pin_refused))
			return 1;
	return 0;
}

int
token_sign_audit_line(struct token *t, const uint8_t *line, size_t len,
    uint8_t *out, size_t *outlen, char *msg, size_t msglen)
{
	static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
		0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
		0x04, 0x20 };
	long ak = token_audit_key(t);
	uint8_t in[sizeof(di_sha256) + 32];
	CK_MECHANISM_TYPE m = CKM_ECDSA;
	const uint8_t *data = in;
	size_t inlen = 32;

	if (ak < 0) {
		snprintf(msg, msglen, "no audit_key is configured");
		return KEYD_ERR_INVALID_ARG;
	}
	switch (t->keys[ak].type) {
	case TOKEN_KEY_ED25519:
		m = CKM_EDDSA;
		data = line;
		inlen = len;
		break;
	case TOKEN_KEY_RSA:
		m = CKM_RSA_PKCS;
		memcpy(in, di_sha256, sizeof(di_sha256));
		EVP_Digest(line, len, in + sizeof(di_sha256), NULL,
		    EVP_sha256(), NULL);
		inlen = sizeof(in);
		break;
	default:
		EVP_Digest(line, len, in, NULL, EVP_sha256(), NULL);
	}
	return token_sign_within(t, (size_t)ak, m, data, inlen, out, outlen,
	    msg, msglen);
}
