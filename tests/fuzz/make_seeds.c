/*
 * make_seeds.c: writes seed inputs for the fuzz targets, so that the
 * corpora in the tree can be made again (tests/fuzz/make_seeds.sh runs it):
 *
 *   make_seeds frames DIR    one or more frames per request keyd knows,
 *                            valid and not; needs setup_token.sh's token,
 *                            since the srtp-open seeds open blobs that the
 *                            real dispatcher made (under the fixed KEK)
 *   make_seeds bundles DIR   bundles made by bundle_encode: every key type,
 *                            several share policies
 *   make_seeds slip39 DIR    mnemonics of fresh splits (several policies and
 *                            lengths), one a line, and share sheets
 *
 * Every seed is a file named after what it holds. Nothing here is secret:
 * the keys and master secrets are made up for the seeds and protect
 * nothing.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_share.h"
#include "bundle.h"
#include "dispatch.h"
#include "frame.h"
#include "fuzz_env.h"
#include "keyd_err.h"
#include "slip39.h"

static const char *outdir;
static unsigned long next_id = 1;

static void __attribute__((noreturn))
die(const char *what)
{
	fprintf(stderr, "make_seeds: %s\n", what);
	exit(1);
}

static void
write_seed(const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/seed-%s", outdir, name) >=
	    (int)sizeof(path))
		die("path too long");
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0) {
		fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* ---- frames --------------------------------------------------------- */

static struct fuzz_env *env;

static void
put_req(struct kbuf *w, Keyd__V1__Request *req)
{
	req->id = next_id++;
	if (frame_put_msg(w, &req->base, FRAME_MAX_DEFAULT) != KEYD_OK)
		die("cannot pack a request");
}

/* Writes the frames in w as the seed name, and empties w. */
static void
flush_seed(struct kbuf *w, const char *name)
{
	write_seed(name, kbuf_ptr(w), kbuf_avail(w));
	kbuf_reset(w);
}

static void
one(const char *name, Keyd__V1__Request *req)
{
	struct kbuf w;

	kbuf_init(&w, FRAME_MAX_CEILING, 0);
	put_req(&w, req);
	flush_seed(&w, name);
	kbuf_free(&w);
}

/* Sends req through the real dispatcher and returns its reply. */
static Keyd__V1__Response *
ask(Keyd__V1__Request *req)
{
	Keyd__V1__Response *resp = NULL;
	struct kbuf w, out;
	const uint8_t *body;
	size_t len;

	kbuf_init(&w, FRAME_MAX_CEILING, 0);
	kbuf_init(&out, FRAME_MAX_CEILING, 0);
	put_req(&w, req);
	if (frame_next(&w, FRAME_MAX_CEILING, &body, &len) != KEYD_OK ||
	    dispatch_request(&env->d, &env->ts, &env->peer, body, len,
	    &out) != KEYD_OK ||
	    frame_next(&out, FRAME_MAX_CEILING, &body, &len) != KEYD_OK ||
	    frame_unpack_response(body, len, &resp) != KEYD_OK)
		die("the dispatcher did not answer");
	kbuf_free(&w);
	kbuf_free(&out);
	return resp;
}

static void
seed_sign(const char *name, const char *key, Keyd__V1__SignAlg alg,
    size_t n, int raw)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
	static uint8_t data[DISPATCH_MAX_ED25519_MSG + 1];

	memset(data, 0x5a, sizeof(data));
	if (n > sizeof(data))
		die("sign seed too long");
	s.key = (char *)(uintptr_t)key;
	s.alg = alg;
	s.data.data = data;
	s.data.len = n;
	s.ecdsa_raw = raw;
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &s;
	one(name, &req);
}

