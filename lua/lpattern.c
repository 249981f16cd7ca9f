/*
 * lpattern.c - string.find, string.match, string.gmatch and string.gsub
 * with Lua 5.1's patterns, written for Rumble so that a pattern cannot
 * hold or crash a worker.
 *
 * Lua's own matcher runs in C, out of the instruction budget's reach, and
 * recurses once per pattern item: ("a*"):rep(12) .. "b" against forty a's
 * takes hours, and ("a?"):rep(300000) overflows the C stack (the server
 * died of it). This one has the same semantics (the Lua 5.1 reference
 * manual, section 5.4.1, and its error messages), and two bounds:
 *   - every step of the matcher (and each byte a plain find compares) is
 *     charged to the caller's instruction budget (rl_budget_charge), so a
 *     runaway match ends with "script ran too long" like a runaway loop;
 *   - the recursion is at most MAXDEPTH deep ("pattern too complex", as
 *     later Lua versions say).
 * Patterns end at their first NUL, as in Lua 5.1 (%z matches one).
 */
#include <ctype.h>
#include <string.h>

#include "lua/rl.h"

#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAXCAPTURES 32
#define MAXDEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define CHARGE_EVERY 1024
#define UNBUDGETED_MAX 100000000L /* steps, where no call budget is on */

#define uchar(c) ((unsigned char)(c))

struct mstate {
	const char *src, *src_end;
	lua_State *L;
	int level, depth;
	long steps; /* not yet charged */
	long total; /* all of them, for a state with no budget */
	struct {
		const char *init;
		ptrdiff_t len;
	} cap[MAXCAPTURES];
};

static void charge(struct mstate *ms, long n)
{
	ms->steps += n;
	if (ms->steps >= CHARGE_EVERY) {
		ms->total += ms->steps;
		if (!rl_budget_charge(ms->L, ms->steps) && ms->total > UNBUDGETED_MAX) {
			luaL_error(ms->L, "pattern too complex");
		}
		ms->steps = 0;
	}
}

static const char *class_end(struct mstate *ms, const char *p)
{
	switch (*p++) {
	case L_ESC:
		if (*p == '\0') {
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		}
		return p + 1;
	case '[':
		if (*p == '^') {
			p++;
		}
		do { /* a ']' right after '[' or '[^' is a member */
			if (*p == '\0') {
				luaL_error(ms->L, "malformed pattern (missing ']')");
			}
			if (*(p++) == L_ESC && *p != '\0') {
				p++;
			}
		} while (*p != ']');
		return p + 1;
	default:
		return p;
	}
}

/* c against %cl (cl a letter: its class; else cl itself). */
static int class_match(int c, int cl)
{
	int res;
	switch (tolower(cl)) {
	case 'a':
		res = isalpha(c);
		break;
	case 'c':
		res = iscntrl(c);
		break;
	case 'd':
		res = isdigit(c);
		break;
	case 'l':
		res = islower(c);
		break;
	case 'p':
		res = ispunct(c);
		break;
	case 's':
		res = isspace(c);
		break;
	case 'u':
		res = isupper(c);
		break;
	case 'w':
		res = isalnum(c);
		break;
	case 'x':
		res = isxdigit(c);
		break;
	case 'z':
		res = c == 0;
		break;
	default:
		return cl == c;
	}
	return islower(cl) ? res != 0 : res == 0;
}

/* c against the set from p ('[') to ec (its ']'). */
static int set_match(int c, const char *p, const char *ec)
{
	int in = 1;
	if (p[1] == '^') {
		in = 0;
		p++;
	}
	while (++p < ec) {
		if (*p == L_ESC) {
			p++;
			if (class_match(c, uchar(*p))) {
				return in;
			}
		} else if (p[1] == '-' && p + 2 < ec) {
			p += 2;
			if (uchar(p[-2]) <= c && c <= uchar(*p)) {
				return in;
			}
		} else if (uchar(*p) == c) {
			return in;
		}
	}
	return !in;
}

/* The byte at s (which must be before src_end) against the class p..ep. */
static int single_match(int c, const char *p, const char *ep)
{
	switch (*p) {
	case '.':
		return 1;
	case L_ESC:
		return class_match(c, uchar(p[1]));
	case '[':
		return set_match(c, p, ep - 1);
	default:
		return uchar(*p) == c;
	}
}

