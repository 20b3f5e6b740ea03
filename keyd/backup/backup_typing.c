/* backup_typing.c: a share typed at a terminal, word by word, unseen. */
#include "backup_typing.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "keyd_err.h"
#include "secmem.h"

/* Letters that name a SLIP-0039 word ("Wordlist": unique 4-letter
 * prefixes). */
#define TYPING_PREFIX 4
/* One line said to the holder (no secret in it). */
#define TYPING_MAX_MSG 256
/* Keys. */
#define KEY_CTRL_C 0x03
#define KEY_CTRL_D 0x04
#define KEY_BS 0x08
#define KEY_CTRL_U 0x15
#define KEY_ESC 0x1b
#define KEY_DEL 0x7f

#define WUR BACKUP_TYPING_WUR

/* What is being typed; in locked memory. */
struct typing {
	char cur[SLIP39_WORD_MAX_LEN + 1];  /* letters of the current word */
	size_t clen;
	char word[SLIP39_WORD_MAX_LEN + 1]; /* its completion, once accepted */
	int accepted;
	unsigned nwords;                    /* words finished, in buf */
	size_t blen;
	int esc;        /* inside an escape sequence (arrow keys): 1 after
	                 * ESC, 2 after ESC [ or ESC O */
};

/* Writes a message that holds no secret to the terminal. */
static void __attribute__((format(printf, 2, 3)))
say(int out, const char *fmt, ...)
{
	char line[TYPING_MAX_MSG];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	(void)!write(out, line, (size_t)n);
}

/* The prompt: how many words are accepted, the current one included. */
static void
status(int out, const char *label, const struct typing *t, unsigned nwords)
{
	unsigned have = t->nwords + (t->accepted ? 1u : 0u);

	if (nwords > 0)
		say(out, "\r%s: %u of %u words ", label, have, nwords);
	else
		say(out, "\r%s: %u words ", label, have);
}

/* Refuses what was typed of the current word: it is dropped, the holder
 * is told why (never what) and types the word again. */
static void
refuse(int out, const char *label, struct typing *t, unsigned nwords,
    const char *why)
{
	secmem_wipe(t->cur, sizeof(t->cur));
	secmem_wipe(t->word, sizeof(t->word));
	t->clen = 0;
	t->accepted = 0;
	say(out, "\a\r\n%s, word %u: %s; type word %u again\r\n", label,
	    t->nwords + 1, why, t->nwords + 1);
	status(out, label, t, nwords);
}

/* Ends the current word: appends its completion to buf. Returns 0, or -1
 * if there is no room (more words than any share has). */
static int
finish_word(struct typing *t, char *buf, size_t cap)
{
	size_t wl = strlen(t->word);

	if (t->nwords >= SLIP39_MAX_WORDS ||
	    t->blen + 1 + wl + 1 > cap)
		return -1;
	if (t->nwords > 0)
		buf[t->blen++] = ' ';
	memcpy(buf + t->blen, t->word, wl);
	t->blen += wl;
	buf[t->blen] = '\0';
	t->nwords++;
	secmem_wipe(t->cur, sizeof(t->cur));
	secmem_wipe(t->word, sizeof(t->word));
	t->clen = 0;
	t->accepted = 0;
	return 0;
}

/* Backspace from an empty word: the previous word comes back, whole and
 * accepted, to be taken back letter by letter. */
static void
reopen_word(struct typing *t, char *buf)
{
	size_t start = t->blen;

	while (start > 0 && buf[start - 1] != ' ')
		start--;
	t->clen = t->blen - start;
	memcpy(t->cur, buf + start, t->clen);
	memcpy(t->word, buf + start, t->clen);
	t->cur[t->clen] = '\0';
	t->word[t->clen] = '\0';
	t->accepted = 1;
	secmem_wipe(buf + start, t->blen - start);
	t->blen = start > 0 ? start - 1 : 0;  /* and its space */
	buf[t->blen] = '\0';
	t->nwords--;
}

