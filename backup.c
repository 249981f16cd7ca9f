/*
 * backup.c - `rumble backup FILE` and `rumble restore FILE [CONF]`, and the
 * small tar writer and reader under them (see backup.h).
 *
 * The archive: "rumble.conf" (the settings file the command ran with),
 * then "storage/..." for what is in StorageFolder: the top level first
 * (domains, accounts, keys, the queue), then mail/. The queue comes before
 * the mailboxes because a queued message may be delivered locally while
 * the backup runs: taken in this order it is in the archive at least once
 * (and the index's queue id keeps a second delivery out).
 *
 * Consistency without stopping delivery: a folder's NAME.mbox, NAME.idx
 * and NAME.lock are copied together while holding NAME.lock (os_lock), the
 * lock mbox.c takes for every append, flag change, expunge and compaction,
 * one folder at a time. A queue entry's .msg is copied with its .env (an
 * .msg alone was never acknowledged). Other files are replaced by rename
 * (accounts, domains, keys), so an open file is one version of them.
 * Left out: rumble.pid, queue/server.lock, queue/requests/, temporary
 * files (*.tmp.*, queue/spool-*).
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "backup.h"

#define CHUNK (64 * 1024)
#define DEPTH_MAX 16
#define OCTAL_SIZE_MAX 077777777777ull /* what 11 octal digits hold */
#define PAX_NAME "././@PaxHeader"

/* Never written: padding, end blocks, the reader's end test. Not const so
 * that it costs no bytes in the binary (.bss). */
static unsigned char zero[TAR_BLOCK];

/* ---- writer ---- */

static int put(struct tar *t, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, t->fp) != n) {
		return -1;
	}
	t->pos += n;
	return 0;
}

/* width - 1 octal digits and a NUL; v fits (callers bound it). */
static void octal(char *field, size_t width, uint64_t v)
{
	field[width - 1] = '\0';
	for (size_t i = width - 1; i-- > 0; v >>= 3) {
		field[i] = (char)('0' + (v & 7));
	}
}

static void checksum(unsigned char *h)
{
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (int i = 0; i < TAR_BLOCK; i++) {
		sum += h[i];
	}
	octal((char *)h + 148, 7, sum); /* six digits, NUL, and the space left */
}

