/*
 * sieve_run.c - the Sieve interpreter: runs a compiled script on one
 * message for one recipient and collects the actions (RFC 5228 with
 * fileinto, reject/ereject, envelope, imap4flags, variables, relational,
 * subaddress, copy, body, mailbox, vacation, date, index, duplicate and
 * editheader). Everything a run makes
 * lives in its arena, freed at the end; the work is bounded by
 * SIEVE_STEPS_MAX commands and tests and a budget of match steps.
 */
#include <string.h>

#include "sieve.h"

#define MATCH_BUDGET 20000000 /* character steps of :matches/:contains in one run */
#define CAPTURES 10           /* ${0}..${9} */

struct var {
	char *name, *value;
};

struct run {
	const struct sieve_input *in;
	struct sieve_result *r;
	unsigned req;
	long steps, budget;
	int stopped, failed, redirects;
	struct mime_msg m;
	int parsed;
	/* the message tests see: the input, or after editheader the edited
	 * header (hdr) and the input's body, composed in text */
	const char *mtext;
	size_t mlen;
	int edited, stale;
	struct buf hdr, text;
	const char *body;
	size_t body_len;
	char *flags; /* imap4flags' internal variable */
	struct var vars[SIEVE_VARS_MAX]; /* the current script's own */
	int nvars;
	/* include (RFC 6609): global variables, and the names the current
	 * script declared global */
	struct var globals[SIEVE_VARS_MAX];
	int nglobals;
	const char *gnames[SIEVE_VARS_MAX];
	int ngnames;
	int depth, returned, nincludes;
	char *active[SIEVE_INCLUDE_DEPTH + 1]; /* the scripts being run, "p:name" / "g:name" */
	char *done[SIEVE_INCLUDES_MAX];        /* the scripts included so far */
	char *match[CAPTURES]; /* match variables of the last :matches that matched */
	/* what the current :matches captured */
	char *cap[CAPTURES];
	void **mem;
	size_t nmem, capmem;
};

/* ---- the run's memory ---- */

static void *keep(struct run *x, void *p)
{
	if (x->nmem == x->capmem) {
		x->capmem = x->capmem ? x->capmem * 2 : 64;
		x->mem = xrealloc(x->mem, x->capmem * sizeof *x->mem);
	}
	x->mem[x->nmem++] = p;
	return p;
}

static char *sdup(struct run *x, const char *p, size_t n)
{
	char *d = keep(x, xmalloc(n + 1));
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static int fail(struct run *x, const char *what)
{
	if (!x->failed) {
		rl_strlcpy(x->r->error, what, sizeof x->r->error);
	}
	x->failed = 1;
	return -1;
}

/* ---- variables (RFC 5229) ---- */

static int is_global(struct run *x, const char *name, size_t n)
{
	for (int i = 0; i < x->ngnames; i++) {
		if (strlen(x->gnames[i]) == n && !rl_strncasecmp(x->gnames[i], name, n)) {
			return 1;
		}
	}
	return 0;
}

/* The variable name[0..n): the script's own, or a global one it declared. */
static struct var *var_find(struct run *x, const char *name, size_t n)
{
	int g = is_global(x, name, n);
	struct var *v = g ? x->globals : x->vars;
	for (int i = 0, nv = g ? x->nglobals : x->nvars; i < nv; i++) {
		if (strlen(v[i].name) == n && !rl_strncasecmp(v[i].name, name, n)) {
			return &v[i];
		}
	}
	return NULL;
}

/* var_find, or a new variable ("" until set); NULL when there are too many. */
static struct var *var_get(struct run *x, const char *name)
{
	size_t n = strlen(name);
	struct var *v = var_find(x, name, n);
	int g = is_global(x, name, n);
	int *nv = g ? &x->nglobals : &x->nvars;
	if (v || *nv == SIEVE_VARS_MAX) {
		return v;
	}
	v = g ? &x->globals[(*nv)++] : &x->vars[(*nv)++];
	v->name = sdup(x, name, n);
	v->value = "";
	return v;
}

static int ident_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

/* The value "${name}" at p[0..n) stands for, or NULL when it is not a
 * variable reference (it stays as written). */
static const char *var_ref(struct run *x, const char *p, size_t n)
{
	if (n > 0 && p[0] >= '0' && p[0] <= '9') {
		size_t k = 0;
		unsigned v = 0;
		while (k < n && p[k] >= '0' && p[k] <= '9' && v < 1000) {
			v = v * 10 + (unsigned)(p[k++] - '0');
		}
		if (k != n) {
			return NULL;
		}
		return v < CAPTURES && x->match[v] ? x->match[v] : "";
	}
	for (size_t k = 0; k < n; k++) {
		if (!ident_char(p[k], k == 0)) {
			return NULL; /* namespaces (a.b) are not known: as written */
		}
	}
	if (!n) {
		return NULL;
	}
	struct var *v = var_find(x, p, n);
	return v ? v->value : "";
}

/* s with its variables expanded (s itself without "variables"). */
static const char *expand(struct run *x, const char *s)
{
	if (!(x->req & SX_VARIABLES) || !strstr(s, "${")) {
		return s;
	}
	struct buf b;
	buf_init(&b);
	for (const char *p = s; *p;) {
		const char *open = strstr(p, "${");
		const char *close = open ? strchr(open + 2, '}') : NULL;
		if (!close) {
			buf_puts(&b, p);
			break;
		}
		const char *v = var_ref(x, open + 2, (size_t)(close - open - 2));
		buf_append(&b, p, (size_t)(open - p));
		if (v) {
			buf_puts(&b, v);
			p = close + 1;
		} else {
			buf_append(&b, "${", 2);
			p = open + 2;
		}
		if (b.len > SIEVE_STRING_MAX) {
			b.len = SIEVE_STRING_MAX; /* bounded: the rest is cut */
			break;
		}
	}
	char *out = sdup(x, b.data ? b.data : "", b.data ? b.len : 0);
	buf_free(&b);
	return out;
}

static int utf8_len(const char *s)
{
	unsigned char c = (unsigned char)*s;
	int n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	for (int i = 1; i < n; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			return 1;
		}
	}
	return n;
}

static size_t utf8_count(const char *s)
{
	size_t n = 0;
	for (; *s; s += utf8_len(s)) {
		n++;
	}
	return n;
}

