/*
 * sieve.c - Sieve in the server: where a user's scripts live
 * (<user's folder>/sieve/NAME.sieve, the active one named in
 * sieve/active), running the active one at delivery (queue.c acts on the
 * result), `rumble user sieve`, and `rumble sieve check|test`, which run
 * a script on a message as Pigeonhole's sieve-test does (the
 * differential tests compare the two).
 */
#include <ctype.h>
#include <string.h>

#include "admin.h"
#include "sieve.h"

#define SIEVE_MESSAGE_MAX (64 * 1024 * 1024) /* what `sieve test` reads */
#define SIEVE_SEEN_MAX (256 * 1024) /* of a message a script sees at delivery */
#define SIEVE_STEM_MAX (3 * SIEVE_NAME_MAX) /* a name as a file name, escaped */

/* The whole file appended to b; 0, -1 when it cannot be opened or
 * read (the OS error kept), -2 when it is larger than max. Quiet: the
 * server's callers log, the command's say it (read_file). */
static int read_capped(const char *path, size_t max, struct buf *b)
{
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return -1;
	}
	char chunk[16384];
	size_t n, start = b->len;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b->len - start <= max) {
		buf_append(b, chunk, n);
	}
	int bad = ferror(f);
	fclose(f);
	return bad ? -1 : b->len - start > max ? -2 : 0;
}

/* read_capped for the command line: -1 after a one-line message. */
static int read_file(const char *path, size_t max, struct buf *b)
{
	int rc = read_capped(path, max, b);
	if (rc != 0) {
		fprintf(stderr, "rumble: sieve: %s: %s\n", path, rc == -2 ? "too large" : os_strerror());
	}
	return rc == 0 ? 0 : -1;
}

static struct sieve_script *compile_file(const char *path)
{
	struct buf src;
	char err[300];
	struct sieve_script *s = NULL;
	buf_init(&src);
	if (read_file(path, SIEVE_SCRIPT_MAX, &src) == 0 &&
	        sieve_compile(src.data ? src.data : "", src.len, &s, err, sizeof err) != 0) {
		fprintf(stderr, "rumble: sieve: %s:%s\n", path, err);
	}
	buf_free(&src);
	return s;
}

/* ---- where scripts live ---- */

#define NAME_SAFE "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

static int valid_name(const char *n)
{
	size_t len = strlen(n);
	return len > 0 && len <= SIEVE_NAME_MAX && n[0] != '.' && strspn(n, NAME_SAFE) == len;
}

/* A file stem: what sieve_name_encode makes (names stored before
 * ManageSieve, valid_name's, are stems of themselves). */
static int valid_stem(const char *n)
{
	size_t len = strlen(n);
	return len > 0 && len <= SIEVE_STEM_MAX && n[0] != '.' && strspn(n, NAME_SAFE "%") == len;
}

/* Bytes of the UTF-8 character at p (RFC 3629), 0 when it is not one or
 * is a control character (RFC 5804 1.6: 0-1F, 7F-9F, U+2028, U+2029). */
static size_t name_char(const unsigned char *p)
{
	if (p[0] < 0x80) {
		return p[0] >= 0x20 && p[0] != 0x7f;
	}
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	uint32_t c = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return 0;
		}
		c = c << 6 | (p[i] & 0x3f);
	}
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	int bad = n == 0 || n > 4 || c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
	          (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029;
	return bad ? 0 : n;
}

