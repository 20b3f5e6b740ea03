/* audit.c: the JSON-lines audit trail with its hash chain, signed
 * checkpoints, group commit and flood aggregation. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "pathsafe.h"
#include "secmem.h"

#define AUDIT_LINE_MAX 4096
#define AUDIT_TAIL_READ 8192      /* bytes read back to resume the chain */
#define AUDIT_FLOOD_SLOTS 128     /* peers tracked per flood interval */
#define AUDIT_FLOOD_KEY 320
#define AUDIT_SIG_MAX 1024

struct flood {
	char key[AUDIT_FLOOD_KEY];   /* what makes two refusals "the same" */
	struct audit_record rec;     /* the first one, for the summary */
	char client[CONFIG_NAME_MAX + 1], op[32], keyname[CONFIG_NAME_MAX + 1];
	unsigned long suppressed;
	int used;
};

struct audit {
	pthread_mutex_t mu;
	pthread_cond_t synced_cv;
	int fd;
	char *path;
	uint64_t seq;              /* of the next line */
	char prev[AUDIT_HASH_HEX + 1];
	off_t size;                /* the file's length after the last line */
	int failing;
	enum config_audit_sync mode;
	unsigned sync_ms;
	struct timespec last_sync;
	/* What fdatasync has made durable. durable_size in both modes; the
	 * rest for request mode. sync_running: an fdatasync of fd runs
	 * outside mu (group commit, or the interval sync); nothing may close
	 * or swap fd, or start another sync, until it is back. rollbacks
	 * counts the times a failed sync took written lines back. */
	uint64_t written_seq, durable_seq;
	int sync_running;
	off_t durable_size;
	char durable_prev[AUDIT_HASH_HEX + 1];
	uint64_t durable_next_seq;
	uint64_t rollbacks;
	/* checkpoints */
	struct token *token;
	long audit_key;            /* token key index, -1: no checkpoints */
	struct token_session sess;
	unsigned cp_lines, cp_every_s;
	unsigned since_cp;
	struct timespec last_cp;
	struct timespec cp_failed_logged; /* last "cannot sign" log line */
	unsigned long cp_failed;   /* failures not logged since */
	/* floods */
	struct flood floods[AUDIT_FLOOD_SLOTS];
	struct timespec flood_start;
	unsigned long flood_overflow; /* refusals from peers past the table */
	int syslog;
};

void
audit_hash_line(const char *line, size_t len, char *out)
{
	unsigned char md[32];
	static const char hex[] = "0123456789abcdef";

	EVP_Digest(line, len, md, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[AUDIT_HASH_HEX] = '\0';
}

static void
now_rfc3339(char *ts, size_t len)
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);
}