static char *modify(struct run *x, const char *v, uint32_t mods)
{
	char *s = sdup(x, v, strlen(v));
	for (char *p = s; (mods & (SV_MOD_LOWER | SV_MOD_UPPER)) && *p; p++) {
		if (mods & SV_MOD_LOWER) {
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		} else {
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		}
	}
	if ((mods & SV_MOD_LOWERFIRST) && *s >= 'A' && *s <= 'Z') {
		*s = (char)(*s + 32);
	}
	if ((mods & SV_MOD_UPPERFIRST) && *s >= 'a' && *s <= 'z') {
		*s = (char)(*s - 32);
	}
	if (mods & SV_MOD_QUOTEWILDCARD) {
		struct buf b;
		buf_init(&b);
		for (const char *p = s; *p; p++) {
			if (*p == '*' || *p == '?' || *p == '\\') {
				buf_append(&b, "\\", 1);
			}
			buf_append(&b, p, 1);
		}
		s = sdup(x, b.data ? b.data : "", b.len);
		buf_free(&b);
	}
	if (mods & SV_MOD_LENGTH) {
		char num[24];
		snprintf(num, sizeof num, "%zu", utf8_count(s));
		s = sdup(x, num, strlen(num));
	}
	return s;
}

static int do_set(struct run *x, const struct sv_node *n)
{
	const char *name = n->pos[0]->s[0];
	const char *value = modify(x, expand(x, n->pos[1]->s[0]), n->mods);
	struct var *v = var_get(x, name);
	if (!v) {
		return fail(x, "too many variables");
	}
	v->value = (char *)value;
	return 0;
}

/* ---- comparing (comparators, match types, relational) ---- */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int same_char(int cmp, char a, char b)
{
	return cmp == SV_OCTET ? a == b : lower((unsigned char)a) == lower((unsigned char)b);
}

/* i;ascii-numeric: the leading digits as a number, none = infinity. */
static int numeric_order(const char *a, const char *b)
{
	int ia = !(*a >= '0' && *a <= '9'), ib = !(*b >= '0' && *b <= '9');
	if (ia || ib) {
		return ia - ib;
	}
	while (*a == '0') {
		a++;
	}
	while (*b == '0') {
		b++;
	}
	size_t na = strspn(a, "0123456789"), nb = strspn(b, "0123456789");
	if (na != nb) {
		return na < nb ? -1 : 1;
	}
	int c = strncmp(a, b, na);
	return c < 0 ? -1 : c > 0;
}

static int order(int cmp, const char *a, const char *b)
{
	if (cmp == SV_NUMERIC) {
		return numeric_order(a, b);
	}
	for (;; a++, b++) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (cmp == SV_CASEMAP) {
			ca = lower(ca);
			cb = lower(cb);
		}
		if (ca != cb || !ca) {
			return ca < cb ? -1 : ca > cb;
		}
	}
}

static int rel_holds(int rel, int o)
{
	switch (rel) {
	case SV_GT: return o > 0;
	case SV_GE: return o >= 0;
	case SV_LT: return o < 0;
	case SV_LE: return o <= 0;
	case SV_EQ: return o == 0;
	default: return o != 0;
	}
}

static int contains(struct run *x, int cmp, const char *s, const char *key)
{
	size_t n = strlen(s), k = strlen(key);
	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && same_char(cmp, s[i + j], key[j])) {
			j++;
		}
		x->budget -= (long)j + 1;
		if (j == k) {
			return 1;
		}
		if (x->budget < 0) {
			return fail(x, "matching took too long");
		}
	}
	return 0;
}

/* :matches with * and ? (one character; \ quotes the next), each
 * wildcard as short as it can be, left to right; what they matched goes
 * to x->cap[1..]. */
static int glob(struct run *x, int cmp, const char *s, const char *pat)
{
	const char *si = s, *pi = pat, *star_p = NULL, *star_s = NULL;
	const char *cs[CAPTURES] = {0}, *ce[CAPTURES] = {0};
	int k = 1, star_k = 0;
	while (*si || *pi) {
		if (--x->budget < 0) {
			return fail(x, "matching took too long");
		}
		if (*pi == '*') {
			star_p = pi++;
			star_s = si;
			star_k = k;
			if (k < CAPTURES) {
				cs[k] = ce[k] = si;
			}
			k++;
			continue;
		}
		if (*si && *pi == '?') {
			if (k < CAPTURES) {
				cs[k] = si;
				ce[k] = si + utf8_len(si);
			}
			k++;
			si += utf8_len(si);
			pi++;
			continue;
		}
		const char *lit = *pi == '\\' && pi[1] ? pi + 1 : pi;
		if (*si && *lit && same_char(cmp, *si, *lit)) {
			si++;
			pi = lit + 1;
			continue;
		}
		if (!star_p || !*star_s) {
			return 0;
		}
		star_s += utf8_len(star_s);
		si = star_s;
		pi = star_p + 1;
		k = star_k + 1;
		if (star_k < CAPTURES) {
			ce[star_k] = star_s;
		}
	}
	x->cap[0] = (char *)s;
	for (int i = 1; i < CAPTURES; i++) {
		x->cap[i] = i < k && cs[i] ? sdup(x, cs[i], (size_t)(ce[i] - cs[i])) : NULL;
	}
	return 1;
}

/* One value against one key with the node's match type. */
static int match_one(struct run *x, const struct sv_node *n, const char *v, const char *key)
{
	switch (n->match) {
	case SV_CONTAINS:
		return contains(x, n->cmp, v, key);
	case SV_MATCHES:
		return glob(x, n->cmp, v, key);
	case SV_VALUE:
		return rel_holds(n->rel, order(n->cmp, v, key));
	default:
		return order(n->cmp, v, key) == 0;
	}
}

/* The values against the keys: 1 when one matches (with :count, when
 * the number of values does); sets the match variables. */
static int match_values(struct run *x, const struct sv_node *n, const char **v, int nv,
	const struct sv_arg *keys)
{
	if (n->match == SV_COUNT) {
		char count[24];
		snprintf(count, sizeof count, "%d", nv);
		for (int k = 0; k < keys->n; k++) {
			if (rel_holds(n->rel, order(n->cmp, count, expand(x, keys->s[k])))) {
				return 1;
			}
		}
		return 0;
	}
	for (int i = 0; i < nv; i++) {
		for (int k = 0; k < keys->n; k++) {
			int m = match_one(x, n, v[i], expand(x, keys->s[k]));
			if (m < 0) {
				return -1;
			}
			if (m && n->match == SV_MATCHES && (x->req & SX_VARIABLES)) {
				x->cap[0] = sdup(x, v[i], strlen(v[i]));
				memcpy(x->match, x->cap, sizeof x->match);
			}
			if (m) {
				return 1;
			}
		}
	}
	return 0;
}

/* ---- the message ---- */

static struct mime_msg *msg(struct run *x)
{
	if (x->stale) { /* edited since: compose the new message */
		buf_reset(&x->text);
		buf_append(&x->text, x->hdr.data ? x->hdr.data : "", x->hdr.len);
		buf_append(&x->text, "\r\n", 2);
		buf_append(&x->text, x->body, x->body_len);
		x->mtext = x->text.data;
		x->mlen = x->text.len;
		x->stale = 0;
		if (x->parsed) {
			mime_free(&x->m);
			x->parsed = 0;
		}
	}
	if (!x->parsed) {
		mime_parse(&x->m, x->mtext, x->mlen);
		x->parsed = 1;
	}
	return &x->m;
}

