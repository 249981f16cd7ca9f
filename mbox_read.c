/*
 * mbox_read.c - reading the store: a message whole (mm_msg_read) or a
 * buffer at a time (mm_reader_*), and clients' views of a folder
 * (mm_view_*: IMAP's sequence numbers over the folder's one index). The
 * files and the index are mbox.c's; the shared declarations are in
 * rumble.h's "mbox internals".
 */
#include <string.h>

#include "rumble.h"

#define CHUNK (64 * 1024)
#define POLL_MS 1000 /* a poll (IDLE's wake) looks at the files at most this often */

/* ---- reading ---- */

/* mbox form to wire form: LF -> CRLF, ^>+From  loses one '>'. */
struct unconv {
	struct buf *out;
	int pfx, k;
	uint64_t gt;
};

static void unconv_flush_prefix(struct unconv *u, uint64_t gts)
{
	for (; gts > 0; gts--) {
		buf_append(u->out, ">", 1);
	}
	buf_append(u->out, "From ", (size_t)u->k);
	u->pfx = 0;
}

static void unconv_bytes(struct unconv *u, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (u->pfx) {
			char c = p[i];
			if (u->k == 0 && c == '>') {
				u->gt++;
				i++;
				continue;
			}
			if (c == "From "[u->k]) {
				i++;
				if (++u->k == 5) {
					unconv_flush_prefix(u, u->gt ? u->gt - 1 : 0);
				}
				continue;
			}
			unconv_flush_prefix(u, u->gt);
		}
		/* the rest of the line in one piece */
		const char *nl = memchr(p + i, '\n', n - i);
		size_t run = nl ? (size_t)(nl - (p + i)) : n - i;
		buf_append(u->out, p + i, run);
		i += run;
		if (nl) {
			buf_append(u->out, "\r\n", 2);
			i++;
			u->pfx = 1, u->gt = 0, u->k = 0;
		}
	}
}

/* see rumble.h; out is replaced with the message. */
int mm_msg_read(struct mm_folder *h, uint32_t i, struct buf *out)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	if (i >= f->nlive) {
		os_mutex_unlock(f->mu);
		return -1;
	}
	struct mm_msg m = f->x.rec[f->live[i]].m;
	struct unconv u = {out, 1, 0, 0};
	char *chunk = xmalloc(CHUNK);
	int rc = 0;
	buf_reset(out);
	buf_reserve(out, m.size);
	for (uint64_t done = 0; done < m.length && rc == 0;) {
		size_t want = m.length - done < CHUNK ? (size_t)(m.length - done) : CHUNK;
		if (mm__read_at(f->mbox, m.offset + done, chunk, want) != 0) {
			log_warn("mbox %s: cannot read uid %u", f->label, m.uid);
			rc = -1;
			break;
		}
		unconv_bytes(&u, chunk, want);
		done += want;
	}
	xfree(chunk);
	if (rc == 0 && u.pfx && (u.gt || u.k)) {
		unconv_flush_prefix(&u, u.gt);
	}
	if (rc == 0 && out->len != m.size) {
		log_warnx("mbox %s: uid %u reads as %zu bytes, the index says %u", f->label, m.uid,
		        out->len, m.size);
		rc = -1;
	}
	os_mutex_unlock(f->mu);
	return rc;
}

/* ---- streaming reads ----
 *
 * A reader serves one message in wire form a buffer at a time: it reads
 * the mbox by offset into a raw chunk of at most READER_CHUNK bytes and
 * unquotes it into the caller's buffer, so no copy of the whole message is
 * ever held. It keeps the message's UID and length, not pointers into f:
 * appends (which realloc f's index) do not disturb it, and when f has been
 * reloaded since (a compaction by any process, noticed by a refresh; f->loads
 * tells) it finds the message again by UID. A compaction copies messages
 * byte for byte, so the position inside the message stays right. Between
 * refreshes f->mbox stays the file the offsets belong to: a compaction
 * renames a new file into place, and the open one keeps the old bytes.
 */

#define READER_CHUNK (16 * 1024)

