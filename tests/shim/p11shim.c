/*
 * p11shim.c: a fault-injecting PKCS#11 module for keyd's tests. It loads
 * the real module (env P11SHIM_MODULE, default SoftHSM2), hands out a copy
 * of its function list with some calls wrapped, and makes those calls fail
 * or wait as a control file says (env P11SHIM_CONTROL). The file is read
 * again on every wrapped call, so a test steers a running keyd by
 * rewriting it.
 *
 * Control file: one rule a line, '#' starts a comment. The first rule
 * that fires decides the call.
 *
 *   fail CODE COUNT [FUNC...] [token=LABEL]   fail the next COUNT calls
 *   fail-nth CODE N [FUNC...] [token=LABEL]   let N-1 calls through, fail
 *                                             the Nth
 *   fail-for CODE MS [FUNC...] [token=LABEL]  fail every call for MS
 *                                             milliseconds after the file
 *                                             was last written
 *   delay MS [FUNC...] [token=LABEL]          sleep MS milliseconds, then
 *                                             go on
 *   hang [FUNC...] [token=LABEL]              block the call while the
 *                                             file holds a hang rule that
 *                                             matches it, then go on
 *   trace [FUNC...] [token=LABEL]             log each call and what the
 *                                             real module answered
 *   crash [FUNC...] [token=LABEL]             kill the process with
 *                                             SIGSEGV inside the call, as
 *                                             a module's bug would (the
 *                                             log says "C_Sign crash")
 *
 * CODE is a CKR_ name (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
 * CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
 * CKR_DEVICE_ERROR, CKR_DEVICE_MEMORY, CKR_GENERAL_ERROR,
 * CKR_FUNCTION_FAILED, CKR_HOST_MEMORY, CKR_OPERATION_ACTIVE,
 * CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_TOKEN_NOT_RECOGNIZED) or a
 * number. FUNC names a wrapped function: C_SignInit, C_Sign,
 * C_DecryptInit, C_Decrypt, C_GenerateRandom, C_Login, C_OpenSession,
 * C_FindObjectsInit, C_Encrypt, C_EncryptInit, C_WrapKey, C_UnwrapKey and
 * C_GetTokenInfo can be failed, delayed and hung; C_Logout,
 * C_CloseSession, C_CloseAllSessions and C_Finalize are only traced.
 * Without any FUNC, a rule applies to the four sign and decrypt calls
 * (trace: to every wrapped function). C_Sign, C_Decrypt and C_Encrypt
 * asking only for the output length (a NULL buffer) pass straight through.
 * After the rule's numbers, in any order with the FUNCs:
 *
 *   noeffect      fail a call without the state change below
 *   token=LABEL   apply only to calls that concern the token labelled
 *                 LABEL (CK_TOKEN_INFO.label without its padding; exact,
 *                 case-sensitive, 1 to 32 bytes, no blanks), at most one
 *
 * A call concerns a token through its session (the slot that
 * C_OpenSession, through the shim, opened it on) or through the slot it
 * names (C_OpenSession, C_CloseAllSessions, C_GetTokenInfo). The shim
 * learns a slot's label from the real module's C_GetTokenInfo, once per
 * slot (SoftHSM2 keeps slot IDs for the life of the process); an
 * uninitialised token has no label. A token= rule never fires for a call
 * whose token is not known (C_Finalize, a session the shim did not see
 * opened, or one beyond the 1024 open sessions it keeps track of) or has
 * another label, and such calls do not count towards it.
 * So with two tokens A and B behind the shim,
 * "fail CKR_TOKEN_NOT_PRESENT 100 C_GetTokenInfo token=A" hides A from
 * a caller that looks its tokens up with C_GetSlotList (not wrapped) and
 * C_GetTokenInfo, and "fail CKR_DEVICE_ERROR 5 token=A" fails signing on A
 * only.
 *
 * A hang holds the call before the real module sees it, checking the
 * file again every 20 ms, for as long as the file (as it is then) holds a
 * hang rule that matches the call: removing the rule, or the file,
 * releases every call it holds. Rewrite the file by rename (as
 * tests/integration/lib.sh's shim_ctl does): a rewrite in place can show
 * an empty file in between and let a hung call go. A call is held 120 s
 * at most, so that a forgotten hang cannot block a test for ever (each
 * call: under a forgotten "hang", a signature waits in C_SignInit, then
 * in C_Sign). The other rules decide a call once it is let go, as the
 * file then says: hang counts no calls, and a call that hung meets fail
 * rules like any other.
 *
 * Counters belong to a version of the file (its inode, size, mtime and
 * bytes): rewriting the file, even with the same rule, starts afresh.
 *
 * Failures are made real where the code says the token lost something,
 * so that the caller's recovery is tested against a token in that state:
 * CKR_SESSION_HANDLE_INVALID and CKR_SESSION_CLOSED close the session,
 * CKR_USER_NOT_LOGGED_IN logs the token out, CKR_DEVICE_REMOVED and
 * CKR_TOKEN_NOT_PRESENT close every session of the slot (the call's
 * session's slot, or the slot that C_OpenSession or C_GetTokenInfo
 * names; so a token made invisible also loses its sessions unless the
 * rule says noeffect). A call without a session has no session to close
 * or to log out with: only the last two do something there. A failed
 * C_Sign, C_Decrypt or C_Encrypt first runs the real call, which ends the
 * operation that its Init started (as a real failure would).
 *
 * Every injection appends a line to the file named by env P11SHIM_LOG,
 * if set: "C_Sign CKR_SESSION_HANDLE_INVALID", "C_Sign delay 50",
 * "C_Sign hang" when a call starts to hang and "C_Sign hang released"
 * when it goes on ("C_Sign hang timed out" after 120 s); a traced call
 * "trace C_Logout CKR_OK".
 *
 * Env P11SHIM_THREAD=1 makes C_Initialize start a thread, as some modules
 * do (see shim_Initialize); env P11SHIM_HIDE_MECHS hides mechanisms from
 * C_GetMechanismList (see mech_hidden).
 *
 * Test code only: it trusts its environment and never goes near a
 * production keyd.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
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
#define SHIM_MAX_WORDS 48       /* words in one rule, comment excluded */
#define SHIM_LINE_MAX 512
#define SHIM_LABEL_MAX 32       /* sizeof(CK_TOKEN_INFO.label) */
#define SHIM_MAX_SESSIONS 1024  /* sessions open at once that token= sees */
#define SHIM_MAX_SLOTS 64       /* slots whose label is remembered */
#define SHIM_HANG_STEP_MS 20
#define SHIM_HANG_CAP_MS 120000L

