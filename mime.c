/*
 * mime.c - message parsing: header blocks, the MIME tree (RFC 2045/2046),
 * parameters (RFC 2231), encoded words (RFC 2047), transfer encodings,
 * address lists and dates (RFC 5322), and IMAP's BODYSTRUCTURE and
 * ENVELOPE (RFC 3501 7.4.2). No I/O: everything works on a buffer the
 * caller holds.
 *
 * IMPLEMENTATION NOTES
 * - This code reads hostile mail. Every loop moves forward through a
 *   buffer of known length (no strlen on message bytes, NUL is data), and
 *   nesting, part count and header count are capped (rumble.h), so the
 *   worst case is MIME_DEPTH_MAX passes over the message: a multipart
 *   scans only its own body for its boundary, and the ranges of siblings
 *   do not overlap. tests/fuzz_mime.c drives all of it.
 * - The tree points into the caller's buffer by offsets; what had to be
 *   decoded (types, parameters, ...) lives in an arena that mime_free
 *   releases at once, so a part needs no destructor of its own.
 * - Lenient where mail readers are: bare LF, a missing final boundary,
 *   unquoted parameter values with tspecials in them, junk in base64, bad
 *   quoted-printable escapes, RFC 2047 words inside quoted strings.
 *   Boundary lines are matched strictly ("--" boundary ["--"] blanks), as
 *   RFC 2046 writes them, so that a nested boundary that merely starts
 *   with the outer one is not taken for it.
 */
#include <string.h>

#include "rumble.h"

/* ---- small helpers (no <ctype.h>: its answers depend on the locale) ---- */

static int is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* Blank for structured fields: what unfolding leaves and NUL, which has
 * no meaning in a header. */
static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
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

/* Index of the '\n' ending the line at pos, or end. */
static size_t find_lf(const char *b, size_t pos, size_t end)
{
	const char *q = pos < end ? memchr(b + pos, '\n', end - pos) : NULL;
	return q ? (size_t)(q - b) : end;
}

static void buf_putc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

/* ---- the arena: everything a tree owns, freed at once ---- */

struct mime_chunk {
	struct mime_chunk *next;
	size_t used, cap;
};
#define ARENA_ALIGN 16
#define ARENA_HEAD ((sizeof(struct mime_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))
#define ARENA_CHUNK 8192
#define ARENA_FIRST 1024

static void *arena_alloc(struct mime_msg *m, size_t n)
{
	if (n > (size_t)-1 / 4) {
		fatalx("mime: allocation of %zu bytes", n);
	}
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	struct mime_chunk *c = m->arena;
	if (c && c->cap - c->used >= n) {
		c->used += n;
		return (char *)c + ARENA_HEAD + c->used - n;
	}
	/* chunks grow from ARENA_FIRST: a small message's tree stays small */
	size_t chunk = c && c->cap < ARENA_CHUNK ? c->cap * 2 : c ? ARENA_CHUNK : ARENA_FIRST;
	size_t cap = n > chunk ? n : chunk;
	struct mime_chunk *nc = xmalloc(ARENA_HEAD + cap);
	nc->cap = cap;
	nc->used = n;
	if (c && n > ARENA_CHUNK / 2) {
		/* a big block goes behind the current chunk, whose free space
		 * stays in use */
		nc->next = c->next;
		c->next = nc;
	} else {
		nc->next = c;
		m->arena = nc;
	}
	return (char *)nc + ARENA_HEAD;
}

