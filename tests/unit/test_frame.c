/*
 * test_frame: keyd's framing (proto/frame.c). A frame's length is judged
 * from its 4-byte header alone, before the body is waited for or any
 * room is made for it; an incomplete frame consumes nothing; a complete
 * one is consumed exactly; a body that is not a message is refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "keyd_err.h"
#include "ktest.h"

/* A sign request with recognisable fields, packed as one frame into b. */
static void
put_sign(struct kbuf *b, uint64_t id, const char *key, size_t datalen)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
	uint8_t data[512];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	s.key = (char *)(uintptr_t)key;
	s.alg = KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384;
	s.data.data = data;
	s.data.len = datalen;
	s.ecdsa_raw = 1;
	req.id = id;
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &s;
	CHECK_INT(frame_put_msg(b, &req.base, FRAME_MAX_DEFAULT), KEYD_OK);
}

static void
check_sign(const Keyd__V1__Request *r, uint64_t id, const char *key,
    size_t datalen)
{
	int ok = 1;

	CHECK(r != NULL);
	if (r == NULL)
		return;
	CHECK_INT(r->id, id);
	CHECK_INT(r->op_case, KEYD__V1__REQUEST__OP_SIGN);
	if (r->op_case != KEYD__V1__REQUEST__OP_SIGN)
		return;
	CHECK(strcmp(r->sign->key, key) == 0);
	CHECK_INT(r->sign->alg, KEYD__V1__SIGN_ALG__SIGN_ALG_RSA_PSS_SHA384);
	CHECK_INT(r->sign->ecdsa_raw, 1);
	CHECK_INT(r->sign->data.len, datalen);
	for (size_t i = 0; i < r->sign->data.len; i++)
		if (r->sign->data.data[i] != (uint8_t)(i * 7 + 1))
			ok = 0;
	CHECK(ok);
}

static void
test_round_trip(void)
{
	struct kbuf b;
	const uint8_t *body = NULL;
	size_t len = 0, packed;
	uint32_t hdr;
	Keyd__V1__Request *r = NULL;

	kbuf_init(&b, 4096, 0);
	put_sign(&b, 0x1122334455667788ull, "sip-tls", 48);
	CHECK_INT(kbuf_peek_u32(&b, &hdr), KEYD_OK);
	packed = kbuf_avail(&b) - FRAME_HDR_LEN;
	CHECK_INT(hdr, packed);
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len), KEYD_OK);
	CHECK_INT(len, packed);
	CHECK_INT(kbuf_avail(&b), 0);          /* consumed exactly */
	CHECK_INT(frame_unpack_request(body, len, &r), KEYD_OK);
	check_sign(r, 0x1122334455667788ull, "sip-tls", 48);
	frame_free_request(r);
	kbuf_free(&b);
}

/* Responses carry negative error codes (sint32) and messages. */
static void
test_response_round_trip(void)
{
	Keyd__V1__Response resp = KEYD__V1__RESPONSE__INIT;
	Keyd__V1__Response *r = NULL;
	struct kbuf b;
	const uint8_t *body;
	size_t len;

	resp.id = 42;
	resp.error = KEYD_ERR_PASSPHRASE;
	resp.message = (char *)"key 'x' is not for sign";
	kbuf_init(&b, 4096, 0);
	CHECK_INT(frame_put_msg(&b, &resp.base, FRAME_MAX_DEFAULT), KEYD_OK);
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len), KEYD_OK);
	CHECK_INT(frame_unpack_response(body, len, &r), KEYD_OK);
	CHECK(r != NULL);
	if (r != NULL) {
		CHECK_INT(r->id, 42);
		CHECK_INT(r->error, KEYD_ERR_PASSPHRASE);
		CHECK(strcmp(r->message, "key 'x' is not for sign") == 0);
		CHECK_INT(r->result_case, KEYD__V1__RESPONSE__RESULT__NOT_SET);
	}
	frame_free_response(r);
	kbuf_free(&b);
}

/* Every prefix of a frame is incomplete and consumes nothing; the whole
 * frame is then read from the same buffer. */