enum shim_func {
	F_SIGN_INIT, F_SIGN, F_DECRYPT_INIT, F_DECRYPT, F_GENERATE_RANDOM,
	F_LOGIN, F_OPEN_SESSION, F_FIND_OBJECTS_INIT, F_ENCRYPT_INIT,
	F_ENCRYPT, F_WRAP_KEY, F_UNWRAP_KEY, F_GET_TOKEN_INFO, F_LOGOUT,
	F_CLOSE_SESSION, F_CLOSE_ALL_SESSIONS, F_FINALIZE, F_COUNT
};

static const char *const func_names[F_COUNT] = {
	"C_SignInit", "C_Sign", "C_DecryptInit", "C_Decrypt",
	"C_GenerateRandom", "C_Login", "C_OpenSession", "C_FindObjectsInit",
	"C_EncryptInit", "C_Encrypt", "C_WrapKey", "C_UnwrapKey",
	"C_GetTokenInfo", "C_Logout", "C_CloseSession", "C_CloseAllSessions",
	"C_Finalize",
};

#define DEFAULT_FUNCS ((1u << F_SIGN_INIT) | (1u << F_SIGN) | \
	(1u << F_DECRYPT_INIT) | (1u << F_DECRYPT))
#define ALL_FUNCS ((1u << F_COUNT) - 1)

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

enum rule_kind { R_FAIL, R_FAIL_NTH, R_FAIL_FOR, R_DELAY, R_HANG, R_TRACE,
	R_CRASH };

