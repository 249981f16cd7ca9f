/*
 * vpop3.c - runs a VPOP3-style SMTP server script (SMTPSVR.LUA, the
 * SMTPScript directive) unchanged: its callbacks (Start, DoHELO,
 * DoMAILFROM, ProcessMessage, ...) and its IN and IN/OUT globals
 * (shared/reference/vpop3-smtp-lua.txt).
 *
 * VPOP3 gives each SMTP session its own instance of the script. Here the
 * chunk is compiled once per worker state (rl_vp3_load) and each session
 * runs it in an environment table of its own whose __index is the
 * state's globals: the session's IPAddress, ForceDisconnect and whatever
 * globals the script sets are its own, while the libraries are shared.
 * The cost is the table and the script's closures (a few KB, logged at
 * debug level when the session opens).
 *
 * The globals are copied in before every callback and the IN/OUT ones
 * read back after it into struct rl_vp3_vars, bounded by the server's
 * limits; smtp.c reads them from there. Callbacks run synchronously on
 * the worker's main Lua thread through rl_call (instruction budget,
 * memory cap, errors logged with file:line). A callback that is missing
 * or fails leaves the default behaviour.
 */
#include <ctype.h>
#include <string.h>

#include "lua/rl.h"
#include "policy.h"

#define VP_CHUNK "rumble.vpop3.chunk"
#define VP_META "rumble.vpop3.meta"
#define VP_REPLY_MAX 4096 /* a reply or a capability list from the script */
#define VP_HDRS_MAX 16384 /* header lines DoDATAStart may add */

struct rl_vp3 {
	struct rl_state *st; /* a reference: a reload does not pull it away */
	struct session *s;
	int env; /* the session's environment, in the registry */
	struct rl_vp3_vars vars;
	int lines; /* MessageLineRaw or MessageLine is defined (StartMessage looks) */
	uint64_t line_len; /* of the body line being received */
	int too_long;      /* a body line went past MaxLineLength */
};

/* see rl.h */
void rl_vp3_load(struct rl_state *st)
{
	if (!conf.smtp_script[0]) {
		return;
	}
	lua_State *L = st->L;
	if (rl_loadfile(L, conf.smtp_script) != 0) {
		log_warnx("script error: %s (in SMTPScript)", lua_tostring(L, -1));
		lua_pop(L, 1);
		return;
	}
	lua_setfield(L, LUA_REGISTRYINDEX, VP_CHUNK);
	lua_createtable(L, 0, 1); /* one metatable for every session's environment */
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfield(L, -2, "__index");
	lua_setfield(L, LUA_REGISTRYINDEX, VP_META);
}

/* ---- the globals ---- */

static void set_str(lua_State *L, const char *k, const char *v)
{
	rl_set_str(L, k, v ? v : "");
}

static void vars_init(struct rl_vp3 *v)
{
	struct rl_vp3_vars *g = &v->vars;
	g->valid = 1;
	g->local = 0; /* relaying needs AUTH unless the script says so */
	g->auth_required = (v->s->svc->flags & SVC_AUTH_FIRST) != 0;
	g->max_rcpt_local = g->max_rcpt_in = conf.max_recipients;
	g->max_msgs_local = 0;
	g->max_line = 0;
}

/* Sets the globals in the environment on top of L. */
static void vars_push(struct rl_vp3 *v, lua_State *L)
{
	struct session *s = v->s;
	struct rl_vp3_vars *g = &v->vars;
	struct proto_info pi = {0};
	if (s->ps && s->svc->proto->info) {
		s->svc->proto->info(s, &pi);
	}
	char tls[160] = "";
	if (session_secure(s)) {
		snprintf(tls, sizeof tls, "%s %s", tls_version(s->tls), tls_cipher(s->tls));
	}
	set_str(L, "IPAddress", s->peer);
	rl_set_bool(L, "ValidClientAddress", g->valid);
	rl_set_bool(L, "LocalClientAddress", g->local);
	rl_set_bool(L, "AuthenticationRequired", g->auth_required);
	set_str(L, "AllowedUsers", g->allowed);
	set_str(L, "AuthenticatedUser", pi.user);
	set_str(L, "SMTPAuthenticatedUser", pi.user);
	set_str(L, "SPFResult", pi.spf); /* inbound authentication (dmarc.c) */
	set_str(L, "DKIMResult", pi.dkim);
	set_str(L, "DMARCResult", pi.dmarc);
	set_str(L, "AuthenticationResults", pi.authres);
	rl_set_bool(L, "ForceDisconnect", g->force);
	rl_set_bool(L, "UseBATV", g->batv);
	rl_set_num(L, "MaxRecipientsPerLocalMessage", g->max_rcpt_local);
	rl_set_num(L, "MaxRecipientsPerIncomingMessage", g->max_rcpt_in);
	rl_set_num(L, "MaxMessagesPerLocalSession", g->max_msgs_local);
	rl_set_num(L, "MaxLineLength", g->max_line);
	rl_set_bool(L, "AddUserAddresses", g->add_user);
	rl_set_num(L, "ServerID", s->svc->port);
	set_str(L, "ServerName", s->svc->name);
	rl_set_bool(L, "Encryption", session_secure(s));
	set_str(L, "EncryptionDetails", tls);
}

/* t[k] for the table at idx, without metamethods: a script's __index (a
 * "strict" _G, say) raising here, outside any protected call, would end
 * the process. */
static void raw_field(lua_State *L, int idx, const char *k)
{
	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	lua_pushstring(L, k);
	lua_rawget(L, idx);
}

static int get_bool(lua_State *L, const char *k, int def)
{
	raw_field(L, -1, k);
	int b = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
	lua_pop(L, 1);
	return b;
}

/* A number from 0 to hi (0 and out of range: hi, "the server's limit");
 * def when it is not a number. */
