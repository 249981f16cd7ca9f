/*
 * lmailman.c - the Mailman table of Rumble's Lua API
 * (shared/reference/rumble-lua-api.txt): domains, accounts, the messages
 * of a mailbox, sending mail and the queue.
 *
 * Conventions. Arguments of the wrong type, and missing ones, raise a Lua
 * error (luaL_check*). What is not found returns false where the
 * reference says so (readAccount) or where the original returned a
 * boolean (createDomain, updateDomain, deleteDomain, saveAccount), and
 * nil elsewhere; both come with a message, as liolib.c does. An account
 * is {id, uid, name, domain, password, type, arguments} with the
 * original's type names: "mailbox", "alias", "feed", "relay", "module"
 * (saveAccount also takes mailman's "mbox" and "mod", as the reference's
 * example uses "mbox"). Message ids are the UIDs of the folder; the
 * folder is a name ("INBOX" when left out; 0, the original's INBOX id,
 * means it too).
 *
 * Memory. Any lua_push* may raise an error (a capped state running out of
 * memory) and never come back, so C memory held across pushes lives in a
 * scratch userdata whose __gc frees it (liolib.c's io_gc), and callbacks
 * of mm_*_list and queue_list only copy into the scratch: the tables are
 * built after the walk, never inside mailman's frames.
 *
 * Everything but sendMail runs on the calling thread and may wait for
 * the disk (account files, mbox reads), as the protocols do; sendMail's
 * wait for the queue's group commit is a job (jobs.c). sendMail needs the queue running (queue_start before scripts run,
 * queue_stop after they stopped).
 */
#include <string.h>
#include <time.h>

#include "rl.h"

#define SCRATCH "rumble.mailman.scratch"
#define HEADER_MAX (256 * 1024) /* bytes of a header block listHeaders reads */
#define RCPT_MAX 1000           /* recipients of one sendMail (queue.c keeps as many) */
#define ADDR_MAX (MM_USER_MAX + MM_DOMAIN_MAX + 2)
#define FIELD_NAME_MAX 128 /* header field names longer than this are skipped */

/* ---- scratch: C memory that a Lua error must not leak ---- */

struct scratch {
	struct buf b;        /* a message, a header block, or records from a walk */
	struct buf tmp, val; /* a header value: unfolded, then decoded */
	struct buf body;     /* a part's decoded body */
	struct mm_folder *f;
	struct mm_reader *r;
	struct mime_msg m; /* parsed from b when parsed is set */
	int parsed;
	struct queue_msg *qm;
};

/* Frees what s holds; s stays usable (empty). */
static void scratch_free(struct scratch *s)
{
	if (s->r) {
		mm_reader_close(s->r);
		s->r = NULL;
	}
	if (s->parsed) {
		mime_free(&s->m);
		s->parsed = 0;
	}
	if (s->f) {
		mm_folder_close(s->f);
		s->f = NULL;
	}
	queue_msg_free(s->qm);
	s->qm = NULL;
	buf_free(&s->b);
	buf_free(&s->tmp);
	buf_free(&s->val);
	buf_free(&s->body);
}

static int scratch_gc(lua_State *L)
{
	scratch_free(luaL_checkudata(L, 1, SCRATCH));
	return 0;
}

/* A new scratch on the top of the stack, where it stays until the
 * function returns: call scratch_free when done, the GC does otherwise. */
static struct scratch *scratch_new(lua_State *L)
{
	struct scratch *s = lua_newuserdata(L, sizeof *s);
	memset(s, 0, sizeof *s);
	luaL_getmetatable(L, SCRATCH);
	lua_setmetatable(L, -2);
	return s;
}

/* ---- small helpers ---- */

static void push_buf(lua_State *L, const struct buf *b)
{
	lua_pushlstring(L, b->data ? b->data : "", b->len);
}

/* false and a message: rl_fail's convention where the original returned
 * a boolean. */
static int fail_false(lua_State *L, const char *fmt, const char *arg)
{
	rl_fail(L, fmt, arg);
	lua_pushboolean(L, 0);
	lua_replace(L, -3);
	return 2;
}

/* A name (domain, user, folder) at index i; a NUL byte inside is an
 * error, not a shorter name. */
static const char *name_arg(lua_State *L, int i)
{
	size_t n;
	const char *s = luaL_checklstring(L, i, &n);
	if (strlen(s) != n) {
		luaL_argerror(L, i, "a name with a NUL byte");
	}
	return s;
}

/* An id (account uid, message uid) at index i: a whole number 1..2^32-1,
 * else 0, which nothing has. Raises when it is not a number. */
static uint32_t id_arg(lua_State *L, int i)
{
	lua_Number v = luaL_checknumber(L, i);
	return v >= 1 && v <= 4294967295.0 && v == (lua_Number)(uint32_t)v ? (uint32_t)v : 0;
}

/* ---- domains ---- */

struct domain_find {
	const char *name;
	struct mm_domain *out;
	int found;
};

static int domain_match(const struct mm_domain *d, void *arg)
{
	struct domain_find *df = arg;
	if (rl_strcasecmp(d->name, df->name) == 0) {
		*df->out = *d;
		df->found = 1;
		return 1;
	}
	return 0;
}

static int domain_get(const char *name, struct mm_domain *out)
{
	struct domain_find df = {name, out, 0};
	mm_domain_list(domain_match, &df);
	return df.found ? 0 : -1;
}

static int collect_domain(const struct mm_domain *d, void *arg)
{
	struct scratch *s = arg;
	buf_append(&s->b, d->name, strlen(d->name) + 1);
	return 0;
}

