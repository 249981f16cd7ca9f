/*
 * imap_parse.c - the pure parts of the IMAP server (imap.c): the command
 * tokenizer, sequence sets, dates and SEARCH keys with their matching.
 * No I/O and no session: every function works on the caller's data, so
 * that tests/test_imap.c can check them with known-answer tables. Every
 * size a client controls is bounded here: tokens, nesting, command bytes,
 * inline literals, set ranges, search keys.
 */
#include <string.h>

#include "rumble.h"

#define IMAP_CMD_MAX (256 * 1024) /* a whole command, inline literals included */
#define IMAP_LITERAL_INLINE (64 * 1024)
#define IMAP_TOKENS_MAX 8192
#define IMAP_DEPTH_MAX 32
#define SET_RANGES_MAX 4096
#define SEARCH_KEYS_MAX 1000
/* ---- the tokenizer (see rumble.h) ---- */

void imap_cmd_init(struct imap_cmd *c)
{
	memset(c, 0, sizeof *c);
	buf_init(&c->text);
}

void imap_cmd_reset(struct imap_cmd *c)
{
	buf_reset(&c->text);
	c->ntok = 0;
	c->depth = 0;
	c->nul = 0;
}

void imap_cmd_free(struct imap_cmd *c)
{
	buf_free(&c->text);
	xfree(c->tok);
	c->ntok = c->cap = 0;
}

static int tok_push(struct imap_cmd *c, int type, const char *p, size_t n)
{
	if (c->ntok >= IMAP_TOKENS_MAX || c->text.len + n + 1 > IMAP_CMD_MAX) {
		return -1;
	}
	if (c->ntok == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->tok = xrealloc(c->tok, c->cap * sizeof *c->tok);
	}
	struct imap_token *t = &c->tok[c->ntok++];
	t->type = type;
	t->off = (uint32_t)c->text.len;
	t->len = (uint32_t)n;
	buf_append(&c->text, p, n);
	buf_append(&c->text, "", 1);
	return 0;
}

const char *imap_tok_str(const struct imap_cmd *c, uint32_t i)
{
	return i < c->ntok ? c->text.data + c->tok[i].off : "";
}

/* Whether the atom text p[0..n) before a "[" names a fetch item whose
 * section may hold spaces and parentheses: "BODY[HEADER.FIELDS (From)]". */
static int section_item(const char *p, size_t n)
{
	static const char *const items[] = {
	        "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"};
	for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
		if (strlen(items[i]) == n && rl_strncasecmp(p, items[i], n) == 0) {
			return 1;
		}
	}
	return 0;
}

/* An atom (RFC 3501 9: any CHAR but atom-specials, with "*" and "%" for
 * sequence sets and LIST, and "]" as in astrings). "[" is an ATOM-CHAR
 * too ("SELECT a[" names a mailbox); only after a fetch item's name does
 * it open a section that runs to its "]" across spaces and parentheses,
 * as in "BODY[HEADER.FIELDS (From)]<0.10>". Returns its length, 0 when
 * bad. */
static size_t atom_len(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] != ' ' && p[i] != '(' && p[i] != ')') {
		unsigned char ch = (unsigned char)p[i];
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '{' || ch == '\\') {
			/* '\' only starts a flag name */
			if (!(ch == '\\' && i == 0)) {
				return 0;
			}
		}
		if (ch == '[' && section_item(p, i)) {
			const char *close = memchr(p + i, ']', n - i);
			if (!close) {
				return 0;
			}
			i = (size_t)(close - p);
		}
		i++;
	}
	return i;
}

/* A quoted string at p[0] == '"'; its unescaped value goes to the token.
 * Returns the bytes consumed, 0 when bad. */
static size_t quoted(struct imap_cmd *c, const char *p, size_t n)
{
	struct buf v;
	size_t i = 1;
	buf_init(&v);
	for (; i < n && p[i] != '"'; i++) {
		if (p[i] == '\\') {
			if (i + 1 >= n || (p[i + 1] != '"' && p[i + 1] != '\\')) {
				break;
			}
			i++;
		}
		buf_append(&v, p + i, 1);
	}
	int ok = i < n && p[i] == '"' && tok_push(c, IMAP_STRING, v.data ? v.data : "", v.len) == 0;
	buf_free(&v);
	return ok ? i + 1 : 0;
}

/* "{123}" or "{123+}" ending the line: 1 with the size, 0 when it is not
 * one. */