static char *arena_str(struct mime_msg *m, const char *s, size_t n)
{
	char *p = arena_alloc(m, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *arena_lower(struct mime_msg *m, const char *s, size_t n)
{
	char *p = arena_str(m, s, n);
	for (size_t i = 0; i < n; i++) {
		p[i] = (char)to_lower((unsigned char)p[i]);
	}
	return p;
}

/* ---- header blocks ---- */

void mime_headers_init(struct mime_headers *it, const char *hdr, size_t len)
{
	it->p = hdr;
	it->len = len;
	it->pos = 0;
	it->count = 0;
}

void mime_headers_part(struct mime_headers *it, const struct mime_msg *m, const struct mime_part *p)
{
	if (!p) {
		p = m->root;
	}
	if (!m->buf) {
		mime_headers_init(it, "", 0); /* a tree parsed from a stream keeps no text */
		return;
	}
	mime_headers_init(it, m->buf + p->hdr_off, p->hdr_len);
}

/* see rumble.h */
int mime_headers_next(struct mime_headers *it, struct mime_header *h)
{
	const char *p = it->p;
	size_t len = it->len;
	while (it->pos < len && it->count < MIME_HEADERS_MAX) {
		size_t s = it->pos, e = find_lf(p, s, len);
		size_t next = e < len ? e + 1 : len;
		size_t te = e > s && p[e - 1] == '\r' ? e - 1 : e;
		if (te == s && e < len) {
			it->pos = len; /* the empty line: the header ends */
			return 0;
		}
		it->count++;
		it->pos = next;
		const char *colon = memchr(p + s, ':', te - s);
		if (is_wsp(p[s]) || !colon) {
			continue; /* a continuation with nothing to continue, or junk */
		}
		size_t ne = (size_t)(colon - p);
		while (ne > s && is_wsp(p[ne - 1])) {
			ne--; /* RFC 5322 4.5.3: "Subject :" */
		}
		if (ne == s) {
			continue;
		}
		size_t vs = (size_t)(colon - p) + 1;
		while (vs < te && is_wsp(p[vs])) {
			vs++;
		}
		/* continuation lines start with a blank */
		while (next < len && is_wsp(p[next])) {
			e = find_lf(p, next, len);
			te = e > next && p[e - 1] == '\r' ? e - 1 : e;
			next = e < len ? e + 1 : len;
			it->count++;
		}
		it->pos = next;
		h->name = p + s;
		h->name_len = ne - s;
		h->value = p + vs;
		h->value_len = te > vs ? te - vs : 0;
		return 1;
	}
	return 0;
}

/* RFC 5322 2.2.3: unfolding removes the line ends and keeps the blanks.
 * NUL becomes a space: values are text, and neither C nor IMAP strings
 * carry it. Leading and trailing blanks go. */
static void unfold(const char *s, size_t n, struct buf *out)
{
	size_t i = 0;
	while (i < n && is_blank((unsigned char)s[i])) {
		i++;
	}
	while (n > i && is_blank((unsigned char)s[n - 1])) {
		n--;
	}
	buf_reserve(out, n - i);
	for (; i < n; i++) {
		if (s[i] != '\r' && s[i] != '\n') {
			out->data[out->len++] = s[i] ? s[i] : ' ';
		}
	}
	out->data[out->len] = '\0';
}

static int header_find(struct mime_headers *it, const char *name, struct mime_header *h)
{
	size_t nl = strlen(name);
	while (mime_headers_next(it, h)) {
		if (h->name_len == nl && rl_strncasecmp(h->name, name, nl) == 0) {
			return 1;
		}
	}
	return 0;
}

/* see rumble.h */
int mime_header_get(
        const struct mime_msg *m, const struct mime_part *p, const char *name, struct buf *out)
{
	struct mime_headers it;
	struct mime_header h;
	mime_headers_part(&it, m, p);
	if (!header_find(&it, name, &h)) {
		return 0;
	}
	buf_reset(out);
	unfold(h.value, h.value_len, out);
	return 1;
}

/* see rumble.h */
int mime_header_text(
        const struct mime_msg *m, const struct mime_part *p, const char *name, struct buf *out)
{
	struct buf raw;
	buf_init(&raw);
	int found = mime_header_get(m, p, name, &raw);
	if (found) {
		buf_reset(out);
		mime_decode_words(raw.data, raw.len, out);
		if (!out->data) {
			buf_reserve(out, 0);
		}
	}
	buf_free(&raw);
	return found;
}

/* ---- structured fields: Content-Type, Content-Disposition ---- */

struct scan {
	const char *p, *e;
};

/* At '(': past the comment, nested ones and quoted pairs included. */
static void skip_comment(struct scan *s)
{
	int depth = 0;
	while (s->p < s->e) {
		char c = *s->p++;
		if (c == '\\' && s->p < s->e) {
			s->p++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && --depth == 0) {
			return;
		}
	}
}

static void skip_cfws(struct scan *s)
{
	while (s->p < s->e) {
		if (*s->p == '(') {
			skip_comment(s);
		} else if (is_blank((unsigned char)*s->p)) {
			s->p++;
		} else {
			break;
		}
	}
}

/* RFC 2045 5.1 token; 8-bit bytes are let in. Returns its length. */
static size_t scan_token(struct scan *s)
{
	const char *start = s->p;
	while (s->p < s->e) {
		unsigned char c = (unsigned char)*s->p;
		if (c <= ' ' || c == 0x7f || strchr("()<>@,;:\\\"/[]?=", c)) {
			break;
		}
		s->p++;
	}
	return (size_t)(s->p - start);
}

/* At '"': appends the content with quoted pairs undone and line ends
 * dropped; stops after the closing quote or at the end. */
static void scan_quoted(struct scan *s, struct buf *out)
{
	s->p++;
	while (s->p < s->e) {
		char c = *s->p++;
		if (c == '"') {
			return;
		}
		if (c == '\\' && s->p < s->e) {
			c = *s->p++;
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		buf_putc(out, c ? c : ' ');
	}
}

/* A parameter as written, before RFC 2231 puts the pieces together. */
struct rawparam {
	size_t name, value, vlen; /* offsets into the scratch buffer */
	size_t baselen;           /* of the name without "*..." */
	int section;              /* RFC 2231 section number, -1 for none */
	int ext;                  /* charset'language'%XX form */
};

/* Splits "name", "name*", "name*N" and "name*N*" (RFC 2231 3, 4). */
static void rawparam_classify(struct rawparam *r, const char *name)
{
	const char *star = strchr(name, '*');
	size_t n = strlen(name);
	r->baselen = n;
	r->section = -1;
	r->ext = 0;
	if (!star || star == name) {
		return;
	}
	const char *q = star + 1;
	int sec = -1;
	if (is_digit(*q)) {
		sec = 0;
		for (int k = 0; is_digit(*q); q++, k++) {
			if (k == 3 || (k == 1 && sec == 0)) {
				return; /* no leading zeros, no section past 999 */
			}
			sec = sec * 10 + (*q - '0');
		}
	}
	/* "name*N*" and "name*" are extended; "name*N" is not */
	if (sec < 0 || *q == '*') {
		r->ext = 1;
		q += sec < 0 ? 0 : 1;
	}
	if (*q != '\0') {
		r->ext = 0;
		return; /* not RFC 2231: the name is what it says */
	}
	r->baselen = (size_t)(star - name);
	r->section = sec;
}

static void percent_decode(const char *s, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n && (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
		        (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
			buf_putc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			buf_putc(out, s[i]);
		}
	}
}

/* An extended value's "charset'language'" prefix: the charset's id (or
 * MIME_CS_UNKNOWN) and where the value starts. Without two quotes there is no
 * prefix. */
static const char *ext_prefix(const char *v, int *cs)
{
	const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
	*cs = MIME_CS_UNKNOWN;
	if (!q2) {
		return v;
	}
	*cs = q1 > v ? mime__charset_id(v, (size_t)(q1 - v)) : MIME_CS_ASCII;
	return q2 + 1;
}

/* The value of base name r[i] from every piece that has it: sections in
 * order (from 0, up to the first missing one), else "name*", else the
 * plain form. */
static void param_value(struct rawparam *r, unsigned n, unsigned i, const char *sb, struct buf *out)
{
	const char *base = sb + r[i].name;
	size_t bl = r[i].baselen;
	int cs = MIME_CS_UNKNOWN, found = 0;
	struct buf bytes;
	buf_init(&bytes);
	for (int sec = 0; sec < (int)n; sec++) {
		unsigned j = 0;
		while (j < n && (r[j].section != sec || r[j].baselen != bl ||
		                        memcmp(sb + r[j].name, base, bl) != 0)) {
			j++;
		}
		if (j == n) {
			break;
		}
		const char *v = sb + r[j].value;
		if (r[j].ext) {
			int c;
			const char *rest = sec == 0 ? ext_prefix(v, &c) : v;
			if (sec == 0) {
				cs = c;
			}
			percent_decode(rest, strlen(rest), &bytes);
		} else {
			buf_append(&bytes, v, r[j].vlen);
		}
		found = 1;
	}
	for (unsigned j = 0; !found && j < n; j++) {
		if (r[j].ext && r[j].section < 0 && r[j].baselen == bl &&
		        memcmp(sb + r[j].name, base, bl) == 0) {
			const char *rest = ext_prefix(sb + r[j].value, &cs);
			percent_decode(rest, strlen(rest), &bytes);
			found = 1;
		}
	}
	if (found) {
		if (cs != MIME_CS_UNKNOWN) {
			mime__convert(cs, bytes.data ? bytes.data : "", bytes.len, out);
		} else {
			buf_append(out, bytes.data, bytes.len);
		}
		buf_free(&bytes);
		return;
	}
	buf_free(&bytes);
	for (unsigned j = 0; j < n; j++) {
		if (r[j].section < 0 && !r[j].ext && r[j].baselen == bl &&
		        memcmp(sb + r[j].name, base, bl) == 0) {
			const char *v = sb + r[j].value;
			/* Outlook and others put RFC 2047 words in quoted names;
			 * the boundary is compared byte for byte, never decoded */
			if (!word_is(base, bl, "boundary") && strstr(v, "=?")) {
				mime_decode_words(v, r[j].vlen, out);
			} else {
				buf_append(out, v, r[j].vlen);
			}
			return;
		}
	}
	buf_append(out, sb + r[i].value, r[i].vlen); /* only "name*1": take it */
}

/* Reads "; name=value" pairs from s into an arena array. */
static void parse_params(
        struct mime_msg *m, struct scan *s, const struct mime_param **out, unsigned *nout)
{
	struct rawparam raw[MIME_PARAMS_MAX];
	unsigned n = 0;
	struct buf sb; /* names and values, NUL-terminated */
	buf_init(&sb);
	while (n < MIME_PARAMS_MAX) {
		skip_cfws(s);
		if (s->p >= s->e) {
			break;
		}
		if (*s->p != ';') {
			while (s->p < s->e && *s->p != ';') {
				s->p++; /* junk: on to the next parameter */
			}
			continue;
		}
		s->p++;
		skip_cfws(s);
		const char *name = s->p;
		size_t nn = scan_token(s);
		skip_cfws(s);
		if (nn == 0 || s->p >= s->e || *s->p != '=') {
			continue;
		}
		s->p++;
		skip_cfws(s);
		raw[n].name = sb.len;
		for (size_t k = 0; k < nn; k++) {
			buf_putc(&sb, (char)to_lower((unsigned char)name[k]));
		}
		buf_putc(&sb, '\0');
		raw[n].value = sb.len;
		if (s->p < s->e && *s->p == '"') {
			scan_quoted(s, &sb);
		} else {
			/* unquoted: lenient, tspecials such as '=' and '/' are
			 * taken (boundary=----=_Part_1 is common) */
			const char *v = s->p;
			while (s->p < s->e && *s->p != ';' && *s->p != '(' && *s->p != '"' &&
			        !is_blank((unsigned char)*s->p)) {
				s->p++;
			}
			buf_append(&sb, v, (size_t)(s->p - v));
		}
		raw[n].vlen = sb.len - raw[n].value;
		buf_putc(&sb, '\0');
		n++;
	}
	*nout = 0;
	*out = NULL;
	if (n == 0) {
		buf_free(&sb);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		rawparam_classify(&raw[i], sb.data + raw[i].name);
	}
	struct mime_param *res = arena_alloc(m, n * sizeof *res);
	unsigned nres = 0;
	struct buf v;
	buf_init(&v);
	for (unsigned i = 0; i < n; i++) {
		const char *base = sb.data + raw[i].name;
		size_t bl = raw[i].baselen;
		unsigned k = 0;
		while (k < nres &&
		        !(strlen(res[k].name) == bl && memcmp(res[k].name, base, bl) == 0)) {
			k++;
		}
		if (k < nres) {
			continue; /* the first piece of this name made it already */
		}
		buf_reset(&v);
		param_value(raw, n, i, sb.data, &v);
		res[nres].name = arena_str(m, base, bl);
		res[nres].value = arena_str(m, v.data ? v.data : "", v.len);
		nres++;
	}
	buf_free(&v);
	buf_free(&sb);
	*out = res;
	*nout = nres;
}

/* see rumble.h */
const char *mime_param(const struct mime_param *v, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(v[i].name, name) == 0) {
			return v[i].value;
		}
	}
	return NULL;
}

/* ---- the MIME tree ---- */

static const struct mime_param default_charset[] = {{"charset", "us-ascii"}};

/* "type/subtype; params" (with_subtype) or "type; params"; 0, or -1
 * when the type is not there (the caller keeps its default). */
static int parse_typed(struct mime_msg *m, const char *v, size_t n, int with_subtype,
        const char **type, const char **subtype, const struct mime_param **params,
        unsigned *nparams)
{
	struct scan s = {v, v + n};
	skip_cfws(&s);
	const char *t = s.p;
	size_t tn = scan_token(&s), stn = 0;
	const char *st = NULL;
	if (tn == 0) {
		return -1;
	}
	if (with_subtype) {
		skip_cfws(&s);
		if (s.p >= s.e || *s.p != '/') {
			return -1;
		}
		s.p++;
		skip_cfws(&s);
		st = s.p;
		if ((stn = scan_token(&s)) == 0) {
			return -1;
		}
		*subtype = arena_lower(m, st, stn);
	}
	*type = arena_lower(m, t, tn);
	parse_params(m, &s, params, nparams);
	return 0;
}

/* The first token of a value, lower case (Content-Transfer-Encoding). */
static const char *first_token(struct mime_msg *m, const char *v, size_t n)
{
	struct scan s = {v, v + n};
	skip_cfws(&s);
	const char *t = s.p;
	size_t tn = scan_token(&s);
	return tn ? arena_lower(m, t, tn) : NULL;
}

enum {
	F_TYPE,
	F_ENCODING,
	F_ID,
	F_DESCRIPTION,
	F_DISPOSITION,
	F_LANGUAGE,
	F_MD5,
	F_LOCATION,
	F_COUNT
};

static int content_field(const char *name, size_t n)
{
	static const char *const names[F_COUNT] = {"content-type", "content-transfer-encoding",
	        "content-id", "content-description", "content-disposition", "content-language",
	        "content-md5", "content-location"};
	for (int i = 0; i < F_COUNT; i++) {
		if (word_is(name, n, names[i])) {
			return i;
		}
	}
	return -1;
}

/* ---- the MIME tree, parsed as a stream ----
 *
 * The message comes in pieces (mime_stream_feed) and is cut into lines;
 * every line is looked at once. A stack holds the entities whose range
 * the line is in, outermost first: each line is first checked against
 * the boundaries of the multiparts on the stack that are still splitting
 * (outermost first: an outer delimiter ends whatever is open inside it),
 * and otherwise belongs to the innermost entity, as its header or its
 * body. Where an entity ends is known only at the delimiter after it (or
 * at the end of the message), so lengths and line counts are settled
 * then; the line end before a delimiter belongs to the delimiter (RFC
 * 2046 5.1.1), which may take back the empty line that ended a header.
 * This gives the tree the recursive reading of RFC 2046 gives (each
 * multipart splits its own body, each part parses its own range), with
 * the same part limit hit at the same part, in one pass and with memory
 * bounded by the tree: a header line is kept up to HLINE_MAX bytes (a
 * longer one is judged by that much), a field value up to VALUE_MAX. */

#define LINE_HEAD (MIME_BOUNDARY_MAX + 8) /* of every line: enough for a delimiter */
#define HLINE_MAX (64 * 1024)
#define VALUE_MAX (64 * 1024)
#define MARK_EVERY (256 * 1024)
#define MARKS_MAX 4096

enum { E_HEADER, E_BODY };
enum { S_NONE, S_SCAN, S_DONE };

/* An entity whose range the current line is in. */
struct ent {
	struct mime_part *p;
	int state, split, in_part, env, in_digest;
	const char *boundary;
	size_t blen;
	uint64_t start;          /* of the open child's range */
	uint64_t nlf;            /* LFs before body_off */
	struct mime_part **tail; /* where the next child goes */
};

/* Where an entity ends: offset, LFs before it, the byte before it. */
struct end {
	uint64_t off, nlf;
	int last;
};

struct mime_stream {
	struct mime_msg *m;
	struct ent st[MIME_DEPTH_MAX + 2];
	int top, nscan;
	uint64_t pos, nlf; /* bytes and LFs fed */
	/* the current line */
	int bol, in_header;
	uint64_t ls, lmark, lnlf; /* its start, mark, LFs before it */
	uint64_t llen;
	char head[LINE_HEAD];
	size_t hlen;
	int tail_blank;        /* the bytes past head are blanks or CRs */
	unsigned char prev[3]; /* the three bytes before it (prev[2] the last) */
	unsigned char last[3]; /* the last three bytes fed */
	struct buf hl;         /* a header line, up to HLINE_MAX bytes */
	int colon_beyond;      /* ':' in what hl did not keep */
	/* the header being read */
	struct mime_hscan hs;
	int fkind; /* the open field: content field, ENV_BASE + envelope field, -1 */
	struct buf val[F_COUNT + MIME_ENV_FIELDS];
	unsigned seen;     /* bit per val[] found */
	uint64_t *pend[4]; /* marks to set at the next line start */
	int npend;
	uint64_t next_mark;
};

#define ENV_BASE F_COUNT

static const char *const env_names[MIME_ENV_FIELDS] = {"date", "subject", "from", "sender",
        "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id"};

/* see rumble.h */
int mime_hscan_line(
        struct mime_hscan *h, const char *p, size_t n, int colon_beyond, struct mime_header *out)
{
	if (h->stopped || n == 0) {
		return MH_STOP;
	}
	if (is_wsp(p[0])) {
		if (h->active) {
			h->count++;
			return MH_MORE;
		}
	} else {
		h->active = 0;
	}
	if (h->count >= MIME_HEADERS_MAX) {
		h->stopped = 1;
		h->active = 0;
		return MH_STOP;
	}
	h->count++;
	if (is_wsp(p[0])) {
		return MH_JUNK; /* a continuation with nothing to continue */
	}
	const char *colon = memchr(p, ':', n);
	if (!colon && !colon_beyond) {
		return MH_JUNK;
	}
	size_t ne = colon ? (size_t)(colon - p) : 0;
	while (ne > 0 && is_wsp(p[ne - 1])) {
		ne--; /* RFC 5322 4.5.3: "Subject :" */
	}
	if (colon && ne == 0) {
		return MH_JUNK;
	}
	h->active = 1;
	out->name = p;
	out->name_len = ne; /* 0: a name longer than what was kept */
	out->value = colon ? colon + 1 : p + n;
	out->value_len = colon ? n - (size_t)(colon + 1 - p) : 0;
	return MH_FIELD;
}

static int env_field(const char *name, size_t n)
{
	for (int i = 0; i < MIME_ENV_FIELDS; i++) {
		if (word_is(name, n, env_names[i])) {
			return i;
		}
	}
	return -1;
}

/* Value bytes as unfolding leaves them: no line ends, NUL a space. */
static void value_add(struct buf *v, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && v->len < VALUE_MAX) {
		size_t run = 0, room = VALUE_MAX - v->len;
		while (i + run < n && run < room && p[i + run] != '\r' && p[i + run] != '\n' &&
		        p[i + run] != '\0') {
			run++;
		}
		buf_append(v, p + i, run); /* plain bytes in one piece */
		i += run;
		if (i < n && run < room) {
			if (p[i] == '\0') {
				buf_putc(v, ' ');
			}
			i++;
		}
	}
}

