/*
 * kp11.h: what the modules of keyd-pkcs11.so share: the PKCS#11 header
 * (p11-kit's, PKCS#11 2.40) and the key types the module serves.
 */
#ifndef KEYD_KP11_H
#define KEYD_KP11_H

#include <p11-kit/pkcs11.h>

/* The key types keyd-pkcs11.so shows; AES keys (SRTP KEKs) are not
 * PKCS#11 objects here. */
enum kp11_keytype {
	KP11_KEY_NONE = 0,
	KP11_KEY_EC_P256,
	KP11_KEY_EC_P384,
	KP11_KEY_RSA,
	KP11_KEY_ED25519,
};

/* The longest key name libkeyd sends. */
#define KP11_KEY_NAME_MAX 256u

#endif
