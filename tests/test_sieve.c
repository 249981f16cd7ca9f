/* test_sieve.c - the Sieve compiler's errors and the interpreter's limits
 * (sieve_parse.c, sieve_run.c); what scripts do is checked against
 * Pigeonhole in tests/e2e/test_sieve.py. */
#include <stdio.h>
#include <stdlib.h>

#include "sieve.h"
#include "tests/unit.h"

static const char msg[] = "From: a@example.com\r\nTo: b@example.org\r\nSubject: hello world\r\n"
                          "\r\nbody text\r\n";

/* Compiles src; the error text into err ("" when it compiled). */
static struct sieve_script *compile(const char *src, char *err, size_t len)
{
	struct sieve_script *s = NULL;
	err[0] = '\0';
	if (sieve_compile(src, strlen(src), &s, err, len) != 0) {
		return NULL;
	}
	return s;
}

/* Runs src on msg: the run's return code, the result in r. */
static int run(const char *src, struct sieve_result *r)
{
	char err[256];
	struct sieve_script *s = compile(src, err, sizeof err);
	if (!s) {
		memset(r, 0, sizeof *r);
		snprintf(r->error, sizeof r->error, "compile: %.200s", err);
		return -2;
	}
	struct sieve_input in = {.msg = msg, .len = sizeof msg - 1, .size = sizeof msg - 1,
		.from = "a@example.com", .to = "b@example.org"};
	int rc = sieve_run(s, &in, r);
	sieve_free(s);
	return rc;
}

static void errors_have_line_and_column(void)
{
	char err[256];
	ASSERT(!compile("keep;\n  if true {\n    fileinto \"x\";\n}\n", err, sizeof err));
	ASSERT_STR(err, "3:5: 'fileinto' needs require \"fileinto\"");
	ASSERT(!compile("if header :is \"a\" \"b\" {\n keep\n}", err, sizeof err));
	ASSERT_STR(err, "3:1: ';' was expected");
	ASSERT(!compile("keep;\n\"x", err, sizeof err));
	ASSERT_STR(err, "2:1: unterminated string");
	ASSERT(!compile("if true { keep; }\nelsif", err, sizeof err));
	ASSERT_STR(err, "2:1: 'elsif' needs one test");
	ASSERT(!compile("keep;\x01", err, sizeof err));
	ASSERT_STR(err, "1:6: unexpected character '?'");
	struct sieve_script *s = compile("require [\"fileinto\", \"copy\"];\r\nfileinto :copy \"a\";", err,
		sizeof err);
	ASSERT(s != NULL);
	ASSERT_EQ(sieve_requires(s), SX_FILEINTO | SX_COPY);
	sieve_free(s);
}

static void nesting_and_size_are_bounded(void)
{
	char err[256];
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 40; i++) {
		buf_puts(&b, "if true { ");
	}
	buf_puts(&b, "keep;");
	for (int i = 0; i < 40; i++) {
		buf_puts(&b, " }");
	}
	ASSERT(!compile(b.data, err, sizeof err));
	ASSERT(strstr(err, "nested more than") != NULL);
	buf_reset(&b);
	for (int i = 0; i < 40; i++) {
		buf_puts(&b, "not ");
	}
	char *deep = xmalloc(b.len + 40);
	snprintf(deep, b.len + 40, "if %strue { keep; }", b.data);
	ASSERT(!compile(deep, err, sizeof err));
	free(deep);
	buf_reset(&b);
	buf_reserve(&b, SIEVE_SCRIPT_MAX + 2);
	memset(b.data, ' ', SIEVE_SCRIPT_MAX + 1);
	struct sieve_script *s = NULL;
	ASSERT(sieve_compile(b.data, SIEVE_SCRIPT_MAX + 1, &s, err, sizeof err) != 0);
	ASSERT(strstr(err, "script larger than") != NULL);
	buf_free(&b);
}

