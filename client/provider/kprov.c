/*
 * kprov.c: keyd.so, keyd's OpenSSL 3 provider: its entry point, its
 * errors, and its connections to keyd.
 *
 * Connections: one pool of libkeyd connections per socket (kp11pool.c,
 * shared with keyd-pkcs11.so), in this file's static table and malloc'd
 * memory, never in memory OpenSSL allocated (see kprov.h). A pool notices
 * a fork by getpid() and drops the parent's connections; pthread_atfork
 * handlers keep the locks consistent in the child. keyd.so is linked with
 * -z nodelete, so these handlers never outlive the code they point to.
 *
 * Settings: the client configuration of keyd-pkcs11.so (kp11conf.c:
 * KEYD_PKCS11_CONF, else /etc/keyd/pkcs11.conf; KEYD_SOCKET overrides its
 * socket), read once when OpenSSL loads the provider.
 */
#include "kprov.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "keyd.h"
#include "kp11conf.h"
#include "kp11pool.h"

/* Distinct sockets one process may use through keyd: URIs (?socket=). */
#define KPROV_MAX_SOCKETS 8u
/* A key's certificate larger than this is not passed on. */
#define KPROV_CERT_MAX 65536u

/* The provider's static state. Written once by OSSL_provider_init (in the
 * process that loads the provider, before any fork), then read only,
 * except the pool table under pools_lock. */
static struct {
	const OSSL_CORE_HANDLE *handle;
	OSSL_FUNC_core_new_error_fn *new_error;
	OSSL_FUNC_core_set_error_debug_fn *set_error_debug;
	OSSL_FUNC_core_vset_error_fn *vset_error;
	struct kp11conf conf;
	int loaded;
} prov;

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char socket[KPROV_SOCKET_MAX + 1];
	struct kp11pool *pool;
} pools[KPROV_MAX_SOCKETS];
static unsigned npools;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void
kprov_raise(int reason, const char *fmt, ...)
{
	va_list ap;

	if (prov.new_error == NULL || prov.vset_error == NULL)
		return;
	prov.new_error(prov.handle);
	if (prov.set_error_debug != NULL)
		prov.set_error_debug(prov.handle, "keyd.so", 0, "keyd");
	va_start(ap, fmt);
	prov.vset_error(prov.handle, reason, fmt, ap);
	va_end(ap);
}

void
kprov_raise_keyd(const char *what, int r, const char *msg)
{
	if (msg != NULL && msg[0] != '\0')
		kprov_raise(KPROV_R_KEYD, "keyd: %s: %s: %s", what,
		    keyd_strerror(r), msg);
	else
		kprov_raise(KPROV_R_KEYD, "keyd: %s: %s", what,
		    keyd_strerror(r));
}

/* ---- fork ---- */

static void
atfork_prepare(void)
{
	unsigned i;

	(void)pthread_mutex_lock(&pools_lock);
	for (i = 0; i < npools; i++)
		kp11pool_atfork_prepare(pools[i].pool);
}

static void
atfork_parent(void)
{
	unsigned i;

	for (i = 0; i < npools; i++)
		kp11pool_atfork_parent(pools[i].pool);
	(void)pthread_mutex_unlock(&pools_lock);
}

static void
atfork_child(void)
{
	unsigned i;

	/* The pools themselves drop the parent's connections on their next
	 * use (they compare getpid()). */
	for (i = 0; i < npools; i++)
		kp11pool_atfork_child(pools[i].pool);
	(void)pthread_mutex_unlock(&pools_lock);
}

static void
atfork_register(void)
{
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
		abort(); /* only ENOMEM, at load time */
}

/* ---- connections ---- */

/* The pool for socket (empty: the configured one), made on first use.
 * NULL with an error raised. */
