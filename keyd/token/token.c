/*
 * token.c: the token of keyd-token (token.h): the daemon's policy on top of
 * the token access layer (p11.c). It opens the one token the process
 * serves, logs in, resolves the configured keys and checks them (their
 * ops, the token's mechanisms, the OAEP hashes it decrypts with, a test
 * signature against each public key object), copies them into session
 * objects, runs the operations with their error mapping, and recovers
 * from a lost session or login.
 *
 * One file of about 1,900 lines: the key descriptions that start-up
 * writes are what a recovery checks the token against, and both run
 * under the one lock that operations read; split, each part would need
 * the token's insides.
 *
 * What it does not do: failover and hang handling. Each token has a
 * process of its own; keyd-serve bounds every call by token_timeout and
 * sends a request to the failover token's process, and the supervisor
 * kills a hung process and starts a fresh one (docs/architecture.md).
 */
#include "token.h"

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "log.h"
#include "p11.h"
#include "secmem.h"

/* What the token holds of a key: the token object that the URI names,
 * and the handle keyd uses, which is the object's session copy when the
 * token made one. Index 0 is the key, 1..n_prev its previous versions. */
struct dev_key {
	CK_OBJECT_HANDLE *obj;
	CK_OBJECT_HANDLE *use;
	size_t n;
	int copied;                /* use[] are session copies */
};

struct token {
	const struct config *cfg;
	CK_FUNCTION_LIST *f;
	char *pin;                 /* locked memory */
	size_t pin_len;
	int key_copies;
	/* The token: [keyd] token (in the failover token's process, the
	 * failover token, which tokenproc.c puts there). */
	P11KitUri *uri;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	int have_info;             /* the token was found at least once */
	int no_match;              /* the last find_slot matched no token */
	char label[P11_LABEL_LEN];
	CK_SESSION_HANDLE keeper;
	int keeper_open;
	int logged_in;
	pthread_rwlock_t lock;     /* writers: recovery; readers: operations */
	atomic_ulong generation;
	atomic_ulong recoveries;
	atomic_int broken;         /* must be reopened before use */
	atomic_int reload;         /* SIGUSR2: read the keys again */
	atomic_int pin_refused;    /* the token refused the PIN: no retries */
	int pairs_checked;         /* pair_check done on the token's keys */
	/* What status shows, readable while a recovery holds the lock. */
	pthread_mutex_t shown_mu;
	CK_TOKEN_INFO shown;
	int shown_have, shown_logged_in;
	unsigned shown_copies;
	/* The keys: the config's, then the audit key's and the audit_tn
	 * HMAC key's slots, if any. */
	struct token_key *keys;
	struct dev_key *dk;
	size_t n_keys;             /* the config's keys */
	size_t n_all;
	int has_audit_key;
	int has_tn_key;            /* audit_tn_key: the last slot */
	int described;             /* keys[] describe what the token holds */
	/* The audit log's checkpoints are signed in a session of their own. */
	pthread_mutex_t audit_mu;
	struct token_session audit_sess;
};

/* One PKCS#11 operation in session s with the key object key; returns
 * the token's CK_RV. */
typedef CK_RV (*token_op_fn)(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
    CK_OBJECT_HANDLE key, void *arg);

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
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

/* A failure of the token itself, rather than of the request. */
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

/* Finds the token in its slot (a re-inserted token may sit in another). */
static int
find_slot(struct token *t, char *err, size_t errlen)
{
	int r;

	r = p11_find_token(t->f, t->uri, t->cfg->token, &t->slot, &t->info,
	    err, errlen);
	t->no_match = r == KEYD_ERR_NOT_FOUND;
	if (r != KEYD_OK)
		return r == KEYD_ERR_NOT_FOUND ? KEYD_ERR_TOKEN : r;
	t->have_info = 1;
	p11_padded(t->label, t->info.label, sizeof(t->info.label));
	pthread_mutex_lock(&t->shown_mu);
	t->shown = t->info;
	t->shown_have = 1;
	pthread_mutex_unlock(&t->shown_mu);
	return KEYD_OK;
}

static void
show_logged_in(struct token *t, int v)
{
	t->logged_in = v;
	pthread_mutex_lock(&t->shown_mu);
	t->shown_logged_in = v;
	pthread_mutex_unlock(&t->shown_mu);
}

/* Opens the keeper session and logs the user in. Caller holds the write
 * lock or is the only thread. */
