/*
 * imap_fetch.c - IMAP's FETCH (RFC 3501 6.4.5): the items a client asks
 * for, and the answer, made as a job that adds at most a given number of
 * bytes per call (imap.c runs it from the session's writable callback, as
 * pop3.c's RETR). Sections are streamed from the mbox through
 * imap_msg.c, a buffer at a time; structures come from its cache. So the
 * memory a FETCH takes does not grow with the messages it sends.
 */
#include <string.h>
#include <time.h>

#include "rumble.h"

#define SECTION_MAX 512
#define FETCH_ITEMS_MAX 64
#define FILL_CHUNK (16 * 1024)

enum fi_type {
	FI_UID,
	FI_FLAGS,
	FI_INTERNALDATE,
	FI_SIZE,
	FI_ENVELOPE,
	FI_BODY,
	FI_BODYSTRUCTURE,
	FI_SECTION,
	FI_RFC822,
	FI_RFC822_HEADER,
	FI_RFC822_TEXT,
	FI_BINARY,
	FI_BINARY_SIZE,
	FI_MODSEQ,
	FI_SAVEDATE
};

struct fitem {
	int type, peek, partial;
	uint32_t off, len;
	char sec[SECTION_MAX]; /* BODY[sec], upper case */
};

struct imap_fetch {
	struct fitem it[FETCH_ITEMS_MAX];
	int nit, seen, uid;
	struct mm_folder *f;
	struct mm_view *v;
	uint32_t uidvalidity;
	const uint32_t *seqs;
	uint32_t n, pos;
	int cur; /* next item of the current message; -1 before it */
	int add_flags;
	struct mm_msg m;          /* the current message */
	struct imap_src *src;     /* its text, opened on first need */
	struct imap_section *sec; /* a literal being sent */
	uint64_t left;            /* bytes of it still to send */
	int literal8;             /* it is a literal8: NULs go as they are */
	int unknown_cte;          /* a BINARY item was left out: UNKNOWN-CTE */
	int wrote;                /* items written for the current message */
	int changed;              /* CHANGEDSINCE given: only messages above since */
	uint64_t since;
	int vanished;  /* VANISHED given (imap.c answers it) */
	int condstore; /* the session has CONDSTORE on: MODSEQ with implicit FLAGS */
};

static const struct {
	const char *name;
	int type;
} fetch_atts[] = {{"UID", FI_UID}, {"FLAGS", FI_FLAGS}, {"INTERNALDATE", FI_INTERNALDATE},
        {"RFC822.SIZE", FI_SIZE}, {"ENVELOPE", FI_ENVELOPE}, {"BODY", FI_BODY},
        {"BODYSTRUCTURE", FI_BODYSTRUCTURE}, {"RFC822", FI_RFC822},
        {"RFC822.HEADER", FI_RFC822_HEADER}, {"RFC822.TEXT", FI_RFC822_TEXT},
        {"MODSEQ", FI_MODSEQ}, {"SAVEDATE", FI_SAVEDATE}};

/* see rumble.h */
void imap_put_flags(struct buf *o, struct mm_folder *f, uint32_t fl, uint32_t kw)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {{MM_SEEN, "\\Seen"}, {MM_ANSWERED, "\\Answered"}, {MM_FLAGGED, "\\Flagged"},
	        {MM_DELETED, "\\Deleted"}, {MM_DRAFT, "\\Draft"}};
	const char *sep = "";
	buf_puts(o, "(");
	if (fl & MM_RECENT) {
		buf_puts(o, "\\Recent");
		sep = " ";
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (fl & names[i].bit) {
			buf_printf(o, "%s%s", sep, names[i].name);
			sep = " ";
		}
	}
	for (int i = 0; i < 32; i++) {
		const char *n = (kw >> i) & 1 ? mm_folder_keyword_name(f, i) : NULL;
		if (n) {
			buf_printf(o, "%s%s", sep, n);
			sep = " ";
		}
	}
	buf_puts(o, ")");
}

/* The section text between the brackets: "", "1.2", "HEADER",
 * "1.HEADER.FIELDS (A B)", "TEXT", "2.MIME". 0 when valid. */