static void redirects_and_actions_are_bounded(void)
{
	struct sieve_result r;
	ASSERT_EQ(run("redirect \"a@x.org\"; redirect \"b@x.org\"; redirect \"c@x.org\"; "
		"redirect \"d@x.org\"; redirect \"e@x.org\";", &r), -1);
	ASSERT_STR(r.error, "too many redirects");
	ASSERT_EQ(r.keep, 1); /* an error keeps the message (RFC 5228 2.10.6) */
	sieve_result_free(&r);
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "require \"fileinto\";");
	for (int i = 0; i < SIEVE_ACTIONS_MAX + 1; i++) {
		buf_printf(&b, "fileinto \"f%d\";", i);
	}
	ASSERT_EQ(run(b.data, &r), -1);
	ASSERT_STR(r.error, "too many actions");
	ASSERT_EQ(r.n, SIEVE_ACTIONS_MAX);
	ASSERT_EQ(r.keep, 1);
	sieve_result_free(&r);
	buf_free(&b);
	ASSERT_EQ(run("redirect \"not an address\";", &r), -1);
	sieve_result_free(&r);
}

static void matching_is_bounded(void)
{
	/* one star before a long literal on a long value: every shift
	 * compares the literal again (n * m); cut off, not spinning */
	struct sieve_result r;
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "require \"variables\"; set \"v\" \"");
	for (int i = 0; i < 60000; i++) {
		buf_puts(&b, "a");
	}
	buf_puts(&b, "\"; if string :matches \"${v}\" \"");
	buf_puts(&b, "*");
	for (int i = 0; i < 3000; i++) {
		buf_puts(&b, "a");
	}
	buf_puts(&b, "b\" { keep; }");
	ASSERT_EQ(run(b.data, &r), -1);
	ASSERT_STR(r.error, "matching took too long");
	ASSERT_EQ(r.keep, 1);
	sieve_result_free(&r);
	buf_free(&b);
}

static void actions_and_flags(void)
{
	struct sieve_result r;
	ASSERT_EQ(run("require [\"fileinto\", \"imap4flags\", \"copy\"];\n"
		"if header :contains \"subject\" \"WORLD\" { addflag \"\\\\Seen $x\"; "
		"fileinto :copy \"Hello\"; }\n", &r), 0);
	ASSERT_EQ(r.n, 1);
	ASSERT_EQ(r.v[0].kind, SA_FILEINTO);
	ASSERT_STR(r.v[0].arg, "Hello");
	ASSERT_STR(r.v[0].flags, "\\seen $x");
	ASSERT_EQ(r.keep, 1);
	ASSERT_STR(r.keep_flags, "\\seen $x");
	sieve_result_free(&r);
	ASSERT_EQ(run("require \"vacation\"; vacation :days 3 :subject \"Away\" \"Back soon\";", &r), 0);
	ASSERT_EQ(r.n, 1);
	ASSERT_EQ(r.v[0].kind, SA_VACATION);
	ASSERT_EQ(r.v[0].seconds, 3 * 86400);
	ASSERT_STR(r.v[0].subject, "Away");
	ASSERT_EQ(r.keep, 1);
	sieve_result_free(&r);
}

/* The folder src's one fileinto names, on m with the clock at now
 * ("" when the script filed nothing; "error: ..." when it failed). */
static const char *filed(const char *src, const char *m, int64_t now)
{
	static char out[256];
	char err[256];
	struct sieve_result r;
	struct sieve_script *s = compile(src, err, sizeof err);
	if (!s) {
		snprintf(out, sizeof out, "error: %.200s", err);
		return out;
	}
	struct sieve_input in = {.msg = m, .len = strlen(m), .size = strlen(m), .from = "a@example.com",
		.to = "b@example.org", .now = now};
	int rc = sieve_run(s, &in, &r);
	snprintf(out, sizeof out, "%s", rc ? "error: run" : r.n == 1 ? r.v[0].arg : "");
	sieve_result_free(&r);
	sieve_free(s);
	return out;
}

#define DATE_REQ "require [\"date\", \"index\", \"fileinto\", \"variables\", \"relational\"];\n"

