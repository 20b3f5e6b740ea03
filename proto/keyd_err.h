/*
 * keyd_err.h: the one error enum of keyd, shared by the daemon, the tools,
 * libkeyd and the wire protocol (Response.error carries these values).
 * Values are stable: they are part of protocol version 1.
 */
#ifndef KEYD_ERR_H
#define KEYD_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef KEYD_API
#define KEYD_API __attribute__((visibility("default")))
#endif

enum keyd_err {
	KEYD_OK = 0,
	KEYD_ERR_INTERNAL = -1,        /* a bug in keyd */
	KEYD_ERR_NOMEM = -2,           /* out of memory */
	KEYD_ERR_INVALID_ARG = -3,     /* a bad argument from the caller */
	KEYD_ERR_PROTOCOL = -4,        /* a malformed frame or message */
	KEYD_ERR_FRAME_TOO_LARGE = -5, /* a frame over the size limit */
	KEYD_ERR_DENIED = -6,          /* the policy does not allow it */
	KEYD_ERR_UNKNOWN_KEY = -7,     /* no key of that name for this client */
	KEYD_ERR_UNKNOWN_OP = -8,      /* an operation keyd does not know */
	KEYD_ERR_BAD_ALGORITHM = -9,   /* algorithm does not fit the key */
	KEYD_ERR_BAD_LENGTH = -10,     /* input of the wrong length */
	KEYD_ERR_UNSUPPORTED = -11,    /* not supported by this token */
	KEYD_ERR_TOKEN = -12,          /* the token failed the operation */
	KEYD_ERR_DECRYPT = -13,        /* decryption failed */
	KEYD_ERR_RATE_LIMITED = -14,   /* the client's rate limit was hit */
	KEYD_ERR_BUSY = -15,           /* too many connections or requests */
	KEYD_ERR_IO = -16,             /* a system call failed */
	KEYD_ERR_CONNECT = -17,        /* cannot reach the daemon */
	KEYD_ERR_PEER_UNTRUSTED = -18, /* socket served by an unexpected uid */
	KEYD_ERR_CLOSED = -19,         /* the connection was closed */
	KEYD_ERR_VERSION = -20,        /* protocol version mismatch */
	KEYD_ERR_CONFIG = -21,         /* the configuration is invalid */
	KEYD_ERR_TIMEOUT = -22,        /* the operation timed out */
	KEYD_ERR_BUFFER_TOO_SMALL = -23, /* the output buffer is too small */
	KEYD_ERR_AUDIT = -24,          /* the audit log cannot be written */
	KEYD_ERR_CRYPTO = -25,         /* a cryptographic library call failed */
	KEYD_ERR_AGAIN = -26,          /* incomplete input; try again later */
	KEYD_ERR_NOT_FOUND = -27,      /* no such object (a certificate) */
	KEYD_ERR_BLOB = -28,           /* an SRTP blob is altered or not ours */
	KEYD_ERR_LIMIT = -29,          /* a usage limit was reached */
	KEYD_ERR_CERTIFICATE = -30,    /* the key's certificate is not valid now */
	KEYD_ERR_SHARE_CHECKSUM = -40, /* a share's checksum does not match */
	KEYD_ERR_SHARE_FORMAT = -41,   /* a share is malformed */
	KEYD_ERR_SHARE_MISMATCH = -42, /* shares from different sets */
	KEYD_ERR_SHARE_DUPLICATE = -43,/* the same share given twice */
	KEYD_ERR_SHARE_TOO_FEW = -44,  /* fewer shares than the threshold */
	KEYD_ERR_SHARE_DIGEST = -45,   /* shares do not combine to a valid secret */
	KEYD_ERR_BUNDLE = -46,         /* a backup bundle is malformed or altered */
	KEYD_ERR_PASSPHRASE = -47,     /* wrong passphrase or wrong shares */
};

/* keyd_strerror: a short English description of err (a KEYD_ERR_* value).
 * Returns a static string; never NULL, even for unknown values. */
KEYD_API const char *keyd_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