/* Pushes a list of the NUL-terminated strings in b. */
static void push_names(lua_State *L, const struct buf *b)
{
	int n = 0;
	lua_newtable(L);
	for (size_t off = 0; off < b->len; off += strlen(b->data + off) + 1) {
		lua_pushstring(L, b->data + off);
		lua_rawseti(L, -2, ++n);
	}
}

/* Mailman.listDomains(): {"example.org", ...} */
static int lm_list_domains(lua_State *L)
{
	struct scratch *s = scratch_new(L);
	mm_domain_list(collect_domain, s);
	push_names(L, &s->b);
	scratch_free(s);
	return 1;
}

/* Mailman.createDomain(name[, path[, flags]]): true, or false and why
 * (it exists already, the name is invalid). mailman has no call that
 * sets a domain's storage path or flags yet, so asking for them fails
 * rather than being ignored; "" and 0 are the defaults. */
static int lm_create_domain(lua_State *L)
{
	const char *name = name_arg(L, 1);
	const char *path = luaL_optstring(L, 2, "");
	lua_Number flags = luaL_optnumber(L, 3, 0);
	char err[256];
	if (*path || flags != 0) {
		return fail_false(L, "%s: a storage path or flags cannot be set yet", name);
	}
	if (mm_domain_add(name, err, sizeof err) != 0) {
		return fail_false(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Mailman.deleteDomain(name): true, or false when there is no such
 * domain. Its accounts go with it; mail stays on disk (as with the CLI). */
static int lm_delete_domain(lua_State *L)
{
	const char *name = name_arg(L, 1);
	char err[256];
	if (!mm_domain_exists(name)) {
		return fail_false(L, "no such domain: %s", name);
	}
	if (mm_domain_del(name, err, sizeof err) != 0) {
		return fail_false(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Moves a mail folder tree from to to, making to's parent first: 0 when
 * from does not exist, 1 when moved, -1 with err filled. An empty
 * leftover at to is replaced; a folder with something in it is not. */
static int move_dir(const char *from, const char *to, char *err, size_t errlen)
{
	char parent[1100];
	struct os_stat st;
	rl_strlcpy(parent, to, sizeof parent);
	char *slash = strrchr(parent, '/');
	if (slash) {
		*slash = '\0';
	}
	if (os_stat(from, &st) != 0) {
		return 0;
	}
	if (os_stat(to, &st) == 0 && os_rmdir(to) != 0) {
		snprintf(err, errlen, "%s exists already", to);
		return -1;
	}
	if ((slash && os_mkdir_p(parent) != 0) || os_rename_atomic(from, to) != 0) {
		snprintf(err, errlen, "cannot move %s to %s: %s", from, to, os_strerror());
		return -1;
	}
	if (slash) {
		os_fsync_dir(parent); /* the rename must survive a crash */
	}
	return 1;
}

static int collect_account(const struct mm_account *a, void *arg)
{
	struct scratch *s = arg;
	buf_append(&s->b, a, sizeof *a);
	return 0;
}

/* Gives every account of domain from the domain to; the first error
 * stops it. */
static int move_accounts(struct scratch *s, const char *to, char *err, size_t errlen)
{
	for (size_t off = 0; off + sizeof(struct mm_account) <= s->b.len;
	        off += sizeof(struct mm_account)) {
		struct mm_account a;
		memcpy(&a, s->b.data + off, sizeof a);
		rl_strlcpy(a.domain, to, sizeof a.domain);
		if (mm_account_save(&a, err, errlen) != 0) {
			return -1;
		}
	}
	return 0;
}

/* Renames domain d to name: the new domain, its mail folder moved over,
 * the accounts (ids kept) moved, the old domain deleted. mailman keeps
 * mail under the domain's name, so the folder must follow. A crash in
 * between leaves both domains; the old one still holds what was not
 * moved. */
static int rename_domain(lua_State *L, const struct mm_domain *d, const char *name)
{
	char err[256] = "invalid domain name", from[1024], to[1024];
	if (d->path[0]) {
		return fail_false(L, "%s has its own storage path; move it by hand", d->name);
	}
	struct scratch *s = scratch_new(L);
	mm_account_list(d->name, collect_account, s);
	if (mm__domain_dir(d->name, from, sizeof from) != 0 ||
	        mm_domain_add(name, err, sizeof err) != 0) {
		scratch_free(s);
		return fail_false(
		        L, "%s", mm_domain_exists(name) ? "the new name exists already" : err);
	}
	if (mm__domain_dir(name, to, sizeof to) != 0 || move_dir(from, to, err, sizeof err) < 0) {
		mm_domain_del(name, NULL, 0);
		scratch_free(s);
		return fail_false(L, "%s", err);
	}
	int rc = move_accounts(s, name, err, sizeof err);
	scratch_free(s);
	if (rc != 0 || mm_domain_del(d->name, err, sizeof err) != 0) {
		return fail_false(L, "renaming stopped halfway: %s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Mailman.updateDomain(name, newname[, newpath]): renames a domain, with
 * its accounts and mail, as the original's updateDomain(domain, newname,
 * newpath) did. true, or false and why. A new storage path cannot be set
 * yet (mailman has no call for it): a non-empty newpath fails. */
static int lm_update_domain(lua_State *L)
{
	const char *old = name_arg(L, 1), *name = name_arg(L, 2);
	const char *path = luaL_optstring(L, 3, "");
	struct mm_domain d;
	if (*path) {
		return fail_false(L, "%s: a storage path cannot be set yet", old);
	}
	if (domain_get(old, &d) != 0) {
		return fail_false(L, "no such domain: %s", old);
	}
	if (rl_strcasecmp(d.name, name) == 0) {
		lua_pushboolean(L, 1); /* nothing to do (names are stored lower-case) */
		return 1;
	}
	if (!mm_valid_domain(name)) {
		return fail_false(L, "invalid domain name: %s", name);
	}
	return rename_domain(L, &d, name);
}

/* ---- accounts ---- */

static const char *type_name(enum mm_type t)
{
	static const char *const names[] = {"mailbox", "alias", "feed", "relay", "module"};
	return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static int type_parse(const char *s)
{
	if (rl_strcasecmp(s, "mailbox") == 0) {
		return MM_MBOX;
	}
	if (rl_strcasecmp(s, "module") == 0) {
		return MM_MOD;
	}
	return mm_type_parse(s);
}

static void push_account(lua_State *L, const struct mm_account *a)
{
	lua_createtable(L, 0, 7);
	rl_set_num(L, "id", a->id);
	rl_set_num(L, "uid", a->id); /* the reference's listAccounts example prints uid */
	rl_set_str(L, "name", a->user);
	rl_set_str(L, "domain", a->domain);
	rl_set_str(L, "password", a->password);
	rl_set_str(L, "type", type_name(a->type));
	rl_set_str(L, "arguments", a->args);
}

/* The account readAccount and deleteAccount name: (uid), or (domain,
 * user), or the reference's ([uid,] domain, user). 0 found, -1 not. */
static int account_arg(lua_State *L, struct mm_account *a)
{
	if (lua_type(L, 1) == LUA_TNUMBER || (lua_isnumber(L, 1) && lua_isnoneornil(L, 2))) {
		uint32_t id = id_arg(L, 1);
		return id && mm_account_get_id(id, a) == 0 ? 0 : -1;
	}
	const char *domain = name_arg(L, 1), *user = name_arg(L, 2);
	return mm_account_get(domain, user, a);
}

/* Mailman.accountExists(domain, user): the exact name only. */
static int lm_account_exists(lua_State *L)
{
	const char *domain = name_arg(L, 1), *user = name_arg(L, 2);
	struct mm_account a;
	lua_pushboolean(L, mm_account_get(domain, user, &a) == 0);
	return 1;
}

/* Mailman.addressExists(domain, user): an account or a GLOB pattern
 * takes mail for user@domain. */
static int lm_address_exists(lua_State *L)
{
	const char *domain = name_arg(L, 1), *user = name_arg(L, 2);
	struct mm_account a;
	lua_pushboolean(L, mm_account_match(domain, user, &a) == 0);
	return 1;
}

/* Mailman.listAccounts(domain): a list of account tables (empty for a
 * domain without accounts, or no such domain). */
static int lm_list_accounts(lua_State *L)
{
	const char *domain = name_arg(L, 1);
	struct scratch *s = scratch_new(L);
	int n = 0;
	mm_account_list(domain, collect_account, s);
	lua_newtable(L);
	for (size_t off = 0; off + sizeof(struct mm_account) <= s->b.len;
	        off += sizeof(struct mm_account)) {
		struct mm_account a;
		memcpy(&a, s->b.data + off, sizeof a);
		push_account(L, &a);
		lua_rawseti(L, -2, ++n);
	}
	scratch_free(s);
	return 1;
}

/* Mailman.readAccount(uid | domain, user): the account table or false. */
static int lm_read_account(lua_State *L)
{
	struct mm_account a;
	if (account_arg(L, &a) != 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	push_account(L, &a);
	return 1;
}

/* Mailman.deleteAccount(uid | domain, user): true, or nil and why. The
 * mail stays on disk, as with the CLI. */
static int lm_delete_account(lua_State *L)
{
	struct mm_account a;
	char err[256];
	if (account_arg(L, &a) != 0) {
		return rl_fail(L, "no such account");
	}
	if (mm_account_del(a.domain, a.user, err, sizeof err) != 0) {
		return rl_fail(L, "%s", err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Field key (or alt) of the table at index 1 as a string, NULL when
 * absent; raises when it is something else. The value stays on the stack
 * (a number converted to a string lives only there). */
static const char *field_str(lua_State *L, const char *key, const char *alt)
{
	lua_getfield(L, 1, key);
	if (lua_isnil(L, -1) && alt) {
		lua_pop(L, 1);
		lua_getfield(L, 1, alt);
	}
	if (lua_isnil(L, -1)) {
		return NULL;
	}
	if (!lua_isstring(L, -1)) {
		luaL_error(L, "saveAccount: field '%s' must be a string", key);
	}
	return lua_tostring(L, -1);
}

static int is_hex64(const char *s)
{
	size_t n = strspn(s, "0123456789abcdefABCDEF");
	return n == 64 && s[n] == '\0';
}

/* The password saveAccount stores. A 64-hex SHA-256 digest (what the
 * reference tells scripts to pass: ("pw"):SHA256()) and a PBKDF2 hash
 * (what readAccount gave) are stored as they are; both verify
 * (crypto_password_verify). "" means no password (no login). Anything
 * else is a password in the clear, from a script that skipped SHA256:
 * it is hashed rather than stored as it came. */
static int set_password(struct mm_account *a, const char *pw)
{
	if (!*pw || is_hex64(pw) || strncmp(pw, "pbkdf2-sha256$", 14) == 0) {
		return rl_strlcpy(a->password, pw, sizeof a->password) < sizeof a->password ? 0
		                                                                            : -1;
	}
	return crypto_password_hash(pw, a->password, sizeof a->password);
}

/* The mail folder of domain/user, as mbox.c names it. */
static int user_dir(const char *domain, const char *user, char *out, size_t len)
{
	char u[MM_USER_MAX + 1], esc[3 * MM_USER_MAX + 1], ddir[1024];
	rl_strlcpy(u, user, sizeof u);
	rl_lower(u);
	if (mm__domain_dir(domain, ddir, sizeof ddir) != 0 ||
	        mm__fs_name(u, esc, sizeof esc) != 0) {
		return -1;
	}
	return (size_t)snprintf(out, len, "%s/%s", ddir, esc) < len ? 0 : -1;
}

/* Saves a renamed account (cur as it was, a as it will be), its mail
 * folder moved along first and back if the save fails: mailman keeps
 * mail under the account's name. */
static int save_renamed(
        struct mm_account *a, const struct mm_account *cur, char *err, size_t errlen)
{
	char from[1100], to[1100];
	if (!mm_valid_domain(a->domain) || !mm_valid_user(a->user, 1) ||
	        !mm_domain_exists(a->domain) ||
	        user_dir(cur->domain, cur->user, from, sizeof from) != 0 ||
	        user_dir(a->domain, a->user, to, sizeof to) != 0) {
		return mm_account_save(a, err, errlen); /* let mailman say what is wrong */
	}
	int moved = move_dir(from, to, err, errlen);
	if (moved < 0) {
		return -1;
	}
	if (mm_account_save(a, err, errlen) != 0) {
		if (moved) {
			os_rename_atomic(to, from);
		}
		return -1;
	}
	return 0;
}

/* The account saveAccount starts from: the one with the table's id, or
 * its domain and name; a new mailbox when there is none. 1 existing, 0
 * new, -1 no account with that id. */
static int save_base(lua_State *L, const char *name, const char *domain, struct mm_account *a)
{
	memset(a, 0, sizeof *a);
	a->type = MM_MBOX;
	lua_getfield(L, 1, "id");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_getfield(L, 1, "uid");
	}
	if (!lua_isnil(L, -1)) {
		if (!lua_isnumber(L, -1)) {
			luaL_error(L, "saveAccount: field 'id' must be a number");
		}
		uint32_t id = id_arg(L, lua_gettop(L));
		return id && mm_account_get_id(id, a) == 0 ? 1 : -1;
	}
	if (!name || !domain) {
		luaL_error(L, "saveAccount: the account needs a name and a domain (or an id)");
	}
	return mm_account_get(domain, name, a) == 0 ? 1 : 0;
}

/* Copies the table's fields over a; NULL or a reason. */
static const char *save_fields(struct mm_account *a, const char *name, const char *domain,
        const char *type, const char *pw, const char *args)
{
	int t = type ? type_parse(type) : (int)a->type;
	if (t < 0) {
		return "unknown account type";
	}
	a->type = (enum mm_type)t;
	if ((name && rl_strlcpy(a->user, name, sizeof a->user) >= sizeof a->user) ||
	        (domain && rl_strlcpy(a->domain, domain, sizeof a->domain) >= sizeof a->domain) ||
	        (args && rl_strlcpy(a->args, args, sizeof a->args) >= sizeof a->args)) {
		return "name, domain or arguments too long";
	}
	if (pw && set_password(a, pw) != 0) {
		return "password too long, or no randomness for its hash";
	}
	return NULL;
}

/* Mailman.saveAccount(account): adds the account, or updates the one with
 * account.id (or, without an id, the one with its domain and name);
 * fields left out keep their values (a new account: a mailbox without
 * password). Sets account.id and account.uid. true, or false and why. */
static int lm_save_account(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	const char *name = field_str(L, "name", "user"), *domain = field_str(L, "domain", NULL);
	const char *type = field_str(L, "type", NULL), *pw = field_str(L, "password", NULL);
	const char *args = field_str(L, "arguments", NULL);
	struct mm_account a, cur;
	char err[256];
	int have = save_base(L, name, domain, &a);
	if (have < 0) {
		return fail_false(L, "%s", "no account with that id");
	}
	cur = a;
	const char *why = save_fields(&a, name, domain, type, pw, args);
	if (why) {
		return fail_false(L, "%s", why);
	}
	int renamed = have && (rl_strcasecmp(cur.domain, a.domain) != 0 ||
	                              rl_strcasecmp(cur.user, a.user) != 0);
	if ((renamed ? save_renamed(&a, &cur, err, sizeof err)
	             : mm_account_save(&a, err, sizeof err)) != 0) {
		return fail_false(L, "%s", err);
	}
	lua_pushnumber(L, a.id);
	lua_setfield(L, 1, "id");
	lua_pushnumber(L, a.id);
	lua_setfield(L, 1, "uid");
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- mailboxes ---- */

/* The folder at index i: a name, INBOX when absent; the original's folder
 * id 0 is INBOX too. NULL for another number (no such folder). */
static const char *folder_arg(lua_State *L, int i)
{
	if (lua_isnoneornil(L, i)) {
		return "INBOX";
	}
	if (lua_type(L, i) == LUA_TNUMBER) {
		return lua_tonumber(L, i) == 0 ? "INBOX" : NULL;
	}
	return name_arg(L, i);
}

/* Opens the folder of account uid into s->f. 0; or -1 with nil and why
 * pushed, *missing set when only the folder is missing. */
static int open_box(lua_State *L, struct scratch *s, uint32_t uid, const char *folder, int *missing)
{
	struct mm_account a;
	*missing = 0;
	if (!uid || mm_account_get_id(uid, &a) != 0) {
		rl_fail(L, "no account with uid %u", (unsigned)uid);
		return -1;
	}
	if (!folder || mm_folder_open(a.domain, a.user, folder, 0, &s->f) != 0) {
		*missing = 1;
		rl_fail(L, "no folder %s", folder ? folder : "with that number");
		return -1;
	}
	return 0;
}

/* Index of the message with uid in f, its record copied to m; -1 if none. */
static long find_msg(struct mm_folder *f, uint32_t uid, struct mm_msg *m)
{
	uint32_t n = mm_folder_count(f);
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *x = mm_folder_msg(f, i);
		if (x && x->uid == uid) {
			*m = *x;
			return (long)i;
		}
	}
	return -1;
}

static int collect_folder(const char *name, void *arg)
{
	struct scratch *s = arg;
	buf_append(&s->b, name, strlen(name) + 1);
	return 0;
}

static int other_mbox(const char *name, int is_dir, void *arg)
{
	size_t n = strlen(name);
	return !is_dir && n > 5 && strcmp(name + n - 5, ".mbox") == 0 &&
	       strcmp(name, "INBOX.mbox") != 0;
}

/* 1 when the account may have folders besides INBOX. mm_folder_list
 * hands qsort a NULL array when it has none (undefined behaviour that
 * UBSan stops on), so it is asked only when there is something to sort;
 * drop this once mbox.c checks for it. */
static int has_folders(const struct mm_account *a)
{
	char path[1100];
	return user_dir(a->domain, a->user, path, sizeof path) != 0 ||
	       os_dir_walk(path, other_mbox, NULL) == 1;
}

/* Mailman.listFolders(uid): {"INBOX", "Sent", ...}, or nil and why. */
static int lm_list_folders(lua_State *L)
{
	uint32_t uid = id_arg(L, 1);
	struct mm_account a;
	if (!uid || mm_account_get_id(uid, &a) != 0) {
		return rl_fail(L, "no account with uid %u", (unsigned)uid);
	}
	if (!has_folders(&a)) {
		lua_createtable(L, 1, 0);
		lua_pushliteral(L, "INBOX");
		lua_rawseti(L, -2, 1);
		return 1;
	}
	struct scratch *s = scratch_new(L);
	if (mm_folder_list(a.domain, a.user, collect_folder, s) < 0) {
		scratch_free(s);
		return rl_fail(L, "cannot list the folders of %s@%s", a.user, a.domain);
	}
	push_names(L, &s->b);
	scratch_free(s);
	return 1;
}

/* A header value as a person reads it, into s->val: unfolded (line ends
 * dropped, NUL bytes made blanks, trailing blanks trimmed), then RFC 2047
 * words decoded to UTF-8. */
static void header_value(struct scratch *s, const char *v, size_t n)
{
	size_t k = 0;
	buf_reset(&s->tmp);
	buf_reserve(&s->tmp, n);
	for (size_t i = 0; i < n; i++) {
		if (v[i] != '\r' && v[i] != '\n') {
			s->tmp.data[k++] = v[i] ? v[i] : ' ';
		}
	}
	while (k && (s->tmp.data[k - 1] == ' ' || s->tmp.data[k - 1] == '\t')) {
		k--;
	}
	s->tmp.len = k;
	s->tmp.data[k] = '\0';
	buf_reset(&s->val);
	mime_decode_words(s->tmp.data, k, &s->val);
}

/* Adds the fields of a header block to the table on the top: names lower
 * case, decoded values; the first of repeated fields wins (Received). */
static void push_headers(lua_State *L, struct scratch *s, struct mime_headers *it)
{
	struct mime_header h;
	char name[FIELD_NAME_MAX];
	while (mime_headers_next(it, &h)) {
		if (h.name_len >= sizeof name) {
			continue;
		}
		for (size_t i = 0; i < h.name_len; i++) {
			char c = h.name[i];
			name[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		lua_pushlstring(L, name, h.name_len);
		lua_rawget(L, -2);
		int seen = !lua_isnil(L, -1);
		lua_pop(L, 1);
		if (seen) {
			continue;
		}
		header_value(s, h.value, h.value_len);
		lua_pushlstring(L, name, h.name_len);
		push_buf(L, &s->val);
		lua_rawset(L, -3);
	}
}

/* 1 when b holds a whole header block (the empty line that ends it). */
static int header_done(const struct buf *b, size_t from)
{
	if (b->len >= 2 && b->data[0] == '\r' && b->data[1] == '\n') {
		return 1;
	}
	for (size_t i = from; i + 4 <= b->len; i++) {
		if (memcmp(b->data + i, "\r\n\r\n", 4) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Reads the header block of message i of s->f into s->b, through a
 * reader: listing a folder must not read every attachment. At most
 * HEADER_MAX bytes. */
static int read_header(struct scratch *s, uint32_t i)
{
	enum { STEP = 8192 };
	int rc = 0;
	buf_reset(&s->b);
	if (!(s->r = mm_reader_open(s->f, i))) {
		return -1;
	}
	while (!header_done(&s->b, s->b.len > STEP + 3 ? s->b.len - STEP - 3 : 0) &&
	        s->b.len < HEADER_MAX) {
		buf_reserve(&s->b, STEP);
		long n = mm_reader_read(s->r, s->b.data + s->b.len, STEP);
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			break;
		}
		s->b.len += (size_t)n;
		s->b.data[s->b.len] = '\0';
	}
	mm_reader_close(s->r);
	s->r = NULL;
	return rc;
}

/* When the message says it was sent: its Date header, else the date it
 * arrived. The table with the headers is on the top. */
static int64_t sent_date(lua_State *L, int64_t arrived)
{
	size_t n;
	int64_t t;
	lua_getfield(L, -1, "date");
	const char *d = lua_tolstring(L, -1, &n);
	int ok = d && mime_date_parse(d, n, &t, NULL) == 0;
	lua_pop(L, 1);
	return ok ? t : arrived;
}

/* Pushes the listHeaders entry of message i (record m). */
static void push_summary(lua_State *L, struct scratch *s, uint32_t i, const struct mm_msg *m)
{
	struct mime_headers it;
	lua_newtable(L);
	if (read_header(s, i) == 0) {
		mime_headers_init(&it, s->b.data ? s->b.data : "", s->b.len);
		push_headers(L, s, &it);
	}
	/* set last: a header called Id or Size must not hide them */
	rl_set_num(L, "id", m->uid);
	rl_set_num(L, "size", m->size);
	rl_set_num(L, "sent", (double)sent_date(L, m->date));
	rl_set_bool(L, "read", (m->flags & MM_SEEN) != 0);
}

/* Mailman.listHeaders(uid[, folder]): a list with one table per message:
 * id (its UID), size, sent, read (\Seen) and every header field by its
 * lower-case name (header.subject, header['content-type']). An INBOX
 * that has never received mail is empty; nil and why for an unknown
 * account or folder. */
static int lm_list_headers(lua_State *L)
{
	uint32_t uid = id_arg(L, 1);
	const char *folder = folder_arg(L, 2);
	int missing;
	struct scratch *s = scratch_new(L);
	if (open_box(L, s, uid, folder, &missing) != 0) {
		scratch_free(s);
		if (missing && folder && rl_strcasecmp(folder, "INBOX") == 0) {
			lua_newtable(L); /* the first delivery makes the INBOX */
			return 1;
		}
		return 2;
	}
	uint32_t n = mm_folder_count(s->f);
	lua_createtable(L, (int)n, 0);
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *x = mm_folder_msg(s->f, i);
		if (!x) {
			break;
		}
		struct mm_msg m = *x;
		push_summary(L, s, i, &m);
		lua_rawseti(L, -2, (int)i + 1);
	}
	scratch_free(s);
	return 1;
}

/* Pushes part p of s->m: {headers, type, subtype, charset, filename} and
 * body (decoded as its Content-Transfer-Encoding says; the bytes in its
 * charset) or, for a multipart, parts = {...}; a message/rfc822 part also
 * has message = the message inside, parsed the same way. */
static void push_part(lua_State *L, struct scratch *s, const struct mime_part *p)
{
	struct mime_headers it;
	luaL_checkstack(L, 8, "message nested too deep");
	lua_createtable(L, 0, 8);
	lua_newtable(L);
	mime_headers_part(&it, &s->m, p);
	push_headers(L, s, &it);
	lua_setfield(L, -2, "headers");
	rl_set_str(L, "type", p->type);
	rl_set_str(L, "subtype", p->subtype);
	const char *cs = mime_part_param(p, "charset");
	if (cs || mime_part_is(p, "text", NULL)) {
		rl_set_str(L, "charset", cs ? cs : "us-ascii");
	}
	if (mime_part_filename(p)) {
		rl_set_str(L, "filename", mime_part_filename(p));
	}
	if (p->flags & MIME_MULTIPART) {
		int k = 0;
		lua_createtable(L, (int)p->nchild, 0);
		for (const struct mime_part *c = p->child; c; c = c->next) {
			push_part(L, s, c);
			lua_rawseti(L, -2, ++k);
		}
		lua_setfield(L, -2, "parts");
		return;
	}
	buf_reset(&s->body);
	mime_body_decode(&s->m, p, &s->body);
	push_buf(L, &s->body);
	lua_setfield(L, -2, "body");
	if ((p->flags & MIME_MESSAGE) && p->child) {
		push_part(L, s, p->child);
		lua_setfield(L, -2, "message");
	}
}

/* Mailman.readMail(uid, lid[, folder]): the message with UID lid of the
 * account's folder (INBOX by default), parsed as push_part says, or nil
 * and why. Marks it \Seen and changes nothing else. */
static int lm_read_mail(lua_State *L)
{
	uint32_t uid = id_arg(L, 1), lid = id_arg(L, 2);
	const char *folder = folder_arg(L, 3);
	struct mm_msg m;
	int missing;
	struct scratch *s = scratch_new(L);
	if (open_box(L, s, uid, folder, &missing) != 0) {
		scratch_free(s);
		return 2;
	}
	long i = find_msg(s->f, lid, &m);
	if (i < 0 || mm_msg_read(s->f, (uint32_t)i, &s->b) != 0) {
		scratch_free(s);
		return rl_fail(
		        L, i < 0 ? "no message %u" : "cannot read message %u", (unsigned)lid);
	}
	mime_parse(&s->m, s->b.data ? s->b.data : "", s->b.len);
	s->parsed = 1;
	push_part(L, s, s->m.root);
	if (!(m.flags & MM_SEEN)) {
		mm_msg_set_flags(s->f, (uint32_t)i, m.flags | MM_SEEN);
	}
	scratch_free(s);
	return 1;
}

/* Mailman.deleteMail(uid, lid[, folder]): deletes and expunges that one
 * message (other messages flagged \Deleted stay as they are). true, or
 * nil and why. */
static int lm_delete_mail(lua_State *L)
{
	uint32_t uid = id_arg(L, 1), lid = id_arg(L, 2);
	const char *folder = folder_arg(L, 3);
	int missing;
	struct scratch *s = scratch_new(L);
	if (open_box(L, s, uid, folder, &missing) != 0) {
		scratch_free(s);
		return 2;
	}
	int n = lid ? mm_folder_expunge_uids(s->f, mm_folder_uidvalidity(s->f), &lid, 1) : 0;
	scratch_free(s);
	if (n <= 0) {
		return rl_fail(
		        L, n < 0 ? "cannot delete message %u" : "no message %u", (unsigned)lid);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- sending ---- */

/* An address as SMTP's envelope takes it: "addr", "<addr>" or "Name
 * <addr>", blanks around; no blank, control character or bracket inside
 * the address, no control character anywhere. "" only when empty_ok (the
 * null sender). */
static int clean_addr(const char *in, char *out, size_t len, int empty_ok)
{
	for (const char *c = in; *c; c++) {
		if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) {
			return -1; /* a line break would smuggle in a header or command */
		}
	}
	while (*in == ' ' || *in == '\t') {
		in++;
	}
	const char *lt = strchr(in, '<');
	size_t n = lt ? strcspn(lt + 1, ">") : strcspn(in, " \t");
	const char *p = lt ? lt + 1 : in;
	const char *end = p + n + (lt ? 1 : 0); /* what follows must be blank */
	if ((lt && p[n] != '>') || end[strspn(end, " \t")] != '\0') {
		return -1;
	}
	if (n >= len || (!n && !empty_ok)) {
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c == 0x7f || c == '<' || c == '>') {
			return -1;
		}
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* The trace line every message gets (RFC 5321 4.4). */
static int spool_received(struct queue_msg *m)
{
	char date[64], line[512];
	struct tm tm;
	os_gmtime(m->date, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	int n = snprintf(line, sizeof line,
	        "Received: by %s (Rumble, Lua script) id %016llx;\r\n\t%s\r\n",
	        conf.server_name[0] ? conf.server_name : "localhost", (unsigned long long)m->qid,
	        date);
	return n > 0 && (size_t)n < sizeof line ? spool_write(&m->body, line, (size_t)n) : -1;
}

/* Writes msg in wire form: every line end (LF, CR or CRLF, as a script
 * writes them) becomes CRLF, and the last line gets one. */
static int spool_crlf(struct spool *sp, const char *msg, size_t n)
{
	char out[4096];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k + 2 > sizeof out) {
			if (spool_write(sp, out, k) != 0) {
				return -1;
			}
			k = 0;
		}
		if (msg[i] == '\r' || msg[i] == '\n') {
			i += msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n';
			out[k++] = '\r';
			out[k++] = '\n';
		} else {
			out[k++] = msg[i];
		}
	}
	if (n && msg[n - 1] != '\n' && msg[n - 1] != '\r') {
		if (k + 2 > sizeof out && spool_write(sp, out, k) != 0) {
			return -1;
		}
		k = k + 2 > sizeof out ? 0 : k;
		out[k++] = '\r';
		out[k++] = '\n';
	}
	return k ? spool_write(sp, out, k) : 0;
}

/* Adds recipient r (index i of 'to', for messages) to s->qm. 0, or
 * pushes nil and why and returns 2. */
static int add_rcpt(lua_State *L, struct scratch *s, const char *r)
{
	char addr[ADDR_MAX];
	struct mm_account a;
	if (clean_addr(r, addr, sizeof addr, 0) != 0) {
		return rl_fail(L, "bad recipient address: %s", r);
	}
	switch (queue_classify(addr, &a)) {
	case RCPT_BAD:
		return rl_fail(L, "bad recipient address: %s", r);
	case RCPT_UNKNOWN:
		return rl_fail(L, "no such local address: %s", addr);
	default:
		queue_msg_add_rcpt(s->qm, addr);
		return 0;
	}
}

/* The group commit sendMail waits for, on a helper thread (jobs.c). */
struct commit {
	struct rl_job j;
	struct queue_msg *qm;
	int rc;
};

static void commit_run(struct rl_job *j)
{
	struct commit *c = (struct commit *)j;
	c->rc = queue_commit_wait(c->qm);
}

static int commit_push(lua_State *L, struct rl_job *j)
{
	if (((struct commit *)j)->rc != 0) {
		return rl_fail(L, "the message could not be stored (see the log)");
	}
	lua_pushboolean(L, 1);
	return 1;
}

static void commit_done(struct rl_job *j)
{
	queue_msg_free(((struct commit *)j)->qm);
}

/* Mailman.sendMail(from, to, message): queues message (headers and body;
 * LF line ends are fine) from the envelope sender from ("" for none) to
 * to, an address or a list of them. Local mailboxes get it at once,
 * other addresses through the queue, whatever BlockOutgoingMail says
 * (that directive is about mail received over SMTP). true once it is
 * durable, or nil and why (bad or unknown addresses send nothing). */
static int lm_send_mail(lua_State *L)
{
	const char *from = luaL_checkstring(L, 1);
	size_t mlen;
	int list = lua_type(L, 2) == LUA_TTABLE;
	if (!list && lua_type(L, 2) != LUA_TSTRING) {
		luaL_typerror(L, 2, "string or table");
	}
	const char *msg = luaL_checklstring(L, 3, &mlen);
	char sender[ADDR_MAX];
	int nrcpt = list ? (int)lua_objlen(L, 2) : 1;
	if (clean_addr(from, sender, sizeof sender, 1) != 0) {
		return rl_fail(L, "bad sender address: %s", from);
	}
	if (nrcpt < 1 || nrcpt > RCPT_MAX) {
		return rl_fail(L, "%s", nrcpt < 1 ? "no recipients" : "too many recipients");
	}
	if (conf.message_size_limit && mlen > conf.message_size_limit) {
		return rl_fail(L, "message too large (MessageSizeLimit)");
	}
	struct scratch *s = scratch_new(L);
	s->qm = queue_msg_new(sender);
	for (int i = 1; i <= nrcpt; i++) {
		if (list) {
			lua_rawgeti(L, 2, i);
		} else {
			lua_pushvalue(L, 2);
		}
		if (lua_type(L, -1) != LUA_TSTRING) {
			luaL_error(L, "sendMail: recipient %d is not a string", i);
		}
		if (add_rcpt(L, s, lua_tostring(L, -1)) != 0) {
			scratch_free(s);
			return 2;
		}
		lua_pop(L, 1);
	}
	if (spool_received(s->qm) != 0 || spool_crlf(&s->qm->body, msg, mlen) != 0) {
		scratch_free(s);
		return rl_fail(L, "cannot spool the message");
	}
	struct commit *c = xcalloc(1, sizeof *c);
	c->j.run = commit_run;
	c->j.push = commit_push;
	c->j.done = commit_done;
	c->qm = s->qm; /* the job's now */
	s->qm = NULL;
	scratch_free(s);
	return rl_job_call(L, &c->j);
}

/* ---- the queue ---- */

/* A queue entry as collected: this, then from, the recipients and the
 * last reply as NUL-terminated strings, len bytes in all. */
struct qrec {
	uint64_t qid, size;
	int64_t date, next;
	int attempts, nrcpt;
	size_t len;
};

static int collect_queued(const struct queue_info *q, void *arg)
{
	struct scratch *s = arg;
	struct qrec r = {
	        q->qid, q->size, q->date, q->next, q->attempts, q->nrcpt, strlen(q->from) + 1};
	for (int i = 0; i < q->nrcpt; i++) {
		r.len += strlen(q->rcpts[i]) + 1;
	}
	r.len += strlen(q->last) + 1;
	buf_append(&s->b, &r, sizeof r);
	buf_append(&s->b, q->from, strlen(q->from) + 1);
	for (int i = 0; i < q->nrcpt; i++) {
		buf_append(&s->b, q->rcpts[i], strlen(q->rcpts[i]) + 1);
	}
	buf_append(&s->b, q->last, strlen(q->last) + 1);
	return 0;
}

/* Pushes the entry whose strings start at p. */
static void push_queued(lua_State *L, const struct qrec *r, const char *p)
{
	char id[17];
	snprintf(id, sizeof id, "%016llx", (unsigned long long)r->qid);
	lua_createtable(L, 0, 8);
	rl_set_str(L, "id", id); /* as the log and the queue folder name it */
	rl_set_str(L, "from", p);
	p += strlen(p) + 1;
	lua_createtable(L, r->nrcpt, 0);
	for (int i = 0; i < r->nrcpt; i++) {
		lua_pushstring(L, p);
		lua_rawseti(L, -2, i + 1);
		p += strlen(p) + 1;
	}
	lua_setfield(L, -2, "recipients");
	rl_set_str(L, "last", p); /* the last deferral reason, "" before any */
	rl_set_num(L, "date", (double)r->date);
	rl_set_num(L, "next", (double)r->next);
	rl_set_num(L, "attempts", r->attempts);
	rl_set_num(L, "size", (double)r->size);
}

/* Mailman.getQueue(): the messages waiting for delivery, oldest first:
 * {id, from, recipients = {...}, last, date, next, attempts, size}, or nil and
 * why when the queue folder cannot be read. */
static int lm_get_queue(lua_State *L)
{
	struct scratch *s = scratch_new(L);
	int n = 0;
	if (queue_list(collect_queued, s) < 0) {
		scratch_free(s);
		return rl_fail(L, "cannot read the queue folder");
	}
	lua_newtable(L);
	for (size_t off = 0; off + sizeof(struct qrec) <= s->b.len;) {
		struct qrec r;
		memcpy(&r, s->b.data + off, sizeof r);
		push_queued(L, &r, s->b.data + off + sizeof r);
		lua_rawseti(L, -2, ++n);
		off += sizeof r + r.len;
	}
	scratch_free(s);
	return 1;
}

static const luaL_Reg mailman_funcs[] = {
        {"accountExists", lm_account_exists},
        {"addressExists", lm_address_exists},
        {"createDomain", lm_create_domain},
        {"updateDomain", lm_update_domain},
        {"deleteDomain", lm_delete_domain},
        {"listDomains", lm_list_domains},
        {"listAccounts", lm_list_accounts},
        {"readAccount", lm_read_account},
        {"saveAccount", lm_save_account},
        {"deleteAccount", lm_delete_account},
        {"listFolders", lm_list_folders},
        {"listHeaders", lm_list_headers},
        {"readMail", lm_read_mail},
        {"deleteMail", lm_delete_mail},
        {"sendMail", lm_send_mail},
        {"getQueue", lm_get_queue},
        {NULL, NULL},
};

/* see rl.h */
void rl_open_mailman(lua_State *L)
{
	luaL_newmetatable(L, SCRATCH);
	lua_pushcfunction(L, scratch_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_register(L, "Mailman", mailman_funcs);
	lua_pop(L, 1);
}
