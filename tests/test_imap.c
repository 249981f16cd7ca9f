/* test_imap.c - the IMAP command tokenizer, sequence sets, dates, SEARCH
 * matching (known-answer tables), and the store calls IMAP added to
 * mbox.c (keywords, flag updates, folder management, subscriptions). */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

/* Tokens of a one-line command as "type:text" joined by '|'; "" and rc. */
static int tokens(const char *line, char *out, size_t len)
{
	struct imap_cmd c;
	uint64_t lit = 0;
	int nonsync = 0;
	const char *error;
	imap_cmd_init(&c);
	int rc = imap_cmd_line(&c, line, strlen(line), &lit, &nonsync, &error);
	size_t o = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < c.ntok && o < len; i++) {
		static const char types[] = "ASLRP";
		o += (size_t)snprintf(out + o, len - o, "%s%c:%s", i ? "|" : "", types[c.tok[i].type],
		        imap_tok_str(&c, i));
	}
	if (rc == IMAP_PARSE_LITERAL && o < len) {
		snprintf(out + o, len - o, "|{%llu%s}", (unsigned long long)lit, nonsync ? "+" : "");
	}
	imap_cmd_free(&c);
	return rc;
}

static void commands_tokenize_as_rfc3501_says(void)
{
	static const struct {
		const char *in, *out;
		int rc;
	} t[] = {
	        {"a1 NOOP", "A:a1|A:NOOP", IMAP_PARSE_DONE},
	        {"a LOGIN \"jo \\\"x\\\\\" pw", "A:a|A:LOGIN|S:jo \"x\\|A:pw", IMAP_PARSE_DONE},
	        {"a LOGIN \"\" \"\"", "A:a|A:LOGIN|S:|S:", IMAP_PARSE_DONE},
	        {"t FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)",
	                "A:t|A:FETCH|A:1:*|L:(|A:FLAGS|A:BODY.PEEK[HEADER.FIELDS (From To)]<0.100>|R:)",
	                IMAP_PARSE_DONE},
	        {"t STORE 1 +FLAGS (\\Seen $Junk)", "A:t|A:STORE|A:1|A:+FLAGS|L:(|A:\\Seen|A:$Junk|R:)",
	                IMAP_PARSE_DONE},
	        {"t LIST \"\" %", "A:t|A:LIST|S:|A:%", IMAP_PARSE_DONE},
	        {"t SEARCH OR (FROM a) NOT ((SEEN))",
	                "A:t|A:SEARCH|A:OR|L:(|A:FROM|A:a|R:)|A:NOT|L:(|L:(|A:SEEN|R:)|R:)",
	                IMAP_PARSE_DONE},
	        {"t APPEND box (\\Seen) {310}", "A:t|A:APPEND|A:box|L:(|A:\\Seen|R:)|{310}",
	                IMAP_PARSE_LITERAL},
	        {"t APPEND box {12+}", "A:t|A:APPEND|A:box|{12+}", IMAP_PARSE_LITERAL},
	        {"t  NOOP  ", "A:t|A:NOOP", IMAP_PARSE_DONE},
	        {"t LOGIN \"unterminated", NULL, IMAP_PARSE_ERROR},
	        {"t LOGIN \"bad \\n escape\"", NULL, IMAP_PARSE_ERROR},
	        {"t FETCH 1 (FLAGS", NULL, IMAP_PARSE_ERROR},
	        {"t FETCH 1 FLAGS)", NULL, IMAP_PARSE_ERROR},
	        {"t FETCH 1 BODY[TEXT", NULL, IMAP_PARSE_ERROR},
	        /* "[" and "}" are ATOM-CHARs, "]" an ASTRING-CHAR: only a fetch item's
	           section runs across spaces */
	        {"t SELECT a[", "A:t|A:SELECT|A:a[", IMAP_PARSE_DONE},
	        {"t SELECT a} ]b", "A:t|A:SELECT|A:a}|A:]b", IMAP_PARSE_DONE},
	        {"t SELECT a[ b]", "A:t|A:SELECT|A:a[|A:b]", IMAP_PARSE_DONE},
	        {"t FETCH 1 (binary.peek[1] BODY[1.HEADER.FIELDS.NOT (X)])",
	                "A:t|A:FETCH|A:1|L:(|A:binary.peek[1]|A:BODY[1.HEADER.FIELDS.NOT (X)]|R:)",
	                IMAP_PARSE_DONE},
	        {"t SELECT a{b", NULL, IMAP_PARSE_ERROR},
	        {"t APPEND box {12} x", NULL, IMAP_PARSE_ERROR},
	        {"t APPEND box {}", NULL, IMAP_PARSE_ERROR},
	        {"t APPEND box {99999999999}", NULL, IMAP_PARSE_ERROR},
	        {"t APPEND box {1x}", NULL, IMAP_PARSE_ERROR},
	        {"t a\\b", NULL, IMAP_PARSE_ERROR},
	        {"t \x01", NULL, IMAP_PARSE_ERROR},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char out[512];
		int rc = tokens(t[i].in, out, sizeof out);
		if (rc != t[i].rc || (t[i].out && strcmp(out, t[i].out) != 0)) {
			char m[1200];
			snprintf(m, sizeof m, "\"%s\" gave %d \"%s\"", t[i].in, rc, out);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
}

static void a_nul_or_deep_nesting_is_refused(void)
{
	struct imap_cmd c;
	uint64_t lit;
	int ns;
	const char *error;
	char deep[200];
	imap_cmd_init(&c);
	ASSERT_EQ(imap_cmd_line(&c, "a\0b NOOP", 8, &lit, &ns, &error), IMAP_PARSE_ERROR);
	imap_cmd_reset(&c);
	memset(deep, '(', 100);
	memset(deep + 100, ')', 100);
	ASSERT_EQ(imap_cmd_line(&c, deep, sizeof deep, &lit, &ns, &error), IMAP_PARSE_ERROR);
	imap_cmd_reset(&c);
	ASSERT_EQ(imap_cmd_line(&c, deep + 70, 60, &lit, &ns, &error), IMAP_PARSE_DONE);
	imap_cmd_free(&c);
}

static void too_many_tokens_are_refused(void)
{
	struct imap_cmd c;
	uint64_t lit;
	int ns;
	const char *error;
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 10000; i++) {
		buf_puts(&b, "x ");
	}
	imap_cmd_init(&c);
	ASSERT_EQ(imap_cmd_line(&c, b.data, b.len, &lit, &ns, &error), IMAP_PARSE_ERROR);
	imap_cmd_free(&c);
	buf_free(&b);
}

static void a_literal_continues_the_command(void)
{
	struct imap_cmd c;
	uint64_t lit;
	int ns;
	const char *error;
	imap_cmd_init(&c);
	ASSERT_EQ(imap_cmd_line(&c, "a LOGIN {5}", 11, &lit, &ns, &error), IMAP_PARSE_LITERAL);
	ASSERT_EQ(lit, 5);
	ASSERT_EQ(ns, 0);
	ASSERT_EQ(imap_cmd_literal_begin(&c, lit, 0), 0);
	imap_cmd_literal_data(&c, "al", 2);
	imap_cmd_literal_data(&c, "i\"e", 3);
	imap_cmd_literal_end(&c);
	ASSERT_EQ(imap_cmd_line(&c, " pw", 3, &lit, &ns, &error), IMAP_PARSE_DONE);
	ASSERT_EQ(c.ntok, 4);
	ASSERT_STR(imap_tok_str(&c, 2), "ali\"e");
	ASSERT_EQ(c.tok[2].type, IMAP_STRING);
	ASSERT_STR(imap_tok_str(&c, 3), "pw");
	ASSERT_STR(imap_tok_str(&c, 9), "");
	/* an inline literal over the limit is refused; a spooled one keeps no bytes */
	imap_cmd_reset(&c);
	ASSERT_EQ(imap_cmd_line(&c, "a X {9}", 7, &lit, &ns, &error), IMAP_PARSE_LITERAL);
	ASSERT(imap_cmd_literal_begin(&c, 10 * 1024 * 1024, 0) != 0);
	ASSERT_EQ(imap_cmd_literal_begin(&c, 10 * 1024 * 1024, 1), 0);
	imap_cmd_literal_data(&c, "abc", 3);
	imap_cmd_literal_end(&c);
	ASSERT_EQ(c.tok[2].type, IMAP_SPOOL);
	ASSERT_EQ(c.tok[2].len, 3);
	ASSERT_EQ(c.nul, 0);
	/* a NUL makes the command bad, unless the literal is a literal8 */
	imap_cmd_reset(&c);
	ASSERT_EQ(imap_cmd_line(&c, "a X {3}", 7, &lit, &ns, &error), IMAP_PARSE_LITERAL);
	ASSERT_EQ(imap_cmd_literal_begin(&c, lit, 0), 0);
	imap_cmd_literal_data(&c, "a\0b", 3);
	imap_cmd_literal_end(&c);
	ASSERT_EQ(c.nul, 3); /* 1 + its token */
	imap_cmd_reset(&c);
	ASSERT_EQ(imap_cmd_line(&c, "a X ~{3}", 8, &lit, &ns, &error), IMAP_PARSE_LITERAL);
	ASSERT_EQ(imap_cmd_literal_begin(&c, lit, 0), 0);
	imap_cmd_literal_data(&c, "a\0b", 3);
	imap_cmd_literal_end(&c);
	ASSERT_EQ(c.nul, 0);
	imap_cmd_free(&c);
}

static void sequence_sets_parse_and_match(void)
{
	struct imap_set s;
	ASSERT_EQ(imap_set_parse("1,3:5,7:*", &s), 0);
	ASSERT_EQ(s.n, 3);
	ASSERT(imap_set_has(&s, 1, 10));
	ASSERT(!imap_set_has(&s, 2, 10));
	ASSERT(imap_set_has(&s, 4, 10));
	ASSERT(!imap_set_has(&s, 6, 10));
	ASSERT(imap_set_has(&s, 10, 10));
	ASSERT(imap_set_has(&s, 7, 10));
	ASSERT(!imap_set_has(&s, 7, 5) || imap_set_has(&s, 5, 5)); /* 7:* with * = 5 is 5:7 */
	imap_set_free(&s);
	ASSERT_EQ(imap_set_parse("9:2", &s), 0);
	ASSERT(imap_set_has(&s, 2, 100) && imap_set_has(&s, 9, 100) && !imap_set_has(&s, 10, 100));
	imap_set_free(&s);
	ASSERT_EQ(imap_set_parse("*", &s), 0);
	ASSERT(imap_set_has(&s, 42, 42) && !imap_set_has(&s, 41, 42));
	imap_set_free(&s);
	ASSERT_EQ(imap_set_parse("4294967295", &s), 0);
	ASSERT(!imap_set_has(&s, 3, 3)); /* the largest number, not "*" */
	imap_set_free(&s);
	ASSERT_EQ(imap_set_parse("4:4294967295", &s), 0);
	ASSERT(!imap_set_has(&s, 3, 3) && imap_set_has(&s, 4, 3));
	imap_set_free(&s);
	ASSERT_EQ(imap_set_parse("4:*", &s), 0);
	ASSERT(imap_set_has(&s, 3, 3) && imap_set_has(&s, 4, 3) && !imap_set_has(&s, 2, 3));
	imap_set_free(&s);
	static const char *bad[] = {"", "0", "1:", ":2", "a", "1,,2", "1,", "4294967296", "1:0",
	        "1 2", "-1", "$"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (imap_set_parse(bad[i], &s) != -1) {
			char m[100];
			snprintf(m, sizeof m, "\"%s\" parsed", bad[i]);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
}

static void dates_parse(void)
{
	int64_t d;
	ASSERT_EQ(imap_date_parse("1-Jan-1970", &d), 0);
	ASSERT_EQ(d, 0);
	ASSERT_EQ(imap_date_parse("01-feb-1994", &d), 0);
	ASSERT_EQ(d, 8797);
	ASSERT_EQ(imap_date_parse("29-Feb-2024", &d), 0);
	ASSERT_EQ(d, 19782);
	ASSERT_EQ(imap_date_parse("1-Foo-1994", &d), -1);
	ASSERT_EQ(imap_date_parse("1-Feb-94", &d), -1);
	ASSERT_EQ(imap_date_parse("100-Feb-1994", &d), -1);
	ASSERT_EQ(imap_date_parse("", &d), -1);
}

static const char sample[] =
        "Date: Tue, 03 Feb 2026 10:00:00 +0100\r\n"
        "From: Alice Example <alice@example.org>\r\n"
        "To: bob@example.net\r\n"
        "Cc: carol@example.com\r\n"
        "Bcc: <dave (the boss) @ example.com>, Group: erin\r\n @example.com;\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and Meeting Notes\r\n"
        "X-Priority: 1\r\n"
        "X-Folded: one\r\n\ttwo\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
        "quoted-printable\r\n\r\nThe budget is =E2=82=AC 100, Hello World.\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "AAEC\r\n--b1--\r\n";

static int kw_lookup(void *arg, const char *name)
{
	return rl_strcasecmp(name, "$Work") == 0 ? 3 : -1;
}

/* 1 match, 0 no match, -1 parse error */
static int search(const char *keys, uint32_t flags)
{
	struct imap_cmd c;
	uint64_t lit;
	int ns;
	const char *error;
	struct imap_search *k;
	imap_cmd_init(&c);
	if (imap_cmd_line(&c, keys, strlen(keys), &lit, &ns, &error) != IMAP_PARSE_DONE) {
		imap_cmd_free(&c);
		return -1;
	}
	uint32_t pos = 0;
	int r = -1;
	if (imap_search_parse(&c, &pos, kw_lookup, NULL, &k, &error) == 0) {
		/* MM_RECENT in flags: the message is \Recent to the session; "$"
		 * (a saved result) holds UIDs 60 to 75 and 80 */
		static struct imap_range saved_r[] = {{60, 75}, {80, 80}};
		static const struct imap_set saved = {saved_r, 2};
		struct imap_search_msg m = {7, 70, flags & ~MM_RECENT, 1u << 3,
		        (uint32_t)strlen(sample), 9, 90, 1770109200 /* 2026-02-03 09:00 UTC */, 0,
		        imap_src_buffer(sample, strlen(sample)), 500, 0, (flags & MM_RECENT) != 0,
		        &saved};
		r = imap_search_match(k, &m);
		imap_src_free(m.src);
		imap_search_free(k);
	}
	imap_cmd_free(&c);
	return r;
}

static void search_keys_match_as_rfc3501_says(void)
{
	static const struct {
		const char *keys;
		uint32_t flags;
		int want;
	} t[] = {
	        {"ALL", 0, 1},
	        {"FROM alice", 0, 1},
	        {"FROM \"ALICE EXAMPLE\"", 0, 1},
	        {"FROM bob", 0, 0},
	        {"TO bob@EXAMPLE.net", 0, 1},
	        {"CC carol", 0, 1},
	        {"BCC carol", 0, 0},
	        /* FROM, TO, CC, BCC look at the addresses as parsed too */
	        {"BCC dave@example.com", 0, 1},
	        {"BCC \"group: erin@example.com;\"", 0, 1},
	        {"HEADER BCC dave@example.com", 0, 0},
	        {"HEADER X-Folded \"one\ttwo\"", 0, 1}, /* unfolded */
	        {"SUBJECT \"GRÜSSE\"", 0, 0}, /* case folding is ASCII only */
	        {"SUBJECT \"grüße\"", 0, 1},
	        {"SUBJECT \"Grüße\"", 0, 1},
	        {"SUBJECT meeting", 0, 1},
	        {"HEADER X-Priority 1", 0, 1},
	        {"HEADER X-Priority \"\"", 0, 1},
	        {"HEADER X-Missing \"\"", 0, 0},
	        {"BODY \"hello world\"", 0, 1},
	        {"BODY \"€ 100\"", 0, 1},
	        {"BODY nothere", 0, 0},
	        {"TEXT meeting", 0, 1},
	        {"TEXT budget", 0, 1},
	        {"SEEN", MM_SEEN, 1},
	        {"UNSEEN", MM_SEEN, 0},
	        {"NOT SEEN", 0, 1},
	        {"FLAGGED DELETED", MM_FLAGGED, 0},
	        {"FLAGGED UNDELETED", MM_FLAGGED, 1},
	        {"OR DELETED ANSWERED", MM_ANSWERED, 1},
	        {"OR DELETED ANSWERED", 0, 0},
	        {"(SEEN FROM alice) NOT DRAFT", MM_SEEN, 1},
	        {"KEYWORD $work", 0, 1},
	        {"UNKEYWORD $Work", 0, 0},
	        {"KEYWORD $Other", 0, 0},
	        {"UNKEYWORD $Other", 0, 1},
	        {"LARGER 10", 0, 1},
	        {"SMALLER 10", 0, 0},
	        {"UID 70", 0, 1},
	        {"UID 1:69,71:*", 0, 0},
	        {"UID 80:*", 0, 0},
	        {"7", 0, 1},
	        {"1:6,8:*", 0, 0},
	        {"*", 0, 0},
	        {"ON 3-Feb-2026", 0, 1},
	        {"BEFORE 3-Feb-2026", 0, 0},
	        {"BEFORE 4-Feb-2026", 0, 1},
	        {"SINCE 3-Feb-2026", 0, 1},
	        {"SINCE 4-Feb-2026", 0, 0},
	        {"SENTON 3-Feb-2026", 0, 1},
	        {"SENTSINCE 4-Feb-2026", 0, 0},
	        {"SENTBEFORE 4-Feb-2026", 0, 1},
	        {"RECENT", 0, 0},
	        {"OLD", 0, 1},
	        {"$", 0, 1}, /* SEARCHRES: the saved result, by UID */
	        {"UID $", 0, 1},
	        {"NOT $", 0, 0},
	        {"OR $ 1", 0, 1},
	        {"RECENT", MM_RECENT, 1},
	        {"NEW", MM_RECENT, 1},
	        {"NEW", MM_RECENT | MM_SEEN, 0},
	        {"OLD", MM_RECENT, 0},
	        {"MODSEQ 500", 0, 1},
	        {"MODSEQ 501", 0, 0},
	        {"MODSEQ \"/flags/\\\\draft\" all 400", 0, 1},
	        {"MODSEQ \"/flags/\\\\draft\" nosuch 400", 0, -1},
	        {"MODSEQ x", 0, -1},
	        {"SAVEDON 3-Feb-2026", 0, 1}, /* not known: the internal date */
	        {"SAVEDBEFORE 3-Feb-2026", 0, 0},
	        {"SAVEDATESUPPORTED", 0, 1},
	        {"NOT NOT ALL", 0, 1},
	        {"BOGUS", 0, -1},
	        {"FROM", 0, -1},
	        {"OR SEEN", 0, -1},
	        {"ON 32-Feb-2026", 0, -1},
	        {"LARGER x", 0, -1},
	        {"(SEEN", 0, -1},
	        {"", 0, -1},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int r = search(t[i].keys, t[i].flags);
		if (r != t[i].want) {
			char m[300];
			snprintf(m, sizeof m, "\"%s\" gave %d, want %d", t[i].keys, r, t[i].want);
			unit_fail(__FILE__, __LINE__, m);
			return;
		}
	}
}

static void too_many_search_keys_are_refused(void)
{
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 1500; i++) {
		buf_puts(&b, "NOT ");
	}
	buf_puts(&b, "ALL");
	ASSERT_EQ(search(b.data, 0), -1);
	buf_free(&b);
}

/* ---- the store calls ---- */

static char err[256];

static int setup_store(void)
{
	return mm_open(unit_tmpdir(), err, sizeof err) == 0 &&
	               mm_domain_add("example.org", err, sizeof err) == 0
	               ? 0
	               : -1;
}

static int append(struct mm_folder *f, const char *text, uint32_t *uid)
{
	struct spool sp;
	spool_init(&sp, mm_storage());
	spool_write(&sp, text, strlen(text));
	int rc = mm_folder_append(f, &sp, "a@example.org", 1795000000, 0, 0, uid);
	spool_free(&sp);
	return rc;
}

static void keywords_and_flags_persist_for_other_openers(void)
{
	struct mm_folder *f, *g;
	uint32_t uid[2];
	ASSERT_EQ(setup_store(), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &f), 0);
	ASSERT_EQ(append(f, "Subject: a\r\n\r\nx\r\n", &uid[0]), 0);
	ASSERT_EQ(append(f, "Subject: b\r\n\r\ny\r\n", &uid[1]), 0);
	ASSERT_EQ(mm_folder_keyword(f, "$Work", 0), -1);
	ASSERT_EQ(mm_folder_keyword(f, "$Work", 1), 0);
	ASSERT_EQ(mm_folder_keyword(f, "later", 1), 1);
	ASSERT_EQ(mm_folder_keyword(f, "$WORK", 1), 0);
	ASSERT_EQ(mm_folder_keyword(f, "bad name", 1), -1);
	ASSERT_EQ(mm_folder_store(f, uid, 2, MM_STORE_ADD, MM_SEEN, 1u << 1), 2);
	ASSERT_EQ(mm_folder_store(f, uid, 1, MM_STORE_DEL, MM_SEEN, 0), 1);
	ASSERT_EQ(mm_folder_store(f, uid, 1, MM_STORE_DEL, MM_SEEN, 0), 0); /* no change */
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &g), 0);
	ASSERT_STR(mm_folder_keyword_name(g, 0), "$Work");
	ASSERT_STR(mm_folder_keyword_name(g, 1), "later");
	ASSERT(mm_folder_keyword_name(g, 2) == NULL);
	ASSERT_EQ(mm_folder_find(g, uid[1]), 1);
	ASSERT_EQ(mm_folder_find(g, 99), -1);
	ASSERT_EQ(mm_folder_msg(g, 0)->flags, 0);
	ASSERT_EQ(mm_folder_msg(g, 0)->keywords, 2);
	ASSERT_EQ(mm_folder_msg(g, 1)->flags, MM_SEEN);
	/* a compaction keeps the keyword names */
	ASSERT_EQ(mm_folder_store(g, uid, 1, MM_STORE_SET, MM_DELETED, 0), 1);
	ASSERT_EQ(mm_folder_expunge(g), 1);
	ASSERT_EQ(mm_folder_compact(g), 0);
	ASSERT_EQ(mm_folder_refresh(f), 0);
	ASSERT_EQ(mm_folder_count(f), 1);
	ASSERT_STR(mm_folder_keyword_name(f, 1), "later");
	ASSERT_EQ(mm_folder_keyword(f, "$work", 0), 0);
	mm_folder_close(g);
	mm_folder_close(f);
	mm_close();
}

