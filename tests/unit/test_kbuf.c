/*
 * test_kbuf: the bounded buffer (proto/kbuf.c). Reads check the remaining
 * length and consume nothing when short; writes stop at the buffer's max
 * and leave it unchanged; compact, reset and unreserve wipe what they
 * drop, and only that; a view is read-only.
 */
#include <stdint.h>
#include <string.h>

#include "kbuf.h"
#include "keyd_err.h"
#include "ktest.h"

/* 1 if p[0..n) is all zero. */
static int
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static void
test_integers(void)
{
	struct kbuf b;
	uint8_t u8 = 0;
	uint16_t u16 = 0;
	uint32_t u32 = 0;
	static const uint8_t want[] = { 0xab, 0x12, 0x34, 0xde, 0xad, 0xbe,
		0xef };

	kbuf_init(&b, 64, 0);
	CHECK_INT(kbuf_put_u8(&b, 0xab), KEYD_OK);
	CHECK_INT(kbuf_put_u16(&b, 0x1234), KEYD_OK);
	CHECK_INT(kbuf_put_u32(&b, 0xdeadbeef), KEYD_OK);
	CHECK_INT(kbuf_avail(&b), sizeof(want));
	/* Big-endian on the wire, byte for byte. */
	CHECK(memcmp(kbuf_ptr(&b), want, sizeof(want)) == 0);

	CHECK_INT(kbuf_get_u8(&b, &u8), KEYD_OK);
	CHECK_INT(u8, 0xab);
	CHECK_INT(kbuf_get_u16(&b, &u16), KEYD_OK);
	CHECK_INT(u16, 0x1234);
	CHECK_INT(kbuf_peek_u32(&b, &u32), KEYD_OK);
	CHECK_INT(u32, 0xdeadbeef);
	CHECK_INT(kbuf_avail(&b), 4);          /* peek consumes nothing */
	u32 = 0;
	CHECK_INT(kbuf_get_u32(&b, &u32), KEYD_OK);
	CHECK_INT(u32, 0xdeadbeef);
	CHECK_INT(kbuf_avail(&b), 0);
	kbuf_free(&b);
}

/* A read of more than remains fails with AGAIN and consumes nothing. */
static void
test_short_reads(void)
{
	static const uint8_t three[] = { 1, 2, 3 };
	struct kbuf b;
	uint8_t out[8];
	const uint8_t *p = NULL;
	uint16_t u16 = 0x5555;
	uint32_t u32 = 0x55555555;
	uint8_t u8 = 0x55;

	kbuf_view(&b, three, sizeof(three));
	CHECK_INT(kbuf_get_u32(&b, &u32), KEYD_ERR_AGAIN);
	CHECK_INT(u32, 0x55555555);
	CHECK_INT(kbuf_peek_u32(&b, &u32), KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_get_bytes(&b, out, 4), KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_get_ptr(&b, 4, &p), KEYD_ERR_AGAIN);
	CHECK(p == NULL);
	CHECK_INT(kbuf_skip(&b, 4), KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_avail(&b), 3);

	CHECK_INT(kbuf_get_u16(&b, &u16), KEYD_OK);
	CHECK_INT(u16, 0x0102);
	CHECK_INT(kbuf_get_u16(&b, &u16), KEYD_ERR_AGAIN);
	CHECK_INT(u16, 0x0102);
	CHECK_INT(kbuf_avail(&b), 1);
	CHECK_INT(kbuf_get_u8(&b, &u8), KEYD_OK);
	CHECK_INT(u8, 3);
	CHECK_INT(kbuf_get_u8(&b, &u8), KEYD_ERR_AGAIN);
	/* Zero bytes are always there, even at the end. */
	CHECK_INT(kbuf_get_bytes(&b, out, 0), KEYD_OK);
	CHECK_INT(kbuf_skip(&b, 0), KEYD_OK);
	/* A length near SIZE_MAX must not wrap the check. */
	kbuf_view(&b, three, sizeof(three));
	CHECK_INT(kbuf_skip(&b, 1), KEYD_OK);
	CHECK_INT(kbuf_get_ptr(&b, SIZE_MAX, &p), KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_skip(&b, SIZE_MAX - 1), KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_avail(&b), 2);
	kbuf_free(&b);
}

