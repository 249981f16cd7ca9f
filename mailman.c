/*
 * mailman.c - domains, accounts, name validation and address matching;
 * a user's folders (listing, creating, deleting, renaming) and IMAP
 * subscriptions. The mbox store itself is in mbox.c and mbox_read.c.
 *
 * Files under the storage folder S:
 *   S/domains   "# rumble domains 1 next=N ..." then one line per domain:
 *               id TAB name TAB path TAB flags
 *   S/accounts  "# rumble accounts 1 next=N ..." then one line per account:
 *               id TAB domain TAB user TAB type TAB password TAB args
 * next=N is the next id to hand out, so ids are never reused even after
 * the highest one is deleted. No field may hold a tab, CR or LF (saves
 * refuse them), so a line always splits into the same fields.
 *
 * Both files are replaced whole (os_write_file_atomic) by a writer that
 * holds S/accounts.lock: it re-reads the files under the lock, changes
 * them and writes them back, so the CLI and the server never lose each
 * other's changes. A line that does not parse is skipped by readers, but
 * writers refuse to touch the files until it is fixed by hand, so a typo
 * never silently drops an account on the next save.
 *
 * Readers keep the tables in memory and stat both files at every lookup
 * (size + mtime in ns); a changed stamp means someone else wrote them.
 * A file written in the last two seconds is "racy" (a second write in
 * the same clock tick with the same size would keep its stamp, as in
 * git's racy-index problem), so it is re-read at every lookup until it
 * is older than that.
 */
#include <string.h>

#include "rumble.h"

#define RACY_SECONDS 2

struct stamp {
	int exists;
	uint64_t size;
	int64_t mtime, mtime_ns;
};

struct tables {
	struct mm_domain *dom;
	uint32_t ndom;
	struct mm_account *acc;
	uint32_t nacc;
	uint32_t dom_next, acc_next; /* next ids to assign */
	struct stamp dst, ast;
	int racy;
	int bad_line;         /* first line that did not parse, 0 if none */
	const char *bad_file; /* "domains" or "accounts" */
};

static struct {
	int open;
	char storage[1024];
	char dpath[1100], apath[1100], lpath[1100];
	os_mutex *lock;  /* the tables below */
	os_mutex *wlock; /* one writer at a time in this process */
	struct tables t;
} mm;

static void seterr(char *err, size_t errlen, const char *fmt, ...) RL_PRINTF(3, 4);

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int lower_ascii(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Copies s lower-cased into out (len bytes); -1 when it does not fit. */
static int lower_copy(char *out, size_t len, const char *s)
{
	if (!s || rl_strlcpy(out, s, len) >= len) {
		return -1;
	}
	rl_lower(out);
	return 0;
}

/* ---- validation (see rumble.h) ---- */

int mm_valid_domain(const char *d)
{
	size_t n = d ? strlen(d) : 0, label = 0;
	if (n == 0 || n > MM_DOMAIN_MAX) {
		return 0;
	}
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63) {
				return 0; /* empty label: "..", leading or trailing dot */
			}
			label = 0;
			continue;
		}
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '-' || c == '_';
		if (!ok || (c == '-' && label == 0)) {
			return 0;
		}
		label++;
	}
	return 1;
}

/* RFC 5321 atext without '/' (a path separator) and without the GLOB
 * characters '*' and '?', which are reserved for patterns. */
static int user_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
		return 1;
	}
	return c != '\0' && strchr("!#$%&'+-=^_`{|}~", c) != NULL;
}

/* Length of the well-formed UTF-8 sequence at p (non-ASCII), 0 if bad. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;
	uint32_t cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2, cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3, cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4, cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0; /* overlong, out of range or a surrogate */
	}
	return n;
}

/* RFC 6531: an SMTPUTF8 local part may hold any well-formed UTF-8 beside
 * the atext above; file names escape it (mm__fs_name). */
int mm_valid_user(const char *u, int allow_glob)
{
	size_t n = u ? strlen(u) : 0;
	if (n == 0 || n > MM_USER_MAX || u[0] == '.' || u[n - 1] == '.' || strstr(u, "..")) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		size_t len = c >= 0x80 ? utf8_len((const unsigned char *)u + i) : 0;
		if (len) {
			i += len - 1;
		} else if (!user_char(c) && c != '.' && !(allow_glob && (c == '*' || c == '?'))) {
			return 0;
		}
	}
	return 1;
}

int mm_valid_folder(const char *f)
{
	size_t n = f ? strlen(f) : 0;
	if (n == 0 || n > MM_FOLDER_MAX || f[0] == '.') {
		return 0;
	}
	const unsigned char *p = (const unsigned char *)f;
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '/' || p[i] == '\\') {
			return 0;
		}
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t len = utf8_len(p + i);
		if (len == 0) {
			return 0;
		}
		i += len;
	}
	/* the limit that matters is the file name's: escaped bytes take three
	 * each, in either form (names.c) */
	return mm__folder_fits(f);
}

/* Iterative matcher: on a mismatch, go back to the last '*' and let it
 * eat one more character. Only the last star matters, so it is
 * O(len(p) * len(s)) at worst, never exponential. */
