/*
 * mime_text.c - what a message's text is: charsets to UTF-8, transfer
 * encodings (RFC 2045), RFC 2047 encoded words, and searching a part's
 * text as IMAP's SEARCH BODY reads it. Pure, no I/O; the decoders and the
 * search also work on a message streamed by in pieces, with the same
 * results as on the whole buffer (see mime.c for the tree).
 */
#include <string.h>

#include "rumble.h"

/* ---- small helpers (no <ctype.h>: its answers depend on the locale) ---- */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

static int to_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = to_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Case-insensitive comparison of s[0..n) with the lower-case word w. */
static int word_is(const char *s, size_t n, const char *w)
{
	size_t i = 0;
	for (; i < n && w[i]; i++) {
		if (to_lower((unsigned char)s[i]) != w[i]) {
			return 0;
		}
	}
	return i == n && w[i] == '\0';
}

static void buf_putc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

/* ---- charsets ---- */

/* see rumble.h */
int mime__charset_id(const char *s, size_t n)
{
	/* ISO-8859-1 is read as windows-1252, as browsers do (WHATWG
	 * Encoding): mail labelled latin-1 with bytes 0x80-0x9f means the
	 * Windows characters, never the C1 controls. */
	static const struct {
		const char *name;
		int id;
	} names[] = {
	        {"utf-8", MIME_CS_UTF8},
	        {"utf8", MIME_CS_UTF8},
	        {"us-ascii", MIME_CS_ASCII},
	        {"ascii", MIME_CS_ASCII},
	        {"ansi_x3.4-1968", MIME_CS_ASCII},
	        {"iso646-us", MIME_CS_ASCII},
	        {"us", MIME_CS_ASCII},
	        {"iso-8859-1", MIME_CS_CP1252},
	        {"iso8859-1", MIME_CS_CP1252},
	        {"iso_8859-1", MIME_CS_CP1252},
	        {"iso_8859-1:1987", MIME_CS_CP1252},
	        {"latin1", MIME_CS_CP1252},
	        {"latin-1", MIME_CS_CP1252},
	        {"l1", MIME_CS_CP1252},
	        {"cp819", MIME_CS_CP1252},
	        {"iso-ir-100", MIME_CS_CP1252},
	        {"windows-1252", MIME_CS_CP1252},
	        {"cp1252", MIME_CS_CP1252},
	        {"x-cp1252", MIME_CS_CP1252},
	        {"iso-8859-15", MIME_CS_LATIN9},
	        {"iso8859-15", MIME_CS_LATIN9},
	        {"iso_8859-15", MIME_CS_LATIN9},
	        {"latin9", MIME_CS_LATIN9},
	        {"latin-9", MIME_CS_LATIN9},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (word_is(s, n, names[i].name)) {
			return names[i].id;
		}
	}
	return MIME_CS_UNKNOWN;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, surrogates or code points past U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c < 0x80) {
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : lo;
		hi = c == 0xed ? 0x9f : hi;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : lo;
		hi = c == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi) {
		return 0;
	}
	for (size_t i = 2; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
	}
	return len;
}

static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0, k; i < n; i += k) {
		if ((k = utf8_len(p + i, n - i)) == 0) {
			return 0;
		}
	}
	return 1;
}

static void utf8_put(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	}
	buf_append(b, u, n);
}

/* Well-formed runs as they are; each byte of a bad sequence U+FFFD. */
static void utf8_clean(const char *s, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0, i = 0;
	while (i < n) {
		size_t k = utf8_len(p + i, n - i);
		if (k) {
			i += k;
			continue;
		}
		buf_append(out, s + run, i - run);
		utf8_put(out, 0xfffd);
		run = ++i;
	}
	buf_append(out, s + run, n - run);
}

/* windows-1252 0x80-0x9f; the five holes keep their C1 code points. */
static const uint16_t cp1252_c1[32] = {0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020,
        0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f, 0x0090, 0x2018,
        0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153,
        0x009d, 0x017e, 0x0178};

