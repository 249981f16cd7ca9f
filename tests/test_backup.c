/* test_backup.c - the tar writer and reader of `rumble backup` and
 * `rumble restore` (backup.c): round trips, the header's fields, and the
 * members a restore refuses. */
#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "tests/unit.h"

static char err[512];

/* A new empty archive file open for writing and reading. */
static FILE *archive(void)
{
	char path[700];
	snprintf(path, sizeof path, "%s/a.tar", unit_tmpdir());
	return os_fopen(path, "w+b");
}

/* Sets the header's checksum after a test changed it. */
static void sum_block(unsigned char *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (int i = 0; i < TAR_BLOCK; i++) {
		sum += h[i];
	}
	snprintf((char *)h + 148, 8, "%06o", sum);
}

static int member(struct tar *t, const char *name, int type, const char *data)
{
	size_t n = data ? strlen(data) : 0;
	return backup_tar_header(t, name, type, n, 1700000000) | backup_tar_write(t, data, n) |
	       backup_tar_pad(t, n);
}

static void short_and_long_names_folders_and_data_read_back(void)
{
	char long_name[300], data[2000], got[2000];
	struct tar t = {archive(), 0, 0, 0};
	struct tar_member m;
	memset(long_name, 'n', sizeof long_name);
	memcpy(long_name, "storage/", 8);
	long_name[sizeof long_name - 1] = '\0';
	memset(data, 'd', sizeof data);
	data[sizeof data - 1] = '\0';
	ASSERT(t.fp);
	ASSERT_EQ(member(&t, "storage/mail/", TAR_DIR, NULL), 0);
	ASSERT_EQ(member(&t, "storage/mail/INBOX.mbox", TAR_FILE, data), 0);
	ASSERT_EQ(member(&t, long_name, TAR_FILE, "abc"), 0);
	ASSERT_EQ(member(&t, "storage/empty", TAR_FILE, ""), 0);
	ASSERT_EQ(backup_tar_finish(&t), 0);
	ASSERT_EQ(t.pos % (20 * TAR_BLOCK), 0);
	rewind(t.fp);
	struct tar r = {t.fp, 0, 0, 0};
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 1);
	ASSERT_STR(m.name, "storage/mail"); /* the trailing '/' goes */
	ASSERT_EQ(m.type, TAR_DIR);
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 1);
	ASSERT_STR(m.name, "storage/mail/INBOX.mbox");
	ASSERT_EQ(m.size, strlen(data));
	ASSERT_EQ(m.mtime, 1700000000);
	ASSERT_EQ(backup_tar_read(&r, got, 1000), 1000);
	ASSERT_EQ(backup_tar_read(&r, got + 1000, sizeof got - 1000), strlen(data) - 1000);
	ASSERT_EQ(backup_tar_read(&r, got, sizeof got), 0);
	ASSERT(!memcmp(got, data, 999) && !memcmp(got + 1000, data, 999));
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 1);
	ASSERT_STR(m.name, long_name); /* through the pax header */
	ASSERT_EQ(m.size, 3);
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 1); /* "abc" skipped unread */
	ASSERT_STR(m.name, "storage/empty");
	ASSERT_EQ(m.size, 0);
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 0);
	fclose(t.fp);
}

static void headers_have_ustar_fields_and_a_valid_checksum(void)
{
	unsigned char h[TAR_BLOCK], copy[TAR_BLOCK];
	struct tar t = {archive(), 0, 0, 0};
	ASSERT(t.fp);
	ASSERT_EQ(member(&t, "storage/accounts", TAR_FILE, "0123456789"), 0);
	rewind(t.fp);
	ASSERT_EQ(fread(h, 1, sizeof h, t.fp), sizeof h);
	ASSERT_STR((char *)h, "storage/accounts");
	ASSERT(!memcmp(h + 100, "0000600", 8));      /* mode, NUL-ended */
	ASSERT(!memcmp(h + 124, "00000000012", 12)); /* size 10 in octal */
	ASSERT(!memcmp(h + 136, "14524770400", 12)); /* mtime 1700000000 */
	ASSERT(!memcmp(h + 257,
	        "ustar\0"
	        "00",
	        8));
	ASSERT_EQ(h[156], '0');
	memcpy(copy, h, sizeof h);
	sum_block(copy);
	ASSERT(!memcmp(copy, h, 155)); /* the writer's checksum is the sum */
	ASSERT_EQ(h[155], ' ');
	fclose(t.fp);
}

static void names_that_leave_the_folder_are_refused(void)
{
	static const struct {
		const char *name;
		int ok;
	} names[] = {
	        {"a", 1},
	        {"storage/mail/x.mbox", 1},
	        {"storage/mail/", 1},
	        {"a/.hidden", 1},
	        {"a/b..c", 1},
	        {"", 0},
	        {"/etc/passwd", 0},
	        {"../a", 0},
	        {"a/../../b", 0},
	        {"a/..", 0},
	        {".", 0},
	        {"./a", 0},
	        {"a//b", 0},
	        {"a\\b", 0},
	        {"c:x", 0},
	        {"/", 0},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (backup_tar_name_ok(names[i].name) != names[i].ok) {
			ASSERT_STR(names[i].name, "(judged otherwise)");
		}
	}
}