static int get_limit(lua_State *L, const char *k, int def, int hi)
{
	raw_field(L, -1, k);
	int n = def;
	if (lua_isnumber(L, -1)) {
		lua_Number x = lua_tonumber(L, -1);
		n = x >= 1 && x < hi ? (int)x : hi;
	}
	lua_pop(L, 1);
	return n;
}

/* Reads the IN/OUT globals back from the environment on top of L. */
static void vars_pull(struct rl_vp3 *v, lua_State *L)
{
	struct rl_vp3_vars *g = &v->vars;
	g->valid = get_bool(L, "ValidClientAddress", g->valid);
	g->local = get_bool(L, "LocalClientAddress", g->local);
	g->auth_required = get_bool(L, "AuthenticationRequired", g->auth_required);
	g->force = get_bool(L, "ForceDisconnect", g->force);
	g->batv = get_bool(L, "UseBATV", g->batv);
	g->add_user = get_bool(L, "AddUserAddresses", g->add_user);
	g->max_rcpt_local = get_limit(
	        L, "MaxRecipientsPerLocalMessage", g->max_rcpt_local, conf.max_recipients);
	g->max_rcpt_in = get_limit(
	        L, "MaxRecipientsPerIncomingMessage", g->max_rcpt_in, conf.max_recipients);
	g->max_msgs_local = get_limit(L, "MaxMessagesPerLocalSession", g->max_msgs_local, 1 << 30);
	g->max_line = get_limit(L, "MaxLineLength", g->max_line, 1 << 30);
	raw_field(L, -1, "AllowedUsers");
	if (lua_type(L, -1) == LUA_TSTRING) {
		rl_strlcpy(g->allowed, lua_tostring(L, -1), sizeof g->allowed);
	}
	lua_pop(L, 1);
	if (g->max_msgs_local == 1 << 30) {
		g->max_msgs_local = 0; /* no limit */
	}
	if (g->max_line == 1 << 30) {
		g->max_line = 0;
	}
}

struct rl_vp3_vars *rl_vp3_vars(struct rl_vp3 *v)
{
	return &v->vars;
}

/* ---- calling the script ---- */

/* Pushes the session's callback fn and returns L, memory uncapped while
 * the caller pushes the arguments; NULL (nothing pushed) when the script
 * has no such function. */
static lua_State *cb_begin(struct rl_vp3 *v, const char *fn)
{
	lua_State *L = v->st->L;
	if (!lua_checkstack(L, 32)) { /* the most arguments and temporaries pushed */
		return NULL;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, v->env);
	lua_pushstring(L, fn);
	lua_rawget(L, -2);
	lua_remove(L, -2);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	v->st->capped = 0; /* the arguments must not fail outside the pcall */
	return L;
}

/* Calls the callback under its nargs arguments: 0 with nres results
 * pushed, -1 (logged) with nothing. */
static int cb_call(struct rl_vp3 *v, const char *fn, int nargs, int nres)
{
	lua_State *L = v->st->L;
	char what[64];
	snprintf(what, sizeof what, "SMTPScript %s", fn);
	lua_rawgeti(L, LUA_REGISTRYINDEX, v->env);
	vars_push(v, L);
	lua_pop(L, 1);
	v->st->capped = 1;
	int rc = rl_call(L, nargs, nres, what);
	lua_rawgeti(L, LUA_REGISTRYINDEX, v->env);
	vars_pull(v, L);
	lua_pop(L, 1);
	if (v->vars.force) {
		session_close(v->s, "ForceDisconnect set by SMTPScript");
	}
	return rc;
}

static int has_cb(struct rl_vp3 *v, const char *fn)
{
	lua_State *L = cb_begin(v, fn);
	if (L) {
		lua_pop(L, 1);
		v->st->capped = 1;
	}
	return L != NULL;
}

static void push_list(lua_State *L, char *const *list, int n)
{
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, list[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

/* Appends line (n bytes) to out as a reply line: "ddd-text" ("ddd text"
 * when last); a line without its own code gets code. */
static void reply_line(struct buf *out, int code, const char *p, size_t n, int last)
{
	int own = n >= 3 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	          isdigit((unsigned char)p[2]) && (n == 3 || p[3] == ' ' || p[3] == '-');
	if (own) {
		code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		p += n > 3 ? 4 : 3;
		n -= n > 3 ? 4 : 3;
	}
	buf_printf(out, "%03d%c%.*s\r\n", code, last ? ' ' : '-', (int)n, p);
}

/* 1 when s starts as a reply does: "2xx".."5xx", then a space, "-" or the
 * end. */
static int is_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

/* The reply the script gave at index idx, made CRLF lines in out; its
 * code, or 0 when it gave none ("" or not a string) or one that is not
 * "2xx".."5xx" (logged). */
static int take_reply(lua_State *L, int idx, struct buf *out)
{
	buf_reset(out);
	if (lua_type(L, idx) != LUA_TSTRING) {
		return 0;
	}
	size_t n;
	const char *p = lua_tolstring(L, idx, &n);
	if (n == 0) {
		return 0;
	}
	if (n < 3 || n > VP_REPLY_MAX || p[0] < '2' || p[0] > '5' ||
	        !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) ||
	        memchr(p, '\0', n)) {
		log_warnx("script error: SMTPScript gave a reply that is not one: \"%.40s\"", p);
		return 0;
	}
	int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	const char *end = p + n;
	while (p < end) {
		size_t len = strcspn(p, "\r\n");
		const char *next = p + len;
		while (next < end && (*next == '\r' || *next == '\n')) {
			next++;
		}
		if (len) {
			reply_line(out, code, p, len, next >= end);
		}
		p = next;
	}
	return code;
}

/* ---- the session ---- */

static uint64_t max_size_cb(struct rl_vp3 *v, const char *host, uint64_t cur)
{
	lua_State *L = cb_begin(v, "GetMaxMessageSize");
	if (!L) {
		return cur;
	}
	lua_pushstring(L, host);
	lua_pushnumber(L, (lua_Number)cur);
	if (cb_call(v, "GetMaxMessageSize", 2, 1) != 0) {
		return cur;
	}
	if (lua_isnumber(L, -1)) {
		lua_Number n = lua_tonumber(L, -1);
		/* 0 is "no limit": the server's own is the most there is */
		cur = n >= 1 && n < (lua_Number)conf.message_size_limit ? (uint64_t)n
		                                                        : conf.message_size_limit;
	}
	lua_pop(L, 1);
	return cur;
}

/* Runs the chunk with the session's environment as its globals. */
static void run_chunk(struct rl_vp3 *v, lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, VP_CHUNK);
	lua_rawgeti(L, LUA_REGISTRYINDEX, v->env);
	vars_push(v, L);
	lua_setfenv(L, -2);
	v->st->capped = 1;
	rl_call(L, 0, 0, "SMTPScript");
	/* the shared chunk must not keep this session's table alive */
	v->st->capped = 0;
	lua_getfield(L, LUA_REGISTRYINDEX, VP_CHUNK);
	lua_pushvalue(L, LUA_GLOBALSINDEX);
	lua_setfenv(L, -2);
	lua_pop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, v->env);
	vars_pull(v, L);
	lua_pop(L, 1);
	v->st->capped = 1;
}

