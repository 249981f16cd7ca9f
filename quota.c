/*
 * quota.c - storage and message quotas of mailbox accounts (RFC 9208's
 * STORAGE and MESSAGE resources), and what each account holds.
 *
 * Limits: the account's own (mm_account.quota, in the accounts file),
 * else its domain's (mm_domain.quota: the default of the domain's
 * accounts), else DefaultQuota; storage and messages each on its own.
 *
 * Usage: one small file per user, <user dir>/quota, one line
 *
 *     rumble-quota 1 MESSAGES BYTES WARNED
 *
 * (numbers zero-padded to a fixed width, so that a change rewrites it in
 * place): the live messages of all the user's folders, the sum of their
 * RFC822.SIZEs (expunged messages do not count, compacted or not), and
 * where the 90% warning stands (0 below 90%, 1 due, 2 sent). mbox.c
 * charges it at every append and expunge (quota__charge), so a check
 * reads one small file and never a folder. When the file is missing or
 * does not parse (no limit was ever looked at, a torn write, quota__forget
 * after a folder was deleted or an index rebuilt), the next quota_get sums
 * the folders' indexes and writes it; `rumble user quota --recalc` does
 * the same on demand. The file is not fsynced (a delivery must not cost a
 * second fsync): after a power cut it may miss the last changes until a
 * recalc. A charge while a recalc sums may be counted twice or not at all,
 * for the same reason.
 *
 * One mutex orders this process's read-modify-writes of the files. It is
 * taken last and held only around a file's read and write (never while a
 * folder is opened), so mbox.c calls in after letting go of its box.
 */
#include <ctype.h>
#include <string.h>

#include "policy.h"

#define WARN_PERCENT 90
#define SIZE_MAX_BYTES (1ULL << 50)
enum { WARN_NONE, WARN_DUE, WARN_SENT };

struct usage {
	uint64_t msgs, bytes;
	int warned;
};

static os_mutex *qmu;

static os_mutex *quota_mutex(void)
{
	return rl_mutex_once(&qmu);
}

/* ---- limits ---- */

/* "none" and "default" (both for either resource); 1 when s was one. */
static int quota_word(const char *s, uint64_t *out)
{
	if (rl_strcasecmp(s, "none") == 0) {
		*out = MM_QUOTA_NONE;
		return 1;
	}
	if (rl_strcasecmp(s, "default") == 0) {
		*out = 0;
		return 1;
	}
	return 0;
}

/* see rumble.h; 0 is "none" too: no one means a mailbox that takes nothing */
int quota_parse_kib(const char *s, uint64_t *kib)
{
	static const char units[] = "KMGT";
	char *end;
	if (quota_word(s, kib)) {
		return 0;
	}
	if (!isdigit((unsigned char)*s)) {
		return -1;
	}
	unsigned long long n = strtoull(s, &end, 10);
	uint64_t mul = 1;
	const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
	if (*end) {
		if (!u) {
			return -1;
		}
		mul = 1ULL << (10 * (u - units + 1));
		end++;
		end += toupper((unsigned char)*end) == 'B';
	}
	if (*end || n > SIZE_MAX_BYTES / mul) {
		return -1;
	}
	*kib = n ? (n * mul + 1023) / 1024 : MM_QUOTA_NONE;
	return 0;
}

/* see rumble.h */
int quota_parse_msgs(const char *s, uint64_t *msgs)
{
	char *end;
	if (quota_word(s, msgs)) {
		return 0;
	}
	if (!isdigit((unsigned char)*s)) {
		return -1;
	}
	unsigned long long n = strtoull(s, &end, 10);
	if (*end || n > 0xffffffffULL) {
		return -1;
	}
	*msgs = n ? n : MM_QUOTA_NONE;
	return 0;
}

static uint64_t pick(uint64_t own, uint64_t dom, uint64_t def)
{
	uint64_t v = own ? own : dom ? dom : def;
	return v == MM_QUOTA_NONE ? 0 : v;
}

