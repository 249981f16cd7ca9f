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

static void a_parsed_file_keeps_every_line_of_a_repeated_key(void)
{
	struct config c;
	char err[256];
	ASSERT_EQ(parse("LoadScript a.lua\nLoadScript b.lua\n", &c, err, sizeof err), 0);
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

/* Notepad on Windows may save UTF-8 with a byte order mark first. */
static void a_byte_order_mark_does_not_hide_the_first_line(void)
{
	struct config c = {0};
	char path[512], err[256];
	snprintf(path, sizeof path, "%s/bom.conf", unit_tmpdir());
	FILE *f = os_fopen(path, "wb");
	ASSERT(f != NULL);
	fputs("\xef\xbb\xbfStorageFolder C:\\Users\\Jos\xc3\xa9\n", f);
	fclose(f);
	ASSERT_EQ(config_load(&c, path, err, sizeof err), 0);
	ASSERT_STR(config_get(&c, "storagefolder"), "C:\\Users\\Jos\xc3\xa9");
	config_free(&c);
}

/* The log lines at or above level that config_apply(text) gives: those
 * after a marker line in the log's ring. */
struct lines {
	char text[8192];
};

static void keep_line(const char *line, void *arg)
{
	struct lines *l = arg;
	size_t n = strlen(l->text);
	if (strstr(line, "unit: config log starts")) {
		n = 0;
	}
	snprintf(l->text + n, sizeof l->text - n, "%s\n", line);
}

static int apply_logged(const char *text, struct settings *s, struct lines *out, int level)
{
	char err[256];
	log_set_level(level);
	log_msg(level, "unit: config log starts");
	int rc = apply(text, s, err, sizeof err);
	log_set_level(LOG_ERROR);
	out->text[0] = '\0';
	log_ring_each(keep_line, out);
	return rc;
}

static void typed_settings_keep_the_first_value_as_the_original(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("ServerName first.example\nSMTPPort 2601\nservername second.example\n"
			"SMTPPort 2602\nLoadScript a.lua\nLoadScript b.lua\nWebAdmin a@x.org\n"
			"WebAdmin b@x.org\nMyScriptKey one\nMyScriptKey two\n",
			  &s, err, sizeof err),
		0);
	ASSERT_STR(s.server_name, "first.example");
	ASSERT_EQ(s.smtp_port, 2601);
	ASSERT_EQ(s.nscripts, 2); /* lists keep every line */
	ASSERT_STR(s.webadmin_users, "a@x.org b@x.org");
	/* what scripts read is what the server uses */
	ASSERT_STR(config_get(&s.raw, "ServerName"), "first.example");
	ASSERT_STR(config_get(&s.raw, "myscriptkey"), "one");
	settings_free(&s);
	/* a later line is still checked */
	ASSERT_EQ(apply("SMTPPort 25\nSMTPPort notaport\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") && strstr(err, "SMTPPort"));
	settings_free(&s);
}

static void a_repeated_directive_is_a_warning_naming_the_first(void)
{
	struct settings s;
	struct lines l;
	ASSERT_EQ(apply_logged("ServerName a\n\nServerName b\n", &s, &l, LOG_WARN), 0);
	ASSERT(strstr(l.text, "warn  t.conf:3: ServerName given again; the first value (line 1)"));
	settings_free(&s);
}

