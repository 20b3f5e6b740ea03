/*
 * test_cpgate: who may sign the next audit checkpoint (keyd/common/
 * cpgate.c). A token process takes only the answer that echoes its own
 * ask, number and predecessor: a late yes to one ask is not the yes to
 * the next. The supervisor gives one approval at a time across all token
 * processes, and only the holder's report for the approved predecessor
 * moves the last checkpoint; an approval ends when its holder reports,
 * gives it back, or ends, and one that outlives its bound is reported
 * once (keyd then ends its holder).
 */
#include <stdint.h>
#include <string.h>

#include "cpgate.h"
#include "keyd_err.h"
#include "ktest.h"

#define PID_A 1001
#define PID_B 1002
#define HOLD 500

static uint8_t P[TW_HASH_LEN], X[TW_HASH_LEN], N1[TW_HASH_LEN],
    N2[TW_HASH_LEN];

/* The attack the numbered ask stops: the supervisor stalls, the ask for
 * the true predecessor P gives up, and an ask for a rewritten one X
 * follows; the supervisor's late yes to P must not let X be signed. */
static void
test_late_answer_dropped(void)
{
	struct cpwait w;
	uint32_t s1, s2;

	memset(&w, 0, sizeof(w));
	s1 = cpwait_begin(&w, P);
	CHECK_INT(cpwait_end(&w), 0);            /* gave up: no answer */
	s2 = cpwait_begin(&w, X);
	CHECK(s2 != s1);
	/* The yes to the first ask, late: dropped, for its number and its
	 * predecessor both. */
	CHECK_INT(cpwait_answer(&w, s1, P, 1), 0);
	CHECK_INT(w.answer, -1);
	CHECK_INT(cpwait_answer(&w, s1, X, 1), 0);
	CHECK_INT(cpwait_answer(&w, s2, P, 1), 0);
	CHECK_INT(w.answer, -1);
	CHECK_INT(cpwait_end(&w), 0);

	/* The answer to the ask waiting is taken once; a second is dropped. */
	s1 = cpwait_begin(&w, P);
	CHECK_INT(cpwait_answer(&w, s1, P, 0), 1);
	CHECK_INT(cpwait_answer(&w, s1, P, 1), 0);
	CHECK_INT(cpwait_end(&w), 0);
	s1 = cpwait_begin(&w, P);
	CHECK_INT(cpwait_answer(&w, s1, P, 1), 1);
	CHECK_INT(cpwait_end(&w), 1);
	/* After the ask ended, its answer answers nothing. */
	CHECK_INT(cpwait_answer(&w, s1, P, 1), 0);
	/* Only 1 is yes. */
	s1 = cpwait_begin(&w, P);
	CHECK_INT(cpwait_answer(&w, s1, P, 2), 1);
	CHECK_INT(cpwait_end(&w), 0);
}

/* Two token processes (primary and failover, or old and new during a
 * reload) ask for the same predecessor: one approval only. */
