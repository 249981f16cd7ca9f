/*
 * mbox.c - the mail store: one mbox file per folder plus an index sidecar.
 *
 * Files of a folder, in mail/<domain>/<user>/ (NAME as names.c names
 * it, the folder's own name where that is safe; INBOX is always "INBOX"):
 *   NAME.mbox   mboxrd: "From <sender> <asctime date, UTC>\n", the message
 *               with LF line ends and every line matching ^>*From  given
 *               one more '>', then one blank line. mutt -f and Python's
 *               mailbox.mbox read it.
 *   NAME.idx    text, fixed-width lines of IDX_LINE bytes so that a flag
 *               change is one in-place write of one line:
 *               line 0: "RUMBLE-INDEX 2 uidvalidity=.. uidnext=.. modseq=..
 *                        gen=.. stale=.. floor=.. recent=.."
 *               lines 1..32: keyword names (IMAP keywords: bit i of a
 *                        message's keywords is line 1+i; blank = free)
 *               then one line per message: uid offset fromlen length size
 *               flags keywords date modseq qid savedate (see rec_fields).
 *               floor: the highest modseq of an expunged message that a
 *               compaction dropped (QRESYNC tells expunges after it
 *               exactly); recent: the first UID no IMAP session was told
 *               of as \Recent yet. Format 1 (128-byte lines, neither
 *               field, no savedate) is read and rewritten as 2 at open.
 *   NAME.lock   taken (os_lock) by every operation that reads the index
 *               from disk or changes anything, by every process.
 *
 * Append writes the message at the mbox end, then its index line; it does
 * not fsync (mm_folder_sync does, once for a batch) and does not rewrite
 * the header: uidnext and the highest modseq are also derived from the
 * lines. Flag changes and expunges rewrite lines in place and bump the
 * header's modseq, which is how other openers notice them; appends they
 * notice by the index size. Compaction writes NAME.mbox.new and
 * NAME.idx.new, marks the old index "stale" (openers holding the old
 * files reopen), renames the mbox, then the index. gen counts compactions.
 *
 * Crash recovery runs at open and at every refresh, under the lock:
 *  - NAME.idx.new left by a compaction that renamed the mbox but not the
 *    index: installed when it describes the mbox exactly, else removed;
 *  - index missing or unreadable, or its spot checks fail against the
 *    mbox: rebuilt from the mbox (new UIDVALIDITY, UIDs 1..n, no flags);
 *  - index lines that are torn or point past the mbox end: dropped, and
 *    UIDVALIDITY changes so that no client keeps a UID that may come back
 *    for another message;
 *  - bytes after the last indexed message: complete messages ("From "
 *    line after a blank line ... blank line) are indexed (another program
 *    appended them); an incomplete last one is a torn write that was never
 *    acknowledged and is cut off (os_truncate). A torn write that happens
 *    to end in a blank line looks complete and is kept as it is.
 *
 * Round trip: a message of CRLF-terminated lines (lone CRs and "From "
 * lines included) reads back byte for byte. A bare LF reads back as CRLF;
 * a message whose last line has no line end gets CRLF added (after a lone
 * CR at the very end, too).
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "rumble.h"

#define IDX_LINE MM__IDX_LINE
#define IDX_KW_SLOTS 32
#define IDX_HDR (IDX_LINE * (1 + IDX_KW_SLOTS))
#define IDX_PREFIX "RUMBLE-INDEX 2 "
#define IDX1_PREFIX "RUMBLE-INDEX 1 "
#define IDX1_LINE 128 /* format 1's lines */
#define CHUNK (64 * 1024)
#define WRITE_BATCH (256 * 1024)
#define QID_SCAN 64
#define SPOT_CHECKS 8
#define FROMLEN_MAX 99999 /* the width of the fromlen field */
#define SENDER_MAX 256
#define FOLDER_FS_MAX MM_FOLDER_FS_MAX

/* ---- small helpers ---- */

static void path_of(const struct mm__box *f, const char *ext, char *out, size_t len)
{
	snprintf(out, len, "%s%s", f->base, ext);
}

/* fseek for offsets past LONG_MAX too (Windows has a 32-bit long). */
static int seek_to(FILE *fp, uint64_t off)
{
	if (off <= (uint64_t)LONG_MAX) {
		return fseek(fp, (long)off, SEEK_SET);
	}
	if (fseek(fp, 0, SEEK_SET) != 0) {
		return -1;
	}
	while (off > 0) {
		long step = off > (uint64_t)LONG_MAX ? LONG_MAX : (long)off;
		if (fseek(fp, step, SEEK_CUR) != 0) {
			return -1;
		}
		off -= (uint64_t)step;
	}
	return 0;
}

/* see rumble.h */
int mm__read_at(FILE *fp, uint64_t off, void *p, size_t n)
{
	return seek_to(fp, off) == 0 && fread(p, 1, n, fp) == n ? 0 : -1;
}

static int write_at(FILE *fp, uint64_t off, const void *p, size_t n)
{
	return seek_to(fp, off) == 0 && fwrite(p, 1, n, fp) == n && fflush(fp) == 0 ? 0 : -1;
}

static uint64_t file_size(FILE *fp)
{
	struct os_stat st;
	fflush(fp);
	return os_fstat(fp, &st) == 0 ? st.size : 0;
}

/* ---- index lines ---- */

struct field {
	const char *label;
	int width, base;
};
static const struct field hdr_fields[] = {{"uidvalidity=", 10, 10}, {" uidnext=", 10, 10},
        {" modseq=", 20, 10}, {" gen=", 10, 10}, {" stale=", 1, 10}, {" floor=", 20, 10},
        {" recent=", 10, 10}};
static const struct field rec_fields[] = {{"", 10, 10}, /* uid */
        {" ", 16, 10},                                  /* offset */
        {" ", 5, 10},                                   /* fromlen */
        {" ", 10, 10},                                  /* length */
        {" ", 10, 10},                                  /* size */
        {" ", 8, 16},                                   /* flags */
        {" ", 8, 16},                                   /* keywords */
        {" ", 12, 10},                                  /* date */
        {" ", 20, 10},                                  /* modseq */
        {" ", 16, 16},                                  /* qid */
        {" ", 12, 10}};                                 /* savedate */
#define NHDR (sizeof hdr_fields / sizeof hdr_fields[0])
#define NREC (sizeof rec_fields / sizeof rec_fields[0])
/* Format 1 has the same fields but the last ones (see upgrade_v1). */
#define NHDR1 5
#define NREC1 10

/* One IDX_LINE line: prefix, then each field zero-padded to its width,
 * then spaces and "\n". A value too wide is clamped (cannot happen for
 * the fields' ranges). */
static void line_render(
        char *out, const char *prefix, const struct field *fl, size_t n, const uint64_t *v)
{
	static const char digits[] = "0123456789abcdef";
	size_t pos = strlen(prefix);
	memset(out, ' ', IDX_LINE - 1);
	out[IDX_LINE - 1] = '\n';
	memcpy(out, prefix, pos);
	for (size_t i = 0; i < n; i++) {
		size_t ll = strlen(fl[i].label);
		memcpy(out + pos, fl[i].label, ll);
		pos += ll;
		uint64_t x = v[i];
		for (int d = fl[i].width - 1; d >= 0; d--) {
			out[pos + (size_t)d] = digits[x % (uint64_t)fl[i].base];
			x /= (uint64_t)fl[i].base;
		}
		pos += (size_t)fl[i].width;
	}
}

static int digit_value(char c, int base)
{
	int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 99;
	return d < base ? d : -1;
}

static int line_parse(const char *in, size_t width, const char *prefix, const struct field *fl,
        size_t n, uint64_t *v)
{
	size_t pos = strlen(prefix);
	if (memcmp(in, prefix, pos) != 0 || in[width - 1] != '\n') {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t ll = strlen(fl[i].label);
		if (memcmp(in + pos, fl[i].label, ll) != 0) {
			return -1;
		}
		pos += ll;
		uint64_t x = 0;
		for (int d = 0; d < fl[i].width; d++) {
			int dv = digit_value(in[pos++], fl[i].base);
			if (dv < 0 || x > (UINT64_MAX - (uint64_t)dv) / (uint64_t)fl[i].base) {
				return -1;
			}
			x = x * (uint64_t)fl[i].base + (uint64_t)dv;
		}
		v[i] = x;
	}
	for (; pos < width - 1; pos++) {
		if (in[pos] != ' ') {
			return -1;
		}
	}
	return 0;
}

static void hdr_render(const struct mm__hdr *h, uint64_t modseq, char *out)
{
	uint64_t v[NHDR] = {h->uidvalidity, h->uidnext, modseq, h->gen, h->stale ? 1 : 0, h->floor,
	        h->recent};
	line_render(out, IDX_PREFIX, hdr_fields, NHDR, v);
}

/* The index's format (2, or 1 read as format 1 lays it out) and its
 * header in h; -1 when it is neither. Format 1 knows neither the floor
 * nor the first recent UID: nothing is recent, and every expunge up to
 * the modseq may have been dropped by a compaction. */
static int hdr_parse(const char *in, struct mm__hdr *h)
{
	uint64_t v[NHDR];
	int format = line_parse(in, IDX_LINE, IDX_PREFIX, hdr_fields, NHDR, v) == 0 ? 2 : 1;
	if (format == 1 && line_parse(in, IDX1_LINE, IDX1_PREFIX, hdr_fields, NHDR1, v) != 0) {
		return -1;
	}
	if (format == 1) {
		v[5] = v[2];
		v[6] = v[1];
	}
	if (v[0] == 0 || v[0] > 0xffffffffu || v[1] > 0xffffffffu || v[3] > 0xffffffffu ||
	        v[4] > 1 || v[6] > 0xffffffffu) {
		return -1;
	}
	h->uidvalidity = (uint32_t)v[0];
	h->uidnext = (uint32_t)v[1];
	h->modseq = v[2];
	h->gen = (uint32_t)v[3];
	h->stale = (int)v[4];
	h->floor = v[5];
	h->recent = (uint32_t)v[6];
	return format;
}