/* ISO-8859-15 differs from ISO-8859-1 in eight places. */
static unsigned latin9(unsigned c)
{
	static const uint16_t from[8] = {0xa4, 0xa6, 0xa8, 0xb4, 0xb8, 0xbc, 0xbd, 0xbe};
	static const uint16_t to[8] = {
	        0x20ac, 0x0160, 0x0161, 0x017d, 0x017e, 0x0152, 0x0153, 0x0178};
	for (int i = 0; i < 8; i++) {
		if (from[i] == c) {
			return to[i];
		}
	}
	return c;
}

static void single_byte(int cs, const char *s, size_t n, struct buf *out)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned char)s[i];
		if (c < 0x80) {
			continue;
		}
		buf_append(out, s + run, i - run);
		run = i + 1;
		if (cs == MIME_CS_LATIN9) {
			utf8_put(out, latin9(c));
		} else {
			utf8_put(out, c < 0xa0 ? cp1252_c1[c - 0x80] : c);
		}
	}
	buf_append(out, s + run, n - run);
}

/* see rumble.h */
void mime__convert(int cs, const char *s, size_t n, struct buf *out)
{
	if (cs == MIME_CS_UTF8) {
		utf8_clean(s, n, out);
	} else if (cs == MIME_CS_ASCII && utf8_valid(s, n)) {
		buf_append(out, s, n); /* mislabelled UTF-8, or plain ASCII */
	} else {
		single_byte(cs == MIME_CS_LATIN9 ? MIME_CS_LATIN9 : MIME_CS_CP1252, s, n, out);
	}
}

/* see rumble.h */
int mime_charset_utf8(const char *charset, const char *in, size_t n, struct buf *out)
{
	int cs = mime__charset_id(charset, strlen(charset));
	if (cs == MIME_CS_UNKNOWN) {
		return -1;
	}
	mime__convert(cs, in, n, out);
	return 0;
}

/* ---- transfer encodings ---- */

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	} else if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	} else if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	} else if (c == '+') {
		return 62;
	} else if (c == '/') {
		return 63;
	}
	return -1;
}

/* Bits go through an accumulator: a quantum cut short still yields its
 * whole bytes, and "=" ends a quantum, so that two encoded blocks pasted
 * together both decode. The state carries over from piece to piece. */
static void b64_run(unsigned *acc, unsigned *bits, const char *in, size_t n, struct buf *out)
{
	buf_reserve(out, n / 4 * 3 + 3);
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)in[i]);
		if (in[i] == '=') {
			*acc = *bits = 0;
			continue;
		}
		if (v < 0) {
			continue;
		}
		*acc = (*acc << 6 | (unsigned)v) & 0xfff;
		*bits += 6;
		if (*bits >= 8) {
			*bits -= 8;
			out->data[out->len++] = (char)(*acc >> *bits & 0xff);
		}
	}
	out->data[out->len] = '\0';
}

/* see rumble.h */
void mime_decode_base64(const char *in, size_t n, struct buf *out)
{
	unsigned acc = 0, bits = 0;
	b64_run(&acc, &bits, in, n, out);
}

/* Quoted-printable (RFC 2045 6.7) of in[0..n) onto out; returns the bytes
 * used. QP_FINAL: in is all there is. QP_MORE: more is to come, so it
 * stops before a choice that needs bytes past n (after '=', or a run of
 * blanks that may end the line). */
