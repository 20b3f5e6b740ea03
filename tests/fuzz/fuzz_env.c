/* fuzz_env.c: see fuzz_env.h. */
#include "fuzz_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "pin.h"
#include "rsa_ir.h"

#define FUZZ_ENV_ERRLEN 512
/* A fresh audit log once the current one is this large; checked every
 * FUZZ_ENV_AUDIT_EVERY inputs. */
#define FUZZ_ENV_AUDIT_MAX (64L * 1024 * 1024)
#define FUZZ_ENV_AUDIT_EVERY 4096

static void __attribute__((noreturn))
die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_env: %s: %s\n", what, err);
	exit(1);
}

struct fuzz_env *
fuzz_env_open(void)
{
	struct fuzz_env *e;
	const char *path = getenv(FUZZ_ENV_CONFIG);
	char err[FUZZ_ENV_ERRLEN];
	char *pin = NULL;
	size_t pin_len = 0;
	int sv[2], ambiguous = 0, r;
	long client;

	if (path == NULL || *path == '\0')
		die(FUZZ_ENV_CONFIG, "not set; run this program through "
		    "tests/fuzz/setup_token.sh, which makes the token and the "
		    "configuration it needs");
	if ((e = calloc(1, sizeof(*e))) == NULL)
		die("set-up", "out of memory");
	/* The daemon's start-up, as keyd_main.c does it, without
	 * privileges to drop, a socket or a sandbox. Warnings about the
	 * configuration are not the fuzzer's business. */
	log_set_prefix("keyd-fuzz");
	log_set_level(LOG_LVL_ERROR);
	if (config_load(path, &e->cfg, err, sizeof(err)) != KEYD_OK)
		die("configuration", err);
	if (e->cfg->pin_file == NULL)
		die("configuration", "no pin_file");
	if (pin_read(e->cfg->pin_file, geteuid(), &pin, &pin_len, err,
	    sizeof(err)) != KEYD_OK)
		die("PIN", err);
	r = token_open(e->cfg, pin, pin_len, &e->token, err, sizeof(err));
	pin_free(pin, pin_len);
	if (r != KEYD_OK)
		die("token", err);
	if (rsa_ir_init(e->cfg, e->token, err, sizeof(err)) != KEYD_OK)
		die("RSA implicit rejection", err);
	if (srtp_init(e->cfg, e->token, 0, &e->srtp, err, sizeof(err)) !=
	    KEYD_OK)
		die("SRTP", err);
	if (audit_open(e->cfg, NULL, &e->audit, err, sizeof(err)) != KEYD_OK)
		die("audit log", err);
	if (dispatch_init(&e->d, e->cfg, e->token, e->audit) != KEYD_OK)
		die("dispatcher", "out of memory");
	e->d.srtp = e->srtp;

	/* The peer: this process on a Unix socket, identified by the
	 * kernel and matched to a client as the server's accept does. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair", strerror(errno));
	r = policy_peer_from_fd(sv[0], &e->peer.cred);
	close(sv[0]);
	close(sv[1]);
	if (r != KEYD_OK)
		die("peer credentials", keyd_strerror(r));
	client = policy_match(e->cfg, &e->peer.cred, &ambiguous);
	if (client < 0)
		die("configuration", "no [client] matches this process's uid");
	e->peer.client = (size_t)client;
	policy_limiter_init(&e->limiter, e->cfg->clients[client].rate,
	    e->cfg->clients[client].max_connections);
	if (!policy_limiter_connect(&e->limiter))
		die("configuration", "the client allows no connection");
	e->peer.limiter = &e->limiter;
	atomic_store(&e->d.run->connections, 1);
	return e;
}

void
fuzz_env_tick(struct fuzz_env *e)
{
	char err[FUZZ_ENV_ERRLEN];
	struct stat st;

	audit_tick(e->audit);
	if (++e->inputs % FUZZ_ENV_AUDIT_EVERY != 0)
		return;
	if (stat(e->cfg->audit_log, &st) != 0 ||
	    st.st_size < FUZZ_ENV_AUDIT_MAX)
		return;
	/* A new chain in an empty file: audit_open starts one. */
	audit_close(e->audit);
	e->audit = NULL;
	if (truncate(e->cfg->audit_log, 0) != 0)
		die("audit log", strerror(errno));
	if (audit_open(e->cfg, NULL, &e->audit, err, sizeof(err)) != KEYD_OK)
		die("audit log", err);
	e->d.audit = e->audit;
}

void
fuzz_env_close(struct fuzz_env *e)
{
	if (e == NULL)
		return;
	token_session_close(e->token, &e->ts);
	policy_limiter_disconnect(&e->limiter);
	policy_limiter_destroy(&e->limiter);
	srtp_free(e->srtp);
	audit_close(e->audit);
	rsa_ir_cleanup();
	token_close(e->token);
	dispatch_free(&e->d);
	config_free(e->cfg);
	free(e);
}