struct mm_reader {
	struct mm__box *f;
	uint32_t uid, length, size, loads;
	uint64_t offset; /* of the message in f->mbox as of loads */
	uint64_t pos;    /* raw bytes consumed */
	uint64_t served; /* wire bytes handed out */
	char *raw;
	size_t rcap, rlen, roff; /* raw[roff..rlen) is still to convert */
	/* mboxrd unquoting, as struct unconv: at a line start matching ^>*From  */
	int pfx, k;
	uint64_t gt;
	/* output owed when the caller's buffer filled up: '>'s, the first
	 * owe_k bytes of "From " (owe_i of them paid), the LF of a CRLF */
	uint64_t owe_gt;
	int owe_k, owe_i, owe_lf;
	int lf_paid; /* a line end went out (mm_reader_read_line stops there) */
};

/* The index of the record with uid in x.rec, live or expunged (its bytes
 * stay in the mbox until a compaction), -1 if none. */
static long find_rec(const struct mm__box *f, uint32_t uid)
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
	return lo < f->x.nrec && f->x.rec[lo].m.uid == uid ? (long)lo : -1;
}

static struct mm_reader *reader_new(struct mm__box *f, const struct mm_msg *m)
{
	struct mm_reader *r = xcalloc(1, sizeof *r);
	r->f = f;
	r->uid = m->uid;
	r->length = m->length;
	r->size = m->size;
	r->offset = m->offset;
	r->loads = f->loads;
	r->rcap = r->length < READER_CHUNK ? (r->length ? r->length : 1) : READER_CHUNK;
	r->raw = xmalloc(r->rcap);
	r->pfx = 1;
	return r;
}

/* see rumble.h */
struct mm_reader *mm_reader_open(struct mm_folder *h, uint32_t i)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	struct mm_reader *r = i < f->nlive ? reader_new(f, &f->x.rec[f->live[i]].m) : NULL;
	os_mutex_unlock(f->mu);
	return r;
}

/* see rumble.h */
struct mm_reader *mm_reader_open_uid(struct mm_folder *h, uint32_t uid)
{
	struct mm__box *f = h->b;
	os_mutex_lock(f->mu);
	long k = find_rec(f, uid); /* a POP3 snapshot may still want one expunged since */
	struct mm_reader *r = k >= 0 ? reader_new(f, &f->x.rec[k].m) : NULL;
	os_mutex_unlock(f->mu);
	return r;
}

void mm_reader_close(struct mm_reader *r)
{
	if (r) {
		xfree(r->raw);
		free(r);
	}
}

/* Reads the next raw chunk of the message; -1 when it is gone or the
 * mbox cannot be read. */
static int reader_fill(struct mm_reader *r)
{
	struct mm__box *f = r->f;
	os_mutex_lock(f->mu);
	if (r->loads != f->loads) {
		long k = find_rec(f, r->uid);
		if (k < 0 || f->x.rec[k].m.length != r->length) {
			log_warnx("mbox %s: uid %u is gone while it was being read", f->label,
			        r->uid);
			os_mutex_unlock(f->mu);
			return -1;
		}
		r->offset = f->x.rec[k].m.offset;
		r->loads = f->loads;
	}
	size_t want = r->length - r->pos < r->rcap ? (size_t)(r->length - r->pos) : r->rcap;
	int rc = f->mbox ? mm__read_at(f->mbox, r->offset + r->pos, r->raw, want) : -1;
	os_mutex_unlock(f->mu);
	if (rc != 0) {
		log_warn("mbox %s: cannot read uid %u", f->label, r->uid);
		return -1;
	}
	r->pos += want;
	r->rlen = want;
	r->roff = 0;
	return 0;
}

/* Pays what earlier calls owed into out[*o..n); 1 when all is paid. */
static int reader_pay(struct mm_reader *r, char *out, size_t n, size_t *o)
{
	if (r->owe_gt && *o < n) {
		size_t k = n - *o < r->owe_gt ? n - *o : (size_t)r->owe_gt;
		memset(out + *o, '>', k);
		*o += k;
		r->owe_gt -= k;
	}
	while (!r->owe_gt && r->owe_i < r->owe_k && *o < n) {
		out[(*o)++] = "From "[r->owe_i++];
	}
	if (!r->owe_gt && r->owe_i == r->owe_k && r->owe_lf && *o < n) {
		out[(*o)++] = '\n';
		r->owe_lf = 0;
		r->lf_paid = 1;
	}
	return !r->owe_gt && r->owe_i == r->owe_k && !r->owe_lf;
}

