/*
 * tp_raw.c: plays a compromised socket-facing process against keyd-token.
 * It starts keyd-token as the supervisor does (control channel on fd 3,
 * one request channel on fd 4), hands it the PIN, and sends it requests
 * that keyd-serve never makes: a mechanism the key's ops do not imply,
 * parameters keyd does not use, SRTP AES-GCM with another IV or tag
 * length. Each must be refused with KEYD_ERR_DENIED; the requests
 * keyd-serve does make must still work.
 *
 *   tp_raw KEYD-TOKEN CONFIG PIN
 *
 * The configuration's keys, in this order (token_checks.sh writes it):
 *   0 rsa-dec   RSA-2048, ops = decrypt
 *   1 rsa-sign  RSA-2048, ops = sign
 *   2 p256      P-256, ops = sign
 *   3 kek       AES-256, ops = srtp-new, srtp-open
 *   4 rsa-ir    RSA-2048, ops = decrypt, pkcs1_decrypt = implicit-rejection
 * Exits 0 when every case went as expected.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "digestinfo.h"
#include "keyd_err.h"
#include "tokenwire.h"

#define K_RSA_DEC 0
#define K_RSA_SIGN 1
#define K_P256 2
#define K_KEK 3
#define K_RSA_IR 4
#define N_KEYS 5
#define RSA_LEN 256
#define START_WAIT_MS 30000

static int chan = -1;
static int failures;

static void
check(int ok, const char *what, const char *msg)
{
	printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, msg[0] ? ": " : "",
	    msg);
	if (!ok)
		failures++;
}

/* One request on the channel; returns the reply's r, the output in out
 * (*outlen bytes) and the message in msg. */
static int
call(struct tw_req *q, const uint8_t *iv, const uint8_t *aad,
    const uint8_t *in, uint8_t *out, size_t *outlen, char *msg)
{
	struct kbuf b;
	struct tw_rep rep;
	int r = KEYD_ERR_PROTOCOL;

	kbuf_init(&b, TW_MAX_REQ, 0);
	if (kbuf_put(&b, q, sizeof(*q)) != KEYD_OK ||
	    (q->iv_len && kbuf_put(&b, iv, q->iv_len) != KEYD_OK) ||
	    (q->aad_len && kbuf_put(&b, aad, q->aad_len) != KEYD_OK) ||
	    (q->in_len && kbuf_put(&b, in, q->in_len) != KEYD_OK) ||
	    tw_send(chan, kbuf_ptr(&b), kbuf_avail(&b), NULL, 0) != 0 ||
	    tw_recv_one(chan, &b, sizeof(rep) + TW_MAX_IO,
	    tw_now_ms() + START_WAIT_MS) != 0 ||
	    kbuf_get_bytes(&b, &rep, sizeof(rep)) != KEYD_OK ||
	    rep.out_len != kbuf_avail(&b)) {
		fprintf(stderr, "tp_raw: no well-formed reply from keyd-token: "
		    "%s\n", strerror(errno));
		exit(1);
	}
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	snprintf(msg, TW_MSG_LEN, "%s", rep.msg);
	if (out != NULL && rep.out_len <= *outlen) {
		memcpy(out, kbuf_ptr(&b), rep.out_len);
		*outlen = rep.out_len;
	}
	r = rep.r;
	kbuf_free(&b);
	return r;
}

static void
req(struct tw_req *q, uint32_t op, uint32_t key, uint64_t mech)
{
	memset(q, 0, sizeof(*q));
	q->op = op;
	q->key = key;
	q->mech = mech;
	q->out_len = TW_MAX_IO;
}

static void
params(struct tw_req *q, uint64_t hash, uint64_t mgf, uint64_t slen)
{
	q->has_params = 1;
	q->p_hash = hash;
	q->p_mgf = mgf;
	q->p_slen = slen;
}

