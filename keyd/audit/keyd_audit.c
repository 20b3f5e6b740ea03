/*
 * keyd-audit: checks an audit log written by keyd.
 *
 *   keyd-audit verify FILE... --pubkey PEM [--anchors FILE]
 *
 * Every line must carry the SHA-256 of the line before it ("prev") and
 * the next sequence number; every checkpoint line's signature must verify
 * with the audit key's public key.
 *
 * A checkpoint vouches only for the lines of its own run of keyd: a run
 * goes from one start record to the next. keyd continues the chain from
 * whatever the log ends with when it starts, so a checkpoint signed after
 * a restart would otherwise vouch for lines written (or rewritten) while
 * keyd was not running. Lines that no checkpoint of their run covers (a
 * crash, kill -9 or power loss left them, or someone rewrote them) are
 * unverified. After a clean stop (a "stop" checkpoint) the next line must
 * be a start record: anything else was written while keyd was stopped.
 * keyd's start record says what it found at the end of the log: a gap
 * (the log no longer holds the last checkpoint keyd recorded in state_dir)
 * or tampering fails verification.
 *
 * Several files are the rotated parts of one log, oldest first. keyd
 * carries seq and prev across a rotation (audit_rotate), so each file must
 * continue the one before it: its first line has the next seq, and the
 * hash of the previous file's last line as its prev. A file left out or
 * files out of order are a break.
 *
 * --anchors FILE: checkpoint lines kept elsewhere (syslog, a SIEM), one a
 * line, each possibly after a syslog prefix (the line is taken from its
 * first '{'). The log must hold each, byte for byte.
 *
 * The files are read a line at a time, and only three lines are kept (the
 * one checked and its neighbours, which tell which of two lines that do
 * not chain was edited), so memory does not grow with the log: a keyd
 * serving 40 requests/s writes more than 1 GiB a day.
 *
 * Exit status: 0 every line verified; 1 proven tampering (a bad hash or
 * signature, a gap, an anchor missing or different, lines after a clean
 * stop; the first is named); 2 usage or I/O error; 3 the chain is intact
 * but some lines are unverified (each range is named).
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "kbuf.h"
#include "keyd_err.h"

/* keyd never writes a line as long as this (audit.c's AUDIT_LINE_MAX, with
 * the newline): a longer one was not written by keyd. It is also what
 * bounds the memory a line takes here, however long the file's lines. */
#define AUDIT_VERIFY_LINE_MAX 4096
#define AUDIT_VERIFY_SIG_MAX 2048
#define AUDIT_VERIFY_READ_CHUNK (64 * 1024)
#define EXIT_TAIL 3
#define AUDIT_VERIFY_NOTE 512
/* Unverified ranges printed one by one; the rest are only counted. */
#define AUDIT_VERIFY_RANGES_SHOWN 20

struct parsed {
	int ok;              /* valid JSON with seq and prev */
	long long seq;
	char prev[AUDIT_HASH_HEX + 1];
	int checkpoint;
	int stop_cp;         /* a checkpoint with detail "stop" */
	int start;           /* a start record */
	char gap[AUDIT_VERIFY_NOTE];      /* a start record's findings */
	char tampered[AUDIT_VERIFY_NOTE];
	int cp_bad;          /* "checkpoint":"bad" */
	int signed_;         /* a start record with a "sig" */
	int has_resumed;
	long long resumed_seq;
	char resumed_hash[AUDIT_HASH_HEX + 1];
};

struct line {
	char p[AUDIT_VERIFY_LINE_MAX]; /* the bytes, NUL-terminated */
	size_t len;          /* without the newline */
	int complete;        /* ended with a newline */
	int too_long;        /* len reached AUDIT_VERIFY_LINE_MAX: p is cut */
	size_t file;         /* index of its file */
	size_t n;            /* its number in its file, from 1 */
	char hash[AUDIT_HASH_HEX + 1];
	struct parsed ps;
};

struct anchor {
	long long seq;
	char hash[AUDIT_HASH_HEX + 1];
	size_t n;            /* its line in the anchors file */
};

