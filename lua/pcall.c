/*
 * pcall.c - waits that cross pcall and xpcall.
 *
 * A waiting call (a DNS lookup, sendMail, session:receive ...) yields the
 * session's coroutine, and jobs.c or the session's tap resumes it. Lua
 * 5.1 cannot yield across a C function: not across its own pcall, a
 * string.gsub callback, a table.sort comparator, a metamethod or a
 * generic-for iterator. Two things follow.
 *
 * pcall and xpcall are replaced, in every state, by versions that run
 * the function in a coroutine of its own (Copas' coxpcall does the same
 * for Lua 5.1): a yield inside goes up to the caller's coroutine and the
 * values it is resumed with come back down, so a wait inside pcall works
 * as outside. The registry table RL_PARENTS maps such a coroutine to the
 * one whose pcall is running it, only while it runs: the chain from a
 * running coroutine up through RL_PARENTS ends at the session's
 * coroutine (rl_state.run_co) exactly when a wait can reach the server.
 *
 * Where a C function stands in between, rl_yieldable says so before
 * anything is queued, and the caller runs the call in place instead
 * (jobs.c). It reads the two counters of lua_State that lua_yield itself
 * checks (nCcalls, baseCcalls); the Lua headers do not export them, so
 * the head of the structure is declared here as Lua 5.1.5's lstate.h has
 * it. Lua 5.1 is frozen, and a probe at start-up checks the layout on a
 * throwaway state: should it ever not match, nothing yields across
 * anything (every wait runs in place) and the log says so.
 *
 * The instruction budget (runtime.c) is shared by the coroutines of a
 * state; once it is spent, these pcalls and coroutine.resume raise the
 * error again instead of catching it, so that a loop around pcall ends.
 */
#include <string.h>

#include "lua/rl.h"

/* Lua 5.1.5 lstate.h, struct lua_State up to baseCcalls. */
struct lstate_head {
	void *next;
	unsigned char tt, marked; /* CommonHeader */
	unsigned char status;
	void *top, *base, *l_G, *ci;
	const void *savedpc;
	void *stack_last, *stack, *end_ci, *base_ci;
	int stacksize, size_ci;
	unsigned short nCcalls, baseCcalls;
};

static int layout_ok = -1; /* -1: not probed; 0: does not match */
static os_mutex *probe_mx;

static int counters_say_yieldable(lua_State *L)
{
	const struct lstate_head *h = (const void *)L;
	return h->nCcalls <= h->baseCcalls;
}

int rl_yieldable(lua_State *L)
{
	return layout_ok == 1 && counters_say_yieldable(L);
}

static int probe_fn(lua_State *L)
{
	lua_pushboolean(L, counters_say_yieldable(L));
	return 1;
}

/* In the main thread no, at a coroutine's top level yes, inside pcall no. */
static const char probe_chunk[] =
        "local f = ...\n"
        "local co = coroutine.create(function() return f(), select(2, pcall(f)) end)\n"
        "local _, top, inside = coroutine.resume(co)\n"
        "return f(), top, inside\n";

static int probe(void)
{
	lua_State *L = luaL_newstate();
	if (!L) {
		return 0;
	}
	luaL_openlibs(L);
	int ok = luaL_loadbuffer(L, probe_chunk, sizeof probe_chunk - 1, "probe") == 0;
	lua_pushcfunction(L, probe_fn);
	ok = ok && lua_pcall(L, 1, 3, 0) == 0;
	ok = ok && !lua_toboolean(L, -3) && lua_toboolean(L, -2) && !lua_toboolean(L, -1);
	lua_close(L);
	return ok;
}

static void probe_once(void)
{
	os_mutex *mx = rl_mutex_once(&probe_mx);
	os_mutex_lock(mx);
	if (layout_ok < 0) {
		layout_ok = probe();
		if (!layout_ok) {
			log_warnx("lua: this Lua is not the 5.1.5 Rumble was built for: waiting "
			          "calls "
			          "inside pcall run in place");
		}
	}
	os_mutex_unlock(mx);
}

/* see rl.h */
lua_State *rl_root(lua_State *L, lua_State *top, int *wait)
{
	*wait = rl_yieldable(L);
	if (L == top || !top) {
		return L == top ? L : NULL;
	}
	int base = lua_gettop(L); /* a C function has LUA_MINSTACK slots: two are used */
	lua_getfield(L, LUA_REGISTRYINDEX, RL_PARENTS);
	lua_pushthread(L);
	lua_State *root = NULL;
	for (int depth = 0; depth < 256 && lua_istable(L, base + 1); depth++) {
		lua_rawget(L, base + 1); /* the key, L or a parent, becomes its parent */
		lua_State *p = lua_tothread(L, -1);
		if (!p) {
			break;
		}
		*wait = *wait && rl_yieldable(p);
		if (p == top) {
			root = p;
			break;
		}
	}
	lua_settop(L, base);
	return root;
}

