/*
 * backup_probe: a small outside judge for keyd-backup's tests. It talks
 * to the PKCS#11 module directly (through p11-kit, none of keyd's code)
 * and reports what the token holds and allows.
 *
 *   backup_probe attrs MODULE TOKEN PIN LABEL
 *     one line per object labelled LABEL: its class and the attributes
 *     keyd-backup promises (sensitive, extractable, wrap_with_trusted,
 *     never_extractable, sign, decrypt, encrypt, and check_value for
 *     secret keys).
 *   backup_probe wrap-untrusted MODULE TOKEN PIN LABEL
 *     as the user, makes an AES key (not trusted: only the SO can make
 *     one so) and wraps the key labelled LABEL under it with
 *     CKM_AES_KEY_WRAP_PAD; prints the CK_RV name: CKR_KEY_NOT_WRAPPABLE
 *     for a wrap-with-trusted key, CKR_OK for a merely extractable one.
 *
 * Exit status: 0 if it could ask, 1 on a usage or set-up error.
 */
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MAX_OBJECTS 16
#define PROBE_MAX_VALUE 64

static CK_FUNCTION_LIST *f;
static CK_SESSION_HANDLE s;

static const char *
rv_name(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_KEY_NOT_WRAPPABLE: return "CKR_KEY_NOT_WRAPPABLE";
	case CKR_KEY_UNEXTRACTABLE: return "CKR_KEY_UNEXTRACTABLE";
	case CKR_WRAPPING_KEY_HANDLE_INVALID:
		return "CKR_WRAPPING_KEY_HANDLE_INVALID";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	}
	return "CKR_(other)";
}

static int
open_token(const char *module, const char *label, const char *pin)
{
	CK_C_INITIALIZE_ARGS args;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_TOKEN_INFO ti;
	char l[33];

	f = p11_kit_module_load(module, P11_KIT_MODULE_UNMANAGED);
	if (f == NULL)
		return -1;
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	if (f->C_Initialize(&args) != CKR_OK ||
	    f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		memcpy(l, ti.label, 32);
		l[32] = '\0';
		for (int j = 31; j >= 0 && l[j] == ' '; j--)
			l[j] = '\0';
		if (strcmp(l, label) != 0)
			continue;
		if (f->C_OpenSession(slots[i], CKF_SERIAL_SESSION |
		    CKF_RW_SESSION, NULL, NULL, &s) != CKR_OK ||
		    f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)(uintptr_t)pin,
		    strlen(pin)) != CKR_OK)
			return -1;
		return 0;
	}
	return -1;
}

static CK_ULONG
find(const char *label, CK_OBJECT_HANDLE *objs)
{
	CK_ATTRIBUTE t = { CKA_LABEL, (void *)(uintptr_t)label, strlen(label) };
	CK_ULONG n = 0;

	if (f->C_FindObjectsInit(s, &t, 1) != CKR_OK)
		return 0;
	if (f->C_FindObjects(s, objs, PROBE_MAX_OBJECTS, &n) != CKR_OK)
		n = 0;
	(void)f->C_FindObjectsFinal(s);
	return n;
}

static void
print_bool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, const char *name)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (f->C_GetAttributeValue(s, o, &a, 1) == CKR_OK)
		printf(" %s=%d", name, v == CK_TRUE);
}

