/* test_mailman.c - domains, accounts, validation, GLOB matching. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];

/* A fresh storage folder, opened. */
static const char *fresh(void)
{
	const char *dir = unit_tmpdir();
	if (mm_open(dir, err, sizeof err) != 0) {
		return NULL;
	}
	return dir;
}

static int save(const char *domain, const char *user, enum mm_type type, const char *args)
{
	struct mm_account a;
	memset(&a, 0, sizeof a);
	rl_strlcpy(a.domain, domain, sizeof a.domain);
	rl_strlcpy(a.user, user, sizeof a.user);
	a.type = type;
	rl_strlcpy(a.args, args, sizeof a.args);
	return mm_account_save(&a, err, sizeof err) == 0 ? (int)a.id : -1;
}

static int count_domain(const struct mm_domain *d, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int count_account(const struct mm_account *a, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void read_all(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(out, 1, len - 1, f) : 0;
	out[n] = '\0';
	if (f) {
		fclose(f);
	}
}

static void domains_persist(void)
{
	const char *dir = fresh();
	ASSERT(dir);
	ASSERT_EQ(mm_domain_add("Example.ORG", err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("example.net", err, sizeof err), 0);
	ASSERT_EQ(mm_domain_count(), 2);
	ASSERT(mm_domain_exists("example.org"));
	ASSERT(mm_domain_exists("EXAMPLE.org"));
	mm_close();
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0);
	ASSERT_EQ(mm_domain_count(), 2);
	int n = 0;
	mm_domain_list(count_domain, &n);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(mm_domain_del("example.NET", err, sizeof err), 0);
	ASSERT(!mm_domain_exists("example.net"));
	mm_close();
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0);
	ASSERT_EQ(mm_domain_count(), 1);
	ASSERT(mm_domain_exists("example.org"));
	mm_close();
}

static void domain_add_refuses(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("EXAMPLE.org", err, sizeof err), -1);
	ASSERT(strstr(err, "exists"));
	ASSERT_EQ(mm_domain_add("bad..name", err, sizeof err), -1);
	ASSERT_EQ(mm_domain_add("a\tb", err, sizeof err), -1);
	ASSERT_EQ(mm_domain_del("nowhere.org", err, sizeof err), -1);
	ASSERT_EQ(mm_domain_count(), 1);
	mm_close();
}

static void ids_never_reused(void)
{
	const char *dir = fresh();
	ASSERT(dir);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	int a = save("example.org", "a", MM_MBOX, "");
	int b = save("example.org", "b", MM_MBOX, "");
	ASSERT(a > 0 && b > a);
	ASSERT_EQ(mm_account_del("example.org", "b", err, sizeof err), 0);
	mm_close();
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0);
	int c = save("example.org", "c", MM_MBOX, "");
	ASSERT(c > b);
	mm_close();
}

static void account_crud(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	struct mm_account a, got;
	memset(&a, 0, sizeof a);
	rl_strlcpy(a.domain, "Example.org", sizeof a.domain);
	rl_strlcpy(a.user, "John.Doe", sizeof a.user);
	a.type = MM_MBOX;
	rl_strlcpy(a.password, "pbkdf2-sha256$1$00$00", sizeof a.password);
	ASSERT_EQ(mm_account_save(&a, err, sizeof err), 0);
	ASSERT(a.id > 0);
	ASSERT_STR(a.user, "john.doe");
	ASSERT_EQ(mm_account_get("EXAMPLE.ORG", "JOHN.doe", &got), 0);
	ASSERT_EQ(got.id, a.id);
	ASSERT_STR(got.password, "pbkdf2-sha256$1$00$00");
	ASSERT_EQ(got.type, MM_MBOX);
	/* update by id: rename and change type */
	rl_strlcpy(a.user, "jd", sizeof a.user);
	a.type = MM_ALIAS;
	rl_strlcpy(a.args, "x@example.net y@example.net", sizeof a.args);
	uint32_t id = a.id;
	ASSERT_EQ(mm_account_save(&a, err, sizeof err), 0);
	ASSERT_EQ(a.id, id);
	ASSERT_EQ(mm_account_get("example.org", "john.doe", &got), -1);
	ASSERT_EQ(mm_account_get_id(id, &got), 0);
	ASSERT_STR(got.user, "jd");
	ASSERT_STR(got.args, "x@example.net y@example.net");
	ASSERT_EQ(got.type, MM_ALIAS);
	/* update by name (id 0) keeps the id */
	memset(&a, 0, sizeof a);
	rl_strlcpy(a.domain, "example.org", sizeof a.domain);
	rl_strlcpy(a.user, "JD", sizeof a.user);
	a.type = MM_FEED;
	ASSERT_EQ(mm_account_save(&a, err, sizeof err), 0);
	ASSERT_EQ(a.id, id);
	int n = 0;
	mm_account_list("example.org", count_account, &n);
	ASSERT_EQ(n, 1);
	ASSERT_EQ(mm_account_del("example.org", "jd", err, sizeof err), 0);
	ASSERT_EQ(mm_account_get_id(id, &got), -1);
	ASSERT_EQ(mm_account_del("example.org", "jd", err, sizeof err), -1);
	mm_close();
}