static void rec_render(const struct mm__rec *r, char *out)
{
	const struct mm_msg *m = &r->m;
	uint64_t date = m->date < 0                ? 0
	                : m->date > 999999999999LL ? 999999999999ULL
	                                           : (uint64_t)m->date;
	uint64_t saved = m->savedate < 0              ? 0
	                 : m->savedate > 999999999999LL ? 999999999999ULL
	                                                : (uint64_t)m->savedate;
	uint64_t v[NREC] = {m->uid, m->offset, r->fromlen, m->length, m->size, m->flags,
	        m->keywords, date, m->modseq, m->qid, saved};
	line_render(out, "", rec_fields, NREC, v);
}

/* A message line of the format (2 or 1: lines of its width, no savedate). */
static int rec_parse(const char *in, int format, struct mm__rec *r)
{
	uint64_t v[NREC];
	int ok = format == 2 ? line_parse(in, IDX_LINE, "", rec_fields, NREC, v)
	                     : line_parse(in, IDX1_LINE, "", rec_fields, NREC1, v);
	if (format == 1) {
		v[10] = 0; /* not known: SAVEDATE NIL */
	}
	if (ok != 0 || v[0] == 0 || v[0] > 0xffffffffu || v[2] == 0 || v[2] > v[1] ||
	        v[3] > 0xffffffffu || v[4] > 0xffffffffu) {
		return -1;
	}
	memset(r, 0, sizeof *r);
	r->m.uid = (uint32_t)v[0];
	r->m.offset = v[1];
	r->fromlen = (uint32_t)v[2];
	r->m.length = (uint32_t)v[3];
	r->m.size = (uint32_t)v[4];
	r->m.flags = (uint32_t)v[5];
	r->m.keywords = (uint32_t)v[6];
	r->m.date = (int64_t)v[7];
	r->m.modseq = v[8];
	r->m.qid = v[9];
	r->m.savedate = (int64_t)v[10];
	return 0;
}

/* Keyword slot i as an index line: the name, then spaces. */
static void kw_render(const struct mm__index *x, int i, char *line)
{
	memset(line, ' ', IDX_LINE - 1);
	line[IDX_LINE - 1] = '\n';
	if (x->kw && x->kw[i][0]) {
		memcpy(line, x->kw[i], strlen(x->kw[i]));
	}
}

/* Reads the keyword lines (width w); a slot that is not one printable
 * word is free. */
static void kw_read(FILE *fp, size_t w, struct mm__index *x)
{
	char lines[IDX_LINE * IDX_KW_SLOTS];
	xfree(x->kw);
	if (mm__read_at(fp, w, lines, w * IDX_KW_SLOTS) != 0) {
		return;
	}
	for (int i = 0; i < IDX_KW_SLOTS; i++) {
		const char *l = lines + i * w;
		size_t n = 0;
		while (n < w - 1 && l[n] > ' ' && l[n] < 0x7f) {
			n++;
		}
		if (n == 0 || l[w - 1] != '\n') {
			continue;
		}
		if (!x->kw) {
			x->kw = xcalloc(IDX_KW_SLOTS, sizeof *x->kw);
		}
		memcpy(x->kw[i], l, n);
		x->kw[i][n] = '\0';
	}
}

/* The whole index file: header, keyword slots, every line. */
static void index_render(const struct mm__index *x, struct buf *out)
{
	char line[IDX_LINE];
	buf_reserve(out, IDX_HDR + (size_t)x->nrec * IDX_LINE);
	hdr_render(&x->h, x->h.modseq, line);
	buf_append(out, line, IDX_LINE);
	for (int i = 0; i < IDX_KW_SLOTS; i++) {
		kw_render(x, i, line);
		buf_append(out, line, IDX_LINE);
	}
	for (uint32_t i = 0; i < x->nrec; i++) {
		rec_render(&x->rec[i], line);
		buf_append(out, line, IDX_LINE);
	}
}

static void index_push(struct mm__index *x, const struct mm__rec *r)
{
	if (x->nrec == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 64;
		x->rec = xrealloc(x->rec, x->cap * sizeof *x->rec);
	}
	x->rec[x->nrec++] = *r;
	if (r->m.uid >= x->h.uidnext) {
		x->h.uidnext = r->m.uid + 1;
	}
	if (r->m.modseq > x->h.modseq) {
		x->h.modseq = r->m.modseq;
	}
}

static void index_free(struct mm__index *x)
{
	xfree(x->rec);
	xfree(x->kw);
	memset(x, 0, sizeof *x);
}

static uint64_t rec_end(const struct mm__rec *r)
{
	return r->m.offset + r->m.length + 1; /* + the blank line */
}

/* Reads lines from line number 'from' on (keeping x->rec[0..from)). A torn
 * or invalid line ends the index there: *bad is set and the caller cuts
 * the file. -1 when the header is unreadable. */
static int index_read(FILE *fp, struct mm__index *x, uint32_t from, int *bad)
{
	char line[IDX_LINE];
	*bad = 0;
	int format = mm__read_at(fp, 0, line, IDX_LINE) == 0 ? hdr_parse(line, &x->h) : -1;
	if (format < 0 || (format == 1 && from > 0)) {
		return -1;
	}
	x->format = format;
	x->hdr_modseq = x->h.modseq;
	uint64_t size = file_size(fp), w = format == 2 ? IDX_LINE : IDX1_LINE;
	uint64_t hsize = w * (1 + IDX_KW_SLOTS);
	if (size < hsize) {
		return -1;
	}
	kw_read(fp, (size_t)w, x);
	uint64_t n = (size - hsize) / w;
	*bad = (size - hsize) % w != 0;
	/* keep lines [0, from); uidnext and modseq are at least what they say */
	x->nrec = from < x->nrec ? from : x->nrec;
	for (uint32_t i = 0; i < x->nrec; i++) {
		const struct mm_msg *m = &x->rec[i].m;
		x->h.uidnext = m->uid >= x->h.uidnext ? m->uid + 1 : x->h.uidnext;
		x->h.modseq = m->modseq > x->h.modseq ? m->modseq : x->h.modseq;
	}
	if (seek_to(fp, hsize + (uint64_t)x->nrec * w) != 0) {
		return -1;
	}
	for (uint64_t i = x->nrec; i < n; i++) {
		struct mm__rec r;
		if (fread(line, 1, w, fp) != w || rec_parse(line, format, &r) != 0 ||
		        (x->nrec && (r.m.uid <= x->rec[x->nrec - 1].m.uid ||
		                            r.m.offset < rec_end(&x->rec[x->nrec - 1])))) {
			*bad = 1; /* UIDs and offsets only go up */
			break;
		}
		index_push(x, &r);
	}
	return 0;
}

/* ---- the From_ line ---- */

static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char day_names[] = "SunMonTueWedThuFriSat";

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "From sender Wed Nov  5 09:24:05 2026\n" (asctime's layout, UTC). */
static size_t from_line(char *out, size_t len, const char *from, int64_t date)
{
	char sender[SENDER_MAX + 1];
	size_t n = 0;
	for (const char *p = from ? from : ""; *p && n < SENDER_MAX; p++) {
		unsigned char c = (unsigned char)*p;
		sender[n++] = c <= ' ' || c == 0x7f ? '_' : (char)c; /* one word, one line */
	}
	sender[n] = '\0';
	struct tm tm;
	os_gmtime(date, &tm);
	int r = snprintf(out, len, "From %s %.3s %.3s %2d %02d:%02d:%02d %d\n",
	        n ? sender : "MAILER-DAEMON", day_names + 3 * (tm.tm_wday % 7),
	        month_names + 3 * (tm.tm_mon % 12), tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	        tm.tm_year + 1900);
	return r > 0 && (size_t)r < len ? (size_t)r : 0;
}

/* see rumble.h */
int64_t mm_from_line_date(const char *line, size_t n)
{
	char tail[32], mon[4];
	int day, hh, mm, ss, year;
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) {
		n--;
	}
	if (n < 24 + 6) {
		return -1;
	}
	memcpy(tail, line + n - 24, 24);
	tail[24] = '\0';
	if (sscanf(tail, "%*3s %3s %d %d:%d:%d %d", mon, &day, &hh, &mm, &ss, &year) != 6) {
		return -1;
	}
	const char *p = strstr(month_names, mon);
	if (!p || strlen(mon) != 3 || (p - month_names) % 3 || day < 1 || day > 31 || hh > 23 ||
	        mm > 59 || ss > 60 || year < 1970 || year > 9999) {
		return -1;
	}
	int month = (int)(p - month_names) / 3 + 1;
	return days_from_civil(year, month, day) * 86400 + hh * 3600 + mm * 60 + ss;
}

/* ---- scanning an mbox: finds messages, counts their served size ---- */

struct found {
	uint64_t fromoff, offset, length, size;
	uint32_t fromlen;
	int64_t date;
};

struct scan {
	int pfx;     /* at a line start, still matching ^>*From  */
	uint64_t gt; /* '>' in that prefix */
	int k;       /* chars of "From " matched */
	int prev_blank, in_from, in_msg;
	uint64_t line_start;
	struct found cur;
	uint64_t lf, quoted;
	char fline[128]; /* start of the current From_ line, for its date */
	size_t flen;
	uint64_t good_end; /* end of the last complete message */
	uint64_t nmsg;
	int too_long; /* a From_ line over FROMLEN_MAX: stop there */
	void (*found)(const struct found *m, void *arg);
	void *arg;
};

