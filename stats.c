/*
 * stats.c - what the dashboard, `rumble status` and /metrics tell.
 *
 * Counters: messages in (accepted over SMTP, counted after the commit,
 * smtp.c), out (taken by a remote host, outbound.c) and refused (a 530 or
 * 55x reply, or a policy refusal with one, smtp.c) per hour for the last
 * STATS_HOURS hours. They live in memory under a mutex (delivery counts
 * on its own threads) and in StorageFolder/stats, written at most once a
 * minute (stats_tick, from the deliverer's loop) and when the server
 * stops, so a restart does not zero them. The hour slots are a ring where
 * each slot holds its hour: an older hour's slot reads as empty, so no
 * timer clears anything and a server stopped for a day comes back with
 * the right window. The file also holds the last warnings and errors:
 * `rumble status` is another process and reads them from there.
 *
 * The summary adds what is read from disk when asked: free space,
 * mailbox usage (quota.c's figures), the queue, the certificate's end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "stats.h"

#define STATS_FILE_MAX 65536
#define STATS_SAVE_S 60

static const char *kind_names[STATS_KINDS] = {"in", "out", "refused"};

static struct stats cur;
static os_mutex *mx;
static int running, dirty;
static int64_t saved_at;

/* ---- counters ---- */

/* see stats.h */
void stats_add(struct stats *st, enum stats_kind k, int64_t now)
{
	int64_t h = now / 3600;
	struct stats_hour *s = &st->h[h % STATS_HOURS];
	if (s->hour != h) {
		memset(s, 0, sizeof *s);
		s->hour = h;
	}
	s->n[k]++;
	st->total[k]++;
}

/* see stats.h */
uint32_t stats_at(const struct stats *st, int64_t t, enum stats_kind k)
{
	int64_t h = t / 3600;
	const struct stats_hour *s = &st->h[h % STATS_HOURS];
	return h >= 0 && s->hour == h ? s->n[k] : 0;
}

/* see stats.h */
void stats_format(const struct stats *st, struct buf *out)
{
	buf_printf(out, "rumble-stats 1\ntotal %llu %llu %llu\n", (unsigned long long)st->total[0],
	        (unsigned long long)st->total[1], (unsigned long long)st->total[2]);
	for (int i = 0; i < STATS_HOURS; i++) {
		const struct stats_hour *s = &st->h[i];
		if (s->hour) {
			buf_printf(out, "hour %lld %u %u %u\n", (long long)s->hour, s->n[0],
			        s->n[1], s->n[2]);
		}
	}
	for (int i = 0; i < st->nerrors; i++) {
		buf_printf(out, "error %s\n", st->errors[i]);
	}
}

static void parse_line(struct stats *st, const char *l, size_t n)
{
	unsigned long long t[3];
	long long h;
	unsigned v[3];
	if (sscanf(l, "total %llu %llu %llu", &t[0], &t[1], &t[2]) == 3) {
		for (int k = 0; k < STATS_KINDS; k++) {
			st->total[k] = t[k];
		}
	} else if (sscanf(l, "hour %lld %u %u %u", &h, &v[0], &v[1], &v[2]) == 4 && h > 0 &&
	           h > st->h[h % STATS_HOURS].hour) {
		struct stats_hour *s = &st->h[h % STATS_HOURS];
		s->hour = h;
		memcpy(s->n, v, sizeof s->n);
	} else if (n > 6 && !strncmp(l, "error ", 6) && st->nerrors < LOG_ERRORS) {
		size_t len = n - 6 < LOG_ERROR_LEN - 1 ? n - 6 : LOG_ERROR_LEN - 1;
		memcpy(st->errors[st->nerrors], l + 6, len);
		st->errors[st->nerrors++][len] = '\0';
	}
}

