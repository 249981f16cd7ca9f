/*
 * services.c - the coroutines scripts talk to clients in, and the
 * services scripts create with Rumble.createService.
 *
 * Scripts run in coroutines of their worker's state: a service session's
 * function for the whole session, a hook's function for one call (hooks.c
 * reuses one spare coroutine per state while hooks return at once).
 * session:receive() and :receivebytes() yield the coroutine when the
 * input is not there yet (from inside pcalls too: pcall.c), and an
 * rl_conn takes over: it sets the session's tap (session.c hands it the
 * client's input as it comes, taking only what the script asked for) and
 * resumes the coroutine once the input is there. An idle session holds a
 * coroutine and a few buffers, no thread. The session object itself and
 * session:lock() live in handle.c.
 */
#include <string.h>

#include "lua/rl.h"

#define LINE_PIECE_MAX 8192            /* longer lines reach the script in pieces */
#define RECEIVE_MAX (16 * 1024 * 1024) /* session:receivebytes(n) */

/* Pushes what the script waits for if pend has it: 1 or 2 values, else
 * 0. At the end of input (eof) it pushes the failure values. */
static int take(lua_State *L, struct rl_conn *c, int eof)
{
	if (c->want == W_LINE) {
		char *nl = c->pend.len ? memchr(c->pend.data, '\n', c->pend.len) : NULL;
		size_t n = nl ? (size_t)(nl - c->pend.data) + 1 : c->pend.len;
		if (!nl && !eof && n < LINE_PIECE_MAX) {
			return 0;
		}
		if (!n && eof) {
			c->want = W_NONE;
			lua_pushnil(L);
			return 1;
		}
		size_t len = n;
		while (len && (c->pend.data[len - 1] == '\n' || c->pend.data[len - 1] == '\r')) {
			len--;
		}
		lua_pushlstring(L, c->pend.data, len);
		buf_consume(&c->pend, n);
	} else if (c->want == W_BYTES) {
		if (c->pend.len < c->nbytes && !eof) {
			return 0;
		}
		if (c->pend.len < c->nbytes) {
			c->want = W_NONE;
			lua_pushliteral(L, "");
			lua_pushinteger(L, -1);
			return 2;
		}
		lua_pushlstring(L, c->pend.data, c->nbytes);
		lua_pushinteger(L, (lua_Integer)c->nbytes);
		buf_consume(&c->pend, c->nbytes);
		c->want = W_NONE;
		return 2;
	} else {
		return 0;
	}
	c->want = W_NONE;
	if (!c->pend.len) {
		buf_free(&c->pend); /* an idle session keeps no buffer */
	}
	return 1;
}

/* The rl_conn of the coroutine a receive runs in (made on first need),
 * with *wait 0 where it cannot yield; NULL once the session is closed. */
static struct rl_conn *waiter(lua_State *L, struct rl_handle *h, const char *fn, int *wait)
{
	struct session *s = rl_handle_session(h);
	if (!s || session_closing(s)) {
		return NULL;
	}
	struct rl_conn *c = rl_conn_here(L, wait);
	if (!c || c->h != h) {
		luaL_error(L,
		        "session:%s() must be called by the hook or service function of this "
		        "session, not from a coroutine of the script's own or another session",
		        fn);
	}
	return c;
}

/* What a receive that found no input returns where it cannot wait. */
static int cannot_wait(lua_State *L, struct rl_conn *c, const char *fn)
{
	c->want = W_NONE;
	rl_warn_in_place(L, fn);
	return rl_fail(L,
	        "session:%s() cannot wait for input here (inside a C function such as "
	        "string.gsub, table.sort, a metamethod or an iterator)",
	        fn);
}

int rl_session_receive(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	int wait;
	struct rl_conn *c = waiter(L, h, "receive", &wait);
	if (!c) {
		return rl_fail(L, "session closed");
	}
	c->want = W_LINE;
	int n = take(L, c, 0);
	return n ? n : wait ? lua_yield(L, 0) : cannot_wait(L, c, "receive");
}

