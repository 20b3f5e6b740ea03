/*
 * syslogq.h: the audit trail's mirror to the local syslog daemon, sent so
 * that it never blocks: a line the daemon does not take at once is
 * dropped and counted (status: syslog_dropped). See syslogq.c for why
 * keyd does not use syslog(3).
 */
#ifndef KEYD_SYSLOGQ_H
#define KEYD_SYSLOGQ_H

#include <stddef.h>
#include <stdint.h>

struct syslogq;

/* syslogq_open: makes a sender to the syslog daemon's datagram socket at
 * path (NULL: /dev/log) and connects it. Call it before the seccomp
 * sandbox is installed (it primes the local time zone, which reads
 * /etc/localtime once). A daemon that cannot be reached now is not an
 * error: a warning is logged and later sends try again. Returns KEYD_OK
 * with *q owned by the caller (syslogq_close), or KEYD_ERR_NOMEM or
 * KEYD_ERR_INVALID_ARG (a path too long for a Unix socket). */
int syslogq_open(struct syslogq **q, const char *path)
    __attribute__((warn_unused_result));

/* syslogq_adopt: as syslogq_open, over fd (connected to path, or -1),
 * without connecting: for a reload that turns syslog on in keyd-serve,
 * after the sandbox (the time zone was primed at start, audit_open). q
 * takes fd in every case. Returns KEYD_OK with *q the caller's, or
 * KEYD_ERR_NOMEM or KEYD_ERR_INVALID_ARG. */
int syslogq_adopt(struct syslogq **q, const char *path, int fd)
    __attribute__((warn_unused_result));

/* syslogq_connect_fd: a non-blocking, close-on-exec datagram socket
 * connected to path (NULL: /dev/log), for keyd's supervisor to hand to
 * keyd-serve on a reload (syslogq_swap). Returns it, or -1 with errno set
 * (ENAMETOOLONG for a path too long for a Unix socket). */
int syslogq_connect_fd(const char *path)
    __attribute__((warn_unused_result));

/* syslogq_swap: q sends to path from now on (NULL: the same path), over
 * fd, a socket connected to it (or -1: the next send connects, and then
 * once a second as after a lost connection). The old socket is closed;
 * datagrams it sent are already queued at the daemon and are not lost. q
 * takes fd in every case. Callers serialise it with syslogq_send (audit.c
 * holds its mutex). Returns KEYD_OK, or KEYD_ERR_INVALID_ARG (a path too
 * long: nothing changed, fd closed). */
int syslogq_swap(struct syslogq *q, const char *path, int fd)
    __attribute__((warn_unused_result));

/* syslogq_send: sends line (len bytes, no newline) as one message with
 * facility LOG_AUTHPRIV, severity LOG_INFO, ident "keyd" and the pid,
 * formatted as glibc's syslog(3) does for a local socket. Never blocks
 * and never sleeps: if the daemon's queue is full or it is gone, the line
 * is dropped and counted; a lost connection is made again at most once a
 * second. Callers must not call it for the same q from two threads at
 * once (audit.c calls it under its mutex). */
void syslogq_send(struct syslogq *q, const char *line, size_t len);

/* syslogq_dropped: lines not sent since syslogq_open. Any thread may call
 * it at any time. NULL: 0. */
uint64_t syslogq_dropped(const struct syslogq *q);

/* syslogq_close: closes the socket and frees q. NULL is fine. */
void syslogq_close(struct syslogq *q);

#endif
