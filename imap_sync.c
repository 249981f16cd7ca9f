/*
 * imap_sync.c - the parts of CONDSTORE and QRESYNC (RFC 7162) that need
 * no session: SELECT's parameters and the VANISHED responses. imap.c
 * runs the commands; the modseqs and the expunged UIDs come from the
 * store (mm_folder_modseq, mm_folder_vanished).
 */
#include <string.h>

#include "rumble.h"

/* A client's known-uids naming more ranges than this is taken as "all":
 * VANISHED may name UIDs the client never had (RFC 7162 3.2.5.1). */
#define KNOWN_RANGES_MAX 64

static int tok_is(const struct imap_cmd *c, uint32_t i, int type)
{
	return i < c->ntok && c->tok[i].type == type;
}

static const char *atom_at(const struct imap_cmd *c, uint32_t *i)
{
	return tok_is(c, *i, IMAP_ATOM) ? imap_tok_str(c, (*i)++) : NULL;
}

/* QRESYNC's "(uidvalidity modseq [known-uids [(seqs uids)]])" at *i. */
static int qresync_params(const struct imap_cmd *c, uint32_t *i, struct imap_qresync *q)
{
	const char *v, *m, *known;
	uint32_t uv;
	if (!tok_is(c, (*i)++, IMAP_LPAREN) || !(v = atom_at(c, i)) || !(m = atom_at(c, i)) ||
	        imap__num(&v, &uv) != 0 || *v || imap_modseq_parse(m, &q->modseq) != 0 ||
	        q->modseq == 0) {
		return -1;
	}
	q->uidvalidity = uv;
	if ((known = atom_at(c, i)) != NULL) {
		if (imap_set_parse(known, &q->known) != 0) {
			return -1;
		}
		q->has_known = 1;
	}
	/* the sequence match data only saves work; it is checked, not used */
	if (q->has_known && tok_is(c, *i, IMAP_LPAREN)) {
		(*i)++;
		if (!atom_at(c, i) || !atom_at(c, i) || !tok_is(c, (*i)++, IMAP_RPAREN)) {
			return -1;
		}
	}
	return tok_is(c, (*i)++, IMAP_RPAREN) ? 0 : -1;
}

/* see rumble.h */
int imap_select_params(const struct imap_cmd *c, uint32_t *pos, struct imap_qresync *q)
{
	uint32_t i = *pos;
	memset(q, 0, sizeof *q);
	if (i == c->ntok) {
		return 0;
	}
	if (!tok_is(c, i++, IMAP_LPAREN)) {
		return -1;
	}
	const char *p;
	while ((p = atom_at(c, &i)) != NULL) {
		if (rl_strcasecmp(p, "CONDSTORE") == 0 && !q->condstore) {
			q->condstore = 1;
		} else if (rl_strcasecmp(p, "QRESYNC") == 0 && !q->on) {
			q->on = 1;
			if (qresync_params(c, &i, q) != 0) {
				imap_qresync_free(q);
				return -1;
			}
		} else {
			imap_qresync_free(q);
			return -1;
		}
	}
	if (!tok_is(c, i, IMAP_RPAREN) || i + 1 != c->ntok || (!q->on && !q->condstore)) {
		imap_qresync_free(q);
		return -1;
	}
	*pos = i + 1;
	return 0;
}

/* see rumble.h */
void imap_qresync_free(struct imap_qresync *q)
{
	if (q->has_known) {
		imap_set_free(&q->known);
	}
	q->has_known = 0;
}

static void put_range(struct buf *o, int *n, uint32_t lo, uint32_t hi)
{
	buf_printf(o, *n ? ",%u" : "%u", lo);
	if (hi > lo) {
		buf_printf(o, ":%u", hi);
	}
	(*n)++;
}

/* see rumble.h */
void imap_put_vanished(struct buf *o, const struct mm_range *r, uint32_t n,
        const struct imap_set *within, uint32_t star)
{
	size_t start = o->len;
	int put = 0;
	buf_puts(o, "* VANISHED (EARLIER) ");
	int all = !within || within->n > KNOWN_RANGES_MAX;
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t k = 0; !all && k < within->n; k++) {
			uint32_t a = within->r[k].lo == IMAP_STAR ? star : within->r[k].lo;
			uint32_t b = within->r[k].hi == IMAP_STAR ? star : within->r[k].hi;
			uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
			lo = lo > r[i].lo ? lo : r[i].lo;
			hi = hi < r[i].hi ? hi : r[i].hi;
			if (lo <= hi) {
				put_range(o, &put, lo, hi);
			}
		}
		if (all) {
			put_range(o, &put, r[i].lo, r[i].hi);
		}
	}
	if (put) {
		buf_puts(o, "\r\n");
	} else {
		o->len = start; /* nothing vanished: no response */
		if (o->data) {
			o->data[o->len] = '\0';
		}
	}
}

/* see rumble.h */
void imap_put_uids(struct buf *o, const uint32_t *uids, uint32_t n)
{
	int put = 0;
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1) {
			j++;
		}
		put_range(o, &put, uids[i], uids[j]);
		i = j + 1;
	}
}
