/* kp11conf.c: keyd-pkcs11.so's settings, from its config file and the
 * environment. */
#include "kp11conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyd_err.h"

/* The file is a handful of lines: anything larger is not ours. */
#define KP11CONF_FILE_MAX (16u * 1024u)
#define KP11CONF_LINE_MAX 512u

static void
set_defaults(struct kp11conf *cf)
{
	memset(cf, 0, sizeof(*cf));
	snprintf(cf->label, sizeof(cf->label), "%s", KP11CONF_DEFAULT_LABEL);
	cf->timeout_ms = KP11CONF_DEFAULT_TIMEOUT_MS;
	cf->connections = KP11CONF_DEFAULT_CONNECTIONS;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* 1 for yes, 0 for no, -1 for neither. */
static int
parse_bool(const char *v)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") ||
	    !strcmp(v, "on"))
		return 1;
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") ||
	    !strcmp(v, "off"))
		return 0;
	return -1;
}

/* A decimal number in [min, max]; 0 on success. */
static int
parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
	unsigned long long n = 0;
	const char *p;

	if (*v == '\0')
		return -1;
	for (p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (unsigned)(*p - '0');
		if (n > max)
			return -1;
	}
	if (n < min)
		return -1;
	*out = (unsigned)n;
	return 0;
}

static int
set_socket(struct kp11conf *cf, const char *v, const char *where, char *err,
    size_t errlen)
{
	if (v[0] != '/' || strlen(v) > KP11CONF_SOCKET_MAX) {
		snprintf(err, errlen, "%s: socket must be an absolute path of "
		    "at most %u bytes", where, KP11CONF_SOCKET_MAX);
		return KEYD_ERR_CONFIG;
	}
	snprintf(cf->socket, sizeof(cf->socket), "%s", v);
	return KEYD_OK;
}

static int
set_value(struct kp11conf *cf, const char *name, unsigned lineno,
    const char *k, const char *v, char *err, size_t errlen)
{
	char where[320];
	int b;

	snprintf(where, sizeof(where), "%.256s line %u", name, lineno);
	if (!strcmp(k, "socket"))
		return set_socket(cf, v, where, err, errlen);
	if (!strcmp(k, "token_label")) {
		if (v[0] == '\0' || strlen(v) > KP11CONF_LABEL_MAX) {
			snprintf(err, errlen, "%s: token_label is 1 to %u bytes",
			    where, KP11CONF_LABEL_MAX);
			return KEYD_ERR_CONFIG;
		}
		snprintf(cf->label, sizeof(cf->label), "%s", v);
		return KEYD_OK;
	}
	if (!strcmp(k, "hide_ed25519")) {
		if ((b = parse_bool(v)) < 0) {
			snprintf(err, errlen, "%s: hide_ed25519 is yes or no",
			    where);
			return KEYD_ERR_CONFIG;
		}
		cf->hide_ed25519 = b;
		return KEYD_OK;
	}
	if (!strcmp(k, "timeout_ms")) {
		if (parse_uint(v, 1, KP11CONF_TIMEOUT_MAX_MS, &cf->timeout_ms)) {
			snprintf(err, errlen, "%s: timeout_ms is 1 to %u", where,
			    KP11CONF_TIMEOUT_MAX_MS);
			return KEYD_ERR_CONFIG;
		}
		return KEYD_OK;
	}
	if (!strcmp(k, "connections")) {
		if (parse_uint(v, 1, KP11CONF_CONNECTIONS_MAX,
		    &cf->connections)) {
			snprintf(err, errlen, "%s: connections is 1 to %u", where,
			    KP11CONF_CONNECTIONS_MAX);
			return KEYD_ERR_CONFIG;
		}
		return KEYD_OK;
	}
	snprintf(err, errlen, "%s: unknown setting '%.64s' (known: socket, "
	    "token_label, hide_ed25519, timeout_ms, connections)", where, k);
	return KEYD_ERR_CONFIG;
}

