/*
 * test_slip39.c: SLIP-0039 against the 45 official test vectors
 * (tests/vectors/slip39-vectors.json), split-then-combine over every (or a
 * sample of every) subset of many policies, the checksum's locating of a
 * wrong word, and the error reports.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "keyd_err.h"
#include "ktest.h"
#include "slip39.h"

#define PASS_TREZOR "TREZOR"
#define MAX_VECTOR_SHARES 16

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* A fixed-seed PRNG for the choices of policies and subsets, so that a
 * failure can be replayed; secrets come from RAND_bytes. */
static unsigned
rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n == 0 ? 0 : (unsigned)(rng_state % n);
}

static int
decode_str(const char *s, int index, struct slip39_share *sh,
    struct slip39_diag *d)
{
	return slip39_decode(s, strlen(s), index, sh, d);
}

static int
hex_to_bytes(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(hex), i;

	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

static int
count_words(const char *s)
{
	int n = 0, in = 0;

	for (; *s; s++) {
		if (*s == ' ') {
			in = 0;
		} else if (!in) {
			in = 1;
			n++;
		}
	}
	return n;
}

/* ---- the word list ------------------------------------------------------ */

static void
test_wordlist(void)
{
	char path[4096], line[64];
	const char *src = getenv("KEYD_SOURCE_DIR");
	FILE *f;
	unsigned i;
	int bad = 0;

	CHECK(slip39_word(SLIP39_WORD_COUNT) == NULL);
	CHECK(strcmp(slip39_word(0), "academic") == 0);
	CHECK(strcmp(slip39_word(1023), "zero") == 0);
	for (i = 0; i < SLIP39_WORD_COUNT; i++) {
		const char *w = slip39_word(i);
		size_t len = strlen(w);

		if (len < 4 || len > SLIP39_WORD_MAX_LEN)
			bad++;
		if (i > 0 && strncmp(slip39_word(i - 1), w, 4) >= 0)
			bad++;  /* sorted, with unique 4-letter prefixes */
	}
	CHECKF(bad == 0, "%d word-list rule violations", bad);

	/* The compiled table is the checked-in copy, line by line. */
	snprintf(path, sizeof(path), "%s/keyd/backup/slip39_wordlist.txt",
	    src != NULL ? src : ".");
	f = fopen(path, "r");
	CHECKF(f != NULL, "cannot open %s", path);
	if (f == NULL)
		return;
	bad = 0;
	for (i = 0; fgets(line, sizeof(line), f) != NULL; i++) {
		line[strcspn(line, "\r\n")] = '\0';
		if (i >= SLIP39_WORD_COUNT || strcmp(line, slip39_word(i)) != 0)
			bad++;
	}
	fclose(f);
	CHECK_INT(i, SLIP39_WORD_COUNT);
	CHECKF(bad == 0, "%d words differ from %s", bad, path);
}

/* ---- official vectors --------------------------------------------------- */

/* The error each invalid vector must give (0: valid). Index = number. */
static const int vector_expect[46] = {
	[2] = KEYD_ERR_SHARE_CHECKSUM,
	[3] = KEYD_ERR_SHARE_FORMAT,
	[5] = KEYD_ERR_SHARE_TOO_FEW,
	[6] = KEYD_ERR_SHARE_MISMATCH,
	[7] = KEYD_ERR_SHARE_MISMATCH,
	[8] = KEYD_ERR_SHARE_MISMATCH,
	[9] = KEYD_ERR_SHARE_MISMATCH,
	[10] = KEYD_ERR_SHARE_FORMAT,
	[11] = KEYD_ERR_SHARE_DUPLICATE,
	[12] = KEYD_ERR_SHARE_MISMATCH,
	[13] = KEYD_ERR_SHARE_DIGEST,
	[14] = KEYD_ERR_SHARE_TOO_FEW,
	[15] = KEYD_ERR_SHARE_TOO_FEW,
	[16] = KEYD_ERR_SHARE_TOO_FEW,
	[21] = KEYD_ERR_SHARE_CHECKSUM,
	[22] = KEYD_ERR_SHARE_FORMAT,
	[24] = KEYD_ERR_SHARE_TOO_FEW,
	[25] = KEYD_ERR_SHARE_MISMATCH,
	[26] = KEYD_ERR_SHARE_MISMATCH,
	[27] = KEYD_ERR_SHARE_MISMATCH,
	[28] = KEYD_ERR_SHARE_MISMATCH,
	[29] = KEYD_ERR_SHARE_FORMAT,
	[30] = KEYD_ERR_SHARE_DUPLICATE,
	[31] = KEYD_ERR_SHARE_MISMATCH,
	[32] = KEYD_ERR_SHARE_DIGEST,
	[33] = KEYD_ERR_SHARE_TOO_FEW,
	[34] = KEYD_ERR_SHARE_TOO_FEW,
	[35] = KEYD_ERR_SHARE_TOO_FEW,
	[39] = KEYD_ERR_SHARE_FORMAT,
	[40] = KEYD_ERR_SHARE_FORMAT,
};

/* Runs one vector; returns the error (KEYD_OK if it combined) and fills
 * *d, ms and *mslen. */
static int
run_vector(json_object *mn, struct slip39_diag *d, uint8_t *ms,
    size_t *mslen, int check_encode)
{
	static struct slip39_share shares[MAX_VECTOR_SHARES];
	size_t n = json_object_array_length(mn), i;
	int r;

	*mslen = 0;
	if (n > MAX_VECTOR_SHARES)
		return -1000;
	for (i = 0; i < n; i++) {
		const char *s = json_object_get_string(
		    json_object_array_get_idx(mn, i));

		if ((r = decode_str(s, (int)i, &shares[i], d)) != KEYD_OK)
			return r;
		if (check_encode) {
			char again[SLIP39_MAX_MNEMONIC_LEN];

			/* Encoding the decoded share gives the mnemonic. */
			CHECK_INT(slip39_encode(&shares[i], again,
			    sizeof(again)), KEYD_OK);
			CHECKF(strcmp(again, s) == 0, "re-encoded share %zu "
			    "differs", i + 1);
		}
	}
	return slip39_combine(shares, n, PASS_TREZOR, strlen(PASS_TREZOR), ms,
	    SLIP39_MAX_SECRET_LEN, mslen, d);
}

static void
test_vectors(void)
{
	char path[4096];
	const char *src = getenv("KEYD_SOURCE_DIR");
	json_object *root;
	size_t nv, i;
	int valid = 0, invalid = 0;

	snprintf(path, sizeof(path), "%s/tests/vectors/slip39-vectors.json",
	    src != NULL ? src : ".");
	root = json_object_from_file(path);
	CHECKF(root != NULL, "cannot read %s", path);
	if (root == NULL)
		return;
	nv = json_object_array_length(root);
	CHECK_INT(nv, 45);
	for (i = 0; i < nv && i < 45; i++) {
		json_object *v = json_object_array_get_idx(root, i);
		const char *desc = json_object_get_string(
		    json_object_array_get_idx(v, 0));
		json_object *mn = json_object_array_get_idx(v, 1);
		const char *hex = json_object_get_string(
		    json_object_array_get_idx(v, 2));
		uint8_t want[SLIP39_MAX_SECRET_LEN], got[SLIP39_MAX_SECRET_LEN];
		size_t wantlen = 0, gotlen = 0;
		struct slip39_diag d;
		int expect = vector_expect[i + 1];
		int r = run_vector(mn, &d, got, &gotlen, hex[0] != '\0');

		if (hex[0] != '\0') {
			valid++;
			CHECKF(expect == 0, "vector %zu table", i + 1);
			CHECK(hex_to_bytes(hex, want, sizeof(want),
			    &wantlen) == 0);
			CHECKF(r == KEYD_OK, "vector %zu (%s): error %d (%s)",
			    i + 1, desc, r, keyd_strerror(r));
			CHECKF(r != KEYD_OK || (gotlen == wantlen &&
			    memcmp(got, want, wantlen) == 0),
			    "vector %zu (%s): wrong master secret", i + 1, desc);
		} else {
			invalid++;
			CHECKF(r == expect, "vector %zu (%s): got %d (%s), want "
			    "%d (%s)", i + 1, desc, r, keyd_strerror(r), expect,
			    keyd_strerror(expect));
			CHECK_INT(d.code, r);
		}
	}
	CHECK_INT(valid, 15);
	CHECK_INT(invalid, 30);

	/* Details of some reports. Vectors 2 and 21: the last word was
	 * changed; the checksum names it. */
	{
		struct slip39_diag d;
		uint8_t ms[SLIP39_MAX_SECRET_LEN];
		size_t msl;
		char msg[512];

		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 1), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_CHECKSUM);
		CHECK_INT(d.share, 0);
		CHECK_INT(d.word, 19);
		CHECK(strcmp(slip39_word((unsigned)d.word_index), "kidney") == 0);
		slip39_diag_format(&d, msg, sizeof(msg));
		CHECKF(strcmp(msg, "share 1: word 20 (\"kidney\") is probably "
		    "wrong: checksum does not match; compare that word with the "
		    "written share") == 0, "message: %s", msg);
		/* A caller's own name for the share replaces "share N", so
		 * that keyd-backup names it once, not "share 1 (F): share
		 * 1: ...". */
		slip39_diag_format_as(&d, "share 1 (sheet.txt)", msg,
		    sizeof(msg));
		CHECKF(strcmp(msg, "share 1 (sheet.txt): word 20 (\"kidney\") "
		    "is probably wrong: checksum does not match; compare that "
		    "word with the written share") == 0, "message: %s", msg);

		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 20), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_CHECKSUM);
		CHECK_INT(d.word, 32);
		CHECK(strcmp(slip39_word((unsigned)d.word_index), "lunar") == 0);

		/* 3: padding; 6: identifiers; 7: iteration exponents; 8: group
		 * thresholds (third share); 11: duplicate member index; 12:
		 * member thresholds; 16: one group short of members. */
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 2), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_FORMAT);
		CHECK(d.field != NULL && strcmp(d.field, "padding") == 0);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 5), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_MISMATCH);
		CHECK(d.share == 1 && d.other == 0);
		CHECK(d.field != NULL && strcmp(d.field, "identifier") == 0);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 6), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_MISMATCH);
		CHECK(d.field != NULL &&
		    strcmp(d.field, "iteration exponent") == 0);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 7), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_MISMATCH);
		CHECK(d.share == 2 && d.field != NULL &&
		    strcmp(d.field, "group threshold") == 0);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 10), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_DUPLICATE);
		CHECK(d.share == 1 && d.other == 0 && d.member == 2);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 11), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_MISMATCH);
		CHECK(d.field != NULL &&
		    strcmp(d.field, "member threshold") == 0);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 15), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_TOO_FEW);
		CHECK(d.group == 3 && d.need == 2 && d.have == 1);
		slip39_diag_format(&d, msg, sizeof(msg));
		CHECKF(strstr(msg, "group 4") != NULL, "message: %s", msg);
		CHECK_INT(run_vector(json_object_array_get_idx(
		    json_object_array_get_idx(root, 38), 1), &d, ms, &msl, 0),
		    KEYD_ERR_SHARE_FORMAT);
		CHECK(d.field != NULL && strcmp(d.field, "length") == 0 &&
		    d.have == 19);
	}
	json_object_put(root);
}

