/* shaken.c: the STIR/SHAKEN signer: certificates at start-up, PASSporTs
 * per request (shaken.h). */
#include "shaken.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keyd_err.h"
#include "log.h"
#include "secmem.h"

/* ES256: r || s, 32 bytes each. */
#define SHAKEN_SIG_LEN 64
/* The most a header or claims JSON takes before base64url: the header's
 * fixed part and x5u; the claims with SHAKEN_MAX_DEST TNs. */
#define SHAKEN_JSON_MAX 1536
#define SHAKEN_DAY_S 86400

struct shaken_key {
	int on;                       /* a passport key */
	X509 *cert;
	time_t not_before, not_after;
	struct passport_tnauth *tnauth;
	int spc_only;
	const char *x5u;              /* the config's */
	const char *name;
	time_t warned;                /* last validity warning in the log */
};

struct shaken {
	struct shaken_key *keys;      /* one per config key */
	size_t n_keys;
};

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
asn1_time_t(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL || !ASN1_TIME_to_tm(a, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* The leaf certificate of a PEM file (the chain, leaf first): its bytes
 * from pems if they are there, else the file. */
static X509 *
read_pem_leaf(const char *path, const struct shaken_pem *pems, size_t n_pems,
    char *err, size_t errlen)
{
	BIO *b = NULL;
	X509 *x = NULL;

	for (size_t i = 0; i < n_pems && b == NULL; i++)
		if (!strcmp(pems[i].path, path) && pems[i].len <= INT_MAX)
			b = BIO_new_mem_buf(pems[i].pem, (int)pems[i].len);
	if (b == NULL)
		b = BIO_new_file(path, "r");

	if (b == NULL) {
		errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL)
		errf(err, errlen, "%s holds no PEM certificate", path);
	BIO_free(b);
	return x;
}

static int
same_spki(X509 *x, const struct token_key *tk)
{
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der), same;

	same = n > 0 && tk->spki != NULL && (size_t)n == tk->spki_len &&
	    memcmp(der, tk->spki, (size_t)n) == 0;
	OPENSSL_free(der);
	return same;
}

/* 1 if the certificate of sk deserves a warning at now: not valid yet,
 * expired, or expiring within SHAKEN_WARN_DAYS. */
static int
needs_warning(const struct shaken_key *sk, time_t now)
{
	return now < sk->not_before || now > sk->not_after ||
	    sk->not_after - now < SHAKEN_WARN_DAYS * SHAKEN_DAY_S;
}

static void
warn_validity(struct shaken_key *sk, time_t now, const char *when)
{
	if (needs_warning(sk, now))
		sk->warned = now;
	if (now < sk->not_before)
		log_warn("%s: the certificate of passport key '%s' is not "
		    "valid yet: every passport request with it fails until "
		    "then", when, sk->name);
	else if (now > sk->not_after)
		log_warn("%s: THE CERTIFICATE OF PASSPORT KEY '%s' HAS "
		    "EXPIRED: every passport request with it fails; install "
		    "a new certificate", when, sk->name);
	else if (sk->not_after - now < SHAKEN_WARN_DAYS * SHAKEN_DAY_S)
		log_warn("%s: the certificate of passport key '%s' expires in "
		    "%ld days: renew it", when, sk->name,
		    (long)((sk->not_after - now) / SHAKEN_DAY_S));
}

static int
load_key(const struct config *cfg, struct token *t, size_t i,
    const struct shaken_pem *pems, size_t n_pems, struct shaken_key *sk,
    char *err, size_t errlen)
{
	const struct config_key *ck = &cfg->keys[i];
	const struct token_key *tk = token_key(t, i);
	const unsigned char *p;
	char why[160];
	int r;

	sk->on = 1;
	sk->name = ck->name;
	sk->x5u = ck->x5u;
	if (ck->certificate != NULL) {
		if ((sk->cert = read_pem_leaf(ck->certificate, pems, n_pems,
		    why, sizeof(why))) == NULL) {
			errf(err, errlen, "[key %s] certificate: %s", ck->name,
			    why);
			return KEYD_ERR_CONFIG;
		}
	} else if (tk->cert != NULL) {
		p = tk->cert;
		if ((sk->cert = d2i_X509(NULL, &p, (long)tk->cert_len)) ==
		    NULL) {
			errf(err, errlen, "[key %s]: the token's certificate "
			    "object with the key's CKA_ID is not a valid X.509 "
			    "certificate", ck->name);
			return KEYD_ERR_CONFIG;
		}
	} else {
		errf(err, errlen, "[key %s] has ops = passport but no "
		    "certificate: set certificate = FILE (PEM, leaf first), "
		    "or put the certificate on the token with the key's CKA_ID",
		    ck->name);
		return KEYD_ERR_CONFIG;
	}
	if (!same_spki(sk->cert, tk)) {
		errf(err, errlen, "[key %s]: the certificate's public key is "
		    "not the key's (%s)", ck->name, ck->certificate != NULL ?
		    ck->certificate : "the token's certificate object");
		return KEYD_ERR_CONFIG;
	}
	if (asn1_time_t(X509_get0_notBefore(sk->cert), &sk->not_before) != 0 ||
	    asn1_time_t(X509_get0_notAfter(sk->cert), &sk->not_after) != 0) {
		errf(err, errlen, "[key %s]: cannot read the certificate's "
		    "validity period", ck->name);
		return KEYD_ERR_CONFIG;
	}
	r = passport_tnauth_read(sk->cert, &sk->tnauth, why, sizeof(why));
	if (r == KEYD_ERR_NOT_FOUND) {
		errf(err, errlen, "[key %s]: the certificate has no TNAuthList "
		    "(RFC 8226, 1.3.6.1.5.5.7.1.26); it is not a SHAKEN "
		    "certificate", ck->name);
		return KEYD_ERR_CONFIG;
	}
	if (r != KEYD_OK) {
		errf(err, errlen, "[key %s]: the certificate's TNAuthList: %s",
		    ck->name, why);
		return KEYD_ERR_CONFIG;
	}
	sk->spc_only = passport_tnauth_spc_only(sk->tnauth);
	warn_validity(sk, time(NULL), "start-up");
	return KEYD_OK;
}

int
shaken_init(const struct config *cfg, struct token *t, struct shaken **out,
    char *err, size_t errlen)
{
	return shaken_init_pems(cfg, t, NULL, 0, out, err, errlen);
}

int
shaken_init_pems(const struct config *cfg, struct token *t,
    const struct shaken_pem *pems, size_t n_pems, struct shaken **out,
    char *err, size_t errlen)
{
	struct shaken *sh = NULL;
	size_t i, j;
	int r = KEYD_ERR_NOMEM;

	*out = NULL;
	if ((sh = calloc(1, sizeof(*sh))) == NULL ||
	    (cfg->n_keys > 0 && (sh->keys = calloc(cfg->n_keys,
	    sizeof(*sh->keys))) == NULL)) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	sh->n_keys = cfg->n_keys;
	for (i = 0; i < cfg->n_keys; i++) {
		const struct token_key *pk = token_key(t, i);

		if (!(cfg->keys[i].ops & CONFIG_OP_PASSPORT))
			continue;
		if ((r = load_key(cfg, t, i, pems, n_pems, &sh->keys[i], err,
		    errlen)) != KEYD_OK)
			goto out;
		/* The same key pair under another [key] (another URI, a
		 * copy of the object) with sign would let a client make any
		 * PASSporT it likes. The token layer has found each [key]
		 * on both tokens with the same public key. */
		for (j = 0; j < cfg->n_keys; j++) {
			const struct token_key *ok = token_key(t, j);

			if (j == i || (cfg->keys[j].ops & ~CONFIG_OP_PASSPORT) ==
			    0 || ok->spki == NULL || ok->spki_len !=
			    pk->spki_len || memcmp(ok->spki, pk->spki,
			    pk->spki_len) != 0)
				continue;
			errf(err, errlen, "[key %s] has the same public key as "
			    "passport key '%s' and other ops than passport; "
			    "the SHAKEN key must serve passport only (with "
			    "sign, a client could make any PASSporT it likes)",
			    cfg->keys[j].name, cfg->keys[i].name);
			r = KEYD_ERR_CONFIG;
			goto out;
		}
	}
	*out = sh;
	sh = NULL;
	r = KEYD_OK;
out:
	shaken_free(sh);
	return r;
}

void
shaken_free(struct shaken *sh)
{
	if (sh == NULL)
		return;
	for (size_t i = 0; i < sh->n_keys; i++) {
		X509_free(sh->keys[i].cert);
		passport_tnauth_free(sh->keys[i].tnauth);
	}
	free(sh->keys);
	free(sh);
}

/* A TN field of the request: canonical, into out. */
static int
parse_tn(const char *field, const char *in, char out[PASSPORT_TN_BUF],
    char *msg, size_t msglen)
{
	if (in == NULL || *in == '\0') {
		snprintf(msg, msglen, "%s: no telephone number given", field);
		return KEYD_ERR_INVALID_ARG;
	}
	if (passport_tn_canon(in, strlen(in), out) != KEYD_OK) {
		/* The client's own words are not echoed: a TN is personal
		 * data, and this one is not even well-formed. */
		snprintf(msg, msglen, "%s is not a telephone number: E.164, "
		    "1 to 15 digits after dropping a leading '+' and the "
		    "separators - . ( ) and space", field);
		return KEYD_ERR_INVALID_ARG;
	}
	return KEYD_OK;
}

static int
uuid_canon(const char *in, char out[SHAKEN_UUID_BUF])
{
	if (strlen(in) != SHAKEN_UUID_BUF - 1)
		return -1;
	for (size_t i = 0; i < SHAKEN_UUID_BUF - 1; i++) {
		unsigned char c = (unsigned char)in[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return -1;
		} else if (!isxdigit(c)) {
			return -1;
		}
		out[i] = (char)tolower(c);
	}
	out[SHAKEN_UUID_BUF - 1] = '\0';
	return 0;
}

int
shaken_parse(const Keyd__V1__PassportRequest *req, struct shaken_claims *cl,
    char *msg, size_t msglen)
{
	int r;

	memset(cl, 0, sizeof(*cl));
	if (req->ppt == NULL || (strcmp(req->ppt, "shaken") != 0 &&
	    strcmp(req->ppt, "div") != 0)) {
		snprintf(msg, msglen, "ppt must be shaken or div");
		return KEYD_ERR_INVALID_ARG;
	}
	cl->is_div = strcmp(req->ppt, "div") == 0;
	if (cl->is_div) {
		if ((req->attest != NULL && req->attest[0] != '\0') ||
		    (req->origid != NULL && req->origid[0] != '\0')) {
			snprintf(msg, msglen, "a div PASSporT (RFC 8946) has no "
			    "attest and no origid");
			return KEYD_ERR_INVALID_ARG;
		}
		if ((r = parse_tn("div", req->div, cl->div, msg, msglen)) !=
		    KEYD_OK)
			return r;
	} else {
		if (req->div != NULL && req->div[0] != '\0') {
			snprintf(msg, msglen, "div is for ppt div only");
			return KEYD_ERR_INVALID_ARG;
		}
		if (req->attest == NULL || (strcmp(req->attest, "A") != 0 &&
		    strcmp(req->attest, "B") != 0 &&
		    strcmp(req->attest, "C") != 0)) {
			snprintf(msg, msglen, "attest must be A, B or C "
			    "(RFC 8588)");
			return KEYD_ERR_INVALID_ARG;
		}
		cl->attest[0] = req->attest[0];
		if (req->origid != NULL && req->origid[0] != '\0' &&
		    uuid_canon(req->origid, cl->origid) != 0) {
			snprintf(msg, msglen, "origid is not a UUID "
			    "(8-4-4-4-12 hexadecimal digits, RFC 8588)");
			return KEYD_ERR_INVALID_ARG;
		}
	}
	if ((r = parse_tn("orig", req->orig, cl->orig, msg, msglen)) != KEYD_OK)
		return r;
	if (req->n_dest == 0 || req->n_dest > SHAKEN_MAX_DEST) {
		snprintf(msg, msglen, "a PASSporT has 1 to %d dest TNs, not %zu",
		    SHAKEN_MAX_DEST, req->n_dest);
		return KEYD_ERR_INVALID_ARG;
	}
	for (size_t i = 0; i < req->n_dest; i++) {
		char field[32];

		snprintf(field, sizeof(field), "dest[%zu]", i);
		if ((r = parse_tn(field, req->dest[i], cl->dest[i], msg,
		    msglen)) != KEYD_OK)
			return r;
	}
	cl->n_dest = req->n_dest;
	return KEYD_OK;
}

static void
fmt_day(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%d %H:%M:%S "
	    "UTC", &tm) == 0)
		snprintf(out, n, "%lld", (long long)t);
}

