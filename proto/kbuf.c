/* kbuf.c: the bounded buffer every untrusted byte passes through. */
#include "kbuf.h"

#include <stdlib.h>
#include <string.h>

#include "keyd_err.h"
#include "secmem.h"

void
kbuf_init(struct kbuf *b, size_t max, unsigned flags)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
	b->flags = flags & ~KBUF_READONLY;
}

void
kbuf_view(struct kbuf *b, const void *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	/* The view never writes through data; the cast only fits the struct. */
	b->data = (uint8_t *)(uintptr_t)data;
	b->len = b->cap = b->max = len;
	b->flags = KBUF_READONLY;
}

static void
release(struct kbuf *b)
{
	if (b->data == NULL || (b->flags & KBUF_READONLY))
		return;
	if (b->flags & KBUF_SECRET) {
		secmem_free(b->data, b->cap);
	} else {
		secmem_wipe(b->data, b->len);
		free(b->data);
	}
}

void
kbuf_free(struct kbuf *b)
{
	unsigned flags;
	size_t max;

	if (b == NULL)
		return;
	release(b);
	flags = b->flags;
	max = b->max;
	memset(b, 0, sizeof(*b));
	b->flags = flags;
	b->max = max;
	if (flags & KBUF_READONLY)
		b->max = 0;
}

void
kbuf_reset(struct kbuf *b)
{
	if (b->flags & KBUF_READONLY) {
		b->off = b->len;
		return;
	}
	secmem_wipe(b->data, b->len);
	b->off = b->len = 0;
}

size_t
kbuf_avail(const struct kbuf *b)
{
	return b->len - b->off;
}

const uint8_t *
kbuf_ptr(const struct kbuf *b)
{
	return b->data + b->off;
}

int
kbuf_get_ptr(struct kbuf *b, size_t n, const uint8_t **p)
{
	if (kbuf_avail(b) < n)
		return KEYD_ERR_AGAIN;
	*p = b->data + b->off;
	b->off += n;
	return KEYD_OK;
}

int
kbuf_get_bytes(struct kbuf *b, void *out, size_t n)
{
	const uint8_t *p;
	int r;

	if ((r = kbuf_get_ptr(b, n, &p)) != KEYD_OK)
		return r;
	if (n > 0)
		memcpy(out, p, n);
	return KEYD_OK;
}

int
kbuf_skip(struct kbuf *b, size_t n)
{
	const uint8_t *p;

	return kbuf_get_ptr(b, n, &p);
}

int
kbuf_get_u8(struct kbuf *b, uint8_t *v)
{
	return kbuf_get_bytes(b, v, 1);
}

int
kbuf_get_u16(struct kbuf *b, uint16_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = kbuf_get_ptr(b, 2, &p)) != KEYD_OK)
		return r;
	*v = (uint16_t)((p[0] << 8) | p[1]);
	return KEYD_OK;
}

int
kbuf_peek_u32(const struct kbuf *b, uint32_t *v)
{
	const uint8_t *p;

	if (kbuf_avail(b) < 4)
		return KEYD_ERR_AGAIN;
	p = b->data + b->off;
	*v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
	return KEYD_OK;
}

int
kbuf_get_u32(struct kbuf *b, uint32_t *v)
{
	int r;

	if ((r = kbuf_peek_u32(b, v)) != KEYD_OK)
		return r;
	b->off += 4;
	return KEYD_OK;
}

size_t
kbuf_spare(const struct kbuf *b)
{
	return (b->flags & KBUF_READONLY) ? 0 : b->cap - b->len;
}

int
kbuf_grow(struct kbuf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *nd;

	if (b->flags & KBUF_READONLY)
		return KEYD_ERR_INTERNAL;
	if (b->cap - b->len >= n)
		return KEYD_OK;
	if (n > b->max || b->len > b->max - n)
		return KEYD_ERR_FRAME_TOO_LARGE;
	need = b->len + n;
	/* Secret buffers get whole pages from mmap anyway: start at one. */
	ncap = (b->flags & KBUF_SECRET) ? 4096 : 256;
	if (ncap < b->cap)
		ncap = b->cap;
	while (ncap < need)
		ncap = ncap > b->max / 2 ? b->max : ncap * 2;
	if (ncap > b->max)
		ncap = b->max;
	if (b->flags & KBUF_SECRET) {
		nd = secmem_alloc(ncap);
		if (nd == NULL)
			return KEYD_ERR_NOMEM;
		if (b->len > 0)
			memcpy(nd, b->data, b->len);
		secmem_free(b->data, b->cap);
	} else {
		/* Not realloc: the old copy would be freed unwiped. */
		nd = malloc(ncap);
		if (nd == NULL)
			return KEYD_ERR_NOMEM;
		if (b->len > 0)
			memcpy(nd, b->data, b->len);
		secmem_wipe(b->data, b->len);
		free(b->data);
	}
	b->data = nd;
	b->cap = ncap;
	return KEYD_OK;
}

int
kbuf_reserve(struct kbuf *b, size_t n, uint8_t **p)
{
	int r;

	if ((r = kbuf_grow(b, n)) != KEYD_OK)
		return r;
	*p = b->data + b->len;
	b->len += n;
	return KEYD_OK;
}

void
kbuf_unreserve(struct kbuf *b, size_t n)
{
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->len -= n;
	secmem_wipe(b->data + b->len, n);
}

void
kbuf_unreserve_unwritten(struct kbuf *b, size_t n)
{
	/* A socket read reserves a 16 KiB chunk and usually gets a frame of
	 * a hundred bytes: wiping the rest cost a 16 KiB write per recv and
	 * made every page of every connection's buffer resident, to clear
	 * bytes that held nothing. */
	if (n > b->len - b->off)
		n = b->len - b->off;
	b->len -= n;
}

int
kbuf_put(struct kbuf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if ((r = kbuf_reserve(b, n, &dst)) != KEYD_OK)
		return r;
	if (n > 0)
		memcpy(dst, p, n);
	return KEYD_OK;
}

int
kbuf_put_u8(struct kbuf *b, uint8_t v)
{
	return kbuf_put(b, &v, 1);
}

int
kbuf_put_u16(struct kbuf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return kbuf_put(b, p, 2);
}

int
kbuf_put_u32(struct kbuf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	return kbuf_put(b, p, 4);
}

void
kbuf_compact(struct kbuf *b)
{
	size_t n;

	if ((b->flags & KBUF_READONLY) || b->off == 0)
		return;
	n = b->len - b->off;
	if (n > 0)
		memmove(b->data, b->data + b->off, n);
	/* [n, len) held the read bytes or the old copy of the unread ones:
	 * off bytes, whatever the capacity. */
	secmem_wipe(b->data + n, b->len - n);
	b->len = n;
	b->off = 0;
}