static void scan_close_msg(struct scan *s, uint64_t sep)
{
	s->cur.length = sep - s->cur.offset;
	/* every stored LF (the separator's aside) is served as CRLF; a quoted
	 * line loses one '>' */
	s->cur.size = s->cur.length + (s->lf - 1) - s->quoted;
	s->found(&s->cur, s->arg);
	s->good_end = sep + 1;
	s->nmsg++;
	s->in_msg = 0;
}

/* A line start matched ^>*From  at pos (the ' ' just read). */
static void scan_prefix_done(struct scan *s)
{
	if (s->gt > 0) {
		s->quoted += s->in_msg;
		return;
	}
	if (!s->prev_blank) {
		return; /* an unquoted "From " inside a body (mboxo writers) */
	}
	if (s->in_msg) {
		scan_close_msg(s, s->line_start - 1);
	}
	s->in_from = 1;
	s->cur.fromoff = s->line_start;
	memcpy(s->fline, "From ", 5);
	s->flen = 5;
}

static void scan_line_end(struct scan *s, uint64_t pos)
{
	if (s->in_from) {
		s->in_from = 0;
		if (pos + 1 - s->cur.fromoff > FROMLEN_MAX) {
			s->too_long = 1;
			return;
		}
		s->cur.fromlen = (uint32_t)(pos + 1 - s->cur.fromoff);
		s->cur.offset = pos + 1;
		s->cur.date = mm_from_line_date(s->fline, s->flen);
		s->in_msg = 1;
		s->lf = s->quoted = 0;
		s->prev_blank = 0;
	} else {
		s->lf += s->in_msg;
		s->prev_blank = pos == s->line_start;
	}
	s->line_start = pos + 1;
	s->pfx = 1;
	s->gt = 0;
	s->k = 0;
}

static void scan_bytes(struct scan *s, const char *p, size_t n, uint64_t pos)
{
	for (size_t i = 0; i < n && !s->too_long; i++, pos++) {
		char c = p[i];
		if (s->pfx) {
			if (s->k == 0 && c == '>') {
				s->gt++;
				continue;
			}
			if (c == "From "[s->k]) {
				if (++s->k == 5) {
					s->pfx = 0;
					scan_prefix_done(s);
				}
				continue;
			}
			s->pfx = 0;
		}
		if (c == '\n') {
			scan_line_end(s, pos);
		} else if (s->in_from && s->flen < sizeof s->fline) {
			s->fline[s->flen++] = c;
		}
	}
}

/* Scans [start, stop) of the mbox, start being a message boundary. Calls
 * fn for each complete message; returns the end of the last one (start if
 * none), or -1 on a read error (as (uint64_t)-1). */
static uint64_t scan_mbox(FILE *fp, uint64_t start, uint64_t stop,
        void (*fn)(const struct found *m, void *arg), void *arg)
{
	struct scan s;
	memset(&s, 0, sizeof s);
	s.pfx = s.prev_blank = 1;
	s.line_start = s.good_end = start;
	s.found = fn;
	s.arg = arg;
	char *chunk = xmalloc(CHUNK);
	uint64_t pos = start;
	while (pos < stop && !s.too_long) {
		size_t want = stop - pos < CHUNK ? (size_t)(stop - pos) : CHUNK;
		if (mm__read_at(fp, pos, chunk, want) != 0) {
			xfree(chunk);
			return (uint64_t)-1;
		}
		scan_bytes(&s, chunk, want, pos);
		pos += want;
	}
	xfree(chunk);
	/* the last message is complete when the file ends in its blank line */
	if (!s.too_long && s.in_msg && s.prev_blank && s.line_start == stop && s.lf >= 1) {
		scan_close_msg(&s, stop - 1);
	}
	return s.good_end;
}

/* ---- loading and recovering a folder (file lock held) ---- */

/* A new UIDVALIDITY: the time, but above both the current one and the
 * last one handed out, which the lock file remembers ("uidvalidity N"):
 * RFC 3501 wants it greater than any before, even when the index that
 * held the old one is gone. */
static uint32_t new_uidvalidity(struct mm__box *f, uint32_t old)
{
	char text[32] = "";
	unsigned last = 0;
	if (f->lk && seek_to(f->lk, 0) == 0 && fread(text, 1, sizeof text - 1, f->lk) > 0 &&
	        sscanf(text, "uidvalidity %u", &last) == 1 && last > old) {
		old = last;
	}
	int64_t now = os_time();
	uint32_t v = now > 0 && now < 0xffffffffLL ? (uint32_t)now : 1;
	if (v <= old) {
		v = old + 1;
	}
	v = v ? v : 1;
	snprintf(text, sizeof text, "uidvalidity %010u\n", v);
	if (f->lk && write_at(f->lk, 0, text, strlen(text)) != 0) {
		log_warn("mbox %s: cannot write the lock file", f->label);
	}
	return v;
}

/* Messages x.rec[from..] were added (appended by another opener, or
 * found in the mbox): into live. */
static void live_extend(struct mm__box *f, uint32_t from)
{
	f->live = xrealloc(f->live, (f->x.nrec ? f->x.nrec : 1) * sizeof *f->live);
	for (uint32_t i = from; i < f->x.nrec; i++) {
		const struct mm_msg *m = &f->x.rec[i].m;
		if (!(m->flags & MM_EXPUNGED)) {
			f->live[f->nlive++] = i;
		} else if (m->modseq > f->last_expunge) {
			f->last_expunge = m->modseq;
		}
	}
	f->end = f->x.nrec ? rec_end(&f->x.rec[f->x.nrec - 1]) : 0;
}

static void live_rebuild(struct mm__box *f)
{
	f->nlive = 0;
	f->last_expunge = 0;
	live_extend(f, 0);
}

/* see rumble.h */
int mm__write_header(struct mm__box *f)
{
	char line[IDX_LINE];
	hdr_render(&f->x.h, f->x.h.modseq, line);
	if (write_at(f->idx, 0, line, IDX_LINE) != 0) {
		log_warn("mbox %s: cannot write the index header", f->label);
		return -1;
	}
	f->x.hdr_modseq = f->x.h.modseq;
	return 0;
}

static int write_rec(struct mm__box *f, uint32_t i)
{
	char line[IDX_LINE];
	rec_render(&f->x.rec[i], line);
	if (write_at(f->idx, IDX_HDR + (uint64_t)i * IDX_LINE, line, IDX_LINE) != 0) {
		log_warn("mbox %s: cannot write the index", f->label);
		return -1;
	}
	return 0;
}

/* Replaces the index file with x (temp file + rename) and reopens it. */
static int install_index(struct mm__box *f)
{
	char path[1500];
	struct buf b;
	buf_init(&b);
	index_render(&f->x, &b);
	path_of(f, ".idx", path, sizeof path);
	if (f->idx) {
		fclose(f->idx); /* Windows renames only over closed files */
		f->idx = NULL;
	}
	int rc = os_write_file_atomic(path, b.data, b.len);
	buf_free(&b);
	if (rc != 0) {
		log_warn("mbox %s: cannot write %s", f->label, path);
		return -1;
	}
	f->x.hdr_modseq = f->x.h.modseq;
	f->idx = os_fopen_rw(path);
	if (!f->idx) {
		log_warn("mbox %s: cannot open %s", f->label, path);
		return -1;
	}
	return 0;
}

/* Tells openers still holding the old index file to reopen. */
static void mark_stale(struct mm__box *f)
{
	if (f->idx) {
		struct mm__hdr h = f->x.h;
		char line[IDX_LINE];
		h.stale = 1;
		hdr_render(&h, f->x.h.modseq, line);
		write_at(f->idx, 0, line, IDX_LINE); /* best effort: they also check the mbox */
	}
}

static void add_found(const struct found *m, void *arg)
{
	struct mm__index *x = arg;
	struct mm__rec r;
	memset(&r, 0, sizeof r);
	r.m.uid = x->h.uidnext;
	r.m.offset = m->offset;
	r.m.length = m->length > 0xffffffffu ? 0xffffffffu : (uint32_t)m->length;
	r.m.size = m->size > 0xffffffffu ? 0xffffffffu : (uint32_t)m->size;
	r.m.date = m->date >= 0 ? m->date : os_time();
	r.m.savedate = os_time();
	r.m.modseq = x->h.modseq + 1;
	r.fromlen = m->fromlen;
	index_push(x, &r);
}

/* Cuts the mbox back to good_end: what follows is a torn write. */
static int cut_tail(struct mm__box *f, uint64_t good_end, uint64_t size)
{
	log_warnx("mbox %s: %llu bytes at the end of the mbox are not a complete message "
	          "(an interrupted write); removed",
	        f->label, (unsigned long long)(size - good_end));
	if (os_truncate(f->mbox, good_end) != 0) {
		log_warn("mbox %s: cannot truncate the mbox", f->label);
		return -1;
	}
	return 0;
}

/* Moves an mbox that holds no message at all aside, keeping its bytes. */
static int move_aside(struct mm__box *f)
{
	char from[1500], to[1600];
	path_of(f, ".mbox", from, sizeof from);
	snprintf(to, sizeof to, "%s.damaged-%lld", from, (long long)os_time());
	log_warnx("mbox %s: the mbox holds no message; moved to %s", f->label, to);
	fclose(f->mbox);
	f->mbox = NULL;
	if (os_rename_atomic(from, to) != 0) {
		log_warn("mbox %s: cannot move %s", f->label, from);
	}
	f->mbox = os_fopen_rw(from);
	return f->mbox ? 0 : -1;
}

