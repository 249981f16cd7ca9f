/*
 * webadmin.c - the C side of the web admin: its listener, the few helpers
 * its Lua code needs and nothing else may call, and the store of admin
 * sessions. The pages themselves are lua/webadmin.lua, compiled into the
 * binary as a C array (tools/embed.c makes webadmin_lua.h from it).
 *
 * The chunk runs in every Lua state (it needs no LoadScript) before the
 * scripts, so that it holds the original Rumble and Mailman tables, and
 * gets the helpers as its argument, not as globals: a script cannot call
 * them by name. It returns the function that serves one connection;
 * once the scripts ran it becomes the function of the web admin's port
 * (a createService of a script on that port fails: the port is taken).
 *
 * Helpers (all on the session's own coroutine):
 *   api.setup()            -> client address; sets a short idle timeout and
 *                             LineTimeout to send the whole request
 *   api.read_done()        the request is read: its time limit is lifted
 *   api.login(name, pw)    -> token, csrf, address, admin | nil, why, delay_ms
 *                             (any mailbox logs in; admin: named by WebAdmin)
 *   api.check(name, pw)    -> true | nil, why, delay_ms: the password is
 *                             right (changing one's own asks it again)
 *   api.sleep(ms)          waits without holding the worker
 *   api.hash(pw)           -> a PBKDF2 hash, made on a helper thread
 *   api.session(token)     -> address, csrf, admin | nil
 *   api.logout(token)
 *   api.random()           -> 32 hex digits from the OS's CSPRNG
 *   api.admins()           -> how many WebAdmin addresses are configured
 *   api.autoconf_path(p)   -> whether p is a client autoconfiguration path
 *   api.autoconf(method, target, host, body) -> status, document, type
 *   api.mobileconfig(domain, name) -> a mailbox's Apple profile | nil, why
 *   api.sieve(domain, name) -> the active Sieve script, its name | nil
 *   api.sieve_put(domain, name, text) -> true | nil, "LINE:COL: why"
 *   api.sieve_off(domain, name)
 *   api.status()           -> the dashboard's figures (a table, stats.c's summary)
 *   api.metrics(ip, authorization) -> /metrics' text | nil, "off" or "denied"
 *   api.audit(admin, action, ok, text)  logs an administration action
 * Sessions live here, not in a Lua state: each worker has its own state
 * and a browser's requests land on any worker.
 */
#include <string.h>

#include "lua/rl.h"
#include "sieve.h"
#include "stats.h"
#include "webadmin_lua.h" /* static const char webadmin_lua[] */

#define WA_SESSIONS 32        /* logged-in browsers at once; the oldest goes */
#define WA_IDLE_S (30 * 60)   /* a session unused this long ends */
#define WA_LIFE_S (12 * 3600) /* and any session after this */
#define WA_TIMEOUT_MS 20000   /* a connection silent this long is closed */
#define WA_TOKEN 64           /* hex digits of a session token */
#define WA_ADDR (MM_USER_MAX + MM_DOMAIN_MAX + 2)
#define WA_HANDLER "rumble.webadmin"

static struct service wa_service = {.name = "webadmin", .proto = &rl_service_proto};
static int wa_listening;

struct wa_session {
	char token[WA_TOKEN + 1]; /* "" = free */
	char csrf[WA_TOKEN + 1];
	char user[WA_ADDR];
	char ip[64];
	int admin; /* a WebAdmin address: every page; else only "my account" */
	int64_t made, used;
};
static struct wa_session sessions[WA_SESSIONS];
static os_mutex *wa_mx;

/* ---- the listener ---- */

