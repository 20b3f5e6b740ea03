/* backup_file.c: keyd-backup's file reads and writes. */
#include "backup_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keyd_err.h"
#include "secmem.h"

/* Suffix of the bundle's temporary file: mkstemp's six X. */
#define BACKUP_FILE_TMP_SUFFIX ".tmp.XXXXXX"

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
backup_file_free(uint8_t *data, size_t max, int secret)
{
	if (data == NULL)
		return;
	if (secret) {
		secmem_free(data, max + 1);
	} else {
		free(data);
	}
}

int
backup_file_read(const char *path, const char *what, size_t max, int secret,
    uint8_t **data, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd = -1, r = KEYD_ERR_IO;

	*data = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		errf(err, errlen, "cannot open %s %s: %s", what, path,
		    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		errf(err, errlen, "%s %s is not a regular file", what, path);
		goto out;
	}
	buf = secret ? secmem_alloc(max + 1) : malloc(max + 1);
	if (buf == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		n = read(fd, buf + got, max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errf(err, errlen, "cannot read %s %s: %s", what, path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > max) {
			errf(err, errlen, "%s %s is larger than %zu bytes; it is "
			    "not a keyd-backup %s", what, path, max, what);
			r = KEYD_ERR_FRAME_TOO_LARGE;
			goto out;
		}
	}
	*data = buf;
	*len = got;
	buf = NULL;
	r = KEYD_OK;
out:
	backup_file_free(buf, max, secret);
	if (fd >= 0)
		close(fd);
	return r;
}

static int
write_fd(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* The directory part of path, for fsync: "." for a bare name. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int
backup_file_fsync_dir(const char *dir, char *err, size_t errlen)
{
	int fd, r = KEYD_OK;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) != 0) {
		errf(err, errlen, "cannot sync directory %s: %s", dir,
		    strerror(errno));
		r = KEYD_ERR_IO;
	}
	if (fd >= 0)
		close(fd);
	return r;
}

int
backup_file_stage(const char *path, const uint8_t *data, size_t len,
    char **tmp, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *name = NULL;
	int fd = -1, r = KEYD_ERR_IO;

	*tmp = NULL;
	if (plen + sizeof(BACKUP_FILE_TMP_SUFFIX) > BACKUP_FILE_MAX_PATH ||
	    (name = malloc(plen + sizeof(BACKUP_FILE_TMP_SUFFIX))) == NULL) {
		errf(err, errlen, "bundle path %s is too long", path);
		goto out;
	}
	memcpy(name, path, plen);
	memcpy(name + plen, BACKUP_FILE_TMP_SUFFIX,
	    sizeof(BACKUP_FILE_TMP_SUFFIX));
	if (access(path, F_OK) == 0) {
		errf(err, errlen, "bundle %s already exists; keyd-backup never "
		    "replaces a bundle: choose another --bundle", path);
		goto out;
	}
	if ((fd = mkostemp(name, O_CLOEXEC)) < 0) {
		errf(err, errlen, "cannot create a temporary file beside %s: "
		    "%s", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0644) != 0 || write_fd(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		errf(err, errlen, "cannot write bundle %s: %s", name,
		    strerror(errno));
		(void)unlink(name);
		goto out;
	}
	*tmp = name;
	name = NULL;
	r = KEYD_OK;
out:
	if (fd >= 0)
		close(fd);
	free(name);
	return r;
}

int
backup_file_commit(char **tmp, const char *path, char *err, size_t errlen)
{
	char *dir = NULL;
	int r = KEYD_ERR_IO;

	/* RENAME_NOREPLACE: a bundle made meanwhile is never replaced. */
	if (renameat2(AT_FDCWD, *tmp, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
		errf(err, errlen, "cannot rename %s to %s: %s%s", *tmp, path,
		    strerror(errno), errno == EEXIST ? " (keyd-backup never "
		    "replaces a bundle)" : "");
		backup_file_abort(tmp);
		goto out;
	}
	free(*tmp);
	*tmp = NULL;
	if ((dir = dir_of(path)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	r = backup_file_fsync_dir(dir, err, errlen);
out:
	free(dir);
	return r;
}

void
backup_file_abort(char **tmp)
{
	if (*tmp == NULL)
		return;
	(void)unlink(*tmp);
	free(*tmp);
	*tmp = NULL;
}

int
backup_file_check_dir_of(const char *path, const char *option, char *err,
    size_t errlen)
{
	char *dir = dir_of(path);
	int r = KEYD_OK;

	if (dir == NULL) {
		errf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		errf(err, errlen, "%s %s: its directory %s cannot take a new "
		    "file: %s; name a directory that exists and that you may "
		    "write to", option, path, dir, strerror(errno));
		r = KEYD_ERR_IO;
	}
	free(dir);
	return r;
}

int
backup_file_create_excl(const char *path, const void *data, size_t len,
    char *err, size_t errlen)
{
	int fd, r = KEYD_OK;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0400);
	if (fd < 0) {
		errf(err, errlen, "cannot create share file %s: %s%s", path,
		    strerror(errno), errno == EEXIST ? " (keyd-backup never "
		    "replaces a share file; use an empty --shares-dir)" : "");
		return KEYD_ERR_IO;
	}
	/* The umask may have taken bits away, never added: make it exact. */
	if (fchmod(fd, 0400) != 0 || write_fd(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		errf(err, errlen, "cannot write share file %s: %s", path,
		    strerror(errno));
		(void)unlink(path);
		r = KEYD_ERR_IO;
	}
	close(fd);
	return r;
}

int
backup_file_check_shares_dir(const char *dir, int allow_disk, char *err,
    size_t errlen)
{
	struct statfs sf;
	struct stat st;

	errno = 0;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errf(err, errlen, "--shares-dir %s is not a directory%s%s", dir,
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return KEYD_ERR_INVALID_ARG;
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		errf(err, errlen, "--shares-dir %s must be owned by you or root "
		    "and not writable by group or others (owner uid %u, mode "
		    "%04o), so that no one can swap a share file", dir,
		    (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return KEYD_ERR_INVALID_ARG;
	}
	if (statfs(dir, &sf) != 0) {
		errf(err, errlen, "cannot tell the file system of --shares-dir "
		    "%s: %s", dir, strerror(errno));
		return KEYD_ERR_IO;
	}
	if (allow_disk || sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
		return KEYD_OK;
	errf(err, errlen, "--shares-dir %s is not on tmpfs: shares written to "
	    "a disk can linger there (journal, free blocks) after they are "
	    "printed and deleted; use a tmpfs directory (e.g. under /dev/shm or "
	    "/run/user), or removable media you name with --allow-disk", dir);
	return KEYD_ERR_DENIED;
}