/* see rumble.h */
struct rl_vp3 *rl_vp3_open(struct session *s, uint64_t *max_size)
{
	if (!conf.smtp_script[0]) {
		return NULL;
	}
	struct rl_state *st = rl_state_get(session_worker(s));
	if (!st) {
		return NULL;
	}
	lua_State *L = st->L;
	lua_getfield(L, LUA_REGISTRYINDEX, VP_CHUNK);
	int loaded = lua_isfunction(L, -1);
	lua_pop(L, 1);
	if (!loaded) {
		return NULL; /* it did not compile: logged at load */
	}
	size_t before = st->mem;
	struct rl_vp3 *v = xcalloc(1, sizeof *v);
	v->st = st;
	v->s = s;
	rl_state_ref(st);
	vars_init(v);
	st->capped = 0;
	lua_createtable(L, 0, 24);
	lua_getfield(L, LUA_REGISTRYINDEX, VP_META);
	lua_setmetatable(L, -2);
	v->env = luaL_ref(L, LUA_REGISTRYINDEX);
	run_chunk(v, L);
	log_debug("%08x smtp SMTPScript instance: %ld bytes", s->id, (long)st->mem - (long)before);
	*max_size = max_size_cb(v, s->peer, *max_size);
	return v;
}

/* see rumble.h */
void rl_vp3_close(struct rl_vp3 *v)
{
	if (!v) {
		return;
	}
	lua_State *L = cb_begin(v, "End");
	if (L) {
		cb_call(v, "End", 0, 0);
	}
	luaL_unref(v->st->L, LUA_REGISTRYINDEX, v->env);
	rl_state_unref(v->st);
	free(v);
}

/* see rumble.h */
int rl_vp3_start(struct rl_vp3 *v, struct buf *out)
{
	lua_State *L = cb_begin(v, "Start");
	if (!L || cb_call(v, "Start", 0, 1) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 1);
	return code;
}

/* see rumble.h */
int rl_vp3_helo(struct rl_vp3 *v, const char *host, int esmtp, int *refuse, uint64_t *max_size,
        struct buf *out)
{
	*max_size = max_size_cb(v, host, *max_size);
	buf_reset(out);
	lua_State *L = cb_begin(v, "DoHELO");
	if (!L) {
		return 0;
	}
	lua_pushstring(L, host);
	lua_pushboolean(L, *refuse);
	lua_pushboolean(L, esmtp);
	if (cb_call(v, "DoHELO", 3, 2) != 0) {
		return 0;
	}
	if (!lua_isnil(L, -2)) {
		*refuse = lua_toboolean(L, -2);
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 2);
	return code;
}

/* Capability lines of s (CRLF or LF, "250-"/"250 " allowed) into caps. */
static void caps_take(const char *p, size_t n, struct buf *caps)
{
	buf_reset(caps);
	const char *end = p + n;
	while (p < end) {
		size_t len = strcspn(p, "\r\n");
		const char *line = p;
		p += len;
		while (p < end && (*p == '\r' || *p == '\n')) {
			p++;
		}
		if (len >= 4 && !strncmp(line, "250", 3) && (line[3] == '-' || line[3] == ' ')) {
			line += 4;
			len -= 4;
		}
		if (len && memchr(line, '\0', len) == NULL) {
			buf_append(caps, line, len);
			buf_append(caps, "\r\n", 2);
		}
	}
}

/* see rumble.h */
void rl_vp3_caps(struct rl_vp3 *v, const char *host, struct buf *caps)
{
	lua_State *L = cb_begin(v, "GetEHLOCapabilities");
	if (!L) {
		return;
	}
	lua_pushstring(L, host);
	lua_pushlstring(L, caps->data ? caps->data : "", caps->len);
	if (cb_call(v, "GetEHLOCapabilities", 2, 1) != 0) {
		return;
	}
	size_t n;
	const char *p = lua_tolstring(L, -1, &n);
	if (lua_type(L, -1) == LUA_TSTRING && n <= VP_REPLY_MAX) {
		caps_take(p, n, caps);
	}
	lua_pop(L, 1);
}

/* see rumble.h */
int rl_vp3_simple(struct rl_vp3 *v, const char *fn, const char *arg, struct buf *out)
{
	buf_reset(out);
	lua_State *L = cb_begin(v, fn);
	if (!L) {
		return 0;
	}
	if (arg) {
		lua_pushstring(L, arg);
	}
	if (cb_call(v, fn, arg ? 1 : 0, 1) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 1);
	return code;
}

