/* serve_reload.c: a reload in the socket-facing process (serve_reload.h). */
#include "serve_reload.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "reload.h"
#include "rsa_ir.h"
#include "shaken.h"
#include "srtp.h"
#include "token_proxy.h"
#include "tokenwire.h"

#define SR_WAITERS 8             /* clients waiting on a reload at once */
#define SR_NDEV 2
#define SR_MSG_MAX 512
/* How long a client's reload op waits for the outcome: the supervisor
 * gives the token processes token_timeout to resolve the keys, and the
 * checks here make a few token calls of token_timeout each at most. */
#define SR_WAIT_TIMEOUTS 4
#define SR_WAIT_EXTRA_MS 5000
#define SR_MAX_PEMS CONFIG_MAX_KEYS

struct sr_waiter {
	int used, done, r;
	uint32_t seq;
	char hash[RELOAD_HASH_HEX + 1];
	uint64_t generation;
	char summary[RELOAD_SUMMARY_MAX];
	char msg[SR_MSG_MAX];
};

/* A token process offered for the new configuration. */
struct sr_pending {
	int have;
	unsigned gen;
	struct kbuf info;
	int fds[TW_MAX_FDS];
	size_t nfds;
};

struct serve_reload {
	struct dispatch *cur;
	struct server *srv;
	struct audit *audit;
	int sup_fd;
	long wait_ms;
	struct sr_pending pend[SR_NDEV];
	pthread_mutex_t mu;          /* guards the waiters */
	pthread_cond_t cv;
	uint32_t next_seq;
	int stopping;
	struct sr_waiter w[SR_WAITERS];
};

/* A refused reload's record: its reason, and the error the client got. */
static void
refused_event(struct audit *a, const char *detail)
{
	struct audit_record ar;
	const char *name = "reload-refused";

	memset(&ar, 0, sizeof(ar));
	ar.event = name;
	ar.result = KEYD_ERR_CONFIG;
	ar.detail = detail;
	if (audit_write(a, &ar) != KEYD_OK)
		log_error("cannot write the '%s' event to the audit log", name);
}

/* Frees a dispatcher and everything of its configuration, once the last
 * request under it is done (server.c's gen_put). */
static void
release(struct dispatch *d)
{
	struct config *cfg = (struct config *)d->cfg;

	token_close(d->token);
	srtp_free(d->srtp);
	shaken_free(d->shaken);
	rsa_ir_table_free(d->ir);
	dispatch_free(d);
	config_free(cfg);
	free(d);
}

/* A dispatcher over cfg and token with the checks that need the tokens.
 * prev: the running one (its SRTP lock is shared), or NULL. On failure
 * cfg and token are still the caller's. */
static struct dispatch *
build(struct config *cfg, struct token *token, struct audit *audit,
    const struct dispatch *prev, const struct shaken_pem *pems, size_t n_pems,
    char *err, size_t errlen)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	struct rsa_ir_table *ir = NULL;
	struct srtp *srtp = NULL;
	struct shaken *sh = NULL;

	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (rsa_ir_new(cfg, token, &ir, err, errlen) != KEYD_OK ||
	    srtp_reinit(cfg, token, prev != NULL ? prev->srtp : NULL, 0, &srtp,
	    err, errlen) != KEYD_OK ||
	    shaken_init_pems(cfg, token, pems, n_pems, &sh, err, errlen) !=
	    KEYD_OK)
		goto fail;
	if (dispatch_init(d, cfg, token, audit) != KEYD_OK) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	d->ir = ir;
	d->srtp = srtp;
	d->shaken = sh;
	d->release = release;
	return d;
fail:
	rsa_ir_table_free(ir);
	srtp_free(srtp);
	shaken_free(sh);
	free(d);
	return NULL;
}

/* The run's counters outlive every configuration's dispatcher (the first
 * one's own run goes with it): one per process. */
static struct dispatch_run run;

