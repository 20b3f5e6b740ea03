/* libkeyd.c: the keyd_* client API (keyd.h) over the keyd wire protocol. */
#include "keyd.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "kbuf.h"
#include "secmem.h"
#include "statusfmt.h"
#include "strutil.h"
#include "transport.h"

#ifndef KEYD_VERSION
#define KEYD_VERSION "unknown"
#endif

/* Requests over keyd's default max_frame would make it hang up. */
#define KEYD_REQUEST_MAX FRAME_MAX_DEFAULT
/* Replies may be larger (a status with many keys), never beyond this. */
#define KEYD_REPLY_MAX FRAME_MAX_CEILING
/* keyd_errmsg's buffer, and the client name kept from hello. */
#define KEYD_ERRMSG_MAX 512u
#define KEYD_CLIENT_NAME_MAX 128u
/* Key names: what libkeyd sends and what it accepts from keyd. */
#define KEYD_KEY_NAME_MAX 256u
/* keyd_set_timeout's range. */
#define KEYD_TIMEOUT_MAX_MS 3600000u
/* ECDSA digests: SHA-1 (20 bytes) to SHA-512 (64). */
#define KEYD_ECDSA_DIGEST_MIN 20u
#define KEYD_ECDSA_DIGEST_MAX 64u
/* DER DigestInfo: a 19-byte prefix and a SHA-256/384/512 digest. */
#define KEYD_DIGESTINFO_PREFIX 19u
/* A request is sent at most this many times (the first try and one retry
 * on a fresh connection after keyd hung up). */
#define KEYD_MAX_ATTEMPTS 2

struct keyd_client {
	pthread_mutex_t lock;   /* serializes every call on the connection */
	int lock_ready;         /* lock was initialized */
	int fd;                 /* -1 when not connected */
	pid_t pid;              /* the process that opened fd */
	char *path;
	uint64_t next_id;       /* last request id used */
	unsigned timeout_ms;
	uint64_t config_generation; /* from the last hello or list reply */
	unsigned ops;           /* KEYD_OP_* from hello */
	struct kbuf out;        /* the request being sent */
	struct kbuf in;         /* the reply being read: may hold plaintext */
	char name[KEYD_CLIENT_NAME_MAX];
	char errmsg[KEYD_ERRMSG_MAX];
};

struct keyd_keyinfo {
	char *name;
	int type;
	unsigned bits;
	unsigned ops;
	int weak;
	uint8_t *id;           /* CKA_ID, id_len bytes (NULL if none) */
	size_t id_len;
	int has_cert;
	unsigned decrypts;     /* bit alg - KEYD_RSA_OAEP_SHA1 per algorithm */
};

struct keyd_keylist {
	size_t n;
	struct keyd_keyinfo *keys;
};

/* The detail of this thread's last failed keyd_connect (no client yet). */
static _Thread_local char connect_errmsg[KEYD_ERRMSG_MAX];

/* What each signature scheme takes, checked before anything is sent. */
struct sign_alg_info {
	int alg;
	Keyd__V1__SignAlg wire;
	size_t min, max;
	int ecdsa;
	const char *takes;
};

static const struct sign_alg_info sign_algs[] = {
	{ KEYD_ECDSA, KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA,
	    KEYD_ECDSA_DIGEST_MIN, KEYD_ECDSA_DIGEST_MAX, 1,
	    "a digest of 20 to 64 bytes" },
	{ KEYD_ECDSA_SHA256, KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA, 32, 32, 1,
	    "a 32-byte SHA-256 digest" },
	{ KEYD_ECDSA_SHA384, KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA, 48, 48, 1,
	    "a 48-byte SHA-384 digest" },
	{ KEYD_ECDSA_SHA512, KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA, 64, 64, 1,
	    "a 64-byte SHA-512 digest" },
	{ KEYD_RSA_PKCS1_SHA256, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA256,
	    32, 32, 0, "a 32-byte SHA-256 digest" },
	{ KEYD_RSA_PKCS1_SHA384, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA384,
	    48, 48, 0, "a 48-byte SHA-384 digest" },
	{ KEYD_RSA_PKCS1_SHA512, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_SHA512,
	    64, 64, 0, "a 64-byte SHA-512 digest" },
	{ KEYD_RSA_PKCS1_DIGESTINFO,
	    KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PKCS1_DIGESTINFO,
	    KEYD_DIGESTINFO_PREFIX + 32, KEYD_DIGESTINFO_PREFIX + 64, 0,
	    "a DER DigestInfo of SHA-256, SHA-384 or SHA-512 (51, 67 or 83 "
	    "bytes)" },
	{ KEYD_RSA_PSS_SHA256, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA256,
	    32, 32, 0, "a 32-byte SHA-256 digest" },
	{ KEYD_RSA_PSS_SHA384, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384,
	    48, 48, 0, "a 48-byte SHA-384 digest" },
	{ KEYD_RSA_PSS_SHA512, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA512,
	    64, 64, 0, "a 64-byte SHA-512 digest" },
	{ KEYD_ED25519, KEYD__V1__SIGN_ALG__SIGN_ALG_ED25519,
	    0, KEYD_MAX_ED25519_MESSAGE, 0,
	    "the message itself, at most 16384 bytes" },
};

static const struct sign_alg_info *
sign_alg_find(int alg)
{
	size_t i;

	for (i = 0; i < sizeof(sign_algs) / sizeof(sign_algs[0]); i++)
		if (sign_algs[i].alg == alg)
			return &sign_algs[i];
	return NULL;
}

static int
sign_len_ok(const struct sign_alg_info *ai, size_t len)
{
	if (len < ai->min || len > ai->max)
		return 0;
	if (ai->alg == KEYD_RSA_PKCS1_DIGESTINFO)
		return len == KEYD_DIGESTINFO_PREFIX + 32 ||
		    len == KEYD_DIGESTINFO_PREFIX + 48 ||
		    len == KEYD_DIGESTINFO_PREFIX + 64;
	return 1;
}

