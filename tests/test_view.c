/* test_view.c - folders shared in memory and clients' views of them
 * (mbox.c, mbox_read.c), and IMAP reading messages from the store as it
 * streams (imap_msg.c): the same structures, sections and search answers
 * as from the message in memory. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];

static int setup(void)
{
	return mm_open(unit_tmpdir(), err, sizeof err) == 0 &&
	                       mm_domain_add("example.org", err, sizeof err) == 0
	               ? 0
	               : -1;
}

static int add(struct mm_folder *f, const char *p, size_t n, uint32_t *uid)
{
	struct spool sp;
	uint32_t u;
	spool_init(&sp, mm_storage());
	spool_write(&sp, p, n);
	int rc = mm_folder_append(f, &sp, "a@example.org", 1795000000, 0, 0, uid ? uid : &u);
	spool_free(&sp);
	return rc;
}

static int add_s(struct mm_folder *f, const char *s)
{
	return add(f, s, strlen(s), NULL);
}

/* Open descriptors of this process, -1 where that cannot be known. */
static int count_fd(const char *name, int is_dir, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int open_fds(void)
{
	int n = 0;
	return os_dir_walk("/proc/self/fd", count_fd, &n) == 0 ? n : -1;
}

static void two_opens_share_one_index_and_one_descriptor(void)
{
	struct mm_folder *f, *g;
	struct mm_view *v;
	ASSERT_EQ(setup(), 0);
	int before = open_fds();
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	int one = open_fds();
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_EQ(mm_view_open(g, &v), 0);
	ASSERT_EQ(add_s(f, "Subject: a\r\n\r\na\r\n"), 0);
	ASSERT_EQ(mm_folder_count(g), 1); /* no refresh needed: the same index */
	ASSERT_EQ(mm_folder_key(f), mm_folder_key(g));
	if (before >= 0) {
		ASSERT_EQ(one, before + 1); /* the mbox; index and lock only during a call */
		ASSERT_EQ(open_fds(), one); /* a second handle and a view cost none */
	}
	mm_view_close(v);
	mm_folder_close(g);
	mm_folder_close(f);
	if (before >= 0) {
		ASSERT_EQ(open_fds(), before);
	}
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Nope", 0, &g), MM_NOFOLDER);
	mm_close();
}

static void sync_expect(struct mm_view *v, int expunge, uint32_t nexp, uint32_t first,
        uint32_t exists, uint32_t nflags, int *ok)
{
	struct mm_changes c;
	*ok = mm_view_sync(v, expunge, 0, &c) == 0 && c.nexpunged == nexp &&
	      (nexp == 0 || c.expunged[0] == first) && c.exists == exists && c.nflags == nflags;
	mm_changes_free(&c);
}

static void a_view_keeps_numbers_until_it_is_told(void)
{
	struct mm_folder *f, *g;
	struct mm_view *v;
	struct mm_msg m;
	uint32_t uid[3], late;
	int ok;
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(add(f, "x\r\n", 3, &uid[i]), 0);
	}
	ASSERT_EQ(mm_view_open(f, &v), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_EQ(mm_folder_expunge_uids(g, mm_folder_uidvalidity(g), &uid[1], 1), 1);
	ASSERT_EQ(add(g, "y\r\n", 3, &late), 0);
	/* message 2 keeps its number, the new one waits */
	ASSERT_EQ(mm_view_count(v), 3);
	ASSERT_EQ(mm_view_msg(v, 2, &m), 1);
	ASSERT_EQ(m.uid, uid[1]);
	ASSERT_EQ(mm_view_msg(v, 3, &m), 0);
	ASSERT_EQ(m.uid, uid[2]);
	ASSERT_EQ(mm_view_seq(v, uid[2]), 3);
	ASSERT_EQ(mm_view_seq(v, late), 0);
	sync_expect(v, 0, 0, 0, 0, 0, &ok); /* during FETCH: nothing may move */
	ASSERT(ok);
	ASSERT_EQ(mm_view_count(v), 3);
	/* a compaction drops the message from the index: the view keeps it */
	ASSERT_EQ(mm_folder_compact(g), 0);
	ASSERT_EQ(mm_view_msg(v, 2, &m), 1);
	sync_expect(v, 1, 1, 2, 3, 0, &ok); /* EXPUNGE 2, then 3 EXISTS */
	ASSERT(ok);
	ASSERT_EQ(mm_view_count(v), 3);
	ASSERT_EQ(mm_view_msg(v, 3, &m), 0);
	ASSERT_EQ(m.uid, late);
	ASSERT_EQ(mm_view_msg(v, 4, &m), -1);
	mm_view_close(v);
	mm_folder_close(g);
	mm_folder_close(f);
	mm_close();
}

static void expunges_are_told_in_order_with_moving_numbers(void)
{
	struct mm_folder *f;
	struct mm_view *v;
	struct mm_changes c;
	uint32_t uid[6];
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	for (int i = 0; i < 6; i++) {
		ASSERT_EQ(add(f, "x\r\n", 3, &uid[i]), 0);
	}
	ASSERT_EQ(mm_view_open(f, &v), 0);
	uint32_t gone[] = {uid[1], uid[2], uid[4]};
	ASSERT_EQ(mm_folder_expunge_uids(f, mm_folder_uidvalidity(f), gone, 3), 3);
	ASSERT_EQ(mm_view_sync(v, 1, 0, &c), 0);
	/* 2, then 2 again (the old 3), then 3 (the old 5) */
	ASSERT_EQ(c.nexpunged, 3);
	ASSERT_EQ(c.expunged[0], 2);
	ASSERT_EQ(c.expunged[1], 2);
	ASSERT_EQ(c.expunged[2], 3);
	mm_changes_free(&c);
	ASSERT_EQ(mm_view_count(v), 3);
	mm_view_close(v);
	mm_folder_close(f);
	mm_close();
}

static void own_stores_are_not_told_back_others_are(void)
{
	struct mm_folder *f, *g;
	struct mm_view *v;
	struct mm_changes c;
	uint32_t uid[2];
	int ok;
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	ASSERT_EQ(add(f, "x\r\n", 3, &uid[0]), 0);
	ASSERT_EQ(add(f, "y\r\n", 3, &uid[1]), 0);
	ASSERT_EQ(mm_view_open(f, &v), 0);
	ASSERT_EQ(mm_view_store(v, uid, 1, MM_STORE_ADD, MM_SEEN, 0), 1);
	sync_expect(v, 1, 0, 0, 0, 0, &ok);
	ASSERT(ok);
	/* a new keyword moves the folder's modseq but is no one else's change */
	ASSERT_EQ(mm_folder_keyword_mask(f), 0);
	ASSERT_EQ(mm_folder_keyword(f, "$New", 1), 0);
	ASSERT_EQ(mm_folder_keyword_mask(f), 1);
	ASSERT_EQ(mm_view_store(v, uid, 1, MM_STORE_ADD, 0, 1), 1);
	sync_expect(v, 1, 0, 0, 0, 0, &ok);
	ASSERT(ok);
	/* and new mail is told as EXISTS, not as someone else's change */
	uint32_t third;
	ASSERT_EQ(add(f, "z\r\n", 3, &third), 0);
	ASSERT_EQ(mm_view_store(v, uid, 1, MM_STORE_DEL, MM_SEEN, 0), 1);
	sync_expect(v, 1, 0, 0, 3, 0, &ok);
	ASSERT(ok);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_EQ(mm_folder_store(g, &uid[1], 1, MM_STORE_ADD, MM_FLAGGED, 0), 1);
	ASSERT_EQ(mm_view_sync(v, 1, 0, &c), 0);
	ASSERT_EQ(c.nflags, 1);
	ASSERT_EQ(c.flags[0].seq, 2);
	ASSERT_EQ(c.flags[0].flags, MM_FLAGGED);
	mm_changes_free(&c);
	sync_expect(v, 1, 0, 0, 0, 0, &ok);
	ASSERT(ok);
	/* someone else's change before the view's own store is still told */
	ASSERT_EQ(mm_folder_store(g, &uid[1], 1, MM_STORE_DEL, MM_FLAGGED, 0), 1);
	ASSERT_EQ(mm_view_store(v, uid, 1, MM_STORE_ADD, MM_FLAGGED, 0), 1);
	ASSERT_EQ(mm_view_sync(v, 1, 0, &c), 0);
	ASSERT(c.nflags >= 1 && c.flags[c.nflags - 1].seq == 2 && c.flags[c.nflags - 1].flags == 0);
	mm_changes_free(&c);
	mm_folder_close(g);
	mm_view_close(v);
	mm_folder_close(f);
	mm_close();
}

/* Another process (here: a second box on the same files, as one would
 * have) expunges and compacts between two looks: the view still shows
 * the message until it is told. */
static void a_compaction_by_another_process_is_told_as_expunges(void)
{
	struct mm_folder *f, *other;
	struct mm_view *v;
	struct mm_msg m;
	char dir[1024], base[1400];
	uint32_t uid[3];
	int ok;
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(add(f, "Subject: z\r\n\r\nbody\r\n", 20, &uid[i]), 0);
	}
	ASSERT_EQ(mm_view_open(f, &v), 0);
	ASSERT_EQ(mm__folder_base("example.org", "jo", "INBOX", dir, sizeof dir, base, sizeof base),
	        0);
	mm__forget(base); /* the next open is a box of its own */
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &other), 0);
	ASSERT_EQ(mm_folder_expunge_uids(other, mm_folder_uidvalidity(other), uid, 1), 1);
	ASSERT_EQ(mm_folder_compact(other), 0);
	ASSERT_EQ(add_s(other, "Subject: new\r\n\r\nnew\r\n"), 0);
	mm_folder_close(other);
	ASSERT_EQ(mm_folder_refresh(f), 0); /* reloads: message 1 is not in the index */
	ASSERT_EQ(mm_view_msg(v, 1, &m), 1);
	ASSERT_EQ(m.uid, uid[0]);
	ASSERT_EQ(mm_view_msg(v, 2, &m), 0);
	ASSERT_EQ(m.uid, uid[1]);
	sync_expect(v, 1, 1, 1, 3, 0, &ok);
	ASSERT(ok);
	/* what it reads is still right after the compaction moved it */
	struct mm_reader *r = mm_reader_open_uid(f, uid[2]);
	char buf[64];
	ASSERT(r);
	ASSERT_EQ(mm_reader_read(r, buf, sizeof buf), 20);
	ASSERT(memcmp(buf, "Subject: z\r\n\r\nbody\r\n", 20) == 0);
	mm_reader_close(r);
	mm_view_close(v);
	mm_folder_close(f);
	mm_close();
}