/* A field's value as tests see it: unfolded, RFC 2047 decoded, without
 * the blanks around it. */
static const char *field_value(struct run *x, const char *value, size_t len)
{
	struct buf raw, dec;
	buf_init(&raw);
	buf_init(&dec);
	for (size_t i = 0; i < len; i++) {
		if (value[i] != '\r' && value[i] != '\n') {
			buf_append(&raw, &value[i], 1);
		}
	}
	mime_decode_words(raw.data ? raw.data : "", raw.len, &dec);
	size_t a = 0, e = dec.len;
	while (a < e && (dec.data[a] == ' ' || dec.data[a] == '\t')) {
		a++;
	}
	while (e > a && (dec.data[e - 1] == ' ' || dec.data[e - 1] == '\t')) {
		e--;
	}
	const char *out = sdup(x, dec.data ? dec.data + a : "", e - a);
	buf_free(&raw);
	buf_free(&dec);
	return out;
}

static void push(struct run *x, const char ***v, int *nv, int *cap, const char *s);

/* Appends to *v the decoded values of every header field called name. */
static void header_values(struct run *x, const char *name, const char ***v, int *nv, int *cap)
{
	struct mime_headers it;
	struct mime_header h;
	mime_headers_part(&it, msg(x), NULL);
	while (mime_headers_next(&it, &h)) {
		if (h.name_len == strlen(name) && !rl_strncasecmp(h.name, name, h.name_len)) {
			push(x, v, nv, cap, field_value(x, h.value, h.value_len));
		}
	}
}

/* The part of an address the node asks for; NULL when it has none
 * (:detail without a separator). */
static const char *addr_part(struct run *x, const struct sv_node *n, const char *local,
	const char *domain)
{
	const char *plus = strchr(local, '+');
	switch (n->part) {
	case SV_LOCALPART:
		return local;
	case SV_DOMAIN:
		return domain;
	case SV_USER:
		return plus ? sdup(x, local, (size_t)(plus - local)) : local;
	case SV_DETAIL:
		return plus ? plus + 1 : NULL;
	default: {
		if (!*domain) {
			return local;
		}
		size_t ln = strlen(local), dn = strlen(domain);
		char *all = keep(x, xmalloc(ln + dn + 2));
		memcpy(all, local, ln);
		all[ln] = '@';
		memcpy(all + ln + 1, domain, dn + 1);
		return all;
	}
	}
}

static void push(struct run *x, const char ***v, int *nv, int *cap, const char *s)
{
	if (!s) {
		return;
	}
	if (*nv == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		const char **nvv = keep(x, xmalloc((size_t)*cap * sizeof *nvv));
		if (*nv) {
			memcpy(nvv, *v, (size_t)*nv * sizeof *nvv);
		}
		*v = nvv;
	}
	(*v)[(*nv)++] = s;
}

/* The addresses in the headers' values. */
static void address_values(struct run *x, const struct sv_node *n, const char **hv, int nh,
	const char ***v, int *nv, int *cap)
{
	for (int i = 0; i < nh && *nv < MIME_ADDR_MAX; i++) {
		struct mime_addr *list = mime_addr_parse(hv[i], strlen(hv[i]), 1);
		for (struct mime_addr *a = list; a; a = a->next) {
			const char *p = a->kind == MIME_ADDR_MAILBOX ? addr_part(x, n, a->mailbox, a->host)
			                                             : NULL;
			push(x, v, nv, cap, p ? sdup(x, p, strlen(p)) : NULL); /* list is freed */
		}
		mime_addr_free(list);
	}
}

static void envelope_values(struct run *x, const struct sv_node *n, const char *part,
	const char ***v, int *nv, int *cap)
{
	const char *addr = !rl_strcasecmp(part, "from") ? x->in->from
	                   : !rl_strcasecmp(part, "to") ? x->in->to
	                                                : NULL;
	if (!addr) {
		return;
	}
	const char *at = strrchr(addr, '@');
	if (!*addr) {
		push(x, v, nv, cap, n->part == SV_ALL || n->part == SV_LOCALPART ? "" : NULL);
		return;
	}
	const char *local = at ? sdup(x, addr, (size_t)(at - addr)) : addr;
	push(x, v, nv, cap, addr_part(x, n, local, at ? at + 1 : ""));
}

/* body: the text of the parts the transform takes. */
static void body_values(struct run *x, const struct sv_node *n, const char ***v, int *nv,
	int *cap)
{
	struct mime_msg *m = msg(x);
	const struct mime_part *root = m->root;
	if (n->body == SV_BODY_RAW) {
		size_t off = root->body_off < x->mlen ? root->body_off : x->mlen;
		push(x, v, nv, cap, sdup(x, x->mtext + off, x->mlen - off));
		return;
	}
	for (const struct mime_part *p = root; p;) {
		int leaf = !(p->flags & (MIME_MULTIPART | MIME_MESSAGE));
		int want = n->body == SV_BODY_TEXT ? mime_part_is(p, "text", NULL) : 0;
		for (int i = 0; n->body == SV_BODY_CONTENT && i < n->types->n; i++) {
			const char *t = expand(x, n->types->s[i]);
			const char *slash = strchr(t, '/');
			char type[64];
			snprintf(type, sizeof type, "%.*s", slash ? (int)(slash - t) : (int)strlen(t), t);
			rl_lower(type);
			want |= !*t || mime_part_is(p, type, slash ? slash + 1 : NULL);
		}
		if (leaf && want) {
			struct buf out;
			buf_init(&out);
			mime_body_text(m, p, &out);
			push(x, v, nv, cap, sdup(x, out.data ? out.data : "", out.len));
			buf_free(&out);
		}
		/* depth first */
		if (p->child) {
			p = p->child;
			continue;
		}
		while (p && !p->next) {
			p = p->parent;
		}
		p = p ? p->next : NULL;
	}
}

/* :index N [:last] (RFC 5260 section 6): of the fields' values (in the
 * order of the names asked for), only the Nth, counted from the end with
 * :last. */
static void pick_index(const struct sv_node *n, const char ***v, int *nv)
{
	if (!n->index) {
		return;
	}
	if (n->index > (uint64_t)*nv) {
		*nv = 0;
		return;
	}
	int k = n->last ? *nv - (int)n->index : (int)n->index - 1;
	(*v)[0] = (*v)[k];
	*nv = 1;
}

/* ---- dates (RFC 5260) ---- */

