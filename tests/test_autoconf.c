/* test_autoconf.c - the client autoconfiguration documents (Thunderbird,
 * Outlook, Apple), the autodiscover request parser and the HTTP routes;
 * see autoconf.c. The e2e test parses the documents with Python's XML
 * and plist readers. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

#define HOSTILE "a<b>&\"'@example.org"
#define HOSTILE_ESC "a&lt;b&gt;&amp;&quot;&apos;@example.org"

static const struct autoconf_ports all = {993, 143, 995, 110, 465, 587};

/* The text of out, NUL-terminated (buf keeps one past len). */
static const char *text(struct buf *b)
{
	buf_append(b, "", 1);
	b->len--;
	return b->data;
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)) != NULL; p++) {
		n++;
	}
	return n;
}

static void thunderbird_lists_each_enabled_port(void)
{
	struct buf b;
	buf_init(&b);
	autoconf_thunderbird("example.org", "mail.example.org", &all, &b);
	const char *t = text(&b);
	int ok = strncmp(t, "<?xml version=\"1.0\"", 19) == 0 &&
	         strstr(t, "<emailProvider id=\"example.org\">") &&
	         count(t, "<incomingServer type=\"imap\">") == 2 &&
	         count(t, "<incomingServer type=\"pop3\">") == 2 &&
	         count(t, "<outgoingServer type=\"smtp\">") == 2 &&
	         count(t, "<hostname>mail.example.org</hostname>") == 6 &&
	         count(t, "<username>%EMAILADDRESS%</username>") == 6 &&
	         count(t, "<authentication>password-cleartext</authentication>") == 6;
	const char *ssl = strstr(t, "<port>993</port>"), *stls = strstr(t, "<port>143</port>");
	int order = ssl && stls && ssl < stls && strncmp(ssl + 20, "<socketType>SSL<", 16) == 0 &&
	            strncmp(stls + 20, "<socketType>STARTTLS<", 21) == 0;
	struct autoconf_ports few = {0, 1143, 0, 0, 0, 1587};
	buf_reset(&b);
	autoconf_thunderbird("ex<ample", "h", &few, &b);
	t = text(&b);
	int off = count(t, "Server type=") == 2 && strstr(t, "<port>1143</port>") &&
	          strstr(t, "<port>1587</port>") && !strstr(t, "SSL<") && !strstr(t, "ex<") &&
	          strstr(t, "id=\"ex&lt;ample\"");
	buf_free(&b);
	ASSERT(ok);
	ASSERT(order);
	ASSERT(off);
}

static void outlook_prefers_implicit_tls_and_escapes(void)
{
	struct buf b;
	buf_init(&b);
	autoconf_outlook("alice@example.org", "mail.example.org", &all, &b);
	const char *t = text(&b);
	int ok = strstr(t, "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
	                   "outlook/responseschema/2006a\">") &&
	         count(t, "<Protocol>") == 2 && strstr(t, "<Type>IMAP</Type>") &&
	         strstr(t, "<Port>993</Port>") && strstr(t, "<Port>465</Port>") &&
	         count(t, "<SSL>on</SSL>") == 2 && !strstr(t, "POP3") &&
	         count(t, "<LoginName>alice@example.org</LoginName>") == 2;
	struct autoconf_ports pop = {0, 0, 0, 110, 0, 587};
	buf_reset(&b);
	autoconf_outlook(HOSTILE, "mail.example.org", &pop, &b);
	t = text(&b);
	int pop3 = strstr(t, "<Type>POP3</Type>") && strstr(t, "<Port>110</Port>") &&
	           count(t, "<Encryption>TLS</Encryption>") == 2 && !strstr(t, "<SSL>") &&
	           count(t, HOSTILE_ESC) == 3 && !strstr(t, "a<b");
	buf_free(&b);
	ASSERT(ok);
	ASSERT(pop3);
}