/* The EMS, and encrypt/decrypt, on a valid vector: encrypting the vector's
 * master secret with its id, ext and e gives the EMS the shares hold. */
static void
test_vector_ems(void)
{
	/* Vector 42 (ext = 1, e = 3) and vector 4 (ext = 0, e = 2). */
	static const char *const v42 = "testify swimming academic academic "
	    "column loyalty smear include exotic bedroom exotic wrist lobe "
	    "cover grief golden smart junior estimate learn";
	static const char *const v4[2] = {
	    "shadow pistol academic always adequate wildlife fancy gross oasis "
	    "cylinder mustang wrist rescue view short owner flip making coding "
	    "armed",
	    "shadow pistol academic acid actress prayer class unknown daughter "
	    "sweater depict flip twice unkind craft early superior advocate "
	    "guest smoking" };
	struct slip39_share sh[2];
	struct slip39_ems ems, ems2;
	struct slip39_diag d;
	uint8_t ms[SLIP39_MAX_SECRET_LEN], want[16];
	size_t len = 0;

	CHECK_INT(decode_str(v42, 0, &sh[0], &d), KEYD_OK);
	CHECK_INT(sh[0].ext, 1);
	CHECK_INT(sh[0].iteration_exp, 3);
	CHECK_INT(slip39_recover_ems(sh, 1, &ems, &d), KEYD_OK);
	CHECK_INT(slip39_decrypt(&ems, PASS_TREZOR, 6, ms), KEYD_OK);
	CHECK(hex_to_bytes("1679b4516e0ee5954351d288a838f45e", want,
	    sizeof(want), &len) == 0);
	CHECK(memcmp(ms, want, 16) == 0);
	CHECK_INT(slip39_encrypt(ms, 16, PASS_TREZOR, 6, ems.id, ems.ext,
	    ems.iteration_exp, &ems2), KEYD_OK);
	CHECK(ems2.len == 16 && memcmp(ems2.value, ems.value, 16) == 0);
	/* ext = 1 does not salt with the id: another id, same EMS. */
	CHECK_INT(slip39_encrypt(ms, 16, PASS_TREZOR, 6, ems.id ^ 1, 1,
	    ems.iteration_exp, &ems2), KEYD_OK);
	CHECK(memcmp(ems2.value, ems.value, 16) == 0);

	CHECK_INT(decode_str(v4[0], 0, &sh[0], &d), KEYD_OK);
	CHECK_INT(decode_str(v4[1], 1, &sh[1], &d), KEYD_OK);
	CHECK_INT(sh[0].ext, 0);
	CHECK_INT(slip39_recover_ems(sh, 2, &ems, &d), KEYD_OK);
	CHECK_INT(slip39_decrypt(&ems, PASS_TREZOR, 6, ms), KEYD_OK);
	CHECK(hex_to_bytes("b43ceb7e57a0ea8766221624d01b0864", want,
	    sizeof(want), &len) == 0);
	CHECK(memcmp(ms, want, 16) == 0);
	CHECK_INT(slip39_encrypt(ms, 16, PASS_TREZOR, 6, ems.id, 0, 2, &ems2),
	    KEYD_OK);
	CHECK(memcmp(ems2.value, ems.value, 16) == 0);
	/* ext = 0 salts with the id: another id, another EMS. */
	CHECK_INT(slip39_encrypt(ms, 16, PASS_TREZOR, 6, ems.id ^ 1, 0, 2,
	    &ems2), KEYD_OK);
	CHECK(memcmp(ems2.value, ems.value, 16) != 0);
	/* A wrong passphrase is not detected; it gives another secret. */
	CHECK_INT(slip39_decrypt(&ems, "TREZOS", 6, ms), KEYD_OK);
	CHECK(memcmp(ms, want, 16) != 0);
}

