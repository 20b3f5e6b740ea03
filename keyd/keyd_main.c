/* keyd_main.c: the daemon's start-up, signal loop and shutdown. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "dispatch.h"
#include "keyd_err.h"
#include "log.h"
#include "pin.h"
#include "rsa_ir.h"
#include "sandbox.h"
#include "server.h"
#include "shaken.h"
#include "srtp.h"
#include "token.h"

#define ERRLEN 1024
#define TICK_MAX_MS 1000
/* The credential name of the PIN under systemd (LoadCredential=pin:...). */
#define PIN_CREDENTIAL "pin"
/* Test-only: with this variable set, SIGUSR1 makes keyd call socket(AF_INET)
 * so that tests can see the sandbox kill it. */
#define SANDBOX_PROBE_ENV "KEYD_TEST_SANDBOX_PROBE"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: keyd -c FILE [--check-config] [-v]\n"
	    "       keyd --help | --version\n"
	    "  -c, --config FILE   the configuration (INI)\n"
	    "      --check-config  check the configuration, open the token and\n"
	    "                      resolve every key, then exit\n"
	    "  -v, --verbose       debug logging\n"
	    "  -h, --help          print this help and exit\n"
	    "      --version       print the version and exit\n");
}

/* Drops to the configured user: only its primary group, no capabilities
 * (a non-root uid keeps none), and checks that there is no way back. */
static int
drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
	uid_t r, e, s;

	if (cfg->user == NULL)
		return KEYD_OK;
	if (setgroups(1, &cfg->user_gid) != 0 ||
	    setresgid(cfg->user_gid, cfg->user_gid, cfg->user_gid) != 0 ||
	    setresuid(cfg->user_uid, cfg->user_uid, cfg->user_uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", cfg->user,
		    strerror(errno));
		return KEYD_ERR_CONFIG;
	}
	if (getresuid(&r, &e, &s) != 0 || r != cfg->user_uid ||
	    e != cfg->user_uid || s != cfg->user_uid ||
	    (cfg->user_uid != 0 && setuid(0) == 0)) {
		snprintf(err, errlen, "switching to user %s did not take",
		    cfg->user);
		return KEYD_ERR_INTERNAL;
	}
	/* A drop clears dumpable; set it again explicitly anyway. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	return KEYD_OK;
}

static void
event(struct audit *a, const char *name, const char *detail)
{
	struct audit_record ar;

	memset(&ar, 0, sizeof(ar));
	ar.event = name;
	ar.detail = detail;
	if (audit_write(a, &ar) != KEYD_OK)
		log_error("cannot write the '%s' event to the audit log", name);
}

/* The signals keyd handles (through its signalfd, once serving). */
static void
keyd_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR2);
	if (secure_getenv(SANDBOX_PROBE_ENV) != NULL)
		sigaddset(sigs, SIGUSR1);
}

/* SIGTERM and SIGINT during start-up: keyd has written nothing to the
 * audit log yet that a stop record would close, and the module may be
 * stuck in a call that will not return; the watcher says so and exits. */
struct startup_watch {
	pthread_t th;
	int running;
};

