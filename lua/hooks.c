/*
 * hooks.c - where the core calls into scripts: the session hooks of the
 * mail protocols (rl_hook) and the hand-off of mail for accounts of type
 * mod (rl_feed), and the delivery hook that may change what Sieve
 * decided for a local recipient (rl_delivery).
 *
 * A hook registered with Rumble.setHook(fn, svc, when[, cmd]) lives in
 * each state's registry table RL_HOOKS under "svc/when/cmd" (lower case;
 * cmd "" for accept and close, "*" for every command). The protocol name
 * is the key, so an "smtp" hook also runs for submission and smtps.
 *
 * Each hook runs in a coroutine (services.c): one that calls
 * session:receive() before the client sent anything waits there, and the
 * protocol hears the verdict later through proto->hooked.
 */
#include <string.h>

#include "lua/rl.h"
#include "policy.h"
#include "sieve.h"

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

static int has_hook(lua_State *L, const char *key)
{
	int found = get_hook(L, key);
	lua_pop(L, found);
	return found;
}

/* What the hook returned (values from index i of co): false or
 * "failure": drop; "ignore": the script answered. */
static enum rl_verdict verdict(lua_State *co, int i)
{
	if (lua_gettop(co) < i) {
		return RL_CONTINUE;
	}
	if (lua_isboolean(co, i) && !lua_toboolean(co, i)) {
		return RL_DROP;
	}
	if (lua_type(co, i) == LUA_TSTRING) {
		const char *r = lua_tostring(co, i);
		return !rl_strcasecmp(r, "failure")  ? RL_DROP
		       : !rl_strcasecmp(r, "ignore") ? RL_IGNORE
		                                     : RL_CONTINUE;
	}
	return RL_CONTINUE;
}

/* The hooks one rl_hook call runs, in order: "svc/when/verb", then for a
 * command the "every command" hook (which also gets the verb). */
struct hook_call {
	char key[2][96];
	int nkeys, step;
	char verb[32];
	char *arg; /* NULL: none */
};

/* A coroutine for a hook: the spare one when there is, else a new one;
 * *ref holds it in the registry. */
static lua_State *hook_thread(struct rl_state *st, int *ref)
{
	if (st->spare) {
		lua_State *co = st->spare;
		*ref = st->spare_ref;
		st->spare = NULL;
		return co;
	}
	lua_State *co = lua_newthread(st->L);
	*ref = luaL_ref(st->L, LUA_REGISTRYINDEX);
	return co;
}

static void hook_thread_done(struct rl_state *st, lua_State *co, int ref, int reusable)
{
	if (reusable && !st->spare) {
		lua_settop(co, 0);
		st->spare = co;
		st->spare_ref = ref;
	} else {
		luaL_unref(st->L, LUA_REGISTRYINDEX, ref);
		rl_state_tidy(st);
	}
}

static enum rl_verdict decided(struct session *s, const char *key, enum rl_verdict v)
{
	if (v == RL_DROP) {
		log_info("%08x %s dropped by script hook %s", s->id, s->svc->name, key);
		os_atomic_add_long(&s->svc->rejected, 1);
	}
	return v;
}

static enum rl_verdict run_hooks(struct rl_state *st, struct session *s, struct hook_call *hc);

/* A hook that waited has returned: the next hook, or the protocol. */
static void hook_finished(struct rl_conn *c, int rc)
{
	struct session *s = c->s;
	struct hook_call *hc = c->arg;
	enum rl_verdict v = rc == 0 ? verdict(c->co, 2) : RL_CONTINUE;
	decided(s, hc->key[hc->step - 1], v);
	rl_conn_free(c);
	rl_session_unlock(s); /* the hook's end */
	if (!session_closing(s)) {
		if (v == RL_CONTINUE) {
			struct rl_state *st = rl_state_get(session_worker(s));
			v = st ? run_hooks(st, s, hc) : RL_CONTINUE;
		}
		if (v != RL_WAIT && s->svc->proto->hooked) {
			s->svc->proto->hooked(s, v);
		}
	}
	free(hc->arg);
	free(hc);
}

/* The hook waits for its client: c takes over the coroutine and a copy
 * of the call. */
static void hook_wait(struct rl_conn *c, int ref, const struct hook_call *hc)
{
	struct hook_call *copy = xmalloc(sizeof *copy);
	*copy = *hc;
	copy->arg = hc->arg ? xstrdup(hc->arg) : NULL;
	c->co_ref = ref;
	c->finished = hook_finished;
	c->arg = copy;
	rl_strlcpy(c->what, hc->key[hc->step - 1], sizeof c->what);
	rl_conn_listen(c); /* input waits for the hook, not the protocol */
}

