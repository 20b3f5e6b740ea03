/*
 * test_passport: TN canonicalisation (RFC 8224 section 8.3) and the
 * TNAuthList reader (RFC 8226) of proto/passport.c, on extensions put
 * into an X509 here: both encodings of a range, coverage at the range's
 * edges and lengths, an SPC-only list, and malformed lists refused.
 */
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509.h>

#include "ktest.h"
#include "passport.h"

static void
test_canon(void)
{
	static const struct {
		const char *in, *want;  /* want NULL: malformed */
	} v[] = {
		{ "+1 (215) 555-0123", "12155550123" },
		{ "1.215.555.0123", "12155550123" },
		{ "12155550123", "12155550123" },
		{ "+442079460000", "442079460000" },
		{ "123456789012345", "123456789012345" },
		{ "1234567890123456", NULL },       /* 16 digits */
		{ "+", NULL },
		{ "", NULL },
		{ "- ()", NULL },
		{ "++12155550123", NULL },          /* one '+' only */
		{ "1215555012+3", NULL },           /* '+' only first */
		{ "12155550123x", NULL },
		{ "1215555*123", NULL },
		{ "tel:12155550123", NULL },
	};
	char out[PASSPORT_TN_BUF];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int r = passport_tn_canon(v[i].in, strlen(v[i].in), out);

		if (v[i].want == NULL) {
			CHECKF(r == KEYD_ERR_INVALID_ARG, "%s", v[i].in);
		} else {
			CHECKF(r == KEYD_OK && strcmp(out, v[i].want) == 0,
			    "%s -> %s", v[i].in, out);
		}
	}
}

/* A certificate holding only the TNAuthList der[0..n). */
static X509 *
cert_with(const unsigned char *der, size_t n)
{
	X509 *x = X509_new();
	ASN1_OBJECT *o = OBJ_txt2obj("1.3.6.1.5.5.7.1.26", 1);
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e = NULL;

	if (x == NULL || o == NULL || s == NULL ||
	    ASN1_OCTET_STRING_set(s, der, (int)n) != 1 ||
	    (e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, s)) == NULL ||
	    X509_add_ext(x, e, -1) != 1) {
		X509_free(x);
		x = NULL;
	}
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(s);
	ASN1_OBJECT_free(o);
	return x;
}

/* Reads der; returns the list or NULL, and the result in *r. */
static struct passport_tnauth *
read_list(const unsigned char *der, size_t n, int *r)
{
	struct passport_tnauth *t = NULL;
	char why[256];
	X509 *x = cert_with(der, n);

	CHECK(x != NULL);
	*r = x != NULL ? passport_tnauth_read(x, &t, why, sizeof(why)) :
	    KEYD_ERR_INTERNAL;
	X509_free(x);
	return t;
}

static void
test_ranges(void)
{
	/* SEQUENCE { [1] { SEQUENCE { "12155550100", 100 } } } */
	static const unsigned char seq[] = { 0x30, 0x14, 0xa1, 0x12, 0x30,
		0x10, 0x16, 0x0b, '1', '2', '1', '5', '5', '5', '5', '0', '1',
		'0', '0', 0x02, 0x01, 0x64 };
	/* SEQUENCE { [1] { "12155550100", 100 } }: [1] for SEQUENCE */
	static const unsigned char tag[] = { 0x30, 0x12, 0xa1, 0x10, 0x16,
		0x0b, '1', '2', '1', '5', '5', '5', '5', '0', '1', '0', '0',
		0x02, 0x01, 0x64 };
	const unsigned char *encs[] = { seq, tag };
	size_t lens[] = { sizeof(seq), sizeof(tag) }, i;
	int r;

	for (i = 0; i < 2; i++) {
		struct passport_tnauth *t = read_list(encs[i], lens[i], &r);

		CHECK_INT(r, KEYD_OK);
		if (t == NULL)
			continue;
		CHECK(!passport_tnauth_spc_only(t));
		CHECK(passport_tnauth_covers(t, "12155550100"));
		CHECK(passport_tnauth_covers(t, "12155550199"));
		CHECK(!passport_tnauth_covers(t, "12155550200"));
		CHECK(!passport_tnauth_covers(t, "12155550099"));
		CHECK(!passport_tnauth_covers(t, "012155550150"));
		CHECK(!passport_tnauth_covers(t, "+12155550150"));
		CHECK(!passport_tnauth_covers(t, ""));
		passport_tnauth_free(t);
	}
}