/* The unfolded value: blanks at both ends trimmed. */
static const char *value_trim(struct buf *v, size_t *n)
{
	const char *s = v->data ? v->data : "";
	size_t a = 0, b = v->len;
	while (a < b && is_wsp(s[a])) {
		a++;
	}
	while (b > a && is_wsp(s[b - 1])) {
		b--;
	}
	*n = b - a;
	return s + a;
}

/* One header line of the innermost entity (not the empty one). */
static void header_line(struct mime_stream *s, struct ent *e)
{
	struct mime_header h;
	const char *p = s->hl.data ? s->hl.data : "";
	switch (mime_hscan_line(&s->hs, p, s->hl.len, s->colon_beyond, &h)) {
	case MH_FIELD: {
		int f = h.name_len > 8 && rl_strncasecmp(h.name, "content-", 8) == 0
		                ? content_field(h.name, h.name_len)
		                : -1;
		if (f < 0 && e->env && h.name_len) {
			f = env_field(h.name, h.name_len);
			f = f < 0 ? -1 : ENV_BASE + f;
		}
		s->fkind = f >= 0 && !(s->seen & 1u << f) ? f : -1;
		if (s->fkind >= 0) {
			s->seen |= 1u << f;
			value_add(&s->val[f], h.value, h.value_len);
		}
		break;
	}
	case MH_MORE:
		if (s->fkind >= 0) {
			value_add(&s->val[s->fkind], p, s->hl.len);
		}
		break;
	default:
		s->fkind = -1;
		break;
	}
}

static void apply_content_field(
        struct mime_msg *m, struct mime_part *p, int f, const char *v, size_t n)
{
	if (f == F_TYPE) {
		parse_typed(m, v, n, 1, &p->type, &p->subtype, &p->params, &p->nparams);
	} else if (f == F_ENCODING) {
		p->encoding = first_token(m, v, n);
	} else if (f == F_DISPOSITION) {
		parse_typed(m, v, n, 0, &p->disposition, NULL, &p->disp_params, &p->ndisp_params);
	} else {
		const char *str = arena_str(m, v, n);
		const char **dst[F_COUNT] = {[F_ID] = &p->id,
		        [F_DESCRIPTION] = &p->description,
		        [F_LANGUAGE] = &p->language,
		        [F_MD5] = &p->md5,
		        [F_LOCATION] = &p->location};
		*dst[f] = str;
	}
}

/* The header of e is complete: its fields go into the part, defaults
 * where they are missing (RFC 2045 5.2; RFC 2046 5.1.5 for digests). */
