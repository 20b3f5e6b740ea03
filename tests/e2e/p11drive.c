/*
 * p11drive: drives keyd-pkcs11.so through its PKCS#11 interface, as an
 * application would (dlopen, C_GetFunctionList), and judges every
 * signature with OpenSSL against a public key read from the token by
 * another program (pkcs11-tool or p11tool on SoftHSM2 directly).
 *
 *   p11drive MODULE mechs EC_PEM RSA_PEM ED_PEM CERT_DER
 *       every mechanism, its parameters and error codes; objects and
 *       attributes; login; read-only token behaviour
 *   p11drive MODULE serve KEY PEM
 *       a long-lived process: reads commands on stdin ("sign", "find",
 *       "quit") and answers one line each; for the keyd restart test
 *   p11drive MODULE fork KEY PEM
 *       signs, forks; the child signs with the inherited session, a
 *       second child re-initializes and signs; the parent signs again
 *   p11drive MODULE threads KEY PEM NTHREADS ITERATIONS
 *       NTHREADS threads, each with its own session, sign at once
 *   p11drive MODULE objects
 *       a long-lived process for keyd's reloads: reads "find LABEL"
 *       (the private key's handle, 0 if none), "sign HANDLE PEM" (an
 *       ECDSA-SHA256 signature checked against PEM), "decrypt HANDLE
 *       PEM" (RSA-OAEP SHA-1 of 32 bytes encrypted to PEM, decrypted
 *       with HANDLE and compared) and "attr HANDLE" (C_GetAttributeValue
 *       of CKA_LABEL) on stdin, one line each
 *   p11drive MODULE load KEY PEM RSAKEY RSAPEM STOPFILE
 *       signs with KEY and decrypts RSA-OAEP (SHA-1) with RSAKEY,
 *       every result checked, until STOPFILE exists; stops at the first
 *       failure
 *
 * Exit status 0 if every check passed.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

#define LABEL "keyd"
#define MAX_SIG 1024

typedef struct {
	CK_CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} IFACE;
#define IFACE_FORK_SAFE 0x00000001UL

/* Whether an interface's function list has version major.minor. */
static int
iface_version(const IFACE *i, int major, int minor)
{
	const CK_VERSION *v = i->pFunctionList;

	return v->major == major && v->minor == minor;
}

/* PKCS#11 3.0's CK_FUNCTION_LIST_3_0 is 2.40's list followed by the
 * functions 3.0 adds (section 3.6): C_GetInterfaceList, C_GetInterface,
 * C_LoginUser, C_SessionCancel, then the message functions, of which
 * C_MessageSignInit is the 15th. p11drive reaches them by that layout,
 * so that a module whose list is laid out otherwise fails here. */
enum { F30_SESSION_CANCEL = 3, F30_MESSAGE_SIGN_INIT = 14 };
union f30_fn {
	void *p;
	CK_RV (*cancel)(CK_SESSION_HANDLE, CK_FLAGS);
	CK_RV (*init)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
};

static union f30_fn
f30_fn(CK_FUNCTION_LIST *list, int i)
{
	union f30_fn u;

	memcpy(&u.p, (const char *)list + sizeof(CK_FUNCTION_LIST) +
	    (size_t)i * sizeof(void *), sizeof(u.p));
	return u;
}

static CK_FUNCTION_LIST *f;
static void *module_handle;
static int failures;

static void check(int ok, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check(int ok, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL (p11drive.c:%d): ", line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

#define CHECK_RV(expr, want) do { \
	CK_RV rv_ = (expr); \
	check(rv_ == (CK_RV)(want), __LINE__, "%s = 0x%lx, want 0x%lx", \
	    #expr, (unsigned long)rv_, (unsigned long)(want)); \
} while (0)
#define CHECK(cond) check((cond), __LINE__, "%s", #cond)

static void
die(const char *msg)
{
	fprintf(stderr, "p11drive: %s\n", msg);
	exit(2);
}

static void
load(const char *path)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);

	if ((module_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		die(dlerror());
	*(void **)&gfl = dlsym(module_handle, "C_GetFunctionList");
	if (gfl == NULL || gfl(&f) != CKR_OK)
		die("C_GetFunctionList");
}

static CK_RV
init(void)
{
	CK_C_INITIALIZE_ARGS a;

	memset(&a, 0, sizeof(a));
	a.flags = CKF_OS_LOCKING_OK;
	return f->C_Initialize(&a);
}

static CK_SESSION_HANDLE
open_session(int rw)
{
	CK_SESSION_HANDLE s;
	CK_SLOT_ID slot;
	CK_ULONG n = 1;

	if (f->C_GetSlotList(CK_TRUE, &slot, &n) != CKR_OK || n != 1)
		die("C_GetSlotList");
	if (f->C_OpenSession(slot, CKF_SERIAL_SESSION |
	    (rw ? CKF_RW_SESSION : 0), NULL, NULL, &s) != CKR_OK)
		die("C_OpenSession");
	return s;
}

static CK_OBJECT_HANDLE
find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)(uintptr_t)label, strlen(label) },
	};
	CK_OBJECT_HANDLE h[4];
	CK_ULONG n = 0;

	if (f->C_FindObjectsInit(s, t, 2) != CKR_OK)
		return CK_INVALID_HANDLE;
	if (f->C_FindObjects(s, h, 4, &n) != CKR_OK)
		n = 0;
	(void)f->C_FindObjectsFinal(s);
	return n == 1 ? h[0] : CK_INVALID_HANDLE;
}

static EVP_PKEY *
read_pem(const char *path)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *pk;

	if (fp == NULL)
		die("cannot open a public key file");
	pk = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pk == NULL)
		die("cannot read a public key file");
	return pk;
}

static void
sha(const char *md, const void *in, size_t len, uint8_t *out,
    unsigned *outlen)
{
	if (EVP_Digest(in, len, out, outlen, EVP_get_digestbyname(md),
	    NULL) != 1)
		die("EVP_Digest");
}

/* OpenSSL's verdict on a PKCS#11 signature. kind: "ecdsa" (sig r||s over
 * the digest tbs), "pkcs1" (md over the digest), "pkcs1-raw" (tbs is a
 * DigestInfo), "pss" (md), "ed25519" (tbs is the message). */