/* ---- split, then combine ------------------------------------------------ */

struct policy {
	unsigned gt;
	size_t g;
	struct slip39_group groups[SLIP39_MAX_GROUPS];
};

static struct slip39_share all[SLIP39_MAX_SHARES];
static struct slip39_share pick[SLIP39_MAX_SHARES];
static int policy_failures;

/* Combines the picked shares (shuffled) and compares with want. */
static void
try_pick(size_t n, const struct slip39_ems *want, int expect,
    const char *field, const char *what)
{
	struct slip39_ems got;
	struct slip39_diag d;
	size_t i;
	int r;

	for (i = n; i > 1; i--) {
		size_t j = rnd((unsigned)i);
		struct slip39_share t = pick[i - 1];

		pick[i - 1] = pick[j];
		pick[j] = t;
	}
	r = slip39_recover_ems(pick, n, &got, &d);
	if (r != expect || (r == KEYD_OK && (got.len != want->len ||
	    got.id != want->id || got.ext != want->ext ||
	    got.iteration_exp != want->iteration_exp ||
	    memcmp(got.value, want->value, want->len) != 0)) ||
	    (r != KEYD_OK && field != NULL && (d.field == NULL ||
	    strcmp(d.field, field) != 0))) {
		if (policy_failures++ < 10)
			fprintf(stderr, "%s: %zu shares: got %d (%s), want %d\n",
			    what, n, r, d.field ? d.field : "-", expect);
	}
}

/* Qualifying (popcount >= t) member masks of an n-member group. */
static size_t
qualifying(unsigned t, unsigned n, unsigned *masks, size_t cap)
{
	unsigned m;
	size_t k = 0;

	for (m = 1; m < (1u << n) && k < cap; m++)
		if ((unsigned)__builtin_popcount(m) >= t)
			masks[k++] = m;
	return k;
}

/* A random qualifying mask for big groups: a random size from t to n,
 * then that many distinct random members. */
static unsigned
random_qualifying(unsigned t, unsigned n)
{
	unsigned m = 0, k = t + rnd(n - t + 1), have = 0;

	while (have < k) {
		unsigned j = rnd(n);

		if (!(m & (1u << j))) {
			m |= 1u << j;
			have++;
		}
	}
	return m;
}

#define MAX_QMASKS 64
#define MAX_COMBOS 512