int mm_glob_match(const char *pattern, const char *s)
{
	const char *p = pattern, *star = NULL, *resume = NULL;
	while (*s) {
		if (*p == '*') {
			star = ++p;
			resume = s;
		} else if (*p && (*p == '?' || lower_ascii((unsigned char)*p) ==
		                                       lower_ascii((unsigned char)*s))) {
			p++;
			s++;
		} else if (star) {
			p = star;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*p == '*') {
		p++;
	}
	return *p == '\0';
}

static const char *const type_names[] = {"mbox", "alias", "feed", "relay", "mod"};
#define NTYPES (int)(sizeof type_names / sizeof type_names[0])

const char *mm_type_name(enum mm_type t)
{
	return (int)t >= 0 && (int)t < NTYPES ? type_names[t] : "unknown";
}

int mm_type_parse(const char *name)
{
	for (int i = 0; name && i < NTYPES; i++) {
		if (rl_strcasecmp(name, type_names[i]) == 0) {
			return i;
		}
	}
	return -1;
}

/* ---- the tables: loading ---- */

static void stamp_get(const char *path, struct stamp *s)
{
	struct os_stat st;
	memset(s, 0, sizeof *s);
	if (os_stat(path, &st) == 0) {
		s->exists = 1;
		s->size = st.size;
		s->mtime = st.mtime;
		s->mtime_ns = st.mtime_ns;
	}
}

static int stamp_same(const struct stamp *a, const struct stamp *b)
{
	return a->exists == b->exists && a->size == b->size && a->mtime == b->mtime &&
	       a->mtime_ns == b->mtime_ns;
}

static void tables_free(struct tables *t)
{
	xfree(t->dom);
	xfree(t->acc);
	memset(t, 0, sizeof *t);
}

/* Reads a whole file; a missing file reads as empty. */
static int read_file(const char *path, struct buf *out)
{
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		if (os_errno_is_noent()) {
			return 0;
		}
		log_warn("mailman: cannot open %s", path);
		return -1;
	}
	char chunk[16384];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(out, chunk, n);
	}
	int rc = ferror(f) ? -1 : 0;
	if (rc) {
		log_warn("mailman: cannot read %s", path);
	}
	fclose(f);
	return rc;
}

/* Splits line at tabs into at most max fields; returns the count. */
static int split_tabs(char *line, char **field, int max)
{
	int n = 0;
	field[n++] = line;
	for (char *p = line; *p; p++) {
		if (*p == '\t') {
			if (n == max) {
				return max + 1; /* too many */
			}
			*p = '\0';
			field[n++] = p + 1;
		}
	}
	return n;
}

static int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	if (!*s) {
		return -1;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (uint64_t)(*s - '0')) > 0xffffffffu) {
			return -1;
		}
	}
	*out = (uint32_t)v;
	return 0;
}

/* "# rumble ... next=N ..." */
static void parse_header(const char *line, uint32_t *next)
{
	const char *p = strstr(line, " next=");
	uint32_t v;
	char num[16];
	if (p && sscanf(p + 6, "%15[0-9]", num) == 1 && parse_u32(num, &v) == 0 && v > *next) {
		*next = v;
	}
}

/* The optional quota field: "KIB/MSGS", each a number (0 = not set) or
 * "none". */
static int parse_quota(const char *s, struct mm_quota *q)
{
	char kib[32], msgs[32];
	if (sscanf(s, "%31[0-9a-z]/%31[0-9a-z]", kib, msgs) != 2) {
		return -1;
	}
	const char *v[2] = {kib, msgs};
	uint64_t *out[2] = {&q->kib, &q->msgs};
	for (int i = 0; i < 2; i++) {
		char *end = NULL;
		if (strcmp(v[i], "none") == 0) {
			*out[i] = MM_QUOTA_NONE;
		} else if ((*out[i] = strtoull(v[i], &end, 10)) == MM_QUOTA_NONE || *end) {
			return -1;
		}
	}
	return 0;
}

static void put_quota(struct buf *b, const struct mm_quota *q)
{
	if (!q->kib && !q->msgs) {
		return; /* the line keeps the fields of format 1 */
	}
	const uint64_t v[2] = {q->kib, q->msgs};
	for (int i = 0; i < 2; i++) {
		if (v[i] == MM_QUOTA_NONE) {
			buf_printf(b, "%snone", i ? "/" : "\t");
		} else {
			buf_printf(b, "%s%llu", i ? "/" : "\t", (unsigned long long)v[i]);
		}
	}
}

static int parse_domain(char *line, struct mm_domain *d)
{
	char *fl[6];
	memset(d, 0, sizeof *d);
	int n = split_tabs(line, fl, 5);
	if ((n != 4 && n != 5) || (n == 5 && parse_quota(fl[4], &d->quota) != 0) ||
	        parse_u32(fl[0], &d->id) != 0 || d->id == 0 ||
	        !mm_valid_domain(fl[1]) ||
	        rl_strlcpy(d->path, fl[2], sizeof d->path) >= sizeof d->path ||
	        parse_u32(fl[3], &d->flags) != 0) {
		return -1;
	}
	lower_copy(d->name, sizeof d->name, fl[1]);
	return 0;
}

static int parse_account(char *line, struct mm_account *a)
{
	char *fl[8];
	memset(a, 0, sizeof *a);
	int n = split_tabs(line, fl, 7);
	if ((n != 6 && n != 7) || (n == 7 && parse_quota(fl[6], &a->quota) != 0) ||
	        parse_u32(fl[0], &a->id) != 0 || a->id == 0 ||
	        !mm_valid_domain(fl[1]) || !mm_valid_user(fl[2], 1) || mm_type_parse(fl[3]) < 0 ||
	        rl_strlcpy(a->password, fl[4], sizeof a->password) >= sizeof a->password ||
	        rl_strlcpy(a->args, fl[5], sizeof a->args) >= sizeof a->args) {
		return -1;
	}
	lower_copy(a->domain, sizeof a->domain, fl[1]);
	lower_copy(a->user, sizeof a->user, fl[2]);
	a->type = (enum mm_type)mm_type_parse(fl[3]);
	return 0;
}

static const struct mm_domain *find_domain(const struct tables *t, const char *name)
{
	for (uint32_t i = 0; i < t->ndom; i++) {
		if (rl_strcasecmp(t->dom[i].name, name) == 0) {
			return &t->dom[i];
		}
	}
	return NULL;
}

static struct mm_account *find_account(const struct tables *t, const char *domain, const char *user)
{
	for (uint32_t i = 0; i < t->nacc; i++) {
		struct mm_account *a = &t->acc[i];
		if (rl_strcasecmp(a->user, user) == 0 && rl_strcasecmp(a->domain, domain) == 0) {
			return a;
		}
	}
	return NULL;
}

