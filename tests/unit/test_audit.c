/*
 * test_audit: when the audit log's lines become durable (keyd/audit/audit.c).
 * The interval sync runs outside the audit mutex: requests write lines
 * while it runs, it counts as durable only what was written before it
 * began, and a rotation waits for it to finish with the descriptor. In
 * request mode, a failed sync fails every reply still waiting for it and
 * takes the file back to its last durable line, and a rotation waits for
 * a group commit in progress. Every file's hash chain holds throughout.
 *
 * fdatasync is replaced in this program (audit.c is linked statically, so
 * its calls bind to the definition here) to hold a sync until the test
 * lets it go, or to fail one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "keyd_err.h"
#include "ktest.h"

#define TEST_DEADLINE_MS 5000   /* a call that should return has hung */
#define TEST_PAUSE_MS 100       /* long enough for a call to get stuck */
#define TEST_MAX_LINES 64

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];
static char rotated[PATH_MAX + 32];

/* The fake fdatasync's state, under fake_mu. */
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_cv = PTHREAD_COND_INITIALIZER;
static int fake_hold;     /* the next call waits until fake_release */
static int fake_held;     /* a call is waiting now */
static int fake_fail;     /* the next call fails with EIO */
static int fake_calls;
static int fake_bad_fd;   /* a held call's fd was closed or reused */

int
fdatasync(int fd)
{
	struct stat before, after;
	int fail;

	pthread_mutex_lock(&fake_mu);
	fake_calls++;
	if (fake_hold) {
		fake_hold = 0;
		fake_held = 1;
		if (fstat(fd, &before) != 0)
			fake_bad_fd = 1;
		pthread_cond_broadcast(&fake_cv);
		while (fake_held)
			pthread_cond_wait(&fake_cv, &fake_mu);
		/* The descriptor must still be the file the sync began on. */
		if (fstat(fd, &after) != 0 || after.st_ino != before.st_ino ||
		    after.st_dev != before.st_dev)
			fake_bad_fd = 1;
	}
	fail = fake_fail;
	fake_fail = 0;
	pthread_mutex_unlock(&fake_mu);
	if (fail) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static void
fake_arm(int fail)
{
	pthread_mutex_lock(&fake_mu);
	fake_hold = 1;
	fake_fail = fail;
	pthread_mutex_unlock(&fake_mu);
}

/* Waits until an armed call is held. */
static int
fake_wait_held(void)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TEST_DEADLINE_MS / 1000;
	pthread_mutex_lock(&fake_mu);
	while (!fake_held && r == 0)
		r = pthread_cond_timedwait(&fake_cv, &fake_mu, &until);
	r = fake_held;
	pthread_mutex_unlock(&fake_mu);
	return r;
}

static void
fake_release(void)
{
	pthread_mutex_lock(&fake_mu);
	fake_held = 0;
	pthread_cond_broadcast(&fake_cv);
	pthread_mutex_unlock(&fake_mu);
}

static int
fake_count(void)
{
	int n;

	pthread_mutex_lock(&fake_mu);
	n = fake_calls;
	pthread_mutex_unlock(&fake_mu);
	return n;
}

static void
sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static off_t
file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* A call run on its own thread, so that the test sees whether it
 * returns while a sync is held. */
enum job_kind { JOB_WRITE, JOB_TICK, JOB_ROTATE };

struct job {
	pthread_t th;
	enum job_kind kind;
	struct audit *a;
	const char *detail;
	int result;
	int done;               /* under job_mu */
};

static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cv = PTHREAD_COND_INITIALIZER;

static int
write_line(struct audit *a, const char *detail)
{
	struct audit_record r;

	memset(&r, 0, sizeof(r));
	r.event = "test";
	r.result = KEYD_OK;
	r.detail = detail;
	return audit_write(a, &r);
}

static void *
job_run(void *arg)
{
	struct job *j = arg;
	int r = KEYD_OK;

	switch (j->kind) {
	case JOB_WRITE:
		r = write_line(j->a, j->detail);
		break;
	case JOB_TICK:
		audit_tick(j->a);
		break;
	case JOB_ROTATE:
		r = audit_rotate(j->a);
		break;
	}
	pthread_mutex_lock(&job_mu);
	j->result = r;
	j->done = 1;
	pthread_cond_broadcast(&job_cv);
	pthread_mutex_unlock(&job_mu);
	return NULL;
}

static void
job_start(struct job *j, enum job_kind kind, struct audit *a,
    const char *detail)
{
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->a = a;
	j->detail = detail;
	if (pthread_create(&j->th, NULL, job_run, j) != 0) {
		fprintf(stderr, "test_audit: pthread_create failed\n");
		exit(2);
	}
}

/* 1 if the job returned within ms. */
static int
job_wait(struct job *j, long ms)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&job_mu);
	while (!j->done && r == 0)
		r = pthread_cond_timedwait(&job_cv, &job_mu, &until);
	r = j->done;
	pthread_mutex_unlock(&job_mu);
	return r;
}