static void
run_policy(const struct policy *p, int ext, size_t len, const char *what)
{
	struct slip39_mnemonic *m = NULL;
	struct slip39_ems ems;
	struct slip39_diag d;
	size_t count = 0, start[SLIP39_MAX_GROUPS + 1], i, g;
	unsigned gmask, nmasks, sample;
	int small = p->g <= 5;

	for (g = 0; g < p->g; g++)
		if (p->groups[g].member_count > 5)
			small = 0;
	memset(&ems, 0, sizeof(ems));
	ems.id = (uint16_t)rnd(SLIP39_MAX_ID + 1);
	ems.ext = (uint8_t)ext;
	ems.iteration_exp = (uint8_t)rnd(16);
	ems.len = len;
	CHECK(RAND_bytes(ems.value, (int)len) == 1);
	CHECK_INT(slip39_split_ems(&ems, p->gt, p->groups, p->g, &m, &count),
	    KEYD_OK);
	if (m == NULL)
		return;

	start[0] = 0;
	for (g = 0; g < p->g; g++)
		start[g + 1] = start[g] + p->groups[g].member_count;
	CHECK_INT(count, start[p->g]);
	for (i = 0; i < count; i++) {
		int r = decode_str(m[i].text, (int)i, &all[i], &d);

		CHECKF(r == KEYD_OK, "%s: share %zu does not decode (%d)", what,
		    i, r);
		CHECK_INT(count_words(m[i].text), SLIP39_WORDS_FOR(len));
		CHECK_INT(all[i].id, ems.id);
		CHECK_INT(all[i].ext, ext);
		CHECK_INT(all[i].iteration_exp, ems.iteration_exp);
		CHECK_INT(all[i].group_threshold, p->gt);
		CHECK_INT(all[i].group_count, p->g);
		CHECK_INT(all[i].group_index, m[i].group_index);
		CHECK_INT(all[i].member_index, m[i].member_index);
		CHECK_INT(all[i].member_threshold,
		    p->groups[m[i].group_index].member_threshold);
		CHECK_INT(all[i].value_len, len);
		/* Shares of one split share their first two words; of one
		 * group, their first three. */
		if (i > 0) {
			size_t w2 = strcspn(m[0].text, " ");

			w2 += 1 + strcspn(m[0].text + w2 + 1, " ");
			CHECK(strncmp(m[i].text, m[0].text, w2) == 0);
		}
	}

	/* Every group subset for small policies, a sample otherwise. */
	nmasks = small ? (1u << p->g) - 1 : 40;
	for (sample = 0; sample < nmasks; sample++) {
		unsigned qm[SLIP39_MAX_GROUPS][MAX_QMASKS];
		size_t nq[SLIP39_MAX_GROUPS], combos = 1, c, sel[16], nsel = 0;
		size_t k;
		int enough, exhaustive;

		if (small)
			gmask = sample + 1;
		else if (sample == 0)
			gmask = (1u << p->g) - 1;
		else
			gmask = rnd((1u << p->g) - 1) + 1;
		for (g = 0; g < p->g; g++) {
			if (!(gmask & (1u << g)))
				continue;
			sel[nsel++] = g;
			nq[g] = small ? qualifying(
			    p->groups[g].member_threshold,
			    p->groups[g].member_count, qm[g], MAX_QMASKS) : 0;
			if (combos <= MAX_COMBOS)
				combos *= small ? nq[g] : MAX_COMBOS;
		}
		enough = nsel >= p->gt;
		exhaustive = small && combos <= MAX_COMBOS;
		if (!exhaustive)
			combos = 6;
		for (c = 0; c < combos; c++) {
			size_t n = 0, rest = c;

			for (k = 0; k < nsel; k++) {
				const struct slip39_group *gr =
				    &p->groups[sel[k]];
				unsigned mm, j;

				if (exhaustive) {
					mm = qm[sel[k]][rest % nq[sel[k]]];
					rest /= nq[sel[k]];
				} else {
					mm = random_qualifying(
					    gr->member_threshold,
					    gr->member_count);
				}
				for (j = 0; j < gr->member_count; j++)
					if (mm & (1u << j))
						pick[n++] = all[start[sel[k]] + j];
			}
			try_pick(n, &ems, enough ? KEYD_OK :
			    KEYD_ERR_SHARE_TOO_FEW, enough ? NULL : "groups",
			    what);
		}
		/* One selected group short of its threshold: too few. */
		for (k = 0; enough && k < nsel; k++) {
			const struct slip39_group *gr = &p->groups[sel[k]];
			size_t n = 0, kk;
			unsigned j, short_by;

			if (gr->member_threshold < 2)
				continue;
			short_by = 1 + rnd(gr->member_threshold - 1);
			for (kk = 0; kk < nsel; kk++) {
				const struct slip39_group *g2 =
				    &p->groups[sel[kk]];
				unsigned take = kk == k ?
				    g2->member_threshold - short_by :
				    g2->member_threshold;

				for (j = 0; j < take; j++)
					pick[n++] = all[start[sel[kk]] + j];
			}
			try_pick(n, &ems, KEYD_ERR_SHARE_TOO_FEW,
			    p->g == 1 ? "shares" : "members", what);
			break;
		}
	}
	slip39_mnemonics_free(m, count);
}

static void
random_policy(struct policy *p, size_t maxg, unsigned maxn)
{
	size_t g;

	p->g = 1 + rnd((unsigned)maxg);
	p->gt = 1 + rnd((unsigned)p->g);
	for (g = 0; g < p->g; g++) {
		unsigned n = 1 + rnd(maxn);
		unsigned t = n == 1 ? 1 : 2 + rnd(n - 1);

		p->groups[g].member_count = n;
		p->groups[g].member_threshold = t;
	}
}

