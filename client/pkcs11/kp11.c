/*
 * kp11.c: keyd-pkcs11.so's PKCS#11 entry points: one slot with one token
 * whose objects are the keys keyd lets this process use. Signing and
 * decryption go to keyd, one request per operation; verification runs
 * here with OpenSSL.
 *
 * Locking: the module lock (g.lock) guards the sessions, the login state
 * and the object table, and is never held while a request is with keyd.
 * A call that works on a session's operations marks the session busy
 * (under the lock), drops the lock, talks to keyd over a connection of
 * its own from the pool, and clears the mark. Requests of different
 * sessions therefore run in parallel. The lock order is g.lock, then the
 * pool's lock.
 *
 * Fork: pthread_atfork handlers keep both locks consistent; in the child
 * the pool drops the parent's connections (libkeyd would notice too) and
 * opens its own on first use, and sessions keep their handles, operations
 * and login state, as PKCS#11 3.0's CKF_INTERFACE_FORK_SAFE describes.
 */
#include "kp11.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keyd.h"
#include "kp11conf.h"
#include "kp11mech.h"
#include "kp11obj.h"
#include "kp11pool.h"

#define KP11_EXPORT __attribute__((visibility("default")))

/* The one slot. Not 0: some applications take 0 for "none". */
#define KP11_SLOT_ID 1u
#define KP11_MAX_SESSIONS 4096u
/* C_FindObjectsInit asks keyd for the keys again when the table is older
 * than this; other calls use the table they have. */
#define KP11_REFRESH_MS 5000
#define KP11_MSG_MAX 512u
#define KP11_PIN_MAX 255u

#define KP11_MANUFACTURER "keyd"
#define KP11_LIBRARY_DESC "keyd PKCS#11 module"
#define KP11_MODEL "keyd-pkcs11"
#define KP11_SLOT_DESC "keyd key custody daemon"


/* PKCS#11 3.0's interface (sections 3.6 and 5.4). p11-kit 0.25's header
 * (Debian 13) is 3.0 and has its types; 0.24's (Debian 12) is 2.40, so
 * the same layouts are spelled out here: the 2.40 list followed by the
 * functions 3.0 adds, each typed as keyd defines it below. */
#if CRYPTOKI_VERSION_MAJOR >= 3
typedef CK_INTERFACE KP11_INTERFACE;
typedef CK_FUNCTION_LIST_3_0 KP11_FUNCTION_LIST_3_0;
#define KP11_CKF_FIND_OBJECTS CKF_FIND_OBJECTS
#define KP11_CKR_OPERATION_CANCEL_FAILED CKR_OPERATION_CANCEL_FAILED
#else
typedef struct kp11_interface {
	CK_CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} KP11_INTERFACE;
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#define KP11_CKF_FIND_OBJECTS 0x00000040UL
#define KP11_CKR_OPERATION_CANCEL_FAILED 0x00000202UL
#endif

struct kp11_session {
	CK_SESSION_HANDLE h;
	CK_FLAGS flags;
	int busy;                 /* a call is using its operations */
	int dead;                 /* closed while busy: the user frees it */
	int finding;
	CK_OBJECT_HANDLE *found;
	size_t nfound, pos;
	struct kp11mech_op sign, verify, decrypt;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t idle;      /* a session stopped being busy */
	int initialized;
	pid_t pid;                /* the process that called C_Initialize */
	unsigned gen;             /* bumped by C_Initialize and C_Finalize */
	struct kp11conf conf;
	struct kp11_session **sess;
	size_t nsess;
	CK_SESSION_HANDLE next_session;
	int logged_in;
	struct kp11obj_table *table;
	int table_stale;
	struct kp11obj_registry reg;
} g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
};

static struct kp11pool pool;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_ok;
static atomic_int debug_on;

static CK_FUNCTION_LIST function_list;

