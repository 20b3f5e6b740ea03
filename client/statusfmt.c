/* statusfmt.c: formatting keyd's status for people and for Prometheus. */
#include "statusfmt.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "keyd_err.h"
#include "strutil.h"

/* Longest text made from one status reply. */
#define STATUSFMT_MAX (8u * 1024u * 1024u)
/* Longest name or label shown; longer ones end in "...". */
#define STATUSFMT_NAME_MAX 256u

const char *
statusfmt_op_name(int op)
{
	switch (op) {
	case KEYD__V1__OP__OP_SIGN: return "sign";
	case KEYD__V1__OP__OP_DECRYPT: return "decrypt";
	case KEYD__V1__OP__OP_SRTP_NEW: return "srtp-new";
	case KEYD__V1__OP__OP_SRTP_OPEN: return "srtp-open";
	case KEYD__V1__OP__OP_STATUS: return "status";
	case KEYD__V1__OP__OP_PASSPORT: return "passport";
	default: return "unknown";
	}
}

/* "s" unless n is 1: "1 connection", "2 connections". */
static const char *
plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

/* A Prometheus label value: printable, with \ and " escaped (newlines
 * cannot occur after strutil_printable). */
static void
prom_label(char *dst, size_t n, const char *src)
{
	char tmp[STATUSFMT_NAME_MAX];
	size_t i, o = 0;

	strutil_printable(tmp, sizeof(tmp), src);
	for (i = 0; tmp[i] != '\0' && o + 3 <= n; i++) {
		if (tmp[i] == '\\' || tmp[i] == '"')
			dst[o++] = '\\';
		dst[o++] = tmp[i];
	}
	dst[o] = '\0';
}

/* An SRTP KEK's blob count and, past its warning mark, the warning. */
static int
text_srtp(struct kbuf *b, const Keyd__V1__KeyStatus *k)
{
	char kek[STATUSFMT_NAME_MAX], warning[STATUSFMT_NAME_MAX];
	int r;

	if (k->srtp_kek == NULL || k->srtp_kek[0] == '\0')
		return KEYD_OK;
	strutil_printable(kek, sizeof(kek), k->srtp_kek);
	if ((r = strutil_appendf(b, "; srtp %s %" PRIu64 " of %" PRIu64
	    " blobs", kek, k->srtp_kek_blobs, k->srtp_kek_limit)) != KEYD_OK)
		return r;
	if (k->srtp_warning == NULL || k->srtp_warning[0] == '\0')
		return KEYD_OK;
	strutil_printable(warning, sizeof(warning), k->srtp_warning);
	return strutil_appendf(b, "; WARNING: %s", warning);
}

/* A passport key's certificate: days left, and the warning if any. */
static int
text_cert(struct kbuf *b, const Keyd__V1__KeyStatus *k)
{
	char warning[STATUSFMT_NAME_MAX];
	int r;

	if (!k->has_cert_expiry)
		return KEYD_OK;
	if ((r = strutil_appendf(b, "; certificate expires in %" PRId64
	    " day%s", k->cert_days_left, k->cert_days_left == 1 ? "" :
	    "s")) != KEYD_OK)
		return r;
	if (k->cert_warning == NULL || k->cert_warning[0] == '\0')
		return KEYD_OK;
	strutil_printable(warning, sizeof(warning), k->cert_warning);
	return strutil_appendf(b, "; WARNING: %s", warning);
}