/* One letter (lowercase) of the current word. */
static void
letter(int out, const char *label, struct typing *t, unsigned nwords,
    char c)
{
	char probe[SLIP39_WORD_MAX_LEN + 1];

	if (t->accepted) {
		/* The holder goes on typing the word in full: the letters
		 * must be the completion's. */
		if (t->clen >= SLIP39_WORD_MAX_LEN || t->word[t->clen] != c)
			refuse(out, label, t, nwords, "those letters are not "
			    "the word its first four letters begin");
		else
			t->cur[t->clen++] = c;
		return;
	}
	t->cur[t->clen++] = c;
	if (slip39_word_prefix(t->cur, t->clen, probe) == 0 ||
	    (t->clen == TYPING_PREFIX && probe[0] == '\0')) {
		secmem_wipe(probe, sizeof(probe));
		refuse(out, label, t, nwords, "no SLIP-0039 word begins with "
		    "those letters");
		return;
	}
	if (t->clen == TYPING_PREFIX) {
		memcpy(t->word, probe, sizeof(t->word));
		t->accepted = 1;
		status(out, label, t, nwords);
	}
	secmem_wipe(probe, sizeof(probe));
}

/* While the terminal is raw: a signal that ends keyd-backup (SIGTERM from
 * kill or timeout, SIGHUP when the terminal goes) puts the terminal back
 * first, then ends it as it would have. tcsetattr is async-signal-safe. */
static const int restore_signals[] = {
	SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGUSR1, SIGUSR2, SIGPIPE,
};
#define N_RESTORE_SIGNALS \
	(sizeof(restore_signals) / sizeof(restore_signals[0]))
static volatile sig_atomic_t raw_fd = -1;
static struct termios raw_saved;

static void
restore_and_raise(int sig)
{
	if (raw_fd >= 0)
		(void)tcsetattr((int)raw_fd, TCSANOW, &raw_saved);
	(void)signal(sig, SIG_DFL);
	(void)raise(sig);
}

static void
raw_handlers(int fd, const struct termios *saved,
    struct sigaction prev[N_RESTORE_SIGNALS])
{
	struct sigaction sa;

	raw_saved = *saved;
	raw_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_and_raise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_RESTORE_SIGNALS; i++)
		(void)sigaction(restore_signals[i], &sa, &prev[i]);
}

static void
raw_handlers_off(const struct sigaction prev[N_RESTORE_SIGNALS])
{
	for (size_t i = 0; i < N_RESTORE_SIGNALS; i++)
		(void)sigaction(restore_signals[i], &prev[i], NULL);
	raw_fd = -1;
}