static void folders_are_created_renamed_and_deleted(void)
{
	struct mm_folder *f;
	uint32_t uid, v;
	ASSERT_EQ(setup_store(), 0);
	ASSERT_EQ(mm_folder_create("example.org", "jo", "Work.2026"), 0);
	ASSERT_EQ(mm_folder_create("example.org", "jo", "Work.2026"), 1);
	ASSERT_EQ(mm_folder_create("example.org", "jo", "../etc"), -1);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Work.2026", 0, &f), 0);
	ASSERT_EQ(append(f, "Subject: a\r\n\r\nx\r\n", &uid), 0);
	v = mm_folder_uidvalidity(f);
	ASSERT_EQ(mm_folder_create("example.org", "jo", "Other"), 0);
	ASSERT_EQ(mm_folder_rename("example.org", "jo", "Work.2026", "Other"), 1);
	ASSERT_EQ(mm_folder_rename("example.org", "jo", "Work.2026", "Old"), 0);
	ASSERT_EQ(mm_folder_refresh(f), -1); /* an opener of the old name sees it gone */
	mm_folder_close(f);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Work.2026", 0, &f), -1);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Old", 0, &f), 0);
	ASSERT_EQ(mm_folder_count(f), 1);
	ASSERT_EQ(mm_folder_uidvalidity(f), v);
	mm_folder_close(f);
	ASSERT_EQ(mm_folder_delete("example.org", "jo", "Old"), 0);
	ASSERT_EQ(mm_folder_delete("example.org", "jo", "Old"), -1);
	ASSERT_EQ(mm_folder_delete("example.org", "jo", "INBOX"), -1);
	/* INBOX renamed: its messages go, an empty INBOX stays (RFC 3501 6.3.5) */
	struct mm_folder *in, *x;
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 1, &in), 0);
	ASSERT_EQ(append(in, "Subject: in\r\n\r\nx\r\n", &uid), 0);
	uint32_t iv = mm_folder_uidvalidity(in);
	ASSERT_EQ(mm_folder_rename("example.org", "jo", "INBOX", "Old"), 0);
	ASSERT_EQ(mm_folder_rename("example.org", "jo", "Old", "INBOX"), -1);
	ASSERT_EQ(mm_folder_refresh(in), 0); /* a holder of INBOX finds the new one */
	ASSERT_EQ(mm_folder_count(in), 0);
	ASSERT(mm_folder_uidvalidity(in) > iv);
	ASSERT_EQ(append(in, "Subject: new\r\n\r\nx\r\n", &uid), 0);
	ASSERT_EQ(uid, 1);
	mm_folder_close(in);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Old", 0, &x), 0);
	ASSERT_EQ(mm_folder_count(x), 1);
	ASSERT_EQ(mm_folder_uidvalidity(x), iv);
	mm_folder_close(x);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "INBOX", 0, &in), 0);
	ASSERT_EQ(mm_folder_count(in), 1);
	mm_folder_close(in);
	ASSERT_EQ(mm_folder_delete("example.org", "jo", "Old"), 0);
	/* made again, the name gets a greater UIDVALIDITY (RFC 3501 2.3.1.1) */
	ASSERT_EQ(mm_folder_create("example.org", "jo", "Old"), 0);
	ASSERT_EQ(mm_folder_open("example.org", "jo", "Old", 0, &f), 0);
	ASSERT(mm_folder_uidvalidity(f) > v);
	mm_folder_close(f);
	mm_close();
}

