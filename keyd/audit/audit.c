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
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "pathsafe.h"
#include "statedir.h"
#include "secmem.h"
#include "syslogq.h"

#define AUDIT_LINE_MAX 4096
#define AUDIT_FLOOD_SLOTS 128     /* peers tracked per flood interval */
#define AUDIT_FLOOD_KEY 320
#define AUDIT_SIG_MAX 1024
/* At start-up the log is read backwards from its end to its last
 * checkpoint (and to the one recorded in state_dir): this much at a time,
 * and never more than AUDIT_SCAN_MAX in all. */
#define AUDIT_SCAN_CHUNK (64 * 1024)
#define AUDIT_SCAN_MAX ((off_t)64 * 1024 * 1024)
#define AUDIT_SCAN_MAX_LINES 1000000
/* A seq this high was not written by keyd (it would take 10^10 lines a
 * second for a century to get there): the chain starts again below it. */
#define AUDIT_SEQ_MAX (INT64_MAX - ((int64_t)1 << 32))
/* In state_dir: the seq, hash and log path of the last checkpoint that is
 * durable in the log ("SEQ HASH PATH\n"). */
#define AUDIT_STATE_FILE "audit-checkpoint"
#define AUDIT_STATE_TMP "audit-checkpoint.tmp"
#define AUDIT_STATE_MAX (64 + 2 * AUDIT_HASH_HEX + 4096)
#define AUDIT_NOTE_MAX 512

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
	uint8_t cp_prev[32];       /* SHA-256 of the last line signed */
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
	/* The syslog mirror (syslog = yes): made once, kept to audit_close
	 * (a reload may set it, never frees it), so that
	 * audit_syslog_dropped reads it without the lock. */
	_Atomic(struct syslogq *) syslogq;
	/* The checkpoint record in state_dir: the last checkpoint written
	 * (cp_*) is recorded once the log is durable past it. */
	int state_fd;              /* state_dir, -1: no record kept */
	int cp_unrecorded;
	uint64_t cp_seq;
	char cp_hash[AUDIT_HASH_HEX + 1];
	off_t cp_end;              /* the log's size just after it */
	int state_failing;
	/* What the start-up scan found, for the start record. */
	struct audit_resume {
		int checkpoint;    /* 0 none, 1 verifies, -1 does not verify */
		uint64_t cp_seq;
		char cp_hash[AUDIT_HASH_HEX + 1];
		uint64_t unverified;
		char gap[AUDIT_NOTE_MAX];
		char tampered[AUDIT_NOTE_MAX];
		char note[AUDIT_NOTE_MAX];
		int unclean;       /* the last checkpoint is not a stop's */
		int cut_line;      /* the log did not end with a newline */
	} resume;
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

