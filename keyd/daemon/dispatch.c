/* dispatch.c: one handler per operation (handle_<op>), behind one entry
 * point that every request goes through. */
#include "dispatch.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digestinfo.h"
#include "frame.h"
#include "keyd_err.h"
#include "log.h"
#include "rsa_ir.h"
#include "secmem.h"
#include "shaken.h"
#include "srtp.h"

#define DISPATCH_MSG_MAX 256
#define DISPATCH_ECDSA_MIN_DIGEST 20
#define DISPATCH_ECDSA_MAX_DIGEST 64
#define DISPATCH_MAX_DECRYPT 1024   /* RSA-8192 ciphertext */

/* Room for one key's certificate warning in status. */
#define DISPATCH_WARN_MAX 96

/* A client's own words (a key name, a version) echoed in an error or an
 * audit line are cut to this many bytes. */
#define DISPATCH_ECHO_MAX 64

/* The length of s cut to at most max bytes without splitting a UTF-8
 * sequence (a cut never lands before a continuation byte). */
static int
utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	if (n == max)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	return (int)n;
}

/*
 * Each thread that dispatches gets one area of locked memory (secmem:
 * mlock, MADV_DONTDUMP, MADV_WIPEONFORK) for the plaintexts a request
 * makes: decrypt's plaintext, srtp-new's and srtp-open's master key and
 * salt. It is allocated on the thread's first such request and freed
 * (wiped, unmapped) when the thread exits; between requests it is all
 * zero, as a fresh secmem_alloc would be. An mmap, mlock, munlock and
 * munmap per request cost about a sixth of keyd's CPU on srtp-open
 * (docs/benchmarks.md). A worker runs one request at a time, so one area
 * a thread is enough.
 */
struct dispatch_scratch {
	uint8_t plain[DISPATCH_MAX_DECRYPT];
	struct srtp_result srtp;
};

static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
static int scratch_key_ok;

static void
scratch_destroy(void *p)
{
	secmem_free(p, sizeof(struct dispatch_scratch));
}