static int
ossl_verify(EVP_PKEY *pk, const char *kind, const char *md,
    const uint8_t *tbs, size_t tbslen, const uint8_t *sig, size_t siglen)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	ECDSA_SIG *es = NULL;
	uint8_t der[256], *p = der;
	const uint8_t *s = sig;
	size_t slen = siglen;
	int ok = 0, n;

	if (!strcmp(kind, "ed25519")) {
		mctx = EVP_MD_CTX_new();
		ok = mctx != NULL && EVP_DigestVerifyInit(mctx, NULL, NULL,
		    NULL, pk) == 1 && EVP_DigestVerify(mctx, sig, siglen, tbs,
		    tbslen) == 1;
		EVP_MD_CTX_free(mctx);
		return ok;
	}
	if (!strcmp(kind, "ecdsa")) {
		BIGNUM *r = BN_bin2bn(sig, (int)siglen / 2, NULL);
		BIGNUM *ss = BN_bin2bn(sig + siglen / 2, (int)siglen / 2, NULL);

		es = ECDSA_SIG_new();
		if (es == NULL || r == NULL || ss == NULL ||
		    !ECDSA_SIG_set0(es, r, ss))
			die("ECDSA_SIG");
		n = i2d_ECDSA_SIG(es, &p);
		ECDSA_SIG_free(es);
		if (n <= 0)
			return 0;
		s = der;
		slen = (size_t)n;
	}
	if ((ctx = EVP_PKEY_CTX_new(pk, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) != 1)
		die("EVP_PKEY_verify_init");
	if (!strcmp(kind, "pkcs1") || !strcmp(kind, "pkcs1-raw"))
		(void)EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING);
	if (!strcmp(kind, "pss")) {
		(void)EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING);
		(void)EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
		    RSA_PSS_SALTLEN_DIGEST);
	}
	if (md != NULL && strcmp(kind, "ecdsa") != 0 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_get_digestbyname(md)) != 1)
		die("set_signature_md");
	ok = EVP_PKEY_verify(ctx, s, slen, tbs, tbslen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static CK_RV
sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k, CK_MECHANISM *m,
    const void *in, size_t inlen, uint8_t *sig, CK_ULONG *siglen)
{
	CK_RV rv = f->C_SignInit(s, m, k);

	if (rv != CKR_OK)
		return rv;
	return f->C_Sign(s, (CK_BYTE_PTR)(uintptr_t)in, (CK_ULONG)inlen, sig,
	    siglen);
}

static CK_RV
sign_parts(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k, CK_MECHANISM *m,
    const uint8_t *in, size_t inlen, uint8_t *sig, CK_ULONG *siglen)
{
	CK_RV rv = f->C_SignInit(s, m, k);
	size_t off, step = 7;

	for (off = 0; rv == CKR_OK && off < inlen; off += step)
		rv = f->C_SignUpdate(s, (CK_BYTE_PTR)(uintptr_t)(in + off),
		    (CK_ULONG)(inlen - off < step ? inlen - off : step));
	if (rv != CKR_OK)
		return rv;
	return f->C_SignFinal(s, sig, siglen);
}

static CK_RV
verify(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k, CK_MECHANISM *m,
    const void *in, size_t inlen, const uint8_t *sig, size_t siglen)
{
	CK_RV rv = f->C_VerifyInit(s, m, k);

	if (rv != CKR_OK)
		return rv;
	return f->C_Verify(s, (CK_BYTE_PTR)(uintptr_t)in, (CK_ULONG)inlen,
	    (CK_BYTE_PTR)(uintptr_t)sig, (CK_ULONG)siglen);
}

static int
get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    uint8_t *buf, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, buf, *len };

	if (f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK)
		return -1;
	*len = a.ulValueLen;
	return 0;
}

static int
get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL b = 2;
	CK_ULONG len = sizeof(b);

	if (get_attr(s, o, type, &b, &len) != 0 || len != sizeof(b))
		return -1;
	return b;
}

static const uint8_t di_sha256[19] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
	0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
	0x04, 0x20 };
static const uint8_t di_sha1[15] = { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05,
	0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14 };

static const uint8_t msg[] = "INVITE sip:bob@example.com SIP/2.0 -- a "
    "message long enough to be fed in several parts";

/* ---- mechs ---- */

static void
mechs_ecdsa(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, EVP_PKEY *pk)
{
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	uint8_t dig[64], sig[MAX_SIG];
	CK_ULONG siglen;
	unsigned dlen;
	static const struct { CK_MECHANISM_TYPE t; const char *md; } hm[] = {
		{ CKM_ECDSA_SHA256, "SHA256" }, { CKM_ECDSA_SHA384, "SHA384" },
		{ CKM_ECDSA_SHA512, "SHA512" },
	};
	size_t i;

	sha("SHA256", msg, sizeof(msg), dig, &dlen);
	/* Length query, then a buffer too small: the operation survives
	 * both (PKCS#11 section 5.2). */
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_OK);
	siglen = 0;
	CHECK_RV(f->C_Sign(s, dig, dlen, NULL, &siglen), CKR_OK);
	CHECK(siglen == 64);
	siglen = 10;
	CHECK_RV(f->C_Sign(s, dig, dlen, sig, &siglen), CKR_BUFFER_TOO_SMALL);
	CHECK(siglen == 64);
	siglen = sizeof(sig);
	CHECK_RV(f->C_Sign(s, dig, dlen, sig, &siglen), CKR_OK);
	CHECK(siglen == 64);
	CHECK(ossl_verify(pk, "ecdsa", NULL, dig, dlen, sig, siglen));
	/* The operation ended with the signature. */
	CHECK_RV(f->C_Sign(s, dig, dlen, sig, &siglen),
	    CKR_OPERATION_NOT_INITIALIZED);
	/* Local verification, and a tampered signature. */
	CHECK_RV(verify(s, pub, &m, dig, dlen, sig, siglen), CKR_OK);
	sig[5] ^= 1;
	CHECK_RV(verify(s, pub, &m, dig, dlen, sig, siglen),
	    CKR_SIGNATURE_INVALID);
	CHECK_RV(verify(s, pub, &m, dig, dlen, sig, siglen - 1),
	    CKR_SIGNATURE_LEN_RANGE);
	/* CKM_ECDSA takes a digest of 20 to 64 bytes. */
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, dig, 19, sig, &siglen), CKR_DATA_LEN_RANGE);
	siglen = sizeof(sig);
	sha("SHA1", msg, sizeof(msg), dig, &dlen);
	CHECK_RV(sign(s, priv, &m, dig, dlen, sig, &siglen), CKR_OK);
	CHECK(ossl_verify(pk, "ecdsa", NULL, dig, dlen, sig, siglen));
	/* CKM_ECDSA is single-part. */
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_OK);
	CHECK_RV(f->C_SignUpdate(s, dig, dlen), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(f->C_SignFinal(s, sig, &siglen),
	    CKR_OPERATION_NOT_INITIALIZED);
	/* Parameters where none belong. */
	m.pParameter = dig;
	m.ulParameterLen = 4;
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	m.pParameter = NULL;
	m.ulParameterLen = 0;

	for (i = 0; i < sizeof(hm) / sizeof(hm[0]); i++) {
		CK_MECHANISM hmm = { hm[i].t, NULL, 0 };

		sha(hm[i].md, msg, sizeof(msg), dig, &dlen);
		siglen = sizeof(sig);
		CHECK_RV(sign(s, priv, &hmm, msg, sizeof(msg), sig, &siglen),
		    CKR_OK);
		CHECK(ossl_verify(pk, "ecdsa", NULL, dig, dlen, sig, siglen));
		siglen = sizeof(sig);
		CHECK_RV(sign_parts(s, priv, &hmm, msg, sizeof(msg), sig,
		    &siglen), CKR_OK);
		CHECK(ossl_verify(pk, "ecdsa", NULL, dig, dlen, sig, siglen));
		CHECK_RV(verify(s, pub, &hmm, msg, sizeof(msg), sig, siglen),
		    CKR_OK);
		CHECK_RV(verify(s, pub, &hmm, msg, sizeof(msg) - 1, sig,
		    siglen), CKR_SIGNATURE_INVALID);
	}
	/* A sign operation on a public key, a verify on a private one. */
	CHECK_RV(f->C_SignInit(s, &m, pub), CKR_KEY_TYPE_INCONSISTENT);
	CHECK_RV(f->C_VerifyInit(s, &m, priv), CKR_KEY_TYPE_INCONSISTENT);
	/* Starting twice. */
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_OK);
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
	CHECK_RV(f->C_SignInit(s, NULL, priv), CKR_OK);
}