static int raw_header(struct tar *t, const char *name, int type, uint64_t size, int64_t mtime)
{
	unsigned char h[TAR_BLOCK];
	memset(h, 0, sizeof h);
	memcpy(h, name, strnlen(name, 100));
	octal((char *)h + 100, 8, type == TAR_DIR ? 0700 : 0600);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	octal((char *)h + 124, 12, size > OCTAL_SIZE_MAX ? 0 : size);
	octal((char *)h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	checksum(h);
	return put(t, h, sizeof h);
}

/* "LEN key=value\n", LEN counting itself. */
static void pax_record(struct buf *b, const char *key, const char *val)
{
	size_t n = strlen(key) + strlen(val) + 3, d = 1;
	char num[24];
	while ((size_t)snprintf(num, sizeof num, "%zu", n + d) != d) {
		d++;
	}
	buf_printf(b, "%zu %s=%s\n", n + d, key, val);
}

/* see backup.h */
int backup_tar_header(struct tar *t, const char *name, int type, uint64_t size, int64_t mtime)
{
	if (strlen(name) < 100 && size <= OCTAL_SIZE_MAX) {
		return raw_header(t, name, type, size, mtime);
	}
	struct buf pax;
	char num[24];
	buf_init(&pax);
	if (strlen(name) >= 100) {
		pax_record(&pax, "path", name);
	}
	if (size > OCTAL_SIZE_MAX) {
		snprintf(num, sizeof num, "%llu", (unsigned long long)size);
		pax_record(&pax, "size", num);
	}
	int rc = raw_header(t, PAX_NAME, 'x', pax.len, mtime) | put(t, pax.data, pax.len) |
	         backup_tar_pad(t, pax.len);
	buf_free(&pax);
	return rc == 0 ? raw_header(t, name, type, size, mtime) : -1;
}

/* see backup.h */
int backup_tar_write(struct tar *t, const void *p, size_t n)
{
	return put(t, p, n);
}

/* see backup.h */
int backup_tar_pad(struct tar *t, uint64_t size)
{
	return put(t, zero, (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
}

/* see backup.h; also fills the last 10 KiB record, as tar(1) does */
int backup_tar_finish(struct tar *t)
{
	int rc = put(t, zero, TAR_BLOCK) | put(t, zero, TAR_BLOCK);
	while (rc == 0 && t->pos % (20 * TAR_BLOCK)) {
		rc = put(t, zero, TAR_BLOCK);
	}
	return rc == 0 && fflush(t->fp) == 0 ? 0 : -1;
}

/* ---- reader ---- */

static int get(struct tar *t, void *p, size_t n)
{
	if (fread(p, 1, n, t->fp) != n) {
		return -1;
	}
	t->pos += n;
	return 0;
}

/* Skips n bytes (a pipe cannot seek). */
static int skip(struct tar *t, uint64_t n)
{
	char junk[TAR_BLOCK * 8];
	while (n > 0) {
		size_t k = n < sizeof junk ? (size_t)n : sizeof junk;
		if (get(t, junk, k) != 0) {
			return -1;
		}
		n -= k;
	}
	return 0;
}

/* An octal field; -1 when it is not one (base-256 sizes are refused). */
static int parse_octal(const unsigned char *f, size_t width, uint64_t *v)
{
	size_t i = 0;
	*v = 0;
	while (i < width && f[i] == ' ') {
		i++;
	}
	for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
		if (*v >> 60) {
			return -1;
		}
		*v = *v * 8 + (uint64_t)(f[i] - '0');
	}
	return i < width && f[i] != ' ' && f[i] != '\0' ? -1 : 0;
}

static int header_ok(const unsigned char *h)
{
	uint64_t want;
	unsigned sum = 0;
	for (int i = 0; i < TAR_BLOCK; i++) {
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	}
	return memcmp(h + 257, "ustar", 5) == 0 && parse_octal(h + 148, 8, &want) == 0 &&
	       want == sum;
}

/* see backup.h */
int backup_tar_name_ok(const char *name)
{
	const char *p = name;
	if (!*name || *name == '/' || strchr(name, '\\') || strchr(name, ':')) {
		return 0;
	}
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			return 0;
		}
		p += n;
		if (*p == '/') {
			p++; /* a directory's name may end in one '/' */
		}
	}
	return 1;
}

/* The value of key in pax records (or "" when absent); -1 when malformed. */
static int pax_get(const char *rec, size_t len, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key), pos = 0;
	*out = '\0';
	while (pos < len) {
		char *end;
		unsigned long n = strtoul(rec + pos, &end, 10);
		const char *eq = memchr(end, '=', len - (size_t)(end - rec));
		if (n < 5 || n > len - pos || *end != ' ' || !eq || eq >= rec + pos + n ||
		        rec[pos + n - 1] != '\n') {
			return -1;
		}
		size_t vlen = (size_t)(rec + pos + n - 1 - (eq + 1));
		if ((size_t)(eq - end - 1) == klen && !memcmp(end + 1, key, klen)) {
			if (vlen >= outlen || memchr(eq + 1, '\0', vlen)) {
				return -1;
			}
			memcpy(out, eq + 1, vlen);
			out[vlen] = '\0';
		}
		pos += n;
	}
	return 0;
}

static int fail_at(char *err, size_t errlen, const char *what, const char *name)
{
	snprintf(err, errlen, "%.200s%s%.1000s", what, *name ? ": " : "", name);
	return -1;
}

/* Reads a pax ('x'/'g') or GNU long-name ('L') header's data of size
 * bytes and applies what it says to path and size ('g', global, is read
 * and ignored: our archives have none and its defaults do not matter). */
