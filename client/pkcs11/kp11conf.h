/*
 * kp11conf.h: the settings of keyd-pkcs11.so. They come from a small
 * config file (KEYD_PKCS11_CONF, else /etc/keyd/pkcs11.conf; a missing
 * default file means defaults) and the environment (KEYD_SOCKET,
 * KEYD_PKCS11_HIDE_ED25519), read with secure_getenv. Internal to the
 * module.
 */
#ifndef KEYD_KP11CONF_H
#define KEYD_KP11CONF_H

#include <stddef.h>

#include "kbuf.h"

#define KP11CONF_DEFAULT_PATH "/etc/keyd/pkcs11.conf"
/* A PKCS#11 token label is 32 bytes, blank-padded. */
#define KP11CONF_LABEL_MAX 32u
/* sockaddr_un's sun_path holds 107 bytes and a NUL. */
#define KP11CONF_SOCKET_MAX 107u
#define KP11CONF_DEFAULT_LABEL "keyd"
/* A request may take this long, connecting included, unless set. */
#define KP11CONF_DEFAULT_TIMEOUT_MS 10000u
#define KP11CONF_TIMEOUT_MAX_MS 3600000u
/* Connections to keyd one loaded module may hold open at once. */
#define KP11CONF_DEFAULT_CONNECTIONS 16u
#define KP11CONF_CONNECTIONS_MAX 256u

struct kp11conf {
	char socket[KP11CONF_SOCKET_MAX + 1];   /* empty: libkeyd's default */
	char label[KP11CONF_LABEL_MAX + 1];
	int hide_ed25519;
	unsigned timeout_ms;
	unsigned connections;
	int debug;                  /* KEYD_PKCS11_DEBUG: errors to stderr */
};

/*
 * kp11conf_load: fills cf from the defaults, the config file and the
 * environment, in that order of increasing precedence. Returns KEYD_OK,
 * or KEYD_ERR_CONFIG (or KEYD_ERR_IO, KEYD_ERR_NOMEM) with err saying what
 * is wrong and where.
 */
int kp11conf_load(struct kp11conf *cf, char *err, size_t errlen) KBUF_WUR;

/*
 * kp11conf_parse: parses config text buf[0..len) (named name in messages)
 * into cf, over the values already there. Lines are "name = value";
 * blank lines and lines starting with '#' or ';' are ignored; unknown
 * names are errors.
 */
int kp11conf_parse(struct kp11conf *cf, const char *name, const void *buf,
    size_t len, char *err, size_t errlen) KBUF_WUR;

#endif
