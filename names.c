/*
 * names.c - a folder's file name (NAME in NAME.mbox, NAME.idx, NAME.lock)
 * and the renaming of stores named the old way.
 *
 * A folder's file is named as the folder is: "Sent.mbox", "Work.2026.mbox",
 * and a name kept in modified UTF-7 (RFC 3501 5.1.3, "Entw&APw-rfe") shows
 * its UTF-8 ("Entwürfe.mbox"). "%XX" stands for a byte that is unsafe in a
 * file name on Windows or POSIX: / \ : * ? " < > | control bytes, '%'
 * itself, '~' (the mark below), a leading '.', a trailing '.' or space and
 * the first byte of a Windows device name (con, nul, com1, ...); in a name
 * that is not modified UTF-7 with a shift, '&' and non-ASCII bytes too, so
 * that a raw '&' or non-ASCII byte in a file name always means decoded
 * UTF-7 and every file name reads back as exactly one folder.
 *
 * Case: "Work" and "work" are two folders, but one file on Windows and
 * macOS. Names are compared as such file systems would (ASCII case folded,
 * any non-ASCII character alike, to be safe), and a folder whose readable
 * name would meet another folder's file gets the collision form instead:
 * every byte outside [a-z0-9._-] escaped (the old scheme, mm__fs_name)
 * plus "~", e.g. "%57ork~.mbox". Which form a folder has is decided when
 * its file is made and read back from the directory at every open: the
 * collision form if that file exists, else the readable one if it exists,
 * else (a new folder) the readable one unless it meets another's. So the
 * names stay readable unless two folders differ only in case.
 *
 * Before this, every folder had the old-scheme name ("%53ent.mbox"), with
 * upper case escaped for the same reason. mm_upgrade_names renames those
 * files at start, each folder under its lock, index first: killed midway,
 * the next start finishes it.
 */
#include <string.h>

#include "rumble.h"

#define TEXT_MAX (4 * MM_FOLDER_MAX + 1) /* a name's UTF-8 (see shown) */

/* ---- the old scheme, also users' and domains' directory names ---- */

static int fs_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Windows reserves these device names, with any extension. */
static int fs_reserved(const char *name)
{
	static const char *const dev[] = {"con", "prn", "aux", "nul", "conin$", "conout$"};
	size_t n = strcspn(name, ".");
	for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) {
		if (n == strlen(dev[i]) && rl_strncasecmp(name, dev[i], n) == 0) {
			return 1;
		}
	}
	return n == 4 &&
	       (rl_strncasecmp(name, "com", 3) == 0 || rl_strncasecmp(name, "lpt", 3) == 0) &&
	       name[3] >= '0' && name[3] <= '9';
}

/* Appends c, or "%XX" when esc, to out[*o]; -1 when it does not fit. */
static int put_byte(char *out, size_t len, size_t *o, unsigned char c, int esc)
{
	static const char hex[] = "0123456789ABCDEF";
	if (*o + (esc ? 3 : 1) >= len) {
		return -1;
	}
	if (esc) {
		out[(*o)++] = '%';
		out[(*o)++] = hex[c >> 4];
		out[(*o)++] = hex[c & 15];
	} else {
		out[(*o)++] = (char)c;
	}
	out[*o] = '\0';
	return 0;
}

/* see rumble.h */
int mm__fs_name(const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name), o = 0;
	int reserved = fs_reserved(name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		/* a leading or trailing dot could make "." or ".." or vanish on Windows */
		int esc = !fs_plain(c) || (i == 0 && (c == '.' || reserved)) ||
		          (i == n - 1 && c == '.');
		if (put_byte(out, outlen, &o, c, esc) != 0) {
			return -1;
		}
	}
	return n == 0 ? -1 : 0;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The byte of "%XX" at in[i] (i + 2 < n), or -1. */
static int unhex(const char *in, size_t i, size_t n)
{
	int hi = i + 2 < n ? hex_digit(in[i + 1]) : -1;
	int lo = i + 2 < n ? hex_digit(in[i + 2]) : -1;
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* The folder of an old-scheme name in[0..n), or -1 when it is not one. */
static int old_unname(const char *in, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)in[i];
		if (c == '%' && (c = unhex(in, i, n)) < 0) {
			return -1;
		}
		i += in[i] == '%' ? 2 : 0;
		if (o + 1 >= outlen) {
			return -1;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	char again[MM_FOLDER_FS_MAX + 1];
	return mm_valid_folder(out) && mm__fs_name(out, again, sizeof again) == 0 &&
	                       strlen(again) == n && memcmp(again, in, n) == 0
	               ? 0
	               : -1;
}

/* ---- the readable form ---- */

static int unsafe(unsigned char c)
{
	return c < 0x20 || c == 0x7f || (c < 0x80 && strchr("/\\:*?\"<>|%~", c));
}

/* The text a file name shows: the UTF-8 of a modified UTF-7 name with a
 * shift (*raw = 0), else the name itself (*raw = 1). */
static int shown(const char *folder, char *out, size_t len, int *raw)
{
	*raw = !strchr(folder, '&') || imap_mutf7_to_utf8(folder, out, len) != 0;
	return *raw && rl_strlcpy(out, folder, len) >= len ? -1 : 0;
}

static int readable(const char *folder, char *out, size_t len)
{
	char text[TEXT_MAX];
	int raw;
	if (shown(folder, text, sizeof text, &raw) != 0) {
		return -1;
	}
	size_t n = strlen(text), o = 0;
	int reserved = fs_reserved(text);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		int esc = unsafe(c) || (raw && (c == '&' || c >= 0x80)) ||
		          (i == 0 && (c == '.' || reserved)) ||
		          (i == n - 1 && (c == '.' || c == ' '));
		if (put_byte(out, len, &o, c, esc) != 0) {
			return -1;
		}
	}
	return n == 0 ? -1 : 0;
}