static void
test_spc_and_one(void)
{
	/* SEQUENCE { [0] { "709J" }, [2] { "12155551212" } } */
	static const unsigned char both[] = { 0x30, 0x17, 0xa0, 0x06, 0x16,
		0x04, '7', '0', '9', 'J', 0xa2, 0x0d, 0x16, 0x0b, '1', '2', '1',
		'5', '5', '5', '5', '1', '2', '1', '2' };
	static const unsigned char spc[] = { 0x30, 0x08, 0xa0, 0x06, 0x16,
		0x04, '7', '0', '9', 'J' };
	struct passport_tnauth *t;
	int r;

	t = read_list(both, sizeof(both), &r);
	CHECK_INT(r, KEYD_OK);
	if (t != NULL) {
		CHECK(!passport_tnauth_spc_only(t));
		CHECK(passport_tnauth_covers(t, "12155551212"));
		CHECK(!passport_tnauth_covers(t, "12155551213"));
	}
	passport_tnauth_free(t);
	t = read_list(spc, sizeof(spc), &r);
	CHECK_INT(r, KEYD_OK);
	if (t != NULL) {
		CHECK(passport_tnauth_spc_only(t));
		CHECK(!passport_tnauth_covers(t, "12155551212"));
	}
	passport_tnauth_free(t);
}

static void
test_malformed(void)
{
	static const struct {
		const char *what;
		unsigned char der[24];
		size_t n;
	} v[] = {
		{ "empty list", { 0x30, 0x00 }, 2 },
		{ "implicit spc", { 0x30, 0x06, 0x80, 0x04, '7', '0', '9', 'J' },
		    8 },
		{ "unknown choice", { 0x30, 0x08, 0xa3, 0x06, 0x16, 0x04, '7',
		    '0', '9', 'J' }, 10 },
		{ "UTF8String spc", { 0x30, 0x08, 0xa0, 0x06, 0x0c, 0x04, '7',
		    '0', '9', 'J' }, 10 },
		{ "trailing byte", { 0x30, 0x08, 0xa0, 0x06, 0x16, 0x04, '7',
		    '0', '9', 'J', 0x00 }, 11 },
		{ "letter in TN", { 0x30, 0x07, 0xa2, 0x05, 0x16, 0x03, '1',
		    'x', '2' }, 9 },
		{ "range of one", { 0x30, 0x0c, 0xa1, 0x0a, 0x30, 0x08, 0x16,
		    0x03, '1', '0', '0', 0x02, 0x01, 0x01 }, 14 },
		{ "negative count", { 0x30, 0x0c, 0xa1, 0x0a, 0x30, 0x08, 0x16,
		    0x03, '1', '0', '0', 0x02, 0x01, 0xff }, 14 },
		{ "no count", { 0x30, 0x09, 0xa1, 0x07, 0x30, 0x05, 0x16, 0x03,
		    '1', '0', '0' }, 11 },
		/* RFC 8226 section 9: 10 + 91 runs past two digits */
		{ "range past 10^D", { 0x30, 0x0b, 0xa1, 0x09, 0x30, 0x07, 0x16,
		    0x02, '1', '0', 0x02, 0x01, 91 }, 13 },
		{ "truncated", { 0x30, 0x08, 0xa0, 0x06, 0x16, 0x04, '7', '0',
		    '9' }, 9 },
	};
	size_t i;
	int r;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct passport_tnauth *t = read_list(v[i].der, v[i].n, &r);

		CHECKF(r == KEYD_ERR_INVALID_ARG && t == NULL, "%s", v[i].what);
		passport_tnauth_free(t);
	}
}

static void
test_absent(void)
{
	/* Not NULL at first: the test sees that the read sets it to NULL. */
	struct passport_tnauth *t = (struct passport_tnauth *)&t;
	char why[256];
	X509 *x = X509_new();

	CHECK(x != NULL);
	if (x == NULL)
		return;
	CHECK_INT(passport_tnauth_read(x, &t, why, sizeof(why)),
	    KEYD_ERR_NOT_FOUND);
	CHECK(t == NULL);
	X509_free(x);
}

int
main(void)
{
	test_canon();
	test_ranges();
	test_spc_and_one();
	test_malformed();
	test_absent();
	return ktest_result("test_passport");
}