static int
keeper_login(struct token *t, char *err, size_t errlen)
{
	CK_RV rv;
	int r;

	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &t->keeper);
	if (rv != CKR_OK) {
		errf(err, errlen, "C_OpenSession failed: %s", token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	t->keeper_open = 1;
	if ((r = p11_login(t->f, t->keeper, CKU_USER, t->pin, t->pin_len,
	    &rv)) != KEYD_OK) {
		errf(err, errlen, "login to token '%s' failed: %s%s", t->label,
		    token_rv_name(rv), rv == CKR_PIN_INCORRECT ?
		    " (check the PIN file)" : "");
		/* Every refused login brings a token closer to locking the
		 * PIN: keyd does not try again by itself. */
		if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
		    rv == CKR_PIN_EXPIRED)
			atomic_store(&t->pin_refused, 1);
		return r;
	}
	show_logged_in(t, 1);
	return KEYD_OK;
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
aes_check_value(struct token *t, CK_OBJECT_HANDLE h, uint8_t kcv[3])
{
	CK_FUNCTION_LIST *f = t->f;
	CK_MECHANISM ecb = { CKM_AES_ECB, NULL, 0 };
	uint8_t zero[16], out[16];
	CK_ULONG olen = sizeof(out);
	CK_ATTRIBUTE a = { CKA_CHECK_VALUE, kcv, 3 };

	if (f->C_GetAttributeValue(t->keeper, h, &a, 1) == CKR_OK &&
	    a.ulValueLen == 3)
		return 1;
	memset(zero, 0, sizeof(zero));
	if (f->C_EncryptInit(t->keeper, &ecb, h) != CKR_OK)
		return 0;
	if (f->C_Encrypt(t->keeper, zero, sizeof(zero), out, &olen) != CKR_OK ||
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
pair_check(struct token *t, const struct token_key *k, CK_OBJECT_HANDLE h,
    char *err, size_t errlen)
{
	static const uint8_t msg[] = "keyd: a key and its public key object";
	CK_FUNCTION_LIST *f = t->f;
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
		rv = f->C_SignInit(t->keeper, &m, h);
		if (rv == CKR_OK)
			rv = f->C_Sign(t->keeper, (CK_BYTE *)(uintptr_t)msg,
			    sizeof(msg) - 1, raw, &rawlen);
	} else {
		EVP_Digest(msg, sizeof(msg) - 1, dig, NULL, EVP_sha256(), NULL);
		rv = f->C_SignInit(t->keeper, &m, h);
		if (rv == CKR_OK)
			rv = f->C_Sign(t->keeper, dig, sizeof(dig), raw, &rawlen);
	}
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s' on token '%s': cannot make a test "
		    "signature: %s", k->name, t->label, token_rv_name(rv));
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
	    "same CKA_ID", k->name, k->uri, t->label);
	return KEYD_ERR_CONFIG;
}

/* Which OAEP hashes the token decrypts with RSA key h, into *found: a test
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
oaep_probe(struct token *t, const struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned *found, CK_RV what[4], char *err, size_t errlen)
{
	static const uint8_t msg[] = "keyd: which OAEP hashes";
	CK_FUNCTION_LIST *f = t->f;
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
	if ((rv = f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &sess)) != CKR_OK) {
		EVP_PKEY_free(pk);
		errf(err, errlen, "token '%s': cannot open a session to test "
		    "key '%s': %s", t->label, k->name, token_rv_name(rv));
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
			    "key '%s' with %s: %s", t->label, k->name,
			    v->name, token_rv_name(rv));
			r = KEYD_ERR_TOKEN;
		}
		OPENSSL_cleanse(pt, sizeof(pt));
	}
	(void)f->C_CloseSession(sess);
	EVP_PKEY_free(pk);
	return r;
}

/* An RSA key's public key, from the private key object's modulus and
 * public exponent. */
static int
rsa_spki(struct token *t, struct token_key *k, CK_OBJECT_HANDLE h)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nlen, elen;
	int r = KEYD_ERR_TOKEN;

	if (p11_get_attr(t->f, t->keeper, h, CKA_MODULUS, &n, &nlen) ==
	    CKR_OK && p11_get_attr(t->f, t->keeper, h, CKA_PUBLIC_EXPONENT,
	    &e, &elen) == CKR_OK)
		r = p11_spki(CKK_RSA, n, nlen, e, elen, &k->spki, &k->spki_len,
		    &k->bits, NULL, 0);
	free(n);
	free(e);
	return r;
}

/* An EC or Ed25519 key's public key (its curve's CKA_EC_PARAMS given):
 * the private key object does not carry the point; its public twin,
 * paired by CKA_ID as every PKCS#11 tool pairs them, does. */
