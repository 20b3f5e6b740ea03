/*
 * test_config: keyd's configuration parser (keyd/common/config.c). Every refusal
 * must come with the file name and the line to fix ("t.conf:12: ..."),
 * and a good file must parse to exactly what it says. config_load's file
 * checks (mode, owner, symlink) and config_check_module's checks of the
 * module's path run on real files made here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keyd_err.h"
#include "ktest.h"

#define NAME "t.conf"
#define NOBODY 65534

/* Lines 1-6: a valid [keyd] section. */
#define BASE \
	"[keyd]\n" \
	"socket = /run/keyd/keyd.sock\n" \
	"module = /usr/lib/softhsm/libsofthsm2.so\n" \
	"token = pkcs11:token=sbc\n" \
	"pin_file = /etc/keyd/pin\n" \
	"audit_log = /var/log/keyd/audit.jsonl\n"

/* Lines 7-9: one valid key. */
#define KEY_A \
	"[key a]\n" \
	"uri = pkcs11:token=sbc;object=a;type=private\n" \
	"ops = sign\n"

static int
parse(const char *text, struct config **c, char *err, size_t errlen)
{
	return config_parse_buffer(text, strlen(text), NAME, 0, c, err, errlen);
}

/*
 * The text must be refused with "t.conf:LINE: " (or "t.conf: " for
 * line 0, a whole-file problem) followed by a message containing what.
 */
static void
refuse_at(int caller, const char *text, int line, const char *what)
{
	struct config *c = (struct config *)1;
	char err[512], prefix[64];
	int r;

	memset(err, 'X', sizeof(err));
	r = parse(text, &c, err, sizeof(err));
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", NAME, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", NAME);
	ktest_checks++;
	if (r != KEYD_ERR_CONFIG || c != NULL ||
	    strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err + strlen(prefix), what) == NULL) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: want refusal \"%s...%s\", got %d: "
		    "\"%.300s\"\n", __FILE__, caller, prefix, what, r,
		    r == KEYD_OK ? "(accepted)" : err);
	}
	if (r == KEYD_OK)
		config_free(c);
}
#define REFUSE(text, line, what) refuse_at(__LINE__, text, line, what)

static struct config *
accept_at(int caller, const char *text)
{
	struct config *c = NULL;
	char err[512] = "";
	int r = parse(text, &c, err, sizeof(err));

	ktest_checks++;
	if (r != KEYD_OK || c == NULL) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: refused (%d): %s\n", __FILE__, caller,
		    r, err);
		return NULL;
	}
	return c;
}
#define ACCEPT(text) accept_at(__LINE__, text)

