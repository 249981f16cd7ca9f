/* test_greylist.c - greylisting's rules with a clock of the test's own:
 * first seen, too early, passed, remembered, forgotten; the key; growth;
 * saving and loading. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

#define T0 1800000000LL
#define DAY 86400

static void test_rules(void)
{
	conf.greylist_delay = 300;
	greylist_free();
	uint64_t k = greylist_key("192.0.2.10", "a@remote.test", "bob@example.org");
	ASSERT_EQ(greylist_check(k, T0), 300);       /* first seen */
	ASSERT_EQ(greylist_check(k, T0 + 10), 290);  /* too early */
	ASSERT_EQ(greylist_check(k, T0 + 300), 0);   /* retried in time: passes */
	ASSERT_EQ(greylist_check(k, T0 + 301), 0);   /* and keeps passing */
	ASSERT_EQ(greylist_check(k, T0 + 30 * DAY), 0);
	ASSERT_EQ(greylist_check(k, T0 + 66 * DAY), 300); /* 36 days unseen: forgotten */
	uint64_t j = greylist_key("192.0.2.10", "b@remote.test", "bob@example.org");
	ASSERT_EQ(greylist_check(j, T0), 300);
	ASSERT_EQ(greylist_check(j, T0 + 3 * DAY), 300); /* never retried in 2 days: new again */
	greylist_free();
}

static void test_key(void)
{
	uint64_t a = greylist_key("192.0.2.10", "A@Remote.test", "Bob@example.org");
	ASSERT(a == greylist_key("192.0.2.99", "a@remote.test", "bob@example.org")); /* one /24 */
	ASSERT(a != greylist_key("192.0.3.10", "a@remote.test", "bob@example.org"));
	ASSERT(a != greylist_key("192.0.2.10", "a@remote.test", "carol@example.org"));
	ASSERT(a != greylist_key("192.0.2.10", "", "bob@example.org"));
	uint64_t v6 = greylist_key("2001:db8:1:2::5", "a@remote.test", "bob@example.org");
	ASSERT(v6 == greylist_key("2001:db8:1:2:ffff::1", "a@remote.test", "bob@example.org"));
	ASSERT(v6 != greylist_key("2001:db8:1:3::5", "a@remote.test", "bob@example.org"));
}

static void test_growth_and_saving(void)
{
	conf.greylist_delay = 300;
	greylist_free();
	snprintf(conf.storage, sizeof conf.storage, "%s", unit_tmpdir());
	for (int i = 0; i < 5000; i++) {
		char from[64];
		snprintf(from, sizeof from, "s%d@remote.test", i);
		ASSERT_EQ(greylist_check(greylist_key("198.51.100.1", from, "bob@example.org"), T0), 300);
	}
	for (int i = 0; i < 5000; i += 7) {
		char from[64];
		snprintf(from, sizeof from, "s%d@remote.test", i);
		ASSERT_EQ(greylist_check(greylist_key("198.51.100.1", from, "bob@example.org"), T0 + 400), 0);
	}
	ASSERT_EQ(greylist_save(T0 + 400), 0);
	greylist_free();
	greylist_load(T0 + 500);
	ASSERT_EQ(greylist_check(greylist_key("198.51.100.1", "s7@remote.test", "bob@example.org"), T0 + 500), 0);
	ASSERT_EQ(greylist_check(greylist_key("198.51.100.1", "s8@remote.test", "bob@example.org"), T0 + 500), 0);
	ASSERT_EQ(greylist_check(greylist_key("198.51.100.1", "new@remote.test", "bob@example.org"), T0 + 500), 300);
	greylist_free();
}

void tests_greylist(void)
{
	RUN(test_rules, "greylist: first seen waits, a retry in time passes, 35 days kept, 2 days to retry");
	RUN(test_key, "greylist: the key is the /24 or /64, sender and recipient, case-insensitive");
	RUN(test_growth_and_saving, "greylist: 5,000 triplets grow the table; saved and loaded they stay");
}