int
shaken_check_cert(const struct shaken *sh, size_t key, time_t now,
    const struct shaken_claims *cl, char *msg, size_t msglen)
{
	const struct shaken_key *sk;
	char when[40];

	if (sh == NULL || key >= sh->n_keys || !sh->keys[key].on) {
		snprintf(msg, msglen, "key is not set up for passport");
		return KEYD_ERR_INTERNAL;
	}
	sk = &sh->keys[key];
	if (now > sk->not_after) {
		fmt_day(sk->not_after, when, sizeof(when));
		snprintf(msg, msglen, "certificate: the certificate of key '%s' "
		    "expired at %s (notAfter); install a new one", sk->name,
		    when);
		return KEYD_ERR_CERTIFICATE;
	}
	if (now < sk->not_before) {
		fmt_day(sk->not_before, when, sizeof(when));
		snprintf(msg, msglen, "certificate: the certificate of key '%s' "
		    "is not valid before %s (notBefore)", sk->name, when);
		return KEYD_ERR_CERTIFICATE;
	}
	/* No TN in the message: see policy_passport. */
	if (!sk->spc_only && !passport_tnauth_covers(sk->tnauth,
	    cl->is_div ? cl->div : cl->orig)) {
		snprintf(msg, msglen, "tnauthlist: %s is not in the TNAuthList "
		    "of the certificate of key '%s'", cl->is_div ? "the div TN" :
		    "orig", sk->name);
		return KEYD_ERR_DENIED;
	}
	return KEYD_OK;
}