static Keyd__V1__DecryptAlg
decrypt_alg_wire(int alg)
{
	switch (alg) {
	case KEYD_RSA_OAEP_SHA1:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA1;
	case KEYD_RSA_OAEP_SHA256:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA256;
	case KEYD_RSA_OAEP_SHA384:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA384;
	case KEYD_RSA_OAEP_SHA512:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_OAEP_SHA512;
	case KEYD_RSA_PKCS1:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_RSA_PKCS1;
	default:
		return KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_UNSPECIFIED;
	}
}

/* The public value of a wire algorithm; 0 for one this version does
 * not know. */
static int
decrypt_alg_public(Keyd__V1__DecryptAlg alg)
{
	for (int a = KEYD_RSA_OAEP_SHA1; a <= KEYD_RSA_PKCS1; a++)
		if (decrypt_alg_wire(a) == alg)
			return a;
	return 0;
}

/* Op values 1..7 become bits 0..6; values this version does not know are
 * dropped rather than shifted out of range. */
static unsigned
ops_bits(const Keyd__V1__Op *ops, size_t n)
{
	unsigned bits = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (ops[i] >= KEYD__V1__OP__OP_SIGN &&
		    ops[i] <= KEYD__V1__OP__OP_RELOAD)
			bits |= 1u << ((unsigned)ops[i] - 1);
	return bits;
}

static int client_fail(struct keyd_client *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the detail of a failure on c and returns r. */
static int
client_fail(struct keyd_client *c, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return r;
}

static void
client_disconnect(struct keyd_client *c)
{
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	kbuf_reset(&c->in);
	kbuf_reset(&c->out);
}

/*
 * One request, one reply, on the open connection. Once bytes have gone
 * out, any failure leaves the stream in an unknown state (half a reply
 * may follow), so the connection is dropped and the next call reconnects.
 */
static int
client_exchange(struct keyd_client *c, Keyd__V1__Request *req,
    int64_t deadline, Keyd__V1__Response **out)
{
	Keyd__V1__Response *resp = NULL;
	const uint8_t *body;
	size_t len;
	int r, sent = 0;

	*out = NULL;
	req->id = ++c->next_id;
	kbuf_reset(&c->out);
	if ((r = frame_put_msg(&c->out, &req->base, KEYD_REQUEST_MAX)) !=
	    KEYD_OK) {
		if (r == KEYD_ERR_FRAME_TOO_LARGE)
			client_fail(c, r, "the request does not fit in %u "
			    "bytes, keyd's limit", KEYD_REQUEST_MAX);
		else
			client_fail(c, r, "cannot encode the request: %s",
			    keyd_strerror(r));
		goto out;
	}
	sent = 1;
	if ((r = transport_send(c->fd, &c->out, deadline, c->errmsg,
	    sizeof(c->errmsg))) != KEYD_OK)
		goto out;
	if ((r = transport_recv_frame(c->fd, &c->in, KEYD_REPLY_MAX, deadline,
	    &body, &len, c->errmsg, sizeof(c->errmsg))) != KEYD_OK)
		goto out;
	if ((r = frame_unpack_response(body, len, &resp)) != KEYD_OK) {
		client_fail(c, r, "keyd's reply (%zu bytes) is not a valid "
		    "Response message", len);
		goto out;
	}
	/* Calls on c are serialized, so exactly one request is in flight. */
	if (resp->id != req->id) {
		r = client_fail(c, KEYD_ERR_PROTOCOL, "keyd answered request "
		    "%llu with a reply to request %llu",
		    (unsigned long long)req->id,
		    (unsigned long long)resp->id);
		goto out;
	}
	*out = resp;
	resp = NULL;
out:
	kbuf_reset(&c->in);
	kbuf_reset(&c->out);
	frame_free_response(resp);
	if (r != KEYD_OK && sent)
		client_disconnect(c);
	return r;
}

static const char *
result_name(Keyd__V1__Response__ResultCase rc)
{
	switch (rc) {
	case KEYD__V1__RESPONSE__RESULT_HELLO: return "hello";
	case KEYD__V1__RESPONSE__RESULT_LIST: return "list";
	case KEYD__V1__RESPONSE__RESULT_PUBKEY: return "pubkey";
	case KEYD__V1__RESPONSE__RESULT_SIGN: return "sign";
	case KEYD__V1__RESPONSE__RESULT_DECRYPT: return "decrypt";
	case KEYD__V1__RESPONSE__RESULT_STATUS: return "status";
	case KEYD__V1__RESPONSE__RESULT_CERT: return "cert";
	case KEYD__V1__RESPONSE__RESULT_SRTP_NEW: return "srtp-new";
	case KEYD__V1__RESPONSE__RESULT_SRTP_OPEN: return "srtp-open";
	case KEYD__V1__RESPONSE__RESULT_PASSPORT: return "passport";
	case KEYD__V1__RESPONSE__RESULT_RELOAD: return "reload";
	default: return "empty";
	}
}

static const void *
result_ptr(const Keyd__V1__Response *resp)
{
	switch (resp->result_case) {
	case KEYD__V1__RESPONSE__RESULT_HELLO: return resp->hello;
	case KEYD__V1__RESPONSE__RESULT_LIST: return resp->list;
	case KEYD__V1__RESPONSE__RESULT_PUBKEY: return resp->pubkey;
	case KEYD__V1__RESPONSE__RESULT_SIGN: return resp->sign;
	case KEYD__V1__RESPONSE__RESULT_DECRYPT: return resp->decrypt;
	case KEYD__V1__RESPONSE__RESULT_STATUS: return resp->status;
	case KEYD__V1__RESPONSE__RESULT_CERT: return resp->cert;
	case KEYD__V1__RESPONSE__RESULT_SRTP_NEW: return resp->srtp_new;
	case KEYD__V1__RESPONSE__RESULT_SRTP_OPEN: return resp->srtp_open;
	case KEYD__V1__RESPONSE__RESULT_PASSPORT: return resp->passport;
	case KEYD__V1__RESPONSE__RESULT_RELOAD: return resp->reload;
	default: return NULL;
	}
}

/* The daemon's verdict: its error (with its message), or the result of the
 * kind asked for. */
static int
client_check(struct keyd_client *c, const Keyd__V1__Response *resp,
    Keyd__V1__Response__ResultCase want)
{
	int e = resp->error;

	if (e != 0) {
		/* Codes that only libkeyd itself produces would mislead a
		 * caller (BUFFER_TOO_SMALL promises a length). */
		if (e > 0 || e == KEYD_ERR_AGAIN ||
		    e == KEYD_ERR_BUFFER_TOO_SMALL)
			return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent "
			    "error code %d, which is not valid in a reply", e);
		strutil_printable(c->errmsg, sizeof(c->errmsg),
		    resp->message != NULL && resp->message[0] != '\0' ?
		    resp->message : keyd_strerror(e));
		return e;
	}
	if (resp->result_case != want || result_ptr(resp) == NULL)
		return client_fail(c, KEYD_ERR_PROTOCOL, "keyd answered a %s "
		    "request with a %s result", result_name(want),
		    result_name(resp->result_case));
	return KEYD_OK;
}