static int sub_collect(const char *name, void *arg)
{
	struct buf *b = arg;
	buf_printf(b, "%s;", name);
	return 0;
}

static void subscriptions_are_kept(void)
{
	struct buf b;
	ASSERT_EQ(setup_store(), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "INBOX", 1), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "Sent", 1), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "Sent", 1), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "Drafts", 1), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "INBOX", 0), 0);
	ASSERT_EQ(mm_subscription_set("example.org", "jo", "a/b", 1), -1);
	buf_init(&b);
	ASSERT_EQ(mm_subscription_list("example.org", "jo", sub_collect, &b), 0);
	ASSERT_STR(b.data, "Sent;Drafts;");
	buf_free(&b);
	mm_close();
}

/* Known answers both ways (RFC 3501 5.1.3's and RFC 9051 A.1's examples),
 * then every name goes back to where it came from. */
static void mailbox_names_convert_between_utf8_and_modified_utf7(void)
{
	static const struct {
		const char *utf8, *mutf7;
	} t[] = {
	        {"INBOX", "INBOX"},
	        {"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
	        {"a&b", "a&-b"},
	        {"&", "&-"},
	        {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	                "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	        {"\xe5\x8f\xb0\xe5\x8c\x97\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&U,BTF2XlZyyKng-"},
	        {"\xe2\x98\xba!", "&Jjo-!"},
	        {"\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail"}, /* a surrogate pair */
	        {"Work.Gr\xc3\xbc\xc3\x9f" "e.2026", "Work.Gr&APwA3w-e.2026"},
	        {"", ""},
	};
	char out[IMAP_NAME_UTF8_MAX];
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		ASSERT_EQ(imap_utf8_to_mutf7(t[i].utf8, out, sizeof out), 0);
		ASSERT_STR(out, t[i].mutf7);
		ASSERT_EQ(imap_mutf7_to_utf8(t[i].mutf7, out, sizeof out), 0);
		ASSERT_STR(out, t[i].utf8);
	}
	/* round trips of every length of a mixed name */
	const char *mixed = "x\xc3\xa9y\xe2\x82\xac&z\xf0\x9f\x98\x80.\xc3\xa9";
	char cut[64], m[256], back[256];
	for (size_t n = 0; n <= strlen(mixed); n++) {
		memcpy(cut, mixed, n);
		cut[n] = '\0';
		if (imap_utf8_to_mutf7(cut, m, sizeof m) == 0) {
			ASSERT_EQ(imap_mutf7_to_utf8(m, back, sizeof back), 0);
			ASSERT_STR(back, cut);
		}
	}
}

static void bad_mailbox_names_are_refused_both_ways(void)
{
	static const char *const bad_mutf7[] = {
	        "&Jjo!",              /* no shift back to ASCII */
	        "&U,BTFw-&ZeVnLIqe-", /* a superfluous shift */
	        "&AGE-",              /* "a" in base64 */
	        "&AAA-",              /* a NUL */
	        "&AB-",               /* bits left over, no whole character */
	        "&APx-",              /* stray bits not zero */
	        "&2D3-",              /* a lone high surrogate */
	        "&3ec-",              /* a lone low surrogate */
	        "&A/w-",              /* "/" is not modified base64 */
	        "Entw\xc3\xbcrfe",    /* 8-bit: not modified UTF-7 at all */
	        "&",
	};
	static const char *const bad_utf8[] = {
	        "\xc3",             /* cut short */
	        "\xc0\xaf",         /* overlong */
	        "\xed\xa0\x80",     /* a surrogate */
	        "\xf4\x90\x80\x80", /* past U+10FFFF */
	        "a\x01" "b",        /* a control */
	        "\xff",
	};
	char out[64];
	for (size_t i = 0; i < sizeof bad_mutf7 / sizeof bad_mutf7[0]; i++) {
		ASSERT(imap_mutf7_to_utf8(bad_mutf7[i], out, sizeof out) != 0);
		/* shown as stored: a name that is not modified UTF-7 stays itself */
		ASSERT(imap_name_shown(bad_mutf7[i], 1, out, sizeof out) == bad_mutf7[i]);
	}
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		ASSERT(imap_utf8_to_mutf7(bad_utf8[i], out, sizeof out) != 0);
	}
	/* too long for the caller's room, either way */
	ASSERT(imap_utf8_to_mutf7("\xc3\xbc\xc3\xbc\xc3\xbc", out, 6) != 0);
	ASSERT(imap_mutf7_to_utf8("abcdefgh", out, 4) != 0);
	ASSERT(strlen(out) == 3);
}