static void fields_done(struct mime_stream *s, struct ent *e)
{
	struct mime_msg *m = s->m;
	struct mime_part *p = e->p;
	for (int f = 0; f < F_COUNT + MIME_ENV_FIELDS; f++) {
		size_t n;
		const char *v = value_trim(&s->val[f], &n);
		if (!(s->seen & 1u << f)) {
			continue;
		}
		if (f < F_COUNT) {
			apply_content_field(m, p, f, v, n);
		} else {
			p->env->f[f - ENV_BASE] = arena_str(m, v, n);
		}
	}
	if (s->hs.count >= MIME_HEADERS_MAX) {
		m->limits |= MIME_LIMIT_HEADERS;
	}
	if (!p->type || !p->subtype) {
		p->type = e->in_digest ? "message" : "text";
		p->subtype = e->in_digest ? "rfc822" : "plain";
		p->params = e->in_digest ? NULL : default_charset;
		p->nparams = e->in_digest ? 0 : 1;
	}
	if (!p->encoding) {
		p->encoding = "7bit";
	}
	for (int f = 0; f < F_COUNT + MIME_ENV_FIELDS; f++) {
		buf_reset(&s->val[f]);
	}
	s->seen = 0;
	s->fkind = -1;
	memset(&s->hs, 0, sizeof s->hs);
}

static struct mime_part *new_part(struct mime_stream *s, struct mime_part *parent, uint64_t off)
{
	struct mime_msg *m = s->m;
	if (m->nparts >= MIME_PARTS_MAX) {
		m->limits |= MIME_LIMIT_PARTS;
		return NULL;
	}
	m->nparts++;
	struct mime_part *p = arena_alloc(m, sizeof *p);
	memset(p, 0, sizeof *p);
	p->parent = parent;
	p->depth = parent ? parent->depth + 1 : 0;
	p->hdr_off = p->body_off = (size_t)off;
	p->hdr_mark = p->body_mark = MIME_NO_MARK;
	return p;
}

/* Its mark is the mark of the next line start. */
static void mark_next(struct mime_stream *s, uint64_t *slot)
{
	if (s->npend < (int)(sizeof s->pend / sizeof s->pend[0])) {
		s->pend[s->npend++] = slot;
	}
}

static void push(struct mime_stream *s, struct mime_part *p, int env, int in_digest)
{
	struct ent *e = &s->st[++s->top];
	memset(e, 0, sizeof *e);
	e->p = p;
	e->state = E_HEADER;
	e->env = env;
	e->in_digest = in_digest;
	if (env) {
		p->env = arena_alloc(s->m, sizeof *p->env);
		memset(p->env, 0, sizeof *p->env);
	}
	mark_next(s, &p->hdr_mark);
}

/* After the header: a multipart starts splitting, a message/rfc822 part
 * gets its message (an empty one when the part ends here: closing). */
static void after_header(struct mime_stream *s, struct ent *e, int closing)
{
	struct mime_msg *m = s->m;
	struct mime_part *p = e->p;
	int multi = strcmp(p->type, "multipart") == 0;
	/* an encapsulated message must be 7bit, 8bit or binary (RFC 2046
	 * 5.2.1); one in base64 stays a leaf */
	int message =
	        (mime_part_is(p, "message", "rfc822") || mime_part_is(p, "message", "global")) &&
	        (!strcmp(p->encoding, "7bit") || !strcmp(p->encoding, "8bit") ||
	                !strcmp(p->encoding, "binary"));
	if ((multi || message) && p->depth >= MIME_DEPTH_MAX) {
		m->limits |= MIME_LIMIT_DEPTH;
	} else if (multi && !closing) {
		const char *b = mime_part_param(p, "boundary");
		size_t bl = b ? strlen(b) : 0;
		if (bl > 0 && bl <= MIME_BOUNDARY_MAX) {
			e->split = S_SCAN;
			e->boundary = b;
			e->blen = bl;
			e->tail = &p->child;
			s->nscan++;
		}
	} else if (message) {
		struct mime_part *c = new_part(s, p, p->body_off);
		if (!c) {
			return;
		}
		p->child = c;
		p->flags |= MIME_MESSAGE;
		p->nchild = 1;
		if (closing) {
			struct ent tmp = {c, E_HEADER, S_NONE, 0, 1, 0, NULL, 0, 0, 0, NULL};
			c->env = arena_alloc(m, sizeof *c->env);
			memset(c->env, 0, sizeof *c->env);
			fields_done(s, &tmp);
			after_header(s, &tmp, 1);
		} else {
			push(s, c, 1, 0);
		}
	}
}

/* The empty line that ends e's header ended at le. */
static void header_end(struct mime_stream *s, struct ent *e, uint64_t le)
{
	struct mime_part *p = e->p;
	fields_done(s, e);
	p->hdr_len = (size_t)(le - p->hdr_off);
	p->body_off = (size_t)le;
	e->state = E_BODY;
	e->nlf = s->lnlf + 1;
	mark_next(s, &p->body_mark);
	after_header(s, e, 0);
}

/* Settles e's lengths and line count: its range ends at x. */
static void close_ent(struct mime_stream *s, struct ent *e, const struct end *x)
{
	struct mime_part *p = e->p;
	if (x->off < p->hdr_off) {
		p->hdr_off = p->body_off = (size_t)x->off; /* opened on a line end taken back */
		p->hdr_mark = MIME_NO_MARK;
	}
	if (e->state == E_HEADER) {
		fields_done(s, e); /* the header runs to the end of the range */
		p->body_off = (size_t)x->off;
		after_header(s, e, 1);
	}
	if (x->off < p->body_off) {
		p->body_off = (size_t)x->off; /* the empty line was taken back */
		p->body_mark = MIME_NO_MARK;
	}
	p->hdr_len = p->body_off - p->hdr_off;
	p->body_len = (size_t)x->off - p->body_off;
	p->lines = 0;
	if (e->state == E_BODY && p->body_len > 0) {
		p->lines = (size_t)(x->nlf - e->nlf) + (x->last != '\n');
	}
	if (e->split == S_SCAN) {
		s->nscan--;
	}
	e->split = S_DONE;
}

/* Closes the entities from the innermost up to st[k], all ending at x. */
static void close_to(struct mime_stream *s, int k, const struct end *x)
{
	while (s->top >= k) {
		close_ent(s, &s->st[s->top], x);
		s->top--;
	}
}

/* A boundary line (RFC 2046 5.1.1): "--" boundary ["--"] blanks. Only
 * the line's head is kept; tail_blank says what the rest is. */
static int is_delimiter(const struct mime_stream *s, const struct ent *e, int *close)
{
	const char *l = s->head;
	size_t n = s->hlen, bl = e->blen;
	if (n == s->llen && n > 0 && l[n - 1] == '\n') {
		n--; /* the line is all in head: its LF is not part of it */
	}
	if (n < bl + 2 || memcmp(l + 2, e->boundary, bl) != 0) {
		return 0;
	}
	size_t i = bl + 2;
	*close = i + 1 < n && l[i] == '-' && l[i + 1] == '-';
	for (i += *close ? 2 : 0; i < n; i++) {
		if (!is_wsp(l[i]) && l[i] != '\r') {
			return 0;
		}
	}
	return s->tail_blank;
}

/* A delimiter of st[k]: the part it was in ends before the line end
 * before the delimiter; a new one starts after it (at le). */
static void delimiter(struct mime_stream *s, int k, int close, uint64_t le)
{
	struct ent *e = &s->st[k];
	if (e->in_part) {
		struct end x = {s->ls, s->lnlf, s->prev[2]};
		if (x.off > e->start && s->prev[2] == '\n') {
			x.off--, x.nlf--, x.last = s->prev[1];
			if (x.off > e->start && s->prev[1] == '\r') {
				x.off--, x.last = s->prev[0];
			}
		}
		close_to(s, k + 1, &x);
		e->in_part = 0;
	}
	struct mime_part *c = close ? NULL : new_part(s, e->p, le);
	if (!c) {
		s->nscan -= e->split == S_SCAN;
		e->split = S_DONE; /* the closing line, or no more parts allowed */
		return;
	}
	*e->tail = c;
	e->tail = &c->next;
	e->p->nchild++;
	e->p->flags |= MIME_MULTIPART;
	e->in_part = 1;
	e->start = le;
	push(s, c, 0, mime_part_is(e->p, "multipart", "digest"));
}

/* The current line is complete (with its LF when lf). */
static void line_done(struct mime_stream *s, int lf)
{
	uint64_t le = s->ls + s->llen;
	if (s->nscan > 0 && s->hlen >= 2 && s->head[0] == '-' && s->head[1] == '-') {
		for (int k = 0; k <= s->top; k++) {
			int close;
			if (s->st[k].split == S_SCAN && is_delimiter(s, &s->st[k], &close)) {
				delimiter(s, k, close, le);
				return;
			}
		}
	}
	if (!s->in_header) {
		return;
	}
	struct ent *e = &s->st[s->top];
	if (lf && (s->llen == 1 || (s->llen == 2 && s->head[0] == '\r'))) {
		header_end(s, e, le);
	} else {
		header_line(s, e);
	}
}