static void dates_and_index(void)
{
	static const char m[] = "Received: from a; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
	                        "Received: from b; Tue, 1 Dec 2026 09:00:00 +0000\r\n"
	                        "Date: Sun, 28 Feb 2027 23:30:00 -0800\r\nTo: x@a.example\r\n"
	                        "Cc: y@b.example\r\n\r\nbody\r\n";
	static const struct {
		const char *part, *zone, *want;
	} dates[] = {
		{"std11", ":originalzone", "Sun, 28 Feb 2027 23:30:00 -0800"},
		{"std11", ":zone \"+0000\"", "Mon, 01 Mar 2027 07:30:00 +0000"},
		{"iso8601", ":zone \"+0530\"", "2027-03-01T13:00:00+05:30"},
		{"iso8601", ":zone \"+0000\"", "2027-03-01T07:30:00Z"},
		{"julian", ":zone \"+0000\"", "61465"},
		{"weekday", ":originalzone", "0"},
		{"weekday", ":zone \"+0000\"", "1"},
		{"date", ":zone \"-1200\"", "2027-02-28"},
		{"time", ":zone \"+0100\"", "08:30:00"},
		{"zone", ":originalzone", "-0800"},
		{"year", ":zone \"+2500\"", "2027"},
	};
	for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
		char src[512];
		snprintf(src, sizeof src, DATE_REQ "if date %s :matches \"date\" \"%s\" \"*\" "
			"{ fileinto \"${1}\"; }", dates[i].zone, dates[i].part);
		ASSERT_STR(filed(src, m, 0), dates[i].want);
	}
	/* the Received date follows its last ';'; the first field unless :index */
	ASSERT_STR(filed(DATE_REQ "if date :zone \"+0000\" :matches \"received\" \"hour\" \"*\" "
		"{ fileinto \"${1}\"; }", m, 0), "10");
	ASSERT_STR(filed(DATE_REQ "if date :index 1 :last :zone \"+0000\" :matches \"received\" "
		"\"hour\" \"*\" { fileinto \"${1}\"; }", m, 0), "09");
	ASSERT_STR(filed(DATE_REQ "if date :index 3 :matches \"received\" \"hour\" \"*\" "
		"{ fileinto \"x\"; }", m, 0), "");
	ASSERT_STR(filed(DATE_REQ "if header :index 3 :matches [\"received\", \"to\"] \"*\" "
		"{ fileinto \"${1}\"; }", m, 0), "x@a.example");
	ASSERT_STR(filed(DATE_REQ "if address :index 1 :last :domain :is [\"to\", \"cc\"] "
		"\"b.example\" { fileinto \"cc\"; }", m, 0), "cc");
	/* currentdate reads the caller's clock */
	ASSERT_STR(filed(DATE_REQ "if currentdate :zone \"+0000\" :matches \"std11\" \"*\" "
		"{ fileinto \"${1}\"; }", m, 86400 * 365), "Fri, 01 Jan 1971 00:00:00 +0000");
	ASSERT_STR(filed(DATE_REQ "if currentdate :zone \"-0100\" :is \"date\" \"1969-12-31\" "
		"{ fileinto \"before\"; }", m, 1), "before");
	ASSERT_STR(filed(DATE_REQ "if header :last \"to\" \"x\" { keep; }", m, 0),
		"error: 2:4: :last needs :index");
	ASSERT_STR(filed(DATE_REQ "if header :index 0 \"to\" \"x\" { keep; }", m, 0),
		"error: 2:18: :index cannot be zero");
	ASSERT_STR(filed("require \"date\"; if header :index 1 \"to\" \"x\" { keep; }", m, 0),
		"error: 1:27: 'header' takes no :index");
}

/* A "seen before?" memory of keys, for duplicate. */
struct memory {
	char keys[4][65];
	int n, asked;
};

static int remembers(void *arg, const char *key)
{
	struct memory *m = arg;
	m->asked++;
	for (int i = 0; i < m->n; i++) {
		if (!strcmp(m->keys[i], key)) {
			return 1;
		}
	}
	return 0;
}