static void names_go_out_quoted_in_utf8_only_when_asked(void)
{
	struct buf b;
	buf_init(&b);
	imap_put_name(&b, "Entw&APw-rfe", 1);
	buf_puts(&b, " ");
	imap_put_name(&b, "Entw&APw-rfe", 0);
	buf_puts(&b, " ");
	imap_put_name(&b, "a\"&-b", 1);
	buf_puts(&b, " ");
	imap_put_name(&b, "&Jjo!", 1);
	ASSERT_STR(b.data, "\"Entw\xc3\xbcrfe\" \"Entw&APw-rfe\" \"a\\\"&b\" \"&Jjo!\"");
	buf_free(&b);
}

/* One SEARCH answer through imap_esearch: matches (seq, uid) in, the
 * ESEARCH line out, the saved result into *saved; the end's rc. */
static int esearch_run(unsigned ret, const uint32_t (*m)[2], size_t n, struct buf *out,
        struct imap_set *saved)
{
	struct imap_esearch e;
	imap_esearch_init(&e, ret);
	for (size_t i = 0; i < n; i++) {
		imap_esearch_add(&e, m[i][0], m[i][0], m[i][1]);
	}
	imap_esearch_put(&e, out, "t", 0, 0);
	return imap_esearch_end(&e, saved);
}