static void
mechs_rsa(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
    EVP_PKEY *pk)
{
	CK_MECHANISM m = { CKM_RSA_PKCS, NULL, 0 };
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
	CK_MECHANISM mp = { CKM_RSA_PKCS_PSS, &pss, sizeof(pss) };
	uint8_t dig[64], di[19 + 64], sig[MAX_SIG];
	CK_ULONG siglen;
	unsigned dlen;
	static const struct { CK_MECHANISM_TYPE t, pt; const char *md; } hm[] =
	    {
		{ CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, "SHA256" },
		{ CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, "SHA384" },
		{ CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS, "SHA512" },
	};
	static const CK_MECHANISM_TYPE ckh[] = { CKM_SHA256, CKM_SHA384,
	    CKM_SHA512 };
	static const CK_RSA_PKCS_MGF_TYPE mgf[] = { CKG_MGF1_SHA256,
	    CKG_MGF1_SHA384, CKG_MGF1_SHA512 };
	size_t i;

	/* CKM_RSA_PKCS: a DigestInfo of SHA-256/384/512, nothing else. */
	sha("SHA256", msg, sizeof(msg), dig, &dlen);
	memcpy(di, di_sha256, 19);
	memcpy(di + 19, dig, dlen);
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, di, 19 + dlen, sig, &siglen), CKR_OK);
	CHECK(siglen == 256);
	CHECK(ossl_verify(pk, "pkcs1", "SHA256", dig, dlen, sig, siglen));
	CHECK_RV(verify(s, pub, &m, di, 19 + dlen, sig, siglen), CKR_OK);
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, dig, dlen, sig, &siglen), CKR_DATA_INVALID);
	memcpy(di, di_sha1, 15);
	sha("SHA1", msg, sizeof(msg), di + 15, &dlen);
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, di, 15 + dlen, sig, &siglen),
	    CKR_DATA_INVALID);
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, msg, sizeof(msg), sig, &siglen),
	    CKR_DATA_INVALID);

	for (i = 0; i < 3; i++) {
		CK_MECHANISM hmm = { hm[i].t, NULL, 0 };
		CK_RSA_PKCS_PSS_PARAMS hp = { ckh[i], mgf[i], 0 };
		CK_MECHANISM pm = { hm[i].pt, &hp, sizeof(hp) };

		sha(hm[i].md, msg, sizeof(msg), dig, &dlen);
		hp.sLen = dlen;
		siglen = sizeof(sig);
		CHECK_RV(sign(s, priv, &hmm, msg, sizeof(msg), sig, &siglen),
		    CKR_OK);
		CHECK(ossl_verify(pk, "pkcs1", hm[i].md, dig, dlen, sig,
		    siglen));
		siglen = sizeof(sig);
		CHECK_RV(sign_parts(s, priv, &hmm, msg, sizeof(msg), sig,
		    &siglen), CKR_OK);
		CHECK(ossl_verify(pk, "pkcs1", hm[i].md, dig, dlen, sig,
		    siglen));
		CHECK_RV(verify(s, pub, &hmm, msg, sizeof(msg), sig, siglen),
		    CKR_OK);
		sig[0] ^= 0x40;
		CHECK_RV(verify(s, pub, &hmm, msg, sizeof(msg), sig, siglen),
		    CKR_SIGNATURE_INVALID);

		siglen = sizeof(sig);
		CHECK_RV(sign(s, priv, &pm, msg, sizeof(msg), sig, &siglen),
		    CKR_OK);
		CHECK(ossl_verify(pk, "pss", hm[i].md, dig, dlen, sig, siglen));
		CHECK_RV(verify(s, pub, &pm, msg, sizeof(msg), sig, siglen),
		    CKR_OK);
		siglen = sizeof(sig);
		CHECK_RV(sign_parts(s, priv, &pm, msg, sizeof(msg), sig,
		    &siglen), CKR_OK);
		CHECK(ossl_verify(pk, "pss", hm[i].md, dig, dlen, sig, siglen));

		/* The raw PSS mechanism over the digest. */
		pss.hashAlg = ckh[i];
		pss.mgf = mgf[i];
		pss.sLen = dlen;
		siglen = sizeof(sig);
		CHECK_RV(sign(s, priv, &mp, dig, dlen, sig, &siglen), CKR_OK);
		CHECK(ossl_verify(pk, "pss", hm[i].md, dig, dlen, sig, siglen));
		CHECK_RV(verify(s, pub, &mp, dig, dlen, sig, siglen), CKR_OK);

		/* A hashing PSS mechanism whose parameters name another
		 * hash. */
		hp.hashAlg = ckh[(i + 1) % 3];
		hp.mgf = mgf[(i + 1) % 3];
		CHECK_RV(f->C_SignInit(s, &pm, priv),
		    CKR_MECHANISM_PARAM_INVALID);
	}

	/* PSS parameters: salt, MGF, hash, size, presence. */
	pss.hashAlg = CKM_SHA256;
	pss.mgf = CKG_MGF1_SHA256;
	pss.sLen = 20;
	CHECK_RV(f->C_SignInit(s, &mp, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.sLen = 32;
	pss.mgf = CKG_MGF1_SHA1;
	CHECK_RV(f->C_SignInit(s, &mp, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.mgf = CKG_MGF1_SHA256;
	pss.hashAlg = CKM_SHA_1;
	CHECK_RV(f->C_SignInit(s, &mp, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.hashAlg = CKM_SHA256;
	mp.ulParameterLen = sizeof(pss) - 1;
	CHECK_RV(f->C_SignInit(s, &mp, priv), CKR_MECHANISM_PARAM_INVALID);
	mp.pParameter = NULL;
	mp.ulParameterLen = 0;
	CHECK_RV(f->C_SignInit(s, &mp, priv), CKR_MECHANISM_PARAM_INVALID);
	mp.pParameter = &pss;
	mp.ulParameterLen = sizeof(pss);
	/* A digest of the wrong length for the parameters' hash. */
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &mp, dig, 48, sig, &siglen), CKR_DATA_LEN_RANGE);
	/* ECDSA on an RSA key. */
	m.mechanism = CKM_ECDSA;
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_KEY_TYPE_INCONSISTENT);
	m.mechanism = CKM_RSA_X_509;
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_MECHANISM_INVALID);
}

static void
mechs_oaep(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, EVP_PKEY *pk)
{
	CK_RSA_PKCS_OAEP_PARAMS op = { CKM_SHA_1, CKG_MGF1_SHA1,
	    CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &op, sizeof(op) };
	static const uint8_t secret[] = "an SRTP master key of 30 bytes";
	uint8_t ct[512], pt[512];
	size_t ctlen = sizeof(ct);
	CK_ULONG ptlen;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

	if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_encrypt(ctx, ct, &ctlen, secret, sizeof(secret)) != 1)
		die("OAEP encryption");
	EVP_PKEY_CTX_free(ctx);
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_OK);
	ptlen = 0;
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, NULL, &ptlen), CKR_OK);
	CHECK(ptlen >= sizeof(secret));
	ptlen = 4;
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_BUFFER_TOO_SMALL);
	CHECK(ptlen == sizeof(secret));
	ptlen = sizeof(pt);
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_OK);
	CHECK(ptlen == sizeof(secret) && memcmp(pt, secret, ptlen) == 0);
	/* A corrupted ciphertext. */
	ct[10] ^= 1;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_OK);
	ptlen = sizeof(pt);
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, pt, &ptlen),
	    CKR_ENCRYPTED_DATA_INVALID);
	/* A label, and mismatched MGF. */
	op.pSourceData = (void *)(uintptr_t)"label";
	op.ulSourceDataLen = 5;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	op.pSourceData = NULL;
	op.ulSourceDataLen = 0;
	op.mgf = CKG_MGF1_SHA256;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	/* An OAEP hash the token lacks (SoftHSM2 decrypts OAEP with SHA-1
	 * only; keyd found that out at start-up) is refused here, not by
	 * C_Decrypt. */
	op.hashAlg = CKM_SHA256;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	op.hashAlg = CKM_SHA384;
	op.mgf = CKG_MGF1_SHA384;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	op.hashAlg = CKM_SHA_1;
	op.mgf = CKG_MGF1_SHA1;
	/* The refusals left no operation behind. */
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, pt, &ptlen),
	    CKR_OPERATION_NOT_INITIALIZED);
	/* PKCS#1 v1.5 decryption is not offered (a padding oracle). */
	m.mechanism = CKM_RSA_PKCS;
	m.pParameter = NULL;
	m.ulParameterLen = 0;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_MECHANISM_INVALID);
	/* Multi-part decryption is refused, and the refusal ends the
	 * operation: the next C_DecryptInit is not CKR_OPERATION_ACTIVE. */
	m.mechanism = CKM_RSA_PKCS_OAEP;
	m.pParameter = &op;
	m.ulParameterLen = sizeof(op);
	op.mgf = CKG_MGF1_SHA1;
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_OK);
	ptlen = sizeof(pt);
	CHECK_RV(f->C_DecryptUpdate(s, ct, ctlen, pt, &ptlen),
	    CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_OK);
	ptlen = sizeof(pt);
	CHECK_RV(f->C_DecryptFinal(s, pt, &ptlen), CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(f->C_DecryptInit(s, &m, priv), CKR_OK);
	ct[10] ^= 1;
	ptlen = sizeof(pt);
	CHECK_RV(f->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_OK);
	CHECK(ptlen == sizeof(secret) && memcmp(pt, secret, ptlen) == 0);
	CHECK_RV(f->C_DecryptUpdate(s, ct, ctlen, pt, &ptlen),
	    CKR_OPERATION_NOT_INITIALIZED);
}