/* Indexes the mbox from scratch: new UIDVALIDITY, UIDs from 1. */
static int rebuild(struct mm__box *f)
{
	uint32_t old = f->x.h.uidvalidity;
	uint32_t gen = f->x.h.gen;
	mark_stale(f);
	index_free(&f->x);
	f->x.h.uidvalidity = new_uidvalidity(f, old);
	f->x.h.uidnext = 1;
	f->x.h.gen = gen + 1;
	f->x.h.modseq = 1;
	uint64_t size = file_size(f->mbox);
	uint64_t good = scan_mbox(f->mbox, 0, size, add_found, &f->x);
	if (good == (uint64_t)-1) {
		log_warn("mbox %s: cannot read the mbox", f->label);
		return -1;
	}
	if (good < size && f->x.nrec == 0 && move_aside(f) != 0) {
		return -1;
	} else if (good < size && f->x.nrec > 0 && cut_tail(f, good, size) != 0) {
		return -1;
	}
	if (size > 0) {
		log_warnx("mbox %s: index rebuilt from the mbox, %u messages, uidvalidity %u",
		        f->label, f->x.nrec, f->x.h.uidvalidity);
		quota__forget(f->dir);
	}
	return install_index(f);
}

/* The bytes around message r look like what the index says. */
static int spot_ok(struct mm__box *f, const struct mm__rec *r)
{
	char head[5], c1, c2;
	return mm__read_at(f->mbox, r->m.offset - r->fromlen, head, 5) == 0 &&
	       memcmp(head, "From ", 5) == 0 &&
	       mm__read_at(f->mbox, r->m.offset - 1, &c1, 1) == 0 && c1 == '\n' &&
	       mm__read_at(f->mbox, r->m.offset + r->m.length, &c2, 1) == 0 && c2 == '\n';
}

/* Checks a few messages against the mbox (first, last, some between);
 * the ones past the end are left to drop_past_end. */
static int spot_check(struct mm__box *f, const struct mm__index *x, uint64_t size)
{
	uint32_t n = x->nrec;
	for (uint32_t k = 0; k < SPOT_CHECKS && n; k++) {
		uint32_t i = k == 0   ? 0
		             : k == 1 ? n - 1
		                      : (uint32_t)((uint64_t)n * k / SPOT_CHECKS);
		const struct mm__rec *r = &x->rec[i];
		if (rec_end(r) <= size && !spot_ok(f, r)) {
			return 0;
		}
	}
	return 1;
}

/* Drops index lines whose message is not (all) in the mbox: written
 * before the mbox data reached the disk. Also cuts a torn index line. */
static int drop_past_end(struct mm__box *f, int bad)
{
	uint64_t size = file_size(f->mbox);
	uint32_t n = f->x.nrec;
	while (n && rec_end(&f->x.rec[n - 1]) > size) {
		n--;
	}
	if (n == f->x.nrec && !bad) {
		return 0;
	}
	log_warnx("mbox %s: %u index entries without their message dropped; new uidvalidity",
	        f->label, f->x.nrec - n);
	quota__forget(f->dir);
	f->x.nrec = n;
	if (os_truncate(f->idx, IDX_HDR + (uint64_t)n * IDX_LINE) != 0) {
		log_warn("mbox %s: cannot truncate the index", f->label);
		return -1;
	}
	/* a UID seen by a client may now be given to another message */
	f->x.h.uidvalidity = new_uidvalidity(f, f->x.h.uidvalidity);
	return mm__write_header(f);
}

static void write_found(const struct found *m, void *arg)
{
	add_found(m, &((struct mm__box *)arg)->x);
}

/* Indexes complete messages after the last indexed one, cuts a torn
 * tail. */
static int check_tail(struct mm__box *f)
{
	uint64_t size = file_size(f->mbox);
	uint64_t end = f->x.nrec ? rec_end(&f->x.rec[f->x.nrec - 1]) : 0;
	if (size <= end) {
		return 0;
	}
	uint32_t before = f->x.nrec;
	uint64_t good = scan_mbox(f->mbox, end, size, write_found, f);
	if (good == (uint64_t)-1) {
		log_warn("mbox %s: cannot read the mbox", f->label);
		return -1;
	}
	for (uint32_t i = before; i < f->x.nrec; i++) {
		if (write_rec(f, i) != 0) {
			f->x.nrec = i;
			return -1;
		}
	}
	if (f->x.nrec > before) {
		log_info("mbox %s: %u messages appended by another program indexed", f->label,
		        f->x.nrec - before);
		quota__forget(f->dir);
	}
	if (good < size && cut_tail(f, good, size) != 0) {
		return -1;
	}
	return 0;
}

/* Finishes or undoes a compaction that a crash interrupted. */
static void recover_compaction(struct mm__box *f)
{
	char inew[1500], mnew[1500], idx[1500];
	struct os_stat st;
	path_of(f, ".idx.new", inew, sizeof inew);
	path_of(f, ".mbox.new", mnew, sizeof mnew);
	path_of(f, ".idx", idx, sizeof idx);
	if (os_stat(inew, &st) == 0) {
		FILE *fp = os_fopen(inew, "rb");
		struct mm__index x;
		int bad = 0, ok = 0;
		memset(&x, 0, sizeof x);
		if (fp && index_read(fp, &x, 0, &bad) == 0 && !bad) {
			uint64_t end = x.nrec ? rec_end(&x.rec[x.nrec - 1]) : 0;
			ok = end == file_size(f->mbox) && spot_check(f, &x, end);
		}
		if (fp) {
			fclose(fp);
		}
		index_free(&x);
		if (ok && os_rename_atomic(inew, idx) == 0) {
			os_fsync_dir(f->dir);
			log_warnx("mbox %s: finished an interrupted compaction", f->label);
		} else {
			os_remove(inew); /* the mbox was not renamed: the old index holds */
		}
	}
	if (os_stat(mnew, &st) == 0) {
		os_remove(mnew);
	}
}

static void close_files(struct mm__box *f)
{
	if (f->mbox) {
		fclose(f->mbox);
		f->mbox = NULL;
	}
	if (f->idx) {
		fclose(f->idx);
		f->idx = NULL;
	}
}

/* Messages this process told a session of as \Recent stay told when the
 * header is read again: the file has the claim only from its next write. */
static void keep_recent(struct mm__box *f, const struct mm__hdr *before)
{
	if (before->uidvalidity == f->x.h.uidvalidity && before->recent > f->x.h.recent) {
		f->x.h.recent = before->recent;
	}
}

/* An index of format 1 as loaded is written again as format 2 (lines
 * past the mbox end dropped first, as drop_past_end would). */
static int upgrade_v1(struct mm__box *f, int bad)
{
	uint64_t size = file_size(f->mbox);
	uint32_t n = f->x.nrec;
	while (n && rec_end(&f->x.rec[n - 1]) > size) {
		n--;
	}
	if (n < f->x.nrec || bad) {
		log_warnx("mbox %s: %u index entries without their message dropped; new uidvalidity",
		        f->label, f->x.nrec - n);
		f->x.nrec = n;
		f->x.h.uidvalidity = new_uidvalidity(f, f->x.h.uidvalidity);
	}
	f->x.format = 2;
	log_info("mbox %s: index upgraded to format 2 (%u messages)", f->label, f->x.nrec);
	return install_index(f);
}

/* (Re)opens both files and loads the index from scratch, recovering
 * whatever a crash or another program left. */
static int load_all(struct mm__box *f)
{
	char mpath[1500], ipath[1500];
	path_of(f, ".mbox", mpath, sizeof mpath);
	path_of(f, ".idx", ipath, sizeof ipath);
	mm__views_keep(f);
	close_files(f);
	f->loads++; /* open readers find their message again */
	f->loaded = 0;
	struct mm__index old = f->x;
	memset(&f->x, 0, sizeof f->x);
	f->x.h.uidvalidity = old.h.uidvalidity;
	f->x.h.gen = old.h.gen;
	int rc = MM_UNAVAILABLE;
	f->mbox = os_fopen_rw(mpath);
	if (!f->mbox) {
		log_warn("mbox %s: cannot open %s", f->label, mpath);
		goto out;
	}
	recover_compaction(f);
	f->idx = os_fopen_rw(ipath);
	if (!f->idx) {
		log_warn("mbox %s: cannot open %s", f->label, ipath);
		goto out;
	}
	uint64_t msize = file_size(f->mbox), isize = file_size(f->idx);
	int bad = 0;
	if (isize == 0 && msize == 0) {
		f->x.h.uidvalidity = new_uidvalidity(f, old.h.uidvalidity);
		f->x.h.uidnext = 1;
		f->x.h.gen = old.h.gen + 1;
		f->x.h.modseq = 1; /* HIGHESTMODSEQ is never 0; its first message gets 2 */
		rc = install_index(f); /* a new folder */
	} else if (index_read(f->idx, &f->x, 0, &bad) != 0 || !spot_check(f, &f->x, msize)) {
		if (isize > 0) {
			log_warnx("mbox %s: the index does not match the mbox", f->label);
		}
		f->x.h.uidvalidity = f->x.h.uidvalidity > old.h.uidvalidity ? f->x.h.uidvalidity
		                                                            : old.h.uidvalidity;
		rc = rebuild(f);
	} else {
		rc = f->x.format == 1 ? upgrade_v1(f, bad) : drop_past_end(f, bad);
		if (rc == 0 && f->x.h.stale) {
			f->x.h.stale = 0; /* a compaction died before its renames */
			rc = mm__write_header(f);
		}
	}
	if (rc == 0) {
		rc = check_tail(f);
	}
	rc = rc == 0 ? 0 : MM_UNAVAILABLE;
	keep_recent(f, &old.h);
out:
	live_rebuild(f);
	mm__views_lost(f, old.rec, old.nrec);
	index_free(&old);
	f->loaded = rc == 0;
	f->refreshed = os_now_ms();
	return rc;
}