static void kp11_debug(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* With KEYD_PKCS11_DEBUG set, says on stderr why a call failed: a
 * PKCS#11 return code cannot carry keyd's message. */
static void
kp11_debug(const char *fmt, ...)
{
	va_list ap;

	if (!atomic_load(&debug_on))
		return;
	va_start(ap, fmt);
	fputs("keyd-pkcs11: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void
glock(void)
{
	if (pthread_mutex_lock(&g.lock) != 0)
		abort(); /* only a corrupt mutex fails */
}

static void
gunlock(void)
{
	(void)pthread_mutex_unlock(&g.lock);
}

static void
sess_free(struct kp11_session *s)
{
	kp11mech_op_reset(&s->sign);
	kp11mech_op_reset(&s->verify);
	kp11mech_op_reset(&s->decrypt);
	free(s->found);
	free(s);
}

static void
atfork_prepare(void)
{
	glock();
	kp11pool_atfork_prepare(&pool);
}

static void
atfork_parent(void)
{
	kp11pool_atfork_parent(&pool);
	gunlock();
}

static void
atfork_child(void)
{
	size_t i;

	kp11pool_atfork_child(&pool);
	/* The threads that had sessions busy are not in this process: their
	 * operations are abandoned, the sessions usable again. */
	for (i = 0; i < g.nsess; i++) {
		if (!g.sess[i]->busy)
			continue;
		g.sess[i]->busy = 0;
		kp11mech_op_reset(&g.sess[i]->sign);
		kp11mech_op_reset(&g.sess[i]->verify);
		kp11mech_op_reset(&g.sess[i]->decrypt);
	}
	if (pthread_cond_init(&g.idle, NULL) != 0)
		abort();
	gunlock();
}

static void
once_init(void)
{
	if (kp11pool_init(&pool) != KEYD_OK)
		return;
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
		return;
	once_ok = 1;
}

/* What a libkeyd error means to a PKCS#11 application. */
static CK_RV
keyd_rv(int r)
{
	switch (r) {
	case KEYD_OK: return CKR_OK;
	case KEYD_ERR_NOMEM: return CKR_HOST_MEMORY;
	case KEYD_ERR_DENIED: return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case KEYD_ERR_UNKNOWN_KEY: return CKR_KEY_HANDLE_INVALID;
	case KEYD_ERR_BAD_ALGORITHM:
	case KEYD_ERR_UNSUPPORTED:
		return CKR_MECHANISM_INVALID;
	case KEYD_ERR_BAD_LENGTH: return CKR_DATA_LEN_RANGE;
	case KEYD_ERR_DECRYPT: return CKR_ENCRYPTED_DATA_INVALID;
	case KEYD_ERR_RATE_LIMITED:
	case KEYD_ERR_LIMIT:
		return CKR_FUNCTION_REJECTED;
	case KEYD_ERR_NOT_FOUND: return CKR_OBJECT_HANDLE_INVALID;
	case KEYD_ERR_INVALID_ARG: return CKR_ARGUMENTS_BAD;
	/* keyd unreachable, restarting, hung, or its token failing. */
	case KEYD_ERR_CONNECT:
	case KEYD_ERR_CLOSED:
	case KEYD_ERR_TIMEOUT:
	case KEYD_ERR_IO:
	case KEYD_ERR_BUSY:
	case KEYD_ERR_PROTOCOL:
	case KEYD_ERR_VERSION:
	case KEYD_ERR_PEER_UNTRUSTED:
	case KEYD_ERR_TOKEN:
	case KEYD_ERR_AUDIT:
		return CKR_DEVICE_ERROR;
	default:
		return CKR_GENERAL_ERROR;
	}
}

/* keyd's error for a decryption, as a code C_Decrypt may return
 * (PKCS#11 2.40 section 5.9): a key that went away, a refusal or an
 * algorithm keyd no longer offers is CKR_FUNCTION_FAILED. */
static CK_RV
decrypt_rv(int r)
{
	CK_RV rv = keyd_rv(r);

	switch (rv) {
	case CKR_OK:
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_ERROR:
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_GENERAL_ERROR:
		return rv;
	case CKR_DATA_LEN_RANGE:
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	default:
		return CKR_FUNCTION_FAILED;
	}
}

static void
table_unref_locked(struct kp11obj_table *t)
{
	if (t != NULL && --t->refs == 0)
		kp11obj_table_free(t);
}

static void
table_put(struct kp11obj_table *t)
{
	if (t == NULL)
		return;
	glock();
	table_unref_locked(t);
	gunlock();
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
mark_stale(void)
{
	glock();
	g.table_stale = 1;
	gunlock();
}

/*
 * The object table, with a reference for the caller (table_put). Asks
 * keyd for it if there is none, if it is marked stale, or (refresh, for
 * C_FindObjectsInit) if it is older than KP11_REFRESH_MS or keyd's
 * configuration has another generation than the one it lists (a reload
 * added, removed or replaced keys: one hello tells). If keyd cannot be
 * asked, an older table is still served: the objects and their handles
 * outlive a keyd restart.
 */
static CK_RV
table_get(int refresh, struct kp11obj_table **out)
{
	struct kp11obj_table *t, *nt = NULL;
	struct keyd_client *c = NULL;
	char err[KP11_MSG_MAX];
	unsigned gen, pgen;
	uint64_t have = 0, now_gen = 0;
	int hide, r, ask_gen = 0;

	*out = NULL;
	glock();
	if (!g.initialized) {
		gunlock();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	t = g.table;
	if (t != NULL && !g.table_stale &&
	    (!refresh || now_ms() - t->loaded_ms < KP11_REFRESH_MS)) {
		if (!refresh) {
			t->refs++;
			gunlock();
			*out = t;
			return CKR_OK;
		}
		ask_gen = 1;
		have = t->generation;
	}
	gen = g.gen;
	hide = g.conf.hide_ed25519;
	gunlock();

	err[0] = '\0';
	if ((r = kp11pool_get(&pool, &c, &pgen, err, sizeof(err))) ==
	    KEYD_OK) {
		if (ask_gen)
			r = keyd_config_generation_fetch(c, &now_gen);
		if (r == KEYD_OK && (!ask_gen || now_gen != have))
			r = kp11obj_fetch(c, hide, &nt, err, sizeof(err));
		kp11pool_put(&pool, c, pgen);
	}
	if (ask_gen && r == KEYD_OK && nt == NULL) {
		/* The same configuration: the table stands. */
		glock();
		if (!g.initialized || g.gen != gen) {
			gunlock();
			return CKR_CRYPTOKI_NOT_INITIALIZED;
		}
		if ((t = g.table) != NULL)
			t->refs++;
		gunlock();
		if (t == NULL)
			return CKR_GENERAL_ERROR;
		*out = t;
		return CKR_OK;
	}

	glock();
	if (!g.initialized || g.gen != gen) {
		gunlock();
		kp11obj_table_free(nt);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	if (r == KEYD_OK && (r = kp11obj_assign(&g.reg, nt)) != KEYD_OK)
		snprintf(err, sizeof(err), "too many key names over time");
	if (r != KEYD_OK) {
		kp11obj_table_free(nt);
		if ((t = g.table) != NULL)
			t->refs++;
		gunlock();
		kp11_debug("cannot list keyd's keys: %s%s", err, t != NULL ?
		    " (serving the keys listed before)" : "");
		if (t == NULL)
			return keyd_rv(r);
		*out = t;
		return CKR_OK;
	}
	nt->refs = 2; /* the module's and the caller's */
	table_unref_locked(g.table);
	g.table = nt;
	g.table_stale = 0;
	gunlock();
	*out = nt;
	return CKR_OK;
}

static struct kp11_session *
sess_find_locked(CK_SESSION_HANDLE h)
{
	size_t i;

	for (i = 0; i < g.nsess; i++)
		if (g.sess[i]->h == h)
			return g.sess[i];
	return NULL;
}

/* Marks session h busy for the caller, waiting while another call has
 * it. */
static CK_RV
sess_acquire(CK_SESSION_HANDLE h, struct kp11_session **out)
{
	struct kp11_session *s;
	CK_RV rv;

	*out = NULL;
	glock();
	for (;;) {
		if (!g.initialized) {
			rv = CKR_CRYPTOKI_NOT_INITIALIZED;
			break;
		}
		if ((s = sess_find_locked(h)) == NULL) {
			rv = CKR_SESSION_HANDLE_INVALID;
			break;
		}
		if (!s->busy) {
			s->busy = 1;
			*out = s;
			rv = CKR_OK;
			break;
		}
		(void)pthread_cond_wait(&g.idle, &g.lock);
	}
	gunlock();
	return rv;
}

static void
sess_release(struct kp11_session *s)
{
	glock();
	s->busy = 0;
	if (s->dead)
		sess_free(s);
	(void)pthread_cond_broadcast(&g.idle);
	gunlock();
}

/* Removes s from the table; frees it now, or when its call ends. */
static void
sess_close_locked(size_t i)
{
	struct kp11_session *s = g.sess[i];

	g.sess[i] = g.sess[--g.nsess];
	g.sess[g.nsess] = NULL;
	if (s->busy)
		s->dead = 1;
	else
		sess_free(s);
	/* PKCS#11 2.40 section 5.6: closing the last session logs out. */
	if (g.nsess == 0)
		g.logged_in = 0;
}

/* Checks that the module is initialized and h is a session. */
static CK_RV
sess_check(CK_SESSION_HANDLE h)
{
	CK_RV rv = CKR_OK;

	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if (sess_find_locked(h) == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	gunlock();
	return rv;
}

/* A session function keyd does not offer: CKR_FUNCTION_NOT_SUPPORTED, but
 * CKR_CRYPTOKI_NOT_INITIALIZED or CKR_SESSION_HANDLE_INVALID first, as
 * for any session call (PKCS#11 2.40 section 5.1). */
static CK_RV
not_offered(CK_SESSION_HANDLE h)
{
	CK_RV rv = sess_check(h);

	return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED;
}

static int
logged_in(void)
{
	int l;

	glock();
	l = g.logged_in;
	gunlock();
	return l;
}

static void
finalize_locked(void)
{
	while (g.nsess > 0)
		sess_close_locked(g.nsess - 1);
	free(g.sess);
	g.sess = NULL;
	table_unref_locked(g.table);
	g.table = NULL;
	g.logged_in = 0;
	g.initialized = 0;
	g.gen++;
	kp11pool_shutdown(&pool);
}

static void
pad(CK_UTF8CHAR *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	memset(dst, ' ', len);
	memcpy(dst, src, n < len ? n : len);
}

/* ---- general purpose ---- */

static CK_RV
kp11_Initialize(CK_VOID_PTR init_args)
{
	CK_C_INITIALIZE_ARGS *a = init_args;
	struct kp11conf cf;
	char err[KP11_MSG_MAX];
	int some, all, r;

	if (pthread_once(&once, once_init) != 0 || !once_ok)
		return CKR_GENERAL_ERROR;
	if (a != NULL) {
		if (a->pReserved != NULL)
			return CKR_ARGUMENTS_BAD;
		some = a->CreateMutex != NULL || a->DestroyMutex != NULL ||
		    a->LockMutex != NULL || a->UnlockMutex != NULL;
		all = a->CreateMutex != NULL && a->DestroyMutex != NULL &&
		    a->LockMutex != NULL && a->UnlockMutex != NULL;
		if (some && !all)
			return CKR_ARGUMENTS_BAD;
		/* The module locks with pthreads; it cannot use an
		 * application's own mutex functions instead. */
		if (all && !(a->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
	if ((r = kp11conf_load(&cf, err, sizeof(err))) != KEYD_OK) {
		fprintf(stderr, "keyd-pkcs11: %s\n", err);
		return CKR_GENERAL_ERROR;
	}
	glock();
	if (g.initialized && g.pid == getpid()) {
		gunlock();
		return CKR_CRYPTOKI_ALREADY_INITIALIZED;
	}
	/* A child of fork that calls C_Initialize starts afresh. */
	if (g.initialized)
		finalize_locked();
	if (kp11pool_setup(&pool, cf.socket[0] != '\0' ? cf.socket : NULL,
	    cf.timeout_ms, cf.connections) != KEYD_OK) {
		gunlock();
		return CKR_HOST_MEMORY;
	}
	g.conf = cf;
	atomic_store(&debug_on, cf.debug);
	g.pid = getpid();
	g.gen++;
	g.logged_in = 0;
	g.table_stale = 0;
	g.initialized = 1;
	gunlock();
	return CKR_OK;
}

static CK_RV
kp11_Finalize(CK_VOID_PTR reserved)
{
	if (reserved != NULL)
		return CKR_ARGUMENTS_BAD;
	glock();
	if (!g.initialized) {
		gunlock();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	finalize_locked();
	gunlock();
	return CKR_OK;
}

static CK_RV
kp11_GetInfo(CK_INFO_PTR info)
{
	glock();
	if (!g.initialized) {
		gunlock();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	gunlock();
	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KP11_MANUFACTURER);
	pad(info->libraryDescription, sizeof(info->libraryDescription),
	    KP11_LIBRARY_DESC);
	info->libraryVersion.major = 0;
	info->libraryVersion.minor = 1;
	return CKR_OK;
}

/* ---- slot and token ---- */

static CK_RV
check_slot(CK_SLOT_ID slot)
{
	CK_RV rv = CKR_OK;

	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if (slot != KP11_SLOT_ID)
		rv = CKR_SLOT_ID_INVALID;
	gunlock();
	return rv;
}

static CK_RV
kp11_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	(void)present; /* the token is always there; keyd may not be */
	glock();
	if (!g.initialized) {
		gunlock();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	gunlock();
	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	if (list == NULL) {
		*count = 1;
		return CKR_OK;
	}
	if (*count < 1) {
		*count = 1;
		return CKR_BUFFER_TOO_SMALL;
	}
	list[0] = KP11_SLOT_ID;
	*count = 1;
	return CKR_OK;
}

static CK_RV
kp11_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	CK_RV rv;

	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	memset(info, 0, sizeof(*info));
	pad(info->slotDescription, sizeof(info->slotDescription),
	    KP11_SLOT_DESC);
	pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KP11_MANUFACTURER);
	info->flags = CKF_TOKEN_PRESENT;
	info->hardwareVersion.minor = 1;
	info->firmwareVersion.minor = 1;
	return CKR_OK;
}

static CK_RV
kp11_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	char label[KP11CONF_LABEL_MAX + 1], serial[17];
	unsigned long h = 5381;
	const char *p;
	CK_RV rv;

	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	glock();
	memcpy(label, g.conf.label, sizeof(label));
	/* A serial number that tells tokens of different keyds apart. */
	for (p = g.conf.socket; *p != '\0'; p++)
		h = h * 33u + (unsigned char)*p;
	gunlock();
	snprintf(serial, sizeof(serial), "%016lx", h);
	memset(info, 0, sizeof(*info));
	pad(info->label, sizeof(info->label), label);
	pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KP11_MANUFACTURER);
	pad(info->model, sizeof(info->model), KP11_MODEL);
	pad(info->serialNumber, sizeof(info->serialNumber), serial);
	/* Login is required to see private keys, but no PIN is asked for:
	 * the protected authentication path is the kernel's check of this
	 * process's credentials by keyd. */
	info->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED |
	    CKF_LOGIN_REQUIRED | CKF_PROTECTED_AUTHENTICATION_PATH;
	info->ulMaxSessionCount = KP11_MAX_SESSIONS;
	info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
	info->ulMaxRwSessionCount = KP11_MAX_SESSIONS;
	info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
	info->ulMaxPinLen = KP11_PIN_MAX;
	info->ulMinPinLen = 0;
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->hardwareVersion.minor = 1;
	info->firmwareVersion.minor = 1;
	return CKR_OK;
}

static CK_RV
kp11_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
    CK_ULONG_PTR count)
{
	size_t i, n = kp11mech_count();
	CK_RV rv;

	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	if (list == NULL) {
		*count = (CK_ULONG)n;
		return CKR_OK;
	}
	if (*count < n) {
		*count = (CK_ULONG)n;
		return CKR_BUFFER_TOO_SMALL;
	}
	for (i = 0; i < n; i++)
		list[i] = kp11mech_at(i)->type;
	*count = (CK_ULONG)n;
	return CKR_OK;
}

static CK_RV
kp11_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
    CK_MECHANISM_INFO_PTR info)
{
	const struct kp11mech_info *mi;
	CK_RV rv;

	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((mi = kp11mech_find(type)) == NULL)
		return CKR_MECHANISM_INVALID;
	kp11mech_get_info(mi, info);
	return CKR_OK;
}

static CK_RV
kp11_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len,
    CK_UTF8CHAR_PTR label)
{
	CK_RV rv;

	(void)pin;
	(void)len;
	(void)label;
	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	CK_RV rv;

	(void)pin;
	(void)len;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old, CK_ULONG oldlen,
    CK_UTF8CHAR_PTR new, CK_ULONG newlen)
{
	CK_RV rv;

	(void)old;
	(void)oldlen;
	(void)new;
	(void)newlen;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

/* ---- sessions ---- */

static CK_RV
kp11_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out)
{
	struct kp11_session *s = NULL, **arr;
	CK_RV rv;

	(void)app;
	(void)notify;
	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return CKR_HOST_MEMORY;
	/* Read-write sessions open (many applications ask for one), but
	 * nothing on this token can be created or changed. */
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	glock();
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
		goto out;
	}
	if (g.nsess >= KP11_MAX_SESSIONS) {
		rv = CKR_SESSION_COUNT;
		goto out;
	}
	if (g.sess == NULL) {
		if ((arr = calloc(KP11_MAX_SESSIONS, sizeof(*arr))) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		g.sess = arr;
	}
	/* Handles are never reused within the process. */
	if (++g.next_session == CK_INVALID_HANDLE)
		++g.next_session;
	s->h = g.next_session;
	g.sess[g.nsess++] = s;
	*out = s->h;
	s = NULL;
	rv = CKR_OK;
out:
	gunlock();
	free(s);
	return rv;
}

static CK_RV
kp11_CloseSession(CK_SESSION_HANDLE h)
{
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;
	size_t i;

	glock();
	if (!g.initialized) {
		gunlock();
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	for (i = 0; i < g.nsess; i++) {
		if (g.sess[i]->h == h) {
			sess_close_locked(i);
			rv = CKR_OK;
			break;
		}
	}
	gunlock();
	return rv;
}

static CK_RV
kp11_CloseAllSessions(CK_SLOT_ID slot)
{
	CK_RV rv;

	if ((rv = check_slot(slot)) != CKR_OK)
		return rv;
	glock();
	while (g.nsess > 0)
		sess_close_locked(g.nsess - 1);
	gunlock();
	return CKR_OK;
}

static CK_RV
kp11_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
	struct kp11_session *s;
	CK_RV rv = CKR_OK;
	int rw;

	if (info == NULL)
		return CKR_ARGUMENTS_BAD;
	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if ((s = sess_find_locked(h)) == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else {
		memset(info, 0, sizeof(*info));
		rw = (s->flags & CKF_RW_SESSION) != 0;
		info->slotID = KP11_SLOT_ID;
		info->flags = s->flags;
		if (g.logged_in)
			info->state = rw ? CKS_RW_USER_FUNCTIONS :
			    CKS_RO_USER_FUNCTIONS;
		else
			info->state = rw ? CKS_RW_PUBLIC_SESSION :
			    CKS_RO_PUBLIC_SESSION;
	}
	gunlock();
	return rv;
}

static CK_RV
kp11_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state,
    CK_ULONG_PTR len)
{
	(void)state;
	(void)len;
	return not_offered(h);
}

static CK_RV
kp11_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
    CK_OBJECT_HANDLE ek, CK_OBJECT_HANDLE ak)
{
	(void)state;
	(void)len;
	(void)ek;
	(void)ak;
	return not_offered(h);
}

/*
 * Any PIN, or none, logs the user in; it is neither kept nor sent. keyd
 * decides what this process may do from the credentials the kernel gives
 * it for the socket (SO_PEERCRED): a PIN here would protect nothing that
 * the process could not do anyway. Logging in only makes the private key
 * objects visible, as applications expect.
 */
static CK_RV
kp11_Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG len)
{
	CK_RV rv = CKR_OK;

	(void)pin;
	(void)len;
	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if (sess_find_locked(h) == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (who == CKU_CONTEXT_SPECIFIC)
		rv = CKR_OPERATION_NOT_INITIALIZED; /* no such keys here */
	else if (who != CKU_USER)
		rv = CKR_USER_TYPE_INVALID; /* this token has no SO */
	else if (g.logged_in)
		rv = CKR_USER_ALREADY_LOGGED_IN;
	else
		g.logged_in = 1;
	gunlock();
	return rv;
}

static CK_RV
kp11_Logout(CK_SESSION_HANDLE h)
{
	CK_RV rv = CKR_OK;

	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if (sess_find_locked(h) == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!g.logged_in)
		rv = CKR_USER_NOT_LOGGED_IN;
	else
		g.logged_in = 0;
	gunlock();
	return rv;
}

/* ---- objects ---- */

/* Nothing on this token can be created, copied, changed or destroyed:
 * keys are made on keyd's token by its officers. */
static CK_RV
kp11_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	(void)tmpl;
	(void)n;
	(void)out;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	(void)o;
	(void)tmpl;
	(void)n;
	(void)out;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	CK_RV rv;

	(void)o;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

/* The object o names, if the session may see it: a private key only
 * while logged in. */
static const struct kp11obj_key *
lookup_visible(struct kp11obj_table *t, CK_OBJECT_HANDLE o,
    enum kp11obj_kind *kind)
{
	const struct kp11obj_key *k = kp11obj_lookup(t, o, kind);

	return k == NULL || (*kind == KP11OBJ_PRIVATE && !logged_in()) ?
	    NULL : k;
}

/* The size is not known, but only of an object that exists and that the
 * session may see. */
static CK_RV
kp11_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ULONG_PTR size)
{
	struct kp11obj_table *t = NULL;
	enum kp11obj_kind kind;
	CK_RV rv;

	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	if (size == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((rv = table_get(0, &t)) != CKR_OK)
		return rv;
	if (lookup_visible(t, o, &kind) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else {
		*size = CK_UNAVAILABLE_INFORMATION;
		rv = CKR_OK;
	}
	table_put(t);
	return rv;
}

static CK_RV
kp11_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct kp11obj_table *t = NULL;
	const struct kp11obj_key *k;
	enum kp11obj_kind kind;
	CK_RV rv;

	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	if (tmpl == NULL && n != 0)
		return CKR_ARGUMENTS_BAD;
	if ((rv = table_get(0, &t)) != CKR_OK)
		return rv;
	if ((k = lookup_visible(t, o, &kind)) == NULL)
		rv = CKR_OBJECT_HANDLE_INVALID;
	else
		rv = kp11obj_get_attrs(k, kind, tmpl, n);
	table_put(t);
	return rv;
}

static CK_RV
kp11_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	CK_RV rv;

	(void)o;
	(void)tmpl;
	(void)n;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	static const enum kp11obj_kind kinds[] = { KP11OBJ_PRIVATE,
	    KP11OBJ_PUBLIC, KP11OBJ_CERT };
	struct kp11obj_table *t = NULL;
	struct kp11_session *s = NULL;
	CK_OBJECT_HANDLE *found = NULL;
	const struct kp11obj_key *k;
	size_t i, j, nf = 0;
	int logged;
	CK_RV rv;

	if (tmpl == NULL && n != 0)
		return CKR_ARGUMENTS_BAD;
	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	if (s->finding) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	if ((rv = table_get(1, &t)) != CKR_OK)
		goto out;
	logged = logged_in();
	if (t->n > 0 && (found = calloc(t->n * 3, sizeof(*found))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < t->n; i++) {
		k = &t->keys[i];
		for (j = 0; j < 3; j++) {
			if ((kinds[j] == KP11OBJ_PRIVATE && !logged) ||
			    (kinds[j] == KP11OBJ_CERT && k->cert.p == NULL))
				continue;
			if (kp11obj_match(k, kinds[j], tmpl, n))
				found[nf++] = kp11obj_handle(k, kinds[j]);
		}
	}
	s->found = found;
	s->nfound = nf;
	s->pos = 0;
	s->finding = 1;
	found = NULL;
	rv = CKR_OK;
out:
	free(found);
	table_put(t);
	sess_release(s);
	return rv;
}

static CK_RV
kp11_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR count)
{
	struct kp11_session *s;
	CK_ULONG n = 0;
	CK_RV rv;

	if ((out == NULL && max != 0) || count == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	if (!s->finding) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else {
		while (n < max && s->pos < s->nfound)
			out[n++] = s->found[s->pos++];
		*count = n;
	}
	sess_release(s);
	return rv;
}

/* Ends a search; the caller has the session (busy, or under the lock). */
static void
find_end(struct kp11_session *s)
{
	free(s->found);
	s->found = NULL;
	s->nfound = s->pos = 0;
	s->finding = 0;
}

static CK_RV
kp11_FindObjectsFinal(CK_SESSION_HANDLE h)
{
	struct kp11_session *s;
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	if (!s->finding)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		find_end(s);
	sess_release(s);
	return rv;
}

/* ---- operations ---- */

static struct kp11mech_op *
op_of(struct kp11_session *s, CK_FLAGS what)
{
	return what == CKF_SIGN ? &s->sign : what == CKF_VERIFY ? &s->verify :
	    &s->decrypt;
}

/* C_SignInit, C_VerifyInit and C_DecryptInit. */
static CK_RV
op_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key,
    CK_FLAGS what)
{
	struct kp11obj_table *t = NULL;
	struct kp11_session *s = NULL;
	const struct kp11obj_key *k;
	struct kp11mech_op *op;
	enum kp11obj_kind kind;
	unsigned need;
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	op = op_of(s, what);
	if (m == NULL) {
		/* PKCS#11 3.0: a NULL mechanism ends the operation. */
		kp11mech_op_reset(op);
		rv = CKR_OK;
		goto out;
	}
	if (op->active) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	if ((rv = table_get(0, &t)) != CKR_OK)
		goto out;
	if ((k = kp11obj_lookup(t, key, &kind)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if (what == CKF_VERIFY) {
		if (kind != KP11OBJ_PUBLIC) {
			rv = kind == KP11OBJ_CERT ? CKR_KEY_HANDLE_INVALID :
			    CKR_KEY_TYPE_INCONSISTENT;
			goto out;
		}
	} else {
		if (kind != KP11OBJ_PRIVATE) {
			rv = kind == KP11OBJ_CERT ? CKR_KEY_HANDLE_INVALID :
			    CKR_KEY_TYPE_INCONSISTENT;
			goto out;
		}
		if (!logged_in()) {
			rv = CKR_USER_NOT_LOGGED_IN;
			goto out;
		}
		need = what == CKF_SIGN ? KEYD_OP_SIGN : KEYD_OP_DECRYPT;
		if ((k->ops & need) == 0) {
			rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
			goto out;
		}
	}
	rv = kp11mech_op_init(op, m, what, k->type, k->name, k->out_len,
	    k->spki.p, k->spki.len);
	if (rv == CKR_OK && k->spki.len > 0) {
		/* Pinned: a reload that points the name at another key makes
		 * this handle's signature fail, not sign with that key. */
		memcpy(op->key_sha256, k->fp, sizeof(op->key_sha256));
		op->has_key_sha256 = 1;
	}
	/* An OAEP hash the token lacks is refused here, not by C_Decrypt
	 * (which may not return CKR_MECHANISM_PARAM_INVALID): keyd found
	 * out at start-up which hashes the token takes with this key. */
	if (rv == CKR_OK && what == CKF_DECRYPT &&
	    !(k->decrypts & KP11OBJ_DECRYPTS(op->keyd_alg))) {
		kp11_debug("decrypting with '%s': keyd does not offer this "
		    "OAEP hash with it (keydctl list names those it does)",
		    k->name);
		kp11mech_op_reset(op);
		rv = CKR_MECHANISM_PARAM_INVALID;
	}
	if (rv == CKR_OK)
		op->obj = key;
out:
	table_put(t);
	sess_release(s);
	return rv;
}

/* One signature from keyd, into sig (*siglen bytes of room, exactly
 * op->out_len on success). */
static CK_RV
remote_sign(struct kp11mech_op *op, const uint8_t *in, size_t inlen,
    uint8_t *sig, size_t *siglen)
{
	struct keyd_client *c = NULL;
	char err[KP11_MSG_MAX];
	unsigned gen, flags = 0;
	int r;

	if (op->keyd_alg == KEYD_ECDSA || op->keyd_alg == KEYD_ECDSA_SHA256 ||
	    op->keyd_alg == KEYD_ECDSA_SHA384 ||
	    op->keyd_alg == KEYD_ECDSA_SHA512)
		flags = KEYD_SIGN_ECDSA_RAW; /* r||s, as PKCS#11 wants */
	if ((r = kp11pool_get(&pool, &c, &gen, err, sizeof(err))) ==
	    KEYD_OK) {
		r = keyd_sign_pinned(c, op->key, op->has_key_sha256 ?
		    op->key_sha256 : NULL, op->keyd_alg, in, inlen, sig,
		    siglen, flags);
		if (r != KEYD_OK)
			snprintf(err, sizeof(err), "%s", keyd_errmsg(c));
		kp11pool_put(&pool, c, gen);
	}
	if (r != KEYD_OK) {
		kp11_debug("signing with '%s': %s", op->key, err);
		if (r == KEYD_ERR_UNKNOWN_KEY || r == KEYD_ERR_DENIED)
			mark_stale();
		return keyd_rv(r);
	}
	if (*siglen != op->out_len) {
		kp11_debug("keyd's signature with '%s' has %zu bytes, not %zu",
		    op->key, *siglen, op->out_len);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

/* C_Sign (data, or "" for none) and C_SignFinal (final). */
static CK_RV
do_sign(CK_SESSION_HANDLE h, const uint8_t *data, CK_ULONG len, int final,
    CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	struct kp11_session *s;
	struct kp11mech_op *op;
	uint8_t in[KP11MECH_MAX_RAW_INPUT], out[KEYD_MAX_SIGNATURE];
	const uint8_t *msg = NULL;
	size_t inlen = 0, outlen = sizeof(out);
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	op = &s->sign;
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto release;
	}
	if (siglen == NULL || (!final && data == NULL && len != 0)) {
		rv = CKR_ARGUMENTS_BAD;
		goto end;
	}
	if (!final && op->parts) {
		rv = CKR_OPERATION_ACTIVE; /* C_Sign after C_SignUpdate */
		goto release;
	}
	/* The length is known without asking keyd; a length query or a
	 * short buffer leaves the operation active (PKCS#11 5.2). */
	if (sig == NULL) {
		*siglen = (CK_ULONG)op->out_len;
		rv = CKR_OK;
		goto release;
	}
	if (*siglen < op->out_len) {
		*siglen = (CK_ULONG)op->out_len;
		rv = CKR_BUFFER_TOO_SMALL;
		goto release;
	}
	if (!final && data == NULL)
		data = (const uint8_t *)"";
	if ((rv = kp11mech_op_input(op, final ? NULL : data, len, in, &inlen,
	    &msg)) != CKR_OK)
		goto end;
	if ((rv = remote_sign(op, msg != NULL ? msg : in, inlen, out,
	    &outlen)) != CKR_OK)
		goto end;
	memcpy(sig, out, outlen);
	*siglen = (CK_ULONG)outlen;
end:
	kp11mech_op_reset(op);
release:
	OPENSSL_cleanse(in, sizeof(in));
	sess_release(s);
	return rv;
}

/* C_SignUpdate and C_VerifyUpdate. */
static CK_RV
do_update(CK_SESSION_HANDLE h, CK_FLAGS what, const uint8_t *data,
    CK_ULONG len)
{
	struct kp11_session *s;
	struct kp11mech_op *op;
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	op = op_of(s, what);
	if (!op->active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else if (data == NULL && len != 0)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = kp11mech_op_update(op, data != NULL ? data :
		    (const uint8_t *)"", len);
	if (rv != CKR_OK && rv != CKR_OPERATION_NOT_INITIALIZED)
		kp11mech_op_reset(op);
	sess_release(s);
	return rv;
}

/* C_Verify (data) and C_VerifyFinal (final). */
static CK_RV
do_verify(CK_SESSION_HANDLE h, const uint8_t *data, CK_ULONG len, int final,
    const uint8_t *sig, CK_ULONG siglen)
{
	struct kp11_session *s;
	struct kp11mech_op *op;
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	op = &s->verify;
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto release;
	}
	if (sig == NULL || (!final && data == NULL && len != 0))
		rv = CKR_ARGUMENTS_BAD;
	else if (!final && op->parts)
		rv = CKR_OPERATION_ACTIVE;
	else
		rv = kp11mech_op_verify(op, final ? NULL : data != NULL ? data :
		    (const uint8_t *)"", len, sig, siglen);
	kp11mech_op_reset(op);
release:
	sess_release(s);
	return rv;
}

static CK_RV
kp11_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return op_init(h, m, key, CKF_SIGN);
}

static CK_RV
kp11_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	return do_sign(h, data, len, 0, sig, siglen);
}

static CK_RV
kp11_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
	return do_update(h, CKF_SIGN, data, len);
}

static CK_RV
kp11_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	return do_sign(h, NULL, 0, 1, sig, siglen);
}

static CK_RV
kp11_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return op_init(h, m, key, CKF_VERIFY);
}

