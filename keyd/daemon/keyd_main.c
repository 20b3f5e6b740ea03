/*
 * keyd_main.c: keyd's supervisor, and the socket-facing process it forks.
 *
 * The supervisor (the process systemd starts and signals) reads the
 * configuration and the PIN, starts one token process per configured
 * token (keyd-token, tokenproc.c), and forks the socket-facing process,
 * which accepts clients and reaches the tokens only through the token
 * processes' channels. The supervisor never loads the PKCS#11 module and
 * never parses a client's bytes; it handles the signals, restarts a token
 * process that crashed, hung or lost its device, and keeps the PIN in
 * locked memory for those restarts. docs/architecture.md has the picture.
 *
 * It also runs reloads (reload_start and what follows): it reads the
 * configuration file once, checks it, starts token processes with its bytes
 * beside the running ones, offers them to the socket-facing process and,
 * once that one has applied the new configuration, retires the old token
 * processes. serve_reload.c is the socket-facing process's half.
 *
 * Why one file over 1,200 lines: the start-up, the restarts and the
 * reloads are one state machine over struct sup and its token processes,
 * driven by one poll loop (supervise); split, struct sup and a dozen of its
 * helpers would become an interface that nothing else uses. The
 * socket-facing process's own code lives elsewhere (server.c, dispatch.c,
 * serve_reload.c); serve() here only wires it up after the fork.
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <libgen.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "syslogq.h"
#include "config.h"
#include "cpgate.h"
#include "dispatch.h"
#include "keyd_err.h"
#include "log.h"
#include "pin.h"
#include "rsa_ir.h"
#include "sandbox.h"
#include "server.h"
#include "serve_reload.h"
#include "reload.h"
#include "shaken.h"
#include "srtp.h"
#include "token.h"
#include "token_proxy.h"
#include "tokenwire.h"

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

#define RESTART_FIRST_MS 250      /* the second restart in a row waits this */
#define RESTART_ABSENT_MS 1000
#define RESTART_MAX_MS 30000
#define RESTART_RESET_MS 60000    /* up this long: back-off starts again */
#define STOP_WAIT_MS 10000        /* for the socket-facing process's stop */
#define STARTUP_WAIT_MS 30000     /* for a token to open, at least */
#define TOKEN_STOP_WAIT_MS 5000   /* for C_Finalize in the token processes */
#define MAX_CHANNELS TW_MAX_FDS
/* An approval to sign a checkpoint lapses after twice token_timeout (the
 * signature itself is a token call), and never sooner than this: a token
 * process that neither signs nor says it will not cannot hold up the
 * audit log's checkpoints for ever. */
#define CP_HOLD_MIN_MS 10000

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

/* The signals the supervisor handles through its signalfd. They are
 * blocked in every process keyd makes; the token processes block them
 * again before their module can start a thread. */
static void
keyd_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR2);
	sigaddset(sigs, SIGCHLD);
	if (secure_getenv(SANDBOX_PROBE_ENV) != NULL)
		sigaddset(sigs, SIGUSR1);
}

/* One token process, as the supervisor sees it. */
struct tproc {
	size_t idx;
	const char *role;
	pid_t pid;                 /* 0: none running */
	int ctl;                   /* its control channel; -1: none */
	unsigned gen;
	int srv_fds[MAX_CHANNELS]; /* the socket-facing ends, until handed */
	int have_fds;
	int ready;
	struct kbuf info;          /* its READY frame, after the type */
	long started_ms;
	long restart_at_ms;        /* 0: none due */
	long backoff_ms;
	int hung_kill;             /* killed by keyd for a hang */
	int pin_refused;
	int failed_code;
	char failed_msg[ERRLEN];
	char ident[160];           /* label, manufacturer, model, serial */
	int pending;               /* started for a reload not yet applied */
	int ended;                 /* a reload's process that ended after */
	int ended_st;              /* its offer: its wait status */
};

/* A reload under way (docs/operations.md): the file's bytes, read once
 * and checked, and the token processes started with them; nothing of
 * the running configuration changes until the socket-facing process has
 * applied it (TW_CTL_RELOAD_DONE). */
#define RETIRE_MAX 8
struct reload {
	int active;
	int offered;               /* sent to the socket-facing process */
	uint32_t seq;              /* the client's ask; 0: SIGHUP */
	long deadline_ms;          /* for the token processes to be ready */
	struct config *cfg;
	int cfg_fd;                /* the bytes, sealed */
	int syslog_fd;             /* the new syslog_socket's, or -1 */
	char *text;
	size_t len;
	char hash[RELOAD_HASH_HEX + 1];
	struct kbuf pems;          /* passport certificate files (below) */
	struct tproc np[2];
	int has_np[2];
};

/* A passport key's certificate file, read here for a reload: the
 * socket-facing process's sandbox does not reach its directory. */
#define RELOAD_PEM_MAX (256u * 1024u)

/* A token process a reload replaced: it ends once the requests begun
 * under the old configuration are answered, or is killed at kill_ms. */
struct retiring {
	pid_t pid;
	long kill_ms;
};

struct sup {
	struct config *cfg;
	const char *cfg_path;
	char helper[PATH_MAX];
	char *pin;
	size_t pin_len;
	struct tproc tp[2];
	size_t ntp;
	size_t nch;
	int sfd;
	int srv_ctl;               /* to the socket-facing process; -1 */
	pid_t srv_pid;
	int verbose;
	int fatal;                 /* a configuration error found late */
	int reload_pin_refused;    /* a reload's token process was refused
	                              the PIN: none tried until SIGUSR2 */
	struct cpgate cp;          /* the last audit line signed, and who
	                              may sign the next (cpgate.h) */
	int cfg_fd;                /* the applied bytes, sealed (memfd) */
	uid_t cfg_owner;           /* the euid at start: the file's owner, or root */
	char hash[RELOAD_HASH_HEX + 1];
	struct reload rl;
	struct retiring retiring[RETIRE_MAX];
	size_t n_retiring;
};

/* Whether the file at path lies below directory dir (both resolved where
 * they exist). */
static int
path_below(const char *path, const char *dir)
{
	char rp[PATH_MAX], rd[PATH_MAX];
	size_t n;

	if (realpath(path, rp) == NULL)
		snprintf(rp, sizeof(rp), "%s", path);
	if (realpath(dir, rd) == NULL)
		snprintf(rd, sizeof(rd), "%s", dir);
	n = strlen(rd);
	while (n > 1 && rd[n - 1] == '/')
		rd[--n] = '\0';
	return strncmp(rp, rd, n) == 0 && (rp[n] == '/' || n == 1);
}

/* keyd-token: beside keyd in a build tree, else where it is installed. */
static int
find_helper(char *out, size_t n)
{
	char self[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (l > 0) {
		self[l] = '\0';
		snprintf(out, n, "%s/keyd-token", dirname(self));
		if (access(out, X_OK) == 0)
			return 0;
	}
	snprintf(out, n, "%s", KEYD_TOKEN_HELPER);
	return access(out, X_OK);
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
drop_fds(struct tproc *p, size_t nch)
{
	if (!p->have_fds)
		return;
	for (size_t i = 0; i < nch; i++)
		close_fd(&p->srv_fds[i]);
	p->have_fds = 0;
}

/* Starts token process p: fork, then exec of keyd-token with its
 * control channel and request channels, and the PIN sent over the
 * control channel. */
static int
spawn(struct sup *S, struct tproc *p)
{
	int ctl[2], ch[MAX_CHANNELS][2], hi[2 + MAX_CHANNELS];
	int cfd = p->pending ? S->rl.cfg_fd : S->cfg_fd;
	char nbuf[16], fbuf[16], *argv[12];
	size_t i, n = S->nch, a = 0;
	struct kbuf b;
	pid_t pid;
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ch[i]) !=
		    0) {
			while (i-- > 0) {
				close(ch[i][0]);
				close(ch[i][1]);
			}
			close(ctl[0]);
			close(ctl[1]);
			return -1;
		}
	snprintf(nbuf, sizeof(nbuf), "%zu", n);
	argv[a++] = "keyd-token";
	argv[a++] = "--config";
	argv[a++] = (char *)S->cfg->path;
	argv[a++] = "--role";
	argv[a++] = (char *)p->role;
	argv[a++] = "--channels";
	argv[a++] = nbuf;
	/* The bytes applied, never the file as it may be by now. */
	snprintf(fbuf, sizeof(fbuf), "%d", TW_FD_FIRST_CHANNEL + (int)n);
	argv[a++] = "--config-fd";
	argv[a++] = fbuf;
	if (S->verbose)
		argv[a++] = "-v";
	argv[a] = NULL;
	if ((pid = fork()) < 0) {
		r = -1;
		goto out;
	}
	if (pid == 0) {
		int base = TW_FD_FIRST_CHANNEL + (int)n + 8;

		/* Out of the way first, then into place (dup2 clears
		 * FD_CLOEXEC on the copy). */
		hi[0] = fcntl(ctl[1], F_DUPFD_CLOEXEC, base);
		for (i = 0; i < n; i++)
			hi[1 + i] = fcntl(ch[i][1], F_DUPFD_CLOEXEC, base);
		hi[1 + n] = fcntl(cfd, F_DUPFD_CLOEXEC, base);
		for (i = 0; i <= n + 1; i++)
			if (hi[i] < 0 || dup2(hi[i], TW_FD_CONTROL + (int)i) < 0)
				_exit(127);
		execv(S->helper, argv);
		_exit(127);
	}
	r = 0;
out:
	close(ctl[1]);
	for (i = 0; i < n; i++)
		close(ch[i][1]);
	if (r != 0) {
		close(ctl[0]);
		for (i = 0; i < n; i++)
			close(ch[i][0]);
		return -1;
	}
	p->pid = pid;
	p->ctl = ctl[0];
	p->gen++;
	for (i = 0; i < n; i++)
		p->srv_fds[i] = ch[i][0];
	p->have_fds = 1;
	p->ready = 0;
	p->hung_kill = 0;
	p->failed_code = 0;
	p->failed_msg[0] = '\0';
	p->started_ms = tw_now_ms();
	p->restart_at_ms = 0;
	kbuf_init(&b, 4096, KBUF_SECRET);
	r = tw_put_word(&b, TW_CTL_PIN) == KEYD_OK &&
	    tw_put_word(&b, (uint32_t)S->pin_len) == KEYD_OK &&
	    kbuf_put(&b, S->pin, S->pin_len) == KEYD_OK &&
	    tw_send(p->ctl, kbuf_ptr(&b), kbuf_avail(&b), NULL, 0) == 0 ? 0 :
	    -1;
	kbuf_free(&b);
	log_debug("token process %s started (pid %ld)", p->role, (long)pid);
	return r;
}