static int
text_key(struct kbuf *b, const Keyd__V1__KeyStatus *k)
{
	char name[STATUSFMT_NAME_MAX];
	uint64_t ok = 0;
	size_t i;
	int r;

	strutil_printable(name, sizeof(name), k->name);
	if ((r = strutil_appendf(b, "key %s:", name)) != KEYD_OK)
		return r;
	for (i = 0; i < k->n_ops; i++) {
		const Keyd__V1__OpCounters *o = k->ops[i];

		ok += o->ok;
		if ((r = strutil_appendf(b, "%s %s %" PRIu64 " ok %" PRIu64
		    " error%s", i > 0 ? ";" : "", statusfmt_op_name(o->op),
		    o->ok, o->errors, plural(o->errors))) != KEYD_OK)
			return r;
	}
	if (k->n_ops == 0 && (r = strutil_appendf(b, " no operations")) !=
	    KEYD_OK)
		return r;
	if (ok > 0 && (r = strutil_appendf(b, "; mean token latency %" PRIu64
	    " us", k->latency_us_total / ok)) != KEYD_OK)
		return r;
	if (k->weak_extractable && (r = strutil_appendf(b, "; WEAK: "
	    "extractable without wrap-with-trusted")) != KEYD_OK)
		return r;
	if ((r = text_srtp(b, k)) != KEYD_OK)
		return r;
	if ((r = text_cert(b, k)) != KEYD_OK)
		return r;
	return strutil_appendf(b, "\n");
}

static int
text_all(struct kbuf *b, const Keyd__V1__StatusReply *s)
{
	char ver[STATUSFMT_NAME_MAX], label[STATUSFMT_NAME_MAX];
	char manuf[STATUSFMT_NAME_MAX], model[STATUSFMT_NAME_MAX];
	char serial[STATUSFMT_NAME_MAX], role[STATUSFMT_NAME_MAX];
	char state[STATUSFMT_NAME_MAX];
	uint64_t up = s->uptime_s;
	size_t i;
	int r;

	strutil_printable(ver, sizeof(ver), s->daemon_version);
	if ((r = strutil_appendf(b, "keyd %s, up %" PRIu64 "d %02" PRIu64
	    ":%02" PRIu64 ":%02" PRIu64 ", %u connection%s, %" PRIu64
	    " request%s, %" PRIu64 " error%s\n", ver[0] ? ver : "(unknown "
	    "version)", up / 86400, up / 3600 % 24, up / 60 % 60, up % 60,
	    s->connections, plural(s->connections), s->requests,
	    plural(s->requests), s->errors, plural(s->errors))) != KEYD_OK)
		return r;
	/* A keyd older than reloads sends no hash. */
	if (s->config_sha256 != NULL && s->config_sha256[0] != '\0') {
		char hash[80], when[40] = "?";
		time_t t = (time_t)s->config_applied_unix;
		struct tm tm;

		strutil_printable(hash, sizeof(hash), s->config_sha256);
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
			    &tm);
		if ((r = strutil_appendf(b, "configuration: sha256 %s, "
		    "generation %" PRIu64 ", applied %s\n", hash,
		    s->config_generation, when)) != KEYD_OK)
			return r;
	}
	/* Only when it happened: most keyds mirror nothing to syslog. */
	if (s->syslog_dropped > 0 && (r = strutil_appendf(b, "syslog: %"
	    PRIu64 " audit lines dropped (the syslog daemon did not keep "
	    "up)\n", s->syslog_dropped)) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_tokens; i++) {
		const Keyd__V1__TokenStatus *t = s->tokens[i];

		strutil_printable(label, sizeof(label), t->label);
		strutil_printable(manuf, sizeof(manuf), t->manufacturer);
		strutil_printable(model, sizeof(model), t->model);
		strutil_printable(serial, sizeof(serial), t->serial);
		strutil_printable(role, sizeof(role), t->role);
		strutil_printable(state, sizeof(state), t->state);
		if ((r = strutil_appendf(b, "token %s: %s, %" PRIu64
		    " recover%s (%s %s, serial %s)", label,
		    t->logged_in ? "logged in" : "NOT LOGGED IN",
		    t->recoveries, t->recoveries == 1 ? "y" : "ies", manuf,
		    model, serial)) != KEYD_OK)
			return r;
		/* A keyd older than failover sends no role. */
		if (role[0] != '\0' && (r = strutil_appendf(b, ", %s, %s%s, "
		    "%u key%s in session copies", role, state[0] ? state :
		    "unknown", t->active ? " (active)" : "", t->key_copies,
		    plural(t->key_copies))) !=
		    KEYD_OK)
			return r;
		if ((r = strutil_appendf(b, "\n")) != KEYD_OK)
			return r;
	}
	for (i = 0; i < s->n_keys; i++)
		if ((r = text_key(b, s->keys[i])) != KEYD_OK)
			return r;
	return KEYD_OK;
}

