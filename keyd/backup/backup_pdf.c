/* backup_pdf.c: share sheets as one-page PDFs (cairo) with a QR code
 * (libqrencode), rendered in a child process. */
#include "backup_pdf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cairo.h>
#include <cairo-pdf.h>
#include <qrencode.h>

#include "backup_share.h"
#include "keyd_err.h"
#include "secmem.h"

/* A4 in PostScript points. */
#define PAGE_W 595.28
#define PAGE_H 841.89
#define MARGIN 48.0
/* One line of the fields at the top, and the words' table. */
#define FIELD_PT 9.0
#define FIELD_LEAD 12.5
#define WORD_PT 11.0
#define WORD_LEAD 16.0
#define WORD_COL_W 150.0
/* At most this many rows of words in a column (33 words: 3 columns). */
#define WORD_MAX_ROWS 11
#define WORD_MAX_COLS 4
/* The QR code's side on paper, and its quiet zone (ISO/IEC 18004: 4
 * modules). Q (25 % recovery) survives a fold or a stain; 33 words are a
 * version 11 symbol, about 0.8 mm a module at this size. */
#define QR_SIDE 170.0
#define QR_QUIET 4
#define QR_LEVEL QR_ECLEVEL_Q
/* Groups of the policy listed on one line. */
#define GROUPS_PER_LINE 4
/* Room for one formatted line (never a word or the mnemonic). */
#define LINE_MAX 256
/* The longest bundle name shown; longer ones are cut with "...". */
#define BUNDLE_NAME_SHOWN 80
/* Why the child failed, copied back to the parent (no secret in it). */
#define WHY_MAX 96
/* Exit status of a child that rendered the sheet. */
#define CHILD_OK 0

#define WUR BACKUP_PDF_WUR

/* Shared between the parent and the child: one MAP_SHARED mapping, locked
 * and not dumped, wiped and unmapped by the parent. The share goes to the
 * child in it: secmem's pages are MADV_WIPEONFORK, so the child sees the
 * caller's copy as zeros. */
struct render_out {
	struct slip39_mnemonic m;
	uint8_t c[BUNDLE_HASH_LEN];
	size_t len;
	int status;            /* KEYD_OK or a KEYD_ERR_* */
	char why[WHY_MAX];
	uint8_t pdf[BACKUP_PDF_MAX_FILE];
};

struct render_in {
	const struct bundle *b;
	const char *bundle_name;
	int passphrase;
};

char *
backup_pdf_file_name(const struct bundle *b, unsigned group,
    unsigned member, char *buf, size_t cap)
{
	size_t n;

	backup_share_file_name(b, group, member, buf, cap);
	n = strlen(buf);
	/* The text sheet's name always ends in ".txt". */
	if (n >= 4 && strcmp(buf + n - 4, ".txt") == 0)
		memcpy(buf + n - 3, "pdf", 3);
	return buf;
}

static cairo_status_t
append(void *closure, const unsigned char *data, unsigned int len)
{
	struct render_out *o = closure;

	if (len > sizeof(o->pdf) - o->len) {
		o->status = KEYD_ERR_FRAME_TOO_LARGE;
		return CAIRO_STATUS_WRITE_ERROR;
	}
	memcpy(o->pdf + o->len, data, len);
	o->len += len;
	return CAIRO_STATUS_SUCCESS;
}

static void
text_at(cairo_t *cr, double x, double y, const char *s)
{
	cairo_move_to(cr, x, y);
	cairo_show_text(cr, s);
}

static void
font(cairo_t *cr, int mono, int bold, double pt)
{
	/* fontconfig names: DejaVu (fonts-dejavu-core) when installed, else
	 * its monospace and sans-serif fallbacks. */
	cairo_select_font_face(cr, mono ? "DejaVu Sans Mono" : "DejaVu Sans",
	    CAIRO_FONT_SLANT_NORMAL,
	    bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, pt);
}