int rl_session_receivebytes(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	lua_Integer want = luaL_checkinteger(L, 2);
	luaL_argcheck(L, want >= 0 && want <= RECEIVE_MAX, 2, "byte count out of range");
	int wait;
	struct rl_conn *c = waiter(L, h, "receivebytes", &wait);
	if (!c) {
		lua_pushliteral(L, "");
		lua_pushinteger(L, -1);
		return 2;
	}
	c->want = W_BYTES;
	c->nbytes = (size_t)want;
	int n = take(L, c, 0);
	if (n || wait) {
		return n ? n : lua_yield(L, 0);
	}
	cannot_wait(L, c, "receivebytes");
	lua_pushliteral(L, "");
	lua_pushinteger(L, -1);
	return 2;
}

/* ---- coroutines that wait for their client ---- */

int rl_run(struct rl_state *st, lua_State *co, struct rl_handle *h, struct rl_conn **c, int nargs,
        const char *what)
{
	lua_State *was_co = st->run_co;
	struct rl_handle *was_h = st->run_h;
	struct rl_conn **was_c = st->run_c;
	st->run_co = co;
	st->run_h = h;
	st->run_c = c;
	int rc = rl_resume(co, nargs, what);
	st->run_co = was_co;
	st->run_h = was_h;
	st->run_c = was_c;
	return rc;
}

struct rl_conn *rl_conn_new(struct rl_state *st, lua_State *co, struct rl_handle *h)
{
	struct rl_conn *c = xcalloc(1, sizeof *c);
	c->st = st;
	rl_state_ref(st);
	c->s = rl_handle_session(h);
	c->co = co;
	c->co_ref = LUA_NOREF;
	c->h = h;
	buf_init(&c->pend);
	return c;
}

struct rl_conn *rl_conn_here(lua_State *L, int *wait)
{
	int yieldable;
	struct rl_state *st = rl_state_of(L);
	lua_State *root = rl_root(L, st->run_co, &yieldable);
	struct session *s = root ? rl_handle_session(st->run_h) : NULL;
	if (wait) {
		*wait = yieldable;
	}
	if (!s || session_closing(s)) {
		return NULL;
	}
	if (!*st->run_c) {
		*st->run_c = rl_conn_new(st, root, st->run_h);
	}
	return *st->run_c;
}

void rl_conn_free(struct rl_conn *c)
{
	if (c->s && c->s->tap_arg == c) {
		c->s->tap = NULL;
		c->s->tap_arg = NULL;
	}
	luaL_unref(c->st->L, LUA_REGISTRYINDEX, c->co_ref);
	rl_state_tidy(c->st);
	rl_state_unref(c->st);
	buf_free(&c->pend);
	free(c);
}

/* How much of n bytes at p the waiting script takes now. */
static size_t wanted(const struct rl_conn *c, const char *p, size_t n)
{
	if (c->want == W_LINE) {
		size_t room = LINE_PIECE_MAX - c->pend.len;
		size_t look = n < room ? n : room;
		const char *nl = memchr(p, '\n', look);
		return nl ? (size_t)(nl - p) + 1 : look;
	}
	if (c->want == W_BYTES) {
		size_t room = c->nbytes - c->pend.len;
		return n < room ? n : room;
	}
	return 0;
}

/* The end of the session: a script waiting for input learns it (nil,
 * or "", -1) and runs to its end; one waiting for a job is left to the
 * job, which frees c when it comes back. */
static void conn_end(struct rl_conn *c)
{
	c->s->tap = NULL;
	c->s->tap_arg = NULL;
	if (c->want == W_JOB) {
		c->closed = 1;
		return;
	}
	if (c->want != W_NONE) {
		c->st->capped = 0;
		int n = take(c->co, c, 1);
		c->st->capped = 1;
		rl_conn_run(c, n);
	}
}

