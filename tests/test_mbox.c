/* test_mbox.c - the mbox store: append/read round trips, the index, crash
 * recovery, compaction, two openers. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];
static char dir[600]; /* the storage folder of the current test */

static const char msg1[] = "From: a@example.org\r\nSubject: one\r\n\r\n"
                           "Hello\r\nFrom here on it is quoted\r\n\r\nFrom the start of a para\r\n";
static const char msg2[] = "Subject: two\r\n\r\n>From already quoted\r\n>>From twice\r\n"
                           ">Fromage is not a From line\r\nFrom\r\n";
static const char msg3[] = "Subject: three\r\n\r\nlone\rCR here\r\nand \r\r\n end\r\n";

/* Storage with example.org and john's INBOX open. */
static struct mm_folder *setup(void)
{
	struct mm_folder *f = NULL;
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	if (mm_open(dir, err, sizeof err) != 0 ||
	        mm_domain_add("example.org", err, sizeof err) != 0 ||
	        mm_folder_open("example.org", "john", "INBOX", 1, &f) != 0) {
		return NULL;
	}
	return f;
}

static void teardown(struct mm_folder *f)
{
	mm_folder_close(f);
	mm_close();
}

static struct mm_folder *reopen(struct mm_folder *f)
{
	mm_folder_close(f);
	struct mm_folder *g = NULL;
	return mm_folder_open("example.org", "john", "INBOX", 0, &g) == 0 ? g : NULL;
}

static void fpath(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/mail/example.org/john/%s", dir, name);
}

static int append(struct mm_folder *f, const void *p, size_t n, uint64_t qid, uint32_t *uid)
{
	struct spool sp;
	spool_init(&sp, dir);
	spool_write(&sp, p, n);
	int rc = mm_folder_append(f, &sp, "sender@example.net", 1795000000, 0, qid, uid);
	spool_free(&sp);
	return rc;
}

static int append_s(struct mm_folder *f, const char *s)
{
	uint32_t uid;
	return append(f, s, strlen(s), 0, &uid);
}

/* Message i through a reader that is handed step bytes at a time; -1 on
 * a read error. */
static long read_stream(struct mm_folder *f, uint32_t i, size_t step, struct buf *out)
{
	struct mm_reader *r = mm_reader_open(f, i);
	char *chunk = xmalloc(step);
	long n = r ? 0 : -1;
	buf_reset(out);
	while (r && (n = mm_reader_read(r, chunk, step)) > 0) {
		buf_append(out, chunk, (size_t)n);
	}
	mm_reader_close(r);
	xfree(chunk);
	return n < 0 ? -1 : (long)out->len;
}

/* 1 when message i reads back as exactly p[0..n), whole and streamed
 * through buffers of several sizes (1 byte pays every owed byte alone). */
static int reads_as(struct mm_folder *f, uint32_t i, const void *p, size_t n)
{
	static const size_t steps[] = {1, 3, 4096, 70000};
	struct buf b;
	buf_init(&b);
	int ok = 1;
	for (size_t k = 0; k < sizeof steps / sizeof steps[0] && ok; k++) {
		ok = read_stream(f, i, steps[k], &b) == (long)n &&
		     memcmp(b.data ? b.data : "", p, n) == 0;
	}
	ok = ok && mm_msg_read(f, i, &b) == 0 && b.len == n && memcmp(b.data, p, n) == 0;
	const struct mm_msg *m = mm_folder_msg(f, i);
	ok = ok && m && m->size == n;
	buf_free(&b);
	return ok;
}

static long file_len(const char *path)
{
	struct os_stat st;
	return os_stat(path, &st) == 0 ? (long)st.size : -1;
}

static size_t slurp(const char *path, char *out, size_t len)
{
	FILE *fp = fopen(path, "rb");
	size_t n = fp ? fread(out, 1, len - 1, fp) : 0;
	out[n] = '\0';
	if (fp) {
		fclose(fp);
	}
	return n;
}

static int add_bytes(const char *path, const char *s)
{
	FILE *fp = fopen(path, "ab");
	int ok = fp && fwrite(s, 1, strlen(s), fp) == strlen(s);
	if (fp) {
		fclose(fp);
	}
	return ok ? 0 : -1;
}

static int copy_file(const char *from, const char *to)
{
	static char data[1 << 20];
	size_t n = slurp(from, data, sizeof data);
	return os_write_file_atomic(to, data, n);
}

/* The tiny checker: messages = "From " lines at the start or after a
 * blank line; the file ends with a blank line. -1 if malformed. */
static int count_from_lines(const char *path)
{
	static char data[1 << 20];
	size_t n = slurp(path, data, sizeof data);
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		if ((i == 0 || (i >= 2 && data[i - 1] == '\n' && data[i - 2] == '\n')) &&
		        strncmp(data + i, "From ", 5) == 0) {
			count++;
		}
	}
	if (n && (n < 2 || data[n - 1] != '\n' || data[n - 2] != '\n')) {
		return -1;
	}
	return count;
}

