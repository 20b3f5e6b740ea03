/*
 * test_libkeyd.c: libkeyd (keydclient) against a fake keyd that runs in
 * threads of this process on a temporary Unix socket. The fake follows a
 * script per request (answer, answer wrongly, hang up, stay silent, ...),
 * and records what it was sent, so that every test checks both the exact
 * result code and what went over the wire.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "kbuf.h"
#include "keyd.h"
#include "ktest.h"
#include "transport.h"

#define FAKE_MAX_SCRIPT 16
#define FAKE_MAX_CONNS 64
#define FAKE_SIG_LEN 72u
#define FAKE_MAX_DATA 20000u
#define TEST_THREADS 4
#define TEST_THREAD_SIGNS 100

/* CHECK_RC(got, want): exact KEYD_ERR_* codes, named on failure. */
#define CHECK_RC(got, want) do { \
	int g_ = (got), w_ = (want); \
	ktest_checks++; \
	if (g_ != w_) { \
		fprintf(stderr, "%s:%d: %s gave %d (%s), want %d (%s)\n", \
		    __FILE__, __LINE__, #got, g_, keyd_strerror(g_), w_, \
		    keyd_strerror(w_)); \
		ktest_failures++; \
	} \
} while (0)

/* CHECK_HAS(s, sub): s contains sub. */
#define CHECK_HAS(s, sub) do { \
	const char *s_ = (s); \
	ktest_checks++; \
	if (s_ == NULL || strstr(s_, (sub)) == NULL) { \
		fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", \
		    __FILE__, __LINE__, s_ ? s_ : "(null)", (sub)); \
		ktest_failures++; \
	} \
} while (0)

/* What the fake does with a request. */
enum act {
	ACT_REPLY = 0,     /* a correct reply */
	ACT_ERROR,         /* error f->err_code with message f->err_msg */
	ACT_BAD_ID,        /* a correct reply to another request id */
	ACT_GARBAGE,       /* a frame that is not a Response */
	ACT_OVERSIZE,      /* a header announcing 2 GiB */
	ACT_CLOSE,         /* hang up without a reply */
	ACT_SILENT,        /* never answer; keep the connection open */
	ACT_WRONG_RESULT,  /* a pubkey result whatever was asked */
	ACT_POSITIVE_ERROR,/* error code 5 */
	ACT_TRAILING,      /* a correct reply and 3 stray bytes */
	ACT_DRIBBLE,       /* a correct reply, one byte at a time */
	ACT_EMPTY_RESULT,  /* an empty signature / public key */
	ACT_BAD_VERSION,   /* hello: protocol version 2 */
	ACT_BAD_NAME,      /* list: a key name with an escape character */
};

struct fake {
	char dir[64];
	char path[128];
	int lfd;
	int stop[2];
	pthread_t acceptor;
	pthread_t conns[FAKE_MAX_CONNS];
	int nconns;
	pthread_mutex_t mu;
	/* the script */
	enum act hello_act;
	enum act script[FAKE_MAX_SCRIPT];
	int nscript, next;
	int32_t err_code;
	const char *err_msg;
	const char *client_name;
	/* what it saw */
	int hellos, requests, id_errors;
	uint32_t hello_version;
	char hello_client_version[64];
	Keyd__V1__Request__OpCase last_op;
	char last_key[300];
	int last_alg;
	int last_raw;
	uint8_t last_data[FAKE_MAX_DATA];
	size_t last_len;
};

struct fake_conn {
	struct fake *f;
	int fd;
};

static void
fake_lock(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
}

static void
fake_unlock(struct fake *f)
{
	pthread_mutex_unlock(&f->mu);
}

/* Waits for fd to be readable; 0, or -1 when told to stop. */
static int
fake_wait(struct fake *f, int fd)
{
	struct pollfd p[2] = { { fd, POLLIN, 0 }, { f->stop[0], POLLIN, 0 } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[1].revents)
			return -1;
		if (p[0].revents)
			return 0;
	}
}