/* see rumble.h */
void quota_limits(const char *domain, const char *user, struct quota_state *q)
{
	struct mm_account a;
	struct mm_domain d;
	if (mm_account_get(domain, user, &a) != 0) {
		memset(&a, 0, sizeof a);
	}
	if (mm_domain_get(domain, &d) != 0) {
		memset(&d, 0, sizeof d);
	}
	q->kib_limit = pick(a.quota.kib, d.quota.kib, conf.quota_kib);
	q->msgs_limit = pick(a.quota.msgs, d.quota.msgs, conf.quota_msgs);
}

/* see rumble.h */
int quota_over(const struct quota_state *q, uint64_t n, uint64_t size)
{
	return (q->msgs_limit && q->msgs + n > q->msgs_limit) ||
	       (q->kib_limit && q->bytes + size > q->kib_limit * 1024);
}

static int nearly_full(const struct usage *u, const struct quota_state *q)
{
	return (q->kib_limit && u->bytes * 100 >= q->kib_limit * 1024 * WARN_PERCENT) ||
	       (q->msgs_limit && u->msgs * 100 >= q->msgs_limit * WARN_PERCENT);
}

/* ---- the usage file ---- */

static int usage_path(const char *dir, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/quota", dir) < len ? 0 : -1;
}

static int user_path(const char *domain, const char *user, char *dir, size_t dlen, char *out,
        size_t len)
{
	char base[1400];
	return mm__folder_base(domain, user, "INBOX", dir, dlen, base, sizeof base) == 0
	               ? usage_path(dir, out, len)
	               : -1;
}

/* -1 when the file is missing or does not parse: it is summed again. */
static int usage_read(const char *path, struct usage *u)
{
	char line[128], nl = 0;
	unsigned long long m, b;
	int w;
	FILE *fp = os_fopen(path, "rb");
	if (!fp) {
		return -1;
	}
	size_t n = fread(line, 1, sizeof line - 1, fp);
	fclose(fp);
	line[n] = '\0';
	if (sscanf(line, "rumble-quota 1 %llu %llu %d%c", &m, &b, &w, &nl) != 4 || nl != '\n' ||
	        w < WARN_NONE || w > WARN_SENT) {
		return -1;
	}
	u->msgs = m;
	u->bytes = b;
	u->warned = w;
	return 0;
}

/* Writes the figure: in place (fresh 0), a fixed-width line over the old
 * one, since a file truncated and written again is flushed at its close by
 * some file systems (ext4's auto_da_alloc): that took bench/smtp.sh from
 * about 500 to 300 msgs/s; or as a new file (fresh 1). */
static int usage_write(const char *path, const struct usage *u, int fresh)
{
	FILE *fp = fresh ? NULL : os_fopen(path, "r+b");
	if (!fp && !(fp = os_fopen_private(path, "wb"))) {
		log_warn("quota: cannot write %s", path);
		return -1;
	}
	fprintf(fp, "rumble-quota 1 %010llu %020llu %d\n", (unsigned long long)u->msgs,
	        (unsigned long long)u->bytes, u->warned);
	int rc = fflush(fp) == 0 ? 0 : -1;
	fclose(fp);
	return rc;
}

static uint64_t add(uint64_t v, int64_t d)
{
	return d < 0 && (uint64_t)-d > v ? 0 : v + (uint64_t)d;
}

/* The warning's new state after usage changed by n messages. */
static int warn_state(const struct usage *u, const struct quota_state *q, int64_t n)
{
	if (!nearly_full(u, q)) {
		return WARN_NONE;
	}
	return u->warned == WARN_NONE && n >= 0 ? WARN_DUE : u->warned;
}

