/*
 * hooks.c - where the core calls into scripts: the session hooks of the
 * mail protocols (rl_hook) and the hand-off of mail for accounts of type
 * mod (rl_feed).
 *
 * A hook registered with Rumble.setHook(fn, svc, when[, cmd]) lives in
 * each state's registry table RL_HOOKS under "svc/when/cmd" (lower case;
 * cmd "" for accept and close, "*" for every command). The protocol name
 * is the key, so an "smtp" hook also runs for submission and smtps.
 */
#include <string.h>

#include "lua/rl.h"

/* Pushes the hook for key, or returns 0 with nothing pushed. */
static int get_hook(lua_State *L, const char *key)
{
	lua_getfield(L, LUA_REGISTRYINDEX, RL_HOOKS);
	lua_getfield(L, -1, key);
	lua_remove(L, -2);
	if (lua_isfunction(L, -1)) {
		return 1;
	}
	lua_pop(L, 1);
	return 0;
}

/* false or "failure": drop; "ignore": the script answered. */
static enum rl_verdict verdict(lua_State *L)
{
	enum rl_verdict v = RL_CONTINUE;
	if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
		v = RL_DROP;
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		const char *r = lua_tostring(L, -1);
		v = !rl_strcasecmp(r, "failure") ? RL_DROP
		    : !rl_strcasecmp(r, "ignore") ? RL_IGNORE
		                                  : RL_CONTINUE;
	}
	lua_pop(L, 1);
	return v;
}

static enum rl_verdict call_hook(struct rl_state *st, struct session *s, const char *key,
	const char *arg, const char *verb)
{
	lua_State *L = st->L;
	if (!get_hook(L, key)) {
		return RL_CONTINUE;
	}
	st->capped = 0; /* the arguments must not fail outside the pcall */
	struct rl_handle *h = rl_session_push(L, s, NULL);
	lua_pushvalue(L, -1);
	lua_insert(L, -3); /* kept below the function: a GC after an error must not free it */
	if (arg) {
		lua_pushstring(L, arg);
	} else {
		lua_pushnil(L);
	}
	if (verb) {
		lua_pushstring(L, verb);
	}
	st->capped = 1;
	int rc = rl_call(L, verb ? 3 : 2, 1, key);
	enum rl_verdict v = rc == 0 ? verdict(L) : RL_CONTINUE; /* an error is logged: go on */
	rl_session_done(h);
	lua_pop(L, 1);
	if (v == RL_DROP) {
		log_info("%08x %s dropped by script hook %s", s->id, s->svc->name, key);
		__atomic_add_fetch(&s->svc->rejected, 1, __ATOMIC_RELAXED);
	}
	return v;
}

/* see rumble.h */
enum rl_verdict rl_hook(struct session *s, const char *when, const char *cmd, const char *arg)
{
	if (conf.nscripts == 0) {
		return RL_CONTINUE; /* no script: no state to ask */
	}
	struct rl_state *st = rl_state_get(session_worker(s));
	if (!st) {
		return RL_CONTINUE;
	}
	char key[96], verb[32] = "";
	if (cmd) {
		rl_strlcpy(verb, cmd, sizeof verb);
		rl_lower(verb);
	}
	snprintf(key, sizeof key, "%s/%s/%s", s->svc->proto->name, when, verb);
	enum rl_verdict v = call_hook(st, s, key, arg, NULL);
	if (v == RL_CONTINUE && cmd && !session_closing(s)) {
		snprintf(key, sizeof key, "%s/%s/*", s->svc->proto->name, when);
		v = call_hook(st, s, key, arg, verb);
	}
	return v;
}

static void push_account(lua_State *L, const struct mm_account *a)
{
	lua_createtable(L, 0, 7);
	lua_pushinteger(L, (lua_Integer)a->id);
	lua_setfield(L, -2, "id");
	lua_pushinteger(L, (lua_Integer)a->id);
	lua_setfield(L, -2, "uid");
	lua_pushstring(L, a->user);
	lua_setfield(L, -2, "name");
	lua_pushstring(L, a->domain);
	lua_setfield(L, -2, "domain");
	lua_pushstring(L, mm_type_name(a->type));
	lua_setfield(L, -2, "type");
	lua_pushstring(L, a->args);
	lua_setfield(L, -2, "arguments");
}

/* The message file, up to MessageSizeLimit (and a little for headers). */
static int read_message(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		return -1;
	}
	char chunk[16384];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(out, chunk, n);
		if (out->len > conf.message_size_limit + 65536) {
			break;
		}
	}
	int rc = ferror(f) ? -1 : 0;
	fclose(f);
	return rc;
}

/* see rumble.h */
int rl_feed(const struct mm_account *a, const char *msgpath, const char *from, const char *rcpt)
{
	if (!rl_ready()) {
		return 1; /* before start-up is over (the queue starts first): later */
	}
	struct buf msg;
	buf_init(&msg);
	if (read_message(msgpath, &msg) != 0) {
		log_warn("mod delivery to %s: cannot read %s", rcpt, msgpath);
		buf_free(&msg);
		return 1;
	}
	int rc = 1;
	rl_boot_lock();
	struct rl_state *st = rl_state_get(-1);
	if (st && get_hook(st->L, "mailman/feed/")) {
		lua_State *L = st->L;
		st->capped = 0;
		lua_pushlstring(L, msg.data ? msg.data : "", msg.len);
		push_account(L, a);
		lua_pushstring(L, rcpt);
		lua_pushstring(L, from);
		st->capped = 1;
		if (rl_call(L, 4, 1, "mailman feed") == 0) {
			rc = lua_toboolean(L, -1) ? 0 : 1;
			lua_pop(L, 1);
		}
	} else {
		log_info("mod delivery to %s: no Rumble.setHook(fn, \"mailman\", \"feed\") hook", rcpt);
	}
	rl_boot_unlock();
	buf_free(&msg);
	return rc;
}
