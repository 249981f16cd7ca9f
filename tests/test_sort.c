/* test_sort.c - SORT and THREAD (imap_sort.c): base subject extraction
 * (RFC 5256 2.1, known answers), the criteria's parsing, and both THREAD
 * algorithms on small synthetic mailboxes read from buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void base_subjects_are_extracted_as_rfc5256_says(void)
{
	static const struct {
		const char *in, *base;
		int reply;
	} t[] = {
	        {"Hello", "Hello", 0},
	        {"Re: Hello", "Hello", 1},
	        {"RE: re: Fwd: FW: hello", "hello", 1},
	        {"Re : Hello", "Hello", 1},
	        {"Re[2]: Hello", "Hello", 1},
	        {"Re [2] : Hello", "Hello", 1},
	        {"[list] Hello", "Hello", 0},
	        {"[list] Re: Hello", "Hello", 1},
	        {"[a]Re: [b] Re: Hello", "Hello", 1},
	        {"Re: [list] Hello", "Hello", 1},
	        {"[list]", "[list]", 0},
	        {"Re: [list]", "[list]", 1},
	        {"[a] [b]", "[b]", 0},
	        {"Hello (fwd)", "Hello", 1},
	        {"Hello (FWD) (fwd)  ", "Hello", 1},
	        {"[fwd: Hello]", "Hello", 1},
	        {"[Fwd: Re: Hello] (fwd)", "Hello", 1},
	        {"Re: [fwd: [list] Re: Hello]", "Hello", 1},
	        {"[fwd: Hello", "[fwd: Hello", 0},
	        {"Rebuild: Hello", "Rebuild: Hello", 0},
	        {"Fwdx: Hello", "Fwdx: Hello", 0},
	        {"Re:", "", 1},
	        {"(fwd)", "", 1},
	        {"", "", 0},
	        {"  Hello \t\r\n\tworld  ", "Hello world", 0},
	        {"=?utf-8?q?Re=3A_caf=C3=A9?=", "café", 1},
	        {"Re: =?iso-8859-1?q?Gr=FC=DFe?= =?utf-8?q?_aus?= Bern", "Grüße aus Bern", 1},
	        {"[bl[ob] Hello", "[bl[ob] Hello", 0},
	};
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int reply = imap_base_subject(t[i].in, strlen(t[i].in), &b);
		ASSERT_STR(b.data ? b.data : "", t[i].base);
		ASSERT_EQ(reply, t[i].reply);
	}
	buf_free(&b);
}

static void a_long_base_subject_is_cut_at_a_character(void)
{
	struct buf in, b;
	buf_init(&in), buf_init(&b);
	buf_puts(&in, "Re: x");
	for (int i = 0; i < 40000; i++) {
		buf_puts(&in, "é");
	}
	ASSERT_EQ(imap_base_subject(in.data, in.len, &b), 1);
	ASSERT_EQ(b.len, IMAP_SUBJECT_MAX - 1); /* "x" and 99 of the two-byte "é" */
	ASSERT_EQ(strlen(b.data), b.len);
	buf_free(&in), buf_free(&b);
}

/* The answer of SORT or THREAD with args ("(DATE) UTF-8", "REFERENCES
 * UTF-8") over messages msgs[0..n) (headers; seq i + 1, UID 100 + i,
 * internal date i), or the parse's return code as text. */