static void apple_profile_has_stable_uuids_per_address(void)
{
	struct buf a, b, c;
	buf_init(&a);
	buf_init(&b);
	buf_init(&c);
	autoconf_apple("alice@example.org", "mail.example.org", &all, &a);
	autoconf_apple("alice@example.org", "mail.example.org", &all, &b);
	autoconf_apple(HOSTILE, "mail.example.org", &all, &c);
	const char *t = text(&a), *h = text(&c);
	const char *u = strstr(t, "<key>PayloadUUID</key><string>");
	char uuid[37] = "";
	if (u) {
		memcpy(uuid, u + 30, 36);
	}
	int ok =
	        strstr(t, "<!DOCTYPE plist") &&
	        strstr(t, "<key>PayloadType</key><string>com.apple.mail.managed</string>") &&
	        strstr(t, "<key>PayloadType</key><string>Configuration</string>") &&
	        strstr(t, "<key>EmailAccountType</key><string>EmailTypeIMAP</string>") &&
	        strstr(t, "<key>IncomingMailServerPortNumber</key><integer>993</integer>") &&
	        strstr(t, "<key>IncomingMailServerUseSSL</key><true/>") &&
	        strstr(t, "<key>OutgoingMailServerPortNumber</key><integer>465</integer>") &&
	        strstr(t, "<key>OutgoingMailServerHostName</key><string>mail.example.org</string>");
	int same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
	int form = strlen(uuid) == 36 && uuid[8] == '-' && uuid[13] == '-' && uuid[14] == '8' &&
	           uuid[18] == '-' && uuid[23] == '-' && count(t, uuid) == 2 && !strstr(h, uuid);
	int esc = count(h, HOSTILE_ESC) >= 5 && !strstr(h, "a<b");
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	ASSERT(ok);
	ASSERT(same);
	ASSERT(form);
	ASSERT(esc);
}

static void autodiscover_requests_parse_bounded(void)
{
	static const char req[] =
	        "<?xml version=\"1.0\"?><Autodiscover "
	        "xmlns=\"http://schemas.microsoft.com/exchange/"
	        "autodiscover/outlook/requestschema/2006\"><Request>\n <EMailAddress> bob&amp;co"
	        "@example.org </EMailAddress>\n</Request></Autodiscover>";
	char addr[64];
	ASSERT_EQ(autoconf_pox_address(req, sizeof req - 1, addr, sizeof addr), 0);
	ASSERT_STR(addr, "bob&co@example.org");
	const char ents[] = "<EMailAddress>&lt;a&gt;&quot;&apos;&amp;@b</EMailAddress>";
	ASSERT_EQ(autoconf_pox_address(ents, sizeof ents - 1, addr, sizeof addr), 0);
	ASSERT_STR(addr, "<a>\"'&@b");
	const char pfx[] = "<a:Request><a:EMailAddress>x@y.z</a:EMailAddress>";
	ASSERT_EQ(autoconf_pox_address(pfx, sizeof pfx - 1, addr, sizeof addr), 0);
	ASSERT_STR(addr, "x@y.z");
	const char *bad[] = {"", "<EMailAddress>", "<EMailAddress></EMailAddress>",
	        "<EMailAddress>a&#64;b</EMailAddress>", "EMailAddress>a@b</EMailAddress>",
	        "<EMailAddress>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@"
	        "b<"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ(autoconf_pox_address(bad[i], strlen(bad[i]), addr, sizeof addr), -1);
	}
	/* every cut of the request: never past its end (ASan watches); those
	 * that keep the '<' after the address find it */
	int found = 0, want = (int)(sizeof req - 1 - (size_t)(strstr(req, " </EMail") - req)) - 2;
	for (size_t n = 0; n < sizeof req - 1; n++) {
		char *cut = xmalloc(n ? n : 1);
		memcpy(cut, req, n);
		found += autoconf_pox_address(cut, n, addr, sizeof addr) == 0;
		free(cut);
	}
	ASSERT_EQ(found, want);
}