/* see rumble.h */
int rl_vp3_verify(
        struct rl_vp3 *v, const char *fn, const char *addr, const char *current, struct buf *out)
{
	buf_reset(out);
	lua_State *L = cb_begin(v, fn);
	if (!L) {
		return 0;
	}
	char a[MM_USER_MAX + MM_DOMAIN_MAX + 4];
	struct mm_account acct;
	rl_strlcpy(a, addr + (*addr == '<'), sizeof a);
	a[strcspn(a, ">")] = '\0';
	char *list[1] = {a};
	push_list(L, list, queue_classify(a, &acct) == RCPT_LOCAL ? 1 : 0);
	lua_pushstring(L, current);
	if (cb_call(v, fn, 2, 1) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 1);
	return code;
}

/* Pushes the ESMTP parameters "K=V K2" as {K = "V", K2 = ""} (names in
 * upper case). */
static void push_params(lua_State *L, const char *params)
{
	lua_newtable(L);
	for (const char *p = params; *p;) {
		size_t n = strcspn(p, " ");
		size_t k = strcspn(p, "= ");
		if (n) {
			char key[64];
			size_t kl = k < sizeof key ? k : sizeof key - 1;
			for (size_t i = 0; i < kl; i++) {
				key[i] = (char)toupper((unsigned char)p[i]);
			}
			key[kl] = '\0';
			lua_pushstring(L, key);
			if (k < n) {
				lua_pushlstring(L, p + k + 1, n - k - 1);
			} else {
				lua_pushliteral(L, "");
			}
			lua_rawset(L, -3);
		}
		p += n;
		while (*p == ' ') {
			p++;
		}
	}
}

/* The new return path in the MAILFROM entry of the table at idx, if it is
 * a valid one (or "" for the null sender). */
static void new_sender(lua_State *L, int idx, char *from, size_t fromlen)
{
	if (!lua_istable(L, idx)) {
		return;
	}
	raw_field(L, idx, "MAILFROM");
	if (lua_type(L, -1) == LUA_TSTRING) {
		char path[600], addr[330], *params;
		snprintf(path, sizeof path, "<%s>", lua_tostring(L, -1));
		path[strcspn(path, ">") + 1] = '\0'; /* "<a@b>" even when it was given so */
		if (!strncmp(path, "<<", 2)) {
			memmove(path, path + 1, strlen(path));
		}
		if (smtp_parse_path(path, "", addr, sizeof addr, &params) == 0 &&
		        strlen(addr) < fromlen) {
			memcpy(from, addr, strlen(addr) + 1);
		} else {
			log_warnx("script error: SMTPScript DoMAILFROM: bad MAILFROM \"%.60s\"",
			        lua_tostring(L, -1));
		}
	}
	lua_pop(L, 1);
}

/* see rumble.h */
int rl_vp3_mail(struct rl_vp3 *v, const char *data, const char *spf, char *from, size_t fromlen,
        const char *params, const char *user, struct buf *out)
{
	buf_reset(out);
	lua_State *L = cb_begin(v, "DoMAILFROM");
	if (!L) {
		return 0;
	}
	lua_pushstring(L, data);
	lua_pushstring(L, from);
	push_params(L, params);
	lua_pushstring(L, spf); /* "none" when SPFCheck is off */
	lua_pushstring(L, user);
	if (cb_call(v, "DoMAILFROM", 5, 2) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	if (code < 400) {
		new_sender(L, lua_gettop(L) - 1, from, fromlen);
	}
	lua_pop(L, 2);
	return code;
}

/* see rumble.h */
int rl_vp3_rcpt(struct rl_vp3 *v, const char *data, const char *rcpt, const char *params,
        const struct queue_msg *m, struct buf *out)
{
	buf_reset(out);
	lua_State *L = cb_begin(v, "DoRCPTTO");
	if (!L) {
		return 0;
	}
	lua_pushstring(L, data);
	lua_pushstring(L, rcpt);
	push_params(L, params);
	push_list(L, m->rcpts, m->nrcpt);
	if (cb_call(v, "DoRCPTTO", 4, 2) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 2);
	return code;
}

/* Header lines from the script (any line ends) as CRLF lines in hdrs:
 * "Name: value" or a continuation; anything else is dropped (logged). */
static void take_headers(const char *p, size_t n, struct buf *hdrs)
{
	const char *end = p + n;
	int had = 0;
	while (p < end) {
		size_t len = strcspn(p, "\r\n");
		const char *line = p;
		p += len;
		while (p < end && (*p == '\r' || *p == '\n')) {
			p++;
		}
		size_t name = strcspn(line, ": \t\r\n");
		int cont = had && len && (line[0] == ' ' || line[0] == '\t');
		if (!len) {
			continue;
		}
		if ((cont || (name && name < len && line[name] == ':')) &&
		        !memchr(line, '\0', len)) {
			buf_append(hdrs, line, len);
			buf_append(hdrs, "\r\n", 2);
			had = 1;
		} else {
			log_warnx("script error: SMTPScript DoDATAStart: not a header: \"%.*s\"",
			        (int)(len < 60 ? len : 60), line);
		}
	}
}

/* see rumble.h */
int rl_vp3_data(struct rl_vp3 *v, const struct queue_msg *m, struct buf *hdrs, struct buf *out)
{
	buf_reset(out);
	lua_State *L = cb_begin(v, "DoDATAStart");
	if (!L) {
		return 0;
	}
	push_list(L, m->rcpts, m->nrcpt);
	if (cb_call(v, "DoDATAStart", 1, 2) != 0) {
		return 0;
	}
	int code = take_reply(L, -2, out);
	size_t n;
	const char *p = lua_tolstring(L, -1, &n);
	if (code < 400 && lua_type(L, -1) == LUA_TSTRING && n <= VP_HDRS_MAX) {
		take_headers(p, n, hdrs);
	}
	lua_pop(L, 2);
	return code;
}

/* see rumble.h */
void rl_vp3_line(struct rl_vp3 *v, const char *fn, const char *line, size_t len)
{
	if (!strcmp(fn, "StartMessage")) {
		v->lines = has_cb(v, "MessageLineRaw") || has_cb(v, "MessageLine");
	} else if (!v->lines && line) {
		return; /* not one Lua look-up per line for nothing */
	}
	lua_State *L = cb_begin(v, fn);
	if (!L) {
		return;
	}
	if (line) {
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
			len--;
		}
		lua_pushlstring(L, line, len);
	}
	cb_call(v, fn, line ? 1 : 0, 0);
}

