/*
 * ldovecot.c - the Dovecot-style Lua API (shared/reference/dovecot-lua.txt)
 * on Rumble's store: i_debug/i_info/i_warning/i_error, dovecot.event()
 * events, the dovecot.storage constants, and the mail_user and mailbox
 * objects.
 *
 * As in Dovecot, a mail_user or mailbox is a table holding its fields
 * (user.username, box.vname) and an "item" userdata holding the C side,
 * so a script may add fields of its own. A script gets a mail_user when
 * an IMAP or POP3 user logs in: the global mail_user_created(user) is
 * called, and mail_user_deinit_pre(user) then mail_user_deinit(user) when
 * the session ends (rl_mail_user). script_load() is called after each
 * LoadScript file that defines it (runtime.c).
 *
 * An event is a userdata whose environment table holds its parent, name,
 * log prefix and fields; logging through it writes the prefixes of its
 * ancestors and its own (a replaced prefix hides the ones above it) and,
 * at LogLevel debug, the event's name and fields.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"

#define EVENT_MT "rumble.dovecot.event"
#define USER_MT "rumble.dovecot.mail_user"
#define USER_ITEM "rumble.dovecot.mail_user.item"
#define BOX_MT "rumble.dovecot.mailbox"
#define BOX_ITEM "rumble.dovecot.mailbox.item"
#define PREFIX_MAX 256

/* ---- i_debug and friends ---- */

static int log_at(lua_State *L, int level)
{
	log_msg(level, "script: %s", luaL_checkstring(L, 1));
	return 0;
}

static int i_debug(lua_State *L)
{
	return log_at(L, LOG_DEBUG);
}

static int i_info(lua_State *L)
{
	return log_at(L, LOG_INFO);
}

static int i_warning(lua_State *L)
{
	return log_at(L, LOG_WARN);
}

static int i_error(lua_State *L)
{
	return log_at(L, LOG_ERROR);
}

/* ---- events ---- */

struct event {
	int passthrough; /* made by passthrough_event(): no passthrough_event of its own */
};

/* Pushes a new event with parent at index parent (0: none). */
static void event_push(lua_State *L, int parent, int passthrough)
{
	struct event *e = lua_newuserdata(L, sizeof *e);
	e->passthrough = passthrough;
	luaL_getmetatable(L, EVENT_MT);
	lua_setmetatable(L, -2);
	lua_createtable(L, 0, 4);
	if (parent) {
		lua_pushvalue(L, parent);
		lua_setfield(L, -2, "parent");
	}
	lua_newtable(L);
	lua_setfield(L, -2, "fields");
	lua_setfenv(L, -2);
}

static struct event *event_check(lua_State *L)
{
	return luaL_checkudata(L, 1, EVENT_MT);
}

/* Pushes field k of event i's environment. */
static void event_get(lua_State *L, int i, const char *k)
{
	lua_getfenv(L, i);
	lua_getfield(L, -1, k);
	lua_remove(L, -2);
}

static void event_set(lua_State *L, int i, const char *k, int value)
{
	lua_getfenv(L, i);
	lua_pushvalue(L, value);
	lua_setfield(L, -2, k);
	lua_pop(L, 1);
}

static int d_event(lua_State *L)
{
	if (!lua_isnoneornil(L, 1)) {
		luaL_checkudata(L, 1, EVENT_MT);
	}
	event_push(L, lua_isnoneornil(L, 1) ? 0 : 1, 0);
	return 1;
}

static int ev_self(lua_State *L)
{
	lua_settop(L, 1);
	return 1;
}

static int ev_append_log_prefix(lua_State *L)
{
	event_check(L);
	luaL_checkstring(L, 2);
	event_set(L, 1, "prefix", 2);
	lua_pushnil(L);
	event_set(L, 1, "replace", lua_gettop(L));
	return ev_self(L);
}

static int ev_replace_log_prefix(lua_State *L)
{
	event_check(L);
	luaL_checkstring(L, 2);
	event_set(L, 1, "prefix", 2);
	lua_pushboolean(L, 1);
	event_set(L, 1, "replace", lua_gettop(L));
	return ev_self(L);
}