/* Encrypts in to the public key spki with OpenSSL: PKCS#1 v1.5 or
 * OAEP-SHA1 (what SoftHSM2 decrypts). */
static int
rsa_encrypt(const struct token_key *k, int oaep, const uint8_t *in,
    size_t inlen, uint8_t ct[RSA_LEN])
{
	const uint8_t *p = k->spki;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)k->spki_len);
	EVP_PKEY_CTX *c = pk != NULL ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
	size_t n = RSA_LEN;
	int ok;

	ok = c != NULL && EVP_PKEY_encrypt_init(c) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(c, oaep ? RSA_PKCS1_OAEP_PADDING :
	    RSA_PKCS1_PADDING) > 0 &&
	    EVP_PKEY_encrypt(c, ct, &n, in, inlen) > 0 && n == RSA_LEN;
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(pk);
	return ok ? 0 : -1;
}

static void
run_cases(const struct tw_info *info)
{
	static const uint8_t secret[16] = "keyd-tp-secret!";
	uint8_t ct[RSA_LEN], in[RSA_LEN], out[TW_MAX_IO], iv[16], aad[8];
	uint8_t blob[64];
	char msg[TW_MSG_LEN];
	struct tw_req q;
	size_t outlen;
	int r;

	/* Decryption with the OAEP-only key. */
	if (rsa_encrypt(&info->keys[K_RSA_DEC], 1, secret, sizeof(secret),
	    ct) != 0 || rsa_encrypt(&info->keys[K_RSA_IR], 0, secret,
	    sizeof(secret), in) != 0) {
		fprintf(stderr, "tp_raw: cannot encrypt to the token's keys\n");
		exit(1);
	}
	req(&q, TW_DECRYPT, K_RSA_DEC, CKM_RSA_PKCS_OAEP);
	params(&q, CKM_SHA_1, CKG_MGF1_SHA1, 0);
	q.in_len = RSA_LEN;
	outlen = sizeof(out);
	r = call(&q, NULL, NULL, ct, out, &outlen, msg);
	check(r == KEYD_OK && outlen == sizeof(secret) &&
	    memcmp(out, secret, outlen) == 0,
	    "RSA-OAEP-SHA1 decryption, as keyd-serve asks", msg);

	if (rsa_encrypt(&info->keys[K_RSA_DEC], 0, secret, sizeof(secret),
	    ct) != 0)
		exit(1);
	req(&q, TW_DECRYPT, K_RSA_DEC, CKM_RSA_PKCS);
	q.in_len = RSA_LEN;
	r = call(&q, NULL, NULL, ct, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "CKM_RSA_PKCS decryption with an "
	    "OAEP-only key is refused", msg);

	req(&q, TW_DECRYPT, K_RSA_DEC, CKM_RSA_X_509);
	q.in_len = RSA_LEN;
	r = call(&q, NULL, NULL, ct, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "raw RSA decryption without "
	    "pkcs1_decrypt is refused", msg);

	req(&q, TW_DECRYPT, K_RSA_DEC, CKM_RSA_PKCS_OAEP);
	params(&q, CKM_SHA256, CKG_MGF1_SHA1, 0);
	q.in_len = RSA_LEN;
	r = call(&q, NULL, NULL, ct, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "OAEP with a hash and MGF keyd does "
	    "not pair is refused", msg);

	req(&q, TW_DECRYPT, K_RSA_DEC, CKM_RSA_PKCS_OAEP);
	q.in_len = RSA_LEN;
	r = call(&q, NULL, NULL, ct, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "OAEP without parameters is refused",
	    msg);

	/* Raw RSA on a key with pkcs1_decrypt: what rsa_ir.c sends. */
	req(&q, TW_DECRYPT, K_RSA_IR, CKM_RSA_X_509);
	q.in_len = RSA_LEN;
	outlen = sizeof(out);
	r = call(&q, NULL, NULL, in, out, &outlen, msg);
	check(r == KEYD_OK && outlen == RSA_LEN &&
	    memcmp(out + RSA_LEN - sizeof(secret), secret,
	    sizeof(secret)) == 0, "raw RSA decryption with pkcs1_decrypt, "
	    "as rsa_ir.c asks", msg);

	/* Signatures. */
	memset(in, 0x5a, sizeof(in));
	in[0] = 0;
	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_X_509);
	q.in_len = RSA_LEN;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "raw RSA (CKM_RSA_X_509) with a "
	    "sign-only key is refused", msg);

	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_PKCS);
	q.in_len = 51;                    /* as long as a SHA-256 DigestInfo */
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "RSA PKCS#1 v1.5 over bytes that are not "
	    "a DigestInfo is refused", msg);

	memcpy(in, digestinfos[0].prefix, digestinfos[0].prefix_len);
	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_PKCS);
	q.in_len = 51;                    /* a DigestInfo of SHA-256 */
	outlen = sizeof(out);
	r = call(&q, NULL, NULL, in, out, &outlen, msg);
	check(r == KEYD_OK && outlen == RSA_LEN, "RSA PKCS#1 v1.5 signature "
	    "of a SHA-256 DigestInfo", msg);
	memset(in, 0x5a, sizeof(in));
	in[0] = 0;

	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_PKCS_PSS);
	params(&q, CKM_SHA256, CKG_MGF1_SHA256, 32);
	q.in_len = 32;
	outlen = sizeof(out);
	r = call(&q, NULL, NULL, in, out, &outlen, msg);
	check(r == KEYD_OK && outlen == RSA_LEN, "RSA-PSS-SHA256 signature",
	    msg);

	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_PKCS_PSS);
	params(&q, CKM_SHA256, CKG_MGF1_SHA256, 200);
	q.in_len = 32;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "RSA-PSS with a 200-byte salt is refused",
	    msg);

	req(&q, TW_SIGN, K_RSA_SIGN, CKM_RSA_PKCS_PSS);
	params(&q, CKM_SHA256, CKG_MGF1_SHA512, 32);
	q.in_len = 32;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "RSA-PSS with MGF1 of another hash is "
	    "refused", msg);

	req(&q, TW_SIGN, K_RSA_SIGN, CKM_SHA256_RSA_PKCS);
	q.in_len = 32;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "CKM_SHA256_RSA_PKCS (not keyd's) is "
	    "refused", msg);

	req(&q, TW_SIGN, K_P256, CKM_ECDSA);
	q.in_len = 32;
	outlen = sizeof(out);
	r = call(&q, NULL, NULL, in, out, &outlen, msg);
	check(r == KEYD_OK && outlen == 64, "ECDSA signature", msg);

	req(&q, TW_SIGN, K_P256, CKM_RSA_PKCS);
	q.in_len = 32;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "an RSA mechanism with an EC key is "
	    "refused", msg);

	req(&q, TW_SIGN, K_P256, CKM_ECDSA_SHA256);
	q.in_len = 32;
	r = call(&q, NULL, NULL, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "CKM_ECDSA_SHA256 (not keyd's) is refused",
	    msg);

	/* AES-GCM under the SRTP KEK. */
	memset(iv, 7, sizeof(iv));
	memset(aad, 9, sizeof(aad));
	req(&q, TW_GCM, K_KEK, 0);
	q.encrypt = 1;
	q.tag_bits = 128;
	q.iv_len = 12;
	q.aad_len = sizeof(aad);
	q.in_len = 32;
	q.out_len = 48;
	outlen = sizeof(blob);
	r = call(&q, iv, aad, in, blob, &outlen, msg);
	check(r == KEYD_OK && outlen == 48, "AES-GCM with a 12-byte IV and a "
	    "128-bit tag, as srtp.c asks", msg);

	req(&q, TW_GCM, K_KEK, 0);
	q.encrypt = 0;
	q.tag_bits = 128;
	q.iv_len = 12;
	q.aad_len = sizeof(aad);
	q.in_len = 48;
	q.out_len = 32;
	outlen = sizeof(out);
	r = call(&q, iv, aad, blob, out, &outlen, msg);
	check(r == KEYD_OK && outlen == 32 && memcmp(out, in, 32) == 0,
	    "AES-GCM opens it again", msg);

	req(&q, TW_GCM, K_KEK, 0);
	q.encrypt = 1;
	q.tag_bits = 128;
	q.iv_len = 16;
	q.aad_len = sizeof(aad);
	q.in_len = 32;
	q.out_len = 48;
	r = call(&q, iv, aad, in, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "AES-GCM with a 16-byte IV is refused",
	    msg);

	req(&q, TW_GCM, K_KEK, 0);
	q.encrypt = 0;
	q.tag_bits = 32;
	q.iv_len = 12;
	q.aad_len = sizeof(aad);
	q.in_len = 36;
	q.out_len = 32;
	r = call(&q, iv, aad, blob, NULL, NULL, msg);
	check(r == KEYD_ERR_DENIED, "AES-GCM with a 32-bit tag is refused",
	    msg);
}

