/* test_password.c - the common-password table and MinPasswordLength. */
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void the_sorted_blob_is_searched_line_by_line(void)
{
	/* two blocks: abc abcd b, then qwerty zz (tools/passwords.py's format) */
	static const char blob[] = "\xff" "abc" "\x83" "d" "\x80" "b"
	                           "\xff" "qwerty" "\x80" "zz";
	size_t n = sizeof blob - 1;
	const char *in[] = {"abc", "abcd", "b", "qwerty", "zz"};
	const char *out[] = {"", "a", "ab", "abcde", "abd", "bb", "qwert", "z", "zzz", "~", "d"};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		ASSERT(password_in_list(blob, n, in[i]));
	}
	for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
		ASSERT(!password_in_list(blob, n, out[i]));
	}
	ASSERT(!password_in_list(blob, 0, "abc"));
	ASSERT(password_in_list("\xff" "only", 5, "only"));
	ASSERT(!password_in_list("\xff" "only" "\x89" "x", 7, "onlyx")); /* bad prefix */
	ASSERT(!password_in_list("only", 4, "only"));                      /* no block */
}

static void common_passwords_are_found_in_any_case(void)
{
	const char *common[] = {"123456", "password", "PassWord", "QWERTY", "dragon", "1234567890",
	        "iloveyou", "letmein", "trustno1", "secret"};
	for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
		if (!password_common(common[i])) {
			unit_fail(__FILE__, __LINE__, common[i]);
		}
	}
	ASSERT(!password_common("correct horse battery staple"));
	ASSERT(!password_common("Xk7#pq9!vR2m"));
	ASSERT(!password_common(""));
	char longer[200];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	ASSERT(!password_common(longer));
}

static void new_passwords_need_the_length_and_no_common_one(void)
{
	char why[128];
	int saved = conf.min_password_length;
	conf.min_password_length = 10;
	ASSERT_EQ(password_check("short", why, sizeof why), -1);
	ASSERT(strstr(why, "at least 10") != NULL);
	ASSERT_EQ(password_check("1234567890", why, sizeof why), -1);
	ASSERT(strstr(why, "common") != NULL);
	ASSERT_EQ(password_check("a long passphrase", why, sizeof why), 0);
	ASSERT_EQ(password_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", why, sizeof why),
	        -1); /* 5 chars */
	conf.min_password_length = 0;
	ASSERT_EQ(password_check("secret", why, sizeof why), 0); /* no checks */
	conf.min_password_length = saved;
}

void tests_password(void)
{
	RUN(the_sorted_blob_is_searched_line_by_line,
	        "password lists: a sorted blob is binary-searched line by line");
	RUN(common_passwords_are_found_in_any_case,
	        "password lists: the 10,000 most common passwords are found in any case");
	RUN(new_passwords_need_the_length_and_no_common_one,
	        "password checks: MinPasswordLength characters and no common password; 0 turns "
	        "them off");
}
