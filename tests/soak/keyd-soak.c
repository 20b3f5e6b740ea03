/*
 * keyd-soak: one client process of the soak (tests/soak/run-soak.sh).
 *
 * For --seconds it sends one keyd a seeded-random mix of requests over a
 * libkeyd connection, and checks every result:
 *   - ECDSA P-256 signatures (SHA-256/384/512 digests, DER and r||s) and
 *     RSA-2048 PKCS#1 v1.5 and PSS signatures are verified with OpenSSL
 *     against the public key keyd served at start-up (and, with --pubdir,
 *     that key must be the one pkcs11-tool read from the token);
 *   - RSA-OAEP: OpenSSL encrypts a random plaintext to that public key,
 *     keyd must decrypt it to the same bytes;
 *   - srtp-new then srtp-open on the blob must give back the same suite,
 *     key, salt and key-params; blobs made earlier (kept as a hash of
 *     what they hold, never the key) must still open the same;
 *   - pubkey must stay byte for byte what it was; list must name the
 *     keys with their types; status must parse and its request counter
 *     must never go back;
 *   - refusals keyd must give (an unknown key, a blob under the wrong
 *     context, a corrupted ciphertext) must be exactly those errors;
 *   - with --ed25519, Ed25519 signatures of random messages too;
 *   - every so often the connection is closed and opened again.
 * One signature in SOAK_TAMPER_EVERY is also checked to fail on a
 * changed digest, so that a verifier that accepts anything is noticed.
 *
 * Any error or wrong result is counted and printed on stderr (the first
 * SOAK_SHOWN_ERRORS of them); nothing secret is printed: no key, salt,
 * plaintext or PIN. At the end it prints its counts on stdout, one
 * "key=value" line per operation and per request kind as keyd's audit
 * log names them, and exits 1 if there was any error (2: usage).
 *
 * The keys are named as run-soak.sh names them on the token and in
 * keyd.conf: "ec" (P-256, sign), "rsa" (RSA-2048, sign and decrypt),
 * "kek" (AES-256, srtp-new and srtp-open) and, with --ed25519, "ed"
 * (Ed25519, sign).
 *
 * A soak program, never a test registered with ctest: it runs for
 * minutes (STYLE.md: no timed runs in the test suite).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "keyd.h"

#define SOAK_MAX_SECONDS 86400
#define SOAK_MAX_MSG 2048            /* random messages: 1 to this many bytes */
#define SOAK_SHOWN_ERRORS 20         /* errors printed; the rest are counted */
#define SOAK_SRTP_RING 16            /* earlier blobs kept to open again */
#define SOAK_SRTP_MAX_CONTEXT 64     /* the contexts this client makes */
#define SOAK_TAMPER_EVERY 16         /* signatures also checked on a bad digest */
#define SOAK_RSA_BYTES 256           /* RSA-2048 */
#define SOAK_OAEP_SHA1_MAX (SOAK_RSA_BYTES - 2 * 20 - 2)
#define SOAK_RECONNECT_MIN 20        /* ops between reconnects, default range */
#define SOAK_RECONNECT_MAX 400
#define SOAK_CONNECT_RETRY_US 100000 /* pause after a failed keyd_connect */
#define SOAK_PATH_MAX 4096

#define KEY_EC "ec"
#define KEY_RSA "rsa"
#define KEY_KEK "kek"
#define KEY_ED "ed"
#define KEY_NONE "soak-no-such-key"

enum op {
	OP_ECDSA, OP_RSA_PKCS1, OP_RSA_PSS, OP_OAEP, OP_SRTP, OP_SRTP_OLD,
	OP_PUBKEY, OP_STATUS, OP_LIST, OP_REFUSAL, OP_ED25519, OP_RECONNECT,
	OP_N
};
static const char *const op_names[OP_N] = {
	"ecdsa-p256", "rsa2048-pkcs1", "rsa2048-pss", "rsa2048-oaep",
	"srtp-new+open", "srtp-open-old", "pubkey", "status", "list",
	"refusal", "ed25519", "reconnect"
};
/* Relative weights of the random choice; reconnects are scheduled apart.
 * RSA costs the token about 20 times what ECDSA does, hence fewer. */
static const unsigned op_weight[OP_N] = {
	30, 8, 8, 8, 20, 6, 5, 3, 2, 3, 20, 0
};

/* Requests by the names keyd's audit log gives them (the "op" field),
 * for run-soak.sh to compare with the log. */
enum req {
	R_HELLO, R_LIST, R_PUBKEY, R_SIGN, R_DECRYPT, R_SRTP_NEW, R_SRTP_OPEN,
	R_STATUS, R_N
};
static const char *const req_names[R_N] = {
	"hello", "list", "pubkey", "sign", "decrypt", "srtp-new", "srtp-open",
	"status"
};

/* A blob made earlier, with a hash of what it opens to: the key itself is
 * not kept. */
struct srtp_old {
	uint8_t blob[KEYD_SRTP_MAX_BLOB];
	size_t blob_len;
	char ctx[SOAK_SRTP_MAX_CONTEXT];
	size_t ctx_len;
	int suite;
	uint8_t hash[SHA256_DIGEST_LENGTH];
};

struct pub {
	const char *name;
	const char *type;         /* as keyd_keylist_type names it */
	unsigned bits;
	EVP_PKEY *pkey;           /* from keyd's pubkey at start-up */
	uint8_t *der;
	size_t der_len;
};

