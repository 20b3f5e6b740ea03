/*
 * shamir.h: Shamir's secret sharing over GF(256) exactly as SLIP-0039
 * section "Shamir's secret-sharing" defines it: the secret sits at x = 255,
 * a digest share at x = 254, and the shares handed out have x = 0..15.
 * Both x = 254 and x = 255 stay inside this module; no share with either
 * index is ever produced or accepted.
 *
 * All arithmetic is constant time (gf256.h). Secret buffers are the
 * caller's; this module wipes every intermediate value it makes.
 */
#ifndef KEYD_SHAMIR_H
#define KEYD_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

/* Share indices are 4 bits in SLIP-0039, so at most 16 shares a split. */
#define SHAMIR_MAX_SHARES 16
/* SLIP-0039: a secret is at least 128 bits and a multiple of 16 bits. */
#define SHAMIR_MIN_SECRET_LEN 16
/* The largest secret keyd splits: 512 bits, the longest BIP-32 seed the
 * SLIP-0039 specification mentions. A 64-byte secret gives 59-word shares. */
#define SHAMIR_MAX_SECRET_LEN 64
/* x of the digest share and of the secret (SLIP-0039 "Sharing a secret"). */
#define SHAMIR_DIGEST_X 254
#define SHAMIR_SECRET_X 255
/* Bytes of HMAC-SHA256 kept as the digest. */
#define SHAMIR_DIGEST_LEN 4

/* shamir_split: SplitSecret(threshold, count, secret) of SLIP-0039.
 * secret is len bytes, SHAMIR_MIN_SECRET_LEN <= len <= SHAMIR_MAX_SECRET_LEN
 * and even; 1 <= threshold <= count <= SHAMIR_MAX_SHARES. Share i (x = i,
 * 0 <= i < count) is written to shares[i * len .. (i + 1) * len), which the
 * caller provides (count * len bytes, best in locked memory) and owns.
 * For threshold >= 2, threshold - 2 shares and the digest's random part come
 * from OpenSSL's RAND_priv_bytes, unmodified; threshold 1 copies the secret.
 * Returns KEYD_OK, KEYD_ERR_INVALID_ARG, KEYD_ERR_NOMEM or KEYD_ERR_CRYPTO
 * (the RNG or HMAC failed); on error shares is wiped. */
int shamir_split(unsigned threshold, unsigned count, const uint8_t *secret,
    size_t len, uint8_t *shares) __attribute__((warn_unused_result));

/* shamir_recover: RecoverSecret(threshold, points) of SLIP-0039. Point j
 * has x = xs[j] (< SHAMIR_MAX_SHARES, pairwise distinct) and y =
 * ys[j * len .. (j + 1) * len); m points in all. The secret (len bytes) goes
 * to secret, which the caller provides and owns.
 * With threshold 1 every y must be the same, and is the secret. Otherwise
 * the secret and the digest share are interpolated from all m points (the
 * specification passes exactly threshold points; more are accepted, and
 * since they must all lie on one polynomial for the digest to match, every
 * point given is checked) and the digest is verified.
 * Returns KEYD_OK; KEYD_ERR_SHARE_TOO_FEW if m < threshold;
 * KEYD_ERR_SHARE_DUPLICATE if two xs are equal; KEYD_ERR_SHARE_DIGEST if the
 * digest does not match (or, threshold 1, the ys differ);
 * KEYD_ERR_INVALID_ARG for bad sizes or indices; KEYD_ERR_NOMEM;
 * KEYD_ERR_CRYPTO. On error secret is wiped. */
int shamir_recover(unsigned threshold, const uint8_t *xs, const uint8_t *ys,
    size_t m, size_t len, uint8_t *secret) __attribute__((warn_unused_result));

/* shamir_interpolate: Interpolate(x, points) of SLIP-0039: the value at x
 * of the polynomial of lowest degree through the m points (xs[j], ys[j *
 * len ..]), 1 <= m <= SHAMIR_MAX_SHARES, byte by byte, written to out (len
 * bytes, the caller's). If x is one of the xs, that point's y is copied.
 * Returns KEYD_OK, KEYD_ERR_SHARE_DUPLICATE if two xs are equal, or
 * KEYD_ERR_INVALID_ARG. */
int shamir_interpolate(const uint8_t *xs, const uint8_t *ys, size_t m,
    size_t len, uint8_t x, uint8_t *out) __attribute__((warn_unused_result));

#endif