int
kp11conf_parse(struct kp11conf *cf, const char *name, const void *buf,
    size_t len, char *err, size_t errlen)
{
	struct kbuf b;
	char line[KP11CONF_LINE_MAX + 1];
	size_t n = 0;
	unsigned lineno = 1;
	uint8_t ch;
	char *s, *eq, *k, *v;
	int r, end = 0;

	kbuf_view(&b, buf, len);
	while (!end) {
		if (kbuf_get_u8(&b, &ch) != KEYD_OK) {
			end = 1;
			ch = '\n';
		}
		if (ch == '\0') {
			snprintf(err, errlen, "%.256s line %u: a NUL byte (is "
			    "this a text file?)", name, lineno);
			return KEYD_ERR_CONFIG;
		}
		if (ch != '\n') {
			if (n >= KP11CONF_LINE_MAX) {
				snprintf(err, errlen, "%.256s line %u: longer "
				    "than %u bytes", name, lineno,
				    KP11CONF_LINE_MAX);
				return KEYD_ERR_CONFIG;
			}
			line[n++] = (char)ch;
			continue;
		}
		line[n] = '\0';
		n = 0;
		s = trim(line);
		if (*s != '\0' && *s != '#' && *s != ';') {
			if ((eq = strchr(s, '=')) == NULL) {
				snprintf(err, errlen, "%.256s line %u: expected "
				    "'name = value'", name, lineno);
				return KEYD_ERR_CONFIG;
			}
			*eq = '\0';
			k = trim(s);
			v = trim(eq + 1);
			if ((r = set_value(cf, name, lineno, k, v, err,
			    errlen)) != KEYD_OK)
				return r;
		}
		lineno++;
	}
	return KEYD_OK;
}

/* Reads the file at path into buf (at most KP11CONF_FILE_MAX bytes).
 * *missing is set, with KEYD_OK, if there is no such file. */
static int
read_file(const char *path, char *buf, size_t *len, int *missing, char *err,
    size_t errlen)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd, r = KEYD_ERR_CONFIG;

	*missing = 0;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT) {
			*missing = 1;
			return KEYD_OK;
		}
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return KEYD_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	/* The file names the socket whose server gets our requests: only
	 * root or this user may be able to change it. */
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(err, errlen, "%s is owned by uid %u with mode %04o; it "
		    "must be owned by root (or this user) and not writable by "
		    "group or others", path, (unsigned)st.st_uid,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > (off_t)KP11CONF_FILE_MAX) {
		snprintf(err, errlen, "%s is larger than %u bytes", path,
		    KP11CONF_FILE_MAX);
		goto out;
	}
	for (;;) {
		n = read(fd, buf + got, KP11CONF_FILE_MAX - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path,
			    strerror(errno));
			r = KEYD_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == KP11CONF_FILE_MAX) {
			snprintf(err, errlen, "%s is larger than %u bytes",
			    path, KP11CONF_FILE_MAX);
			goto out;
		}
	}
	*len = got;
	r = KEYD_OK;
out:
	(void)close(fd);
	return r;
}

int
kp11conf_load(struct kp11conf *cf, char *err, size_t errlen)
{
	const char *path = secure_getenv("KEYD_PKCS11_CONF");
	const char *env;
	char *buf = NULL;
	size_t len;
	int named, missing, b, r;

	set_defaults(cf);
	named = path != NULL && path[0] != '\0';
	if (!named)
		path = KP11CONF_DEFAULT_PATH;
	if ((buf = malloc(KP11CONF_FILE_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	if ((r = read_file(path, buf, &len, &missing, err, errlen)) != KEYD_OK)
		goto out;
	if (missing && named) {
		snprintf(err, errlen, "KEYD_PKCS11_CONF names %s, which does "
		    "not exist", path);
		r = KEYD_ERR_CONFIG;
		goto out;
	}
	if (!missing &&
	    (r = kp11conf_parse(cf, path, buf, len, err, errlen)) != KEYD_OK)
		goto out;
	if ((env = secure_getenv("KEYD_SOCKET")) != NULL && env[0] != '\0' &&
	    (r = set_socket(cf, env, "KEYD_SOCKET", err, errlen)) != KEYD_OK)
		goto out;
	if ((env = secure_getenv("KEYD_PKCS11_HIDE_ED25519")) != NULL &&
	    env[0] != '\0') {
		if ((b = parse_bool(env)) < 0) {
			snprintf(err, errlen, "KEYD_PKCS11_HIDE_ED25519 is 1 or "
			    "0 (yes or no)");
			r = KEYD_ERR_CONFIG;
			goto out;
		}
		cf->hide_ed25519 = b;
	}
	env = secure_getenv("KEYD_PKCS11_DEBUG");
	cf->debug = env != NULL && env[0] != '\0' && strcmp(env, "0") != 0;
	r = KEYD_OK;
out:
	free(buf);
	return r;
}
