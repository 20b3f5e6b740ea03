/*
 * tokenproc.c: keyd-token, the process that runs one token's PKCS#11
 * module. The supervisor (keyd) starts one per configured token with
 *
 *   keyd-token --config FILE --config-fd FD --role primary|failover
 *              --channels N
 *
 * and descriptors TW_FD_CONTROL (its channel to the supervisor) and
 * N request channels from TW_FD_FIRST_CHANNEL on, whose other ends the
 * socket-facing process holds. The PIN comes over the control channel,
 * never from a file. One thread serves each request channel, in a
 * session of its own. The process ends when its control channel closes.
 *
 * Whatever the socket-facing process asks, this process checks again
 * that the key is configured for the operation, and that the mechanism
 * and its parameters are those keyd uses for it: a compromised
 * socket-facing process can use the keys only as the configuration says,
 * and the audit key only to sign checkpoints that continue the chain the
 * supervisor has seen signed.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "cpgate.h"
#include "digestinfo.h"
#include "keyd_err.h"
#include "log.h"
#include "sandbox.h"
#include "secmem.h"
#include "tokenwire.h"

#define TP_MAX_CHANNELS 512
#define TP_CP_WAIT_MS 5000
#define TP_CP_MAX 8192

static struct token *tok;
static struct config *cfg;
static const char *role = "primary";
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ans_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ans_cv = PTHREAD_COND_INITIALIZER;
static struct cpwait cp_wait;     /* under ans_mu */
/* Request channels still open: when keyd retires this process (a reload
 * put another in its place), it closes the control channel, and the
 * module is finalised only once the socket-facing process has closed
 * these, which it does when the last request begun under the old
 * configuration is answered. */
static atomic_int live;
#define TP_DRAIN_EXTRA_MS 1000

static void
usage(FILE *f)
{
	fprintf(f, "usage: keyd-token --config FILE [--config-fd FD] --role "
	    "primary|failover --channels N\n"
	    "keyd-token is started by keyd, which hands it its channels; it "
	    "is not run by hand.\n");
}

static int
ctl_send(const void *p, size_t n)
{
	int r;

	pthread_mutex_lock(&ctl_mu);
	r = tw_send(TW_FD_CONTROL, p, n, NULL, 0);
	pthread_mutex_unlock(&ctl_mu);
	return r;
}

static void
ctl_failed(uint32_t code, const char *msg)
{
	struct kbuf b;

	kbuf_init(&b, 4096, 0);
	if (tw_put_word(&b, TW_CTL_FAILED) == KEYD_OK &&
	    tw_put_word(&b, code) == KEYD_OK &&
	    kbuf_put(&b, msg, strlen(msg)) == KEYD_OK)
		(void)ctl_send(kbuf_ptr(&b), kbuf_avail(&b));
	kbuf_free(&b);
}

static unsigned
key_ops(size_t key)
{
	return key < cfg->n_keys ? cfg->keys[key].ops : 0;
}

/* The mechanism of a request, with its parameters rebuilt here. */
struct mech {
	CK_MECHANISM m;
	union {
		CK_RSA_PKCS_PSS_PARAMS pss;
		CK_RSA_PKCS_OAEP_PARAMS oaep;
	} p;
};

static int
mech_from(const struct tw_req *q, struct mech *mm)
{
	memset(mm, 0, sizeof(*mm));
	mm->m.mechanism = (CK_MECHANISM_TYPE)q->mech;
	if (!q->has_params)
		return KEYD_OK;
	switch (q->mech) {
	case CKM_RSA_PKCS_PSS:
		mm->p.pss.hashAlg = (CK_MECHANISM_TYPE)q->p_hash;
		mm->p.pss.mgf = (CK_RSA_PKCS_MGF_TYPE)q->p_mgf;
		mm->p.pss.sLen = (CK_ULONG)q->p_slen;
		mm->m.pParameter = &mm->p.pss;
		mm->m.ulParameterLen = sizeof(mm->p.pss);
		return KEYD_OK;
	case CKM_RSA_PKCS_OAEP:
		mm->p.oaep.hashAlg = (CK_MECHANISM_TYPE)q->p_hash;
		mm->p.oaep.mgf = (CK_RSA_PKCS_MGF_TYPE)q->p_mgf;
		mm->p.oaep.source = CKZ_DATA_SPECIFIED;
		mm->m.pParameter = &mm->p.oaep;
		mm->m.ulParameterLen = sizeof(mm->p.oaep);
		return KEYD_OK;
	}
	return KEYD_ERR_BAD_ALGORITHM;
}