static int here(struct mstate *ms, const char *s, const char *p, const char *ep)
{
	return s < ms->src_end && single_match(uchar(*s), p, ep);
}

static const char *match(struct mstate *ms, const char *s, const char *p);

static const char *match_balance(struct mstate *ms, const char *s, const char *p)
{
	if (p[0] == '\0' || p[1] == '\0') {
		luaL_error(ms->L, "unbalanced pattern");
	}
	if (s >= ms->src_end || *s != p[0]) {
		return NULL;
	}
	const char *start = s;
	int depth = 1;
	while (++s < ms->src_end) {
		if (*s == p[1]) {
			if (--depth == 0) {
				charge(ms, s - start);
				return s + 1;
			}
		} else if (*s == p[0]) {
			depth++;
		}
	}
	charge(ms, s - start);
	return NULL;
}

static const char *max_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
	ptrdiff_t i = 0;
	while (here(ms, s + i, p, ep)) {
		i++;
	}
	charge(ms, i);
	for (; i >= 0; i--) { /* the longest first */
		const char *r = match(ms, s + i, ep + 1);
		if (r) {
			return r;
		}
	}
	return NULL;
}

static const char *min_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
	for (;;) {
		const char *r = match(ms, s, ep + 1);
		if (r) {
			return r;
		}
		if (!here(ms, s, p, ep)) {
			return NULL;
		}
		s++;
	}
}

static const char *start_capture(struct mstate *ms, const char *s, const char *p, ptrdiff_t what)
{
	if (ms->level >= MAXCAPTURES) {
		luaL_error(ms->L, "too many captures");
	}
	ms->cap[ms->level].init = s;
	ms->cap[ms->level].len = what;
	ms->level++;
	const char *r = match(ms, s, p);
	if (!r) {
		ms->level--;
	}
	return r;
}

static const char *end_capture(struct mstate *ms, const char *s, const char *p)
{
	int l = ms->level - 1;
	while (l >= 0 && ms->cap[l].len != CAP_UNFINISHED) {
		l--;
	}
	if (l < 0) {
		luaL_error(ms->L, "invalid pattern capture");
	}
	ms->cap[l].len = s - ms->cap[l].init;
	const char *r = match(ms, s, p);
	if (!r) {
		ms->cap[l].len = CAP_UNFINISHED;
	}
	return r;
}

static int capture_index(struct mstate *ms, int c)
{
	int l = c - '1';
	if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED) {
		luaL_error(ms->L, "invalid capture index");
	}
	return l;
}

static const char *match_capture(struct mstate *ms, const char *s, int c)
{
	int l = capture_index(ms, c);
	size_t len = (size_t)ms->cap[l].len;
	charge(ms, (long)len);
	if ((size_t)(ms->src_end - s) >= len && memcmp(ms->cap[l].init, s, len) == 0) {
		return s + len;
	}
	return NULL;
}

/* %f[set]: the set does not match the byte before s, and matches s's. */
static const char *frontier(struct mstate *ms, const char *s, const char *p, const char **next)
{
	if (*p != '[') {
		luaL_error(ms->L, "missing '[' after '%%f' in pattern");
	}
	const char *ep = class_end(ms, p);
	int before = s == ms->src ? 0 : uchar(s[-1]);
	int at = s < ms->src_end ? uchar(*s) : 0;
	*next = ep;
	return set_match(before, p, ep - 1) || !set_match(at, p, ep - 1) ? NULL : s;
}

/* A single class, and its quantifier if any, at p. */
static const char *match_item(struct mstate *ms, const char *s, const char *p, const char **next)
{
	const char *ep = class_end(ms, p);
	int m = here(ms, s, p, ep);
	switch (*ep) {
	case '?':
		if (m) {
			const char *r = match(ms, s + 1, ep + 1);
			if (r) {
				*next = NULL;
				return r;
			}
		}
		*next = ep + 1;
		return s;
	case '*':
		*next = NULL;
		return max_expand(ms, s, p, ep);
	case '+':
		*next = NULL;
		return m ? max_expand(ms, s + 1, p, ep) : NULL;
	case '-':
		*next = NULL;
		return min_expand(ms, s, p, ep);
	default:
		*next = ep;
		return m ? s + 1 : NULL;
	}
}