static void
job_join(struct job *j)
{
	pthread_join(j->th, NULL);
}

static struct audit *
open_log(enum config_audit_sync mode)
{
	struct config cfg;
	struct audit *a = NULL;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.audit_log = path;
	cfg.audit_sync = mode;
	cfg.audit_sync_ms = 1;
	cfg.audit_checkpoint_lines = CONFIG_DEFAULT_CHECKPOINT_LINES;
	cfg.audit_checkpoint_s = 3600;
	unlink(path);
	unlink(rotated);
	if (audit_open(&cfg, NULL, &a, err, sizeof(err)) != KEYD_OK) {
		fprintf(stderr, "test_audit: %s\n", err);
		exit(2);
	}
	return a;
}

/* Reads the lines of the files named (in order) and checks the chain:
 * seq counts up from 0 without a gap, and each line's prev is the hash of
 * the line before it (zeros for the first). Returns the line count, or
 * -1 if the chain is broken. details[i] gets line i's detail. */
static int
check_chain(const char *const *files, size_t nfiles,
    char details[][32], size_t max)
{
	char prev[AUDIT_HASH_HEX + 1], line[4096];
	size_t n = 0;

	memset(prev, '0', AUDIT_HASH_HEX);
	prev[AUDIT_HASH_HEX] = '\0';
	for (size_t f = 0; f < nfiles; f++) {
		FILE *fp = fopen(files[f], "r");

		if (fp == NULL)
			return -1;
		while (fgets(line, sizeof(line), fp) != NULL) {
			size_t len = strlen(line);
			unsigned long long seq;
			const char *p, *d;

			if (len < 2 || line[len - 1] != '\n' || n >= max) {
				fclose(fp);
				return -1;
			}
			line[--len] = '\0';
			p = strstr(line, "\"prev\":\"");
			if (sscanf(line, "{\"seq\":%llu,", &seq) != 1 ||
			    seq != n || p == NULL ||
			    strncmp(p + 8, prev, AUDIT_HASH_HEX) != 0) {
				fprintf(stderr, "test_audit: chain broken at "
				    "line %zu of %s: %s\n", n, files[f], line);
				fclose(fp);
				return -1;
			}
			details[n][0] = '\0';
			if ((d = strstr(line, "\"detail\":\"")) != NULL)
				sscanf(d + 10, "%31[^\"]", details[n]);
			audit_hash_line(line, len, prev);
			n++;
		}
		fclose(fp);
	}
	return (int)n;
}

/* Interval mode: a held tick sync does not hold up audit_write; a line
 * written during the sync is synced by the next tick (so the first one
 * did not count it as durable), and after that there is nothing to sync.
 * A rotation during a sync waits for it, and the descriptor the sync
 * holds stays open on the old file. */
static void
test_interval(void)
{
	static const char *const files[] = { rotated, path };
	char details[TEST_MAX_LINES][32];
	struct audit *a = open_log(CONFIG_SYNC_INTERVAL);
	struct job tick, w, rot;
	int calls;

	CHECK_INT(write_line(a, "before"), KEYD_OK);
	sleep_ms(2);
	fake_arm(0);
	job_start(&tick, JOB_TICK, a, NULL);
	CHECK(fake_wait_held());
	job_start(&w, JOB_WRITE, a, "during");
	CHECKF(job_wait(&w, TEST_DEADLINE_MS), "audit_write waited for the "
	    "interval fdatasync");
	fake_release();
	CHECK(job_wait(&tick, TEST_DEADLINE_MS));
	job_join(&tick);
	job_join(&w);
	CHECK_INT(w.result, KEYD_OK);
	calls = fake_count();
	sleep_ms(2);
	audit_tick(a);
	CHECKF(fake_count() == calls + 1, "the line written during a sync "
	    "was counted as durable by it");
	sleep_ms(2);
	audit_tick(a);
	CHECKF(fake_count() == calls + 1, "a tick synced with nothing new");

	/* A rotation while a sync holds the old descriptor. */
	CHECK_INT(write_line(a, "before-rotation"), KEYD_OK);
	sleep_ms(2);
	fake_arm(0);
	job_start(&tick, JOB_TICK, a, NULL);
	CHECK(fake_wait_held());
	CHECK_INT(rename(path, rotated), 0);
	job_start(&rot, JOB_ROTATE, a, NULL);
	CHECKF(!job_wait(&rot, TEST_PAUSE_MS), "audit_rotate did not wait "
	    "for the sync in progress");
	fake_release();
	CHECK(job_wait(&tick, TEST_DEADLINE_MS));
	CHECK(job_wait(&rot, TEST_DEADLINE_MS));
	job_join(&tick);
	job_join(&rot);
	CHECK_INT(rot.result, KEYD_OK);
	CHECK_INT(write_line(a, "after-rotation"), KEYD_OK);
	audit_close(a);
	CHECK(!fake_bad_fd);

	CHECK_INT(check_chain(files, 2, details, TEST_MAX_LINES), 4);
	CHECK(strcmp(details[0], "before") == 0);
	CHECK(strcmp(details[1], "during") == 0);
	CHECK(strcmp(details[2], "before-rotation") == 0);
	CHECK(strcmp(details[3], "after-rotation") == 0);
}

