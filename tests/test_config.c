/* test_config.c - rumble.conf parsing, <if> blocks, typed values. */
#include "rumble.h"
#include "tests/unit.h"

static int parse(const char *text, struct config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	return config_parse(c, text, "t.conf", err, errlen);
}

static void keys_are_case_insensitive_and_comments_ignored(void)
{
	struct config c;
	char err[256];
	ASSERT_EQ(parse("# comment\nServerName  mail.example.org  # trailing\n\nSMTPPort 25\n", &c,
			  err, sizeof err),
		0);
	ASSERT_STR(config_get(&c, "servername"), "mail.example.org");
	ASSERT_STR(config_get(&c, "SMTPPORT"), "25");
	ASSERT(config_get(&c, "nothing") == NULL);
	config_free(&c);
}

static void repeated_keys_keep_every_value_and_last_wins(void)
{
	struct config c;
	char err[256];
	ASSERT_EQ(parse("LoadScript a.lua\nLoadScript b.lua\n", &c, err, sizeof err), 0);
	ASSERT_STR(config_get(&c, "loadscript"), "b.lua");
	int n = 0;
	for (struct config_entry *e = c.head; e; e = e->next) {
		n++;
	}
	ASSERT_EQ(n, 2);
	config_free(&c);
}

static void if_blocks_choose_one_branch(void)
{
	struct config c;
	char err[256];
	const char *text = "Mode fast\n"
			   "<if compare(mode = slow)>\nPick 1\n"
			   "<else-if compare(mode = fast)>\nPick 2\n"
			   "<else>\nPick 3\n</if>\n"
			   "<if defined(nope)>\nA 1\n<else>\nA 2\n</if>\n"
			   "<if !defined(nope)>\nB 1\n</if>\n"
			   "<if compare(mode != fast)>\nC 1\n<else>\nC 2\n</if>\n"
			   "<if exists(/definitely/not/here)>\nD 1\n</if>\n";
	ASSERT_EQ(parse(text, &c, err, sizeof err), 0);
	ASSERT_STR(config_get(&c, "pick"), "2");
	ASSERT_STR(config_get(&c, "a"), "2");
	ASSERT_STR(config_get(&c, "b"), "1");
	ASSERT_STR(config_get(&c, "c"), "2");
	ASSERT(config_get(&c, "d") == NULL);
	config_free(&c);
}

static void nested_if_inside_a_false_branch_stays_off(void)
{
	struct config c;
	char err[256];
	const char *text = "<if defined(nope)>\n<if !defined(nope)>\nX 1\n</if>\n<else>\nY 1\n</if>\n";
	ASSERT_EQ(parse(text, &c, err, sizeof err), 0);
	ASSERT(config_get(&c, "x") == NULL);
	ASSERT_STR(config_get(&c, "y"), "1");
	config_free(&c);
}

static void predefined_platform_keys_are_set(void)
{
	struct config c;
	char err[256];
	ASSERT_EQ(parse("<if defined(unix)>\nU 1\n</if>\n<if defined(windows)>\nW 1\n</if>\n", &c,
			  err, sizeof err),
		0);
	int win = strcmp(os_name(), "windows") == 0;
	ASSERT(win ? config_get(&c, "w") != NULL : config_get(&c, "u") != NULL);
	ASSERT(win ? config_get(&c, "u") == NULL : config_get(&c, "w") == NULL);
	config_free(&c);
}

