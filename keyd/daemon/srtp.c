/* srtp.c: SRTP master keys, wrapped under a versioned KEK on the token. */
#include "srtp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbuf.h"
#include "keyd_err.h"
#include "log.h"
#include "statedir.h"
#include "secmem.h"

/* The blob (docs/srtp.md): magic, format version, suite, KEK version, IV,
 * GCM ciphertext of key||salt, tag. Its length follows from its suite. */
static const uint8_t srtp_magic[4] = { 'k', 'S', 'R', 'T' };
#define SRTP_FORMAT 1
#define SRTP_OFF_SUITE 5
#define SRTP_OFF_KCV 6

/* The associated data: four length-prefixed fields (a 4-byte big-endian
 * length, then the bytes): this domain string, the blob's header, the key
 * name, the context. */
#define SRTP_AAD_DOMAIN "keyd srtp blob"
#define SRTP_AAD_MAX (4 * 4 + sizeof(SRTP_AAD_DOMAIN) + SRTP_HDR_LEN + \
	CONFIG_NAME_MAX + SRTP_MAX_CONTEXT)

/* Counters in state_dir. A count is reserved on disk in batches before it
 * is handed out, so that one srtp-new in SRTP_RESERVE_BATCH pays for an
 * fsync; a crash loses at most a batch (the count skips ahead, never
 * back). With srtp_limit_for_tests the batch is tiny, so that the tests
 * see the skip-ahead. */
#define SRTP_RESERVE_BATCH 4096
#define SRTP_TEST_RESERVE_BATCH 3
#define SRTP_COUNTER_FILE_MAX 256
#define SRTP_COUNTER_MAGIC "keyd srtp-kek counter 1"
#define SRTP_LOCK_FILE "srtp.lock"
#define SRTP_MAX_COUNT (UINT64_C(1) << 62)

/* The 6-field CK_GCM_PARAMS (with ulIvBits) of PKCS#11 2.40 errata and
 * 3.0: SoftHSM2 2.6 answers CKR_ARGUMENTS_BAD to the 5-field layout. */
_Static_assert(sizeof(CK_GCM_PARAMS) == 6 * sizeof(CK_ULONG),
    "CK_GCM_PARAMS must be the 6-field struct with ulIvBits");

static const struct srtp_suite {
	int id;                  /* Keyd__V1__SrtpSuite */
	const char *name;        /* as in SDP (RFC 4568, 6188, 7714) */
	size_t key_len, salt_len;
} srtp_suites[] = {
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_CM_128_HMAC_SHA1_80,
	    "AES_CM_128_HMAC_SHA1_80", 16, 14 },
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_CM_128_HMAC_SHA1_32,
	    "AES_CM_128_HMAC_SHA1_32", 16, 14 },
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_256_CM_HMAC_SHA1_80,
	    "AES_256_CM_HMAC_SHA1_80", 32, 14 },
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AES_256_CM_HMAC_SHA1_32,
	    "AES_256_CM_HMAC_SHA1_32", 32, 14 },
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AEAD_AES_128_GCM,
	    "AEAD_AES_128_GCM", 16, 12 },
	{ KEYD__V1__SRTP_SUITE__SRTP_SUITE_AEAD_AES_256_GCM,
	    "AEAD_AES_256_GCM", 32, 12 },
};

/* One KEK that makes blobs, and how many it made. Shared by the srtp of
 * every configuration that counts this KEK (a reload's and the one it
 * replaces), each holding a reference. */
struct srtp_counter {
	_Atomic unsigned refs;
	pthread_mutex_t mu;
	uint8_t kcv[SRTP_KCV_LEN];
	char name[16];           /* "kek-3f9a1c" */
	char file[40];           /* "srtp-kek-3f9a1c.count" */
	char tmp[48];
	uint64_t used;           /* blobs made (or skipped by a restart) */
	uint64_t reserved;       /* durable on disk; used never passes it */
	int warned;
	char warning[192];
};

struct srtp_version {
	uint8_t kcv[SRTP_KCV_LEN];
	char name[16];           /* "kek-3f9a1c" */
};

struct srtp_key {
	struct srtp_version *v;  /* [0] current, [i] the i-th previous */
	size_t n_v;              /* 0: not an SRTP key */
	struct srtp_counter *counter; /* keys with srtp-new */
};

