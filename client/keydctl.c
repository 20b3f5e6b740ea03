/*
 * keydctl.c: the command-line client of keyd, for scripts and operators.
 * It speaks to keyd through libkeyd (linked statically from keydclient)
 * and uses OpenSSL only to hash messages and to write PEM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keyd.h"
#include "passport.h"
#include "secmem.h"
#include "strutil.h"

/* The largest message keydctl reads to hash; hash bigger ones yourself
 * (openssl dgst -binary) and pass --digest. */
#define KEYDCTL_MAX_MESSAGE (1024u * 1024u)
/* Longest line of detail shown, and longest key name shown in full. */
#define KEYDCTL_MSG_MAX 1024u
#define KEYDCTL_NAME_MAX 260u
/* Positional words: the command and at most three more (srtp open NAME
 * BLOB). */
#define KEYDCTL_MAX_WORDS 4
/* Exit status for a failed operation, and for a usage error. */
#define KEYDCTL_EXIT_FAIL 1
#define KEYDCTL_EXIT_USAGE 2

/* Options, each marked with the commands that take it. */
enum {
	OPT_SOCKET = 1u << 0,
	OPT_IN = 1u << 1,
	OPT_OUT = 1u << 2,
	OPT_ALG = 1u << 3,
	OPT_DIGEST = 1u << 4,
	OPT_PROMETHEUS = 1u << 5,
	OPT_SUITE = 1u << 6,
	OPT_CONTEXT = 1u << 7,
	OPT_CERT = 1u << 8,
	OPT_MAX_AGE = 1u << 9,
	OPT_ATTEST = 1u << 10,
	OPT_ORIG = 1u << 11,
	OPT_DEST = 1u << 12,
	OPT_ORIGID = 1u << 13,
	OPT_DIV = 1u << 14,
	OPT_JWS = 1u << 15,
};

/* passport: the most --dest options (keyd takes no more). */
#define KEYDCTL_MAX_DEST KEYD_PASSPORT_MAX_DEST

struct ctl_opts {
	const char *socket;
	const char *in;
	const char *out;
	const char *alg;
	const char *suite;      /* srtp new -S */
	const char *context;    /* srtp -C */
	const char *cert;       /* passport verify --cert */
	const char *max_age;    /* passport verify --max-age */
	const char *attest;     /* passport --attest */
	const char *orig;       /* passport --orig */
	const char *origid;     /* passport --origid */
	const char *div;        /* passport --div */
	const char *dest[KEYDCTL_MAX_DEST]; /* passport --dest, in order */
	size_t n_dest;
	unsigned given;         /* OPT_* seen */
	const char *words[KEYDCTL_MAX_WORDS];
	int nwords;
};

struct ctl_alg {
	const char *name;
	int is_sign;
	int alg;
	const EVP_MD *(*md)(void); /* the hash keydctl applies; NULL: none */
};

static const struct ctl_alg ctl_algs[] = {
	{ "ecdsa-sha256", 1, KEYD_ECDSA_SHA256, EVP_sha256 },
	{ "ecdsa-sha384", 1, KEYD_ECDSA_SHA384, EVP_sha384 },
	{ "ecdsa-sha512", 1, KEYD_ECDSA_SHA512, EVP_sha512 },
	{ "rsa-pkcs1-sha256", 1, KEYD_RSA_PKCS1_SHA256, EVP_sha256 },
	{ "rsa-pkcs1-sha384", 1, KEYD_RSA_PKCS1_SHA384, EVP_sha384 },
	{ "rsa-pkcs1-sha512", 1, KEYD_RSA_PKCS1_SHA512, EVP_sha512 },
	{ "rsa-pss-sha256", 1, KEYD_RSA_PSS_SHA256, EVP_sha256 },
	{ "rsa-pss-sha384", 1, KEYD_RSA_PSS_SHA384, EVP_sha384 },
	{ "rsa-pss-sha512", 1, KEYD_RSA_PSS_SHA512, EVP_sha512 },
	{ "ed25519", 1, KEYD_ED25519, NULL },
	{ "rsa-oaep-sha1", 0, KEYD_RSA_OAEP_SHA1, NULL },
	{ "rsa-oaep-sha256", 0, KEYD_RSA_OAEP_SHA256, NULL },
	{ "rsa-oaep-sha384", 0, KEYD_RSA_OAEP_SHA384, NULL },
	{ "rsa-oaep-sha512", 0, KEYD_RSA_OAEP_SHA512, NULL },
	{ "rsa-pkcs1", 0, KEYD_RSA_PKCS1, NULL },
};

