/* test_log.c - the log file: reopened under its name, rotated by size,
 * values made safe for one key=value line; SMTP's outcome lines. */
#include <stdio.h>
#include <stdlib.h>

#include "policy.h"
#include "tests/unit.h"

/* The whole file at path ("" when missing), to be freed. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text = xcalloc(1, 65536);
	if (f) {
		text[fread(text, 1, 65535, f)] = '\0';
		fclose(f);
	}
	return text;
}

static int lines_in(const char *path)
{
	char *text = slurp(path);
	int n = 0;
	for (char *p = text; *p; p++) {
		n += *p == '\n';
	}
	free(text);
	return n;
}

/* Back to stderr and the unit tests' level. */
static void log_back(void)
{
	log_rotate(0, 5);
	log_open(NULL);
	log_set_level(LOG_ERROR);
}

static void the_log_file_is_rotated_by_size_keeping_log_keep_files(void)
{
	char path[600], name[620];
	snprintf(path, sizeof path, "%s/rumble.log", unit_tmpdir());
	ASSERT_EQ(log_open(path), 0);
	log_set_level(LOG_INFO);
	log_rotate(2000, 2);
	for (int i = 0; i < 100; i++) { /* ~65 bytes a line: 6,500 bytes */
		log_info("unit: rotation line %03d padding padding padding", i);
	}
	log_back();
	int total = lines_in(path);
	char *last = slurp(path);
	for (int i = 1; i <= 3; i++) {
		snprintf(name, sizeof name, "%s.%d", path, i);
		total += i <= 2 ? lines_in(name) : 0;
		if (i == 3) {
			FILE *f = fopen(name, "rb");
			ASSERT(f == NULL); /* LogKeep 2: .3 never made */
		}
	}
	snprintf(name, sizeof name, "%s.1", path);
	char *first = slurp(name);
	/* the newest lines are in rumble.log, those just before in .1; none split */
	int ok = strstr(last, "rotation line 099") != NULL && strstr(first, "line 099") == NULL &&
	         lines_in(name) >= 25 && lines_in(path) < 32;
	free(last);
	free(first);
	ASSERT(ok);
	ASSERT(total >= 55 && total < 100); /* the oldest went with the third rotation */
}

static void the_log_file_is_opened_again_after_it_was_moved(void)
{
	char path[600], moved[620];
	snprintf(path, sizeof path, "%s/rumble.log", unit_tmpdir());
	snprintf(moved, sizeof moved, "%s.old", path);
	ASSERT_EQ(log_open(path), 0);
	log_set_level(LOG_INFO);
	log_info("unit: before the move");
	ASSERT_EQ(os_rename_atomic(path, moved), 0);
	log_info("unit: after the move, before reopening");
	ASSERT_EQ(log_reopen(), 0);
	log_info("unit: after reopening");
	log_back();
	char *old = slurp(moved), *now = slurp(path);
	int ok = strstr(old, "before the move") && strstr(old, "before reopening") &&
	         !strstr(old, "after reopening") && strstr(now, "after reopening") &&
	         !strstr(now, "before");
	free(old);
	free(now);
	ASSERT(ok);
}

static void log_values_lose_control_characters_quotes_and_unquoted_spaces(void)
{
	char out[32];
	ASSERT_STR(log_value(out, sizeof out, "a\"b c\td\x7f", 1), "a'b c?d?");
	ASSERT_STR(log_value(out, sizeof out, "x client=1.2.3.4", 0), "x?client=1.2.3.4");
	ASSERT_STR(log_value(out, 4, "abcdef", 1), "abc");
}

/* ---- SMTP's outcome lines, from an in-memory session ---- */

static struct service smtp_svc = {.name = "smtp", .proto = &smtp_proto};

static void keep_line(const char *line, void *arg)
{
	struct buf *b = arg;
	buf_printf(b, "%s\n", line);
}

/* Lines of the log ring that contain what, joined in out. */
static int ring_has(const char *what, struct buf *all)
{
	buf_reset(all);
	log_ring_each(keep_line, all);
	return all->data && strstr(all->data, what) != NULL;
}

