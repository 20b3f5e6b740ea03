/*
 * shamir.c: SLIP-0039 Shamir sharing ("Shamir's secret-sharing" and
 * "Generating and combining the shares" of the specification).
 */
#include "shamir.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "gf256.h"
#include "keyd_err.h"
#include "secmem.h"

#define WUR __attribute__((warn_unused_result))

static int
secret_len_ok(size_t len)
{
	return len >= SHAMIR_MIN_SECRET_LEN && len <= SHAMIR_MAX_SECRET_LEN &&
	    len % 2 == 0;
}

/*
 * The x values are share indices, public by design (they are in the
 * mnemonic), so the Lagrange basis may be computed with ordinary branches;
 * only the y values are secret, and they meet nothing but gf256_mul and xor.
 */
int
shamir_interpolate(const uint8_t *xs, const uint8_t *ys, size_t m, size_t len,
    uint8_t x, uint8_t *out)
{
	uint8_t basis[SHAMIR_MAX_SHARES];
	size_t i, j, k;

	if (xs == NULL || ys == NULL || out == NULL || m == 0 ||
	    m > SHAMIR_MAX_SHARES || len == 0)
		return KEYD_ERR_INVALID_ARG;
	for (i = 0; i < m; i++)
		for (j = i + 1; j < m; j++)
			if (xs[i] == xs[j])
				return KEYD_ERR_SHARE_DUPLICATE;
	for (i = 0; i < m; i++) {
		if (xs[i] == x) {
			memmove(out, ys + i * len, len);
			return KEYD_OK;
		}
	}

	/* basis[i] = prod_{j != i} (x - x_j) / (x_i - x_j); subtraction is
	 * xor, and no factor is 0 since x and the xs are distinct. */
	for (i = 0; i < m; i++) {
		uint8_t num = 1, den = 1;

		for (j = 0; j < m; j++) {
			if (j == i)
				continue;
			num = gf256_mul(num, gf256_add(x, xs[j]));
			den = gf256_mul(den, gf256_add(xs[i], xs[j]));
		}
		basis[i] = gf256_div(num, den);
	}
	for (k = 0; k < len; k++) {
		uint8_t acc = 0;

		for (i = 0; i < m; i++)
			acc ^= gf256_mul(basis[i], ys[i * len + k]);
		out[k] = acc;
	}
	return KEYD_OK;
}

/* digest(R, S): the first SHAMIR_DIGEST_LEN bytes of HMAC-SHA256(key=R,
 * msg=S), SLIP-0039 design rationale 4. */
