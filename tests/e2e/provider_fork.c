/*
 * provider_fork.c: keyd's OpenSSL provider (keyd.so) in the life of a
 * pre-forking server that puts OpenSSL's memory in shared memory, as
 * Kamailio's tls module does. Driven by tests/e2e/provider_fork.sh.
 *
 *   provider_fork fork KEY PUB.pem
 *	Before OpenSSL allocates anything, routes every OpenSSL allocation
 *	into one MAP_SHARED region (CRYPTO_set_mem_functions). Loads the
 *	providers and keyd:KEY, signs once (which fills OpenSSL's caches of
 *	fetched algorithms, as a server's start-up would), then forks
 *	FORK_CHILDREN children; each signs FORK_SIGNS messages from each of
 *	FORK_THREADS threads with EVP_DigestSign, the key object made before
 *	the fork. The children use OpenSSL for nothing else (no local
 *	random numbers: OpenSSL's RNG and locks are not made for shared
 *	memory). After they exit, the parent verifies every signature with
 *	PUB.pem (the token's public key) and prints each child's pid.
 *   provider_fork sibling KEY PUB.pem
 *	The same allocator. The parent loads keyd:KEY and signs once (its
 *	start-up); then one child loads keyd:KEY again (as Kamailio does in
 *	an RPC child on tls.reload) and leaves the new key object's address
 *	in shared memory; a second child, forked from the parent after the
 *	first exited, signs with that key object. The parent verifies.
 *   provider_fork restart KEY PUB.pem
 *	Loads keyd:KEY, signs and verifies, prints "ready", waits for a line
 *	on standard input (the test restarts keyd meanwhile), then signs and
 *	verifies again with the same key object.
 *
 * The providers come from OpenSSL's modules directory (OPENSSL_MODULES).
 * Exit status 0 when everything verified; 1 with a message otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#define FORK_CHILDREN 4
#define FORK_THREADS 4
#define FORK_SIGNS 100
#define SIG_MAX 600
/* The shared arena for OpenSSL's memory; sparse, so generous. */
#define ARENA_SIZE (512u << 20)

/* ---- OpenSSL's allocator over one MAP_SHARED arena (a bump allocator:
 * free does nothing, which a test of a few thousand signatures can
 * afford) ---- */

struct arena {
	_Atomic size_t used;
	unsigned char mem[];
};
static struct arena *arena;

struct blk {
	size_t size;
	size_t pad;   /* keeps the data 16-byte aligned */
};

static void *
shm_malloc(size_t n, const char *file, int line)
{
	size_t need = (sizeof(struct blk) + n + 15) & ~(size_t)15, off;
	struct blk *b;

	(void)file;
	(void)line;
	off = atomic_fetch_add(&arena->used, need);
	if (off + need > ARENA_SIZE - sizeof(*arena))
		return NULL;
	b = (struct blk *)(arena->mem + off);
	b->size = n;
	return b + 1;
}

static void *
shm_realloc(void *p, size_t n, const char *file, int line)
{
	struct blk *b;
	void *q;

	if (p == NULL)
		return shm_malloc(n, file, line);
	b = (struct blk *)p - 1;
	if (n <= b->size)
		return p;
	if ((q = shm_malloc(n, file, line)) != NULL)
		memcpy(q, p, b->size);
	return q;
}

static void
shm_free(void *p, const char *file, int line)
{
	(void)p;
	(void)file;
	(void)line;
}

static void
use_shared_memory(void)
{
	arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED) {
		perror("provider_fork: mmap");
		exit(1);
	}
	if (!CRYPTO_set_mem_functions(shm_malloc, shm_realloc, shm_free)) {
		fprintf(stderr, "provider_fork: CRYPTO_set_mem_functions "
		    "refused: OpenSSL allocated before main\n");
		exit(1);
	}
}

/* ---- results, in their own shared mapping ---- */

struct sig {
	size_t len;
	unsigned char b[SIG_MAX];
};

struct results {
	/* Process-shared: see worker_run. */
	pthread_mutex_t gate;
	pid_t pids[FORK_CHILDREN];
	EVP_PKEY *sibling_key;   /* the first sibling's key object */
	struct sig sigs[FORK_CHILDREN][FORK_THREADS][FORK_SIGNS];
	struct sig one;
};
static struct results *res;