/* see rumble.h */
void quota__charge(const char *dir, const char *domain, const char *user, int64_t n,
        int64_t bytes)
{
	char path[1100];
	struct usage u;
	struct quota_state q;
	if (usage_path(dir, path, sizeof path) != 0 || usage_read(path, &u) != 0) {
		return; /* no figure (no limit was ever looked at): nothing to keep */
	}
	quota_limits(domain, user, &q);
	os_mutex_lock(quota_mutex());
	if (usage_read(path, &u) == 0) { /* else the next quota_get sums it */
		u.msgs = add(u.msgs, n);
		u.bytes = add(u.bytes, bytes);
		u.warned = warn_state(&u, &q, n);
		usage_write(path, &u, 0);
	}
	os_mutex_unlock(quota_mutex());
}

/* see rumble.h */
void quota__forget(const char *dir)
{
	char path[1100];
	if (usage_path(dir, path, sizeof path) == 0) {
		os_remove(path);
	}
}

/* ---- summing the folders ---- */

struct sum {
	const char *domain, *user;
	uint64_t msgs, bytes;
	int failed;
};

static int sum_folder(const char *name, void *arg)
{
	struct sum *s = arg;
	struct mm_folder *f;
	int rc = mm_folder_open(s->domain, s->user, name, 0, &f);
	if (rc == MM_NOFOLDER) {
		return 0; /* no INBOX yet, or deleted meanwhile */
	}
	if (rc != 0) {
		s->failed = 1;
		return 1;
	}
	uint32_t n = mm_folder_count(f);
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *m = mm_folder_msg(f, i);
		if (m) {
			s->msgs++;
			s->bytes += m->size;
		}
	}
	mm_folder_close(f);
	return 0;
}

/* see rumble.h */
int quota_recalc(const char *domain, const char *user, struct quota_state *q)
{
	char dir[1024], path[1100];
	struct sum s = {domain, user, 0, 0, 0};
	struct usage u, old;
	quota_limits(domain, user, q);
	if (user_path(domain, user, dir, sizeof dir, path, sizeof path) != 0 ||
	        mm_folder_list(domain, user, sum_folder, &s) != 0 || s.failed) {
		return -1;
	}
	u.msgs = s.msgs;
	u.bytes = s.bytes;
	os_mutex_lock(quota_mutex());
	u.warned = usage_read(path, &old) == 0 ? old.warned : WARN_NONE;
	u.warned = warn_state(&u, q, 0);
	int rc = os_mkdir_p(dir) == 0 ? usage_write(path, &u, 1) : -1;
	os_mutex_unlock(quota_mutex());
	q->msgs = u.msgs;
	q->bytes = u.bytes;
	return rc;
}

/* see rumble.h */
int quota_get(const char *domain, const char *user, struct quota_state *q)
{
	char dir[1024], path[1100];
	struct usage u;
	memset(q, 0, sizeof *q);
	quota_limits(domain, user, q);
	if (user_path(domain, user, dir, sizeof dir, path, sizeof path) != 0) {
		return -1;
	}
	os_mutex_lock(quota_mutex());
	int rc = usage_read(path, &u);
	os_mutex_unlock(quota_mutex());
	if (rc != 0) {
		return quota_recalc(domain, user, q);
	}
	q->msgs = u.msgs;
	q->bytes = u.bytes;
	return 0;
}

/* see rumble.h */
int quota_exceeded(const char *domain, const char *user, uint32_t n, uint64_t size)
{
	struct quota_state q;
	memset(&q, 0, sizeof q);
	quota_limits(domain, user, &q);
	if (!q.kib_limit && !q.msgs_limit) {
		return 0; /* no limit: the usage is not even looked at */
	}
	return quota_get(domain, user, &q) == 0 && quota_over(&q, n, size);
}

/* ---- the 90% warning ---- */

static int percent(uint64_t used, uint64_t limit)
{
	return limit ? (int)(used * 100 / limit) : 0;
}

