/*
 * queue.c - what happens to a message once SMTP has it.
 *
 * Commit (one thread): messages that finish DATA at about the same time are
 * taken as a batch. Each recipient is resolved (GLOB accounts, aliases
 * expanded); mailbox recipients get the message appended to their INBOX,
 * everything else (feeds, relays, remote addresses) goes to one queue file
 * per message. Then every touched file is fsynced once for the whole batch
 * (group commit) and only then do the sessions say 250. Mail for local
 * users is written once, straight into the mailbox.
 *
 * Queue folder: <storage>/queue/<qid>.msg holds the message (wire form),
 * <qid>.env its envelope; the .env appears (atomic rename) only after the
 * .msg is durable, so a .msg without .env is a commit that never finished
 * and is removed. The delivery thread works through the .env files, at
 * start-up too: mailbox deliveries check the queue id in the folder's index
 * (mm_folder_has_qid), so a crash between delivering and removing the queue
 * file does not deliver twice.
 */
#include <ctype.h>
#include <string.h>

#include "rumble.h"

#define ALIAS_DEPTH 8
#define TARGETS_MAX 1000
#define FOLDER_CACHE 32

enum target_kind { T_MBOX, T_QUEUE };

struct target {
	enum target_kind kind;
	char domain[MM_DOMAIN_MAX + 1];
	char user[MM_USER_MAX + 1]; /* the account (T_MBOX) */
	char *addr;                 /* what goes to the queue file (T_QUEUE) */
};

struct targets {
	struct target *v;
	int n, cap;
};

struct job {
	struct queue_msg *m;
	struct session *s;
	void (*done)(struct session *, void *);
	int *waiting; /* queue_commit_wait's flag, or NULL */
	struct job *next;
};

static os_mutex *qlock;
static os_cond *qcond, *qdone, *qwake;
static struct job *pending, *pending_tail;
static os_thread *committer, *deliverer;
static volatile int qstop;
static int deliver_poke; /* under qlock: queue files to look at */
static char qdir[1100];
static uint64_t id_counter;

/* ---- messages ---- */

uint64_t queue_new_id(void)
{
	/* seconds in the high bits, a counter in the low 20: unique and sorted */
	uint64_t c = __atomic_add_fetch(&id_counter, 1, __ATOMIC_RELAXED);
	return ((uint64_t)os_time() << 20) | (c & 0xfffff);
}

struct queue_msg *queue_msg_new(const char *from)
{
	struct queue_msg *m = xcalloc(1, sizeof *m);
	m->from = xstrdup(from);
	m->qid = queue_new_id();
	m->date = os_time();
	spool_init(&m->body, qdir);
	return m;
}

void queue_msg_add_rcpt(struct queue_msg *m, const char *rcpt)
{
	m->rcpts = xrealloc(m->rcpts, (size_t)(m->nrcpt + 1) * sizeof *m->rcpts);
	m->rcpts[m->nrcpt++] = xstrdup(rcpt);
}

void queue_msg_free(struct queue_msg *m)
{
	if (!m) {
		return;
	}
	for (int i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i]);
	}
	free(m->rcpts);
	free(m->from);
	spool_free(&m->body);
	free(m);
}

/* ---- addresses ---- */

/* Splits addr into lower-case user and domain; -1 if it has no domain or
 * a part is too long. */
static int split_addr(const char *addr, char *user, char *domain)
{
	const char *at = strrchr(addr, '@');
	if (!at || at == addr || (size_t)(at - addr) > MM_USER_MAX || strlen(at + 1) > MM_DOMAIN_MAX) {
		return -1;
	}
	memcpy(user, addr, (size_t)(at - addr));
	user[at - addr] = '\0';
	strcpy(domain, at + 1);
	rl_lower(user);
	rl_lower(domain);
	return 0;
}

