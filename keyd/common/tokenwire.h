/*
 * tokenwire.h: what crosses between keyd's three kinds of process.
 *
 *   keyd (the supervisor)   holds the PIN, handles signals, starts and
 *                           restarts the others
 *   keyd-token (one per     loads the PKCS#11 module, logs in, serves
 *   configured token)       requests on its channels
 *   the socket-facing       accepts clients, parses their bytes, checks
 *   process                 the policy, writes the audit log
 *
 * Every channel is a Unix stream socketpair carrying frames: a 4-byte
 * length in host order, then that many bytes. Descriptors travel with the
 * first byte of a frame (SCM_RIGHTS). Each side checks every length
 * against the frame's size before it reads: the token process treats the
 * socket-facing process as untrusted.
 */
#ifndef KEYD_TOKENWIRE_H
#define KEYD_TOKENWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "kbuf.h"
#include "token.h"

#define TW_WUR __attribute__((warn_unused_result))

#define TW_MAX_FRAME (4u << 20)  /* key info with certificates */
#define TW_MAX_IO 8192           /* a reply's output; an IV or AAD */
#define TW_MAX_IN (1024u * 1024u) /* a request's input (an Ed25519 message) */
#define TW_MAX_REQ (TW_MAX_IN + 2 * TW_MAX_IO + 256)
#define TW_MSG_LEN 256
#define TW_MAX_FDS 64            /* descriptors in one frame */
#define TW_HASH_LEN 32           /* SHA-256 of a signed audit line */

/* The descriptors of keyd-token (execve keeps them): its control channel
 * to the supervisor, then its request channels. */
#define TW_FD_CONTROL 3
#define TW_FD_FIRST_CHANNEL 4

/* How keyd-token exits; the supervisor restarts it for all but PIN. */
enum tw_exit {
	TW_EXIT_OK = 0,            /* its control channel closed */
	TW_EXIT_FAILED = 1,        /* could not open the token (it said why) */
	TW_EXIT_USAGE = 2,
	TW_EXIT_DEVICE_LOST = 3,   /* a health probe failed after a re-login */
	TW_EXIT_PIN_REFUSED = 4,   /* never restarted until SIGUSR2 */
};

/* Requests on a channel (socket-facing process -> token process). */
enum tw_op {
	TW_SIGN = 1,
	TW_DECRYPT,
	TW_RANDOM,
	TW_KCV,
	TW_GCM,
	TW_CHECKPOINT,             /* an audit line, signed with the audit key */
	TW_PROBE,                  /* keyd's own health probe */
	TW_INFO,                   /* label, state, counters */
	TW_HMAC,                   /* HMAC-SHA256 under audit_tn_key */
};

/* A request: this header, then iv_len + aad_len + in_len bytes. */
struct tw_req {
	uint32_t op;
	uint32_t key;
	uint32_t version;
	uint32_t encrypt;
	uint64_t mech;
	uint32_t has_params;       /* PSS or OAEP parameters below */
	uint32_t tag_bits;
	uint64_t p_hash, p_mgf, p_slen;
	uint32_t iv_len, aad_len, in_len, out_len;
};

/* A reply: this header, then out_len bytes. */
struct tw_rep {
	int32_t r;                 /* KEYD_OK or KEYD_ERR_* */
	uint32_t out_len;
	uint64_t rv;               /* the token's CK_RV, where there was one */
	char msg[TW_MSG_LEN];
};

/* Control frames: supervisor <-> token process, supervisor <->
 * socket-facing process. The first 4 bytes name the frame. */