static void
die(const char *what)
{
	fprintf(stderr, "provider_fork[%d]: %s\n", (int)getpid(), what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void
message(char *buf, size_t len, int c, int t, int i)
{
	snprintf(buf, len, "keyd provider fork test: child %d thread %d "
	    "signature %d", c, t, i);
}

static EVP_PKEY *
load_key(const char *name)
{
	OSSL_STORE_CTX *st;
	OSSL_STORE_INFO *info;
	EVP_PKEY *pk = NULL;
	char uri[300];

	snprintf(uri, sizeof(uri), "keyd:%s", name);
	if ((st = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL)) == NULL)
		die("OSSL_STORE_open");
	if (!OSSL_STORE_expect(st, OSSL_STORE_INFO_PKEY))
		die("OSSL_STORE_expect");
	while (pk == NULL && !OSSL_STORE_eof(st)) {
		if ((info = OSSL_STORE_load(st)) == NULL)
			continue;
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			pk = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(st);
	if (pk == NULL)
		die("no private key in the store");
	return pk;
}

static EVP_PKEY *
load_pub(const char *path)
{
	EVP_PKEY *pk;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die("cannot open the public key file");
	pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL)
		die("PEM_read_PUBKEY");
	return pk;
}

/* Signs msg with EVP_DigestSign (SHA-256; none for Ed25519). */
static int
sign(EVP_PKEY *pk, const char *msg, struct sig *out)
{
	EVP_MD_CTX *md;
	int ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return 0;
	out->len = sizeof(out->b);
	ok = EVP_DigestSignInit_ex(md, NULL,
	    EVP_PKEY_is_a(pk, "ED25519") ? NULL : "SHA256", NULL, NULL, pk,
	    NULL) == 1 &&
	    EVP_DigestSign(md, out->b, &out->len, (const unsigned char *)msg,
	    strlen(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

static int
verify(EVP_PKEY *pub, const char *msg, const struct sig *s)
{
	EVP_MD_CTX *md;
	int ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestVerifyInit_ex(md, NULL,
	    EVP_PKEY_is_a(pub, "ED25519") ? NULL : "SHA256", NULL, NULL, pub,
	    NULL) == 1 &&
	    EVP_DigestVerify(md, s->b, s->len, (const unsigned char *)msg,
	    strlen(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

struct worker {
	EVP_PKEY *pk;
	int child, thread, failed;
	sem_t *done;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char msg[128];
	int i;

	for (i = 0; i < FORK_SIGNS; i++) {
		/* A thread's first OpenSSL call registers the thread with
		 * OpenSSL under a global write lock, which lives in the shared
		 * arena but waits on a process-private futex: threads of
		 * several processes starting at once could wait for ever
		 * (seen in about 1 run of 20). So each thread makes its first
		 * call (its first signature) one at a time across processes,
		 * through a process-shared mutex; the other 99 run freely. */
		if (i == 0 && pthread_mutex_lock(&res->gate) != 0)
			abort();
		message(msg, sizeof(msg), w->child, w->thread, i);
		if (!sign(w->pk, msg, &res->sigs[w->child][w->thread][i])) {
			ERR_print_errors_fp(stderr);
			w->failed = 1;
		}
		if (i == 0)
			(void)pthread_mutex_unlock(&res->gate);
		if (w->failed)
			break;
	}
	/* A thread that used OpenSSL runs OpenSSL's clean-up when it ends,
	 * and that takes a global write lock, here in the shared arena:
	 * threads of several processes ending at once can wait forever on a
	 * process-private futex that another process holds (seen in about 1
	 * run of 20). A server keeps its threads; so does this one, until
	 * its process leaves with _exit. */
	(void)sem_post(w->done);
	for (;;)
		pause();
	return NULL;
}

/* A child: FORK_THREADS threads sign with the parent's key object. The
 * child leaves with _exit: its exit handlers must not tear down OpenSSL
 * state that lives in memory its siblings share. */
static void
child_run(EVP_PKEY *pk, int c)
{
	pthread_t th;
	struct worker w[FORK_THREADS];
	sem_t done;
	int t, failed = 0;

	if (sem_init(&done, 0, 0) != 0)
		_exit(1);
	for (t = 0; t < FORK_THREADS; t++) {
		w[t] = (struct worker){ pk, c, t, 0, &done };
		if (pthread_create(&th, NULL, worker_run, &w[t]) != 0)
			_exit(1);
	}
	for (t = 0; t < FORK_THREADS; t++)
		while (sem_wait(&done) != 0)
			;
	for (t = 0; t < FORK_THREADS; t++)
		failed |= w[t].failed;
	_exit(failed ? 1 : 0);
}

static int
wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static OSSL_PROVIDER *prov_default, *prov_keyd;

static void
load_providers(void)
{
	if ((prov_default = OSSL_PROVIDER_load(NULL, "default")) == NULL)
		die("cannot load the default provider");
	if ((prov_keyd = OSSL_PROVIDER_load(NULL, "keyd")) == NULL)
		die("cannot load the keyd provider (OPENSSL_MODULES?)");
}

static int
run_fork(const char *key, const char *pubpath)
{
	EVP_PKEY *pk, *pub;
	char msg[128];
	pid_t pid;
	int c, t, i, bad = 0;

	use_shared_memory();
	load_providers();
	pk = load_key(key);
	pub = load_pub(pubpath);
	if (!sign(pk, "warm-up", &res->one) || !verify(pub, "warm-up",
	    &res->one))
		die("the parent's warm-up signature");
	fflush(NULL);
	for (c = 0; c < FORK_CHILDREN; c++) {
		if ((pid = fork()) < 0)
			die("fork");
		if (pid == 0)
			child_run(pk, c);
		res->pids[c] = pid;
	}
	for (c = 0; c < FORK_CHILDREN; c++)
		if (!wait_child(res->pids[c])) {
			fprintf(stderr, "provider_fork: child %d (pid %d) "
			    "failed\n", c, (int)res->pids[c]);
			bad = 1;
		}
	if (bad)
		return 1;
	for (c = 0; c < FORK_CHILDREN; c++)
		for (t = 0; t < FORK_THREADS; t++)
			for (i = 0; i < FORK_SIGNS; i++) {
				message(msg, sizeof(msg), c, t, i);
				if (!verify(pub, msg, &res->sigs[c][t][i])) {
					fprintf(stderr, "provider_fork: child "
					    "%d thread %d signature %d does "
					    "not verify\n", c, t, i);
					return 1;
				}
			}
	for (c = 0; c < FORK_CHILDREN; c++)
		printf("child %d\n", (int)res->pids[c]);
	printf("verified %d signatures from %d children\n",
	    FORK_CHILDREN * FORK_THREADS * FORK_SIGNS, FORK_CHILDREN);
	return 0;
}

static int
run_sibling(const char *key, const char *pubpath)
{
	EVP_PKEY *pk, *pub;
	pid_t a, b;

	use_shared_memory();
	load_providers();
	/* The server's start-up: its own key, signed with and checked once.
	 * OpenSSL keeps some of its state in its own static data, which a
	 * child's first use of an algorithm would make differ from the
	 * shared part; a server initialises before it forks. */
	pk = load_key(key);
	pub = load_pub(pubpath);
	if (!sign(pk, "warm-up", &res->one) || !verify(pub, "warm-up",
	    &res->one))
		die("the parent's warm-up signature");
	fflush(NULL);
	if ((a = fork()) < 0)
		die("fork");
	if (a == 0) {
		/* Loads the key; the object lives in the shared arena. */
		res->sibling_key = load_key(key);
		_exit(0);
	}
	if (!wait_child(a) || res->sibling_key == NULL)
		die("the first sibling could not load the key");
	if ((b = fork()) < 0)
		die("fork");
	if (b == 0) {
		if (!sign(res->sibling_key, "signed by a sibling", &res->one)) {
			ERR_print_errors_fp(stderr);
			_exit(1);
		}
		_exit(0);
	}
	if (!wait_child(b))
		die("the second sibling could not sign with the first's key");
	if (!verify(pub, "signed by a sibling", &res->one))
		die("the sibling's signature does not verify");
	printf("loaded in %d signed in %d verified\n", (int)a, (int)b);
	return 0;
}

static int
run_restart(const char *key, const char *pubpath)
{
	EVP_PKEY *pk, *pub;
	char line[64], msg[64];
	int i;

	load_providers();
	pk = load_key(key);
	pub = load_pub(pubpath);
	for (i = 0; i < 5; i++) {
		snprintf(msg, sizeof(msg), "before the restart %d", i);
		if (!sign(pk, msg, &res->one) || !verify(pub, msg, &res->one))
			die("a signature before the restart");
	}
	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		die("no go-ahead on stdin");
	for (i = 0; i < 5; i++) {
		snprintf(msg, sizeof(msg), "after the restart %d", i);
		if (!sign(pk, msg, &res->one) || !verify(pub, msg, &res->one))
			die("a signature after keyd's restart");
	}
	printf("signed and verified after the restart\n");
	EVP_PKEY_free(pk);
	EVP_PKEY_free(pub);
	(void)OSSL_PROVIDER_unload(prov_keyd);
	(void)OSSL_PROVIDER_unload(prov_default);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: provider_fork fork|sibling|restart "
		    "KEY PUB.pem\n");
		return 2;
	}
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED) {
		perror("provider_fork: mmap");
		return 1;
	}
	{
		pthread_mutexattr_t ma;

		if (pthread_mutexattr_init(&ma) != 0 ||
		    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED)
		    != 0 || pthread_mutex_init(&res->gate, &ma) != 0) {
			fprintf(stderr, "provider_fork: no process-shared "
			    "mutex\n");
			return 1;
		}
		(void)pthread_mutexattr_destroy(&ma);
	}
	if (strcmp(argv[1], "fork") == 0)
		return run_fork(argv[2], argv[3]);
	if (strcmp(argv[1], "sibling") == 0)
		return run_sibling(argv[2], argv[3]);
	if (strcmp(argv[1], "restart") == 0)
		return run_restart(argv[2], argv[3]);
	fprintf(stderr, "provider_fork: unknown mode %s\n", argv[1]);
	return 2;
}
