/*
 * runtime.c - the Lua states of Rumble: one per worker thread plus one
 * for start-up and mail hand-off (rl_feed), the LoadScript files run in
 * each, the protected-call helper every hook goes through, and reload.
 *
 * Limits: every state has a capped allocator (LuaMemoryLimit) and every
 * call or coroutine resume an instruction budget (LuaInstructionLimit, a
 * count hook raising "script ran too long"). An error is logged once,
 * with file and line, and the caller goes on as if the script were not
 * there (Lua lua.c: docall, report).
 *
 * Reload: rl_reload bumps a generation number. The start-up state is
 * rebuilt at once (so services a new script creates listen right away);
 * each worker swaps in a new state of its own at its next Lua call, when
 * nothing of the old one is running. A state stays alive while Lua
 * service sessions (coroutines) in it go on: it is reference counted.
 */
#include <string.h>

#include "lua/rl.h"

static struct rl_state **slots; /* per worker; read and swapped by that worker */
static int nslots;
static struct rl_state *boot; /* the start-up state, under boot_mx */
static os_mutex *boot_mx;
static volatile int boot_stale; /* rebuild the start-up state at the next unlock */
static uint32_t generation;
static int started;

unsigned rl_generation(void)
{
	return os_atomic_load_u32(&generation);
}

void rl_generation_bump(void)
{
	os_atomic_add_u32(&generation, 1);
}

/* ---- the capped allocator ---- */

#define LATE_CHECK (64 * 1024) /* allocations this big check LuaTimeLimit */

static void *rl_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct rl_state *st = ud;
	if (nsize == 0) {
		free(ptr);
		st->mem -= osize;
		return NULL;
	}
	/* only inside rl_call/rl_resume, where Lua raises "not enough
	 * memory" to the script: outside one the error would end the process
	 * (a C function of ours that frees a reference may grow a table) */
	if (st->capped && st->calls && nsize > osize) {
		if (st->mem - osize + nsize > st->mem_max) {
			return NULL;
		}
		/* a few instructions on big strings take long between two
		 * count hooks: their allocations check the time limit too */
		if (nsize - osize >= LATE_CHECK && os_now_ms() >= st->deadline) {
			st->exhausted = st->late = 1; /* pcall rethrows it */
			return NULL;
		}
	}
	void *p = realloc(ptr, nsize);
	if (p) {
		st->mem = st->mem - osize + nsize;
	}
	return p;
}