static void
scratch_key_create(void)
{
	scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* The calling thread's scratch area, allocated on first use; NULL when
 * it cannot be had (the request then fails with KEYD_ERR_NOMEM). */
static struct dispatch_scratch *
scratch_get(void)
{
	struct dispatch_scratch *sc;

	if (pthread_once(&scratch_once, scratch_key_create) != 0 ||
	    !scratch_key_ok)
		return NULL;
	if ((sc = pthread_getspecific(scratch_key)) != NULL)
		return sc;
	if ((sc = secmem_alloc(sizeof(*sc))) == NULL)
		return NULL;
	if (pthread_setspecific(scratch_key, sc) != 0) {
		secmem_free(sc, sizeof(*sc));
		return NULL;
	}
	return sc;
}

/* What one request did, for the audit line and the counters. */
struct req_ctx {
	struct dispatch *d;
	struct token_session *s;
	const struct dispatch_peer *p;
	const char *op;
	unsigned op_bit;          /* CONFIG_OP_*, 0 for hello/list/pubkey */
	long key;                 /* config key index, or -1 */
	const char *key_name;
	const char *mech;
	char msg[DISPATCH_MSG_MAX];
};

static int op_index(unsigned op_bit)
{
	switch (op_bit) {
	case CONFIG_OP_SIGN: return 0;
	case CONFIG_OP_DECRYPT: return 1;
	case CONFIG_OP_SRTP_NEW: return 2;
	case CONFIG_OP_SRTP_OPEN: return 3;
	case CONFIG_OP_STATUS: return 4;
	case CONFIG_OP_PASSPORT: return 5;
	}
	return -1;
}

int
dispatch_init(struct dispatch *d, const struct config *cfg,
    struct token *token, struct audit *audit)
{
	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->token = token;
	d->audit = audit;
	d->run = &d->run_own;
	d->generation = 1;
	d->applied = time(NULL);
	atomic_init(&d->refs, 1);
	clock_gettime(CLOCK_MONOTONIC, &d->run_own.started);
	d->counters = calloc(cfg->n_keys ? cfg->n_keys * DISPATCH_NOPS : 1,
	    sizeof(*d->counters));
	d->limiters = calloc(cfg->n_clients + 1, sizeof(*d->limiters));
	if (d->counters == NULL || d->limiters == NULL) {
		free(d->counters);
		free(d->limiters);
		d->counters = NULL;
		d->limiters = NULL;
		return KEYD_ERR_NOMEM;
	}
	for (size_t i = 0; i < cfg->n_clients; i++)
		policy_limiter_init(&d->limiters[i], cfg->clients[i].rate,
		    cfg->clients[i].max_connections);
	return KEYD_OK;
}

void
dispatch_free(struct dispatch *d)
{
	struct dispatch_scratch *sc;

	if (d == NULL)
		return;
	free(d->counters);
	d->counters = NULL;
	for (size_t i = 0; d->limiters != NULL && i < d->cfg->n_clients; i++)
		policy_limiter_destroy(&d->limiters[i]);
	free(d->limiters);
	d->limiters = NULL;
	/* The thread that set up the dispatcher may have run requests on it
	 * too (the fuzz targets do) and may not exit soon: give its scratch
	 * area back now. The workers' areas go when they exit. */
	if (pthread_once(&scratch_once, scratch_key_create) == 0 &&
	    scratch_key_ok && (sc = pthread_getspecific(scratch_key)) != NULL) {
		(void)pthread_setspecific(scratch_key, NULL);
		secmem_free(sc, sizeof(*sc));
	}
}

int
dispatch_error_reply(struct kbuf *out, uint64_t id, int err, const char *msg)
{
	Keyd__V1__Response resp = KEYD__V1__RESPONSE__INIT;

	resp.id = id;
	resp.error = err;
	resp.message = (char *)(uintptr_t)(msg != NULL ? msg :
	    keyd_strerror(err));
	return frame_put_msg(out, &resp.base, FRAME_MAX_CEILING);
}

/* Checks the op on the named key and sets rc->key. */
static int
check_key(struct req_ctx *rc, const char *name, unsigned op)
{
	size_t idx;
	int r;

	if (name == NULL || *name == '\0') {
		snprintf(rc->msg, sizeof(rc->msg), "no key named in the "
		    "request");
		return KEYD_ERR_INVALID_ARG;
	}
	if (strlen(name) > CONFIG_NAME_MAX) {
		/* Not put in the audit line: no key has such a name. */
		snprintf(rc->msg, sizeof(rc->msg), "a key name is at most %d "
		    "bytes", CONFIG_NAME_MAX);
		return KEYD_ERR_UNKNOWN_KEY;
	}
	rc->key_name = name;
	if (op == 0) {
		long k = config_find_key(rc->d->cfg, name);

		if (k < 0 || !policy_client_has_key(rc->d->cfg, rc->p->client,
		    (size_t)k)) {
			snprintf(rc->msg, sizeof(rc->msg), "%s '%.*s'",
			    k < 0 ? "no key named" :
			    "this client may not use key",
			    utf8_cut(name, DISPATCH_ECHO_MAX), name);
			return k < 0 ? KEYD_ERR_UNKNOWN_KEY : KEYD_ERR_DENIED;
		}
		rc->key = k;
		return KEYD_OK;
	}
	r = policy_check(rc->d->cfg, rc->p->client, name, op, &idx, rc->msg,
	    sizeof(rc->msg));
	if (r == KEYD_OK)
		rc->key = (long)idx;
	return r;
}

static Keyd__V1__KeyType
key_type_pb(enum token_key_type t)
{
	switch (t) {
	case TOKEN_KEY_EC_P256: return KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P256;
	case TOKEN_KEY_EC_P384: return KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P384;
	case TOKEN_KEY_RSA: return KEYD__V1__KEY_TYPE__KEY_TYPE_RSA;
	case TOKEN_KEY_ED25519: return KEYD__V1__KEY_TYPE__KEY_TYPE_ED25519;
	case TOKEN_KEY_AES: return KEYD__V1__KEY_TYPE__KEY_TYPE_AES;
	case TOKEN_KEY_HMAC: break;
	}
	return KEYD__V1__KEY_TYPE__KEY_TYPE_UNSPECIFIED;
}

static size_t
ops_to_pb(unsigned ops, Keyd__V1__Op *out)
{
	size_t n = 0;

	for (unsigned bit = 0; bit < DISPATCH_NCLIENT_OPS; bit++)
		if (ops & (1u << bit))
			out[n++] = (Keyd__V1__Op)(bit + 1);
	return n;
}

static int
handle_hello(struct req_ctx *rc, const Keyd__V1__HelloRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__HelloReply *hr,
    Keyd__V1__Op *ops, char **keys)
{
	const struct config *cfg = rc->d->cfg;
	const struct config_client *cl = &cfg->clients[rc->p->client];

	if (req->protocol_version != KEYD_PROTOCOL_VERSION) {
		snprintf(rc->msg, sizeof(rc->msg), "client speaks protocol "
		    "version %u; this keyd speaks %d", req->protocol_version,
		    KEYD_PROTOCOL_VERSION);
		return KEYD_ERR_VERSION;
	}
	hr->protocol_version = KEYD_PROTOCOL_VERSION;
	hr->daemon_version = (char *)KEYD_VERSION;
	hr->client_name = cl->name;
	hr->n_ops = ops_to_pb(cl->ops, ops);
	hr->ops = ops;
	for (size_t i = 0; i < cl->n_keys; i++)
		keys[i] = cfg->keys[cl->keys[i]].name;
	hr->n_keys = cl->n_keys;
	hr->keys = keys;
	hr->config_generation = rc->d->generation;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_HELLO;
	resp->hello = hr;
	return KEYD_OK;
}

static const char *
curve_name(enum token_key_type t)
{
	switch (t) {
	case TOKEN_KEY_EC_P256: return "P-256";
	case TOKEN_KEY_EC_P384: return "P-384";
	case TOKEN_KEY_ED25519: return "Ed25519";
	default: return "";
	}
}

/* The protocol's OAEP algorithms, in the order of the token layer's
 * variants (token_oaep_variants). */
static const Keyd__V1__DecryptAlg oaep_pb[TOKEN_OAEP_N] = {
	KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1,
	KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA256,
	KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA384,
	KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA512,
};

/* The decryption algorithms keyd does with key tk, into out (room for
 * DISPATCH_NDECRYPT); returns how many. */
static size_t
decrypt_algs_pb(const struct token_key *tk, int pkcs1,
    Keyd__V1__DecryptAlg *out)
{
	size_t n = 0;

	for (size_t i = 0; i < TOKEN_OAEP_N; i++)
		if (tk->oaep_hashes & token_oaep_variants[i].bit)
			out[n++] = oaep_pb[i];
	if (pkcs1)
		out[n++] = KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_PKCS1;
	return n;
}

/* Builds and sends the list reply itself: its arrays are sized by the
 * client's key count. */
static int
handle_list(struct req_ctx *rc, Keyd__V1__Response *resp, struct kbuf *out)
{
	const struct config *cfg = rc->d->cfg;
	const struct config_client *cl = &cfg->clients[rc->p->client];
	Keyd__V1__ListReply lr = KEYD__V1__LIST_REPLY__INIT;
	Keyd__V1__KeyInfo *infos = NULL, **ptrs = NULL;
	Keyd__V1__Op *ops = NULL;
	Keyd__V1__DecryptAlg *algs = NULL;
	int r = KEYD_ERR_NOMEM;

	if (cl->n_keys > 0) {
		infos = calloc(cl->n_keys, sizeof(*infos));
		ptrs = calloc(cl->n_keys, sizeof(*ptrs));
		ops = calloc(cl->n_keys * DISPATCH_NOPS, sizeof(*ops));
		algs = calloc(cl->n_keys * DISPATCH_NDECRYPT, sizeof(*algs));
		if (infos == NULL || ptrs == NULL || ops == NULL ||
		    algs == NULL)
			goto out;
	}
	for (size_t i = 0; i < cl->n_keys; i++) {
		size_t k = cl->keys[i];
		const struct token_key *tk = token_key(rc->d->token, k);

		keyd__v1__key_info__init(&infos[i]);
		infos[i].name = cfg->keys[k].name;
		infos[i].type = key_type_pb(tk->type);
		infos[i].bits = tk->bits;
		infos[i].curve = (char *)(uintptr_t)curve_name(tk->type);
		infos[i].ops = ops + i * DISPATCH_NOPS;
		infos[i].n_ops = ops_to_pb(cl->ops & cfg->keys[k].ops,
		    infos[i].ops);
		infos[i].id.data = (uint8_t *)(uintptr_t)tk->id;
		infos[i].id.len = tk->id_len;
		infos[i].weak_extractable = tk->weak_extractable;
		infos[i].has_certificate = tk->cert != NULL;
		if (cl->ops & cfg->keys[k].ops & CONFIG_OP_DECRYPT) {
			infos[i].decrypt_algs = algs + i * DISPATCH_NDECRYPT;
			infos[i].n_decrypt_algs = decrypt_algs_pb(tk,
			    cfg->keys[k].pkcs1_decrypt, infos[i].decrypt_algs);
			infos[i].decrypt_algs_known = 1;
		}
		ptrs[i] = &infos[i];
	}
	lr.n_keys = cl->n_keys;
	lr.keys = ptrs;
	lr.config_generation = rc->d->generation;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_LIST;
	resp->list = &lr;
	r = frame_put_msg(out, &resp->base, FRAME_MAX_CEILING);
out:
	free(infos);
	free(ptrs);
	free(ops);
	free(algs);
	return r;
}

static int
handle_pubkey(struct req_ctx *rc, const Keyd__V1__PubkeyRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__PubkeyReply *pr)
{
	const struct token_key *tk;
	int r;

	if ((r = check_key(rc, req->key, 0)) != KEYD_OK)
		return r;
	tk = token_key(rc->d->token, (size_t)rc->key);
	/* The code is protocol.md's for this case; the message says what
	 * is wrong, since the request named no algorithm. */
	if (tk->spki == NULL) {
		if (tk->type == TOKEN_KEY_AES)
			snprintf(rc->msg, sizeof(rc->msg), "key '%s' is an AES "
			    "key: it has no public key", rc->key_name);
		else
			snprintf(rc->msg, sizeof(rc->msg), "key '%s' (%s) has "
			    "no public key", rc->key_name,
			    token_key_type_name(tk->type));
		return KEYD_ERR_BAD_ALGORITHM;
	}
	pr->spki_der.data = tk->spki;
	pr->spki_der.len = tk->spki_len;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_PUBKEY;
	resp->pubkey = pr;
	return KEYD_OK;
}

static int
handle_cert(struct req_ctx *rc, const Keyd__V1__CertRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__CertReply *cr)
{
	const struct token_key *tk;
	int r;

	if ((r = check_key(rc, req->key, 0)) != KEYD_OK)
		return r;
	tk = token_key(rc->d->token, (size_t)rc->key);
	if (tk->cert == NULL) {
		snprintf(rc->msg, sizeof(rc->msg), "the token holds no "
		    "certificate with the CKA_ID of key '%s'", rc->key_name);
		return KEYD_ERR_NOT_FOUND;
	}
	cr->cert_der.data = tk->cert;
	cr->cert_der.len = tk->cert_len;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_CERT;
	resp->cert = cr;
	return KEYD_OK;
}

/* Raw r||s (what CKM_ECDSA returns) to a DER ECDSA-Sig-Value. */
static int
ecdsa_raw_to_der(const uint8_t *raw, size_t len, uint8_t *der, size_t *dlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = NULL, *s = NULL;
	uint8_t *p = der;
	int n, ret = KEYD_ERR_CRYPTO;

	if (sig == NULL || len % 2 != 0)
		goto out;
	r = BN_bin2bn(raw, (int)(len / 2), NULL);
	s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	if (r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s))
		goto out;
	r = s = NULL;
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > *dlen)
		goto out;
	if (i2d_ECDSA_SIG(sig, &p) != n)
		goto out;
	*dlen = (size_t)n;
	ret = KEYD_OK;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return ret;
}

