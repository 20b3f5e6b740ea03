/*
 * kprovstore.c: the provider's store loader for keyd: URIs:
 *
 *	keyd:NAME
 *	keyd:NAME?socket=/run/keyd/keyd.sock
 *
 * NAME is a key's name in keyd (percent-escapes allowed). Opening asks
 * keyd for the key (keyd_list, keyd_pubkey, and keyd_certificate when it
 * holds one); loading then gives, in order and as OpenSSL expects them:
 * the private key (operations go to keyd), the public key (a plain key of
 * the default provider), and the certificate.
 */
#include "kprov.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "keyd.h"

#define KPROV_SCHEME "keyd:"

struct store_ctx {
	struct kprov_key key;
	uint8_t *cert;             /* DER, or NULL */
	size_t certlen;
	int expect;                /* OSSL_STORE_INFO_*, 0: anything */
	int step;                  /* the next object to give */
};

enum { STEP_PRIVATE, STEP_PUBLIC, STEP_CERT, STEP_END };

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copies s[0..len), percent-decoded, into out (size outsz, NUL-ended).
 * Returns 1, or 0 if it does not fit, has a bad escape or a NUL. */
static int
unescape(const char *s, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;
	int h, l;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%') {
			if (i + 2 >= len)
				return 0;
			if ((h = hexval(s[i + 1])) < 0 ||
			    (l = hexval(s[i + 2])) < 0)
				return 0;
			c = (char)(h * 16 + l);
			if (c == '\0')
				return 0;
			i += 2;
		}
		if (o + 1 >= outsz)
			return 0;
		out[o++] = c;
	}
	out[o] = '\0';
	return 1;
}

/* Parses uri into name and socket (empty if not given). Raises an error
 * saying what is wrong, and returns 0, if it is not a keyd: URI we take. */
static int
parse_uri(const char *uri, char *name, size_t namesz, char *socket,
    size_t socksz)
{
	const char *p, *q, *amp, *eq;

	socket[0] = '\0';
	if (strncmp(uri, KPROV_SCHEME, strlen(KPROV_SCHEME)) != 0)
		goto bad;
	p = uri + strlen(KPROV_SCHEME);
	q = strchr(p, '?');
	if (!unescape(p, q != NULL ? (size_t)(q - p) : strlen(p), name,
	    namesz) || name[0] == '\0' || strchr(name, '/') == name)
		goto bad;
	while (q != NULL) {
		p = q + 1;
		amp = strchr(p, '&');
		q = amp;
		eq = memchr(p, '=', amp != NULL ? (size_t)(amp - p) : strlen(p));
		if (eq == NULL || (size_t)(eq - p) != strlen("socket") ||
		    strncmp(p, "socket", strlen("socket")) != 0) {
			kprov_raise(KPROV_R_BAD_URI, "keyd: %s: the only query "
			    "attribute is socket=PATH", uri);
			return 0;
		}
		if (!unescape(eq + 1, amp != NULL ? (size_t)(amp - eq - 1) :
		    strlen(eq + 1), socket, socksz) || socket[0] != '/') {
			kprov_raise(KPROV_R_BAD_URI, "keyd: %s: socket= must be "
			    "an absolute path of at most %u bytes", uri,
			    KPROV_SOCKET_MAX);
			return 0;
		}
	}
	return 1;
bad:
	kprov_raise(KPROV_R_BAD_URI, "keyd: '%s' is not a keyd: URI "
	    "(keyd:NAME or keyd:NAME?socket=PATH, NAME at most %u bytes)",
	    uri, KPROV_NAME_MAX);
	return 0;
}

static void store_close_ctx(struct store_ctx *ctx);

static void *
store_open(void *provctx, const char *uri)
{
	struct store_ctx *ctx;
	char name[KPROV_NAME_MAX + 1], socket[KPROV_SOCKET_MAX + 1];

	(void)provctx;
	if (!parse_uri(uri, name, sizeof(name), socket, sizeof(socket)))
		return NULL;
	if ((ctx = OPENSSL_zalloc(sizeof(*ctx))) == NULL)
		return NULL;
	if (kprov_describe(&ctx->key, name, socket, &ctx->cert,
	    &ctx->certlen) != KEYD_OK) {
		store_close_ctx(ctx);
		return NULL;
	}
	return ctx;
}

static const OSSL_PARAM *
store_settable_ctx_params(void *provctx)
{
	static const OSSL_PARAM p[] = {
		OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
		OSSL_PARAM_END,
	};

	(void)provctx;
	return p;
}