static void account_save_refuses(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(save("nowhere.org", "a", MM_MBOX, ""), -1);
	ASSERT(strstr(err, "domain"));
	ASSERT_EQ(save("example.org", "../x", MM_MBOX, ""), -1);
	ASSERT(strstr(err, "user"));
	ASSERT_EQ(save("example.org", "a", (enum mm_type)42, ""), -1);
	ASSERT(strstr(err, "type"));
	ASSERT_EQ(save("example.org", "a", MM_ALIAS, "x\ty"), -1);
	ASSERT_EQ(save("example.org", "a", MM_ALIAS, "x\ny"), -1);
	ASSERT(!strchr(err, '\n'));
	ASSERT(save("example.org", "a", MM_MBOX, "") > 0);
	/* renaming onto another account's name */
	int b = save("example.org", "b", MM_MBOX, "");
	struct mm_account acc;
	ASSERT_EQ(mm_account_get_id((uint32_t)b, &acc), 0);
	rl_strlcpy(acc.user, "a", sizeof acc.user);
	ASSERT_EQ(mm_account_save(&acc, err, sizeof err), -1);
	acc.id = 999;
	ASSERT_EQ(mm_account_save(&acc, err, sizeof err), -1);
	mm_close();
}

static int exists(const char *dir, const char *name)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (f) {
		fclose(f);
	}
	return f != NULL;
}

static void touch(const char *dir, const char *name)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ASSERT(f != NULL);
	fputs("half written", f);
	fclose(f);
}

static void killed_writer_leftovers_go(void)
{
	const char *dir = fresh();
	ASSERT(dir != NULL);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	/* what a CLI killed between write and rename leaves */
	touch(dir, "accounts.tmp.99999.0");
	touch(dir, "domains.tmp.99999.1");
	touch(dir, "accounts.tmpfile"); /* not one of ours */
	ASSERT(save("example.org", "alice", MM_MBOX, "") > 0);
	ASSERT(!exists(dir, "accounts.tmp.99999.0"));
	ASSERT(!exists(dir, "domains.tmp.99999.1"));
	ASSERT(exists(dir, "accounts.tmpfile"));
	ASSERT(exists(dir, "accounts"));
	mm_close();
}

static void domain_del_takes_accounts(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("example.net", err, sizeof err), 0);
	ASSERT(save("example.org", "a", MM_MBOX, "") > 0);
	ASSERT(save("example.org", "*", MM_MBOX, "") > 0);
	ASSERT(save("example.net", "a", MM_MBOX, "") > 0);
	ASSERT_EQ(mm_domain_del("example.org", err, sizeof err), 0);
	int n = 0;
	mm_account_list(NULL, count_account, &n);
	ASSERT_EQ(n, 1);
	struct mm_account a;
	ASSERT_EQ(mm_account_get("example.net", "a", &a), 0);
	/* a re-added domain does not get the old accounts back */
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(mm_account_match("example.org", "a", &a), -1);
	mm_close();
}