static void
mechs_eddsa(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
    EVP_PKEY *pk)
{
	CK_MECHANISM m = { CKM_EDDSA, NULL, 0 };
	uint8_t sig[MAX_SIG], big[20000];
	CK_ULONG siglen = sizeof(sig);

	CHECK_RV(sign(s, priv, &m, msg, sizeof(msg), sig, &siglen), CKR_OK);
	CHECK(siglen == 64);
	CHECK(ossl_verify(pk, "ed25519", NULL, msg, sizeof(msg), sig, siglen));
	CHECK_RV(verify(s, pub, &m, msg, sizeof(msg), sig, siglen), CKR_OK);
	siglen = sizeof(sig);
	CHECK_RV(sign_parts(s, priv, &m, msg, sizeof(msg), sig, &siglen),
	    CKR_OK);
	CHECK(ossl_verify(pk, "ed25519", NULL, msg, sizeof(msg), sig, siglen));
	sig[63] ^= 1;
	CHECK_RV(verify(s, pub, &m, msg, sizeof(msg), sig, siglen),
	    CKR_SIGNATURE_INVALID);
	memset(big, 'x', sizeof(big));
	siglen = sizeof(sig);
	CHECK_RV(sign(s, priv, &m, big, sizeof(big), sig, &siglen),
	    CKR_DATA_LEN_RANGE);
	m.pParameter = big;
	m.ulParameterLen = 16;
	CHECK_RV(f->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
}

static void
mechs_objects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv,
    CK_OBJECT_HANDLE pub, EVP_PKEY *pk, const char *cert_path)
{
	uint8_t buf[4096], *p;
	CK_ULONG len;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_OBJECT_HANDLE cert, h;
	CK_ATTRIBUTE bad[2] = {
		{ CKA_VALUE, buf, sizeof(buf) },
		{ CKA_LABEL, buf + 2048, 2048 },
	};
	CK_ATTRIBUTE tmpl = { CKA_CLASS, &cls, sizeof(cls) };
	FILE *fp;
	size_t n;
	X509 *x;
	int ok;

	CHECK(get_bool(s, priv, CKA_SENSITIVE) == CK_TRUE);
	CHECK(get_bool(s, priv, CKA_EXTRACTABLE) == CK_FALSE);
	CHECK(get_bool(s, priv, CKA_PRIVATE) == CK_TRUE);
	CHECK(get_bool(s, priv, CKA_ALWAYS_AUTHENTICATE) == CK_FALSE);
	CHECK(get_bool(s, priv, CKA_SIGN) == CK_TRUE);
	CHECK(get_bool(s, priv, CKA_DECRYPT) == CK_FALSE);
	CHECK(get_bool(s, pub, CKA_PRIVATE) == CK_FALSE);
	CHECK(get_bool(s, pub, CKA_VERIFY) == CK_TRUE);
	/* The secret part is sensitive; the rest of the template is still
	 * answered. */
	CHECK_RV(f->C_GetAttributeValue(s, priv, bad, 2),
	    CKR_ATTRIBUTE_SENSITIVE);
	CHECK(bad[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CHECK(bad[1].ulValueLen == strlen("sip-tls") &&
	    memcmp(buf + 2048, "sip-tls", bad[1].ulValueLen) == 0);
	/* CKA_EC_POINT is the DER OCTET STRING of the point OpenSSL reads
	 * from the token. */
	{
		uint8_t pt[256];
		size_t ptlen = 0;

		len = sizeof(buf);
		CHECK(get_attr(s, priv, CKA_EC_POINT, buf, &len) == 0);
		CHECK(EVP_PKEY_get_octet_string_param(pk,
		    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
		    &ptlen) == 1);
		CHECK(len == ptlen + 2 && buf[0] == 0x04 &&
		    buf[1] == ptlen && memcmp(buf + 2, pt, ptlen) == 0);
	}
	/* Read-only: nothing can be created, changed or destroyed. */
	CHECK_RV(f->C_CreateObject(s, &tmpl, 1, &h), CKR_ACTION_PROHIBITED);
	CHECK_RV(f->C_SetAttributeValue(s, priv, bad + 1, 1),
	    CKR_ACTION_PROHIBITED);
	CHECK_RV(f->C_DestroyObject(s, pub), CKR_ACTION_PROHIBITED);

	/* The certificate object: the DER the token holds, with the key's
	 * CKA_ID. */
	CHECK((cert = find(s, CKO_CERTIFICATE, "sip-tls")) !=
	    CK_INVALID_HANDLE);
	if ((fp = fopen(cert_path, "rb")) == NULL)
		die("cannot open the certificate");
	n = fread(buf + 2048, 1, 2048, fp);
	fclose(fp);
	len = 2048;
	CHECK(get_attr(s, cert, CKA_VALUE, buf, &len) == 0);
	CHECK(len == n && memcmp(buf, buf + 2048, n) == 0);
	p = buf + 2048;
	x = d2i_X509(NULL, (const unsigned char **)&p, (long)n);
	CHECK(x != NULL);
	if (x != NULL) {
		uint8_t *der = NULL;
		int dl = i2d_X509_NAME(X509_get_subject_name(x), &der);

		len = 2048;
		ok = get_attr(s, cert, CKA_SUBJECT, buf, &len) == 0 &&
		    dl > 0 && len == (CK_ULONG)dl &&
		    memcmp(buf, der, len) == 0;
		CHECK(ok);
		OPENSSL_free(der);
		X509_free(x);
	}
	{
		uint8_t id1[64], id2[64];
		CK_ULONG l1 = sizeof(id1), l2 = sizeof(id2);

		CHECK(get_attr(s, cert, CKA_ID, id1, &l1) == 0);
		CHECK(get_attr(s, priv, CKA_ID, id2, &l2) == 0);
		CHECK(l1 == 1 && l2 == 1 && id1[0] == 0x01 && id2[0] == 0x01);
	}
}

/* Through the 3.0 function list: C_GetInfo says 3.0, C_SessionCancel
 * ends the operations it names, the message functions are refused. */
static void
mechs_3_0(CK_FUNCTION_LIST *f30, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE ec)
{
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl = { CKA_CLASS, &cls, sizeof(cls) };
	CK_OBJECT_HANDLE o;
	CK_INFO info;
	uint8_t dig[32] = { 1 }, sig[MAX_SIG];
	CK_ULONG siglen = sizeof(sig), n;

	CHECK_RV(f30->C_GetInfo(&info), CKR_OK);
	CHECK(info.cryptokiVersion.major == 3 &&
	    info.cryptokiVersion.minor == 0);
	CHECK_RV(f->C_GetInfo(&info), CKR_OK);
	CHECK(info.cryptokiVersion.major == 2 &&
	    info.cryptokiVersion.minor == 40);

	CHECK_RV(f30->C_SignInit(s, &m, ec), CKR_OK);
	CHECK_RV(f30_fn(f30, F30_SESSION_CANCEL).cancel(s, CKF_SIGN), CKR_OK);
	CHECK_RV(f30->C_Sign(s, dig, sizeof(dig), sig, &siglen),
	    CKR_OPERATION_NOT_INITIALIZED);
	/* CKF_FIND_OBJECTS (3.0): the search ends too. */
	CHECK_RV(f30->C_FindObjectsInit(s, &tmpl, 1), CKR_OK);
	CHECK_RV(f30_fn(f30, F30_SESSION_CANCEL).cancel(s, 0x40), CKR_OK);
	CHECK_RV(f30->C_FindObjects(s, &o, 1, &n),
	    CKR_OPERATION_NOT_INITIALIZED);
	CHECK_RV(f30_fn(f30, F30_SESSION_CANCEL).cancel(s + 1000, CKF_SIGN),
	    CKR_SESSION_HANDLE_INVALID);
	/* A cancel leaves the session usable. */
	CHECK_RV(f30->C_SignInit(s, &m, ec), CKR_OK);
	siglen = sizeof(sig);
	CHECK_RV(f30->C_Sign(s, dig, sizeof(dig), sig, &siglen), CKR_OK);

	CHECK_RV(f30_fn(f30, F30_MESSAGE_SIGN_INIT).init(s, &m, ec),
	    CKR_FUNCTION_NOT_SUPPORTED);
	CHECK_RV(f30_fn(f30, F30_MESSAGE_SIGN_INIT).init(s + 1000, &m, ec),
	    CKR_SESSION_HANDLE_INVALID);
}

static int
do_mechs(char **argv)
{
	CK_C_INITIALIZE_ARGS a;
	CK_SESSION_HANDLE s, ro;
	CK_OBJECT_HANDLE ec, ecpub, rsa, rsapub, ed, edpub;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	CK_ULONG n;
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	IFACE *iface = NULL, list[2];
	CK_FUNCTION_LIST *f30 = NULL;
	CK_RV (*gi)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, IFACE **, CK_FLAGS);
	CK_RV (*gil)(IFACE *, CK_ULONG_PTR);
	EVP_PKEY *ecpk = read_pem(argv[0]), *rsapk = read_pem(argv[1]);
	EVP_PKEY *edpk = read_pem(argv[2]);

	/* PKCS#11 3.0's interface discovery. */
	*(void **)&gi = dlsym(module_handle, "C_GetInterface");
	*(void **)&gil = dlsym(module_handle, "C_GetInterfaceList");
	CHECK(gi != NULL && gil != NULL);
	if (gi != NULL && gil != NULL) {
		CK_VERSION v30 = { 3, 0 }, v240 = { 2, 40 }, v31 = { 3, 1 };

		/* The default is 3.0; 3.0 and 2.40 on request. */
		CHECK_RV(gi((CK_UTF8CHAR_PTR)(uintptr_t)"PKCS 11", NULL,
		    &iface, 0), CKR_OK);
		CHECK(iface != NULL && iface_version(iface, 3, 0));
		iface = NULL;
		CHECK_RV(gi((CK_UTF8CHAR_PTR)(uintptr_t)"PKCS 11", &v30,
		    &iface, IFACE_FORK_SAFE), CKR_OK);
		CHECK(iface != NULL && iface_version(iface, 3, 0) &&
		    iface->flags == IFACE_FORK_SAFE);
		if (iface != NULL)
			f30 = iface->pFunctionList;
		iface = NULL;
		CHECK_RV(gi((CK_UTF8CHAR_PTR)(uintptr_t)"PKCS 11", &v240,
		    &iface, 0), CKR_OK);
		CHECK(iface != NULL && iface->pFunctionList == (void *)f);
		CHECK_RV(gi((CK_UTF8CHAR_PTR)(uintptr_t)"PKCS 11", &v31,
		    &iface, 0), CKR_ARGUMENTS_BAD);
		CHECK_RV(gi((CK_UTF8CHAR_PTR)(uintptr_t)"Vendor", NULL, &iface,
		    0), CKR_ARGUMENTS_BAD);
		CHECK_RV(gi(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
		n = 0;
		CHECK_RV(gil(NULL, &n), CKR_OK);
		CHECK(n == 2);
		n = 1;
		CHECK_RV(gil(list, &n), CKR_BUFFER_TOO_SMALL);
		CHECK(n == 2);
		n = 2;
		CHECK_RV(gil(list, &n), CKR_OK);
		CHECK(n == 2 && iface_version(&list[0], 3, 0) &&
		    list[1].pFunctionList == (void *)f &&
		    strcmp((const char *)list[0].pInterfaceName, "PKCS 11") ==
		    0 && strcmp((const char *)list[1].pInterfaceName,
		    "PKCS 11") == 0);
	}
	/* The functions 3.0 adds, called before C_Initialize. */
	if (f30 != NULL) {
		CHECK_RV(f30_fn(f30, F30_SESSION_CANCEL).cancel(1, CKF_SIGN),
		    CKR_CRYPTOKI_NOT_INITIALIZED);
		CHECK_RV(f30_fn(f30, F30_MESSAGE_SIGN_INIT).init(1, &m, 1),
		    CKR_CRYPTOKI_NOT_INITIALIZED);
	}
	/* An application's own mutex functions without CKF_OS_LOCKING_OK
	 * cannot be honoured. */
	memset(&a, 0, sizeof(a));
	a.CreateMutex = (CK_CREATEMUTEX)(uintptr_t)&do_mechs;
	a.DestroyMutex = (CK_DESTROYMUTEX)(uintptr_t)&do_mechs;
	a.LockMutex = (CK_LOCKMUTEX)(uintptr_t)&do_mechs;
	a.UnlockMutex = (CK_UNLOCKMUTEX)(uintptr_t)&do_mechs;
	CHECK_RV(f->C_Initialize(&a), CKR_CANT_LOCK);
	CHECK_RV(init(), CKR_OK);
	CHECK_RV(init(), CKR_CRYPTOKI_ALREADY_INITIALIZED);

	n = 1;
	CHECK_RV(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	CHECK_RV(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	CHECK(memcmp(ti.label, LABEL, strlen(LABEL)) == 0 &&
	    ti.label[strlen(LABEL)] == ' ');
	CHECK(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
	CHECK(!(ti.flags & CKF_WRITE_PROTECTED));

	/* Read-write sessions open. Before login only public objects
	 * show. */
	s = open_session(1);
	ro = open_session(0);
	CHECK(find(s, CKO_PRIVATE_KEY, "sip-tls") == CK_INVALID_HANDLE);
	CHECK((ecpub = find(s, CKO_PUBLIC_KEY, "sip-tls")) !=
	    CK_INVALID_HANDLE);
	/* Any PIN logs in; the login is the application's. */
	CHECK_RV(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)(uintptr_t)"x", 1),
	    CKR_OK);
	CHECK_RV(f->C_Login(ro, CKU_USER, NULL, 0), CKR_USER_ALREADY_LOGGED_IN);
	CHECK((ec = find(ro, CKO_PRIVATE_KEY, "sip-tls")) != CK_INVALID_HANDLE);
	CHECK((rsa = find(s, CKO_PRIVATE_KEY, "sip-rsa")) != CK_INVALID_HANDLE);
	CHECK((rsapub = find(s, CKO_PUBLIC_KEY, "sip-rsa")) !=
	    CK_INVALID_HANDLE);
	CHECK((ed = find(s, CKO_PRIVATE_KEY, "sip-ed")) != CK_INVALID_HANDLE);
	CHECK((edpub = find(s, CKO_PUBLIC_KEY, "sip-ed")) != CK_INVALID_HANDLE);
	/* An AES key (SRTP) is not an object here. */
	CHECK(find(s, CKO_SECRET_KEY, "srtp-kek") == CK_INVALID_HANDLE);

	mechs_ecdsa(s, ec, ecpub, ecpk);
	mechs_rsa(s, rsa, rsapub, rsapk);
	mechs_oaep(s, rsa, rsapk);
	mechs_eddsa(s, ed, edpub, edpk);
	if (f30 != NULL)
		mechs_3_0(f30, s, ec);
	mechs_objects(s, ec, ecpub, ecpk, argv[3]);

	/* A key granted sign only cannot decrypt. */
	{
		CK_RSA_PKCS_OAEP_PARAMS op = { CKM_SHA_1, CKG_MGF1_SHA1,
		    CKZ_DATA_SPECIFIED, NULL, 0 };
		CK_MECHANISM om = { CKM_RSA_PKCS_OAEP, &op, sizeof(op) };
		CK_OBJECT_HANDLE so = find(s, CKO_PRIVATE_KEY, "sign-only-rsa");

		CHECK(so != CK_INVALID_HANDLE);
		CHECK(get_bool(s, so, CKA_DECRYPT) == CK_FALSE);
		CHECK_RV(f->C_DecryptInit(s, &om, so),
		    CKR_KEY_FUNCTION_NOT_PERMITTED);
	}

	/* An object's size is not known, but only of an object that is
	 * there. */
	{
		CK_ULONG size = 0;

		CHECK_RV(f->C_GetObjectSize(s, ecpub, &size), CKR_OK);
		CHECK(size == CK_UNAVAILABLE_INFORMATION);
		CHECK_RV(f->C_GetObjectSize(s, ec, &size), CKR_OK);
		CHECK_RV(f->C_GetObjectSize(s, 0x7fff0001, &size),
		    CKR_OBJECT_HANDLE_INVALID);
	}

	/* After logout the private keys are out of reach. */
	CHECK_RV(f->C_Logout(s), CKR_OK);
	CHECK_RV(f->C_SignInit(s, &m, ec), CKR_USER_NOT_LOGGED_IN);
	{
		CK_ULONG size = 0;

		CHECK_RV(f->C_GetObjectSize(s, ec, &size),
		    CKR_OBJECT_HANDLE_INVALID);
	}
	CHECK(find(s, CKO_PRIVATE_KEY, "sip-tls") == CK_INVALID_HANDLE);
	CHECK_RV(f->C_CloseSession(ro), CKR_OK);
	CHECK_RV(f->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
	CHECK_RV(f->C_Finalize(NULL), CKR_OK);
	CHECK_RV(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s),
	    CKR_CRYPTOKI_NOT_INITIALIZED);
	/* What the token does not do still says first that the module is
	 * not initialized. */
	CHECK_RV(f->C_EncryptInit(s, &m, ec), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_DigestInit(s, &m), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_GenerateRandom(s, (CK_BYTE_PTR)&slot, 1),
	    CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK_RV(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL),
	    CKR_CRYPTOKI_NOT_INITIALIZED);
	EVP_PKEY_free(ecpk);
	EVP_PKEY_free(rsapk);
	EVP_PKEY_free(edpk);
	return failures == 0 ? 0 : 1;
}

/* ---- serve, fork, threads ---- */

/* Signs a fresh message with ECDSA-SHA256 and checks the signature. */
static CK_RV
sign_check(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k, EVP_PKEY *pk,
    unsigned tag)
{
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	uint8_t sig[MAX_SIG], dig[32], data[64];
	CK_ULONG siglen = sizeof(sig);
	unsigned dlen;
	CK_RV rv;
	int n;

	n = snprintf((char *)data, sizeof(data), "message %u from pid %ld",
	    tag, (long)getpid());
	if ((rv = sign(s, k, &m, data, (size_t)n, sig, &siglen)) != CKR_OK)
		return rv;
	sha("SHA256", data, (size_t)n, dig, &dlen);
	return ossl_verify(pk, "ecdsa", NULL, dig, dlen, sig, siglen) ?
	    CKR_OK : CKR_SIGNATURE_INVALID;
}

static void
setup(const char *key, CK_SESSION_HANDLE *s, CK_OBJECT_HANDLE *k)
{
	if (init() != CKR_OK)
		die("C_Initialize");
	*s = open_session(0);
	if (f->C_Login(*s, CKU_USER, NULL, 0) != CKR_OK)
		die("C_Login");
	if ((*k = find(*s, CKO_PRIVATE_KEY, key)) == CK_INVALID_HANDLE)
		die("the key is not on the token");
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
do_serve(char **argv)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE k;
	EVP_PKEY *pk = read_pem(argv[1]);
	char line[64];
	unsigned tag = 0;
	int64_t t0;
	CK_RV rv;

	setup(argv[0], &s, &k);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready session=%lu key=%lu\n", (unsigned long)s,
	    (unsigned long)k);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (!strncmp(line, "sign", 4)) {
			t0 = now_ms();
			rv = sign_check(s, k, pk, tag++);
			printf("rv=0x%lx session=%lu key=%lu ms=%lld\n",
			    (unsigned long)rv, (unsigned long)s,
			    (unsigned long)k, (long long)(now_ms() - t0));
		} else if (!strncmp(line, "find", 4)) {
			printf("key=%lu\n",
			    (unsigned long)find(s, CKO_PRIVATE_KEY, argv[0]));
		} else if (!strncmp(line, "quit", 4)) {
			break;
		}
	}
	(void)f->C_Finalize(NULL);
	EVP_PKEY_free(pk);
	return 0;
}

static int
do_fork(char **argv)
{
	CK_SESSION_HANDLE s, s2;
	CK_OBJECT_HANDLE k, k2;
	EVP_PKEY *pk = read_pem(argv[1]);
	pid_t pid;
	int st, i;

	setup(argv[0], &s, &k);
	CHECK_RV(sign_check(s, k, pk, 1), CKR_OK);
	/* Child 1: like a pre-forking server, it goes on with the parent's
	 * session and key handles, without C_Initialize. Child 2 does what
	 * PKCS#11 2.40 asks of a child: C_Initialize again. */
	for (i = 0; i < 2; i++) {
		fflush(stderr);
		if ((pid = fork()) < 0)
			die("fork");
		if (pid == 0) {
			if (i == 0) {
				CHECK_RV(sign_check(s, k, pk, 2), CKR_OK);
				CHECK_RV(sign_check(s, k, pk, 3), CKR_OK);
			} else {
				CHECK_RV(init(), CKR_OK);
				CHECK_RV(f->C_CloseSession(s),
				    CKR_SESSION_HANDLE_INVALID);
				s2 = open_session(0);
				CHECK_RV(f->C_Login(s2, CKU_USER, NULL, 0),
				    CKR_OK);
				k2 = find(s2, CKO_PRIVATE_KEY, argv[0]);
				CHECK(k2 == k); /* handles are stable */
				CHECK_RV(sign_check(s2, k2, pk, 4), CKR_OK);
				(void)f->C_Finalize(NULL);
			}
			fflush(stderr);
			_exit(failures == 0 ? 0 : 1);
		}
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			fprintf(stderr, "FAIL: child %d failed\n", i + 1);
			failures++;
		}
	}
	CHECK_RV(sign_check(s, k, pk, 5), CKR_OK);
	(void)f->C_Finalize(NULL);
	EVP_PKEY_free(pk);
	return failures == 0 ? 0 : 1;
}

struct worker {
	pthread_t t;
	CK_OBJECT_HANDLE k;
	EVP_PKEY *pk;
	unsigned iters, errors, id;
	CK_RV last;
};

static pthread_barrier_t start;

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	CK_SESSION_HANDLE s = open_session(0);
	unsigned i;
	CK_RV rv;

	(void)pthread_barrier_wait(&start);
	for (i = 0; i < w->iters; i++) {
		if ((rv = sign_check(s, w->k, w->pk, w->id * 100000 + i)) !=
		    CKR_OK) {
			w->errors++;
			w->last = rv;
		}
	}
	(void)f->C_CloseSession(s);
	return NULL;
}