static WUR int
make_digest(const uint8_t *r, size_t rlen, const uint8_t *s, size_t slen,
    uint8_t out[SHAMIR_DIGEST_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int r2 = KEYD_ERR_CRYPTO;

	if (HMAC(EVP_sha256(), r, (int)rlen, s, slen, md, &mdlen) == NULL ||
	    mdlen < SHAMIR_DIGEST_LEN)
		goto out;
	memcpy(out, md, SHAMIR_DIGEST_LEN);
	r2 = KEYD_OK;
out:
	secmem_wipe(md, sizeof(md));
	return r2;
}

int
shamir_split(unsigned threshold, unsigned count, const uint8_t *secret,
    size_t len, uint8_t *shares)
{
	uint8_t xs[SHAMIR_MAX_SHARES];
	uint8_t *base = NULL;
	size_t base_len = 0, nrand, i;
	int r = KEYD_ERR_INVALID_ARG;

	if (secret == NULL || shares == NULL || !secret_len_ok(len) ||
	    threshold < 1 || threshold > count || count > SHAMIR_MAX_SHARES)
		return KEYD_ERR_INVALID_ARG;

	/* Step 2: with threshold 1 every share is the secret itself. */
	if (threshold == 1) {
		for (i = 0; i < count; i++)
			memcpy(shares + i * len, secret, len);
		return KEYD_OK;
	}

	/* base holds the threshold points that fix the polynomial: the
	 * threshold - 2 random shares at x = 0 .. threshold - 3, then the
	 * digest share D at x = 254 and the secret S at x = 255. */
	nrand = threshold - 2;
	base_len = (size_t)threshold * len;
	if ((base = secmem_alloc(base_len)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	/* Step 4: uniform random shares. RAND_priv_bytes is OpenSSL's
	 * CSPRNG for private values; its bytes are used as they come (no
	 * value is excluded, which would bias the shares). */
	if (nrand > 0 && RAND_priv_bytes(base, (int)(nrand * len)) != 1) {
		r = KEYD_ERR_CRYPTO;
		goto out;
	}
	for (i = 0; i < nrand; i++)
		xs[i] = (uint8_t)i;
	/* Step 3: D = HMAC-SHA256(key=R, msg=S)[0..4) || R, R random. */
	{
		uint8_t *d = base + nrand * len;

		if (RAND_priv_bytes(d + SHAMIR_DIGEST_LEN,
		    (int)(len - SHAMIR_DIGEST_LEN)) != 1) {
			r = KEYD_ERR_CRYPTO;
			goto out;
		}
		if ((r = make_digest(d + SHAMIR_DIGEST_LEN,
		    len - SHAMIR_DIGEST_LEN, secret, len, d)) != KEYD_OK)
			goto out;
		xs[nrand] = SHAMIR_DIGEST_X;
	}
	memcpy(base + (nrand + 1) * len, secret, len);
	xs[nrand + 1] = SHAMIR_SECRET_X;

	/* Step 5: shares 0 .. threshold - 3 are the random points; the rest
	 * are the polynomial's values at their x. */
	memcpy(shares, base, nrand * len);
	for (i = nrand; i < count; i++) {
		if ((r = shamir_interpolate(xs, base, threshold, len,
		    (uint8_t)i, shares + i * len)) != KEYD_OK)
			goto out;
	}
	r = KEYD_OK;
out:
	secmem_free(base, base_len);
	if (r != KEYD_OK)
		secmem_wipe(shares, (size_t)count * len);
	return r;
}

int
shamir_recover(unsigned threshold, const uint8_t *xs, const uint8_t *ys,
    size_t m, size_t len, uint8_t *secret)
{
	uint8_t *digest = NULL;
	uint8_t want[SHAMIR_DIGEST_LEN];
	size_t i, j;
	int r = KEYD_ERR_INVALID_ARG;

	if (xs == NULL || ys == NULL || secret == NULL || !secret_len_ok(len) ||
	    threshold < 1 || threshold > SHAMIR_MAX_SHARES || m == 0 ||
	    m > SHAMIR_MAX_SHARES)
		return KEYD_ERR_INVALID_ARG;
	/* Shares handed out have 4-bit indices; a point claiming x = 254 or
	 * 255 would let whoever wrote it choose the result. */
	for (i = 0; i < m; i++)
		if (xs[i] >= SHAMIR_MAX_SHARES)
			return KEYD_ERR_INVALID_ARG;
	for (i = 0; i < m; i++)
		for (j = i + 1; j < m; j++)
			if (xs[i] == xs[j])
				return KEYD_ERR_SHARE_DUPLICATE;
	if (m < threshold)
		return KEYD_ERR_SHARE_TOO_FEW;

	if (threshold == 1) {
		/* RecoverSecret step 1 takes y_1; extra points must agree. */
		for (i = 1; i < m; i++) {
			if (CRYPTO_memcmp(ys, ys + i * len, len) != 0) {
				r = KEYD_ERR_SHARE_DIGEST;
				goto out;
			}
		}
		memcpy(secret, ys, len);
		r = KEYD_OK;
		goto out;
	}

	if ((digest = secmem_alloc(len)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	if ((r = shamir_interpolate(xs, ys, m, len, SHAMIR_SECRET_X,
	    secret)) != KEYD_OK)
		goto out;
	if ((r = shamir_interpolate(xs, ys, m, len, SHAMIR_DIGEST_X,
	    digest)) != KEYD_OK)
		goto out;
	if ((r = make_digest(digest + SHAMIR_DIGEST_LEN,
	    len - SHAMIR_DIGEST_LEN, secret, len, want)) != KEYD_OK)
		goto out;
	if (CRYPTO_memcmp(want, digest, SHAMIR_DIGEST_LEN) != 0) {
		r = KEYD_ERR_SHARE_DIGEST;
		goto out;
	}
	r = KEYD_OK;
out:
	secmem_free(digest, len);
	secmem_wipe(want, sizeof(want));
	if (r != KEYD_OK)
		secmem_wipe(secret, len);
	return r;
}