static void
test_good(void)
{
	struct config *c = ACCEPT(
	    "; a comment\n"
	    "# another\n"
	    "\n"
	    "[keyd]\n"
	    "socket = /run/keyd/keyd.sock\n"
	    "socket_group = 0\n"
	    "module = /usr/lib/softhsm/libsofthsm2.so\n"
	    "token = pkcs11:token=sbc\n"
	    "pin_file = /etc/keyd/pin\n"
	    "audit_log = /var/log/keyd/audit.jsonl\n"
	    "audit_sync = request\n"
	    "audit_sync_ms = 25\n"
	    "max_connections = 100\n"
	    "max_frame = 4096\n"
	    "max_inflight = 8\n"
	    "idle_timeout = 60\n"
	    "workers = 3\n"
	    "[key sip-tls]\n"
	    "uri = pkcs11:token=sbc;object=sip-tls;type=private\n"
	    "ops = sign, decrypt   ; inline comment\n"
	    "pkcs1_decrypt = no\n"
	    "[key other.key_2]\n"
	    "uri = pkcs11:token=sbc;object=other\n"
	    "ops = sign\n"
	    "[client sbc]\n"
	    "uid = 1000, root\n"
	    "gid = 2000\n"
	    "keys = other.key_2, sip-tls\n"
	    "ops = sign,status\n"
	    "rate = 120/m\n"
	    "max_connections = 7\n"
	    "[client ops]\n"
	    "gid = 3000\n"
	    "ops = status\n");

	if (c == NULL)
		return;
	CHECK(strcmp(c->path, NAME) == 0);
	CHECK(strcmp(c->socket, "/run/keyd/keyd.sock") == 0);
	CHECK_INT(c->has_socket_gid, 1);
	CHECK_INT(c->socket_gid, 0);
	CHECK(strcmp(c->module, "/usr/lib/softhsm/libsofthsm2.so") == 0);
	CHECK(strcmp(c->token, "pkcs11:token=sbc") == 0);
	CHECK(strcmp(c->pin_file, "/etc/keyd/pin") == 0);
	CHECK(strcmp(c->audit_log, "/var/log/keyd/audit.jsonl") == 0);
	CHECK_INT(c->audit_sync, CONFIG_SYNC_REQUEST);
	CHECK_INT(c->audit_sync_ms, 25);
	CHECK_INT(c->max_connections, 100);
	CHECK_INT(c->max_frame, 4096);
	CHECK_INT(c->max_inflight, 8);
	CHECK_INT(c->idle_timeout_s, 60);
	CHECK_INT(c->workers, 3);
	CHECK(c->user == NULL);
	CHECK_INT(c->n_keys, 2);
	CHECK_INT(c->n_clients, 2);
	if (c->n_keys == 2 && c->n_clients == 2) {
		const struct config_client *cl = &c->clients[0];

		CHECK(strcmp(c->keys[0].name, "sip-tls") == 0);
		CHECK(strcmp(c->keys[0].uri,
		    "pkcs11:token=sbc;object=sip-tls;type=private") == 0);
		CHECK_INT(c->keys[0].ops, CONFIG_OP_SIGN | CONFIG_OP_DECRYPT);
		CHECK_INT(c->keys[0].pkcs1_decrypt, 0);
		CHECK_INT(c->keys[0].line, 18);
		CHECK(strcmp(c->keys[1].name, "other.key_2") == 0);
		CHECK_INT(c->keys[1].ops, CONFIG_OP_SIGN);
		CHECK(strcmp(cl->name, "sbc") == 0);
		CHECK_INT(cl->line, 25);
		CHECK_INT(cl->n_uids, 2);
		if (cl->n_uids == 2) {
			CHECK_INT(cl->uids[0], 1000);
			CHECK_INT(cl->uids[1], 0);     /* root, by name */
		}
		CHECK_INT(cl->n_gids, 1);
		CHECK_INT(cl->n_keys, 2);
		if (cl->n_keys == 2) {
			CHECK_INT(cl->keys[0], 1);     /* other.key_2 */
			CHECK_INT(cl->keys[1], 0);     /* sip-tls */
		}
		CHECK_INT(cl->ops, CONFIG_OP_SIGN | CONFIG_OP_STATUS);
		CHECK(cl->rate > 1.999 && cl->rate < 2.001);
		CHECK_INT(cl->max_connections, 7);
		CHECK_INT(c->clients[1].n_keys, 0);
		CHECK_INT(c->clients[1].ops, CONFIG_OP_STATUS);
		CHECK_INT(config_find_key(c, "sip-tls"), 0);
		CHECK_INT(config_find_key(c, "other.key_2"), 1);
		CHECK_INT(config_find_key(c, "nope"), -1);
	}
	config_free(c);

	/* Defaults. */
	c = ACCEPT(BASE);
	if (c != NULL) {
		CHECK_INT(c->max_connections, CONFIG_DEFAULT_MAX_CONNECTIONS);
		CHECK_INT(c->max_inflight, CONFIG_DEFAULT_MAX_INFLIGHT);
		CHECK_INT(c->idle_timeout_s, CONFIG_DEFAULT_IDLE_TIMEOUT_S);
		CHECK_INT(c->audit_sync, CONFIG_SYNC_INTERVAL);
		CHECK_INT(c->max_frame, 64 * 1024);
		CHECK_INT(c->has_socket_gid, 0);
		CHECK_INT(c->n_keys, 0);
		CHECK(strcmp(c->syslog_socket, "/dev/log") == 0);
		config_free(c);
	}

	/* A client without max_connections gets its share of the global
	 * limit (at least 1); one that sets it keeps its own. */
	c = ACCEPT(BASE "max_connections = 8\n"
	    "[client a]\nuid = 1\nops = status\n"
	    "[client b]\nuid = 2\nops = status\n"
	    "[client c]\nuid = 3\nops = status\nmax_connections = 6\n");
	if (c != NULL) {
		CHECK_INT(c->clients[0].max_connections, 2);
		CHECK_INT(c->clients[1].max_connections, 2);
		CHECK_INT(c->clients[2].max_connections, 6);
		config_free(c);
	}
	c = ACCEPT(BASE "max_connections = 1\n"
	    "[client a]\nuid = 1\nops = status\n"
	    "[client b]\nuid = 2\nops = status\n");
	if (c != NULL) {
		CHECK_INT(c->clients[0].max_connections, 1);
		CHECK_INT(c->clients[1].max_connections, 1);
		config_free(c);
	}
	/* The socket defaults to the documented path. */
	c = ACCEPT(
	    "[keyd]\n"
	    "module = /m.so\n"
	    "token = pkcs11:token=x\n"
	    "pin_file = /p\n"
	    "audit_log = /a\n");
	if (c != NULL) {
		CHECK(strcmp(c->socket, CONFIG_DEFAULT_SOCKET) == 0);
		config_free(c);
	}
}

