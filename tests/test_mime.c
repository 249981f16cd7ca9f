/* test_mime.c - known answers for the message parser: the MIME tree,
 * parameters, encoded words, transfer encodings, addresses, dates,
 * BODYSTRUCTURE and ENVELOPE, and hostile input; see mime.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

/* A part's body as a string (valid until the next call). */
static const char *body_of(const struct mime_msg *m, const struct mime_part *p)
{
	static struct buf b;
	buf_reset(&b);
	buf_append(&b, m->buf + p->body_off, p->body_len);
	return b.data;
}

static const char *header_of(const struct mime_msg *m, const struct mime_part *p)
{
	static struct buf b;
	buf_reset(&b);
	buf_append(&b, m->buf + p->hdr_off, p->hdr_len);
	return b.data;
}

/* The part an IMAP section names, or NULL. */
static const struct mime_part *part(const struct mime_msg *m, const char *spec)
{
	const char *rest;
	const struct mime_part *p = mime_section(m, spec, &rest);
	return p && *rest == '\0' ? p : NULL;
}

static const char *decoded(const struct mime_msg *m, const struct mime_part *p)
{
	static struct buf b;
	buf_reset(&b);
	mime_body_decode(m, p, &b);
	return b.data ? b.data : "";
}

static const char *words(const char *s)
{
	static struct buf b;
	buf_reset(&b);
	mime_decode_words(s, strlen(s), &b);
	return b.data ? b.data : "";
}

static const char *qp(const char *s)
{
	static struct buf b;
	buf_reset(&b);
	mime_decode_qp(s, strlen(s), &b);
	return b.data ? b.data : "";
}

static const char *b64(const char *s)
{
	static struct buf b;
	buf_reset(&b);
	mime_decode_base64(s, strlen(s), &b);
	return b.data ? b.data : "";
}

static const char *bodystructure(const struct mime_msg *m, const struct mime_part *p, int ext)
{
	static struct buf b;
	buf_reset(&b);
	mime_bodystructure(m, p, ext, &b);
	return b.data;
}

static const char *envelope(const struct mime_msg *m, const struct mime_part *p)
{
	static struct buf b;
	buf_reset(&b);
	mime_envelope(m, p, &b);
	return b.data;
}

static const char simple_msg[] = "From: Alice <alice@example.org>\r\n"
                                 "Subject: hello\r\n"
                                 "\r\n"
                                 "Hi Bob,\r\n"
                                 "see you.\r\n";

static void a_simple_text_message_is_one_text_plain_part(void)
{
	struct mime_msg m;
	struct buf v;
	buf_init(&v);
	mime_parse(&m, simple_msg, strlen(simple_msg));
	const struct mime_part *r = m.root;
	ASSERT_EQ(m.nparts, 1);
	ASSERT_EQ(m.limits, 0);
	ASSERT_STR(r->type, "text");
	ASSERT_STR(r->subtype, "plain");
	ASSERT_STR(mime_part_param(r, "charset"), "us-ascii");
	ASSERT_STR(r->encoding, "7bit");
	ASSERT_STR(header_of(&m, r), "From: Alice <alice@example.org>\r\nSubject: hello\r\n\r\n");
	ASSERT_STR(body_of(&m, r), "Hi Bob,\r\nsee you.\r\n");
	ASSERT_EQ(r->lines, 2);
	ASSERT(r->child == NULL && r->flags == 0);
	ASSERT(mime_header_get(&m, NULL, "SUBJECT", &v) == 1);
	ASSERT_STR(v.data, "hello");
	ASSERT(mime_header_get(&m, NULL, "to", &v) == 0);
	ASSERT(part(&m, "1") == r);
	ASSERT(part(&m, "2") == NULL);
	ASSERT_STR(bodystructure(&m, r, 0),
	        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	        "\"7bit\" 19 2)");
	buf_free(&v);
	mime_free(&m);
}

static void header_fields_come_raw_in_order_and_unfold_on_request(void)
{
	static const char msg[] = " stray continuation\r\n"
	                          "Subject : folded\r\n"
	                          "\tover two lines\r\n"
	                          "no colon here\r\n"
	                          "X-Empty:\r\n"
	                          "To: bob@example.net\r\n"
	                          "\r\n"
	                          "Not: a header\r\n";
	struct mime_msg m;
	struct mime_headers it;
	struct mime_header h;
	struct buf v;
	buf_init(&v);
	mime_parse(&m, msg, strlen(msg));
	mime_headers_part(&it, &m, NULL);
	ASSERT(mime_headers_next(&it, &h));
	ASSERT(h.name_len == 7 && memcmp(h.name, "Subject", 7) == 0);
	ASSERT(h.value_len == 23 && memcmp(h.value, "folded\r\n\tover two lines", 23) == 0);
	ASSERT(mime_headers_next(&it, &h));
	ASSERT(h.name_len == 7 && h.value_len == 0);
	ASSERT(mime_headers_next(&it, &h));
	ASSERT(h.name_len == 2 && memcmp(h.name, "To", 2) == 0);
	ASSERT(!mime_headers_next(&it, &h));
	ASSERT(mime_header_get(&m, NULL, "subject", &v));
	ASSERT_STR(v.data, "folded\tover two lines");
	ASSERT(mime_header_get(&m, NULL, "x-empty", &v));
	ASSERT_STR(v.data, "");
	ASSERT(!mime_header_get(&m, NULL, "not", &v));
	ASSERT_STR(body_of(&m, m.root), "Not: a header\r\n");
	buf_free(&v);
	mime_free(&m);
}