/* Reads a file a chunk at a time; lines are cut out of the chunk through
 * a bounded reader. */
struct reader {
	FILE *f;
	int eof;
	struct kbuf b;       /* the unread part of chunk */
	uint8_t chunk[AUDIT_VERIFY_READ_CHUNK];
};

struct vfile {
	const char *path;
	size_t nlines;
	size_t ncp;          /* checkpoints in this file */
	size_t last_cp;      /* line number of its last one, 0: none */
	size_t verified, unverified, pending;
	int later_cp;        /* lines proven by a later file's checkpoint */
};

struct verify {
	EVP_PKEY *pk;
	const char *pubpath;
	struct vfile *files;
	size_t nfiles;
	size_t cur;          /* the file being read */
	struct reader rd;
	struct line slots[3];
	long long first_seq, last_seq;
	/* The run being read: the lines since its last checkpoint. */
	size_t pend_file, pend_n, pend_count;
	long long pend_seq;
	int after_stop;      /* the line before was a stop checkpoint */
	size_t ranges;       /* unverified ranges found */
	size_t unclean_runs; /* runs that ended right after a checkpoint */
	int have_cp;
	long long cp_seq;    /* the last checkpoint seen */
	char cp_hash[AUDIT_HASH_HEX + 1];
	/* --anchors */
	const char *anchors_path;
	struct anchor *anchors;
	size_t n_anchors, next_anchor;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: keyd-audit verify FILE... --pubkey PEM "
	    "[--anchors FILE]\n"
	    "  FILE...           the log; several: its rotated files, oldest "
	    "first\n"
	    "  --pubkey PEM      the audit key's public key\n"
	    "  --anchors FILE    checkpoint lines kept elsewhere (syslog, a "
	    "SIEM) that the\n"
	    "                    log must hold\n"
	    "  --help, --version\n"
	    "exit status: 0 all verified, 1 tampering proven, 2 usage or I/O "
	    "error,\n"
	    "3 unverified lines (each range named)\n");
}

/* Prints a finding about a line of files[file]; with more than one file,
 * the file is named first. */