static void duplicate_asks_and_tracks(void)
{
	static const char m1[] = "Message-ID: <one@x>\r\nSubject: s\r\n\r\nbody\r\n";
	static const char m2[] = "Message-ID: <two@x>\r\nSubject: s\r\n\r\nbody\r\n";
	const char *src = "require \"duplicate\"; if duplicate :seconds 60 { discard; stop; } "
	                  "if duplicate { discard; }";
	char err[256];
	struct sieve_script *s = compile(src, err, sizeof err);
	ASSERT(s != NULL);
	struct memory mem = {.n = 0};
	struct sieve_input in = {.msg = m1, .len = sizeof m1 - 1, .size = sizeof m1 - 1, .from = "",
		.to = "b@example.org", .arg = &mem, .seen = remembers};
	struct sieve_result r;
	ASSERT_EQ(sieve_run(s, &in, &r), 0);
	ASSERT_EQ(r.n, 1); /* a repeated test is answered without asking again */
	ASSERT_EQ(r.v[0].kind, SA_DUPLICATE);
	ASSERT_EQ(r.v[0].seconds, 60);
	ASSERT_EQ(r.keep, 1);
	ASSERT_EQ(mem.asked, 1);
	rl_strlcpy(mem.keys[mem.n++], r.v[0].arg, sizeof mem.keys[0]);
	sieve_result_free(&r);
	ASSERT_EQ(sieve_run(s, &in, &r), 0); /* the same Message-ID again */
	ASSERT_EQ(r.n, 2);
	ASSERT_EQ(r.v[1].kind, SA_DISCARD);
	ASSERT_EQ(r.keep, 0);
	sieve_result_free(&r);
	in.msg = m2; /* another one */
	ASSERT_EQ(sieve_run(s, &in, &r), 0);
	ASSERT_EQ(r.keep, 1);
	sieve_result_free(&r);
	sieve_free(s);
	/* the handle, :header and :uniqueid make other keys; no ID, no tracking */
	char k1[65];
	rl_strlcpy(k1, filed("require \"duplicate\"; if duplicate {}", m1, 0), sizeof k1);
	ASSERT_EQ(strlen(k1), 64);
	ASSERT_STR(filed("require \"duplicate\"; if duplicate :seconds 5 {}", m1, 0), k1);
	ASSERT(strcmp(filed("require \"duplicate\"; if duplicate :handle \"h\" {}", m1, 0), k1) != 0);
	ASSERT(strcmp(filed("require \"duplicate\"; if duplicate :header \"subject\" {}", m1, 0), k1));
	ASSERT(strcmp(filed("require \"duplicate\"; if duplicate :uniqueid \"<one@x>\" {}", m1, 0), ""));
	ASSERT_STR(filed("require \"duplicate\"; if duplicate :header \"x-no\" { discard; }", m1, 0), "");
}

static void editheader_result(void)
{
	struct sieve_result r;
	static const char edits[] = "require \"editheader\"; addheader \"X-A\" \"1\"; "
		"deleteheader \"subject\"; addheader :last \"X-Long\" "
		"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\";"
		"deleteheader \"received\";";
	ASSERT_EQ(run(edits, &r), 0);
	static const char want[] = "X-A: 1\r\nFrom: a@example.com\r\nTo: b@example.org\r\n"
		"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		" bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n";
	ASSERT_STR(r.header, want);
	ASSERT_EQ(r.header_len, strlen(r.header));
	ASSERT_STR(msg + r.body_off, "body text\r\n");
	sieve_result_free(&r);
	ASSERT_EQ(run("require \"editheader\"; if true { keep; }", &r), 0);
	ASSERT(r.header == NULL); /* nothing edited: the message goes as it came */
	sieve_result_free(&r);
	/* the header cannot grow past SIEVE_HEADER_MAX */
	struct buf src;
	buf_init(&src);
	buf_puts(&src, "require [\"editheader\", \"variables\"]; set \"v\" \"");
	for (int i = 0; i < 60000; i++) {
		buf_append(&src, "x", 1);
	}
	buf_puts(&src, "\";");
	for (int i = 0; i < 5; i++) {
		buf_puts(&src, " addheader \"X-Big\" \"${v}\";");
	}
	ASSERT_EQ(run(src.data, &r), -1);
	ASSERT_STR(r.error, "addheader: the header grew too large");
	ASSERT_EQ(r.keep, 1);
	sieve_result_free(&r);
	buf_free(&src);
}

