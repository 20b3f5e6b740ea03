/* transport.c: connect to keyd, check who serves the socket, and move
 * frames within a deadline. */
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
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

/* Bytes asked of recv while the frame header is still unknown: a whole
 * typical reply then comes in one system call. */
#define TRANSPORT_RECV_CHUNK 4096u
/* Scratch space for getpwnam_r: start and ceiling. */
#define TRANSPORT_PW_BUF_MIN 1024u
#define TRANSPORT_PW_BUF_MAX (64u * 1024u)
/* Longest KEYD_DAEMON_USER accepted. */
#define TRANSPORT_USER_MAX 256u

int64_t
transport_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
remaining_ms(int64_t deadline)
{
	int64_t left = deadline - transport_now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* A uid written as decimal digits only; 0 on success. */
static int
parse_uid(const char *s, uid_t *uid)
{
	unsigned long long v = 0;
	const char *p;

	if (*s == '\0')
		return -1;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
		/* (uid_t)-1 is not a uid: it means "no change" to setreuid. */
		if (v >= (uid_t)-1)
			return -1;
	}
	*uid = (uid_t)v;
	return 0;
}

int
transport_daemon_uid(uid_t *uid, int *found, char *msg, size_t msglen)
{
	const char *name = secure_getenv("KEYD_DAEMON_USER");
	struct passwd pw, *res = NULL;
	size_t buflen = TRANSPORT_PW_BUF_MIN;
	char *buf = NULL;
	int named, e = 0, r = KEYD_OK;

	*found = 0;
	named = name != NULL && name[0] != '\0';
	if (!named)
		name = TRANSPORT_DAEMON_USER;
	if (strlen(name) > TRANSPORT_USER_MAX) {
		snprintf(msg, msglen, "KEYD_DAEMON_USER is longer than %u "
		    "bytes; set it to keyd's user name or uid",
		    TRANSPORT_USER_MAX);
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if (named && parse_uid(name, uid) == 0) {
		*found = 1;
		goto out;
	}
	for (;;) {
		if ((buf = malloc(buflen)) == NULL) {
			snprintf(msg, msglen, "out of memory looking up "
			    "user %s", name);
			r = KEYD_ERR_NOMEM;
			goto out;
		}
		e = getpwnam_r(name, &pw, buf, buflen, &res);
		if (e != ERANGE || buflen >= TRANSPORT_PW_BUF_MAX)
			break;
		free(buf);
		buf = NULL;
		buflen *= 2;
	}
	if (res != NULL) {
		*uid = pw.pw_uid;
		*found = 1;
	} else if (named) {
		snprintf(msg, msglen, "KEYD_DAEMON_USER names user '%s', "
		    "which does not exist%s%s; set it to keyd's user name "
		    "or uid", name, e != 0 ? ": " : "",
		    e != 0 ? strerror(e) : "");
		r = KEYD_ERR_CONFIG;
	}
out:
	free(buf);
	return r;
}

int
transport_check_peer(int fd, const char *path, char *msg, size_t msglen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uid_t duid = 0;
	int found = 0, r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    len != sizeof(cred)) {
		snprintf(msg, msglen, "cannot read the credentials of the "
		    "server of socket %s: %s", path, strerror(errno));
		return KEYD_ERR_IO;
	}
	if (cred.uid == 0)
		return KEYD_OK;
	if ((r = transport_daemon_uid(&duid, &found, msg, msglen)) != KEYD_OK)
		return r;
	if (found && cred.uid == duid)
		return KEYD_OK;
	/* Whoever planted this socket could answer with forged signatures
	 * or harvest what we send: refuse before writing a byte. */
	if (found)
		snprintf(msg, msglen, "socket %s is served by uid %u, not by "
		    "root or the keyd user (uid %u); refusing it (set "
		    "KEYD_DAEMON_USER if keyd runs as another user)", path,
		    (unsigned)cred.uid, (unsigned)duid);
	else
		snprintf(msg, msglen, "socket %s is served by uid %u, not by "
		    "root or the keyd user (there is no user '%s'); refusing "
		    "it (set KEYD_DAEMON_USER if keyd runs as another user)",
		    path, (unsigned)cred.uid, TRANSPORT_DAEMON_USER);
	return KEYD_ERR_PEER_UNTRUSTED;
}

int
transport_connect(const char *path, int64_t deadline, int *fdp, char *msg,
    size_t msglen)
{
	struct sockaddr_un sa;
	struct timeval tv;
	size_t plen = strlen(path);
	int fd = -1, left, e, r;

	*fdp = -1;
	if (plen == 0 || plen >= sizeof(sa.sun_path)) {
		snprintf(msg, msglen, "socket path '%s' is empty or longer "
		    "than %zu bytes", path, sizeof(sa.sun_path) - 1);
		r = KEYD_ERR_INVALID_ARG;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(msg, msglen, "cannot create a socket: %s",
		    strerror(errno));
		r = KEYD_ERR_IO;
		goto out;
	}
	/* A blocking connect waits while keyd's listen queue is full; Linux
	 * bounds that wait by SO_SNDTIMEO. Later I/O never blocks (poll). */
	if ((left = remaining_ms(deadline)) == 0) {
		snprintf(msg, msglen, "timed out before connecting to %s",
		    path);
		r = KEYD_ERR_TIMEOUT;
		goto out;
	}
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		switch (e) {
		case EAGAIN:
		case EINPROGRESS:
		case ETIMEDOUT:
			snprintf(msg, msglen, "timed out connecting to %s: "
			    "keyd is not accepting connections (overloaded?)",
			    path);
			r = KEYD_ERR_TIMEOUT;
			break;
		case ENOENT:
		case ECONNREFUSED:
			snprintf(msg, msglen, "cannot connect to %s: %s (is "
			    "keyd running, and is this its socket? KEYD_SOCKET "
			    "names another)", path, strerror(e));
			r = KEYD_ERR_CONNECT;
			break;
		case EACCES:
		case EPERM:
			snprintf(msg, msglen, "cannot connect to %s: %s (is "
			    "this user in keyd's socket_group?)", path,
			    strerror(e));
			r = KEYD_ERR_CONNECT;
			break;
		default:
			snprintf(msg, msglen, "cannot connect to %s: %s", path,
			    strerror(e));
			r = KEYD_ERR_CONNECT;
			break;
		}
		goto out;
	}
	if ((r = transport_check_peer(fd, path, msg, msglen)) != KEYD_OK)
		goto out;
	*fdp = fd;
	fd = -1;
	r = KEYD_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	return r;
}