static struct mm_account *find_account_id(const struct tables *t, uint32_t id)
{
	for (uint32_t i = 0; i < t->nacc; i++) {
		if (t->acc[i].id == id) {
			return &t->acc[i];
		}
	}
	return NULL;
}

static void note_bad(struct tables *t, const char *file, int line)
{
	log_warnx("mailman: %s/%s line %d is invalid and ignored", mm.storage, file, line);
	if (!t->bad_line) {
		t->bad_line = line;
		t->bad_file = file;
	}
}

/* Calls fn for each data line of text (comments and blank lines skipped,
 * a header line handed to parse_header for next). */
static void each_line(struct tables *t, char *text, const char *file, uint32_t *next,
        int (*fn)(struct tables *t, char *line))
{
	int lineno = 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
		}
		size_t n = strlen(line);
		if (n && line[n - 1] == '\r') {
			line[n - 1] = '\0'; /* edited on Windows */
		}
		lineno++;
		if (line[0] == '#') {
			parse_header(line, next);
		} else if (line[0] && fn(t, line) != 0) {
			note_bad(t, file, lineno);
		}
		line = nl ? nl + 1 : NULL;
	}
}

static int add_domain_line(struct tables *t, char *line)
{
	struct mm_domain d;
	if (parse_domain(line, &d) != 0 || find_domain(t, d.name)) {
		return -1;
	}
	t->dom = xrealloc(t->dom, (t->ndom + 1) * sizeof *t->dom);
	t->dom[t->ndom++] = d;
	if (d.id >= t->dom_next) {
		t->dom_next = d.id + 1;
	}
	return 0;
}

static int add_account_line(struct tables *t, char *line)
{
	struct mm_account a;
	if (parse_account(line, &a) != 0 || find_account(t, a.domain, a.user) ||
	        find_account_id(t, a.id)) {
		return -1;
	}
	t->acc = xrealloc(t->acc, (t->nacc + 1) * sizeof *t->acc);
	t->acc[t->nacc++] = a;
	if (a.id >= t->acc_next) {
		t->acc_next = a.id + 1;
	}
	return 0;
}

/* Reads both files into t (which must be empty). The stamps are taken
 * before reading: a change during the read then shows as a new stamp. */
static int tables_load(struct tables *t)
{
	struct buf d, a;
	buf_init(&d);
	buf_init(&a);
	memset(t, 0, sizeof *t);
	t->dom_next = t->acc_next = 1;
	stamp_get(mm.dpath, &t->dst);
	stamp_get(mm.apath, &t->ast);
	int64_t now = os_time();
	t->racy = (t->dst.exists && t->dst.mtime + RACY_SECONDS > now) ||
	          (t->ast.exists && t->ast.mtime + RACY_SECONDS > now);
	if (read_file(mm.dpath, &d) != 0 || read_file(mm.apath, &a) != 0) {
		buf_free(&d);
		buf_free(&a);
		return -1;
	}
	each_line(t, d.data, "domains", &t->dom_next, add_domain_line);
	each_line(t, a.data, "accounts", &t->acc_next, add_account_line);
	buf_free(&d);
	buf_free(&a);
	return 0;
}

/* Brings mm.t up to date with the files; mm.lock held. On a read error
 * the old tables stay. */
static void tables_fresh(int force)
{
	struct stamp ds, as;
	if (!force && !mm.t.racy) {
		stamp_get(mm.dpath, &ds);
		stamp_get(mm.apath, &as);
		if (stamp_same(&ds, &mm.t.dst) && stamp_same(&as, &mm.t.ast)) {
			return;
		}
	}
	struct tables t;
	if (tables_load(&t) != 0) {
		tables_free(&t);
		return;
	}
	tables_free(&mm.t);
	mm.t = t;
}

/* Locks the tables for a lookup, fresh. */
static int lookup_begin(void)
{
	if (!mm.open) {
		return -1;
	}
	os_mutex_lock(mm.lock);
	tables_fresh(0);
	return 0;
}

static void lookup_end(void)
{
	os_mutex_unlock(mm.lock);
}

/* ---- the tables: writing ---- */

static void write_domains(const struct tables *t, struct buf *b)
{
	buf_printf(b,
	        "# rumble domains 1 next=%u (id, name, path, flags[, quota]; tab-separated)\n",
	        t->dom_next);
	for (uint32_t i = 0; i < t->ndom; i++) {
		const struct mm_domain *d = &t->dom[i];
		buf_printf(b, "%u\t%s\t%s\t%u", d->id, d->name, d->path, d->flags);
		put_quota(b, &d->quota);
		buf_puts(b, "\n");
	}
}

static void write_accounts(const struct tables *t, struct buf *b)
{
	buf_printf(b,
	        "# rumble accounts 1 next=%u (id, domain, user, type, password, args[, quota]; "
	        "tab-separated)\n",
	        t->acc_next);
	for (uint32_t i = 0; i < t->nacc; i++) {
		const struct mm_account *a = &t->acc[i];
		buf_printf(b, "%u\t%s\t%s\t%s\t%s\t%s", a->id, a->domain, a->user,
		        mm_type_name(a->type), a->password, a->args);
		put_quota(b, &a->quota);
		buf_puts(b, "\n");
	}
}

enum { W_DOMAINS = 1, W_ACCOUNTS = 2 };

/* Leftovers of writers killed between their temporary file and its rename
 * (os_write_file_atomic: "<file>.tmp.<pid>.<n>") in dir, whose name starts
 * with prefix: the lock's holder is the only writer, so all are stale. */
struct sweep {
	const char *dir, *prefix;
};

static int sweep_one(const char *name, int is_dir, void *arg)
{
	const struct sweep *sw = arg;
	char path[1500];
	if (!is_dir && !strncmp(name, sw->prefix, strlen(sw->prefix)) &&
	        (size_t)snprintf(path, sizeof path, "%s/%s", sw->dir, name) < sizeof path &&
	        os_remove(path) == 0) {
		log_info("mailman: removed %s, left by a writer that was stopped", path);
	}
	return 0;
}