static long
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 +
	    (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Reads the file's last line to continue its seq and chain. A log that
 * does not end in a newline was cut short by something other than keyd
 * (keyd never leaves half a line): the partial line is left for the
 * verifier to report, and the chain continues from its bytes. */
static void
resume_chain(struct audit *a)
{
	char buf[AUDIT_TAIL_READ + 1];
	off_t start = a->size > AUDIT_TAIL_READ ? a->size - AUDIT_TAIL_READ : 0;
	ssize_t n;
	char *end, *line;
	json_object *o;

	memset(a->prev, '0', AUDIT_HASH_HEX);
	a->prev[AUDIT_HASH_HEX] = '\0';
	a->seq = 0;
	if (a->size == 0)
		return;
	n = pread(a->fd, buf, a->size - start, start);
	if (n <= 0)
		return;
	buf[n] = '\0';
	end = buf + n;
	if (end > buf && end[-1] == '\n')
		*--end = '\0';
	line = strrchr(buf, '\n');
	line = line != NULL ? line + 1 : buf;
	audit_hash_line(line, (size_t)(end - line), a->prev);
	if ((o = json_tokener_parse(line)) != NULL) {
		json_object *seq;

		if (json_object_object_get_ex(o, "seq", &seq))
			a->seq = (uint64_t)json_object_get_int64(seq) + 1;
		json_object_put(o);
	}
}

/* Writes one finished line (with its newline) or nothing at all. */
static int
append_line(struct audit *a, const char *line, size_t len)
{
	ssize_t n = write(a->fd, line, len);

	if (n != (ssize_t)len) {
		int e = n < 0 ? errno : ENOSPC;

		/* Never leave half a line: cut the file back. */
		if (n > 0)
			(void)!ftruncate(a->fd, a->size);
		if (!a->failing)
			log_error("cannot write audit log %s: %s; refusing "
			    "requests until it can be written", a->path,
			    strerror(e));
		a->failing = 1;
		return KEYD_ERR_AUDIT;
	}
	if (a->failing)
		log_info("audit log %s is writable again", a->path);
	a->failing = 0;
	a->size += (off_t)len;
	return KEYD_OK;
}

/*
 * A line being built: the JSON text of one record, as json-c writes it
 * with JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE (no
 * spaces, members in the order written, '"', '\\' and control bytes
 * escaped, other bytes as they are), then "prev" last. Building a json-c
 * object tree for every line cost about 6% of keyd's CPU per request
 * (docs/benchmarks.md). keyd-audit reads the lines back with json-c.
 */
struct lw {
	char *buf;
	size_t len, cap;
	int err;
};

static void
lw_raw(struct lw *w, const char *s, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = 1;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void
lw_key(struct lw *w, const char *k)
{
	if (w->len > 1)
		lw_raw(w, ",", 1);
	lw_raw(w, "\"", 1);
	lw_raw(w, k, strlen(k));
	lw_raw(w, "\":", 2);
}

static void
lw_str(struct lw *w, const char *k, const char *v)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)v, *run;
	char esc[6];

	if (v == NULL)
		return;
	lw_key(w, k);
	lw_raw(w, "\"", 1);
	for (run = p; *p != '\0'; p++) {
		const char *e = NULL;

		switch (*p) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			if (*p >= 0x20)
				continue;
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
		}
		lw_raw(w, (const char *)run, (size_t)(p - run));
		if (e != NULL)
			lw_raw(w, e, 2);
		else
			lw_raw(w, esc, sizeof(esc));
		run = p + 1;
	}
	lw_raw(w, (const char *)run, (size_t)(p - run));
	lw_raw(w, "\"", 1);
}

static void
lw_int(struct lw *w, const char *k, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	lw_key(w, k);
	lw_raw(w, num, (size_t)n);
}

/* Starts a line: seq, time and event. */
static void
lw_start(struct audit *a, struct lw *w, char *line, size_t cap,
    const char *event)
{
	char ts[64];

	w->buf = line;
	w->len = 0;
	w->cap = cap;
	w->err = 0;
	lw_raw(w, "{", 1);
	now_rfc3339(ts, sizeof(ts));
	lw_int(w, "seq", (int64_t)a->seq);
	lw_str(w, "time", ts);
	lw_str(w, "event", event);
}

/* Ends a line with "prev", the hash of the line before it. Caller holds
 * mu. */
static int
lw_end(struct audit *a, struct lw *w, size_t *len)
{
	lw_str(w, "prev", a->prev);
	lw_raw(w, "}", 1);
	if (w->err)
		return KEYD_ERR_INTERNAL;
	w->buf[w->len] = '\0';
	*len = w->len;
	return KEYD_OK;
}

/* Commits a line: appends it with its newline, advances seq and chain.
 * Caller holds mu. */
static int
commit_line(struct audit *a, char *line, size_t len)
{
	char next[AUDIT_HASH_HEX + 1];
	int r;

	audit_hash_line(line, len, next);
	line[len] = '\n';
	r = append_line(a, line, len + 1);
	line[len] = '\0';
	if (r != KEYD_OK)
		return r;
	memcpy(a->prev, next, sizeof(next));
	a->written_seq = a->seq;
	a->seq++;
	a->since_cp++;
	if (a->syslog)
		syslog(LOG_AUTHPRIV | LOG_INFO, "%s", line);
	return KEYD_OK;
}