struct dispatch *
serve_reload_first(struct config *cfg, struct token *token,
    struct audit *audit, const char *hash, char *err, size_t errlen)
{
	struct dispatch *d = build(cfg, token, audit, NULL, NULL, 0, err,
	    errlen);

	if (d != NULL) {
		snprintf(d->sha256, sizeof(d->sha256), "%s", hash);
		run.started = d->run_own.started;
		d->run = &run;
	}
	return d;
}

int
serve_reload_new(struct dispatch *d, int sup_fd, struct serve_reload **out)
{
	struct serve_reload *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return KEYD_ERR_NOMEM;
	r->cur = d;
	r->audit = d->audit;
	r->sup_fd = sup_fd;
	r->wait_ms = (long)d->cfg->token_timeout_ms * SR_WAIT_TIMEOUTS +
	    SR_WAIT_EXTRA_MS;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (size_t j = 0; j < SR_NDEV; j++)
		kbuf_init(&r->pend[j].info, TW_MAX_FRAME, 0);
	d->run->reload = NULL;
	*out = r;
	return KEYD_OK;
}

static int ask(void *arg, char *hash, uint64_t *generation, char *summary,
    size_t sumlen, char *msg, size_t msglen);

void
serve_reload_start(struct serve_reload *r, struct server *srv)
{
	r->srv = srv;
	r->cur->run->reload = ask;
	r->cur->run->reload_arg = r;
}

struct dispatch *
serve_reload_current(struct serve_reload *r)
{
	return r->cur;
}

/* A worker: asks the supervisor for a reload and waits for its outcome. */
static int
ask(void *arg, char *hash, uint64_t *generation, char *summary,
    size_t sumlen, char *msg, size_t msglen)
{
	struct serve_reload *r = arg;
	struct sr_waiter *w = NULL;
	struct timespec until;
	uint32_t f[2] = { TW_CTL_RELOAD_ASK, 0 };
	int ret;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < SR_WAITERS && w == NULL; i++)
		if (!r->w[i].used)
			w = &r->w[i];
	if (w == NULL || r->stopping) {
		pthread_mutex_unlock(&r->mu);
		snprintf(msg, msglen, "%s", w == NULL ? "too many reloads "
		    "asked for at once; try again" : "keyd is stopping");
		return KEYD_ERR_BUSY;
	}
	memset(w, 0, sizeof(*w));
	w->used = 1;
	/* 0 is SIGHUP's: no client waits on it. */
	if (++r->next_seq == 0)
		++r->next_seq;
	w->seq = f[1] = r->next_seq;
	pthread_mutex_unlock(&r->mu);

	if (token_proxy_sup_send(r->sup_fd, f, sizeof(f)) != 0) {
		pthread_mutex_lock(&r->mu);
		w->used = 0;
		pthread_mutex_unlock(&r->mu);
		snprintf(msg, msglen, "cannot reach keyd's supervisor: %s",
		    strerror(errno));
		return KEYD_ERR_IO;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += r->wait_ms / 1000;
	until.tv_nsec += (r->wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!w->done)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &until) != 0)
			break;
	if (w->done) {
		ret = w->r;
		snprintf(hash, RELOAD_HASH_HEX + 1, "%s", w->hash);
		*generation = w->generation;
		snprintf(summary, sumlen, "%s", w->summary);
		snprintf(msg, msglen, "%s", w->msg);
	} else {
		ret = KEYD_ERR_TIMEOUT;
		snprintf(msg, msglen, "no outcome of the reload within %ld s; "
		    "it may still apply: see keydctl status and the audit log",
		    r->wait_ms / 1000);
	}
	w->used = 0;
	pthread_mutex_unlock(&r->mu);
	return ret;
}