/* Connects, checks the peer and says hello; on failure c is left
 * disconnected with the reason in c->errmsg. */
static int
client_open(struct keyd_client *c, int64_t deadline)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest hr = KEYD__V1__HELLO_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const Keyd__V1__HelloReply *h;
	int r;

	client_disconnect(c);
	if ((r = transport_connect(c->path, deadline, &c->fd, c->errmsg,
	    sizeof(c->errmsg))) != KEYD_OK)
		goto out;
	c->pid = getpid();
	hr.protocol_version = KEYD_PROTOCOL_VERSION;
	hr.client_version = (char *)(uintptr_t)("libkeyd " KEYD_VERSION);
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &hr;
	r = client_exchange(c, &req, deadline, &resp);
	if (r == KEYD_ERR_CLOSED) {
		/* keyd closes unknown peers without a word. */
		client_fail(c, r, "keyd at %s closed the connection at hello: "
		    "uid %u is probably not a client in keyd's policy (see "
		    "keyd's log)", c->path, (unsigned)getuid());
		goto out;
	}
	if (r != KEYD_OK ||
	    (r = client_check(c, resp, KEYD__V1__RESPONSE__RESULT_HELLO)) !=
	    KEYD_OK)
		goto out;
	h = resp->hello;
	c->config_generation = h->config_generation;
	if (h->protocol_version != KEYD_PROTOCOL_VERSION) {
		r = client_fail(c, KEYD_ERR_VERSION, "keyd at %s speaks "
		    "protocol version %u, this libkeyd speaks %u; install "
		    "matching versions of keyd and libkeyd", c->path,
		    h->protocol_version, KEYD_PROTOCOL_VERSION);
		goto out;
	}
	strutil_printable(c->name, sizeof(c->name), h->client_name);
	c->ops = ops_bits(h->ops, h->n_ops);
out:
	frame_free_response(resp);
	if (r != KEYD_OK)
		client_disconnect(c);
	return r;
}

/*
 * Sends req and returns keyd's successful reply of kind want in *out (the
 * caller frees it with frame_free_response). If the connection turns out
 * closed (keyd restarted), reconnects once and sends req once more: every
 * request in this API may safely run twice. The caller holds c->lock.
 */
static int
client_call(struct keyd_client *c, Keyd__V1__Request *req,
    Keyd__V1__Response__ResultCase want, Keyd__V1__Response **out)
{
	Keyd__V1__Response *resp = NULL;
	int64_t deadline = transport_now_ms() + c->timeout_ms;
	int attempt, r = KEYD_ERR_INTERNAL;

	*out = NULL;
	/* After fork the child must not share the parent's stream. */
	if (c->fd >= 0 && c->pid != getpid()) {
		(void)close(c->fd);
		c->fd = -1;
	}
	for (attempt = 0; attempt < KEYD_MAX_ATTEMPTS; attempt++) {
		if (c->fd < 0 && (r = client_open(c, deadline)) != KEYD_OK)
			goto out;
		r = client_exchange(c, req, deadline, &resp);
		if (r != KEYD_ERR_CLOSED)
			break;
	}
	if (r != KEYD_OK)
		goto out;
	if ((r = client_check(c, resp, want)) != KEYD_OK)
		goto out;
	*out = resp;
	resp = NULL;
out:
	frame_free_response(resp);
	return r;
}

static void
client_lock(struct keyd_client *c)
{
	if (pthread_mutex_lock(&c->lock) != 0)
		abort(); /* only a destroyed or corrupt mutex fails */
}

static void
client_unlock(struct keyd_client *c)
{
	(void)pthread_mutex_unlock(&c->lock);
}

static int
check_key_name(struct keyd_client *c, const char *key)
{
	size_t n;

	if (key == NULL || (n = strlen(key)) == 0)
		return client_fail(c, KEYD_ERR_INVALID_ARG, "no key name "
		    "given");
	if (n > KEYD_KEY_NAME_MAX)
		return client_fail(c, KEYD_ERR_INVALID_ARG, "a key name is at "
		    "most %u bytes; this one has %zu", KEYD_KEY_NAME_MAX, n);
	return KEYD_OK;
}

int
keyd_connect(const char *socket_path, struct keyd_client **out)
{
	return keyd_connect_timeout(socket_path, KEYD_IO_TIMEOUT_MS, out);
}

int
keyd_connect_timeout(const char *socket_path, unsigned timeout_ms,
    struct keyd_client **out)
{
	struct keyd_client *c = NULL;
	const char *path = socket_path;
	int r, locked = 0;