/* Runs hook hc->step (counting it); RL_CONTINUE when there is none. */
static enum rl_verdict call_hook(struct rl_state *st, struct session *s, struct hook_call *hc)
{
	const char *key = hc->key[hc->step++];
	lua_State *L = st->L;
	if (!get_hook(L, key)) {
		return RL_CONTINUE;
	}
	int ref;
	st->capped = 0; /* the arguments must not fail outside the pcall */
	lua_State *co = hook_thread(st, &ref);
	struct rl_handle *h = rl_session_push(co, s); /* kept below the function */
	lua_xmove(L, co, 1);
	lua_pushvalue(co, 1);
	if (hc->arg) {
		lua_pushstring(co, hc->arg);
	} else {
		lua_pushnil(co);
	}
	int nargs = 2;
	if (hc->step == 2) {
		lua_pushstring(co, hc->verb);
		nargs++;
	}
	st->capped = 1;
	struct rl_conn *c = NULL;
	int rc = rl_run(st, co, h, &c, nargs, key);
	if (rc == LUA_YIELD && c && c->want != W_NONE) {
		hook_wait(c, ref, hc);
		return RL_WAIT;
	}
	if (rc == LUA_YIELD) {
		log_warnx("script error: hook %s yielded (only session:receive() may wait)", key);
	}
	enum rl_verdict v = rc == 0 ? verdict(co, 2) : RL_CONTINUE; /* an error is logged: go on */
	if (c) {
		rl_conn_free(c); /* it received without waiting */
	}
	rl_session_unlock(s); /* the hook's end */
	hook_thread_done(st, co, ref, rc == 0);
	return decided(s, key, v);
}

static enum rl_verdict run_hooks(struct rl_state *st, struct session *s, struct hook_call *hc)
{
	enum rl_verdict v = RL_CONTINUE;
	/* a close hook runs on a closing session; the next hook only if the
	 * one before left it open */
	while (v == RL_CONTINUE && hc->step < hc->nkeys && (hc->step == 0 || !session_closing(s))) {
		v = call_hook(st, s, hc);
	}
	return v;
}

/* see rumble.h */
enum rl_verdict rl_hook(struct session *s, const char *when, const char *cmd, const char *arg)
{
	if (!rl_configured()) {
		return RL_CONTINUE; /* no script: no state to ask */
	}
	struct rl_state *st = rl_state_get(session_worker(s));
	if (!st) {
		return RL_CONTINUE;
	}
	struct hook_call hc = {.nkeys = cmd ? 2 : 1, .arg = (char *)arg};
	if (cmd) {
		rl_strlcpy(hc.verb, cmd, sizeof hc.verb);
		rl_lower(hc.verb);
	}
	const char *name = s->svc->proto->name;
	snprintf(hc.key[0], sizeof hc.key[0], "%s/%s/%s", name, when, hc.verb);
	snprintf(hc.key[1], sizeof hc.key[1], "%s/%s/*", name, when);
	if (!strcmp(hc.verb, "ehlo") && !has_hook(st->L, hc.key[0])) {
		/* a HELO hook also sees EHLO, unless the script hooks EHLO itself */
		snprintf(hc.key[0], sizeof hc.key[0], "%s/%s/helo", name, when);
	}
	return run_hooks(st, s, &hc);
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
	FILE *f = os_fopen(path, "rb");
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
		log_info("mod delivery to %s: no Rumble.setHook(fn, \"mailman\", \"feed\") hook",
		        rcpt);
	}
	rl_boot_unlock();
	buf_free(&msg);
	return rc;
}

/* ---- the delivery hook: Rumble.setHook(fn, "mailman", "delivery") ---- */

static const char *const kinds[] = {"keep", "fileinto", "redirect", "discard", "reject", "ereject",
	"vacation", "duplicate", NULL};

/* The message as the hook sees it: raw (the header and the start),
 * size, headers (lower-case name -> first value, RFC 2047 decoded),
 * subject, from, to, body (the first text part, decoded). */
