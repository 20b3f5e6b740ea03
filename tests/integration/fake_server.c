/*
 * fake_server.c: a stand-in for keyd, for script tests of the client side
 * until the real daemon can take its place there. It answers hello, list
 * and status; given a private key (PEM), it also serves pubkey, sign and
 * decrypt with that key through OpenSSL, following keyd.proto's rules for
 * each algorithm, so that keydctl's output can be checked with openssl.
 * The key name "nokey" is unknown. untrusted_peer.sh runs it as nobody.
 * usage: fake_server SOCKET_PATH [KEY.pem]. It serves one connection at a
 * time until it is killed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "frame.h"
#include "kbuf.h"
#include "keyd_err.h"

/* Requests larger than keyd's default limit are refused, as keyd does. */
#define FAKE_MAX_REQUEST FRAME_MAX_DEFAULT

static int
read_all(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		w = send(fd, p + done, n - done, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

/* Largest signature or plaintext the fake makes. */
#define FAKE_MAX_OUT 2048

static EVP_PKEY *fake_key;

static const EVP_MD *
sign_md(Keyd__V1__SignAlg alg)
{
	switch (alg) {
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256:
		return EVP_sha256();
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384:
		return EVP_sha384();
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512:
	case KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* keyd.proto's SignAlg: a digest (ECDSA, RSA), a DigestInfo, or the
 * message (Ed25519). Returns the signature length, or 0. */
static size_t
fake_sign(const Keyd__V1__SignRequest *sr, uint8_t *sig)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	const EVP_MD *md = sign_md(sr->alg);
	size_t len = FAKE_MAX_OUT, ret = 0;
	int pss = sr->alg >= KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256 &&
	    sr->alg <= KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512;

	if (sr->ecdsa_raw)
		return 0;
	if (sr->alg == KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519) {
		if ((mc = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestSignInit(mc, NULL, NULL, NULL, fake_key) == 1 &&
		    EVP_DigestSign(mc, sig, &len, sr->data.data,
		    sr->data.len) == 1)
			ret = len;
		EVP_MD_CTX_free(mc);
		return ret;
	}
	if ((pc = EVP_PKEY_CTX_new(fake_key, NULL)) == NULL ||
	    EVP_PKEY_sign_init(pc) != 1)
		goto out;
	if (sr->alg != KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, pss ? RSA_PKCS1_PSS_PADDING :
	    RSA_PKCS1_PADDING) != 1)
		goto out;
	if (md != NULL && EVP_PKEY_CTX_set_signature_md(pc, md) != 1)
		goto out;
	if (pss && (EVP_PKEY_CTX_set_rsa_pss_saltlen(pc,
	    RSA_PSS_SALTLEN_DIGEST) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) != 1))
		goto out;
	if (EVP_PKEY_sign(pc, sig, &len, sr->data.data, sr->data.len) == 1)
		ret = len;
out:
	EVP_PKEY_CTX_free(pc);
	return ret;
}

static size_t
fake_decrypt(const Keyd__V1__DecryptRequest *dr, uint8_t *pt)
{
	EVP_PKEY_CTX *pc = NULL;
	const EVP_MD *md;
	size_t len = FAKE_MAX_OUT, ret = 0;

	switch (dr->alg) {
	case KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1:
		md = EVP_sha1();
		break;
	case KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA256:
		md = EVP_sha256();
		break;
	case KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA384:
		md = EVP_sha384();
		break;
	default:
		md = EVP_sha512();
		break;
	}
	if ((pc = EVP_PKEY_CTX_new(fake_key, NULL)) != NULL &&
	    EVP_PKEY_decrypt_init(pc) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, md) == 1 &&
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) == 1 &&
	    EVP_PKEY_decrypt(pc, pt, &len, dr->ciphertext.data,
	    dr->ciphertext.len) == 1)
		ret = len;
	EVP_PKEY_CTX_free(pc);
	return ret;
}