static void
test_one_approval(void)
{
	struct cpgate g;

	cpgate_init(&g);
	/* No checkpoint known yet: the first ask is approved, and reserved. */
	CHECK_INT(cpgate_ask(&g, PID_A, 1, P, 0, HOLD), 1);
	CHECK_INT(cpgate_ask(&g, PID_B, 7, P, 1, HOLD), 0);
	/* The holder too asks again in vain while it holds one. */
	CHECK_INT(cpgate_ask(&g, PID_A, 2, P, 1, HOLD), 0);
	/* A report from a process that does not hold the approval, or for
	 * another ask or predecessor, moves nothing. */
	CHECK_INT(cpgate_done(&g, PID_B, 7, P, N2), KEYD_ERR_DENIED);
	CHECK_INT(cpgate_done(&g, PID_A, 2, P, N2), KEYD_ERR_DENIED);
	CHECK_INT(cpgate_done(&g, PID_A, 1, X, N2), KEYD_ERR_DENIED);
	CHECK_INT(cpgate_abort(&g, PID_B, 7, P), KEYD_ERR_DENIED);
	CHECK_INT(g.have_last, 0);
	CHECK_INT(g.holder, PID_A);
	/* The holder's report: N1 is the last checkpoint, the approval is
	 * free. */
	CHECK_INT(cpgate_done(&g, PID_A, 1, P, N1), KEYD_OK);
	CHECK_INT(g.have_last, 1);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
	CHECK_INT(g.holder, 0);
	/* Its report again changes nothing. */
	CHECK_INT(cpgate_done(&g, PID_A, 1, P, N2), KEYD_ERR_DENIED);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
	/* P is no longer the last: a second line naming it is refused. */
	CHECK_INT(cpgate_ask(&g, PID_B, 8, P, 2, HOLD), 0);
	CHECK_INT(cpgate_ask(&g, PID_B, 9, X, 2, HOLD), 0);
	CHECK_INT(g.holder, 0);
	CHECK_INT(cpgate_ask(&g, PID_B, 10, N1, 2, HOLD), 1);
	CHECK_INT(cpgate_ask(&g, PID_A, 3, N1, 2, HOLD), 0);
	/* Given back: the next ask may have it. */
	CHECK_INT(cpgate_abort(&g, PID_B, 9, N1), KEYD_ERR_DENIED);
	CHECK_INT(cpgate_abort(&g, PID_B, 10, N1), KEYD_OK);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
	CHECK_INT(cpgate_ask(&g, PID_A, 4, N1, 3, HOLD), 1);
	/* The aborted holder's late report moves nothing. */
	CHECK_INT(cpgate_done(&g, PID_B, 10, N1, N2), KEYD_ERR_DENIED);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
}

/* An approval ends with its holder, and lapses after its bound. */
static void
test_release_and_expiry(void)
{
	struct cpgate g;

	cpgate_init(&g);
	CHECK_INT(cpgate_ask(&g, PID_A, 1, P, 1000, HOLD), 1);
	CHECK_INT(cpgate_release(&g, PID_B), 0);
	CHECK_INT(cpgate_release(&g, 0), 0);
	CHECK_INT(g.holder, PID_A);
	CHECK_INT(cpgate_release(&g, PID_A), 1);
	CHECK_INT(g.holder, 0);
	CHECK_INT(cpgate_done(&g, PID_A, 1, P, N1), KEYD_ERR_DENIED);
	CHECK_INT(g.have_last, 0);

	/* A lapsed approval is reported once and stays reserved: its holder
	 * may be signing still, so keyd ends it and frees the approval when
	 * it has ended. */
	CHECK_INT(cpgate_ask(&g, PID_A, 2, P, 1000, HOLD), 1);
	CHECK_INT(cpgate_expire(&g, 1000 + HOLD - 1), 0);
	CHECK_INT(cpgate_expire(&g, 1000 + HOLD), PID_A);
	CHECK_INT(cpgate_expire(&g, 1000 + HOLD + 1), 0);
	CHECK_INT(g.holder, PID_A);
	CHECK_INT(cpgate_ask(&g, PID_B, 1, P, 1000 + 2 * HOLD, HOLD), 0);
	/* What it sent before it ended still counts. */
	CHECK_INT(cpgate_done(&g, PID_A, 2, P, N1), KEYD_OK);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
	CHECK_INT(cpgate_ask(&g, PID_B, 2, N1, 5000, HOLD), 1);
	CHECK_INT(cpgate_expire(&g, 5000 + HOLD), PID_B);
	CHECK_INT(cpgate_release(&g, PID_B), 1);
	/* A report after it was released moves nothing. */
	CHECK_INT(cpgate_done(&g, PID_B, 2, N1, N2), KEYD_ERR_DENIED);
	CHECK(memcmp(g.last, N1, TW_HASH_LEN) == 0);
	/* A new approval has a fresh bound. */
	CHECK_INT(cpgate_ask(&g, PID_A, 3, N1, 9000, HOLD), 1);
	CHECK_INT(cpgate_expire(&g, 9000 + HOLD - 1), 0);
	CHECK_INT(cpgate_expire(&g, 9000 + HOLD), PID_A);
}

int
main(void)
{
	memset(P, 0x11, sizeof(P));
	memset(X, 0x22, sizeof(X));
	memset(N1, 0x33, sizeof(N1));
	memset(N2, 0x44, sizeof(N2));
	test_late_answer_dropped();
	test_one_approval();
	test_release_and_expiry();
	return ktest_result("test_cpgate");
}
