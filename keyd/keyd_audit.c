/*
 * keyd-audit: checks an audit log written by keyd.
 *
 *   keyd-audit verify FILE... --pubkey PEM
 *
 * Every line must carry the SHA-256 of the line before it ("prev") and
 * the next sequence number; every checkpoint line's signature must verify
 * with the audit key's public key. Lines after the last checkpoint cannot
 * be proven (whoever can write the file could have cut or rewritten them)
 * and are reported as an unverified tail.
 *
 * Several files are the rotated parts of one log, oldest first. keyd
 * carries seq and prev across a rotation (audit_rotate), so each file must
 * continue the one before it: its first line has the next seq, and the
 * hash of the previous file's last line as its prev. A file left out or
 * files out of order are a break. A checkpoint proves every line before
 * it through the chain, in earlier files too: an old file whose rotation
 * checkpoint could not be signed is proven by the next file's.
 *
 * The files are read a line at a time, and only three lines are kept (the
 * one checked and its neighbours, which tell which of two lines that do
 * not chain was edited), so memory does not grow with the log: a keyd
 * serving 40 requests/s writes more than 1 GiB a day.
 *
 * Exit status: 0 every line verified; 1 the log does not verify (the first
 * bad line is named); 2 usage or I/O error; 3 the chain is intact but lines
 * after the last checkpoint are unverified.
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

struct parsed {
	int ok;              /* valid JSON with seq and prev */
	long long seq;
	char prev[AUDIT_HASH_HEX + 1];
	int checkpoint;
};

struct line {
	char p[AUDIT_VERIFY_LINE_MAX]; /* the bytes, NUL-terminated */
	size_t len;          /* without the newline */
	int complete;        /* ended with a newline */
	int too_long;        /* len reached AUDIT_VERIFY_LINE_MAX: p is cut */
	size_t file;         /* index of its file */
	size_t n;            /* its number in its file, from 1 */
	struct parsed ps;
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
};

struct verify {
	EVP_PKEY *pk;
	const char *pubpath;
	struct vfile *files;
	size_t nfiles;
	size_t cur;          /* the file being read */
	struct reader rd;
	struct line slots[3];
	int have_cp;
	size_t cp_file;      /* the file with the last checkpoint */
	long long first_seq, last_seq;
};