static int section_check(const char *sec)
{
	const char *p = sec;
	int parts = 0;
	while (*p >= '0' && *p <= '9') {
		while (*p >= '0' && *p <= '9') {
			p++;
		}
		parts = 1;
		if (*p != '.') {
			return *p ? -1 : 0;
		}
		p++;
	}
	if (rl_strcasecmp(p, "HEADER") == 0 || rl_strcasecmp(p, "TEXT") == 0 ||
	        (parts && rl_strcasecmp(p, "MIME") == 0) || (!parts && !*p)) {
		return 0;
	}
	if (rl_strncasecmp(p, "HEADER.FIELDS.NOT (", 19) == 0) {
		p += 19;
	} else if (rl_strncasecmp(p, "HEADER.FIELDS (", 15) == 0) {
		p += 15;
	} else {
		return -1;
	}
	size_t n = strlen(p);
	return n > 1 && p[n - 1] == ')' && !strchr(p, '(') ? 0 : -1;
}

/* A number of a partial fetch: 0 is one too. */
static int partial_num(const char **p, uint32_t *out)
{
	if (**p == '0' && ((*p)[1] < '0' || (*p)[1] > '9')) {
		(*p)++;
		*out = 0;
		return 0;
	}
	return imap__num(p, out);
}

/* BODY[...]<a.b> or BODY.PEEK[...]<a.b> into it. */
static int parse_section(const char *att, struct fitem *it)
{
	const char *p = att + 4;
	it->peek = rl_strncasecmp(p, ".PEEK[", 6) == 0;
	p += it->peek ? 5 : 0;
	const char *close = strchr(p, ']');
	if (*p != '[' || !close || (size_t)(close - p) >= SECTION_MAX) {
		return -1;
	}
	memcpy(it->sec, p + 1, (size_t)(close - p - 1));
	it->sec[close - p - 1] = '\0';
	for (char *c = it->sec; *c; c++) {
		*c = *c >= 'a' && *c <= 'z' ? (char)(*c - 32) : *c;
	}
	it->type = FI_SECTION;
	p = close + 1;
	if (*p == '<') {
		p++;
		if (partial_num(&p, &it->off) != 0) {
			return -1;
		}
		if (*p++ != '.' || partial_num(&p, &it->len) != 0 || *p++ != '>') {
			return -1;
		}
		it->partial = 1;
	}
	return *p || section_check(it->sec) != 0 ? -1 : 0;
}

/* BINARY[1.2]<0.10>, BINARY.PEEK[...], BINARY.SIZE[...] (RFC 3516): the
 * section is part numbers or nothing. */
static int parse_binary(const char *att, struct fitem *it)
{
	const char *p = att + 6;
	int size = rl_strncasecmp(p, ".SIZE[", 6) == 0;
	it->peek = size || rl_strncasecmp(p, ".PEEK[", 6) == 0;
	p += it->peek ? 5 : 0;
	const char *close = *p == '[' ? strchr(p, ']') : NULL;
	if (!close || (size_t)(close - p) >= SECTION_MAX) {
		return -1;
	}
	memcpy(it->sec, p + 1, (size_t)(close - p - 1));
	it->sec[close - p - 1] = '\0';
	for (const char *c = it->sec; *c; c++) {
		int dot = *c == '.';
		if (!(*c >= '0' && *c <= '9') && !(dot && c > it->sec && c[1] && c[-1] != '.')) {
			return -1;
		}
	}
	it->type = size ? FI_BINARY_SIZE : FI_BINARY;
	p = close + 1;
	if (*p == '<' && !size) {
		p++;
		if (partial_num(&p, &it->off) != 0 || *p++ != '.' || partial_num(&p, &it->len) != 0 ||
		        *p++ != '>') {
			return -1;
		}
		it->partial = 1;
	}
	return *p ? -1 : 0;
}