static int literal_at_end(const char *p, size_t n, uint64_t *size, int *nonsync)
{
	size_t i = 1, digits = 0;
	uint64_t v = 0;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*nonsync = i < n && p[i] == '+';
	i += (size_t)*nonsync;
	if (digits == 0 || digits > 10 || i + 1 != n || p[i] != '}') {
		return 0;
	}
	*size = v;
	return 1;
}

/* see rumble.h */
int imap_cmd_line(struct imap_cmd *c, const char *line, size_t n, uint64_t *literal, int *nonsync,
        const char **error)
{
	size_t i = 0;
	*error = "Syntax error";
	if (memchr(line, '\0', n)) {
		*error = "NUL in command";
		return IMAP_PARSE_ERROR;
	}
	while (i < n) {
		const char *p = line + i;
		size_t left = n - i, used = 1;
		if (*p == ' ') {
			i++;
			continue;
		}
		if (*p == '(') {
			if (++c->depth > IMAP_DEPTH_MAX || tok_push(c, IMAP_LPAREN, "(", 1) != 0) {
				*error = "Too deeply nested or too many arguments";
				return IMAP_PARSE_ERROR;
			}
		} else if (*p == ')') {
			if (--c->depth < 0 || tok_push(c, IMAP_RPAREN, ")", 1) != 0) {
				*error = "Unbalanced parentheses";
				return IMAP_PARSE_ERROR;
			}
		} else if (*p == '"') {
			used = quoted(c, p, left);
		} else if (*p == '{' || (*p == '~' && left > 1 && p[1] == '{')) {
			c->literal8 = *p == '~'; /* RFC 3516's binary literal, "~{n}" */
			if (!literal_at_end(p + c->literal8, left - (size_t)c->literal8, literal, nonsync)) {
				return IMAP_PARSE_ERROR;
			}
			return IMAP_PARSE_LITERAL;
		} else {
			used = atom_len(p, left);
			if (used && tok_push(c, IMAP_ATOM, p, used) != 0) {
				*error = "Command too long";
				return IMAP_PARSE_ERROR;
			}
		}
		if (used == 0) {
			return IMAP_PARSE_ERROR;
		}
		i += used;
	}
	if (c->depth != 0) {
		*error = "Unbalanced parentheses";
		return IMAP_PARSE_ERROR;
	}
	return IMAP_PARSE_DONE;
}

/* see rumble.h */
int imap_cmd_literal_begin(struct imap_cmd *c, uint64_t size, int spooled)
{
	if (spooled) {
		return tok_push(c, IMAP_SPOOL, "", 0); /* its len counts the bytes */
	}
	if (size > IMAP_LITERAL_INLINE || c->text.len + size + 1 > IMAP_CMD_MAX ||
	        tok_push(c, IMAP_STRING, "", 0) != 0) {
		return -1;
	}
	c->text.len--; /* the NUL goes after the data */
	return 0;
}

/* see rumble.h */
void imap_cmd_literal_data(struct imap_cmd *c, const char *p, size_t n)
{
	struct imap_token *t = &c->tok[c->ntok - 1];
	t->len += (uint32_t)n;
	if (!c->literal8 && !c->nul && memchr(p, '\0', n)) {
		c->nul = c->ntok; /* RFC 3501 9: a literal is CHAR8s (imap.c decides) */
	}
	if (t->type != IMAP_SPOOL) {
		buf_append(&c->text, p, n);
	}
}

void imap_cmd_literal_end(struct imap_cmd *c)
{
	if (c->tok[c->ntok - 1].type != IMAP_SPOOL) {
		buf_append(&c->text, "", 1);
	}
}

/* ---- sequence sets (see rumble.h) ---- */

/* see rumble.h */
int imap__num(const char **p, uint32_t *out)
{
	uint64_t v = 0;
	int digits = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (uint64_t)(**p - '0');
		(*p)++;
		if (++digits > 10 || v > 0xffffffffu) {
			return -1;
		}
	}
	*out = (uint32_t)v;
	return digits && v ? 0 : -1;
}

static int set_num(const char **p, uint32_t *out)
{
	if (**p == '*') {
		(*p)++;
		*out = IMAP_STAR;
		return 0;
	}
	return imap__num(p, out);
}

