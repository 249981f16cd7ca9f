/*
 * sieve_parse.c - the Sieve compiler (RFC 5228 section 8's grammar): a
 * lexer, a recursive-descent parser, and a check of every command and
 * test against a table of what it takes (tags, positional arguments,
 * tests, a block) and which "require" it needs. The first error stops
 * it, with its line and column.
 */
#include <stdarg.h>
#include <string.h>

#include "sieve.h"

/* ---- tokens ---- */

enum tok { T_EOF, T_IDENT, T_TAG, T_NUM, T_STR, T_LBRACKET, T_RBRACKET, T_LPAREN, T_RPAREN,
	T_COMMA, T_SEMI, T_LBRACE, T_RBRACE, T_ERROR };

struct lexer {
	const char *p, *end, *line_start;
	int line;
	/* the current token */
	enum tok t;
	int tline, tcol;
	char ident[64];
	uint64_t num;
	struct buf str;
	/* the result */
	struct sieve_script *s;
	char *err;
	size_t errlen;
	int failed, depth;
};

static int fail_at(struct lexer *x, int line, int col, const char *fmt, ...) RL_PRINTF(4, 5);

static int fail_at(struct lexer *x, int line, int col, const char *fmt, ...)
{
	if (!x->failed) {
		char msg[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		snprintf(x->err, x->errlen, "%d:%d: %s", line, col, msg);
		x->failed = 1;
	}
	x->t = T_ERROR;
	return -1;
}

#define fail_tok(x, ...) fail_at((x), (x)->tline, (x)->tcol, __VA_ARGS__)

static void *keep_mem(struct sieve_script *s, void *p)
{
	if (s->nmem == s->capmem) {
		s->capmem = s->capmem ? s->capmem * 2 : 64;
		s->mem = xrealloc(s->mem, s->capmem * sizeof *s->mem);
	}
	s->mem[s->nmem++] = p;
	return p;
}

static void *alloc(struct lexer *x, size_t n)
{
	return keep_mem(x->s, xcalloc(1, n));
}

static char *dup_str(struct lexer *x, const char *p, size_t n)
{
	char *d = alloc(x, n + 1);
	memcpy(d, p, n);
	return d;
}

/* Skips blanks, line ends and comments; -1 on an unterminated comment. */
static int skip_space(struct lexer *x)
{
	while (x->p < x->end) {
		char c = *x->p;
		if (c == '\n') {
			x->line++;
			x->line_start = ++x->p;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			x->p++;
		} else if (c == '#') {
			while (x->p < x->end && *x->p != '\n') {
				x->p++;
			}
		} else if (c == '/' && x->p + 1 < x->end && x->p[1] == '*') {
			int line = x->line, col = (int)(x->p - x->line_start) + 1;
			for (x->p += 2;; x->p++) {
				if (x->p + 1 >= x->end) {
					return fail_at(x, line, col, "unterminated comment");
				}
				if (*x->p == '\n') {
					x->line++;
					x->line_start = x->p + 1;
				} else if (*x->p == '*' && x->p[1] == '/') {
					x->p += 2;
					break;
				}
			}
		} else {
			break;
		}
	}
	return 0;
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int lex_ident(struct lexer *x)
{
	const char *b = x->p;
	while (x->p < x->end && (is_alpha(*x->p) || is_digit(*x->p))) {
		x->p++;
	}
	size_t n = (size_t)(x->p - b);
	if (n >= sizeof x->ident) {
		return fail_tok(x, "identifier too long");
	}
	memcpy(x->ident, b, n);
	x->ident[n] = '\0';
	rl_lower(x->ident);
	return 0;
}

static int lex_number(struct lexer *x)
{
	uint64_t v = 0;
	while (x->p < x->end && is_digit(*x->p)) {
		if (v > (UINT64_MAX - 9) / 10) {
			return fail_tok(x, "number too large");
		}
		v = v * 10 + (uint64_t)(*x->p++ - '0');
	}
	unsigned shift = 0;
	if (x->p < x->end && strchr("kKmMgG", *x->p)) {
		char q = (char)(*x->p++ | 0x20);
		shift = q == 'k' ? 10 : q == 'm' ? 20 : 30;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		return fail_tok(x, "number too large");
	}
	x->num = v << shift;
	return 0;
}

static int str_add(struct lexer *x, const char *p, size_t n)
{
	if (x->str.len + n > SIEVE_STRING_MAX) {
		return fail_tok(x, "string longer than %d bytes", SIEVE_STRING_MAX);
	}
	buf_append(&x->str, p, n);
	return 0;
}

/* "..." with \" and \\ (any other \c is c, RFC 5228 2.4.2). */
static int lex_quoted(struct lexer *x)
{
	buf_reset(&x->str);
	for (x->p++; x->p < x->end; x->p++) {
		char c = *x->p;
		if (c == '"') {
			x->p++;
			return 0;
		}
		if (c == '\\' && x->p + 1 < x->end) {
			c = *++x->p;
		}
		if (c == '\n') {
			x->line++;
			x->line_start = x->p + 1;
		}
		if (str_add(x, &c, 1) != 0) {
			return -1;
		}
	}
	return fail_tok(x, "unterminated string");
}

/* text: ... lines, "." alone ends it, ".." at a line start is "." */
static int lex_multiline(struct lexer *x)
{
	buf_reset(&x->str);
	x->p += 5; /* "text:" */
	while (x->p < x->end && (*x->p == ' ' || *x->p == '\t')) {
		x->p++;
	}
	if (x->p < x->end && *x->p == '#') {
		while (x->p < x->end && *x->p != '\n') {
			x->p++;
		}
	}
	if (x->p < x->end && *x->p == '\r') {
		x->p++;
	}
	if (x->p >= x->end || *x->p != '\n') {
		return fail_tok(x, "text: must be followed by a line end");
	}
	while (++x->p < x->end) {
		x->line++;
		x->line_start = x->p;
		const char *nl = memchr(x->p, '\n', (size_t)(x->end - x->p));
		const char *e = nl ? nl : x->end;
		size_t n = (size_t)(e - x->p);
		size_t body = n && x->p[n - 1] == '\r' ? n - 1 : n;
		if (body == 1 && *x->p == '.') {
			x->p = e;
			return 0;
		}
		const char *from = body && *x->p == '.' && x->p[1] == '.' ? x->p + 1 : x->p;
		if (str_add(x, from, (size_t)(x->p + body - from)) != 0 || str_add(x, "\r\n", 2) != 0) {
			return -1;
		}
		if (!nl) {
			break;
		}
		x->p = nl;
	}
	return fail_tok(x, "text: without a line with a single \".\"");
}

static int next(struct lexer *x)
{
	if (x->failed || skip_space(x) != 0) {
		x->t = T_ERROR;
		return -1;
	}
	x->tline = x->line;
	x->tcol = (int)(x->p - x->line_start) + 1;
	if (x->p >= x->end) {
		x->t = T_EOF;
		return 0;
	}
	static const char punct[] = "[]()},;{";
	static const enum tok ptok[] = {T_LBRACKET, T_RBRACKET, T_LPAREN, T_RPAREN, T_RBRACE, T_COMMA,
		T_SEMI, T_LBRACE};
	char c = *x->p;
	const char *pc = c ? strchr(punct, c) : NULL;
	if (pc) {
		x->p++;
		x->t = ptok[pc - punct];
		return 0;
	}
	if (c == '"') {
		x->t = T_STR;
		return lex_quoted(x);
	}
	if (is_digit(c)) {
		x->t = T_NUM;
		return lex_number(x);
	}
	if (c == ':' && x->p + 1 < x->end && is_alpha(x->p[1])) {
		x->p++;
		x->t = T_TAG;
		return lex_ident(x);
	}
	if (x->end - x->p >= 5 && !rl_strncasecmp(x->p, "text:", 5)) {
		x->t = T_STR;
		return lex_multiline(x);
	}
	if (is_alpha(c)) {
		x->t = T_IDENT;
		return lex_ident(x);
	}
	return fail_tok(x, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
}

/* ---- what each command and test takes ---- */

enum { K_CMD, K_TEST, K_CONTROL };
/* tag groups */
enum { G_CMP = 1, G_MATCH = 2, G_PART = 4, G_SIZE = 8, G_COPY = 16, G_CREATE = 32, G_FLAGS = 64,
	G_BODY = 128, G_MODS = 256, G_VACATION = 512, G_ZONE = 1024, G_ORIGZONE = 2048,
	G_INDEX = 4096, G_DUPLICATE = 8192, G_LAST = 16384, G_EDITINDEX = 32768, G_INCLUDE = 65536 };

static const struct spec {
	const char *name;
	int id, kind;
	unsigned ext;   /* required extension, 0 for the base language */
	unsigned tags;  /* G_* allowed */
	int minpos, maxpos; /* positional arguments (string lists, or a number for size) */
	int tests;      /* 0, 1 (one test), 2 (a test list) */
} specs[] = {
	{"require", SV_C_REQUIRE, K_CONTROL, 0, 0, 1, 1, 0},
	{"if", SV_C_IF, K_CONTROL, 0, 0, 0, 0, 1},
	{"elsif", SV_C_ELSIF, K_CONTROL, 0, 0, 0, 0, 1},
	{"else", SV_C_ELSE, K_CONTROL, 0, 0, 0, 0, 0},
	{"stop", SV_C_STOP, K_CONTROL, 0, 0, 0, 0, 0},
	{"keep", SV_C_KEEP, K_CMD, 0, G_FLAGS, 0, 0, 0},
	{"discard", SV_C_DISCARD, K_CMD, 0, 0, 0, 0, 0},
	{"fileinto", SV_C_FILEINTO, K_CMD, SX_FILEINTO, G_COPY | G_CREATE | G_FLAGS, 1, 1, 0},
	{"redirect", SV_C_REDIRECT, K_CMD, 0, G_COPY, 1, 1, 0},
	{"reject", SV_C_REJECT, K_CMD, SX_REJECT, 0, 1, 1, 0},
	{"ereject", SV_C_EREJECT, K_CMD, SX_EREJECT, 0, 1, 1, 0},
	{"setflag", SV_C_SETFLAG, K_CMD, SX_IMAP4FLAGS, 0, 1, 2, 0},
	{"addflag", SV_C_ADDFLAG, K_CMD, SX_IMAP4FLAGS, 0, 1, 2, 0},
	{"removeflag", SV_C_REMOVEFLAG, K_CMD, SX_IMAP4FLAGS, 0, 1, 2, 0},
	{"set", SV_C_SET, K_CMD, SX_VARIABLES, G_MODS, 2, 2, 0},
	{"vacation", SV_C_VACATION, K_CMD, SX_VACATION, G_VACATION, 1, 1, 0},
	{"include", SV_C_INCLUDE, K_CMD, SX_INCLUDE, G_INCLUDE, 1, 1, 0},
	{"return", SV_C_RETURN, K_CMD, SX_INCLUDE, 0, 0, 0, 0},
	{"global", SV_C_GLOBAL, K_CMD, SX_INCLUDE, 0, 1, 1, 0},
	{"addheader", SV_C_ADDHEADER, K_CMD, SX_EDITHEADER, G_LAST, 2, 2, 0},
	{"deleteheader", SV_C_DELETEHEADER, K_CMD, SX_EDITHEADER, G_CMP | G_MATCH | G_EDITINDEX, 1, 2, 0},
	{"address", SV_T_ADDRESS, K_TEST, 0, G_CMP | G_MATCH | G_PART | G_INDEX, 2, 2, 0},
	{"header", SV_T_HEADER, K_TEST, 0, G_CMP | G_MATCH | G_INDEX, 2, 2, 0},
	{"envelope", SV_T_ENVELOPE, K_TEST, SX_ENVELOPE, G_CMP | G_MATCH | G_PART, 2, 2, 0},
	{"exists", SV_T_EXISTS, K_TEST, 0, 0, 1, 1, 0},
	{"size", SV_T_SIZE, K_TEST, 0, G_SIZE, 1, 1, 0},
	{"allof", SV_T_ALLOF, K_TEST, 0, 0, 0, 0, 2},
	{"anyof", SV_T_ANYOF, K_TEST, 0, 0, 0, 0, 2},
	{"not", SV_T_NOT, K_TEST, 0, 0, 0, 0, 1},
	{"true", SV_T_TRUE, K_TEST, 0, 0, 0, 0, 0},
	{"false", SV_T_FALSE, K_TEST, 0, 0, 0, 0, 0},
	{"body", SV_T_BODY, K_TEST, SX_BODY, G_CMP | G_MATCH | G_BODY, 1, 1, 0},
	{"hasflag", SV_T_HASFLAG, K_TEST, SX_IMAP4FLAGS, G_CMP | G_MATCH, 1, 2, 0},
	{"string", SV_T_STRING, K_TEST, SX_VARIABLES, G_CMP | G_MATCH, 2, 2, 0},
	{"mailboxexists", SV_T_MAILBOXEXISTS, K_TEST, SX_MAILBOX, 0, 1, 1, 0},
	{"date", SV_T_DATE, K_TEST, SX_DATE, G_CMP | G_MATCH | G_ZONE | G_ORIGZONE | G_INDEX, 3, 3, 0},
	{"currentdate", SV_T_CURRENTDATE, K_TEST, SX_DATE, G_CMP | G_MATCH | G_ZONE, 2, 2, 0},
	{"duplicate", SV_T_DUPLICATE, K_TEST, SX_DUPLICATE, G_DUPLICATE, 0, 0, 0},
};

static const struct spec *spec_find(const char *name)
{
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		if (!strcmp(specs[i].name, name)) {
			return &specs[i];
		}
	}
	return NULL;
}

static const struct {
	const char *name;
	unsigned bit;
} extensions[] = {
	{"fileinto", SX_FILEINTO}, {"reject", SX_REJECT}, {"envelope", SX_ENVELOPE},
	{"imap4flags", SX_IMAP4FLAGS}, {"variables", SX_VARIABLES}, {"relational", SX_RELATIONAL},
	{"subaddress", SX_SUBADDRESS}, {"copy", SX_COPY}, {"body", SX_BODY}, {"mailbox", SX_MAILBOX},
	{"ereject", SX_EREJECT}, {"comparator-i;ascii-numeric", SX_NUMERIC},
	{"vacation", SX_VACATION}, {"vacation-seconds", SX_VACATION_SECONDS}, {"date", SX_DATE},
	{"index", SX_INDEX}, {"duplicate", SX_DUPLICATE}, {"editheader", SX_EDITHEADER},
	{"include", SX_INCLUDE},
	{"comparator-i;octet", 0}, {"comparator-i;ascii-casemap", 0},
};

static const char *ext_name(unsigned bit)
{
	for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++) {
		if (extensions[i].bit == bit) {
			return extensions[i].name;
		}
	}
	return "?";
}

/* ---- the parse tree ---- */

static struct sv_node *parse_test(struct lexer *x);

static struct sv_arg *new_arg(struct lexer *x, enum sv_arg_kind kind)
{
	if (++x->s->nodes > SIEVE_NODES_MAX) {
		fail_tok(x, "script too large (more than %d commands and arguments)", SIEVE_NODES_MAX);
		return NULL;
	}
	struct sv_arg *a = alloc(x, sizeof *a);
	a->kind = kind;
	a->line = x->tline;
	a->col = x->tcol;
	return a;
}

/* A string or a [list] of strings, the current token its first. */
static struct sv_arg *parse_strings(struct lexer *x)
{
	struct sv_arg *a = new_arg(x, SV_STRS);
	if (!a) {
		return NULL;
	}
	int list = x->t == T_LBRACKET;
	a->single = !list;
	if (list && next(x) != 0) {
		return NULL;
	}
	for (int cap = 0;;) {
		if (x->t != T_STR) {
			fail_tok(x, "a string was expected");
			return NULL;
		}
		if (a->n == cap) {
			cap = cap ? cap * 2 : 4;
			char **v = alloc(x, (size_t)cap * sizeof *v);
			if (a->n) {
				memcpy(v, a->s, (size_t)a->n * sizeof *v);
			}
			a->s = v;
		}
		a->s[a->n++] = dup_str(x, x->str.data ? x->str.data : "", x->str.len);
		if (next(x) != 0) {
			return NULL;
		}
		if (!list) {
			return a;
		}
		if (x->t == T_RBRACKET) {
			return next(x) == 0 ? a : NULL;
		}
		if (x->t != T_COMMA || next(x) != 0) {
			fail_tok(x, "',' or ']' was expected in a string list");
			return NULL;
		}
	}
}

/* The arguments of a command or test: tags, numbers and string lists,
 * then a test or a test list. */
static int parse_args(struct lexer *x, struct sv_arg ***args, int *nargs, struct sv_node *n)
{
	int cap = 0;
	for (;;) {
		struct sv_arg *a = NULL;
		if (x->t == T_TAG) {
			a = new_arg(x, SV_TAG);
			if (a) {
				a->tag = dup_str(x, x->ident, strlen(x->ident));
			}
			if (!a || next(x) != 0) {
				return -1;
			}
		} else if (x->t == T_NUM) {
			a = new_arg(x, SV_NUM);
			if (a) {
				a->num = x->num;
			}
			if (!a || next(x) != 0) {
				return -1;
			}
		} else if (x->t == T_STR || x->t == T_LBRACKET) {
			if (!(a = parse_strings(x))) {
				return -1;
			}
		} else {
			break;
		}
		if (*nargs == cap) {
			cap = cap ? cap * 2 : 8;
			struct sv_arg **v = alloc(x, (size_t)cap * sizeof *v);
			if (*nargs) {
				memcpy(v, *args, (size_t)*nargs * sizeof *v);
			}
			*args = v;
		}
		(*args)[(*nargs)++] = a;
	}
	if (x->t == T_IDENT) {
		n->tests = alloc(x, sizeof *n->tests);
		n->ntests = 1;
		return (n->tests[0] = parse_test(x)) ? 0 : -1;
	}
	if (x->t != T_LPAREN) {
		return 0;
	}
	n->ntests = -1; /* a test list, even of one */
	int ncap = 0, count = 0;
	do {
		if (next(x) != 0) {
			return -1;
		}
		if (count == ncap) {
			ncap = ncap ? ncap * 2 : 4;
			struct sv_node **v = alloc(x, (size_t)ncap * sizeof *v);
			if (count) {
				memcpy(v, n->tests, (size_t)count * sizeof *v);
			}
			n->tests = v;
		}
		if (!(n->tests[count++] = parse_test(x))) {
			return -1;
		}
	} while (x->t == T_COMMA);
	if (x->t != T_RPAREN) {
		return fail_tok(x, "',' or ')' was expected in a test list");
	}
	n->ntests = -count; /* negative: written as a list */
	return next(x);
}

static int check(struct lexer *x, struct sv_node *n, const struct spec *sp, struct sv_arg **args,
	int nargs);

/* identifier arguments: the node, checked against its spec. */
static struct sv_node *parse_node(struct lexer *x, int want_test)
{
	if (x->t != T_IDENT) {
		fail_tok(x, want_test ? "a test was expected" : "a command was expected");
		return NULL;
	}
	if (++x->depth > SIEVE_DEPTH_MAX) {
		fail_tok(x, "nested more than %d deep", SIEVE_DEPTH_MAX);
		return NULL;
	}
	int line = x->tline, col = x->tcol;
	const struct spec *sp = spec_find(x->ident);
	if (!sp || (sp->kind == K_TEST) != want_test) {
		fail_tok(x, "unknown %s '%s'", want_test ? "test" : "command", x->ident);
		return NULL;
	}
	if (sp->ext && !(x->s->requires & sp->ext)) {
		fail_tok(x, "'%s' needs require \"%s\"", sp->name, ext_name(sp->ext));
		return NULL;
	}
	struct sv_node *n = alloc(x, sizeof *n);
	n->id = sp->id;
	n->line = line;
	n->col = col;
	n->seconds = -1;
	struct sv_arg **args = NULL;
	int nargs = 0;
	if (next(x) != 0 || parse_args(x, &args, &nargs, n) != 0 || check(x, n, sp, args, nargs) != 0) {
		return NULL;
	}
	x->depth--;
	return n;
}

static struct sv_node *parse_test(struct lexer *x)
{
	return parse_node(x, 1);
}

static struct sv_node *parse_commands(struct lexer *x, int in_block);

/* A command and its ";" or block. */
static struct sv_node *parse_command(struct lexer *x, const struct sv_node *prev)
{
	struct sv_node *n = parse_node(x, 0);
	if (!n) {
		return NULL;
	}
	int blocky = n->id == SV_C_IF || n->id == SV_C_ELSIF || n->id == SV_C_ELSE;
	if ((n->id == SV_C_ELSIF || n->id == SV_C_ELSE) &&
	        (!prev || (prev->id != SV_C_IF && prev->id != SV_C_ELSIF))) {
		fail_at(x, n->line, n->col, "%s without a preceding if",
			n->id == SV_C_ELSE ? "else" : "elsif");
		return NULL;
	}
	if (n->id == SV_C_REQUIRE && prev && prev->id != SV_C_REQUIRE) {
		fail_at(x, n->line, n->col, "require must come before any other command");
		return NULL;
	}
	if (!blocky) {
		if (x->t != T_SEMI) {
			fail_tok(x, "';' was expected");
			return NULL;
		}
		return next(x) == 0 ? n : NULL;
	}
	if (x->t != T_LBRACE) {
		fail_tok(x, "'{' was expected");
		return NULL;
	}
	if (++x->depth > SIEVE_DEPTH_MAX) {
		fail_tok(x, "nested more than %d deep", SIEVE_DEPTH_MAX);
		return NULL;
	}
	if (next(x) != 0) {
		return NULL;
	}
	n->block = parse_commands(x, 1);
	if (x->failed) {
		return NULL;
	}
	x->depth--;
	return next(x) == 0 ? n : NULL; /* the '}' */
}

static struct sv_node *parse_commands(struct lexer *x, int in_block)
{
	struct sv_node *first = NULL, *last = NULL;
	while (x->t != T_EOF && x->t != T_RBRACE && !x->failed) {
		struct sv_node *n = parse_command(x, last);
		if (!n) {
			return NULL;
		}
		if (n->id == SV_C_REQUIRE && in_block) {
			fail_at(x, n->line, n->col, "require must come before any other command");
			return NULL;
		}
		if (last) {
			last->next = n;
		} else {
			first = n;
		}
		last = n;
	}
	if (x->t == T_RBRACE && !in_block) {
		fail_tok(x, "'}' without a block");
	} else if (x->t == T_EOF && in_block) {
		fail_tok(x, "'}' was expected before the end");
	}
	return first;
}

/* ---- checking the arguments ---- */

static int is_single(const struct sv_arg *a)
{
	return a->kind == SV_STRS && a->n == 1;
}

/* require: the extensions it names, each known. */
static int check_require(struct lexer *x, struct sv_node *n)
{
	const struct sv_arg *a = n->pos[0];
	for (int i = 0; i < a->n; i++) {
		size_t k = 0;
		while (k < sizeof extensions / sizeof extensions[0] &&
		       rl_strcasecmp(extensions[k].name, a->s[i]) != 0) {
			k++;
		}
		if (k == sizeof extensions / sizeof extensions[0]) {
			return fail_at(x, a->line, a->col, "unsupported extension \"%s\"", a->s[i]);
		}
		x->s->requires |= extensions[k].bit;
	}
	return 0;
}

static int rel_op(const char *s)
{
	static const char *ops[] = {"gt", "ge", "lt", "le", "eq", "ne"};
	for (int i = 0; i < 6; i++) {
		if (!rl_strcasecmp(s, ops[i])) {
			return i;
		}
	}
	return -1;
}

/* A tag's argument: the next argument, of the kind wanted. */
static struct sv_arg *tag_value(struct lexer *x, struct sv_arg **args, int nargs, int *i,
	enum sv_arg_kind kind, int single)
{
	const struct sv_arg *t = args[*i];
	if (*i + 1 >= nargs || args[*i + 1]->kind != kind || (single && !is_single(args[*i + 1]))) {
		fail_at(x, t->line, t->col, ":%s needs %s", t->tag,
			kind == SV_NUM ? "a number" : single ? "a string" : "a string list");
		return NULL;
	}
	return args[++*i];
}

static int set_once(struct lexer *x, const struct sv_arg *t, int *field, int value, int *seen,
	unsigned bit)
{
	if (*seen & (int)bit) {
		return fail_at(x, t->line, t->col, "more than one %s", bit == 1 ? "match type" :
			bit == 2 ? "comparator" : bit == 4 ? "address part" : "tag of that kind");
	}
	*seen |= (int)bit;
	*field = value;
	return 0;
}

/* Comparators, match types, address parts and the relational tags. */
static int tag_match(struct lexer *x, struct sv_node *n, struct sv_arg **args, int nargs, int *i,
	unsigned groups, int *seen)
{
	const struct sv_arg *t = args[*i];
	const char *name = t->tag;
	static const char *parts[] = {"all", "localpart", "domain", "user", "detail"};
	static const char *matches[] = {"is", "contains", "matches", "count", "value"};
	for (int k = 0; (groups & G_PART) && k < 5; k++) {
		if (!strcmp(name, parts[k])) {
			if (k >= SV_USER && !(x->s->requires & SX_SUBADDRESS)) {
				return fail_at(x, t->line, t->col, ":%s needs require \"subaddress\"", name);
			}
			return set_once(x, t, &n->part, k, seen, 4);
		}
	}
	for (int k = 0; (groups & G_MATCH) && k < 5; k++) {
		if (strcmp(name, matches[k]) != 0) {
			continue;
		}
		if (k >= SV_COUNT) {
			struct sv_arg *op;
			if (!(x->s->requires & SX_RELATIONAL)) {
				return fail_at(x, t->line, t->col, ":%s needs require \"relational\"", name);
			}
			if (!(op = tag_value(x, args, nargs, i, SV_STRS, 1))) {
				return -1;
			}
			if ((n->rel = rel_op(op->s[0])) < 0) {
				return fail_at(x, op->line, op->col, "unknown relational operator \"%s\"",
					op->s[0]);
			}
		}
		return set_once(x, t, &n->match, k, seen, 1);
	}
	if ((groups & G_CMP) && !strcmp(name, "comparator")) {
		struct sv_arg *c = tag_value(x, args, nargs, i, SV_STRS, 1);
		if (!c) {
			return -1;
		}
		const char *cn = c->s[0];
		int cmp = !rl_strcasecmp(cn, "i;ascii-casemap") ? SV_CASEMAP
		          : !rl_strcasecmp(cn, "i;octet")       ? SV_OCTET
		          : !rl_strcasecmp(cn, "i;ascii-numeric") && (x->s->requires & SX_NUMERIC)
		                  ? SV_NUMERIC
		                  : -1;
		if (cmp < 0) {
			return fail_at(x, c->line, c->col, "unknown comparator \"%s\"%s", cn,
				!rl_strcasecmp(cn, "i;ascii-numeric") ? " (require it)" : "");
		}
		return set_once(x, t, &n->cmp, cmp, seen, 2);
	}
	return 1; /* not one of these */
}

static int tag_vacation(struct lexer *x, struct sv_node *n, struct sv_arg **args, int nargs,
	int *i)
{
	const struct sv_arg *t = args[*i];
	const char *name = t->tag;
	if (!strcmp(name, "days") || (!strcmp(name, "seconds") &&
	                               (x->s->requires & SX_VACATION_SECONDS))) {
		struct sv_arg *v = tag_value(x, args, nargs, i, SV_NUM, 0);
		if (!v) {
			return -1;
		}
		uint64_t mul = name[0] == 'd' ? 86400 : 1;
		n->seconds = v->num > (uint64_t)INT64_MAX / mul ? INT64_MAX : (int64_t)(v->num * mul);
		return 0;
	}
	struct sv_arg **slot = !strcmp(name, "subject") ? &n->subject
	                       : !strcmp(name, "from")  ? &n->from
	                       : !strcmp(name, "handle") ? &n->handle
	                       : !strcmp(name, "addresses") ? &n->addresses
	                                                    : NULL;
	if (slot) {
		return (*slot = tag_value(x, args, nargs, i, SV_STRS, slot != &n->addresses)) ? 0 : -1;
	}
	if (!strcmp(name, "mime")) {
		n->mime = 1;
		return 0;
	}
	return 1;
}

/* include's :personal / :global, :once, :optional. */
static int tag_include(struct lexer *x, struct sv_node *n, const struct sv_arg *t)
{
	const char *name = t->tag;
	int *flag = !strcmp(name, "once") ? &n->once : !strcmp(name, "optional") ? &n->optional
	                                                                        : NULL;
	if (flag) {
		*flag = 1;
		return 0;
	}
	if (strcmp(name, "personal") != 0 && strcmp(name, "global") != 0) {
		return 1;
	}
	if (n->global) {
		return fail_at(x, t->line, t->col, "more than one of :personal and :global");
	}
	n->global = name[0] == 'g' ? 1 : 2; /* 2: :personal said */
	return 0;
}

/* duplicate's :handle, :header, :uniqueid, :seconds and :last (RFC 7352). */
static int tag_duplicate(struct lexer *x, struct sv_node *n, struct sv_arg **args, int nargs,
	int *i)
{
	const struct sv_arg *t = args[*i];
	const char *name = t->tag;
	struct sv_arg **slot = !strcmp(name, "handle")   ? &n->handle
	                       : !strcmp(name, "header") ? &n->header
	                       : !strcmp(name, "uniqueid") ? &n->uniqueid
	                                                   : NULL;
	int once = slot ? *slot != NULL : !strcmp(name, "last") ? n->last : n->seconds >= 0;
	if (once) {
		return fail_at(x, t->line, t->col, "more than one :%s", name);
	}
	if (slot) {
		if (!(*slot = tag_value(x, args, nargs, i, SV_STRS, 1))) {
			return -1;
		}
		return n->header && n->uniqueid ? fail_at(x, t->line, t->col,
			"duplicate takes :header or :uniqueid, not both") : 0;
	}
	if (!strcmp(name, "last")) {
		n->last = 1;
		return 0;
	}
	if (strcmp(name, "seconds") != 0) {
		return 1;
	}
	struct sv_arg *v = tag_value(x, args, nargs, i, SV_NUM, 0);
	n->seconds = v && v->num < SIEVE_DUPLICATE_MAX ? (int64_t)v->num : SIEVE_DUPLICATE_MAX;
	return v ? 0 : -1;
}

/* :zone, :originalzone (RFC 5260 date), :index and :last (index). */
static int tag_date(struct lexer *x, struct sv_node *n, struct sv_arg **args, int nargs, int *i,
	unsigned groups)
{
	const struct sv_arg *t = args[*i];
	const char *name = t->tag;
	int zone = (groups & G_ZONE) && !strcmp(name, "zone");
	if (zone || ((groups & G_ORIGZONE) && !strcmp(name, "originalzone"))) {
		if (n->zone || n->origzone) {
			return fail_at(x, t->line, t->col, "more than one :zone or :originalzone");
		}
		n->origzone = !zone;
		return !zone || (n->zone = tag_value(x, args, nargs, i, SV_STRS, 1)) ? 0 : -1;
	}
	if (!(groups & (G_LAST | G_EDITINDEX)) &&
	        (!(groups & G_INDEX) || !(x->s->requires & SX_INDEX))) {
		return 1;
	}
	if (!strcmp(name, "last")) {
		n->last = 1;
		return 0;
	}
	if (strcmp(name, "index") != 0 || (groups & G_LAST)) {
		return 1;
	}
	struct sv_arg *v = tag_value(x, args, nargs, i, SV_NUM, 0);
	if (v && !v->num && !(groups & G_EDITINDEX)) { /* deleteheader: 0 is every one */
		return fail_at(x, v->line, v->col, ":index cannot be zero");
	}
	return v ? (n->index = v->num, 0) : -1;
}

static int tag_other(struct lexer *x, struct sv_node *n, struct sv_arg **args, int nargs, int *i,
	unsigned groups)
{
	const struct sv_arg *t = args[*i];
	const char *name = t->tag;
	static const char *mods[] = {"lower", "upper", "lowerfirst", "upperfirst", "quotewildcard",
		"length"};
	if ((groups & G_SIZE) && (!strcmp(name, "over") || !strcmp(name, "under"))) {
		n->over = name[0] == 'o' ? 1 : 2;
		return 0;
	}
	if ((groups & G_COPY) && !strcmp(name, "copy") && (x->s->requires & SX_COPY)) {
		n->copy = 1;
		return 0;
	}
	if ((groups & G_CREATE) && !strcmp(name, "create") && (x->s->requires & SX_MAILBOX)) {
		n->create = 1;
		return 0;
	}
	if ((groups & G_FLAGS) && !strcmp(name, "flags") && (x->s->requires & SX_IMAP4FLAGS)) {
		return (n->flags = tag_value(x, args, nargs, i, SV_STRS, 0)) ? 0 : -1;
	}
	if ((groups & G_BODY) && (!strcmp(name, "raw") || !strcmp(name, "text"))) {
		n->body = name[0] == 'r' ? SV_BODY_RAW : SV_BODY_TEXT;
		return 0;
	}
	if ((groups & G_BODY) && !strcmp(name, "content")) {
		n->body = SV_BODY_CONTENT;
		return (n->types = tag_value(x, args, nargs, i, SV_STRS, 0)) ? 0 : -1;
	}
	for (int k = 0; (groups & G_MODS) && k < 6; k++) {
		if (!strcmp(name, mods[k])) {
			n->mods |= 1u << k;
			return 0;
		}
	}
	if (groups & G_VACATION) {
		return tag_vacation(x, n, args, nargs, i);
	}
	if (groups & G_DUPLICATE) {
		return tag_duplicate(x, n, args, nargs, i);
	}
	if (groups & G_INCLUDE) {
		return tag_include(x, n, t);
	}
	return tag_date(x, n, args, nargs, i, groups);
}

static int check_semantics(struct lexer *x, struct sv_node *n, const struct spec *sp);

/* The tags, then the positional arguments, then the tests. */
static int check(struct lexer *x, struct sv_node *n, const struct spec *sp, struct sv_arg **args,
	int nargs)
{
	int seen = 0, i;
	for (i = 0; i < nargs && args[i]->kind == SV_TAG; i++) {
		int rc = tag_match(x, n, args, nargs, &i, sp->tags, &seen);
		if (rc > 0) {
			rc = tag_other(x, n, args, nargs, &i, sp->tags);
		}
		if (rc > 0) {
			return fail_at(x, args[i]->line, args[i]->col, "'%s' takes no :%s", sp->name,
				args[i]->tag);
		}
		if (rc < 0) {
			return -1;
		}
	}
	for (; i < nargs; i++) {
		if (args[i]->kind == SV_TAG) {
			return fail_at(x, args[i]->line, args[i]->col, ":%s must come before the other "
				"arguments of '%s'", args[i]->tag, sp->name);
		}
		if (n->npos == sp->maxpos) {
			return fail_at(x, args[i]->line, args[i]->col, "too many arguments for '%s'",
				sp->name);
		}
		int want_num = sp->id == SV_T_SIZE;
		if ((args[i]->kind == SV_NUM) != want_num) {
			return fail_at(x, args[i]->line, args[i]->col, "'%s' takes %s here", sp->name,
				want_num ? "a number" : "a string or string list");
		}
		n->pos[n->npos++] = args[i];
	}
	if (n->npos < sp->minpos) {
		return fail_at(x, n->line, n->col, "'%s' needs %d argument%s", sp->name, sp->minpos,
			sp->minpos > 1 ? "s" : "");
	}
	int ntests = n->ntests < 0 ? -n->ntests : n->ntests;
	if (sp->tests == 0 && ntests) {
		return fail_at(x, n->line, n->col, "'%s' takes no test", sp->name);
	}
	if (sp->tests == 1 && (ntests != 1 || n->ntests < 0)) {
		return fail_at(x, n->line, n->col, "'%s' needs one test", sp->name);
	}
	if (sp->tests == 2 && n->ntests >= 0) {
		return fail_at(x, n->line, n->col, "'%s' needs a test list: ( test, ... )", sp->name);
	}
	n->ntests = ntests;
	return check_semantics(x, n, sp);
}

static int need_single(struct lexer *x, const struct sv_node *n, int k, const char *what)
{
	const struct sv_arg *a = n->pos[k];
	return a->single ? 0 : fail_at(x, a->line, a->col, "%s must be a single string", what);
}

/* see sieve.h */
int sieve_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 64 || s[0] == '.') {
		return 0;
	}
	for (; *s; s++) {
		if (!is_alpha(*s) && !is_digit(*s) && *s != '.' && *s != '-') {
			return 0;
		}
	}
	return 1;
}

