/*
 * srtp_libsrtp: keyd's SRTP keys driven through libsrtp2, for
 * tests/integration/srtp_libsrtp.sh. A sender protects RTP packets with the
 * master key||salt of one SDES inline string, a receiver unprotects them
 * with another's.
 *
 * usage: srtp_libsrtp probe SUITE
 *            exit 0 if this libsrtp2 supports SUITE, 77 if not
 *        srtp_libsrtp run SUITE SENDER_INLINE RECEIVER_INLINE
 *            exit 0 if the receiver unprotected every packet to the
 *            sender's bytes; 3 if it rejected every packet; 1 otherwise
 * SUITE is an SDP name (AES_CM_128_HMAC_SHA1_80, ..., AEAD_AES_256_GCM).
 */
#include <openssl/evp.h>
#include <srtp2/srtp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PACKETS 50
#define PAYLOAD 160                /* 20 ms of G.711 */
#define RTP_HDR 12
#define SSRC 0x1badcafeu
#define MAX_KEY_SALT 46

static const struct {
	const char *name;
	void (*set)(srtp_crypto_policy_t *);
	size_t key_salt_len;
} suites[] = {
	{ "AES_CM_128_HMAC_SHA1_80", srtp_crypto_policy_set_rtp_default, 30 },
	{ "AES_CM_128_HMAC_SHA1_32", srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
	    30 },
	{ "AES_256_CM_HMAC_SHA1_80", srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80,
	    46 },
	{ "AES_256_CM_HMAC_SHA1_32", srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32,
	    46 },
	/* RFC 7714: the AEAD suites have a 16-octet tag. */
	{ "AEAD_AES_128_GCM", srtp_crypto_policy_set_aes_gcm_128_16_auth, 28 },
	{ "AEAD_AES_256_GCM", srtp_crypto_policy_set_aes_gcm_256_16_auth, 44 },
};

static int
find_suite(const char *name)
{
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (strcmp(suites[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* "inline:BASE64" to key||salt of exactly want bytes. */
static int
decode_inline(const char *s, uint8_t *out, size_t want)
{
	uint8_t buf[64];
	size_t n, pad = 0;
	int got;

	if (strncmp(s, "inline:", 7) != 0)
		return -1;
	s += 7;
	n = strlen(s);
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(buf))
		return -1;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got - pad != want)
		return -1;
	memcpy(out, buf, want);
	return 0;
}

static srtp_err_status_t
make_session(int suite, uint8_t *key, int inbound, srtp_t *out)
{
	srtp_policy_t p;

	memset(&p, 0, sizeof(p));
	suites[suite].set(&p.rtp);
	suites[suite].set(&p.rtcp);
	p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_specific;
	p.ssrc.value = SSRC;
	p.key = key;
	p.window_size = 128;
	p.allow_repeat_tx = 0;
	p.next = NULL;
	return srtp_create(out, &p);
}

static void
rtp_packet(uint8_t *pkt, uint16_t seq)
{
	uint32_t ts = (uint32_t)seq * PAYLOAD;

	pkt[0] = 0x80;                 /* V=2 */
	pkt[1] = 0x00;                 /* PT 0 (PCMU) */
	pkt[2] = (uint8_t)(seq >> 8);
	pkt[3] = (uint8_t)seq;
	pkt[4] = (uint8_t)(ts >> 24);
	pkt[5] = (uint8_t)(ts >> 16);
	pkt[6] = (uint8_t)(ts >> 8);
	pkt[7] = (uint8_t)ts;
	pkt[8] = (uint8_t)(SSRC >> 24);
	pkt[9] = (uint8_t)(SSRC >> 16);
	pkt[10] = (uint8_t)(SSRC >> 8);
	pkt[11] = (uint8_t)SSRC;
	for (int i = 0; i < PAYLOAD; i++)
		pkt[RTP_HDR + i] = (uint8_t)(seq * 7 + i);
}

static int
run(int suite, const char *tx_inline, const char *rx_inline)
{
	uint8_t txkey[MAX_KEY_SALT], rxkey[MAX_KEY_SALT];
	uint8_t plain[RTP_HDR + PAYLOAD];
	uint8_t pkt[RTP_HDR + PAYLOAD + SRTP_MAX_TRAILER_LEN + 16];
	size_t want = suites[suite].key_salt_len;
	srtp_t tx = NULL, rx = NULL;
	srtp_err_status_t st;
	int len, ok = 0, rejected = 0, ret = 1;

	if (decode_inline(tx_inline, txkey, want) != 0 ||
	    decode_inline(rx_inline, rxkey, want) != 0) {
		fprintf(stderr, "srtp_libsrtp: an inline key is not %zu bytes "
		    "of base64 for %s\n", want, suites[suite].name);
		return 1;
	}
	if ((st = make_session(suite, txkey, 0, &tx)) != srtp_err_status_ok ||
	    (st = make_session(suite, rxkey, 1, &rx)) != srtp_err_status_ok) {
		fprintf(stderr, "srtp_libsrtp: srtp_create: %d\n", (int)st);
		goto out;
	}
	for (uint16_t seq = 1000; seq < 1000 + PACKETS; seq++) {
		rtp_packet(plain, seq);
		memcpy(pkt, plain, sizeof(plain));
		len = (int)sizeof(plain);
		if ((st = srtp_protect(tx, pkt, &len)) != srtp_err_status_ok) {
			fprintf(stderr, "srtp_libsrtp: srtp_protect: %d\n",
			    (int)st);
			goto out;
		}
		if (len <= (int)sizeof(plain) ||
		    memcmp(pkt + RTP_HDR, plain + RTP_HDR, PAYLOAD) == 0) {
			fprintf(stderr, "srtp_libsrtp: the packet was not "
			    "encrypted\n");
			goto out;
		}
		st = srtp_unprotect(rx, pkt, &len);
		if (st == srtp_err_status_ok && len == (int)sizeof(plain) &&
		    memcmp(pkt, plain, sizeof(plain)) == 0)
			ok++;
		else if (st != srtp_err_status_ok)
			rejected++;
	}
	printf("%s: %d of %d packets unprotected, %d rejected\n",
	    suites[suite].name, ok, PACKETS, rejected);
	ret = ok == PACKETS ? 0 : rejected == PACKETS ? 3 : 1;
out:
	if (tx != NULL)
		srtp_dealloc(tx);
	if (rx != NULL)
		srtp_dealloc(rx);
	return ret;
}

int
main(int argc, char **argv)
{
	uint8_t zero[MAX_KEY_SALT] = { 0 };
	srtp_t s = NULL;
	int suite;

	if (argc < 3 || (suite = find_suite(argv[2])) < 0) {
		fprintf(stderr, "usage: srtp_libsrtp probe SUITE | run SUITE "
		    "SENDER_INLINE RECEIVER_INLINE\n");
		return 2;
	}
	if (srtp_init() != srtp_err_status_ok) {
		fprintf(stderr, "srtp_libsrtp: srtp_init failed\n");
		return 1;
	}
	if (strcmp(argv[1], "probe") == 0 && argc == 3) {
		if (make_session(suite, zero, 0, &s) != srtp_err_status_ok)
			return 77;
		srtp_dealloc(s);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0 && argc == 5)
		return run(suite, argv[3], argv[4]);
	fprintf(stderr, "srtp_libsrtp: bad arguments\n");
	return 2;
}