/* The prefix ^>*From  stopped matching (or the message ended): what it
 * held is owed; a complete "From " loses one '>'. */
static void reader_owe_prefix(struct mm_reader *r, int complete)
{
	r->owe_gt = complete && r->gt ? r->gt - 1 : r->gt;
	r->owe_k = r->k;
	r->owe_i = 0;
	r->pfx = 0;
}

/* Converts raw bytes into out[*o..n) until one of them runs out (or, line
 * set, a line end went out). */
static void reader_convert(struct mm_reader *r, char *out, size_t n, size_t *o, int line)
{
	while (r->roff < r->rlen && *o < n && reader_pay(r, out, n, o) && !(line && r->lf_paid)) {
		char c = r->raw[r->roff];
		if (r->pfx) {
			if (r->k == 0 && c == '>') {
				r->gt++;
				r->roff++;
			} else if (c == "From "[r->k]) {
				r->roff++;
				if (++r->k == 5) {
					reader_owe_prefix(r, 1);
				}
			} else {
				reader_owe_prefix(r, 0); /* c is converted next round */
			}
			continue;
		}
		size_t room = n - *o, avail = r->rlen - r->roff;
		size_t span = room < avail ? room : avail;
		const char *nl = memchr(r->raw + r->roff, '\n', span);
		size_t run = nl ? (size_t)(nl - (r->raw + r->roff)) : span;
		memcpy(out + *o, r->raw + r->roff, run); /* the rest of the line in one piece */
		*o += run;
		r->roff += run;
		if (nl) {
			out[(*o)++] = '\r'; /* run < room: there is space for it */
			r->roff++;
			r->owe_lf = 1;
			r->pfx = 1, r->gt = 0, r->k = 0;
		}
	}
}

static long reader_get(struct mm_reader *r, char *out, size_t n, int line)
{
	size_t o = 0;
	r->lf_paid = 0;
	while (o < n && !(line && r->lf_paid)) {
		if (!reader_pay(r, out, n, &o) || (line && r->lf_paid)) {
			break; /* out is full, or the line is */
		}
		if (r->roff < r->rlen) {
			reader_convert(r, out, n, &o, line);
		} else if (r->pos < r->length) {
			if (reader_fill(r) != 0) {
				return -1;
			}
		} else if (r->pfx && (r->gt || r->k)) {
			reader_owe_prefix(r, 0); /* the message ends inside a prefix */
		} else {
			break; /* the end */
		}
	}
	r->served += o;
	if (o == 0 && r->served != r->size) {
		log_warnx("mbox %s: uid %u reads as %llu bytes, the index says %u", r->f->label,
		        r->uid, (unsigned long long)r->served, r->size);
		return -1;
	}
	return (long)o;
}

/* see rumble.h */
long mm_reader_read(struct mm_reader *r, char *out, size_t n)
{
	return reader_get(r, out, n, 0);
}

/* see rumble.h */
long mm_reader_read_line(struct mm_reader *r, char *out, size_t n)
{
	return reader_get(r, out, n, 1);
}

/* see rumble.h. At a line start nothing is owed and no prefix is being
 * matched: the raw position is where the unread bytes begin. */
uint64_t mm_reader_mark(const struct mm_reader *r)
{
	int clean = !r->owe_gt && r->owe_i == r->owe_k && !r->owe_lf && r->pfx && !r->gt && !r->k;
	return clean ? r->pos - (r->rlen - r->roff) : MM_NO_MARK;
}

/* see rumble.h */
int mm_reader_seek(struct mm_reader *r, uint64_t wire, uint64_t mark)
{
	if (mark > r->length || wire > r->size) {
		return -1;
	}
	r->pos = mark;
	r->rlen = r->roff = 0;
	r->pfx = 1;
	r->gt = 0;
	r->k = 0;
	r->owe_gt = 0;
	r->owe_k = r->owe_i = r->owe_lf = 0;
	r->served = wire;
	return 0;
}

/* ---- clients' views (IMAP's sequence numbers) ----
 *
 * A view is what one client was told of a box: the live messages up to
 * its last UID, plus gone, those expunged since that it was not told of
 * yet (IMAP says EXPUNGE only at some points). It costs a few words and
 * the gone list, not a copy of the index: sequence numbers are counted in
 * the box's live array. Expunged messages stay in the box's index until a
 * compaction or a reload drops them; before that, every view takes the
 * ones it still shows into its gone list (view_norm), so a number never
 * moves under a client. Flag changes are told by modseq. */

