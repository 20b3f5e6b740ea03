/*
 * p11shim.c: a fault-injecting PKCS#11 module for keyd's tests. It loads
 * the real module (env P11SHIM_MODULE, default SoftHSM2), hands out a copy
 * of its function list with some calls wrapped, and makes those calls fail
 * as a control file says (env P11SHIM_CONTROL). The file is read again on
 * every wrapped call, so a test steers a running keyd by rewriting it.
 *
 * Control file: one rule a line, '#' starts a comment. The first rule
 * that fires decides the call.
 *
 *   fail CODE COUNT [FUNC...]     fail the next COUNT calls
 *   fail-nth CODE N [FUNC...]     let N-1 calls through, fail the Nth
 *   fail-for CODE MS [FUNC...]    fail every call for MS milliseconds
 *                                 after the file was last written
 *   delay MS [FUNC...]            sleep MS milliseconds, then go on
 *   trace [FUNC...]               log each call and what the real module
 *                                 answered
 *
 * CODE is a CKR_ name (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
 * CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
 * CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED,
 * CKR_DEVICE_MEMORY, CKR_HOST_MEMORY, CKR_OPERATION_ACTIVE) or a number.
 * FUNC names a wrapped function (C_SignInit, C_Sign, C_DecryptInit,
 * C_Decrypt, C_GenerateRandom, C_Login, C_OpenSession, C_FindObjectsInit,
 * C_Encrypt, C_EncryptInit, C_WrapKey, C_UnwrapKey, C_Logout,
 * C_CloseSession, C_CloseAllSessions, C_Finalize); without any, a rule
 * applies to the four sign and decrypt calls (trace: to every wrapped
 * function). A rule may end with "noeffect" to fail a call without the
 * state change below.
 *
 * Counters belong to a version of the file (its inode, size, mtime and
 * bytes): rewriting the file, even with the same rule, starts afresh.
 *
 * Failures are made real where the code says the token lost something,
 * so that the caller's recovery is tested against a token in that state:
 * CKR_SESSION_HANDLE_INVALID and CKR_SESSION_CLOSED close the session,
 * CKR_USER_NOT_LOGGED_IN logs the token out, CKR_DEVICE_REMOVED and
 * CKR_TOKEN_NOT_PRESENT close every session of the slot. A failed
 * C_Sign, C_Decrypt or C_Encrypt first runs the real call, which ends the
 * operation that its Init started (as a real failure would).
 *
 * Every injection appends a line to the file named by env P11SHIM_LOG,
 * if set: "C_Sign CKR_SESSION_HANDLE_INVALID", or "C_Sign delay 50"; a
 * traced call "trace C_Logout CKR_OK".
 *
 * Test code only: it trusts its environment and never goes near a
 * production keyd.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
#define SHIM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define SHIM_MAX_FILE 8192
#define SHIM_MAX_RULES 32
#define SHIM_MAX_FUNCS 16
#define SHIM_LINE_MAX 512

enum shim_func {
	F_SIGN_INIT, F_SIGN, F_DECRYPT_INIT, F_DECRYPT, F_GENERATE_RANDOM,
	F_LOGIN, F_OPEN_SESSION, F_FIND_OBJECTS_INIT, F_ENCRYPT_INIT,
	F_ENCRYPT, F_WRAP_KEY, F_UNWRAP_KEY, F_LOGOUT, F_CLOSE_SESSION,
	F_CLOSE_ALL_SESSIONS, F_FINALIZE, F_COUNT
};

static const char *const func_names[F_COUNT] = {
	"C_SignInit", "C_Sign", "C_DecryptInit", "C_Decrypt",
	"C_GenerateRandom", "C_Login", "C_OpenSession", "C_FindObjectsInit",
	"C_EncryptInit", "C_Encrypt", "C_WrapKey", "C_UnwrapKey", "C_Logout",
	"C_CloseSession", "C_CloseAllSessions", "C_Finalize",
};

#define DEFAULT_FUNCS ((1u << F_SIGN_INIT) | (1u << F_SIGN) | \
	(1u << F_DECRYPT_INIT) | (1u << F_DECRYPT))

static const struct {
	const char *name;
	CK_RV rv;
} codes[] = {
	{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
	{ "CKR_SESSION_CLOSED", CKR_SESSION_CLOSED },
	{ "CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN },
	{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
	{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
	{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
	{ "CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY },
	{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
	{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
	{ "CKR_HOST_MEMORY", CKR_HOST_MEMORY },
	{ "CKR_OPERATION_ACTIVE", CKR_OPERATION_ACTIVE },
	{ "CKR_PIN_INCORRECT", CKR_PIN_INCORRECT },
	{ "CKR_PIN_LOCKED", CKR_PIN_LOCKED },
	{ "CKR_TOKEN_NOT_RECOGNIZED", CKR_TOKEN_NOT_RECOGNIZED },
};

enum rule_kind { R_FAIL, R_FAIL_NTH, R_FAIL_FOR, R_DELAY, R_TRACE };

struct rule {
	enum rule_kind kind;
	CK_RV rv;
	unsigned long n;        /* count, nth, or milliseconds */
	unsigned funcs;         /* bit per enum shim_func */
	int effect;             /* make the failure real */
	unsigned long seen;     /* matching calls so far (this version) */
};