struct rule {
	enum rule_kind kind;
	CK_RV rv;
	unsigned long n;        /* count, nth, or milliseconds */
	unsigned funcs;         /* bit per enum shim_func */
	int effect;             /* make the failure real */
	unsigned long seen;     /* matching calls so far (this version) */
	char token[SHIM_LABEL_MAX + 1]; /* "": any call; else its label */
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

/* One wrapped call and what it concerns, for the token= qualifier. The
 * slot of a session is looked up when the call starts, so that a call
 * that closes its session still knows its token afterwards. */
struct call {
	enum shim_func f;
	int has_session;
	CK_SESSION_HANDLE session;
	int has_slot;
	CK_SLOT_ID slot;
	int label_state;        /* 0: not looked up, 1: known, -1: unknown */
	char label[SHIM_LABEL_MAX + 1];
};

/* Lock order: mu, then tab_mu; tab_mu is never held across a call into
 * the real module, mu only across a C_GetTokenInfo that learns a label. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST shim_list;
static CK_FUNCTION_LIST_PTR real;
static CK_RV load_rv = CKR_GENERAL_ERROR;
static struct file_id current;
static int have_current;
static struct rule rules[SHIM_MAX_RULES];
static size_t n_rules;

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	CK_SESSION_HANDLE session;
	CK_SLOT_ID slot;
} sess_tab[SHIM_MAX_SESSIONS];
static size_t n_sess;
static struct {
	CK_SLOT_ID slot;
	char label[SHIM_LABEL_MAX + 1];
} slot_tab[SHIM_MAX_SLOTS];
static size_t n_slot;

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

static void
sleep_ms(unsigned long ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
		(long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Session -> slot, as C_OpenSession answered. A full table only makes
 * token= rules blind to the sessions that did not fit. */
static void
session_add(CK_SESSION_HANDLE s, CK_SLOT_ID slot)
{
	size_t i;
	int full = 0;

	pthread_mutex_lock(&tab_mu);
	for (i = 0; i < n_sess && sess_tab[i].session != s; i++)
		;
	if (i == n_sess && n_sess < SHIM_MAX_SESSIONS)
		n_sess++;
	if (i < n_sess) {
		sess_tab[i].session = s;
		sess_tab[i].slot = slot;
	} else
		full = 1;
	pthread_mutex_unlock(&tab_mu);
	if (full)
		shim_log("p11shim: more than %d sessions open; token= rules "
		    "will not see session %lu", SHIM_MAX_SESSIONS,
		    (unsigned long)s);
}

static int
session_slot(CK_SESSION_HANDLE s, CK_SLOT_ID *slot)
{
	int found = 0;

	pthread_mutex_lock(&tab_mu);
	for (size_t i = 0; i < n_sess && !found; i++)
		if (sess_tab[i].session == s) {
			*slot = sess_tab[i].slot;
			found = 1;
		}
	pthread_mutex_unlock(&tab_mu);
	return found ? 0 : -1;
}

/* Forgets a session before the real module closes it: once it is closed,
 * another thread's C_OpenSession may get the same handle back. */
static void
session_drop(CK_SESSION_HANDLE s)
{
	pthread_mutex_lock(&tab_mu);
	for (size_t i = 0; i < n_sess; i++)
		if (sess_tab[i].session == s) {
			sess_tab[i] = sess_tab[--n_sess];
			break;
		}
	pthread_mutex_unlock(&tab_mu);
}

static void
session_drop_slot(CK_SLOT_ID slot)
{
	pthread_mutex_lock(&tab_mu);
	for (size_t i = 0; i < n_sess;)
		if (sess_tab[i].slot == slot)
			sess_tab[i] = sess_tab[--n_sess];
		else
			i++;
	pthread_mutex_unlock(&tab_mu);
}

/* The label of an initialised token, without its padding; an
 * uninitialised token has none yet. */
static int
label_of(const CK_TOKEN_INFO *info, char label[SHIM_LABEL_MAX + 1])
{
	size_t len = sizeof(info->label);

	if (!(info->flags & CKF_TOKEN_INITIALIZED))
		return -1;
	/* Blank-padded by the spec; some modules pad with NULs. */
	while (len > 0 && (info->label[len - 1] == ' ' ||
	    info->label[len - 1] == '\0'))
		len--;
	memcpy(label, info->label, len);
	label[len] = '\0';
	return 0;
}

static void
slot_remember(CK_SLOT_ID slot, const char label[SHIM_LABEL_MAX + 1])
{
	size_t i;

	pthread_mutex_lock(&tab_mu);
	for (i = 0; i < n_slot && slot_tab[i].slot != slot; i++)
		;
	if (i == n_slot && n_slot < SHIM_MAX_SLOTS)
		n_slot++;
	if (i < n_slot) {
		slot_tab[i].slot = slot;
		memcpy(slot_tab[i].label, label, sizeof(slot_tab[i].label));
	}
	pthread_mutex_unlock(&tab_mu);
}

/* The label of the token in a slot, learnt once from the real module. */
static int
slot_label(CK_SLOT_ID slot, char label[SHIM_LABEL_MAX + 1])
{
	CK_TOKEN_INFO info;
	int found = 0;

	pthread_mutex_lock(&tab_mu);
	for (size_t i = 0; i < n_slot && !found; i++)
		if (slot_tab[i].slot == slot) {
			memcpy(label, slot_tab[i].label,
			    sizeof(slot_tab[i].label));
			found = 1;
		}
	pthread_mutex_unlock(&tab_mu);
	if (found)
		return 0;
	if (real->C_GetTokenInfo(slot, &info) != CKR_OK ||
	    label_of(&info, label) != 0)
		return -1;
	slot_remember(slot, label);
	return 0;
}

/* After C_Finalize no session is left, and slots may be numbered anew. */
static void
tables_clear(void)
{
	pthread_mutex_lock(&tab_mu);
	n_sess = 0;
	n_slot = 0;
	pthread_mutex_unlock(&tab_mu);
}

static void
call_session(struct call *c, enum shim_func f, CK_SESSION_HANDLE s)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	c->has_session = 1;
	c->session = s;
	c->has_slot = session_slot(s, &c->slot) == 0;
}