static void line_start(struct mime_stream *s, uint64_t mark)
{
	s->bol = 0;
	s->ls = s->pos;
	s->lmark = mark;
	s->lnlf = s->nlf;
	s->llen = 0;
	s->hlen = 0;
	s->tail_blank = 1;
	memcpy(s->prev, s->last, 3);
	for (int i = 0; i < s->npend; i++) {
		*s->pend[i] = mark;
	}
	s->npend = 0;
	s->in_header = s->top >= 0 && s->st[s->top].state == E_HEADER;
	if (s->in_header) {
		buf_reset(&s->hl);
		s->colon_beyond = 0;
	}
	if (s->pos >= s->next_mark && s->pos > 0 && s->m->nmarks < MARKS_MAX) {
		struct mime_msg *m = s->m;
		if (m->nmarks % 64 == 0) {
			m->marks = xrealloc(m->marks, (m->nmarks + 64) * sizeof *m->marks);
		}
		m->marks[m->nmarks].off = s->pos;
		m->marks[m->nmarks++].mark = mark;
		s->next_mark = s->pos + MARK_EVERY;
	}
}

/* Bytes of the current line (an LF only at the end). */
static void line_bytes(struct mime_stream *s, const char *p, size_t n)
{
	if (s->in_header) {
		size_t room = HLINE_MAX - s->hl.len;
		buf_append(&s->hl, p, n < room ? n : room);
		if (n > room && memchr(p + room, ':', n - room)) {
			s->colon_beyond = 1;
		}
	}
	size_t k = 0;
	if (s->hlen < LINE_HEAD) {
		k = n < LINE_HEAD - s->hlen ? n : LINE_HEAD - s->hlen;
		memcpy(s->head + s->hlen, p, k);
		s->hlen += k;
	}
	for (size_t i = k; i < n && s->tail_blank; i++) {
		s->tail_blank = is_wsp(p[i]) || p[i] == '\r' || p[i] == '\n';
	}
}

static void last_add(unsigned char last[3], const char *p, size_t n)
{
	for (size_t i = n > 3 ? n - 3 : 0; i < n; i++) {
		last[0] = last[1];
		last[1] = last[2];
		last[2] = (unsigned char)p[i];
	}
}

/* see rumble.h */
void mime_stream_feed(struct mime_stream *s, const char *p, size_t n, uint64_t mark)
{
	size_t i = 0;
	while (i < n) {
		if (s->bol) {
			line_start(s, mark + i);
		}
		const char *nl = memchr(p + i, '\n', n - i);
		size_t k = nl ? (size_t)(nl - (p + i)) + 1 : n - i;
		line_bytes(s, p + i, k);
		s->llen += k;
		s->pos += k;
		last_add(s->last, p + i, k);
		i += k;
		if (nl) {
			line_done(s, 1);
			s->nlf++;
			s->bol = 1;
		}
	}
}

/* see rumble.h */
struct mime_stream *mime_stream_new(struct mime_msg *m)
{
	struct mime_stream *s = xcalloc(1, sizeof *s);
	memset(m, 0, sizeof *m);
	s->m = m;
	s->top = -1;
	s->bol = 1;
	s->fkind = -1;
	s->next_mark = MARK_EVERY;
	buf_init(&s->hl);
	for (int f = 0; f < F_COUNT + MIME_ENV_FIELDS; f++) {
		buf_init(&s->val[f]);
	}
	m->root = new_part(s, NULL, 0);
	push(s, m->root, 1, 0);
	return s;
}

/* see rumble.h */
int mime_stream_header_done(const struct mime_stream *s)
{
	return s->top < 0 || s->st[0].state != E_HEADER;
}

static void stream_free(struct mime_stream *s)
{
	buf_free(&s->hl);
	for (int f = 0; f < F_COUNT + MIME_ENV_FIELDS; f++) {
		buf_free(&s->val[f]);
	}
	free(s);
}

/* see rumble.h */
void mime_stream_end(struct mime_stream *s)
{
	if (!s->bol) {
		line_done(s, 0); /* the last line has no LF */
	}
	struct end x = {s->pos, s->nlf, s->pos ? s->last[2] : '\n'};
	for (int i = 0; i < s->npend; i++) {
		*s->pend[i] = MIME_NO_MARK; /* nothing starts there */
	}
	s->npend = 0;
	close_to(s, 0, &x);
	s->m->len = (size_t)s->pos;
	stream_free(s);
}

/* see rumble.h */
void mime_stream_cut(struct mime_stream *s, uint64_t total)
{
	struct mime_msg *m = s->m;
	struct mime_part *r = m->root;
	for (int i = 0; i < s->npend; i++) {
		*s->pend[i] = MIME_NO_MARK;
	}
	s->npend = 0;
	r->body_len = r->body_off <= total ? (size_t)(total - r->body_off) : 0;
	r->child = NULL;
	r->nchild = 0;
	r->flags = 0;
	r->lines = 0;
	m->nparts = 1;
	m->len = (size_t)total;
	m->limits |= MIME_LIMIT_CUT;
	stream_free(s);
}

/* see rumble.h */
void mime_parse(struct mime_msg *m, const char *buf, size_t len)
{
	struct mime_stream *s = mime_stream_new(m);
	mime_stream_feed(s, buf ? buf : "", buf ? len : 0, 0);
	mime_stream_end(s);
	m->buf = buf ? buf : "";
}

/* see rumble.h */
void mime_free(struct mime_msg *m)
{
	struct mime_chunk *c = m->arena;
	while (c) {
		struct mime_chunk *next = c->next;
		free(c);
		c = next;
	}
	xfree(m->marks);
	m->arena = NULL;
	m->root = NULL;
	m->nmarks = 0;
}

/* see rumble.h */
size_t mime_msg_size(const struct mime_msg *m)
{
	size_t n = sizeof *m + m->nmarks * sizeof *m->marks;
	for (const struct mime_chunk *c = m->arena; c; c = c->next) {
		n += ARENA_HEAD + c->cap;
	}
	return n;
}

/* see rumble.h */
int mime_part_is(const struct mime_part *p, const char *type, const char *subtype)
{
	return strcmp(p->type, type) == 0 && (!subtype || strcmp(p->subtype, subtype) == 0);
}

/* see rumble.h */
const char *mime_part_filename(const struct mime_part *p)
{
	const char *f = mime_part_disp_param(p, "filename");
	return f ? f : mime_part_param(p, "name");
}

/* The n-th (from 1) child of p, NULL if there is none. */
static const struct mime_part *nth_child(const struct mime_part *p, unsigned long n)
{
	const struct mime_part *c = p->child;
	while (c && --n > 0) {
		c = c->next;
	}
	return c;
}

/* see rumble.h. Part n of an entity: its n-th child when it is a
 * multipart, else (n = 1 only) the entity itself; below a message/rfc822
 * part the numbers go on in the message inside it. */
const struct mime_part *mime_section(const struct mime_msg *m, const char *spec, const char **rest)
{
	const struct mime_part *cur = m->root, *entity = m->root;
	const char *s = spec;
	*rest = spec;
	while (is_digit(*s)) {
		unsigned long n = 0;
		int digits = 0;
		for (; is_digit(*s); s++) {
			if (++digits > 9) {
				return NULL;
			}
			n = n * 10 + (unsigned long)(*s - '0');
		}
		if (n == 0 || !entity) {
			return NULL;
		}
		if (entity->flags & MIME_MULTIPART) {
			cur = nth_child(entity, n);
		} else {
			cur = n == 1 ? entity : NULL;
		}
		if (!cur) {
			return NULL;
		}
		*rest = s;
		entity = cur->flags & MIME_MESSAGE ? cur->child
		                                   : (cur->flags & MIME_MULTIPART ? cur : NULL);
		if (*s != '.' || !is_digit(s[1])) {
			break;
		}
		s++;
	}
	return cur;
}

/* ---- address lists (RFC 5322 3.4, 4.4) ---- */

enum { T_END, T_ATOM, T_QUOTED, T_COMMENT, T_DOMLIT, T_SPECIAL };

struct tok {
	int kind;
	const char *s; /* content: without the quotes or parentheses */
	size_t n;
	char c; /* T_SPECIAL */
};

struct addr_parser {
	struct scan s;
	struct tok t;
	int decode, in_group, count;
	struct mime_addr *head, **tail;
	struct buf phrase, spec, host, comment, route, tmp;
};

static const char *bstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

