/*
 * gf256.h: arithmetic in GF(2^8) with the Rijndael polynomial
 * x^8 + x^4 + x^3 + x + 1 (0x11b), the field of SLIP-0039's Shamir
 * sharing (FIPS-197 sections 4.1 and 4.2).
 *
 * Every function runs in constant time: no table is indexed by an operand
 * and no branch depends on one, so the functions may be given secret bytes.
 */
#ifndef KEYD_GF256_H
#define KEYD_GF256_H

#include <stdint.h>

/* gf256_add: a + b (and a - b, the same thing in characteristic 2).
 * Returns a xor b. */
uint8_t gf256_add(uint8_t a, uint8_t b);

/* gf256_mul: a * b modulo 0x11b, by shift-and-add with masks.
 * Returns the product. */
uint8_t gf256_mul(uint8_t a, uint8_t b);

/* gf256_inv: the multiplicative inverse of a, computed as a^254.
 * Returns 1/a for a != 0, and 0 for a == 0 (0^254), without a branch. */
uint8_t gf256_inv(uint8_t a);

/* gf256_div: a / b, that is a * gf256_inv(b). Returns 0 if b == 0; callers
 * that can meet b == 0 must rule it out first, since 0 is not a quotient. */
uint8_t gf256_div(uint8_t a, uint8_t b);

#endif