void rl_webadmin_start(void)
{
	char err[256];
	if (!wa_mx) {
		wa_mx = os_mutex_new();
	}
	if (!conf.webadmin_enable || wa_listening) {
		return;
	}
	wa_service.port = conf.webadmin_port;
	wa_service.enabled = 1;
	/* HTTPS with the server's certificate when it is one a browser can
	 * trust (TLSCertificate, or ACME's: self-signed only until the first
	 * order, seconds); a self-signed one would only teach clicking
	 * through warnings, and the admin is loopback-only by default */
	int https = (*conf.tls_cert || conf.acme_enable) && server_has_tls();
	wa_service.flags = https ? SVC_TLS : 0;
	if (server_listen(&wa_service, conf.webadmin_bind, conf.force_ipv4, err, sizeof err) != 0) {
		log_warnx("web admin: cannot listen on %s:%d: %s; it is off (see WebAdminPort)",
		        *conf.webadmin_bind ? conf.webadmin_bind : "*", conf.webadmin_port, err);
		return;
	}
	wa_listening = 1;
	const char *host = *conf.webadmin_bind ? conf.webadmin_bind : "127.0.0.1";
	int v6 = strchr(host, ':') != NULL;
	log_info("web admin: %s://%s%s%s:%d/", https ? "https" : "http", v6 ? "[" : "", host,
	        v6 ? "]" : "", conf.webadmin_port);
	if (!*conf.webadmin_users) {
		log_info(
		        "web admin: no administrator yet (mailbox users may log in to their own "
		        "page): add \"WebAdmin user@domain\" (a mailbox account) to the configuration");
	}
}

/* ---- random tokens ---- */

static int random_hex(char *out, size_t bytes)
{
	unsigned char b[32];
	static const char hex[] = "0123456789abcdef";
	if (bytes > sizeof b || os_random(b, bytes) != 0) {
		return -1;
	}
	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * bytes] = '\0';
	crypto_wipe(b, sizeof b);
	return 0;
}

/* ---- sessions (under wa_mx) ---- */

static int expired(const struct wa_session *w, int64_t now)
{
	return now - w->used > WA_IDLE_S || now - w->made > WA_LIFE_S || now < w->made;
}

/* The live session with token from ip, or NULL. */
static struct wa_session *session_find(const char *token, const char *ip, int64_t now)
{
	if (strlen(token) != WA_TOKEN || strspn(token, "0123456789abcdef") != WA_TOKEN) {
		return NULL;
	}
	for (int i = 0; i < WA_SESSIONS; i++) {
		struct wa_session *w = &sessions[i];
		if (w->token[0] && crypto_equal(w->token, token, WA_TOKEN)) {
			if (expired(w, now) || strcmp(w->ip, ip) != 0) {
				return NULL;
			}
			return w;
		}
	}
	return NULL;
}

/* A new session for user from ip: a free or expired slot, else the
 * least recently used one. 0, or -1 without randomness. */
static int session_new(const char *user, int admin, const char *ip, char *token, char *csrf)
{
	int64_t now = os_time();
	if (random_hex(token, WA_TOKEN / 2) != 0 || random_hex(csrf, WA_TOKEN / 2) != 0) {
		return -1;
	}
	os_mutex_lock(wa_mx);
	struct wa_session *w = &sessions[0];
	for (int i = 0; i < WA_SESSIONS; i++) {
		struct wa_session *c = &sessions[i];
		if (!c->token[0] || expired(c, now)) {
			w = c;
			break;
		}
		if (c->used < w->used) {
			w = c;
		}
	}
	rl_strlcpy(w->token, token, sizeof w->token);
	rl_strlcpy(w->csrf, csrf, sizeof w->csrf);
	rl_strlcpy(w->user, user, sizeof w->user);
	rl_strlcpy(w->ip, ip, sizeof w->ip);
	w->admin = admin;
	w->made = w->used = now;
	os_mutex_unlock(wa_mx);
	return 0;
}

/* ---- helpers for the chunk ---- */

/* The session of the coroutine L runs in; raises outside one. */
static struct session *here(lua_State *L)
{
	struct rl_conn *c = rl_conn_here(L, NULL);
	if (!c) {
		luaL_error(L, "web admin: not in a session");
	}
	return c->s;
}

