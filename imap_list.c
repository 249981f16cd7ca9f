/*
 * imap_list.c - LIST as RFC 3501 has it and with the extensions of
 * LIST-EXTENDED (RFC 5258: selection and return options, several
 * patterns, \NonExistent, \Subscribed, CHILDINFO), SPECIAL-USE (RFC 6154)
 * and LIST-STATUS (RFC 5819). imap.c reads the mailbox and answers; this
 * file parses the rest and writes the LIST lines.
 *
 * The names a LIST sees: every folder, every level above a folder (a
 * \Noselect name, "a" for "a.b") and, when subscriptions are selected,
 * every subscribed name and the levels above it. A user has at most
 * LIST_NAMES_MAX of them; the rest are not shown.
 *
 * Names are the store's (modified UTF-7); for an IMAP4rev2 session
 * (utf8) each is decoded before it is matched against the patterns,
 * which are UTF-8 then, and goes out in UTF-8 (imap_utf8.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

#define LIST_NAMES_MAX 10000

enum {
	N_FOLDER = 1, /* a folder */
	N_LEVEL = 2,  /* a level above a folder */
	N_SUB = 4,    /* subscribed */
};

struct names {
	char **v;
	unsigned char *flags;
	size_t n;
	int full; /* LIST_NAMES_MAX reached */
};

static int tok_type(const struct imap_cmd *c, uint32_t i)
{
	return i < c->ntok ? c->tok[i].type : -1;
}

static int is_astring(const struct imap_cmd *c, uint32_t i)
{
	return tok_type(c, i) == IMAP_ATOM || tok_type(c, i) == IMAP_STRING;
}

static int word_is(const struct imap_cmd *c, uint32_t i, const char *w)
{
	return tok_type(c, i) == IMAP_ATOM && rl_strcasecmp(imap_tok_str(c, i), w) == 0;
}

/* "(" opt... ")" from *i: each option's bit (opts: names and bits,
 * NULL-ended) or'ed into *out. STATUS takes a list of items after it.
 * -1 on an unknown option or bad syntax. */
static int options(const struct imap_cmd *c, uint32_t *i, const char *const *names,
        const unsigned *bits, struct imap_list_req *r, unsigned *out)
{
	if (tok_type(c, (*i)++) != IMAP_LPAREN) {
		return -1;
	}
	while (tok_type(c, *i) == IMAP_ATOM) {
		int k = 0;
		while (names[k] && !word_is(c, *i, names[k])) {
			k++;
		}
		if (!names[k]) {
			return -1;
		}
		*out |= bits[k];
		(*i)++;
		if (bits[k] == LIST_RET_STATUS) {
			if (tok_type(c, (*i)++) != IMAP_LPAREN) {
				return -1;
			}
			r->status_first = *i;
			while (tok_type(c, *i) == IMAP_ATOM) {
				(*i)++;
			}
			r->status_end = *i;
			if (r->status_end == r->status_first || tok_type(c, (*i)++) != IMAP_RPAREN) {
				return -1;
			}
		}
	}
	return tok_type(c, (*i)++) == IMAP_RPAREN ? 0 : -1;
}

static const char *const sel_names[] = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE", NULL};
static const unsigned sel_bits[] = {LIST_SEL_SUBSCRIBED, 0, LIST_SEL_RECURSIVE, LIST_SEL_SPECIAL};
static const char *const ret_names[] = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", NULL};
static const unsigned ret_bits[] = {LIST_RET_SUBSCRIBED, 0, 0, LIST_RET_STATUS};

/* The patterns from *i: one, or a list of them. */
static int patterns(const struct imap_cmd *c, uint32_t *i, struct imap_list_req *r)
{
	int list = tok_type(c, *i) == IMAP_LPAREN;
	*i += (uint32_t)list;
	while (is_astring(c, *i) && r->npat < IMAP_LIST_PATS) {
		r->pat[r->npat++] = imap_tok_str(c, (*i)++);
		if (!list) {
			return 0;
		}
	}
	return list && r->npat && tok_type(c, (*i)++) == IMAP_RPAREN ? 0 : -1;
}