static struct mm_folder *with_three(void)
{
	struct mm_folder *f = setup();
	if (!f || append_s(f, msg1) || append_s(f, msg2) || append_s(f, msg3)) {
		return NULL;
	}
	return f;
}

static void three_round_trip(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	uint32_t uid;
	ASSERT_EQ(append(f, msg1, strlen(msg1), 0, &uid), 0);
	ASSERT_EQ(uid, 1);
	ASSERT_EQ(append(f, msg2, strlen(msg2), 0, &uid), 0);
	ASSERT_EQ(uid, 2);
	ASSERT_EQ(append(f, msg3, strlen(msg3), 0, &uid), 0);
	ASSERT_EQ(uid, 3);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT_EQ(mm_folder_uidnext(f), 4);
	ASSERT(mm_folder_uidvalidity(f) != 0);
	ASSERT(reads_as(f, 0, msg1, strlen(msg1)));
	ASSERT(reads_as(f, 1, msg2, strlen(msg2)));
	ASSERT(reads_as(f, 2, msg3, strlen(msg3)));
	const struct mm_msg *m = mm_folder_msg(f, 0);
	ASSERT_EQ(m->uid, 1);
	ASSERT_EQ(m->date, 1795000000);
	/* stored: LF line ends and two quoted lines: 7 CRs gone, 2 '>' added */
	ASSERT_EQ(m->length, strlen(msg1) - 7 + 2);
	ASSERT(mm_folder_msg(f, 3) == NULL);
	ASSERT_EQ(mm_folder_sync(f), 0);
	teardown(f);
}

static void mbox_format(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	char path[800], data[4096];
	fpath(path, sizeof path, "INBOX.mbox");
	slurp(path, data, sizeof data);
	ASSERT(strncmp(data, "From sender@example.net Wed Nov 18 ", 35) == 0);
	ASSERT(!strchr(data, '\r') || strstr(data, "lone\rCR")); /* only lone CRs stay */
	ASSERT(!strstr(data, "\r\n") || strstr(data, "\r\r") == NULL);
	ASSERT(strstr(data, "\n>From here on"));
	ASSERT(strstr(data, "\n>From the start"));
	ASSERT(strstr(data, "\n>>From already"));
	ASSERT(strstr(data, "\n>>>From twice"));
	ASSERT(strstr(data, "\n>Fromage"));
	ASSERT(strstr(data, "\nFrom\n"));
	ASSERT(strstr(data, "and \r\r\n end") == NULL);
	ASSERT(strstr(data, "and \r\n end")); /* CR CR LF: the CRLF became LF */
	ASSERT_EQ(count_from_lines(path), 3);
	teardown(f);
}

static void large_spooled(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	size_t n = SPOOL_MEM_MAX * 2 + 12345;
	char *big = xmalloc(n);
	size_t o = 0;
	for (int line = 0; o < n; line++) {
		char l[100];
		int k = snprintf(l, sizeof l,
		        line % 7 == 3 ? "From line %d\r\n" : "line %d of text\r\n", line);
		for (int i = 0; i < k && o < n; i++) {
			big[o++] = l[i];
		}
	}
	big[n - 2] = '\r', big[n - 1] = '\n';
	struct spool sp;
	spool_init(&sp, dir);
	for (size_t i = 0; i < n; i += 1000) {
		spool_write(&sp, big + i, n - i < 1000 ? n - i : 1000);
	}
	ASSERT(sp.f != NULL); /* really spilled to a file */
	uint32_t uid;
	ASSERT_EQ(mm_folder_append(f, &sp, "", 1795000000, 0, 0, &uid), 0);
	spool_free(&sp);
	ASSERT(reads_as(f, 0, big, n));
	f = reopen(f);
	ASSERT(f);
	ASSERT(reads_as(f, 0, big, n));
	char path[800], head[64];
	fpath(path, sizeof path, "INBOX.mbox");
	slurp(path, head, 20);
	ASSERT(strncmp(head, "From MAILER-DAEMON ", 19) == 0);
	xfree(big);
	teardown(f);
}

static void odd_endings(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	ASSERT_EQ(append_s(f, ""), 0);
	ASSERT_EQ(append_s(f, "Subject: no end\r\n\r\nlast line"), 0);
	ASSERT_EQ(append_s(f, "bare\nLF\r\n"), 0);
	ASSERT_EQ(append_s(f, "From"), 0);
	ASSERT(reads_as(f, 0, "", 0));
	/* documented: a missing final CRLF is added, a bare LF is served as CRLF */
	ASSERT(reads_as(f, 1, "Subject: no end\r\n\r\nlast line\r\n", 30));
	ASSERT(reads_as(f, 2, "bare\r\nLF\r\n", 10));
	ASSERT(reads_as(f, 3, "From\r\n", 6));
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	ASSERT_EQ(count_from_lines(path), 4);
	f = reopen(f); /* the index agrees with a rebuild's view too */
	ASSERT_EQ(mm_folder_count(f), 4);
	ASSERT(reads_as(f, 0, "", 0));
	teardown(f);
}