/* Another process (the CLI) replaces the file: the next lookup sees it,
 * even when the new file has the same size and was written in the same
 * clock tick. */
static void lookups_see_other_writers(void)
{
	const char *dir = fresh();
	ASSERT(dir);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT(save("example.org", "john", MM_ALIAS, "aaaa@example.org") > 0);
	struct mm_account a;
	ASSERT_EQ(mm_account_get("example.org", "john", &a), 0);
	char path[600], text[4096];
	snprintf(path, sizeof path, "%s/accounts", dir);
	read_all(path, text, sizeof text);
	char *p = strstr(text, "aaaa@");
	ASSERT(p);
	memcpy(p, "bbbb", 4);
	ASSERT_EQ(os_write_file_atomic(path, text, strlen(text)), 0);
	ASSERT_EQ(mm_account_get("example.org", "john", &a), 0);
	ASSERT_STR(a.args, "bbbb@example.org");
	/* a new domain written by someone else */
	snprintf(path, sizeof path, "%s/domains", dir);
	read_all(path, text, sizeof text);
	size_t n = strlen(text);
	snprintf(text + n, sizeof text - n, "77\texample.com\t\t0\n");
	ASSERT_EQ(os_write_file_atomic(path, text, strlen(text)), 0);
	ASSERT(mm_domain_exists("example.com"));
	mm_reload();
	ASSERT(mm_domain_exists("example.com"));
	/* and the next id is above what the other writer used */
	ASSERT_EQ(mm_domain_add("example.info", err, sizeof err), 0);
	int found = 0;
	struct mm_domain d;
	(void)d;
	read_all(path, text, sizeof text);
	found = strstr(text, "78\texample.info") != NULL;
	ASSERT(found);
	mm_close();
}

/* The CLI adds an account in its own process; the server then saves
 * another: both survive, because writers re-read under the lock. */
static void writers_keep_each_others_changes(void)
{
	const char *dir = fresh();
	ASSERT(dir);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT(save("example.org", "first", MM_MBOX, "") > 0);
	char path[600], text[4096];
	snprintf(path, sizeof path, "%s/accounts", dir);
	read_all(path, text, sizeof text);
	size_t n = strlen(text);
	snprintf(text + n, sizeof text - n, "50\texample.org\tcli\tmbox\t\t\n");
	ASSERT_EQ(os_write_file_atomic(path, text, strlen(text)), 0);
	int id = save("example.org", "second", MM_MBOX, "");
	ASSERT(id > 50);
	read_all(path, text, sizeof text);
	ASSERT(strstr(text, "\tfirst\t"));
	ASSERT(strstr(text, "\tcli\t"));
	ASSERT(strstr(text, "\tsecond\t"));
	mm_close();
}

static void bad_line_blocks_writes(void)
{
	const char *dir = fresh();
	ASSERT(dir);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT(save("example.org", "good", MM_MBOX, "") > 0);
	char path[600], text[4096];
	snprintf(path, sizeof path, "%s/accounts", dir);
	read_all(path, text, sizeof text);
	size_t n = strlen(text);
	snprintf(text + n, sizeof text - n, "9 example.org typo mbox\n");
	ASSERT_EQ(os_write_file_atomic(path, text, strlen(text)), 0);
	struct mm_account a;
	ASSERT_EQ(mm_account_get("example.org", "good", &a), 0);
	ASSERT_EQ(save("example.org", "new", MM_MBOX, ""), -1);
	ASSERT(strstr(err, "line 3"));
	read_all(path, text, sizeof text);
	ASSERT(strstr(text, "typo")); /* left for a human to fix */
	mm_close();
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0); /* the server still starts */
	mm_close();
}