/* Waits until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, int64_t deadline, char *msg, size_t msglen)
{
	struct pollfd pfd;
	int left, n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		if ((left = remaining_ms(deadline)) == 0)
			break;
		n = poll(&pfd, 1, left);
		if (n > 0)
			return KEYD_OK; /* errors surface in send or recv */
		if (n == 0)
			break;
		if (errno != EINTR) {
			snprintf(msg, msglen, "poll on keyd's socket: %s",
			    strerror(errno));
			return KEYD_ERR_IO;
		}
	}
	snprintf(msg, msglen, "timed out waiting for keyd (is it overloaded, "
	    "or its token hanging? see keyd's log)");
	return KEYD_ERR_TIMEOUT;
}

int
transport_send(int fd, const struct kbuf *out, int64_t deadline, char *msg,
    size_t msglen)
{
	const uint8_t *p = kbuf_ptr(out);
	size_t n = kbuf_avail(out), done = 0;
	ssize_t w;
	int r;

	while (done < n) {
		/* MSG_NOSIGNAL: a daemon that went away must give EPIPE,
		 * never kill the application with SIGPIPE. */
		w = send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(fd, POLLOUT, deadline, msg,
			    msglen)) != KEYD_OK)
				return r;
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			snprintf(msg, msglen, "keyd closed the connection");
			return KEYD_ERR_CLOSED;
		}
		snprintf(msg, msglen, "cannot send to keyd: %s",
		    w < 0 ? strerror(errno) : "no progress");
		return KEYD_ERR_IO;
	}
	return KEYD_OK;
}

int
transport_recv_frame(int fd, struct kbuf *in, size_t max, int64_t deadline,
    const uint8_t **body, size_t *len, char *msg, size_t msglen)
{
	uint32_t n = 0;
	size_t want;
	uint8_t *p;
	ssize_t got;
	int r, e, waited = 0;

	kbuf_reset(in);
	for (;;) {
		r = frame_next(in, max, body, len);
		if (r == KEYD_OK)
			break;
		if (r == KEYD_ERR_FRAME_TOO_LARGE) {
			if (kbuf_peek_u32(in, &n) != KEYD_OK)
				n = 0;
			snprintf(msg, msglen, "keyd sent a reply of %u bytes, "
			    "over the limit of %zu; refusing it", n, max);
			return KEYD_ERR_PROTOCOL;
		}
		if (r != KEYD_ERR_AGAIN)
			return r;
		/* Once the header is known (and within max), read exactly the
		 * rest, so that nothing past this reply is consumed. */
		if (kbuf_peek_u32(in, &n) == KEYD_OK)
			want = FRAME_HDR_LEN + (size_t)n - kbuf_avail(in);
		else
			want = TRANSPORT_RECV_CHUNK;
		if ((r = kbuf_reserve(in, want, &p)) != KEYD_OK) {
			snprintf(msg, msglen, "no room for keyd's reply: %s",
			    keyd_strerror(r));
			return r == KEYD_ERR_FRAME_TOO_LARGE ?
			    KEYD_ERR_PROTOCOL : r;
		}
		/* The reply is never there right after the request went out:
		 * poll first rather than spend a recv on EAGAIN. */
		if (!waited && (r = wait_fd(fd, POLLIN, deadline, msg,
		    msglen)) != KEYD_OK) {
			kbuf_unreserve_unwritten(in, want);
			return r;
		}
		waited = 1;
		got = recv(fd, p, want, MSG_DONTWAIT);
		e = errno;
		kbuf_unreserve_unwritten(in, got > 0 ? want - (size_t)got :
		    want);
		if (got > 0)
			continue;
		if (got == 0) {
			snprintf(msg, msglen, "keyd closed the connection");
			return KEYD_ERR_CLOSED;
		}
		if (e == EINTR)
			continue;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			waited = 0;
			continue;
		}
		if (e == ECONNRESET) {
			snprintf(msg, msglen, "keyd reset the connection");
			return KEYD_ERR_CLOSED;
		}
		snprintf(msg, msglen, "cannot read from keyd: %s",
		    strerror(e));
		return KEYD_ERR_IO;
	}
	if (kbuf_avail(in) != 0) {
		snprintf(msg, msglen, "keyd sent %zu unexpected bytes after "
		    "its reply", kbuf_avail(in));
		return KEYD_ERR_PROTOCOL;
	}
	return KEYD_OK;
}
