/*
 * server.h: the Unix socket server. Worker threads share one epoll set;
 * each connection is armed one-shot, so exactly one worker handles it at
 * a time, reads its frames, runs them on the worker's own token session
 * and writes the replies. Peers are identified from the kernel's
 * credentials at accept, before a byte is read.
 */
#ifndef KEYD_SERVER_H
#define KEYD_SERVER_H

#include "config.h"
#include "dispatch.h"

struct server;

/* server_bind: creates the socket's directory (0750) if missing, replaces
 * a stale socket file only if nothing answers on it, binds and listens
 * with mode 0660 and the configured group. owner_uid/owner_gid: who owns
 * the directory and socket (the user keyd drops to). */
int server_bind(const struct config *cfg, uid_t owner_uid, struct server **out,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* server_start: starts the workers, which serve until server_stop (from
 * the main thread's loop). A worker waits at most token_timeout on a
 * token process (token_proxy.c). */
int server_start(struct server *s, struct dispatch *d)
    __attribute__((warn_unused_result));
/* server_stop: stops the workers, waiting up to token_timeout + 3 s for
 * them in all; returns how many did not stop.
 * Then nothing of the server, the dispatcher or the token may be freed:
 * exit. */
size_t server_stop(struct server *s);

/* server_swap: makes d (referenced once by the caller, which gives that
 * reference to the server) the dispatcher in force, after a reload.
 * Requests already running finish under the old one; each connection is
 * mapped again on its next request, or closed now if its client is gone
 * or its peer is now another client. Returns the old dispatcher, whose
 * reference the caller drops with server_put. */
struct dispatch *server_swap(struct server *s, struct dispatch *d);

/* server_put: drops a reference to d; its release runs at the last. */
void server_put(struct dispatch *d);

/* server_tick: periodic work from the main thread: closes idle
 * connections. */
void server_tick(struct server *s);

/* server_free: removes the socket file and frees everything (only the
 * socket file after a stop that left workers behind). */
void server_free(struct server *s);

#endif