static struct kp11pool *
pool_for(const char *socket)
{
	struct kp11pool *p = NULL;
	const char *path;
	unsigned i;
	int r;

	path = socket[0] != '\0' ? socket : prov.conf.socket;
	(void)pthread_mutex_lock(&pools_lock);
	for (i = 0; i < npools; i++) {
		if (strcmp(pools[i].socket, path) == 0) {
			p = pools[i].pool;
			goto out;
		}
	}
	if (npools == KPROV_MAX_SOCKETS) {
		kprov_raise(KPROV_R_CONFIG, "keyd: this process uses more than "
		    "%u keyd sockets; at most %u are supported",
		    KPROV_MAX_SOCKETS, KPROV_MAX_SOCKETS);
		goto out;
	}
	/* Process memory (malloc), never OpenSSL's: see kprov.h. */
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		kprov_raise(KPROV_R_INTERNAL, "keyd: out of memory");
		goto out;
	}
	if ((r = kp11pool_init(p)) != KEYD_OK ||
	    (r = kp11pool_setup(p, path[0] != '\0' ? path : NULL,
	    prov.conf.timeout_ms, prov.conf.connections)) != KEYD_OK) {
		kprov_raise_keyd("cannot set up connections", r, NULL);
		free(p);
		p = NULL;
		goto out;
	}
	snprintf(pools[npools].socket, sizeof(pools[npools].socket), "%s",
	    path);
	pools[npools].pool = p;
	npools++;
out:
	(void)pthread_mutex_unlock(&pools_lock);
	return p;
}

/* A connection for one request, or NULL with an error raised (keyd down,
 * not in keyd's policy, all connections busy). */
static struct keyd_client *
conn_get(const struct kprov_key *k, struct kp11pool **pool, unsigned *gen)
{
	struct keyd_client *c = NULL;
	char err[512];
	int r;

	if ((*pool = pool_for(k->socket)) == NULL)
		return NULL;
	err[0] = '\0';
	if ((r = kp11pool_get(*pool, &c, gen, err, sizeof(err))) != KEYD_OK) {
		kprov_raise_keyd("cannot connect", r, err);
		return NULL;
	}
	return c;
}

int
kprov_sign(const struct kprov_key *k, int alg, const void *in, size_t inlen,
    uint8_t *sig, size_t *siglen)
{
	struct keyd_client *c;
	struct kp11pool *pool;
	char what[KPROV_NAME_MAX + 32];
	unsigned gen;
	int r;

	if (!k->has_name) {
		kprov_raise(KPROV_R_BAD_KEY, "keyd: this key is a public key "
		    "only; load the private key by its keyd: URI");
		return KEYD_ERR_INVALID_ARG;
	}
	if ((c = conn_get(k, &pool, &gen)) == NULL)
		return KEYD_ERR_CONNECT;
	r = keyd_sign_pinned(c, k->name, k->has_spki_sha256 ?
	    k->spki_sha256 : NULL, alg, in, inlen, sig, siglen, 0);
	if (r != KEYD_OK) {
		snprintf(what, sizeof(what), "sign with %s", k->name);
		kprov_raise_keyd(what, r, keyd_errmsg(c));
	}
	kp11pool_put(pool, c, gen);
	return r;
}

int
kprov_decrypt(const struct kprov_key *k, int alg, const void *in,
    size_t inlen, uint8_t *out, size_t *outlen)
{
	struct keyd_client *c;
	struct kp11pool *pool;
	char what[KPROV_NAME_MAX + 32];
	unsigned gen;
	int r;

	if (!k->has_name) {
		kprov_raise(KPROV_R_BAD_KEY, "keyd: this key is a public key "
		    "only; load the private key by its keyd: URI");
		return KEYD_ERR_INVALID_ARG;
	}
	if ((c = conn_get(k, &pool, &gen)) == NULL)
		return KEYD_ERR_CONNECT;
	/* Pinned as signatures are: the key loaded, never another one a
	 * reload pointed its name at. */
	r = keyd_decrypt_pinned(c, k->name, k->has_spki_sha256 ?
	    k->spki_sha256 : NULL, alg, in, inlen, out, outlen);
	if (r != KEYD_OK) {
		/* A bad ciphertext is not worth keyd's detail. */
		snprintf(what, sizeof(what), "decrypt with %s", k->name);
		kprov_raise_keyd(what, r, r == KEYD_ERR_DECRYPT ? NULL :
		    keyd_errmsg(c));
	}
	kp11pool_put(pool, c, gen);
	return r;
}