struct rl_state *rl_state_of(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

/* ---- protected calls ---- */

/* The budget is counted in steps of HOOK_STEP instructions per coroutine
 * and shared by every coroutine of the state. Once spent, the hook raises
 * at every instruction of the coroutine it stopped, so that nothing
 * catches it for long (pcall.c rethrows it as well). */
#define HOOK_STEP 1000

static void count_hook(lua_State *L, lua_Debug *ar)
{
	struct rl_state *st = rl_state_of(L);
	st->budget -= lua_gethookcount(L);
	if (st->budget > 0 && !st->exhausted && os_now_ms() < st->deadline) {
		return;
	}
	st->exhausted = 1;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	/* luaL_where(L, 1) would name the caller: say where the loop is */
	lua_getinfo(L, "Sl", ar);
	if (st->budget <= 0) {
		luaL_error(L, "%s:%d: script ran too long (LuaInstructionLimit %d)", ar->short_src,
		        ar->currentline, conf.lua_instruction_limit);
	}
	luaL_error(L, "%s:%d: script ran too long (more than %d s at once)", ar->short_src,
	        ar->currentline, conf.lua_time_limit);
}

/* A fresh budget for a call or resume of L; what it replaced goes into
 * *was, for unbudget. */
struct budget {
	long left;
	int exhausted;
	int64_t deadline;
};

/* see rl.h */
int rl_budget_charge(lua_State *L, long n)
{
	struct rl_state *st = rl_state_of(L);
	if (!st || !st->calls) {
		return 0;
	}
	st->budget -= n;
	if (st->budget <= 0 || st->exhausted || os_now_ms() >= st->deadline) {
		st->exhausted = 1;
		luaL_error(L, "script ran too long (LuaInstructionLimit %d, in a pattern match)",
		        conf.lua_instruction_limit);
	}
	return 1;
}

static void budget(lua_State *L, struct budget *was)
{
	struct rl_state *st = rl_state_of(L);
	st->calls++;
	was->left = st->budget;
	was->exhausted = st->exhausted;
	was->deadline = st->deadline;
	st->budget = conf.lua_instruction_limit;
	st->exhausted = 0;
	st->late = 0;
	st->deadline = os_now_ms() + (int64_t)conf.lua_time_limit * 1000;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
}

static void unbudget(lua_State *L, const struct budget *was)
{
	struct rl_state *st = rl_state_of(L);
	st->calls--;
	lua_sethook(L, NULL, 0, 0);
	st->budget = was->left;
	st->exhausted = was->exhausted;
	st->deadline = was->deadline;
}

/* The message handler: the message with a traceback (lua.c traceback). */
static int traceback(lua_State *L)
{
	if (!lua_isstring(L, 1)) {
		lua_pushliteral(L, "(error object is not a string)");
		lua_replace(L, 1);
	}
	/* Lua's own, kept at start: a script's debug.traceback would run
	 * here with the hooks off (Lua 5.1 leaves them off after a hook's
	 * error), out of the instruction budget */
	lua_getfield(L, LUA_REGISTRYINDEX, RL_TRACEBACK);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	lua_pushvalue(L, 1);
	lua_pushinteger(L, 2);
	lua_call(L, 2, 1);
	return 1;
}

#define MSG_SHOWN 600 /* of a message's first line, both ends kept */

/* Logs the error on top of L: its first line as a warning, the rest
 * (traceback) at debug level; pops it. */
static void report(lua_State *L, int rc, const char *what)
{
	char late[80];
	snprintf(late, sizeof late, "script ran too long (more than %d s at once)",
	        conf.lua_time_limit);
	const char *msg = rc != LUA_ERRMEM     ? lua_tostring(L, -1)
	                  : rl_state_of(L)->late ? late
	                                         : "not enough memory (LuaMemoryLimit)";
	if (!msg) {
		msg = "(error object is not a string)";
	}
	const char *nl = strchr(msg, '\n');
	int len = nl ? (int)(nl - msg) : (int)strlen(msg);
	if (len > MSG_SHOWN) { /* a log line holds 1 KB: keep both ends */
		log_warnx("script error: %.*s ... %.*s (in %s)", MSG_SHOWN / 2, msg, MSG_SHOWN / 2,
		        msg + len - MSG_SHOWN / 2, what);
	} else {
		log_warnx("script error: %.*s (in %s)", len, msg, what);
	}
	if (nl) {
		log_debug("script error: %s", nl + 1);
	}
	lua_pop(L, 1);
	if (rc == LUA_ERRMEM) {
		lua_gc(L, LUA_GCCOLLECT, 0); /* what the failed call held */
	}
}

/* see rl.h */
void rl_state_tidy(struct rl_state *st)
{
	if (st->mem > st->mem_max / 2) {
		lua_gc(st->L, LUA_GCCOLLECT, 0);
	}
}

int rl_call(lua_State *L, int nargs, int nres, const char *what)
{
	int base = lua_gettop(L) - nargs; /* the function */
	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	struct budget was;
	budget(L, &was);
	int rc = lua_pcall(L, nargs, nres, base);
	unbudget(L, &was);
	lua_remove(L, base);
	if (rc != 0) {
		report(L, rc, what);
		return -1;
	}
	return 0;
}

int rl_resume(lua_State *co, int nargs, const char *what)
{
	struct budget was;
	budget(co, &was);
	int rc = lua_resume(co, nargs);
	unbudget(co, &was);
	if (rc == 0 || rc == LUA_YIELD) {
		return rc;
	}
	report(co, rc, what);
	return -1;
}

/* ---- states ---- */

/* Dovecot's convention: a script may define script_load(), called once
 * the script has run; a non-zero return means it has a problem. Cleared
 * after, so that each script's own runs once. */
static void script_loaded(lua_State *L, const char *path)
{
	lua_pushliteral(L, "script_load"); /* raw: a strict _G's __index must not raise here */
	lua_rawget(L, LUA_GLOBALSINDEX);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
	} else if (rl_call(L, 0, 1, path) == 0) {
		if (lua_tonumber(L, -1) != 0 || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
			log_msg(LOG_ERROR, "script error: %s: script_load() reports a problem (%s)",
			        path, lua_isstring(L, -1) ? lua_tostring(L, -1) : "false");
		}
		lua_pop(L, 1);
	}
	lua_pushliteral(L, "script_load");
	lua_pushnil(L);
	lua_rawset(L, LUA_GLOBALSINDEX);
}

static void run_scripts(struct rl_state *st)
{
	lua_State *L = st->L;
	for (int i = 0; i < conf.nscripts; i++) {
		const char *path = conf.scripts[i];
		int rc = rl_loadfile(L, path);
		if (rc != 0) {
			report(L, rc, path);
			continue;
		}
		if (rl_call(L, 0, 0, path) == 0) {
			script_loaded(L, path);
		}
	}
}

/* An error outside any protected call: Lua would exit(1) without a word. */
static int panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);
	log_msg(LOG_ERROR, "lua: error outside a protected call (a bug in Rumble): %s",
	        msg ? msg : "(not a string)");
	abort();
	return 0;
}