/* see stats.h */
void stats_parse(struct stats *st, const char *text)
{
	char line[LOG_ERROR_LEN + 16];
	while (*text) {
		size_t n = strcspn(text, "\n");
		size_t c = n < sizeof line - 1 ? n : sizeof line - 1;
		memcpy(line, text, c);
		line[c] = '\0';
		parse_line(st, line, c);
		text += n + (text[n] == '\n');
	}
}

static void stats_path(char *out, size_t len)
{
	snprintf(out, len, "%s/stats", conf.storage);
}

/* The file into a zeroed st; nothing when there is none. */
static void stats_read(struct stats *st)
{
	char path[1100];
	stats_path(path, sizeof path);
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return;
	}
	char *text = xmalloc(STATS_FILE_MAX + 1);
	size_t n = fread(text, 1, STATS_FILE_MAX, f);
	fclose(f);
	text[n] = '\0';
	stats_parse(st, text);
	free(text);
}

static void save(void)
{
	char path[1100];
	struct stats *copy = xmalloc(sizeof *copy);
	struct buf b;
	os_mutex_lock(mx);
	*copy = cur;
	dirty = 0;
	os_mutex_unlock(mx);
	copy->nerrors = log_errors(copy->errors);
	buf_init(&b);
	stats_format(copy, &b);
	stats_path(path, sizeof path);
	if (os_write_file_atomic(path, b.data, b.len) != 0) {
		log_warn("stats: cannot write %s", path);
	}
	buf_free(&b);
	free(copy);
}

/* see stats.h */
void stats_start(void)
{
	os_mutex_lock(rl_mutex_once(&mx));
	memset(&cur, 0, sizeof cur);
	stats_read(&cur);
	cur.nerrors = 0; /* the ring of this run is log.c's */
	running = 1;
	saved_at = os_time();
	os_mutex_unlock(mx);
}

/* see stats.h */
void stats_count(enum stats_kind k)
{
	os_mutex_lock(rl_mutex_once(&mx));
	stats_add(&cur, k, os_time());
	dirty = 1;
	os_mutex_unlock(mx);
}

/* see rumble.h: refusals of mail, not syntax or sequence errors (500-503,
 * 504, 535 of AUTH, 555 of a parameter) */
void stats_reply(int code)
{
	if (code == 530 || (code >= 550 && code != 555)) {
		stats_count(STATS_REFUSED);
	}
}

/* see rumble.h */
void stats_tick(int64_t now)
{
	os_mutex_lock(rl_mutex_once(&mx));
	int due = running && dirty && (now - saved_at >= STATS_SAVE_S || now < saved_at);
	if (due) {
		saved_at = now;
	}
	os_mutex_unlock(mx);
	if (due) {
		save();
	}
}

/* see stats.h */
void stats_stop(void)
{
	if (running) {
		save();
		running = 0;
	}
}

/* ---- the summary ---- */

struct gather {
	struct stats_summary *s;
	struct stats_box *d; /* the domain being summed */
};

static struct stats_box *box_add(struct stats_box **v, int *n, const char *name)
{
	if (*n >= STATS_LISTED) {
		return NULL;
	}
	if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
		*v = xrealloc(*v, (size_t)(*n ? 2 * *n : 1) * sizeof **v);
	}
	struct stats_box *b = &(*v)[(*n)++];
	memset(b, 0, sizeof *b);
	rl_strlcpy(b->name, name, sizeof b->name);
	return b;
}

static int account_seen(const struct mm_account *a, void *arg)
{
	struct gather *g = arg;
	struct quota_state q;
	char name[sizeof g->d->name];
	if (a->type != MM_MBOX || quota_get(a->domain, a->user, &q) != 0) {
		return 0;
	}
	g->d->bytes += q.bytes;
	g->d->msgs += q.msgs;
	snprintf(name, sizeof name, "%s@%s", a->user, a->domain);
	struct stats_box *b = box_add(&g->s->acct, &g->s->nacct, name);
	if (b) {
		b->bytes = q.bytes;
		b->msgs = q.msgs;
	}
	return 0;
}

