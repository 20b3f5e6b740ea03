/*
 * dispatch.h: the request dispatcher. It takes one frame body from an
 * identified peer, checks it against the policy, runs it on the token,
 * audits it and appends the reply frame. The server and the protocol fuzz
 * target both drive this same code.
 */
#ifndef KEYD_DISPATCH_H
#define KEYD_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "audit.h"
#include "config.h"
#include "kbuf.h"
#include "policy.h"
#include "token.h"

/* Longest Ed25519 message keyd signs. */
#define DISPATCH_MAX_ED25519_MSG 16384

/* Counters per key and op (status). */
struct dispatch_counter {
	atomic_ulong ok;
	atomic_ulong errors;
	atomic_ulong latency_us;
};

#define DISPATCH_NOPS 6  /* sign, decrypt, srtp-new, srtp-open, status,
                            passport */
#define DISPATCH_NCLIENT_OPS 7  /* and reload, a client's op only */
#define DISPATCH_NDECRYPT 5  /* rsa-oaep-sha1/256/384/512, rsa-pkcs1 */

struct srtp;
struct shaken;
struct rsa_ir_table;
struct policy_limiter;

/* What outlives a configuration: the run's counters, and what the
 * configuration in force is (status). One per process. */
struct dispatch_run {
	struct timespec started;
	atomic_ulong requests;
	atomic_ulong errors;
	atomic_uint connections;
	/* reload: runs a reload and waits for its outcome (keyd_main.c);
	 * NULL: the op is refused as unsupported (the fuzz targets). On
	 * success fills hash (65 bytes), *generation and summary; on
	 * refusal, msg. */
	int (*reload)(void *arg, char *hash, uint64_t *generation,
	    char *summary, size_t sumlen, char *msg, size_t msglen);
	void *reload_arg;
};

/* The dispatcher of one configuration. A reload makes a new one; requests
 * already running finish under the one they began in (refs, server.c). */
struct dispatch {
	const struct config *cfg;
	struct token *token;
	struct srtp *srtp;             /* SRTP KEKs and counters, or NULL */
	struct shaken *shaken;         /* passport keys' certificates, or NULL */
	struct rsa_ir_table *ir;       /* NULL: rsa_ir's own table */
	struct audit *audit;
	struct dispatch_run *run;      /* run_own unless set */
	struct dispatch_run run_own;
	struct dispatch_counter *counters;  /* n_keys * DISPATCH_NOPS */
	struct policy_limiter *limiters;    /* one per client */
	/* The configuration's generation (1 at start), the hex SHA-256 of
	 * its bytes, and when it was applied (wall clock). */
	uint64_t generation;
	char sha256[65];
	time_t applied;
	/* Requests (and accepts) running under this dispatcher, and one for
	 * being the one in force. release, if set, is called when the count
	 * drops to zero (server.c). */
	atomic_int refs;
	void (*release)(struct dispatch *d);
};

/* A connected, identified peer. */
struct dispatch_peer {
	size_t client;                 /* index of its [client] */
	struct policy_peer cred;
	struct policy_limiter *limiter; /* its client's, or NULL */
};

/* dispatch_init: sets up d over cfg, token and audit (all borrowed), with
 * a rate limiter per client, generation 1 and its own run counters. */
int dispatch_init(struct dispatch *d, const struct config *cfg,
    struct token *token, struct audit *audit)
    __attribute__((warn_unused_result));
void dispatch_free(struct dispatch *d);

/* dispatch_request: handles one frame body. Appends exactly one reply
 * frame to out and returns KEYD_OK, or returns KEYD_ERR_PROTOCOL after
 * appending an error reply (id 0) when the body is not a Request: the
 * caller then closes the connection once the reply is sent. s is the
 * calling thread's token session. */
int dispatch_request(struct dispatch *d, struct token_session *s,
    const struct dispatch_peer *p, const uint8_t *body, size_t len,
    struct kbuf *out) __attribute__((warn_unused_result));

/* dispatch_error_reply: appends a Response with only id, error and
 * message (for refusals outside a request, such as an oversized frame). */
int dispatch_error_reply(struct kbuf *out, uint64_t id, int err,
    const char *msg) __attribute__((warn_unused_result));

#endif