static const char alternative_msg[] = "From: a@example.org\r\n"
                                      "MIME-Version: 1.0\r\n"
                                      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
                                      "\r\n"
                                      "This is the preamble.\r\n"
                                      "--alt\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "\r\n"
                                      "plain\r\n"
                                      "--alt\r\n"
                                      "Content-Type: text/html; charset=\"utf-8\"\r\n"
                                      "Content-Transfer-Encoding: quoted-printable\r\n"
                                      "\r\n"
                                      "<p>caf=C3=A9</p>\r\n"
                                      "--alt--\r\n"
                                      "This is the epilogue.\r\n";

static void multipart_alternative_splits_into_text_and_html(void)
{
	struct mime_msg m;
	struct buf t;
	buf_init(&t);
	mime_parse(&m, alternative_msg, strlen(alternative_msg));
	const struct mime_part *r = m.root, *a = part(&m, "1"), *b = part(&m, "2");
	ASSERT_EQ(m.nparts, 3);
	ASSERT(mime_part_is(r, "multipart", "alternative"));
	ASSERT_EQ(r->flags, MIME_MULTIPART);
	ASSERT_EQ(r->nchild, 2);
	ASSERT(a && b && a->parent == r && a->next == b && b->next == NULL);
	ASSERT(mime_part_is(a, "text", "plain"));
	ASSERT_STR(header_of(&m, a), "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	ASSERT_STR(body_of(&m, a), "plain");
	ASSERT_EQ(a->lines, 1);
	ASSERT(mime_part_is(b, "text", "html"));
	ASSERT_STR(mime_part_param(b, "charset"), "utf-8");
	ASSERT_STR(b->encoding, "quoted-printable");
	ASSERT_STR(body_of(&m, b), "<p>caf=C3=A9</p>");
	ASSERT_STR(decoded(&m, b), "<p>caf\xc3\xa9</p>");
	ASSERT_EQ(mime_body_text(&m, b, &t), 0);
	ASSERT_STR(t.data, "<p>caf\xc3\xa9</p>");
	ASSERT(part(&m, "3") == NULL && part(&m, "1.1") == NULL && part(&m, "0") == NULL);
	ASSERT_STR(bodystructure(&m, r, 0),
	        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1)"
	        "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 16 1) "
	        "\"alternative\")");
	ASSERT_STR(bodystructure(&m, r, 1),
	        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)"
	        "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 16 1 NIL "
	        "NIL NIL NIL) \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL)");
	buf_free(&t);
	mime_free(&m);
}

static void bare_lf_lines_parse_like_crlf_ones(void)
{
	struct buf lf;
	buf_init(&lf);
	for (const char *s = alternative_msg; *s; s++) {
		if (*s != '\r') {
			buf_append(&lf, s, 1);
		}
	}
	struct mime_msg m;
	mime_parse(&m, lf.data, lf.len);
	ASSERT_EQ(m.nparts, 3);
	ASSERT_STR(body_of(&m, part(&m, "1")), "plain");
	ASSERT_STR(body_of(&m, part(&m, "2")), "<p>caf=C3=A9</p>");
	ASSERT_STR(mime_part_param(part(&m, "2"), "charset"), "utf-8");
	mime_free(&m);
	buf_free(&lf);
}

static const char nested_msg[] = "From: \"Carol Q. Public\" <carol@example.org>\r\n"
                                 "To: bob@example.net\r\n"
                                 "Subject: report\r\n"
                                 "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
                                 "Message-ID: <1234@example.org>\r\n"
                                 "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
                                 "\r\n"
                                 "--outer\r\n"
                                 "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
                                 "\r\n"
                                 "--inner\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "\r\n"
                                 "text body\r\n"
                                 "--inner\r\n"
                                 "Content-Type: text/html\r\n"
                                 "\r\n"
                                 "<b>html</b>\r\n"
                                 "--inner--\r\n"
                                 "\r\n"
                                 "--outer\r\n"
                                 "Content-Type: application/pdf; name=\"report.pdf\"\r\n"
                                 "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
                                 "Content-Transfer-Encoding: base64\r\n"
                                 "Content-ID: <pdf@example.org>\r\n"
                                 "\r\n"
                                 "SGVsbG8s\r\n"
                                 "IFdvcmxkIQ==\r\n"
                                 "--outer\r\n"
                                 "Content-Type: message/rfc822\r\n"
                                 "Content-Description: forwarded\r\n"
                                 "\r\n"
                                 "From: dave@example.com\r\n"
                                 "Subject: inner\r\n"
                                 "\r\n"
                                 "inner body\r\n"
                                 "--outer--\r\n";

