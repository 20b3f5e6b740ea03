/*
 * frame.h: keyd's wire framing. A frame is a 4-byte big-endian length and
 * that many bytes of a protobuf message (keyd.proto). The length is checked
 * against a maximum before anything is allocated, and a message must use
 * every byte of its frame.
 */
#ifndef KEYD_FRAME_H
#define KEYD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "kbuf.h"
#include "keyd.pb-c.h"

#define FRAME_HDR_LEN 4
/* Default and hard ceiling for a frame body, in bytes. */
#define FRAME_MAX_DEFAULT (64u * 1024u)
#define FRAME_MAX_CEILING (1024u * 1024u)
/* Protocol version spoken by this code. */
#define KEYD_PROTOCOL_VERSION 1

/* frame_next: if b holds a whole frame whose body is at most max bytes,
 * borrows the body (*body, *len; valid until b is next written), consumes
 * the frame and returns KEYD_OK. KEYD_ERR_AGAIN: incomplete, nothing
 * consumed. KEYD_ERR_FRAME_TOO_LARGE: the header announces more than max. */
int frame_next(struct kbuf *b, size_t max, const uint8_t **body,
    size_t *len) KBUF_WUR;

/* frame_put_msg: appends msg to out as one frame. KEYD_ERR_FRAME_TOO_LARGE
 * if the body would exceed max, or out's own limit. */
int frame_put_msg(struct kbuf *out, const ProtobufCMessage *msg,
    size_t max) KBUF_WUR;

/* frame_unpack_request / frame_unpack_response: parse a frame body. The
 * message must use the body exactly. Free with frame_free_request /
 * frame_free_response, which wipe every field (plaintexts travel in
 * them). Returns KEYD_OK or KEYD_ERR_PROTOCOL. */
int frame_unpack_request(const uint8_t *body, size_t len,
    Keyd__V1__Request **out) KBUF_WUR;
int frame_unpack_response(const uint8_t *body, size_t len,
    Keyd__V1__Response **out) KBUF_WUR;
void frame_free_request(Keyd__V1__Request *m);
void frame_free_response(Keyd__V1__Response *m);

/* The protobuf-c allocator that wipes every block it frees. */
extern ProtobufCAllocator frame_allocator;

#endif
