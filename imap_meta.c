/*
 * imap_meta.c - the METADATA extension (RFC 5464): GETMETADATA and
 * SETMETADATA over the metadata store (metadata.c), which the
 * Dovecot-style Lua objects share. imap.c parses the command's mailbox
 * and answers; this file reads the rest of the tokens and does the work.
 *
 * The mailbox "" holds the user's own entries (RFC 5464's server
 * entries; here they are per user, /shared/ ones too). Values are at most
 * MD_VALUE_MAX bytes; a command sets at most META_SET_MAX entries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

#define META_SET_MAX 64
#define META_GET_MAX 64
#define DEPTH_INFINITY 1000

static int tok_type(const struct imap_cmd *c, uint32_t i)
{
	return i < c->ntok ? c->tok[i].type : -1;
}

/* see rumble.h */
int imap_meta_options(const struct imap_cmd *c, uint32_t *pos, struct imap_meta_opts *o)
{
	o->maxsize = -1;
	o->depth = 0;
	o->utf8 = 0;
	if (tok_type(c, *pos) != IMAP_LPAREN) {
		return 0;
	}
	uint32_t i = *pos + 1;
	while (tok_type(c, i) == IMAP_ATOM && tok_type(c, i + 1) == IMAP_ATOM) {
		const char *k = imap_tok_str(c, i), *v = imap_tok_str(c, i + 1);
		char *end;
		long long n = strtoll(v, &end, 10);
		if (rl_strcasecmp(k, "MAXSIZE") == 0 && *v >= '0' && *v <= '9' && !*end) {
			o->maxsize = n;
		} else if (rl_strcasecmp(k, "DEPTH") == 0 && (!strcmp(v, "0") || !strcmp(v, "1"))) {
			o->depth = *v - '0';
		} else if (rl_strcasecmp(k, "DEPTH") == 0 && rl_strcasecmp(v, "infinity") == 0) {
			o->depth = DEPTH_INFINITY;
		} else {
			return -1;
		}
		i += 2;
	}
	if (tok_type(c, i) != IMAP_RPAREN || i == *pos + 1) {
		return -1;
	}
	*pos = i + 1;
	return 0;
}

/* The entry names of the command from pos: one astring, or a list. */
static int entry_names(const struct imap_cmd *c, uint32_t pos, const char **out, int max)
{
	int n = 0, list = tok_type(c, pos) == IMAP_LPAREN;
	uint32_t i = pos + (uint32_t)list;
	while ((tok_type(c, i) == IMAP_ATOM || tok_type(c, i) == IMAP_STRING) && n < max) {
		out[n] = imap_tok_str(c, i++);
		if (!md_valid_key(out[n++])) {
			return -1;
		}
		if (!list) {
			break;
		}
	}
	if (list && tok_type(c, i++) != IMAP_RPAREN) {
		return -1;
	}
	return n && i == c->ntok ? n : -1;
}

struct get {
	const char *domain, *user, *box, *entry;
	const struct imap_meta_opts *o;
	struct buf *out;
	int n;          /* entries written */
	size_t longest; /* the longest value left out for MAXSIZE */
};

static void put_entry(struct get *g, const char *key)
{
	char *v;
	size_t len;
	int rc = md_get(g->domain, g->user, g->box, key, &v, &len);
	if (rc == 1 && g->o->maxsize >= 0 && len > (size_t)g->o->maxsize) {
		g->longest = len > g->longest ? len : g->longest;
		free(v);
		return;
	}
	if (g->n++) {
		buf_append(g->out, " ", 1);
	}
	imap_put_string(g->out, key, strlen(key));
	buf_append(g->out, " ", 1);
	if (rc == 1 && memchr(v, '\0', len)) {
		buf_printf(g->out, "~{%zu}\r\n", len); /* RFC 5464: a value may be a literal8 */
		buf_append(g->out, v, len);
		free(v);
	} else if (rc == 1) {
		imap_put_string(g->out, v, len);
		free(v);
	} else {
		buf_append(g->out, "NIL", 3);
	}
}