static int ev_set_name(lua_State *L)
{
	event_check(L);
	luaL_checkstring(L, 2);
	event_set(L, 1, "name", 2);
	return ev_self(L);
}

/* fields[key] = the value at index v */
static int ev_field(lua_State *L, int v)
{
	event_check(L);
	luaL_checkstring(L, 2);
	event_get(L, 1, "fields");
	lua_pushvalue(L, 2);
	lua_pushvalue(L, v);
	lua_settable(L, -3);
	return ev_self(L);
}

static int ev_add_str(lua_State *L)
{
	luaL_checkstring(L, 3);
	return ev_field(L, 3);
}

static int ev_add_int(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)luaL_checknumber(L, 3));
	return ev_field(L, lua_gettop(L));
}

static int ev_add_timeval(lua_State *L)
{
	return ev_add_int(L);
}

static int ev_inc_int(lua_State *L)
{
	event_check(L);
	luaL_checkstring(L, 2);
	lua_Number diff = luaL_checknumber(L, 3);
	event_get(L, 1, "fields");
	lua_pushvalue(L, 2);
	lua_gettable(L, -2);
	lua_pushinteger(L, (lua_Integer)(lua_tonumber(L, -1) + diff));
	return ev_field(L, lua_gettop(L));
}

/* Pushes the log prefixes of the event at i and its ancestors, the
 * outermost first (a replaced prefix hides the ones above); returns how
 * many. */
static int push_prefixes(lua_State *L, int i, int depth)
{
	int n = 0;
	event_get(L, i, "replace");
	int replace = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (!replace && depth < 32) {
		event_get(L, i, "parent");
		int p = lua_gettop(L);
		n = lua_isnil(L, p) ? 0 : push_prefixes(L, p, depth + 1);
		lua_remove(L, p);
	}
	event_get(L, i, "prefix");
	if (lua_isstring(L, -1)) {
		return n + 1;
	}
	lua_pop(L, 1);
	return n;
}

/* Copies into the table at m the fields of the event at i and of its
 * ancestors, the nearer ones overriding; sets m.name to the nearest name. */
static void merge_fields(lua_State *L, int m, int i, int depth)
{
	event_get(L, i, "parent");
	if (!lua_isnil(L, -1) && depth < 32) {
		merge_fields(L, m, lua_gettop(L), depth + 1);
	}
	lua_pop(L, 1);
	event_get(L, i, "name");
	if (lua_isstring(L, -1)) {
		lua_setfield(L, m, " name"); /* no field name has a space */
	} else {
		lua_pop(L, 1);
	}
	event_get(L, i, "fields");
	for (lua_pushnil(L); lua_next(L, -2);) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, m);
	}
	lua_pop(L, 1);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Pushes " {name key=value ...}" for a debug log, the fields sorted; ""
 * when the event and its ancestors have neither. */
static void push_fields(lua_State *L)
{
	lua_newtable(L);
	int m = lua_gettop(L);
	merge_fields(L, m, 1, 0);
	const char *keys[64];
	size_t n = 0;
	for (lua_pushnil(L); lua_next(L, m); lua_pop(L, 1)) {
		if (n < 64 && strcmp(lua_tostring(L, -2), " name") != 0) {
			keys[n++] = lua_tostring(L, -2); /* kept alive by the table */
		}
	}
	lua_getfield(L, m, " name");
	if (n || !lua_isnil(L, -1)) {
		qsort(keys, n, sizeof keys[0], by_name);
		lua_pushfstring(L, " {%s", lua_isnil(L, -1) ? "" : lua_tostring(L, -1));
		for (size_t k = 0; k < n; k++) {
			lua_getfield(L, m, keys[k]);
			lua_pushfstring(L, " %s=%s", keys[k], lua_tostring(L, -1)); /* numbers convert */
			lua_remove(L, -2);
			lua_concat(L, 2);
		}
		lua_pushliteral(L, "}");
		lua_concat(L, 2);
	} else {
		lua_pushliteral(L, "");
	}
	lua_remove(L, -2); /* the name */
	lua_remove(L, m);
}

