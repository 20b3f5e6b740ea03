/*
 * serve_reload.h: the socket-facing process's side of a reload.
 *
 * The supervisor reads the configuration file once, checks it, starts
 * token processes with its bytes and offers them here (TW_CTL_RELOAD_TOKEN
 * frames, then TW_CTL_RELOAD_APPLY with the bytes and their SHA-256).
 * This side builds a dispatcher for the new configuration over those
 * token processes, runs the checks that need the tokens from here (the
 * implicit-rejection secrets, the SRTP KEK check values, the passport
 * certificates, the failover token's keys), writes the `reload` audit
 * record and makes the new dispatcher the one in force (server_swap), or
 * writes `reload-refused` and changes nothing. Either way it tells the
 * supervisor (TW_CTL_RELOAD_DONE) and the client that asked.
 *
 * Everything here runs on the process's main thread but serve_reload_ask,
 * which a worker calls for a client's reload op.
 */
#ifndef KEYD_SERVE_RELOAD_H
#define KEYD_SERVE_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "dispatch.h"
#include "kbuf.h"
#include "server.h"
#include "token.h"

#define SERVE_RELOAD_WUR __attribute__((warn_unused_result))

struct serve_reload;

/* serve_reload_first: the dispatcher of the configuration keyd started
 * with (generation 1), over cfg and token, which it takes over (they are
 * freed with it); hash: the hex SHA-256 of the file's bytes. Reads the
 * implicit-rejection secrets, SRTP counters and passport certificates
 * (before the sandbox). NULL on failure, with err. */
struct dispatch *serve_reload_first(struct config *cfg, struct token *token,
    struct audit *audit, const char *hash, char *err, size_t errlen);

/* serve_reload_new: the reload state, over the running dispatcher d (its
 * run gets serve_reload_ask as its reload hook). sup_fd: the channel to
 * the supervisor. */
int serve_reload_new(struct dispatch *d, int sup_fd, struct serve_reload **out)
    SERVE_RELOAD_WUR;

/* serve_reload_start: the server d serves on, once it runs. */
void serve_reload_start(struct serve_reload *r, struct server *srv);

/* serve_reload_current: the dispatcher in force, as the main thread sees
 * it (valid until the next reload applied). */
struct dispatch *serve_reload_current(struct serve_reload *r);

/* Frames from the supervisor, after their type word: a new token process
 * with its channels (fds are taken over), the bytes to apply (with
 * syslog_fd, the new syslog_socket's connected socket or -1, taken over
 * too), a refusal. */
void serve_reload_token(struct serve_reload *r, struct kbuf *b, int *fds,
    size_t nfds);
void serve_reload_apply(struct serve_reload *r, struct kbuf *b,
    int syslog_fd);
void serve_reload_refused(struct serve_reload *r, struct kbuf *b);

/* serve_reload_abort: keyd stops: clients waiting on a reload are told so
 * (their workers must not wait past the stop). */
void serve_reload_abort(struct serve_reload *r);

/* serve_reload_free: frees r and drops the dispatcher in force (after the
 * server has stopped and the audit log is closed). */
void serve_reload_free(struct serve_reload *r);

#endif
