/*
 * imap_msg.c - how IMAP reads a message: its MIME structure, the bytes of
 * a section, and what SEARCH looks for, all streamed from the mbox (or,
 * for tests, from a buffer) through buffers of a fixed size: no command
 * holds a whole message.
 *
 * IMPLEMENTATION NOTES
 * - The structure comes from one streamed pass of mime_stream over the
 *   message, fed line by line with the reader's marks, so every part
 *   knows where in the mbox its header and body begin (and the tree has a
 *   mark every 256 KB). It goes into a cache shared by every session:
 *   an LRU of trees keyed by folder, UIDVALIDITY and UID, CACHE_MAX bytes
 *   in all, so that BODYSTRUCTURE then BODY[2] of a 50 MB message reads
 *   it once, not twice. A tree is never changed once cached (messages do
 *   not change), so readers need no lock; entries are counted references.
 * - ENVELOPE, HEADER, TEXT and HEADER.FIELDS need only the root's header:
 *   the parse stops there (MIME_LIMIT_CUT) unless the whole tree is
 *   cached already.
 * - A section is a range of the message, read from the nearest mark at
 *   or before it; HEADER.FIELDS is a filter over a header's lines, run
 *   twice (once to count, for the literal's size).
 * - SEARCH BODY reads each leaf's body through mime_find (decoding and
 *   charset conversion as it goes); HEADER reads the root's header lines.
 */
#include <string.h>

#include "rumble.h"

#define CACHE_MAX (512 * 1024)  /* bytes of trees kept, every session together */
#define CACHE_ONE (128 * 1024)  /* a bigger tree is used once and not kept */
#define CHUNK (16 * 1024)       /* what is read at a time */
#define LINE_MAX_HF (64 * 1024) /* a header line judged by HEADER.FIELDS */
#define VALUE_MAX_S (64 * 1024) /* of a header value SEARCH looks into */
#define HF_KEEP (64 * 1024)     /* a HEADER.FIELDS answer up to this is made once */

/* ---- the cache of structures ---- */

struct centry {
	uint64_t key;
	uint32_t uidvalidity, uid, size;
	int full; /* the whole tree (else the root's header only) */
	int refs; /* the cache's own while listed, and each user's */
	int listed;
	size_t bytes;
	struct mime_msg m;
	struct centry *prev, *next; /* most recently used first */
	struct centry *hnext;       /* the hash chain */
};

#define CACHE_HASH 1024

static os_mutex *cache_mu;
static struct centry *lru_head, *lru_tail;
static struct centry *chash[CACHE_HASH];
static size_t cache_bytes;

static struct centry **chain(uint64_t key, uint32_t uid)
{
	return &chash[(key ^ (key >> 29) ^ uid * 2654435761u) % CACHE_HASH];
}

/* The listed entry for this message, NULL if none; the lock is held. */
static struct centry *cache_find(uint64_t key, uint32_t uidv, uint32_t uid)
{
	struct centry *e = *chain(key, uid);
	while (e && !(e->key == key && e->uid == uid && e->uidvalidity == uidv)) {
		e = e->hnext;
	}
	return e;
}

static os_mutex *cache_mutex(void)
{
	return rl_mutex_once(&cache_mu);
}

static void lru_unlink(struct centry *e)
{
	*(e->prev ? &e->prev->next : &lru_head) = e->next;
	*(e->next ? &e->next->prev : &lru_tail) = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct centry *e)
{
	e->next = lru_head;
	e->prev = NULL;
	*(lru_head ? &lru_head->prev : &lru_tail) = e;
	lru_head = e;
}

/* Drops a reference; the cache lock is held. */
static void centry_unref(struct centry *e)
{
	if (--e->refs == 0) {
		mime_free(&e->m);
		free(e);
	}
}

