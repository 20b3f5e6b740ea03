/* test_gf256.c: GF(2^8) arithmetic against known answers and a slow,
 * obviously correct reference, for every pair of operands. */
#include <stdint.h>

#include "gf256.h"
#include "ktest.h"

/* Schoolbook: carry-less product, then reduction by x^8+x^4+x^3+x+1. */
static uint8_t
ref_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0;
	int i;

	for (i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (i = 14; i >= 8; i--)
		if (p & (1u << i))
			p ^= 0x11bu << (i - 8);
	return (uint8_t)p;
}

/* The inverse by search: the b with a * b = 1. */
static uint8_t
ref_inv(uint8_t a)
{
	unsigned b;

	for (b = 1; b < 256; b++)
		if (ref_mul(a, (uint8_t)b) == 1)
			return (uint8_t)b;
	return 0;
}

int
main(void)
{
	unsigned a, b;
	int mul_bad = 0, inv_bad = 0, div_bad = 0;

	/* FIPS-197 section 4.2 and the AES S-box derivation. */
	CHECK_INT(gf256_mul(0x57, 0x83), 0xc1);
	CHECK_INT(gf256_mul(0x57, 0x13), 0xfe);
	CHECK_INT(gf256_mul(0x57, 0x02), 0xae);
	CHECK_INT(gf256_mul(0x57, 0x04), 0x47);
	CHECK_INT(gf256_mul(0x57, 0x08), 0x8e);
	CHECK_INT(gf256_mul(0x57, 0x10), 0x07);
	CHECK_INT(gf256_mul(0x53, 0xca), 0x01);
	CHECK_INT(gf256_inv(0x53), 0xca);
	CHECK_INT(gf256_inv(0xca), 0x53);
	CHECK_INT(gf256_inv(0x01), 0x01);
	CHECK_INT(gf256_inv(0x00), 0x00);
	CHECK_INT(gf256_add(0x57, 0x83), 0xd4);
	CHECK_INT(gf256_div(0x01, 0x53), 0xca);

	for (a = 0; a < 256; a++) {
		uint8_t inv = gf256_inv((uint8_t)a);

		if (inv != ref_inv((uint8_t)a))
			inv_bad++;
		if (a != 0 && gf256_mul((uint8_t)a, inv) != 1)
			inv_bad++;
		for (b = 0; b < 256; b++) {
			uint8_t p = gf256_mul((uint8_t)a, (uint8_t)b);

			if (p != ref_mul((uint8_t)a, (uint8_t)b) ||
			    p != gf256_mul((uint8_t)b, (uint8_t)a))
				mul_bad++;
			if (b != 0 && gf256_div(p, (uint8_t)b) != a)
				div_bad++;
		}
	}
	CHECKF(mul_bad == 0, "%d of 65536 products differ", mul_bad);
	CHECKF(inv_bad == 0, "%d inverses differ", inv_bad);
	CHECKF(div_bad == 0, "%d quotients differ", div_bad);
	return ktest_result("test_gf256");
}
