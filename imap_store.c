/*
 * imap_store.c - IMAP's STORE (RFC 3501 6.4.6) with CONDSTORE's
 * UNCHANGEDSINCE and MODIFIED (RFC 7162 3.1.3): the flags and keywords of
 * the messages named, changed in one locked step (mm_view_store_if), and
 * the FETCH answers.
 */
#include <string.h>

#include "imap.h"

/* ---- STORE ---- */

static int store_op(const char *item, int *op, int *silent)
{
	const char *p = item;
	*op = MM_STORE_SET;
	if (*p == '+' || *p == '-') {
		*op = *p == '+' ? MM_STORE_ADD : MM_STORE_DEL;
		p++;
	}
	if (rl_strncasecmp(p, "FLAGS", 5) != 0) {
		return -1;
	}
	*silent = rl_strcasecmp(p + 5, ".SILENT") == 0;
	return *silent || p[5] == '\0' ? 0 : -1;
}

/* A STORE's request: flags, and CONDSTORE's UNCHANGEDSINCE (UINT64_MAX
 * without it) with the UIDs of the messages that failed it. */
struct store {
	int op, silent;
	uint32_t fl, kw;
	uint64_t unchanged, before; /* before: the folder's modseq before it */
	uint32_t *failed, nfailed;
};

/* STORE's answer: each message's flags now (its UID too for UID STORE),
 * none for those that failed UNCHANGEDSINCE. With CONDSTORE on, MODSEQ
 * too, and .SILENT still tells the modseq of those it changed (RFC 7162
 * 3.1.3). */
static void store_answer(struct session *s, struct imap *st, const uint32_t *seqs, uint32_t n,
        int uid, const struct store *q)
{
	struct mm_msg m;
	uint32_t k = 0; /* both in ascending UID order */
	for (uint32_t i = 0; i < n; i++) {
		if (mm_view_msg(st->v, seqs[i], &m) != 0) {
			continue; /* expunged elsewhere */
		}
		while (k < q->nfailed && q->failed[k] < m.uid) {
			k++;
		}
		int failed = k < q->nfailed && q->failed[k] == m.uid;
		if (failed || (q->silent && (!st->condstore || m.modseq <= q->before))) {
			continue;
		}
		session_printf(s, "* %u FETCH (", seqs[i]);
		if (uid || st->condstore || st->rev2) {
			session_printf(s, "UID %u ", m.uid);
		}
		if (!q->silent) {
			session_printf(s, "FLAGS ");
			imap_put_flags(&s->out, st->f,
			        m.flags | (mm_view_recent(st->v, m.uid) ? MM_RECENT : 0), m.keywords);
		}
		if (st->condstore) {
			session_printf(s, "%sMODSEQ (%llu)", q->silent ? "" : " ",
			        (unsigned long long)m.modseq);
		}
		session_printf(s, ")\r\n");
	}
}

/* "(UNCHANGEDSINCE n)" before STORE's item, when there. */
static int store_modifier(struct args *a, struct store *q)
{
	const char *m, *v;
	q->unchanged = UINT64_MAX;
	if (!imap__arg_paren(a, IMAP_LPAREN)) {
		return 0;
	}
	if (!(m = imap__arg_atom(a)) || rl_strcasecmp(m, "UNCHANGEDSINCE") != 0 || !(v = imap__arg_atom(a)) ||
	        imap_modseq_parse(v, &q->unchanged) != 0 || !imap__arg_paren(a, IMAP_RPAREN)) {
		return -1;
	}
	return 0;
}

/* [MODIFIED set]: the messages that failed UNCHANGEDSINCE, as sequence
 * numbers (UIDs for UID STORE). */
static void store_modified(struct session *s, struct imap *st, const struct store *q, int uid)
{
	uint32_t *v = xmalloc(q->nfailed * sizeof *v), n = 0;
	for (uint32_t i = 0; i < q->nfailed; i++) {
		uint32_t x = uid ? q->failed[i] : mm_view_seq(st->v, q->failed[i]);
		if (x) {
			v[n++] = x;
		}
	}
	for (uint32_t i = 1; i < n; i++) { /* few: insertion sort */
		for (uint32_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint32_t x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	}
	struct buf set;
	buf_init(&set);
	imap_put_uids(&set, v, n);
	ok(s, st, "[MODIFIED %s] Conditional STORE failed", set.data ? set.data : "0");
	buf_free(&set);
	xfree(v);
}

void imap__cmd_store(struct session *s, struct imap *st, struct args *a)
{
	uint32_t *seqs, n;
	struct store q = {0};
	struct mm_msg m;
	if (imap__arg_set(s, st, a, &seqs, &n) != 0) {
		return;
	}
	int cond = store_modifier(a, &q);
	const char *item = cond == 0 ? imap__arg_atom(a) : NULL;
	if (!item || store_op(item, &q.op, &q.silent) != 0 ||
	        imap__parse_flags(a, st->f, &q.fl, &q.kw, 1) != 0 || !imap__arg_end(a)) {
		bad(s, st, "Invalid STORE arguments");
	} else if (st->readonly) {
		no(s, st, "[READ-ONLY] Mailbox is read-only");
	} else {
		uint32_t *uids = xmalloc((n ? n : 1) * sizeof *uids), k = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (mm_view_msg(st->v, seqs[i], &m) >= 0) {
				uids[k++] = m.uid;
			}
		}
		st->condstore |= q.unchanged != UINT64_MAX;
		q.failed = xmalloc((k ? k : 1) * sizeof *q.failed);
		q.before = mm_folder_modseq(st->f);
		int rc = mm_view_store_if(st->v, uids, k, q.op, q.fl, q.kw, q.unchanged, q.failed,
		        &q.nfailed);
		xfree(uids);
		imap__tell_new_keywords(s, st); /* before the FETCH answers show one */
		if (rc >= 0) {
			store_answer(s, st, seqs, n, a->uid, &q);
		}
		if (rc < 0) {
			no(s, st, "[SERVERBUG] Cannot store flags");
		} else if (imap__view_sync(s, st, 0, 0) == 0 && q.nfailed) {
			store_modified(s, st, &q, a->uid);
		} else if (!session_closing(s)) {
			ok(s, st, "STORE completed");
		}
		xfree(q.failed);
	}
	xfree(seqs);
}