enum { QP_FINAL, QP_MORE };
static size_t qp_run(const char *in, size_t n, int mode, struct buf *out)
{
	size_t i = 0;
	buf_reserve(out, n);
	while (i < n) {
		char c = in[i];
		if (c == '=') {
			if (i + 2 >= n && mode != QP_FINAL) {
				break;
			}
			int hi = i + 2 < n ? hex_value((unsigned char)in[i + 1]) : -1;
			int lo = i + 2 < n ? hex_value((unsigned char)in[i + 2]) : -1;
			if (i + 2 < n && hi >= 0 && lo >= 0) {
				out->data[out->len++] = (char)(hi << 4 | lo);
				i += 3;
				continue;
			}
			/* a soft line break: "=", maybe blanks, the line end */
			size_t j = i + 1;
			while (j < n && is_wsp(in[j])) {
				j++;
			}
			if ((j == n || (in[j] == '\r' && j + 1 == n)) && mode == QP_MORE) {
				break;
			}
			if ((j == n && mode == QP_FINAL) || (j < n && in[j] == '\n')) {
				i = j < n ? j + 1 : n;
				continue;
			}
			if (j < n && in[j] == '\r' &&
			        (j + 1 == n ? mode == QP_FINAL : in[j + 1] == '\n')) {
				i = j + 2 < n ? j + 2 : n;
				continue;
			}
			out->data[out->len++] = '='; /* a bad escape stays as it is */
			i++;
			continue;
		}
		if (is_wsp(c)) {
			/* blanks at a line end were added in transit: drop them */
			size_t j = i;
			while (j < n && is_wsp(in[j])) {
				j++;
			}
			if (j == n && mode == QP_MORE) {
				break;
			}
			if (j < n && in[j] != '\r' && in[j] != '\n') {
				memcpy(out->data + out->len, in + i, j - i);
				out->len += j - i;
			}
			i = j;
			continue;
		}
		out->data[out->len++] = c;
		i++;
	}
	out->data[out->len] = '\0';
	return i;
}

/* see rumble.h */
void mime_decode_qp(const char *in, size_t n, struct buf *out)
{
	qp_run(in, n, QP_FINAL, out);
}

/* see rumble.h */
void mime_body_decode(const struct mime_msg *m, const struct mime_part *p, struct buf *out)
{
	const char *body = m->buf + p->body_off;
	if (strcmp(p->encoding, "base64") == 0) {
		mime_decode_base64(body, p->body_len, out);
	} else if (strcmp(p->encoding, "quoted-printable") == 0) {
		mime_decode_qp(body, p->body_len, out);
	} else {
		buf_append(out, body, p->body_len);
	}
}

/* see rumble.h */
int mime_body_text(const struct mime_msg *m, const struct mime_part *p, struct buf *out)
{
	if (strcmp(p->type, "text") != 0) {
		mime_body_decode(m, p, out);
		return 0;
	}
	const char *cs = mime_part_param(p, "charset");
	int id = cs ? mime__charset_id(cs, strlen(cs)) : MIME_CS_ASCII;
	if (id == MIME_CS_UNKNOWN) {
		mime_body_decode(m, p, out);
		return -1;
	}
	struct buf raw;
	buf_init(&raw);
	mime_body_decode(m, p, &raw);
	mime__convert(id, raw.data ? raw.data : "", raw.len, out);
	buf_free(&raw);
	return 0;
}

/* ---- RFC 2047 encoded words ---- */

struct eword {
	int cs;
	char enc; /* 'b' or 'q' */
	const char *text;
	size_t textn, len;
};

/* The encoded word at s ("=?charset?B?text?=") when s starts one in a
 * charset we convert; 0 otherwise. No blanks inside (RFC 2047 5). */
static int parse_eword(const char *s, size_t n, struct eword *w)
{
	if (n < 8 || s[0] != '=' || s[1] != '?') {
		return 0;
	}
	size_t i = 2;
	while (i < n && i < 2 + 64 && s[i] != '?' && !is_blank((unsigned char)s[i])) {
		i++;
	}
	if (i == 2 || i + 2 >= n || s[i] != '?' || s[i + 2] != '?') {
		return 0;
	}
	size_t csn = i - 2;
	const char *star = memchr(s + 2, '*', csn); /* RFC 2231 5: charset*language */
	if (star) {
		csn = (size_t)(star - (s + 2));
	}
	w->enc = (char)to_lower((unsigned char)s[i + 1]);
	if (w->enc != 'b' && w->enc != 'q') {
		return 0;
	}
	size_t t = i + 3, j = t;
	while (j < n && s[j] != '?' && !is_blank((unsigned char)s[j])) {
		j++;
	}
	if (j + 1 >= n || s[j] != '?' || s[j + 1] != '=') {
		return 0;
	}
	w->text = s + t;
	w->textn = j - t;
	w->len = j + 2;
	w->cs = mime__charset_id(s + 2, csn);
	return w->cs != MIME_CS_UNKNOWN;
}

