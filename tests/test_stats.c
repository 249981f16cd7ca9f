/* test_stats.c - the hour buckets of stats.c with a clock of the test's
 * own: rollover into the next hour, the 48-hour window, the file that
 * carries them over a restart, and which SMTP replies count as refused. */
#include <stdio.h>
#include <string.h>

#include "stats.h"
#include "tests/unit.h"

#define T0 1800000000LL /* 2027-01-15 08:00:00 UTC: an hour's start */
#define HOUR 3600

static void test_rollover(void)
{
	static struct stats st;
	memset(&st, 0, sizeof st);
	stats_add(&st, STATS_IN, T0);
	stats_add(&st, STATS_IN, T0 + HOUR - 1);
	stats_add(&st, STATS_OUT, T0 + HOUR); /* the next hour */
	stats_add(&st, STATS_REFUSED, T0 + HOUR + 59);
	ASSERT_EQ(stats_at(&st, T0 + 1800, STATS_IN), 2);
	ASSERT_EQ(stats_at(&st, T0, STATS_OUT), 0);
	ASSERT_EQ(stats_at(&st, T0 + HOUR, STATS_IN), 0);
	ASSERT_EQ(stats_at(&st, T0 + HOUR, STATS_OUT), 1);
	ASSERT_EQ(stats_at(&st, T0 + 2 * HOUR - 1, STATS_REFUSED), 1);
	ASSERT_EQ(stats_at(&st, T0 - HOUR, STATS_IN), 0);
	ASSERT_EQ(st.total[STATS_IN], 2);
}

static void test_window(void)
{
	static struct stats st;
	memset(&st, 0, sizeof st);
	for (int h = 0; h < STATS_HOURS; h++) {
		for (int i = 0; i <= h; i++) {
			stats_add(&st, STATS_IN, T0 + h * HOUR);
		}
	}
	for (int h = 0; h < STATS_HOURS; h++) {
		ASSERT_EQ(stats_at(&st, T0 + h * HOUR, STATS_IN), (uint32_t)h + 1);
	}
	/* 48 hours after T0 the slot of T0's hour is reused: that hour is gone */
	stats_add(&st, STATS_OUT, T0 + STATS_HOURS * HOUR);
	ASSERT_EQ(stats_at(&st, T0, STATS_IN), 0);
	ASSERT_EQ(stats_at(&st, T0 + STATS_HOURS * HOUR, STATS_IN), 0);
	ASSERT_EQ(stats_at(&st, T0 + STATS_HOURS * HOUR, STATS_OUT), 1);
	ASSERT_EQ(stats_at(&st, T0 + HOUR, STATS_IN), 2); /* the rest stay */
	/* a week later nothing old is read, though no slot was cleared */
	ASSERT_EQ(stats_at(&st, T0 + 7 * 24 * HOUR + HOUR, STATS_IN), 0);
	ASSERT_EQ(st.total[STATS_IN], (uint64_t)STATS_HOURS * (STATS_HOURS + 1) / 2);
}

static void test_file_text(void)
{
	static struct stats a, b;
	struct buf out;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	stats_add(&a, STATS_IN, T0);
	stats_add(&a, STATS_REFUSED, T0 + 5 * HOUR);
	a.nerrors = 1;
	snprintf(a.errors[0], sizeof a.errors[0], "2027-01-15 08:00:00 warn  disk trouble");
	buf_init(&out);
	stats_format(&a, &out);
	buf_printf(&out, "junk line\nhour -5 1 2 3\nhour x\nerror %0300d\n", 7);
	stats_parse(&b, out.data);
	buf_free(&out);
	ASSERT_EQ(stats_at(&b, T0, STATS_IN), 1);
	ASSERT_EQ(stats_at(&b, T0 + 5 * HOUR, STATS_REFUSED), 1);
	ASSERT_EQ(b.total[STATS_REFUSED], 1);
	ASSERT_EQ(b.nerrors, 2);
	ASSERT_STR(b.errors[0], "2027-01-15 08:00:00 warn  disk trouble");
	ASSERT_EQ(strlen(b.errors[1]), LOG_ERROR_LEN - 1); /* cut, not overflowed */
}

static void test_restart(void)
{
	struct stats_summary s;
	snprintf(conf.storage, sizeof conf.storage, "%s", unit_tmpdir());
	stats_start();
	stats_count(STATS_IN);
	stats_count(STATS_OUT);
	stats_reply(550);
	stats_stop();  /* saves */
	stats_start(); /* a new run: the file's counts go on */
	stats_count(STATS_IN);
	stats_reply(501); /* syntax: not a refusal */
	stats_reply(555);
	stats_reply(530); /* authentication required: refused */
	stats_stop();
	stats_summary(&s); /* as rumble status reads it: from the file */
	ASSERT_EQ(s.live, 0);
	ASSERT_EQ(s.c.total[STATS_IN], 2);
	ASSERT_EQ(s.c.total[STATS_OUT], 1);
	ASSERT_EQ(s.c.total[STATS_REFUSED], 2);
	ASSERT_EQ(stats_at(&s.c, os_time(), STATS_IN) >= 1, 1); /* 2, unless the hour turned */
	ASSERT(s.disk_total > 0 && s.disk_avail <= s.disk_total);
	stats_summary_free(&s);
}

void tests_stats(void)
{
	RUN(test_rollover, "stats: a count goes to its hour; the next hour starts at zero");
	RUN(test_window,
	        "stats: 48 hours are kept; the 49th reuses the oldest slot, old slots read 0");
	RUN(test_file_text, "stats: the file's text reads back; junk skipped, long errors cut");
	RUN(test_restart,
	        "stats: counts survive a restart through StorageFolder/stats; 5xx refusals");
}