/* base64url without padding (RFC 7515 section 2) of in[0..n) into out
 * (room bytes); returns the length, or 0 if it does not fit. */
static size_t
b64url(const uint8_t *in, size_t n, char *out, size_t room)
{
	size_t need = (n + 2) / 3 * 4 + 1, len;
	int got;

	if (n == 0 || need > room || n > 3 * 1024 * 1024)
		return 0;
	got = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	if (got <= 0)
		return 0;
	len = (size_t)got;
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return len;
}

/*
 * A random version 4 UUID (RFC 9562 section 5.4) from the token's RNG, in
 * lower case. Each worker thread draws the token's random bytes for
 * SHAKEN_UUID_BATCH UUIDs at once: a token call per PASSporT cost about as
 * much as the rest of building it (docs/benchmarks.md). An origid is no
 * secret (it is in the PASSporT), and the bytes are used once each.
 */
#define SHAKEN_UUID_BATCH 16

static _Thread_local struct {
	uint8_t b[16 * SHAKEN_UUID_BATCH];
	size_t used;                  /* sizeof(b): empty */
	int filled;
} uuid_pool;

static int
make_uuid(struct token *t, struct token_session *s, char out[SHAKEN_UUID_BUF],
    char *msg, size_t msglen)
{
	uint8_t *b;
	int r;

	if (!uuid_pool.filled || uuid_pool.used >= sizeof(uuid_pool.b)) {
		if ((r = token_random(t, s, uuid_pool.b, sizeof(uuid_pool.b), msg,
		    msglen)) != KEYD_OK)
			return r;
		uuid_pool.filled = 1;
		uuid_pool.used = 0;
	}
	b = uuid_pool.b + uuid_pool.used;
	uuid_pool.used += 16;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, SHAKEN_UUID_BUF, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
	    b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	    b[15]);
	memset(b, 0, 16);
	return KEYD_OK;
}