static int fetch_att(struct imap_fetch *j, const char *att)
{
	if (j->nit >= FETCH_ITEMS_MAX) {
		return -1;
	}
	struct fitem *it = &j->it[j->nit];
	memset(it, 0, sizeof *it);
	if (rl_strncasecmp(att, "BINARY[", 7) == 0 || rl_strncasecmp(att, "BINARY.PEEK[", 12) == 0 ||
	        rl_strncasecmp(att, "BINARY.SIZE[", 12) == 0) {
		if (parse_binary(att, it) != 0) {
			return -1;
		}
		j->seen |= !it->peek;
		j->nit++;
		return 0;
	}
	if (rl_strncasecmp(att, "BODY[", 5) == 0 || rl_strncasecmp(att, "BODY.PEEK[", 10) == 0) {
		if (parse_section(att, it) != 0) {
			return -1;
		}
		j->seen |= !it->peek;
		j->nit++;
		return 0;
	}
	for (size_t i = 0; i < sizeof fetch_atts / sizeof fetch_atts[0]; i++) {
		if (rl_strcasecmp(att, fetch_atts[i].name) == 0) {
			for (int k = 0; k < j->nit; k++) {
				if (j->it[k].type == fetch_atts[i].type) {
					return 0; /* UID FETCH ... (UID ...): once is enough */
				}
			}
			it->type = fetch_atts[i].type;
			j->seen |= it->type == FI_RFC822 || it->type == FI_RFC822_TEXT;
			j->nit++;
			return 0;
		}
	}
	return -1;
}

static int tok_is(const struct imap_cmd *c, uint32_t i, int type)
{
	return i < c->ntok && c->tok[i].type == type;
}

/* RFC 7162's modifiers after the items: "(CHANGEDSINCE n [VANISHED])"
 * at pos, to the end. */
static int fetch_modifiers(const struct imap_cmd *c, uint32_t pos, struct imap_fetch *j)
{
	if (pos == c->ntok) {
		return 0;
	}
	if (!tok_is(c, pos++, IMAP_LPAREN)) {
		return -1;
	}
	for (; tok_is(c, pos, IMAP_ATOM); pos++) {
		const char *m = imap_tok_str(c, pos);
		if (rl_strcasecmp(m, "VANISHED") == 0 && !j->vanished) {
			j->vanished = 1;
		} else if (rl_strcasecmp(m, "CHANGEDSINCE") == 0 && !j->changed &&
		           tok_is(c, pos + 1, IMAP_ATOM) &&
		           imap_modseq_parse(imap_tok_str(c, pos + 1), &j->since) == 0) {
			j->changed = 1;
			pos++;
		} else {
			return -1;
		}
	}
	/* VANISHED only with CHANGEDSINCE, in a UID FETCH (RFC 7162 3.2.6) */
	return tok_is(c, pos, IMAP_RPAREN) && pos + 1 == c->ntok && pos > 0 &&
	                       (!j->vanished || (j->changed && j->uid)) && (j->changed || j->vanished)
	               ? 0
	               : -1;
}

/* ALL, FAST, FULL, one attribute or a list of them, from token pos on,
 * then the modifiers. */
static int fetch_items(const struct imap_cmd *c, uint32_t pos, struct imap_fetch *j)
{
	static const char *macros[][2] = {{"ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"},
	        {"FAST", "FLAGS INTERNALDATE RFC822.SIZE"},
	        {"FULL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY"}};
	if (j->uid && fetch_att(j, "UID") != 0) {
		return -1;
	}
	if (tok_is(c, pos, IMAP_LPAREN)) {
		uint32_t first = pos + 1; /* "()" is bad, "UID FETCH 1 (UID)" is not */
		for (pos = first; tok_is(c, pos, IMAP_ATOM); pos++) {
			if (fetch_att(j, imap_tok_str(c, pos)) != 0) {
				return -1;
			}
		}
		return tok_is(c, pos, IMAP_RPAREN) && pos > first ? fetch_modifiers(c, pos + 1, j)
		                                                   : -1;
	}
	if (!tok_is(c, pos, IMAP_ATOM) || fetch_modifiers(c, pos + 1, j) != 0) {
		return -1;
	}
	const char *att = imap_tok_str(c, pos);
	for (size_t i = 0; i < 3; i++) {
		if (rl_strcasecmp(att, macros[i][0]) == 0) {
			char list[64], *save = NULL;
			rl_strlcpy(list, macros[i][1], sizeof list);
			for (char *w = os_strtok(list, " ", &save); w;
			        w = os_strtok(NULL, " ", &save)) {
				fetch_att(j, w);
			}
			return 0;
		}
	}
	return fetch_att(j, att);
}