static const char ctl_usage[] =
"usage: keydctl [-s SOCKET] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  list                             the keys this client may use\n"
"  pubkey NAME [-o FILE]            the public key of NAME, as PEM\n"
"  sign NAME -a ALG [-i FILE] [-o FILE] [--digest]\n"
"                                   sign the input (a message keydctl\n"
"                                   hashes, or with --digest the digest)\n"
"  decrypt NAME -a ALG [-i FILE] [-o FILE]\n"
"                                   decrypt an RSA-OAEP (or, for keys\n"
"                                   that allow it, PKCS#1 v1.5) ciphertext\n"
"  status [--prometheus]            keyd's tokens, keys and counters\n"
"  reload                           keyd reads its configuration again:\n"
"                                   prints what changed, or why keyd\n"
"                                   refused it (exit status 1)\n"
"  srtp new NAME -S SUITE [-C CONTEXT]\n"
"                                   a new SRTP master key: prints\n"
"                                   inline:BASE64 (SDES key-params) and\n"
"                                   blob:BASE64 (store it), one a line\n"
"  srtp open NAME BLOB [-C CONTEXT] the key in a stored blob (BASE64, with\n"
"                                   or without blob:): prints inline:BASE64\n"
"  passport NAME --attest A|B|C --orig TN --dest TN [--dest TN ...]\n"
"          [--origid UUID] [--jws]\n"
"                                   a STIR/SHAKEN PASSporT signed by keyd:\n"
"                                   prints the SIP Identity header value\n"
"                                   (with --jws only the JWS), one line\n"
"  passport NAME --div TN --orig TN --dest TN [--dest TN ...] [--jws]\n"
"                                   a diversion PASSporT (ppt=div)\n"
"  passport verify --cert CERT.pem [--max-age S] [IDENTITY-OR-JWS]\n"
"                                   check a PASSporT (JWS or SIP Identity\n"
"                                   header value; default: standard input)\n"
"                                   against a certificate, offline; prints\n"
"                                   its claims; needs no keyd\n"
"\n"
"options (before or after the command):\n"
"  -s, --socket SOCKET   keyd's socket (default: $KEYD_SOCKET, else\n"
"                        " KEYD_DEFAULT_SOCKET ")\n"
"  -a, --alg ALG         ecdsa-sha256, ecdsa-sha384, ecdsa-sha512,\n"
"                        rsa-pkcs1-sha256, rsa-pkcs1-sha384,\n"
"                        rsa-pkcs1-sha512, rsa-pss-sha256, rsa-pss-sha384,\n"
"                        rsa-pss-sha512, ed25519 (sign);\n"
"                        rsa-oaep-sha1, rsa-oaep-sha256, rsa-oaep-sha384,\n"
"                        rsa-oaep-sha512, rsa-pkcs1 (decrypt; rsa-pkcs1 never\n"
"                        fails on a bad padding, see pkcs1_decrypt)\n"
"  -i, --in FILE         input (default: standard input); a message is at\n"
"                        most 1 MiB, an Ed25519 message 16384 bytes\n"
"  -o, --out FILE        output (default: standard output); decrypt\n"
"                        creates it mode 0600, the others 0644\n"
"      --digest          the input is already the digest (not Ed25519)\n"
"      --prometheus      status in Prometheus text format\n"
"  -S, --suite SUITE     AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32,\n"
"                        AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32,\n"
"                        AEAD_AES_128_GCM, AEAD_AES_256_GCM\n"
"  -C, --context TEXT    bound into the blob (a Call-ID, a trunk id);\n"
"                        srtp open needs the same\n"
"      --cert FILE       passport verify: the signer's certificate (PEM)\n"
"      --max-age S       passport verify: the oldest iat taken, in seconds\n"
"                        (default 60; an iat over 5 s ahead is refused too)\n"
"      --attest A|B|C    passport: the attestation (RFC 8588)\n"
"      --orig TN         passport: the originating TN (E.164)\n"
"      --dest TN         passport: a destination TN; up to 16 times\n"
"      --origid UUID     passport: the origid (default: a random one)\n"
"      --div TN          passport: a div PASSporT, diverted from TN\n"
"      --jws             passport: print the JWS, not the Identity header\n"
"  -h, --help            this text\n"
"      --version         print the version and exit\n"
"\n"
"Signatures come out as openssl dgst -verify takes them: DER for ECDSA,\n"
"raw for RSA, 64 raw bytes for Ed25519 (openssl pkeyutl -verify -rawin).\n";

/* Prints one line: "keydctl: CONTEXT: WHAT[: DETAIL]". */
static void
ctl_error(const char *ctx, const char *what, const char *detail)
{
	char d[KEYDCTL_MSG_MAX], c[KEYDCTL_MSG_MAX];

	strutil_printable(c, sizeof(c), ctx);
	strutil_printable(d, sizeof(d), detail);
	if (d[0] != '\0' && strcmp(d, what) != 0)
		fprintf(stderr, "keydctl: %s: %s: %s\n", c, what, d);
	else
		fprintf(stderr, "keydctl: %s: %s\n", c, what);
}

/* A failed libkeyd call: its code's name and the connection's detail. */
static int
ctl_keyd_error(const char *ctx, int r, const struct keyd_client *c)
{
	ctl_error(ctx, keyd_strerror(r), keyd_errmsg(c));
	return KEYDCTL_EXIT_FAIL;
}

static int ctl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A usage error: one line, made printable as a whole. */
static int
ctl_usage_error(const char *fmt, ...)
{
	char line[KEYDCTL_MSG_MAX], safe[KEYDCTL_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	strutil_printable(safe, sizeof(safe), line);
	fprintf(stderr, "keydctl: %s; run keydctl --help\n", safe);
	return KEYDCTL_EXIT_USAGE;
}

static const struct ctl_alg *
ctl_alg_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(ctl_algs) / sizeof(ctl_algs[0]); i++)
		if (strcmp(ctl_algs[i].name, name) == 0)
			return &ctl_algs[i];
	return NULL;
}