/* Appends seg (UTF-8 from a file name) in modified UTF-7 to out[*o]. */
static int put_seg(char *seg, size_t *s, char *out, size_t len, size_t *o)
{
	seg[*s] = '\0';
	if (*o >= len || imap_utf8_to_mutf7(seg, out + *o, len - *o) != 0) {
		return -1;
	}
	*o += strlen(out + *o);
	*s = 0;
	return 0;
}

/* The folder of a readable name in[0..n), or -1 when it is not one. */
static int readable_unname(const char *in, size_t n, char *out, size_t len)
{
	char seg[TEXT_MAX];
	size_t s = 0, o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] != '%') {
			if (s + 1 >= sizeof seg) {
				return -1;
			}
			seg[s++] = in[i];
			continue;
		}
		int c = unhex(in, i, n);
		if (c < 0 || put_seg(seg, &s, out, len, &o) != 0 || o + 1 >= len) {
			return -1;
		}
		out[o++] = (char)c; /* an escaped byte is the name's own */
		out[o] = '\0';
		i += 2;
	}
	if (put_seg(seg, &s, out, len, &o) != 0) {
		return -1;
	}
	char again[MM_FOLDER_FS_MAX + 1];
	return mm_valid_folder(out) && readable(out, again, sizeof again) == 0 &&
	                       strlen(again) == n && memcmp(again, in, n) == 0
	               ? 0
	               : -1;
}

/* see rumble.h */
int mm__folder_fits(const char *folder)
{
	char r[MM_FOLDER_FS_MAX + 1], c[MM_FOLDER_FS_MAX];
	return readable(folder, r, sizeof r) == 0 && mm__fs_name(folder, c, sizeof c) == 0;
}

/* see rumble.h */
int mm__file_folder(const char *name, size_t n, char *out, size_t len)
{
	if (n > 0 && name[n - 1] == '~') {
		return old_unname(name, n - 1, out, len); /* the collision form */
	}
	return readable_unname(name, n, out, len);
}

/* ---- which form a folder has ---- */

/* One character as a case-insensitive file system may see it: ASCII
 * folded, every non-ASCII character the same. Advances *i. */
static int fold_next(const char *s, size_t n, size_t *i)
{
	unsigned char c = (unsigned char)s[(*i)++];
	if (c < 0x80) {
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	}
	while (*i < n && ((unsigned char)s[*i] & 0xc0) == 0x80) {
		(*i)++;
	}
	return 0x80;
}

static int same_folded(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, j = 0;
	while (i < an && j < bn) {
		if (fold_next(a, an, &i) != fold_next(b, bn, &j)) {
			return 0;
		}
	}
	return i == an && j == bn;
}

struct scan {
	const char *r, *c; /* the two forms */
	size_t rn, cn;
	int has_r, has_c, clash;
};

static int scan_entry(const char *name, int is_dir, void *arg)
{
	struct scan *s = arg;
	size_t n = strlen(name);
	if (is_dir || n <= 5 || strcmp(name + n - 5, ".mbox") != 0) {
		return 0;
	}
	n -= 5;
	if (n == s->cn && memcmp(name, s->c, n) == 0) {
		s->has_c = 1;
	} else if (n == s->rn && memcmp(name, s->r, n) == 0) {
		s->has_r = 1;
	} else if (same_folded(name, n, s->r, s->rn)) {
		s->clash = 1;
	}
	return 0;
}

/* see rumble.h */
int mm__folder_file(const char *dir, const char *folder, char *out, size_t len)
{
	char r[MM_FOLDER_FS_MAX + 1], c[MM_FOLDER_FS_MAX + 1];
	if (readable(folder, r, sizeof r) != 0 || mm__fs_name(folder, c, sizeof c - 1) != 0) {
		return -1;
	}
	strcat(c, "~"); /* fits: one byte was kept for it */
	struct scan s = {r, c, strlen(r), strlen(c), 0, 0, 0};
	os_dir_walk(dir, scan_entry, &s); /* none (a new user): no clash */
	const char *pick = s.has_c || (!s.has_r && s.clash) ? c : r;
	return rl_strlcpy(out, pick, len) < len ? 0 : -1;
}