/* The file's version: a change starts every counter afresh. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char text[SHIM_MAX_FILE + 1];
	size_t len;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST shim_list;
static CK_FUNCTION_LIST_PTR real;
static CK_RV load_rv = CKR_GENERAL_ERROR;
static struct file_id current;
static int have_current;
static struct rule rules[SHIM_MAX_RULES];
static size_t n_rules;

static void
shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
shim_log(const char *fmt, ...)
{
	const char *path = getenv("P11SHIM_LOG");
	char line[SHIM_LINE_MAX];
	va_list ap;
	int fd, n;

	if (path == NULL || *path == '\0')
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

static int
parse_code(const char *s, CK_RV *rv)
{
	char *end;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(codes[i].name, s) == 0) {
			*rv = codes[i].rv;
			return 0;
		}
	errno = 0;
	*rv = strtoul(s, &end, 0);
	return errno != 0 || *end != '\0' || end == s ? -1 : 0;
}

static const char *
code_name(CK_RV rv)
{
	static _Thread_local char buf[32];

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].rv == rv)
			return codes[i].name;
	snprintf(buf, sizeof(buf), "0x%lx", (unsigned long)rv);
	return buf;
}

static int
parse_ulong(const char *s, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno != 0 || *end != '\0' || end == s || *s == '-' ? -1 : 0;
}

/* Parses one rule; a bad line is reported in the log and ignored. */
static void
parse_rule(char *line)
{
	char *w[4 + SHIM_MAX_FUNCS], *save = NULL, *tok;
	size_t nw = 0, first_func;
	struct rule r;

	memset(&r, 0, sizeof(r));
	r.effect = 1;
	for (tok = strtok_r(line, " \t\r", &save); tok != NULL &&
	    nw < sizeof(w) / sizeof(w[0]); tok = strtok_r(NULL, " \t\r", &save))
		w[nw++] = tok;
	if (nw == 0 || w[0][0] == '#')
		return;
	if (strcmp(w[0], "delay") == 0) {
		r.kind = R_DELAY;
		if (nw < 2 || parse_ulong(w[1], &r.n) != 0)
			goto bad;
		first_func = 2;
	} else if (strcmp(w[0], "trace") == 0) {
		r.kind = R_TRACE;
		first_func = 1;
	} else {
		if (strcmp(w[0], "fail") == 0)
			r.kind = R_FAIL;
		else if (strcmp(w[0], "fail-nth") == 0)
			r.kind = R_FAIL_NTH;
		else if (strcmp(w[0], "fail-for") == 0)
			r.kind = R_FAIL_FOR;
		else
			goto bad;
		if (nw < 3 || parse_code(w[1], &r.rv) != 0 ||
		    parse_ulong(w[2], &r.n) != 0)
			goto bad;
		first_func = 3;
	}
	for (size_t i = first_func; i < nw; i++) {
		size_t f;

		if (w[i][0] == '#')
			break;
		if (strcmp(w[i], "noeffect") == 0) {
			r.effect = 0;
			continue;
		}
		for (f = 0; f < F_COUNT; f++)
			if (strcmp(func_names[f], w[i]) == 0)
				break;
		if (f == F_COUNT)
			goto bad;
		r.funcs |= 1u << f;
	}
	if (r.funcs == 0)
		r.funcs = r.kind == R_TRACE ? (1u << F_COUNT) - 1 :
		    DEFAULT_FUNCS;
	if (n_rules < SHIM_MAX_RULES)
		rules[n_rules++] = r;
	return;
bad:
	shim_log("p11shim: ignoring a bad rule starting '%s'", w[0]);
}

