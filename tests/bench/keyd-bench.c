/*
 * keyd-bench: the same operations, on the same SoftHSM2 token with the
 * same keys, through four paths, at 1 and 2 client threads:
 *   (a) in-process PKCS#11 calls to SoftHSM2 (the limit);
 *   (b) libkeyd, one keyd_client connection per thread;
 *   (c) keyd-pkcs11.so, one session per thread;
 *   (d) p11-kit's remoting (p11-kit server + p11-kit-client.so), one
 *       session per thread;
 *   (e) optional, not in the ratios: (a) with session-object copies of
 *       the keys (C_CopyObject, CKA_TOKEN=FALSE), which SoftHSM2 does not
 *       re-read from disk on every operation: what the token costs
 *       without that re-read.
 * Operations: ECDSA P-256 (CKM_ECDSA on a SHA-256 digest), RSA-2048
 * PKCS#1 v1.5 (CKM_RSA_PKCS on a SHA-256 DigestInfo), RSA-2048 PSS
 * (CKM_RSA_PKCS_PSS, SHA-256, MGF1-SHA256, salt 32) on all four; srtp-open
 * through (b) against the same AES-GCM decryption of the same blob with
 * the same KEK in-process (a); passport (a STIR/SHAKEN PASSporT that keyd
 * builds and signs ES256, docs/shaken.md) through (b) only, against
 * ECDSA P-256 through (b) in the same run (the ratio passport/ecdsa).
 *
 * Each cell runs for a fixed time after a warm-up whose first result is
 * checked (signatures verified with OpenSSL against public keys exported
 * from the token by pkcs11-tool; srtp-open's key compared with what
 * srtp-new gave). Prints markdown tables: ops/s, p50 and p99 latency, the
 * CPU time per operation of this process and of the server (keyd, or
 * p11-kit server and its children; --keyd-pid, --p11kit-pid), and the
 * ratios b/a, c/a and b/d. A benchmark, never a test: nothing here is a
 * pass/fail on speed. tests/bench/run-bench.sh sets everything up.
 *
 * The keys are named alike on the token (CKA_LABEL) and in keyd.conf:
 * "ec" (P-256), "rsa" (RSA-2048), "kek" (AES-256, an SRTP KEK); keyd also
 * serves "shaken", another P-256 key with ops = passport.
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <p11-kit/pkcs11.h>

#include "keyd.h"

#define BENCH_MAX_THREADS 16
#define BENCH_WARMUP_OPS 20
#define BENCH_MAX_SIG 512
#define BENCH_OPS_PER_S_MAX 200000  /* latency samples kept per second */
#define BENCH_ERR_LEN 160

/* The blob layout of docs/srtp.md: header, IV, GCM ciphertext, tag. */
#define SRTP_HDR_LEN 9
#define SRTP_IV_LEN 12
#define SRTP_TAG_LEN 16
#define SRTP_AAD_DOMAIN "keyd srtp blob"
#define SRTP_CONTEXT "bench-call@sbc.example.org"

enum op { OP_ECDSA, OP_RSA_PKCS1, OP_RSA_PSS, OP_SRTP_OPEN, OP_PASSPORT,
	OP_N };
static const char *const op_names[OP_N] = {
	"ecdsa-p256", "rsa2048-pkcs1", "rsa2048-pss", "srtp-open", "passport"
};
/* The PASSporT every passport request asks for. */
#define PASSPORT_KEY "shaken"
#define PASSPORT_ORIG "12025550123"
#define PASSPORT_DEST "13125550100"
enum path { P_A, P_B, P_C, P_D, P_E, P_N };
static const char *const path_names[P_N] = {
	"(a) in-process SoftHSM2", "(b) libkeyd", "(c) keyd-pkcs11.so",
	"(d) p11-kit remoting", "(e) in-process, session copies"
};

static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
	0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
	0x20 };

/* A loaded PKCS#11 module (paths a, c, d). */
struct p11mod {
	const char *path;
	const char *label;        /* token label to use */
	const char *pin;
	void *dl;
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE login_session; /* kept open: it holds the login */
	CK_OBJECT_HANDLE key[OP_N];
	int ready;
};

static struct {
	const char *socket;
	const char *ec_pem, *rsa_pem;
	double duration;
	int threads[4];
	size_t n_threads;
	int ops[OP_N];
	int paths[P_N];
	struct p11mod mod[P_N];   /* all but [P_B] */
	EVP_PKEY *ec_pub, *rsa_pub;
	EVP_PKEY *shaken_pub;     /* from keyd_pubkey: passport checks */
	int passport_ready;
	uint8_t digest[32];
	uint8_t blob[KEYD_SRTP_MAX_BLOB];
	size_t blob_len;
	uint8_t key_salt[KEYD_SRTP_MAX_KEY_SALT];
	size_t key_salt_len;
	uint8_t aad[128];
	size_t aad_len;
	int srtp_ready;
	long server_pid[P_N];     /* whose CPU time counts as the server's */
} B;