static void predefined_keys_of_the_original_are_set(void)
{
	struct config c;
	char err[256];
	const char *text = "<if defined(x64)>\nA 1\n</if>\n<if defined(x86)>\nB 1\n</if>\n"
			   "<if compare(architecture = 64)>\nC 64\n<else-if "
			   "compare(architecture = 32)>\nC 32\n</if>\n"
			   "<if defined(cygwin)>\nD 1\n<else>\nD 0\n</if>\n"
			   "<if compare(x64 = 1)>\nE 1\n</if>\n"
			   "architecture 16\n<if compare(architecture = 16)>\nF 1\n</if>\n";
	ASSERT_EQ(parse(text, &c, err, sizeof err), 0);
	int b64 = sizeof(void *) == 8;
	ASSERT(b64 ? config_get(&c, "a") != NULL : config_get(&c, "a") == NULL);
	ASSERT(b64 ? config_get(&c, "b") == NULL : config_get(&c, "b") != NULL);
	ASSERT_STR(config_get(&c, "c"), b64 ? "64" : "32");
	ASSERT_STR(config_get(&c, "d"), "0"); /* never Cygwin */
	ASSERT(b64 ? config_get(&c, "e") != NULL : config_get(&c, "e") == NULL);
	ASSERT(config_get(&c, "f") == NULL); /* set before the file: first wins */
	config_free(&c);
}