static void
test_sections(void)
{
	REFUSE(BASE "[keys a]\nuri = pkcs11:x\n", 7, "unknown section [keys a]");
	REFUSE(BASE "\n; c\n[bogus]\nx = 1\n", 9, "unknown section [bogus]");
	/* The header's line is named, not the first setting's. */
	REFUSE(BASE "[bogus]\n\n\nx = 1\n", 7, "unknown section [bogus]");
	REFUSE("socket = /x\n[keyd]\n", 1,
	    "setting 'socket' outside a section");
	REFUSE("\n\n  \nmodule = /x\n" BASE, 4,
	    "setting 'module' outside a section");
	REFUSE(BASE KEY_A "[key a]\nuri = pkcs11:token=sbc;object=b\n", 10,
	    "key 'a' is defined twice");
	REFUSE(BASE "[client c]\nuid = 1\nops = sign\n"
	    "[client c]\nuid = 2\nops = sign\n", 10,
	    "client 'c' is defined twice");
	REFUSE(BASE "[key bad/name]\nuri = pkcs11:x\n", 7, "a key name is");
	REFUSE(BASE "[key ]\nuri = pkcs11:x\n", 7, "a key name is");
	REFUSE(BASE "[client a b]\nuid = 1\n", 7, "a client name is");
	/* inih keeps 49 characters of a section name and drops the rest
	 * silently: a longer header is refused, not cut. */
	REFUSE(BASE "[key "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "]\nuri = pkcs11:x\nops = sign\n", 7,
	    "section header is longer than 49 characters");
	{
		struct config *c = ACCEPT(BASE "[key "
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "]\nuri = pkcs11:x\nops = sign\n");

		if (c != NULL && c->n_keys == 1)
			CHECK_INT(strlen(c->keys[0].name), 45);
		config_free(c);
	}
	/* A section repeated right after itself is still a duplicate. */
	REFUSE(BASE KEY_A "[key a]\npkcs1_decrypt = no\n", 10,
	    "key 'a' is defined twice");
	REFUSE(BASE "[keyd]\nworkers = 2\n", 7, "[keyd] appears twice");
	/* Syntax: a header without ']' and a line without '='. */
	/* A broken header is named itself, not the settings after it that
	 * would otherwise land in the section before. */
	REFUSE(BASE "[key a\nuri = pkcs11:x\n", 7, "syntax error");
	REFUSE(BASE "justaword\n", 7, "syntax error");
}

static void
test_unknown_settings(void)
{
	REFUSE(BASE "colour = blue\n", 7, "unknown setting 'colour' in [keyd]");
	REFUSE(BASE KEY_A "colour = blue\n", 10,
	    "unknown setting 'colour' in [key a]");
	REFUSE(BASE "[client c]\nuid = 1\nops = sign\ncolour = blue\n", 10,
	    "unknown setting 'colour' in [client c]");
	/* A [keyd] setting in a [key] section, and the other way round. */
	REFUSE(BASE KEY_A "token = pkcs11:token=x\n", 10,
	    "unknown setting 'token' in [key a]");
	REFUSE(BASE "uri = pkcs11:token=x\n", 7,
	    "unknown setting 'uri' in [keyd]");
}

static void
test_duplicates(void)
{
	REFUSE(BASE "module = /usr/lib/other.so\n", 7,
	    "'module' is set twice in [keyd]");
	REFUSE(BASE KEY_A "ops = decrypt\n", 10, "'ops' is set twice in [key a]");
	REFUSE(BASE KEY_A "[client c]\nuid = 1\nops = sign\nkeys = a\n"
	    "uid = 2\n", 14, "'uid' is set twice in [client c]");
	/* The same setting in two sections is fine. */
	config_free(ACCEPT(BASE KEY_A "[key b]\nuri = pkcs11:token=sbc;"
	    "object=b\nops = sign\n"));
	/* A second [keyd] section would let a setting be given twice. */
	REFUSE(BASE KEY_A "[keyd]\nmodule = /usr/lib/other.so\n", 10,
	    "[keyd] appears twice");
	/* Duplicate items within a list. */
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = sign, sign\n", 9,
	    "op 'sign' is listed twice");
	REFUSE(BASE "[client c]\nuid = 5, 5\nops = sign\n", 8,
	    "'5' is listed twice");
	REFUSE(BASE KEY_A "[client c]\nuid = 1\nops = sign\nkeys = a, a\n", 13,
	    "'a' is listed twice");
}

static void
test_required(void)
{
	/* A missing [keyd] setting is a whole-file problem: no line. */
	REFUSE("[keyd]\ntoken = pkcs11:token=x\npin_file = /p\n"
	    "audit_log = /a\n", 0, "[keyd] module");
	REFUSE("[keyd]\nmodule = /m.so\npin_file = /p\naudit_log = /a\n", 0,
	    "[keyd] token");
	/* pin_file may be left out: the PIN then comes from a systemd
	 * credential (keyd_main.c). */
	{
		struct config *c = ACCEPT("[keyd]\nmodule = /m.so\n"
		    "token = pkcs11:token=x\naudit_log = /a\n");

		if (c != NULL)
			CHECK(c->pin_file == NULL);
		config_free(c);
	}
	REFUSE("[keyd]\nmodule = /m.so\ntoken = pkcs11:token=x\n"
	    "pin_file = /p\n", 0, "[keyd] audit_log");
	REFUSE("", 0, "is required");
	REFUSE("[keyd]\nmodule =\ntoken = pkcs11:token=x\npin_file = /p\n"
	    "audit_log = /a\n", 2, "module = '': must be an absolute path");
	/* An empty value leaves a setting unset. */
	{
		struct config *c = ACCEPT(BASE "user =\nsocket_group =\n");

		if (c != NULL)
			CHECK(c->user == NULL && c->socket_group == NULL &&
			    !c->has_socket_gid);
		config_free(c);
	}
}