/* Brings x up to date with the files (refresh_locked). */
static int refresh_files(struct mm__box *f)
{
	char line[IDX_LINE], mpath[1500], ipath[1500];
	struct mm__hdr h;
	struct os_stat st;
	path_of(f, ".mbox", mpath, sizeof mpath);
	path_of(f, ".idx", ipath, sizeof ipath);
	if (f->loaded && os_stat(mpath, &st) != 0) {
		/* deleted or renamed (IMAP): not made again here */
		return os_errno_is_noent() ? MM_NOFOLDER : MM_UNAVAILABLE;
	}
	if (!f->loaded || !f->mbox) {
		return load_all(f);
	}
	if (!f->idx && !(f->idx = os_fopen_rw(ipath))) {
		log_warn("mbox %s: cannot open %s", f->label, ipath);
		return MM_UNAVAILABLE;
	}
	f->refreshed = os_now_ms();
	if (mm__read_at(f->idx, 0, line, IDX_LINE) != 0 || hdr_parse(line, &h) != 2 || h.stale ||
	        h.uidvalidity != f->x.h.uidvalidity || h.gen != f->x.h.gen ||
	        st.size != file_size(f->mbox)) {
		return load_all(f); /* compacted, rebuilt or replaced behind our back */
	}
	uint64_t isize = file_size(f->idx);
	uint64_t n = isize >= IDX_HDR ? (isize - IDX_HDR) / IDX_LINE : 0;
	if (n < f->x.nrec) {
		return load_all(f);
	}
	int bad = 0;
	struct mm__hdr before = f->x.h;
	uint32_t from = h.modseq != f->x.hdr_modseq ? 0 : f->x.nrec, had = f->x.nrec;
	int read = n > f->x.nrec || from == 0 || isize != IDX_HDR + n * IDX_LINE;
	if (read && index_read(f->idx, &f->x, from, &bad) != 0) {
		return load_all(f);
	}
	keep_recent(f, &before);
	int rc = drop_past_end(f, bad);
	if (rc == 0) {
		rc = check_tail(f);
	}
	/* nothing changed (most commands): no walk of the index */
	if (from == 0 || f->x.nrec < had) {
		live_rebuild(f);
	} else if (f->x.nrec > had) {
		live_extend(f, had);
	}
	return rc == 0 ? 0 : MM_UNAVAILABLE;
}

/* Brings f up to date with the files; the file lock is held. */
static int refresh_locked(struct mm__box *f)
{
	uint64_t seen = f->x.h.modseq;
	int rc = refresh_files(f);
	if (f->x.h.modseq != seen) {
		f->last_flags = f->x.h.modseq; /* read from the files: any message may differ */
	}
	return rc;
}

/* Takes f->mu and the folder's file lock and refreshes; the index file
 * is open until folder_end. *lk is the open lock file: one per operation,
 * so that an idle folder costs one descriptor (its mbox). 0, or
 * MM_NOFOLDER / MM_UNAVAILABLE with nothing held. */
int mm__begin(struct mm__box *f, FILE **lk)
{
	char path[1500];
	os_mutex_lock(f->mu);
	path_of(f, ".lock", path, sizeof path);
	*lk = os_fopen_rw(path);
	if (!*lk || os_lock(*lk) != 0) {
		log_warn("mbox %s: cannot lock %s", f->label, path);
		if (*lk) {
			fclose(*lk);
		}
		os_mutex_unlock(f->mu);
		return MM_UNAVAILABLE;
	}
	f->lk = *lk;
	int rc = refresh_locked(f);
	if (rc != 0) {
		if (rc == MM_NOFOLDER) {
			mm__ring_changed(f, 1); /* watchers find it gone */
		}
		if (f->idx) {
			fclose(f->idx);
			f->idx = NULL;
		}
		f->lk = NULL;
		os_unlock(*lk);
		fclose(*lk);
		os_mutex_unlock(f->mu);
	}
	return rc;
}

void mm__end(struct mm__box *f, FILE *lk)
{
	if (f->mbox) {
		fflush(f->mbox);
	}
	if (f->idx) {
		fclose(f->idx);
		f->idx = NULL;
	}
	f->lk = NULL;
	os_unlock(lk);
	fclose(lk);
	mm__ring_changed(f, 0);
	os_mutex_unlock(f->mu);
}

/* ---- open / close: the table of boxes ---- */

static os_mutex *boxes_mu; /* the table; taken before any box's mutex */
static struct mm__box *boxes;

static os_mutex *boxes_mutex(void)
{
	return rl_mutex_once(&boxes_mu);
}

/* dir/NAME for a folder: INBOX (any case) is "INBOX", others are named
 * by names.c (no other folder's name is "INBOX"). */
static int folder_paths(struct mm__box *f, const char *domain, const char *user, const char *folder)
{
	char u[MM_USER_MAX + 1], eu[3 * MM_USER_MAX + 1], ef[FOLDER_FS_MAX + 1];
	int inbox = rl_strcasecmp(folder, "INBOX") == 0;
	if (!mm_valid_domain(domain) || !mm_valid_user(user, 1) ||
	        (!inbox && !mm_valid_folder(folder))) {
		return -1;
	}
	rl_strlcpy(u, user, sizeof u);
	rl_lower(u);
	if (mm__fs_name(u, eu, sizeof eu) != 0) {
		return -1;
	}
	char ddir[1024];
	if (mm__domain_dir(domain, ddir, sizeof ddir) != 0 ||
	        (size_t)snprintf(f->dir, sizeof f->dir, "%s/%s", ddir, eu) >= sizeof f->dir) {
		return -1;
	}
	if (inbox) {
		rl_strlcpy(ef, "INBOX", sizeof ef);
	} else if (mm__folder_file(f->dir, folder, ef, sizeof ef) != 0) {
		return -1; /* escapes too long for a file name */
	}
	if ((size_t)snprintf(f->base, sizeof f->base, "%s/%s", f->dir, ef) >= sizeof f->base) {
		return -1;
	}
	snprintf(f->label, sizeof f->label, "%s@%s/%s", u, domain, folder);
	rl_strlcpy(f->user, u, sizeof f->user);
	rl_strlcpy(f->domain, domain, sizeof f->domain);
	rl_lower(f->domain);
	uint64_t k = 14695981039346656037ULL; /* FNV-1a */
	for (const char *p = f->base; *p; p++) {
		k = (k ^ (unsigned char)*p) * 1099511628211ULL;
	}
	f->key = k;
	return 0;
}

/* The listed box of base, NULL if none; the table lock is held. */
static struct mm__box *box_find(const char *base)
{
	struct mm__box *f = boxes;
	while (f && strcmp(f->base, base) != 0) {
		f = f->next;
	}
	return f;
}

/* Takes f out of the table: the next open of its name gets a new box. */
static void box_unlist(struct mm__box *f)
{
	struct mm__box **pp = &boxes;
	while (*pp && *pp != f) {
		pp = &(*pp)->next;
	}
	if (*pp) {
		*pp = f->next;
	}
	f->listed = 0;
}

static void box_free(struct mm__box *f)
{
	close_files(f);
	index_free(&f->x);
	xfree(f->live);
	if (f->mu) {
		os_mutex_free(f->mu);
	}
	free(f);
}

/* Drops a reference; the last one frees the box. */
static void box_release(struct mm__box *f)
{
	os_mutex *mu = boxes_mutex();
	os_mutex_lock(mu);
	if (--f->refs == 0) {
		if (f->listed) {
			box_unlist(f);
		}
		box_free(f);
	}
	os_mutex_unlock(mu);
}

/* The box of cand's paths with a reference taken: the listed one, or
 * cand itself, listed now. cand is freed when it is not used. */
static struct mm__box *box_get(struct mm__box *cand)
{
	os_mutex *mu = boxes_mutex();
	os_mutex_lock(mu);
	struct mm__box *f = box_find(cand->base);
	if (!f) {
		f = cand;
		f->mu = os_mutex_new();
		f->next = boxes;
		boxes = f;
		f->listed = 1;
	}
	f->refs++;
	os_mutex_unlock(mu);
	if (f != cand) {
		free(cand);
	}
	return f;
}

/* see rumble.h */
int mm_folder_open(const char *domain, const char *user, const char *folder, int create,
        struct mm_folder **out)
{
	*out = NULL;
	if (!domain || !user || !folder) {
		return MM_NOFOLDER;
	}
	for (int tries = 0; tries < 2; tries++) {
		struct mm__box *cand = xcalloc(1, sizeof *cand);
		char mpath[1500];
		struct os_stat st;
		if (folder_paths(cand, domain, user, folder) != 0) {
			free(cand);
			return MM_NOFOLDER;
		}
		path_of(cand, ".mbox", mpath, sizeof mpath);
		if (!create && os_stat(mpath, &st) != 0) {
			free(cand);
			return os_errno_is_noent() ? MM_NOFOLDER : MM_UNAVAILABLE;
		}
		if (create && os_mkdir_p(cand->dir) != 0) {
			log_warn("mbox %s: cannot create %s", cand->label, cand->dir);
			free(cand);
			return MM_UNAVAILABLE;
		}
		struct mm__box *f = box_get(cand);
		FILE *lk;
		/* the first opener loads it; the others refresh it */
		int rc = mm__begin(f, &lk);
		if (rc == 0) {
			mm__end(f, lk);
			struct mm_folder *h = xcalloc(1, sizeof *h);
			h->b = f;
			*out = h;
			return 0;
		}
		if (rc == MM_NOFOLDER) {
			os_mutex_lock(boxes_mutex());
			if (f->listed) {
				box_unlist(f); /* deleted or renamed since it was opened */
			}
			os_mutex_unlock(boxes_mutex());
		}
		box_release(f);
		if (rc != MM_NOFOLDER) {
			return rc;
		}
	}
	return MM_NOFOLDER;
}

void mm_folder_close(struct mm_folder *h)
{
	if (h) {
		box_release(h->b);
		free(h);
	}
}

/* see rumble.h */
uint64_t mm_folder_key(struct mm_folder *h)
{
	return h->b->key;
}

uint32_t mm_folder_count(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	uint32_t n = f->nlive;
	os_mutex_unlock(f->mu);
	return n;
}