static const char *run(int thread, const char *args, const char *const *msgs, size_t n, int uid)
{
	static char out[1 << 20];
	struct imap_cmd c;
	struct imap_sort *x;
	uint64_t lit;
	int nonsync;
	const char *error;
	uint32_t pos = 0;
	imap_cmd_init(&c);
	imap_cmd_line(&c, args, strlen(args), &lit, &nonsync, &error);
	int rc = imap_sort_parse(&c, &pos, thread, &x);
	snprintf(out, sizeof out, "rc %d", rc);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct imap_search_msg m = {(uint32_t)i + 1, 100 + (uint32_t)i, 0, 0,
		        (uint32_t)strlen(msgs[i]), (uint32_t)n, 100 + (uint32_t)n, (int64_t)i, 0,
		        imap_src_buffer(msgs[i], strlen(msgs[i])), 0, 0, 0, NULL};
		imap_sort_add(x, &m);
		imap_src_free(m.src);
	}
	if (rc == 0) {
		struct buf b;
		buf_init(&b);
		imap_sort_put(x, uid, &b);
		snprintf(out, sizeof out, "%.*s", (int)(b.len > 2 ? b.len - 2 : 0), b.data);
		buf_free(&b);
	}
	imap_sort_free(x);
	imap_cmd_free(&c);
	return out;
}

static void sort_criteria_parse_and_order(void)
{
	static const char *const m[] = {
	        "From: Bob <bob@x.test>\r\nSubject: Re: b\r\nDate: 2 Jan 2020 00:00 +0000\r\n\r\n",
	        "From: amy@x.test\r\nSubject: a\r\nDate: 1 Jan 2020 03:00 +0300\r\n\r\nlonger "
	        "body\r\n",
	        "From: Bob <BOB@x.test>\r\nSubject: [x] B\r\n\r\n",
	        "Subject: a\r\nDate: 1 Jan 2020 00:00 +0000\r\n\r\n",
	};
	ASSERT_STR(run(0, "(DATE) UTF-8", m, 4, 0), "* SORT 3 2 4 1"); /* 3: internal date */
	ASSERT_STR(run(0, "(SUBJECT DATE) US-ASCII", m, 4, 0), "* SORT 2 4 3 1");
	ASSERT_STR(run(0, "(SUBJECT REVERSE DATE) utf-8", m, 4, 1), "* SORT 101 103 100 102");
	ASSERT_STR(run(0, "(FROM REVERSE ARRIVAL) UTF-8", m, 4, 0), "* SORT 4 2 3 1");
	ASSERT_STR(run(0, "(DISPLAYFROM) UTF-8", m, 4, 0), "* SORT 4 2 1 3");
	ASSERT_STR(run(0, "(REVERSE SIZE) UTF-8", m, 4, 0), "* SORT 2 1 4 3");
	ASSERT_STR(run(0, "(DATE) UTF-8", m, 0, 0), "* SORT");
	ASSERT_STR(run(0, "(DATE) KOI8-R", m, 4, 0), "rc -2");
	static const char *const bad[] = {"DATE UTF-8", "(REVERSE) UTF-8", "() UTF-8",
	        "(DATE BOGUS) UTF-8", "(DATE)", "(REVERSE REVERSE DATE) UTF-8", "(DATE) (UTF-8)",
	        "(DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE "
	        "DATE) UTF-8"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_STR(run(0, bad[i], m, 4, 0), "rc -1");
	}
	ASSERT_STR(run(1, "BOGUS UTF-8", m, 4, 0), "rc -1");
	ASSERT_STR(run(1, "REFERENCES X", m, 4, 0), "rc -2");
}

#define D(n) "Date: Wed, 01 Jan 2020 00:00:0" #n " +0000\r\n"

/* Parents from References and In-Reply-To, a truncated chain, a message
 * naming itself, two naming each other, a dummy pruned. */