struct worker {
	enum path path;
	enum op op;
	pthread_t th;
	CK_SESSION_HANDLE s;
	struct keyd_client *kc;
	uint32_t *lat_ns;
	size_t n_lat, cap_lat;
	unsigned long ops;
	double elapsed;
	char err[BENCH_ERR_LEN];
};

static pthread_barrier_t start_barrier;
static atomic_int stop_flag;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "keyd-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *
rv_name(CK_RV rv)
{
	static _Thread_local char buf[32];

	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
	case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
	case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case CKR_OPERATION_ACTIVE: return "CKR_OPERATION_ACTIVE";
	case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
	case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
	case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
	case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
	case CKR_DATA_LEN_RANGE: return "CKR_DATA_LEN_RANGE";
	case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
	}
	snprintf(buf, sizeof(buf), "CKR 0x%lx", (unsigned long)rv);
	return buf;
}

/* ---- PKCS#11 modules (a, c, d) ---- */

static CK_RV
find_key(struct p11mod *m, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    const char *label, CK_OBJECT_HANDLE *out)
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)(uintptr_t)label, strlen(label) },
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_RV rv;

	if ((rv = m->f->C_FindObjectsInit(s, t, 2)) != CKR_OK)
		return rv;
	rv = m->f->C_FindObjects(s, h, 2, &n);
	(void)m->f->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return rv;
	if (n != 1)
		return CKR_KEY_HANDLE_INVALID;
	*out = h[0];
	return CKR_OK;
}

/* Loads the module, finds the token labelled m->label, logs in once on a
 * session kept open for the run (SoftHSM2 logs out when the last session
 * closes) and resolves the keys once (C_FindObjects reads every object
 * from disk: never per operation). */
