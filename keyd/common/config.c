/* config.c: parse and check keyd's INI configuration. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbuf.h"
#include "keyd_err.h"

/* Upper bounds of the numeric [keyd] settings. */
#define CONFIG_MAX_MAX_CONNECTIONS 65536
#define CONFIG_MIN_FRAME 1024
#define CONFIG_MAX_INFLIGHT_LIMIT 4096
#define CONFIG_MAX_IDLE_TIMEOUT_S 86400
#define CONFIG_MAX_WORKERS 64
#define CONFIG_MAX_SYNC_MS 10000
#define CONFIG_MAX_RATE 10000000.0
/* inih's MAX_SECTION: it keeps one less than this of a section name. */
#define CONFIG_INI_MAX_SECTION 50

struct parse_state {
	struct config *c;
	struct kbuf in;          /* the file's bytes, read line by line */
	int line;                /* line the reader last returned */
	int header_line;         /* line of the last [section] header */
	int sec_header;          /* header_line of the current section */
	int keyd_seen;           /* a [keyd] section was started */
	int line_too_long;
	char *err;
	size_t errlen;
	int failed;
	/* the section being parsed */
	enum { SEC_NONE, SEC_KEYD, SEC_KEY, SEC_CLIENT } sec;
	size_t sec_idx;
	char sec_name[128];
	/* settings seen in the current section, to refuse duplicates */
	char seen[32][32];
	size_t n_seen;
	/* raw key lists of clients, resolved once all keys are known */
	char **client_keys[CONFIG_MAX_CLIENTS];
	size_t client_nkeys[CONFIG_MAX_CLIENTS];
	int client_keys_line[CONFIG_MAX_CLIENTS];
	int has_max_frame;
};