enum rcpt_kind queue_classify(const char *addr, struct mm_account *acct)
{
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1];
	if (split_addr(addr, user, domain) != 0) {
		return RCPT_BAD;
	}
	if (!mm_domain_exists(domain)) {
		return RCPT_REMOTE;
	}
	return mm_account_match(domain, user, acct) == 0 ? RCPT_LOCAL : RCPT_UNKNOWN;
}

static void targets_add(struct targets *t, enum target_kind kind, const char *domain,
	const char *user, const char *addr)
{
	for (int i = 0; i < t->n; i++) {
		struct target *o = &t->v[i];
		if (o->kind == kind && kind == T_MBOX && !strcmp(o->domain, domain) && !strcmp(o->user, user)) {
			return; /* one copy per mailbox */
		}
		if (o->kind == kind && kind == T_QUEUE && !rl_strcasecmp(o->addr, addr)) {
			return;
		}
	}
	if (t->n == TARGETS_MAX) {
		return;
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->v = xrealloc(t->v, (size_t)t->cap * sizeof *t->v);
	}
	struct target *n = &t->v[t->n++];
	memset(n, 0, sizeof *n);
	n->kind = kind;
	rl_strlcpy(n->domain, domain, sizeof n->domain);
	rl_strlcpy(n->user, user, sizeof n->user);
	n->addr = addr ? xstrdup(addr) : NULL;
}