static int read_meta(struct tar *t, int type, uint64_t len, char *path, uint64_t *size)
{
	char num[32], *data;
	if (len > TAR_META_MAX) {
		return -1;
	}
	data = xmalloc((size_t)len + 1);
	int rc = get(t, data, (size_t)len) | skip(t, (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK);
	data[len] = '\0';
	if (rc == 0 && type == 'L') {
		rc = strlen(data) < TAR_NAME_MAX ? 0 : -1;
		rl_strlcpy(path, data, TAR_NAME_MAX);
	} else if (rc == 0 && type == 'x') {
		rc = pax_get(data, (size_t)len, "path", path, TAR_NAME_MAX) |
		     pax_get(data, (size_t)len, "size", num, sizeof num);
		*size = *num ? strtoull(num, NULL, 10) : *size;
		rc |= *num && (num[0] < '0' || num[0] > '9' || *size > TAR_SIZE_MAX) ? -1 : 0;
	}
	xfree(data);
	return rc;
}

/* The member's name from the ustar header (prefix "/" name). */
static void ustar_name(const unsigned char *h, char *out)
{
	size_t plen = strnlen((const char *)h + 345, 155), nlen = strnlen((const char *)h, 100);
	size_t at = 0;
	if (plen) {
		memcpy(out, h + 345, plen);
		out[plen] = '/';
		at = plen + 1;
	}
	memcpy(out + at, h, nlen);
	out[at + nlen] = '\0';
}

/* Fills m from the header h and the pax overrides; 0 or -1 with err. */
static int member_of(const unsigned char *h, const char *path, uint64_t size, int sized,
        struct tar_member *m, char *err, size_t errlen)
{
	uint64_t v;
	int type = h[156] == '\0' ? TAR_FILE : h[156];
	if (*path) {
		rl_strlcpy(m->name, path, sizeof m->name);
	} else {
		ustar_name(h, m->name);
	}
	if (type != TAR_FILE && type != TAR_DIR) {
		return fail_at(err, errlen, "links and special files are refused", m->name);
	}
	if (!backup_tar_name_ok(m->name)) {
		return fail_at(err, errlen, "unsafe member name", m->name);
	}
	if (!sized && parse_octal(h + 124, 12, &size) != 0) {
		return fail_at(err, errlen, "bad member size", m->name);
	}
	if (size > TAR_SIZE_MAX || (type == TAR_DIR && size)) {
		return fail_at(err, errlen, "member too large", m->name);
	}
	size_t n = strlen(m->name);
	if (n > 1 && m->name[n - 1] == '/') {
		m->name[n - 1] = '\0';
	}
	m->size = size;
	m->type = type;
	m->mtime = parse_octal(h + 136, 12, &v) == 0 ? (int64_t)v : 0;
	return 0;
}

/* see backup.h */
int backup_tar_next(struct tar *t, struct tar_member *m, char *err, size_t errlen)
{
	unsigned char h[TAR_BLOCK];
	char path[TAR_NAME_MAX] = "";
	uint64_t size = 0;
	int sized = 0;
	if (skip(t, t->left + t->pad) != 0) {
		return fail_at(err, errlen, "the archive ends inside a member", "");
	}
	t->left = t->pad = 0;
	for (int meta = 0; meta < 4; meta++) {
		if (get(t, h, sizeof h) != 0) {
			return fail_at(err, errlen, "the archive ends without its end blocks", "");
		}
		if (!memcmp(h, zero, sizeof h)) {
			return 0;
		}
		uint64_t len;
		if (!header_ok(h) || parse_octal(h + 124, 12, &len) != 0) {
			return fail_at(
			        err, errlen, "not a tar header (damaged or not a tar file)", "");
		}
		if (h[156] != 'x' && h[156] != 'g' && h[156] != 'L') {
			if (member_of(h, path, size, sized, m, err, errlen) != 0) {
				return -1;
			}
			t->left = m->size;
			t->pad = (TAR_BLOCK - m->size % TAR_BLOCK) % TAR_BLOCK;
			return 1;
		}
		uint64_t before = size;
		if (read_meta(t, h[156], len, path, &size) != 0) {
			return fail_at(err, errlen, "bad or oversized pax header", "");
		}
		sized |= size != before;
	}
	return fail_at(err, errlen, "too many pax headers in a row", "");
}

/* see backup.h */
long backup_tar_read(struct tar *t, void *p, size_t n)
{
	size_t k = t->left < n ? (size_t)t->left : n;
	if (k && get(t, p, k) != 0) {
		return -1;
	}
	t->left -= k;
	return (long)k;
}

/* ---- rumble backup ---- */

struct backup {
	struct tar t;
	struct progress pr;
	char root[1100];
	uint64_t files, boxes, total;
	int counting; /* the first walk only adds up sizes for the bar */
	int failed;
};

static int walk(struct backup *b, const char *rel, int depth);

static void ends_with(const char *s, const char *tail, size_t *base)
{
	size_t n = strlen(s), k = strlen(tail);
	*base = n > k && !strcmp(s + n - k, tail) ? n - k : 0;
}

/* Copies size bytes of fp as member name; a file that shrank while read
 * is padded with zeros (only a file rewritten in place, never a folder). */
static int copy_open(struct backup *b, const char *name, FILE *fp, uint64_t size, int64_t mtime)
{
	char *chunk;
	uint64_t done = 0, short_by = 0;
	if (b->counting) {
		b->total += size;
		return 0;
	}
	if (backup_tar_header(&b->t, name, TAR_FILE, size, mtime) != 0) {
		return -1;
	}
	chunk = xmalloc(CHUNK);
	while (done < size) {
		size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
		size_t got = fread(chunk, 1, want, fp);
		if (got < want) {
			memset(chunk + got, 0, want - got);
			short_by += want - got;
		}
		if (backup_tar_write(&b->t, chunk, want) != 0) {
			break;
		}
		done += want;
		progress_add(&b->pr, want);
	}
	xfree(chunk);
	if (short_by) {
		log_warnx("backup: %s shrank by %llu bytes while it was read", name,
		        (unsigned long long)short_by);
	}
	b->files++;
	return done == size && backup_tar_pad(&b->t, size) == 0 ? 0 : -1;
}

/* Copies the file at root/rel; one gone meanwhile is left out. */
static int copy_file(struct backup *b, const char *rel)
{
	char path[2200], name[TAR_NAME_MAX];
	struct os_stat st;
	snprintf(path, sizeof path, "%s/%s", b->root, rel);
	FILE *fp = os_fopen(path, "rb");
	if (!fp) {
		return os_errno_is_noent() ? 0 : -1;
	}
	snprintf(name, sizeof name, "storage/%s", rel);
	int rc = os_fstat(fp, &st) == 0 ? copy_open(b, name, fp, st.size, st.mtime) : -1;
	fclose(fp);
	return rc;
}

/* A folder's files: the data (copied as files), then its lock file. */
static const char *const box_files[] = {".mbox", ".idx", ".idx.new", ".mbox.new", ".lock"};
#define BOX_DATA 4

/* A folder (base.mbox and what goes with it) under its lock, as one. */
static int copy_box(struct backup *b, const char *rel, size_t base)
{
	char path[2200], name[TAR_NAME_MAX];
	struct os_stat st;
	snprintf(path, sizeof path, "%s/%.*s.lock", b->root, (int)base, rel);
	FILE *lk = os_fopen_rw(path); /* mbox.c makes it the same way */
	if (!lk || os_lock(lk) != 0) {
		if (lk) {
			fclose(lk);
		}
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < BOX_DATA; i++) {
		snprintf(name, sizeof name, "%.*s%s", (int)base, rel, box_files[i]);
		rc = copy_file(b, name);
	}
	/* the lock file remembers the last UIDVALIDITY: read through the
	 * locked handle (Windows locks are per handle) */
	snprintf(name, sizeof name, "storage/%.*s.lock", (int)base, rel);
	if (rc == 0) {
		rc = fseek(lk, 0, SEEK_SET) == 0 && os_fstat(lk, &st) == 0
		             ? copy_open(b, name, lk, st.size, st.mtime)
		             : -1;
	}
	os_unlock(lk);
	fclose(lk);
	b->boxes += b->counting ? 0 : 1;
	return rc;
}

/* A queue entry: the .msg only with its .env, both or neither. */
static int copy_entry(struct backup *b, const char *rel, size_t base)
{
	char path[2200], name[TAR_NAME_MAX];
	FILE *fp[2];
	const char *ext[2] = {".msg", ".env"};
	struct os_stat st[2];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%.*s%s", b->root, (int)base, rel, ext[i]);
		fp[i] = os_fopen(path, "rb");
	}
	int rc = 0;
	if (fp[0] && fp[1]) { /* open, each stays one version whatever happens */
		for (int i = 0; rc == 0 && i < 2; i++) {
			snprintf(name, sizeof name, "storage/%.*s%s", (int)base, rel, ext[i]);
			rc = os_fstat(fp[i], &st[i]) == 0
			             ? copy_open(b, name, fp[i], st[i].size, st[i].mtime)
			             : -1;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (fp[i]) {
			fclose(fp[i]);
		}
	}
	return rc;
}

/* What the storage holds that a restore must not bring back. */
static int left_out(const char *rel, const char *name)
{
	return !strcmp(rel, "rumble.pid") || !strcmp(rel, "queue/server.lock") ||
	       !strcmp(rel, "queue/requests") || strstr(name, ".tmp.") ||
	       (!strncmp(rel, "queue/", 6) && !strncmp(name, "spool-", 6));
}

/* One entry of a folder walked: a folder, a mailbox folder's files, a
 * queue entry or a plain file. */
static int visit_file(struct backup *b, const char *rel)
{
	char path[2200];
	struct os_stat st;
	size_t base;
	ends_with(rel, ".mbox", &base);
	if (base) {
		return copy_box(b, rel, base);
	}
	for (size_t i = 1; i <= BOX_DATA; i++) {
		ends_with(rel, box_files[i], &base);
		snprintf(path, sizeof path, "%s/%.*s.mbox", b->root, (int)base, rel);
		if (base && os_stat(path, &st) == 0) {
			return 0; /* copied with its mbox */
		}
	}
	if (!strncmp(rel, "queue/", 6) && !strchr(rel + 6, '/')) {
		ends_with(rel, ".env", &base);
		if (base) {
			return copy_entry(b, rel, base);
		}
		ends_with(rel, ".msg", &base);
		if (base) {
			return 0; /* copied with its .env */
		}
	}
	return copy_file(b, rel);
}

struct walk_at {
	struct backup *b;
	const char *rel;
	int depth, mail; /* mail: 0 all but mail/, 1 only mail/ (top level) */
};

static int visit(const char *name, int is_dir, void *arg)
{
	struct walk_at *w = arg;
	char rel[TAR_NAME_MAX - 16], member[TAR_NAME_MAX];
	if (w->depth == 0 && w->mail != !strcmp(name, "mail")) {
		return 0;
	}
	if (snprintf(rel, sizeof rel, "%s%s%s", w->rel, *w->rel ? "/" : "", name) >=
	        (int)sizeof rel) {
		if (!w->b->counting) {
			log_warnx("backup: name too long, left out: %s/%s", w->rel, name);
		}
		return 0;
	}
	if (left_out(rel, name)) {
		return 0;
	}
	if (!is_dir) {
		if (visit_file(w->b, rel) != 0) {
			log_warn("backup: %s", rel);
			return 1; /* said: the walks above stop without a word */
		}
		return 0;
	}
	snprintf(member, sizeof member, "storage/%s/", rel);
	if (!w->b->counting && backup_tar_header(&w->b->t, member, TAR_DIR, 0, os_time()) != 0) {
		return 1;
	}
	return walk(w->b, rel, w->depth + 1);
}

static int walk(struct backup *b, const char *rel, int depth)
{
	char path[2200];
	struct walk_at w = {b, rel, depth, 0};
	if (depth > DEPTH_MAX) {
		if (!b->counting) {
			log_warnx("backup: folders nested too deep, left out: %s", rel);
		}
		return 0; /* nothing of ours nests so deep */
	}
	snprintf(path, sizeof path, "%s%s%s", b->root, *rel ? "/" : "", rel);
	int rc = os_dir_walk(path, visit, &w);
	if (rc == 0 && depth == 0) {
		w.mail = 1;
		rc = os_dir_walk(path, visit, &w);
	}
	if (rc < 0 && os_errno_is_noent()) {
		rc = 0; /* removed meanwhile (an account deleted) */
	} else if (rc < 0 && !b->counting) {
		log_warn("backup: cannot read the folder %s", path);
	}
	return rc != 0 ? 1 : 0;
}

static int say(const char *what, const char *arg)
{
	fprintf(stderr, "rumble: %s%s\n", what, arg);
	return 1;
}

/* The settings file, as "rumble.conf"; one the command cannot read (a
 * root-only file after dropping to RunAs) is left out with a warning. */
static int copy_settings(struct backup *b)
{
	const char *path = admin_settings_path();
	struct os_stat st;
	FILE *fp = path ? os_fopen(path, "rb") : NULL;
	if (!fp) {
		if (path && !b->counting) {
			fprintf(stderr, "rumble: backup: %s: %s; the archive has no settings\n",
			        path, os_strerror());
		}
		return 0;
	}
	int rc = os_fstat(fp, &st) == 0 ? copy_open(b, "rumble.conf", fp, st.size, st.mtime) : -1;
	fclose(fp);
	return rc;
}

static int backup_all(struct backup *b)
{
	return copy_settings(b) == 0 && walk(b, "", 0) == 0 ? 0 : -1;
}

/* see admin.h */
int cmd_backup(int argc, char **argv)
{
	struct backup b;
	int64_t t0 = os_now_ms();
	if (argc != 1) {
		return say("backup: expected FILE (- for standard output)", "");
	}
	int std = !strcmp(argv[0], "-");
	memset(&b, 0, sizeof b);
	rl_strlcpy(b.root, conf.storage, sizeof b.root);
	b.counting = 1;
	backup_all(&b); /* sizes for the bar only: what fails fails again below */
	b.counting = 0;
	os_stdio_binary();
	b.t.fp = std ? stdout : os_fopen_private(argv[0], "wb");
	if (!b.t.fp) {
		fprintf(stderr, "rumble: backup: %s: %s\n", argv[0], os_strerror());
		return 1;
	}
	progress_start(&b.pr, "backup", b.total, 1);
	int rc = backup_all(&b) == 0 && backup_tar_finish(&b.t) == 0 ? 0 : -1;
	progress_end(&b.pr);
	if (!std) { /* both, whatever the first says */
		int synced = os_fsync(b.t.fp) == 0;
		int closed = fclose(b.t.fp) == 0;
		rc = synced && closed ? rc : -1;
	}
	if (rc != 0) {
		fprintf(stderr, "rumble: backup failed: %s\n", os_strerror());
		if (!std) {
			os_remove(argv[0]);
		}
		return 1;
	}
	fprintf(std ? stderr : stdout,
	        "backup: %llu files, %llu mailboxes, %.1f MB in %s (%.1f s)\n",
	        (unsigned long long)b.files, (unsigned long long)b.boxes,
	        (double)b.t.pos / (1024.0 * 1024.0), std ? "standard output" : argv[0],
	        (double)(os_now_ms() - t0) / 1000.0);
	return 0;
}

/* ---- rumble restore ---- */

struct restore {
	struct tar t;
	struct progress pr;
	char root[1100], conf_out[1200];
	uint64_t files, shown;
	int conf_done;
};

static int any_entry(const char *name, int is_dir, void *arg)
{
	(void)name, (void)is_dir, (void)arg;
	return 1;
}

/* 1 when a server holds dir's queue lock (see queue_server_running). */
static int server_runs(const char *dir)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/queue/server.lock", dir);
	FILE *f = os_fopen(path, "rb");
	int r = f ? os_trylock(f) : 0;
	if (f) {
		fclose(f);
	}
	return r == 1;
}

