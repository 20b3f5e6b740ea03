/*
 * sandbox.h: the confinement of keyd's processes.
 *
 * The socket-facing process, which parses what clients send, runs under a
 * seccomp allowlist of the calls it needs once it serves (anything else
 * kills it) and under Landlock, which keeps it from the files it has no
 * business with: the PIN file and the systemd credential above all. No
 * PKCS#11 module runs there, so the list does not depend on the token.
 *
 * A token process runs a vendor's module, whose calls keyd cannot know in
 * advance: it gets a seccomp denylist of what no module needs (exec,
 * ptrace, mounts, kernel modules, namespaces, ...), answered with EPERM,
 * and no network unless module_network = yes.
 */
#ifndef KEYD_SANDBOX_H
#define KEYD_SANDBOX_H

#include <stddef.h>

#include "config.h"

#define SANDBOX_WUR __attribute__((warn_unused_result))

/* sandbox_install: the socket-facing process's allowlist, on every
 * thread (TSYNC). Returns KEYD_OK or KEYD_ERR_INTERNAL with err set. */
int sandbox_install(char *err, size_t errlen) SANDBOX_WUR;

/* sandbox_install_token: a token process's denylist, on every thread.
 * network: allow AF_INET and AF_INET6 sockets. */
int sandbox_install_token(int network, char *err, size_t errlen)
    SANDBOX_WUR;

/* sandbox_drop_privileges: to cfg->user (if set): its primary group
 * only, no way back, not dumpable. */
int sandbox_drop_privileges(const struct config *cfg, char *err,
    size_t errlen) SANDBOX_WUR;

/* sandbox_landlock: from now on the process reads only system libraries
 * and a few system files, reads and writes only below rw_dirs (NULL
 * entries skipped), and may only remove files in unlink_dir (NULL:
 * none). KEYD_ERR_UNSUPPORTED if the kernel has no Landlock. */
int sandbox_landlock(const char *const *rw_dirs, size_t n_rw,
    const char *unlink_dir, char *err, size_t errlen) SANDBOX_WUR;

#endif