EVP_PKEY *
kprov_key_pkey(const struct kprov_key *k)
{
	const unsigned char *p = k->spki;
	EVP_PKEY *pk;

	pk = d2i_PUBKEY_ex(NULL, &p, (long)k->spki_len, NULL,
	    KPROV_DEFAULT_PROPQ);
	if (pk == NULL)
		kprov_raise(KPROV_R_BAD_KEY, "keyd: the public key of %s does "
		    "not decode", k->has_name ? k->name : "an imported key");
	return pk;
}

int
kprov_key_valid(const void *p)
{
	const struct kprov_key *k = p;

	return k != NULL && k->magic == KPROV_KEY_MAGIC &&
	    k->spki_len <= sizeof(k->spki);
}

int
kprov_key_fill_public(struct kprov_key *k)
{
	EVP_PKEY *pk;
	size_t glen = 0;
	int ok = 0;

	if ((pk = kprov_key_pkey(k)) == NULL)
		return 0;
	if (EVP_PKEY_is_a(pk, "EC")) {
		k->type = KPROV_EC;
		if (!EVP_PKEY_get_group_name(pk, k->group, sizeof(k->group),
		    &glen))
			goto out;
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		k->type = KPROV_RSA;
	} else if (EVP_PKEY_is_a(pk, "ED25519")) {
		k->type = KPROV_ED25519;
	} else {
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: %s is of a type this "
		    "provider does not serve (EC, RSA and Ed25519 only)",
		    k->has_name ? k->name : "an imported key");
		goto out;
	}
	if (k->type != KPROV_RSA &&
	    !EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_PUB_KEY, k->pub, sizeof(k->pub),
	    &k->pub_len))
		goto out;
	if (k->type == KPROV_EC &&
	    !EVP_PKEY_get_utf8_string_param(pk,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, k->pointfmt,
	    sizeof(k->pointfmt), &glen))
		goto out;
	k->bits = (unsigned)EVP_PKEY_get_bits(pk);
	k->secbits = (unsigned)EVP_PKEY_get_security_bits(pk);
	k->maxsize = (unsigned)EVP_PKEY_get_size(pk);
	ok = 1;
out:
	EVP_PKEY_free(pk);
	return ok;
}