static void
seed_decrypt(const char *name, const char *key, Keyd__V1__DecryptAlg alg,
    size_t n)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__DecryptRequest dr = KEYD__V1__DECRYPT_REQUEST__INIT;
	uint8_t ct[512];

	if (n > sizeof(ct))
		die("decrypt seed too long");
	/* Below any 2048-bit modulus: the top byte is small. */
	memset(ct, 0x33, sizeof(ct));
	ct[0] = 0x01;
	dr.key = (char *)(uintptr_t)key;
	dr.alg = alg;
	dr.ciphertext.data = ct;
	dr.ciphertext.len = n;
	req.op_case = KEYD__V1__REQUEST__OP_DECRYPT;
	req.decrypt = &dr;
	one(name, &req);
}

static void
seed_named(const char *name, int op, const char *key)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__PubkeyRequest pk = KEYD__V1__PUBKEY_REQUEST__INIT;
	Keyd__V1__CertRequest cr = KEYD__V1__CERT_REQUEST__INIT;

	req.op_case = op;
	if (op == KEYD__V1__REQUEST__OP_PUBKEY) {
		pk.key = (char *)(uintptr_t)key;
		req.pubkey = &pk;
	} else {
		cr.key = (char *)(uintptr_t)key;
		req.cert = &cr;
	}
	one(name, &req);
}

static void
seed_srtp(int suite, const char *ctx)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SrtpNewRequest sn = KEYD__V1__SRTP_NEW_REQUEST__INIT;
	Keyd__V1__SrtpOpenRequest so = KEYD__V1__SRTP_OPEN_REQUEST__INIT;
	Keyd__V1__Response *resp;
	char name[64];

	sn.key = (char *)"kek";
	sn.suite = suite;
	sn.context.data = (uint8_t *)(uintptr_t)ctx;
	sn.context.len = strlen(ctx);
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_NEW;
	req.srtp_new = &sn;
	snprintf(name, sizeof(name), "srtp-new-%d", suite);
	one(name, &req);
	resp = ask(&req);
	if (resp->error != 0 ||
	    resp->result_case != KEYD__V1__RESPONSE__RESULT_SRTP_NEW)
		die(resp->message != NULL ? resp->message : "srtp-new failed");
	so.key = (char *)"kek";
	so.blob = resp->srtp_new->blob;
	so.context = sn.context;
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_OPEN;
	req.srtp_open = &so;
	snprintf(name, sizeof(name), "srtp-open-%d", suite);
	one(name, &req);
	frame_free_response(resp);
}

/* srtp-new and srtp-open with a context one byte longer than allowed. */
static void
seed_srtp_context(void)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SrtpNewRequest sn = KEYD__V1__SRTP_NEW_REQUEST__INIT;
	Keyd__V1__SrtpOpenRequest so = KEYD__V1__SRTP_OPEN_REQUEST__INIT;
	static uint8_t ctx[SRTP_MAX_CONTEXT + 1];

	memset(ctx, 'c', sizeof(ctx));
	sn.key = (char *)"kek";
	sn.suite = KEYD__V1__SRTP_SUITE__SRTP_SUITE_AEAD_AES_128_GCM;
	sn.context.data = ctx;
	sn.context.len = sizeof(ctx);
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_NEW;
	req.srtp_new = &sn;
	one("srtp-new-context-too-long", &req);
	so.key = (char *)"kek";
	so.blob.data = ctx;
	so.blob.len = 67;
	so.context = sn.context;
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_OPEN;
	req.srtp_open = &so;
	one("srtp-open-context-too-long", &req);
}

/* A blob made under kek-old, the previous version of kek, built with
 * OpenSSL as docs/srtp.md describes the format: keyd made it before the
 * KEK was rotated. */
static void
put_lp(struct kbuf *b, const void *p, size_t n)
{
	if (kbuf_put_u32(b, (uint32_t)n) != KEYD_OK ||
	    kbuf_put(b, p, n) != KEYD_OK)
		die("out of memory");
}

