/*
 * metadata.c - metadata of a user and of the user's folders, named as
 * RFC 5464 names entries ("/private/comment", "/shared/vendor/x/y"). The
 * Dovecot-style Lua objects read and write it (lua/ldovecot.c).
 *
 * One file per user, <user dir>/metadata, a line per entry:
 *
 *     folder SP key SP value LF
 *
 * each field %XX-escaped (controls, space, '%' and bytes over 0x7e), the
 * folder empty for the user's own entries. Keys compare case-insensitively
 * (RFC 5464 section 3.2) and keep the case they were set with. A change rewrites the file
 * atomically under a process-wide lock; a user's entries are bounded
 * (MD_FILE_MAX), so reading it whole is cheap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

static os_mutex *md_mu;

/* see rumble.h */
int md_valid_key(const char *key)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0 || n > MD_KEY_MAX || key[n - 1] == '/' || strstr(key, "//")) {
		return 0;
	}
	if (rl_strncasecmp(key, "/private/", 9) != 0 && rl_strncasecmp(key, "/shared/", 8) != 0) {
		return 0;
	}
	for (const char *p = key; *p; p++) {
		if (*p <= ' ' || *p > '~' || *p == '*' || *p == '%') {
			return 0;
		}
	}
	return 1;
}

static void put_escaped(struct buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c > '~' || c == '%') {
			buf_printf(b, "%%%02X", c);
		} else {
			buf_append(b, &c, 1);
		}
	}
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	                              : -1;
}

/* Unescapes the field at p (up to a space or the end) in place; returns
 * its length and moves *next past the space (NULL at the end). */
static size_t field(char *p, char **next)
{
	char *end = strchr(p, ' ');
	*next = end ? end + 1 : NULL;
	if (end) {
		*end = '\0';
	}
	size_t n = 0;
	for (char *q = p; *q; q++) {
		int hi, lo;
		if (*q == '%' && (hi = hexval(q[1])) >= 0 && (lo = hexval(q[2])) >= 0) {
			p[n++] = (char)(hi * 16 + lo);
			q += 2;
		} else {
			p[n++] = *q;
		}
	}
	p[n] = '\0';
	return n;
}

static void put_entry(struct buf *b, const char *folder, const char *key, const char *v, size_t n)
{
	put_escaped(b, folder, strlen(folder));
	buf_append(b, " ", 1);
	put_escaped(b, key, strlen(key));
	buf_append(b, " ", 1);
	put_escaped(b, v, n);
	buf_append(b, "\n", 1);
}

/* One entry of the file, unescaped in the file's buffer. */
struct entry {
	const char *folder, *key, *value;
	size_t vlen;
};

/* Calls fn for each well-formed entry of the file text in b (unescaped
 * in place); stops at fn's non-zero return. */
static int each_entry(struct buf *b, int (*fn)(struct entry *e, void *arg), void *arg)
{
	int r = 0;
	char *p = b->data, *end = b->data ? b->data + b->len : NULL;
	while (r == 0 && p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			break;
		}
		*nl = '\0';
		struct entry e = {.folder = p};
		char *k, *v;
		field(p, &k);
		if (k && (e.key = k, field(k, &v), v)) {
			e.value = v;
			e.vlen = field(v, &v);
			r = fn(&e, arg);
		}
		p = nl + 1;
	}
	return r;
}

/* Reads the user's file into b; -1 when its path cannot be made. */
static int md_read(const char *domain, const char *user, char *path, size_t plen, struct buf *b)
{
	if (mm_user_file(domain, user, "metadata", path, plen) != 0) {
		return -1;
	}
	FILE *fp = os_fopen(path, "rb");
	char chunk[8192];
	size_t n;
	while (fp && (n = fread(chunk, 1, sizeof chunk, fp)) > 0 && b->len <= MD_FILE_MAX * 2) {
		buf_append(b, chunk, n);
	}
	if (fp) {
		fclose(fp);
	}
	return 0;
}

struct find {
	const char *folder, *key, *prefix;
	char *value;
	size_t vlen;
	int found;
	struct buf *out; /* md_set: the entries kept */
	int (*fn)(const char *key, void *arg);
	void *arg;
};

static int find_one(struct entry *e, void *arg)
{
	struct find *f = arg;
	if (strcmp(e->folder, f->folder) != 0 || rl_strcasecmp(e->key, f->key) != 0) {
		return 0;
	}
	f->value = xmalloc(e->vlen + 1);
	memcpy(f->value, e->value, e->vlen + 1);
	f->vlen = e->vlen;
	return 1;
}