static void
call_slot(struct call *c, enum shim_func f, CK_SLOT_ID slot)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	c->has_slot = 1;
	c->slot = slot;
}

static void
call_none(struct call *c, enum shim_func f)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
}

/* Whether a rule applies to a call. The label is looked up only when a
 * token= rule names the function, so that without one the real module
 * sees no call that the caller did not make. */
static int
rule_matches(const struct rule *r, struct call *c)
{
	if (!(r->funcs & (1u << c->f)))
		return 0;
	if (r->token[0] == '\0')
		return 1;
	if (c->label_state == 0)
		c->label_state = c->has_slot &&
		    slot_label(c->slot, c->label) == 0 ? 1 : -1;
	return c->label_state == 1 && strcmp(c->label, r->token) == 0;
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
	char *w[SHIM_MAX_WORDS], *save = NULL, *tok;
	size_t nw = 0, first_func;
	struct rule r;

	memset(&r, 0, sizeof(r));
	r.effect = 1;
	for (tok = strtok_r(line, " \t\r", &save); tok != NULL && *tok != '#';
	    tok = strtok_r(NULL, " \t\r", &save)) {
		/* Too many words: refuse rather than drop the rest. */
		if (nw == SHIM_MAX_WORDS)
			goto bad;
		w[nw++] = tok;
	}
	if (nw == 0)
		return;
	if (strcmp(w[0], "delay") == 0) {
		r.kind = R_DELAY;
		if (nw < 2 || parse_ulong(w[1], &r.n) != 0)
			goto bad;
		first_func = 2;
	} else if (strcmp(w[0], "hang") == 0) {
		r.kind = R_HANG;
		first_func = 1;
	} else if (strcmp(w[0], "trace") == 0) {
		r.kind = R_TRACE;
		first_func = 1;
	} else if (strcmp(w[0], "crash") == 0) {
		r.kind = R_CRASH;
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

		if (strcmp(w[i], "noeffect") == 0) {
			r.effect = 0;
			continue;
		}
		if (strncmp(w[i], "token=", 6) == 0) {
			size_t len = strlen(w[i] + 6);

			if (r.token[0] != '\0' || len == 0 ||
			    len > SHIM_LABEL_MAX)
				goto bad;
			memcpy(r.token, w[i] + 6, len + 1);
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
		r.funcs = r.kind == R_TRACE ? ALL_FUNCS : DEFAULT_FUNCS;
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
ms_since(const struct timespec *t, clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 +
	    (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Whether the file holds a hang rule for this call. Caller holds mu. */
static int
hang_matches(struct call *c)
{
	for (size_t i = 0; i < n_rules; i++)
		if (rules[i].kind == R_HANG && rule_matches(&rules[i], c))
			return 1;
	return 0;
}

/* What to do with this call: CKR_OK to go on, or the code to fail with;
 * *effect says whether to make the failure real. A hang rule is waited
 * out first, the file read again at every step; then the other rules
 * decide as the file says at that time. */
static CK_RV
decide(struct call *c, int *effect)
{
	unsigned long delay_ms = 0;
	struct timespec hang_start;
	int hung = 0, timed_out = 0;
	CK_RV rv = CKR_OK;

	*effect = 0;
	pthread_mutex_lock(&mu);
	reload();
	while (!timed_out && hang_matches(c)) {
		pthread_mutex_unlock(&mu);
		if (!hung) {
			clock_gettime(CLOCK_MONOTONIC, &hang_start);
			hung = 1;
			shim_log("%s hang", func_names[c->f]);
		}
		if (ms_since(&hang_start, CLOCK_MONOTONIC) >= SHIM_HANG_CAP_MS)
			timed_out = 1;
		else
			sleep_ms(SHIM_HANG_STEP_MS);
		pthread_mutex_lock(&mu);
		reload();
	}
	for (size_t i = 0; i < n_rules && rv == CKR_OK; i++) {
		struct rule *r = &rules[i];

		if (r->kind == R_HANG || r->kind == R_TRACE ||
		    !rule_matches(r, c))
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
			if (ms_since(&current.mtime, CLOCK_REALTIME) <
			    (long)r->n)
				rv = r->rv;
			break;
		case R_DELAY:
			if (delay_ms == 0)
				delay_ms = r->n;
			break;
		case R_CRASH:
			pthread_mutex_unlock(&mu);
			shim_log("%s crash", func_names[c->f]);
			/* The default action even under a sanitizer, which
			 * would otherwise report the fault and exit. */
			signal(SIGSEGV, SIG_DFL);
			raise(SIGSEGV);
			abort();
		case R_HANG:
		case R_TRACE:
			break;
		}
		if (rv != CKR_OK)
			*effect = r->effect;
	}
	pthread_mutex_unlock(&mu);
	if (hung)
		shim_log("%s hang %s", func_names[c->f],
		    timed_out ? "timed out" : "released");
	if (delay_ms > 0 && rv == CKR_OK) {
		shim_log("%s delay %lu", func_names[c->f], delay_ms);
		sleep_ms(delay_ms);
	}
	if (rv != CKR_OK)
		shim_log("%s %s%s", func_names[c->f], code_name(rv),
		    *effect ? "" : " noeffect");
	return rv;
}

/* Logs a real call's result if a trace rule names the function. */
static CK_RV
trace(struct call *c, CK_RV rv)
{
	int on = 0;

	pthread_mutex_lock(&mu);
	reload();
	for (size_t i = 0; i < n_rules && !on; i++)
		on = rules[i].kind == R_TRACE && rule_matches(&rules[i], c);
	pthread_mutex_unlock(&mu);
	if (on)
		shim_log("trace %s %s", func_names[c->f], rv == CKR_OK ?
		    "CKR_OK" : code_name(rv));
	return rv;
}

/* Makes an injected loss real on the token. */
static void
apply_effect(const struct call *c, CK_RV rv)
{
	CK_SESSION_INFO info;
	CK_SLOT_ID slot;

	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
		if (c->has_session) {
			session_drop(c->session);
			(void)real->C_CloseSession(c->session);
		}
		break;
	case CKR_USER_NOT_LOGGED_IN:
		if (c->has_session)
			(void)real->C_Logout(c->session);
		break;
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
		if (c->has_slot)
			slot = c->slot;
		else if (c->has_session &&
		    real->C_GetSessionInfo(c->session, &info) == CKR_OK)
			slot = info.slotID;
		else
			break;
		session_drop_slot(slot);
		(void)real->C_CloseAllSessions(slot);
		break;
	default:
		break;
	}
}

#define INJECT(call) \
	do { \
		int effect_; \
		CK_RV rv_ = decide(call, &effect_); \
		if (rv_ != CKR_OK) { \
			if (effect_) \
				apply_effect(call, rv_); \
			return rv_; \
		} \
	} while (0)

/* For a single-part call after its Init: the real call runs first and
 * ends the operation, then the failure is reported instead. */
#define INJECT_FINAL(call, real_call) \
	do { \
		int effect_; \
		CK_RV rv_ = decide(call, &effect_); \
		if (rv_ != CKR_OK) { \
			(void)trace(call, real_call); \
			if (effect_) \
				apply_effect(call, rv_); \
			return rv_; \
		} \
		return trace(call, real_call); \
	} while (0)

static CK_RV
shim_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	struct call c;

	call_session(&c, F_SIGN_INIT, s);
	INJECT(&c);
	return trace(&c, real->C_SignInit(s, m, k));
}

static CK_RV
shim_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig,
    CK_ULONG_PTR sl)
{
	struct call c;

	/* A length query does not end the operation: pass it through. */
	if (sig == NULL)
		return real->C_Sign(s, d, dl, sig, sl);
	call_session(&c, F_SIGN, s);
	INJECT_FINAL(&c, real->C_Sign(s, d, dl, sig, sl));
}

static CK_RV
shim_DecryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	struct call c;

	call_session(&c, F_DECRYPT_INIT, s);
	INJECT(&c);
	return trace(&c, real->C_DecryptInit(s, m, k));
}