/* Scripts by name for include: "self" includes itself one level deeper
 * each time through a chain of names d0, d1, ...; "g:" marks global. */
static int loads;

static int load(void *arg, int global, const char *name, struct buf *out)
{
	(void)arg;
	loads++;
	if (!strcmp(name, "tag")) {
		buf_printf(out, "require \"fileinto\"; fileinto \"%s\";", global ? "global" : "personal");
		return 0;
	}
	if (name[0] == 'd' && name[1] >= '0' && name[1] <= '9') {
		buf_printf(out, "require \"include\"; include \"d%d\";", name[1] - '0' + 1);
		return 0;
	}
	return -1;
}

static const char *included(const char *src)
{
	static char out[256];
	struct sieve_result r;
	char err[256];
	struct sieve_script *s = compile(src, err, sizeof err);
	if (!s) {
		snprintf(out, sizeof out, "compile: %.200s", err);
		return out;
	}
	struct sieve_input in = {.msg = msg, .len = sizeof msg - 1, .size = sizeof msg - 1,
		.from = "", .to = "b@example.org", .load = load};
	int rc = sieve_run(s, &in, &r);
	snprintf(out, sizeof out, "%s", rc ? r.error : r.n ? r.v[r.n - 1].arg : "");
	sieve_result_free(&r);
	sieve_free(s);
	return out;
}

static void include_loads_and_is_bounded(void)
{
	ASSERT_STR(included("require \"include\"; include \"tag\";"), "personal");
	ASSERT_STR(included("require \"include\"; include :global \"tag\";"), "global");
	loads = 0;
	ASSERT_STR(included("require \"include\"; include :once \"tag\"; include :once \"tag\";"),
		"personal");
	ASSERT_EQ(loads, 1);
	ASSERT_STR(included("require \"include\"; include :optional \"none\";"), "");
	ASSERT_STR(included("require \"include\"; include \"none\";"), "include: no such script");
	/* d0 includes d1 includes d2 ...: cut off at SIEVE_INCLUDE_DEPTH */
	loads = 0;
	ASSERT_STR(included("require \"include\"; include \"d0\";"),
		"include: too many scripts included");
	ASSERT_EQ(loads, SIEVE_INCLUDE_DEPTH);
	ASSERT_STR(included("require \"include\"; include \"a/../x\";"),
		"compile: 1:28: invalid script name \"a/../x\"");
	ASSERT_STR(included("require [\"include\", \"variables\"]; set \"n\" \"../x\"; include \"${n}\";"),
		"include: invalid script name");
}

void tests_sieve(void)
{
	RUN(errors_have_line_and_column, "sieve: compile errors say line:column and why");
	RUN(nesting_and_size_are_bounded, "sieve: nesting and script size are bounded");
	RUN(redirects_and_actions_are_bounded, "sieve: redirects and actions are bounded; an error keeps");
	RUN(matching_is_bounded, "sieve: a backtracking :matches is cut off, not spinning");
	RUN(actions_and_flags, "sieve: fileinto :copy with imap4flags, and vacation's fields");
	RUN(duplicate_asks_and_tracks, "sieve: duplicate asks the caller's memory once and tracks the key");
	RUN(editheader_result, "sieve: editheader's header in the result, folded, bounded");
	RUN(include_loads_and_is_bounded, "sieve: include loads by name, :once, :optional, depth bounded");
	RUN(dates_and_index, "sieve: date parts in any zone, currentdate's clock, :index and :last");
}
