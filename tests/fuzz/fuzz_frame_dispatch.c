/*
 * fuzz_frame_dispatch.c: the frame reader and the real request dispatcher,
 * on the bytes a client sends on its connection (OpenSSH's
 * agent_fuzz_helper.c drives ssh-agent's real process_message the same
 * way). One input is everything one connection sends: it goes into the
 * connection's input buffer in reads of at most SERVER_READ_CHUNK bytes,
 * and after each read every complete frame goes through dispatch_request,
 * as keyd/daemon/server.c's handle_conn and process_frames do it, against a real
 * SoftHSM2 token (tests/fuzz/setup_token.sh makes it; run the target
 * through that script), set up at the first input. The peer is this process, matched to the
 * configuration's [client fuzz], which may do every op; the worker's token
 * session lasts across inputs, as a worker thread's does.
 *
 * Besides the sanitizers it checks dispatch.h's contract on every frame:
 * exactly one reply frame is appended, and it is a Response; a frame that
 * is not a Request gets KEYD_ERR_PROTOCOL and a reply with id 0, any other
 * gets KEYD_OK and a reply with the request's id; a reply carries either
 * an error with a message or the result of the request's own op.
 */
#include <string.h>

#include "dispatch.h"
#include "frame.h"
#include "fuzz.h"
#include "fuzz_env.h"
#include "keyd_err.h"

/* keyd/daemon/server.c's, where they are private: the most one read takes, and
 * the queued reply bytes at which the server stops reading requests
 * until the client has read its replies. */
#define SERVER_READ_CHUNK 16384
#define SERVER_OUT_HIGH_WATER (256u * 1024u)

/* Set up at the first input, not in LLVMFuzzerInitialize: libFuzzer's
 * -merge=1 and -jobs run the target in child processes, and the parent,
 * which only waits for them, would otherwise hold the token and the SRTP
 * state lock that each child needs. */
static struct fuzz_env *env;

/* The reply dispatch_request appended to out at before, for the frame
 * body[0..len) on which it returned r. */
static void
check_reply(const struct kbuf *out, size_t before, const uint8_t *body,
    size_t len, int r)
{
	Keyd__V1__Request *req = NULL;
	Keyd__V1__Response *resp = NULL;
	const uint8_t *rb;
	size_t rl;
	struct kbuf v;

	fuzz_check(kbuf_avail(out) > before);
	kbuf_view(&v, kbuf_ptr(out) + before, kbuf_avail(out) - before);
	fuzz_check(frame_next(&v, FRAME_MAX_CEILING, &rb, &rl) == KEYD_OK);
	fuzz_check(kbuf_avail(&v) == 0);
	fuzz_check(frame_unpack_response(rb, rl, &resp) == KEYD_OK);
	if (frame_unpack_request(body, len, &req) == KEYD_OK) {
		fuzz_check(r == KEYD_OK);
		fuzz_check(resp->id == req->id);
	} else {
		fuzz_check(r == KEYD_ERR_PROTOCOL);
		fuzz_check(resp->id == 0 && resp->error == KEYD_ERR_PROTOCOL);
	}
	if (resp->error != 0) {
		fuzz_check(resp->error < 0);
		fuzz_check(resp->result_case ==
		    KEYD__V1__RESPONSE__RESULT__NOT_SET);
		fuzz_check(resp->message != NULL && resp->message[0] != '\0');
	} else {
		/* Request and Response number their oneof cases alike. */
		fuzz_check(req != NULL);
		fuzz_check((int)resp->result_case == (int)req->op_case);
	}
	frame_free_request(req);
	frame_free_response(resp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct config *cfg;
	struct kbuf in, out;
	const uint8_t *body;
	size_t off = 0, len, before;
	unsigned queued = 0;
	int closing = 0, r;

	if (env == NULL)
		env = fuzz_env_open();
	cfg = env->cfg;
	kbuf_init(&in, cfg->max_frame + FRAME_HDR_LEN, 0);
	kbuf_init(&out, SERVER_OUT_HIGH_WATER + FRAME_MAX_CEILING, 0);
	while (!closing) {
		/* handle_conn: one read, at most what the buffer takes. */
		size_t room = cfg->max_frame + FRAME_HDR_LEN - kbuf_avail(&in);
		size_t n = size - off;

		if (room > SERVER_READ_CHUNK)
			room = SERVER_READ_CHUNK;
		if (n > room)
			n = room;
		/* Nothing more sent: the peer is at EOF, and what is left of
		 * a frame is dropped. */
		if (n == 0)
			break;
		fuzz_check(kbuf_put(&in, data + off, n) == KEYD_OK);
		off += n;
		/* process_frames. */
		while (!closing) {
			if (queued >= cfg->max_inflight ||
			    kbuf_avail(&out) >= SERVER_OUT_HIGH_WATER) {
				/* The client reads its replies. */
				kbuf_reset(&out);
				queued = 0;
			}
			r = frame_next(&in, cfg->max_frame, &body, &len);
			if (r == KEYD_ERR_AGAIN)
				break;
			if (r == KEYD_ERR_FRAME_TOO_LARGE) {
				before = kbuf_avail(&out);
				fuzz_check(dispatch_error_reply(&out, 0,
				    KEYD_ERR_FRAME_TOO_LARGE, "frame larger "
				    "than the daemon's max_frame") == KEYD_OK);
				fuzz_check(kbuf_avail(&out) > before);
				closing = 1;
				break;
			}
			fuzz_check(r == KEYD_OK && len <= cfg->max_frame);
			before = kbuf_avail(&out);
			r = dispatch_request(&env->d, &env->ts, &env->peer, body,
			    len, &out);
			check_reply(&out, before, body, len, r);
			queued++;
			if (r != KEYD_OK)
				closing = 1;
		}
		kbuf_compact(&in);
	}
	kbuf_free(&in);
	kbuf_free(&out);
	fuzz_env_tick(env);
	return 0;
}