static CK_RV
shim_Decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR e, CK_ULONG el, CK_BYTE_PTR d,
    CK_ULONG_PTR dl)
{
	struct call c;

	if (d == NULL)
		return real->C_Decrypt(s, e, el, d, dl);
	call_session(&c, F_DECRYPT, s);
	INJECT_FINAL(&c, real->C_Decrypt(s, e, el, d, dl));
}

static CK_RV
shim_EncryptInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	struct call c;

	call_session(&c, F_ENCRYPT_INIT, s);
	INJECT(&c);
	return trace(&c, real->C_EncryptInit(s, m, k));
}

static CK_RV
shim_Encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR e,
    CK_ULONG_PTR el)
{
	struct call c;

	if (e == NULL)
		return real->C_Encrypt(s, d, dl, e, el);
	call_session(&c, F_ENCRYPT, s);
	INJECT_FINAL(&c, real->C_Encrypt(s, d, dl, e, el));
}

static CK_RV
shim_GenerateRandom(CK_SESSION_HANDLE s, CK_BYTE_PTR p, CK_ULONG n)
{
	struct call c;

	call_session(&c, F_GENERATE_RANDOM, s);
	INJECT(&c);
	return trace(&c, real->C_GenerateRandom(s, p, n));
}

static CK_RV
shim_Login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin,
    CK_ULONG n)
{
	struct call c;

	call_session(&c, F_LOGIN, s);
	INJECT(&c);
	return trace(&c, real->C_Login(s, u, pin, n));
}

