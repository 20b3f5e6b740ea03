/*
 * backup_file.h: the files keyd-backup reads and writes: bounded reads
 * (into locked memory for secrets), the bundle written atomically (a
 * temporary file, fsync, then a rename that never replaces a file), share
 * files created with O_EXCL and mode 0400, and the check that a shares
 * directory is not on a disk; every write through a descriptor of its
 * directory opened when it was checked.
 */
#ifndef KEYD_BACKUP_FILE_H
#define KEYD_BACKUP_FILE_H

#include <stddef.h>
#include <stdint.h>

#define BACKUP_FILE_WUR __attribute__((warn_unused_result))
/* Longest path of a bundle or drill report keyd-backup stages (with its
 * temporary suffix). */
#define BACKUP_FILE_MAX_PATH 4096

/* backup_file_read: reads the whole regular file at path, at most max
 * bytes, into a new buffer *data (secmem_alloc(max + 1) if secret, else
 * malloc(max + 1); free with backup_file_free). what names the file in
 * messages ("bundle", "share file"). */
int backup_file_read(const char *path, const char *what, size_t max,
    int secret, uint8_t **data, size_t *len, char *err, size_t errlen)
    BACKUP_FILE_WUR;
void backup_file_free(uint8_t *data, size_t max, int secret);

/*
 * Every directory keyd-backup writes into is opened once, when it is
 * checked before anyone types a share, and every file is then created,
 * renamed and removed through that descriptor (openat, renameat2,
 * unlinkat): a directory renamed, or a link put in its place, between the
 * check and the writes redirects nothing. Paths are only named in
 * messages. The caller closes the descriptors.
 */

/* backup_file_open_shares_dir: opens dir (O_DIRECTORY, O_NOFOLLOW: a
 * symbolic link is refused) into *dfd and checks that descriptor: a
 * directory owned by us or root that group and others cannot write, and,
 * unless allow_disk, on tmpfs or ramfs: shares must not linger on a disk.
 * Returns KEYD_OK, KEYD_ERR_INVALID_ARG (not a directory, a link, the
 * owner or mode), KEYD_ERR_DENIED (on a disk) or KEYD_ERR_IO; *dfd is -1
 * unless KEYD_OK. */
int backup_file_open_shares_dir(const char *dir, int allow_disk, int *dfd,
    char *err, size_t errlen) BACKUP_FILE_WUR;

/* backup_file_shares_dir_unmoved: whether dir still names the directory
 * dfd holds (a link at its end not followed), checked just before the
 * sheets are written so that the paths keyd-backup prints are where they
 * are. Returns KEYD_OK or KEYD_ERR_DENIED (err says what to do). */
int backup_file_shares_dir_unmoved(int dfd, const char *dir, char *err,
    size_t errlen) BACKUP_FILE_WUR;

/* backup_file_create_excl: creates name in the directory dfd (named dir
 * in messages), O_EXCL, O_NOFOLLOW, mode 0400, writes data and fsyncs it.
 * An existing file is an error. */
int backup_file_create_excl(int dfd, const char *dir, const char *name,
    const void *data, size_t len, char *err, size_t errlen) BACKUP_FILE_WUR;

/* backup_file_open_dir_of: opens the directory of path, the file a command
 * writes at its end (a bundle, a drill report), into *dfd, and checks,
 * before anyone types a share, that a new file can be made there (W_OK and
 * X_OK, access(2)'s rules). option names path in the message
 * ("--report"). A path ending in '/' is refused. Returns KEYD_OK,
 * KEYD_ERR_INVALID_ARG or KEYD_ERR_IO (err says why); *dfd is -1 unless
 * KEYD_OK. */
int backup_file_open_dir_of(const char *path, const char *option, int *dfd,
    char *err, size_t errlen) BACKUP_FILE_WUR;

/* backup_file_dir_of_unmoved: whether path's directory still is the one
 * dfd holds (links followed, as when it was opened). Returns KEYD_OK or
 * KEYD_ERR_DENIED. */
int backup_file_dir_of_unmoved(int dfd, const char *path, const char *option,
    char *err, size_t errlen) BACKUP_FILE_WUR;

/* backup_file_base: path's last component (a pointer into path). */
const char *backup_file_base(const char *path);

/* backup_file_stage: writes data to a new temporary file beside path's
 * last component in the directory dfd (from backup_file_open_dir_of),
 * mode 0644, and fsyncs it; *tmp is its name in dfd (malloc'ed). Then
 * either backup_file_commit renames it to path's last component, refusing
 * to replace an existing file, and fsyncs the directory; or
 * backup_file_abort removes it. Both free *tmp. what names the file in
 * messages ("bundle", "drill report"), option the option that named it
 * ("--new-bundle", "--report"): "drill report R already exists; ...
 * choose another --report". */
int backup_file_stage(int dfd, const char *path, const char *what,
    const char *option, const uint8_t *data, size_t len, char **tmp,
    char *err, size_t errlen) BACKUP_FILE_WUR;
int backup_file_commit(int dfd, char **tmp, const char *path,
    const char *what, char *err, size_t errlen) BACKUP_FILE_WUR;
void backup_file_abort(int dfd, char **tmp);

/* backup_file_fsync_dir: fsyncs the directory dfd (named dir in the
 * message) after files in it were created. */
int backup_file_fsync_dir(int dfd, const char *dir, char *err, size_t errlen)
    BACKUP_FILE_WUR;

#endif