static int
do_threads(char **argv)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE k;
	EVP_PKEY *pk = read_pem(argv[1]);
	unsigned n = (unsigned)atoi(argv[2]), iters = (unsigned)atoi(argv[3]);
	struct worker *w;
	unsigned i, errors = 0;
	int64_t t0;

	if (n == 0 || n > 64 || iters == 0)
		die("threads: bad counts");
	setup(argv[0], &s, &k);
	if ((w = calloc(n, sizeof(*w))) == NULL)
		die("calloc");
	if (pthread_barrier_init(&start, NULL, n) != 0)
		die("barrier");
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		w[i].k = k;
		w[i].pk = pk;
		w[i].iters = iters;
		w[i].id = i;
		if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0)
			die("pthread_create");
	}
	for (i = 0; i < n; i++) {
		(void)pthread_join(w[i].t, NULL);
		if (w[i].errors != 0)
			fprintf(stderr, "FAIL: thread %u: %u errors, last "
			    "0x%lx\n", i, w[i].errors,
			    (unsigned long)w[i].last);
		errors += w[i].errors;
	}
	printf("threads=%u signatures=%u errors=%u ms=%lld\n", n, n * iters,
	    errors, (long long)(now_ms() - t0));
	(void)f->C_Finalize(NULL);
	EVP_PKEY_free(pk);
	free(w);
	return errors == 0 ? 0 : 1;
}