static int ev_log(lua_State *L, int level)
{
	event_check(L);
	luaL_checkstring(L, 2);
	int top = lua_gettop(L);
	push_prefixes(L, 1, 0);
	lua_pushvalue(L, 2);
	if (conf.log_level >= LOG_DEBUG) {
		push_fields(L);
	}
	lua_concat(L, lua_gettop(L) - top);
	log_msg(level, "script: %s", lua_tostring(L, -1));
	return 0;
}

static int ev_log_debug(lua_State *L)
{
	return ev_log(L, LOG_DEBUG);
}

static int ev_log_info(lua_State *L)
{
	return ev_log(L, LOG_INFO);
}

static int ev_log_warning(lua_State *L)
{
	return ev_log(L, LOG_WARN);
}

static int ev_log_error(lua_State *L)
{
	return ev_log(L, LOG_ERROR);
}

static int ev_passthrough_event(lua_State *L)
{
	if (event_check(L)->passthrough) {
		return luaL_error(L, "a passthrough event has no passthrough_event()");
	}
	event_push(L, 1, 1);
	return 1;
}

static int ev_index(lua_State *L)
{
	struct event *e = event_check(L);
	const char *k = luaL_checkstring(L, 2);
	if (e->passthrough && strcmp(k, "passthrough_event") == 0) {
		return 0;
	}
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "methods");
	lua_getfield(L, -1, k);
	return 1;
}

static const luaL_Reg event_methods[] = {
	{"append_log_prefix", ev_append_log_prefix},
	{"replace_log_prefix", ev_replace_log_prefix},
	{"set_name", ev_set_name},
	{"add_str", ev_add_str},
	{"add_int", ev_add_int},
	{"add_timeval", ev_add_timeval},
	{"inc_int", ev_inc_int},
	{"log_debug", ev_log_debug},
	{"log_info", ev_log_info},
	{"log_warning", ev_log_warning},
	{"log_error", ev_log_error},
	{"passthrough_event", ev_passthrough_event},
	{NULL, NULL},
};

/* ---- dovecot.storage ---- */

static const struct {
	const char *name;
	int value;
} storage_consts[] = {
	{"STATUS_MESSAGES", 0x01},
	{"STATUS_RECENT", 0x02},
	{"STATUS_UIDNEXT", 0x04},
	{"STATUS_UIDVALIDITY", 0x08},
	{"STATUS_UNSEEN", 0x10},
	{"STATUS_FIRST_UNSEEN_SEQ", 0x20},
	{"STATUS_KEYWORDS", 0x40},
	{"STATUS_HIGHESTMODSEQ", 0x80},
	{"STATUS_PERMANENT_FLAGS", 0x200},
	{"STATUS_FIRST_RECENT_UID", 0x400},
	{"STATUS_HIGHESTPVTMODSEQ", 0x2000},
	{"MAILBOX_FLAG_READONLY", 0x01},
	{"MAILBOX_FLAG_SAVEONLY", 0x02},
	{"MAILBOX_FLAG_DROP_RECENT", 0x04},
	{"MAILBOX_FLAG_NO_INDEX_FILES", 0x08},
	{"MAILBOX_FLAG_KEEP_LOCKED", 0x10},
	{"MAILBOX_FLAG_IGNORE_ACLS", 0x20},
	{"MAILBOX_FLAG_AUTO_CREATE", 0x40},
	{"MAILBOX_FLAG_AUTO_SUBSCRIBE", 0x80},
	{"MAILBOX_SYNC_FLAG_FULL_READ", 0x01},
	{"MAILBOX_SYNC_FLAG_FULL_WRITE", 0x02},
	{"MAILBOX_SYNC_FLAG_FAST", 0x04},
	{"MAILBOX_SYNC_FLAG_NO_EXPUNGES", 0x08},
	{"MAILBOX_SYNC_FLAG_FIX_INCONSISTENT", 0x40},
	{"MAILBOX_SYNC_FLAG_EXPUNGE", 0x80},
	{"MAILBOX_SYNC_FLAG_FORCE_RESYNC", 0x100},
};
#define BOX_AUTO_CREATE 0x40
#define BOX_AUTO_SUBSCRIBE 0x80
#define SYNC_EXPUNGE 0x80

