/*
 * imap_search.c - IMAP's SEARCH (RFC 3501 6.4.4, with ESEARCH, SEARCHRES
 * and CONDSTORE's MODSEQ), SORT and THREAD (RFC 5256): every message of
 * the selected folder matched against the keys (imap_parse.c), a slice at
 * a time so that a long one does not stall the worker's other sessions;
 * the answers are built by imap_esearch.c and imap_sort.c.
 */
#include <string.h>

#include "imap.h"

#define SCAN_SLICE_MS 10 /* a SEARCH, SORT or THREAD works this long at a time */

/* ---- SEARCH ---- */

static int search_kw(void *arg, const char *name)
{
	return mm_folder_keyword(((struct imap *)arg)->f, name, 0);
}

/* Message seq against the keys; -1 when it was expunged elsewhere (not
 * told yet: it is in no answer). A match goes to sort (SORT, THREAD)
 * unless it is NULL. */
static int search_one(struct imap *st, const struct imap_search *k, uint32_t seq, uint32_t n,
        uint32_t max_uid, struct mm_msg *m, struct imap_sort *sort)
{
	/* one expunged elsewhere and not told yet is matched as it was, as
	 * long as the store still has it (the client still has its number) */
	int rc = mm_view_msg(st->v, seq, m);
	if (rc < 0 || (rc == 1 && m->offset == 0)) {
		return -1;
	}
	struct imap_search_msg sm = {seq, m->uid, m->flags, m->keywords, m->size, n, max_uid,
	        m->date, os_timezone_offset(m->date), imap_src_folder(st->f, m, st->uidvalidity),
	        m->modseq, m->savedate, mm_view_recent(st->v, m->uid), &st->saved};
	int r = imap_search_match(k, &sm);
	if (r == 1 && sort) {
		imap_sort_add(sort, &sm);
	}
	imap_src_free(sm.src);
	return r;
}

/* ---- SEARCH, SORT and THREAD in slices ----
 *
 * A scan matches the messages a slice at a time (SCAN_SLICE_MS), this
 * session's input paused; between slices the worker serves its other
 * sessions (a body SEARCH of a big folder reads all of it). */

struct scan {
	struct imap_search *k;
	struct imap_sort *sort; /* SORT, THREAD: matches go there */
	uint32_t seq, n, max_uid;
	unsigned ret; /* SEARCH RETURN's options; 0: a plain SEARCH */
	int uid, thread, by_modseq, sliced;
	uint64_t top; /* the highest modseq matched (RFC 7162 3.1.5) */
	struct imap_esearch e;
};

void imap__scan_free(struct imap *st)
{
	struct scan *x = st->scan;
	if (x) {
		imap_search_free(x->k);
		imap_sort_free(x->sort);
		imap_esearch_end(&x->e, NULL);
		free(x);
		st->scan = NULL;
	}
}

/* A scan of every message the view has, for keys k. */
static struct scan *scan_new(struct imap *st, struct imap_search *k, int uid)
{
	struct scan *x = xcalloc(1, sizeof *x);
	struct mm_msg m;
	mm_folder_refresh(st->f);
	x->k = k;
	x->uid = uid;
	x->seq = 1;
	x->n = mm_view_count(st->v);
	x->max_uid = x->n && mm_view_msg(st->v, x->n, &m) >= 0 ? m.uid : 0;
	imap_esearch_init(&x->e, 0);
	return x;
}

static void scan_match(struct session *s, struct scan *x, const struct mm_msg *m, uint32_t seq)
{
	x->top = m->modseq > x->top ? m->modseq : x->top;
	if (x->ret) {
		imap_esearch_add(&x->e, x->uid ? m->uid : seq, seq, m->uid);
	} else {
		session_printf(s, " %u", x->uid ? m->uid : seq);
	}
}

static void scan_finish(struct session *s, struct imap *st, struct scan *x)
{
	const char *what = x->sort ? x->thread ? "THREAD" : "SORT" : "SEARCH";
	uint64_t top = x->by_modseq ? x->top : 0;
	if (x->sort) {
		struct buf out;
		buf_init(&out);
		imap_sort_put(x->sort, x->uid, &out);
		session_write(s, out.data, out.len);
		buf_free(&out);
	} else if (x->ret) {
		imap_esearch_put(&x->e, &s->out, st->tag, x->uid, top);
	} else {
		if (top) {
			session_printf(s, " (MODSEQ %llu)", (unsigned long long)top);
		}
		session_printf(s, "\r\n");
	}
	/* SAVE's result replaces "$" after the search: "$" may be in it */
	int saved = x->sort ? 0 : imap_esearch_end(&x->e, &st->saved);
	if (imap__view_sync(s, st, 0, 0) != 0) {
		return;
	}
	if (saved != 0) {
		no(s, st, "[NOTSAVED] The result is too large to keep; $ is empty");
	} else {
		ok(s, st, "%s completed", what);
	}
}