/* Reads the control file if it changed. Caller holds mu. A missing or
 * unreadable file means no rules. */
static void
reload(void)
{
	const char *path = getenv("P11SHIM_CONTROL");
	struct file_id id;
	struct stat st;
	ssize_t n;
	int fd;

	memset(&id, 0, sizeof(id));
	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		n_rules = 0;
		have_current = 0;
		return;
	}
	if (fstat(fd, &st) != 0) {
		close(fd);
		return;
	}
	id.dev = st.st_dev;
	id.ino = st.st_ino;
	id.size = st.st_size;
	id.mtime = st.st_mtim;
	while (id.len < SHIM_MAX_FILE) {
		n = read(fd, id.text + id.len, SHIM_MAX_FILE - id.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		id.len += (size_t)n;
	}
	close(fd);
	id.text[id.len] = '\0';
	if (have_current && id.dev == current.dev && id.ino == current.ino &&
	    id.size == current.size &&
	    id.mtime.tv_sec == current.mtime.tv_sec &&
	    id.mtime.tv_nsec == current.mtime.tv_nsec &&
	    id.len == current.len && memcmp(id.text, current.text, id.len) == 0)
		return;
	current = id;
	have_current = 1;
	n_rules = 0;
	{
		char copy[SHIM_MAX_FILE + 1], *save = NULL, *line;

		memcpy(copy, id.text, id.len + 1);
		for (line = strtok_r(copy, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			parse_rule(line);
	}
}

static long
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 +
	    (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* What to do with this call: CKR_OK to go on, or the code to fail with;
 * *effect says whether to make the failure real. */
static CK_RV
decide(enum shim_func f, int *effect)
{
	unsigned long delay_ms = 0;
	CK_RV rv = CKR_OK;

	*effect = 0;
	pthread_mutex_lock(&mu);
	reload();
	for (size_t i = 0; i < n_rules && rv == CKR_OK; i++) {
		struct rule *r = &rules[i];

		if (!(r->funcs & (1u << f)))
			continue;
		switch (r->kind) {
		case R_FAIL:
			if (r->seen < r->n) {
				r->seen++;
				rv = r->rv;
			}
			break;
		case R_FAIL_NTH:
			if (++r->seen == r->n)
				rv = r->rv;
			break;
		case R_FAIL_FOR:
			if (ms_since(&current.mtime) < (long)r->n)
				rv = r->rv;
			break;
		case R_DELAY:
			if (delay_ms == 0)
				delay_ms = r->n;
			break;
		case R_TRACE:
			break;
		}
		if (rv != CKR_OK)
			*effect = r->effect;
	}
	pthread_mutex_unlock(&mu);
	if (delay_ms > 0 && rv == CKR_OK) {
		struct timespec ts = { (time_t)(delay_ms / 1000),
			(long)(delay_ms % 1000) * 1000000L };

		shim_log("%s delay %lu", func_names[f], delay_ms);
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (rv != CKR_OK)
		shim_log("%s %s%s", func_names[f], code_name(rv),
		    *effect ? "" : " noeffect");
	return rv;
}

/* Logs a real call's result if a trace rule names the function. */
static CK_RV
trace(enum shim_func f, CK_RV rv)
{
	int on = 0;

	pthread_mutex_lock(&mu);
	reload();
	for (size_t i = 0; i < n_rules && !on; i++)
		on = rules[i].kind == R_TRACE && (rules[i].funcs & (1u << f));
	pthread_mutex_unlock(&mu);
	if (on)
		shim_log("trace %s %s", func_names[f], rv == CKR_OK ? "CKR_OK" :
		    code_name(rv));
	return rv;
}

/* Makes an injected loss real on the token. */
static void
apply_effect(CK_SESSION_HANDLE s, CK_RV rv)
{
	CK_SESSION_INFO info;

	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
		(void)real->C_CloseSession(s);
		break;
	case CKR_USER_NOT_LOGGED_IN:
		(void)real->C_Logout(s);
		break;
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
		if (real->C_GetSessionInfo(s, &info) == CKR_OK)
			(void)real->C_CloseAllSessions(info.slotID);
		break;
	default:
		break;
	}
}

#define INJECT(func, session) \
	do { \
		int effect_; \
		CK_RV rv_ = decide(func, &effect_); \
		if (rv_ != CKR_OK) { \
			if (effect_) \
				apply_effect(session, rv_); \
			return rv_; \
		} \
	} while (0)

/* For a single-part call after its Init: the real call runs first and
 * ends the operation, then the failure is reported instead. */
#define INJECT_FINAL(func, session, real_call) \
	do { \
		int effect_; \
		CK_RV rv_ = decide(func, &effect_); \
		if (rv_ != CKR_OK) { \
			(void)(real_call); \
			if (effect_) \
				apply_effect(session, rv_); \
			return rv_; \
		} \
		return (real_call); \
	} while (0)

static CK_RV
shim_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	INJECT(F_SIGN_INIT, s);
	return trace(F_SIGN_INIT, real->C_SignInit(s, m, k));
}

static CK_RV
shim_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig,
    CK_ULONG_PTR sl)
{
	/* A length query does not end the operation: pass it through. */
	if (sig == NULL)
		return real->C_Sign(s, d, dl, sig, sl);
	INJECT_FINAL(F_SIGN, s, trace(F_SIGN, real->C_Sign(s, d, dl, sig,
	    sl)));
}

static CK_RV
shim_DecryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	INJECT(F_DECRYPT_INIT, s);
	return trace(F_DECRYPT_INIT, real->C_DecryptInit(s, m, k));
}

