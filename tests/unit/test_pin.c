/*
 * test_pin: the PIN file (keyd/common/pin.c), on real files. Only a regular
 * file owned by root or the daemon's user, mode 0400 or 0600, reached
 * without a symbolic link, is read; one trailing newline is stripped; an
 * empty file, a second line, a NUL byte or an over-long PIN is refused;
 * no refusal ever quotes the file's bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyd_err.h"
#include "ktest.h"
#include "pin.h"

#define NOBODY 65534
/* Appears in every test PIN, so that a message quoting one is caught. */
#define MARK "%q!"

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];

static void
write_pin(const void *data, size_t n, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, data, n) != (ssize_t)n || close(fd) != 0 ||
	    chmod(path, mode) != 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void
accept_at(int caller, uid_t owner, const char *want)
{
	char *pin = NULL, err[512] = "";
	size_t len = 0;
	int r = pin_read(path, owner, &pin, &len, err, sizeof(err));

	ktest_checks++;
	if (r != KEYD_OK || pin == NULL || len != strlen(want) ||
	    memcmp(pin, want, len) != 0 || pin[len] != '\0') {
		ktest_failures++;
		fprintf(stderr, "%s:%d: pin_read: %d (%s), len %zu\n",
		    __FILE__, caller, r, err, len);
	}
	pin_free(pin, len);
}
#define ACCEPT(owner, want) accept_at(__LINE__, owner, want)

static void
refuse_at(int caller, const char *p, uid_t owner, const char *what)
{
	char *pin = (char *)1, err[512] = "";
	size_t len = 99;
	int r = pin_read(p, owner, &pin, &len, err, sizeof(err));

	ktest_checks++;
	if (r != KEYD_ERR_CONFIG || pin != NULL || len != 0 ||
	    strstr(err, what) == NULL || strstr(err, p) == NULL ||
	    strstr(err, MARK) != NULL) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: pin_read(%s): want \"%s\", got %d: "
		    "%s\n", __FILE__, caller, p, what, r, err);
	}
	if (r == KEYD_OK)
		pin_free(pin, len);
}
#define REFUSE(owner, what) refuse_at(__LINE__, path, owner, what)

static void
test_content(void)
{
	char big[PIN_MAX_LEN + 8];

	write_pin("12" MARK "\n", 6, 0400);
	ACCEPT(0, "12" MARK);
	write_pin("12" MARK, 5, 0400);
	ACCEPT(0, "12" MARK);
	/* Inner spaces are the PIN's; only the newline goes. */
	write_pin(" a " MARK " \n", 8, 0600);
	ACCEPT(0, " a " MARK " ");
	/* One newline is stripped, not two: the rest is a second line. */
	write_pin("12" MARK "\n\n", 7, 0400);
	REFUSE(0, "more than one line");
	write_pin("12" MARK "\nsecond\n", 13, 0400);
	REFUSE(0, "more than one line");
	write_pin("\n", 1, 0400);
	REFUSE(0, "is empty");
	write_pin("", 0, 0400);
	REFUSE(0, "is empty");
	write_pin("12\0" MARK "\n", 7, 0400);
	REFUSE(0, "NUL byte");

	/* The longest PIN, with and without its newline. */
	memset(big, 'p', sizeof(big));
	memcpy(big, MARK, 3);
	big[PIN_MAX_LEN] = '\0';
	write_pin(big, PIN_MAX_LEN, 0400);
	ACCEPT(0, big);
	big[PIN_MAX_LEN] = '\n';
	write_pin(big, PIN_MAX_LEN + 1, 0400);
	big[PIN_MAX_LEN] = '\0';
	ACCEPT(0, big);
	/* ...followed by a second line: not the PIN alone. */
	memcpy(big + PIN_MAX_LEN, "\nx", 2);
	write_pin(big, PIN_MAX_LEN + 2, 0400);
	REFUSE(0, "PIN file");
	/* One byte too long, with and without a newline. */
	memset(big + PIN_MAX_LEN, 'p', 2);
	write_pin(big, PIN_MAX_LEN + 1, 0400);
	REFUSE(0, "holds more than 256 bytes");
	big[PIN_MAX_LEN + 1] = '\n';
	write_pin(big, PIN_MAX_LEN + 2, 0400);
	REFUSE(0, "holds more than 256 bytes");
}

static void
test_mode(void)
{
	static const mode_t bad[] = { 0644, 0640, 0604, 0440, 0660, 0666,
		0700, 0500, 0200, 04600, 01600 };
	char want[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_pin("12" MARK "\n", 6, bad[i]);
		snprintf(want, sizeof(want), "has mode %04o; it must be "
		    "readable by its owner only", (unsigned)bad[i]);
		refuse_at(__LINE__, path, 0, want);
	}
	write_pin("12" MARK "\n", 6, 0600);
	ACCEPT(0, "12" MARK);
	write_pin("12" MARK "\n", 6, 0400);
	ACCEPT(0, "12" MARK);
}

static void
test_owner(void)
{
	if (geteuid() != 0) {
		printf("SKIP owner checks: not root\n");
		return;
	}
	write_pin("12" MARK "\n", 6, 0400);
	if (chown(path, NOBODY, NOBODY) != 0)
		exit(1);
	/* Owned by someone who is neither root nor the daemon's user. */
	REFUSE(0, "is owned by uid 65534; it must be owned by root or the "
	    "keyd user");
	REFUSE(1000, "is owned by uid 65534");
	/* ...unless that someone is the daemon's user. */
	ACCEPT(NOBODY, "12" MARK);
	/* Root's file is fine whoever the daemon's user is. */
	if (chown(path, 0, 0) != 0)
		exit(1);
	ACCEPT(NOBODY, "12" MARK);
}

static void
test_kind(void)
{
	char link[PATH_MAX + 32], missing[PATH_MAX + 32], sub[PATH_MAX + 32];
	char *pin = NULL, err[512] = "";
	size_t len = 0;
	int r;

	write_pin("12" MARK "\n", 6, 0400);
	snprintf(link, sizeof(link), "%s/pin-link", dir);
	if (symlink(path, link) != 0)
		exit(1);
	refuse_at(__LINE__, link, 0, "must not be a symbolic link");
	/* A link to the directory: as root, refused (keyd's user could
	 * have planted it, pathsafe.h); without root, the admin's choice. */
	snprintf(sub, sizeof(sub), "%s/d", dir);
	snprintf(link, sizeof(link), "%s/dlink", dir);
	if (mkdir(sub, 0700) != 0 || symlink(sub, link) != 0)
		exit(1);
	snprintf(link, sizeof(link), "%s/dlink/pin", dir);
	if (rename(path, link) != 0)
		exit(1);
	if (geteuid() == 0) {
		refuse_at(__LINE__, link, 0, "nor lie under one");
	} else {
		r = pin_read(link, 0, &pin, &len, err, sizeof(err));
		CHECKF(r == KEYD_OK && len == 5, "%d %s", r, err);
		pin_free(pin, len);
	}
	snprintf(missing, sizeof(missing), "%s/nothere", dir);
	refuse_at(__LINE__, missing, 0, "cannot read PIN file");
	refuse_at(__LINE__, missing, 0, "No such file or directory");
	refuse_at(__LINE__, sub, 0, "is not a regular file");
	refuse_at(__LINE__, "/dev/null", 0, "is not a regular file");
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/keyd-test-pin.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/pin", dir);
	test_content();
	test_mode();
	test_owner();
	test_kind();
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return ktest_result("test_pin");
}
