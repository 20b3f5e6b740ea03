/* policy.c: peer credentials, client matching and per-request checks. */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "keyd_err.h"

int
policy_peer_from_fd(int fd, struct policy_peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    len != sizeof(cred))
		return KEYD_ERR_IO;
	p->uid = cred.uid;
	p->gid = cred.gid;
	p->pid = cred.pid;
	len = sizeof(p->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) != 0) {
		/* ERANGE: more groups than we keep. Refuse rather than match
		 * on a partial list, which could pick the wrong client. */
		return KEYD_ERR_IO;
	}
	p->n_groups = len / sizeof(gid_t);
	return KEYD_OK;
}

static int
client_has_gid(const struct config_client *cl, gid_t g)
{
	for (size_t i = 0; i < cl->n_gids; i++)
		if (cl->gids[i] == g)
			return 1;
	return 0;
}

long
policy_match(const struct config *c, const struct policy_peer *p,
    int *ambiguous)
{
	long found = -1;
	size_t i, j;

	*ambiguous = 0;
	for (i = 0; i < c->n_clients; i++)
		for (j = 0; j < c->clients[i].n_uids; j++)
			if (c->clients[i].uids[j] == p->uid)
				return (long)i;
	for (i = 0; i < c->n_clients; i++) {
		int hit = client_has_gid(&c->clients[i], p->gid);

		for (j = 0; !hit && j < p->n_groups; j++)
			hit = client_has_gid(&c->clients[i], p->groups[j]);
		if (!hit)
			continue;
		if (found >= 0) {
			*ambiguous = 1;
			return -1;
		}
		found = (long)i;
	}
	return found;
}

int
policy_client_has_key(const struct config *c, size_t client, size_t key)
{
	const struct config_client *cl = &c->clients[client];

	for (size_t i = 0; i < cl->n_keys; i++)
		if (cl->keys[i] == key)
			return 1;
	return 0;
}

int
policy_check(const struct config *c, size_t client, const char *key,
    unsigned op, size_t *key_idx, char *msg, size_t msglen)
{
	const struct config_client *cl = &c->clients[client];
	long k = config_find_key(c, key);

	if (k < 0) {
		snprintf(msg, msglen, "no key named '%.64s'", key);
		return KEYD_ERR_UNKNOWN_KEY;
	}
	if (!policy_client_has_key(c, client, (size_t)k)) {
		snprintf(msg, msglen, "client '%s' may not use key '%s'",
		    cl->name, c->keys[k].name);
		return KEYD_ERR_DENIED;
	}
	if (!(cl->ops & op)) {
		snprintf(msg, msglen, "client '%s' may not %s",
		    cl->name, config_op_name(op));
		return KEYD_ERR_DENIED;
	}
	if (!(c->keys[k].ops & op)) {
		snprintf(msg, msglen, "key '%s' is not for %s",
		    c->keys[k].name, config_op_name(op));
		return KEYD_ERR_DENIED;
	}
	*key_idx = (size_t)k;
	return KEYD_OK;
}

static int
tn_rule_match(const struct config_tn_rule *r, const char *tn)
{
	size_t n = strlen(r->lo);

	if (r->prefix)
		return strncmp(tn, r->lo, n) == 0;
	if (r->hi[0] == '\0')
		return strcmp(tn, r->lo) == 0;
	/* A range holds TNs of its ends' length only: 012025550150 is
	 * another number than 12025550150. */
	return strlen(tn) == n && strcmp(tn, r->lo) >= 0 &&
	    strcmp(tn, r->hi) <= 0;
}

int
policy_passport(const struct config *c, size_t client, char attest,
    const char *tn, char *msg, size_t msglen)
{
	const struct config_client *cl = &c->clients[client];
	static const char names[] = "?CBA";
	enum config_attest want = attest == 'A' ? CONFIG_ATTEST_A :
	    attest == 'B' ? CONFIG_ATTEST_B : CONFIG_ATTEST_C;

	if (attest != 0 && want > cl->attest_max) {
		snprintf(msg, msglen, "attest_max: client '%s' may attest at "
		    "most %c, not %c", cl->name, names[cl->attest_max], attest);
		return KEYD_ERR_DENIED;
	}
	if (attest == 'C')
		return KEYD_OK;
	for (size_t i = 0; i < cl->n_orig_tns; i++)
		if (tn_rule_match(&cl->orig_tns[i], tn))
			return KEYD_OK;
	/* The TN is not in the message: the audit line's detail carries
	 * the message, and TNs go there only as audit_tn says. */
	if (attest != 0)
		snprintf(msg, msglen, "orig_tns: orig is not among the "
		    "numbers of client '%s' (attestation %c needs one of "
		    "them; C takes any)", cl->name, attest);
	else
		snprintf(msg, msglen, "orig_tns: the div TN is not among the "
		    "numbers of client '%s'", cl->name);
	return KEYD_ERR_DENIED;
}

void
policy_limiter_init(struct policy_limiter *l, double rate, unsigned max_conns)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	l->rate = rate;
	/* One second's worth of requests may come in a burst, and at least
	 * two: hello takes a token like any request (dispatch.c), and a
	 * client with a small rate must still get its connection's hello
	 * and first request through together. */
	l->burst = rate < 2 ? 2 : rate;
	l->tokens = l->burst;
	l->max_conns = max_conns;
	clock_gettime(CLOCK_MONOTONIC, &l->last);
}

void
policy_limiter_destroy(struct policy_limiter *l)
{
	pthread_mutex_destroy(&l->mu);
}

int
policy_limiter_take(struct policy_limiter *l)
{
	struct timespec now;
	double dt;
	int ok;

	if (l->rate <= 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&l->mu);
	dt = (double)(now.tv_sec - l->last.tv_sec) +
	    (double)(now.tv_nsec - l->last.tv_nsec) / 1e9;
	l->last = now;
	l->tokens += dt * l->rate;
	if (l->tokens > l->burst)
		l->tokens = l->burst;
	ok = l->tokens >= 1.0;
	if (ok)
		l->tokens -= 1.0;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

int
policy_limiter_connect(struct policy_limiter *l)
{
	int ok;

	pthread_mutex_lock(&l->mu);
	ok = l->max_conns == 0 || l->conns < l->max_conns;
	if (ok)
		l->conns++;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void
policy_limiter_adopt(struct policy_limiter *l)
{
	pthread_mutex_lock(&l->mu);
	l->conns++;
	pthread_mutex_unlock(&l->mu);
}

void
policy_limiter_carry(struct policy_limiter *to, struct policy_limiter *from)
{
	struct timespec now;
	double tokens, dt;

	pthread_mutex_lock(&from->mu);
	if (from->rate <= 0) {
		pthread_mutex_unlock(&from->mu);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - from->last.tv_sec) +
	    (double)(now.tv_nsec - from->last.tv_nsec) / 1e9;
	tokens = from->tokens + dt * from->rate;
	if (tokens > from->burst)
		tokens = from->burst;
	pthread_mutex_unlock(&from->mu);
	pthread_mutex_lock(&to->mu);
	to->tokens = tokens < to->burst ? tokens : to->burst;
	to->last = now;
	pthread_mutex_unlock(&to->mu);
}

void
policy_limiter_disconnect(struct policy_limiter *l)
{
	pthread_mutex_lock(&l->mu);
	if (l->conns > 0)
		l->conns--;
	pthread_mutex_unlock(&l->mu);
}