static CK_RV
shim_Decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR e, CK_ULONG el, CK_BYTE_PTR d,
    CK_ULONG_PTR dl)
{
	if (d == NULL)
		return real->C_Decrypt(s, e, el, d, dl);
	INJECT_FINAL(F_DECRYPT, s, trace(F_DECRYPT, real->C_Decrypt(s, e, el,
	    d, dl)));
}

static CK_RV
shim_EncryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	INJECT(F_ENCRYPT_INIT, s);
	return trace(F_ENCRYPT_INIT, real->C_EncryptInit(s, m, k));
}

static CK_RV
shim_Encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR e,
    CK_ULONG_PTR el)
{
	if (e == NULL)
		return real->C_Encrypt(s, d, dl, e, el);
	INJECT_FINAL(F_ENCRYPT, s, trace(F_ENCRYPT, real->C_Encrypt(s, d, dl,
	    e, el)));
}

static CK_RV
shim_GenerateRandom(CK_SESSION_HANDLE s, CK_BYTE_PTR p, CK_ULONG n)
{
	INJECT(F_GENERATE_RANDOM, s);
	return trace(F_GENERATE_RANDOM, real->C_GenerateRandom(s, p, n));
}

static CK_RV
shim_Login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin,
    CK_ULONG n)
{
	INJECT(F_LOGIN, s);
	return trace(F_LOGIN, real->C_Login(s, u, pin, n));
}