static void
seed_srtp_old(void)
{
	/* The value setup_token.sh gives kek-old. */
	static const uint8_t kek_old[32] = "keyd-fuzz-kek-v1-test-only-----!";
	static const uint8_t zero[16];
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SrtpOpenRequest so = KEYD__V1__SRTP_OPEN_REQUEST__INIT;
	uint8_t blob[SRTP_HDR_LEN + SRTP_IV_LEN + 30 + SRTP_TAG_LEN];
	uint8_t kcv[16], *iv = blob + SRTP_HDR_LEN, *ct = iv + SRTP_IV_LEN;
	uint8_t key_salt[30];
	static const char ctx[] = "call-old";
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	struct kbuf aad;
	int n = 0;

	memset(key_salt, 0x3c, sizeof(key_salt));
	memset(iv, 0x1e, SRTP_IV_LEN);
	/* The KEK version: AES-ECB of zeros, the first 3 bytes. */
	if (c == NULL ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, kek_old, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(c, 0) != 1 ||
	    EVP_EncryptUpdate(c, kcv, &n, zero, sizeof(zero)) != 1)
		die("cannot compute the KEK's check value");
	/* magic "kSRT", format 1, suite 1 (AES_CM_128_HMAC_SHA1_80). */
	memcpy(blob, "kSRT\x01\x01", 6);
	memcpy(blob + 6, kcv, 3);
	kbuf_init(&aad, 4096, 0);
	put_lp(&aad, "keyd srtp blob", strlen("keyd srtp blob"));
	put_lp(&aad, blob, SRTP_HDR_LEN);
	put_lp(&aad, "kek", 3);
	put_lp(&aad, ctx, strlen(ctx));
	if (EVP_CIPHER_CTX_reset(c) != 1 ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SRTP_IV_LEN,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, kek_old, iv) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, kbuf_ptr(&aad),
	    (int)kbuf_avail(&aad)) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n, key_salt, sizeof(key_salt)) != 1 ||
	    n != (int)sizeof(key_salt) ||
	    EVP_EncryptFinal_ex(c, ct + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SRTP_TAG_LEN,
	    ct + sizeof(key_salt)) != 1)
		die("cannot make the blob of kek-old");
	EVP_CIPHER_CTX_free(c);
	kbuf_free(&aad);
	so.key = (char *)"kek";
	so.blob.data = blob;
	so.blob.len = sizeof(blob);
	so.context.data = (uint8_t *)(uintptr_t)ctx;
	so.context.len = strlen(ctx);
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_OPEN;
	req.srtp_open = &so;
	{
		Keyd__V1__Response *resp = ask(&req);

		if (resp->error != 0)
			die(resp->message != NULL ? resp->message :
			    "the blob of kek-old does not open");
		frame_free_response(resp);
	}
	one("srtp-open-previous-kek", &req);
}