static void cache_drop(struct centry *e)
{
	struct centry **pp = chain(e->key, e->uid);
	while (*pp != e) {
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
	lru_unlink(e);
	e->listed = 0;
	cache_bytes -= e->bytes;
	centry_unref(e);
}

static struct centry *cache_get(uint64_t key, uint32_t uidv, uint32_t uid, uint32_t size, int full)
{
	os_mutex_lock(cache_mutex());
	struct centry *e = cache_find(key, uidv, uid);
	if (e && e->size == size && (e->full || !full)) {
		lru_unlink(e);
		lru_front(e);
		e->refs++;
	} else {
		e = NULL;
	}
	os_mutex_unlock(cache_mutex());
	return e;
}

/* Lists e (a new entry with the caller's reference) when it is not too
 * big, in place of an older one for the same message. */
static void cache_put(struct centry *e)
{
	e->bytes = mime_msg_size(&e->m) + sizeof *e;
	if (e->bytes > CACHE_ONE) {
		return;
	}
	os_mutex_lock(cache_mutex());
	struct centry *o = cache_find(e->key, e->uidvalidity, e->uid);
	if (o) {
		cache_drop(o);
	}
	e->refs++;
	e->listed = 1;
	e->hnext = *chain(e->key, e->uid);
	*chain(e->key, e->uid) = e;
	lru_front(e);
	cache_bytes += e->bytes;
	while (cache_bytes > CACHE_MAX && lru_tail != e) {
		cache_drop(lru_tail);
	}
	os_mutex_unlock(cache_mutex());
}

static void cache_release(struct centry *e)
{
	if (e) {
		os_mutex_lock(cache_mutex());
		centry_unref(e);
		os_mutex_unlock(cache_mutex());
	}
}

/* see rumble.h */
void imap_cache_clear(void)
{
	os_mutex_lock(cache_mutex());
	while (lru_head) {
		cache_drop(lru_head);
	}
	os_mutex_unlock(cache_mutex());
}

/* ---- a message to read ---- */

struct imap_src {
	struct mm_folder *f; /* a message of a folder, by UID ... */
	struct mm_msg msg;
	uint32_t uidvalidity;
	struct mm_reader *rd;
	const char *buf; /* ... or a buffer */
	uint64_t size;
	uint64_t pos; /* where the next read starts (as served) */
	int failed;   /* the message could not be read */
	struct centry *ce;
	char *scratch; /* CHUNK bytes */
};

static struct imap_src *src_new(void)
{
	struct imap_src *s = xcalloc(1, sizeof *s);
	s->scratch = xmalloc(CHUNK);
	return s;
}

/* see rumble.h */
struct imap_src *imap_src_folder(struct mm_folder *f, const struct mm_msg *m, uint32_t uidvalidity)
{
	struct imap_src *s = src_new();
	s->f = f;
	s->msg = *m;
	s->uidvalidity = uidvalidity;
	s->size = m->size;
	return s;
}

/* see rumble.h */
struct imap_src *imap_src_buffer(const char *p, size_t n)
{
	struct imap_src *s = src_new();
	s->buf = p ? p : "";
	s->size = p ? n : 0;
	return s;
}

/* see rumble.h */
void imap_src_free(struct imap_src *s)
{
	if (s) {
		mm_reader_close(s->rd);
		cache_release(s->ce);
		xfree(s->scratch);
		free(s);
	}
}

/* Continues at offset off, whose mark is mark (a line start), or from
 * the start of the message when mark is MM_NO_MARK. */
static int src_jump(struct imap_src *s, uint64_t off, uint64_t mark)
{
	if (s->buf) {
		s->pos = off;
		return 0;
	}
	if (mark == MM_NO_MARK) {
		off = mark = 0;
	}
	if (!s->rd && !(s->rd = mm_reader_open_uid(s->f, s->msg.uid))) {
		s->failed = 1;
		return -1;
	}
	if (mm_reader_seek(s->rd, off, mark) != 0) {
		s->failed = 1;
		return -1;
	}
	s->pos = off;
	return 0;
}

static long src_read(struct imap_src *s, char *out, size_t n, int line)
{
	if (s->buf) {
		size_t left = s->pos < s->size ? (size_t)(s->size - s->pos) : 0,
		       k = n < left ? n : left;
		const char *nl = line ? memchr(s->buf + s->pos, '\n', k) : NULL;
		k = nl ? (size_t)(nl - (s->buf + s->pos)) + 1 : k;
		memcpy(out, s->buf + s->pos, k);
		s->pos += k;
		return (long)k;
	}
	if (!s->rd && src_jump(s, 0, 0) != 0) {
		return -1;
	}
	long k = line ? mm_reader_read_line(s->rd, out, n) : mm_reader_read(s->rd, out, n);
	if (k < 0) {
		s->failed = 1;
		return -1;
	}
	s->pos += (uint64_t)k;
	return k;
}

/* The mark of the next byte: it must start a line. */
static uint64_t src_mark(const struct imap_src *s)
{
	return s->buf ? s->pos : s->rd ? mm_reader_mark(s->rd) : s->pos == 0 ? 0 : MM_NO_MARK;
}

/* Positions s at off: from the nearest known line start before it (the
 * tree's marks), or reading on from where it is when that is nearer. */
static int src_seek(struct imap_src *s, const struct mime_msg *m, uint64_t off)
{
	uint64_t best = 0, bmark = 0;
	if (s->buf) {
		s->pos = off;
		return 0;
	}
	for (unsigned i = 0; m && i < m->nmarks && m->marks[i].off <= off; i++) {
		best = m->marks[i].off, bmark = m->marks[i].mark;
	}
	for (const struct mime_part *p = m ? m->root : NULL; p;) {
		if (p->hdr_mark != MM_NO_MARK && p->hdr_off <= off && p->hdr_off >= best) {
			best = p->hdr_off, bmark = p->hdr_mark;
		}
		if (p->body_mark != MM_NO_MARK && p->body_off <= off && p->body_off >= best) {
			best = p->body_off, bmark = p->body_mark;
		}
		if (p->child) {
			p = p->child;
		} else {
			while (p && !p->next) {
				p = p->parent;
			}
			p = p ? p->next : NULL;
		}
	}
	if (!(s->rd && s->pos <= off && s->pos >= best) && src_jump(s, best, bmark) != 0) {
		return -1;
	}
	while (s->pos < off) {
		uint64_t left = off - s->pos;
		long k = src_read(s, s->scratch, left < CHUNK ? (size_t)left : CHUNK, 0);
		if (k <= 0) {
			s->failed = 1;
			return -1;
		}
	}
	return 0;
}

/* Parses the message as it streams by: the whole tree, or the root's
 * header only (full 0). */
static int src_parse(struct imap_src *s, struct mime_msg *m, int full)
{
	struct mime_stream *ms = mime_stream_new(m);
	if (src_jump(s, 0, 0) != 0) {
		mime_stream_end(ms);
		return -1;
	}
	for (;;) {
		uint64_t mark = src_mark(s);
		long k = src_read(s, s->scratch, CHUNK, 1);
		if (k < 0) {
			mime_stream_end(ms);
			return -1;
		}
		if (k == 0) {
			mime_stream_end(ms);
			return 0;
		}
		mime_stream_feed(ms, s->scratch, (size_t)k, mark == MM_NO_MARK ? 0 : mark);
		if (!full && mime_stream_header_done(ms) && s->pos < s->size) {
			mime_stream_cut(ms, s->size);
			return 0;
		}
	}
}

/* see rumble.h */
const struct mime_msg *imap_src_mime(struct imap_src *s, int full)
{
	uint64_t key = s->f ? mm_folder_key(s->f) : 0;
	if (s->ce && (s->ce->full || !full)) {
		return &s->ce->m;
	}
	struct centry *e =
	        s->buf ? NULL : cache_get(key, s->uidvalidity, s->msg.uid, s->msg.size, full);
	if (!e) {
		e = xcalloc(1, sizeof *e);
		e->refs = 1;
		if (src_parse(s, &e->m, full) != 0) {
			mime_free(&e->m);
			free(e);
			return NULL;
		}
		e->m.buf = s->buf; /* a buffer's tree may point into it */
		e->full = !(e->m.limits & MIME_LIMIT_CUT);
		e->key = key, e->uidvalidity = s->uidvalidity, e->uid = s->msg.uid;
		e->size = s->msg.size;
		if (!s->buf) {
			cache_put(e);
		}
	}
	cache_release(s->ce);
	s->ce = e;
	return &e->m;
}

/* ---- sections (FETCH BODY[...]) ---- */

enum { SEC_RANGE, SEC_FIELDS, SEC_DECODED };

struct imap_section {
	struct imap_src *src;
	int kind;
	uint64_t start, len; /* the range, or the header block HEADER.FIELDS reads */
	uint64_t hdr_mark;
	uint64_t done; /* bytes of the section handed out */
	/* BINARY: raw bytes [start, start + raw), then [body, body + len) decoded */
	uint64_t raw, body, in;
	const char *cte;
	struct mime_decoder dec;
	/* HEADER.FIELDS */
	char *list; /* "(A B)" as the client sent it */
	int not, counting;
	uint64_t read; /* bytes of the header block read */
	struct mime_hscan hs;
	struct buf line;                  /* the current line, up to LINE_MAX_HF bytes */
	int judged, out, lf, eof, closed; /* line judged; its field goes out; it ended in LF */
	struct buf pend;                  /* output not yet handed out */
};

/* 1 when name[0..n) is in the list "(A B)" (any case). */
static int in_list(const char *list, const char *name, size_t n)
{
	for (const char *p = list; n && *p;) {
		while (*p == ' ' || *p == '(' || *p == '"') {
			p++;
		}
		size_t w = strcspn(p, " )\"");
		if (w == n && rl_strncasecmp(p, name, w) == 0) {
			return 1;
		}
		p += w;
		while (*p == ')' || *p == '"') {
			p++;
		}
	}
	return 0;
}

/* Ends the field that was going out: a last line without its line end
 * gets CRLF. */
static void hf_field_end(struct imap_section *x, struct buf *o)
{
	if (x->out && !x->lf) {
		buf_puts(o, "\r\n");
	}
	x->out = 0;
}

/* Judges the line kept in x->line (all of it, or its first LINE_MAX_HF
 * bytes): a field named in the list (or not, for .NOT) goes out with
 * its continuation lines; the rest is left out. */
static void hf_judge(struct imap_section *x, struct buf *o)
{
	struct mime_header h;
	int kind = mime_hscan_line(&x->hs, x->line.data, x->line.len, 0, &h);
	if (kind != MH_MORE) {
		hf_field_end(x, o);
	}
	if (kind == MH_FIELD) {
		x->out = in_list(x->list, h.name, h.name_len) != x->not ;
	}
	x->judged = 1;
	if (x->out) {
		buf_append(o, x->line.data, x->line.len);
	}
}

/* One piece of the header block (a line or part of one). */
static void hf_piece(struct imap_section *x, const char *p, size_t n, struct buf *o)
{
	int ends = n && p[n - 1] == '\n', last = x->read == x->len; /* the block ends here */
	if (!x->judged) {
		int fresh = x->line.len == 0;
		size_t room = LINE_MAX_HF - x->line.len, k = n < room ? n : room;
		buf_append(&x->line, p, k);
		p += k, n -= k;
		if (fresh && ends && n == 0 && (k == 1 || (k == 2 && x->line.data[0] == '\r'))) {
			x->eof = 1; /* the empty line: the block ends */
			return;
		}
		if (ends || last || x->line.len == LINE_MAX_HF) {
			hf_judge(x, o);
		}
	}
	if (x->out && n) {
		buf_append(o, p, n); /* the rest of a line longer than what was kept */
	}
	if (ends || last) {
		x->lf = ends;
		x->judged = 0;
		buf_reset(&x->line);
	}
}

/* Produces more of HEADER.FIELDS into x->pend; 0 at the end. */
static int hf_more(struct imap_section *x)
{
	struct imap_src *s = x->src;
	if (x->closed) {
		return 0;
	}
	if (x->eof || x->read >= x->len || x->hs.stopped) {
		hf_field_end(x, &x->pend);
		buf_puts(&x->pend, "\r\n");
		x->closed = 1;
		return 1;
	}
	uint64_t left = x->len - x->read;
	long k = src_read(s, s->scratch, left < CHUNK ? (size_t)left : CHUNK, 1);
	if (k <= 0) {
		s->failed = 1;
		x->closed = 1;
		return 0;
	}
	x->read += (uint64_t)k;
	hf_piece(x, s->scratch, (size_t)k, &x->pend);
	return 1;
}

/* Starts (again) at the header block's start. */
static int hf_rewind(struct imap_section *x)
{
	x->read = 0;
	memset(&x->hs, 0, sizeof x->hs);
	buf_reset(&x->line);
	buf_reset(&x->pend);
	x->judged = x->out = x->lf = x->eof = x->closed = 0;
	return src_seek(x->src, x->src->ce ? &x->src->ce->m : NULL, x->start);
}

/* The size of the HEADER.FIELDS answer: it is produced once for that,
 * and kept when it is small (as it nearly always is), else produced
 * again as it is sent. */
static int hf_first(struct imap_section *x, uint64_t *size)
{
	int keep = 1;
	*size = 0;
	if (hf_rewind(x) != 0) {
		return -1;
	}
	while (hf_more(x)) {
		keep = keep && x->pend.len <= HF_KEEP;
		if (!keep) {
			*size += x->pend.len;
			buf_reset(&x->pend);
		}
	}
	if (x->src->failed) {
		return -1;
	}
	if (keep) {
		*size = x->pend.len; /* all of it is in pend, and hf_more is done */
		return 0;
	}
	return hf_rewind(x);
}

/* HEADER.FIELDS or HEADER.FIELDS.NOT rest ("HEADER.FIELDS (A B)") over
 * the header block [start, start + len). */
static void fields_setup(struct imap_section *x, const char *rest)
{
	x->kind = SEC_FIELDS;
	x->not = rl_strncasecmp(rest, "HEADER.FIELDS.NOT", 17) == 0;
	x->list = xstrdup(strchr(rest, '(') ? strchr(rest, '(') : "");
}

/* The range or header block of BODY[spec] of tree m; 0, or -1 for a
 * part that does not exist (NIL). */
static int section_find(
        struct imap_section *x, const struct mime_msg *m, const char *spec, uint64_t size)
{
	const char *rest;
	const struct mime_part *p = mime_section(m, spec, &rest);
	if (!p) {
		return -1;
	}
	int parts = rest != spec;
	rest += *rest == '.';
	const struct mime_part *e = parts ? (p->flags & MIME_MESSAGE ? p->child : NULL) : p;
	x->kind = SEC_RANGE;
	if (!*rest) {
		x->start = parts ? p->body_off : 0;
		x->len = parts ? p->body_len : size;
	} else if (rl_strcasecmp(rest, "MIME") == 0) {
		x->start = p->hdr_off, x->len = p->hdr_len;
	} else if (!e) {
		return -1;
	} else if (rl_strcasecmp(rest, "TEXT") == 0) {
		x->start = e->body_off, x->len = e->body_len;
	} else {
		x->start = e->hdr_off, x->len = e->hdr_len;
		x->hdr_mark = e->hdr_mark;
		if (rl_strcasecmp(rest, "HEADER") != 0) {
			fields_setup(x, rest);
		}
	}
	return 0;
}

/* see rumble.h */
int imap_section_open(
        struct imap_src *s, const char *spec, struct imap_section **out, uint64_t *size)
{
	struct imap_section *x = xcalloc(1, sizeof *x);
	x->src = s;
	x->hdr_mark = MM_NO_MARK;
	buf_init(&x->line);
	buf_init(&x->pend);
	*out = NULL;
	int rc = 0;
	if (!*spec) {
		x->kind = SEC_RANGE, x->len = s->size; /* the whole message: no tree needed */
	} else if (rl_strncasecmp(spec, "HEADER.FIELDS", 13) == 0) {
		/* the root's: its header ends at the first empty line, as the filter does */
		x->start = 0, x->len = s->size, x->hdr_mark = 0;
		fields_setup(x, spec);
	} else {
		/* part numbers need the whole tree; HEADER, TEXT... the root's header */
		const struct mime_msg *m = imap_src_mime(s, *spec >= '0' && *spec <= '9');
		rc = m ? section_find(x, m, spec, s->size) : -2;
	}
	if (rc == 0 && x->kind == SEC_FIELDS) {
		rc = hf_first(x, size) == 0 ? 0 : -2;
	} else if (rc == 0) {
		*size = x->len;
		rc = src_seek(s, s->ce ? &s->ce->m : NULL, x->start) == 0 ? 0 : -2;
	}
	if (rc != 0) {
		imap_section_free(x);
		return rc == -1 ? -1 : -2;
	}
	*out = x;
	return 0;
}

/* ---- BINARY: a leaf decoded as it streams by ---- */

/* RFC 3516: the encodings there is a decoding for (the others are
 * UNKNOWN-CTE). */
static int cte_known(const char *e)
{
	return !strcmp(e, "7bit") || !strcmp(e, "8bit") || !strcmp(e, "binary") ||
	       !strcmp(e, "base64") || !strcmp(e, "quoted-printable");
}

/* Starts at the section's first byte, with a fresh decoder. */
static int dec_rewind(struct imap_section *x)
{
	mime_decoder_end(&x->dec, &x->pend);
	buf_reset(&x->pend);
	mime_decoder_init(&x->dec, x->cte);
	x->in = 0;
	x->done = 0;
	x->closed = 0;
	return src_seek(x->src, x->src->ce ? &x->src->ce->m : NULL, x->raw ? x->start : x->body);
}

/* More of the section into x->pend; 0 at its end. */
static int dec_more(struct imap_section *x)
{
	struct imap_src *s = x->src;
	if (x->closed) {
		return 0;
	}
	if (x->in < x->raw) { /* the header of BINARY[], as it is */
		uint64_t left = x->raw - x->in;
		long k = src_read(s, s->scratch, left < CHUNK ? (size_t)left : CHUNK, 0);
		if (k <= 0 || (x->in + (uint64_t)k == x->raw && src_seek(s, NULL, x->body) != 0)) {
			s->failed = 1;
			return 0;
		}
		buf_append(&x->pend, s->scratch, (size_t)k);
		x->in += (uint64_t)k;
		return 1;
	}
	uint64_t left = x->raw + x->len - x->in;
	if (left == 0) {
		mime_decoder_end(&x->dec, &x->pend);
		mime_decoder_init(&x->dec, x->cte);
		x->closed = 1;
		return 1;
	}
	long k = src_read(s, s->scratch, left < CHUNK ? (size_t)left : CHUNK, 0);
	if (k <= 0) {
		s->failed = 1;
		return 0;
	}
	x->in += (uint64_t)k;
	mime_decoder_feed(&x->dec, s->scratch, (size_t)k, &x->pend);
	return 1;
}

/* The decoded size, and whether a NUL is in it: the section is decoded
 * once for that (its bytes are not kept), then again as it is sent. */
static int dec_first(struct imap_section *x, uint64_t *size, int *nul)
{
	*size = 0;
	*nul = 0;
	if (dec_rewind(x) != 0) {
		return -1;
	}
	while (dec_more(x)) {
		*size += x->pend.len;
		*nul = *nul || (x->pend.len && memchr(x->pend.data, '\0', x->pend.len));
		buf_reset(&x->pend);
	}
	return x->src->failed ? -1 : dec_rewind(x);
}

/* see rumble.h */
int imap_section_open_binary(struct imap_src *s, const char *part, struct imap_section **out,
        uint64_t *size, int *nul)
{
	struct imap_section *x = xcalloc(1, sizeof *x);
	x->src = s;
	buf_init(&x->line);
	buf_init(&x->pend);
	*out = NULL;
	const struct mime_msg *m = imap_src_mime(s, 1);
	const char *rest = part;
	const struct mime_part *p = !m ? NULL : *part ? mime_section(m, part, &rest) : m->root;
	int rc = !m ? -2 : !p || *rest ? -1 : 0;
	if (rc == 0 && !p->child && !cte_known(p->encoding)) {
		rc = -3;
	}
	if (rc == 0) {
		/* a leaf is decoded; the whole message keeps its header; a part
		 * that is not a leaf has nothing to decode (as BODY[n] gives it) */
		x->kind = SEC_DECODED;
		x->cte = p->child ? NULL : p->encoding;
		x->start = 0;
		x->raw = *part ? 0 : p->body_off;
		x->body = p->body_off;
		x->len = p->body_len;
		mime_decoder_init(&x->dec, x->cte);
		if (!*part && p->child) {
			x->raw = 0, x->body = 0, x->len = s->size; /* the message as it is */
		}
		rc = dec_first(x, size, nul) == 0 ? 0 : -2;
	}
	if (rc != 0) {
		imap_section_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

/* see rumble.h */
long imap_section_read(struct imap_section *x, char *out, size_t n)
{
	if (x->kind == SEC_RANGE) {
		uint64_t left = x->len - x->done;
		long k = left ? src_read(x->src, out, n < left ? n : (size_t)left, 0) : 0;
		if (k == 0 && left) {
			return -1; /* the message is shorter than its tree says */
		}
		x->done += k > 0 ? (uint64_t)k : 0;
		return k;
	}
	while (x->pend.len == 0 && (x->kind == SEC_DECODED ? dec_more(x) : hf_more(x))) {
	}
	if (x->src->failed) {
		return -1;
	}
	size_t k = n < x->pend.len ? n : x->pend.len;
	if (k) {
		memcpy(out, x->pend.data, k);
		buf_consume(&x->pend, k);
	}
	x->done += k;
	return (long)k;
}

/* see rumble.h */
int imap_section_skip(struct imap_section *x, uint64_t n)
{
	if (x->kind == SEC_RANGE) {
		uint64_t k = n < x->len - x->done ? n : x->len - x->done;
		x->done += k;
		return src_seek(x->src, x->src->ce ? &x->src->ce->m : NULL, x->start + x->done);
	}
	while (n > 0) {
		char tmp[512];
		long k = imap_section_read(x, tmp, n < sizeof tmp ? (size_t)n : sizeof tmp);
		if (k <= 0) {
			return k < 0 ? -1 : 0;
		}
		n -= (uint64_t)k;
	}
	return 0;
}

/* see rumble.h */
void imap_section_free(struct imap_section *x)
{
	if (x) {
		if (x->kind == SEC_DECODED) {
			mime_decoder_end(&x->dec, &x->pend);
		}
		xfree(x->list);
		buf_free(&x->line);
		buf_free(&x->pend);
		free(x);
	}
}

/* ---- SEARCH ---- */

typedef int field_fn(const char *name, size_t nlen, const char *v, size_t vn, void *arg);

/* A field's value ends: without its last line end. */
static int field_done(field_fn *fn, struct buf *name, struct buf *val, void *arg)
{
	size_t n = val->len;
	n -= n && val->data[n - 1] == '\n';
	n -= n && val->data[n - 1] == '\r';
	return fn(name->data, name->len, val->data ? val->data : "", n, arg);
}

/* The root header's fields, as mime_headers_next reads them: fn(name,
 * its raw value (folding kept, the last line end not), arg) for each,
 * until fn returns 1 (then 1). Values are kept up to VALUE_MAX_S. */
static int each_field(struct imap_src *s, field_fn *fn, void *arg)
{
	struct mime_hscan hs;
	struct buf line, name, val;
	int found = 0, open = 0, ended = 0;
	memset(&hs, 0, sizeof hs);
	buf_init(&line), buf_init(&name), buf_init(&val);
	if (src_jump(s, 0, 0) != 0) {
		return 0;
	}
	while (!found && !ended) {
		long k = src_read(s, s->scratch, CHUNK, 1);
		int eof = k <= 0;
		if (!eof && line.len < LINE_MAX_HF) {
			size_t room = LINE_MAX_HF - line.len;
			buf_append(&line, s->scratch, (size_t)k < room ? (size_t)k : room);
		}
		if (!eof && s->scratch[k - 1] != '\n') {
			continue; /* the rest of a long line */
		}
		int empty = !eof && (line.len == 1 || (line.len == 2 && line.data[0] == '\r'));
		struct mime_header h;
		int kind = line.len == 0 || empty
		                   ? MH_STOP
		                   : mime_hscan_line(&hs, line.data, line.len, 0, &h);
		if (kind != MH_MORE && open) {
			found = field_done(fn, &name, &val, arg);
			open = 0;
		}
		if (kind == MH_FIELD && h.name_len) {
			const char *v = h.value, *e = line.data + line.len;
			size_t te = line.len - (line.data[line.len - 1] == '\n');
			te -= te && line.data[te - 1] == '\r';
			while (v < line.data + te && (*v == ' ' || *v == '\t')) {
				v++; /* leading blanks of the first line */
			}
			buf_reset(&name), buf_reset(&val);
			buf_append(&name, h.name, h.name_len);
			buf_append(&val, v, (size_t)(e - v));
			open = 1;
		} else if (kind == MH_MORE && open && val.len < VALUE_MAX_S) {
			buf_append(&val, line.data, line.len);
		}
		ended = kind == MH_STOP || eof;
		buf_reset(&line);
	}
	if (open && !found) {
		found = field_done(fn, &name, &val, arg); /* the header ran to the end */
	}
	buf_free(&line), buf_free(&name), buf_free(&val);
	return found;
}

/* see rumble.h */
int imap_src_fields(struct imap_src *s,
        int (*fn)(const char *name, size_t nlen, const char *v, size_t vn, void *arg), void *arg)
{
	return each_field(s, fn, arg);
}

struct hmatch {
	const char *name, *str;
	int addr;          /* FROM, TO, CC, BCC: look in the parsed addresses too */
	struct buf u, v;   /* the value unfolded; what is searched */
};

/* The addresses of an unfolded value as "Name <box@host>" or "box@host",
 * groups as "name: ...;", display names decoded (RFC 3501 6.4.4: FROM
 * looks in the envelope's field, not at how the header spelled it). */
static void addr_text(const char *v, size_t n, struct buf *out)
{
	struct mime_addr *list = mime_addr_parse(v, n, 1);
	const char *sep = ""; /* ", " between entries, none after "name: " */
	for (const struct mime_addr *a = list; a; a = a->next) {
		if (a->kind == MIME_ADDR_GROUP) {
			buf_printf(out, "%s%s: ", sep, a->name ? a->name : "");
			sep = "";
			continue;
		}
		if (a->kind == MIME_ADDR_GROUP_END) {
			buf_puts(out, ";");
		} else if (a->name) {
			buf_printf(out, "%s%s <%s@%s>", sep, a->name, a->mailbox, a->host);
		} else {
			buf_printf(out, "%s%s@%s", sep, a->mailbox, a->host);
		}
		sep = ", ";
	}
	mime_addr_free(list);
}

static int header_one(const char *name, size_t nlen, const char *v, size_t vn, void *arg)
{
	struct hmatch *x = arg;
	if (x->name && (nlen != strlen(x->name) || rl_strncasecmp(name, x->name, nlen) != 0)) {
		return 0;
	}
	buf_reset(&x->u);
	vn = vn < VALUE_MAX_S ? vn : VALUE_MAX_S;
	for (size_t i = 0, run; i < vn; i += run + 1) { /* unfolded: RFC 5322 2.2.3 */
		for (run = 0; i + run < vn && v[i + run] != '\r' && v[i + run] != '\n'; run++) {
		}
		buf_append(&x->u, v + i, run);
	}
	const char *u = x->u.data ? x->u.data : "";
	buf_reset(&x->v);
	mime_decode_words(u, x->u.len, &x->v);
	size_t sn = strlen(x->str);
	int found = mime_ci_find(x->v.data ? x->v.data : "", x->v.len, x->str, sn);
	if (!found && x->addr) {
		buf_reset(&x->v);
		addr_text(u, x->u.len, &x->v);
		found = mime_ci_find(x->v.data ? x->v.data : "", x->v.len, x->str, sn);
	}
	return found;
}

static int field_has(struct imap_src *s, const char *name, const char *str, int addr)
{
	struct hmatch x = {name, str, addr, {NULL, 0, 0}, {NULL, 0, 0}};
	int found = each_field(s, header_one, &x);
	buf_free(&x.u);
	buf_free(&x.v);
	return found;
}

/* see rumble.h */
int imap_src_header_has(struct imap_src *s, const char *name, const char *str)
{
	return field_has(s, name, str, 0);
}

/* see rumble.h */
int imap_src_address_has(struct imap_src *s, const char *name, const char *str)
{
	return field_has(s, name, str, 1);
}

/* str in the text of leaf p (its body streamed through mime_find). */
static int leaf_has(
        struct imap_src *s, const struct mime_msg *m, const struct mime_part *p, const char *str)
{
	struct mime_find *f = mime_find_new(p, str, strlen(str));
	int found = 0;
	uint64_t left = p->body_len;
	if (left && src_seek(s, m, p->body_off) != 0) {
		left = 0;
	}
	while (left && !found) {
		long k = src_read(s, s->scratch, left < CHUNK ? (size_t)left : CHUNK, 0);
		if (k <= 0) {
			break;
		}
		left -= (uint64_t)k;
		found = mime_find_feed(f, s->scratch, (size_t)k);
	}
	return mime_find_end(f) || found;
}

/* A root that is neither multipart nor an encapsulated message is the
 * one leaf: its header alone says so, no need to read the tree. */
static int root_is_leaf(const struct mime_part *r)
{
	return !mime_part_is(r, "multipart", NULL) && !mime_part_is(r, "message", NULL);
}

/* see rumble.h */
int imap_src_body_has(struct imap_src *s, const char *str)
{
	const struct mime_msg *m = imap_src_mime(s, 0);
	if (m && !root_is_leaf(m->root)) {
		m = imap_src_mime(s, 1);
	}
	int found = 0;
	/* every leaf, depth first: child, else next, else the next of an ancestor */
	for (const struct mime_part *p = m ? m->root : NULL; p && !found;) {
		if (!p->child) {
			found = leaf_has(s, m, p, str);
		}
		if (p->child) {
			p = p->child;
		} else {
			while (p && !p->next) {
				p = p->parent;
			}
			p = p ? p->next : NULL;
		}
	}
	return found;
}

/* see rumble.h */
const char *imap_src_date(struct imap_src *s)
{
	const struct mime_msg *m = imap_src_mime(s, 0);
	return m && m->root->env ? m->root->env->f[MIME_ENV_DATE] : NULL;
}