static int
usage(void)
{
	fprintf(stderr, "usage: keyd-audit verify FILE... --pubkey PEM\n"
	    "  (several FILEs: the rotated files of one log, oldest first)\n");
	return 2;
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
verify_sig(EVP_PKEY *pk, const char *msg, size_t len, const uint8_t *sig,
    size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok, id = EVP_PKEY_get_base_id(pk);

	if (ctx == NULL)
		return 0;
	/* Ed25519 signs the text itself; ECDSA and RSA sign its SHA-256. */
	ok = EVP_DigestVerifyInit(ctx, NULL, id == EVP_PKEY_ED25519 ? NULL :
	    EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg,
	    len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Splits the checkpoint line into the signed text and the signature. */
static int
checkpoint_ok(EVP_PKEY *pk, const struct line *l)
{
	static const char tag[] = ",\"sig\":\"";
	char msg[AUDIT_VERIFY_LINE_MAX];
	uint8_t sig[AUDIT_VERIFY_SIG_MAX];
	const char *s = NULL, *q;
	size_t b64len, mlen;
	int n;

	if (l->too_long)
		return 0;
	for (q = l->p; (q = memmem(q, l->len - (size_t)(q - l->p), tag,
	    sizeof(tag) - 1)) != NULL; q++)
		s = q;
	if (s == NULL || l->len < 2 || l->p[l->len - 1] != '}' ||
	    l->p[l->len - 2] != '"')
		return 0;
	mlen = (size_t)(s - l->p);
	b64len = l->len - 2 - (mlen + sizeof(tag) - 1);
	if (mlen + 1 > sizeof(msg) || b64len == 0 || b64len % 4 != 0 ||
	    b64len / 4 * 3 > sizeof(sig))
		return 0;
	memcpy(msg, l->p, mlen);
	msg[mlen++] = '}';
	n = EVP_DecodeBlock(sig, (const unsigned char *)s + sizeof(tag) - 1,
	    (int)b64len);
	if (n < 0)
		return 0;
	/* EVP_DecodeBlock counts '=' padding as zero bytes. */
	if (s[sizeof(tag) - 1 + b64len - 1] == '=')
		n--;
	if (s[sizeof(tag) - 1 + b64len - 2] == '=')
		n--;
	return verify_sig(pk, msg, mlen, sig, (size_t)n);
}

static void
parse_line(const struct line *l, struct parsed *p)
{
	json_object *o, *v;

	memset(p, 0, sizeof(*p));
	if (!l->complete || l->too_long || l->len == 0)
		return;
	if ((o = json_tokener_parse(l->p)) == NULL)
		return;
	if (json_object_get_type(o) == json_type_object &&
	    json_object_object_get_ex(o, "seq", &v) &&
	    json_object_get_type(v) == json_type_int &&
	    json_object_object_get_ex(o, "prev", &v) &&
	    json_object_get_type(v) == json_type_string &&
	    json_object_get_string_len(v) == AUDIT_HASH_HEX) {
		p->ok = 1;
		memcpy(p->prev, json_object_get_string(v), AUDIT_HASH_HEX);
		json_object_object_get_ex(o, "seq", &v);
		p->seq = json_object_get_int64(v);
		p->checkpoint = json_object_object_get_ex(o, "event", &v) &&
		    json_object_get_type(v) == json_type_string &&
		    strcmp(json_object_get_string(v), "checkpoint") == 0;
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

/* check_line: checks cur against the line before it (prev, NULL for the
 * log's first) and the one after it (next, NULL for its last). Returns 0,
 * or 1 having reported the first thing wrong. */
static int __attribute__((warn_unused_result))
check_line(struct verify *v, const struct line *prev, const struct line *cur,
    const struct line *next)
{
	char h[AUDIT_HASH_HEX + 1];
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
	if (prev != NULL) {
		audit_hash_line(prev->p, prev->len, h);
		if (strcmp(h, cur->ps.prev) != 0)
			return chain_break(v, prev, cur, next);
	}
	if (cur->ps.checkpoint) {
		if (!checkpoint_ok(v->pk, cur)) {
			say(v, cur->file, "line %zu: checkpoint signature does "
			    "not verify with %s (edited checkpoint, or the wrong "
			    "public key)\n", cur->n, v->pubpath);
			return 1;
		}
		f->ncp++;
		f->last_cp = cur->n;
		v->have_cp = 1;
		v->cp_file = cur->file;
	}
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

	for (i = 0; i < v->nfiles; i++) {
		const struct vfile *f = &v->files[i];

		if (f->nlines == 0) {
			printf("keyd-audit: %s is empty\n", f->path);
			continue;
		}
		nonempty++;
		if (!v->have_cp || i > v->cp_file) {
			printf("keyd-audit: %s: %zu lines chain correctly but no "
			    "checkpoint signs them: all unverified\n", f->path,
			    f->nlines);
			ret = EXIT_TAIL;
		} else if (i == v->cp_file && f->last_cp < f->nlines) {
			printf("keyd-audit: %s: lines 1-%zu verified (%zu "
			    "checkpoints); lines %zu-%zu after the last "
			    "checkpoint are an unverified tail\n", f->path,
			    f->last_cp, f->ncp, f->last_cp + 1, f->nlines);
			ret = EXIT_TAIL;
		} else {
			/* Before the file with the last checkpoint, lines
			 * after a file's own last checkpoint are proven by a
			 * later file's. */
			printf("keyd-audit: %s: all %zu lines verified (%zu "
			    "checkpoints%s)\n", f->path, f->nlines, f->ncp,
			    f->last_cp < f->nlines ? ", and one in a later file" :
			    "");
		}
	}
	/* An empty file in the middle is a rotation with nothing written
	 * before the next; the chain around it was checked. */
	if (nonempty == 0)
		return EXIT_TAIL;
	if (v->nfiles > 1)
		printf("keyd-audit: the %zu files chain into one log, seq %lld "
		    "to %lld\n", v->nfiles, v->first_seq, v->last_seq);
	return ret;
}

int
main(int argc, char **argv)
{
	const char *pubpath = NULL;
	struct verify *v = NULL;
	struct line *prev = NULL, *cur, *next, *spare;
	FILE *f = NULL;
	EVP_PKEY *pk = NULL;
	int ret = 2, r;

	if (argc < 2 || strcmp(argv[1], "verify") != 0)
		return usage();
	if ((v = calloc(1, sizeof(*v))) == NULL ||
	    (v->files = calloc((size_t)argc, sizeof(*v->files))) == NULL) {
		fprintf(stderr, "keyd-audit: out of memory\n");
		goto out;
	}
	for (int a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--pubkey") && a + 1 < argc)
			pubpath = argv[++a];
		else if (argv[a][0] != '-')
			v->files[v->nfiles++].path = argv[a];
		else {
			ret = usage();
			goto out;
		}
	}
	if (v->nfiles == 0 || pubpath == NULL) {
		ret = usage();
		goto out;
	}
	v->pubpath = pubpath;

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
	ret = report(v);
out:
	if (f != NULL)
		fclose(f);
	if (v != NULL && v->rd.f != NULL)
		fclose(v->rd.f);
	EVP_PKEY_free(pk);
	if (v != NULL)
		free(v->files);
	free(v);
	return ret;
}