static void decode_q(const char *s, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '_') {
			buf_putc(out, ' ');
		} else if (s[i] == '=' && i + 2 < n &&
		           (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
		           (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
			buf_putc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			buf_putc(out, s[i]);
		}
	}
}

static int all_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!is_wsp(s[i]) && s[i] != '\r' && s[i] != '\n') {
			return 0;
		}
	}
	return 1;
}

/* see rumble.h. Adjacent words in one charset are decoded into one byte
 * string before conversion, so that a character split between two words
 * (RFC 2047 5 forbids it; mailers do it) comes out whole. */
void mime_decode_words(const char *s, size_t n, struct buf *out)
{
	struct buf pend;
	int pend_cs = MIME_CS_UNKNOWN, after_word = 0;
	size_t text = 0; /* start of the text not yet written */
	buf_init(&pend);
	for (size_t i = 0; i < n;) {
		struct eword w;
		if (s[i] != '=' || !parse_eword(s + i, n - i, &w)) {
			i++;
			continue;
		}
		int joined = after_word && all_blank(s + text, i - text);
		if (pend.len && (!joined || w.cs != pend_cs)) {
			mime__convert(pend_cs, pend.data, pend.len, out);
			buf_reset(&pend);
		}
		if (!joined) {
			mime__convert(MIME_CS_ASCII, s + text, i - text, out);
		}
		pend_cs = w.cs;
		if (w.enc == 'b') {
			mime_decode_base64(w.text, w.textn, &pend);
		} else {
			decode_q(w.text, w.textn, &pend);
		}
		i += w.len;
		text = i;
		after_word = 1;
	}
	if (pend.len) {
		mime__convert(pend_cs, pend.data, pend.len, out);
	}
	mime__convert(MIME_CS_ASCII, s + text, n - text, out);
	buf_free(&pend);
}

/* ---- transfer decoding as the text streams by ---- */

#define QP_PEND_MAX (64 * 1024) /* undecided blanks kept; beyond, taken as text */

enum { DEC_NONE, DEC_BASE64, DEC_QP };

/* see rumble.h */
void mime_decoder_init(struct mime_decoder *d, const char *encoding)
{
	memset(d, 0, sizeof *d);
	d->kind = !encoding                                   ? DEC_NONE
	          : strcmp(encoding, "base64") == 0           ? DEC_BASE64
	          : strcmp(encoding, "quoted-printable") == 0 ? DEC_QP
	                                                      : DEC_NONE;
	buf_init(&d->pend);
}

/* A run of blanks (maybe after '=') too long to keep undecided: as if
 * text followed it (only a line of more than 64 KB of blanks gets here). */
static void qp_force(struct mime_decoder *d, struct buf *out)
{
	size_t i = 0;
	const char *p = d->pend.data;
	if (p[0] == '=') {
		buf_putc(out, '=');
		i = 1;
	}
	size_t j = i;
	while (j < d->pend.len && is_wsp(p[j])) {
		j++;
	}
	buf_append(out, p + i, j - i);
	buf_consume(&d->pend, j);
}

/* see rumble.h */
void mime_decoder_feed(struct mime_decoder *d, const char *in, size_t n, struct buf *out)
{
	if (d->kind == DEC_BASE64) {
		b64_run(&d->acc, &d->bits, in, n, out);
	} else if (d->kind == DEC_NONE) {
		buf_append(out, in, n);
	} else if (d->pend.len == 0) {
		size_t k = qp_run(in, n, QP_MORE, out);
		buf_append(&d->pend, in + k, n - k);
	} else {
		size_t b = 0;
		while (b < n && is_wsp(in[b])) {
			b++;
		}
		if (b == n && is_wsp(d->pend.data[d->pend.len - 1])) {
			buf_append(
			        &d->pend, in, n); /* the run of blanks goes on: still undecided */
			if (d->pend.len > QP_PEND_MAX) {
				qp_force(d, out);
			}
			return;
		}
		buf_append(&d->pend, in, n);
		if (d->pend.len > QP_PEND_MAX) {
			qp_force(d, out);
		}
		size_t k = qp_run(d->pend.data, d->pend.len, QP_MORE, out);
		buf_consume(&d->pend, k);
	}
}

