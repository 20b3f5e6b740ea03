/*
 * audit.h: the audit trail. One JSON object a line (json-c) for every
 * request and every daemon event: who (client, uid, gid, pid), what (op,
 * key, mechanism), the result, its latency and the sizes. Never a secret,
 * a plaintext or a PIN: no field takes request or reply bytes.
 */
#ifndef KEYD_AUDIT_H
#define KEYD_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct audit;

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
};

/* audit_open: opens (creating 0640) the configured audit log for append.
 * Its directory must exist. */
int audit_open(const struct config *cfg, struct audit **out, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* audit_write: appends one line. In audit_sync = request mode the line is
 * durable (fdatasync) when this returns. Returns KEYD_OK, or KEYD_ERR_AUDIT
 * if the line could not be written whole, in which case nothing of it is
 * left in the file and the caller must refuse the request. */
int audit_write(struct audit *a, const struct audit_record *r)
    __attribute__((warn_unused_result));

/* audit_sync: makes written lines durable if any are pending and the
 * interval has passed (or force). Called by the daemon's main loop. */
void audit_sync(struct audit *a, int force);

/* audit_reopen: closes and reopens the log file by its path (after an
 * outside rotation moved it away). */
int audit_reopen(struct audit *a) __attribute__((warn_unused_result));

/* audit_close: syncs and closes. NULL is fine. */
void audit_close(struct audit *a);

#endif