static void
test_split_combine(void)
{
	static const size_t lens[] = { 16, 32, 20, 64 };
	struct policy p;
	char what[128];
	unsigned t, n, i, g;

	policy_failures = 0;
	/* Every single-group T-of-N with N <= 5, over every subset. */
	for (n = 1; n <= 5; n++) {
		for (t = n == 1 ? 1 : 2; t <= n; t++) {
			memset(&p, 0, sizeof(p));
			p.gt = 1;
			p.g = 1;
			p.groups[0].member_threshold = t;
			p.groups[0].member_count = n;
			snprintf(what, sizeof(what), "%u-of-%u", t, n);
			run_policy(&p, (int)(t + n) % 2, lens[(t + n) % 4],
			    what);
		}
	}
	/* The specification's example: 2 of 4 groups, 1/1, 1/1, 3/5, 2/6. */
	memset(&p, 0, sizeof(p));
	p.gt = 2;
	p.g = 4;
	p.groups[0] = (struct slip39_group){ 1, 1 };
	p.groups[1] = (struct slip39_group){ 1, 1 };
	p.groups[2] = (struct slip39_group){ 3, 5 };
	p.groups[3] = (struct slip39_group){ 2, 5 };
	run_policy(&p, 1, 32, "2 of (1/1, 1/1, 3/5, 2/5)");
	p.groups[3] = (struct slip39_group){ 2, 6 };
	run_policy(&p, 0, 16, "2 of (1/1, 1/1, 3/5, 2/6)");
	/* Random group policies with up to 4 groups of up to 4 members. */
	for (i = 0; i < 30; i++) {
		memset(&p, 0, sizeof(p));
		random_policy(&p, 4, 4);
		snprintf(what, sizeof(what), "random policy %u (GT %u of %zu)",
		    i, p.gt, p.g);
		run_policy(&p, (int)(i % 2), lens[i % 4], what);
	}
	/* Bigger: 16 shares; 16 groups of 1/1; 16 groups of up to 16. */
	for (t = 2; t <= 16; t += 7) {
		memset(&p, 0, sizeof(p));
		p.gt = 1;
		p.g = 1;
		p.groups[0] = (struct slip39_group){ t, 16 };
		snprintf(what, sizeof(what), "%u-of-16", t);
		run_policy(&p, (int)(t % 2), 32, what);
	}
	for (t = 1; t <= 16; t += 5) {
		memset(&p, 0, sizeof(p));
		p.gt = t;
		p.g = 16;
		for (g = 0; g < 16; g++)
			p.groups[g] = (struct slip39_group){ 1, 1 };
		snprintf(what, sizeof(what), "%u of 16 groups of 1/1", t);
		run_policy(&p, 1, 16, what);
	}
	memset(&p, 0, sizeof(p));
	p.gt = 5;
	p.g = 16;
	for (g = 0; g < 16; g++)
		p.groups[g] = (struct slip39_group){ 1 + g, 16 };
	p.groups[0] = (struct slip39_group){ 1, 1 };
	run_policy(&p, 1, 64, "5 of 16 groups of t/16");
	for (i = 0; i < 6; i++) {
		memset(&p, 0, sizeof(p));
		random_policy(&p, 16, 16);
		snprintf(what, sizeof(what), "big random policy %u (GT %u of "
		    "%zu)", i, p.gt, p.g);
		run_policy(&p, (int)(i % 2), lens[i % 4], what);
	}
	CHECKF(policy_failures == 0, "%d split/combine cases failed",
	    policy_failures);
}

/* The whole path with passphrases: slip39_split, decode, slip39_combine. */
static void
test_passphrases(void)
{
	static const char *const passes[] = {
		"", "TREZOR", " correct horse ~ battery staple! ",
	};
	static const struct slip39_group g23[1] = { { 2, 3 } };
	static const struct slip39_group gg[3] = { { 2, 3 }, { 1, 1 },
	    { 3, 4 } };
	uint8_t ms[SLIP39_MAX_SECRET_LEN], got[SLIP39_MAX_SECRET_LEN];
	struct slip39_share sh[8];
	struct slip39_mnemonic *m = NULL;
	struct slip39_diag d;
	size_t count = 0, glen, i, k;
	unsigned pi;

	for (pi = 0; pi < 3; pi++) {
		const char *pass = passes[pi];
		size_t len = pi == 2 ? 64 : 16 + 16 * pi;
		int ext = (int)(pi % 2);

		CHECK(RAND_bytes(ms, (int)len) == 1);
		CHECK_INT(slip39_split(ms, len, pass, strlen(pass), 1, g23, 1,
		    ext, 0, &m, &count), KEYD_OK);
		CHECK_INT(count, 3);
		for (i = 0; i < count; i++)
			CHECK_INT(decode_str(m[i].text, (int)i, &sh[i], &d),
			    KEYD_OK);
		CHECK_INT(slip39_combine(sh + 1, 2, pass, strlen(pass), got,
		    sizeof(got), &glen, &d), KEYD_OK);
		CHECK(glen == len && memcmp(got, ms, len) == 0);
		/* Another passphrase: no error, another secret. */
		CHECK_INT(slip39_combine(sh, 2, "x", 1, got, sizeof(got), &glen,
		    &d), KEYD_OK);
		CHECK(glen == len && memcmp(got, ms, len) != 0);
		/* Too small an output buffer. */
		CHECK_INT(slip39_combine(sh, 2, pass, strlen(pass), got, len - 1,
		    &glen, &d), KEYD_ERR_BUFFER_TOO_SMALL);
		CHECK_INT(glen, 0);
		slip39_mnemonics_free(m, count);
		m = NULL;
	}

	/* Groups, default iteration exponent 1, ext = 1. */
	CHECK(RAND_bytes(ms, 32) == 1);
	CHECK_INT(slip39_split(ms, 32, "TREZOR", 6, 2, gg, 3, 1, 1, &m, &count),
	    KEYD_OK);
	CHECK_INT(count, 8);
	k = 0;
	/* Group 2 (1/1) and group 3 (3 of 4: members 1, 2, 3). */
	CHECK_INT(decode_str(m[3].text, 0, &sh[k++], &d), KEYD_OK);
	for (i = 5; i < 8; i++) {
		CHECK_INT(decode_str(m[i].text, (int)k, &sh[k], &d), KEYD_OK);
		k++;
	}
	CHECK_INT(slip39_combine(sh, k, "TREZOR", 6, got, sizeof(got), &glen,
	    &d), KEYD_OK);
	CHECK(glen == 32 && memcmp(got, ms, 32) == 0);
	/* Bad passphrases are refused, before any work. */
	CHECK_INT(slip39_combine(sh, k, "TRE\tZOR", 7, got, sizeof(got), &glen,
	    &d), KEYD_ERR_INVALID_ARG);
	CHECK(d.field != NULL && strcmp(d.field, "passphrase") == 0);
	slip39_mnemonics_free(m, count);
	m = NULL;
	count = 0;
}

