/*
 * imap_sort.c - SORT and THREAD (RFC 5256) with DISPLAYFROM and DISPLAYTO
 * (RFC 5957): what webmail clients (Roundcube, SnappyMail) ask of the
 * server instead of fetching every message's header.
 *
 * IMPLEMENTATION NOTES
 * - Each message the search keeps is read once: its root header streams
 *   through imap_src_fields (SEARCH HEADER's reader) and only its small
 *   keys stay: the base subject (IMAP_SUBJECT_MAX bytes), the address
 *   keys sorted on (ADDR_MAX each), the dates and size, and for
 *   REFERENCES its node in the thread tree.
 * - Message-IDs are kept as 64 bits of their SHA-256, not as text: two
 *   different IDs are taken for one with a chance of 2^-64. A message's
 *   last REFS_MAX references are used (the nearest ancestors matter
 *   most), and IDs that belong to no message found are bounded in all
 *   (IDS_PER_MSG for each message): a mailbox's references cannot make
 *   the tree grow past a few nodes per message.
 * - The thread tree is one array of nodes linked by index (node 0 is
 *   the root), walked without recursion: a reply chain may be as deep as
 *   the mailbox is long.
 * - Strings compare as i;ascii-casemap: a-z as A-Z, other bytes as they
 *   are. Every sort ends on the sequence number (RFC 5256 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

#define SORT_CRIT_MAX 16 /* criteria in one SORT */
#define ADDR_MAX 200     /* bytes of an address key kept */
#define REFS_MAX 32      /* references of a message used, the last ones */
#define IDS_PER_MSG 8    /* IDs of no message found, for each message */
#define NONE 0xffffffffu

enum { T_SORT, T_ORDERED, T_REFS };
enum { K_ARRIVAL, K_CC, K_DATE, K_FROM, K_SIZE, K_SUBJECT, K_TO, K_DFROM, K_DTO, K_N };
static const char *const key_names[K_N] = {
        "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"};

/* The string keys a message may keep, and the header fields read. */
enum { S_SUBJECT, S_FROM, S_TO, S_CC, S_DFROM, S_DTO, S_N };
enum { H_SUBJECT, H_DATE, H_FROM, H_TO, H_CC, H_MSGID, H_REFS, H_IRT, H_N };
static const char *const field_names[H_N] = {
        "Subject", "Date", "From", "To", "Cc", "Message-ID", "References", "In-Reply-To"};
/* for each K_: its string slot (-1: none) and the field it needs */
static const int key_slot[K_N] = {-1, S_CC, -1, S_FROM, -1, S_SUBJECT, S_TO, S_DFROM, S_DTO};
static const int key_field[K_N] = {-1, H_CC, H_DATE, H_FROM, -1, H_SUBJECT, H_TO, H_FROM, H_TO};
/* for each S_: the field it comes from, and whether it is a display key */
static const int slot_field[S_N] = {H_SUBJECT, H_FROM, H_TO, H_CC, H_FROM, H_TO};

struct smsg {
	uint32_t seq, uid, size;
	int64_t arrival, sent;
	char *str[S_N]; /* the keys sorted on; NULL is "" */
	int reply;      /* the subject was a reply or a forward */
};

struct node {
	uint32_t msg;                 /* 1 + its message's index; 0: a dummy */
	uint32_t parent, child, next; /* NONE when there is none */
};

struct idslot {
	uint64_t h; /* 0: empty */
	uint32_t node;
};

struct imap_sort {
	int algo, ncrit;
	struct {
		int key, reverse;
	} crit[SORT_CRIT_MAX];
	unsigned swant, hwant; /* bits of S_ and H_ */
	struct smsg *m;
	uint32_t n, mcap;
	struct node *nd;
	uint32_t nn, ncap;
	struct idslot *ids;
	uint32_t nids, idcap, loose; /* loose: IDs of no message */
};

/* ---- the base subject (RFC 5256 2.1) ---- */

static int up(int c)
{
	return c >= 'a' && c <= 'z' ? c - 32 : c;
}

/* i;ascii-casemap; NULL is "". */
static int casecmp(const char *a, const char *b)
{
	const unsigned char *p = (const unsigned char *)(a ? a : ""),
	                    *q = (const unsigned char *)(b ? b : "");
	for (;; p++, q++) {
		int x = up(*p), y = up(*q);
		if (x != y || !x) {
			return x - y;
		}
	}
}