static int domain_seen(const struct mm_domain *d, void *arg)
{
	struct gather *g = arg;
	g->d = box_add(&g->s->dom, &g->s->ndom, d->name);
	return g->d ? mm_account_list(d->name, account_seen, g) : 1;
}

static int queue_seen(const struct queue_info *q, void *arg)
{
	struct stats_summary *s = arg;
	s->queued++;
	s->queue_bytes += q->size;
	if (!s->queue_oldest || q->date < s->queue_oldest) {
		s->queue_oldest = q->date;
	}
	return 0;
}

static int by_size(const void *a, const void *b)
{
	const struct stats_box *x = a, *y = b;
	return x->bytes != y->bytes ? (x->bytes < y->bytes ? 1 : -1) : strcmp(x->name, y->name);
}

/* see stats.h */
void stats_summary(struct stats_summary *s)
{
	char path[1100];
	int64_t nb;
	memset(s, 0, sizeof *s);
	os_mutex_lock(rl_mutex_once(&mx));
	s->live = running;
	if (running) {
		s->c = cur;
	}
	os_mutex_unlock(mx);
	if (s->live) {
		s->c.nerrors = log_errors(s->c.errors);
	} else {
		stats_read(&s->c);
	}
	if (os_disk_space(conf.storage, &s->disk_avail, &s->disk_total) != 0) {
		s->disk_avail = s->disk_total = 0;
	}
	struct gather g = {s, NULL};
	mm_domain_list(domain_seen, &g);
	queue_list(queue_seen, s);
	if (*conf.tls_cert) {
		rl_strlcpy(path, conf.tls_cert, sizeof path);
	} else {
		snprintf(path, sizeof path, "%s/tls/cert.pem", conf.storage); /* see rumble.c */
	}
	if (crypto_cert_file_dates(path, &nb, &s->cert_until) != 0) {
		s->cert_until = 0;
	}
	if (s->ndom) {
		qsort(s->dom, (size_t)s->ndom, sizeof *s->dom, by_size);
	}
	if (s->nacct) {
		qsort(s->acct, (size_t)s->nacct, sizeof *s->acct, by_size);
	}
}

/* see stats.h */
void stats_summary_free(struct stats_summary *s)
{
	free(s->dom);
	free(s->acct);
	s->dom = s->acct = NULL;
}

/* ---- as text ---- */

