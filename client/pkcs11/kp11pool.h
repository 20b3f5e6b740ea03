/*
 * kp11pool.h: keyd-pkcs11.so's connections to keyd. A thread takes an idle
 * connection (or opens a new one, up to a maximum), makes its request
 * holding no lock of the pool, and gives the connection back; so requests
 * from many threads run in parallel and none waits behind another's
 * request in flight. libkeyd reconnects a connection whose keyd went away
 * (a restart). After fork the child drops the parent's connections and
 * opens its own on first use. Internal to the module.
 */
#ifndef KEYD_KP11POOL_H
#define KEYD_KP11POOL_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "kbuf.h"

struct keyd_client;

struct kp11pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* a connection came back */
	char *socket;               /* NULL: libkeyd's default */
	unsigned timeout_ms;
	unsigned max;
	struct keyd_client **idle;  /* max slots */
	unsigned nidle;
	unsigned total;             /* idle + handed out */
	unsigned gen;               /* bumped by shutdown and fork */
	pid_t pid;                  /* the process the connections belong to */
	int ready;
};

/* kp11pool_init: sets up p's lock and condition; once per process. */
int kp11pool_init(struct kp11pool *p) KBUF_WUR;

/* kp11pool_setup: configures p (socket path or NULL, timeout, maximum
 * number of connections). p must be empty (fresh or shut down). */
int kp11pool_setup(struct kp11pool *p, const char *socket,
    unsigned timeout_ms, unsigned max) KBUF_WUR;

/* kp11pool_shutdown: closes the idle connections; those handed out are
 * closed when they come back. */
void kp11pool_shutdown(struct kp11pool *p);

/*
 * kp11pool_get: a connection for one request, in *c, with the pool's
 * generation in *gen for kp11pool_put. Waits up to the timeout for one to
 * come back when all are in use. Returns KEYD_OK; a keyd_connect error
 * (KEYD_ERR_CONNECT when keyd is down) with err saying why; KEYD_ERR_BUSY.
 */
int kp11pool_get(struct kp11pool *p, struct keyd_client **c, unsigned *gen,
    char *err, size_t errlen) KBUF_WUR;

/* kp11pool_put: gives back c from kp11pool_get. */
void kp11pool_put(struct kp11pool *p, struct keyd_client *c, unsigned gen);

/* Fork handlers, called from the module's pthread_atfork handlers: the
 * prepare handler takes the lock so that the child never inherits it held
 * by a thread it does not have. */
void kp11pool_atfork_prepare(struct kp11pool *p);
void kp11pool_atfork_parent(struct kp11pool *p);
void kp11pool_atfork_child(struct kp11pool *p);

#endif
