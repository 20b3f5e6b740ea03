/* tokenwire.c: frames and key info between keyd's processes. */
#include "tokenwire.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "keyd_err.h"

long
tw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Writes iov fully; the descriptors go with the first byte. */
static int
send_all(int fd, struct iovec *iov, int niov, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * TW_MAX_FDS)];
	} cm;
	struct msghdr mh;
	ssize_t w;

	if (nfds > TW_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	while (niov > 0) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		if (nfds > 0) {
			struct cmsghdr *c;

			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			if ((c = CMSG_FIRSTHDR(&mh)) == NULL) {
				errno = EINVAL;
				return -1;
			}
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		nfds = 0;
		while (niov > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int
tw_send(int fd, const void *p, size_t n, const int *fds, size_t nfds)
{
	uint32_t len = (uint32_t)n;
	struct iovec iov[2] = {
		{ &len, sizeof(len) },
		{ (void *)(uintptr_t)p, n },
	};

	if (n > TW_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	return send_all(fd, iov, n > 0 ? 2 : 1, fds, nfds);
}

int
tw_send2(int fd, const void *h, size_t hn, const void *b, size_t bn)
{
	uint32_t len = (uint32_t)(hn + bn);
	struct iovec iov[3] = {
		{ &len, sizeof(len) },
		{ (void *)(uintptr_t)h, hn },
		{ (void *)(uintptr_t)b, bn },
	};

	if (hn + bn > TW_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	return send_all(fd, iov, bn > 0 ? 3 : 2, NULL, 0);
}

/* Waits until fd is readable or the deadline passes. */
static int
wait_readable(int fd, long deadline_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r, ms;

	for (;;) {
		if (deadline_ms == 0) {
			ms = -1;
		} else {
			long left = deadline_ms - tw_now_ms();

			if (left <= 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			ms = left > 60000 ? 60000 : (int)left;
		}
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Reads exactly n bytes; the first read takes descriptors. */
static int
recv_all(int fd, void *p, size_t n, int *fds, size_t *nfds, long deadline_ms)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * TW_MAX_FDS)];
	} cm;
	size_t got = 0, room = nfds != NULL ? *nfds : 0;
	int first = 1;

	if (nfds != NULL)
		*nfds = 0;
	while (got < n) {
		struct iovec iov = { (char *)p + got, n - got };
		struct msghdr mh;
		ssize_t r;

		if (wait_readable(fd, deadline_ms) != 0)
			return -1;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (first) {
			mh.msg_control = cm.buf;
			mh.msg_controllen = sizeof(cm.buf);
		}
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		if (first) {
			struct cmsghdr *c;

			for (c = CMSG_FIRSTHDR(&mh); c != NULL;
			    c = CMSG_NXTHDR(&mh, c)) {
				size_t k, nf;
				int *in = (int *)CMSG_DATA(c);

				if (c->cmsg_level != SOL_SOCKET ||
				    c->cmsg_type != SCM_RIGHTS)
					continue;
				nf = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (k = 0; k < nf; k++) {
					int one;

					memcpy(&one, in + k, sizeof(one));
					if (nfds != NULL && *nfds < room)
						fds[(*nfds)++] = one;
					else
						close(one);
				}
			}
			first = 0;
		}
		got += (size_t)r;
	}
	return 0;
}

int
tw_recv(int fd, struct kbuf *b, size_t max, int *fds, size_t *nfds,
    long deadline_ms)
{
	uint32_t len;
	uint8_t *p;

	kbuf_reset(b);
	if (recv_all(fd, &len, sizeof(len), fds, nfds, deadline_ms) != 0)
		return -1;
	if (len > max || len > TW_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	if (len == 0)
		return 0;
	if (kbuf_reserve(b, len, &p) != KEYD_OK) {
		errno = ENOMEM;
		return -1;
	}
	if (recv_all(fd, p, len, NULL, NULL, deadline_ms) != 0)
		return -1;
	return 0;
}

/* A request channel carries one frame at a time: the whole of it can be
 * read at once, without the header first (a system call saved on each
 * side of every request). */
#define TW_FIRST_READ 16384

/* One recvmsg, waiting for data: until deadline_ms (poll), for ever
 * (deadline_ms 0), or for the socket's own SO_RCVTIMEO (deadline_ms -1:
 * one system call, where poll and a non-blocking read would be three). */
static ssize_t
recv_wait(int fd, struct iovec *iov, int niov, long deadline_ms)
{
	struct msghdr mh;
	ssize_t r;

	for (;;) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)niov;
		r = recvmsg(fd, &mh, deadline_ms > 0 ? MSG_DONTWAIT : 0);
		if (r > 0)
			return r;
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && deadline_ms < 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EAGAIN)
			return -1;
		if (wait_readable(fd, deadline_ms) != 0)
			return -1;
	}
}

int
tw_recv_one(int fd, struct kbuf *b, size_t max, long deadline_ms)
{
	uint32_t len = 0;
	size_t hdr = 0, got = 0, cap;
	uint8_t *p;
	int have_len = 0;

	kbuf_reset(b);
	cap = max < TW_FIRST_READ ? max : TW_FIRST_READ;
	if (kbuf_reserve(b, cap, &p) != KEYD_OK) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		struct iovec iov[2];
		int niov = 0;
		ssize_t r;
		size_t want;

		if (hdr < sizeof(len))
			iov[niov++] = (struct iovec){ (uint8_t *)&len + hdr,
			    sizeof(len) - hdr };
		want = have_len ? len - got : cap - got;
		if (want > 0)
			iov[niov++] = (struct iovec){ p + got, want };
		r = recv_wait(fd, iov, niov, deadline_ms);
		if (r < 0)
			goto fail;
		if (hdr < sizeof(len)) {
			size_t h = (size_t)r < sizeof(len) - hdr ? (size_t)r :
			    sizeof(len) - hdr;

			hdr += h;
			r -= (ssize_t)h;
		}
		got += (size_t)r;
		if (hdr == sizeof(len) && !have_len) {
			if (len > max || len > TW_MAX_FRAME) {
				errno = EMSGSIZE;
				goto fail;
			}
			have_len = 1;
			if (len > cap) {
				if (kbuf_reserve(b, len - cap, &p) != KEYD_OK) {
					errno = ENOMEM;
					goto fail;
				}
				p = (uint8_t *)(uintptr_t)kbuf_ptr(b);
				cap = len;
			}
		}
		if (have_len && got > len) {
			/* More than one frame: not this channel's protocol. */
			errno = EPROTO;
			goto fail;
		}
		if (have_len && got == len)
			break;
	}
	kbuf_unreserve(b, cap - len);
	return 0;
fail:
	kbuf_reset(b);
	return -1;
}

static int
put_blob(struct kbuf *b, const void *p, size_t n)
{
	int r;

	if ((r = kbuf_put_u32(b, (uint32_t)n)) != KEYD_OK)
		return r;
	return n > 0 ? kbuf_put(b, p, n) : KEYD_OK;
}

static int
put_str(struct kbuf *b, const char *s)
{
	return put_blob(b, s, strlen(s));
}

/* A blob of at most max bytes, copied into a malloc'ed buffer (NULL for
 * an empty one when alloc), or into dst. */
static int
get_blob(struct kbuf *b, size_t max, uint8_t **alloc, uint8_t *dst,
    size_t *len)
{
	uint32_t n;
	const uint8_t *p;

	if (kbuf_get_u32(b, &n) != KEYD_OK || n > max ||
	    kbuf_get_ptr(b, n, &p) != KEYD_OK)
		return KEYD_ERR_PROTOCOL;
	*len = n;
	if (alloc != NULL) {
		*alloc = NULL;
		if (n == 0)
			return KEYD_OK;
		if ((*alloc = malloc(n)) == NULL)
			return KEYD_ERR_NOMEM;
		memcpy(*alloc, p, n);
	} else {
		memcpy(dst, p, n);
	}
	return KEYD_OK;
}

static int
get_str(struct kbuf *b, char *dst, size_t room)
{
	size_t n;
	int r;

	if ((r = get_blob(b, room - 1, NULL, (uint8_t *)dst, &n)) != KEYD_OK)
		return r;
	dst[n] = '\0';
	return KEYD_OK;
}

enum {
	F_SIGN = 1u << 0, F_DECRYPT = 1u << 1, F_ENCRYPT = 1u << 2,
	F_EXTRACTABLE = 1u << 3, F_WWT = 1u << 4, F_WEAK = 1u << 5,
	F_KCV = 1u << 6,
};

int
tw_info_put(struct kbuf *b, const struct token_info *ti,
    const struct token_key *keys, size_t n_all, int has_audit_key,
    int has_tn_key)
{
	int r = KEYD_OK;

	if ((r = put_str(b, ti->label)) != KEYD_OK ||
	    (r = put_str(b, ti->manufacturer)) != KEYD_OK ||
	    (r = put_str(b, ti->model)) != KEYD_OK ||
	    (r = put_str(b, ti->serial)) != KEYD_OK ||
	    (r = kbuf_put_u32(b, (uint32_t)ti->key_copies)) != KEYD_OK ||
	    (r = kbuf_put_u32(b, (uint32_t)n_all)) != KEYD_OK ||
	    (r = kbuf_put_u8(b, (has_audit_key != 0) | (has_tn_key != 0) << 1)) !=
	    KEYD_OK)
		return r;
	for (size_t i = 0; i < n_all; i++) {
		const struct token_key *k = &keys[i];
		uint32_t f = (k->can_sign ? F_SIGN : 0) |
		    (k->can_decrypt ? F_DECRYPT : 0) |
		    (k->can_encrypt ? F_ENCRYPT : 0) |
		    (k->extractable ? F_EXTRACTABLE : 0) |
		    (k->wrap_with_trusted ? F_WWT : 0) |
		    (k->weak_extractable ? F_WEAK : 0) |
		    (k->has_kcv ? F_KCV : 0);

		if ((r = kbuf_put_u32(b, (uint32_t)k->type)) != KEYD_OK ||
		    (r = kbuf_put_u32(b, k->bits)) != KEYD_OK ||
		    (r = kbuf_put_u32(b, f)) != KEYD_OK ||
		    (r = kbuf_put_u32(b, k->oaep_hashes)) != KEYD_OK ||
		    (r = kbuf_put(b, k->kcv, 3)) != KEYD_OK ||
		    (r = put_blob(b, k->id, k->id_len)) != KEYD_OK ||
		    (r = put_blob(b, k->spki, k->spki_len)) != KEYD_OK ||
		    (r = put_blob(b, k->cert, k->cert_len)) != KEYD_OK ||
		    (r = kbuf_put_u32(b, (uint32_t)k->n_prev)) != KEYD_OK)
			return r;
		for (size_t v = 0; v < k->n_prev; v++) {
			int has = k->prev_has_kcv != NULL && k->prev_has_kcv[v];

			if ((r = kbuf_put_u8(b, has != 0)) != KEYD_OK ||
			    (r = kbuf_put(b, has ? k->prev_kcv[v] :
			    (const uint8_t *)"\0\0\0", 3)) != KEYD_OK)
				return r;
		}
	}
	return KEYD_OK;
}

#define TW_MAX_KEYS 1024
#define TW_MAX_PREV 64
#define TW_MAX_DER 65536

int
tw_info_get(struct kbuf *b, struct tw_info *out)
{
	uint32_t n, u, f, np;
	uint8_t au;
	int r = KEYD_ERR_PROTOCOL;

	memset(out, 0, sizeof(*out));
	if (get_str(b, out->ti.label, sizeof(out->ti.label)) != KEYD_OK ||
	    get_str(b, out->ti.manufacturer, sizeof(out->ti.manufacturer)) !=
	    KEYD_OK ||
	    get_str(b, out->ti.model, sizeof(out->ti.model)) != KEYD_OK ||
	    get_str(b, out->ti.serial, sizeof(out->ti.serial)) != KEYD_OK ||
	    kbuf_get_u32(b, &u) != KEYD_OK ||
	    kbuf_get_u32(b, &n) != KEYD_OK || n > TW_MAX_KEYS ||
	    kbuf_get_u8(b, &au) != KEYD_OK)
		return KEYD_ERR_PROTOCOL;
	out->ti.key_copies = u;
	out->has_audit_key = (au & 1) != 0;
	out->has_tn_key = (au & 2) != 0;
	if (n > 0 && (out->keys = calloc(n, sizeof(*out->keys))) == NULL)
		return KEYD_ERR_NOMEM;
	out->n_all = n;
	for (size_t i = 0; i < n; i++) {
		struct token_key *k = &out->keys[i];
		size_t len;

		if (kbuf_get_u32(b, &u) != KEYD_OK || u < TOKEN_KEY_EC_P256 ||
		    u > TOKEN_KEY_HMAC)
			goto bad;
		k->type = (enum token_key_type)u;
		if (kbuf_get_u32(b, &u) != KEYD_OK ||
		    kbuf_get_u32(b, &f) != KEYD_OK ||
		    kbuf_get_u32(b, &k->oaep_hashes) != KEYD_OK ||
		    kbuf_get_bytes(b, k->kcv, 3) != KEYD_OK)
			goto bad;
		k->bits = u;
		k->can_sign = !!(f & F_SIGN);
		k->can_decrypt = !!(f & F_DECRYPT);
		k->can_encrypt = !!(f & F_ENCRYPT);
		k->extractable = !!(f & F_EXTRACTABLE);
		k->wrap_with_trusted = !!(f & F_WWT);
		k->weak_extractable = !!(f & F_WEAK);
		k->has_kcv = !!(f & F_KCV);
		if ((r = get_blob(b, TOKEN_MAX_ID, NULL, k->id, &len)) !=
		    KEYD_OK)
			goto bad;
		k->id_len = len;
		if ((r = get_blob(b, TW_MAX_DER, &k->spki, NULL, &len)) !=
		    KEYD_OK)
			goto bad;
		k->spki_len = len;
		if ((r = get_blob(b, TW_MAX_DER, &k->cert, NULL, &len)) !=
		    KEYD_OK)
			goto bad;
		k->cert_len = len;
		r = KEYD_ERR_PROTOCOL;
		if (kbuf_get_u32(b, &np) != KEYD_OK || np > TW_MAX_PREV)
			goto bad;
		k->n_prev = np;
		if (np > 0 &&
		    ((k->prev_kcv = calloc(np, sizeof(*k->prev_kcv))) == NULL ||
		    (k->prev_has_kcv = calloc(np, sizeof(int))) == NULL)) {
			r = KEYD_ERR_NOMEM;
			goto bad;
		}
		for (size_t v = 0; v < np; v++) {
			if (kbuf_get_u8(b, &au) != KEYD_OK ||
			    kbuf_get_bytes(b, k->prev_kcv[v], 3) != KEYD_OK)
				goto bad;
			k->prev_has_kcv[v] = au != 0;
		}
	}
	if (kbuf_avail(b) != 0)
		goto bad;
	return KEYD_OK;
bad:
	tw_info_free(out);
	return r == KEYD_OK ? KEYD_ERR_PROTOCOL : r;
}

void
tw_info_free(struct tw_info *in)
{
	if (in == NULL)
		return;
	for (size_t i = 0; i < in->n_all; i++) {
		free(in->keys[i].spki);
		free(in->keys[i].cert);
		free(in->keys[i].prev_kcv);
		free(in->keys[i].prev_has_kcv);
	}
	free(in->keys);
	in->keys = NULL;
	in->n_all = 0;
}