/* ---- reading for IMAP: from the store as from memory ---- */

static uint64_t rs = 88172645463325252ULL;
static unsigned below(unsigned n)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return n ? (unsigned)(rs % n) : 0;
}

static const char *const words[] = {"alpha", "Budget", "From", ">From", "=", "=3D", "\t",
        "caf\xc3\xa9", "needle", "--", "=E2=82=AC", "Ym9keQ==", "x"};

static void gen_text(struct buf *b, unsigned lines, int long_lines)
{
	for (unsigned i = 0; i < lines; i++) {
		unsigned w = below(long_lines ? 3000 : 9);
		for (unsigned j = 0; j < w; j++) {
			buf_printf(b, "%s ", words[below(sizeof words / sizeof words[0])]);
		}
		buf_puts(b, "\r\n");
	}
}

/* A message of nested parts, some long (past the reader's chunks and
 * the tree's 256 KB marks), some with From_ lines to unquote. */
static void gen_message(struct buf *b, int big)
{
	buf_puts(b, "From: A <a@x.test>\r\nSubject: =?utf-8?q?caf=C3=A9?= test\r\n"
	            "Date: Tue, 03 Feb 2026 10:00:00 +0100\r\nX-Folded: a\r\n b\r\n"
	            "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\npre\r\n--o\r\n"
	            "Content-Type: text/plain; charset=utf-8\r\n"
	            "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	gen_text(b, big ? 4000 : 1 + below(20), 0);
	buf_puts(b, "--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
	            "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\n");
	gen_text(b, 1 + below(5), big);
	buf_puts(b, "--i\r\nContent-Type: text/html\r\n\r\n<p>needle</p>\r\n--i--\r\n--o\r\n"
	            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
	            "base64\r\n\r\n");
	gen_text(b, big ? 20000 : below(10), 0);
	buf_puts(b, "--o--\r\nepilogue\r\n");
}

/* BODY[spec]<off.len> through src, into out; -1 NIL, -2 error. */
static int section(
        struct imap_src *s, const char *spec, uint64_t off, uint64_t len, struct buf *out)
{
	struct imap_section *x;
	uint64_t size;
	char chunk[7000];
	int rc = imap_section_open(s, spec, &x, &size);
	buf_reset(out);
	if (rc != 0) {
		return rc;
	}
	off = off < size ? off : size;
	if (off && imap_section_skip(x, off) != 0) {
		imap_section_free(x);
		return -2;
	}
	uint64_t left = size - off < len ? size - off : len;
	while (left) {
		long k = imap_section_read(
		        x, chunk, left < sizeof chunk ? (size_t)left : sizeof chunk);
		if (k <= 0) {
			imap_section_free(x);
			return -2;
		}
		buf_append(out, chunk, (size_t)k);
		left -= (uint64_t)k;
	}
	buf_printf(out, "|%llu", (unsigned long long)size);
	imap_section_free(x);
	return 0;
}

/* BINARY[part] through src (decoded), then its size and NUL flag; as
 * imap_section_open_binary says otherwise. */
static int binary(struct imap_src *s, const char *part, struct buf *out)
{
	struct imap_section *x;
	uint64_t size;
	int nul;
	char chunk[5000];
	long k;
	int rc = imap_section_open_binary(s, part, &x, &size, &nul);
	buf_reset(out);
	if (rc != 0) {
		return rc;
	}
	while ((k = imap_section_read(x, chunk, sizeof chunk)) > 0) {
		buf_append(out, chunk, (size_t)k);
	}
	buf_printf(out, "|%llu|%d|%ld", (unsigned long long)size, nul, k);
	imap_section_free(x);
	return 0;
}

static int same_answers(struct imap_src *a, struct imap_src *b)
{
	static const char *const specs[] = {"", "HEADER", "TEXT",
	        "HEADER.FIELDS (SUBJECT X-FOLDED)", "HEADER.FIELDS.NOT (SUBJECT)", "1", "1.MIME",
	        "2", "2.HEADER", "2.TEXT", "2.1", "2.2", "2.HEADER.FIELDS (SUBJECT)", "3", "3.MIME",
	        "4", "1.1"};
	static const uint64_t offs[][2] = {
	        {0, (uint64_t)-1}, {0, 10}, {7, 100}, {20000, 70000}, {300000, 1000}, {1, 1}};
	static const char *const needles[] = {
	        "needle", "caf\xc3\xa9", "\xe2\x82\xac", "body", "zz"};
	struct buf x, y;
	int same = 1;
	buf_init(&x), buf_init(&y);
	/* the root's header alone (unless the whole tree is cached), then all */
	for (int full = 0; full < 2 && same; full++) {
		const struct mime_msg *ma = imap_src_mime(a, full);
		buf_reset(&x), buf_reset(&y);
		mime_envelope(ma, ma->root, &x);
		if (full) {
			mime_bodystructure(ma, ma->root, 1, &x);
		}
		const struct mime_msg *mb = imap_src_mime(b, full);
		mime_envelope(mb, mb->root, &y);
		if (full) {
			mime_bodystructure(mb, mb->root, 1, &y);
		}
		same = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	}
	for (size_t i = 0; i < sizeof specs / sizeof specs[0] && same; i++) {
		for (size_t k = 0; k < sizeof offs / sizeof offs[0] && same; k++) {
			int ra = section(a, specs[i], offs[k][0], offs[k][1], &x);
			int rb = section(b, specs[i], offs[k][0], offs[k][1], &y);
			same = ra == rb && x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
		}
	}
	static const char *const parts[] = {"", "1", "2", "2.1", "2.2", "3", "4"};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0] && same; i++) {
		int ra = binary(a, parts[i], &x), rb = binary(b, parts[i], &y);
		same = ra == rb && x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
	}
	for (size_t i = 0; i < sizeof needles / sizeof needles[0] && same; i++) {
		same = imap_src_body_has(a, needles[i]) == imap_src_body_has(b, needles[i]) &&
		       imap_src_header_has(a, NULL, needles[i]) ==
		               imap_src_header_has(b, NULL, needles[i]) &&
		       imap_src_header_has(a, "x-folded", "a b") ==
		               imap_src_header_has(b, "x-folded", "a b");
	}
	buf_free(&x), buf_free(&y);
	return same;
}