static int starts(const char *b, const char *e, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(e - b) >= n && rl_strncasecmp(b, word, n) == 0;
}

/* Past a subj-blob ("[...]" and the blanks after it) at b; NULL if none. */
static const char *blob_end(const char *b, const char *e)
{
	if (b >= e || *b != '[') {
		return NULL;
	}
	const char *p = b + 1;
	while (p < e && *p != ']' && *p != '[') {
		p++;
	}
	if (p >= e || *p != ']') {
		return NULL;
	}
	for (p++; p < e && *p == ' ';) {
		p++;
	}
	return p;
}

/* Past a subj-refwd ("re", "fw" or "fwd", blanks, a blob, ":") at b. */
static const char *refwd_end(const char *b, const char *e)
{
	const char *p = starts(b, e, "re")    ? b + 2
	                : starts(b, e, "fwd") ? b + 3
	                : starts(b, e, "fw")  ? b + 2
	                                      : NULL;
	if (!p) {
		return NULL;
	}
	while (p < e && *p == ' ') {
		p++;
	}
	const char *q = blob_end(p, e);
	p = q ? q : p;
	return p < e && *p == ':' ? p + 1 : NULL;
}

/* Step 2: subj-trailer, "(fwd)" or a blank, from the end. */
static void strip_trailers(const char *b, const char **e, int *reply)
{
	for (;;) {
		if (*e > b && (*e)[-1] == ' ') {
			(*e)--;
		} else if (*e - b >= 5 && rl_strncasecmp(*e - 5, "(fwd)", 5) == 0) {
			*e -= 5;
			*reply = 1;
		} else {
			return;
		}
	}
}

/* Step 3: one subj-leader (blobs then a subj-refwd, or a blank). */
static int strip_leader(const char **b, const char *e, int *reply)
{
	const char *p = *b, *q;
	if (p < e && *p == ' ') {
		*b = p + 1;
		return 1;
	}
	while ((q = blob_end(p, e)) != NULL) {
		p = q;
	}
	if ((q = refwd_end(p, e)) == NULL) {
		return 0;
	}
	*b = q;
	*reply = 1;
	return 1;
}

/* Step 4: a leading blob, when something is left after it. */
static int strip_blob(const char **b, const char *e)
{
	const char *q = blob_end(*b, e);
	if (!q || q >= e) {
		return 0;
	}
	*b = q;
	return 1;
}

/* Step 1: tabs, line ends and runs of blanks as one space. */
static void squeeze(const char *s, size_t n, struct buf *out)
{
	int blank = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			blank = 1;
			continue;
		}
		if (blank) {
			buf_append(out, " ", 1);
		}
		blank = 0;
		buf_append(out, &s[i], 1);
	}
	if (blank) {
		buf_append(out, " ", 1);
	}
}

/* Cuts b to at most max bytes, at the start of a UTF-8 character. */
static void cut_utf8(struct buf *b, size_t max)
{
	if (b->len > max) {
		size_t k = max;
		while (k > 0 && ((unsigned char)b->data[k] & 0xc0) == 0x80) {
			k--;
		}
		b->len = k;
		b->data[k] = '\0';
	}
}

/* see rumble.h */
int imap_base_subject(const char *s, size_t n, struct buf *out)
{
	struct buf d;
	int reply = 0;
	buf_init(&d);
	mime_decode_words(s ? s : "", s ? n : 0, &d);
	buf_reset(out);
	squeeze(d.data ? d.data : "", d.len, out);
	buf_free(&d);
	const char *b = out->data ? out->data : "", *e = b + out->len;
	for (;;) {
		strip_trailers(b, &e, &reply);
		while (strip_leader(&b, e, &reply) || strip_blob(&b, e)) {
		}
		if (!(e - b >= 6 && starts(b, e, "[fwd:") && e[-1] == ']')) {
			break; /* step 6: "[fwd: ...]" is taken off, then again from 2 */
		}
		b += 5, e -= 1;
		reply = 1;
	}
	size_t k = (size_t)(e - b);
	if (out->data) {
		memmove(out->data, b, k);
		out->len = k;
		out->data[k] = '\0';
	}
	cut_utf8(out, IMAP_SUBJECT_MAX);
	return reply;
}

