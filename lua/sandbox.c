/*
 * sandbox.c - the standard library as scripts get it: what would take
 * the server down is replaced by something that fails inside the script.
 *
 * Scripts are the administrator's own, so this is not a security
 * boundary; it keeps a mistake in one hook from ending or wedging the
 * process that serves everybody's mail:
 *   os.exit          raises an error (the hook fails, the server goes on)
 *   os.setlocale     only asks: a locale is process-wide and would change
 *                    how every thread parses numbers
 *   os.date          refuses conversions C does not define (on Windows an
 *                    unknown one ends the process)
 *   collectgarbage   "stop" and pause/step tuning do nothing: a state that
 *                    never collects would fill up for good
 *   string.rep       refuses a result over LuaMemoryLimit before looping
 *                    (an empty string repeated 1e12 times loops for hours)
 *   newproxy         gone with __gc: finalizers run Lua outside any budget
 *   debug            only traceback, getinfo, getlocal, gethook, getfenv:
 *                    sethook would lift the instruction budget, the others
 *                    reach the registry and the API's metatables
 *   load*, dofile,   text only: Lua 5.1 does not check bytecode, and a
 *   require          crafted chunk writes anywhere in memory; no stdin, no
 *                    C modules (a module built for a shared liblua would
 *                    bring a second Lua into the static binary)
 *   metatables       of the API's objects (the registry's named ones) are
 *                    protected: getmetatable gives "locked", setmetatable
 *                    on them raises.
 */
#include <string.h>

#include "lua/rl.h"

