/*
 * pty_drive.c: runs a program on a pseudo-terminal and types into it by a
 * script, as a holder at a keyboard would, for the tests of keyd-backup's
 * typed shares (tests/integration/backup_typing.sh). Only libc: no expect,
 * no Python, so that it runs in the fresh Debian roots too.
 *
 *   pty_drive SCRIPT TRANSCRIPT PROG [ARG...]
 *
 * SCRIPT has one command a line ('#' lines and blank lines are skipped):
 *   expect TEXT   wait (at most PTY_DRIVE_TIMEOUT_MS) until TEXT appears in
 *                 the output after the end of the last match
 *   send TEXT     type TEXT; escapes \n \r \t \\ and \xHH
 *   noecho        the terminal must have echo and line editing off now
 *   echo          the terminal must have echo and line editing on now
 *   signal N      send signal N to the program
 *   exit N        wait for the program's end; its exit status must be N
 *   killed N      wait for the program's end; signal N must have ended it
 *   shell CMD     run CMD with /bin/sh while the program waits for input
 *                 (e.g. change a file between two shares); it must exit 0
 * Everything the program writes to the terminal goes to TRANSCRIPT.
 * Exit status: 0 if every command held, 1 (with the reason on stderr)
 * otherwise, 2 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PTY_DRIVE_TIMEOUT_MS 20000
#define PTY_DRIVE_MAX_OUT (1u << 20)
#define PTY_DRIVE_MAX_LINE 4096

static char out[PTY_DRIVE_MAX_OUT + 1];
static size_t outlen, mark;
static int master = -1;
static pid_t child = -1;
static const char *transcript;

static void
save(void)
{
	FILE *f = fopen(transcript, "w");

	if (f == NULL)
		return;
	fwrite(out, 1, outlen, f);
	fclose(f);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pty_drive: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	save();
	if (child > 0)
		kill(child, SIGKILL);
	exit(1);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reads what the program wrote, waiting at most ms. Returns 0 at its end
 * (EOF or EIO: the terminal's other side is closed), 1 otherwise. */
static int
drain(int ms)
{
	struct pollfd p = { .fd = master, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) <= 0)
		return 1;
	if (outlen >= PTY_DRIVE_MAX_OUT)
		die("the program wrote more than %u bytes", PTY_DRIVE_MAX_OUT);
	n = read(master, out + outlen, PTY_DRIVE_MAX_OUT - outlen);
	if (n < 0 && errno == EINTR)
		return 1;
	if (n <= 0)
		return 0;
	outlen += (size_t)n;
	out[outlen] = '\0';
	return 1;
}

static void
expect(const char *text)
{
	long end = now_ms() + PTY_DRIVE_TIMEOUT_MS;
	char *hit;

	for (;;) {
		out[outlen] = '\0';
		if ((hit = strstr(out + mark, text)) != NULL) {
			mark = (size_t)(hit - out) + strlen(text);
			return;
		}
		if (now_ms() > end)
			die("did not see '%s'", text);
		if (!drain(100))
			die("the program ended without writing '%s'", text);
	}
}

static void
send_text(const char *s)
{
	char buf[PTY_DRIVE_MAX_LINE];
	size_t n = 0;

	for (; *s != '\0' && n < sizeof(buf); s++) {
		if (*s != '\\' || s[1] == '\0') {
			buf[n++] = *s;
			continue;
		}
		s++;
		switch (*s) {
		case 'n': buf[n++] = '\n'; break;
		case 'r': buf[n++] = '\r'; break;
		case 't': buf[n++] = '\t'; break;
		case 'x': {
			char hex[3] = { s[1], s[1] ? s[2] : 0, 0 };

			buf[n++] = (char)strtoul(hex, NULL, 16);
			s += 2;
			break;
		}
		default: buf[n++] = *s; break;
		}
	}
	/* One key at a time, as typed, reading the output in between. */
	for (size_t i = 0; i < n; i++) {
		if (write(master, &buf[i], 1) != 1)
			die("cannot type into the terminal: %s", strerror(errno));
		(void)drain(0);
	}
}

static void
noecho(void)
{
	struct termios t;

	if (tcgetattr(master, &t) != 0)
		die("tcgetattr: %s", strerror(errno));
	if (t.c_lflag & (ECHO | ICANON))
		die("the terminal has echo or line editing on (c_lflag %#lx)",
		    (unsigned long)t.c_lflag);
}

static void
echo_on(void)
{
	struct termios t;

	if (tcgetattr(master, &t) != 0)
		die("tcgetattr: %s", strerror(errno));
	if ((t.c_lflag & (ECHO | ICANON)) != (ECHO | ICANON))
		die("the terminal has echo or line editing off (c_lflag %#lx)",
		    (unsigned long)t.c_lflag);
}

/* want >= 0: an exit status; want < 0: killed by signal -want. */
static void
wait_exit(int want)
{
	long end = now_ms() + PTY_DRIVE_TIMEOUT_MS;
	int st = 0;

	for (;;) {
		pid_t w = waitpid(child, &st, WNOHANG);

		if (w == child)
			break;
		if (now_ms() > end)
			die("the program did not end");
		if (!drain(100))
			usleep(10000);
	}
	while (drain(0) && outlen < PTY_DRIVE_MAX_OUT) {
		struct pollfd p = { .fd = master, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0)
			break;
	}
	child = -1;
	if (want < 0) {
		if (!WIFSIGNALED(st) || WTERMSIG(st) != -want)
			die("the program was not ended by signal %d", -want);
		return;
	}
	if (!WIFEXITED(st))
		die("the program was killed by signal %d", WTERMSIG(st));
	if (WEXITSTATUS(st) != want)
		die("the program exited %d, not %d", WEXITSTATUS(st), want);
}

int
main(int argc, char **argv)
{
	char line[PTY_DRIVE_MAX_LINE];
	FILE *script;
	int slave;

	if (argc < 4) {
		fprintf(stderr, "usage: pty_drive SCRIPT TRANSCRIPT PROG "
		    "[ARG...]\n");
		return 2;
	}
	transcript = argv[2];
	if ((script = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "pty_drive: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if ((master = posix_openpt(O_RDWR | O_NOCTTY)) < 0 ||
	    grantpt(master) != 0 || unlockpt(master) != 0)
		die("no pseudo-terminal: %s", strerror(errno));
	if ((child = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		setsid();
		if ((slave = open(ptsname(master), O_RDWR)) < 0)
			_exit(127);
		(void)ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		if (slave > 2)
			close(slave);
		close(master);
		execv(argv[3], argv + 3);
		_exit(127);
	}
	while (fgets(line, sizeof(line), script) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (strncmp(line, "expect ", 7) == 0)
			expect(line + 7);
		else if (strncmp(line, "send ", 5) == 0)
			send_text(line + 5);
		else if (strcmp(line, "noecho") == 0)
			noecho();
		else if (strcmp(line, "echo") == 0)
			echo_on();
		else if (strncmp(line, "signal ", 7) == 0) {
			if (child <= 0 || kill(child, atoi(line + 7)) != 0)
				die("cannot signal the program");
		} else if (strncmp(line, "killed ", 7) == 0)
			wait_exit(-atoi(line + 7));
		else if (strncmp(line, "exit ", 5) == 0)
			wait_exit(atoi(line + 5));
		else if (strncmp(line, "shell ", 6) == 0) {
			int st = system(line + 6);

			if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
				die("shell command failed: %s", line + 6);
		} else
			die("unknown script line '%s'", line);
	}
	fclose(script);
	save();
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return 0;
}
