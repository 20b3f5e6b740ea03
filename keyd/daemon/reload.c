/* reload.c: comparisons of two configurations for a reload (reload.h). */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The settings a reload cannot change, and why (docs/configuration.md
 * repeats these reasons). */
int
reload_restart_only(const struct config *o, const struct config *n,
    char *why, size_t whylen)
{
	const char *what = NULL, *because = NULL;

#define STR(f, r) STRN(f, #f, r)
#define NUM(f, r) NUMN(f, #f, r)
#define STRN(f, name, r) \
	else if (!str_eq(o->f, n->f)) { what = name; because = r; }
#define NUMN(f, name, r) \
	else if (o->f != n->f) { what = name; because = r; }
	if (0) {
	}
	STR(socket, "the socket is bound once, before the sandbox")
	NUMN(has_socket_gid, "socket_group", "the socket's group is set when "
	    "it is bound")
	NUMN(socket_gid, "socket_group", "the socket's group is set when it "
	    "is bound")
	STRN(module_real, "module", "the module is loaded by the token "
	    "processes, which the sandbox keeps from loading another")
	STR(token, "the token processes log in to this token")
	STR(failover_token, "the token processes log in to this token")
	STR(pin_file, "the PIN is read once, before privileges drop")
	STR(user, "privileges are dropped once, at start")
	STR(state_dir, "the sandbox allows only this directory")
	NUMN(srtp_limit_for_tests, "srtp_limit_for_tests", "SRTP counters "
	    "are set up at start")
	STR(audit_log, "keyd cannot open another path after the sandbox")
	STR(audit_key, "the audit log's signed chain continues under one key")
	NUM(audit_tn, "the audit log's TN form is fixed for a run")
	STR(audit_tn_key, "the audit log's TN form is fixed for a run")
	NUM(audit_sync, "the audit writer is set up at start")
	NUM(audit_sync_ms, "the audit writer is set up at start")
	NUM(sandbox, "the sandbox cannot be lifted or added to a running "
	    "process")
	NUM(module_network, "the token processes' sandbox is set at their "
	    "start")
	NUMN(token_timeout_ms, "token_timeout", "the supervisor and the "
	    "channels are set up with it")
	NUM(key_copies, "the token processes' sessions are set up with it")
	NUM(max_frame, "connections' buffers are sized with it")
	NUM(max_inflight, "connections' queues are sized with it")
	NUMN(idle_timeout_s, "idle_timeout", "it is read by the connection "
	    "sweep set up at start")
	NUM(workers, "the worker threads and the token channels are made at "
	    "start")
#undef STR
#undef NUM
#undef STRN
#undef NUMN
	if (what == NULL)
		return 0;
	snprintf(why, whylen, "%s cannot change on reload (%s); restart "
	    "keyd", what, because);
	return 1;
}

static int
key_same(const struct config_key *a, const struct config_key *b)
{
	if (!str_eq(a->uri, b->uri) || a->ops != b->ops ||
	    a->pkcs1_decrypt != b->pkcs1_decrypt ||
	    a->n_previous != b->n_previous || !str_eq(a->x5u, b->x5u) ||
	    !str_eq(a->certificate, b->certificate))
		return 0;
	for (size_t i = 0; i < a->n_previous; i++)
		if (!str_eq(a->previous[i], b->previous[i]))
			return 0;
	return 1;
}

static int
token_key_same(const struct token *ot, size_t oi, const struct token *nt,
    size_t ni)
{
	const struct token_key *a, *b;

	if (ot == NULL || nt == NULL)
		return 1;
	a = token_key(ot, oi);
	b = token_key(nt, ni);
	if (a->type != b->type || a->spki_len != b->spki_len ||
	    (a->spki_len > 0 && memcmp(a->spki, b->spki, a->spki_len) != 0))
		return 0;
	return a->has_kcv == b->has_kcv && (!a->has_kcv ||
	    memcmp(a->kcv, b->kcv, sizeof(a->kcv)) == 0);
}

static int
ids_same(const void *a, size_t na, const void *b, size_t nb, size_t sz)
{
	return na == nb && (na == 0 || memcmp(a, b, na * sz) == 0);
}

