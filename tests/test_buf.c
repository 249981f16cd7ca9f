/* test_buf.c - buffers and the spool. */
#include "rumble.h"
#include "tests/unit.h"

static void buf_appends_prints_and_consumes(void)
{
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "hello ");
	buf_printf(&b, "%s %d", "world", 42);
	ASSERT_STR(b.data, "hello world 42");
	buf_consume(&b, 6);
	ASSERT_STR(b.data, "world 42");
	ASSERT_EQ(b.len, 8);
	buf_reset(&b);
	ASSERT_EQ(b.len, 0);
	ASSERT_STR(b.data, "");
	buf_free(&b);
	ASSERT(b.data == NULL);
}

static void spool_spills_to_a_file_and_reads_back(void)
{
	struct spool sp;
	spool_init(&sp, unit_tmpdir());
	char chunk[1000];
	for (int i = 0; i < 600; i++) {
		memset(chunk, 'a' + i % 26, sizeof chunk);
		ASSERT_EQ(spool_write(&sp, chunk, sizeof chunk), 0);
	}
	ASSERT(sp.f != NULL); /* 600 KB is past SPOOL_MEM_MAX */
	ASSERT_EQ(sp.len, 600000);
	char got[1000];
	ASSERT_EQ(spool_read(&sp, 599 * 1000, got, sizeof got), 1000);
	ASSERT_EQ(got[0], 'a' + 599 % 26);
	ASSERT_EQ(spool_read(&sp, 1500, got, 10), 10);
	ASSERT_EQ(got[0], 'b');
	ASSERT_EQ(spool_read(&sp, 600000, got, 10), 0);
	ASSERT_EQ(spool_write(&sp, "z", 1), 0); /* writes go on after a read */
	ASSERT_EQ(spool_read(&sp, 600000, got, 10), 1);
	ASSERT_EQ(got[0], 'z');
	char path[512];
	rl_strlcpy(path, sp.path, sizeof path);
	spool_free(&sp);
	struct os_stat st;
	ASSERT(os_stat(path, &st) != 0);
}

static void spool_stays_in_memory_when_small(void)
{
	struct spool sp;
	spool_init(&sp, unit_tmpdir());
	ASSERT_EQ(spool_write(&sp, "abc", 3), 0);
	ASSERT(sp.f == NULL);
	char got[4];
	ASSERT_EQ(spool_read(&sp, 1, got, 4), 2);
	ASSERT(memcmp(got, "bc", 2) == 0);
	spool_free(&sp);
}

void tests_buf(void)
{
	RUN(buf_appends_prints_and_consumes, "buf appends, prints and consumes");
	RUN(spool_spills_to_a_file_and_reads_back, "spool spills to a file and reads back");
	RUN(spool_stays_in_memory_when_small, "spool stays in memory when small");
}