static void nested_multipart_holds_an_attachment_and_a_message(void)
{
	struct mime_msg m;
	struct buf v;
	buf_init(&v);
	mime_parse(&m, nested_msg, strlen(nested_msg));
	ASSERT_EQ(m.nparts, 7);
	ASSERT_EQ(m.limits, 0);
	ASSERT_EQ(m.root->nchild, 3);
	const struct mime_part *alt = part(&m, "1"), *pdf = part(&m, "2"), *fwd = part(&m, "3");
	ASSERT(alt && mime_part_is(alt, "multipart", "alternative") && alt->nchild == 2);
	ASSERT_STR(body_of(&m, part(&m, "1.1")), "text body");
	ASSERT_STR(body_of(&m, part(&m, "1.2")), "<b>html</b>");
	ASSERT_EQ(part(&m, "1.2")->depth, 2);
	ASSERT(pdf && mime_part_is(pdf, "application", "pdf"));
	ASSERT_STR(pdf->disposition, "attachment");
	ASSERT_STR(mime_part_filename(pdf), "report.pdf");
	ASSERT_STR(pdf->id, "<pdf@example.org>");
	ASSERT_STR(decoded(&m, pdf), "Hello, World!");
	ASSERT(fwd && mime_part_is(fwd, "message", "rfc822"));
	ASSERT_EQ(fwd->flags, MIME_MESSAGE);
	ASSERT_STR(fwd->description, "forwarded");
	const struct mime_part *in = fwd->child;
	ASSERT(in && in->parent == fwd && part(&m, "3.1") == in);
	ASSERT(mime_header_get(&m, in, "subject", &v));
	ASSERT_STR(v.data, "inner");
	ASSERT_STR(body_of(&m, in), "inner body");
	ASSERT_EQ(fwd->lines, 4);
	/* section paths and what follows them */
	const char *rest;
	ASSERT(mime_section(&m, "3.HEADER", &rest) == fwd);
	ASSERT_STR(rest, ".HEADER");
	ASSERT(mime_section(&m, "1.2.MIME", &rest) == part(&m, "1.2"));
	ASSERT_STR(rest, ".MIME");
	ASSERT(mime_section(&m, "TEXT", &rest) == m.root);
	ASSERT_STR(rest, "TEXT");
	ASSERT(part(&m, "2.1") == NULL && part(&m, "3.2") == NULL && part(&m, "1.1.1") == NULL);
	ASSERT_STR(envelope(&m, m.root),
	        "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"report\" "
	        "((\"Carol Q. Public\" NIL \"carol\" \"example.org\")) "
	        "((\"Carol Q. Public\" NIL \"carol\" \"example.org\")) "
	        "((\"Carol Q. Public\" NIL \"carol\" \"example.org\")) "
	        "((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<1234@example.org>\")");
	ASSERT_STR(bodystructure(&m, pdf, 1),
	        "(\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<pdf@example.org>\" NIL "
	        "\"base64\" 22 NIL (\"attachment\" (\"filename\" \"report.pdf\")) NIL NIL)");
	ASSERT_STR(bodystructure(&m, fwd, 0),
	        "(\"message\" \"rfc822\" NIL NIL \"forwarded\" \"7bit\" 52 "
	        "(NIL \"inner\" ((NIL NIL \"dave\" \"example.com\")) "
	        "((NIL NIL \"dave\" \"example.com\")) ((NIL NIL \"dave\" \"example.com\")) "
	        "NIL NIL NIL NIL NIL) "
	        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1) 4)");
	buf_free(&v);
	mime_free(&m);
}

static void a_missing_final_boundary_ends_the_last_part_at_the_end(void)
{
	static const char msg[] = "Content-Type: multipart/mixed; boundary=xyz\r\n"
	                          "\r\n"
	                          "--xyz\r\n"
	                          "Content-Type: text/plain\r\n"
	                          "\r\n"
	                          "first\r\n"
	                          "--xyz  \r\n"
	                          "\r\n"
	                          "second part, no end\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_EQ(m.root->nchild, 2);
	ASSERT_STR(body_of(&m, part(&m, "1")), "first");
	const struct mime_part *p = part(&m, "2");
	ASSERT_EQ(p->hdr_len, 2);
	ASSERT(mime_part_is(p, "text", "plain"));
	ASSERT_STR(body_of(&m, p), "second part, no end\r\n");
	ASSERT_EQ(p->body_off + p->body_len, strlen(msg));
	mime_free(&m);
}

static void boundary_lines_match_whole_not_by_prefix(void)
{
	/* "--b-1" and "--bx" are not delimiters of "b"; an inner multipart
	 * without its closing line is ended by the outer boundary */
	static const char msg[] = "Content-Type: multipart/mixed; boundary=b\r\n"
	                          "\r\n"
	                          "--b\r\n"
	                          "Content-Type: multipart/mixed; boundary=b-1\r\n"
	                          "\r\n"
	                          "--b-1\r\n"
	                          "\r\n"
	                          "one\r\n"
	                          "--bx\r\n"
	                          "--b\r\n"
	                          "\r\n"
	                          "two\r\n"
	                          "--b--\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_EQ(m.root->nchild, 2);
	ASSERT_EQ(part(&m, "1")->nchild, 1);
	ASSERT_STR(body_of(&m, part(&m, "1.1")), "one\r\n--bx");
	ASSERT_STR(body_of(&m, part(&m, "2")), "two");
	mime_free(&m);
}

static void quoted_boundaries_and_rfc2231_parameters_decode(void)
{
	static const char msg[] =
	        "Content-Type: multipart/mixed;\r\n"
	        " boundary=\"=_frontier; \\\"x\\\"=1\" (a comment)\r\n"
	        "\r\n"
	        "--=_frontier; \"x\"=1\r\n"
	        "Content-Type: application/octet-stream;\r\n"
	        " name*0*=utf-8''%E2%82%AC%20rates;\r\n"
	        " name*1=\" 2024.txt\"\r\n"
	        "Content-Disposition: ATTACHMENT;\r\n"
	        "\tfilename*=iso-8859-1'en'caf%E9.txt; size=5\r\n"
	        "\r\n"
	        "data\r\n"
	        "--=_frontier; \"x\"=1\r\n"
	        "Content-Type: text/plain; charset=us-ascii (Plain text); format=flowed\r\n"
	        "Content-Disposition: inline; filename=\"=?utf-8?B?w6lsw6h2ZQ==?=.txt\"\r\n"
	        "\r\n"
	        "text\r\n"
	        "--=_frontier; \"x\"=1\r\n"
	        "Content-Type: multipart/related; boundary=----=_Part_1_2.3\r\n"
	        "\r\n"
	        "------=_Part_1_2.3\r\n"
	        "\r\n"
	        "related\r\n"
	        "------=_Part_1_2.3--\r\n"
	        "--=_frontier; \"x\"=1--\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_STR(mime_part_param(m.root, "boundary"), "=_frontier; \"x\"=1");
	ASSERT_EQ(m.root->nchild, 3);
	const struct mime_part *a = part(&m, "1"), *t = part(&m, "2"), *rel = part(&m, "3");
	ASSERT_STR(mime_part_param(a, "name"), "\xe2\x82\xac rates 2024.txt");
	ASSERT_EQ(a->nparams, 1);
	ASSERT_STR(a->disposition, "attachment");
	ASSERT_STR(mime_part_filename(a), "caf\xc3\xa9.txt");
	ASSERT_STR(mime_part_disp_param(a, "size"), "5");
	ASSERT_STR(body_of(&m, a), "data");
	ASSERT_STR(mime_part_param(t, "charset"), "us-ascii");
	ASSERT_STR(mime_part_param(t, "format"), "flowed");
	ASSERT_STR(mime_part_filename(t), "\xc3\xa9l\xc3\xa8ve.txt");
	ASSERT_STR(mime_part_param(rel, "boundary"), "----=_Part_1_2.3");
	ASSERT_EQ(rel->nchild, 1);
	ASSERT_STR(body_of(&m, part(&m, "3.1")), "related");
	ASSERT_STR(bodystructure(&m, a, 1),
	        "(\"application\" \"octet-stream\" (\"name*\" "
	        "\"utf-8''%E2%82%AC%20rates%202024.txt\") NIL NIL \"7bit\" 4 NIL (\"attachment\" "
	        "(\"filename*\" \"utf-8''caf%C3%A9.txt\" \"size\" \"5\")) NIL NIL)");
	mime_free(&m);
}