/*
 * Reads all of path ("-" or NULL: standard input), at most max bytes,
 * into a new buffer *buf (*len bytes) that the caller frees with
 * secmem_free(*buf, *cap) (it may be secret: locked and wiped).
 */
static int
ctl_read_input(const char *ctx, const char *path, size_t max, uint8_t **buf,
    size_t *len, size_t *cap)
{
	int use_stdin = path == NULL || strcmp(path, "-") == 0;
	const char *name = use_stdin ? "standard input" : path;
	char msg[KEYDCTL_MSG_MAX];
	uint8_t *b = NULL;
	size_t got = 0;
	ssize_t n;
	int fd = STDIN_FILENO, r = KEYDCTL_EXIT_FAIL;

	*buf = NULL;
	*len = *cap = 0;
	if (!use_stdin && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(msg, sizeof(msg), "cannot open %s: %s", path,
		    strerror(errno));
		ctl_error(ctx, "bad input", msg);
		goto out;
	}
	/* One byte more than allowed tells "exactly max" from "too long". */
	if ((b = secmem_alloc(max + 1)) == NULL) {
		ctl_error(ctx, "out of memory", NULL);
		goto out;
	}
	while (got <= max) {
		n = read(fd, b + got, max + 1 - got);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "cannot read %s: %s", name,
			    strerror(errno));
			ctl_error(ctx, "bad input", msg);
			goto out;
		}
		got += (size_t)n;
	}
	if (got > max) {
		snprintf(msg, sizeof(msg), "%s holds more than %zu bytes, the "
		    "most this command takes", name, max);
		ctl_error(ctx, "input too large", msg);
		goto out;
	}
	*buf = b;
	*len = got;
	*cap = max + 1;
	b = NULL;
	r = 0;
out:
	secmem_free(b, max + 1);
	if (!use_stdin && fd >= 0)
		(void)close(fd);
	return r;
}

/* Writes p[0..n) to path ("-" or NULL: standard output), creating the file
 * with mode. A secret output never stays readable by group or others. */
static int
ctl_write_output(const char *ctx, const char *path, const void *p, size_t n,
    mode_t mode, int secret)
{
	int use_stdout = path == NULL || strcmp(path, "-") == 0;
	const char *name = use_stdout ? "standard output" : path;
	char msg[KEYDCTL_MSG_MAX];
	const uint8_t *q = p;
	struct stat st;
	size_t done = 0;
	ssize_t w;
	int fd = STDOUT_FILENO, r = KEYDCTL_EXIT_FAIL;

	if (!use_stdout) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOCTTY, mode);
		if (fd < 0) {
			snprintf(msg, sizeof(msg), "cannot create %s: %s",
			    path, strerror(errno));
			ctl_error(ctx, "bad output", msg);
			goto out;
		}
		/* An existing file keeps its mode through O_CREAT. */
		if (secret && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & 077) != 0 && fchmod(fd, 0600) != 0) {
			snprintf(msg, sizeof(msg), "%s is readable by others "
			    "and cannot be made 0600: %s", path,
			    strerror(errno));
			ctl_error(ctx, "bad output", msg);
			goto out;
		}
	}
	while (done < n) {
		w = write(fd, q + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(msg, sizeof(msg), "cannot write %s: %s", name,
			    w < 0 ? strerror(errno) : "no progress");
			ctl_error(ctx, "bad output", msg);
			goto out;
		}
		done += (size_t)w;
	}
	r = 0;
out:
	if (!use_stdout && fd >= 0 && close(fd) != 0 && r == 0) {
		snprintf(msg, sizeof(msg), "cannot write %s: %s", name,
		    strerror(errno));
		ctl_error(ctx, "bad output", msg);
		r = KEYDCTL_EXIT_FAIL;
	}
	return r;
}

static int
ctl_connect(const char *ctx, const struct ctl_opts *o, struct keyd_client **c)
{
	int r;

	if ((r = keyd_connect(o->socket, c)) != KEYD_OK)
		return ctl_keyd_error(ctx, r, NULL);
	return 0;
}

static void
ctl_ops_string(unsigned ops, char *dst, size_t n)
{
	static const char *const names[] = {
		"sign", "decrypt", "srtp-new", "srtp-open", "status",
		"passport", "reload",
	};
	size_t i;

	dst[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(ops & (1u << i)))
			continue;
		if (dst[0] != '\0')
			strncat(dst, ",", n - strlen(dst) - 1);
		strncat(dst, names[i], n - strlen(dst) - 1);
	}
	if (dst[0] == '\0')
		snprintf(dst, n, "-");
}

/* Appends " (rsa-oaep-sha1,rsa-pkcs1)": the decryption algorithms of key
 * i, if it may decrypt. */
static void
ctl_decrypts_string(const struct keyd_keylist *l, size_t i, char *dst,
    size_t n)
{
	size_t k, used = strlen(dst);

	if (!(keyd_keylist_ops(l, i) & KEYD_OP_DECRYPT))
		return;
	for (k = 0; k < sizeof(ctl_algs) / sizeof(ctl_algs[0]) && used < n;
	    k++) {
		if (ctl_algs[k].is_sign ||
		    !keyd_keylist_decrypts(l, i, ctl_algs[k].alg))
			continue;
		used += (size_t)snprintf(dst + used, n - used, "%s%s",
		    strchr(dst, '(') == NULL ? " (" : ",", ctl_algs[k].name);
	}
	if (strchr(dst, '(') != NULL && used < n)
		snprintf(dst + used, n - used, ")");
}