static int
verify_sig(EVP_PKEY *pk, const char *msg, size_t len, const uint8_t *sig,
    size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok, id = EVP_PKEY_get_base_id(pk);

	if (ctx == NULL)
		return 0;
	/* Ed25519 signs the text itself; ECDSA and RSA sign its SHA-256. */
	ok = EVP_DigestVerifyInit(ctx, NULL, id == EVP_PKEY_ED25519 ? NULL :
	    EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg,
	    len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

int
audit_checkpoint_verify(EVP_PKEY *pk, const char *line, size_t len)
{
	static const char tag[] = ",\"sig\":\"";
	char msg[AUDIT_LINE_MAX];
	uint8_t sig[AUDIT_SIG_MAX * 2];
	const char *s = NULL, *q;
	size_t b64len, mlen;
	int n;

	if (len >= AUDIT_LINE_MAX)
		return 0;
	/* The signed text is the line without its "sig", which keyd adds
	 * last (checkpoint_locked). */
	for (q = line; (q = memmem(q, len - (size_t)(q - line), tag,
	    sizeof(tag) - 1)) != NULL; q++)
		s = q;
	if (s == NULL || len < 2 || line[len - 1] != '}' ||
	    line[len - 2] != '"')
		return 0;
	mlen = (size_t)(s - line);
	b64len = len - 2 - (mlen + sizeof(tag) - 1);
	if (mlen + 1 > sizeof(msg) || b64len < 4 || b64len % 4 != 0 ||
	    b64len / 4 * 3 > sizeof(sig))
		return 0;
	memcpy(msg, line, mlen);
	msg[mlen++] = '}';
	n = EVP_DecodeBlock(sig, (const unsigned char *)s + sizeof(tag) - 1,
	    (int)b64len);
	if (n < 0)
		return 0;
	/* EVP_DecodeBlock counts '=' padding as zero bytes. */
	if (s[sizeof(tag) - 1 + b64len - 1] == '=')
		n--;
	if (s[sizeof(tag) - 1 + b64len - 2] == '=')
		n--;
	/* One spelling only: the base64 keyd writes for these bytes
	 * (EVP_DecodeBlock skips blanks and '-'), so that a signed line has
	 * one form and one hash. */
	{
		char again[AUDIT_SIG_MAX * 8 / 3 + 8];

		if ((size_t)n * 4 / 3 + 4 >= sizeof(again) ||
		    EVP_EncodeBlock((unsigned char *)again, sig, n) !=
		    (int)b64len || memcmp(again, s + sizeof(tag) - 1,
		    b64len) != 0)
			return 0;
	}
	return verify_sig(pk, msg, mlen, sig, (size_t)n);
}

/* What one line of the log says, for the start-up scan. */
struct scan_line {
	int ok;                    /* JSON with seq and prev */
	uint64_t seq;
	char prev[AUDIT_HASH_HEX + 1];
	char hash[AUDIT_HASH_HEX + 1];
	int checkpoint, stop_cp, start;
};

/* The start-up scan: the log read backwards, one line at a time. */
struct scan {
	struct audit *a;
	EVP_PKEY *pk;              /* the audit key's public key, or NULL */
	uint64_t lines;            /* lines seen so far (from the end) */
	int have_last;             /* the newest line parsed */
	uint64_t last_seq;         /* its seq ... */
	uint64_t after_last;       /* ... and the unparsed lines after it */
	char last_hash[AUDIT_HASH_HEX + 1]; /* the file's last line's hash */
	struct scan_line next;     /* the line after the current one */
	int have_next;
	int found_cp, chain_broken, bof, too_big;
	uint64_t broken_seq;
	/* the recorded checkpoint */
	int have_rec, rec_found, rec_mismatch;
	uint64_t rec_seq;
	char rec_hash[AUDIT_HASH_HEX + 1];
	struct scan_line first;    /* the oldest line seen (lines > 0) */
	int last_only;             /* no audit key: only the chain's end */
};

const char *
audit_json_str(struct json_object *o, const char *k)
{
	json_object *x;

	if (!json_object_object_get_ex(o, k, &x) ||
	    json_object_get_type(x) != json_type_string)
		return NULL;
	return json_object_get_string(x);
}

json_object *
audit_parse_line(const char *line, size_t len)
{
	json_tokener *tok;
	json_object *o;

	/* keyd writes strict JSON, one object, no NUL: anything looser
	 * (comments, single quotes, trailing bytes) is not keyd's line. */
	if (len == 0 || line[0] != '{' || memchr(line, '\0', len) != NULL ||
	    (tok = json_tokener_new()) == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    json_object_get_type(o) != json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static void
scan_parse(const char *line, size_t len, struct scan_line *l)
{
	json_object *o, *x;
	const char *ev, *prev, *detail;

	memset(l, 0, sizeof(*l));
	audit_hash_line(line, len, l->hash);
	/* A line that does not even start like keyd's is not parsed (a log
	 * padded with millions of short lines must not hold up the start). */
	if (len < 8 || memcmp(line, "{\"seq\":", 7) != 0 ||
	    (o = audit_parse_line(line, len)) == NULL)
		return;
	if (json_object_object_get_ex(o, "seq", &x) &&
	    json_object_get_type(x) == json_type_int &&
	    json_object_get_int64(x) >= 0 &&
	    json_object_get_int64(x) < AUDIT_SEQ_MAX &&
	    (prev = audit_json_str(o, "prev")) != NULL &&
	    strlen(prev) == AUDIT_HASH_HEX) {
		l->ok = 1;
		l->seq = (uint64_t)json_object_get_int64(x);
		memcpy(l->prev, prev, sizeof(l->prev));
		if ((ev = audit_json_str(o, "event")) != NULL) {
			l->checkpoint = !strcmp(ev, "checkpoint");
			l->start = !strcmp(ev, "start");
			l->stop_cp = l->checkpoint &&
			    (detail = audit_json_str(o, "detail")) != NULL &&
			    !strcmp(detail, "stop");
		}
	}
	json_object_put(o);
}

/* One line, newest first. Returns 1 once the scan has seen enough. */
static int
scan_one(struct scan *sc, const char *line, size_t len)
{
	struct audit_resume *rs = &sc->a->resume;
	struct scan_line l;

	scan_parse(line, len, &l);
	if (sc->lines == 0)
		memcpy(sc->last_hash, l.hash, sizeof(l.hash));
	/* A start record is signed (audit_start): an unsigned one, or one
	 * the key does not verify, is not keyd's. */
	if (l.start)
		l.start = sc->pk != NULL &&
		    audit_checkpoint_verify(sc->pk, line, len);
	if (++sc->lines > AUDIT_SCAN_MAX_LINES) {
		sc->too_big = 1;
		return 1;
	}
	if (!sc->have_last) {
		if (l.ok) {
			sc->have_last = 1;
			sc->last_seq = l.seq;
		} else {
			sc->after_last++;
		}
	}
	if (sc->last_only)
		return sc->have_last || sc->lines >= AUDIT_SCAN_MAX /
		    AUDIT_LINE_MAX;
	if (!sc->found_cp) {
		/* The lines after the last checkpoint: do they still chain? */
		if (sc->have_next && !sc->chain_broken &&
		    (!sc->next.ok || strcmp(l.hash, sc->next.prev) != 0)) {
			sc->chain_broken = 1;
			sc->broken_seq = l.ok ? l.seq + 1 : 0;
		}
		if (l.ok && l.checkpoint) {
			sc->found_cp = 1;
			rs->cp_seq = l.seq;
			memcpy(rs->cp_hash, l.hash, sizeof(l.hash));
			rs->unverified = sc->lines - 1;
			rs->checkpoint = sc->pk != NULL &&
			    audit_checkpoint_verify(sc->pk, line, len) ? 1 : -1;
			/* After a clean stop the next line keyd writes is the
			 * next run's start record: anything else was written
			 * while keyd was not running. */
			if (l.stop_cp && sc->have_next && !sc->next.start)
				snprintf(rs->tampered, sizeof(rs->tampered),
				    "%" PRIu64 " lines follow the stop checkpoint "
				    "seq %" PRIu64 " without a signed start "
				    "record: not written by keyd",
				    rs->unverified, l.seq);
			rs->unclean = !l.stop_cp;
		}
	}
	if (sc->have_rec && l.ok && l.seq == sc->rec_seq) {
		if (l.checkpoint && !strcmp(l.hash, sc->rec_hash))
			sc->rec_found = 1;
		else
			sc->rec_mismatch = 1;
	}
	sc->first = l;
	sc->next = l;
	sc->have_next = 1;
	return sc->found_cp && (!sc->have_rec || sc->rec_found ||
	    sc->rec_mismatch || (l.ok && l.seq < sc->rec_seq));
}

/* Reads the log backwards a chunk at a time and hands scan_one each line,
 * newest first, until it has seen enough or the file's start. A line
 * longer than keyd ever writes is handed over cut (it is not keyd's). */
static void
scan_log(struct scan *sc)
{
	struct audit *a = sc->a;
	size_t cap = AUDIT_SCAN_CHUNK + AUDIT_LINE_MAX + 1;
	char *buf = malloc(cap + 1);
	size_t carry = 0;          /* a line's start kept from the last read */
	off_t pos = a->size;
	int first = 1, skipping = 0;

	if (buf == NULL)
		return;
	while (pos > 0) {
		size_t n = pos > AUDIT_SCAN_CHUNK ? AUDIT_SCAN_CHUNK :
		    (size_t)pos;
		size_t end;
		ssize_t got;

		if (a->size - pos >= AUDIT_SCAN_MAX) {
			sc->too_big = 1;
			goto out;
		}
		memmove(buf + n, buf, carry);
		got = pread(a->fd, buf, n, pos - (off_t)n);
		if (got != (ssize_t)n)
			goto out;
		pos -= (off_t)n;
		end = n + carry;
		if (first && end > 0 && buf[end - 1] == '\n')
			end--;
		first = 0;
		for (size_t i = end; i > 0; i--) {
			if (buf[i - 1] != '\n')
				continue;
			if (!skipping) {
				buf[end] = '\0';
				if (scan_one(sc, buf + i, end - i))
					goto out;
			}
			skipping = 0;
			end = i - 1;
		}
		carry = end;
		if (carry > AUDIT_LINE_MAX) {
			/* Not a line of keyd's: handed over as it is cut. */
			buf[carry] = '\0';
			if (!skipping && scan_one(sc, buf + carry -
			    AUDIT_LINE_MAX, AUDIT_LINE_MAX))
				goto out;
			skipping = 1;
			carry = 0;
		}
	}
	if (carry > 0 && !skipping) {
		buf[carry] = '\0';
		(void)scan_one(sc, buf, carry);
	}
	sc->bof = 1;
out:
	free(buf);
}

/* Reads the record of the last checkpoint from state_dir. Returns 1 and
 * fills seq and hash, 0 if there is none for this log, -1 if it cannot
 * be read or makes no sense. */
static int
state_read(struct audit *a, uint64_t *seq, char *hash)
{
	char buf[AUDIT_STATE_MAX + 1], *end;
	unsigned long long v;
	ssize_t n;
	int fd;

	fd = openat(a->state_fd, AUDIT_STATE_FILE, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[n - 1] != '\n')
		return -1;
	buf[n - 1] = '\0';
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || *end != ' ' ||
	    strspn(end + 1, "0123456789abcdef") != AUDIT_HASH_HEX ||
	    end[1 + AUDIT_HASH_HEX] != ' ')
		return -1;
	/* A record of another log (audit_log changed) says nothing about
	 * this one. */
	if (strcmp(end + 2 + AUDIT_HASH_HEX, a->path) != 0)
		return 0;
	*seq = v;
	memcpy(hash, end + 1, AUDIT_HASH_HEX);
	hash[AUDIT_HASH_HEX] = '\0';
	return 1;
}

/* Records seq and hash as the last durable checkpoint: a temporary file,
 * fsync, rename over the record. */
static void
state_write(struct audit *a, uint64_t seq, const char *hash)
{
	char buf[AUDIT_STATE_MAX];
	int fd, n, ok = 0;

	if (a->state_fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%" PRIu64 " %s %s\n", seq, hash,
	    a->path);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	fd = openat(a->state_fd, AUDIT_STATE_TMP, O_WRONLY | O_CREAT |
	    O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd >= 0) {
		ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
		close(fd);
		ok = ok && renameat(a->state_fd, AUDIT_STATE_TMP, a->state_fd,
		    AUDIT_STATE_FILE) == 0;
	}
	if (!ok && !a->state_failing)
		log_error("cannot record the last audit checkpoint in "
		    "state_dir: %s; a log cut back while keyd is stopped will "
		    "not be noticed at the next start", strerror(errno));
	else if (ok && a->state_failing)
		log_info("the last audit checkpoint is recorded in state_dir "
		    "again");
	a->state_failing = !ok;
}

/* Records the last checkpoint if the log is durable past it. Called from
 * the main thread (audit_tick) without mu: the record's fsync must not
 * hold up requests. */
static void
state_catch_up(struct audit *a)
{
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];

	pthread_mutex_lock(&a->mu);
	if (!a->cp_unrecorded || a->durable_size < a->cp_end) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	a->cp_unrecorded = 0;
	seq = a->cp_seq;
	memcpy(hash, a->cp_hash, sizeof(hash));
	pthread_mutex_unlock(&a->mu);
	state_write(a, seq, hash);
}

/* At start-up: continues the log's seq and chain from its last line, and
 * finds out what can be trusted of it: its last checkpoint (does it
 * verify?), the lines after it (unverified), lines after a clean stop
 * that keyd did not write, and whether the log still holds the last
 * checkpoint recorded in state_dir (if not, lines were cut: a gap). The
 * findings go into the start record (audit_start). */
static void
resume_chain(struct audit *a)
{
	struct audit_resume *rs = &a->resume;
	const struct token_key *k;
	const uint8_t *p;
	struct scan sc;
	int rec = 0;

	memset(&sc, 0, sizeof(sc));
	sc.a = a;
	memset(a->prev, '0', AUDIT_HASH_HEX);
	a->prev[AUDIT_HASH_HEX] = '\0';
	a->seq = 0;
	sc.last_only = a->audit_key < 0;
	if (a->audit_key >= 0) {
		k = token_key(a->token, (size_t)a->audit_key);
		p = k->spki;
		if (p != NULL)
			sc.pk = d2i_PUBKEY(NULL, &p, (long)k->spki_len);
	}
	if (a->state_fd >= 0) {
		rec = state_read(a, &sc.rec_seq, sc.rec_hash);
		sc.have_rec = rec > 0;
		if (rec < 0)
			snprintf(rs->gap, sizeof(rs->gap), "the record of the "
			    "last checkpoint in state_dir (%s) cannot be read "
			    "or was altered", AUDIT_STATE_FILE);
	}
	if (a->size > 0)
		scan_log(&sc);
	EVP_PKEY_free(sc.pk);

	if (sc.lines > 0) {
		char c = '\n';

		memcpy(a->prev, sc.last_hash, sizeof(a->prev));
		a->seq = sc.have_last ? sc.last_seq + sc.after_last + 1 : 0;
		if (a->seq >= (uint64_t)AUDIT_SEQ_MAX)
			a->seq = 0;
		/* keyd never leaves half a line: a log that does not end with
		 * a newline was cut by something else. The start record goes
		 * on a line of its own (audit_start ends the cut one). */
		rs->cut_line = pread(a->fd, &c, 1, a->size - 1) == 1 &&
		    c != '\n';
	} else if (sc.have_rec) {
		/* An empty log after a recorded checkpoint: rotated (or
		 * removed) while keyd was stopped. The chain goes on from the
		 * checkpoint, so the new file links to the old one. */
		a->seq = sc.rec_seq + 1;
		memcpy(a->prev, sc.rec_hash, sizeof(a->prev));
		snprintf(rs->note, sizeof(rs->note), "the log was empty: it "
		    "continues the recorded checkpoint seq %" PRIu64
		    " (rotated or removed while keyd was stopped)",
		    sc.rec_seq);
	}
	if (!sc.found_cp) {
		rs->unverified = sc.lines;
		if (sc.too_big && sc.lines > 0)
			snprintf(rs->note, sizeof(rs->note), "no checkpoint in "
			    "the last %lld MiB of the log",
			    (long long)(AUDIT_SCAN_MAX >> 20));
	}
	if (sc.chain_broken && rs->tampered[0] == '\0')
		snprintf(rs->tampered, sizeof(rs->tampered), "the lines after "
		    "the last checkpoint do not chain (at seq %" PRIu64 ")",
		    sc.broken_seq);
	if (!sc.have_rec || sc.lines == 0)
		return;
	if (sc.rec_found)
		return;
	if (sc.rec_mismatch) {
		snprintf(rs->gap, sizeof(rs->gap), "the line with seq %" PRIu64
		    " is not the checkpoint keyd signed and recorded there "
		    "(%.16s...): the log was cut or rewritten", sc.rec_seq,
		    sc.rec_hash);
	} else if (sc.have_last && sc.last_seq < sc.rec_seq) {
		snprintf(rs->gap, sizeof(rs->gap), "the log ends at seq %"
		    PRIu64 ", before the checkpoint seq %" PRIu64 " that keyd "
		    "signed and recorded: lines were cut from its end",
		    sc.last_seq, sc.rec_seq);
	} else if (sc.bof && sc.first.ok &&
	    sc.first.seq == sc.rec_seq + 1 &&
	    !strcmp(sc.first.prev, sc.rec_hash)) {
		/* The file was rotated right after the checkpoint: its first
		 * line links to it. */
		return;
	} else if (rs->note[0] == '\0') {
		/* Not proven: the checkpoint may be in an earlier, rotated
		 * file (the record lags when it could not be written); the
		 * verifier's chain across the files decides. */
		snprintf(rs->note, sizeof(rs->note), "the recorded checkpoint "
		    "seq %" PRIu64 " is not in this file%s", sc.rec_seq,
		    sc.bof ? " (it starts after it: an earlier file should "
		    "hold it)" : " within the part read at start-up");
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

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		unsigned char lo = p[0] == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = p[0] == 0xed ? 0x9f : 0xbf;

		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ?
		    3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		unsigned char lo = p[0] == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = p[0] == 0xf4 ? 0x8f : 0xbf;

		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
		    (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* A string member. Every line must be valid UTF-8 JSON (SIEMs and most
 * JSON parsers reject anything else), and names and versions come from
 * clients and configurations: a byte that does not start a well-formed
 * UTF-8 sequence becomes U+FFFD. The NUL that ends v stops any sequence
 * (no continuation byte is 0). */
static void
lw_val(struct lw *w, const char *v)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)v, *run;
	char esc[6];

	lw_raw(w, "\"", 1);
	for (run = p; *p != '\0'; p++) {
		const char *e = NULL;
		size_t n;

		switch (*p) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			if (*p >= 0x20 && *p < 0x80)
				continue;
			if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
				p += n - 1;
				continue;
			}
			memcpy(esc, "\\u", 2);
			if (*p >= 0x80) {
				memcpy(esc + 2, "fffd", 4);
			} else {
				memcpy(esc + 2, "00", 2);
				esc[4] = hex[*p >> 4];
				esc[5] = hex[*p & 15];
			}
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
lw_str(struct lw *w, const char *k, const char *v)
{
	if (v == NULL)
		return;
	lw_key(w, k);
	lw_val(w, v);
}

/* An array of strings; nothing if n is 0. */
static void
lw_strs(struct lw *w, const char *k, const char *const *v, size_t n)
{
	if (n == 0)
		return;
	lw_key(w, k);
	lw_raw(w, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			lw_raw(w, ",", 1);
		lw_val(w, v[i]);
	}
	lw_raw(w, "]", 1);
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
		syslogq_send(atomic_load(&a->syslogq), line, len);
	return KEYD_OK;
}

/* Signs msg (a checkpoint line without its sig) with the audit key: the
 * signature keyd-audit verify checks with OpenSSL's EVP_DigestVerify and
 * SHA-256 (ECDSA as DER, RSA PKCS#1 v1.5), or pure Ed25519. The token
 * process hashes and signs it; an ECDSA signature comes back as r||s. */
static int
sign_checkpoint(struct audit *a, const char *msg, size_t len, uint8_t *sig,
    size_t *siglen, char *err, size_t errlen)
{
	const struct token_key *k = token_key(a->token, (size_t)a->audit_key);
	uint8_t raw[TOKEN_MAX_SIG];
	size_t rawlen = sizeof(raw);
	int r;

	/* Never waits on a hung token for longer than token_timeout: the
	 * log's lock is held. */
	r = token_sign_audit_line(a->token, (const uint8_t *)msg, len, raw,
	    &rawlen, err, errlen);
	if (r != KEYD_OK)
		return r;
	if (k->type == TOKEN_KEY_EC_P256 || k->type == TOKEN_KEY_EC_P384) {
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
/* Signs a finished line (line[0..*len), ending in '}', cap bytes of room)
 * with the audit key and appends its "sig" member. The signed text is the
 * line without its "sig": the verifier cuts it off the end again
 * (audit_checkpoint_verify). */
static int
sign_line(struct audit *a, char *line, size_t cap, size_t *len, char *err,
    size_t errlen)
{
	uint8_t sig[AUDIT_SIG_MAX];
	char b64[AUDIT_SIG_MAX * 4 / 3 + 8];
	size_t siglen = sizeof(sig);
	int r, w;

	/* The chain of signed lines: each names the SHA-256 of the one
	 * signed before it, and the token process signs only the line that
	 * names the last one it signed (tokenproc.c). */
	w = snprintf(line + *len - 1, cap - *len, ",\"cp_prev\":\"");
	if (w < 0 || (size_t)w >= cap - *len)
		return KEYD_ERR_INTERNAL;
	*len = *len - 1 + (size_t)w;
	if (*len + 2 * sizeof(a->cp_prev) + 3 > cap)
		return KEYD_ERR_INTERNAL;
	for (size_t i = 0; i < sizeof(a->cp_prev); i++)
		*len += (size_t)snprintf(line + *len, 3, "%02x",
		    a->cp_prev[i]);
	line[(*len)++] = '"';
	line[(*len)++] = '}';
	line[*len] = '\0';
	if ((r = sign_checkpoint(a, line, *len, sig, &siglen, err,
	    errlen)) != KEYD_OK)
		return r;
	EVP_Digest(line, *len, a->cp_prev, NULL, EVP_sha256(), NULL);
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	w = snprintf(line + *len - 1, cap - *len, ",\"sig\":\"%s\"}", b64);
	if (w < 0 || (size_t)w >= cap - *len)
		return KEYD_ERR_INTERNAL;
	*len = *len - 1 + (size_t)w;
	return KEYD_OK;
}

static int
checkpoint_locked(struct audit *a, const char *reason)
{
	char line[AUDIT_LINE_MAX], err[256];
	size_t len;
	struct lw lw;
	int r;

	if (a->audit_key < 0 || a->since_cp == 0)
		return KEYD_OK;
	lw_start(a, &lw, line, sizeof(line) - 1, "checkpoint");
	lw_str(&lw, "detail", reason);
	lw_int(&lw, "lines", (int64_t)a->since_cp);
	if ((r = lw_end(a, &lw, &len)) != KEYD_OK)
		return r;
	if ((r = sign_line(a, line, sizeof(line), &len, err,
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
	if ((r = commit_line(a, line, len)) != KEYD_OK)
		return r;
	a->since_cp = 0;
	clock_gettime(CLOCK_MONOTONIC, &a->last_cp);
	/* Recorded in state_dir once the log is durable past it. */
	a->cp_unrecorded = 1;
	a->cp_seq = a->seq - 1;
	memcpy(a->cp_hash, a->prev, sizeof(a->cp_hash));
	a->cp_end = a->size;
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
	/* A PASSporT's claims (docs/shaken.md); the TNs as audit_tn says,
	 * made so by the caller. */
	lw_str(&w, "ppt", r->ppt);
	lw_str(&w, "attest", r->attest);
	lw_str(&w, "orig", r->orig);
	lw_str(&w, "div", r->div);
	lw_strs(&w, "dest", r->dest, r->n_dest);
	lw_str(&w, "origid", r->origid);
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
			/* Borrowed from the request, gone by the summary. */
			f->rec.ppt = f->rec.attest = f->rec.orig = NULL;
			f->rec.div = f->rec.origid = NULL;
			f->rec.dest = NULL;
			f->rec.n_dest = 0;
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
	/* A checkpoint taken back with the lines must never be recorded. */
	if (a->cp_unrecorded && a->cp_end > a->durable_size)
		a->cp_unrecorded = 0;
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
audit_start(struct audit *a, const char *detail)
{
	const struct audit_resume *rs;
	char line[AUDIT_LINE_MAX], err[256];
	size_t len;
	struct lw w;
	uint64_t seq;
	int ret;

	if (a == NULL)
		return KEYD_OK;
	rs = &a->resume;
	if (rs->gap[0] != '\0')
		log_warn("AUDIT LOG GAP in %s: %s", a->path, rs->gap);
	if (rs->tampered[0] != '\0')
		log_warn("AUDIT LOG TAMPERED in %s: %s", a->path, rs->tampered);
	if (rs->checkpoint < 0)
		log_warn("the last checkpoint in %s (seq %" PRIu64 ") does not "
		    "verify with the audit key", a->path, rs->cp_seq);
	if (rs->unclean && rs->unverified == 0)
		log_warn("the last run of keyd did not stop cleanly (the log "
		    "ends with a checkpoint that is not a stop checkpoint): "
		    "lines it wrote after it, if any, are gone");
	if (rs->unverified > 0 && a->audit_key >= 0)
		log_warn("%" PRIu64 " lines at the end of %s follow its last "
		    "checkpoint and are unverified (keyd stopped without a "
		    "final checkpoint, or they were rewritten)", rs->unverified,
		    a->path);
	pthread_mutex_lock(&a->mu);
	if (rs->cut_line && append_line(a, "\n", 1) != KEYD_OK) {
		pthread_mutex_unlock(&a->mu);
		return KEYD_ERR_AUDIT;
	}
	lw_start(a, &w, line, sizeof(line) - 1, "start");
	lw_str(&w, "result", "ok");
	lw_str(&w, "detail", detail);
	if (a->audit_key >= 0) {
		lw_str(&w, "checkpoint", rs->checkpoint > 0 ? "ok" :
		    rs->checkpoint < 0 ? "bad" : "none");
		if (rs->checkpoint != 0) {
			lw_int(&w, "resumed_seq", (int64_t)rs->cp_seq);
			lw_str(&w, "resumed_hash", rs->cp_hash);
		}
		lw_int(&w, "unverified", (int64_t)rs->unverified);
	}
	if (rs->gap[0] != '\0')
		lw_str(&w, "gap", rs->gap);
	if (rs->tampered[0] != '\0')
		lw_str(&w, "tampered", rs->tampered);
	if (rs->note[0] != '\0')
		lw_str(&w, "note", rs->note);
	if (rs->cut_line)
		lw_str(&w, "cut", "the log's last line had no newline (cut by "
		    "something other than keyd): keyd ended it");
	if (a->audit_key >= 0 && rs->unclean)
		lw_str(&w, "previous", "unclean");
	ret = lw_end(a, &w, &len);
	/* Signed, so that nobody can put a start record after a clean stop
	 * to pass lines off as a new run's; a start that cannot be signed
	 * is written unsigned (and the verifier says so). */
	if (ret == KEYD_OK && a->audit_key >= 0 &&
	    sign_line(a, line, sizeof(line), &len, err, sizeof(err)) !=
	    KEYD_OK)
		log_error("cannot sign the start record: %s", err);
	if (ret == KEYD_OK)
		ret = commit_line(a, line, len);
	seq = a->written_seq;
	if (ret == KEYD_OK && a->mode == CONFIG_SYNC_REQUEST)
		ret = wait_durable(a, seq);
	pthread_mutex_unlock(&a->mu);
	return ret;
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
	int r;

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
	a->fd = a->state_fd = -1;
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
	(void)fcntl(a->fd, F_SETFL, O_APPEND);   /* blocking again */
	a->size = st.st_size;
	if ((a->path = strdup(cfg->audit_log)) == NULL) {
		audit_close(a);
		return KEYD_ERR_NOMEM;
	}
	/* Only signed checkpoints are worth recording. */
	if (a->audit_key >= 0 && statedir_open(cfg, 0, "the record of the "
	    "last audit checkpoint", &a->state_fd, err, errlen) != KEYD_OK) {
		audit_close(a);
		return KEYD_ERR_CONFIG;
	}
	resume_chain(a);
	a->durable_size = a->size;
	memcpy(a->durable_prev, a->prev, sizeof(a->prev));
	a->durable_next_seq = a->seq;
	a->durable_seq = a->seq;
	a->written_seq = a->seq;
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	a->last_cp = a->flood_start = a->last_sync;
	/* localtime_r reads the zone on its first call only: now, before
	 * the sandbox, also for a reload that turns syslog on later. */
	tzset();
	/* Never blocks a request: syslogq.c says why not openlog/syslog. */
	if (a->syslog) {
		struct syslogq *q = NULL;

		if ((r = syslogq_open(&q, cfg->syslog_socket)) != KEYD_OK) {
			snprintf(err, errlen, "syslog mirror to %s: %s",
			    cfg->syslog_socket, keyd_strerror(r));
			audit_close(a);
			return r;
		}
		atomic_store(&a->syslogq, q);
	}
	*out = a;
	return KEYD_OK;
}

static void tick_locked(struct audit *a);

void
audit_tick(struct audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	tick_locked(a);
	pthread_mutex_unlock(&a->mu);
	state_catch_up(a);
}

/* audit_tick's work; may let go of mu and take it again. */
static void
tick_locked(struct audit *a)
{
	off_t size;
	int fd, e = 0;

	if (ms_since(&a->flood_start) >= AUDIT_FLOOD_INTERVAL_S * 1000L)
		flood_flush_locked(a);
	if (a->since_cp > 0 && ms_since(&a->last_cp) >= (long)a->cp_every_s *
	    1000L)
		(void)checkpoint_locked(a, "interval");
	if (a->mode != CONFIG_SYNC_INTERVAL || a->sync_running ||
	    a->size == a->durable_size ||
	    ms_since(&a->last_sync) < (long)a->sync_ms)
		return;
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
	if (e == 0)
		a->durable_size = size;
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	pthread_cond_broadcast(&a->synced_cv);
}

int
audit_reopen_path(const char *path)
{
	/* O_NONBLOCK: a FIFO put at the path must neither block the open
	 * nor, once its pipe is full, every write under mu. */
	return open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK, 0640);
}

int
audit_rotate_denied(struct audit *a, int path_fd, int err)
{
	struct stat now, held;
	int fd = -1;

	pthread_mutex_lock(&a->mu);
	if (path_fd >= 0 && fstat(path_fd, &now) == 0 &&
	    fstat(a->fd, &held) == 0 && now.st_dev == held.st_dev &&
	    now.st_ino == held.st_ino)
		fd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&a->mu);
	if (path_fd >= 0)
		close(path_fd);
	if (fd >= 0) {
		/* Reopened, in effect: what a reopen of the same file
		 * does, on a copy of the descriptor keyd holds. */
		log_info("the audit log %s is still the file keyd writes: "
		    "keyd goes on writing it (keyd's user may not open it by "
		    "its path: %s)", a->path, strerror(err));
		return audit_rotate_fd(a, fd);
	}
	errno = err;
	return audit_rotate_fd(a, -1);
}

int
audit_rotate(struct audit *a)
{
	return audit_rotate_fd(a, audit_reopen_path(a->path));
}

int
audit_rotate_fd(struct audit *a, int fd)
{
	struct stat st;
	int r = KEYD_OK, e = errno;

	pthread_mutex_lock(&a->mu);
	/* A sync running outside mu still uses the old fd. */
	wait_sync_idle(a);
	flood_flush_locked(a);
	(void)checkpoint_locked(a, "rotation");
	errno = e;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_error("cannot reopen audit log %s: %s; keeping the old "
		    "file%s", a->path, fd < 0 ? strerror(errno) :
		    "it is not a regular file", fd < 0 && (errno == EACCES ||
		    errno == EPERM) ? " (keyd's user must be able to open the "
		    "new file for writing, or to create it in its directory: "
		    "have logrotate create it as keyd's user)" : "");
		if (fd >= 0)
			close(fd);
		r = KEYD_ERR_AUDIT;
		goto out;
	}
	(void)fcntl(fd, F_SETFL, O_APPEND);   /* blocking again */
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
		/* The rotation checkpoint: the next file's first line links
		 * to it. */
		if (a->cp_unrecorded)
			state_write(a, a->cp_seq, a->cp_hash);
	}
	a->cp_unrecorded = 0;
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
	if (fdatasync(a->fd) == 0 && a->cp_unrecorded)
		state_write(a, a->cp_seq, a->cp_hash);
	/* mu stays locked: a worker that comes back from the token now
	 * waits here until the process exits. */
}

void
audit_set_token(struct audit *a, struct token *token,
    const struct config *cfg)
{
	pthread_mutex_lock(&a->mu);
	if (a->token != NULL)
		token_session_close(a->token, &a->sess);
	memset(&a->sess, 0, sizeof(a->sess));
	a->token = token;
	if (a->audit_key >= 0)
		a->audit_key = token != NULL ? token_audit_key(token) : -1;
	a->cp_lines = cfg->audit_checkpoint_lines;
	a->cp_every_s = cfg->audit_checkpoint_s;
	pthread_mutex_unlock(&a->mu);
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
		if (fdatasync(a->fd) == 0 && a->cp_unrecorded)
			state_write(a, a->cp_seq, a->cp_hash);
		close(a->fd);
	}
	if (a->state_fd >= 0)
		close(a->state_fd);
	if (a->token != NULL)
		token_session_close(a->token, &a->sess);
	syslogq_close(atomic_load(&a->syslogq));
	pthread_cond_destroy(&a->synced_cv);
	pthread_mutex_destroy(&a->mu);
	free(a->path);
	free(a);
}

uint64_t
audit_syslog_dropped(struct audit *a)
{
	/* syslogq, once set, lives to audit_close: no lock needed. */
	return a != NULL ? syslogq_dropped(atomic_load(&a->syslogq)) : 0;
}

int
audit_set_syslog(struct audit *a, int on, const char *path, int fd)
{
	struct syslogq *q;
	int r = KEYD_OK;

	pthread_mutex_lock(&a->mu);
	q = atomic_load(&a->syslogq);
	if (!on) {
		/* Nothing is queued in keyd (a line is sent or dropped as it
		 * is written): closing the socket loses nothing already
		 * sent, and lines from now on are not mirrored, nor counted
		 * as dropped. */
		a->syslog = 0;
		if (q != NULL)
			r = syslogq_swap(q, NULL, -1);
		if (fd >= 0)
			close(fd);
	} else if (q == NULL) {
		if ((r = syslogq_adopt(&q, path, fd)) == KEYD_OK) {
			atomic_store(&a->syslogq, q);
			a->syslog = 1;
		}
	} else if ((r = syslogq_swap(q, path, fd)) == KEYD_OK) {
		a->syslog = 1;
	}
	pthread_mutex_unlock(&a->mu);
	return r;
}