/* The outcome of reload seq, to the client waiting on it (if any). */
static void
answer(struct serve_reload *r, uint32_t seq, int ret, const char *hash,
    uint64_t generation, const char *summary, const char *msg)
{
	if (seq == 0)
		return;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < SR_WAITERS; i++) {
		struct sr_waiter *w = &r->w[i];

		if (!w->used || w->seq != seq || w->done)
			continue;
		w->done = 1;
		w->r = ret;
		snprintf(w->hash, sizeof(w->hash), "%s", hash);
		w->generation = generation;
		snprintf(w->summary, sizeof(w->summary), "%s", summary);
		snprintf(w->msg, sizeof(w->msg), "%s", msg);
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void
pend_clear(struct serve_reload *r)
{
	for (size_t j = 0; j < SR_NDEV; j++) {
		struct sr_pending *p = &r->pend[j];

		for (size_t i = 0; i < p->nfds; i++)
			if (p->fds[i] >= 0)
				close(p->fds[i]);
		p->nfds = 0;
		p->have = 0;
		kbuf_reset(&p->info);
	}
}

void
serve_reload_token(struct serve_reload *r, struct kbuf *b, int *fds,
    size_t nfds)
{
	uint32_t idx, gen;
	struct sr_pending *p;

	if (tw_get_word(b, &idx) != KEYD_OK || tw_get_word(b, &gen) !=
	    KEYD_OK || idx >= SR_NDEV || nfds == 0 || nfds > TW_MAX_FDS) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		log_error("a malformed reload frame from keyd's supervisor");
		return;
	}
	p = &r->pend[idx];
	for (size_t i = 0; i < p->nfds; i++)
		close(p->fds[i]);
	kbuf_reset(&p->info);
	if (kbuf_put(&p->info, kbuf_ptr(b), kbuf_avail(b)) != KEYD_OK) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		p->nfds = 0;
		p->have = 0;
		return;
	}
	memcpy(p->fds, fds, nfds * sizeof(int));
	p->nfds = nfds;
	p->gen = gen;
	p->have = 1;
}

/* The new configuration's token view over the offered token processes. */
static int
new_token(struct serve_reload *r, const struct config *cfg,
    struct token **out, char *why, size_t whylen)
{
	struct token *t = NULL;

