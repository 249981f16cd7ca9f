/*
 * rl.h - what the Lua glue files in lua/ share (private to lua/).
 *
 * Rumble's Lua API (shared/reference/rumble-lua-api.txt) lives in one
 * lua_State per worker thread (plus one for start-up and the CLI-less
 * admin work); runtime.c creates the states, loads the LoadScript files
 * and calls every rl_open_* below on each new state. Each rl_open_* adds
 * its globals to L and returns nothing; all of them must be safe to call
 * on any number of states (no process-wide registration inside).
 */
#ifndef RUMBLE_RL_H
#define RUMBLE_RL_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "rumble.h"

/* string.SHA256, string.encode64, string.decode64 (so s:SHA256() works) */
void rl_open_string(lua_State *L);
/* file.stat, file.exists */
void rl_open_file(lua_State *L);
/* network.getHostByName, network.getMX */
void rl_open_network(lua_State *L);
/* Mailman.* */
void rl_open_mailman(lua_State *L);
/* package.preload entries of LuaSocket's modules: ltn12 (lltn12.c), mime
 * and mime.core (lmime.c), socket and socket.smtp (lsocket.c) */
void rl_open_ltn12(lua_State *L);
void rl_open_mime(lua_State *L);
void rl_open_socket(lua_State *L);
/* package.preload[name] = load */
void rl_preload(lua_State *L, const char *name, lua_CFunction load);
/* print, to the log */
void rl_open_print(lua_State *L);
/* i_debug.., dovecot.event, dovecot.storage, mail_user and mailbox */
void rl_open_dovecot(lua_State *L);
/* Rumble.* and session handles (runtime.c, hooks.c, services.c) */
void rl_open_rumble(lua_State *L);

/* t[k] = v for the table on the top of L's stack (a NULL string: nil). */
void rl_set_str(lua_State *L, const char *k, const char *v);
void rl_set_num(lua_State *L, const char *k, lua_Number v);
void rl_set_bool(lua_State *L, const char *k, int v);

/* Pushes nil and a message, the liolib.c convention for failures that
 * are not programming errors; returns 2. */
int rl_fail(lua_State *L, const char *fmt, ...);

/* ---- the runtime (runtime.c) ---- */
/* One Lua state and what goes with it. A worker's state is used by that
 * worker's thread only; the start-up state (worker -1) under its lock.
 * refs: the slot that holds it as current, plus each Lua service session
 * whose coroutine lives in it; the last unref closes it. */
struct rl_state {
	lua_State *L;
	int worker;   /* -1: the start-up state */
	unsigned gen; /* the reload generation it was made for */
	int refs;
	size_t mem, mem_max; /* bytes in use, LuaMemoryLimit */
	int capped;          /* 0 while the libraries open (never refused) */
	long budget;         /* instructions left in this call (all coroutines) */
	int calls;           /* rl_call/rl_resume under way: a budget is on */
	int64_t deadline;    /* os_now_ms() when the call under way ran too long (LuaTimeLimit;
	                      * time it spent blocked in place, jobs.c, is added back) */
	int exhausted;       /* the budget ran out: pcall must not catch it */
	int late;            /* a big allocation was refused: LuaTimeLimit had passed */
	int loading;         /* 1 while the scripts' top-level code runs */
	/* the session coroutine being resumed (rl_run), its handle and where
	 * its rl_conn goes when one is made */
	lua_State *run_co;
	struct rl_handle *run_h;
	struct rl_conn **run_c;
	lua_State *spare; /* a finished hook coroutine, for the next hook */
	int spare_ref;
};
/* Lua's own debug.traceback, kept in the registry for the message
 * handler: a script may replace the global one. */
#define RL_TRACEBACK "rumble.traceback"
/* The state a Lua C function runs in (its allocator's user data). */
struct rl_state *rl_state_of(lua_State *L);
/* The current state of worker w (-1: start-up), made at the worker's
 * first call and swapped for a new one first when a reload happened since
 * it was made (NULL if it cannot be made); NULL before rl_start,
 * after rl_stop or when no script is configured. Worker w's thread only
 * (for -1, with rl_boot_lock held). */
struct rl_state *rl_state_get(int w);
void rl_state_ref(struct rl_state *st);
/* After a coroutine was dropped (one that failed holds what it made):
 * collects now when st is over half full, as Lua 5.1 only collects as it
 * allocates and a full state would fail the next hooks too. */
void rl_state_tidy(struct rl_state *st);
void rl_state_unref(struct rl_state *st);
void rl_boot_lock(void);
/* 1 between rl_start (with scripts) and rl_stop, from any thread. */
int rl_ready(void);
void rl_boot_unlock(void);
/* Calls the function under nargs arguments on L (st's main state or one
 * of its threads) in protected mode with the instruction budget; what
 * names the hook for the log. 0 with nres results pushed; -1 with the
 * error logged ("script error: what: file:line: message") and the
 * function and arguments popped. */
