/*
 * fuzz_config.c: the configuration parser (config_parse_buffer, the code
 * config_load runs on a file's bytes) on arbitrary text, without the
 * file-system checks of the module path. Besides the sanitizers it checks
 * config.h's contract: a config exactly when KEYD_OK, otherwise one line
 * of error text; and on a config that parsed, that the policy answers
 * agree with it (every key is found by its name; a client may use a key
 * for an op only as the policy rule says).
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "keyd_err.h"
#include "policy.h"

/* How many keys and clients of a parsed config the policy checks walk:
 * enough for every seed, and bounded so that an input with 256 of each
 * stays fast. */
#define FUZZ_CONFIG_WALK 16

static const unsigned fuzz_ops[] = { CONFIG_OP_SIGN, CONFIG_OP_DECRYPT,
	CONFIG_OP_SRTP_NEW, CONFIG_OP_SRTP_OPEN };

static void
check_policy(const struct config *c)
{
	char msg[256];
	size_t i, k, o, idx;

	for (i = 0; i < c->n_keys && i < FUZZ_CONFIG_WALK; i++)
		fuzz_check(config_find_key(c, c->keys[i].name) == (long)i);
	for (i = 0; i < c->n_clients && i < FUZZ_CONFIG_WALK; i++) {
		const struct config_client *cl = &c->clients[i];

		fuzz_check(cl->n_uids > 0 || cl->n_gids > 0);
		for (k = 0; k < cl->n_keys; k++)
			fuzz_check(cl->keys[k] < c->n_keys);
		for (k = 0; k < c->n_keys && k < FUZZ_CONFIG_WALK; k++) {
			int has = policy_client_has_key(c, i, k);

			for (o = 0; o < sizeof(fuzz_ops) / sizeof(fuzz_ops[0]);
			    o++) {
				unsigned op = fuzz_ops[o];
				int r = policy_check(c, i, c->keys[k].name, op,
				    &idx, msg, sizeof(msg));
				int want = has && (cl->ops & op) &&
				    (c->keys[k].ops & op);

				fuzz_check((r == KEYD_OK) == want);
				fuzz_check(r != KEYD_OK || idx == k);
				fuzz_check(r == KEYD_OK ||
				    memchr(msg, '\0', sizeof(msg)) != NULL);
			}
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char err[512];
	int r;

	memset(err, 'x', sizeof(err));
	r = config_parse_buffer((const char *)data, size, "fuzz.conf", 0, &c,
	    err, sizeof(err));
	fuzz_check(memchr(err, '\0', sizeof(err)) != NULL);
	if (r == KEYD_OK) {
		fuzz_check(c != NULL);
		fuzz_check(c->module != NULL && c->token != NULL &&
		    c->audit_log != NULL);
		check_policy(c);
	} else {
		fuzz_check(c == NULL);
		fuzz_check(err[0] != '\0');
		fuzz_check(strchr(err, '\n') == NULL);
	}
	config_free(c);
	return 0;
}