/* The first i with a[i] >= x. */
static uint32_t lower_u32(const uint32_t *a, uint32_t n, uint32_t x)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (a[mid] < x) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static uint32_t live_uid(const struct mm__box *f, uint32_t i)
{
	return f->x.rec[f->live[i]].m.uid;
}

/* The first index into live whose UID is >= x. */
static uint32_t live_lower(const struct mm__box *f, uint32_t x)
{
	uint32_t lo = 0, hi = f->nlive;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (live_uid(f, mid) < x) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static void gone_add(struct mm_view *v, uint32_t uid)
{
	uint32_t j = lower_u32(v->gone, v->ngone, uid);
	if (j < v->ngone && v->gone[j] == uid) {
		return;
	}
	if (v->ngone == v->gcap) {
		v->gcap = v->gcap ? v->gcap * 2 : 8;
		v->gone = xrealloc(v->gone, v->gcap * sizeof *v->gone);
	}
	memmove(v->gone + j + 1, v->gone + j, (v->ngone - j) * sizeof *v->gone);
	v->gone[j] = uid;
	v->ngone++;
}

/* Expunges the view has not taken in yet go into its gone list. */
static void view_norm(struct mm_view *v)
{
	struct mm__box *f = v->b;
	if (f->last_expunge <= v->exp_seen || v->uidvalidity != f->x.h.uidvalidity) {
		return;
	}
	for (uint32_t i = 0; i < f->x.nrec; i++) {
		const struct mm_msg *m = &f->x.rec[i].m;
		if ((m->flags & MM_EXPUNGED) && m->modseq > v->exp_seen && m->uid <= v->last) {
			gone_add(v, m->uid);
		}
	}
	v->exp_seen = f->last_expunge;
}

/* Live messages in the view. */
static uint32_t view_nlive(const struct mm_view *v)
{
	return live_lower(v->b, v->last == 0xffffffffu ? v->last : v->last + 1);
}

/* The sequence number of live[i] (in the view). */
static uint32_t view_seq_live(const struct mm_view *v, uint32_t i)
{
	return i + 1 + lower_u32(v->gone, v->ngone, live_uid(v->b, i));
}

/* The UID of sequence number k, 0 if none; *li its index into live, -1
 * for one in gone. */
static uint32_t view_at(const struct mm_view *v, uint32_t k, long *li)
{
	uint32_t nl = view_nlive(v);
	if (k == 0 || k > nl + v->ngone) {
		return 0;
	}
	if (v->ngone == 0) {
		*li = k - 1;
		return live_uid(v->b, k - 1);
	}
	uint32_t lo = 0, hi = nl; /* lo: live messages numbered below k */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (view_seq_live(v, mid) < k) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	if (lo < nl && view_seq_live(v, lo) == k) {
		*li = lo;
		return live_uid(v->b, lo);
	}
	*li = -1;
	return v->gone[k - 1 - lo];
}

/* see rumble.h */
int mm_view_open(struct mm_folder *h, struct mm_view **out)
{
	struct mm__box *f = h->b;
	FILE *lk;
	int rc = mm__begin(f, &lk);
	*out = NULL;
	if (rc != 0) {
		return rc;
	}
	struct mm_view *v = xcalloc(1, sizeof *v);
	v->b = f;
	v->uidvalidity = f->x.h.uidvalidity;
	v->last = f->nlive ? live_uid(f, f->nlive - 1) : 0;
	v->exp_seen = f->last_expunge;
	v->flags_seen = f->x.h.modseq;
	v->next = f->views;
	f->views = v;
	mm__end(f, lk);
	*out = v;
	return 0;
}

/* see rumble.h */
void mm_view_close(struct mm_view *v)
{
	if (!v) {
		return;
	}
	struct mm__box *f = v->b;
	mm_view_watch(v, NULL, NULL);
	os_mutex_lock(f->mu);
	struct mm_view **pp = &f->views;
	while (*pp && *pp != v) {
		pp = &(*pp)->next;
	}
	if (*pp) {
		*pp = v->next;
	}
	os_mutex_unlock(f->mu);
	xfree(v->gone);
	free(v);
}

/* see rumble.h */
uint32_t mm_view_count(struct mm_view *v)
{
	os_mutex_lock(v->b->mu);
	view_norm(v);
	uint32_t n = view_nlive(v) + v->ngone;
	os_mutex_unlock(v->b->mu);
	return n;
}

/* A message expunged since the view was told: its line while the index
 * still has it (until a compaction), else only its UID (offset 0). */
static void gone_msg(const struct mm__box *f, uint32_t uid, struct mm_msg *out)
{
	long i = find_rec(f, uid);
	memset(out, 0, sizeof *out);
	if (i >= 0) {
		*out = f->x.rec[i].m;
		out->flags &= ~MM_EXPUNGED;
	}
	out->uid = uid;
}

/* see rumble.h */
int mm_view_msg(struct mm_view *v, uint32_t seq, struct mm_msg *out)
{
	struct mm__box *f = v->b;
	long li = -1;
	os_mutex_lock(f->mu);
	view_norm(v);
	uint32_t uid = view_at(v, seq, &li);
	if (uid && li >= 0) {
		*out = f->x.rec[f->live[li]].m;
	} else if (uid) {
		gone_msg(f, uid, out);
	}
	os_mutex_unlock(f->mu);
	return uid == 0 ? -1 : li < 0 ? 1 : 0;
}

/* see rumble.h */
uint32_t mm_view_seq(struct mm_view *v, uint32_t uid)
{
	struct mm__box *f = v->b;
	uint32_t seq = 0;
	os_mutex_lock(f->mu);
	view_norm(v);
	if (uid > 0 && uid <= v->last) {
		uint32_t j = lower_u32(v->gone, v->ngone, uid), i = live_lower(f, uid);
		if ((j < v->ngone && v->gone[j] == uid) ||
		        (i < f->nlive && live_uid(f, i) == uid)) {
			seq = i + j + 1;
		}
	}
	os_mutex_unlock(f->mu);
	return seq;
}

/* see rumble.h */
uint32_t mm_view_rank(struct mm_view *v, uint32_t uid)
{
	struct mm__box *f = v->b;
	os_mutex_lock(f->mu);
	view_norm(v);
	uint32_t nl = view_nlive(v);
	uint32_t i = uid == 0xffffffffu ? f->nlive : live_lower(f, uid + 1);
	uint32_t j = uid == 0xffffffffu ? v->ngone : lower_u32(v->gone, v->ngone, uid + 1);
	os_mutex_unlock(f->mu);
	return (i < nl ? i : nl) + j;
}

static void change_flags(struct mm_changes *c, uint32_t seq, const struct mm_msg *m)
{
	if (c->nflags % 64 == 0) {
		c->flags = xrealloc(c->flags, (c->nflags + 64) * sizeof *c->flags);
	}
	struct mm_change *x = &c->flags[c->nflags++];
	x->seq = seq;
	x->uid = m->uid;
	x->flags = m->flags;
	x->keywords = m->keywords;
	x->modseq = m->modseq;
}

/* The view's live messages that are \Recent to it: UIDs recent..recent_hi. */
static uint32_t view_count_recent(const struct mm_view *v)
{
	if (!v->recent) {
		return 0;
	}
	uint32_t nl = view_nlive(v), a = live_lower(v->b, v->recent);
	uint32_t b = v->recent_hi == 0xffffffffu ? nl : live_lower(v->b, v->recent_hi + 1);
	b = b < nl ? b : nl;
	return b > a ? b - a : 0;
}

/* The view (which claims) takes the messages up to its last that no
 * session took as \Recent yet; 1 when it took any (the header changed).
 * first: the first UID it was not told of before. What it holds is one
 * run of UIDs: when others took some since its last claim, those before
 * are no longer recent to it (RFC 3501 lets a message be recent to one
 * session at most; one less is allowed). */
static int view_take_recent(struct mm_view *v, uint32_t first)
{
	struct mm__hdr *h = &v->b->x.h;
	if (!v->claims || h->recent > v->last) {
		return 0; /* nothing new, or another session took it */
	}
	uint32_t lo = h->recent > first ? h->recent : first;
	if (v->recent == 0 || lo != v->recent_hi + 1) {
		v->recent = lo;
	}
	v->recent_hi = v->last;
	h->recent = v->last + 1;
	return 1;
}

/* What changed since the view was told, into c; f->mu is held. 1 when
 * the header changed (new mail taken as \Recent). */
static int view_changes(struct mm_view *v, int expunge, struct mm_changes *c)
{
	struct mm__box *f = v->b;
	view_norm(v);
	uint32_t nl = view_nlive(v);
	for (uint32_t i = 0; f->x.h.modseq > v->flags_seen && i < nl; i++) {
		const struct mm_msg *m = &f->x.rec[f->live[i]].m;
		if (m->modseq > v->flags_seen) {
			change_flags(c, view_seq_live(v, i), m);
		}
	}
	v->flags_seen = f->x.h.modseq;
	if (expunge && v->ngone) {
		c->expunged = xmalloc(v->ngone * sizeof *c->expunged);
		c->vanished = xmalloc(v->ngone * sizeof *c->vanished);
		memcpy(c->vanished, v->gone, v->ngone * sizeof *c->vanished);
		for (uint32_t j = 0; j < v->ngone; j++) {
			/* numbered after the ones before it are gone */
			c->expunged[c->nexpunged++] = live_lower(f, v->gone[j]) + 1;
		}
		v->ngone = 0;
	}
	uint32_t top = f->nlive ? live_uid(f, f->nlive - 1) : 0;
	int took = 0;
	if (v->ngone == 0 && top > v->last) {
		uint32_t first = v->last + 1;
		v->last = top; /* new mail waits while expunges do */
		took = view_take_recent(v, first);
		c->exists = view_nlive(v);
		c->recent = view_count_recent(v);
	}
	return took;
}

/* see rumble.h */
int mm_view_sync(struct mm_view *v, int expunge, int poll, struct mm_changes *c)
{
	struct mm__box *f = v->b;
	FILE *lk;
	memset(c, 0, sizeof *c);
	os_mutex_lock(f->mu);
	int look = !poll || os_now_ms() - f->refreshed >= POLL_MS || !f->loaded ||
	           os_atomic_load_int(&f->forgotten);
	os_mutex_unlock(f->mu);
	int rc = look ? mm__begin(f, &lk) : 0;
	if (rc != 0) {
		return rc;
	}
	if (!look) {
		os_mutex_lock(f->mu);
	}
	if (f->x.h.uidvalidity != v->uidvalidity) {
		rc = MM_REINDEXED;
	} else if (view_changes(v, expunge, c) && look) {
		mm__write_header(f); /* else the next write of the header keeps it */
	}
	if (look) {
		mm__end(f, lk);
	} else {
		os_mutex_unlock(f->mu);
	}
	return rc;
}

/* see rumble.h */
void mm_changes_free(struct mm_changes *c)
{
	xfree(c->flags);
	xfree(c->expunged);
	xfree(c->vanished);
	c->nflags = c->nexpunged = c->exists = c->recent = 0;
}

/* see rumble.h; the \Recent count of the view. */
int mm_view_claim(struct mm_view *v)
{
	struct mm__box *f = v->b;
	FILE *lk;
	if (mm__begin(f, &lk) != 0) {
		return 0;
	}
	v->claims = 1;
	if (v->uidvalidity == f->x.h.uidvalidity && view_take_recent(v, 1)) {
		mm__write_header(f);
	}
	uint32_t n = view_count_recent(v);
	mm__end(f, lk);
	return (int)n;
}

/* see rumble.h */
int mm_view_recent(struct mm_view *v, uint32_t uid)
{
	os_mutex_lock(v->b->mu);
	int r = v->recent && uid >= v->recent && uid <= v->recent_hi;
	os_mutex_unlock(v->b->mu);
	return r;
}

static void range_add(struct mm_range **out, uint32_t *n, uint32_t *cap, uint32_t uid)
{
	if (*n && (*out)[*n - 1].hi + 1 == uid) {
		(*out)[*n - 1].hi = uid;
		return;
	}
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*out = xrealloc(*out, *cap * sizeof **out);
	}
	(*out)[(*n)++] = (struct mm_range){uid, uid};
}