struct srtp {
	const struct config *cfg;
	int dir_fd;
	int lock_fd;
	uint64_t limit, warn_at, batch;
	struct srtp_key *keys;
	size_t n_keys;
	struct srtp_counter **counters;
	size_t n_counters;
};

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct srtp_suite *
suite_find(int id)
{
	for (size_t i = 0; i < sizeof(srtp_suites) / sizeof(srtp_suites[0]);
	    i++)
		if (srtp_suites[i].id == id)
			return &srtp_suites[i];
	return NULL;
}

const char *
srtp_suite_name(int suite)
{
	const struct srtp_suite *su = suite_find(suite);

	return su != NULL ? su->name : "unknown";
}

static void
kcv_name(const uint8_t kcv[SRTP_KCV_LEN], char *out, size_t n)
{
	snprintf(out, n, "kek-%02x%02x%02x", kcv[0], kcv[1], kcv[2]);
}

static uint32_t
kcv_u32(const uint8_t kcv[SRTP_KCV_LEN])
{
	return (uint32_t)kcv[0] << 16 | (uint32_t)kcv[1] << 8 | kcv[2];
}

static int
dir_open(struct srtp *st, const struct srtp *prev, int check_only, char *err,
    size_t errlen)
{
	const char *dir = st->cfg->state_dir;
	int r;

	/* A reload: the lock is the running configuration's already (flock
	 * belongs to the open file, which the copies share). */
	if (prev != NULL && prev->lock_fd >= 0 && prev->dir_fd >= 0) {
		st->dir_fd = fcntl(prev->dir_fd, F_DUPFD_CLOEXEC, 0);
		st->lock_fd = fcntl(prev->lock_fd, F_DUPFD_CLOEXEC, 0);
		if (st->dir_fd < 0 || st->lock_fd < 0) {
			errf(err, errlen, "state_dir %s: %s", dir,
			    strerror(errno));
			return KEYD_ERR_IO;
		}
		return KEYD_OK;
	}

	if ((r = statedir_open(st->cfg, check_only, "the SRTP KEK counters",
	    &st->dir_fd, err, errlen)) != KEYD_OK)
		return r;
	if (st->dir_fd < 0)
		return KEYD_OK;     /* check_only, and not there yet */
	if (check_only)
		return KEYD_OK;
	/* Two daemons counting the same KEK would each stay under the
	 * limit while together passing it. */
	st->lock_fd = openat(st->dir_fd, SRTP_LOCK_FILE, O_RDWR | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lock_fd < 0) {
		errf(err, errlen, "cannot create %s/%s: %s", dir,
		    SRTP_LOCK_FILE, strerror(errno));
		return KEYD_ERR_CONFIG;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		errf(err, errlen, "%s/%s is locked: another keyd uses "
		    "state_dir %s; give each keyd its own state_dir and its own KEKs",
		    dir, SRTP_LOCK_FILE, dir);
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}

/* Reads one '\n'-terminated line of at most max - 1 bytes. */
static int
read_line(struct kbuf *b, char *out, size_t max)
{
	size_t n = 0;
	uint8_t ch;

	while (kbuf_get_u8(b, &ch) == KEYD_OK) {
		if (ch == '\n') {
			out[n] = '\0';
			return 0;
		}
		if (ch < 0x20 || ch > 0x7e || n + 1 >= max)
			return -1;
		out[n++] = (char)ch;
	}
	return -1;
}

static int
parse_count(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > SRTP_MAX_COUNT / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > SRTP_MAX_COUNT)
		return -1;
	*out = v;
	return 0;
}