static void __attribute__((format(printf, 2, 3)))
fail(struct parse_state *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->failed)
		return;
	ps->failed = 1;
	/* Line 0: a whole-file problem (a required setting missing). */
	if (ps->line > 0)
		n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->c->path,
		    ps->line);
	else
		n = snprintf(ps->err, ps->errlen, "%s: ", ps->c->path);
	if (n < 0 || (size_t)n >= ps->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* inih reads through this, so every byte passes the bounded buffer and the
 * line number of each setting is known when the handler sees it. */
static char *
read_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	size_t n = 0, max;
	uint8_t ch;

	if (num <= 1 || kbuf_avail(&ps->in) == 0 || ps->line_too_long)
		return NULL;
	max = (size_t)num - 1;
	ps->line++;
	while (n < max && kbuf_get_u8(&ps->in, &ch) == KEYD_OK) {
		if (ch == '\0') {
			fail(ps, "NUL byte in configuration");
			return NULL;
		}
		str[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (n == max && str[n - 1] != '\n' && kbuf_avail(&ps->in) > 0) {
		ps->line_too_long = 1;
		fail(ps, "line is longer than %d characters", num - 2);
		return NULL;
	}
	str[n] = '\0';
	/* inih reports a section only with its first setting; keep the
	 * header's own line for messages about the section. */
	{
		const char *h = str;

		if (ps->line == 1 && !strncmp(h, "\xef\xbb\xbf", 3))
			h += 3;
		/* At the start of a line only: an indented one may continue
		 * a value. */
		if (*h == '[') {
			const char *end = strchr(h, ']');

			ps->header_line = ps->line;
			/* inih goes on after a header without ']', filing
			 * the settings under the previous section, and
			 * silently cuts long section names: refuse both. */
			if (end == NULL)
				fail(ps, "syntax error: section header without "
				    "']'");
			else if (end - h - 1 >= CONFIG_INI_MAX_SECTION)
				fail(ps, "section header is longer than %d "
				    "characters; use a shorter name",
				    CONFIG_INI_MAX_SECTION - 1);
		}
	}
	return str;
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > CONFIG_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return 0;
	return 1;
}

static char *
xstrdup(struct parse_state *ps, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fail(ps, "out of memory");
	return d;
}

static void
set_str(struct parse_state *ps, char **dst, const char *value)
{
	if (*value == '\0') {
		free(*dst);
		*dst = NULL;
		return;
	}
	free(*dst);
	*dst = xstrdup(ps, value);
}

static int
parse_bool(struct parse_state *ps, const char *name, const char *v, int *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") ||
	    !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
	    !strcmp(v, "0"))
		*out = 0;
	else {
		fail(ps, "%s = '%s': expected yes or no", name, v);
		return -1;
	}
	return 0;
}

static int
parse_uint(struct parse_state *ps, const char *name, const char *v,
    unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	if (!isdigit((unsigned char)*v)) {
		fail(ps, "%s = '%s': expected a whole number", name, v);
		return -1;
	}
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max) {
		fail(ps, "%s = '%s': expected a whole number from %u to %u",
		    name, v, min, max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

/* Splits a comma-separated list into trimmed, non-empty items. */
static char **
split_list(struct parse_state *ps, const char *name, const char *v, size_t *n)
{
	char **items = NULL, *copy = NULL, *tok, *save = NULL;
	size_t count = 0;

	*n = 0;
	if ((copy = xstrdup(ps, v)) == NULL)
		return NULL;
	if ((items = calloc(CONFIG_MAX_LIST, sizeof(*items))) == NULL) {
		fail(ps, "out of memory");
		goto out;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *end;

		while (isspace((unsigned char)*tok))
			tok++;
		end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*tok == '\0') {
			fail(ps, "%s: empty item in list", name);
			goto out;
		}
		if (count == CONFIG_MAX_LIST) {
			fail(ps, "%s: more than %d items", name, CONFIG_MAX_LIST);
			goto out;
		}
		if ((items[count++] = xstrdup(ps, tok)) == NULL)
			goto out;
	}
	if (count == 0) {
		fail(ps, "%s: the list is empty", name);
		goto out;
	}
	free(copy);
	*n = count;
	return items;
out:
	free(copy);
	if (items != NULL) {
		for (size_t i = 0; i < count; i++)
			free(items[i]);
		free(items);
	}
	return NULL;
}

static void
free_list(char **items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

static const struct {
	const char *name;
	unsigned bit;
} op_names[] = {
	{ "sign", CONFIG_OP_SIGN },
	{ "decrypt", CONFIG_OP_DECRYPT },
	{ "srtp-new", CONFIG_OP_SRTP_NEW },
	{ "srtp-open", CONFIG_OP_SRTP_OPEN },
	{ "status", CONFIG_OP_STATUS },
	{ "passport", CONFIG_OP_PASSPORT },
	{ "reload", CONFIG_OP_RELOAD },
};

const char *
config_op_name(unsigned op)
{
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (op_names[i].bit == op)
			return op_names[i].name;
	return "unknown";
}

unsigned
config_op_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(op_names[i].name, name))
			return op_names[i].bit;
	return 0;
}

static int
parse_ops(struct parse_state *ps, const char *name, const char *v,
    unsigned allowed, unsigned *out)
{
	char **items;
	size_t n, i;
	unsigned ops = 0, bit;

	if ((items = split_list(ps, name, v, &n)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		bit = config_op_parse(items[i]);
		if (bit == 0 || !(bit & allowed)) {
			fail(ps, "%s: unknown op '%s' (expected %s)", name,
			    items[i], (allowed & CONFIG_OP_STATUS) ?
			    "sign, decrypt, srtp-new, srtp-open, passport, "
			    "status or reload" :
			    "sign, decrypt, srtp-new, srtp-open or passport");
			free_list(items, n);
			return -1;
		}
		if (ops & bit) {
			fail(ps, "%s: op '%s' is listed twice", name, items[i]);
			free_list(items, n);
			return -1;
		}
		ops |= bit;
	}
	free_list(items, n);
	*out = ops;
	return 0;
}

static int
parse_rate(struct parse_state *ps, const char *v, double *out)
{
	char *end;
	double n, per;

	errno = 0;
	n = strtod(v, &end);
	if (errno != 0 || end == v || !(n > 0)) {
		fail(ps, "rate = '%s': expected N/s, N/m or N/h with N > 0", v);
		return -1;
	}
	if (!strcmp(end, "/s"))
		per = 1;
	else if (!strcmp(end, "/m"))
		per = 60;
	else if (!strcmp(end, "/h"))
		per = 3600;
	else {
		fail(ps, "rate = '%s': expected N/s, N/m or N/h", v);
		return -1;
	}
	if (n / per > CONFIG_MAX_RATE) {
		fail(ps, "rate = '%s': at most %.0f/s", v, CONFIG_MAX_RATE);
		return -1;
	}
	*out = n / per;
	return 0;
}

static int
parse_ids(struct parse_state *ps, const char *name, const char *v, int is_gid,
    unsigned **out, size_t *nout)
{
	char **items;
	size_t n, i;
	unsigned *ids;

	if ((items = split_list(ps, name, v, &n)) == NULL)
		return -1;
	if ((ids = calloc(n, sizeof(*ids))) == NULL) {
		free_list(items, n);
		fail(ps, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *s = items[i];
		char *end;
		unsigned long num;

		if (isdigit((unsigned char)*s)) {
			errno = 0;
			num = strtoul(s, &end, 10);
			if (errno != 0 || *end != '\0' || num >= UINT_MAX) {
				fail(ps, "%s: '%s' is not a valid %s", name, s,
				    is_gid ? "gid" : "uid");
				goto bad;
			}
			ids[i] = (unsigned)num;
		} else if (is_gid) {
			struct group *g = getgrnam(s);

			if (g == NULL) {
				fail(ps, "%s: no group named '%s' on this system",
				    name, s);
				goto bad;
			}
			ids[i] = g->gr_gid;
		} else {
			struct passwd *p = getpwnam(s);

			if (p == NULL) {
				fail(ps, "%s: no user named '%s' on this system",
				    name, s);
				goto bad;
			}
			ids[i] = p->pw_uid;
		}
		for (size_t j = 0; j < i; j++)
			if (ids[j] == ids[i]) {
				fail(ps, "%s: '%s' is listed twice", name, s);
				goto bad;
			}
	}
	free_list(items, n);
	*out = ids;
	*nout = n;
	return 0;
bad:
	free_list(items, n);
	free(ids);
	return -1;
}

static int
seen_before(struct parse_state *ps, const char *name)
{
	for (size_t i = 0; i < ps->n_seen; i++)
		if (!strcmp(ps->seen[i], name))
			return 1;
	if (ps->n_seen < sizeof(ps->seen) / sizeof(ps->seen[0]) &&
	    strlen(name) < sizeof(ps->seen[0]))
		snprintf(ps->seen[ps->n_seen++], sizeof(ps->seen[0]), "%s",
		    name);
	return 0;
}

static int
begin_section_at(struct parse_state *ps, const char *section)
{
	struct config *c = ps->c;
	const char *name;

	ps->n_seen = 0;
	snprintf(ps->sec_name, sizeof(ps->sec_name), "%s", section);
	if (!strcmp(section, "keyd")) {
		/* A second [keyd] would start a fresh duplicate check. */
		if (ps->keyd_seen++) {
			fail(ps, "[keyd] appears twice; merge the two sections");
			return -1;
		}
		ps->sec = SEC_KEYD;
		return 0;
	}
	if (!strncmp(section, "key ", 4)) {
		name = section + 4;
		while (*name == ' ')
			name++;
		if (!valid_name(name)) {
			fail(ps, "[%s]: a key name is 1 to %d letters, digits, "
			    "'.', '_' or '-'", section, CONFIG_NAME_MAX);
			return -1;
		}
		if (config_find_key(c, name) >= 0) {
			fail(ps, "[%s]: key '%s' is defined twice", section,
			    name);
			return -1;
		}
		if (c->n_keys == CONFIG_MAX_KEYS) {
			fail(ps, "more than %d [key] sections", CONFIG_MAX_KEYS);
			return -1;
		}
		ps->sec = SEC_KEY;
		ps->sec_idx = c->n_keys++;
		c->keys[ps->sec_idx].name = xstrdup(ps, name);
		c->keys[ps->sec_idx].line = ps->line;
		return c->keys[ps->sec_idx].name == NULL ? -1 : 0;
	}
	if (!strncmp(section, "client ", 7)) {
		name = section + 7;
		while (*name == ' ')
			name++;
		if (!valid_name(name)) {
			fail(ps, "[%s]: a client name is 1 to %d letters, "
			    "digits, '.', '_' or '-'", section, CONFIG_NAME_MAX);
			return -1;
		}
		for (size_t i = 0; i < c->n_clients; i++)
			if (!strcmp(c->clients[i].name, name)) {
				fail(ps, "[%s]: client '%s' is defined twice",
				    section, name);
				return -1;
			}
		if (c->n_clients == CONFIG_MAX_CLIENTS) {
			fail(ps, "more than %d [client] sections",
			    CONFIG_MAX_CLIENTS);
			return -1;
		}
		ps->sec = SEC_CLIENT;
		ps->sec_idx = c->n_clients++;
		c->clients[ps->sec_idx].name = xstrdup(ps, name);
		c->clients[ps->sec_idx].line = ps->line;
		return c->clients[ps->sec_idx].name == NULL ? -1 : 0;
	}
	fail(ps, "unknown section [%s] (expected [keyd], [key NAME] or "
	    "[client NAME])", section);
	return -1;
}

/* Starts a section when its first setting arrives, naming the header's
 * line in its errors and in the key's or client's line. */
static int
begin_section(struct parse_state *ps, const char *section)
{
	int at = ps->line;

	if (ps->header_line > 0)
		ps->line = ps->header_line;
	if (begin_section_at(ps, section) != 0)
		return -1;
	ps->sec_header = ps->header_line;
	ps->line = at;
	return 0;
}

static int
keyd_setting(struct parse_state *ps, const char *name, const char *v)
{
	struct config *c = ps->c;
	unsigned u;

	if (!strcmp(name, "socket")) {
		if (*v != '/') {
			fail(ps, "socket = '%s': must be an absolute path", v);
			return -1;
		}
		if (strlen(v) >= 108) {
			fail(ps, "socket: path is longer than 107 bytes");
			return -1;
		}
		set_str(ps, &c->socket, v);
	} else if (!strcmp(name, "socket_group")) {
		set_str(ps, &c->socket_group, v);
		if (c->socket_group != NULL) {
			unsigned *g;
			size_t n;

			if (parse_ids(ps, name, v, 1, &g, &n) < 0)
				return -1;
			if (n != 1) {
				free(g);
				fail(ps, "socket_group: name one group");
				return -1;
			}
			c->socket_gid = g[0];
			c->has_socket_gid = 1;
			free(g);
		}
	} else if (!strcmp(name, "module")) {
		if (*v != '/') {
			fail(ps, "module = '%s': must be an absolute path", v);
			return -1;
		}
		set_str(ps, &c->module, v);
	} else if (!strcmp(name, "token")) {
		if (strncmp(v, "pkcs11:", 7) != 0) {
			fail(ps, "token = '%s': expected a PKCS#11 URI "
			    "(pkcs11:token=LABEL)", v);
			return -1;
		}
		set_str(ps, &c->token, v);
	} else if (!strcmp(name, "failover_token")) {
		if (*v != '\0' && strncmp(v, "pkcs11:", 7) != 0) {
			fail(ps, "failover_token = '%s': expected a PKCS#11 URI "
			    "(pkcs11:token=LABEL)", v);
			return -1;
		}
		set_str(ps, &c->failover_token, v);
	} else if (!strcmp(name, "token_timeout")) {
		if (parse_uint(ps, name, v, CONFIG_MIN_TOKEN_TIMEOUT_MS,
		    CONFIG_MAX_TOKEN_TIMEOUT_MS, &u) < 0)
			return -1;
		c->token_timeout_ms = u;
	} else if (!strcmp(name, "key_copies")) {
		if (parse_bool(ps, name, v, &c->key_copies) < 0)
			return -1;
	} else if (!strcmp(name, "pin_file")) {
		if (*v != '/') {
			fail(ps, "pin_file = '%s': must be an absolute path", v);
			return -1;
		}
		set_str(ps, &c->pin_file, v);
	} else if (!strcmp(name, "user")) {
		set_str(ps, &c->user, v);
		if (c->user != NULL) {
			struct passwd *p = getpwnam(v);

			if (p == NULL) {
				fail(ps, "user: no user named '%s' on this "
				    "system", v);
				return -1;
			}
			c->user_uid = p->pw_uid;
			c->user_gid = p->pw_gid;
		}
	} else if (!strcmp(name, "audit_log")) {
		if (*v != '/') {
			fail(ps, "audit_log = '%s': must be an absolute path",
			    v);
			return -1;
		}
		set_str(ps, &c->audit_log, v);
	} else if (!strcmp(name, "audit_key")) {
		if (*v != '\0' && strncmp(v, "pkcs11:", 7) != 0) {
			fail(ps, "audit_key = '%s': expected a PKCS#11 URI "
			    "(pkcs11:token=...;object=...;type=private)", v);
			return -1;
		}
		set_str(ps, &c->audit_key, v);
	} else if (!strcmp(name, "audit_tn")) {
		if (!strcmp(v, "clear"))
			c->audit_tn = CONFIG_AUDIT_TN_CLEAR;
		else if (!strcmp(v, "hmac"))
			c->audit_tn = CONFIG_AUDIT_TN_HMAC;
		else {
			fail(ps, "audit_tn = '%s': expected clear or hmac", v);
			return -1;
		}
	} else if (!strcmp(name, "audit_tn_key")) {
		if (*v != '\0' && strncmp(v, "pkcs11:", 7) != 0) {
			fail(ps, "audit_tn_key = '%s': expected a PKCS#11 URI "
			    "(pkcs11:token=...;object=...;type=secret-key)", v);
			return -1;
		}
		set_str(ps, &c->audit_tn_key, v);
	} else if (!strcmp(name, "audit_checkpoint_lines")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_CHECKPOINT_LINES,
		    &u) < 0)
			return -1;
		c->audit_checkpoint_lines = u;
	} else if (!strcmp(name, "audit_checkpoint_interval")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_CHECKPOINT_S, &u) < 0)
			return -1;
		c->audit_checkpoint_s = u;
	} else if (!strcmp(name, "syslog")) {
		if (parse_bool(ps, name, v, &c->syslog) < 0)
			return -1;
	} else if (!strcmp(name, "syslog_socket")) {
		if (*v != '/') {
			fail(ps, "syslog_socket = '%s': must be an absolute path",
			    v);
			return -1;
		}
		if (strlen(v) >= 108) {
			fail(ps, "syslog_socket: path is longer than 107 bytes");
			return -1;
		}
		free(c->syslog_socket);
		c->syslog_socket = xstrdup(ps, v);
	} else if (!strcmp(name, "sandbox")) {
		if (parse_bool(ps, name, v, &c->sandbox) < 0)
			return -1;
	} else if (!strcmp(name, "module_network")) {
		if (parse_bool(ps, name, v, &c->module_network) < 0)
			return -1;
	} else if (!strcmp(name, "audit_sync")) {
		if (!strcmp(v, "interval"))
			c->audit_sync = CONFIG_SYNC_INTERVAL;
		else if (!strcmp(v, "request"))
			c->audit_sync = CONFIG_SYNC_REQUEST;
		else {
			fail(ps, "audit_sync = '%s': expected interval or "
			    "request", v);
			return -1;
		}
	} else if (!strcmp(name, "audit_sync_ms")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_SYNC_MS, &u) < 0)
			return -1;
		c->audit_sync_ms = u;
	} else if (!strcmp(name, "max_connections")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_MAX_CONNECTIONS,
		    &u) < 0)
			return -1;
		c->max_connections = u;
	} else if (!strcmp(name, "max_frame")) {
		if (parse_uint(ps, name, v, CONFIG_MIN_FRAME, 1024 * 1024,
		    &u) < 0)
			return -1;
		c->max_frame = u;
	} else if (!strcmp(name, "max_inflight")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_INFLIGHT_LIMIT,
		    &u) < 0)
			return -1;
		c->max_inflight = u;
	} else if (!strcmp(name, "idle_timeout")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_IDLE_TIMEOUT_S,
		    &u) < 0)
			return -1;
		c->idle_timeout_s = u;
	} else if (!strcmp(name, "workers")) {
		if (parse_uint(ps, name, v, 0, CONFIG_MAX_WORKERS, &u) < 0)
			return -1;
		c->workers = u;
	} else if (!strcmp(name, "state_dir")) {
		if (*v != '/') {
			fail(ps, "state_dir = '%s': must be an absolute path", v);
			return -1;
		}
		free(c->state_dir);
		c->state_dir = xstrdup(ps, v);
	} else if (!strcmp(name, "srtp_limit_for_tests")) {
		/* TEST ONLY: lowers the SRTP blobs made per KEK (2^31) so that
		 * tests reach the limit; see docs/srtp.md. */
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_SRTP_LIMIT, &u) < 0)
			return -1;
		c->srtp_limit_for_tests = u;
	} else {
		fail(ps, "unknown setting '%s' in [keyd]", name);
		return -1;
	}
	return 0;
}