static void reopen_keeps_uids(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint32_t v = mm_folder_uidvalidity(f);
	f = reopen(f);
	ASSERT(f);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT_EQ(mm_folder_uidnext(f), 4);
	ASSERT_EQ(mm_folder_msg(f, 2)->uid, 3);
	ASSERT(reads_as(f, 1, msg2, strlen(msg2)));
	teardown(f);
}

static void flags_persist(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint64_t before = mm_folder_msg(f, 1)->modseq;
	ASSERT_EQ(mm_msg_set_flags(f, 1, MM_SEEN | MM_FLAGGED), 0);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_SEEN | MM_FLAGGED);
	ASSERT(mm_folder_msg(f, 1)->modseq > before);
	ASSERT_EQ(mm_msg_set_flags(f, 7, MM_SEEN), -1);
	f = reopen(f);
	ASSERT(f);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_SEEN | MM_FLAGGED);
	ASSERT_EQ(mm_folder_msg(f, 0)->flags, 0);
	ASSERT_EQ(mm_folder_msg(f, 2)->flags, 0);
	teardown(f);
}

static void expunge_and_compact(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint32_t v = mm_folder_uidvalidity(f);
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	long before = file_len(path);
	ASSERT_EQ(mm_msg_set_flags(f, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_msg_set_flags(f, 2, MM_SEEN), 0);
	ASSERT_EQ(mm_folder_expunge(f), 1);
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 2);
	ASSERT_EQ(file_len(path), before); /* only marked */
	f = reopen(f);
	ASSERT_EQ(mm_folder_count(f), 2); /* the mark persists */
	ASSERT_EQ(mm_folder_compact(f), 0);
	ASSERT(file_len(path) < before);
	ASSERT_EQ(count_from_lines(path), 2);
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 2);
	ASSERT_EQ(mm_folder_msg(f, 1)->uid, 3);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_SEEN);
	ASSERT(reads_as(f, 0, msg2, strlen(msg2)));
	ASSERT(reads_as(f, 1, msg3, strlen(msg3)));
	ASSERT_EQ(mm_folder_uidnext(f), 4);
	f = reopen(f);
	ASSERT(f);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	ASSERT_EQ(mm_folder_uidnext(f), 4);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_SEEN);
	ASSERT(reads_as(f, 1, msg3, strlen(msg3)));
	uint32_t uid;
	ASSERT_EQ(append(f, msg1, strlen(msg1), 0, &uid), 0);
	ASSERT_EQ(uid, 4); /* UIDs are not reused */
	teardown(f);
}

static void index_rebuilt(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint32_t v = mm_folder_uidvalidity(f);
	mm_folder_close(f);
	char path[800];
	fpath(path, sizeof path, "INBOX.idx");
	ASSERT_EQ(os_remove(path), 0);
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT(mm_folder_uidvalidity(f) != v);
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 1);
	ASSERT_EQ(mm_folder_msg(f, 2)->uid, 3);
	ASSERT_EQ(mm_folder_msg(f, 0)->date, 1795000000); /* from the From_ line */
	ASSERT(reads_as(f, 0, msg1, strlen(msg1)));
	ASSERT(reads_as(f, 1, msg2, strlen(msg2)));
	ASSERT(reads_as(f, 2, msg3, strlen(msg3)));
	/* a garbled index is rebuilt too */
	mm_folder_close(f);
	ASSERT_EQ(os_write_file_atomic(path, "garbage\n", 8), 0);
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT(reads_as(f, 2, msg3, strlen(msg3)));
	teardown(f);
}

static void torn_tail_cut(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	mm_folder_close(f);
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	long good = file_len(path);
	ASSERT_EQ(add_bytes(path, "From x@y Wed Nov 18 09:00:00 2026\nSubject: torn\n\nhalf a bo"),
	        0);
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT_EQ(file_len(path), good);
	ASSERT(reads_as(f, 2, msg3, strlen(msg3)));
	/* junk that is not even a From_ line, seen by a refresh */
	ASSERT_EQ(add_bytes(path, "\x01\x02junk"), 0);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	ASSERT_EQ(file_len(path), good);
	uint32_t uid;
	ASSERT_EQ(append(f, msg1, strlen(msg1), 0, &uid), 0);
	ASSERT_EQ(uid, 4);
	ASSERT_EQ(count_from_lines(path), 4);
	teardown(f);
}

