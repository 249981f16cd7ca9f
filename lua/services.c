/*
 * services.c - session handles, the coroutines scripts talk to clients
 * in, and the services scripts create with Rumble.createService.
 *
 * A session handle is a userdata pointing at its session. Hooks get one
 * for the length of the call (rl_session_done detaches it afterwards, so
 * a script that keeps it sees a closed handle, never a freed session);
 * a service session keeps one for its whole life.
 *
 * Scripts run in coroutines of their worker's state: a service session's
 * function for the whole session, a hook's function for one call (hooks.c
 * reuses one spare coroutine per state while hooks return at once).
 * session:receive() and :receivebytes() yield the coroutine when the
 * input is not there yet, and an rl_conn takes over: it sets the
 * session's tap (session.c hands it the client's input as it comes,
 * taking only what the script asked for) and resumes the coroutine once
 * the input is there. An idle session holds a coroutine and a few
 * buffers, no thread. The service lock (session:lock()) is released
 * whenever the coroutine yields or ends: a coroutine waiting for a
 * client must not block the service's sessions on other workers.
 */
#include <string.h>

#include "lua/rl.h"

#define HANDLE_MT "rumble.session"
#define LINE_PIECE_MAX 8192            /* longer lines reach the script in pieces */
#define RECEIVE_MAX (16 * 1024 * 1024) /* session:receivebytes(n) */

struct rl_handle {
	struct session *s; /* NULL once closed */
	struct rl_conn *c; /* the coroutine's rl_conn once it waited */
	lua_State *co;     /* the coroutine it was given to */
	int locked;
};

/* ---- the handle ---- */

static struct rl_handle *check_handle(lua_State *L)
{
	return luaL_checkudata(L, 1, HANDLE_MT);
}

static void handle_unlock(struct rl_handle *h)
{
	if (h && h->locked && h->s) {
		os_mutex_unlock(rl_service_mutex(h->s->svc));
	}
	if (h) {
		h->locked = 0;
	}
}

struct rl_conn *rl_session_conn(struct rl_handle *h)
{
	return h->c;
}

void rl_session_done(struct rl_handle *h)
{
	handle_unlock(h);
	h->s = NULL;
	h->c = NULL;
}

static int h_send(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	size_t n;
	const char *p = luaL_checklstring(L, 2, &n);
	if (!h->s || session_closing(h->s)) {
		return rl_fail(L, "session closed");
	}
	session_write(h->s, p, n);
	lua_pushboolean(L, 1);
	return 1;
}

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

/* The rl_conn of the coroutine a receive runs in (made on first need). */
static struct rl_conn *waiter(lua_State *L, struct rl_handle *h, const char *fn)
{
	if (!h->s || session_closing(h->s)) {
		return NULL;
	}
	struct rl_conn *c = h->co == L ? rl_conn_here(L) : NULL;
	if (!c) {
		luaL_error(L, "session:%s() must be called by the hook or service function itself, not "
			      "from another coroutine",
			fn);
	}
	return c;
}

static int h_receive(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	struct rl_conn *c = waiter(L, h, "receive");
	if (!c) {
		return rl_fail(L, "session closed");
	}
	c->want = W_LINE;
	int n = take(L, c, 0);
	return n ? n : lua_yield(L, 0);
}

static int h_receivebytes(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	lua_Integer want = luaL_checkinteger(L, 2);
	luaL_argcheck(L, want >= 0 && want <= RECEIVE_MAX, 2, "byte count out of range");
	struct rl_conn *c = waiter(L, h, "receivebytes");
	if (!c) {
		lua_pushliteral(L, "");
		lua_pushinteger(L, -1);
		return 2;
	}
	c->want = W_BYTES;
	c->nbytes = (size_t)want;
	int n = take(L, c, 0);
	return n ? n : lua_yield(L, 0);
}

static int h_lock(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	if (h->s && !h->locked) {
		os_mutex_lock(rl_service_mutex(h->s->svc));
		h->locked = 1;
	}
	return 0;
}

static int h_unlock(lua_State *L)
{
	handle_unlock(check_handle(L));
	return 0;
}

