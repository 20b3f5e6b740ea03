/*
 * backup_drill.h: what "keyd-backup drill" needs beside the token: the
 * check that no keyd runs on the machine (shares typed on a networked
 * session controller would put the backup master key in its memory), and
 * the drill's JSON report, kept as evidence that the backup restores.
 * The token side of the drill is backup_token_drill (backup_token.h).
 */
#ifndef KEYD_BACKUP_DRILL_H
#define KEYD_BACKUP_DRILL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "bundle.h"

#define BACKUP_DRILL_WUR __attribute__((warn_unused_result))
/* Longest detail of a key's drill result. */
#define BACKUP_DRILL_MAX_DETAIL 512
/* keyd processes named in a refusal or a report. */
#define BACKUP_DRILL_MAX_PIDS 8

/* What a drill found for one key. */
enum backup_drill_state {
	BACKUP_DRILL_NOT_RUN = 0,    /* the drill stopped before this key */
	BACKUP_DRILL_PASS,
	BACKUP_DRILL_FAIL,
};

struct backup_drill_key {
	enum backup_drill_state state;
	char detail[BACKUP_DRILL_MAX_DETAIL];  /* what passed, or why not */
};

/* backup_drill_keyd_pids: the processes of this machine (as /proc shows
 * them) whose name (/proc/PID/comm) is "keyd": up to cap of them into
 * pids, and into *n how many there are (which may be more than cap).
 * Returns KEYD_OK, or KEYD_ERR_IO if /proc cannot be read (errno set). */
int backup_drill_keyd_pids(pid_t *pids, size_t cap, size_t *n)
    BACKUP_DRILL_WUR;

/* What the report says; nothing in it is secret. */
struct backup_drill_report {
	const struct bundle *b;
	const char *bundle_path;
	const char *token;                  /* the token's label */
	time_t when;
	const uint8_t *groups, *members;    /* 0-based, n_shares of each */
	size_t n_shares;
	const struct backup_drill_key *keys; /* b->n_keys */
	int allow_online;
	const pid_t *keyd_pids;
	size_t n_keyd;
};

/* backup_drill_report_write: writes the report as one JSON object to a
 * new file path (never replacing one: staged, fsynced, then renamed),
 * mode 0644, through dfd, path's directory as backup_file_open_dir_of
 * opened it before the shares were read. Returns KEYD_OK or a KEYD_ERR_*
 * with err saying why. */
int backup_drill_report_write(int dfd, const char *path,
    const struct backup_drill_report *r, char *err, size_t errlen)
    BACKUP_DRILL_WUR;

#endif