static void say(const struct verify *v, size_t file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(const struct verify *v, size_t file, const char *fmt, ...)
{
	va_list ap;

	printf("keyd-audit: ");
	if (v->nfiles > 1)
		printf("%s: ", v->files[file].path);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* reader_line: the next line of r's file into l (its first
 * AUDIT_VERIFY_LINE_MAX - 1 bytes; a longer line is marked too_long and
 * read to its end without being kept). Returns 1 for a line, 0 at the end
 * of the file, -1 on a read error (errno says why). */
static int __attribute__((warn_unused_result))
reader_line(struct reader *r, struct line *l)
{
	int any = 0;

	l->len = 0;
	l->complete = 0;
	l->too_long = 0;
	l->p[0] = '\0';
	for (;;) {
		const uint8_t *start, *nl, *p;
		size_t take;

		if (kbuf_avail(&r->b) == 0) {
			size_t n;

			if (r->eof)
				return any;
			n = fread(r->chunk, 1, sizeof(r->chunk), r->f);
			if (n == 0) {
				if (ferror(r->f))
					return -1;
				r->eof = 1;
				continue;
			}
			kbuf_view(&r->b, r->chunk, n);
		}
		any = 1;
		start = kbuf_ptr(&r->b);
		nl = memchr(start, '\n', kbuf_avail(&r->b));
		take = nl != NULL ? (size_t)(nl - start) : kbuf_avail(&r->b);
		if (!l->too_long && take < sizeof(l->p) - l->len) {
			memcpy(l->p + l->len, start, take);
			l->len += take;
			l->p[l->len] = '\0';
		} else {
			l->too_long = 1;
		}
		if (kbuf_get_ptr(&r->b, take + (nl != NULL ? 1 : 0), &p) !=
		    KEYD_OK)
			abort();     /* take never exceeds what is there */
		if (nl != NULL) {
			l->complete = 1;
			return 1;
		}
	}
}

static int
checkpoint_ok(EVP_PKEY *pk, const struct line *l)
{
	return !l->too_long && audit_checkpoint_verify(pk, l->p, l->len);
}

static void
parse_line(const struct line *l, struct parsed *p)
{
	json_object *o, *v;
	const char *ev, *x;

	memset(p, 0, sizeof(*p));
	if (!l->complete || l->too_long || l->len == 0)
		return;
	if ((o = audit_parse_line(l->p, l->len)) == NULL)
		return;
	if (json_object_object_get_ex(o, "seq", &v) &&
	    json_object_get_type(v) == json_type_int &&
	    (x = audit_json_str(o, "prev")) != NULL &&
	    strlen(x) == AUDIT_HASH_HEX) {
		p->ok = 1;
		memcpy(p->prev, x, AUDIT_HASH_HEX);
		p->seq = json_object_get_int64(v);
		if ((ev = audit_json_str(o, "event")) != NULL) {
			p->checkpoint = strcmp(ev, "checkpoint") == 0;
			p->start = strcmp(ev, "start") == 0;
		}
		p->stop_cp = p->checkpoint &&
		    (x = audit_json_str(o, "detail")) != NULL &&
		    strcmp(x, "stop") == 0;
		if (p->start) {
			if ((x = audit_json_str(o, "gap")) != NULL)
				snprintf(p->gap, sizeof(p->gap), "%s", x);
			if ((x = audit_json_str(o, "tampered")) != NULL)
				snprintf(p->tampered, sizeof(p->tampered), "%s",
				    x);
			p->cp_bad = (x = audit_json_str(o,
			    "checkpoint")) != NULL && strcmp(x, "bad") == 0;
			p->signed_ = audit_json_str(o, "sig") != NULL;
			if (json_object_object_get_ex(o, "resumed_seq", &v) &&
			    json_object_get_type(v) == json_type_int &&
			    (x = audit_json_str(o, "resumed_hash")) != NULL &&
			    strlen(x) == AUDIT_HASH_HEX) {
				p->resumed_seq = json_object_get_int64(v);
				p->has_resumed = 1;
				memcpy(p->resumed_hash, x, AUDIT_HASH_HEX + 1);
			}
		}
	}
	json_object_put(o);
}

/* next_line: the next line of the log, across its files, into l. Returns
 * 1 for a line, 0 after the last file, -1 after an I/O error (reported). */
static int __attribute__((warn_unused_result))
next_line(struct verify *v, struct line *l)
{
	for (;;) {
		const char *path;
		int r;

		if (v->cur >= v->nfiles)
			return 0;
		path = v->files[v->cur].path;
		if (v->rd.f == NULL) {
			if ((v->rd.f = fopen(path, "r")) == NULL) {
				fprintf(stderr, "keyd-audit: cannot read %s: "
				    "%s\n", path, strerror(errno));
				return -1;
			}
			v->rd.eof = 0;
			kbuf_view(&v->rd.b, v->rd.chunk, 0);
		}
		if ((r = reader_line(&v->rd, l)) < 0) {
			fprintf(stderr, "keyd-audit: cannot read %s: %s\n",
			    path, strerror(errno));
			return -1;
		}
		if (r > 0) {
			l->file = v->cur;
			l->n = ++v->files[v->cur].nlines;
			parse_line(l, &l->ps);
			return 1;
		}
		fclose(v->rd.f);
		v->rd.f = NULL;
		v->cur++;
	}
}

/* b == a + 1, without overflowing on a seq that was edited to the end of
 * the range. */
static int
seq_follows(long long a, long long b)
{
	return a != LLONG_MAX && b == a + 1;
}

static int
is_zero_hash(const char *h)
{
	for (size_t i = 0; i < AUDIT_HASH_HEX; i++)
		if (h[i] != '0')
			return 0;
	return 1;
}

/* Reports why cur's seq does not follow prev's. Returns 1. */
static int
seq_break(const struct verify *v, const struct line *prev,
    const struct line *cur)
{
	/* The difference of two long longs fits an unsigned long long. */
	int gap = cur->ps.seq > prev->ps.seq &&
	    (unsigned long long)cur->ps.seq -
	    (unsigned long long)prev->ps.seq > 1;

	if (prev->file == cur->file) {
		say(v, cur->file, "line %zu has seq %lld after %lld: lines were "
		    "%s\n", cur->n, cur->ps.seq, prev->ps.seq, gap ?
		    "deleted before it" : "duplicated, reordered or inserted");
	} else if (cur->ps.seq == 0 && is_zero_hash(cur->ps.prev)) {
		/* What keyd writes first when it finds no log to continue
		 * (resume_chain in audit.c): nothing links this file to the
		 * one before. */
		say(v, cur->file, "line %zu has seq 0 after %lld, the last seq "
		    "of %s: a new chain starts here (the files out of order, "
		    "or keyd started without the log to continue), so nothing "
		    "shows that no lines are missing between the two files\n",
		    cur->n, prev->ps.seq, v->files[prev->file].path);
	} else {
		say(v, cur->file, "line %zu has seq %lld after %lld, the last "
		    "seq of %s: %s\n", cur->n, cur->ps.seq, prev->ps.seq,
		    v->files[prev->file].path, gap ? "lines or a whole file "
		    "between the two files are missing" : "it does not "
		    "continue that file (the files out of order, or one given "
		    "twice? give them oldest first)");
	}
	return 1;
}

/* Reports that cur's prev is not the hash of prev. Returns 1. */
static int
chain_break(const struct verify *v, const struct line *prev,
    const struct line *cur, const struct line *next)
{
	char h[AUDIT_HASH_HEX + 1];
	int intact = 0;

	/* Which of the two changed? If this line is vouched for by the next
	 * one (or its own signature), the earlier one was edited. */
	if (next != NULL && next->ps.ok) {
		audit_hash_line(cur->p, cur->len, h);
		intact = strcmp(h, next->ps.prev) == 0;
	} else if (cur->ps.checkpoint) {
		intact = checkpoint_ok(v->pk, cur);
	}
	if (prev->file == cur->file) {
		if (intact)
			say(v, cur->file, "line %zu was edited (its hash does "
			    "not match line %zu's prev)\n", prev->n, cur->n);
		else
			say(v, cur->file, "line %zu does not chain to line %zu "
			    "(edited, or a line inserted between them)\n",
			    cur->n, prev->n);
	} else {
		if (intact)
			say(v, prev->file, "line %zu was edited (its hash does "
			    "not match the prev of line %zu of %s)\n", prev->n,
			    cur->n, v->files[cur->file].path);
		else
			say(v, cur->file, "line %zu does not chain to line %zu "
			    "of %s (edited, or lines inserted between the two "
			    "files)\n", cur->n, prev->n,
			    v->files[prev->file].path);
	}
	return 1;
}

/* Says where a range of lines lies: "lines A-B" in one file, or "FILE
 * line A to FILE line B". */
static void
say_range(const struct verify *v, size_t f1, size_t n1, size_t f2, size_t n2,
    long long s1, long long s2, const char *why)
{
	if (f1 == f2)
		say(v, f1, "lines %zu-%zu (seq %lld-%lld) are unverified: %s\n",
		    n1, n2, s1, s2, why);
	else
		printf("keyd-audit: %s line %zu to %s line %zu (seq %lld-%lld) "
		    "are unverified: %s\n", v->files[f1].path, n1,
		    v->files[f2].path, n2, s1, s2, why);
}

/* The run being read ends (a start record, or the end of the log): its
 * lines after its last checkpoint stay unverified. */
static void
end_run(struct verify *v, const struct line *last, const char *why)
{
	if (v->pend_count == 0)
		return;
	if (v->ranges < AUDIT_VERIFY_RANGES_SHOWN)
		say_range(v, v->pend_file, v->pend_n, last->file, last->n,
		    v->pend_seq, last->ps.seq, why);
	v->ranges++;
	for (size_t i = v->pend_file; i <= last->file; i++) {
		v->files[i].unverified += v->files[i].pending;
		v->files[i].pending = 0;
	}
	v->pend_count = 0;
}

/* Checks cur against the anchors: the one with its seq must be the same
 * line; one with a lower seq was skipped, so the log lacks it. Returns 0,
 * or 1 having reported it. */
static int
check_anchors(struct verify *v, const struct line *cur, int first)
{
	while (v->next_anchor < v->n_anchors) {
		const struct anchor *an = &v->anchors[v->next_anchor];

		if (an->seq > cur->ps.seq)
			return 0;
		if (an->seq < cur->ps.seq) {
			printf("keyd-audit: checkpoint seq %lld (line %zu of %s) "
			    "is not in the log: %s\n", an->seq, an->n,
			    v->anchors_path, first ? "it is older than the "
			    "log's first line (give every rotated file, oldest "
			    "first)" : "lines were cut from the log");
			return 1;
		}
		if (strcmp(an->hash, cur->hash) != 0) {
			say(v, cur->file, "line %zu (seq %lld) differs from the "
			    "copy of it in %s (line %zu): the log was "
			    "rewritten\n", cur->n, cur->ps.seq, v->anchors_path,
			    an->n);
			return 1;
		}
		v->next_anchor++;
	}
	return 0;
}

/* What a start record says about the log keyd found. Returns 0, or 1
 * having reported proof of tampering. */
static int
check_start(struct verify *v, const struct line *cur)
{
	const struct parsed *p = &cur->ps;

	if (p->gap[0] != '\0') {
		say(v, cur->file, "line %zu: keyd found a gap in the log when it "
		    "started: %s\n", cur->n, p->gap);
		return 1;
	}
	if (p->tampered[0] != '\0') {
		say(v, cur->file, "line %zu: keyd found the log tampered with "
		    "when it started: %s\n", cur->n, p->tampered);
		return 1;
	}
	if (p->cp_bad) {
		say(v, cur->file, "line %zu: when keyd started, the log's last "
		    "checkpoint did not verify with the audit key\n", cur->n);
		return 1;
	}
	if (p->has_resumed && v->have_cp && p->resumed_seq == v->cp_seq &&
	    strcmp(p->resumed_hash, v->cp_hash) != 0) {
		say(v, cur->file, "line %zu: keyd resumed from checkpoint seq "
		    "%lld, but the log's checkpoint with that seq is another "
		    "line: it was rewritten\n", cur->n, p->resumed_seq);
		return 1;
	}
	return 0;
}

/* check_line: checks cur against the line before it (prev, NULL for the
 * log's first) and the one after it (next, NULL for its last), and
 * accounts for it in its run. Returns 0, or 1 having reported the first
 * thing wrong. */
static int __attribute__((warn_unused_result))
check_line(struct verify *v, const struct line *prev, struct line *cur,
    const struct line *next)
{
	struct vfile *f = &v->files[cur->file];

	if (!cur->complete) {
		say(v, cur->file, "line %zu is cut off (no newline): the file "
		    "was truncated\n", cur->n);
		return 1;
	}
	if (cur->too_long) {
		say(v, cur->file, "line %zu is not a keyd audit line (longer "
		    "than %d bytes; edited?)\n", cur->n,
		    AUDIT_VERIFY_LINE_MAX - 1);
		return 1;
	}
	if (!cur->ps.ok) {
		say(v, cur->file, "line %zu is not a keyd audit line "
		    "(edited?)\n", cur->n);
		return 1;
	}
	if (prev != NULL && !seq_follows(prev->ps.seq, cur->ps.seq))
		return seq_break(v, prev, cur);
	if (prev != NULL && strcmp(prev->hash, cur->ps.prev) != 0)
		return chain_break(v, prev, cur, next);
	audit_hash_line(cur->p, cur->len, cur->hash);
	if (cur->ps.checkpoint && !checkpoint_ok(v->pk, cur)) {
		say(v, cur->file, "line %zu: checkpoint signature does not "
		    "verify with %s (edited checkpoint, or the wrong public "
		    "key)\n", cur->n, v->pubpath);
		return 1;
	}
	if (check_anchors(v, cur, prev == NULL))
		return 1;
	if (cur->ps.start && cur->ps.signed_ && !checkpoint_ok(v->pk, cur)) {
		say(v, cur->file, "line %zu: the start record's signature does "
		    "not verify with %s (a forged or edited start record, or "
		    "the wrong public key)\n", cur->n, v->pubpath);
		return 1;
	}
	if (v->after_stop && !(cur->ps.start && cur->ps.signed_)) {
		say(v, cur->file, "line %zu (seq %lld) follows keyd's clean stop "
		    "(the stop checkpoint before it) but is not a signed start "
		    "record: it was written while keyd was not running%s\n",
		    cur->n, cur->ps.seq, cur->ps.start ? " (or keyd could not "
		    "sign its start record: see its log)" : "");
		return 1;
	}
	if (cur->ps.start) {
		if (check_start(v, cur))
			return 1;
		/* The run before ended on a checkpoint that is not a stop's:
		 * it crashed, or the lines it wrote after it were removed. */
		if (prev != NULL && prev->ps.checkpoint && !prev->ps.stop_cp) {
			if (v->ranges < AUDIT_VERIFY_RANGES_SHOWN)
				say(v, cur->file, "line %zu: the run before it "
				    "ended without a clean stop, right after its "
				    "checkpoint (seq %lld): lines it wrote after "
				    "that checkpoint, if any, were removed\n",
				    cur->n, prev->ps.seq);
			v->ranges++;
			v->unclean_runs++;
		}
		end_run(v, prev, "keyd started again without a checkpoint "
		    "after them (it stopped without one: a crash, kill -9 or "
		    "power loss; or they were rewritten since)");
	}
	if (v->pend_count++ == 0) {
		v->pend_file = cur->file;
		v->pend_n = cur->n;
		v->pend_seq = cur->ps.seq;
	}
	f->pending++;
	if (cur->ps.checkpoint) {
		/* Every line of the run since its last checkpoint is proven,
		 * in earlier files too. */
		for (size_t i = v->pend_file; i <= cur->file; i++) {
			if (i < cur->file && v->files[i].pending > 0)
				v->files[i].later_cp = 1;
			v->files[i].verified += v->files[i].pending;
			v->files[i].pending = 0;
		}
		v->pend_count = 0;
		f->ncp++;
		f->last_cp = cur->n;
		v->have_cp = 1;
		v->cp_seq = cur->ps.seq;
		memcpy(v->cp_hash, cur->hash, sizeof(v->cp_hash));
	}
	v->after_stop = cur->ps.stop_cp;
	if (prev == NULL)
		v->first_seq = cur->ps.seq;
	v->last_seq = cur->ps.seq;
	return 0;
}

/* report: once every line chains, says what the checkpoints prove, file by
 * file. Returns the exit status. */
static int
report(const struct verify *v)
{
	size_t i, nonempty = 0;
	int ret = 0;

	if (v->ranges > AUDIT_VERIFY_RANGES_SHOWN)
		printf("keyd-audit: and %zu more unverified ranges\n",
		    v->ranges - AUDIT_VERIFY_RANGES_SHOWN);
	for (i = 0; i < v->nfiles; i++) {
		const struct vfile *f = &v->files[i];

		if (f->nlines == 0) {
			printf("keyd-audit: %s is empty\n", f->path);
			continue;
		}
		nonempty++;
		if (f->unverified == 0) {
			printf("keyd-audit: %s: all %zu lines verified (%zu "
			    "checkpoint%s%s)\n", f->path, f->nlines, f->ncp,
			    f->ncp == 1 ? "" : "s",
			    f->later_cp ? ", and one in a later file" : "");
		} else if (f->verified == 0) {
			printf("keyd-audit: %s: %zu lines chain correctly but no "
			    "checkpoint of their run signs them: all "
			    "unverified\n", f->path, f->nlines);
			ret = EXIT_TAIL;
		} else {
			printf("keyd-audit: %s: %zu of %zu lines verified (%zu "
			    "checkpoint%s), %zu unverified\n", f->path,
			    f->verified, f->nlines, f->ncp,
			    f->ncp == 1 ? "" : "s", f->unverified);
			ret = EXIT_TAIL;
		}
	}
	if (v->unclean_runs > 0) {
		printf("keyd-audit: %zu run%s of keyd ended without a clean "
		    "stop right after a checkpoint: what %s wrote after it "
		    "cannot be shown complete\n", v->unclean_runs,
		    v->unclean_runs == 1 ? "" : "s",
		    v->unclean_runs == 1 ? "it" : "they");
		ret = EXIT_TAIL;
	}
	/* An empty file in the middle is a rotation with nothing written
	 * before the next; the chain around it was checked. */
	if (nonempty == 0)
		return EXIT_TAIL;
	if (v->nfiles > 1)
		printf("keyd-audit: the %zu files chain into one log, seq %lld "
		    "to %lld\n", v->nfiles, v->first_seq, v->last_seq);
	if (v->n_anchors > 0)
		printf("keyd-audit: all %zu checkpoints in %s are in the log\n",
		    v->n_anchors, v->anchors_path);
	return ret;
}

static int
anchor_cmp(const void *x, const void *y)
{
	const struct anchor *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Reads the anchors file: keyd audit lines, each possibly after a prefix
 * (syslog's), taken from the first '{' to the end of the line. Returns 0,
 * or -1 having said why. */
static int
load_anchors(struct verify *v, const char *path)
{
	char buf[AUDIT_VERIFY_LINE_MAX + 512];
	size_t n = 0, cap = 0;
	FILE *f;
	int ret = -1;

	v->anchors_path = path;
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "keyd-audit: cannot read %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	while (fgets(buf, sizeof(buf), f) != NULL) {
		size_t len = strlen(buf);
		char *j;
		struct line l;

		n++;
		if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
			fprintf(stderr, "keyd-audit: %s: line %zu is too long "
			    "for a keyd audit line\n", path, n);
			goto out;
		}
		while (len > 0 && (buf[len - 1] == '\n' ||
		    buf[len - 1] == '\r' || buf[len - 1] == ' '))
			buf[--len] = '\0';
		if (len == 0)
			continue;
		if ((j = strchr(buf, '{')) == NULL ||
		    strlen(j) >= sizeof(l.p)) {
			fprintf(stderr, "keyd-audit: %s: line %zu holds no keyd "
			    "audit line\n", path, n);
			goto out;
		}
		memset(&l, 0, sizeof(l));
		l.len = strlen(j);
		memcpy(l.p, j, l.len + 1);
		l.complete = 1;
		parse_line(&l, &l.ps);
		/* Anyone may write to syslog: only checkpoints that the audit
		 * key signed anchor the log. */
		if (!l.ps.ok || !l.ps.checkpoint || !checkpoint_ok(v->pk, &l)) {
			fprintf(stderr, "keyd-audit: %s: line %zu is not a "
			    "checkpoint signed by the audit key: ignored\n",
			    path, n);
			continue;
		}
		if (v->n_anchors == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct anchor *na = reallocarray(v->anchors, nc,
			    sizeof(*na));

			if (na == NULL) {
				fprintf(stderr, "keyd-audit: out of memory\n");
				goto out;
			}
			v->anchors = na;
			cap = nc;
		}
		v->anchors[v->n_anchors].seq = l.ps.seq;
		v->anchors[v->n_anchors].n = n;
		audit_hash_line(l.p, l.len, v->anchors[v->n_anchors].hash);
		v->n_anchors++;
	}
	if (ferror(f)) {
		fprintf(stderr, "keyd-audit: cannot read %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	if (v->n_anchors == 0) {
		fprintf(stderr, "keyd-audit: %s holds no signed checkpoint "
		    "lines\n", path);
		goto out;
	}
	qsort(v->anchors, v->n_anchors, sizeof(*v->anchors), anchor_cmp);
	ret = 0;
out:
	fclose(f);
	return ret;
}

int
main(int argc, char **argv)
{
	const char *pubpath = NULL, *anchors = NULL;
	struct verify *v = NULL;
	struct line *prev = NULL, *cur, *next, *spare;
	FILE *f = NULL;
	EVP_PKEY *pk = NULL;
	int ret = 2, r;

	if (argc == 2 && (!strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("keyd-audit %s\n", KEYD_VERSION);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "verify") != 0) {
		usage(stderr);
		return 2;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->files = calloc((size_t)argc, sizeof(*v->files))) == NULL) {
		fprintf(stderr, "keyd-audit: out of memory\n");
		goto out;
	}
	for (int a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			usage(stdout);
			ret = 0;
			goto out;
		} else if (!strcmp(argv[a], "--pubkey") && a + 1 < argc) {
			pubpath = argv[++a];
		} else if (!strcmp(argv[a], "--anchors") && a + 1 < argc) {
			anchors = argv[++a];
		} else if (argv[a][0] != '-' || argv[a][1] == '\0') {
			v->files[v->nfiles++].path = argv[a];
		} else {
			fprintf(stderr, "keyd-audit: %s: unknown option, or its "
			    "value is missing\n", argv[a]);
			usage(stderr);
			goto out;
		}
	}
	if (v->nfiles == 0) {
		fprintf(stderr, "keyd-audit: verify needs the log's FILE\n");
		usage(stderr);
		goto out;
	}
	if (pubpath == NULL) {
		fprintf(stderr, "keyd-audit: --pubkey is needed: the audit "
		    "key's public key (PEM), which verifies the checkpoints\n");
		goto out;
	}
	v->pubpath = pubpath;

	errno = 0;
	if ((f = fopen(pubpath, "r")) == NULL ||
	    (pk = PEM_read_PUBKEY(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "keyd-audit: cannot read a PEM public key from "
		    "%s%s%s\n", pubpath, errno ? ": " : "",
		    errno ? strerror(errno) : "");
		goto out;
	}
	fclose(f);
	f = NULL;
	v->pk = pk;
	if (anchors != NULL && load_anchors(v, anchors) != 0)
		goto out;
	/* A name mistyped among many files is said before hours of
	 * reading the others. */
	for (size_t i = 0; i < v->nfiles; i++) {
		if ((f = fopen(v->files[i].path, "r")) == NULL) {
			fprintf(stderr, "keyd-audit: cannot read %s: %s\n",
			    v->files[i].path, strerror(errno));
			goto out;
		}
		fclose(f);
		f = NULL;
	}

	cur = &v->slots[0];
	next = &v->slots[1];
	spare = &v->slots[2];
	if ((r = next_line(v, cur)) < 0)
		goto out;
	if (r == 0)
		cur = NULL;
	while (cur != NULL) {
		struct line *freed;

		if ((r = next_line(v, next)) < 0)
			goto out;
		if (check_line(v, prev, cur, r > 0 ? next : NULL) != 0) {
			ret = 1;
			goto out;
		}
		freed = prev != NULL ? prev : spare;
		prev = cur;
		cur = r > 0 ? next : NULL;
		next = freed;
	}
	if (prev != NULL)
		end_run(v, prev, "they follow the last checkpoint: an "
		    "unverified tail (a log still being written, or keyd "
		    "stopped without a final checkpoint, or lines were cut or "
		    "rewritten)");
	if (v->next_anchor < v->n_anchors) {
		const struct anchor *an = &v->anchors[v->next_anchor];

		printf("keyd-audit: checkpoint seq %lld (line %zu of %s) is "
		    "not in the log, which ends at seq %lld: lines were cut "
		    "from its end\n", an->seq, an->n, v->anchors_path,
		    prev != NULL ? prev->ps.seq : -1LL);
		ret = 1;
		goto out;
	}
	ret = report(v);
out:
	if (f != NULL)
		fclose(f);
	if (v != NULL && v->rd.f != NULL)
		fclose(v->rd.f);
	EVP_PKEY_free(pk);
	if (v != NULL) {
		free(v->files);
		free(v->anchors);
	}
	free(v);
	return ret;
}
