/*
 * test_policy: who may do what (keyd/daemon/policy.c). A peer maps to one client
 * (a uid match wins; groups that match two clients are ambiguous and
 * match none); op X on key K needs K in the client's keys, X in its ops
 * and X in K's ops; the rate limiter lets a burst through, then refuses,
 * then refills with time.
 */
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "keyd_err.h"
#include "ktest.h"
#include "policy.h"

static const char conf[] =
	"[keyd]\n"
	"module = /m.so\n"
	"token = pkcs11:token=t\n"
	"pin_file = /p\n"
	"audit_log = /a\n"
	"[key tls]\n"
	"uri = pkcs11:token=t;object=tls\n"
	"ops = sign\n"
	"[key dec]\n"
	"uri = pkcs11:token=t;object=dec\n"
	"ops = sign, decrypt\n"
	"[key kek]\n"
	"uri = pkcs11:token=t;object=kek\n"
	"ops = srtp-new, srtp-open\n"
	"[key other]\n"
	"uri = pkcs11:token=t;object=other\n"
	"ops = sign\n"
	/* 0: by uid 1000 */
	"[client byuid]\n"
	"uid = 1000\n"
	"keys = tls, dec\n"
	"ops = sign\n"
	/* 1: by gid 2000 */
	"[client bygid]\n"
	"gid = 2000\n"
	"keys = dec, kek\n"
	"ops = sign, decrypt, srtp-new\n"
	/* 2: by gid 3000 */
	"[client other]\n"
	"gid = 3000, 3001\n"
	"keys = other\n"
	"ops = sign\n"
	/* 3: by uid 4000 or gid 4000 */
	"[client both]\n"
	"uid = 4000\n"
	"gid = 4000\n"
	"ops = status\n";

enum { C_BYUID, C_BYGID, C_OTHER, C_BOTH };

static struct policy_peer
peer(uid_t uid, gid_t gid, size_t n, const gid_t *groups)
{
	struct policy_peer p;

	memset(&p, 0, sizeof(p));
	p.uid = uid;
	p.gid = gid;
	p.pid = 1234;
	for (size_t i = 0; i < n; i++)
		p.groups[i] = groups[i];
	p.n_groups = n;
	return p;
}

static void
test_match(const struct config *c)
{
	struct policy_peer p;
	int amb = -1;

	/* uid wins over a gid that matches another client. */
	p = peer(1000, 2000, 0, NULL);
	CHECK_INT(policy_match(c, &p, &amb), C_BYUID);
	CHECK_INT(amb, 0);
	{
		gid_t g[] = { 3000, 2000 };

		/* Even over two gid matches that would be ambiguous. */
		p = peer(1000, 5, 2, g);
		CHECK_INT(policy_match(c, &p, &amb), C_BYUID);
		CHECK_INT(amb, 0);
	}
	/* Primary gid. */
	p = peer(5000, 2000, 0, NULL);
	CHECK_INT(policy_match(c, &p, &amb), C_BYGID);
	CHECK_INT(amb, 0);
	/* A supplementary group. */
	{
		gid_t g[] = { 7, 8, 3001 };

		p = peer(5000, 5000, 3, g);
		CHECK_INT(policy_match(c, &p, &amb), C_OTHER);
		CHECK_INT(amb, 0);
	}
	/* The same client through its primary and a supplementary group
	 * is one match, not two. */
	{
		gid_t g[] = { 2000, 9 };

		p = peer(5000, 2000, 2, g);
		CHECK_INT(policy_match(c, &p, &amb), C_BYGID);
		CHECK_INT(amb, 0);
	}
	/* Groups of two clients, no uid: ambiguous, no client. */
	{
		gid_t g[] = { 2000, 3000 };

		p = peer(5000, 5000, 2, g);
		amb = 0;
		CHECK_INT(policy_match(c, &p, &amb), -1);
		CHECK_INT(amb, 1);
	}
	{
		gid_t g[] = { 3000 };

		/* Primary gid of one client, supplementary of another. */
		p = peer(5000, 2000, 1, g);
		amb = 0;
		CHECK_INT(policy_match(c, &p, &amb), -1);
		CHECK_INT(amb, 1);
	}
	/* A uid that is a client's gid number is still only a uid. */
	p = peer(2000, 5000, 0, NULL);
	CHECK_INT(policy_match(c, &p, &amb), -1);
	CHECK_INT(amb, 0);
	/* Nobody. */
	{
		gid_t g[] = { 1000, 4001 };

		p = peer(65534, 65534, 2, g);
		amb = 1;
		CHECK_INT(policy_match(c, &p, &amb), -1);
		CHECK_INT(amb, 0);
	}
	/* A client with both uid and gid: either matches. */
	p = peer(4000, 1, 0, NULL);
	CHECK_INT(policy_match(c, &p, &amb), C_BOTH);
	p = peer(1, 4000, 0, NULL);
	CHECK_INT(policy_match(c, &p, &amb), C_BOTH);
}