static CK_RV
kp11_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG siglen)
{
	return do_verify(h, data, len, 0, sig, siglen);
}

static CK_RV
kp11_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
	return do_update(h, CKF_VERIFY, data, len);
}

static CK_RV
kp11_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	return do_verify(h, NULL, 0, 1, sig, siglen);
}

static CK_RV
kp11_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key)
{
	return op_init(h, m, key, CKF_DECRYPT);
}

static CK_RV
kp11_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	struct kp11_session *s;
	struct kp11mech_op *op;
	struct keyd_client *c = NULL;
	uint8_t plain[KEYD_MAX_CIPHERTEXT];
	size_t plen = sizeof(plain);
	char err[KP11_MSG_MAX];
	unsigned gen;
	CK_RV rv;
	int r;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	op = &s->decrypt;
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto release;
	}
	if (in == NULL || outlen == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto end;
	}
	if (out == NULL) {
		*outlen = (CK_ULONG)kp11mech_oaep_max(op, op->out_len);
		rv = CKR_OK;
		goto release;
	}
	if (inlen != op->out_len || inlen > sizeof(plain)) {
		rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
		goto end;
	}
	if ((r = kp11pool_get(&pool, &c, &gen, err, sizeof(err))) ==
	    KEYD_OK) {
		/* Pinned as signatures are: a handle found before a reload
		 * never decrypts with the key its name names now. */
		r = keyd_decrypt_pinned(c, op->key, op->has_key_sha256 ?
		    op->key_sha256 : NULL, op->keyd_alg, in, inlen, plain,
		    &plen);
		if (r != KEYD_OK)
			snprintf(err, sizeof(err), "%s", keyd_errmsg(c));
		kp11pool_put(&pool, c, gen);
	}
	if (r != KEYD_OK) {
		kp11_debug("decrypting with '%s': %s", op->key, err);
		if (r == KEYD_ERR_UNKNOWN_KEY || r == KEYD_ERR_DENIED)
			mark_stale();
		rv = decrypt_rv(r);
		goto end;
	}
	if (*outlen < plen) {
		/* The operation stays active; the next call decrypts
		 * again. */
		*outlen = (CK_ULONG)plen;
		rv = CKR_BUFFER_TOO_SMALL;
		goto release;
	}
	if (plen > 0)
		memcpy(out, plain, plen);
	*outlen = (CK_ULONG)plen;
	rv = CKR_OK;
