/*
 * config.h: keyd's configuration (INI, parsed with libinih). Every setting
 * of DESIGN's configuration reference is known here; any other is an
 * error. docs/configuration.md is the user's version of this file.
 */
#ifndef KEYD_CONFIG_H
#define KEYD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_WUR __attribute__((warn_unused_result))

/* Limits of the file itself. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_KEYS 256
#define CONFIG_MAX_CLIENTS 256
#define CONFIG_MAX_LIST 64      /* entries in one comma-separated list */
#define CONFIG_NAME_MAX 64      /* a key or client name */

/* Defaults of the [keyd] limits. */
#define CONFIG_DEFAULT_SOCKET "/run/keyd/keyd.sock"
#define CONFIG_DEFAULT_MAX_CONNECTIONS 1024
#define CONFIG_DEFAULT_MAX_INFLIGHT 64
#define CONFIG_DEFAULT_IDLE_TIMEOUT_S 300
#define CONFIG_DEFAULT_AUDIT_SYNC_MS 10
#define CONFIG_DEFAULT_TOKEN_TIMEOUT_MS 5000
#define CONFIG_MIN_TOKEN_TIMEOUT_MS 100
#define CONFIG_MAX_TOKEN_TIMEOUT_MS 600000
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/keyd"
#define CONFIG_DEFAULT_SYSLOG_SOCKET "/dev/log"  /* glibc's _PATH_LOG */
#define CONFIG_MAX_SRTP_LIMIT (1u << 31) /* srtp_limit_for_tests */
#define CONFIG_DEFAULT_CHECKPOINT_LINES 1000
#define CONFIG_DEFAULT_CHECKPOINT_S 60
#define CONFIG_MAX_CHECKPOINT_LINES 1000000
#define CONFIG_MAX_CHECKPOINT_S 86400

/* Policy ops, one bit each: bit (proto Op value - 1). */
enum config_op {
	CONFIG_OP_SIGN = 1u << 0,
	CONFIG_OP_DECRYPT = 1u << 1,
	CONFIG_OP_SRTP_NEW = 1u << 2,
	CONFIG_OP_SRTP_OPEN = 1u << 3,
	CONFIG_OP_STATUS = 1u << 4,
	CONFIG_OP_PASSPORT = 1u << 5,
	CONFIG_OP_RELOAD = 1u << 6,   /* a client's only, like status */
};

/* STIR/SHAKEN (docs/shaken.md). */
#define CONFIG_X5U_MAX 512          /* bytes of a key's x5u URL */
#define CONFIG_MAX_TN_RULES 256     /* entries of a client's orig_tns */
#define CONFIG_TN_BUF 16            /* a canonical TN (15 digits) and NUL */

/* attest_max: the highest attestation a client may assert. */
enum config_attest {
	CONFIG_ATTEST_NONE = 0,      /* not set: no passport at all */
	CONFIG_ATTEST_C = 1,
	CONFIG_ATTEST_B = 2,
	CONFIG_ATTEST_A = 3,
};

/* One entry of a client's orig_tns: a TN, a prefix ("1202555*") or a
 * range of TNs of one length ("12025550100-12025550199"). */
struct config_tn_rule {
	char lo[CONFIG_TN_BUF];    /* the TN, the prefix, or the range start */
	char hi[CONFIG_TN_BUF];    /* the range end; "" otherwise */
	int prefix;
};

/* audit_tn: how a PASSporT's TNs are written to the audit log. */
enum config_audit_tn { CONFIG_AUDIT_TN_CLEAR, CONFIG_AUDIT_TN_HMAC };

enum config_audit_sync { CONFIG_SYNC_INTERVAL, CONFIG_SYNC_REQUEST };

struct config_key {
	char *name;
	char *uri;
	unsigned ops;            /* CONFIG_OP_* the key is for */
	int pkcs1_decrypt;       /* 1: implicit-rejection PKCS#1 v1.5 */
	char **previous;         /* older SRTP KEK URIs, open only */
	size_t n_previous;
	char *x5u;               /* passport: the certificate's HTTPS URL */
	char *certificate;       /* passport: PEM chain file; NULL: token's */
	int line;                /* line of its section header */
};

