/* test_shamir.c: SLIP-0039 Shamir sharing: split, then recover from every
 * subset; the digest; the error cases. */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "gf256.h"
#include "keyd_err.h"
#include "ktest.h"
#include "shamir.h"

#define LEN_MAX SHAMIR_MAX_SECRET_LEN

static uint8_t shares[SHAMIR_MAX_SHARES * LEN_MAX];

/* Recovers from the shares whose bits are set in mask. */
static int
recover_subset(unsigned threshold, unsigned mask, size_t len, uint8_t *out)
{
	uint8_t xs[SHAMIR_MAX_SHARES], ys[SHAMIR_MAX_SHARES * LEN_MAX];
	size_t m = 0;
	unsigned i;

	for (i = 0; i < SHAMIR_MAX_SHARES; i++) {
		if (!(mask & (1u << i)))
			continue;
		xs[m] = (uint8_t)i;
		memcpy(ys + m * len, shares + i * len, len);
		m++;
	}
	return shamir_recover(threshold, xs, ys, m, len, out);
}

static void
test_all_subsets(void)
{
	static const size_t lens[] = { 16, 32, 18, 64 };
	uint8_t secret[LEN_MAX], out[LEN_MAX];
	unsigned t, n, mask, li;
	int bad_ok = 0, bad_few = 0, checked = 0;

	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t len = lens[li];

		for (n = 1; n <= 5; n++) {
			for (t = 1; t <= n; t++) {
				CHECK(RAND_bytes(secret, (int)len) == 1);
				CHECK_INT(shamir_split(t, n, secret, len,
				    shares), KEYD_OK);
				for (mask = 1; mask < (1u << n); mask++) {
					int k = __builtin_popcount(mask);
					int r = recover_subset(t, mask, len, out);

					checked++;
					if (k >= (int)t) {
						if (r != KEYD_OK ||
						    memcmp(out, secret, len) != 0)
							bad_ok++;
					} else if (r != KEYD_ERR_SHARE_TOO_FEW) {
						bad_few++;
					}
				}
			}
		}
	}
	CHECKF(bad_ok == 0, "%d of %d subsets of size >= T failed", bad_ok,
	    checked);
	CHECKF(bad_few == 0, "%d subsets of size < T did not give TOO_FEW",
	    bad_few);
}

/* 16 shares: sampled subsets of every size. */
static void
test_sixteen(void)
{
	uint8_t secret[32], out[32];
	unsigned t, s;
	int bad = 0;

	for (t = 2; t <= 16; t += 7) {
		CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
		CHECK_INT(shamir_split(t, 16, secret, sizeof(secret), shares),
		    KEYD_OK);
		for (s = 0; s < 200; s++) {
			unsigned mask;
			int r;

			CHECK(RAND_bytes((uint8_t *)&mask, sizeof(mask)) == 1);
			mask &= 0xffff;
			if (mask == 0)
				continue;
			r = recover_subset(t, mask, sizeof(secret), out);
			if ((unsigned)__builtin_popcount(mask) >= t) {
				if (r != KEYD_OK ||
				    memcmp(out, secret, sizeof(secret)) != 0)
					bad++;
			} else if (r != KEYD_ERR_SHARE_TOO_FEW) {
				bad++;
			}
		}
		CHECK_INT(recover_subset(t, 0xffff, sizeof(secret), out),
		    KEYD_OK);
		CHECK(memcmp(out, secret, sizeof(secret)) == 0);
	}
	CHECKF(bad == 0, "%d sampled subsets of 16 shares went wrong", bad);
}

/* The polynomial really has the secret at 255 and the digest at 254. */
static void
test_structure(void)
{
	uint8_t secret[16], d[16], md[32], xs[3] = { 4, 9, 0 };
	uint8_t ys[3 * 16];
	unsigned mdlen = 0;
	int i;

	CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
	CHECK_INT(shamir_split(3, 10, secret, sizeof(secret), shares),
	    KEYD_OK);
	for (i = 0; i < 3; i++)
		memcpy(ys + i * 16, shares + xs[i] * 16, 16);
	CHECK_INT(shamir_interpolate(xs, ys, 3, 16, SHAMIR_SECRET_X, d),
	    KEYD_OK);
	CHECK(memcmp(d, secret, 16) == 0);
	CHECK_INT(shamir_interpolate(xs, ys, 3, 16, SHAMIR_DIGEST_X, d),
	    KEYD_OK);
	CHECK(HMAC(EVP_sha256(), d + 4, 12, secret, 16, md, &mdlen) != NULL);
	CHECK(memcmp(md, d, 4) == 0);
	/* Interpolating at a given x returns that point. */
	CHECK_INT(shamir_interpolate(xs, ys, 3, 16, 9, d), KEYD_OK);
	CHECK(memcmp(d, shares + 9 * 16, 16) == 0);
	/* With threshold 1 every share is the secret. */
	CHECK_INT(shamir_split(1, 4, secret, 16, shares), KEYD_OK);
	for (i = 0; i < 4; i++)
		CHECK(memcmp(shares + i * 16, secret, 16) == 0);
}