static struct {
	const char *socket;
	const char *id;
	const char *pubdir;
	double seconds;
	uint64_t seed;
	int ed25519;
	unsigned reconnect_min, reconnect_max;

	struct keyd_client *c;
	uint64_t rng;
	struct pub ec, rsa, ed;
	struct srtp_old ring[SOAK_SRTP_RING];
	size_t ring_n, ring_next;
	uint64_t last_requests;   /* keyd's request counter, from status */
	unsigned long sigs;       /* signatures checked, for the tamper check */

	unsigned long ok[OP_N], err[OP_N];
	double max_ms[OP_N];
	unsigned long req[R_N];
	unsigned long shown;
} S;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "keyd-soak[%s]: ", S.id != NULL ? S.id : "?");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* An error in op: counted by the caller (the op returns -1), printed
 * here while fewer than SOAK_SHOWN_ERRORS have been. */
static int __attribute__((format(printf, 2, 3)))
fail(enum op op, const char *fmt, ...)
{
	va_list ap;

	if (S.shown++ < SOAK_SHOWN_ERRORS) {
		fprintf(stderr, "keyd-soak[%s]: error: %s: ", S.id, op_names[op]);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
		if (S.shown == SOAK_SHOWN_ERRORS)
			fprintf(stderr, "keyd-soak[%s]: further errors are "
			    "counted, not shown\n", S.id);
	}
	return -1;
}

/* A failed libkeyd call: keyd's own message (never a secret: keyd puts
 * none in its messages) or libkeyd's. */
