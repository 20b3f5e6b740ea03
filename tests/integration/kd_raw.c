/*
 * kd_raw: a raw protocol client for keyd's integration tests. It speaks
 * the wire format directly (not through libkeyd) so that tests can send
 * what a well-behaved client never would: truncated, oversized and garbage
 * frames, unknown operations, pipelined bursts.
 *
 * usage: kd_raw SOCKET SCENARIO [ARGS]; exit 0 when the daemon behaved as
 * the scenario expects, 1 (with a line on stderr) otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "keyd_err.h"

#define RAW_TIMEOUT_MS 10000
/* The hostile-client scenarios (hostile.sh). */
#define RAW_MAX_CONNS 4096
#define RAW_SCM_FDS 16          /* descriptors passed with each frame */
/* The flood scenario (flood.sh): requests pipelined per round. */
#define RAW_STORM_BATCH 32

static const char *sock_path;

static int
xconnect(void)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "kd_raw: connect %s: %s\n", sock_path,
		    strerror(errno));
		exit(1);
	}
	return fd;
}

static void
xwrite(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "kd_raw: write: %s\n", strerror(errno));
			exit(1);
		}
		b += w;
		n -= (size_t)w;
	}
}

/* Reads one reply; NULL on EOF (connection closed by the daemon). */
static Keyd__V1__Response *
read_reply(int fd)
{
	static struct kbuf in;
	static int init;
	Keyd__V1__Response *resp;
	const uint8_t *body;
	size_t len;
	uint8_t *p;
	ssize_t n;
	int r;

	if (!init) {
		kbuf_init(&in, FRAME_MAX_CEILING * 2, 0);
		init = 1;
	}
	for (;;) {
		r = frame_next(&in, FRAME_MAX_CEILING, &body, &len);
		if (r == KEYD_OK) {
			if (frame_unpack_response(body, len, &resp) != KEYD_OK) {
				fprintf(stderr, "kd_raw: bad reply\n");
				exit(1);
			}
			kbuf_compact(&in);
			return resp;
		}
		if (r != KEYD_ERR_AGAIN) {
			fprintf(stderr, "kd_raw: bad reply frame\n");
			exit(1);
		}
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, RAW_TIMEOUT_MS) != 1) {
			fprintf(stderr, "kd_raw: no reply within %d ms\n",
			    RAW_TIMEOUT_MS);
			exit(1);
		}
		if (kbuf_reserve(&in, 4096, &p) != KEYD_OK)
			exit(1);
		n = recv(fd, p, 4096, 0);
		kbuf_unreserve(&in, n > 0 ? 4096 - (size_t)n : 4096);
		if (n <= 0) {
			kbuf_reset(&in);
			return NULL;
		}
	}
}

static void
send_req(int fd, Keyd__V1__Request *req)
{
	struct kbuf out;

	kbuf_init(&out, FRAME_MAX_CEILING + 4, 0);
	if (frame_put_msg(&out, &req->base, FRAME_MAX_CEILING) != KEYD_OK)
		exit(1);
	xwrite(fd, kbuf_ptr(&out), kbuf_avail(&out));
	kbuf_free(&out);
}

static void
hello(int fd)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
	Keyd__V1__Response *r;

	h.protocol_version = 1;
	req.id = 1;
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	send_req(fd, &req);
	r = read_reply(fd);
	if (r == NULL || r->error != 0 || r->id != 1) {
		fprintf(stderr, "kd_raw: hello failed: %s\n",
		    r ? r->message : "connection closed");
		exit(1);
	}
	frame_free_response(r);
}

static void
sign_req(int fd, uint64_t id, const char *key, int alg, const uint8_t *d,
    size_t n)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;

	s.key = (char *)key;
	s.alg = (Keyd__V1__SignAlg)alg;
	s.data.data = (uint8_t *)d;
	s.data.len = n;
	req.id = id;
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &s;
	send_req(fd, &req);
}

static int
fail(const char *what)
{
	fprintf(stderr, "kd_raw: %s\n", what);
	return 1;
}

/* The daemon must still serve a fresh, well-behaved connection. */
static int
still_serving(void)
{
	int fd = xconnect();

	hello(fd);
	close(fd);
	return 0;
}

/* Expects an error reply with code want, then the connection closed. */
static int
expect_error_then_close(int fd, int want)
{
	Keyd__V1__Response *r = read_reply(fd);

	if (r == NULL)
		return fail("connection closed without an error reply");
	if (r->error != want) {
		fprintf(stderr, "kd_raw: got error %d (%s), want %d\n",
		    r->error, r->message, want);
		return 1;
	}
	printf("error %d: %s\n", r->error, r->message);
	frame_free_response(r);
	if (read_reply(fd) != NULL)
		return fail("connection not closed after the error");
	return 0;
}