static void encoded_word_subjects_decode_to_utf8(void)
{
	ASSERT_STR(words("=?utf-8?B?w6lsw6h2ZQ==?="), "\xc3\xa9l\xc3\xa8ve");
	ASSERT_STR(words("=?ISO-8859-1?q?caf=E9_cr=E8me?="), "caf\xc3\xa9 cr\xc3\xa8me");
	ASSERT_STR(words("Re: =?utf-8?Q?caf=C3=A9?= ok"), "Re: caf\xc3\xa9 ok");
	/* adjacent words join without the blanks between them (RFC 2047 6.2) */
	ASSERT_STR(words("=?utf-8?Q?a?= =?utf-8?Q?b?="), "ab");
	ASSERT_STR(words("=?utf-8?Q?a?=\r\n\t =?UTF-8?b?Yg==?="), "ab");
	ASSERT_STR(words("=?utf-8?Q?a?= b =?utf-8?Q?c?="), "a b c");
	/* a character split between two words */
	ASSERT_STR(words("=?utf-8?Q?=C3?= =?utf-8?Q?=A9?="), "\xc3\xa9");
	ASSERT_STR(words("=?windows-1252?Q?=80_5?="), "\xe2\x82\xac 5");
	ASSERT_STR(words("=?iso-8859-15?Q?=A4?= =?us-ascii*en?Q?x?="), "\xe2\x82\xac"
	                                                               "x");
	/* unknown charsets and broken words stay as they are */
	ASSERT_STR(words("=?koi8-r?B?8NLJ18XU?= ok"), "=?koi8-r?B?8NLJ18XU?= ok");
	ASSERT_STR(words("=?utf-8?X?abc?= =?utf-8?Q?no end"), "=?utf-8?X?abc?= =?utf-8?Q?no end");
	ASSERT_STR(words("=?utf-8?Q?a b?="), "=?utf-8?Q?a b?=");
	/* bytes that are not UTF-8 are windows-1252; bad UTF-8 in a word is U+FFFD */
	ASSERT_STR(words("caf\xe9"), "caf\xc3\xa9");
	ASSERT_STR(words("=?utf-8?Q?=FF?="), "\xef\xbf\xbd");

	static const char msg[] = "Subject: =?iso-8859-1?Q?R=E9sum=E9?=\r\n"
	                          " =?utf-8?B?IOKCrA==?=\r\n"
	                          "\r\n";
	struct mime_msg m;
	struct buf v;
	buf_init(&v);
	mime_parse(&m, msg, strlen(msg));
	ASSERT(mime_header_text(&m, NULL, "subject", &v));
	ASSERT_STR(v.data, "R\xc3\xa9sum\xc3\xa9 \xe2\x82\xac");
	buf_free(&v);
	mime_free(&m);
}

static void quoted_printable_decodes_known_answers(void)
{
	ASSERT_STR(qp("a=3Db"), "a=b");
	ASSERT_STR(qp("caf=C3=A9 caf=c3=a9"), "caf\xc3\xa9 caf\xc3\xa9");
	ASSERT_STR(qp("soft=\r\nbreak"), "softbreak");
	ASSERT_STR(qp("soft=\nbreak"), "softbreak");
	ASSERT_STR(qp("soft= \t\r\nbreak"), "softbreak");
	ASSERT_STR(qp("trailing  \r\nblanks\t\r\nkept in  middle"),
	        "trailing\r\nblanks\r\nkept in  middle");
	ASSERT_STR(qp("bad =ZZ and =4"), "bad =ZZ and =4");
	ASSERT_STR(qp("100%="), "100%");
	ASSERT_STR(qp("=\r"), "");
	ASSERT_STR(qp(""), "");
}

static void base64_decodes_known_answers_and_skips_junk(void)
{
	/* RFC 4648 section 10 */
	ASSERT_STR(b64(""), "");
	ASSERT_STR(b64("Zg=="), "f");
	ASSERT_STR(b64("Zm8="), "fo");
	ASSERT_STR(b64("Zm9v"), "foo");
	ASSERT_STR(b64("Zm9vYg=="), "foob");
	ASSERT_STR(b64("Zm9vYmE="), "fooba");
	ASSERT_STR(b64("Zm9vYmFy"), "foobar");
	ASSERT_STR(b64("SGVs\r\nbG8*sIF\r\n dvcmx kIQ"), "Hello, World!");
	ASSERT_STR(b64("Zg==Zm8="), "ffo");
	ASSERT_STR(b64("Zm9vY"), "foo");
	ASSERT_STR(b64("!!!"), "");
}

