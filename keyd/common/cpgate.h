/*
 * cpgate.h: the rule that keeps the audit log's signed checkpoints one
 * chain (docs/architecture.md, "The audit key").
 *
 * A token process signs a checkpoint line only if the supervisor says
 * the line's "cp_prev" names the last checkpoint signed. Two things make
 * that answer hold:
 *
 *   - The answer names the question. A token process numbers each ask
 *     and takes only the answer that carries the same number and the
 *     same predecessor (struct cpwait); an answer that comes after its
 *     ask gave up is dropped, so a stalled supervisor's late yes to one
 *     ask cannot be read as the yes to another.
 *   - One approval at a time, across all token processes (struct
 *     cpgate). After a yes, the supervisor refuses every other ask until
 *     the approved process says it signed (CP_DONE) or will not
 *     (CP_ABORT), or ends; one that holds it longer than its bound is
 *     ended as hung.
 *     Only the holder's CP_DONE for the approved predecessor moves the
 *     last checkpoint.
 *
 * Neither structure locks: the supervisor is one thread, and keyd-token
 * holds its own mutex around its struct cpwait.
 */
#ifndef KEYD_CPGATE_H
#define KEYD_CPGATE_H

#include <stdint.h>
#include <sys/types.h>

#include "tokenwire.h"

/* The supervisor's side: the last checkpoint signed, and the approval
 * outstanding, if any. */
struct cpgate {
	int have_last;             /* 0: none signed since keyd started */
	uint8_t last[TW_HASH_LEN];
	pid_t holder;              /* the approved token process; 0: none */
	uint32_t seq;              /* its ask's number */
	uint8_t prev[TW_HASH_LEN]; /* the predecessor approved */
	long until_ms;             /* the approval lapses then */
	int lapsed;                /* cpgate_expire said so */
};

/* Sets g to no checkpoint signed and no approval outstanding. */
void cpgate_init(struct cpgate *g);

/* Ask seq of token process pid: may it sign a line whose predecessor is
 * prev? Returns 1, and reserves the approval for pid (it lapses at
 * now_ms + hold_ms), if prev is the last checkpoint signed (or none is
 * known yet) and no approval is outstanding; 0 otherwise. */
int cpgate_ask(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], long now_ms, long hold_ms);

/* Token process pid signed, for its ask seq, a line naming prev whose
 * hash is next. Returns KEYD_OK, next now being the last checkpoint, if
 * pid holds the approval for that ask and prev; KEYD_ERR_DENIED, nothing
 * changed, otherwise. */
int cpgate_done(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], const uint8_t next[TW_HASH_LEN])
    __attribute__((warn_unused_result));

/* Token process pid will not sign for its ask seq (its signature failed,
 * or the answer came after it gave up). Returns KEYD_OK if that released
 * the approval, KEYD_ERR_DENIED if pid held none for that ask. */
int cpgate_abort(struct cpgate *g, pid_t pid, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN]) __attribute__((warn_unused_result));

/* Token process pid ended, or its control channel closed: it can no
 * longer say it signed. Returns 1 if it held the approval (released). */
int cpgate_release(struct cpgate *g, pid_t pid);

/* Whether the approval outstanding has outlived its bound. Returns its
 * holder's pid the first time it is asked after the approval lapsed, else
 * 0. The approval stays reserved: the holder may be signing still, so the
 * supervisor ends it (as hung) and frees the approval once it has ended
 * and what it sent before has been read (cpgate_release). */
pid_t cpgate_expire(struct cpgate *g, long now_ms);

/* The token process's side: the one ask waiting for its answer. */
struct cpwait {
	int waiting;
	uint32_t seq;              /* the last ask's number */
	uint8_t prev[TW_HASH_LEN];
	int answer;                /* -1: none yet; 0: refused; 1: may sign */
};

/* Starts an ask for prev. Returns its number, to send with it. */
uint32_t cpwait_begin(struct cpwait *w, const uint8_t prev[TW_HASH_LEN]);

/* An answer came: v for ask seq about prev. Returns 1 if it answers the
 * ask waiting (and is now its answer), 0 if it is dropped: no ask waits,
 * or the waiting one has another number or predecessor, or it already
 * has its answer. */
int cpwait_answer(struct cpwait *w, uint32_t seq,
    const uint8_t prev[TW_HASH_LEN], uint32_t v);

/* Ends the ask waiting. Returns 1 if its answer was yes, 0 if no or none
 * came (later answers to it are dropped). */
int cpwait_end(struct cpwait *w);

#endif