static void
test_keys(void)
{
	REFUSE(BASE "\n[key a]\nops = sign\n", 8, "[key a] has no uri");
	REFUSE(BASE "[key a]\nuri = pkcs11:token=sbc;object=a\n", 7,
	    "[key a] has no ops");
	REFUSE(BASE "[key a]\nuri = /etc/key.pem\n", 8,
	    "expected a PKCS#11 URI");
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = sign, fly\n", 9,
	    "unknown op 'fly'");
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = Sign\n", 9,
	    "unknown op 'Sign'");
	/* status is a client's op, not a key's. */
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = status\n", 9,
	    "unknown op 'status'");
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = sign, ,decrypt\n", 9,
	    "empty item in list");
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = ,\n", 9, "ops");
	/* RSA PKCS#1 v1.5 decryption through the token is a padding
	 * oracle: nothing but the known safe values is accepted. */
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = decrypt\n"
	    "pkcs1_decrypt = yes\n", 10, "pkcs1_decrypt = 'yes'");
	REFUSE(BASE "[key a]\nuri = pkcs11:x\nops = decrypt\n"
	    "pkcs1_decrypt = passthrough\n", 10,
	    "pkcs1_decrypt = 'passthrough'");
}

/* STIR/SHAKEN settings (docs/shaken.md). */
#define PKEY \
	"[key p]\n" \
	"uri = pkcs11:token=sbc;object=p;type=private\n" \
	"ops = passport\n" \
	"x5u = https://cert.example.org/p.pem\n"

static void
test_passport(void)
{
	/* Lines 7-10: PKEY; a client from line 11. */
	struct config *c = ACCEPT(BASE PKEY "certificate = /etc/keyd/p.pem\n"
	    "[client c]\nuid = 1\nkeys = p\nops = passport\n"
	    "attest_max = B\n"
	    "orig_tns = 12025550100, 1312555*, 14155550100-14155550199\n");

	if (c != NULL) {
		const struct config_client *cl = &c->clients[0];

		CHECK(c->keys[0].ops == CONFIG_OP_PASSPORT);
		CHECK(strcmp(c->keys[0].certificate, "/etc/keyd/p.pem") == 0);
		CHECK(cl->attest_max == CONFIG_ATTEST_B);
		CHECK_INT((int)cl->n_orig_tns, 3);
		CHECK(strcmp(cl->orig_tns[0].lo, "12025550100") == 0 &&
		    cl->orig_tns[0].hi[0] == '\0' && !cl->orig_tns[0].prefix);
		CHECK(strcmp(cl->orig_tns[1].lo, "1312555") == 0 &&
		    cl->orig_tns[1].prefix);
		CHECK(strcmp(cl->orig_tns[2].lo, "14155550100") == 0 &&
		    strcmp(cl->orig_tns[2].hi, "14155550199") == 0);
		CHECK(c->audit_tn == CONFIG_AUDIT_TN_CLEAR);
	}
	config_free(c);
	/* With sign, a client could make any PASSporT it likes. */
	REFUSE(BASE "[key p]\nuri = pkcs11:x\nops = passport, sign\n"
	    "x5u = https://a.example/c.pem\n", 7,
	    "[key p] has passport and other ops");
	REFUSE(BASE "[key p]\nuri = pkcs11:x\nops = passport\n", 7,
	    "[key p] has ops = passport but no x5u");
	REFUSE(BASE KEY_A "x5u = https://a.example/c.pem\n", 7,
	    "[key a] has x5u but not the passport op");
	REFUSE(BASE KEY_A "certificate = /c.pem\n", 7,
	    "[key a] has certificate but not the passport op");
	REFUSE(BASE "[key p]\nuri = pkcs11:x\nops = passport\n"
	    "x5u = http://a.example/c.pem\n", 10, "x5u = 'http://a.example");
	REFUSE(BASE "[key p]\nuri = pkcs11:x\nops = passport\n"
	    "x5u = https://a.example/c\"d\n", 10, "x5u: the URL must be");
	REFUSE(BASE "[key p]\nuri = pkcs11:x\nops = passport\n"
	    "x5u = https://a.example/c>;x\n", 10, "x5u: the URL must be");
	REFUSE(BASE PKEY "certificate = p.pem\n", 11,
	    "certificate = 'p.pem': must be an absolute path");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nkeys = p\nops = passport\n",
	    11, "[client c] has the passport op but no attest_max");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = sign\nattest_max = A\n",
	    11, "[client c] has attest_max but not the passport op");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = sign\n"
	    "orig_tns = 1202*\n", 11,
	    "[client c] has orig_tns but not the passport op");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "attest_max = a\n", 14, "attest_max = 'a': expected A, B or C");
	/* Canonical TNs only: no '+', no separators, 1 to 15 digits. */
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = +12025550100\n", 14, "'+12025550100' is not a TN");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = 1234567890123456\n", 14, "is not a TN");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = *\n", 14, "'*' is not a prefix of digits");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = 12*3\n", 14, "is not a TN");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = 100-1000\n", 14,
	    "'100-1000' is not a range of two TNs of the same length");
	REFUSE(BASE PKEY "[client c]\nuid = 1\nops = passport\n"
	    "orig_tns = 200-100\n", 14, "the range '200-100' ends before it "
	    "starts");
	REFUSE(BASE "audit_tn = hash\n", 7,
	    "audit_tn = 'hash': expected clear or hmac");
	REFUSE(BASE "audit_tn = hmac\n", 0, "audit_tn = hmac needs "
	    "audit_tn_key");
	REFUSE(BASE "audit_tn_key = /k\n", 7, "audit_tn_key = '/k': expected "
	    "a PKCS#11 URI");
	c = ACCEPT(BASE "audit_tn = hmac\naudit_tn_key = pkcs11:object=k\n");
	if (c != NULL)
		CHECK(c->audit_tn == CONFIG_AUDIT_TN_HMAC);
	config_free(c);
}