/* The list as one line: "name|mailbox|host[|route:adl]" entries, "group:name" and
 * "end" for groups, "-" for NULL. */
static const char *addrs(const char *s, int decode)
{
	static struct buf b;
	buf_reset(&b);
	struct mime_addr *list = mime_addr_parse(s, strlen(s), decode);
	for (struct mime_addr *a = list; a; a = a->next) {
		if (b.len) {
			buf_puts(&b, ", ");
		}
		if (a->kind == MIME_ADDR_GROUP) {
			buf_printf(&b, "group:%s", a->name ? a->name : "-");
		} else if (a->kind == MIME_ADDR_GROUP_END) {
			buf_puts(&b, "end");
		} else {
			buf_printf(&b, "%s|%s|%s", a->name ? a->name : "-",
			        a->mailbox ? a->mailbox : "-", a->host ? a->host : "-");
			if (a->route) {
				buf_printf(&b, "|route:%s", a->route);
			}
		}
	}
	mime_addr_free(list);
	return b.data ? b.data : "";
}

static void address_lists_parse_groups_quoted_names_and_comments(void)
{
	ASSERT_STR(addrs("\"Doe, John\" <john.doe@example.com>, Mary Smith <mary@x.test>", 1),
	        "Doe, John|john.doe|example.com, Mary Smith|mary|x.test");
	/* RFC 5322 A.1.3 */
	ASSERT_STR(addrs("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, "
	                 "Mary <mary@x.test>",
	                   1),
	        "group:A Group, Ed Jones|c|a.test, -|joe|where.test, John|jdoe|one.test, end, "
	        "Mary|mary|x.test");
	ASSERT_STR(addrs("Undisclosed recipients:;", 1), "group:Undisclosed recipients, end");
	ASSERT_STR(addrs("team: a@b.test", 1), "group:team, -|a|b.test, end");
	ASSERT_STR(addrs("jdoe@one.test (John Doe)", 1), "John Doe|jdoe|one.test");
	/* RFC 5322 A.5: comments everywhere */
	ASSERT_STR(addrs("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 1),
	        "Pete|pete|silly.test");
	ASSERT_STR(addrs("=?utf-8?Q?J=C3=B6rg?= Meier <jorg@example.de>", 1),
	        "J\xc3\xb6rg Meier|jorg|example.de");
	ASSERT_STR(addrs("=?utf-8?Q?J=C3=B6rg?= Meier <jorg@example.de>", 0),
	        "=?utf-8?Q?J=C3=B6rg?= Meier|jorg|example.de");
	ASSERT_STR(
	        addrs("\"Joe \\\"Q\\\" Public\" <joe@x.test>", 0), "Joe \"Q\" Public|joe|x.test");
	ASSERT_STR(addrs("<@a.test,@b.test:user@host.test>", 1),
	        "-|user|host.test|route:@a.test,@b.test");
	ASSERT_STR(addrs("Hop <@a.test:u@h.test>, v@h.test", 1),
	        "Hop|u|h.test|route:@a.test, -|v|h.test");
	ASSERT_STR(addrs("<@ a.test (c) , , @b.test : u@h.test>", 1),
	        "-|u|h.test|route:@a.test,@b.test");
	ASSERT_STR(addrs("\"john doe\"@example.com, \"plain\"@example.com", 1),
	        "-|\"john doe\"|example.com, -|plain|example.com");
	ASSERT_STR(
	        addrs("Mary Q. Public <mary@[192.0.2.1]>", 1), "Mary Q. Public|mary|[192.0.2.1]");
	ASSERT_STR(addrs("root, <>", 1), "-|root|, -||");
	ASSERT_STR(addrs(" , ,", 1), "");
	ASSERT(mime_addr_parse("", 0, 1) == NULL);
	ASSERT_STR(addrs("broken <a@b.test, c@d.test", 1), "broken|a|b.test, -|c|d.test");
}

static void dates_parse_with_and_without_weekday_and_obsolete_zones(void)
{
	static const struct {
		const char *in;
		long long t;
		int zone;
	} kat[] = {
	        {"Tue, 1 Jul 2003 10:52:37 +0200", 1057049557, 120},
	        {"1 Jul 2003 10:52:37 +0200", 1057049557, 120},
	        {"Fri, 21 Nov 1997 09:55:06 -0600 (MDT)", 880127706, -360},
	        {"Thu,\r\n 13\r\n Feb\r\n 1969\r\n 23:32\r\n -0500", -27718080, -300},
	        {"Thu, 13 Feb 1969 23:32 EST", -27718080, -300},
	        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777, 0},
	        {"6 Nov 94 08:49:37 UT", 784111777, 0},
	        {"Sun, 6 Nov 1994 08:49:37 PDT", 784136977, -420},
	        {"Sun, 6 Nov 1994 08:49:37 Z", 784111777, 0},
	        {"Sun, 6 Nov 1994 08:49:37 A", 784111777, 0},
	        {"Sun Nov  6 08:49:37 1994", 784111777, 0},
	        {"17-Jul-1996 02:44:25 -0700", 837596665, -420},
	        {"1 Jan 49 00:00:00 +0000", 2493072000LL, 0},
	        {"1 Jan 50 00:00:00 +0000", -631152000, 0},
	        {"29 Feb 2000 12:00:00 +0000", 951825600, 0},
	        {"Tue,  1 Jul 2003 08:52:37", 1057049557, 0},
	};
	for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		int64_t t = 0;
		int zone = 99;
		ASSERT_EQ(mime_date_parse(kat[i].in, strlen(kat[i].in), &t, &zone), 0);
		ASSERT_EQ(t, kat[i].t);
		ASSERT_EQ(zone, kat[i].zone);
	}
	static const char *bad[] = {"", "hello", "29 Feb 2001 00:00:00 +0000",
	        "1 Jan 2020 25:00:00 +0000", "1 2020 10:00:00",
	        "1 Jan 2020 10:", "1 Jan 123456789 10:00:00"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t t;
		ASSERT_EQ(mime_date_parse(bad[i], strlen(bad[i]), &t, NULL), -1);
	}
}