end:
	kp11mech_op_reset(op);
release:
	OPENSSL_cleanse(plain, sizeof(plain));
	sess_release(s);
	return rv;
}

/* RSA-OAEP is single-part only (PKCS#11 2.40 current mechanisms,
 * table 34). A multi-part call ends the operation, as any call that
 * returns an error other than CKR_BUFFER_TOO_SMALL does (PKCS#11 2.40
 * section 5.9), so that the next C_DecryptInit is not refused with
 * CKR_OPERATION_ACTIVE. */
static CK_RV
decrypt_multipart(CK_SESSION_HANDLE h)
{
	struct kp11_session *s;
	CK_RV rv;

	if ((rv = sess_acquire(h, &s)) != CKR_OK)
		return rv;
	rv = s->decrypt.active ? CKR_FUNCTION_NOT_SUPPORTED :
	    CKR_OPERATION_NOT_INITIALIZED;
	kp11mech_op_reset(&s->decrypt);
	sess_release(s);
	return rv;
}

static CK_RV
kp11_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return decrypt_multipart(h);
}

static CK_RV
kp11_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)out;
	(void)outlen;
	return decrypt_multipart(h);
}

/* ---- what this token does not do ---- */

static CK_RV
kp11_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	(void)m;
	(void)k;
	return not_offered(h);
}