static void
test_clients(void)
{
	REFUSE(BASE KEY_A "[client c]\nops = sign\nkeys = a\n", 10,
	    "[client c] needs a uid or a gid");
	REFUSE(BASE KEY_A "[client c]\nuid = 1\nkeys = a\n", 10,
	    "[client c] has no ops");
	REFUSE(BASE KEY_A "[client c]\nuid = 1\nops = sign\nkeys = a, b\n", 13,
	    "[client c] keys: no [key b] is defined");
	REFUSE(BASE KEY_A "[client c]\nuid = 1\nops = sign, fly\n", 12,
	    "unknown op 'fly'");
	REFUSE(BASE "[client c]\nuid = no-such-user-keyd-test\nops = sign\n",
	    8, "no user named 'no-such-user-keyd-test'");
	REFUSE(BASE "[client c]\ngid = no-such-group-keyd-test\nops = sign\n",
	    8, "no group named 'no-such-group-keyd-test'");
	REFUSE(BASE "[client c]\nuid = 12abc\nops = sign\n", 8,
	    "'12abc' is not a valid uid");
	REFUSE(BASE "[client c]\nuid = 4294967295\nops = sign\n", 8,
	    "not a valid uid");
	REFUSE(BASE "[client c]\ngid = 99999999999999999999\nops = sign\n", 8,
	    "not a valid gid");
	/* One peer, one client: a uid or gid in two sections is refused at
	 * the second section's header. */
	REFUSE(BASE "[client x]\nuid = 10, 11\nops = sign\n\n"
	    "[client y]\nops = sign\nuid = 12, 11\n", 11,
	    "[client x] and [client y] both match uid 11");
	REFUSE(BASE "[client x]\ngid = 20\nops = sign\n"
	    "[client y]\ngid = 21\nops = sign\n"
	    "[client z]\nops = sign\ngid = 20\n", 13,
	    "[client x] and [client z] both match gid 20");
	/* The same number as a uid in one and a gid in another is fine. */
	{
		struct config *c = ACCEPT(BASE "[client x]\nuid = 30\nops = sign\n"
		    "[client y]\ngid = 30\nops = sign\n");

		config_free(c);
	}
	REFUSE(BASE "[client c]\nuid = 1\nops = sign\nmax_connections = 2000\n",
	    7, "max_connections 2000 is over the daemon's max_connections 1024");
}

static void
test_numbers(void)
{
	REFUSE(BASE "syslog_socket = dev/log\n", 7,
	    "syslog_socket = 'dev/log': must be an absolute path");
	REFUSE(BASE "max_connections = 0\n", 7,
	    "max_connections = '0': expected a whole number from 1 to 65536");
	REFUSE(BASE "max_connections = 65537\n", 7, "from 1 to 65536");
	REFUSE(BASE "max_connections = -1\n", 7, "expected a whole number");
	REFUSE(BASE "max_connections = 12x\n", 7, "expected a whole number");
	REFUSE(BASE "max_connections = 99999999999999999999999\n", 7,
	    "expected a whole number");
	REFUSE(BASE "max_connections = \n", 7, "expected a whole number");
	REFUSE(BASE "max_frame = 1023\n", 7, "from 1024 to 1048576");
	REFUSE(BASE "max_frame = 1048577\n", 7, "from 1024 to 1048576");
	REFUSE(BASE "max_inflight = 0\n", 7, "max_inflight = '0'");
	REFUSE(BASE "max_inflight = 4097\n", 7, "from 1 to 4096");
	REFUSE(BASE "idle_timeout = 0\n", 7, "idle_timeout = '0'");
	REFUSE(BASE "idle_timeout = 86401\n", 7, "from 1 to 86400");
	REFUSE(BASE "workers = 65\n", 7, "workers = '65'");
	REFUSE(BASE "audit_sync_ms = 0\n", 7, "audit_sync_ms = '0'");
	REFUSE(BASE "audit_sync_ms = 10001\n", 7, "from 1 to 10000");
	REFUSE(BASE "audit_sync = sometimes\n", 7,
	    "audit_sync = 'sometimes': expected interval or request");
	REFUSE(BASE "[client c]\nuid = 1\nops = sign\nmax_connections = 0\n",
	    10, "max_connections = '0'");
	/* Boundaries that are allowed. */
	{
		struct config *c = ACCEPT(BASE "max_connections = 65536\n"
		    "max_frame = 1048576\nworkers = 0\nmax_inflight = 4096\n"
		    "idle_timeout = 86400\naudit_sync_ms = 10000\n");

		if (c != NULL) {
			CHECK_INT(c->max_connections, 65536);
			CHECK_INT(c->max_frame, 1048576);
			CHECK_INT(c->workers, 0);
		}
		config_free(c);
	}
}