/* A known polynomial: f(x) = 0x53 + 0xca x + 0x07 x^2 in each byte. */
static void
test_known_polynomial(void)
{
	uint8_t xs[3] = { 1, 2, 3 }, ys[3 * 16], out[16];
	int i, k;

	for (i = 0; i < 3; i++) {
		uint8_t x = xs[i];
		uint8_t y = (uint8_t)(0x53 ^ gf256_mul(0xca, x) ^
		    gf256_mul(0x07, gf256_mul(x, x)));

		for (k = 0; k < 16; k++)
			ys[i * 16 + k] = y;
	}
	CHECK_INT(shamir_interpolate(xs, ys, 3, 16, 0, out), KEYD_OK);
	CHECK_INT(out[0], 0x53);
	CHECK_INT(out[15], 0x53);
	CHECK_INT(shamir_interpolate(xs, ys, 3, 16, 255, out), KEYD_OK);
	CHECK_INT(out[7], 0x53 ^ gf256_mul(0xca, 255) ^
	    gf256_mul(0x07, gf256_mul(255, 255)));
}

static void
test_errors(void)
{
	uint8_t secret[LEN_MAX], out[LEN_MAX], xs[4], ys[4 * 16];
	int i;

	CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
	CHECK_INT(shamir_split(0, 3, secret, 16, shares), KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(4, 3, secret, 16, shares), KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(2, 17, secret, 16, shares),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(2, 3, secret, 15, shares), KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(2, 3, secret, 14, shares), KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(2, 3, secret, 17, shares), KEYD_ERR_INVALID_ARG);
	CHECK_INT(shamir_split(2, 3, secret, 66, shares), KEYD_ERR_INVALID_ARG);

	CHECK_INT(shamir_split(3, 4, secret, 16, shares), KEYD_OK);
	for (i = 0; i < 4; i++) {
		xs[i] = (uint8_t)i;
		memcpy(ys + i * 16, shares + i * 16, 16);
	}
	/* Duplicate index. */
	xs[1] = 0;
	CHECK_INT(shamir_recover(3, xs, ys, 3, 16, out),
	    KEYD_ERR_SHARE_DUPLICATE);
	/* The secret's and the digest's x are never accepted from outside,
	 * nor any x beyond 4 bits. */
	xs[1] = SHAMIR_SECRET_X;
	CHECK_INT(shamir_recover(3, xs, ys, 3, 16, out), KEYD_ERR_INVALID_ARG);
	xs[1] = SHAMIR_DIGEST_X;
	CHECK_INT(shamir_recover(3, xs, ys, 3, 16, out), KEYD_ERR_INVALID_ARG);
	xs[1] = 16;
	CHECK_INT(shamir_recover(3, xs, ys, 3, 16, out), KEYD_ERR_INVALID_ARG);
	xs[1] = 1;
	/* Too few. */
	CHECK_INT(shamir_recover(3, xs, ys, 2, 16, out),
	    KEYD_ERR_SHARE_TOO_FEW);
	/* One flipped bit in one share: the digest catches it, and the
	 * output is wiped. */
	ys[16 + 5] ^= 0x10;
	memset(out, 0xaa, 16);
	CHECK_INT(shamir_recover(3, xs, ys, 3, 16, out), KEYD_ERR_SHARE_DIGEST);
	for (i = 0; i < 16; i++)
		CHECK_INT(out[i], 0);
	/* A fourth, inconsistent share spoils an otherwise good set: every
	 * share given is checked. */
	ys[16 + 5] ^= 0x10;
	CHECK_INT(shamir_recover(3, xs, ys, 4, 16, out), KEYD_OK);
	CHECK(memcmp(out, secret, 16) == 0);
	ys[3 * 16] ^= 1;
	CHECK_INT(shamir_recover(3, xs, ys, 4, 16, out), KEYD_ERR_SHARE_DIGEST);
	/* Threshold 1: extra shares must equal the first. */
	CHECK_INT(shamir_split(1, 3, secret, 16, shares), KEYD_OK);
	CHECK_INT(shamir_recover(1, xs, shares, 3, 16, out), KEYD_OK);
	CHECK(memcmp(out, secret, 16) == 0);
	shares[2 * 16] ^= 1;
	CHECK_INT(shamir_recover(1, xs, shares, 3, 16, out),
	    KEYD_ERR_SHARE_DIGEST);
}

/* The random shares are used as they come: zero bytes appear about as
 * often as any other (nothing forces them non-zero). */
static void
test_unbiased(void)
{
	uint8_t secret[16];
	unsigned zeros = 0, i, k;

	CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
	for (i = 0; i < 400; i++) {
		/* T = 3: share 0 is the one random share. */
		CHECK_INT(shamir_split(3, 3, secret, 16, shares), KEYD_OK);
		for (k = 0; k < 16; k++)
			zeros += shares[k] == 0;
	}
	/* 6400 bytes: about 25 zeros expected; none would mean a bias
	 * (chance about e^-25 otherwise). */
	CHECKF(zeros > 0 && zeros < 100, "%u zero bytes in 6400", zeros);
}

int
main(void)
{
	test_all_subsets();
	test_sixteen();
	test_structure();
	test_known_polynomial();
	test_errors();
	test_unbiased();
	return ktest_result("test_shamir");
}