static void targets_free(struct targets *t)
{
	for (int i = 0; i < t->n; i++) {
		free(t->v[i].addr);
	}
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

static void resolve(const char *addr, const char *home, int depth, int queued_ok, struct targets *t);

/* Alias targets: separated by spaces, commas or semicolons; a name
 * without a domain is in the alias's own domain. */
static void resolve_alias(const struct mm_account *a, int depth, int queued_ok, struct targets *t)
{
	char list[MM_ARGS_MAX];
	rl_strlcpy(list, a->args, sizeof list);
	for (char *p = list, *next; *p; p = next) {
		next = p + strcspn(p, " ,;\t");
		if (*next) {
			*next++ = '\0';
		}
		if (*p) {
			resolve(p, a->domain, depth + 1, queued_ok, t);
		}
	}
}

/* Adds what addr delivers to. queued_ok = 0 when called from the delivery
 * thread for a queued address that is itself a leaf (no re-expansion
 * loop); home is the domain for bare names in aliases. */
static void resolve(const char *addr, const char *home, int depth, int queued_ok, struct targets *t)
{
	char full[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	if (!strchr(addr, '@')) {
		snprintf(full, sizeof full, "%s@%s", addr, home);
		addr = full;
	}
	struct mm_account a;
	enum rcpt_kind k = queue_classify(addr, &a);
	if (depth > ALIAS_DEPTH || k == RCPT_BAD || k == RCPT_UNKNOWN) {
		log_warnx("queue: cannot deliver to <%s>: %s", addr,
			depth > ALIAS_DEPTH ? "aliases nested too deep" : "no such address");
		return;
	}
	if (k == RCPT_LOCAL && a.type == MM_MBOX) {
		targets_add(t, T_MBOX, a.domain, a.user, NULL);
	} else if (k == RCPT_LOCAL && a.type == MM_ALIAS) {
		resolve_alias(&a, depth, queued_ok, t);
	} else {
		targets_add(t, T_QUEUE, "", "", addr); /* feed, relay, mod, remote */
	}
}

/* ---- open INBOXes, one cache per thread (committer, deliverer) ---- */

struct cached {
	char domain[MM_DOMAIN_MAX + 1], user[MM_USER_MAX + 1];
	struct mm_folder *f;
	int64_t used;
	int dirty;
};
struct fcache {
	struct cached c[FOLDER_CACHE];
	int64_t clock;
};
static struct fcache commit_cache, deliver_cache;

static struct cached *folder_get(struct fcache *fc, const char *domain, const char *user)
{
	struct cached *cache = fc->c;
	struct cached *victim = &cache[0];
	for (int i = 0; i < FOLDER_CACHE; i++) {
		struct cached *c = &cache[i];
		if (c->f && !strcmp(c->domain, domain) && !strcmp(c->user, user)) {
			c->used = ++fc->clock;
			return c;
		}
		if (!c->dirty && (!c->f || c->used < victim->used || victim->dirty)) {
			victim = c;
		}
	}
	if (victim->dirty) {
		return NULL; /* all dirty: cannot happen with batches < FOLDER_CACHE */
	}
	if (victim->f) {
		mm_folder_close(victim->f);
		victim->f = NULL;
	}
	if (mm_folder_open(domain, user, "INBOX", 1, &victim->f) != 0) {
		log_warnx("queue: cannot open the INBOX of %s@%s", user, domain);
		return NULL;
	}
	rl_strlcpy(victim->domain, domain, sizeof victim->domain);
	rl_strlcpy(victim->user, user, sizeof victim->user);
	victim->used = ++fc->clock;
	return victim;
}

static void cache_close_all(struct fcache *fc)
{
	struct cached *cache = fc->c;
	for (int i = 0; i < FOLDER_CACHE; i++) {
		if (cache[i].f) {
			mm_folder_close(cache[i].f);
			cache[i].f = NULL;
		}
	}
}

/* fsyncs the folders appended to; -1 if any failed. */
static int cache_sync(struct fcache *fc)
{
	struct cached *cache = fc->c;
	int rc = 0;
	for (int i = 0; i < FOLDER_CACHE; i++) {
		if (cache[i].dirty) {
			cache[i].dirty = 0;
			if (mm_folder_sync(cache[i].f) != 0) {
				log_warn("queue: fsync of %s@%s", cache[i].user, cache[i].domain);
				rc = -1;
			}
		}
	}
	return rc;
}

static int deliver_mbox(struct fcache *fc, struct queue_msg *m, const struct target *t,
	int check_qid)
{
	struct cached *c = folder_get(fc, t->domain, t->user);
	if (!c) {
		return -1;
	}
	if (check_qid && mm_folder_has_qid(c->f, m->qid)) {
		return 0; /* delivered before a crash */
	}
	uint32_t uid;
	if (mm_folder_append(c->f, &m->body, m->from[0] ? m->from : "MAILER-DAEMON", m->date, 0,
		    m->qid, &uid) != 0) {
		log_warnx("queue: append to %s@%s failed", t->user, t->domain);
		return -1;
	}
	c->dirty = 1;
	log_info("%016llx delivered to=%s@%s uid=%u size=%llu", (unsigned long long)m->qid,
		t->user, t->domain, uid, (unsigned long long)m->body.len);
	return 0;
}

/* ---- queue files ---- */

static void qpath(char *out, size_t len, uint64_t qid, const char *ext)
{
	snprintf(out, len, "%s/%016llx.%s", qdir, (unsigned long long)qid, ext);
}

static int copy_spool(struct spool *sp, FILE *f)
{
	char chunk[65536];
	uint64_t off = 0;
	long n;
	while ((n = spool_read(sp, off, chunk, sizeof chunk)) > 0) {
		if (fwrite(chunk, 1, (size_t)n, f) != (size_t)n) {
			return -1;
		}
		off += (uint64_t)n;
	}
	return n < 0 ? -1 : 0;
}

static void env_text(struct buf *b, const struct queue_msg *m, const char **rcpts, int n,
	int attempts, int64_t next)
{
	buf_printf(b, "from %s\ndate %lld\nattempts %d\nnext %lld\n", m->from, (long long)m->date,
		attempts, (long long)next);
	for (int i = 0; i < n; i++) {
		buf_printf(b, "rcpt %s\n", rcpts[i]);
	}
}

/* Writes <qid>.msg durably and <qid>.env atomically for the queued
 * targets of m. */
static int queue_write(struct queue_msg *m, struct targets *t)
{
	char path[1200];
	qpath(path, sizeof path, m->qid, "msg");
	FILE *f = os_fopen_private(path, "wb");
	if (!f) {
		log_warn("queue: create %s", path);
		return -1;
	}
	int rc = copy_spool(&m->body, f) == 0 && os_fsync(f) == 0 ? 0 : -1;
	fclose(f);
	const char **rcpts = xcalloc((size_t)t->n, sizeof *rcpts);
	int n = 0;
	for (int i = 0; i < t->n; i++) {
		if (t->v[i].kind == T_QUEUE) {
			rcpts[n++] = t->v[i].addr;
		}
	}
	struct buf env;
	buf_init(&env);
	env_text(&env, m, rcpts, n, 0, 0);
	qpath(path, sizeof path, m->qid, "env");
	if (rc == 0 && os_write_file_atomic(path, env.data, env.len) != 0) {
		log_warn("queue: write %s", path);
		rc = -1;
	}
	buf_free(&env);
	free(rcpts);
	return rc;
}

/* ---- committing ---- */

static int commit_one(struct queue_msg *m)
{
	struct targets t = {0};
	int rc = 0, queued = 0;
	for (int i = 0; i < m->nrcpt; i++) {
		resolve(m->rcpts[i], "", 0, 1, &t);
	}
	for (int i = 0; i < t.n && rc == 0; i++) {
		if (t.v[i].kind == T_MBOX) {
			rc = deliver_mbox(&commit_cache, m, &t.v[i], 0);
		} else {
			queued++;
		}
	}
	if (rc == 0 && queued && (rc = queue_write(m, &t)) == 0) {
		os_mutex_lock(qlock);
		deliver_poke = 1;
		os_cond_signal(qwake);
		os_mutex_unlock(qlock);
	}
	targets_free(&t);
	return rc;
}

static void commit_batch(struct job *list)
{
	int n = 0;
	for (struct job *j = list; j; j = j->next) {
		j->m->status = commit_one(j->m);
		if (++n % (FOLDER_CACHE / 2) == 0 && cache_sync(&commit_cache) != 0) {
			/* rare: a very large batch; sync as we go */
			for (struct job *k = list; k != j->next; k = k->next) {
				k->m->status = -1;
			}
		}
	}
	if (cache_sync(&commit_cache) != 0) {
		for (struct job *j = list; j; j = j->next) {
			j->m->status = -1;
		}
	}
}

static void finish(struct job *j)
{
	if (j->waiting) {
		os_mutex_lock(qlock);
		*j->waiting = 0;
		os_cond_broadcast(qdone);
		os_mutex_unlock(qlock);
	} else {
		session_post(j->s, j->done, j->m);
	}
	free(j);
}

static void committer_main(void *arg)
{
	for (;;) {
		os_mutex_lock(qlock);
		while (!pending && !qstop) {
			os_cond_wait(qcond, qlock, -1);
		}
		struct job *list = pending;
		pending = pending_tail = NULL;
		int stop = qstop;
		os_mutex_unlock(qlock);
		if (list) {
			commit_batch(list);
		}
		while (list) {
			struct job *next = list->next;
			finish(list);
			list = next;
		}
		if (stop) {
			cache_close_all(&commit_cache);
			return;
		}
	}
}

static void submit(struct job *j)
{
	os_mutex_lock(qlock);
	if (pending_tail) {
		pending_tail->next = j;
	} else {
		pending = j;
	}
	pending_tail = j;
	os_cond_broadcast(qcond);
	os_mutex_unlock(qlock);
}

void queue_commit(struct session *s, struct queue_msg *m, void (*done)(struct session *, void *))
{
	struct job *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->s = s;
	j->done = done;
	session_hold(s);
	submit(j);
}

int queue_commit_wait(struct queue_msg *m)
{
	int waiting = 1;
	struct job *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->waiting = &waiting;
	submit(j);
	os_mutex_lock(qlock);
	while (waiting) {
		os_cond_wait(qdone, qlock, -1);
	}
	os_mutex_unlock(qlock);
	return m->status;
}

/* ---- the delivery thread ---- */

struct envelope {
	struct queue_msg m;
	int attempts;
	int64_t next;
	char msgpath[1200];
};

static int env_load(const char *path, struct envelope *e)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		return -1;
	}
	char line[1200];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		char *v = strchr(line, ' ');
		if (!v) {
			continue;
		}
		*v++ = '\0';
		if (!strcmp(line, "from")) {
			free(e->m.from);
			e->m.from = xstrdup(v);
		} else if (!strcmp(line, "date")) {
			e->m.date = strtoll(v, NULL, 10);
		} else if (!strcmp(line, "attempts")) {
			e->attempts = atoi(v);
		} else if (!strcmp(line, "next")) {
			e->next = strtoll(v, NULL, 10);
		} else if (!strcmp(line, "rcpt") && e->m.nrcpt < TARGETS_MAX) {
			queue_msg_add_rcpt(&e->m, v);
		}
	}
	fclose(f);
	return e->m.from ? 0 : -1;
}