	connect_errmsg[0] = '\0';
	if (out == NULL) {
		snprintf(connect_errmsg, sizeof(connect_errmsg),
		    "keyd_connect: out is NULL");
		return KEYD_ERR_INVALID_ARG;
	}
	*out = NULL;
	if (timeout_ms == 0 || timeout_ms > KEYD_TIMEOUT_MAX_MS) {
		snprintf(connect_errmsg, sizeof(connect_errmsg),
		    "keyd_connect_timeout: a timeout is 1 to %u ms",
		    KEYD_TIMEOUT_MAX_MS);
		return KEYD_ERR_INVALID_ARG;
	}
	if (path == NULL)
		path = secure_getenv("KEYD_SOCKET");
	if (path == NULL || path[0] == '\0')
		path = KEYD_DEFAULT_SOCKET;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = KEYD_ERR_NOMEM;
		snprintf(connect_errmsg, sizeof(connect_errmsg),
		    "out of memory");
		goto out;
	}
	c->fd = -1;
	c->timeout_ms = timeout_ms;
	kbuf_init(&c->out, FRAME_HDR_LEN + KEYD_REQUEST_MAX, 0);
	kbuf_init(&c->in, FRAME_HDR_LEN + KEYD_REPLY_MAX, KBUF_SECRET);
	if (pthread_mutex_init(&c->lock, NULL) == 0)
		c->lock_ready = 1;
	if (!c->lock_ready || (c->path = strdup(path)) == NULL) {
		r = KEYD_ERR_NOMEM;
		snprintf(connect_errmsg, sizeof(connect_errmsg),
		    "out of memory");
		goto out;
	}
	client_lock(c);
	locked = 1;
	if ((r = client_open(c, transport_now_ms() + c->timeout_ms)) !=
	    KEYD_OK) {
		memcpy(connect_errmsg, c->errmsg, sizeof(connect_errmsg));
		goto out;
	}
	client_unlock(c);
	locked = 0;
	*out = c;
	c = NULL;
out:
	if (locked)
		client_unlock(c);
	keyd_close(c);
	return r;
}

void
keyd_close(struct keyd_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		(void)close(c->fd);
	kbuf_free(&c->in);
	kbuf_free(&c->out);
	if (c->lock_ready)
		(void)pthread_mutex_destroy(&c->lock);
	free(c->path);
	secmem_wipe(c, sizeof(*c));
	free(c);
}

const char *
keyd_errmsg(const struct keyd_client *c)
{
	return c == NULL ? connect_errmsg : c->errmsg;
}

const char *
keyd_client_name(const struct keyd_client *c)
{
	return c == NULL ? "" : c->name;
}

unsigned
keyd_client_ops(const struct keyd_client *c)
{
	return c == NULL ? 0 : c->ops;
}

int
keyd_set_timeout(struct keyd_client *c, unsigned timeout_ms)
{
	int r = KEYD_OK;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if (timeout_ms == 0 || timeout_ms > KEYD_TIMEOUT_MAX_MS)
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "a timeout is 1 to "
		    "%u ms", KEYD_TIMEOUT_MAX_MS);
	else
		c->timeout_ms = timeout_ms;
	client_unlock(c);
	return r;
}

int
keyd_sign(struct keyd_client *c, const char *key, int alg, const void *in,
    size_t inlen, uint8_t *sig, size_t *siglen)
{
	return keyd_sign_ex(c, key, alg, in, inlen, sig, siglen, 0);
}

int
keyd_sign_ex(struct keyd_client *c, const char *key, int alg, const void *in,
    size_t inlen, uint8_t *sig, size_t *siglen, unsigned flags)
{
	return keyd_sign_pinned(c, key, NULL, alg, in, inlen, sig, siglen,
	    flags);
}

int
keyd_sign_pinned(struct keyd_client *c, const char *key,
    const uint8_t key_sha256[32], int alg, const void *in, size_t inlen,
    uint8_t *sig, size_t *siglen, unsigned flags)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest sr = KEYD__V1__SIGN_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const struct sign_alg_info *ai;
	const ProtobufCBinaryData *s;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (siglen == NULL || (sig == NULL && *siglen != 0) ||
	    (in == NULL && inlen != 0)) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_sign: a NULL "
		    "buffer with a non-zero length");
		goto out;
	}
	if ((ai = sign_alg_find(alg)) == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_sign: unknown "
		    "signature algorithm %d", alg);
		goto out;
	}
	if ((flags & ~KEYD_SIGN_ECDSA_RAW) != 0 ||
	    ((flags & KEYD_SIGN_ECDSA_RAW) && !ai->ecdsa)) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_sign: flags "
		    "0x%x are not valid here (KEYD_SIGN_ECDSA_RAW is for "
		    "ECDSA only)", flags);
		goto out;
	}
	if (!sign_len_ok(ai, inlen)) {
		r = client_fail(c, KEYD_ERR_BAD_LENGTH, "this algorithm takes "
		    "%s; the input has %zu", ai->takes, inlen);
		goto out;
	}
	/* protobuf-c's structs are not const-correct; packing only reads. */
	sr.key = (char *)(uintptr_t)key;
	sr.alg = ai->wire;
	sr.data.data = (uint8_t *)(uintptr_t)in;
	sr.data.len = inlen;
	sr.ecdsa_raw = (flags & KEYD_SIGN_ECDSA_RAW) != 0;
	if (key_sha256 != NULL) {
		sr.key_sha256.data = (uint8_t *)(uintptr_t)key_sha256;
		sr.key_sha256.len = 32;
	}
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &sr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_SIGN,
	    &resp)) != KEYD_OK)
		goto out;
	s = &resp->sign->signature;
	if (s->len == 0) {
		r = client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent an empty "
		    "signature");
		goto out;
	}
	if (s->len > *siglen) {
		r = client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the signature "
		    "has %zu bytes; the buffer holds %zu", s->len, *siglen);
		*siglen = s->len;
		goto out;
	}
	memcpy(sig, s->data, s->len);
	*siglen = s->len;
out:
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_decrypt(struct keyd_client *c, const char *key, int alg, const void *in,
    size_t inlen, uint8_t *out, size_t *outlen)
{
	return keyd_decrypt_pinned(c, key, NULL, alg, in, inlen, out, outlen);
}