/* see sieve.h */
int sieve_name_encode(const char *name, char *out, size_t len)
{
	size_t o = 0, n = strlen(name);
	if (n == 0 || n > SIEVE_NAME_MAX) {
		return -1;
	}
	for (size_t i = 0, w; i < n; i += w) {
		if ((w = name_char((const unsigned char *)name + i)) == 0) {
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		int keep = c && strchr(NAME_SAFE, c) && (c != '.' || i > 0);
		if (o + 4 > len) {
			return -1;
		}
		o += keep ? (size_t)snprintf(out + o, len - o, "%c", c)
		          : (size_t)snprintf(out + o, len - o, "%%%02X", c);
	}
	return 0;
}

/* see sieve.h */
int sieve_name_decode(const char *stem, char *out, size_t len)
{
	size_t o = 0;
	if (!valid_stem(stem)) {
		return -1;
	}
	for (const char *p = stem; *p; p++) {
		unsigned v = (unsigned char)*p;
		if (*p == '%' && (sscanf(p + 1, "%2x", &v) != 1 || !isxdigit((unsigned char)p[1]) ||
		                         !isxdigit((unsigned char)p[2]))) {
			return -1;
		}
		p += *p == '%' ? 2 : 0;
		if (o + 1 >= len || v == 0) {
			return -1;
		}
		out[o++] = (char)v;
	}
	out[o] = '\0';
	return 0;
}

/* user's sieve folder, and file (NULL: the folder itself) in it. */
static int sieve_path(const char *domain, const char *user, const char *file, char *out,
	size_t len)
{
	char dir[1100], base[1400];
	if (mm__folder_base(domain, user, "INBOX", dir, sizeof dir, base, sizeof base) != 0) {
		return -1;
	}
	size_t n = file ? (size_t)snprintf(out, len, "%s/sieve/%s", dir, file)
	                : (size_t)snprintf(out, len, "%s/sieve", dir);
	return n < len ? 0 : -1;
}

/* The active script's name into name ("" when none). */
static void active_name(const char *domain, const char *user, char *name, size_t len)
{
	char path[1200];
	struct buf b;
	buf_init(&b);
	name[0] = '\0';
	if (sieve_path(domain, user, "active", path, sizeof path) == 0) {
		FILE *f = os_fopen(path, "rb");
		size_t n = f ? fread(name, 1, len - 1, f) : 0;
		if (f) {
			fclose(f);
		}
		name[n] = '\0';
		name[strcspn(name, "\r\n")] = '\0';
		if (!valid_stem(name)) {
			name[0] = '\0';
		}
	}
}

/* The active script of user, compiled; NULL when there is none or it
 * does not compile any more (logged: the mail goes to INBOX). */
static struct sieve_script *active_script(const char *domain, const char *user)
{
	char name[SIEVE_STEM_MAX + 8], file[SIEVE_STEM_MAX + 16], path[1200], err[300];
	active_name(domain, user, name, sizeof name);
	snprintf(file, sizeof file, "%s.sieve", name);
	if (!name[0] || sieve_path(domain, user, file, path, sizeof path) != 0) {
		return NULL;
	}
	struct buf src;
	buf_init(&src);
	if (read_capped(path, SIEVE_SCRIPT_MAX, &src) == -1) {
		log_warnx("sieve: %s@%s: the active script %s is missing", user, domain, name);
		buf_free(&src);
		return NULL;
	}
	struct sieve_script *s = NULL;
	if (sieve_compile(src.data ? src.data : "", src.len, &s, err, sizeof err) != 0) {
		log_warnx("sieve: %s@%s: script %s: %s (delivered to INBOX)", user, domain, name, err);
	}
	buf_free(&src);
	return s;
}

struct exists_arg {
	const char *domain, *user;
	const char *dir; /* `sieve test`: where included scripts are; NULL at delivery */
};

static int folder_exists(void *arg, const char *name)
{
	const struct exists_arg *e = arg;
	struct mm_folder *f;
	if (!mm_valid_folder(name) || mm_folder_open(e->domain, e->user, name, 0, &f) != 0) {
		return 0;
	}
	mm_folder_close(f);
	return 1;
}

/* see sieve.h */
char *sieve_head(struct spool *sp, size_t *len)
{
	size_t seen = sp->len < SIEVE_SEEN_MAX ? (size_t)sp->len : SIEVE_SEEN_MAX;
	char *msg = xmalloc(seen + 1);
	long got = spool_read(sp, 0, msg, seen);
	*len = got > 0 ? (size_t)got : 0;
	msg[*len] = '\0';
	return msg;
}

/* include (RFC 6609): a personal script is one of the user's (a `sieve
 * test` one is beside the script tested), a global one is in
 * StorageFolder/sieve-global/ (for `sieve test`, global/ beside it). */
static int load_script(void *arg, int global, const char *name, struct buf *out)
{
	const struct exists_arg *e = arg;
	char path[1200], file[SIEVE_NAME_MAX + 8];
	if (!valid_name(name)) {
		return -1;
	}
	snprintf(file, sizeof file, "%s.sieve", name);
	if (e->dir) {
		snprintf(path, sizeof path, "%s/%s%s", e->dir, global ? "global/" : "", file);
	} else if (global) {
		snprintf(path, sizeof path, "%s/sieve-global/%s", mm_storage(), file);
	} else if (sieve_path(e->domain, e->user, file, path, sizeof path) != 0) {
		return -1;
	}
	/* none: no noise, include says what it wants */
	return read_capped(path, SIEVE_SCRIPT_MAX, out) == 0 ? 0 : -1;
}

/* ---- duplicate (RFC 7352): "EXPIRES KEY" lines in sieve/duplicate ---- */

#define DUPLICATE_MEMORY 5000 /* keys remembered per mailbox */

/* The user's unexpired tracked keys into b (at most DUPLICATE_MEMORY);
 * *expires: key's expiry, or -1 when it is not tracked. */
static void duplicate_read(const struct exists_arg *e, const char *key, struct buf *b,
	int64_t *expires)
{
	char path[1200], line[128];
	*expires = -1;
	FILE *f = sieve_path(e->domain, e->user, "duplicate", path, sizeof path) == 0
	              ? os_fopen(path, "rb") : NULL;
	int64_t now = os_time();
	for (int n = 0; f && n < DUPLICATE_MEMORY && fgets(line, sizeof line, f);) {
		long long t;
		char h[65];
		if (sscanf(line, "%lld %64s", &t, h) != 2 || t <= now) {
			continue;
		}
		if (key && !strcmp(h, key)) {
			*expires = t;
			continue;
		}
		buf_printf(b, "%lld %s\n", t, h);
		n++;
	}
	if (f) {
		fclose(f);
	}
}

static int duplicate_seen(void *arg, const char *key)
{
	struct buf b;
	int64_t expires;
	buf_init(&b);
	duplicate_read(arg, key, &b, &expires);
	buf_free(&b);
	return expires >= 0;
}

/* see sieve.h */
void sieve_duplicate_commit(const char *domain, const char *user, const struct sieve_result *r)
{
	struct exists_arg e = {domain, user, NULL};
	for (int i = 0; i < r->n; i++) {
		const struct sieve_action *a = &r->v[i];
		struct buf b, out;
		int64_t expires;
		if (a->kind != SA_DUPLICATE) {
			continue;
		}
		buf_init(&b);
		buf_init(&out);
		duplicate_read(&e, a->arg, &b, &expires);
		if (expires < 0 || a->last) {
			expires = os_time() + a->seconds;
		}
		buf_printf(&out, "%lld %s\n", (long long)expires, a->arg); /* newest first */
		buf_append(&out, b.data ? b.data : "", b.len);
		char path[1200];
		if (sieve_path(domain, user, "duplicate", path, sizeof path) == 0 &&
		        os_write_file_atomic(path, out.data, out.len) != 0) {
			log_warn("sieve: %s@%s: cannot write %s", user, domain, path);
		}
		buf_free(&b);
		buf_free(&out);
	}
}

/* The domain's script that runs before (or after) every user's:
 * StorageFolder/mail/DOMAIN/sieve-before.sieve (sieve-after.sieve);
 * NULL when there is none or it does not compile (logged). */
static struct sieve_script *domain_script(const char *domain, const char *when)
{
	char dir[1024], path[1200], err[300];
	struct buf src;
	struct sieve_script *s = NULL;
	if (mm__domain_dir(domain, dir, sizeof dir) != 0) {
		return NULL;
	}
	snprintf(path, sizeof path, "%s/sieve-%s.sieve", dir, when);
	buf_init(&src);
	if (read_capped(path, SIEVE_SCRIPT_MAX, &src) == 0 &&
	        sieve_compile(src.data ? src.data : "", src.len, &s, err, sizeof err) != 0) {
		log_warnx("sieve: %s: %s (not run)", path, err);
	}
	buf_free(&src);
	return s;
}

/* see sieve.h */
int sieve_decide(const char *domain, const char *user, const char *to, struct spool *sp,
	const char *from, struct sieve_result *r)
{
	struct sieve_script *s[3] = {domain_script(domain, "before"), active_script(domain, user),
		domain_script(domain, "after")};
	const struct sieve_script *run[3];
	int n = 0;
	for (int i = 0; i < 3; i++) {
		if (s[i]) {
			run[n++] = s[i];
		}
	}
	if (!n) {
		return 0;
	}
	size_t got;
	char *msg = sieve_head(sp, &got);
	char me[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(me, sizeof me, "%s@%s", user, domain);
	to = to && strchr(to, '@') ? to : me;
	struct exists_arg ea = {domain, user, NULL};
	struct sieve_input in = {.msg = msg, .len = got, .size = sp->len,
		.body_cut = sp->len > got, .from = from, .to = to, .folder_exists = folder_exists,
		.arg = &ea, .seen = duplicate_seen, .load = load_script};
	if (sieve_run_all(run, n, &in, r) != 0) {
		log_warnx("sieve: %s: %s (kept in INBOX, RFC 5228 2.10.6)", to, r->error);
	}
	free(msg);
	for (int i = 0; i < 3; i++) {
		sieve_free(s[i]);
	}
	return 1;
}

/* see sieve.h */
uint32_t sieve_flag_bits(const char *flags, char *keywords, size_t len)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {{"\\seen", MM_SEEN}, {"\\answered", MM_ANSWERED}, {"\\flagged", MM_FLAGGED},
		{"\\deleted", MM_DELETED}, {"\\draft", MM_DRAFT}};
	uint32_t bits = 0;
	keywords[0] = '\0';
	for (const char *p = flags ? flags : ""; *p;) {
		size_t w = strcspn(p, " ");
		int found = 0;
		for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
			if (strlen(sys[i].name) == w && !rl_strncasecmp(p, sys[i].name, w)) {
				bits |= sys[i].bit;
				found = 1;
			}
		}
		size_t have = strlen(keywords);
		if (!found && *p != '\\' && have + w + 2 < len) {
			snprintf(keywords + have, len - have, "%s%.*s", have ? " " : "", (int)w, p);
		}
		p += w + (p[w] == ' ');
	}
	return bits;
}

