/* audit.c: the JSON-lines audit trail. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"

#define AUDIT_LINE_MAX 4096

struct audit {
	pthread_mutex_t mu;
	int fd;
	char *path;
	uint64_t seq;
	off_t size;              /* the file's length after the last line */
	int dirty;
	int failing;             /* the last write failed */
	enum config_audit_sync mode;
	unsigned sync_ms;
	struct timespec last_sync;
};

int
audit_open(const struct config *cfg, struct audit **out, char *err,
    size_t errlen)
{
	struct audit *a;
	struct stat st;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return KEYD_ERR_NOMEM;
	pthread_mutex_init(&a->mu, NULL);
	a->mode = cfg->audit_sync;
	a->sync_ms = cfg->audit_sync_ms;
	a->fd = open(cfg->audit_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0640);
	if (a->fd < 0 || fstat(a->fd, &st) != 0) {
		snprintf(err, errlen, "cannot open audit log %s: %s (its "
		    "directory must exist and be writable by keyd)",
		    cfg->audit_log, strerror(errno));
		audit_close(a);
		return KEYD_ERR_CONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "audit log %s is not a regular file",
		    cfg->audit_log);
		audit_close(a);
		return KEYD_ERR_CONFIG;
	}
	a->size = st.st_size;
	a->path = strdup(cfg->audit_log);
	clock_gettime(CLOCK_MONOTONIC, &a->last_sync);
	*out = a;
	return KEYD_OK;
}

static void
add_str(json_object *o, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(o, k, json_object_new_string(v));
}

int
audit_write(struct audit *a, const struct audit_record *r)
{
	json_object *o;
	struct timespec now;
	struct tm tm;
	char ts[64];
	const char *s;
	size_t len;
	ssize_t n;
	int ret = KEYD_OK;

	if (a == NULL)
		return KEYD_OK;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, now.tv_nsec / 1000);

	if ((o = json_object_new_object()) == NULL)
		return KEYD_ERR_NOMEM;
	pthread_mutex_lock(&a->mu);
	json_object_object_add(o, "seq", json_object_new_int64(
	    (int64_t)a->seq));
	add_str(o, "time", ts);
	add_str(o, "event", r->event);
	add_str(o, "client", r->client);
	if (r->has_peer) {
		json_object_object_add(o, "uid", json_object_new_int64(r->uid));
		json_object_object_add(o, "gid", json_object_new_int64(r->gid));
		json_object_object_add(o, "pid", json_object_new_int64(r->pid));
	}
	add_str(o, "op", r->op);
	add_str(o, "key", r->key);
	add_str(o, "mech", r->mech);
	add_str(o, "result", r->result == KEYD_OK ? "ok" :
	    keyd_strerror(r->result));
	if (r->result != KEYD_OK)
		json_object_object_add(o, "error",
		    json_object_new_int(r->result));
	add_str(o, "detail", r->detail);
	if (r->op != NULL) {
		json_object_object_add(o, "latency_us",
		    json_object_new_int64((int64_t)r->latency_us));
		json_object_object_add(o, "request_bytes",
		    json_object_new_int64((int64_t)r->request_bytes));
		json_object_object_add(o, "reply_bytes",
		    json_object_new_int64((int64_t)r->reply_bytes));
	}
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (len + 1 > AUDIT_LINE_MAX) {
		ret = KEYD_ERR_INTERNAL;
		goto out;
	}
	{
		char line[AUDIT_LINE_MAX];

		memcpy(line, s, len);
		line[len++] = '\n';
		n = write(a->fd, line, len);
	}
	if (n != (ssize_t)len) {
		/* Never leave half a line: cut the file back. */
		if (n > 0)
			(void)!ftruncate(a->fd, a->size);
		if (!a->failing)
			log_error("cannot write audit log %s: %s; refusing "
			    "requests until it can be written", a->path,
			    n < 0 ? strerror(errno) : "short write");
		a->failing = 1;
		ret = KEYD_ERR_AUDIT;
		goto out;
	}
	if (a->mode == CONFIG_SYNC_REQUEST && fdatasync(a->fd) != 0) {
		(void)!ftruncate(a->fd, a->size);
		a->failing = 1;
		ret = KEYD_ERR_AUDIT;
		goto out;
	}
	if (a->failing)
		log_info("audit log %s is writable again", a->path);
	a->failing = 0;
	a->size += (off_t)len;
	a->seq++;
	a->dirty = a->mode != CONFIG_SYNC_REQUEST;
out:
	pthread_mutex_unlock(&a->mu);
	json_object_put(o);
	return ret;
}

void
audit_sync(struct audit *a, int force)
{
	struct timespec now;
	long ms;

	if (a == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&a->mu);
	ms = (now.tv_sec - a->last_sync.tv_sec) * 1000 +
	    (now.tv_nsec - a->last_sync.tv_nsec) / 1000000;
	if (a->dirty && (force || ms >= (long)a->sync_ms)) {
		if (fdatasync(a->fd) != 0)
			log_error("fdatasync of audit log %s: %s", a->path,
			    strerror(errno));
		a->dirty = 0;
		a->last_sync = now;
	}
	pthread_mutex_unlock(&a->mu);
}

int
audit_reopen(struct audit *a)
{
	struct stat st;
	int fd;

	fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0640);
	if (fd < 0 || fstat(fd, &st) != 0) {
		log_error("cannot reopen audit log %s: %s; keeping the old "
		    "file", a->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return KEYD_ERR_AUDIT;
	}
	pthread_mutex_lock(&a->mu);
	(void)fdatasync(a->fd);
	close(a->fd);
	a->fd = fd;
	a->size = st.st_size;
	a->dirty = 0;
	pthread_mutex_unlock(&a->mu);
	return KEYD_OK;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0) {
		(void)fdatasync(a->fd);
		close(a->fd);
	}
	pthread_mutex_destroy(&a->mu);
	free(a->path);
	free(a);
}