static void messages_read_from_the_store_answer_as_from_memory(void)
{
	struct mm_folder *f;
	struct buf msg, wire;
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	buf_init(&msg), buf_init(&wire);
	for (int i = 0; i < 12; i++) {
		buf_reset(&msg);
		gen_message(&msg, i % 4 == 0);
		ASSERT_EQ(add(f, msg.data, msg.len, NULL), 0);
	}
	for (uint32_t i = 0; i < 12; i++) {
		struct mm_msg m = *mm_folder_msg(f, i);
		ASSERT_EQ(mm_msg_read(f, i, &wire), 0);
		for (int cached = 0; cached < 2; cached++) {
			if (!cached) {
				imap_cache_clear();
			}
			struct imap_src *a = imap_src_folder(f, &m, mm_folder_uidvalidity(f));
			struct imap_src *b = imap_src_buffer(wire.data, wire.len);
			int same = same_answers(a, b);
			imap_src_free(a);
			imap_src_free(b);
			ASSERT(same);
		}
	}
	buf_free(&msg), buf_free(&wire);
	imap_cache_clear();
	mm_folder_close(f);
	mm_close();
}

static void count_wake(void *arg)
{
	os_atomic_add_long(arg, 1);
}

static long wakes(volatile long *n)
{
	return os_atomic_load_long(n);
}