static void a_saved_search_result_is_kept_as_uid_ranges(void)
{
	static const uint32_t m[][2] = {{1, 10}, {2, 11}, {3, 12}, {5, 20}, {6, 25}};
	struct imap_set saved = {NULL, 0};
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(esearch_run(IMAP_RET_ALL | IMAP_RET_SAVE, m, 5, &b, &saved), 0);
	ASSERT_STR(b.data, "* ESEARCH (TAG \"t\") ALL 1:3,5:6\r\n");
	ASSERT_EQ(saved.n, 2); /* a range per run of sequence numbers */
	ASSERT(imap_saved_has(&saved, 10) && imap_saved_has(&saved, 12));
	ASSERT(!imap_saved_has(&saved, 13) && !imap_saved_has(&saved, 9));
	ASSERT(imap_saved_has(&saved, 22) && imap_saved_has(&saved, 25)); /* 21-24 do not exist */
	ASSERT(!imap_saved_has(&saved, 26));
	/* SAVE alone answers nothing; MIN MAX SAVE keeps only those two */
	b.len = 0;
	ASSERT_EQ(esearch_run(IMAP_RET_SAVE, m, 5, &b, &saved), 0);
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(saved.n, 2);
	ASSERT_EQ(esearch_run(IMAP_RET_MIN | IMAP_RET_MAX | IMAP_RET_SAVE, m, 5, &b, &saved), 0);
	ASSERT_STR(b.data, "* ESEARCH (TAG \"t\") MIN 1 MAX 6\r\n");
	ASSERT(imap_saved_has(&saved, 10) && imap_saved_has(&saved, 25));
	ASSERT(!imap_saved_has(&saved, 11) && !imap_saved_has(&saved, 20));
	/* without SAVE the saved result stays; no match saves an empty one */
	ASSERT_EQ(esearch_run(IMAP_RET_COUNT, m, 0, &b, &saved), 0);
	ASSERT(imap_saved_has(&saved, 10));
	ASSERT_EQ(esearch_run(IMAP_RET_COUNT | IMAP_RET_SAVE, m, 0, &b, &saved), 0);
	ASSERT_EQ(saved.n, 0);
	imap_set_free(&saved);
	buf_free(&b);
}