/* session.c's tap while a script waits for its client. */
static size_t conn_tap(struct session *s, const char *p, size_t n)
{
	struct rl_conn *c = s->tap_arg;
	if (!p) {
		conn_end(c);
		return 0;
	}
	size_t use = wanted(c, p, n);
	if (use) {
		buf_append(&c->pend, p, use);
		c->st->capped = 0; /* pushing the input must not fail outside a pcall */
		int k = take(c->co, c, 0);
		c->st->capped = 1;
		if (k) {
			rl_conn_run(c, k); /* may free c */
		}
	}
	return use;
}

void rl_conn_listen(struct rl_conn *c)
{
	c->s->tap = conn_tap; /* session.c brings the input */
	c->s->tap_arg = c;
}

void rl_conn_run(struct rl_conn *c, int nargs)
{
	for (;;) {
		struct rl_conn *self = c;
		int rc = rl_run(c->st, c->co, c->h, &self, nargs, c->what);
		if (rc != LUA_YIELD || c->want == W_NONE) {
			/* returned, failed, or yielded for something else than input */
			c->want = W_NONE;
			if (c->s->tap_arg == c) {
				c->s->tap = NULL;
				c->s->tap_arg = NULL;
			}
			c->finished(c, rc == 0 ? 0 : rc < 0 ? -1 : 1);
			return;
		}
		if (c->want == W_JOB) {
			rl_conn_listen(c); /* input waits (the tap takes none) */
			return;            /* jobs.c resumes the coroutine */
		}
		c->st->capped = 0;
		nargs = take(c->co, c, 0);
		c->st->capped = 1;
		if (!nargs) {
			rl_conn_listen(c);
			return;
		}
	}
}

/* ---- the service protocol ---- */

static void svc_finished(struct rl_conn *c, int rc)
{
	if (c->closed) {
		rl_conn_free(c); /* a job came back after the session ended */
		return;
	}
	c->done = 1;
	session_close(c->s, rc == 0 ? "script done" : rc < 0 ? "script error" : "script yielded");
}

static void svc_open(struct session *s)
{
	struct rl_state *st = rl_state_get(session_worker(s));
	if (!st) {
		session_close(s, "no script");
		return;
	}
	lua_State *L = st->L;
	lua_getfield(L, LUA_REGISTRYINDEX, RL_SERVICES);
	lua_rawgeti(L, -1, s->svc->port);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 2);
		session_close(s, "no script for this service");
		return;
	}
	st->capped = 0; /* the session's own few bytes must not fail outside a pcall */
	lua_State *co = lua_newthread(L);
	int ref = luaL_ref(L, LUA_REGISTRYINDEX);
	struct rl_handle *h = rl_session_push(co, s); /* kept below the function */
	lua_xmove(L, co, 1);                          /* the function */
	lua_pop(L, 1);
	lua_pushvalue(co, 1);
	st->capped = 1;
	/* the coroutine's rl_conn from the start: it lives as long as s */
	struct rl_conn *c = rl_conn_new(st, co, h);
	c->co_ref = ref;
	c->finished = svc_finished;
	snprintf(c->what, sizeof c->what, "service on port %d", s->svc->port);
	s->ps = c;
	rl_conn_run(c, 1);
}

static void svc_close(struct session *s)
{
	struct rl_conn *c = s->ps;
	s->ps = NULL;
	if (c && !c->closed) {
		rl_conn_free(c); /* else the job that is out frees it */
	}
}

static int svc_can_stop(struct session *s)
{
	struct rl_conn *c = s->ps;
	return !c || c->done || c->want == W_LINE || c->want == W_BYTES;
}

const struct proto rl_service_proto = {
        .name = "lua",
        .line_max = 0, /* all input goes to the tap (conn_tap) */
        .open = svc_open,
        .close = svc_close,
        .can_stop = svc_can_stop,
};