static void
check_at(int caller, const struct config *c, size_t client, const char *key,
    unsigned op, int want, long want_idx, const char *want_msg)
{
	char msg[256];
	size_t idx = 999;
	int r;

	memset(msg, 0, sizeof(msg));
	r = policy_check(c, client, key, op, &idx, msg, sizeof(msg));
	ktest_checks++;
	if (r != want || (want == KEYD_OK && (long)idx != want_idx) ||
	    (want != KEYD_OK && strcmp(msg, want_msg) != 0)) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: policy_check(%zu, %s, %s) = %d (%s), "
		    "idx %zu; want %d (%s)\n", __FILE__, caller, client, key,
		    config_op_name(op), r, msg, idx, want, want_msg);
	}
}
#define CHECK_POLICY(...) check_at(__LINE__, __VA_ARGS__)

static void
test_check(const struct config *c)
{
	/* Allowed: key in keys, op in client's ops and in key's ops. */
	CHECK_POLICY(c, C_BYUID, "tls", CONFIG_OP_SIGN, KEYD_OK, 0, "");
	CHECK_POLICY(c, C_BYUID, "dec", CONFIG_OP_SIGN, KEYD_OK, 1, "");
	CHECK_POLICY(c, C_BYGID, "dec", CONFIG_OP_DECRYPT, KEYD_OK, 1, "");
	CHECK_POLICY(c, C_BYGID, "kek", CONFIG_OP_SRTP_NEW, KEYD_OK, 2, "");
	/* A key that exists but is not the client's. */
	CHECK_POLICY(c, C_BYUID, "other", CONFIG_OP_SIGN, KEYD_ERR_DENIED, 0,
	    "client 'byuid' may not use key 'other'");
	CHECK_POLICY(c, C_BOTH, "tls", CONFIG_OP_SIGN, KEYD_ERR_DENIED, 0,
	    "client 'both' may not use key 'tls'");
	/* The op is the key's, not the client's. */
	CHECK_POLICY(c, C_BYUID, "dec", CONFIG_OP_DECRYPT, KEYD_ERR_DENIED, 0,
	    "client 'byuid' may not decrypt");
	CHECK_POLICY(c, C_BYGID, "kek", CONFIG_OP_SRTP_OPEN, KEYD_ERR_DENIED,
	    0, "client 'bygid' may not srtp-open");
	/* The op is the client's, not the key's. */
	CHECK_POLICY(c, C_BYGID, "kek", CONFIG_OP_SIGN, KEYD_ERR_DENIED, 0,
	    "key 'kek' is not for sign");
	CHECK_POLICY(c, C_BYGID, "kek", CONFIG_OP_DECRYPT, KEYD_ERR_DENIED, 0,
	    "key 'kek' is not for decrypt");
	/* No such key, for any client. */
	CHECK_POLICY(c, C_BYUID, "nope", CONFIG_OP_SIGN, KEYD_ERR_UNKNOWN_KEY, 0,
	    "no key named 'nope'");
	CHECK_POLICY(c, C_BYGID, "", CONFIG_OP_SIGN, KEYD_ERR_UNKNOWN_KEY, 0,
	    "no key named ''");
	CHECK_POLICY(c, C_BYGID, "TLS", CONFIG_OP_SIGN, KEYD_ERR_UNKNOWN_KEY, 0,
	    "no key named 'TLS'");
	/* A client-supplied name is cut short in the message. */
	{
		char longname[200];

		char want[100];

		memset(longname, 'k', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';

		snprintf(want, sizeof(want), "no key named '%.64s'", longname);
		CHECK_POLICY(c, C_BYUID, longname, CONFIG_OP_SIGN,
		    KEYD_ERR_UNKNOWN_KEY, 0, want);
	}
	/* A small message buffer is not overrun. */
	{
		char small[8];
		size_t idx;

		memset(small, 'X', sizeof(small));
		CHECK_INT(policy_check(c, C_BYUID, "other", CONFIG_OP_SIGN,
		    &idx, small, sizeof(small)), KEYD_ERR_DENIED);
		CHECK(small[7] == '\0');
	}
	CHECK_INT(policy_client_has_key(c, C_BYUID, 0), 1);
	CHECK_INT(policy_client_has_key(c, C_BYUID, 2), 0);
	CHECK_INT(policy_client_has_key(c, C_BOTH, 0), 0);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_limiter(void)
{
	struct policy_limiter l;
	int granted = 0;
	long t0, elapsed;

	/* 20/s: a burst of 20, then refusals. */
	policy_limiter_init(&l, 20, 0);
	for (int i = 0; i < 20; i++)
		granted += policy_limiter_take(&l);
	CHECK_INT(granted, 20);
	CHECK_INT(policy_limiter_take(&l), 0);
	t0 = now_ms();
	CHECK_INT(policy_limiter_take(&l), 0);
	/* 20/s refills one every 50 ms: after 160 ms at least 3, and no
	 * more than the time really slept allows (a loaded machine may
	 * oversleep). */
	sleep_ms(160);
	granted = 0;
	for (int i = 0; i < 100; i++)
		granted += policy_limiter_take(&l);
	elapsed = now_ms() - t0;
	CHECKF(granted >= 3 && granted <= elapsed / 50 + 1, "granted %d "
	    "after %ld ms", granted, elapsed);
	/* The bucket never holds more than a burst. */
	sleep_ms(1200);
	granted = 0;
	for (int i = 0; i < 40; i++)
		granted += policy_limiter_take(&l);
	CHECKF(granted >= 20 && granted <= 21, "granted %d after 1.2 s",
	    granted);
	policy_limiter_destroy(&l);

	/* Under 2/s the burst is two requests: a connection's hello and
	 * its first request. */
	policy_limiter_init(&l, 0.5, 0);
	CHECK_INT(policy_limiter_take(&l), 1);
	CHECK_INT(policy_limiter_take(&l), 1);
	CHECK_INT(policy_limiter_take(&l), 0);
	policy_limiter_destroy(&l);
	policy_limiter_init(&l, 1.5, 0);
	CHECK_INT(policy_limiter_take(&l), 1);
	CHECK_INT(policy_limiter_take(&l), 1);
	CHECK_INT(policy_limiter_take(&l), 0);
	policy_limiter_destroy(&l);

	/* Rate 0: unlimited. */
	policy_limiter_init(&l, 0, 0);
	granted = 0;
	for (int i = 0; i < 100000; i++)
		granted += policy_limiter_take(&l);
	CHECK_INT(granted, 100000);
	/* ...and unlimited connections. */
	for (int i = 0; i < 1000; i++)
		granted += policy_limiter_connect(&l);
	CHECK_INT(granted, 101000);
	policy_limiter_destroy(&l);

	/* max_connections: counted, refused, given back. */
	policy_limiter_init(&l, 0, 2);
	CHECK_INT(policy_limiter_connect(&l), 1);
	CHECK_INT(policy_limiter_connect(&l), 1);
	CHECK_INT(policy_limiter_connect(&l), 0);
	CHECK_INT(l.conns, 2);
	policy_limiter_disconnect(&l);
	CHECK_INT(policy_limiter_connect(&l), 1);
	CHECK_INT(policy_limiter_connect(&l), 0);
	policy_limiter_disconnect(&l);
	policy_limiter_disconnect(&l);
	policy_limiter_disconnect(&l);  /* never below zero */
	CHECK_INT(l.conns, 0);
	CHECK_INT(policy_limiter_connect(&l), 1);
	policy_limiter_destroy(&l);
}

/* The kernel's view of a real peer: our own credentials. */
static void
test_peer_from_fd(void)
{
	struct policy_peer p;
	gid_t groups[POLICY_MAX_GROUPS];
	int sv[2], n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("socketpair");
		ktest_failures++;
		return;
	}
	memset(&p, 0xff, sizeof(p));
	CHECK_INT(policy_peer_from_fd(sv[0], &p), KEYD_OK);
	CHECK_INT(p.uid, geteuid());
	CHECK_INT(p.gid, getegid());
	CHECK_INT(p.pid, getpid());
	n = getgroups(POLICY_MAX_GROUPS, groups);
	CHECK_INT(p.n_groups, n);
	for (int i = 0; i < n && (size_t)i < p.n_groups; i++)
		CHECK_INT(p.groups[i], groups[i]);
	close(sv[0]);
	close(sv[1]);
	/* Not a socket: refused, not guessed. */
	CHECK_INT(policy_peer_from_fd(-1, &p), KEYD_ERR_IO);
}

static const char pconf[] =
	"[keyd]\n"
	"module = /m.so\n"
	"token = pkcs11:token=t\n"
	"pin_file = /p\n"
	"audit_log = /a\n"
	"[key p]\n"
	"uri = pkcs11:token=t;object=p\n"
	"ops = passport\n"
	"x5u = https://cert.example.org/p.pem\n"
	"[client a]\n"
	"uid = 1\n"
	"keys = p\n"
	"ops = passport\n"
	"attest_max = A\n"
	"orig_tns = 12025550100, 1312555*, 14155550100-14155550199\n"
	"[client b]\n"
	"uid = 2\n"
	"keys = p\n"
	"ops = passport\n"
	"attest_max = B\n"
	"[client cc]\n"
	"uid = 3\n"
	"keys = p\n"
	"ops = passport\n"
	"attest_max = C\n";

static void
passport_at(int caller, const struct config *c, size_t client, char attest,
    const char *tn, int want, const char *want_msg)
{
	char msg[256] = "";
	int r = policy_passport(c, client, attest, tn, msg, sizeof(msg));

	ktest_checks++;
	if (r != want || (want != KEYD_OK && strcmp(msg, want_msg) != 0)) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: policy_passport(%zu, %c, %s) = %d (%s); "
		    "want %d (%s)\n", __FILE__, caller, client, attest ? attest :
		    '0', tn, r, msg, want, want_msg);
	}
}
#define CHECK_PASSPORT(...) passport_at(__LINE__, __VA_ARGS__)