static int wa_setup(lua_State *L)
{
	struct session *s = here(L);
	s->timeout_ms = WA_TIMEOUT_MS;
	session_cap(s, conf.line_timeout * 1000LL); /* to read the request (read_done) */
	lua_pushstring(L, s->peer);
	return 1;
}

/* The request is in: what follows is ours (a login's delay too). */
static int wa_read_done(lua_State *L)
{
	session_cap(here(L), 0);
	return 0;
}

/* 1 when the account is named by a WebAdmin line. */
static int is_admin(const struct mm_account *a)
{
	char addr[WA_ADDR];
	snprintf(addr, sizeof addr, "%s@%s", a->user, a->domain);
	size_t n = strlen(addr);
	for (const char *p = conf.webadmin_users; *p;) {
		size_t w = strcspn(p, " \t,");
		if (w == n && !rl_strncasecmp(p, addr, n)) {
			return 1;
		}
		p += w;
		p += strspn(p, " \t,");
	}
	return 0;
}

struct login_job {
	struct rl_job j;
	char ip[64], name[WA_ADDR], pw[512], user[WA_ADDR];
	int ok, admin, check; /* check: api.check, no session */
};

static void login_run(struct rl_job *j)
{
	struct login_job *l = (struct login_job *)j;
	struct mm_account a;
	l->ok = mm_login(l->name, l->pw, &a) == 0 && a.type == MM_MBOX;
	if (l->ok) {
		l->admin = is_admin(&a);
		snprintf(l->user, sizeof l->user, "%s@%s", a.user, a.domain);
	}
	crypto_wipe(l->pw, sizeof l->pw);
	crypto_wipe(&a, sizeof a);
}

static int login_push(lua_State *L, struct rl_job *j)
{
	struct login_job *l = (struct login_job *)j;
	char token[WA_TOKEN + 1], csrf[WA_TOKEN + 1];
	if (l->ok && l->check) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (l->ok && session_new(l->user, l->admin, l->ip, token, csrf) == 0) {
		session_login_ok(l->ip, l->name);
		log_info("webadmin result=login client=%s user=%s admin=%s", l->ip, l->user,
		        l->admin ? "yes" : "no");
		lua_pushstring(L, token);
		lua_pushstring(L, csrf);
		lua_pushstring(L, l->user);
		lua_pushboolean(L, l->admin);
		return 4;
	}
	int delay = session_login_failed(l->ip, l->name);
	char shown[65];
	log_info("webadmin result=refused client=%s cmd=login user=%s reason=\"authentication "
	         "failed\"",
	        l->ip, log_value(shown, sizeof shown, l->name, 0));
	lua_pushnil(L);
	lua_pushliteral(L, "failed");
	lua_pushinteger(L, delay);
	return 3;
}

static void login_done(struct rl_job *j)
{
	crypto_wipe(((struct login_job *)j)->pw, sizeof((struct login_job *)j)->pw);
}

static int login_call(lua_State *L, int check)
{
	struct session *s = here(L);
	size_t nlen, plen;
	const char *name = luaL_checklstring(L, 1, &nlen);
	const char *pw = luaL_checklstring(L, 2, &plen);
	if (session_login_blocked(s->peer, name)) {
		log_info("webadmin result=refused client=%s cmd=login reason=\"too many failed "
		         "logins\"",
		        s->peer);
		lua_pushnil(L);
		lua_pushliteral(L, "blocked");
		lua_pushinteger(L, 0);
		return 3;
	}
	struct login_job *l = xcalloc(1, sizeof *l);
	l->j.run = login_run;
	l->j.push = login_push;
	l->j.done = login_done;
	l->check = check;
	rl_strlcpy(l->ip, s->peer, sizeof l->ip);
	if (nlen >= sizeof l->name || plen >= sizeof l->pw || memchr(name, 0, nlen) ||
	        memchr(pw, 0, plen)) {
		l->name[0] = '\0'; /* cannot be right: fails as any wrong password */
		strcpy(l->pw, "-");
	} else {
		memcpy(l->name, name, nlen);
		memcpy(l->pw, pw, plen);
	}
	return rl_job_call(L, &l->j);
}

