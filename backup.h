/*
 * backup.h - `rumble backup` and `rumble restore` (backup.c): a running
 * server's storage folder as one POSIX tar file (pax headers for long
 * names and large sizes), and the small tar writer and reader they use.
 */
#ifndef RUMBLE_BACKUP_H
#define RUMBLE_BACKUP_H

#include "rumble.h"

#define TAR_BLOCK 512
#define TAR_NAME_MAX 1024          /* the longest member name, with its NUL */
#define TAR_META_MAX (64 * 1024)   /* the largest pax or GNU long-name header read */
#define TAR_SIZE_MAX (1ull << 40)  /* the largest member read: 1 TiB */
#define TAR_CONF_MAX (1024 * 1024) /* the largest configuration file restored */

enum { TAR_FILE = '0', TAR_DIR = '5' };

/* An archive being written or read; the caller opens and closes fp. */
struct tar {
	FILE *fp;
	uint64_t pos;  /* bytes written or read so far */
	uint64_t left; /* reader: data of the current member not read yet */
	uint64_t pad;  /* reader: the padding after it */
};

struct tar_member {
	char name[TAR_NAME_MAX]; /* relative, '/'-separated, checked (backup_tar_name_ok) */
	uint64_t size;
	int64_t mtime;
	int type; /* TAR_FILE or TAR_DIR */
};

/* Writer: a header (a pax header before it when the name is over 100
 * bytes or the size over 8 GiB), then exactly size bytes of data through
 * backup_tar_write, then backup_tar_pad; backup_tar_finish writes the two
 * zero blocks at the end. Each returns 0, or -1 on a write error. */
int backup_tar_header(struct tar *t, const char *name, int type, uint64_t size, int64_t mtime);
int backup_tar_write(struct tar *t, const void *p, size_t n);
int backup_tar_pad(struct tar *t, uint64_t size);
int backup_tar_finish(struct tar *t);

/* Reader: the next member (what is left of the current one is skipped):
 * 1 with m filled, 0 at the end of the archive, -1 with err (a damaged
 * header, a link or special file, an unsafe name, a size over the limits). */
int backup_tar_next(struct tar *t, struct tar_member *m, char *err, size_t errlen);
/* Up to n bytes of the current member's data: the count, 0 at its end,
 * -1 when the archive ends early. */
long backup_tar_read(struct tar *t, void *p, size_t n);
/* 1 when name is relative and has no "..", ".", empty, '\\' or ':' part. */
int backup_tar_name_ok(const char *name);

#endif