static void
test_truncated(void)
{
	struct kbuf whole, part;
	const uint8_t *body = NULL;
	size_t len = 0, n, i;
	int ok = 1;

	kbuf_init(&whole, 4096, 0);
	put_sign(&whole, 7, "k", 100);
	n = kbuf_avail(&whole);
	kbuf_init(&part, 4096, 0);
	for (i = 0; i < n; i++) {
		int r;

		CHECK_INT(kbuf_put_u8(&part, kbuf_ptr(&whole)[i]), KEYD_OK);
		r = frame_next(&part, FRAME_MAX_DEFAULT, &body, &len);
		if (i + 1 < n && (r != KEYD_ERR_AGAIN ||
		    kbuf_avail(&part) != i + 1)) {
			fprintf(stderr, "prefix of %zu bytes: %d, avail %zu\n",
			    i + 1, r, kbuf_avail(&part));
			ok = 0;
		}
		if (i + 1 == n) {
			Keyd__V1__Request *req = NULL;

			CHECK_INT(r, KEYD_OK);
			CHECK_INT(kbuf_avail(&part), 0);
			CHECK_INT(frame_unpack_request(body, len, &req),
			    KEYD_OK);
			check_sign(req, 7, "k", 100);
			frame_free_request(req);
		}
	}
	CHECK(ok);
	kbuf_free(&part);
	kbuf_free(&whole);
}

/* The length is refused from the header alone: with only the 4 header
 * bytes there (nothing more to wait for), and whatever follows. */
static void
test_oversized(void)
{
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t just_over[] = { 0x00, 0x01, 0x00, 0x01 };
	uint8_t at_max[FRAME_HDR_LEN + 1024];
	struct kbuf b;
	const uint8_t *body = NULL;
	size_t len = 0;

	kbuf_view(&b, huge, sizeof(huge));
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len),
	    KEYD_ERR_FRAME_TOO_LARGE);
	CHECK(body == NULL);
	CHECK_INT(kbuf_avail(&b), 4);
	CHECK_INT(frame_next(&b, FRAME_MAX_CEILING, &body, &len),
	    KEYD_ERR_FRAME_TOO_LARGE);

	/* 65537 against a max of 65536: one over. */
	kbuf_view(&b, just_over, sizeof(just_over));
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len),
	    KEYD_ERR_FRAME_TOO_LARGE);
	/* The same header is merely incomplete under a larger max. */
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT + 1, &body, &len),
	    KEYD_ERR_AGAIN);

	/* Exactly max is allowed. */
	memset(at_max, 0, sizeof(at_max));
	at_max[2] = 0x04;                 /* 1024 */
	kbuf_view(&b, at_max, sizeof(at_max));
	CHECK_INT(frame_next(&b, 1023, &body, &len), KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(frame_next(&b, 1024, &body, &len), KEYD_OK);
	CHECK_INT(len, 1024);
	CHECK(body == at_max + FRAME_HDR_LEN);
	CHECK_INT(kbuf_avail(&b), 0);

	/* Fewer than 4 header bytes: incomplete, not judged. */
	kbuf_view(&b, huge, 3);
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len),
	    KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_avail(&b), 3);
}

/* Back-to-back frames, including an empty one, each consumed exactly. */
static void
test_exact_consumption(void)
{
	static const uint8_t empty[] = { 0, 0, 0, 0 };
	struct kbuf b;
	const uint8_t *body;
	size_t len;
	Keyd__V1__Request *r = NULL;

	kbuf_init(&b, 8192, 0);
	put_sign(&b, 1, "first", 10);
	CHECK_INT(kbuf_put(&b, empty, sizeof(empty)), KEYD_OK);
	put_sign(&b, 3, "third", 500);
	CHECK_INT(kbuf_put_u8(&b, 0), KEYD_OK);  /* start of a 4th header */

	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len), KEYD_OK);
	CHECK_INT(frame_unpack_request(body, len, &r), KEYD_OK);
	check_sign(r, 1, "first", 10);
	frame_free_request(r);

	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len), KEYD_OK);
	CHECK_INT(len, 0);
	/* An empty body is a Request with no operation (all defaults). */
	CHECK_INT(frame_unpack_request(body, len, &r), KEYD_OK);
	CHECK(r != NULL && r->op_case == KEYD__V1__REQUEST__OP__NOT_SET &&
	    r->id == 0);
	frame_free_request(r);

	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len), KEYD_OK);
	CHECK_INT(frame_unpack_request(body, len, &r), KEYD_OK);
	check_sign(r, 3, "third", 500);
	frame_free_request(r);

	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &body, &len),
	    KEYD_ERR_AGAIN);
	CHECK_INT(kbuf_avail(&b), 1);
	kbuf_free(&b);
}

/* A message is not packed into a frame over max, nor past the output
 * buffer's own limit; either way out is left as it was. */