/* CHANGEDSINCE asks for MODSEQ too (RFC 7162 3.1.4.1). */
static int fetch_add_modseq(struct imap_fetch *j)
{
	for (int k = 0; k < j->nit; k++) {
		if (j->it[k].type == FI_MODSEQ) {
			return 0;
		}
	}
	return fetch_att(j, "MODSEQ");
}

/* see rumble.h */
int imap_fetch_new(const struct imap_cmd *c, uint32_t pos, int uid, struct imap_fetch **out)
{
	struct imap_fetch *j = xcalloc(1, sizeof *j);
	j->uid = uid;
	j->cur = -1;
	if (fetch_items(c, pos, j) != 0 || (j->changed && fetch_add_modseq(j) != 0)) {
		free(j);
		*out = NULL;
		return -1;
	}
	*out = j;
	return 0;
}

/* see rumble.h */
void imap_fetch_begin(struct imap_fetch *j, struct mm_folder *f, struct mm_view *v,
        const uint32_t *seqs, uint32_t n, int readonly)
{
	j->f = f;
	j->v = v;
	j->uidvalidity = mm_folder_uidvalidity(f);
	j->seqs = seqs;
	j->n = n;
	j->seen &= !readonly;
}

/* see rumble.h */
int imap_fetch_sync(struct imap_fetch *j, int condstore, uint64_t *since, int *vanished)
{
	int uses = j->changed;
	for (int k = 0; k < j->nit; k++) {
		uses |= j->it[k].type == FI_MODSEQ;
	}
	j->condstore = condstore || uses;
	*since = j->since;
	*vanished = j->vanished;
	return uses;
}

/* see rumble.h */
int imap_fetch_unknown_cte(const struct imap_fetch *j)
{
	return j->unknown_cte;
}

/* see rumble.h */
void imap_fetch_free(struct imap_fetch *j)
{
	if (j) {
		imap_section_free(j->sec);
		imap_src_free(j->src);
		free(j);
	}
}

static void put_date(struct buf *o, int64_t t)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int off = os_timezone_offset(t);
	struct tm tm;
	os_gmtime(t + off * 60, &tm);
	int a = off < 0 ? -off : off;
	buf_printf(o, "\"%02d-%.3s-%04d %02d:%02d:%02d %c%02d%02d\"", tm.tm_mday,
	        months + 3 * tm.tm_mon, tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	        off < 0 ? '-' : '+', a / 60, a % 60);
}

static struct imap_src *src_of(struct imap_fetch *j)
{
	if (!j->src) {
		j->src = imap_src_folder(j->f, &j->m, j->uidvalidity);
	}
	return j->src;
}

/* A section's literal: its label, then "{n}" and the bytes, sent from
 * imap_fetch_fill; NIL when there is no such part. -1 (nothing written)
 * when the message cannot be read. */
static int put_section(struct imap_fetch *j, const struct fitem *it, const char *label,
        const char *spec, struct buf *o)
{
	uint64_t size, off = 0;
	int rc = imap_section_open(src_of(j), spec, &j->sec, &size);
	if (rc == 0 && it && it->partial) {
		off = it->off < size ? it->off : size;
		rc = off && imap_section_skip(j->sec, off) != 0 ? -2 : 0;
	}
	if (rc == -2) {
		imap_section_free(j->sec);
		j->sec = NULL;
		return -1;
	}
	buf_puts(o, label);
	if (it && it->partial) {
		buf_printf(o, "<%u>", it->off);
	}
	if (rc == -1) {
		buf_puts(o, " NIL");
		return 0;
	}
	uint64_t n = size - off;
	if (it && it->partial && it->len < n) {
		n = it->len;
	}
	buf_printf(o, " {%llu}\r\n", (unsigned long long)n);
	j->left = n;
	j->literal8 = 0;
	return 0;
}