static void references_link_parents_and_refuse_loops(void)
{
	static const char *const m[] = {
	        "Message-ID: <a@x>\r\nSubject: one\r\n" D(1) "\r\n",
	        "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nSubject: Re: one\r\n" D(2) "\r\n",
	        "Message-ID: <c@x>\r\nReferences: <b@x>\r\nSubject: Re: one\r\n" D(3) "\r\n",
	        "Message-ID: <d@x>\r\nReferences: <x@x> <d@x>\r\nSubject: other\r\n" D(4) "\r\n",
	        "Message-ID: <e@x>\r\nReferences: <f@x>\r\nSubject: loop\r\n" D(5) "\r\n",
	        "Message-ID: <f@x>\r\nReferences: <e@x>\r\nSubject: loop\r\n" D(6) "\r\n",
	};
	ASSERT_STR(run(1, "REFERENCES UTF-8", m, 6, 0), "* THREAD (1 2 3)(4)(6 5)");
	ASSERT_STR(run(1, "REFERENCES UTF-8", m, 6, 1), "* THREAD (100 101 102)(103)(105 104)");
	ASSERT_STR(run(1, "REFERENCES UTF-8", m, 0, 0), "* THREAD");
}

/* Dummies at the root: kept with two children, given up for one; then
 * threads of one base subject gathered (RFC 5256 REFERENCES step 5). */
static const char *const set_b[] = {
        "Message-ID: <p1>\r\nReferences: <root1>\r\nSubject: Hello\r\n" D(1) "\r\n",
        "Message-ID: <p2>\r\nReferences: <root1>\r\nSubject: Re: Hello\r\n" D(2) "\r\n",
        "Message-ID: <q1>\r\nReferences: <root2>\r\nSubject: Hello\r\n" D(3) "\r\n",
        "Message-ID: <q2>\r\nReferences: <root3> <mid3>\r\nSubject: Re: Hello\r\n" D(4) "\r\n",
        "Message-ID: <t1>\r\nSubject: Topic\r\n" D(5) "\r\n",
        "Message-ID: <t2>\r\nSubject: Topic\r\n" D(6) "\r\n",
        "Message-ID: <u1>\r\nSubject: Re: Other\r\n" D(7) "\r\n",
        "Message-ID: <u2>\r\nSubject: other\r\n" D(8) "\r\n",
        "Message-ID: <v>\r\nSubject: Re: Topic\r\n" D(9) "\r\n",
};

static void references_prune_dummies_and_gather_subjects(void)
{
	ASSERT_STR(
	        run(1, "REFERENCES UTF-8", set_b, 9, 0), "* THREAD ((1)(2)(3)(4))((5)(6)(9))(8 7)");
}

static void orderedsubject_threads_by_subject_then_date(void)
{
	ASSERT_STR(run(1, "ORDEREDSUBJECT UTF-8", set_b, 9, 0),
	        "* THREAD (1 (2)(3)(4))(5 (6)(9))(7 8)");
	ASSERT_STR(run(1, "orderedsubject utf-8", set_b, 2, 1), "* THREAD (100 101)");
}

/* A References field of a thousand IDs: the last ones count, and IDs of
 * no message stay bounded. */
static void long_references_stay_bounded(void)
{
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "Message-ID: <y>\r\nSubject: Re: z\r\nReferences:");
	for (int i = 0; i < 1000; i++) {
		buf_printf(&b, " <r%d@x>\r\n", i);
	}
	buf_puts(&b, " <z>\r\n" D(2) "\r\n");
	const char *m[] = {"Message-ID: <z>\r\nSubject: z\r\n" D(1) "\r\n", b.data};
	const char *out = run(1, "REFERENCES UTF-8", m, 2, 0);
	buf_free(&b);
	ASSERT_STR(out, "* THREAD (1 2)");
}

/* A reply chain and a flat thread of 20,000 messages each: no recursion
 * (the tree is walked by its links) and no walk up the chain per message. */