/* Env P11SHIM_THREAD=1: C_Initialize starts a thread that lives as long
 * as the process, as tpm2-pkcs11 starts a GLib thread; P11SHIM_THREAD=
 * open:N: the Nth C_OpenSession starts it (a module that starts threads
 * later). It takes the signal mask of the thread that made the call, and
 * only waits: a signal that thread had not blocked may be delivered to
 * it, and its default action then ends the process. Named
 * "p11shim-thread". */
static void *
idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void
start_idle_thread(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, idle_thread, NULL) != 0) {
		fprintf(stderr, "p11shim: cannot start its thread\n");
		return;
	}
	(void)pthread_setname_np(t, "p11shim-thread");
	(void)pthread_detach(t);
}

static pthread_once_t idle_started = PTHREAD_ONCE_INIT;

/* Starts the thread if P11SHIM_THREAD asks for it at this call: when
 * C_Initialize (open 0) or the open-th C_OpenSession returns. */
static void
maybe_start_thread(unsigned long open)
{
	const char *want = getenv("P11SHIM_THREAD");
	char *end;

	if (want == NULL)
		return;
	if (strcmp(want, "1") == 0 ? open == 0 :
	    strncmp(want, "open:", 5) == 0 &&
	    strtoul(want + 5, &end, 10) == open && *end == '\0' && open > 0)
		pthread_once(&idle_started, start_idle_thread);
}