static void
test_rate(void)
{
	static const char *const bad[] = {
		"5000", "5000/d", "5000/ s", "0/s", "-1/s", "abc/s", "/s",
		"1e9/s", "nan/s", "inf/s", "5000/sec",
	};
	char text[1024];
	struct config *c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), BASE "[client c]\nuid = 1\n"
		    "ops = sign\nrate = %s\n", bad[i]);
		refuse_at(__LINE__, text, 10, "rate = '");
	}
	c = ACCEPT(BASE "[client c]\nuid = 1\nops = sign\nrate = 5000/s\n");
	if (c != NULL && c->n_clients == 1)
		CHECK(c->clients[0].rate > 4999.9 && c->clients[0].rate < 5000.1);
	config_free(c);
	c = ACCEPT(BASE "[client c]\nuid = 1\nops = sign\nrate = 36/h\n");
	if (c != NULL && c->n_clients == 1)
		CHECK(c->clients[0].rate > 0.0099 && c->clients[0].rate < 0.0101);
	config_free(c);
}

static void
test_paths(void)
{
	REFUSE("[keyd]\nmodule = libsofthsm2.so\n", 2,
	    "module = 'libsofthsm2.so': must be an absolute path");
	REFUSE("[keyd]\npin_file = etc/pin\n", 2,
	    "pin_file = 'etc/pin': must be an absolute path");
	REFUSE("[keyd]\naudit_log = ./audit.jsonl\n", 2,
	    "audit_log = './audit.jsonl': must be an absolute path");
	REFUSE("[keyd]\nsocket = keyd.sock\n", 2,
	    "socket = 'keyd.sock': must be an absolute path");
	REFUSE("[keyd]\nsocket = /run/keyd/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock\n", 2,
	    "socket: path is longer than 107 bytes");
	REFUSE("[keyd]\ntoken = sbc\n", 2, "token = 'sbc': expected a PKCS#11 URI");
	REFUSE("[keyd]\nuser = no-such-user-keyd-test\n", 2,
	    "user: no user named 'no-such-user-keyd-test'");
	REFUSE("[keyd]\nsocket_group = no-such-group-keyd-test\n", 2,
	    "no group named 'no-such-group-keyd-test'");
	REFUSE("[keyd]\nsocket_group = 0, 1\n", 2, "socket_group: name one group");
}

/* Lines over the reader's limit are refused, with their line number;
 * lines just under it are fine. */
static void
test_long_lines(void)
{
	char text[8192];
	size_t n;
	struct config *c;

	n = (size_t)snprintf(text, sizeof(text), "%s[key a]\nuri = pkcs11:",
	    BASE);
	memset(text + n, 'z', 5000);
	strcpy(text + n + 5000, "\nops = sign\n");
	REFUSE(text, 8, "line is longer than");

	/* 180 characters of URI: fine. */
	n = (size_t)snprintf(text, sizeof(text), "%s[key a]\nuri = pkcs11:",
	    BASE);
	memset(text + n, 'z', 180 - 13);
	strcpy(text + n + 180 - 13, "\nops = sign\n");
	c = ACCEPT(text);
	if (c != NULL && c->n_keys == 1)
		CHECK_INT(strlen(c->keys[0].uri), 180 - 6);
	config_free(c);
}

static void
test_bytes(void)
{
	static const char nul[] = "[keyd]\nmodule = /a\0b\n";
	struct config *c = (struct config *)1;
	char err[256];

	CHECK_INT(config_parse_buffer(nul, sizeof(nul) - 1, NAME, 0, &c, err,
	    sizeof(err)), KEYD_ERR_CONFIG);
	CHECK(c == NULL);
	CHECKF(strstr(err, "t.conf:2: NUL byte") != NULL, "%s", err);
	/* A buffer over the limit is refused before it is read. */
	CHECK_INT(config_parse_buffer(nul, CONFIG_MAX_BYTES + 1, NAME, 0, &c,
	    err, sizeof(err)), KEYD_ERR_CONFIG);
	CHECKF(strstr(err, "larger than") != NULL, "%s", err);
	/* A tiny error buffer is never overrun and stays terminated. */
	{
		char small[8];

		memset(small, 'X', sizeof(small));
		CHECK_INT(config_parse_buffer("x = 1\n", 6, NAME, 0, &c, small,
		    sizeof(small)), KEYD_ERR_CONFIG);
		CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	}
}

static void
test_ops_names(void)
{
	CHECK(strcmp(config_op_name(CONFIG_OP_SIGN), "sign") == 0);
	CHECK(strcmp(config_op_name(CONFIG_OP_SRTP_OPEN), "srtp-open") == 0);
	CHECK(strcmp(config_op_name(1u << 20), "unknown") == 0);
	CHECK_INT(config_op_parse("decrypt"), CONFIG_OP_DECRYPT);
	CHECK_INT(config_op_parse("status"), CONFIG_OP_STATUS);
	CHECK_INT(config_op_parse("SIGN"), 0);
	CHECK_INT(config_op_parse(""), 0);
}