/* see rumble.h */
void mime_decoder_end(struct mime_decoder *d, struct buf *out)
{
	if (d->kind == DEC_QP && d->pend.len) {
		qp_run(d->pend.data, d->pend.len, QP_FINAL, out);
	}
	buf_free(&d->pend);
}

/* ---- searching a part's text ---- */

/* p[0..n) (n < 4) may still become a well-formed UTF-8 sequence. */
static int utf8_partial(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len = c >= 0xc2 && c <= 0xdf   ? 2
	             : c >= 0xe0 && c <= 0xef ? 3
	             : c >= 0xf0 && c <= 0xf4 ? 4
	                                      : 0;
	return len > n;
}

static int ci_at(const char *h, const char *nd, size_t nn)
{
	for (size_t i = 0; i < nn; i++) {
		if (to_lower((unsigned char)h[i]) != to_lower((unsigned char)nd[i])) {
			return 0;
		}
	}
	return 1;
}

/* see rumble.h */
int mime_ci_find(const char *h, size_t hn, const char *nd, size_t nn)
{
	if (nn == 0) {
		return 1;
	}
	int a = to_lower((unsigned char)nd[0]), b = a >= 'a' && a <= 'z' ? a - 32 : a;
	for (size_t i = 0; i + nn <= hn; i++) {
		int c = (unsigned char)h[i];
		if ((c == a || c == b) && ci_at(h + i, nd, nn)) {
			return 1;
		}
	}
	return 0;
}

/* One needle over a text that comes in pieces: the last nn - 1 bytes of
 * what came are kept for a match across the seam. */
struct finder {
	const char *nd;
	size_t nn;
	struct buf carry;
	int found;
};

static void finder_init(struct finder *f, const char *nd, size_t nn)
{
	memset(f, 0, sizeof *f);
	f->nd = nd;
	f->nn = nn;
	f->found = nn == 0; /* "" is in every text, the empty one too */
	buf_init(&f->carry);
}

static void finder_feed(struct finder *f, const char *p, size_t n)
{
	size_t keep = f->nn ? f->nn - 1 : 0;
	if (f->found || n == 0) {
		return;
	}
	if (f->carry.len) {
		size_t k = n < keep ? n : keep, had = f->carry.len;
		buf_append(&f->carry, p, k);
		f->found = mime_ci_find(f->carry.data, f->carry.len, f->nd, f->nn);
		f->carry.len = had;
	}
	f->found = f->found || mime_ci_find(p, n, f->nd, f->nn);
	if (n >= keep) {
		buf_reset(&f->carry);
		buf_append(&f->carry, p + n - keep, keep);
	} else {
		buf_append(&f->carry, p, n);
		buf_consume(&f->carry, f->carry.len > keep ? f->carry.len - keep : 0);
	}
}

/* The text of one leaf, as IMAP's SEARCH BODY reads it (mime_body_text
 * for text parts, the body as stored for others), searched as it comes. */
struct mime_find {
	int raw; /* not a text part: the stored bytes */
	int cs;  /* MIME_CS_*; MIME_CS_UNKNOWN: the decoded bytes as they are */
	struct mime_decoder dec;
	struct buf xbuf, dbuf, cbuf; /* decoded, converted, UTF-8 being checked */
	unsigned char hold[4];       /* UTF-8: a sequence cut by the piece's end */
	size_t nhold;
	int valid;          /* us-ascii: all so far is UTF-8 (then it is read as such) */
	struct finder a, b; /* b: us-ascii read as windows-1252 */
};

