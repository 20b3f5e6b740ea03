/*
 * statedir.h: state_dir, the directory of what keyd must remember across
 * restarts (the SRTP KEK counters, the last signed audit checkpoint).
 */
#ifndef KEYD_STATEDIR_H
#define KEYD_STATEDIR_H

#include "config.h"

/* statedir_open: opens cfg->state_dir (creating it 0700 for keyd's user
 * if missing, through pathsafe: no link followed as root) and checks that
 * it is owned by keyd's user and writable by nobody else. what names what
 * keyd keeps there, for the messages. With check_only, a missing
 * directory is only reported (log_info) and *fd is -1. Returns KEYD_OK
 * with an O_DIRECTORY descriptor in *fd, or KEYD_ERR_CONFIG with err
 * set. */
int statedir_open(const struct config *cfg, int check_only, const char *what,
    int *fd, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