/* Signs msg (a checkpoint line without its sig) with the audit key: the
 * signature keyd-audit verify checks with OpenSSL's EVP_DigestVerify and
 * SHA-256 (ECDSA as DER, RSA PKCS#1 v1.5), or pure Ed25519. */
static int
sign_checkpoint(struct audit *a, const char *msg, size_t len, uint8_t *sig,
    size_t *siglen, char *err, size_t errlen)
{
	static const uint8_t di_sha256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09,
		0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
		0x04, 0x20 };
	const struct token_key *k = token_key(a->token, (size_t)a->audit_key);
	uint8_t in[sizeof(di_sha256) + 32], raw[TOKEN_MAX_SIG];
	size_t inlen = 32, rawlen = sizeof(raw);
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	const uint8_t *data = in;
	int r;

	if (k->type == TOKEN_KEY_ED25519) {
		mech.mechanism = CKM_EDDSA;
		data = (const uint8_t *)msg;
		inlen = len;
	} else if (k->type == TOKEN_KEY_RSA) {
		mech.mechanism = CKM_RSA_PKCS;
		memcpy(in, di_sha256, sizeof(di_sha256));
		EVP_Digest(msg, len, in + sizeof(di_sha256), NULL, EVP_sha256(),
		    NULL);
		inlen = sizeof(in);
	} else {
		EVP_Digest(msg, len, in, NULL, EVP_sha256(), NULL);
	}
	/* Signed while the log's lock is held: never wait on a hung token
	 * for longer than token_timeout. */
	r = token_sign_within(a->token, (size_t)a->audit_key, mech.mechanism,
	    data, inlen, raw, &rawlen, err, errlen);
	if (r != KEYD_OK)
		return r;
	if (mech.mechanism == CKM_ECDSA) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *br = BN_bin2bn(raw, (int)(rawlen / 2), NULL);
		BIGNUM *bs = BN_bin2bn(raw + rawlen / 2, (int)(rawlen / 2), NULL);
		uint8_t *p = sig;
		int n;

		if (es == NULL || br == NULL || bs == NULL ||
		    !ECDSA_SIG_set0(es, br, bs)) {
			BN_free(br);
			BN_free(bs);
			ECDSA_SIG_free(es);
			return KEYD_ERR_CRYPTO;
		}
		n = i2d_ECDSA_SIG(es, NULL);
		if (n <= 0 || (size_t)n > *siglen) {
			ECDSA_SIG_free(es);
			return KEYD_ERR_CRYPTO;
		}
		*siglen = (size_t)i2d_ECDSA_SIG(es, &p);
		ECDSA_SIG_free(es);
		return KEYD_OK;
	}
	if (rawlen > *siglen)
		return KEYD_ERR_CRYPTO;
	memcpy(sig, raw, rawlen);
	*siglen = rawlen;
	return KEYD_OK;
}

/* Writes a signed checkpoint closing everything before it. Caller holds
 * mu. */
static int
checkpoint_locked(struct audit *a, const char *reason)
{
	char line[AUDIT_LINE_MAX], err[256];
	uint8_t sig[AUDIT_SIG_MAX];
	char b64[AUDIT_SIG_MAX * 4 / 3 + 8];
	size_t len, siglen = sizeof(sig);
	struct lw lw;
	int r, w;

	if (a->audit_key < 0 || a->since_cp == 0)
		return KEYD_OK;
	lw_start(a, &lw, line, sizeof(line) - 1, "checkpoint");
	lw_str(&lw, "detail", reason);
	lw_int(&lw, "lines", (int64_t)a->since_cp);
	if ((r = lw_end(a, &lw, &len)) != KEYD_OK)
		return r;
	if ((r = sign_checkpoint(a, line, len, sig, &siglen, err,
	    sizeof(err))) != KEYD_OK) {
		/* Tried again at every line while the token fails: said at
		 * most once per flood interval, with a count. */
		if (a->cp_failed_logged.tv_sec == 0 ||
		    ms_since(&a->cp_failed_logged) >=
		    AUDIT_FLOOD_INTERVAL_S * 1000L) {
			log_error("cannot sign an audit checkpoint: %s%s", err,
			    a->cp_failed > 0 ? " (and earlier failures not "
			    "logged)" : "");
			clock_gettime(CLOCK_MONOTONIC, &a->cp_failed_logged);
			a->cp_failed = 0;
		} else {
			a->cp_failed++;
		}
		return r;
	}
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	/* The signed text is the line without its "sig": the verifier cuts
	 * it off the end again. */
	w = snprintf(line + len - 1, sizeof(line) - len, ",\"sig\":\"%s\"}",
	    b64);
	if (w < 0 || (size_t)w >= sizeof(line) - len)
		return KEYD_ERR_INTERNAL;
	len = len - 1 + (size_t)w;
	if ((r = commit_line(a, line, len)) != KEYD_OK)
		return r;
	a->since_cp = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->last_cp);
	return KEYD_OK;
}