static int
parse_hex(const char *s, uint8_t *out, size_t max, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = len / 2;
	return 0;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection whose connect() gives up after RAW_TIMEOUT_MS (a blocking
 * connect to a listener whose backlog is full waits for room); -1 if it
 * could not connect. */
static int
connect_timed(void)
{
	struct timeval tv = { RAW_TIMEOUT_MS / 1000, 0 };
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "kd_raw: connect %s: %s\n", sock_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The frame of an ECDSA sign request, in out (initialized here). */
static void
sign_frame(struct kbuf *out, uint64_t id, const char *key)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
	uint8_t dg[32];

	memset(dg, (int)(id & 0xff), sizeof(dg));
	s.key = (char *)(uintptr_t)key;
	s.alg = KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA;
	s.data.data = dg;
	s.data.len = sizeof(dg);
	req.id = id;
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &s;
	kbuf_init(out, FRAME_MAX_CEILING + 4, 0);
	if (frame_put_msg(out, &req.base, FRAME_MAX_CEILING) != KEYD_OK)
		exit(1);
}

/* 0 if r is a successful signature for request id. */
static int
check_signed(Keyd__V1__Response *r, uint64_t id)
{
	if (r == NULL)
		return fail("connection closed before the reply");
	if (r->error != 0 || r->id != id ||
	    r->result_case != KEYD__V1__RESPONSE__RESULT_SIGN ||
	    r->sign == NULL || r->sign->signature.len < 8) {
		fprintf(stderr, "kd_raw: reply id %llu error %d (%s), want a "
		    "signature for id %llu\n", (unsigned long long)r->id,
		    r->error, r->message, (unsigned long long)id);
		return 1;
	}
	frame_free_response(r);
	return 0;
}

/*
 * The well-behaved client of hostile.sh: for SECONDS, a fresh connection
 * each round (so that accepting is tested too) says hello and has one
 * digest signed; every round must finish within MAX_MS. With "keep", one
 * connection made at the start serves every round instead (a server that
 * holds its connection to keyd). Prints the number of rounds and the
 * slowest.
 */
static int
scenario_live(const char *key, int seconds, long max_ms, int keep)
{
	long start = now_ms(), t0, dt, slowest = 0;
	struct kbuf out;
	int n = 0, fd = -1;

	while (now_ms() - start < (long)seconds * 1000) {
		t0 = now_ms();
		if (fd < 0) {
			if ((fd = connect_timed()) < 0)
				return fail("the well-behaved client cannot "
				    "connect");
			hello(fd);
		}
		sign_frame(&out, 2, key);
		xwrite(fd, kbuf_ptr(&out), kbuf_avail(&out));
		kbuf_free(&out);
		if (check_signed(read_reply(fd), 2))
			return 1;
		if (!keep) {
			close(fd);
			fd = -1;
		}
		dt = now_ms() - t0;
		if (dt > slowest)
			slowest = dt;
		if (dt > max_ms) {
			fprintf(stderr, "kd_raw: round %d took %ld ms (bound "
			    "%ld ms)\n", n + 1, dt, max_ms);
			return 1;
		}
		n++;
		usleep(50000);
	}
	printf("%d rounds, slowest %ld ms\n", n, slowest);
	return n > 0 ? 0 : fail("no round completed");
}

/*
 * Slowloris: N connections, each sent one byte of a hello frame a second.
 * Trickling bytes must not keep a connection alive: the daemon must close
 * every one, without a reply, within MAX_S seconds. Prints when the last
 * was closed.
 */
static int
scenario_slowloris(int n, int max_s)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
	struct kbuf fr;
	struct pollfd *p;
	int *fds;
	size_t sent = 0;
	long start, last = 0;
	int open_n = n;

	if (n <= 0 || n > RAW_MAX_CONNS || max_s <= 0)
		return fail("usage: slowloris N MAX_S");
	h.protocol_version = 1;
	req.id = 1;
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	kbuf_init(&fr, 1024, 0);
	if (frame_put_msg(&fr, &req.base, 1024) != KEYD_OK ||
	    (fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		return 1;
	if ((p = calloc((size_t)n, sizeof(*p))) == NULL)
		return 1;
	for (int i = 0; i < n; i++)
		fds[i] = xconnect();
	start = now_ms();
	while (open_n > 0 && now_ms() - start < (long)max_s * 1000) {
		/* One byte on each open connection; the frame is never
		 * finished (a closed connection is seen by poll below). */
		if (sent + 1 < kbuf_avail(&fr)) {
			for (int i = 0; i < n; i++)
				if (fds[i] >= 0)
					(void)send(fds[i], kbuf_ptr(&fr) + sent,
					    1, MSG_NOSIGNAL | MSG_DONTWAIT);
			sent++;
		}
		/* A second of watching for the daemon's close. */
		for (long t = now_ms(); now_ms() - t < 1000 && open_n > 0;) {
			for (int i = 0; i < n; i++) {
				p[i].fd = fds[i];
				p[i].events = POLLIN;
				p[i].revents = 0;
			}
			(void)poll(p, (nfds_t)n, 100);
			for (int i = 0; i < n; i++) {
				uint8_t b;

				if (fds[i] < 0 || p[i].revents == 0)
					continue;
				if (recv(fds[i], &b, 1, MSG_DONTWAIT) > 0)
					return fail("the daemon replied to an "
					    "unfinished frame");
				close(fds[i]);
				fds[i] = -1;
				open_n--;
				last = now_ms() - start;
			}
		}
	}
	free(p);
	kbuf_free(&fr);
	free(fds);
	if (open_n > 0) {
		fprintf(stderr, "kd_raw: %d of %d slowloris connections still "
		    "open after %d s\n", open_n, n, max_s);
		return 1;
	}
	printf("%d slowloris connections closed, the last after %ld ms\n", n,
	    last);
	return 0;
}

/*
 * Clients that never read their replies: CONNS connections, each written
 * up to N pipelined sign requests (non-blocking, in writes of up to 64 KiB)
 * until the daemon stops taking them (no progress for half a second), then
 * held for HOLD_S seconds without reading a byte, then closed. Prints how
 * many requests went out; fails if the daemon read all N of any
 * connection (then it did not stop reading).
 */
static int
scenario_noread(int conns, int n, const char *key, int hold_s)
{
	struct kbuf fr, batch;
	size_t flen, blen;
	long total = 0, *done, *last, all;
	int *fds, busy;

	if (conns <= 0 || conns > RAW_MAX_CONNS || n <= 0 || n > 1000000)
		return fail("usage: noread CONNS N KEY HOLD_S");
	fds = calloc((size_t)conns, sizeof(*fds));
	done = calloc((size_t)conns, sizeof(*done));
	last = calloc((size_t)conns, sizeof(*last));
	if (fds == NULL || done == NULL || last == NULL)
		return 1;
	sign_frame(&fr, 1, key);
	flen = kbuf_avail(&fr);
	all = (long)flen * n;
	/* The stream each connection sends is this batch over and over. */
	kbuf_init(&batch, 64 * 1024, 0);
	while (kbuf_avail(&batch) + flen <= 64 * 1024)
		if (kbuf_put(&batch, kbuf_ptr(&fr), flen) != KEYD_OK)
			return 1;
	blen = kbuf_avail(&batch);
	for (int c = 0; c < conns; c++) {
		fds[c] = xconnect();
		(void)fcntl(fds[c], F_SETFL, O_NONBLOCK);
		last[c] = now_ms();
	}
	do {
		busy = 0;
		for (int c = 0; c < conns; c++) {
			size_t off = (size_t)(done[c] % (long)blen), len;
			ssize_t w;

			if (fds[c] < 0 || done[c] >= all ||
			    now_ms() - last[c] > 500)
				continue;
			busy = 1;
			len = blen - off;
			if ((long)len > all - done[c])
				len = (size_t)(all - done[c]);
			w = send(fds[c], kbuf_ptr(&batch) + off, len,
			    MSG_NOSIGNAL);
			if (w > 0) {
				done[c] += w;
				last[c] = now_ms();
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				return fail("send failed: the daemon closed a "
				    "client that sent valid requests");
			}
		}
		if (busy)
			usleep(1000);
	} while (busy);
	for (int c = 0; c < conns; c++) {
		if (done[c] >= all) {
			fprintf(stderr, "kd_raw: the daemon read all %d "
			    "requests of a client that reads no reply\n", n);
			return 1;
		}
		total += done[c] / (long)flen;
	}
	printf("%ld requests sent on %d connections, no reply read; the "
	    "daemon stopped reading each\n", total, conns);
	fflush(stdout);
	sleep((unsigned)hold_s);
	for (int c = 0; c < conns; c++)
		close(fds[c]);
	kbuf_free(&fr);
	kbuf_free(&batch);
	free(fds);
	free(done);
	free(last);
	return 0;
}

/*
 * Many connections at once: N non-blocking connects (those refused
 * because the daemon's backlog is full are counted, not retried), each
 * sent a hello frame that is never read, held HOLD_S seconds, closed.
 */
static int
scenario_conns(int n, int hold_s)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
	struct sockaddr_un sa;
	struct kbuf fr;
	int *fds, up = 0, refused = 0;

	if (n <= 0 || n > RAW_MAX_CONNS || hold_s < 0)
		return fail("usage: conns N HOLD_S");
	h.protocol_version = 1;
	req.id = 1;
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	kbuf_init(&fr, 1024, 0);
	if (frame_put_msg(&fr, &req.base, 1024) != KEYD_OK ||
	    (fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (fds[i] < 0) {
			fprintf(stderr, "kd_raw: socket: %s (raise this "
			    "process's file limit)\n", strerror(errno));
			return 1;
		}
		if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			if (errno != EAGAIN) {
				fprintf(stderr, "kd_raw: connect: %s\n",
				    strerror(errno));
				return 1;
			}
			close(fds[i]);
			fds[i] = -1;
			refused++;
			continue;
		}
		(void)send(fds[i], kbuf_ptr(&fr), kbuf_avail(&fr),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		up++;
	}
	printf("%d connected, %d refused (backlog full)\n", up, refused);
	fflush(stdout);
	sleep((unsigned)hold_s);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	kbuf_free(&fr);
	free(fds);
	return 0;
}

/* 1 once the write end of the pipe whose read end is fd is closed
 * everywhere (EOF), 0 if it is still open after ms. */
static int
pipe_released(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint8_t b;

	return poll(&p, 1, ms) == 1 && read(fd, &b, 1) == 0;
}

/*
 * File descriptors passed to the daemon (SCM_RIGHTS): ROUNDS times, a sign
 * request sent with RAW_SCM_FDS descriptors attached (write ends of pipes,
 * whose own copies are closed here at once). The daemon must answer each
 * request and hold none of the descriptors: each pipe's read end sees EOF
 * once the daemon has read the frame, which proves that the last copy of
 * the write end is gone. Half the rounds attach the descriptors to the
 * frame's first byte only, the rest of the frame following in a plain
 * write.
 */
static int
scenario_scm(const char *key, int rounds)
{
	int fd = xconnect();

	if (rounds <= 0 || rounds > 100000)
		return fail("usage: scm KEY ROUNDS");
	hello(fd);
	for (int i = 1; i <= rounds; i++) {
		union {
			char buf[CMSG_SPACE(RAW_SCM_FDS * sizeof(int))];
			struct cmsghdr align;
		} u;
		int rd[RAW_SCM_FDS], wr[RAW_SCM_FDS], split = i % 2 == 0;
		struct msghdr m;
		struct iovec iov;
		struct cmsghdr *cm;
		struct kbuf fr;

		for (int k = 0; k < RAW_SCM_FDS; k++) {
			int p[2];

			if (pipe2(p, O_CLOEXEC) != 0)
				return fail("pipe2 failed");
			rd[k] = p[0];
			wr[k] = p[1];
		}
		sign_frame(&fr, (uint64_t)i, key);
		memset(&m, 0, sizeof(m));
		memset(&u, 0, sizeof(u));
		iov.iov_base = (void *)(uintptr_t)kbuf_ptr(&fr);
		iov.iov_len = split ? 1 : kbuf_avail(&fr);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(wr));
		memcpy(CMSG_DATA(cm), wr, sizeof(wr));
		if (sendmsg(fd, &m, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
			return fail("sendmsg with SCM_RIGHTS failed");
		for (int k = 0; k < RAW_SCM_FDS; k++)
			close(wr[k]);
		if (split)
			xwrite(fd, kbuf_ptr(&fr) + 1, kbuf_avail(&fr) - 1);
		kbuf_free(&fr);
		if (check_signed(read_reply(fd), (uint64_t)i))
			return 1;
		for (int k = 0; k < RAW_SCM_FDS; k++) {
			if (!pipe_released(rd[k], 2000)) {
				fprintf(stderr, "kd_raw: round %d: a descriptor "
				    "passed to the daemon is still open 2 s "
				    "after its reply\n", i);
				return 1;
			}
			close(rd[k]);
		}
	}
	printf("%d requests with %d descriptors each answered; every "
	    "descriptor released\n", rounds, RAW_SCM_FDS);
	close(fd);
	return still_serving();
}

/*
 * Frames in 1-byte writes on many connections at once: CONNS connections,
 * each sent one sign request a byte at a time, the connections' bytes
 * interleaved; each must be answered.
 */
static int
scenario_split_many(const char *key, int conns)
{
	struct kbuf fr;
	int *fds;

	if (conns <= 0 || conns > RAW_MAX_CONNS)
		return fail("usage: split-many KEY CONNS");
	if ((fds = calloc((size_t)conns, sizeof(*fds))) == NULL)
		return 1;
	sign_frame(&fr, 4, key);
	for (int c = 0; c < conns; c++)
		fds[c] = xconnect();
	for (size_t i = 0; i < kbuf_avail(&fr); i++) {
		for (int c = 0; c < conns; c++)
			xwrite(fds[c], kbuf_ptr(&fr) + i, 1);
		usleep(1000);
	}
	for (int c = 0; c < conns; c++) {
		if (check_signed(read_reply(fds[c]), 4))
			return 1;
		close(fds[c]);
	}
	printf("%d requests in 1-byte writes answered\n", conns);
	kbuf_free(&fr);
	free(fds);
	return 0;
}

/* A hello request frame with the given id, in out (initialized here). */
static void
hello_frame(struct kbuf *out, uint64_t id)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;

	h.protocol_version = 1;
	req.id = id;
	req.op_case = KEYD__V1__REQUEST__OP_HELLO;
	req.hello = &h;
	kbuf_init(out, 1024, 0);
	if (frame_put_msg(out, &req.base, 1024) != KEYD_OK)
		exit(1);
}

/* Counts one reply of a storm: ok, rate-limited, or (with want set) the
 * error that kind of frame must get. 1 if the reply is none of these. */
static int
storm_count(Keyd__V1__Response *r, int want, long *ok, long *limited,
    long *wanted)
{
	if (r == NULL)
		return fail("the daemon closed a storm connection early");
	if (r->error == 0 && want == 0)
		(*ok)++;
	else if (r->error == KEYD_ERR_RATE_LIMITED)
		(*limited)++;
	else if (want != 0 && r->error == want)
		(*wanted)++;
	else {
		fprintf(stderr, "kd_raw: storm reply error %d (%s)\n",
		    r->error, r->message);
		frame_free_response(r);
		return 1;
	}
	frame_free_response(r);
	return 0;
}

/*
 * One kind of frame as fast as the daemon takes it, for SECONDS (flood.sh):
 *   hello      hellos, RAW_STORM_BATCH pipelined at a time on one
 *              connection; each answered (ok or rate-limited)
 *   sign KEY   the same with ECDSA sign requests
 *   garbage    a connection per frame, each one frame that does not
 *              decode: KEYD_ERR_PROTOCOL (or rate-limited), then closed
 *   oversized  a connection per frame, a length over max_frame:
 *              KEYD_ERR_FRAME_TOO_LARGE (or rate-limited), then closed
 *   reconnect  connect and close at once, and connect, hello, close, in
 *              turn
 * Prints what was sent and how it was answered.
 */
static int
scenario_storm(const char *kind, int seconds, const char *key)
{
	static const uint8_t garbage[] = { 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0xff };
	static const uint8_t oversized[] = { 0x7f, 0xff, 0xff, 0xff };
	long start = now_ms(), frames = 0, conns = 0, ok = 0, limited = 0,
	    wanted = 0;
	struct kbuf batch, fr;
	int fd;

	if (seconds <= 0 || seconds > 600)
		return fail("usage: storm KIND SECONDS [KEY]");
	if (!strcmp(kind, "hello") || !strcmp(kind, "sign")) {
		if (!strcmp(kind, "sign") && key == NULL)
			return fail("usage: storm sign SECONDS KEY");
		kbuf_init(&batch, 64 * 1024, 0);
		for (int i = 1; i <= RAW_STORM_BATCH; i++) {
			if (key != NULL && !strcmp(kind, "sign"))
				sign_frame(&fr, (uint64_t)i, key);
			else
				hello_frame(&fr, (uint64_t)i);
			if (kbuf_put(&batch, kbuf_ptr(&fr), kbuf_avail(&fr)) !=
			    KEYD_OK)
				return 1;
			kbuf_free(&fr);
		}
		fd = xconnect();
		conns++;
		while (now_ms() - start < (long)seconds * 1000) {
			xwrite(fd, kbuf_ptr(&batch), kbuf_avail(&batch));
			for (int i = 0; i < RAW_STORM_BATCH; i++)
				if (storm_count(read_reply(fd), 0, &ok,
				    &limited, &wanted))
					return 1;
			frames += RAW_STORM_BATCH;
		}
		close(fd);
		kbuf_free(&batch);
	} else if (!strcmp(kind, "garbage") || !strcmp(kind, "oversized")) {
		int g = !strcmp(kind, "garbage");

		while (now_ms() - start < (long)seconds * 1000) {
			fd = xconnect();
			conns++;
			xwrite(fd, g ? garbage : oversized, g ? sizeof(garbage) :
			    sizeof(oversized));
			frames++;
			if (storm_count(read_reply(fd), g ? KEYD_ERR_PROTOCOL :
			    KEYD_ERR_FRAME_TOO_LARGE, &ok, &limited, &wanted))
				return 1;
			if (read_reply(fd) != NULL)
				return fail("a connection stayed open after a "
				    "frame it could not read");
			close(fd);
		}
	} else if (!strcmp(kind, "reconnect")) {
		hello_frame(&fr, 1);
		while (now_ms() - start < (long)seconds * 1000) {
			fd = xconnect();
			if (conns++ % 2 == 1) {
				xwrite(fd, kbuf_ptr(&fr), kbuf_avail(&fr));
				frames++;
				if (storm_count(read_reply(fd), 0, &ok,
				    &limited, &wanted))
					return 1;
			}
			close(fd);
		}
		kbuf_free(&fr);
	} else {
		return fail("storm: KIND is hello, sign, garbage, oversized or "
		    "reconnect");
	}
	printf("storm %s: %ld frames on %ld connections in %ld ms: %ld ok, "
	    "%ld rate-limited, %ld refused as malformed\n", kind, frames,
	    conns, now_ms() - start, ok, limited, wanted);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sc;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: kd_raw SOCKET SCENARIO [ARGS]\n");
		return 2;
	}
	sock_path = argv[1];
	sc = argv[2];

	if (!strcmp(sc, "hello")) {
		fd = xconnect();
		hello(fd);
		return 0;
	}
	if (!strcmp(sc, "truncated")) {
		/* A header announcing 100 bytes, 10 bytes, then EOF. */
		uint8_t b[14] = { 0, 0, 0, 100 };

		fd = xconnect();
		xwrite(fd, b, sizeof(b));
		shutdown(fd, SHUT_WR);
		if (read_reply(fd) != NULL)
			return fail("a reply to a truncated frame");
		close(fd);
		return still_serving();
	}
	if (!strcmp(sc, "oversized")) {
		/* kd_raw SOCK oversized [LEN]: a header announcing LEN
		 * (default 0x7fffffff) bytes, and no body. */
		uint32_t n = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 0) :
		    0x7fffffffu;
		uint8_t b[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16),
		    (uint8_t)(n >> 8), (uint8_t)n };

		fd = xconnect();
		xwrite(fd, b, sizeof(b));
		if (expect_error_then_close(fd, KEYD_ERR_FRAME_TOO_LARGE))
			return 1;
		return still_serving();
	}
	if (!strcmp(sc, "garbage")) {
		/* kd_raw SOCK garbage [LEN]: a frame of LEN (default 64)
		 * 0xff bytes. */
		uint32_t n = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 0) : 64;
		uint8_t *b;

		if (n > FRAME_MAX_CEILING || (b = malloc(4 + (size_t)n)) == NULL)
			return fail("usage: garbage [LEN up to 1 MiB]");
		b[0] = (uint8_t)(n >> 24);
		b[1] = (uint8_t)(n >> 16);
		b[2] = (uint8_t)(n >> 8);
		b[3] = (uint8_t)n;
		memset(b + 4, 0xff, n);
		fd = xconnect();
		xwrite(fd, b, 4 + (size_t)n);
		free(b);
		if (expect_error_then_close(fd, KEYD_ERR_PROTOCOL))
			return 1;
		return still_serving();
	}
	if (!strcmp(sc, "unknown-op")) {
		/* field 99, varint 1: a Request with an op this daemon does
		 * not know; the connection stays usable. */
		uint8_t b[] = { 0, 0, 0, 5, 0x08, 0x07, 0x98, 0x06, 0x01 };
		Keyd__V1__Response *r;

		fd = xconnect();
		xwrite(fd, b, sizeof(b));
		r = read_reply(fd);
		if (r == NULL || r->error != KEYD_ERR_UNKNOWN_OP || r->id != 7)
			return fail("no UNKNOWN_OP reply with id 7");
		printf("error %d: %s\n", r->error, r->message);
		frame_free_response(r);
		hello(fd);
		return 0;
	}
	if (!strcmp(sc, "split")) {
		/* A hello written one byte at a time. */
		Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
		Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
		struct kbuf out;
		Keyd__V1__Response *r;

		h.protocol_version = 1;
		req.id = 9;
		req.op_case = KEYD__V1__REQUEST__OP_HELLO;
		req.hello = &h;
		kbuf_init(&out, 1024, 0);
		if (frame_put_msg(&out, &req.base, 1024) != KEYD_OK)
			return 1;
		fd = xconnect();
		for (size_t i = 0; i < kbuf_avail(&out); i++) {
			xwrite(fd, kbuf_ptr(&out) + i, 1);
			usleep(2000);
		}
		r = read_reply(fd);
		if (r == NULL || r->error != 0 || r->id != 9)
			return fail("no reply to a frame split in 1-byte writes");
		frame_free_response(r);
		kbuf_free(&out);
		return 0;
	}
	if (!strcmp(sc, "disconnect")) {
		/* Sign requests sent, connection closed before the replies. */
		uint8_t dg[32] = { 1 };

		for (int i = 0; i < 20; i++) {
			fd = xconnect();
			sign_req(fd, 1, argc > 3 ? argv[3] : "x", 1, dg,
			    sizeof(dg));
			close(fd);
		}
		return still_serving();
	}
	if (!strcmp(sc, "pipeline")) {
		/* kd_raw SOCK pipeline N KEY: N ECDSA requests written before
		 * any reply is read; every id must come back once, signed. */
		int n = argc > 3 ? atoi(argv[3]) : 100;
		uint8_t dg[32], *seen;
		Keyd__V1__Response *r;

		if (argc < 5 || n <= 0 || n > 100000)
			return fail("usage: pipeline N KEY");
		seen = calloc((size_t)n + 1, 1);
		fd = xconnect();
		for (int i = 1; i <= n; i++) {
			memset(dg, i & 0xff, sizeof(dg));
			sign_req(fd, (uint64_t)i, argv[4], 1, dg, sizeof(dg));
		}
		for (int i = 1; i <= n; i++) {
			r = read_reply(fd);
			if (r == NULL)
				return fail("connection closed mid-pipeline");
			if (r->error != 0 || r->id == 0 || r->id > (uint64_t)n ||
			    seen[r->id] || r->result_case !=
			    KEYD__V1__RESPONSE__RESULT_SIGN) {
				fprintf(stderr, "kd_raw: reply id %llu error %d "
				    "%s\n", (unsigned long long)r->id,
				    r->error, r->message);
				return 1;
			}
			seen[r->id] = 1;
			frame_free_response(r);
		}
		printf("%d pipelined replies\n", n);
		free(seen);
		return 0;
	}
	if (!strcmp(sc, "sign")) {
		/* kd_raw SOCK sign KEY ALG HEX [WANT_ERROR] */
		uint8_t d[20000];
		size_t n = 0;
		int want = argc > 6 ? atoi(argv[6]) : 0;
		Keyd__V1__Response *r;

		if (argc < 6 || parse_hex(argv[5], d, sizeof(d), &n) != 0)
			return fail("usage: sign KEY ALG HEX [WANT_ERROR]");
		fd = xconnect();
		sign_req(fd, 5, argv[3], atoi(argv[4]), d, n);
		r = read_reply(fd);
		if (r == NULL)
			return fail("connection closed");
		printf("error %d: %s\n", r->error, r->message);
		if (r->error != want) {
			fprintf(stderr, "kd_raw: got error %d, want %d\n",
			    r->error, want);
			return 1;
		}
		frame_free_response(r);
		hello(fd);   /* the connection stays usable */
		return 0;
	}
	if (!strcmp(sc, "burst")) {
		/* kd_raw SOCK burst KEY N: N signs pipelined on one
		 * connection; prints each reply's error code, in id order. */
		int n = argc > 4 ? atoi(argv[4]) : 0;
		uint8_t dg[32] = { 3 };
		int *codes;
		Keyd__V1__Response *r;

		if (n <= 0 || n > 10000)
			return fail("usage: burst KEY N");
		codes = calloc((size_t)n + 1, sizeof(*codes));
		fd = xconnect();
		for (int i = 1; i <= n; i++)
			sign_req(fd, (uint64_t)i, argv[3], 1, dg, sizeof(dg));
		for (int i = 1; i <= n; i++) {
			if ((r = read_reply(fd)) == NULL || r->id == 0 ||
			    r->id > (uint64_t)n)
				return fail("bad or missing reply in burst");
			codes[r->id] = r->error;
			frame_free_response(r);
		}
		for (int i = 1; i <= n; i++)
			printf("%d\n", codes[i]);
		free(codes);
		return 0;
	}
	if (!strcmp(sc, "hold")) {
		/* kd_raw SOCK hold N: N connections that said hello, held
		 * open until killed. */
		int n = argc > 3 ? atoi(argv[3]) : 1;

		for (int i = 0; i < n; i++)
			hello(xconnect());
		printf("held %d\n", n);
		fflush(stdout);
		pause();
		return 0;
	}
	if (!strcmp(sc, "denied")) {
		/* The daemon closes an unknown peer without a byte. */
		uint8_t b;

		fd = xconnect();
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, RAW_TIMEOUT_MS) != 1)
			return fail("not closed");
		if (recv(fd, &b, 1, 0) != 0)
			return fail("the daemon sent bytes to an unknown peer");
		return 0;
	}
	if (!strcmp(sc, "empty")) {
		/* A zero-length frame is a Request with no operation: an
		 * UNKNOWN_OP reply, and the connection stays usable. */
		uint8_t b[4] = { 0, 0, 0, 0 };
		Keyd__V1__Response *r;

		fd = xconnect();
		xwrite(fd, b, sizeof(b));
		r = read_reply(fd);
		if (r == NULL || r->error != KEYD_ERR_UNKNOWN_OP || r->id != 0)
			return fail("no UNKNOWN_OP reply to an empty frame");
		printf("error %d: %s\n", r->error, r->message);
		frame_free_response(r);
		hello(fd);
		return 0;
	}
	if (!strcmp(sc, "version")) {
		/* hello speaking protocol version 2: KEYD_ERR_VERSION, and
		 * a version-1 hello still works on the connection. */
		Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
		Keyd__V1__HelloRequest h = KEYD__V1__HELLO_REQUEST__INIT;
		Keyd__V1__Response *r;

		h.protocol_version = 2;
		req.id = 3;
		req.op_case = KEYD__V1__REQUEST__OP_HELLO;
		req.hello = &h;
		fd = xconnect();
		send_req(fd, &req);
		r = read_reply(fd);
		if (r == NULL || r->error != KEYD_ERR_VERSION || r->id != 3)
			return fail("no VERSION reply to protocol version 2");
		printf("error %d: %s\n", r->error, r->message);
		frame_free_response(r);
		hello(fd);
		return 0;
	}
	if (!strcmp(sc, "idle")) {
		/* kd_raw SOCK idle MAX_S: half a frame header, then silence.
		 * The daemon must close the connection (idle_timeout) within
		 * MAX_S seconds, sending nothing. */
		uint8_t b[2] = { 0, 0 }, c;
		int max_s = argc > 3 ? atoi(argv[3]) : 10;
		struct timespec t0, t1;
		struct pollfd pfd;
		ssize_t n;

		fd = xconnect();
		xwrite(fd, b, sizeof(b));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, max_s * 1000) != 1)
			return fail("an idle connection was not closed in time");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		n = recv(fd, &c, 1, 0);
		if (n > 0)
			return fail("the daemon sent bytes to an idle connection");
		printf("closed after %ld ms\n", (long)(t1.tv_sec - t0.tv_sec) *
		    1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		close(fd);
		return still_serving();
	}
	if (!strcmp(sc, "flood")) {
		/* kd_raw SOCK flood N KEY: N signs written without reading a
		 * reply (until the daemon stops taking them), then the
		 * connection closed. The daemon must not be stuck. */
		int n = argc > 3 ? atoi(argv[3]) : 0;
		struct timeval tv = { 2, 0 };
		uint8_t dg[32] = { 7 };
		struct kbuf out;
		int sent = 0;

		if (argc < 5 || n <= 0 || n > 1000000)
			return fail("usage: flood N KEY");
		fd = xconnect();
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		kbuf_init(&out, FRAME_MAX_CEILING, 0);
		for (int i = 1; i <= n; i++) {
			Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
			Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
			const uint8_t *p;
			size_t left;

			s.key = argv[4];
			s.alg = KEYD__V1__SIGN_ALG__SIGN_ALG_ECDSA;
			s.data.data = dg;
			s.data.len = sizeof(dg);
			req.id = (uint64_t)i;
			req.op_case = KEYD__V1__REQUEST__OP_SIGN;
			req.sign = &s;
			kbuf_reset(&out);
			if (frame_put_msg(&out, &req.base, FRAME_MAX_CEILING) !=
			    KEYD_OK)
				return 1;
			p = kbuf_ptr(&out);
			left = kbuf_avail(&out);
			while (left > 0) {
				ssize_t w = send(fd, p, left, MSG_NOSIGNAL);

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					break;
				p += w;
				left -= (size_t)w;
			}
			if (left > 0)
				break;   /* the daemon stopped reading */
			sent++;
		}
		kbuf_free(&out);
		close(fd);
		printf("%d requests sent, none read\n", sent);
		return still_serving();
	}
	if (!strcmp(sc, "live"))
		/* kd_raw SOCK live KEY SECONDS MAX_MS [keep] */
		return argc < 6 ? fail("usage: live KEY SECONDS MAX_MS [keep]") :
		    scenario_live(argv[3], atoi(argv[4]), atol(argv[5]),
		    argc > 6 && !strcmp(argv[6], "keep"));
	if (!strcmp(sc, "slowloris"))
		/* kd_raw SOCK slowloris N MAX_S */
		return argc < 5 ? fail("usage: slowloris N MAX_S") :
		    scenario_slowloris(atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(sc, "noread"))
		/* kd_raw SOCK noread CONNS N KEY HOLD_S */
		return argc < 7 ? fail("usage: noread CONNS N KEY HOLD_S") :
		    scenario_noread(atoi(argv[3]), atoi(argv[4]), argv[5],
		    atoi(argv[6]));
	if (!strcmp(sc, "conns"))
		/* kd_raw SOCK conns N HOLD_S */
		return argc < 5 ? fail("usage: conns N HOLD_S") :
		    scenario_conns(atoi(argv[3]), atoi(argv[4]));
	if (!strcmp(sc, "scm"))
		/* kd_raw SOCK scm KEY ROUNDS */
		return argc < 5 ? fail("usage: scm KEY ROUNDS") :
		    scenario_scm(argv[3], atoi(argv[4]));
	if (!strcmp(sc, "split-many"))
		/* kd_raw SOCK split-many KEY CONNS */
		return argc < 5 ? fail("usage: split-many KEY CONNS") :
		    scenario_split_many(argv[3], atoi(argv[4]));
	if (!strcmp(sc, "storm"))
		/* kd_raw SOCK storm KIND SECONDS [KEY] */
		return argc < 5 ? fail("usage: storm KIND SECONDS [KEY]") :
		    scenario_storm(argv[3], atoi(argv[4]),
		    argc > 5 ? argv[5] : NULL);
	fprintf(stderr, "kd_raw: unknown scenario %s\n", sc);
	return 2;
}
