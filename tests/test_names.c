/* test_names.c - folders' file names (names.c): readable, escaped only
 * where unsafe, distinct on case-insensitive file systems, and old-named
 * stores renamed at start. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static char err[256];
static char dir[600]; /* the storage folder of the current test */

static int setup(void)
{
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	return mm_open(dir, err, sizeof err) == 0 &&
	                       mm_domain_add("example.org", err, sizeof err) == 0 &&
	                       mm_folder_create("example.org", "john", "INBOX") >= 0
	               ? 0
	               : -1;
}

static void fpath(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/mail/example.org/john/%s", dir, name);
}

static int exists(const char *name)
{
	char path[900];
	struct os_stat st;
	fpath(path, sizeof path, name);
	return os_stat(path, &st) == 0;
}

/* The file name a new folder gets where no other folder is. */
static const char *file_of(const char *folder)
{
	static char out[MM_FOLDER_FS_MAX + 1];
	return mm__folder_file("/nonexistent/dir", folder, out, sizeof out) == 0 ? out : "(none)";
}

static void readable_known_answers(void)
{
	ASSERT_STR(file_of("Sent"), "Sent");
	ASSERT_STR(file_of("Work.2026"), "Work.2026");
	ASSERT_STR(file_of("Sent Messages"), "Sent Messages");
	ASSERT_STR(file_of("[Gmail]"), "[Gmail]");
	ASSERT_STR(file_of("a:b*c?d\"e<f>g|h\\"), "a%3Ab%2Ac%3Fd%22e%3Cf%3Eg%7Ch%5C");
	ASSERT_STR(file_of("100%~"), "100%25%7E");
	ASSERT_STR(file_of("x."), "x%2E");
	ASSERT_STR(file_of("x "), "x%20");
	ASSERT_STR(file_of("CON"), "%43ON");
	ASSERT_STR(file_of("nul.txt"), "%6Eul.txt");
	ASSERT_STR(file_of("Com1"), "%43om1");
	ASSERT_STR(file_of("console"), "console");
	/* modified UTF-7, as IMAP4rev1 clients send and the store keeps it */
	ASSERT_STR(file_of("Entw&APw-rfe"), "Entw\xc3\xbcrfe");
	ASSERT_STR(file_of("A&-B"), "A&B");
	ASSERT_STR(file_of("&ZeVnLIqe-"), "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	/* not modified UTF-7: '&' and non-ASCII stay escaped */
	ASSERT_STR(file_of("Entw\xc3\xbcrfe"), "Entw%C3%BCrfe");
	ASSERT_STR(file_of("a&b"), "a%26b");
	ASSERT_STR(file_of("a&Zm9v"), "a%26Zm9v");
}

static void round_trip(void)
{
	static const char *const names[] = {"Sent", "sent", "Work.2026", "a:b*c?", "100%~", "x.",
	        "x ", "CON", "nul.txt", "Entw&APw-rfe", "A&-B", "&ZeVnLIqe-", "Entw\xc3\xbcrfe",
	        "a&b", "a&Zm9v", "-&-", "%41", "~", "a~", "Archive.2026.Q1"};
	char out[MM_FOLDER_MAX + 1], c[MM_FOLDER_FS_MAX + 1];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const char *file = file_of(names[i]);
		ASSERT_EQ(mm__file_folder(file, strlen(file), out, sizeof out), 0);
		ASSERT_STR(out, names[i]);
		/* and the collision form */
		ASSERT_EQ(mm__fs_name(names[i], c, sizeof c), 0);
		strcat(c, "~");
		ASSERT_EQ(mm__file_folder(c, strlen(c), out, sizeof out), 0);
		ASSERT_STR(out, names[i]);
	}
	/* every short name over a small alphabet comes back as itself */
	static const char abc[] = "aA&-.%~ :\xc3\xbc";
	size_t k = sizeof abc - 1;
	for (size_t n = 0; n < k * k * k; n++) {
		char name[4] = {abc[n % k], abc[n / k % k], abc[n / k / k], 0};
		if (!mm_valid_folder(name)) {
			continue;
		}
		const char *file = file_of(name);
		ASSERT_EQ(mm__file_folder(file, strlen(file), out, sizeof out), 0);
		ASSERT_STR(out, name);
	}
}