/* previous = URI[, URI...], repeatable: earlier SRTP KEK versions. A
 * PKCS#11 URI may hold commas itself, so a list is split only at a comma
 * that starts the next "pkcs11:". */
static int
add_previous(struct parse_state *ps, struct config_key *k, const char *v)
{
	const char *p = v, *next, *end;
	char **grown;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "pkcs11:", 7) != 0) {
			fail(ps, "previous = '%s': expected PKCS#11 URIs of "
			    "earlier KEK versions, separated by commas", v);
			return -1;
		}
		for (next = strchr(p + 7, ','); next != NULL;
		    next = strchr(next + 1, ',')) {
			const char *q = next + 1;

			while (*q == ' ' || *q == '\t')
				q++;
			if (strncmp(q, "pkcs11:", 7) == 0)
				break;
		}
		end = next != NULL ? next : p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (k->n_previous == CONFIG_MAX_LIST) {
			fail(ps, "previous: more than %d earlier KEK versions",
			    CONFIG_MAX_LIST);
			return -1;
		}
		grown = realloc(k->previous, (k->n_previous + 1) *
		    sizeof(*k->previous));
		if (grown == NULL) {
			fail(ps, "out of memory");
			return -1;
		}
		k->previous = grown;
		if ((k->previous[k->n_previous] = strndup(p,
		    (size_t)(end - p))) == NULL) {
			fail(ps, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < k->n_previous; i++)
			if (!strcmp(k->previous[i], k->previous[k->n_previous])) {
				fail(ps, "previous: %s is listed twice",
				    k->previous[i]);
				free(k->previous[k->n_previous]);
				return -1;
			}
		k->n_previous++;
		p = next != NULL ? next + 1 : end + strlen(end);
	}
	return 0;
}