static int setup_store(struct settings *saved)
{
	char text[700], err[256];
	const char *dir = unit_tmpdir();
	struct config c = {0};
	*saved = conf;
	snprintf(text, sizeof text,
	        "ServerName mx.test\nStorageFolder %s\nDKIMVerify 0\nDMARC 0\n"
	        "MessageSizeLimit 2K\n",
	        dir);
	if (config_parse(&c, text, "t", err, sizeof err) != 0 ||
	        config_apply(&conf, &c, err, sizeof err) != 0) {
		return -1;
	}
	struct mm_account a = {.type = MM_MBOX};
	rl_strlcpy(a.domain, "example.org", sizeof a.domain);
	rl_strlcpy(a.user, "john", sizeof a.user);
	if (mm_open(dir, err, sizeof err) != 0 || mm_domain_add("example.org", err, sizeof err) ||
	        crypto_password_hash("secret", a.password, sizeof a.password) ||
	        mm_account_save(&a, err, sizeof err) != 0) {
		return -1;
	}
	return queue_start();
}

static void feed(struct session *s, const char *text)
{
	session_mem_feed(s, text, strlen(text));
	session_mem_run(s, 10000);
	buf_reset(&s->out);
}

static void smtp_logs_one_line_per_refusal_and_per_accepted_message(void)
{
	struct settings saved;
	struct buf all;
	char big[3000];
	char path[600];
	ASSERT_EQ(setup_store(&saved), 0);
	snprintf(path, sizeof path, "%s/smtp.log", unit_tmpdir());
	log_open(path); /* not the test's output */
	log_set_level(LOG_INFO);
	buf_init(&all);
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.7");
	feed(s, "EHLO client.test\r\nMAIL FROM:<x@remote.test>\r\n"
	        "RCPT TO:<nobody@example.org>\r\nRCPT TO:<a@elsewhere.test>\r\n"
	        "RCPT TO:<john@example.org>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n");
	memset(big, 'x', sizeof big - 3);
	memcpy(big + sizeof big - 3, "\r\n", 3);
	feed(s, "MAIL FROM:<y@remote.test>\r\nRCPT TO:<john@example.org>\r\nDATA\r\n");
	feed(s, big);
	feed(s, ".\r\nNOOP\r\nBOGUS\r\n");
	session_mem_close(s);
	queue_stop();
	log_back();
	config_free(&conf.raw);
	conf = saved;
	ASSERT(ring_has("smtp result=refused client=192.0.2.7 code=550 status=5.1.1 cmd=rcpt "
	                "user=none helo=client.test from=<x@remote.test> to=<nobody@example.org> "
	                "reason=\"<nobody@example.org>: Recipient address rejected: User unknown\"",
	        &all));
	ASSERT(ring_has("result=refused client=192.0.2.7 code=554 status=5.7.1 cmd=rcpt", &all));
	ASSERT(ring_has(
	        "to=<a@elsewhere.test> reason=\"<a@elsewhere.test>: Relay access denied\"", &all));
	ASSERT(ring_has("smtp result=accepted client=192.0.2.7 qid=", &all));
	ASSERT(ring_has(" tls=none cipher=none user=none helo=client.test from=<x@remote.test> "
	                "rcpts=1 to=<john@example.org>\n",
	        &all));
	ASSERT(ring_has("result=refused client=192.0.2.7 code=552 status=5.3.4 cmd=eom user=none "
	                "helo=client.test from=<y@remote.test> to=<john@example.org>",
	        &all));
	ASSERT(!ring_has("BOGUS", &all) && !ring_has("code=500", &all)); /* debug only */
	buf_free(&all);
}

void tests_log(void)
{
	RUN(the_log_file_is_rotated_by_size_keeping_log_keep_files,
	        "log: the file is rotated by size, LogKeep files kept, no line split");
	RUN(the_log_file_is_opened_again_after_it_was_moved,
	        "log: reopening writes to a new file under the name, the moved one has the rest");
	RUN(log_values_lose_control_characters_quotes_and_unquoted_spaces,
	        "log: values lose control characters, double quotes and (unquoted) spaces");
	RUN(smtp_logs_one_line_per_refusal_and_per_accepted_message,
	        "log: SMTP logs one result= line per refusal and per accepted message");
}
