/* pin.c: the PIN file, checked on its open descriptor before it is read. */
#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyd_err.h"
#include "pathsafe.h"
#include "secmem.h"

int
pin_read(const char *path, uid_t owner_uid, char **pin, size_t *len,
    char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	mode_t mode;
	int fd = -1, r = KEYD_ERR_CONFIG;

	*pin = NULL;
	*len = 0;
	if ((fd = pathsafe_open(path, O_RDONLY | O_NOCTTY, 0)) < 0) {
		snprintf(err, errlen, "cannot read PIN file %s: %s%s", path,
		    strerror(errno), errno == ELOOP ? pathsafe_why(ELOOP) :
		    errno == EACCES ?
		    " (it must be readable by root or the keyd user only)" :
		    "");
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "PIN file %s is not a regular file",
		    path);
		goto out;
	}
	/* A second name elsewhere could be a root-only file that keyd's user
	 * linked into a directory it writes. */
	if (st.st_nlink != 1) {
		snprintf(err, errlen, "PIN file %s has %ju hard links; it must "
		    "have one", path, (uintmax_t)st.st_nlink);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != owner_uid) {
		snprintf(err, errlen, "PIN file %s is owned by uid %u; it must "
		    "be owned by root or the keyd user", path,
		    (unsigned)st.st_uid);
		goto out;
	}
	mode = st.st_mode & 07777;
	if (mode != 0400 && mode != 0600) {
		snprintf(err, errlen, "PIN file %s has mode %04o; it must be "
		    "readable by its owner only (chmod 0400 %s)", path,
		    (unsigned)mode, path);
		goto out;
	}
	if ((buf = secmem_alloc(PIN_MAX_LEN + 2)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	/* Up to two bytes past the longest PIN: a PIN of the longest
	 * length, its newline, and one more byte to tell that such a line
	 * is not alone in the file. */
	for (;;) {
		n = read(fd, buf + got, PIN_MAX_LEN + 2 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read PIN file %s: %s",
			    path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > PIN_MAX_LEN + 1)
			break;
	}
	if (got > 0 && buf[got - 1] == '\n')
		buf[--got] = '\0';
	if (got > PIN_MAX_LEN) {
		snprintf(err, errlen, "PIN file %s holds more than %d bytes",
		    path, PIN_MAX_LEN);
		goto out;
	}
	if (got == 0) {
		snprintf(err, errlen, "PIN file %s is empty", path);
		goto out;
	}
	if (memchr(buf, '\0', got) != NULL || memchr(buf, '\n', got) != NULL) {
		snprintf(err, errlen, "PIN file %s holds a NUL byte or more "
		    "than one line; it must hold the PIN alone", path);
		goto out;
	}
	buf[got] = '\0';
	*pin = buf;
	*len = got;
	buf = NULL;
	r = KEYD_OK;
out:
	secmem_free(buf, PIN_MAX_LEN + 2);
	if (fd >= 0)
		close(fd);
	return r;
}

void
pin_free(char *pin, size_t len)
{
	(void)len;
	secmem_free(pin, PIN_MAX_LEN + 2);
}