static void push_message(lua_State *L, const char *msg, size_t len, uint64_t size)
{
	struct mime_msg m;
	struct mime_headers it;
	struct mime_header h;
	struct buf v;
	mime_parse(&m, msg, len);
	buf_init(&v);
	lua_createtable(L, 0, 7);
	lua_pushlstring(L, msg, len);
	lua_setfield(L, -2, "raw");
	lua_pushnumber(L, (lua_Number)size);
	lua_setfield(L, -2, "size");
	lua_newtable(L);
	mime_headers_part(&it, &m, NULL);
	for (int n = 0; mime_headers_next(&it, &h) && n < 200; n++) {
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(h.name_len < 79 ? h.name_len : 79), h.name);
		rl_lower(name);
		lua_getfield(L, -1, name);
		int seen = !lua_isnil(L, -1);
		lua_pop(L, 1);
		if (!seen && mime_header_text(&m, NULL, name, &v)) {
			lua_pushlstring(L, v.data ? v.data : "", v.len);
			lua_setfield(L, -2, name);
		}
		buf_reset(&v);
	}
	static const char *const shown[] = {"subject", "from", "to"};
	for (int i = 0; i < 3; i++) {
		lua_getfield(L, -1, shown[i]);
		lua_setfield(L, -3, shown[i]);
	}
	lua_setfield(L, -2, "headers");
	for (const struct mime_part *p = m.root; p; p = p->child) {
		if (!(p->flags & (MIME_MULTIPART | MIME_MESSAGE)) && mime_part_is(p, "text", NULL)) {
			mime_body_text(&m, p, &v);
			break;
		}
		if (p->flags & MIME_MESSAGE) {
			break;
		}
	}
	lua_pushlstring(L, v.data ? v.data : "", v.len);
	lua_setfield(L, -2, "body");
	buf_free(&v);
	mime_free(&m);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

/* r as an array of {action=, folder=, to=, reason=, flags=, copy=}; the
 * implicit keep is a "keep" entry. */
static void push_plan(lua_State *L, const struct sieve_result *r)
{
	lua_createtable(L, r->n + 1, 0);
	int k = 0;
	for (int i = 0; i < r->n; i++) {
		const struct sieve_action *a = &r->v[i];
		lua_createtable(L, 0, 4);
		set_str(L, "action", kinds[a->kind]);
		set_str(L, a->kind == SA_FILEINTO ? "folder" : a->kind == SA_REDIRECT ? "to"
		           : a->kind == SA_KEEP ? "folder" : "reason", a->arg);
		set_str(L, "flags", a->flags);
		lua_pushboolean(L, a->copy);
		lua_setfield(L, -2, "copy");
		lua_rawseti(L, -2, ++k);
	}
	if (r->keep) {
		lua_createtable(L, 0, 2);
		set_str(L, "action", "keep");
		set_str(L, "flags", r->keep_flags);
		lua_rawseti(L, -2, ++k);
	}
}

/* One entry of the hook's plan into out; -1 when it is not one. */
static int plan_entry(lua_State *L, struct sieve_action *out)
{
	memset(out, 0, sizeof *out);
	lua_getfield(L, -1, "action");
	const char *act = lua_tostring(L, -1);
	int kind = -1;
	for (int i = 0; act && kinds[i]; i++) {
		kind = !strcmp(kinds[i], act) ? i : kind;
	}
	lua_pop(L, 1);
	if (kind < 0 || kind == SA_VACATION || kind == SA_DUPLICATE) {
		return -1;
	}
	out->kind = (enum sieve_kind)kind;
	const char *field = kind == SA_FILEINTO ? "folder" : kind == SA_REDIRECT ? "to" : "reason";
	lua_getfield(L, -1, field);
	const char *v = lua_tostring(L, -1);
	out->arg = xstrdup(kind == SA_KEEP ? "INBOX" : v ? v : kind == SA_REJECT ? "rejected" : "");
	lua_pop(L, 1);
	lua_getfield(L, -1, "flags");
	out->flags = lua_isstring(L, -1) ? xstrdup(lua_tostring(L, -1)) : NULL;
	lua_pop(L, 1);
	lua_getfield(L, -1, "create");
	out->create = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if ((kind == SA_FILEINTO && !mm_valid_folder(out->arg)) ||
	    (kind == SA_REDIRECT && (!strchr(out->arg, '@') || strpbrk(out->arg, " \t\r\n<>")))) {
		free(out->arg);
		free(out->flags);
		return -1;
	}
	return 0;
}

/* The hook's answer (at the top of L) into r: a plan table, or "keep",
 * "discard", "reject" (the reason follows); -1 when it is none of these. */