static int
sign_alg_fits(enum token_key_type t, Keyd__V1__SignAlg alg)
{
	switch (alg) {
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA:
		return t == TOKEN_KEY_EC_P256 || t == TOKEN_KEY_EC_P384;
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_DIGESTINFO:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512:
		return t == TOKEN_KEY_RSA;
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519:
		return t == TOKEN_KEY_ED25519;
	default:
		return 0;
	}
}

static const char *
sign_alg_name(Keyd__V1__SignAlg alg)
{
	switch (alg) {
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA: return "ecdsa";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256:
		return "rsa-pkcs1-sha256";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384:
		return "rsa-pkcs1-sha384";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512:
		return "rsa-pkcs1-sha512";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_DIGESTINFO:
		return "rsa-pkcs1-digestinfo";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256:
		return "rsa-pss-sha256";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384:
		return "rsa-pss-sha384";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512:
		return "rsa-pss-sha512";
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519: return "ed25519";
	default: return "unknown";
	}
}

/* The client pinned the key it found under this name (pin, if set, is
 * the SHA-256 of its public key): a reload that pointed the name at
 * another key must not make it sign or decrypt with that one. */
static int
check_pin(struct req_ctx *rc, const struct token_key *tk,
    const ProtobufCBinaryData *pin)
{
	uint8_t md[32];

	if (pin->len == 0)
		return KEYD_OK;
	if (pin->len != sizeof(md) || tk->spki == NULL ||
	    EVP_Digest(tk->spki, tk->spki_len, md, NULL, EVP_sha256(),
	    NULL) != 1 || CRYPTO_memcmp(md, pin->data, sizeof(md)) != 0) {
		snprintf(rc->msg, sizeof(rc->msg), "key '%s' is not the "
		    "key the client found under that name (a reload "
		    "replaced it); look it up again", rc->key_name);
		return KEYD_ERR_UNKNOWN_KEY;
	}
	return KEYD_OK;
}

