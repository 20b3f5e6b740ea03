/*
 * handoff: what one request/reply round trip between two processes costs
 * on this machine, without keyd. keyd-serve reaches a token process with
 * exactly this: one sendmsg of the request on a Unix stream socketpair,
 * one blocking recvmsg of the reply, and the token process's thread doing
 * the same the other way round. The floor it measures is what any design
 * with a process boundary per request pays, before keyd does any work.
 *
 *   handoff [-m proc|thread|shm] [-p PAIRS] [-n ROUNDS] [-w WORK_US]
 *
 * -m proc: the answering side is a forked process (keyd's boundary);
 *    thread: a thread of the same process (for comparison);
 *    shm: a forked process, the request and reply in shared memory and
 *    the wake-ups by futex instead of a socket (what a shared-memory
 *    channel would save).
 * -p: pairs running at once (2: keyd-serve's two workers, each with its
 *    own channel and token thread).
 * -w: microseconds of CPU the answering side burns per request (a
 *    stand-in for the token's work; 0: none).
 *
 * Prints round trips per second and the CPU that both sides used per
 * round trip (user + system, from getrusage), as one markdown row.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define REQ_LEN 96        /* about a signature request to the token */
#define REP_LEN 160       /* about its reply */
#define MAX_PAIRS 16

static long rounds = 200000;
static long work_us;

/* The answering side: a request in, work, a reply out, until EOF. */
static void *
answer(void *arg)
{
	int fd = (int)(long)arg;
	char req[REQ_LEN], rep[REP_LEN];

	memset(rep, 'r', sizeof(rep));
	while (xfer(fd, req, sizeof(req), 0) == 0) {
		burn_us(work_us);
		if (xfer(fd, rep, sizeof(rep), 1) != 0)
			break;
	}
	close(fd);
	return NULL;
}

/* shm mode: one slot per pair in a MAP_SHARED mapping. */
struct slot {
	_Atomic unsigned state;    /* 0 idle, 1 request ready, 2 reply ready,
	                              3 end */
	char req[REQ_LEN];
	char rep[REP_LEN];
};

static struct slot *slots;

static void
futex_wait(_Atomic unsigned *w, unsigned val)
{
	(void)syscall(SYS_futex, w, FUTEX_WAIT, val, NULL, NULL, 0);
}

