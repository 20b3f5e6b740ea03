/*
 * test_shaken: a passport request's form (keyd/daemon/shaken.c, shaken_parse):
 * ppt, attest, the TNs canonicalised, 1 to 16 dest, origid as a UUID in
 * lower case, and the fields that one ppt must not carry. The PASSporTs
 * themselves are checked by PyJWT in tests/integration/passport.sh.
 */
#include <string.h>

#include "keyd_err.h"
#include "ktest.h"
#include "shaken.h"

/* A request with dest[0..n). */
static Keyd__V1__PassportRequest
req(const char *ppt, const char *attest, const char *orig, char **dest,
    size_t n, const char *origid, const char *div)
{
	Keyd__V1__PassportRequest r = KEYD__V1__PASSPORT_REQUEST__INIT;

	r.key = (char *)"shaken";
	r.ppt = (char *)ppt;
	r.attest = (char *)attest;
	r.orig = (char *)orig;
	r.dest = dest;
	r.n_dest = n;
	r.origid = (char *)origid;
	r.div = (char *)div;
	return r;
}

static void
refused_at(int line, Keyd__V1__PassportRequest r, const char *want)
{
	struct shaken_claims cl;
	char msg[256] = "";
	int rc = shaken_parse(&r, &cl, msg, sizeof(msg));

	ktest_checks++;
	if (rc != KEYD_ERR_INVALID_ARG || strcmp(msg, want) != 0) {
		ktest_failures++;
		fprintf(stderr, "%s:%d: shaken_parse = %d (%s); want %d (%s)\n",
		    __FILE__, line, rc, msg, KEYD_ERR_INVALID_ARG, want);
	}
}
#define REFUSED(r, want) refused_at(__LINE__, r, want)

int
main(void)
{
	static const char tnerr[] = " is not a telephone number: E.164, 1 to "
	    "15 digits after dropping a leading '+' and the separators - . ( ) "
	    "and space";
	char *one[] = { "+1 (312) 555-0100" };
	char *two[] = { "13125550100", "1.312.555.0101" };
	char *bad[] = { "13125550100", "1312555010O" };
	char *empty[] = { "" };
	char *many[SHAKEN_MAX_DEST + 1];
	struct shaken_claims cl;
	char msg[256], want[256];

	for (size_t i = 0; i <= SHAKEN_MAX_DEST; i++)
		many[i] = "13125550100";

	/* Accepted: canonical TNs, origid in lower case. */
	{
		Keyd__V1__PassportRequest r = req("shaken", "A", "+12025550123",
		    two, 2, "3A47CCFC-3B4E-4B5A-9C4E-2A5D3F6E8B10", "");

		CHECK_INT(shaken_parse(&r, &cl, msg, sizeof(msg)), KEYD_OK);
		CHECK(!cl.is_div && strcmp(cl.attest, "A") == 0);
		CHECK(strcmp(cl.orig, "12025550123") == 0);
		CHECK_INT(cl.n_dest, 2);
		CHECK(strcmp(cl.dest[1], "13125550101") == 0);
		CHECK(strcmp(cl.origid, "3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b10") ==
		    0);
	}
	{
		Keyd__V1__PassportRequest r = req("shaken", "C", "1", one, 1, "",
		    "");

		CHECK_INT(shaken_parse(&r, &cl, msg, sizeof(msg)), KEYD_OK);
		CHECK(cl.origid[0] == '\0');      /* keyd makes one */
		CHECK(strcmp(cl.dest[0], "13125550100") == 0);
	}
	{
		Keyd__V1__PassportRequest r = req("div", "", "14085550000", one,
		    1, "", "+1 202 555 0199");

		CHECK_INT(shaken_parse(&r, &cl, msg, sizeof(msg)), KEYD_OK);
		CHECK(cl.is_div && strcmp(cl.div, "12025550199") == 0 &&
		    cl.attest[0] == '\0');
	}
	{
		Keyd__V1__PassportRequest r = req("shaken", "B", "2", many,
		    SHAKEN_MAX_DEST, NULL, NULL);

		CHECK_INT(shaken_parse(&r, &cl, msg, sizeof(msg)), KEYD_OK);
		CHECK_INT(cl.n_dest, SHAKEN_MAX_DEST);
	}

	/* Refused, each with its message. */
	REFUSED(req("", "A", "1", one, 1, "", ""), "ppt must be shaken or div");
	REFUSED(req("rph", "A", "1", one, 1, "", ""),
	    "ppt must be shaken or div");
	REFUSED(req(NULL, "A", "1", one, 1, "", ""),
	    "ppt must be shaken or div");
	REFUSED(req("shaken", "a", "1", one, 1, "", ""),
	    "attest must be A, B or C (RFC 8588)");
	REFUSED(req("shaken", "AB", "1", one, 1, "", ""),
	    "attest must be A, B or C (RFC 8588)");
	REFUSED(req("shaken", "", "1", one, 1, "", ""),
	    "attest must be A, B or C (RFC 8588)");
	REFUSED(req("shaken", "A", "1", one, 1, "", "12025550199"),
	    "div is for ppt div only");
	REFUSED(req("div", "A", "1", one, 1, "", "12025550199"),
	    "a div PASSporT (RFC 8946) has no attest and no origid");
	REFUSED(req("div", "", "1", one, 1,
	    "3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b10", "12025550199"),
	    "a div PASSporT (RFC 8946) has no attest and no origid");
	REFUSED(req("div", "", "1", one, 1, "", ""),
	    "div: no telephone number given");
	snprintf(want, sizeof(want), "orig%s", tnerr);
	REFUSED(req("shaken", "A", "1234567890123456", one, 1, "", ""), want);
	REFUSED(req("shaken", "A", "+", one, 1, "", ""), want);
	REFUSED(req("shaken", "A", "++12025550123", one, 1, "", ""), want);
	REFUSED(req("shaken", "A", "12025550123;x", one, 1, "", ""), want);
	REFUSED(req("shaken", "A", "", one, 1, "", ""),
	    "orig: no telephone number given");
	snprintf(want, sizeof(want), "dest[1]%s", tnerr);
	REFUSED(req("shaken", "A", "1", bad, 2, "", ""), want);
	REFUSED(req("shaken", "A", "1", empty, 1, "", ""),
	    "dest[0]: no telephone number given");
	REFUSED(req("shaken", "A", "1", one, 0, "", ""),
	    "a PASSporT has 1 to 16 dest TNs, not 0");
	REFUSED(req("shaken", "A", "1", many, SHAKEN_MAX_DEST + 1, "", ""),
	    "a PASSporT has 1 to 16 dest TNs, not 17");
	REFUSED(req("shaken", "A", "1", one, 1,
	    "3a47ccfc3b4e-4b5a-9c4e-2a5d3f6e8b10-", ""),
	    "origid is not a UUID (8-4-4-4-12 hexadecimal digits, RFC 8588)");
	REFUSED(req("shaken", "A", "1", one, 1,
	    "3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b1\"", ""),
	    "origid is not a UUID (8-4-4-4-12 hexadecimal digits, RFC 8588)");
	REFUSED(req("shaken", "A", "1", one, 1,
	    "3a47ccfc-3b4e-4b5a-9c4e-2a5d3f6e8b100", ""),
	    "origid is not a UUID (8-4-4-4-12 hexadecimal digits, RFC 8588)");
	return ktest_result("test_shaken");
}