static struct rl_state *state_new(int worker)
{
	struct rl_state *st = xcalloc(1, sizeof *st);
	st->worker = worker;
	st->gen = rl_generation();
	st->refs = 1;
	st->mem_max = (size_t)conf.lua_memory_limit;
	st->L = lua_newstate(rl_alloc, st);
	if (!st->L) {
		free(st);
		return NULL;
	}
	lua_State *L = st->L;
	lua_atpanic(L, panic);
	luaL_openlibs(L);
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "traceback");
	lua_setfield(L, LUA_REGISTRYINDEX, RL_TRACEBACK);
	lua_pop(L, 1);
	rl_open_string(L);
	rl_open_file(L);
	rl_open_network(L);
	rl_open_mailman(L);
	rl_open_rumble(L);
	rl_open_session(L);
	rl_open_print(L);
	rl_open_dovecot(L);
	rl_open_ltn12(L);
	rl_open_mime(L);
	rl_open_socket(L);
	rl_open_pcall(L);
	rl_open_sandbox(L);
	rl_open_pattern(L);
	rl_open_lio(L);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RL_HOOKS);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, RL_SERVICES);
	rl_webadmin_open(L); /* before the scripts: it keeps the original tables */
	rl_lock_metatables(L);
	st->capped = 1; /* from here on the scripts' own memory */
	st->loading = 1;
	run_scripts(st);
	rl_vp3_load(st);
	rl_webadmin_install(L);
	st->loading = 0;
	lua_gc(L, LUA_GCCOLLECT, 0);
	log_debug("lua: state for %s%d ready, %lu bytes", worker < 0 ? "start-up " : "worker ",
	        worker, (unsigned long)st->mem);
	return st;
}

void rl_state_ref(struct rl_state *st)
{
	st->refs++;
}

void rl_state_unref(struct rl_state *st)
{
	if (st && --st->refs == 0) {
		lua_close(st->L);
		free(st);
	}
}

struct rl_state *rl_state_get(int w)
{
	if (!rl_ready()) {
		return NULL; /* before rl_start or after rl_stop: never make one */
	}
	int n = os_atomic_load_int(&nslots);
	struct rl_state **slot = w < 0 ? &boot : w < n ? &slots[w] : NULL;
	if (!slot) {
		return NULL;
	}
	struct rl_state *st = os_atomic_load_ptr((void *volatile *)slot);
	if (!st || st->gen != rl_generation()) {
		struct rl_state *fresh = state_new(w);
		os_atomic_store_ptr((void *volatile *)slot, fresh);
		rl_state_unref(st);
		st = fresh;
	}
	return st;
}

void rl_boot_lock(void)
{
	os_mutex_lock(boot_mx);
}

void rl_boot_unlock(void)
{
	if (os_atomic_swap_int(&boot_stale, 0) && rl_ready()) {
		rl_state_get(-1); /* a reload came while it was held */
	}
	os_mutex_unlock(boot_mx);
}

/* see rumble.h */
int rl_start(char *err, size_t errlen)
{
	if (!boot_mx) {
		boot_mx = os_mutex_new();
	}
	if (!rl_wanted()) {
		return 0; /* no script, no web admin: no state; hook calls return at once */
	}
	rl_webadmin_start();
	if (rl_configured()) { /* its top-level code registers hooks and services */
		rl_boot_lock();
		boot = state_new(-1);
		rl_boot_unlock();
		if (!boot) {
			snprintf(err, errlen, "cannot create a Lua state");
			return -1;
		}
	} /* else only the web admin: the states come with its first request */
	/* A worker makes its state at its first Lua call (rl_state_get), as
	 * after a reload: an idle worker holds none. Workers may look at the
	 * slots meanwhile (sessions come as soon as the listeners are open):
	 * publish the array, then its length. */
	int n = server_workers();
	struct rl_state **v = xcalloc((size_t)n, sizeof *v);
	os_atomic_store_ptr((void *volatile *)&slots, v);
	os_atomic_store_int(&nslots, n);
	os_atomic_store_int(&started, 1);
	log_info("lua: %d script%s loaded; each worker loads %s at its first Lua call",
	        conf.nscripts, conf.nscripts == 1 ? "" : "s", conf.nscripts == 1 ? "it" : "them");
	return 0;
}

/* see rumble.h */
void rl_stop(void)
{
	rl_rumble_free();
	if (!started) {
		return;
	}
	int n = nslots;
	os_atomic_store_int(&nslots, 0);
	for (int i = 0; i < n; i++) {
		rl_state_unref(slots[i]);
	}
	xfree(slots);
	rl_boot_lock();
	rl_state_unref(boot);
	boot = NULL;
	rl_boot_unlock();
	os_atomic_store_int(&started, 0);
}

int rl_ready(void)
{
	return os_atomic_load_int(&started);
}

/* see rumble.h */
void rl_reload(void)
{
	if (!rl_ready()) {
		return;
	}
	rl_generation_bump();
	log_info("lua: reloading %d script%s", conf.nscripts, conf.nscripts == 1 ? "" : "s");
	/* the main thread does not wait: a mailman hook may hold the start-up
	 * state for as long as its script blocks; then the holder rebuilds it
	 * as it lets go */
	if (!os_mutex_trylock(boot_mx)) {
		os_atomic_store_int(&boot_stale, 1);
		return;
	}
	if (boot || rl_configured()) {
		rl_state_get(-1);
	}
	os_mutex_unlock(boot_mx);
}