int
kprov_describe(struct kprov_key *k, const char *name, const char *socket,
    uint8_t **cert, size_t *certlen)
{
	struct keyd_client *c = NULL;
	struct keyd_keylist *l = NULL;
	struct kp11pool *pool = NULL;
	uint8_t *spki = NULL, *der = NULL;
	size_t i, n, len = 0, dlen = 0;
	unsigned gen = 0;
	int has_cert = 0, r = KEYD_ERR_INVALID_ARG;

	if (cert != NULL)
		*cert = NULL;
	if (strlen(name) > KPROV_NAME_MAX || strlen(socket) > KPROV_SOCKET_MAX) {
		kprov_raise(KPROV_R_BAD_URI, "keyd: the key name or socket "
		    "path is too long");
		return KEYD_ERR_INVALID_ARG;
	}
	k->magic = KPROV_KEY_MAGIC;
	k->has_name = 1;
	memcpy(k->name, name, strlen(name) + 1);
	memcpy(k->socket, socket, strlen(socket) + 1);
	if ((c = conn_get(k, &pool, &gen)) == NULL)
		return KEYD_ERR_CONNECT;
	if ((r = keyd_list(c, &l)) != KEYD_OK) {
		kprov_raise_keyd("list keys", r, keyd_errmsg(c));
		goto out;
	}
	n = keyd_keylist_count(l);
	for (i = 0; i < n; i++)
		if (strcmp(keyd_keylist_name(l, i), name) == 0)
			break;
	if (i == n) {
		r = KEYD_ERR_UNKNOWN_KEY;
		kprov_raise(KPROV_R_KEYD, "keyd: no key named '%s' for this "
		    "client (keydctl list shows the keys it may use)", name);
		goto out;
	}
	if (strcmp(keyd_keylist_type(l, i), "aes") == 0) {
		r = KEYD_ERR_BAD_ALGORITHM;
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: %s is an AES key (an "
		    "SRTP KEK): it has no OpenSSL key", name);
		goto out;
	}
	has_cert = keyd_keylist_has_cert(l, i);
	if (keyd_keylist_ops(l, i) & KEYD_OP_DECRYPT) {
		int alg;

		for (alg = KEYD_RSA_OAEP_SHA1; alg <= KEYD_RSA_PKCS1; alg++)
			if (keyd_keylist_decrypts(l, i, alg))
				k->decrypts |= 1u << (alg - KEYD_RSA_OAEP_SHA1);
	}
	if ((r = keyd_pubkey(c, name, &spki, &len)) != KEYD_OK) {
		kprov_raise_keyd("public key", r, keyd_errmsg(c));
		goto out;
	}
	if (len > sizeof(k->spki)) {
		r = KEYD_ERR_BAD_LENGTH;
		kprov_raise(KPROV_R_UNSUPPORTED, "keyd: the public key of %s "
		    "is larger than %u bytes", name, KPROV_SPKI_MAX);
		goto out;
	}
	memcpy(k->spki, spki, len);
	k->spki_len = len;
	/* Here, where the key is loaded (and decoded below), not at each
	 * signature: a signature takes no OpenSSL lock (kprov_sign). */
	k->has_spki_sha256 = EVP_Digest(k->spki, k->spki_len,
	    k->spki_sha256, NULL, EVP_sha256(), NULL) == 1;
	if (cert != NULL && has_cert) {
		r = keyd_certificate(c, name, &der, &dlen);
		if (r == KEYD_OK && dlen > 0 && dlen <= KPROV_CERT_MAX &&
		    (*cert = OPENSSL_malloc(dlen)) != NULL) {
			memcpy(*cert, der, dlen);
			*certlen = dlen;
		}
		/* No certificate is no reason to refuse the key. */
	}
	r = kprov_key_fill_public(k) ? KEYD_OK : KEYD_ERR_CRYPTO;
out:
	if (r != KEYD_OK && cert != NULL) {
		OPENSSL_free(*cert);
		*cert = NULL;
	}
	keyd_free(spki);
	keyd_free(der);
	keyd_keylist_free(l);
	kp11pool_put(pool, c, gen);
	return r;
}

/* ---- the provider ---- */