/* One formatted line at (x, *y), then *y moves down by lead. */
static void __attribute__((format(printf, 5, 6)))
linef(cairo_t *cr, double x, double *y, double lead, const char *fmt, ...)
{
	char line[LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	text_at(cr, x, *y, line);
	*y += lead;
}

/* The heading and the fields: everything but the words. */
static WUR int
draw_fields(cairo_t *cr, const struct render_in *in,
    const struct slip39_mnemonic *m, const uint8_t *c, double *y)
{
	const struct bundle *b = in->b;
	char set[2 * BUNDLE_SET_ID_LEN + 1], fp[3 * BUNDLE_HASH_LEN];
	char when[64], name[BUNDLE_NAME_SHOWN + 4], line[LINE_MAX];
	time_t created = (time_t)b->created;
	struct tm tm;
	unsigned g = m->group_index;
	size_t n, o;

	if (gmtime_r(&created, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		return KEYD_ERR_INTERNAL;
	n = strlen(in->bundle_name);
	if (n > BUNDLE_NAME_SHOWN)
		snprintf(name, sizeof(name), "...%s",
		    in->bundle_name + n - (BUNDLE_NAME_SHOWN - 3));
	else
		snprintf(name, sizeof(name), "%s", in->bundle_name);

	font(cr, 0, 1, 16.0);
	text_at(cr, MARGIN, *y, "KEYD-BACKUP SHARE SHEET");
	*y += 17.0;
	font(cr, 0, 1, FIELD_PT);
	linef(cr, MARGIN, y, FIELD_LEAD, "SECRET: keep it sealed. Do not copy, "
	    "photograph or scan it, or type it into a networked computer.");
	*y += 6.0;
	font(cr, 1, 0, FIELD_PT);
	linef(cr, MARGIN, y, FIELD_LEAD, "set-id: %s",
	    bundle_hex(b->set_id, BUNDLE_SET_ID_LEN, set));
	linef(cr, MARGIN, y, FIELD_LEAD, "created: %s", when);
	linef(cr, MARGIN, y, FIELD_LEAD, "bundle: %s", name);
	linef(cr, MARGIN, y, FIELD_LEAD, "bundle fingerprint (SHA-256):");
	linef(cr, MARGIN + 20.0, y, FIELD_LEAD, "%s",
	    backup_share_grouped_hex(b->fingerprint, BUNDLE_HASH_LEN, fp));
	linef(cr, MARGIN, y, FIELD_LEAD, "policy: %u of %u groups",
	    b->group_threshold, b->group_count);
	for (unsigned i = 0; i < b->group_count; i += GROUPS_PER_LINE) {
		o = 0;
		for (unsigned j = i; j < b->group_count &&
		    j < i + GROUPS_PER_LINE; j++)
			o += (size_t)snprintf(line + o, sizeof(line) - o,
			    "%sgroup %u: %u of %u shares", j == i ? "" : "; ",
			    j + 1, b->member_threshold[j], b->member_count[j]);
		linef(cr, MARGIN + 20.0, y, FIELD_LEAD, "%s", line);
	}
	linef(cr, MARGIN, y, FIELD_LEAD, "share: group %u, member %u of %u",
	    g + 1, m->member_index + 1u, b->member_count[g]);
	linef(cr, MARGIN, y, FIELD_LEAD, "share commitment:");
	linef(cr, MARGIN + 20.0, y, FIELD_LEAD, "%s",
	    backup_share_grouped_hex(c, BUNDLE_HASH_LEN, fp));
	linef(cr, MARGIN, y, FIELD_LEAD, "passphrase: %s", in->passphrase ?
	    "needed (it is not on any sheet)" : "none");
	return KEYD_OK;
}

/* The words, numbered, down the columns; returns the number of words. */
static WUR int
draw_words(cairo_t *cr, const char *t, double *y)
{
	char cell[8 + SLIP39_WORD_MAX_LEN + 1];
	unsigned nwords = 0, cols, rows, i = 0;
	const char *wp;
	size_t wl;
	double top;

	for (const char *q = t; *q != '\0'; q++)
		if (*q != ' ' && (q == t || q[-1] == ' '))
			nwords++;
	if (nwords == 0)
		return KEYD_ERR_INTERNAL;
	cols = (nwords + WORD_MAX_ROWS - 1) / WORD_MAX_ROWS;
	if (cols > WORD_MAX_COLS)
		cols = WORD_MAX_COLS;
	rows = (nwords + cols - 1) / cols;

	font(cr, 0, 1, FIELD_PT);
	*y += 8.0;
	linef(cr, MARGIN, y, FIELD_LEAD + 4.0, "The share: %u words, in this "
	    "order. Read each aloud and check it.", nwords);
	top = *y;
	font(cr, 1, 1, WORD_PT);
	while ((wp = backup_share_next_word(&t, &wl)) != NULL) {
		/* The number and the word in one string, so that text
		 * extraction keeps them together. */
		snprintf(cell, sizeof(cell), "%2u %.*s", i + 1, (int)wl, wp);
		text_at(cr, MARGIN + 10.0 + (i / rows) * WORD_COL_W,
		    top + (i % rows) * WORD_LEAD, cell);
		secmem_wipe(cell, sizeof(cell));
		i++;
	}
	if (wl > 0)
		return KEYD_ERR_INTERNAL;
	*y = top + rows * WORD_LEAD;
	return (int)nwords;
}

/* The QR code of exactly the words separated by single spaces, drawn as
 * an image of one pixel a module, scaled without smoothing. The pixels
 * are in locked memory that is wiped; libqrencode's own work buffers are
 * freed unwiped (see the file's header). */
static WUR int
draw_qr(cairo_t *cr, const char *words, double x, double y,
    const char **why)
{
	char *canon = NULL;
	QRcode *qr = NULL;
	cairo_surface_t *img = NULL;
	uint8_t *px = NULL;
	size_t n = strlen(words), o = 0, pxlen = 0;
	int side, stride, r = KEYD_ERR_INTERNAL;

	/* The mnemonic is already single-spaced; make sure of it anyway,
	 * since a scanner types in exactly what the code holds. */
	if ((canon = secmem_alloc(n + 1)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (words[i] != ' ')
			canon[o++] = words[i];
		else if (o > 0 && canon[o - 1] != ' ')
			canon[o++] = ' ';
	while (o > 0 && canon[o - 1] == ' ')
		o--;
	if ((qr = QRcode_encodeData((int)o, (const unsigned char *)canon, 0,
	    QR_LEVEL)) == NULL) {
		*why = "libqrencode could not encode the share";
		goto out;
	}
	side = qr->width + 2 * QR_QUIET;
	stride = cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, side);
	if (stride <= 0) {
		*why = "cairo refused the QR code's size";
		goto out;
	}
	pxlen = (size_t)stride * (size_t)side;
	if ((px = secmem_alloc(pxlen)) == NULL) {
		r = KEYD_ERR_NOMEM;
		goto out;
	}
	for (int row = 0; row < side; row++)
		for (int col = 0; col < side; col++) {
			int qr_r = row - QR_QUIET, qr_c = col - QR_QUIET, dark =
			    qr_r >= 0 && qr_c >= 0 && qr_r < qr->width &&
			    qr_c < qr->width &&
			    (qr->data[qr_r * qr->width + qr_c] & 1);
			uint32_t v = dark ? 0x000000u : 0xffffffu;

			memcpy(px + (size_t)row * (size_t)stride +
			    4 * (size_t)col, &v, sizeof(v));
		}
	img = cairo_image_surface_create_for_data(px, CAIRO_FORMAT_RGB24,
	    side, side, stride);
	if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
		*why = "cairo could not make the QR code's image";
		goto out;
	}
	cairo_save(cr);
	cairo_translate(cr, x, y);
	cairo_scale(cr, QR_SIDE / side, QR_SIDE / side);
	cairo_set_source_surface(cr, img, 0, 0);
	cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
	cairo_paint(cr);
	cairo_restore(cr);
	r = KEYD_OK;
out:
	/* The PDF surface keeps its own copy of the image when it is
	 * finished; ours is wiped once img's last reference is gone, which
	 * the caller makes sure of by finishing the surface first. */
	if (img != NULL) {
		cairo_surface_flush(img);
		cairo_surface_finish(img);
		cairo_surface_destroy(img);
	}
	secmem_free(px, pxlen);
	if (qr != NULL) {
		secmem_wipe(qr->data, (size_t)qr->width * (size_t)qr->width);
		QRcode_free(qr);
	}
	secmem_free(canon, n + 1);
	return r;
}

static void
draw_witnesses(cairo_t *cr, double y)
{
	static const char *const rows[] = {
		"Printed and sealed by (name)",
		"Witness 1 (name)",
		"Witness 2 (name)",
	};

	font(cr, 0, 1, FIELD_PT);
	text_at(cr, MARGIN, y, "Witnesses: each signs that this sheet was "
	    "printed on the offline machine, sealed, and no copy kept.");
	y += 26.0;
	font(cr, 0, 0, FIELD_PT);
	cairo_set_line_width(cr, 0.6);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		text_at(cr, MARGIN, y, rows[i]);
		cairo_move_to(cr, MARGIN + 140.0, y + 2.0);
		cairo_line_to(cr, MARGIN + 300.0, y + 2.0);
		text_at(cr, MARGIN + 310.0, y, "signature");
		cairo_move_to(cr, MARGIN + 355.0, y + 2.0);
		cairo_line_to(cr, PAGE_W - MARGIN, y + 2.0);
		cairo_stroke(cr);
		y += 26.0;
	}
}

/* In the child: renders the whole page into o. */
static int
render(const struct render_in *in, struct render_out *o)
{
	cairo_surface_t *s;
	cairo_t *cr = NULL;
	cairo_status_t st;
	double y = MARGIN + 10.0, qr_y;
	int r = KEYD_ERR_INTERNAL, nwords;

	o->len = 0;
	o->status = KEYD_OK;
	s = cairo_pdf_surface_create_for_stream(append, o, PAGE_W, PAGE_H);
	if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
		snprintf(o->why, sizeof(o->why), "cairo: %s",
		    cairo_status_to_string(cairo_surface_status(s)));
		goto out;
	}
	cairo_pdf_surface_restrict_to_version(s, CAIRO_PDF_VERSION_1_5);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE,
	    "keyd-backup share sheet");
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR,
	    "keyd-backup");
	cr = cairo_create(s);
	cairo_set_source_rgb(cr, 0, 0, 0);

	if ((r = draw_fields(cr, in, &o->m, o->c, &y)) != KEYD_OK)
		goto out;
	if ((nwords = draw_words(cr, o->m.text, &y)) < 0) {
		r = nwords;
		goto out;
	}
	y += 14.0;
	qr_y = y;
	{
		const char *why = "cannot draw the QR code";

		if ((r = draw_qr(cr, o->m.text, MARGIN, qr_y, &why)) !=
		    KEYD_OK) {
			snprintf(o->why, sizeof(o->why), "%s", why);
			goto out;
		}
	}
	cairo_set_source_rgb(cr, 0, 0, 0);
	font(cr, 0, 1, FIELD_PT);
	y = qr_y + 14.0;
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "QR code: the %d "
	    "words above, separated by spaces.", nwords);
	font(cr, 0, 0, FIELD_PT);
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "Scan it only "
	    "with a scanner attached to the");
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "offline ceremony "
	    "machine, never with a phone.");
	y += 8.0;
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "Check this share "
	    "each year, alone, with");
	font(cr, 1, 0, FIELD_PT - 1.0);
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "keyd-backup verify "
	    "--bundle BUNDLE");
	linef(cr, MARGIN + QR_SIDE + 30.0, &y, FIELD_LEAD,
	    "--bundle-fingerprint '<fingerprint above>'");
	linef(cr, MARGIN + QR_SIDE + 30.0, &y, FIELD_LEAD,
	    "--share-file <the text sheet, or the words>");
	font(cr, 0, 0, FIELD_PT);
	y += 8.0;
	linef(cr, MARGIN + QR_SIDE + 20.0, &y, FIELD_LEAD, "This sheet holds "
	    "no PIN and no passphrase.");
	draw_witnesses(cr, qr_y + QR_SIDE + 30.0);

	cairo_show_page(cr);
	cairo_destroy(cr);
	cr = NULL;
	cairo_surface_finish(s);
	if ((st = cairo_surface_status(s)) != CAIRO_STATUS_SUCCESS) {
		r = o->status != KEYD_OK ? o->status : KEYD_ERR_INTERNAL;
		snprintf(o->why, sizeof(o->why), "cairo: %s",
		    cairo_status_to_string(st));
		goto out;
	}
	r = KEYD_OK;
