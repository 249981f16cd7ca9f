/* test_quota.c - quota limits as written, their inheritance, and the
 * usage figure kept by appends and expunges (quota.c). */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];

static void sizes_and_counts_parse_as_the_cli_and_config_write_them(void)
{
	static const struct {
		const char *in;
		uint64_t kib;
		int ok;
	} kib[] = {
	        {"100K", 100, 1}, {"100k", 100, 1}, {"2M", 2048, 1}, {"1G", 1048576, 1},
	        {"1T", 1073741824ULL, 1}, {"1MB", 1024, 1}, {"1000", 1, 1}, {"1025", 2, 1},
	        {"none", MM_QUOTA_NONE, 1}, {"NONE", MM_QUOTA_NONE, 1}, {"0", MM_QUOTA_NONE, 1},
	        {"default", 0, 1}, {"", 0, 0}, {"-1", 0, 0}, {"12X", 0, 0}, {"M", 0, 0},
	        {"10 M", 0, 0}, {"99999999999T", 0, 0},
	};
	for (size_t i = 0; i < sizeof kib / sizeof kib[0]; i++) {
		uint64_t v = 12345;
		int rc = quota_parse_kib(kib[i].in, &v);
		ASSERT_EQ(rc, kib[i].ok ? 0 : -1);
		if (kib[i].ok) {
			ASSERT(v == kib[i].kib);
		}
	}
	uint64_t n = 0;
	ASSERT_EQ(quota_parse_msgs("5000", &n), 0);
	ASSERT_EQ(n, 5000);
	ASSERT_EQ(quota_parse_msgs("none", &n), 0);
	ASSERT(n == MM_QUOTA_NONE);
	ASSERT_EQ(quota_parse_msgs("default", &n), 0);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(quota_parse_msgs("5K", &n), -1);
	ASSERT_EQ(quota_parse_msgs("99999999999", &n), -1);
}

static void a_message_fits_until_either_limit_is_passed(void)
{
	struct quota_state q = {10, 3, 9 * 1024, 2};
	ASSERT(!quota_over(&q, 1, 1024));  /* exactly full */
	ASSERT(quota_over(&q, 1, 1025));   /* one byte over */
	ASSERT(quota_over(&q, 2, 10));     /* one message over */
	q.kib_limit = q.msgs_limit = 0;    /* no limits */
	ASSERT(!quota_over(&q, 1000000, 1ULL << 40));
}

static int add_user(const char *domain, const char *user, const struct mm_quota *q)
{
	struct mm_account a;
	memset(&a, 0, sizeof a);
	rl_strlcpy(a.domain, domain, sizeof a.domain);
	rl_strlcpy(a.user, user, sizeof a.user);
	a.type = MM_MBOX;
	a.quota = *q;
	return mm_account_save(&a, err, sizeof err);
}