static void
test_split_errors(void)
{
	static const struct slip39_group ok[1] = { { 2, 3 } };
	static const struct slip39_group one_of_two[1] = { { 1, 2 } };
	static const struct slip39_group three_of_two[1] = { { 3, 2 } };
	static const struct slip39_group seventeen[1] = { { 2, 17 } };
	struct slip39_group many[SLIP39_MAX_GROUPS + 1];
	struct slip39_mnemonic *m = (struct slip39_mnemonic *)1;
	uint8_t ms[SLIP39_MAX_SECRET_LEN + 2];
	size_t count = 7, i;
	char bad[2] = { 'a', 0x7f };

	memset(ms, 0x42, sizeof(ms));
	for (i = 0; i <= SLIP39_MAX_GROUPS; i++)
		many[i] = (struct slip39_group){ 1, 1 };
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, one_of_two, 1, 1, 0, &m,
	    &count), KEYD_ERR_INVALID_ARG);
	CHECK(m == NULL && count == 0);
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, three_of_two, 1, 1, 0, &m,
	    &count), KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, seventeen, 1, 1, 0, &m,
	    &count), KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 2, ok, 1, 1, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 0, ok, 1, 1, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, many, SLIP39_MAX_GROUPS + 1,
	    1, 0, &m, &count), KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 14, "", 0, 1, ok, 1, 1, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 17, "", 0, 1, ok, 1, 1, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, SLIP39_MAX_SECRET_LEN + 2, "", 0, 1, ok, 1,
	    1, 0, &m, &count), KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, bad, 2, 1, ok, 1, 1, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, ok, 1, 2, 0, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK_INT(slip39_split(ms, 16, "", 0, 1, ok, 1, 1, 16, &m, &count),
	    KEYD_ERR_INVALID_ARG);
	CHECK(m == NULL && count == 0);
	/* 16 groups of 1/1 and the longest secret are fine. */
	CHECK_INT(slip39_split(ms, SLIP39_MAX_SECRET_LEN, "", 0, 16, many,
	    SLIP39_MAX_GROUPS, 1, 0, &m, &count), KEYD_OK);
	CHECK_INT(count, 16);
	CHECK_INT(count_words(m[15].text), SLIP39_MAX_WORDS);
	slip39_mnemonics_free(m, count);
}

/* ---- checksum and parsing ----------------------------------------------- */

/* Replaces word p of text (single spaces) by word w into out. */
static void
replace_word(const char *text, int p, const char *w, char *out, size_t cap)
{
	const char *s = text;
	size_t o = 0;
	int i;

	for (i = 0; i < p; i++)
		s = strchr(s, ' ') + 1;
	o = (size_t)(s - text);
	memcpy(out, text, o);
	snprintf(out + o, cap - o, "%s%s", w,
	    strchr(s, ' ') != NULL ? strchr(s, ' ') : "");
}

static void
check_mutations(const char *text, const char *what)
{
	struct slip39_share sh;
	struct slip39_diag d;
	char mut[SLIP39_MAX_MNEMONIC_LEN + 64], msg[512], want[64];
	int n = count_words(text), p, bad = 0;

	CHECK_INT(decode_str(text, 0, &sh, &d), KEYD_OK);
	for (p = 0; p < n; p++) {
		char orig[16];
		const char *s = text;
		unsigned idx, neu;
		int i;

		for (i = 0; i < p; i++)
			s = strchr(s, ' ') + 1;
		snprintf(orig, sizeof(orig), "%.*s", (int)strcspn(s, " "), s);
		for (idx = 0; strcmp(slip39_word(idx), orig) != 0; idx++)
			;
		neu = (idx + 1 + rnd(SLIP39_WORD_COUNT - 1)) % SLIP39_WORD_COUNT;
		replace_word(text, p, slip39_word(neu), mut, sizeof(mut));
		if (decode_str(mut, 3, &sh, &d) != KEYD_ERR_SHARE_CHECKSUM ||
		    d.word != p || d.word_index != (int)neu || d.share != 3) {
			if (bad++ < 5)
				fprintf(stderr, "%s: word %d: code %d word %d\n",
				    what, p + 1, d.code, d.word + 1);
			continue;
		}
		slip39_diag_format(&d, msg, sizeof(msg));
		snprintf(want, sizeof(want), "share 4: word %d (\"%s\")", p + 1,
		    slip39_word(neu));
		if (strncmp(msg, want, strlen(want)) != 0 && bad++ < 5)
			fprintf(stderr, "%s: message %s\n", what, msg);
		/* A misspelt word is named as not a word. */
		replace_word(text, p, "qqqq", mut, sizeof(mut));
		if (decode_str(mut, 0, &sh, &d) != KEYD_ERR_SHARE_FORMAT ||
		    d.word != p || strcmp(d.field, "word") != 0)
			bad++;
	}
	CHECKF(bad == 0, "%s: %d mutations not located", what, bad);

	/* Two words swapped: no single word explains it. */
	{
		char w0[16], w1[16];
		const char *s1 = strchr(text, ' ') + 1;

		snprintf(w0, sizeof(w0), "%.*s", (int)strcspn(text, " "), text);
		snprintf(w1, sizeof(w1), "%.*s", (int)strcspn(s1, " "), s1);
		if (strcmp(w0, w1) != 0) {
			replace_word(text, 0, w1, mut, sizeof(mut));
			replace_word(mut, 1, w0, msg, sizeof(msg));
			CHECK_INT(decode_str(msg, 0, &sh, &d),
			    KEYD_ERR_SHARE_CHECKSUM);
			CHECK_INT(d.word, -1);
		}
	}
}