static void a_saved_result_past_its_bound_is_not_kept(void)
{
	struct imap_esearch e;
	struct imap_set saved = {NULL, 0};
	struct buf b;
	buf_init(&b);
	imap_esearch_init(&e, IMAP_RET_SAVE);
	imap_esearch_add(&e, 1, 1, 1);
	ASSERT_EQ(imap_esearch_end(&e, &saved), 0);
	ASSERT_EQ(saved.n, 1);
	imap_esearch_init(&e, IMAP_RET_COUNT | IMAP_RET_SAVE);
	for (uint32_t i = 1; i <= 40000; i++) {
		imap_esearch_add(&e, 2 * i, 2 * i, 2 * i); /* every other message: a range each */
	}
	imap_esearch_put(&e, &b, "t", 0, 0);
	ASSERT_STR(b.data, "* ESEARCH (TAG \"t\") COUNT 40000\r\n");
	ASSERT_EQ(imap_esearch_end(&e, &saved), -1);
	ASSERT_EQ(saved.n, 0); /* "$" is empty, not the old result */
	ASSERT(!imap_saved_has(&saved, 1));
	imap_set_free(&saved);
	buf_free(&b);
}

void tests_imap(void)
{
	RUN(commands_tokenize_as_rfc3501_says, "imap commands tokenize as RFC 3501 says");
	RUN(a_nul_or_deep_nesting_is_refused, "imap a NUL or deep nesting is refused");
	RUN(too_many_tokens_are_refused, "imap too many tokens are refused");
	RUN(a_literal_continues_the_command, "imap a literal continues the command");
	RUN(sequence_sets_parse_and_match, "imap sequence sets parse and match");
	RUN(dates_parse, "imap dates parse");
	RUN(search_keys_match_as_rfc3501_says, "imap search keys match as RFC 3501 says");
	RUN(too_many_search_keys_are_refused, "imap too many search keys are refused");
	RUN(keywords_and_flags_persist_for_other_openers,
	        "imap keywords and flags persist for other openers");
	RUN(folders_are_created_renamed_and_deleted, "imap folders are created, renamed and deleted");
	RUN(subscriptions_are_kept, "imap subscriptions are kept");
	RUN(mailbox_names_convert_between_utf8_and_modified_utf7,
	        "imap mailbox names convert between UTF-8 and modified UTF-7");
	RUN(bad_mailbox_names_are_refused_both_ways, "imap bad mailbox names are refused both ways");
	RUN(names_go_out_quoted_in_utf8_only_when_asked,
	        "imap names go out quoted in UTF-8 only when asked");
	RUN(a_saved_search_result_is_kept_as_uid_ranges,
	        "imap a saved search result is kept as UID ranges");
	RUN(a_saved_result_past_its_bound_is_not_kept, "imap a saved result past its bound is not kept");
}