static void foreign_tail_indexed(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint32_t v = mm_folder_uidvalidity(f);
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	ASSERT_EQ(add_bytes(path, "From other@example.com Thu Jan  1 00:00:10 1970\n"
	                          "Subject: hi\n\n>From quoted\nbody\n\n"),
	        0);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	ASSERT_EQ(mm_folder_count(f), 4);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	const struct mm_msg *m = mm_folder_msg(f, 3);
	ASSERT_EQ(m->uid, 4);
	ASSERT_EQ(m->date, 10);
	const char want[] = "Subject: hi\r\n\r\nFrom quoted\r\nbody\r\n";
	ASSERT(reads_as(f, 3, want, strlen(want)));
	f = reopen(f);
	ASSERT_EQ(mm_folder_count(f), 4);
	ASSERT(reads_as(f, 3, want, strlen(want)));
	teardown(f);
}

static void index_past_end_dropped(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	mm_folder_close(f);
	char path[800], data[8192];
	fpath(path, sizeof path, "INBOX.mbox");
	/* the mbox loses its last message (never reached the disk) */
	size_t n = slurp(path, data, sizeof data);
	char *last = strstr(data, "\n\nFrom sender@example.net");
	last = last ? strstr(last + 2, "\n\nFrom sender@example.net") : NULL;
	ASSERT(last);
	ASSERT(n > (size_t)(last - data));
	ASSERT_EQ(os_write_file_atomic(path, data, (size_t)(last - data) + 2), 0);
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT(reads_as(f, 1, msg2, strlen(msg2)));
	char ipath[800];
	fpath(ipath, sizeof ipath, "INBOX.idx");
	ASSERT_EQ(file_len(ipath), 33 * MM__IDX_LINE + 2 * MM__IDX_LINE);
	teardown(f);
}

/* The index in format 1: 128-byte lines, the header without floor and
 * recent, message lines without savedate (their fields are where format
 * 2 has them). */
static size_t as_format1(const char *in, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i + MM__IDX_LINE <= n; i += MM__IDX_LINE) {
		const char *l = in + i;
		size_t keep = i == 0 ? 107 : i < 33 * MM__IDX_LINE ? 127 : 124;
		memset(out + k, ' ', 127);
		memcpy(out + k, l, keep);
		out[k + 127] = '\n';
		if (i == 0) {
			out[k + 13] = '1';
		}
		k += 128;
	}
	return k;
}

static void index_v1_upgraded(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	int kw = mm_folder_keyword(f, "$Work", 1);
	ASSERT_EQ(kw, 0);
	uint32_t uids[] = {2};
	ASSERT_EQ(mm_folder_store(f, uids, 1, MM_STORE_SET, MM_SEEN | MM_FLAGGED, 1u << kw), 1);
	uint32_t v = mm_folder_uidvalidity(f);
	mm_folder_close(f);
	static char data[64 * 1024], old[64 * 1024];
	char path[800];
	fpath(path, sizeof path, "INBOX.idx");
	size_t n = slurp(path, data, sizeof data);
	ASSERT_EQ(n, 36 * MM__IDX_LINE);
	n = as_format1(data, n, old);
	ASSERT_EQ(n, 36 * 128);
	ASSERT_EQ(memcmp(old, "RUMBLE-INDEX 1 uidvalidity=", 27), 0);
	ASSERT_EQ(os_write_file_atomic(path, old, n), 0);
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 3);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	ASSERT_EQ(mm_folder_uidnext(f), 4);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_SEEN | MM_FLAGGED);
	ASSERT_EQ(mm_folder_msg(f, 1)->keywords, 1u);
	ASSERT_EQ(mm_folder_msg(f, 1)->savedate, 0); /* not known */
	ASSERT(mm_folder_keyword_name(f, 0) && strcmp(mm_folder_keyword_name(f, 0), "$Work") == 0);
	ASSERT(reads_as(f, 2, msg3, strlen(msg3)));
	ASSERT_EQ(file_len(path), 36 * MM__IDX_LINE);
	n = slurp(path, data, sizeof data);
	ASSERT_EQ(memcmp(data, "RUMBLE-INDEX 2 uidvalidity=", 27), 0);
	uint32_t uid;
	ASSERT_EQ(append(f, msg1, strlen(msg1), 0, &uid), 0);
	ASSERT_EQ(uid, 4);
	ASSERT(mm_folder_msg(f, 3)->savedate > 0);
	f = reopen(f);
	ASSERT_EQ(mm_folder_count(f), 4);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	teardown(f);
}