/* see rumble.h */
struct mime_find *mime_find_new(const struct mime_part *p, const char *needle, size_t n)
{
	struct mime_find *f = xcalloc(1, sizeof *f);
	f->raw = !mime_part_is(p, "text", NULL);
	const char *cs = mime_part_param(p, "charset");
	f->cs = f->raw ? MIME_CS_UNKNOWN : cs ? mime__charset_id(cs, strlen(cs)) : MIME_CS_ASCII;
	f->valid = 1;
	mime_decoder_init(&f->dec, f->raw ? NULL : p->encoding);
	buf_init(&f->xbuf);
	buf_init(&f->dbuf);
	buf_init(&f->cbuf);
	finder_init(&f->a, needle, n);
	finder_init(&f->b, needle, n);
	return f;
}

/* UTF-8 text with a sequence cut at the end held back (final: none). */
static void utf8_piece(struct mime_find *f, const char *p, size_t n, int final)
{
	buf_reset(&f->cbuf);
	buf_append(&f->cbuf, f->hold, f->nhold);
	buf_append(&f->cbuf, p, n);
	const unsigned char *u = (const unsigned char *)f->cbuf.data;
	size_t len = f->cbuf.len, cut = len;
	f->nhold = 0;
	for (size_t i = len > 3 ? len - 3 : 0; !final && i < len; i++) {
		if (u[i] >= 0xc0 && utf8_partial(u + i, len - i)) {
			cut = i; /* wait for the rest of this sequence */
			break;
		}
	}
	memcpy(f->hold, u + cut, len - cut);
	f->nhold = len - cut;
	f->cbuf.len = cut;
}

/* Decoded text on to the finders, converted as the charset says. */
static void find_text(struct mime_find *f, const char *p, size_t n, int final)
{
	if (f->cs == MIME_CS_UNKNOWN) {
		finder_feed(&f->a, p, n);
	} else if (f->cs == MIME_CS_UTF8) {
		utf8_piece(f, p, n, final);
		buf_reset(&f->dbuf);
		utf8_clean(f->cbuf.data ? f->cbuf.data : "", f->cbuf.len, &f->dbuf);
		finder_feed(&f->a, f->dbuf.data, f->dbuf.len);
	} else if (f->cs == MIME_CS_ASCII) {
		finder_feed(&f->a, p, n); /* as UTF-8, if it all is */
		utf8_piece(f, p, n, final);
		f->valid = f->valid && utf8_valid(f->cbuf.data ? f->cbuf.data : "", f->cbuf.len);
		buf_reset(&f->dbuf);
		single_byte(MIME_CS_CP1252, p, n, &f->dbuf);
		finder_feed(&f->b, f->dbuf.data, f->dbuf.len);
	} else {
		buf_reset(&f->dbuf);
		single_byte(f->cs, p, n, &f->dbuf);
		finder_feed(&f->a, f->dbuf.data, f->dbuf.len);
	}
}

/* see rumble.h */
int mime_find_feed(struct mime_find *f, const char *p, size_t n)
{
	if (f->raw) {
		finder_feed(&f->a, p, n);
		return f->a.found;
	}
	buf_reset(&f->xbuf);
	mime_decoder_feed(&f->dec, p, n, &f->xbuf);
	find_text(f, f->xbuf.data ? f->xbuf.data : "", f->xbuf.len, 0);
	/* us-ascii: which reading counts is known only at the end */
	return f->cs == MIME_CS_ASCII ? f->a.found && f->b.found : f->a.found;
}

/* see rumble.h */
int mime_find_end(struct mime_find *f)
{
	buf_reset(&f->xbuf);
	mime_decoder_end(&f->dec, &f->xbuf);
	if (!f->raw) {
		find_text(f, f->xbuf.data ? f->xbuf.data : "", f->xbuf.len, 1);
	}
	int found = f->cs == MIME_CS_ASCII && !f->raw ? (f->valid ? f->a.found : f->b.found)
	                                              : f->a.found;
	buf_free(&f->xbuf);
	buf_free(&f->dbuf);
	buf_free(&f->cbuf);
	buf_free(&f->a.carry);
	buf_free(&f->b.carry);
	free(f);
	return found;
}
