/*
 * secmem.h: memory for secrets (PINs, shares, key material, plaintexts).
 * Allocations are mlock'ed where the system allows, excluded from core
 * dumps, and wiped before they are freed. Modelled on libsodium's
 * sodium_malloc and sodium_memzero.
 */
#ifndef KEYD_SECMEM_H
#define KEYD_SECMEM_H

#include <stddef.h>

/* secmem_wipe: zeroes n bytes in a way the compiler cannot remove. */
void secmem_wipe(void *p, size_t n);
/* secmem_alloc: n zeroed bytes, locked and not dumped (best effort: an
 * mlock failure is ignored, since RLIMIT_MEMLOCK may be small). NULL on
 * failure. Free with secmem_free. */
void *secmem_alloc(size_t n);
/* secmem_free: wipes n bytes and frees p (from secmem_alloc). NULL is fine. */
void secmem_free(void *p, size_t n);
/* secmem_lock: locks and marks MADV_DONTDUMP the pages holding p[0..n).
 * Returns 0, or -1 if mlock failed (the region is still excluded from
 * dumps where possible). */
int secmem_lock(void *p, size_t n);
/* secmem_unlock: wipes p[0..n) and unlocks it. */
void secmem_unlock(void *p, size_t n);
/* secmem_equal: constant-time comparison; 1 if equal. */
int secmem_equal(const void *a, const void *b, size_t n);

#endif