/* "+hhmm" / "-hhmm" as minutes east of UTC; -1 when s is not one (then
 * the local zone applies, as in Pigeonhole). */
static int zone_parse(const char *s, int *minutes)
{
	if ((s[0] != '+' && s[0] != '-') || strlen(s) != 5 || strspn(s + 1, "0123456789") != 4) {
		return -1;
	}
	int m = ((s[1] - '0') * 10 + (s[2] - '0')) * 60 + (s[3] - '0') * 10 + (s[4] - '0');
	*minutes = s[0] == '-' ? -m : m;
	return 0;
}

/* Days since 1970-01-01 to year, month, day (the civil calendar). */
static void civil(int64_t days, int *y, int *m, int *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	int64_t doe = days - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* The date part of time t seen in zone (minutes east), as RFC 5260
 * section 4.2 writes it; NULL for an unknown part. */
static const char *date_part(struct run *x, const char *part, int64_t t, int zone)
{
	static const char *wd[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char *mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
		"Oct", "Nov", "Dec"};
	int64_t lt = t + (int64_t)zone * 60;
	int64_t days = (lt >= 0 ? lt : lt - 86399) / 86400, sec = lt - days * 86400;
	int y, m, d, hh = (int)(sec / 3600), mm = (int)(sec / 60 % 60), ss = (int)(sec % 60);
	int az = zone < 0 ? -zone : zone, w = (int)(((days % 7) + 7) % 7);
	civil(days, &y, &m, &d);
	static const char *parts[] = {"year", "month", "day", "date", "julian", "hour", "minute",
		"second", "time", "zone", "weekday", "iso8601", "std11"};
	int k = 0;
	while (k < 13 && rl_strcasecmp(part, parts[k]) != 0) {
		k++;
	}
	char z[16], o[64];
	snprintf(z, sizeof z, "%c%02d%02d", zone < 0 ? '-' : '+', az / 60, az % 60);
	switch (k) {
	case 0: snprintf(o, sizeof o, "%04d", y); break;
	case 1: snprintf(o, sizeof o, "%02d", m); break;
	case 2: snprintf(o, sizeof o, "%02d", d); break;
	case 3: snprintf(o, sizeof o, "%04d-%02d-%02d", y, m, d); break;
	case 4: snprintf(o, sizeof o, "%lld", (long long)(days + 40587)); break; /* MJD */
	case 5: snprintf(o, sizeof o, "%02d", hh); break;
	case 6: snprintf(o, sizeof o, "%02d", mm); break;
	case 7: snprintf(o, sizeof o, "%02d", ss); break;
	case 8: snprintf(o, sizeof o, "%02d:%02d:%02d", hh, mm, ss); break;
	case 9: snprintf(o, sizeof o, "%s", z); break;
	case 10: snprintf(o, sizeof o, "%d", (w + 4) % 7); break; /* 0 is Sunday */
	case 11: /* UTC as Z, else +hh:mm */
		snprintf(o, sizeof o, "%04d-%02d-%02dT%02d:%02d:%02d%s%.3s%s%s", y, m, d, hh, mm, ss,
			zone ? "" : "Z", zone ? z : "", zone ? ":" : "", zone ? z + 3 : "");
		break;
	case 12:
		snprintf(o, sizeof o, "%s, %02d %s %04d %02d:%02d:%02d %s", wd[w], d, mon[m - 1], y, hh,
			mm, ss, z);
		break;
	default:
		return NULL;
	}
	return sdup(x, o, strlen(o));
}

/* The zone a date test shows its date in. */
static int date_zone(const struct sv_node *n, const char *zone, int64_t t, int original)
{
	int z;
	if (n->origzone) {
		return original;
	}
	return zone && zone_parse(zone, &z) == 0 ? z : os_timezone_offset(t);
}

/* date: the date in the (first, or :index'd) field; Received's after
 * its last ';'. currentdate: now. */
static void date_values(struct run *x, const struct sv_node *n, const char ***v, int *nv,
	int *cap)
{
	const char *zone = n->zone ? expand(x, n->zone->s[0]) : NULL;
	int64_t t = x->in->now ? x->in->now : os_time();
	int orig = 0;
	const char *part = expand(x, n->pos[n->npos - 2]->s[0]);
	if (n->id == SV_T_DATE) {
		const char **hv = NULL;
		int nh = 0, hcap = 0;
		const char *name = expand(x, n->pos[0]->s[0]);
		header_values(x, name, &hv, &nh, &hcap);
		pick_index(n, &hv, &nh);
		if (!nh) {
			return;
		}
		const char *d = hv[0], *semi = strrchr(d, ';');
		if (!rl_strcasecmp(name, "received")) {
			d = semi ? semi + 1 : "";
		}
		if (mime_date_parse(d, strlen(d), &t, &orig) != 0) {
			return;
		}
	}
	push(x, v, nv, cap, date_part(x, part, t, date_zone(n, zone, t, orig)));
}

static struct sieve_action *add_action(struct run *x, enum sieve_kind kind, const char *arg);

/* ---- duplicate (RFC 7352) ---- */

/* Whether the message's ID (Message-ID, :header's first field or
 * :uniqueid) was seen under this handle; the key is tracked as an
 * action the caller commits once the message is delivered. No ID:
 * false, nothing tracked. */
static int test_duplicate(struct run *x, const struct sv_node *n)
{
	const char *id = n->uniqueid ? expand(x, n->uniqueid->s[0]) : NULL;
	const char *handle = n->handle ? expand(x, n->handle->s[0]) : NULL;
	if (!id) {
		const char **v = NULL;
		int nv = 0, cap = 0;
		header_values(x, n->header ? expand(x, n->header->s[0]) : "message-id", &v, &nv, &cap);
		if (!nv) {
			return 0;
		}
		id = v[0];
	}
	struct buf b;
	char key[65];
	buf_init(&b);
	buf_printf(&b, "%s\n%s\n%s", handle ? "h" : "-", handle ? handle : "", id);
	crypto_sha256_hex(b.data, b.len, key);
	buf_free(&b);
	for (int i = 0; i < x->r->n; i++) {
		const struct sieve_action *o = &x->r->v[i];
		if (o->kind == SA_DUPLICATE && !strcmp(o->arg, key) && o->last == n->last) {
			return o->create; /* the same test again: the same answer */
		}
	}
	int seen = x->in->seen ? x->in->seen(x->in->arg, key) : 0;
	struct sieve_action *a = add_action(x, SA_DUPLICATE, key);
	if (!a) {
		return -1;
	}
	a->copy = 1; /* tracking takes nothing from the implicit keep */
	a->create = seen; /* the answer, for a test of the same key */
	a->last = n->last;
	a->seconds = n->seconds >= 0 ? n->seconds : SIEVE_DUPLICATE_DEFAULT;
	a->handle = handle ? xstrdup(handle) : NULL;
	return seen;
}

/* ---- flags (RFC 5232) ---- */

/* 1 when the space-separated set s has flag f[0..n), in any case. */
static int flags_has(const char *s, const char *f, size_t n)
{
	for (const char *p = s ? s : ""; *p;) {
		size_t w = strcspn(p, " ");
		if (w == n && !rl_strncasecmp(p, f, n)) {
			return 1;
		}
		p += w + (p[w] == ' ');
	}
	return 0;
}

/* Appends each word of s to b that is not there and not in except
 * (system flags lower case, as Pigeonhole keeps them). */
static void flags_add(struct buf *b, const char *s, const char *except)
{
	for (const char *p = s; *p;) {
		p += strspn(p, " \t");
		size_t w = strcspn(p, " \t");
		if (!w) {
			break;
		}
		char f[256];
		snprintf(f, sizeof f, "%.*s", (int)(w < 255 ? w : 255), p);
		p += w;
		if (f[0] == '\\') {
			rl_lower(f);
		}
		if (!flags_has(b->data, f, strlen(f)) && !flags_has(except, f, strlen(f))) {
			if (b->len) {
				buf_append(b, " ", 1);
			}
			buf_puts(b, f);
		}
	}
}

/* b's set as Pigeonhole orders it: system flags first, then keywords,
 * each in the order they came. */
static char *flags_done(struct run *x, struct buf *b)
{
	struct buf o;
	buf_init(&o);
	for (int sys = 1; sys >= 0; sys--) {
		for (const char *p = b->data ? b->data : ""; *p;) {
			size_t w = strcspn(p, " ");
			if ((*p == '\\') == sys) {
				if (o.len) {
					buf_append(&o, " ", 1);
				}
				buf_append(&o, p, w);
			}
			p += w + (p[w] == ' ');
		}
	}
	char *out = sdup(x, o.data ? o.data : "", o.len);
	buf_free(&o);
	buf_free(b);
	return out;
}

/* The words of list's strings as one set. */
static char *flags_list(struct run *x, const struct sv_arg *list)
{
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < list->n; i++) {
		flags_add(&b, expand(x, list->s[i]), NULL);
	}
	return flags_done(x, &b);
}