static int
ec_spki(struct token *t, struct token_key *k, CK_KEY_TYPE kt,
    const uint8_t *params, size_t plen, char *err, size_t errlen)
{
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	CK_OBJECT_HANDLE pubs[P11_MAX_MATCHES];
	CK_ULONG npub = 0;
	uint8_t *point = NULL;
	size_t len;
	unsigned bits;
	char why[128];
	CK_RV rv;
	int r = KEYD_ERR_TOKEN;

	rv = p11_find(t->f, t->keeper, tmpl, 1, CKO_PUBLIC_KEY, P11_ON_TOKEN,
	    pubs, P11_MAX_MATCHES, &npub);
	if (rv != CKR_OK || npub == 0) {
		errf(err, errlen, "key '%s' (%s): no public key object with the "
		    "same CKA_ID on token '%s'; keyd needs it to serve the "
		    "public key", k->name, k->uri, t->label);
		goto out;
	}
	if (npub > 1) {
		errf(err, errlen, "key '%s' (%s): %lu public key objects on "
		    "token '%s' share its CKA_ID; keyd cannot tell which is "
		    "the key's", k->name, k->uri, (unsigned long)npub,
		    t->label);
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if (p11_get_attr(t->f, t->keeper, pubs[0], CKA_EC_POINT, &point,
	    &len) != CKR_OK) {
		errf(err, errlen, "key '%s': cannot read CKA_EC_POINT of its "
		    "public key", k->name);
		goto out;
	}
	if ((r = p11_spki(kt, params, plen, point, len, &k->spki,
	    &k->spki_len, &bits, why, sizeof(why))) != KEYD_OK) {
		errf(err, errlen, "key '%s': %s", k->name, why);
		goto out;
	}
	k->bits = bits;
out:
	free(point);
	return r;
}

/* Reads what keyd needs to know of the key object h into k and checks it
 * against the key's ops. */
static int
describe_key(struct token *t, struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned ops, int pair, char *err, size_t errlen)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	uint8_t *buf = NULL;
	size_t len;
	CK_ULONG vlen;
	int r = KEYD_ERR_CONFIG;

	if (p11_get_ulong(t->f, t->keeper, h, CKA_CLASS, &cls) != CKR_OK ||
	    p11_get_ulong(t->f, t->keeper, h, CKA_KEY_TYPE, &kt) != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): cannot read its class and "
		    "type", k->name, k->uri);
		return KEYD_ERR_TOKEN;
	}
	if (p11_get_attr(t->f, t->keeper, h, CKA_ID, &buf, &len) == CKR_OK &&
	    len <= TOKEN_MAX_ID) {
		memcpy(k->id, buf, len);
		k->id_len = len;
	}
	free(buf);
	buf = NULL;
	k->can_sign = p11_flag(t->f, t->keeper, h, CKA_SIGN);
	k->can_decrypt = p11_flag(t->f, t->keeper, h, CKA_DECRYPT);
	k->can_encrypt = p11_flag(t->f, t->keeper, h, CKA_ENCRYPT);
	k->extractable = p11_flag(t->f, t->keeper, h, CKA_EXTRACTABLE);
	k->wrap_with_trusted = p11_flag(t->f, t->keeper, h, CKA_WRAP_WITH_TRUSTED);
	k->weak_extractable = k->extractable && !k->wrap_with_trusted;

	if (cls == CKO_SECRET_KEY && kt == CKK_AES) {
		k->type = TOKEN_KEY_AES;
		if (p11_get_ulong(t->f, t->keeper, h, CKA_VALUE_LEN, &vlen) == CKR_OK)
			k->bits = (unsigned)vlen * 8;
		k->has_kcv = aes_check_value(t, h, k->kcv);
	} else if (cls == CKO_SECRET_KEY && (kt == CKK_GENERIC_SECRET ||
	    kt == CKK_SHA256_HMAC)) {
		/* Only as audit_tn_key (key_ops 0): HMAC-SHA256 of the TNs
		 * in the audit log (token_hmac_sha256). */
		k->type = TOKEN_KEY_HMAC;
		if (p11_get_ulong(t->f, t->keeper, h, CKA_VALUE_LEN, &vlen) == CKR_OK)
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
		if ((r = rsa_spki(t, k, h)) != KEYD_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "modulus and public exponent", k->name, k->uri);
			return r;
		}
	} else if (cls == CKO_PRIVATE_KEY &&
	    (kt == CKK_EC || kt == CKK_EC_EDWARDS)) {
		if (p11_get_attr(t->f, t->keeper, h, CKA_EC_PARAMS, &buf,
		    &len) != CKR_OK) {
			errf(err, errlen, "key '%s' (%s): cannot read its "
			    "CKA_EC_PARAMS", k->name, k->uri);
			return KEYD_ERR_TOKEN;
		}
		switch (p11_curve(kt, buf, len)) {
		case P11_CURVE_P256:
			k->type = TOKEN_KEY_EC_P256;
			break;
		case P11_CURVE_P384:
			k->type = TOKEN_KEY_EC_P384;
			break;
		case P11_CURVE_ED25519:
			k->type = TOKEN_KEY_ED25519;
			break;
		case P11_CURVE_NONE:
			free(buf);
			errf(err, errlen, "key '%s' (%s): its curve is not one "
			    "keyd serves (P-256, P-384, Ed25519)", k->name,
			    k->uri);
			return KEYD_ERR_CONFIG;
		}
		r = ec_spki(t, k, kt, buf, len, err, errlen);
		free(buf);
		if (r != KEYD_OK)
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
		return pair_check(t, k, h, err, errlen);
	return KEYD_OK;
}

/* Checks that the object h is the key that keyd describes in k (read at
 * start-up), after a recovery or a reload: same type, same public key,
 * same AES check value. A key rotated under keyd's feet is not the key
 * keyd announced to its clients. (keyd-serve compares the failover
 * token's keys with the primary's, token_proxy.c.) */
static int
check_same_key(struct token *t, const struct token_key *k, CK_OBJECT_HANDLE h,
    unsigned ops, int pair, char *err, size_t errlen)
{
	struct token_key now;
	int r;

	memset(&now, 0, sizeof(now));
	now.name = k->name;
	now.uri = k->uri;
	if ((r = describe_key(t, &now, h, ops, pair, err, errlen)) != KEYD_OK)
		goto out;
	r = KEYD_ERR_CONFIG;
	/* Some tokens leave CKA_VALUE_LEN off an unwrapped AES key. */
	if (now.type != k->type || (now.bits != k->bits && now.bits != 0 &&
	    k->bits != 0)) {
		errf(err, errlen, "key '%s' on token '%s' is a %s-%u key, not "
		    "the %s-%u key keyd serves", k->name, t->label,
		    token_key_type_name(now.type), now.bits,
		    token_key_type_name(k->type), k->bits);
		goto out;
	}
	if (!same_der(now.spki, now.spki_len, k->spki, k->spki_len)) {
		errf(err, errlen, "key '%s' on token '%s' has another public "
		    "key than the one keyd serves (restart keyd to serve a "
		    "new key)", k->name, t->label);
		goto out;
	}
	if (k->type == TOKEN_KEY_AES && (!now.has_kcv || !k->has_kcv)) {
		errf(err, errlen, "key '%s' on token '%s': no check value "
		    "(CKA_CHECK_VALUE, or AES-ECB of a zero block) to show it is "
		    "the AES key keyd serves", k->name, t->label);
		goto out;
	}
	if (k->type == TOKEN_KEY_AES &&
	    memcmp(now.kcv, k->kcv, sizeof(k->kcv)) != 0) {
		errf(err, errlen, "key '%s' on token '%s' has another check "
		    "value than the AES key keyd serves", k->name, t->label);
		goto out;
	}
	if (now.weak_extractable && !k->weak_extractable)
		log_warn("KEY '%s' ON TOKEN '%s' IS EXTRACTABLE WITHOUT "
		    "CKA_WRAP_WITH_TRUSTED, unlike when keyd started: anyone "
		    "holding the user PIN can read it in the clear there",
		    k->name, t->label);
	r = KEYD_OK;
out:
	free(now.spki);
	return r;
}

