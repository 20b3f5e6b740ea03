/*
 * token_proxy.c: token.h as the socket-facing process has it. No PKCS#11
 * module is loaded here: each call becomes one request to a token
 * process (tokenproc.c) over a channel of its own, and waits for the
 * reply at most token_timeout.
 *
 * The supervisor hands over each token process's channels and key info
 * when it is ready (token_proxy_up), and says when it is gone
 * (token_proxy_down). A call that times out reports the token process as
 * hung to the supervisor, which kills and replaces it; a call whose
 * token process ends under it (a crash) fails at once. Either way the
 * request goes to the other token when there is a failover token, and
 * no channel of that process is used again: a late reply could otherwise
 * answer another request.
 */
#include "token_proxy.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "secmem.h"
#include "tokenwire.h"

#define PROXY_NDEV 2
#define PROXY_PROBE_MS 1000        /* a token error is probed this often */
#define PROXY_INFO_WAIT_MS 1000


/* One token process's channels. */
struct chans {
	atomic_int refs;
	unsigned gen;
	size_t n;
	int *fds;
	unsigned char *busy;
	size_t n_retired;          /* slots given up to a late reply */
	int dead;                  /* a call failed on the transport */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct pdev {
	pthread_mutex_t mu;
	struct chans *ch;          /* NULL: no token process serves */
	unsigned gen;
	const char *role;
	char state[24];
	char label[33], manufacturer[33], model[17], serial[17];
	int have_info;
	unsigned char *key_ok;     /* per key: the same key keyd serves */
	unsigned long restarts;
	atomic_long last_probe;
	unsigned key_copies;
};

struct token {
	const struct config *cfg;
	struct pdev dev[PROXY_NDEV];
	size_t ndev;
	struct token_key *keys;    /* what keyd serves: the first token's */
	size_t n_keys, n_all;
	int has_audit_key;
	int has_tn_key;
	int described;
	atomic_int active;
	atomic_long primary_tried;  /* ms, the primary's last try */
	long timeout_ms;
	int sup_fd;
};

/* One writer at a time on the channel to the supervisor, whichever
 * configuration's proxy (or a reload) writes: frames must not interleave. */
static pthread_mutex_t sup_mu = PTHREAD_MUTEX_INITIALIZER;

int
token_proxy_sup_send(int fd, const void *p, size_t n)
{
	int r;

	pthread_mutex_lock(&sup_mu);
	r = tw_send(fd, p, n, NULL, 0);
	pthread_mutex_unlock(&sup_mu);
	return r;
}

static void
chans_unref(struct chans *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (c->fds[i] >= 0)
			close(c->fds[i]);
	free(c->fds);
	free(c->busy);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int
token_proxy_new(const struct config *cfg, int sup_fd, struct token **out)
{
	struct token *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return KEYD_ERR_NOMEM;
	t->cfg = cfg;
	t->ndev = cfg->failover_token != NULL ? 2 : 1;
	t->n_keys = cfg->n_keys;
	t->timeout_ms = (long)cfg->token_timeout_ms;
	t->sup_fd = sup_fd;
	for (size_t j = 0; j < t->ndev; j++) {
		struct pdev *d = &t->dev[j];

		pthread_mutex_init(&d->mu, NULL);
		d->role = j == 0 ? "primary" : "failover";
		snprintf(d->state, sizeof(d->state), "starting");
		snprintf(d->label, sizeof(d->label), "%s", j == 0 ? cfg->token :
		    cfg->failover_token);
	}
	*out = t;
	return KEYD_OK;
}

/* Whether key b, as another token (or a fresh token process) holds it,
 * is the key a that keyd serves; if not, why in err. */
static int
same_key(const struct token_key *a, const struct token_key *b,
    const char *label, char *err, size_t errlen)
{
	/* Some tokens leave CKA_VALUE_LEN off an unwrapped AES key. */
	if (a->type != b->type || (a->bits != b->bits && a->bits != 0 &&
	    b->bits != 0)) {
		snprintf(err, errlen, "key '%s' on token '%s' is a %s-%u key, "
		    "not the %s-%u key keyd serves", a->name, label,
		    token_key_type_name(b->type), b->bits,
		    token_key_type_name(a->type), a->bits);
		return 0;
	}
	if (a->spki_len != b->spki_len || (a->spki_len > 0 &&
	    memcmp(a->spki, b->spki, a->spki_len) != 0)) {
		snprintf(err, errlen, "key '%s' on token '%s' has another public "
		    "key than the one keyd serves (restart keyd to serve a new "
		    "key)", a->name, label);
		return 0;
	}
	if (a->type == TOKEN_KEY_AES && (!a->has_kcv || !b->has_kcv)) {
		snprintf(err, errlen, "key '%s' on token '%s': no check value "
		    "(CKA_CHECK_VALUE, or AES-ECB of a zero block) to show it is "
		    "the AES key keyd serves", a->name, label);
		return 0;
	}
	if (a->type == TOKEN_KEY_AES && memcmp(a->kcv, b->kcv, 3) != 0) {
		snprintf(err, errlen, "key '%s' on token '%s' has another check "
		    "value than the AES key keyd serves", a->name, label);
		return 0;
	}
	if (b->weak_extractable && !a->weak_extractable)
		log_warn("KEY '%s' ON TOKEN '%s' IS EXTRACTABLE WITHOUT "
		    "CKA_WRAP_WITH_TRUSTED, unlike on the first token: anyone "
		    "holding the user PIN can read it in the clear there",
		    a->name, label);
	return 1;
}

/* Whether keyd-token holds an audit_tn_key in its last slot (token.c's
 * token_open decides the same way). */
static int
tn_key_configured(const struct config *cfg)
{
	return cfg->audit_tn == CONFIG_AUDIT_TN_HMAC &&
	    cfg->audit_tn_key != NULL;
}

/* The keys a token process for cfg resolves (token_open): the
 * configured ones, then the audit key and the audit_tn_key if set. */
static size_t
expected_keys(const struct config *cfg)
{
	return cfg->n_keys + (cfg->audit_key != NULL) +
	    (tn_key_configured(cfg) != 0);
}

/* Takes the key info of the first token that is ready as what keyd
 * serves; the name and URI come from the configuration. */
static int
describe(struct token *t, struct tw_info *in)
{
	t->keys = in->keys;
	t->n_all = in->n_all;
	t->has_audit_key = in->has_audit_key;
	t->has_tn_key = in->has_tn_key;
	in->keys = NULL;
	in->n_all = 0;
	for (size_t i = 0; i < t->n_all; i++) {
		if (i < t->cfg->n_keys) {
			t->keys[i].name = t->cfg->keys[i].name;
			t->keys[i].uri = t->cfg->keys[i].uri;
		} else if (t->has_tn_key && i == t->n_all - 1) {
			t->keys[i].name = "(audit_tn_key)";
			t->keys[i].uri = t->cfg->audit_tn_key;
		} else {
			t->keys[i].name = "(audit key)";
			t->keys[i].uri = t->cfg->audit_key;
		}
	}
	t->described = 1;
	return KEYD_OK;
}

int
token_proxy_up(struct token *t, size_t j, unsigned gen, const int *fds,
    size_t nfds, struct tw_info *in, char *err, size_t errlen)
{
	struct pdev *d = &t->dev[j];
	struct chans *c, *old;
	unsigned char *ok;
	size_t bad = 0;

	if (j >= t->ndev || nfds == 0)
		return KEYD_ERR_INTERNAL;
	if (in->n_all != expected_keys(t->cfg) ||
	    !in->has_audit_key != (t->cfg->audit_key == NULL) ||
	    !in->has_tn_key != !tn_key_configured(t->cfg)) {
		snprintf(err, errlen, "token process of '%s' reports %zu keys "
		    "(audit key %s, audit_tn_key %s), not the %zu the "
		    "configuration names: it is not used", in->ti.label,
		    in->n_all, in->has_audit_key ? "yes" : "no",
		    in->has_tn_key ? "yes" : "no", expected_keys(t->cfg));
		return KEYD_ERR_CONFIG;
	}
	if (t->described && in->n_all != t->n_all) {
		snprintf(err, errlen, "token '%s' reports %zu keys, not %zu",
		    in->ti.label, in->n_all, t->n_all);
		return KEYD_ERR_CONFIG;
	}
	if (!t->described)
		(void)describe(t, in);
	if ((ok = calloc(t->n_all ? t->n_all : 1, 1)) == NULL)
		return KEYD_ERR_NOMEM;
	for (size_t i = 0; i < t->n_all; i++) {
		char why[512];

		ok[i] = in->keys == NULL || same_key(&t->keys[i], &in->keys[i],
		    in->ti.label, why, sizeof(why));
		if (!ok[i]) {
			bad++;
			log_error("%s token: %s; keyd does not serve it from "
			    "there", d->role, why);
		}
	}
	/* The failover token decrypts OAEP only with the hashes both do. */
	for (size_t i = 0; in->keys != NULL && i < t->n_all; i++)
		t->keys[i].oaep_hashes &= in->keys[i].oaep_hashes;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->fds = malloc(nfds * sizeof(int))) == NULL ||
	    (c->busy = calloc(nfds, 1)) == NULL) {
		if (c != NULL)
			free(c->fds);
		free(c);
		free(ok);
		return KEYD_ERR_NOMEM;
	}
	memcpy(c->fds, fds, nfds * sizeof(int));
	/* A reply is waited for with one blocking read, which gives up
	 * after token_timeout (tw_recv_one). */
	for (size_t i = 0; i < nfds; i++) {
		struct timeval tv = { t->timeout_ms / 1000,
		    (t->timeout_ms % 1000) * 1000 };

		if (setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv)) != 0) {
			snprintf(err, errlen, "SO_RCVTIMEO on a channel: %s",
			    strerror(errno));
			free(c->fds);
			free(c->busy);
			free(c);
			free(ok);
			return KEYD_ERR_IO;
		}
	}
	c->n = nfds;
	c->gen = gen;
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);

	pthread_mutex_lock(&d->mu);
	old = d->ch;
	d->ch = c;
	d->gen = gen;
	free(d->key_ok);
	d->key_ok = ok;
	snprintf(d->label, sizeof(d->label), "%s", in->ti.label);
	snprintf(d->manufacturer, sizeof(d->manufacturer), "%s",
	    in->ti.manufacturer);
	snprintf(d->model, sizeof(d->model), "%s", in->ti.model);
	snprintf(d->serial, sizeof(d->serial), "%s", in->ti.serial);
	d->key_copies = in->ti.key_copies;
	d->have_info = 1;
	snprintf(d->state, sizeof(d->state), "serving");
	atomic_store(&d->last_probe, 0);
	pthread_mutex_unlock(&d->mu);
	chans_unref(old);
	(void)bad;
	return KEYD_OK;
}