static void
mod_load(struct p11mod *m, int need_kek)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS ia;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	size_t ll = strlen(m->label);

	if ((m->dl = dlopen(m->path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		die("%s", dlerror());
	*(void **)&gfl = dlsym(m->dl, "C_GetFunctionList");
	if (gfl == NULL || gfl(&m->f) != CKR_OK)
		die("%s: no C_GetFunctionList", m->path);
	memset(&ia, 0, sizeof(ia));
	/* SoftHSM2 without CKF_OS_LOCKING_OK runs without mutexes. */
	ia.flags = CKF_OS_LOCKING_OK;
	if ((rv = m->f->C_Initialize(&ia)) != CKR_OK)
		die("%s: C_Initialize: %s", m->path, rv_name(rv));
	if ((rv = m->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		die("%s: C_GetSlotList: %s", m->path, rv_name(rv));
	for (i = 0; i < n; i++) {
		if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (ll <= sizeof(ti.label) &&
		    !memcmp(ti.label, m->label, ll) &&
		    (ll == sizeof(ti.label) || ti.label[ll] == ' '))
			break;
	}
	if (i == n)
		die("%s: no token labelled '%s'", m->path, m->label);
	m->slot = slots[i];
	if ((rv = m->f->C_OpenSession(m->slot, CKF_SERIAL_SESSION, NULL, NULL,
	    &m->login_session)) != CKR_OK)
		die("%s: C_OpenSession: %s", m->path, rv_name(rv));
	rv = m->f->C_Login(m->login_session, CKU_USER,
	    (CK_UTF8CHAR *)(uintptr_t)m->pin, strlen(m->pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		die("%s: C_Login: %s", m->path, rv_name(rv));
	if ((rv = find_key(m, m->login_session, CKO_PRIVATE_KEY, "ec",
	    &m->key[OP_ECDSA])) != CKR_OK ||
	    (rv = find_key(m, m->login_session, CKO_PRIVATE_KEY, "rsa",
	    &m->key[OP_RSA_PKCS1])) != CKR_OK)
		die("%s: cannot find the keys 'ec' and 'rsa': %s", m->path,
		    rv_name(rv));
	m->key[OP_RSA_PSS] = m->key[OP_RSA_PKCS1];
	m->key[OP_SRTP_OPEN] = CK_INVALID_HANDLE;
	if (need_kek && (rv = find_key(m, m->login_session, CKO_SECRET_KEY,
	    "kek", &m->key[OP_SRTP_OPEN])) != CKR_OK)
		die("%s: cannot find the key 'kek': %s", m->path, rv_name(rv));
	m->ready = 1;
}

/* Path (e): (a)'s module, session, login, with session-object copies of
 * the keys. */
static void
mod_copy_keys(struct p11mod *e, const struct p11mod *a)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t[] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_RV rv;

	*e = *a;
	for (int op = 0; op < OP_N; op++) {
		if (a->key[op] == CK_INVALID_HANDLE || (op == OP_RSA_PSS &&
		    a->key[op] == a->key[OP_RSA_PKCS1]))
			continue;
		rv = a->f->C_CopyObject(a->login_session, a->key[op], t, 1,
		    &e->key[op]);
		if (rv != CKR_OK)
			die("C_CopyObject (CKA_TOKEN=FALSE): %s", rv_name(rv));
	}
	e->key[OP_RSA_PSS] = e->key[OP_RSA_PKCS1];
	/* Finalized through (a). */
	e->ready = 0;
}

/* One operation through a PKCS#11 module. */
static CK_RV
p11_op(struct p11mod *m, CK_SESSION_HANDLE s, enum op op, uint8_t *out,
    CK_ULONG *outlen)
{
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
	CK_GCM_PARAMS gcm;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	uint8_t in[sizeof(di_sha256) + 32];
	CK_ULONG inlen = 32;
	CK_RV rv;

	memcpy(in, B.digest, 32);
	switch (op) {
	case OP_ECDSA:
		break;
	case OP_RSA_PKCS1:
		mech.mechanism = CKM_RSA_PKCS;
		memcpy(in, di_sha256, sizeof(di_sha256));
		memcpy(in + sizeof(di_sha256), B.digest, 32);
		inlen = sizeof(in);
		break;
	case OP_RSA_PSS:
		mech.mechanism = CKM_RSA_PKCS_PSS;
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
		break;
	case OP_SRTP_OPEN:
		/* The 6-field CK_GCM_PARAMS (ulIvBits): SoftHSM2 refuses
		 * the 5-field layout. */
		memset(&gcm, 0, sizeof(gcm));
		gcm.pIv = B.blob + SRTP_HDR_LEN;
		gcm.ulIvLen = SRTP_IV_LEN;
		gcm.ulIvBits = SRTP_IV_LEN * 8;
		gcm.pAAD = B.aad;
		gcm.ulAADLen = B.aad_len;
		gcm.ulTagBits = SRTP_TAG_LEN * 8;
		mech.mechanism = CKM_AES_GCM;
		mech.pParameter = &gcm;
		mech.ulParameterLen = sizeof(gcm);
		rv = m->f->C_DecryptInit(s, &mech, m->key[op]);
		if (rv != CKR_OK)
			return rv;
		return m->f->C_Decrypt(s, B.blob + SRTP_HDR_LEN + SRTP_IV_LEN,
		    B.blob_len - SRTP_HDR_LEN - SRTP_IV_LEN, out, outlen);
	case OP_PASSPORT:   /* keyd's op: no PKCS#11 path */
	case OP_N:
		return CKR_ARGUMENTS_BAD;
	}
	if ((rv = m->f->C_SignInit(s, &mech, m->key[op])) != CKR_OK)
		return rv;
	return m->f->C_Sign(s, in, inlen, out, outlen);
}

/* ---- checks of results ---- */

static EVP_PKEY *
read_pub(const char *path)
{
	FILE *fp;
	EVP_PKEY *pk;

	if ((fp = fopen(path, "r")) == NULL)
		die("cannot open %s: %s", path, strerror(errno));
	pk = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pk == NULL)
		die("%s is not a PEM public key", path);
	return pk;
}

/* 1 if sig is a valid signature by op's key over B.digest. raw: ECDSA
 * as r||s (PKCS#11) rather than DER (libkeyd). */
static int
sig_ok(enum op op, const uint8_t *sig, size_t len, int raw)
{
	EVP_PKEY_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char *der = NULL;
	int ok = 0, dlen;

	if (op == OP_ECDSA && raw) {
		BIGNUM *r, *s;

		if (len != 64 || (es = ECDSA_SIG_new()) == NULL)
			goto out;
		r = BN_bin2bn(sig, 32, NULL);
		s = BN_bin2bn(sig + 32, 32, NULL);
		if (r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			goto out;
		}
		if ((dlen = i2d_ECDSA_SIG(es, &der)) <= 0)
			goto out;
		sig = der;
		len = (size_t)dlen;
	}
	ctx = EVP_PKEY_CTX_new(op == OP_ECDSA ? B.ec_pub : B.rsa_pub, NULL);
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) <= 0)
		goto out;
	if (op == OP_RSA_PKCS1 &&
	    (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0))
		goto out;
	if (op == OP_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) <= 0))
		goto out;
	ok = EVP_PKEY_verify(ctx, sig, len, B.digest, 32) == 1;
out:
	EVP_PKEY_CTX_free(ctx);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	return ok;
}

/* 1 if jws (header.payload.signature) carries an ES256 signature by
 * B.shaken_pub over header.payload. */