/* Writes the current member to a new file at path (never over one). */
static int restore_file(struct restore *r, const char *path, uint64_t size, uint64_t max)
{
	char *chunk;
	long n = 0;
	if (size > max) {
		return -1;
	}
	FILE *fp = os_fopen_private(path, "wbx");
	if (!fp) {
		return -1;
	}
	chunk = xmalloc(CHUNK);
	while ((n = backup_tar_read(&r->t, chunk, CHUNK)) > 0 &&
	        fwrite(chunk, 1, (size_t)n, fp) == (size_t)n) {
		progress_add(&r->pr, r->t.pos - r->shown);
		r->shown = r->t.pos;
	}
	xfree(chunk);
	int rc = n == 0 && r->t.left == 0 ? 0 : -1;
	int synced = os_fsync(fp) == 0; /* both, whatever the first says */
	int closed = fclose(fp) == 0;
	rc = synced && closed ? rc : -1;
	r->files++;
	return rc;
}

/* One member: the settings, a folder or a file of the storage. */
static int restore_member(struct restore *r, const struct tar_member *m, char *err, size_t errlen)
{
	char path[2200];
	if (!strcmp(m->name, "rumble.conf") && m->type == TAR_FILE) {
		r->conf_done = 1;
		return restore_file(r, r->conf_out, m->size, TAR_CONF_MAX) == 0
		               ? 0
		               : fail_at(err, errlen, "cannot write the settings", r->conf_out);
	}
	if (strncmp(m->name, "storage/", 8) != 0) {
		return strcmp(m->name, "storage") || m->type != TAR_DIR
		               ? fail_at(err, errlen, "not part of a rumble backup", m->name)
		               : 0;
	}
	if (snprintf(path, sizeof path, "%s/%s", r->root, m->name + 8) >= (int)sizeof path) {
		return fail_at(err, errlen, "name too long", m->name);
	}
	if (m->type == TAR_DIR) {
		return os_mkdir_p(path) == 0 ? 0 : fail_at(err, errlen, os_strerror(), path);
	}
	char *slash = strrchr(path, '/');
	*slash = '\0';
	int rc = os_mkdir_p(path);
	*slash = '/';
	if (rc != 0 || restore_file(r, path, m->size, TAR_SIZE_MAX) != 0) {
		return fail_at(err, errlen, os_strerror(), path);
	}
	return 0;
}