enum tw_ctl {
	/* supervisor -> token process */
	TW_CTL_PIN = 1,            /* u32 len, the PIN */
	TW_CTL_RELOAD,             /* SIGUSR2: read the keys again */
	TW_CTL_CP_ANSWER,          /* u32 1: may sign, 0: may not; then
	                              the ask's u32 seq and prev hash,
	                              echoed (cpgate.h) */
	/* token process -> supervisor */
	TW_CTL_READY,              /* key info (tw_info_put) */
	TW_CTL_FAILED,             /* u32 exit code, message */
	TW_CTL_CP_ASK,             /* u32 seq, the prev hash a line to sign
	                              names */
	TW_CTL_CP_DONE,            /* u32 seq, prev hash, the hash of the
	                              line now signed */
	/* supervisor -> socket-facing process */
	TW_CTL_TOKEN_UP,           /* u32 idx, u32 gen, key info; fds */
	TW_CTL_TOKEN_DOWN,         /* u32 idx, u32 gen, cause */
	TW_CTL_SIGNAL,             /* u32 signal number */
	/* socket-facing process -> supervisor */
	TW_CTL_HUNG,               /* u32 idx, u32 gen: kill and restart */
	/* A reload (docs/operations.md): the socket-facing process asks, the
	 * supervisor reads and checks the file and starts token processes
	 * with the new bytes, then offers them; the socket-facing process
	 * applies or refuses, and says which. */
	TW_CTL_RELOAD_ASK,         /* u32 seq (a client's reload op) */
	TW_CTL_RELOAD_TOKEN,       /* sup: u32 idx, u32 gen, key info; fds */
	TW_CTL_RELOAD_APPLY,       /* sup: u32 seq, SHA-256 (hex), u32 len,
	                              the bytes, the certificate files
	                              (u32 n, then u32 len, path, u32 len,
	                              PEM each); and the new
	                              syslog_socket's connected socket
	                              as its one fd, when syslog or
	                              syslog_socket changed and it
	                              connected */
	TW_CTL_RELOAD_REFUSED,     /* sup: u32 seq, the reason */
	TW_CTL_RELOAD_DONE,        /* u32 seq, u32 applied, the reason */
	/* token process -> supervisor, after the others so that their
	 * numbers stay */
	TW_CTL_CP_ABORT,           /* u32 seq, prev hash: an approval it
	                              will not use (cpgate.h) */
};

/* keyd-token --config-fd: the configuration's bytes in a sealed memfd,
 * at this descriptor after the request channels (TW_FD_FIRST_CHANNEL + N):
 * a token process, first or restarted, checks requests against the bytes
 * the supervisor applied, never against what the file holds later. */
#define TW_CONFIG_SEAL_NAME "keyd-config"

/* The key info a token process sends when it has resolved its keys. */
struct tw_info {
	struct token_info ti;      /* label, manufacturer, model, serial */
	struct token_key *keys;    /* n_all of them; name, uri, tmpl unset */
	size_t n_all;
	int has_audit_key;
	int has_tn_key;            /* audit_tn_key: the last slot */
};

/* tw_send: one frame of n bytes, with nfds descriptors. Retries on EINTR
 * and short writes. Returns 0 or -1 (errno). */
int tw_send(int fd, const void *p, size_t n, const int *fds, size_t nfds)
    TW_WUR;
/* tw_send2: one frame of a header and a body. */
int tw_send2(int fd, const void *h, size_t hn, const void *b, size_t bn)
    TW_WUR;

/* tw_recv: one frame into b (reset first; at most max bytes), and up to
 * *nfds descriptors (*nfds: room on entry, received on return; extra
 * ones are closed). deadline_ms: CLOCK_MONOTONIC ms to give up at, or 0 to
 * wait for ever. Returns 0, or -1 with errno: ETIMEDOUT, EPIPE (closed),
 * EMSGSIZE (too large), or another. */
int tw_recv(int fd, struct kbuf *b, size_t max, int *fds, size_t *nfds,
    long deadline_ms) TW_WUR;

/* Control frames' words are in host order (both ends are this build). */
static inline int
tw_put_word(struct kbuf *b, uint32_t v)
{
	return kbuf_put(b, &v, sizeof(v));
}

static inline int
tw_get_word(struct kbuf *b, uint32_t *v)
{
	return kbuf_get_bytes(b, v, sizeof(*v));
}

/* tw_recv_one: tw_recv for a request channel, which carries one frame at
 * a time (a second frame sent before the reply is an error, EPROTO): the
 * frame is read whole where it can be. deadline_ms as tw_recv's, or -1:
 * wait as long as the socket's SO_RCVTIMEO allows (ETIMEDOUT after it).
 * No descriptors. */
int tw_recv_one(int fd, struct kbuf *b, size_t max, long deadline_ms)
    TW_WUR;

/* tw_now_ms: CLOCK_MONOTONIC in ms. */
long tw_now_ms(void);

/* tw_info_put: the key info of keys[0..n_all) and ti into b. */
int tw_info_put(struct kbuf *b, const struct token_info *ti,
    const struct token_key *keys, size_t n_all, int has_audit_key,
    int has_tn_key) TW_WUR;
/* tw_info_get: reads it back; *out holds malloc'ed keys (tw_info_free).
 * Returns KEYD_OK or KEYD_ERR_PROTOCOL. */
int tw_info_get(struct kbuf *b, struct tw_info *out) TW_WUR;
void tw_info_free(struct tw_info *in);

#endif