static int
fail_call(enum op op, const char *what, int r)
{
	return fail(op, "%s: %s: %s", what, keyd_strerror(r),
	    keyd_errmsg(S.c));
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the seeded generator (splitmix64): test data and choices, never
 * keys; the same seed gives the same sequence of requests ---- */

static uint64_t
rnd64(void)
{
	uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t
rnd_below(uint64_t n)
{
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;

	while ((x = rnd64()) >= lim)
		;
	return x % n;
}

static void
rnd_fill(uint8_t *p, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			x = rnd64();
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

/* A random message of 1 to SOAK_MAX_MSG bytes in msg; returns its
 * length. */
static size_t
rnd_msg(uint8_t msg[SOAK_MAX_MSG])
{
	size_t n = 1 + (size_t)rnd_below(SOAK_MAX_MSG);

	rnd_fill(msg, n);
	return n;
}

/* ---- OpenSSL checks ---- */

static const EVP_MD *
md_of_len(size_t len)
{
	switch (len) {
	case 32: return EVP_sha256();
	case 48: return EVP_sha384();
	case 64: return EVP_sha512();
	}
	return NULL;
}

/* 1 if sig verifies over the digest dgst under pk with padding pad
 * (0 for EC), else 0. With PSS: MGF1 with the digest's hash, salt the
 * digest's length, as keyd's KEYD_RSA_PSS_* are. */
static int
verify_digest(EVP_PKEY *pk, int pad, const uint8_t *dgst, size_t dlen,
    const uint8_t *sig, size_t slen)
{
	const EVP_MD *md = md_of_len(dlen);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
	int ok;

	ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1;
	if (ok && pad != 0)
		ok = md != NULL && EVP_PKEY_CTX_set_rsa_padding(ctx, pad) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
	if (ok && pad == RSA_PKCS1_PSS_PADDING)
		ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    RSA_PSS_SALTLEN_DIGEST) == 1 &&
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1;
	ok = ok && EVP_PKEY_verify(ctx, sig, slen, dgst, dlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* 1 if the Ed25519 signature sig verifies over msg under pk, else 0. */
static int
verify_ed25519(EVP_PKEY *pk, const uint8_t *msg, size_t mlen,
    const uint8_t *sig, size_t slen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok;

	ok = m != NULL && EVP_DigestVerifyInit(m, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestVerify(m, sig, slen, msg, mlen) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

/* r||s (2 * 32 bytes) to DER in der (at most *len bytes); 0 or -1. */
static int
ecdsa_raw_to_der(const uint8_t *raw, size_t rawlen, uint8_t *der,
    size_t *len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *p = der;
	int n, rc = -1;

	if (es == NULL || rawlen != 64)
		goto out;
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL;  /* es owns them */
	if ((n = i2d_ECDSA_SIG(es, NULL)) <= 0 || (size_t)n > *len)
		goto out;
	if (i2d_ECDSA_SIG(es, &p) != n)
		goto out;
	*len = (size_t)n;
	rc = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

/* The tamper check of every SOAK_TAMPER_EVERY-th signature: with one bit
 * of the digest changed, the signature must not verify. */
static int
tamper_due(void)
{
	return ++S.sigs % SOAK_TAMPER_EVERY == 0;
}

/* ---- operations: each returns 0, or -1 having called fail() ---- */

static int
op_ecdsa(void)
{
	static const struct { int alg; size_t len; const char *name; } a[] = {
		{ KEYD_ECDSA_SHA256, 32, "ecdsa-sha256" },
		{ KEYD_ECDSA_SHA384, 48, "ecdsa-sha384" },
		{ KEYD_ECDSA_SHA512, 64, "ecdsa-sha512" },
		{ KEYD_ECDSA, 32, "ecdsa" },
	};
	uint8_t msg[SOAK_MAX_MSG], dgst[EVP_MAX_MD_SIZE];
	uint8_t sig[KEYD_MAX_SIGNATURE], der[128];
	size_t i = (size_t)rnd_below(4), mlen = rnd_msg(msg);
	size_t siglen = sizeof(sig), derlen = sizeof(der);
	unsigned dl = 0;
	int raw = rnd_below(4) == 0, r;

	if (EVP_Digest(msg, mlen, dgst, &dl, md_of_len(a[i].len), NULL) != 1 ||
	    dl != a[i].len)
		return fail(OP_ECDSA, "EVP_Digest failed");
	S.req[R_SIGN]++;
	if ((r = keyd_sign_ex(S.c, KEY_EC, a[i].alg, dgst, dl, sig, &siglen,
	    raw ? KEYD_SIGN_ECDSA_RAW : 0)) != KEYD_OK)
		return fail_call(OP_ECDSA, a[i].name, r);
	if (raw) {
		if (siglen != 64)
			return fail(OP_ECDSA, "%s raw: %zu bytes, not 64",
			    a[i].name, siglen);
		if (ecdsa_raw_to_der(sig, siglen, der, &derlen) != 0)
			return fail(OP_ECDSA, "%s raw: not r||s", a[i].name);
	} else {
		if (siglen > sizeof(der))
			return fail(OP_ECDSA, "%s: a %zu-byte signature",
			    a[i].name, siglen);
		memcpy(der, sig, siglen);
		derlen = siglen;
	}
	if (!verify_digest(S.ec.pkey, 0, dgst, dl, der, derlen))
		return fail(OP_ECDSA, "%s%s: the signature does not verify "
		    "under keyd's public key", a[i].name, raw ? " raw" : "");
	/* ECDSA on P-256 signs the leftmost 256 bits of a longer digest
	 * (FIPS 186-4 section 6.4): change a bit there. */
	if (tamper_due()) {
		dgst[rnd_below(32)] ^= (uint8_t)(1u << rnd_below(8));
		if (verify_digest(S.ec.pkey, 0, dgst, dl, der, derlen))
			return fail(OP_ECDSA, "%s: verifies on a changed "
			    "digest: the check is broken", a[i].name);
	}
	return 0;
}

static int
op_rsa(enum op op)
{
	static const struct { int alg; size_t len; const char *name; }
	    pkcs1[] = {
		{ KEYD_RSA_PKCS1_SHA256, 32, "rsa-pkcs1-sha256" },
		{ KEYD_RSA_PKCS1_SHA384, 48, "rsa-pkcs1-sha384" },
		{ KEYD_RSA_PKCS1_SHA512, 64, "rsa-pkcs1-sha512" },
		{ KEYD_RSA_PKCS1_DIGESTINFO, 32, "rsa-pkcs1-digestinfo" },
	}, pss[] = {
		{ KEYD_RSA_PSS_SHA256, 32, "rsa-pss-sha256" },
		{ KEYD_RSA_PSS_SHA384, 48, "rsa-pss-sha384" },
		{ KEYD_RSA_PSS_SHA512, 64, "rsa-pss-sha512" },
	};
	/* DER DigestInfo prefix of SHA-256 (RFC 8017 section 9.2, note 1). */
	static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06,
		0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
		0x05, 0x00, 0x04, 0x20 };
	int is_pss = op == OP_RSA_PSS;
	size_t i = (size_t)rnd_below(is_pss ? 3 : 4), mlen;
	int alg = is_pss ? pss[i].alg : pkcs1[i].alg;
	size_t want = is_pss ? pss[i].len : pkcs1[i].len;
	const char *name = is_pss ? pss[i].name : pkcs1[i].name;
	uint8_t msg[SOAK_MAX_MSG], dgst[EVP_MAX_MD_SIZE];
	uint8_t in[sizeof(di_sha256) + EVP_MAX_MD_SIZE];
	uint8_t sig[KEYD_MAX_SIGNATURE];
	size_t inlen, siglen = sizeof(sig);
	unsigned dl = 0;
	int r;

	mlen = rnd_msg(msg);
	if (EVP_Digest(msg, mlen, dgst, &dl, md_of_len(want), NULL) != 1 ||
	    dl != want)
		return fail(op, "EVP_Digest failed");
	if (alg == KEYD_RSA_PKCS1_DIGESTINFO) {
		memcpy(in, di_sha256, sizeof(di_sha256));
		memcpy(in + sizeof(di_sha256), dgst, 32);
		inlen = sizeof(di_sha256) + 32;
	} else {
		memcpy(in, dgst, dl);
		inlen = dl;
	}
	S.req[R_SIGN]++;
	if ((r = keyd_sign(S.c, KEY_RSA, alg, in, inlen, sig, &siglen)) !=
	    KEYD_OK)
		return fail_call(op, name, r);
	if (siglen != SOAK_RSA_BYTES)
		return fail(op, "%s: %zu bytes, not %d", name, siglen,
		    SOAK_RSA_BYTES);
	if (!verify_digest(S.rsa.pkey, is_pss ? RSA_PKCS1_PSS_PADDING :
	    RSA_PKCS1_PADDING, dgst, dl, sig, siglen))
		return fail(op, "%s: the signature does not verify under "
		    "keyd's public key", name);
	if (tamper_due()) {
		dgst[rnd_below(dl)] ^= (uint8_t)(1u << rnd_below(8));
		if (verify_digest(S.rsa.pkey, is_pss ? RSA_PKCS1_PSS_PADDING :
		    RSA_PKCS1_PADDING, dgst, dl, sig, siglen))
			return fail(op, "%s: verifies on a changed digest: "
			    "the check is broken", name);
	}
	return 0;
}

/* OAEP (SHA-1, MGF1-SHA1, no label: all SoftHSM2 does) encryption of pt
 * to keyd's RSA public key; ct holds SOAK_RSA_BYTES. 0 or -1. */
static int
oaep_encrypt(const uint8_t *pt, size_t ptlen, uint8_t *ct, size_t *ctlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(S.rsa.pkey, NULL);
	int ok;

	*ctlen = SOAK_RSA_BYTES;
	ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) == 1 &&
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha1()) == 1 &&
	    EVP_PKEY_encrypt(ctx, ct, ctlen, pt, ptlen) == 1 &&
	    *ctlen == SOAK_RSA_BYTES;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int
op_oaep(void)
{
	uint8_t pt[SOAK_OAEP_SHA1_MAX], ct[SOAK_RSA_BYTES];
	uint8_t out[SOAK_RSA_BYTES];
	size_t ptlen = 1 + (size_t)rnd_below(SOAK_OAEP_SHA1_MAX);
	size_t ctlen, outlen = sizeof(out);
	int r, rc = -1;

	rnd_fill(pt, ptlen);
	if (oaep_encrypt(pt, ptlen, ct, &ctlen) != 0) {
		fail(OP_OAEP, "OpenSSL cannot encrypt to keyd's public key");
		goto out;
	}
	S.req[R_DECRYPT]++;
	if ((r = keyd_decrypt(S.c, KEY_RSA, KEYD_RSA_OAEP_SHA1, ct, ctlen, out,
	    &outlen)) != KEYD_OK) {
		fail_call(OP_OAEP, "rsa-oaep-sha1", r);
		goto out;
	}
	if (outlen != ptlen || CRYPTO_memcmp(out, pt, ptlen) != 0) {
		fail(OP_OAEP, "rsa-oaep-sha1: the plaintext (%zu bytes) is not "
		    "the %zu bytes OpenSSL encrypted", outlen, ptlen);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(pt, sizeof(pt));
	OPENSSL_cleanse(out, sizeof(out));
	return rc;
}

/* SHA-256 of key||salt, "|" and the key-params string: what an earlier
 * blob must open to, kept instead of the key. */
static void
srtp_hash(const uint8_t *ks, size_t kslen, const char *params,
    uint8_t out[SHA256_DIGEST_LENGTH])
{
	uint8_t buf[KEYD_SRTP_MAX_KEY_SALT + 1 + KEYD_SRTP_MAX_KEY_PARAMS];
	size_t plen = strnlen(params, KEYD_SRTP_MAX_KEY_PARAMS), n = 0;

	if (kslen > KEYD_SRTP_MAX_KEY_SALT)
		kslen = KEYD_SRTP_MAX_KEY_SALT;
	memcpy(buf, ks, kslen);
	n += kslen;
	buf[n++] = '|';
	memcpy(buf + n, params, plen);
	n += plen;
	if (EVP_Digest(buf, n, out, NULL, EVP_sha256(), NULL) != 1)
		memset(out, 0, SHA256_DIGEST_LENGTH);
	OPENSSL_cleanse(buf, sizeof(buf));
}

/* A context as an SBC would bind: a Call-ID, or (one in eight) none. */
static size_t
srtp_context(char ctx[SOAK_SRTP_MAX_CONTEXT])
{
	if (rnd_below(8) == 0)
		return 0;
	return (size_t)snprintf(ctx, SOAK_SRTP_MAX_CONTEXT,
	    "%016" PRIx64 "@soak-%s.example.org", rnd64(), S.id);
}

static int
op_srtp(void)
{
	struct srtp_old *o = &S.ring[S.ring_next];
	uint8_t ks[KEYD_SRTP_MAX_KEY_SALT], ks2[KEYD_SRTP_MAX_KEY_SALT];
	char kp[KEYD_SRTP_MAX_KEY_PARAMS], kp2[KEYD_SRTP_MAX_KEY_PARAMS];
	uint8_t blob[KEYD_SRTP_MAX_BLOB];
	char ctx[SOAK_SRTP_MAX_CONTEXT];
	size_t kslen = sizeof(ks), ks2len = sizeof(ks2), bloblen = sizeof(blob);
	size_t ctxlen = srtp_context(ctx), klen, slen;
	int suite = 1 + (int)rnd_below(6), suite2 = 0, r, rc = -1;

	if (keyd_srtp_suite_lengths(suite, &klen, &slen) != KEYD_OK) {
		fail(OP_SRTP, "suite %d is unknown to libkeyd", suite);
		goto out;
	}
	S.req[R_SRTP_NEW]++;
	if ((r = keyd_srtp_new(S.c, KEY_KEK, suite, ctxlen ? ctx : NULL,
	    ctxlen, ks, &kslen, kp, sizeof(kp), blob, &bloblen)) != KEYD_OK) {
		fail_call(OP_SRTP, "srtp-new", r);
		goto out;
	}
	if (kslen != klen + slen || strncmp(kp, "inline:", 7) != 0) {
		fail(OP_SRTP, "srtp-new suite %d: %zu bytes of key and salt, "
		    "not %zu, or key-params without inline:", suite, kslen,
		    klen + slen);
		goto out;
	}
	S.req[R_SRTP_OPEN]++;
	if ((r = keyd_srtp_open(S.c, KEY_KEK, blob, bloblen, ctxlen ? ctx :
	    NULL, ctxlen, &suite2, ks2, &ks2len, kp2, sizeof(kp2))) !=
	    KEYD_OK) {
		fail_call(OP_SRTP, "srtp-open of the blob srtp-new gave", r);
		goto out;
	}
	if (suite2 != suite || ks2len != kslen ||
	    CRYPTO_memcmp(ks, ks2, kslen) != 0 || strcmp(kp, kp2) != 0) {
		fail(OP_SRTP, "srtp-open gave another suite (%d, not %d), key, "
		    "salt or key-params than srtp-new", suite2, suite);
		goto out;
	}
	/* Kept for op_srtp_old and op_refusal: the blob and a hash. */
	memcpy(o->blob, blob, bloblen);
	o->blob_len = bloblen;
	memcpy(o->ctx, ctx, ctxlen);
	o->ctx_len = ctxlen;
	o->suite = suite;
	srtp_hash(ks, kslen, kp, o->hash);
	S.ring_next = (S.ring_next + 1) % SOAK_SRTP_RING;
	if (S.ring_n < SOAK_SRTP_RING)
		S.ring_n++;
	rc = 0;
out:
	OPENSSL_cleanse(ks, sizeof(ks));
	OPENSSL_cleanse(ks2, sizeof(ks2));
	OPENSSL_cleanse(kp, sizeof(kp));
	OPENSSL_cleanse(kp2, sizeof(kp2));
	return rc;
}

/* Opens a blob made earlier, maybe on an earlier connection. */
static int
op_srtp_old(void)
{
	struct srtp_old *o;
	uint8_t ks[KEYD_SRTP_MAX_KEY_SALT], h[SHA256_DIGEST_LENGTH];
	char kp[KEYD_SRTP_MAX_KEY_PARAMS];
	size_t kslen = sizeof(ks);
	int suite = 0, r, rc = -1;

	if (S.ring_n == 0)
		return op_srtp();
	o = &S.ring[rnd_below(S.ring_n)];
	S.req[R_SRTP_OPEN]++;
	if ((r = keyd_srtp_open(S.c, KEY_KEK, o->blob, o->blob_len,
	    o->ctx_len ? o->ctx : NULL, o->ctx_len, &suite, ks, &kslen, kp,
	    sizeof(kp))) != KEYD_OK) {
		fail_call(OP_SRTP_OLD, "srtp-open of an earlier blob", r);
		goto out;
	}
	srtp_hash(ks, kslen, kp, h);
	if (suite != o->suite || CRYPTO_memcmp(h, o->hash, sizeof(h)) != 0) {
		fail(OP_SRTP_OLD, "an earlier blob opens to another suite "
		    "(%d, not %d), key, salt or key-params", suite, o->suite);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(ks, sizeof(ks));
	OPENSSL_cleanse(kp, sizeof(kp));
	return rc;
}

static int
op_pubkey(void)
{
	struct pub *keys[3] = { &S.ec, &S.rsa, &S.ed };
	struct pub *p = keys[rnd_below(S.ed25519 ? 3 : 2)];
	uint8_t *der = NULL;
	size_t len = 0;
	int r, rc = 0;

	S.req[R_PUBKEY]++;
	if ((r = keyd_pubkey(S.c, p->name, &der, &len)) != KEYD_OK)
		return fail_call(OP_PUBKEY, p->name, r);
	if (len != p->der_len || memcmp(der, p->der, len) != 0)
		rc = fail(OP_PUBKEY, "%s: keyd now serves another public key "
		    "(%zu bytes) than at start-up", p->name, len);
	keyd_free(der);
	return rc;
}

/* keyd's request counter from a status text ("..., N requests, ...", or
 * "1 request, ") or Prometheus text ("keyd_requests_total N"); -1 if
 * absent. */
static int
status_requests(const char *t, int prom, uint64_t *n)
{
	const char *p;

	if (prom) {
		if ((p = strstr(t, "\nkeyd_requests_total ")) == NULL)
			return -1;
		return sscanf(p + 21, "%" SCNu64, n) == 1 ? 0 : -1;
	}
	if ((p = strstr(t, " requests, ")) == NULL &&
	    (p = strstr(t, " request, ")) == NULL)
		return -1;
	while (p > t && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return sscanf(p, "%" SCNu64, n) == 1 ? 0 : -1;
}

static int
op_status(void)
{
	int prom = rnd_below(2) == 0, r, rc = 0;
	char *t = NULL;
	uint64_t n = 0;

	S.req[R_STATUS]++;
	if ((r = keyd_status(S.c, prom ? KEYD_STATUS_PROMETHEUS :
	    KEYD_STATUS_TEXT, &t)) != KEYD_OK)
		return fail_call(OP_STATUS, prom ? "prometheus" : "text", r);
	if (status_requests(t, prom, &n) != 0)
		rc = fail(OP_STATUS, "%s: no request counter in the reply",
		    prom ? "prometheus" : "text");
	else if (n < S.last_requests)
		rc = fail(OP_STATUS, "keyd's request counter went back from "
		    "%" PRIu64 " to %" PRIu64, S.last_requests, n);
	else if (!prom && (strstr(t, "NOT LOGGED IN") != NULL ||
	    strstr(t, "key " KEY_EC ":") == NULL))
		rc = fail(OP_STATUS, "text: the token is not logged in, or "
		    "key '" KEY_EC "' is missing");
	else if (prom && strstr(t, "keyd_key_ops_total{key=\"" KEY_EC "\"") ==
	    NULL)
		rc = fail(OP_STATUS, "prometheus: no counters of key '" KEY_EC
		    "'");
	if (rc == 0)
		S.last_requests = n;
	keyd_free(t);
	return rc;
}

/* The list must hold exactly the keys this client was given, with their
 * types and sizes. */
static int
op_list(void)
{
	struct pub *want[4] = { &S.ec, &S.rsa, &S.ed, NULL };
	struct keyd_keylist *l = NULL;
	size_t n, nwant = S.ed25519 ? 4 : 3, found = 0;
	int r, rc = 0;

	S.req[R_LIST]++;
	if ((r = keyd_list(S.c, &l)) != KEYD_OK)
		return fail_call(OP_LIST, "list", r);
	n = keyd_keylist_count(l);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = keyd_keylist_name(l, i);
		const char *type = keyd_keylist_type(l, i);
		unsigned bits = keyd_keylist_bits(l, i);

		if (!strcmp(name, KEY_KEK)) {
			if (strcmp(type, "aes") != 0 || bits != 256)
				rc = fail(OP_LIST, "key '%s' is %s, %u bits, "
				    "not aes, 256", name, type, bits);
			found++;
			continue;
		}
		for (size_t k = 0; k < 3; k++) {
			if (want[k]->name == NULL || strcmp(name,
			    want[k]->name) != 0)
				continue;
			if (strcmp(type, want[k]->type) != 0 ||
			    bits != want[k]->bits)
				rc = fail(OP_LIST, "key '%s' is %s, %u bits, "
				    "not %s, %u", name, type, bits,
				    want[k]->type, want[k]->bits);
			found++;
		}
	}
	if (rc == 0 && (found != nwant || n != nwant))
		rc = fail(OP_LIST, "%zu keys listed, %zu of the %zu expected",
		    n, found, nwant);
	keyd_keylist_free(l);
	return rc;
}

/* A request keyd must refuse, with exactly this error. Denials by policy
 * are left out on purpose: keyd's audit log folds repeated denials into
 * one line per 10 s, and run-soak.sh counts requests in it. */
static int
op_refusal(void)
{
	uint8_t dgst[32], sig[KEYD_MAX_SIGNATURE], ct[SOAK_RSA_BYTES];
	uint8_t pt[32], out[SOAK_RSA_BYTES], ks[KEYD_SRTP_MAX_KEY_SALT];
	char kp[KEYD_SRTP_MAX_KEY_PARAMS], ctx[SOAK_SRTP_MAX_CONTEXT + 1];
	size_t siglen = sizeof(sig), ctlen, outlen = sizeof(out);
	size_t kslen = sizeof(ks);
	int kind = (int)rnd_below(3), suite = 0, r, want, rc = 0;
	const char *what;
	struct srtp_old *o;

	if (kind == 2 && S.ring_n == 0)
		kind = 0;
	switch (kind) {
	case 0:
		what = "sign with a key keyd does not have";
		want = KEYD_ERR_UNKNOWN_KEY;
		rnd_fill(dgst, sizeof(dgst));
		S.req[R_SIGN]++;
		r = keyd_sign(S.c, KEY_NONE, KEYD_ECDSA_SHA256, dgst,
		    sizeof(dgst), sig, &siglen);
		break;
	case 1:
		what = "decrypt a corrupted ciphertext";
		want = KEYD_ERR_DECRYPT;
		rnd_fill(pt, sizeof(pt));
		if (oaep_encrypt(pt, sizeof(pt), ct, &ctlen) != 0)
			return fail(OP_REFUSAL, "OpenSSL cannot encrypt to "
			    "keyd's public key");
		/* One of the last 64 bytes: the changed ciphertext stays
		 * below the modulus (all but certainly), so that the
		 * refusal is OAEP's and not another one. */
		ct[ctlen - 1 - rnd_below(64)] ^= (uint8_t)(1u << rnd_below(8));
		S.req[R_DECRYPT]++;
		r = keyd_decrypt(S.c, KEY_RSA, KEYD_RSA_OAEP_SHA1, ct, ctlen,
		    out, &outlen);
		break;
	default:
		what = "srtp-open of an earlier blob under another context";
		want = KEYD_ERR_BLOB;
		o = &S.ring[rnd_below(S.ring_n)];
		memcpy(ctx, o->ctx, o->ctx_len);
		ctx[o->ctx_len] = 'x';
		S.req[R_SRTP_OPEN]++;
		r = keyd_srtp_open(S.c, KEY_KEK, o->blob, o->blob_len, ctx,
		    o->ctx_len + 1, &suite, ks, &kslen, kp, sizeof(kp));
		break;
	}
	if (r != want)
		rc = fail(OP_REFUSAL, "%s: %s (%s), not %s", what,
		    r == KEYD_OK ? "it succeeded" : keyd_strerror(r),
		    r == KEYD_OK ? "" : keyd_errmsg(S.c), keyd_strerror(want));
	OPENSSL_cleanse(pt, sizeof(pt));
	OPENSSL_cleanse(out, sizeof(out));
	OPENSSL_cleanse(ks, sizeof(ks));
	OPENSSL_cleanse(kp, sizeof(kp));
	return rc;
}

static int
op_ed25519(void)
{
	uint8_t msg[SOAK_MAX_MSG], sig[KEYD_MAX_SIGNATURE];
	size_t mlen = rnd_msg(msg), siglen = sizeof(sig);
	int r;

	S.req[R_SIGN]++;
	if ((r = keyd_sign(S.c, KEY_ED, KEYD_ED25519, msg, mlen, sig,
	    &siglen)) != KEYD_OK)
		return fail_call(OP_ED25519, "ed25519", r);
	if (siglen != 64)
		return fail(OP_ED25519, "a %zu-byte signature, not 64", siglen);
	if (!verify_ed25519(S.ed.pkey, msg, mlen, sig, siglen))
		return fail(OP_ED25519, "the signature (of %zu bytes) does not "
		    "verify under keyd's public key", mlen);
	if (tamper_due()) {
		msg[rnd_below(mlen)] ^= (uint8_t)(1u << rnd_below(8));
		if (verify_ed25519(S.ed.pkey, msg, mlen, sig, siglen))
			return fail(OP_ED25519, "verifies on a changed "
			    "message: the check is broken");
	}
	return 0;
}

/* Closes the connection (if any) and opens a new one. */
static int
op_reconnect(void)
{
	int r;

	keyd_close(S.c);
	S.c = NULL;
	S.req[R_HELLO]++;
	if ((r = keyd_connect(S.socket, &S.c)) != KEYD_OK)
		return fail(OP_RECONNECT, "keyd_connect %s: %s: %s", S.socket,
		    keyd_strerror(r), keyd_errmsg(NULL));
	return 0;
}

static int
run_op(enum op op)
{
	switch (op) {
	case OP_ECDSA: return op_ecdsa();
	case OP_RSA_PKCS1: return op_rsa(OP_RSA_PKCS1);
	case OP_RSA_PSS: return op_rsa(OP_RSA_PSS);
	case OP_OAEP: return op_oaep();
	case OP_SRTP: return op_srtp();
	case OP_SRTP_OLD: return op_srtp_old();
	case OP_PUBKEY: return op_pubkey();
	case OP_STATUS: return op_status();
	case OP_LIST: return op_list();
	case OP_REFUSAL: return op_refusal();
	case OP_ED25519: return op_ed25519();
	case OP_RECONNECT: return op_reconnect();
	case OP_N: break;
	}
	abort();
}

static void
timed_op(enum op op)
{
	double t0 = now_s(), ms;
	int rc = run_op(op);

	ms = (now_s() - t0) * 1e3;
	if (ms > S.max_ms[op])
		S.max_ms[op] = ms;
	if (rc == 0)
		S.ok[op]++;
	else
		S.err[op]++;
}

static enum op
pick_op(void)
{
	unsigned total = 0, x;
	int op;

	for (op = 0; op < OP_N; op++)
		if (op != OP_ED25519 || S.ed25519)
			total += op_weight[op];
	x = (unsigned)rnd_below(total);
	for (op = 0; op < OP_N; op++) {
		if (op == OP_ED25519 && !S.ed25519)
			continue;
		if (x < op_weight[op])
			break;
		x -= op_weight[op];
	}
	return (enum op)op;
}

/* ---- start-up: the public keys ---- */

/* The public key of p->name from keyd (kept as DER and parsed), checked
 * against DIR/NAME.pem (read from the token by pkcs11-tool or p11tool)
 * when --pubdir is given. */
static void
load_pub(struct pub *p)
{
	const unsigned char *q;
	uint8_t *der = NULL, *ref = NULL;
	char path[SOAK_PATH_MAX];
	EVP_PKEY *pem;
	FILE *fp;
	int r, n;

	S.req[R_PUBKEY]++;
	if ((r = keyd_pubkey(S.c, p->name, &der, &p->der_len)) != KEYD_OK)
		die("pubkey %s: %s: %s", p->name, keyd_strerror(r),
		    keyd_errmsg(S.c));
	if ((p->der = malloc(p->der_len)) == NULL)
		die("out of memory");
	memcpy(p->der, der, p->der_len);
	keyd_free(der);
	q = p->der;
	if ((p->pkey = d2i_PUBKEY(NULL, &q, (long)p->der_len)) == NULL ||
	    q != p->der + p->der_len)
		die("pubkey %s: keyd's answer is not a SubjectPublicKeyInfo",
		    p->name);
	if (S.pubdir == NULL)
		return;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.pem", S.pubdir,
	    p->name) >= sizeof(path))
		die("--pubdir is too long");
	if ((fp = fopen(path, "r")) == NULL)
		die("cannot open %s: %s", path, strerror(errno));
	pem = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pem == NULL || (n = i2d_PUBKEY(pem, &ref)) <= 0)
		die("%s holds no public key", path);
	if ((size_t)n != p->der_len || memcmp(ref, p->der, p->der_len) != 0)
		die("keyd's public key of '%s' is not %s (read from the token)",
		    p->name, path);
	OPENSSL_free(ref);
	EVP_PKEY_free(pem);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: keyd-soak --socket PATH --seconds D [--seed N] [--ed25519]\n"
	    "         [--id NAME] [--pubdir DIR] [--reconnect MIN,MAX]\n"
	    "Sends keyd a seeded-random mix of requests for D seconds and\n"
	    "checks every result. Keys: 'ec' (P-256), 'rsa' (RSA-2048, sign\n"
	    "and decrypt), 'kek' (AES-256 SRTP KEK) and with --ed25519 'ed'.\n"
	    "--pubdir: DIR/ec.pem, rsa.pem (ed.pem) read from the token, which\n"
	    "keyd's public keys must equal. --reconnect: a new connection\n"
	    "every MIN to MAX operations (default %d,%d). Prints its counts;\n"
	    "exits 1 on any error. tests/soak/run-soak.sh runs it.\n",
	    SOAK_RECONNECT_MIN, SOAK_RECONNECT_MAX);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'D' },
		{ "seed", required_argument, NULL, 'S' },
		{ "ed25519", no_argument, NULL, 'e' },
		{ "id", required_argument, NULL, 'i' },
		{ "pubdir", required_argument, NULL, 'p' },
		{ "reconnect", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char pid[24];
	unsigned long long u;
	char *end;
	int o;

	S.reconnect_min = SOAK_RECONNECT_MIN;
	S.reconnect_max = SOAK_RECONNECT_MAX;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's': S.socket = optarg; break;
		case 'D':
			S.seconds = strtod(optarg, &end);
			if (*end != '\0' || !(S.seconds > 0) ||
			    S.seconds > SOAK_MAX_SECONDS) {
				fprintf(stderr, "keyd-soak: --seconds: 1 to %d\n",
				    SOAK_MAX_SECONDS);
				exit(2);
			}
			break;
		case 'S':
			errno = 0;
			u = strtoull(optarg, &end, 0);
			if (*end != '\0' || errno != 0 || optarg[0] == '-') {
				fprintf(stderr, "keyd-soak: --seed: a number\n");
				exit(2);
			}
			S.seed = u;
			break;
		case 'e': S.ed25519 = 1; break;
		case 'i': S.id = optarg; break;
		case 'p': S.pubdir = optarg; break;
		case 'r':
			if (sscanf(optarg, "%u,%u", &S.reconnect_min,
			    &S.reconnect_max) != 2 || S.reconnect_min < 1 ||
			    S.reconnect_max < S.reconnect_min) {
				fprintf(stderr, "keyd-soak: --reconnect: MIN,MAX "
				    "with 1 <= MIN <= MAX\n");
				exit(2);
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (S.socket == NULL || S.seconds <= 0 || optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (S.id == NULL) {
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		S.id = pid;
	}
}

int
main(int argc, char **argv)
{
	unsigned long total_ok = 0, total_err = 0, until_reconnect;
	double start, end, elapsed;
	int r;

	parse_args(argc, argv);
	/* libkeyd sends with MSG_NOSIGNAL; this is for anything else. */
	signal(SIGPIPE, SIG_IGN);
	S.rng = S.seed;
	S.ec = (struct pub){ .name = KEY_EC, .type = "ec-p256", .bits = 256 };
	S.rsa = (struct pub){ .name = KEY_RSA, .type = "rsa", .bits = 2048 };
	S.ed = (struct pub){ .name = S.ed25519 ? KEY_ED : NULL,
	    .type = "ed25519", .bits = 256 };

	S.req[R_HELLO]++;
	if ((r = keyd_connect(S.socket, &S.c)) != KEYD_OK)
		die("keyd_connect %s: %s: %s", S.socket, keyd_strerror(r),
		    keyd_errmsg(NULL));
	load_pub(&S.ec);
	load_pub(&S.rsa);
	if (S.ed25519)
		load_pub(&S.ed);
	/* The first list checks the set-up before the clock starts. */
	if (op_list() != 0)
		die("the keys are not as run-soak.sh makes them");
	S.ok[OP_LIST]++;

	until_reconnect = S.reconnect_min + (unsigned long)rnd_below(
	    S.reconnect_max - S.reconnect_min + 1);
	start = now_s();
	end = start + S.seconds;
	while (now_s() < end) {
		if (S.c == NULL || until_reconnect-- == 0) {
			if (S.c == NULL)
				usleep(SOAK_CONNECT_RETRY_US);
			timed_op(OP_RECONNECT);
			until_reconnect = S.reconnect_min +
			    (unsigned long)rnd_below(S.reconnect_max -
			    S.reconnect_min + 1);
			continue;
		}
		timed_op(pick_op());
	}
	elapsed = now_s() - start;
	keyd_close(S.c);
	S.c = NULL;

	printf("client=%s seed=%" PRIu64 " seconds=%.1f ed25519=%d\n", S.id,
	    S.seed, elapsed, S.ed25519);
	for (int op = 0; op < OP_N; op++) {
		printf("op=%s ok=%lu err=%lu max_ms=%.1f\n", op_names[op],
		    S.ok[op], S.err[op], S.max_ms[op]);
		total_ok += S.ok[op];
		total_err += S.err[op];
	}
	for (int q = 0; q < R_N; q++)
		printf("req=%s n=%lu\n", req_names[q], S.req[q]);
	printf("total ok=%lu err=%lu\n", total_ok, total_err);
	fflush(stdout);
	EVP_PKEY_free(S.ec.pkey);
	EVP_PKEY_free(S.rsa.pkey);
	EVP_PKEY_free(S.ed.pkey);
	free(S.ec.der);
	free(S.rsa.der);
	free(S.ed.der);
	return total_err == 0 ? 0 : 1;
}