/* Looks a key up by its URI's template: a private or secret key, or the
 * URI's class (type=); prev_only: an AES secret key (a previous KEK
 * version). */
static int
find_key_obj(struct token *t, const char *name, const char *uri,
    const CK_ATTRIBUTE *tmpl, CK_ULONG tmpl_n, int prev_only,
    CK_OBJECT_HANDLE *out, char *err, size_t errlen)
{
	CK_ULONG total = 0;
	CK_RV rv;

	rv = p11_find_key(t->f, t->keeper, tmpl, tmpl_n, prev_only ?
	    CKO_SECRET_KEY : P11_ANY_CLASS, P11_ON_TOKEN, out, &total);
	if (rv != CKR_OK) {
		errf(err, errlen, "key '%s' (%s): search on token '%s' failed: "
		    "%s", name, uri, t->label, token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	if (total == 0) {
		errf(err, errlen, "key '%s'%s (%s) is not on token '%s'%s", name,
		    prev_only ? ", previous version" : "", uri, t->label,
		    prev_only ? " (as a secret key)" : "");
		return KEYD_ERR_CONFIG;
	}
	if (total > 1) {
		errf(err, errlen, "key '%s' (%s) matches %lu objects on token "
		    "'%s'; add id= or type= to the URI", name, uri,
		    (unsigned long)total, t->label);
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* The certificate object with the key's CKA_ID, if the token has one. */
static void
find_cert(struct token *t, struct token_key *k)
{
	CK_OBJECT_HANDLE objs[P11_MAX_MATCHES];
	CK_ULONG n = 0;
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, k->id, k->id_len } };
	uint8_t *der = NULL;
	size_t len = 0;

	if (k->id_len == 0 || k->type == TOKEN_KEY_AES)
		return;
	if (p11_find(t->f, t->keeper, tmpl, 1, CKO_CERTIFICATE, P11_ON_TOKEN,
	    objs, P11_MAX_MATCHES, &n) != CKR_OK || n == 0)
		return;
	if (n > 1)
		log_warn("key '%s': %lu certificates share its CKA_ID; serving "
		    "the first", k->name, (unsigned long)n);
	if (p11_get_attr(t->f, t->keeper, objs[0], CKA_VALUE, &der, &len) !=
	    CKR_OK || len == 0) {
		free(der);
		return;
	}
	k->cert = der;
	k->cert_len = len;
}

/* Parses a key's URI into a search template. Its token attributes must
 * name [keyd] token, as the token URI does; the failover token's process
 * searches by the object attributes alone. */
static int
parse_uri(struct token *t, const char *name, const char *uri,
    CK_ATTRIBUTE **out, CK_ULONG *nout, char *err, size_t errlen)
{
	char what[128];

	snprintf(what, sizeof(what), "key '%s': uri", name);
	return p11_key_template(uri, what, t->have_info &&
	    !t->cfg->serving_failover ? &t->info : NULL, "[keyd] token", out,
	    nout, err, errlen);
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
copied_keys(const struct token *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n_all; i++)
		n += t->dk[i].copied != 0;
	return n;
}

/* Makes session copies of a token's keys in its keeper session, so that
 * operations do not re-read the key from the token's storage. A token
 * that refuses (CKA_COPYABLE false, or no C_CopyObject) is served from the
 * token object. The copies vanish with the keeper session. */
static void
copy_keys(struct token *t)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE tmpl[1] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_RV rv;

	for (size_t i = 0; i < t->n_all; i++) {
		struct dev_key *dk = &t->dk[i];

		dk->copied = 0;
		for (size_t v = 0; v < dk->n; v++)
			dk->use[v] = dk->obj[v];
		if (!t->key_copies)
			continue;
		for (size_t v = 0; v < dk->n; v++) {
			rv = t->f->C_CopyObject(t->keeper, dk->obj[v], tmpl, 1,
			    &dk->use[v]);
			if (rv != CKR_OK) {
				log_warn("token '%s' will not copy key '%s' "
				    "into a session object (%s); serving the "
				    "token object", t->label, t->keys[i].name,
				    token_rv_name(rv));
				for (size_t w = 0; w < v; w++)
					(void)t->f->C_DestroyObject(t->keeper,
					    dk->use[w]);
				for (size_t w = 0; w < dk->n; w++)
					dk->use[w] = dk->obj[w];
				break;
			}
			dk->copied = v + 1 == dk->n;
		}
	}
	pthread_mutex_lock(&t->shown_mu);
	t->shown_copies = (unsigned)copied_keys(t);
	pthread_mutex_unlock(&t->shown_mu);
}

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

/* The first time keyd uses the token: every key's ops against the token's
 * mechanism list (C_GetMechanismList, C_GetMechanismInfo). A key whose
 * op the token cannot do is a start-up error naming the op, the key and
 * the mechanism; a variant it lacks (RSA-PSS) is a warning. */
static int
check_mechanisms(struct token *t, char *err, size_t errlen)
{
	CK_FUNCTION_LIST *f = t->f;
	CK_MECHANISM_TYPE *list = NULL;
	CK_ULONG n = 0;
	CK_RV rv;
	int r = KEYD_OK;

	if ((rv = f->C_GetMechanismList(t->slot, NULL, &n)) != CKR_OK ||
	    n == 0 || (list = calloc(n, sizeof(*list))) == NULL ||
	    (rv = f->C_GetMechanismList(t->slot, list, &n)) != CKR_OK) {
		log_warn("token '%s': cannot read its mechanism list (%s): "
		    "the keys' ops are not checked against it", t->label,
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
			} else if (f->C_GetMechanismInfo(t->slot, m->mech,
			    &info) == CKR_OK && (info.flags & m->flags) !=
			    m->flags) {
				/* The flags are advisory, and some modules
				 * leave some out: the call itself decides. */
				log_warn("token '%s' lists %s without the flags "
				    "for %s (C_GetMechanismInfo): if it refuses, "
				    "those requests with key '%s' fail", t->label,
				    m->mech_name, m->what, k->name);
				continue;
			}
			if (why == NULL)
				continue;
			if (!m->required) {
				log_warn("token '%s' lacks %s (it %s): requests "
				    "for %s with key '%s' will fail", t->label,
				    m->mech_name, why, m->what, k->name);
				continue;
			}
			if (i < t->n_keys)
				errf(err, errlen, "key '%s' has ops = %s, but "
				    "token '%s' cannot do %s: %s %s", k->name,
				    op_names(ops & m->ops), t->label, m->what,
				    m->mech_name, why);
			else
				errf(err, errlen, "audit_key %s signs the "
				    "audit log's checkpoints, but token '%s' "
				    "cannot do %s: %s %s", k->uri, t->label,
				    m->what, m->mech_name, why);
			r = KEYD_ERR_CONFIG;
			break;
		}
	}
	free(list);
	return r;
}