static void
test_get_ptr_and_bytes(void)
{
	static const uint8_t data[] = "abcdefgh";
	struct kbuf b;
	const uint8_t *p;
	uint8_t out[4];

	kbuf_view(&b, data, 8);
	CHECK_INT(kbuf_get_ptr(&b, 3, &p), KEYD_OK);
	CHECK(p == data);                    /* borrowed, not copied */
	CHECK_INT(kbuf_get_bytes(&b, out, 4), KEYD_OK);
	CHECK(memcmp(out, "defg", 4) == 0);
	CHECK(kbuf_ptr(&b) == data + 7);
	CHECK_INT(kbuf_skip(&b, 1), KEYD_OK);
	CHECK_INT(kbuf_avail(&b), 0);
	kbuf_free(&b);
}

/* Writes stop at max, exactly, and a refused write changes nothing. */
static void
test_max(void)
{
	struct kbuf b;
	uint8_t big[1000], *p = NULL;

	memset(big, 0x42, sizeof(big));
	kbuf_init(&b, 1000, 0);
	CHECK_INT(kbuf_put(&b, big, 600), KEYD_OK);
	CHECK_INT(kbuf_put(&b, big, 401), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_avail(&b), 600);
	CHECK_INT(kbuf_put(&b, big, 400), KEYD_OK);
	CHECK_INT(kbuf_avail(&b), 1000);
	CHECK(b.cap <= b.max);
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_put_u16(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_put_u32(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_reserve(&b, 1, &p), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK(p == NULL);
	CHECK_INT(kbuf_avail(&b), 1000);
	CHECK_INT(kbuf_spare(&b), b.cap - b.len);
	/* Reading makes no room until compacted: max bounds len, and len
	 * counts the consumed bytes still held. */
	CHECK_INT(kbuf_skip(&b, 10), KEYD_OK);
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	kbuf_compact(&b);
	CHECK_INT(kbuf_avail(&b), 990);
	CHECK_INT(kbuf_put(&b, big, 10), KEYD_OK);
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	kbuf_free(&b);

	/* Sizes that would overflow len + n are refused before any
	 * allocation is tried. */
	kbuf_init(&b, 64, 0);
	CHECK_INT(kbuf_put_u8(&b, 7), KEYD_OK);
	CHECK_INT(kbuf_grow(&b, SIZE_MAX), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_grow(&b, SIZE_MAX - 1), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_reserve(&b, SIZE_MAX, &p), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_grow(&b, 63), KEYD_OK);
	CHECK_INT(kbuf_grow(&b, 64), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK(b.cap <= 64);
	CHECK_INT(kbuf_avail(&b), 1);
	kbuf_free(&b);

	/* A max of zero holds nothing. */
	kbuf_init(&b, 0, 0);
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_put(&b, big, 0), KEYD_OK);
	kbuf_free(&b);
}

/* Growth keeps the contents, across many reallocations. */
static void
test_growth(void)
{
	struct kbuf b;
	uint32_t v;
	int ok = 1;

	kbuf_init(&b, KBUF_DEFAULT_MAX, 0);
	for (uint32_t i = 0; i < 50000; i++)
		if (kbuf_put_u32(&b, i) != KEYD_OK)
			ok = 0;
	CHECK(ok);
	CHECK_INT(kbuf_avail(&b), 200000);
	for (uint32_t i = 0; i < 50000 && ok; i++)
		if (kbuf_get_u32(&b, &v) != KEYD_OK || v != i)
			ok = 0;
	CHECK(ok);
	kbuf_free(&b);
	CHECK(b.data == NULL);
	CHECK_INT(b.len, 0);
	CHECK_INT(b.max, KBUF_DEFAULT_MAX);   /* reusable after free */
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_OK);
	kbuf_free(&b);
	kbuf_free(NULL);
}

/* compact moves the unread bytes to the front and zeroes the tail it
 * gives up, so read plaintexts do not linger. */
static void
test_compact_wipes(void)
{
	struct kbuf b;
	uint8_t secret[32], *data;
	size_t cap;

	memset(secret, 0xa5, sizeof(secret));
	kbuf_init(&b, 1024, 0);
	CHECK_INT(kbuf_put(&b, secret, sizeof(secret)), KEYD_OK);
	CHECK_INT(kbuf_put(&b, "tail", 4), KEYD_OK);
	CHECK_INT(kbuf_skip(&b, sizeof(secret)), KEYD_OK);
	data = b.data;
	cap = b.cap;
	kbuf_compact(&b);
	CHECK(b.data == data && b.cap == cap);  /* in place */
	CHECK_INT(b.off, 0);
	CHECK_INT(b.len, 4);
	CHECK(memcmp(b.data, "tail", 4) == 0);
	CHECK(all_zero(b.data + 4, sizeof(secret)));

	/* Everything read: compact leaves the buffer empty and zeroed. */
	CHECK_INT(kbuf_skip(&b, 4), KEYD_OK);
	kbuf_compact(&b);
	CHECK_INT(b.len, 0);
	CHECK(all_zero(b.data, 4 + sizeof(secret)));
	/* Nothing read: compact is a no-op. */
	CHECK_INT(kbuf_put(&b, "xy", 2), KEYD_OK);
	kbuf_compact(&b);
	CHECK_INT(b.len, 2);
	CHECK(memcmp(b.data, "xy", 2) == 0);
	kbuf_free(&b);
}

static void
test_reset_and_unreserve_wipe(void)
{
	struct kbuf b;
	uint8_t *p = NULL, *data;

	kbuf_init(&b, 256, 0);
	CHECK_INT(kbuf_put(&b, "secret-bytes", 12), KEYD_OK);
	data = b.data;
	kbuf_reset(&b);
	CHECK_INT(kbuf_avail(&b), 0);
	CHECK(b.data == data);
	CHECK(all_zero(b.data, 12));

	CHECK_INT(kbuf_put(&b, "ab", 2), KEYD_OK);
	CHECK_INT(kbuf_reserve(&b, 10, &p), KEYD_OK);
	CHECK(p == b.data + 2);
	CHECK_INT(kbuf_avail(&b), 12);
	memset(p, 0x77, 10);
	kbuf_unreserve(&b, 6);
	CHECK_INT(kbuf_avail(&b), 6);
	CHECK(all_zero(b.data + 6, 6));
	CHECK_INT(b.data[5], 0x77);
	/* unreserve never gives back bytes already read. */
	CHECK_INT(kbuf_skip(&b, 5), KEYD_OK);
	kbuf_unreserve(&b, 100);
	CHECK_INT(kbuf_avail(&b), 0);
	CHECK_INT(b.len, 5);
	kbuf_free(&b);
}

/* compact wipes the bytes that were read (and the stale copy of the
 * unread ones) and nothing else: the unread bytes move to the front
 * intact, and the room past the end is not touched, however large. Here
 * the unread part is longer than the read part, so the move overlaps. */
static void
test_compact_wipes_only_read(void)
{
	struct kbuf b;
	uint8_t read_part[10], unread[30], *p = NULL;
	size_t i;

	memset(read_part, 0xa5, sizeof(read_part));
	for (i = 0; i < sizeof(unread); i++)
		unread[i] = (uint8_t)(i + 1);
	kbuf_init(&b, 4096, 0);
	CHECK_INT(kbuf_put(&b, read_part, sizeof(read_part)), KEYD_OK);
	CHECK_INT(kbuf_put(&b, unread, sizeof(unread)), KEYD_OK);
	CHECK_INT(kbuf_grow(&b, 1000), KEYD_OK);
	CHECK(b.cap >= 40 + 1000);
	/* What lies past the end: compact must leave it as it is. */
	memset(b.data + b.len, 0x3c, b.cap - b.len);
	CHECK_INT(kbuf_skip(&b, sizeof(read_part)), KEYD_OK);
	kbuf_compact(&b);
	CHECK_INT(b.off, 0);
	CHECK_INT(b.len, sizeof(unread));
	CHECK(memcmp(b.data, unread, sizeof(unread)) == 0);
	CHECK(all_zero(b.data + sizeof(unread), sizeof(read_part)));
	for (i = 40; i < b.cap && b.data[i] == 0x3c; i++)
		;
	CHECK_INT(i, b.cap);

	/* The same with a frame read whole: only its bytes are wiped. */
	CHECK_INT(kbuf_reserve(&b, 5, &p), KEYD_OK);
	memcpy(p, "frame", 5);
	CHECK_INT(kbuf_skip(&b, sizeof(unread) + 5), KEYD_OK);
	kbuf_compact(&b);
	CHECK_INT(b.len, 0);
	CHECK(all_zero(b.data, 40));
	for (i = 40; i < b.cap && b.data[i] == 0x3c; i++)
		;
	CHECK_INT(i, b.cap);
	kbuf_free(&b);
}

/* A socket read: reserve a chunk, recv fills part of it, and the rest is
 * given back unwiped (it held nothing); what was received stays. The
 * bytes given back are left exactly as they were. */
static void
test_unreserve_unwritten(void)
{
	struct kbuf b;
	uint8_t *p = NULL, *chunk;
	size_t i;

	kbuf_init(&b, 1u << 16, 0);
	CHECK_INT(kbuf_put(&b, "hd", 2), KEYD_OK);
	CHECK_INT(kbuf_reserve(&b, 1024, &p), KEYD_OK);
	CHECK(p == b.data + 2);
	chunk = p;
	/* What the chunk held before the recv (stands for wiped bytes). */
	memset(chunk, 0x3c, 1024);
	memcpy(chunk, "abcdefg", 7);            /* recv returned 7 */
	kbuf_unreserve_unwritten(&b, 1024 - 7);
	CHECK_INT(kbuf_avail(&b), 9);
	CHECK(memcmp(kbuf_ptr(&b), "hdabcdefg", 9) == 0);
	for (i = 7; i < 1024 && chunk[i] == 0x3c; i++)
		;
	CHECK_INT(i, 1024);
	/* recv got nothing: the whole chunk goes back. */
	CHECK_INT(kbuf_reserve(&b, 512, &p), KEYD_OK);
	kbuf_unreserve_unwritten(&b, 512);
	CHECK_INT(kbuf_avail(&b), 9);
	/* Never more than is unread. */
	CHECK_INT(kbuf_skip(&b, 4), KEYD_OK);
	kbuf_unreserve_unwritten(&b, 100);
	CHECK_INT(kbuf_avail(&b), 0);
	CHECK_INT(b.len, 4);
	kbuf_free(&b);

	/* Read, compact, read again: no byte that held data is left past
	 * the end. A secret buffer starts zeroed, so all of it can be
	 * checked. */
	kbuf_init(&b, 1u << 16, KBUF_SECRET);
	CHECK_INT(kbuf_reserve(&b, 2048, &p), KEYD_OK);
	memset(p, 0xa5, 100);                   /* recv returned 100 */
	kbuf_unreserve_unwritten(&b, 2048 - 100);
	CHECK_INT(kbuf_skip(&b, 60), KEYD_OK);  /* one frame read */
	kbuf_compact(&b);
	CHECK_INT(b.len, 40);
	CHECK_INT(kbuf_reserve(&b, 2048, &p), KEYD_OK);
	memset(p, 0x5a, 10);                    /* recv returned 10 */
	kbuf_unreserve_unwritten(&b, 2048 - 10);
	CHECK_INT(b.len, 50);
	for (i = 0; i < 40 && b.data[i] == 0xa5; i++)
		;
	CHECK_INT(i, 40);
	for (; i < 50 && b.data[i] == 0x5a; i++)
		;
	CHECK_INT(i, 50);
	CHECK(all_zero(b.data + 50, b.cap - 50));
	kbuf_free(&b);
}

/* A view never writes into the bytes it was given. */
static void
test_view_readonly(void)
{
	uint8_t data[4] = { 9, 8, 7, 6 };
	struct kbuf b;
	uint8_t *p = NULL;
	uint8_t v;

	kbuf_view(&b, data, sizeof(data));
	CHECK_INT(kbuf_spare(&b), 0);
	CHECK(kbuf_put_u8(&b, 1) != KEYD_OK);
	CHECK(kbuf_reserve(&b, 1, &p) != KEYD_OK);
	CHECK(kbuf_grow(&b, 1) != KEYD_OK);
	CHECK_INT(kbuf_get_u8(&b, &v), KEYD_OK);
	kbuf_compact(&b);
	kbuf_reset(&b);                 /* consumes, does not wipe */
	CHECK_INT(kbuf_avail(&b), 0);
	kbuf_free(&b);                  /* does not free or wipe data */
	CHECK(data[0] == 9 && data[1] == 8 && data[2] == 7 && data[3] == 6);
	/* kbuf_init never makes a read-only buffer. */
	kbuf_init(&b, 16, KBUF_READONLY);
	CHECK_INT(kbuf_put_u8(&b, 1), KEYD_OK);
	kbuf_free(&b);
}

/* A secret buffer (locked memory) behaves like any other. */
static void
test_secret(void)
{
	struct kbuf b;
	uint8_t out[300];
	uint8_t in[300];
	int ok = 1;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	kbuf_init(&b, 4096, KBUF_SECRET);
	for (int i = 0; i < 10; i++)
		if (kbuf_put(&b, in, sizeof(in)) != KEYD_OK)
			ok = 0;
	CHECK(ok);
	CHECK_INT(kbuf_avail(&b), 3000);
	CHECK_INT(kbuf_put(&b, in, 1097), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_get_bytes(&b, out, sizeof(out)), KEYD_OK);
	CHECK(memcmp(in, out, sizeof(in)) == 0);
	kbuf_free(&b);
	CHECK(b.flags & KBUF_SECRET);
}

int
main(void)
{
	test_integers();
	test_short_reads();
	test_get_ptr_and_bytes();
	test_max();
	test_growth();
	test_compact_wipes();
	test_reset_and_unreserve_wipe();
	test_compact_wipes_only_read();
	test_unreserve_unwritten();
	test_view_readonly();
	test_secret();
	return ktest_result("test_kbuf");
}
