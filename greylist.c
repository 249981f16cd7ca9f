/*
 * greylist.c - greylisting (RFC 6647): mail from a client network, sender
 * and recipient never seen before is refused with a 451 until the client
 * tries again after GreylistDelay; real mail servers retry, most spam
 * software does not. A triplet that passed is let in at once for 35 days
 * after it was last seen; one that was never retried is forgotten after 2
 * days. The client's /24 (IPv4) or /64 (IPv6) counts, not its address, as
 * large senders retry from other machines of one network.
 *
 * A triplet is kept as 8 bytes of its SHA-256 and three times: a table of
 * open addressing that grows by doubling, up to GL_MAX entries (then the
 * oldest go). It is saved to StorageFolder/greylist when the server
 * stops and read at start; a crash only greylists some senders again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define GL_MAX 200000
#define GL_RETRY_WINDOW (2 * 86400)
#define GL_KEEP (35 * 86400)

struct gl_entry {
	uint64_t key; /* 0: a free slot */
	int64_t first, last;
	int passed;
};

static os_mutex *mu;
static struct gl_entry *slots;
static size_t cap, used;

/* see rumble.h */
uint64_t greylist_key(const char *ip, const char *from, const char *rcpt)
{
	uint8_t a[16], h[32];
	int n = os_ip_parse(ip, a);
	struct buf b;
	buf_init(&b);
	if (n == 4 || n == 16) {
		buf_append(&b, a, n == 4 ? 3 : 8); /* the /24 or /64 */
	} else {
		buf_append(&b, ip, strlen(ip));
	}
	buf_printf(&b, "%c%s%c%s", 0, from, 0, rcpt);
	for (size_t i = n == 4 ? 3 : 8; i < b.len; i++) {
		if (b.data[i] >= 'A' && b.data[i] <= 'Z') {
			b.data[i] = (char)(b.data[i] + 32);
		}
	}
	crypto_sha256(b.data, b.len, h);
	buf_free(&b);
	uint64_t k = 0;
	for (int i = 0; i < 8; i++) {
		k = k << 8 | h[i];
	}
	return k ? k : 1;
}

static int live(const struct gl_entry *e, int64_t now)
{
	return e->key && now - e->last <= (e->passed ? GL_KEEP : GL_RETRY_WINDOW);
}

static struct gl_entry *slot_of(struct gl_entry *t, size_t n, uint64_t key)
{
	size_t i = (size_t)(key % n);
	while (t[i].key && t[i].key != key) {
		i = (i + 1) % n;
	}
	return &t[i];
}

static int by_last(const void *a, const void *b)
{
	const struct gl_entry *x = a, *y = b;
	return (x->last < y->last) - (x->last > y->last);
}

/* Rebuilds the table at n slots with the live entries, at most 3/8 of n
 * (the newest), so that it is not full again at once. */
static void rebuild(size_t n, int64_t now)
{
	struct gl_entry *keep = xcalloc(cap ? cap : 1, sizeof *keep);
	size_t k = 0;
	for (size_t i = 0; i < cap; i++) {
		if (live(&slots[i], now)) {
			keep[k++] = slots[i];
		}
	}
	qsort(keep, k, sizeof *keep, by_last);
	if (k > n * 3 / 8) {
		k = n * 3 / 8; /* the oldest go */
	}
	free(slots);
	slots = xcalloc(n, sizeof *slots);
	cap = n;
	used = k;
	for (size_t i = 0; i < k; i++) {
		*slot_of(slots, cap, keep[i].key) = keep[i];
	}
	free(keep);
}

/* The entry of key, made (first seen now) when there is none. */
static struct gl_entry *entry(uint64_t key, int64_t now)
{
	struct gl_entry *e = cap ? slot_of(slots, cap, key) : NULL;
	if (e && e->key) {
		return e;
	}
	if (2 * (used + 1) > cap) {
		rebuild(!cap ? 1024 : cap < 2 * GL_MAX ? 2 * cap : cap, now);
		e = slot_of(slots, cap, key);
	}
	used++;
	*e = (struct gl_entry){key, now, now, 0};
	return e;
}