static int
write_record_locked(struct audit *a, const struct audit_record *r,
    unsigned long suppressed)
{
	char line[AUDIT_LINE_MAX];
	size_t len;
	struct lw w;
	int ret;

	lw_start(a, &w, line, sizeof(line) - 1, r->event);
	lw_str(&w, "client", r->client);
	if (r->has_peer) {
		lw_int(&w, "uid", (int64_t)r->uid);
		lw_int(&w, "gid", (int64_t)r->gid);
		lw_int(&w, "pid", (int64_t)r->pid);
	}
	lw_str(&w, "op", r->op);
	lw_str(&w, "key", r->key);
	lw_str(&w, "mech", r->mech);
	lw_str(&w, "result", r->result == KEYD_OK ? "ok" :
	    keyd_strerror(r->result));
	if (r->result != KEYD_OK)
		lw_int(&w, "error", r->result);
	lw_str(&w, "detail", r->detail);
	if (r->op != NULL) {
		lw_int(&w, "latency_us", (int64_t)r->latency_us);
		lw_int(&w, "request_bytes", (int64_t)r->request_bytes);
		lw_int(&w, "reply_bytes", (int64_t)r->reply_bytes);
	}
	if (suppressed > 0)
		lw_int(&w, "repeated", (int64_t)suppressed);
	ret = lw_end(a, &w, &len);
	if (ret == KEYD_OK)
		ret = commit_line(a, line, len);
	if (ret == KEYD_OK && a->since_cp >= a->cp_lines)
		(void)checkpoint_locked(a, "lines");
	return ret;
}

/* Floods: the first refusal of a kind from a peer in an interval is
 * written; the rest are counted and summed up at the interval's end.
 * Returns 1 if r was folded into a count. Caller holds mu. */