/* Loads the message file into the spool (by reference: the spool reads
 * the queue file itself). */
static int msg_attach(struct envelope *e)
{
	qpath(e->msgpath, sizeof e->msgpath, e->m.qid, "msg");
	spool_init(&e->m.body, qdir);
	FILE *f = fopen(e->msgpath, "rb");
	struct os_stat st;
	if (!f || os_fstat(f, &st) != 0) {
		if (f) {
			fclose(f);
		}
		return -1;
	}
	e->m.body.f = f; /* path left empty: spool_free must not remove it */
	e->m.body.len = st.size;
	return 0;
}

/* ---- relay accounts: hand the message to a given host over SMTP ---- */

#define RELAY_TIMEOUT_MS 60000

struct relay {
	os_fd fd;
	char buf[1024];
	size_t len;
};

/* Reads one reply (all its lines); returns its code, -1 on error. */
static int relay_reply(struct relay *r)
{
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = (size_t)(nl - r->buf) + 1;
			int last = n < 4 || r->buf[3] != '-';
			int code = atoi(r->buf);
			memmove(r->buf, r->buf + n, r->len - n);
			r->len -= n;
			if (last) {
				return code;
			}
			continue;
		}
		if (r->len == sizeof r->buf) {
			r->len = 0; /* an endless line: keep only its end */
		}
		if (os_wait_readable(r->fd, RELAY_TIMEOUT_MS) <= 0) {
			return -1;
		}
		long got = os_read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
		if (got <= 0) {
			return -1;
		}
		r->len += (size_t)got;
	}
}