/* Appends to a bounded JSON buffer; sets *ok = 0 when it does not fit. */
static void
jcat(char *buf, size_t room, size_t *used, int *ok, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
jcat(char *buf, size_t room, size_t *used, int *ok, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!*ok)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, room - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room - *used) {
		*ok = 0;
		return;
	}
	*used += (size_t)n;
}

/*
 * The header and the claims as RFC 8225 section 9 wants them for a
 * deterministic form: members in lexicographic order, no whitespace. Every
 * string is digits, A/B/C, a lower-case UUID or the x5u (printable ASCII
 * without '"' or '\\', config.c): none needs escaping.
 */
static int
build_json(const struct shaken_key *sk, const struct shaken_claims *cl,
    char *hdr, size_t hroom, char *pl, size_t proom)
{
	size_t hu = 0, pu = 0;
	int ok = 1;

	jcat(hdr, hroom, &hu, &ok, "{\"alg\":\"ES256\",\"ppt\":\"%s\","
	    "\"typ\":\"passport\",\"x5u\":\"%s\"}", cl->is_div ? "div" :
	    "shaken", sk->x5u);
	if (!cl->is_div)
		jcat(pl, proom, &pu, &ok, "{\"attest\":\"%s\",", cl->attest);
	else
		jcat(pl, proom, &pu, &ok, "{");
	jcat(pl, proom, &pu, &ok, "\"dest\":{\"tn\":[");
	for (size_t i = 0; i < cl->n_dest; i++)
		jcat(pl, proom, &pu, &ok, "%s\"%s\"", i > 0 ? "," : "",
		    cl->dest[i]);
	jcat(pl, proom, &pu, &ok, "]},");
	if (cl->is_div)
		jcat(pl, proom, &pu, &ok, "\"div\":{\"tn\":\"%s\"},", cl->div);
	jcat(pl, proom, &pu, &ok, "\"iat\":%lld,\"orig\":{\"tn\":\"%s\"}",
	    (long long)cl->iat, cl->orig);
	if (!cl->is_div)
		jcat(pl, proom, &pu, &ok, ",\"origid\":\"%s\"", cl->origid);
	jcat(pl, proom, &pu, &ok, "}");
	return ok ? KEYD_OK : KEYD_ERR_INTERNAL;
}