static int wa_login(lua_State *L)
{
	return login_call(L, 0);
}

static int wa_check(lua_State *L)
{
	return login_call(L, 1);
}

struct hash_job {
	struct rl_job j;
	char pw[512], hash[CRYPTO_HASH_MAX];
	int rc;
};

static void hash_run(struct rl_job *j)
{
	struct hash_job *h = (struct hash_job *)j;
	h->rc = crypto_password_hash(h->pw, h->hash, sizeof h->hash);
	crypto_wipe(h->pw, sizeof h->pw);
}

static int hash_push(lua_State *L, struct rl_job *j)
{
	struct hash_job *h = (struct hash_job *)j;
	if (h->rc != 0) {
		return rl_fail(L, "cannot hash the password");
	}
	lua_pushstring(L, h->hash);
	return 1;
}

static int wa_hash(lua_State *L)
{
	size_t n;
	const char *pw = luaL_checklstring(L, 1, &n);
	luaL_argcheck(L, n > 0 && n < 512 && !memchr(pw, 0, n), 1, "bad password length");
	struct hash_job *h = xcalloc(1, sizeof *h);
	h->j.run = hash_run;
	h->j.push = hash_push;
	memcpy(h->pw, pw, n);
	return rl_job_call(L, &h->j);
}

/* api.password_why(pw): nil when pw may be set, else why not (one line). */
static int wa_password_why(lua_State *L)
{
	char why[128];
	if (password_check(luaL_checkstring(L, 1), why, sizeof why) == 0) {
		return 0;
	}
	why[0] = (char)(why[0] - 32 * (why[0] >= 'a' && why[0] <= 'z')); /* a sentence */
	lua_pushstring(L, why);
	return 1;
}

/* api.sleep: the coroutine waits as for a job; a timer on its worker
 * wakes it (the session is held meanwhile, see session_after). */
static void wake(struct session *s, void *arg)
{
	struct rl_conn *c = arg;
	if (c->closed) {
		c->finished(c, -1); /* the session ended meanwhile: its owner frees c */
		return;
	}
	c->want = W_NONE;
	rl_conn_run(c, 0);
}

static int wa_sleep(lua_State *L)
{
	lua_Integer ms = luaL_checkinteger(L, 1);
	int wait;
	struct rl_conn *c = rl_conn_here(L, &wait);
	if (!c || !wait || ms <= 0) {
		return 0;
	}
	c->want = W_JOB;
	session_after(c->s, ms > 10000 ? 10000 : (int)ms, wake, c);
	return lua_yield(L, 0);
}

static int wa_session(lua_State *L)
{
	struct session *s = here(L);
	const char *token = luaL_checkstring(L, 1);
	int64_t now = os_time();
	os_mutex_lock(wa_mx);
	struct wa_session *w = session_find(token, s->peer, now);
	char user[WA_ADDR], csrf[WA_TOKEN + 1];
	int admin = w && w->admin;
	if (w) {
		w->used = now;
		rl_strlcpy(user, w->user, sizeof user);
		rl_strlcpy(csrf, w->csrf, sizeof csrf);
	}
	os_mutex_unlock(wa_mx);
	if (!w) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushstring(L, user);
	lua_pushstring(L, csrf);
	lua_pushboolean(L, admin);
	return 3;
}

static int wa_logout(lua_State *L)
{
	struct session *s = here(L);
	const char *token = luaL_checkstring(L, 1);
	os_mutex_lock(wa_mx);
	struct wa_session *w = session_find(token, s->peer, os_time());
	if (w) {
		log_info("web admin: %s logged out", w->user);
		memset(w, 0, sizeof *w);
	}
	os_mutex_unlock(wa_mx);
	return 0;
}

static int wa_random(lua_State *L)
{
	char hex[33];
	if (random_hex(hex, 16) != 0) {
		return luaL_error(L, "no randomness from the OS");
	}
	lua_pushstring(L, hex);
	return 1;
}