static void push_storage(lua_State *L)
{
	lua_newtable(L);
	for (size_t i = 0; i < sizeof storage_consts / sizeof storage_consts[0]; i++) {
		lua_pushinteger(L, storage_consts[i].value);
		lua_setfield(L, -2, storage_consts[i].name);
	}
	lua_pushliteral(L, "vendor/vendor.dovecot/");
	lua_setfield(L, -2, "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT");
	lua_pushliteral(L, "vendor/vendor.dovecot/pvt/");
	lua_setfield(L, -2, "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT");
	lua_pushliteral(L, "vendor/vendor.dovecot/pvt/server/");
	lua_setfield(L, -2, "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER");
}

/* ---- mail_user ---- */

struct muser {
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1];
	char service[16], remote[64], local[64], session[16];
};

struct mbox_item {
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1];
	char name[MM_FOLDER_MAX + 1];
	int flags;
	struct mm_folder *f; /* NULL until open() */
	int freed;
};

/* The item of the object table at index i, checked against mt. */
static void *item(lua_State *L, int i, const char *mt, const char *what)
{
	luaL_checktype(L, i, LUA_TTABLE);
	lua_getfield(L, i, "item");
	void *p = lua_touserdata(L, -1);
	if (!p || !lua_getmetatable(L, -1)) {
		luaL_error(L, "bad argument #%d (%s expected)", i, what);
	}
	luaL_getmetatable(L, mt);
	int same = lua_rawequal(L, -1, -2);
	lua_pop(L, 3);
	if (!same) {
		luaL_error(L, "bad argument #%d (%s expected)", i, what);
	}
	return p;
}

static struct muser *user_check(lua_State *L)
{
	return item(L, 1, USER_ITEM, "mail_user");
}

/* The user's folder (Dovecot's home). */
static void push_home(lua_State *L, const struct muser *u)
{
	char path[1500];
	if (mm_user_file(u->domain, u->user, "", path, sizeof path) == 0) {
		size_t n = strlen(path);
		lua_pushlstring(L, path, n && path[n - 1] == '/' ? n - 1 : n);
	} else {
		lua_pushnil(L);
	}
}

static void push_user(lua_State *L, const struct muser *src)
{
	lua_createtable(L, 0, 16);
	struct muser *u = lua_newuserdata(L, sizeof *u);
	*u = *src;
	luaL_getmetatable(L, USER_ITEM);
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, "item");
	lua_pushfstring(L, "%s@%s", u->user, u->domain);
	lua_setfield(L, -2, "username");
	push_home(L, u);
	lua_setfield(L, -2, "home");
	rl_set_num(L, "uid", 0);
	rl_set_num(L, "gid", 0);
	rl_set_str(L, "service", u->service);
	rl_set_str(L, "session_id", u->session);
	rl_set_num(L, "session_create_time", (lua_Integer)os_time());
	rl_set_bool(L, "nonexistent", 0);
	rl_set_bool(L, "anonymous", 0);
	rl_set_bool(L, "autocreated", 0);
	rl_set_bool(L, "mail_debug", conf.log_level >= LOG_DEBUG);
	rl_set_bool(L, "dsyncing", 0);
	rl_set_bool(L, "session_restored", 0);
	luaL_getmetatable(L, USER_MT);
	lua_setmetatable(L, -2);
}

static int u_plugin_getenv(lua_State *L)
{
	user_check(L);
	const char *v = config_get(&conf.raw, luaL_checkstring(L, 2));
	if (v) {
		lua_pushstring(L, v);
	} else {
		lua_pushnil(L);
	}
	return 1;
}

