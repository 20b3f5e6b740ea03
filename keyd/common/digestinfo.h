/*
 * digestinfo.h: the DER DigestInfo prefixes keyd accepts for RSA PKCS#1
 * v1.5 signatures (RFC 8017 §9.2, note 1), byte for byte: SHA-256, SHA-384
 * and SHA-512. keyd-serve builds and checks its inputs with them
 * (dispatch.c), and keyd-token checks again that a PKCS#1 v1.5 signature
 * it is asked for signs one of them (tokenproc.c).
 */
#ifndef KEYD_DIGESTINFO_H
#define KEYD_DIGESTINFO_H

#include <stddef.h>
#include <stdint.h>

#define DIGESTINFO_N 3

struct digestinfo {
	const uint8_t *prefix;
	size_t prefix_len;
	size_t hash_len;
};

/* [0] SHA-256, [1] SHA-384, [2] SHA-512. */
extern const struct digestinfo digestinfos[DIGESTINFO_N];

/* The index of the DigestInfo that in (len bytes) is, whole: a known
 * prefix followed by exactly its hash's length. -1 if none. */
int digestinfo_find(const uint8_t *in, size_t len);

#endif