/* BINARY[part]<partial> or BINARY.SIZE[part] (RFC 3516): the section
 * decoded, in a literal8 ("~{n}") when it holds a NUL. A part encoded in
 * a way there is no decoding for is left out and the FETCH ends in NO
 * [UNKNOWN-CTE]. -1 (nothing written) when the message cannot be read. */
static int put_binary(struct imap_fetch *j, const struct fitem *it, struct buf *o)
{
	uint64_t size, off = 0;
	int nul;
	int rc = imap_section_open_binary(src_of(j), it->sec, &j->sec, &size, &nul);
	if (rc == 0 && it->partial) {
		off = it->off < size ? it->off : size;
		rc = off && imap_section_skip(j->sec, off) != 0 ? -2 : 0;
	}
	if (rc == 0 && it->type == FI_BINARY_SIZE) {
		imap_section_free(j->sec);
		j->sec = NULL;
		buf_printf(o, "BINARY.SIZE[%s] %llu", it->sec, (unsigned long long)size);
		return 0;
	}
	if (rc < -1) {
		imap_section_free(j->sec);
		j->sec = NULL;
		j->unknown_cte |= rc == -3;
		return rc == -3 ? 1 : -1;
	}
	buf_printf(o, "BINARY[%s]", it->sec);
	if (it->partial) {
		buf_printf(o, "<%u>", it->off);
	}
	if (rc == -1) {
		buf_puts(o, " NIL");
		return 0;
	}
	uint64_t n = size - off;
	if (it->partial && it->len < n) {
		n = it->len;
	}
	buf_printf(o, " %s{%llu}\r\n", nul ? "~" : "", (unsigned long long)n);
	j->left = n;
	j->literal8 = 1;
	return 0;
}

/* One item of the current message; -1 when the message cannot be read,
 * 1 when the item is left out (and nothing written). */
static int fetch_item(struct imap_fetch *j, const struct fitem *it, struct buf *o)
{
	const struct mm_msg *m = &j->m;
	const struct mime_msg *mm;
	char label[SECTION_MAX + 8];
	if (j->wrote) {
		buf_puts(o, " ");
	}
	switch (it->type) {
	case FI_UID:
		buf_printf(o, "UID %u", m->uid);
		return 0;
	case FI_FLAGS:
		buf_puts(o, "FLAGS ");
		imap_put_flags(o, j->f, m->flags | (mm_view_recent(j->v, m->uid) ? MM_RECENT : 0),
		        m->keywords);
		return 0;
	case FI_MODSEQ:
		buf_printf(o, "MODSEQ (%llu)", (unsigned long long)m->modseq);
		return 0;
	case FI_SAVEDATE:
		buf_puts(o, "SAVEDATE ");
		if (m->savedate > 0) {
			put_date(o, m->savedate);
		} else {
			buf_puts(o, "NIL");
		}
		return 0;
	case FI_INTERNALDATE:
		buf_puts(o, "INTERNALDATE ");
		put_date(o, m->date);
		return 0;
	case FI_SIZE:
		buf_printf(o, "RFC822.SIZE %u", m->size);
		return 0;
	case FI_ENVELOPE:
		if (!(mm = imap_src_mime(src_of(j), 0))) {
			return -1;
		}
		buf_puts(o, "ENVELOPE ");
		mime_envelope(mm, mm->root, o);
		return 0;
	case FI_BODY:
	case FI_BODYSTRUCTURE:
		if (!(mm = imap_src_mime(src_of(j), 1))) {
			return -1;
		}
		buf_puts(o, it->type == FI_BODY ? "BODY " : "BODYSTRUCTURE ");
		mime_bodystructure(mm, mm->root, it->type == FI_BODYSTRUCTURE, o);
		return 0;
	case FI_RFC822:
		return put_section(j, NULL, "RFC822", "", o);
	case FI_RFC822_HEADER:
		return put_section(j, NULL, "RFC822.HEADER", "HEADER", o);
	case FI_RFC822_TEXT:
		return put_section(j, NULL, "RFC822.TEXT", "TEXT", o);
	case FI_BINARY:
	case FI_BINARY_SIZE:
		return put_binary(j, it, o);
	}
	snprintf(label, sizeof label, "BODY[%s]", it->sec);
	return put_section(j, it, label, it->sec, o);
}