static void has_qid(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	uint32_t uid;
	for (uint64_t q = 1; q <= 100; q++) {
		ASSERT_EQ(append(f, "x\r\n", 3, 0xabc000 + q, &uid), 0);
	}
	ASSERT(mm_folder_has_qid(f, 0xabc000 + 100));
	ASSERT(mm_folder_has_qid(f, 0xabc000 + 50));
	ASSERT(!mm_folder_has_qid(f, 0xabc000 + 1)); /* older than the last 64 */
	ASSERT(!mm_folder_has_qid(f, 0x123));
	ASSERT(!mm_folder_has_qid(f, 0));
	f = reopen(f);
	ASSERT(mm_folder_has_qid(f, 0xabc000 + 99));
	teardown(f);
}

static void two_openers(void)
{
	struct mm_folder *a = with_three(), *b = NULL;
	ASSERT(a);
	ASSERT_EQ(mm_folder_open("example.org", "JOHN", "inbox", 0, &b), 0);
	ASSERT_EQ(mm_folder_count(b), 3);
	ASSERT_EQ(append_s(a, "Subject: four\r\n\r\n4\r\n"), 0);
	ASSERT_EQ(mm_msg_set_flags(a, 0, MM_SEEN | MM_DELETED), 0);
	ASSERT_EQ(mm_folder_refresh(b), 0);
	ASSERT_EQ(mm_folder_count(b), 4);
	ASSERT_EQ(mm_folder_msg(b, 0)->flags, MM_SEEN | MM_DELETED);
	/* b appends: a's next append sees it and does not collide */
	ASSERT_EQ(append_s(b, "Subject: five\r\n\r\n5\r\n"), 0);
	uint32_t uid;
	ASSERT_EQ(append(a, "6\r\n", 3, 0, &uid), 0);
	ASSERT_EQ(uid, 6);
	ASSERT_EQ(mm_folder_expunge(a), 1);
	ASSERT_EQ(mm_folder_compact(a), 0);
	/* b still holds the old files; its refresh notices the compaction */
	ASSERT_EQ(mm_folder_refresh(b), 0);
	ASSERT_EQ(mm_folder_count(b), 5);
	ASSERT_EQ(mm_folder_msg(b, 0)->uid, 2);
	ASSERT(reads_as(b, 0, msg2, strlen(msg2)));
	ASSERT(reads_as(b, 4, "6\r\n", 3));
	ASSERT_EQ(mm_folder_uidvalidity(a), mm_folder_uidvalidity(b));
	mm_folder_close(b);
	teardown(a);
}

/* After a compaction the new mbox may grow back to the old size before
 * another opener looks: the stale mark in the old index still tells. */
static void compaction_seen_at_same_size(void)
{
	struct mm_folder *a = with_three(), *b = NULL;
	ASSERT(a);
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &b), 0);
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	long before = file_len(path);
	ASSERT_EQ(mm_msg_set_flags(a, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_folder_expunge(a), 1);
	ASSERT_EQ(mm_folder_compact(a), 0);
	ASSERT_EQ(append_s(a, msg1), 0); /* same From_ line, same bytes */
	ASSERT_EQ(file_len(path), before);
	ASSERT_EQ(mm_folder_refresh(b), 0);
	ASSERT_EQ(mm_folder_count(b), 3);
	ASSERT_EQ(mm_folder_msg(b, 0)->uid, 2);
	ASSERT_EQ(mm_folder_msg(b, 2)->uid, 4);
	ASSERT(reads_as(b, 2, msg1, strlen(msg1)));
	mm_folder_close(b);
	teardown(a);
}

/* Sets up the state a crash between compaction steps leaves. */
static void crash_mid_compaction(int mbox_renamed)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	ASSERT_EQ(mm_msg_set_flags(f, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_msg_set_flags(f, 2, MM_FLAGGED), 0);
	ASSERT_EQ(mm_folder_expunge(f), 1);
	uint32_t v = mm_folder_uidvalidity(f);
	char mbox[800], idx[800], oldm[800], oldi[800], mnew[800], inew[800];
	fpath(mbox, sizeof mbox, "INBOX.mbox");
	fpath(idx, sizeof idx, "INBOX.idx");
	fpath(oldm, sizeof oldm, "old.mbox.bak");
	fpath(oldi, sizeof oldi, "old.idx.bak");
	fpath(mnew, sizeof mnew, "INBOX.mbox.new");
	fpath(inew, sizeof inew, "INBOX.idx.new");
	ASSERT_EQ(copy_file(mbox, oldm), 0);
	ASSERT_EQ(copy_file(idx, oldi), 0);
	ASSERT_EQ(mm_folder_compact(f), 0);
	mm_folder_close(f);
	ASSERT_EQ(copy_file(idx, inew), 0);
	ASSERT_EQ(copy_file(oldi, idx), 0);
	if (!mbox_renamed) {
		ASSERT_EQ(copy_file(mbox, mnew), 0);
		ASSERT_EQ(copy_file(oldm, mbox), 0);
	}
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT_EQ(mm_folder_uidvalidity(f), v); /* no rebuild: flags and UIDs kept */
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 2);
	ASSERT_EQ(mm_folder_msg(f, 1)->uid, 3);
	ASSERT_EQ(mm_folder_msg(f, 1)->flags, MM_FLAGGED);
	ASSERT(reads_as(f, 0, msg2, strlen(msg2)));
	ASSERT(reads_as(f, 1, msg3, strlen(msg3)));
	ASSERT_EQ(file_len(inew), -1);
	ASSERT_EQ(file_len(mnew), -1);
	ASSERT_EQ(count_from_lines(mbox), mbox_renamed ? 2 : 3);
	teardown(f);
}

