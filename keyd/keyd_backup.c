/*
 * keyd_backup.c: keyd-backup, the offline officer tool.
 *
 * Subcommands live in the table `commands` below: a command is one word
 * ("keygen") or a group and a word ("shamir split"). To add one, write a
 * cmd_<name>(argc, argv) that gets its own arguments (argv[0] is the
 * command's name, for getopt) and returns an exit status, and add a row.
 *
 * Conventions: every error is one line on stderr, "keyd-backup: ...",
 * that says what is wrong and what to do, and never holds a secret; exit
 * status 0 is success, 1 a failure, 2 a usage error. Secrets (master secret,
 * shares, passphrase) are only held in locked memory (secmem) and leave it
 * only through write(2) to standard output.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbuf.h"
#include "keyd_err.h"
#include "secmem.h"
#include "slip39.h"

#define PROG "keyd-backup"

/* Hex master secret on stdin for "shamir split": 64 bytes are 128 digits;
 * the rest is room for whitespace and line breaks. */
#define BACKUP_MAX_HEX_INPUT 4096
/* Mnemonics on stdin for "shamir combine": the most shares of a split,
 * each a full line with generous whitespace. */
#define BACKUP_MAX_SHARE_INPUT (SLIP39_MAX_SHARES * SLIP39_MAX_MNEMONIC_LEN * 2)
/* A passphrase file: the passphrase and one line break (CR LF). */
#define BACKUP_MAX_PASSFILE (SLIP39_MAX_PASSPHRASE_LEN + 2)
/* One error line. */
#define BACKUP_MAX_MSG 1024
/* Digits in a count or threshold argument ("16"). */
#define BACKUP_MAX_NUM_DIGITS 3

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define WUR __attribute__((warn_unused_result))

static int cmd_shamir_split(int argc, char **argv);
static int cmd_shamir_combine(int argc, char **argv);

struct command {
	const char *group;  /* first word, or NULL for one-word commands */
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;  /* arguments, after the command's words */
	const char *summary;
};

static const struct command commands[] = {
	{ "shamir", "split", cmd_shamir_split,
	  "(--threshold T --shares N | --group-threshold G --group T/N "
	  "[--group T/N ...]) [--passphrase-file F] [--no-extendable] "
	  "[--iteration-exponent E]",
	  "read a master secret as hex on stdin, write SLIP-0039 shares, "
	  "one per line" },
	{ "shamir", "combine", cmd_shamir_combine,
	  "[--passphrase-file F]",
	  "read SLIP-0039 shares on stdin, one per line, write the master "
	  "secret as hex" },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The row of the command whose function is run (for its usage line). */
static const struct command *
command_of(int (*run)(int, char **))
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].run == run)
			return &commands[i];
	abort();  /* every command function has a row */
}

/* ---- output ------------------------------------------------------------- */

/* One line on stderr, in one write(2). */
static void
errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
errmsg(const char *fmt, ...)
{
	char line[BACKUP_MAX_MSG];
	va_list ap;
	int n, m;

	n = snprintf(line, sizeof(line), "%s: ", PROG);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

static WUR int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return KEYD_ERR_IO;
		c += w;
		n -= (size_t)w;
	}
	return KEYD_OK;
}

static const char *
usage_of(const struct command *c, char *buf, size_t cap)
{
	if (c->group != NULL)
		snprintf(buf, cap, "%s %s %s %s", PROG, c->group, c->name,
		    c->usage);
	else
		snprintf(buf, cap, "%s %s %s", PROG, c->name, c->usage);
	return buf;
}

static void
print_help(void)
{
	char u[BACKUP_MAX_MSG];
	size_t i;

	printf("usage:\n");
	for (i = 0; i < NCOMMANDS; i++) {
		printf("  %s\n", usage_of(&commands[i], u, sizeof(u)));
		printf("      %s\n", commands[i].summary);
	}
	printf("exit status: 0 success, 1 failure, 2 usage error\n");
}

static int
usage_error(const struct command *c, const char *what)
{
	char u[BACKUP_MAX_MSG];

	errmsg("%s; usage: %s", what, usage_of(c, u, sizeof(u)));
	return EXIT_USAGE;
}