/* see rumble.h */
int imap_list_parse(const struct imap_cmd *c, uint32_t i, struct imap_list_req *r)
{
	memset(r, 0, sizeof *r);
	if (tok_type(c, i) == IMAP_LPAREN) {
		r->extended = 1;
		if (options(c, &i, sel_names, sel_bits, r, &r->opts) != 0) {
			return -1;
		}
		/* RECURSIVEMATCH needs another selection option (RFC 5258 3.1) */
		if ((r->opts & LIST_SEL_RECURSIVE) && !(r->opts & ~LIST_SEL_RECURSIVE)) {
			return -1;
		}
	}
	if (!is_astring(c, i)) {
		return -1;
	}
	r->ref = imap_tok_str(c, i++);
	if (tok_type(c, i) == IMAP_LPAREN) {
		r->extended = 1;
	}
	if (patterns(c, &i, r) != 0) {
		return -1;
	}
	if (word_is(c, i, "RETURN")) {
		r->extended = 1;
		i++;
		if (options(c, &i, ret_names, ret_bits, r, &r->opts) != 0) {
			return -1;
		}
	}
	return i == c->ntok ? 0 : -1;
}

/* ---- the names ---- */

static int names_find(const struct names *ns, const char *name, size_t len)
{
	for (size_t i = 0; i < ns->n; i++) {
		if (strncmp(ns->v[i], name, len) == 0 && ns->v[i][len] == '\0') {
			return (int)i;
		}
	}
	return -1;
}

static void names_add(struct names *ns, const char *name, size_t len, unsigned flags)
{
	int i = names_find(ns, name, len);
	if (i >= 0) {
		ns->flags[i] |= (unsigned char)flags;
		return;
	}
	if (ns->n >= LIST_NAMES_MAX) {
		ns->full = 1;
		return;
	}
	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
	ns->flags = xrealloc(ns->flags, ns->n + 1);
	ns->v[ns->n] = xmalloc(len + 1);
	memcpy(ns->v[ns->n], name, len);
	ns->v[ns->n][len] = '\0';
	ns->flags[ns->n++] = (unsigned char)flags;
}

/* name, and every level above it with flag "above". */
static void add_with_levels(struct names *ns, const char *name, unsigned flags, unsigned above)
{
	for (const char *dot = strchr(name, '.'); dot && above; dot = strchr(dot + 1, '.')) {
		names_add(ns, name, (size_t)(dot - name), above);
	}
	names_add(ns, name, strlen(name), flags);
}

static int add_folder(const char *name, void *arg)
{
	struct names *ns = arg;
	add_with_levels(ns, name, N_FOLDER, N_LEVEL);
	return ns->full;
}

static int add_sub(const char *name, void *arg)
{
	struct names *ns = arg;
	add_with_levels(ns, name, N_SUB, 0);
	return ns->full;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		xfree(ns->v[i]);
	}
	xfree(ns->v);
	xfree(ns->flags);
}

/* 1 when a name below name (name.x, name.x.y) has one of flags. */
static int has_below(const struct names *ns, const char *name, unsigned flags)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < ns->n; i++) {
		if ((ns->flags[i] & flags) && strncmp(ns->v[i], name, n) == 0 &&
		        ns->v[i][n] == '.') {
			return 1;
		}
	}
	return 0;
}

/* ---- the lines ---- */

static int matches(const struct imap_list_req *r, const char *stored)
{
	char full[IMAP_PATTERN_MAX + 1], shown[IMAP_NAME_UTF8_MAX];
	const char *name = imap_name_shown(stored, r->utf8, shown, sizeof shown);
	for (int k = 0; k < r->npat; k++) {
		if ((size_t)snprintf(full, sizeof full, "%s%s", r->ref, r->pat[k]) < sizeof full &&
		        imap_wild_match(full, name, strcmp(name, "INBOX") == 0)) {
			return 1;
		}
	}
	return 0;
}

/* Whether name is shown; *childinfo set when it is for RECURSIVEMATCH. */
static int shown(const struct imap_list_req *r, const struct names *ns, size_t i,
        const struct imap_uses *u, int *childinfo)
{
	const char *name = ns->v[i];
	unsigned f = ns->flags[i];
	*childinfo = 0;
	if (!matches(r, name)) {
		return 0;
	}
	if (r->opts & LIST_SEL_SPECIAL && (!(f & N_FOLDER) || !imap_uses_of(u, name))) {
		return 0;
	}
	if (r->opts & LIST_SEL_SUBSCRIBED) {
		*childinfo = (r->opts & LIST_SEL_RECURSIVE) && has_below(ns, name, N_SUB);
		return (f & N_SUB) || *childinfo;
	}
	return (f & (N_FOLDER | N_LEVEL)) != 0;
}

