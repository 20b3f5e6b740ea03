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
 * shares, passphrase, PINs) are only held in locked memory (secmem) and
 * leave it only through write(2): to standard output (shamir), to share
 * files (create, reshare, rekey), and to the token (PINs, the backup master key).
 *
 * keygen, create, verify, restore, drill, reshare, rekey and inspect are
 * the backup of keys on a token (docs/backup.md, docs/ceremonies.md): the
 * token side is backup_token.c, the bundle bundle.c, share sheets
 * backup_share.c (as PDF backup_pdf.c), files backup_file.c, drill's keyd
 * check and report backup_drill.c. reshare makes a new share set for the
 * same backup master key (backup_reshare.c); shares typed at a terminal
 * are read word by word (backup_typing.c).
 *
 * Why one file of this size: what is here is the command line (options,
 * prompts, messages, exit statuses) and the order of each command's
 * steps, and the commands share most of it (the policy options, opening a
 * bundle with its shares, writing a new backup) as static functions; the
 * work itself is in the modules above.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <time.h>

#include "backup_drill.h"
#include "backup_file.h"
#include "backup_pdf.h"
#include "backup_reshare.h"
#include "backup_share.h"
#include "backup_token.h"
#include "backup_typing.h"
#include "bundle.h"
#include "kbuf.h"
#include "keyd_err.h"
#include "p11.h"
#include "pin.h"
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

/* --pdf, for every command that writes share sheets: add SHEET_OPTION_PDF
 * to its options, and on OPT_PDF add BACKUP_SHEET_PDF to the formats it
 * passes to write_sheets. Not a letter, so no command's letters clash. */
enum { OPT_PDF = 0x100 };
#define SHEET_OPTION_PDF { "pdf", no_argument, NULL, OPT_PDF }

static int cmd_keygen(int argc, char **argv);
static int cmd_create(int argc, char **argv);
static int cmd_verify(int argc, char **argv);
static int cmd_restore(int argc, char **argv);
static int cmd_drill(int argc, char **argv);
static int cmd_reshare(int argc, char **argv);
static int cmd_rekey(int argc, char **argv);
static int cmd_inspect(int argc, char **argv);
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
	{ NULL, "keygen", cmd_keygen,
	  "--module M --token URI --pin-file F --type ec:p256|ec:p384|"
	  "rsa:2048|rsa:3072|ed25519|aes:128|aes:256 --label L [--id HEX] "
	  "--usage sign|decrypt|srtp[,...] [--no-backup]",
	  "generate a key on the token that can be wrapped only under a "
	  "trusted key (or, with --no-backup, not at all)" },
	{ NULL, "create", cmd_create,
	  "--module M --token URI --pin-file F --so-pin-file F --key URI "
	  "[--key URI ...] (--threshold T --shares N | --group-threshold G "
	  "--group T/N [--group T/N ...]) [--passphrase-file F] "
	  "[--iteration-exponent E] --bundle OUT --shares-dir DIR "
	  "[--allow-disk] [--pdf]",
	  "wrap the keys under a new backup master key, write the bundle and "
	  "one share sheet per holder (with --pdf, also as a PDF to print)" },
	{ NULL, "verify", cmd_verify,
	  "--bundle B [--bundle-fingerprint HEX] [--passphrase-file F] "
	  "[--share-file F ...]",
	  "check a bundle, shares against their commitments and, with enough "
	  "shares, the bundle MAC; touches no token" },
	{ NULL, "restore", cmd_restore,
	  "--module M --token URI --pin-file F --bundle B "
	  "[--bundle-fingerprint HEX] [--passphrase-file F] "
	  "[--share-file F ...]",
	  "restore the bundle's keys onto a blank token; without --share-file "
	  "the shares are typed, one a line, not shown" },
	{ NULL, "drill", cmd_drill,
	  "--module M --token URI --pin-file F --bundle B "
	  "[--bundle-fingerprint HEX] [--passphrase-file F] "
	  "[--share-file F ...] [--report OUT] [--allow-online]",
	  "prove that the bundle and these shares restore every key, as "
	  "session objects on any token, changing nothing it keeps" },
	{ NULL, "reshare", cmd_reshare,
	  "--bundle B [--bundle-fingerprint HEX] [--passphrase-file F] "
	  "[--share-file F ...] (--threshold T --shares N | --group-threshold "
	  "G --group T/N [--group T/N ...]) --new-bundle OUT --shares-dir DIR "
	  "[--allow-disk] [--pdf] [--allow-online]",
	  "from a quorum of the bundle's shares, a new share set with a new "
	  "policy for the same backup master key, and a new bundle it opens; "
	  "touches no token" },
	{ NULL, "rekey", cmd_rekey,
	  "--module M --token URI --pin-file F --so-pin-file F --bundle B "
	  "[--bundle-fingerprint HEX] [--passphrase-file F] "
	  "[--share-file F ...] (--threshold T --shares N | "
	  "--group-threshold G --group T/N [--group T/N ...]) "
	  "[--new-passphrase-file F] [--iteration-exponent E] "
	  "--new-bundle OUT --shares-dir DIR [--allow-disk] [--pdf] "
	  "[--allow-online]",
	  "with a quorum of the old shares, wrap the token's keys of the old "
	  "bundle under a new backup master key: a new bundle and share set" },
	{ NULL, "inspect", cmd_inspect, "--bundle B",
	  "show what a bundle holds: keys, fingerprints, policy, set id" },
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
	printf("  %s COMMAND --help\n"
	    "      the usage of one command\n"
	    "  %s --help | --version\n"
	    "      this text, or the version\n", PROG, PROG);
	printf("exit status: 0 success, 1 failure, 2 usage error\n");
}

static int
usage_error(const struct command *c, const char *what)
{
	char u[BACKUP_MAX_MSG];

	errmsg("%s; usage: %s", what, usage_of(c, u, sizeof(u)));
	return EXIT_USAGE;
}

/* The last case of a command's option switch: --help prints the
 * command's usage (EXIT_OK); anything else is a usage error (printed,
 * EXIT_USAGE). */
static int
help_or_unknown(const struct command *self, int opt, char **argv)
{
	char what[BACKUP_MAX_MSG];

	if (opt == 'h') {
		printf("usage: %s\n", usage_of(self, what, sizeof(what)));
		return EXIT_OK;
	}
	snprintf(what, sizeof(what), "unknown option or missing value: %.64s",
	    argv[optind - 1]);
	return usage_error(self, what);
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
 * --group options, and --iteration-exponent (shamir split, create and
 * rekey). */
struct policy {
	unsigned threshold, shares, gthreshold;
	struct slip39_group groups[SLIP39_MAX_GROUPS];
	size_t ngroups;
	unsigned iteration_exp;   /* policy_finish: 1 if none was given */
	int iteration_exp_given;
};

/* Takes one policy option (getopt code 't', 'n', 'g', 'G' or 'e').
 * Returns EXIT_OK, or prints a usage error and returns EXIT_USAGE. */
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
	case 'e':
		if (!parse_uint(arg, strlen(arg), 0, SLIP39_MAX_ITERATION_EXP,
		    &p->iteration_exp))
			return usage_error(self, "--iteration-exponent needs a "
			    "number from 0 to 15");
		p->iteration_exp_given = 1;
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

	if (!p->iteration_exp_given)
		p->iteration_exp = 1;
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
		case 'e':
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
	    pol.groups, pol.ngroups, ext, pol.iteration_exp, &m, &count);
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

/* ---- shared by the token commands --------------------------------------- */

/* A PIN file, with the daemon's checks (pin_read): a regular file, not a
 * symbolic link, owned by root or by us, mode 0400 or 0600. Prints the
 * error itself; returns an exit status. */