static CK_RV
kp11_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m)
{
	(void)m;
	return not_offered(h);
}

static CK_RV
kp11_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen)
{
	(void)in;
	(void)inlen;
	return not_offered(h);
}

static CK_RV
kp11_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k)
{
	(void)k;
	return not_offered(h);
}

static CK_RV
kp11_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE k)
{
	(void)m;
	(void)k;
	return not_offered(h);
}

static CK_RV
kp11_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE k)
{
	(void)m;
	(void)k;
	return not_offered(h);
}

static CK_RV
kp11_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	return not_offered(h);
}

static CK_RV
kp11_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	(void)m;
	(void)tmpl;
	(void)n;
	(void)out;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pubt, CK_ULONG npub, CK_ATTRIBUTE_PTR privt,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	CK_RV rv;

	(void)m;
	(void)pubt;
	(void)npub;
	(void)privt;
	(void)npriv;
	(void)pub;
	(void)priv;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk,
    CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	CK_RV rv;

	(void)m;
	(void)wk;
	(void)k;
	(void)out;
	(void)outlen;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk,
    CK_BYTE_PTR in, CK_ULONG inlen, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	(void)m;
	(void)uk;
	(void)in;
	(void)inlen;
	(void)tmpl;
	(void)n;
	(void)out;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE bk,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	(void)m;
	(void)bk;
	(void)tmpl;
	(void)n;
	(void)out;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_ACTION_PROHIBITED;
}