/* One slice; 1 when the scan is over (answered, freed). */
static int scan_slice(struct session *s, struct imap *st)
{
	struct scan *x = st->scan;
	struct mm_msg m;
	int64_t end = os_now_ms() + SCAN_SLICE_MS;
	while (x->seq <= x->n) {
		uint32_t seq = x->seq++;
		if (search_one(st, x->k, seq, x->n, x->max_uid, &m, x->sort) == 1 && !x->sort) {
			scan_match(s, x, &m, seq);
		}
		if (seq % 16 == 0 && os_now_ms() >= end) {
			return 0;
		}
	}
	scan_finish(s, st, x);
	imap__scan_free(st);
	return 1;
}

static void scan_go(struct session *s, struct imap *st);

static void scan_next(struct session *s, void *arg)
{
	struct imap *st = s->ps;
	if (!st || !st->scan) {
		return;
	}
	if (session_closing(s)) {
		imap__scan_free(st);
		return;
	}
	scan_go(s, st);
}

static void scan_go(struct session *s, struct imap *st)
{
	int sliced = st->scan->sliced;
	if (scan_slice(s, st)) {
		if (sliced) {
			session_resume(s);
		}
		return;
	}
	st->scan->sliced = 1;
	session_pause(s); /* the next command waits for this one's end */
	session_hold(s);
	session_post(s, scan_next, NULL);
}

/* SEARCH: a plain "* SEARCH" answer, or with RETURN (always for
 * IMAP4rev2) ESEARCH's, and SAVE's result for "$" (imap_esearch.c). */
void imap__cmd_search(struct session *s, struct imap *st, struct args *a)
{
	struct imap_search *k;
	const char *error;
	unsigned ret;
	if (imap_search_return(a->c, &a->i, &ret) != 0) {
		bad(s, st, "Bad SEARCH RETURN options (MIN MAX ALL COUNT SAVE)");
		return;
	}
	ret = ret || !st->rev2 ? ret : IMAP_RET_ALL; /* RFC 9051 6.4.4: ESEARCH only */
	if (imap__arg_type(a) == IMAP_ATOM && rl_strcasecmp(imap_tok_str(a->c, a->i), "CHARSET") == 0) {
		const char *cs = (a->i++, imap__arg_astring(a));
		if (!cs ||
		        (rl_strcasecmp(cs, "UTF-8") != 0 && rl_strcasecmp(cs, "US-ASCII") != 0)) {
			if (ret & IMAP_RET_SAVE) {
				imap_set_free(&st->saved); /* a NO with SAVE empties "$" (RFC 5182 2.1) */
			}
			no(s, st, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
	}
	if (imap_search_parse(a->c, &a->i, search_kw, st, &k, &error) != 0) {
		bad(s, st, "%s", error ? error : "Invalid search");
		return;
	}
	struct scan *x = st->scan = scan_new(st, k, a->uid);
	x->ret = ret;
	imap_esearch_init(&x->e, ret);
	x->by_modseq = imap_search_has_modseq(k);
	st->condstore |= x->by_modseq;
	if (!ret) {
		session_printf(s, "* SEARCH");
	}
	scan_go(s, st);
}

/* ---- SORT and THREAD (RFC 5256, imap_sort.c) ---- */

static void sort_thread(struct session *s, struct imap *st, struct args *a, int thread)
{
	struct imap_sort *x;
	struct imap_search *k = NULL;
	const char *error = NULL;
	int rc = imap_sort_parse(a->c, &a->i, thread, &x);
	if (rc == -2) {
		no(s, st, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
	} else if (rc != 0 || imap_search_parse(a->c, &a->i, search_kw, st, &k, &error) != 0) {
		bad(s, st, "%s", error ? error : thread ? "Invalid THREAD" : "Invalid SORT");
	}
	if (!k) {
		imap_sort_free(x);
		return;
	}
	st->scan = scan_new(st, k, a->uid);
	st->scan->sort = x;
	st->scan->thread = thread;
	scan_go(s, st);
}

void imap__cmd_sort(struct session *s, struct imap *st, struct args *a)
{
	sort_thread(s, st, a, 0);
}

void imap__cmd_thread(struct session *s, struct imap *st, struct args *a)
{
	sort_thread(s, st, a, 1);
}