/* attest_max bounds the attestation; orig_tns bound orig at A and B and
 * the div TN (attest 0), never at C. */
static void
test_passport(void)
{
	struct config *c = NULL;
	char err[512] = "";
	const char *out_a = "orig_tns: orig is not among the numbers of "
	    "client 'a' (attestation A needs one of them; C takes any)";

	if (config_parse_buffer(pconf, strlen(pconf), "p.conf", 0, &c, err,
	    sizeof(err)) != KEYD_OK) {
		ktest_failures++;
		fprintf(stderr, "test_policy: passport config refused: %s\n",
		    err);
		return;
	}
	CHECK_PASSPORT(c, 0, 'A', "12025550100", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 'A', "12025550101", KEYD_ERR_DENIED, out_a);
	CHECK_PASSPORT(c, 0, 'A', "1202555010", KEYD_ERR_DENIED, out_a);
	/* A prefix. */
	CHECK_PASSPORT(c, 0, 'B', "13125550000", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 'A', "1312555", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 'A', "131255", KEYD_ERR_DENIED, out_a);
	/* A range: its ends, either side, another length. */
	CHECK_PASSPORT(c, 0, 'A', "14155550100", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 'A', "14155550199", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 'A', "14155550099", KEYD_ERR_DENIED, out_a);
	CHECK_PASSPORT(c, 0, 'A', "14155550200", KEYD_ERR_DENIED, out_a);
	CHECK_PASSPORT(c, 0, 'A', "141555501500", KEYD_ERR_DENIED, out_a);
	CHECK_PASSPORT(c, 0, 'A', "1415555015", KEYD_ERR_DENIED, out_a);
	/* C takes any well-formed orig. */
	CHECK_PASSPORT(c, 0, 'C', "19995550000", KEYD_OK, "");
	/* div: the number policy on the div TN. */
	CHECK_PASSPORT(c, 0, 0, "13125551234", KEYD_OK, "");
	CHECK_PASSPORT(c, 0, 0, "19995550000", KEYD_ERR_DENIED, "orig_tns: "
	    "the div TN is not among the numbers of client 'a'");
	/* attest_max B: no A; without orig_tns, only C. */
	CHECK_PASSPORT(c, 1, 'A', "12025550100", KEYD_ERR_DENIED, "attest_max: "
	    "client 'b' may attest at most B, not A");
	CHECK_PASSPORT(c, 1, 'B', "12025550100", KEYD_ERR_DENIED, "orig_tns: "
	    "orig is not among the numbers of client 'b' (attestation B needs "
	    "one of them; C takes any)");
	CHECK_PASSPORT(c, 1, 'C', "12025550100", KEYD_OK, "");
	CHECK_PASSPORT(c, 2, 'B', "12025550100", KEYD_ERR_DENIED, "attest_max: "
	    "client 'cc' may attest at most C, not B");
	CHECK_PASSPORT(c, 2, 'C', "1", KEYD_OK, "");
	config_free(c);
}

int
main(void)
{
	struct config *c = NULL;
	char err[512] = "";

	if (config_parse_buffer(conf, strlen(conf), "policy.conf", 0, &c, err,
	    sizeof(err)) != KEYD_OK) {
		fprintf(stderr, "test_policy: config refused: %s\n", err);
		return 1;
	}
	test_match(c);
	test_check(c);
	test_limiter();
	test_peer_from_fd();
	test_passport();
	config_free(c);
	return ktest_result("test_policy");
}
