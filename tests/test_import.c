/* test_import.c - the flags rumble import reads from an mbox's state
 * fields and a Maildir name's info, and the info rumble export writes. */
#include <stdio.h>
#include <string.h>

#include "import.h"
#include "tests/unit.h"

static uint32_t field(const char *line, int *dropped)
{
	uint32_t fl = 0;
	*dropped = import_mbox_field(line, strlen(line), &fl);
	return fl;
}

static void mbox_status_fields_give_flags_and_are_dropped(void)
{
	static const struct {
		const char *line;
		int dropped;
		uint32_t flags;
	} cases[] = {
	        {"Status: RO\n", 1, MM_SEEN},
	        {"Status: O\r\n", 1, 0},
	        {"status:R", 1, MM_SEEN},
	        {"X-Status: AF\n", 1, MM_ANSWERED | MM_FLAGGED},
	        {"X-Status: TD\n", 1, MM_DRAFT | MM_DELETED},
	        {"X-Status: \n", 1, 0},
	        {"X-Mozilla-Status: 0001\n", 1, MM_SEEN},
	        {"X-Mozilla-Status: 000f\n", 1, MM_SEEN | MM_ANSWERED | MM_FLAGGED | MM_DELETED},
	        {"X-Mozilla-Status: 0004\n", 1, MM_FLAGGED},
	        {"X-Mozilla-Status2: 00000000\n", 1, 0},
	        {"X-Keywords: $Label1\n", 1, 0},
	        {"X-UID: 4\n", 1, 0},
	        {"X-IMAPbase: 1 2\n", 1, 0},
	        {"Subject: Status: RO\n", 0, 0},
	        {"X-Statuses: R\n", 0, 0},
	        {"Status RO\n", 0, 0},
	        {"From: R\n", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int dropped;
		uint32_t fl = field(cases[i].line, &dropped);
		if (dropped != cases[i].dropped || fl != cases[i].flags) {
			unit_fail(__FILE__, __LINE__, cases[i].line);
		}
	}
}

static void maildir_names_give_flags(void)
{
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:2,S"), MM_SEEN);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:2,DFRST"),
	        MM_DRAFT | MM_FLAGGED | MM_ANSWERED | MM_SEEN | MM_DELETED);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host,S=123:2,FS"), MM_FLAGGED | MM_SEEN);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:2,"), 0);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:2,ab"), 0); /* keywords */
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:2,Rab"), MM_ANSWERED);
	ASSERT_EQ(import_maildir_letters("1700000000.M1P2.host:2,Rab"), 3);
	ASSERT_EQ(import_maildir_letters("1700000000.M1P2.host:2,Sz"), 1u << 25);
	ASSERT_EQ(import_maildir_letters("1700000000.M1P2.host,abc"), 0);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host;2,R"), MM_ANSWERED); /* Windows */
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host!2,F"), MM_FLAGGED);
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host"), 0);     /* new/ */
	ASSERT_EQ(import_maildir_flags("1700000000.M1P2.host:1,S"), 0); /* experimental info */
	ASSERT_EQ(import_maildir_flags("1700000002.host2,S"), 0);       /* no separator */
}

static void maildir_info_is_written_in_ascii_order(void)
{
	char info[40];
	import_maildir_info(
	        MM_SEEN | MM_FLAGGED | MM_ANSWERED | MM_DELETED | MM_DRAFT, 0, ':', info);
	ASSERT_STR(info, ":2,DFRST");
	import_maildir_info(0, 0, ':', info);
	ASSERT_STR(info, ":2,");
	import_maildir_info(MM_SEEN | MM_ANSWERED, 0, ';', info);
	ASSERT_STR(info, ";2,RS");
	import_maildir_info(MM_FLAGGED | MM_EXPUNGED, 0, ':', info);
	ASSERT_STR(info, ":2,F");
	import_maildir_info(MM_SEEN, 1u << 0 | 1u << 2 | 1u << 25, ':', info);
	ASSERT_STR(info, ":2,Sacz");
	ASSERT_EQ(import_maildir_flags("x:2,DFRST"),
	        MM_SEEN | MM_FLAGGED | MM_ANSWERED | MM_DELETED | MM_DRAFT);
}

void tests_import(void)
{
	RUN(mbox_status_fields_give_flags_and_are_dropped,
	        "import reads flags from Status, X-Status and X-Mozilla-Status and drops the state "
	        "fields");
	RUN(maildir_names_give_flags,
	        "import reads DFRST and keyword letters from a Maildir name's :2, info");
	RUN(maildir_info_is_written_in_ascii_order, "export writes the :2, info in ASCII order");
}