static int wa_admins(lua_State *L)
{
	int n = 0;
	for (const char *p = conf.webadmin_users; *p;) {
		size_t w = strcspn(p, " \t,");
		n += w > 0;
		p += w;
		p += strspn(p, " \t,");
	}
	lua_pushinteger(L, n);
	return 1;
}

/* A limit as set: "default" (0), "none", or KiB / a count. */
static void quota_word(luaL_Buffer *b, uint64_t v, const char *unit)
{
	char num[32];
	snprintf(num, sizeof num, "%llu%s", (unsigned long long)v, unit);
	luaL_addstring(b, v == 0 ? "default" : v == MM_QUOTA_NONE ? "none" : num);
}

/* api.quota(domain, name): the mailbox's own limits as the form shows
 * them ("100K 50", "default none"), and what it holds against the limits
 * that apply ("12 of 100 KiB, 3 of 50 messages"); nil when no mailbox. */
static int wa_quota(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1), *user = luaL_checkstring(L, 2);
	struct mm_account a;
	struct quota_state q;
	char used[160], kib[48] = "", msgs[48] = "";
	if (mm_account_get(domain, user, &a) != 0 || a.type != MM_MBOX ||
	        quota_get(a.domain, a.user, &q) != 0) {
		lua_pushnil(L);
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	quota_word(&b, a.quota.kib, "K");
	luaL_addchar(&b, ' ');
	quota_word(&b, a.quota.msgs, "");
	luaL_pushresult(&b);
	if (q.kib_limit) {
		snprintf(kib, sizeof kib, " of %llu", (unsigned long long)q.kib_limit);
	}
	if (q.msgs_limit) {
		snprintf(msgs, sizeof msgs, " of %llu", (unsigned long long)q.msgs_limit);
	}
	snprintf(used, sizeof used, "%llu%s KiB, %llu%s messages",
	        (unsigned long long)((q.bytes + 1023) / 1024), kib, (unsigned long long)q.msgs, msgs);
	lua_pushstring(L, used);
	return 2;
}

/* The mailbox domain/name (arguments 1, 2), or a Lua error. */
static void mailbox_args(lua_State *L, struct mm_account *a)
{
	if (mm_account_get(luaL_checkstring(L, 1), luaL_checkstring(L, 2), a) != 0 ||
	        a->type != MM_MBOX) {
		luaL_error(L, "no such mailbox");
	}
}

static int wa_sieve(lua_State *L)
{
	struct mm_account a;
	char name[80];
	struct buf b;
	mailbox_args(L, &a);
	buf_init(&b);
	if (sieve_script_get(a.domain, a.user, &b, name, sizeof name) != 0) {
		buf_free(&b);
		return 0;
	}
	lua_pushlstring(L, b.data ? b.data : "", b.len);
	lua_pushstring(L, name);
	buf_free(&b);
	return 2;
}