/* ---- parsing the command ---- */

static int tok_type(const struct imap_cmd *c, uint32_t i)
{
	return i < c->ntok ? c->tok[i].type : -1;
}

static int key_of(const char *name)
{
	for (int k = 0; k < K_N; k++) {
		if (rl_strcasecmp(name, key_names[k]) == 0) {
			return k;
		}
	}
	return -1;
}

/* "(" ["REVERSE"] key ... ")": each key once REVERSE is read. */
static int parse_crit(struct imap_sort *x, const struct imap_cmd *c, uint32_t *pos)
{
	int reverse = 0;
	if (tok_type(c, *pos) != IMAP_LPAREN) {
		return -1;
	}
	for ((*pos)++; tok_type(c, *pos) == IMAP_ATOM; (*pos)++) {
		const char *w = imap_tok_str(c, *pos);
		int k = key_of(w);
		if (rl_strcasecmp(w, "REVERSE") == 0 && !reverse) {
			reverse = 1;
			continue;
		}
		if (k < 0 || x->ncrit == SORT_CRIT_MAX) {
			return -1;
		}
		x->crit[x->ncrit].key = k;
		x->crit[x->ncrit++].reverse = reverse;
		reverse = 0;
		x->swant |= key_slot[k] >= 0 ? 1u << key_slot[k] : 0;
		x->hwant |= key_field[k] >= 0 ? 1u << key_field[k] : 0;
	}
	if (tok_type(c, *pos) != IMAP_RPAREN || reverse || x->ncrit == 0) {
		return -1;
	}
	(*pos)++;
	return 0;
}

static int parse_algo(struct imap_sort *x, const struct imap_cmd *c, uint32_t *pos)
{
	const char *w = tok_type(c, *pos) == IMAP_ATOM ? imap_tok_str(c, (*pos)++) : "";
	if (rl_strcasecmp(w, "ORDEREDSUBJECT") == 0) {
		x->algo = T_ORDERED;
	} else if (rl_strcasecmp(w, "REFERENCES") == 0) {
		x->algo = T_REFS;
		x->hwant |= 1u << H_MSGID | 1u << H_REFS | 1u << H_IRT;
	} else {
		return -1;
	}
	x->swant |= 1u << S_SUBJECT;
	x->hwant |= 1u << H_SUBJECT | 1u << H_DATE;
	return 0;
}

/* see rumble.h */
int imap_sort_parse(const struct imap_cmd *c, uint32_t *pos, int thread, struct imap_sort **out)
{
	struct imap_sort *x = xcalloc(1, sizeof *x);
	*out = x;
	if ((thread ? parse_algo(x, c, pos) : parse_crit(x, c, pos)) != 0) {
		return -1;
	}
	int t = tok_type(c, *pos);
	if (t != IMAP_ATOM && t != IMAP_STRING) {
		return -1;
	}
	const char *cs = imap_tok_str(c, (*pos)++);
	if (rl_strcasecmp(cs, "UTF-8") != 0 && rl_strcasecmp(cs, "US-ASCII") != 0) {
		return -2;
	}
	return 0;
}

/* see rumble.h */
void imap_sort_free(struct imap_sort *x)
{
	if (x) {
		for (uint32_t i = 0; i < x->n; i++) {
			for (int k = 0; k < S_N; k++) {
				xfree(x->m[i].str[k]);
			}
		}
		xfree(x->m);
		xfree(x->nd);
		xfree(x->ids);
		free(x);
	}
}

/* ---- a message's keys ---- */

struct fields {
	unsigned want, seen;
	struct buf v[H_N];
};

/* The first of each field wanted, unfolded (blanks for line ends). */
static int take_field(const char *name, size_t nlen, const char *v, size_t vn, void *arg)
{
	struct fields *f = arg;
	for (int i = 0; i < H_N; i++) {
		if ((f->want & ~f->seen) >> i & 1 && strlen(field_names[i]) == nlen &&
		        rl_strncasecmp(name, field_names[i], nlen) == 0) {
			f->seen |= 1u << i;
			buf_append(&f->v[i], v, vn); /* data stays NULL for an empty one */
			for (size_t j = 0; j < f->v[i].len; j++) {
				char *p = &f->v[i].data[j];
				*p = *p == '\r' || *p == '\n' || *p == '\t' ? ' ' : *p;
			}
		}
	}
	return (f->want & ~f->seen) == 0; /* all found: the rest need not be read */
}

