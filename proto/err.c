/* err.c: descriptions of the KEYD_ERR_* codes. */
#include "keyd_err.h"

const char *
keyd_strerror(int err)
{
	switch (err) {
	case KEYD_OK: return "success";
	case KEYD_ERR_INTERNAL: return "internal error";
	case KEYD_ERR_NOMEM: return "out of memory";
	case KEYD_ERR_INVALID_ARG: return "invalid argument";
	case KEYD_ERR_PROTOCOL: return "protocol error";
	case KEYD_ERR_FRAME_TOO_LARGE: return "message too large";
	case KEYD_ERR_DENIED: return "permission denied by policy";
	case KEYD_ERR_UNKNOWN_KEY: return "unknown key";
	case KEYD_ERR_UNKNOWN_OP: return "unknown operation";
	case KEYD_ERR_BAD_ALGORITHM: return "algorithm does not fit the key";
	case KEYD_ERR_BAD_LENGTH: return "input has the wrong length";
	case KEYD_ERR_UNSUPPORTED: return "not supported by this token";
	case KEYD_ERR_TOKEN: return "token error";
	case KEYD_ERR_DECRYPT: return "decryption failed";
	case KEYD_ERR_RATE_LIMITED: return "rate limit exceeded";
	case KEYD_ERR_BUSY: return "too many connections or requests";
	case KEYD_ERR_IO: return "input/output error";
	case KEYD_ERR_CONNECT: return "cannot connect to keyd";
	case KEYD_ERR_PEER_UNTRUSTED: return "socket is not served by a trusted keyd";
	case KEYD_ERR_CLOSED: return "connection closed";
	case KEYD_ERR_VERSION: return "protocol version not supported";
	case KEYD_ERR_CONFIG: return "invalid configuration";
	case KEYD_ERR_TIMEOUT: return "timed out";
	case KEYD_ERR_BUFFER_TOO_SMALL: return "output buffer too small";
	case KEYD_ERR_AUDIT: return "audit log cannot be written; request refused";
	case KEYD_ERR_CRYPTO: return "cryptographic library error";
	case KEYD_ERR_AGAIN: return "incomplete input";
	case KEYD_ERR_NOT_FOUND: return "not found";
	case KEYD_ERR_BLOB: return "SRTP blob is altered or belongs to another key or context";
	case KEYD_ERR_LIMIT: return "usage limit reached";
	case KEYD_ERR_CERTIFICATE: return "the key's certificate has expired or is not valid yet";
	case KEYD_ERR_SHARE_CHECKSUM: return "share checksum is wrong";
	case KEYD_ERR_SHARE_FORMAT: return "share is malformed";
	case KEYD_ERR_SHARE_MISMATCH: return "shares belong to different sets";
	case KEYD_ERR_SHARE_DUPLICATE: return "duplicate share";
	case KEYD_ERR_SHARE_TOO_FEW: return "not enough shares";
	case KEYD_ERR_SHARE_DIGEST: return "shares do not combine to a valid secret";
	case KEYD_ERR_BUNDLE: return "backup bundle is malformed or altered";
	case KEYD_ERR_PASSPHRASE: return "wrong passphrase or shares";
	}
	return "unknown error";
}
