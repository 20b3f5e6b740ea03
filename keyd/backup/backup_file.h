/*
 * backup_file.h: the files keyd-backup reads and writes: bounded reads
 * (into locked memory for secrets), the bundle written atomically (a
 * temporary file, fsync, then a rename that never replaces a file), share
 * files created with O_EXCL and mode 0400, and the check that a shares
 * directory is not on a disk.
 */
#ifndef KEYD_BACKUP_FILE_H
#define KEYD_BACKUP_FILE_H

#include <stddef.h>
#include <stdint.h>

#define BACKUP_FILE_WUR __attribute__((warn_unused_result))
/* Longest path keyd-backup makes (a share file in --shares-dir). */
#define BACKUP_FILE_MAX_PATH 4096

/* backup_file_read: reads the whole regular file at path, at most max
 * bytes, into a new buffer *data (secmem_alloc(max + 1) if secret, else
 * malloc(max + 1); free with backup_file_free). what names the file in
 * messages ("bundle", "share file"). */
int backup_file_read(const char *path, const char *what, size_t max,
    int secret, uint8_t **data, size_t *len, char *err, size_t errlen)
    BACKUP_FILE_WUR;
void backup_file_free(uint8_t *data, size_t max, int secret);

/* backup_file_stage: writes data to a new temporary file beside path
 * (mode 0644) and fsyncs it; *tmp is its name (malloc'ed). Then either
 * backup_file_commit renames it to path, refusing to replace an existing
 * file, and fsyncs the directory; or backup_file_abort removes it. Both
 * free *tmp. */
int backup_file_stage(const char *path, const uint8_t *data, size_t len,
    char **tmp, char *err, size_t errlen) BACKUP_FILE_WUR;
int backup_file_commit(char **tmp, const char *path, char *err,
    size_t errlen) BACKUP_FILE_WUR;
void backup_file_abort(char **tmp);

/* backup_file_create_excl: creates path (O_EXCL, O_NOFOLLOW, mode 0400),
 * writes data and fsyncs it. An existing file is an error. */
int backup_file_create_excl(const char *path, const void *data, size_t len,
    char *err, size_t errlen) BACKUP_FILE_WUR;

/* backup_file_check_shares_dir: dir must be a directory owned by us or
 * root that group and others cannot write, and, unless allow_disk, on
 * tmpfs or ramfs: shares must not linger on a disk. */
int backup_file_check_shares_dir(const char *dir, int allow_disk, char *err,
    size_t errlen) BACKUP_FILE_WUR;

/* backup_file_check_dir_of: whether a new file can be made at path: its
 * directory must exist and be one we may write into (access(2), W_OK and
 * X_OK). For the files written at the end of a command (a bundle, a drill
 * report), checked before anyone types a share. option names path in the
 * message ("--report"). Returns KEYD_OK or KEYD_ERR_IO (err says why). */
int backup_file_check_dir_of(const char *path, const char *option, char *err,
    size_t errlen) BACKUP_FILE_WUR;

/* backup_file_fsync_dir: fsyncs the directory dir (after files in it were
 * created). */
int backup_file_fsync_dir(const char *dir, char *err, size_t errlen)
    BACKUP_FILE_WUR;

#endif
