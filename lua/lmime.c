/*
 * lmime.c - the "mime" module of LuaSocket for scripts: require("mime")
 * (also "mime.core"). The low-level functions are here in C, written
 * from LuaSocket's documented behaviour: b64/unb64, qp/unqp, wrp/qpwrp,
 * eol and dot. Each takes the text left over from the previous call (or
 * a context number) and the next chunk, and returns what it could
 * convert plus what it must keep for the next call; a nil chunk means the
 * end of the data (padding, the last line break). The high-level filters
 * (normalize, encode, decode, wrap, stuff) are Lua on top of ltn12's
 * filter.cycle, in MIME_LUA below.
 *
 * Everything is built in luaL_Buffers: output is bounded by the state's
 * memory limit, and an error cannot leak C memory.
 */
#include <string.h>

#include "rl.h"

#define CRLF "\r\n"
#define WRAP_DEFAULT 76 /* RFC 2045 6.7 (5): lines of at most 76 characters */

static const char b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hex_digits[] = "0123456789ABCDEF";

/* The chunk of argument i and the one of i+1 joined: the leftover of the
 * last call and the new chunk. Left on the stack (valid until return). */
static const char *joined(lua_State *L, int i, size_t *n, int *last)
{
	*last = lua_isnoneornil(L, i + 1);
	luaL_checkstring(L, i);
	if (*last) {
		return lua_tolstring(L, i, n);
	}
	luaL_checkstring(L, i + 1);
	lua_pushvalue(L, i);
	lua_pushvalue(L, i + 1);
	lua_concat(L, 2);
	return lua_tolstring(L, -1, n);
}

/* Pushes the buffer's text, or nil when it is empty at the end. */
static void push_out(lua_State *L, luaL_Buffer *b, int last)
{
	luaL_pushresult(b);
	if (last && lua_objlen(L, -1) == 0) {
		lua_pop(L, 1);
		lua_pushnil(L);
	}
}

/* ---- base64 (RFC 2045 6.8) ---- */

static void b64_atom(luaL_Buffer *b, const unsigned char *p, size_t n)
{
	unsigned v = (unsigned)p[0] << 16 | (n > 1 ? (unsigned)p[1] << 8 : 0) | (n > 2 ? p[2] : 0);
	char out[4];
	for (int k = 0; k < 4; k++) {
		out[k] = (size_t)k <= n ? b64_alphabet[(v >> (18 - 6 * k)) & 63] : '=';
	}
	luaL_addlstring(b, out, 4);
}

/* mime.b64(C [, D]): A, B. A encodes the longest prefix of C..D made of
 * whole 3-byte groups, B is the rest; with D nil, A is padded and B nil. */
static int mime_b64(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		lua_pushnil(L);
		return 2;
	}
	size_t n;
	int last;
	const unsigned char *s = (const unsigned char *)joined(L, 1, &n, &last);
	size_t whole = n - n % 3;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < whole; i += 3) {
		b64_atom(&b, s + i, 3);
	}
	if (last && whole < n) {
		b64_atom(&b, s + whole, n - whole);
	}
	push_out(L, &b, last);
	if (last) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, (const char *)s + whole, n - whole);
	}
	return 2;
}

static int b64_value(unsigned char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : c == '=' ? 64 : -1;
}

/* Decodes one 4-character atom (with "=" padding) into b. */
static void unb64_atom(luaL_Buffer *b, const char *a)
{
	unsigned v = 0;
	int pad = 0;
	for (int k = 0; k < 4; k++) {
		int d = b64_value((unsigned char)a[k]);
		pad += d == 64;
		v = v << 6 | (d == 64 ? 0 : (unsigned)d);
	}
	char out[3] = {(char)(v >> 16), (char)(v >> 8), (char)v};
	luaL_addlstring(b, out, pad > 2 ? 0 : (size_t)(3 - pad));
}

/* mime.unb64(C [, D]): A, B. Characters outside the alphabet are skipped;
 * B is an incomplete atom kept for the next call (dropped at the end). */
static int mime_unb64(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		lua_pushnil(L);
		return 2;
	}
	size_t n;
	int last;
	const char *s = joined(L, 1, &n, &last);
	char atom[4];
	size_t k = 0;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		if (b64_value((unsigned char)s[i]) < 0) {
			continue;
		}
		atom[k++] = s[i];
		if (k == 4) {
			unb64_atom(&b, atom);
			k = 0;
		}
	}
	push_out(L, &b, last);
	if (last) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, atom, k);
	}
	return 2;
}

/* ---- quoted-printable (RFC 2045 6.7) ---- */

static void qp_quote(luaL_Buffer *b, unsigned char c)
{
	luaL_addchar(b, '=');
	luaL_addchar(b, hex_digits[c >> 4]);
	luaL_addchar(b, hex_digits[c & 15]);
}

/* How the blank at s[i] goes out: 1 quoted (it ends a line or the
 * data), 0 as it is, -1 undecided until more data comes. */
