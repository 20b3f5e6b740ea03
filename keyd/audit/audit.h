/*
 * audit.h: the audit trail. One JSON object a line (json-c) for every
 * request and every daemon event: who (client, uid, gid, pid), what (op,
 * key, mechanism), the result, its latency and the sizes. Never a secret,
 * a plaintext or a PIN: no field takes request or reply bytes.
 *
 * Tamper evidence: every line ends with "prev", the SHA-256 of the line
 * before it (across rotations too), and checkpoint lines signed by the
 * audit key on the token close every N lines or T seconds, a rotation and
 * a clean stop. keyd-audit verify checks a file. See docs/operations.md.
 */
#ifndef KEYD_AUDIT_H
#define KEYD_AUDIT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "token.h"

/* Repeated denials and rate-limit refusals from one peer are written once
 * and then counted for this long, and summed up in one line. */
#define AUDIT_FLOOD_INTERVAL_S 10
#define AUDIT_HASH_HEX 64

struct audit;
struct json_object;

struct audit_record {
	const char *event;      /* "request", "start", "stop", "denied-peer"... */
	const char *client;     /* NULL: no client matched */
	int has_peer;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const char *op;         /* NULL for daemon events */
	const char *key;
	const char *mech;
	int result;             /* KEYD_OK or a KEYD_ERR_* code */
	const char *detail;     /* free text without secrets, or NULL */
	uint64_t latency_us;
	size_t request_bytes;
	size_t reply_bytes;
	int aggregate;          /* a refusal that floods are folded into */
	/* passport: the PASSporT's ppt, attest and origid, and its TNs in
	 * clear or as HMAC-SHA256 hex (audit_tn); NULL / 0: none. */
	const char *ppt;
	const char *attest;
	const char *orig;
	const char *div;
	const char *const *dest;
	size_t n_dest;
	const char *origid;
};

/* audit_open: opens (creating 0640) the configured audit log for append
 * and continues its hash chain from its last line, checking what it finds
 * there (audit_start reports it). token: the token that holds the audit
 * key (token_audit_key), or NULL for no checkpoints. With an audit key,
 * the last durable checkpoint is recorded in state_dir (statedir.h), so
 * that a log cut back while keyd is stopped shows as a gap. */
int audit_open(const struct config *cfg, struct token *token,
    struct audit **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* audit_write: appends one line. In audit_sync = request mode the line is
 * durable (fdatasync, shared with concurrent writers: group commit) when
 * this returns. Returns KEYD_OK, or KEYD_ERR_AUDIT if the line could not
 * be written whole (nothing of it is left in the file); the caller must
 * then refuse the request. */
int audit_write(struct audit *a, const struct audit_record *r)
    __attribute__((warn_unused_result));

/* audit_tick: periodic work from the main thread: the interval-mode
 * fdatasync, time-based checkpoints, flood summaries. */
void audit_tick(struct audit *a);

/* audit_rotate: a checkpoint closes the current file, which is then
 * reopened by its path (after an outside rotation moved it away); the
 * new file's first line carries the old file's last hash. */
int audit_rotate(struct audit *a) __attribute__((warn_unused_result));

/* audit_rotate_fd: audit_rotate onto fd, the log's path as the supervisor
 * opened it (audit_reopen_path): the socket-facing process has no access
 * to the log's directory. fd is taken over, also on failure. */
int audit_rotate_fd(struct audit *a, int fd)
    __attribute__((warn_unused_result));

/* audit_rotate_denied: the supervisor could not open the log's path for
 * writing (err: EACCES or EPERM); path_fd is that path opened O_PATH, or
 * -1. When it names the file keyd holds (nothing was rotated: a reload or
 * SIGHUP without logrotate), this is audit_rotate_fd on a copy of keyd's
 * own descriptor. Otherwise it is audit_rotate_fd's failure: the old file
 * is kept, and the log says what to change. path_fd is taken over. */
int audit_rotate_denied(struct audit *a, int path_fd, int err)
    __attribute__((warn_unused_result));

/* audit_reopen_path: opens the audit log's path as a rotation does
 * (created 0640, no link followed, not blocking on a FIFO). Returns the
 * descriptor or -1 (errno). */
int audit_reopen_path(const char *path);

/* audit_close: flushes flood summaries, writes a final checkpoint, syncs
 * and closes. NULL is fine. */
void audit_close(struct audit *a);

/* audit_set_token: after a reload, checkpoints are signed through token
 * (the new configuration's token processes; the audit key is the same,
 * audit_key being restart-only), every cfg->audit_checkpoint_lines lines or
 * audit_checkpoint_s seconds. Waits for a checkpoint being signed. */
void audit_set_token(struct audit *a, struct token *token,
    const struct config *cfg);

/* audit_seal: for an exit that leaves workers inside token calls: writes
 * the last checkpoint, makes the log durable and keeps it locked, so that
 * nothing can be written after it and nothing is freed under a worker.
 * The process must exit right after. */
void audit_seal(struct audit *a);

/* audit_start: writes the run's start record: detail, then what keyd found
 * at the end of the log when it opened it (audit_open): the last
 * checkpoint's seq and hash ("resumed_seq", "resumed_hash"), whether it
 * verifies ("checkpoint": "ok", "bad" or "none"), how many lines after it
 * are unverified, and, when there is one, the "gap" (the log no longer
 * holds the checkpoint recorded in state_dir) or what was "tampered"
 * (lines after a clean stop). A gap or tampering is also logged as a
 * warning. Must be the first line the run writes. */
int audit_start(struct audit *a, const char *detail)
    __attribute__((warn_unused_result));

/* audit_checkpoint_verify: 1 if line (a checkpoint or start line without
 * its newline) ends with a "sig" that pk verifies over the rest, else 0. */
int audit_checkpoint_verify(EVP_PKEY *pk, const char *line, size_t len);

/* audit_parse_line: the JSON object of one line (len bytes, no newline)
 * if it is strict JSON with nothing after the object and no NUL, else
 * NULL. The caller puts the object. */
struct json_object *audit_parse_line(const char *line, size_t len);

/* audit_json_str: the string member k of o, or NULL if o has none or it
 * is not a string (o owns the string). */
const char *audit_json_str(struct json_object *o, const char *k);

/* audit_hash_line: the hex SHA-256 of one line (without its newline), as
 * "prev" carries it. out has AUDIT_HASH_HEX + 1 bytes. */
void audit_hash_line(const char *line, size_t len, char *out);

/* audit_syslog_dropped: audit lines that syslog = yes did not mirror
 * because the syslog daemon did not take them at once (syslogq.h); 0
 * without syslog. Any thread, without the audit lock. NULL: 0. */
uint64_t audit_syslog_dropped(struct audit *a);

/* audit_set_syslog: a reload's syslog settings, from the next line
 * written: on = 0 stops the mirror (its socket closed); on = 1 mirrors to
 * path over fd, a datagram socket keyd's supervisor connected to it (or
 * -1: keyd-serve connects at the next line, then once a second). fd is
 * taken over in every case; the old socket is closed. Safe against
 * writers (takes the audit lock). Returns KEYD_OK, KEYD_ERR_NOMEM or
 * KEYD_ERR_INVALID_ARG (path too long), the mirror then unchanged. */
int audit_set_syslog(struct audit *a, int on, const char *path, int fd)
    __attribute__((warn_unused_result));

#endif
