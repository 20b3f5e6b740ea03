/*
 * test_reload: what a reload compares (keyd/daemon/reload.c): a change
 * of a restart-only setting is refused with its name as the file spells
 * it and the reason, reloadable ones are not; the summary names clients
 * and keys added, removed and changed; the hash is SHA-256 (FIPS 180-2's
 * "abc" vector); the memfd holds the bytes and refuses writes once sealed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "keyd_err.h"
#include "ktest.h"
#include "reload.h"

#define HEAD \
	"[keyd]\n" \
	"module = /m.so\n" \
	"token = pkcs11:token=t\n" \
	"pin_file = /p\n" \
	"audit_log = /a\n"

static const char base[] = HEAD
	"[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	"[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n";

static struct config *
parse(const char *text)
{
	struct config *c = NULL;
	char err[512];

	if (config_parse_buffer(text, strlen(text), "t.conf", 0, &c, err,
	    sizeof(err)) != KEYD_OK) {
		fprintf(stderr, "parse: %s\n", err);
		return NULL;
	}
	return c;
}

/* The reason a change of base to text is refused, or "" if it is not. */
static void
why_of(const char *text, char *why, size_t n)
{
	struct config *a = parse(base), *b = parse(text);

	why[0] = '\0';
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL && !reload_restart_only(a, b, why, n))
		why[0] = '\0';
	config_free(a);
	config_free(b);
}

static void
summary_of(const char *from, const char *to, char *out, size_t n)
{
	struct config *a = parse(from), *b = parse(to);

	out[0] = '\0';
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL)
		reload_summary(a, NULL, b, NULL, out, n);
	config_free(a);
	config_free(b);
}

int
main(void)
{
	char why[512], sum[RELOAD_SUMMARY_MAX], hex[RELOAD_HASH_HEX + 1];
	char buf[16];
	int fd;

	why_of(base, why, sizeof(why));
	CHECK(strcmp(why, "") == 0);
	why_of(HEAD "socket = /run/other.sock\n"
	    "[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n", why,
	    sizeof(why));
	CHECKF(strcmp(why, "socket cannot change on reload (the socket is "
	    "bound once, before the sandbox); restart keyd") == 0, "%s", why);
	why_of(HEAD "token_timeout = 1000\n"
	    "[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n", why,
	    sizeof(why));
	CHECKF(strncmp(why, "token_timeout cannot change on reload", 37) == 0,
	    "%s", why);
	/* Reloadable: limits, keys, clients. */
	why_of(HEAD "max_connections = 10\naudit_checkpoint_lines = 5\n"
	    "[key tls]\nuri = pkcs11:token=t;object=tls2\nops = sign\n"
	    "[key k2]\nuri = pkcs11:token=t;object=k2\nops = sign\n"
	    "[client sbc]\nuid = 1001\nkeys = tls, k2\nops = sign\n"
	    "rate = 5/s\n", why, sizeof(why));
	CHECKF(strcmp(why, "") == 0, "%s", why);

	summary_of(base, base, sum, sizeof(sum));
	CHECKF(strcmp(sum, "no change") == 0, "%s", sum);
	summary_of(base, HEAD
	    "[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	    "[key k2]\nuri = pkcs11:token=t;object=k2\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n"
	    "max_connections = 3\n"
	    "[client new]\nuid = 1001\nkeys = k2\nops = sign\n"
	    "max_connections = 3\n", sum, sizeof(sum));
	CHECKF(strcmp(sum, "clients ~sbc +new; keys +k2") == 0, "%s", sum);
	summary_of(base, HEAD
	    "[key tls]\nuri = pkcs11:token=t;object=tls-2\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n", sum,
	    sizeof(sum));
	CHECKF(strcmp(sum, "keys ~tls") == 0, "%s", sum);
	summary_of(HEAD
	    "[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	    "[key old]\nuri = pkcs11:token=t;object=old\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls, old\nops = sign\n", base,
	    sum, sizeof(sum));
	CHECKF(strcmp(sum, "clients ~sbc; keys -old") == 0, "%s", sum);
	summary_of(base, HEAD "max_connections = 100\n"
	    "[key tls]\nuri = pkcs11:token=t;object=tls\nops = sign\n"
	    "[client sbc]\nuid = 1000\nkeys = tls\nops = sign\n"
	    "max_connections = 100\n", sum, sizeof(sum));
	/* sbc's connection share was all of 1024; now 100, its own. */
	CHECKF(strcmp(sum, "clients ~sbc; [keyd] limits") == 0, "%s", sum);

	reload_sha256_hex("abc", 3, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
	    "b410ff61f20015ad") == 0);

	fd = reload_memfd("keyd config", 11);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(pread(fd, buf, sizeof(buf), 0) == 11 &&
		    memcmp(buf, "keyd config", 11) == 0);
		errno = 0;
		CHECK(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM);
		CHECK(ftruncate(fd, 0) < 0 && errno == EPERM);
		close(fd);
	}
	return ktest_result("test_reload");
}