static int relay_say(struct relay *r, const char *text, size_t n)
{
	size_t done = 0;
	while (done < n) {
		long w = os_write(r->fd, text + done, n - done);
		if (w <= 0) {
			return -1;
		}
		done += (size_t)w;
	}
	return 0;
}

/* The message, dot-stuffed (RFC 5321 4.5.2), then the end of data. */
static int relay_body(struct relay *r, struct spool *sp)
{
	char in[16384];
	struct buf out;
	buf_init(&out);
	uint64_t off = 0;
	int bol = 1, rc = 0;
	long n;
	while (rc == 0 && (n = spool_read(sp, off, in, sizeof in)) > 0) {
		for (long i = 0; i < n; i++) {
			if (bol && in[i] == '.') {
				buf_append(&out, ".", 1);
			}
			buf_append(&out, &in[i], 1);
			bol = in[i] == '\n';
		}
		off += (uint64_t)n;
		rc = relay_say(r, out.data, out.len);
		buf_reset(&out);
	}
	buf_free(&out);
	return rc == 0 ? relay_say(r, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5) : -1;
}

/* One SMTP transaction: 0 sent, 1 try later (4xx, no answer), 2 refused
 * for good (5xx). */
static int relay_dialog(struct relay *r, struct queue_msg *m, const char *rcpt)
{
	char cmd[1024];
	int code = relay_reply(r);
	if (code != 220) {
		return code >= 500 ? 2 : 1;
	}
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", conf.server_name);
	if (relay_say(r, cmd, strlen(cmd)) || (code = relay_reply(r)) != 250) {
		return code >= 500 ? 2 : 1;
	}
	const char *steps[] = {"MAIL FROM:<%s>\r\n", "RCPT TO:<%s>\r\n", "DATA\r\n"};
	const char *args[] = {m->from, rcpt, ""};
	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof cmd, steps[i], args[i]);
		code = relay_say(r, cmd, strlen(cmd)) == 0 ? relay_reply(r) : -1;
		if (code != (i == 2 ? 354 : 250)) {
			return code >= 500 ? 2 : 1;
		}
	}
	code = relay_body(r, &m->body) == 0 ? relay_reply(r) : -1;
	relay_say(r, "QUIT\r\n", 6);
	return code == 250 ? 0 : code >= 500 ? 2 : 1;
}

