/*
 * transport.h: libkeyd's end of the socket. Connects to keyd's Unix
 * socket, checks who serves it (SO_PEERCRED), and moves whole frames
 * within a deadline. Internal to libkeyd.
 */
#ifndef KEYD_CLIENT_TRANSPORT_H
#define KEYD_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kbuf.h"

/* The system user keyd runs as, unless KEYD_DAEMON_USER names another. */
#define TRANSPORT_DAEMON_USER "keyd"

/* transport_now_ms: a monotonic clock in milliseconds, for deadlines. */
int64_t transport_now_ms(void);

/* transport_daemon_uid: the uid of the daemon user (KEYD_DAEMON_USER, a
 * name or a number, else the system user "keyd"). KEYD_OK with *found 1 and
 * *uid set; KEYD_OK with *found 0 if KEYD_DAEMON_USER is unset and there is
 * no "keyd" user; KEYD_ERR_CONFIG (with msg) if KEYD_DAEMON_USER names no
 * user. */
int transport_daemon_uid(uid_t *uid, int *found, char *msg,
    size_t msglen) KBUF_WUR;

/* transport_check_peer: KEYD_OK if fd's peer runs as root or as the daemon
 * user; else KEYD_ERR_PEER_UNTRUSTED (or KEYD_ERR_CONFIG, KEYD_ERR_IO),
 * with msg naming path and the uid. */
int transport_check_peer(int fd, const char *path, char *msg,
    size_t msglen) KBUF_WUR;

/* transport_connect: connects to the Unix socket path before deadline and
 * checks its peer. On KEYD_OK *fd is a new close-on-exec socket the caller
 * owns; on error *fd is -1 and msg says what went wrong and what to do. */
int transport_connect(const char *path, int64_t deadline, int *fd,
    char *msg, size_t msglen) KBUF_WUR;

/* transport_send: writes all of out's unread bytes before deadline,
 * without raising SIGPIPE. KEYD_ERR_CLOSED if the peer hung up,
 * KEYD_ERR_TIMEOUT, KEYD_ERR_IO. */
int transport_send(int fd, const struct kbuf *out, int64_t deadline,
    char *msg, size_t msglen) KBUF_WUR;

/* transport_recv_frame: reads exactly one frame into in (emptied first)
 * before deadline, and borrows its body (valid until in is next written).
 * A frame over max bytes, or bytes after the frame, is KEYD_ERR_PROTOCOL;
 * KEYD_ERR_CLOSED if the peer hung up first; KEYD_ERR_TIMEOUT; KEYD_ERR_IO. */
int transport_recv_frame(int fd, struct kbuf *in, size_t max,
    int64_t deadline, const uint8_t **body, size_t *len, char *msg,
    size_t msglen) KBUF_WUR;

#endif