/* Reads the counter file of c; a KEK without one has made no blob. */
static int
counter_load(struct srtp *st, struct srtp_counter *c, char *err,
    size_t errlen)
{
	char buf[SRTP_COUNTER_FILE_MAX + 1], line[SRTP_COUNTER_FILE_MAX];
	char want[64];
	struct kbuf b;
	size_t got = 0;
	ssize_t n;
	uint64_t v;
	int fd;

	fd = openat(st->dir_fd, c->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		c->used = c->reserved = 0;
		return KEYD_OK;
	}
	if (fd < 0) {
		errf(err, errlen, "cannot open %s/%s: %s", st->cfg->state_dir,
		    c->file, strerror(errno));
		return KEYD_ERR_IO;
	}
	while (got < sizeof(buf)) {
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	snprintf(want, sizeof(want), "kek %02x%02x%02x", c->kcv[0],
	    c->kcv[1], c->kcv[2]);
	kbuf_view(&b, buf, got);
	if (n < 0 || got > SRTP_COUNTER_FILE_MAX ||
	    read_line(&b, line, sizeof(line)) != 0 ||
	    strcmp(line, SRTP_COUNTER_MAGIC) != 0 ||
	    read_line(&b, line, sizeof(line)) != 0 || strcmp(line, want) != 0 ||
	    read_line(&b, line, sizeof(line)) != 0 ||
	    strncmp(line, "reserved ", 9) != 0 ||
	    parse_count(line + 9, &v) != 0 || kbuf_avail(&b) != 0) {
		errf(err, errlen, "%s/%s is not a keyd SRTP counter file for "
		    "KEK %s; keyd will not guess how many blobs that KEK made: "
		    "restore the file from a backup, or make a new KEK "
		    "version (docs/srtp.md)", st->cfg->state_dir, c->file,
		    c->name);
		return KEYD_ERR_CONFIG;
	}
	c->used = c->reserved = v;
	return KEYD_OK;
}

/* Writes c's reservation durably: a temporary file, fsync, rename over
 * the old one, fsync of the directory. Caller holds c->mu. */
static int
counter_store(struct srtp *st, struct srtp_counter *c, uint64_t reserved,
    char *msg, size_t msglen)
{
	char text[SRTP_COUNTER_FILE_MAX];
	const char *what = "write";
	size_t len, done = 0;
	ssize_t w;
	int n, fd, saved;

	n = snprintf(text, sizeof(text), "%s\nkek %02x%02x%02x\nreserved %"
	    PRIu64 "\n", SRTP_COUNTER_MAGIC, c->kcv[0], c->kcv[1], c->kcv[2],
	    reserved);
	if (n < 0 || (size_t)n >= sizeof(text))
		return KEYD_ERR_INTERNAL;
	len = (size_t)n;
	fd = openat(st->dir_fd, c->tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		what = "create";
		goto fail;
	}
	while (done < len) {
		w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			goto fail;
		}
		done += (size_t)w;
	}
	what = "sync";
	if (fsync(fd) != 0)
		goto fail;
	what = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	what = "rename";
	if (renameat(st->dir_fd, c->tmp, st->dir_fd, c->file) != 0)
		goto fail;
	what = "sync the directory of";
	if (fsync(st->dir_fd) != 0)
		goto fail;
	return KEYD_OK;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(st->dir_fd, c->tmp, 0);
	log_error("cannot %s %s/%s: %s; srtp-new under KEK %s is refused "
	    "until the count can be recorded", what, st->cfg->state_dir,
	    c->tmp, strerror(saved), c->name);
	snprintf(msg, msglen, "keyd cannot record KEK %s's blob count in "
	    "state_dir (%s: %s); srtp-new is refused until it can", c->name,
	    what, strerror(saved));
	return KEYD_ERR_IO;
}

/* Takes one blob from c's allowance, reserving more on disk first when
 * the reserved ones are used up. A count handed out was durable first. */
static int
counter_take(struct srtp *st, struct srtp_counter *c, const char *key_name,
    char *msg, size_t msglen)
{
	uint64_t next;
	int r = KEYD_OK;

	pthread_mutex_lock(&c->mu);
	if (c->used >= st->limit) {
		snprintf(msg, msglen, "KEK %s of key '%s' has wrapped %" PRIu64
		    " SRTP keys, the most keyd makes under one KEK (random "
		    "96-bit GCM IVs, NIST SP 800-38D): add a new KEK version "
		    "and list this one under previous (docs/srtp.md)", c->name,
		    key_name, c->used);
		r = KEYD_ERR_LIMIT;
		goto out;
	}
	if (c->used >= c->reserved) {
		next = c->used + (st->limit - c->used < st->batch ?
		    st->limit - c->used : st->batch);
		if ((r = counter_store(st, c, next, msg, msglen)) != KEYD_OK)
			goto out;
		c->reserved = next;
	}
	c->used++;
	if (c->used > st->warn_at && !c->warned) {
		c->warned = 1;
		log_warn("SRTP KEK %s (key '%s') has wrapped %" PRIu64 " keys, "
		    "past %" PRIu64 "; srtp-new stops at %" PRIu64 ": add a "
		    "new KEK version (docs/srtp.md)", c->name, key_name, c->used,
		    st->warn_at, st->limit);
	}
	if (c->used == st->limit)
		log_error("SRTP KEK %s (key '%s') made its last blob; srtp-new "
		    "is refused until a new KEK version is added", c->name,
		    key_name);
out:
	pthread_mutex_unlock(&c->mu);
	return r;
}