/* setflag, addflag, removeflag on base: the new set. */
static char *flags_change(struct run *x, int id, const char *base, const struct sv_arg *list)
{
	const char *given = flags_list(x, list);
	struct buf b;
	buf_init(&b);
	if (id == SV_C_SETFLAG) {
		flags_add(&b, given, NULL);
	} else if (id == SV_C_ADDFLAG) {
		flags_add(&b, base ? base : "", NULL);
		flags_add(&b, given, NULL);
	} else {
		flags_add(&b, base ? base : "", given);
	}
	return flags_done(x, &b);
}

/* The variable a flag command or hasflag names (NULL: the internal one). */
static char **flag_var(struct run *x, const char *name)
{
	if (!name) {
		return &x->flags;
	}
	struct var *v = var_get(x, name);
	return v ? &v->value : &x->flags;
}

/* ---- tests ---- */

static int test(struct run *x, const struct sv_node *n);

static int test_strings(struct run *x, const struct sv_node *n)
{
	const char **v = NULL;
	int nv = 0, cap = 0;
	const struct sv_arg *names = n->pos[0];
	switch (n->id) {
	case SV_T_HEADER:
		for (int i = 0; i < names->n; i++) {
			header_values(x, expand(x, names->s[i]), &v, &nv, &cap);
		}
		pick_index(n, &v, &nv);
		break;
	case SV_T_ADDRESS: {
		const char **hv = NULL;
		int nh = 0, hcap = 0;
		for (int i = 0; i < names->n; i++) {
			header_values(x, expand(x, names->s[i]), &hv, &nh, &hcap);
		}
		pick_index(n, &hv, &nh);
		address_values(x, n, hv, nh, &v, &nv, &cap);
		break;
	}
	case SV_T_ENVELOPE:
		for (int i = 0; i < names->n; i++) {
			envelope_values(x, n, expand(x, names->s[i]), &v, &nv, &cap);
		}
		break;
	case SV_T_STRING:
		for (int i = 0; i < names->n; i++) {
			const char *s = expand(x, names->s[i]);
			if (*s || n->match != SV_COUNT) {
				push(x, &v, &nv, &cap, s);
			}
		}
		break;
	case SV_T_DATE:
	case SV_T_CURRENTDATE:
		date_values(x, n, &v, &nv, &cap);
		return match_values(x, n, v, nv, n->pos[n->npos - 1]);
	case SV_T_BODY:
		body_values(x, n, &v, &nv, &cap);
		return match_values(x, n, v, nv, n->pos[0]);
	default: /* hasflag */
		for (int i = 0; n->npos == 2 && i < names->n; i++) {
			const char *s = *flag_var(x, expand(x, names->s[i]));
			for (const char *p = s; *p;) {
				size_t w = strcspn(p, " ");
				push(x, &v, &nv, &cap, sdup(x, p, w));
				p += w + (p[w] == ' ');
			}
		}
		for (const char *p = n->npos == 2 ? "" : x->flags ? x->flags : ""; *p;) {
			size_t w = strcspn(p, " ");
			push(x, &v, &nv, &cap, sdup(x, p, w));
			p += w + (p[w] == ' ');
		}
		return match_values(x, n, v, nv, n->pos[n->npos - 1]);
	}
	return match_values(x, n, v, nv, n->pos[1]);
}

static int test_exists(struct run *x, const struct sv_node *n)
{
	for (int i = 0; i < n->pos[0]->n; i++) {
		const char **v = NULL;
		int nv = 0, cap = 0;
		header_values(x, expand(x, n->pos[0]->s[i]), &v, &nv, &cap);
		if (!nv) {
			return 0;
		}
	}
	return 1;
}

static int test_list(struct run *x, const struct sv_node *n, int all)
{
	for (int i = 0; i < n->ntests; i++) {
		int t = test(x, n->tests[i]);
		if (t < 0 || t != all) {
			return t;
		}
	}
	return all;
}

static int folder_exists(struct run *x, const char *name)
{
	if (!rl_strcasecmp(name, "INBOX")) {
		return 1;
	}
	return x->in->folder_exists ? x->in->folder_exists(x->in->arg, name) : 0;
}

