/*
 * reload.h: what a reload of the configuration compares, for the
 * supervisor (which refuses a change that needs a restart) and the
 * socket-facing process (which writes what changed to the audit log).
 * docs/operations.md ("Reloading the configuration") and
 * docs/configuration.md (reloadable or restart-only) are the user's side.
 */
#ifndef KEYD_RELOAD_H
#define KEYD_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "token.h"

#define RELOAD_WUR __attribute__((warn_unused_result))

#define RELOAD_HASH_HEX 64
#define RELOAD_SUMMARY_MAX 1024      /* bytes of a reload record's detail */

/* reload_restart_only: whether new changes a setting that only a restart
 * can change; if so, writes the reason into why ("socket cannot change
 * on reload; restart keyd") and returns 1. Otherwise returns 0. */
int reload_restart_only(const struct config *old, const struct config *new,
    char *why, size_t whylen) RELOAD_WUR;

/* reload_summary: what new changes against old, by name, into out:
 * "clients +a -b ~c; keys +k -l ~m" (~: changed; a key changes with its
 * URI, ops, previous versions, passport settings, or its public key or
 * check value on the token, given by otok and ntok, which may be NULL),
 * "[keyd] limits" when connection or checkpoint settings changed,
 * "[keyd] syslog" when the syslog copy did, or "no change". */
void reload_summary(const struct config *old, const struct token *otok,
    const struct config *new, const struct token *ntok, char *out,
    size_t outlen);

/* reload_sha256_hex: the hex SHA-256 of p[0..n) into out (65 bytes). */
void reload_sha256_hex(const void *p, size_t n, char out[RELOAD_HASH_HEX + 1]);

/* reload_memfd: a sealed memfd holding p[0..n) (no writes, no resizing,
 * no more seals), for keyd-token --config-fd. Returns the descriptor
 * (close-on-exec) or -1 with errno set. */
int reload_memfd(const void *p, size_t n) RELOAD_WUR;

#endif