static void size_text(char *out, size_t len, uint64_t n)
{
	static const char *units[] = {"B", "KB", "MB", "GB", "TB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void age_text(char *out, size_t len, int64_t s)
{
	s = s < 0 ? 0 : s;
	if (s >= 86400) {
		snprintf(out, len, "%lldd %lldh", (long long)(s / 86400),
		        (long long)(s % 86400 / 3600));
	} else {
		snprintf(
		        out, len, "%lldh %lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	}
}

static void boxes_text(struct buf *out, const char *what, const struct stats_box *v, int n)
{
	char size[32];
	buf_printf(out, "%s:%s\n", what, n ? "" : " none");
	for (int i = 0; i < n; i++) {
		size_text(size, sizeof size, v[i].bytes);
		buf_printf(out, "  %-40s %10s %8llu messages\n", v[i].name, size,
		        (unsigned long long)v[i].msgs);
	}
}

/* see stats.h */
void stats_text(const struct stats_summary *s, int64_t now, struct buf *out)
{
	char a[32], b[32];
	uint64_t sum[STATS_KINDS] = {0};
	for (int h = 0; h < STATS_HOURS; h++) {
		for (int k = 0; k < STATS_KINDS; k++) {
			sum[k] += stats_at(&s->c, now - 3600 * (int64_t)h, k);
		}
	}
	size_text(a, sizeof a, s->disk_avail);
	size_text(b, sizeof b, s->disk_total);
	buf_printf(out, "Disk: %s free of %s under %s\n", a, b, conf.storage);
	size_text(a, sizeof a, s->queue_bytes);
	age_text(b, sizeof b, now - s->queue_oldest);
	buf_printf(out, "Queue: %d message%s, %s%s%s\n", s->queued, s->queued == 1 ? "" : "s", a,
	        s->queued ? ", oldest " : "", s->queued ? b : "");
	if (s->cert_until) {
		struct tm tm;
		os_gmtime(s->cert_until, &tm);
		buf_printf(out, "Certificate: valid until %04d-%02d-%02d (%lld days)\n",
		        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		        (long long)((s->cert_until - now) / 86400));
	} else {
		buf_printf(out, "Certificate: none\n");
	}
	buf_printf(out, "Messages in the last %d hours: %llu in, %llu out, %llu refused%s\n",
	        STATS_HOURS, (unsigned long long)sum[0], (unsigned long long)sum[1],
	        (unsigned long long)sum[2], s->live ? "" : " (as last saved)");
	boxes_text(out, "Domains", s->dom, s->ndom);
	boxes_text(out, "Mailboxes", s->acct, s->nacct);
	buf_printf(out, "Last errors:%s\n", s->c.nerrors ? "" : " none");
	for (int i = 0; i < s->c.nerrors; i++) {
		buf_printf(out, "  %s\n", s->c.errors[i]);
	}
}

static void metric(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* see stats.h; label values are domain names (mm_valid_domain: no quote,
 * backslash or line break to escape) */
void stats_metrics(const struct stats_summary *s, int64_t now, struct buf *out)
{
	metric(out, "rumble_messages_total", "counter",
	        "Messages accepted over SMTP (in), taken by remote hosts (out), refused (5xx).");
	for (int k = 0; k < STATS_KINDS; k++) {
		buf_printf(out, "rumble_messages_total{direction=\"%s\"} %llu\n", kind_names[k],
		        (unsigned long long)s->c.total[k]);
	}
	metric(out, "rumble_queue_messages", "gauge", "Messages waiting in the queue.");
	buf_printf(out, "rumble_queue_messages %d\n", s->queued);
	metric(out, "rumble_queue_oldest_seconds", "gauge", "Age of the oldest queued message.");
	buf_printf(out, "rumble_queue_oldest_seconds %lld\n",
	        (long long)(s->queued ? now - s->queue_oldest : 0));
	metric(out, "rumble_disk_free_bytes", "gauge", "Free space under StorageFolder.");
	buf_printf(out, "rumble_disk_free_bytes %llu\n", (unsigned long long)s->disk_avail);
	if (s->cert_until) {
		metric(out, "rumble_certificate_expiry_seconds", "gauge",
		        "Seconds until the TLS certificate expires.");
		buf_printf(out, "rumble_certificate_expiry_seconds %lld\n",
		        (long long)(s->cert_until - now));
	}
	metric(out, "rumble_mailbox_bytes", "gauge", "Bytes in the mailboxes of a domain.");
	for (int i = 0; i < s->ndom; i++) {
		buf_printf(out, "rumble_mailbox_bytes{domain=\"%s\"} %llu\n", s->dom[i].name,
		        (unsigned long long)s->dom[i].bytes);
	}
	metric(out, "rumble_mailbox_messages", "gauge", "Messages in the mailboxes of a domain.");
	for (int i = 0; i < s->ndom; i++) {
		buf_printf(out, "rumble_mailbox_messages{domain=\"%s\"} %llu\n", s->dom[i].name,
		        (unsigned long long)s->dom[i].msgs);
	}
}

/* ---- rumble status ---- */

/* see admin.h */
int cmd_status(int argc, char **argv)
{
	struct stats_summary s;
	struct buf out;
	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: rumble status\n");
		return 2;
	}
	stats_summary(&s);
	buf_init(&out);
	buf_printf(&out, "Server: %s\n", queue_server_running() ? "running" : "not running");
	stats_text(&s, os_time(), &out);
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	stats_summary_free(&s);
	return 0;
}