/* The first time keyd uses the token: which OAEP hashes it decrypts with,
 * for each key with ops = decrypt (into keys[].oaep_hashes, which keyd
 * then offers). A key that decrypts with none is an error, unless PKCS#1
 * v1.5 (implicit rejection, through raw RSA) is what it is for. */
static int
probe_oaep(struct token *t, char *err, size_t errlen)
{
	char names[128];
	int r;

	for (size_t i = 0; i < t->n_keys; i++) {
		struct token_key *k = &t->keys[i];
		unsigned *got = &k->oaep_hashes;
		CK_RV what[4] = { 0 };
		size_t used = 0;

		*got = 0;
		if (!(key_ops(t, i) & CONFIG_OP_DECRYPT) ||
		    k->type != TOKEN_KEY_RSA)
			continue;
		if ((r = oaep_probe(t, k, t->dk[i].obj[0], got, what, err,
		    errlen)) != KEYD_OK)
			return r;
		if (*got == 0 && t->cfg->keys[i].pkcs1_decrypt) {
			log_warn("key '%s' on token '%s' decrypted a test "
			    "ciphertext with no OAEP hash: keyd offers only "
			    "PKCS#1 v1.5 decryption with it", k->name,
			    t->label);
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
			    "hash, no label; %s)", k->name, k->uri, t->label,
			    names);
			return KEYD_ERR_CONFIG;
		}
	}
	return KEYD_OK;
}

/* Finds every key on the token. The first time, describes the keys (type,
 * public key, certificate) and checks them against their ops; after a
 * recovery or a reload, the token must hold the same keys. */