static void unbalanced_blocks_report_file_and_line(void)
{
	struct config c;
	char err[256];
	ASSERT_EQ(parse("A 1\n<if defined(a)>\nB 2\n", &c, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") != NULL);
	config_free(&c);
	ASSERT_EQ(parse("</if>\n", &c, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:1:") != NULL);
	config_free(&c);
	ASSERT_EQ(parse("\n<if frob(x)>\n</if>\n", &c, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") != NULL);
	config_free(&c);
}

static int apply(const char *text, struct settings *s, char *err, size_t errlen)
{
	struct config c;
	if (parse(text, &c, err, errlen) != 0) {
		return -1;
	}
	int rc = config_apply(s, &c, err, errlen);
	config_free(&c);
	return rc;
}

static void typed_values_are_parsed(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("ServerName mx.example.org\nSMTPPort 2526\nMessageSizeLimit 10M\n"
			"EnforceFQDN yes\nLoadScript a.lua\nLoadScript b.lua\nEnablePOP3 off\n",
			  &s, err, sizeof err),
		0);
	ASSERT_STR(s.server_name, "mx.example.org");
	ASSERT_EQ(s.smtp_port, 2526);
	ASSERT_EQ(s.message_size_limit, 10 * 1024 * 1024);
	ASSERT_EQ(s.enforce_fqdn, 1);
	ASSERT_EQ(s.pop3_enable, 0);
	ASSERT_EQ(s.nscripts, 2);
	ASSERT_STR(s.scripts[1], "b.lua");
	ASSERT_EQ(s.max_recipients, 100);
	settings_free(&s);
}

static void bad_values_stop_with_file_line_and_reason(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("ServerName x\nSMTPPort 70000\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") && strstr(err, "SMTPPort"));
	settings_free(&s);
	ASSERT_EQ(apply("EnableSMTP maybe\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:1:") && strstr(err, "EnableSMTP"));
	settings_free(&s);
	ASSERT_EQ(apply("MessageSizeLimit 12Q\n", &s, err, sizeof err), -1);
	settings_free(&s);
	ASSERT_EQ(apply("SMTPPort\n", &s, err, sizeof err), -1);
	settings_free(&s);
	ASSERT_EQ(apply("SMTPPort -1\n", &s, err, sizeof err), -1);
	settings_free(&s);
}

static void web_admin_settings(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("ServerName x\n", &s, err, sizeof err), 0);
	ASSERT_EQ(s.webadmin_enable, 1); /* on, but on this host only */
	ASSERT_STR(s.webadmin_bind, "127.0.0.1");
	ASSERT_EQ(s.webadmin_port, 2580);
	ASSERT_STR(s.webadmin_users, "");
	settings_free(&s);
	ASSERT_EQ(apply("WebAdmin a@x.org\nwebadmin b@x.org c@y.org\nWebAdminPort 8080\n"
			"EnableWebAdmin no\nWebAdminBind ::1\n",
			  &s, err, sizeof err),
		0);
	ASSERT_STR(s.webadmin_users, "a@x.org b@x.org c@y.org");
	ASSERT_EQ(s.webadmin_port, 8080);
	ASSERT_EQ(s.webadmin_enable, 0);
	ASSERT_STR(s.webadmin_bind, "::1");
	settings_free(&s);
	ASSERT_EQ(apply("WebAdmin <b>@x.org\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:1:") && strstr(err, "WebAdmin"));
	settings_free(&s);
}

static void obsolete_directives_are_accepted(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("DatabaseEngine sqlite3\nDataFolder db\nMySQLHost x\nLoadModule m.so\n", &s,
			  err, sizeof err),
		0);
	ASSERT_STR(config_get(&s.raw, "datafolder"), "db");
	settings_free(&s);
}

static void the_shipped_rumble_conf_loads(void)
{
	struct config c = {0};
	struct settings s;
	char err[256];
	ASSERT_EQ(config_load(&c, "conf/rumble.conf", err, sizeof err), 0);
	ASSERT_EQ(config_apply(&s, &c, err, sizeof err), 0);
	ASSERT_STR(s.storage, "data");
	settings_free(&s);
	config_free(&c);
}

void tests_config(void)
{
	RUN(keys_are_case_insensitive_and_comments_ignored,
		"config keys are case-insensitive and comments are ignored");
	RUN(repeated_keys_keep_every_value_and_last_wins,
		"config keeps every value of a repeated key, the last one wins");
	RUN(if_blocks_choose_one_branch, "config <if>/<else-if>/<else> choose one branch");
	RUN(nested_if_inside_a_false_branch_stays_off, "config nested <if> in a false branch stays off");
	RUN(predefined_platform_keys_are_set, "config predefines windows/unix/linux");
	RUN(unbalanced_blocks_report_file_and_line, "config reports bad blocks with file:line");
	RUN(typed_values_are_parsed, "config turns values into typed settings");
	RUN(bad_values_stop_with_file_line_and_reason, "config bad values give file:line: reason");
	RUN(web_admin_settings, "config WebAdmin* directives: defaults, repeated WebAdmin lines");
	RUN(obsolete_directives_are_accepted, "config accepts the original's obsolete directives");
	RUN(the_shipped_rumble_conf_loads, "config conf/rumble.conf loads");
}
