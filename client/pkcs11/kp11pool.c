/* kp11pool.c: keyd-pkcs11.so's pool of libkeyd connections. */
#include "kp11pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keyd.h"

static int
cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int e;

	if (pthread_condattr_init(&ca) != 0)
		return KEYD_ERR_NOMEM;
	/* Waits are bounded by a monotonic deadline, immune to clock
	 * changes. */
	e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (e == 0)
		e = pthread_cond_init(cond, &ca);
	(void)pthread_condattr_destroy(&ca);
	return e == 0 ? KEYD_OK : KEYD_ERR_NOMEM;
}

int
kp11pool_init(struct kp11pool *p)
{
	int r;

	memset(p, 0, sizeof(*p));
	if (pthread_mutex_init(&p->lock, NULL) != 0)
		return KEYD_ERR_NOMEM;
	if ((r = cond_init(&p->cond)) != KEYD_OK) {
		(void)pthread_mutex_destroy(&p->lock);
		return r;
	}
	p->pid = getpid();
	p->ready = 1;
	return KEYD_OK;
}

static void
pool_lock(struct kp11pool *p)
{
	if (pthread_mutex_lock(&p->lock) != 0)
		abort(); /* only a corrupt mutex fails */
}

static void
pool_unlock(struct kp11pool *p)
{
	(void)pthread_mutex_unlock(&p->lock);
}

/* Closes the idle connections and forgets those handed out, which
 * kp11pool_put then closes (their generation is old). Lock held. */
static void
pool_drop(struct kp11pool *p)
{
	unsigned i;

	for (i = 0; i < p->nidle; i++) {
		keyd_close(p->idle[i]);
		p->idle[i] = NULL;
	}
	p->nidle = 0;
	p->total = 0;
	p->gen++;
	(void)pthread_cond_broadcast(&p->cond);
}

int
kp11pool_setup(struct kp11pool *p, const char *socket, unsigned timeout_ms,
    unsigned max)
{
	struct keyd_client **idle = NULL;
	char *sock = NULL;
	int r = KEYD_ERR_NOMEM;

	if (max == 0)
		return KEYD_ERR_INVALID_ARG;
	if ((idle = calloc(max, sizeof(*idle))) == NULL)
		return KEYD_ERR_NOMEM;
	if (socket != NULL && socket[0] != '\0' &&
	    (sock = strdup(socket)) == NULL)
		goto out;
	pool_lock(p);
	pool_drop(p);
	free(p->idle);
	free(p->socket);
	p->idle = idle;
	p->socket = sock;
	p->timeout_ms = timeout_ms;
	p->max = max;
	p->pid = getpid();
	pool_unlock(p);
	idle = NULL;
	sock = NULL;
	r = KEYD_OK;
out:
	free(idle);
	free(sock);
	return r;
}

void
kp11pool_shutdown(struct kp11pool *p)
{
	if (!p->ready)
		return;
	pool_lock(p);
	pool_drop(p);
	pool_unlock(p);
}

/* In a child of fork: the parent's connections are the parent's. Closing
 * the idle ones closes only this process's copies of their sockets; those
 * other threads had in hand are abandoned (those threads do not exist
 * here, and their locks may be held). Lock held. */
static void
pool_check_fork(struct kp11pool *p)
{
	if (p->pid == getpid())
		return;
	pool_drop(p);
	p->pid = getpid();
}

int
kp11pool_get(struct kp11pool *p, struct keyd_client **c, unsigned *gen,
    char *err, size_t errlen)
{
	struct keyd_client *nc = NULL;
	struct timespec dl;
	char *sock = NULL;
	unsigned timeout, g;
	int r, e;

	*c = NULL;
	if (clock_gettime(CLOCK_MONOTONIC, &dl) != 0)
		return KEYD_ERR_IO;
	pool_lock(p);
	pool_check_fork(p);
	timeout = p->timeout_ms;
	dl.tv_sec += timeout / 1000;
	dl.tv_nsec += (long)(timeout % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	while (p->nidle == 0 && p->total >= p->max) {
		e = pthread_cond_timedwait(&p->cond, &p->lock, &dl);
		if (e == ETIMEDOUT && p->nidle == 0 && p->total >= p->max) {
			pool_unlock(p);
			snprintf(err, errlen, "all %u connections to keyd stayed "
			    "busy for %u ms (raise connections in the module's "
			    "config?)", p->max, timeout);
			return KEYD_ERR_BUSY;
		}
	}
	if (p->nidle > 0) {
		*c = p->idle[--p->nidle];
		p->idle[p->nidle] = NULL;
		*gen = p->gen;
		pool_unlock(p);
		return KEYD_OK;
	}
	/* Open a new one without the lock: connecting may take a while. */
	p->total++;
	g = p->gen;
	if (p->socket != NULL && (sock = strdup(p->socket)) == NULL) {
		p->total--;
		pool_unlock(p);
		snprintf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	pool_unlock(p);
	/* Connecting and hello within the configured timeout too: a keyd
	 * that accepts and never answers must not hold the caller longer. */
	r = keyd_connect_timeout(sock, timeout, &nc);
	if (r != KEYD_OK)
		snprintf(err, errlen, "%s", keyd_errmsg(NULL));
	free(sock);
	if (r != KEYD_OK) {
		keyd_close(nc);
		pool_lock(p);
		if (p->gen == g && p->total > 0)
			p->total--;
		(void)pthread_cond_signal(&p->cond);
		pool_unlock(p);
		return r;
	}
	*c = nc;
	*gen = g;
	return KEYD_OK;
}

void
kp11pool_put(struct kp11pool *p, struct keyd_client *c, unsigned gen)
{
	if (c == NULL)
		return;
	pool_lock(p);
	if (gen != p->gen || p->pid != getpid() || p->nidle >= p->max) {
		/* From before a shutdown: not counted any more. */
		pool_unlock(p);
		keyd_close(c);
		return;
	}
	p->idle[p->nidle++] = c;
	(void)pthread_cond_signal(&p->cond);
	pool_unlock(p);
}

void
kp11pool_atfork_prepare(struct kp11pool *p)
{
	if (p->ready)
		pool_lock(p);
}

void
kp11pool_atfork_parent(struct kp11pool *p)
{
	if (p->ready)
		pool_unlock(p);
}

void
kp11pool_atfork_child(struct kp11pool *p)
{
	if (!p->ready)
		return;
	/* Threads that waited on the condition in the parent are gone:
	 * start it afresh rather than trust its inherited state. */
	if (cond_init(&p->cond) != KEYD_OK)
		abort();
	pool_unlock(p);
}