static int l_yieldable(lua_State *L)
{
	lua_pushboolean(L, rl_yieldable(L));
	return 1;
}

static int l_exhausted(lua_State *L)
{
	struct rl_state *st = rl_state_of(L);
	lua_pushboolean(L, st && st->exhausted);
	return 1;
}

/* Arguments: RL_PARENTS, yieldable(), exhausted(), debug.traceback. */
static const char pcall_chunk[] =
        "local parents, yieldable, exhausted, traceback = ...\n"
        "local pcall0, xpcall0, error, collect = pcall, xpcall, error, collectgarbage\n"
        "local create, resume, yield, status, running =\n"
        "  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status,\n"
        "  coroutine.running\n"
        /* a caught failure: a spent budget goes on up; after a memory error
         * what the failed code held goes at once (Lua 5.1 collects only as
         * it allocates, and the state is at its limit) */
        "local function rethrow(ok, ...)\n"
        "  if ok then return ok, ... end\n"
        "  if exhausted() then error((...), 0) end\n"
        "  if (...) == 'not enough memory' then collect() end\n"
        "  return ok, ...\n"
        "end\n"
        "local step\n"
        /* co, running f for cur, returned, failed or yielded */
        "local function settle(cur, co, handler, ok, ...)\n"
        "  parents[co] = nil\n"
        "  if ok then\n"
        "    if status(co) == 'dead' then return true, ... end\n"
        "    return step(cur, co, handler, yield(...))\n" /* up, and the answer down */
        "  end\n"
        "  local e = ...\n"
        "  if exhausted() then error(e, 0) end\n"
        "  if e == 'not enough memory' then\n"
        "    co = nil; collect()\n" /* its stack holds what failed */
        "  elseif handler == traceback then\n"
        "    return false, traceback(co, e)\n"
        "  end\n"
        "  if handler == nil or handler == traceback then return false, e end\n"
        "  local ok2, v = pcall0(handler, e)\n"
        "  if ok2 then return false, v end\n"
        "  return false, 'error in error handling'\n"
        "end\n"
        "step = function(cur, co, handler, ...)\n"
        "  parents[co] = cur\n"
        "  return settle(cur, co, handler, resume(co, ...))\n"
        "end\n"
        /* a coroutine running f, or nil where Lua's own pcall does as well:
         * what is not a function, error (whose level 1 would name the
         * wrapper) */
        "local function body(f)\n"
        "  if type(f) ~= 'function' or f == error then return nil end\n"
        "  local ok, co = pcall0(create, f)\n"
        "  if ok then return co end\n"
        "  return create(function(...) return f(...) end)\n" /* a C function */
        "end\n"
        "pcall = function(f, ...)\n"
        "  local cur = running()\n"
        "  local co = cur and yieldable() and body(f)\n"
        "  if co then return step(cur, co, nil, ...) end\n"
        "  return rethrow(pcall0(f, ...))\n"
        "end\n"
        /* Lua's own xpcall runs the handler where the error happened, and
         * after an error from the count hook Lua 5.1 leaves the hooks off
         * there: a handler that loops would never be stopped. So it runs
         * once Lua's pcall has returned (debug.traceback, C, still where
         * the error happened). */
        "local function handled(handler, ok, ...)\n"
        "  if ok then return true, ... end\n"
        "  local e = ...\n"
        "  if exhausted() then error(e, 0) end\n"
        "  if e == 'not enough memory' then collect() end\n"
        "  local ok2, v = pcall0(handler, e)\n"
        "  if ok2 then return false, v end\n"
        "  return false, 'error in error handling'\n"
        "end\n"
        "xpcall = function(f, handler)\n"
        "  local cur = running()\n"
        "  local co = cur and yieldable() and body(f)\n"
        "  if co then return step(cur, co, handler) end\n"
        "  if handler == traceback then return rethrow(xpcall0(f, traceback)) end\n"
        "  return handled(handler, pcall0(f))\n"
        "end\n"
        "coroutine.resume = function(co, ...) return rethrow(resume(co, ...)) end\n";

/* see rl.h */
void rl_open_pcall(lua_State *L)
{
	probe_once();
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "kv");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, RL_PARENTS);
	if (luaL_loadbuffer(L, pcall_chunk, sizeof pcall_chunk - 1, "=pcall") != 0) {
		fatalx("lua: pcall chunk: %s", lua_tostring(L, -1));
	}
	lua_insert(L, -2);
	lua_pushcfunction(L, l_yieldable);
	lua_pushcfunction(L, l_exhausted);
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "traceback");
	lua_remove(L, -2);
	lua_call(L, 4, 0);
}
