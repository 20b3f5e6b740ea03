/*
 * fuzz_env.h: the daemon, short of its sockets, for the dispatcher fuzz
 * target and the seed generator: the configuration that
 * tests/fuzz/setup_token.sh writes (named by KEYD_FUZZ_CONFIG), its token
 * logged in, the RSA implicit-rejection secrets, the SRTP counters, the
 * audit log and the dispatcher, set up in keyd_main.c's order, and one
 * peer identified as keyd's server identifies a connection.
 */
#ifndef KEYD_FUZZ_ENV_H
#define KEYD_FUZZ_ENV_H

#include "audit.h"
#include "config.h"
#include "dispatch.h"
#include "policy.h"
#include "srtp.h"
#include "token.h"

/* The environment variable naming the configuration. */
#define FUZZ_ENV_CONFIG "KEYD_FUZZ_CONFIG"

struct fuzz_env {
	struct config *cfg;
	struct token *token;
	struct srtp *srtp;
	struct audit *audit;
	struct dispatch d;
	struct policy_limiter limiter;  /* the peer's client's */
	struct dispatch_peer peer;
	struct token_session ts;        /* the "worker's" session */
	unsigned long inputs;
};

/* fuzz_env_open: sets everything up, or prints why it cannot and exits
 * (a fuzz target has no caller to return an error to). The peer is this
 * process, read with SO_PEERCRED from a socket pair and matched to a
 * [client] by policy_match, as the server does. */
struct fuzz_env *fuzz_env_open(void);

/* fuzz_env_tick: the daemon main loop's periodic work (audit_tick), and
 * once the audit log has grown large, a fresh one, so that a long run
 * does not fill the disk. Call once per input. */
void fuzz_env_tick(struct fuzz_env *e);

/* fuzz_env_close: tears down in keyd_main.c's order. NULL is fine. */
void fuzz_env_close(struct fuzz_env *e);

#endif