static int
answer(int fd, const Keyd__V1__Request *req)
{
	Keyd__V1__PubkeyReply pub = KEYD__V1__PUBKEY_REPLY__INIT;
	Keyd__V1__SignReply sign = KEYD__V1__SIGN_REPLY__INIT;
	Keyd__V1__DecryptReply dec = KEYD__V1__DECRYPT_REPLY__INIT;
	Keyd__V1__StatusReply st = KEYD__V1__STATUS_REPLY__INIT;
	uint8_t out[FAKE_MAX_OUT], *spki = NULL;
	const char *key = NULL;
	char msg[128];
	int spkilen;
	Keyd__V1__Response resp = KEYD__V1__RESPONSE__INIT;
	Keyd__V1__HelloReply hello = KEYD__V1__HELLO_REPLY__INIT;
	Keyd__V1__ListReply list = KEYD__V1__LIST_REPLY__INIT;
	Keyd__V1__KeyInfo ki = KEYD__V1__KEY_INFO__INIT;
	Keyd__V1__KeyInfo *keys[1] = { &ki };
	Keyd__V1__Op ops[1] = { KEYD__V1__OP__OP_SIGN };
	struct kbuf ob;
	int r = -1;

	resp.id = req->id;
	switch (req->op_case) {
	case KEYD__V1__REQUEST__OP_HELLO:
		hello.protocol_version = KEYD_PROTOCOL_VERSION;
		hello.daemon_version = (char *)(uintptr_t)"fake";
		hello.client_name = (char *)(uintptr_t)"fake-client";
		hello.ops = ops;
		hello.n_ops = 1;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_HELLO;
		resp.hello = &hello;
		break;
	case KEYD__V1__REQUEST__OP_LIST:
		ki.name = (char *)(uintptr_t)"fake-key";
		ki.type = KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P256;
		ki.bits = 256;
		ki.ops = ops;
		ki.n_ops = 1;
		list.keys = keys;
		list.n_keys = 1;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_LIST;
		resp.list = &list;
		break;
	case KEYD__V1__REQUEST__OP_STATUS:
		st.uptime_s = 61;
		st.daemon_version = (char *)(uintptr_t)"fake";
		st.requests = 5;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_STATUS;
		resp.status = &st;
		break;
	case KEYD__V1__REQUEST__OP_PUBKEY:
		key = req->pubkey->key;
		if (fake_key == NULL || strcmp(key, "nokey") == 0)
			break;
		if ((spkilen = i2d_PUBKEY(fake_key, &spki)) <= 0) {
			resp.error = KEYD_ERR_CRYPTO;
			break;
		}
		pub.spki_der.data = spki;
		pub.spki_der.len = (size_t)spkilen;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_PUBKEY;
		resp.pubkey = &pub;
		break;
	case KEYD__V1__REQUEST__OP_SIGN:
		key = req->sign->key;
		if (fake_key == NULL || strcmp(key, "nokey") == 0)
			break;
		if ((sign.signature.len = fake_sign(req->sign, out)) == 0) {
			resp.error = KEYD_ERR_BAD_ALGORITHM;
			break;
		}
		sign.signature.data = out;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_SIGN;
		resp.sign = &sign;
		break;
	case KEYD__V1__REQUEST__OP_DECRYPT:
		key = req->decrypt->key;
		if (fake_key == NULL || strcmp(key, "nokey") == 0)
			break;
		if ((dec.plaintext.len = fake_decrypt(req->decrypt, out)) ==
		    0) {
			resp.error = KEYD_ERR_DECRYPT;
			break;
		}
		dec.plaintext.data = out;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_DECRYPT;
		resp.decrypt = &dec;
		break;
	default:
		resp.error = KEYD_ERR_UNKNOWN_OP;
		break;
	}
	if (key != NULL && resp.result_case ==
	    KEYD__V1__RESPONSE__RESULT__NOT_SET && resp.error == 0) {
		resp.error = KEYD_ERR_UNKNOWN_KEY;
		snprintf(msg, sizeof(msg), "no key '%.64s' for client "
		    "'fake-client'", key);
		resp.message = msg;
	}
	kbuf_init(&ob, FRAME_HDR_LEN + FRAME_MAX_DEFAULT, 0);
	if (frame_put_msg(&ob, &resp.base, FRAME_MAX_DEFAULT) == KEYD_OK)
		r = write_all(fd, kbuf_ptr(&ob), kbuf_avail(&ob));
	kbuf_free(&ob);
	OPENSSL_free(spki);
	OPENSSL_cleanse(out, sizeof(out));
	return r;
}

static void
serve(int fd)
{
	Keyd__V1__Request *req;
	uint8_t hdr[FRAME_HDR_LEN], *body;
	uint32_t n;
	int r;

	for (;;) {
		if (read_all(fd, hdr, sizeof(hdr)) != 0)
			return;
		n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
		    ((uint32_t)hdr[2] << 8) | hdr[3];
		if (n > FAKE_MAX_REQUEST || (body = malloc(n + 1)) == NULL)
			return;
		r = read_all(fd, body, n) == 0 &&
		    frame_unpack_request(body, n, &req) == KEYD_OK;
		free(body);
		if (!r)
			return;
		r = answer(fd, req);
		frame_free_request(req);
		if (r != 0)
			return;
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sa;
	int lfd, fd;

	FILE *kf;

	if (argc < 2 || argc > 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: fake_server SOCKET_PATH [KEY.pem]\n");
		return 2;
	}
	if (argc == 3) {
		if ((kf = fopen(argv[2], "r")) == NULL ||
		    (fake_key = PEM_read_PrivateKey(kf, NULL, NULL,
		    NULL)) == NULL) {
			fprintf(stderr, "fake_server: cannot read key %s\n",
			    argv[2]);
			return 1;
		}
		fclose(kf);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, argv[1], strlen(argv[1]));
	umask(0);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 16) != 0) {
		fprintf(stderr, "fake_server: cannot listen on %s: %s\n",
		    argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "fake_server: accept: %s\n",
			    strerror(errno));
			return 1;
		}
		serve(fd);
		close(fd);
	}
}