static int
handle_sign(struct req_ctx *rc, const Keyd__V1__SignRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__SignReply *sr, uint8_t *sigbuf,
    size_t sigroom)
{
	const struct token_key *tk;
	CK_MECHANISM mech = { 0, NULL, 0 };
	CK_RSA_PKCS_PSS_PARAMS pss;
	uint8_t input[128];
	const uint8_t *in = req->data.data;
	size_t inlen = req->data.len, want = 0, siglen;
	uint8_t raw[TOKEN_MAX_SIG];
	int r;

	rc->mech = sign_alg_name(req->alg);
	if ((r = check_key(rc, req->key, CONFIG_OP_SIGN)) != KEYD_OK)
		return r;
	tk = token_key(rc->d->token, (size_t)rc->key);
	if ((r = check_pin(rc, tk, &req->key_sha256)) != KEYD_OK)
		return r;
	if (req->alg == KEYD__V1__SIGN_ALG__SIGN_ALG_UNSPECIFIED ||
	    strcmp(rc->mech, "unknown") == 0) {
		snprintf(rc->msg, sizeof(rc->msg), "unknown signature "
		    "algorithm %d", (int)req->alg);
		return KEYD_ERR_BAD_ALGORITHM;
	}
	if (!sign_alg_fits(tk->type, req->alg)) {
		snprintf(rc->msg, sizeof(rc->msg), "%s does not fit key '%s' "
		    "(%s)", rc->mech, rc->key_name,
		    token_key_type_name(tk->type));
		return KEYD_ERR_BAD_ALGORITHM;
	}
	switch (req->alg) {
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA:
		/* CKM_ECDSA is hash-agnostic: any digest length a TLS stack
		 * may pair with the curve. */
		if (inlen < DISPATCH_ECDSA_MIN_DIGEST ||
		    inlen > DISPATCH_ECDSA_MAX_DIGEST) {
			snprintf(rc->msg, sizeof(rc->msg), "an ECDSA digest is "
			    "%d to %d bytes, not %zu", DISPATCH_ECDSA_MIN_DIGEST,
			    DISPATCH_ECDSA_MAX_DIGEST, inlen);
			return KEYD_ERR_BAD_LENGTH;
		}
		mech.mechanism = CKM_ECDSA;
		break;
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512: {
		size_t h = req->alg ==
		    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256 ? 0 :
		    req->alg == KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384 ?
		    1 : 2;

		if (inlen != digestinfos[h].hash_len) {
			snprintf(rc->msg, sizeof(rc->msg), "%s takes a %zu-byte "
			    "digest, not %zu bytes", rc->mech,
			    digestinfos[h].hash_len, inlen);
			return KEYD_ERR_BAD_LENGTH;
		}
		memcpy(input, digestinfos[h].prefix,
		    digestinfos[h].prefix_len);
		memcpy(input + digestinfos[h].prefix_len, in, inlen);
		in = input;
		inlen += digestinfos[h].prefix_len;
		mech.mechanism = CKM_RSA_PKCS;
		break;
	}
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_DIGESTINFO: {
		if (digestinfo_find(in, inlen) < 0) {
			snprintf(rc->msg, sizeof(rc->msg), "the input is not a "
			    "DER DigestInfo of SHA-256, SHA-384 or SHA-512");
			return KEYD_ERR_BAD_LENGTH;
		}
		mech.mechanism = CKM_RSA_PKCS;
		break;
	}
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512:
		if (req->alg == KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256) {
			want = 32;
			pss.hashAlg = CKM_SHA256;
			pss.mgf = CKG_MGF1_SHA256;
		} else if (req->alg ==
		    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384) {
			want = 48;
			pss.hashAlg = CKM_SHA384;
			pss.mgf = CKG_MGF1_SHA384;
		} else {
			want = 64;
			pss.hashAlg = CKM_SHA512;
			pss.mgf = CKG_MGF1_SHA512;
		}
		if (inlen != want) {
			snprintf(rc->msg, sizeof(rc->msg), "%s takes a %zu-byte "
			    "digest, not %zu bytes", rc->mech, want, inlen);
			return KEYD_ERR_BAD_LENGTH;
		}
		pss.sLen = want;
		mech.mechanism = CKM_RSA_PKCS_PSS;
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
		break;
	case KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519:
		if (inlen > DISPATCH_MAX_ED25519_MSG) {
			snprintf(rc->msg, sizeof(rc->msg), "an Ed25519 message "
			    "is at most %d bytes", DISPATCH_MAX_ED25519_MSG);
			return KEYD_ERR_BAD_LENGTH;
		}
		mech.mechanism = CKM_EDDSA;
		break;
	default:
		return KEYD_ERR_BAD_ALGORITHM;
	}

	siglen = sizeof(raw);
	r = token_sign(rc->d->token, rc->s, (size_t)rc->key, &mech, in, inlen,
	    raw, &siglen, rc->msg, sizeof(rc->msg));
	secmem_wipe(input, sizeof(input));
	if (r != KEYD_OK)
		return r;
	if (req->alg == KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA && !req->ecdsa_raw) {
		size_t dlen = sigroom;

		if ((r = ecdsa_raw_to_der(raw, siglen, sigbuf, &dlen)) !=
		    KEYD_OK) {
			snprintf(rc->msg, sizeof(rc->msg), "cannot encode the "
			    "ECDSA signature as DER");
			return r;
		}
		siglen = dlen;
	} else {
		if (siglen > sigroom)
			return KEYD_ERR_INTERNAL;
		memcpy(sigbuf, raw, siglen);
	}
	sr->signature.data = sigbuf;
	sr->signature.len = siglen;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_SIGN;
	resp->sign = sr;
	return KEYD_OK;
}

