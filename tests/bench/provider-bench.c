/*
 * provider-bench.c: signatures per second through keyd's OpenSSL provider
 * (keyd.so) against libkeyd's keyd_sign of the same work, in one run.
 * tests/bench/run-provider-bench.sh runs it; docs/benchmarks.md holds a
 * run. Not a test: it asserts nothing.
 *
 *   provider-bench KEY SECONDS THREADS ROUNDS
 *
 * The work: an ECDSA signature over a 1 KiB message. libkeyd: SHA-256 of
 * the message, then keyd_sign (each thread its own connection). The
 * provider: EVP_DigestSignInit_ex and EVP_DigestSign with keyd:KEY (as a
 * TLS handshake does: a new context each time). The two alternate for
 * ROUNDS rounds of SECONDS each, and the median of each is printed.
 * keyd's socket: KEYD_SOCKET; keyd.so: OPENSSL_MODULES.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/store.h>

#include "keyd.h"

#define MSG_LEN 1024
#define MAX_THREADS 16
#define MAX_ROUNDS 16

static const char *key_name;
static EVP_PKEY *pkey;
static unsigned char msg[MSG_LEN];
static atomic_int stop;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run_libkeyd(void *arg)
{
	struct keyd_client *c = NULL;
	unsigned char dgst[32], sig[KEYD_MAX_SIGNATURE];
	long *n = arg;
	size_t len;

	if (keyd_connect(NULL, &c) != KEYD_OK) {
		fprintf(stderr, "provider-bench: %s\n", keyd_errmsg(NULL));
		exit(1);
	}
	while (!atomic_load(&stop)) {
		EVP_Digest(msg, sizeof(msg), dgst, NULL, EVP_sha256(), NULL);
		len = sizeof(sig);
		if (keyd_sign(c, key_name, KEYD_ECDSA_SHA256, dgst, sizeof(dgst),
		    sig, &len) != KEYD_OK) {
			fprintf(stderr, "provider-bench: %s\n", keyd_errmsg(c));
			exit(1);
		}
		(*n)++;
	}
	keyd_close(c);
	return NULL;
}

static void *
run_provider(void *arg)
{
	unsigned char sig[KEYD_MAX_SIGNATURE];
	long *n = arg;
	EVP_MD_CTX *md;
	size_t len;

	while (!atomic_load(&stop)) {
		if ((md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey,
		    NULL) != 1 ||
		    (len = sizeof(sig), EVP_DigestSign(md, sig, &len, msg,
		    sizeof(msg))) != 1) {
			ERR_print_errors_fp(stderr);
			exit(1);
		}
		EVP_MD_CTX_free(md);
		(*n)++;
	}
	return NULL;
}

/* One round: THREADS threads of fn for SECONDS; signatures a second. */
static double
round_of(void *(*fn)(void *), int threads, double seconds)
{
	pthread_t th[MAX_THREADS];
	long n[MAX_THREADS] = { 0 }, total = 0;
	double t0, t1;
	int i;

	atomic_store(&stop, 0);
	t0 = now();
	for (i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, fn, &n[i]) != 0)
			exit(1);
	while (now() - t0 < seconds) {
		struct timespec ts = { 0, 20000000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		total += n[i];
	}
	t1 = now();
	return total / (t1 - t0);
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static EVP_PKEY *
load(const char *name)
{
	OSSL_STORE_CTX *st;
	OSSL_STORE_INFO *info;
	EVP_PKEY *pk = NULL;
	char uri[300];

	snprintf(uri, sizeof(uri), "keyd:%s", name);
	if ((st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL)) == NULL)
		return NULL;
	while (pk == NULL && !OSSL_STORE_eof(st)) {
		if ((info = OSSL_STORE_load(st)) == NULL)
			continue;
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pk = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(st);
	return pk;
}

int
main(int argc, char **argv)
{
	double a[MAX_ROUNDS], b[MAX_ROUNDS], seconds;
	int threads, rounds, r;

	if (argc != 5) {
		fprintf(stderr, "usage: provider-bench KEY SECONDS THREADS "
		    "ROUNDS\n");
		return 2;
	}
	key_name = argv[1];
	seconds = atof(argv[2]);
	threads = atoi(argv[3]);
	rounds = atoi(argv[4]);
	if (threads < 1 || threads > MAX_THREADS || rounds < 1 ||
	    rounds > MAX_ROUNDS || seconds <= 0)
		return 2;
	memset(msg, 'k', sizeof(msg));
	if (OSSL_PROVIDER_load(NULL, "default") == NULL ||
	    OSSL_PROVIDER_load(NULL, "keyd") == NULL ||
	    (pkey = load(key_name)) == NULL) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		a[r] = round_of(run_libkeyd, threads, seconds);
		b[r] = round_of(run_provider, threads, seconds);
	}
	qsort(a, (size_t)rounds, sizeof(a[0]), cmp);
	qsort(b, (size_t)rounds, sizeof(b[0]), cmp);
	printf("%d %.0f %.0f %.3f\n", threads, a[rounds / 2], b[rounds / 2],
	    b[rounds / 2] / a[rounds / 2]);
	EVP_PKEY_free(pkey);
	return 0;
}