static int
cmd_list(const struct ctl_opts *o)
{
	struct keyd_client *c = NULL;
	struct keyd_keylist *l = NULL;
	char name[KEYDCTL_NAME_MAX], ops[160];
	size_t i, n, w = 4;
	int r, ret = KEYDCTL_EXIT_FAIL;

	if (ctl_connect("list", o, &c) != 0)
		goto out;
	if ((r = keyd_list(c, &l)) != KEYD_OK) {
		ctl_keyd_error("list", r, c);
		goto out;
	}
	n = keyd_keylist_count(l);
	for (i = 0; i < n; i++) {
		strutil_printable(name, sizeof(name), keyd_keylist_name(l, i));
		if (strlen(name) > w)
			w = strlen(name);
	}
	printf("%-*s  %-8s %5s  %s\n", (int)w, "NAME", "TYPE", "BITS", "OPS");
	for (i = 0; i < n; i++) {
		strutil_printable(name, sizeof(name), keyd_keylist_name(l, i));
		ctl_ops_string(keyd_keylist_ops(l, i), ops, sizeof(ops));
		ctl_decrypts_string(l, i, ops, sizeof(ops));
		printf("%-*s  %-8s %5u  %s%s\n", (int)w, name,
		    keyd_keylist_type(l, i), keyd_keylist_bits(l, i), ops,
		    keyd_keylist_weak(l, i) ? "  WEAK: extractable without "
		    "wrap-with-trusted" : "");
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_error("list", "bad output", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	keyd_keylist_free(l);
	keyd_close(c);
	return ret;
}

static int
cmd_pubkey(const struct ctl_opts *o, const char *ctx, const char *key)
{
	struct keyd_client *c = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pk = NULL;
	BIO *mem = NULL;
	char *pem, msg[KEYDCTL_MSG_MAX];
	long pemlen;
	size_t len = 0;
	int r, ret = KEYDCTL_EXIT_FAIL;

	if (ctl_connect(ctx, o, &c) != 0)
		goto out;
	if ((r = keyd_pubkey(c, key, &der, &len)) != KEYD_OK) {
		/* pubkey names no algorithm: this code means the key has no
		 * public key (an AES key), which keyd's detail says alone. */
		if (r == KEYD_ERR_BAD_ALGORITHM && keyd_errmsg(c)[0] != '\0') {
			strutil_printable(msg, sizeof(msg), keyd_errmsg(c));
			ctl_error(ctx, msg, NULL);
		} else {
			ctl_keyd_error(ctx, r, c);
		}
		goto out;
	}
	p = der;
	if (len > LONG_MAX || (pk = d2i_PUBKEY(NULL, &p, (long)len)) == NULL ||
	    p != der + len) {
		ctl_error(ctx, keyd_strerror(KEYD_ERR_PROTOCOL), "keyd sent a "
		    "public key that is not a valid SubjectPublicKeyInfo");
		goto out;
	}
	if ((mem = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(mem, pk) ||
	    (pemlen = BIO_get_mem_data(mem, &pem)) <= 0) {
		ctl_error(ctx, keyd_strerror(KEYD_ERR_CRYPTO), "cannot write "
		    "the public key as PEM");
		goto out;
	}
	ret = ctl_write_output(ctx, o->out, pem, (size_t)pemlen, 0644, 0);
out:
	BIO_free(mem);
	EVP_PKEY_free(pk);
	keyd_free(der);
	keyd_close(c);
	return ret;
}

static int
cmd_sign(const struct ctl_opts *o, const char *ctx, const char *key,
    const struct ctl_alg *a)
{
	struct keyd_client *c = NULL;
	uint8_t *in = NULL, sig[KEYD_MAX_SIGNATURE];
	unsigned char md[EVP_MAX_MD_SIZE];
	const uint8_t *data;
	char msg[KEYDCTL_MSG_MAX];
	size_t inlen = 0, incap = 0, datalen, siglen = sizeof(sig), max;
	unsigned mdlen = 0;
	int r, ret = KEYDCTL_EXIT_FAIL, digest = (o->given & OPT_DIGEST) != 0;

	if (a->md == NULL && digest) {
		ret = ctl_usage_error("%s signs the message itself; drop "
		    "--digest", a->name);
		goto out;
	}
	if (a->md == NULL)
		max = KEYD_MAX_ED25519_MESSAGE;
	else if (digest)
		max = (size_t)EVP_MD_get_size(a->md());
	else
		max = KEYDCTL_MAX_MESSAGE;
	if (ctl_read_input(ctx, o->in, max, &in, &inlen, &incap) != 0)
		goto out;
	data = in;
	datalen = inlen;
	if (a->md != NULL && digest && inlen != max) {
		snprintf(msg, sizeof(msg), "a %s digest has %zu bytes; the "
		    "input has %zu (without --digest keydctl hashes the "
		    "input)", EVP_MD_get0_name(a->md()), max, inlen);
		ctl_error(ctx, "bad input", msg);
		goto out;
	}
	if (a->md != NULL && !digest) {
		if (!EVP_Digest(in, inlen, md, &mdlen, a->md(), NULL)) {
			ctl_error(ctx, keyd_strerror(KEYD_ERR_CRYPTO),
			    "cannot hash the input");
			goto out;
		}
		data = md;
		datalen = mdlen;
	}
	if (ctl_connect(ctx, o, &c) != 0)
		goto out;
	if ((r = keyd_sign(c, key, a->alg, data, datalen, sig, &siglen)) !=
	    KEYD_OK) {
		ctl_keyd_error(ctx, r, c);
		goto out;
	}
	ret = ctl_write_output(ctx, o->out, sig, siglen, 0644, 0);
out:
	secmem_free(in, incap);
	keyd_close(c);
	return ret;
}

/* Plaintexts must not end up in a core file or a debugger's hands. */
static void
ctl_no_dumps(void)
{
	struct rlimit rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int
cmd_decrypt(const struct ctl_opts *o, const char *ctx, const char *key,
    const struct ctl_alg *a)
{
	struct keyd_client *c = NULL;
	uint8_t *in = NULL, *pt = NULL;
	size_t inlen = 0, incap = 0, ptlen = KEYD_MAX_CIPHERTEXT;
	int r, ret = KEYDCTL_EXIT_FAIL;

	ctl_no_dumps();
	if (ctl_read_input(ctx, o->in, KEYD_MAX_CIPHERTEXT, &in, &inlen,
	    &incap) != 0)
		goto out;
	if ((pt = secmem_alloc(ptlen)) == NULL) {
		ctl_error(ctx, "out of memory", NULL);
		goto out;
	}
	if (ctl_connect(ctx, o, &c) != 0)
		goto out;
	if ((r = keyd_decrypt(c, key, a->alg, in, inlen, pt, &ptlen)) !=
	    KEYD_OK) {
		ctl_keyd_error(ctx, r, c);
		goto out;
	}
	ret = ctl_write_output(ctx, o->out, pt, ptlen, 0600, 1);
out:
	secmem_free(pt, KEYD_MAX_CIPHERTEXT);
	secmem_free(in, incap);
	keyd_close(c);
	return ret;
}

static int
cmd_status(const struct ctl_opts *o)
{
	struct keyd_client *c = NULL;
	char *text = NULL;
	int r, ret = KEYDCTL_EXIT_FAIL;

	if (ctl_connect("status", o, &c) != 0)
		goto out;
	if ((r = keyd_status(c, (o->given & OPT_PROMETHEUS) ?
	    KEYD_STATUS_PROMETHEUS : KEYD_STATUS_TEXT, &text)) != KEYD_OK) {
		ctl_keyd_error("status", r, c);
		goto out;
	}
	ret = ctl_write_output("status", NULL, text, strlen(text), 0644, 0);
out:
	keyd_free(text);
	keyd_close(c);
	return ret;
}

/* Waits for keyd's outcome: the new configuration serves, or it was
 * refused (the reason on stderr, exit status 1). */
static int
cmd_reload(const struct ctl_opts *o)
{
	struct keyd_client *c = NULL;
	char *text = NULL, line[2048];
	int r, ret = KEYDCTL_EXIT_FAIL;

	if (ctl_connect("reload", o, &c) != 0)
		goto out;
	if ((r = keyd_reload(c, &text)) != KEYD_OK) {
		ctl_error("reload", r == KEYD_ERR_CONFIG ? "refused" :
		    keyd_strerror(r), keyd_errmsg(c));
		goto out;
	}
	snprintf(line, sizeof(line), "reloaded: %s\n", text);
	ret = ctl_write_output("reload", NULL, line, strlen(line), 0644, 0);
out:
	keyd_free(text);
	keyd_close(c);
	return ret;
}

/* SRTP suite names, as in SDP's a=crypto (RFC 4568, 6188, 7714). */
static const struct {
	const char *name;
	int suite;
} ctl_suites[] = {
	{ "AES_CM_128_HMAC_SHA1_80", KEYD_SRTP_AES_CM_128_HMAC_SHA1_80 },
	{ "AES_CM_128_HMAC_SHA1_32", KEYD_SRTP_AES_CM_128_HMAC_SHA1_32 },
	{ "AES_256_CM_HMAC_SHA1_80", KEYD_SRTP_AES_256_CM_HMAC_SHA1_80 },
	{ "AES_256_CM_HMAC_SHA1_32", KEYD_SRTP_AES_256_CM_HMAC_SHA1_32 },
	{ "AEAD_AES_128_GCM", KEYD_SRTP_AEAD_AES_128_GCM },
	{ "AEAD_AES_256_GCM", KEYD_SRTP_AEAD_AES_256_GCM },
};

/* A blob argument: base64, with or without the "blob:" srtp new prints. */
static int
ctl_blob_decode(const char *arg, uint8_t *out, size_t room, size_t *len)
{
	size_t n, pad = 0;
	int got;

	if (strncmp(arg, "blob:", 5) == 0)
		arg += 5;
	n = strlen(arg);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > room)
		return -1;
	if (arg[n - 1] == '=')
		pad = arg[n - 2] == '=' ? 2 : 1;
	got = EVP_DecodeBlock(out, (const unsigned char *)arg, (int)n);
	if (got < 0 || (size_t)got < pad)
		return -1;
	*len = (size_t)got - pad;
	return 0;
}

static int
cmd_srtp(const struct ctl_opts *o)
{
	const char *sub = o->nwords > 1 ? o->words[1] : "";
	int is_new = strcmp(sub, "new") == 0;
	struct keyd_client *c = NULL;
	uint8_t *ks = NULL, blob[KEYD_SRTP_MAX_BLOB];
	char *out = NULL, ctx[KEYDCTL_NAME_MAX + 16];
	const char *context = o->context != NULL ? o->context : "";
	size_t kslen = KEYD_SRTP_MAX_KEY_SALT, bloblen = sizeof(blob), n, i;
	/* key-params and newline, "blob:", base64 of a blob, newline */
	size_t outcap = KEYD_SRTP_MAX_KEY_PARAMS + 8 +
	    (KEYD_SRTP_MAX_BLOB + 2) / 3 * 4 + 1;
	int r, suite = 0, ret = KEYDCTL_EXIT_FAIL;

	if (!is_new && strcmp(sub, "open") != 0)
		return ctl_usage_error("srtp takes new NAME -S SUITE or open "
		    "NAME BLOB");
	if (o->nwords != (is_new ? 3 : 4))
		return ctl_usage_error(is_new ? "srtp new takes one key name" :
		    "srtp open takes a key name and a blob");
	if ((o->given & ~(OPT_SOCKET | OPT_CONTEXT |
	    (is_new ? OPT_SUITE : 0))) != 0)
		return ctl_usage_error("srtp %s takes only -s, -C%s", sub,
		    is_new ? " and -S" : "");
	if (is_new) {
		if (o->suite == NULL)
			return ctl_usage_error("srtp new needs -S SUITE");
		for (i = 0; i < sizeof(ctl_suites) / sizeof(ctl_suites[0]); i++)
			if (strcmp(ctl_suites[i].name, o->suite) == 0)
				suite = ctl_suites[i].suite;
		if (suite == 0)
			return ctl_usage_error("unknown SRTP suite '%s'",
			    o->suite);
	} else if (ctl_blob_decode(o->words[3], blob, sizeof(blob),
	    &bloblen) != 0) {
		return ctl_usage_error("the blob is not base64 (as srtp new "
		    "prints it after blob:)");
	}
	snprintf(ctx, sizeof(ctx), "srtp %s %s", sub, o->words[2]);
	ctl_no_dumps();
	if ((ks = secmem_alloc(KEYD_SRTP_MAX_KEY_SALT)) == NULL ||
	    (out = secmem_alloc(outcap)) == NULL) {
		ctl_error(ctx, "out of memory", NULL);
		goto out;
	}
	if (ctl_connect(ctx, o, &c) != 0)
		goto out;
	if (is_new)
		r = keyd_srtp_new(c, o->words[2], suite, context,
		    strlen(context), ks, &kslen, out, KEYD_SRTP_MAX_KEY_PARAMS,
		    blob, &bloblen);
	else
		r = keyd_srtp_open(c, o->words[2], blob, bloblen, context,
		    strlen(context), &suite, ks, &kslen, out,
		    KEYD_SRTP_MAX_KEY_PARAMS);
	if (r != KEYD_OK) {
		ctl_keyd_error(ctx, r, c);
		goto out;
	}
	n = strlen(out);
	out[n++] = '\n';
	if (is_new) {
		memcpy(out + n, "blob:", 5);
		n += 5;
		n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, blob,
		    (int)bloblen);
		out[n++] = '\n';
	}
	ret = ctl_write_output(ctx, NULL, out, n, 0600, 1);
out:
	secmem_free(ks, KEYD_SRTP_MAX_KEY_SALT);
	secmem_free(out, outcap);
	keyd_close(c);
	return ret;
}

/* What ctl_parse sets *help to: --help (which wins over --version), or
 * --version. Both print to standard output and exit 0. */
enum { CTL_HELP = 1, CTL_VERSION = 2 };

/* Options may come before, between or after the command words: the '-'
 * at the head of optstring hands every word back in order (code 1), with
 * no reordering and no dependence on POSIXLY_CORRECT. */
static int
ctl_parse(int argc, char **argv, struct ctl_opts *o, int *help)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "alg", required_argument, NULL, 'a' },
		{ "digest", no_argument, NULL, 'd' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "suite", required_argument, NULL, 'S' },
		{ "context", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "max-age", required_argument, NULL, 'm' },
		{ "attest", required_argument, NULL, 'A' },
		{ "orig", required_argument, NULL, 'O' },
		{ "dest", required_argument, NULL, 'D' },
		{ "origid", required_argument, NULL, 'U' },
		{ "div", required_argument, NULL, 'I' },
		{ "jws", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	*help = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "-:s:i:o:a:S:C:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 1:
			if (o->nwords == KEYDCTL_MAX_WORDS)
				return ctl_usage_error("unexpected argument "
				    "'%s'", optarg);
			o->words[o->nwords++] = optarg;
			break;
		case 's': o->socket = optarg; o->given |= OPT_SOCKET; break;
		case 'i': o->in = optarg; o->given |= OPT_IN; break;
		case 'o': o->out = optarg; o->given |= OPT_OUT; break;
		case 'a': o->alg = optarg; o->given |= OPT_ALG; break;
		case 'd': o->given |= OPT_DIGEST; break;
		case 'p': o->given |= OPT_PROMETHEUS; break;
		case 'S': o->suite = optarg; o->given |= OPT_SUITE; break;
		case 'C': o->context = optarg; o->given |= OPT_CONTEXT; break;
		case 'c': o->cert = optarg; o->given |= OPT_CERT; break;
		case 'm': o->max_age = optarg; o->given |= OPT_MAX_AGE; break;
		case 'A': o->attest = optarg; o->given |= OPT_ATTEST; break;
		case 'O': o->orig = optarg; o->given |= OPT_ORIG; break;
		case 'U': o->origid = optarg; o->given |= OPT_ORIGID; break;
		case 'I': o->div = optarg; o->given |= OPT_DIV; break;
		case 'J': o->given |= OPT_JWS; break;
		case 'D':
			if (o->n_dest == KEYDCTL_MAX_DEST)
				return ctl_usage_error("at most %u --dest",
				    KEYDCTL_MAX_DEST);
			o->dest[o->n_dest++] = optarg;
			o->given |= OPT_DEST;
			break;
		case 'h': *help = CTL_HELP; break;
		case 'V':
			if (*help == 0)
				*help = CTL_VERSION;
			break;
		case ':':
			return ctl_usage_error("option %s needs a value",
			    argv[optind - 1]);
		default:
			return ctl_usage_error("unknown option %s",
			    argv[optind - 1]);
		}
	}
	/* Words after "--" */
	for (; optind < argc; optind++) {
		if (o->nwords == KEYDCTL_MAX_WORDS)
			return ctl_usage_error("unexpected argument '%s'",
			    argv[optind]);
		o->words[o->nwords++] = argv[optind];
	}
	return 0;
}