static void
make_frames(void)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
	Keyd__V1__ListRequest l = KEYD__V1__LIST_REQUEST__INIT;
	Keyd__V1__StatusRequest st = KEYD__V1__STATUS_REQUEST__INIT;
	static const uint8_t too_large[] = { 0xff, 0xff, 0xff, 0xff, 0x08 };
	static const uint8_t not_pb[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
	static const uint8_t empty[] = { 0, 0, 0, 0 };
	static const uint8_t partial[] = { 0, 0, 0, 9, 0x08, 0x01 };
	struct kbuf w;

	env = fuzz_env_open();
	kbuf_init(&w, FRAME_MAX_CEILING, 0);

	h.protocol_version = KEYD_PROTOCOL_VERSION;
	h.client_version = (char *)"make_seeds 1";
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	one("hello", &req);
	h.protocol_version = 2;
	one("hello-v2", &req);
	h.protocol_version = KEYD_PROTOCOL_VERSION;

	req.op_case = KEYD__V1__REQUEST__OP_LIST;
	req.list = &l;
	one("list", &req);
	req.op_case = KEYD__V1__REQUEST__OP_STATUS;
	req.status = &st;
	one("status", &req);
	req.op_case = KEYD__V1__REQUEST__OP__NOT_SET;
	one("no-op", &req);

	seed_named("pubkey-p256", KEYD__V1__REQUEST__OP_PUBKEY, "p256");
	seed_named("pubkey-rsa", KEYD__V1__REQUEST__OP_PUBKEY, "rsa");
	seed_named("pubkey-ed", KEYD__V1__REQUEST__OP_PUBKEY, "ed");
	seed_named("pubkey-kek", KEYD__V1__REQUEST__OP_PUBKEY, "kek");
	seed_named("pubkey-hid", KEYD__V1__REQUEST__OP_PUBKEY, "hid");
	seed_named("pubkey-none", KEYD__V1__REQUEST__OP_PUBKEY, "none");
	seed_named("cert-p256", KEYD__V1__REQUEST__OP_CERT, "p256");
	seed_named("cert-rsa", KEYD__V1__REQUEST__OP_CERT, "rsa");

	seed_sign("sign-ecdsa", "p256", KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA,
	    32, 0);
	seed_sign("sign-ecdsa-raw", "p256", KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA,
	    48, 1);
	seed_sign("sign-ecdsa-short", "p256",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA, 19, 0);
	seed_sign("sign-ecdsa-hid", "hid", KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA,
	    32, 0);
	seed_sign("sign-pkcs1-sha256", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256, 32, 0);
	seed_sign("sign-pkcs1-sha384", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384, 48, 0);
	seed_sign("sign-pkcs1-sha512", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512, 64, 0);
	{
		/* A DigestInfo of SHA-256, byte for byte. */
		static const uint8_t di[] = { 0x30, 0x31, 0x30, 0x0d, 0x06,
			0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
			0x01, 0x05, 0x00, 0x04, 0x20 };
		Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
		uint8_t data[sizeof(di) + 32];

		memcpy(data, di, sizeof(di));
		memset(data + sizeof(di), 0x11, 32);
		s.key = (char *)"rsa";
		s.alg = KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_DIGESTINFO;
		s.data.data = data;
		s.data.len = sizeof(data);
		req.op_case = KEYD__V1__REQUEST__OP_SIGN;
		req.sign = &s;
		one("sign-pkcs1-digestinfo", &req);
	}
	seed_sign("sign-pss-sha256", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256, 32, 0);
	seed_sign("sign-pss-sha384", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384, 48, 0);
	seed_sign("sign-pss-sha512", "rsa",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512, 64, 0);
	seed_sign("sign-ed25519", "ed", KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519,
	    100, 0);
	seed_sign("sign-ed25519-empty", "ed",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519, 0, 0);
	seed_sign("sign-ed25519-longest", "ed",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519, DISPATCH_MAX_ED25519_MSG, 0);
	seed_sign("sign-ed25519-too-long", "ed",
	    KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519, DISPATCH_MAX_ED25519_MSG + 1,
	    0);
	seed_sign("sign-wrong-alg", "ed", KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA,
	    32, 0);
	seed_sign("sign-kek", "kek", KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA, 32, 0);

	seed_decrypt("decrypt-oaep-sha1", "rsa",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1, 256);
	seed_decrypt("decrypt-oaep-sha256", "rsa",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA256, 256);
	seed_decrypt("decrypt-oaep-sha384", "rsa",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA384, 256);
	seed_decrypt("decrypt-oaep-sha512", "rsa2",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA512, 256);
	seed_decrypt("decrypt-pkcs1", "rsa",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_PKCS1, 256);
	seed_decrypt("decrypt-pkcs1-not-allowed", "rsa2",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_PKCS1, 256);
	seed_decrypt("decrypt-unknown-alg", "rsa2", 77, 256);
	seed_decrypt("decrypt-short", "rsa",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1, 255);
	seed_decrypt("decrypt-p256", "p256",
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1, 256);

	seed_srtp(KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_CM_128_HMAC_SHA1_80,
	    "call-1");
	seed_srtp(KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_256_CM_HMAC_SHA1_32,
	    "");
	seed_srtp(KEYD__V1__SRTP_SUITE__SRTP_SUITE_AEAD_AES_128_GCM,
	    "trunk-7");
	seed_srtp(KEYD__V1__SRTP_SUITE__SRTP_SUITE_AEAD_AES_256_GCM, "x");
	seed_srtp_context();
	seed_srtp_old();

	/* A session: several requests in one input. */
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	put_req(&w, &req);
	req.op_case = KEYD__V1__REQUEST__OP_LIST;
	req.list = &l;
	put_req(&w, &req);
	req.op_case = KEYD__V1__REQUEST__OP_STATUS;
	req.status = &st;
	put_req(&w, &req);
	flush_seed(&w, "session");

	/* Frames that are not requests, and frames that are not whole. */
	write_seed("too-large", too_large, sizeof(too_large));
	write_seed("not-protobuf", not_pb, sizeof(not_pb));
	write_seed("empty-body", empty, sizeof(empty));
	write_seed("partial", partial, sizeof(partial));

	kbuf_free(&w);
	fuzz_env_close(env);
}