/* ---- files ---- */

static char tmpdir[PATH_MAX];

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
	if (chmod(path, mode) != 0)
		exit(1);
}

static void
load_refused_at(int caller, const char *path, const char *what)
{
	struct config *c = (struct config *)1;
	char err[512] = "";
	int r = config_load(path, &c, err, sizeof(err));

	ktest_checks++;
	if (r != KEYD_ERR_CONFIG || c != NULL || strstr(err, what) == NULL ||
	    strstr(err, path) == NULL) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: config_load(%s): want \"%s\", got %d: "
		    "%s\n", __FILE__, caller, path, what, r, err);
	}
	if (r == KEYD_OK)
		config_free(c);
}
#define LOAD_REFUSED(path, what) load_refused_at(__LINE__, path, what)

static const char *
softhsm_module(void)
{
	const char *m = getenv("SOFTHSM_MODULE");

	return m != NULL ? m : "/usr/lib/softhsm/libsofthsm2.so";
}

static void
test_load(void)
{
	char good[PATH_MAX + 32], link[PATH_MAX + 32], text[1024];
	struct config *c = NULL;
	char err[512] = "";
	int r;

	snprintf(good, sizeof(good), "%s/keyd.conf", tmpdir);
	snprintf(link, sizeof(link), "%s/link.conf", tmpdir);
	snprintf(text, sizeof(text), "[keyd]\nmodule = %s\n"
	    "token = pkcs11:token=sbc\npin_file = /etc/keyd/pin\n"
	    "audit_log = /var/log/keyd/audit.jsonl\ncolour = red\n",
	    softhsm_module());

	/* Parse errors from a file name the file. */
	write_file(good, text, 0600);
	r = config_load(good, &c, err, sizeof(err));
	CHECK_INT(r, KEYD_ERR_CONFIG);
	{
		char want[PATH_MAX + 64];

		snprintf(want, sizeof(want), "%s:6: unknown setting 'colour'",
		    good);
		CHECKF(strncmp(err, want, strlen(want)) == 0, "%s", err);
	}

	*strstr(text, "colour") = '\0';
	write_file(good, text, 0600);
	if (access(softhsm_module(), R_OK) != 0) {
		printf("SKIP part of test_load: %s missing\n", softhsm_module());
	} else {
		r = config_load(good, &c, err, sizeof(err));
		CHECKF(r == KEYD_OK, "%s", err);
		if (r == KEYD_OK) {
			char *real = realpath(softhsm_module(), NULL);

			/* module_real is the resolved path. */
			CHECK(real != NULL && c->module_real != NULL &&
			    strcmp(real, c->module_real) == 0);
			free(real);
			config_free(c);
		}
		/* Mode 0640 and 0400 are fine too. */
		write_file(good, text, 0440);
		r = config_load(good, &c, err, sizeof(err));
		CHECKF(r == KEYD_OK, "%s", err);
		if (r == KEYD_OK)
			config_free(c);
	}

	write_file(good, text, 0620);
	LOAD_REFUSED(good, "is writable by group or others (mode 0620)");
	write_file(good, text, 0602);
	LOAD_REFUSED(good, "is writable by group or others (mode 0602)");
	write_file(good, text, 0666);
	LOAD_REFUSED(good, "run chmod go-w");

	write_file(good, text, 0600);
	if (symlink(good, link) != 0)
		exit(1);
	LOAD_REFUSED(link, "must not be a symbolic link");

	snprintf(link, sizeof(link), "%s/missing.conf", tmpdir);
	LOAD_REFUSED(link, "cannot open configuration");
	LOAD_REFUSED(tmpdir, "is not a regular file");

	/* A config owned by someone else (who could rewrite it). */
	if (geteuid() == 0) {
		if (chown(good, NOBODY, NOBODY) != 0)
			exit(1);
		LOAD_REFUSED(good, "is owned by uid 65534");
		if (chown(good, 0, 0) != 0)
			exit(1);
	} else {
		printf("SKIP owner check of config_load: not root\n");
	}
}

static void
module_refused_at(int caller, const char *path, const char *what)
{
	char *res = (char *)1, err[512] = "";
	int r = config_check_module(path, &res, err, sizeof(err));

	ktest_checks++;
	if (r != KEYD_ERR_CONFIG || res != NULL || strstr(err, what) == NULL) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: config_check_module(%s): want \"%s\", "
		    "got %d: %s\n", __FILE__, caller, path, what, r, err);
	}
	if (r == KEYD_OK)
		free(res);
}
#define MODULE_REFUSED(path, what) module_refused_at(__LINE__, path, what)

/* 1 if dir and all its parents are root-owned and not group/world
 * writable: where a module may live. */
