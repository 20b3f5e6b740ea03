/* backup_drill.c: the keyd check and the JSON report of keyd-backup drill. */
#include "backup_drill.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_file.h"
#include "keyd_err.h"

/* A process name (comm) is at most 15 bytes and a line break. */
#define BD_MAX_COMM 32
/* "/proc/<pid>/comm" */
#define BD_MAX_PROC_PATH 64
/* The daemon's process name: its executable's file name. */
static const char keyd_comm[] = "keyd\n";

/* Whether the name of process pid is keyd's. A process that is gone or
 * that we may not read is not one we can see: false. */
static int
is_keyd(const char *pid)
{
	char path[BD_MAX_PROC_PATH], comm[BD_MAX_COMM];
	ssize_t n;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "/proc/%s/comm", pid) >=
	    sizeof(path))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	do
		n = read(fd, comm, sizeof(comm));
	while (n < 0 && errno == EINTR);
	close(fd);
	return n == (ssize_t)(sizeof(keyd_comm) - 1) &&
	    memcmp(comm, keyd_comm, sizeof(keyd_comm) - 1) == 0;
}

int
backup_drill_keyd_pids(pid_t *pids, size_t cap, size_t *n)
{
	struct dirent *e;
	DIR *d;

	*n = 0;
	if ((d = opendir("/proc")) == NULL)
		return KEYD_ERR_IO;
	while ((e = readdir(d)) != NULL) {
		const char *c = e->d_name;
		long pid = 0;

		for (; *c != '\0' && isdigit((unsigned char)*c); c++)
			pid = pid < 1000000000L ? pid * 10 + (*c - '0') : pid;
		if (*c != '\0' || c == e->d_name || pid == (long)getpid() ||
		    !is_keyd(e->d_name))
			continue;
		if (*n < cap)
			pids[*n] = (pid_t)pid;
		(*n)++;
	}
	closedir(d);
	return KEYD_OK;
}

static const char *
state_name(enum backup_drill_state s)
{
	switch (s) {
	case BACKUP_DRILL_PASS:
		return "pass";
	case BACKUP_DRILL_FAIL:
		return "fail";
	default:
		return "not run";
	}
}

/* Adds v to o as k; *bad records any failure (json-c fails only without
 * memory), checked once at the end. */
static json_object *
put(json_object *o, const char *k, json_object *v, int *bad)
{
	if (o == NULL || v == NULL || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		*bad = 1;
		return NULL;
	}
	return v;
}

static void
append(json_object *a, json_object *v, int *bad)
{
	if (a == NULL || v == NULL || json_object_array_add(a, v) != 0) {
		json_object_put(v);
		*bad = 1;
	}
}

static json_object *
hex_string(const uint8_t *p, size_t n)
{
	char hex[2 * BUNDLE_MAX_ID + 1];

	return json_object_new_string(bundle_hex(p, n, hex));
}

int
backup_drill_report_write(int dfd, const char *path,
    const struct backup_drill_report *r, char *err, size_t errlen)
{
	const struct bundle *b = r->b;
	json_object *o = NULL, *a, *x, *on;
	char when[64], type[32], *tmp = NULL, *text = NULL;
	struct tm tm;
	size_t passed = 0;
	int bad = 0, k = KEYD_ERR_NOMEM;

	if (gmtime_r(&r->when, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)r->when);
	o = json_object_new_object();
	bad = o == NULL;
	put(o, "report", json_object_new_string("keyd-backup drill"), &bad);
	put(o, "keyd_version", json_object_new_string(KEYD_VERSION), &bad);
	put(o, "date", json_object_new_string(when), &bad);
	put(o, "bundle", json_object_new_string(r->bundle_path), &bad);
	put(o, "bundle_fingerprint", hex_string(b->fingerprint,
	    BUNDLE_HASH_LEN), &bad);
	put(o, "set_id", hex_string(b->set_id, BUNDLE_SET_ID_LEN), &bad);
	put(o, "token", json_object_new_string(r->token), &bad);
	on = put(o, "online", json_object_new_object(), &bad);
	put(on, "allowed", json_object_new_boolean(r->allow_online), &bad);
	a = put(on, "keyd_pids", json_object_new_array(), &bad);
	for (size_t i = 0; i < r->n_keyd; i++)
		append(a, json_object_new_int64(r->keyd_pids[i]), &bad);
	/* The members that took part, by group and member number (1-based,
	 * as the sheets name them). */
	a = put(o, "shares", json_object_new_array(), &bad);
	for (size_t i = 0; i < r->n_shares; i++) {
		x = json_object_new_object();
		put(x, "group", json_object_new_int(r->groups[i] + 1), &bad);
		put(x, "member", json_object_new_int(r->members[i] + 1), &bad);
		append(a, x, &bad);
	}
	a = put(o, "keys", json_object_new_array(), &bad);
	for (size_t i = 0; i < b->n_keys; i++) {
		const struct bundle_key *key = &b->keys[i];

		x = json_object_new_object();
		put(x, "label", json_object_new_string_len(key->label,
		    (int)key->label_len), &bad);
		put(x, "id", hex_string(key->id, key->id_len), &bad);
		put(x, "type", json_object_new_string(bundle_key_type_name(key,
		    type, sizeof(type))), &bad);
		put(x, "fingerprint", hex_string(key->fp, key->fp_len), &bad);
		put(x, "result", json_object_new_string(
		    state_name(r->keys[i].state)), &bad);
		put(x, "detail", json_object_new_string(r->keys[i].detail),
		    &bad);
		append(a, x, &bad);
		passed += r->keys[i].state == BACKUP_DRILL_PASS;
	}
	put(o, "result", json_object_new_string(passed == b->n_keys ?
	    "pass" : "fail"), &bad);
	if (bad || asprintf(&text, "%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0) {
		text = NULL;
		snprintf(err, errlen, "out of memory writing the drill report");
		goto out;
	}
	if ((k = backup_file_stage(dfd, path, "drill report", "--report",
	    (const uint8_t *)text, strlen(text), &tmp, err, errlen)) !=
	    KEYD_OK ||
	    (k = backup_file_commit(dfd, &tmp, path, "drill report", err,
	    errlen)) != KEYD_OK)
		goto out;
	k = KEYD_OK;
out:
	backup_file_abort(dfd, &tmp);
	free(text);
	json_object_put(o);
	return k;
}