/* ---- objects, load: keyd's reloads (tests/integration/reload*.sh) ---- */

static CK_RV oaep_check(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k,
    EVP_PKEY *pk);

static int
do_objects(void)
{
	CK_SESSION_HANDLE s;
	char line[512], a[256], b[256];
	unsigned tag = 0;

	if (init() != CKR_OK)
		die("C_Initialize");
	s = open_session(0);
	if (f->C_Login(s, CKU_USER, NULL, 0) != CKR_OK)
		die("C_Login");
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin) != NULL) {
		unsigned long h = 0;

		if (sscanf(line, "find %255s", a) == 1) {
			printf("key=%lu\n",
			    (unsigned long)find(s, CKO_PRIVATE_KEY, a));
		} else if (sscanf(line, "sign %lu %255s", &h, b) == 2) {
			EVP_PKEY *pk = read_pem(b);

			printf("rv=0x%lx\n", (unsigned long)sign_check(s,
			    (CK_OBJECT_HANDLE)h, pk, tag++));
			EVP_PKEY_free(pk);
		} else if (sscanf(line, "decrypt %lu %255s", &h, b) == 2) {
			EVP_PKEY *pk = read_pem(b);

			printf("rv=0x%lx\n", (unsigned long)oaep_check(s,
			    (CK_OBJECT_HANDLE)h, pk));
			EVP_PKEY_free(pk);
		} else if (sscanf(line, "attr %lu", &h) == 1) {
			char label[128];
			CK_ATTRIBUTE t = { CKA_LABEL, label, sizeof(label) };

			printf("rv=0x%lx\n", (unsigned long)f->C_GetAttributeValue(
			    s, (CK_OBJECT_HANDLE)h, &t, 1));
		} else if (!strncmp(line, "quit", 4)) {
			break;
		} else {
			printf("unknown command\n");
		}
	}
	(void)f->C_Finalize(NULL);
	return 0;
}