static int
handle_decrypt(struct req_ctx *rc, const Keyd__V1__DecryptRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__DecryptReply *dr, uint8_t *plain,
    size_t room)
{
	const struct token_key *tk;
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	size_t outlen = room;
	int r, pkcs1 = 0, variant = -1;

	if (req->alg == KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_PKCS1) {
		rc->mech = "rsa-pkcs1";
		pkcs1 = 1;
	} else {
		for (size_t i = 0; i < TOKEN_OAEP_N && variant < 0; i++)
			if (oaep_pb[i] == req->alg)
				variant = (int)i;
		if (variant < 0) {
			rc->mech = "unknown";
			if ((r = check_key(rc, req->key, CONFIG_OP_DECRYPT)) !=
			    KEYD_OK)
				return r;
			snprintf(rc->msg, sizeof(rc->msg), "unknown "
			    "decryption algorithm %d (keyd decrypts RSA-OAEP, "
			    "and PKCS#1 v1.5 on keys that allow it)",
			    (int)req->alg);
			return KEYD_ERR_BAD_ALGORITHM;
		}
		rc->mech = token_oaep_variants[variant].name;
		oaep.hashAlg = token_oaep_variants[variant].hash;
		oaep.mgf = token_oaep_variants[variant].mgf;
	}
	oaep.source = CKZ_DATA_SPECIFIED;
	oaep.pSourceData = NULL;
	oaep.ulSourceDataLen = 0;
	if ((r = check_key(rc, req->key, CONFIG_OP_DECRYPT)) != KEYD_OK)
		return r;
	tk = token_key(rc->d->token, (size_t)rc->key);
	if ((r = check_pin(rc, tk, &req->key_sha256)) != KEYD_OK)
		return r;
	if (tk->type != TOKEN_KEY_RSA) {
		snprintf(rc->msg, sizeof(rc->msg), "key '%s' is not an RSA key",
		    rc->key_name);
		return KEYD_ERR_BAD_ALGORITHM;
	}
	if (req->ciphertext.len != (tk->bits + 7) / 8) {
		snprintf(rc->msg, sizeof(rc->msg), "an RSA-%u ciphertext is %u "
		    "bytes, not %zu", tk->bits, (tk->bits + 7) / 8,
		    req->ciphertext.len);
		return KEYD_ERR_BAD_LENGTH;
	}
	if (pkcs1) {
		/* Never the token's CKM_RSA_PKCS: its error for a bad padding
		 * is a padding oracle. Raw RSA and implicit rejection in
		 * rsa_ir, for keys that opted in, answer every ciphertext of
		 * the right length and range alike. */
		if (!rc->d->cfg->keys[rc->key].pkcs1_decrypt) {
			snprintf(rc->msg, sizeof(rc->msg), "key '%s' does not "
			    "allow RSA PKCS#1 v1.5 decryption (use rsa-oaep-*, "
			    "or set pkcs1_decrypt = implicit-rejection in its "
			    "[key] section)", rc->key_name);
			return KEYD_ERR_DENIED;
		}
		r = rc->d->ir != NULL ? rsa_ir_decrypt_in(rc->d->ir,
		    rc->d->token, rc->s, (size_t)rc->key,
		    req->ciphertext.data, req->ciphertext.len, plain, room,
		    &outlen, rc->msg, sizeof(rc->msg)) :
		    rsa_ir_decrypt(rc->d->token, rc->s, (size_t)rc->key,
		    req->ciphertext.data, req->ciphertext.len, plain, room,
		    &outlen, rc->msg, sizeof(rc->msg));
		if (r != KEYD_OK)
			return r;
		goto reply;
	}
	if (!(tk->oaep_hashes & token_oaep_variants[variant].bit)) {
		char have[96];

		token_oaep_names(tk->oaep_hashes, have, sizeof(have));
		if (have[0] != '\0')
			snprintf(rc->msg, sizeof(rc->msg), "keyd offers %s for "
			    "key '%s', not %s (what the token decrypted with "
			    "when keyd started)", have, rc->key_name, rc->mech);
		else
			snprintf(rc->msg, sizeof(rc->msg), "keyd offers no "
			    "RSA-OAEP for key '%s' (see keyd's start-up log)",
			    rc->key_name);
		return KEYD_ERR_UNSUPPORTED;
	}
	r = token_decrypt(rc->d->token, rc->s, (size_t)rc->key, &mech,
	    req->ciphertext.data, req->ciphertext.len, plain, &outlen, rc->msg,
	    sizeof(rc->msg));
	if (r != KEYD_OK)
		return r;
reply:
	dr->plaintext.data = plain;
	dr->plaintext.len = outlen;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_DECRYPT;
	resp->decrypt = dr;
	return KEYD_OK;
}

/* Runs a reload and waits for its outcome: the configuration checked,
 * and applied or refused (keyd_main.c). This worker waits meanwhile;
 * the others serve on. */
static int
handle_reload(struct req_ctx *rc, Keyd__V1__Response *resp,
    Keyd__V1__ReloadReply *rr, char *hash, char *summary, size_t sumlen)
{
	const struct config_client *cl = &rc->d->cfg->clients[rc->p->client];
	uint64_t gen = 0;
	int r;

	if (!(cl->ops & CONFIG_OP_RELOAD)) {
		snprintf(rc->msg, sizeof(rc->msg), "client '%s' may not reload "
		    "keyd's configuration (add reload to its ops)", cl->name);
		return KEYD_ERR_DENIED;
	}
	if (rc->d->run->reload == NULL) {
		snprintf(rc->msg, sizeof(rc->msg), "this keyd cannot reload");
		return KEYD_ERR_UNSUPPORTED;
	}
	r = rc->d->run->reload(rc->d->run->reload_arg, hash, &gen, summary,
	    sumlen, rc->msg, sizeof(rc->msg));
	if (r != KEYD_OK)
		return r;
	rr->config_sha256 = hash;
	rr->config_generation = gen;
	rr->summary = summary;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_RELOAD;
	resp->reload = rr;
	return KEYD_OK;
}