static void a_watched_view_is_woken_by_changes_to_its_folder_only(void)
{
	struct mm_folder *f, *g, *o;
	struct mm_view *v, *vo;
	struct mm_changes c;
	char dir[1024], base[1400];
	volatile long n = 0, no = 0;
	uint32_t uid;
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Other", 1, &o), 0);
	ASSERT_EQ(mm_view_open(f, &v), 0);
	ASSERT_EQ(mm_view_open(o, &vo), 0);
	mm_view_watch(v, count_wake, (void *)&n);
	mm_view_watch(vo, count_wake, (void *)&no);
	ASSERT_EQ(add(g, "x\r\n", 3, &uid), 0); /* a delivery through another handle */
	ASSERT_EQ(wakes(&n), 1);
	ASSERT_EQ(mm_folder_store(g, &uid, 1, MM_STORE_ADD, MM_DELETED, 0), 1);
	ASSERT_EQ(wakes(&n), 2);
	ASSERT_EQ(mm_folder_store(g, &uid, 1, MM_STORE_ADD, MM_DELETED, 0), 0);
	ASSERT_EQ(mm_view_sync(v, 1, 0, &c), 0); /* no change, no wake */
	mm_changes_free(&c);
	ASSERT_EQ(mm_folder_refresh(g), 0);
	ASSERT_EQ(wakes(&n), 2);
	ASSERT_EQ(mm_folder_expunge(g), 1);
	ASSERT_EQ(wakes(&n), 3);
	ASSERT_EQ(wakes(&no), 0); /* another folder's watcher slept through it all */
	/* another process's change: seen by the next look at the files */
	ASSERT_EQ(mm__folder_base("example.org", "jo", "INBOX", dir, sizeof dir, base, sizeof base),
	        0);
	mm_folder_close(g);
	mm__forget(base); /* the next open is a box of its own; the watchers are told */
	ASSERT_EQ(wakes(&n), 4);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_EQ(add_s(g, "Subject: elsewhere\r\n\r\nx\r\n"), 0);
	ASSERT_EQ(wakes(&n), 4);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	ASSERT_EQ(wakes(&n), 5);
	mm_view_watch(v, NULL, NULL);
	ASSERT_EQ(add_s(f, "y\r\n"), 0);
	ASSERT_EQ(wakes(&n), 5);
	mm_view_close(vo); /* closed while watched: no wake after */
	ASSERT_EQ(add_s(o, "z\r\n"), 0);
	ASSERT_EQ(wakes(&no), 0);
	mm_view_close(v);
	mm_folder_close(g);
	mm_folder_close(o);
	mm_folder_close(f);
	mm_close();
}

