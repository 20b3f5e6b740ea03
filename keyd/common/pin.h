/* pin.h: reading the token's user PIN from a file. */
#ifndef KEYD_PIN_H
#define KEYD_PIN_H

#include <stddef.h>
#include <sys/types.h>

#define PIN_MAX_LEN 256

/* pin_read: reads the PIN file at path. It is opened with O_NOFOLLOW and
 * checked on the open descriptor: a regular file owned by root or by
 * owner_uid, mode 0400 or 0600. One trailing newline is stripped. On
 * success *pin is a NUL-terminated string in locked memory that the caller
 * frees with pin_free(*pin, *len). On failure returns a KEYD_ERR_* code
 * and writes what to fix into err (never any of the file's bytes). */
int pin_read(const char *path, uid_t owner_uid, char **pin, size_t *len,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* pin_free: wipes and frees a PIN from pin_read. NULL is fine. */
void pin_free(char *pin, size_t len);

#endif