/* see rumble.h */
int imap_set_parse(const char *s, struct imap_set *set)
{
	set->n = 0;
	set->r = NULL;
	const char *p = s;
	for (;;) {
		uint32_t lo, hi;
		if (set_num(&p, &lo) != 0) {
			break;
		}
		hi = lo;
		if (*p == ':') {
			p++;
			if (set_num(&p, &hi) != 0) {
				break;
			}
		}
		if (set->n >= SET_RANGES_MAX) {
			break;
		}
		set->r = xrealloc(set->r, (set->n + 1) * sizeof *set->r);
		set->r[set->n].lo = lo;
		set->r[set->n].hi = hi;
		set->n++;
		if (*p == '\0') {
			return 0;
		}
		if (*p++ != ',') {
			break;
		}
	}
	imap_set_free(set);
	return -1;
}

void imap_set_free(struct imap_set *set)
{
	xfree(set->r);
	set->n = 0;
}

/* see rumble.h */
int imap_set_has(const struct imap_set *set, uint32_t v, uint32_t star)
{
	for (uint32_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_STAR ? star : set->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi) {
			return 1;
		}
	}
	return 0;
}

/* ---- SEARCH keys (see rumble.h) ---- */

enum skey_op {
	K_ALL,
	K_AND,
	K_OR,
	K_NOT,
	K_FLAG,
	K_UNFLAG,
	K_KW,
	K_UNKW,
	K_NONE,
	K_LARGER,
	K_SMALLER,
	K_BEFORE,
	K_ON,
	K_SINCE,
	K_SENTBEFORE,
	K_SENTON,
	K_SENTSINCE,
	K_HEADER,
	K_ADDR, /* FROM, TO, CC, BCC: a header, its addresses too */
	K_BODY,
	K_TEXT,
	K_UID,
	K_SEQ,
	K_MODSEQ,
	K_RECENT,
	K_NEW,
	K_OLD,
	K_SAVEDBEFORE, /* then SAVEDON, SAVEDSINCE: in K_BEFORE's order */
	K_SAVEDON,
	K_SAVEDSINCE,
	K_SAVED /* "$" and "UID $" (SEARCHRES, RFC 5182) */
};

struct imap_search {
	int op;
	struct imap_search *kid, *next;
	uint32_t n;
	int64_t day;
	char *hdr, *str;
	struct imap_set set;
	uint64_t modseq;
};

void imap_search_free(struct imap_search *k)
{
	while (k) {
		struct imap_search *next = k->next;
		imap_search_free(k->kid);
		xfree(k->hdr);
		xfree(k->str);
		imap_set_free(&k->set);
		free(k);
		k = next;
	}
}

struct sparse {
	const struct imap_cmd *c;
	uint32_t *pos;
	int (*kw)(void *arg, const char *name);
	void *kwarg;
	int count, depth;
	const char *error;
};

static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