static void sweep_tmp(const char *dir, const char *prefix)
{
	struct sweep sw = {dir, prefix};
	os_dir_walk(dir, sweep_one, &sw);
}

/* Starts a change: the writer mutex, the lock file, the tables as they
 * are on disk now (into t). strict refuses files with invalid lines. */
static int edit_begin_any(FILE **lk, struct tables *t, int strict, char *err, size_t errlen)
{
	if (!mm.open) {
		seterr(err, errlen, "mailman is not open");
		return -1;
	}
	os_mutex_lock(mm.wlock);
	*lk = os_fopen_rw(mm.lpath);
	if (!*lk || os_lock(*lk) != 0) {
		log_warn("mailman: cannot lock %s", mm.lpath);
		seterr(err, errlen, "cannot lock %s: %s", mm.lpath, os_strerror());
		if (*lk) {
			fclose(*lk);
		}
		os_mutex_unlock(mm.wlock);
		return -1;
	}
	sweep_tmp(mm.storage, "accounts.tmp.");
	sweep_tmp(mm.storage, "domains.tmp.");
	if (tables_load(t) != 0 || (strict && t->bad_line)) {
		if (t->bad_line) {
			seterr(err, errlen, "%s/%s line %d is invalid; fix it first", mm.storage,
			        t->bad_file, t->bad_line);
		} else {
			seterr(err, errlen, "cannot read the account files: %s", os_strerror());
		}
		tables_free(t);
		os_unlock(*lk);
		fclose(*lk);
		os_mutex_unlock(mm.wlock);
		return -1;
	}
	return 0;
}

static int edit_begin(FILE **lk, struct tables *t, char *err, size_t errlen)
{
	return edit_begin_any(lk, t, 1, err, errlen);
}

/* Writes what changed (accounts first: a crash in between leaves at
 * worst a domain without its accounts, never accounts of a deleted
 * domain), installs t as the current tables and releases the locks.
 * which = 0 only releases. */
static int edit_end(FILE *lk, struct tables *t, int which, char *err, size_t errlen)
{
	int rc = 0;
	struct buf b;
	buf_init(&b);
	if (which & W_ACCOUNTS) {
		write_accounts(t, &b);
		if (os_write_file_atomic(mm.apath, b.data, b.len) != 0) {
			log_warn("mailman: cannot write %s", mm.apath);
			seterr(err, errlen, "cannot write %s: %s", mm.apath, os_strerror());
			rc = -1;
		}
	}
	if (rc == 0 && (which & W_DOMAINS)) {
		buf_reset(&b);
		write_domains(t, &b);
		if (os_write_file_atomic(mm.dpath, b.data, b.len) != 0) {
			log_warn("mailman: cannot write %s", mm.dpath);
			seterr(err, errlen, "cannot write %s: %s", mm.dpath, os_strerror());
			rc = -1;
		}
	}
	buf_free(&b);
	if (rc == 0 && which) {
		os_mutex_lock(mm.lock);
		stamp_get(mm.dpath, &t->dst);
		stamp_get(mm.apath, &t->ast);
		t->racy = 1; /* just written: same-tick writes by others must show */
		tables_free(&mm.t);
		mm.t = *t;
		os_mutex_unlock(mm.lock);
	} else {
		tables_free(t); /* nothing changed; the next lookup sees a failed write */
	}
	os_unlock(lk);
	fclose(lk);
	os_mutex_unlock(mm.wlock);
	return rc;
}

/* ---- open / close ---- */

static int ensure_file(const char *path, const char *header, char *err, size_t errlen)
{
	struct os_stat st;
	if (os_stat(path, &st) == 0) {
		return 0;
	}
	if (os_write_file_atomic(path, header, strlen(header)) != 0) {
		seterr(err, errlen, "cannot create %s: %s", path, os_strerror());
		return -1;
	}
	return 0;
}

/* see rumble.h */
int mm_open(const char *storage, char *err, size_t errlen)
{
	char mail[1100];
	if (mm.open) {
		mm_close();
	}
	memset(&mm, 0, sizeof mm);
	if (!storage || !*storage ||
	        rl_strlcpy(mm.storage, storage, sizeof mm.storage) >= sizeof mm.storage) {
		seterr(err, errlen, "bad storage folder");
		return -1;
	}
	snprintf(mm.dpath, sizeof mm.dpath, "%s/domains", storage);
	snprintf(mm.apath, sizeof mm.apath, "%s/accounts", storage);
	snprintf(mm.lpath, sizeof mm.lpath, "%s/accounts.lock", storage);
	snprintf(mail, sizeof mail, "%s/mail", storage);
	if (os_mkdir_p(mail) != 0) {
		seterr(err, errlen, "cannot create %s: %s", mail, os_strerror());
		return -1;
	}
	mm.lock = os_mutex_new();
	mm.wlock = os_mutex_new();
	mm.open = 1;
	/* Under the lock, so that two processes starting at once do not
	 * replace each other's fresh file. */
	FILE *lk;
	struct tables t;
	if (edit_begin_any(&lk, &t, 0, err, errlen) != 0) {
		mm_close();
		return -1;
	}
	int rc = ensure_file(mm.dpath,
	        "# rumble domains 1 next=1 (id, name, path, flags; "
	        "tab-separated)\n",
	        err, errlen);
	if (rc == 0) {
		rc = ensure_file(mm.apath,
		        "# rumble accounts 1 next=1 (id, domain, user, type, "
		        "password, args; tab-separated)\n",
		        err, errlen);
	}
	edit_end(lk, &t, 0, NULL, 0);
	if (rc != 0) {
		mm_close();
	}
	return rc;
}

void mm_close(void)
{
	mm__watch_stop();
	if (!mm.open) {
		return;
	}
	tables_free(&mm.t);
	os_mutex_free(mm.lock);
	os_mutex_free(mm.wlock);
	memset(&mm, 0, sizeof mm);
}