/*
 * passport verify: a PASSporT or an Identity header value against a
 * certificate file, offline (proto/passport.c does the checking). It
 * talks to no keyd.
 */
/*
 * passport NAME: a PASSporT that keyd builds and signs; the Identity
 * header value (or with --jws the JWS) on one line.
 */
static int
cmd_passport_sign(const struct ctl_opts *o)
{
	char ctx[KEYDCTL_NAME_MAX + 16];
	struct keyd_client *c = NULL;
	char *out = NULL;
	size_t n;
	int r, ret = KEYDCTL_EXIT_FAIL, div = (o->given & OPT_DIV) != 0;

	if (o->nwords != 2)
		return ctl_usage_error("passport takes one key name (or "
		    "verify)");
	if ((o->given & ~(OPT_SOCKET | OPT_ATTEST | OPT_ORIG | OPT_DEST |
	    OPT_ORIGID | OPT_DIV | OPT_JWS)) != 0)
		return ctl_usage_error("passport NAME takes only -s, --attest, "
		    "--orig, --dest, --origid, --div and --jws");
	if (div && (o->given & (OPT_ATTEST | OPT_ORIGID)))
		return ctl_usage_error("a div PASSporT (--div) takes no "
		    "--attest and no --origid");
	if (!div && o->attest == NULL)
		return ctl_usage_error("passport needs --attest A|B|C (or --div "
		    "TN)");
	if (o->orig == NULL || o->n_dest == 0)
		return ctl_usage_error("passport needs --orig TN and at least "
		    "one --dest TN");
	snprintf(ctx, sizeof(ctx), "passport %s", o->words[1]);
	if ((out = malloc(KEYD_PASSPORT_MAX + 1)) == NULL) {
		ctl_error(ctx, "out of memory", NULL);
		goto out;
	}
	if (ctl_connect(ctx, o, &c) != 0)
		goto out;
	if (div)
		r = keyd_passport_div(c, o->words[1], o->div, o->orig, o->dest,
		    o->n_dest, (o->given & OPT_JWS) ? NULL : out,
		    KEYD_PASSPORT_MAX, (o->given & OPT_JWS) ? out : NULL,
		    KEYD_PASSPORT_MAX);
	else
		r = keyd_passport(c, o->words[1], o->attest, o->orig, o->dest,
		    o->n_dest, o->origid, (o->given & OPT_JWS) ? NULL : out,
		    KEYD_PASSPORT_MAX, (o->given & OPT_JWS) ? out : NULL,
		    KEYD_PASSPORT_MAX);
	if (r != KEYD_OK) {
		ctl_keyd_error(ctx, r, c);
		goto out;
	}
	/* out holds at most KEYD_PASSPORT_MAX - 1 characters and its NUL:
	 * the newline fits in the one byte more. */
	n = strnlen(out, KEYD_PASSPORT_MAX);
	out[n++] = '\n';
	ret = ctl_write_output(ctx, NULL, out, n, 0644, 0);
out:
	free(out);
	keyd_close(c);
	return ret;
}