static struct srtp_counter *
counter_find(struct srtp *st, const uint8_t kcv[SRTP_KCV_LEN])
{
	for (size_t i = 0; i < st->n_counters; i++)
		if (memcmp(st->counters[i]->kcv, kcv, SRTP_KCV_LEN) == 0)
			return st->counters[i];
	return NULL;
}

static void
counter_put(struct srtp_counter *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
}

/* st counts c's KEK with pc, prev's counter for it, from now on: every
 * key of st that pointed at c points at pc. */
static void
counter_adopt(struct srtp *st, struct srtp_counter *c, struct srtp_counter *pc)
{
	atomic_fetch_add(&pc->refs, 1);
	for (size_t i = 0; i < st->n_keys; i++)
		if (st->keys[i].counter == c)
			st->keys[i].counter = pc;
	for (size_t i = 0; i < st->n_counters; i++)
		if (st->counters[i] == c)
			st->counters[i] = pc;
	counter_put(c);
}

static int
key_init(struct srtp *st, struct token *t, struct token_session *s,
    size_t i, char *err, size_t errlen)
{
	const struct config_key *ck = &st->cfg->keys[i];
	struct srtp_key *k = &st->keys[i];
	uint8_t kcv[SRTP_KCV_LEN];
	const char *how;
	char msg[256];
	int r;

	if ((k->v = calloc(ck->n_previous + 1, sizeof(*k->v))) == NULL)
		return KEYD_ERR_NOMEM;
	k->n_v = ck->n_previous + 1;
	for (size_t v = 0; v < k->n_v; v++) {
		msg[0] = '\0';
		if ((r = token_kcv(t, s, i, v, kcv, &how, msg, sizeof(msg))) !=
		    KEYD_OK) {
			errf(err, errlen, "key '%s': cannot compute the check "
			    "value of KEK %s (%s): %s", ck->name, v == 0 ?
			    ck->uri : ck->previous[v - 1], msg, v == 0 ?
			    "it must allow CKM_AES_ECB or carry "
			    "CKA_CHECK_VALUE" :
			    "");
			return r;
		}
		memcpy(k->v[v].kcv, kcv, SRTP_KCV_LEN);
		kcv_name(kcv, k->v[v].name, sizeof(k->v[v].name));
		for (size_t w = 0; w < v; w++)
			if (memcmp(k->v[w].kcv, kcv, SRTP_KCV_LEN) == 0) {
				errf(err, errlen, "key '%s': KEK versions %s "
				    "and %s have the same check value %s: the "
				    "same KEK is listed twice (or, once in "
				    "2^24, two KEKs collide: make a new one)", ck->name,
				    w == 0 ? ck->uri : ck->previous[w - 1],
				    ck->previous[v - 1], k->v[v].name);
				return KEYD_ERR_CONFIG;
			}
		log_debug("key '%s': KEK version %s from %s", ck->name,
		    k->v[v].name, how);
	}
	if (!(ck->ops & CONFIG_OP_SRTP_NEW))
		return KEYD_OK;
	/* A KEK shared by two [key] sections is one key: one count. */
	if ((k->counter = counter_find(st, k->v[0].kcv)) != NULL)
		return KEYD_OK;
	if ((k->counter = calloc(1, sizeof(*k->counter))) == NULL)
		return KEYD_ERR_NOMEM;
	st->counters[st->n_counters++] = k->counter;
	atomic_init(&k->counter->refs, 1);
	memcpy(k->counter->kcv, k->v[0].kcv, SRTP_KCV_LEN);
	memcpy(k->counter->name, k->v[0].name, sizeof(k->counter->name));
	snprintf(k->counter->file, sizeof(k->counter->file),
	    "srtp-%s.count", k->v[0].name);
	snprintf(k->counter->tmp, sizeof(k->counter->tmp), "srtp-%s.count.tmp",
	    k->v[0].name);
	snprintf(k->counter->warning, sizeof(k->counter->warning), "KEK %s "
	    "has wrapped more than %" PRIu64 " SRTP keys; srtp-new stops at %"
	    PRIu64 ": add a new KEK version (docs/srtp.md)", k->v[0].name,
	    st->warn_at, st->limit);
	pthread_mutex_init(&k->counter->mu, NULL);
	return KEYD_OK;
}