static CK_RV
shim_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s)
{
	struct call c;
	CK_RV rv;

	/* No session yet: a failure closes the slot's other sessions, if it
	 * says the token is gone, and nothing else. */
	call_slot(&c, F_OPEN_SESSION, slot);
	INJECT(&c);
	rv = real->C_OpenSession(slot, flags, app, notify, s);
	if (rv == CKR_OK && s != NULL) {
		static atomic_ulong opened;

		session_add(*s, slot);
		maybe_start_thread(atomic_fetch_add(&opened, 1) + 1);
	}
	return trace(&c, rv);
}

static CK_RV
shim_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	char label[SHIM_LABEL_MAX + 1];
	struct call c;
	CK_RV rv;

	call_slot(&c, F_GET_TOKEN_INFO, slot);
	INJECT(&c);
	rv = real->C_GetTokenInfo(slot, info);
	/* Keeps the label token= rules see as fresh as the caller's. */
	if (rv == CKR_OK && info != NULL && label_of(info, label) == 0)
		slot_remember(slot, label);
	return trace(&c, rv);
}

/* Calls that are only traced, never failed: they end things, and a
 * test wants to see that they happen. */
static CK_RV
shim_Logout(CK_SESSION_HANDLE s)
{
	struct call c;

	call_session(&c, F_LOGOUT, s);
	return trace(&c, real->C_Logout(s));
}

static CK_RV
shim_CloseSession(CK_SESSION_HANDLE s)
{
	struct call c;

	call_session(&c, F_CLOSE_SESSION, s);
	session_drop(s);
	return trace(&c, real->C_CloseSession(s));
}

static CK_RV
shim_CloseAllSessions(CK_SLOT_ID slot)
{
	struct call c;

	call_slot(&c, F_CLOSE_ALL_SESSIONS, slot);
	session_drop_slot(slot);
	return trace(&c, real->C_CloseAllSessions(slot));
}

static CK_RV
shim_Finalize(CK_VOID_PTR reserved)
{
	struct call c;
	CK_RV rv;

	call_none(&c, F_FINALIZE);
	rv = real->C_Finalize(reserved);
	if (rv == CKR_OK)
		tables_clear();
	return trace(&c, rv);
}

static CK_RV
shim_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	struct call c;

	call_session(&c, F_FIND_OBJECTS_INIT, s);
	INJECT(&c);
	return trace(&c, real->C_FindObjectsInit(s, t, n));
}

static CK_RV
shim_WrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk,
    CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	struct call c;

	call_session(&c, F_WRAP_KEY, s);
	INJECT(&c);
	return trace(&c, real->C_WrapKey(s, m, wk, k, out, outlen));
}

static CK_RV
shim_UnwrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk,
    CK_BYTE_PTR w, CK_ULONG wl, CK_ATTRIBUTE_PTR t, CK_ULONG tn,
    CK_OBJECT_HANDLE_PTR k)
{
	struct call c;

	call_session(&c, F_UNWRAP_KEY, s);
	INJECT(&c);
	return trace(&c, real->C_UnwrapKey(s, m, uk, w, wl, t, tn, k));
}