/* A replaced function: raises with its upvalue as the message. */
static int unavailable(lua_State *L)
{
	return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

static void deny(lua_State *L, const char *lib, const char *name, const char *why)
{
	lua_getglobal(L, lib);
	lua_pushfstring(L, "%s.%s is not available to scripts: %s", lib, name, why);
	lua_pushcclosure(L, unavailable, 1);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

static int os_setlocale_query(lua_State *L)
{
	if (!lua_isnoneornil(L, 1)) {
		lua_pushnil(L); /* as when the locale cannot be set */
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* 1 when every conversion of f is one C99's strftime defines. */
static int date_format_ok(const char *f)
{
	for (const char *p = strchr(f, '%'); p; p = strchr(p + 1, '%')) {
		const char *set = "aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%";
		if (p[1] == 'E' || p[1] == 'O') {
			set = *++p == 'E' ? "cCxXyY" : "deHImMSuUVwWy";
		}
		if (!p[1] || !strchr(set, p[1])) {
			return 0;
		}
		p++;
	}
	return 1;
}

static int os_date_checked(lua_State *L)
{
	const char *f = luaL_optstring(L, 1, "%c");
	luaL_argcheck(L, date_format_ok(f), 1, "unknown conversion in the format");
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* collectgarbage("step", n): n KB of work, 0 to 1 GB (a full cycle). */
static int step_size(lua_Number n)
{
	return n >= 1 && n <= 1 << 20 ? (int)n : n > 1 << 20 ? 1 << 20 : 0;
}

static int collectgarbage_safe(lua_State *L)
{
	static const char *const opts[] = {
	        "stop", "restart", "collect", "count", "step", "setpause", "setstepmul", NULL};
	int o = luaL_checkoption(L, 1, "collect", opts);
	switch (o) {
	case 2:
		lua_gc(L, LUA_GCCOLLECT, 0);
		lua_pushinteger(L, 0);
		return 1;
	case 3:
		lua_pushnumber(L, lua_gc(L, LUA_GCCOUNT, 0) + lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
		return 1;
	case 4:
		lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, step_size(luaL_optnumber(L, 2, 0))));
		return 1;
	case 5:
	case 6:
		lua_pushinteger(L, 200); /* Lua's defaults, which stay */
		return 1;
	default:
		lua_pushinteger(L, 0); /* stop, restart: the collector keeps running */
		return 1;
	}
}

static int string_rep_bounded(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	lua_Number n = luaL_checknumber(L, 2);
	struct rl_state *st = rl_state_of(L);
	size_t room = st && st->mem_max > st->mem ? st->mem_max - st->mem : (size_t)-1 / 2;
	if (!(n >= 1) || len == 0) { /* NaN too */
		lua_pushliteral(L, "");
		return 1;
	}
	if (n > (lua_Number)room / (lua_Number)len) {
		return luaL_error(L, "string.rep: %f copies of %d bytes would pass LuaMemoryLimit",
		        n, (int)len);
	}
	size_t count = (size_t)n;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	while (count--) {
		luaL_addlstring(&b, s, len);
	}
	luaL_pushresult(&b);
	return 1;
}

/* ---- text-only loading ---- */

#define BINARY_REFUSED "binary (precompiled) chunks are not loaded in Rumble"

static int load_text(lua_State *L, const char *s, size_t n, const char *name)
{
	if (n && s[0] == LUA_SIGNATURE[0]) {
		return rl_fail(L, "%s: %s", name, BINARY_REFUSED);
	}
	if (luaL_loadbuffer(L, s, n, name) != 0) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	return 1;
}

static int loadstring_text(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	return load_text(L, s, n, luaL_optstring(L, 2, s));
}

/* load(fn[, name]): the pieces fn returns, joined, then as loadstring. */
static int load_text_fn(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	const char *name = luaL_optstring(L, 2, "=(load)");
	lua_settop(L, 2);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (;;) {
		lua_pushvalue(L, 1);
		lua_call(L, 0, 1);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			break;
		}
		if (!lua_isstring(L, -1)) {
			return luaL_error(L, "reader function must return a string");
		}
		if (lua_objlen(L, -1) == 0) {
			lua_pop(L, 1);
			break;
		}
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	size_t n;
	const char *s = lua_tolstring(L, -1, &n);
	return load_text(L, s, n, name);
}

/* The first byte Lua's loadfile would take for a chunk's first byte:
 * after a first line that starts with '#' (*skipped then says 1). */
static int file_first_byte(FILE *f, int *skipped)
{
	int c = getc(f);
	*skipped = c == '#';
	if (c == '#') {
		while ((c = getc(f)) != EOF && c != '\n') {
		}
		c = c == EOF ? EOF : getc(f);
	}
	return c;
}

/* lua_Reader over a file; a "\n" first for a skipped '#' line. */
struct file_reader {
	FILE *f;
	int extraline;
	char buf[LUAL_BUFFERSIZE];
};

static const char *read_file(lua_State *L, void *ud, size_t *size)
{
	struct file_reader *r = ud;
	(void)L;
	if (r->extraline) {
		r->extraline = 0;
		*size = 1;
		return "\n";
	}
	*size = feof(r->f) ? 0 : fread(r->buf, 1, sizeof r->buf, r->f);
	return *size > 0 ? r->buf : NULL;
}

/* see rl.h; as lauxlib.c's luaL_loadfile: a first line starting with '#'
 * is skipped, its newline kept so that line numbers stay right */
int rl_loadfile(lua_State *L, const char *path)
{
	struct file_reader r;
	r.f = os_fopen(path, "rb");
	if (!r.f) {
		lua_pushfstring(L, "cannot open %s: %s", path, os_strerror());
		return LUA_ERRFILE;
	}
	int c = file_first_byte(r.f, &r.extraline);
	if (c == LUA_SIGNATURE[0]) {
		r.extraline = 0; /* a binary chunk has no lines to keep */
	}
	if (c != EOF) {
		ungetc(c, r.f);
	}
	lua_pushfstring(L, "@%s", path);
	int rc = lua_load(L, read_file, &r, lua_tostring(L, -1));
	int bad = ferror(r.f);
	fclose(r.f);
	lua_remove(L, -2); /* the chunk name */
	if (bad) {
		lua_pop(L, 1);
		lua_pushfstring(L, "cannot read %s", path);
		return LUA_ERRFILE;
	}
	return rc;
}

static int loadfile_text(lua_State *L)
{
	const char *path = luaL_optstring(L, 1, NULL);
	if (!path) {
		return rl_fail(L, "loadfile: scripts cannot read the standard input");
	}
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return rl_fail(L, "cannot open %s", path);
	}
	int skipped;
	int c = file_first_byte(f, &skipped);
	fclose(f);
	if (c == LUA_SIGNATURE[0]) {
		return rl_fail(L, "%s: %s", path, BINARY_REFUSED);
	}
	if (rl_loadfile(L, path) != 0) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	return 1;
}

static int dofile_text(lua_State *L)
{
	lua_settop(L, 1);
	lua_pushcfunction(L, loadfile_text);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 2);
	if (lua_isnil(L, -2)) {
		return lua_error(L);
	}
	lua_pop(L, 1);
	int base = lua_gettop(L) - 1;
	lua_call(L, 0, LUA_MULTRET);
	return lua_gettop(L) - base;
}

/* package.loaders[2], the Lua file searcher, through loadfile_text. */
static int lua_file_loader(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "path");
	const char *path = lua_tostring(L, -1);
	if (!path) {
		return luaL_error(L, "package.path must be a string");
	}
	const char *mod = luaL_gsub(L, name, ".", LUA_DIRSEP);
	luaL_Buffer tried;
	luaL_buffinit(L, &tried);
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ";");
		lua_pushlstring(L, p, n);
		const char *file = luaL_gsub(L, lua_tostring(L, -1), "?", mod);
		FILE *f = n ? os_fopen(file, "rb") : NULL;
		if (f) {
			fclose(f);
			lua_pushcfunction(L, loadfile_text);
			lua_pushstring(L, file);
			lua_call(L, 1, 2);
			if (lua_isnil(L, -2)) {
				return luaL_error(L,
				        "error loading module '%s' from file '%s':\n\t%s", name,
				        file, lua_tostring(L, -1));
			}
			lua_pop(L, 1);
			return 1;
		}
		lua_pushfstring(L, "\n\tno file '%s'", file);
		lua_remove(L, -2); /* the file name */
		lua_remove(L, -2); /* the template */
		luaL_addvalue(&tried);
		p += n;
		p += *p == ';';
	}
	luaL_pushresult(&tried);
	return 1;
}