/* A relay account's argument is host[:port] (default 25). */
static int relay_send(const char *hostport, struct queue_msg *m, const char *rcpt)
{
	char host[256];
	int port = 25;
	rl_strlcpy(host, hostport, sizeof host);
	host[strcspn(host, " \t,;")] = '\0';
	char *colon = strrchr(host, ':');
	if (colon && !strchr(colon + 1, ']') && strchr(host, ':') == colon) {
		*colon = '\0';
		port = atoi(colon + 1);
	}
	if (!host[0] || port <= 0 || port > 65535) {
		log_warnx("queue: relay account <%s> has a bad host \"%s\"", rcpt, hostport);
		return 1;
	}
	struct relay r = {.fd = os_connect(host, port, RELAY_TIMEOUT_MS)};
	if (r.fd == OS_BADFD) {
		return 1;
	}
	int rc = relay_dialog(&r, m, rcpt);
	os_close(r.fd);
	return rc;
}

/* Delivers one queued address; 0 done, 1 try later. */
static int deliver_queued(struct envelope *e, const char *rcpt)
{
	struct targets t = {0};
	resolve(rcpt, "", 0, 0, &t);
	int rc = 0;
	for (int i = 0; i < t.n; i++) {
		struct target *x = &t.v[i];
		if (x->kind == T_MBOX) {
			rc |= deliver_mbox(&deliver_cache, &e->m, x, 1) != 0 ? 1 : 0;
			continue;
		}
		struct mm_account a;
		if (queue_classify(x->addr, &a) == RCPT_LOCAL && a.type == MM_FEED) {
			int st = os_run_with_stdin(a.args, e->msgpath);
			log_info("%016llx feed to=%s program=\"%s\" status=%d",
				(unsigned long long)e->m.qid, x->addr, a.args, st);
			rc |= st != 0 ? 1 : 0;
		} else if (queue_classify(x->addr, &a) == RCPT_LOCAL && a.type == MM_MOD) {
			int st = rl_feed(&a, e->msgpath, e->m.from, x->addr); /* a Lua hook */
			log_info("%016llx mod to=%s status=%s", (unsigned long long)e->m.qid, x->addr,
				st == 0 ? "delivered" : "deferred");
			rc |= st;
		} else if (queue_classify(x->addr, &a) == RCPT_LOCAL && a.type == MM_RELAY) {
			int st = relay_send(a.args, &e->m, x->addr);
			log_info("%016llx relay to=%s host=%s status=%s", (unsigned long long)e->m.qid,
				x->addr, a.args, st == 0 ? "sent" : st == 2 ? "refused" : "deferred");
			rc |= st == 1; /* refused for good: dropped, with the reason logged */
		} else {
			/* Outbound SMTP to other domains comes with its own issue; until
			 * then the message waits here, safe. */
			log_info("%016llx deferred to=%s reason=\"remote delivery not available\"",
				(unsigned long long)e->m.qid, x->addr);
			rc = 1;
		}
	}
	targets_free(&t);
	if (cache_sync(&deliver_cache) != 0) {
		rc = 1;
	}
	return rc;
}