static void the_account_beats_the_domain_which_beats_default_quota(void)
{
	struct quota_state q;
	struct mm_quota none = {0, 0}, own = {50, MM_QUOTA_NONE}, dom = {200, 20};
	ASSERT_EQ(mm_open(unit_tmpdir(), err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(add_user("example.org", "alice", &own), 0);
	ASSERT_EQ(add_user("example.org", "bob", &none), 0);
	conf.quota_kib = 1000;
	conf.quota_msgs = 100;
	quota_limits("example.org", "bob", &q);
	ASSERT_EQ(q.kib_limit, 1000);
	ASSERT_EQ(q.msgs_limit, 100);
	ASSERT_EQ(mm_domain_set_quota("example.org", &dom, err, sizeof err), 0);
	quota_limits("example.org", "bob", &q);
	ASSERT_EQ(q.kib_limit, 200);
	ASSERT_EQ(q.msgs_limit, 20);
	quota_limits("example.org", "alice", &q);
	ASSERT_EQ(q.kib_limit, 50);
	ASSERT_EQ(q.msgs_limit, 0); /* "none" of its own: no limit */
	struct mm_domain d;
	struct mm_account a;
	mm_reload(); /* as read back from the files */
	ASSERT_EQ(mm_domain_get("example.org", &d), 0);
	ASSERT(d.quota.kib == 200 && d.quota.msgs == 20);
	ASSERT_EQ(mm_account_get("example.org", "alice", &a), 0);
	ASSERT(a.quota.kib == 50 && a.quota.msgs == MM_QUOTA_NONE);
	conf.quota_kib = conf.quota_msgs = 0;
	mm_close();
}

static int append(struct mm_folder *f, const char *text)
{
	struct spool sp;
	uint32_t uid;
	spool_init(&sp, unit_tmpdir());
	spool_write(&sp, text, strlen(text));
	int rc = mm_folder_append(f, &sp, "a@b.c", 0, 0, 0, &uid);
	spool_free(&sp);
	return rc;
}

static void appends_and_expunges_keep_the_figure_a_recount_gives(void)
{
	struct mm_quota q10 = {10, 0};
	struct quota_state q, r;
	struct mm_folder *inbox, *work;
	static const char msg[] = "Subject: x\r\n\r\n0123456789\r\n";
	const uint64_t n = sizeof msg - 1; /* as served: CRLF, as given */
	ASSERT_EQ(mm_open(unit_tmpdir(), err, sizeof err), 0);
	ASSERT_EQ(mm_domain_add("example.org", err, sizeof err), 0);
	ASSERT_EQ(add_user("example.org", "alice", &q10), 0);
	ASSERT_EQ(quota_get("example.org", "alice", &q), 0); /* summed: nothing yet */
	ASSERT(q.msgs == 0 && q.bytes == 0 && q.kib_limit == 10);
	ASSERT_EQ(mm_folder_open("example.org", "alice", "INBOX", 1, &inbox), 0);
	ASSERT_EQ(mm_folder_create("example.org", "alice", "Work"), 0);
	ASSERT_EQ(mm_folder_open("example.org", "alice", "Work", 0, &work), 0);
	ASSERT_EQ(append(inbox, msg), 0);
	ASSERT_EQ(append(inbox, msg), 0);
	ASSERT_EQ(append(work, msg), 0);
	ASSERT_EQ(quota_get("example.org", "alice", &q), 0);
	ASSERT_EQ(q.msgs, 3);
	ASSERT_EQ(q.bytes, 3 * n);
	ASSERT_EQ(mm_msg_set_flags(inbox, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_folder_expunge(inbox), 1);
	ASSERT_EQ(quota_get("example.org", "alice", &q), 0);
	ASSERT_EQ(q.msgs, 2);
	ASSERT_EQ(q.bytes, 2 * n);
	ASSERT_EQ(quota_recalc("example.org", "alice", &r), 0);
	ASSERT(r.msgs == q.msgs && r.bytes == q.bytes);
	ASSERT(!quota_exceeded("example.org", "alice", 1, 10 * 1024 - 2 * n));
	ASSERT(quota_exceeded("example.org", "alice", 1, 10 * 1024 - 2 * n + 1));
	mm_folder_close(work);
	ASSERT_EQ(mm_folder_delete("example.org", "alice", "Work"), 0);
	ASSERT_EQ(quota_get("example.org", "alice", &q), 0); /* forgotten, summed again */
	ASSERT_EQ(q.msgs, 1);
	mm_folder_close(inbox);
	mm_close();
}

void tests_quota(void)
{
	RUN(sizes_and_counts_parse_as_the_cli_and_config_write_them,
	        "quota sizes and counts parse as the CLI and rumble.conf write them");
	RUN(a_message_fits_until_either_limit_is_passed,
	        "quota: a message fits until either limit is passed");
	RUN(the_account_beats_the_domain_which_beats_default_quota,
	        "quota: the account's limit beats the domain's, which beats DefaultQuota");
	RUN(appends_and_expunges_keep_the_figure_a_recount_gives,
	        "quota: appends and expunges keep the figure a recount of the folders gives");
}