static void text_only_loading(lua_State *L)
{
	lua_register(L, "loadstring", loadstring_text);
	lua_register(L, "load", load_text_fn);
	lua_register(L, "loadfile", loadfile_text);
	lua_register(L, "dofile", dofile_text);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "loaders");
	if (lua_istable(L, -1)) {
		lua_pushcfunction(L, lua_file_loader);
		lua_rawseti(L, -2, 2);
		lua_pushnil(L);
		lua_rawseti(L, -2, 4); /* the C searchers, from the end */
		lua_pushnil(L);
		lua_rawseti(L, -2, 3);
	}
	lua_pop(L, 1);
	lua_pushnil(L);
	lua_setfield(L, -2, "loadlib");
	lua_pop(L, 1);
}

/* ---- the rest ---- */

static void wrap(lua_State *L, const char *lib, const char *name, lua_CFunction fn)
{
	lua_getglobal(L, lib);
	lua_getfield(L, -1, name);
	lua_pushcclosure(L, fn, 1); /* the original as upvalue 1 */
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

static void restrict_debug(lua_State *L)
{
	static const char *const keep[] = {
	        "traceback", "getinfo", "getlocal", "gethook", "getfenv", NULL};
	lua_getglobal(L, "debug");
	lua_newtable(L);
	for (int i = 0; keep[i]; i++) {
		lua_getfield(L, -2, keep[i]);
		lua_setfield(L, -2, keep[i]);
	}
	lua_setglobal(L, "debug");
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		const char *k = lua_tostring(L, -1);
		lua_getglobal(L, "debug");
		lua_getfield(L, -1, k);
		int kept = !lua_isnil(L, -1);
		lua_pop(L, 2);
		if (!kept) {
			deny(L, "debug", k,
			        "it reaches past the instruction budget or into the server's "
			        "state");
		}
	}
	lua_pop(L, 1);
}

/* __metatable = "locked" in every metatable the registry names. */
static void lock_metatables(lua_State *L)
{
	lua_pushnil(L);
	while (lua_next(L, LUA_REGISTRYINDEX)) {
		if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
			lua_getfield(L, -1, "__index");
			lua_getfield(L, -2, "__gc");
			int is_mt = !lua_isnil(L, -1) || !lua_isnil(L, -2);
			lua_pop(L, 2);
			if (is_mt) {
				lua_pushliteral(L, "locked");
				lua_setfield(L, -2, "__metatable");
			}
		}
		lua_pop(L, 1);
	}
}

/* see rl.h */
void rl_open_sandbox(lua_State *L)
{
	deny(L, "os", "exit", "a script ends by returning (or error() for a failure)");
	lua_pushliteral(L, "newproxy is not available to scripts: finalizers (__gc) would run "
	                   "outside the instruction budget");
	lua_pushcclosure(L, unavailable, 1);
	lua_setglobal(L, "newproxy");
	wrap(L, "os", "setlocale", os_setlocale_query);
	wrap(L, "os", "date", os_date_checked);
	lua_register(L, "collectgarbage", collectgarbage_safe);
	lua_getglobal(L, "string");
	lua_pushcfunction(L, string_rep_bounded);
	lua_setfield(L, -2, "rep");
	lua_pop(L, 1);
	text_only_loading(L);
	restrict_debug(L);
}

/* see rl.h */
void rl_lock_metatables(lua_State *L)
{
	lock_metatables(L);
}