/* 1 true, 0 false, -1 a run-time error. */
static int test(struct run *x, const struct sv_node *n)
{
	if (++x->steps > SIEVE_STEPS_MAX) {
		return fail(x, "too many steps");
	}
	switch (n->id) {
	case SV_T_TRUE:
		return 1;
	case SV_T_FALSE:
		return 0;
	case SV_T_NOT: {
		int t = test(x, n->tests[0]);
		return t < 0 ? t : !t;
	}
	case SV_T_ALLOF:
		return test_list(x, n, 1);
	case SV_T_ANYOF:
		return test_list(x, n, 0);
	case SV_T_EXISTS:
		return test_exists(x, n);
	case SV_T_SIZE:
		return n->over == 1 ? x->in->size > n->pos[0]->num : x->in->size < n->pos[0]->num;
	case SV_T_DUPLICATE:
		return test_duplicate(x, n);
	case SV_T_MAILBOXEXISTS:
		for (int i = 0; i < n->pos[0]->n; i++) {
			if (!folder_exists(x, expand(x, n->pos[0]->s[i]))) {
				return 0;
			}
		}
		return 1;
	default:
		return test_strings(x, n);
	}
}

/* ---- actions ---- */

static struct sieve_action *add_action(struct run *x, enum sieve_kind kind, const char *arg)
{
	struct sieve_result *r = x->r;
	if (r->n == SIEVE_ACTIONS_MAX) {
		fail(x, "too many actions");
		return NULL;
	}
	r->v = xrealloc(r->v, (size_t)(r->n + 1) * sizeof *r->v);
	struct sieve_action *a = &r->v[r->n++];
	memset(a, 0, sizeof *a);
	a->kind = kind;
	a->arg = xstrdup(arg);
	return a;
}

static int same_folder(const char *a, const char *b)
{
	return !strcmp(a, b) || (!rl_strcasecmp(a, "INBOX") && !rl_strcasecmp(b, "INBOX"));
}

/* keep and fileinto: one store per folder (RFC 5228 2.10.3). */
static int store(struct run *x, const struct sv_node *n, const char *folder)
{
	const char *flags = n->flags ? flags_list(x, n->flags) : x->flags;
	for (int i = 0; i < x->r->n; i++) {
		struct sieve_action *o = &x->r->v[i];
		if ((o->kind == SA_KEEP || o->kind == SA_FILEINTO) && same_folder(o->arg, folder)) {
			o->copy &= n->copy;
			return 0;
		}
	}
	struct sieve_action *a = add_action(x, n->id == SV_C_KEEP ? SA_KEEP : SA_FILEINTO, folder);
	if (!a) {
		return -1;
	}
	a->flags = flags && *flags ? xstrdup(flags) : NULL;
	a->copy = n->copy;
	a->create = n->create;
	return 0;
}

static int redirect(struct run *x, const struct sv_node *n, const char *to)
{
	if (!strchr(to, '@') || strpbrk(to, " \t\r\n<>")) {
		return fail(x, "redirect: not an address");
	}
	for (int i = 0; i < x->r->n; i++) {
		if (x->r->v[i].kind == SA_REDIRECT && !rl_strcasecmp(x->r->v[i].arg, to)) {
			return 0;
		}
	}
	if (++x->redirects > SIEVE_REDIRECTS_MAX) {
		return fail(x, "too many redirects");
	}
	struct sieve_action *a = add_action(x, SA_REDIRECT, to);
	if (a) {
		a->copy = n->copy;
	}
	return a ? 0 : -1;
}

static int vacation(struct run *x, const struct sv_node *n)
{
	for (int i = 0; i < x->r->n; i++) {
		if (x->r->v[i].kind == SA_VACATION) {
			return fail(x, "more than one vacation action");
		}
	}
	struct sieve_action *a = add_action(x, SA_VACATION, expand(x, n->pos[0]->s[0]));
	if (!a) {
		return -1;
	}
	a->seconds = n->seconds >= 0 ? n->seconds : 7 * 86400;
	if (a->seconds < 86400 && !(x->req & SX_VACATION_SECONDS)) {
		a->seconds = 86400; /* :days 0: a day, as Pigeonhole's minimum */
	}
	a->subject = n->subject ? xstrdup(expand(x, n->subject->s[0])) : NULL;
	a->from = n->from ? xstrdup(expand(x, n->from->s[0])) : NULL;
	a->handle = n->handle ? xstrdup(expand(x, n->handle->s[0])) : NULL;
	a->mime = n->mime;
	if (n->addresses) {
		struct buf b;
		buf_init(&b);
		for (int i = 0; i < n->addresses->n; i++) {
			buf_printf(&b, "%s%s", i ? " " : "", expand(x, n->addresses->s[i]));
		}
		a->addresses = b.data ? b.data : xstrdup("");
	}
	return 0;
}

/* ---- editheader (RFC 5293) ---- */

/* Fields scripts may not delete (RFC 5293 section 5; Pigeonhole lets
 * them be added). */
static int protected_field(const char *name)
{
	return !rl_strcasecmp(name, "received") || !rl_strcasecmp(name, "auto-submitted");
}

/* The first edit takes the message's header fields into x->hdr. */
static void edit_begin(struct run *x)
{
	if (x->edited) {
		return;
	}
	const struct mime_part *root = msg(x)->root;
	size_t off = root->body_off < x->in->len ? root->body_off : x->in->len, end = off;
	const char *m = x->in->msg;
	if (end >= 2 && m[end - 1] == '\n' && m[end - 2] == '\n') {
		end--;
	} else if (end >= 4 && !memcmp(m + end - 4, "\r\n\r\n", 4)) {
		end -= 2;
	}
	buf_append(&x->hdr, m, end);
	if (x->hdr.len && x->hdr.data[x->hdr.len - 1] != '\n') {
		buf_append(&x->hdr, "\r\n", 2);
	}
	x->body = m + off;
	x->body_len = x->in->len - off;
	x->edited = 1;
}

/* name: value as field lines, folded before a blank where a line would
 * pass 78 columns. */
static void fold_field(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "%s: ", name);
	size_t col = strlen(name) + 2;
	for (const char *p = value; *p;) {
		size_t w = strspn(p, " \t"); /* a word: the blanks before it and its text */
		w += strcspn(p + w, " \t");
		if (col + w > 78 && p != value && (*p == ' ' || *p == '\t')) {
			buf_append(b, "\r\n", 2);
			col = 0;
		}
		buf_append(b, p, w);
		col += w;
		p += w;
	}
	buf_append(b, "\r\n", 2);
}