static CK_RV
kp11_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
	CK_RV rv;

	(void)seed;
	(void)len;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_RANDOM_NO_RNG;
}

static CK_RV
kp11_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	CK_RV rv;

	(void)out;
	(void)len;
	if ((rv = sess_check(h)) != CKR_OK)
		return rv;
	return CKR_RANDOM_NO_RNG;
}

static CK_RV
kp11_GetFunctionStatus(CK_SESSION_HANDLE h)
{
	(void)h;
	return CKR_FUNCTION_NOT_PARALLEL;
}

static CK_RV
kp11_CancelFunction(CK_SESSION_HANDLE h)
{
	(void)h;
	return CKR_FUNCTION_NOT_PARALLEL;
}

static CK_RV
kp11_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR rsv)
{
	int init;

	(void)flags;
	(void)slot;
	(void)rsv;
	glock();
	init = g.initialized;
	gunlock();
	return init ? CKR_FUNCTION_NOT_SUPPORTED :
	    CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* ---- PKCS#11 3.0's functions ---- */

/* PKCS#11 3.0 section 5.13: ends the session's operations that flags
 * name. A call that is using them at the moment cannot be stopped. */
static CK_RV
kp11_SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags)
{
	struct kp11_session *s;
	CK_RV rv = CKR_OK;

	glock();
	if (!g.initialized)
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	else if ((s = sess_find_locked(h)) == NULL)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (s->busy)
		rv = KP11_CKR_OPERATION_CANCEL_FAILED;
	else {
		if (flags & CKF_SIGN)
			kp11mech_op_reset(&s->sign);
		if (flags & CKF_VERIFY)
			kp11mech_op_reset(&s->verify);
		if (flags & CKF_DECRYPT)
			kp11mech_op_reset(&s->decrypt);
		if (flags & KP11_CKF_FIND_OBJECTS)
			find_end(s);
	}
	gunlock();
	return rv;
}