/* see rumble.h */
int md_get(const char *domain, const char *user, const char *folder, const char *key,
        char **value, size_t *len)
{
	char path[1500];
	struct buf b;
	struct find f = {.folder = folder, .key = key};
	*value = NULL;
	if (!md_valid_key(key)) {
		return -1;
	}
	buf_init(&b);
	os_mutex_lock(rl_mutex_once(&md_mu));
	int rc = md_read(domain, user, path, sizeof path, &b);
	os_mutex_unlock(rl_mutex_once(&md_mu));
	if (rc == 0 && each_entry(&b, find_one, &f)) {
		*value = f.value;
		*len = f.vlen;
		rc = 1;
	}
	buf_free(&b);
	return rc;
}

static int keep_other(struct entry *e, void *arg)
{
	struct find *f = arg;
	if (strcmp(e->folder, f->folder) != 0 || rl_strcasecmp(e->key, f->key) != 0) {
		put_entry(f->out, e->folder, e->key, e->value, e->vlen);
	}
	return 0;
}

/* see rumble.h */
int md_set(const char *domain, const char *user, const char *folder, const char *key,
        const char *value, size_t len)
{
	char path[1500];
	struct buf b, out;
	if (!md_valid_key(key) || (value && len > MD_VALUE_MAX)) {
		return -1;
	}
	buf_init(&b);
	buf_init(&out);
	struct find f = {.folder = folder, .key = key, .out = &out};
	os_mutex_lock(rl_mutex_once(&md_mu));
	int rc = md_read(domain, user, path, sizeof path, &b);
	if (rc == 0) {
		each_entry(&b, keep_other, &f);
		if (value) {
			put_entry(&out, folder, key, value, len);
		}
		rc = out.len > MD_FILE_MAX ? -1 : os_write_file_atomic(path, out.data ? out.data : "", out.len);
	}
	os_mutex_unlock(rl_mutex_once(&md_mu));
	buf_free(&b);
	buf_free(&out);
	return rc;
}

static int under(struct entry *e, void *arg)
{
	struct find *f = arg;
	size_t n = strlen(f->prefix);
	if (strcmp(e->folder, f->folder) != 0 || rl_strncasecmp(e->key, f->prefix, n) != 0) {
		return 0;
	}
	/* "/private/a" lists itself and "/private/a/..." but not "/private/ab" */
	if (e->key[n] != '\0' && e->key[n] != '/' && (n == 0 || f->prefix[n - 1] != '/')) {
		return 0;
	}
	return f->fn(e->key, f->arg);
}

/* see rumble.h */
int md_list(const char *domain, const char *user, const char *folder, const char *prefix,
        int (*fn)(const char *key, void *arg), void *arg)
{
	char path[1500];
	struct buf b;
	struct find f = {.folder = folder, .prefix = prefix, .fn = fn, .arg = arg};
	buf_init(&b);
	os_mutex_lock(rl_mutex_once(&md_mu));
	int rc = md_read(domain, user, path, sizeof path, &b);
	os_mutex_unlock(rl_mutex_once(&md_mu));
	if (rc == 0) {
		rc = each_entry(&b, under, &f);
	}
	buf_free(&b);
	return rc;
}

struct each_key {
	const char *key;
	int (*fn)(const char *folder, const char *value, size_t len, void *arg);
	void *arg;
};

static int with_key(struct entry *e, void *arg)
{
	struct each_key *k = arg;
	return rl_strcasecmp(e->key, k->key) == 0 ? k->fn(e->folder, e->value, e->vlen, k->arg) : 0;
}

/* see rumble.h */
int md_each_folder(const char *domain, const char *user, const char *key,
        int (*fn)(const char *folder, const char *value, size_t len, void *arg), void *arg)
{
	char path[1500];
	struct buf b;
	struct each_key k = {key, fn, arg};
	buf_init(&b);
	os_mutex_lock(rl_mutex_once(&md_mu));
	int rc = md_read(domain, user, path, sizeof path, &b);
	os_mutex_unlock(rl_mutex_once(&md_mu));
	if (rc == 0) {
		rc = each_entry(&b, with_key, &k);
	}
	buf_free(&b);
	return rc;
}