static void crash_between_renames(void)
{
	crash_mid_compaction(1);
}

static void crash_before_renames(void)
{
	crash_mid_compaction(0);
}

static void mismatched_index_rebuilt(void)
{
	struct mm_folder *f = with_three();
	ASSERT(f);
	uint32_t v = mm_folder_uidvalidity(f);
	mm_folder_close(f);
	/* someone rewrote the mbox (mutt deleting the first message) */
	char path[800], data[8192];
	fpath(path, sizeof path, "INBOX.mbox");
	slurp(path, data, sizeof data);
	char *second = strstr(data, "\n\nFrom sender@example.net");
	ASSERT(second);
	ASSERT_EQ(os_write_file_atomic(path, second + 2, strlen(second + 2)), 0);
	f = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT(mm_folder_uidvalidity(f) != v);
	ASSERT(reads_as(f, 0, msg2, strlen(msg2)));
	ASSERT(reads_as(f, 1, msg3, strlen(msg3)));
	teardown(f);
}

static void bad_names_refused(void)
{
	struct mm_folder *f = setup(), *g = NULL;
	ASSERT(f);
	ASSERT_EQ(mm_folder_open("example.org", "../x", "INBOX", 1, &g), -1);
	ASSERT_EQ(mm_folder_open("example.org", "john", "a/b", 1, &g), -1);
	ASSERT_EQ(mm_folder_open("example.org", "john", "../INBOX", 1, &g), -1);
	ASSERT_EQ(mm_folder_open("..", "john", "INBOX", 1, &g), -1);
	ASSERT_EQ(mm_folder_open("example.org", "john", "", 1, &g), -1);
	ASSERT_EQ(mm_folder_open("example.org", "john", "Nope", 0, &g), -1);
	ASSERT(g == NULL);
	teardown(f);
}

static int collect(const char *name, void *arg)
{
	char *out = arg;
	strcat(out, name);
	strcat(out, "|");
	return 0;
}

static void folder_list(void)
{
	struct mm_folder *f = setup(), *g;
	ASSERT(f);
	const char *names[] = {"Trash", "Sent", "con", "a:b",
	        "Entw\xc3\xbc"
	        "rfe",
	        "inbox"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		g = NULL;
		ASSERT_EQ(mm_folder_open("example.org", "john", names[i], 1, &g), 0);
		mm_folder_close(g);
	}
	char path[800];
	fpath(path, sizeof path, "Sent.mbox");
	ASSERT(file_len(path) >= 0);
	fpath(path, sizeof path, "%63on.mbox");
	ASSERT(file_len(path) >= 0);
	fpath(path, sizeof path, "a%3Ab.mbox");
	ASSERT(file_len(path) >= 0);
	char out[512] = "";
	ASSERT_EQ(mm_folder_list("example.org", "john", collect, out), 0);
	ASSERT_STR(out, "INBOX|Entw\xc3\xbc"
	                "rfe|Sent|Trash|a:b|con|");
	/* Sent and sent are two folders */
	g = NULL;
	ASSERT_EQ(mm_folder_open("example.org", "john", "sent", 1, &g), 0);
	ASSERT_EQ(append_s(g, "x\r\n"), 0);
	mm_folder_close(g);
	ASSERT_EQ(mm_folder_open("example.org", "john", "Sent", 0, &g), 0);
	ASSERT_EQ(mm_folder_count(g), 0);
	mm_folder_close(g);
	teardown(f);
}

/* A message whose quoting runs across the reader's 16 KB chunks: long
 * runs of '>' before "From " and before something else. */
static void quoting_across_chunks(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	struct buf m;
	buf_init(&m);
	buf_puts(&m, "Subject: quotes\r\n\r\n");
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 16380 + round * 3; i++) {
			buf_append(&m, ">", 1);
		}
		buf_puts(&m, round == 1 ? "Fromage\r\n" : "From here\r\n");
		buf_puts(&m, "From the start\r\n>From\r\nFro\r\n");
	}
	buf_puts(&m, ">>>From");
	ASSERT_EQ(append(f, m.data, m.len, 0, NULL), 0);
	buf_puts(&m, "\r\n"); /* the missing final CRLF is added */
	ASSERT(reads_as(f, 0, m.data, m.len));
	f = reopen(f); /* sizes as the rebuild-free reopen reads them */
	ASSERT(reads_as(f, 0, m.data, m.len));
	buf_free(&m);
	teardown(f);
}