/* The PSS parameters keyd-serve sends (dispatch.c): MGF1 of the hash,
 * a salt as long as the hash, a digest of that length. */
static const struct {
	CK_MECHANISM_TYPE hash;
	CK_RSA_PKCS_MGF_TYPE mgf;
	size_t len;
} pss_params[] = {
	{ CKM_SHA256, CKG_MGF1_SHA256, 32 },
	{ CKM_SHA384, CKG_MGF1_SHA384, 48 },
	{ CKM_SHA512, CKG_MGF1_SHA512, 64 },
};

/* Whether a signature request uses a mechanism keyd-serve asks for with
 * a key of this type, with the parameters it sends: RSA PKCS#1 v1.5 (of
 * a DigestInfo) or PSS, ECDSA, EdDSA. Never raw RSA (CKM_RSA_X_509),
 * which would make a sign-only key decrypt. */
static int
sign_mech_ok(const struct token_key *k, const struct tw_req *q,
    const uint8_t *in)
{
	switch (k->type) {
	case TOKEN_KEY_RSA:
		/* PKCS#1 v1.5 over a DigestInfo of SHA-256, -384 or -512,
		 * as keyd-serve builds it: never over other bytes. */
		if (q->mech == CKM_RSA_PKCS)
			return !q->has_params &&
			    digestinfo_find(in, q->in_len) >= 0;
		if (q->mech != CKM_RSA_PKCS_PSS || !q->has_params)
			return 0;
		for (size_t i = 0; i < sizeof(pss_params) /
		    sizeof(pss_params[0]); i++)
			if (q->p_hash == pss_params[i].hash &&
			    q->p_mgf == pss_params[i].mgf &&
			    q->p_slen == pss_params[i].len &&
			    q->in_len == pss_params[i].len)
				return 1;
		return 0;
	case TOKEN_KEY_EC_P256:
	case TOKEN_KEY_EC_P384:
		return q->mech == CKM_ECDSA && !q->has_params;
	case TOKEN_KEY_ED25519:
		return q->mech == CKM_EDDSA && !q->has_params;
	default:
		return 0;
	}
}

/* Whether a decryption request is one keyd-serve makes with key: RSA-OAEP
 * with a hash the token decrypted with at start-up (MGF1 of the same
 * hash; the label is always empty, mech_from sets none), or raw RSA for
 * PKCS#1 v1.5 with implicit rejection (rsa_ir.c) on a key configured
 * with pkcs1_decrypt. Never the token's CKM_RSA_PKCS, which keyd-serve
 * does not use: its padding error is an oracle. */
static int
decrypt_mech_ok(const struct token_key *k, size_t key, const struct tw_req *q)
{
	if (k->type != TOKEN_KEY_RSA)
		return 0;
	if (q->mech == CKM_RSA_X_509)
		return !q->has_params && cfg->keys[key].pkcs1_decrypt;
	if (q->mech != CKM_RSA_PKCS_OAEP || !q->has_params)
		return 0;
	for (size_t i = 0; i < TOKEN_OAEP_N; i++)
		if (q->p_hash == token_oaep_variants[i].hash &&
		    q->p_mgf == token_oaep_variants[i].mgf)
			return (k->oaep_hashes & token_oaep_variants[i].bit) != 0;
	return 0;
}

/* The AES-GCM of SRTP key blobs, as srtp.c makes and opens them: a 96-bit
 * IV and a 128-bit tag, nothing shorter. */
