/*
 * cpgate.c: who may sign the next audit checkpoint (cpgate.h).
 */
#include <string.h>

#include "cpgate.h"
#include "keyd_err.h"

void
cpgate_init(struct cpgate *g)
{
	memset(g, 0, sizeof(*g));
}

int
cpgate_ask(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], long now_ms, long hold_ms)
{
	if (g->holder != 0)
		return 0;
	if (g->have_last && memcmp(prev, g->last, TW_HASH_LEN) != 0)
		return 0;
	g->holder = pid;
	g->seq = seq;
	memcpy(g->prev, prev, TW_HASH_LEN);
	g->until_ms = now_ms + hold_ms;
	g->lapsed = 0;
	return 1;
}

/* Whether pid holds the approval for ask seq about prev. */
static int
holds(const struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN])
{
	return pid != 0 && g->holder == pid && g->seq == seq &&
	    memcmp(g->prev, prev, TW_HASH_LEN) == 0;
}

int
cpgate_done(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], const uint8_t next[TW_HASH_LEN])
{
	if (!holds(g, pid, seq, prev))
		return KEYD_ERR_DENIED;
	memcpy(g->last, next, TW_HASH_LEN);
	g->have_last = 1;
	g->holder = 0;
	return KEYD_OK;
}

int
cpgate_abort(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN])
{
	if (!holds(g, pid, seq, prev))
		return KEYD_ERR_DENIED;
	g->holder = 0;
	return KEYD_OK;
}

int
cpgate_release(struct cpgate *g, pid_t pid)
{
	if (pid == 0 || g->holder != pid)
		return 0;
	g->holder = 0;
	return 1;
}

pid_t
cpgate_expire(struct cpgate *g, long now_ms)
{
	if (g->holder == 0 || g->lapsed || now_ms < g->until_ms)
		return 0;
	g->lapsed = 1;
	return g->holder;
}

uint32_t
cpwait_begin(struct cpwait *w, const uint8_t prev[TW_HASH_LEN])
{
	w->seq++;
	memcpy(w->prev, prev, TW_HASH_LEN);
	w->answer = -1;
	w->waiting = 1;
	return w->seq;
}

int
cpwait_answer(struct cpwait *w, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], uint32_t v)
{
	if (!w->waiting || w->answer >= 0 || seq != w->seq ||
	    memcmp(prev, w->prev, TW_HASH_LEN) != 0)
		return 0;
	w->answer = v == 1;
	return 1;
}

int
cpwait_end(struct cpwait *w)
{
	int yes = w->waiting && w->answer == 1;

	w->waiting = 0;
	w->answer = -1;
	return yes;
}
