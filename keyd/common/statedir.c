/* statedir.c: opening state_dir (statedir.h). */
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyd_err.h"
#include "log.h"
#include "pathsafe.h"

int
statedir_open(const struct config *cfg, int check_only, const char *what,
    int *fd, char *err, size_t errlen)
{
	const char *dir = cfg->state_dir;
	uid_t owner = cfg->user != NULL ? cfg->user_uid : geteuid();
	int drop = cfg->user != NULL && geteuid() == 0;
	struct stat sb;

	*fd = -1;
	if (dir == NULL || dir[0] != '/') {
		snprintf(err, errlen, "state_dir must be an absolute path");
		return KEYD_ERR_CONFIG;
	}
	*fd = pathsafe_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (*fd < 0 && errno == ENOENT) {
		if (check_only) {
			log_info("state_dir %s does not exist yet; keyd will "
			    "create it", dir);
			return KEYD_OK;
		}
		*fd = pathsafe_mkdir(dir, 0700, drop ? cfg->user_uid :
		    (uid_t)-1, drop ? cfg->user_gid : (gid_t)-1);
		if (*fd < 0 && errno == EEXIST)
			*fd = pathsafe_open(dir, O_RDONLY | O_DIRECTORY, 0);
		else if (*fd >= 0)
			log_info("created state_dir %s for %s", dir, what);
		if (*fd < 0) {
			snprintf(err, errlen, "cannot create state_dir %s: %s "
			    "(it holds %s; create it, owned by keyd's user, "
			    "mode 0700; with systemd: StateDirectory=keyd)%s",
			    dir, strerror(errno), what, pathsafe_why(errno));
			return KEYD_ERR_CONFIG;
		}
	}
	if (*fd < 0 || fstat(*fd, &sb) != 0) {
		snprintf(err, errlen, "cannot open state_dir %s: %s%s", dir,
		    strerror(errno), errno == ELOOP ? pathsafe_why(ELOOP) :
		    errno == ENOTDIR ? " (it must be a directory)" : "");
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return KEYD_ERR_CONFIG;
	}
	/* What keyd keeps there guards a limit (the GCM counters) or a
	 * record (the audit checkpoint): nobody but keyd may be able to
	 * reset it. */
	if (sb.st_uid != owner || (sb.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "state_dir %s must be owned by uid %u "
		    "(keyd's user) and not writable by group or others (it is "
		    "owned by uid %u, mode %04o)", dir, (unsigned)owner,
		    (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
		close(*fd);
		*fd = -1;
		return KEYD_ERR_CONFIG;
	}
	return KEYD_OK;
}