/* Request mode: the group commit's sync fails while a second writer waits
 * for it. Both replies are refused (the second writer's sync would have
 * succeeded: a failed fdatasync's error is reported once), both lines are
 * taken back, and the chain goes on from the last durable line. */
static void
test_request_failure(void)
{
	static const char *const files[] = { path };
	char details[TEST_MAX_LINES][32];
	struct audit *a = open_log(CONFIG_SYNC_REQUEST);
	struct job w1, w2;
	off_t durable, one;
	int i;

	CHECK_INT(write_line(a, "durable"), KEYD_OK);
	durable = file_size(path);
	fake_arm(1);
	job_start(&w1, JOB_WRITE, a, "lost-1");
	CHECK(fake_wait_held());
	one = file_size(path);
	CHECK(one > durable);
	job_start(&w2, JOB_WRITE, a, "lost-2");
	/* Once its line is in the file, w2 waits on the group commit. */
	for (i = 0; i < TEST_DEADLINE_MS && file_size(path) == one; i++)
		sleep_ms(1);
	CHECK(file_size(path) > one);
	fake_release();
	CHECK(job_wait(&w1, TEST_DEADLINE_MS));
	CHECK(job_wait(&w2, TEST_DEADLINE_MS));
	job_join(&w1);
	job_join(&w2);
	CHECK_INT(w1.result, KEYD_ERR_AUDIT);
	CHECKF(w2.result == KEYD_ERR_AUDIT, "a reply was released for a line "
	    "a failed sync took back");
	CHECK_INT(file_size(path), durable);
	CHECK_INT(write_line(a, "again"), KEYD_OK);
	audit_close(a);
	CHECK_INT(check_chain(files, 1, details, TEST_MAX_LINES), 2);
	CHECK(strcmp(details[0], "durable") == 0);
	CHECK(strcmp(details[1], "again") == 0);
}

/* Request mode: a rotation while a group commit's sync is held waits for
 * it; the writer's line is durable in the old file, and the chain runs on
 * into the new one. */
static void
test_request_rotate(void)
{
	static const char *const files[] = { rotated, path };
	char details[TEST_MAX_LINES][32];
	struct audit *a = open_log(CONFIG_SYNC_REQUEST);
	struct job w, rot;

	CHECK_INT(write_line(a, "first"), KEYD_OK);
	fake_arm(0);
	job_start(&w, JOB_WRITE, a, "syncing");
	CHECK(fake_wait_held());
	CHECK_INT(rename(path, rotated), 0);
	job_start(&rot, JOB_ROTATE, a, NULL);
	CHECKF(!job_wait(&rot, TEST_PAUSE_MS), "audit_rotate did not wait "
	    "for the group commit in progress");
	fake_release();
	CHECK(job_wait(&w, TEST_DEADLINE_MS));
	CHECK(job_wait(&rot, TEST_DEADLINE_MS));
	job_join(&w);
	job_join(&rot);
	CHECK_INT(w.result, KEYD_OK);
	CHECK_INT(rot.result, KEYD_OK);
	CHECK_INT(write_line(a, "new-file"), KEYD_OK);
	audit_close(a);
	CHECK(!fake_bad_fd);
	CHECK_INT(check_chain(files, 2, details, TEST_MAX_LINES), 3);
	CHECK(strcmp(details[1], "syncing") == 0);
	CHECK(strcmp(details[2], "new-file") == 0);
}

/* Request mode: a rollback, then a rotation before any new line. The
 * next lines must each wait for a sync of their own: the rotation must
 * not count the rolled-back lines as durable and release replies
 * unsynced. */
static void
test_rollback_then_rotate(void)
{
	struct audit *a = open_log(CONFIG_SYNC_REQUEST);
	int i, before;

	for (i = 0; i < 3; i++)
		CHECK_INT(write_line(a, "durable"), KEYD_OK);
	pthread_mutex_lock(&fake_mu);
	fake_fail = 1;
	pthread_mutex_unlock(&fake_mu);
	CHECK_INT(write_line(a, "lost"), KEYD_ERR_AUDIT);
	CHECK_INT(rename(path, rotated), 0);
	CHECK_INT(audit_rotate(a), KEYD_OK);
	for (i = 0; i < 3; i++) {
		before = fake_count();
		CHECK_INT(write_line(a, "after"), KEYD_OK);
		CHECKF(fake_count() > before, "line %d after a rollback and a "
		    "rotation was released without a sync", i);
	}
	audit_close(a);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_audit.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("test_audit: mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	snprintf(rotated, sizeof(rotated), "%s/audit.jsonl.1", dir);
	test_interval();
	test_request_failure();
	test_request_rotate();
	unlink(rotated);
	test_rollback_then_rotate();
	unlink(path);
	unlink(rotated);
	rmdir(dir);
	return ktest_result("test_audit");
}