/* The next token; '.' is part of atoms so that dot-atoms come whole. */
static void addr_next(struct addr_parser *a)
{
	struct scan *s = &a->s;
	struct tok *t = &a->t;
	while (s->p < s->e && is_blank((unsigned char)*s->p)) {
		s->p++;
	}
	if (s->p >= s->e) {
		t->kind = T_END;
		return;
	}
	const char *start = s->p;
	char c = *s->p;
	if (c == '(') {
		skip_comment(s);
		t->kind = T_COMMENT;
		t->s = start + 1;
		t->n = (size_t)(s->p - t->s);
		if (t->n > 0 && s->p[-1] == ')') {
			t->n--;
		}
	} else if (c == '"') {
		for (s->p++; s->p < s->e && *s->p != '"'; s->p++) {
			if (*s->p == '\\' && s->p + 1 < s->e) {
				s->p++;
			}
		}
		t->kind = T_QUOTED;
		t->s = start + 1;
		t->n = (size_t)(s->p - t->s);
		if (s->p < s->e) {
			s->p++;
		}
	} else if (c == '[') {
		while (s->p < s->e && *s->p != ']') {
			s->p += *s->p == '\\' && s->p + 1 < s->e ? 2 : 1;
		}
		if (s->p < s->e) {
			s->p++;
		}
		t->kind = T_DOMLIT;
		t->s = start;
		t->n = (size_t)(s->p - start);
	} else if (strchr("<>@,;:\\)]", c)) {
		s->p++;
		t->kind = T_SPECIAL;
		t->c = c;
	} else {
		while (s->p < s->e && !is_blank((unsigned char)*s->p) &&
		        !strchr("()<>@,;:\\\"[]", *s->p)) {
			s->p++;
		}
		t->kind = T_ATOM;
		t->s = start;
		t->n = (size_t)(s->p - start);
	}
}

static int is_special(const struct addr_parser *a, char c)
{
	return a->t.kind == T_SPECIAL && a->t.c == c;
}

/* Quoted-string or comment content: quoted pairs undone, line ends gone. */
static void append_unescaped(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			i++;
		} else if (s[i] == '\r' || s[i] == '\n') {
			continue;
		}
		buf_putc(out, s[i] ? s[i] : ' ');
	}
}

/* RFC 5322 dot-atom-text (8-bit bytes allowed, RFC 6531). */
static int is_dot_atom(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.') {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' ? s[i + 1] == '.'
		             : !(is_alpha(c) || is_digit(c) || c >= 0x80 ||
		                       strchr("!#$%&'*+-/=?^_`{|}~", c))) {
			return 0;
		}
	}
	return 1;
}

/* A word of a local part: atoms as they are, quoted strings bare when
 * they need no quotes, else quoted again. */
static void spec_word(struct addr_parser *a)
{
	if (a->t.kind != T_QUOTED) {
		buf_append(&a->spec, a->t.s, a->t.n);
		return;
	}
	buf_reset(&a->tmp);
	append_unescaped(&a->tmp, a->t.s, a->t.n);
	if (is_dot_atom(bstr(&a->tmp), a->tmp.len)) {
		buf_append(&a->spec, a->tmp.data, a->tmp.len);
		return;
	}
	buf_putc(&a->spec, '"');
	for (size_t i = 0; i < a->tmp.len; i++) {
		if (a->tmp.data[i] == '"' || a->tmp.data[i] == '\\') {
			buf_putc(&a->spec, '\\');
		}
		buf_putc(&a->spec, a->tmp.data[i]);
	}
	buf_putc(&a->spec, '"');
}

static void phrase_word(struct addr_parser *a)
{
	if (a->phrase.len) {
		buf_putc(&a->phrase, ' ');
	}
	if (a->t.kind == T_QUOTED) {
		append_unescaped(&a->phrase, a->t.s, a->t.n);
	} else {
		buf_append(&a->phrase, a->t.s, a->t.n);
	}
}

static void take_comment(struct addr_parser *a)
{
	buf_reset(&a->comment);
	append_unescaped(&a->comment, a->t.s, a->t.n);
}

/* One entry in one allocation: the struct, then its strings. */
static void addr_emit(struct addr_parser *a, enum mime_addr_kind kind, const char *name,
        const char *mailbox, const char *host)
{
	struct buf dn;
	buf_init(&dn);
	/* a display name may be missing; a group's name is there, maybe "" */
	int keep = name && (*name || kind == MIME_ADDR_GROUP);
	if (keep && *name && a->decode) {
		mime_decode_words(name, strlen(name), &dn);
		name = bstr(&dn);
	}
	const char *route = kind == MIME_ADDR_MAILBOX && a->route.len ? bstr(&a->route) : NULL;
	size_t nl = keep ? strlen(name) + 1 : 0, ml = mailbox ? strlen(mailbox) + 1 : 0,
	       hl = host ? strlen(host) + 1 : 0, rl = route ? a->route.len + 1 : 0;
	struct mime_addr *e = xmalloc(sizeof *e + nl + ml + hl + rl);
	char *p = (char *)(e + 1);
	e->next = NULL;
	e->kind = kind;
	e->name = e->mailbox = e->host = e->route = NULL;
	if (rl) {
		e->route = memcpy(p, route, rl);
		p += rl;
	}
	if (nl) {
		e->name = memcpy(p, name, nl);
		p += nl;
	}
	if (ml) {
		e->mailbox = memcpy(p, mailbox, ml);
		p += ml;
	}
	if (hl) {
		e->host = memcpy(p, host, hl);
	}
	buf_free(&dn);
	*a->tail = e;
	a->tail = &e->next;
	a->count++;
}

/* Domain words up to a special: "example.com", "[192.0.2.1]". */
static void addr_domain(struct addr_parser *a)
{
	buf_reset(&a->host);
	while (a->t.kind == T_ATOM || a->t.kind == T_DOMLIT || a->t.kind == T_QUOTED ||
	        a->t.kind == T_COMMENT) {
		if (a->t.kind == T_COMMENT) {
			take_comment(a);
		} else {
			buf_append(&a->host, a->t.s, a->t.n);
		}
		addr_next(a);
	}
}

/* RFC 5322 4.4 obs-route, "@a.test,@b.test:", at the '@': into a->route
 * as IMAP's adl wants it ("@a.test,@b.test"), comments and blanks gone. */
static void addr_route(struct addr_parser *a)
{
	while (a->t.kind != T_END && !is_special(a, ':') && !is_special(a, '>')) {
		if (is_special(a, '@')) {
			buf_puts(&a->route, a->route.len ? ",@" : "@");
		} else if (a->t.kind == T_ATOM || a->t.kind == T_DOMLIT) {
			buf_append(&a->route, a->t.s, a->t.n);
		}
		addr_next(a);
	}
	if (is_special(a, ':')) {
		addr_next(a);
	}
}

/* After '<': [route ":"] local "@" domain ">". */
static void addr_angle(struct addr_parser *a)
{
	buf_reset(&a->spec);
	buf_reset(&a->host);
	if (is_special(a, '@')) {
		addr_route(a);
	}
	while (a->t.kind == T_ATOM || a->t.kind == T_QUOTED || a->t.kind == T_COMMENT) {
		if (a->t.kind != T_COMMENT) {
			spec_word(a);
		}
		addr_next(a);
	}
	if (is_special(a, '@')) {
		addr_next(a);
		addr_domain(a);
	}
	if (is_special(a, '>')) {
		addr_next(a);
	}
}

/* Up to the ',' or ';' that ends this address (not consumed). */
static void addr_skip_rest(struct addr_parser *a)
{
	while (a->t.kind != T_END && !is_special(a, ',') && !is_special(a, ';')) {
		if (a->t.kind == T_COMMENT) {
			take_comment(a);
		}
		addr_next(a);
	}
}

/* One mailbox, or the start of a group. Consumes at least one token. */
static void addr_one(struct addr_parser *a)
{
	int words = 0;
	buf_reset(&a->phrase);
	buf_reset(&a->spec);
	buf_reset(&a->host);
	buf_reset(&a->comment);
	buf_reset(&a->route);
	for (;;) {
		if (a->t.kind == T_ATOM || a->t.kind == T_QUOTED || a->t.kind == T_DOMLIT) {
			phrase_word(a);
			spec_word(a);
			words++;
			addr_next(a);
		} else if (a->t.kind == T_COMMENT) {
			take_comment(a);
			addr_next(a);
		} else if (is_special(a, '<')) {
			addr_next(a);
			addr_angle(a);
			addr_skip_rest(a);
			const char *name = a->phrase.len ? bstr(&a->phrase) : bstr(&a->comment);
			addr_emit(a, MIME_ADDR_MAILBOX, name, bstr(&a->spec), bstr(&a->host));
			return;
		} else if (is_special(a, ':') && !a->in_group) {
			addr_next(a);
			a->in_group = 1;
			addr_emit(a, MIME_ADDR_GROUP, bstr(&a->phrase), NULL, NULL);
			return;
		} else if (is_special(a, '@')) {
			addr_next(a);
			addr_domain(a);
			addr_skip_rest(a);
			addr_emit(a, MIME_ADDR_MAILBOX, bstr(&a->comment), bstr(&a->spec),
			        bstr(&a->host));
			return;
		} else if (a->t.kind == T_END || is_special(a, ',') || is_special(a, ';')) {
			if (words) {
				addr_emit(a, MIME_ADDR_MAILBOX, bstr(&a->comment), bstr(&a->spec),
				        "");
			}
			return;
		} else {
			addr_next(a); /* a stray '>', ')', ':' ... */
		}
	}
}

