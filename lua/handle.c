/*
 * handle.c - the session object scripts get, and session:lock().
 *
 * A session is a table, the same one for every hook of the session (and
 * for the whole of a service session), as in the original Rumble: scripts
 * may keep fields of their own in it, or key a table by it. What the
 * server knows (session.address, .id, .helo, .sender, ...) is read live
 * through its metatable, as are the methods send, receive, receivebytes,
 * lock and unlock; a field the script wrote itself hides the live one.
 *
 * The table lives in the worker's state: struct rl_sess (s->lua) holds it
 * in the registry until the session ends (rl_session_end), and the weak
 * registry table RL_HANDLES maps it to a handle, a userdata pointing at
 * the session. At the end the handle is closed: a script that kept the
 * table gets nil and "session closed", never a freed session. After a
 * reload the new state makes a table of its own.
 *
 * session:lock() takes the lock of the session's service, one per service
 * for the whole process, and holds it across waits until unlock(), the
 * end of the hook or the end of the session. Another session that finds
 * it taken waits in its coroutine (its worker serves others meanwhile)
 * and is handed the lock in turn, on its own worker (session_post).
 */
#include <string.h>

#include "lua/rl.h"

#define SESSION_MT "rumble.session"
#define SEND_MAX (4 * 1024 * 1024) /* output not yet taken by the client */
#define RL_HANDLES "rumble.handles"

struct rl_handle {
	struct session *s; /* NULL once the session ended */
};

struct rl_sess {
	struct rl_state *st; /* a reference */
	int ref;             /* the table in st's registry */
	struct rl_handle *h;
};

/* ---- the lock ---- */

struct waiter {
	struct rl_conn *c;
	uint32_t id;
	struct waiter *next;
};

struct rl_lock {
	os_mutex *mx;
	uint32_t owner; /* a session id; 0: free */
	struct waiter *head, *tail;
};

struct rl_lock *rl_lock_new(void)
{
	struct rl_lock *k = xcalloc(1, sizeof *k);
	k->mx = os_mutex_new();
	return k;
}

void rl_lock_free(struct rl_lock *k)
{
	if (k) {
		os_mutex_free(k->mx);
		free(k);
	}
}

static void handed(struct session *s, void *arg);

/* Frees the lock, or hands it to the first waiter. Under k->mx. */
static void pass_on(struct rl_lock *k)
{
	struct waiter *w = k->head;
	k->owner = w ? w->id : 0;
	if (w) {
		k->head = w->next;
		if (!k->head) {
			k->tail = NULL;
		}
		session_post(w->c->s, handed, w);
	}
}

/* see rl.h */
void rl_session_unlock(struct session *s)
{
	struct rl_lock *k = rl_service_lock(s->svc);
	if (!k) {
		return;
	}
	os_mutex_lock(k->mx);
	if (k->owner == s->id) {
		pass_on(k);
	}
	os_mutex_unlock(k->mx);
}

/* On the waiter's worker: it has the lock now. */
static void handed(struct session *s, void *arg)
{
	struct waiter *w = arg;
	struct rl_conn *c = w->c;
	free(w);
	if (c->closed) {
		rl_session_unlock(s); /* it ended while it waited: the next one */
		c->finished(c, -1);
		return;
	}
	c->want = W_NONE;
	lua_pushboolean(c->co, 1);
	rl_conn_run(c, 1);
}

/* 1: taken; 0: c waits for it (the caller yields); -1: taken by another
 * session and c cannot wait (NULL). */
static int lock_take(struct rl_lock *k, struct session *s, struct rl_conn *c)
{
	int rc = 1;
	os_mutex_lock(k->mx);
	if (k->owner && k->owner != s->id) {
		rc = c ? 0 : -1;
	} else {
		k->owner = s->id;
	}
	if (rc == 0) {
		struct waiter *w = xcalloc(1, sizeof *w);
		w->c = c;
		w->id = s->id;
		session_hold(s);
		c->want = W_JOB; /* as for a job: a close marks c, the hand-over frees it */
		if (k->tail) {
			k->tail->next = w;
		} else {
			k->head = w;
		}
		k->tail = w;
	}
	os_mutex_unlock(k->mx);
	return rc;
}

/* ---- the session table ---- */

struct rl_handle *rl_session_check(lua_State *L, int i)
{
	luaL_checktype(L, i, LUA_TTABLE);
	lua_getfield(L, LUA_REGISTRYINDEX, RL_HANDLES);
	lua_pushvalue(L, i);
	lua_rawget(L, -2);
	struct rl_handle *h = lua_touserdata(L, -1);
	lua_pop(L, 2);
	if (!h) {
		luaL_argerror(L, i, "a session expected");
	}
	return h;
}

struct session *rl_handle_session(struct rl_handle *h)
{
	return h->s;
}