static void warn_text(struct buf *b, const char *domain, const char *addr,
        const struct quota_state *q)
{
	char date[64];
	outbound_date(os_time(), date, sizeof date);
	buf_printf(b,
	        "From: Mail System <postmaster@%s>\r\nTo: <%s>\r\n"
	        "Subject: Your mailbox is almost full\r\nDate: %s\r\n"
	        "Message-ID: <%016llx.quota@%s>\r\nAuto-Submitted: auto-generated\r\n"
	        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	        "Your mailbox %s has passed %d%% of its quota:\r\n\r\n",
	        domain, addr, date, (unsigned long long)queue_new_id(), conf.server_name, addr,
	        WARN_PERCENT);
	uint64_t kib = (q->bytes + 1023) / 1024;
	if (q->kib_limit) {
		buf_printf(b, "  storage   %llu KiB of %llu KiB (%d%%)\r\n", (unsigned long long)kib,
		        (unsigned long long)q->kib_limit, percent(kib, q->kib_limit));
	}
	if (q->msgs_limit) {
		buf_printf(b, "  messages  %llu of %llu (%d%%)\r\n", (unsigned long long)q->msgs,
		        (unsigned long long)q->msgs_limit, percent(q->msgs, q->msgs_limit));
	}
	buf_puts(b, "\r\nOnce it is full, new mail for you is refused. Delete the messages you\r\n"
	            "no longer need, and empty the Trash, to make room.\r\n");
}

/* Appends the warning to the user's INBOX, fsynced. */
static void warn_deliver(const char *domain, const char *user, const struct quota_state *q)
{
	char addr[MM_USER_MAX + MM_DOMAIN_MAX + 2], tmp[1100];
	struct buf text;
	struct spool sp;
	struct mm_folder *f;
	uint32_t uid = 0;
	snprintf(addr, sizeof addr, "%s@%s", user, domain);
	snprintf(tmp, sizeof tmp, "%s/queue", mm_storage());
	buf_init(&text);
	warn_text(&text, domain, addr, q);
	spool_init(&sp, tmp); /* a few hundred bytes: stays in memory */
	int rc = spool_write(&sp, text.data, text.len);
	if (rc == 0 && (rc = mm_folder_open(domain, user, "INBOX", 1, &f)) == 0) {
		rc = mm_folder_append(f, &sp, "MAILER-DAEMON", 0, 0, 0, &uid);
		rc = rc == 0 ? mm_folder_sync(f) : rc;
		mm_folder_close(f);
	}
	if (rc == 0) {
		log_info("quota: %s passed %d%%: warning delivered uid=%u", addr, WARN_PERCENT, uid);
	} else {
		log_warnx("quota: %s passed %d%%: cannot deliver the warning", addr, WARN_PERCENT);
	}
	spool_free(&sp);
	buf_free(&text);
}

/* see rumble.h */
void quota_notify(const char *domain, const char *user)
{
	char dir[1024], path[1100];
	struct usage u;
	struct quota_state q;
	int due = 0;
	if (user_path(domain, user, dir, sizeof dir, path, sizeof path) != 0) {
		return;
	}
	os_mutex_lock(quota_mutex());
	if (usage_read(path, &u) == 0 && u.warned == WARN_DUE) {
		u.warned = WARN_SENT; /* before the warning's own append charges */
		due = usage_write(path, &u, 0) == 0;
	}
	os_mutex_unlock(quota_mutex());
	if (due && quota_get(domain, user, &q) == 0) {
		warn_deliver(domain, user, &q);
	}
}

/* ---- the policy module (policy.h): a mailbox known to be full (or too
 * full for MAIL's SIZE) is refused for now at RCPT (RFC 3463 4.2.2).
 * Aliases are checked when the message is delivered. ---- */

static int quota_rcpt(struct policy_call *c)
{
	const struct mm_account *a = c->acct;
	if (!a || a->type != MM_MBOX ||
	        !quota_exceeded(a->domain, a->user, 1, c->size ? c->size : 1)) {
		return POLICY_NEXT;
	}
	os_atomic_add_long(&c->s->svc->rejected, 1);
	buf_printf(&c->reply, "452 4.2.2 <%s>: Mailbox full\r\n", c->addr);
	return 452;
}

const struct policy_module quota_policy = {
        .name = "quota",
        .step = {[POLICY_RCPT] = quota_rcpt},
};