out:
	if (cr != NULL)
		cairo_destroy(cr);
	cairo_surface_destroy(s);
	return r;
}

/* The child's memory holds copies of the words that cairo, fontconfig and
 * libqrencode free without wiping: keep it out of core dumps and away from
 * ptrace, and lock it where that cannot make cairo's allocations fail
 * (root, or no limit on locked memory). */
static void
harden_child(void)
{
	struct rlimit no_core = { 0, 0 }, ml;

	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)setrlimit(RLIMIT_CORE, &no_core);
	if (geteuid() == 0 || (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 &&
	    ml.rlim_cur == RLIM_INFINITY))
		if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
			(void)munlockall();
}

int
backup_pdf_sheet(struct kbuf *w, const struct bundle *b,
    const char *bundle_name, const struct slip39_mnemonic *m,
    const uint8_t c[BUNDLE_HASH_LEN], int passphrase, const char **why)
{
	struct render_in in = { b, bundle_name, passphrase };
	struct render_out *o;
	pid_t pid;
	int st = 0, r;

	*why = "cannot render the PDF sheet";
	o = mmap(NULL, sizeof(*o), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (o == MAP_FAILED) {
		*why = "out of memory for the PDF sheet";
		return KEYD_ERR_NOMEM;
	}
	(void)secmem_lock(o, sizeof(*o));
	o->m = *m;
	memcpy(o->c, c, sizeof(o->c));
	o->status = KEYD_ERR_INTERNAL;
	if ((pid = fork()) < 0) {
		*why = "cannot start a process to render the PDF sheet";
		r = KEYD_ERR_IO;
		goto out;
	}
	if (pid == 0) {
		harden_child();
		r = render(&in, o);
		if (r != KEYD_OK && o->status == KEYD_OK)
			o->status = r;
		else if (r == KEYD_OK)
			o->status = KEYD_OK;
		/* No exit handlers, no stdio flush: the parent's buffered
		 * output is not written twice. */
		_exit(CHILD_OK);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			r = KEYD_ERR_IO;
			goto out;
		}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != CHILD_OK) {
		*why = "the process rendering the PDF sheet died";
		r = KEYD_ERR_INTERNAL;
		goto out;
	}
	if ((r = o->status) != KEYD_OK) {
		static char msg[WHY_MAX + 32];

		o->why[sizeof(o->why) - 1] = '\0';
		snprintf(msg, sizeof(msg), "cannot render the PDF sheet%s%s",
		    o->why[0] ? ": " : "", o->why);
		*why = r == KEYD_ERR_FRAME_TOO_LARGE ? "the PDF sheet is larger "
		    "than 1 MiB" : msg;
		goto out;
	}
	if (o->len > sizeof(o->pdf) || (r = kbuf_put(w, o->pdf, o->len)) !=
	    KEYD_OK) {
		*why = "the PDF sheet does not fit its buffer";
		r = r == KEYD_OK ? KEYD_ERR_INTERNAL : r;
		goto out;
	}
	r = KEYD_OK;
out:
	secmem_unlock(o, sizeof(*o));
	(void)munmap(o, sizeof(*o));
	return r;
}