static int s_send(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	size_t n;
	const char *p = luaL_checklstring(L, 2, &n);
	if (!h->s || session_closing(h->s)) {
		return rl_fail(L, "session closed");
	}
	if (h->s->out.len + n > SEND_MAX) {
		return rl_fail(L, "the client is not reading: %lu bytes wait for it",
		        (unsigned long)h->s->out.len);
	}
	session_write(h->s, p, n);
	lua_pushboolean(L, 1);
	return 1;
}

static int s_lock(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	struct rl_lock *k = h->s ? rl_service_lock(h->s->svc) : NULL;
	if (!k || session_closing(h->s)) {
		return rl_fail(L, "session closed");
	}
	int wait;
	struct rl_conn *c = rl_conn_here(L, &wait);
	int rc = lock_take(k, h->s, c && wait && c->h == h ? c : NULL);
	if (rc == 0) {
		return lua_yield(L, 0); /* handed() resumes it with true */
	}
	if (rc < 0) {
		rl_warn_in_place(L, "session:lock");
		return rl_fail(L,
		        "the service is locked by another session and session:lock() cannot "
		        "wait here");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int s_unlock(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	if (h->s) {
		rl_session_unlock(h->s);
	}
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

/* A field the server knows about session s; 0 when k is none. */
static int push_field(lua_State *L, struct session *s, const char *k)
{
	struct proto_info pi = {0};
	if (s->svc->proto->info && s->ps) {
		s->svc->proto->info(s, &pi);
	}
	char id[16];
	if (!strcmp(k, "address")) {
		lua_pushstring(L, s->peer);
	} else if (!strcmp(k, "protocol")) {
		lua_pushstring(L, s->svc->name);
	} else if (!strcmp(k, "port")) {
		lua_pushinteger(L, s->svc->port);
	} else if (!strcmp(k, "local")) {
		lua_pushstring(L, s->local);
	} else if (!strcmp(k, "id")) {
		snprintf(id, sizeof id, "%08x", (unsigned)s->id); /* as in the log */
		lua_pushstring(L, id);
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
	} else if (!strcmp(k, "spf") || !strcmp(k, "dkim") || !strcmp(k, "dmarc") ||
	           !strcmp(k, "authres")) { /* the last message's (dmarc.c) */
		push_or_nil(L, k[1] == 'p' ? pi.spf : k[1] == 'k' ? pi.dkim : k[1] == 'm' ? pi.dmarc : pi.authres);
	} else {
		return 0;
	}
	return 1;
}

/* __index: a method (upvalue 1), else what the server knows. */
static int s_index(lua_State *L)
{
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(1));
	if (!lua_isnil(L, -1) || lua_type(L, 2) != LUA_TSTRING) {
		return 1;
	}
	struct rl_handle *h = rl_session_check(L, 1);
	if (!h->s || !push_field(L, h->s, lua_tostring(L, 2))) {
		lua_pushnil(L);
	}
	return 1;
}

static int s_tostring(lua_State *L)
{
	struct rl_handle *h = rl_session_check(L, 1);
	if (h->s) {
		lua_pushfstring(L, "session %s (%s)", h->s->peer, h->s->svc->name);
	} else {
		lua_pushliteral(L, "session (closed)");
	}
	return 1;
}

static const luaL_Reg methods[] = {
        {"send", s_send},
        {"receive", rl_session_receive},
        {"receivebytes", rl_session_receivebytes},
        {"lock", s_lock},
        {"unlock", s_unlock},
        {NULL, NULL},
};

/* see rl.h */
void rl_open_session(lua_State *L)
{
	luaL_newmetatable(L, SESSION_MT);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_pushcclosure(L, s_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, s_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, RL_HANDLES);
}

static void sess_free(struct rl_sess *x)
{
	x->h->s = NULL;
	luaL_unref(x->st->L, LUA_REGISTRYINDEX, x->ref);
	rl_state_unref(x->st);
	free(x);
}

/* A new table for s in st, left on L's stack (L: st's main state or one
 * of its threads). */
static struct rl_sess *sess_new(struct rl_state *st, lua_State *L, struct session *s)
{
	struct rl_sess *x = xcalloc(1, sizeof *x);
	x->st = st;
	rl_state_ref(st);
	lua_newtable(L);
	luaL_getmetatable(L, SESSION_MT);
	lua_setmetatable(L, -2);
	lua_getfield(L, LUA_REGISTRYINDEX, RL_HANDLES);
	lua_pushvalue(L, -2);
	x->h = lua_newuserdata(L, sizeof *x->h);
	x->h->s = s;
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_pushvalue(L, -1);
	x->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return x;
}

/* see rl.h */
struct rl_handle *rl_session_push(lua_State *L, struct session *s)
{
	struct rl_state *st = rl_state_of(L);
	struct rl_sess *x = s->lua;
	if (x && x->st == st) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, x->ref);
		return x->h;
	}
	if (x) {
		sess_free(x); /* made by the state before a reload */
	}
	x = sess_new(st, L, s);
	s->lua = x;
	return x->h;
}

/* see rumble.h */
void rl_session_end(struct session *s)
{
	rl_session_unlock(s);
	if (s->lua) {
		sess_free(s->lua);
		s->lua = NULL;
	}
}
