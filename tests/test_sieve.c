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

void tests_sieve(void)
{
	RUN(errors_have_line_and_column, "sieve: compile errors say line:column and why");
	RUN(nesting_and_size_are_bounded, "sieve: nesting and script size are bounded");
	RUN(redirects_and_actions_are_bounded, "sieve: redirects and actions are bounded; an error keeps");
	RUN(matching_is_bounded, "sieve: a backtracking :matches is cut off, not spinning");
	RUN(actions_and_flags, "sieve: fileinto :copy with imap4flags, and vacation's fields");
}
