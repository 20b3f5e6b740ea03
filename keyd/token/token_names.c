/* token_names.c: names of PKCS#11 return values, key types and the OAEP
 * variants, shared by every process (the token process, the socket-facing
 * daemon, keyd-backup). */
#include "token.h"

#include <p11-kit/uri.h>
#include <stdio.h>
#include <string.h>

const char *
token_rv_name(CK_RV rv)
{
	switch (rv) {
#define N(x) case x: return #x;
	N(CKR_OK) N(CKR_CANCEL) N(CKR_HOST_MEMORY) N(CKR_SLOT_ID_INVALID)
	N(CKR_GENERAL_ERROR) N(CKR_FUNCTION_FAILED) N(CKR_ARGUMENTS_BAD)
	N(CKR_ATTRIBUTE_READ_ONLY) N(CKR_ATTRIBUTE_SENSITIVE)
	N(CKR_ATTRIBUTE_TYPE_INVALID) N(CKR_ATTRIBUTE_VALUE_INVALID)
	N(CKR_ACTION_PROHIBITED) N(CKR_DATA_INVALID) N(CKR_DATA_LEN_RANGE)
	N(CKR_DEVICE_ERROR) N(CKR_DEVICE_MEMORY) N(CKR_DEVICE_REMOVED)
	N(CKR_ENCRYPTED_DATA_INVALID) N(CKR_ENCRYPTED_DATA_LEN_RANGE)
	N(CKR_FUNCTION_CANCELED) N(CKR_FUNCTION_NOT_SUPPORTED)
	N(CKR_KEY_HANDLE_INVALID) N(CKR_KEY_SIZE_RANGE)
	N(CKR_KEY_TYPE_INCONSISTENT) N(CKR_KEY_FUNCTION_NOT_PERMITTED)
	N(CKR_KEY_NOT_WRAPPABLE) N(CKR_KEY_UNEXTRACTABLE)
	N(CKR_MECHANISM_INVALID) N(CKR_MECHANISM_PARAM_INVALID)
	N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE)
	N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_PIN_INCORRECT)
	N(CKR_PIN_INVALID) N(CKR_PIN_LEN_RANGE) N(CKR_PIN_EXPIRED)
	N(CKR_PIN_LOCKED) N(CKR_SESSION_CLOSED) N(CKR_SESSION_COUNT)
	N(CKR_SESSION_HANDLE_INVALID) N(CKR_SESSION_READ_ONLY)
	N(CKR_SIGNATURE_INVALID) N(CKR_SIGNATURE_LEN_RANGE)
	N(CKR_TEMPLATE_INCOMPLETE) N(CKR_TEMPLATE_INCONSISTENT)
	N(CKR_TOKEN_NOT_PRESENT) N(CKR_TOKEN_NOT_RECOGNIZED)
	N(CKR_USER_ALREADY_LOGGED_IN) N(CKR_USER_NOT_LOGGED_IN)
	N(CKR_USER_PIN_NOT_INITIALIZED) N(CKR_USER_TYPE_INVALID)
	N(CKR_BUFFER_TOO_SMALL) N(CKR_CRYPTOKI_NOT_INITIALIZED)
	N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef N
	}
	return "CKR_(other)";
}

const char *
token_key_type_name(enum token_key_type type)
{
	switch (type) {
	case TOKEN_KEY_EC_P256: return "ec-p256";
	case TOKEN_KEY_EC_P384: return "ec-p384";
	case TOKEN_KEY_RSA: return "rsa";
	case TOKEN_KEY_ED25519: return "ed25519";
	case TOKEN_KEY_AES: return "aes";
	case TOKEN_KEY_HMAC: return "hmac";
	}
	return "unknown";
}

const struct token_oaep token_oaep_variants[TOKEN_OAEP_N] = {
	{ TOKEN_OAEP_SHA1, CKM_SHA_1, CKG_MGF1_SHA1, "SHA1", "rsa-oaep-sha1" },
	{ TOKEN_OAEP_SHA256, CKM_SHA256, CKG_MGF1_SHA256, "SHA256",
	  "rsa-oaep-sha256" },
	{ TOKEN_OAEP_SHA384, CKM_SHA384, CKG_MGF1_SHA384, "SHA384",
	  "rsa-oaep-sha384" },
	{ TOKEN_OAEP_SHA512, CKM_SHA512, CKG_MGF1_SHA512, "SHA512",
	  "rsa-oaep-sha512" },
};

void
token_oaep_names(unsigned bits, char *dst, size_t n)
{
	size_t used = 0;

	if (n == 0)
		return;
	dst[0] = '\0';
	for (size_t i = 0; i < TOKEN_OAEP_N && used < n; i++)
		if (bits & token_oaep_variants[i].bit)
			used += (size_t)snprintf(dst + used, n - used, "%s%s",
			    used > 0 ? ", " : "", token_oaep_variants[i].name);
}

void
token_uri_label(const char *uri, char *out, size_t n)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	size_t len;

	snprintf(out, n, "%s", uri);
	if (u == NULL)
		return;
	if (p11_kit_uri_parse(uri, P11_KIT_URI_FOR_TOKEN, u) == P11_KIT_URI_OK &&
	    (ti = p11_kit_uri_get_token_info(u)) != NULL &&
	    ti->label[0] != 0) {
		len = sizeof(ti->label);
		while (len > 0 && ti->label[len - 1] == ' ')
			len--;
		if (len > 0 && len < n) {
			memcpy(out, ti->label, len);
			out[len] = '\0';
		}
	}
	p11_kit_uri_free(u);
}