/* The value of %x or %{name} for user u; NULL when unknown. */
static const char *var_value(lua_State *L, const struct muser *u, const char *name)
{
	static const struct {
		const char *names[2];
		size_t off;
	} vars[] = {
		{{"n", "username"}, offsetof(struct muser, user)},
		{{"d", "domain"}, offsetof(struct muser, domain)},
		{{"s", "service"}, offsetof(struct muser, service)},
		{{"r", "rip"}, offsetof(struct muser, remote)},
		{{"l", "lip"}, offsetof(struct muser, local)},
		{{"", "session"}, offsetof(struct muser, session)},
	};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		if (strcmp(name, vars[i].names[0]) == 0 || strcmp(name, vars[i].names[1]) == 0) {
			return (const char *)u + vars[i].off;
		}
	}
	if (strcmp(name, "u") == 0 || strcmp(name, "user") == 0) {
		return lua_pushfstring(L, "%s@%s", u->user, u->domain);
	}
	if (strcmp(name, "h") == 0 || strcmp(name, "home") == 0) {
		push_home(L, u);
		return lua_tostring(L, -1);
	}
	return NULL;
}

/* %u %n %d %h %s %r %l %%, and %{user} %{username} %{domain} %{home}
 * %{service} %{rip} %{lip} %{session}; an unknown variable stays as
 * written. */
static int u_var_expand(lua_State *L)
{
	const struct muser *u = user_check(L);
	const char *t = luaL_checkstring(L, 2);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	while (*t) {
		const char *v = NULL;
		char name[32] = "";
		size_t used = 1;
		if (t[0] == '%' && t[1] == '{' && strchr(t, '}') && strchr(t, '}') - t - 2 < 31) {
			used = (size_t)(strchr(t, '}') - t) + 1;
			memcpy(name, t + 2, used - 3);
			name[used - 3] = '\0';
		} else if (t[0] == '%' && t[1]) {
			name[0] = t[1];
			name[1] = '\0';
			used = 2;
		}
		if (strcmp(name, "%") == 0) {
			luaL_addchar(&b, '%');
		} else if (*name && (v = var_value(L, u, name)) != NULL) {
			luaL_addstring(&b, v);
		} else {
			luaL_addlstring(&b, t, used);
		}
		t += used;
	}
	luaL_pushresult(&b);
	return 1;
}

/* ---- mailbox ---- */

static struct mbox_item *box_check(lua_State *L)
{
	struct mbox_item *m = item(L, 1, BOX_ITEM, "mailbox");
	if (m->freed) {
		luaL_error(L, "mailbox %s was freed", m->name);
	}
	return m;
}

static int u_mailbox(lua_State *L)
{
	const struct muser *u = user_check(L);
	const char *name = luaL_checkstring(L, 2);
	int flags = (int)luaL_optinteger(L, 3, 0);
	if (rl_strcasecmp(name, "INBOX") == 0) {
		name = "INBOX";
	} else if (!mm_valid_folder(name)) {
		return luaL_error(L, "mailbox(): invalid mailbox name");
	}
	lua_createtable(L, 0, 3);
	struct mbox_item *m = lua_newuserdata(L, sizeof *m);
	memset(m, 0, sizeof *m);
	rl_strlcpy(m->user, u->user, sizeof m->user);
	rl_strlcpy(m->domain, u->domain, sizeof m->domain);
	rl_strlcpy(m->name, name, sizeof m->name);
	m->flags = flags;
	luaL_getmetatable(L, BOX_ITEM);
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, "item");
	rl_set_str(L, "vname", name);
	rl_set_str(L, "name", name);
	luaL_getmetatable(L, BOX_MT);
	lua_setmetatable(L, -2);
	return 1;
}

static int box_open_folder(struct mbox_item *m)
{
	if (m->f) {
		return 0;
	}
	int create = strcmp(m->name, "INBOX") == 0;
	if (!create && (m->flags & BOX_AUTO_CREATE)) {
		create = mm_folder_create(m->domain, m->user, m->name) >= 0;
		if (create && (m->flags & BOX_AUTO_SUBSCRIBE)) {
			mm_subscription_set(m->domain, m->user, m->name, 1);
		}
	}
	return mm_folder_open(m->domain, m->user, m->name, create, &m->f);
}

static int b_open(lua_State *L)
{
	struct mbox_item *m = box_check(L);
	if (box_open_folder(m) != 0) {
		return luaL_error(L, "mailbox_open(%s) failed: Mailbox doesn't exist", m->name);
	}
	return 0;
}