/* ---- vacation (RFC 5230, RFC 6131) ---- */

#define VACATION_MEMORY 1000 /* senders remembered per mailbox */

/* 1 when the first field called name of the header is there; its
 * unfolded value into out. */
static int field(const struct mime_msg *m, const char *name, struct buf *out)
{
	buf_reset(out);
	return mime_header_get(m, NULL, name, out);
}

/* RFC 5230 4.5 and 5.x, RFC 3834: no answer to lists, bulk mail,
 * automatic mail, daemons, oneself, or mail that was not sent to the
 * user (Bcc aside). */
static int vacation_allowed(const struct mime_msg *m, const char *from, const char *me,
	const struct sieve_action *a)
{
	struct buf v;
	buf_init(&v);
	int ok = from[0] && rl_strcasecmp(from, me) != 0;
	const char *at = strchr(from, '@');
	size_t local = at ? (size_t)(at - from) : strlen(from);
	static const char *const daemons[] = {"mailer-daemon", "listserv", "majordomo", "owner-",
		"-request", "noreply", "no-reply"};
	for (size_t i = 0; ok && i < sizeof daemons / sizeof daemons[0]; i++) {
		size_t n = strlen(daemons[i]);
		ok = !(n <= local && ((daemons[i][0] == '-' && !rl_strncasecmp(from + local - n, daemons[i], n)) ||
		                      (daemons[i][0] != '-' && !rl_strncasecmp(from, daemons[i], n))));
	}
	if (ok && field(m, "auto-submitted", &v)) {
		ok = !rl_strncasecmp(v.data, "no", 2) && (v.len == 2 || strchr(" ;(", v.data[2]));
	}
	if (ok && field(m, "precedence", &v)) {
		ok = rl_strcasecmp(v.data, "bulk") && rl_strcasecmp(v.data, "list") &&
		     rl_strcasecmp(v.data, "junk");
	}
	static const char *const lists[] = {"list-id", "list-unsubscribe", "list-post",
		"x-auto-response-suppress"};
	for (size_t i = 0; ok && i < sizeof lists / sizeof lists[0]; i++) {
		ok = !field(m, lists[i], &v);
	}
	/* one of my addresses among the recipients */
	static const char *const rcpts[] = {"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"};
	int mine = 0;
	for (size_t i = 0; ok && !mine && i < sizeof rcpts / sizeof rcpts[0]; i++) {
		struct mime_headers it;
		struct mime_header h;
		mime_headers_part(&it, m, NULL);
		while (!mine && mime_headers_next(&it, &h)) {
			if (h.name_len != strlen(rcpts[i]) || rl_strncasecmp(h.name, rcpts[i], h.name_len)) {
				continue;
			}
			struct mime_addr *list = mime_addr_parse(h.value, h.value_len, 0);
			for (struct mime_addr *x = list; x && !mine; x = x->next) {
				char addr[600];
				if (x->kind != MIME_ADDR_MAILBOX) {
					continue;
				}
				snprintf(addr, sizeof addr, "%s@%s", x->mailbox, x->host);
				mine = !rl_strcasecmp(addr, me);
				for (const char *p = a->addresses ? a->addresses : ""; *p && !mine;) {
					size_t w = strcspn(p, " ");
					mine = w == strlen(addr) && !rl_strncasecmp(p, addr, w);
					p += w + (p[w] == ' ');
				}
			}
			mime_addr_free(list);
		}
	}
	buf_free(&v);
	return ok && mine;
}