static int
resolve_keys(struct token *t, char *err, size_t errlen)
{
	int r;

	/* Every object first: a token that lacks one is found out before
	 * any private-key operation (the test signatures and decryptions). */
	for (size_t i = 0; i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];
		struct dev_key *dk = &t->dk[i];

		if ((r = find_key_obj(t, k->name, k->uri, k->tmpl, k->tmpl_n, 0,
		    &dk->obj[0], err, errlen)) != KEYD_OK)
			return r;
		for (size_t v = 0; v < k->n_prev; v++)
			if ((r = find_key_obj(t, k->name, k->prev_uri[v],
			    k->prev_tmpl[v], k->prev_tmpl_n[v], 1,
			    &dk->obj[v + 1], err, errlen)) != KEYD_OK)
				return r;
	}
	for (size_t i = 0; i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];
		struct dev_key *dk = &t->dk[i];

		if (!t->described) {
			r = describe_key(t, k, dk->obj[0], key_ops(t, i), 1,
			    err, errlen);
			if (r == KEYD_OK)
				find_cert(t, k);
		} else {
			r = check_same_key(t, k, dk->obj[0], key_ops(t, i),
			    !t->pairs_checked, err, errlen);
		}
		if (r != KEYD_OK)
			return r;
		for (size_t v = 0; v < k->n_prev; v++) {
			CK_KEY_TYPE kt = 0;
			uint8_t kcv[3];
			int has;

			if (p11_get_ulong(t->f, t->keeper, dk->obj[v + 1],
			    CKA_KEY_TYPE, &kt) != CKR_OK || kt != CKK_AES) {
				errf(err, errlen, "key '%s': previous version %s "
				    "is not an AES key", k->name,
				    k->prev_uri[v]);
				return KEYD_ERR_CONFIG;
			}
			has = aes_check_value(t, dk->obj[v + 1], kcv);
			if (!t->described) {
				memcpy(k->prev_kcv[v], kcv, sizeof(kcv));
				k->prev_has_kcv[v] = has;
			} else if (!has || !k->prev_has_kcv[v] ||
			    memcmp(kcv, k->prev_kcv[v], sizeof(kcv)) != 0) {
				errf(err, errlen, "key '%s': previous version %s "
				    "on token '%s' %s", k->name, k->prev_uri[v],
				    t->label, has && k->prev_has_kcv[v] ?
				    "has another check value than the one keyd "
				    "serves" : "has no check value to compare");
				return KEYD_ERR_CONFIG;
			}
		}
	}
	/* The mechanisms, once; then the OAEP probes (a missing
	 * CKM_RSA_PKCS_OAEP is named as such first). */
	if (!t->pairs_checked && ((r = check_mechanisms(t, err, errlen)) !=
	    KEYD_OK || (r = probe_oaep(t, err, errlen)) != KEYD_OK))
		return r;
	/* The audit key must be no key a client can use. The handle names
	 * one object within one token; the same key pair can also sit in
	 * another object (a copy, a restore under another label), so the
	 * public keys are compared too. An EC or Ed25519 key's public key is
	 * the one its test signature verified with (pair_check), so it is
	 * the private key's own, not a stray object's. */
	if (t->has_audit_key) {
		const struct token_key *ak = &t->keys[t->n_keys];
		CK_OBJECT_HANDLE ah = t->dk[t->n_keys].obj[0];

		for (size_t i = 0; i < t->n_keys; i++) {
			const struct token_key *sk = &t->keys[i];

			for (size_t v = 0; v < t->dk[i].n; v++)
				if (t->dk[i].obj[v] == ah) {
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
	/* The test signatures, once: a recovery finds the same
	 * objects again, and public keys are compared all the same. */
	t->pairs_checked = 1;
	copy_keys(t);
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
	if ((t->dk = calloc(t->n_all + 1, sizeof(*t->dk))) == NULL)
		return KEYD_ERR_NOMEM;
	for (size_t i = 0; i < t->n_all; i++) {
		t->dk[i].n = t->keys[i].n_prev + 1;
		t->dk[i].obj = calloc(t->dk[i].n, sizeof(CK_ULONG));
		t->dk[i].use = calloc(t->dk[i].n, sizeof(CK_ULONG));
		if (t->dk[i].obj == NULL || t->dk[i].use == NULL)
			return KEYD_ERR_NOMEM;
	}
	return KEYD_OK;
}

int
token_open(const struct config *cfg, const char *pin, size_t pin_len,
    struct token **out, char *err, size_t errlen)
{
	struct token *t = NULL;
	pthread_rwlockattr_t ra;
	int r;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return KEYD_ERR_NOMEM;
	t->cfg = cfg;
	t->key_copies = cfg->key_copies;
	/* Writers first: with glibc's default, a recovery waits for as long
	 * as workers keep reading, and under load that is for ever. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&t->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&t->shown_mu, NULL);
	pthread_mutex_init(&t->audit_mu, NULL);
	snprintf(t->label, sizeof(t->label), "%s", cfg->token);
	if ((t->pin = secmem_alloc(pin_len + 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	memcpy(t->pin, pin, pin_len);
	t->pin_len = pin_len;
	if ((r = p11_token_uri(cfg->token, "token =", &t->uri, err,
	    errlen)) != KEYD_OK ||
	    (r = p11_module_load(cfg->module_real, &t->f, err, errlen)) !=
	    KEYD_OK)
		goto out;

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
	/* The token's info first: key URIs are checked against it. */
	if ((r = find_slot(t, err, errlen)) != KEYD_OK ||
	    (r = parse_keys(t, cfg, err, errlen)) != KEYD_OK ||
	    (r = keeper_login(t, err, errlen)) != KEYD_OK ||
	    (r = resolve_keys(t, err, errlen)) != KEYD_OK) {
		/* The usual cause of a token that matches no URI is a
		 * module that sees other tokens than the ones meant. */
		if (t->no_match)
			p11_no_token_hint(cfg->module_real, err, errlen);
		goto out;
	}
	if (t->key_copies)
		log_info("token '%s': %zu of %zu key%s served from session "
		    "copies", t->label, copied_keys(t), t->n_all,
		    LOG_PLURAL(t->n_all));
	*out = t;
	t = NULL;
	r = KEYD_OK;
out:
	token_close(t);
	return r;
}

void
token_close(struct token *t)
{
	if (t == NULL)
		return;
	if (t->f != NULL && t->have_info) {
		if (t->keeper_open && t->logged_in)
			(void)t->f->C_Logout(t->keeper);
		(void)t->f->C_CloseAllSessions(t->slot);
	}
	p11_module_release(t->f);
	for (size_t i = 0; t->dk != NULL && i < t->n_all; i++) {
		free(t->dk[i].obj);
		free(t->dk[i].use);
	}
	free(t->dk);
	if (t->uri != NULL)
		p11_kit_uri_free(t->uri);
	for (size_t i = 0; t->keys != NULL && i < t->n_all; i++) {
		struct token_key *k = &t->keys[i];

		p11_template_free(k->tmpl, k->tmpl_n);
		free(k->spki);
		free(k->cert);
		for (size_t v = 0; k->prev_tmpl != NULL && v < k->n_prev; v++)
			p11_template_free(k->prev_tmpl[v], k->prev_tmpl_n[v]);
		free(k->prev_tmpl);
		free(k->prev_tmpl_n);
		free(k->prev_kcv);
		free(k->prev_has_kcv);
	}
	free(t->keys);
	secmem_free(t->pin, t->pin_len + 1);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->shown_mu);
	pthread_mutex_destroy(&t->audit_mu);
	free(t);
}

const struct token_key *
token_key(const struct token *t, size_t i)
{
	return i < t->n_all ? &t->keys[i] : NULL;
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
	if (s->open && s->generation == atomic_load(&t->generation))
		(void)t->f->C_CloseSession(s->h);
	s->open = 0;
}

/* Reopens everything after the token lost our sessions or login, or when
 * told to read the keys again: all sessions, the slot (a re-inserted
 * token may sit in another slot), the login, the key handles (they may
 * have changed) and their session copies. Only one thread does it per
 * loss: the others see the generation move on. */
static int
token_recover(struct token *t, unsigned long seen, char *msg, size_t msglen)
{
	char err[512];
	int r = KEYD_OK, reload;

	pthread_rwlock_wrlock(&t->lock);
	if (atomic_load(&t->generation) != seen)
		goto out;
	reload = atomic_exchange(&t->reload, 0);
	if (reload) {
		log_info("token '%s': reading the keys again", t->label);
		atomic_store(&t->pin_refused, 0);
	} else if (!atomic_load(&t->broken)) {
		log_warn("token '%s' lost its session or login; reopening",
		    t->label);
	}
	atomic_store(&t->broken, 1);
	if (atomic_load(&t->pin_refused)) {
		snprintf(msg, msglen, "token '%s' refused keyd's PIN; keyd "
		    "does not log in to it again until SIGUSR2 or a restart",
		    t->label);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if (t->have_info)
		(void)t->f->C_CloseAllSessions(t->slot);
	/* Every session is gone, with the session copies of the keys: no
	 * worker may close its old handle (a module may reuse the number),
	 * nor use a copy's handle. */
	atomic_fetch_add(&t->generation, 1);
	for (size_t i = 0; t->dk != NULL && i < t->n_all; i++) {
		t->dk[i].copied = 0;
		for (size_t v = 0; v < t->dk[i].n; v++)
			t->dk[i].use[v] = CK_INVALID_HANDLE;
	}
	t->keeper_open = 0;
	show_logged_in(t, 0);
	pthread_mutex_lock(&t->shown_mu);
	t->shown_copies = 0;
	pthread_mutex_unlock(&t->shown_mu);
	if ((r = find_slot(t, err, sizeof(err))) != KEYD_OK ||
	    (r = keeper_login(t, err, sizeof(err))) != KEYD_OK) {
		snprintf(msg, msglen, "token unavailable: %s", err);
		log_error("cannot reopen token %s: %s", t->label, err);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	if ((r = resolve_keys(t, err, sizeof(err))) != KEYD_OK) {
		snprintf(msg, msglen, "token '%s' reopened, but %s", t->label,
		    err);
		log_error("after reopening token '%s': %s", t->label, err);
		r = KEYD_ERR_TOKEN;
		goto out;
	}
	atomic_fetch_add(&t->generation, 1);
	atomic_fetch_add(&t->recoveries, 1);
	atomic_store(&t->broken, 0);
	log_info("token '%s' reopened and logged in again%s", t->label,
	    copied_keys(t) > 0 ? "; session copies of the keys made again" :
	    "");
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Makes sure the worker's session belongs to the current generation.
 * Caller holds the read lock. */
static CK_RV
session_ready(struct token *t, struct token_session *s)
{
	unsigned long gen = atomic_load(&t->generation);
	CK_RV rv;

	if (s->open && s->generation == gen)
		return CKR_OK;
	/* A session of an earlier generation was closed by the recovery's
	 * C_CloseAllSessions: forget it, never close it again. */
	s->open = 0;
	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s->h);
	if (rv != CKR_OK)
		return rv;
	s->open = 1;
	s->generation = gen;
	return CKR_OK;
}

/* Runs fn with the session and key, reopening and retrying once when the
 * token lost the session or login. Returns the CK_RV of the last try, or
 * sets *r to a KEYD_ERR_* code if recovery itself failed. */
static CK_RV
run_fn(struct token *t, struct token_session *s, size_t key, size_t version,
    token_op_fn fn, void *arg, int *r, char *msg, size_t msglen)
{
	unsigned long gen;
	CK_OBJECT_HANDLE h;
	CK_RV rv = CKR_GENERAL_ERROR;

	*r = KEYD_OK;
	/* A recovery that failed earlier (the token was gone) is retried
	 * first: until it succeeds nothing is logged in, and a token shows
	 * private keys only to a logged-in session, so the operation itself
	 * would fail with a misleading CKR_KEY_HANDLE_INVALID. */
	if (atomic_load(&t->broken) || atomic_load(&t->reload)) {
		gen = atomic_load(&t->generation);
		s->open = 0;
		if ((*r = token_recover(t, gen, msg, msglen)) != KEYD_OK) {
			rv = CKR_TOKEN_NOT_PRESENT;
			goto out;
		}
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		pthread_rwlock_rdlock(&t->lock);
		gen = atomic_load(&t->generation);
		h = key >= t->n_all ? CK_INVALID_HANDLE : t->dk[key].use[version];
		rv = session_ready(t, s);
		if (rv == CKR_OK)
			rv = fn(t->f, s->h, h, arg);
		if (rv != CKR_OK && s->open && !rv_session_lost(rv)) {
			/* The standard ends an operation on most errors, but
			 * not all (CKR_BUFFER_TOO_SMALL), and tokens differ
			 * (SoftHSM2 keeps it after CKR_ARGUMENTS_BAD): close
			 * the session, which is cheap, so that no operation
			 * left behind can fail the next client's request. */
			(void)t->f->C_CloseSession(s->h);
			s->open = 0;
		}
		pthread_rwlock_unlock(&t->lock);
		if (!rv_retry(rv) || attempt == 1)
			break;
		s->open = 0;
		if ((*r = token_recover(t, gen, msg, msglen)) != KEYD_OK)
			goto out;
	}
	if (rv_retry(rv)) {
		snprintf(msg, msglen, "token failed again after reopening the "
		    "session: %s", token_rv_name(rv));
		*r = KEYD_ERR_TOKEN;
	}
out:
	s->last_rv = rv;
	return rv;
}

void
token_reload(struct token *t)
{
	atomic_store(&t->reload, 1);
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

/* Runs fn in the caller's session with the key of config index key:
 * version 0 is the key itself, version v >= 1 is its v-th `previous`
 * entry. Same recovery and retry as token_sign. fn must be safe to run
 * twice (a retry), and must leave no operation active when it fails.
 * Returns KEYD_OK, or a KEYD_ERR_* code with msg saying why. */
static int
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
	/* The module says how much it wrote: more than the room it was
	 * given is a broken module, and passing that length on would send
	 * the bytes after the buffer. */
	if (rv == CKR_OK && a.outlen > a.room) {
		snprintf(msg, msglen, "the token's PKCS#11 module returned %zu "
		    "bytes into a buffer of %zu", a.outlen, a.room);
		log_error("key '%s': %s; the result is not used",
		    t->keys[key].name != NULL ? t->keys[key].name : "?", msg);
		return KEYD_ERR_TOKEN;
	}
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

/* In keyd-token the token is one: the failover token has a process of its
 * own. */
size_t
token_count(const struct token *t)
{
	(void)t;
	return 1;
}

void
token_get_info(struct token *t, size_t j, struct token_info *info)
{
	(void)j;
	memset(info, 0, sizeof(*info));
	info->role = "primary";
	info->recoveries = atomic_load(&t->recoveries);
	/* Not the token's lock: status must answer while a recovery holds
	 * it. */
	pthread_mutex_lock(&t->shown_mu);
	if (t->shown_have) {
		p11_padded(info->label, t->shown.label, 32);
		p11_padded(info->manufacturer, t->shown.manufacturerID, 32);
		p11_padded(info->model, t->shown.model, 16);
		p11_padded(info->serial, t->shown.serialNumber, 16);
	} else {
		/* Never found: its URI. */
		snprintf(info->label, sizeof(info->label), "%s", t->cfg->token);
	}
	info->logged_in = t->shown_logged_in;
	info->key_copies = t->shown_copies;
	pthread_mutex_unlock(&t->shown_mu);
	info->active = 1;
	info->state = atomic_load(&t->broken) ? "failed" : "serving";
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
probe_once(struct token *t)
{
	CK_SESSION_HANDLE s;
	uint8_t b[8];
	CK_RV rv;

	pthread_rwlock_rdlock(&t->lock);
	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &s);
	if (rv == CKR_OK) {
		rv = t->f->C_GenerateRandom(s, b, sizeof(b));
		(void)t->f->C_CloseSession(s);
	}
	pthread_rwlock_unlock(&t->lock);
	return rv;
}

int
token_probe(struct token *t, char *msg, size_t msglen)
{
	CK_RV rv;
	int r;

	if (t->have_info && probe_once(t) == CKR_OK)
		return KEYD_OK;
	/* A re-login (the keys found again too), then the probe once more:
	 * a key that is gone is not a device that is lost. */
	atomic_store(&t->broken, 1);
	r = token_recover(t, atomic_load(&t->generation), msg, msglen);
	if (r != KEYD_OK && !t->logged_in)
		return r;
	if ((rv = probe_once(t)) != CKR_OK) {
		snprintf(msg, msglen, "C_GenerateRandom after a re-login: %s",
		    token_rv_name(rv));
		return KEYD_ERR_TOKEN;
	}
	return KEYD_OK;
}

int
token_pin_refused(struct token *t)
{
	return atomic_load(&t->pin_refused);
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
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	int r;

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
	/* Directly, in a session of its own: keyd-serve bounds the call by
	 * token_timeout, and the supervisor replaces a process that hangs. */
	mech.mechanism = m;
	pthread_mutex_lock(&t->audit_mu);
	r = token_sign(t, &t->audit_sess, (size_t)ak, &mech, data, inlen, out,
	    outlen, msg, msglen);
	pthread_mutex_unlock(&t->audit_mu);
	return r;
}
