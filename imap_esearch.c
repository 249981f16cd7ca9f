/*
 * imap_esearch.c - SEARCH's answer as ESEARCH (RFC 4731; the only answer
 * an IMAP4rev2 session gets, RFC 9051 6.4.4) and SEARCHRES (RFC 5182,
 * part of IMAP4rev2): the RETURN options, the answer built as matches
 * come in ascending order, and the saved result that "$" names in later
 * commands. imap.c runs the search and owns the session's saved result.
 *
 * A saved result is UID ranges, one per run of consecutive sequence
 * numbers matched (UIDs between two of a run that are not in the view do
 * not exist, so a range may span them). A message expunged later simply
 * is not found any more, with no renumbering (RFC 5182 2.1), and "$" is
 * the same messages to FETCH and to UID FETCH. At most SAVED_RANGES_MAX
 * ranges per session: a larger result is not saved (NO [NOTSAVED], RFC
 * 9051 6.4.4.3) and "$" is then empty.
 */
#include <string.h>

#include "rumble.h"

#define SAVED_RANGES_MAX 16384 /* 128 KB per session at most */

/* see rumble.h */
int imap_search_return(const struct imap_cmd *c, uint32_t *pos, unsigned *ret)
{
	static const char *const names[] = {"MIN", "MAX", "ALL", "COUNT", "SAVE"};
	uint32_t i = *pos;
	*ret = 0;
	if (i >= c->ntok || c->tok[i].type != IMAP_ATOM ||
	        rl_strcasecmp(imap_tok_str(c, i), "RETURN") != 0) {
		return 0;
	}
	if (++i >= c->ntok || c->tok[i++].type != IMAP_LPAREN) {
		return -1;
	}
	for (; i < c->ntok && c->tok[i].type == IMAP_ATOM; i++) {
		int k = 0;
		while (k < 5 && rl_strcasecmp(imap_tok_str(c, i), names[k]) != 0) {
			k++;
		}
		if (k == 5) {
			return -1;
		}
		*ret |= 1u << k;
	}
	if (i >= c->ntok || c->tok[i++].type != IMAP_RPAREN) {
		return -1;
	}
	*ret = *ret ? *ret : IMAP_RET_ALL;
	*pos = i;
	return 0;
}

/* see rumble.h */
void imap_esearch_init(struct imap_esearch *e, unsigned ret)
{
	memset(e, 0, sizeof *e);
	e->ret = ret;
	buf_init(&e->all);
}

static void close_run(struct imap_esearch *e)
{
	if (e->run_lo) {
		buf_printf(&e->all, "%s%u", e->all.len ? "," : "", e->run_lo);
		if (e->run_hi != e->run_lo) {
			buf_printf(&e->all, ":%u", e->run_hi);
		}
	}
}

/* The message with uid goes into the saved result: on the last range when
 * it follows that range's last message (seq), else in a new one. */
static void save_add(struct imap_esearch *e, uint32_t seq, uint32_t uid)
{
	struct imap_set *s = &e->save;
	if (s->n && seq == e->save_seq + 1) {
		s->r[s->n - 1].hi = uid;
	} else if (s->n >= SAVED_RANGES_MAX) {
		e->too_big = 1;
	} else {
		if (s->n == e->save_cap) {
			e->save_cap = e->save_cap ? e->save_cap * 2 : 16;
			s->r = xrealloc(s->r, e->save_cap * sizeof *s->r);
		}
		s->r[s->n].lo = s->r[s->n].hi = uid;
		s->n++;
	}
	e->save_seq = seq;
}

/* see rumble.h */
void imap_esearch_add(struct imap_esearch *e, uint32_t v, uint32_t seq, uint32_t uid)
{
	if (!e->count) {
		e->min = v;
		e->min_uid = uid;
	}
	e->max = v;
	e->max_uid = uid;
	e->count++;
	if (e->ret & IMAP_RET_SAVE) {
		save_add(e, seq, uid);
	}
	if (!(e->ret & IMAP_RET_ALL)) {
		return;
	}
	if (e->run_lo && v == e->run_hi + 1) {
		e->run_hi = v;
		return;
	}
	close_run(e);
	e->run_lo = e->run_hi = v;
}

/* see rumble.h */
void imap_esearch_put(
        struct imap_esearch *e, struct buf *out, const char *tag, int uid, uint64_t modseq)
{
	unsigned ret = e->ret;
	if (ret == IMAP_RET_SAVE) {
		return; /* SAVE alone answers nothing (RFC 5182 2.1) */
	}
	close_run(e);
	buf_printf(out, "* ESEARCH (TAG \"%s\")%s", tag, uid ? " UID" : "");
	if (ret & IMAP_RET_MIN && e->count) {
		buf_printf(out, " MIN %u", e->min);
	}
	if (ret & IMAP_RET_MAX && e->count) {
		buf_printf(out, " MAX %u", e->max);
	}
	if (ret & IMAP_RET_ALL && e->count) {
		buf_printf(out, " ALL %s", e->all.data);
	}
	if (ret & IMAP_RET_COUNT) {
		buf_printf(out, " COUNT %u", e->count);
	}
	if (modseq && e->count) {
		buf_printf(out, " MODSEQ %llu", (unsigned long long)modseq);
	}
	buf_printf(out, "\r\n");
}

/* SAVE with MIN and/or MAX but neither ALL nor COUNT saves only those
 * (RFC 9051 6.4.4.1, table 4). */
static void save_min_max(struct imap_esearch *e)
{
	imap_set_free(&e->save);
	e->too_big = 0;
	if (!e->count) {
		return;
	}
	e->save.r = xmalloc(2 * sizeof *e->save.r);
	if (e->ret & IMAP_RET_MIN) {
		e->save.r[e->save.n].lo = e->save.r[e->save.n].hi = e->min_uid;
		e->save.n++;
	}
	if (e->ret & IMAP_RET_MAX && (!e->save.n || e->max_uid != e->min_uid)) {
		e->save.r[e->save.n].lo = e->save.r[e->save.n].hi = e->max_uid;
		e->save.n++;
	}
}

/* see rumble.h */
int imap_esearch_end(struct imap_esearch *e, struct imap_set *saved)
{
	int rc = 0;
	unsigned ret = e->ret;
	if (saved && (ret & IMAP_RET_SAVE)) {
		if ((ret & (IMAP_RET_MIN | IMAP_RET_MAX)) &&
		        !(ret & (IMAP_RET_ALL | IMAP_RET_COUNT))) {
			save_min_max(e);
		}
		imap_set_free(saved);
		if (e->too_big) {
			rc = -1;
		} else {
			*saved = e->save;
			e->save.r = NULL;
			e->save.n = 0;
		}
	}
	imap_set_free(&e->save);
	buf_free(&e->all);
	return rc;
}

/* see rumble.h */
int imap_saved_has(const struct imap_set *saved, uint32_t uid)
{
	uint32_t lo = 0, hi = saved->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (uid < saved->r[mid].lo) {
			hi = mid;
		} else if (uid > saved->r[mid].hi) {
			lo = mid + 1;
		} else {
			return 1;
		}
	}
	return 0;
}