static void
test_checksum_locate(void)
{
	static const struct slip39_group g[1] = { { 2, 3 } };
	struct slip39_mnemonic *m = NULL;
	uint8_t ms[SLIP39_MAX_SECRET_LEN];
	size_t count = 0;
	static const size_t lens[] = { 16, 32, 64 };
	unsigned i;

	check_mutations("duckling enlarge academic academic agency result "
	    "length solution fridge kidney coal piece deal husband erode duke "
	    "ajar critical decision keyboard", "vector 1");
	check_mutations("testify swimming academic academic column loyalty "
	    "smear include exotic bedroom exotic wrist lobe cover grief golden "
	    "smart junior estimate learn", "vector 42 (ext)");
	for (i = 0; i < 3; i++) {
		CHECK(RAND_bytes(ms, (int)lens[i]) == 1);
		CHECK_INT(slip39_split(ms, lens[i], "", 0, 1, g, 1, (int)(i % 2),
		    0, &m, &count), KEYD_OK);
		if (m != NULL)
			check_mutations(m[1].text, "generated");
		slip39_mnemonics_free(m, count);
		m = NULL;
	}
}

static void
test_parsing(void)
{
	static const char *const v1 = "duckling enlarge academic academic "
	    "agency result length solution fridge kidney coal piece deal "
	    "husband erode duke ajar critical decision keyboard";
	struct slip39_share sh, sh2;
	struct slip39_diag d;
	char buf[4 * SLIP39_MAX_MNEMONIC_LEN + 64], msg[512];
	size_t i;

	CHECK_INT(decode_str(v1, 0, &sh, &d), KEYD_OK);
	CHECK_INT(sh.id, 7945);
	CHECK_INT(sh.ext, 0);
	CHECK_INT(sh.iteration_exp, 0);
	CHECK_INT(sh.group_threshold, 1);
	CHECK_INT(sh.member_threshold, 1);
	CHECK_INT(sh.value_len, 16);
	/* Extra whitespace and capitals are tolerated. */
	snprintf(buf, sizeof(buf), "  \tDuckling   ENLARGE academic academic "
	    "agency result length solution fridge kidney coal piece deal "
	    "husband erode duke ajar critical decision keyboard \r\n");
	CHECK_INT(decode_str(buf, 0, &sh2, &d), KEYD_OK);
	CHECK(memcmp(&sh, &sh2, sizeof(sh)) == 0);
	/* Not NUL-terminated: only len bytes are read. */
	memcpy(buf, v1, strlen(v1));
	buf[strlen(v1)] = 'x';
	CHECK_INT(slip39_decode(buf, strlen(v1), 0, &sh2, &d), KEYD_OK);
	/* Empty, too short, too long, junk. */
	CHECK_INT(decode_str("", 2, &sh, &d), KEYD_ERR_SHARE_FORMAT);
	CHECK(d.share == 2 && strcmp(d.field, "empty") == 0);
	CHECK_INT(decode_str("duckling enlarge academic", 0, &sh, &d),
	    KEYD_ERR_SHARE_FORMAT);
	CHECK(strcmp(d.field, "length") == 0 && d.have == 3);
	slip39_diag_format(&d, msg, sizeof(msg));
	CHECKF(strncmp(msg, "share 1 has 3 words", 19) == 0, "%s", msg);
	buf[0] = '\0';
	for (i = 0; i < SLIP39_MAX_WORDS + 1; i++)
		strcat(buf, "academic ");
	CHECK_INT(decode_str(buf, 0, &sh, &d), KEYD_ERR_SHARE_FORMAT);
	CHECK(strcmp(d.field, "length") == 0 &&
	    d.have == SLIP39_MAX_WORDS + 1);
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	CHECK_INT(decode_str(buf, 0, &sh, &d), KEYD_ERR_SHARE_FORMAT);
	CHECK(strcmp(d.field, "too long") == 0);
	CHECK_INT(decode_str("academicx enlarge", 0, &sh, &d),
	    KEYD_ERR_SHARE_FORMAT);
	CHECK(d.word == 0 && strcmp(d.field, "word") == 0);
	CHECK_INT(decode_str("duckling acad\xc3\xa9mic", 0, &sh, &d),
	    KEYD_ERR_SHARE_FORMAT);
	CHECK(d.word == 1);
	CHECK_INT(slip39_decode("duckling acid\0", 14, 0, &sh, &d),
	    KEYD_ERR_SHARE_FORMAT);
	CHECK(d.word == 1);
	/* Prefixes are not accepted: only whole words. */
	CHECK_INT(decode_str("duck enlarge", 0, &sh, &d), KEYD_ERR_SHARE_FORMAT);
	CHECK(d.word == 0);

	/* A share whose group index is not below its group count, and one
	 * whose group threshold exceeds its group count, made by hand. */
	CHECK_INT(decode_str(v1, 0, &sh, &d), KEYD_OK);
	sh.group_index = 1;
	CHECK_INT(slip39_encode(&sh, buf, sizeof(buf)), KEYD_ERR_INVALID_ARG);
	sh.group_count = 2;
	CHECK_INT(slip39_encode(&sh, buf, sizeof(buf)), KEYD_OK);
	CHECK_INT(decode_str(buf, 0, &sh2, &d), KEYD_OK);
	CHECK_INT(slip39_encode(&sh, buf, 10), KEYD_ERR_BUFFER_TOO_SMALL);
}