static int
send_srv(struct sup *S, const void *p, size_t n, const int *fds, size_t nfds)
{
	if (S->srv_ctl < 0)
		return -1;
	if (tw_send(S->srv_ctl, p, n, fds, nfds) != 0) {
		log_error("cannot reach the socket-facing process: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Hands token process p's channels and key info to the socket-facing
 * process. */
static void
hand_over(struct sup *S, struct tproc *p)
{
	struct kbuf b;
	uint32_t h[3] = { TW_CTL_TOKEN_UP, (uint32_t)p->idx, p->gen };

	if (S->srv_ctl < 0 || !p->ready || !p->have_fds)
		return;
	kbuf_init(&b, TW_MAX_FRAME, 0);
	if (kbuf_put(&b, h, sizeof(h)) == KEYD_OK &&
	    kbuf_put(&b, kbuf_ptr(&p->info), kbuf_avail(&p->info)) == KEYD_OK)
		send_srv(S, kbuf_ptr(&b), kbuf_avail(&b), p->srv_fds, S->nch);
	kbuf_free(&b);
	drop_fds(p, S->nch);
}

static void
tell_down(struct sup *S, struct tproc *p, const char *state,
    const char *cause)
{
	struct kbuf b;
	uint32_t h[3] = { TW_CTL_TOKEN_DOWN, (uint32_t)p->idx, p->gen };

	kbuf_init(&b, 4096, 0);
	if (kbuf_put(&b, h, sizeof(h)) == KEYD_OK &&
	    kbuf_put(&b, state, strlen(state) + 1) == KEYD_OK &&
	    kbuf_put(&b, cause, strlen(cause)) == KEYD_OK)
		send_srv(S, kbuf_ptr(&b), kbuf_avail(&b), NULL, 0);
	kbuf_free(&b);
}

/* How long an approval to sign a checkpoint holds. */
static long
cp_hold_ms(const struct sup *S)
{
	long ms = 2 * (long)S->cfg->token_timeout_ms;

	return ms > CP_HOLD_MIN_MS ? ms : CP_HOLD_MIN_MS;
}

/* TW_CTL_CP_ASK from token process p: u32 seq, the predecessor its line
 * names. The answer echoes both, so that p cannot take it for the answer
 * to another ask; a yes is p's alone until it says what became of it. */
static void
cp_ask(struct sup *S, struct tproc *p, struct kbuf *b)
{
	uint8_t f[12 + TW_HASH_LEN];
	uint8_t prev[TW_HASH_LEN];
	uint32_t seq, t = TW_CTL_CP_ANSWER, yes;

	if (tw_get_word(b, &seq) != KEYD_OK ||
	    kbuf_get_bytes(b, prev, TW_HASH_LEN) != KEYD_OK) {
		log_error("token process %s sent a malformed checkpoint ask",
		    p->role);
		return;
	}
	yes = (uint32_t)cpgate_ask(&S->cp, p->pid, seq, prev, tw_now_ms(),
	    cp_hold_ms(S));
	if (!yes && S->cp.holder != 0 && S->cp.holder != p->pid)
		log_warn("token process %s may not sign a checkpoint now: "
		    "another token process holds the approval", p->role);
	memcpy(f, &t, 4);
	memcpy(f + 4, &yes, 4);
	memcpy(f + 8, &seq, 4);
	memcpy(f + 12, prev, TW_HASH_LEN);
	if (tw_send(p->ctl, f, sizeof(f), NULL, 0) != 0) {
		log_error("cannot answer token process %s", p->role);
		/* It will not hear the yes, so it will not sign. */
		(void)cpgate_release(&S->cp, p->pid);
	}
}

/* TW_CTL_CP_DONE (u32 seq, prev, the signed line's hash) or
 * TW_CTL_CP_ABORT (u32 seq, prev) from token process p. Only the holder
 * of the approval for that ask moves the last checkpoint or frees the
 * approval. */
static void
cp_finish(struct sup *S, struct tproc *p, uint32_t t, struct kbuf *b)
{
	uint8_t prev[TW_HASH_LEN], next[TW_HASH_LEN];
	uint32_t seq;

	if (tw_get_word(b, &seq) != KEYD_OK ||
	    kbuf_get_bytes(b, prev, TW_HASH_LEN) != KEYD_OK ||
	    (t == TW_CTL_CP_DONE &&
	    kbuf_get_bytes(b, next, TW_HASH_LEN) != KEYD_OK)) {
		log_error("token process %s sent a malformed checkpoint frame",
		    p->role);
		return;
	}
	if (t == TW_CTL_CP_ABORT) {
		if (cpgate_abort(&S->cp, p->pid, seq, prev) != KEYD_OK)
			log_debug("token process %s gave back an approval it "
			    "does not hold (ask %u)", p->role, seq);
		return;
	}
	if (cpgate_done(&S->cp, p->pid, seq, prev, next) != KEYD_OK)
		log_error("token process %s signed a checkpoint without the "
		    "approval for it (ask %u): keyd does not take that line "
		    "as the last checkpoint", p->role, seq);
}

/* Closes token process p's control channel: it can no longer say it
 * signed, so an approval it held is freed. */
static void
close_ctl(struct sup *S, struct tproc *p)
{
	if (cpgate_release(&S->cp, p->pid))
		log_warn("token process %s ended holding the approval to sign "
		    "a checkpoint; released", p->role);
	close_fd(&p->ctl);
}

/* A frame from token process p's control channel. */
static void
token_frame(struct sup *S, struct tproc *p)
{
	struct kbuf b;
	uint32_t t, code;

	kbuf_init(&b, TW_MAX_FRAME, 0);
	if (tw_recv(p->ctl, &b, TW_MAX_FRAME, NULL, NULL, tw_now_ms() +
	    5000) != 0) {
		/* Closed: its exit is reaped through SIGCHLD. */
		close_ctl(S, p);
		kbuf_free(&b);
		return;
	}
	if (tw_get_word(&b, &t) != KEYD_OK)
		goto out;
	switch (t) {
	case TW_CTL_READY: {
		struct tw_info in;
		struct kbuf v;

		kbuf_view(&v, kbuf_ptr(&b), kbuf_avail(&b));
		if (tw_info_get(&v, &in) != KEYD_OK) {
			log_error("token process %s sent malformed key info",
			    p->role);
			kill(p->pid, SIGKILL);
			break;
		}
		snprintf(p->ident, sizeof(p->ident), "%s|%s|%s|%s", in.ti.label,
		    in.ti.manufacturer, in.ti.model, in.ti.serial);
		tw_info_free(&in);
		if (p->pending) {
			/* A reload's: offered once all are ready
			 * (reload_poll). The tokens are restart-only, so the
			 * same-token check made at start holds. */
			kbuf_reset(&p->info);
			if (kbuf_put(&p->info, kbuf_ptr(&b), kbuf_avail(&b)) ==
			    KEYD_OK)
				p->ready = 1;
			break;
		}
		/* The two URIs name one token (a label and a serial number):
		 * that is no failover, whenever it shows. */
		if (S->ntp == 2 && S->tp[1 - p->idx].ident[0] != '\0' &&
		    !strcmp(S->tp[1 - p->idx].ident, p->ident)) {
			log_error("failover_token %s names the same token as token "
			    "%s", S->cfg->failover_token, S->cfg->token);
			S->fatal = 1;
			kill(p->pid, SIGKILL);
			break;
		}
		kbuf_reset(&p->info);
		if (kbuf_put(&p->info, kbuf_ptr(&b), kbuf_avail(&b)) !=
		    KEYD_OK)
			break;
		p->ready = 1;
		hand_over(S, p);
		break;
	}
	case TW_CTL_FAILED:
		if (tw_get_word(&b, &code) != KEYD_OK)
			break;
		p->failed_code = (int)code;
		snprintf(p->failed_msg, sizeof(p->failed_msg), "%.*s",
		    (int)kbuf_avail(&b), (const char *)kbuf_ptr(&b));
		break;
	case TW_CTL_CP_ASK:
		cp_ask(S, p, &b);
		break;
	case TW_CTL_CP_DONE:
	case TW_CTL_CP_ABORT:
		cp_finish(S, p, t, &b);
		break;
	}
out:
	kbuf_free(&b);
}

/* Reads what token process p sent that is not read yet: a checkpoint it
 * signed must not be lost. If p holds the approval to sign one, waits
 * until deadline_ms for it to say what became of it. all: every frame it
 * sent; else only while it holds the approval (p has ended: the rest of
 * what it said no longer matters). */
static void
read_rest(struct sup *S, struct tproc *p, long deadline_ms, int all)
{
	while (p->ctl >= 0) {
		struct pollfd pf = { p->ctl, POLLIN, 0 };
		int holds = p->pid != 0 && S->cp.holder == p->pid;
		long left = 0;

		if (!all && !holds)
			break;
		if (holds)
			left = deadline_ms - tw_now_ms();
		if (poll(&pf, 1, left > 0 ? (int)left : 0) <= 0 ||
		    !(pf.revents & (POLLIN | POLLHUP)))
			break;
		token_frame(S, p);
	}
}

/* The approval to sign a checkpoint lapsed: its holder is hung (it has
 * taken twice token_timeout), so it is killed; the approval is freed once
 * it has ended and what it sent before is read. */
static void
cp_lapsed(struct sup *S, pid_t pid)
{
	log_error("a token process has held the approval to sign a "
	    "checkpoint for %ld ms without saying it signed; killing it",
	    cp_hold_ms(S));
	for (size_t j = 0; j < S->ntp; j++) {
		if (S->tp[j].pid == pid) {
			S->tp[j].hung_kill = 1;
			(void)kill(pid, SIGKILL);
			return;
		}
		if (S->rl.has_np[j] && S->rl.np[j].pid == pid) {
			(void)kill(pid, SIGKILL);
			return;
		}
	}
	/* Not one of keyd's token processes any more. */
	(void)cpgate_release(&S->cp, pid);
}

static const char *
signame(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGABRT: return "SIGABRT";
	case SIGBUS: return "SIGBUS";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGSYS: return "SIGSYS";
	case SIGTERM: return "SIGTERM";
	}
	return "a signal";
}

/* Token process p has ended with status st: why, in a few words. */
static void
token_ended(struct sup *S, struct tproc *p, int st, int starting)
{
	char cause[ERRLEN + 128];
	const char *state = "restarting";
	long now = tw_now_ms(), delay;
	int crashed = p->hung_kill || WIFSIGNALED(st);

	if (p->hung_kill) {
		snprintf(cause, sizeof(cause), "it hung (a call took longer "
		    "than token_timeout, %u ms)", S->cfg->token_timeout_ms);
	} else if (WIFSIGNALED(st)) {
		snprintf(cause, sizeof(cause), "it crashed (%s, signal %d, "
		    "inside the module)", signame(WTERMSIG(st)), WTERMSIG(st));
	} else if (WEXITSTATUS(st) == TW_EXIT_DEVICE_LOST) {
		snprintf(cause, sizeof(cause), "the token lost its device (a "
		    "health probe failed after a re-login)");
	} else if (WEXITSTATUS(st) == TW_EXIT_PIN_REFUSED) {
		snprintf(cause, sizeof(cause), "the token refused keyd's PIN%s%.*s;"
		    " keyd does not try it again until SIGUSR2 or a restart",
		    p->failed_msg[0] ? ": " : "", ERRLEN - 1, p->failed_msg);
		state = "pin refused";
		p->pin_refused = 1;
	} else if (p->failed_msg[0] != '\0') {
		snprintf(cause, sizeof(cause), "%.*s", ERRLEN - 1,
		    p->failed_msg);
		state = starting ? "failed" : "restarting";
	} else {
		snprintf(cause, sizeof(cause), "it exited with status %d",
		    WEXITSTATUS(st));
	}
	if (!starting)
		log_error("token process %s (token '%s') ended: %s", p->role,
		    p->idx == 0 ? S->cfg->token : S->cfg->failover_token, cause);
	read_rest(S, p, 0, 0);
	close_ctl(S, p);
	p->pid = 0;
	p->ready = 0;
	drop_fds(p, S->nch);
	if (!starting)
		tell_down(S, p, state, cause);
	if (p->pin_refused)
		return;
	if (now - p->started_ms > RESTART_RESET_MS)
		p->backoff_ms = 0;
	delay = p->backoff_ms;
	/* A crash or a hang may come back at once: those back off to
	 * RESTART_MAX_MS. A token that is not there, or lost its device, is
	 * looked for again every RESTART_ABSENT_MS at most, as a primary
	 * token was tried once a second before token processes. */
	p->backoff_ms = p->backoff_ms == 0 ? RESTART_FIRST_MS :
	    p->backoff_ms * 2;
	if (p->backoff_ms > (crashed ? RESTART_MAX_MS : RESTART_ABSENT_MS))
		p->backoff_ms = crashed ? RESTART_MAX_MS : RESTART_ABSENT_MS;
	p->restart_at_ms = now + delay;
	if (!starting)
		log_info("token process %s: restarting in %ld ms", p->role,
		    delay);
}

static void
restart_due(struct sup *S)
{
	long now = tw_now_ms();

	for (size_t j = 0; j < S->ntp; j++) {
		struct tproc *p = &S->tp[j];

		if (p->pid != 0 || p->restart_at_ms == 0 ||
		    p->restart_at_ms > now)
			continue;
		p->restart_at_ms = 0;
		if (spawn(S, p) != 0) {
			log_error("cannot start token process %s: %s", p->role,
			    strerror(errno));
			p->restart_at_ms = now + RESTART_MAX_MS;
		}
	}
}

static long
next_timer_ms(struct sup *S, long dflt)
{
	long now = tw_now_ms(), ms = dflt;

	for (size_t j = 0; j < S->ntp; j++)
		if (S->tp[j].pid == 0 && S->tp[j].restart_at_ms != 0) {
			long left = S->tp[j].restart_at_ms - now;

			if (left < ms)
				ms = left < 0 ? 0 : left;
		}
	return ms;
}

/* Ends every token process: their control channels close, they
 * finalise their modules and exit; one that does not is killed. */
static void
stop_tokens(struct sup *S)
{
	long until = tw_now_ms() + TOKEN_STOP_WAIT_MS;
	int st;

	for (size_t j = 0; j < S->ntp; j++) {
		close_ctl(S, &S->tp[j]);
		drop_fds(&S->tp[j], S->nch);
	}
	for (size_t j = 0; j < S->ntp; j++) {
		struct tproc *p = &S->tp[j];

		while (p->pid != 0) {
			pid_t r = waitpid(p->pid, &st, WNOHANG);

			if (r == p->pid || (r < 0 && errno == ECHILD)) {
				p->pid = 0;
				break;
			}
			if (tw_now_ms() > until) {
				log_error("token process %s did not stop; "
				    "killing it", p->role);
				kill(p->pid, SIGKILL);
				(void)waitpid(p->pid, &st, 0);
				p->pid = 0;
				break;
			}
			usleep(10000);
		}
		kbuf_free(&p->info);
	}
}

/* Start-up: waits until every token process is ready or has ended.
 * SIGTERM and SIGINT stop keyd here. Returns how many are ready, or -1. */
static int
wait_started(struct sup *S)
{
	long limit = (long)S->cfg->token_timeout_ms * 6 > STARTUP_WAIT_MS ?
	    (long)S->cfg->token_timeout_ms * 6 : STARTUP_WAIT_MS;
	long deadline = tw_now_ms() + limit;

	for (;;) {
		struct pollfd pf[3];
		size_t n = 0, pending = 0, ready = 0;
		long left = deadline - tw_now_ms();
		int st;

		if (left <= 0) {
			for (size_t j = 0; j < S->ntp; j++) {
				struct tproc *p = &S->tp[j];

				if (p->pid == 0 || p->ready)
					continue;
				snprintf(p->failed_msg, sizeof(p->failed_msg),
				    "the %s token did not open within %ld s (a "
				    "module call hangs); its token process was "
				    "killed", p->role, limit / 1000);
				(void)kill(p->pid, SIGKILL);
				(void)waitpid(p->pid, &st, 0);
				close_ctl(S, p);
				p->pid = 0;
				drop_fds(p, S->nch);
				p->restart_at_ms = tw_now_ms() + RESTART_ABSENT_MS;
			}
			left = 1;
		}

		for (size_t j = 0; j < S->ntp; j++) {
			if (S->tp[j].pid != 0 && !S->tp[j].ready)
				pending++;
			ready += S->tp[j].ready;
		}
		if (S->fatal)
			return -1;
		if (pending == 0)
			return (int)ready;
		pf[n++] = (struct pollfd){ S->sfd, POLLIN, 0 };
		for (size_t j = 0; j < S->ntp; j++)
			pf[n++] = (struct pollfd){ S->tp[j].ctl, POLLIN, 0 };
		if (poll(pf, n, left > 1000 ? 1000 : (int)left) < 0 &&
		    errno != EINTR)
			return -1;
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(S->sfd, &si, sizeof(si)) == sizeof(si) &&
			    (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)) {
				log_error("%s during start-up: stopping before "
				    "serving", si.ssi_signo == SIGTERM ?
				    "SIGTERM" : "SIGINT");
				return -1;
			}
		}
		for (size_t j = 0; j < S->ntp; j++) {
			struct tproc *p = &S->tp[j];

			if (p->ctl >= 0 && (pf[1 + j].revents & (POLLIN |
			    POLLHUP)))
				token_frame(S, p);
			if (p->pid != 0 && !p->ready &&
			    waitpid(p->pid, &st, WNOHANG) == p->pid) {
				token_ended(S, p, st, 1);
				if (p->failed_msg[0] == '\0')
					snprintf(p->failed_msg,
					    sizeof(p->failed_msg), "its token "
					    "process ended (status %d)", st);
			}
		}
	}
}