int
keyd_decrypt_pinned(struct keyd_client *c, const char *key,
    const uint8_t key_sha256[32], int alg, const void *in, size_t inlen,
    uint8_t *out, size_t *outlen)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__DecryptRequest dr = KEYD__V1__DECRYPT_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const ProtobufCBinaryData *p;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (outlen == NULL || (out == NULL && *outlen != 0) || in == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_decrypt: a NULL "
		    "buffer");
		goto out;
	}
	if ((dr.alg = decrypt_alg_wire(alg)) ==
	    KEYD__V1__DECRYPT_ALG__DECRYPT_ALG_UNSPECIFIED) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_decrypt: "
		    "unknown decryption algorithm %d", alg);
		goto out;
	}
	if (inlen == 0 || inlen > KEYD_MAX_CIPHERTEXT) {
		r = client_fail(c, KEYD_ERR_BAD_LENGTH, "an RSA ciphertext has "
		    "1 to %u bytes; this one has %zu", KEYD_MAX_CIPHERTEXT,
		    inlen);
		goto out;
	}
	dr.key = (char *)(uintptr_t)key;
	dr.ciphertext.data = (uint8_t *)(uintptr_t)in;
	dr.ciphertext.len = inlen;
	if (key_sha256 != NULL) {
		dr.key_sha256.data = (uint8_t *)(uintptr_t)key_sha256;
		dr.key_sha256.len = 32;
	}
	req.op_case = KEYD__V1__REQUEST__OP_DECRYPT;
	req.decrypt = &dr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_DECRYPT,
	    &resp)) != KEYD_OK)
		goto out;
	p = &resp->decrypt->plaintext;
	if (p->len > *outlen) {
		r = client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the plaintext "
		    "has %zu bytes; the buffer holds %zu", p->len, *outlen);
		*outlen = p->len;
		goto out;
	}
	if (p->len > 0)
		memcpy(out, p->data, p->len);
	*outlen = p->len;
out:
	/* frame_free_response wipes the decoded plaintext. */
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_pubkey(struct keyd_client *c, const char *key, uint8_t **spki_der,
    size_t *len)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__PubkeyRequest pr = KEYD__V1__PUBKEY_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const ProtobufCBinaryData *d;
	uint8_t *copy = NULL;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (spki_der == NULL || len == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_pubkey: a NULL "
		    "output pointer");
		goto out;
	}
	*spki_der = NULL;
	*len = 0;
	pr.key = (char *)(uintptr_t)key;
	req.op_case = KEYD__V1__REQUEST__OP_PUBKEY;
	req.pubkey = &pr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_PUBKEY,
	    &resp)) != KEYD_OK)
		goto out;
	d = &resp->pubkey->spki_der;
	if (d->len == 0) {
		r = client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent an empty "
		    "public key");
		goto out;
	}
	if ((copy = malloc(d->len)) == NULL) {
		r = client_fail(c, KEYD_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, d->data, d->len);
	*spki_der = copy;
	*len = d->len;
	copy = NULL;
out:
	free(copy);
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

/* Copies one KeyInfo; its name must be usable as a key name in requests. */
static int
keylist_take(struct keyd_client *c, struct keyd_keyinfo *dst,
    const Keyd__V1__KeyInfo *ki)
{
	size_t n = ki->name != NULL ? strlen(ki->name) : 0;

	if (n == 0 || n > KEYD_KEY_NAME_MAX || strutil_has_control(ki->name, n))
		return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a key "
		    "name that is empty, longer than %u bytes or holds "
		    "control characters", KEYD_KEY_NAME_MAX);
	if ((dst->name = strdup(ki->name)) == NULL)
		return client_fail(c, KEYD_ERR_NOMEM, "out of memory");
	dst->type = ki->type;
	dst->bits = ki->bits;
	dst->ops = ops_bits(ki->ops, ki->n_ops);
	dst->weak = ki->weak_extractable ? 1 : 0;
	dst->has_cert = ki->has_certificate ? 1 : 0;
	/* An earlier keyd names no algorithms and tries any; this one
	 * names those it does and refuses the others. */
	if ((dst->ops & KEYD_OP_DECRYPT) && !ki->decrypt_algs_known)
		dst->decrypts = ~0u;
	for (size_t j = 0; j < ki->n_decrypt_algs; j++) {
		int alg = decrypt_alg_public(ki->decrypt_algs[j]);

		if (alg != 0)
			dst->decrypts |= 1u << (alg - KEYD_RSA_OAEP_SHA1);
	}
	if (ki->id.len > 0) {
		/* keyd_list counts this entry only on success: undo here. */
		if (ki->id.len > KEYD_MAX_KEY_ID ||
		    (dst->id = malloc(ki->id.len)) == NULL) {
			free(dst->name);
			dst->name = NULL;
			return ki->id.len > KEYD_MAX_KEY_ID ?
			    client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a key "
			    "id of %zu bytes, over %u", ki->id.len,
			    KEYD_MAX_KEY_ID) :
			    client_fail(c, KEYD_ERR_NOMEM, "out of memory");
		}
		memcpy(dst->id, ki->id.data, ki->id.len);
		dst->id_len = ki->id.len;
	}
	return KEYD_OK;
}

