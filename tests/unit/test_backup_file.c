/*
 * test_backup_file.c: keyd-backup's writes through the descriptor of the
 * directory it checked.
 *   - staged writes (backup_file_stage, backup_file_commit): the file
 *     appears whole under its name, an existing file is never replaced,
 *     and the messages name what is written (a drill report is not called
 *     a bundle) and the option that named it;
 *   - the shares directory: a symbolic link is refused; once opened, a
 *     sheet goes into the directory that was checked even after it was
 *     renamed and a link put in its place, and the swap is seen.
 * The tmpfs check is tests/integration/backup_reshare.sh's (--allow-disk
 * here: /tmp may be a disk).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_file.h"
#include "keyd_err.h"
#include "ktest.h"

/* Entries in dir other than "." and "..". */
static int
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_shares_dir(void)
{
	char top[] = "/tmp/keyd-test-shares-dir.XXXXXX";
	char real[256], link[256], moved[256], other[256], p[512];
	char err[512];
	int dfd = -1;

	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		CHECK(0);
		return;
	}
	snprintf(real, sizeof(real), "%s/real", top);
	snprintf(link, sizeof(link), "%s/link", top);
	snprintf(moved, sizeof(moved), "%s/moved", top);
	snprintf(other, sizeof(other), "%s/other", top);
	CHECK(mkdir(real, 0700) == 0 && mkdir(other, 0700) == 0);
	CHECK(symlink(real, link) == 0);

	CHECK_INT(backup_file_open_shares_dir(link, 1, &dfd, err,
	    sizeof(err)), KEYD_ERR_INVALID_ARG);
	CHECK(dfd == -1);
	CHECKF(strstr(err, "is a symbolic link") != NULL, "got '%s'", err);

	CHECK_INT(backup_file_open_shares_dir(real, 1, &dfd, err,
	    sizeof(err)), KEYD_OK);
	CHECK_INT(backup_file_shares_dir_unmoved(dfd, real, err, sizeof(err)),
	    KEYD_OK);
	/* The directory renamed and a link to another put at its name. */
	CHECK(rename(real, moved) == 0 && symlink(other, real) == 0);
	CHECK_INT(backup_file_shares_dir_unmoved(dfd, real, err, sizeof(err)),
	    KEYD_ERR_DENIED);
	CHECK_INT(backup_file_create_excl(dfd, real, "s.txt", "x", 1, err,
	    sizeof(err)), KEYD_OK);
	snprintf(p, sizeof(p), "%s/s.txt", moved);
	CHECK(access(p, F_OK) == 0);
	CHECK_INT(entries(other), 0);
	/* O_EXCL: never over a file. */
	CHECK_INT(backup_file_create_excl(dfd, real, "s.txt", "y", 1, err,
	    sizeof(err)), KEYD_ERR_IO);
	CHECKF(strstr(err, "never replaces a share file") != NULL, "got '%s'",
	    err);
	close(dfd);

	CHECK(unlink(p) == 0 && unlink(real) == 0 && unlink(link) == 0);
	CHECK(rmdir(moved) == 0 && rmdir(other) == 0 && rmdir(top) == 0);
}

int
main(void)
{
	static const uint8_t data[] = "{\"result\": \"pass\"}\n";
	char dir[] = "/tmp/keyd-test-backup-file.XXXXXX";
	char path[256], want[512], err[512], *tmp = NULL;
	uint8_t *back = NULL;
	size_t len = 0;
	int dfd = -1, fd;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/drill.json", dir);
	CHECK_INT(backup_file_open_dir_of(path, "--report", &dfd, err,
	    sizeof(err)), KEYD_OK);

	/* Staged, then renamed to its name: the whole file, nothing else. */
	CHECK_INT(backup_file_stage(dfd, path, "drill report", "--report",
	    data, sizeof(data) - 1, &tmp, err, sizeof(err)), KEYD_OK);
	CHECK(tmp != NULL && access(path, F_OK) != 0);
	CHECK_INT(backup_file_commit(dfd, &tmp, path, "drill report", err,
	    sizeof(err)), KEYD_OK);
	CHECK(tmp == NULL);
	CHECK_INT(backup_file_read(path, "drill report", 1024, 0, &back, &len,
	    err, sizeof(err)), KEYD_OK);
	CHECK(len == sizeof(data) - 1 && back != NULL &&
	    memcmp(back, data, len) == 0);
	backup_file_free(back, 1024, 0);
	CHECK_INT(entries(dir), 1);

	/* An existing report: refused, named as a report, with --report. */
	CHECK_INT(backup_file_stage(dfd, path, "drill report", "--report",
	    data, sizeof(data) - 1, &tmp, err, sizeof(err)), KEYD_ERR_IO);
	CHECK(tmp == NULL);
	snprintf(want, sizeof(want), "drill report %s already exists; "
	    "keyd-backup never replaces a drill report: choose another "
	    "--report", path);
	CHECKF(strcmp(err, want) == 0, "got '%s'", err);

	/* A file made between the stage and the rename is not replaced, the
	 * staged file is removed, and the message names a report. */
	CHECK(unlink(path) == 0);
	CHECK_INT(backup_file_stage(dfd, path, "drill report", "--report",
	    data, sizeof(data) - 1, &tmp, err, sizeof(err)), KEYD_OK);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(backup_file_commit(dfd, &tmp, path, "drill report", err,
	    sizeof(err)), KEYD_ERR_IO);
	CHECK(tmp == NULL);
	CHECKF(strstr(err, "(keyd-backup never replaces a drill report)") !=
	    NULL && strstr(err, "bundle") == NULL, "got '%s'", err);
	CHECK_INT(entries(dir), 1);

	CHECK(unlink(path) == 0);
	close(dfd);
	CHECK(rmdir(dir) == 0);
	test_shares_dir();
	return ktest_result("test_backup_file");
}