static void line_counts_follow_imap(void)
{
	static const char msg[] = "Content-Type: multipart/mixed; boundary=b\r\n"
	                          "\r\n"
	                          "--b\r\n"
	                          "\r\n"
	                          "a\r\nb\r\n"
	                          "--b\r\n"
	                          "\r\n"
	                          "a\r\nb\r\n\r\n\r\n"
	                          "--b\r\n"
	                          "--b--\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_EQ(m.root->nchild, 3);
	ASSERT_EQ(part(&m, "1")->lines, 2);
	ASSERT_EQ(part(&m, "2")->lines, 3);
	ASSERT_EQ(part(&m, "3")->lines, 0);
	ASSERT_EQ(part(&m, "3")->body_len, 0);
	mime_free(&m);
}

static void content_language_md5_and_location_reach_bodystructure(void)
{
	static const char msg[] = "Content-Type: text/plain; charset=utf-8\r\n"
	                          "Content-Language: en, de (German)\r\n"
	                          "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
	                          "Content-Location: http://example.org/a\r\n"
	                          "Content-Description: =?utf-8?Q?caf=C3=A9?=\r\n"
	                          "\r\n"
	                          "x";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_STR(bodystructure(&m, m.root, 1),
	        "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL \"=?utf-8?Q?caf=C3=A9?=\" "
	        "\"7bit\" "
	        "1 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" NIL (\"en\" \"de\") \"http://example.org/a\")");
	mime_free(&m);
}

static void an_encoded_message_part_still_has_envelope_body_and_lines(void)
{
	/* RFC 2046 5.2.1 forbids base64 here: the part is not parsed, but RFC
	   3501's body-type-msg still wants an envelope, a body and a line count */
	static const char msg[] = "Content-Type: message/rfc822\r\n"
	                          "Content-Transfer-Encoding: base64\r\n"
	                          "\r\n"
	                          "U3ViamVjdDogeA0KDQp5DQo=\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_STR(bodystructure(&m, m.root, 0),
	        "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 26 "
	        "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
	        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 1)");
	mime_free(&m);
}

static void envelope_groups_and_8bit_values_are_valid_imap(void)
{
	static const char msg[] = "Subject: caf\xc3\xa9 \"quoted\"\r\n"
	                          "From: Joe <joe@x.test>\r\n"
	                          "Reply-To: list@x.test\r\n"
	                          "To: Undisclosed recipients:;\r\n"
	                          "Cc: team: a@b.test;\r\n"
	                          "In-Reply-To: <a@b>\r\n"
	                          "\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	ASSERT_STR(envelope(&m, m.root),
	        "(NIL {14}\r\ncaf\xc3\xa9 \"quoted\" ((\"Joe\" NIL \"joe\" \"x.test\")) "
	        "((\"Joe\" NIL \"joe\" \"x.test\")) ((NIL NIL \"list\" \"x.test\")) "
	        "((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) "
	        "((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)) NIL "
	        "\"<a@b>\" NIL)");
	mime_free(&m);
}

static void a_digest_defaults_its_parts_to_message_rfc822(void)
{
	static const char msg[] = "Content-Type: multipart/digest; boundary=d\r\n"
	                          "\r\n"
	                          "--d\r\n"
	                          "\r\n"
	                          "Subject: one\r\n"
	                          "\r\n"
	                          "body one\r\n"
	                          "--d--\r\n";
	struct mime_msg m;
	mime_parse(&m, msg, strlen(msg));
	const struct mime_part *p = part(&m, "1");
	ASSERT(mime_part_is(p, "message", "rfc822"));
	ASSERT(p->flags & MIME_MESSAGE);
	ASSERT_STR(body_of(&m, p->child), "body one");
	mime_free(&m);
}

/* ---- hostile input ---- */

/* Every part is inside the buffer and its parent, and depth is capped. */
static int tree_ok(const struct mime_msg *m, const struct mime_part *p, unsigned *count)
{
	(*count)++;
	if (p->hdr_off + p->hdr_len != p->body_off || p->body_off + p->body_len > m->len ||
	        p->depth > MIME_DEPTH_MAX) {
		return 0;
	}
	if (p->parent &&
	        (p->hdr_off < p->parent->body_off ||
	                p->body_off + p->body_len > p->parent->body_off + p->parent->body_len)) {
		return 0;
	}
	unsigned n = 0;
	for (const struct mime_part *c = p->child; c; c = c->next, n++) {
		if (c->parent != p || c->depth != p->depth + 1 || !tree_ok(m, c, count)) {
			return 0;
		}
	}
	return n == p->nchild;
}

/* Uses everything on a parsed message; what ASan and UBSan watch. */
static int exercise(const char *msg, size_t len, struct mime_msg *m)
{
	struct buf b;
	unsigned count = 0;
	buf_init(&b);
	mime_parse(m, msg, len);
	if (!tree_ok(m, m->root, &count) || count != m->nparts || m->nparts > MIME_PARTS_MAX) {
		return 0;
	}
	mime_bodystructure(m, m->root, 1, &b);
	mime_envelope(m, m->root, &b);
	mime_header_text(m, NULL, "subject", &b);
	for (const struct mime_part *p = m->root; p; p = p->child) {
		mime_body_text(m, p, &b);
	}
	if (mime_header_get(m, NULL, "date", &b)) {
		int64_t t;
		mime_date_parse(b.data, b.len, &t, NULL);
	}
	buf_free(&b);
	return 1;
}