static void not_names_refused(void)
{
	char out[MM_FOLDER_MAX + 1];
	static const char *const files[] = {"%53ent", "x%2e", "x.", "a%2", "%2Ex", "con", "a%3",
	        "~", "sent~~", "Entw\xc3", "a/b"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		ASSERT_EQ(mm__file_folder(files[i], strlen(files[i]), out, sizeof out), -1);
	}
	/* names too long once escaped are no folders (NO [CANNOT] in IMAP) */
	char big[MM_FOLDER_MAX + 1];
	memset(big, 'A', 100);
	big[100] = '\0';
	ASSERT(!mm_valid_folder(big)); /* its collision form is 300 bytes */
	memset(big, 'a', 200);
	big[200] = '\0';
	ASSERT(mm_valid_folder(big));
}

static int count_of(const char *folder, uint32_t *n)
{
	struct mm_folder *f = NULL;
	if (mm_folder_open("example.org", "john", folder, 0, &f) != 0) {
		return -1;
	}
	*n = mm_folder_count(f);
	mm_folder_close(f);
	return 0;
}

static int add_messages(const char *folder, int n)
{
	struct mm_folder *f = NULL;
	if (mm_folder_open("example.org", "john", folder, 1, &f) != 0) {
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		struct spool sp;
		spool_init(&sp, dir);
		spool_write(&sp, "Subject: x\r\n\r\nbody\r\n", 20);
		rc = mm_folder_append(f, &sp, "a@example.net", 1795000000, MM_SEEN, 0, NULL);
		spool_free(&sp);
	}
	mm_folder_close(f);
	return rc;
}

static int collect(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, "|");
	return 0;
}

static void case_collisions(void)
{
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(add_messages("Work", 1), 0);
	ASSERT_EQ(add_messages("work", 2), 0);
	ASSERT_EQ(add_messages("WORK", 3), 0);
	ASSERT_EQ(add_messages("&AMk-t&AOk-", 4), 0); /* Été */
	ASSERT_EQ(add_messages("&AOk-t&AOk-", 5), 0); /* été */
	ASSERT(exists("Work.mbox"));
	ASSERT(exists("work~.mbox"));
	ASSERT(exists("%57%4F%52%4B~.mbox"));
	ASSERT(exists("\xc3\x89t\xc3\xa9.mbox"));
	ASSERT(exists("%26%41%4Fk-t%26%41%4Fk-~.mbox"));
	uint32_t n = 0;
	ASSERT_EQ(count_of("Work", &n), 0);
	ASSERT_EQ(n, 1);
	ASSERT_EQ(count_of("work", &n), 0);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(count_of("WORK", &n), 0);
	ASSERT_EQ(n, 3);
	ASSERT_EQ(count_of("&AMk-t&AOk-", &n), 0);
	ASSERT_EQ(n, 4);
	ASSERT_EQ(count_of("&AOk-t&AOk-", &n), 0);
	ASSERT_EQ(n, 5);
	ASSERT_EQ(count_of("wORK", &n), -1); /* not there, though its readable name meets one */
	char out[512] = "";
	ASSERT_EQ(mm_folder_list("example.org", "john", collect, out), 0);
	ASSERT_STR(out, "INBOX|&AMk-t&AOk-|&AOk-t&AOk-|WORK|Work|work|");
	/* renamed and deleted by name, each its own files */
	ASSERT_EQ(mm_folder_rename("example.org", "john", "work", "Work.old"), 0);
	ASSERT(exists("Work.old.mbox") && !exists("work~.mbox"));
	ASSERT_EQ(mm_folder_delete("example.org", "john", "WORK"), 0);
	ASSERT(!exists("%57%4F%52%4B~.mbox") && exists("Work.mbox"));
	ASSERT_EQ(count_of("Work.old", &n), 0);
	ASSERT_EQ(n, 2);
	mm_close();
}