static int wa_sieve_put(lua_State *L)
{
	struct mm_account a;
	size_t n;
	char err[300];
	mailbox_args(L, &a);
	const char *text = luaL_checklstring(L, 3, &n);
	if (sieve_script_put(a.domain, a.user, "webadmin", text, n, err, sizeof err) != 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int wa_sieve_off(lua_State *L)
{
	struct mm_account a;
	mailbox_args(L, &a);
	sieve_script_off(a.domain, a.user);
	return 0;
}

/* api.queue(verb, id, user): asks the deliverer to flush, delete or
 * bounce queue entry id (see queue_request); true, or nil and why. */
static int wa_queue(lua_State *L)
{
	const char *verb = luaL_checkstring(L, 1), *id = luaL_checkstring(L, 2);
	const char *user = luaL_checkstring(L, 3);
	char err[256], by[300];
	uint64_t qid;
	if (queue_parse_id(id, &qid) != 0) {
		return rl_fail(L, "%s", "no such message in the queue");
	}
	snprintf(by, sizeof by, "web admin %.200s", user);
	if (queue_request(qid, verb, by, err, sizeof err) != 0) {
		return rl_fail(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* api.audit(admin, action, ok, text): an administration action's log
 * line, whatever LogLevel says, with the client's address. */
static int wa_audit(lua_State *L)
{
	struct session *s = here(L);
	const char *user = luaL_checkstring(L, 1), *action = luaL_checkstring(L, 2);
	char act[80], text[200];
	log_audit("admin via=webadmin by=%s client=%s action=\"%s\" result=%s detail=\"%s\"", user,
	        s->peer, log_value(act, sizeof act, action, 1), lua_toboolean(L, 3) ? "ok" : "failed",
	        log_value(text, sizeof text, luaL_optstring(L, 4, ""), 1));
	return 0;
}

/* api.setquota(domain, name, "STORAGE [MESSAGES]"): true, or nil and why. */
static int wa_setquota(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1), *user = luaL_checkstring(L, 2);
	const char *text = luaL_checkstring(L, 3);
	char st[64] = "", ms[64] = "", extra[2], err[256];
	struct mm_account a;
	int n = sscanf(text, "%63s %63s %1s", st, ms, extra);
	if (mm_account_get(domain, user, &a) != 0 || a.type != MM_MBOX) {
		return rl_fail(L, "%s", "no such mailbox");
	}
	if (n < 1 || n > 2 || quota_parse_kib(st, &a.quota.kib) != 0 ||
	        (n == 2 && quota_parse_msgs(ms, &a.quota.msgs) != 0)) {
		return rl_fail(L, "%s", "a quota is a size (100M, 2G, none, default) and optionally "
		                        "a message count");
	}
	if (mm_account_save(&a, err, sizeof err) != 0) {
		return rl_fail(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* api.dns(domain): rumble dns DOMAIN --check as text, looked up on a
 * helper thread while the page's coroutine waits, and the number of
 * required records missing or wrong. */
struct dns_job {
	struct rl_job j;
	char domain[MM_DOMAIN_MAX + 1];
	struct buf out;
	int problems;
};

static void dns_job_run(struct rl_job *j)
{
	struct dns_job *d = (struct dns_job *)j;
	d->problems = dns_advice(d->domain, 1, &d->out);
}

static int dns_job_push(lua_State *L, struct rl_job *j)
{
	struct dns_job *d = (struct dns_job *)j;
	lua_pushlstring(L, d->out.data ? d->out.data : "", d->out.len);
	lua_pushinteger(L, d->problems);
	return 2;
}

static void dns_job_done(struct rl_job *j)
{
	buf_free(&((struct dns_job *)j)->out);
}

static int wa_dns(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1);
	if (!mm_domain_exists(domain)) {
		return rl_fail(L, "no such domain: %s", domain);
	}
	struct dns_job *d = xcalloc(1, sizeof *d);
	d->j.run = dns_job_run;
	d->j.push = dns_job_push;
	d->j.done = dns_job_done;
	d->j.slow = 1; /* as long as the name servers take */
	rl_strlcpy(d->domain, domain, sizeof d->domain);
	buf_init(&d->out);
	return rl_job_call(L, &d->j);
}

/* api.autoconf_path(path): whether autoconf_route answers it (those
 * paths are served without a login: mail clients ask them). */
static int wa_autoconf_path(lua_State *L)
{
	lua_pushboolean(L, autoconf_match(luaL_checkstring(L, 1)));
	return 1;
}

/* api.autoconf(method, target, host, body): autoconf_route's status,
 * document and content type. */
static int wa_autoconf(lua_State *L)
{
	size_t blen;
	const char *method = luaL_checkstring(L, 1), *target = luaL_checkstring(L, 2);
	const char *host = luaL_optstring(L, 3, NULL), *body = luaL_optlstring(L, 4, "", &blen);
	const char *ctype = "text/plain";
	struct buf out;
	buf_init(&out);
	int code = autoconf_route(method, target, host, body, blen, &out, &ctype);
	lua_pushinteger(L, code);
	lua_pushlstring(L, out.data ? out.data : "", out.len);
	lua_pushstring(L, ctype);
	buf_free(&out);
	return 3;
}

/* api.mobileconfig(domain, name): the Apple profile of a mailbox. */
static int wa_mobileconfig(lua_State *L)
{
	const char *domain = luaL_checkstring(L, 1), *user = luaL_checkstring(L, 2);
	struct mm_account a;
	struct autoconf_ports p;
	char addr[WA_ADDR];
	if (mm_account_get(domain, user, &a) != 0 || a.type != MM_MBOX ||
	        strpbrk(a.user, "*?[")) { /* a pattern is no address to set up */
		return rl_fail(L, "%s", "no such mailbox");
	}
	snprintf(addr, sizeof addr, "%s@%s", a.user, a.domain);
	struct buf out;
	buf_init(&out);
	autoconf_ports(&p);
	autoconf_apple(addr, conf.server_name, &p, &out);
	lua_pushlstring(L, out.data, out.len);
	buf_free(&out);
	return 1;
}

/* ---- the dashboard and /metrics: stats.c gathers on a helper thread ---- */

struct status_job {
	struct rl_job j;
	int metrics;
	struct stats_summary s;
	struct buf text;
};

static void status_run(struct rl_job *j)
{
	struct status_job *t = (struct status_job *)j;
	stats_summary(&t->s);
	if (t->metrics) {
		stats_metrics(&t->s, os_time(), &t->text);
	}
}

static void field(lua_State *L, const char *name, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, name);
}

/* t[name] = {{name=, bytes=, msgs=}, ...} */
static void boxes(lua_State *L, const char *name, const struct stats_box *v, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_createtable(L, 0, 3);
		lua_pushstring(L, v[i].name);
		lua_setfield(L, -2, "name");
		field(L, "bytes", (double)v[i].bytes);
		field(L, "msgs", (double)v[i].msgs);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, name);
}

/* hours = {{in, out, refused}, ...}, the oldest first, the current last */
static void hours(lua_State *L, const struct stats *c, int64_t now)
{
	lua_createtable(L, STATS_HOURS, 0);
	for (int h = 0; h < STATS_HOURS; h++) {
		lua_createtable(L, STATS_KINDS, 0);
		for (int k = 0; k < STATS_KINDS; k++) {
			lua_pushnumber(
			        L, stats_at(c, now - 3600 * (int64_t)(STATS_HOURS - 1 - h), k));
			lua_rawseti(L, -2, k + 1);
		}
		lua_rawseti(L, -2, h + 1);
	}
	lua_setfield(L, -2, "hours");
}

static int status_push(lua_State *L, struct rl_job *j)
{
	struct status_job *t = (struct status_job *)j;
	const struct stats_summary *s = &t->s;
	int64_t now = os_time();
	if (t->metrics) {
		lua_pushlstring(L, t->text.data ? t->text.data : "", t->text.len);
		return 1;
	}
	lua_createtable(L, 0, 12);
	field(L, "now", (double)now);
	field(L, "disk_avail", (double)s->disk_avail);
	field(L, "disk_total", (double)s->disk_total);
	field(L, "queued", s->queued);
	field(L, "queue_bytes", (double)s->queue_bytes);
	field(L, "queue_oldest", (double)s->queue_oldest);
	field(L, "cert_until", (double)s->cert_until);
	hours(L, &s->c, now);
	boxes(L, "domains", s->dom, s->ndom);
	boxes(L, "accounts", s->acct, s->nacct);
	lua_createtable(L, s->c.nerrors, 0);
	for (int i = 0; i < s->c.nerrors; i++) {
		lua_pushstring(L, s->c.errors[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "errors");
	return 1;
}

static void status_done(struct rl_job *j)
{
	struct status_job *t = (struct status_job *)j;
	stats_summary_free(&t->s);
	buf_free(&t->text);
}

static int status_call(lua_State *L, int metrics)
{
	struct status_job *t = xcalloc(1, sizeof *t);
	t->j.run = status_run;
	t->j.push = status_push;
	t->j.done = status_done;
	t->j.slow = 1; /* a file per mailbox: off the workers' job threads */
	t->metrics = metrics;
	buf_init(&t->text);
	return rl_job_call(L, &t->j);
}

static int wa_status(lua_State *L)
{
	return status_call(L, 0);
}

/* 1 when word is one of the words of list (space-separated). */
static int listed(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		size_t w = strcspn(p, " ");
		if (w == n && !rl_strncasecmp(p, word, n)) {
			return 1;
		}
		p += w;
		p += strspn(p, " ");
	}
	return 0;
}

/* /metrics: off unless MetricsFrom or MetricsToken is set; then for a
 * client address in MetricsFrom, or with "Authorization: Bearer TOKEN".
 * A wrong token counts as a failed login of the address (LoginAttempts,
 * Quarantine), so it cannot be guessed at network speed. */
static int wa_metrics(lua_State *L)
{
	const char *ip = luaL_checkstring(L, 1), *auth = luaL_optstring(L, 2, "");
	size_t n = strlen(conf.metrics_token);
	int bearer = !rl_strncasecmp(auth, "Bearer ", 7);
	if (!*conf.metrics_from && !n) {
		return rl_fail(L, "%s", "off");
	}
	if (listed(conf.metrics_from, ip)) {
		return status_call(L, 1);
	}
	if (!n || !bearer || session_login_blocked(ip, NULL) || strlen(auth + 7) != n ||
	        !crypto_equal(auth + 7, conf.metrics_token, n)) {
		if (bearer) {
			session_login_failed(ip, "/metrics"); /* no login name */
		}
		return rl_fail(L, "%s", "denied");
	}
	return status_call(L, 1);
}

/* api.https(): whether the admin's listener speaks HTTPS. */
static int wa_https(lua_State *L)
{
	lua_pushboolean(L, (wa_service.flags & SVC_TLS) != 0);
	return 1;
}

static const luaL_Reg api[] = {
        {"autoconf", wa_autoconf},
        {"autoconf_path", wa_autoconf_path},
        {"dns", wa_dns},
        {"mobileconfig", wa_mobileconfig},
        {"https", wa_https},
        {"status", wa_status},
        {"metrics", wa_metrics},
        {"quota", wa_quota},
        {"setquota", wa_setquota},
        {"queue", wa_queue},
        {"setup", wa_setup},
        {"read_done", wa_read_done},
        {"sieve", wa_sieve},
        {"sieve_put", wa_sieve_put},
        {"sieve_off", wa_sieve_off},
        {"login", wa_login},
        {"check", wa_check},
        {"sleep", wa_sleep},
        {"hash", wa_hash},
        {"password_why", wa_password_why},
        {"session", wa_session},
        {"logout", wa_logout},
        {"random", wa_random},
        {"admins", wa_admins},
        {"audit", wa_audit},
        {NULL, NULL},
};

/* ---- in each state ---- */

void rl_webadmin_open(lua_State *L)
{
	if (!conf.webadmin_enable) {
		return;
	}
	if (luaL_loadbuffer(L, webadmin_lua, sizeof webadmin_lua - 1, "=webadmin.lua") != 0) {
		log_warnx("web admin: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return;
	}
	lua_newtable(L);
	for (const luaL_Reg *r = api; r->name; r++) {
		lua_pushcfunction(L, r->func);
		lua_setfield(L, -2, r->name);
	}
	if (rl_call(L, 1, 1, "webadmin.lua") != 0) {
		return;
	}
	lua_setfield(L, LUA_REGISTRYINDEX, WA_HANDLER);
}

void rl_webadmin_install(lua_State *L)
{
	if (!wa_listening) {
		return;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, RL_SERVICES);
	lua_getfield(L, LUA_REGISTRYINDEX, WA_HANDLER);
	lua_rawseti(L, -2, wa_service.port);
	lua_pop(L, 1);
}