static void the_look_at_the_files_wakes_for_another_process(void)
{
	struct mm_folder *f, *g;
	struct mm_view *v;
	char dir[1024], base[1400];
	volatile long n = 0;
	ASSERT_EQ(setup(), 0);
	mm__watch_interval(20);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &g), 0);
	ASSERT_EQ(mm__folder_base("example.org", "jo", "INBOX", dir, sizeof dir, base, sizeof base),
	        0);
	mm__forget(base); /* g plays another process: a box of its own */
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &f), 0);
	ASSERT_EQ(mm_view_open(f, &v), 0);
	mm_view_watch(v, count_wake, (void *)&n);
	os_sleep_ms(100);
	ASSERT_EQ(wakes(&n), 0); /* looks that find nothing wake nobody */
	ASSERT_EQ(add_s(g, "Subject: elsewhere\r\n\r\nx\r\n"), 0);
	for (int i = 0; i < 200 && wakes(&n) == 0; i++) {
		os_sleep_ms(10);
	}
	ASSERT_EQ(wakes(&n), 1);
	mm_view_close(v);
	mm_folder_close(g);
	mm_folder_close(f);
	mm_close(); /* stops the thread */
	mm__watch_interval(MM_WATCH_LOOK_MS);
}

void tests_view(void)
{
	RUN(two_opens_share_one_index_and_one_descriptor,
	        "view: two opens of a folder share one index and one descriptor");
	RUN(a_view_keeps_numbers_until_it_is_told,
	        "view: a message expunged elsewhere keeps its number until EXPUNGE is allowed");
	RUN(expunges_are_told_in_order_with_moving_numbers,
	        "view: expunges are told in order, each numbered after the ones before");
	RUN(own_stores_are_not_told_back_others_are,
	        "view: a client's own STORE is not told back, another session's is");
	RUN(a_compaction_by_another_process_is_told_as_expunges,
	        "view: a compaction by another process is told as expunges");
	RUN(a_watched_view_is_woken_by_changes_to_its_folder_only,
	        "view: a watched view is woken by every change to its folder, and only by those");
	RUN(the_look_at_the_files_wakes_for_another_process,
	        "view: the look at watched folders' files wakes a view for another process's "
	        "change");
	RUN(messages_read_from_the_store_answer_as_from_memory,
	        "view: structures, sections, partials and searches read from the store equal the "
	        "in-memory ones");
}