int
srtp_init(const struct config *cfg, struct token *t, int check_only,
    struct srtp **out, char *err, size_t errlen)
{
	return srtp_reinit(cfg, t, NULL, check_only, out, err, errlen);
}

int
srtp_reinit(const struct config *cfg, struct token *t, struct srtp *prev,
    int check_only, struct srtp **out, char *err, size_t errlen)
{
	struct token_session s;
	struct srtp *st;
	size_t i;
	int r = KEYD_ERR_NOMEM;

	*out = NULL;
	memset(&s, 0, sizeof(s));
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return KEYD_ERR_NOMEM;
	st->cfg = cfg;
	st->dir_fd = st->lock_fd = -1;
	st->limit = SRTP_LIMIT;
	st->warn_at = SRTP_WARN;
	st->batch = SRTP_RESERVE_BATCH;
	if (cfg->srtp_limit_for_tests != 0) {
		st->limit = cfg->srtp_limit_for_tests;
		st->warn_at = st->limit / 2;
		st->batch = SRTP_TEST_RESERVE_BATCH;
		log_warn("srtp_limit_for_tests = %" PRIu64 ": a TEST setting; "
		    "never use it in production", st->limit);
	}
	st->n_keys = cfg->n_keys;
	if (cfg->n_keys > 0 &&
	    ((st->keys = calloc(cfg->n_keys, sizeof(*st->keys))) == NULL ||
	    (st->counters = calloc(cfg->n_keys, sizeof(*st->counters))) ==
	    NULL))
		goto out;
	for (i = 0; i < cfg->n_keys; i++) {
		if (!(cfg->keys[i].ops &
		    (CONFIG_OP_SRTP_NEW | CONFIG_OP_SRTP_OPEN)))
			continue;
		if ((r = key_init(st, t, &s, i, err, errlen)) != KEYD_OK)
			goto out;
	}
	r = KEYD_OK;
	if (st->n_counters > 0 &&
	    (r = dir_open(st, prev, check_only, err, errlen)) != KEYD_OK)
		goto out;
	for (i = 0; st->dir_fd >= 0 && i < st->n_counters; i++) {
		struct srtp_counter *c = st->counters[i], *pc;

		/* A KEK the running configuration counts: its counter,
		 * shared, rather than a second one loaded from its file. */
		if ((pc = prev != NULL ? counter_find(prev, c->kcv) : NULL) !=
		    NULL) {
			counter_adopt(st, c, pc);
			continue;
		}
		if ((r = counter_load(st, c, err, errlen)) != KEYD_OK)
			goto out;
		if (c->used >= st->limit)
			log_error("SRTP KEK %s has made or reserved %" PRIu64
			    " blobs, its limit: srtp-new under it is refused; "
			    "add a new KEK version (docs/srtp.md)", c->name,
			    c->used);
		else if (c->used > st->warn_at) {
			c->warned = 1;
			log_warn("%s", c->warning);
		}
	}
	for (i = 0; i < cfg->n_keys; i++) {
		const struct srtp_key *k = &st->keys[i];

		if (k->n_v == 0)
			continue;
		/* After a load, used is the count reserved on disk: the
		 * blobs made plus the rest of the last batch, which a restart
		 * skips. It is the upper bound, not the number made. */
		if (k->counter != NULL)
			log_info("key '%s': SRTP KEK %s, %zu earlier version%s, "
			    "%" PRIu64 " of %" PRIu64 " blobs reserved (made, "
			    "or skipped on restart)", cfg->keys[i].name,
			    k->v[0].name, k->n_v - 1, LOG_PLURAL(k->n_v - 1),
			    k->counter->used, st->limit);
		else
			log_info("key '%s': SRTP KEK %s, %zu earlier version%s "
			    "(srtp-open only)", cfg->keys[i].name,
			    k->v[0].name, k->n_v - 1, LOG_PLURAL(k->n_v - 1));
	}
	*out = st;
	st = NULL;
out:
	token_session_close(t, &s);
	srtp_free(st);
	return r;
}