static void glob_table(void)
{
	static const struct {
		const char *p, *s;
		int match;
	} t[] = {
	        {"*", "", 1},
	        {"*", "anything", 1},
	        {"j*", "john", 1},
	        {"j*", "mary", 0},
	        {"J*", "john", 1},
	        {"j*", "JOHN", 1},
	        {"sales-?", "sales-1", 1},
	        {"sales-?", "sales-12", 0},
	        {"sales-?", "sales-", 0},
	        {"*-admin", "web-admin", 1},
	        {"*-admin", "web-admins", 0},
	        {"a*b*c", "aXbYc", 1},
	        {"a*b*c", "abcbc", 1},
	        {"a*b*c", "acb", 0},
	        {"?", "", 0},
	        {"", "", 1},
	        {"", "a", 0},
	        {"john", "john", 1},
	        {"*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (mm_glob_match(t[i].p, t[i].s) != t[i].match) {
			char m[128];
			snprintf(m, sizeof m, "glob \"%s\" vs \"%s\" should be %d", t[i].p, t[i].s,
			        t[i].match);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
}

static void match_picks_most_specific(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	int all = save("example.org", "*", MM_MBOX, "");
	int j = save("example.org", "j*", MM_MBOX, "");
	int jo = save("example.org", "jo*", MM_MBOX, "");
	int john = save("example.org", "john", MM_MBOX, "");
	int sales = save("example.org", "sales-?", MM_MBOX, "");
	int jq = save("example.org", "j?*", MM_MBOX, "");
	ASSERT(all > 0 && j > 0 && jo > 0 && john > 0 && sales > 0 && jq > 0);
	struct mm_account a;
	ASSERT_EQ(mm_account_match("example.org", "john", &a), 0);
	ASSERT_EQ(a.id, john);
	ASSERT_EQ(mm_account_match("EXAMPLE.ORG", "JOHN", &a), 0);
	ASSERT_EQ(a.id, john);
	ASSERT_EQ(mm_account_match("example.org", "joe", &a), 0);
	ASSERT_EQ(a.id, jo);
	/* "j*" and "j?*" both have one literal: the longer pattern wins */
	ASSERT_EQ(mm_account_match("example.org", "jim", &a), 0);
	ASSERT_EQ(a.id, jq);
	ASSERT_EQ(mm_account_match("example.org", "mary", &a), 0);
	ASSERT_EQ(a.id, all);
	ASSERT_EQ(mm_account_match("example.org", "sales-1", &a), 0);
	ASSERT_EQ(a.id, sales);
	ASSERT_EQ(mm_account_match("example.org", "sales-12", &a), 0);
	ASSERT_EQ(a.id, all);
	ASSERT_EQ(mm_account_match("example.net", "john", &a), -1);
	/* without the catch-all, an unmatched name has no account */
	ASSERT_EQ(mm_account_del("example.org", "*", err, sizeof err), 0);
	ASSERT_EQ(mm_account_match("example.org", "mary", &a), -1);
	ASSERT_EQ(mm_account_match("example.org", "sales-12", &a), -1);
	/* equal patterns by literals and length: the older account */
	int x1 = save("example.org", "x?", MM_MBOX, "");
	int x2 = save("example.org", "?x", MM_MBOX, "");
	ASSERT(x1 > 0 && x2 > x1);
	ASSERT_EQ(mm_account_match("example.org", "xx", &a), 0);
	ASSERT_EQ(a.id, x1);
	mm_close();
}

static void user_names_validate(void)
{
	static const struct {
		const char *u;
		int plain, glob;
	} t[] = {
	        {"john", 1, 1},
	        {"John.Doe", 1, 1},
	        {"a+tag", 1, 1},
	        {"o'brien", 1, 1},
	        {"x_y-z=1", 1, 1},
	        {"", 0, 0},
	        {"../x", 0, 0},
	        {"a/b", 0, 0},
	        {"a\\b", 0, 0},
	        {".john", 0, 0},
	        {"john.", 0, 0},
	        {"jo..hn", 0, 0},
	        {"jo hn", 0, 0},
	        {"jo\thn", 0, 0},
	        {"jo\rhn", 0, 0},
	        {"a@b", 0, 0},
	        {"a\"b", 0, 0},
	        {"*", 0, 1},
	        {"j*", 0, 1},
	        {"sales-?", 0, 1},
	        {"1234567890123456789012345678901234567890123456789012345678901234", 1, 1},
	        {"12345678901234567890123456789012345678901234567890123456789012345", 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (mm_valid_user(t[i].u, 0) != t[i].plain ||
		        mm_valid_user(t[i].u, 1) != t[i].glob) {
			char m[160];
			snprintf(m, sizeof m, "user \"%s\" should be %d/%d", t[i].u, t[i].plain,
			        t[i].glob);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
	ASSERT(!mm_valid_user(NULL, 1));
}

static void domain_names_validate(void)
{
	char long_label[80], long_name[300];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".org");
	memset(long_name, 0, sizeof long_name);
	for (int i = 0; i < 254; i++) {
		long_name[i] = i % 10 == 9 ? '.' : 'a';
	}
	static const struct {
		const char *d;
		int ok;
	} t[] = {
	        {"example.org", 1},
	        {"Example.ORG", 1},
	        {"localhost", 1},
	        {"_dmarc.example.org", 1},
	        {"a-b.example", 1},
	        {"xn--bcher-kva.example", 1},
	        {"", 0},
	        {"..", 0},
	        {"a..b", 0},
	        {".example.org", 0},
	        {"example.org.", 0},
	        {"-a.example", 0},
	        {"a.-b", 0},
	        {"../x", 0},
	        {"a/b", 0},
	        {"[127.0.0.1]", 0},
	        {"exa mple.org", 0},
	        {"exa\\mple.org", 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (mm_valid_domain(t[i].d) != t[i].ok) {
			char m[160];
			snprintf(m, sizeof m, "domain \"%s\" should be %d", t[i].d, t[i].ok);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
	ASSERT(!mm_valid_domain(long_label)); /* a 64-byte label */
	long_label[1] = '.';
	ASSERT(mm_valid_domain(long_label));
	ASSERT(!mm_valid_domain(long_name)); /* 254 bytes */
	long_name[252] = '\0';
	ASSERT(mm_valid_domain(long_name));
}

static void folder_names_validate(void)
{
	char long_name[210];
	memset(long_name, 'f', 201);
	long_name[201] = '\0';
	static const struct {
		const char *f;
		int ok;
	} t[] = {
	        {"INBOX", 1},
	        {"Sent", 1},
	        {"Sent Items", 1},
	        {"Archive.2024", 1},
	        {"Entw\xc3\xbc"
	         "rfe",
	                1}, /* UTF-8 */
	        {"a:b*c?", 1},
	        {"", 0},
	        {".", 0},
	        {"..", 0},
	        {".hidden", 0},
	        {"../x", 0},
	        {"a/b", 0},
	        {"a\\b", 0},
	        {"a\nb", 0},
	        {"a\x7f", 0},
	        {"bad\xc3", 0},
	        {"bad\xc0\xaf", 0},
	        {"\xed\xa0\x80", 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (mm_valid_folder(t[i].f) != t[i].ok) {
			char m[160];
			snprintf(m, sizeof m, "folder \"%s\" should be %d", t[i].f, t[i].ok);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
	ASSERT(!mm_valid_folder(long_name));
	long_name[200] = '\0';
	ASSERT(mm_valid_folder(long_name));
	/* upper case is escaped to three bytes: the file name's limit decides */
	memset(long_name, 'F', 76);
	long_name[76] = '\0';
	ASSERT(mm_valid_folder(long_name)); /* 228 escaped */
	long_name[76] = 'F';
	long_name[77] = '\0';
	ASSERT(!mm_valid_folder(long_name)); /* 231 */
}

static void file_names_are_safe(void)
{
	char out[256];
	ASSERT_EQ(mm__fs_name("john", out, sizeof out), 0);
	ASSERT_STR(out, "john");
	ASSERT_EQ(mm__fs_name("Sent", out, sizeof out), 0);
	ASSERT_STR(out, "%53ent");
	ASSERT_EQ(mm__fs_name("a:b*c?", out, sizeof out), 0);
	ASSERT_STR(out, "a%3Ab%2Ac%3F");
	ASSERT_EQ(mm__fs_name("con", out, sizeof out), 0);
	ASSERT_STR(out, "%63on");
	ASSERT_EQ(mm__fs_name("LPT1.txt", out, sizeof out), 0);
	ASSERT_STR(out, "%4C%50%54"
	                "1.txt");
	ASSERT_EQ(mm__fs_name("console", out, sizeof out), 0);
	ASSERT_STR(out, "console");
	ASSERT_EQ(mm__fs_name("x.", out, sizeof out), 0);
	ASSERT_STR(out, "x%2E");
	ASSERT_EQ(mm__fs_name("100%", out, sizeof out), 0);
	ASSERT_STR(out, "100%25");
	ASSERT_EQ(mm__fs_name("abcdef", out, 4), -1);
}

static void type_names(void)
{
	ASSERT_STR(mm_type_name(MM_MBOX), "mbox");
	ASSERT_STR(mm_type_name(MM_ALIAS), "alias");
	ASSERT_STR(mm_type_name(MM_MOD), "mod");
	ASSERT_EQ(mm_type_parse("RELAY"), MM_RELAY);
	ASSERT_EQ(mm_type_parse("feed"), MM_FEED);
	ASSERT_EQ(mm_type_parse("nope"), -1);
}

struct saver {
	const char *prefix;
	int failed;
};

static void save_many(void *arg)
{
	struct saver *s = arg;
	for (int i = 0; i < 20; i++) {
		char user[32];
		snprintf(user, sizeof user, "%s%d", s->prefix, i);
		if (save("example.org", user, MM_MBOX, "") < 0) {
			s->failed++;
		}
		struct mm_account a;
		if (mm_account_match("example.org", user, &a) != 0) {
			s->failed++;
		}
	}
}

static void threads_save_concurrently(void)
{
	ASSERT(fresh());
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	struct saver a = {"a", 0}, b = {"b", 0};
	os_thread *ta = os_thread_start(save_many, &a);
	os_thread *tb = os_thread_start(save_many, &b);
	ASSERT(ta && tb);
	os_thread_join(ta);
	os_thread_join(tb);
	ASSERT_EQ(a.failed + b.failed, 0);
	int n = 0;
	mm_account_list("example.org", count_account, &n);
	ASSERT_EQ(n, 40);
	mm_close();
}

void tests_mailman(void)
{
	RUN(domains_persist, "domains are added, listed, deleted and survive a reopen");
	RUN(domain_add_refuses, "a domain is refused when it exists, is invalid or unknown");
	RUN(ids_never_reused, "account ids are never reused, even the highest after a delete");
	RUN(account_crud, "an account is saved lower-case, read, updated in place and deleted");
	RUN(account_save_refuses,
	        "saving refuses an unknown domain, a bad user, a bad type, a tab, a taken name");
	RUN(domain_del_takes_accounts, "deleting a domain deletes its accounts");
	RUN(killed_writer_leftovers_go, "temporary files of a killed writer go at the next lock");
	RUN(lookups_see_other_writers,
	        "lookups see files another process replaced, even with the same size");
	RUN(writers_keep_each_others_changes,
	        "a save keeps an account another process added meanwhile");
	RUN(bad_line_blocks_writes, "an invalid accounts line stops writes but not lookups");
	RUN(glob_table, "GLOB matches * and ? case-insensitively");
	RUN(match_picks_most_specific,
	        "the exact account wins, then the pattern with the most literal characters");
	RUN(user_names_validate, "user names are atext with dots; * and ? only as patterns");
	RUN(domain_names_validate, "domain names are LDH labels up to 253 bytes");
	RUN(folder_names_validate, "folder names refuse separators, control bytes, bad UTF-8, escaped forms past the file name limit");
	RUN(file_names_are_safe, "names become file names safe on Windows and case-blind disks");
	RUN(type_names, "account types print and parse");
	RUN(threads_save_concurrently, "two threads saving accounts at once lose nothing");
}