/* RSA-OAEP (SHA-1, MGF1-SHA-1, what SoftHSM2 decrypts): OpenSSL encrypts
 * 32 random bytes with the public key, the module decrypts them back. */
static CK_RV
oaep_check(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k, EVP_PKEY *pk)
{
	CK_RSA_PKCS_OAEP_PARAMS op = { CKM_SHA_1, CKG_MGF1_SHA1,
	    CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &op, sizeof(op) };
	uint8_t secret[32], ct[1024], pt[1024];
	size_t ctlen = sizeof(ct);
	CK_ULONG ptlen = sizeof(pt);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
	CK_RV rv;

	if (RAND_bytes(secret, sizeof(secret)) != 1 || c == NULL ||
	    EVP_PKEY_encrypt_init(c) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha1()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha1()) != 1 ||
	    EVP_PKEY_encrypt(c, ct, &ctlen, secret, sizeof(secret)) != 1) {
		EVP_PKEY_CTX_free(c);
		return CKR_GENERAL_ERROR;
	}
	EVP_PKEY_CTX_free(c);
	if ((rv = f->C_DecryptInit(s, &m, k)) != CKR_OK ||
	    (rv = f->C_Decrypt(s, ct, (CK_ULONG)ctlen, pt, &ptlen)) != CKR_OK)
		return rv;
	return ptlen == sizeof(secret) && memcmp(pt, secret, sizeof(secret)) == 0 ?
	    CKR_OK : CKR_ENCRYPTED_DATA_INVALID;
}

