/*
 * imap_special.c - special-use folders (RFC 6154): the Drafts, Sent,
 * Trash, Junk and Archive folders every account gets (their names are
 * DraftsFolder, ... in rumble.conf), the attributes LIST shows on them,
 * and those a client gives a folder of its own with CREATE (USE (...)).
 *
 * A client's choice is kept as the folder's /private/specialuse metadata
 * entry (RFC 6154 section 4, the entry GETMETADATA shows too); it
 * replaces the configured use for that folder. Only the attributes of
 * RFC 6154 that name a real folder are taken: \All and \Flagged would be
 * virtual folders, which Rumble does not have.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

#define USES_MAX 1000 /* folders with a use, per user: more are not shown */
#define SPECIALUSE_KEY "/private/specialuse"

static const char *const attrs[SPECIAL_USES] = {
        "\\Drafts", "\\Sent", "\\Trash", "\\Junk", "\\Archive"};

/* see rumble.h */
void imap_special_make(const char *domain, const char *user)
{
	for (int i = 0; i < SPECIAL_USES; i++) {
		const char *name = conf.special_use[i];
		if (*name && mm_folder_create(domain, user, name) == 0) {
			mm_subscription_set(domain, user, name, 1);
			log_info("imap made %s for %s@%s", name, user, domain);
		}
	}
}

/* The index in attrs of the attribute a (any case), or -1. */
static int attr_index(const char *a, size_t n)
{
	for (int i = 0; i < SPECIAL_USES; i++) {
		if (strlen(attrs[i]) == n && rl_strncasecmp(attrs[i], a, n) == 0) {
			return i;
		}
	}
	return -1;
}

/* The attributes of the words of p (n bytes) in their canonical form into
 * out, space-separated; -1 on a word that is not one. */
static int canonical(const char *p, size_t n, char *out, size_t len)
{
	size_t at = 0;
	out[0] = '\0';
	while (n) {
		size_t w = 0;
		while (w < n && p[w] != ' ') {
			w++;
		}
		int i = w ? attr_index(p, w) : -2;
		if (i == -1) {
			return -1;
		}
		if (i >= 0 && !strstr(out, attrs[i])) {
			at += (size_t)snprintf(out + at, len - at, "%s%s", at ? " " : "", attrs[i]);
		}
		p += w + (w < n);
		n -= w + (w < n);
	}
	return 0;
}

static void uses_add(struct imap_uses *u, const char *folder, const char *a)
{
	for (size_t i = 0; i < u->n; i++) {
		if (strcmp(u->v[i].folder, folder) == 0) {
			rl_strlcpy(u->v[i].attrs, a, sizeof u->v[i].attrs);
			return;
		}
	}
	if (u->n < USES_MAX) {
		u->v = xrealloc(u->v, (u->n + 1) * sizeof *u->v);
		rl_strlcpy(u->v[u->n].folder, folder, sizeof u->v[u->n].folder);
		rl_strlcpy(u->v[u->n].attrs, a, sizeof u->v[u->n].attrs);
		u->n++;
	}
}

static int take_entry(const char *folder, const char *value, size_t len, void *arg)
{
	char a[IMAP_USES_MAX];
	if (*folder && canonical(value, len, a, sizeof a) == 0) {
		uses_add(arg, folder, a); /* "" (NIL set) takes the configured use away */
	}
	return 0;
}

/* see rumble.h */
void imap_uses_load(struct imap_uses *u, const char *domain, const char *user)
{
	u->v = NULL;
	u->n = 0;
	for (int i = 0; i < SPECIAL_USES; i++) {
		if (conf.special_use[i][0]) {
			uses_add(u, conf.special_use[i], attrs[i]);
		}
	}
	md_each_folder(domain, user, SPECIALUSE_KEY, take_entry, u);
}

/* see rumble.h */
const char *imap_uses_of(const struct imap_uses *u, const char *folder)
{
	for (size_t i = 0; i < u->n; i++) {
		if (strcmp(u->v[i].folder, folder) == 0) {
			return u->v[i].attrs[0] ? u->v[i].attrs : NULL;
		}
	}
	return NULL;
}

/* see rumble.h */
void imap_uses_free(struct imap_uses *u)
{
	xfree(u->v);
	u->v = NULL;
	u->n = 0;
}

static int tok_type(const struct imap_cmd *c, uint32_t i)
{
	return i < c->ntok ? c->tok[i].type : -1;
}

/* see rumble.h */
int imap_use_parse(const struct imap_cmd *c, uint32_t *pos, char *out, size_t len)
{
	uint32_t i = *pos;
	out[0] = '\0';
	if (tok_type(c, i) != IMAP_LPAREN) {
		return 0;
	}
	if (tok_type(c, i + 1) != IMAP_ATOM || rl_strcasecmp(imap_tok_str(c, i + 1), "USE") != 0 ||
	        tok_type(c, i + 2) != IMAP_LPAREN) {
		return -1;
	}
	size_t at = 0;
	for (i += 3; tok_type(c, i) == IMAP_ATOM; i++) {
		const char *a = imap_tok_str(c, i);
		int k = attr_index(a, strlen(a));
		if (k < 0) {
			return -2;
		}
		if (!strstr(out, attrs[k])) {
			at += (size_t)snprintf(out + at, len - at, "%s%s", at ? " " : "", attrs[k]);
		}
	}
	if (tok_type(c, i) != IMAP_RPAREN || tok_type(c, i + 1) != IMAP_RPAREN) {
		return -1;
	}
	*pos = i + 2;
	return 0;
}

/* see rumble.h */
int imap_use_set(const char *domain, const char *user, const char *folder, const char *uses)
{
	return md_set(domain, user, folder, SPECIALUSE_KEY, uses, strlen(uses));
}