/* A kept copy of b, cut to max bytes; NULL for "". */
static char *keep(struct buf *b, size_t max)
{
	cut_utf8(b, max);
	return b->len ? xstrdup(b->data) : NULL;
}

/* RFC 5256 3: the addr-mailbox of the first address; RFC 5957: its
 * display name, else its addr-spec. */
static char *addr_key(const struct buf *v, int display)
{
	struct mime_addr *list = v->len ? mime_addr_parse(v->data, v->len, display) : NULL, *a;
	struct buf o;
	buf_init(&o);
	for (a = list; a && a->kind != MIME_ADDR_MAILBOX;) {
		a = a->next;
	}
	if (a && display && a->name && *a->name) {
		buf_puts(&o, a->name);
	} else if (a && display) {
		buf_printf(&o, *a->host ? "%s@%s" : "%s", a->mailbox, a->host);
	} else if (a) {
		buf_puts(&o, a->mailbox);
	}
	mime_addr_free(list);
	char *k = keep(&o, ADDR_MAX);
	buf_free(&o);
	return k;
}

/* RFC 5256 2.2: the Date field in UTC, else the internal date. */
static int64_t sent_date(const struct buf *v, int64_t internal)
{
	int64_t t;
	return v->len && mime_date_parse(v->data, v->len, &t, NULL) == 0 ? t : internal;
}

static void fill_keys(struct imap_sort *x, struct smsg *m, struct fields *f)
{
	m->sent = sent_date(&f->v[H_DATE], m->arrival);
	for (int k = 0; k < S_N; k++) {
		struct buf *v = &f->v[slot_field[k]], b;
		if (!(x->swant >> k & 1)) {
			continue;
		}
		if (k == S_SUBJECT) {
			buf_init(&b);
			m->reply = imap_base_subject(v->data, v->len, &b);
			m->str[k] = keep(&b, IMAP_SUBJECT_MAX);
			buf_free(&b);
		} else {
			m->str[k] = addr_key(v, k == S_DFROM || k == S_DTO);
		}
	}
}

/* ---- the thread tree ---- */

static uint32_t node_new(struct imap_sort *x, uint32_t msg)
{
	if (x->nn == x->ncap) {
		x->ncap = x->ncap ? x->ncap * 2 : 64;
		x->nd = xrealloc(x->nd, x->ncap * sizeof *x->nd);
	}
	x->nd[x->nn] = (struct node){msg, NONE, NONE, NONE};
	return x->nn++;
}

static int is_dummy(const struct imap_sort *x, uint32_t n)
{
	return x->nd[n].msg == 0;
}

/* Makes c p's first child (c is in no list, or its old one is let go). */
static void adopt(struct imap_sort *x, uint32_t p, uint32_t c)
{
	x->nd[c].parent = p;
	x->nd[c].next = x->nd[p].child;
	x->nd[p].child = c;
}

static void unlink_node(struct imap_sort *x, uint32_t c)
{
	uint32_t p = x->nd[c].parent, *pp;
	if (p == NONE) {
		return;
	}
	for (pp = &x->nd[p].child; *pp != c; pp = &x->nd[*pp].next) {
	}
	*pp = x->nd[c].next;
	x->nd[c].parent = x->nd[c].next = NONE;
}

/* 1 when making c a child of p would close a loop (c is p or above it).
 * A c with no children (a new message, nearly always) can only be p: no
 * walk up a reply chain as deep as the mailbox for each message. */
static int loops(const struct imap_sort *x, uint32_t p, uint32_t c)
{
	if (x->nd[c].child == NONE) {
		return p == c;
	}
	for (uint32_t q = p; q != NONE; q = x->nd[q].parent) {
		if (q == c) {
			return 1;
		}
	}
	return 0;
}

static void ids_grow(struct imap_sort *x)
{
	struct idslot *old = x->ids;
	uint32_t oldcap = x->idcap;
	x->idcap = oldcap ? oldcap * 2 : 256;
	x->ids = xcalloc(x->idcap, sizeof *x->ids);
	for (uint32_t i = 0; i < oldcap; i++) {
		for (uint32_t j = (uint32_t)old[i].h & (x->idcap - 1); old[i].h;
		        j = (j + 1) & (x->idcap - 1)) {
			if (!x->ids[j].h) {
				x->ids[j] = old[i];
				break;
			}
		}
	}
	xfree(old);
}