static int
handle_status(struct req_ctx *rc, Keyd__V1__Response *resp, struct kbuf *out)
{
	struct dispatch *d = rc->d;
	const struct config *cfg = d->cfg;
	const struct config_client *cl = &cfg->clients[rc->p->client];
	int all = (cl->ops & CONFIG_OP_STATUS) != 0;
	Keyd__V1__StatusReply sr = KEYD__V1__STATUS_REPLY__INIT;
	Keyd__V1__TokenStatus ts[2], *tsp[2];
	Keyd__V1__KeyStatus *ks = NULL, **ksp = NULL;
	Keyd__V1__OpCounters *oc = NULL, **ocp = NULL;
	struct token_info ti[2];
	struct timespec now;
	char *warns = NULL;
	time_t wall = time(NULL);
	size_t nk = 0, i, j;
	int r = KEYD_ERR_NOMEM;

	if (cfg->n_keys > 0) {
		warns = calloc(cfg->n_keys, DISPATCH_WARN_MAX);
		if (warns == NULL)
			goto out;
		ks = calloc(cfg->n_keys, sizeof(*ks));
		ksp = calloc(cfg->n_keys, sizeof(*ksp));
		oc = calloc(cfg->n_keys * DISPATCH_NOPS, sizeof(*oc));
		ocp = calloc(cfg->n_keys * DISPATCH_NOPS, sizeof(*ocp));
		if (ks == NULL || ksp == NULL || oc == NULL || ocp == NULL)
			goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	sr.n_tokens = token_count(d->token);
	for (j = 0; j < sr.n_tokens && j < 2; j++) {
		keyd__v1__token_status__init(&ts[j]);
		tsp[j] = &ts[j];
		token_get_info(d->token, j, &ti[j]);
		ts[j].label = ti[j].label;
		ts[j].manufacturer = ti[j].manufacturer;
		ts[j].model = ti[j].model;
		ts[j].serial = ti[j].serial;
		ts[j].logged_in = ti[j].logged_in;
		ts[j].recoveries = ti[j].recoveries;
		ts[j].role = (char *)ti[j].role;
		ts[j].state = (char *)ti[j].state;
		ts[j].active = ti[j].active;
		ts[j].key_copies = ti[j].key_copies;
	}
	sr.uptime_s = (uint64_t)(now.tv_sec - d->run->started.tv_sec);
	sr.config_sha256 = d->sha256;
	sr.config_applied_unix = (uint64_t)d->applied;
	sr.config_generation = d->generation;
	sr.daemon_version = (char *)KEYD_VERSION;
	sr.tokens = tsp;
	sr.connections = atomic_load(&d->run->connections);
	sr.requests = atomic_load(&d->run->requests);
	sr.errors = atomic_load(&d->run->errors);
	sr.syslog_dropped = audit_syslog_dropped(d->audit);
	for (i = 0; i < cfg->n_keys; i++) {
		uint64_t lat = 0;

		if (!all && !policy_client_has_key(cfg, rc->p->client, i))
			continue;
		keyd__v1__key_status__init(&ks[nk]);
		ks[nk].name = cfg->keys[i].name;
		ks[nk].weak_extractable =
		    token_key(d->token, i)->weak_extractable;
		ks[nk].ops = ocp + nk * DISPATCH_NOPS;
		for (j = 0; j < DISPATCH_NOPS; j++) {
			struct dispatch_counter *c =
			    &d->counters[i * DISPATCH_NOPS + j];
			Keyd__V1__OpCounters *o = &oc[nk * DISPATCH_NOPS + j];

			if (!(cfg->keys[i].ops & (1u << j)))
				continue;
			keyd__v1__op_counters__init(o);
			o->op = (Keyd__V1__Op)(j + 1);
			o->ok = atomic_load(&c->ok);
			o->errors = atomic_load(&c->errors);
			lat += atomic_load(&c->latency_us);
			ks[nk].ops[ks[nk].n_ops++] = o;
		}
		ks[nk].latency_us_total = lat;
		srtp_key_status(d->srtp, i, &ks[nk]);
		shaken_key_status(d->shaken, i, wall, &ks[nk],
		    warns + nk * DISPATCH_WARN_MAX, DISPATCH_WARN_MAX);
		ksp[nk] = &ks[nk];
		nk++;
	}
	sr.n_keys = nk;
	sr.keys = ksp;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_STATUS;
	resp->status = &sr;
	r = frame_put_msg(out, &resp->base, FRAME_MAX_CEILING);
out:
	free(warns);
	free(ks);
	free(ksp);
	free(oc);
	free(ocp);
	return r;
}

/* srtp-new and srtp-open: the policy here, the handlers in srtp.c. The
 * audit's mech names the suite and the KEK version, never the key. */
static int
handle_srtp(struct req_ctx *rc, const Keyd__V1__Request *req,
    Keyd__V1__Response *resp, struct srtp_result *res)
{
	int is_new = req->op_case == KEYD__V1__REQUEST__OP_SRTP_NEW;
	int r;

	rc->mech = is_new ? srtp_suite_name(req->srtp_new->suite) : "unknown";
	if ((r = check_key(rc, is_new ? req->srtp_new->key :
	    req->srtp_open->key, rc->op_bit)) != KEYD_OK)
		return r;
	if (is_new)
		r = handle_srtp_new(rc->d->srtp, rc->d->token, rc->s,
		    (size_t)rc->key, req->srtp_new, resp, res, rc->msg,
		    sizeof(rc->msg));
	else
		r = handle_srtp_open(rc->d->srtp, rc->d->token, rc->s,
		    (size_t)rc->key, req->srtp_open, resp, res, rc->msg,
		    sizeof(rc->msg));
	rc->mech = res->mech;
	return r;
}

/* What the audit line of a passport request carries: its claims, the TNs
 * in clear or as HMAC-SHA256 (audit_tn). */
struct passport_audit {
	const char *ppt;
	const char *attest;
	const char *orig;
	const char *div;
	const char *dest[SHAKEN_MAX_DEST];
	size_t n_dest;
	const char *origid;
};

/* HMAC-SHA256 hex of each TN of pa (audit_tn = hmac), into pa's own
 * buffers; pa's TN pointers then point there. */
struct passport_audit_hmac {
	char orig[2 * TOKEN_HMAC_LEN + 1];
	char div[2 * TOKEN_HMAC_LEN + 1];
	char dest[SHAKEN_MAX_DEST][2 * TOKEN_HMAC_LEN + 1];
};

static int
tn_hmac(struct req_ctx *rc, const char *tn, char *hex, char *msg,
    size_t msglen)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t mac[TOKEN_HMAC_LEN];
	int r;

	r = token_hmac_sha256(rc->d->token, rc->s, (const uint8_t *)tn,
	    strlen(tn), mac, msg, msglen);
	if (r != KEYD_OK)
		return r;
	for (size_t i = 0; i < TOKEN_HMAC_LEN; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[2 * TOKEN_HMAC_LEN] = '\0';
	return KEYD_OK;
}

/* audit_tn = hmac: replaces the TNs of pa by their HMACs. On failure
 * no TN is left in pa, and the caller refuses the request: its audit
 * line cannot be written as configured. */
static int
passport_audit_hmac(struct req_ctx *rc, struct passport_audit *pa,
    struct passport_audit_hmac *h, char *msg, size_t msglen)
{
	int r = KEYD_OK;

	if (pa->orig != NULL && (r = tn_hmac(rc, pa->orig, h->orig, msg,
	    msglen)) == KEYD_OK)
		pa->orig = h->orig;
	if (r == KEYD_OK && pa->div != NULL && (r = tn_hmac(rc, pa->div,
	    h->div, msg, msglen)) == KEYD_OK)
		pa->div = h->div;
	for (size_t i = 0; r == KEYD_OK && i < pa->n_dest; i++)
		if ((r = tn_hmac(rc, pa->dest[i], h->dest[i], msg, msglen)) ==
		    KEYD_OK)
			pa->dest[i] = h->dest[i];
	if (r != KEYD_OK) {
		pa->orig = pa->div = NULL;
		pa->n_dest = 0;
	}
	return r;
}

/* The claims of cl into pa, for the audit line (pointing into cl). */
static void
passport_audit_set(struct passport_audit *pa, const struct shaken_claims *cl)
{
	pa->ppt = cl->is_div ? "div" : "shaken";
	pa->attest = cl->attest[0] != '\0' ? cl->attest : NULL;
	pa->orig = cl->orig;
	pa->div = cl->is_div ? cl->div : NULL;
	for (size_t i = 0; i < cl->n_dest; i++)
		pa->dest[i] = cl->dest[i];
	pa->n_dest = cl->n_dest;
	pa->origid = cl->origid[0] != '\0' ? cl->origid : NULL;
}

/*
 * passport: the key policy (check_key), the request's form (shaken_parse),
 * the certificate's validity, the client's attest_max and orig_tns
 * (policy_passport), the certificate's TNAuthList, then the PASSporT made
 * and signed (shaken_sign). Each refusal's message starts with the rule
 * that refused.
 */
static int
handle_passport(struct req_ctx *rc, const Keyd__V1__PassportRequest *req,
    Keyd__V1__Response *resp, Keyd__V1__PassportReply *pr,
    struct shaken_result *res, struct passport_audit *pa)
{
	struct shaken_claims *cl = &res->claims;
	time_t now;
	int r;

	rc->mech = "es256";
	if ((r = check_key(rc, req->key, CONFIG_OP_PASSPORT)) != KEYD_OK)
		return r;
	if ((r = shaken_parse(req, cl, rc->msg, sizeof(rc->msg))) != KEYD_OK)
		return r;
	passport_audit_set(pa, cl);
	now = time(NULL);
	if ((r = shaken_check_cert(rc->d->shaken, (size_t)rc->key, now, cl,
	    rc->msg, sizeof(rc->msg))) == KEYD_ERR_CERTIFICATE)
		return r;
	/* The client's policy before the certificate's TNAuthList: a
	 * client over its own numbers is told about those first. */
	if ((r = policy_passport(rc->d->cfg, rc->p->client, cl->is_div ? 0 :
	    cl->attest[0], cl->is_div ? cl->div : cl->orig, rc->msg,
	    sizeof(rc->msg))) != KEYD_OK)
		return r;
	if ((r = shaken_check_cert(rc->d->shaken, (size_t)rc->key, now, cl,
	    rc->msg, sizeof(rc->msg))) != KEYD_OK)
		return r;
	if ((r = shaken_sign(rc->d->shaken, rc->d->token, rc->s,
	    (size_t)rc->key, now, cl, res, rc->msg, sizeof(rc->msg))) !=
	    KEYD_OK)
		return r;
	passport_audit_set(pa, &res->claims);
	pr->jws = res->jws;
	pr->identity = res->identity;
	pr->origid = res->claims.origid;
	pr->iat = res->claims.iat;
	resp->result_case = KEYD__V1__RESPONSE__RESULT_PASSPORT;
	resp->passport = pr;
	return KEYD_OK;
}

static uint64_t
elapsed_us(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000);
}

