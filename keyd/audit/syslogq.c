/*
 * syslogq.c: the audit trail's mirror to syslog, sent without ever
 * blocking.
 *
 * Why not syslog(3): glibc's syslog(3) writes each message with a blocking
 * send() on a datagram socket connected to /dev/log. The kernel queues
 * only net.unix.max_dgram_qlen messages (10 by default) for a reader that
 * does not read; the next send() then sleeps until the daemon reads again.
 * A syslog daemon that is stopped (SIGSTOP), hung, or stuck behind a full
 * disk thus blocks syslog(3) for as long as it lasts, and glibc holds its
 * one process-wide syslog lock meanwhile, so every other thread that logs
 * waits as well. openlog(3) has no option against it. audit.c mirrors
 * each line while it holds the audit mutex, which every request takes:
 * with rsyslogd stopped, keyd stopped answering anything, status included,
 * after a handful of requests.
 *
 * So keyd keeps its own socket and sends with MSG_DONTWAIT: a line the
 * daemon does not take at once (its queue is full, it is gone, there is no
 * socket) is dropped and counted, and status reports the count. The audit
 * log file stays the record; syslog is a copy, and each mirrored line
 * carries its "seq", so a collector can see which lines it lacks. A lost
 * connection (the daemon restarted and made a new socket) is made again
 * at most once a second, so that a missing daemon costs a failed send,
 * not a connect, per line.
 *
 * The message is what glibc's syslog(3) sends to a local socket for
 * LOG_AUTHPRIV | LOG_INFO with openlog("keyd", LOG_PID, ...): the RFC 3164
 * header "<86>Mmm dd hh:mm:ss keyd[PID]: " (local time, day padded with a
 * space, English month names) followed by the line, with no newline and
 * no trailing NUL. Only datagram sockets are used, as /dev/log is one for
 * systemd-journald, rsyslog and syslog-ng.
 *
 * After the seccomp sandbox is on (sandbox.c), a reconnect needs socket()
 * with AF_UNIX, which the filter allows, and connect(). A reload that
 * turns syslog on or names another socket does not connect here: keyd's
 * supervisor connects (syslogq_connect_fd) and the descriptor comes with
 * the reload, which only needs recvmsg() and close() (syslogq_swap).
 */
#include "syslogq.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"

#define SYSLOGQ_PRI (LOG_AUTHPRIV | LOG_INFO)    /* <86> */
#define SYSLOGQ_IDENT "keyd"
/* "<86>Mmm dd hh:mm:ss keyd[2147483647]: " fits with room to spare. */
#define SYSLOGQ_HEADER_MAX 64
#define SYSLOGQ_RECONNECT_MS 1000

struct syslogq {
	struct sockaddr_un sa;
	int fd;                     /* -1: not connected */
	pid_t pid;
	struct timespec last_try;   /* CLOCK_MONOTONIC of the last connect */
	_Atomic uint64_t dropped;
};

static int
sq_addr(struct sockaddr_un *sa, const char *path)
{
	size_t plen = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (plen >= sizeof(sa->sun_path))
		return KEYD_ERR_INVALID_ARG;
	memcpy(sa->sun_path, path, plen + 1);
	return KEYD_OK;
}

static int
sq_socket(const struct sockaddr_un *sa)
{
	int fd, e;

	/* A datagram connect never waits for the peer. */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Closes the old socket and connects a new one. -1 with errno set when
 * the daemon cannot be reached. */
static int
sq_connect(struct syslogq *q)
{
	clock_gettime(CLOCK_MONOTONIC, &q->last_try);
	if (q->fd >= 0) {
		close(q->fd);
		q->fd = -1;
	}
	if ((q->fd = sq_socket(&q->sa)) < 0)
		return -1;
	return 0;
}

static int
sq_reconnect_due(const struct syslogq *q)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - q->last_try.tv_sec) * 1000 +
	    (now.tv_nsec - q->last_try.tv_nsec) / 1000000 >=
	    SYSLOGQ_RECONNECT_MS;
}

/* glibc's header for a local socket: "<PRI>Mmm dd hh:mm:ss IDENT[PID]: ".
 * Month names are spelled out here rather than taken from strftime's %h,
 * which would follow a locale (glibc uses the C locale's). */