static int
open_side(struct config *cfg, struct token *token, int check_only,
    struct srtp **srtp, struct shaken **shaken, char *err, size_t errlen)
{
	/* The per-key implicit-rejection secrets, from the token, before any
	 * worker thread exists (rsa_ir.h); the SRTP KEKs' check values; the
	 * passport keys' certificates, read before privileges drop. */
	if (rsa_ir_init(cfg, token, err, errlen) != KEYD_OK)
		return -1;
	if (srtp_init(cfg, token, check_only, srtp, err, errlen) != KEYD_OK)
		return -1;
	if (shaken_init(cfg, token, shaken, err, errlen) != KEYD_OK)
		return -1;
	return 0;
}

/* The directory of path, for Landlock (in buf). */
static const char *
dir_of(const char *path, char *buf, size_t n)
{
	snprintf(buf, n, "%s", path);
	return dirname(buf);
}

/* The socket-facing process: from the fork to its exit. cfg and token
 * become the first configuration's (serve_reload.c frees them); hash is
 * the hex SHA-256 of the configuration's bytes. */
static int
serve(struct config *cfg, struct token *token, int ctl, const char *pin_path,
    const char *hash)
{
	struct audit *audit = NULL;
	struct server *srv = NULL;
	struct dispatch *d = NULL;
	struct serve_reload *rl = NULL;
	char err[ERRLEN], detail[128], ds[PATH_MAX];
	const char *rw[1];
	int ret = 1, r;
	time_t last_sweep = 0;
	size_t stuck;
	struct kbuf b;
	/* Restart-only (reload.c): the first configuration's values hold
	 * for the whole run. */
	unsigned sync_ms = cfg->audit_sync_ms;
	int sandboxed __attribute__((unused)) = 0;

	(void)prctl(PR_SET_NAME, "keyd-serve");
	kbuf_init(&b, TW_MAX_FRAME, 0);
	if (audit_open(cfg, token, &audit, err, sizeof(err)) != KEYD_OK ||
	    (d = serve_reload_first(cfg, token, audit, hash, err,
	    sizeof(err))) == NULL ||
	    server_bind(cfg, cfg->user != NULL ? cfg->user_uid : geteuid(),
	    &srv, err, sizeof(err)) != KEYD_OK ||
	    sandbox_drop_privileges(cfg, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (serve_reload_new(d, ctl, &rl) != KEYD_OK) {
		log_error("out of memory");
		goto out;
	}
	d = NULL;                  /* rl has it */
	/* From here it reads and writes only its own directories: not the
	 * PIN file, not the systemd credential. */
	rw[0] = cfg->state_dir;
	r = sandbox_landlock(rw, 1, dir_of(cfg->socket, ds, sizeof(ds)), err,
	    sizeof(err));
	if (r == KEYD_ERR_UNSUPPORTED)
		log_warn("%s: the socket-facing process is not kept from the "
		    "PIN file %s by Landlock", err, pin_path);
	else if (r != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	if (cfg->sandbox) {
		if (sandbox_install(err, sizeof(err)) != KEYD_OK) {
			log_error("%s (set sandbox = no to run without it)",
			    err);
			goto out;
		}
		sandboxed = 1;
		log_info("seccomp sandbox on%s", cfg->module_network ?
		    " (network sockets allowed in the token processes only)" :
		    "");
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
	if (server_start(srv, serve_reload_current(rl)) != KEYD_OK) {
		log_error("cannot start worker threads: %s", strerror(errno));
		goto out;
	}
	serve_reload_start(rl, srv);
	log_info("serving %zu key%s on %s", cfg->n_keys, LOG_PLURAL(cfg->n_keys),
	    cfg->socket);
	/* cfg is the first configuration's, which a reload frees: from here
	 * on only the one in force (serve_reload_current) is read. */
	cfg = NULL;
	token = NULL;

	for (;;) {
		struct timespec now;
		struct pollfd pfd = { ctl, POLLIN, 0 };
		int tick = (int)sync_ms < TICK_MAX_MS ? (int)sync_ms :
		    TICK_MAX_MS, fds[MAX_CHANNELS];
		size_t nfds = MAX_CHANNELS;
		struct dispatch *cur = serve_reload_current(rl);
		uint32_t h[3];

		r = poll(&pfd, 1, tick);
		audit_tick(audit);
		/* The idle-connection sweep walks every descriptor slot: once
		 * a second is enough. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec != last_sweep) {
			server_tick(srv);
			shaken_tick(cur->shaken, time(NULL));
			last_sweep = now.tv_sec;
		}
		if (r <= 0)
			continue;
		if (tw_recv(ctl, &b, TW_MAX_FRAME, fds, &nfds, tw_now_ms() +
		    5000) != 0) {
			/* It was killed (a normal stop comes as a signal
			 * frame): go as it went, without a stop record or
			 * removing the socket, as one process killed did. */
			log_error("keyd's supervisor is gone: exiting");
			fflush(NULL);
			_exit(1);
		}
		if (kbuf_get_bytes(&b, h, sizeof(uint32_t)) != KEYD_OK)
			continue;
		if (h[0] == TW_CTL_RELOAD_TOKEN) {
			serve_reload_token(rl, &b, fds, nfds);
			continue;
		}
		if (h[0] == TW_CTL_RELOAD_APPLY && nfds <= 1) {
			/* The one descriptor: the new syslog socket. */
			serve_reload_apply(rl, &b, nfds == 1 ? fds[0] : -1);
			continue;
		}
		if (h[0] == TW_CTL_RELOAD_REFUSED && nfds == 0) {
			serve_reload_refused(rl, &b);
			continue;
		}
		if (h[0] == TW_CTL_TOKEN_UP &&
		    kbuf_get_bytes(&b, h + 1, 2 * sizeof(uint32_t)) == KEYD_OK) {
			struct tw_info in;

			memset(&in, 0, sizeof(in));
			if (tw_info_get(&b, &in) != KEYD_OK ||
			    (snprintf(err, sizeof(err), "no token %u", h[1]),
			    h[1] >= token_count(cur->token)) ||
			    token_proxy_up(cur->token, h[1], h[2], fds, nfds,
			    &in, err, sizeof(err)) != KEYD_OK) {
				for (size_t i = 0; i < nfds; i++)
					close(fds[i]);
				log_error("a token process came back, but: %s",
				    err);
			} else {
				snprintf(detail, sizeof(detail), "token '%s' (%s) "
				    "serves again", in.ti.label, h[1] == 0 ?
				    "primary" : "failover");
				log_info("%s", detail);
				event(audit, "token-ready", detail);
			}
			tw_info_free(&in);
			continue;
		}
		if (h[0] == TW_CTL_SIGNAL && nfds == 1 &&
		    kbuf_get_bytes(&b, h + 1, 2 * sizeof(uint32_t)) ==
		    KEYD_OK && h[1] == SIGHUP) {
			/* The log's path, opened by the supervisor: for
			 * writing, or (h[2], why not) O_PATH. */
			log_info("SIGHUP: reopening the audit log");
			if ((h[2] != 0 ? audit_rotate_denied(audit, fds[0],
			    (int)h[2]) : audit_rotate_fd(audit, fds[0])) ==
			    KEYD_OK)
				event(audit, "log-reopened", NULL);
			continue;
		}
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		if (h[0] == TW_CTL_TOKEN_DOWN &&
		    kbuf_get_bytes(&b, h + 1, 2 * sizeof(uint32_t)) == KEYD_OK) {
			char state[24], cause[ERRLEN + 64];
			size_t sl = strnlen((const char *)kbuf_ptr(&b),
			    kbuf_avail(&b));

			if (sl >= kbuf_avail(&b) || sl >= sizeof(state))
				continue;
			memcpy(state, kbuf_ptr(&b), sl + 1);
			snprintf(cause, sizeof(cause), "%s %s: %.*s", h[1] == 0 ?
			    "primary" : "failover", state,
			    (int)(kbuf_avail(&b) - sl - 1),
			    (const char *)kbuf_ptr(&b) + sl + 1);
			if (h[1] < token_count(cur->token))
				token_proxy_down(cur->token, h[1], h[2], state);
			event(audit, "token-restart", cause);
			continue;
		}
		if (h[0] != TW_CTL_SIGNAL ||
		    kbuf_get_bytes(&b, h + 1, sizeof(uint32_t)) != KEYD_OK)
			continue;
		if (h[1] == SIGUSR1) {
			/* The sandbox test's probe: the PIN file must not open,
			 * and socket(AF_INET) must kill keyd. */
			int fd = open(pin_path, O_RDONLY | O_CLOEXEC);

			if (fd >= 0) {
				log_error("sandbox probe: the PIN file opened");
				close(fd);
			} else {
				log_warn("sandbox probe: the PIN file does not "
				    "open: %s", strerror(errno));
			}
			log_warn("sandbox probe: calling socket(AF_INET)");
			r = socket(AF_INET, SOCK_STREAM, 0);
			log_error("sandbox probe: socket(AF_INET) was allowed "
			    "(%d)", r);
			continue;
		}
		if (h[1] == SIGHUP) {
			uint32_t e = 0;

			/* The supervisor could not open the path: why. */
			if (kbuf_get_bytes(&b, &e, sizeof(e)) != KEYD_OK)
				e = 0;
			log_info("SIGHUP: reopening the audit log");
			errno = (int)e;
			if (audit_rotate_fd(audit, -1) == KEYD_OK)
				event(audit, "log-reopened", NULL);
			continue;
		}
		if (h[1] == SIGUSR2) {
			/* Session copies of the keys do not see changes made
			 * on the token by others: the token processes read
			 * them again. */
			log_info("SIGUSR2: reading the keys from the token "
			    "again");
			event(audit, "keys-reload", NULL);
			continue;
		}
		log_info("stopping on signal %u", h[1]);
		break;
	}
	serve_reload_abort(rl);
	if ((stuck = server_stop(srv)) > 0) {
		log_error("%zu workers did not stop", stuck);
		server_free(srv);       /* only removes the socket file */
		event(audit, "stop", "workers stuck");
		audit_seal(audit);
		fflush(NULL);
		_exit(1);
	}
	event(audit, "stop", NULL);
	ret = 0;
out:
	server_free(srv);
	/* The final checkpoint is signed in a token process: close the log
	 * first. */
	audit_close(audit);
	kbuf_free(&b);
#ifdef KEYD_SANITIZE_BUILD
	/* LeakSanitizer's exit-time check stops the threads with ptrace from
	 * a cloned task, which the seccomp filter forbids; a sandboxed
	 * sanitizer build skips it (run with sandbox = no to leak-check). */
	if (sandboxed) {
		fflush(NULL);
		_exit(ret);
	}
#endif
	if (rl != NULL) {
		serve_reload_free(rl);   /* and the configuration in force */
	} else if (d != NULL) {
		server_put(d);
	} else {
		token_close(token);
		config_free(cfg);
	}
	return ret;
}

/* A reload refused before the socket-facing process saw it: the reason
 * on stderr, and to the socket-facing process, which audits it and
 * answers the client that asked. */
static void
reload_refuse(struct sup *S, uint32_t seq, const char *why)
{
	struct kbuf b;
	uint32_t h[2] = { TW_CTL_RELOAD_REFUSED, seq };

	log_error("reload refused: %s", why);
	kbuf_init(&b, 4096, 0);
	if (kbuf_put(&b, h, sizeof(h)) == KEYD_OK &&
	    kbuf_put(&b, why, strnlen(why, 2048)) == KEYD_OK)
		send_srv(S, kbuf_ptr(&b), kbuf_avail(&b), NULL, 0);
	kbuf_free(&b);
}

/* Ends a reload: its token processes are killed (they never served),
 * unless commit moved them into place. */
static void
reload_clear(struct sup *S)
{
	struct reload *rl = &S->rl;

	for (size_t j = 0; j < 2; j++) {
		struct tproc *p = &rl->np[j];

		if (!rl->has_np[j])
			continue;
		if (p->pid != 0) {
			(void)kill(p->pid, SIGKILL);
			(void)waitpid(p->pid, NULL, 0);
			read_rest(S, p, 0, 0);
		}
		close_ctl(S, p);
		p->pid = 0;
		drop_fds(p, S->nch);
		kbuf_free(&p->info);
		rl->has_np[j] = 0;
	}
	config_free(rl->cfg);
	close_fd(&rl->cfg_fd);
	close_fd(&rl->syslog_fd);
	free(rl->text);
	kbuf_free(&rl->pems);
	memset(rl, 0, sizeof(*rl));
	rl->cfg_fd = rl->syslog_fd = -1;
}

/* The passport keys' certificate files of the new configuration, each as
 * u32 path length, path, u32 length, bytes, after a u32 count. */
static int
reload_read_pems(struct reload *rl, char *err, size_t errlen)
{
	uint32_t n = 0;

	kbuf_init(&rl->pems, TW_MAX_FRAME / 2, 0);
	for (size_t i = 0; i < rl->cfg->n_keys; i++)
		n += rl->cfg->keys[i].certificate != NULL;
	if (tw_put_word(&rl->pems, n) != KEYD_OK)
		goto nomem;
	for (size_t i = 0; i < rl->cfg->n_keys; i++) {
		const char *path = rl->cfg->keys[i].certificate;
		uint8_t *buf;
		ssize_t got;
		int fd;

		if (path == NULL)
			continue;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			snprintf(err, errlen, "[key %s] certificate: cannot open "
			    "%s: %s", rl->cfg->keys[i].name, path,
			    strerror(errno));
			return -1;
		}
		buf = malloc(RELOAD_PEM_MAX);
		got = buf == NULL ? -1 : read(fd, buf, RELOAD_PEM_MAX);
		close(fd);
		if (got < 0 || (size_t)got >= RELOAD_PEM_MAX) {
			snprintf(err, errlen, "[key %s] certificate: cannot read "
			    "%s%s", rl->cfg->keys[i].name, path, got < 0 ? "" :
			    " (larger than 256 KiB)");
			free(buf);
			return -1;
		}
		if (tw_put_word(&rl->pems, (uint32_t)strlen(path)) != KEYD_OK ||
		    kbuf_put(&rl->pems, path, strlen(path)) != KEYD_OK ||
		    tw_put_word(&rl->pems, (uint32_t)got) != KEYD_OK ||
		    kbuf_put(&rl->pems, buf, (size_t)got) != KEYD_OK) {
			free(buf);
			goto nomem;
		}
		free(buf);
	}
	return 0;
nomem:
	snprintf(err, errlen, "the passport certificates are too large for "
	    "one reload");
	return -1;
}

static void
reload_fail(struct sup *S, const char *why)
{
	uint32_t seq = S->rl.seq;

	reload_clear(S);
	reload_refuse(S, seq, why);
}

/* The audit log reopened by its path (logrotate moved it away): the
 * socket-facing process cannot reach the log's directory, so the new file
 * is opened here and its descriptor handed over. */
static void
reopen_audit(struct sup *S)
{
	uint32_t g[3] = { TW_CTL_SIGNAL, SIGHUP, 0 };
	int fd = audit_reopen_path(S->cfg->audit_log);

	g[2] = fd < 0 ? (uint32_t)errno : 0;
	/* Not this user's to write (keyd started as root made it, or an
	 * operator did): the path itself, O_PATH, so that keyd-serve can
	 * tell whether it still names the file it writes. */
	if (fd < 0 && (errno == EACCES || errno == EPERM))
		fd = open(S->cfg->audit_log, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	send_srv(S, g, sizeof(g), fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
	if (fd >= 0)
		close(fd);
}

/* syslog turned on, or another syslog_socket: the socket is made and
 * connected here, before the new configuration is offered, so that one
 * keyd cannot use refuses the reload with its reason as a start-up check
 * would, and so that keyd-serve needs no access to a path it was not
 * started with: it takes the descriptor with the apply frame and swaps it
 * in at the switch (serve_reload.c). As at a start (syslogq.c), a socket
 * with no daemon behind it yet (absent, or nobody reading it) is only a
 * warning: keyd-serve tries again every second. Any other failure (keyd's
 * user may not write to it, a stream socket, a path through a file) would
 * fail every retry alike, so it refuses the reload. */
static int
reload_syslog(struct sup *S, struct reload *rl, char *err, size_t errlen)
{
	const struct config *o = S->cfg, *n = rl->cfg;

	if (!n->syslog || (o->syslog && !strcmp(o->syslog_socket,
	    n->syslog_socket)))
		return 0;
	if ((rl->syslog_fd = syslogq_connect_fd(n->syslog_socket)) >= 0)
		return 0;
	if (errno == ENOENT || errno == ECONNREFUSED) {
		log_warn("reload: cannot connect to the syslog socket %s: %s; "
		    "audit lines are not mirrored to syslog until it can be "
		    "reached (keyd tries again every second and counts the "
		    "lines lost as syslog_dropped in keydctl status)",
		    n->syslog_socket, strerror(errno));
		return 0;
	}
	snprintf(err, errlen, "cannot connect to the syslog socket %s: %s "
	    "(syslog_socket must name the syslog daemon's datagram socket, "
	    "which keyd's user may write to)", n->syslog_socket,
	    strerror(errno));
	return -1;
}

/* SIGHUP (seq 0) or a client's reload op: the audit log is reopened
 * whatever follows (logrotate's postrotate may use either); the file is
 * read once, checked as at a start, and token processes are started with
 * its bytes to resolve the new configuration's keys beside the running
 * ones. */
static void
reload_start(struct sup *S, uint32_t seq)
{
	struct reload *rl = &S->rl;
	char err[ERRLEN];
	size_t serving = 0;

	reopen_audit(S);

	if (rl->active) {
		reload_refuse(S, seq, "another reload is under way; try again "
		    "once it is done");
		return;
	}
	memset(rl, 0, sizeof(*rl));
	rl->cfg_fd = rl->syslog_fd = -1;
	rl->seq = seq;
	rl->active = 1;
	/* Owned by root or by the user keyd started as, as at the start:
	 * not by the user it dropped to since. */
	if (config_read_owned(S->cfg_path, S->cfg_owner, &rl->text, &rl->len,
	    err, sizeof(err)) != KEYD_OK ||
	    config_parse_buffer(rl->text, rl->len, S->cfg_path, 1, &rl->cfg,
	    err, sizeof(err)) != KEYD_OK ||
	    reload_restart_only(S->cfg, rl->cfg, err, sizeof(err))) {
		reload_fail(S, err);
		return;
	}
	reload_sha256_hex(rl->text, rl->len, rl->hash);
	if (reload_syslog(S, rl, err, sizeof(err)) != 0 ||
	    reload_read_pems(rl, err, sizeof(err)) != 0) {
		reload_fail(S, err);
		return;
	}
	for (size_t j = 0; j < S->ntp; j++) {
		if (S->tp[j].pid != 0 && !S->tp[j].ready) {
			snprintf(err, sizeof(err), "the %s token's process is "
			    "starting; try the reload again once it serves "
			    "(keydctl status)", S->tp[j].role);
			reload_fail(S, err);
			return;
		}
		serving += S->tp[j].ready;
	}
	if (serving == 0) {
		reload_fail(S, "no token process serves now (keydctl status); "
		    "try the reload again once one does");
		return;
	}
	/* Every reload logs in afresh: a PIN the token refused once is not
	 * offered again, so that reloads (logrotate's, or a client's in a
	 * loop) cannot use up the token's PIN retries. */
	if (S->reload_pin_refused) {
		reload_fail(S, "the token refused keyd's PIN at an earlier "
		    "reload; keyd does not try it again until SIGUSR2 or a "
		    "restart");
		return;
	}
	if ((rl->cfg_fd = reload_memfd(rl->text, rl->len)) < 0) {
		snprintf(err, sizeof(err), "cannot keep the configuration's "
		    "bytes in memory: %s", strerror(errno));
		reload_fail(S, err);
		return;
	}
	/* A token process that is down now is started with the new bytes
	 * once the reload applies (restart_due); those that serve get a
	 * successor that checks the new keys. */
	for (size_t j = 0; j < S->ntp; j++) {
		struct tproc *p = &rl->np[j];

		if (!S->tp[j].ready)
			continue;
		memset(p, 0, sizeof(*p));
		p->idx = j;
		p->role = S->tp[j].role;
		p->ctl = -1;
		p->gen = S->tp[j].gen;
		p->pending = 1;
		kbuf_init(&p->info, TW_MAX_FRAME, 0);
		rl->has_np[j] = 1;
		if (spawn(S, p) != 0) {
			snprintf(err, sizeof(err), "cannot start a token process "
			    "for the %s token: %s", p->role, strerror(errno));
			reload_fail(S, err);
			return;
		}
	}
	rl->deadline_ms = tw_now_ms() + (long)S->cfg->token_timeout_ms;
	log_info("reload: checking %s (sha256 %s)", S->cfg_path, rl->hash);
}

/* The new token processes are ready: offered to the socket-facing
 * process, which applies or refuses. Or one ended, or the time is up. */
static void
reload_poll(struct sup *S)
{
	struct reload *rl = &S->rl;
	char err[ERRLEN + 128];
	int all = 1;

	if (!rl->active || rl->offered)
		return;
	for (size_t j = 0; j < 2; j++) {
		struct tproc *p = &rl->np[j];

		if (!rl->has_np[j])
			continue;
		if (p->pid == 0) {
			if (p->ended && WIFEXITED(p->ended_st) &&
			    WEXITSTATUS(p->ended_st) == TW_EXIT_PIN_REFUSED)
				S->reload_pin_refused = 1;
			snprintf(err, sizeof(err), "the %s token cannot serve "
			    "the new configuration: %s", p->role,
			    p->failed_msg[0] ? p->failed_msg :
			    "its token process ended");
			reload_fail(S, err);
			return;
		}
		all &= p->ready;
	}
	if (!all) {
		if (tw_now_ms() <= rl->deadline_ms)
			return;
		snprintf(err, sizeof(err), "the new configuration's keys were "
		    "not resolved within token_timeout (%u ms): a token does "
		    "not answer; the running configuration serves on",
		    S->cfg->token_timeout_ms);
		reload_fail(S, err);
		return;
	}
	for (size_t j = 0; j < 2; j++) {
		struct tproc *p = &rl->np[j];
		uint32_t h[3] = { TW_CTL_RELOAD_TOKEN, (uint32_t)j, p->gen };
		struct kbuf b;

		if (!rl->has_np[j])
			continue;
		kbuf_init(&b, TW_MAX_FRAME, 0);
		if (kbuf_put(&b, h, sizeof(h)) == KEYD_OK &&
		    kbuf_put(&b, kbuf_ptr(&p->info), kbuf_avail(&p->info)) ==
		    KEYD_OK)
			send_srv(S, kbuf_ptr(&b), kbuf_avail(&b), p->srv_fds,
			    S->nch);
		kbuf_free(&b);
		drop_fds(p, S->nch);
	}
	{
		struct kbuf b;
		uint32_t h[2] = { TW_CTL_RELOAD_APPLY, rl->seq };

		const char *why = NULL;

		kbuf_init(&b, TW_MAX_FRAME, 0);
		if (kbuf_put(&b, h, sizeof(h)) != KEYD_OK ||
		    kbuf_put(&b, rl->hash, RELOAD_HASH_HEX) != KEYD_OK ||
		    tw_put_word(&b, (uint32_t)rl->len) != KEYD_OK ||
		    kbuf_put(&b, rl->text, rl->len) != KEYD_OK ||
		    kbuf_put(&b, kbuf_ptr(&rl->pems), kbuf_avail(&rl->pems)) !=
		    KEYD_OK)
			why = "the configuration and its certificates do not "
			    "fit in one frame to the socket-facing process";
		else if (send_srv(S, kbuf_ptr(&b), kbuf_avail(&b),
		    rl->syslog_fd >= 0 ? &rl->syslog_fd : NULL,
		    rl->syslog_fd >= 0 ? 1 : 0) != 0)
			why = "the socket-facing process cannot be reached";
		kbuf_free(&b);
		/* Not offered: no RELOAD_DONE would ever come, and the
		 * reload would stay under way, refusing every later one and
		 * holding back token restarts. */
		if (why != NULL) {
			reload_fail(S, why);
			return;
		}
	}
	rl->offered = 1;
}

/* The socket-facing process's answer: the new token processes take the
 * old ones' places (which end once their requests are answered), or are
 * killed. */
static void
reload_done(struct sup *S, uint32_t seq, uint32_t applied, struct kbuf *b)
{
	struct reload *rl = &S->rl;

	if (!rl->active || !rl->offered || seq != rl->seq)
		return;
	if (!applied) {
		log_error("reload refused: %.*s", (int)kbuf_avail(b),
		    (const char *)kbuf_ptr(b));
		reload_clear(S);
		return;
	}
	for (size_t j = 0; j < 2; j++) {
		struct tproc *old = &S->tp[j];

		if (!rl->has_np[j])
			continue;
		if (old->pid != 0) {
			if (S->n_retiring < RETIRE_MAX) {
				S->retiring[S->n_retiring].pid = old->pid;
				S->retiring[S->n_retiring].kill_ms =
				    tw_now_ms() + 2 *
				    (long)S->cfg->token_timeout_ms +
				    TOKEN_STOP_WAIT_MS;
				S->n_retiring++;
			} else {
				(void)kill(old->pid, SIGKILL);
				(void)waitpid(old->pid, NULL, 0);
			}
		}
		/* What it said before the socket-facing process applied the
		 * reload is read first: the last checkpoint it signed (the
		 * reload record may have made one) must not be lost. If it
		 * holds the approval to sign one, it is signing now: its
		 * report is waited for, at most until the approval lapses,
		 * since the approval cannot pass to another process while it
		 * may still sign. */
		read_rest(S, old, S->cp.until_ms, 1);
		if (old->pid != 0 && S->cp.holder == old->pid) {
			log_error("a token process a reload replaced holds the "
			    "approval to sign a checkpoint and did not say it "
			    "signed; killing it");
			(void)kill(old->pid, SIGKILL);
		}
		/* Its control channel closed: it finalises the module once
		 * the socket-facing process closes its channels. An
		 * approval it held is freed with it. */
		close_ctl(S, old);
		drop_fds(old, S->nch);
		kbuf_free(&old->info);
		*old = rl->np[j];
		old->pending = 0;
		old->backoff_ms = 0;
		rl->has_np[j] = 0;
	}
	config_free(S->cfg);
	S->cfg = rl->cfg;
	rl->cfg = NULL;
	close_fd(&S->cfg_fd);
	S->cfg_fd = rl->cfg_fd;
	rl->cfg_fd = -1;
	memcpy(S->hash, rl->hash, sizeof(S->hash));
	log_info("reload applied (sha256 %s)", S->hash);
	reload_clear(S);
	/* A new token process that ended between its offer and now: the
	 * socket-facing process serves with its channels, so it is told the
	 * token is down and the process restarts, as any that ends does. */
	for (size_t j = 0; j < S->ntp; j++)
		if (S->tp[j].ended) {
			S->tp[j].ended = 0;
			token_ended(S, &S->tp[j], S->tp[j].ended_st, 0);
		}
}

/* Reaps a retiring token process, or kills one past its time. */
static int
retired(struct sup *S, pid_t pid)
{
	for (size_t i = 0; i < S->n_retiring; i++)
		if (S->retiring[i].pid == pid) {
			S->retiring[i] = S->retiring[--S->n_retiring];
			return 1;
		}
	return 0;
}

static void
retire_due(struct sup *S)
{
	long now = tw_now_ms();

	for (size_t i = 0; i < S->n_retiring; i++)
		if (now > S->retiring[i].kill_ms && S->retiring[i].kill_ms) {
			log_error("a token process a reload replaced did not end; "
			    "killing it");
			(void)kill(S->retiring[i].pid, SIGKILL);
			S->retiring[i].kill_ms = 0;
		}
}

/* The supervisor's loop once the socket-facing process runs. Returns
 * keyd's exit status. */
static int
supervise(struct sup *S)
{
	int stopping = 0, st, ret = 1;
	long stop_deadline = 0;
	struct kbuf b;

	kbuf_init(&b, 4096, 0);
	for (;;) {
		struct pollfd pf[6];
		size_t n = 0;
		long wait = next_timer_ms(S, S->rl.active || S->n_retiring ?
		    100 : 1000);

		pf[n++] = (struct pollfd){ S->sfd, POLLIN, 0 };
		pf[n++] = (struct pollfd){ S->srv_ctl, POLLIN, 0 };
		for (size_t j = 0; j < S->ntp; j++)
			pf[n++] = (struct pollfd){ S->tp[j].ctl, POLLIN, 0 };
		/* A reload's token processes, at 2 + ntp + j. */
		for (size_t j = 0; j < S->ntp; j++)
			pf[n++] = (struct pollfd){ S->rl.has_np[j] ?
			    S->rl.np[j].ctl : -1, POLLIN, 0 };
		if (poll(pf, n, (int)wait) < 0 && errno != EINTR)
			break;
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			uint32_t f[2] = { TW_CTL_SIGNAL, 0 };

			if (read(S->sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			f[1] = si.ssi_signo;
			switch (si.ssi_signo) {
			case SIGCHLD:
				break;
			case SIGTERM:
			case SIGINT:
				if (!stopping) {
					stopping = 1;
					stop_deadline = tw_now_ms() +
					    STOP_WAIT_MS + (long)S->cfg->
					    token_timeout_ms;
					send_srv(S, f, sizeof(f), NULL, 0);
				}
				break;
			case SIGUSR2:
				S->reload_pin_refused = 0;
				for (size_t j = 0; j < S->ntp; j++) {
					struct tproc *p = &S->tp[j];
					uint32_t rl = TW_CTL_RELOAD;

					if (p->pin_refused && p->pid == 0) {
						p->pin_refused = 0;
						p->backoff_ms = 0;
						p->restart_at_ms = tw_now_ms();
					} else if (p->ctl >= 0 &&
					    tw_send(p->ctl, &rl, sizeof(rl),
					    NULL, 0) != 0) {
						log_error("cannot reach token "
						    "process %s", p->role);
					}
				}
				send_srv(S, f, sizeof(f), NULL, 0);
				break;
			case SIGHUP:
				/* The log is reopened, and the configuration
				 * file read again. */
				if (!stopping)
					reload_start(S, 0);
				else
					reopen_audit(S);
				break;
			default:
				send_srv(S, f, sizeof(f), NULL, 0);
			}
		}
		/* Children that ended. */
		for (;;) {
			pid_t pid = waitpid(-1, &st, WNOHANG);

			if (pid <= 0)
				break;
			if (pid == S->srv_pid) {
				S->srv_pid = 0;
				if (WIFEXITED(st) && stopping) {
					ret = S->fatal ? 1 : WEXITSTATUS(st);
				} else {
					log_error("the socket-facing process %s "
					    "%d: stopping keyd", WIFSIGNALED(st) ?
					    "was killed by signal" : "exited "
					    "with status", WIFSIGNALED(st) ?
					    WTERMSIG(st) : WEXITSTATUS(st));
					ret = WIFSIGNALED(st) ? 128 +
					    WTERMSIG(st) : (WEXITSTATUS(st) ?
					    WEXITSTATUS(st) : 1);
				}
				goto done;
			}
			for (size_t j = 0; j < S->ntp; j++)
				if (S->tp[j].pid == pid)
					token_ended(S, &S->tp[j], st, 0);
			for (size_t j = 0; j < 2; j++)
				if (S->rl.has_np[j] && S->rl.np[j].pid == pid) {
					struct tproc *p = &S->rl.np[j];

					read_rest(S, p, 0, 0);
					(void)cpgate_release(&S->cp, pid);
					p->pid = 0;
					p->ended = 1;
					p->ended_st = st;
					if (p->failed_msg[0] == '\0' &&
					    WIFSIGNALED(st))
						snprintf(p->failed_msg,
						    sizeof(p->failed_msg), "its "
						    "token process was killed "
						    "(signal %d)", WTERMSIG(st));
				}
			(void)retired(S, pid);
		}
		if (S->srv_ctl >= 0 && (pf[1].revents & (POLLIN | POLLHUP))) {
			uint32_t h[3];

			if (tw_recv(S->srv_ctl, &b, 4096, NULL, NULL,
			    tw_now_ms() + 5000) != 0) {
				close_fd(&S->srv_ctl);
			} else if (kbuf_get_bytes(&b, h, sizeof(uint32_t)) !=
			    KEYD_OK) {
				/* nothing */
			} else if (h[0] == TW_CTL_RELOAD_ASK &&
			    kbuf_get_bytes(&b, h + 1, sizeof(uint32_t)) ==
			    KEYD_OK) {
				if (stopping)
					reload_refuse(S, h[1], "keyd is "
					    "stopping");
				else
					reload_start(S, h[1]);
			} else if (h[0] == TW_CTL_RELOAD_DONE &&
			    kbuf_get_bytes(&b, h + 1, 2 * sizeof(uint32_t)) ==
			    KEYD_OK) {
				reload_done(S, h[1], h[2], &b);
			} else if (h[0] == TW_CTL_HUNG &&
			    kbuf_get_bytes(&b, h + 1, 2 * sizeof(uint32_t)) ==
			    KEYD_OK && h[1] < S->ntp) {
				struct tproc *p = &S->tp[h[1]];
				struct tproc *q = S->rl.has_np[h[1]] ?
				    &S->rl.np[h[1]] : NULL;

				if (p->gen == h[2] && p->pid != 0 &&
				    !p->hung_kill) {
					p->hung_kill = 1;
					(void)kill(p->pid, SIGKILL);
				} else if (q != NULL && q->gen == h[2] &&
				    q->pid != 0) {
					/* A reload's, hung while the
					 * socket-facing process checked the
					 * keys: it refuses the reload. */
					(void)kill(q->pid, SIGKILL);
				}
			}
		}
		for (size_t j = 0; j < S->ntp; j++)
			if (S->tp[j].ctl >= 0 &&
			    (pf[2 + j].revents & (POLLIN | POLLHUP)))
				token_frame(S, &S->tp[j]);
		for (size_t j = 0; j < S->ntp; j++)
			if (S->rl.has_np[j] && S->rl.np[j].ctl >= 0 &&
			    (pf[2 + S->ntp + j].revents & (POLLIN | POLLHUP)))
				token_frame(S, &S->rl.np[j]);
		reload_poll(S);
		retire_due(S);
		{
			pid_t holder = cpgate_expire(&S->cp, tw_now_ms());

			if (holder != 0)
				cp_lapsed(S, holder);
		}
		if (S->fatal && !stopping) {
			uint32_t f[2] = { TW_CTL_SIGNAL, SIGTERM };

			stopping = 1;
			stop_deadline = tw_now_ms() + STOP_WAIT_MS +
			    (long)S->cfg->token_timeout_ms;
			send_srv(S, f, sizeof(f), NULL, 0);
		}
		/* A restart during a reload waits for its outcome: it then
		 * starts with the bytes in force. */
		if (!stopping && !S->rl.active)
			restart_due(S);
		if (stopping && tw_now_ms() > stop_deadline && S->srv_pid != 0) {
			log_error("the socket-facing process did not stop; "
			    "killing it");
			kill(S->srv_pid, SIGKILL);
			stop_deadline = tw_now_ms() + 1000;
		}
	}
done:
	kbuf_free(&b);
	return ret;
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
	struct sup S;
	struct token *token = NULL;
	struct srtp *srtp = NULL;
	struct shaken *shaken = NULL;
	struct rlimit nocore = { 0, 0 };
	char err[ERRLEN], pin_path[PATH_MAX];
	const char *creds;
	size_t weak = 0;
	sigset_t sigs;
	int check_only = 0, o, ret = 1, sv[2] = { -1, -1 }, ready;
	long ncpu;
	pid_t pid;

	memset(&S, 0, sizeof(S));
	cpgate_init(&S.cp);
	S.sfd = S.srv_ctl = S.cfg_fd = S.rl.cfg_fd = S.rl.syslog_fd = -1;
	for (size_t j = 0; j < 2; j++) {
		S.tp[j].ctl = -1;
		S.tp[j].idx = j;
		S.tp[j].role = j == 0 ? "primary" : "failover";
		kbuf_init(&S.tp[j].info, TW_MAX_FRAME, 0);
	}
	/* No core dumps and no ptrace by other users: this process holds
	 * the PIN. Every process keyd makes inherits the blocked signals;
	 * the supervisor reads them from its signalfd. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)setrlimit(RLIMIT_CORE, &nocore);
	keyd_signals(&sigs);
	(void)signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
	    (S.sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		return 1;
	}

	while ((o = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': S.cfg_path = optarg; break;
		case 'C': check_only = 1; break;
		case 'v': log_set_level(LOG_LVL_DEBUG); S.verbose = 1; break;
		case 'V': printf("keyd %s\n", KEYD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (S.cfg_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}

	/* The file is read once: its bytes are what the token processes
	 * get (a sealed memfd) and what the audit log's hash names. */
	{
		char *text = NULL;
		size_t len = 0;

		S.cfg_owner = geteuid();
		if (config_read(S.cfg_path, &text, &len, err, sizeof(err)) !=
		    KEYD_OK || config_parse_buffer(text, len, S.cfg_path, 1,
		    &S.cfg, err, sizeof(err)) != KEYD_OK) {
			free(text);
			log_error("%s", err);
			goto out;
		}
		reload_sha256_hex(text, len, S.hash);
		S.cfg_fd = reload_memfd(text, len);
		free(text);
		if (S.cfg_fd < 0) {
			log_error("cannot keep the configuration's bytes in "
			    "memory: %s", strerror(errno));
			goto out;
		}
	}
	if (S.cfg->pin_file != NULL) {
		snprintf(pin_path, sizeof(pin_path), "%s", S.cfg->pin_file);
	} else if ((creds = secure_getenv("CREDENTIALS_DIRECTORY")) != NULL &&
	    *creds == '/') {
		snprintf(pin_path, sizeof(pin_path), "%s/%s", creds,
		    PIN_CREDENTIAL);
	} else {
		log_error("%s: [keyd] pin_file is required (or run keyd under "
		    "systemd with LoadCredential=%s:FILE)", S.cfg_path,
		    PIN_CREDENTIAL);
		goto out;
	}
	/* The socket-facing process reads and writes state_dir: the PIN
	 * must live elsewhere. */
	if (path_below(pin_path, S.cfg->state_dir)) {
		log_error("%s: the PIN file %s lies in state_dir %s, which the "
		    "socket-facing process can read: keep it elsewhere",
		    S.cfg_path, pin_path, S.cfg->state_dir);
		goto out;
	}
	if (find_helper(S.helper, sizeof(S.helper)) != 0) {
		log_error("cannot find keyd-token, the token process (looked "
		    "beside keyd and at %s)", KEYD_TOKEN_HELPER);
		goto out;
	}
	/* The PIN, in locked memory that a fork wipes (secmem.c): only the
	 * token processes get it, over their control channels. */
	if (pin_read(pin_path, S.cfg->user != NULL ? S.cfg->user_uid :
	    geteuid(), &S.pin, &S.pin_len, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	/* A channel per worker, one for the audit log's checkpoints, and two
	 * for start-up and status. */
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	S.nch = (S.cfg->workers ? S.cfg->workers : (size_t)(ncpu > 0 ? ncpu :
	    2)) + 4;
	if (S.nch > MAX_CHANNELS)
		S.nch = MAX_CHANNELS;
	S.ntp = S.cfg->failover_token != NULL ? 2 : 1;
	for (size_t j = 0; j < S.ntp; j++)
		if (spawn(&S, &S.tp[j]) != 0) {
			log_error("cannot start token process %s: %s",
			    S.tp[j].role, strerror(errno));
			goto out;
		}
	if ((ready = wait_started(&S)) < 0)
		goto out;
	if (ready == 0 && S.ntp == 2) {
		log_error("%s; and the failover token cannot serve either: %s",
		    S.tp[0].failed_msg, S.tp[1].failed_msg);
	} else if (ready == 0) {
		log_error("%s", S.tp[0].failed_msg);
	} else if (S.ntp == 2 && !S.tp[0].ready) {
		char label[64];

		token_uri_label(S.cfg->failover_token, label, sizeof(label));
		log_error("primary token: %s; serving from the failover token "
		    "'%s' and trying the primary again in the background",
		    S.tp[0].failed_msg, label);
	} else if (S.ntp == 2 && !S.tp[1].ready) {
		log_error("failover token: %s; it is tried again in the "
		    "background", S.tp[1].failed_msg);
	}
	if (ready == 0 || (check_only && (size_t)ready < S.ntp)) {
		/* A failover token that cannot serve is only logged at a
		 * start (keyd serves from the primary and tries it again in
		 * the background); a check fails on it. */
		for (size_t j = 0; check_only && ready > 0 && j < S.ntp; j++) {
			char label[64];

			if (S.tp[j].ready)
				continue;
			token_uri_label(j == 0 ? S.cfg->token :
			    S.cfg->failover_token, label, sizeof(label));
			log_error("%s: the %s token '%s' cannot serve (see "
			    "above)", S.cfg_path, S.tp[j].role, label);
		}
		goto out;
	}

	/* The socket-facing process's view of the tokens, built here and
	 * handed to it by the fork. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
	    token_proxy_new(S.cfg, sv[1], &token) != KEYD_OK) {
		log_error("cannot set up the socket-facing process: %s",
		    strerror(errno));
		goto out;
	}
	for (size_t j = 0; j < S.ntp; j++) {
		struct tproc *p = &S.tp[j];
		struct tw_info in;
		struct kbuf v;

		if (!p->ready)
			continue;
		kbuf_view(&v, kbuf_ptr(&p->info), kbuf_avail(&p->info));
		if (tw_info_get(&v, &in) != KEYD_OK ||
		    token_proxy_up(token, j, p->gen, p->srv_fds, S.nch, &in, err,
		    sizeof(err)) != KEYD_OK) {
			tw_info_free(&in);
			log_error("token process %s: %s", p->role, err);
			goto out;
		}
		tw_info_free(&in);
		p->have_fds = 0;      /* the proxy has them */
	}
	if (S.fatal)
		goto out;
	for (size_t j = 0; j < S.ntp; j++) {
		if (!S.tp[j].ready) {
			token_proxy_down(token, j, S.tp[j].gen, "failed");
		} else if (token_proxy_mismatch(token, j) > 0) {
			/* Logged by the proxy; those keys are never served
			 * from that token. */
			if (check_only) {
				log_error("%s: the %s token does not hold the "
				    "same keys as the primary (see above)",
				    S.cfg_path, S.tp[j].role);
				goto out;
			}
		} else if (j == 1) {
			char label[64];

			token_uri_label(S.cfg->failover_token, label,
			    sizeof(label));
			log_info("failover token '%s' holds every key", label);
		}
	}
	weak = token_warn_weak(token);
	if (S.cfg->audit_key == NULL)
		log_warn("no audit_key: the audit log has no signed "
		    "checkpoints, so tampering with its last lines cannot be "
		    "detected");
	if (check_only) {
		if (open_side(S.cfg, token, 1, &srtp, &shaken, err,
		    sizeof(err)) != 0) {
			log_error("%s", err);
			goto out;
		}
		printf("keyd: %s is valid: token '%s', %zu key%s, %zu "
		    "client%s%s\n", S.cfg_path, S.cfg->token, S.cfg->n_keys,
		    LOG_PLURAL(S.cfg->n_keys), S.cfg->n_clients,
		    LOG_PLURAL(S.cfg->n_clients), weak ? " (with warnings)" : "");
		ret = 0;
		goto out;
	}

	if ((pid = fork()) < 0) {
		log_error("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* The socket-facing process: nothing of the supervisor's but
		 * the tokens' channels and its own to the supervisor. The PIN's
		 * pages are zero here (MADV_WIPEONFORK). */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		close(S.sfd);
		close(sv[0]);
		for (size_t j = 0; j < S.ntp; j++)
			close_fd(&S.tp[j].ctl);
		close_fd(&S.cfg_fd);
		_exit(serve(S.cfg, token, sv[1], pin_path, S.hash));
	}
	S.srv_pid = pid;
	S.srv_ctl = sv[0];
	sv[0] = -1;
	close_fd(&sv[1]);
	/* The supervisor's copies of the channels. */
	token_close(token);
	token = NULL;
	/* Token processes started from now on start as the configured user,
	 * as the one process that was keyd used to log in again after its
	 * drop. */
	if (sandbox_drop_privileges(S.cfg, err, sizeof(err)) != KEYD_OK) {
		log_error("%s", err);
		goto out;
	}
	/* Restarts and reloads start keyd-token as this user: say now, not
	 * at the first crash, if it cannot. */
	if (access(S.helper, X_OK) != 0)
		log_warn("%s cannot be run as keyd's user (%s): a token process "
		    "that ends cannot be started again, and reloads are "
		    "refused; install keyd-token where that user may run it",
		    S.helper, strerror(errno));
	ret = supervise(&S);
out:
	if (S.srv_pid != 0) {
		kill(S.srv_pid, SIGKILL);
		(void)waitpid(S.srv_pid, NULL, 0);
	}
	srtp_free(srtp);
	shaken_free(shaken);
	rsa_ir_cleanup();
	token_close(token);
	reload_clear(&S);
	stop_tokens(&S);
	for (size_t i = 0; i < S.n_retiring; i++) {
		(void)kill(S.retiring[i].pid, SIGKILL);
		(void)waitpid(S.retiring[i].pid, NULL, 0);
	}
	close_fd(&S.cfg_fd);
	close_fd(&S.srv_ctl);
	close_fd(&sv[0]);
	close_fd(&sv[1]);
	close_fd(&S.sfd);
	pin_free(S.pin, S.pin_len);
	config_free(S.cfg);
	return ret;
}