/* CONF, else rumble.conf.restored beside the storage folder. */
static int conf_target(struct restore *r, int argc, char **argv)
{
	size_t n = strlen(r->root);
	while (n > 1 && (r->root[n - 1] == '/' || r->root[n - 1] == '\\')) {
		n--;
	}
	while (n > 0 && r->root[n - 1] != '/' && r->root[n - 1] != '\\') {
		n--;
	}
	if (argc > 1) {
		rl_strlcpy(r->conf_out, argv[1], sizeof r->conf_out);
	} else {
		snprintf(r->conf_out, sizeof r->conf_out, "%.*srumble.conf.restored", (int)n,
		        r->root);
	}
	struct os_stat st;
	return os_stat(r->conf_out, &st) == 0 ? -1 : 0;
}

/* Refuses (1 after a message) a storage folder that is not empty. */
static int check_empty(const char *dir)
{
	struct os_stat st;
	if (os_stat(dir, &st) != 0) {
		return 0; /* made by the first member */
	}
	if (!st.is_dir) {
		return say("restore: StorageFolder is not a folder: ", dir);
	}
	if (os_dir_walk(dir, any_entry, NULL) == 0) {
		return 0;
	}
	return server_runs(dir) ? say("restore: a server runs on ", dir)
	                        : say("restore: StorageFolder is not empty (restore needs an "
	                              "empty one): ",
	                                  dir);
}