/* A copy in the handle: valid until the next mm_folder_msg on h. */
const struct mm_msg *mm_folder_msg(struct mm_folder *h, uint32_t i)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	int ok = i < f->nlive;
	if (ok) {
		h->msg = f->x.rec[f->live[i]].m;
	}
	os_mutex_unlock(f->mu);
	return ok ? &h->msg : NULL;
}

/* see rumble.h */
int mm_folder_get(struct mm_folder *h, uint32_t uid, struct mm_msg *out)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	long k = mm__find_uid(f, uid);
	if (k >= 0) {
		*out = f->x.rec[k].m;
	}
	os_mutex_unlock(f->mu);
	return k >= 0 ? 0 : -1;
}

uint32_t mm_folder_uidvalidity(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	uint32_t v = f->x.h.uidvalidity;
	os_mutex_unlock(f->mu);
	return v;
}

uint32_t mm_folder_uidnext(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	uint32_t v = f->x.h.uidnext;
	os_mutex_unlock(f->mu);
	return v;
}

int mm_folder_refresh(struct mm_folder *h)
{
	FILE *lk;
	int rc = mm__begin(h->b, &lk);
	if (rc == 0) {
		mm__end(h->b, lk);
	}
	return rc;
}

/* ---- append ---- */

/* Wire form to mbox form, streaming: CRLF -> LF, ^>*From  gets one more
 * '>'. Counts the stored and the served bytes as it goes. */
struct conv {
	struct buf *out;
	int pfx, k, cr;
	uint64_t gt;
	uint64_t stored, served;
	char last;
};

static void conv_put(struct conv *cv, const char *p, size_t n)
{
	buf_append(cv->out, p, n);
	cv->stored += n;
	cv->served += n;
	for (size_t i = 0; i < n; i++) {
		cv->served += p[i] == '\n'; /* read back as CRLF */
	}
	if (n) {
		cv->last = p[n - 1];
	}
}

static void conv_gts(struct conv *cv, uint64_t n)
{
	for (; n > 0; n--) {
		conv_put(cv, ">", 1);
	}
}

static void conv_flush_prefix(struct conv *cv)
{
	conv_gts(cv, cv->gt);
	conv_put(cv, "From ", (size_t)cv->k);
	cv->pfx = 0;
}

static void conv_byte(struct conv *cv, char c)
{
	if (cv->pfx) {
		if (cv->k == 0 && c == '>') {
			cv->gt++;
			return;
		}
		if (c == "From "[cv->k]) {
			if (++cv->k == 5) {
				conv_gts(cv, cv->gt + 1);
				conv_put(cv, "From ", 5);
				cv->served--; /* the added '>' is not served */
				cv->pfx = 0;
			}
			return;
		}
		conv_flush_prefix(cv);
	}
	if (cv->cr) {
		cv->cr = 0;
		if (c == '\n') {
			conv_put(cv, "\n", 1);
			cv->pfx = 1, cv->gt = 0, cv->k = 0;
			return;
		}
		conv_put(cv, "\r", 1); /* a lone CR stays */
	}
	if (c == '\r') {
		cv->cr = 1;
		return;
	}
	conv_put(cv, &c, 1);
	if (c == '\n') {
		cv->pfx = 1, cv->gt = 0, cv->k = 0;
	}
}

static void conv_bytes(struct conv *cv, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t run = 0;
		if (!cv->pfx && !cv->cr) {
			while (i + run < n && p[i + run] != '\r' && p[i + run] != '\n') {
				run++;
			}
		}
		if (run) {
			conv_put(cv, p + i, run); /* plain bytes in one piece */
			i += run;
		} else {
			conv_byte(cv, p[i++]);
		}
	}
}

static void conv_finish(struct conv *cv)
{
	if (cv->pfx && (cv->gt || cv->k)) {
		conv_flush_prefix(cv);
	}
	if (cv->cr) {
		conv_put(cv, "\r", 1);
	}
	if (cv->stored && cv->last != '\n') {
		conv_put(cv, "\n", 1); /* an mbox message ends with a line end */
	}
}

/* Writes what is buffered at the mbox position *pos. */
static int flush_out(struct mm__box *f, struct buf *b, uint64_t *pos)
{
	if (b->len &&
	        (seek_to(f->mbox, *pos) != 0 || fwrite(b->data, 1, b->len, f->mbox) != b->len)) {
		return -1;
	}
	*pos += b->len;
	buf_reset(b);
	return 0;
}

/* Writes From_ line + message + blank line at f->end; fills r. */
static int append_mbox(
        struct mm__box *f, struct spool *sp, const char *from, int64_t date, struct mm__rec *r)
{
	char fl[SENDER_MAX + 64];
	size_t fromlen = from_line(fl, sizeof fl, from, date > 0 ? date : os_time());
	struct buf out;
	struct conv cv;
	char *chunk = xmalloc(CHUNK);
	uint64_t pos = f->end, off = 0;
	long n = 0;
	int rc = 0;
	buf_init(&out);
	buf_reserve(&out, WRITE_BATCH + CHUNK * 2);
	buf_append(&out, fl, fromlen);
	memset(&cv, 0, sizeof cv);
	cv.out = &out;
	cv.pfx = 1;
	while (rc == 0 && (n = spool_read(sp, off, chunk, CHUNK)) > 0) {
		conv_bytes(&cv, chunk, (size_t)n);
		off += (uint64_t)n;
		if (out.len >= WRITE_BATCH) {
			rc = flush_out(f, &out, &pos);
		}
	}
	xfree(chunk);
	if (n < 0) {
		log_warn("mbox %s: cannot read the spooled message", f->label);
		rc = -1;
	}
	conv_finish(&cv);
	buf_append(&out, "\n", 1); /* the blank line that ends the message */
	if (rc == 0 && (flush_out(f, &out, &pos) != 0 || fflush(f->mbox) != 0)) {
		log_warn("mbox %s: cannot write the mbox", f->label);
		rc = -1;
	}
	buf_free(&out);
	if (rc == 0 && (cv.stored > 0xffffffffu || cv.served > 0xffffffffu)) {
		log_warnx("mbox %s: message too large for the index", f->label);
		rc = -1;
	}
	if (rc != 0) {
		os_truncate(f->mbox, f->end); /* never acknowledged: leave no torn bytes */
		return -1;
	}
	memset(r, 0, sizeof *r);
	r->fromlen = (uint32_t)fromlen;
	r->m.offset = f->end + fromlen;
	r->m.length = (uint32_t)cv.stored;
	r->m.size = (uint32_t)cv.served;
	return 0;
}

/* see rumble.h */
int mm_folder_append(struct mm_folder *h, struct spool *sp, const char *from, int64_t date,
        uint32_t flags, uint64_t qid, uint32_t *uid)
{
	struct mm__box *f = h->b;
	FILE *lk;
	struct mm__rec r;
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	if (f->x.h.uidnext == 0xffffffffu || append_mbox(f, sp, from, date, &r) != 0) {
		mm__end(f, lk);
		return -1;
	}
	r.m.uid = f->x.h.uidnext;
	r.m.flags = flags & ~MM_EXPUNGED;
	r.m.date = date > 0 ? date : os_time();
	r.m.savedate = os_time();
	r.m.modseq = f->x.h.modseq + 1;
	r.m.qid = qid;
	index_push(&f->x, &r);
	if (write_rec(f, f->x.nrec - 1) != 0) {
		f->x.nrec--;
		os_truncate(f->mbox, f->end);
		os_truncate(f->idx, IDX_HDR + (uint64_t)f->x.nrec * IDX_LINE);
		f->x.h.uidnext = r.m.uid; /* never seen by anyone */
		mm__end(f, lk);
		return -1;
	}
	live_rebuild(f);
	if (uid) {
		*uid = r.m.uid;
	}
	mm__end(f, lk);
	quota__charge(f->dir, f->domain, f->user, 1, r.m.size);
	return 0;
}

int mm_folder_sync(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	char ipath[1500];
	path_of(f, ".idx", ipath, sizeof ipath);
	os_mutex_lock(f->mu);
	/* the index is open only during an operation: its data is in the
	 * file's cache, which any descriptor's fsync writes out */
	FILE *idx = f->mbox && os_fsync(f->mbox) == 0 ? os_fopen_rw(ipath) : NULL;
	int rc = idx && os_fsync(idx) == 0 ? 0 : -1;
	if (idx) {
		fclose(idx);
	}
	os_mutex_unlock(f->mu);
	return rc;
}

int mm_folder_has_qid(struct mm_folder *h, uint64_t qid)
{
	struct mm__box *f = h->b;
	FILE *lk;
	if (qid == 0 || mm__begin(f, &lk) != 0) {
		return 0;
	}
	int found = 0;
	uint32_t n = f->x.nrec;
	for (uint32_t i = n > QID_SCAN ? n - QID_SCAN : 0; i < n && !found; i++) {
		found = f->x.rec[i].m.qid == qid;
	}
	mm__end(f, lk);
	return found;
}

/* ---- flags, expunge, compaction ---- */

/* Index in x.rec of the live message with uid, or -1. */
/* see rumble.h */
long mm__find_uid(const struct mm__box *f, uint32_t uid)
{
	uint32_t lo = 0, hi = f->x.nrec;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->x.rec[mid].m.uid < uid) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < f->x.nrec && f->x.rec[lo].m.uid == uid && !(f->x.rec[lo].m.flags & MM_EXPUNGED)
	               ? (long)lo
	               : -1;
}

int mm_msg_set_flags(struct mm_folder *h, uint32_t i, uint32_t flags)
{
	struct mm__box *f = h->b;
	FILE *lk;
	os_mutex_lock(f->mu);
	uint32_t uid = i < f->nlive ? f->x.rec[f->live[i]].m.uid : 0;
	os_mutex_unlock(f->mu);
	/* the refresh may renumber: find the message again by its UID */
	if (uid == 0 || mm__begin(f, &lk) != 0) {
		return -1;
	}
	long k = mm__find_uid(f, uid);
	int rc = -1;
	if (k >= 0) {
		struct mm__rec *r = &f->x.rec[k];
		r->m.flags = flags & ~MM_EXPUNGED;
		r->m.modseq = ++f->x.h.modseq;
		rc = write_rec(f, (uint32_t)k) == 0 && mm__write_header(f) == 0 ? 0 : -1;
	}
	mm__end(f, lk);
	return rc;
}