const char *mm_storage(void)
{
	return mm.storage;
}

void mm_reload(void)
{
	if (!mm.open) {
		return;
	}
	os_mutex_lock(mm.lock);
	tables_fresh(1);
	os_mutex_unlock(mm.lock);
}

/* see rumble.h */
int mm__domain_dir(const char *domain, char *out, size_t outlen)
{
	char name[MM_DOMAIN_MAX + 1], esc[3 * MM_DOMAIN_MAX + 1], path[512] = "";
	if (!mm_valid_domain(domain) || lower_copy(name, sizeof name, domain) != 0 ||
	        mm__fs_name(name, esc, sizeof esc) != 0 || lookup_begin() != 0) {
		return -1;
	}
	const struct mm_domain *d = find_domain(&mm.t, name);
	if (d) {
		rl_strlcpy(path, d->path, sizeof path);
	}
	lookup_end();
	size_t n = path[0] ? (size_t)snprintf(out, outlen, "%s", path)
	                   : (size_t)snprintf(out, outlen, "%s/mail/%s", mm.storage, esc);
	return n < outlen ? 0 : -1;
}

/* ---- domains ---- */

int mm_domain_exists(const char *name)
{
	if (!name || lookup_begin() != 0) {
		return 0;
	}
	int found = find_domain(&mm.t, name) != NULL;
	lookup_end();
	return found;
}

int mm_domain_count(void)
{
	if (lookup_begin() != 0) {
		return 0;
	}
	int n = (int)mm.t.ndom;
	lookup_end();
	return n;
}

