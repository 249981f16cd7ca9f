/*
 * services.c - session handles, and the services scripts create with
 * Rumble.createService.
 *
 * A session handle is a userdata pointing at its session. Hooks get one
 * for the length of the call (rl_session_done detaches it afterwards, so
 * a script that keeps it sees a closed handle, never a freed session);
 * a service session keeps one for its whole life.
 *
 * A service session runs the script's function in a coroutine of its
 * worker's state. session:receive() and :receivebytes() yield it when the
 * input is not there yet, and the line callback resumes it: an idle
 * session holds a coroutine and a few buffers, no thread. While the
 * script is not waiting for input the session is paused, so input stays
 * in the session's buffer. The service lock (session:lock()) is released
 * whenever the coroutine yields or ends: a coroutine waiting for a client
 * must not block the service's sessions on other workers.
 */
#include <string.h>

#include "lua/rl.h"

#define HANDLE_MT "rumble.session"
#define LINE_PIECE_MAX 8192          /* longer lines reach the script in pieces */
#define RECEIVE_MAX (16 * 1024 * 1024) /* session:receivebytes(n) */

enum want { W_NONE, W_LINE, W_BYTES };

/* A Lua service session (s->ps). */
struct rl_conn {
	struct rl_state *st; /* a reference: the state outlives a reload */
	lua_State *co;
	int co_ref, h_ref; /* the coroutine and handle in the registry */
	struct rl_handle *h;
	enum want want;
	size_t nbytes;   /* W_BYTES: how many */
	struct buf pend; /* input the script has not taken yet */
	int done;        /* the function returned or failed */
	char what[32];   /* "service on port N", for the log */
};

struct rl_handle {
	struct session *s; /* NULL once closed */
	struct rl_conn *c; /* NULL for a hook */
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

void rl_session_done(struct rl_handle *h)
{
	handle_unlock(h);
	h->s = NULL;
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

static struct rl_conn *service_conn(lua_State *L, struct rl_handle *h, const char *fn)
{
	if (!h->s) {
		return NULL;
	}
	if (!h->c) {
		luaL_error(L, "session:%s() is for Rumble.createService sessions, not hooks", fn);
	}
	if (h->c->co != L) {
		luaL_error(L, "session:%s() must run in the service function, not another coroutine", fn);
	}
	return h->c;
}

static int h_receive(lua_State *L)
{
	struct rl_handle *h = check_handle(L);
	struct rl_conn *c = service_conn(L, h, "receive");
	if (!c || session_closing(h->s)) {
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
	struct rl_conn *c = service_conn(L, h, "receivebytes");
	if (!c || session_closing(h->s)) {
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

struct rl_handle *rl_session_push(lua_State *L, struct session *s, void *conn)
{
	struct rl_handle *h = lua_newuserdata(L, sizeof *h);
	*h = (struct rl_handle){s, conn, 0};
	if (luaL_newmetatable(L, HANDLE_MT)) {
		luaL_register(L, NULL, handle_methods);
	}
	lua_setmetatable(L, -2);
	return h;
}

/* ---- the service protocol ---- */

/* Runs the coroutine with nargs values pushed, then feeds it what input
 * is already there; pauses the session whenever the script is not
 * waiting for input. */
static void conn_run(struct session *s, struct rl_conn *c, int nargs)
{
	for (;;) {
		int rc = rl_resume(c->co, nargs, c->what);
		handle_unlock(c->h);
		if (rc != LUA_YIELD || c->want == W_NONE) {
			/* returned, failed, or yielded for something else than input */
			c->done = 1;
			c->want = W_NONE;
			session_close(s, rc == 0 ? "script done" : rc < 0 ? "script error" : "script yielded");
			return;
		}
		c->st->capped = 0; /* pushing the input must not fail outside a pcall */
		nargs = take(c->co, c, 0);
		c->st->capped = 1;
		if (!nargs) {
			session_resume(s);
			return;
		}
	}
}

static void svc_line(struct session *s, char *line, size_t len)
{
	struct rl_conn *c = s->ps;
	if (c->done) {
		return;
	}
	buf_append(&c->pend, line, len);
	if (c->want == W_NONE) {
		session_pause(s);
		return;
	}
	c->st->capped = 0;
	int n = take(c->co, c, 0);
	c->st->capped = 1;
	if (n) {
		session_pause(s);
		conn_run(s, c, n);
	}
}

static void svc_open(struct session *s)
{
	struct rl_conn *c = xcalloc(1, sizeof *c);
	buf_init(&c->pend);
	s->ps = c;
	snprintf(c->what, sizeof c->what, "service on port %d", s->svc->port);
	session_pause(s);
	struct rl_state *st = rl_state_get(session_worker(s));
	if (!st) {
		c->done = 1;
		session_close(s, "no script");
		return;
	}
	lua_State *L = st->L;
	lua_getfield(L, LUA_REGISTRYINDEX, RL_SERVICES);
	lua_rawgeti(L, -1, s->svc->port);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 2);
		c->done = 1;
		session_close(s, "no script for this service");
		return;
	}
	st->capped = 0; /* the session's own few bytes must not fail outside a pcall */
	c->co = lua_newthread(L);
	c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_xmove(L, c->co, 1); /* the function */
	lua_pop(L, 1);
	c->h = rl_session_push(c->co, s, c);
	lua_pushvalue(c->co, -1);
	c->h_ref = luaL_ref(c->co, LUA_REGISTRYINDEX);
	st->capped = 1;
	c->st = st;
	rl_state_ref(st);
	conn_run(s, c, 1);
}

static void svc_close(struct session *s)
{
	struct rl_conn *c = s->ps;
	if (!c) {
		return;
	}
	if (c->co && !c->done && c->want != W_NONE) {
		/* the script learns that the client went away: nil, or "", -1 */
		c->st->capped = 0;
		int n = take(c->co, c, 1);
		c->st->capped = 1;
		int rc = rl_resume(c->co, n, c->what);
		(void)rc; /* whatever it does next, the session is over */
		handle_unlock(c->h);
	}
	if (c->st) {
		rl_session_done(c->h);
		luaL_unref(c->st->L, LUA_REGISTRYINDEX, c->h_ref);
		luaL_unref(c->st->L, LUA_REGISTRYINDEX, c->co_ref);
		rl_state_unref(c->st);
	}
	buf_free(&c->pend);
	free(c);
	s->ps = NULL;
}

static int svc_can_stop(struct session *s)
{
	struct rl_conn *c = s->ps;
	return !c || c->done || c->want != W_NONE;
}

const struct proto rl_service_proto = {
	.name = "lua",
	/* byte by byte: receivebytes must see input that has no line end;
	 * lines are cut here, from pend */
	.line_max = 1,
	.open = svc_open,
	.line = svc_line,
	.close = svc_close,
	.can_stop = svc_can_stop,
};