/* 1 when sender got this handle's answer within the period; else it is
 * remembered now (the oldest forgotten past VACATION_MEMORY). */
static int vacation_seen(const char *domain, const char *user, const char *key, int64_t period)
{
	char path[1200], hex[65], line[128];
	crypto_sha256_hex(key, strlen(key), hex);
	hex[32] = '\0';
	if (sieve_path(domain, user, "vacation", path, sizeof path) != 0) {
		return 1;
	}
	int64_t now = os_time(), when;
	struct buf keep;
	buf_init(&keep);
	int seen = 0, n = 0;
	FILE *f = os_fopen(path, "rb");
	while (f && fgets(line, sizeof line, f) && n < VACATION_MEMORY) {
		char h[40];
		long long t;
		if (sscanf(line, "%lld %32s", &t, h) != 2) {
			continue;
		}
		when = t;
		if (!strcmp(h, hex)) {
			seen = now - when < period;
			continue;
		}
		if (now - when < 366 * 86400) {
			buf_printf(&keep, "%lld %s\n", t, h);
			n++;
		}
	}
	if (f) {
		fclose(f);
	}
	if (!seen) {
		struct buf out;
		buf_init(&out);
		buf_printf(&out, "%lld %s\n", (long long)now, hex);
		buf_append(&out, keep.data ? keep.data : "", keep.len);
		char dir[1200];
		if (sieve_path(domain, user, NULL, dir, sizeof dir) == 0) {
			os_mkdir_p(dir);
		}
		os_write_file_atomic(path, out.data, out.len);
		buf_free(&out);
	}
	buf_free(&keep);
	return seen;
}