static int
do_load(char **argv)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE k, rk;
	EVP_PKEY *pk = read_pem(argv[1]), *rpk = read_pem(argv[3]);
	unsigned long n = 0;
	CK_RV rv = CKR_OK;

	setup(argv[0], &s, &k);
	if ((rk = find(s, CKO_PRIVATE_KEY, argv[2])) == CK_INVALID_HANDLE)
		die("the RSA key is not on the token");
	while (access(argv[4], F_OK) != 0) {
		if ((rv = sign_check(s, k, pk, (unsigned)n)) != CKR_OK) {
			printf("FAILED: sign rv=0x%lx after %lu rounds\n",
			    (unsigned long)rv, n);
			break;
		}
		if ((rv = oaep_check(s, rk, rpk)) != CKR_OK) {
			printf("FAILED: decrypt rv=0x%lx after %lu rounds\n",
			    (unsigned long)rv, n);
			break;
		}
		n++;
	}
	if (rv == CKR_OK)
		printf("ok %lu\n", n);
	(void)f->C_Finalize(NULL);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(rpk);
	return rv != CKR_OK;
}

int
main(int argc, char **argv)
{
	int r;

	if (argc < 3)
		die("usage: p11drive MODULE mechs|serve|fork|threads ARGS...");
	load(argv[1]);
	if (!strcmp(argv[2], "mechs") && argc == 7)
		r = do_mechs(argv + 3);
	else if (!strcmp(argv[2], "serve") && argc == 5)
		r = do_serve(argv + 3);
	else if (!strcmp(argv[2], "fork") && argc == 5)
		r = do_fork(argv + 3);
	else if (!strcmp(argv[2], "threads") && argc == 7)
		r = do_threads(argv + 3);
	else if (!strcmp(argv[2], "objects") && argc == 3)
		r = do_objects();
	else if (!strcmp(argv[2], "load") && argc == 8)
		r = do_load(argv + 3);
	else
		die("bad arguments");
	if (failures != 0)
		fprintf(stderr, "p11drive: %d checks failed\n", failures);
	return r != 0 || failures != 0;
}