/* Renames name.* (new) to old.* as a store of before had them. */
static void make_old(const char *name, const char *old, int mbox_too)
{
	static const char *const ext[] = {".idx", ".lock", ".mbox"};
	char a[1000], b[1000], x[300];
	for (size_t i = 0; i < (mbox_too ? 3u : 2u); i++) {
		snprintf(x, sizeof x, "%s%s", name, ext[i]);
		fpath(a, sizeof a, x);
		snprintf(x, sizeof x, "%s%s", old, ext[i]);
		fpath(b, sizeof b, x);
		os_rename_atomic(a, b);
	}
}

static uint32_t uidvalidity_of(const char *folder)
{
	struct mm_folder *f = NULL;
	if (mm_folder_open("example.org", "john", folder, 0, &f) != 0) {
		return 0;
	}
	uint32_t v = mm_folder_uidvalidity(f);
	mm_folder_close(f);
	return v;
}

static void old_names_renamed(void)
{
	ASSERT_EQ(setup(), 0);
	ASSERT_EQ(add_messages("Sent", 2), 0);
	ASSERT_EQ(add_messages("Entw&APw-rfe", 3), 0);
	ASSERT_EQ(add_messages("lists", 1), 0);
	ASSERT_EQ(add_messages("Half", 1), 0);
	uint32_t v = uidvalidity_of("Sent"), v2 = uidvalidity_of("Half");
	mm_close();
	make_old("Sent", "%53ent", 1);
	make_old("Entw\xc3\xbcrfe", "%45ntw%26%41%50w-rfe", 1);
	make_old("Half", "%48alf", 0); /* killed after the index moved */
	ASSERT(exists("%53ent.mbox") && !exists("Sent.mbox"));
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0);
	uint32_t n = 0;
	ASSERT_EQ(count_of("Sent", &n), -1); /* as a new server sees it before */
	mm_upgrade_names();
	ASSERT(exists("Sent.mbox") && exists("Sent.idx") && exists("Sent.lock"));
	ASSERT(!exists("%53ent.mbox") && !exists("%53ent.idx") && !exists("%53ent.lock"));
	ASSERT(exists("Entw\xc3\xbcrfe.mbox") && exists("lists.mbox") && exists("Half.mbox"));
	ASSERT(!exists("%48alf.idx") && !exists("%48alf.lock"));
	ASSERT_EQ(count_of("Sent", &n), 0);
	ASSERT_EQ(n, 2);
	ASSERT_EQ(uidvalidity_of("Sent"), v); /* the index came along: not rebuilt */
	ASSERT_EQ(uidvalidity_of("Half"), v2);
	ASSERT_EQ(count_of("Entw&APw-rfe", &n), 0);
	ASSERT_EQ(n, 3);
	struct mm_folder *f = NULL;
	struct mm_msg m;
	ASSERT_EQ(mm_folder_open("example.org", "john", "Sent", 0, &f), 0);
	ASSERT_EQ(mm_folder_get(f, 1, &m), 0);
	ASSERT(m.flags & MM_SEEN);
	mm_folder_close(f);
	/* a second run has nothing to do; a clash is left alone, not overwritten */
	mm_upgrade_names();
	ASSERT_EQ(add_messages("Trash", 1), 0);
	mm_close();
	make_old("Sent", "%54rash", 1);
	ASSERT_EQ(mm_open(dir, err, sizeof err), 0);
	mm_upgrade_names();
	ASSERT(exists("%54rash.mbox") && exists("Trash.mbox"));
	ASSERT_EQ(count_of("Trash", &n), 0);
	ASSERT_EQ(n, 1);
	mm_close();
}

void tests_names(void)
{
	RUN(readable_known_answers,
	        "folder files are named as the folder is, unsafe bytes escaped");
	RUN(round_trip, "every folder's file name, either form, reads back as the folder");
	RUN(not_names_refused, "file names that no folder has are not taken for folders");
	RUN(case_collisions, "folders that differ only in case get files distinct without case");
	RUN(old_names_renamed, "old-named folders are renamed at start, index and flags kept");
}