/* The node of ID h, made (a dummy) when it is new and the bound allows
 * (mine: the ID of a message, always); NONE otherwise. */
static uint32_t id_node(struct imap_sort *x, uint64_t h, int mine)
{
	if (2 * (x->nids + 1) > x->idcap) {
		ids_grow(x);
	}
	uint32_t j = (uint32_t)h & (x->idcap - 1);
	while (x->ids[j].h && x->ids[j].h != h) {
		j = (j + 1) & (x->idcap - 1);
	}
	if (x->ids[j].h) {
		return x->ids[j].node;
	}
	if (!mine && x->loose >= IDS_PER_MSG * x->n) {
		return NONE;
	}
	x->loose += !mine;
	x->nids++;
	x->ids[j].h = h;
	x->ids[j].node = node_new(x, 0);
	return x->ids[j].node;
}

/* The IDs "<...>" of a field (blanks inside dropped), as hashes: the
 * first max, or (last) the last max. */
static uint32_t parse_ids(const struct buf *v, uint64_t *out, uint32_t max, int last)
{
	uint32_t k = 0;
	for (const char *p = v->len ? v->data : "", *e; (p = strchr(p, '<')) != NULL; p = e + 1) {
		if ((e = strchr(p + 1, '>')) == NULL) {
			break;
		}
		crypto_sha256_ctx c;
		uint8_t d[32];
		size_t used = 0;
		crypto_sha256_init(&c);
		for (const char *q = p + 1; q < e; q++) {
			if (*q != ' ' && *q != '<') {
				crypto_sha256_update(&c, q, 1), used++;
			}
		}
		crypto_sha256_final(&c, d);
		if (used == 0) {
			continue;
		}
		if (k == max && !last) {
			break;
		}
		if (k == max) {
			memmove(out, out + 1, (max - 1) * sizeof *out); /* the oldest goes */
			k--;
		}
		uint64_t h = 0;
		for (int i = 0; i < 8; i++) {
			h = h << 8 | d[i];
		}
		out[k++] = h ? h : 1; /* 0 marks an empty slot */
	}
	return k;
}

/* RFC 5256 REFERENCES step 1 for message i, as it is added. */
static void link_msg(struct imap_sort *x, uint32_t i, const struct fields *f)
{
	uint64_t id, refs[REFS_MAX];
	uint32_t me = NONE, k = parse_ids(&f->v[H_REFS], refs, REFS_MAX, 1);
	if (parse_ids(&f->v[H_MSGID], &id, 1, 0) == 1) {
		me = id_node(x, id, 1);
	}
	if (me == NONE || !is_dummy(x, me)) {
		me = node_new(x, 0); /* no ID, or one seen before: a unique one (1A) */
	}
	x->nd[me].msg = i + 1;
	if (k == 0) {
		k = parse_ids(&f->v[H_IRT], refs, 1, 0);
	}
	for (uint32_t j = 0; j + 1 < k; j++) { /* 1B */
		uint32_t p = id_node(x, refs[j], 0), c = id_node(x, refs[j + 1], 0);
		if (p != NONE && c != NONE && x->nd[c].parent == NONE && !loops(x, p, c)) {
			adopt(x, p, c);
		}
	}
	uint32_t p = k ? id_node(x, refs[k - 1], 0) : NONE; /* 1C */
	unlink_node(x, me);
	if (p != NONE && !loops(x, p, me)) {
		adopt(x, p, me);
	}
}

/* see rumble.h */
void imap_sort_add(struct imap_sort *x, const struct imap_search_msg *sm)
{
	struct fields f;
	memset(&f, 0, sizeof f);
	f.want = x->hwant;
	if (sm->src && f.want) {
		imap_src_fields(sm->src, take_field, &f);
	}
	if (x->n == x->mcap) {
		x->mcap = x->mcap ? x->mcap * 2 : 64;
		x->m = xrealloc(x->m, x->mcap * sizeof *x->m);
	}
	struct smsg *m = &x->m[x->n];
	memset(m, 0, sizeof *m);
	m->seq = sm->seq, m->uid = sm->uid, m->size = sm->size, m->arrival = sm->date;
	fill_keys(x, m, &f);
	x->n++;
	if (x->algo == T_REFS) {
		if (x->nn == 0) {
			node_new(x, 0); /* the root */
		}
		link_msg(x, x->n - 1, &f);
	}
	for (int i = 0; i < H_N; i++) {
		buf_free(&f.v[i]);
	}
}