static void put_line(const struct imap_list_req *r, const struct names *ns, size_t i,
        const struct imap_uses *u, int childinfo, struct buf *out)
{
	const char *name = ns->v[i];
	unsigned f = ns->flags[i];
	const char *use = f & N_FOLDER ? imap_uses_of(u, name) : NULL;
	buf_printf(out, "* LIST (");
	if (!(f & (N_FOLDER | N_LEVEL))) {
		buf_printf(out, "\\NonExistent");
	} else {
		buf_printf(out, "%s%s", f & N_FOLDER ? "" : "\\Noselect ",
		        has_below(ns, name, N_FOLDER) ? "\\HasChildren" : "\\HasNoChildren");
	}
	if ((f & N_SUB) && (r->opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED))) {
		buf_printf(out, " \\Subscribed");
	}
	if (use) {
		buf_printf(out, " %s", use);
	}
	buf_printf(out, ") \".\" ");
	imap_put_name(out, name, r->utf8);
	if (childinfo) {
		buf_printf(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	}
	buf_printf(out, "\r\n");
}

/* see rumble.h */
void imap_list_run(const struct imap_list_req *r, const char *domain, const char *user,
        struct buf *out, void (*status)(const char *name, void *arg), void *arg)
{
	struct names ns = {NULL, NULL, 0, 0};
	struct imap_uses u;
	mm_folder_list(domain, user, add_folder, &ns);
	if (r->opts & (LIST_SEL_SUBSCRIBED | LIST_RET_SUBSCRIBED)) {
		mm_subscription_list(domain, user, add_sub, &ns);
	}
	imap_uses_load(&u, domain, user);
	for (size_t i = 0; i < ns.n; i++) {
		int childinfo;
		if (shown(r, &ns, i, &u, &childinfo)) {
			put_line(r, &ns, i, &u, childinfo, out);
			if ((r->opts & LIST_RET_STATUS) && (ns.flags[i] & N_FOLDER)) {
				status(ns.v[i], arg);
			}
		}
	}
	imap_uses_free(&u);
	names_free(&ns);
}

/* ---- LSUB ---- */

struct lsub {
	const char *pat;
	int utf8;
	struct names ns;
};

/* INBOX is case-insensitive, and so is the pattern's INBOX prefix. */
static int lsub_match(const struct lsub *l, const char *stored)
{
	char shown[IMAP_NAME_UTF8_MAX];
	const char *name = imap_name_shown(stored, l->utf8, shown, sizeof shown);
	return imap_wild_match(l->pat, name, strcmp(name, "INBOX") == 0);
}

/* A subscribed name that matches, or the levels above it that do (as
 * \Noselect): "a.b" subscribed, "a" not, "%" gives "a". */
static int lsub_collect(const char *name, void *arg)
{
	struct lsub *l = arg;
	char up[IMAP_PATTERN_MAX + 1];
	if (lsub_match(l, name)) {
		names_add(&l->ns, name, strlen(name), N_SUB);
		return l->ns.full;
	}
	for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
		size_t n = (size_t)(dot - name);
		if (n < sizeof up) {
			memcpy(up, name, n);
			up[n] = '\0';
			if (lsub_match(l, up)) {
				names_add(&l->ns, name, n, 0);
			}
		}
	}
	return l->ns.full;
}

/* see rumble.h */
void imap_lsub_run(const char *pat, const char *domain, const char *user, int utf8, struct buf *out)
{
	struct lsub l = {pat, utf8, {NULL, NULL, 0, 0}};
	mm_subscription_list(domain, user, lsub_collect, &l);
	for (size_t i = 0; i < l.ns.n; i++) {
		buf_printf(out, "* LSUB (%s) \".\" ", l.ns.flags[i] & N_SUB ? "" : "\\Noselect");
		imap_put_name(out, l.ns.v[i], utf8);
		buf_printf(out, "\r\n");
	}
	names_free(&l.ns);
}
