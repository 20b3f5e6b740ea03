/* backup_file.c: keyd-backup's file reads and writes. */
#include "backup_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keyd_err.h"
#include "secmem.h"

/* A staged file is "<name>.tmp.<12 hex digits>" beside its final name:
 * random, so that a name taken is tried again, at most TMP_TRIES times. */
#define BACKUP_FILE_TMP_TAG ".tmp."
#define BACKUP_FILE_TMP_RAND 6
#define BACKUP_FILE_TMP_LEN (sizeof(BACKUP_FILE_TMP_TAG) - 1 + \
    2 * BACKUP_FILE_TMP_RAND)
#define BACKUP_FILE_TMP_TRIES 16
/* Flags of every directory keyd-backup writes into: read-only is enough
 * for openat, fsync and fstatfs; it is never a controlling terminal. */
#define BACKUP_FILE_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY)

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

/* The directory part of path: "." for a bare name. */
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

const char *
backup_file_base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? path : slash + 1;
}

/* Whether dir still leads to the directory dfd holds (same device and
 * inode); follow: whether a link at dir's end is followed, as it was
 * when dfd was opened. */
static int
same_dir(int dfd, const char *dir, int follow)
{
	struct stat held, now;

	if (fstat(dfd, &held) != 0 ||
	    fstatat(AT_FDCWD, dir, &now, follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	return held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}

int
backup_file_fsync_dir(int dfd, const char *dir, char *err, size_t errlen)
{
	if (fsync(dfd) != 0) {
		errf(err, errlen, "cannot sync directory %s: %s", dir,
		    strerror(errno));
		return KEYD_ERR_IO;
	}
	return KEYD_OK;
}

int
backup_file_open_dir_of(const char *path, const char *option, int *dfd,
    char *err, size_t errlen)
{
	char *dir = NULL;
	int fd = -1, r = KEYD_ERR_IO;

	*dfd = -1;
	if (*backup_file_base(path) == '\0') {
		errf(err, errlen, "%s %s names a directory; name the file to "
		    "write", option, path);
		return KEYD_ERR_INVALID_ARG;
	}
	if ((dir = dir_of(path)) == NULL) {
		errf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	/* A link to the directory is followed (removable media are often
	 * reached by one): what counts is that the check below and every
	 * write are made on this one descriptor. */
	if ((fd = open(dir, BACKUP_FILE_DIR_FLAGS)) < 0 ||
	    faccessat(fd, ".", W_OK | X_OK, 0) != 0) {
		errf(err, errlen, "%s %s: its directory %s cannot take a new "
		    "file: %s; name a directory that exists and that you may "
		    "write to", option, path, dir, strerror(errno));
		goto out;
	}
	*dfd = fd;
	fd = -1;
	r = KEYD_OK;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return r;
}

int
backup_file_dir_of_unmoved(int dfd, const char *path, const char *option,
    char *err, size_t errlen)
{
	char *dir = dir_of(path);
	int r = KEYD_OK;

	if (dir == NULL) {
		errf(err, errlen, "out of memory");
		return KEYD_ERR_NOMEM;
	}
	if (!same_dir(dfd, dir, 1)) {
		errf(err, errlen, "%s %s: its directory %s was moved or "
		    "replaced after it was checked; nothing was written: find "
		    "out who changed it before writing backups there", option,
		    path, dir);
		r = KEYD_ERR_DENIED;
	}
	free(dir);
	return r;
}

int
backup_file_stage(int dfd, const char *path, const char *what,
    const char *option, const uint8_t *data, size_t len, char **tmp,
    char *err, size_t errlen)
{
	const char *base = backup_file_base(path);
	size_t blen = strlen(base);
	uint8_t rnd[BACKUP_FILE_TMP_RAND];
	struct stat st;
	char *name = NULL;
	int fd = -1, tries, r = KEYD_ERR_IO;

	*tmp = NULL;
	if (strlen(path) + BACKUP_FILE_TMP_LEN >= BACKUP_FILE_MAX_PATH ||
	    (name = malloc(blen + BACKUP_FILE_TMP_LEN + 1)) == NULL) {
		errf(err, errlen, "%s %s: the path is too long", option, path);
		goto out;
	}
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errf(err, errlen, "%s %s already exists; keyd-backup never "
		    "replaces a %s: choose another %s", what, path, what,
		    option);
		goto out;
	}
	for (tries = 0; fd < 0 && tries < BACKUP_FILE_TMP_TRIES; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			errf(err, errlen, "cannot name a temporary file beside "
			    "%s: no random bytes", path);
			goto out;
		}
		snprintf(name, blen + BACKUP_FILE_TMP_LEN + 1, "%s%s"
		    "%02x%02x%02x%02x%02x%02x", base, BACKUP_FILE_TMP_TAG,
		    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		errf(err, errlen, "cannot create a temporary file beside %s: "
		    "%s", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0644) != 0 || write_fd(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		errf(err, errlen, "cannot write %s %s: %s", what, path,
		    strerror(errno));
		(void)unlinkat(dfd, name, 0);
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
backup_file_commit(int dfd, char **tmp, const char *path, const char *what,
    char *err, size_t errlen)
{
	/* RENAME_NOREPLACE: a file made meanwhile is never replaced. */
	if (renameat2(dfd, *tmp, dfd, backup_file_base(path),
	    RENAME_NOREPLACE) != 0) {
		int e = errno;

		errf(err, errlen, "cannot put the staged %s %s in place: "
		    "%s%s%s%s", what, path, strerror(e), e == EEXIST ?
		    " (keyd-backup never replaces a " : "", e == EEXIST ? what :
		    "", e == EEXIST ? ")" : "");
		backup_file_abort(dfd, tmp);
		return KEYD_ERR_IO;
	}
	free(*tmp);
	*tmp = NULL;
	if (fsync(dfd) != 0) {
		errf(err, errlen, "cannot sync the directory of %s: %s", path,
		    strerror(errno));
		return KEYD_ERR_IO;
	}
	return KEYD_OK;
}

void
backup_file_abort(int dfd, char **tmp)
{
	if (*tmp == NULL)
		return;
	(void)unlinkat(dfd, *tmp, 0);
	free(*tmp);
	*tmp = NULL;
}

int
backup_file_create_excl(int dfd, const char *dir, const char *name,
    const void *data, size_t len, char *err, size_t errlen)
{
	int fd, r = KEYD_OK;

	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0400);
	if (fd < 0) {
		errf(err, errlen, "cannot create share file %s/%s: %s%s", dir,
		    name, strerror(errno), errno == EEXIST ? " (keyd-backup "
		    "never replaces a share file; use an empty --shares-dir)" :
		    "");
		return KEYD_ERR_IO;
	}
	/* The umask may have taken bits away, never added: make it exact. */
	if (fchmod(fd, 0400) != 0 || write_fd(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		errf(err, errlen, "cannot write share file %s/%s: %s", dir,
		    name, strerror(errno));
		(void)unlinkat(dfd, name, 0);
		r = KEYD_ERR_IO;
	}
	close(fd);
	return r;
}

int
backup_file_open_shares_dir(const char *dir, int allow_disk, int *dfd,
    char *err, size_t errlen)
{
	struct statfs sf;
	struct stat st;
	int fd, e, r = KEYD_ERR_INVALID_ARG;

	*dfd = -1;
	/* Opened once, here: the checks are made on this descriptor and
	 * every sheet is created through it, so a directory renamed, or a
	 * link put in its place, while the holders type their shares
	 * redirects nothing. A link at its end is refused outright: what it
	 * points to can change between two uses of the name. */
	if ((fd = open(dir, BACKUP_FILE_DIR_FLAGS | O_NOFOLLOW)) < 0) {
		e = errno;
		if (e == ELOOP || (e == ENOTDIR && lstat(dir, &st) == 0 &&
		    S_ISLNK(st.st_mode)))
			errf(err, errlen, "--shares-dir %s is a symbolic link; "
			    "name the directory itself (keyd-backup follows no "
			    "link there, since its target could be changed "
			    "while the shares are typed)", dir);
		else
			errf(err, errlen, "--shares-dir %s is not a directory: "
			    "%s", dir, strerror(e));
		return e == ENOENT || e == ENOTDIR || e == ELOOP ?
		    KEYD_ERR_INVALID_ARG : KEYD_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
		errf(err, errlen, "--shares-dir %s is not a directory", dir);
		goto out;
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		errf(err, errlen, "--shares-dir %s must be owned by you or root "
		    "and not writable by group or others (owner uid %u, mode "
		    "%04o), so that no one can swap a share file", dir,
		    (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (fstatfs(fd, &sf) != 0) {
		errf(err, errlen, "cannot tell the file system of --shares-dir "
		    "%s: %s", dir, strerror(errno));
		r = KEYD_ERR_IO;
		goto out;
	}
	if (!allow_disk && sf.f_type != TMPFS_MAGIC &&
	    sf.f_type != RAMFS_MAGIC) {
		errf(err, errlen, "--shares-dir %s is not on tmpfs: shares "
		    "written to a disk can linger there (journal, free blocks) "
		    "after they are printed and deleted; use a tmpfs directory "
		    "(e.g. under /dev/shm or /run/user), or removable media you "
		    "name with --allow-disk", dir);
		r = KEYD_ERR_DENIED;
		goto out;
	}
	*dfd = fd;
	fd = -1;
	r = KEYD_OK;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
backup_file_shares_dir_unmoved(int dfd, const char *dir, char *err,
    size_t errlen)
{
	if (same_dir(dfd, dir, 0))
		return KEYD_OK;
	errf(err, errlen, "--shares-dir %s was moved or replaced after it was "
	    "checked; no share sheet was written: find out who changed it, "
	    "then run again with a new directory", dir);
	return KEYD_ERR_DENIED;
}