static const OSSL_ALGORITHM kprov_keymgmts[] = {
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", "provider=keyd",
	    kprov_ec_keymgmt, "keyd EC keys" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=keyd",
	    kprov_rsa_keymgmt, "keyd RSA keys" },
	{ "ED25519:1.3.101.112", "provider=keyd", kprov_ed25519_keymgmt,
	    "keyd Ed25519 keys" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM kprov_signatures[] = {
	{ "ECDSA", "provider=keyd", kprov_ecdsa_signature, "keyd ECDSA" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=keyd",
	    kprov_rsa_signature, "keyd RSA signatures" },
	{ "ED25519:1.3.101.112", "provider=keyd", kprov_ed25519_signature,
	    "keyd Ed25519" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM kprov_ciphers[] = {
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", "provider=keyd",
	    kprov_rsa_cipher, "keyd RSA decryption" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM kprov_stores[] = {
	{ "keyd", "provider=keyd", kprov_store, "keyd: URIs" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM *
kprov_query(void *provctx, int op, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (op) {
	case OSSL_OP_KEYMGMT:
		return kprov_keymgmts;
	case OSSL_OP_SIGNATURE:
		return kprov_signatures;
	case OSSL_OP_ASYM_CIPHER:
		return kprov_ciphers;
	case OSSL_OP_STORE:
		return kprov_stores;
	}
	return NULL;
}

static const OSSL_PARAM *
kprov_gettable_params(void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, NULL, 0),
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, NULL, 0),
		OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, NULL, 0),
		OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, NULL),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return p;
}

static int
kprov_get_params(void *provctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p;

	(void)provctx;
	if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME)) != NULL &&
	    !OSSL_PARAM_set_utf8_ptr(p, "keyd: keys held by keyd"))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION)) != NULL &&
	    !OSSL_PARAM_set_utf8_ptr(p, KEYD_VERSION))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO)) != NULL &&
	    !OSSL_PARAM_set_utf8_ptr(p, "keyd " KEYD_VERSION))
		return 0;
	if ((p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS)) != NULL &&
	    !OSSL_PARAM_set_int(p, 1))
		return 0;
	return 1;
}

static const OSSL_ITEM kprov_reasons[] = {
	{ KPROV_R_KEYD, "keyd refused or failed the request" },
	{ KPROV_R_BAD_URI, "bad keyd: URI" },
	{ KPROV_R_BAD_KEY, "not a usable keyd key" },
	{ KPROV_R_UNSUPPORTED, "not supported by keyd" },
	{ KPROV_R_INTERNAL, "internal error" },
	{ KPROV_R_CONFIG, "keyd client configuration" },
	{ 0, NULL },
};

static const OSSL_ITEM *
kprov_get_reason_strings(void *provctx)
{
	(void)provctx;
	return kprov_reasons;
}

/* Nothing to free: the state is static, and the connections are closed
 * by the process's exit. Closing them here could run in a child that
 * shares OpenSSL's memory with its siblings; it must not touch theirs. */
static void
kprov_teardown(void *provctx)
{
	(void)provctx;
}

static const OSSL_DISPATCH kprov_dispatch[] = {
	{ OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))kprov_teardown },
	{ OSSL_FUNC_PROVIDER_GETTABLE_PARAMS,
	    (void (*)(void))kprov_gettable_params },
	{ OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))kprov_get_params },
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))kprov_query },
	{ OSSL_FUNC_PROVIDER_GET_REASON_STRINGS,
	    (void (*)(void))kprov_get_reason_strings },
	{ 0, NULL },
};

__attribute__((visibility("default"))) int
OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx)
{
	char err[512];
	int r;

	for (; in->function_id != 0; in++) {
		switch (in->function_id) {
		case OSSL_FUNC_CORE_NEW_ERROR:
			prov.new_error = OSSL_FUNC_core_new_error(in);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			prov.set_error_debug =
			    OSSL_FUNC_core_set_error_debug(in);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			prov.vset_error = OSSL_FUNC_core_vset_error(in);
			break;
		}
	}
	prov.handle = handle;
	/* Loaded again (another library context): the settings stay those
	 * of the first load, which live connections were made with. */
	if (!prov.loaded) {
		err[0] = '\0';
		if ((r = kp11conf_load(&prov.conf, err, sizeof(err))) !=
		    KEYD_OK) {
			kprov_raise(KPROV_R_CONFIG, "keyd: %s", err);
			return 0;
		}
		if (pthread_once(&atfork_once, atfork_register) != 0)
			return 0;
		prov.loaded = 1;
	}
	*out = kprov_dispatch;
	/* The context is never dereferenced: a static address, the same in
	 * every process forked after the load. */
	*provctx = &prov;
	return 1;
}