static int take_plan(lua_State *L, struct sieve_result *r, const char *why)
{
	struct sieve_result n = {0};
	if (lua_isstring(L, -1)) {
		const char *s = lua_tostring(L, -1);
		struct sieve_action a = {0};
		a.kind = !strcmp(s, "keep") ? SA_KEEP : !strcmp(s, "discard") ? SA_DISCARD : SA_REJECT;
		if (a.kind == SA_REJECT && strcmp(s, "reject") != 0) {
			return -1;
		}
		a.arg = xstrdup(a.kind == SA_KEEP ? "INBOX" : why ? why : "rejected");
		n.v = xcalloc(1, sizeof *n.v);
		n.v[n.n++] = a;
	} else if (lua_istable(L, -1)) {
		int len = (int)lua_objlen(L, -1);
		if (len > SIEVE_ACTIONS_MAX) {
			return -1;
		}
		n.v = xcalloc((size_t)len + 1, sizeof *n.v);
		for (int i = 1; i <= len; i++) {
			lua_rawgeti(L, -1, i);
			int bad = !lua_istable(L, -1) || plan_entry(L, &n.v[n.n]) != 0;
			lua_pop(L, 1);
			if (bad) {
				sieve_result_free(&n);
				return -1;
			}
			n.n++;
		}
	} else {
		return -1;
	}
	for (int i = 0; i < r->n; i++) { /* Sieve's vacation answers and tracking stand */
		if ((r->v[i].kind == SA_VACATION || r->v[i].kind == SA_DUPLICATE) &&
		        n.n < SIEVE_ACTIONS_MAX + 1) {
			n.v = xrealloc(n.v, (size_t)(n.n + 1) * sizeof *n.v);
			n.v[n.n++] = r->v[i];
			memset(&r->v[i], 0, sizeof r->v[i]);
		}
	}
	n.header = r->header; /* editheader's header stands too */
	n.header_len = r->header_len;
	n.body_off = r->body_off;
	r->header = NULL;
	sieve_result_free(r);
	*r = n;
	return 0;
}

/* see rumble.h */
int rl_delivery_wanted(void)
{
	return rl_configured() && rl_ready() && rl_claimed("mailman/delivery/");
}

/* see rumble.h */
int rl_delivery(const char *rcpt, const char *from, const char *msg, size_t len, uint64_t size,
	struct sieve_result *r)
{
	if (!rl_configured() || !rl_ready()) {
		return 0;
	}
	int changed = 0;
	rl_boot_lock();
	struct rl_state *st = rl_state_get(-1);
	if (st && get_hook(st->L, "mailman/delivery/")) {
		lua_State *L = st->L;
		int top = lua_gettop(L) - 1;
		st->capped = 0;
		push_message(L, msg, len, size);
		lua_pushstring(L, rcpt);
		lua_pushstring(L, from);
		push_plan(L, r);
		st->capped = 1;
		if (rl_call(L, 4, 2, "mailman delivery") == 0) {
			const char *why = lua_tostring(L, -1);
			lua_pop(L, 1);
			if (!lua_isnil(L, -1) && !(lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
				changed = take_plan(L, r, why) == 0;
				if (!changed) {
					log_warnx("delivery hook for %s: not a plan (a table of actions, or "
					          "\"keep\", \"discard\", \"reject\"); Sieve's stands", rcpt);
				}
			}
		}
		lua_settop(L, top);
	}
	rl_boot_unlock();
	return changed;
}

/* ---- the policy module (policy.h): Rumble.setHook's "accept",
 * "command" and "close" hooks for SMTP ---- */

static int hook_verdict(enum rl_verdict v)
{
	static const int verdicts[] = {POLICY_NEXT, POLICY_DROP, POLICY_DONE, POLICY_WAIT};
	return verdicts[v]; /* WAIT: proto->hooked (policy_hooked) says later */
}

static int hooks_connect(struct policy_call *c)
{
	return hook_verdict(rl_hook(c->s, "accept", NULL, NULL));
}

static int hooks_command(struct policy_call *c)
{
	return hook_verdict(rl_hook(c->s, "command", c->verb, c->arg));
}

static void hooks_close(struct session *s, void *m)
{
	rl_hook(s, "close", NULL, NULL);
}

const struct policy_module rl_hooks_policy = {
        .name = "hooks",
        .close = hooks_close,
        .step = {[POLICY_CONNECT] = hooks_connect, [POLICY_COMMAND] = hooks_command},
};