/* A header field name: printable ASCII but ':' (RFC 5322 2.2). */
int sieve_field_name_ok(const char *s)
{
	if (!*s || strlen(s) > 200) {
		return 0;
	}
	for (; *s; s++) {
		if (*s <= ' ' || *s >= 0x7f || *s == ':') {
			return 0;
		}
	}
	return 1;
}

/* addheader NAME VALUE, deleteheader ... NAME [VALUES]: a single name,
 * valid unless a variable makes it (then it is checked when run). */
static int check_edit(struct lexer *x, struct sv_node *n)
{
	const struct sv_arg *a = n->pos[0];
	if (need_single(x, n, 0, "the header name") ||
	        (n->id == SV_C_ADDHEADER && need_single(x, n, 1, "the value"))) {
		return -1;
	}
	if (!strstr(a->s[0], "${") && !sieve_field_name_ok(a->s[0])) {
		return fail_at(x, a->line, a->col, "invalid header name \"%s\"", a->s[0]);
	}
	return 0;
}

/* What the table cannot say: single strings, required tags, mixes. */
static int check_semantics(struct lexer *x, struct sv_node *n, const struct spec *sp)
{
	switch (sp->id) {
	case SV_C_REQUIRE:
		return check_require(x, n);
	case SV_C_FILEINTO:
		return need_single(x, n, 0, "the folder");
	case SV_C_REDIRECT:
		return need_single(x, n, 0, "the address");
	case SV_C_REJECT:
	case SV_C_EREJECT:
	case SV_C_VACATION:
		return need_single(x, n, 0, "the reason");
	case SV_C_SET:
		return need_single(x, n, 0, "the variable name") || need_single(x, n, 1, "the value");
	case SV_C_SETFLAG:
	case SV_C_ADDFLAG:
	case SV_C_REMOVEFLAG:
		return n->npos == 2 ? need_single(x, n, 0, "the variable name") : 0;
	case SV_T_SIZE:
		return n->over ? 0 : fail_at(x, n->line, n->col, "size needs :over or :under");
	case SV_T_DATE:
		if (need_single(x, n, 0, "the header name") || need_single(x, n, 1, "the date part")) {
			return -1;
		}
		break;
	case SV_T_CURRENTDATE:
		if (need_single(x, n, 0, "the date part")) {
			return -1;
		}
		break;
	case SV_C_ADDHEADER:
	case SV_C_DELETEHEADER:
		return check_edit(x, n);
	case SV_C_INCLUDE:
		if (need_single(x, n, 0, "the script name")) {
			return -1;
		}
		n->global = n->global == 1;
		if (!strstr(n->pos[0]->s[0], "${") && !sieve_name_ok(n->pos[0]->s[0])) {
			return fail_at(x, n->pos[0]->line, n->pos[0]->col, "invalid script name \"%s\"",
				n->pos[0]->s[0]);
		}
		return 0;
	case SV_C_GLOBAL:
		if (!(x->s->requires & SX_VARIABLES)) {
			return fail_at(x, n->line, n->col, "'global' needs require \"variables\"");
		}
		break;
	case SV_T_ENVELOPE:
		for (int i = 0; i < n->pos[0]->n; i++) {
			const char *e = n->pos[0]->s[i];
			if (rl_strcasecmp(e, "from") && rl_strcasecmp(e, "to") && !strstr(e, "${")) {
				return fail_at(x, n->pos[0]->line, n->pos[0]->col,
					"unknown envelope part \"%s\"", e);
			}
		}
		break;
	default:
		break;
	}
	if (n->last && !n->index && n->id != SV_T_DUPLICATE && n->id != SV_C_ADDHEADER) {
		return fail_at(x, n->line, n->col, ":last needs :index");
	}
	if (n->cmp == SV_NUMERIC && (n->match == SV_CONTAINS || n->match == SV_MATCHES)) {
		return fail_at(x, n->line, n->col, "i;ascii-numeric cannot do :%s",
			n->match == SV_CONTAINS ? "contains" : "matches");
	}
	return 0;
}

/* see sieve.h */
int sieve_compile(const char *src, size_t len, struct sieve_script **out, char *err,
	size_t errlen)
{
	*out = NULL;
	if (len > SIEVE_SCRIPT_MAX) {
		snprintf(err, errlen, "1:1: script larger than %d bytes", SIEVE_SCRIPT_MAX);
		return -1;
	}
	struct lexer x = {.p = src, .end = src + len, .line_start = src, .line = 1, .err = err,
		.errlen = errlen};
	x.s = xcalloc(1, sizeof *x.s);
	buf_init(&x.str);
	if (next(&x) == 0) {
		x.s->first = parse_commands(&x, 0);
	}
	buf_free(&x.str);
	if (x.failed) {
		sieve_free(x.s);
		return -1;
	}
	*out = x.s;
	return 0;
}

/* see sieve.h */
void sieve_free(struct sieve_script *s)
{
	if (!s) {
		return;
	}
	for (size_t i = 0; i < s->nmem; i++) {
		free(s->mem[i]);
	}
	free(s->mem);
	free(s);
}

/* see sieve.h */
unsigned sieve_requires(const struct sieve_script *s)
{
	return s->requires;
}