/* ---- SORT ---- */

struct sref {
	const struct imap_sort *x;
	const struct smsg *m;
};

static int cmp64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_key(int key, const struct smsg *a, const struct smsg *b)
{
	switch (key) {
	case K_ARRIVAL:
		return cmp64(a->arrival, b->arrival);
	case K_DATE:
		return cmp64(a->sent, b->sent);
	case K_SIZE:
		return cmp64(a->size, b->size);
	default:
		return casecmp(a->str[key_slot[key]], b->str[key_slot[key]]);
	}
}

static int cmp_sref(const void *pa, const void *pb)
{
	const struct sref *a = pa, *b = pb;
	for (int i = 0; i < a->x->ncrit; i++) {
		int r = cmp_key(a->x->crit[i].key, a->m, b->m);
		if (r) {
			return a->x->crit[i].reverse ? -r : r;
		}
	}
	return cmp64(a->m->seq, b->m->seq);
}

static void put_sorted(struct imap_sort *x, int uid, struct buf *out)
{
	struct sref *v = xmalloc((x->n ? x->n : 1) * sizeof *v);
	for (uint32_t i = 0; i < x->n; i++) {
		v[i].x = x, v[i].m = &x->m[i];
	}
	qsort(v, x->n, sizeof *v, cmp_sref);
	buf_puts(out, "* SORT");
	for (uint32_t i = 0; i < x->n; i++) {
		buf_printf(out, " %u", uid ? v[i].m->uid : v[i].m->seq);
	}
	buf_puts(out, "\r\n");
	xfree(v);
}

/* ---- THREAD: walking and sorting the tree ---- */

static uint32_t leftmost(const struct imap_sort *x, uint32_t n)
{
	while (x->nd[n].child != NONE) {
		n = x->nd[n].child;
	}
	return n;
}

/* visit(n) for every node, children first, the root last; visit may
 * change n's list of children, nothing else. */
static void post_order(struct imap_sort *x, void (*visit)(struct imap_sort *x, uint32_t n))
{
	uint32_t n = leftmost(x, 0);
	while (n != 0) {
		uint32_t next =
		        x->nd[n].next != NONE ? leftmost(x, x->nd[n].next) : x->nd[n].parent;
		visit(x, n);
		n = next;
	}
	visit(x, 0);
}

/* The message a node sorts as: its own, or a dummy's first child's. */
static const struct smsg *sort_msg(const struct imap_sort *x, uint32_t n)
{
	while (is_dummy(x, n) && x->nd[n].child != NONE) {
		n = x->nd[n].child;
	}
	return is_dummy(x, n) ? NULL : &x->m[x->nd[n].msg - 1];
}

struct sib {
	int64_t sent;
	uint32_t seq, node;
};

static int cmp_sib(const void *pa, const void *pb)
{
	const struct sib *a = pa, *b = pb;
	int r = cmp64(a->sent, b->sent);
	return r ? r : cmp64(a->seq, b->seq);
}

/* Steps 4 and 6: n's children by sent date, then sequence number. */
static void sort_kids(struct imap_sort *x, uint32_t n)
{
	uint32_t k = 0, c;
	for (c = x->nd[n].child; c != NONE; c = x->nd[c].next) {
		k++;
	}
	if (k < 2) {
		return;
	}
	struct sib *v = xmalloc(k * sizeof *v);
	k = 0;
	for (c = x->nd[n].child; c != NONE; c = x->nd[c].next) {
		const struct smsg *m = sort_msg(x, c);
		v[k++] = (struct sib){m ? m->sent : 0, m ? m->seq : 0, c};
	}
	qsort(v, k, sizeof *v, cmp_sib);
	x->nd[n].child = v[0].node;
	for (uint32_t i = 0; i < k; i++) {
		x->nd[v[i].node].next = i + 1 < k ? v[i + 1].node : NONE;
	}
	xfree(v);
}

