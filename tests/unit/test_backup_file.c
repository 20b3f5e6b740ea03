/*
 * test_backup_file.c: keyd-backup's staged writes (backup_file_stage,
 * backup_file_commit) through the descriptor of the file's directory:
 * the file appears whole under its name, an existing file is never
 * replaced, and the messages name what is written (a drill report is
 * not called a bundle) and the option that named it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	return ktest_result("test_backup_file");
}
