/*
 * lstring.c - string.SHA256, string.encode64 and string.decode64 of
 * Rumble's Lua API. They go into the string table, which is also the
 * __index of every string, so s:SHA256() and s:encode64() work as the
 * reference shows.
 */
#include <string.h>

#include "rl.h"

/* string.SHA256(s): 64 lower-case hex digits. */
static int str_sha256(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	char hex[65];
	crypto_sha256_hex(s, n, hex);
	lua_pushlstring(L, hex, 64);
	return 1;
}

/* string.encode64(s): standard alphabet, padded, no line breaks. Encoded
 * a slice at a time into a luaL_Buffer, so that nothing is allocated
 * outside Lua (an error cannot leak it). */
static int str_encode64(lua_State *L)
{
	enum { SLICE = 3 * 128 }; /* a multiple of 3: no padding in between */
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	char out[4 * (SLICE / 3) + 1];
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (size_t off = 0; off < n; off += SLICE) {
		size_t k = n - off < SLICE ? n - off : SLICE;
		luaL_addlstring(&b, out, crypto_base64_encode(s + off, k, out));
	}
	luaL_pushresult(&b);
	return 1;
}

/* Significant (non-blank) characters of s. */
static size_t b64_chars(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		k += strchr(" \t\r\n", s[i]) == NULL || s[i] == '\0';
	}
	return k;
}

/* string.decode64(s): the bytes, or nil and a message when s is not
 * base64. White space is skipped and missing "=" padding is supplied:
 * encoders in the wild (URLs, some HTTP clients) leave it out. */
static int str_decode64(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	size_t rest = b64_chars(s, n) % 4;
	if (rest == 2 || rest == 3) {
		lua_pushvalue(L, 1);
		lua_pushstring(L, rest == 2 ? "==" : "=");
		lua_concat(L, 2);
		s = lua_tolstring(L, -1, &n); /* stays on the stack until we return */
	}
	/* the output is a userdata: Lua frees it, whatever happens next */
	size_t cap = n / 4 * 3 + 3;
	char *out = lua_newuserdata(L, cap);
	long len = crypto_base64_decode(s, n, out, cap);
	if (len < 0) {
		return rl_fail(L, "decode64: not base64");
	}
	lua_pushlstring(L, out, (size_t)len);
	return 1;
}

static const luaL_Reg string_funcs[] = {
        {"SHA256", str_sha256},
        {"encode64", str_encode64},
        {"decode64", str_decode64},
        {NULL, NULL},
};

/* see rl.h */
void rl_open_string(lua_State *L)
{
	luaL_register(L, LUA_STRLIBNAME, string_funcs);
	lua_pop(L, 1);
}