/* see rumble.h */
struct mime_addr *mime_addr_parse(const char *s, size_t n, int decode)
{
	struct addr_parser a;
	memset(&a, 0, sizeof a);
	a.s.p = s;
	a.s.e = s + n;
	a.decode = decode;
	a.tail = &a.head;
	buf_init(&a.phrase);
	buf_init(&a.spec);
	buf_init(&a.host);
	buf_init(&a.comment);
	buf_init(&a.route);
	buf_init(&a.tmp);
	addr_next(&a);
	while (a.t.kind != T_END && a.count < MIME_ADDR_MAX) {
		if (is_special(&a, ';') && a.in_group) {
			addr_emit(&a, MIME_ADDR_GROUP_END, NULL, NULL, NULL);
			a.in_group = 0;
			addr_next(&a);
		} else if (is_special(&a, ',') || is_special(&a, ';')) {
			addr_next(&a);
		} else {
			addr_one(&a);
		}
	}
	if (a.in_group) {
		addr_emit(&a, MIME_ADDR_GROUP_END, NULL, NULL, NULL); /* ENVELOPE wants pairs */
	}
	buf_free(&a.phrase);
	buf_free(&a.spec);
	buf_free(&a.host);
	buf_free(&a.comment);
	buf_free(&a.route);
	buf_free(&a.tmp);
	return a.head;
}

/* see rumble.h */
void mime_addr_free(struct mime_addr *a)
{
	while (a) {
		struct mime_addr *next = a->next;
		free(a);
		a = next;
	}
}

/* ---- dates (RFC 5322 3.3, 4.3) ---- */

static int month_of(const char *s, size_t n)
{
	static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	if (n < 3) {
		return -1;
	}
	for (int i = 0; i < 12; i++) {
		const char *w = names + 3 * i;
		if (to_lower((unsigned char)s[0]) == w[0] &&
		        to_lower((unsigned char)s[1]) == w[1] &&
		        to_lower((unsigned char)s[2]) == w[2]) {
			return i;
		}
	}
	return -1;
}

/* Minutes east of UTC for a zone name; 0 for the military letters,
 * which RFC 5322 4.3 says to read as -0000 (they were defined with the
 * wrong sign), and for names we do not know. */
static int zone_of(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int min;
	} zones[] = {{"ut", 0}, {"utc", 0}, {"gmt", 0}, {"z", 0}, {"est", -300}, {"edt", -240},
	        {"cst", -360}, {"cdt", -300}, {"mst", -420}, {"mdt", -360}, {"pst", -480},
	        {"pdt", -420}};
	for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
		if (word_is(s, n, zones[i].name)) {
			return zones[i].min;
		}
	}
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return days[m] + (m == 1 && leap);
}

/* Days from 1970-01-01 to y-m-d (m from 0) in the proleptic Gregorian
 * calendar: whole years, then the months of this one. */
static int64_t days_since_epoch(int y, int m, int d)
{
	static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	int64_t py = y - 1;
	int64_t days = 365 * py + py / 4 - py / 100 + py / 400; /* to y-01-01 from 0001-01-01 */
	days += before[m] + (m > 1 && days_in_month(y, 1) == 29) + d - 1;
	return days - 719162; /* 1970-01-01 from 0001-01-01 */
}

/* Digits at s[*i] (at most max of them): the value, or -1 if none. */
static long take_number(const char *s, size_t n, size_t *i, int max, int *ndigits)
{
	long v = 0;
	int k = 0;
	while (*i < n && is_digit(s[*i])) {
		if (++k > max) {
			return -1;
		}
		v = v * 10 + (s[(*i)++] - '0');
	}
	if (ndigits) {
		*ndigits = k;
	}
	return k ? v : -1;
}

struct date {
	long day, mon, year, hh, mi, ss;
	int year_digits, have_time, zone, zone_numeric;
};

/* "hh:mm[:ss]" at s[*i], the hour already read into h. */
static int date_time(const char *s, size_t n, size_t *i, long h, struct date *d)
{
	(*i)++;
	d->hh = h;
	d->mi = take_number(s, n, i, 2, NULL);
	d->ss = 0;
	if (*i + 1 < n && s[*i] == ':' && is_digit(s[*i + 1])) {
		(*i)++;
		d->ss = take_number(s, n, i, 2, NULL);
	}
	d->have_time = 1;
	return d->mi < 0 || d->ss < 0 ? -1 : 0;
}

/* A word: a month, a day name (ignored), AM/PM, or a zone name. */
static void date_word(const char *w, size_t n, struct date *d)
{
	int mon = month_of(w, n);
	if (d->mon < 0 && mon >= 0) {
		d->mon = mon;
	} else if (word_is(w, n, "pm") && d->have_time && d->hh < 12) {
		d->hh += 12;
	} else if (word_is(w, n, "am") && d->have_time && d->hh == 12) {
		d->hh = 0;
	} else if (d->have_time && !d->zone_numeric) {
		d->zone = zone_of(w, n); /* day names come before the time */
	}
}

/* see rumble.h. Tokens are taken in any order, so that RFC 5322, the
 * asctime form ("Mon Jan  2 15:04:05 2006") and IMAP's
 * "02-Jan-2006 15:04:05 +0000" all read: a number with three or more
 * digits, or one after day and month, is the year; a signed number after
 * the time is the zone. */
int mime_date_parse(const char *s, size_t n, int64_t *t, int *zone)
{
	struct date d = {-1, -1, -1, 0, 0, 0, 0, 0, 0, 0};
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c == '(') {
			struct scan sc = {s + i, s + n};
			skip_comment(&sc);
			i = (size_t)(sc.p - s);
		} else if (is_digit(c)) {
			int nd;
			long v = take_number(s, n, &i, 8, &nd);
			if (v < 0) {
				return -1;
			}
			if (i < n && s[i] == ':') {
				if (d.have_time || date_time(s, n, &i, v, &d) != 0) {
					return -1;
				}
			} else if (d.year < 0 && (nd >= 3 || (d.day >= 0 && d.mon >= 0))) {
				d.year = v;
				d.year_digits = nd;
			} else if (d.day < 0 && nd <= 2) {
				d.day = v;
			} else if (d.year < 0) {
				d.year = v;
				d.year_digits = nd;
			}
		} else if ((c == '+' || c == '-') && d.have_time && i + 1 < n &&
		           is_digit(s[i + 1])) {
			size_t j = i + 1;
			int nd;
			long v = take_number(s, n, &j, 4, &nd);
			if (v >= 0 && nd == 4 && v % 100 < 60 && v / 100 < 24) {
				d.zone = (int)((v / 100) * 60 + v % 100) * (c == '-' ? -1 : 1);
				d.zone_numeric = 1;
			}
			while (j < n && is_digit(s[j])) {
				j++;
			}
			i = j;
		} else if (is_alpha(c)) {
			size_t j = i;
			while (j < n && is_alpha(s[j])) {
				j++;
			}
			date_word(s + i, j - i, &d);
			i = j;
		} else {
			i++; /* blanks, ',' and the '-' of "02-Jan-2006" */
		}
	}
	if (d.year >= 0 && d.year_digits <= 2) {
		d.year += d.year < 50 ? 2000 : 1900; /* RFC 5322 4.3 */
	} else if (d.year >= 0 && d.year_digits == 3) {
		d.year += 1900;
	}
	if (d.mon < 0 || d.year < 1000 || d.year > 9999 || d.day < 1 ||
	        d.day > days_in_month((int)d.year, (int)d.mon) || d.hh > 23 || d.mi > 59 ||
	        d.ss > 60) {
		return -1;
	}
	*t = days_since_epoch((int)d.year, (int)d.mon, (int)d.day) * 86400 + d.hh * 3600 +
	     d.mi * 60 + d.ss - (int64_t)d.zone * 60;
	if (zone) {
		*zone = d.zone;
	}
	return 0;
}

/* ---- IMAP BODYSTRUCTURE and ENVELOPE (RFC 3501 7.4.2, 9) ---- */

/* Quoted when it can be, else a literal (8-bit bytes, line ends, NUL). */
static void imap_string(struct buf *o, const char *s, size_t n)
{
	int quoted = n <= 1024;
	for (size_t i = 0; quoted && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		quoted = c != 0 && c != '\r' && c != '\n' && c < 0x80;
	}
	if (!quoted) {
		buf_printf(o, "{%zu}\r\n", n);
		buf_append(o, s, n);
		return;
	}
	buf_putc(o, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\') {
			buf_putc(o, '\\');
		}
		buf_putc(o, s[i]);
	}
	buf_putc(o, '"');
}

static void imap_nstring(struct buf *o, const char *s)
{
	if (s) {
		imap_string(o, s, strlen(s));
	} else {
		buf_puts(o, "NIL");
	}
}