/* SHA-256, fetched from OpenSSL's default provider once: EVP_sha256()
 * makes every EVP_Digest fetch it again, under the method store's lock. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_fetched;

static void
sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256_md(void)
{
	if (pthread_once(&sha256_once, sha256_fetch) != 0 ||
	    sha256_fetched == NULL)
		return EVP_sha256();
	return sha256_fetched;
}

int
shaken_sign(const struct shaken *sh, struct token *t, struct token_session *s,
    size_t key, time_t now, const struct shaken_claims *cl,
    struct shaken_result *res, char *msg, size_t msglen)
{
	const struct shaken_key *sk;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	char hdr[SHAKEN_JSON_MAX], pl[SHAKEN_JSON_MAX];
	uint8_t digest[32], sig[TOKEN_MAX_SIG];
	size_t siglen = sizeof(sig), n, m;
	unsigned dlen = 0;
	int r;

	if (sh == NULL || key >= sh->n_keys || !sh->keys[key].on)
		return KEYD_ERR_INTERNAL;
	sk = &sh->keys[key];
	res->claims = *cl;
	res->claims.iat = (int64_t)now;
	if (!cl->is_div && cl->origid[0] == '\0' &&
	    (r = make_uuid(t, s, res->claims.origid, msg, msglen)) != KEYD_OK)
		return r;
	if ((r = build_json(sk, &res->claims, hdr, sizeof(hdr), pl,
	    sizeof(pl))) != KEYD_OK) {
		snprintf(msg, msglen, "the PASSporT does not fit keyd's buffer");
		return r;
	}
	/* header.payload: the JWS signing input (RFC 7515 section 5.1). */
	if ((n = b64url((const uint8_t *)hdr, strlen(hdr), res->jws,
	    sizeof(res->jws))) == 0 || n + 1 >= sizeof(res->jws)) {
		snprintf(msg, msglen, "the PASSporT does not fit keyd's buffer");
		return KEYD_ERR_INTERNAL;
	}
	res->jws[n++] = '.';
	if ((m = b64url((const uint8_t *)pl, strlen(pl), res->jws + n,
	    sizeof(res->jws) - n)) == 0) {
		snprintf(msg, msglen, "the PASSporT does not fit keyd's buffer");
		return KEYD_ERR_INTERNAL;
	}
	n += m;
	if (!EVP_Digest(res->jws, n, digest, &dlen, sha256_md(), NULL) ||
	    dlen != sizeof(digest)) {
		snprintf(msg, msglen, "cannot hash the PASSporT");
		return KEYD_ERR_CRYPTO;
	}
	if ((r = token_sign(t, s, key, &mech, digest, sizeof(digest), sig,
	    &siglen, msg, msglen)) != KEYD_OK)
		return r;
	if (siglen != SHAKEN_SIG_LEN) {
		snprintf(msg, msglen, "the token made an ECDSA signature of %zu "
		    "bytes, not the %d of P-256's r||s", siglen,
		    SHAKEN_SIG_LEN);
		return KEYD_ERR_TOKEN;
	}
	if (n + 1 >= sizeof(res->jws))
		return KEYD_ERR_INTERNAL;
	res->jws[n++] = '.';
	if (b64url(sig, siglen, res->jws + n, sizeof(res->jws) - n) == 0) {
		snprintf(msg, msglen, "the PASSporT does not fit keyd's buffer");
		return KEYD_ERR_INTERNAL;
	}
	/* RFC 8224 section 4: the info parameter's URI in angle brackets. */
	if ((size_t)snprintf(res->identity, sizeof(res->identity),
	    "%s;info=<%s>;alg=ES256;ppt=%s", res->jws, sk->x5u, cl->is_div ?
	    "div" : "shaken") >= sizeof(res->identity))
		return KEYD_ERR_INTERNAL;
	return KEYD_OK;
}