int mm_domain_add(const char *name, char *err, size_t errlen)
{
	struct mm_domain d;
	memset(&d, 0, sizeof d);
	if (!mm_valid_domain(name) || lower_copy(d.name, sizeof d.name, name) != 0) {
		seterr(err, errlen, "invalid domain name");
		return -1;
	}
	FILE *lk;
	struct tables t;
	if (edit_begin(&lk, &t, err, errlen) != 0) {
		return -1;
	}
	if (find_domain(&t, d.name)) {
		seterr(err, errlen, "domain %s exists already", d.name);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	d.id = t.dom_next++;
	t.dom = xrealloc(t.dom, (t.ndom + 1) * sizeof *t.dom);
	t.dom[t.ndom++] = d;
	return edit_end(lk, &t, W_DOMAINS, err, errlen);
}

int mm_domain_del(const char *name, char *err, size_t errlen)
{
	FILE *lk;
	struct tables t;
	if (!name || edit_begin(&lk, &t, err, errlen) != 0) {
		return -1;
	}
	const struct mm_domain *d = find_domain(&t, name);
	if (!d) {
		seterr(err, errlen, "no such domain: %s", name);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	char dname[MM_DOMAIN_MAX + 1];
	rl_strlcpy(dname, d->name, sizeof dname);
	uint32_t n = 0;
	for (uint32_t i = 0; i < t.nacc; i++) {
		if (strcmp(t.acc[i].domain, dname) != 0) {
			t.acc[n++] = t.acc[i];
		}
	}
	t.nacc = n;
	n = 0;
	for (uint32_t i = 0; i < t.ndom; i++) {
		if (strcmp(t.dom[i].name, dname) != 0) {
			t.dom[n++] = t.dom[i];
		}
	}
	t.ndom = n;
	return edit_end(lk, &t, W_DOMAINS | W_ACCOUNTS, err, errlen);
}

int mm_domain_list(int (*fn)(const struct mm_domain *d, void *arg), void *arg)
{
	if (lookup_begin() != 0) {
		return 0;
	}
	/* a copy: fn may call back into mailman */
	uint32_t n = mm.t.ndom;
	struct mm_domain *v = xmalloc((n ? n : 1) * sizeof *v);
	if (n) {
		memcpy(v, mm.t.dom, n * sizeof *v);
	}
	lookup_end();
	int r = 0;
	for (uint32_t i = 0; i < n && r == 0; i++) {
		r = fn(&v[i], arg);
	}
	xfree(v);
	return r;
}

/* see rumble.h */
int mm_domain_get(const char *name, struct mm_domain *out)
{
	if (!name || lookup_begin() != 0) {
		return -1;
	}
	const struct mm_domain *d = find_domain(&mm.t, name);
	if (d) {
		*out = *d;
	}
	lookup_end();
	return d ? 0 : -1;
}

/* see rumble.h */
int mm_domain_set_quota(const char *name, const struct mm_quota *q, char *err, size_t errlen)
{
	FILE *lk;
	struct tables t;
	if (!name || edit_begin(&lk, &t, err, errlen) != 0) {
		return -1;
	}
	struct mm_domain *d = (struct mm_domain *)find_domain(&t, name);
	if (!d) {
		seterr(err, errlen, "no such domain: %s", name);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	d->quota = *q;
	return edit_end(lk, &t, W_DOMAINS, err, errlen);
}

/* ---- accounts ---- */

int mm_account_get(const char *domain, const char *user, struct mm_account *out)
{
	if (!domain || !user || lookup_begin() != 0) {
		return -1;
	}
	const struct mm_account *a = find_account(&mm.t, domain, user);
	if (a) {
		*out = *a;
	}
	lookup_end();
	return a ? 0 : -1;
}

static int first_domain(const struct mm_domain *d, void *arg)
{
	rl_strlcpy(arg, d->name, MM_DOMAIN_MAX + 1);
	return 1;
}

/* see rumble.h */
int mm_login(const char *login, const char *password, struct mm_account *out)
{
	/* a real hash to verify when there is no account, so that a wrong
	 * name takes as long as a wrong password */
	static const char dummy[] = "pbkdf2-sha256$75000$00000000000000000000000000000000$"
				    "0000000000000000000000000000000000000000000000000000000000000000";
	char user[MM_USER_MAX + 1] = "", domain[MM_DOMAIN_MAX + 1] = "";
	const char *at = strrchr(login, '@');
	size_t ulen = at ? (size_t)(at - login) : strlen(login);
	int found = -1;
	if (ulen && ulen <= MM_USER_MAX && (!at || strlen(at + 1) <= MM_DOMAIN_MAX)) {
		memcpy(user, login, ulen);
		user[ulen] = '\0';
		if (at) {
			rl_strlcpy(domain, at + 1, sizeof domain);
		} else if (mm_domain_count() == 1) {
			mm_domain_list(first_domain, domain);
		}
		rl_lower(user);
		rl_lower(domain);
		found = *domain && mm_valid_user(user, 0) ? mm_account_get(domain, user, out) : -1;
	}
	char name[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(name, sizeof name, "%s@%s", user, domain);
	if (found == 0 && out->type == MM_MBOX && auth_cache_hit(name, out->password, password)) {
		return 0;
	}
	int ok = crypto_password_verify(found == 0 ? out->password : dummy, password);
	if (found == 0 && ok && out->type == MM_MBOX) {
		auth_cache_add(name, out->password, password);
		return 0;
	}
	return -1;
}

int mm_account_get_id(uint32_t id, struct mm_account *out)
{
	if (lookup_begin() != 0) {
		return -1;
	}
	const struct mm_account *a = find_account_id(&mm.t, id);
	if (a) {
		*out = *a;
	}
	lookup_end();
	return a ? 0 : -1;
}

/* Literal (non-wildcard) characters of a pattern: the more, the more
 * specific. */
static size_t glob_literals(const char *p)
{
	size_t n = 0;
	for (; *p; p++) {
		n += *p != '*' && *p != '?';
	}
	return n;
}

/* 1 when pattern a is more specific than b: more literal characters,
 * then the longer pattern, then the older account. */
static int more_specific(const struct mm_account *a, const struct mm_account *b)
{
	size_t la = glob_literals(a->user), lb = glob_literals(b->user);
	if (la != lb) {
		return la > lb;
	}
	size_t na = strlen(a->user), nb = strlen(b->user);
	if (na != nb) {
		return na > nb;
	}
	return a->id < b->id;
}

int mm_account_match(const char *domain, const char *user, struct mm_account *out)
{
	if (!domain || !user || lookup_begin() != 0) {
		return -1;
	}
	const struct mm_account *best = find_account(&mm.t, domain, user);
	const char *plus = strchr(user, '+');
	if (!best && plus && plus > user && (size_t)(plus - user) <= MM_USER_MAX) {
		char base[MM_USER_MAX + 1]; /* user+detail@ is user's (RFC 5233) */
		snprintf(base, sizeof base, "%.*s", (int)(plus - user), user);
		best = find_account(&mm.t, domain, base);
	}
	if (!best) {
		for (uint32_t i = 0; i < mm.t.nacc; i++) {
			const struct mm_account *a = &mm.t.acc[i];
			if (rl_strcasecmp(a->domain, domain) == 0 && strpbrk(a->user, "*?") &&
			        mm_glob_match(a->user, user) && (!best || more_specific(a, best))) {
				best = a;
			}
		}
	}
	if (best) {
		*out = *best;
	}
	lookup_end();
	return best ? 0 : -1;
}

/* The first mailbox or alias (not a pattern) of the first domain. Under
 * lookup_begin. */
static const struct mm_account *first_account(const struct tables *t)
{
	for (uint32_t i = 0; t->ndom && i < t->nacc; i++) {
		const struct mm_account *a = &t->acc[i];
		if (!rl_strcasecmp(a->domain, t->dom[0].name) && !strpbrk(a->user, "*?") &&
		        (a->type == MM_MBOX || a->type == MM_ALIAS)) {
			return a;
		}
	}
	return NULL;
}

/* see rumble.h */
int mm_postmaster(struct mm_account *out)
{
	const char *list = conf.postmaster[0] ? conf.postmaster : conf.webadmin_users;
	char addr[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	size_t w = strcspn(list, " \t,");
	if (w > 0 && w < sizeof addr) {
		memcpy(addr, list, w);
		addr[w] = '\0';
		char *at = strrchr(addr, '@');
		if (!at) {
			return -1;
		}
		*at = '\0';
		return mm_account_match(at + 1, addr, out); /* exact or a pattern, no postmaster */
	}
	if (lookup_begin() != 0) {
		return -1;
	}
	const struct mm_account *a = first_account(&mm.t);
	if (a) {
		*out = *a;
	}
	lookup_end();
	return a ? 0 : -1;
}

/* No tab, CR or LF: they would break the line format. */
static int field_ok(const char *s, size_t cap)
{
	const char *nul = memchr(s, '\0', cap);
	return nul && strcspn(s, "\t\r\n") == (size_t)(nul - s);
}

static int account_check(struct mm_account *a, const struct tables *t, char *err, size_t errlen)
{
	if (!field_ok(a->domain, sizeof a->domain) || !mm_valid_domain(a->domain)) {
		seterr(err, errlen, "invalid domain name");
		return -1;
	}
	rl_lower(a->domain);
	if (!find_domain(t, a->domain)) {
		seterr(err, errlen, "no such domain: %s", a->domain);
		return -1;
	}
	if (!field_ok(a->user, sizeof a->user) || !mm_valid_user(a->user, 1)) {
		seterr(err, errlen, "invalid user name");
		return -1;
	}
	rl_lower(a->user);
	if ((int)a->type < 0 || (int)a->type >= NTYPES) {
		seterr(err, errlen, "unknown account type %d", (int)a->type);
		return -1;
	}
	if (!field_ok(a->password, sizeof a->password) || !field_ok(a->args, sizeof a->args)) {
		seterr(err, errlen, "password or arguments hold a tab or line break");
		return -1;
	}
	return 0;
}

int mm_account_save(struct mm_account *a, char *err, size_t errlen)
{
	FILE *lk;
	struct tables t;
	if (edit_begin(&lk, &t, err, errlen) != 0) {
		return -1;
	}
	if (account_check(a, &t, err, errlen) != 0) {
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	struct mm_account *cur =
	        a->id ? find_account_id(&t, a->id) : find_account(&t, a->domain, a->user);
	struct mm_account *same = find_account(&t, a->domain, a->user);
	if (a->id && !cur) {
		seterr(err, errlen, "no account with id %u", a->id);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	if (same && same != cur) {
		seterr(err, errlen, "%s@%s exists already", a->user, a->domain);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	if (cur) {
		a->id = cur->id;
		*cur = *a;
	} else {
		a->id = t.acc_next++;
		t.acc = xrealloc(t.acc, (t.nacc + 1) * sizeof *t.acc);
		t.acc[t.nacc++] = *a;
	}
	return edit_end(lk, &t, W_ACCOUNTS, err, errlen);
}

int mm_account_del(const char *domain, const char *user, char *err, size_t errlen)
{
	FILE *lk;
	struct tables t;
	if (!domain || !user || edit_begin(&lk, &t, err, errlen) != 0) {
		return -1;
	}
	struct mm_account *a = find_account(&t, domain, user);
	if (!a) {
		seterr(err, errlen, "no such account: %s@%s", user, domain);
		edit_end(lk, &t, 0, NULL, 0);
		return -1;
	}
	size_t i = (size_t)(a - t.acc);
	memmove(a, a + 1, (t.nacc - i - 1) * sizeof *a);
	t.nacc--;
	return edit_end(lk, &t, W_ACCOUNTS, err, errlen);
}

/* domain NULL lists every account. Stops when fn returns non-zero and
 * returns that value. */
int mm_account_list(const char *domain, int (*fn)(const struct mm_account *a, void *arg), void *arg)
{
	if (lookup_begin() != 0) {
		return 0;
	}
	uint32_t n = 0;
	struct mm_account *v = xmalloc((mm.t.nacc ? mm.t.nacc : 1) * sizeof *v);
	for (uint32_t i = 0; i < mm.t.nacc; i++) {
		if (!domain || rl_strcasecmp(mm.t.acc[i].domain, domain) == 0) {
			v[n++] = mm.t.acc[i];
		}
	}
	lookup_end();
	int r = 0;
	for (uint32_t i = 0; i < n && r == 0; i++) {
		r = fn(&v[i], arg);
	}
	xfree(v);
	return r;
}

/* ---- folders: listing (the files are mbox.c's) ---- */

struct fnames {
	char **v;
	size_t n;
};

static int collect_folder(const char *name, int is_dir, void *arg)
{
	struct fnames *ns = arg;
	size_t n = strlen(name);
	char folder[MM_FOLDER_MAX + 1];
	if (is_dir || n <= 5 || strcmp(name + n - 5, ".mbox") != 0 ||
	        strcmp(name, "INBOX.mbox") == 0 ||
	        mm__file_folder(name, n - 5, folder, sizeof folder) != 0) {
		return 0;
	}
	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof *ns->v);
	ns->v[ns->n++] = xstrdup(folder);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* see rumble.h; INBOX first (always), then the others sorted. */
int mm_folder_list(
        const char *domain, const char *user, int (*fn)(const char *name, void *arg), void *arg)
{
	char dir[1024], base[1400];
	struct fnames ns = {NULL, 0};
	if (mm__folder_base(domain, user, "INBOX", dir, sizeof dir, base, sizeof base) != 0) {
		return -1;
	}
	os_dir_walk(dir, collect_folder, &ns); /* none yet: only INBOX */
	if (ns.n > 1) {
		qsort(ns.v, ns.n, sizeof *ns.v, cmp_names); /* ns.v is NULL when empty */
	}
	int r = fn("INBOX", arg);
	for (size_t i = 0; i < ns.n; i++) {
		if (r == 0) {
			r = fn(ns.v[i], arg);
		}
		xfree(ns.v[i]);
	}
	xfree(ns.v);
	return r;
}

/* ---- folders: creating, deleting and renaming ---- */

/* A folder's directory and base name (dir/NAME, see mbox.c). */
struct fpath {
	char dir[1024], base[1400];
};

static int fpath_of(struct fpath *p, const char *domain, const char *user, const char *folder)
{
	return mm__folder_base(
	        domain, user, folder, p->dir, sizeof p->dir, p->base, sizeof p->base);
}

/* base + ext */
static const char *fpath_file(const struct fpath *p, const char *ext, char *out, size_t len)
{
	snprintf(out, len, "%s%s", p->base, ext);
	return out;
}

static int folder_exists(const struct fpath *p)
{
	char path[1500];
	struct os_stat st;
	return os_stat(fpath_file(p, ".mbox", path, sizeof path), &st) == 0;
}

/* see rumble.h */
int mm_folder_create(const char *domain, const char *user, const char *folder)
{
	struct fpath tmp;
	struct mm_folder *f;
	if (fpath_of(&tmp, domain, user, folder) != 0) {
		return -1;
	}
	if (folder_exists(&tmp)) {
		return 1;
	}
	if (mm_folder_open(domain, user, folder, 1, &f) != 0) {
		return -1;
	}
	mm_folder_close(f);
	return 0;
}

/* Takes the file lock of tmp's folder into *lk. */
static int lock_paths(const struct fpath *tmp, FILE **lk)
{
	char path[1500];
	*lk = os_fopen_rw(fpath_file(tmp, ".lock", path, sizeof path));
	if (!*lk || os_lock(*lk) != 0) {
		if (*lk) {
			fclose(*lk);
		}
		return -1;
	}
	const char *name = strrchr(tmp->base, '/');
	snprintf(path, sizeof path, "%s.mbox.tmp.", name ? name + 1 : tmp->base);
	sweep_tmp(tmp->dir, path); /* a new INBOX (mm_folder_rename) */
	return 0;
}

static void unlock_paths(FILE *lk)
{
	os_unlock(lk);
	fclose(lk);
}

/* see rumble.h. The lock file stays: it remembers the last UIDVALIDITY,
 * so a folder made again under the name gets a greater one (RFC 3501
 * 2.3.1.1). Sessions that still have it open fail their next refresh. */
int mm_folder_delete(const char *domain, const char *user, const char *folder)
{
	struct fpath tmp;
	char mpath[1500], ipath[1500];
	FILE *lk;
	if (!folder || rl_strcasecmp(folder, "INBOX") == 0 ||
	        fpath_of(&tmp, domain, user, folder) != 0 || !folder_exists(&tmp) ||
	        lock_paths(&tmp, &lk) != 0) {
		return -1;
	}
	fpath_file(&tmp, ".mbox", mpath, sizeof mpath);
	fpath_file(&tmp, ".idx", ipath, sizeof ipath);
	mm__remember_uidvalidity(lk, ipath);
	int rc = os_remove(mpath);
	os_remove(ipath);
	os_fsync_dir(tmp.dir);
	mm__forget(tmp.base); /* the next open makes a new box; holders find it gone */
	unlock_paths(lk);
	quota__forget(tmp.dir); /* its messages no longer count: summed again */
	return rc == 0 ? 0 : -1;
}

/* see rumble.h. INBOX renamed leaves an empty INBOX at once (RFC 3501
 * 6.3.5), with a greater UIDVALIDITY: holders of the old one (the queue,
 * a session) find files that are not theirs and load them again. */
int mm_folder_rename(const char *domain, const char *user, const char *from, const char *to)
{
	struct fpath a, b;
	char pa[1500], pb[1500];
	FILE *lk;
	if (!from || !to || rl_strcasecmp(to, "INBOX") == 0 ||
	        fpath_of(&a, domain, user, from) != 0 || fpath_of(&b, domain, user, to) != 0 ||
	        !folder_exists(&a)) {
		return -1;
	}
	if (folder_exists(&b)) {
		return 1;
	}
	if (lock_paths(&a, &lk) != 0) {
		return -1;
	}
	/* for a folder made again under the old name */
	mm__remember_uidvalidity(lk, fpath_file(&a, ".idx", pa, sizeof pa));
	int rc = os_rename_atomic(
	        fpath_file(&a, ".mbox", pa, sizeof pa), fpath_file(&b, ".mbox", pb, sizeof pb));
	if (rc == 0) {
		/* if this one fails, the index is rebuilt */
		os_rename_atomic(fpath_file(&a, ".idx", pa, sizeof pa),
		        fpath_file(&b, ".idx", pb, sizeof pb));
		if (rl_strcasecmp(from, "INBOX") == 0 &&
		        os_write_file_atomic(fpath_file(&a, ".mbox", pa, sizeof pa), "", 0) != 0) {
			log_warn("cannot make a new INBOX for %s@%s", user, domain);
		}
		os_fsync_dir(a.dir);
		mm__forget(a.base);
	}
	unlock_paths(lk);
	return rc == 0 ? 0 : -1;
}

/* ---- IMAP subscriptions, one name a line in <user dir>/subscriptions ---- */

static os_mutex *subs_mu; /* one writer at a time in this process */

static os_mutex *subs_mutex(void)
{
	return rl_mutex_once(&subs_mu);
}

/* see rumble.h */
int mm_user_file(const char *domain, const char *user, const char *name, char *out, size_t len)
{
	struct fpath tmp;
	if (fpath_of(&tmp, domain, user, "INBOX") != 0) {
		return -1;
	}
	return (size_t)snprintf(out, len, "%s/%s", tmp.dir, name) < len && os_mkdir_p(tmp.dir) == 0
	               ? 0
	               : -1;
}

static int subs_path(const char *domain, const char *user, char *out, size_t len)
{
	return mm_user_file(domain, user, "subscriptions", out, len);
}

/* Reads the file into b (empty when there is none). */
static void subs_read(const char *path, struct buf *b)
{
	FILE *fp = os_fopen(path, "rb");
	char chunk[4096];
	size_t n;
	while (fp && (n = fread(chunk, 1, sizeof chunk, fp)) > 0 && b->len < 1024 * 1024) {
		buf_append(b, chunk, n);
	}
	if (fp) {
		fclose(fp);
	}
}

/* see rumble.h */
int mm_subscription_list(
        const char *domain, const char *user, int (*fn)(const char *name, void *arg), void *arg)
{
	char path[1500];
	struct buf b;
	if (subs_path(domain, user, path, sizeof path) != 0) {
		return -1;
	}
	buf_init(&b);
	os_mutex_lock(subs_mutex());
	subs_read(path, &b);
	os_mutex_unlock(subs_mutex());
	int r = 0;
	for (char *p = b.data, *nl; r == 0 && p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl) {
			break;
		}
		*nl = '\0';
		if (*p) {
			r = fn(p, arg);
		}
	}
	buf_free(&b);
	return r;
}

/* see rumble.h */
int mm_subscription_set(const char *domain, const char *user, const char *name, int on)
{
	char path[1500];
	struct buf b, out;
	if (!name || (!mm_valid_folder(name) && rl_strcasecmp(name, "INBOX") != 0) ||
	        subs_path(domain, user, path, sizeof path) != 0) {
		return -1;
	}
	buf_init(&b);
	buf_init(&out);
	os_mutex_lock(subs_mutex());
	subs_read(path, &b);
	int found = 0;
	for (char *p = b.data, *nl; p && *p && (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		if (strcmp(p, name) == 0) {
			found = 1;
		} else if (*p) {
			buf_printf(&out, "%s\n", p);
		}
	}
	if (on) {
		buf_printf(&out, "%s\n", name);
	}
	int rc = found == on ? 0 : os_write_file_atomic(path, out.data ? out.data : "", out.len);
	os_mutex_unlock(subs_mutex());
	buf_free(&b);
	buf_free(&out);
	return rc;
}