static void
test_put_limits(void)
{
	Keyd__V1__Request req = KEYD__V1__REQUEST__INIT;
	Keyd__V1__SignRequest s = KEYD__V1__SIGN_REQUEST__INIT;
	static uint8_t data[2000];
	struct kbuf b;
	size_t packed;

	s.key = (char *)"k";
	s.data.data = data;
	s.data.len = sizeof(data);
	req.op_case = KEYD__V1__REQUEST__OP_SIGN;
	req.sign = &s;
	packed = protobuf_c_message_get_packed_size(&req.base);

	kbuf_init(&b, 65536, 0);
	CHECK_INT(kbuf_put_u8(&b, 0xee), KEYD_OK);
	CHECK_INT(frame_put_msg(&b, &req.base, packed - 1),
	    KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_avail(&b), 1);
	CHECK_INT(frame_put_msg(&b, &req.base, packed), KEYD_OK);
	CHECK_INT(kbuf_avail(&b), 1 + FRAME_HDR_LEN + packed);
	kbuf_free(&b);

	kbuf_init(&b, FRAME_HDR_LEN + packed - 1, 0);
	CHECK_INT(frame_put_msg(&b, &req.base, FRAME_MAX_DEFAULT),
	    KEYD_ERR_FRAME_TOO_LARGE);
	CHECK_INT(kbuf_avail(&b), 0);
	kbuf_free(&b);
	kbuf_init(&b, FRAME_HDR_LEN + packed, 0);
	CHECK_INT(frame_put_msg(&b, &req.base, FRAME_MAX_DEFAULT), KEYD_OK);
	kbuf_free(&b);
}

/* Bodies that are not a Request are refused, never half-parsed. */
static void
test_garbage(void)
{
	uint8_t ff[64], body[256];
	struct kbuf b;
	const uint8_t *p;
	size_t len, n;
	Keyd__V1__Request *r = (Keyd__V1__Request *)1;
	Keyd__V1__Response *resp = (Keyd__V1__Response *)1;
	unsigned seed = 12345;
	int crashes_none = 1;

	memset(ff, 0xff, sizeof(ff));
	CHECK_INT(frame_unpack_request(ff, sizeof(ff), &r), KEYD_ERR_PROTOCOL);
	CHECK(r == NULL);
	CHECK_INT(frame_unpack_response(ff, sizeof(ff), &resp),
	    KEYD_ERR_PROTOCOL);
	CHECK(resp == NULL);

	/* A valid frame cut inside its body: the body alone is refused. */
	kbuf_init(&b, 4096, 0);
	put_sign(&b, 9, "truncated-key", 100);
	CHECK_INT(frame_next(&b, FRAME_MAX_DEFAULT, &p, &len), KEYD_OK);
	CHECK_INT(frame_unpack_request(p, len - 1, &r), KEYD_ERR_PROTOCOL);
	CHECK_INT(frame_unpack_request(p, len / 2, &r), KEYD_ERR_PROTOCOL);
	/* One stray byte after a valid message is not a field. */
	n = len < sizeof(body) - 1 ? len : sizeof(body) - 1;
	memcpy(body, p, n);
	body[n] = 0x80;
	CHECK_INT(frame_unpack_request(body, n + 1, &r), KEYD_ERR_PROTOCOL);
	kbuf_free(&b);

	/* A wrong wire type for a known field (id as length-delimited). */
	{
		static const uint8_t bad_type[] = { 0x0a, 0x01, 0x00 };

		CHECK_INT(frame_unpack_request(bad_type, sizeof(bad_type), &r),
		    KEYD_ERR_PROTOCOL);
	}
	/* A length-delimited field claiming more bytes than there are. */
	{
		static const uint8_t overlong[] = { 0x6a, 0x7f, 0x0a, 0x01 };

		CHECK_INT(frame_unpack_request(overlong, sizeof(overlong), &r),
		    KEYD_ERR_PROTOCOL);
	}

	/* Random bodies: whatever they parse to, nothing breaks (this is
	 * meaningful under the sanitizer build). */
	for (int i = 0; i < 20000; i++) {
		size_t l = (size_t)(rand_r(&seed) % (int)sizeof(body));

		for (size_t j = 0; j < l; j++)
			body[j] = (uint8_t)rand_r(&seed);
		if (frame_unpack_request(body, l, &r) == KEYD_OK) {
			if (r == NULL)
				crashes_none = 0;
			frame_free_request(r);
		} else if (r != NULL) {
			crashes_none = 0;
		}
	}
	CHECK(crashes_none);
}

int
main(void)
{
	test_round_trip();
	test_response_round_trip();
	test_truncated();
	test_oversized();
	test_exact_consumption();
	test_put_limits();
	test_garbage();
	return ktest_result("test_frame");
}