static int
client_same(const struct config *o, const struct config_client *a,
    const struct config *n, const struct config_client *b)
{
	if (!ids_same(a->uids, a->n_uids, b->uids, b->n_uids, sizeof(uid_t)) ||
	    !ids_same(a->gids, a->n_gids, b->gids, b->n_gids, sizeof(gid_t)) ||
	    a->n_keys != b->n_keys || a->ops != b->ops || a->rate != b->rate ||
	    a->max_connections != b->max_connections ||
	    a->attest_max != b->attest_max || a->n_orig_tns != b->n_orig_tns ||
	    (a->n_orig_tns > 0 && memcmp(a->orig_tns, b->orig_tns,
	    a->n_orig_tns * sizeof(*a->orig_tns)) != 0))
		return 0;
	for (size_t i = 0; i < a->n_keys; i++)
		if (strcmp(o->keys[a->keys[i]].name, n->keys[b->keys[i]].name))
			return 0;
	return 1;
}

/* Appends " name" to the list being built in out, as far as it fits. */
static void
add(char *out, size_t outlen, size_t *used, const char *mark,
    const char *name)
{
	int w;

	if (*used >= outlen)
		return;
	w = snprintf(out + *used, outlen - *used, " %s%s", mark, name);
	if (w < 0 || (size_t)w >= outlen - *used) {
		/* Cut: say so rather than end in the middle of a name. */
		if (outlen > 5)
			memcpy(out + outlen - 5, " ...", 5);
		*used = outlen;
		return;
	}
	*used += (size_t)w;
}

static long
find_client(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_clients; i++)
		if (!strcmp(c->clients[i].name, name))
			return (long)i;
	return -1;
}

void
reload_summary(const struct config *o, const struct token *ot,
    const struct config *n, const struct token *nt, char *out,
    size_t outlen)
{
	char cl[RELOAD_SUMMARY_MAX] = "", ky[RELOAD_SUMMARY_MAX] = "";
	size_t cu = 0, ku = 0;
	int limits, sys;

	for (size_t i = 0; i < n->n_clients; i++) {
		long j = find_client(o, n->clients[i].name);

		if (j < 0)
			add(cl, sizeof(cl), &cu, "+", n->clients[i].name);
		else if (!client_same(o, &o->clients[j], n, &n->clients[i]))
			add(cl, sizeof(cl), &cu, "~", n->clients[i].name);
	}
	for (size_t i = 0; i < o->n_clients; i++)
		if (find_client(n, o->clients[i].name) < 0)
			add(cl, sizeof(cl), &cu, "-", o->clients[i].name);
	for (size_t i = 0; i < n->n_keys; i++) {
		long j = config_find_key(o, n->keys[i].name);

		if (j < 0)
			add(ky, sizeof(ky), &ku, "+", n->keys[i].name);
		else if (!key_same(&o->keys[j], &n->keys[i]) ||
		    !token_key_same(ot, (size_t)j, nt, i))
			add(ky, sizeof(ky), &ku, "~", n->keys[i].name);
	}
	for (size_t i = 0; i < o->n_keys; i++)
		if (config_find_key(n, o->keys[i].name) < 0)
			add(ky, sizeof(ky), &ku, "-", o->keys[i].name);
	limits = o->max_connections != n->max_connections ||
	    o->audit_checkpoint_lines != n->audit_checkpoint_lines ||
	    o->audit_checkpoint_s != n->audit_checkpoint_s;
	sys = o->syslog != n->syslog || (n->syslog &&
	    !str_eq(o->syslog_socket, n->syslog_socket));
	if (cu == 0 && ku == 0 && !limits && !sys) {
		snprintf(out, outlen, "no change");
		return;
	}
	snprintf(out, outlen, "%s%s%s%s%s%s%s%s%s", cu ? "clients" : "", cl,
	    cu && ku ? "; " : "", ku ? "keys" : "", ky,
	    limits && (cu || ku) ? "; " : "", limits ? "[keyd] limits" : "",
	    sys && (cu || ku || limits) ? "; " : "", sys ? "[keyd] syslog" :
	    "");
}

void
reload_sha256_hex(const void *p, size_t n, char out[RELOAD_HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];

	EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[RELOAD_HASH_HEX] = '\0';
}

int
reload_memfd(const void *p, size_t n)
{
	const char *b = p;
	size_t done = 0;
	int fd = memfd_create("keyd-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	while (done < n) {
		ssize_t w = write(fd, b + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;

			close(fd);
			errno = w < 0 ? e : EIO;
			return -1;
		}
		done += (size_t)w;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW |
	    F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