/* Log-in by user name and the message-based functions: not offered.
 * Each checks the module and the session first, as any session call. */
static CK_RV
kp11_LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len, CK_UTF8CHAR_PTR user, CK_ULONG user_len)
{
	(void)who;
	(void)pin;
	(void)pin_len;
	(void)user;
	(void)user_len;
	return not_offered(h);
}

#define KP11_MESSAGE_INIT(op)						\
	static CK_RV kp11_Message##op##Init(CK_SESSION_HANDLE h,	\
	    CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)			\
	{								\
		(void)m;						\
		(void)k;						\
		return not_offered(h);					\
	}
#define KP11_MESSAGE_FINAL(op)						\
	static CK_RV kp11_Message##op##Final(CK_SESSION_HANDLE h)	\
	{								\
		return not_offered(h);					\
	}
/* C_EncryptMessage, C_DecryptMessage: (parameter, associated data,
 * input, output, output length). */
#define KP11_MESSAGE_CRYPT(op)						\
	static CK_RV kp11_##op##Message(CK_SESSION_HANDLE h,		\
	    CK_VOID_PTR p, CK_ULONG plen, CK_BYTE_PTR ad, CK_ULONG adlen, \
	    CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out,		\
	    CK_ULONG_PTR outlen)					\
	{								\
		(void)p; (void)plen; (void)ad; (void)adlen;		\
		(void)in; (void)inlen; (void)out; (void)outlen;		\
		return not_offered(h);					\
	}								\
	static CK_RV kp11_##op##MessageBegin(CK_SESSION_HANDLE h,	\
	    CK_VOID_PTR p, CK_ULONG plen, CK_BYTE_PTR ad, CK_ULONG adlen) \
	{								\
		(void)p; (void)plen; (void)ad; (void)adlen;		\
		return not_offered(h);					\
	}								\
	static CK_RV kp11_##op##MessageNext(CK_SESSION_HANDLE h,	\
	    CK_VOID_PTR p, CK_ULONG plen, CK_BYTE_PTR in, CK_ULONG inlen, \
	    CK_BYTE_PTR out, CK_ULONG_PTR outlen, CK_FLAGS flags)	\
	{								\
		(void)p; (void)plen; (void)in; (void)inlen;		\
		(void)out; (void)outlen; (void)flags;			\
		return not_offered(h);					\
	}
KP11_MESSAGE_INIT(Encrypt)
KP11_MESSAGE_FINAL(Encrypt)
KP11_MESSAGE_CRYPT(Encrypt)
KP11_MESSAGE_INIT(Decrypt)
KP11_MESSAGE_FINAL(Decrypt)
KP11_MESSAGE_CRYPT(Decrypt)
KP11_MESSAGE_INIT(Sign)
KP11_MESSAGE_FINAL(Sign)
KP11_MESSAGE_INIT(Verify)
KP11_MESSAGE_FINAL(Verify)

static CK_RV
kp11_SignMessage(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen,
    CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	(void)p; (void)plen; (void)data; (void)len; (void)sig; (void)siglen;
	return not_offered(h);
}

static CK_RV
kp11_SignMessageBegin(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen)
{
	(void)p; (void)plen;
	return not_offered(h);
}

static CK_RV
kp11_SignMessageNext(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen,
    CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	(void)p; (void)plen; (void)data; (void)len; (void)sig; (void)siglen;
	return not_offered(h);
}

static CK_RV
kp11_VerifyMessage(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen,
    CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	(void)p; (void)plen; (void)data; (void)len; (void)sig; (void)siglen;
	return not_offered(h);
}

static CK_RV
kp11_VerifyMessageBegin(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen)
{
	(void)p; (void)plen;
	return not_offered(h);
}

static CK_RV
kp11_VerifyMessageNext(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG plen,
    CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	(void)p; (void)plen; (void)data; (void)len; (void)sig; (void)siglen;
	return not_offered(h);
}

/* C_GetInfo through the 3.0 function list says 3.0. */
static CK_RV
kp11_GetInfo_3_0(CK_INFO_PTR info)
{
	CK_RV rv = kp11_GetInfo(info);

	if (rv == CKR_OK) {
		info->cryptokiVersion.major = 3;
		info->cryptokiVersion.minor = 0;
	}
	return rv;
}

/* ---- the exported entry points ---- */