static int
cmd_passport(const struct ctl_opts *o)
{
	static const char ctx[] = "passport verify";
	uint8_t *in = NULL;
	size_t len = 0, cap = 0;
	char why[KEYDCTL_MSG_MAX], msg[KEYDCTL_MSG_MAX], *claims = NULL, *end;
	long max_age = PASSPORT_MAX_AGE_DEFAULT;
	X509 *cert = NULL;
	BIO *b = NULL;
	int ret = KEYDCTL_EXIT_FAIL;

	if (o->nwords < 2)
		return ctl_usage_error("passport takes a key name, or verify");
	if (strcmp(o->words[1], "verify") != 0)
		return cmd_passport_sign(o);
	if (o->nwords > 3)
		return ctl_usage_error("passport verify takes at most one "
		    "PASSporT or Identity header value");
	if ((o->given & ~(OPT_CERT | OPT_MAX_AGE)) != 0)
		return ctl_usage_error("passport verify takes only --cert and "
		    "--max-age");
	if (o->cert == NULL)
		return ctl_usage_error("passport verify needs --cert CERT.pem");
	if (o->max_age != NULL) {
		errno = 0;
		max_age = strtol(o->max_age, &end, 10);
		if (errno != 0 || end == o->max_age || *end != '\0' ||
		    max_age < 0 || max_age > 86400L * 366)
			return ctl_usage_error("--max-age takes seconds, 0 to "
			    "31622400");
	}
	if ((b = BIO_new_file(o->cert, "r")) == NULL ||
	    (cert = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		snprintf(msg, sizeof(msg), "cannot read a PEM certificate "
		    "from %s", o->cert);
		ctl_error(ctx, "bad certificate", msg);
		goto out;
	}
	if (o->nwords == 3) {
		if (strlen(o->words[2]) > PASSPORT_MAX_INPUT) {
			ctl_error(ctx, "input too large", NULL);
			goto out;
		}
	} else if (ctl_read_input(ctx, NULL, PASSPORT_MAX_INPUT, &in, &len,
	    &cap) != 0) {
		goto out;
	}
	if (passport_verify(o->nwords == 3 ? o->words[2] : (const char *)in,
	    o->nwords == 3 ? strlen(o->words[2]) : len, cert, time(NULL),
	    max_age, &claims, why, sizeof(why)) != KEYD_OK) {
		ctl_error(ctx, why, NULL);
		goto out;
	}
	if (fputs(claims, stdout) == EOF || fflush(stdout) != 0) {
		ctl_error(ctx, "cannot write to standard output", NULL);
		goto out;
	}
	ret = 0;
out:
	free(claims);
	secmem_free(in, cap);
	X509_free(cert);
	BIO_free(b);
	return ret;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int words;          /* including the command */
		unsigned allowed;   /* OPT_* the command takes */
	} cmds[] = {
		{ "list", 1, OPT_SOCKET },
		{ "pubkey", 2, OPT_SOCKET | OPT_OUT },
		{ "sign", 2, OPT_SOCKET | OPT_IN | OPT_OUT | OPT_ALG |
		    OPT_DIGEST },
		{ "decrypt", 2, OPT_SOCKET | OPT_IN | OPT_OUT | OPT_ALG },
		{ "status", 1, OPT_SOCKET | OPT_PROMETHEUS },
		{ "reload", 1, OPT_SOCKET },
	};
	struct ctl_opts o;
	const struct ctl_alg *a = NULL;
	char ctx[KEYDCTL_NAME_MAX + 16];
	size_t i;
	int help, r;

	if ((r = ctl_parse(argc, argv, &o, &help)) != 0)
		return r;
	if (help) {
		if (help == CTL_VERSION)
			printf("keydctl %s\n", KEYD_VERSION);
		else
			fputs(ctl_usage, stdout);
		return fflush(stdout) == 0 ? 0 : KEYDCTL_EXIT_FAIL;
	}
	if (o.nwords == 0)
		return ctl_usage_error("no command given");
	if (strcmp(o.words[0], "srtp") == 0)
		return cmd_srtp(&o);
	if (strcmp(o.words[0], "passport") == 0)
		return cmd_passport(&o);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, o.words[0]) == 0)
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]))
		return ctl_usage_error("unknown command '%s'", o.words[0]);
	if (o.nwords != cmds[i].words)
		return ctl_usage_error(cmds[i].words == 2 ? "%s takes one key "
		    "name" : "%s takes no arguments", cmds[i].name);
	if ((o.given & ~cmds[i].allowed) != 0)
		return ctl_usage_error("%s does not take that option "
		    "(-i, -o, -a, --digest, --prometheus)", cmds[i].name);
	if (cmds[i].allowed & OPT_ALG) {
		if (o.alg == NULL)
			return ctl_usage_error("%s needs -a ALG", cmds[i].name);
		if ((a = ctl_alg_find(o.alg)) == NULL)
			return ctl_usage_error("unknown algorithm '%s'", o.alg);
		if (a->is_sign != (strcmp(cmds[i].name, "sign") == 0))
			return ctl_usage_error(a->is_sign ? "%s is a signature "
			    "algorithm, not for decrypt" : "%s is a decryption "
			    "algorithm, not for sign", a->name);
	}
	snprintf(ctx, sizeof(ctx), "%s%s%s", o.words[0], o.nwords > 1 ? " " :
	    "", o.nwords > 1 ? o.words[1] : "");
	switch (i) {
	case 0: return cmd_list(&o);
	case 1: return cmd_pubkey(&o, ctx, o.words[1]);
	case 2: return cmd_sign(&o, ctx, o.words[1], a);
	case 3: return cmd_decrypt(&o, ctx, o.words[1], a);
	case 4: return cmd_status(&o);
	default: return cmd_reload(&o);
	}
}