/* The UIDs below uidnext that are not live, as ranges. */
static void not_live(const struct mm__box *f, struct mm_range **out, uint32_t *n, uint32_t *cap)
{
	uint32_t prev = 0;
	for (uint32_t i = 0; i <= f->nlive; i++) {
		uint32_t next = i < f->nlive ? live_uid(f, i) : f->x.h.uidnext;
		if (next > prev + 1) {
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 16;
				*out = xrealloc(*out, *cap * sizeof **out);
			}
			(*out)[(*n)++] = (struct mm_range){prev + 1, next - 1};
		}
		prev = next;
	}
}

/* see rumble.h */
int mm_folder_vanished(struct mm_folder *h, uint64_t since, struct mm_range **out, uint32_t *n)
{
	struct mm__box *f = h->b;
	uint32_t cap = 0;
	*out = NULL;
	*n = 0;
	os_mutex_lock(f->mu);
	if (!f->loaded) {
		os_mutex_unlock(f->mu);
		return MM_UNAVAILABLE;
	}
	if (since < f->x.h.floor) {
		not_live(f, out, n, &cap);
	} else {
		for (uint32_t i = 0; f->last_expunge > since && i < f->x.nrec; i++) {
			const struct mm_msg *m = &f->x.rec[i].m;
			if ((m->flags & MM_EXPUNGED) && m->modseq > since) {
				range_add(out, n, &cap, m->uid);
			}
		}
	}
	os_mutex_unlock(f->mu);
	return 0;
}