/* ---- the whole message: CheckRecipients, ProcessMessage ---- */

struct vp_msg {
	struct buf text; /* the message as spooled */
	struct mime_msg mime;
	struct buf subject;
};

static int msg_read(struct queue_msg *m, struct vp_msg *vm)
{
	char chunk[16384];
	long n;
	uint64_t off = 0;
	while ((n = spool_read(&m->body, off, chunk, sizeof chunk)) > 0) {
		buf_append(&vm->text, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	if (n < 0) {
		return -1;
	}
	mime_parse(&vm->mime, vm->text.data ? vm->text.data : "", vm->text.len);
	mime_header_text(&vm->mime, NULL, "subject", &vm->subject);
	buf_append(&vm->subject, "", 1); /* NUL-terminated */
	return 0;
}

/* Pushes the addresses of the root's header name as a list. */
static void push_header_addrs(lua_State *L, const struct vp_msg *vm, const char *name)
{
	struct buf b;
	buf_init(&b);
	lua_newtable(L);
	if (mime_header_get(&vm->mime, NULL, name, &b)) {
		struct mime_addr *a = mime_addr_parse(b.data, b.len, 0);
		int i = 0;
		for (struct mime_addr *p = a; p; p = p->next) {
			if (p->kind == MIME_ADDR_MAILBOX && p->mailbox[0] && p->host[0]) {
				lua_pushfstring(L, "%s@%s", p->mailbox, p->host);
				lua_rawseti(L, -2, ++i);
			}
		}
		mime_addr_free(a);
	}
	buf_free(&b);
}

/* 1 when addr is (any case) an entry of the list at idx. */
static int in_list(lua_State *L, int idx, const char *addr)
{
	int found = 0;
	for (int i = 1; !found; i++) {
		lua_rawgeti(L, idx, i);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			break;
		}
		const char *e = lua_tostring(L, -1);
		found = e && !rl_strcasecmp(e, addr);
		lua_pop(L, 1);
	}
	return found;
}

/* Bcc: the envelope recipients that are in neither To (at idx) nor Cc
 * (at idx + 1). */
static void push_bcc(lua_State *L, const struct queue_msg *m, int idx)
{
	lua_newtable(L);
	int n = 0;
	for (int i = 0; i < m->nrcpt; i++) {
		if (!in_list(L, idx, m->rcpts[i]) && !in_list(L, idx + 1, m->rcpts[i])) {
			lua_pushstring(L, m->rcpts[i]);
			lua_rawseti(L, -2, ++n);
		}
	}
}

static int check_rcpts(struct rl_vp3 *v, const struct queue_msg *m, const struct vp_msg *vm,
        const char *user, struct buf *out)
{
	lua_State *L = cb_begin(v, "CheckRecipients");
	if (!L) {
		return 0;
	}
	push_list(L, m->rcpts, m->nrcpt);
	int to = lua_gettop(L) + 1;
	push_header_addrs(L, vm, "to");
	push_header_addrs(L, vm, "cc");
	push_bcc(L, m, to);
	lua_pushstring(L, v->s->peer);
	lua_pushstring(L, user);
	lua_pushstring(L, m->from);
	lua_pushstring(L, vm->subject.data);
	lua_pushboolean(L, user[0] || v->vars.local);
	lua_pushnumber(L, (lua_Number)vm->text.len);
	if (cb_call(v, "CheckRecipients", 10, 1) != 0) {
		return 0;
	}
	int code = take_reply(L, -1, out);
	lua_pop(L, 1);
	return code >= 400 ? code : 0;
}

static void set_field_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		set_str(L, k, v);
	}
}

struct walk {
	lua_State *L;
	const struct mime_msg *mime;
	int structure, attachments; /* stack indexes of the two lists */
	int nparts, natt;
};

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The size of p's body decoded as mime_body_decode would, without a copy:
 * base64 gives whole bytes of 6 bits a character of its alphabet, each
 * "=" ending a quantum; quoted-printable is decoded a line at a time (no
 * escape or soft break spans a line end). */
static size_t decoded_size(const struct mime_msg *m, const struct mime_part *p)
{
	const char *b = m->buf + p->body_off;
	size_t n = p->body_len, size = 0, run = 0;
	if (!strcmp(p->encoding, "base64")) {
		for (size_t i = 0; i <= n; i++) {
			if (i == n || b[i] == '=') {
				size += run * 6 / 8;
				run = 0;
			} else {
				run += b64_char(b[i]);
			}
		}
		return size;
	}
	if (strcmp(p->encoding, "quoted-printable") != 0) {
		return n;
	}
	struct buf line;
	buf_init(&line);
	for (size_t i = 0, len; i < n; i += len) {
		const char *nl = memchr(b + i, '\n', n - i);
		len = nl ? (size_t)(nl - (b + i)) + 1 : n - i;
		buf_reset(&line);
		mime_decode_qp(b + i, len, &line);
		size += line.len;
	}
	buf_free(&line);
	return size;
}