int
backup_typing_read_share(int fd, int out, const char *label,
    unsigned nwords, char *buf, size_t cap, size_t *len)
{
	struct termios old, raw;
	struct sigaction prev[N_RESTORE_SIGNALS];
	struct typing *t = NULL;
	int r = KEYD_ERR_IO, restore = 0;
	char c = 0;

	*len = 0;
	if (cap == 0)
		return KEYD_ERR_INVALID_ARG;
	buf[0] = '\0';
	if (!isatty(fd) || tcgetattr(fd, &old) != 0)
		return KEYD_ERR_INVALID_ARG;
	if ((t = secmem_alloc(sizeof(*t))) == NULL)
		return KEYD_ERR_NOMEM;
	/* One key at a time, nothing echoed, and Ctrl-C read as a key so
	 * that the terminal is always put back (a signal would leave it
	 * without echo). TCSAFLUSH drops what was typed before the prompt:
	 * it was shown. */
	raw = old;
	raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_iflag &= ~(tcflag_t)(IXON);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	raw_handlers(fd, &old, prev);
	if (tcsetattr(fd, TCSAFLUSH, &raw) != 0) {
		raw_handlers_off(prev);
		goto out;
	}
	restore = 1;
	status(out, label, t, nwords);
	for (;;) {
		ssize_t got = read(fd, &c, 1);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0 || c == KEY_CTRL_C || c == KEY_CTRL_D) {
			say(out, "\r\n%s: stopped\r\n", label);
			r = KEYD_ERR_CLOSED;
			goto out;
		}
		if (t->esc == 1) {
			t->esc = (c == '[' || c == 'O') ? 2 : 0;
			/* A lone Esc: the next key is a key. */
			if (t->esc == 2)
				continue;
		}
		if (t->esc == 2) {
			/* A CSI or SS3 sequence ends with a byte from '@'
			 * to '~'. */
			if (c >= '@' && c <= '~')
				t->esc = 0;
			continue;
		}
		if (c == KEY_ESC) {
			t->esc = 1;
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			if (t->nwords >= SLIP39_MAX_WORDS) {
				refuse(out, label, t, nwords, "a share has no "
				    "more words");
				continue;
			}
			letter(out, label, t, nwords, (char)(c | 0x20));
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (t->clen > 0 && !t->accepted) {
				refuse(out, label, t, nwords, "type at least "
				    "the first four letters of each word");
				continue;
			}
			if (t->accepted && finish_word(t, buf, cap) != 0) {
				refuse(out, label, t, nwords, "a share has no "
				    "more words");
				continue;
			}
			status(out, label, t, nwords);
			if ((c == '\r' || c == '\n') && t->nwords > 0)
				break;
			continue;
		}
		if (c == KEY_DEL || c == KEY_BS) {
			if (t->clen == 0 && t->nwords > 0)
				reopen_word(t, buf);
			if (t->clen > 0) {
				t->cur[--t->clen] = '\0';
				if (t->clen < TYPING_PREFIX) {
					t->accepted = 0;
					secmem_wipe(t->word, sizeof(t->word));
				}
			}
			status(out, label, t, nwords);
			continue;
		}
		if (c == KEY_CTRL_U) {
			secmem_wipe(buf, cap);
			secmem_wipe(t, sizeof(*t));
			say(out, "\r\n%s: started again\r\n", label);
			status(out, label, t, nwords);
			continue;
		}
		refuse(out, label, t, nwords, "only letters, spaces and Enter "
		    "make a share");
	}
	*len = t->blen;
	r = KEYD_OK;
out:
	c = 0;
	if (restore) {
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		raw_handlers_off(prev);
		say(out, "\r\n");
	}
	if (r != KEYD_OK)
		secmem_wipe(buf, cap);
	secmem_free(t, sizeof(*t));
	return r;
}

char *
backup_typing_needed(const struct bundle *b, const struct slip39_share *s,
    size_t n, char *buf, size_t cap)
{
	unsigned have[SLIP39_MAX_GROUPS] = { 0 }, done = 0, g;
	size_t o = 0;
	int k;

	if (cap == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (s[i].group_index < SLIP39_MAX_GROUPS)
			have[s[i].group_index]++;
	for (g = 0; g < b->group_count; g++)
		if (have[g] >= b->member_threshold[g])
			done++;
	if (b->group_count == 1) {
		unsigned more = have[0] >= b->member_threshold[0] ? 0 :
		    b->member_threshold[0] - have[0];

		if (more == 0)
			snprintf(buf, cap, "enough shares (%u of %u)", have[0],
			    b->member_threshold[0]);
		else
			snprintf(buf, cap, "%u more share%s needed (%u of %u "
			    "given)", more, more == 1 ? "" : "s", have[0],
			    b->member_threshold[0]);
		return buf;
	}
	for (g = 0; g < b->group_count && o < cap; g++) {
		unsigned t = b->member_threshold[g];

		if (have[g] >= t)
			k = snprintf(buf + o, cap - o, "group %u: done; ",
			    g + 1);
		else
			k = snprintf(buf + o, cap - o, "group %u: %u more "
			    "share%s (%u of %u); ", g + 1, t - have[g],
			    t - have[g] == 1 ? "" : "s", have[g], t);
		if (k < 0)
			break;
		o += (size_t)k;
	}
	if (o < cap) {
		if (done >= b->group_threshold)
			snprintf(buf + o, cap - o, "enough groups (%u of %u)",
			    done, b->group_threshold);
		else
			snprintf(buf + o, cap - o, "%u more group%s needed "
			    "(%u of %u done)", b->group_threshold - done,
			    b->group_threshold - done == 1 ? "" : "s", done,
			    b->group_threshold);
	}
	return buf;
}