int
keyd_list(struct keyd_client *c, struct keyd_keylist **out)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__ListRequest lr = KEYD__V1__LIST_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const Keyd__V1__ListReply *l;
	struct keyd_keylist *kl = NULL;
	size_t i;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if (out == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_list: out is "
		    "NULL");
		goto out;
	}
	*out = NULL;
	req.op_case = KEYD__V1__REQUEST__OP_LIST;
	req.list = &lr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_LIST,
	    &resp)) != KEYD_OK)
		goto out;
	l = resp->list;
	c->config_generation = l->config_generation;
	if ((kl = calloc(1, sizeof(*kl))) == NULL ||
	    (l->n_keys > 0 &&
	    (kl->keys = calloc(l->n_keys, sizeof(*kl->keys))) == NULL)) {
		r = client_fail(c, KEYD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < l->n_keys; i++) {
		if ((r = keylist_take(c, &kl->keys[i], l->keys[i])) != KEYD_OK)
			goto out;
		kl->n = i + 1;
	}
	*out = kl;
	kl = NULL;
out:
	keyd_keylist_free(kl);
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

size_t
keyd_keylist_count(const struct keyd_keylist *l)
{
	return l == NULL ? 0 : l->n;
}

static const struct keyd_keyinfo *
keylist_at(const struct keyd_keylist *l, size_t i)
{
	return l == NULL || i >= l->n ? NULL : &l->keys[i];
}

const char *
keyd_keylist_name(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	return k == NULL ? NULL : k->name;
}

const char *
keyd_keylist_type(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	if (k == NULL)
		return NULL;
	switch (k->type) {
	case KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P256: return "ec-p256";
	case KEYD__V1__KEY_TYPE__KEY_TYPE_EC_P384: return "ec-p384";
	case KEYD__V1__KEY_TYPE__KEY_TYPE_RSA: return "rsa";
	case KEYD__V1__KEY_TYPE__KEY_TYPE_ED25519: return "ed25519";
	case KEYD__V1__KEY_TYPE__KEY_TYPE_AES: return "aes";
	default: return "unknown";
	}
}

unsigned
keyd_keylist_bits(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	return k == NULL ? 0 : k->bits;
}

unsigned
keyd_keylist_ops(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	return k == NULL ? 0 : k->ops;
}

int
keyd_keylist_weak(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	return k == NULL ? 0 : k->weak;
}

void
keyd_keylist_free(struct keyd_keylist *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++) {
		free(l->keys[i].name);
		free(l->keys[i].id);
	}
	if (l->keys != NULL)
		secmem_wipe(l->keys, l->n * sizeof(*l->keys));
	free(l->keys);
	secmem_wipe(l, sizeof(*l));
	free(l);
}

int
keyd_status(struct keyd_client *c, int format, char **text)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__StatusRequest sr = KEYD__V1__STATUS_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if (text == NULL || (format != KEYD_STATUS_TEXT &&
	    format != KEYD_STATUS_PROMETHEUS)) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_status: text is "
		    "NULL or format %d is unknown", format);
		goto out;
	}
	*text = NULL;
	req.op_case = KEYD__V1__REQUEST__OP_STATUS;
	req.status = &sr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_STATUS,
	    &resp)) != KEYD_OK)
		goto out;
	r = format == KEYD_STATUS_PROMETHEUS ?
	    statusfmt_prometheus(resp->status, text) :
	    statusfmt_text(resp->status, text);
	if (r != KEYD_OK)
		client_fail(c, r, "cannot format keyd's status: %s",
		    keyd_strerror(r));
out:
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_reload(struct keyd_client *c, char **text)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__ReloadRequest rq = KEYD__V1__RELOAD_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	char hash[65], summary[1024];
	size_t n;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if (text == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_reload: text "
		    "is NULL");
		goto out;
	}
	*text = NULL;
	req.op_case = KEYD__V1__REQUEST__OP_RELOAD;
	req.reload = &rq;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_RELOAD,
	    &resp)) != KEYD_OK)
		goto out;
	strutil_printable(hash, sizeof(hash), resp->reload->config_sha256);
	strutil_printable(summary, sizeof(summary), resp->reload->summary);
	c->config_generation = resp->reload->config_generation;
	n = strlen(hash) + strlen(summary) + 64;
	if ((*text = malloc(n)) == NULL) {
		r = client_fail(c, KEYD_ERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(*text, n, "sha256 %s, generation %" PRIu64 ": %s", hash,
	    resp->reload->config_generation, summary);
out:
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_config_generation_fetch(struct keyd_client *c, uint64_t *generation)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest hr = KEYD__V1__HELLO_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	int r;

	if (c == NULL || generation == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	hr.protocol_version = KEYD_PROTOCOL_VERSION;
	hr.client_version = (char *)(uintptr_t)("libkeyd " KEYD_VERSION);
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &hr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_HELLO,
	    &resp)) == KEYD_OK) {
		c->config_generation = resp->hello->config_generation;
		*generation = c->config_generation;
	}
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

uint64_t
keyd_config_generation(const struct keyd_client *c)
{
	return c != NULL ? c->config_generation : 0;
}

void
keyd_free(void *p)
{
	free(p);
}

int
keyd_certificate(struct keyd_client *c, const char *key, uint8_t **der,
    size_t *len)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__CertRequest cq = KEYD__V1__CERT_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const ProtobufCBinaryData *d;
	uint8_t *copy = NULL;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (der == NULL || len == NULL) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_certificate: a "
		    "NULL output pointer");
		goto out;
	}
	*der = NULL;
	*len = 0;
	cq.key = (char *)(uintptr_t)key;
	req.op_case = KEYD__V1__REQUEST__OP_CERT;
	req.cert = &cq;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_CERT,
	    &resp)) != KEYD_OK)
		goto out;
	d = &resp->cert->cert_der;
	if (d->len == 0) {
		r = client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent an empty "
		    "certificate");
		goto out;
	}
	if ((copy = malloc(d->len)) == NULL) {
		r = client_fail(c, KEYD_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, d->data, d->len);
	*der = copy;
	*len = d->len;
	copy = NULL;
out:
	free(copy);
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

const uint8_t *
keyd_keylist_id(const struct keyd_keylist *l, size_t i, size_t *len)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	if (len != NULL)
		*len = k == NULL ? 0 : k->id_len;
	return k == NULL ? NULL : k->id;
}

int
keyd_keylist_has_cert(const struct keyd_keylist *l, size_t i)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	return k == NULL ? 0 : k->has_cert;
}

int
keyd_keylist_decrypts(const struct keyd_keylist *l, size_t i, int alg)
{
	const struct keyd_keyinfo *k = keylist_at(l, i);

	if (k == NULL || !(k->ops & KEYD_OP_DECRYPT) ||
	    alg < KEYD_RSA_OAEP_SHA1 || alg > KEYD_RSA_PKCS1)
		return 0;
	return (k->decrypts >> (alg - KEYD_RSA_OAEP_SHA1)) & 1u;
}

