/* test_session.c - SMTP and POP3 driven through in-memory sessions
 * (session_mem_*): command lines and DATA in, replies out, no socket. */
#include <stdio.h>
#include <stdlib.h>

#include "policy.h"
#include "tests/unit.h"

static struct service smtp_svc = {.name = "smtp", .proto = &smtp_proto};
static struct service pop3_svc = {.name = "pop3", .proto = &pop3_proto};
static struct settings saved;

/* A storage folder with example.org: john (a mailbox, password
 * "secret"), and conf as rumble.conf would set it; the queue running. */
static int setup(void)
{
	char text[700], err[256];
	const char *dir = unit_tmpdir();
	struct config c = {0};
	saved = conf;
	/* no DKIM/DMARC: they would ask DNS (test_authres.c tests them) */
	snprintf(text, sizeof text, "ServerName mx.test\nStorageFolder %s\nDKIMVerify 0\nDMARC 0\n",
	        dir);
	if (config_parse(&c, text, "t", err, sizeof err) != 0 ||
	        config_apply(&conf, &c, err, sizeof err) != 0) {
		return -1;
	}
	log_set_level(LOG_ERROR);
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

static void teardown(void)
{
	queue_stop();
	config_free(&conf.raw);
	conf = saved;
}

/* Feeds text and waits for the work it started; the replies since the
 * last call, in out (the session's buffer is emptied). */
static const char *talk(struct session *s, const char *text)
{
	static char out[8192];
	session_mem_feed(s, text, strlen(text));
	session_mem_run(s, 10000);
	size_t n = s->out.len < sizeof out - 1 ? s->out.len : sizeof out - 1;
	memcpy(out, s->out.data ? s->out.data : "", n);
	out[n] = '\0';
	buf_reset(&s->out);
	return out;
}

/* The text of john's INBOX mbox file ("" when none), to be freed. */
static char *inbox(void)
{
	char dir[600], base[700], path[710];
	mm__folder_base("example.org", "john", "INBOX", dir, sizeof dir, base, sizeof base);
	snprintf(path, sizeof path, "%s.mbox", base);
	FILE *f = fopen(path, "rb");
	char *text = xcalloc(1, 65536);
	if (f) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
		fclose(f);
	}
	return text;
}