void
token_proxy_down(struct token *t, size_t j, unsigned gen, const char *state)
{
	struct pdev *d = &t->dev[j];
	struct chans *old = NULL;

	if (j >= t->ndev)
		return;
	pthread_mutex_lock(&d->mu);
	if (d->gen == gen || d->ch == NULL) {
		old = d->ch;
		d->ch = NULL;
		snprintf(d->state, sizeof(d->state), "%s", state);
		/* A restart of a process that served. */
		if (old != NULL)
			d->restarts++;
	}
	pthread_mutex_unlock(&d->mu);
	if (old != NULL) {
		pthread_mutex_lock(&old->mu);
		old->dead = 1;
		pthread_cond_broadcast(&old->cv);
		pthread_mutex_unlock(&old->mu);
		chans_unref(old);
	}
}

int
token_proxy_ready(const struct token *t)
{
	return t->described;
}

size_t
token_proxy_mismatch(struct token *t, size_t j)
{
	size_t n = 0;

	pthread_mutex_lock(&t->dev[j].mu);
	for (size_t i = 0; t->dev[j].key_ok != NULL && i < t->n_all; i++)
		n += !t->dev[j].key_ok[i];
	pthread_mutex_unlock(&t->dev[j].mu);
	return n;
}

/* Tells the supervisor that token j's process (incarnation gen) hangs. */
static void
report_hung(struct token *t, size_t j, unsigned gen)
{
	uint32_t f[3] = { TW_CTL_HUNG, (uint32_t)j, gen };

	if (token_proxy_sup_send(t->sup_fd, f, sizeof(f)) != 0)
		log_error("cannot tell keyd's supervisor that token %zu hangs: "
		    "%s", j, strerror(errno));
}