/* Days since the epoch of a civil date (H. Hinnant's algorithm). */
static int64_t days_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* see rumble.h: "1-Feb-1994" (RFC 3501 date) as days since the epoch. */
int imap_date_parse(const char *s, int64_t *day)
{
	int d = 0, y = 0, i = 0, m;
	while (s[i] >= '0' && s[i] <= '9' && i < 2) {
		d = d * 10 + (s[i++] - '0');
	}
	if (i == 0 || s[i] != '-' || strlen(s + i + 1) != 8 || s[i + 4] != '-') {
		return -1;
	}
	for (m = 0; m < 12 && rl_strncasecmp(s + i + 1, month_names + 3 * m, 3) != 0; m++) {
	}
	for (int k = i + 5; k < i + 9; k++) {
		if (s[k] < '0' || s[k] > '9') {
			return -1;
		}
		y = y * 10 + (s[k] - '0');
	}
	if (m == 12 || d < 1 || d > 31) {
		return -1;
	}
	*day = days_civil(y, m + 1, d);
	return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static const char *sarg(struct sparse *sp)
{
	const struct imap_cmd *c = sp->c;
	if (*sp->pos >= c->ntok || c->tok[*sp->pos].type == IMAP_LPAREN ||
	        c->tok[*sp->pos].type == IMAP_RPAREN || c->tok[*sp->pos].type == IMAP_SPOOL) {
		sp->error = "Missing search argument";
		return NULL;
	}
	return imap_tok_str(c, (*sp->pos)++);
}

static struct imap_search *skey(struct sparse *sp);

static struct imap_search *knew(int op)
{
	struct imap_search *k = xcalloc(1, sizeof *k);
	k->op = op;
	return k;
}

/* Keys until ")" (in parentheses) or the end: an AND of them. */
static struct imap_search *skey_list(struct sparse *sp, int paren)
{
	struct imap_search *and = knew(K_AND), **tail = &and->kid;
	const struct imap_cmd *c = sp->c;
	while (*sp->pos < c->ntok && c->tok[*sp->pos].type != IMAP_RPAREN) {
		struct imap_search *k = skey(sp);
		if (!k) {
			imap_search_free(and);
			return NULL;
		}
		*tail = k;
		tail = &k->next;
	}
	if (paren && *sp->pos >= c->ntok) {
		sp->error = "Missing )";
	} else if (paren) {
		(*sp->pos)++;
	}
	if (!and->kid || sp->error) {
		sp->error = sp->error ? sp->error : "Missing search key";
		imap_search_free(and);
		return NULL;
	}
	return and;
}

static const struct {
	const char *name;
	int op;
	uint32_t n;
} simple_keys[] = {{"ALL", K_ALL, 0}, {"ANSWERED", K_FLAG, MM_ANSWERED},
        {"DELETED", K_FLAG, MM_DELETED}, {"DRAFT", K_FLAG, MM_DRAFT},
        {"FLAGGED", K_FLAG, MM_FLAGGED}, {"SEEN", K_FLAG, MM_SEEN},
        {"UNANSWERED", K_UNFLAG, MM_ANSWERED}, {"UNDELETED", K_UNFLAG, MM_DELETED},
        {"UNDRAFT", K_UNFLAG, MM_DRAFT}, {"UNFLAGGED", K_UNFLAG, MM_FLAGGED},
        {"UNSEEN", K_UNFLAG, MM_SEEN}, {"OLD", K_OLD, 0}, {"RECENT", K_RECENT, 0},
        {"NEW", K_NEW, 0}, {"SAVEDATESUPPORTED", K_ALL, 0}};

static const struct {
	const char *name;
	int op;
} arg_keys[] = {{"BEFORE", K_BEFORE}, {"ON", K_ON}, {"SINCE", K_SINCE},
        {"SENTBEFORE", K_SENTBEFORE}, {"SENTON", K_SENTON}, {"SENTSINCE", K_SENTSINCE},
        {"LARGER", K_LARGER}, {"SMALLER", K_SMALLER}, {"BODY", K_BODY}, {"TEXT", K_TEXT},
        {"KEYWORD", K_KW}, {"UNKEYWORD", K_UNKW}, {"UID", K_UID}, {"BCC", K_ADDR},
        {"CC", K_ADDR}, {"FROM", K_ADDR}, {"SUBJECT", K_HEADER}, {"TO", K_ADDR},
        {"SAVEDBEFORE", K_SAVEDBEFORE}, {"SAVEDON", K_SAVEDON}, {"SAVEDSINCE", K_SAVEDSINCE},
        {"MODSEQ", K_MODSEQ}};

/* The argument of a key that takes one. */
static int skey_arg(struct sparse *sp, struct imap_search *k, const char *name, const char *a)
{
	uint32_t n;
	const char *p = a;
	switch (k->op) {
	case K_BEFORE:
	case K_ON:
	case K_SINCE:
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE:
	case K_SAVEDBEFORE:
	case K_SAVEDON:
	case K_SAVEDSINCE:
		return imap_date_parse(a, &k->day);
	case K_MODSEQ:
		/* MODSEQ ["/flags/..." priv|shared|all] n: the entry is any flag's */
		if (imap_modseq_parse(a, &k->modseq) != 0) {
			const char *type = sarg(sp), *num = type ? sarg(sp) : NULL;
			return num && (rl_strcasecmp(type, "priv") == 0 ||
			                      rl_strcasecmp(type, "shared") == 0 ||
			                      rl_strcasecmp(type, "all") == 0)
			               ? imap_modseq_parse(num, &k->modseq)
			               : -1;
		}
		return 0;
	case K_LARGER:
	case K_SMALLER:
		if (*p == '0' && p[1] == '\0') {
			k->n = 0;
			return 0;
		}
		if (imap__num(&p, &n) != 0 || *p) {
			return -1;
		}
		k->n = n;
		return 0;
	case K_KW:
	case K_UNKW:
		k->n = sp->kw ? (uint32_t)sp->kw(sp->kwarg, a) : (uint32_t)-1;
		if (k->n == (uint32_t)-1) { /* no message has it */
			k->op = k->op == K_KW ? K_NONE : K_ALL;
		}
		return 0;
	case K_UID:
		if (strcmp(a, "$") == 0) {
			k->op = K_SAVED;
			return 0;
		}
		return imap_set_parse(a, &k->set);
	case K_HEADER:
	case K_ADDR:
		k->hdr = xstrdup(name);
		break;
	}
	k->str = xstrdup(a);
	return 0;
}

static struct imap_search *skey(struct sparse *sp)
{
	const struct imap_cmd *c = sp->c;
	if (++sp->count > SEARCH_KEYS_MAX || sp->depth > IMAP_DEPTH_MAX) {
		sp->error = "Too many search keys";
		return NULL;
	}
	if (c->tok[*sp->pos].type == IMAP_LPAREN) {
		(*sp->pos)++;
		sp->depth++;
		struct imap_search *k = skey_list(sp, 1);
		sp->depth--;
		return k;
	}
	const char *name = sarg(sp), *a;
	if (!name) {
		return NULL;
	}
	for (size_t i = 0; i < sizeof simple_keys / sizeof simple_keys[0]; i++) {
		if (rl_strcasecmp(name, simple_keys[i].name) == 0) {
			struct imap_search *k = knew(simple_keys[i].op);
			k->n = simple_keys[i].n;
			return k;
		}
	}
	if (rl_strcasecmp(name, "NOT") == 0 || rl_strcasecmp(name, "OR") == 0) {
		int or = name[0] == 'O' || name[0] == 'o';
		struct imap_search *k = knew(or ? K_OR : K_NOT);
		sp->depth++;
		k->kid = *sp->pos < c->ntok ? skey(sp) : NULL;
		if (k->kid && or) {
			k->kid->next = *sp->pos < c->ntok ? skey(sp) : NULL;
		}
		sp->depth--;
		if (!k->kid || (or &&!k->kid->next)) {
			sp->error = sp->error ? sp->error : "Missing search key";
			imap_search_free(k);
			return NULL;
		}
		return k;
	}
	if (rl_strcasecmp(name, "HEADER") == 0) {
		const char *field = sarg(sp);
		if (!field || !(a = sarg(sp))) {
			return NULL;
		}
		struct imap_search *k = knew(K_HEADER);
		k->hdr = xstrdup(field);
		k->str = xstrdup(a);
		return k;
	}
	for (size_t i = 0; i < sizeof arg_keys / sizeof arg_keys[0]; i++) {
		if (rl_strcasecmp(name, arg_keys[i].name) == 0) {
			struct imap_search *k = knew(arg_keys[i].op);
			if (!(a = sarg(sp)) || skey_arg(sp, k, name, a) != 0) {
				sp->error = sp->error ? sp->error : "Bad search argument";
				imap_search_free(k);
				return NULL;
			}
			return k;
		}
	}
	if (strcmp(name, "$") == 0) {
		return knew(K_SAVED);
	}
	struct imap_search *k = knew(K_SEQ);
	if (imap_set_parse(name, &k->set) != 0) {
		sp->error = "Unknown search key";
		imap_search_free(k);
		return NULL;
	}
	return k;
}

/* see rumble.h */
int imap_modseq_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s || (*s == '0' && s[1])) {
		return -1;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX / 2 - 9) / 10) {
			return -1;
		}
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* see rumble.h */
int imap_search_parse(const struct imap_cmd *c, uint32_t *pos,
        int (*kw)(void *arg, const char *name), void *kwarg, struct imap_search **out,
        const char **error)
{
	struct sparse sp = {c, pos, kw, kwarg, 0, 0, NULL};
	*out = skey_list(&sp, 0);
	*error = sp.error;
	return *out ? 0 : -1;
}