static int
fake_read_all(struct fake *f, int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (fake_wait(f, fd) != 0)
			return -1;
		r = read(fd, p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
fake_write_all(int fd, const uint8_t *p, size_t n)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		w = send(fd, p + done, n - done, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

static int
fake_read_request(struct fake *f, int fd, Keyd__V1__Request **req)
{
	uint8_t hdr[4], *body = NULL;
	uint32_t n;
	int r = -1;

	if (fake_read_all(f, fd, hdr, 4) != 0)
		return -1;
	n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	    ((uint32_t)hdr[2] << 8) | hdr[3];
	if (n > FRAME_MAX_DEFAULT || (body = malloc(n + 1)) == NULL)
		return -1;
	if (fake_read_all(f, fd, body, n) == 0 &&
	    frame_unpack_request(body, n, req) == KEYD_OK)
		r = 0;
	free(body);
	return r;
}

static int
fake_send_msg(int fd, const ProtobufCMessage *m, int dribble,
    const uint8_t *extra, size_t extralen)
{
	struct kbuf b;
	size_t i;
	int r = -1;

	kbuf_init(&b, FRAME_MAX_CEILING + 8, 0);
	if (frame_put_msg(&b, m, FRAME_MAX_CEILING) != KEYD_OK)
		goto out;
	if (extralen > 0 && kbuf_put(&b, extra, extralen) != KEYD_OK)
		goto out;
	if (!dribble) {
		r = fake_write_all(fd, kbuf_ptr(&b), kbuf_avail(&b));
		goto out;
	}
	for (i = 0; i < kbuf_avail(&b); i++) {
		struct timespec ts = { 0, 200000 };

		if (fake_write_all(fd, kbuf_ptr(&b) + i, 1) != 0)
			goto out;
		nanosleep(&ts, NULL);
	}
	r = 0;
out:
	kbuf_free(&b);
	return r;
}

/* Builds and sends the answer to req according to act. 0 to go on, -1 to
 * hang up. */
static int
fake_answer(struct fake *f, int fd, const Keyd__V1__Request *req,
    enum act act)
{
	static const uint8_t garbage[] = { 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff,
	    0xff };
	static const uint8_t oversize[] = { 0x7f, 0xff, 0xff, 0xff, 1, 2, 3 };
	static const uint8_t stray[] = { 1, 2, 3 };
	static uint8_t spki[] = { 0x30, 0x03, 0x01, 0x02, 0x03 };
	static char plaintext[] = "attack at dawn";
	Keyd__V1__Response resp = KEYD__V1__RESPONSE__INIT;
	Keyd__V1__HelloReply hello = KEYD__V1__HELLO_REPLY__INIT;
	Keyd__V1__SignReply sign = KEYD__V1__SIGN_REPLY__INIT;
	Keyd__V1__DecryptReply dec = KEYD__V1__DECRYPT_REPLY__INIT;
	Keyd__V1__PubkeyReply pub = KEYD__V1__PUBKEY_REPLY__INIT;
	Keyd__V1__ListReply list = KEYD__V1__LIST_REPLY__INIT;
	Keyd__V1__KeyInfo k1 = KEYD__V1__KEY_INFO__INIT;
	Keyd__V1__KeyInfo k2 = KEYD__V1__KEY_INFO__INIT;
	Keyd__V1__KeyInfo *keys[2] = { &k1, &k2 };
	Keyd__V1__StatusReply st = KEYD__V1__STATUS_REPLY__INIT;
	Keyd__V1__TokenStatus tok = KEYD__V1__TOKEN_STATUS__INIT;
	Keyd__V1__TokenStatus *toks[1] = { &tok };
	Keyd__V1__KeyStatus ks1 = KEYD__V1__KEY_STATUS__INIT;
	Keyd__V1__KeyStatus ks2 = KEYD__V1__KEY_STATUS__INIT;
	Keyd__V1__KeyStatus *kss[2] = { &ks1, &ks2 };
	Keyd__V1__OpCounters oc = KEYD__V1__OP_COUNTERS__INIT;
	Keyd__V1__OpCounters *ocs[1] = { &oc };
	Keyd__V1__Op hello_ops[3] = { KEYD__V1__OP__OP_SIGN,
	    KEYD__V1__OP__OP_STATUS, (Keyd__V1__Op)9 };
	Keyd__V1__Op k1_ops[1] = { KEYD__V1__OP__OP_SIGN };
	Keyd__V1__Op k2_ops[2] = { KEYD__V1__OP__OP_SIGN,
	    KEYD__V1__OP__OP_DECRYPT };
	uint8_t sigbytes[FAKE_SIG_LEN];
	size_t i;

	switch (act) {
	case ACT_GARBAGE:
		return fake_write_all(fd, garbage, sizeof(garbage));
	case ACT_OVERSIZE:
		(void)fake_write_all(fd, oversize, sizeof(oversize));
		return -1;
	case ACT_CLOSE:
		return -1;
	case ACT_SILENT:
		/* Until the client gives up and hangs up, or the test ends. */
		while (fake_wait(f, fd) == 0) {
			uint8_t sink[256];

			if (read(fd, sink, sizeof(sink)) <= 0)
				break;
		}
		return -1;
	default:
		break;
	}
	resp.id = req->id;
	if (act == ACT_BAD_ID)
		resp.id = req->id + 1000;
	if (act == ACT_ERROR || act == ACT_POSITIVE_ERROR) {
		resp.error = act == ACT_ERROR ? f->err_code : 5;
		resp.message = (char *)(uintptr_t)(f->err_msg ? f->err_msg :
		    "");
		return fake_send_msg(fd, &resp.base, 0, NULL, 0);
	}
	if (act == ACT_WRONG_RESULT) {
		resp.result_case = KEYD__V1__RESPONSE__RESULT_PUBKEY;
		pub.spki_der.data = spki;
		pub.spki_der.len = sizeof(spki);
		resp.pubkey = &pub;
		return fake_send_msg(fd, &resp.base, 0, NULL, 0);
	}
	switch (req->op_case) {
	case KEYD__V1__REQUEST__OP_HELLO:
		hello.protocol_version = act == ACT_BAD_VERSION ? 2 : 1;
		hello.daemon_version = (char *)(uintptr_t)"fake";
		hello.client_name = (char *)(uintptr_t)(f->client_name ?
		    f->client_name : "sbc");
		hello.ops = hello_ops;
		hello.n_ops = 3;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_HELLO;
		resp.hello = &hello;
		break;
	case KEYD__V1__REQUEST__OP_SIGN:
		for (i = 0; i < sizeof(sigbytes); i++)
			sigbytes[i] = (uint8_t)(i ^ 0x5a);
		sign.signature.data = sigbytes;
		sign.signature.len = act == ACT_EMPTY_RESULT ? 0 :
		    sizeof(sigbytes);
		resp.result_case = KEYD__V1__RESPONSE__RESULT_SIGN;
		resp.sign = &sign;
		break;
	case KEYD__V1__REQUEST__OP_DECRYPT:
		dec.plaintext.data = (uint8_t *)plaintext;
		dec.plaintext.len = strlen(plaintext);
		resp.result_case = KEYD__V1__RESPONSE__RESULT_DECRYPT;
		resp.decrypt = &dec;
		break;
	case KEYD__V1__REQUEST__OP_PUBKEY:
		pub.spki_der.data = spki;
		pub.spki_der.len = act == ACT_EMPTY_RESULT ? 0 : sizeof(spki);
		resp.result_case = KEYD__V1__RESPONSE__RESULT_PUBKEY;
		resp.pubkey = &pub;
		break;
	case KEYD__V1__REQUEST__OP_LIST:
		k1.name = (char *)(uintptr_t)"sip-tls";
		k1.type = KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P256;
		k1.bits = 256;
		k1.ops = k1_ops;
		k1.n_ops = 1;
		k2.name = (char *)(uintptr_t)(act == ACT_BAD_NAME ?
		    "old\x1b[2Jrsa" : "old-rsa");
		k2.type = KEYD__V1__KEY_TYPE__KEY_TYPE_RSA;
		k2.bits = 2048;
		k2.ops = k2_ops;
		k2.n_ops = 2;
		k2.weak_extractable = 1;
		list.keys = keys;
		list.n_keys = 2;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_LIST;
		resp.list = &list;
		break;
	case KEYD__V1__REQUEST__OP_STATUS:
		st.uptime_s = 90061;
		st.daemon_version = (char *)(uintptr_t)"0.1.0";
		st.connections = 3;
		st.requests = 10;
		st.errors = 2;
		tok.label = (char *)(uintptr_t)"sbc";
		tok.manufacturer = (char *)(uintptr_t)"SoftHSM project";
		tok.model = (char *)(uintptr_t)"SoftHSM v2";
		tok.serial = (char *)(uintptr_t)"1234";
		tok.logged_in = 1;
		tok.recoveries = 2;
		tok.role = (char *)(uintptr_t)"primary";
		tok.state = (char *)(uintptr_t)"serving";
		tok.active = 1;
		tok.key_copies = 3;
		st.tokens = toks;
		st.n_tokens = 1;
		oc.op = KEYD__V1__OP__OP_SIGN;
		oc.ok = 7;
		oc.errors = 1;
		ks1.name = (char *)(uintptr_t)"sip-tls";
		ks1.ops = ocs;
		ks1.n_ops = 1;
		ks1.latency_us_total = 700;
		ks2.name = (char *)(uintptr_t)"we\"ird\\key\n";
		ks2.weak_extractable = 1;
		st.keys = kss;
		st.n_keys = 2;
		resp.result_case = KEYD__V1__RESPONSE__RESULT_STATUS;
		resp.status = &st;
		break;
	default:
		resp.error = KEYD_ERR_UNKNOWN_OP;
		break;
	}
	if (act == ACT_TRAILING)
		return fake_send_msg(fd, &resp.base, 0, stray, sizeof(stray));
	return fake_send_msg(fd, &resp.base, act == ACT_DRIBBLE, NULL, 0);
}

static void
fake_record(struct fake *f, const Keyd__V1__Request *req)
{
	f->last_op = req->op_case;
	f->last_key[0] = '\0';
	f->last_len = 0;
	if (req->op_case == KEYD__V1__REQUEST__OP_SIGN) {
		snprintf(f->last_key, sizeof(f->last_key), "%s",
		    req->sign->key);
		f->last_alg = req->sign->alg;
		f->last_raw = req->sign->ecdsa_raw;
		f->last_len = req->sign->data.len;
		if (f->last_len <= sizeof(f->last_data) && f->last_len > 0)
			memcpy(f->last_data, req->sign->data.data,
			    f->last_len);
	} else if (req->op_case == KEYD__V1__REQUEST__OP_DECRYPT) {
		snprintf(f->last_key, sizeof(f->last_key), "%s",
		    req->decrypt->key);
		f->last_alg = req->decrypt->alg;
		f->last_len = req->decrypt->ciphertext.len;
		if (f->last_len <= sizeof(f->last_data))
			memcpy(f->last_data, req->decrypt->ciphertext.data,
			    f->last_len);
	} else if (req->op_case == KEYD__V1__REQUEST__OP_PUBKEY) {
		snprintf(f->last_key, sizeof(f->last_key), "%s",
		    req->pubkey->key);
	}
}

static void *
fake_conn_main(void *arg)
{
	struct fake_conn *fc = arg;
	struct fake *f = fc->f;
	Keyd__V1__Request *req = NULL;
	uint64_t prev_id = 0;
	enum act act;
	int go = 1;

	while (go && fake_read_request(f, fc->fd, &req) == 0) {
		fake_lock(f);
		if (req->id <= prev_id)
			f->id_errors++;
		prev_id = req->id;
		if (req->op_case == KEYD__V1__REQUEST__OP_HELLO) {
			f->hellos++;
			f->hello_version = req->hello->protocol_version;
			snprintf(f->hello_client_version,
			    sizeof(f->hello_client_version), "%s",
			    req->hello->client_version);
			act = f->hello_act;
		} else {
			f->requests++;
			act = f->next < f->nscript ? f->script[f->next++] :
			    ACT_REPLY;
			fake_record(f, req);
		}
		fake_unlock(f);
		go = fake_answer(f, fc->fd, req, act) == 0;
		frame_free_request(req);
		req = NULL;
	}
	close(fc->fd);
	free(fc);
	return NULL;
}

static void *
fake_accept_main(void *arg)
{
	struct fake *f = arg;
	struct fake_conn *fc;
	int fd;

	while (fake_wait(f, f->lfd) == 0) {
		if ((fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		fake_lock(f);
		if (f->nconns == FAKE_MAX_CONNS ||
		    (fc = malloc(sizeof(*fc))) == NULL) {
			fake_unlock(f);
			close(fd);
			continue;
		}
		fc->f = f;
		fc->fd = fd;
		if (pthread_create(&f->conns[f->nconns], NULL, fake_conn_main,
		    fc) == 0)
			f->nconns++;
		else {
			close(fd);
			free(fc);
		}
		fake_unlock(f);
	}
	return NULL;
}

/* Listens on path (a new temporary one if path is NULL). */
static void
fake_start(struct fake *f, const char *path)
{
	struct sockaddr_un sa;

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	if (path == NULL) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/keyd-test-XXXXXX");
		if (mkdtemp(f->dir) == NULL) {
			perror("mkdtemp");
			exit(1);
		}
		snprintf(f->path, sizeof(f->path), "%s/keyd.sock", f->dir);
	} else {
		snprintf(f->path, sizeof(f->path), "%s", path);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(f->path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "fake_start: %s is too long\n", f->path);
		exit(1);
	}
	memcpy(sa.sun_path, f->path, strlen(f->path));
	if (pipe(f->stop) != 0 ||
	    (f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(f->lfd, 16) != 0 ||
	    pthread_create(&f->acceptor, NULL, fake_accept_main, f) != 0) {
		perror("fake_start");
		exit(1);
	}
}

/* Stops every thread and removes the socket; keep_dir keeps the temporary
 * directory (for a restart on the same path). */
static void
fake_stop(struct fake *f, int keep_dir)
{
	int i;

	(void)!write(f->stop[1], "x", 1);
	pthread_join(f->acceptor, NULL);
	for (i = 0; i < f->nconns; i++)
		pthread_join(f->conns[i], NULL);
	close(f->lfd);
	close(f->stop[0]);
	close(f->stop[1]);
	unlink(f->path);
	if (!keep_dir && f->dir[0] != '\0')
		rmdir(f->dir);
	pthread_mutex_destroy(&f->mu);
}

static void
fake_script(struct fake *f, int n, ...)
{
	va_list ap;
	int i;

	va_start(ap, n);
	fake_lock(f);
	for (i = 0; i < n && i < FAKE_MAX_SCRIPT; i++)
		f->script[i] = (enum act)va_arg(ap, int);
	f->nscript = i;
	f->next = 0;
	fake_unlock(f);
	va_end(ap);
}

static int
fake_get(struct fake *f, const int *field)
{
	int v;

	fake_lock(f);
	v = *field;
	fake_unlock(f);
	return v;
}

static int
fake_conns(struct fake *f)
{
	return fake_get(f, &f->nconns);
}

static int
sig_is_fake(const uint8_t *sig, size_t len)
{
	size_t i;

	if (len != FAKE_SIG_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (sig[i] != (uint8_t)(i ^ 0x5a))
			return 0;
	return 1;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_hello_and_sign(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t digest[32], sig[KEYD_MAX_SIGNATURE];
	size_t siglen = sizeof(sig);

	fake_start(&f, NULL);
	memset(digest, 0xab, sizeof(digest));
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	CHECK(strcmp(keyd_client_name(c), "sbc") == 0);
	CHECK(keyd_client_ops(c) == (KEYD_OP_SIGN | KEYD_OP_STATUS));
	CHECK(f.hello_version == 1);
	CHECK_HAS(f.hello_client_version, "libkeyd");
	CHECK_RC(keyd_sign(c, "sip-tls", KEYD_ECDSA_SHA256, digest, 32, sig,
	    &siglen), KEYD_OK);
	CHECK(sig_is_fake(sig, siglen));
	fake_lock(&f);
	CHECK(f.requests == 1);
	CHECK(strcmp(f.last_key, "sip-tls") == 0);
	CHECK(f.last_alg == KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA);
	CHECK(f.last_raw == 0);
	CHECK(f.last_len == 32 && memcmp(f.last_data, digest, 32) == 0);
	fake_unlock(&f);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign_ex(c, "sip-tls", KEYD_ECDSA_SHA384, sig, 48, sig,
	    &siglen, KEYD_SIGN_ECDSA_RAW), KEYD_OK);
	fake_lock(&f);
	CHECK(f.last_raw == 1);
	CHECK(f.last_len == 48);
	fake_unlock(&f);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "tls-rsa", KEYD_RSA_PSS_SHA512, sig, 64, sig,
	    &siglen), KEYD_OK);
	CHECK(f.last_alg == KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512);
	CHECK(fake_get(&f, &f.id_errors) == 0);
	CHECK(fake_conns(&f) == 1);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_buffer_too_small(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t digest[32] = { 1 }, sig[KEYD_MAX_SIGNATURE], pt[64];
	size_t siglen, ptlen, i;
	int untouched = 1;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	memset(sig, 0xee, sizeof(sig));
	siglen = 10;
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, digest, 32, sig,
	    &siglen), KEYD_ERR_BUFFER_TOO_SMALL);
	CHECK(siglen == FAKE_SIG_LEN);
	for (i = 0; i < sizeof(sig); i++)
		untouched &= sig[i] == 0xee;
	CHECK(untouched);
	CHECK_HAS(keyd_errmsg(c), "72 bytes");
	siglen = 0;
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, digest, 32, NULL,
	    &siglen), KEYD_ERR_BUFFER_TOO_SMALL);
	CHECK(siglen == FAKE_SIG_LEN);
	siglen = FAKE_SIG_LEN;
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, digest, 32, sig,
	    &siglen), KEYD_OK);
	CHECK(sig_is_fake(sig, siglen));

	ptlen = 3;
	CHECK_RC(keyd_decrypt(c, "rsa", KEYD_RSA_OAEP_SHA256, digest, 32, pt,
	    &ptlen), KEYD_ERR_BUFFER_TOO_SMALL);
	CHECK(ptlen == 14);
	ptlen = sizeof(pt);
	CHECK_RC(keyd_decrypt(c, "rsa", KEYD_RSA_OAEP_SHA256, digest, 32, pt,
	    &ptlen), KEYD_OK);
	CHECK(ptlen == 14 && memcmp(pt, "attack at dawn", 14) == 0);
	CHECK(f.last_alg == KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA256);
	CHECK(strcmp(f.last_key, "rsa") == 0);
	CHECK(fake_conns(&f) == 1);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_local_checks(void)
{
	static uint8_t big[KEYD_MAX_ED25519_MESSAGE + 1];
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t sig[KEYD_MAX_SIGNATURE], pt[16];
	size_t siglen = sizeof(sig), ptlen = sizeof(pt);
	char longname[300];
	char *text = NULL;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, big, 31, sig, &siglen),
	    KEYD_ERR_BAD_LENGTH);
	CHECK_HAS(keyd_errmsg(c), "32-byte SHA-256 digest");
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA, big, 19, sig, &siglen),
	    KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA, big, 65, sig, &siglen),
	    KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_sign(c, "k", KEYD_RSA_PKCS1_SHA384, big, 32, sig,
	    &siglen), KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_sign(c, "k", KEYD_RSA_PKCS1_DIGESTINFO, big, 52, sig,
	    &siglen), KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_sign(c, "k", KEYD_ED25519, big, sizeof(big), sig,
	    &siglen), KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_sign(c, "k", 999, big, 32, sig, &siglen),
	    KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign(c, "k", KEYD_RSA_OAEP_SHA256, big, 32, sig,
	    &siglen), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign_ex(c, "k", KEYD_RSA_PKCS1_SHA256, big, 32, sig,
	    &siglen, KEYD_SIGN_ECDSA_RAW), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign_ex(c, "k", KEYD_ECDSA_SHA256, big, 32, sig,
	    &siglen, 0x80), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign(c, NULL, KEYD_ECDSA_SHA256, big, 32, sig, &siglen),
	    KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign(c, "", KEYD_ECDSA_SHA256, big, 32, sig, &siglen),
	    KEYD_ERR_INVALID_ARG);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_RC(keyd_sign(c, longname, KEYD_ECDSA_SHA256, big, 32, sig,
	    &siglen), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, big, 32, sig, NULL),
	    KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_decrypt(c, "k", KEYD_ECDSA_SHA256, big, 32, pt, &ptlen),
	    KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_decrypt(c, "k", KEYD_RSA_OAEP_SHA1, big,
	    KEYD_MAX_CIPHERTEXT + 1, pt, &ptlen), KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_decrypt(c, "k", KEYD_RSA_OAEP_SHA1, big, 0, pt,
	    &ptlen), KEYD_ERR_BAD_LENGTH);
	CHECK_RC(keyd_set_timeout(c, 0), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_status(c, 7, &text), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_sign(NULL, "k", KEYD_ECDSA_SHA256, big, 32, sig,
	    &siglen), KEYD_ERR_INVALID_ARG);
	/* Nothing above reached the daemon. */
	CHECK(fake_get(&f, &f.requests) == 0);
	/* The edges that are valid do. */
	CHECK_RC(keyd_sign(c, "k", KEYD_RSA_PKCS1_DIGESTINFO, big, 51, sig,
	    &siglen), KEYD_OK);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA, big, 20, sig, &siglen),
	    KEYD_OK);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ED25519, NULL, 0, sig, &siglen),
	    KEYD_OK);
	CHECK(f.last_alg == KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ED25519, big,
	    KEYD_MAX_ED25519_MESSAGE, sig, &siglen), KEYD_OK);
	CHECK(f.last_len == KEYD_MAX_ED25519_MESSAGE);
	CHECK(fake_get(&f, &f.requests) == 4);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_daemon_errors(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t d[32] = { 0 }, sig[KEYD_MAX_SIGNATURE];
	size_t siglen = sizeof(sig);

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	f.err_code = KEYD_ERR_DENIED;
	f.err_msg = "client 'sbc' may not use key 'x'";
	fake_script(&f, 1, ACT_ERROR);
	CHECK_RC(keyd_sign(c, "x", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_DENIED);
	CHECK(strcmp(keyd_errmsg(c), "client 'sbc' may not use key 'x'") ==
	    0);
	CHECK(siglen == sizeof(sig));
	/* Daemon text is made printable: no terminal escapes get through. */
	f.err_code = KEYD_ERR_UNKNOWN_KEY;
	f.err_msg = "bad\nkey\x1b[2J";
	fake_script(&f, 1, ACT_ERROR);
	CHECK_RC(keyd_sign(c, "x", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_UNKNOWN_KEY);
	CHECK(strcmp(keyd_errmsg(c), "bad?key?[2J") == 0);
	f.err_code = KEYD_ERR_TOKEN;
	f.err_msg = "";
	fake_script(&f, 1, ACT_ERROR);
	CHECK_RC(keyd_sign(c, "x", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_TOKEN);
	CHECK(strcmp(keyd_errmsg(c), keyd_strerror(KEYD_ERR_TOKEN)) == 0);
	/* A code only libkeyd may produce is a protocol violation. */
	f.err_code = KEYD_ERR_BUFFER_TOO_SMALL;
	fake_script(&f, 1, ACT_ERROR);
	CHECK_RC(keyd_sign(c, "x", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_PROTOCOL);
	CHECK(siglen == sizeof(sig));
	/* Errors are answers: the connection stays. */
	CHECK_RC(keyd_sign(c, "x", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(fake_conns(&f) == 1);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_protocol_errors(void)
{
	static const struct {
		enum act act;
		const char *msg;
	} cases[] = {
		{ ACT_BAD_ID, "with a reply to request" },
		{ ACT_GARBAGE, "is not a valid Response" },
		{ ACT_OVERSIZE, "over the limit of 1048576" },
		{ ACT_WRONG_RESULT, "answered a sign request with a pubkey" },
		{ ACT_POSITIVE_ERROR, "error code 5" },
		{ ACT_TRAILING, "3 unexpected bytes" },
		{ ACT_EMPTY_RESULT, "empty signature" },
	};
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t d[32] = { 0 }, sig[KEYD_MAX_SIGNATURE];
	size_t siglen, i;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_script(&f, 1, cases[i].act);
		siglen = sizeof(sig);
		CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig,
		    &siglen), KEYD_ERR_PROTOCOL);
		CHECK_HAS(keyd_errmsg(c), cases[i].msg);
		/* The next request is served (on a new connection if the
		 * stream was left in an unknown state). */
		siglen = sizeof(sig);
		CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig,
		    &siglen), KEYD_OK);
		CHECK(sig_is_fake(sig, siglen));
	}
	/* Framing errors dropped the connection; the rest did not. */
	CHECK(fake_conns(&f) == 5);
	fake_script(&f, 1, ACT_DRIBBLE);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(sig_is_fake(sig, siglen));
	CHECK(fake_get(&f, &f.id_errors) == 0);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_reconnect(void)
{
	struct fake f, f2;
	struct keyd_client *c = NULL;
	uint8_t d[32], sig[KEYD_MAX_SIGNATURE];
	size_t siglen = sizeof(sig);

	memset(d, 0x11, sizeof(d));
	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL) {
		fake_stop(&f, 0);
		return;
	}
	/* keyd hangs up mid-request: one reconnect, one retry. */
	fake_script(&f, 1, ACT_CLOSE);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(sig_is_fake(sig, siglen));
	CHECK(fake_conns(&f) == 2);
	CHECK(fake_get(&f, &f.hellos) == 2);
	CHECK(fake_get(&f, &f.requests) == 2);
	CHECK(f.last_len == 32 && memcmp(f.last_data, d, 32) == 0);
	/* Twice: only one retry. */
	fake_script(&f, 2, ACT_CLOSE, ACT_CLOSE);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_CLOSED);
	CHECK_HAS(keyd_errmsg(c), "closed the connection");
	CHECK(fake_get(&f, &f.requests) == 4);
	CHECK(fake_conns(&f) == 3);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(fake_conns(&f) == 4);

	/* keyd restarts on the same path: the next call just works. */
	fake_stop(&f, 1);
	fake_start(&f2, f.path);
	snprintf(f2.dir, sizeof(f2.dir), "%s", f.dir);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(fake_conns(&f2) == 1);
	CHECK(fake_get(&f2, &f2.requests) == 1);
	/* keyd stops: the reconnect fails with the reason. */
	fake_stop(&f2, 1);
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_CONNECT);
	CHECK_HAS(keyd_errmsg(c), f.path);
	CHECK_HAS(keyd_errmsg(c), "is keyd running");
	keyd_close(c);
	rmdir(f.dir);
}