static void compare_orders_numbers(void)
{
	struct config c;
	char err[256];
	const char *text = "Level 10\nName abc\n"
			   "<if compare(level > 9)>\nA 1\n</if>\n"
			   "<if compare(level < 9)>\nB 1\n</if>\n"
			   "<if compare(level >= 10)>\nC 1\n</if>\n"
			   "<if compare(level<=9.5)>\nD 1\n</if>\n"
			   "<if compare(level <= 10)>\nE 1\n</if>\n"
			   "<if compare(level = 10.0)>\nF 1\n</if>\n"
			   "<if compare(name > 1)>\nG 1\n</if>\n"
			   "<if compare(unset < 1)>\nH 1\n</if>\n"
			   "<if compare(level == 10)>\nI 1\n</if>\n"
			   "<if compare(name != ABC)>\nJ 1\n</if>\n"
			   "<if compare(architecture >= 32)>\nK 1\n</if>\n";
	ASSERT_EQ(parse(text, &c, err, sizeof err), 0);
	ASSERT(config_get(&c, "a") != NULL);
	ASSERT(config_get(&c, "b") == NULL);
	ASSERT(config_get(&c, "c") != NULL);
	ASSERT(config_get(&c, "d") == NULL);
	ASSERT(config_get(&c, "e") != NULL);
	ASSERT(config_get(&c, "f") != NULL); /* as numbers */
	ASSERT(config_get(&c, "g") == NULL); /* not a number: false */
	ASSERT(config_get(&c, "h") == NULL);
	ASSERT(config_get(&c, "i") != NULL);
	ASSERT(config_get(&c, "j") == NULL); /* text compares without case */
	ASSERT(config_get(&c, "k") != NULL);
	config_free(&c);
	ASSERT_EQ(parse("\n<if compare(level < ten)>\n</if>\n", &c, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") && strstr(err, "number"));
	config_free(&c);
	ASSERT_EQ(parse("<if compare(level => 1)>\n</if>\n", &c, err, sizeof err), -1);
	config_free(&c);
}

static void ignore_mx_takes_the_originals_host_list(void)
{
	struct settings s;
	char err[256];
	const char *list = "IgnoreMX mx.FakeMX.net mx.fakemx.com,mx.fakemx.org.\n";
	ASSERT_EQ(apply(list, &s, err, sizeof err), 0);
	ASSERT_EQ(s.ignore_mx, 0);
	ASSERT_STR(s.ignore_mx_hosts, "mx.fakemx.net mx.fakemx.com mx.fakemx.org.");
	settings_free(&s);
	ASSERT_EQ(apply("IgnoreMX yes\n", &s, err, sizeof err), 0);
	ASSERT_EQ(s.ignore_mx, 1);
	ASSERT_STR(s.ignore_mx_hosts, "");
	settings_free(&s);
	ASSERT_EQ(apply("\nIgnoreMX mx.example/x\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") && strstr(err, "IgnoreMX"));
	settings_free(&s);
}

static void outgoing_bind_address_is_checked_at_start_up(void)
{
	struct settings s;
	char err[256];
	ASSERT_EQ(apply("OutgoingBindToAddress 127.0.0.2\n", &s, err, sizeof err), 0);
	ASSERT_STR(s.outbound_bind, "127.0.0.2");
	settings_free(&s);
	ASSERT_EQ(apply("OutgoingBindToAddress 0.0.0.0\n", &s, err, sizeof err), 0);
	ASSERT_STR(s.outbound_bind, ""); /* the original's "any" */
	settings_free(&s);
	ASSERT_EQ(apply("\nOutgoingBindToAddress mail.example.org\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:2:") && strstr(err, "OutgoingBindToAddress"));
	settings_free(&s);
	/* TEST-NET-1: an address, but not one of this host */
	ASSERT_EQ(apply("OutgoingBindToAddress 192.0.2.77\n", &s, err, sizeof err), -1);
	ASSERT(strstr(err, "t.conf:1:") && strstr(err, "OutgoingBindToAddress"));
	settings_free(&s);
}

static void an_unknown_directive_is_a_warning_with_the_closest_name(void)
{
	struct settings s;
	struct lines l;
	ASSERT_EQ(apply_logged("ServerNmae x\nSMTPPrt 25\nmaxrecipient 5\nZebraCrossing 1\n", &s,
			  &l, LOG_WARN),
		0);
	ASSERT(strstr(l.text,
		"warn  t.conf:1: unknown directive 'ServerNmae' (did you mean 'ServerName'?)"));
	ASSERT(strstr(l.text, "t.conf:2: unknown directive 'SMTPPrt' (did you mean 'SMTPPort'?)"));
	ASSERT(strstr(l.text, "t.conf:3: unknown directive 'maxrecipient' (did you mean "
			      "'MaxRecipients'?)"));
	ASSERT(strstr(l.text, "t.conf:4: unknown directive 'ZebraCrossing'") &&
		!strstr(strstr(l.text, "ZebraCrossing"), "did you mean"));
	ASSERT_STR(config_get(&s.raw, "ZebraCrossing"), "1"); /* scripts may read it */
	settings_free(&s);
}

/* Every directive name of the original's shipped config/rumble.conf, its
 * block structure, with values of our own. */
static const char original_conf[] =
	"# like the original Rumble's rumble.conf\n"
	"ServerName          mail.example.test\n"
	"RunAs               rumble\n"
	"RunAsGroup\t\t\trumble\n"
	"DatabaseEngine      sqlite\n"
	"DataFolder          db\n"
	"<if compare(databaseengine = mysql)>\n"
	"\tComment\t\t\tusing MySQL\n"
	"\tMySQLHost\t\tdb.example.test\n\tMySQLPort\t\t3306\n\tMySQLUser\t\tmail\n"
	"\tMySQLPass\t\tpw\n\tMySQLDB\t\t\tmail\n\tMySQLConnections\t4\n"
	"</if>\n"
	"<if defined(windows)>\n"
	"\tComment\t\t\tWindows storage\n\tStorageFolder       C:/Mail/storage\n"
	"<else>\n"
	"\tComment\t\t\tPOSIX storage\n\tStorageFolder       /srv/mail\n"
	"</if>\n"
	"ForceIPv4              1\n"
	"BindToAddress          0.0.0.0\n"
	"OutgoingBindToAddress  0.0.0.0\n"
	"EnableSMTP          1\nSMTPPort            25\n"
	"MessageSizeLimit    52428800\nEnforceFQDN\t\t\t1\n"
	"EnablePOP3          1\nPOP3Port            110\n"
	"EnableIMAP4         1\nIMAP4Port           143\n"
	"IgnoreMX                mx.fake.example mx.fake.example.net\n"
	"DeliveryAttempts\t\t4\nRetryInterval\t\t\t300\n"
	"LoadScript           scripts/admin.lua\n"
	"<if defined(unix)>\n"
	"    Comment              POSIX modules\n"
	"    LoadModule           modules/one.so\n    LoadModule           modules/two.so\n"
	"<else-if defined(cygwin)>\n"
	"    LoadModule           modules/one_cygwin.dll\n"
	"\t<if exists(modules/two_cygwin.dll)>\n\t\tLoadModule modules/two_cygwin.dll\n\t</if>\n"
	"<else-if defined(windows)>\n"
	"    <if compare(architecture = 64)>\n"
	"        LoadModule           modules/one_win64.dll\n"
	"        <if exists(modules/two_win64.dll)>\n"
	"            LoadModule       modules/two_win64.dll\n"
	"        <else>\n            Comment          no two_win64.dll\n        </if>\n"
	"    <else>\n        LoadModule           modules/one_win32.dll\n    </if>\n"
	"</if>\n";

static void the_originals_rumble_conf_loads(void)
{
	struct settings s;
	struct lines l;
	ASSERT_EQ(apply_logged(original_conf, &s, &l, LOG_INFO), 0);
	int win = strcmp(os_name(), "windows") == 0;
	ASSERT_STR(s.storage, win ? "C:/Mail/storage" : "/srv/mail");
	ASSERT_STR(s.ignore_mx_hosts, "mx.fake.example mx.fake.example.net");
	ASSERT_EQ(s.ignore_mx, 0);
	ASSERT_EQ(s.delivery_attempts, 4);
	ASSERT_EQ(s.retry_interval, 300);
	ASSERT_EQ(s.message_size_limit, 52428800);
	ASSERT_EQ(s.nscripts, 1);
	ASSERT_STR(s.outbound_bind, "");
	ASSERT(!strstr(l.text, "unknown directive"));
	ASSERT(strstr(l.text, win ? "Windows storage" : "POSIX storage"));
	ASSERT(strstr(l.text, "DataFolder has no effect here"));
	ASSERT(!strstr(l.text, "MySQLHost")); /* in a branch not taken */
	settings_free(&s);
}

void tests_config(void)
{
	RUN(keys_are_case_insensitive_and_comments_ignored,
		"config keys are case-insensitive and comments are ignored");
	RUN(a_parsed_file_keeps_every_line_of_a_repeated_key,
		"config parsing keeps every line of a repeated key");
	RUN(if_blocks_choose_one_branch, "config <if>/<else-if>/<else> choose one branch");
	RUN(nested_if_inside_a_false_branch_stays_off, "config nested <if> in a false branch stays off");
	RUN(predefined_platform_keys_are_set, "config predefines windows/unix/linux");
	RUN(unbalanced_blocks_report_file_and_line, "config reports bad blocks with file:line");
	RUN(typed_values_are_parsed, "config turns values into typed settings");
	RUN(bad_values_stop_with_file_line_and_reason, "config bad values give file:line: reason");
	RUN(web_admin_settings, "config WebAdmin* directives: defaults, repeated WebAdmin lines");
	RUN(obsolete_directives_are_accepted, "config accepts the original's obsolete directives");
	RUN(the_shipped_rumble_conf_loads, "config conf/rumble.conf loads");
	RUN(a_byte_order_mark_does_not_hide_the_first_line,
		"config skips a UTF-8 byte order mark before the first line");
	RUN(typed_settings_keep_the_first_value_as_the_original,
		"config a key given twice keeps its first value (lists all), later ones are checked");
	RUN(a_repeated_directive_is_a_warning_naming_the_first,
		"config a repeated directive warns with file:line and the first line");
	RUN(predefined_keys_of_the_original_are_set,
		"config predefines the original's x64/x86/architecture/cygwin");
	RUN(compare_orders_numbers, "config compare() has < > <= >= on numbers");
	RUN(ignore_mx_takes_the_originals_host_list, "config IgnoreMX takes a host list or yes/no");
	RUN(outgoing_bind_address_is_checked_at_start_up,
		"config OutgoingBindToAddress must be an address of this host (file:line)");
	RUN(an_unknown_directive_is_a_warning_with_the_closest_name,
		"config an unknown directive warns with file:line and the closest name");
	RUN(the_originals_rumble_conf_loads, "config the original Rumble's rumble.conf loads");
}