static int b_close(lua_State *L)
{
	struct mbox_item *m = box_check(L);
	mm_folder_close(m->f);
	m->f = NULL;
	return 0;
}

static int b_free(lua_State *L)
{
	struct mbox_item *m = box_check(L);
	mm_folder_close(m->f);
	m->f = NULL;
	m->freed = 1;
	return 0;
}

static int b_sync(lua_State *L)
{
	struct mbox_item *m = box_check(L);
	int flags = (int)luaL_optinteger(L, 2, 0);
	/* Dovecot's mailbox_sync() opens the mailbox first when it is not */
	if (box_open_folder(m) != 0) {
		return luaL_error(L, "mailbox_sync(%s) failed: Mailbox doesn't exist", m->name);
	}
	if (mm_folder_refresh(m->f) != 0 ||
	        ((flags & SYNC_EXPUNGE) && !(m->flags & 0x01) && mm_folder_expunge(m->f) < 0)) {
		return luaL_error(L, "mailbox_sync(%s) failed", m->name);
	}
	return 0;
}

static void push_keywords(lua_State *L, struct mm_folder *f)
{
	lua_newtable(L);
	for (int i = 0, n = 0; i < 32; i++) {
		const char *kw = mm_folder_keyword_name(f, i);
		if (kw) {
			lua_pushstring(L, kw);
			lua_rawseti(L, -2, ++n);
		}
	}
}

/* The table Dovecot fills, all of it whatever was asked (cheap here). */
static void push_status(lua_State *L, const struct mbox_item *m, struct mm_folder *f)
{
	uint32_t n = mm_folder_count(f), unseen = 0, first_unseen = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *x = mm_folder_msg(f, i); /* NULL: expunged by another thread */
		if (x && !(x->flags & MM_SEEN) && unseen++ == 0) {
			first_unseen = i + 1;
		}
	}
	const int flags = MM_SEEN | MM_ANSWERED | MM_FLAGGED | MM_DELETED | MM_DRAFT;
	lua_createtable(L, 0, 22);
	rl_set_str(L, "mailbox", m->name);
	rl_set_num(L, "messages", n);
	rl_set_num(L, "recent", 0); /* Rumble keeps no \Recent */
	rl_set_num(L, "unseen", unseen);
	rl_set_num(L, "uidvalidity", mm_folder_uidvalidity(f));
	rl_set_num(L, "uidnext", mm_folder_uidnext(f));
	rl_set_num(L, "first_unseen_seq", first_unseen);
	rl_set_num(L, "first_recent_uid", mm_folder_uidnext(f));
	rl_set_num(L, "highest_modseq", 0);
	rl_set_num(L, "highest_pvt_modseq", 0);
	rl_set_num(L, "permanent_flags", flags);
	rl_set_num(L, "flags", flags);
	rl_set_bool(L, "permanent_keywords", 1);
	rl_set_bool(L, "allow_new_keywords", 1);
	rl_set_bool(L, "nonpermanent_modseqs", 0);
	rl_set_bool(L, "no_modseq_tracking", 1);
	rl_set_bool(L, "have_guids", 0);
	rl_set_bool(L, "have_save_guids", 0);
	rl_set_bool(L, "have_only_guid128", 0);
	push_keywords(L, f);
	lua_setfield(L, -2, "keywords");
}

static int b_status(lua_State *L)
{
	struct mbox_item *m = box_check(L);
	for (int i = 2; i <= lua_gettop(L); i++) {
		if (!lua_isnumber(L, i) && !lua_isstring(L, i)) {
			return luaL_argerror(L, i, "status item expected");
		}
	}
	/* opened when it was not, and left open, as Dovecot's mailbox_get_status() */
	if (box_open_folder(m) != 0) {
		return luaL_error(L, "mailbox_get_status(%s) failed: Mailbox doesn't exist", m->name);
	}
	mm_folder_refresh(m->f);
	push_status(L, m, m->f);
	return 1;
}