static int
prom_all(struct kbuf *b, const Keyd__V1__StatusReply *s)
{
	char name[2 * STATUSFMT_NAME_MAX];
	size_t i, j;
	int r;

	if ((r = strutil_appendf(b,
	    "# HELP keyd_uptime_seconds Seconds since keyd started.\n"
	    "# TYPE keyd_uptime_seconds gauge\n"
	    "keyd_uptime_seconds %" PRIu64 "\n"
	    "# HELP keyd_connections Client connections now open.\n"
	    "# TYPE keyd_connections gauge\n"
	    "keyd_connections %u\n"
	    "# HELP keyd_requests_total Requests served.\n"
	    "# TYPE keyd_requests_total counter\n"
	    "keyd_requests_total %" PRIu64 "\n"
	    "# HELP keyd_errors_total Requests answered with an error.\n"
	    "# TYPE keyd_errors_total counter\n"
	    "keyd_errors_total %" PRIu64 "\n", s->uptime_s, s->connections,
	    s->requests, s->errors)) != KEYD_OK)
		return r;
	if ((r = strutil_appendf(b,
	    "# HELP keyd_syslog_dropped_total Audit lines not mirrored to "
	    "syslog because the syslog daemon did not take them at once.\n"
	    "# TYPE keyd_syslog_dropped_total counter\n"
	    "keyd_syslog_dropped_total %" PRIu64 "\n", s->syslog_dropped)) !=
	    KEYD_OK)
		return r;
	if ((r = strutil_appendf(b,
	    "# HELP keyd_key_ops_total Key operations by key, operation and "
	    "result.\n# TYPE keyd_key_ops_total counter\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_keys; i++) {
		const Keyd__V1__KeyStatus *k = s->keys[i];

		prom_label(name, sizeof(name), k->name);
		for (j = 0; j < k->n_ops; j++) {
			const Keyd__V1__OpCounters *o = k->ops[j];
			const char *op = statusfmt_op_name(o->op);

			if ((r = strutil_appendf(b, "keyd_key_ops_total{key="
			    "\"%s\",op=\"%s\",result=\"ok\"} %" PRIu64 "\n"
			    "keyd_key_ops_total{key=\"%s\",op=\"%s\",result="
			    "\"error\"} %" PRIu64 "\n", name, op, o->ok, name,
			    op, o->errors)) != KEYD_OK)
				return r;
		}
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_key_latency_seconds_total Token time spent in "
	    "successful operations, by key.\n"
	    "# TYPE keyd_key_latency_seconds_total counter\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_keys; i++) {
		const Keyd__V1__KeyStatus *k = s->keys[i];

		prom_label(name, sizeof(name), k->name);
		if ((r = strutil_appendf(b, "keyd_key_latency_seconds_total{"
		    "key=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", name,
		    k->latency_us_total / 1000000,
		    k->latency_us_total % 1000000)) != KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_key_weak_extractable 1 if the key is extractable "
	    "without CKA_WRAP_WITH_TRUSTED.\n"
	    "# TYPE keyd_key_weak_extractable gauge\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_keys; i++) {
		prom_label(name, sizeof(name), s->keys[i]->name);
		if ((r = strutil_appendf(b, "keyd_key_weak_extractable{key="
		    "\"%s\"} %d\n", name, s->keys[i]->weak_extractable ? 1 :
		    0)) != KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_srtp_kek_blobs SRTP blobs made under the current "
	    "KEK version of a key (persistent).\n"
	    "# TYPE keyd_srtp_kek_blobs gauge\n"
	    "# HELP keyd_srtp_kek_limit The most SRTP blobs keyd makes under "
	    "one KEK version.\n"
	    "# TYPE keyd_srtp_kek_limit gauge\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_keys; i++) {
		const Keyd__V1__KeyStatus *k = s->keys[i];
		char kek[2 * STATUSFMT_NAME_MAX];

		if (k->srtp_kek == NULL || k->srtp_kek[0] == '\0')
			continue;
		prom_label(name, sizeof(name), k->name);
		prom_label(kek, sizeof(kek), k->srtp_kek);
		if ((r = strutil_appendf(b, "keyd_srtp_kek_blobs{key=\"%s\","
		    "kek=\"%s\"} %" PRIu64 "\nkeyd_srtp_kek_limit{key=\"%s\","
		    "kek=\"%s\"} %" PRIu64 "\n", name, kek, k->srtp_kek_blobs,
		    name, kek, k->srtp_kek_limit)) != KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_cert_expiry_days Days until the certificate of a "
	    "passport key expires (negative: expired).\n"
	    "# TYPE keyd_cert_expiry_days gauge\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_keys; i++) {
		if (!s->keys[i]->has_cert_expiry)
			continue;
		prom_label(name, sizeof(name), s->keys[i]->name);
		if ((r = strutil_appendf(b, "keyd_cert_expiry_days{key=\"%s\"} "
		    "%" PRId64 "\n", name, s->keys[i]->cert_days_left)) !=
		    KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_token_logged_in 1 if keyd is logged in to the "
	    "token.\n# TYPE keyd_token_logged_in gauge\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_tokens; i++) {
		prom_label(name, sizeof(name), s->tokens[i]->label);
		if ((r = strutil_appendf(b, "keyd_token_logged_in{token="
		    "\"%s\"} %d\n", name, s->tokens[i]->logged_in ? 1 : 0)) !=
		    KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_token_recoveries_total Times keyd reopened its "
	    "sessions on the token.\n"
	    "# TYPE keyd_token_recoveries_total counter\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_tokens; i++) {
		prom_label(name, sizeof(name), s->tokens[i]->label);
		if ((r = strutil_appendf(b, "keyd_token_recoveries_total{"
		    "token=\"%s\"} %" PRIu64 "\n", name,
		    s->tokens[i]->recoveries)) != KEYD_OK)
			return r;
	}
	if ((r = strutil_appendf(b,
	    "# HELP keyd_token_active 1 for the token that served the last "
	    "request (primary or failover).\n"
	    "# TYPE keyd_token_active gauge\n")) != KEYD_OK)
		return r;
	for (i = 0; i < s->n_tokens; i++) {
		char role[STATUSFMT_NAME_MAX];

		prom_label(name, sizeof(name), s->tokens[i]->label);
		prom_label(role, sizeof(role), s->tokens[i]->role);
		if ((r = strutil_appendf(b, "keyd_token_active{token=\"%s\","
		    "role=\"%s\"} %d\n", name, role, s->tokens[i]->active ?
		    1 : 0)) != KEYD_OK)
			return r;
	}
	return KEYD_OK;
}

static int
format(const Keyd__V1__StatusReply *s, int prom, char **out)
{
	struct kbuf b;
	int r;

	*out = NULL;
	kbuf_init(&b, STATUSFMT_MAX, 0);
	r = prom ? prom_all(&b, s) : text_all(&b, s);
	if (r == KEYD_ERR_FRAME_TOO_LARGE)
		r = KEYD_ERR_PROTOCOL;
	if (r == KEYD_OK)
		r = strutil_finish(&b, out);
	kbuf_free(&b);
	return r;
}

int
statusfmt_text(const Keyd__V1__StatusReply *s, char **out)
{
	return format(s, 0, out);
}

int
statusfmt_prometheus(const Keyd__V1__StatusReply *s, char **out)
{
	return format(s, 1, out);
}