/* Step 3: a dummy below the root gives way to its children; one at the
 * root stays only when it holds two threads or more. */
static void prune_kids(struct imap_sort *x, uint32_t n)
{
	uint32_t c = x->nd[n].child, list = NONE;
	while (c != NONE) {
		uint32_t next = x->nd[c].next, kid = x->nd[c].child, kids = 0;
		for (uint32_t k = kid; k != NONE; k = x->nd[k].next) {
			kids++;
		}
		if (!is_dummy(x, c) || (n == 0 && kids > 1)) {
			x->nd[c].next = list, list = c;
		} else {
			while (kid != NONE) { /* already pruned: no dummy among them */
				uint32_t knext = x->nd[kid].next;
				x->nd[kid].parent = n;
				x->nd[kid].next = list, list = kid;
				kid = knext;
			}
			x->nd[c].parent = x->nd[c].child = NONE;
		}
		c = next;
	}
	x->nd[n].child = list;
}

/* ---- THREAD=REFERENCES step 5: threads of one subject together ---- */

struct tsub {
	const char *subj;
	uint32_t pos, node;
};

static int cmp_tsub(const void *pa, const void *pb)
{
	const struct tsub *a = pa, *b = pb;
	int r = casecmp(a->subj, b->subj);
	return r ? r : cmp64(a->pos, b->pos);
}

static int is_reply(const struct imap_sort *x, uint32_t n)
{
	return !is_dummy(x, n) && x->m[x->nd[n].msg - 1].reply;
}

/* 5C: cur (a thread at the root) joins the one in the subject table. */
static void merge(struct imap_sort *x, uint32_t cur, uint32_t *tbl, uint32_t *roots, uint32_t *nr)
{
	if (is_dummy(x, *tbl) && is_dummy(x, cur)) {
		for (uint32_t k = x->nd[cur].child, next; k != NONE; k = next) {
			next = x->nd[k].next;
			adopt(x, *tbl, k);
		}
		x->nd[cur].parent = x->nd[cur].child = NONE;
	} else if (is_dummy(x, *tbl) || (is_reply(x, cur) && !is_reply(x, *tbl))) {
		adopt(x, *tbl, cur);
	} else {
		uint32_t d = node_new(x, 0);
		x->nd[d].parent = 0;
		roots[(*nr)++] = d;
		adopt(x, d, *tbl);
		adopt(x, d, cur);
		*tbl = d;
	}
}

/* 5B then 5C for the threads g[0..k) of one subject, in root order. */
static void merge_group(
        struct imap_sort *x, const struct tsub *g, uint32_t k, uint32_t *roots, uint32_t *nr)
{
	uint32_t tbl = g[0].node;
	for (uint32_t i = 1; i < k; i++) {
		uint32_t cur = g[i].node;
		if (!is_dummy(x, tbl) &&
		        (is_dummy(x, cur) || (is_reply(x, tbl) && !is_reply(x, cur)))) {
			tbl = cur;
		}
	}
	for (uint32_t i = 0; i < k; i++) {
		if (g[i].node != tbl && x->nd[g[i].node].parent == 0) { /* still at the root */
			merge(x, g[i].node, &tbl, roots, nr);
		}
	}
}

/* The threads at the root are taken out of its list (their parent stays
 * 0, "at the root") while they merge, then listed again. */
static void group_subjects(struct imap_sort *x)
{
	uint32_t nr = 0, ns = 0, c;
	for (c = x->nd[0].child; c != NONE; c = x->nd[c].next) {
		nr++;
	}
	uint32_t *roots = xmalloc((2 * nr + 1) * sizeof *roots);
	struct tsub *g = xmalloc((nr + 1) * sizeof *g);
	nr = 0;
	for (c = x->nd[0].child; c != NONE; c = x->nd[c].next) {
		const struct smsg *m = sort_msg(x, c);
		if (m && m->str[S_SUBJECT]) { /* an empty thread subject is left alone */
			g[ns++] = (struct tsub){m->str[S_SUBJECT], nr, c};
		}
		roots[nr++] = c;
	}
	qsort(g, ns, sizeof *g, cmp_tsub);
	for (uint32_t i = 0, j; i < ns; i = j) {
		for (j = i + 1; j < ns && casecmp(g[j].subj, g[i].subj) == 0;) {
			j++;
		}
		merge_group(x, g + i, j - i, roots, &nr);
	}
	x->nd[0].child = NONE;
	for (uint32_t i = 0; i < nr; i++) {
		if (x->nd[roots[i]].parent == 0) {
			adopt(x, 0, roots[i]);
		}
	}
	xfree(roots);
	xfree(g);
}