/* ---- bundles -------------------------------------------------------- */

static const uint8_t seed_bmk[BUNDLE_BMK_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8,
	9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
	27, 28, 29, 30, 31, 32 };

static void
key_common(struct bundle_key *k, const char *label, uint8_t id,
    size_t wrapped)
{
	k->label_len = strlen(label);
	memcpy(k->label, label, k->label_len);
	k->id[0] = id;
	k->id_len = 1;
	k->wrapped_len = wrapped;
	memset(k->wrapped, 0xa6, wrapped);
}

/* A key pair of OpenSSL's: its SPKI, and the PKCS#11 values of its
 * public key as far as the seed needs them (the bytes are not parsed). */
static void
key_pair(struct bundle_key *k, const char *alg, const char *param,
    uint32_t type, uint32_t bits, const char *label, uint8_t id)
{
	EVP_PKEY *pk = NULL;
	uint8_t *der = NULL;
	unsigned len = 0;
	int n;

	if (param != NULL)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, param);
	else if (strcmp(alg, "RSA") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, (size_t)bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (pk == NULL || (n = i2d_PUBKEY(pk, &der)) <= 0 ||
	    (size_t)n > sizeof(k->spki))
		die("cannot make a key pair");
	k->cls = CKO_PRIVATE_KEY;
	k->key_type = type;
	k->bits = bits;
	key_common(k, label, id, type == CKK_RSA ? 1232 : 152);
	memcpy(k->spki, der, (size_t)n);
	k->spki_len = (size_t)n;
	/* The public values: prefixes of the SPKI stand in for them. */
	k->pub_a_len = n > 32 ? 32 : (size_t)n;
	memcpy(k->pub_a, der, k->pub_a_len);
	k->pub_b_len = (size_t)n;
	memcpy(k->pub_b, der, k->pub_b_len);
	k->flags = BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
	    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_PRIVATE | BUNDLE_F_SIGN |
	    (type == CKK_RSA ? BUNDLE_F_DECRYPT : 0);
	k->pub_flags = BUNDLE_F_VERIFY |
	    (type == CKK_RSA ? BUNDLE_F_ENCRYPT : 0);
	k->fp_kind = BUNDLE_FP_SPKI_SHA256;
	k->fp_len = BUNDLE_HASH_LEN;
	if (EVP_Digest(der, (size_t)n, k->fp, &len, EVP_sha256(), NULL) != 1)
		die("SHA-256 failed");
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
}