void
srtp_free(struct srtp *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; st->counters != NULL && i < st->n_counters; i++)
		counter_put(st->counters[i]);
	for (size_t i = 0; st->keys != NULL && i < st->n_keys; i++)
		free(st->keys[i].v);
	free(st->keys);
	free(st->counters);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	free(st);
}

void
srtp_key_status(struct srtp *st, size_t key, Keyd__V1__KeyStatus *ks)
{
	struct srtp_counter *c;
	uint64_t used;

	if (st == NULL || key >= st->n_keys || st->keys[key].counter == NULL)
		return;
	c = st->keys[key].counter;
	pthread_mutex_lock(&c->mu);
	used = c->used;
	pthread_mutex_unlock(&c->mu);
	ks->srtp_kek = c->name;
	ks->srtp_kek_blobs = used;
	ks->srtp_kek_limit = st->limit;
	if (used > st->warn_at)
		ks->srtp_warning = c->warning;
}

static int
put_lp(struct kbuf *b, const void *p, size_t n)
{
	int r;

	if (n > UINT32_MAX)
		return KEYD_ERR_INTERNAL;
	if ((r = kbuf_put_u32(b, (uint32_t)n)) != KEYD_OK)
		return r;
	return kbuf_put(b, p, n);
}

/* The associated data of a blob: see the comment at SRTP_AAD_DOMAIN. */
static int
aad_build(struct kbuf *b, const uint8_t hdr[SRTP_HDR_LEN], const char *name,
    const ProtobufCBinaryData *ctx)
{
	int r;

	kbuf_init(b, SRTP_AAD_MAX, 0);
	if ((r = put_lp(b, SRTP_AAD_DOMAIN, strlen(SRTP_AAD_DOMAIN))) !=
	    KEYD_OK || (r = put_lp(b, hdr, SRTP_HDR_LEN)) != KEYD_OK ||
	    (r = put_lp(b, name, strlen(name))) != KEYD_OK ||
	    (r = put_lp(b, ctx->data, ctx->len)) != KEYD_OK)
		return r;
	return KEYD_OK;
}

/* "inline:" and base64 of key||salt (RFC 4568, 9.2). */
static void
key_params(const uint8_t *ks, size_t n, char *out)
{
	memcpy(out, "inline:", 7);
	(void)EVP_EncodeBlock((unsigned char *)out + 7, ks, (int)n);
}

static struct srtp_key *
srtp_key_get(struct srtp *st, size_t key, char *msg, size_t msglen)
{
	if (st == NULL || key >= st->n_keys || st->keys[key].n_v == 0) {
		snprintf(msg, msglen, "SRTP is not set up for this key");
		return NULL;
	}
	return &st->keys[key];
}

int
handle_srtp_new(struct srtp *st, struct token *t, struct token_session *s,
    size_t key, const Keyd__V1__SrtpNewRequest *req, Keyd__V1__Response *resp,
    struct srtp_result *res, char *msg, size_t msglen)
{
	const struct srtp_suite *su = suite_find(req->suite);
	Keyd__V1__SrtpNewReply *rep = &res->new_reply;
	struct srtp_key *k;
	struct kbuf aad;
	uint8_t *blob = res->blob;
	size_t kl, outlen;
	CK_RV rv = CKR_OK;
	int r;

