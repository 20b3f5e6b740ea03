/* frame.c: length-prefixed protobuf frames, bounded before allocation. */
#include "frame.h"

#include <malloc.h>
#include <stdlib.h>

#include "keyd_err.h"
#include "secmem.h"

/*
 * protobuf-c frees decoded messages block by block without telling the
 * allocator the sizes; malloc_usable_size recovers them so that plaintexts
 * and key material in decoded fields are wiped before free.
 */
static void *
wipe_alloc(void *data, size_t size)
{
	(void)data;
	return malloc(size == 0 ? 1 : size);
}

static void
wipe_free(void *data, void *p)
{
	(void)data;
	if (p == NULL)
		return;
	secmem_wipe(p, malloc_usable_size(p));
	free(p);
}

ProtobufCAllocator frame_allocator = {
	.alloc = wipe_alloc,
	.free = wipe_free,
	.allocator_data = NULL,
};

int
frame_next(struct kbuf *b, size_t max, const uint8_t **body, size_t *len)
{
	uint32_t n;
	int r;

	if ((r = kbuf_peek_u32(b, &n)) != KEYD_OK)
		return r;
	if (n > max)
		return KEYD_ERR_FRAME_TOO_LARGE;
	if (kbuf_avail(b) - FRAME_HDR_LEN < n)
		return KEYD_ERR_AGAIN;
	if ((r = kbuf_skip(b, FRAME_HDR_LEN)) != KEYD_OK ||
	    (r = kbuf_get_ptr(b, n, body)) != KEYD_OK)
		return r;
	*len = n;
	return KEYD_OK;
}

int
frame_put_msg(struct kbuf *out, const ProtobufCMessage *msg, size_t max)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *p;
	int r;

	if (n > max || n > UINT32_MAX)
		return KEYD_ERR_FRAME_TOO_LARGE;
	if ((r = kbuf_grow(out, FRAME_HDR_LEN + n)) != KEYD_OK)
		return r;
	if ((r = kbuf_put_u32(out, (uint32_t)n)) != KEYD_OK ||
	    (r = kbuf_reserve(out, n, &p)) != KEYD_OK)
		return r;
	if (protobuf_c_message_pack(msg, p) != n) {
		kbuf_unreserve(out, n + FRAME_HDR_LEN);
		return KEYD_ERR_INTERNAL;
	}
	return KEYD_OK;
}

int
frame_unpack_request(const uint8_t *body, size_t len, Keyd__V1__Request **out)
{
	*out = keyd__v1__request__unpack(&frame_allocator, len, body);
	return *out == NULL ? KEYD_ERR_PROTOCOL : KEYD_OK;
}

int
frame_unpack_response(const uint8_t *body, size_t len,
    Keyd__V1__Response **out)
{
	*out = keyd__v1__response__unpack(&frame_allocator, len, body);
	return *out == NULL ? KEYD_ERR_PROTOCOL : KEYD_OK;
}

void
frame_free_request(Keyd__V1__Request *m)
{
	if (m != NULL)
		keyd__v1__request__free_unpacked(m, &frame_allocator);
}

void
frame_free_response(Keyd__V1__Response *m)
{
	if (m != NULL)
		keyd__v1__response__free_unpacked(m, &frame_allocator);
}