/* x5u goes into the PASSporT's JSON header and, between angle brackets,
 * into the Identity header: an https URL of printable ASCII without the
 * characters either would have to escape. */
static int
parse_x5u(struct parse_state *ps, const char *v)
{
	size_t n = strlen(v);

	if (strncmp(v, "https://", 8) != 0 || n <= 8 || n > CONFIG_X5U_MAX) {
		fail(ps, "x5u = '%.80s': expected the https:// URL of the "
		    "certificate, at most %d bytes", v, CONFIG_X5U_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i] <= ' ' || v[i] > '~' || strchr("\"\\<>;,", v[i])) {
			fail(ps, "x5u: the URL must be printable ASCII without "
			    "spaces, quotes, backslashes, '<', '>', ';' or ','");
			return -1;
		}
	return 0;
}

static int
all_digits(const char *s, size_t n)
{
	if (n == 0 || n > CONFIG_TN_BUF - 1)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* orig_tns = 12025550100, 1202555*, 12025550100-12025550199: canonical
 * TNs (digits only, 1 to 15), prefixes, ranges of one length. */
static int
parse_tn_rules(struct parse_state *ps, const char *name, const char *v,
    struct config_client *cl)
{
	char **items;
	size_t n, i;
	int r = -1;

	if ((items = split_list(ps, name, v, &n)) == NULL)
		return -1;
	if ((cl->orig_tns = calloc(n, sizeof(*cl->orig_tns))) == NULL) {
		fail(ps, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct config_tn_rule *t = &cl->orig_tns[i];
		const char *it = items[i], *dash = strchr(it, '-');
		size_t len = strlen(it);

		if (dash != NULL) {
			size_t a = (size_t)(dash - it), b = len - a - 1;

			if (!all_digits(it, a) || !all_digits(dash + 1, b) ||
			    a != b) {
				fail(ps, "%s: '%s' is not a range of two TNs of "
				    "the same length (12025550100-12025550199)",
				    name, it);
				goto out;
			}
			memcpy(t->lo, it, a);
			memcpy(t->hi, dash + 1, b);
			if (strcmp(t->lo, t->hi) > 0) {
				fail(ps, "%s: the range '%s' ends before it "
				    "starts", name, it);
				goto out;
			}
		} else if (len > 0 && it[len - 1] == '*') {
			if (!all_digits(it, len - 1)) {
				fail(ps, "%s: '%s' is not a prefix of digits "
				    "followed by * (1202555*)", name, it);
				goto out;
			}
			memcpy(t->lo, it, len - 1);
			t->prefix = 1;
		} else if (all_digits(it, len)) {
			memcpy(t->lo, it, len);
		} else {
			fail(ps, "%s: '%s' is not a TN of 1 to 15 digits without "
			    "'+' or separators, a prefix (1202555*) or a range "
			    "(12025550100-12025550199)", name, it);
			goto out;
		}
	}
	cl->n_orig_tns = n;
	r = 0;
out:
	if (r != 0) {
		free(cl->orig_tns);
		cl->orig_tns = NULL;
	}
	free_list(items, n);
	return r;
}

static int
key_setting(struct parse_state *ps, const char *name, const char *v)
{
	struct config_key *k = &ps->c->keys[ps->sec_idx];

	if (!strcmp(name, "uri")) {
		if (strncmp(v, "pkcs11:", 7) != 0) {
			fail(ps, "uri = '%s': expected a PKCS#11 URI "
			    "(pkcs11:token=...;object=...)", v);
			return -1;
		}
		set_str(ps, &k->uri, v);
	} else if (!strcmp(name, "ops")) {
		if (parse_ops(ps, name, v, CONFIG_OP_SIGN | CONFIG_OP_DECRYPT |
		    CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN |
		    CONFIG_OP_PASSPORT, &k->ops) < 0)
			return -1;
	} else if (!strcmp(name, "x5u")) {
		if (parse_x5u(ps, v) < 0)
			return -1;
		set_str(ps, &k->x5u, v);
	} else if (!strcmp(name, "certificate")) {
		if (*v != '/') {
			fail(ps, "certificate = '%s': must be an absolute path "
			    "(a PEM file, the chain with the leaf first)", v);
			return -1;
		}
		set_str(ps, &k->certificate, v);
	} else if (!strcmp(name, "pkcs1_decrypt")) {
		/* A token's own PKCS#1 v1.5 decryption is a padding oracle
		 * (SoftHSM2's is); keyd only offers it with implicit
		 * rejection done by itself over raw RSA. */
		if (!strcmp(v, "no"))
			k->pkcs1_decrypt = 0;
		else if (!strcmp(v, "implicit-rejection"))
			k->pkcs1_decrypt = 1;
		else {
			fail(ps, "pkcs1_decrypt = '%s': expected no or "
			    "implicit-rejection", v);
			return -1;
		}
	} else if (!strcmp(name, "previous")) {
		if (add_previous(ps, k, v) < 0)
			return -1;
	} else {
		fail(ps, "unknown setting '%s' in [%s]", name, ps->sec_name);
		return -1;
	}
	return 0;
}

static int
client_setting(struct parse_state *ps, const char *name, const char *v)
{
	struct config_client *cl = &ps->c->clients[ps->sec_idx];

	if (!strcmp(name, "uid")) {
		if (parse_ids(ps, name, v, 0, &cl->uids, &cl->n_uids) < 0)
			return -1;
	} else if (!strcmp(name, "gid")) {
		if (parse_ids(ps, name, v, 1, &cl->gids, &cl->n_gids) < 0)
			return -1;
	} else if (!strcmp(name, "keys")) {
		char **items;
		size_t n;

		if ((items = split_list(ps, name, v, &n)) == NULL)
			return -1;
		ps->client_keys[ps->sec_idx] = items;
		ps->client_nkeys[ps->sec_idx] = n;
		ps->client_keys_line[ps->sec_idx] = ps->line;
	} else if (!strcmp(name, "ops")) {
		if (parse_ops(ps, name, v, CONFIG_OP_SIGN | CONFIG_OP_DECRYPT |
		    CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN |
		    CONFIG_OP_STATUS | CONFIG_OP_PASSPORT | CONFIG_OP_RELOAD,
		    &cl->ops) < 0)
			return -1;
	} else if (!strcmp(name, "attest_max")) {
		if (!strcmp(v, "A"))
			cl->attest_max = CONFIG_ATTEST_A;
		else if (!strcmp(v, "B"))
			cl->attest_max = CONFIG_ATTEST_B;
		else if (!strcmp(v, "C"))
			cl->attest_max = CONFIG_ATTEST_C;
		else {
			fail(ps, "attest_max = '%s': expected A, B or C", v);
			return -1;
		}
	} else if (!strcmp(name, "orig_tns")) {
		if (parse_tn_rules(ps, name, v, cl) < 0)
			return -1;
	} else if (!strcmp(name, "rate")) {
		if (parse_rate(ps, v, &cl->rate) < 0)
			return -1;
	} else if (!strcmp(name, "max_connections")) {
		if (parse_uint(ps, name, v, 1, CONFIG_MAX_MAX_CONNECTIONS,
		    &cl->max_connections) < 0)
			return -1;
	} else {
		fail(ps, "unknown setting '%s' in [%s]", name, ps->sec_name);
		return -1;
	}
	return 0;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;

	if (ps->failed)
		return 0;
	if (name == NULL) {
		/* inih calls with name NULL at the start of each section */
		return begin_section(ps, section) == 0;
	}
	if (*section == '\0') {
		fail(ps, "setting '%s' outside a section; put it under [keyd]",
		    name);
		return 0;
	}
	/* A new header with the same name as the section before is a new
	 * section too (a duplicate, to be refused). */
	if ((ps->sec == SEC_NONE || strcmp(section, ps->sec_name) != 0 ||
	    ps->header_line != ps->sec_header) &&
	    begin_section(ps, section) != 0)
		return 0;
	/* previous is the one setting that may be repeated (a list). */
	if (!(ps->sec == SEC_KEY && !strcmp(name, "previous")) &&
	    seen_before(ps, name)) {
		fail(ps, "'%s' is set twice in [%s]", name, ps->sec_name);
		return 0;
	}
	switch (ps->sec) {
	case SEC_KEYD:
		return keyd_setting(ps, name, value) == 0;
	case SEC_KEY:
		return key_setting(ps, name, value) == 0;
	case SEC_CLIENT:
		return client_setting(ps, name, value) == 0;
	case SEC_NONE:
		break;
	}
	return 0;
}

long
config_find_key(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_keys; i++)
		if (c->keys[i].name != NULL && !strcmp(c->keys[i].name, name))
			return (long)i;
	return -1;
}

/* A client without max_connections of its own gets an equal share of the
 * global limit. With only the global limit, one client could open every
 * connection keyd accepts and leave every other client "busy". */
static void
set_client_connections(struct config *c)
{
	unsigned share;

	if (c->n_clients == 0)
		return;
	share = c->max_connections / (unsigned)c->n_clients;
	if (share == 0)
		share = 1;
	for (size_t i = 0; i < c->n_clients; i++)
		if (c->clients[i].max_connections == 0)
			c->clients[i].max_connections = share;
}

static int
check_semantics(struct parse_state *ps)
{
	struct config *c = ps->c;
	size_t i, j, a, b;

	ps->line = 0;
#define REQUIRE(field, what) \
	if (c->field == NULL) { \
		fail(ps, "[keyd] " what " is required"); \
		return -1; \
	}
	REQUIRE(module, "module (the PKCS#11 module's path)");
	REQUIRE(token, "token (the token's PKCS#11 URI)");
	REQUIRE(audit_log, "audit_log (the audit log's path)");
#undef REQUIRE
	if (c->failover_token != NULL && !strcmp(c->failover_token, c->token)) {
		fail(ps, "failover_token is the same URI as token; name the "
		    "second token (a token restored from a backup)");
		return -1;
	}
	for (i = 0; i < c->n_keys; i++) {
		struct config_key *k = &c->keys[i];

		ps->line = k->line;
		if (k->uri == NULL) {
			fail(ps, "[key %s] has no uri", k->name);
			return -1;
		}
		if (k->ops == 0) {
			fail(ps, "[key %s] has no ops (say what the key is "
			    "for: sign, decrypt, srtp-new, srtp-open, passport)",
			    k->name);
			return -1;
		}
		if (k->pkcs1_decrypt && !(k->ops & CONFIG_OP_DECRYPT)) {
			fail(ps, "[key %s] has pkcs1_decrypt but not the "
			    "decrypt op", k->name);
			return -1;
		}
		if (k->n_previous > 0 && !(k->ops & (CONFIG_OP_SRTP_NEW |
		    CONFIG_OP_SRTP_OPEN))) {
			fail(ps, "[key %s] has previous (earlier SRTP KEK "
			    "versions) but neither srtp-new nor srtp-open in "
			    "its ops", k->name);
			return -1;
		}
		for (j = 0; j < k->n_previous; j++)
			if (!strcmp(k->previous[j], k->uri)) {
				fail(ps, "[key %s] lists its own uri under "
				    "previous", k->name);
				return -1;
			}
		/* A client that may sign with the SHAKEN key may sign any
		 * PASSporT it likes: the key serves passport alone. */
		if ((k->ops & CONFIG_OP_PASSPORT) &&
		    k->ops != CONFIG_OP_PASSPORT) {
			fail(ps, "[key %s] has passport and other ops; a "
			    "passport key serves only passport (with sign, a "
			    "client could make any PASSporT it likes)", k->name);
			return -1;
		}
		if ((k->ops & CONFIG_OP_PASSPORT) && k->x5u == NULL) {
			fail(ps, "[key %s] has ops = passport but no x5u (the "
			    "https:// URL of its certificate)", k->name);
			return -1;
		}
		if (!(k->ops & CONFIG_OP_PASSPORT) && (k->x5u != NULL ||
		    k->certificate != NULL)) {
			fail(ps, "[key %s] has %s but not the passport op",
			    k->name, k->x5u != NULL ? "x5u" : "certificate");
			return -1;
		}
	}
	ps->line = 0;
	if (c->audit_tn == CONFIG_AUDIT_TN_HMAC && c->audit_tn_key == NULL) {
		fail(ps, "audit_tn = hmac needs audit_tn_key (the PKCS#11 URI "
		    "of a secret key on the token for HMAC-SHA256)");
		return -1;
	}
	for (i = 0; i < c->n_clients; i++) {
		struct config_client *cl = &c->clients[i];

		ps->line = cl->line;
		if (cl->n_uids == 0 && cl->n_gids == 0) {
			fail(ps, "[client %s] needs a uid or a gid to match "
			    "peers by", cl->name);
			return -1;
		}
		if (cl->ops == 0) {
			fail(ps, "[client %s] has no ops", cl->name);
			return -1;
		}
		if ((cl->ops & CONFIG_OP_PASSPORT) &&
		    cl->attest_max == CONFIG_ATTEST_NONE) {
			fail(ps, "[client %s] has the passport op but no "
			    "attest_max (A, B or C: the highest attestation it "
			    "may assert)", cl->name);
			return -1;
		}
		if (!(cl->ops & CONFIG_OP_PASSPORT) &&
		    (cl->attest_max != CONFIG_ATTEST_NONE ||
		    cl->n_orig_tns > 0)) {
			fail(ps, "[client %s] has %s but not the passport op",
			    cl->name, cl->n_orig_tns > 0 ? "orig_tns" :
			    "attest_max");
			return -1;
		}
		if (cl->max_connections > c->max_connections) {
			fail(ps, "[client %s] max_connections %u is over the "
			    "daemon's max_connections %u", cl->name,
			    cl->max_connections, c->max_connections);
			return -1;
		}
		if (ps->client_nkeys[i] > 0) {
			cl->keys = calloc(ps->client_nkeys[i],
			    sizeof(*cl->keys));
			if (cl->keys == NULL) {
				fail(ps, "out of memory");
				return -1;
			}
		}
		ps->line = ps->client_keys_line[i];
		for (j = 0; j < ps->client_nkeys[i]; j++) {
			long k = config_find_key(c, ps->client_keys[i][j]);

			if (k < 0) {
				fail(ps, "[client %s] keys: no [key %s] is "
				    "defined", cl->name, ps->client_keys[i][j]);
				return -1;
			}
			for (size_t m = 0; m < cl->n_keys; m++)
				if (cl->keys[m] == (size_t)k) {
					fail(ps, "[client %s] keys: '%s' is "
					    "listed twice", cl->name,
					    ps->client_keys[i][j]);
					return -1;
				}
			cl->keys[cl->n_keys++] = (size_t)k;
		}
	}
	/* A peer must map to one client: the same uid, or the same gid, in
	 * two sections would make the match depend on section order. */
	for (i = 0; i < c->n_clients; i++)
		for (j = i + 1; j < c->n_clients; j++) {
			struct config_client *x = &c->clients[i];
			struct config_client *y = &c->clients[j];

			ps->line = y->line;
			for (a = 0; a < x->n_uids; a++)
				for (b = 0; b < y->n_uids; b++)
					if (x->uids[a] == y->uids[b]) {
						fail(ps, "[client %s] and "
						    "[client %s] both match uid "
						    "%u; a uid may be in one "
						    "client only", x->name,
						    y->name, x->uids[a]);
						return -1;
					}
			for (a = 0; a < x->n_gids; a++)
				for (b = 0; b < y->n_gids; b++)
					if (x->gids[a] == y->gids[b]) {
						fail(ps, "[client %s] and "
						    "[client %s] both match gid "
						    "%u; a gid may be in one "
						    "client only", x->name,
						    y->name, x->gids[a]);
						return -1;
					}
		}
	set_client_connections(c);
	if (c->max_frame == 0)
		c->max_frame = 64 * 1024;
	return 0;
}

static struct config *
config_new(const char *name)
{
	struct config *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->keys = calloc(CONFIG_MAX_KEYS, sizeof(*c->keys));
	c->clients = calloc(CONFIG_MAX_CLIENTS, sizeof(*c->clients));
	c->path = strdup(name);
	c->socket = strdup(CONFIG_DEFAULT_SOCKET);
	c->state_dir = strdup(CONFIG_DEFAULT_STATE_DIR);
	c->syslog_socket = strdup(CONFIG_DEFAULT_SYSLOG_SOCKET);
	if (c->keys == NULL || c->clients == NULL || c->path == NULL ||
	    c->socket == NULL || c->state_dir == NULL ||
	    c->syslog_socket == NULL) {
		config_free(c);
		return NULL;
	}
	c->audit_sync = CONFIG_SYNC_INTERVAL;
	c->sandbox = 1;
	c->audit_checkpoint_lines = CONFIG_DEFAULT_CHECKPOINT_LINES;
	c->audit_checkpoint_s = CONFIG_DEFAULT_CHECKPOINT_S;
	c->audit_sync_ms = CONFIG_DEFAULT_AUDIT_SYNC_MS;
	c->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	c->max_inflight = CONFIG_DEFAULT_MAX_INFLIGHT;
	c->idle_timeout_s = CONFIG_DEFAULT_IDLE_TIMEOUT_S;
	c->token_timeout_ms = CONFIG_DEFAULT_TOKEN_TIMEOUT_MS;
	c->key_copies = 1;
	return c;
}

int
config_check_module(const char *path, char **resolved, char *err,
    size_t errlen)
{
	char *real = NULL, *dir = NULL, *slash;
	struct stat st;
	int r = KEYD_ERR_CONFIG;

	*resolved = NULL;
	if ((real = realpath(path, NULL)) == NULL) {
		errf(err, errlen, "module %s: %s", path, strerror(errno));
		goto out;
	}
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "module %s: not a regular file", real);
		goto out;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		errf(err, errlen, "module %s must be owned by root and not "
		    "writable by group or others (owner uid %u, mode %04o)",
		    real, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((dir = strdup(real)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	while ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, &st) != 0) {
			errf(err, errlen, "module directory %s: %s", dir,
			    strerror(errno));
			goto out;
		}
		if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
			errf(err, errlen, "module directory %s must be owned "
			    "by root and not writable by group or others "
			    "(owner uid %u, mode %04o)", dir,
			    (unsigned)st.st_uid,
			    (unsigned)(st.st_mode & 07777));
			goto out;
		}
		if (!strcmp(dir, "/"))
			break;
	}
	*resolved = real;
	real = NULL;
	r = KEYD_OK;
