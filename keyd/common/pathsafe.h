/*
 * pathsafe.h: opening and creating keyd's files and directories as root
 * without following links that keyd's own user could plant.
 *
 * keyd started as root opens the PIN file, the audit log, state_dir and
 * the socket directory before it drops to [keyd] user. Some of those paths
 * lie in directories that user owns (the socket and audit directories, by
 * design). A path call made by root there could be sent through a symbolic
 * link the user renamed into place, onto any file on the system: a chown or
 * chmod would then hand that file to the user. So while keyd runs as root,
 * no path it resolves may pass through a symbolic link (openat2's
 * RESOLVE_NO_SYMLINKS), ownership and mode are changed only through the
 * descriptor that was checked, and a socket node is created with its final
 * owner, group and mode in the first place (server.c). Without root there
 * is nothing to gain from redirecting keyd, and links are followed as
 * usual (only the last component never is).
 */
#ifndef KEYD_PATHSAFE_H
#define KEYD_PATHSAFE_H

#include <sys/types.h>

/* pathsafe_open: open(2) of path with O_CLOEXEC | O_NOFOLLOW added and,
 * when the process runs as root, no symbolic link anywhere in the path.
 * Returns the descriptor, or -1 with errno set (ELOOP: a link on the path;
 * pathsafe_why() words it). On a kernel without openat2 (before 5.6),
 * only the last component is checked. */
int pathsafe_open(const char *path, int flags, mode_t mode);

/* pathsafe_why: a hint for an errno that pathsafe_open set, for the end of
 * an error message: " (...)" or "". */
const char *pathsafe_why(int err);

/* pathsafe_mkdir: creates the directory path with mode (its parent must
 * exist), then sets its owner, group and mode through its descriptor:
 * never by name, so that a link renamed over the new directory cannot
 * redirect the change. uid or gid (uid_t)-1 / (gid_t)-1: left as created.
 * Returns an O_DIRECTORY descriptor of the new directory, or -1 with errno
 * set (EEXIST if it exists). */
int pathsafe_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid);

#endif