	*out = NULL;
	if (token_proxy_new(cfg, r->sup_fd, &t) != KEYD_OK) {
		snprintf(why, whylen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	for (size_t j = 0; j < SR_NDEV; j++) {
		struct sr_pending *p = &r->pend[j];
		struct tw_info in;
		struct kbuf v;

		if (!p->have)
			continue;
		if (j >= token_count(t)) {
			snprintf(why, whylen, "a token process was offered for a "
			    "token the new configuration does not name");
			goto fail;
		}
		memset(&in, 0, sizeof(in));
		kbuf_view(&v, kbuf_ptr(&p->info), kbuf_avail(&p->info));
		if (tw_info_get(&v, &in) != KEYD_OK) {
			snprintf(why, whylen, "malformed key info from the new "
			    "token process");
			goto fail;
		}
		if (token_proxy_up(t, j, p->gen, p->fds, p->nfds, &in, why,
		    whylen) != KEYD_OK) {
			tw_info_free(&in);
			goto fail;
		}
		tw_info_free(&in);
		p->nfds = 0;             /* the proxy has them */
		p->have = 0;
		if (token_proxy_mismatch(t, j) > 0) {
			snprintf(why, whylen, "the %s token does not hold the "
			    "same keys as the primary under the new configuration "
			    "(keyd's log names them)", j == 0 ? "primary" :
			    "failover");
			goto fail;
		}
	}
	if (!token_proxy_ready(t)) {
		snprintf(why, whylen, "no token process described the new "
		    "configuration's keys");
		goto fail;
	}
	*out = t;
	return KEYD_OK;
fail:
	token_close(t);
	return KEYD_ERR_CONFIG;
}

static void
pems_free(struct shaken_pem *pems, size_t n)
{
	for (size_t i = 0; pems != NULL && i < n; i++)
		free((char *)(uintptr_t)pems[i].path);
	free(pems);
}

/* syslog, syslog_socket: the mirror changes at the switch, after the
 * reload record (which goes where the old settings send it). fd is the
 * supervisor's socket to the new path (or -1, it could not connect yet:
 * it warned, as a start does); taken over. */
static void
swap_syslog(struct serve_reload *r, const struct config *o,
    const struct config *n, int fd)
{
	int r2;

	if (n->syslog == o->syslog && (!n->syslog ||
	    !strcmp(n->syslog_socket, o->syslog_socket))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if ((r2 = audit_set_syslog(r->audit, n->syslog, n->syslog_socket,
	    fd)) != KEYD_OK)
		log_error("reload: the syslog mirror was not changed: %s",
		    keyd_strerror(r2));
	else if (n->syslog)
		log_info("reload: audit lines are mirrored to syslog at %s",
		    n->syslog_socket);
	else
		log_info("reload: audit lines are no longer mirrored to "
		    "syslog");
}

void
serve_reload_apply(struct serve_reload *r, struct kbuf *b, int syslog_fd)
{
	char why[SR_MSG_MAX] = "", summary[RELOAD_SUMMARY_MAX] = "";
	char hash[RELOAD_HASH_HEX + 1], detail[RELOAD_SUMMARY_MAX + 128];
	const uint8_t *h, *text;
	struct shaken_pem *pems = NULL;
	uint32_t len, n_pems = 0;
	struct config *cfg = NULL;
	struct token *tok = NULL;
	struct dispatch *d = NULL, *old;
	struct audit_record ar;
	uint32_t seq = 0, done[3] = { TW_CTL_RELOAD_DONE, 0, 0 };
	struct kbuf f;

	if (tw_get_word(b, &seq) != KEYD_OK ||
	    kbuf_get_ptr(b, RELOAD_HASH_HEX, &h) != KEYD_OK ||
	    tw_get_word(b, &len) != KEYD_OK ||
	    kbuf_get_ptr(b, len, &text) != KEYD_OK ||
	    tw_get_word(b, &n_pems) != KEYD_OK || n_pems > SR_MAX_PEMS ||
	    (pems = calloc(n_pems + 1, sizeof(*pems))) == NULL) {
		snprintf(why, sizeof(why), "a malformed reload frame");
		goto refuse;
	}
	memcpy(hash, h, RELOAD_HASH_HEX);
	hash[RELOAD_HASH_HEX] = '\0';
	for (uint32_t i = 0; i < n_pems; i++) {
		uint32_t pl, ql;
		const uint8_t *p, *q;
		char *path;

		if (tw_get_word(b, &pl) != KEYD_OK || pl == 0 ||
		    pl > 4096 || kbuf_get_ptr(b, pl, &p) != KEYD_OK ||
		    tw_get_word(b, &ql) != KEYD_OK ||
		    kbuf_get_ptr(b, ql, &q) != KEYD_OK ||
		    (path = strndup((const char *)p, pl)) == NULL) {
			n_pems = i;
			snprintf(why, sizeof(why), "a malformed reload frame");
			goto refuse;
		}
		pems[i].path = path;
		pems[i].pem = q;
		pems[i].len = ql;
	}
	if (kbuf_avail(b) != 0) {
		snprintf(why, sizeof(why), "a malformed reload frame");
		goto refuse;
	}
	/* The supervisor checked these bytes with the file-system checks;
	 * the users and groups are looked up again here, as at a start. */
	if (config_parse_buffer((const char *)text, len, r->cur->cfg->path, 0,
	    &cfg, why, sizeof(why)) != KEYD_OK)
		goto refuse;
	if (new_token(r, cfg, &tok, why, sizeof(why)) != KEYD_OK)
		goto refuse;
	if ((d = build(cfg, tok, r->audit, r->cur, pems, n_pems, why,
	    sizeof(why))) == NULL)
		goto refuse;
	d->run = r->cur->run;
	d->generation = r->cur->generation + 1;
	d->applied = time(NULL);
	snprintf(d->sha256, sizeof(d->sha256), "%s", hash);
	reload_summary(r->cur->cfg, r->cur->token, cfg, tok, summary,
	    sizeof(summary));
	/* The record goes first: no request is served under a configuration
	 * the audit log does not show. */
	snprintf(detail, sizeof(detail), "sha256 %s, generation %" PRIu64
	    ": %s", hash, d->generation, summary);
	memset(&ar, 0, sizeof(ar));
	ar.event = "reload";
	ar.detail = detail;
	if (audit_write(r->audit, &ar) != KEYD_OK) {
		snprintf(why, sizeof(why), "the audit log cannot be written");
		goto refuse;
	}
	/* Each client keeps what its rate left it: a reload (which
	 * operators make often, and a client with the reload op at will)
	 * must not hand every client a fresh burst. */
	for (size_t i = 0; i < cfg->n_clients; i++)
		for (size_t j = 0; j < r->cur->cfg->n_clients; j++)
			if (!strcmp(cfg->clients[i].name,
			    r->cur->cfg->clients[j].name))
				policy_limiter_carry(&d->limiters[i],
				    &r->cur->limiters[j]);
	swap_syslog(r, r->cur->cfg, cfg, syslog_fd);
	syslog_fd = -1;
	audit_set_token(r->audit, tok, cfg);
	old = server_swap(r->srv, d);
	r->cur = d;
	server_put(old);
	log_info("reload applied: %s", detail);
	/* As at a start: a key the reload added may be one anyone with the
	 * PIN can read. */
	(void)token_warn_weak(tok);
	done[1] = seq;
	done[2] = 1;
	if (token_proxy_sup_send(r->sup_fd, done, sizeof(done)) != 0)
		log_error("cannot tell keyd's supervisor the reload applied");
	answer(r, seq, KEYD_OK, hash, d->generation, summary, "");
	pend_clear(r);
	pems_free(pems, n_pems);
	return;
refuse:
	if (syslog_fd >= 0)
		close(syslog_fd);
	pems_free(pems, n_pems);
	if (d != NULL) {
		d->release = NULL;
		release(d);
	} else {
		token_close(tok);
		config_free(cfg);
	}
	pend_clear(r);
	refused_event(r->audit, why);
	kbuf_init(&f, 4096, 0);
	done[1] = seq;
	done[2] = 0;
	if (kbuf_put(&f, done, sizeof(done)) != KEYD_OK ||
	    kbuf_put(&f, why, strlen(why)) != KEYD_OK ||
	    token_proxy_sup_send(r->sup_fd, kbuf_ptr(&f), kbuf_avail(&f)) != 0)
		log_error("cannot tell keyd's supervisor the reload was "
		    "refused");
	kbuf_free(&f);
	answer(r, seq, KEYD_ERR_CONFIG, "", 0, "", why);
}

void
serve_reload_refused(struct serve_reload *r, struct kbuf *b)
{
	char why[SR_MSG_MAX];
	uint32_t seq = 0;

	pend_clear(r);
	if (tw_get_word(b, &seq) != KEYD_OK)
		return;
	snprintf(why, sizeof(why), "%.*s", (int)kbuf_avail(b),
	    (const char *)kbuf_ptr(b));
	refused_event(r->audit, why);
	answer(r, seq, KEYD_ERR_CONFIG, "", 0, "", why);
}

void
serve_reload_abort(struct serve_reload *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	for (size_t i = 0; i < SR_WAITERS; i++) {
		struct sr_waiter *w = &r->w[i];

		if (!w->used || w->done)
			continue;
		w->done = 1;
		w->r = KEYD_ERR_CLOSED;
		snprintf(w->msg, sizeof(w->msg), "keyd is stopping");
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void
serve_reload_free(struct serve_reload *r)
{
	if (r == NULL)
		return;
	pend_clear(r);
	for (size_t j = 0; j < SR_NDEV; j++)
		kbuf_free(&r->pend[j].info);
	server_put(r->cur);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}