static WUR int
read_pin(const char *path, const char *what, char **pin, size_t *len)
{
	char err[BACKUP_MAX_MSG];

	if (pin_read(path, geteuid(), pin, len, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s: %s", what, err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Hex of a CKA_ID (--id) into out (BUNDLE_MAX_ID bytes). */
static int
parse_id(const char *s, uint8_t *out, size_t *len)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2 != 0 || n / 2 > BUNDLE_MAX_ID)
		return 0;
	*len = n / 2;
	return backup_share_hex(s, n, out, n / 2);
}

/* Opens the token, logging the user in. Prints the error itself. */
static WUR int
open_token(const char *module, const char *token, const char *pin,
    size_t pinlen, struct p11 **p)
{
	char err[BACKUP_MAX_MSG];
	int k;

	if ((k = p11_open(module, token, p, err, sizeof(err))) != KEYD_OK ||
	    (k = p11_session_login(*p, CKU_USER, pin, pinlen, err,
	    sizeof(err))) != KEYD_OK) {
		errmsg("%s", err);
		p11_close(*p);
		*p = NULL;
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* The flags of a key as words: "sensitive, extractable, ...". */
static const char *
flag_words(uint32_t flags, char *buf, size_t cap)
{
	size_t o = 0;

	buf[0] = '\0';
	for (const struct bundle_flag *f = bundle_flags; f->bit != 0; f++) {
		int n;

		if (!(flags & f->bit))
			continue;
		n = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", f->name);
		if (n < 0 || (size_t)n >= cap - o)
			break;
		o += (size_t)n;
	}
	if (o == 0)
		snprintf(buf, cap, "(none)");
	return buf;
}

static void
print_key(FILE *f, const struct bundle_key *k)
{
	char type[32], id[2 * BUNDLE_MAX_ID + 1], fl[BACKUP_MAX_MSG];
	char fp[3 * BUNDLE_HASH_LEN];

	fprintf(f, "key '%s'\n  id: %s\n  type: %s (%s)\n  flags: %s\n",
	    k->label, k->id_len ? bundle_hex(k->id, k->id_len, id) : "(none)",
	    bundle_key_type_name(k, type, sizeof(type)),
	    k->cls == CKO_PRIVATE_KEY ? "private key, public key with it" :
	    "secret key", flag_words(k->flags, fl, sizeof(fl)));
	if (k->cls == CKO_PRIVATE_KEY)
		fprintf(f, "  public key flags: %s\n  fingerprint: SHA-256 of "
		    "SPKI %s\n", flag_words(k->pub_flags, fl, sizeof(fl)),
		    backup_share_grouped_hex(k->fp, k->fp_len, fp));
	else
		fprintf(f, "  fingerprint: check value %s\n",
		    bundle_hex(k->fp, k->fp_len, id));
	if (k->wrapped_len > 0)
		fprintf(f, "  wrapped: %zu bytes\n", k->wrapped_len);
}

/* Reads and parses a bundle. Prints the error itself. */
static WUR int
load_bundle(const char *path, struct bundle **b)
{
	char err[BACKUP_MAX_MSG];
	const char *why = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int k, r = EXIT_FAIL;

	*b = NULL;
	if (backup_file_read(path, "bundle", BUNDLE_MAX_SIZE, 0, &data, &len,
	    err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	k = bundle_parse(data, len, b, &why);
	if (k == KEYD_ERR_VERSION) {
		errmsg("bundle %s: %s; use the keyd-backup that made it", path,
		    why);
		goto out;
	}
	if (k != KEYD_OK) {
		errmsg("bundle %s is truncated, altered or not a bundle: %s; "
		    "use another copy of the bundle", path,
		    why != NULL ? why : keyd_strerror(k));
		goto out;
	}
	r = EXIT_OK;
out:
	backup_file_free(data, BUNDLE_MAX_SIZE, 0);
	return r;
}

static WUR int
check_fingerprint(const struct bundle *b, const char *path,
    const uint8_t fp[BUNDLE_HASH_LEN], const char *source)
{
	char have[3 * BUNDLE_HASH_LEN], want[3 * BUNDLE_HASH_LEN];

	if (memcmp(fp, b->fingerprint, BUNDLE_HASH_LEN) == 0)
		return EXIT_OK;
	errmsg("bundle %s has fingerprint %s, but %s says %s: this is not the "
	    "bundle the shares were made for, or it was altered; use another "
	    "copy", path, backup_share_grouped_hex(b->fingerprint,
	    BUNDLE_HASH_LEN, have), source, backup_share_grouped_hex(fp,
	    BUNDLE_HASH_LEN, want));
	return EXIT_FAIL;
}

/* The shares gathered for verify and restore, in locked memory. */
struct shareset {
	struct slip39_share shares[SLIP39_MAX_SHARES];
	struct backup_sheet sheet;
	char line[BACKUP_SHARE_MAX_LINE];
	size_t n;
};

/*
 * Checks share text[0..len) (the n-th given, named by name) and adds it
 * to ss: its checksum (naming the probably wrong word), that it belongs to
 * bundle b (identifier, then commitment), and that it is not one already
 * given. Prints the error itself; returns an exit status.
 */
static WUR int
add_share(struct shareset *ss, const struct bundle *b, const char *name,
    const char *text, size_t len)
{
	struct slip39_share *s = &ss->shares[ss->n];
	struct slip39_diag diag;
	char what[BACKUP_MAX_MSG], set[2 * BUNDLE_SET_ID_LEN + 1];
	const char *why = NULL;
	int k;

	if (ss->n >= SLIP39_MAX_SHARES) {
		errmsg("more than %d shares given", SLIP39_MAX_SHARES);
		return EXIT_FAIL;
	}
	/* The diagnostic names the share itself: by our name, so that it is
	 * named once ("share 2 (F): word 5 ..."). */
	if (slip39_decode(text, len, (int)ss->n, s, &diag) != KEYD_OK) {
		errmsg("%s", slip39_diag_format_as(&diag, name, what,
		    sizeof(what)));
		return EXIT_FAIL;
	}
	k = bundle_check_share(b, s, &why);
	if (k == KEYD_ERR_SHARE_MISMATCH && strcmp(why, "commitment") == 0) {
		errmsg("%s (group %u, member %u) does not match its commitment "
		    "in the bundle: it is a share of another bundle, or it was "
		    "altered; check it against the sheet", name,
		    s->group_index + 1u, s->member_index + 1u);
	} else if (k == KEYD_ERR_SHARE_MISMATCH) {
		errmsg("%s belongs to another backup set than bundle set %s "
		    "(its %s differs): find the shares made with this bundle",
		    name, bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, set), why);
	} else if (k != KEYD_OK) {
		errmsg("%s: %s", name, keyd_strerror(k));
	}
	if (k != KEYD_OK) {
		secmem_wipe(s, sizeof(*s));
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->shares[i].group_index != s->group_index ||
		    ss->shares[i].member_index != s->member_index)
			continue;
		/* It matched the same commitment: it is the same share. */
		errmsg("%s is the same share as share %zu (group %u, member "
		    "%u); give each share once", name, i + 1,
		    s->group_index + 1u, s->member_index + 1u);
		secmem_wipe(s, sizeof(*s));
		return EXIT_FAIL;
	}
	ss->n++;
	return EXIT_OK;
}

/* A share file: a sheet or the bare words. Its set id and bundle
 * fingerprint, if it has them, must be the bundle's. */
static WUR int
add_share_file(struct shareset *ss, const struct bundle *b, const char *path,
    const char *bundle_path)
{
	char err[BACKUP_MAX_MSG], name[BACKUP_MAX_MSG];
	char set[2 * BUNDLE_SET_ID_LEN + 1];
	const char *why = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int r = EXIT_FAIL;

	snprintf(name, sizeof(name), "share %zu (%s)", ss->n + 1, path);
	if (backup_file_read(path, "share file", BACKUP_SHARE_MAX_FILE, 1,
	    &data, &len, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	if (backup_share_parse(data, len, &ss->sheet, &why) != KEYD_OK) {
		errmsg("share file %s: %s", path, why);
		goto out;
	}
	if (ss->sheet.has_set_id && memcmp(ss->sheet.set_id, b->set_id,
	    BUNDLE_SET_ID_LEN) != 0) {
		errmsg("%s is a share of backup set %s, not of the bundle's set "
		    "%s: find the shares made with this bundle", name,
		    bundle_hex(ss->sheet.set_id, BUNDLE_SET_ID_LEN, set),
		    bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, err));
		goto out;
	}
	if (ss->sheet.has_fp) {
		snprintf(err, sizeof(err), "share file %s", path);
		if (check_fingerprint(b, bundle_path, ss->sheet.fp, err) !=
		    EXIT_OK)
			goto out;
	}
	r = add_share(ss, b, name, ss->sheet.mnemonic, ss->sheet.len);
out:
	secmem_wipe(&ss->sheet, sizeof(ss->sheet));
	backup_file_free(data, BACKUP_SHARE_MAX_FILE, 1);
	return r;
}

/* Shares typed at the prompt (or lines on standard input) until the
 * bundle's policy is met. A bad share is refused at once, and its holder
 * may type it again. */
static WUR int
add_prompted_shares(struct shareset *ss, const struct bundle *b)
{
	char name[64], need[BACKUP_MAX_MSG];
	size_t len = 0;
	int tty = isatty(STDIN_FILENO), k;

	if (tty)
		fprintf(stderr, "Type the shares, one at a time; nothing is "
		    "shown but a count of the words. The first four letters of "
		    "each word are enough, then a space; Enter ends a share. At "
		    "least %u are needed.\n", bundle_shares_needed(b));
	while (!bundle_policy_met(b, ss->shares, ss->n)) {
		snprintf(name, sizeof(name), "share %zu", ss->n + 1);
		if (tty)
			k = backup_typing_read_share(STDIN_FILENO,
			    STDERR_FILENO, name, SLIP39_WORDS_FOR(b->secret_len),
			    ss->line, sizeof(ss->line), &len);
		else
			k = backup_share_read_line(STDIN_FILENO, ss->line,
			    sizeof(ss->line), &len);
		if (k == KEYD_ERR_CLOSED)
			break;
		if (k == KEYD_ERR_FRAME_TOO_LARGE) {
			errmsg("share %zu: the line is too long to be a share",
			    ss->n + 1);
			if (tty)
				continue;
			return EXIT_FAIL;
		}
		if (k != KEYD_OK) {
			errmsg("cannot read standard input: %s",
			    strerror(errno));
			return EXIT_FAIL;
		}
		if (strspn(ss->line, " \t\r") == len)
			continue;
		k = add_share(ss, b, name, ss->line, len);
		secmem_wipe(ss->line, sizeof(ss->line));
		if (k != EXIT_OK && !tty)
			return EXIT_FAIL;
		if (k != EXIT_OK) {
			fprintf(stderr, "that share was not taken; type it "
			    "again, or another\n");
			continue;
		}
		/* Said only to a terminal: what scripts read stays as it
		 * was. Counts only, no word. */
		if (tty)
			fprintf(stderr, "%s: the checksum (RS1024) is right and "
			    "it fits the set: group %u, member %u, matching its "
			    "commitment in the bundle; %s\n", name,
			    ss->shares[ss->n - 1].group_index + 1u,
			    ss->shares[ss->n - 1].member_index + 1u,
			    backup_typing_needed(b, ss->shares, ss->n, need,
			    sizeof(need)));
	}
	return EXIT_OK;
}

/* Combines the shares into the BMK (bmk: BUNDLE_BMK_LEN locked bytes)
 * and checks the bundle's MAC with it. Prints the error itself. */
static WUR int
combine_and_check(struct shareset *ss, const struct bundle *b,
    const char *pass, size_t passlen, uint8_t *bmk)
{
	struct slip39_diag diag;
	char what[BACKUP_MAX_MSG];
	size_t len = 0;
	int k;

	k = slip39_combine(ss->shares, ss->n, pass, passlen, bmk,
	    BUNDLE_BMK_LEN, &len, &diag);
	if (k != KEYD_OK) {
		errmsg("%s", slip39_diag_format(&diag, what, sizeof(what)));
		return EXIT_FAIL;
	}
	k = len == BUNDLE_BMK_LEN ? bundle_verify_mac(b, bmk, len) :
	    KEYD_ERR_BUNDLE;
	if (k == KEYD_ERR_PASSPHRASE) {
		/* Each share matched its commitment and they combined, so
		 * the passphrase is wrong, or the bundle was altered in a way
		 * that kept its structure (its fingerprint tells). */
		errmsg("wrong passphrase, or an altered bundle: the shares "
		    "each match their commitments and combine, but the bundle's "
		    "MAC does not verify with the secret they give under this "
		    "passphrase; give the set's passphrase with "
		    "--passphrase-file (none if it has none), and compare the "
		    "bundle's fingerprint with the sheets'");
		return EXIT_FAIL;
	}
	if (k != KEYD_OK) {
		errmsg("cannot check the bundle's MAC: %s", keyd_strerror(k));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- keygen ------------------------------------------------------------- */

static int
cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 't' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "type", required_argument, NULL, 'T' },
		{ "label", required_argument, NULL, 'l' },
		{ "id", required_argument, NULL, 'i' },
		{ "usage", required_argument, NULL, 'u' },
		{ "no-backup", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_keygen);
	const char *module = NULL, *token = NULL, *pinfile = NULL;
	const char *type = NULL, *why = NULL;
	struct backup_keygen req;
	struct bundle_key *k = NULL;
	struct p11 *p = NULL;
	char what[BACKUP_MAX_MSG], err[BACKUP_MAX_MSG], fl[BACKUP_MAX_MSG];
	char idhex[2 * BUNDLE_MAX_ID + 1], fp[3 * BUNDLE_HASH_LEN];
	uint8_t id[BUNDLE_MAX_ID];
	char *pin = NULL, *usage = NULL, *tok, *save = NULL;
	size_t pinlen = 0, idlen = 0;
	int opt, r = EXIT_USAGE;

	memset(&req, 0, sizeof(req));
	req.backup = 1;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': module = optarg; break;
		case 't': token = optarg; break;
		case 'P': pinfile = optarg; break;
		case 'T': type = optarg; break;
		case 'l': req.label = optarg; break;
		case 'N': req.backup = 0; break;
		case 'i':
			if (!parse_id(optarg, id, &idlen)) {
				r = usage_error(self, "--id needs an even number "
				    "of hex digits, at most 256");
				goto out;
			}
			break;
		case 'u':
			free(usage);
			if ((usage = strdup(optarg)) == NULL) {
				errmsg("out of memory");
				r = EXIT_FAIL;
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
	if (optind < argc || !module || !token || !pinfile || !type ||
	    !req.label || !usage) {
		r = usage_error(self, "--module, --token, --pin-file, --type, "
		    "--label and --usage are needed");
		goto out;
	}
	if ((req.kind = backup_kind_parse(type)) == 0) {
		snprintf(what, sizeof(what), "--type %.32s: give one of "
		    "ec:p256, ec:p384, rsa:2048, rsa:3072, ed25519, aes:128, "
		    "aes:256", type);
		r = usage_error(self, what);
		goto out;
	}
	for (tok = strtok_r(usage, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "sign") == 0)
			req.usage |= BACKUP_USAGE_SIGN;
		else if (strcmp(tok, "decrypt") == 0)
			req.usage |= BACKUP_USAGE_DECRYPT;
		else if (strcmp(tok, "srtp") == 0)
			req.usage |= BACKUP_USAGE_SRTP;
		else {
			snprintf(what, sizeof(what), "--usage %.32s: each usage "
			    "is sign, decrypt or srtp", tok);
			r = usage_error(self, what);
			goto out;
		}
	}
	if (!backup_kind_usage_ok(req.kind, req.usage, &why)) {
		snprintf(what, sizeof(what), "--type %s --usage: %s", type, why);
		r = usage_error(self, what);
		goto out;
	}
	req.id = id;
	req.id_len = idlen;

	r = EXIT_FAIL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	if (read_pin(pinfile, "--pin-file", &pin, &pinlen) != EXIT_OK ||
	    open_token(module, token, pin, pinlen, &p) != EXIT_OK)
		goto out;
	if (backup_token_keygen(p, &req, k, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	printf("generated %s key '%s' id %s on token '%s'\n", type, k->label,
	    bundle_hex(k->id, k->id_len, idhex), p11_token_label(p));
	printf("  flags: %s\n", flag_words(k->flags, fl, sizeof(fl)));
	if (k->cls == CKO_PRIVATE_KEY)
		printf("  public key '%s' flags: %s\n  SPKI SHA-256: %s\n",
		    k->label, flag_words(k->pub_flags, fl, sizeof(fl)),
		    backup_share_grouped_hex(k->fp, k->fp_len, fp));
	else
		printf("  check value: %s\n", bundle_hex(k->fp, k->fp_len,
		    idhex));
	printf("  %s\n", req.backup ? "backup: extractable only under a key "
	    "the SO made trusted (keyd-backup create)" : "backup: none (not "
	    "extractable)");
	r = EXIT_OK;
out:
	p11_close(p);
	pin_free(pin, pinlen);
	free(usage);
	free(k);
	return r;
}

/* ---- create ------------------------------------------------------------- */

/* The file name of m's sheet in one format (BACKUP_SHEET_*). */
static char *
sheet_name(const struct bundle *b, const struct slip39_mnemonic *m,
    unsigned format, char *buf, size_t cap)
{
	if (format == BACKUP_SHEET_PDF)
		return backup_pdf_file_name(b, m->group_index + 1u,
		    m->member_index + 1u, buf, cap);
	return backup_share_file_name(b, m->group_index + 1u,
	    m->member_index + 1u, buf, cap);
}

/* Writes every share sheet into the directory dfd (--shares-dir dir, as
 * opened and checked by open_outputs), O_EXCL and mode 0400, in each of
 * formats (BACKUP_SHEET_TEXT, with BACKUP_SHEET_PDF for --pdf); on failure
 * removes the ones written. Prints the error itself. Every command that
 * writes sheets goes through here, so that all of them get the same
 * checks and the same formats. A PDF is rendered in a child process but
 * written here, by the parent, through dfd like the text sheets. */
static WUR int
write_sheets(const struct bundle *b, const char *bundle_path, int dfd,
    const char *dir, const struct slip39_mnemonic *m, size_t count,
    int passphrase, unsigned formats)
{
	static const unsigned order[] = { BACKUP_SHEET_TEXT, BACKUP_SHEET_PDF };
	struct kbuf w, pdf;
	char name[64], err[BACKUP_MAX_MSG];
	const char *why = NULL;
	size_t written = 0, i, k;
	int r = EXIT_FAIL;

	kbuf_init(&w, BACKUP_SHARE_MAX_FILE, KBUF_SECRET);
	kbuf_init(&pdf, BACKUP_PDF_MAX_FILE, KBUF_SECRET);
	formats |= BACKUP_SHEET_TEXT;
	for (i = 0; i < count; i++) {
		const struct bundle_commit *c = NULL;

		for (size_t j = 0; j < b->n_commits; j++)
			if (b->commits[j].group == m[i].group_index &&
			    b->commits[j].member == m[i].member_index)
				c = &b->commits[j];
		if (c == NULL) {
			errmsg("share %zu has no commitment in the bundle", i + 1);
			goto out;
		}
		for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			struct kbuf *o = order[k] == BACKUP_SHEET_PDF ? &pdf : &w;

			if (!(formats & order[k]))
				continue;
			sheet_name(b, &m[i], order[k], name, sizeof(name));
			kbuf_reset(o);
			if (order[k] == BACKUP_SHEET_PDF) {
				if (backup_pdf_sheet(o, b, bundle_path, &m[i],
				    c->c, passphrase, &why) != KEYD_OK) {
					errmsg("%s %s", name, why);
					goto out;
				}
			} else if (backup_share_sheet(o, b, bundle_path, &m[i],
			    c->c, passphrase) != KEYD_OK) {
				errmsg("cannot format share sheet %s", name);
				goto out;
			}
			if (backup_file_create_excl(dfd, dir, name, kbuf_ptr(o),
			    kbuf_avail(o), err, sizeof(err)) != KEYD_OK) {
				errmsg("%s", err);
				goto out;
			}
			written++;
		}
	}
	if (backup_file_fsync_dir(dfd, dir, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	r = EXIT_OK;
out:
	/* Exactly the files this call created, in the order it made them. */
	for (i = 0; r != EXIT_OK && i < count && written > 0; i++)
		for (k = 0; k < sizeof(order) / sizeof(order[0]) &&
		    written > 0; k++) {
			if (!(formats & order[k]))
				continue;
			sheet_name(b, &m[i], order[k], name, sizeof(name));
			(void)unlinkat(dfd, name, 0);
			written--;
		}
	kbuf_free(&pdf);
	kbuf_free(&w);
	return r;
}

/* Fills b's policy and commitments from the split's mnemonics. */
static WUR int
commit_shares(struct bundle *b, const struct slip39_mnemonic *m,
    size_t count)
{
	struct slip39_share *s = NULL;
	int r = KEYD_ERR_NOMEM;

	if ((s = secmem_alloc(sizeof(*s))) == NULL)
		goto out;
	for (size_t i = 0; i < count; i++) {
		if ((r = slip39_decode(m[i].text, strlen(m[i].text), (int)i, s,
		    NULL)) != KEYD_OK)
			goto out;
		if (i == 0) {
			b->slip39_id = s->id;
			b->ext = s->ext;
			b->iteration_exp = s->iteration_exp;
			b->secret_len = (uint8_t)s->value_len;
		}
		b->commits[i].group = s->group_index;
		b->commits[i].member = s->member_index;
		if ((r = bundle_commit(b->set_id, s, b->commits[i].c)) !=
		    KEYD_OK)
			goto out;
	}
	b->n_commits = count;
	r = KEYD_OK;
out:
	secmem_free(s, sizeof(*s));
	return r;
}

/* What create, reshare and rekey write: the share sheets into the shares
 * directory, the bundle into its directory. Both directories are opened
 * once, checked on those descriptors, and written through them
 * (backup_file.h). */
struct outputs {
	const char *dir;          /* --shares-dir */
	const char *bundle_path;  /* --bundle or --new-bundle */
	const char *option;       /* which of the two */
	int sfd;                  /* the shares directory */
	int bfd;                  /* the bundle's directory */
};

static void
outputs_init(struct outputs *o)
{
	memset(o, 0, sizeof(*o));
	o->sfd = -1;
	o->bfd = -1;
}

static void
outputs_close(struct outputs *o)
{
	if (o->sfd >= 0)
		close(o->sfd);
	if (o->bfd >= 0)
		close(o->bfd);
	o->sfd = o->bfd = -1;
}

/* create, reshare and rekey refuse, before the token and before anyone
 * types a share, a shares directory that is not safe, a bundle that exists
 * and a bundle whose directory cannot take it; o then holds both
 * directories. Prints the error itself. */
static WUR int
open_outputs(struct outputs *o, const char *dir, int allow_disk,
    const char *bundle_path, const char *option)
{
	char err[BACKUP_MAX_MSG];

	o->dir = dir;
	o->bundle_path = bundle_path;
	o->option = option;
	if (backup_file_open_shares_dir(dir, allow_disk, &o->sfd, err,
	    sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		return EXIT_FAIL;
	}
	if (access(bundle_path, F_OK) == 0) {
		errmsg("bundle %s already exists; keyd-backup never replaces a "
		    "bundle: choose another %s", bundle_path, option);
		return EXIT_FAIL;
	}
	if (backup_file_open_dir_of(bundle_path, option, &o->bfd, err,
	    sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* create, reshare and rekey, all or nothing: the bundle is staged, the
 * share sheets written, and only then the bundle takes its name. Nothing
 * is written if a directory no longer sits where it was checked: the
 * paths printed afterwards must lead to what was written. Prints the
 * error itself. */
static WUR int
write_backup(const struct outputs *o, const struct bundle *b,
    const struct slip39_mnemonic *m, size_t count, int passphrase,
    unsigned formats)
{
	char err[BACKUP_MAX_MSG], *tmp = NULL;
	int r = EXIT_FAIL;

	if (backup_file_shares_dir_unmoved(o->sfd, o->dir, err,
	    sizeof(err)) != KEYD_OK ||
	    backup_file_dir_of_unmoved(o->bfd, o->bundle_path, o->option, err,
	    sizeof(err)) != KEYD_OK ||
	    backup_file_stage(o->bfd, o->bundle_path, "bundle", o->option,
	    b->raw, b->raw_len, &tmp, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	if (write_sheets(b, o->bundle_path, o->sfd, o->dir, m, count,
	    passphrase, formats) != EXIT_OK)
		goto out;
	if (backup_file_commit(o->bfd, &tmp, o->bundle_path, "bundle", err,
	    sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	r = EXIT_OK;
out:
	backup_file_abort(o->bfd, &tmp);
	return r;
}

/* create and rekey: picks the wrap mechanism (*mech, *alg), makes a new
 * BMK into bmk (BUNDLE_BMK_LEN locked bytes), puts it in as the SO's
 * trusted session object, wraps each key described in b->keys (found
 * again by class, label and id: the SO's login ended the user's handles)
 * and destroys the BMK object. The user is logged in again at the end.
 * Prints the error itself. */
static WUR int
wrap_under_new_bmk(struct p11 *p, struct bundle *b, const char *sopin,
    size_t sopinlen, const char *pin, size_t pinlen, uint8_t *bmk,
    CK_MECHANISM_TYPE *mech, uint8_t *alg)
{
	CK_OBJECT_HANDLE hbmk = CK_INVALID_HANDLE, h;
	char err[BACKUP_MAX_MSG];
	int r = EXIT_FAIL;

	if (backup_token_pick_wrap(p, 1, mech, alg, err, sizeof(err)) !=
	    KEYD_OK ||
	    backup_token_new_bmk(p, bmk, err, sizeof(err)) != KEYD_OK ||
	    backup_token_trusted_bmk(p, sopin, sopinlen, pin, pinlen, bmk,
	    &hbmk, err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	for (size_t i = 0; i < b->n_keys; i++)
		if (backup_token_find(p, &b->keys[i], &h, err, sizeof(err)) !=
		    KEYD_OK ||
		    backup_token_wrap(p, *mech, hbmk, h, &b->keys[i], err,
		    sizeof(err)) != KEYD_OK) {
			errmsg("%s", err);
			goto out;
		}
	r = EXIT_OK;
out:
	backup_token_destroy(p, hbmk);
	return r;
}

/* create and rekey: gives b (its keys wrapped) a new set id, the time,
 * the wrap mechanism and the policy, splits bmk into the set's shares
 * (*m, *count; the caller frees them with slip39_mnemonics_free), commits
 * to each in b, and encodes and MACs b. Prints the error itself. */
static WUR int
seal_bundle(struct bundle *b, const uint8_t *bmk, CK_MECHANISM_TYPE mech,
    uint8_t alg, const struct policy *pol, const char *pass, size_t passlen,
    struct slip39_mnemonic **m, size_t *count)
{
	if (RAND_bytes(b->set_id, BUNDLE_SET_ID_LEN) != 1) {
		errmsg("the random number generator failed");
		return EXIT_FAIL;
	}
	b->created = (uint64_t)time(NULL);
	b->wrap_alg = alg;
	b->wrap_mech = (uint32_t)mech;
	b->mac_alg = BUNDLE_MAC_HKDF_HMAC_SHA256;
	b->group_threshold = (uint8_t)pol->gthreshold;
	b->group_count = (uint8_t)pol->ngroups;
	for (size_t i = 0; i < pol->ngroups; i++) {
		b->member_threshold[i] =
		    (uint8_t)pol->groups[i].member_threshold;
		b->member_count[i] = (uint8_t)pol->groups[i].member_count;
	}
	if (slip39_split(bmk, BUNDLE_BMK_LEN, pass, passlen, pol->gthreshold,
	    pol->groups, pol->ngroups, 1, pol->iteration_exp, m, count) !=
	    KEYD_OK ||
	    commit_shares(b, *m, *count) != KEYD_OK) {
		errmsg("cannot split the backup master key");
		return EXIT_FAIL;
	}
	if (bundle_encode(b, bmk, BUNDLE_BMK_LEN) != KEYD_OK) {
		errmsg("cannot encode the bundle");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* create and rekey: write_backup, then what was written is printed.
 * Prints the error itself. */
static WUR int
publish_backup(const struct outputs *o, const struct bundle *b,
    const struct slip39_mnemonic *m, size_t count, int passphrase,
    unsigned formats)
{
	const char *bundle_path = o->bundle_path, *dir = o->dir;
	char what[BACKUP_MAX_MSG], fp[3 * BUNDLE_HASH_LEN];

	if (write_backup(o, b, m, count, passphrase, formats) != EXIT_OK)
		return EXIT_FAIL;
	printf("bundle %s: %zu key%s, backup set %s\n", bundle_path,
	    b->n_keys, b->n_keys == 1 ? "" : "s", bundle_hex(b->set_id,
	    BUNDLE_SET_ID_LEN, what));
	printf("bundle fingerprint (SHA-256): %s\n",
	    backup_share_grouped_hex(b->fingerprint, BUNDLE_HASH_LEN, fp));
	printf("wrap mechanism: %s, %s (known answers checked)\n",
	    b->wrap_mech == CKM_AES_KEY_WRAP_KWP ? "CKM_AES_KEY_WRAP_KWP" :
	    "CKM_AES_KEY_WRAP_PAD", b->wrap_alg == BUNDLE_WRAP_RFC5649 ?
	    "RFC 5649" : "RFC 5649 of the key zero-padded to 8 bytes");
	for (size_t i = 0; i < b->n_keys; i++)
		printf("wrapped key '%s'\n", b->keys[i].label);
	for (size_t i = 0; i < count; i++) {
		printf("share sheet %s/%s\n", dir, backup_share_file_name(b,
		    m[i].group_index + 1u, m[i].member_index + 1u, what,
		    sizeof(what)));
		if (formats & BACKUP_SHEET_PDF)
			printf("share sheet %s/%s\n", dir, backup_pdf_file_name(
			    b, m[i].group_index + 1u, m[i].member_index + 1u,
			    what, sizeof(what)));
	}
	return EXIT_OK;
}

static int
cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "token", required_argument, NULL, 'T' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "so-pin-file", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "threshold", required_argument, NULL, 't' },
		{ "shares", required_argument, NULL, 'n' },
		{ "group-threshold", required_argument, NULL, 'g' },
		{ "group", required_argument, NULL, 'G' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "bundle", required_argument, NULL, 'b' },
		{ "shares-dir", required_argument, NULL, 'd' },
		{ "allow-disk", no_argument, NULL, 'D' },
		{ "iteration-exponent", required_argument, NULL, 'e' },
		SHEET_OPTION_PDF,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_create);
	const char *module = NULL, *token = NULL, *pinfile = NULL;
	const char *sopinfile = NULL, *passfile = NULL, *bundle_path = NULL;
	const char *dir = NULL, *keys[BUNDLE_MAX_KEYS];
	struct policy pol;
	struct outputs outs;
	struct p11 *p = NULL;
	struct bundle *b = NULL;
	struct slip39_mnemonic *m = NULL;
	CK_OBJECT_HANDLE h;
	CK_MECHANISM_TYPE mech = 0;
	char what[BACKUP_MAX_MSG], err[BACKUP_MAX_MSG];
	char *pin = NULL, *sopin = NULL, *pass = NULL;
	uint8_t *bmk = NULL, alg = 0;
	size_t nkeys = 0, pinlen = 0, sopinlen = 0, passlen = 0, count = 0, i;
	unsigned formats = BACKUP_SHEET_TEXT;
	int allow_disk = 0, opt, r = EXIT_USAGE;

	memset(&pol, 0, sizeof(pol));
	outputs_init(&outs);
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': module = optarg; break;
		case 'T': token = optarg; break;
		case 'P': pinfile = optarg; break;
		case 'S': sopinfile = optarg; break;
		case 'p': passfile = optarg; break;
		case 'b': bundle_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'D': allow_disk = 1; break;
		case OPT_PDF: formats |= BACKUP_SHEET_PDF; break;
		case 'k':
			if (nkeys >= BUNDLE_MAX_KEYS) {
				r = usage_error(self, "at most 64 --key options");
				goto out;
			}
			keys[nkeys++] = optarg;
			break;
		case 't':
		case 'n':
		case 'g':
		case 'G':
		case 'e':
			if ((r = policy_option(self, &pol, opt, optarg)) !=
			    EXIT_OK)
				goto out;
			r = EXIT_USAGE;
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
	if (optind < argc || !module || !token || !pinfile || !sopinfile ||
	    !bundle_path || !dir || nkeys == 0) {
		r = usage_error(self, "--module, --token, --pin-file, "
		    "--so-pin-file, at least one --key, --bundle and "
		    "--shares-dir are needed");
		goto out;
	}
	if ((r = policy_finish(self, &pol)) != EXIT_OK)
		goto out;

	/* Everything that can be refused is refused before the token. */
	r = EXIT_FAIL;
	if (open_outputs(&outs, dir, allow_disk, bundle_path, "--bundle") !=
	    EXIT_OK)
		goto out;
	if (read_pin(pinfile, "--pin-file", &pin, &pinlen) != EXIT_OK ||
	    read_pin(sopinfile, "--so-pin-file", &sopin, &sopinlen) != EXIT_OK)
		goto out;
	if (passfile != NULL &&
	    read_passphrase(passfile, &pass, &passlen) != EXIT_OK)
		goto out;
	if ((b = bundle_new(nkeys)) == NULL ||
	    (bmk = secmem_alloc(BUNDLE_BMK_LEN)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	if (open_token(module, token, pin, pinlen, &p) != EXIT_OK)
		goto out;
	for (i = 0; i < nkeys; i++) {
		if (p11_find_key_uri(p, keys[i], &h, err, sizeof(err)) !=
		    KEYD_OK ||
		    backup_token_describe(p, h, keys[i], &b->keys[i], err,
		    sizeof(err)) != KEYD_OK) {
			errmsg("%s", err);
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (b->keys[j].label_len == b->keys[i].label_len &&
			    memcmp(b->keys[j].label, b->keys[i].label,
			    b->keys[i].label_len) == 0) {
				errmsg("--key %s and --key %s name keys with the "
				    "same label '%s'; each key once, and labels "
				    "unique", keys[j], keys[i], b->keys[i].label);
				goto out;
			}
	}
	if (wrap_under_new_bmk(p, b, sopin, sopinlen, pin, pinlen, bmk, &mech,
	    &alg) != EXIT_OK ||
	    seal_bundle(b, bmk, mech, alg, &pol, pass, passlen, &m, &count) !=
	    EXIT_OK ||
	    publish_backup(&outs, b, m, count, pass != NULL && passlen > 0,
	    formats) != EXIT_OK)
		goto out;
	r = EXIT_OK;
out:
	outputs_close(&outs);
	p11_close(p);
	slip39_mnemonics_free(m, count);
	secmem_free(bmk, BUNDLE_BMK_LEN);
	bundle_free(b);
	pin_free(pin, pinlen);
	pin_free(sopin, sopinlen);
	secmem_free(pass, BACKUP_MAX_PASSFILE + 1);
	return r;
}

/* ---- verify ------------------------------------------------------------- */

static int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "bundle-fingerprint", required_argument, NULL, 'f' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "share-file", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_verify);
	const char *bundle_path = NULL, *passfile = NULL, *fphex = NULL;
	const char *files[SLIP39_MAX_SHARES];
	struct bundle *b = NULL;
	struct shareset *ss = NULL;
	uint8_t fp[BUNDLE_HASH_LEN], *bmk = NULL;
	char what[BACKUP_MAX_MSG], fptext[3 * BUNDLE_HASH_LEN], *pass = NULL;
	size_t nfiles = 0, passlen = 0, i;
	int opt, r = EXIT_USAGE;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': bundle_path = optarg; break;
		case 'f': fphex = optarg; break;
		case 'p': passfile = optarg; break;
		case 's':
			if (nfiles >= SLIP39_MAX_SHARES) {
				r = usage_error(self, "too many --share-file");
				goto out;
			}
			files[nfiles++] = optarg;
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
	if (optind < argc || bundle_path == NULL) {
		r = usage_error(self, "--bundle is needed");
		goto out;
	}
	if (fphex != NULL && !backup_share_hex(fphex, strlen(fphex), fp,
	    sizeof(fp))) {
		r = usage_error(self, "--bundle-fingerprint needs the 64 hex "
		    "digits of the sheet's bundle-fingerprint");
		goto out;
	}
	r = EXIT_FAIL;
	if (load_bundle(bundle_path, &b) != EXIT_OK)
		goto out;
	if (fphex != NULL && check_fingerprint(b, bundle_path, fp,
	    "--bundle-fingerprint") != EXIT_OK)
		goto out;
	if (passfile != NULL &&
	    read_passphrase(passfile, &pass, &passlen) != EXIT_OK)
		goto out;
	if ((ss = secmem_alloc(sizeof(*ss))) == NULL ||
	    (bmk = secmem_alloc(BUNDLE_BMK_LEN)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	printf("bundle %s: backup set %s, %zu keys, fingerprint %s%s\n",
	    bundle_path, bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, what),
	    b->n_keys, backup_share_grouped_hex(b->fingerprint,
	    BUNDLE_HASH_LEN, fptext),
	    fphex != NULL ? " (matches --bundle-fingerprint)" : "");
	for (i = 0; i < nfiles; i++) {
		const struct slip39_share *s;

		if (add_share_file(ss, b, files[i], bundle_path) != EXIT_OK)
			goto out;
		s = &ss->shares[ss->n - 1];
		printf("share %zu (%s): group %u, member %u: matches its "
		    "commitment in the bundle\n", i + 1, files[i],
		    s->group_index + 1u, s->member_index + 1u);
	}
	if (ss->n > 0 && bundle_policy_met(b, ss->shares, ss->n)) {
		if (combine_and_check(ss, b, pass, passlen, bmk) != EXIT_OK)
			goto out;
		printf("the %zu shares combine and the bundle MAC verifies: "
		    "they and the passphrase restore this bundle\n", ss->n);
	} else if (ss->n > 0) {
		printf("%zu share%s checked alone; at least %u are needed to "
		    "check the bundle MAC too\n", ss->n, ss->n == 1 ? "" : "s",
		    bundle_shares_needed(b));
	} else {
		printf("no share given: only the bundle's structure%s was "
		    "checked\n", fphex != NULL ? " and fingerprint" : "");
	}
	r = EXIT_OK;
out:
	secmem_free(ss, sizeof(*ss));
	secmem_free(bmk, BUNDLE_BMK_LEN);
	secmem_free(pass, BACKUP_MAX_PASSFILE + 1);
	bundle_free(b);
	return r;
}

/* ---- restore, drill and rekey: opening a bundle on a token ------------- */

/* The options restore, drill and rekey share, for their option tables. */
#define UNLOCK_OPTIONS \
	{ "module", required_argument, NULL, 'm' }, \
	{ "token", required_argument, NULL, 'T' }, \
	{ "pin-file", required_argument, NULL, 'P' }, \
	{ "bundle", required_argument, NULL, 'b' }, \
	{ "bundle-fingerprint", required_argument, NULL, 'f' }, \
	{ "passphrase-file", required_argument, NULL, 'p' }, \
	{ "share-file", required_argument, NULL, 's' }

/* A bundle opened with a quorum of its shares, on a token: the options
 * above, then what unlock_open and unlock_shares fill in. */
struct unlock {
	const char *module, *token, *pinfile, *bundle_path, *passfile;
	const char *fphex;
	const char *files[SLIP39_MAX_SHARES];
	size_t nfiles;
	uint8_t fp[BUNDLE_HASH_LEN];
	struct bundle *b;
	struct shareset *ss;       /* locked */
	uint8_t *bmk;              /* locked, BUNDLE_BMK_LEN */
	struct p11 *p;
	char *pin, *pass;
	size_t pinlen, passlen;
};

/* Takes one of UNLOCK_OPTIONS: 1 if opt is one, 0 if not, -1 if its
 * value is wrong (the usage error is printed). */
static int
unlock_option(const struct command *self, struct unlock *u, int opt,
    const char *arg)
{
	switch (opt) {
	case 'm': u->module = arg; break;
	case 'T': u->token = arg; break;
	case 'P': u->pinfile = arg; break;
	case 'b': u->bundle_path = arg; break;
	case 'p': u->passfile = arg; break;
	case 'f':
		u->fphex = arg;
		if (!backup_share_hex(arg, strlen(arg), u->fp, sizeof(u->fp))) {
			(void)usage_error(self, "--bundle-fingerprint needs the "
			    "64 hex digits of the sheet's bundle-fingerprint");
			return -1;
		}
		break;
	case 's':
		if (u->nfiles >= SLIP39_MAX_SHARES) {
			(void)usage_error(self, "too many --share-file");
			return -1;
		}
		u->files[u->nfiles++] = arg;
		break;
	default:
		return 0;
	}
	return 1;
}

/* Reads the bundle (checking --bundle-fingerprint), the PIN and the
 * passphrase, and logs in to the token: before the officers type their
 * shares, so that a wrong PIN is found before anyone has typed anything.
 * Nothing is written. Prints the error itself. */
static WUR int
unlock_open(struct unlock *u)
{
	if (load_bundle(u->bundle_path, &u->b) != EXIT_OK)
		return EXIT_FAIL;
	if (u->fphex != NULL && check_fingerprint(u->b, u->bundle_path, u->fp,
	    "--bundle-fingerprint") != EXIT_OK)
		return EXIT_FAIL;
	if (read_pin(u->pinfile, "--pin-file", &u->pin, &u->pinlen) != EXIT_OK)
		return EXIT_FAIL;
	if (u->passfile != NULL &&
	    read_passphrase(u->passfile, &u->pass, &u->passlen) != EXIT_OK)
		return EXIT_FAIL;
	if ((u->ss = secmem_alloc(sizeof(*u->ss))) == NULL ||
	    (u->bmk = secmem_alloc(BUNDLE_BMK_LEN)) == NULL) {
		errmsg("out of memory");
		return EXIT_FAIL;
	}
	return open_token(u->module, u->token, u->pin, u->pinlen, &u->p);
}

/* The shares, from --share-file or typed, each checked as it comes; then
 * combined into u->bmk and the bundle's MAC checked with it. Prints the
 * error itself. */
static WUR int
unlock_shares(struct unlock *u)
{
	for (size_t i = 0; i < u->nfiles; i++)
		if (add_share_file(u->ss, u->b, u->files[i], u->bundle_path) !=
		    EXIT_OK)
			return EXIT_FAIL;
	if (u->nfiles == 0 && add_prompted_shares(u->ss, u->b) != EXIT_OK)
		return EXIT_FAIL;
	return combine_and_check(u->ss, u->b, u->pass, u->passlen, u->bmk);
}

/* Logs out, wipes and frees all of u. */
static void
unlock_close(struct unlock *u)
{
	p11_close(u->p);
	secmem_free(u->ss, sizeof(*u->ss));
	secmem_free(u->bmk, BUNDLE_BMK_LEN);
	secmem_free(u->pass, BACKUP_MAX_PASSFILE + 1);
	pin_free(u->pin, u->pinlen);
	bundle_free(u->b);
	memset(u, 0, sizeof(*u));
}

/* ---- restore ------------------------------------------------------------ */

static int
cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		UNLOCK_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_restore);
	struct unlock u;
	char what[BACKUP_MAX_MSG], err[BACKUP_MAX_MSG];
	int opt, taken, r = EXIT_USAGE;

	memset(&u, 0, sizeof(u));
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((taken = unlock_option(self, &u, opt, optarg)) < 0)
			goto out;
		if (taken)
			continue;
		r = help_or_unknown(self, opt, argv);
		goto out;
	}
	if (optind < argc || !u.module || !u.token || !u.pinfile ||
	    !u.bundle_path) {
		r = usage_error(self, "--module, --token, --pin-file and "
		    "--bundle are needed");
		goto out;
	}
	r = EXIT_FAIL;
	if (unlock_open(&u) != EXIT_OK || unlock_shares(&u) != EXIT_OK)
		goto out;
	if (backup_token_restore(u.p, u.b, u.bmk, BUNDLE_BMK_LEN, stdout, err,
	    sizeof(err)) != KEYD_OK) {
		errmsg("restore failed, nothing was left on the token: %s",
		    err);
		goto out;
	}
	printf("restored %zu key%s onto token '%s' from backup set %s; the "
	    "backup master key object was destroyed\n", u.b->n_keys,
	    u.b->n_keys == 1 ? "" : "s", p11_token_label(u.p),
	    bundle_hex(u.b->set_id, BUNDLE_SET_ID_LEN, what));
	r = EXIT_OK;
out:
	unlock_close(&u);
	return r;
}

/* ---- drill -------------------------------------------------------------- */

/* "1234, 5678" into buf: the pids of the keyd processes found. */
static const char *
pid_list(const pid_t *pids, size_t n, char *buf, size_t cap)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && i < BACKUP_DRILL_MAX_PIDS; i++) {
		int w = snprintf(buf + o, cap - o, "%s%ld", i ? ", " : "",
		    (long)pids[i]);

		if (w < 0 || (size_t)w >= cap - o)
			break;
		o += (size_t)w;
	}
	return buf;
}

/* drill, reshare and rekey run where restore runs: the offline ceremony
 * machine. Typing a quorum of shares on a host that runs keyd puts the BMK
 * in that networked host's memory: refuse, unless --allow-online, and then
 * say so. what: "the drill", "reshare" or "rekey". Prints the refusal
 * itself. restore is not checked: it runs on the machine that gets the new
 * token, which may be the one keyd will serve it from. */
static WUR int
offline_check(const char *what, int allow_online, pid_t *pids,
    size_t *npids)
{
	char list[BACKUP_MAX_MSG];
	size_t n = 0;

	if (backup_drill_keyd_pids(pids, BACKUP_DRILL_MAX_PIDS, &n) !=
	    KEYD_OK) {
		if (!allow_online) {
			errmsg("cannot read /proc to check that no keyd runs on "
			    "this machine: %s; run %s on the offline ceremony "
			    "machine, or give --allow-online", strerror(errno),
			    what);
			return EXIT_FAIL;
		}
		printf("--allow-online: /proc could not be read, so whether a "
		    "keyd runs here is unknown; %s goes on as asked\n", what);
		n = 0;
	} else if (n > 0 && !allow_online) {
		errmsg("keyd runs on this machine (pid %s): %s here would put "
		    "the backup master key in the memory of a host that serves "
		    "keys on a network; run it on the offline ceremony machine, "
		    "or give --allow-online to run it here anyway",
		    pid_list(pids, n, list, sizeof(list)), what);
		return EXIT_FAIL;
	} else if (n > 0) {
		printf("--allow-online: keyd runs on this machine (pid %s); %s "
		    "goes on as asked, and the backup master key is in this "
		    "host's memory while it runs\n", pid_list(pids, n, list,
		    sizeof(list)), what);
	} else if (allow_online) {
		printf("--allow-online: no keyd runs on this machine, so it was "
		    "not needed\n");
	}
	*npids = n < BACKUP_DRILL_MAX_PIDS ? n : BACKUP_DRILL_MAX_PIDS;
	return EXIT_OK;
}

static int
cmd_drill(int argc, char **argv)
{
	static const struct option opts[] = {
		UNLOCK_OPTIONS,
		{ "report", required_argument, NULL, 'r' },
		{ "allow-online", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_drill);
	struct unlock u;
	struct backup_drill_key *res = NULL;
	struct backup_drill_report rep;
	uint8_t groups[SLIP39_MAX_SHARES], members[SLIP39_MAX_SHARES];
	pid_t pids[BACKUP_DRILL_MAX_PIDS];
	const char *report = NULL;
	char what[BACKUP_MAX_MSG], err[BACKUP_MAX_MSG];
	char fp[3 * BUNDLE_HASH_LEN];
	size_t npids = 0, o = 0;
	int allow_online = 0, opt, taken, r = EXIT_USAGE, k, rfd = -1;

	memset(&u, 0, sizeof(u));
	memset(&rep, 0, sizeof(rep));
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((taken = unlock_option(self, &u, opt, optarg)) < 0)
			goto out;
		if (taken)
			continue;
		switch (opt) {
		case 'r': report = optarg; break;
		case 'O': allow_online = 1; break;
		default:
			r = help_or_unknown(self, opt, argv);
			goto out;
		}
	}
	if (optind < argc || !u.module || !u.token || !u.pinfile ||
	    !u.bundle_path) {
		r = usage_error(self, "--module, --token, --pin-file and "
		    "--bundle are needed");
		goto out;
	}
	r = EXIT_FAIL;
	if (offline_check("the drill", allow_online, pids, &npids) != EXIT_OK)
		goto out;
	if (report != NULL && access(report, F_OK) == 0) {
		errmsg("report %s already exists; keyd-backup never replaces a "
		    "drill report: choose another --report", report);
		goto out;
	}
	/* The report is written last: a directory that cannot take it is
	 * refused now, not after the holders have typed their shares; the
	 * report goes into the directory checked here, through rfd. */
	if (report != NULL && backup_file_open_dir_of(report, "--report", &rfd,
	    err, sizeof(err)) != KEYD_OK) {
		errmsg("%s", err);
		goto out;
	}
	if (unlock_open(&u) != EXIT_OK)
		goto out;
	if ((res = calloc(u.b->n_keys, sizeof(*res))) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	if (unlock_shares(&u) != EXIT_OK)
		goto out;
	for (size_t i = 0; i < u.ss->n; i++) {
		int w = snprintf(what + o, sizeof(what) - o, "%sgroup %u member "
		    "%u", i ? ", " : "", u.ss->shares[i].group_index + 1u,
		    u.ss->shares[i].member_index + 1u);

		groups[i] = u.ss->shares[i].group_index;
		members[i] = u.ss->shares[i].member_index;
		if (w > 0 && (size_t)w < sizeof(what) - o)
			o += (size_t)w;
	}
	printf("drill of bundle %s (backup set %s) on token '%s'\n",
	    u.bundle_path, bundle_hex(u.b->set_id, BUNDLE_SET_ID_LEN, err),
	    p11_token_label(u.p));
	printf("bundle fingerprint (SHA-256): %s\n",
	    backup_share_grouped_hex(u.b->fingerprint, BUNDLE_HASH_LEN, fp));
	printf("the shares of %s combine and the bundle MAC verifies\n", what);
	k = backup_token_drill(u.p, u.b, u.bmk, BUNDLE_BMK_LEN, stdout, res,
	    err, sizeof(err));
	/* The BMK has done its work: it goes now, not at the end. */
	secmem_wipe(u.bmk, BUNDLE_BMK_LEN);
	fflush(stdout);
	if (report != NULL) {
		rep.b = u.b;
		rep.bundle_path = u.bundle_path;
		rep.token = p11_token_label(u.p);
		rep.when = time(NULL);
		rep.groups = groups;
		rep.members = members;
		rep.n_shares = u.ss->n;
		rep.keys = res;
		rep.allow_online = allow_online;
		rep.keyd_pids = pids;
		rep.n_keyd = npids;
		if (backup_file_dir_of_unmoved(rfd, report, "--report", what,
		    sizeof(what)) != KEYD_OK ||
		    backup_drill_report_write(rfd, report, &rep, what,
		    sizeof(what)) != KEYD_OK) {
			errmsg("%s", what);
			goto out;
		}
		printf("report %s\n", report);
	}
	if (k == KEYD_ERR_BUNDLE) {
		errmsg("drill failed, nothing was left on the token: %s", err);
		goto out;
	}
	if (k != KEYD_OK) {
		errmsg("drill could not run, nothing was left on the token: %s",
		    err);
		goto out;
	}
	printf("drill passed: all %zu key%s of backup set %s restore from "
	    "these shares; every object the drill made on token '%s' was "
	    "destroyed\n", u.b->n_keys, u.b->n_keys == 1 ? "" : "s",
	    bundle_hex(u.b->set_id, BUNDLE_SET_ID_LEN, what),
	    p11_token_label(u.p));
	r = EXIT_OK;
out:
	if (rfd >= 0)
		close(rfd);
	free(res);
	unlock_close(&u);
	return r;
}

/* ---- rekey -------------------------------------------------------------- */

static int
cmd_rekey(int argc, char **argv)
{
	static const struct option opts[] = {
		UNLOCK_OPTIONS,
		{ "so-pin-file", required_argument, NULL, 'S' },
		{ "threshold", required_argument, NULL, 't' },
		{ "shares", required_argument, NULL, 'n' },
		{ "group-threshold", required_argument, NULL, 'g' },
		{ "group", required_argument, NULL, 'G' },
		{ "new-passphrase-file", required_argument, NULL, 'N' },
		{ "iteration-exponent", required_argument, NULL, 'e' },
		{ "new-bundle", required_argument, NULL, 'B' },
		{ "shares-dir", required_argument, NULL, 'd' },
		{ "allow-disk", no_argument, NULL, 'D' },
		SHEET_OPTION_PDF,
		{ "allow-online", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_rekey);
	struct unlock u;
	struct policy pol;
	struct outputs outs;
	struct bundle *nb = NULL;
	struct slip39_mnemonic *m = NULL;
	CK_OBJECT_HANDLE h;
	CK_MECHANISM_TYPE mech = 0;
	const char *sopinfile = NULL, *npassfile = NULL, *new_path = NULL;
	const char *dir = NULL;
	char what[BACKUP_MAX_MSG], err[BACKUP_MAX_MSG];
	char *sopin = NULL, *npass = NULL;
	uint8_t *nbmk = NULL, alg = 0;
	size_t sopinlen = 0, npasslen = 0, count = 0;
	unsigned formats = BACKUP_SHEET_TEXT;
	pid_t pids[BACKUP_DRILL_MAX_PIDS];
	size_t npids = 0;
	int allow_disk = 0, allow_online = 0, opt, taken, r = EXIT_USAGE;

	memset(&u, 0, sizeof(u));
	memset(&pol, 0, sizeof(pol));
	outputs_init(&outs);
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((taken = unlock_option(self, &u, opt, optarg)) < 0)
			goto out;
		if (taken)
			continue;
		switch (opt) {
		case 'S': sopinfile = optarg; break;
		case 'N': npassfile = optarg; break;
		case 'B': new_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'D': allow_disk = 1; break;
		case OPT_PDF: formats |= BACKUP_SHEET_PDF; break;
		case 'O': allow_online = 1; break;
		case 't':
		case 'n':
		case 'g':
		case 'G':
		case 'e':
			if ((r = policy_option(self, &pol, opt, optarg)) !=
			    EXIT_OK)
				goto out;
			r = EXIT_USAGE;
			break;
		default:
			r = help_or_unknown(self, opt, argv);
			goto out;
		}
	}
	if (optind < argc || !u.module || !u.token || !u.pinfile ||
	    !sopinfile || !u.bundle_path || !new_path || !dir) {
		r = usage_error(self, "--module, --token, --pin-file, "
		    "--so-pin-file, --bundle, --new-bundle and --shares-dir are "
		    "needed");
		goto out;
	}
	if ((r = policy_finish(self, &pol)) != EXIT_OK)
		goto out;
	r = EXIT_FAIL;
	/* The old BMK, the new one and a quorum of shares will be in this
	 * host's memory, as in a drill. */
	if (offline_check("rekey", allow_online, pids, &npids) != EXIT_OK)
		goto out;

	/* Everything that can be refused is refused before the token. */
	if (open_outputs(&outs, dir, allow_disk, new_path, "--new-bundle") !=
	    EXIT_OK)
		goto out;
	if (read_pin(sopinfile, "--so-pin-file", &sopin, &sopinlen) !=
	    EXIT_OK)
		goto out;
	if (npassfile != NULL &&
	    read_passphrase(npassfile, &npass, &npasslen) != EXIT_OK)
		goto out;
	if (unlock_open(&u) != EXIT_OK)
		goto out;
	if ((nb = bundle_new(u.b->n_keys)) == NULL ||
	    (nbmk = secmem_alloc(BUNDLE_BMK_LEN)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	/* The keys come from the token, not from the old bundle: each must
	 * still be there and be the same key, checked before anyone types a
	 * share. The quorum of old shares proves that the officers agree. */
	for (size_t i = 0; i < u.b->n_keys; i++)
		if (backup_token_match(u.p, &u.b->keys[i], &h,
		    &nb->keys[i], err, sizeof(err)) != KEYD_OK) {
			errmsg("rekey refused, nothing was written: %s", err);
			goto out;
		}
	if (unlock_shares(&u) != EXIT_OK)
		goto out;
	secmem_wipe(u.bmk, BUNDLE_BMK_LEN);
	printf("the %zu old shares combine and the MAC of bundle %s verifies\n",
	    u.ss->n, u.bundle_path);
	if (wrap_under_new_bmk(u.p, nb, sopin, sopinlen, u.pin, u.pinlen,
	    nbmk, &mech, &alg) != EXIT_OK ||
	    seal_bundle(nb, nbmk, mech, alg, &pol, npass, npasslen, &m,
	    &count) != EXIT_OK ||
	    publish_backup(&outs, nb, m, count, npass != NULL && npasslen > 0,
	    formats) != EXIT_OK)
		goto out;
	printf("rekeyed: backup set %s replaces backup set %s; its shares do "
	    "not open the old bundle, nor the old shares the new one. The old "
	    "bundle and its shares still open each other: destroy every copy "
	    "of the old bundle\n", bundle_hex(nb->set_id, BUNDLE_SET_ID_LEN,
	    what), bundle_hex(u.b->set_id, BUNDLE_SET_ID_LEN, err));
	r = EXIT_OK;
out:
	slip39_mnemonics_free(m, count);
	secmem_free(nbmk, BUNDLE_BMK_LEN);
	bundle_free(nb);
	pin_free(sopin, sopinlen);
	secmem_free(npass, BACKUP_MAX_PASSFILE + 1);
	unlock_close(&u);
	outputs_close(&outs);
	return r;
}

/* ---- reshare ------------------------------------------------------------ */

/*
 * A quorum of the current shares makes a new share set, with a new policy,
 * for the same BMK, and a new bundle that it opens (backup_reshare.h). The
 * quorum proves the officers agree: the shares are checked against their
 * commitments and the old bundle's MAC, all as restore does, before
 * anything is written. No token is needed: the wrapped keys are copied.
 */
static int
cmd_reshare(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "bundle-fingerprint", required_argument, NULL, 'f' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "share-file", required_argument, NULL, 's' },
		{ "threshold", required_argument, NULL, 't' },
		{ "shares", required_argument, NULL, 'n' },
		{ "group-threshold", required_argument, NULL, 'g' },
		{ "group", required_argument, NULL, 'G' },
		{ "new-bundle", required_argument, NULL, 'o' },
		{ "shares-dir", required_argument, NULL, 'd' },
		{ "allow-disk", no_argument, NULL, 'D' },
		SHEET_OPTION_PDF,
		{ "allow-online", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_reshare);
	const char *bundle_path = NULL, *passfile = NULL, *fphex = NULL;
	const char *new_path = NULL, *dir = NULL;
	const char *files[SLIP39_MAX_SHARES];
	struct policy pol;
	struct outputs outs;
	struct bundle *b = NULL, *nb = NULL;
	struct shareset *ss = NULL;
	struct slip39_mnemonic *m = NULL;
	struct slip39_diag diag;
	uint8_t fp[BUNDLE_HASH_LEN], *bmk = NULL;
	char what[BACKUP_MAX_MSG];
	char fptext[3 * BUNDLE_HASH_LEN], *pass = NULL;
	size_t nfiles = 0, passlen = 0, count = 0, i;
	unsigned formats = BACKUP_SHEET_TEXT;
	pid_t pids[BACKUP_DRILL_MAX_PIDS];
	size_t npids = 0;
	int allow_disk = 0, allow_online = 0, opt, r = EXIT_USAGE, k;

	memset(&pol, 0, sizeof(pol));
	outputs_init(&outs);
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': bundle_path = optarg; break;
		case 'f': fphex = optarg; break;
		case 'p': passfile = optarg; break;
		case 'o': new_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'D': allow_disk = 1; break;
		case OPT_PDF: formats |= BACKUP_SHEET_PDF; break;
		case 'O': allow_online = 1; break;
		case 's':
			if (nfiles >= SLIP39_MAX_SHARES) {
				r = usage_error(self, "too many --share-file");
				goto out;
			}
			files[nfiles++] = optarg;
			break;
		case 't':
		case 'n':
		case 'g':
		case 'G':
			if ((r = policy_option(self, &pol, opt, optarg)) !=
			    EXIT_OK)
				goto out;
			r = EXIT_USAGE;
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
	if (optind < argc || !bundle_path || !new_path || !dir) {
		r = usage_error(self, "--bundle, --new-bundle and --shares-dir "
		    "are needed");
		goto out;
	}
	if ((r = policy_finish(self, &pol)) != EXIT_OK)
		goto out;
	if (fphex != NULL && !backup_share_hex(fphex, strlen(fphex), fp,
	    sizeof(fp))) {
		r = usage_error(self, "--bundle-fingerprint needs the 64 hex "
		    "digits of the sheet's bundle-fingerprint");
		goto out;
	}

	/* Everything that can be refused is refused before anyone types. */
	r = EXIT_FAIL;
	/* No token, but the BMK rebuilt from a quorum, as in a drill. */
	if (offline_check("reshare", allow_online, pids, &npids) != EXIT_OK)
		goto out;
	if (open_outputs(&outs, dir, allow_disk, new_path, "--new-bundle") !=
	    EXIT_OK)
		goto out;
	if (load_bundle(bundle_path, &b) != EXIT_OK)
		goto out;
	if (fphex != NULL && check_fingerprint(b, bundle_path, fp,
	    "--bundle-fingerprint") != EXIT_OK)
		goto out;
	if (b->ext != 1) {
		errmsg("bundle %s: its shares do not have SLIP-0039's "
		    "extendable flag, so their identifier is part of the "
		    "encrypted master secret and no new set can be split from "
		    "it; make a new backup with rekey or create instead",
		    bundle_path);
		goto out;
	}
	if (passfile != NULL &&
	    read_passphrase(passfile, &pass, &passlen) != EXIT_OK)
		goto out;
	if ((ss = secmem_alloc(sizeof(*ss))) == NULL ||
	    (bmk = secmem_alloc(BUNDLE_BMK_LEN)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	for (i = 0; i < nfiles; i++)
		if (add_share_file(ss, b, files[i], bundle_path) != EXIT_OK)
			goto out;
	if (nfiles == 0 && add_prompted_shares(ss, b) != EXIT_OK)
		goto out;
	/* The old bundle's MAC under the BMK the shares give proves the
	 * quorum and the passphrase, and gives the key for the new MAC. */
	if (combine_and_check(ss, b, pass, passlen, bmk) != EXIT_OK)
		goto out;
	k = backup_reshare_split(b, ss->shares, ss->n, pol.gthreshold,
	    pol.groups, pol.ngroups, &m, &count, &diag);
	if (k == KEYD_ERR_INVALID_ARG || k == KEYD_ERR_NOMEM ||
	    k == KEYD_ERR_CRYPTO || k == KEYD_ERR_INTERNAL ||
	    k == KEYD_ERR_UNSUPPORTED) {
		errmsg("cannot split the backup master key again: %s",
		    keyd_strerror(k));
		goto out;
	}
	if (k != KEYD_OK) {
		errmsg("%s", slip39_diag_format(&diag, what, sizeof(what)));
		goto out;
	}
	if ((k = backup_reshare_bundle(b, &nb)) != KEYD_OK) {
		errmsg("cannot make the new bundle: %s", keyd_strerror(k));
		goto out;
	}
	nb->group_threshold = (uint8_t)pol.gthreshold;
	nb->group_count = (uint8_t)pol.ngroups;
	for (i = 0; i < pol.ngroups; i++) {
		nb->member_threshold[i] =
		    (uint8_t)pol.groups[i].member_threshold;
		nb->member_count[i] = (uint8_t)pol.groups[i].member_count;
	}
	if (commit_shares(nb, m, count) != KEYD_OK ||
	    bundle_encode(nb, bmk, BUNDLE_BMK_LEN) != KEYD_OK) {
		errmsg("cannot encode the new bundle");
		goto out;
	}
	/* All or nothing, as create: staged bundle, sheets, then rename. */
	if (write_backup(&outs, nb, m, count, pass != NULL && passlen > 0,
	    formats) != EXIT_OK)
		goto out;
	printf("bundle %s: %zu key%s, backup set %s\n", new_path, nb->n_keys,
	    nb->n_keys == 1 ? "" : "s", bundle_hex(nb->set_id,
	    BUNDLE_SET_ID_LEN, what));
	printf("bundle fingerprint (SHA-256): %s\n",
	    backup_share_grouped_hex(nb->fingerprint, BUNDLE_HASH_LEN, fptext));
	printf("reshared from backup set %s (bundle %s, fingerprint %s): the "
	    "same backup master key and wrapped keys\n",
	    bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, what), bundle_path,
	    backup_share_grouped_hex(b->fingerprint, BUNDLE_HASH_LEN, fptext));
	printf("policy: %u of %u groups", nb->group_threshold,
	    nb->group_count);
	for (i = 0; i < nb->group_count; i++)
		printf("%s%u of %u", i == 0 ? ": " : ", ",
		    nb->member_threshold[i], nb->member_count[i]);
	printf("; SLIP-0039 identifier %u, extendable\n", nb->slip39_id);
	for (i = 0; i < count; i++) {
		printf("share sheet %s/%s\n", dir, backup_share_file_name(nb,
		    m[i].group_index + 1u, m[i].member_index + 1u, what,
		    sizeof(what)));
		if (formats & BACKUP_SHEET_PDF)
			printf("share sheet %s/%s\n", dir, backup_pdf_file_name(
			    nb, m[i].group_index + 1u, m[i].member_index + 1u,
			    what, sizeof(what)));
	}
	printf("the old shares still open the old bundle %s, and give the "
	    "backup master key this bundle's keys are wrapped under: to "
	    "retire them, rekey\n", bundle_path);
	r = EXIT_OK;
out:
	outputs_close(&outs);
	slip39_mnemonics_free(m, count);
	secmem_free(ss, sizeof(*ss));
	secmem_free(bmk, BUNDLE_BMK_LEN);
	secmem_free(pass, BACKUP_MAX_PASSFILE + 1);
	bundle_free(nb);
	bundle_free(b);
	return r;
}

/* ---- inspect ------------------------------------------------------------ */

static int
cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bundle", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *self = command_of(cmd_inspect);
	const char *bundle_path = NULL;
	struct bundle *b = NULL;
	char what[BACKUP_MAX_MSG], fp[3 * BUNDLE_HASH_LEN], when[64];
	time_t created;
	struct tm tm;
	int opt, r = EXIT_USAGE;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': bundle_path = optarg; break;
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
	if (optind < argc || bundle_path == NULL) {
		r = usage_error(self, "--bundle is needed");
		goto out;
	}
	r = EXIT_FAIL;
	if (load_bundle(bundle_path, &b) != EXIT_OK)
		goto out;
	created = (time_t)b->created;
	if (gmtime_r(&created, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "%llu",
		    (unsigned long long)b->created);
	printf("bundle %s (format version %u)\n", bundle_path, b->version);
	printf("fingerprint (SHA-256 of the file): %s\n",
	    backup_share_grouped_hex(b->fingerprint, BUNDLE_HASH_LEN, fp));
	printf("set id: %s\n", bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, what));
	printf("created: %s\n", when);
	printf("wrap algorithm: RFC 5649 AES key wrap with padding%s, made "
	    "with %s (0x%lx)\n", b->wrap_alg == BUNDLE_WRAP_RFC5649 ? "" :
	    " of the key zero-padded to 8 bytes", b->wrap_mech == CKM_AES_KEY_WRAP_KWP ?
	    "CKM_AES_KEY_WRAP_KWP" : b->wrap_mech == CKM_AES_KEY_WRAP_PAD ?
	    "CKM_AES_KEY_WRAP_PAD" : "an unknown mechanism",
	    (unsigned long)b->wrap_mech);
	printf("MAC: HMAC-SHA256, key by HKDF-SHA256 from the backup master "
	    "key\n");
	printf("shares: SLIP-0039 identifier %u, extendable %u, iteration "
	    "exponent %u, %u-byte master secret\n", b->slip39_id, b->ext,
	    b->iteration_exp, b->secret_len);
	printf("policy: %u of %u groups\n", b->group_threshold, b->group_count);
	for (unsigned g = 0; g < b->group_count; g++)
		printf("  group %u: %u of %u shares\n", g + 1,
		    b->member_threshold[g], b->member_count[g]);
	for (size_t i = 0; i < b->n_commits; i++)
		printf("share group %u member %u commitment: %s\n",
		    b->commits[i].group + 1u, b->commits[i].member + 1u,
		    backup_share_grouped_hex(b->commits[i].c, BUNDLE_HASH_LEN, fp));
	printf("keys: %zu\n", b->n_keys);
	for (size_t i = 0; i < b->n_keys; i++)
		print_key(stdout, &b->keys[i]);
	r = EXIT_OK;
out:
	bundle_free(b);
	return r;
}

/* ---- main --------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	size_t i;

	/* Errors go to stderr at once (errmsg, one write(2)); stdout must
	 * keep pace, line by line, or a log of both (a ceremony's, a CI
	 * job's) shows a drill's "pass" lines after the error that followed
	 * them. Secrets never go through stdio: shamir writes them with
	 * write(2). */
	(void)setvbuf(stdout, NULL, _IOLBF, 0);
	/* No core dumps, and no ptrace by other processes of this user: the
	 * module's heap holds the PIN's login, OpenSSL's the keys it saw, and
	 * rekey the old and new backup master keys with a quorum of shares
	 * (secmem pages are left out of dumps, the rest is not). */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
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
	if (strcmp(argv[1], "--version") == 0) {
		printf("%s %s\n", PROG, KEYD_VERSION);
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