static int box_gc(lua_State *L)
{
	struct mbox_item *m = lua_touserdata(L, 1);
	mm_folder_close(m->f);
	m->f = NULL;
	return 0;
}

/* ---- metadata: the user's (folder "") and a mailbox's ---- */

/* The owner of the object at index 1 and the folder its metadata is on. */
static void md_owner(lua_State *L, const char **domain, const char **user, const char **folder)
{
	lua_getmetatable(L, 1);
	luaL_getmetatable(L, USER_MT);
	int is_user = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	if (is_user) {
		struct muser *u = user_check(L);
		*domain = u->domain, *user = u->user, *folder = "";
	} else {
		struct mbox_item *m = box_check(L);
		*domain = m->domain, *user = m->user, *folder = m->name;
	}
}

static const char *md_key(lua_State *L, int i)
{
	const char *key = luaL_checkstring(L, i);
	if (!md_valid_key(key)) {
		luaL_error(L, "metadata key must begin with /private/ or /shared/ (at most %d "
		              "printable bytes)", MD_KEY_MAX);
	}
	return key;
}

static int md_getter(lua_State *L)
{
	const char *domain, *user, *folder, *key = md_key(L, 2);
	char *v;
	size_t n;
	md_owner(L, &domain, &user, &folder);
	int rc = md_get(domain, user, folder, key, &v, &n);
	if (rc < 0) {
		return luaL_error(L, "metadata_get(%s) failed", key);
	}
	if (rc == 0) {
		lua_pushnil(L);
	} else {
		lua_pushlstring(L, v, n);
		free(v);
	}
	return 1;
}

static int md_change(lua_State *L, const char *v, size_t n)
{
	const char *domain, *user, *folder, *key = md_key(L, 2);
	md_owner(L, &domain, &user, &folder);
	if (v && n > MD_VALUE_MAX) {
		return luaL_error(L, "metadata value over %d bytes", MD_VALUE_MAX);
	}
	if (md_set(domain, user, folder, key, v, n) != 0) {
		return luaL_error(L, "metadata_set(%s) failed", key);
	}
	return 0;
}

static int md_setter(lua_State *L)
{
	size_t n = 0;
	const char *v = lua_isnoneornil(L, 3) ? NULL : luaL_checklstring(L, 3, &n);
	return md_change(L, v, n);
}

static int md_unsetter(lua_State *L)
{
	return md_change(L, NULL, 0);
}

static int list_one(const char *key, void *arg)
{
	lua_State *L = arg;
	lua_pushstring(L, key);
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	return 0;
}

/* metadata_list(prefix, ...): the keys under any of the prefixes */
static int md_lister(lua_State *L)
{
	const char *domain, *user, *folder;
	int n = lua_gettop(L);
	md_owner(L, &domain, &user, &folder);
	lua_newtable(L);
	for (int i = 2; i <= n; i++) {
		const char *p = luaL_checkstring(L, i);
		if (rl_strncasecmp(p, "/private", 8) != 0 && rl_strncasecmp(p, "/shared", 7) != 0) {
			return luaL_error(L, "metadata prefix must begin with /private/ or /shared/");
		}
		if (md_list(domain, user, folder, p, list_one, L) < 0) {
			return luaL_error(L, "metadata_list(%s) failed", p);
		}
	}
	return 1;
}

/* ---- metatables ---- */

static int user_tostring(lua_State *L)
{
	lua_getfield(L, 1, "username");
	return 1;
}

static int box_tostring(lua_State *L)
{
	lua_getfield(L, 1, "vname");
	return 1;
}

static int user_eq(lua_State *L)
{
	const struct muser *a = item(L, 1, USER_ITEM, "mail_user");
	const struct muser *b = item(L, 2, USER_ITEM, "mail_user");
	lua_pushboolean(L, rl_strcasecmp(a->user, b->user) == 0 && rl_strcasecmp(a->domain, b->domain) == 0);
	return 1;
}