static int
jws_ok(const char *jws)
{
	const char *d2 = strrchr(jws, '.');
	unsigned char raw[96], *der = NULL;
	char b64[128];
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	size_t n;
	int ok = 0, dlen, got;

	if (d2 == NULL || (n = strlen(d2 + 1)) != 86)
		return 0;
	/* base64url without padding to base64 */
	for (size_t i = 0; i < n; i++)
		b64[i] = d2[1 + i] == '-' ? '+' : d2[1 + i] == '_' ? '/' :
		    d2[1 + i];
	memcpy(b64 + n, "==", 3);
	if ((got = EVP_DecodeBlock(raw, (unsigned char *)b64, 88)) != 66)
		return 0;
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, 32, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + 32, 32, NULL)) == NULL ||
	    !ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL;
	if ((dlen = i2d_ECDSA_SIG(es, &der)) <= 0 ||
	    (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    B.shaken_pub) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)dlen,
	    (const unsigned char *)jws, (size_t)(d2 - jws)) == 1;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

/* ---- one operation on a worker's path ---- */

static int
do_op(struct worker *w, int check)
{
	uint8_t out[BENCH_MAX_SIG];
	size_t len = sizeof(out);
	int r;

	if (w->path == P_B) {
		static const int algs[] = { KEYD_ECDSA_SHA256,
			KEYD_RSA_PKCS1_SHA256, KEYD_RSA_PSS_SHA256 };

		if (w->op == OP_PASSPORT) {
			static const char *const dest[] = { PASSPORT_DEST };
			char jws[KEYD_PASSPORT_MAX];

			r = keyd_passport(w->kc, PASSPORT_KEY, "A",
			    PASSPORT_ORIG, dest, 1, NULL, NULL, 0, jws,
			    sizeof(jws));
			if (r == KEYD_OK && check && !jws_ok(jws)) {
				snprintf(w->err, sizeof(w->err), "the PASSporT's "
				    "signature does not verify with OpenSSL");
				return -1;
			}
			len = 0;
		} else if (w->op == OP_SRTP_OPEN) {
			int suite;

			r = keyd_srtp_open(w->kc, "kek", B.blob, B.blob_len,
			    SRTP_CONTEXT, strlen(SRTP_CONTEXT), &suite, out,
			    &len, NULL, 0);
		} else {
			r = keyd_sign(w->kc, w->op == OP_ECDSA ? "ec" : "rsa",
			    algs[w->op], B.digest, 32, out, &len);
		}
		if (r != KEYD_OK) {
			snprintf(w->err, sizeof(w->err), "%s: %s",
			    keyd_strerror(r), keyd_errmsg(w->kc));
			return -1;
		}
	} else {
		CK_ULONG olen = sizeof(out);
		CK_RV rv = p11_op(&B.mod[w->path], w->s, w->op, out, &olen);

		if (rv != CKR_OK) {
			snprintf(w->err, sizeof(w->err), "%s", rv_name(rv));
			return -1;
		}
		len = olen;
	}
	if (!check || w->op == OP_PASSPORT)
		return 0;
	if (w->op == OP_SRTP_OPEN) {
		if (len != B.key_salt_len || memcmp(out, B.key_salt, len)) {
			snprintf(w->err, sizeof(w->err), "srtp-open gave "
			    "another key than srtp-new");
			return -1;
		}
	} else if (!sig_ok(w->op, out, len, w->path != P_B)) {
		snprintf(w->err, sizeof(w->err), "the signature does not "
		    "verify with OpenSSL");
		return -1;
	}
	return 0;
}

static int
worker_open(struct worker *w)
{
	CK_RV rv;
	int r;

	if (w->path == P_B) {
		if ((r = keyd_connect(B.socket, &w->kc)) != KEYD_OK) {
			snprintf(w->err, sizeof(w->err), "keyd_connect: %s",
			    keyd_errmsg(NULL));
			return -1;
		}
		return 0;
	}
	rv = B.mod[w->path].f->C_OpenSession(B.mod[w->path].slot,
	    CKF_SERIAL_SESSION, NULL, NULL, &w->s);
	if (rv != CKR_OK) {
		snprintf(w->err, sizeof(w->err), "C_OpenSession: %s",
		    rv_name(rv));
		return -1;
	}
	return 0;
}

