/* pathsafe.c: root's opens and mkdirs that no planted link can redirect
 * (pathsafe.h). */
#include "pathsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int
pathsafe_open(const char *path, int flags, mode_t mode)
{
	struct open_how how;
	long fd;

	flags |= O_CLOEXEC | O_NOFOLLOW;
	if (geteuid() != 0)
		return open(path, flags, mode);
	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)flags;
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return open(path, flags, mode);
	return (int)fd;
}

const char *
pathsafe_why(int err)
{
	if (err != ELOOP)
		return "";
	return geteuid() == 0 ? " (it must not be a symbolic link, nor lie "
	    "under one: keyd follows no link while it runs as root, since "
	    "keyd's user could have planted it)" : " (it must not be a "
	    "symbolic link)";
}

int
pathsafe_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	char parent[PATH_MAX];
	const char *name, *slash = strrchr(path, '/');
	int pfd = -1, fd = -1, e;

	if (slash == NULL) {
		snprintf(parent, sizeof(parent), ".");
		name = path;
	} else {
		if ((size_t)(slash - path) >= sizeof(parent)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path),
		    path);
		if (parent[0] == '\0')
			snprintf(parent, sizeof(parent), "/");
		name = slash + 1;
	}
	if (*name == '\0') {
		errno = EINVAL;
		return -1;
	}
	if ((pfd = pathsafe_open(parent, O_PATH | O_DIRECTORY, 0)) < 0)
		return -1;
	if (mkdirat(pfd, name, mode) != 0)
		goto fail;
	/* Whatever now sits at the name (the new directory, or something
	 * renamed over it since) is only changed if it is a directory that
	 * this descriptor holds. */
	if ((fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0)
		goto fail;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0)
		goto fail;
	if (fchmod(fd, mode) != 0)
		goto fail;
	close(pfd);
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	close(pfd);
	errno = e;
	return -1;
}