static void big_body(struct buf *b, int tag, size_t n)
{
	buf_reset(b);
	buf_printf(b, "Subject: big %d\r\n\r\n", tag);
	for (int line = 0; b->len < n; line++) {
		buf_printf(b, line % 5 == 2 ? "From line %d of %d\r\n" : "line %d of %d, text\r\n",
		        line, tag);
	}
}

/* A reader half way through its message while the folder is appended to,
 * compacted by another opener (seen here by a refresh) and, last, loses
 * its message. */
static void reader_survives_changes(void)
{
	struct mm_folder *f = setup(), *g = NULL;
	ASSERT(f);
	struct buf m1, m2, got;
	buf_init(&m1), buf_init(&m2), buf_init(&got);
	big_body(&m1, 1, 100000);
	big_body(&m2, 2, 100000);
	ASSERT_EQ(append(f, m1.data, m1.len, 0, NULL), 0);
	ASSERT_EQ(append(f, m2.data, m2.len, 0, NULL), 0);
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &g), 0);
	struct mm_reader *r = mm_reader_open(f, 1);
	ASSERT(r);
	ASSERT(mm_reader_open(f, 2) == NULL);
	char chunk[7000];
	long n;
	for (int i = 0; i < 3 && (n = mm_reader_read(r, chunk, sizeof chunk)) > 0; i++) {
		buf_append(&got, chunk, (size_t)n);
	}
	ASSERT_EQ(append_s(f, "Subject: three\r\n\r\n3\r\n"), 0); /* same handle */
	ASSERT_EQ(append_s(g, "Subject: four\r\n\r\n4\r\n"), 0);  /* another */
	ASSERT_EQ(mm_msg_set_flags(g, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_folder_expunge(g), 1);
	ASSERT_EQ(mm_folder_compact(g), 0); /* message 2 moves to offset 0-ish */
	ASSERT((n = mm_reader_read(r, chunk, sizeof chunk)) > 0); /* before f notices */
	buf_append(&got, chunk, (size_t)n);
	ASSERT_EQ(mm_folder_refresh(f), 0); /* f reloads: the offsets change */
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 2);
	while ((n = mm_reader_read(r, chunk, sizeof chunk)) > 0) {
		buf_append(&got, chunk, (size_t)n);
	}
	ASSERT_EQ(n, 0);
	ASSERT_EQ(got.len, m2.len);
	ASSERT(memcmp(got.data, m2.data, m2.len) == 0);
	mm_reader_close(r);
	/* the message is expunged and compacted away under a reader: -1 */
	r = mm_reader_open(f, 0);
	ASSERT(r);
	ASSERT(mm_reader_read(r, chunk, sizeof chunk) > 0);
	uint32_t uid2 = 2;
	ASSERT_EQ(mm_folder_expunge_uids(g, mm_folder_uidvalidity(g), &uid2, 1), 1);
	ASSERT_EQ(mm_folder_compact(g), 0);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	while ((n = mm_reader_read(r, chunk, sizeof chunk)) > 0) {
	}
	ASSERT_EQ(n, -1);
	mm_reader_close(r);
	buf_free(&m1), buf_free(&m2), buf_free(&got);
	mm_folder_close(g);
	teardown(f);
}

/* POP3's UPDATE: the UIDs chosen from an old view are the ones expunged,
 * though another opener expunged and appended meanwhile. */
static void expunge_by_uid(void)
{
	struct mm_folder *f = with_three(), *g = NULL;
	ASSERT(f);
	ASSERT_EQ(mm_msg_set_flags(f, 2, MM_SEEN), 0);
	ASSERT_EQ(mm_folder_open("example.org", "john", "INBOX", 0, &g), 0);
	ASSERT_EQ(mm_msg_set_flags(g, 0, MM_DELETED), 0);
	ASSERT_EQ(mm_folder_expunge(g), 1); /* uid 1 gone */
	ASSERT_EQ(append_s(g, "Subject: four\r\n\r\n4\r\n"), 0);
	uint32_t uids[] = {1, 3};
	ASSERT_EQ(mm_folder_expunge_uids(f, mm_folder_uidvalidity(f) + 1, uids, 2), -1);
	ASSERT_EQ(mm_folder_count(f), 3); /* refreshed (2, 3, 4), but nothing expunged */
	ASSERT_EQ(mm_folder_expunge_uids(f, mm_folder_uidvalidity(f), uids, 2), 1); /* 1 was gone */
	ASSERT_EQ(mm_folder_count(f), 2);
	ASSERT_EQ(mm_folder_msg(f, 0)->uid, 2);
	ASSERT_EQ(mm_folder_msg(f, 1)->uid, 4);
	ASSERT_EQ(mm_folder_refresh(g), 0);
	ASSERT_EQ(mm_folder_count(g), 2);
	uint64_t dead, total;
	mm_folder_usage(f, &dead, &total);
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	ASSERT_EQ(total, file_len(path));
	ASSERT(dead > strlen(msg1) && dead < total);
	ASSERT_EQ(mm_folder_compact(f), 0);
	mm_folder_usage(f, &dead, &total);
	ASSERT_EQ(dead, 0);
	ASSERT_EQ(total, file_len(path));
	ASSERT(reads_as(f, 0, msg2, strlen(msg2)));
	mm_folder_close(g);
	teardown(f);
}

