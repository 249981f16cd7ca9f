/*
 * lrumble.c - the Rumble table: services, hooks, configuration and
 * server information (shared/reference/rumble-lua-api.txt).
 *
 * Services and hook registrations are process-wide, while every state
 * runs the scripts: the first state of a reload generation to register a
 * hook or create a service gets true, the others nil, and each state
 * keeps its own function (a session runs its worker's). All of it is
 * under one lock, as any worker may call.
 *
 * getmoduleconfig(name) returns the rumble.conf settings whose key names
 * the module (case-insensitive: "smtp" gives SMTPPort, EnableSMTP, ...)
 * with what setmoduleconfig(name, key, value) stored on top; stored
 * values live in memory until the server stops (rumble.conf is not
 * rewritten) and are what readConfig(key) returns from then on.
 */
#include <string.h>

#include "lua/rl.h"

#define SERVICES_MAX 32
#define CLAIMS_MAX 256

static struct entry {
	struct service *svc;
	int port;
	struct rl_lock *lock;
} services[SERVICES_MAX];
static int nservices;
static char *claims[CLAIMS_MAX]; /* keys registered in generation claims_gen */
static int nclaims;
static unsigned claims_gen;
static int64_t started_at;
static struct config overrides; /* setmoduleconfig: key "module.key" */

static os_mutex *reg_mx;

static void reg_lock(void)
{
	if (!reg_mx) {
		reg_mx = os_mutex_new(); /* first use is rl_service_add, before threads */
	}
	os_mutex_lock(reg_mx);
}

static void reg_unlock(void)
{
	os_mutex_unlock(reg_mx);
}

/* see rumble.h */
void rl_service_add(struct service *svc, int port)
{
	reg_lock();
	if (!started_at) {
		started_at = os_time();
	}
	if (nservices < SERVICES_MAX) {
		services[nservices++] = (struct entry){svc, port, rl_lock_new()};
	}
	reg_unlock();
}

static struct entry *find_entry(struct service *svc)
{
	for (int i = 0; i < nservices; i++) {
		if (services[i].svc == svc) {
			return &services[i];
		}
	}
	return NULL;
}

struct rl_lock *rl_service_lock(struct service *svc)
{
	reg_lock();
	struct entry *e = find_entry(svc);
	reg_unlock();
	return e ? e->lock : NULL;
}

struct service *rl_service_find(const char *name)
{
	struct service *svc = NULL;
	reg_lock();
	for (int i = 0; i < nservices && !svc; i++) {
		if (!rl_strcasecmp(services[i].svc->name, name)) {
			svc = services[i].svc;
		}
	}
	reg_unlock();
	return svc;
}

int rl_claim(const char *key)
{
	int first = 1;
	reg_lock();
	if (claims_gen != rl_generation()) {
		for (int i = 0; i < nclaims; i++) {
			free(claims[i]);
		}
		nclaims = 0;
		claims_gen = rl_generation();
	}
	for (int i = 0; i < nclaims && first; i++) {
		first = rl_strcasecmp(claims[i], key) != 0;
	}
	if (first && nclaims < CLAIMS_MAX) {
		claims[nclaims++] = xstrdup(key);
	}
	reg_unlock();
	return first;
}

int rl_claimed(const char *key)
{
	int found = 0;
	reg_lock();
	for (int i = 0; claims_gen == rl_generation() && i < nclaims && !found; i++) {
		found = rl_strcasecmp(claims[i], key) == 0;
	}
	reg_unlock();
	return found;
}

/* see rl.h; *created 1 when this call made it. */
static struct service *service_for_port(int port, int *created, char *err, size_t errlen)
{
	*created = 0;
	reg_lock();
	for (int i = 0; i < nservices; i++) {
		if (services[i].svc->proto == &rl_service_proto && services[i].port == port) {
			reg_unlock();
			return services[i].svc;
		}
	}
	struct service *svc = NULL;
	if (nservices == SERVICES_MAX) {
		snprintf(err, errlen, "too many services");
	} else {
		svc = xcalloc(1, sizeof *svc);
		char *name = xmalloc(16);
		snprintf(name, 16, "lua:%d", port);
		svc->name = name;
		svc->proto = &rl_service_proto;
		svc->port = port;
		if (server_listen(svc, conf.bind, conf.force_ipv4, err, errlen) != 0) {
			free(name);
			free(svc);
			svc = NULL;
		} else {
			/* A service lives as long as the process: the session layer
			 * keeps a pointer to it. */
			services[nservices++] = (struct entry){svc, port, rl_lock_new()};
			*created = 1;
			log_info("%s listening on %s:%d (Rumble.createService)", svc->name,
			        *conf.bind ? conf.bind : "*", port);
		}
	}
	reg_unlock();
	return svc;
}