/* ---- stores named the old way: renamed at start ---- */

/* A folder's files, in the order they move: the index before the mbox,
 * so that no moment has the mbox without its index (which would be
 * rebuilt, flags lost); a compaction's leftovers with them. */
static const char *const exts[] = {".idx.new", ".idx", ".mbox.new", ".mbox", ".lock"};
#define NEXTS (sizeof exts / sizeof exts[0])

struct olds {
	char (*v)[MM_FOLDER_FS_MAX + 1]; /* old-scheme names that need a move */
	size_t n;
};

static int collect_old(const char *name, int is_dir, void *arg)
{
	struct olds *o = arg;
	size_t n = strlen(name), e = 0;
	char folder[MM_FOLDER_MAX + 1];
	while (!is_dir && e < NEXTS &&
	        (n <= strlen(exts[e]) || strcmp(name + n - strlen(exts[e]), exts[e]) != 0)) {
		e++;
	}
	if (e == NEXTS || (n -= strlen(exts[e])) > MM_FOLDER_FS_MAX ||
	        old_unname(name, n, folder, sizeof folder) != 0 ||
	        mm__file_folder(name, n, folder, sizeof folder) == 0) {
		return 0; /* not a folder's file, or one named as now */
	}
	for (size_t i = 0; i < o->n; i++) {
		if (strlen(o->v[i]) == n && memcmp(o->v[i], name, n) == 0) {
			return 0;
		}
	}
	o->v = xrealloc(o->v, (o->n + 1) * sizeof *o->v);
	memcpy(o->v[o->n], name, n);
	o->v[o->n++][n] = '\0';
	return 0;
}

static int exists(const char *dir, const char *base, const char *ext)
{
	char path[1500];
	struct os_stat st;
	snprintf(path, sizeof path, "%s/%s%s", dir, base, ext);
	return os_stat(path, &st) == 0;
}

/* Moves dir/old.* to the folder's name now; 0 done (or nothing to do). */
static int move_files(const char *dir, const char *old, const char *folder)
{
	char to[MM_FOLDER_FS_MAX + 1], a[1500], b[1500];
	if (mm__folder_file(dir, folder, to, sizeof to) != 0) {
		return -1;
	}
	if (exists(dir, old, ".mbox") && exists(dir, to, ".mbox")) {
		log_warnx("storage: %s/%s.mbox not renamed: %s.mbox exists", dir, old, to);
		return -1;
	}
	int rc = 0, moved = exists(dir, old, ".mbox");
	for (size_t e = 0; e < NEXTS; e++) {
		snprintf(a, sizeof a, "%s/%s%s", dir, old, exts[e]);
		snprintf(b, sizeof b, "%s/%s%s", dir, to, exts[e]);
		if (!exists(dir, old, exts[e])) {
			continue;
		}
		/* a lock file there already remembers a UIDVALIDITY as well */
		int r = e == NEXTS - 1 && exists(dir, to, exts[e]) ? os_remove(a)
		                                                   : os_rename_atomic(a, b);
		if (r != 0) {
			log_warn("storage: cannot rename %s to %s", a, b);
			rc = -1;
		}
	}
	os_fsync_dir(dir);
	if (moved && rc == 0) {
		log_info("storage: folder %s: %s/%s.mbox renamed to %s.mbox", folder, dir, old, to);
	}
	return rc;
}

/* Renames one old-named folder under its lock (the old name's). */
static int upgrade_one(const char *dir, const char *old)
{
	char folder[MM_FOLDER_MAX + 1], path[1500];
	if (old_unname(old, strlen(old), folder, sizeof folder) != 0) {
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s.lock", dir, old);
	FILE *lk = os_fopen_rw(path);
	if (!lk || os_lock(lk) != 0) {
		if (lk) {
			fclose(lk);
		}
		log_warn("storage: cannot lock %s", path);
		return -1;
	}
	int rc = move_files(dir, old, folder); /* the lock file too: held files move */
	os_unlock(lk);
	fclose(lk);
	return rc;
}

static int upgrade_user(const char *name, int is_dir, void *arg)
{
	const char *ddir = arg;
	char dir[1100];
	struct olds o = {NULL, 0};
	if (!is_dir || (size_t)snprintf(dir, sizeof dir, "%s/%s", ddir, name) >= sizeof dir) {
		return 0;
	}
	os_dir_walk(dir, collect_old, &o);
	for (size_t i = 0; i < o.n; i++) {
		upgrade_one(dir, o.v[i]);
	}
	xfree(o.v);
	return 0;
}

static int upgrade_domain(const struct mm_domain *d, void *arg)
{
	char ddir[1024];
	(void)arg;
	if (mm__domain_dir(d->name, ddir, sizeof ddir) == 0) {
		os_dir_walk(ddir, upgrade_user, ddir);
	}
	return 0;
}

/* see rumble.h */
void mm_upgrade_names(void)
{
	mm_domain_list(upgrade_domain, NULL);
}