static int addheader(struct run *x, const struct sv_node *n)
{
	const char *name = expand(x, n->pos[0]->s[0]);
	const char *given = expand(x, n->pos[1]->s[0]);
	char *value = sdup(x, given, strlen(given));
	if (!sieve_field_name_ok(name)) {
		return fail(x, "addheader: invalid header name");
	}
	/* a line end before a blank folds (unfolded here, folded again
	 * below); before anything else it ends the value, as in Pigeonhole */
	char *o = value;
	for (const char *p = value; *p; p++) {
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t') {
			break;
		}
		if (*p != '\r' && *p != '\n') {
			*o++ = *p;
		}
	}
	*o = '\0';
	edit_begin(x);
	struct buf f;
	buf_init(&f);
	fold_field(&f, name, value);
	if (x->hdr.len + f.len > SIEVE_HEADER_MAX) {
		buf_free(&f);
		return fail(x, "addheader: the header grew too large");
	}
	if (n->last) {
		buf_append(&x->hdr, f.data, f.len);
	} else {
		buf_append(&f, x->hdr.data ? x->hdr.data : "", x->hdr.len);
		buf_reset(&x->hdr);
		buf_append(&x->hdr, f.data, f.len);
	}
	buf_free(&f);
	x->stale = 1;
	return 0;
}

/* The end of the field that starts at p (its continuation lines too). */
static const char *field_end(const char *p, const char *end)
{
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			return end;
		}
		p = nl + 1;
		if (p >= end || (*p != ' ' && *p != '\t')) {
			return p;
		}
	}
}

/* 1 when the field at p..e is called name; *value is what follows ':'. */
static int field_is(const char *p, const char *e, const char *name, const char **value)
{
	const char *colon = memchr(p, ':', (size_t)(e - p));
	size_t k = strlen(name);
	if (!colon) {
		return 0;
	}
	*value = colon + 1;
	const char *ne = colon;
	while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t')) {
		ne--;
	}
	return (size_t)(ne - p) == k && !rl_strncasecmp(p, name, k);
}

/* deleteheader: the fields called name (the :index'th only), those whose
 * value matches one of the patterns when there are patterns. */
static int deleteheader(struct run *x, const struct sv_node *n)
{
	const char *name = expand(x, n->pos[0]->s[0]), *v;
	if (!sieve_field_name_ok(name)) {
		return fail(x, "deleteheader: invalid header name");
	}
	if (protected_field(name)) {
		return 0;
	}
	edit_begin(x);
	const char *h = x->hdr.data ? x->hdr.data : "", *end = h + x->hdr.len;
	uint64_t total = 0, k = 0;
	for (const char *p = h; p < end; p = field_end(p, end)) {
		total += (uint64_t)field_is(p, field_end(p, end), name, &v);
	}
	struct buf out;
	buf_init(&out);
	for (const char *p = h, *e; p < end; p = e) {
		e = field_end(p, end);
		int del = field_is(p, e, name, &v);
		if (del) {
			k++;
			del = !n->index || n->index == (n->last ? total - k + 1 : k);
		}
		if (del && n->npos == 2) {
			const char *val = field_value(x, v, (size_t)(e - v));
			if ((del = match_values(x, n, &val, 1, n->pos[1])) < 0) {
				buf_free(&out);
				return -1;
			}
		}
		if (!del) {
			buf_append(&out, p, (size_t)(e - p));
		}
	}
	buf_free(&x->hdr);
	x->hdr = out;
	x->stale = 1;
	return 0;
}

/* ---- include (RFC 6609) ---- */

static int block(struct run *x, const struct sv_node *n);

/* global: the names are shared with every script that declares them. */
static int global(struct run *x, const struct sv_node *n)
{
	for (int i = 0; i < n->pos[0]->n; i++) {
		const char *name = expand(x, n->pos[0]->s[i]);
		if (is_global(x, name, strlen(name))) {
			continue;
		}
		if (x->ngnames == SIEVE_VARS_MAX) {
			return fail(x, "too many global variables");
		}
		x->gnames[x->ngnames++] = sdup(x, name, strlen(name));
	}
	return 0;
}

/* The scope an included script runs in: its own variables and globals,
 * its own requires; the caller's come back after it. */
struct scope {
	struct var vars[SIEVE_VARS_MAX];
	const char *gnames[SIEVE_VARS_MAX];
	int nvars, ngnames;
	unsigned req;
};

static int run_included(struct run *x, const struct sieve_script *s)
{
	struct scope *sc = xmalloc(sizeof *sc);
	memcpy(sc->vars, x->vars, sizeof sc->vars);
	memcpy(sc->gnames, x->gnames, sizeof sc->gnames);
	sc->nvars = x->nvars;
	sc->ngnames = x->ngnames;
	sc->req = x->req;
	x->nvars = x->ngnames = 0;
	x->req = s->requires;
	x->depth++;
	int rc = block(x, s->first);
	x->depth--;
	memcpy(x->vars, sc->vars, sizeof sc->vars);
	memcpy(x->gnames, sc->gnames, sizeof sc->gnames);
	x->nvars = sc->nvars;
	x->ngnames = sc->ngnames;
	x->req = sc->req;
	x->returned = 0; /* return ends the included script only */
	free(sc);
	return rc;
}

static int include(struct run *x, const struct sv_node *n)
{
	const char *name = expand(x, n->pos[0]->s[0]);
	char key[80], err[256];
	if (!sieve_name_ok(name)) {
		return fail(x, "include: invalid script name");
	}
	snprintf(key, sizeof key, "%c:%s", n->global ? 'g' : 'p', name);
	for (int i = 0; i <= x->depth; i++) {
		if (x->active[i] && !strcmp(x->active[i], key)) {
			return fail(x, "include: a script includes itself");
		}
	}
	for (int i = 0; n->once && i < x->nincludes; i++) {
		if (!strcmp(x->done[i], key)) {
			return 0; /* :once: included before */
		}
	}
	if (x->depth >= SIEVE_INCLUDE_DEPTH || x->nincludes == SIEVE_INCLUDES_MAX) {
		return fail(x, "include: too many scripts included");
	}
	struct buf text;
	struct sieve_script *s = NULL;
	buf_init(&text);
	if (!x->in->load || x->in->load(x->in->arg, n->global, name, &text) != 0) {
		buf_free(&text);
		return n->optional ? 0 : fail(x, "include: no such script");
	}
	int rc = sieve_compile(text.data ? text.data : "", text.len, &s, err, sizeof err);
	buf_free(&text);
	if (rc != 0) {
		char what[320];
		snprintf(what, sizeof what, "include %s: %s", name, err);
		return fail(x, what);
	}
	x->done[x->nincludes++] = x->active[x->depth + 1] = sdup(x, key, strlen(key));
	rc = run_included(x, s);
	x->active[x->depth + 1] = NULL;
	sieve_free(s);
	return rc;
}

/* ---- commands ---- */

static int block(struct run *x, const struct sv_node *n);