static void add_attachment(struct walk *w, const struct mime_part *p, const char *name)
{
	lua_State *L = w->L;
	lua_createtable(L, 0, 5);
	rl_set_num(L, "MIMESection", w->nparts);
	set_str(L, "Name", name);
	lua_pushfstring(L, "%s/%s", p->type, p->subtype);
	lua_setfield(L, -2, "MIMEType");
	rl_set_num(L, "Size", (double)decoded_size(w->mime, p));
	set_str(L, "Type", "MIME");
	lua_rawseti(L, w->attachments, ++w->natt);
}

/* One entry of the MIME structure list (and of the attachments). */
static void add_part(struct walk *w, const struct mime_part *p, const char *path)
{
	lua_State *L = w->L;
	lua_createtable(L, 0, 8);
	set_str(L, "Path", path);
	set_str(L, "ContentType", p->type);
	set_str(L, "ContentSubtype", p->subtype);
	set_field_str(L, "ContentTypeFilename", mime_part_param(p, "name"));
	set_str(L, "ContentDisposition", p->disposition);
	set_field_str(L, "ContentDispositionFilename", mime_part_disp_param(p, "filename"));
	rl_set_num(L, "Start", (double)p->hdr_off);
	rl_set_num(L, "End", (double)(p->body_off + p->body_len));
	lua_rawseti(L, w->structure, ++w->nparts);
	const char *name = mime_part_filename(p);
	int leaf = !(p->flags & (MIME_MULTIPART | MIME_MESSAGE));
	if (leaf && (name || (p->disposition && !strcmp(p->disposition, "attachment")))) {
		add_attachment(w, p, name);
	}
}

static void walk_part(struct walk *w, const struct mime_part *p, const char *path);

static void walk_children(struct walk *w, const struct mime_part *c, const char *path)
{
	char sub[256];
	for (int i = 1; c; c = c->next, i++) {
		snprintf(sub, sizeof sub, "%s%s%d", path, *path ? "." : "", i);
		walk_part(w, c, sub);
	}
}

/* IMAP section numbers (RFC 3501 6.4.5): the parts of a multipart are
 * 1, 2, ...; the body of a message/rfc822 part n is n.1, or n.1, n.2 ...
 * for a multipart inside. */
static void walk_part(struct walk *w, const struct mime_part *p, const char *path)
{
	add_part(w, p, path);
	if (p->flags & MIME_MULTIPART) {
		walk_children(w, p->child, path);
	} else if ((p->flags & MIME_MESSAGE) && p->child) {
		const struct mime_part *in = p->child;
		if (in->flags & MIME_MULTIPART) {
			walk_children(w, in->child, path);
		} else {
			char sub[256];
			snprintf(sub, sizeof sub, "%s%s1", path, *path ? "." : "");
			walk_part(w, in, sub);
		}
	}
}

static void push_actions(lua_State *L)
{
	lua_createtable(L, 0, 6);
	rl_set_bool(L, "SendToOriginalRecipients", 1);
	rl_set_bool(L, "Delete", 0);
	rl_set_bool(L, "Ignore", 0);
	set_str(L, "Reason", "");
	lua_newtable(L);
	lua_setfield(L, -2, "Recipients");
	lua_newtable(L);
	lua_setfield(L, -2, "HeaderModifiers");
}