/* see rumble.h */
int greylist_check(uint64_t key, int64_t now)
{
	os_mutex_lock(rl_mutex_once(&mu));
	struct gl_entry *e = entry(key, now);
	int wait = 0;
	if (!live(e, now)) {
		*e = (struct gl_entry){key, now, now, 0}; /* expired: seen for the first time */
	}
	if (e->passed || now - e->first >= conf.greylist_delay) {
		e->passed = 1;
		e->last = now;
	} else {
		wait = (int)(conf.greylist_delay - (now - e->first));
	}
	os_mutex_unlock(rl_mutex_once(&mu));
	return wait;
}

static int gl_path(char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/greylist", conf.storage) < len ? 0 : -1;
}

/* see rumble.h */
int greylist_save(int64_t now)
{
	char path[1100];
	struct buf b;
	buf_init(&b);
	os_mutex_lock(rl_mutex_once(&mu));
	for (size_t i = 0; i < cap; i++) {
		if (live(&slots[i], now)) {
			buf_printf(&b, "%016llx %lld %lld %d\n", (unsigned long long)slots[i].key,
			        (long long)slots[i].first, (long long)slots[i].last, slots[i].passed);
		}
	}
	os_mutex_unlock(rl_mutex_once(&mu));
	int rc = gl_path(path, sizeof path) == 0 && b.len ? os_write_file_atomic(path, b.data, b.len)
	                                                   : 0;
	buf_free(&b);
	return rc;
}

/* see rumble.h */
void greylist_load(int64_t now)
{
	char path[1100], line[128];
	FILE *f = gl_path(path, sizeof path) == 0 ? os_fopen(path, "r") : NULL;
	if (!f) {
		return;
	}
	os_mutex_lock(rl_mutex_once(&mu));
	unsigned long long key;
	long long first, last;
	int passed;
	while (fgets(line, sizeof line, f) && used < GL_MAX) {
		if (sscanf(line, "%llx %lld %lld %d", &key, &first, &last, &passed) == 4 && key) {
			struct gl_entry *e = entry((uint64_t)key, now);
			*e = (struct gl_entry){(uint64_t)key, first, last, passed != 0};
		}
	}
	os_mutex_unlock(rl_mutex_once(&mu));
	fclose(f);
}

/* see rumble.h */
void greylist_free(void)
{
	os_mutex_lock(rl_mutex_once(&mu));
	free(slots);
	slots = NULL;
	cap = used = 0;
	os_mutex_unlock(rl_mutex_once(&mu));
}

/* ---- the policy module (policy.h): a local recipient is deferred at
 * RCPT on the SMTP port, for clients that are not this host and did not
 * log in ---- */

static int greylist_open(struct policy *p, struct session *s, void **m)
{
	return strcmp(s->svc->name, "smtp") == 0 && !session_is_local(s);
}

static int greylist_rcpt(struct policy_call *c)
{
	if (!conf.greylist || !c->acct || policy_local(c->p, c->user)) {
		return POLICY_NEXT;
	}
	struct session *s = c->s;
	int wait = greylist_check(greylist_key(s->peer, c->msg->from, c->addr), os_time());
	if (wait <= 0) {
		return POLICY_NEXT;
	}
	/* the 451 is smtp.c's result=refused line; how long is only here */
	log_debug("%08x smtp greylisted wait=%ds", s->id, wait);
	os_atomic_add_long(&s->svc->rejected, 1);
	buf_printf(&c->reply,
	        "451 4.7.1 <%s>: Recipient address rejected: Greylisted, try again later\r\n",
	        c->addr);
	return 451;
}

const struct policy_module greylist_policy = {
        .name = "greylist",
        .open = greylist_open,
        .step = {[POLICY_RCPT] = greylist_rcpt},
};