/* Where a match of p from s ends, or NULL. *next: where the pattern goes
 * on from s (NULL: it was matched to its end). */
static const char *match_step(struct mstate *ms, const char *s, const char *p, const char **next)
{
	*next = NULL;
	switch (*p) {
	case '(':
		return p[1] == ')' ? start_capture(ms, s, p + 2, CAP_POSITION)
		                   : start_capture(ms, s, p + 1, CAP_UNFINISHED);
	case ')':
		return end_capture(ms, s, p + 1);
	case '\0':
		return s;
	case '$':
		if (p[1] == '\0') {
			return s == ms->src_end ? s : NULL;
		}
		break;
	case L_ESC:
		if (p[1] == 'b') {
			*next = p + 4;
			return match_balance(ms, s, p + 2);
		}
		if (p[1] == 'f') {
			return frontier(ms, s, p + 2, next);
		}
		if (isdigit(uchar(p[1]))) {
			*next = p + 2;
			return match_capture(ms, s, uchar(p[1]));
		}
		break;
	}
	return match_item(ms, s, p, next);
}

static const char *match(struct mstate *ms, const char *s, const char *p)
{
	if (++ms->depth > MAXDEPTH) {
		luaL_error(ms->L, "pattern too complex");
	}
	const char *next = p;
	while (s && next) { /* items that need no backtracking, in a loop */
		charge(ms, 1);
		s = match_step(ms, s, next, &next);
	}
	ms->depth--;
	return s;
}

/* ---- captures ---- */

static void push_capture(struct mstate *ms, int i, const char *s, const char *e)
{
	if (i >= ms->level) {
		if (i != 0) {
			luaL_error(ms->L, "invalid capture index");
		}
		lua_pushlstring(ms->L, s, (size_t)(e - s)); /* the whole match */
		return;
	}
	ptrdiff_t l = ms->cap[i].len;
	if (l == CAP_UNFINISHED) {
		luaL_error(ms->L, "unfinished capture");
	}
	if (l == CAP_POSITION) {
		lua_pushinteger(ms->L, ms->cap[i].init - ms->src + 1);
	} else {
		lua_pushlstring(ms->L, ms->cap[i].init, (size_t)l);
	}
}

/* The captures, or the whole match (s..e) when there are none and s. */
static int push_captures(struct mstate *ms, const char *s, const char *e)
{
	int n = ms->level == 0 && s ? 1 : ms->level;
	luaL_checkstack(ms->L, n, "too many captures");
	for (int i = 0; i < n; i++) {
		push_capture(ms, i, s, e);
	}
	return n;
}

static void ms_init(struct mstate *ms, lua_State *L, const char *s, size_t len)
{
	ms->L = L;
	ms->src = s;
	ms->src_end = s + len;
	ms->level = 0;
	ms->depth = 0;
	ms->steps = 0;
	ms->total = 0;
}

/* ---- find, match ---- */

static ptrdiff_t posrelat(lua_Integer pos, size_t len)
{
	if (pos < 0) {
		pos += (lua_Integer)len + 1;
	}
	return pos >= 0 ? (ptrdiff_t)pos : 0;
}

/* A plain search, each comparison charged as it goes. */
static const char *plain_find(struct mstate *ms, const char *s, size_t ls, const char *p, size_t lp)
{
	if (lp == 0) {
		return s;
	}
	for (const char *end = s + ls; lp <= (size_t)(end - s);) {
		const char *hit = memchr(s, *p, (size_t)(end - s) - lp + 1);
		if (!hit) {
			return NULL;
		}
		charge(ms, (long)lp);
		if (memcmp(hit + 1, p + 1, lp - 1) == 0) {
			return hit;
		}
		s = hit + 1;
	}
	return NULL;
}