static int
flood_fold(struct audit *a, const struct audit_record *r)
{
	char key[AUDIT_FLOOD_KEY];
	unsigned h = 2166136261u;
	size_t i, slot;

	/* A peer is its uid and gid, not its pid: new processes must not
	 * get around the folding. */
	snprintf(key, sizeof(key), "%s|%s|%u|%u|%s|%s|%d", r->event,
	    r->client ? r->client : "", (unsigned)r->uid, (unsigned)r->gid,
	    r->op ? r->op : "", r->key ? r->key : "", r->result);
	for (i = 0; key[i] != '\0'; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	for (i = 0; i < AUDIT_FLOOD_SLOTS; i++) {
		struct flood *f;

		slot = (h + i) % AUDIT_FLOOD_SLOTS;
		f = &a->floods[slot];
		if (f->used && strcmp(f->key, key) == 0) {
			f->suppressed++;
			return 1;
		}
		if (!f->used) {
			f->used = 1;
			snprintf(f->key, sizeof(f->key), "%s", key);
			f->rec = *r;
			snprintf(f->client, sizeof(f->client), "%s",
			    r->client ? r->client : "");
			snprintf(f->op, sizeof(f->op), "%s", r->op ? r->op : "");
			snprintf(f->keyname, sizeof(f->keyname), "%s",
			    r->key ? r->key : "");
			f->rec.client = r->client ? f->client : NULL;
			f->rec.op = r->op ? f->op : NULL;
			f->rec.key = r->key ? f->keyname : NULL;
			f->rec.mech = NULL;
			f->rec.detail = NULL;
			f->suppressed = 0;
			return 0;
		}
	}
	/* Table full: every further peer this interval is only counted in
	 * the last slot's summary, so a flood of new peers cannot fill the
	 * disk either. */
	a->flood_overflow++;
	return 1;
}

static void
flood_flush_locked(struct audit *a)
{
	for (size_t i = 0; i < AUDIT_FLOOD_SLOTS; i++) {
		struct flood *f = &a->floods[i];

		if (f->used && f->suppressed > 0) {
			struct audit_record s = f->rec;
			char detail[96];

			snprintf(detail, sizeof(detail), "%lu more like this in "
			    "%d s", f->suppressed, AUDIT_FLOOD_INTERVAL_S);
			s.event = "repeated";
			s.detail = detail;
			(void)write_record_locked(a, &s, f->suppressed);
		}
		f->used = 0;
		f->suppressed = 0;
	}
	if (a->flood_overflow > 0) {
		struct audit_record s;
		char detail[96];

		memset(&s, 0, sizeof(s));
		snprintf(detail, sizeof(detail), "%lu refusals from more peers "
		    "than keyd tracks (%d) in %d s", a->flood_overflow,
		    AUDIT_FLOOD_SLOTS, AUDIT_FLOOD_INTERVAL_S);
		s.event = "repeated";
		s.result = KEYD_ERR_DENIED;
		s.detail = detail;
		(void)write_record_locked(a, &s, a->flood_overflow);
		a->flood_overflow = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &a->flood_start);
}

/* Waits until no fdatasync runs outside mu, so that fd may be swapped or
 * closed. Called with mu held; returns with mu held. */
static void
wait_sync_idle(struct audit *a)
{
	while (a->sync_running)
		pthread_cond_wait(&a->synced_cv, &a->mu);
}

/* Request mode, after a failed fdatasync: what was written since the last
 * good one may be lost. The file and the chain go back to the last
 * durable line, and every writer still waiting for a line written before
 * this fails (wait_durable sees rollbacks change). Caller holds mu. */
static void
rollback_locked(struct audit *a)
{
	(void)!ftruncate(a->fd, a->durable_size);
	a->size = a->durable_size;
	memcpy(a->prev, a->durable_prev, sizeof(a->prev));
	a->seq = a->durable_next_seq;
	/* Nothing past the durable point was written any more. */
	a->durable_seq = a->seq;
	a->written_seq = a->seq > 0 ? a->seq - 1 : 0;
	a->failing = 1;
	a->rollbacks++;
	pthread_cond_broadcast(&a->synced_cv);
}

/* Group commit: the first writer to need durability runs fdatasync for
 * every line written so far; the others wait for it. Called with mu held,
 * right after the line seq was committed; returns with mu held. */
static int
wait_durable(struct audit *a, uint64_t seq)
{
	/* After a rollback, seq numbers are written again, so durable_seq
	 * no longer says whether this line survived: any rollback since the
	 * line was written fails it (fail closed; the line may well be in
	 * the file, but its reply must not be released on a guess). */
	uint64_t gen = a->rollbacks;

	for (;;) {
		if (a->rollbacks != gen)
			return KEYD_ERR_AUDIT;
		if (a->durable_seq >= seq + 1)
			return KEYD_OK;
		if (a->sync_running) {
			pthread_cond_wait(&a->synced_cv, &a->mu);
			continue;
		}
		uint64_t target = a->written_seq + 1;
		off_t size = a->size;
		char prev[AUDIT_HASH_HEX + 1];
		uint64_t next = a->seq;
		int fd = a->fd, ok, e;

		memcpy(prev, a->prev, sizeof(prev));
		a->sync_running = 1;
		pthread_mutex_unlock(&a->mu);
		ok = fdatasync(fd) == 0;
		e = errno;
		pthread_mutex_lock(&a->mu);
		a->sync_running = 0;
		if (!ok) {
			log_error("fdatasync of audit log %s: %s", a->path,
			    strerror(e));
			rollback_locked(a);
			return KEYD_ERR_AUDIT;
		}
		a->durable_seq = target;
		a->durable_size = size;
		memcpy(a->durable_prev, prev, sizeof(prev));
		a->durable_next_seq = next;
		pthread_cond_broadcast(&a->synced_cv);
	}
}

int
audit_write(struct audit *a, const struct audit_record *r)
{
	uint64_t seq;
	int ret;

	if (a == NULL)
		return KEYD_OK;
	pthread_mutex_lock(&a->mu);
	if (r->aggregate && flood_fold(a, r)) {
		pthread_mutex_unlock(&a->mu);
		return KEYD_OK;
	}
	ret = write_record_locked(a, r, 0);
	seq = a->written_seq;
	if (ret == KEYD_OK && a->mode == CONFIG_SYNC_REQUEST)
		ret = wait_durable(a, seq);
	pthread_mutex_unlock(&a->mu);
	return ret;
}

int
audit_open(const struct config *cfg, struct token *token, struct audit **out,
    char *err, size_t errlen)
{
	struct audit *a;
	struct stat st;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return KEYD_ERR_NOMEM;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->synced_cv, NULL);
	a->mode = cfg->audit_sync;
	a->sync_ms = cfg->audit_sync_ms;
	a->cp_lines = cfg->audit_checkpoint_lines;
	a->cp_every_s = cfg->audit_checkpoint_s;
	a->token = token;
	a->audit_key = token != NULL ? token_audit_key(token) : -1;
	a->syslog = cfg->syslog;
	/* Opened as root, in a directory keyd's user may own: no link is
	 * followed (pathsafe.h), a FIFO does not block the open, and only a
	 * regular file with no other name is written. */
	a->fd = pathsafe_open(cfg->audit_log, O_RDWR | O_APPEND | O_CREAT |
	    O_NONBLOCK, 0640);
	if (a->fd < 0 || fstat(a->fd, &st) != 0) {
		snprintf(err, errlen, "cannot open audit log %s: %s%s",
		    cfg->audit_log, strerror(errno), errno == ELOOP ?
		    pathsafe_why(ELOOP) : " (its directory must exist and be "
		    "writable by keyd)");
		audit_close(a);
		return KEYD_ERR_CONFIG;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snprintf(err, errlen, "audit log %s is not a regular file with "
		    "one name (%s)", cfg->audit_log, S_ISREG(st.st_mode) ?
		    "it has other hard links" : "a FIFO, device or socket");
		audit_close(a);
		return KEYD_ERR_CONFIG;
	}
	(void)fcntl(a->fd, F_SETFL, O_RDWR | O_APPEND);
	a->size = st.st_size;
	a->path = strdup(cfg->audit_log);
	resume_chain(a);
	a->durable_size = a->size;
	memcpy(a->durable_prev, a->prev, sizeof(a->prev));
	a->durable_next_seq = a->seq;
	a->durable_seq = a->seq;
	a->written_seq = a->seq;
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	a->last_cp = a->flood_start = a->last_sync;
	if (a->syslog)
		openlog("keyd", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
	*out = a;
	return KEYD_OK;
}

void
audit_tick(struct audit *a)
{
	off_t size;
	int fd, e = 0;

	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	if (ms_since(&a->flood_start) >= AUDIT_FLOOD_INTERVAL_S * 1000L)
		flood_flush_locked(a);
	if (a->since_cp > 0 && ms_since(&a->last_cp) >= (long)a->cp_every_s *
	    1000L)
		(void)checkpoint_locked(a, "interval");
	if (a->mode != CONFIG_SYNC_INTERVAL || a->sync_running ||
	    a->size == a->durable_size ||
	    ms_since(&a->last_sync) < (long)a->sync_ms) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	/* The sync runs outside mu, as the group commit's does, so that
	 * workers keep writing lines while the disk works: holding mu here
	 * stalled every request for the length of an fdatasync. What it
	 * makes durable is what was written before it started: size. While
	 * sync_running is set, rotate and close wait, so fd stays open and
	 * stays the file that size describes. */
	size = a->size;
	fd = a->fd;
	a->sync_running = 1;
	pthread_mutex_unlock(&a->mu);
	if (fdatasync(fd) != 0)
		e = errno;
	pthread_mutex_lock(&a->mu);
	a->sync_running = 0;
	/* Interval mode's lines were released before this sync; an error is
	 * logged, as it always was, and the next interval tries again with
	 * whatever is new. */
	if (e != 0)
		log_error("fdatasync of audit log %s: %s", a->path,
		    strerror(e));
	a->durable_size = size;
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	pthread_cond_broadcast(&a->synced_cv);
	pthread_mutex_unlock(&a->mu);
}

int
audit_rotate(struct audit *a)
{
	struct stat st;
	int fd, r = KEYD_OK;

	pthread_mutex_lock(&a->mu);
	/* A sync running outside mu still uses the old fd. */
	wait_sync_idle(a);
	flood_flush_locked(a);
	(void)checkpoint_locked(a, "rotation");
	/* O_NONBLOCK: a FIFO put at the path must neither block the open
	 * nor, once its pipe is full, every write under mu. */
	fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK, 0640);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_error("cannot reopen audit log %s: %s; keeping the old "
		    "file", a->path, fd < 0 ? strerror(errno) :
		    "it is not a regular file");
		if (fd >= 0)
			close(fd);
		r = KEYD_ERR_AUDIT;
		goto out;
	}
	(void)fcntl(fd, F_SETFL, O_RDWR | O_APPEND);
	/* The old file's lines are made durable before it is let go: no
	 * later sync of the new fd covers them. */
	if (fdatasync(a->fd) != 0) {
		log_error("fdatasync of audit log %s before reopening it: %s",
		    a->path, strerror(errno));
		/* Request mode fails the replies still waiting, and the new
		 * file's chain starts after the last durable line. */
		if (a->mode == CONFIG_SYNC_REQUEST)
			rollback_locked(a);
	} else {
		/* Every line before seq is durable now. */
		a->durable_seq = a->seq;
		memcpy(a->durable_prev, a->prev, sizeof(a->prev));
		a->durable_next_seq = a->seq;
	}
	/* The size after the old file's rollback, which truncated it when
	 * the path still names the same file. */
	if (fstat(fd, &st) != 0) {
		log_error("cannot reopen audit log %s: %s; keeping the old "
		    "file", a->path, strerror(errno));
		close(fd);
		r = KEYD_ERR_AUDIT;
		goto out;
	}
	close(a->fd);
	a->fd = fd;
	a->size = st.st_size;
	a->durable_size = a->size;
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	pthread_cond_broadcast(&a->synced_cv);
	/* seq and prev carry on: the new file's first line names the old
	 * file's last hash. */
out:
	pthread_mutex_unlock(&a->mu);
	return r;
}

void
audit_seal(struct audit *a)
{
	if (a == NULL || a->fd < 0)
		return;
	pthread_mutex_lock(&a->mu);
	wait_sync_idle(a);
	flood_flush_locked(a);
	(void)checkpoint_locked(a, "stop");
	(void)fdatasync(a->fd);
	/* mu stays locked: a worker that comes back from the token now
	 * waits here until the process exits. */
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		pthread_mutex_lock(&a->mu);
		wait_sync_idle(a);
		flood_flush_locked(a);
		(void)checkpoint_locked(a, "stop");
		pthread_mutex_unlock(&a->mu);
		(void)fdatasync(a->fd);
		close(a->fd);
	}
	if (a->token != NULL)
		token_session_close(a->token, &a->sess);
	if (a->syslog)
		closelog();
	pthread_cond_destroy(&a->synced_cv);
	pthread_mutex_destroy(&a->mu);
	free(a->path);
	free(a);
}