int
dispatch_request(struct dispatch *d, struct token_session *s,
    const struct dispatch_peer *p, const uint8_t *body, size_t len,
    struct kbuf *out)
{
	Keyd__V1__Request *req = NULL;
	Keyd__V1__Response resp = KEYD__V1__RESPONSE__INIT;
	Keyd__V1__HelloReply hr = KEYD__V1__HELLO_REPLY__INIT;
	Keyd__V1__PubkeyReply pr = KEYD__V1__PUBKEY_REPLY__INIT;
	Keyd__V1__SignReply sr = KEYD__V1__SIGN_REPLY__INIT;
	Keyd__V1__DecryptReply dr = KEYD__V1__DECRYPT_REPLY__INIT;
	Keyd__V1__CertReply cr = KEYD__V1__CERT_REPLY__INIT;
	Keyd__V1__PassportReply ppr = KEYD__V1__PASSPORT_REPLY__INIT;
	Keyd__V1__ReloadReply rlr = KEYD__V1__RELOAD_REPLY__INIT;
	char rl_hash[65] = "", rl_summary[1024] = "";
	struct shaken_result *ppres = NULL;
	struct passport_audit pa;
	struct passport_audit_hmac pah;
	Keyd__V1__Op hello_ops[DISPATCH_NCLIENT_OPS];
	char **hello_keys = NULL;
	uint8_t sigbuf[TOKEN_MAX_SIG + 16];
	struct dispatch_scratch *scratch = NULL;
	uint8_t *plain = NULL;
	struct srtp_result *srtp_res = NULL;
	struct req_ctx rc;
	struct audit_record ar;
	struct timespec t0;
	size_t before = kbuf_avail(out);
	int r, ar_r, sent = 0, protocol_error = 0, limited;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&rc, 0, sizeof(rc));
	memset(&pa, 0, sizeof(pa));
	rc.d = d;
	rc.s = s;
	rc.p = p;
	rc.key = -1;
	atomic_fetch_add(&d->run->requests, 1);

	/* Every frame takes a token, hello and frames that do not decode
	 * too: each is an audit line, and a client must not write the log
	 * faster than its rate (a free hello filled a disk at 20,000 lines
	 * a second and then refused every client with KEYD_ERR_AUDIT). A
	 * frame over the limit is refused and its line folded. */
	limited = p->limiter != NULL && !policy_limiter_take(p->limiter);
	if (frame_unpack_request(body, len, &req) != KEYD_OK) {
		rc.op = "invalid";
		snprintf(rc.msg, sizeof(rc.msg), "the frame is not a keyd "
		    "Request message");
		r = KEYD_ERR_PROTOCOL;
		protocol_error = 1;
		goto reply;
	}
	resp.id = req->id;
	if (limited) {
		rc.op = "rate-limited";
		snprintf(rc.msg, sizeof(rc.msg), "client '%s' is over its rate "
		    "limit", d->cfg->clients[p->client].name);
		r = KEYD_ERR_RATE_LIMITED;
		goto reply;
	}
	switch (req->op_case) {
	case KEYD__V1__REQUEST__OP_HELLO:
		rc.op = "hello";
		hello_keys = calloc(d->cfg->clients[p->client].n_keys + 1,
		    sizeof(*hello_keys));
		r = hello_keys == NULL ? KEYD_ERR_NOMEM : handle_hello(&rc,
		    req->hello, &resp, &hr, hello_ops, hello_keys);
		break;
	case KEYD__V1__REQUEST__OP_LIST:
		rc.op = "list";
		r = handle_list(&rc, &resp, out);
		sent = r == KEYD_OK;
		break;
	case KEYD__V1__REQUEST__OP_PUBKEY:
		rc.op = "pubkey";
		r = handle_pubkey(&rc, req->pubkey, &resp, &pr);
		break;
	case KEYD__V1__REQUEST__OP_SIGN:
		rc.op = "sign";
		rc.op_bit = CONFIG_OP_SIGN;
		r = handle_sign(&rc, req->sign, &resp, &sr, sigbuf,
		    sizeof(sigbuf));
		break;
	case KEYD__V1__REQUEST__OP_DECRYPT:
		rc.op = "decrypt";
		rc.op_bit = CONFIG_OP_DECRYPT;
		if ((scratch = scratch_get()) == NULL) {
			r = KEYD_ERR_NOMEM;
			break;
		}
		plain = scratch->plain;
		r = handle_decrypt(&rc, req->decrypt, &resp, &dr, plain,
		    DISPATCH_MAX_DECRYPT);
		break;
	case KEYD__V1__REQUEST__OP_SRTP_NEW:
	case KEYD__V1__REQUEST__OP_SRTP_OPEN:
		if (req->op_case == KEYD__V1__REQUEST__OP_SRTP_NEW) {
			rc.op = "srtp-new";
			rc.op_bit = CONFIG_OP_SRTP_NEW;
		} else {
			rc.op = "srtp-open";
			rc.op_bit = CONFIG_OP_SRTP_OPEN;
		}
		if ((scratch = scratch_get()) == NULL) {
			r = KEYD_ERR_NOMEM;
			break;
		}
		srtp_res = &scratch->srtp;
		r = handle_srtp(&rc, req, &resp, srtp_res);
		break;
	case KEYD__V1__REQUEST__OP_CERT:
		rc.op = "cert";
		r = handle_cert(&rc, req->cert, &resp, &cr);
		break;
	case KEYD__V1__REQUEST__OP_PASSPORT:
		rc.op = "passport";
		rc.op_bit = CONFIG_OP_PASSPORT;
		if ((ppres = malloc(sizeof(*ppres))) == NULL) {
			r = KEYD_ERR_NOMEM;
			break;
		}
		r = handle_passport(&rc, req->passport, &resp, &ppr, ppres,
		    &pa);
		break;
	case KEYD__V1__REQUEST__OP_RELOAD:
		rc.op = "reload";
		r = handle_reload(&rc, &resp, &rlr, rl_hash, rl_summary,
		    sizeof(rl_summary));
		break;
	case KEYD__V1__REQUEST__OP_STATUS:
		rc.op = "status";
		r = handle_status(&rc, &resp, out);
		sent = r == KEYD_OK;
		break;
	default:
		rc.op = "unknown";
		snprintf(rc.msg, sizeof(rc.msg), "the request holds no "
		    "operation this keyd knows (protocol version %d)",
		    KEYD_PROTOCOL_VERSION);
		r = KEYD_ERR_UNKNOWN_OP;
		break;
	}

