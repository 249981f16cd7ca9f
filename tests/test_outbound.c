/* test_outbound.c - the pure parts of outbound delivery: the envelope
 * file's round trip, the retry schedule, the DSN's text, and the new
 * directives; the network parts run in tests/e2e/test_outbound.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static const char env_file[] = "from alice@example.org\n"
                               "date 1700000000\n"
                               "attempts 3\n"
                               "next 1700000900\n"
                               "rcpt bob@remote.test\n"
                               "last 451 4.7.1 greylisted\n"
                               "rcpt carol@remote.test\n"
                               "rcpt dave@other.test\n"
                               "last connect to mx[192.0.2.1]:25 failed\n";

static void the_envelope_file_round_trips(void)
{
	struct queue_env e;
	struct buf b;
	ASSERT_EQ(queue__env_parse(env_file, sizeof env_file - 1, &e), 0);
	ASSERT_STR(e.from, "alice@example.org");
	ASSERT_EQ(e.date, 1700000000);
	ASSERT_EQ(e.attempts, 3);
	ASSERT_EQ(e.next, 1700000900);
	ASSERT_EQ(e.n, 3);
	ASSERT_STR(e.rcpts[1], "carol@remote.test");
	ASSERT_STR(e.last[0], "451 4.7.1 greylisted");
	ASSERT(e.last[1] == NULL);
	ASSERT_STR(e.last[2], "connect to mx[192.0.2.1]:25 failed");
	buf_init(&b);
	queue__env_text(&b, &e, NULL);
	ASSERT_STR(b.data, env_file);
	buf_reset(&b);
	int keep[3] = {0, 1, 1};
	queue__env_text(&b, &e, keep);
	ASSERT(strstr(b.data, "bob@") == NULL && strstr(b.data, "greylisted") == NULL);
	ASSERT(strstr(b.data, "rcpt carol@remote.test\nrcpt dave@other.test\nlast connect") !=
	        NULL);
	buf_free(&b);
	queue__env_free(&e);
}

static void old_and_odd_envelopes_still_load(void)
{
	/* the format before per-recipient state; CRLF; unknown keys; a
	 * "last" with no recipient before it */
	static const char old[] =
	        "last stray\r\nfrom \r\ndate 5\r\nfuture key\r\nrcpt a@b.test\r\n";
	struct queue_env e;
	ASSERT_EQ(queue__env_parse(old, sizeof old - 1, &e), 0);
	ASSERT_STR(e.from, "");
	ASSERT_EQ(e.n, 1);
	ASSERT_STR(e.rcpts[0], "a@b.test");
	ASSERT(e.last[0] == NULL);
	ASSERT_EQ(e.attempts, 0);
	queue__env_free(&e);
	ASSERT_EQ(queue__env_parse("rcpt a@b.test\n", 14, &e), -1); /* no sender line */
	queue__env_free(&e);
}

static void retries_back_off_doubling_up_to_the_cap(void)
{
	int ri = conf.retry_interval, rm = conf.retry_max;
	conf.retry_interval = 300;
	conf.retry_max = 3600;
	static const int64_t want[] = {300, 300, 600, 1200, 2400, 3600, 3600};
	for (int i = 0; i < 7; i++) {
		ASSERT_EQ(outbound_backoff(i), want[i]);
	}
	ASSERT_EQ(outbound_backoff(100000), 3600);
	conf.retry_interval = 7200; /* a cap below the start wins */
	ASSERT_EQ(outbound_backoff(1), 3600);
	conf.retry_interval = ri;
	conf.retry_max = rm;
}