static CK_RV
shim_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s)
{
	int effect;
	CK_RV rv = decide(F_OPEN_SESSION, &effect);

	/* No session yet: nothing to make real. */
	if (rv != CKR_OK)
		return rv;
	return trace(F_OPEN_SESSION, real->C_OpenSession(slot, flags, app,
	    notify, s));
}

/* Calls that are only traced, never failed: they end things, and a
 * test wants to see that they happen. */
static CK_RV
shim_Logout(CK_SESSION_HANDLE s)
{
	return trace(F_LOGOUT, real->C_Logout(s));
}

static CK_RV
shim_CloseSession(CK_SESSION_HANDLE s)
{
	return trace(F_CLOSE_SESSION, real->C_CloseSession(s));
}

static CK_RV
shim_CloseAllSessions(CK_SLOT_ID slot)
{
	return trace(F_CLOSE_ALL_SESSIONS, real->C_CloseAllSessions(slot));
}

static CK_RV
shim_Finalize(CK_VOID_PTR reserved)
{
	return trace(F_FINALIZE, real->C_Finalize(reserved));
}

static CK_RV
shim_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	INJECT(F_FIND_OBJECTS_INIT, s);
	return trace(F_FIND_OBJECTS_INIT, real->C_FindObjectsInit(s, t, n));
}

static CK_RV
shim_WrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk,
    CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	INJECT(F_WRAP_KEY, s);
	return trace(F_WRAP_KEY, real->C_WrapKey(s, m, wk, k, out, outlen));
}

static CK_RV
shim_UnwrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk,
    CK_BYTE_PTR w, CK_ULONG wl, CK_ATTRIBUTE_PTR t, CK_ULONG tn,
    CK_OBJECT_HANDLE_PTR k)
{
	INJECT(F_UNWRAP_KEY, s);
	return trace(F_UNWRAP_KEY, real->C_UnwrapKey(s, m, uk, w, wl, t, tn,
	    k));
}

static CK_RV shim_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static void
load_real(void)
{
	const char *path = getenv("P11SHIM_MODULE");
	CK_C_GetFunctionList get;
	void *dl;

	if (path == NULL || *path == '\0')
		path = SHIM_DEFAULT_MODULE;
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "p11shim: cannot load %s: %s\n", path,
		    dlerror());
		return;
	}
	get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if (get == NULL || (load_rv = get(&real)) != CKR_OK || real == NULL) {
		fprintf(stderr, "p11shim: %s has no usable C_GetFunctionList\n",
		    path);
		load_rv = CKR_GENERAL_ERROR;
		return;
	}
	/* Everything not wrapped goes straight to the real module. */
	shim_list = *real;
	shim_list.C_GetFunctionList = shim_GetFunctionList;
	shim_list.C_SignInit = shim_SignInit;
	shim_list.C_Sign = shim_Sign;
	shim_list.C_DecryptInit = shim_DecryptInit;
	shim_list.C_Decrypt = shim_Decrypt;
	shim_list.C_EncryptInit = shim_EncryptInit;
	shim_list.C_Encrypt = shim_Encrypt;
	shim_list.C_GenerateRandom = shim_GenerateRandom;
	shim_list.C_Login = shim_Login;
	shim_list.C_OpenSession = shim_OpenSession;
	shim_list.C_FindObjectsInit = shim_FindObjectsInit;
	shim_list.C_WrapKey = shim_WrapKey;
	shim_list.C_UnwrapKey = shim_UnwrapKey;
	shim_list.C_Logout = shim_Logout;
	shim_list.C_CloseSession = shim_CloseSession;
	shim_list.C_CloseAllSessions = shim_CloseAllSessions;
	shim_list.C_Finalize = shim_Finalize;
	load_rv = CKR_OK;
}

static CK_RV
shim_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_once(&once, load_real);
	if (load_rv != CKR_OK)
		return load_rv;
	*list = &shim_list;
	return CKR_OK;
}

SHIM_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return shim_GetFunctionList(list);
}