static int
attrs(const char *label)
{
	CK_OBJECT_HANDLE objs[PROBE_MAX_OBJECTS];
	CK_ULONG n = find(label, objs);

	for (CK_ULONG i = 0; i < n; i++) {
		CK_OBJECT_CLASS cls = 0;
		CK_ATTRIBUTE a = { CKA_CLASS, &cls, sizeof(cls) };
		unsigned char v[PROBE_MAX_VALUE];
		CK_ATTRIBUTE cv = { CKA_CHECK_VALUE, v, sizeof(v) };

		if (f->C_GetAttributeValue(s, objs[i], &a, 1) != CKR_OK)
			continue;
		printf("class=%s", cls == CKO_PRIVATE_KEY ? "private" :
		    cls == CKO_PUBLIC_KEY ? "public" : cls == CKO_SECRET_KEY ?
		    "secret" : "other");
		if (cls != CKO_PUBLIC_KEY) {
			print_bool(objs[i], CKA_SENSITIVE, "sensitive");
			print_bool(objs[i], CKA_EXTRACTABLE, "extractable");
			print_bool(objs[i], CKA_WRAP_WITH_TRUSTED,
			    "wrap_with_trusted");
			print_bool(objs[i], CKA_NEVER_EXTRACTABLE,
			    "never_extractable");
			print_bool(objs[i], CKA_SIGN, "sign");
			print_bool(objs[i], CKA_DECRYPT, "decrypt");
			print_bool(objs[i], CKA_UNWRAP, "unwrap");
			print_bool(objs[i], CKA_DERIVE, "derive");
		} else {
			print_bool(objs[i], CKA_VERIFY, "verify");
		}
		if (cls == CKO_SECRET_KEY) {
			print_bool(objs[i], CKA_ENCRYPT, "encrypt");
			print_bool(objs[i], CKA_WRAP, "wrap");
			print_bool(objs[i], CKA_VERIFY, "verify");
			if (f->C_GetAttributeValue(s, objs[i], &cv, 1) ==
			    CKR_OK) {
				printf(" check_value=");
				for (CK_ULONG j = 0; j < cv.ulValueLen; j++)
					printf("%02x", v[j]);
			}
		}
		printf("\n");
	}
	return 0;
}

static int
wrap_untrusted(const char *label)
{
	static const unsigned char kek_value[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	CK_OBJECT_CLASS sc = CKO_SECRET_KEY;
	CK_KEY_TYPE aes = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE kt[] = {
		{ CKA_CLASS, &sc, sizeof(sc) },
		{ CKA_KEY_TYPE, &aes, sizeof(aes) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VALUE, (void *)(uintptr_t)kek_value, sizeof(kek_value) },
		{ CKA_WRAP, &yes, sizeof(yes) },
		{ CKA_UNWRAP, &yes, sizeof(yes) },
	};
	CK_MECHANISM m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_OBJECT_HANDLE objs[PROBE_MAX_OBJECTS], kek, key = 0;
	CK_OBJECT_CLASS cls;
	CK_ATTRIBUTE ca = { CKA_CLASS, &cls, sizeof(cls) };
	unsigned char out[8192];
	CK_ULONG olen = sizeof(out), n = find(label, objs);
	CK_RV rv;

	for (CK_ULONG i = 0; i < n; i++)
		if (f->C_GetAttributeValue(s, objs[i], &ca, 1) == CKR_OK &&
		    cls != CKO_PUBLIC_KEY)
			key = objs[i];
	if (key == 0) {
		fprintf(stderr, "backup_probe: no private or secret key "
		    "labelled %s\n", label);
		return 1;
	}
	if ((rv = f->C_CreateObject(s, kt, 6, &kek)) != CKR_OK) {
		fprintf(stderr, "backup_probe: cannot make the AES key: 0x%lx\n",
		    (unsigned long)rv);
		return 1;
	}
	rv = f->C_WrapKey(s, &m, kek, key, out, &olen);
	printf("%s\n", rv_name(rv));
	return 0;
}

int
main(int argc, char **argv)
{
	char pin[256];
	FILE *pf;
	size_t n;
	int r;

	if (argc != 6 || (strcmp(argv[1], "attrs") != 0 &&
	    strcmp(argv[1], "wrap-untrusted") != 0)) {
		fprintf(stderr, "usage: backup_probe attrs|wrap-untrusted MODULE "
		    "TOKEN PINFILE LABEL\n");
		return 1;
	}
	if ((pf = fopen(argv[4], "r")) == NULL ||
	    fgets(pin, sizeof(pin), pf) == NULL) {
		fprintf(stderr, "backup_probe: cannot read %s\n", argv[4]);
		return 1;
	}
	fclose(pf);
	n = strlen(pin);
	if (n > 0 && pin[n - 1] == '\n')
		pin[n - 1] = '\0';
	if (open_token(argv[2], argv[3], pin) != 0) {
		fprintf(stderr, "backup_probe: cannot open token %s\n", argv[3]);
		return 1;
	}
	r = strcmp(argv[1], "attrs") == 0 ? attrs(argv[5]) :
	    wrap_untrusted(argv[5]);
	(void)f->C_CloseSession(s);
	(void)f->C_Finalize(NULL);
	return r;
}