static void
key_aes(struct bundle_key *k, const char *label, uint8_t id)
{
	k->cls = CKO_SECRET_KEY;
	k->key_type = CKK_AES;
	k->bits = 256;
	key_common(k, label, id, 40);
	k->flags = BUNDLE_F_SENSITIVE | BUNDLE_F_EXTRACTABLE |
	    BUNDLE_F_WRAP_WITH_TRUSTED | BUNDLE_F_ENCRYPT | BUNDLE_F_DECRYPT;
	k->fp_kind = BUNDLE_FP_KCV;
	k->fp_len = 3;
	memcpy(k->fp, "\x73\x7a\xb8", 3);
}

/* A bundle of n_keys keys (from the list below) under the policy: gt of
 * the groups, group g needing mt[g] of mc[g] members. */
static struct bundle *
make_bundle(size_t n_keys, unsigned gt, const unsigned *mt,
    const unsigned *mc, size_t groups, uint8_t wrap_alg)
{
	struct bundle *b = bundle_new(n_keys);
	size_t g, m;

	if (b == NULL)
		die("out of memory");
	memset(b->set_id, 0x42, sizeof(b->set_id));
	b->created = 1700000000;
	b->wrap_alg = wrap_alg;
	b->wrap_mech = CKM_AES_KEY_WRAP_PAD;
	b->mac_alg = BUNDLE_MAC_HKDF_HMAC_SHA256;
	b->slip39_id = 0x1234;
	b->ext = 1;
	b->iteration_exp = 1;
	b->secret_len = BUNDLE_BMK_LEN;
	b->group_threshold = (uint8_t)gt;
	b->group_count = (uint8_t)groups;
	for (g = 0; g < groups; g++) {
		b->member_threshold[g] = (uint8_t)mt[g];
		b->member_count[g] = (uint8_t)mc[g];
		for (m = 0; m < mc[g]; m++) {
			struct bundle_commit *c = &b->commits[b->n_commits++];

			c->group = (uint8_t)g;
			c->member = (uint8_t)m;
			memset(c->c, (int)(0x10 * g + m), sizeof(c->c));
		}
	}
	for (size_t i = 0; i < n_keys; i++) {
		switch (i % 5) {
		case 0:
			key_pair(&b->keys[i], "EC", "P-256", CKK_EC, 256,
			    "sip-tls", (uint8_t)(i + 1));
			break;
		case 1:
			key_pair(&b->keys[i], "RSA", NULL, CKK_RSA, 2048,
			    "sip-tls-rsa", (uint8_t)(i + 1));
			break;
		case 2:
			key_aes(&b->keys[i], "srtp-kek", (uint8_t)(i + 1));
			break;
		case 3:
			key_pair(&b->keys[i], "ED25519", NULL, CKK_EC_EDWARDS,
			    255, "ed", (uint8_t)(i + 1));
			break;
		default:
			key_pair(&b->keys[i], "EC", "P-384", CKK_EC, 384,
			    "p384", (uint8_t)(i + 1));
			break;
		}
	}
	if (bundle_encode(b, seed_bmk, sizeof(seed_bmk)) != KEYD_OK)
		die("bundle_encode failed");
	return b;
}

static void
make_bundles(void)
{
	static const unsigned one_mt[] = { 2 }, one_mc[] = { 3 };
	static const unsigned g_mt[] = { 2, 1, 3 }, g_mc[] = { 3, 1, 5 };
	static const unsigned s_mt[] = { 1 }, s_mc[] = { 1 };
	struct bundle *b;

	b = make_bundle(1, 1, one_mt, one_mc, 1, BUNDLE_WRAP_RFC5649);
	write_seed("ec-2of3", b->raw, b->raw_len);
	bundle_free(b);
	b = make_bundle(3, 1, one_mt, one_mc, 1,
	    BUNDLE_WRAP_RFC5649_ZERO_PAD);
	write_seed("ec-rsa-aes-2of3", b->raw, b->raw_len);
	bundle_free(b);
	b = make_bundle(5, 2, g_mt, g_mc, 3, BUNDLE_WRAP_RFC5649);
	write_seed("all-types-groups", b->raw, b->raw_len);
	bundle_free(b);
	b = make_bundle(1, 1, s_mt, s_mc, 1, BUNDLE_WRAP_RFC5649);
	write_seed("ec-1of1", b->raw, b->raw_len);
	bundle_free(b);
}

