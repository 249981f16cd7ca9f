/*
 * lio.c - reading lines with the io library, bounded.
 *
 * Lua 5.1 reads a line with fgets and measures it with strlen, so the
 * bytes after a NUL are dropped, and a source of NULs without a newline
 * (io.lines("/dev/zero")) is read for ever in C, out of the instruction
 * budget's reach, holding a worker. Here a line is read a byte at a time,
 * NULs kept (as later Lua versions do), the bytes charged to the budget
 * and the line held by the capped allocator: a line without end fails
 * with "not enough memory" or "script ran too long".
 *
 * file:read and io.read keep Lua's own code for every format but "*l";
 * file:lines, io.lines and io.read("*l") use read_line below.
 */
#include <string.h>

#include "lua/rl.h"

#define CHARGE_EVERY 4096

static FILE *check_file(lua_State *L, int i)
{
	FILE **pf = luaL_checkudata(L, i, LUA_FILEHANDLE);
	if (!*pf) {
		luaL_error(L, "attempt to use a closed file");
	}
	return *pf;
}

/* Pushes the next line of f without its "\n", or nil at the end. */
static int read_line(lua_State *L, FILE *f)
{
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	size_t n = 0;
	int c;
	while ((c = getc(f)) != EOF && c != '\n') {
		luaL_addchar(&b, (char)c);
		if (++n % CHARGE_EVERY == 0) {
			rl_budget_charge(L, CHARGE_EVERY);
		}
	}
	luaL_pushresult(&b);
	if (c == EOF && n == 0) {
		lua_pop(L, 1);
		lua_pushnil(L);
	}
	return 1;
}

static int is_line_format(lua_State *L, int i)
{
	const char *fmt = lua_type(L, i) == LUA_TSTRING ? lua_tostring(L, i) : NULL;
	return fmt && fmt[0] == '*' && fmt[1] == 'l';
}

/* file:read(...): Lua's own read (upvalue 1) for a format at a time,
 * "*l" here; it stops at the first that fails, as Lua's does. */
static int f_read(lua_State *L)
{
	FILE *f = check_file(L, 1);
	int last = lua_gettop(L);
	if (last == 1) {
		return read_line(L, f);
	}
	luaL_checkstack(L, last + 3, "too many arguments");
	for (int i = 2; i <= last; i++) {
		if (is_line_format(L, i)) {
			read_line(L, f);
		} else {
			lua_pushvalue(L, lua_upvalueindex(1));
			lua_pushvalue(L, 1);
			lua_pushvalue(L, i);
			lua_call(L, 2, 1);
		}
		if (lua_isnil(L, -1)) {
			break;
		}
	}
	return lua_gettop(L) - last;
}

/* The iterator of file:lines and io.lines: upvalue 1 the file, 2 whether
 * to close it at the end (io.lines(name)). */
static int lines_next(lua_State *L)
{
	FILE *f = check_file(L, lua_upvalueindex(1));
	read_line(L, f);
	if (lua_isnil(L, -1) && lua_toboolean(L, lua_upvalueindex(2))) {
		lua_getfield(L, lua_upvalueindex(1), "close");
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_call(L, 1, 0);
	}
	return 1;
}

static int push_lines(lua_State *L, int file, int close)
{
	lua_pushvalue(L, file);
	lua_pushboolean(L, close);
	lua_pushcclosure(L, lines_next, 2);
	return 1;
}

static int f_lines(lua_State *L)
{
	check_file(L, 1);
	return push_lines(L, 1, 0);
}

/* io.input(), the default input file, on the stack. */
static void push_input(lua_State *L)
{
	lua_getglobal(L, "io");
	lua_getfield(L, -1, "input");
	lua_remove(L, -2);
	lua_call(L, 0, 1);
}

static int io_lines(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		push_input(L);
		check_file(L, -1);
		return push_lines(L, lua_gettop(L), 0);
	}
	const char *name = luaL_checkstring(L, 1);
	lua_getglobal(L, "io");
	lua_getfield(L, -1, "open");
	lua_pushvalue(L, 1);
	lua_pushliteral(L, "r");
	lua_call(L, 2, 2);
	if (lua_isnil(L, -2)) {
		return luaL_error(L, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : name);
	}
	lua_pop(L, 1);
	return push_lines(L, lua_gettop(L), 1);
}

/* io.read(...) as io.input():read(...). */
static int io_read(lua_State *L)
{
	push_input(L);
	lua_insert(L, 1);
	lua_getfield(L, 1, "read");
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* see rl.h */
void rl_open_lio(lua_State *L)
{
	luaL_getmetatable(L, LUA_FILEHANDLE); /* its own __index in Lua 5.1 */
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_getfield(L, -1, "read");
	lua_pushcclosure(L, f_read, 1);
	lua_setfield(L, -2, "read");
	lua_pushcfunction(L, f_lines);
	lua_setfield(L, -2, "lines");
	lua_pop(L, 1);
	lua_getglobal(L, "io");
	lua_pushcfunction(L, io_lines);
	lua_setfield(L, -2, "lines");
	lua_pushcfunction(L, io_read);
	lua_setfield(L, -2, "read");
	lua_pop(L, 1);
}