/* A value that is not plain ASCII goes out as RFC 2231 "utf-8''%XX",
 * so that the response stays 7-bit and a client knows the charset. */
static void imap_params(struct buf *o, const struct mime_param *v, unsigned n)
{
	struct buf enc;
	if (n == 0) {
		buf_puts(o, "NIL");
		return;
	}
	buf_init(&enc);
	buf_putc(o, '(');
	for (unsigned i = 0; i < n; i++) {
		const char *s = v[i].value;
		size_t len = strlen(s), k = 0;
		while (k < len && (unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x7f) {
			k++;
		}
		buf_puts(o, i ? " " : "");
		if (k == len) {
			imap_nstring(o, v[i].name);
			buf_putc(o, ' ');
			imap_string(o, s, len);
			continue;
		}
		buf_reset(&enc);
		mime__convert(MIME_CS_ASCII, s, len, &enc); /* valid UTF-8 whatever came in */
		buf_printf(o, "\"%s*\" \"utf-8''", v[i].name);
		for (size_t j = 0; j < enc.len; j++) {
			unsigned char c = (unsigned char)enc.data[j];
			if (is_alpha(c) || is_digit(c) || strchr("!#$&+-.^_`|~", c)) {
				buf_putc(o, (char)c);
			} else {
				buf_printf(o, "%%%02X", c);
			}
		}
		buf_putc(o, '"');
	}
	buf_putc(o, ')');
	buf_free(&enc);
}

static void imap_disposition(struct buf *o, const struct mime_part *p)
{
	if (!p->disposition) {
		buf_puts(o, "NIL");
		return;
	}
	buf_putc(o, '(');
	imap_nstring(o, p->disposition);
	buf_putc(o, ' ');
	imap_params(o, p->disp_params, p->ndisp_params);
	buf_putc(o, ')');
}

/* Content-Language: "en" as a string, "en, de" as a list (RFC 3282). */
static void imap_language(struct buf *o, const char *lang)
{
	struct buf list;
	int n = 0;
	buf_init(&list);
	for (const char *s = lang; s && *s;) {
		while (*s == ',' || is_blank((unsigned char)*s)) {
			s++;
		}
		const char *e = s;
		while (*e && *e != ',' && !is_blank((unsigned char)*e)) {
			e++;
		}
		if (e > s) {
			buf_puts(&list, n++ ? " " : "");
			imap_string(&list, s, (size_t)(e - s));
		}
		while (*e && *e != ',') {
			e++; /* a comment or junk after the tag */
		}
		s = e;
	}
	if (n == 0) {
		buf_puts(o, "NIL");
	} else if (n == 1) {
		buf_append(o, list.data, list.len);
	} else {
		buf_printf(o, "(%s)", list.data);
	}
	buf_free(&list);
}

/* see rumble.h */
void mime_bodystructure(
        const struct mime_msg *m, const struct mime_part *p, int ext, struct buf *out)
{
	buf_putc(out, '(');
	if (p->flags & MIME_MULTIPART) {
		for (const struct mime_part *c = p->child; c; c = c->next) {
			mime_bodystructure(m, c, ext, out);
		}
		buf_putc(out, ' ');
		imap_nstring(out, p->subtype);
		if (ext) {
			buf_putc(out, ' ');
			imap_params(out, p->params, p->nparams);
			buf_putc(out, ' ');
			imap_disposition(out, p);
			buf_putc(out, ' ');
			imap_language(out, p->language);
			buf_putc(out, ' ');
			imap_nstring(out, p->location);
		}
		buf_putc(out, ')');
		return;
	}
	/* a multipart that could not be split goes out as a single part */
	imap_nstring(out, p->type);
	buf_putc(out, ' ');
	imap_nstring(out, p->subtype);
	buf_putc(out, ' ');
	imap_params(out, p->params, p->nparams);
	buf_putc(out, ' ');
	imap_nstring(out, p->id);
	buf_putc(out, ' ');
	imap_nstring(out, p->description);
	buf_putc(out, ' ');
	imap_nstring(out, p->encoding);
	buf_printf(out, " %zu", p->body_len);
	if (p->flags & MIME_MESSAGE) {
		buf_putc(out, ' ');
		mime_envelope(m, p->child, out);
		buf_putc(out, ' ');
		mime_bodystructure(m, p->child, ext, out);
		buf_printf(out, " %zu", p->lines);
	} else if (mime_part_is(p, "message", "rfc822") || mime_part_is(p, "message", "global")) {
		/* not parsed (encoded, which RFC 2046 5.2.1 forbids, or too deep), yet
		 * RFC 3501's body-type-msg wants an envelope, a body and lines: empty ones */
		buf_puts(out, " (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
		              "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
		buf_printf(out, " %zu", p->lines);
	} else if (strcmp(p->type, "text") == 0) {
		buf_printf(out, " %zu", p->lines);
	}
	if (ext) {
		buf_putc(out, ' ');
		imap_nstring(out, p->md5);
		buf_putc(out, ' ');
		imap_disposition(out, p);
		buf_putc(out, ' ');
		imap_language(out, p->language);
		buf_putc(out, ' ');
		imap_nstring(out, p->location);
	}
	buf_putc(out, ')');
}

/* "(name adl mailbox host)" each; a group is (NIL NIL name NIL) ...
 * (NIL NIL NIL NIL). NIL for no address at all. */
static void imap_addrs(struct buf *o, const struct mime_addr *a)
{
	if (!a) {
		buf_puts(o, "NIL");
		return;
	}
	buf_putc(o, '(');
	for (; a; a = a->next) {
		buf_putc(o, '(');
		if (a->kind == MIME_ADDR_MAILBOX) {
			imap_nstring(o, a->name);
			buf_putc(o, ' ');
			imap_nstring(o, a->route); /* adl */
			buf_putc(o, ' ');
			imap_nstring(o, a->mailbox);
			buf_putc(o, ' ');
			imap_nstring(o, a->host);
		} else if (a->kind == MIME_ADDR_GROUP) {
			buf_puts(o, "NIL NIL ");
			imap_nstring(o, a->name);
			buf_puts(o, " NIL");
		} else {
			buf_puts(o, "NIL NIL NIL NIL");
		}
		buf_putc(o, ')');
	}
	buf_putc(o, ')');
}

/* Field i of p's ENVELOPE, unfolded into tmp; 0 when p has no such field.
 * The parser keeps them for the root and for messages in message/rfc822
 * parts; for another part of a buffer the header is looked up. */
static int env_get(const struct mime_msg *m, const struct mime_part *p, int i, struct buf *tmp)
{
	static const char *const names[MIME_ENV_FIELDS] = {"date", "subject", "from", "sender",
	        "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id"};
	if (!p->env) {
		return m->buf && mime_header_get(m, p, names[i], tmp);
	}
	if (!p->env->f[i]) {
		return 0;
	}
	buf_reset(tmp);
	buf_puts(tmp, p->env->f[i]);
	return 1;
}

static struct mime_addr *header_addrs(
        const struct mime_msg *m, const struct mime_part *p, int i, struct buf *tmp)
{
	return env_get(m, p, i, tmp) ? mime_addr_parse(tmp->data, tmp->len, 0) : NULL;
}

static void env_string(
        const struct mime_msg *m, const struct mime_part *p, int i, struct buf *tmp, struct buf *o)
{
	if (env_get(m, p, i, tmp)) {
		imap_string(o, tmp->data ? tmp->data : "", tmp->len);
	} else {
		buf_puts(o, "NIL");
	}
}

/* see rumble.h. Values go as written (RFC 2047 words and all): the
 * client decodes them. Sender and Reply-To default to From (RFC 3501
 * 7.4.2). */
void mime_envelope(const struct mime_msg *m, const struct mime_part *p, struct buf *out)
{
	static const int lists[] = {
	        MIME_ENV_SENDER, MIME_ENV_REPLY_TO, MIME_ENV_TO, MIME_ENV_CC, MIME_ENV_BCC};
	struct buf tmp;
	buf_init(&tmp);
	buf_putc(out, '(');
	env_string(m, p, MIME_ENV_DATE, &tmp, out);
	buf_putc(out, ' ');
	env_string(m, p, MIME_ENV_SUBJECT, &tmp, out);
	buf_putc(out, ' ');
	struct mime_addr *from = header_addrs(m, p, MIME_ENV_FROM, &tmp);
	imap_addrs(out, from);
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		struct mime_addr *a = header_addrs(m, p, lists[i], &tmp);
		buf_putc(out, ' ');
		imap_addrs(out, !a && i < 2 ? from : a);
		mime_addr_free(a);
	}
	mime_addr_free(from);
	buf_putc(out, ' ');
	env_string(m, p, MIME_ENV_IN_REPLY_TO, &tmp, out);
	buf_putc(out, ' ');
	env_string(m, p, MIME_ENV_MESSAGE_ID, &tmp, out);
	buf_putc(out, ')');
	buf_free(&tmp);
}