static int qp_blank_quoted(const char *s, size_t i, size_t n, int last)
{
	if (i + 1 == n) {
		return last ? 1 : -1;
	}
	if (s[i + 1] != '\r') {
		return 0;
	}
	if (i + 2 == n) {
		return last ? 0 : -1;
	}
	return s[i + 2] == '\n';
}

/* mime.qp(C [, D, marker]): A, B. CRLF pairs become marker (CRLF when
 * not given); "=", control and 8-bit bytes are quoted, and a blank that
 * ends a line. B holds the few bytes that need more data to decide. */
static int mime_qp(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		lua_pushnil(L);
		return 2;
	}
	size_t n, i = 0;
	int last;
	const char *marker = luaL_optstring(L, 3, CRLF);
	const char *s = joined(L, 1, &n, &last);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r') {
			if (i + 1 == n && !last) {
				break;
			}
			if (i + 1 < n && s[i + 1] == '\n') {
				luaL_addstring(&b, marker);
				i++;
			} else {
				qp_quote(&b, c);
			}
		} else if (c == ' ' || c == '\t') {
			int q = qp_blank_quoted(s, i, n, last);
			if (q < 0) {
				break;
			}
			if (q) {
				qp_quote(&b, c);
			} else {
				luaL_addchar(&b, (char)c);
			}
		} else if ((c >= 33 && c <= 60) || (c >= 62 && c <= 126)) {
			luaL_addchar(&b, (char)c);
		} else {
			qp_quote(&b, c);
		}
	}
	push_out(L, &b, last);
	if (last) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, s + i, n - i);
	}
	return 2;
}

static int hex_value(char c)
{
	const char *p = c ? strchr(hex_digits, c >= 'a' && c <= 'f' ? c - 32 : c) : NULL;
	return p ? (int)(p - hex_digits) : -1;
}

/* mime.unqp(C [, D]): A, B. "=XX" becomes its byte, soft line breaks
 * ("=" at the end of a line) go; an "=" without a valid sequence after
 * it is kept as it is. B: an "=" sequence cut by the end of the chunk. */
static int mime_unqp(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnil(L);
		lua_pushnil(L);
		return 2;
	}
	size_t n, i = 0;
	int last;
	const char *s = joined(L, 1, &n, &last);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (; i < n; i++) {
		if (s[i] != '=') {
			luaL_addchar(&b, s[i]);
			continue;
		}
		if (i + 2 >= n && !last) {
			break;
		}
		if (i + 1 < n && s[i + 1] == '\n') {
			i++; /* a soft break with a bare LF */
		} else if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
			luaL_addchar(&b, (char)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2])));
			i += 2;
		} else {
			luaL_addchar(&b, '=');
		}
	}
	push_out(L, &b, last);
	if (last) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, s + i, n - i);
	}
	return 2;
}

/* ---- line wrapping ---- */

/* The line length argument: at least 1, at most what a line may hold. */
static int wrap_length(lua_State *L, int i)
{
	lua_Integer len = luaL_optinteger(L, i, WRAP_DEFAULT);
	luaL_argcheck(L, len >= 1 && len <= 1 << 20, i, "line length out of range");
	return (int)len;
}

/* wrp and qpwrp: left characters left on the current line, soft the
 * line break to insert ("\r\n" or "=\r\n"), room what a character needs
 * before a break (1; 3 more for "=XX" in qpwrp). */
static int wrap(lua_State *L, const char *soft, int qp)
{
	lua_Integer left = luaL_checkinteger(L, 1);
	int length = wrap_length(L, 3);
	if (lua_isnoneornil(L, 2)) {
		if (left < length) {
			lua_pushstring(L, soft);
		} else {
			lua_pushnil(L);
		}
		lua_pushinteger(L, length);
		return 2;
	}
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			continue;
		}
		if (s[i] == '\n') {
			luaL_addstring(&b, CRLF);
			left = length;
			continue;
		}
		if (left <= (qp ? (s[i] == '=' ? 3 : 1) : 0)) {
			luaL_addstring(&b, soft);
			left = length;
		}
		luaL_addchar(&b, s[i]);
		left--;
	}
	luaL_pushresult(&b);
	lua_pushinteger(L, left);
	return 2;
}

/* mime.wrp(n [, C, length]): A, m. Breaks C into lines of length (76)
 * characters, n of which are left on the current one; CRLF and LF in C
 * end a line too. With C nil, A is a last CRLF if a line is open. */
static int mime_wrp(lua_State *L)
{
	return wrap(L, CRLF, 0);
}

/* mime.qpwrp(n [, C, length]): the same for quoted-printable text, with
 * soft line breaks ("=" CRLF) that never split an "=XX". */
static int mime_qpwrp(lua_State *L)
{
	return wrap(L, "=" CRLF, 1);
}

/* ---- end of lines and SMTP stuffing ---- */

/* mime.eol(C [, D, marker]): A, B. Each line break of D (CR, LF, CRLF
 * or LFCR) becomes marker (CRLF); C and B: the CR or LF (as a number)
 * that may be the first half of a pair, else 0. */