/* ---- input -------------------------------------------------------------- */

/* Reads fd to its end into buf (max + 1 bytes, the caller's) and sets
 * *len. Returns KEYD_OK, KEYD_ERR_FRAME_TOO_LARGE if there is more than
 * max, or KEYD_ERR_IO (errno set). */
static WUR int
read_all(int fd, uint8_t *buf, size_t max, size_t *len)
{
	size_t n = 0;

	*len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return KEYD_ERR_IO;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			*len = n;
			return KEYD_ERR_FRAME_TOO_LARGE;
		}
	}
	*len = n;
	return KEYD_OK;
}

/* Parses a decimal number of at most BACKUP_MAX_NUM_DIGITS digits in
 * [min, max]. Returns 1 if it is one. */
static int
parse_uint(const char *s, size_t len, unsigned min, unsigned max,
    unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > BACKUP_MAX_NUM_DIGITS)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < min || v > max)
		return 0;
	*out = v;
	return 1;
}

/*
 * The passphrase from path: read whole (bounded), one trailing line break
 * (LF or CR LF) removed, then checked against SLIP-0039's rule (printable
 * ASCII). *pass is locked memory the caller frees with secmem_free(*pass,
 * BACKUP_MAX_PASSFILE + 1). Prints the error itself; returns an exit
 * status.
 */