static void the_dsn_is_a_multipart_report(void)
{
	struct ob_rcpt r[2];
	struct buf b;
	memset(r, 0, sizeof r);
	r[0].addr = "bob@remote.test";
	r[0].remote = 1;
	rl_strlcpy(r[0].reply, "550 5.1.1 no such user", sizeof r[0].reply);
	rl_strlcpy(r[0].host, "mx.remote.test", sizeof r[0].host);
	rl_strlcpy(r[0].status_code, "5.1.1", sizeof r[0].status_code);
	r[1].addr = "x@nullmx.test";
	rl_strlcpy(
	        r[1].reply, "nullmx.test: the domain accepts no mail (null MX)", sizeof r[1].reply);
	rl_strlcpy(r[1].status_code, "5.1.10", sizeof r[1].status_code);
	const char hdr[] = "Subject: hello\r\nMessage-ID: <1@a>\r\n";
	buf_init(&b);
	/* 2023-11-14 22:13:20 UTC, a Tuesday */
	outbound_dsn(
	        &b, "alice@example.org", 0x1234, 1700000000, 1700000000, r, 2, hdr, sizeof hdr - 1);
	ASSERT(strstr(b.data, "\r\nTo: <alice@example.org>\r\n") != NULL);
	ASSERT(strstr(b.data, "Content-Type: multipart/report; report-type=delivery-status;") !=
	        NULL);
	ASSERT(strstr(b.data, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n") != NULL);
	ASSERT(strstr(b.data, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n") != NULL);
	ASSERT(strstr(b.data, "Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\n"
	                      "Status: 5.1.1\r\nRemote-MTA: dns; mx.remote.test\r\n"
	                      "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != NULL);
	ASSERT(strstr(b.data, "Final-Recipient: rfc822; x@nullmx.test\r\nAction: failed\r\n"
	                      "Status: 5.1.10\r\nDiagnostic-Code: x-rumble; nullmx.test") != NULL);
	ASSERT(strstr(b.data,
	               "text/rfc822-headers\r\n\r\nSubject: hello\r\nMessage-ID: <1@a>\r\n") !=
	        NULL);
	ASSERT(strstr(b.data, "Content-Type: message/delivery-status\r\n") != NULL);
	for (size_t i = 0; i < b.len; i++) {
		ASSERT(b.data[i] != '\n' || (i > 0 && b.data[i - 1] == '\r')); /* CRLF only */
	}
	/* the closing boundary ends it */
	ASSERT(b.len > 4 && !strcmp(b.data + b.len - 4, "--\r\n"));
	buf_free(&b);
}

static void outbound_directives_are_parsed(void)
{
	struct config c = {0};
	struct settings s;
	char err[256];
	ASSERT_EQ(config_parse(&c, "x 1\n", "t", err, sizeof err), 0);
	ASSERT_EQ(config_apply(&s, &c, err, sizeof err), 0);
	ASSERT_EQ(s.queue_lifetime, 5 * 86400);
	ASSERT_EQ(s.retry_interval, 300);
	ASSERT_EQ(s.retry_max, 3600);
	ASSERT_EQ(s.outbound_port, 25);
	ASSERT_EQ(s.delivery_attempts, 0);
	ASSERT_EQ(s.outbound_tls, 1);
	settings_free(&s);
	ASSERT_EQ(config_parse(&c,
	                  "QueueLifetime 2d\nRetryInterval 5m\nMaxRetryInterval 2h\n"
	                  "RelayHost [smtp.isp.test]:587\nOutboundPort 2525\nOutboundTimeout 30s\n",
	                  "t", err, sizeof err),
	        0);
	ASSERT_EQ(config_apply(&s, &c, err, sizeof err), 0);
	ASSERT_EQ(s.queue_lifetime, 2 * 86400);
	ASSERT_EQ(s.retry_interval, 300);
	ASSERT_EQ(s.retry_max, 7200);
	ASSERT_STR(s.relay_host, "[smtp.isp.test]:587");
	ASSERT_EQ(s.outbound_port, 2525);
	ASSERT_EQ(s.outbound_timeout, 30);
	settings_free(&s);
	ASSERT_EQ(config_parse(&c, "QueueLifetime 5x\n", "t", err, sizeof err), 0);
	ASSERT_EQ(config_apply(&s, &c, err, sizeof err), -1);
	ASSERT(strstr(err, "t:1: QueueLifetime") != NULL);
	settings_free(&s);
}

static void tls_policy_lines_pick_a_mode_per_destination(void)
{
	struct config c = {0};
	struct settings s;
	char err[256];
	ASSERT_EQ(config_parse(&c,
	                  "TLSPolicy example.com verify\nTLSPolicy .corp.example encrypt\n"
	                  "TLSPolicy * may\nTLSPolicy legacy.example none\n",
	                  "t", err, sizeof err),
	        0);
	ASSERT_EQ(config_apply(&s, &c, err, sizeof err), 0);
	int star;
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "example.com", &star), TLS_VERIFY);
	ASSERT_EQ(star, TLS_MAY);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "EXAMPLE.com.", &star), TLS_VERIFY);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "mx.corp.example", &star), TLS_ENCRYPT);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "corp.example", &star), -1);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "xcorp.example", &star), -1);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "legacy.example", &star), TLS_NONE);
	ASSERT_EQ(tls_policy_lookup(s.tls_policy, "sub.example.com", &star), -1);
	ASSERT_EQ(s.mta_sts, 1);
	ASSERT_EQ(s.mta_sts_port, 443);
	settings_free(&s);
	config_free(&c);
	static const char *bad[] = {"TLSPolicy example.com strict\n", "TLSPolicy example.com\n",
	        "TLSPolicy *.example.com verify\n", "TLSPolicy a b c\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ(config_parse(&c, bad[i], "t", err, sizeof err), 0);
		ASSERT_EQ(config_apply(&s, &c, err, sizeof err), -1);
		ASSERT(strstr(err, "TLSPolicy") != NULL);
		settings_free(&s);
		config_free(&c);
	}
}