#define TP_GCM_IV_LEN 12
#define TP_GCM_TAG_BITS 128

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The "cp_prev" member of a checkpoint line: 64 lower-case hex digits. */
static int
cp_prev_of(const uint8_t *line, size_t len, uint8_t prev[TW_HASH_LEN])
{
	static const char key[] = "\"cp_prev\":\"";
	const uint8_t *p = NULL;

	for (size_t i = 0; i + sizeof(key) - 1 + 64 < len; i++)
		if (memcmp(line + i, key, sizeof(key) - 1) == 0) {
			if (p != NULL)
				return -1;     /* named twice */
			p = line + i + sizeof(key) - 1;
		}
	if (p == NULL || p[64] != '"')
		return -1;
	for (size_t i = 0; i < TW_HASH_LEN; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		prev[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Asks the supervisor whether prev is the last checkpoint signed. The
 * ask carries a number, and only the answer that echoes it and prev
 * counts (cpgate.h): one that comes after this ask gave up answers
 * nothing. On yes, the approval is this process's alone until it says
 * what became of it (cp_finish). */
static int
cp_ask(const uint8_t prev[TW_HASH_LEN], uint32_t *seq)
{
	uint8_t f[8 + TW_HASH_LEN];
	uint32_t t = TW_CTL_CP_ASK;
	struct timespec until;
	int ans;

	pthread_mutex_lock(&ans_mu);
	*seq = cpwait_begin(&cp_wait, prev);
	pthread_mutex_unlock(&ans_mu);
	memcpy(f, &t, 4);
	memcpy(f + 4, seq, 4);
	memcpy(f + 8, prev, TW_HASH_LEN);
	if (ctl_send(f, sizeof(f)) != 0) {
		pthread_mutex_lock(&ans_mu);
		(void)cpwait_end(&cp_wait);
		pthread_mutex_unlock(&ans_mu);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TP_CP_WAIT_MS / 1000;
	pthread_mutex_lock(&ans_mu);
	while (cp_wait.answer < 0)
		if (pthread_cond_timedwait(&ans_cv, &ans_mu, &until) != 0)
			break;
	ans = cpwait_end(&cp_wait);
	pthread_mutex_unlock(&ans_mu);
	return ans;
}

/* Tells the supervisor what became of approval seq for prev: signed,
 * the line's hash being next (TW_CTL_CP_DONE), or not used
 * (TW_CTL_CP_ABORT, next NULL), which frees it for the next ask. */
static void
cp_finish(uint32_t seq, const uint8_t prev[TW_HASH_LEN],
    const uint8_t *next)
{
	uint8_t f[8 + 2 * TW_HASH_LEN];
	uint32_t t = next != NULL ? TW_CTL_CP_DONE : TW_CTL_CP_ABORT;
	size_t n = 8 + TW_HASH_LEN;

	memcpy(f, &t, 4);
	memcpy(f + 4, &seq, 4);
	memcpy(f + 8, prev, TW_HASH_LEN);
	if (next != NULL) {
		memcpy(f + n, next, TW_HASH_LEN);
		n += TW_HASH_LEN;
	}
	(void)ctl_send(f, n);
}

/* Signs an audit line with the audit key, if it names the last line
 * signed (the supervisor keeps that across token processes and their
 * restarts). */
static int
checkpoint(const uint8_t *line, size_t len, uint8_t *out, size_t *outlen,
    char *msg, size_t msglen)
{
	uint8_t prev[TW_HASH_LEN], next[TW_HASH_LEN];
	uint32_t seq;
	int r;

	if (len > TP_CP_MAX || cp_prev_of(line, len, prev) != 0) {
		snprintf(msg, msglen, "an audit line to sign must name the "
		    "last signed one in \"cp_prev\"");
		return KEYD_ERR_DENIED;
	}
	EVP_Digest(line, len, next, NULL, EVP_sha256(), NULL);
	pthread_mutex_lock(&cp_mu);
	if (!cp_ask(prev, &seq)) {
		pthread_mutex_unlock(&cp_mu);
		snprintf(msg, msglen, "the audit line does not follow the last "
		    "one the audit key signed: refused");
		log_error("refused to sign an audit line that does not follow "
		    "the last one signed (the socket-facing process may be "
		    "compromised)");
		return KEYD_ERR_DENIED;
	}
	r = token_sign_audit_line(tok, line, len, out, outlen, msg, msglen);
	cp_finish(seq, prev, r == KEYD_OK ? next : NULL);
	pthread_mutex_unlock(&cp_mu);
	return r;
}

static void
info_reply(struct tw_rep *rep, uint8_t *out, size_t room)
{
	struct token_info ti;
	size_t n;

	token_get_info(tok, 0, &ti);
	n = (size_t)snprintf((char *)out, room, "%s|%d|%u|%lu",
	    ti.state, ti.logged_in, ti.key_copies, ti.recoveries);
	rep->out_len = (uint32_t)(n < room ? n : room - 1);
}

/* Why a request's mechanism is refused, for the reply and the log: a
 * well-behaved socket-facing process never asks for it. */
static void
refuse_mech(const struct tw_req *q, const struct token_key *k, char *msg,
    size_t msglen)
{
	if (q->op == TW_SIGN && q->mech == CKM_RSA_PKCS && !q->has_params &&
	    k->type == TOKEN_KEY_RSA)
		snprintf(msg, msglen, "the token process refuses a PKCS#1 v1.5 "
		    "signature with key %u over %u bytes that are not a "
		    "DigestInfo of SHA-256, SHA-384 or SHA-512", q->key,
		    q->in_len);
	else
		snprintf(msg, msglen, "the token process refuses PKCS#11 "
		    "mechanism 0x%lx%s with key %u (%s) for %s: not one keyd "
		    "uses with it", (unsigned long)q->mech, q->has_params ?
		    " with these parameters" : "", q->key,
		    token_key_type_name(k->type), q->op == TW_SIGN ?
		    "signing" : "decryption");
	log_error("token process (%s): %s (the socket-facing process may be "
	    "compromised)", role, msg);
}

/* One request; the reply goes into rep and out. */
static void
handle(struct token_session *s, const struct tw_req *q, const uint8_t *iv,
    const uint8_t *aad, const uint8_t *in, struct tw_rep *rep, uint8_t *out)
{
	struct mech mm;
	size_t outlen = q->out_len;
	unsigned ops = key_ops(q->key);
	const struct token_key *k = q->key < cfg->n_keys ?
	    token_key(tok, q->key) : NULL;
	CK_RV rv = CKR_OK;
	int r;

	s->last_rv = CKR_OK;
	rep->msg[0] = '\0';
	if (outlen > TW_MAX_IO) {
		r = KEYD_ERR_BAD_LENGTH;
		goto out;
	}
	r = KEYD_ERR_DENIED;
	switch (q->op) {
	case TW_SIGN:
		/* A PASSporT is an ECDSA signature keyd-serve builds. */
		if (k == NULL || !(ops & (CONFIG_OP_SIGN | CONFIG_OP_PASSPORT)))
			break;
		if (!sign_mech_ok(k, q, in)) {
			refuse_mech(q, k, rep->msg, sizeof(rep->msg));
			break;
		}
		if ((r = mech_from(q, &mm)) != KEYD_OK)
			break;
		r = token_sign(tok, s, q->key, &mm.m, in, q->in_len, out,
		    &outlen, rep->msg, sizeof(rep->msg));
		break;
	case TW_DECRYPT:
		if (k == NULL || !(ops & CONFIG_OP_DECRYPT))
			break;
		if (!decrypt_mech_ok(k, q->key, q)) {
			refuse_mech(q, k, rep->msg, sizeof(rep->msg));
			break;
		}
		if ((r = mech_from(q, &mm)) != KEYD_OK)
			break;
		r = token_decrypt(tok, s, q->key, &mm.m, in, q->in_len, out,
		    &outlen, rep->msg, sizeof(rep->msg));
		break;
	case TW_RANDOM:
		r = token_random(tok, s, out, outlen, rep->msg,
		    sizeof(rep->msg));
		break;
	case TW_KCV: {
		const char *how = "";

		if (k == NULL || k->type != TOKEN_KEY_AES ||
		    q->version > k->n_prev)
			break;
		r = token_kcv(tok, s, q->key, q->version, out, &how, rep->msg,
		    sizeof(rep->msg));
		outlen = 3;
		if (r == KEYD_OK)
			snprintf(rep->msg, sizeof(rep->msg), "%s", how);
		break;
	}
	case TW_GCM:
		if (k == NULL || k->type != TOKEN_KEY_AES ||
		    q->version > k->n_prev ||
		    !(ops & (q->encrypt ? CONFIG_OP_SRTP_NEW :
		    CONFIG_OP_SRTP_OPEN)) || (q->encrypt && q->version != 0))
			break;
		if (q->iv_len != TP_GCM_IV_LEN ||
		    q->tag_bits != TP_GCM_TAG_BITS) {
			snprintf(rep->msg, sizeof(rep->msg), "the token process "
			    "refuses AES-GCM with a %u-byte IV and a %u-bit tag "
			    "(SRTP key blobs use a %d-byte IV and a %d-bit tag)",
			    q->iv_len, q->tag_bits, TP_GCM_IV_LEN,
			    TP_GCM_TAG_BITS);
			break;
		}
		r = token_gcm(tok, s, q->key, q->version, q->encrypt, iv,
		    q->iv_len, aad, q->aad_len, q->tag_bits, in, q->in_len, out,
		    &outlen, &rv, rep->msg, sizeof(rep->msg));
		s->last_rv = rv;
		break;
	case TW_CHECKPOINT:
		r = checkpoint(in, q->in_len, out, &outlen, rep->msg,
		    sizeof(rep->msg));
		break;
	case TW_PROBE:
		if ((r = token_probe(tok, rep->msg, sizeof(rep->msg))) !=
		    KEYD_OK) {
			int pin = token_pin_refused(tok);

			log_error("token process (%s): the health probe failed "
			    "after a re-login: %s; exiting so that keyd starts "
			    "a fresh one", role, rep->msg);
			_exit(pin ? TW_EXIT_PIN_REFUSED : TW_EXIT_DEVICE_LOST);
		}
		outlen = 0;
		break;
	case TW_HMAC:
		/* Only under audit_tn_key, which no client names. */
		if (token_tn_key(tok) < 0 || outlen < TOKEN_HMAC_LEN)
			break;
		outlen = TOKEN_HMAC_LEN;
		r = token_hmac_sha256(tok, s, in, q->in_len, out, rep->msg,
		    sizeof(rep->msg));
		break;
	case TW_INFO:
		info_reply(rep, out, TW_MAX_IO);
		rep->r = KEYD_OK;
		return;
	default:
		r = KEYD_ERR_UNKNOWN_OP;
	}
	if (r == KEYD_ERR_DENIED && rep->msg[0] == '\0')
		snprintf(rep->msg, sizeof(rep->msg), "the token process refuses "
		    "this operation: key %u is not configured for it", q->key);
out:
	rep->r = r;
	rep->rv = s->last_rv;
	rep->out_len = r == KEYD_OK ? (uint32_t)outlen : 0;
	if (r != KEYD_OK)
		secmem_wipe(out, TW_MAX_IO);
}

static void *
channel_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct token_session s;
	struct kbuf b;
	struct tw_rep rep;
	uint8_t *out = secmem_alloc(TW_MAX_IO);

	memset(&s, 0, sizeof(s));
	kbuf_init(&b, TW_MAX_REQ, KBUF_SECRET);
	while (out != NULL) {
		struct tw_req q;
		const uint8_t *iv = NULL, *aad = NULL, *in = NULL;

		if (tw_recv_one(fd, &b, TW_MAX_REQ, 0) != 0)
			break;
		memset(&rep, 0, sizeof(rep));
		if (kbuf_get_bytes(&b, &q, sizeof(q)) != KEYD_OK ||
		    q.iv_len > TW_MAX_IO || q.aad_len > TW_MAX_IO ||
		    q.in_len > TW_MAX_IN ||
		    kbuf_get_ptr(&b, q.iv_len, &iv) != KEYD_OK ||
		    kbuf_get_ptr(&b, q.aad_len, &aad) != KEYD_OK ||
		    kbuf_get_ptr(&b, q.in_len, &in) != KEYD_OK ||
		    kbuf_avail(&b) != 0) {
			rep.r = KEYD_ERR_PROTOCOL;
			snprintf(rep.msg, sizeof(rep.msg), "a malformed request "
			    "to the token process");
		} else {
			handle(&s, &q, iv, aad, in, &rep, out);
		}
		if (tw_send2(fd, &rep, sizeof(rep), out, rep.out_len) != 0)
			break;
		secmem_wipe(out, rep.out_len);
	}
	token_session_close(tok, &s);
	kbuf_free(&b);
	secmem_free(out, TW_MAX_IO);
	close(fd);
	atomic_fetch_sub(&live, 1);
	return NULL;
}

/* The PIN frame: u32 TW_CTL_PIN, u32 length, the PIN. */
static int
read_pin(char **pin, size_t *len)
{
	struct kbuf b;
	uint32_t t, n;
	const uint8_t *p;
	int r = -1;

	kbuf_init(&b, 4096, KBUF_SECRET);
	if (tw_recv(TW_FD_CONTROL, &b, 4096, NULL, NULL, 0) == 0 &&
	    tw_get_word(&b, &t) == KEYD_OK && t == TW_CTL_PIN &&
	    tw_get_word(&b, &n) == KEYD_OK && n < 1024 &&
	    kbuf_get_ptr(&b, n, &p) == KEYD_OK &&
	    (*pin = secmem_alloc(n + 1)) != NULL) {
		memcpy(*pin, p, n);
		*len = n;
		r = 0;
	}
	kbuf_free(&b);
	return r;
}

/* The configuration from the supervisor's sealed memfd: the bytes it
 * read, checked and applied (tokenwire.h). */
static int
config_from_fd(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	ssize_t n;
	int r = KEYD_ERR_CONFIG;

	if (fstat(fd, &st) != 0 || st.st_size < 0 ||
	    st.st_size > CONFIG_MAX_BYTES ||
	    (text = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "token process: cannot read the "
		    "configuration keyd passed (descriptor %d)", fd);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = pread(fd, text + got, (size_t)st.st_size - got,
		    (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "token process: short read of the "
			    "configuration keyd passed");
			goto out;
		}
		got += (size_t)n;
	}
	text[got] = '\0';
	r = config_parse_buffer(text, got, path, 1, &cfg, err, errlen);
out:
	free(text);
	close(fd);
	return r;
}

static int
send_ready(void)
{
	struct token_info ti;
	struct token_key *keys;
	size_t n = token_slot_count(tok);
	struct kbuf b;
	int r;

	token_get_info(tok, 0, &ti);
	if ((keys = calloc(n ? n : 1, sizeof(*keys))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		keys[i] = *token_key(tok, i);
	kbuf_init(&b, TW_MAX_FRAME, 0);
	r = tw_put_word(&b, TW_CTL_READY) == KEYD_OK &&
	    tw_info_put(&b, &ti, keys, n, token_audit_key(tok) >= 0,
	    token_tn_key(tok) >= 0) == KEYD_OK && ctl_send(kbuf_ptr(&b), kbuf_avail(&b)) == 0 ? 0 : -1;
	kbuf_free(&b);
	free(keys);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "config-fd", required_argument, NULL, 'f' },
		{ "role", required_argument, NULL, 'r' },
		{ "channels", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rlimit nocore = { 0, 0 };
	const char *path = NULL;
	char err[1024], *pin = NULL, *end;
	size_t pin_len = 0;
	long nch = 0, cfd = -1;
	sigset_t sigs;
	pthread_t th;
	struct kbuf b;
	int o, r;

	/* Before the module can start threads, which inherit the mask:
	 * keyd's signals are keyd's, never this process's. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)setrlimit(RLIMIT_CORE, &nocore);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	(void)pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	(void)signal(SIGPIPE, SIG_IGN);

	while ((o = getopt_long(argc, argv, "c:f:r:n:vh", opts, NULL)) !=
	    -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'f':
			cfd = strtol(optarg, &end, 10);
			if (*end != '\0' || cfd < TW_FD_FIRST_CHANNEL)
				cfd = -2;
			break;
		case 'r': role = optarg; break;
		case 'n':
			nch = strtol(optarg, &end, 10);
			if (*end != '\0')
				nch = 0;
			break;
		case 'v': log_set_level(LOG_LVL_DEBUG); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return TW_EXIT_USAGE;
		}
	}
	if (path == NULL || optind != argc || nch < 1 ||
	    nch > TP_MAX_CHANNELS || cfd == -2 ||
	    (strcmp(role, "primary") != 0 &&
	    strcmp(role, "failover") != 0)) {
		usage(stderr);
		return TW_EXIT_USAGE;
	}
	if ((cfd >= 0 ? config_from_fd((int)cfd, path, err, sizeof(err)) :
	    config_load(path, &cfg, err, sizeof(err))) != KEYD_OK) {
		ctl_failed(TW_EXIT_FAILED, err);
		log_error("%s", err);
		return TW_EXIT_FAILED;
	}
	/* This process serves one token; failing over between the two is
	 * the socket-facing process's business. */
	if (!strcmp(role, "primary")) {
		free(cfg->failover_token);
		cfg->failover_token = NULL;
	} else {
		char *primary = cfg->token;

		if (cfg->failover_token == NULL) {
			ctl_failed(TW_EXIT_USAGE, "no failover_token");
			return TW_EXIT_USAGE;
		}
		cfg->token = cfg->failover_token;
		cfg->failover_token = NULL;
		cfg->serving_failover = 1;
		free(primary);
	}
	if (read_pin(&pin, &pin_len) != 0) {
		log_error("token process (%s): no PIN from keyd", role);
		return TW_EXIT_USAGE;
	}
	r = token_open(cfg, pin, pin_len, &tok, err, sizeof(err));
	secmem_free(pin, pin_len + 1);
	if (r != KEYD_OK) {
		uint32_t code = strstr(err, "CKR_PIN_") != NULL ?
		    TW_EXIT_PIN_REFUSED : TW_EXIT_FAILED;

		ctl_failed(code, err);
		return (int)code;
	}
	if (sandbox_drop_privileges(cfg, err, sizeof(err)) != KEYD_OK ||
	    (cfg->sandbox && sandbox_install_token(cfg->module_network, err,
	    sizeof(err)) != KEYD_OK)) {
		ctl_failed(TW_EXIT_FAILED, err);
		token_close(tok);
		return TW_EXIT_FAILED;
	}
	if (send_ready() != 0) {
		token_close(tok);
		return TW_EXIT_FAILED;
	}
	for (long i = 0; i < nch; i++) {
		atomic_fetch_add(&live, 1);
		if (pthread_create(&th, NULL, channel_main,
		    (void *)(intptr_t)(TW_FD_FIRST_CHANNEL + i)) != 0) {
			log_error("token process (%s): cannot start a thread: %s",
			    role, strerror(errno));
			_exit(TW_EXIT_FAILED);
		}
		pthread_detach(th);
	}

	/* The control channel: answers to checkpoint questions, SIGUSR2's
	 * reload; its end is this process's end. */
	kbuf_init(&b, 4096, 0);
	for (;;) {
		uint32_t t, v, seq;
		uint8_t prev[TW_HASH_LEN];

		if (tw_recv(TW_FD_CONTROL, &b, 4096, NULL, NULL, 0) != 0)
			break;
		if (tw_get_word(&b, &t) != KEYD_OK)
			continue;
		if (t == TW_CTL_RELOAD) {
			token_reload(tok);
		} else if (t == TW_CTL_CP_ANSWER &&
		    tw_get_word(&b, &v) == KEYD_OK &&
		    tw_get_word(&b, &seq) == KEYD_OK &&
		    kbuf_get_bytes(&b, prev, TW_HASH_LEN) == KEYD_OK) {
			int taken;

			pthread_mutex_lock(&ans_mu);
			taken = cpwait_answer(&cp_wait, seq, prev, v);
			if (taken)
				pthread_cond_broadcast(&ans_cv);
			pthread_mutex_unlock(&ans_mu);
			/* An answer to an ask that gave up, or to none: a
			 * yes is handed back, so that the supervisor can
			 * approve the next ask. */
			if (!taken) {
				log_debug("token process (%s): dropped an answer "
				    "(%s) to checkpoint ask %u, which no longer "
				    "waits", role, v == 1 ? "yes" : "no", seq);
				if (v == 1)
					cp_finish(seq, prev, NULL);
			}
		}
	}
	kbuf_free(&b);
	/* Retired by a reload, or keyd stops: requests begun under the
	 * configuration this process serves are answered first, at most as
	 * long as a token call may take. */
	{
		long until = tw_now_ms() + (long)cfg->token_timeout_ms +
		    TP_DRAIN_EXTRA_MS;

		while (atomic_load(&live) > 0 && tw_now_ms() < until)
			usleep(10000);
	}
	/* The module is finalised, which opencryptoki and others need for a
	 * clean end. */
	token_close(tok);
#ifdef KEYD_SANITIZE_BUILD
	/* LeakSanitizer's exit-time check needs ptrace, which the
	 * denylist refuses: a sandboxed sanitizer build skips it. */
	if (cfg->sandbox) {
		fflush(NULL);
		_exit(TW_EXIT_OK);
	}
#endif
	config_free(cfg);
	return TW_EXIT_OK;
}