static void
worker_close(struct worker *w)
{
	if (w->path == P_B)
		keyd_close(w->kc);
	else
		(void)B.mod[w->path].f->C_CloseSession(w->s);
	w->kc = NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int failed = 0;
	uint64_t t0, t1;
	double start;

	/* The warm-up's first result is checked: a fast wrong answer must
	 * not make a figure. */
	for (int i = 0; i < BENCH_WARMUP_OPS && !failed; i++)
		failed = do_op(w, i == 0) != 0;
	pthread_barrier_wait(&start_barrier);
	start = now_s();
	while (!failed && !atomic_load_explicit(&stop_flag,
	    memory_order_relaxed)) {
		t0 = now_ns();
		if (do_op(w, 0) != 0) {
			failed = 1;
			break;
		}
		t1 = now_ns();
		if (w->n_lat < w->cap_lat)
			w->lat_ns[w->n_lat++] = t1 - t0 > UINT32_MAX ?
			    UINT32_MAX : (uint32_t)(t1 - t0);
		w->ops++;
	}
	w->elapsed = now_s() - start;
	if (failed && w->err[0] == '\0')
		snprintf(w->err, sizeof(w->err), "failed");
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	int ran;
	double ops_s;
	double p50_us, p99_us;
	double client_cpu_us, server_cpu_us;  /* per operation; < 0: unknown */
	char err[BENCH_ERR_LEN];
};

/* This process's CPU time (all threads), in seconds. */
static double
self_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Another process's CPU time (all threads) from /proc, in seconds; < 0 if
 * it cannot be read. */