/* see rumble.h */
void mm__views_keep(struct mm__box *f)
{
	for (struct mm_view *v = f->views; v; v = v->next) {
		view_norm(v);
	}
}

/* see rumble.h */
void mm__views_lost(struct mm__box *f, const struct mm__rec *old, uint32_t n)
{
	for (struct mm_view *v = f->views; v; v = v->next) {
		for (uint32_t i = 0; v->uidvalidity == f->x.h.uidvalidity && i < n; i++) {
			const struct mm_msg *m = &old[i].m;
			if (!(m->flags & MM_EXPUNGED) && m->uid <= v->last &&
			        mm__find_uid(f, m->uid) < 0) {
				gone_add(v, m->uid);
			}
		}
	}
}

/* ---- push: waking the views that watch (IMAP IDLE) ----
 *
 * Every change goes through mm__end (or a failed mm__begin, or
 * mm__forget) on whatever thread made it, which compares what a client
 * can see of the box (modseq, UIDVALIDITY, live count, gone) with what
 * the watchers were last woken for, and wakes them all when it differs.
 * The watchers have their own lock, the last one taken, so that wake
 * can run under the box's locks and mm__forget can wake without the
 * box's mutex (it holds the file lock, which comes after it). */

static os_mutex *watch_mu;

static os_mutex *watch_lock(void)
{
	return rl_mutex_once(&watch_mu);
}