static int command(struct run *x, const struct sv_node *n)
{
	if (++x->steps > SIEVE_STEPS_MAX) {
		return fail(x, "too many steps");
	}
	switch (n->id) {
	case SV_C_STOP:
		x->stopped = 1;
		return 0;
	case SV_C_KEEP:
		return store(x, n, "INBOX");
	case SV_C_FILEINTO:
		return store(x, n, expand(x, n->pos[0]->s[0]));
	case SV_C_REDIRECT:
		return redirect(x, n, expand(x, n->pos[0]->s[0]));
	case SV_C_DISCARD:
		return add_action(x, SA_DISCARD, "") ? 0 : -1;
	case SV_C_REJECT:
	case SV_C_EREJECT:
		return add_action(x, n->id == SV_C_REJECT ? SA_REJECT : SA_EREJECT,
		               expand(x, n->pos[0]->s[0])) ? 0 : -1;
	case SV_C_SETFLAG:
	case SV_C_ADDFLAG:
	case SV_C_REMOVEFLAG: {
		char **var = flag_var(x, n->npos == 2 ? expand(x, n->pos[0]->s[0]) : NULL);
		*var = flags_change(x, n->id, *var, n->pos[n->npos - 1]);
		return 0;
	}
	case SV_C_SET:
		return do_set(x, n);
	case SV_C_VACATION:
		return vacation(x, n);
	case SV_C_ADDHEADER:
		return addheader(x, n);
	case SV_C_INCLUDE:
		return include(x, n);
	case SV_C_RETURN:
		x->returned = 1;
		return 0;
	case SV_C_GLOBAL:
		return global(x, n);
	case SV_C_DELETEHEADER:
		return deleteheader(x, n);
	default: /* require: done when compiled */
		return 0;
	}
}

/* if/elsif/else chains, then the rest. */
static int block(struct run *x, const struct sv_node *n)
{
	int taken = 0;
	for (; n && !x->stopped && !x->returned && !x->failed; n = n->next) {
		if (n->id == SV_C_IF || n->id == SV_C_ELSIF || n->id == SV_C_ELSE) {
			if (n->id == SV_C_IF) {
				taken = 0;
			}
			if (taken) {
				continue;
			}
			int t = n->id == SV_C_ELSE ? 1 : test(x, n->tests[0]);
			if (t < 0) {
				return -1;
			}
			if (t) {
				taken = 1;
				if (block(x, n->block) != 0) {
					return -1;
				}
			}
			continue;
		}
		if (command(x, n) != 0) {
			return -1;
		}
	}
	return x->failed ? -1 : 0;
}

/* The implicit keep stands unless an action without :copy took the
 * message (keep itself included: then it is the explicit one). */
static int implicit_keep(const struct sieve_result *r)
{
	for (int i = 0; i < r->n; i++) {
		const struct sieve_action *a = &r->v[i];
		if (a->kind != SA_VACATION && a->kind != SA_DUPLICATE && !a->copy) {
			return 0;
		}
	}
	return 1;
}

/* see sieve.h */
int sieve_run(const struct sieve_script *s, const struct sieve_input *in, struct sieve_result *r)
{
	return sieve_run_all(&s, 1, in, r);
}

/* see sieve.h */
int sieve_run_all(const struct sieve_script *const *s, int n, const struct sieve_input *in,
	struct sieve_result *r)
{
	memset(r, 0, sizeof *r);
	struct run *x = xcalloc(1, sizeof *x);
	x->in = in;
	x->r = r;
	x->budget = MATCH_BUDGET;
	x->mtext = in->msg;
	x->mlen = in->len;
	buf_init(&x->hdr);
	buf_init(&x->text);
	int rc = 0;
	for (int i = 0; i < n && rc == 0 && !x->stopped; i++) { /* as if included in turn */
		x->req = s[i]->requires;
		x->nvars = x->ngnames = x->returned = 0;
		rc = block(x, s[i]->first);
	}
	if (x->edited) {
		r->header = xmalloc(x->hdr.len + 1);
		memcpy(r->header, x->hdr.data ? x->hdr.data : "", x->hdr.len);
		r->header[x->hdr.len] = '\0';
		r->header_len = x->hdr.len;
		r->body_off = in->len - x->body_len;
	}
	buf_free(&x->hdr);
	buf_free(&x->text);
	r->keep = rc != 0 || implicit_keep(r);
	r->keep_flags = x->flags && *x->flags ? xstrdup(x->flags) : NULL;
	if (x->parsed) {
		mime_free(&x->m);
	}
	for (size_t i = 0; i < x->nmem; i++) {
		free(x->mem[i]);
	}
	free(x->mem);
	free(x);
	return rc;
}

/* see sieve.h */
void sieve_result_free(struct sieve_result *r)
{
	for (int i = 0; i < r->n; i++) {
		struct sieve_action *a = &r->v[i];
		free(a->arg);
		free(a->flags);
		free(a->subject);
		free(a->from);
		free(a->handle);
		free(a->addresses);
	}
	free(r->v);
	free(r->keep_flags);
	free(r->header);
	memset(r, 0, sizeof *r);
}

static void print_store(struct buf *out, const char *folder, const char *flags, int copy,
	int create)
{
	buf_printf(out, " * store message in folder: %s\n", folder);
	if (create) {
		buf_puts(out, "        + create mailbox if it does not exist\n");
	}
	if (copy) {
		buf_puts(out, "        + preserve implicit keep\n");
	}
	if (flags) {
		buf_printf(out, "        + add IMAP flags: %s\n", flags);
	}
}

/* see sieve.h */
void sieve_result_print(const struct sieve_result *r, struct buf *out)
{
	buf_puts(out, "\nPerformed actions:\n\n");
	for (int i = 0; i < r->n; i++) {
		const struct sieve_action *a = &r->v[i];
		switch (a->kind) {
		case SA_KEEP:
		case SA_FILEINTO:
			print_store(out, a->arg, a->flags, a->copy, a->create);
			break;
		case SA_REDIRECT:
			buf_printf(out, " * redirect message to: <%s>\n", a->arg);
			if (a->copy) {
				buf_puts(out, "        + preserve implicit keep\n");
			}
			break;
		case SA_DISCARD:
			buf_puts(out, " * discard\n");
			break;
		case SA_REJECT:
		case SA_EREJECT:
			buf_printf(out, " * reject message with reason: %s\n", a->arg);
			break;
		case SA_VACATION:
			buf_printf(out, " * send vacation message: %lld seconds\n", (long long)a->seconds);
			break;
		case SA_DUPLICATE:
			buf_printf(out, " * track %sduplicate%s%s\n", a->last ? "last " : "",
				a->handle ? " with handle: " : "", a->handle ? a->handle : "");
			break;
		}
	}
	if (!r->n) {
		buf_puts(out, "  (none)\n");
	}
	buf_puts(out, "\nImplicit keep:\n\n");
	if (r->keep) {
		print_store(out, "INBOX", r->keep_flags, 0, 0);
	} else {
		buf_puts(out, "  (none)\n");
	}
	buf_puts(out, "\n");
}