	kbuf_init(&aad, 0, 0);
	keyd__v1__srtp_new_reply__init(rep);
	snprintf(res->mech, sizeof(res->mech), "%s",
	    srtp_suite_name(req->suite));
	if ((k = srtp_key_get(st, key, msg, msglen)) == NULL ||
	    k->counter == NULL) {
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	if (su == NULL) {
		snprintf(msg, msglen, "unknown SRTP suite %d (keyd makes "
		    "AES_CM_128_HMAC_SHA1_80/32, AES_256_CM_HMAC_SHA1_80/32, "
		    "AEAD_AES_128_GCM, AEAD_AES_256_GCM)", (int)req->suite);
		r = KEYD_ERR_BAD_ALGORITHM;
		goto out;
	}
	if (req->context.len > SRTP_MAX_CONTEXT) {
		snprintf(msg, msglen, "a context is at most %d bytes, not %zu",
		    SRTP_MAX_CONTEXT, req->context.len);
		r = KEYD_ERR_BAD_LENGTH;
		goto out;
	}
	snprintf(res->mech, sizeof(res->mech), "%s %s", su->name,
	    k->v[0].name);
	kl = su->key_len + su->salt_len;

	/* Counted before the token encrypts: a blob made is a blob counted,
	 * even if the reply never reaches the client. */
	if ((r = counter_take(st, k->counter, st->cfg->keys[key].name, msg,
	    msglen)) != KEYD_OK)
		goto out;
	if ((r = token_random(t, s, res->key_salt, kl, msg, msglen)) !=
	    KEYD_OK || (r = token_random(t, s, blob + SRTP_HDR_LEN,
	    SRTP_IV_LEN, msg, msglen)) != KEYD_OK)
		goto out;
	memcpy(blob, srtp_magic, sizeof(srtp_magic));
	blob[4] = SRTP_FORMAT;
	blob[SRTP_OFF_SUITE] = (uint8_t)su->id;
	memcpy(blob + SRTP_OFF_KCV, k->v[0].kcv, SRTP_KCV_LEN);
	if ((r = aad_build(&aad, blob, st->cfg->keys[key].name,
	    &req->context)) != KEYD_OK)
		goto out;
	outlen = kl + SRTP_TAG_LEN;
	if ((r = token_gcm(t, s, key, 0, 1, blob + SRTP_HDR_LEN, SRTP_IV_LEN,
	    kbuf_ptr(&aad), kbuf_avail(&aad), SRTP_TAG_LEN * 8, res->key_salt,
	    kl, blob + SRTP_HDR_LEN + SRTP_IV_LEN, &outlen, &rv, msg,
	    msglen)) != KEYD_OK) {
		if (rv != CKR_OK)
			snprintf(msg, msglen, "the token could not wrap the "
			    "key under KEK %s with CKM_AES_GCM: %s",
			    k->v[0].name, token_rv_name(rv));
		goto out;
	}
	key_params(res->key_salt, kl, res->key_params);
	rep->master_key.data = res->key_salt;
	rep->master_key.len = su->key_len;
	rep->master_salt.data = res->key_salt + su->key_len;
	rep->master_salt.len = su->salt_len;
	rep->key_params = res->key_params;
	rep->blob.data = blob;
	rep->blob.len = SRTP_HDR_LEN + SRTP_IV_LEN + kl + SRTP_TAG_LEN;
	rep->kek_version = kcv_u32(k->v[0].kcv);
	resp->result_case = KEYD__V1__RESPONSE__RESULT_SRTP_NEW;
	resp->srtp_new = rep;
	r = KEYD_OK;
out:
	kbuf_free(&aad);
	if (r != KEYD_OK)
		secmem_wipe(res->key_salt, sizeof(res->key_salt));
	return r;
}

int
handle_srtp_open(struct srtp *st, struct token *t, struct token_session *s,
    size_t key, const Keyd__V1__SrtpOpenRequest *req,
    Keyd__V1__Response *resp, struct srtp_result *res, char *msg,
    size_t msglen)
{
	const char *name;
	const struct srtp_suite *su;
	Keyd__V1__SrtpOpenReply *rep = &res->open_reply;
	const uint8_t *hdr, *iv, *ct;
	uint8_t magic[sizeof(srtp_magic)], format, suite, kcv[SRTP_KCV_LEN];
	char kek[16];
	struct srtp_key *k;
	struct kbuf b, aad;
	size_t kl, v, outlen;
	CK_RV rv = CKR_OK;
	int r = KEYD_ERR_BLOB;

	kbuf_init(&aad, 0, 0);
	keyd__v1__srtp_open_reply__init(rep);
	snprintf(res->mech, sizeof(res->mech), "unknown");
	if ((k = srtp_key_get(st, key, msg, msglen)) == NULL) {
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	name = st->cfg->keys[key].name;
	if (req->context.len > SRTP_MAX_CONTEXT) {
		snprintf(msg, msglen, "a context is at most %d bytes, not %zu",
		    SRTP_MAX_CONTEXT, req->context.len);
		r = KEYD_ERR_BAD_LENGTH;
		goto out;
	}
	kbuf_view(&b, req->blob.data, req->blob.len);
	if (kbuf_get_ptr(&b, SRTP_HDR_LEN, &hdr) != KEYD_OK) {
		snprintf(msg, msglen, "the blob has %zu bytes, fewer than a "
		    "blob's header", req->blob.len);
		goto out;
	}
	{
		struct kbuf h;

		kbuf_view(&h, hdr, SRTP_HDR_LEN);
		if (kbuf_get_bytes(&h, magic, sizeof(magic)) != KEYD_OK ||
		    kbuf_get_u8(&h, &format) != KEYD_OK ||
		    kbuf_get_u8(&h, &suite) != KEYD_OK ||
		    kbuf_get_bytes(&h, kcv, sizeof(kcv)) != KEYD_OK) {
			r = KEYD_ERR_INTERNAL;
			goto out;
		}
	}
	if (memcmp(magic, srtp_magic, sizeof(magic)) != 0) {
		snprintf(msg, msglen, "not a keyd SRTP blob (bad magic)");
		goto out;
	}
	if (format != SRTP_FORMAT) {
		snprintf(msg, msglen, "blob format version %u; this keyd reads "
		    "version %d", format, SRTP_FORMAT);
		goto out;
	}
	if ((su = suite_find(suite)) == NULL) {
		snprintf(msg, msglen, "the blob names unknown SRTP suite %u",
		    suite);
		goto out;
	}
	kcv_name(kcv, kek, sizeof(kek));
	snprintf(res->mech, sizeof(res->mech), "%s %s", su->name, kek);
	kl = su->key_len + su->salt_len;
	if (req->blob.len != SRTP_HDR_LEN + SRTP_IV_LEN + kl + SRTP_TAG_LEN) {
		snprintf(msg, msglen, "a %s blob has %zu bytes, this one %zu "
		    "(truncated or extended)", su->name,
		    SRTP_HDR_LEN + SRTP_IV_LEN + kl + SRTP_TAG_LEN,
		    req->blob.len);
		goto out;
	}
	for (v = 0; v < k->n_v; v++)
		if (memcmp(k->v[v].kcv, kcv, SRTP_KCV_LEN) == 0)
			break;
	if (v == k->n_v) {
		snprintf(msg, msglen, "the blob was made under KEK %s, which "
		    "is not a version of key '%s' in keyd's configuration (list "
		    "it under previous to open its blobs)", kek, name);
		goto out;
	}
	if (kbuf_get_ptr(&b, SRTP_IV_LEN, &iv) != KEYD_OK ||
	    kbuf_get_ptr(&b, kl + SRTP_TAG_LEN, &ct) != KEYD_OK ||
	    kbuf_avail(&b) != 0) {
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	if ((r = aad_build(&aad, hdr, name, &req->context)) != KEYD_OK)
		goto out;
	outlen = kl;
	r = token_gcm(t, s, key, v, 0, iv, SRTP_IV_LEN, kbuf_ptr(&aad),
	    kbuf_avail(&aad), SRTP_TAG_LEN * 8, ct, kl + SRTP_TAG_LEN,
	    res->key_salt, &outlen, &rv, msg, msglen);
	if (r != KEYD_OK) {
		/* A bad tag: CKR_ENCRYPTED_DATA_INVALID by the standard,
		 * CKR_GENERAL_ERROR from SoftHSM2 2.6. */
		if (rv == CKR_ENCRYPTED_DATA_INVALID ||
		    rv == CKR_GENERAL_ERROR ||
		    rv == CKR_ENCRYPTED_DATA_LEN_RANGE) {
			snprintf(msg, msglen, "the blob does not authenticate "
			    "under KEK %s of key '%s': it was altered, or made "
			    "for another key name or another context (%s)",
			    kek, name, token_rv_name(rv));
			r = KEYD_ERR_BLOB;
		}
		goto out;
	}
	key_params(res->key_salt, kl, res->key_params);
	rep->master_key.data = res->key_salt;
	rep->master_key.len = su->key_len;
	rep->master_salt.data = res->key_salt + su->key_len;
	rep->master_salt.len = su->salt_len;
	rep->key_params = res->key_params;
	rep->suite = (Keyd__V1__SrtpSuite)su->id;
	rep->kek_version = kcv_u32(kcv);
	resp->result_case = KEYD__V1__RESPONSE__RESULT_SRTP_OPEN;
	resp->srtp_open = rep;
	r = KEYD_OK;
out:
	kbuf_free(&aad);
	if (r != KEYD_OK)
		secmem_wipe(res->key_salt, sizeof(res->key_salt));
	return r;
}