/* The day of the Date: header in its own zone, -1 when there is none. */
static int64_t sent_day(struct imap_search_msg *m)
{
	int64_t t;
	int zone;
	const char *d = m->src ? imap_src_date(m->src) : NULL;
	if (!d || mime_date_parse(d, strlen(d), &t, &zone) != 0) {
		return -1;
	}
	return floor_div(t + zone * 60, 86400);
}

static int cmp_day(int op, int64_t day, int64_t want)
{
	return op == 0 ? day < want : op == 1 ? day == want : day >= want;
}

/* see rumble.h */
int imap_search_match(const struct imap_search *k, struct imap_search_msg *m)
{
	const struct imap_search *x;
	switch (k->op) {
	case K_ALL:
		return 1;
	case K_NONE:
		return 0;
	case K_AND:
		for (x = k->kid; x; x = x->next) {
			if (!imap_search_match(x, m)) {
				return 0;
			}
		}
		return 1;
	case K_OR:
		return imap_search_match(k->kid, m) || imap_search_match(k->kid->next, m);
	case K_NOT:
		return !imap_search_match(k->kid, m);
	case K_FLAG:
		return (m->flags & k->n) != 0;
	case K_UNFLAG:
		return (m->flags & k->n) == 0;
	case K_KW:
		return (m->keywords >> k->n) & 1;
	case K_UNKW:
		return !((m->keywords >> k->n) & 1);
	case K_LARGER:
		return m->size > k->n;
	case K_SMALLER:
		return m->size < k->n;
	case K_BEFORE:
	case K_ON:
	case K_SINCE:
		return cmp_day(k->op - K_BEFORE, floor_div(m->date + m->zone * 60, 86400), k->day);
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE: {
		int64_t d = sent_day(m);
		return d >= 0 && cmp_day(k->op - K_SENTBEFORE, d, k->day);
	}
	case K_HEADER:
		return m->src && imap_src_header_has(m->src, k->hdr, k->str);
	case K_ADDR:
		return m->src && imap_src_address_has(m->src, k->hdr, k->str);
	case K_BODY:
		return m->src && imap_src_body_has(m->src, k->str);
	case K_TEXT:
		return m->src && (imap_src_header_has(m->src, NULL, k->str) ||
		                         imap_src_body_has(m->src, k->str));
	case K_UID:
		return imap_set_has(&k->set, m->uid, m->max_uid);
	case K_SEQ:
		return imap_set_has(&k->set, m->seq, m->max_seq);
	case K_MODSEQ:
		return m->modseq >= k->modseq;
	case K_RECENT:
		return m->recent;
	case K_NEW:
		return m->recent && !(m->flags & MM_SEEN);
	case K_OLD:
		return !m->recent;
	case K_SAVED:
		return m->saved && imap_saved_has(m->saved, m->uid);
	case K_SAVEDBEFORE:
	case K_SAVEDON:
	case K_SAVEDSINCE: {
		int64_t t = m->savedate > 0 ? m->savedate : m->date; /* not known: as INTERNALDATE */
		return cmp_day(k->op - K_SAVEDBEFORE, floor_div(t + os_timezone_offset(t) * 60, 86400),
		        k->day);
	}
	}
	return 0;
}