static void *
startup_watch_main(void *arg)
{
	sigset_t stop;
	siginfo_t si;

	(void)arg;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	while (sigwaitinfo(&stop, &si) < 0)
		;
	log_error("%s during start-up: stopping before serving",
	    si.si_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	_exit(1);
}

static int
startup_watch_start(struct startup_watch *w)
{
	int e = pthread_create(&w->th, NULL, startup_watch_main, NULL);

	if (e != 0) {
		errno = e;
		return -1;
	}
	w->running = 1;
	return 0;
}

/* Stops the watcher (sigwaitinfo is a cancellation point); a signal it
 * did not take stays pending for the signalfd. */
static int
startup_watch_stop(struct startup_watch *w)
{
	int e;

	if (!w->running)
		return 0;
	w->running = 0;
	if ((e = pthread_cancel(w->th)) != 0 ||
	    (e = pthread_join(w->th, NULL)) != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfg_path = NULL;
	struct config *cfg = NULL;
	struct token *token = NULL;
	struct audit *audit = NULL;
	struct server *srv = NULL;
	struct srtp *srtp = NULL;
	struct shaken *shaken = NULL;
	struct dispatch d;
	struct rlimit nocore = { 0, 0 };
	char err[ERRLEN], detail[128], pin_path[PATH_MAX];
	const char *creds;
	char *pin = NULL;
	size_t pin_len = 0, weak = 0;
	sigset_t sigs;
	struct startup_watch watch = { 0 };
	int check_only = 0, o, sfd = -1, ret = 1, r, dispatch_ready = 0;
	time_t last_sweep = 0;
	size_t stuck;
	int sandboxed __attribute__((unused)) = 0;

	/* No core dumps and no ptrace by other users, whatever the start
	 * mode: the process holds a logged-in token session and the PIN. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)setrlimit(RLIMIT_CORE, &nocore);
	/* Before anything can start a thread: a module may start threads in
	 * C_Initialize or later (tpm2-pkcs11 starts a GLib thread), and they
	 * inherit the mask of the thread that made them. keyd's signals stay
	 * blocked in every thread; until keyd serves, a watcher thread takes
	 * SIGTERM and SIGINT (a start-up that hangs in the module can still
	 * be stopped), and SIGHUP and SIGUSR2 wait. A module that writes to a
	 * closed connection gets EPIPE, not SIGPIPE. */
	keyd_signals(&sigs);
	(void)signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
	    startup_watch_start(&watch) != 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		return 1;
	}

	while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cfg_path = optarg; break;
		case 'C': check_only = 1; break;
		case 'v': log_set_level(LOG_LVL_DEBUG); break;
		case 'V': printf("keyd %s\n", KEYD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}

	if (config_load(cfg_path, &cfg, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (cfg->pin_file != NULL) {
		snprintf(pin_path, sizeof(pin_path), "%s", cfg->pin_file);
	} else if ((creds = secure_getenv("CREDENTIALS_DIRECTORY")) != NULL &&
	    *creds == '/') {
		snprintf(pin_path, sizeof(pin_path), "%s/%s", creds,
		    PIN_CREDENTIAL);
	} else {
		log_error("%s: [keyd] pin_file is required (or run keyd under "
		    "systemd with LoadCredential=%s:FILE)", cfg_path,
		    PIN_CREDENTIAL);
		goto out;
	}
	if (pin_read(pin_path, cfg->user != NULL ? cfg->user_uid :
	    geteuid(), &pin, &pin_len, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	r = token_open(cfg, pin, pin_len, &token, err, sizeof(err));
	pin_free(pin, pin_len);
	pin = NULL;
	if (r != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	for (size_t i = 0; i < token_key_count(token); i++) {
		const struct token_key *k = token_key(token, i);

		if (k->weak_extractable) {
			weak++;
			log_warn("KEY '%s' IS EXTRACTABLE WITHOUT "
			    "CKA_WRAP_WITH_TRUSTED: anyone holding the user PIN "
			    "can wrap it under a key they choose and read it in "
			    "the clear. Regenerate it with keyd-backup keygen "
			    "(with --no-backup if the token cannot hold a key "
			    "that can be backed up; keygen says so).", k->name);
		}
	}
	/* The per-key implicit-rejection secrets, from the token, before any
	 * worker thread exists (rsa_ir.h). */
	if (rsa_ir_init(cfg, token, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (cfg->audit_key == NULL)
		log_warn("no audit_key: the audit log has no signed "
		    "checkpoints, so tampering with its last lines cannot be "
		    "detected");
	/* Before dropping privileges: it may create state_dir. */
	if (srtp_init(cfg, token, check_only, &srtp, err, sizeof(err)) !=
	    KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	/* The passport keys' certificates, read before privileges drop. */
	if (shaken_init(cfg, token, &shaken, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (check_only) {
		/* A failover token that cannot serve is only logged at a
		 * start (keyd serves from the primary and tries it again);
		 * a check fails on it. */
		for (size_t j = 0; j < token_count(token); j++) {
			struct token_info ti;

			token_get_info(token, j, &ti);
			if (strcmp(ti.state, "failed") == 0) {
				log_error("%s: the %s token '%s' cannot serve "
				    "(see above)", cfg_path, ti.role, ti.label);
				goto out;
			}
		}
		printf("keyd: %s is valid: token '%s', %zu key%s, %zu "
		    "client%s%s\n", cfg_path, cfg->token, cfg->n_keys,
		    LOG_PLURAL(cfg->n_keys), cfg->n_clients,
		    LOG_PLURAL(cfg->n_clients), weak ? " (with warnings)" : "");
		ret = 0;
		goto out;
	}

	if (audit_open(cfg, token, &audit, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (server_bind(cfg, cfg->user != NULL ? cfg->user_uid : geteuid(),
	    &srv, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (drop_privileges(cfg, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}

	/* Signals go to the main thread's signalfd only: block them before
	 * any worker exists, so every worker inherits the mask. */
	/* From here the main thread reads the signals from its signalfd;
	 * the start-up watcher stops first, so that none is lost to it. */
	if (startup_watch_stop(&watch) != 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if (dispatch_init(&d, cfg, token, audit) != KEYD_OK) {
		log_error("out of memory");
		goto out;
	}
	dispatch_ready = 1;
	d.srtp = srtp;
	d.shaken = shaken;
	if (cfg->sandbox) {
		if (sandbox_install(cfg->module_network, err, sizeof(err)) !=
		    KEYD_OK) {
			log_error("%s (set sandbox = no to run without it)",
			    err);
			goto out;
		}
		sandboxed = 1;
		log_info("seccomp sandbox on%s", cfg->module_network ?
		    ", network sockets allowed for the module" : "");
	} else {
		log_warn("sandbox = no: running without the seccomp filter");
	}
	/* The run's first line, before any worker can write one: the
	 * verifier takes everything from here to the next start record as
	 * this run, whose checkpoints alone vouch for it. */
	snprintf(detail, sizeof(detail), "keyd %s, %zu key%s, %zu client%s",
	    KEYD_VERSION, cfg->n_keys, LOG_PLURAL(cfg->n_keys), cfg->n_clients,
	    LOG_PLURAL(cfg->n_clients));
	if (audit_start(audit, detail) != KEYD_OK) {
		log_error("cannot write the start record to the audit log");
		goto out;
	}
	if (server_start(srv, &d) != KEYD_OK) {
		log_error("cannot start worker threads: %s", strerror(errno));
		goto out;
	}
	log_info("serving %zu key%s on %s", cfg->n_keys, LOG_PLURAL(cfg->n_keys),
	    cfg->socket);

	for (;;) {
		struct timespec now;
		struct pollfd pfd = { sfd, POLLIN, 0 };
		struct signalfd_siginfo si;
		int tick = (int)cfg->audit_sync_ms < TICK_MAX_MS ?
		    (int)cfg->audit_sync_ms : TICK_MAX_MS;

		r = poll(&pfd, 1, tick);
		audit_tick(audit);
		/* The idle-connection sweep walks every descriptor slot: once
		 * a second is enough. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec != last_sweep) {
			server_tick(srv);
			shaken_tick(shaken, time(NULL));
			last_sweep = now.tv_sec;
		}
		if (r <= 0 || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGUSR1) {
			/* The sandbox test's probe: this must kill keyd. */
			log_warn("sandbox probe: calling socket(AF_INET)");
			r = socket(AF_INET, SOCK_STREAM, 0);
			log_error("sandbox probe: socket(AF_INET) was allowed "
			    "(%d)", r);
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reopening the audit log");
			if (audit_rotate(audit) == KEYD_OK)
				event(audit, "log-reopened", NULL);
			continue;
		}
		if (si.ssi_signo == SIGUSR2) {
			/* Session copies of the keys do not see changes made
			 * on the token by others: this reads them again. */
			log_info("SIGUSR2: reading the keys from the token "
			    "again");
			event(audit, "keys-reload", NULL);
			token_reload(token);
			continue;
		}
		log_info("stopping on signal %u", si.ssi_signo);
		break;
	}
	if ((stuck = server_stop(srv)) > 0) {
		/* Workers inside a hung token call own memory and the token
		 * module: neither can be freed or finalised under them. */
		log_error("%zu workers did not stop (a token call hangs); "
		    "exiting without closing the token", stuck);
		token_abandon(token);
		server_free(srv);       /* only removes the socket file */
		event(audit, "stop", "token hung");
		audit_seal(audit);
		fflush(NULL);
		_exit(1);
	}
	event(audit, "stop", NULL);
	ret = 0;
out:
	(void)startup_watch_stop(&watch);
	server_free(srv);
	srtp_free(srtp);
	shaken_free(shaken);
	/* The final checkpoint is signed on the token: close the log first. */
	audit_close(audit);
	rsa_ir_cleanup();
	token_close(token);
	if (dispatch_ready)
		dispatch_free(&d);
	pin_free(pin, pin_len);
	config_free(cfg);
	if (sfd >= 0)
		close(sfd);
#ifdef KEYD_SANITIZE_BUILD
	/* LeakSanitizer's exit-time check stops the threads with ptrace from
	 * a cloned task, which the seccomp filter forbids; a sandboxed
	 * sanitizer build skips it (run with sandbox = no to leak-check). */
	if (sandboxed) {
		fflush(NULL);
		_exit(ret);
	}
#endif
	return ret;
}