static void
test_timeout(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t d[32] = { 0 }, sig[KEYD_MAX_SIGNATURE];
	size_t siglen = sizeof(sig);
	int64_t t0, dt;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	CHECK_RC(keyd_set_timeout(c, 300), KEYD_OK);
	fake_script(&f, 1, ACT_SILENT);
	t0 = now_ms();
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_ERR_TIMEOUT);
	dt = now_ms() - t0;
	CHECK(dt >= 280 && dt < 5000);
	CHECK_HAS(keyd_errmsg(c), "timed out");
	/* The late stream was dropped; the next call reconnects. */
	siglen = sizeof(sig);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(fake_conns(&f) == 2);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_hello_failures(void)
{
	struct fake f;
	struct keyd_client *c = NULL;

	fake_start(&f, NULL);
	f.hello_act = ACT_BAD_VERSION;
	CHECK_RC(keyd_connect(f.path, &c), KEYD_ERR_VERSION);
	CHECK(c == NULL);
	CHECK_HAS(keyd_errmsg(NULL), "protocol version 2");
	f.hello_act = ACT_CLOSE;
	CHECK_RC(keyd_connect(f.path, &c), KEYD_ERR_CLOSED);
	CHECK(c == NULL);
	CHECK_HAS(keyd_errmsg(NULL), "not a client in keyd's policy");
	f.hello_act = ACT_ERROR;
	f.err_code = KEYD_ERR_BUSY;
	f.err_msg = "too many connections for client 'sbc'";
	CHECK_RC(keyd_connect(f.path, &c), KEYD_ERR_BUSY);
	CHECK(strcmp(keyd_errmsg(NULL),
	    "too many connections for client 'sbc'") == 0);
	f.hello_act = ACT_WRONG_RESULT;
	CHECK_RC(keyd_connect(f.path, &c), KEYD_ERR_PROTOCOL);
	f.hello_act = ACT_REPLY;
	f.client_name = "sbc\x1b[31m";
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	CHECK(strcmp(keyd_client_name(c), "sbc?[31m") == 0);
	CHECK(strcmp(keyd_errmsg(NULL), "") == 0);
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_connect_errors(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	char longpath[200];
	const char *old;

	CHECK_RC(keyd_connect("/nonexistent/keyd.sock", &c),
	    KEYD_ERR_CONNECT);
	CHECK(c == NULL);
	CHECK_HAS(keyd_errmsg(NULL), "/nonexistent/keyd.sock");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK_RC(keyd_connect(longpath, &c), KEYD_ERR_INVALID_ARG);
	CHECK_RC(keyd_connect("/x", NULL), KEYD_ERR_INVALID_ARG);
	keyd_close(NULL);
	CHECK(strcmp(keyd_client_name(NULL), "") == 0);

	/* NULL path: KEYD_SOCKET. */
	fake_start(&f, NULL);
	old = getenv("KEYD_SOCKET");
	setenv("KEYD_SOCKET", f.path, 1);
	CHECK_RC(keyd_connect(NULL, &c), KEYD_OK);
	keyd_close(c);
	c = NULL;
	CHECK(fake_get(&f, &f.hellos) == 1);
	setenv("KEYD_SOCKET", "/nonexistent/env.sock", 1);
	CHECK_RC(keyd_connect(NULL, &c), KEYD_ERR_CONNECT);
	CHECK_HAS(keyd_errmsg(NULL), "/nonexistent/env.sock");
	unsetenv("KEYD_SOCKET");
	CHECK_RC(keyd_connect(NULL, &c), KEYD_ERR_CONNECT);
	if (access(KEYD_DEFAULT_SOCKET, F_OK) != 0)
		CHECK_HAS(keyd_errmsg(NULL), KEYD_DEFAULT_SOCKET);
	keyd_close(c);
	if (old != NULL)
		setenv("KEYD_SOCKET", old, 1);
	fake_stop(&f, 0);
}

static void
test_pubkey_list_status(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	struct keyd_keylist *l = NULL;
	uint8_t *spki = NULL;
	size_t len = 0;
	char *text = NULL;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	CHECK_RC(keyd_pubkey(c, "sip-tls", &spki, &len), KEYD_OK);
	CHECK(len == 5 && spki != NULL && spki[0] == 0x30 && spki[4] == 3);
	CHECK(strcmp(f.last_key, "sip-tls") == 0);
	keyd_free(spki);
	spki = NULL;
	fake_script(&f, 1, ACT_EMPTY_RESULT);
	CHECK_RC(keyd_pubkey(c, "sip-tls", &spki, &len), KEYD_ERR_PROTOCOL);
	CHECK(spki == NULL);

	CHECK_RC(keyd_list(c, &l), KEYD_OK);
	CHECK(keyd_keylist_count(l) == 2);
	CHECK(strcmp(keyd_keylist_name(l, 0), "sip-tls") == 0);
	CHECK(strcmp(keyd_keylist_type(l, 0), "ec-p256") == 0);
	CHECK(keyd_keylist_bits(l, 0) == 256);
	CHECK(keyd_keylist_ops(l, 0) == KEYD_OP_SIGN);
	CHECK(keyd_keylist_weak(l, 0) == 0);
	CHECK(strcmp(keyd_keylist_name(l, 1), "old-rsa") == 0);
	CHECK(strcmp(keyd_keylist_type(l, 1), "rsa") == 0);
	CHECK(keyd_keylist_bits(l, 1) == 2048);
	CHECK(keyd_keylist_ops(l, 1) == (KEYD_OP_SIGN | KEYD_OP_DECRYPT));
	CHECK(keyd_keylist_weak(l, 1) == 1);
	CHECK(keyd_keylist_name(l, 2) == NULL);
	CHECK(keyd_keylist_type(l, 2) == NULL);
	CHECK(keyd_keylist_bits(l, 2) == 0);
	CHECK(keyd_keylist_count(NULL) == 0);
	keyd_keylist_free(l);
	keyd_keylist_free(NULL);
	l = NULL;
	fake_script(&f, 1, ACT_BAD_NAME);
	CHECK_RC(keyd_list(c, &l), KEYD_ERR_PROTOCOL);
	CHECK(l == NULL);
	CHECK_HAS(keyd_errmsg(c), "control characters");

	CHECK_RC(keyd_status(c, KEYD_STATUS_TEXT, &text), KEYD_OK);
	CHECK_HAS(text, "keyd 0.1.0, up 1d 01:01:01, 3 connections, 10 "
	    "requests, 2 errors\n");
	CHECK_HAS(text, "token sbc: logged in, 2 recoveries (SoftHSM project "
	    "SoftHSM v2, serial 1234), primary, serving (active), 3 keys in "
	    "session copies\n");
	CHECK_HAS(text, "key sip-tls: sign 7 ok 1 error; mean token latency "
	    "100 us\n");
	CHECK_HAS(text, "key we\"ird\\key?: no operations; WEAK: extractable "
	    "without wrap-with-trusted\n");
	keyd_free(text);
	text = NULL;
	CHECK_RC(keyd_status(c, KEYD_STATUS_PROMETHEUS, &text), KEYD_OK);
	CHECK_HAS(text, "\nkeyd_uptime_seconds 90061\n");
	CHECK_HAS(text, "\nkeyd_connections 3\n");
	CHECK_HAS(text, "\nkeyd_requests_total 10\n");
	CHECK_HAS(text, "\nkeyd_errors_total 2\n");
	CHECK_HAS(text, "\nkeyd_key_ops_total{key=\"sip-tls\",op=\"sign\","
	    "result=\"ok\"} 7\n");
	CHECK_HAS(text, "\nkeyd_key_ops_total{key=\"sip-tls\",op=\"sign\","
	    "result=\"error\"} 1\n");
	CHECK_HAS(text, "\nkeyd_token_logged_in{token=\"sbc\"} 1\n");
	CHECK_HAS(text, "\nkeyd_token_recoveries_total{token=\"sbc\"} 2\n");
	CHECK_HAS(text, "\nkeyd_token_active{token=\"sbc\",role=\"primary\"} "
	    "1\n");
	CHECK_HAS(text, "\nkeyd_key_weak_extractable{key=\"we\\\"ird\\\\key?\"}"
	    " 1\n");
	CHECK_HAS(text, "# TYPE keyd_requests_total counter\n");
	keyd_free(text);
	text = NULL;
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

struct thread_arg {
	struct keyd_client *c;
	int ok;
};

static void *
thread_signs(void *p)
{
	struct thread_arg *a = p;
	uint8_t d[32] = { 7 }, sig[KEYD_MAX_SIGNATURE];
	size_t siglen;
	int i;

	for (i = 0; i < TEST_THREAD_SIGNS; i++) {
		siglen = sizeof(sig);
		if (keyd_sign(a->c, "k", KEYD_ECDSA_SHA256, d, 32, sig,
		    &siglen) == KEYD_OK && sig_is_fake(sig, siglen))
			a->ok++;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	pthread_t th[TEST_THREADS];
	struct thread_arg args[TEST_THREADS];
	int i;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	for (i = 0; i < TEST_THREADS; i++) {
		args[i].c = c;
		args[i].ok = 0;
		pthread_create(&th[i], NULL, thread_signs, &args[i]);
	}
	for (i = 0; i < TEST_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(args[i].ok == TEST_THREAD_SIGNS);
	}
	CHECK(fake_get(&f, &f.requests) == TEST_THREADS * TEST_THREAD_SIGNS);
	CHECK(fake_get(&f, &f.id_errors) == 0);
	CHECK(fake_conns(&f) == 1);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_fork(void)
{
	struct fake f;
	struct keyd_client *c = NULL;
	uint8_t d[32] = { 0 }, sig[KEYD_MAX_SIGNATURE];
	size_t siglen = sizeof(sig);
	pid_t pid;
	int status = -1;

	fake_start(&f, NULL);
	CHECK_RC(keyd_connect(f.path, &c), KEYD_OK);
	if (c == NULL)
		goto out;
	pid = fork();
	if (pid == 0) {
		int r = keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig,
		    &siglen);

		_exit(r == KEYD_OK && sig_is_fake(sig, siglen) ? 0 : 1);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The child opened its own connection; the parent keeps its own. */
	CHECK(fake_conns(&f) == 2);
	CHECK_RC(keyd_sign(c, "k", KEYD_ECDSA_SHA256, d, 32, sig, &siglen),
	    KEYD_OK);
	CHECK(fake_conns(&f) == 2);
	CHECK(fake_get(&f, &f.id_errors) == 0);
out:
	keyd_close(c);
	fake_stop(&f, 0);
}

static void
test_daemon_user(void)
{
	char msg[512];
	const char *old = getenv("KEYD_DAEMON_USER");
	char *saved = old ? strdup(old) : NULL;
	uid_t uid = 12345;
	int found = -1, sv[2];

	setenv("KEYD_DAEMON_USER", "65534", 1);
	CHECK_RC(transport_daemon_uid(&uid, &found, msg, sizeof(msg)),
	    KEYD_OK);
	CHECK(found == 1 && uid == 65534);
	if (getpwnam("nobody") != NULL) {
		setenv("KEYD_DAEMON_USER", "nobody", 1);
		CHECK_RC(transport_daemon_uid(&uid, &found, msg, sizeof(msg)),
		    KEYD_OK);
		CHECK(found == 1 && uid == getpwnam("nobody")->pw_uid);
	}
	setenv("KEYD_DAEMON_USER", "no-such-user-keyd-test", 1);
	CHECK_RC(transport_daemon_uid(&uid, &found, msg, sizeof(msg)),
	    KEYD_ERR_CONFIG);
	CHECK_HAS(msg, "no-such-user-keyd-test");
	unsetenv("KEYD_DAEMON_USER");
	CHECK_RC(transport_daemon_uid(&uid, &found, msg, sizeof(msg)),
	    KEYD_OK);
	CHECK(found == (getpwnam("keyd") != NULL));

	/* A socketpair's peer is this process. */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	if (getuid() == 0) {
		CHECK_RC(transport_check_peer(sv[0], "pair", msg, sizeof(msg)),
		    KEYD_OK);
	} else {
		snprintf(msg, sizeof(msg), "%u", (unsigned)getuid());
		setenv("KEYD_DAEMON_USER", msg, 1);
		CHECK_RC(transport_check_peer(sv[0], "pair", msg, sizeof(msg)),
		    KEYD_OK);
		setenv("KEYD_DAEMON_USER", "0", 1);
		CHECK_RC(transport_check_peer(sv[0], "pair", msg, sizeof(msg)),
		    KEYD_ERR_PEER_UNTRUSTED);
		CHECK_HAS(msg, "socket pair is served by uid");
		CHECK_HAS(msg, "refusing it");
	}
	close(sv[0]);
	close(sv[1]);
	if (saved != NULL)
		setenv("KEYD_DAEMON_USER", saved, 1);
	else
		unsetenv("KEYD_DAEMON_USER");
	free(saved);
}

int
main(void)
{
	char uid[32];

	/* The fake runs as this user: trust it when that is not root. */
	if (getuid() != 0) {
		snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
		setenv("KEYD_DAEMON_USER", uid, 1);
	}
	test_daemon_user();
	if (getuid() != 0) {
		snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
		setenv("KEYD_DAEMON_USER", uid, 1);
	}
	test_hello_and_sign();
	test_buffer_too_small();
	test_local_checks();
	test_daemon_errors();
	test_protocol_errors();
	test_reconnect();
	test_timeout();
	test_hello_failures();
	test_connect_errors();
	test_pubkey_list_status();
	test_threads();
	test_fork();
	return ktest_result("test_libkeyd");
}
