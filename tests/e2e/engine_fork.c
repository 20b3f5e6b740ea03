/*
 * engine_fork: the pre-forking server pattern (Kamailio's tls module)
 * through OpenSSL, libp11's engine and keyd-pkcs11.so. The parent loads
 * the engine (from OPENSSL_CONF) and a private key and signs; children
 * sign with the inherited key, and one child loads the key itself after
 * the fork, as Kamailio does. Every signature is verified with the public
 * key read from the token directly.
 *
 *   engine_fork URI PUB_PEM NCHILDREN
 *
 * The ENGINE API is deprecated in OpenSSL 3 but is what libp11 0.4.12
 * offers (its provider came in 0.4.14).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static ENGINE *engine;

static void
die(const char *what)
{
	fprintf(stderr, "engine_fork (pid %ld): %s\n", (long)getpid(), what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static EVP_PKEY *
load_key(const char *uri)
{
	EVP_PKEY *k = ENGINE_load_private_key(engine, uri, NULL, NULL);

	if (k == NULL)
		die("ENGINE_load_private_key");
	return k;
}

/* Signs a message with key (through the engine) and verifies it with
 * pub; 0 on success. */
static int
sign_verify(EVP_PKEY *key, EVP_PKEY *pub, int tag)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char msg[64], sig[512];
	size_t siglen = sizeof(sig);
	int n, ok;

	n = snprintf((char *)msg, sizeof(msg), "REGISTER %d from pid %ld", tag,
	    (long)getpid());
	ok = ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, msg, (size_t)n) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		fprintf(stderr, "engine_fork (pid %ld): signing %d failed\n",
		    (long)getpid(), tag);
		ERR_print_errors_fp(stderr);
		return -1;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, msg, (size_t)n) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		fprintf(stderr, "engine_fork (pid %ld): signature %d does not "
		    "verify\n", (long)getpid(), tag);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	EVP_PKEY *key, *pub, *own;
	FILE *fp;
	pid_t pid;
	int i, n, st, failed = 0;

	if (argc != 4 || (n = atoi(argv[3])) < 1 || n > 32)
		die("usage: engine_fork URI PUB_PEM NCHILDREN");
	if ((fp = fopen(argv[2], "r")) == NULL ||
	    (pub = PEM_read_PUBKEY(fp, NULL, NULL, NULL)) == NULL)
		die("cannot read the public key");
	fclose(fp);
	if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1 ||
	    (engine = ENGINE_by_id("pkcs11")) == NULL ||
	    ENGINE_init(engine) != 1)
		die("cannot load libp11's engine (OPENSSL_CONF?)");
	key = load_key(argv[1]);
	if (sign_verify(key, pub, 0) != 0)
		die("the parent cannot sign");
	for (i = 1; i <= n; i++) {
		fflush(stderr);
		if ((pid = fork()) < 0)
			die("fork");
		if (pid == 0) {
			/* The last child loads its own key after the fork. */
			own = i == n ? load_key(argv[1]) : key;
			st = sign_verify(own, pub, i * 10) != 0 ||
			    sign_verify(own, pub, i * 10 + 1) != 0;
			fflush(stderr);
			_exit(st);
		}
	}
	for (i = 1; i <= n; i++) {
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	if (sign_verify(key, pub, 1000) != 0)
		failed++;
	EVP_PKEY_free(key);
	EVP_PKEY_free(pub);
	ENGINE_finish(engine);
	ENGINE_free(engine);
	printf("children=%d failed=%d\n", n, failed);
	return failed != 0;
}