/* SRTP suites and their master key and salt lengths (RFC 4568 6.2,
 * RFC 6188 7, RFC 7714 12). */
static const struct {
	int suite;
	size_t key_len, salt_len;
} srtp_suites[] = {
	{ KEYD_SRTP_AES_CM_128_HMAC_SHA1_80, 16, 14 },
	{ KEYD_SRTP_AES_CM_128_HMAC_SHA1_32, 16, 14 },
	{ KEYD_SRTP_AES_256_CM_HMAC_SHA1_80, 32, 14 },
	{ KEYD_SRTP_AES_256_CM_HMAC_SHA1_32, 32, 14 },
	{ KEYD_SRTP_AEAD_AES_128_GCM, 16, 12 },
	{ KEYD_SRTP_AEAD_AES_256_GCM, 32, 12 },
};

int
keyd_srtp_suite_lengths(int suite, size_t *key_len, size_t *salt_len)
{
	size_t i;

	for (i = 0; i < sizeof(srtp_suites) / sizeof(srtp_suites[0]); i++)
		if (srtp_suites[i].suite == suite) {
			if (key_len != NULL)
				*key_len = srtp_suites[i].key_len;
			if (salt_len != NULL)
				*salt_len = srtp_suites[i].salt_len;
			return KEYD_OK;
		}
	return KEYD_ERR_INVALID_ARG;
}

static int
srtp_b64_ok(const char *s, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/=";
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(alphabet, s[i]) == NULL)
			return 0;
	return 1;
}

/* Checks keyd's master key, salt and key-params string against suite,
 * then copies them out; nothing is copied unless everything fits. */
static int
srtp_take(struct keyd_client *c, int suite, const ProtobufCBinaryData *mk,
    const ProtobufCBinaryData *ms, const char *kp, uint8_t *key_salt,
    size_t *key_salt_len, char *key_params, size_t key_params_size)
{
	size_t kl, sl, plen;

	if (keyd_srtp_suite_lengths(suite, &kl, &sl) != KEYD_OK ||
	    mk->len != kl || ms->len != sl)
		return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a master "
		    "key of %zu and a salt of %zu bytes for SRTP suite %d",
		    mk->len, ms->len, suite);
	plen = kp != NULL ? strlen(kp) : 0;
	if (plen != 7 + (kl + sl + 2) / 3 * 4 || strncmp(kp, "inline:", 7) !=
	    0 || !srtp_b64_ok(kp + 7, plen - 7))
		return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a key-params "
		    "string that is not inline: and the base64 of the key");
	if (kl + sl > *key_salt_len) {
		*key_salt_len = kl + sl;
		return client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the master "
		    "key and salt have %zu bytes; the buffer holds fewer",
		    kl + sl);
	}
	if (key_params != NULL && plen + 1 > key_params_size)
		return client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the key-params "
		    "string needs %zu bytes; the buffer holds %zu", plen + 1,
		    key_params_size);
	memcpy(key_salt, mk->data, kl);
	memcpy(key_salt + kl, ms->data, sl);
	*key_salt_len = kl + sl;
	if (key_params != NULL)
		memcpy(key_params, kp, plen + 1);
	return KEYD_OK;
}

int
keyd_srtp_new(struct keyd_client *c, const char *key, int suite,
    const void *context, size_t context_len, uint8_t *key_salt,
    size_t *key_salt_len, char *key_params, size_t key_params_size,
    uint8_t *blob, size_t *blob_len)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SrtpNewRequest nr = KEYD__V1__SRTP_NEW_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const Keyd__V1__SrtpNewReply *rep;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (key_salt == NULL || key_salt_len == NULL || blob == NULL ||
	    blob_len == NULL || (context == NULL && context_len != 0)) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_srtp_new: a NULL "
		    "buffer");
		goto out;
	}
	if (keyd_srtp_suite_lengths(suite, NULL, NULL) != KEYD_OK) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_srtp_new: "
		    "unknown SRTP suite %d", suite);
		goto out;
	}
	if (context_len > KEYD_SRTP_MAX_CONTEXT) {
		r = client_fail(c, KEYD_ERR_BAD_LENGTH, "a context has at most "
		    "%u bytes; this one has %zu", KEYD_SRTP_MAX_CONTEXT,
		    context_len);
		goto out;
	}
	nr.key = (char *)(uintptr_t)key;
	nr.suite = (Keyd__V1__SrtpSuite)suite;
	nr.context.data = (uint8_t *)(uintptr_t)context;
	nr.context.len = context_len;
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_NEW;
	req.srtp_new = &nr;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_SRTP_NEW,
	    &resp)) != KEYD_OK)
		goto out;
	rep = resp->srtp_new;
	if (rep->blob.len == 0 || rep->blob.len > KEYD_SRTP_MAX_BLOB) {
		r = client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a blob of %zu "
		    "bytes", rep->blob.len);
		goto out;
	}
	if (rep->blob.len > *blob_len) {
		r = client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the blob has %zu "
		    "bytes; the buffer holds %zu", rep->blob.len, *blob_len);
		*blob_len = rep->blob.len;
		goto out;
	}
	if ((r = srtp_take(c, suite, &rep->master_key, &rep->master_salt,
	    rep->key_params, key_salt, key_salt_len, key_params,
	    key_params_size)) != KEYD_OK)
		goto out;
	memcpy(blob, rep->blob.data, rep->blob.len);
	*blob_len = rep->blob.len;