/* The functions of PKCS#11 2.40's CK_FUNCTION_LIST after C_Initialize,
 * C_Finalize and C_GetInfo, in its order, and those that 3.0's
 * CK_FUNCTION_LIST_3_0 adds after them. C_GetInfo differs between the
 * two lists. */
#define KP11_FUNCTIONS_2_40(X) \
	X(GetFunctionList) \
	X(GetSlotList) X(GetSlotInfo) X(GetTokenInfo) X(GetMechanismList) \
	X(GetMechanismInfo) X(InitToken) X(InitPIN) X(SetPIN) X(OpenSession) \
	X(CloseSession) X(CloseAllSessions) X(GetSessionInfo) \
	X(GetOperationState) X(SetOperationState) X(Login) X(Logout) \
	X(CreateObject) X(CopyObject) X(DestroyObject) X(GetObjectSize) \
	X(GetAttributeValue) X(SetAttributeValue) X(FindObjectsInit) \
	X(FindObjects) X(FindObjectsFinal) X(EncryptInit) X(Encrypt) \
	X(EncryptUpdate) X(EncryptFinal) X(DecryptInit) X(Decrypt) \
	X(DecryptUpdate) X(DecryptFinal) X(DigestInit) X(Digest) \
	X(DigestUpdate) X(DigestKey) X(DigestFinal) X(SignInit) X(Sign) \
	X(SignUpdate) X(SignFinal) X(SignRecoverInit) X(SignRecover) \
	X(VerifyInit) X(Verify) X(VerifyUpdate) X(VerifyFinal) \
	X(VerifyRecoverInit) X(VerifyRecover) X(DigestEncryptUpdate) \
	X(DecryptDigestUpdate) X(SignEncryptUpdate) X(DecryptVerifyUpdate) \
	X(GenerateKey) X(GenerateKeyPair) X(WrapKey) X(UnwrapKey) \
	X(DeriveKey) X(SeedRandom) X(GenerateRandom) X(GetFunctionStatus) \
	X(CancelFunction) X(WaitForSlotEvent)
#define KP11_FUNCTIONS_3_0(X) \
	X(GetInterfaceList) X(GetInterface) X(LoginUser) X(SessionCancel) \
	X(MessageEncryptInit) X(EncryptMessage) X(EncryptMessageBegin) \
	X(EncryptMessageNext) X(MessageEncryptFinal) X(MessageDecryptInit) \
	X(DecryptMessage) X(DecryptMessageBegin) X(DecryptMessageNext) \
	X(MessageDecryptFinal) X(MessageSignInit) X(SignMessage) \
	X(SignMessageBegin) X(SignMessageNext) X(MessageSignFinal) \
	X(MessageVerifyInit) X(VerifyMessage) X(VerifyMessageBegin) \
	X(VerifyMessageNext) X(MessageVerifyFinal)

static CK_RV kp11_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);
static CK_RV kp11_GetInterfaceList(KP11_INTERFACE *list, CK_ULONG_PTR count);
static CK_RV kp11_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    KP11_INTERFACE **out, CK_FLAGS flags);

#if CRYPTOKI_VERSION_MAJOR < 3
#define KP11_MEMBER_2_40(n) CK_C_##n C_##n;
#define KP11_MEMBER_3_0(n) __typeof__(&kp11_##n) C_##n;
typedef struct kp11_function_list_3_0 {
	CK_VERSION version;
	CK_C_Initialize C_Initialize;
	CK_C_Finalize C_Finalize;
	CK_C_GetInfo C_GetInfo;
	KP11_FUNCTIONS_2_40(KP11_MEMBER_2_40)
	KP11_FUNCTIONS_3_0(KP11_MEMBER_3_0)
} KP11_FUNCTION_LIST_3_0;
#endif

#define KP11_ENTRY(n) .C_##n = kp11_##n,

static CK_FUNCTION_LIST function_list = {
	.version = { 2, 40 },
	.C_Initialize = kp11_Initialize,
	.C_Finalize = kp11_Finalize,
	.C_GetInfo = kp11_GetInfo,
	KP11_FUNCTIONS_2_40(KP11_ENTRY)
};

static KP11_FUNCTION_LIST_3_0 function_list_3_0 = {
	.version = { 3, 0 },
	.C_Initialize = kp11_Initialize,
	.C_Finalize = kp11_Finalize,
	.C_GetInfo = kp11_GetInfo_3_0,
	KP11_FUNCTIONS_2_40(KP11_ENTRY)
	KP11_FUNCTIONS_3_0(KP11_ENTRY)
};

/* "PKCS 11" 3.0 first, the default; 2.40 for applications that ask for
 * it. Both fork safe (see the top of this file; e2e_p11_fork shows a
 * child signing with its parent's sessions). */
static KP11_INTERFACE interfaces[] = {
	{ (void *)(uintptr_t)"PKCS 11", &function_list_3_0,
	  CKF_INTERFACE_FORK_SAFE },
	{ (void *)(uintptr_t)"PKCS 11", &function_list,
	  CKF_INTERFACE_FORK_SAFE },
};
#define KP11_N_INTERFACES (sizeof(interfaces) / sizeof(interfaces[0]))

static CK_RV
kp11_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	*out = &function_list;
	return CKR_OK;
}

/* PKCS#11 3.0 section 5.4. */
static CK_RV
kp11_GetInterfaceList(KP11_INTERFACE *list, CK_ULONG_PTR count)
{
	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	if (list == NULL) {
		*count = KP11_N_INTERFACES;
		return CKR_OK;
	}
	if (*count < KP11_N_INTERFACES) {
		*count = KP11_N_INTERFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(list, interfaces, sizeof(interfaces));
	*count = KP11_N_INTERFACES;
	return CKR_OK;
}

/* The first interface that matches name (any, if NULL), version (any,
 * if NULL) and has every flag asked for. */
static CK_RV
kp11_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    KP11_INTERFACE **out, CK_FLAGS flags)
{
	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	for (size_t i = 0; i < KP11_N_INTERFACES; i++) {
		const CK_VERSION *v = interfaces[i].pFunctionList;

		if (name != NULL && strcmp((const char *)name,
		    (const char *)interfaces[i].pInterfaceName) != 0)
			continue;
		if (version != NULL && (version->major != v->major ||
		    version->minor != v->minor))
			continue;
		if ((flags & ~interfaces[i].flags) != 0)
			continue;
		*out = &interfaces[i];
		return CKR_OK;
	}
	return CKR_ARGUMENTS_BAD;
}

KP11_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	return kp11_GetFunctionList(out);
}

#if CRYPTOKI_VERSION_MAJOR < 3
KP11_EXPORT CK_RV C_GetInterfaceList(KP11_INTERFACE *list,
    CK_ULONG_PTR count);
KP11_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    KP11_INTERFACE **out, CK_FLAGS flags);
#endif

KP11_EXPORT CK_RV
C_GetInterfaceList(KP11_INTERFACE *list, CK_ULONG_PTR count)
{
	return kp11_GetInterfaceList(list, count);
}

KP11_EXPORT CK_RV
C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    KP11_INTERFACE **out, CK_FLAGS flags)
{
	return kp11_GetInterface(name, version, out, flags);
}
