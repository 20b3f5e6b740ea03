/*
 * statusfmt.h: keyd's StatusReply as text for people, or as Prometheus
 * text exposition format. Internal to libkeyd.
 */
#ifndef KEYD_CLIENT_STATUSFMT_H
#define KEYD_CLIENT_STATUSFMT_H

#include "kbuf.h"
#include "keyd.pb-c.h"

/* statusfmt_text / statusfmt_prometheus: format s; on KEYD_OK *out is a
 * new NUL-terminated string the caller frees with free(). Every string
 * from the daemon is made printable (and escaped for Prometheus labels).
 * KEYD_ERR_NOMEM, or KEYD_ERR_PROTOCOL for a reply too large to show. */
int statusfmt_text(const Keyd__V1__StatusReply *s, char **out) KBUF_WUR;
int statusfmt_prometheus(const Keyd__V1__StatusReply *s,
    char **out) KBUF_WUR;

/* statusfmt_op_name: "sign", "decrypt", "srtp-new", "srtp-open", "status",
 * or "unknown"; a static string. */
const char *statusfmt_op_name(int op);

#endif