static size_t
sq_header(const struct syslogq *q, char *buf, size_t len)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr",
		"May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (localtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	n = snprintf(buf, len, "<%d>%s %2d %02d:%02d:%02d %s[%d]: ",
	    SYSLOGQ_PRI, months[tm.tm_mon >= 0 && tm.tm_mon < 12 ?
	    tm.tm_mon : 0], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    SYSLOGQ_IDENT, (int)q->pid);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

int
syslogq_open(struct syslogq **out, const char *path)
{
	struct syslogq *q;

	*out = NULL;
	if (path == NULL)
		path = _PATH_LOG;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return KEYD_ERR_NOMEM;
	q->fd = -1;
	q->pid = getpid();     /* keyd never forks */
	atomic_init(&q->dropped, 0);
	if (sq_addr(&q->sa, path) != KEYD_OK) {
		free(q);
		return KEYD_ERR_INVALID_ARG;
	}
	/* localtime_r reads the zone (/etc/localtime) on its first call
	 * only: make that happen now, before the sandbox. */
	tzset();
	if (sq_connect(q) != 0)
		log_warn("cannot connect to the syslog socket %s: %s; audit "
		    "lines are not mirrored to syslog until it can be reached "
		    "(keyd tries again every second and counts the lines lost "
		    "as syslog_dropped in keydctl status)", path,
		    strerror(errno));
	*out = q;
	return KEYD_OK;
}

int
syslogq_adopt(struct syslogq **out, const char *path, int fd)
{
	struct syslogq *q;
	int r;

	*out = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		if (fd >= 0)
			close(fd);
		return KEYD_ERR_NOMEM;
	}
	q->fd = -1;
	q->pid = getpid();
	atomic_init(&q->dropped, 0);
	if ((r = syslogq_swap(q, path != NULL ? path : _PATH_LOG, fd)) !=
	    KEYD_OK) {
		free(q);
		return r;
	}
	*out = q;
	return KEYD_OK;
}

int
syslogq_connect_fd(const char *path)
{
	struct sockaddr_un sa;

	if (sq_addr(&sa, path != NULL ? path : _PATH_LOG) != KEYD_OK) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return sq_socket(&sa);
}

int
syslogq_swap(struct syslogq *q, const char *path, int fd)
{
	struct sockaddr_un sa;

	if (path != NULL && sq_addr(&sa, path) != KEYD_OK) {
		if (fd >= 0)
			close(fd);
		return KEYD_ERR_INVALID_ARG;
	}
	if (q->fd >= 0)
		close(q->fd);
	if (path != NULL)
		q->sa = sa;
	q->fd = fd;
	/* No descriptor (no daemon behind the path yet): the next line
	 * tries at once, then once a second as after a lost connection. */
	memset(&q->last_try, 0, sizeof(q->last_try));
	return KEYD_OK;
}

void
syslogq_send(struct syslogq *q, const char *line, size_t len)
{
	char hdr[SYSLOGQ_HEADER_MAX];
	struct iovec iov[2];
	struct msghdr msg;
	size_t hlen;
	int attempt;

	if (q == NULL)
		return;
	hlen = sq_header(q, hdr, sizeof(hdr));
	iov[0].iov_base = hdr;
	iov[0].iov_len = hlen;
	iov[1].iov_base = (void *)(uintptr_t)line;
	iov[1].iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	/* At most two tries: the second on a fresh connection when the old
	 * one's daemon is gone (it restarted, or was stopped and its socket
	 * removed). */
	for (attempt = 0; attempt < 2; attempt++) {
		if (q->fd < 0 && (!sq_reconnect_due(q) || sq_connect(q) != 0))
			break;
		if (sendmsg(q->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return;
		/* The daemon is there but behind (a full queue, no buffer
		 * space) or the message is too big for it: drop this line,
		 * keep the connection. */
		if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS || errno == EMSGSIZE || errno == EINTR)
			break;
		/* ECONNREFUSED, ENOTCONN...: the socket we are connected to
		 * has no reader any more. */
		close(q->fd);
		q->fd = -1;
	}
	atomic_fetch_add(&q->dropped, 1);
}

uint64_t
syslogq_dropped(const struct syslogq *q)
{
	return q != NULL ? atomic_load(&q->dropped) : 0;
}

void
syslogq_close(struct syslogq *q)
{
	if (q == NULL)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}