/* Starts message seqs[pos]: sets \Seen when asked; -1 to skip it. */
static int fetch_begin(struct imap_fetch *j, struct buf *o)
{
	uint32_t seq = j->seqs[j->pos];
	if (mm_view_msg(j->v, seq, &j->m) != 0) {
		return -1; /* expunged by another session: nothing to send */
	}
	if (j->changed && j->m.modseq <= j->since) {
		return -1; /* not changed since */
	}
	j->add_flags = 0;
	if (j->seen && !(j->m.flags & MM_SEEN)) {
		mm_view_store(j->v, &j->m.uid, 1, MM_STORE_ADD, MM_SEEN, 0);
		j->add_flags = 1;
		for (int i = 0; i < j->nit; i++) {
			j->add_flags &= j->it[i].type != FI_FLAGS;
		}
		if (mm_view_msg(j->v, seq, &j->m) != 0) {
			return -1;
		}
	}
	buf_printf(o, "* %u FETCH (", seq);
	j->wrote = 0;
	return 0;
}

static void fetch_end_msg(struct imap_fetch *j, struct buf *o)
{
	if (j->add_flags) {
		buf_puts(o, " FLAGS ");
		imap_put_flags(o, j->f, j->m.flags | (mm_view_recent(j->v, j->m.uid) ? MM_RECENT : 0),
		        j->m.keywords);
		int has = 0;
		for (int i = 0; i < j->nit; i++) {
			has |= j->it[i].type == FI_MODSEQ;
		}
		if (j->condstore && !has) {
			buf_printf(o, " MODSEQ (%llu)", (unsigned long long)j->m.modseq);
		}
	}
	buf_puts(o, ")\r\n");
	imap_src_free(j->src);
	j->src = NULL;
	j->pos++;
	j->cur = -1;
}

/* A literal holds no NUL (RFC 3501 9: CHAR8 is %x01-ff; RFC 3516 made
 * literal8 for NULs, and only BINARY answers may use it): a NUL in a
 * message goes out as 0x80 in BODY[] and RFC822 answers, as Dovecot does,
 * the size unchanged; BINARY[] gives the bytes as they are. */
static void nul_to_80(char *p, size_t n)
{
	for (char *z = memchr(p, '\0', n); z; z = memchr(z, '\0', n - (size_t)(z - p))) {
		*z = (char)0x80;
	}
}

/* Sends more of the literal; 1 when it is all out, -1 when the message
 * cannot be read (its length is out already: only closing tells). */
static int fetch_stream(struct imap_fetch *j, struct buf *o)
{
	char chunk[FILL_CHUNK];
	if (j->left) {
		long n = imap_section_read(
		        j->sec, chunk, j->left < sizeof chunk ? (size_t)j->left : sizeof chunk);
		if (n <= 0) {
			return -1;
		}
		if (!j->literal8) {
			nul_to_80(chunk, (size_t)n);
		}
		buf_append(o, chunk, (size_t)n);
		j->left -= (uint64_t)n;
	}
	if (j->left == 0) {
		imap_section_free(j->sec);
		j->sec = NULL;
		return 1;
	}
	return 0;
}

/* see rumble.h */
int imap_fetch_fill(struct imap_fetch *j, struct buf *o, size_t max)
{
	size_t start = o->len;
	while (o->len - start < max) {
		if (j->sec) {
			if (fetch_stream(j, o) < 0) {
				return -1;
			}
		} else if (j->pos >= j->n) {
			return 1;
		} else if (j->cur < 0) {
			if (fetch_begin(j, o) < 0) {
				j->pos++;
			} else {
				j->cur = 0;
			}
		} else if (j->cur < j->nit) {
			size_t before = o->len;
			int rc = fetch_item(j, &j->it[j->cur], o);
			if (rc < 0) {
				j->cur = j->nit; /* unreadable: what was sent stays */
				j->add_flags = 0;
			} else {
				if (rc > 0) {
					o->len = before; /* left out, the space before it too */
					o->data[o->len] = '\0';
				}
				j->wrote += rc == 0;
				j->cur++;
			}
		} else {
			fetch_end_msg(j, o);
		}
	}
	return 0;
}