/* see rumble.h; returns the number of messages expunged. */
int mm_folder_expunge(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	FILE *lk;
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	int n = 0, rc = 0;
	int64_t bytes = 0;
	for (uint32_t i = 0; i < f->x.nrec && rc == 0; i++) {
		struct mm__rec *r = &f->x.rec[i];
		if ((r->m.flags & (MM_DELETED | MM_EXPUNGED)) == MM_DELETED) {
			r->m.flags |= MM_EXPUNGED;
			r->m.modseq = ++f->x.h.modseq;
			rc = write_rec(f, i);
			n++;
			bytes += r->m.size;
		}
	}
	if (n && mm__write_header(f) != 0) {
		rc = -1;
	}
	live_rebuild(f);
	mm__end(f, lk);
	if (n) {
		quota__charge(f->dir, f->domain, f->user, -n, -bytes);
	}
	return rc == 0 ? n : -1;
}

/* see rumble.h; returns the number of messages expunged. */
int mm_folder_expunge_uids(
        struct mm_folder *h, uint32_t uidvalidity, const uint32_t *uids, uint32_t n)
{
	struct mm__box *f = h->b;
	FILE *lk;
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	if (f->x.h.uidvalidity != uidvalidity) {
		log_warnx("mbox %s: uidvalidity changed; nothing expunged", f->label);
		mm__end(f, lk);
		return -1; /* the UIDs may now name other messages */
	}
	int done = 0, rc = 0;
	int64_t bytes = 0;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		long k = mm__find_uid(f, uids[i]); /* gone already: nothing to do */
		if (k >= 0) {
			struct mm__rec *r = &f->x.rec[k];
			r->m.flags |= MM_DELETED | MM_EXPUNGED;
			r->m.modseq = ++f->x.h.modseq;
			rc = write_rec(f, (uint32_t)k);
			done++;
			bytes += r->m.size;
		}
	}
	if (done && mm__write_header(f) != 0) {
		rc = -1;
	}
	live_rebuild(f);
	mm__end(f, lk);
	if (done) {
		quota__charge(f->dir, f->domain, f->user, -done, -bytes);
	}
	return rc == 0 ? done : -1;
}

void mm_folder_usage(struct mm_folder *h, uint64_t *expunged, uint64_t *total)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	*expunged = 0;
	for (uint32_t i = 0; i < f->x.nrec; i++) {
		const struct mm__rec *r = &f->x.rec[i];
		if (r->m.flags & MM_EXPUNGED) {
			*expunged += r->fromlen + (uint64_t)r->m.length + 1;
		}
	}
	*total = f->end;
	os_mutex_unlock(f->mu);
}

/* Copies bytes [from, from + n) of src to the end of dst. */
static int copy_range(FILE *src, uint64_t from, uint64_t n, FILE *dst, char *chunk)
{
	while (n > 0) {
		size_t want = n < CHUNK ? (size_t)n : CHUNK;
		if (mm__read_at(src, from, chunk, want) != 0 ||
		        fwrite(chunk, 1, want, dst) != want) {
			return -1;
		}
		from += want;
		n -= want;
	}
	return 0;
}

/* Writes the live messages to NAME.mbox.new and their index to
 * NAME.idx.new, both fsynced; fills nx. */
static int compact_write(
        struct mm__box *f, const char *mnew, const char *inew, struct mm__index *nx)
{
	FILE *out = os_fopen_private(mnew, "wb");
	if (!out) {
		log_warn("mbox %s: cannot create %s", f->label, mnew);
		return -1;
	}
	char *chunk = xmalloc(CHUNK);
	uint64_t pos = 0;
	int rc = 0;
	nx->h = f->x.h;
	if (f->x.kw) {
		nx->kw = xmalloc(IDX_KW_SLOTS * sizeof *nx->kw);
		memcpy(nx->kw, f->x.kw, IDX_KW_SLOTS * sizeof *nx->kw);
	}
	nx->h.gen = f->x.h.gen + 1;
	nx->h.stale = 0;
	nx->h.floor = f->last_expunge > f->x.h.floor ? f->last_expunge : f->x.h.floor;
	for (uint32_t i = 0; i < f->x.nrec && rc == 0; i++) {
		struct mm__rec r = f->x.rec[i];
		if (r.m.flags & MM_EXPUNGED) {
			continue;
		}
		uint64_t n = r.fromlen + (uint64_t)r.m.length + 1;
		rc = copy_range(f->mbox, r.m.offset - r.fromlen, n, out, chunk);
		r.m.offset = pos + r.fromlen;
		pos += n;
		index_push(nx, &r);
	}
	xfree(chunk);
	if (rc != 0 || os_fsync(out) != 0) {
		log_warn("mbox %s: cannot write %s", f->label, mnew);
		rc = -1;
	}
	fclose(out);
	struct buf b;
	buf_init(&b);
	index_render(nx, &b);
	FILE *io = rc == 0 ? os_fopen_private(inew, "wb") : NULL;
	if (rc == 0 && (!io || fwrite(b.data, 1, b.len, io) != b.len || os_fsync(io) != 0)) {
		log_warn("mbox %s: cannot write %s", f->label, inew);
		rc = -1;
	}
	if (io) {
		fclose(io);
	}
	buf_free(&b);
	return rc;
}

/* see rumble.h. A crash between the two renames is finished by the next
 * open (recover_compaction); one before them leaves the old files. */
int mm_folder_compact(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	FILE *lk;
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	if (f->nlive == f->x.nrec) {
		mm__end(f, lk);
		return 0; /* nothing expunged */
	}
	char mpath[1500], ipath[1500], mnew[1500], inew[1500];
	path_of(f, ".mbox", mpath, sizeof mpath);
	path_of(f, ".idx", ipath, sizeof ipath);
	path_of(f, ".mbox.new", mnew, sizeof mnew);
	path_of(f, ".idx.new", inew, sizeof inew);
	struct mm__index nx;
	memset(&nx, 0, sizeof nx);
	int rc = compact_write(f, mnew, inew, &nx);
	if (rc == 0) {
		mark_stale(f);
		close_files(f); /* Windows renames only over closed files */
		if (os_rename_atomic(mnew, mpath) != 0) {
			log_warn("mbox %s: cannot rename %s", f->label, mnew);
			rc = -1; /* load_all clears the stale mark */
		} else if (os_rename_atomic(inew, ipath) != 0) {
			log_warn("mbox %s: cannot rename %s", f->label, inew);
			rc = -1; /* the next load_all finishes it */
		} else {
			os_fsync_dir(f->dir);
		}
	}
	if (rc != 0) {
		os_remove(mnew);
		index_free(&nx);
		load_all(f); /* whatever state the files are in, read it back */
		mm__end(f, lk);
		return -1;
	}
	mm__views_keep(f);
	index_free(&f->x);
	f->x = nx;
	f->x.hdr_modseq = nx.h.modseq;
	f->loads++;
	f->mbox = os_fopen_rw(mpath);
	f->idx = os_fopen_rw(ipath);
	if (!f->mbox || !f->idx) {
		log_warn("mbox %s: cannot reopen after compaction", f->label);
		rc = -1;
	}
	live_rebuild(f);
	mm__end(f, lk);
	return rc;
}

/* ---- IMAP: keywords, flag updates, lookups by UID ---- */

/* see rumble.h */
long mm_folder_find(struct mm_folder *h, uint32_t uid)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	uint32_t lo = 0, hi = f->nlive;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (f->x.rec[f->live[mid]].m.uid < uid) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	long i = lo < f->nlive && f->x.rec[f->live[lo]].m.uid == uid ? (long)lo : -1;
	os_mutex_unlock(f->mu);
	return i;
}

/* see rumble.h */
const char *mm_folder_keyword_name(struct mm_folder *h, int i)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	int has = i >= 0 && i < IDX_KW_SLOTS && f->x.kw && f->x.kw[i][0];
	if (has) {
		memcpy(h->kwname, f->x.kw[i], sizeof h->kwname);
	}
	os_mutex_unlock(f->mu);
	return has ? h->kwname : NULL;
}

/* see rumble.h */
uint32_t mm_folder_keyword_mask(struct mm_folder *h)
{
	struct mm__box *f = h->b;
	uint32_t mask = 0;
	os_mutex_lock(f->mu);
	for (int i = 0; f->x.kw && i < IDX_KW_SLOTS; i++) {
		mask |= f->x.kw[i][0] ? 1u << i : 0;
	}
	os_mutex_unlock(f->mu);
	return mask;
}

static int kw_find(const struct mm__index *x, const char *name)
{
	for (int i = 0; x->kw && i < IDX_KW_SLOTS; i++) {
		if (x->kw[i][0] && rl_strcasecmp(x->kw[i], name) == 0) {
			return i;
		}
	}
	return -1;
}

/* Takes a free slot for name and writes its line; -1 when all are used. */
static int kw_add(struct mm__box *f, const char *name)
{
	char line[IDX_LINE];
	int i = 0;
	if (!f->x.kw) {
		f->x.kw = xcalloc(IDX_KW_SLOTS, sizeof *f->x.kw);
	}
	while (i < IDX_KW_SLOTS && f->x.kw[i][0]) {
		i++;
	}
	if (i == IDX_KW_SLOTS) {
		return -1;
	}
	rl_strlcpy(f->x.kw[i], name, IDX_LINE);
	kw_render(&f->x, i, line);
	f->x.h.modseq++; /* other openers re-read the whole index */
	if (write_at(f->idx, IDX_LINE * (uint64_t)(1 + i), line, IDX_LINE) != 0 ||
	        mm__write_header(f) != 0) {
		f->x.kw[i][0] = '\0';
		return -1;
	}
	return i;
}