static void
futex_wake(_Atomic unsigned *w)
{
	(void)syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void
shm_await(_Atomic unsigned *w, unsigned want)
{
	unsigned v;

	while ((v = atomic_load(w)) != want && v != 3)
		futex_wait(w, v);
}

static void *
shm_answer(void *arg)
{
	struct slot *sl = &slots[(long)arg];

	for (;;) {
		shm_await(&sl->state, 1);
		if (atomic_load(&sl->state) == 3)
			break;
		burn_us(work_us);
		memset(sl->rep, 'r', sizeof(sl->rep));
		atomic_store(&sl->state, 2);
		futex_wake(&sl->state);
	}
	return NULL;
}

static void *
shm_ask(void *arg)
{
	struct slot *sl = &slots[(long)arg];
	long i;

	for (i = 0; i < rounds; i++) {
		memset(sl->req, 'q', sizeof(sl->req));
		atomic_store(&sl->state, 1);
		futex_wake(&sl->state);
		shm_await(&sl->state, 2);
	}
	atomic_store(&sl->state, 3);
	futex_wake(&sl->state);
	return NULL;
}

static void *
ask(void *arg)
{
	int fd = (int)(long)arg;
	char req[REQ_LEN], rep[REP_LEN];
	long i;

	memset(req, 'q', sizeof(req));
	for (i = 0; i < rounds; i++)
		if (xfer(fd, req, sizeof(req), 1) != 0 ||
		    xfer(fd, rep, sizeof(rep), 0) != 0) {
			fprintf(stderr, "handoff: the answering side went "
			    "away\n");
			exit(1);
		}
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *mode = "proc";
	long pairs = 1;
	pthread_t asker[MAX_PAIRS], answerer[MAX_PAIRS];
	int sv[MAX_PAIRS][2];
	pid_t child = -1;
	double t0, t1, c0, c1;
	long i;
	int o;

	while ((o = getopt(argc, argv, "m:p:n:w:h")) != -1) {
		switch (o) {
		case 'm': mode = optarg; break;
		case 'p': pairs = strtol(optarg, NULL, 10); break;
		case 'n': rounds = strtol(optarg, NULL, 10); break;
		case 'w': work_us = strtol(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: handoff [-m proc|thread|shm] "
			    "[-p PAIRS] [-n ROUNDS] [-w WORK_US]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	if ((strcmp(mode, "proc") != 0 && strcmp(mode, "thread") != 0 &&
	    strcmp(mode, "shm") != 0) ||
	    pairs < 1 || pairs > MAX_PAIRS || rounds < 1 || work_us < 0) {
		fprintf(stderr, "handoff: -m is proc, thread or shm, -p 1..%d, "
		    "-n and -w positive\n", MAX_PAIRS);
		return 2;
	}
	for (i = 0; i < pairs; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		    sv[i]) != 0) {
			perror("handoff: socketpair");
			return 1;
		}
	slots = mmap(NULL, sizeof(*slots) * MAX_PAIRS, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED) {
		perror("handoff: mmap");
		return 1;
	}
	c0 = cpu_s(RUSAGE_SELF);
	t0 = now_s();
	if (strcmp(mode, "shm") == 0) {
		if ((child = fork()) < 0) {
			perror("handoff: fork");
			return 1;
		}
		if (child == 0) {
			for (i = 0; i < pairs; i++)
				pthread_create(&answerer[i], NULL, shm_answer,
				    (void *)i);
			for (i = 0; i < pairs; i++)
				pthread_join(answerer[i], NULL);
			_exit(0);
		}
		for (i = 0; i < pairs; i++)
			pthread_create(&asker[i], NULL, shm_ask, (void *)i);
		for (i = 0; i < pairs; i++)
			pthread_join(asker[i], NULL);
	} else if (strcmp(mode, "proc") == 0) {
		if ((child = fork()) < 0) {
			perror("handoff: fork");
			return 1;
		}
		if (child == 0) {
			for (i = 0; i < pairs; i++) {
				close(sv[i][0]);
				pthread_create(&answerer[i], NULL, answer,
				    (void *)(long)sv[i][1]);
			}
			for (i = 0; i < pairs; i++)
				pthread_join(answerer[i], NULL);
			_exit(0);
		}
		for (i = 0; i < pairs; i++)
			close(sv[i][1]);
	} else {
		for (i = 0; i < pairs; i++)
			pthread_create(&answerer[i], NULL, answer,
			    (void *)(long)sv[i][1]);
	}
	if (strcmp(mode, "shm") != 0) {
		for (i = 0; i < pairs; i++)
			pthread_create(&asker[i], NULL, ask,
			    (void *)(long)sv[i][0]);
		for (i = 0; i < pairs; i++) {
			pthread_join(asker[i], NULL);
			close(sv[i][0]);
		}
	}
	if (child > 0) {
		if (waitpid(child, NULL, 0) != child) {
			perror("handoff: waitpid");
			return 1;
		}
	} else {
		for (i = 0; i < pairs; i++)
			pthread_join(answerer[i], NULL);
	}
	t1 = now_s();
	c1 = cpu_s(RUSAGE_SELF) + cpu_s(RUSAGE_CHILDREN);
	printf("| %s | %ld | %ld | %.0f | %.1f | %.1f |\n", mode, pairs,
	    work_us, (double)(rounds * pairs) / (t1 - t0),
	    (c1 - c0) * 1e6 / (double)(rounds * pairs),
	    (c1 - c0) * 1e6 / (double)(rounds * pairs) - (double)work_us);
	return 0;
}