static int
store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
	struct store_ctx *ctx = loaderctx;
	const OSSL_PARAM *p;

	p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
	if (p != NULL && !OSSL_PARAM_get_int(p, &ctx->expect))
		return 0;
	/* Searches by subject, issuer or alias have nothing to match here:
	 * a keyd: URI names one key. */
	return 1;
}

static const char *
data_type(const struct kprov_key *k)
{
	switch (k->type) {
	case KPROV_EC:
		return "EC";
	case KPROV_RSA:
		return "RSA";
	default:
		return "ED25519";
	}
}

static int
wanted(const struct store_ctx *ctx, int info)
{
	return ctx->expect == 0 || ctx->expect == info;
}

static int
store_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
    OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	struct store_ctx *ctx = loaderctx;
	const struct kprov_key *ref = &ctx->key;
	OSSL_PARAM params[5];
	int type;

	(void)pw_cb;
	(void)pw_cbarg;
	while (ctx->step < STEP_END) {
		switch (ctx->step++) {
		case STEP_PRIVATE:
			if (!wanted(ctx, OSSL_STORE_INFO_PKEY))
				continue;
			/* The address of our key object, which the keymgmt's
			 * load copies before this call returns. */
			type = OSSL_OBJECT_PKEY;
			params[0] = OSSL_PARAM_construct_int(
			    OSSL_OBJECT_PARAM_TYPE, &type);
			params[1] = OSSL_PARAM_construct_utf8_string(
			    OSSL_OBJECT_PARAM_DATA_TYPE,
			    (char *)data_type(&ctx->key), 0);
			params[2] = OSSL_PARAM_construct_octet_string(
			    OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof(ref));
			params[3] = OSSL_PARAM_construct_end();
			return object_cb(params, object_cbarg);
		case STEP_PUBLIC:
			if (!wanted(ctx, OSSL_STORE_INFO_PUBKEY))
				continue;
			type = OSSL_OBJECT_PKEY;
			params[0] = OSSL_PARAM_construct_int(
			    OSSL_OBJECT_PARAM_TYPE, &type);
			params[1] = OSSL_PARAM_construct_utf8_string(
			    OSSL_OBJECT_PARAM_DATA_TYPE,
			    (char *)data_type(&ctx->key), 0);
			params[2] = OSSL_PARAM_construct_utf8_string(
			    OSSL_OBJECT_PARAM_DATA_STRUCTURE,
			    (char *)"SubjectPublicKeyInfo", 0);
			params[3] = OSSL_PARAM_construct_octet_string(
			    OSSL_OBJECT_PARAM_DATA, ctx->key.spki,
			    ctx->key.spki_len);
			params[4] = OSSL_PARAM_construct_end();
			return object_cb(params, object_cbarg);
		case STEP_CERT:
			if (ctx->cert == NULL ||
			    !wanted(ctx, OSSL_STORE_INFO_CERT))
				continue;
			type = OSSL_OBJECT_CERT;
			params[0] = OSSL_PARAM_construct_int(
			    OSSL_OBJECT_PARAM_TYPE, &type);
			params[1] = OSSL_PARAM_construct_octet_string(
			    OSSL_OBJECT_PARAM_DATA, ctx->cert, ctx->certlen);
			params[2] = OSSL_PARAM_construct_end();
			return object_cb(params, object_cbarg);
		}
	}
	return 0;
}

static int
store_eof(void *loaderctx)
{
	const struct store_ctx *ctx = loaderctx;

	return ctx->step >= STEP_END;
}

static void
store_close_ctx(struct store_ctx *ctx)
{
	if (ctx == NULL)
		return;
	OPENSSL_free(ctx->cert);
	OPENSSL_clear_free(ctx, sizeof(*ctx));
}

static int
store_close(void *loaderctx)
{
	store_close_ctx(loaderctx);
	return 1;
}

#define FN(id, f) { id, (void (*)(void))(f) }
const OSSL_DISPATCH kprov_store[] = {
	FN(OSSL_FUNC_STORE_OPEN, store_open),
	FN(OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, store_settable_ctx_params),
	FN(OSSL_FUNC_STORE_SET_CTX_PARAMS, store_set_ctx_params),
	FN(OSSL_FUNC_STORE_LOAD, store_load),
	FN(OSSL_FUNC_STORE_EOF, store_eof),
	FN(OSSL_FUNC_STORE_CLOSE, store_close),
	{ 0, NULL },
};