/* see rumble.h */
int mm_folder_keyword(struct mm_folder *h, const char *name, int create)
{
	struct mm__box *f = h->b;
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= IDX_LINE - 1) {
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		if ((unsigned char)name[k] <= ' ' || (unsigned char)name[k] >= 0x7f) {
			return -1;
		}
	}
	os_mutex_lock(f->mu);
	int i = kw_find(&f->x, name);
	os_mutex_unlock(f->mu);
	FILE *lk;
	if (i >= 0 || !create || mm__begin(f, &lk) != 0) {
		return i;
	}
	i = kw_find(&f->x, name); /* another opener may have added it */
	if (i < 0) {
		i = kw_add(f, name);
	}
	mm__end(f, lk);
	return i;
}

/* What a STORE asks: flags and keywords to set, add or remove, and the
 * modseq a message may not be above (UINT64_MAX: any), with room for the
 * UIDs of those that are. */
struct store_req {
	int op;
	uint32_t flags, keywords;
	uint64_t unchanged;
	uint32_t *failed, nfailed;
};

/* Applies a STORE to the messages with these UIDs; f is locked. The
 * number changed, or -1. */
static int store_locked(struct mm__box *f, const uint32_t *uids, uint32_t n, struct store_req *q)
{
	int changed = 0, rc = 0, op = q->op;
	uint32_t flags = q->flags & ~MM_EXPUNGED, keywords = q->keywords;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		long k = mm__find_uid(f, uids[i]);
		if (k < 0) {
			continue; /* expunged meanwhile */
		}
		struct mm_msg *m = &f->x.rec[k].m;
		if (m->modseq > q->unchanged) {
			q->failed[q->nfailed++] = m->uid;
			continue;
		}
		uint32_t fl = op == MM_STORE_ADD   ? m->flags | flags
		              : op == MM_STORE_DEL ? m->flags & ~flags
		                                   : flags;
		uint32_t kw = op == MM_STORE_ADD   ? m->keywords | keywords
		              : op == MM_STORE_DEL ? m->keywords & ~keywords
		                                   : keywords;
		if (fl != m->flags || kw != m->keywords) {
			m->flags = fl;
			m->keywords = kw;
			m->modseq = f->last_flags = ++f->x.h.modseq;
			rc = write_rec(f, (uint32_t)k);
			changed++;
		}
	}
	if (changed && mm__write_header(f) != 0) {
		rc = -1;
	}
	return rc == 0 ? changed : -1;
}

/* see rumble.h */
int mm_folder_store(struct mm_folder *h, const uint32_t *uids, uint32_t n, int op, uint32_t flags,
        uint32_t keywords)
{
	struct mm__box *f = h->b;
	FILE *lk;
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	struct store_req q = {op, flags, keywords, UINT64_MAX, NULL, 0};
	int rc = store_locked(f, uids, n, &q);
	mm__end(f, lk);
	return rc;
}

/* see rumble.h */
int mm_view_store_if(struct mm_view *v, const uint32_t *uids, uint32_t n, int op,
        uint32_t flags, uint32_t keywords, uint64_t unchanged, uint32_t *failed, uint32_t *nfailed)
{
	struct mm__box *f = v->b;
	FILE *lk;
	struct store_req q = {op, flags, keywords, unchanged, failed, 0};
	if (mm__begin(f, &lk) != 0) {
		return -1;
	}
	/* flag changes by others since the view was told; new mail (told as
	 * EXISTS) and a new keyword's name move the modseq but are not that */
	int others = f->last_flags > v->flags_seen;
	int rc = store_locked(f, uids, n, &q);
	if (!others) {
		v->flags_seen = f->x.h.modseq; /* only its own changes since: told by the caller */
	}
	mm__end(f, lk);
	if (nfailed) {
		*nfailed = q.nfailed;
	}
	return rc;
}

/* see rumble.h */
int mm_view_store(struct mm_view *v, const uint32_t *uids, uint32_t n, int op, uint32_t flags,
        uint32_t keywords)
{
	return mm_view_store_if(v, uids, n, op, flags, keywords, UINT64_MAX, NULL, NULL);
}

/* see rumble.h */
uint32_t mm_folder_first_recent(struct mm_folder *h)
{
	os_mutex_lock(h->b->mu);
	uint32_t r = h->b->x.h.recent;
	os_mutex_unlock(h->b->mu);
	return r;
}

/* see rumble.h */
uint64_t mm_folder_modseq(struct mm_folder *h)
{
	os_mutex_lock(h->b->mu);
	uint64_t m = h->b->x.h.modseq;
	os_mutex_unlock(h->b->mu);
	return m ? m : 1;
}

/* ---- for mailman.c: folder paths, forgetting a box ---- */

/* Writes the UIDVALIDITY of the index at ipath into the lock file, as
 * new_uidvalidity reads it, unless the file remembers a greater one. */
/* see rumble.h */
void mm__remember_uidvalidity(FILE *lk, const char *ipath)
{
	char line[IDX_LINE], text[32] = "";
	unsigned last = 0;
	struct mm__hdr h;
	FILE *fp = os_fopen(ipath, "rb");
	int ok = fp && fread(line, 1, IDX_LINE, fp) == IDX_LINE && hdr_parse(line, &h) > 0;
	if (fp) {
		fclose(fp);
	}
	if (!ok || (seek_to(lk, 0) == 0 && fread(text, 1, sizeof text - 1, lk) > 0 &&
	                   sscanf(text, "uidvalidity %u", &last) == 1 && last >= h.uidvalidity)) {
		return;
	}
	snprintf(text, sizeof text, "uidvalidity %010u\n", h.uidvalidity);
	write_at(lk, 0, text, strlen(text));
}

/* see rumble.h */
int mm__folder_base(const char *domain, const char *user, const char *folder, char *dir,
        size_t dlen, char *base, size_t blen)
{
	struct mm__box *tmp = xcalloc(1, sizeof *tmp);
	int rc = domain && user && folder && folder_paths(tmp, domain, user, folder) == 0 &&
	                         rl_strlcpy(dir, tmp->dir, dlen) < dlen &&
	                         rl_strlcpy(base, tmp->base, blen) < blen
	                 ? 0
	                 : -1;
	free(tmp);
	return rc;
}

/* see rumble.h */
void mm__forget(const char *base)
{
	os_mutex_lock(boxes_mutex());
	struct mm__box *f = box_find(base);
	if (f) {
		box_unlist(f);
		os_atomic_store_int(&f->forgotten, 1);
		mm__ring(f); /* its watchers find it gone */
	}
	os_mutex_unlock(boxes_mutex());
}

/* ---- the look at watched folders' files, for other processes' changes ----
 *
 * Changes made in this process wake watchers at once (mm__end). Another
 * process's (the command line, a program appending to the mbox) are only
 * in the files: one thread per process looks at the files of every box
 * with a watcher every MM_WATCH_LOOK_MS, as any operation on the box
 * does (mm__begin), and mm__end wakes the watchers when it found a
 * change. One look per watched folder, not per client: 10,000 clients in
 * IDLE on one INBOX cost one look every 30 s. */

static os_mutex *look_mu; /* the four below */
static os_cond *look_cv;
static os_thread *look_thread;
static int look_stop;
static int look_ms = MM_WATCH_LOOK_MS;

/* see rumble.h */
void mm__watch_interval(int ms)
{
	look_ms = ms;
}

/* The listed boxes with watchers, each with a reference taken; *n of them. */
static struct mm__box **watched_boxes(size_t *n)
{
	struct mm__box **list = NULL;
	size_t cap = 0;
	*n = 0;
	os_mutex_lock(boxes_mutex());
	for (struct mm__box *f = boxes; f; f = f->next) {
		if (!mm__watched(f)) {
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof *list);
		}
		f->refs++;
		list[(*n)++] = f;
	}
	os_mutex_unlock(boxes_mutex());
	return list;
}

static void look_once(void)
{
	size_t n;
	struct mm__box **list = watched_boxes(&n);
	for (size_t i = 0; i < n; i++) {
		FILE *lk;
		if (mm__begin(list[i], &lk) == 0) {
			mm__end(list[i], lk);
		}
		box_release(list[i]);
	}
	xfree(list);
}

static void look_main(void *arg)
{
	(void)arg;
	os_mutex_lock(look_mu);
	int64_t next = os_now_ms() + look_ms;
	while (!look_stop) {
		int64_t now = os_now_ms();
		if (now < next) {
			os_cond_wait(look_cv, look_mu, (int)(next - now));
			continue;
		}
		os_mutex_unlock(look_mu);
		look_once();
		os_mutex_lock(look_mu);
		next = os_now_ms() + look_ms;
	}
	os_mutex_unlock(look_mu);
}

/* see rumble.h */
void mm__watch_start(void)
{
	os_mutex_lock(rl_mutex_once(&look_mu));
	if (!look_thread) {
		look_cv = look_cv ? look_cv : os_cond_new();
		look_stop = 0;
		look_thread = os_thread_start(look_main, NULL);
		if (!look_thread) {
			log_warn("mbox: cannot start the thread that looks at watched folders");
		}
	}
	os_mutex_unlock(look_mu);
}

/* see rumble.h */
void mm__watch_stop(void)
{
	os_mutex_lock(rl_mutex_once(&look_mu));
	os_thread *t = look_thread;
	look_thread = NULL;
	look_stop = 1;
	if (look_cv) {
		os_cond_broadcast(look_cv);
	}
	os_mutex_unlock(look_mu);
	if (t) {
		os_thread_join(t);
	}
	os_mutex_lock(look_mu);
	if (look_cv && !look_thread) {
		os_cond_free(look_cv);
		look_cv = NULL;
	}
	os_mutex_unlock(look_mu);
}