static void multiparts_nested_past_the_limit_stop_at_the_limit(void)
{
	struct buf msg;
	struct mime_msg m;
	buf_init(&msg);
	for (int i = 0; i < 200; i++) {
		buf_printf(
		        &msg, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	}
	buf_puts(&msg, "\r\nleaf\r\n");
	ASSERT(exercise(msg.data, msg.len, &m));
	ASSERT(m.limits & MIME_LIMIT_DEPTH);
	ASSERT_EQ(m.nparts, MIME_DEPTH_MAX + 1);
	mime_free(&m);
	/* the same with message/rfc822 inside message/rfc822 */
	buf_reset(&msg);
	for (int i = 0; i < 5000; i++) {
		buf_puts(&msg, "Content-Type: message/rfc822\r\n\r\n");
	}
	ASSERT(exercise(msg.data, msg.len, &m));
	ASSERT(m.limits & MIME_LIMIT_DEPTH);
	ASSERT_EQ(m.nparts, MIME_DEPTH_MAX + 1);
	mime_free(&m);
	buf_free(&msg);
}

static void a_boundary_that_never_appears_leaves_one_leaf(void)
{
	static const char msg[] = "Content-Type: multipart/mixed; boundary=\"never\"\r\n"
	                          "\r\n"
	                          "--nevermind\r\n"
	                          "text\r\n";
	struct mime_msg m;
	ASSERT(exercise(msg, strlen(msg), &m));
	ASSERT_EQ(m.nparts, 1);
	ASSERT(m.root->child == NULL && m.root->flags == 0);
	ASSERT(part(&m, "1") == m.root);
	ASSERT_STR(bodystructure(&m, m.root, 0),
	        "(\"multipart\" \"mixed\" (\"boundary\" \"never\") NIL NIL \"7bit\" 19)");
	mime_free(&m);
	/* no boundary parameter at all, and one too long to be real */
	static const char nob[] = "Content-Type: multipart/mixed\r\n\r\n--\r\n";
	ASSERT(exercise(nob, strlen(nob), &m));
	ASSERT_EQ(m.nparts, 1);
	mime_free(&m);
}

static void ten_thousand_headers_parse_within_limits(void)
{
	struct buf msg;
	struct mime_msg m;
	struct buf v;
	buf_init(&msg);
	buf_init(&v);
	for (int i = 0; i < 10000; i++) {
		buf_printf(&msg, "X-H%d: v\r\n", i);
	}
	buf_puts(&msg, "Subject: late\r\n\r\nbody\r\n");
	ASSERT(exercise(msg.data, msg.len, &m));
	ASSERT(m.limits & MIME_LIMIT_HEADERS);
	ASSERT_STR(body_of(&m, m.root), "body\r\n");
	ASSERT(mime_header_get(&m, NULL, "x-h999", &v));
	ASSERT(!mime_header_get(&m, NULL, "x-h1000", &v));
	ASSERT(!mime_header_get(&m, NULL, "subject", &v)); /* past MIME_HEADERS_MAX */
	unsigned n = 0;
	struct mime_headers it;
	struct mime_header h;
	mime_headers_part(&it, &m, NULL);
	while (mime_headers_next(&it, &h)) {
		n++;
	}
	ASSERT_EQ(n, MIME_HEADERS_MAX);
	mime_free(&m);
	buf_free(&v);
	buf_free(&msg);
}

static void more_parts_than_the_limit_are_cut(void)
{
	struct buf msg;
	struct mime_msg m;
	buf_init(&msg);
	buf_puts(&msg, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < 3000; i++) {
		buf_puts(&msg, "--p\r\n\r\nx\r\n");
	}
	buf_puts(&msg, "--p--\r\n");
	ASSERT(exercise(msg.data, msg.len, &m));
	ASSERT(m.limits & MIME_LIMIT_PARTS);
	ASSERT_EQ(m.nparts, MIME_PARTS_MAX);
	ASSERT_EQ(m.root->nchild, MIME_PARTS_MAX - 1);
	mime_free(&m);
	buf_free(&msg);
}

static void nul_bytes_are_data_not_ends(void)
{
	static const char msg[] = "Subject: a\0b\r\n"
	                          "Content-Type: multipart/mixed; boundary=\"n\0\"\r\n"
	                          "\r\n"
	                          "--n \r\n"
	                          "\r\n"
	                          "bo\0dy\r\n"
	                          "--n --\r\n";
	struct mime_msg m;
	struct buf v;
	buf_init(&v);
	ASSERT(exercise(msg, sizeof msg - 1, &m));
	ASSERT(mime_header_get(&m, NULL, "subject", &v));
	ASSERT_EQ(v.len, 3);
	ASSERT_STR(v.data, "a b");
	/* the NUL became a space inside the quotes: boundary "n " matches the
	 * delimiter line "--n " */
	ASSERT_EQ(m.root->nchild, 1);
	const struct mime_part *p = part(&m, "1");
	ASSERT_EQ(p->body_len, 5);
	ASSERT(memcmp(m.buf + p->body_off, "bo\0dy", 5) == 0);
	buf_free(&v);
	mime_free(&m);
}

static void very_long_header_lines_parse(void)
{
	struct buf msg;
	struct mime_msg m;
	struct buf v;
	buf_init(&msg);
	buf_init(&v);
	size_t n = 1 << 20;
	buf_puts(&msg, "Subject: ");
	for (size_t i = 0; i < n; i++) {
		buf_append(&msg, "a", 1);
	}
	buf_puts(&msg, "\r\nContent-Type: text/plain; charset=\"");
	for (size_t i = 0; i < n; i++) {
		buf_append(&msg, i % 2 ? "(" : "\\", 1);
	}
	buf_puts(&msg, "\r\nTo: ");
	for (size_t i = 0; i < n / 4; i++) {
		buf_append(&msg, "<a@", 3);
	}
	buf_puts(&msg, "\r\nDate: ");
	for (size_t i = 0; i < n; i++) {
		buf_append(&msg, "(", 1);
	}
	buf_puts(&msg, "\r\nContent-Disposition: a");
	for (size_t i = 0; i < 1000; i++) {
		buf_printf(&msg, "; p*%zu*=%%", i);
	}
	buf_puts(&msg, "\r\n\r\nbody");
	ASSERT(exercise(msg.data, msg.len, &m));
	ASSERT(mime_header_get(&m, NULL, "subject", &v));
	ASSERT_EQ(v.len, n);
	ASSERT(mime_part_is(m.root, "text", "plain"));
	ASSERT(m.root->ndisp_params <= MIME_PARAMS_MAX);
	ASSERT_STR(body_of(&m, m.root), "body");
	mime_free(&m);
	buf_free(&v);
	buf_free(&msg);
}

/* A tiny deterministic fuzzer: byte flips, cuts and splices of the sample
 * messages. The real one is tests/fuzz_mime.c (libFuzzer). */
static void mutated_messages_parse_without_harm(void)
{
	const char *seeds[] = {simple_msg, alternative_msg, nested_msg};
	static const char junk[] = "\r\n--outer\r\n--inner--=?\"\\()<>;:@\0";
	uint32_t x = 12345;
	struct buf msg;
	buf_init(&msg);
	for (int round = 0; round < 3000; round++) {
		const char *s = seeds[round % 3];
		buf_reset(&msg);
		buf_puts(&msg, s);
		for (int k = 0; k < 1 + round % 8; k++) {
			x = x * 1103515245 + 12345;
			size_t at = (x >> 8) % (msg.len + 1);
			x = x * 1103515245 + 12345;
			if (x & 0x100) {
				msg.data[at < msg.len ? at : 0] = junk[(x >> 9) % (sizeof junk)];
			} else if (x & 0x200) {
				msg.len = at; /* cut */
			} else {
				/* splice: repeat a piece */
				size_t from = (x >> 10) % (msg.len + 1), len = (x >> 20) % 64;
				if (from + len > msg.len) {
					len = msg.len - from;
				}
				char tmp[64];
				memcpy(tmp, msg.data + from, len);
				buf_append(&msg, tmp, len);
			}
		}
		struct mime_msg m;
		ASSERT(exercise(msg.data, msg.len, &m));
		mime_free(&m);
	}
	buf_free(&msg);
}

void tests_mime(void)
{
	RUN(a_simple_text_message_is_one_text_plain_part,
	        "mime: a simple text message is one text/plain part");
	RUN(header_fields_come_raw_in_order_and_unfold_on_request,
	        "mime: header fields come raw and in order, and unfold on request");
	RUN(multipart_alternative_splits_into_text_and_html,
	        "mime: multipart/alternative splits into a text and an html part");
	RUN(bare_lf_lines_parse_like_crlf_ones, "mime: bare LF lines parse like CRLF ones");
	RUN(nested_multipart_holds_an_attachment_and_a_message,
	        "mime: a nested multipart/mixed holds a base64 attachment and a message/rfc822");
	RUN(a_missing_final_boundary_ends_the_last_part_at_the_end,
	        "mime: a missing final boundary ends the last part at the end of the message");
	RUN(boundary_lines_match_whole_not_by_prefix,
	        "mime: boundary lines match whole, not by prefix");
	RUN(quoted_boundaries_and_rfc2231_parameters_decode,
	        "mime: quoted boundaries and RFC 2231 parameters decode");
	RUN(encoded_word_subjects_decode_to_utf8, "mime: encoded-word subjects decode to UTF-8");
	RUN(quoted_printable_decodes_known_answers, "mime: quoted-printable decodes known answers");
	RUN(base64_decodes_known_answers_and_skips_junk,
	        "mime: base64 decodes known answers and skips junk");
	RUN(address_lists_parse_groups_quoted_names_and_comments,
	        "mime: address lists parse groups, quoted names and comments");
	RUN(dates_parse_with_and_without_weekday_and_obsolete_zones,
	        "mime: dates parse with and without a weekday and with obsolete zones");
	RUN(line_counts_follow_imap, "mime: line counts are what IMAP reports");
	RUN(an_encoded_message_part_still_has_envelope_body_and_lines,
	        "mime: an encoded message/rfc822 still has an envelope, a body and lines");
	RUN(content_language_md5_and_location_reach_bodystructure,
	        "mime: Content-Language, -MD5 and -Location reach BODYSTRUCTURE");
	RUN(envelope_groups_and_8bit_values_are_valid_imap,
	        "mime: ENVELOPE writes groups, defaults and 8-bit values as valid IMAP");
	RUN(a_digest_defaults_its_parts_to_message_rfc822,
	        "mime: a digest defaults its parts to message/rfc822");
	RUN(multiparts_nested_past_the_limit_stop_at_the_limit,
	        "mime: multiparts nested past the limit stop at the limit");
	RUN(a_boundary_that_never_appears_leaves_one_leaf,
	        "mime: a boundary that never appears leaves one leaf");
	RUN(ten_thousand_headers_parse_within_limits, "mime: 10,000 headers parse within limits");
	RUN(more_parts_than_the_limit_are_cut, "mime: more parts than the limit are cut");
	RUN(nul_bytes_are_data_not_ends, "mime: NUL bytes are data, not ends");
	RUN(very_long_header_lines_parse, "mime: very long header lines parse");
	RUN(mutated_messages_parse_without_harm, "mime: mutated messages parse without harm");
}