/* see rumble.h */
void mm_view_watch(struct mm_view *v, void (*wake)(void *arg), void *arg)
{
	struct mm__box *f = v->b;
	os_mutex_lock(watch_lock());
	if (!v->wake && wake) {
		v->wnext = f->watchers;
		f->watchers = v;
	} else if (v->wake && !wake) {
		struct mm_view **pp = &f->watchers;
		while (*pp != v) {
			pp = &(*pp)->wnext;
		}
		*pp = v->wnext;
		v->wnext = NULL;
	}
	v->wake = wake;
	v->wake_arg = arg;
	os_mutex_unlock(watch_lock());
	if (wake) {
		mm__watch_start();
	}
}

/* see rumble.h */
void mm__ring(struct mm__box *f)
{
	os_mutex_lock(watch_lock());
	for (struct mm_view *v = f->watchers; v; v = v->wnext) {
		v->wake(v->wake_arg);
	}
	os_mutex_unlock(watch_lock());
}

/* see rumble.h */
void mm__ring_changed(struct mm__box *f, int gone)
{
	if (f->told_modseq == f->x.h.modseq && f->told_uidvalidity == f->x.h.uidvalidity &&
	        f->told_nlive == f->nlive && f->told_gone == gone) {
		return;
	}
	f->told_modseq = f->x.h.modseq;
	f->told_uidvalidity = f->x.h.uidvalidity;
	f->told_nlive = f->nlive;
	f->told_gone = gone;
	mm__ring(f);
}

/* see rumble.h */
int mm__watched(struct mm__box *f)
{
	os_mutex_lock(watch_lock());
	int w = f->watchers != NULL;
	os_mutex_unlock(watch_lock());
	return w;
}