static WUR int
read_passphrase(const char *path, char **pass, size_t *passlen)
{
	uint8_t *buf = NULL;
	size_t n = 0, bad = 0;
	int fd = -1, r = EXIT_FAIL, e;

	*pass = NULL;
	*passlen = 0;
	if ((buf = secmem_alloc(BACKUP_MAX_PASSFILE + 1)) == NULL) {
		errmsg("out of memory reading passphrase file %s", path);
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		errmsg("cannot open passphrase file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	e = read_all(fd, buf, BACKUP_MAX_PASSFILE, &n);
	if (e == KEYD_ERR_IO) {
		errmsg("cannot read passphrase file %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (e == KEYD_ERR_FRAME_TOO_LARGE || n > SLIP39_MAX_PASSPHRASE_LEN) {
		errmsg("passphrase file %s holds more than %d characters; a "
		    "passphrase may have at most %d", path,
		    SLIP39_MAX_PASSPHRASE_LEN, SLIP39_MAX_PASSPHRASE_LEN);
		goto out;
	}
	if (slip39_passphrase_check((const char *)buf, n, &bad) != KEYD_OK) {
		errmsg("passphrase file %s: character %zu is not printable "
		    "ASCII; a SLIP-0039 passphrase may only hold characters 32 "
		    "to 126 (no tabs, no line breaks but one at the end, no "
		    "accented letters)", path, bad + 1);
		goto out;
	}
	*pass = (char *)buf;
	*passlen = n;
	buf = NULL;
	r = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	secmem_free(buf, BACKUP_MAX_PASSFILE + 1);
	return r;
}

static int
is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

/*
 * Hex digit to value without a branch or table on the (secret) digit;
 * *bad collects whether it was not a digit.
 */
static unsigned
hex_nibble(unsigned c, unsigned *bad)
{
	unsigned num = c - '0';
	unsigned alpha = (c | 0x20u) - 'a';
	unsigned is_num = num < 10u;
	unsigned is_alpha = alpha < 6u;

	*bad |= (is_num | is_alpha) ^ 1u;
	return (num & (0u - is_num)) | ((alpha + 10u) & (0u - is_alpha));
}

static char
hex_char(unsigned n)
{
	unsigned letter = ((9u - n) >> 8) & 1u;  /* n > 9 */

	return (char)('0' + n + letter * ('a' - '0' - 10));
}

/*
 * The master secret from in[0 .. len): hex digits (either case) with any
 * whitespace between them. Writes to out (SLIP39_MAX_SECRET_LEN bytes).
 * Prints the error itself; returns an exit status.
 */
static WUR int
parse_hex_secret(const uint8_t *in, size_t len, uint8_t *out,
    size_t *outlen)
{
	struct kbuf b;
	size_t digits = 0, pos = 0;
	unsigned acc = 0, bad = 0;
	uint8_t c = 0;
	int r = EXIT_FAIL;

	*outlen = 0;
	kbuf_view(&b, in, len);
	while (kbuf_get_u8(&b, &c) == KEYD_OK) {
		pos++;
		if (is_space(c))
			continue;
		acc = (acc << 4) | hex_nibble(c, &bad);
		if (bad) {
			errmsg("the master secret on standard input is not hex: "
			    "character %zu is not a hex digit; give the secret "
			    "as hex digits (0-9, a-f)", pos);
			goto out;
		}
		digits++;
		if (digits > 2 * SLIP39_MAX_SECRET_LEN) {
			errmsg("the master secret on standard input is longer "
			    "than %d bytes (%d hex digits); SLIP-0039 secrets "
			    "here are 16 to %d bytes", SLIP39_MAX_SECRET_LEN,
			    2 * SLIP39_MAX_SECRET_LEN, SLIP39_MAX_SECRET_LEN);
			goto out;
		}
		if (digits % 2 == 0) {
			out[digits / 2 - 1] = (uint8_t)(acc & 0xff);
			acc = 0;
		}
	}
	if (digits == 0) {
		errmsg("no master secret on standard input; give it as hex "
		    "digits, e.g. 32 of them for a 128-bit secret");
		goto out;
	}
	if (digits % 2 != 0) {
		errmsg("the master secret on standard input has an odd number "
		    "of hex digits (%zu); each byte takes two", digits);
		goto out;
	}
	if (digits / 2 < SLIP39_MIN_SECRET_LEN || (digits / 2) % 2 != 0) {
		errmsg("the master secret is %zu bytes; SLIP-0039 needs at "
		    "least %d bytes (128 bits) and an even number of bytes, "
		    "e.g. 16 or 32", digits / 2, SLIP39_MIN_SECRET_LEN);
		goto out;
	}
	*outlen = digits / 2;
	r = EXIT_OK;
out:
	secmem_wipe(&acc, sizeof(acc));
	secmem_wipe(&c, sizeof(c));
	if (r != EXIT_OK)
		secmem_wipe(out, SLIP39_MAX_SECRET_LEN);
	return r;
}

/* ---- share policy options ---------------------------------------------- */

/* A SLIP-0039 policy from --threshold/--shares or --group-threshold and
 * --group options (shamir split and create). */
struct policy {
	unsigned threshold, shares, gthreshold;
	struct slip39_group groups[SLIP39_MAX_GROUPS];
	size_t ngroups;
};

/* Takes one policy option (getopt code 't', 'n', 'g' or 'G'). Returns
 * EXIT_OK, or prints a usage error and returns EXIT_USAGE. */
static int
policy_option(const struct command *self, struct policy *p, int opt,
    const char *arg)
{
	char what[BACKUP_MAX_MSG];
	const char *slash;
	unsigned t, nn;

	switch (opt) {
	case 't':
		if (!parse_uint(arg, strlen(arg), 1, SLIP39_MAX_MEMBERS,
		    &p->threshold))
			return usage_error(self, "--threshold needs a number "
			    "from 1 to 16");
		break;
	case 'n':
		if (!parse_uint(arg, strlen(arg), 1, SLIP39_MAX_MEMBERS,
		    &p->shares))
			return usage_error(self, "--shares needs a number from "
			    "1 to 16");
		break;
	case 'g':
		if (!parse_uint(arg, strlen(arg), 1, SLIP39_MAX_GROUPS,
		    &p->gthreshold))
			return usage_error(self, "--group-threshold needs a "
			    "number from 1 to 16");
		break;
	default:
		slash = strchr(arg, '/');
		if (slash == NULL ||
		    !parse_uint(arg, (size_t)(slash - arg), 1,
		    SLIP39_MAX_MEMBERS, &t) ||
		    !parse_uint(slash + 1, strlen(slash + 1), 1,
		    SLIP39_MAX_MEMBERS, &nn)) {
			snprintf(what, sizeof(what), "--group %.16s: give the "
			    "group's threshold and share count as T/N, e.g. "
			    "2/3, each from 1 to 16", arg);
			return usage_error(self, what);
		}
		if (p->ngroups >= SLIP39_MAX_GROUPS)
			return usage_error(self, "at most 16 --group options");
		if (t > nn) {
			snprintf(what, sizeof(what), "--group %u/%u: the "
			    "threshold is more than the share count", t, nn);
			return usage_error(self, what);
		}
		if (t == 1 && nn > 1) {
			snprintf(what, sizeof(what), "--group 1/%u: a threshold "
			    "of 1 with %u shares gives each holder the whole "
			    "group share, which SLIP-0039 forbids; use --group "
			    "1/1", nn, nn);
			return usage_error(self, what);
		}
		p->groups[p->ngroups].member_threshold = t;
		p->groups[p->ngroups].member_count = nn;
		p->ngroups++;
		break;
	}
	return EXIT_OK;
}

/* Checks the options taken as a whole and turns a single-level T-of-N
 * scheme into one group (SLIP-0039 "Two-level scheme"). Returns EXIT_OK
 * or EXIT_USAGE (printed). */
static int
policy_finish(const struct command *self, struct policy *p)
{
	char what[BACKUP_MAX_MSG];

	if ((p->threshold || p->shares) && (p->gthreshold || p->ngroups))
		return usage_error(self, "give either --threshold and --shares, "
		    "or --group-threshold and --group, not both");
	if (p->threshold || p->shares) {
		if (!p->threshold || !p->shares)
			return usage_error(self, "--threshold and --shares go "
			    "together");
		if (p->threshold > p->shares) {
			snprintf(what, sizeof(what), "--threshold %u is more "
			    "than --shares %u", p->threshold, p->shares);
			return usage_error(self, what);
		}
		if (p->threshold == 1 && p->shares > 1) {
			snprintf(what, sizeof(what), "--threshold 1 with "
			    "--shares %u gives every holder the whole secret, "
			    "which SLIP-0039 forbids; use --shares 1 and copy "
			    "that share", p->shares);
			return usage_error(self, what);
		}
		p->gthreshold = 1;
		p->groups[0].member_threshold = p->threshold;
		p->groups[0].member_count = p->shares;
		p->ngroups = 1;
		return EXIT_OK;
	}
	if (p->gthreshold || p->ngroups) {
		if (!p->gthreshold || !p->ngroups)
			return usage_error(self, "--group-threshold needs at "
			    "least one --group T/N, and --group needs "
			    "--group-threshold");
		if (p->gthreshold > p->ngroups) {
			snprintf(what, sizeof(what), "--group-threshold %u is "
			    "more than the %zu groups given", p->gthreshold,
			    p->ngroups);
			return usage_error(self, what);
		}
		return EXIT_OK;
	}
	return usage_error(self, "say how to split: --threshold T --shares N, "
	    "or --group-threshold G with --group T/N");
}

/* ---- shamir split ------------------------------------------------------- */

static int
cmd_shamir_split(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threshold", required_argument, NULL, 't' },
		{ "shares", required_argument, NULL, 'n' },
		{ "group-threshold", required_argument, NULL, 'g' },
		{ "group", required_argument, NULL, 'G' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "no-extendable", no_argument, NULL, 'x' },
		{ "iteration-exponent", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_shamir_split);
	struct policy pol;
	struct slip39_mnemonic *m = NULL;
	uint8_t *in = NULL, *secret = NULL;
	char *pass = NULL, *line = NULL;
	const char *passfile = NULL;
	char what[BACKUP_MAX_MSG];
	size_t count = 0, inlen = 0, slen = 0, passlen = 0, i;
	unsigned e = 1;
	int ext = 1, opt, r = EXIT_USAGE, k;

	memset(&pol, 0, sizeof(pol));
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
		case 'n':
		case 'g':
		case 'G':
			if ((r = policy_option(self, &pol, opt, optarg)) !=
			    EXIT_OK)
				goto out;
			r = EXIT_USAGE;
			break;
		case 'p':
			passfile = optarg;
			break;
		case 'x':
			ext = 0;
			break;
		case 'e':
			if (!parse_uint(optarg, strlen(optarg), 0,
			    SLIP39_MAX_ITERATION_EXP, &e)) {
				r = usage_error(self, "--iteration-exponent "
				    "needs a number from 0 to 15");
				goto out;
			}
			break;
		case 'h':
			printf("usage: %s\n", usage_of(self, what,
			    sizeof(what)));
			r = EXIT_OK;
			goto out;
		default:
			snprintf(what, sizeof(what), "unknown option or missing "
			    "value: %.64s", argv[optind - 1]);
			r = usage_error(self, what);
			goto out;
		}
	}
	if (optind < argc) {
		snprintf(what, sizeof(what), "unexpected argument %.64s (the "
		    "secret is read from standard input)", argv[optind]);
		r = usage_error(self, what);
		goto out;
	}
	if ((r = policy_finish(self, &pol)) != EXIT_OK)
		goto out;

	r = EXIT_FAIL;
	if (passfile != NULL &&
	    (r = read_passphrase(passfile, &pass, &passlen)) != EXIT_OK)
		goto out;
	r = EXIT_FAIL;
	if ((in = secmem_alloc(BACKUP_MAX_HEX_INPUT + 1)) == NULL ||
	    (secret = secmem_alloc(SLIP39_MAX_SECRET_LEN)) == NULL ||
	    (line = secmem_alloc(SLIP39_MAX_MNEMONIC_LEN + 1)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	k = read_all(STDIN_FILENO, in, BACKUP_MAX_HEX_INPUT, &inlen);
	if (k == KEYD_ERR_IO) {
		errmsg("cannot read standard input: %s", strerror(errno));
		goto out;
	}
	if (k == KEYD_ERR_FRAME_TOO_LARGE) {
		errmsg("standard input holds more than %d bytes; give only the "
		    "master secret as hex", BACKUP_MAX_HEX_INPUT);
		goto out;
	}
	if (parse_hex_secret(in, inlen, secret, &slen) != EXIT_OK)
		goto out;
	k = slip39_split(secret, slen, pass, passlen, pol.gthreshold,
	    pol.groups, pol.ngroups, ext, e, &m, &count);
	if (k != KEYD_OK) {
		errmsg("cannot split the secret: %s", keyd_strerror(k));
		goto out;
	}
	for (i = 0; i < count; i++) {
		size_t n = strlen(m[i].text);

		memcpy(line, m[i].text, n);
		line[n] = '\n';
		k = write_all(STDOUT_FILENO, line, n + 1);
		secmem_wipe(line, n + 1);
		if (k != KEYD_OK) {
			errmsg("cannot write the shares to standard output: %s",
			    strerror(errno));
			goto out;
		}
	}
	r = EXIT_OK;
out:
	slip39_mnemonics_free(m, count);
	secmem_free(in, BACKUP_MAX_HEX_INPUT + 1);
	secmem_free(secret, SLIP39_MAX_SECRET_LEN);
	secmem_free(line, SLIP39_MAX_MNEMONIC_LEN + 1);
	secmem_free(pass, BACKUP_MAX_PASSFILE + 1);
	return r;
}

/* ---- shamir combine ----------------------------------------------------- */

static int
cmd_shamir_combine(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_shamir_combine);
	struct slip39_share *shares = NULL;
	struct slip39_diag diag;
	struct kbuf b;
	uint8_t *in = NULL, *secret = NULL;
	char *pass = NULL, *hex = NULL;
	const char *passfile = NULL;
	char what[BACKUP_MAX_MSG];
	size_t inlen = 0, nshares = 0, passlen = 0, slen = 0, i;
	int opt, r = EXIT_USAGE, k;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			passfile = optarg;
			break;
		case 'h':
			printf("usage: %s\n", usage_of(self, what,
			    sizeof(what)));
			r = EXIT_OK;
			goto out;
		default:
			snprintf(what, sizeof(what), "unknown option or missing "
			    "value: %.64s", argv[optind - 1]);
			r = usage_error(self, what);
			goto out;
		}
	}
	if (optind < argc) {
		snprintf(what, sizeof(what), "unexpected argument %.64s (the "
		    "shares are read from standard input, one per line)",
		    argv[optind]);
		r = usage_error(self, what);
		goto out;
	}

	r = EXIT_FAIL;
	if (passfile != NULL &&
	    (r = read_passphrase(passfile, &pass, &passlen)) != EXIT_OK)
		goto out;
	r = EXIT_FAIL;
	if ((in = secmem_alloc(BACKUP_MAX_SHARE_INPUT + 1)) == NULL ||
	    (shares = secmem_alloc(SLIP39_MAX_SHARES * sizeof(*shares))) ==
	    NULL ||
	    (secret = secmem_alloc(SLIP39_MAX_SECRET_LEN)) == NULL ||
	    (hex = secmem_alloc(2 * SLIP39_MAX_SECRET_LEN + 1)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	k = read_all(STDIN_FILENO, in, BACKUP_MAX_SHARE_INPUT, &inlen);
	if (k == KEYD_ERR_IO) {
		errmsg("cannot read standard input: %s", strerror(errno));
		goto out;
	}
	if (k == KEYD_ERR_FRAME_TOO_LARGE) {
		errmsg("standard input holds more than %d bytes; give only the "
		    "shares, one per line", BACKUP_MAX_SHARE_INPUT);
		goto out;
	}

	/* One mnemonic a line; lines of only whitespace are skipped. */
	kbuf_view(&b, in, inlen);
	while (kbuf_avail(&b) > 0) {
		const uint8_t *start = kbuf_ptr(&b);
		size_t n = 0;
		int blank = 1;
		uint8_t c = 0;

		while (kbuf_get_u8(&b, &c) == KEYD_OK && c != '\n') {
			n++;
			if (!is_space(c))
				blank = 0;
		}
		if (blank)
			continue;
		if (nshares >= SLIP39_MAX_SHARES) {
			errmsg("more than %d shares on standard input; no "
			    "SLIP-0039 split has that many", SLIP39_MAX_SHARES);
			goto out;
		}
		k = slip39_decode((const char *)start, n, (int)nshares,
		    &shares[nshares], &diag);
		if (k != KEYD_OK) {
			errmsg("%s", slip39_diag_format(&diag, what,
			    sizeof(what)));
			goto out;
		}
		nshares++;
	}
	if (nshares == 0) {
		errmsg("no shares on standard input; give the SLIP-0039 "
		    "shares, one per line");
		goto out;
	}
	k = slip39_combine(shares, nshares, pass, passlen, secret,
	    SLIP39_MAX_SECRET_LEN, &slen, &diag);
	if (k != KEYD_OK) {
		errmsg("%s", slip39_diag_format(&diag, what, sizeof(what)));
		goto out;
	}
	for (i = 0; i < slen; i++) {
		hex[2 * i] = hex_char(secret[i] >> 4);
		hex[2 * i + 1] = hex_char(secret[i] & 0xf);
	}
	hex[2 * slen] = '\n';
	if (write_all(STDOUT_FILENO, hex, 2 * slen + 1) != KEYD_OK) {
		errmsg("cannot write the secret to standard output: %s",
		    strerror(errno));
		goto out;
	}
	r = EXIT_OK;
out:
	secmem_free(in, BACKUP_MAX_SHARE_INPUT + 1);
	secmem_free(shares, SLIP39_MAX_SHARES * sizeof(*shares));
	secmem_free(secret, SLIP39_MAX_SECRET_LEN);
	secmem_free(hex, 2 * SLIP39_MAX_SECRET_LEN + 1);
	secmem_free(pass, BACKUP_MAX_PASSFILE + 1);
	return r;
}

/* ---- main --------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	size_t i;

	/* A closed stdout must give an error message, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		errmsg("no command given; run '%s --help' for the commands",
		    PROG);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		print_help();
		return EXIT_OK;
	}
	for (i = 0; i < NCOMMANDS; i++) {
		const struct command *c = &commands[i];

		if (c->group == NULL && strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
		if (c->group != NULL && strcmp(argv[1], c->group) == 0 &&
		    argc >= 3 && strcmp(argv[2], c->name) == 0)
			return c->run(argc - 2, argv + 2);
	}
	if (argc >= 3)
		errmsg("unknown command '%.32s %.32s'; run '%s --help' for the "
		    "commands", argv[1], argv[2], PROG);
	else
		errmsg("unknown command '%.32s'; run '%s --help' for the "
		    "commands", argv[1], PROG);
	return EXIT_USAGE;
}
