/*
 * bench_util.h: the clock, CPU and socket helpers that handoff and pipeline
 * share. Header-only: each benchmark is one program of its own.
 */
#ifndef KEYD_BENCH_UTIL_H
#define KEYD_BENCH_UTIL_H

#include <errno.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of RUSAGE_SELF or RUSAGE_CHILDREN. */
static inline double
cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* All n bytes sent (sending) or received on a stream socket; -1 on EOF or
 * error. */
static inline int
xfer(int fd, void *buf, size_t n, int sending)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = sending ?
		    send(fd, (char *)buf + done, n - done, MSG_NOSIGNAL) :
		    recv(fd, (char *)buf + done, n - done, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* Burns us microseconds of this thread's CPU (a stand-in for work). */
static inline void
burn_us(long us)
{
	struct timespec a, b;

	if (us <= 0)
		return;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L +
	    (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

#endif