struct config_client {
	char *name;
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;
	size_t *keys;            /* indexes into config.keys */
	size_t n_keys;
	unsigned ops;            /* CONFIG_OP_* */
	double rate;             /* requests per second; 0: unlimited */
	/* connections open at once: the file's value, or else the global
	 * max_connections / n_clients, at least 1 (set by the parser; never
	 * 0 in a loaded config) */
	unsigned max_connections;
	enum config_attest attest_max; /* passport: highest attestation */
	struct config_tn_rule *orig_tns; /* passport: numbers it signs for */
	size_t n_orig_tns;
	int line;
};

struct config {
	char *path;
	char *socket;
	char *socket_group;      /* NULL: the daemon's primary group */
	gid_t socket_gid;
	int has_socket_gid;
	char *module;            /* as written */
	char *module_real;       /* after realpath, checked */
	char *token;
	char *pin_file;
	char *user;              /* NULL: stay as started */
	uid_t user_uid;
	gid_t user_gid;
	char *state_dir;
	unsigned srtp_limit_for_tests; /* TEST ONLY; 0: the real limit */
	char *audit_log;
	char *audit_key;         /* NULL: no signed checkpoints */
	enum config_audit_tn audit_tn; /* PASSporT TNs in the audit log */
	char *audit_tn_key;      /* audit_tn = hmac: the HMAC key's URI */
	enum config_audit_sync audit_sync;
	unsigned audit_sync_ms;
	unsigned audit_checkpoint_lines; /* a signed checkpoint every N lines */
	unsigned audit_checkpoint_s;     /* ... or every T seconds */
	int syslog;
	char *syslog_socket;     /* the syslog daemon's datagram socket */
	int sandbox;
	int module_network;
	char *failover_token;    /* NULL: none; same module as token */
	/* Set by keyd-token only: token is the failover token, which the
	 * keys' URIs (naming the primary, if any token) cannot name. */
	int serving_failover;
	unsigned token_timeout_ms; /* a token call this old means it hangs */
	int key_copies;          /* serve from session-object copies */
	unsigned max_connections;
	unsigned max_frame;
	unsigned max_inflight;
	unsigned idle_timeout_s;
	unsigned workers;        /* 0: one per online CPU */
	struct config_key *keys;
	size_t n_keys;
	struct config_client *clients;
	size_t n_clients;
};

/* config_load: reads, parses and checks the file at path: syntax, every
 * setting, the file's own permissions (not writable by group or others),
 * the module path (realpath, root-owned, no group/world-writable file or
 * parent), names of users and groups, and policy consistency. Gives each
 * [client] without max_connections its share of the global limit. On failure
 * returns KEYD_ERR_CONFIG and writes one line naming the file, the line
 * and what to fix into err. *out is owned by the caller: config_free. */
int config_load(const char *path, struct config **out, char *err,
    size_t errlen) CONFIG_WUR;

/* config_read: the bytes of the configuration file at path, with the
 * checks config_load makes of the file itself (a regular file, not a
 * symbolic link, not writable by group or others, owned by root or the
 * caller, at most CONFIG_MAX_BYTES). *text is malloc'ed, NUL-terminated,
 * *len bytes without the NUL; the caller frees it. On failure returns
 * KEYD_ERR_CONFIG (or KEYD_ERR_NOMEM) with one line in err. */
int config_read(const char *path, char **text, size_t *len, char *err,
    size_t errlen) CONFIG_WUR;

/* config_read_owned: config_read with the file owned by root or by owner
 * instead of the caller (a reload, read after privileges dropped, checks
 * the owner a start checked: owner is the euid keyd started with). */
int config_read_owned(const char *path, uid_t owner, char **text,
    size_t *len, char *err, size_t errlen) CONFIG_WUR;

/* config_parse_buffer: like config_load on text already in memory, with no
 * file-system checks of the config file itself (for tests and fuzzing).
 * check_files: also check the module path. */
int config_parse_buffer(const char *text, size_t len, const char *name,
    int check_files, struct config **out, char *err, size_t errlen) CONFIG_WUR;

void config_free(struct config *c);

/* config_check_module: resolves path with realpath and checks that the
 * file and every parent directory are owned by root and not writable by
 * group or others. *resolved is malloc'ed. */
int config_check_module(const char *path, char **resolved, char *err,
    size_t errlen) CONFIG_WUR;

/* config_find_key: index of the key named name, or -1. */
long config_find_key(const struct config *c, const char *name);

/* config_op_name: "sign", "decrypt", ...; config_op_parse: the bit for a
 * name, or 0. */
const char *config_op_name(unsigned op);
unsigned config_op_parse(const char *name);

#endif
