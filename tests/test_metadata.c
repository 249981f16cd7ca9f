/* test_metadata.c - the metadata store: keys, set/get/unset, listing
 * under a prefix, folders apart from the user's own, escaping, limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];

static int setup(void)
{
	return mm_open(unit_tmpdir(), err, sizeof err) == 0 &&
	       mm_domain_add("example.org", err, sizeof err) == 0;
}

/* The value of key as a string, "(unset)" or "(error)"; static storage. */
static const char *get(const char *folder, const char *key)
{
	static char out[256];
	char *v;
	size_t n;
	int rc = md_get("example.org", "john", folder, key, &v, &n);
	if (rc <= 0) {
		return rc == 0 ? "(unset)" : "(error)";
	}
	snprintf(out, sizeof out, "%.*s", (int)n, v);
	free(v);
	return out;
}

static void test_keys(void)
{
	ASSERT(md_valid_key("/private/comment"));
	ASSERT(md_valid_key("/shared/vendor/vendor.dovecot/x"));
	ASSERT(md_valid_key("/Private/Comment"));
	ASSERT(!md_valid_key("/private/"));
	ASSERT(!md_valid_key("/private"));
	ASSERT(!md_valid_key("/other/x"));
	ASSERT(!md_valid_key("private/x"));
	ASSERT(!md_valid_key("/private/a//b"));
	ASSERT(!md_valid_key("/private/a b"));
	ASSERT(!md_valid_key("/private/a*"));
	ASSERT(!md_valid_key("/private/a%"));
	ASSERT(!md_valid_key("/private/\xc3\xa9"));
	ASSERT(!md_valid_key(""));
	ASSERT(!md_valid_key(NULL));
	char big[MD_KEY_MAX + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "/private/", 9);
	ASSERT(!md_valid_key(big));
	big[MD_KEY_MAX] = '\0';
	ASSERT(md_valid_key(big));
}

static void test_set_get_unset(void)
{
	ASSERT(setup());
	ASSERT_STR(get("", "/private/comment"), "(unset)");
	ASSERT_EQ(md_set("example.org", "john", "", "/private/comment", "hello world", 11), 0);
	ASSERT_EQ(md_set("example.org", "john", "Work", "/private/comment", "work box", 8), 0);
	ASSERT_STR(get("", "/private/comment"), "hello world");
	ASSERT_STR(get("Work", "/private/comment"), "work box");
	ASSERT_STR(get("INBOX", "/private/comment"), "(unset)");
	ASSERT_EQ(md_set("example.org", "john", "", "/private/comment", "again", 5), 0);
	ASSERT_STR(get("", "/private/comment"), "again");
	ASSERT_STR(get("Work", "/private/comment"), "work box");
	ASSERT_EQ(md_set("example.org", "john", "", "/private/comment", NULL, 0), 0);
	ASSERT_STR(get("", "/private/comment"), "(unset)");
	ASSERT_STR(get("Work", "/private/comment"), "work box");
	ASSERT_STR(get("", "/bad/key"), "(error)");
	ASSERT_EQ(md_set("example.org", "john", "", "/bad/key", "x", 1), -1);
	ASSERT_EQ(md_set("example.org", "../x", "", "/private/a", "x", 1), -1);
	mm_close();
}

static void test_escaping(void)
{
	ASSERT(setup());
	static const char v[] = "line 1\r\nline 2\t100% \0 after a NUL\n";
	ASSERT_EQ(md_set("example.org", "john", "", "/shared/blob", v, sizeof v - 1), 0);
	ASSERT_EQ(md_set("example.org", "john", "", "/shared/next", "x", 1), 0);
	char *got;
	size_t n;
	ASSERT_EQ(md_get("example.org", "john", "", "/shared/blob", &got, &n), 1);
	ASSERT_EQ(n, sizeof v - 1);
	ASSERT(memcmp(got, v, n) == 0);
	free(got);
	ASSERT_STR(get("", "/shared/next"), "x");
	/* the file stays one line per entry */
	char path[1500];
	ASSERT_EQ(mm_user_file("example.org", "john", "metadata", path, sizeof path), 0);
	FILE *fp = fopen(path, "rb");
	ASSERT(fp);
	int lines = 0, c;
	while ((c = fgetc(fp)) != EOF) {
		lines += c == '\n';
	}
	fclose(fp);
	ASSERT_EQ(lines, 2);
	mm_close();
}

static int collect(const char *key, void *arg)
{
	char *out = arg;
	strcat(out, key);
	strcat(out, ";");
	return 0;
}

static void test_list(void)
{
	ASSERT(setup());
	const char *keys[] = {"/private/a", "/private/a/b", "/private/ab", "/shared/a/c", "/private/z"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		ASSERT_EQ(md_set("example.org", "john", "", keys[i], "1", 1), 0);
	}
	ASSERT_EQ(md_set("example.org", "john", "Work", "/private/a/w", "1", 1), 0);
	char out[512] = "";
	ASSERT_EQ(md_list("example.org", "john", "", "/private/a", collect, out), 0);
	ASSERT_STR(out, "/private/a;/private/a/b;");
	out[0] = '\0';
	ASSERT_EQ(md_list("example.org", "john", "", "/private/", collect, out), 0);
	ASSERT_STR(out, "/private/a;/private/a/b;/private/ab;/private/z;");
	out[0] = '\0';
	ASSERT_EQ(md_list("example.org", "john", "Work", "/private", collect, out), 0);
	ASSERT_STR(out, "/private/a/w;");
	mm_close();
}

static void test_limits(void)
{
	ASSERT(setup());
	char *v = malloc(MD_VALUE_MAX + 1);
	memset(v, 'v', MD_VALUE_MAX + 1);
	ASSERT_EQ(md_set("example.org", "john", "", "/private/big", v, MD_VALUE_MAX + 1), -1);
	ASSERT_EQ(md_set("example.org", "john", "", "/private/big", v, MD_VALUE_MAX), 0);
	/* 16 values of 64 KiB: more than MD_FILE_MAX, so the last are refused */
	int refused = 0;
	for (int i = 0; i < 20; i++) {
		char key[32];
		snprintf(key, sizeof key, "/private/k%d", i);
		refused += md_set("example.org", "john", "", key, v, MD_VALUE_MAX) != 0;
	}
	free(v);
	ASSERT(refused > 0);
	ASSERT_STR(get("", "/private/k19"), "(unset)");
	char *got;
	size_t n;
	ASSERT_EQ(md_get("example.org", "john", "", "/private/k0", &got, &n), 1);
	ASSERT_EQ(n, MD_VALUE_MAX);
	free(got);
	mm_close();
}

void tests_metadata(void)
{
	RUN(test_keys, "metadata keys are /private/ or /shared/, printable, bounded");
	RUN(test_set_get_unset, "metadata set, get and unset, the user's and a folder's apart");
	RUN(test_escaping, "metadata values keep any bytes and the file one line per entry");
	RUN(test_list, "metadata lists the keys at and under a prefix only");
	RUN(test_limits, "metadata refuses values and files over their limits");
}