static int mime_eol(lua_State *L)
{
	lua_Integer ctx = luaL_checkinteger(L, 1);
	if (lua_isnoneornil(L, 2)) {
		lua_pushnil(L);
		lua_pushinteger(L, 0);
		return 2;
	}
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	const char *marker = luaL_optstring(L, 3, CRLF);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c != '\r' && c != '\n') {
			luaL_addchar(&b, c);
			ctx = 0;
		} else if ((ctx == '\r' || ctx == '\n') && ctx != c) {
			ctx = 0; /* the second half of a pair: already written */
		} else {
			luaL_addstring(&b, marker);
			ctx = c;
		}
	}
	luaL_pushresult(&b);
	lua_pushinteger(L, ctx);
	return 2;
}

/* mime.dot(m [, B]): A, n. SMTP stuffing (RFC 5321 4.5.2): a "." that
 * starts a line is doubled. m and n: 2 at the start of a line (the start
 * of the message counts), 1 after a CR, 0 inside a line. */
static int mime_dot(lua_State *L)
{
	lua_Integer state = luaL_checkinteger(L, 1);
	if (lua_isnoneornil(L, 2)) {
		lua_pushnil(L);
		lua_pushinteger(L, 2);
		return 2;
	}
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.' && state == 2) {
			luaL_addchar(&b, '.');
		}
		state = c == '\r' ? 1 : c == '\n' && state == 1 ? 2 : 0;
		luaL_addchar(&b, c);
	}
	luaL_pushresult(&b);
	lua_pushinteger(L, state);
	return 2;
}

static const luaL_Reg mime_funcs[] = {
        {"b64", mime_b64},
        {"unb64", mime_unb64},
        {"qp", mime_qp},
        {"unqp", mime_unqp},
        {"wrp", mime_wrp},
        {"qpwrp", mime_qpwrp},
        {"eol", mime_eol},
        {"dot", mime_dot},
        {NULL, NULL},
};

/* The filters of LuaSocket's mime.lua, as LuaSocket documents them,
 * over the functions above; called with the module table and ltn12. */
static const char MIME_LUA[] =
        "local M, ltn12 = ...\n"
        "local cycle = ltn12.filter.cycle\n"
        "local encodet, decodet, wrapt = {}, {}, {}\n"
        "M.encodet, M.decodet, M.wrapt = encodet, decodet, wrapt\n"
        "encodet['base64'] = function() return cycle(M.b64, '') end\n"
        "encodet['quoted-printable'] = function(mode)\n"
        "  return cycle(M.qp, '', mode == 'binary' and '=0D=0A' or '\\r\\n')\n"
        "end\n"
        "decodet['base64'] = function() return cycle(M.unb64, '') end\n"
        "decodet['quoted-printable'] = function() return cycle(M.unqp, '') end\n"
        "wrapt['text'] = function(length)\n"
        "  length = length or 76\n"
        "  return cycle(M.wrp, length, length)\n"
        "end\n"
        "wrapt['base64'] = wrapt['text']\n"
        "wrapt['default'] = wrapt['text']\n"
        "wrapt['quoted-printable'] = function() return cycle(M.qpwrp, 76, 76) end\n"
        /* a first argument that is not a name is the default's option */
        "local function choose(t)\n"
        "  return function(name, opt1, opt2)\n"
        "    if type(name) ~= 'string' then\n"
        "      name, opt1, opt2 = 'default', name, opt1\n"
        "    end\n"
        "    local f = t[name]\n"
        "    if not f then error('unknown key (' .. tostring(name) .. ')', 2) end\n"
        "    return f(opt1, opt2)\n"
        "  end\n"
        "end\n"
        "M.encode = choose(encodet)\n"
        "M.decode = choose(decodet)\n"
        "M.wrap = choose(wrapt)\n"
        "function M.normalize(marker) return cycle(M.eol, 0, marker) end\n"
        "function M.stuff() return cycle(M.dot, 2) end\n"
        "return M\n";

/* package.preload.mime: the C functions, then the Lua filters. */
static int mime_load(lua_State *L)
{
	lua_newtable(L);
	luaL_register(L, NULL, mime_funcs);
	lua_pushliteral(L, "MIME 1.0.3 (Rumble)");
	lua_setfield(L, -2, "_VERSION");
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "mime.core");
	lua_pop(L, 2);
	if (luaL_loadbuffer(L, MIME_LUA, sizeof MIME_LUA - 1, "=mime") != 0) {
		return lua_error(L);
	}
	lua_pushvalue(L, -2);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "ltn12");
	lua_call(L, 1, 1);
	lua_call(L, 2, 1);
	return 1;
}

/* package.preload["mime.core"]: the same module. */
static int mime_core_load(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "mime");
	lua_call(L, 1, 0);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaded");
	lua_getfield(L, -1, "mime.core");
	return 1;
}

/* see rl.h */
void rl_preload(lua_State *L, const char *name, lua_CFunction load)
{
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, load);
	lua_setfield(L, -2, name);
	lua_pop(L, 2);
}

/* see rl.h */
void rl_open_mime(lua_State *L)
{
	rl_preload(L, "mime", mime_load);
	rl_preload(L, "mime.core", mime_core_load);
}