void rl_rumble_free(void)
{
	reg_lock();
	for (int i = 0; i < nservices; i++) {
		rl_lock_free(services[i].lock);
		if (services[i].svc->proto == &rl_service_proto) {
			free((char *)services[i].svc->name);
			free(services[i].svc);
		}
	}
	nservices = 0;
	for (int i = 0; i < nclaims; i++) {
		free(claims[i]);
	}
	nclaims = 0;
	config_free(&overrides);
	reg_unlock();
}

/* ---- helpers ---- */

static struct service *check_service(lua_State *L, int arg)
{
	return rl_service_find(luaL_checkstring(L, arg));
}

static long load(volatile long *c)
{
	return os_atomic_load_long(c);
}

/* ---- services and hooks ---- */

/* Rumble.createService(fn, port[, threads]) */
static int r_createService(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_Integer port = luaL_checkinteger(L, 2);
	lua_Integer threads = luaL_optinteger(L, 3, 10);
	luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port out of range");
	luaL_argcheck(L, threads >= 0, 3, "thread count must not be negative");
	char err[256];
	int created;
	struct service *svc = service_for_port((int)port, &created, err, sizeof err);
	if (!svc) {
		log_warnx("Rumble.createService: port %d: %s", (int)port, err);
		lua_pushboolean(L, 0);
		return 1;
	}
	/* threadCount: sessions run on the workers, so it sizes nothing */
	lua_getfield(L, LUA_REGISTRYINDEX, RL_SERVICES);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, (int)port);
	char key[32];
	snprintf(key, sizeof key, "service/%d", (int)port);
	if (rl_claim(key) || created) {
		lua_pushboolean(L, 1);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

/* luaL_checkoption in any case: scripts write "SMTP" and "Command" too. */
static int check_option_nocase(lua_State *L, int arg, const char *const list[])
{
	const char *name = luaL_checkstring(L, arg);
	for (int i = 0; list[i]; i++) {
		if (!rl_strcasecmp(list[i], name)) {
			return i;
		}
	}
	return luaL_argerror(L, arg, lua_pushfstring(L, "invalid option '%s'", name));
}

/* Rumble.setHook(fn, svcName, when[, cmd]) */
static int r_setHook(lua_State *L)
{
	static const char *const whens[] = {"accept", "close", "command", "feed", "delivery", NULL};
	static const char *const svcs[] = {"smtp", "pop3", "imap4", "mailman", NULL};
	luaL_checktype(L, 1, LUA_TFUNCTION);
	int svc = check_option_nocase(L, 2, svcs);
	int when = check_option_nocase(L, 3, whens);
	const char *cmd = luaL_optstring(L, 4, "");
	if ((svc == 3) != (when >= 3)) {
		return luaL_argerror(L, 3, "\"feed\" and \"delivery\" go with \"mailman\", and only there");
	}
	char key[96], verb[48];
	if (rl_strlcpy(verb, when == 2 ? (*cmd ? cmd : "*") : "", sizeof verb) >= sizeof verb) {
		return luaL_argerror(L, 4, "command name too long");
	}
	rl_lower(verb);
	snprintf(key, sizeof key, "%s/%s/%s", svcs[svc], whens[when], verb);
	lua_getfield(L, LUA_REGISTRYINDEX, RL_HOOKS);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, key);
	if (rl_claim(key)) {
		lua_pushboolean(L, 1);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

static int r_startService(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		return rl_fail(L, "no such service");
	}
	char err[256];
	int ok = 1;
	reg_lock();
	struct entry *e = find_entry(svc);
	svc->suspended = 0;
	svc->port = e && !svc->nlfd ? e->port : svc->port;
	ok = server_relisten(svc, err, sizeof err) == 0;
	svc->enabled = ok;
	reg_unlock();
	if (!ok) {
		return rl_fail(L, "%s", err);
	}
	log_info("%s started by a script", svc->name);
	lua_pushboolean(L, 1);
	return 1;
}

/* Stopped (killed): the port closes and running sessions end, within a
 * second; startService listens again. */
static int r_stopService(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		return rl_fail(L, "no such service");
	}
	server_unlisten(svc);
	svc->enabled = 0;
	log_info("%s stopped by a script", svc->name);
	lua_pushboolean(L, 1);
	return 1;
}

static int r_suspendService(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		return rl_fail(L, "no such service");
	}
	svc->suspended = 1;
	log_info("%s suspended by a script", svc->name);
	lua_pushboolean(L, 1);
	return 1;
}