int rl_call(lua_State *L, int nargs, int nres, const char *what);
/* The same for resuming a coroutine co: LUA_YIELD, 0 when it returned
 * (results left on co), or -1 logged. */
int rl_resume(lua_State *co, int nargs, const char *what);
/* The reload generation; rl_reload bumps it. rl_generation_bump alone
 * is a reload from inside the start-up state (its lock is held): that
 * state is rebuilt at its next use. */
unsigned rl_generation(void);
void rl_generation_bump(void);

/* Compiles the SMTPScript into st once (vpop3.c); each SMTP session
 * runs it in an environment of its own. Logged when it does not load. */
void rl_vp3_load(struct rl_state *st);

/* ---- the standard library as scripts get it (sandbox.c) ---- */
/* Replaces what would end or wedge the server (os.exit, collectgarbage
 * "stop", string.rep, debug.sethook, newproxy, bytecode loading, ...)
 * with versions that fail inside the script. After luaL_openlibs. */
void rl_open_sandbox(lua_State *L);
/* luaL_loadfile with the file opened by os_fopen: a UTF-8 path works on
 * Windows too (Lua's own fopen takes the ANSI code page there). Same
 * results: 0 with the chunk pushed, or an error code with the message. */
int rl_loadfile(lua_State *L, const char *path);
/* string.find, match, gmatch and gsub on a matcher of Rumble's own that
 * charges its steps to the instruction budget and bounds its recursion
 * (lpattern.c). */
void rl_open_pattern(lua_State *L);
/* file:read("*l"), file:lines, io.lines, io.read reading lines a byte at
 * a time, NULs kept, charged to the budget (lio.c). */
void rl_open_lio(lua_State *L);
/* Takes n instructions from the budget of the call under way in L's
 * state, raising "script ran too long" once it is spent: for C loops
 * the count hook does not see. 0 when no budget is on (no call under way,
 * or L is not a Rumble state). */
int rl_budget_charge(lua_State *L, long n);
/* Protects every metatable the registry names (__metatable), once the
 * libraries are open. */
void rl_lock_metatables(lua_State *L);

/* ---- waits across pcall (pcall.c) ---- */
/* The weak table that maps a pcall's coroutine to the coroutine running
 * that pcall, while it runs. */
#define RL_PARENTS "rumble.parents"
/* pcall and xpcall that a wait can cross, coroutine.resume that does not
 * catch a spent budget. */
void rl_open_pcall(lua_State *L);
/* 1 when L, inside the C function calling this, could yield (no C
 * function between it and L's resume). */
int rl_yieldable(lua_State *L);
/* The session coroutine top when L is top or runs (through pcalls) under
 * it, else NULL; *wait is 1 when every coroutine from L up can yield, so
 * that a yield of L reaches top's resumer. L must be the running thread,
 * inside a C function. */
lua_State *rl_root(lua_State *L, lua_State *top, int *wait);

/* ---- the web admin (webadmin.c, webadmin.lua) ---- */
/* Listens on WebAdminBind:WebAdminPort when EnableWebAdmin is on (a
 * failure is logged, not fatal). Before the states are made. */
void rl_webadmin_start(void);
/* Runs the embedded pages in L (before the scripts): keeps their
 * connection function in the registry. */
void rl_webadmin_open(lua_State *L);
/* After the scripts: that function serves the web admin's port. */
void rl_webadmin_install(lua_State *L);

/* ---- registrations (lrumble.c): once per generation across states ---- */
/* 1 the first time key is claimed in this generation, 0 after. */
int rl_claim(const char *key);
/* 1 when key was claimed in this generation (a hook is set). */
int rl_claimed(const char *key);
/* The lock of session:lock(), one per service; NULL for a service the
 * scripts do not know. */
struct rl_lock *rl_service_lock(struct service *svc);
/* Frees the registry (rl_stop, once the server stopped). */
void rl_rumble_free(void);
/* Services known by name (rl_service_add, createService); NULL if none. */
struct service *rl_service_find(const char *name);

/* ---- session objects (handle.c) ---- */
/* The session metatable and the table of handles; once per state. */
void rl_open_session(lua_State *L);
/* Pushes s's session table (the same one for every call in this state,
 * made on first need; s->lua keeps it until rl_session_end) and returns
 * its handle. */
struct rl_handle;
struct rl_handle *rl_session_push(lua_State *L, struct session *s);
/* The handle of the session table at index i; raises if it is none. */
struct rl_handle *rl_session_check(lua_State *L, int i);
/* The session of h; NULL once it ended. */
struct session *rl_handle_session(struct rl_handle *h);
/* Frees s's session lock if s holds it (the end of a hook). */
void rl_session_unlock(struct session *s);
/* The locks themselves, for lrumble.c's registry. */
struct rl_lock;
struct rl_lock *rl_lock_new(void);
void rl_lock_free(struct rl_lock *k);
/* session:receive() and :receivebytes() (services.c). */
int rl_session_receive(lua_State *L);
int rl_session_receivebytes(lua_State *L);