/* An archive of one member whose header h the test changed; what next says. */
static int read_patched(void (*patch)(unsigned char *h), const char *name, const char *data)
{
	unsigned char h[TAR_BLOCK];
	struct tar t = {archive(), 0, 0, 0};
	struct tar_member m;
	if (!t.fp || member(&t, name, TAR_FILE, data) != 0 || backup_tar_finish(&t) != 0) {
		return -2;
	}
	rewind(t.fp);
	if (fread(h, 1, sizeof h, t.fp) != sizeof h) {
		return -2;
	}
	patch(h);
	rewind(t.fp);
	fwrite(h, 1, sizeof h, t.fp);
	rewind(t.fp);
	struct tar r = {t.fp, 0, 0, 0};
	int rc = backup_tar_next(&r, &m, err, sizeof err);
	fclose(t.fp);
	return rc;
}

static void to_symlink(unsigned char *h)
{
	h[156] = '2';
	memcpy(h + 157, "/etc/passwd", 12);
	sum_block(h);
}

static void to_hardlink(unsigned char *h)
{
	h[156] = '1';
	sum_block(h);
}

static void to_bad_sum(unsigned char *h)
{
	h[0] ^= 1;
}

static void to_parent(unsigned char *h)
{
	memcpy(h, "../evil", 8);
	sum_block(h);
}

static void to_huge_meta(unsigned char *h)
{
	h[156] = 'x';
	memcpy(h + 124, "77777777777", 12);
	sum_block(h);
}

static void unchanged(unsigned char *h)
{
	(void)h;
}

static void links_bad_headers_unsafe_names_and_huge_sizes_are_refused(void)
{
	ASSERT_EQ(read_patched(unchanged, "storage/x", "data"), 1);
	ASSERT_EQ(read_patched(to_symlink, "storage/x", ""), -1);
	ASSERT(strstr(err, "links"));
	ASSERT_EQ(read_patched(to_hardlink, "storage/x", ""), -1);
	ASSERT_EQ(read_patched(to_bad_sum, "storage/x", "data"), -1);
	ASSERT(strstr(err, "not a tar header"));
	ASSERT_EQ(read_patched(to_parent, "storage/x", "data"), -1);
	ASSERT(strstr(err, "unsafe"));
	ASSERT_EQ(read_patched(to_huge_meta, "storage/x", "data"), -1);
	/* a pax header that names a path outside, and one with a huge size */
	char pax_name[200];
	memset(pax_name, 'p', sizeof pax_name);
	memcpy(pax_name, "../", 3);
	pax_name[sizeof pax_name - 1] = '\0';
	ASSERT_EQ(read_patched(unchanged, pax_name, "data"), -1);
	ASSERT(strstr(err, "unsafe"));
}

static void a_pax_size_over_the_limit_and_a_gnu_long_name_read_as_they_should(void)
{
	char rec[128], name[200];
	struct tar t = {archive(), 0, 0, 0};
	struct tar_member m;
	ASSERT(t.fp);
	/* GNU 'L': the name as the data of a "././@LongLink" member */
	memset(name, 'g', sizeof name);
	memcpy(name, "storage/", 8);
	name[sizeof name - 1] = '\0';
	ASSERT_EQ(member(&t, "././@LongLink", TAR_FILE, name), 0);
	ASSERT_EQ(member(&t, "storage/short", TAR_FILE, "x"), 0);
	/* a pax "size" past TAR_SIZE_MAX */
	snprintf(rec, sizeof rec, "26 size=99999999999999999\n");
	ASSERT_EQ(member(&t, "././@PaxHeader", TAR_FILE, rec), 0);
	ASSERT_EQ(member(&t, "storage/big", TAR_FILE, ""), 0);
	ASSERT_EQ(backup_tar_finish(&t), 0);
	rewind(t.fp);
	unsigned char h[TAR_BLOCK];
	ASSERT_EQ(fread(h, 1, sizeof h, t.fp), sizeof h);
	h[156] = 'L';
	sum_block(h);
	rewind(t.fp);
	fwrite(h, 1, sizeof h, t.fp);
	ASSERT_EQ(os_fseek(t.fp, 2 * TAR_BLOCK * 2, SEEK_SET), 0); /* the pax member */
	ASSERT_EQ(fread(h, 1, sizeof h, t.fp), sizeof h);
	h[156] = 'x';
	sum_block(h);
	ASSERT_EQ(os_fseek(t.fp, 2 * TAR_BLOCK * 2, SEEK_SET), 0);
	fwrite(h, 1, sizeof h, t.fp);
	rewind(t.fp);
	struct tar r = {t.fp, 0, 0, 0};
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), 1);
	ASSERT_STR(m.name, name);
	ASSERT_EQ(m.size, 1);
	ASSERT_EQ(backup_tar_next(&r, &m, err, sizeof err), -1);
	ASSERT(strstr(err, "pax"));
	fclose(t.fp);
}

void tests_backup(void)
{
	RUN(short_and_long_names_folders_and_data_read_back,
	        "backup: tar members with short and long names, folders and data read back");
	RUN(headers_have_ustar_fields_and_a_valid_checksum,
	        "backup: a tar header has the ustar fields and a valid checksum");
	RUN(names_that_leave_the_folder_are_refused,
	        "backup: member names that leave the folder (/, .., \\, :) are refused");
	RUN(links_bad_headers_unsafe_names_and_huge_sizes_are_refused,
	        "backup: links, damaged headers, unsafe names and oversized headers are refused");
	RUN(a_pax_size_over_the_limit_and_a_gnu_long_name_read_as_they_should,
	        "backup: a GNU long name is read and a pax size over the limit refused");
}