static void queue_remove(uint64_t qid)
{
	char path[1200];
	qpath(path, sizeof path, qid, "env");
	os_remove(path);
	qpath(path, sizeof path, qid, "msg");
	os_remove(path);
}

static void deliver_one(uint64_t qid)
{
	char path[1200];
	struct envelope e;
	memset(&e, 0, sizeof e);
	e.m.qid = qid;
	qpath(path, sizeof path, qid, "env");
	if (env_load(path, &e) != 0 || msg_attach(&e) != 0) {
		log_warnx("queue: %016llx is damaged; left in place", (unsigned long long)qid);
		goto out;
	}
	if (e.next > os_time()) {
		goto out;
	}
	const char **left = xcalloc((size_t)e.m.nrcpt + 1, sizeof *left);
	int nleft = 0;
	for (int i = 0; i < e.m.nrcpt; i++) {
		if (deliver_queued(&e, e.m.rcpts[i]) != 0) {
			left[nleft++] = e.m.rcpts[i];
		}
	}
	if (nleft == 0) {
		queue_remove(qid);
	} else {
		struct buf b;
		buf_init(&b);
		env_text(&b, &e.m, left, nleft, e.attempts + 1,
			os_time() + (int64_t)conf.retry_interval);
		if (os_write_file_atomic(path, b.data, b.len) != 0) {
			log_warn("queue: rewrite %s", path);
		}
		buf_free(&b);
	}
	free(left);
out:
	if (e.m.body.f) {
		fclose(e.m.body.f);
		e.m.body.f = NULL;
	}
	for (int i = 0; i < e.m.nrcpt; i++) {
		free(e.m.rcpts[i]);
	}
	free(e.m.rcpts);
	free(e.m.from);
}

static int is_hex_name(const char *name, const char *ext, uint64_t *qid)
{
	size_t n = strlen(name);
	if (n != 17 + strlen(ext) || name[16] != '.' || strcmp(name + 17, ext) != 0) {
		return 0;
	}
	for (int i = 0; i < 16; i++) {
		if (!isxdigit((unsigned char)name[i])) {
			return 0;
		}
	}
	*qid = strtoull(name, NULL, 16);
	return 1;
}

static int scan_entry(const char *name, int is_dir, void *arg)
{
	uint64_t qid;
	if (is_dir) {
		return 0;
	}
	if (is_hex_name(name, "env", &qid)) {
		deliver_one(qid);
	}
	return qstop ? 1 : 0;
}

/* At start-up only (queue_start): a .msg without its .env and spool files
 * are commits that never finished, never acknowledged. */
static int clean_entry(const char *name, int is_dir, void *arg)
{
	uint64_t qid;
	if (is_dir) {
		return 0;
	}
	if (is_hex_name(name, "msg", &qid)) {
		char path[1200];
		qpath(path, sizeof path, qid, "env");
		struct os_stat st;
		if (os_stat(path, &st) != 0) {
			qpath(path, sizeof path, qid, "msg");
			log_info("queue: removing %s, a commit that did not finish", name);
			os_remove(path); /* never acknowledged */
		}
	} else if (!strncmp(name, "spool-", 6) || strstr(name, ".tmp.")) {
		char path[1200];
		snprintf(path, sizeof path, "%s/%s", qdir, name);
		os_remove(path); /* a message still arriving, or an envelope half-rewritten */
	}
	return qstop ? 1 : 0;
}

static void deliverer_main(void *arg)
{
	os_dir_walk(qdir, scan_entry, NULL); /* what a crash or stop left */
	for (;;) {
		os_mutex_lock(qlock);
		if (!qstop && !deliver_poke) {
			os_cond_wait(qwake, qlock, 60 * 1000);
		}
		deliver_poke = 0;
		int stop = qstop;
		os_mutex_unlock(qlock);
		if (stop) {
			cache_close_all(&deliver_cache);
			return;
		}
		os_dir_walk(qdir, scan_entry, NULL);
	}
}

/* ---- listing (Mailman.getQueue) ---- */