/* The actions' Recipients (table at idx) replace or join m's. */
static void apply_rcpts(lua_State *L, int idx, struct queue_msg *m, int keep)
{
	raw_field(L, idx, "Recipients");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!keep) {
		for (int i = 0; i < m->nrcpt; i++) {
			free(m->rcpts[i]);
		}
		m->nrcpt = 0;
	}
	for (int i = 1; m->nrcpt < conf.max_recipients; i++) {
		lua_rawgeti(L, -1, i);
		if (lua_type(L, -1) != LUA_TSTRING) {
			lua_pop(L, 1);
			break;
		}
		char path[600], addr[330], *params;
		snprintf(path, sizeof path, "<%s>", lua_tostring(L, -1));
		if (smtp_parse_path(path, "", addr, sizeof addr, &params) == 0 && addr[0]) {
			queue_msg_add_rcpt(m, addr);
		} else {
			log_warnx(
			        "script error: SMTPScript ProcessMessage: bad recipient \"%.60s\"",
			        lua_tostring(L, -1));
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* 1 when the header line h is replaced by a modifier in the list at idx. */
static int modified(lua_State *L, int idx, const struct mime_header *h)
{
	int hit = 0;
	for (int i = 1; !hit; i++) {
		lua_rawgeti(L, idx, i);
		size_t n;
		const char *e = lua_tolstring(L, -1, &n);
		if (!e) {
			lua_pop(L, 1);
			break;
		}
		size_t name = strcspn(e, ":");
		hit = name == h->name_len && name < n && !rl_strncasecmp(e, h->name, name);
		lua_pop(L, 1);
	}
	return hit;
}

/* HeaderModifiers (list at idx): each "Name: value" replaces every Name
 * header (added at the end of the header when there was none); "Name:"
 * alone removes them. The message is written again. */
static void apply_headers(lua_State *L, int idx, struct queue_msg *m, struct vp_msg *vm)
{
	const struct mime_part *root = vm->mime.root;
	struct spool ns;
	struct mime_headers it;
	struct mime_header h;
	spool_init(&ns, m->body.tmpdir);
	mime_headers_part(&it, &vm->mime, NULL);
	while (mime_headers_next(&it, &h)) {
		if (!modified(L, idx, &h)) {
			spool_write(&ns, h.name, (size_t)(h.value + h.value_len - h.name));
			spool_write(&ns, "\r\n", 2);
		}
	}
	for (int i = 1;; i++) {
		lua_rawgeti(L, idx, i);
		size_t n;
		const char *e = lua_tolstring(L, -1, &n);
		if (!e) {
			lua_pop(L, 1);
			break;
		}
		size_t name = strcspn(e, ": \t\r\n");
		size_t rest = name < n && e[name] == ':' ? strspn(e + name + 1, " \t") : 0;
		if (name && name < n && e[name] == ':' && name + 1 + rest < n &&
		        !strpbrk(e, "\r\n")) {
			spool_write(&ns, e, n);
			spool_write(&ns, "\r\n", 2);
		}
		lua_pop(L, 1);
	}
	spool_write(&ns, "\r\n", 2);
	if (root->body_off < vm->text.len) {
		spool_write(&ns, vm->text.data + root->body_off, vm->text.len - root->body_off);
	}
	spool_free(&m->body);
	m->body = ns;
}

static int get_bool_at(lua_State *L, int idx, const char *k)
{
	raw_field(L, idx, k);
	int b = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return b;
}

/* The actions table at idx: 0 queue, 2 blackhole, or the code of the
 * refusal in out. */
static int apply_actions(
        lua_State *L, int idx, struct queue_msg *m, struct vp_msg *vm, struct buf *out)
{
	if (!lua_istable(L, idx)) {
		return 0;
	}
	int ignore = get_bool_at(L, idx, "Ignore"), del = get_bool_at(L, idx, "Delete");
	if (ignore && del) {
		raw_field(L, idx, "Reason");
		const char *why = lua_tostring(L, -1);
		/* a Reason may be a whole reply, or text for ours */
		if (!why || !is_reply(why) || take_reply(L, -1, out) < 500) {
			buf_reset(out);
			buf_printf(out, "554 5.7.1 %.200s\r\n",
			        why && *why && !strpbrk(why, "\r\n") ? why : "Message rejected");
		}
		lua_pop(L, 1);
		return 554;
	}
	if (ignore) {
		return 2;
	}
	int keep = get_bool_at(L, idx, "SendToOriginalRecipients");
	apply_rcpts(L, idx, m, keep);
	if (m->nrcpt == 0) {
		return 2; /* nobody left to send it to */
	}
	raw_field(L, idx, "HeaderModifiers");
	if (lua_istable(L, -1) && lua_objlen(L, -1) > 0) {
		apply_headers(L, lua_gettop(L), m, vm);
	}
	lua_pop(L, 1);
	return 0;
}

static int process(struct rl_vp3 *v, struct queue_msg *m, struct vp_msg *vm, struct buf *out)
{
	lua_State *L = cb_begin(v, "ProcessMessage");
	if (!L) {
		return 0;
	}
	lua_pushstring(L, m->from);
	lua_pushstring(L, vm->subject.data);
	push_list(L, m->rcpts, m->nrcpt);
	push_actions(L);
	struct walk w = {.L = L, .mime = &vm->mime};
	lua_newtable(L);
	w.structure = lua_gettop(L);
	lua_pushnumber(L, (lua_Number)vm->text.len);
	lua_newtable(L);
	w.attachments = lua_gettop(L);
	const struct mime_part *root = vm->mime.root;
	walk_part(&w, root, root->flags & MIME_MULTIPART ? "" : "1");
	if (cb_call(v, "ProcessMessage", 7, 2) != 0) {
		return 0;
	}
	int rc = apply_actions(L, lua_gettop(L) - 1, m, vm, out);
	lua_pop(L, 2);
	return rc;
}

/* see rumble.h */
int rl_vp3_message(struct rl_vp3 *v, struct queue_msg *m, const char *user, struct buf *out)
{
	buf_reset(out);
	if (!has_cb(v, "CheckRecipients") && !has_cb(v, "ProcessMessage")) {
		return 0;
	}
	struct vp_msg vm;
	memset(&vm, 0, sizeof vm);
	buf_init(&vm.text);
	buf_init(&vm.subject);
	int rc = 0;
	if (msg_read(m, &vm) == 0) {
		rc = check_rcpts(v, m, &vm, user, out);
		if (rc == 0 && !session_closing(v->s)) {
			rc = process(v, m, &vm, out);
		}
		mime_free(&vm.mime);
	}
	buf_free(&vm.subject);
	buf_free(&vm.text);
	return rc;
}

/* see rumble.h */
int rl_vp3_user_allowed(struct rl_vp3 *v, const char *user)
{
	const char *list = v->vars.allowed;
	size_t ulen = strlen(user), local = strcspn(user, "@");
	for (const char *p = list + strspn(list, " ,"); *p; p += strspn(p, " ,")) {
		size_t n = strcspn(p, " ,");
		if ((n == ulen || n == local) && !rl_strncasecmp(p, user, n)) {
			return 1;
		}
		p += n;
	}
	return list[strspn(list, " ,")] == '\0'; /* an empty list: anyone */
}

/* ---- the policy module (policy.h): the SMTPScript's callbacks at each
 * step, its variables as the session's limits ---- */

/* A callback's reply (code, in b) becomes the chain's answer. */
static int vp_answer(struct policy_call *c, int code, struct buf *b)
{
	if (code) {
		buf_reset(&c->reply);
		buf_append(&c->reply, b->data ? b->data : "", b->len);
	}
	buf_free(b);
	return code;
}

static int vp_open(struct policy *p, struct session *s, void **m)
{
	uint64_t max = policy_limits(p)->max_size;
	struct rl_vp3 *v = rl_vp3_open(s, &max);
	policy_set_max_size(p, max);
	*m = v;
	return v != NULL;
}

static void vp_close(struct session *s, void *m)
{
	rl_vp3_close(m); /* End() */
}

static void vp_limits(void *m, struct policy_limits *l)
{
	struct rl_vp3_vars *g = rl_vp3_vars(m);
	l->valid = g->valid;
	l->relay = g->local;
	l->auth_required = g->auth_required;
	l->max_rcpt_local = g->max_rcpt_local;
	l->max_rcpt_in = g->max_rcpt_in;
	l->max_msgs_local = g->max_msgs_local;
}

static int vp_connect(struct policy_call *c)
{
	struct buf b;
	buf_init(&b);
	c->why = "refused by SMTPScript Start";
	return vp_answer(c, rl_vp3_start(c->m, &b), &b); /* VPOP3's Start() */
}

static int vp_helo(struct policy_call *c)
{
	struct buf b;
	buf_init(&b);
	uint64_t max = policy_limits(c->p)->max_size;
	int code = rl_vp3_helo(c->m, c->arg, c->esmtp, &c->refuse, &max, &b);
	policy_set_max_size(c->p, max);
	return vp_answer(c, code, &b);
}

static int vp_caps(struct policy_call *c)
{
	rl_vp3_caps(c->m, c->helo, &c->caps);
	return POLICY_NEXT;
}

/* MaxMessagesPerLocalSession, then DoMAILFROM, which may rewrite addr. */
static int vp_mail(struct policy_call *c)
{
	struct buf b;
	int most = rl_vp3_vars(c->m)->max_msgs_local;
	if (most && c->nmsgs >= most && policy_local(c->p, c->user)) {
		buf_printf(&c->reply, "452 4.5.3 Error: too many messages in this session\r\n");
		return 452;
	}
	const char *spf = policy_results(c->p)->spf;
	buf_init(&b);
	return vp_answer(c,
	        rl_vp3_mail(c->m, c->arg + 5, spf ? spf : "none", c->addr, sizeof c->addr,
	                c->params, c->user, &b),
	        &b);
}

static int vp_rcpt(struct policy_call *c)
{
	struct buf b;
	buf_init(&b);
	return vp_answer(c, rl_vp3_rcpt(c->m, c->arg + 3, c->addr, c->params, c->msg, &b), &b);
}

static int vp_data(struct policy_call *c)
{
	struct rl_vp3 *v = c->m;
	struct buf b;
	buf_init(&b);
	int code = vp_answer(c, rl_vp3_data(v, c->msg, &c->below, &b), &b);
	if (code < 400) {
		v->line_len = 0;
		v->too_long = 0;
		rl_vp3_line(v, "StartMessage", NULL, 0);
	}
	return code;
}

/* MessageLineRaw, MessageLine and the MaxLineLength count. */
static void vp_body(
        void *m, const char *raw, size_t rawlen, const char *line, size_t len, int start)
{
	struct rl_vp3 *v = m;
	int max = v->vars.max_line;
	int complete = raw[rawlen - 1] == '\n';
	int eol = complete + (complete && rawlen >= 2 && raw[rawlen - 2] == '\r');
	v->line_len = (start ? 0 : v->line_len) + rawlen - (size_t)eol;
	if (max && v->line_len > (uint64_t)max) {
		v->too_long = 1;
	}
	rl_vp3_line(v, "MessageLineRaw", raw, rawlen);
	rl_vp3_line(v, "MessageLine", line, len);
}

/* EndMessage, CheckRecipients and ProcessMessage. */
static int vp_eom(struct policy_call *c)
{
	struct rl_vp3 *v = c->m;
	struct buf b;
	if (v->too_long) {
		buf_printf(&c->reply, "552 5.6.0 Error: line longer than MaxLineLength\r\n");
		return 552;
	}
	rl_vp3_line(v, "EndMessage", NULL, 0);
	buf_init(&b);
	int rc = rl_vp3_message(v, c->msg, c->user, &b);
	if (rc == 2) {
		/* smtp.c's result=discarded line says it at info */
		log_debug("%08x smtp message %016llx discarded by SMTPScript", c->s->id,
		        (unsigned long long)c->msg->qid);
		buf_free(&b);
		return POLICY_DISCARD;
	}
	if (rc) {
		log_debug("%08x smtp message refused by SMTPScript", c->s->id); /* and result=refused */
	}
	return vp_answer(c, rc, &b);
}

static int vp_auth(struct policy_call *c)
{
	if (rl_vp3_user_allowed(c->m, c->addr)) {
		return POLICY_NEXT;
	}
	log_info("%08x smtp login user=%s not in AllowedUsers", c->s->id, c->addr);
	buf_printf(&c->reply, "535 5.7.8 Error: authentication failed\r\n");
	return 535;
}

/* DoNOOP, DoRSET, DoQUIT, DoHELP(ours), DoVRFY and DoEXPN(arg, ours),
 * DoUnrecognised(line). */
static int vp_verb(struct policy_call *c)
{
	char fn[32];
	struct buf b;
	buf_init(&b);
	if (!c->verb) {
		return vp_answer(c, rl_vp3_simple(c->m, "DoUnrecognised", c->arg, &b), &b);
	}
	snprintf(fn, sizeof fn, "Do%s", c->verb);
	if (!strcmp(c->verb, "VRFY") || !strcmp(c->verb, "EXPN")) {
		return vp_answer(c, rl_vp3_verify(c->m, fn, c->arg, c->ours, &b), &b);
	}
	return vp_answer(
	        c, rl_vp3_simple(c->m, fn, strcmp(c->verb, "HELP") ? NULL : c->ours, &b), &b);
}

const struct policy_module rl_vp3_policy = {
        .name = "vpop3",
        .open = vp_open,
        .close = vp_close,
        .step =
                {
                        [POLICY_CONNECT] = vp_connect,
                        [POLICY_HELO] = vp_helo,
                        [POLICY_CAPS] = vp_caps,
                        [POLICY_MAIL] = vp_mail,
                        [POLICY_RCPT] = vp_rcpt,
                        [POLICY_DATA] = vp_data,
                        [POLICY_EOM] = vp_eom,
                        [POLICY_AUTH] = vp_auth,
                        [POLICY_VERB] = vp_verb,
                },
        .body = vp_body,
        .limits = vp_limits,
};
