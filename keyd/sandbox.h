/*
 * sandbox.h: keyd's seccomp filter. An allowlist of the system calls the
 * daemon, its PKCS#11 module (SoftHSM2 re-reads token files and takes
 * lock files on every operation) and libc need once start-up is done;
 * anything else kills the whole process. Installed with TSYNC before the
 * worker threads start, so every thread runs under it.
 */
#ifndef KEYD_SANDBOX_H
#define KEYD_SANDBOX_H

#include <stddef.h>

/* sandbox_install: loads the filter. network: also allow the socket calls
 * a network HSM's module needs (AF_INET/AF_INET6 sockets, connect, and
 * their options). Returns KEYD_OK or KEYD_ERR_INTERNAL with err set. */
int sandbox_install(int network, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