static int
safe_dir_chain(const char *dir)
{
	char *d = realpath(dir, NULL), *slash;
	struct stat st;
	int ok = d != NULL;

	while (ok) {
		if (stat(d, &st) != 0 || st.st_uid != 0 ||
		    (st.st_mode & (S_IWGRP | S_IWOTH)))
			ok = 0;
		if (strcmp(d, "/") == 0)
			break;
		slash = strrchr(d, '/');
		if (slash == d)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(d);
	return ok;
}

static void
test_module(void)
{
	const char *build = getenv("KEYD_BUILD_DIR");
	char base[PATH_MAX], dir[PATH_MAX + 16], mod[PATH_MAX + 32],
	    lnk[PATH_MAX + 32], in_tmp[PATH_MAX + 32];
	char *res = NULL, err[512] = "";
	int r;

	/* Under /tmp (world-writable, sticky): refused for the directory. */
	snprintf(in_tmp, sizeof(in_tmp), "%s/mod.so", tmpdir);
	write_file(in_tmp, "not really a module", 0755);
	MODULE_REFUSED(in_tmp, "module directory /tmp must be owned by root "
	    "and not writable by group or others");
	MODULE_REFUSED("/nonexistent/keyd/module.so", "module "
	    "/nonexistent/keyd/module.so: No such file or directory");
	MODULE_REFUSED(tmpdir, "not a regular file");

	if (build == NULL || geteuid() != 0 || !safe_dir_chain(build)) {
		printf("SKIP module owner checks: needs root and a build "
		    "directory owned by root, not group/world writable "
		    "(KEYD_BUILD_DIR=%s)\n", build ? build : "(unset)");
		return;
	}
	snprintf(base, sizeof(base), "%s/tests", build);
	mkdir(base, 0755);
	snprintf(dir, sizeof(dir), "%s/modXXXXXX", base);
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) != 0)
		exit(1);
	snprintf(mod, sizeof(mod), "%s/mod.so", dir);
	snprintf(lnk, sizeof(lnk), "%s/link.so", dir);
	write_file(mod, "module", 0755);

	r = config_check_module(mod, &res, err, sizeof(err));
	CHECKF(r == KEYD_OK && res != NULL && strcmp(res, mod) == 0, "%d %s",
	    r, err);
	free(res);
	res = NULL;
	/* A symlink is resolved to the file it names. */
	if (symlink("mod.so", lnk) != 0)
		exit(1);
	r = config_check_module(lnk, &res, err, sizeof(err));
	CHECKF(r == KEYD_OK && res != NULL && strcmp(res, mod) == 0, "%d %s",
	    r, err);
	free(res);

	if (chmod(mod, 0775) != 0)
		exit(1);
	MODULE_REFUSED(mod, "(owner uid 0, mode 0775)");
	if (chmod(mod, 0757) != 0)
		exit(1);
	MODULE_REFUSED(lnk, "must be owned by root and not writable by group "
	    "or others (owner uid 0, mode 0757)");
	if (chmod(mod, 0755) != 0 || chown(mod, NOBODY, NOBODY) != 0)
		exit(1);
	MODULE_REFUSED(mod, "(owner uid 65534, mode 0755)");
	if (chown(mod, 0, 0) != 0)
		exit(1);
	/* The directory: world-writable, group-writable, not root's. */
	if (chmod(dir, 0777) != 0)
		exit(1);
	MODULE_REFUSED(mod, "module directory");
	MODULE_REFUSED(mod, "(owner uid 0, mode 0777)");
	if (chmod(dir, 0775) != 0)
		exit(1);
	MODULE_REFUSED(mod, "(owner uid 0, mode 0775)");
	if (chmod(dir, 0755) != 0 || chown(dir, NOBODY, NOBODY) != 0)
		exit(1);
	MODULE_REFUSED(mod, "(owner uid 65534, mode 0755)");
	if (chown(dir, 0, 0) != 0)
		exit(1);
	r = config_check_module(mod, &res, err, sizeof(err));
	CHECKF(r == KEYD_OK, "%s", err);
	if (r == KEYD_OK)
		free(res);

	/* check_files = 1 in config_parse_buffer runs the same check. */
	{
		char text[PATH_MAX + 256];
		struct config *c = NULL;

		if (chmod(mod, 0777) != 0)
			exit(1);
		snprintf(text, sizeof(text), "[keyd]\nmodule = %s\n"
		    "token = pkcs11:token=x\npin_file = /p\naudit_log = /a\n",
		    mod);
		CHECK_INT(config_parse_buffer(text, strlen(text), NAME, 1, &c,
		    err, sizeof(err)), KEYD_ERR_CONFIG);
		CHECKF(strstr(err, "mode 0777") != NULL, "%s", err);
		CHECK(c == NULL);
	}
	unlink(lnk);
	unlink(mod);
	rmdir(dir);
}

static void
cleanup_tmp(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/keyd-test-config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0755) != 0) {
		perror("mkdtemp");
		return 1;
	}
	test_good();
	test_sections();
	test_unknown_settings();
	test_duplicates();
	test_required();
	test_keys();
	test_clients();
	test_passport();
	test_numbers();
	test_rate();
	test_paths();
	test_long_lines();
	test_bytes();
	test_ops_names();
	test_load();
	test_module();
	cleanup_tmp();
	return ktest_result("test_config");
}
