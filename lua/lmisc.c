/*
 * lmisc.c - small helpers the Lua glue files share; see rl.h.
 */
#include <stdio.h>

#include "rl.h"

/* see rl.h; the message is formatted with the C library's vsnprintf, not
 * lua_pushvfstring, which knows neither %u nor widths. Longer messages are
 * cut. */
int rl_fail(lua_State *L, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lua_pushnil(L);
	lua_pushstring(L, msg);
	return 2;
}

/* see rl.h */
void rl_set_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v);
	lua_setfield(L, -2, k);
}

/* see rl.h */
void rl_set_num(lua_State *L, const char *k, lua_Number v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

/* see rl.h */
void rl_set_bool(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

/* print(...): the values as Lua's print writes them (tostring, tabs
 * between), as one line of the server's log: a daemon has no console. */
static int rl_print(lua_State *L)
{
	int n = lua_gettop(L);
	lua_getglobal(L, "tostring");
	for (int i = 1; i <= n; i++) {
		lua_pushvalue(L, n + 1);
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		if (!lua_isstring(L, -1)) {
			return luaL_error(L, "'tostring' must return a string to 'print'");
		}
		if (i < n) {
			lua_pushliteral(L, "\t");
		}
	}
	lua_concat(L, n ? 2 * n - 1 : 0);
	log_info("script: %s", lua_tostring(L, -1));
	return 0;
}

/* see rl.h */
void rl_open_print(lua_State *L)
{
	lua_register(L, "print", rl_print);
}