/* see sieve.h */
int sieve_vacation(const char *domain, const char *user, const struct sieve_action *a,
	struct spool *sp, const char *from, struct buf *reply)
{
	char me[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(me, sizeof me, "%s@%s", user, domain);
	size_t got;
	char *msg = sieve_head(sp, &got);
	struct mime_msg m;
	mime_parse(&m, msg, got);
	struct buf subj, id, key;
	buf_init(&subj);
	buf_init(&id);
	buf_init(&key);
	int send = vacation_allowed(&m, from, me, a);
	buf_printf(&key, "%s\n%s\n%s\n%s\n%d\n%s", from, a->handle ? a->handle : "",
		a->handle ? "" : a->arg, a->subject ? a->subject : "", a->mime, a->from ? a->from : "");
	int64_t period = a->seconds < 0 ? 7 * 86400 : a->seconds;
	if (send && vacation_seen(domain, user, key.data, period)) {
		send = 0;
	}
	if (send) {
		uint64_t rnd = 0;
		os_random(&rnd, sizeof rnd);
		mime_header_text(&m, NULL, "subject", &subj);
		int has_id = mime_header_get(&m, NULL, "message-id", &id);
		char date[64];
		outbound_date(os_time(), date, sizeof date);
		buf_printf(reply, "From: %s\r\nTo: <%s>\r\nSubject: %s%s\r\nDate: %s\r\n"
			"Message-ID: <%016llx.vacation@%s>\r\n"
			"Auto-Submitted: auto-replied (vacation)\r\nPrecedence: bulk\r\n"
			"MIME-Version: 1.0\r\n", a->from ? a->from : me, from,
			a->subject ? a->subject : "Auto: ", a->subject ? "" : (subj.data ? subj.data : ""), date,
			(unsigned long long)rnd, conf.server_name);
		if (has_id) {
			buf_printf(reply, "In-Reply-To: %s\r\nReferences: %s\r\n", id.data, id.data);
		}
		if (!a->mime) {
			buf_puts(reply, "Content-Type: text/plain; charset=utf-8\r\n"
			                "Content-Transfer-Encoding: 8bit\r\n\r\n");
		}
		for (const char *p = a->arg; *p;) { /* the reason, CRLF lines */
			size_t w = strcspn(p, "\r\n");
			buf_append(reply, p, w);
			buf_puts(reply, "\r\n");
			p += w;
			p += *p == '\r' && p[1] == '\n' ? 2 : *p ? 1 : 0;
		}
	}
	mime_free(&m);
	free(msg);
	buf_free(&subj);
	buf_free(&id);
	buf_free(&key);
	return send;
}

/* ---- scripts as the web admin and the command line change them ---- */

/* The file of script name (a ManageSieve name, or "" with stem given)
 * into path; 0, or -1 when the name is not a valid one. */
static int script_path(const char *domain, const char *user, const char *name, char *path,
	size_t len)
{
	char stem[SIEVE_STEM_MAX + 1], file[SIEVE_STEM_MAX + 16];
	if (sieve_name_encode(name, stem, sizeof stem) != 0) {
		return -1;
	}
	snprintf(file, sizeof file, "%s.sieve", stem);
	return sieve_path(domain, user, file, path, len);
}

/* see sieve.h */
int sieve_script_active(const char *domain, const char *user, char *name, size_t len)
{
	char stem[SIEVE_STEM_MAX + 8];
	active_name(domain, user, stem, sizeof stem);
	if (!stem[0] || sieve_name_decode(stem, name, len) != 0) {
		name[0] = '\0';
		return -1;
	}
	return 0;
}

/* see sieve.h */
int sieve_script_get(const char *domain, const char *user, struct buf *out, char *name,
	size_t len)
{
	char path[1200];
	if (sieve_script_active(domain, user, name, len) != 0 ||
	        script_path(domain, user, name, path, sizeof path) != 0) {
		return -1;
	}
	return read_capped(path, SIEVE_SCRIPT_MAX, out) == -1 ? -1 : 0;
}

/* see sieve.h */
int sieve_script_read(const char *domain, const char *user, const char *name, struct buf *out)
{
	char path[1200];
	if (script_path(domain, user, name, path, sizeof path) != 0) {
		return -1;
	}
	return read_capped(path, SIEVE_SCRIPT_MAX, out) == -1 ? -1 : 0;
}

/* see sieve.h */
int sieve_script_exists(const char *domain, const char *user, const char *name)
{
	char path[1200];
	struct os_stat st;
	return script_path(domain, user, name, path, sizeof path) == 0 && os_stat(path, &st) == 0;
}

/* see sieve.h */
int sieve_script_store(const char *domain, const char *user, const char *name, const char *text,
	size_t len, char *err, size_t errlen)
{
	char path[1200];
	struct sieve_script *s;
	if (sieve_compile(text, len, &s, err, errlen) != 0) {
		return -1;
	}
	sieve_free(s);
	if (sieve_path(domain, user, NULL, path, sizeof path) != 0 || os_mkdir_p(path) != 0 ||
	        script_path(domain, user, name, path, sizeof path) != 0 ||
	        os_write_file_atomic(path, text, len) != 0) {
		snprintf(err, errlen, "cannot store the script: %s", os_strerror());
		return -2;
	}
	log_info("sieve: %s@%s: script stored (%zu bytes)", user, domain, len);
	return 0;
}

/* see sieve.h */
int sieve_script_activate(const char *domain, const char *user, const char *name)
{
	char stem[SIEVE_STEM_MAX + 1], path[1200];
	if (!name[0]) {
		return sieve_script_off(domain, user);
	}
	if (!sieve_script_exists(domain, user, name) ||
	        sieve_name_encode(name, stem, sizeof stem) != 0) {
		return -1;
	}
	if (sieve_path(domain, user, "active", path, sizeof path) != 0 ||
	        os_write_file_atomic(path, stem, strlen(stem)) != 0) {
		return -2;
	}
	log_info("sieve: %s@%s: script %s active", user, domain, stem);
	return 0;
}

/* see sieve.h */
int sieve_script_put(const char *domain, const char *user, const char *name, const char *text,
	size_t len, char *err, size_t errlen)
{
	if (!valid_name(name)) {
		snprintf(err, errlen, "a script name is letters, digits, '.', '_' and '-'");
		return -1;
	}
	if (sieve_script_store(domain, user, name, text, len, err, errlen) != 0) {
		return -1;
	}
	if (sieve_script_activate(domain, user, name) != 0) {
		snprintf(err, errlen, "cannot store the script: %s", os_strerror());
		return -1;
	}
	return 0;
}

/* see sieve.h */
int sieve_script_off(const char *domain, const char *user)
{
	char path[1200];
	if (sieve_path(domain, user, "active", path, sizeof path) != 0) {
		return -1;
	}
	os_remove(path);
	log_info("sieve: %s@%s: no active script", user, domain);
	return 0;
}

/* see sieve.h */
int sieve_script_delete(const char *domain, const char *user, const char *name)
{
	char active[SIEVE_NAME_MAX + 1], path[1200];
	if (!sieve_script_exists(domain, user, name) ||
	        script_path(domain, user, name, path, sizeof path) != 0) {
		return -1;
	}
	sieve_script_active(domain, user, active, sizeof active);
	if (!strcmp(active, name)) {
		return -2;
	}
	return os_remove(path) == 0 ? 0 : -3;
}

/* see sieve.h */
int sieve_script_rename(const char *domain, const char *user, const char *from, const char *to)
{
	char active[SIEVE_NAME_MAX + 1], a[1200], b[1200];
	if (!sieve_script_exists(domain, user, from) ||
	        script_path(domain, user, from, a, sizeof a) != 0) {
		return -1;
	}
	if (script_path(domain, user, to, b, sizeof b) != 0) {
		return -4;
	}
	if (sieve_script_exists(domain, user, to)) {
		return -2;
	}
	sieve_script_active(domain, user, active, sizeof active);
	if (os_rename_atomic(a, b) != 0) {
		return -3;
	}
	if (!strcmp(active, from) && sieve_script_activate(domain, user, to) != 0) {
		return -3;
	}
	return 0;
}

struct list_arg {
	void (*fn)(const char *name, int active, void *arg);
	void *arg;
	const char *active; /* its stem */
	int n;
};

static int list_one(const char *file, int is_dir, void *arg)
{
	struct list_arg *l = arg;
	char stem[SIEVE_STEM_MAX + 1], name[SIEVE_NAME_MAX + 1];
	size_t n = strlen(file);
	if (is_dir || n <= 6 || n - 6 > SIEVE_STEM_MAX || strcmp(file + n - 6, ".sieve") != 0) {
		return 0;
	}
	snprintf(stem, sizeof stem, "%.*s", (int)(n - 6), file);
	if (sieve_name_decode(stem, name, sizeof name) == 0) {
		l->n++;
		if (l->fn) {
			l->fn(name, !strcmp(stem, l->active), l->arg);
		}
	}
	return 0;
}

/* see sieve.h */
int sieve_script_list(const char *domain, const char *user,
	void (*fn)(const char *name, int active, void *arg), void *arg)
{
	char dir[1200], stem[SIEVE_STEM_MAX + 8];
	active_name(domain, user, stem, sizeof stem);
	struct list_arg l = {fn, arg, stem, 0};
	if (sieve_path(domain, user, NULL, dir, sizeof dir) != 0) {
		return -1;
	}
	os_dir_walk(dir, list_one, &l); /* no folder yet: no scripts */
	return l.n;
}

/* user sieve USER@DOMAIN FILE [NAME]: stores the script (it must
 * compile) and makes it the active one; off: none active; show. */
int cmd_user_sieve(int argc, char **argv)
{
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1], name[SIEVE_NAME_MAX + 8];
	const char *at = argc >= 2 ? strrchr(argv[0], '@') : NULL;
	if (!at || (size_t)(at - argv[0]) > MM_USER_MAX || strlen(at + 1) > MM_DOMAIN_MAX || argc > 3) {
		fprintf(stderr, "rumble: user sieve: expected USER@DOMAIN FILE [NAME], off, or show\n");
		return 2;
	}
	snprintf(user, sizeof user, "%.*s", (int)(at - argv[0]), argv[0]);
	snprintf(domain, sizeof domain, "%s", at + 1);
	rl_lower(user);
	rl_lower(domain);
	struct mm_account a;
	if (mm_account_get(domain, user, &a) != 0 || a.type != MM_MBOX) {
		fprintf(stderr, "rumble: user sieve: no such mailbox %s@%s\n", user, domain);
		return 1;
	}
	if (!strcmp(argv[1], "show")) {
		sieve_script_active(domain, user, name, sizeof name);
		printf("%s@%s: %s\n", user, domain, name[0] ? name : "no active script");
		return 0;
	}
	if (!strcmp(argv[1], "off")) {
		sieve_script_off(domain, user);
		printf("Sieve off for %s@%s\n", user, domain);
		return 0;
	}
	const char *nm = argc == 3 ? argv[2] : "rumble";
	struct buf src;
	char err[300];
	buf_init(&src);
	int rc = read_file(argv[1], SIEVE_SCRIPT_MAX, &src) != 0
	                 ? 1
	                 : sieve_script_put(domain, user, nm, src.data ? src.data : "", src.len, err,
	                           sizeof err);
	buf_free(&src);
	if (rc) {
		if (rc < 0) {
			fprintf(stderr, "rumble: user sieve: %s: %s\n", argv[1], err);
		}
		return 1;
	}
	printf("Sieve script %s is active for %s@%s\n", nm, user, domain);
	return 0;
}