static void push_list(lua_State *L, char *const *v, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, v[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

static void push_or_nil(lua_State *L, const char *v)
{
	if (v && *v) {
		lua_pushstring(L, v);
	} else {
		lua_pushnil(L);
	}
}

/* session.address, .protocol, ... and the methods. */
static int h_index(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	const char *k = luaL_checkstring(L, 2);
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, k);
	if (!lua_isnil(L, -1)) {
		return 1; /* a method */
	}
	struct session *s = h->s;
	if (!s) {
		lua_pushnil(L);
		return 1;
	}
	struct proto_info pi = {0};
	if (s->svc->proto->info && s->ps) {
		s->svc->proto->info(s, &pi);
	}
	if (!strcmp(k, "address")) {
		lua_pushstring(L, s->peer);
	} else if (!strcmp(k, "protocol")) {
		lua_pushstring(L, s->svc->name);
	} else if (!strcmp(k, "port")) {
		lua_pushinteger(L, s->svc->port);
	} else if (!strcmp(k, "local")) {
		lua_pushstring(L, s->local);
	} else if (!strcmp(k, "id")) {
		lua_pushfstring(L, "%08x", (unsigned)s->id);
	} else if (!strcmp(k, "tls")) {
		lua_pushboolean(L, session_secure(s));
	} else if (!strcmp(k, "helo")) {
		push_or_nil(L, pi.helo);
	} else if (!strcmp(k, "sender")) {
		if (pi.sender) {
			lua_pushstring(L, pi.sender); /* "" is the null sender */
		} else {
			lua_pushnil(L);
		}
	} else if (!strcmp(k, "user")) {
		push_or_nil(L, pi.user);
	} else if (!strcmp(k, "recipients")) {
		push_list(L, pi.rcpts, pi.rcpts ? pi.nrcpt : 0);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int h_tostring(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	if (h->s) {
		lua_pushfstring(L, "session %s (%s)", h->s->peer, h->s->svc->name);
	} else {
		lua_pushliteral(L, "session (closed)");
	}
	return 1;
}

static const luaL_Reg handle_methods[] = {
	{"send", h_send},
	{"receive", h_receive},
	{"receivebytes", h_receivebytes},
	{"lock", h_lock},
	{"unlock", h_unlock},
	{"__index", h_index},
	{"__tostring", h_tostring},
	{NULL, NULL},
};

struct rl_handle *rl_session_push(lua_State *L, struct session *s)
{
	struct rl_handle *h = lua_newuserdata(L, sizeof *h);
	*h = (struct rl_handle){s, NULL, L, 0};
	if (luaL_newmetatable(L, HANDLE_MT)) {
		luaL_register(L, NULL, handle_methods);
	}
	lua_setmetatable(L, -2);
	return h;
}

/* ---- coroutines that wait for their client ---- */

int rl_run(struct rl_state *st, lua_State *co, struct rl_handle *h, int nargs, const char *what)
{
	lua_State *was_co = st->run_co;
	struct rl_handle *was_h = st->run_h;
	st->run_co = co;
	st->run_h = h;
	int rc = rl_resume(co, nargs, what);
	st->run_co = was_co;
	st->run_h = was_h;
	handle_unlock(h);
	return rc;
}

struct rl_conn *rl_conn_here(lua_State *L)
{
	struct rl_state *st = rl_state_of(L);
	struct rl_handle *h = st->run_co == L ? st->run_h : NULL;
	if (!h || !h->s || session_closing(h->s)) {
		return NULL;
	}
	if (!h->c) {
		struct rl_conn *c = xcalloc(1, sizeof *c);
		c->st = st;
		rl_state_ref(st);
		c->s = h->s;
		c->co = L;
		c->co_ref = LUA_NOREF;
		c->h = h;
		buf_init(&c->pend);
		h->c = c;
	}
	return h->c;
}

void rl_conn_free(struct rl_conn *c)
{
	if (c->s && c->s->tap_arg == c) {
		c->s->tap = NULL;
		c->s->tap_arg = NULL;
	}
	if (c->h) {
		rl_session_done(c->h);
	}
	luaL_unref(c->st->L, LUA_REGISTRYINDEX, c->co_ref);
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
		int rc = rl_run(c->st, c->co, c->h, nargs, c->what);
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
	lua_xmove(L, co, 1);                           /* the function */
	lua_pop(L, 1);
	lua_pushvalue(co, 1);
	st->capped = 1;
	/* the coroutine's rl_conn from the start: it lives as long as s */
	st->run_co = co;
	st->run_h = h;
	struct rl_conn *c = rl_conn_here(co);
	st->run_co = NULL;
	st->run_h = NULL;
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