int
main(int argc, char **argv)
{
	int ctl[2], ch[2];
	uint32_t w;
	pid_t pid;
	struct kbuf b;
	struct tw_info info;
	int status;

	if (argc != 4) {
		fprintf(stderr, "usage: tp_raw KEYD-TOKEN CONFIG PIN\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, ch) != 0) {
		perror("tp_raw: socketpair");
		return 1;
	}
	if ((pid = fork()) < 0) {
		perror("tp_raw: fork");
		return 1;
	}
	if (pid == 0) {
		/* Out of the way first: the pairs may sit on 3 and 4. */
		if (dup2(ctl[1], 100) < 0 || dup2(ch[1], 101) < 0 ||
		    dup2(100, TW_FD_CONTROL) < 0 ||
		    dup2(101, TW_FD_FIRST_CHANNEL) < 0)
			_exit(127);
		for (int fd = TW_FD_FIRST_CHANNEL + 1; fd < 128; fd++)
			close(fd);
		execl(argv[1], "keyd-token", "--config", argv[2], "--role",
		    "primary", "--channels", "1", (char *)NULL);
		_exit(127);
	}
	close(ctl[1]);
	close(ch[1]);
	chan = ch[0];

	kbuf_init(&b, TW_MAX_FRAME, 0);
	w = (uint32_t)strlen(argv[3]);
	if (tw_put_word(&b, TW_CTL_PIN) != KEYD_OK ||
	    tw_put_word(&b, w) != KEYD_OK ||
	    kbuf_put(&b, argv[3], w) != KEYD_OK ||
	    tw_send(ctl[0], kbuf_ptr(&b), kbuf_avail(&b), NULL, 0) != 0) {
		fprintf(stderr, "tp_raw: cannot send the PIN\n");
		return 1;
	}
	memset(&info, 0, sizeof(info));
	if (tw_recv(ctl[0], &b, TW_MAX_FRAME, NULL, NULL, tw_now_ms() +
	    START_WAIT_MS) != 0 || tw_get_word(&b, &w) != KEYD_OK ||
	    w != TW_CTL_READY || tw_info_get(&b, &info) != KEYD_OK ||
	    info.n_all < N_KEYS) {
		fprintf(stderr, "tp_raw: keyd-token did not get ready (frame "
		    "%u)\n", w);
		return 1;
	}
	run_cases(&info);
	tw_info_free(&info);
	kbuf_free(&b);

	/* Its control channel closing ends it. */
	close(chan);
	close(ctl[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "tp_raw: keyd-token did not exit cleanly\n");
		failures++;
	}
	printf("%d case(s) failed\n", failures);
	return failures ? 1 : 0;
}