struct qids {
	uint64_t *v;
	size_t n, cap;
};

static int collect_qid(const char *name, int is_dir, void *arg)
{
	struct qids *q = arg;
	uint64_t qid;
	if (!is_dir && is_hex_name(name, "env", &qid)) {
		if (q->n == q->cap) {
			q->cap = q->cap ? q->cap * 2 : 64;
			q->v = xrealloc(q->v, q->cap * sizeof *q->v);
		}
		q->v[q->n++] = qid;
	}
	return 0;
}

static int cmp_qid(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Loads one entry and hands it to fn; 0 when it is gone (delivered
 * since the folder was read). */
static int list_one(
        const char *dir, uint64_t qid, int (*fn)(const struct queue_info *q, void *arg), void *arg)
{
	char path[1200];
	struct envelope e;
	struct os_stat st;
	memset(&e, 0, sizeof e);
	snprintf(path, sizeof path, "%s/%016llx.env", dir, (unsigned long long)qid);
	int r = 0;
	if (env_load(path, &e) == 0) {
		snprintf(path, sizeof path, "%s/%016llx.msg", dir, (unsigned long long)qid);
		struct queue_info q = {qid, e.m.from, (const char *const *)e.m.rcpts, e.m.nrcpt,
		        e.m.date, e.next, e.attempts, os_stat(path, &st) == 0 ? st.size : 0};
		r = fn(&q, arg);
	}
	for (int i = 0; i < e.m.nrcpt; i++) {
		free(e.m.rcpts[i]);
	}
	free(e.m.rcpts);
	free(e.m.from);
	return r;
}

/* see rumble.h */
int queue_list(int (*fn)(const struct queue_info *q, void *arg), void *arg)
{
	char dir[1100];
	struct qids ids = {NULL, 0, 0};
	/* from the storage folder, not qdir: the queue may not be started */
	if (!mm_storage()[0]) {
		return -1; /* mailman is not open */
	}
	snprintf(dir, sizeof dir, "%s/queue", mm_storage());
	if (os_dir_walk(dir, collect_qid, &ids) != 0) {
		struct os_stat st;
		free(ids.v);
		return os_stat(dir, &st) != 0 ? 0 : -1; /* none yet: an empty queue */
	}
	if (ids.n > 1) {
		qsort(ids.v, ids.n, sizeof *ids.v, cmp_qid); /* qids grow with time */
	}
	int r = 0;
	for (size_t i = 0; i < ids.n && r == 0; i++) {
		r = list_one(dir, ids.v[i], fn, arg);
	}
	free(ids.v);
	return r;
}

int queue_start(void)
{
	snprintf(qdir, sizeof qdir, "%s/queue", mm_storage());
	if (os_mkdir_p(qdir) != 0) {
		log_warn("queue: cannot create %s", qdir);
		return -1;
	}
	uint64_t r = 0;
	os_random(&r, sizeof r);
	id_counter = r & 0xfffff;
	qlock = os_mutex_new();
	qcond = os_cond_new();
	qdone = os_cond_new();
	qwake = os_cond_new();
	qstop = 0;
	/* Half-written entries of a crash are removed before anything can be
	 * committed: a .msg whose .env is about to be renamed in must never
	 * look like one. */
	os_dir_walk(qdir, clean_entry, NULL);
	committer = os_thread_start(committer_main, NULL);
	deliverer = os_thread_start(deliverer_main, NULL);
	return committer && deliverer ? 0 : -1;
}

void queue_stop(void)
{
	if (!qlock) {
		return;
	}
	os_mutex_lock(qlock);
	qstop = 1;
	os_cond_broadcast(qcond);
	os_cond_broadcast(qwake);
	os_mutex_unlock(qlock);
	os_thread_join(committer);
	os_thread_join(deliverer);
	os_cond_free(qcond);
	os_cond_free(qdone);
	os_cond_free(qwake);
	os_mutex_free(qlock);
	qlock = NULL;
}
