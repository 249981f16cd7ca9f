/*
 * lfile.c - file.stat and file.exists of Rumble's Lua API, on os_stat so
 * that this file builds for every platform without an OS header.
 */
#include <string.h>

#include "rl.h"

/* The path at index i; a name with a NUL byte inside names no file. */
static const char *path_arg(lua_State *L, int i)
{
	size_t n;
	const char *p = luaL_checklstring(L, i, &n);
	return strlen(p) == n ? p : NULL;
}

/* file.stat(f): {size, created, modified, accessed, mode}, as the
 * original's stat() gave them, or nil and a message. Times are seconds
 * since the epoch; "created" is the inode change time on POSIX (stat's
 * st_ctime, what the original returned) and the creation time on
 * Windows. mode holds the permission bits. */
static int file_stat(lua_State *L)
{
	const char *path = path_arg(L, 1);
	struct os_stat st;
	if (!path || os_stat(path, &st) != 0) {
		return rl_fail(
		        L, "%s: %s", lua_tostring(L, 1), path ? os_strerror() : "bad file name");
	}
	lua_createtable(L, 0, 5);
	rl_set_num(L, "size", (double)st.size);
	rl_set_num(L, "created", (double)st.ctime);
	rl_set_num(L, "modified", (double)st.mtime);
	rl_set_num(L, "accessed", (double)st.atime);
	rl_set_num(L, "mode", (double)st.mode);
	return 1;
}

/* file.exists(f): true when f names a file or a folder. */
static int file_exists(lua_State *L)
{
	const char *path = path_arg(L, 1);
	struct os_stat st;
	lua_pushboolean(L, path && os_stat(path, &st) == 0);
	return 1;
}

static const luaL_Reg file_funcs[] = {
        {"stat", file_stat},
        {"exists", file_exists},
        {NULL, NULL},
};

/* see rl.h */
void rl_open_file(lua_State *L)
{
	luaL_register(L, "file", file_funcs);
	lua_pop(L, 1);
}