out:
	free(real);
	free(dir);
	return r;
}

int
config_parse_buffer(const char *text, size_t len, const char *name,
    int check_files, struct config **out, char *err, size_t errlen)
{
	struct parse_state *ps;
	struct config *c = NULL;
	int r = KEYD_ERR_CONFIG, ir;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return KEYD_ERR_NOMEM;
	if ((c = config_new(name)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	ps->c = c;
	ps->err = err;
	ps->errlen = errlen;
	if (len > CONFIG_MAX_BYTES) {
		errf(err, errlen, "%s: larger than %d bytes", name,
		    CONFIG_MAX_BYTES);
		goto out;
	}
	kbuf_view(&ps->in, text, len);
	ir = ini_parse_stream(read_line, ps, handler, ps);
	if (ps->failed)
		goto out;
	if (ir != 0) {
		ps->line = ir > 0 ? ir : ps->line;
		fail(ps, "syntax error (expected [section] or name = value)");
		goto out;
	}
	if (check_semantics(ps) < 0)
		goto out;
	if (check_files) {
		if (config_check_module(c->module, &c->module_real, err,
		    errlen) != KEYD_OK)
			goto out;
	} else if ((c->module_real = strdup(c->module)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	*out = c;
	c = NULL;
	r = KEYD_OK;
out:
	for (size_t i = 0; i < CONFIG_MAX_CLIENTS; i++)
		free_list(ps->client_keys[i], ps->client_nkeys[i]);
	free(ps);
	config_free(c);
	return r;
}

int
config_read(const char *path, char **textp, size_t *lenp, char *err,
    size_t errlen)
{
	return config_read_owned(path, geteuid(), textp, lenp, err, errlen);
}

int
config_read_owned(const char *path, uid_t owner, char **textp, size_t *lenp,
    char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	ssize_t n;
	size_t got = 0;
	int fd = -1, r = KEYD_ERR_CONFIG;

	*textp = NULL;
	*lenp = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		errf(err, errlen, "cannot open configuration %s: %s%s", path,
		    strerror(errno), errno == ELOOP ?
		    " (it must not be a symbolic link)" : "");
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "configuration %s is not a regular file",
		    path);
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		errf(err, errlen, "configuration %s is writable by group or "
		    "others (mode %04o); run chmod go-w %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != owner) {
		errf(err, errlen, "configuration %s is owned by uid %u; it "
		    "must be owned by root", path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		errf(err, errlen, "configuration %s is larger than %d bytes",
		    path, CONFIG_MAX_BYTES);
		goto out;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	/* Read to the size fstat gave, and no further: a file that grows
	 * while it is read is cut there, never read past the limit. */
	while (got < (size_t)st.st_size) {
		n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errlen, "cannot read configuration %s: %s",
			    path, n < 0 ? strerror(errno) : "short read");
			goto out;
		}
		got += (size_t)n;
	}
	text[got] = '\0';
	*textp = text;
	*lenp = got;
	text = NULL;
	r = KEYD_OK;
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return r;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = config_read(path, &text, &len, err, errlen)) != KEYD_OK)
		return r;
	r = config_parse_buffer(text, len, path, 1, out, err, errlen);
	free(text);
	return r;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->socket);
	free(c->socket_group);
	free(c->module);
	free(c->module_real);
	free(c->token);
	free(c->pin_file);
	free(c->user);
	free(c->state_dir);
	free(c->syslog_socket);
	free(c->audit_log);
	free(c->audit_key);
	free(c->audit_tn_key);
	free(c->failover_token);
	for (size_t i = 0; c->keys != NULL && i < c->n_keys; i++) {
		free(c->keys[i].name);
		free(c->keys[i].uri);
		free(c->keys[i].x5u);
		free(c->keys[i].certificate);
		free_list(c->keys[i].previous, c->keys[i].n_previous);
	}
	for (size_t i = 0; c->clients != NULL && i < c->n_clients; i++) {
		free(c->clients[i].name);
		free(c->clients[i].uids);
		free(c->clients[i].gids);
		free(c->clients[i].keys);
		free(c->clients[i].orig_tns);
	}
	free(c->keys);
	free(c->clients);
	free(c);
}
