/*
 * kbuf.h: a bounded byte buffer. Every byte keyd takes from a socket, a
 * bundle, a share or a config goes through one: each read checks the
 * remaining length first, each write checks the buffer's maximum size.
 * Modelled on OpenSSH's sshbuf and s2n's stuffer.
 */
#ifndef KEYD_KBUF_H
#define KEYD_KBUF_H

#include <stddef.h>
#include <stdint.h>

#define KBUF_WUR __attribute__((warn_unused_result))

/* The buffer never grows beyond this unless a caller sets a larger max. */
#define KBUF_DEFAULT_MAX (1u << 20)

enum {
	KBUF_READONLY = 1u << 0, /* a view of someone else's bytes */
	KBUF_SECRET = 1u << 1,   /* contents are secret: mlock, no dump */
};

struct kbuf {
	uint8_t *data;
	size_t off;    /* read position */
	size_t len;    /* end of valid data */
	size_t cap;    /* bytes allocated */
	size_t max;    /* cap may never exceed this */
	unsigned flags;
};

/* kbuf_init: an empty, growable buffer of at most max bytes. */
void kbuf_init(struct kbuf *b, size_t max, unsigned flags);
/* kbuf_view: a read-only buffer over data[0..len); data is not copied and
 * must outlive b. */
void kbuf_view(struct kbuf *b, const void *data, size_t len);
/* kbuf_free: wipes and frees what b holds; b is left empty. NULL is fine. */
void kbuf_free(struct kbuf *b);
/* kbuf_reset: wipes the contents and empties b, keeping its memory. */
void kbuf_reset(struct kbuf *b);

/* bytes left to read */
size_t kbuf_avail(const struct kbuf *b);
/* pointer to the next unread byte (valid until the next write) */
const uint8_t *kbuf_ptr(const struct kbuf *b);

/* Readers: return KEYD_OK, or KEYD_ERR_AGAIN with nothing consumed when
 * fewer bytes remain than asked for. Integers are big-endian. */
int kbuf_get_u8(struct kbuf *b, uint8_t *v) KBUF_WUR;
int kbuf_get_u16(struct kbuf *b, uint16_t *v) KBUF_WUR;
int kbuf_get_u32(struct kbuf *b, uint32_t *v) KBUF_WUR;
int kbuf_peek_u32(const struct kbuf *b, uint32_t *v) KBUF_WUR;
int kbuf_get_bytes(struct kbuf *b, void *out, size_t n) KBUF_WUR;
/* kbuf_get_ptr: borrows the next n bytes (no copy) and consumes them. */
int kbuf_get_ptr(struct kbuf *b, size_t n, const uint8_t **p) KBUF_WUR;
int kbuf_skip(struct kbuf *b, size_t n) KBUF_WUR;

/* Writers: return KEYD_OK, KEYD_ERR_FRAME_TOO_LARGE past max, or
 * KEYD_ERR_NOMEM. */
int kbuf_put(struct kbuf *b, const void *p, size_t n) KBUF_WUR;
int kbuf_put_u8(struct kbuf *b, uint8_t v) KBUF_WUR;
int kbuf_put_u16(struct kbuf *b, uint16_t v) KBUF_WUR;
int kbuf_put_u32(struct kbuf *b, uint32_t v) KBUF_WUR;
/* kbuf_reserve: n bytes of room at the end; *p points at them. They count
 * as written until given back. */
int kbuf_reserve(struct kbuf *b, size_t n, uint8_t **p) KBUF_WUR;
/* kbuf_unreserve: gives back the last n unread bytes (at most what is
 * unread) and wipes them: they may hold what the caller wrote (a reply
 * taken back, a message half packed). */
void kbuf_unreserve(struct kbuf *b, size_t n);
/* kbuf_unreserve_unwritten: gives back the last n bytes of a reservation
 * that the caller never wrote into, such as what a recv into it did not
 * fill, without wiping them. Nothing of the buffer's is there: the bytes
 * past its end are wiped whenever the buffer gives bytes up (compact,
 * unreserve, reset), so they are only ever wiped bytes or memory the
 * buffer never used. A caller that did write into them must use
 * kbuf_unreserve. */
void kbuf_unreserve_unwritten(struct kbuf *b, size_t n);
/* kbuf_compact: moves unread bytes to the front and wipes the bytes it
 * gives up: as many as were read, and no more (the room past the end is
 * not touched). */
void kbuf_compact(struct kbuf *b);
/* kbuf_spare: free room at the end without growing; kbuf_grow makes at
 * least n bytes of room (within max). */
size_t kbuf_spare(const struct kbuf *b);
int kbuf_grow(struct kbuf *b, size_t n) KBUF_WUR;

#endif
