/*
 * policy.h: who may do what. A peer is identified by the kernel's
 * credentials of its socket (never by anything it sends), mapped to one
 * [client] section, and each request is checked: op X on key K is allowed
 * only if K is in the client's keys, X in its ops, and X in K's ops.
 */
#ifndef KEYD_POLICY_H
#define KEYD_POLICY_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"

#define POLICY_MAX_GROUPS 256

struct policy_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[POLICY_MAX_GROUPS]; /* supplementary groups */
	size_t n_groups;
};

/* policy_peer_from_fd: the credentials of the peer of a connected Unix
 * socket (SO_PEERCRED, SO_PEERGROUPS). Returns KEYD_OK or KEYD_ERR_IO. */
int policy_peer_from_fd(int fd, struct policy_peer *p)
    __attribute__((warn_unused_result));

/* policy_match: the index of the [client] the peer maps to, or -1. A uid
 * match wins over a gid match (primary or supplementary). A peer whose
 * groups match two different clients and no uid matches is ambiguous and
 * gets -1, with *ambiguous set. */
long policy_match(const struct config *c, const struct policy_peer *p,
    int *ambiguous);

/* policy_check: may client do op on the key named key? Returns KEYD_OK and
 * the key's index in *key_idx; KEYD_ERR_UNKNOWN_KEY if no key has that
 * name; KEYD_ERR_DENIED otherwise. msg says why, without secrets. */
int policy_check(const struct config *c, size_t client, const char *key,
    unsigned op, size_t *key_idx, char *msg, size_t msglen)
    __attribute__((warn_unused_result));

/*
 * policy_passport: the client's STIR/SHAKEN policy for one PASSporT.
 * attest: 'A', 'B' or 'C' for ppt shaken, 0 for ppt div. tn: the
 * canonical TN the signer vouches for (orig; for div, the div TN).
 * attest_max bounds attest; orig_tns bound tn at A and B and for div (C
 * is what a gateway asserts for callers it cannot vouch for: any
 * well-formed orig). Returns KEYD_OK, or KEYD_ERR_DENIED with msg naming
 * the rule (attest_max, orig_tns).
 */
int policy_passport(const struct config *c, size_t client, char attest,
    const char *tn, char *msg, size_t msglen)
    __attribute__((warn_unused_result));

/* policy_client_has_key: 1 if the key index is in the client's keys. */
int policy_client_has_key(const struct config *c, size_t client, size_t key);

/* A token bucket and a connection count per client, shared by all of the
 * client's connections. */
struct policy_limiter {
	pthread_mutex_t mu;
	double rate;         /* tokens per second; 0: unlimited */
	double burst;
	double tokens;
	struct timespec last;
	unsigned conns;
	unsigned max_conns;  /* 0: unlimited */
};

void policy_limiter_init(struct policy_limiter *l, double rate,
    unsigned max_conns);
void policy_limiter_destroy(struct policy_limiter *l);
/* policy_limiter_take: 1 if a request may go now, 0 if rate-limited. */
int policy_limiter_take(struct policy_limiter *l);
/* policy_limiter_connect: 1 if another connection is allowed (and counts
 * it); policy_limiter_disconnect gives it back. */
int policy_limiter_connect(struct policy_limiter *l);
void policy_limiter_disconnect(struct policy_limiter *l);
/* policy_limiter_adopt: counts a connection that is already open (a
 * reload's new limiter takes over the client's connections; a lowered
 * max_connections closes none of them). */
void policy_limiter_adopt(struct policy_limiter *l);
/* policy_limiter_carry: a reload's new limiter for a client takes over
 * what the client's old one had left (at most its own burst): a reload
 * must not give every client a fresh burst. Does nothing if the old one
 * was unlimited. */
void policy_limiter_carry(struct policy_limiter *to,
    struct policy_limiter *from);

#endif