/* A free channel of d's current process, or -1 (down, or all busy until
 * the deadline). *cp: the channels, referenced. */
static int
take(struct pdev *d, long deadline, struct chans **cp, size_t *slot,
    char *why, size_t whylen)
{
	struct chans *c;
	struct timespec until;
	size_t i;

	pthread_mutex_lock(&d->mu);
	c = d->ch;
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	else
		snprintf(why, whylen, "token '%s' is %s", d->label, d->state);
	pthread_mutex_unlock(&d->mu);
	if (c == NULL)
		return -1;
	clock_gettime(CLOCK_REALTIME, &until);
	{
		long left = deadline - tw_now_ms();

		if (left < 0)
			left = 0;
		until.tv_sec += left / 1000;
		until.tv_nsec += (left % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->dead) {
			snprintf(why, whylen, "token '%s' is being restarted",
			    d->label);
			break;
		}
		for (i = 0; i < c->n && c->busy[i]; i++)
			;
		if (i < c->n) {
			c->busy[i] = 1;
			pthread_mutex_unlock(&c->mu);
			*cp = c;
			*slot = i;
			return c->fds[i];
		}
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0) {
			snprintf(why, whylen, "token '%s' is busy: every channel "
			    "to its process is in use", d->label);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	chans_unref(c);
	return -1;
}

static void
give_back(struct chans *c, size_t slot, int dead)
{
	pthread_mutex_lock(&c->mu);
	c->busy[slot] = 0;
	if (dead)
		c->dead = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	chans_unref(c);
}

/* A channel that may still carry a late reply: never used again (its
 * slot stays busy until the token process is replaced). Returns 1 when
 * that was the last slot: no call can reach the process any more, so it
 * must be replaced, or the token would stay unusable with nothing to
 * say so. */
static int
retire(struct chans *c, size_t slot)
{
	int last;

	(void)slot;
	pthread_mutex_lock(&c->mu);
	last = ++c->n_retired >= c->n;
	pthread_mutex_unlock(&c->mu);
	chans_unref(c);
	return last;
}

struct call {
	struct tw_req q;
	const uint8_t *iv, *aad, *in;
	uint8_t *out;
	size_t *outlen;
	CK_RV rv;
	int may_failover;
};

/* Whether a token error may be the device's: keyd probes the token. */
static int
rv_device(CK_RV rv)
{
	return rv == CKR_GENERAL_ERROR || rv == CKR_DEVICE_ERROR ||
	    rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	    rv == CKR_DEVICE_MEMORY || rv == CKR_TOKEN_NOT_RECOGNIZED ||
	    rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_SESSION_CLOSED ||
	    rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_USER_NOT_LOGGED_IN;
}

static __thread struct kbuf frame;
static __thread int frame_init;

/* One request to token j. Returns KEYD_OK or an error; *transport is set
 * when the token process did not answer (it is then replaced). */
static int
call_dev(struct token *t, size_t j, struct call *c, long deadline,
    int *transport, char *msg, size_t msglen)
{
	struct pdev *d = &t->dev[j];
	struct chans *ch;
	struct tw_rep rep;
	size_t slot;
	unsigned gen;
	int fd, r, e;

	*transport = 0;
	if ((fd = take(d, deadline, &ch, &slot, msg, msglen)) < 0) {
		*transport = 1;
		return KEYD_ERR_TOKEN;
	}
	gen = ch->gen;
	/* One buffer per thread, kept: locked memory is costly to map for
	 * every request. Wiped after each. */
	if (!frame_init) {
		kbuf_init(&frame, TW_MAX_REQ, KBUF_SECRET);
		frame_init = 1;
	}
	kbuf_reset(&frame);
	if ((r = kbuf_put(&frame, &c->q, sizeof(c->q))) != KEYD_OK ||
	    (c->q.iv_len && (r = kbuf_put(&frame, c->iv, c->q.iv_len)) !=
	    KEYD_OK) ||
	    (c->q.aad_len && (r = kbuf_put(&frame, c->aad, c->q.aad_len)) !=
	    KEYD_OK) ||
	    (c->q.in_len && (r = kbuf_put(&frame, c->in, c->q.in_len)) !=
	    KEYD_OK)) {
		kbuf_reset(&frame);
		give_back(ch, slot, 0);
		snprintf(msg, msglen, "a request too large for the token "
		    "process");
		return KEYD_ERR_BAD_LENGTH;
	}
	if (tw_send(fd, kbuf_ptr(&frame), kbuf_avail(&frame), NULL, 0) != 0 ||
	    tw_recv_one(fd, &frame, sizeof(rep) + TW_MAX_IO, c->q.op == TW_INFO ?
	    deadline : -1) != 0) {
		e = errno;
		kbuf_reset(&frame);
		*transport = 1;
		if (e == ETIMEDOUT && c->q.op == TW_INFO) {
			/* status's short wait: not a hang of keyd's own
			 * calls. The channel may still get the late reply:
			 * it is never used again. */
			snprintf(msg, msglen, "no answer to status");
			if (!retire(ch, slot)) {
				log_warn("token '%s' (%s) did not answer status "
				    "in time: one channel to its process is "
				    "given up", d->label, d->role);
				return KEYD_ERR_TIMEOUT;
			}
			log_error("token '%s' (%s) did not answer status on any "
			    "of its channels: its token process is replaced",
			    d->label, d->role);
			pthread_mutex_lock(&d->mu);
			if (d->gen == gen)
				snprintf(d->state, sizeof(d->state), "hung");
			pthread_mutex_unlock(&d->mu);
			report_hung(t, j, gen);
			return KEYD_ERR_TIMEOUT;
		}
		give_back(ch, slot, 1);
		if (e == ETIMEDOUT) {
			snprintf(msg, msglen, "token '%s' has not answered a "
			    "call for more than %ld ms; keyd replaces its token "
			    "process", d->label, t->timeout_ms);
			log_error("token '%s' (%s) has not answered a call for "
			    "more than %ld ms: its token process is replaced",
			    d->label, d->role, t->timeout_ms);
			pthread_mutex_lock(&d->mu);
			if (d->gen == gen)
				snprintf(d->state, sizeof(d->state), "hung");
			pthread_mutex_unlock(&d->mu);
			report_hung(t, j, gen);
			return KEYD_ERR_TIMEOUT;
		}
		snprintf(msg, msglen, "the token process of '%s' ended during "
		    "the call (%s); keyd starts a fresh one", d->label,
		    e == EPIPE ? "it crashed or exited" : strerror(e));
		/* A process that exited is restarted when the supervisor
		 * reaps it. Any other failure (a malformed or oversized
		 * frame, no memory for it) leaves a live process whose
		 * channels are never used again: the supervisor must be
		 * told to replace it, or the token stays unusable. */
		if (e != EPIPE && e != ECONNRESET) {
			log_error("token '%s' (%s): a call failed on its channel "
			    "(%s): its token process is replaced", d->label,
			    d->role, strerror(e));
			report_hung(t, j, gen);
		}
		return KEYD_ERR_TOKEN;
	}
	if (kbuf_get_bytes(&frame, &rep, sizeof(rep)) != KEYD_OK ||
	    rep.out_len != kbuf_avail(&frame) ||
	    (rep.r == KEYD_OK && rep.out_len > *c->outlen)) {
		kbuf_reset(&frame);
		give_back(ch, slot, 1);
		*transport = 1;
		snprintf(msg, msglen, "a malformed reply from the token process "
		    "of '%s'", d->label);
		report_hung(t, j, gen);
		return KEYD_ERR_TOKEN;
	}
	give_back(ch, slot, 0);
	rep.msg[sizeof(rep.msg) - 1] = '\0';
	snprintf(msg, msglen, "%s", rep.msg);
	c->rv = (CK_RV)rep.rv;
	if (rep.r == KEYD_OK) {
		if (rep.out_len > 0)
			memcpy(c->out, kbuf_ptr(&frame), rep.out_len);
		*c->outlen = rep.out_len;
	}
	kbuf_reset(&frame);
	return rep.r;
}

/* keyd's health probe of token j after an error that may be its device's:
 * at most once a second. A token process whose probe fails after a
 * re-login exits, and the supervisor starts a fresh one. */
static void
probe(struct token *t, size_t j)
{
	struct pdev *d = &t->dev[j];
	long now = tw_now_ms(), last = atomic_load(&d->last_probe);
	struct call c;
	size_t outlen = 0;
	char msg[TW_MSG_LEN];
	int transport;

	if (now - last < PROXY_PROBE_MS ||
	    !atomic_compare_exchange_strong(&d->last_probe, &last, now))
		return;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_PROBE;
	c.outlen = &outlen;
	(void)call_dev(t, j, &c, now + t->timeout_ms, &transport, msg,
	    sizeof(msg));
}

/* Whether the primary is due another try while the failover token
 * serves: its process is up, and a second has passed. */
static int
primary_due(struct token *t)
{
	struct pdev *p = &t->dev[0];
	long now = tw_now_ms(), last = atomic_load(&t->primary_tried);
	int up;

	if (now - last < PROXY_PROBE_MS)
		return 0;
	pthread_mutex_lock(&p->mu);
	up = p->ch != NULL;
	pthread_mutex_unlock(&p->mu);
	return up && atomic_compare_exchange_strong(&t->primary_tried, &last,
	    now);
}

static void
switched(struct token *t, size_t j)
{
	struct pdev *p = &t->dev[0];
	char state[24];

	if (j == 0) {
		log_info("primary token '%s' serves again", p->label);
		return;
	}
	pthread_mutex_lock(&p->mu);
	snprintf(state, sizeof(state), "%s", !strcmp(p->state, "hung") ?
	    "hung" : "failing");
	pthread_mutex_unlock(&p->mu);
	log_warn("primary token '%s' is %s; serving from the failover token "
	    "'%s'", p->label, state, t->dev[1].label);
}

/* A request to the token that serves: the active one first, the other
 * when the first is down, does not answer, or fails for a reason of its
 * device's. */
static int
call(struct token *t, struct call *c, char *msg, size_t msglen)
{
	size_t first = (size_t)atomic_load(&t->active) % t->ndev;
	int r = KEYD_ERR_TOKEN, transport;
	char m[TW_MSG_LEN];

	/* While the failover token serves, one request a second tries the
	 * primary again, if its token process is up. */
	if (first == 1 && primary_due(t))
		first = 0;

	msg[0] = '\0';
	for (size_t k = 0; k < t->ndev; k++) {
		size_t j = (first + k) % t->ndev;
		struct pdev *d = &t->dev[j];
		long deadline = tw_now_ms() + t->timeout_ms;

		if ((c->q.op == TW_SIGN || c->q.op == TW_DECRYPT ||
		    c->q.op == TW_KCV || c->q.op == TW_GCM) &&
		    d->key_ok != NULL && c->q.key < t->n_all &&
		    !d->key_ok[c->q.key]) {
			snprintf(m, sizeof(m), "key %u on token '%s' is not "
			    "the key keyd serves", c->q.key, d->label);
			r = KEYD_ERR_TOKEN;
		} else {
			c->rv = CKR_OK;
			r = call_dev(t, j, c, deadline, &transport, m,
			    sizeof(m));
			if (r == KEYD_OK || (!transport && (r != KEYD_ERR_TOKEN ||
			    !rv_device(c->rv)))) {
				if ((size_t)atomic_exchange(&t->active, (int)j) !=
				    j && t->ndev > 1)
					switched(t, j);
				snprintf(msg, msglen, "%s", m);
				return r;
			}
			if (!transport)
				probe(t, j);
		}
		/* The first failure says most; a second token's adds to it. */
		if (k == 0)
			snprintf(msg, msglen, "%s", m);
		else if (strlen(msg) + strlen(m) + 32 < msglen)
			snprintf(msg + strlen(msg), msglen - strlen(msg),
			    "; the failover token: %s", m);
		if (!c->may_failover)
			break;
	}
	return r;
}

static void
put_mech(struct tw_req *q, const CK_MECHANISM *m)
{
	q->mech = m->mechanism;
	if (m->pParameter == NULL)
		return;
	if (m->ulParameterLen == sizeof(CK_RSA_PKCS_PSS_PARAMS) &&
	    m->mechanism == CKM_RSA_PKCS_PSS) {
		const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;

		q->has_params = 1;
		q->p_hash = p->hashAlg;
		q->p_mgf = p->mgf;
		q->p_slen = p->sLen;
	} else if (m->ulParameterLen == sizeof(CK_RSA_PKCS_OAEP_PARAMS) &&
	    m->mechanism == CKM_RSA_PKCS_OAEP) {
		const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;

		q->has_params = 1;
		q->p_hash = p->hashAlg;
		q->p_mgf = p->mgf;
	}
}

static int
proxy_crypt(struct token *t, uint32_t op, size_t key, CK_MECHANISM *mech,
    const uint8_t *in, size_t inlen, uint8_t *out, size_t *outlen,
    char *msg, size_t msglen)
{
	struct call c;

	if (inlen > TW_MAX_IN) {
		snprintf(msg, msglen, "input of %zu bytes is more than keyd "
		    "passes to a token (%u)", inlen, TW_MAX_IN);
		return KEYD_ERR_BAD_LENGTH;
	}
	memset(&c, 0, sizeof(c));
	c.q.op = op;
	c.q.key = (uint32_t)key;
	c.q.in_len = (uint32_t)inlen;
	c.q.out_len = (uint32_t)(*outlen > TW_MAX_IO ? TW_MAX_IO : *outlen);
	put_mech(&c.q, mech);
	c.in = in;
	c.out = out;
	c.outlen = outlen;
	c.may_failover = 1;
	return call(t, &c, msg, msglen);
}

int
token_sign(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	(void)s;
	return proxy_crypt(t, TW_SIGN, key, mech, in, inlen, out, outlen, msg,
	    msglen);
}

int
token_decrypt(struct token *t, struct token_session *s, size_t key,
    CK_MECHANISM *mech, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen, char *msg, size_t msglen)
{
	(void)s;
	return proxy_crypt(t, TW_DECRYPT, key, mech, in, inlen, out, outlen, msg,
	    msglen);
}

int
token_random(struct token *t, struct token_session *s, uint8_t *out,
    size_t n, char *msg, size_t msglen)
{
	struct call c;
	size_t outlen = n;
	int r;

	(void)s;
	if (n > TW_MAX_IO)
		return KEYD_ERR_BAD_LENGTH;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_RANDOM;
	c.q.out_len = (uint32_t)n;
	c.out = out;
	c.outlen = &outlen;
	c.may_failover = 1;
	r = call(t, &c, msg, msglen);
	if (r == KEYD_OK && outlen != n) {
		snprintf(msg, msglen, "the token process gave %zu random bytes, "
		    "not %zu", outlen, n);
		return KEYD_ERR_TOKEN;
	}
	return r;
}

int
token_kcv(struct token *t, struct token_session *s, size_t key,
    size_t version, uint8_t kcv[3], const char **how, char *msg,
    size_t msglen)
{
	static char how_text[TW_MSG_LEN];
	struct call c;
	size_t outlen = 3;
	int r;

	(void)s;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_KCV;
	c.q.key = (uint32_t)key;
	c.q.version = (uint32_t)version;
	c.q.out_len = 3;
	c.out = kcv;
	c.outlen = &outlen;
	c.may_failover = 1;
	r = call(t, &c, msg, msglen);
	if (r == KEYD_OK && outlen != 3)
		r = KEYD_ERR_TOKEN;
	if (r == KEYD_OK) {
		/* At start-up only, from one thread. */
		snprintf(how_text, sizeof(how_text), "%s", msg);
		*how = how_text;
		msg[0] = '\0';
	}
	return r;
}

int
token_gcm(struct token *t, struct token_session *s, size_t key,
    size_t version, int encrypt, const uint8_t *iv, size_t ivlen,
    const uint8_t *aad, size_t aadlen, unsigned tag_bits, const uint8_t *in,
    size_t inlen, uint8_t *out, size_t *outlen, CK_RV *rv, char *msg,
    size_t msglen)
{
	struct call c;
	size_t want = *outlen;
	int r;

	(void)s;
	*rv = CKR_OK;
	if (ivlen > TW_MAX_IO || aadlen > TW_MAX_IO || inlen > TW_MAX_IN ||
	    want > TW_MAX_IO)
		return KEYD_ERR_BAD_LENGTH;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_GCM;
	c.q.key = (uint32_t)key;
	c.q.version = (uint32_t)version;
	c.q.encrypt = (uint32_t)encrypt;
	c.q.tag_bits = tag_bits;
	c.q.iv_len = (uint32_t)ivlen;
	c.q.aad_len = (uint32_t)aadlen;
	c.q.in_len = (uint32_t)inlen;
	c.q.out_len = (uint32_t)want;
	c.iv = iv;
	c.aad = aad;
	c.in = in;
	c.out = out;
	c.outlen = outlen;
	c.may_failover = 1;
	r = call(t, &c, msg, msglen);
	*rv = c.rv;
	if (r == KEYD_OK && *outlen != want)
		r = KEYD_ERR_TOKEN;
	return r;
}

int
token_sign_audit_line(struct token *t, const uint8_t *line, size_t len,
    uint8_t *out, size_t *outlen, char *msg, size_t msglen)
{
	struct call c;

	if (len > TW_MAX_IO)
		return KEYD_ERR_BAD_LENGTH;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_CHECKPOINT;
	c.q.in_len = (uint32_t)len;
	c.q.out_len = (uint32_t)(*outlen > TW_MAX_IO ? TW_MAX_IO : *outlen);
	c.in = line;
	c.out = out;
	c.outlen = outlen;
	c.may_failover = 1;
	return call(t, &c, msg, msglen);
}

int
token_hmac_sha256(struct token *t, struct token_session *s,
    const uint8_t *in, size_t inlen, uint8_t out[TOKEN_HMAC_LEN], char *msg,
    size_t msglen)
{
	struct call c;
	size_t outlen = TOKEN_HMAC_LEN;
	int r;

	(void)s;
	if (!t->has_tn_key) {
		snprintf(msg, msglen, "no audit_tn_key is configured");
		return KEYD_ERR_INTERNAL;
	}
	if (inlen > TW_MAX_IN)
		return KEYD_ERR_BAD_LENGTH;
	memset(&c, 0, sizeof(c));
	c.q.op = TW_HMAC;
	c.q.in_len = (uint32_t)inlen;
	c.q.out_len = TOKEN_HMAC_LEN;
	c.in = in;
	c.out = out;
	c.outlen = &outlen;
	c.may_failover = 1;
	r = call(t, &c, msg, msglen);
	if (r == KEYD_OK && outlen != TOKEN_HMAC_LEN) {
		snprintf(msg, msglen, "the token made an HMAC-SHA256 of %zu "
		    "bytes", outlen);
		return KEYD_ERR_TOKEN;
	}
	return r;
}

long
token_audit_key(const struct token *t)
{
	return t->has_audit_key ? (long)t->n_keys : -1;
}

const struct token_key *
token_key(const struct token *t, size_t i)
{
	return i < t->n_all ? &t->keys[i] : NULL;
}

size_t
token_key_count(const struct token *t)
{
	return t->n_keys;
}

size_t
token_warn_weak(const struct token *t)
{
	size_t weak = 0;

	for (size_t i = 0; i < t->n_keys; i++) {
		const struct token_key *k = token_key(t, i);

		if (k == NULL || !k->weak_extractable)
			continue;
		weak++;
		log_warn("KEY '%s' IS EXTRACTABLE WITHOUT "
		    "CKA_WRAP_WITH_TRUSTED: anyone holding the user PIN "
		    "can wrap it under a key they choose and read it in "
		    "the clear. Regenerate it with keyd-backup keygen "
		    "(with --no-backup if the token cannot hold a key "
		    "that can be backed up; keygen says so).", k->name);
	}
	return weak;
}

size_t
token_count(const struct token *t)
{
	return t->ndev;
}

void
token_session_close(struct token *t, struct token_session *s)
{
	(void)t;
	(void)s;
}

void
token_get_info(struct token *t, size_t j, struct token_info *info)
{
	struct pdev *d = &t->dev[j];
	char out[TW_MSG_LEN] = "", msg[TW_MSG_LEN], state[24];
	size_t outlen = sizeof(out) - 1;
	struct call c;
	int transport, up;

	memset(info, 0, sizeof(*info));
	info->role = d->role;
	pthread_mutex_lock(&d->mu);
	snprintf(info->label, sizeof(info->label), "%s", d->label);
	snprintf(info->manufacturer, sizeof(info->manufacturer), "%s",
	    d->manufacturer);
	snprintf(info->model, sizeof(info->model), "%s", d->model);
	snprintf(info->serial, sizeof(info->serial), "%s", d->serial);
	snprintf(state, sizeof(state), "%s", d->state);
	info->key_copies = d->key_copies;
	info->recoveries = d->restarts;
	up = d->ch != NULL;
	pthread_mutex_unlock(&d->mu);
	info->active = t->ndev == 1 || (size_t)atomic_load(&t->active) == j;
	info->state = !strcmp(state, "serving") ? (info->active ? "serving" :
	    "standby") : !strcmp(state, "hung") ? "hung" :
	    !strcmp(state, "restarting") ? "restarting" :
	    !strcmp(state, "pin refused") ? "pin refused" :
	    !strcmp(state, "starting") ? "starting" : "failed";
	if (!up)
		return;
	/* The token process's own count of re-logins and its login state;
	 * never long: status must answer while a token hangs. */
	memset(&c, 0, sizeof(c));
	c.q.op = TW_INFO;
	c.q.out_len = (uint32_t)outlen;
	c.out = (uint8_t *)out;
	c.outlen = &outlen;
	if (call_dev(t, j, &c, tw_now_ms() + (t->timeout_ms <
	    PROXY_INFO_WAIT_MS ? t->timeout_ms : PROXY_INFO_WAIT_MS),
	    &transport, msg, sizeof(msg)) == KEYD_OK) {
		char st[24];
		int li;
		unsigned kc;
		unsigned long rec;

		out[outlen < sizeof(out) ? outlen : sizeof(out) - 1] = '\0';
		if (sscanf(out, "%23[^|]|%d|%u|%lu", st, &li, &kc, &rec) == 4) {
			info->logged_in = li;
			info->key_copies = kc;
			info->recoveries += rec;
		}
	}
}

void
token_close(struct token *t)
{
	if (t == NULL)
		return;
	for (size_t j = 0; j < t->ndev; j++) {
		chans_unref(t->dev[j].ch);
		free(t->dev[j].key_ok);
		pthread_mutex_destroy(&t->dev[j].mu);
	}
	if (t->keys != NULL) {
		struct tw_info in = { .keys = t->keys, .n_all = t->n_all };

		tw_info_free(&in);
	}
	free(t);
}