/* see rumble.h */
int imap_search_has_modseq(const struct imap_search *k)
{
	for (; k; k = k->next) {
		if (k->op == K_MODSEQ || imap_search_has_modseq(k->kid)) {
			return 1;
		}
	}
	return 0;
}

/* LIST wildcards: '*' matches anything, '%' anything but the separator.
 * Dynamic programming over (pattern, name): no backtracking blow-up. */
/* see rumble.h */
int imap_wild_match(const char *pat, const char *name, int icase)
{
	size_t pn = strlen(pat), nn = strlen(name);
	if (pn > IMAP_PATTERN_MAX || nn > IMAP_PATTERN_MAX) {
		return 0;
	}
	unsigned char row[IMAP_PATTERN_MAX + 2], next[IMAP_PATTERN_MAX + 2];
	memset(row, 0, nn + 1);
	row[0] = 1; /* row[j]: pat[0..i) matches name[0..j) */
	for (size_t i = 0; i < pn; i++) {
		char c = pat[i];
		memset(next, 0, nn + 1);
		for (size_t j = 0; j <= nn; j++) {
			if (c == '*' || c == '%') {
				next[j] = row[j] || (j > 0 && next[j - 1] &&
				                            (c == '*' || name[j - 1] != '.'));
			} else if (j > 0 && row[j - 1]) {
				char a = name[j - 1], b = c;
				if (icase && a >= 'a' && a <= 'z') {
					a = (char)(a - 32);
				}
				if (icase && b >= 'a' && b <= 'z') {
					b = (char)(b - 32);
				}
				next[j] = a == b;
			}
		}
		memcpy(row, next, nn + 1);
	}
	return row[nn];
}

/* see rumble.h */
void imap_put_string(struct buf *o, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f) {
		i++;
	}
	if (i < n || n > 1024) {
		buf_printf(o, "{%zu}\r\n", n);
		buf_append(o, p, n);
		return;
	}
	buf_append(o, "\"", 1);
	for (i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\') {
			buf_append(o, "\\", 1);
		}
		buf_append(o, p + i, 1);
	}
	buf_append(o, "\"", 1);
}
