/* test_managesieve.c - ManageSieve script names as file names
 * (sieve_name_encode/decode in sieve.c); the protocol itself is driven in
 * tests/e2e/test_managesieve.py. */
#include <stdio.h>

#include "sieve.h"
#include "tests/unit.h"

static void plain_names_are_their_own_stems(void)
{
	char stem[200], name[80];
	static const char *const same[] = {"rumble", "webadmin", "My-filters_2.v1", "a.b"};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		ASSERT_EQ(sieve_name_encode(same[i], stem, sizeof stem), 0);
		ASSERT_STR(stem, same[i]);
		ASSERT_EQ(sieve_name_decode(stem, name, sizeof name), 0);
		ASSERT_STR(name, same[i]);
	}
}

static void other_bytes_are_escaped_and_come_back(void)
{
	char stem[200], name[80];
	static const struct {
		const char *name, *stem;
	} cases[] = {{".hidden", "%2Ehidden"}, {"../x", "%2E.%2Fx"}, {"a b", "a%20b"},
	        {"100%", "100%25"},
	        {"R\xc3\xa9glages \"\xc3\xa9t\xc3\xa9\"", "R%C3%A9glages%20%22%C3%A9t%C3%A9%22"},
	        {"C:\\x", "C%3A%5Cx"}, {"\xe2\x82\xac", "%E2%82%AC"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ASSERT_EQ(sieve_name_encode(cases[i].name, stem, sizeof stem), 0);
		ASSERT_STR(stem, cases[i].stem);
		ASSERT_EQ(sieve_name_decode(stem, name, sizeof name), 0);
		ASSERT_STR(name, cases[i].name);
	}
}

static void bad_names_are_refused(void)
{
	char stem[200], name[80], longest[SIEVE_NAME_MAX + 2];
	static const char *const bad[] = {"", "a\nb", "tab\there", "del\x7f", "\xc2\x85",
	        "\xe2\x80\xa8", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xff"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ(sieve_name_encode(bad[i], stem, sizeof stem), -1);
	}
	memset(longest, 'x', sizeof longest);
	longest[SIEVE_NAME_MAX] = '\0';
	ASSERT_EQ(sieve_name_encode(longest, stem, sizeof stem), 0);
	longest[SIEVE_NAME_MAX] = 'x';
	longest[SIEVE_NAME_MAX + 1] = '\0';
	ASSERT_EQ(sieve_name_encode(longest, stem, sizeof stem), -1);
	/* the longest escaped name fits the stem buffer */
	memset(longest, ' ', SIEVE_NAME_MAX);
	longest[SIEVE_NAME_MAX] = '\0';
	ASSERT_EQ(sieve_name_encode(longest, stem, 3 * SIEVE_NAME_MAX + 1), 0);
	/* file names that are no stems */
	static const char *const nostem[] = {"", ".x", "a%2", "a%zz", "a%00b", "a b", "a/b"};
	for (size_t i = 0; i < sizeof nostem / sizeof nostem[0]; i++) {
		ASSERT_EQ(sieve_name_decode(nostem[i], name, sizeof name), -1);
	}
}

void tests_managesieve(void)
{
	RUN(plain_names_are_their_own_stems,
	        "managesieve: names stored before ManageSieve are their own file names");
	RUN(other_bytes_are_escaped_and_come_back,
	        "managesieve: other bytes of a name are %XX in its file name and decode back");
	RUN(bad_names_are_refused,
	        "managesieve: control characters, bad UTF-8 and long names are refused");
}
