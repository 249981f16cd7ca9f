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