static void an_smtp_transaction_runs_without_a_socket(void)
{
	ASSERT_EQ(setup(), 0);
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.7");
	ASSERT_STR(talk(s, ""), "220 mx.test ESMTP Rumble\r\n");
	const char *r = talk(s, "EHLO client.test\r\n");
	ASSERT(strncmp(r, "250-mx.test Hello client.test [192.0.2.7]\r\n", 43) == 0);
	ASSERT(strstr(r, "250-PIPELINING\r\n") && strstr(r, "250 SMTPUTF8\r\n"));
	ASSERT_STR(talk(s, "MAIL FROM:<a@remote.test> SIZE=100\r\n"), "250 2.1.0 Ok\r\n");
	ASSERT_STR(talk(s, "RCPT TO:<john@example.org>\r\n"), "250 2.1.5 Ok\r\n");
	ASSERT_STR(talk(s, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	ASSERT_STR(talk(s, "Subject: hi\r\n\r\nline one\r\n"), "");
	r = talk(s, "..starts with a dot\r\n.\r\n");
	ASSERT(strncmp(r, "250 2.0.0 Ok: queued as ", 24) == 0);
	ASSERT_STR(talk(s, "QUIT\r\n"), "221 2.0.0 mx.test closing connection\r\n");
	ASSERT(s->closing);
	session_mem_close(s);
	char *box = inbox();
	int ok = strstr(box, "Received: from client.test ([192.0.2.7])") &&
	         strstr(box, "Subject: hi\n\nline one\n.starts with a dot\n");
	free(box);
	teardown();
	ASSERT(ok);
}

static void pipelined_smtp_commands_are_answered_in_order(void)
{
	ASSERT_EQ(setup(), 0);
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.7");
	const char *r = talk(s, "HELO client.test\r\n"
	                        "MAIL FROM:<a@remote.test>\r\n"
	                        "RCPT TO:<john@example.org>\r\n"
	                        "RCPT TO:<nobody@example.org>\r\n"
	                        "RCPT TO:<someone@remote.test>\r\n"
	                        "DATA\r\n"
	                        "Subject: piped\r\n\r\nhello\r\n.\r\n"
	                        "NOOP\r\n"
	                        "QUIT\r\n");
	const char *want[] = {"220 mx.test ESMTP Rumble", "250 mx.test", "250 2.1.0 Ok",
	        "250 2.1.5 Ok", "550 5.1.1 <nobody@example.org>: Recipient address rejected",
	        "554 5.7.1 <someone@remote.test>: Relay access denied", "354 End data",
	        "250 2.0.0 Ok: queued as ", "250 2.0.0 Ok", "221 2.0.0 mx.test closing"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		if (strncmp(r, want[i], strlen(want[i])) != 0) {
			char m[300];
			snprintf(m, sizeof m, "reply %zu: want \"%s\", got \"%.60s\"", i, want[i],
			        r);
			unit_fail(__FILE__, __LINE__, m);
			break;
		}
		r = strstr(r, "\r\n") + 2;
	}
	ASSERT_STR(r, "");
	session_mem_close(s);
	teardown();
}

static void bad_smtp_commands_get_errors_and_too_many_close(void)
{
	ASSERT_EQ(setup(), 0);
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.7");
	talk(s, "");
	ASSERT_STR(talk(s, "FROB x\r\n"), "500 5.5.2 Error: command not recognized\r\n");
	ASSERT_STR(talk(s, "MAIL FROM:<a@remote.test>\r\n"),
	        "503 5.5.1 Error: send HELO/EHLO first\r\n");
	ASSERT_STR(talk(s, "HELO\r\n"), "501 5.5.4 Syntax: HELO needs an argument\r\n");
	ASSERT_STR(talk(s, "DATA\r\n"), "503 5.5.1 Error: bad sequence of commands\r\n");
	ASSERT_STR(talk(s, "HELO client.test\r\n"), "250 mx.test\r\n");
	ASSERT_STR(talk(s, "MAIL FROM:<a b@remote.test>\r\n"),
	        "501 5.1.7 Bad sender address syntax\r\n");
	char nul[] = "NOOP\0x\r\n";
	session_mem_feed(s, nul, sizeof nul - 1);
	ASSERT_STR(talk(s, ""), "500 5.5.2 Error: NUL in command\r\n");
	ASSERT(!s->closing);
	const char *r = "";
	for (int i = 0; i < 10 && !s->closing; i++) {
		r = talk(s, "FROB\r\n");
	}
	ASSERT(s->closing);
	ASSERT(strstr(r, "421 4.7.0 mx.test Error: too many errors\r\n") != NULL);
	session_mem_close(s);
	teardown();
}

static void a_pop3_session_runs_without_a_socket(void)
{
	ASSERT_EQ(setup(), 0);
	struct queue_msg *m = queue_msg_new("a@remote.test");
	queue_msg_add_rcpt(m, "john@example.org");
	const char msg[] = "Subject: pop\r\n\r\n.dot line\r\nend\r\n";
	spool_write(&m->body, msg, sizeof msg - 1);
	ASSERT_EQ(queue_commit_wait(m), 0);
	queue_msg_free(m);
	struct session *s = session_mem_open(&pop3_svc, "127.0.0.1");
	ASSERT(strncmp(talk(s, ""), "+OK", 3) == 0);
	ASSERT(strncmp(talk(s, "USER john@example.org\r\n"), "+OK", 3) == 0);
	ASSERT(strncmp(talk(s, "PASS wrong\r\n"), "-ERR", 4) == 0);
	ASSERT(strncmp(talk(s, "USER john@example.org\r\n"), "+OK", 3) == 0);
	ASSERT(strncmp(talk(s, "PASS secret\r\n"), "+OK", 3) == 0);
	char want[64];
	snprintf(want, sizeof want, "+OK 1 %zu\r\n", sizeof msg - 1);
	ASSERT_STR(talk(s, "STAT\r\n"), want);
	const char *r = talk(s, "RETR 1\r\n");
	ASSERT(strncmp(r, "+OK", 3) == 0);
	ASSERT(strstr(r, "\r\nSubject: pop\r\n\r\n..dot line\r\nend\r\n.\r\n") != NULL);
	ASSERT(strncmp(talk(s, "FROB\r\n"), "-ERR", 4) == 0);
	ASSERT(strncmp(talk(s, "QUIT\r\n"), "+OK", 3) == 0);
	ASSERT(s->closing);
	session_mem_close(s);
	teardown();
}

static void the_policy_chain_greylists_a_local_recipient_of_a_remote_client(void)
{
	ASSERT_EQ(setup(), 0);
	conf.greylist = 1;
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.8");
	const char *r = talk(s, "HELO client.test\r\nMAIL FROM:<grey@remote.test>\r\n"
	                        "RCPT TO:<john@example.org>\r\nRCPT TO:<nobody@example.org>\r\n");
	int ok = strstr(r, "451 4.7.1 <john@example.org>: Recipient address rejected: "
	                   "Greylisted, try again later\r\n550 5.1.1 <nobody@example.org>") != NULL;
	session_mem_close(s);
	s = session_mem_open(&smtp_svc, "127.0.0.1"); /* this host is not greylisted */
	r = talk(s, "HELO client.test\r\nMAIL FROM:<grey@remote.test>\r\n"
	            "RCPT TO:<john@example.org>\r\n");
	ok = ok && strstr(r, "250 2.1.5 Ok\r\n") != NULL;
	session_mem_close(s);
	greylist_free();
	teardown();
	ASSERT(ok);
}

/* SPF's callback comes before its step returns here (no helper thread):
 * the chain takes it as the step's answer. */
static void the_policy_chain_checks_spf_and_writes_received_spf_above_received(void)
{
	ASSERT_EQ(setup(), 0);
	conf.spf_check = 1;
	struct session *s = session_mem_open(&smtp_svc, "192.0.2.9");
	const char *r = talk(s, "HELO [192.0.2.9]\r\nMAIL FROM:<>\r\nRCPT TO:<john@example.org>\r\n"
	                        "DATA\r\nSubject: spf\r\n\r\nx\r\n.\r\nQUIT\r\n");
	int ok = strstr(r, "250 2.0.0 Ok: queued as ") != NULL;
	session_mem_close(s);
	char *box = inbox();
	ok = ok && strstr(box, "\nReceived-SPF: none (mx.test: domain of <> no SPF record for "
	                       "192.0.2.9 as permitted sender)\n\tclient-ip=192.0.2.9; "
	                       "envelope-from=<>; helo=[192.0.2.9];\nReceived: from [192.0.2.9]");
	free(box);
	teardown();
	ASSERT(ok);
}

static void header_fields_are_written_in_front_of_a_spooled_message(void)
{
	struct spool sp;
	struct buf h;
	char out[64];
	spool_init(&sp, unit_tmpdir());
	buf_init(&h);
	spool_write(&sp, "Subject: x\r\n\r\nbody\r\n", 21);
	buf_puts(&h, "Authentication-Results: mx.test; none\r\n");
	ASSERT_EQ(policy_prepend(&sp, &h), 0);
	long n = spool_read(&sp, 0, out, sizeof out - 1);
	ASSERT(n > 0);
	out[n] = '\0';
	ASSERT_STR(out, "Authentication-Results: mx.test; none\r\nSubject: x\r\n\r\nbody\r\n");
	buf_free(&h);
	spool_free(&sp);
}

void tests_session(void)
{
	RUN(an_smtp_transaction_runs_without_a_socket,
	        "session an SMTP transaction runs without a socket");
	RUN(pipelined_smtp_commands_are_answered_in_order,
	        "session pipelined SMTP commands are answered in order");
	RUN(bad_smtp_commands_get_errors_and_too_many_close,
	        "session bad SMTP commands get errors, and too many close");
	RUN(a_pop3_session_runs_without_a_socket, "session a POP3 session runs without a socket");
	RUN(the_policy_chain_greylists_a_local_recipient_of_a_remote_client,
	        "session the policy chain greylists a local recipient of a remote client");
	RUN(the_policy_chain_checks_spf_and_writes_received_spf_above_received,
	        "session the policy chain checks SPF and writes Received-SPF above Received");
	RUN(header_fields_are_written_in_front_of_a_spooled_message,
	        "session header fields are written in front of a spooled message");
}