/* ---- SLIP-0039 ------------------------------------------------------ */

static void
make_split(const char *name, size_t len, unsigned gt,
    const struct slip39_group *g, size_t groups, int ext,
    const char *passphrase)
{
	uint8_t ms[SLIP39_MAX_SECRET_LEN];
	struct slip39_mnemonic *m = NULL;
	size_t n = 0, i;
	struct kbuf w;

	memset(ms, 0x77, sizeof(ms));
	if (slip39_split(ms, len, passphrase, strlen(passphrase), gt, g, groups,
	    ext, 0, &m, &n) != KEYD_OK)
		die("slip39_split failed");
	kbuf_init(&w, KBUF_DEFAULT_MAX, 0);
	for (i = 0; i < n; i++)
		if (kbuf_put(&w, m[i].text, strlen(m[i].text)) != KEYD_OK ||
		    kbuf_put_u8(&w, '\n') != KEYD_OK)
			die("out of memory");
	write_seed(name, kbuf_ptr(&w), kbuf_avail(&w));
	kbuf_free(&w);
	slip39_mnemonics_free(m, n);
}

static void
make_sheet(void)
{
	static const unsigned mt[] = { 2 }, mc[] = { 3 };
	static const struct slip39_group g = { 2, 3 };
	static const char *const names[] = { "sheet", "sheet-passphrase" };
	uint8_t ms[BUNDLE_BMK_LEN];
	struct slip39_mnemonic *m = NULL;
	struct slip39_share s;
	struct bundle *b;
	uint8_t c[BUNDLE_HASH_LEN];
	size_t n = 0;
	struct kbuf w;

	memset(ms, 0x24, sizeof(ms));
	b = make_bundle(1, 1, mt, mc, 1, BUNDLE_WRAP_RFC5649);
	if (slip39_split(ms, sizeof(ms), "", 0, 1, &g, 1, 1, 0, &m, &n) !=
	    KEYD_OK)
		die("slip39_split failed");
	kbuf_init(&w, BACKUP_SHARE_MAX_FILE, KBUF_SECRET);
	for (size_t i = 0; i < 2; i++) {
		if (slip39_decode(m[i].text, strlen(m[i].text), 0, &s, NULL) !=
		    KEYD_OK || bundle_commit(b->set_id, &s, c) != KEYD_OK ||
		    backup_share_sheet(&w, b, "backup.kbk", &m[i], c,
		    (int)i) != KEYD_OK)
			die("cannot make a share sheet");
		write_seed(names[i], kbuf_ptr(&w), kbuf_avail(&w));
		kbuf_reset(&w);
	}
	kbuf_free(&w);
	slip39_mnemonics_free(m, n);
	bundle_free(b);
}

static void
make_slip39(void)
{
	static const struct slip39_group one[] = { { 2, 3 } };
	static const struct slip39_group single[] = { { 1, 1 } };
	static const struct slip39_group groups[] = { { 1, 1 }, { 2, 3 },
		{ 3, 5 } };

	make_split("2of3-128", 16, 1, one, 1, 1, "");
	make_split("2of3-256", 32, 1, one, 1, 1, "");
	make_split("1of1-512", 64, 1, single, 1, 0, "TREZOR");
	make_split("groups-256", 32, 2, groups, 3, 1, "");
	make_sheet();
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s frames|bundles|slip39 DIR\n",
		    argv[0]);
		return 2;
	}
	outdir = argv[2];
	if (strcmp(argv[1], "frames") == 0)
		make_frames();
	else if (strcmp(argv[1], "bundles") == 0)
		make_bundles();
	else if (strcmp(argv[1], "slip39") == 0)
		make_slip39();
	else
		die("unknown kind of seed");
	return 0;
}