/* Combining errors name the right shares. */
static void
test_combine_reports(void)
{
	static const struct slip39_group g[2] = { { 2, 3 }, { 3, 5 } };
	struct slip39_mnemonic *m = NULL, *m2 = NULL;
	struct slip39_share sh[6];
	struct slip39_ems ems;
	struct slip39_diag d;
	uint8_t ms[32];
	size_t count = 0, count2 = 0;
	char msg[512];
	int i;

	CHECK(RAND_bytes(ms, sizeof(ms)) == 1);
	CHECK_INT(slip39_split(ms, 32, "", 0, 2, g, 2, 1, 0, &m, &count),
	    KEYD_OK);
	CHECK_INT(slip39_split(ms, 32, "", 0, 2, g, 2, 1, 0, &m2, &count2),
	    KEYD_OK);
	if (m == NULL || m2 == NULL)
		goto out;
	/* Group 1: members 0, 1; group 2: members 0, 1, 2. */
	for (i = 0; i < 2; i++)
		CHECK_INT(decode_str(m[i].text, i, &sh[i], &d), KEYD_OK);
	for (i = 0; i < 3; i++)
		CHECK_INT(decode_str(m[3 + i].text, 2 + i, &sh[2 + i], &d),
		    KEYD_OK);
	CHECK_INT(slip39_recover_ems(sh, 5, &ems, &d), KEYD_OK);
	CHECK_INT(slip39_recover_ems(sh, 0, &ems, &d), KEYD_ERR_SHARE_TOO_FEW);

	/* A share of another split at position 4. */
	CHECK_INT(decode_str(m2[5].text, 3, &sh[5], &d), KEYD_OK);
	sh[3] = sh[5];
	CHECK_INT(slip39_recover_ems(sh, 5, &ems, &d),
	    KEYD_ERR_SHARE_MISMATCH);
	CHECK(d.share == 3 && d.other == 0 &&
	    strcmp(d.field, "identifier") == 0);
	slip39_diag_format(&d, msg, sizeof(msg));
	CHECKF(strncmp(msg, "share 4 comes from a different split than share "
	    "1 (the identifier differs)", 74) == 0, "%s", msg);
	CHECK_INT(decode_str(m[4].text, 3, &sh[3], &d), KEYD_OK);

	/* The same share twice. */
	sh[5] = sh[1];
	CHECK_INT(slip39_recover_ems(sh, 6, &ems, &d),
	    KEYD_ERR_SHARE_DUPLICATE);
	CHECK(d.share == 5 && d.other == 1 &&
	    strcmp(d.field, "same share") == 0);
	slip39_diag_format(&d, msg, sizeof(msg));
	CHECKF(strcmp(msg, "share 6 is the same as share 2; give each share "
	    "only once") == 0, "%s", msg);
	/* Same member index, different value. */
	sh[5].value[3] ^= 1;
	CHECK_INT(slip39_recover_ems(sh, 6, &ems, &d),
	    KEYD_ERR_SHARE_DUPLICATE);
	CHECK(strcmp(d.field, "member index") == 0 && d.member == 1 &&
	    d.group == 0);

	/* An altered value: the digest of that group fails. */
	sh[3].value[0] ^= 0x80;
	CHECK_INT(slip39_recover_ems(sh, 5, &ems, &d), KEYD_ERR_SHARE_DIGEST);
	CHECK(d.group == 1 && strcmp(d.field, "members") == 0);
	sh[3].value[0] ^= 0x80;

	/* Group 2 short of one member. */
	CHECK_INT(slip39_recover_ems(sh, 4, &ems, &d), KEYD_ERR_SHARE_TOO_FEW);
	CHECK(d.group == 1 && d.need == 3 && d.have == 2 && d.share == 2);
	slip39_diag_format(&d, msg, sizeof(msg));
	CHECKF(strncmp(msg, "group 2: 2 of the 3 shares it needs", 35) == 0,
	    "%s", msg);
	/* Only group 1. */
	CHECK_INT(slip39_recover_ems(sh, 2, &ems, &d), KEYD_ERR_SHARE_TOO_FEW);
	CHECK(d.need == 2 && d.have == 1 && strcmp(d.field, "groups") == 0);
	/* A hand-made share with a bad field. */
	sh[4].member_threshold = 0;
	CHECK_INT(slip39_recover_ems(sh, 5, &ems, &d), KEYD_ERR_SHARE_FORMAT);
	CHECK(d.share == 4);
out:
	slip39_mnemonics_free(m, count);
	slip39_mnemonics_free(m2, count2);
}

/* ---- completing typed words ------------------------------------------- */

/* slip39_word_prefix against the list itself: every word's first four
 * letters name it alone (SLIP-0039 "Wordlist"), shorter prefixes may name
 * several, anything but letters names none. */
static void
test_word_prefix(void)
{
	char w[SLIP39_WORD_MAX_LEN + 1], up[SLIP39_WORD_MAX_LEN + 1];
	unsigned i, bad = 0;

	for (i = 0; i < SLIP39_WORD_COUNT; i++) {
		const char *word = slip39_word(i);

		if (slip39_word_prefix(word, 4, w) != 1 ||
		    strcmp(w, word) != 0 ||
		    slip39_word_prefix(word, strlen(word), w) != 1 ||
		    strcmp(w, word) != 0)
			bad++;
	}
	CHECKF(bad == 0, "%u words not completed from their first four "
	    "letters", bad);
	CHECK_INT(slip39_word_prefix("acad", 4, w), 1);
	CHECK(strcmp(w, "academic") == 0);
	memcpy(up, "ACAD", 4);
	CHECK_INT(slip39_word_prefix(up, 4, w), 1);
	CHECK(strcmp(w, "academic") == 0);
	/* "ac": academic, acid, acne, acquire, acrobat, activity, actress. */
	CHECK_INT(slip39_word_prefix("ac", 2, w), 7);
	CHECK(w[0] == '\0');
	CHECK_INT(slip39_word_prefix("acax", 4, w), 0);
	CHECK(w[0] == '\0');
	CHECK_INT(slip39_word_prefix("academix", 8, w), 0);
	CHECK_INT(slip39_word_prefix("x", 1, w), 0);
	CHECK_INT(slip39_word_prefix("ac1d", 4, w), 0);
	CHECK_INT(slip39_word_prefix("a cid", 5, w), 0);
	CHECK_INT(slip39_word_prefix("", 0, w), 0);
	CHECK_INT(slip39_word_prefix("academics", 9, w), 0);
	CHECK(slip39_word_prefix("a", 1, w) > 1);
}

int
main(void)
{
	test_word_prefix();
	test_wordlist();
	test_vectors();
	test_vector_ems();
	test_parsing();
	test_checksum_locate();
	test_combine_reports();
	test_split_errors();
	test_passphrases();
	test_split_combine();
	return ktest_result("test_slip39");
}