static int r_resumeService(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		return rl_fail(L, "no such service");
	}
	if (svc->enabled) {
		svc->suspended = 0;
		log_info("%s resumed by a script", svc->name);
	}
	lua_pushboolean(L, svc->enabled);
	return 1;
}

static void push_capabilities(lua_State *L, struct service *svc)
{
	static const char *smtp[] = {"EHLO", "PIPELINING", "SIZE", "8BITMIME",
	        "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH", NULL};
	static const char *pop3[] = {"USER", "UIDL", "TOP", "PIPELINING", "RESP-CODES",
	        "AUTH-RESP-CODE", "SASL", "STLS", NULL};
	static const char *none[] = {NULL};
	const char *p = svc->proto->name;
	const char **v = !strcmp(p, "smtp") ? smtp : !strcmp(p, "pop3") ? pop3 : none;
	lua_newtable(L);
	for (int i = 0; v[i]; i++) {
		lua_pushstring(L, v[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

/* Rumble.serviceInfo(name): sent and received are bytes. */
static int r_serviceInfo(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		lua_pushnil(L);
		return 1;
	}
	long busy = load(&svc->sessions);
	int workers = server_workers();
	lua_createtable(L, 0, 12);
	lua_pushboolean(L, svc->enabled && !svc->suspended);
	lua_setfield(L, -2, "enabled");
	lua_pushboolean(L, svc->suspended);
	lua_setfield(L, -2, "suspended");
	rl_set_str(L, "name", svc->name);
	rl_set_num(L, "port", svc->port);
	rl_set_num(L, "workers", workers);
	rl_set_num(L, "busy", (lua_Number)busy);
	rl_set_num(L, "idle", busy < workers ? workers - busy : 0);
	rl_set_num(L, "sessions", (lua_Number)load(&svc->total));
	rl_set_num(L, "sent", (lua_Number)load(&svc->bytes_out));
	rl_set_num(L, "received", (lua_Number)load(&svc->bytes_in));
	rl_set_num(L, "messages", (lua_Number)load(&svc->received));
	rl_set_num(L, "rejected", (lua_Number)load(&svc->rejected));
	push_capabilities(L, svc);
	lua_setfield(L, -2, "capabilities");
	return 1;
}

/* Rumble.trafficInfo(name) -> {received, sent} in bytes, or nil */
static int r_trafficInfo(lua_State *L)
{
	struct service *svc = check_service(L, 1);
	if (!svc) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 3);
	rl_set_num(L, "received", (lua_Number)load(&svc->bytes_in));
	rl_set_num(L, "sent", (lua_Number)load(&svc->bytes_out));
	rl_set_num(L, "sessions", (lua_Number)load(&svc->total));
	return 1;
}

/* ---- server information and configuration ---- */

static int r_serverInfo(lua_State *L)
{
	char path[1024] = "";
	if (os_exe_path(path, sizeof path) != 0) {
		path[0] = '\0';
	}
	lua_createtable(L, 0, 6);
	rl_set_str(L, "version", RUMBLE_VERSION);
	rl_set_str(L, "path", path);
	rl_set_num(L, "uptime", (lua_Number)(started_at ? os_time() - started_at : 0));
	rl_set_str(L, "os", os_name());
	rl_set_str(L, "arch", os_arch());
	rl_set_str(L, "name", conf.server_name);
	return 1;
}

/* Nothing that can raise a Lua error runs under reg_lock: the error would
 * leave it locked for good, and every worker waits on it at its next hook
 * (a state kept full made lua_pushstring raise there; luafuzz seed 3600).
 * What the registry holds is copied out first, then pushed with the
 * memory cap off (small, and the copy must not leak). */
static void push_uncapped(lua_State *L, const struct buf *pairs, int table)
{
	struct rl_state *st = rl_state_of(L);
	int capped = st ? st->capped : 0;
	if (st) {
		st->capped = 0;
	}
	for (size_t off = 0; off < pairs->len;) {
		const char *k = pairs->data + off, *v = k + strlen(k) + 1;
		off += strlen(k) + strlen(v) + 2;
		if (table) {
			rl_set_str(L, k, v);
		} else {
			lua_pushstring(L, v);
		}
	}
	if (st) {
		st->capped = capped;
	}
}

static void pair_add(struct buf *b, const char *k, const char *v)
{
	buf_append(b, k, strlen(k) + 1);
	buf_append(b, v, strlen(v) + 1);
}

static int r_readConfig(lua_State *L)
{
	const char *key = luaL_checkstring(L, 1);
	struct buf b;
	buf_init(&b);
	reg_lock();
	const char *v = config_get(&overrides, key);
	if (v || (v = config_get(&conf.raw, key)) != NULL) {
		pair_add(&b, key, v);
	}
	reg_unlock();
	if (b.len) {
		push_uncapped(L, &b, 0);
	} else {
		lua_pushnil(L);
	}
	buf_free(&b);
	return 1;
}

static void ring_line(const char *line, void *arg)
{
	lua_State *L = arg;
	lua_pushstring(L, line);
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
}

static int r_getLog(lua_State *L)
{
	lua_createtable(L, LOG_RING_LINES, 0);
	/* the lines are pushed under the log's lock: a memory error there
	 * would leave it held and stop every thread at its next log line */
	struct rl_state *st = rl_state_of(L);
	int capped = st->capped;
	st->capped = 0;
	log_ring_each(ring_line, L);
	st->capped = capped;
	return 1;
}

static int r_reloadConfiguration(lua_State *L)
{
	/* as SIGHUP, on the main thread; from top-level code the scripts are
	 * loading already (and a reload there would load them for ever) */
	if (!rl_state_of(L)->loading) {
		server_request_reload();
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const struct {
	const char *title, *description, *file;
} modules[] = {
        {"smtp", "SMTP server (RFC 5321): receiving mail, submission, SMTPS", "smtp.c"},
        {"pop3", "POP3 server (RFC 1939) with STLS and SASL", "pop3.c"},
        {"imap4", "IMAP4rev1 server (RFC 3501)", "imap.c"},
        {"mailman", "Domains, accounts, aliases and the mbox store", "mailman.c"},
        {"queue", "Durable mail queue and delivery", "queue.c"},
        {"dns", "DNS client: MX, A, AAAA, TXT, PTR", "dns.c"},
        {"tls", "TLS 1.2 on BearSSL, STARTTLS and implicit TLS", "crypto.c"},
        {"lua", "Lua 5.1 scripting: hooks, services, the Rumble API", "lua/runtime.c"},
};

static int r_listModules(lua_State *L)
{
	int n = (int)(sizeof modules / sizeof modules[0]);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_createtable(L, 0, 4);
		rl_set_str(L, "title", modules[i].title);
		rl_set_str(L, "description", modules[i].description);
		rl_set_str(L, "author", "Rumble");
		rl_set_str(L, "file", modules[i].file);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int r_getmoduleconfig(lua_State *L)
{
	const char *mod = luaL_checkstring(L, 1);
	size_t mlen = strlen(mod);
	lua_newtable(L);
	struct buf b;
	buf_init(&b);
	reg_lock(); /* see push_uncapped */
	for (const struct config_entry *e = conf.raw.head; e; e = e->next) {
		for (const char *p = e->key; mlen && *p; p++) {
			if (!rl_strncasecmp(p, mod, mlen)) {
				pair_add(&b, e->key, e->value);
				break;
			}
		}
	}
	for (const struct config_entry *e = overrides.head; e; e = e->next) {
		if (!rl_strncasecmp(e->key, mod, mlen) && e->key[mlen] == '.') {
			pair_add(&b, e->key + mlen + 1, e->value);
		}
	}
	reg_unlock();
	push_uncapped(L, &b, 1);
	buf_free(&b);
	return 1;
}

static int r_setmoduleconfig(lua_State *L)
{
	const char *mod = luaL_checkstring(L, 1);
	const char *key = luaL_checkstring(L, 2);
	const char *value = luaL_checkstring(L, 3);
	luaL_argcheck(L, !strpbrk(key, " \t\r\n") && *key, 2, "bad key");
	luaL_argcheck(L, !strpbrk(value, "\r\n"), 3, "line breaks are not allowed");
	char line[1200], err[256];
	snprintf(line, sizeof line, "%s.%s %s\n%s %s\n", mod, key, value, key, value);
	reg_lock();
	int rc = config_parse(&overrides, line, "setmoduleconfig", err, sizeof err);
	reg_unlock();
	if (rc != 0) {
		return rl_fail(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static const luaL_Reg rumble_funcs[] = {
        {"createService", r_createService},
        {"setHook", r_setHook},
        {"startService", r_startService},
        {"stopService", r_stopService},
        {"suspendService", r_suspendService},
        {"resumeService", r_resumeService},
        {"serviceInfo", r_serviceInfo},
        {"trafficInfo", r_trafficInfo},
        {"serverInfo", r_serverInfo},
        {"readConfig", r_readConfig},
        {"getLog", r_getLog},
        {"reloadConfiguration", r_reloadConfiguration},
        {"listModules", r_listModules},
        {"getmoduleconfig", r_getmoduleconfig},
        {"setmoduleconfig", r_setmoduleconfig},
        {NULL, NULL},
};

void rl_open_rumble(lua_State *L)
{
	luaL_register(L, "Rumble", rumble_funcs);
	lua_pop(L, 1);
}