static void thread_references(struct imap_sort *x)
{
	for (uint32_t n = 1; n < x->nn; n++) { /* step 2 */
		if (x->nd[n].parent == NONE) {
			adopt(x, 0, n);
		}
	}
	post_order(x, prune_kids); /* step 3 */
	post_order(x, sort_kids);  /* step 4 (every level: the dummies' first children too) */
	group_subjects(x);         /* step 5 */
	post_order(x, sort_kids);  /* step 6 */
}

/* ---- THREAD=ORDEREDSUBJECT ---- */

static int cmp_ordered(const void *pa, const void *pb)
{
	const struct smsg *a = ((const struct sref *)pa)->m, *b = ((const struct sref *)pb)->m;
	int r = casecmp(a->str[S_SUBJECT], b->str[S_SUBJECT]);
	r = r ? r : cmp64(a->sent, b->sent);
	return r ? r : cmp64(a->seq, b->seq);
}

/* By base subject, then sent date: each subject a thread whose first
 * message is the parent of all the others. */
static void thread_ordered(struct imap_sort *x)
{
	struct sref *v = xmalloc((x->n ? x->n : 1) * sizeof *v);
	uint32_t first = 0;
	node_new(x, 0);
	for (uint32_t i = 0; i < x->n; i++) {
		v[i].x = x, v[i].m = &x->m[i];
	}
	qsort(v, x->n, sizeof *v, cmp_ordered);
	for (uint32_t i = 0; i < x->n; i++) {
		uint32_t n = node_new(x, (uint32_t)(v[i].m - x->m) + 1);
		if (i == 0 || casecmp(v[i].m->str[S_SUBJECT], v[i - 1].m->str[S_SUBJECT]) != 0) {
			first = n;
			adopt(x, 0, n);
		} else {
			adopt(x, first, n);
		}
	}
	xfree(v);
	post_order(x, sort_kids);
}

/* ---- the answer ---- */

/* A node is in parentheses when it starts a thread or has siblings. */
static int wrapped(const struct imap_sort *x, uint32_t n)
{
	uint32_t p = x->nd[n].parent;
	return p == 0 || x->nd[p].child != n || x->nd[n].next != NONE;
}

/* RFC 5256 4: "(3 6 (4 23)(44 7 96))", a blank only before a number
 * or a "(" that follows one. */
static void put_token(struct buf *out, const char *text)
{
	char last = out->len ? out->data[out->len - 1] : '(';
	if (last != '(' && last != ')') {
		buf_puts(out, " ");
	}
	buf_puts(out, text);
}

static void put_threads(const struct imap_sort *x, int uid, struct buf *out)
{
	buf_puts(out, "* THREAD");
	uint32_t n = x->nn ? x->nd[0].child : NONE;
	while (n != NONE && n != 0) {
		if (wrapped(x, n)) {
			put_token(out, "(");
		}
		if (!is_dummy(x, n)) {
			const struct smsg *m = &x->m[x->nd[n].msg - 1];
			char num[16];
			snprintf(num, sizeof num, "%u", uid ? m->uid : m->seq);
			put_token(out, num);
		}
		if (x->nd[n].child != NONE) {
			n = x->nd[n].child;
			continue;
		}
		for (; n != 0; n = x->nd[n].parent) { /* up to the next sibling */
			if (wrapped(x, n)) {
				buf_puts(out, ")");
			}
			if (x->nd[n].next != NONE) {
				n = x->nd[n].next;
				break;
			}
		}
	}
	buf_puts(out, "\r\n");
}

/* see rumble.h */
void imap_sort_put(struct imap_sort *x, int uid, struct buf *out)
{
	if (x->algo == T_SORT) {
		put_sorted(x, uid, out);
		return;
	}
	if (x->algo == T_ORDERED) {
		thread_ordered(x);
	} else if (x->nn) {
		thread_references(x);
	}
	put_threads(x, uid, out);
}