static void deep_and_wide_threads_are_walked_without_recursion(void)
{
	enum { N = 20000 };
	char **m = xcalloc(2 * N, sizeof *m);
	for (int i = 0; i < 2 * N; i++) {
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "Message-ID: <%d>\r\nSubject: %s\r\n", i, i < N ? "chain" : "flat");
		if (i > 0 && i != N) {
			buf_printf(&b, "In-Reply-To: <%d>\r\n", i < N ? i - 1 : N);
		}
		buf_puts(&b, "\r\n");
		m[i] = b.data;
	}
	const char *out = run(1, "REFERENCES UTF-8", (const char *const *)m, 2 * N, 0);
	for (int i = 0; i < 2 * N; i++) {
		free(m[i]);
	}
	free(m);
	ASSERT(strncmp(out, "* THREAD (1 2 3 4 5 ", 20) == 0);
	ASSERT(strstr(out, ")(20001 (20002)(20003)(20004)") != NULL);
}

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

/* 1 when out ("* THREAD ...") names 1..n once each, parentheses balanced
 * and never empty. */
static int thread_well_formed(const char *out, int n)
{
	char seen[64] = {0};
	int depth = 0, count = 0;
	for (const char *p = out + 8; *p; p++) {
		if (*p == '(') {
			depth++;
			if (p[1] == ')') {
				return 0;
			}
		} else if (*p == ')' && --depth < 0) {
			return 0;
		} else if (*p >= '0' && *p <= '9') {
			int v = (int)strtol(p, (char **)&p, 10);
			p--;
			if (v < 1 || v > n || seen[v]++) {
				return 0;
			}
			count++;
		}
	}
	return depth == 0 && count == n;
}

/* Random mailboxes of tangled references (loops, self-references,
 * shared and missing parents, duplicate IDs) and a few subjects: every
 * message comes out once, in a well-formed answer. */
static void random_references_give_well_formed_threads(void)
{
	static const char *const subj[] = {
	        "a", "Re: a", "[l] Fwd: a", "b", "Re: b (fwd)", "", "[x]"};
	unsigned seed = 1;
	char text[40][256];
	const char *m[40];
	for (int round = 0; round < 300; round++) {
		int n = 1 + (int)(rnd(&seed) % 40);
		for (int i = 0; i < n; i++) {
			int k = snprintf(text[i], sizeof text[i],
			        "Message-ID: <%u>\r\nSubject: %s\r\n", rnd(&seed) % 30,
			        subj[rnd(&seed) % 7]);
			k += snprintf(text[i] + k, sizeof text[i] - (size_t)k,
			        "Date: 1 Jan 2020 00:%02u +0000\r\n%s", rnd(&seed) % 60,
			        rnd(&seed) % 3 ? "References:" : "In-Reply-To:");
			for (unsigned r = rnd(&seed) % 5; r > 0; r--) {
				k += snprintf(text[i] + k, sizeof text[i] - (size_t)k, " <%u>",
				        rnd(&seed) % 30);
			}
			snprintf(text[i] + k, sizeof text[i] - (size_t)k, "\r\n\r\n");
			m[i] = text[i];
		}
		ASSERT(thread_well_formed(run(1, "REFERENCES UTF-8", m, (size_t)n, 0), n));
		ASSERT(thread_well_formed(run(1, "ORDEREDSUBJECT UTF-8", m, (size_t)n, 0), n));
	}
}

void tests_sort(void)
{
	RUN(base_subjects_are_extracted_as_rfc5256_says,
	        "sort base subjects are extracted as RFC 5256 says");
	RUN(a_long_base_subject_is_cut_at_a_character,
	        "sort a long base subject is cut at a character");
	RUN(sort_criteria_parse_and_order, "sort criteria parse and order");
	RUN(references_link_parents_and_refuse_loops,
	        "thread references link parents and refuse loops");
	RUN(references_prune_dummies_and_gather_subjects,
	        "thread references prune dummies and gather subjects");
	RUN(orderedsubject_threads_by_subject_then_date,
	        "thread orderedsubject threads by subject then date");
	RUN(long_references_stay_bounded, "thread long references stay bounded");
	RUN(random_references_give_well_formed_threads,
	        "thread random references give well-formed threads");
	RUN(deep_and_wide_threads_are_walked_without_recursion,
	        "thread deep and wide threads are walked without recursion");
}