static void routes_answer_their_paths_only(void)
{
	char err[256];
	struct settings saved = conf;
	struct buf b;
	const char *ct = NULL;
	ASSERT_EQ(mm_open(unit_tmpdir(), err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	rl_strlcpy(conf.server_name, "mail.example.org", sizeof conf.server_name);
	conf.imaps_enable = conf.submission_enable = 1;
	conf.imap_enable = conf.pop3_enable = conf.pop3s_enable = conf.smtps_enable = 0;
	conf.imaps_port = 1993;
	conf.submission_port = 1587;
	buf_init(&b);
	int r[12];
	r[0] = autoconf_route("GET",
	        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress="
	        "alice%40Example.ORG",
	        "x", NULL, 0, &b, &ct);
	int tb = strstr(text(&b), "<domain>example.org</domain>") &&
	         strstr(text(&b), "<port>1993</port>") && !strstr(text(&b), "<port>143<");
	buf_reset(&b);
	r[1] = autoconf_route(
	        "GET", "/mail/config-v1.1.xml", "autoconfig.example.org:80", NULL, 0, &b, &ct);
	r[2] = autoconf_route("GET", "/mail/config-v1.1.xml?emailaddress=a%40other.example", NULL,
	        NULL, 0, &b, &ct);
	r[3] = autoconf_route("GET", "/mail/config-v1.1.xml", NULL, NULL, 0, &b, &ct);
	r[4] = autoconf_route("POST", "/mail/config-v1.1.xml", "example.org", NULL, 0, &b, &ct);
	r[5] = autoconf_route("GET", "/mail/other.xml", "example.org", NULL, 0, &b, &ct);
	r[6] = autoconf_route("GET", "/mail/config-v1.1.xml?emailaddress=a%00b%40example.org", NULL,
	        NULL, 0, &b, &ct);
	buf_reset(&b);
	static const char body[] = "<Request><EMailAddress>Bob@EXAMPLE.org</EMailAddress>";
	r[7] = autoconf_route(
	        "POST", "/Autodiscover/Autodiscover.xml", NULL, body, sizeof body - 1, &b, &ct);
	int ad = strstr(text(&b), "<LoginName>Bob@EXAMPLE.org</LoginName>") &&
	         strstr(text(&b), "<Port>1587</Port>") && strstr(text(&b), "<Encryption>TLS<");
	r[8] = autoconf_route("GET", "/autodiscover/autodiscover.xml", NULL, NULL, 0, &b, &ct);
	r[9] = autoconf_route("POST", "/autodiscover/autodiscover.xml", NULL, "<x/>", 4, &b, &ct);
	r[10] = autoconf_route("POST", "/autodiscover/autodiscover.xml", NULL,
	        "<EMailAddress>b@other.example</EMailAddress>", 44, &b, &ct);
	r[11] = autoconf_route("POST", "/autodiscover/autodiscover.xml", NULL,
	        "<EMailAddress>b c@example.org</EMailAddress>", 44, &b, &ct);
	buf_free(&b);
	mm_close();
	conf = saved;
	const int want[12] = {200, 200, 404, 404, 405, 0, 404, 200, 405, 400, 404, 404};
	for (int i = 0; i < 12; i++) {
		ASSERT_EQ(r[i], want[i]);
	}
	ASSERT(tb);
	ASSERT(ad);
	ASSERT_STR(ct, "text/xml; charset=utf-8");
}

void tests_autoconf(void)
{
	RUN(thunderbird_lists_each_enabled_port,
	        "autoconf Thunderbird lists each enabled port, SSL before STARTTLS, escaped");
	RUN(outlook_prefers_implicit_tls_and_escapes,
	        "autoconf Outlook prefers implicit TLS, falls back to POP3 and STARTTLS, escapes");
	RUN(apple_profile_has_stable_uuids_per_address,
	        "autoconf Apple profile has stable UUIDs per address and escapes it");
	RUN(autodiscover_requests_parse_bounded,
	        "autoconf autodiscover requests parse bounded: prefixes, entities, cuts, refusals");
	RUN(routes_answer_their_paths_only,
	        "autoconf routes answer their paths only, for our domains only");
}