/* Entries below the requested one, as deep as DEPTH says. */
static int put_child(const char *key, void *arg)
{
	struct get *g = arg;
	size_t n = strlen(g->entry);
	if (strlen(key) <= n || key[n] != '/') {
		return 0; /* the entry itself: written already */
	}
	int depth = 0;
	for (const char *p = key + n; *p; p++) {
		depth += *p == '/';
	}
	if (depth <= g->o->depth) {
		put_entry(g, key);
	}
	return 0;
}

/* see rumble.h */
int imap_meta_get(const struct imap_cmd *c, uint32_t pos, const struct imap_meta_opts *o,
        const char *domain, const char *user, const char *box, struct buf *out, char *resp,
        size_t len)
{
	const char *names[META_GET_MAX];
	int n = entry_names(c, pos, names, META_GET_MAX);
	if (n < 0) {
		snprintf(resp, len, "Invalid entry name or list");
		return -1;
	}
	struct buf list;
	buf_init(&list);
	struct get g = {domain, user, box, NULL, o, &list, 0, 0};
	for (int i = 0; i < n; i++) {
		g.entry = names[i];
		put_entry(&g, names[i]);
		if (o->depth > 0) {
			md_list(domain, user, box, names[i], put_child, &g);
		}
	}
	buf_printf(out, "* METADATA ");
	imap_put_name(out, box, o->utf8);
	buf_puts(out, " ("); /* not "%.*s": a value may hold a NUL */
	buf_append(out, list.data ? list.data : "", list.len);
	buf_puts(out, ")\r\n");
	buf_free(&list);
	resp[0] = '\0';
	if (g.longest) {
		snprintf(resp, len, "[METADATA LONGENTRIES %zu] ", g.longest);
	}
	return 0;
}

/* see rumble.h */
int imap_meta_set(const struct imap_cmd *c, uint32_t pos, const char *domain, const char *user,
        const char *box, char *resp, size_t len)
{
	uint32_t first = pos + 1, i = first;
	if (tok_type(c, pos) != IMAP_LPAREN) {
		snprintf(resp, len, "SETMETADATA needs a list of entries and values");
		return -1;
	}
	for (; tok_type(c, i) != IMAP_RPAREN; i += 2) {
		int vt = tok_type(c, i + 1);
		int nil = vt == IMAP_ATOM && rl_strcasecmp(imap_tok_str(c, i + 1), "NIL") == 0;
		if ((tok_type(c, i) != IMAP_ATOM && tok_type(c, i) != IMAP_STRING) ||
		        (vt != IMAP_STRING && !nil) || (i - first) / 2 >= META_SET_MAX) {
			snprintf(resp, len, "Bad SETMETADATA list (at most %d entries)", META_SET_MAX);
			return -1;
		}
		const char *name = imap_tok_str(c, i);
		if (!md_valid_key(name) || strlen(name) != c->tok[i].len) { /* a NUL in it */
			snprintf(resp, len, "Invalid entry name");
			return -1;
		}
		if (!nil && c->tok[i + 1].len > MD_VALUE_MAX) {
			snprintf(resp, len, "[METADATA MAXSIZE %d] Value too long", MD_VALUE_MAX);
			return -2;
		}
	}
	if (i + 1 != c->ntok) {
		snprintf(resp, len, "Junk after the list");
		return -1;
	}
	for (i = first; tok_type(c, i) != IMAP_RPAREN; i += 2) {
		const struct imap_token *v = &c->tok[i + 1];
		int nil = v->type == IMAP_ATOM;
		if (md_set(domain, user, box, imap_tok_str(c, i), nil ? NULL : c->text.data + v->off,
		            nil ? 0 : v->len) != 0) {
			snprintf(resp, len, "[METADATA TOOMANY] Cannot store more metadata");
			return -2;
		}
	}
	return 0;
}