out:
	/* frame_free_response wipes the decoded key material. */
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_srtp_open(struct keyd_client *c, const char *key, const void *blob,
    size_t blob_len, const void *context, size_t context_len, int *suite,
    uint8_t *key_salt, size_t *key_salt_len, char *key_params,
    size_t key_params_size)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SrtpOpenRequest orq = KEYD__V1__SRTP_OPEN_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	const Keyd__V1__SrtpOpenReply *rep;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (key_salt == NULL || key_salt_len == NULL ||
	    (blob == NULL && blob_len != 0) ||
	    (context == NULL && context_len != 0)) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_srtp_open: a "
		    "NULL buffer");
		goto out;
	}
	if (blob_len > KEYD_SRTP_MAX_BLOB || context_len >
	    KEYD_SRTP_MAX_CONTEXT) {
		r = client_fail(c, KEYD_ERR_BAD_LENGTH, "a blob has at most %u "
		    "bytes and a context %u; these have %zu and %zu",
		    KEYD_SRTP_MAX_BLOB, KEYD_SRTP_MAX_CONTEXT, blob_len,
		    context_len);
		goto out;
	}
	orq.key = (char *)(uintptr_t)key;
	orq.blob.data = (uint8_t *)(uintptr_t)blob;
	orq.blob.len = blob_len;
	orq.context.data = (uint8_t *)(uintptr_t)context;
	orq.context.len = context_len;
	req.op_case = KEYD__V1__REQUEST__OP_SRTP_OPEN;
	req.srtp_open = &orq;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_SRTP_OPEN,
	    &resp)) != KEYD_OK)
		goto out;
	rep = resp->srtp_open;
	if ((r = srtp_take(c, (int)rep->suite, &rep->master_key,
	    &rep->master_salt, rep->key_params, key_salt, key_salt_len,
	    key_params, key_params_size)) != KEYD_OK)
		goto out;
	if (suite != NULL)
		*suite = (int)rep->suite;
out:
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

/* A string keyd sent into dst (size bytes, NUL-terminated), if it is
 * printable ASCII: the JWS and Identity header go into SIP messages. */
static int
passport_take(struct keyd_client *c, const char *what, const char *src,
    char *dst, size_t size)
{
	size_t n;

	if (dst == NULL)
		return KEYD_OK;
	if (src == NULL || (n = strlen(src)) == 0)
		return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent an empty "
		    "%s", what);
	for (size_t i = 0; i < n; i++)
		if (src[i] <= ' ' || src[i] > '~')
			return client_fail(c, KEYD_ERR_PROTOCOL, "keyd sent a "
			    "%s that is not printable ASCII", what);
	if (n >= size)
		return client_fail(c, KEYD_ERR_BUFFER_TOO_SMALL, "the %s has "
		    "%zu bytes; the buffer holds %zu and the NUL",
		    what, n, size > 0 ? size - 1 : 0);
	memcpy(dst, src, n + 1);
	return KEYD_OK;
}

static int
passport_call(struct keyd_client *c, const char *key, const char *ppt,
    const char *attest, const char *div, const char *orig,
    const char *const *dest, size_t n_dest, const char *origid,
    char *identity, size_t identity_size, char *jws, size_t jws_size)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__PassportRequest pq = KEYD__V1__PASSPORT_REQUEST__INIT;
	Keyd__V1__Response *resp = NULL;
	int r;

	if (c == NULL)
		return KEYD_ERR_INVALID_ARG;
	client_lock(c);
	if ((r = check_key_name(c, key)) != KEYD_OK)
		goto out;
	if (orig == NULL || dest == NULL || n_dest == 0 ||
	    n_dest > KEYD_PASSPORT_MAX_DEST) {
		r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_passport: an "
		    "orig and 1 to %u dest TNs are needed",
		    KEYD_PASSPORT_MAX_DEST);
		goto out;
	}
	for (size_t i = 0; i < n_dest; i++)
		if (dest[i] == NULL) {
			r = client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_passport:"
			    " dest[%zu] is NULL", i);
			goto out;
		}
	if (identity != NULL && identity_size > 0)
		identity[0] = '\0';
	if (jws != NULL && jws_size > 0)
		jws[0] = '\0';
	pq.key = (char *)(uintptr_t)key;
	pq.ppt = (char *)(uintptr_t)ppt;
	pq.attest = (char *)(uintptr_t)(attest != NULL ? attest : "");
	pq.div = (char *)(uintptr_t)(div != NULL ? div : "");
	pq.orig = (char *)(uintptr_t)orig;
	pq.dest = (char **)(uintptr_t)dest;
	pq.n_dest = n_dest;
	pq.origid = (char *)(uintptr_t)(origid != NULL ? origid : "");
	req.op_case = KEYD__V1__REQUEST__OP_PASSPORT;
	req.passport = &pq;
	if ((r = client_call(c, &req, KEYD__V1__RESPONSE__RESULT_PASSPORT,
	    &resp)) != KEYD_OK)
		goto out;
	if ((r = passport_take(c, "Identity header value",
	    resp->passport->identity, identity, identity_size)) != KEYD_OK ||
	    (r = passport_take(c, "JWS", resp->passport->jws, jws,
	    jws_size)) != KEYD_OK)
		goto out;
out:
	if (r != KEYD_OK) {
		if (identity != NULL && identity_size > 0)
			identity[0] = '\0';
		if (jws != NULL && jws_size > 0)
			jws[0] = '\0';
	}
	frame_free_response(resp);
	client_unlock(c);
	return r;
}

int
keyd_passport(struct keyd_client *c, const char *key, const char *attest,
    const char *orig, const char *const *dest, size_t n_dest,
    const char *origid, char *identity, size_t identity_size, char *jws,
    size_t jws_size)
{
	if (attest == NULL) {
		if (c != NULL)
			client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_passport: "
			    "no attestation (A, B or C)");
		return KEYD_ERR_INVALID_ARG;
	}
	return passport_call(c, key, "shaken", attest, NULL, orig, dest,
	    n_dest, origid, identity, identity_size, jws, jws_size);
}

int
keyd_passport_div(struct keyd_client *c, const char *key, const char *div,
    const char *orig, const char *const *dest, size_t n_dest,
    char *identity, size_t identity_size, char *jws, size_t jws_size)
{
	if (div == NULL) {
		if (c != NULL)
			client_fail(c, KEYD_ERR_INVALID_ARG, "keyd_passport_div: "
			    "no div TN");
		return KEYD_ERR_INVALID_ARG;
	}
	return passport_call(c, key, "div", NULL, div, orig, dest, n_dest,
	    NULL, identity, identity_size, jws, jws_size);
}
