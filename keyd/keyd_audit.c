/*
 * keyd-audit: checks an audit log written by keyd.
 *
 *   keyd-audit verify FILE --pubkey PEM
 *
 * Every line must carry the SHA-256 of the line before it ("prev") and
 * the next sequence number; every checkpoint line's signature must verify
 * with the audit key's public key. Lines after the last checkpoint cannot
 * be proven (whoever can write the file could have cut or rewritten them)
 * and are reported as an unverified tail.
 *
 * Exit status: 0 every line verified; 1 the log does not verify (the first
 * bad line is named); 2 usage or I/O error; 3 the chain is intact but lines
 * after the last checkpoint are unverified.
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "kbuf.h"
#include "keyd_err.h"

#define AUDIT_VERIFY_MAX_FILE (1024L * 1024 * 1024)
#define AUDIT_VERIFY_LINE_MAX 4096
#define AUDIT_VERIFY_SIG_MAX 2048
#define EXIT_TAIL 3

struct line {
	const char *p;
	size_t len;          /* without the newline */
	int complete;        /* ended with a newline */
};

static int
usage(void)
{
	fprintf(stderr, "usage: keyd-audit verify FILE --pubkey PEM\n");
	return 2;
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

struct parsed {
	int ok;              /* valid JSON with seq and prev */
	long long seq;
	char prev[AUDIT_HASH_HEX + 1];
	int checkpoint;
};

static void
parse_line(const struct line *l, struct parsed *p)
{
	char buf[AUDIT_VERIFY_LINE_MAX];
	json_object *o, *v;

	memset(p, 0, sizeof(*p));
	if (!l->complete || l->len == 0 || l->len >= sizeof(buf))
		return;
	memcpy(buf, l->p, l->len);
	buf[l->len] = '\0';
	if ((o = json_tokener_parse(buf)) == NULL)
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

int
main(int argc, char **argv)
{
	const char *file = NULL, *pubpath = NULL;
	FILE *f = NULL;
	EVP_PKEY *pk = NULL;
	char *data = NULL;
	struct line *lines = NULL;
	struct parsed *ps = NULL;
	size_t nlines = 0, cap = 0, i, last_cp = 0, ncp = 0;
	long size;
	int ret = 2, have_cp = 0;

	if (argc < 2 || strcmp(argv[1], "verify") != 0)
		return usage();
	for (int a = 2; a < argc; a++) {
		if (!strcmp(argv[a], "--pubkey") && a + 1 < argc)
			pubpath = argv[++a];
		else if (argv[a][0] != '-' && file == NULL)
			file = argv[a];
		else
			return usage();
	}
	if (file == NULL || pubpath == NULL)
		return usage();

	if ((f = fopen(pubpath, "r")) == NULL ||
	    (pk = PEM_read_PUBKEY(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "keyd-audit: cannot read a PEM public key from "
		    "%s%s%s\n", pubpath, errno ? ": " : "",
		    errno ? strerror(errno) : "");
		goto out;
	}
	fclose(f);
	if ((f = fopen(file, "r")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "keyd-audit: cannot read %s: %s\n", file,
		    strerror(errno));
		goto out;
	}
	if (size > AUDIT_VERIFY_MAX_FILE) {
		fprintf(stderr, "keyd-audit: %s is larger than %ld bytes\n",
		    file, AUDIT_VERIFY_MAX_FILE);
		goto out;
	}
	if ((data = malloc((size_t)size + 1)) == NULL ||
	    fread(data, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "keyd-audit: cannot read %s\n", file);
		goto out;
	}
	/* Split into lines through the bounded reader. */
	{
		struct kbuf b;
		const uint8_t *p;

		kbuf_view(&b, data, (size_t)size);
		while (kbuf_avail(&b) > 0) {
			const uint8_t *start = kbuf_ptr(&b);
			const uint8_t *nl = memchr(start, '\n', kbuf_avail(&b));
			size_t len = nl ? (size_t)(nl - start) : kbuf_avail(&b);

			if (nlines == cap) {
				struct line *nw;

				cap = cap ? cap * 2 : 1024;
				if ((nw = realloc(lines, cap * sizeof(*lines))) ==
				    NULL)
					goto out;
				lines = nw;
			}
			lines[nlines].p = (const char *)start;
			lines[nlines].len = len;
			lines[nlines].complete = nl != NULL;
			nlines++;
			if (kbuf_get_ptr(&b, len + (nl ? 1 : 0), &p) != KEYD_OK)
				goto out;
		}
	}
	if (nlines == 0) {
		printf("keyd-audit: %s is empty\n", file);
		ret = EXIT_TAIL;
		goto out;
	}
	if ((ps = calloc(nlines, sizeof(*ps))) == NULL)
		goto out;
	for (i = 0; i < nlines; i++)
		parse_line(&lines[i], &ps[i]);

	ret = 1;
	for (i = 0; i < nlines; i++) {
		char h[AUDIT_HASH_HEX + 1];
		size_t n = i + 1;

		if (!lines[i].complete) {
			printf("keyd-audit: line %zu is cut off (no newline): "
			    "the file was truncated\n", n);
			goto out;
		}
		if (!ps[i].ok) {
			printf("keyd-audit: line %zu is not a keyd audit line "
			    "(edited?)\n", n);
			goto out;
		}
		if (i > 0 && ps[i].seq != ps[i - 1].seq + 1) {
			printf("keyd-audit: line %zu has seq %lld after %lld: "
			    "lines were %s\n", n, ps[i].seq, ps[i - 1].seq,
			    ps[i].seq > ps[i - 1].seq + 1 ? "deleted before it" :
			    "duplicated, reordered or inserted");
			goto out;
		}
		if (i > 0) {
			audit_hash_line(lines[i - 1].p, lines[i - 1].len, h);
			if (strcmp(h, ps[i].prev) != 0) {
				/* Which of the two changed? If this line is
				 * vouched for by the next one (or its own
				 * signature), the earlier one was edited. */
				int intact = 0;

				if (i + 1 < nlines && ps[i + 1].ok) {
					audit_hash_line(lines[i].p, lines[i].len,
					    h);
					intact = strcmp(h, ps[i + 1].prev) == 0;
				} else if (ps[i].checkpoint) {
					intact = checkpoint_ok(pk, &lines[i]);
				}
				if (intact)
					printf("keyd-audit: line %zu was edited "
					    "(its hash does not match line "
					    "%zu's prev)\n", n - 1, n);
				else
					printf("keyd-audit: line %zu does not "
					    "chain to line %zu (edited, or a "
					    "line inserted between them)\n", n,
					    n - 1);
				goto out;
			}
		}
		if (ps[i].checkpoint) {
			if (!checkpoint_ok(pk, &lines[i])) {
				printf("keyd-audit: line %zu: checkpoint "
				    "signature does not verify with %s (edited "
				    "checkpoint, or the wrong public key)\n", n,
				    pubpath);
				goto out;
			}
			have_cp = 1;
			last_cp = i;
			ncp++;
		}
	}
	if (!have_cp) {
		printf("keyd-audit: %s: %zu lines chain correctly but no "
		    "checkpoint signs them: all unverified\n", file, nlines);
		ret = EXIT_TAIL;
	} else if (last_cp + 1 < nlines) {
		printf("keyd-audit: %s: lines 1-%zu verified (%zu "
		    "checkpoints); lines %zu-%zu after the last checkpoint are "
		    "an unverified tail\n", file, last_cp + 1, ncp, last_cp + 2,
		    nlines);
		ret = EXIT_TAIL;
	} else {
		printf("keyd-audit: %s: all %zu lines verified (%zu "
		    "checkpoints)\n", file, nlines, ncp);
		ret = 0;
	}
out:
	if (f != NULL)
		fclose(f);
	EVP_PKEY_free(pk);
	free(data);
	free(lines);
	free(ps);
	return ret;
}