/* A session's coroutine while it waits: for input (session:receive,
 * the session's tap feeds it) or for a job on another thread. */
enum rl_want { W_NONE, W_LINE, W_BYTES, W_JOB };
struct rl_conn {
	struct rl_state *st; /* a reference: the state outlives a reload */
	struct session *s;
	lua_State *co;
	int co_ref; /* the coroutine in the registry, or LUA_NOREF */
	struct rl_handle *h;
	enum rl_want want;
	size_t nbytes;   /* W_BYTES: how many */
	struct buf pend; /* input taken for the script, not yet handed over */
	int done;        /* a service function returned or failed */
	int closed;      /* the session ended while a job was out */
	/* The coroutine returned (rc 0, its results on co), failed (-1) or
	 * yielded for something else than rl_conn (1). */
	void (*finished)(struct rl_conn *c, int rc);
	void *arg;     /* its owner's */
	char what[96]; /* names it in the log */
};
/* Resumes co, a session coroutine with handle h, as rl_resume. *c is
 * co's rl_conn, or NULL: then one made while it runs (a wait) is put
 * there. */
int rl_run(struct rl_state *st, lua_State *co, struct rl_handle *h, struct rl_conn **c, int nargs,
        const char *what);
/* A new rl_conn for co, the coroutine of a session with handle h. */
struct rl_conn *rl_conn_new(struct rl_state *st, lua_State *co, struct rl_handle *h);
/* The rl_conn of the session coroutine rl_run is running when L is that
 * coroutine or runs under it through pcalls (made on first need; co_ref
 * LUA_NOREF, finished NULL: the caller of rl_run takes it over when the
 * coroutine yields). NULL when L is none of them (top-level script code,
 * a coroutine of the script's own) or the session is closing. *wait (if
 * not NULL) is 1 when a yield of L would reach rl_run now: 0 inside a C
 * function such as string.gsub, where a waiting call must run in place. */
struct rl_conn *rl_conn_here(lua_State *L, int *wait);
/* Says once per script, at warn level, that the waiting call fn ran in
 * place, holding the worker, when a session coroutine is running (top
 * level code and the mailman hook are expected to block). */
void rl_warn_in_place(lua_State *L, const char *fn);
/* Sets the session's tap: its input goes to c's waiting coroutine. */
void rl_conn_listen(struct rl_conn *c);
/* Resumes c's coroutine with nargs values on it until it waits (input
 * not there yet: the session's tap is set) or ends (c->finished). */
void rl_conn_run(struct rl_conn *c, int nargs);
/* Stops the tap, drops the coroutine and the state reference. */
void rl_conn_free(struct rl_conn *c);

/* ---- blocking calls on helper threads (jobs.c) ---- */
/* The first member of a job's struct (allocated with xcalloc). */
struct rl_job {
	void (*run)(struct rl_job *j);               /* the blocking part: no Lua here */
	int (*push)(lua_State *L, struct rl_job *j); /* the results; their count */
	void (*done)(struct rl_job *j);              /* frees what j holds (NULL: nothing) */
	/* Its length is up to a remote server (minutes): it goes to the slow
	 * lane of work.c, and where a session's script cannot wait for it
	 * (inside a C function) it fails with nil and why rather than hold
	 * the worker and every session on it, as it does on a worker outside
	 * a session coroutine (SMTPScript and Dovecot callbacks); in the
	 * start-up state (top-level code, the mailman hook) it runs in place
	 * until the script's LuaTimeLimit (rl_job.deadline). */
	int slow;
	/* Set for a slow job run in place: the os_now_ms() at which the
	 * script's LuaTimeLimit ends; the job gives up then. 0 none. */
	int64_t deadline;
	struct rl_conn *c;
	struct work w; /* how it travels (work.c) */
};
/* A C function's tail call, "return rl_job_call(L, j);": in a session
 * coroutine j runs on a helper thread while the coroutine waits (the
 * worker serves its other sessions) and push's values are what the
 * function returns; elsewhere it runs in place. j is freed either way.
 * If the session ends meanwhile the script is not resumed. */
int rl_job_call(lua_State *L, struct rl_job *j);
/* The table in the registry where a state keeps its registrations:
 * hooks["smtp/command/helo"] = fn, services[port] = fn. */
#define RL_HOOKS "rumble.hooks"
#define RL_SERVICES "rumble.services"
/* The protocol of createService sessions (services.c). */
extern const struct proto rl_service_proto;
/* A createService service on port (made on the first call). */
struct service *rl_service_create(int port, int threads, char *err, size_t errlen);

#endif