static void mta_sts_records_and_policies_parse(void)
{
	char id[40], err[100];
	ASSERT_EQ(sts_txt_id("v=STSv1; id=20160831085700Z;", id, sizeof id), 0);
	ASSERT_STR(id, "20160831085700Z");
	ASSERT_EQ(sts_txt_id("v=STSv1;id=abc", id, sizeof id), 0);
	ASSERT_STR(id, "abc");
	ASSERT_EQ(sts_txt_id("v=STSv1; id=a-b", id, sizeof id), -1);
	ASSERT_EQ(sts_txt_id("v=STSv1;", id, sizeof id), -1);
	ASSERT_EQ(sts_txt_id("v=STSv10; id=abc", id, sizeof id), -1);
	ASSERT_EQ(sts_txt_id("v=spf1 -all", id, sizeof id), -1);
	ASSERT_EQ(sts_txt_id("v=STSv1; id=123456789012345678901234567890123", id, sizeof id), -1);
	struct sts_policy p;
	const char *text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	                   "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";
	ASSERT_EQ(sts_parse(text, strlen(text), &p, err, sizeof err), 0);
	ASSERT_EQ(p.mode, STS_ENFORCE);
	ASSERT_EQ(p.max_age, 604800);
	ASSERT_EQ(p.nmx, 3);
	ASSERT(sts_mx_ok(&p, "mail.example.com"));
	ASSERT(sts_mx_ok(&p, "MAIL.example.com."));
	ASSERT(sts_mx_ok(&p, "mx1.example.net"));
	ASSERT(!sts_mx_ok(&p, "example.net"));
	ASSERT(!sts_mx_ok(&p, "a.b.example.net"));
	ASSERT(!sts_mx_ok(&p, "evil-mail.example.com"));
	ASSERT(!sts_mx_ok(&p, "mail.example.com.evil"));
	const char *testing = "version: STSv1\nmode: testing\nmx: mx.example\nmax_age: 99999999999\n"
	                      "future: ignored\n";
	ASSERT_EQ(sts_parse(testing, strlen(testing), &p, err, sizeof err), 0);
	ASSERT_EQ(p.mode, STS_TESTING);
	ASSERT_EQ(p.max_age, 31557600);
	static const char *bad[] = {"mode: enforce\nmx: a\nmax_age: 1\n",
	        "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
	        "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
	        "version: STSv1\nmode: enforce\nmax_age: 1\n",
	        "version: STSv1\nmode: enforce\nmx: a\n",
	        "version: STSv1\nmode: enforce\nmx: a\nmax_age: 1x\n", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ(sts_parse(bad[i], strlen(bad[i]), &p, err, sizeof err), -1);
	}
	const char *none = "version: STSv1\nmode: none\nmax_age: 86400\n";
	ASSERT_EQ(sts_parse(none, strlen(none), &p, err, sizeof err), 0);
	ASSERT_EQ(p.mode, STS_OFF);
}

void tests_outbound(void)
{
	RUN(the_envelope_file_round_trips,
	        "outbound envelope files round-trip with per-recipient state");
	RUN(old_and_odd_envelopes_still_load,
	        "outbound old-format and odd envelope files still load");
	RUN(retries_back_off_doubling_up_to_the_cap,
	        "outbound retries back off from RetryInterval, doubling, up to MaxRetryInterval");
	RUN(the_dsn_is_a_multipart_report, "outbound bounces are RFC 3464 multipart/report, CRLF");
	RUN(outbound_directives_are_parsed, "outbound directives parse, with time suffixes");
	RUN(tls_policy_lines_pick_a_mode_per_destination,
	        "outbound TLSPolicy lines pick a mode per destination domain");
	RUN(mta_sts_records_and_policies_parse,
	        "outbound MTA-STS TXT records and policy files parse (RFC 8461)");
}
