/*
 * gf256.c: constant-time GF(2^8) arithmetic for Shamir sharing.
 *
 * The usual log/exp tables (as in the SLIP-0039 reference code) are indexed
 * by the share bytes, which leaks them through the cache; a branch on an
 * operand bit leaks them through the branch predictor. Here every step
 * turns a bit into an all-ones or all-zeros mask instead.
 */
#include "gf256.h"

/* The reduction polynomial x^8 + x^4 + x^3 + x + 1 (FIPS-197 4.2). */
#define GF256_POLY 0x11bu

/* bit -> 0 or 0xffffffff, without a branch. */
static inline unsigned
bit_mask(unsigned bit)
{
	return 0u - (bit & 1u);
}

uint8_t
gf256_add(uint8_t a, uint8_t b)
{
	return (uint8_t)(a ^ b);
}

uint8_t
gf256_mul(uint8_t a, uint8_t b)
{
	unsigned x = a, y = b, r = 0;
	int i;

	/* Eight fixed rounds: add x if the low bit of y is set, then multiply
	 * x by the polynomial "x", reducing when bit 8 appears. */
	for (i = 0; i < 8; i++) {
		r ^= x & bit_mask(y);
		y >>= 1;
		x <<= 1;
		x ^= GF256_POLY & bit_mask(x >> 8);
	}
	return (uint8_t)r;
}

uint8_t
gf256_inv(uint8_t a)
{
	uint8_t sq = a, r = 1;
	int i;

	/* a^254 = a^2 * a^4 * ... * a^128 (254 = 0b11111110): a fixed chain
	 * of squarings and products, the same for every a. By Fermat's little
	 * theorem a^255 = 1 for a != 0, so a^254 = 1/a; and 0^254 = 0. */
	for (i = 1; i < 8; i++) {
		sq = gf256_mul(sq, sq);
		r = gf256_mul(r, sq);
	}
	return r;
}

uint8_t
gf256_div(uint8_t a, uint8_t b)
{
	return gf256_mul(a, gf256_inv(b));
}