static double
proc_cpu1(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *fp;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* Fields after the command name, which ends at the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* proc_cpu1 of pid and of its live descendants: p11-kit server serves
 * each connection in a child process (p11-kit-remote). */
static double
proc_cpu(long pid)
{
	char path[96], line[4096], *tok, *save = NULL;
	double sum = proc_cpu1(pid), c;
	FILE *fp;

	if (sum < 0)
		return -1;
	/* The children of the main thread: p11-kit server and keyd fork
	 * from it, if at all. */
	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
	if ((fp = fopen(path, "r")) == NULL)
		return sum;
	if (fgets(line, sizeof(line), fp) != NULL) {
		for (tok = strtok_r(line, " \n", &save); tok != NULL;
		    tok = strtok_r(NULL, " \n", &save))
			if ((c = proc_cpu(atol(tok))) > 0)
				sum += c;
	}
	fclose(fp);
	return sum;
}

static struct result results[OP_N][4][P_N];

static void
run_cell(enum op op, size_t ti, enum path path)
{
	struct result *res = &results[op][ti][path];
	struct worker w[BENCH_MAX_THREADS];
	int nt = B.threads[ti];
	size_t total = 0, k = 0;
	unsigned long ops = 0;
	double c0, c1, s0, s1;
	uint32_t *all;

	memset(w, 0, sizeof(w));
	res->ran = 1;
	for (int i = 0; i < nt; i++) {
		w[i].path = path;
		w[i].op = op;
		w[i].cap_lat = (size_t)(B.duration * BENCH_OPS_PER_S_MAX) + 1;
		if ((w[i].lat_ns = malloc(w[i].cap_lat *
		    sizeof(*w[i].lat_ns))) == NULL)
			die("out of memory");
		if (worker_open(&w[i]) != 0) {
			snprintf(res->err, sizeof(res->err), "%s", w[i].err);
			for (int j = 0; j < i; j++)
				worker_close(&w[j]);
			goto out;
		}
	}
	atomic_store(&stop_flag, 0);
	if (pthread_barrier_init(&start_barrier, NULL, (unsigned)nt + 1) != 0)
		die("pthread_barrier_init");
	for (int i = 0; i < nt; i++)
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
			die("pthread_create");
	pthread_barrier_wait(&start_barrier);
	c0 = self_cpu();
	s0 = proc_cpu(B.server_pid[path]);
	usleep((useconds_t)(B.duration * 1e6));
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < nt; i++)
		pthread_join(w[i].th, NULL);
	c1 = self_cpu();
	s1 = proc_cpu(B.server_pid[path]);
	for (int i = 0; i < nt; i++)
		worker_close(&w[i]);
	pthread_barrier_destroy(&start_barrier);
	for (int i = 0; i < nt; i++) {
		if (w[i].err[0] != '\0') {
			snprintf(res->err, sizeof(res->err), "%s", w[i].err);
			goto out;
		}
		if (w[i].elapsed > 0)
			res->ops_s += (double)w[i].ops / w[i].elapsed;
		total += w[i].n_lat;
		ops += w[i].ops;
	}
	res->client_cpu_us = ops ? (c1 - c0) * 1e6 / (double)ops : -1;
	res->server_cpu_us = ops && s0 >= 0 && s1 >= 0 ?
	    (s1 - s0) * 1e6 / (double)ops : -1;
	if (total == 0) {
		snprintf(res->err, sizeof(res->err), "no operation completed");
		goto out;
	}
	if ((all = malloc(total * sizeof(*all))) == NULL)
		die("out of memory");
	for (int i = 0; i < nt; i++) {
		memcpy(all + k, w[i].lat_ns, w[i].n_lat * sizeof(*all));
		k += w[i].n_lat;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	res->p50_us = all[total / 2] / 1000.0;
	res->p99_us = all[(size_t)((double)total * 0.99)] / 1000.0;
	free(all);
out:
	for (int i = 0; i < nt; i++)
		free(w[i].lat_ns);
	fprintf(stderr, "keyd-bench: %-13s %d thread%s %-24s %s\n",
	    op_names[op], nt, nt == 1 ? " " : "s", path_names[path],
	    res->err[0] ? res->err : "done");
}

/* ---- set-up of srtp-open: one blob from keyd, its AAD ---- */

static void
put_lp(const void *p, size_t n)
{
	if (B.aad_len + 4 + n > sizeof(B.aad))
		die("AAD too long");
	B.aad[B.aad_len++] = (uint8_t)(n >> 24);
	B.aad[B.aad_len++] = (uint8_t)(n >> 16);
	B.aad[B.aad_len++] = (uint8_t)(n >> 8);
	B.aad[B.aad_len++] = (uint8_t)n;
	memcpy(B.aad + B.aad_len, p, n);
	B.aad_len += n;
}

static void
srtp_setup(void)
{
	struct keyd_client *c;
	int r;

	if ((r = keyd_connect(B.socket, &c)) != KEYD_OK)
		die("keyd_connect %s: %s", B.socket, keyd_errmsg(NULL));
	B.blob_len = sizeof(B.blob);
	B.key_salt_len = sizeof(B.key_salt);
	r = keyd_srtp_new(c, "kek", KEYD_SRTP_AES_CM_128_HMAC_SHA1_80,
	    SRTP_CONTEXT, strlen(SRTP_CONTEXT), B.key_salt, &B.key_salt_len,
	    NULL, 0, B.blob, &B.blob_len);
	if (r != KEYD_OK) {
		fprintf(stderr, "keyd-bench: srtp-new: %s (srtp-open left "
		    "out)\n", keyd_errmsg(c));
		keyd_close(c);
		return;
	}
	keyd_close(c);
	if (B.blob_len < SRTP_HDR_LEN + SRTP_IV_LEN + SRTP_TAG_LEN)
		die("srtp-new gave a %zu-byte blob", B.blob_len);
	/* docs/srtp.md: four length-prefixed fields. */
	put_lp(SRTP_AAD_DOMAIN, strlen(SRTP_AAD_DOMAIN));
	put_lp(B.blob, SRTP_HDR_LEN);
	put_lp("kek", 3);
	put_lp(SRTP_CONTEXT, strlen(SRTP_CONTEXT));
	B.srtp_ready = 1;
}

/* passport: the public key of keyd's passport key, to check the first
 * PASSporT of each cell. */
static void
passport_setup(void)
{
	struct keyd_client *c;
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	int r;

	if ((r = keyd_connect(B.socket, &c)) != KEYD_OK)
		die("keyd_connect %s: %s", B.socket, keyd_errmsg(NULL));
	if ((r = keyd_pubkey(c, PASSPORT_KEY, &der, &len)) != KEYD_OK) {
		fprintf(stderr, "keyd-bench: no passport key '%s': %s (passport "
		    "left out)\n", PASSPORT_KEY, keyd_errmsg(c));
		keyd_close(c);
		return;
	}
	keyd_close(c);
	p = der;
	B.shaken_pub = d2i_PUBKEY(NULL, &p, (long)len);
	keyd_free(der);
	if (B.shaken_pub == NULL)
		die("keyd sent a public key that does not parse");
	B.passport_ready = 1;
}

/* ---- output ---- */

static void
fmt_num(char *buf, size_t n, double v)
{
	if (v >= 100)
		snprintf(buf, n, "%.0f", v);
	else
		snprintf(buf, n, "%.1f", v);
}

static void
print_tables(void)
{
	char a[32], b[32], c[32], d[32];

	printf("| operation | threads | path | ops/s | p50 µs | p99 µs | "
	    "CPU µs/op: client | server |\n");
	printf("|---|---:|---|---:|---:|---:|---:|---:|\n");
	for (int op = 0; op < OP_N; op++) {
		for (size_t ti = 0; ti < B.n_threads; ti++) {
			for (int p = 0; p < P_N; p++) {
				struct result *r = &results[op][ti][p];

				if (!r->ran)
					continue;
				if (r->err[0]) {
					printf("| %s | %d | %s | n/a: %s | | | | |\n",
					    op_names[op], B.threads[ti],
					    path_names[p], r->err);
					continue;
				}
				fmt_num(a, sizeof(a), r->p50_us);
				fmt_num(b, sizeof(b), r->p99_us);
				fmt_num(c, sizeof(c), r->client_cpu_us);
				if (r->server_cpu_us >= 0)
					fmt_num(d, sizeof(d), r->server_cpu_us);
				else
					snprintf(d, sizeof(d), "—");
				printf("| %s | %d | %s | %.0f | %s | %s | %s | %s "
				    "|\n", op_names[op], B.threads[ti],
				    path_names[p], r->ops_s, a, b, c, d);
			}
		}
	}
	printf("\n| operation | threads | b/a | c/a | b/d |\n");
	printf("|---|---:|---:|---:|---:|\n");
	for (int op = 0; op < OP_N; op++) {
		for (size_t ti = 0; ti < B.n_threads; ti++) {
			struct result *r = results[op][ti];
			char *out[3] = { a, b, c };
			static const int num[3] = { P_B, P_C, P_B };
			static const int den[3] = { P_A, P_A, P_D };
			int any = 0;

			for (int k = 0; k < 3; k++) {
				struct result *x = &r[num[k]], *y = &r[den[k]];

				if (x->ran && y->ran && !x->err[0] &&
				    !y->err[0] && y->ops_s > 0) {
					snprintf(out[k], 32, "%.2f",
					    x->ops_s / y->ops_s);
					any = 1;
				} else {
					snprintf(out[k], 32, "—");
				}
			}
			if (any)
				printf("| %s | %d | %s | %s | %s |\n",
				    op_names[op], B.threads[ti], a, b, c);
		}
	}
	if (!results[OP_PASSPORT][0][P_B].ran)
		return;
	printf("\n| threads | passport/s (b) | ecdsa-p256/s (b) | "
	    "passport/ecdsa |\n|---:|---:|---:|---:|\n");
	for (size_t ti = 0; ti < B.n_threads; ti++) {
		struct result *x = &results[OP_PASSPORT][ti][P_B];
		struct result *y = &results[OP_ECDSA][ti][P_B];

		if (!x->ran || !y->ran || x->err[0] || y->err[0] ||
		    y->ops_s <= 0)
			continue;
		printf("| %d | %.0f | %.0f | %.2f |\n", B.threads[ti],
		    x->ops_s, y->ops_s, x->ops_s / y->ops_s);
	}
}

/* ---- main ---- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: keyd-bench --module SOFTHSM.so --token LABEL --pin-file FILE\n"
	    "         [--keyd SOCKET] [--keyd-pkcs11 MODULE [--keyd-pkcs11-label L]]\n"
	    "         [--p11kit-client MODULE] --ec-pem FILE --rsa-pem FILE\n"
	    "         [--duration SECONDS] [--threads 1,2] [--paths abcd[e]]\n"
	    "         [--ops ecdsa,rsa-pkcs1,rsa-pss,srtp-open,passport]\n"
	    "         [--keyd-pid PID] [--p11kit-pid PID]  (server CPU per op)\n"
	    "The token holds the keys 'ec' (P-256), 'rsa' (RSA-2048) and 'kek'\n"
	    "(AES-256), and keyd serves them under the same names, and 'shaken'\n"
	    "(P-256, ops = passport) for passport, path (b) only. Path (d) needs\n"
	    "P11_KIT_SERVER_ADDRESS set. tests/bench/run-bench.sh does all this.\n");
}

static void
parse_list(const char *s, const char *const *names, size_t n, int *flags)
{
	char *copy = strdup(s), *tok, *save = NULL;

	if (copy == NULL)
		die("out of memory");
	memset(flags, 0, n * sizeof(*flags));
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < n; i++)
			if (!strcmp(tok, names[i]))
				break;
		if (i == n)
			die("unknown name '%s' in '%s'", tok, s);
		flags[i] = 1;
	}
	free(copy);
}

static char *
read_pin(const char *path)
{
	static char pin[256];
	FILE *fp = fopen(path, "r");
	size_t n;

	if (fp == NULL)
		die("cannot open the PIN file %s: %s", path, strerror(errno));
	n = fread(pin, 1, sizeof(pin) - 1, fp);
	fclose(fp);
	pin[n] = '\0';
	pin[strcspn(pin, "\r\n")] = '\0';
	return pin;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "keyd", required_argument, NULL, 'k' },
		{ "keyd-pkcs11", required_argument, NULL, 'c' },
		{ "keyd-pkcs11-label", required_argument, NULL, 'l' },
		{ "p11kit-client", required_argument, NULL, 'd' },
		{ "ec-pem", required_argument, NULL, 'e' },
		{ "rsa-pem", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'D' },
		{ "threads", required_argument, NULL, 'T' },
		{ "paths", required_argument, NULL, 'p' },
		{ "ops", required_argument, NULL, 'o' },
		{ "keyd-pid", required_argument, NULL, 'K' },
		{ "p11kit-pid", required_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const op_opt[OP_N] = { "ecdsa", "rsa-pkcs1",
		"rsa-pss", "srtp-open", "passport" };
	const char *token = NULL, *pin_file = NULL, *paths = "abcd";
	const char *threads = "1,2", *p11label = "keyd";
	char *end, *tl, *tok, *save = NULL;
	int o;

	B.duration = 3;
	for (int i = 0; i < OP_N; i++)
		B.ops[i] = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm': B.mod[P_A].path = optarg; break;
		case 't': token = optarg; break;
		case 'P': pin_file = optarg; break;
		case 'k': B.socket = optarg; break;
		case 'c': B.mod[P_C].path = optarg; break;
		case 'l': p11label = optarg; break;
		case 'd': B.mod[P_D].path = optarg; break;
		case 'e': B.ec_pem = optarg; break;
		case 'r': B.rsa_pem = optarg; break;
		case 'D':
			B.duration = strtod(optarg, &end);
			if (*end != '\0' || B.duration <= 0 ||
			    B.duration > 3600)
				die("--duration: seconds, up to 3600");
			break;
		case 'T': threads = optarg; break;
		case 'p': paths = optarg; break;
		case 'o': parse_list(optarg, op_opt, OP_N, B.ops); break;
		case 'K':
			B.server_pid[P_B] = B.server_pid[P_C] = atol(optarg);
			break;
		case 'Q': B.server_pid[P_D] = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (B.mod[P_A].path == NULL || token == NULL || pin_file == NULL ||
	    B.ec_pem == NULL || B.rsa_pem == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((tl = strdup(threads)) == NULL)
		die("out of memory");
	for (tok = strtok_r(tl, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		long n = strtol(tok, &end, 10);

		if (*end != '\0' || n < 1 || n > BENCH_MAX_THREADS ||
		    B.n_threads == sizeof(B.threads) / sizeof(B.threads[0]))
			die("--threads: up to 4 counts of 1 to %d",
			    BENCH_MAX_THREADS);
		B.threads[B.n_threads++] = (int)n;
	}
	free(tl);
	for (const char *p = paths; *p != '\0'; p++) {
		if (*p < 'a' || *p > 'e')
			die("--paths: letters a to e");
		B.paths[*p - 'a'] = 1;
	}
	if (B.paths[P_B] && B.socket == NULL)
		die("path (b) needs --keyd SOCKET");
	if (B.paths[P_C] && B.mod[P_C].path == NULL)
		die("path (c) needs --keyd-pkcs11 MODULE");
	if (B.paths[P_D] && B.mod[P_D].path == NULL)
		die("path (d) needs --p11kit-client MODULE");

	B.ec_pub = read_pub(B.ec_pem);
	B.rsa_pub = read_pub(B.rsa_pem);
	SHA256((const unsigned char *)"keyd-bench", 10, B.digest);
	B.mod[P_A].label = B.mod[P_D].label = token;
	B.mod[P_C].label = p11label;
	B.mod[P_A].pin = B.mod[P_D].pin = read_pin(pin_file);
	/* keyd-pkcs11.so takes any PIN: keyd holds the token's. */
	B.mod[P_C].pin = "";
	if (B.ops[OP_SRTP_OPEN] && B.socket != NULL)
		srtp_setup();
	if (!B.srtp_ready)
		B.ops[OP_SRTP_OPEN] = 0;
	if (B.ops[OP_PASSPORT] && B.socket != NULL && B.paths[P_B])
		passport_setup();
	if (!B.passport_ready)
		B.ops[OP_PASSPORT] = 0;
	/* (e) shares (a)'s module: a library is initialized once. */
	if (B.paths[P_E])
		B.paths[P_A] = 1;
	for (int p = 0; p < P_N; p++)
		if (p != P_B && p != P_E && B.paths[p])
			mod_load(&B.mod[p], p == P_A && B.srtp_ready);
	if (B.paths[P_E])
		mod_copy_keys(&B.mod[P_E], &B.mod[P_A]);

	for (int op = 0; op < OP_N; op++) {
		if (!B.ops[op])
			continue;
		for (size_t ti = 0; ti < B.n_threads; ti++) {
			for (int p = 0; p < P_N; p++) {
				if (!B.paths[p])
					continue;
				/* srtp-open: keyd's (b) against the same
				 * AES-GCM decryption in-process (a). */
				if (op == OP_SRTP_OPEN && p != P_A && p != P_B &&
				    p != P_E)
					continue;
				/* passport: keyd only, against (b)'s ECDSA. */
				if (op == OP_PASSPORT && p != P_B)
					continue;
				run_cell((enum op)op, ti, (enum path)p);
			}
		}
	}
	printf("keyd-bench: %.1f s per cell, token '%s'\n\n", B.duration,
	    token);
	print_tables();
	for (int p = 0; p < P_N; p++) {
		if (!B.mod[p].ready)
			continue;
		(void)B.mod[p].f->C_CloseSession(B.mod[p].login_session);
		(void)B.mod[p].f->C_Finalize(NULL);
	}
	EVP_PKEY_free(B.ec_pub);
	EVP_PKEY_free(B.rsa_pub);
	EVP_PKEY_free(B.shaken_pub);
	return 0;
}
