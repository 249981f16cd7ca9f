/* test_smtp.c - the SMTP path parser, a known-answer table. */
#include "rumble.h"
#include "tests/unit.h"

static void paths_parse_as_rfc5321_says(void)
{
	static const struct {
		const char *in, *prefix, *addr, *params;
		int rc;
	} t[] = {
		{"FROM:<a@example.org>", "FROM:", "a@example.org", "", 0},
		{"from:<a@example.org> SIZE=100 BODY=8BITMIME", "FROM:", "a@example.org",
			"SIZE=100 BODY=8BITMIME", 0},
		{"FROM: <a@example.org>", "FROM:", "a@example.org", "", 0},
		{"FROM:<>", "FROM:", "", "", 0},
		{"TO:<@relay.example:b@example.org>", "TO:", "b@example.org", "", 0},
		{"TO:<\"john smith\"@example.org>", "TO:", "\"john smith\"@example.org", "", 0},
		{"TO:<josé@example.org>", "TO:", "josé@example.org", "", 0},
		{"TO:b@example.org", "TO:", "b@example.org", "", 0},
		{"TO:<b@example.org", "TO:", NULL, NULL, -1},
		{"TO:<b>", "TO:", NULL, NULL, -1},
		{"TO:<Postmaster>", "TO:", "Postmaster", "", 0}, /* RFC 5321 4.1.1.3 */
		{"FROM:<postmaster>", "FROM:", NULL, NULL, -1},
		{"TO:<b@>", "TO:", NULL, NULL, -1},
		{"TO:<@example.org>", "TO:", NULL, NULL, -1},
		{"TO:<a..b@example.org>", "TO:", NULL, NULL, -1},
		{"TO:<a b@example.org>", "TO:", NULL, NULL, -1},
		{"TO:<a@exa mple.org>", "TO:", NULL, NULL, -1},
		{"TO:<a@../../etc>", "TO:", NULL, NULL, -1},
		{"FROM:<a@example.org>", "TO:", NULL, NULL, -1},
		{"TO:<a@example.org>x", "TO:", NULL, NULL, -1},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char arg[256], addr[320], *params = NULL;
		rl_strlcpy(arg, t[i].in, sizeof arg);
		int rc = smtp_parse_path(arg, t[i].prefix, addr, sizeof addr, &params);
		if (rc != t[i].rc) {
			char m[300];
			snprintf(m, sizeof m, "\"%s\" gave %d", t[i].in, rc);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
		if (rc == 0) {
			ASSERT_STR(addr, t[i].addr);
			ASSERT_STR(params, t[i].params);
		}
	}
}

static void an_overlong_address_is_refused(void)
{
	char arg[700], addr[320], *params;
	strcpy(arg, "TO:<");
	memset(arg + 4, 'a', 600);
	strcpy(arg + 604, "@example.org>");
	ASSERT_EQ(smtp_parse_path(arg, "TO:", addr, sizeof addr, &params), -1);
}

void tests_smtp(void)
{
	RUN(paths_parse_as_rfc5321_says, "smtp paths parse as RFC 5321 says");
	RUN(an_overlong_address_is_refused, "smtp an overlong address is refused");
}