static CK_RV
shim_Initialize(CK_VOID_PTR args)
{
	CK_RV rv = real->C_Initialize(args);

	if (rv == CKR_OK)
		maybe_start_thread(0);
	return rv;
}

/* Env P11SHIM_HIDE_MECHS: mechanisms the token seems to lack, by name
 * (those below) or number (0x1087), separated by commas: the shim drops
 * them from C_GetMechanismList and answers CKR_MECHANISM_INVALID for
 * their C_GetMechanismInfo. Calls that use them still reach the real
 * module. */
static int
mech_hidden(CK_MECHANISM_TYPE m)
{
	static const struct {
		const char *name;
		CK_MECHANISM_TYPE m;
	} names[] = {
		{ "CKM_ECDSA", CKM_ECDSA }, { "CKM_EDDSA", 0x1057UL },
		{ "CKM_RSA_PKCS", CKM_RSA_PKCS },
		{ "CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_PSS },
		{ "CKM_RSA_PKCS_OAEP", CKM_RSA_PKCS_OAEP },
		{ "CKM_RSA_X_509", CKM_RSA_X_509 },
		{ "CKM_AES_GCM", CKM_AES_GCM }, { "CKM_AES_ECB", CKM_AES_ECB },
	};
	const char *env = getenv("P11SHIM_HIDE_MECHS");
	char buf[SHIM_LINE_MAX], *tok, *save = NULL;

	if (env == NULL || strlen(env) >= sizeof(buf))
		return 0;
	memcpy(buf, env, strlen(env) + 1);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(tok, names[i].name) == 0 &&
			    names[i].m == m)
				return 1;
		if (strncmp(tok, "0x", 2) == 0 &&
		    strtoul(tok, NULL, 16) == m)
			return 1;
	}
	return 0;
}

static CK_RV
shim_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR out,
    CK_ULONG_PTR count)
{
	CK_MECHANISM_TYPE *all;
	CK_ULONG n = 0, kept = 0;
	CK_RV rv;

	if (count == NULL)
		return real->C_GetMechanismList(slot, out, count);
	if ((rv = real->C_GetMechanismList(slot, NULL, &n)) != CKR_OK)
		return rv;
	if ((all = calloc(n ? n : 1, sizeof(*all))) == NULL)
		return CKR_HOST_MEMORY;
	if ((rv = real->C_GetMechanismList(slot, all, &n)) != CKR_OK) {
		free(all);
		return rv;
	}
	for (CK_ULONG i = 0; i < n; i++)
		if (!mech_hidden(all[i]))
			all[kept++] = all[i];
	if (out != NULL && *count < kept)
		rv = CKR_BUFFER_TOO_SMALL;
	else if (out != NULL)
		memcpy(out, all, kept * sizeof(*all));
	*count = kept;
	free(all);
	return rv;
}

static CK_RV
shim_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE m,
    CK_MECHANISM_INFO_PTR info)
{
	if (mech_hidden(m))
		return CKR_MECHANISM_INVALID;
	return real->C_GetMechanismInfo(slot, m, info);
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
	shim_list.C_Initialize = shim_Initialize;
	shim_list.C_GetMechanismList = shim_GetMechanismList;
	shim_list.C_GetMechanismInfo = shim_GetMechanismInfo;
	shim_list.C_SignInit = shim_SignInit;
	shim_list.C_Sign = shim_Sign;
	shim_list.C_DecryptInit = shim_DecryptInit;
	shim_list.C_Decrypt = shim_Decrypt;
	shim_list.C_EncryptInit = shim_EncryptInit;
	shim_list.C_Encrypt = shim_Encrypt;
	shim_list.C_GenerateRandom = shim_GenerateRandom;
	shim_list.C_Login = shim_Login;
	shim_list.C_OpenSession = shim_OpenSession;
	shim_list.C_GetTokenInfo = shim_GetTokenInfo;
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