static int restore_all(struct restore *r, char *err, size_t errlen)
{
	struct tar_member m;
	int rc;
	while ((rc = backup_tar_next(&r->t, &m, err, errlen)) == 1) {
		if (restore_member(r, &m, err, errlen) != 0) {
			return -1;
		}
		progress_add(&r->pr, r->t.pos - r->shown);
		r->shown = r->t.pos;
	}
	return rc;
}

/* see admin.h */
int cmd_restore(int argc, char **argv)
{
	struct restore r;
	struct os_stat st;
	char err[1300] = "";
	if (argc < 1 || argc > 2) {
		return say(
		        "restore: expected FILE [SETTINGS-FILE] (FILE - for standard input)", "");
	}
	int std = !strcmp(argv[0], "-");
	memset(&r, 0, sizeof r);
	rl_strlcpy(r.root, conf.storage, sizeof r.root);
	if (check_empty(r.root) != 0) {
		return 1;
	}
	if (conf_target(&r, argc, argv) != 0) {
		return say("restore: the settings file exists already (remove it or give another "
		           "path): ",
		        r.conf_out);
	}
	os_stdio_binary();
	r.t.fp = std ? stdin : os_fopen(argv[0], "rb");
	if (!r.t.fp) {
		fprintf(stderr, "rumble: restore: %s: %s\n", argv[0], os_strerror());
		return 1;
	}
	if (os_mkdir_p(r.root) != 0) { /* also the folder of rumble.conf.restored */
		fprintf(stderr, "rumble: restore: %s: %s\n", r.root, os_strerror());
		if (!std) {
			fclose(r.t.fp);
		}
		return 1;
	}
	progress_start(&r.pr, "restore", !std && os_stat(argv[0], &st) == 0 ? st.size : 0, 1);
	int rc = restore_all(&r, err, sizeof err);
	progress_end(&r.pr);
	if (!std) {
		fclose(r.t.fp);
	}
	if (rc != 0) {
		fprintf(stderr,
		        "rumble: restore stopped: %s; %s is partly restored: empty it before "
		        "trying again\n",
		        err, r.root);
		return 1;
	}
	printf("restored %llu files (%.1f MB) into %s; %s%s\n", (unsigned long long)r.files,
	        (double)r.t.pos / (1024.0 * 1024.0), r.root,
	        r.conf_done ? "its settings are in " : "the archive had no settings file",
	        r.conf_done ? r.conf_out : "");
	return 0;
}