struct worker {
	int n, failed;
};

static void append_many(void *arg)
{
	struct worker *w = arg;
	struct mm_folder *f = NULL;
	if (mm_folder_open("example.org", "john", "INBOX", 1, &f) != 0) {
		w->failed = w->n;
		return;
	}
	for (int i = 0; i < w->n; i++) {
		char m[64];
		snprintf(m, sizeof m, "Subject: %d\r\n\r\nFrom %p\r\n", i, (void *)w);
		w->failed += append_s(f, m) != 0;
	}
	mm_folder_close(f);
}

static void concurrent_appends(void)
{
	struct mm_folder *f = setup();
	ASSERT(f);
	struct worker w1 = {50, 0}, w2 = {50, 0};
	os_thread *t1 = os_thread_start(append_many, &w1);
	os_thread *t2 = os_thread_start(append_many, &w2);
	for (int i = 0; i < 30; i++) {
		ASSERT_EQ(append_s(f, "shared\r\n"), 0); /* one handle, from this thread too */
	}
	os_thread_join(t1);
	os_thread_join(t2);
	ASSERT_EQ(w1.failed + w2.failed, 0);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	ASSERT_EQ(mm_folder_count(f), 130);
	for (uint32_t i = 0; i < 130; i++) {
		ASSERT_EQ(mm_folder_msg(f, i)->uid, i + 1);
		struct buf b;
		buf_init(&b);
		ASSERT_EQ(mm_msg_read(f, i, &b), 0);
		buf_free(&b);
	}
	char path[800];
	fpath(path, sizeof path, "INBOX.mbox");
	ASSERT_EQ(count_from_lines(path), 130);
	teardown(f);
}

void tests_mbox(void)
{
	RUN(three_round_trip, "three messages read back byte for byte with UIDs 1, 2, 3");
	RUN(mbox_format, "the mbox has From_ lines, LF line ends and mboxrd quoting");
	RUN(large_spooled, "a message spilled to a spool file reads back byte for byte");
	RUN(odd_endings, "an empty message, a missing final CRLF and a bare LF are handled");
	RUN(reopen_keeps_uids, "reopening keeps UIDVALIDITY, UIDs and UIDNEXT");
	RUN(flags_persist, "flags are set in place and survive a reopen");
	RUN(expunge_and_compact, "expunge hides deleted messages; compaction keeps UIDs, shrinks");
	RUN(index_rebuilt, "a missing or garbled index is rebuilt with a new UIDVALIDITY");
	RUN(torn_tail_cut, "a torn write at the mbox end is cut off, messages stay intact");
	RUN(foreign_tail_indexed, "a message another program appended is indexed");
	RUN(index_past_end_dropped, "an index entry past the mbox end is dropped");
	RUN(index_v1_upgraded, "an index of format 1 is read, flags and all, and written as format 2");
	RUN(has_qid, "has_qid finds a queue id among the last messages");
	RUN(two_openers, "a second opener sees appends, flags and a compaction");
	RUN(compaction_seen_at_same_size,
	        "an opener notices a compaction even when the mbox regrew to the same size");
	RUN(crash_between_renames, "a crash between the compaction renames is finished on open");
	RUN(crash_before_renames, "a crash before the compaction renames keeps the old folder");
	RUN(mismatched_index_rebuilt, "an mbox rewritten by another program is reindexed");
	RUN(bad_names_refused, "invalid names never open a folder");
	RUN(folder_list, "folders list INBOX first; names map to safe distinct files");
	RUN(concurrent_appends, "appends from three threads get distinct UIDs");
	RUN(quoting_across_chunks, "a reader unquotes runs of '>' across its chunks");
	RUN(reader_survives_changes,
	        "a reader survives appends and a compaction, and fails when its message goes");
	RUN(expunge_by_uid, "expunge by UID removes exactly those, whatever happened since");
}