static int box_eq(lua_State *L)
{
	const struct mbox_item *a = item(L, 1, BOX_ITEM, "mailbox");
	const struct mbox_item *b = item(L, 2, BOX_ITEM, "mailbox");
	lua_pushboolean(L, strcmp(a->name, b->name) == 0 && rl_strcasecmp(a->user, b->user) == 0 &&
	                           rl_strcasecmp(a->domain, b->domain) == 0);
	return 1;
}

static const luaL_Reg user_methods[] = {
	{"plugin_getenv", u_plugin_getenv},
	{"var_expand", u_var_expand},
	{"mailbox", u_mailbox},
	{"metadata_get", md_getter},
	{"metadata_set", md_setter},
	{"metadata_unset", md_unsetter},
	{"metadata_list", md_lister},
	{NULL, NULL},
};

static const luaL_Reg box_methods[] = {
	{"open", b_open},
	{"close", b_close},
	{"free", b_free},
	{"sync", b_sync},
	{"status", b_status},
	{"metadata_get", md_getter},
	{"metadata_set", md_setter},
	{"metadata_unset", md_unsetter},
	{"metadata_list", md_lister},
	{NULL, NULL},
};

/* An object metatable: __index the methods, __tostring, __eq. */
static void object_mt(lua_State *L, const char *name, const luaL_Reg *methods,
        lua_CFunction tostring, lua_CFunction eq)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_register(L, NULL, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, eq);
	lua_setfield(L, -2, "__eq");
	lua_pop(L, 1);
}

static void metatables(lua_State *L)
{
	luaL_newmetatable(L, EVENT_MT);
	lua_newtable(L);
	luaL_register(L, NULL, event_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, ev_index);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	object_mt(L, USER_MT, user_methods, user_tostring, user_eq);
	object_mt(L, BOX_MT, box_methods, box_tostring, box_eq);
	luaL_newmetatable(L, USER_ITEM);
	lua_pop(L, 1);
	luaL_newmetatable(L, BOX_ITEM);
	lua_pushcfunction(L, box_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}

/* see rl.h */
void rl_open_dovecot(lua_State *L)
{
	lua_register(L, "i_debug", i_debug);
	lua_register(L, "i_info", i_info);
	lua_register(L, "i_warning", i_warning);
	lua_register(L, "i_error", i_error);
	metatables(L);
	lua_newtable(L);
	lua_pushcfunction(L, d_event);
	lua_setfield(L, -2, "event");
	push_storage(L);
	lua_setfield(L, -2, "storage");
	lua_setglobal(L, "dovecot");
}

/* ---- the calls into scripts ---- */

/* Calls the global fn(user) if the script defines it. */
static void call_user_fn(struct rl_state *st, const char *fn, const struct muser *u)
{
	lua_State *L = st->L;
	lua_pushstring(L, fn); /* raw: a strict _G's __index must not raise here */
	lua_rawget(L, LUA_GLOBALSINDEX);
	if (!lua_isfunction(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	st->capped = 0; /* the argument must not fail outside the pcall */
	push_user(L, u);
	st->capped = 1;
	rl_call(L, 1, 0, fn);
}

/* see rumble.h */
void rl_mail_user(struct session *s, const char *login, int created)
{
	struct rl_state *st = conf.nscripts ? rl_state_get(session_worker(s)) : NULL;
	const char *at = login ? strrchr(login, '@') : NULL;
	if (!st || !at) {
		return;
	}
	struct muser u;
	memset(&u, 0, sizeof u);
	snprintf(u.user, sizeof u.user, "%.*s", (int)(at - login), login);
	rl_strlcpy(u.domain, at + 1, sizeof u.domain);
	rl_strlcpy(u.service, strcmp(s->svc->proto->name, "imap4") == 0 ? "imap" : s->svc->proto->name,
	        sizeof u.service);
	rl_strlcpy(u.remote, s->peer, sizeof u.remote);
	rl_strlcpy(u.local, s->local, sizeof u.local);
	snprintf(u.session, sizeof u.session, "%08x", (unsigned)s->id);
	if (created) {
		call_user_fn(st, "mail_user_created", &u);
	} else {
		call_user_fn(st, "mail_user_deinit_pre", &u);
		call_user_fn(st, "mail_user_deinit", &u);
	}
}