/* sieve test SCRIPT MESSAGE [FROM [TO]] */
static int sieve_test(int argc, char **argv)
{
	struct sieve_script *s = compile_file(argv[0]);
	struct buf m, out;
	buf_init(&m);
	buf_init(&out);
	int rc = 1;
	if (s && read_file(argv[1], SIEVE_MESSAGE_MAX, &m) == 0) {
		char dir[1024]; /* the script's folder */
		snprintf(dir, sizeof dir, "%s", argv[0]);
		char *slash = strrchr(dir, '/');
		if (slash) {
			slash[slash == dir] = '\0';
		} else {
			rl_strlcpy(dir, ".", sizeof dir);
		}
		struct exists_arg ea = {"", "", dir};
		struct sieve_input in = {.msg = m.data ? m.data : "", .len = m.len, .size = m.len,
			.from = argc > 2 ? argv[2] : "sender@example.com",
			.to = argc > 3 ? argv[3] : "recipient@example.com", .arg = &ea,
			.load = load_script};
		struct sieve_result r;
		rc = sieve_run(s, &in, &r) == 0 ? 0 : 1;
		if (rc) {
			fprintf(stderr, "rumble: sieve: %s: %s (the message is kept)\n", argv[0], r.error);
		}
		sieve_result_print(&r, &out);
		fwrite(out.data, 1, out.len, stdout);
		sieve_result_free(&r);
	}
	sieve_free(s);
	buf_free(&m);
	buf_free(&out);
	return rc;
}

/* see admin.h */
int cmd_sieve(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[0], "check")) {
		struct sieve_script *s = compile_file(argv[1]);
		if (s) {
			printf("%s: ok\n", argv[1]);
		}
		sieve_free(s);
		return s ? 0 : 1;
	}
	if (argc >= 3 && argc <= 5 && !strcmp(argv[0], "test")) {
		return sieve_test(argc - 1, argv + 1);
	}
	fprintf(stderr, "rumble: sieve: expected check SCRIPT, or test SCRIPT MESSAGE [FROM [TO]]\n");
	return 2;
}