reply:
	/* TNs are personal data: with audit_tn = hmac only their HMACs
	 * reach the audit log. If the token cannot make them, the request
	 * is refused (its line is written without TNs). */
	if (pa.orig != NULL && d->cfg->audit_tn == CONFIG_AUDIT_TN_HMAC) {
		char hmsg[DISPATCH_MSG_MAX];
		int hmr = passport_audit_hmac(&rc, &pa, &pah, hmsg,
		    sizeof(hmsg));

		if (hmr != KEYD_OK) {
			if (r == KEYD_OK && sent)
				kbuf_unreserve(out, kbuf_avail(out) - before);
			sent = 0;
			r = KEYD_ERR_AUDIT;
			snprintf(rc.msg, sizeof(rc.msg), "audit_tn: cannot make "
			    "the HMAC of the PASSporT's TNs for the audit log "
			    "(%.120s); request refused", hmsg);
		}
	}
	if (rc.key >= 0 && rc.op_bit != 0) {
		struct dispatch_counter *c = &d->counters[(size_t)rc.key *
		    DISPATCH_NOPS + (size_t)op_index(rc.op_bit)];

		if (r == KEYD_OK) {
			atomic_fetch_add(&c->ok, 1);
			atomic_fetch_add(&c->latency_us, elapsed_us(&t0));
		} else {
			atomic_fetch_add(&c->errors, 1);
		}
	}
	if (r != KEYD_OK)
		atomic_fetch_add(&d->run->errors, 1);

	/* Audit before the reply is released: if the line cannot be
	 * written, the client gets a refusal instead of the result. */
	memset(&ar, 0, sizeof(ar));
	ar.event = "request";
	ar.client = d->cfg->clients[p->client].name;
	ar.has_peer = 1;
	ar.uid = p->cred.uid;
	ar.gid = p->cred.gid;
	ar.pid = p->cred.pid;
	ar.op = rc.op;
	ar.key = rc.key_name;
	ar.mech = rc.mech;
	ar.result = r;
	ar.detail = r != KEYD_OK ? rc.msg : NULL;
	ar.ppt = pa.ppt;
	ar.attest = pa.attest;
	ar.orig = pa.orig;
	ar.div = pa.div;
	ar.dest = pa.dest;
	ar.n_dest = pa.n_dest;
	ar.origid = pa.origid;
	if (r == KEYD_OK && req != NULL &&
	    req->op_case == KEYD__V1__REQUEST__OP_HELLO &&
	    req->hello->client_version != NULL &&
	    req->hello->client_version[0] != '\0') {
		/* The client's own words, bounded at a character boundary;
		 * the audit log escapes them and replaces bytes that are not
		 * UTF-8. */
		snprintf(rc.msg, sizeof(rc.msg), "client version %.*s",
		    utf8_cut(req->hello->client_version, DISPATCH_ECHO_MAX),
		    req->hello->client_version);
		ar.detail = rc.msg;
	}
	ar.latency_us = elapsed_us(&t0);
	ar.request_bytes = len;
	ar.aggregate = limited || r == KEYD_ERR_DENIED ||
	    r == KEYD_ERR_RATE_LIMITED;
	if (!sent) {
		if (r == KEYD_OK)
			ar.reply_bytes = protobuf_c_message_get_packed_size(
			    &resp.base);
	} else {
		ar.reply_bytes = kbuf_avail(out) - before;
	}
	ar_r = audit_write(d->audit, &ar);
	if (ar_r != KEYD_OK) {
		if (sent)
			kbuf_unreserve(out, kbuf_avail(out) - before);
		sent = 0;
		r = ar_r;
		snprintf(rc.msg, sizeof(rc.msg), "the audit log cannot be "
		    "written; keyd refuses requests until it can");
	}
	if (!sent) {
		if (r == KEYD_OK) {
			r = frame_put_msg(out, &resp.base, FRAME_MAX_CEILING);
			if (r != KEYD_OK)
				r = dispatch_error_reply(out, resp.id, r,
				    "the reply is too large");
		} else {
			r = dispatch_error_reply(out, resp.id, r,
			    rc.msg[0] ? rc.msg : keyd_strerror(r));
		}
	} else {
		r = KEYD_OK;
	}
	secmem_wipe(sigbuf, sizeof(sigbuf));
	/* The reply frame (in out, locked) holds its own copy by now, and the
	 * audit line has read rc.mech out of srtp_res. The whole region the
	 * request was given, not just the plaintext's length: a token may
	 * have used all the room it was offered. */
	secmem_wipe(plain, DISPATCH_MAX_DECRYPT);
	secmem_wipe(srtp_res, sizeof(*srtp_res));
	free(hello_keys);
	free(ppres);
	frame_free_request(req);
	if (protocol_error)
		return KEYD_ERR_PROTOCOL;
	return r;
}
