/*
 * token_proxy.h: how the socket-facing process learns of its token
 * processes (token_proxy.c implements token.h over them).
 */
#ifndef KEYD_TOKEN_PROXY_H
#define KEYD_TOKEN_PROXY_H

#include "config.h"
#include "token.h"
#include "tokenwire.h"

/* token_proxy_new: a token with no token process yet. sup_fd: the channel
 * to the supervisor, on which hung token processes are reported (the
 * caller reads it; the proxy only writes). */
int token_proxy_new(const struct config *cfg, int sup_fd,
    struct token **out) __attribute__((warn_unused_result));

/* token_proxy_up: token j (0 primary, 1 failover) is served by the
 * process of incarnation gen, on channels fds[0..nfds) (taken over), with
 * the key info in (its keys taken over when it is the first). A key
 * whose type, public key or check value differs from what keyd serves is
 * not served from this token. */
int token_proxy_up(struct token *t, size_t j, unsigned gen, const int *fds,
    size_t nfds, struct tw_info *in, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* token_proxy_down: token j's process of incarnation gen is gone; state:
 * "restarting", "failed", "pin refused". */
void token_proxy_down(struct token *t, size_t j, unsigned gen,
    const char *state);

/* token_proxy_mismatch: how many keys token j holds in another version
 * than the keys keyd serves (they are not served from it). */
size_t token_proxy_mismatch(struct token *t, size_t j);

/* token_proxy_sup_send: one frame to the supervisor on fd, never
 * interleaved with another thread's. Returns 0 or -1 (errno). */
int token_proxy_sup_send(int fd, const void *p, size_t n)
    __attribute__((warn_unused_result));

/* token_proxy_ready: some token has described the keys. */
int token_proxy_ready(const struct token *t);

#endif