static int find_aux(lua_State *L, int find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	ptrdiff_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init < 0) {
		init = 0;
	} else if ((size_t)init > ls) {
		init = (ptrdiff_t)ls;
	}
	struct mstate ms;
	ms_init(&ms, L, s, ls);
	if (find && (lua_toboolean(L, 4) || !strpbrk(p, SPECIALS))) {
		const char *hit = plain_find(&ms, s + init, ls - (size_t)init, p, lp);
		if (hit) {
			lua_pushinteger(L, hit - s + 1);
			lua_pushinteger(L, hit - s + (ptrdiff_t)lp);
			return 2;
		}
	} else {
		int anchor = *p == '^';
		p += anchor;
		const char *s1 = s + init;
		do {
			ms.level = 0;
			ms.depth = 0;
			const char *e = match(&ms, s1, p);
			if (e && find) {
				lua_pushinteger(L, s1 - s + 1);
				lua_pushinteger(L, e - s);
				return push_captures(&ms, NULL, NULL) + 2;
			}
			if (e) {
				return push_captures(&ms, s1, e);
			}
		} while (s1++ < ms.src_end && !anchor);
	}
	lua_pushnil(L);
	return 1;
}

static int str_find(lua_State *L)
{
	return find_aux(L, 1);
}

static int str_match(lua_State *L)
{
	return find_aux(L, 0);
}

/* ---- gmatch ---- */

static int gmatch_next(lua_State *L)
{
	size_t ls;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tostring(L, lua_upvalueindex(2));
	struct mstate ms;
	ms_init(&ms, L, s, ls);
	for (const char *src = s + lua_tointeger(L, lua_upvalueindex(3)); src <= ms.src_end;
	        src++) {
		ms.level = 0;
		ms.depth = 0;
		const char *e = match(&ms, src, p);
		if (e) {
			ptrdiff_t next = e - s + (e == src); /* past an empty match */
			lua_pushinteger(L, next);
			lua_replace(L, lua_upvalueindex(3));
			return push_captures(&ms, src, e);
		}
	}
	return 0;
}

static int str_gmatch(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_settop(L, 2);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* ---- gsub ---- */

static void add_string(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e)
{
	size_t l;
	const char *r = lua_tolstring(ms->L, 3, &l);
	charge(ms, (long)l);
	for (size_t i = 0; i < l; i++) {
		if (r[i] != L_ESC) {
			luaL_addchar(b, r[i]);
		} else if (!isdigit(uchar(r[++i]))) {
			luaL_addchar(b, r[i]); /* "%%", or a '%' at the end: its NUL */
		} else if (r[i] == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else {
			push_capture(ms, r[i] - '1', s, e);
			luaL_addvalue(b);
		}
	}
}

static void add_value(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e)
{
	lua_State *L = ms->L;
	switch (lua_type(L, 3)) {
	case LUA_TFUNCTION:
		lua_pushvalue(L, 3);
		lua_call(L, push_captures(ms, s, e), 1);
		break;
	case LUA_TTABLE:
		push_capture(ms, 0, s, e);
		lua_gettable(L, 3);
		break;
	default: /* a string or a number */
		add_string(ms, b, s, e);
		return;
	}
	if (!lua_toboolean(L, -1)) { /* nil or false: the match stays */
		lua_pop(L, 1);
		lua_pushlstring(L, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	}
	luaL_addvalue(b);
}

static int str_gsub(lua_State *L)
{
	size_t ls;
	const char *src = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checkstring(L, 2);
	int tr = lua_type(L, 3);
	lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	luaL_argcheck(L,
	        tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE,
	        3, "string/function/table expected");
	int anchor = *p == '^';
	p += anchor;
	struct mstate ms;
	ms_init(&ms, L, src, ls);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	lua_Integer n = 0;
	while (n < max) {
		ms.level = 0;
		ms.depth = 0;
		const char *e = match(&ms, src, p);
		if (e) {
			n++;
			add_value(&ms, &b, src, e);
		}
		if (e && e > src) {
			src = e;
		} else if (src < ms.src_end) {
			luaL_addchar(&b, *src++);
		} else {
			break;
		}
		if (anchor) {
			break;
		}
	}
	luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

/* see rl.h */
void rl_open_pattern(lua_State *L)
{
	static const luaL_Reg fns[] = {
	        {"find", str_find},
	        {"match", str_match},
	        {"gmatch", str_gmatch},
	        {"gfind", str_gmatch},
	        {"gsub", str_gsub},
	        {NULL, NULL},
	};
	lua_getglobal(L, "string");
	luaL_register(L, NULL, fns);
	lua_pop(L, 1);
}