void
shaken_tick(struct shaken *sh, time_t now)
{
	if (sh == NULL)
		return;
	for (size_t i = 0; i < sh->n_keys; i++) {
		struct shaken_key *sk = &sh->keys[i];

		if (sk->on && needs_warning(sk, now) &&
		    now - sk->warned >= SHAKEN_DAY_S)
			warn_validity(sk, now, "daily check");
	}
}

void
shaken_key_status(const struct shaken *sh, size_t key, time_t now,
    Keyd__V1__KeyStatus *ks, char *warn, size_t warnlen)
{
	const struct shaken_key *sk;
	time_t left;

	if (sh == NULL || key >= sh->n_keys || !sh->keys[key].on)
		return;
	sk = &sh->keys[key];
	left = sk->not_after - now;
	ks->has_cert_expiry = 1;
	/* Whole days, rounded down; negative once expired. */
	ks->cert_days_left = left >= 0 ? (int64_t)(left / SHAKEN_DAY_S) :
	    -(int64_t)((-left + SHAKEN_DAY_S - 1) / SHAKEN_DAY_S);
	warn[0] = '\0';
	if (now < sk->not_before)
		snprintf(warn, warnlen, "the certificate is not valid yet: "
		    "passport requests fail");
	else if (left < 0)
		snprintf(warn, warnlen, "the certificate has expired: passport "
		    "requests fail");
	else if (left < SHAKEN_WARN_DAYS * SHAKEN_DAY_S)
		snprintf(warn, warnlen, "the certificate expires in %lld days",
		    (long long)ks->cert_days_left);
	if (warn[0] != '\0')
		ks->cert_warning = warn;
}
