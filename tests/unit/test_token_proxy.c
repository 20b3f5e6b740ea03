/*
 * test_token_proxy: the socket-facing process's view of a token process
 * (keyd/daemon/token_proxy.c) takes the key info a token process reports
 * only if it holds as many keys as the configuration implies: the
 * configured keys and the audit key. A process that reports fewer (a
 * compromised or broken one) is refused, and keyd serves no key from it.
 * A reply frame too large for the channel gets the process reported as
 * hung to the supervisor, which replaces it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "keyd_err.h"
#include "ktest.h"
#include "token_proxy.h"

static const char conf[] =
	"[keyd]\n"
	"module = /m.so\n"
	"token = pkcs11:token=t\n"
	"pin_file = /p\n"
	"audit_log = /a\n"
	"audit_key = pkcs11:token=t;object=audit\n"
	"[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	"[key dec]\nuri = pkcs11:token=t;object=dec\nops = decrypt\n"
	"[client sbc]\nuid = 1000\nkeys = tls, dec\nops = sign, decrypt\n";

/* token_proxy_up with a report of n keys on a fresh channel; *peer, if
 * not NULL, gets the token process's end of it. */
static int
up(struct token *t, size_t n, int audit, int *peer, char *err,
    size_t errlen)
{
	struct tw_info in;
	int sv[2], r;

	memset(&in, 0, sizeof(in));
	snprintf(in.ti.label, sizeof(in.ti.label), "t");
	in.n_all = n;
	in.has_audit_key = audit;
	if ((in.keys = calloc(n ? n : 1, sizeof(*in.keys))) == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		free(in.keys);
		return KEYD_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		in.keys[i].type = TOKEN_KEY_RSA;
	r = token_proxy_up(t, 0, 1, &sv[0], 1, &in, err, errlen);
	if (r != KEYD_OK)
		close(sv[0]);
	if (r == KEYD_OK && peer != NULL)
		*peer = sv[1];
	else
		close(sv[1]);
	tw_info_free(&in);
	return r;
}

int
main(void)
{
	struct config *c = NULL;
	struct token *t = NULL;
	char err[512];
	int sv[2], peer = -1;
	uint32_t huge = TW_MAX_FRAME, w;
	struct token_session s;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	uint8_t out[64];
	size_t outlen;
	struct kbuf b;

	if (config_parse_buffer(conf, strlen(conf), "t.conf", 0, &c, err,
	    sizeof(err)) != KEYD_OK) {
		fprintf(stderr, "parse: %s\n", err);
		return 1;
	}
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK_INT(token_proxy_new(c, sv[0], &t), KEYD_OK);
	if (t == NULL)
		return ktest_result("test_token_proxy");

	/* Fewer keys than configured: keyd would look up keys it lacks. */
	err[0] = '\0';
	CHECK_INT(up(t, 1, 1, NULL, err, sizeof(err)), KEYD_ERR_CONFIG);
	CHECKF(strstr(err, "not the 3") != NULL, "%s", err);
	CHECK(token_key(t, 1) == NULL);
	/* More, or the audit key missing. */
	CHECK_INT(up(t, 4, 1, NULL, err, sizeof(err)), KEYD_ERR_CONFIG);
	CHECK_INT(up(t, 3, 0, NULL, err, sizeof(err)), KEYD_ERR_CONFIG);
	CHECK(token_key(t, 1) == NULL);
	/* The configured keys and the audit key. */
	CHECK_INT(up(t, 3, 1, &peer, err, sizeof(err)), KEYD_OK);
	CHECK(token_key(t, 1) != NULL);

	/* A reply longer than any reply may be (EMSGSIZE): the process is
	 * not dead, so only the report makes the supervisor replace it. */
	CHECK(write(peer, &huge, sizeof(huge)) == (ssize_t)sizeof(huge));
	memset(&s, 0, sizeof(s));
	outlen = sizeof(out);
	CHECK_INT(token_sign(t, &s, 0, &mech, out, 32, out, &outlen, err,
	    sizeof(err)), KEYD_ERR_TOKEN);
	kbuf_init(&b, 64, 0);
	CHECK(tw_recv(sv[1], &b, 64, NULL, NULL, tw_now_ms() + 2000) == 0 &&
	    tw_get_word(&b, &w) == KEYD_OK && w == TW_CTL_HUNG &&
	    tw_get_word(&b, &w) == KEYD_OK && w == 0);
	kbuf_free(&b);
	close(peer);

	token_close(t);
	config_free(c);
	close(sv[0]);
	close(sv[1]);
	return ktest_result("test_token_proxy");
}
