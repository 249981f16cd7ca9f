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

#include "sieve.h"

#define ALIAS_DEPTH 8
#define TARGETS_MAX 1000
#define FOLDER_CACHE 32
#define CACHE_IDLE_MS 2000 /* folders open this long with nothing to do are closed */
#define DELIVER_FULL 2     /* deliver_mbox: over the account's quota */

enum target_kind { T_MBOX, T_QUEUE };

struct target {
	enum target_kind kind;
	char domain[MM_DOMAIN_MAX + 1];
	char user[MM_USER_MAX + 1]; /* the account (T_MBOX) */
	char *addr;                 /* what goes to the queue file (T_QUEUE) */
	int full;                   /* over its quota: did not take the message */
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
static volatile int qstop, commit_stop;
static int deliver_poke; /* under qlock: queue files to look at */
static char qdir[1100];
static uint32_t id_counter; /* the low 20 bits are used */

/* ---- messages ---- */

uint64_t queue_new_id(void)
{
	/* seconds in the high bits, a counter in the low 20: unique and sorted */
	uint32_t c = os_atomic_add_u32(&id_counter, 1);
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
	free(m->folder);
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
	if (rl_strcasecmp(addr, "postmaster") == 0) {
		/* RFC 5321 4.5.1: "postmaster" without a domain is ours */
		return mm_postmaster(acct) == 0 ? RCPT_LOCAL : RCPT_UNKNOWN;
	}
	if (split_addr(addr, user, domain) != 0) {
		return RCPT_BAD;
	}
	if (!mm_domain_exists(domain)) {
		return RCPT_REMOTE;
	}
	if (mm_account_match(domain, user, acct) == 0) {
		return RCPT_LOCAL;
	}
	/* postmaster@ every local domain must be accepted too: unless it is an
	 * account or a pattern's, it goes where the bare one does */
	return !strcmp(user, "postmaster") && mm_postmaster(acct) == 0 ? RCPT_LOCAL : RCPT_UNKNOWN;
}

/* 1 when added, 0 when it was there already (or the list is full). */
static int targets_add(struct targets *t, enum target_kind kind, const char *domain,
	const char *user, const char *addr)
{
	for (int i = 0; i < t->n; i++) {
		struct target *o = &t->v[i];
		if (o->kind == kind && kind == T_MBOX && !strcmp(o->domain, domain) && !strcmp(o->user, user)) {
			return 0; /* one copy per mailbox */
		}
		if (o->kind == kind && kind == T_QUEUE && !rl_strcasecmp(o->addr, addr)) {
			return 0;
		}
	}
	if (t->n == TARGETS_MAX) {
		return 0;
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
	return 1;
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

/* Alias targets, and a mailbox's forwarding addresses (a copy stays in
 * the mailbox): separated by spaces, commas or semicolons; a name without
 * a domain is in the account's own domain. */
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
	if (!strchr(addr, '@') && home[0]) { /* a bare name given at RCPT: "postmaster" */
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
		/* its forwarding, once per mailbox, when received (not again
		 * for an address that was queued) */
		if (targets_add(t, T_MBOX, a.domain, a.user, addr) && a.args[0] && queued_ok) {
			resolve_alias(&a, depth, queued_ok, t);
		}
	} else if (k == RCPT_LOCAL && a.type == MM_ALIAS) {
		resolve_alias(&a, depth, queued_ok, t);
	} else {
		targets_add(t, T_QUEUE, "", "", addr); /* feed, relay, mod, remote */
	}
}

/* ---- open INBOXes, one cache per thread (committer, deliverer) ---- */

struct cached {
	char domain[MM_DOMAIN_MAX + 1], user[MM_USER_MAX + 1], folder[64];
	struct mm_folder *f;
	int64_t used;
	int dirty;
};
struct fcache {
	struct cached c[FOLDER_CACHE];
	int64_t clock;
};
static struct fcache commit_cache, deliver_cache;

/* The open folder of user (INBOX when folder is NULL). */
static struct cached *folder_get(struct fcache *fc, const char *domain, const char *user,
	const char *folder)
{
	folder = folder ? folder : "INBOX";
	struct cached *cache = fc->c;
	struct cached *victim = &cache[0];
	for (int i = 0; i < FOLDER_CACHE; i++) {
		struct cached *c = &cache[i];
		if (c->f && !strcmp(c->domain, domain) && !strcmp(c->user, user) &&
		    !strcmp(c->folder, folder)) {
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
	if (mm_folder_open(domain, user, folder, 1, &victim->f) != 0) {
		log_warnx("queue: cannot open the %s of %s@%s", folder, user, domain);
		return NULL;
	}
	rl_strlcpy(victim->folder, folder, sizeof victim->folder);
	rl_strlcpy(victim->domain, domain, sizeof victim->domain);
	rl_strlcpy(victim->user, user, sizeof victim->user);
	victim->used = ++fc->clock;
	return victim;
}

/* 1 when fc holds an open folder. */
static int cache_any(const struct fcache *fc)
{
	for (int i = 0; i < FOLDER_CACHE; i++) {
		if (fc->c[i].f) {
			return 1;
		}
	}
	return 0;
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

/* What a failed write of a message says to its sender: QUEUE_NOSPACE
 * when the disk (or the disk quota) is full (452 4.3.1), else -1 (451). */
static int io_failed(void)
{
	return os_errno_is_nospace() ? QUEUE_NOSPACE : -1;
}

/* fsyncs the folders appended to; -1 (or QUEUE_NOSPACE) if any failed. */
static int cache_sync(struct fcache *fc)
{
	struct cached *cache = fc->c;
	int rc = 0;
	for (int i = 0; i < FOLDER_CACHE; i++) {
		if (cache[i].dirty) {
			cache[i].dirty = 0;
			if (mm_folder_sync(cache[i].f) != 0) {
				rc = io_failed();
				log_warn("queue: fsync of %s@%s", cache[i].user, cache[i].domain);
			}
		}
	}
	return rc;
}

/* Sets flags (Sieve's words: system flags and keywords) on message uid. */
static void set_flags(struct mm_folder *f, uint32_t uid, const char *flags)
{
	char kw[512];
	uint32_t bits = sieve_flag_bits(flags, kw, sizeof kw), mask = 0;
	for (char *p = kw, *w; *p; p = w) {
		w = p + strcspn(p, " ");
		if (*w) {
			*w++ = '\0';
		}
		int k = mm_folder_keyword(f, p, 1);
		mask |= k >= 0 ? 1u << k : 0;
	}
	if (bits || mask) {
		mm_folder_store(f, &uid, 1, MM_STORE_ADD, bits, mask);
	}
}

/* Appends m to folder (NULL: m->folder, else INBOX) of t's mailbox with
 * flags (NULL: none); 0 done (or done before a crash), -1 failed
 * (QUEUE_NOSPACE: the disk is full), DELIVER_FULL when it does not fit
 * the account's quota. */
static int deliver_mbox(struct fcache *fc, struct queue_msg *m, const struct target *t,
	const char *folder, const char *flags, int check_qid)
{
	folder = folder ? folder : m->folder; /* Junk: dmarc.c */
	struct cached *c = folder_get(fc, t->domain, t->user, folder);
	if (!c && folder) {
		c = folder_get(fc, t->domain, t->user, NULL);
	}
	if (!c) {
		return -1;
	}
	if (check_qid && mm_folder_has_qid(c->f, m->qid)) {
		return 0; /* delivered before a crash */
	}
	if (quota_exceeded(t->domain, t->user, 1, m->body.len)) {
		log_info("%016llx over quota to=%s@%s size=%llu", (unsigned long long)m->qid, t->user,
			t->domain, (unsigned long long)m->body.len);
		return DELIVER_FULL;
	}
	uint32_t uid;
	if (mm_folder_append(c->f, &m->body, m->from[0] ? m->from : "MAILER-DAEMON", m->date, 0,
		    m->qid, &uid) != 0) {
		int rc = io_failed();
		log_warnx("queue: append to %s@%s failed", t->user, t->domain);
		return rc;
	}
	if (flags) {
		set_flags(c->f, uid, flags);
	}
	c->dirty = 1;
	log_info("%016llx delivered to=%s@%s folder=%s uid=%u size=%llu", (unsigned long long)m->qid,
		t->user, t->domain, c->folder, uid, (unsigned long long)m->body.len);
	quota_notify(t->domain, t->user);
	return 0;
}

/* A fileinto's folder: as named when it exists or :create says make it,
 * else INBOX (RFC 5490 3.2; logged). */
static const char *sieve_folder(const struct target *t, const struct sieve_action *a,
	uint64_t qid)
{
	struct mm_folder *f;
	if (!rl_strcasecmp(a->arg, "INBOX")) {
		return NULL;
	}
	if (!mm_valid_folder(a->arg)) {
		log_info("%016llx sieve: %s@%s: no folder can be called \"%s\"; to INBOX",
			(unsigned long long)qid, t->user, t->domain, a->arg);
		return "INBOX";
	}
	if (a->create || mm_folder_open(t->domain, t->user, a->arg, 0, &f) == 0) {
		if (!a->create) {
			mm_folder_close(f);
		}
		return a->arg;
	}
	log_info("%016llx sieve: %s@%s: no folder %s (fileinto without :create); to INBOX",
		(unsigned long long)qid, t->user, t->domain, a->arg);
	return "INBOX";
}

static int commit_one(struct queue_msg *m);

/* Commits text from <> to rcpt (Sieve's vacation answers and rejects). */
static void send_auto(const struct queue_msg *m, const char *rcpt, const struct buf *text,
	const char *what)
{
	struct queue_msg *b = queue_msg_new("");
	queue_msg_add_rcpt(b, rcpt);
	int rc = spool_write(&b->body, text->data, text->len) == 0 ? commit_one(b) : -1;
	log_info("%016llx sieve %s %016llx to=<%s> status=%s", (unsigned long long)m->qid, what,
		(unsigned long long)b->qid, rcpt, rc == 0 ? "committed" : "failed");
	queue_msg_free(b);
}

static void msg_header(struct spool *sp, struct buf *out);

/* reject/ereject after the message was taken: a DSN with the reason to
 * its sender (RFC 5429 2.1: a DSN when an MDN is not wanted); none for <>. */
static void sieve_reject(const struct queue_msg *m, const struct target *t, const char *reason)
{
	if (!m->from[0]) {
		return;
	}
	struct ob_rcpt r = {.status = OB_PERM};
	char addr[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(addr, sizeof addr, "%s@%s", t->user, t->domain);
	r.addr = addr;
	snprintf(r.reply, sizeof r.reply, "550 5.7.1 rejected by the recipient's filter: %.200s",
		reason);
	r.reply[strcspn(r.reply, "\r\n")] = '\0';
	rl_strlcpy(r.status_code, "5.7.1", sizeof r.status_code);
	struct buf hdr, dsn;
	buf_init(&hdr);
	buf_init(&dsn);
	msg_header((struct spool *)&m->body, &hdr);
	outbound_dsn(&dsn, m->from, m->qid, m->date, os_time(), &r, 1, hdr.data ? hdr.data : "",
		hdr.len);
	send_auto(m, m->from, &dsn, "reject");
	buf_free(&hdr);
	buf_free(&dsn);
}

/* m as Sieve's editheader left it (RFC 5293): r's header, then m's body
 * from r->body_off, into out. 0, or -1 on an I/O error. */
static int edited_copy(struct queue_msg *m, const struct sieve_result *r, struct spool *out)
{
	char chunk[16384];
	if (spool_write(out, r->header, r->header_len) != 0 || spool_write(out, "\r\n", 2) != 0) {
		return -1;
	}
	for (uint64_t off = r->body_off; off < m->body.len;) {
		long got = spool_read(&m->body, off, chunk, sizeof chunk);
		if (got <= 0 || spool_write(out, chunk, (size_t)got) != 0) {
			return -1;
		}
		off += (uint64_t)got;
	}
	return 0;
}

/* Stores m, or the edited copy em when there is one. */
static int deliver_as(struct fcache *fc, struct queue_msg *m, struct queue_msg *em,
	const struct target *t, const char *folder, const char *flags)
{
	if (!em) {
		return deliver_mbox(fc, m, t, folder, flags, 0);
	}
	struct spool orig = m->body; /* m's identity (qid, sender, date), em's text */
	m->body = em->body;
	int st = deliver_mbox(fc, m, t, folder, flags, 0);
	em->body = m->body;
	m->body = orig;
	return st;
}

static int redirect_depth; /* committer thread: edited redirects being committed */

/* redirect: m itself as one more target of this commit, or when the
 * script edited the header a copy as a message of its own (from m's
 * sender), committed here. */
static void sieve_redirect(struct queue_msg *m, const struct sieve_result *r, struct targets *ts,
	const char *to)
{
	if (!r->header || redirect_depth >= 4) { /* deeper: edits in a loop; the original goes */
		targets_add(ts, T_QUEUE, "", "", to);
		return;
	}
	struct queue_msg *b = queue_msg_new(m->from);
	queue_msg_add_rcpt(b, to);
	redirect_depth++;
	int rc = edited_copy(m, r, &b->body) == 0 ? commit_one(b) : -1;
	redirect_depth--;
	log_info("%016llx sieve redirect %016llx (edited) to=<%s> status=%s",
		(unsigned long long)m->qid, (unsigned long long)b->qid, to, rc == 0 ? "committed" : "failed");
	queue_msg_free(b);
}

/* What the mailbox's Sieve script says (sieve.c), or INBOX: stores,
 * redirects (queued as more targets of m: the caller's loop takes them)
 * and discards. reject and vacation are left to RFC 5429/5230's own
 * messages, logged here. */
static int deliver_local(struct fcache *fc, struct queue_msg *m, struct targets *ts, int i)
{
	struct target t = ts->v[i]; /* ts->v may move as redirects are added */
	struct sieve_result r;
	char me[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(me, sizeof me, "%s@%s", t.user, t.domain);
	int ran = sieve_decide(t.domain, t.user, t.addr, &m->body, m->from, &r);
	if (!ran) {
		memset(&r, 0, sizeof r);
		r.keep = 1; /* INBOX, unless the delivery hook says otherwise */
	}
	if (rl_delivery_wanted()) {
		size_t len;
		char *head = sieve_head(&m->body, &len);
		ran |= rl_delivery(t.addr ? t.addr : me, m->from, head, len, m->body.len, &r);
		free(head);
	}
	if (!ran) {
		return deliver_mbox(fc, m, &t, NULL, NULL, 0);
	}
	int rc = 0, full = 0;
	struct queue_msg *em = NULL; /* the message as editheader left it */
	if (r.header) {
		em = queue_msg_new(m->from);
		if (edited_copy(m, &r, &em->body) != 0) {
			queue_msg_free(em);
			return io_failed();
		}
	}
	for (int k = 0; k < r.n && rc >= 0; k++) {
		const struct sieve_action *a = &r.v[k];
		if (a->kind == SA_KEEP || a->kind == SA_FILEINTO) {
			const char *f = a->kind == SA_KEEP ? NULL : sieve_folder(&t, a, m->qid);
			int st = deliver_as(fc, m, em, &t, f, a->flags);
			full |= st == DELIVER_FULL;
			rc = st == DELIVER_FULL ? 0 : st;
		} else if (a->kind == SA_REDIRECT) {
			sieve_redirect(m, &r, ts, a->arg);
			log_info("%016llx sieve: %s@%s redirect to=<%s>", (unsigned long long)m->qid, t.user,
				t.domain, a->arg);
		} else if (a->kind == SA_VACATION) {
			struct buf reply;
			buf_init(&reply);
			if (sieve_vacation(t.domain, t.user, a, &m->body, m->from, &reply)) {
				send_auto(m, m->from, &reply, "vacation");
			}
			buf_free(&reply);
		} else if (a->kind == SA_REJECT || a->kind == SA_EREJECT) {
			sieve_reject(m, &t, a->arg);
		} else if (a->kind == SA_DUPLICATE) {
			continue; /* tracked below, once delivered */
		} else {
			log_info("%016llx sieve: %s@%s discard", (unsigned long long)m->qid, t.user,
				t.domain);
		}
	}
	if (rc >= 0 && r.keep) {
		int st = deliver_as(fc, m, em, &t, NULL, r.keep_flags);
		full |= st == DELIVER_FULL;
		rc = st == DELIVER_FULL ? 0 : st;
	}
	if (rc >= 0) {
		sieve_duplicate_commit(t.domain, t.user, &r);
	}
	if (em) {
		queue_msg_free(em);
	}
	sieve_result_free(&r);
	return rc < 0 ? rc : full ? DELIVER_FULL : 0;
}

/* ---- queue files ---- */

/* The queue folder: set by queue_start, or from the storage folder for
 * the command line, which does not start the queue. */
static const char *queue_dir(void)
{
	if (!qdir[0]) {
		snprintf(qdir, sizeof qdir, "%s/queue", mm_storage());
	}
	return qdir;
}

static void qpath(char *out, size_t len, uint64_t qid, const char *ext)
{
	queue_dir();
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

/* see rumble.h */
void queue__env_text(struct buf *b, const struct queue_env *e, const int *keep)
{
	buf_printf(b, "from %s\ndate %lld\nattempts %d\nnext %lld\n", e->from, (long long)e->date,
		e->attempts, (long long)e->next);
	for (int i = 0; i < e->n; i++) {
		if (keep && !keep[i]) {
			continue;
		}
		buf_printf(b, "rcpt %s\n", e->rcpts[i]);
		if (e->last && e->last[i]) {
			buf_printf(b, "last %s\n", e->last[i]);
		}
	}
}

static void env_add_rcpt(struct queue_env *e, const char *addr)
{
	e->rcpts = xrealloc(e->rcpts, (size_t)(e->n + 1) * sizeof *e->rcpts);
	e->last = xrealloc(e->last, (size_t)(e->n + 1) * sizeof *e->last);
	e->rcpts[e->n] = xstrdup(addr);
	e->last[e->n++] = NULL;
}

/* One "key value" line (value NUL-terminated, no line end). */
static void env_line(struct queue_env *e, const char *key, const char *v)
{
	if (!strcmp(key, "from")) {
		free(e->from);
		e->from = xstrdup(v);
	} else if (!strcmp(key, "date")) {
		e->date = strtoll(v, NULL, 10);
	} else if (!strcmp(key, "attempts")) {
		e->attempts = atoi(v);
	} else if (!strcmp(key, "next")) {
		e->next = strtoll(v, NULL, 10);
	} else if (!strcmp(key, "rcpt") && e->n < TARGETS_MAX) {
		env_add_rcpt(e, v);
	} else if (!strcmp(key, "last") && e->n > 0 && !e->last[e->n - 1]) {
		e->last[e->n - 1] = xstrdup(v);
	}
}

/* see rumble.h */
int queue__env_parse(const char *text, size_t len, struct queue_env *e)
{
	char line[1200];
	memset(e, 0, sizeof *e);
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (n < sizeof line) {
			memcpy(line, text + pos, n);
			line[n] = '\0';
			line[strcspn(line, "\r")] = '\0';
			char *v = strchr(line, ' ');
			if (v) {
				*v++ = '\0';
				env_line(e, line, v);
			}
		}
		pos += n + 1;
	}
	return e->from ? 0 : -1;
}

/* see rumble.h */
void queue__env_free(struct queue_env *e)
{
	for (int i = 0; i < e->n; i++) {
		free(e->rcpts[i]);
		free(e->last[i]);
	}
	free(e->rcpts);
	free(e->last);
	free(e->from);
	memset(e, 0, sizeof *e);
}

#define ENV_FILE_MAX (4 * 1024 * 1024)

static int env_load(const char *path, struct queue_env *e)
{
	memset(e, 0, sizeof *e);
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return -1;
	}
	struct buf b;
	buf_init(&b);
	char chunk[8192];
	size_t got;
	while (b.len < ENV_FILE_MAX && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(&b, chunk, got);
	}
	fclose(f);
	int rc = b.len ? queue__env_parse(b.data, b.len, e) : -1;
	buf_free(&b);
	if (rc != 0) {
		queue__env_free(e);
	}
	return rc;
}

static int env_save(uint64_t qid, const struct queue_env *e, const int *keep)
{
	char path[1200];
	struct buf b;
	buf_init(&b);
	queue__env_text(&b, e, keep);
	qpath(path, sizeof path, qid, "env");
	int rc = os_write_file_atomic(path, b.data, b.len);
	if (rc != 0) {
		log_warn("queue: write %s", path);
	}
	buf_free(&b);
	return rc;
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
		return io_failed();
	}
	int rc = copy_spool(&m->body, f) == 0 && os_fsync(f) == 0 ? 0 : io_failed();
	fclose(f);
	struct queue_env e = {.from = m->from, .date = m->date};
	e.rcpts = xcalloc((size_t)t->n + 1, sizeof *e.rcpts);
	for (int i = 0; i < t->n; i++) {
		if (t->v[i].kind == T_QUEUE) {
			e.rcpts[e.n++] = t->v[i].addr;
		}
	}
	if (rc == 0 && env_save(m->qid, &e, NULL) != 0) {
		rc = io_failed();
	}
	free(e.rcpts);
	return rc;
}

/* ---- committing ---- */

static int commit_one(struct queue_msg *m);
static void msg_header(struct spool *sp, struct buf *out);

/* A DSN to m's sender about the n mailboxes in full that were over
 * quota, committed here (the committer cannot wait for itself); none for
 * a null sender. */
static void bounce_full(struct queue_msg *m, const struct target *const *full, int n)
{
	if (!m->from[0] || n == 0) {
		return;
	}
	struct ob_rcpt *r = xcalloc((size_t)n, sizeof *r);
	char (*addr)[MM_USER_MAX + MM_DOMAIN_MAX + 2] = xcalloc((size_t)n, sizeof *addr);
	for (int i = 0; i < n; i++) {
		snprintf(addr[i], sizeof addr[i], "%s@%s", full[i]->user, full[i]->domain);
		r[i].addr = addr[i];
		r[i].status = OB_PERM;
		rl_strlcpy(r[i].reply, "552 5.2.2 mailbox full: over its quota", sizeof r[i].reply);
		rl_strlcpy(r[i].status_code, "5.2.2", sizeof r[i].status_code);
	}
	struct buf hdr, dsn;
	buf_init(&hdr);
	buf_init(&dsn);
	msg_header(&m->body, &hdr);
	outbound_dsn(&dsn, m->from, m->qid, m->date, os_time(), r, n, hdr.data ? hdr.data : "",
		hdr.len);
	struct queue_msg *b = queue_msg_new("");
	queue_msg_add_rcpt(b, m->from);
	int rc = spool_write(&b->body, dsn.data, dsn.len) == 0 ? commit_one(b) : -1;
	log_info("%016llx bounce %016llx to=<%s> over quota rcpts=%d status=%s",
		(unsigned long long)m->qid, (unsigned long long)b->qid, m->from, n,
		rc == 0 ? "committed" : "failed");
	queue_msg_free(b);
	buf_free(&hdr);
	buf_free(&dsn);
	free(addr);
	free(r);
}

/* Delivers m to its mailboxes and queues the rest. A mailbox over its
 * quota does not get it: when no recipient took it, m->status says
 * QUEUE_FULL (SMTP answers 552); else the sender gets a DSN for those. */
static int commit_one(struct queue_msg *m)
{
	struct targets t = {0};
	int rc = 0, queued = 0, took = 0, nfull = 0;
	for (int i = 0; i < m->nrcpt; i++) {
		resolve(m->rcpts[i], "", 0, 1, &t);
	}
	for (int i = 0; i < t.n && rc == 0; i++) { /* a Sieve redirect adds to t */
		if (t.v[i].kind == T_MBOX) {
			rc = deliver_local(&commit_cache, m, &t, i);
			took += rc == 0;
			if (rc == DELIVER_FULL) {
				t.v[i].full = 1;
				nfull++;
				rc = 0;
			}
		} else {
			queued++;
		}
	}
	const struct target **full = xcalloc((size_t)t.n + 1, sizeof *full);
	for (int i = 0, k = 0; i < t.n; i++) {
		if (t.v[i].full) {
			full[k++] = &t.v[i];
		}
	}
	if (rc == 0 && queued && (rc = queue_write(m, &t)) == 0) {
		os_mutex_lock(qlock);
		deliver_poke = 1;
		os_cond_signal(qwake);
		os_mutex_unlock(qlock);
	}
	if (rc == 0 && nfull && !took && !queued) {
		rc = QUEUE_FULL;
	} else if (rc == 0) {
		bounce_full(m, full, nfull);
	}
	free(full);
	targets_free(&t);
	return rc;
}

static void commit_batch(struct job *list)
{
	int n = 0;
	for (struct job *j = list; j; j = j->next) {
		j->m->status = commit_one(j->m);
		int rc = ++n % (FOLDER_CACHE / 2) == 0 ? cache_sync(&commit_cache) : 0;
		for (struct job *k = list; rc && k != j->next; k = k->next) {
			k->m->status = rc; /* rare: a very large batch; sync as we go */
		}
	}
	int rc = cache_sync(&commit_cache);
	for (struct job *j = list; rc && j; j = j->next) {
		j->m->status = rc;
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

/* Waits on cond (qlock held). An open folder holds its whole index in
 * memory (some 80 bytes a message): when nothing came for CACHE_IDLE_MS
 * the cache lets its folders go, so that a big INBOX costs nothing while
 * no one uses it; a burst of mail keeps them open. */
static void idle_wait(struct fcache *fc, os_cond *cond)
{
	if (!cache_any(fc)) {
		os_cond_wait(cond, qlock, -1);
		return;
	}
	int64_t t0 = os_now_ms();
	os_cond_wait(cond, qlock, CACHE_IDLE_MS);
	if (os_now_ms() - t0 >= CACHE_IDLE_MS) {
		os_mutex_unlock(qlock);
		cache_close_all(fc);
		os_mutex_lock(qlock);
	}
}

static void committer_main(void *arg)
{
	for (;;) {
		os_mutex_lock(qlock);
		while (!pending && !commit_stop) {
			idle_wait(&commit_cache, qcond);
		}
		struct job *list = pending;
		pending = pending_tail = NULL;
		int stop = commit_stop;
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

/* ---- the delivery threads ----
 *
 * The deliverer walks the queue folder. Entries whose recipients are all
 * local (feeds, mods, mailboxes created since) it delivers itself; an
 * entry with an address elsewhere (another domain, a relay account) goes
 * to one of OutboundThreads outbound threads, so a slow remote server
 * holds up neither local delivery nor other remote mail. An entry is
 * worked on by one thread at a time (the slots below). After an attempt
 * the envelope is rewritten atomically: delivered recipients leave it,
 * failed ones are bounced and leave it, the rest stay with their last
 * error, the attempt count and the time of the next attempt. */

#define SLOTS_MAX 256

struct envelope {
	struct queue_env env;
	struct queue_msg m; /* from, qid, date, body borrowed for delivery */
	char msgpath[1200];
};

struct slot {
	uint64_t qid;
	int taken;
};
static struct slot slots[SLOTS_MAX]; /* under qlock */
static int nslots;
static os_cond *qwork;
static os_thread **outbound;
static int noutbound;
static int64_t wake_at; /* under qlock: the earliest next attempt known */

int queue__stopping(void)
{
	return qstop;
}

static void queue_remove(uint64_t qid)
{
	char path[1200];
	qpath(path, sizeof path, qid, "env");
	os_remove(path);
	qpath(path, sizeof path, qid, "msg");
	os_remove(path);
}

/* Loads the message file into the spool (by reference: the spool reads
 * the queue file itself). */
static int msg_attach(struct envelope *e)
{
	qpath(e->msgpath, sizeof e->msgpath, e->m.qid, "msg");
	spool_init(&e->m.body, qdir);
	FILE *f = os_fopen(e->msgpath, "rb");
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

static int envelope_open(uint64_t qid, struct envelope *e)
{
	char path[1200];
	memset(e, 0, sizeof *e);
	e->m.qid = qid;
	qpath(path, sizeof path, qid, "env");
	if (env_load(path, &e->env) != 0 || msg_attach(e) != 0) {
		return -1;
	}
	e->m.from = e->env.from;
	e->m.date = e->env.date;
	return 0;
}

static void envelope_close(struct envelope *e)
{
	if (e->m.body.f) {
		fclose(e->m.body.f);
		e->m.body.f = NULL;
	}
	queue__env_free(&e->env);
}

/* Where a queued address goes: 1 out over SMTP (domain and via set: via
 * "" = by MX), 0 delivered here. */
static int route(const char *addr, char *domain, size_t dlen, char *via, size_t vlen)
{
	struct mm_account a;
	enum rcpt_kind k = queue_classify(addr, &a);
	const char *at = strrchr(addr, '@');
	rl_strlcpy(domain, at ? at + 1 : "", dlen);
	rl_lower(domain);
	if (k == RCPT_REMOTE) {
		rl_strlcpy(via, conf.relay_host, vlen);
		return 1;
	}
	if (k == RCPT_LOCAL && a.type == MM_RELAY) {
		rl_strlcpy(via, a.args, vlen);
		return 1;
	}
	return 0;
}

static int needs_outbound(const struct queue_env *e)
{
	char domain[MM_DOMAIN_MAX + 1], via[MM_ARGS_MAX];
	for (int i = 0; i < e->n; i++) {
		if (route(e->rcpts[i], domain, sizeof domain, via, sizeof via)) {
			return 1;
		}
	}
	return 0;
}

/* Delivers one queued address here (mailbox, feed, mod); 0 done, 1 try
 * later. */
static int deliver_queued(struct fcache *fc, struct envelope *e, const char *rcpt)
{
	struct targets t = {0};
	resolve(rcpt, "", 0, 0, &t);
	int rc = 0;
	for (int i = 0; i < t.n; i++) {
		struct target *x = &t.v[i];
		struct mm_account a;
		if (x->kind == T_MBOX) {
			int st = deliver_mbox(fc, &e->m, x, NULL, NULL, 1);
			rc |= st == DELIVER_FULL ? DELIVER_FULL : st != 0 ? 1 : 0;
		} else if (queue_classify(x->addr, &a) == RCPT_LOCAL && a.type == MM_FEED) {
			int st = os_run_with_stdin(a.args, e->msgpath);
			log_info("%016llx feed to=%s program=\"%s\" status=%d",
				(unsigned long long)e->m.qid, x->addr, a.args, st);
			rc |= st != 0 ? 1 : 0;
		} else if (queue_classify(x->addr, &a) == RCPT_LOCAL && a.type == MM_MOD) {
			int st = rl_feed(&a, e->msgpath, e->m.from, x->addr); /* a Lua hook */
			log_info("%016llx mod to=%s status=%s", (unsigned long long)e->m.qid, x->addr,
				st == 0 ? "delivered" : "deferred");
			rc |= st;
		} else {
			rc = 1; /* became remote since it was queued: the next round sends it */
		}
	}
	targets_free(&t);
	if (cache_sync(fc) != 0) {
		rc = 1;
	}
	return rc;
}

/* The local recipients of e, then each remote domain in one transaction;
 * sets r[i].status. Saves the envelope after each domain that took mail
 * (a crash then re-sends to no one who has it). */
static void deliver_all(struct fcache *fc, struct envelope *e, struct ob_rcpt *r, int *keep)
{
	int n = e->env.n;
	char (*dom)[MM_DOMAIN_MAX + 1] = xcalloc((size_t)n, sizeof *dom);
	char (*via)[MM_ARGS_MAX] = xcalloc((size_t)n, sizeof *via);
	int *out = xcalloc((size_t)n, sizeof *out);
	for (int i = 0; i < n; i++) {
		r[i].addr = e->env.rcpts[i];
		out[i] = route(r[i].addr, dom[i], sizeof dom[i], via[i], sizeof via[i]);
		if (!out[i]) {
			int st = deliver_queued(fc, e, r[i].addr);
			r[i].status = st == 0 ? OB_SENT : OB_TEMP; /* full: retried, it may empty */
			keep[i] = st != 0;
			rl_strlcpy(r[i].reply, st & DELIVER_FULL ? "452 4.2.2 mailbox full: over its quota"
				: "local delivery failed", sizeof r[i].reply);
		}
	}
	struct ob_rcpt *g = xcalloc((size_t)n, sizeof *g);
	int *gi = xcalloc((size_t)n, sizeof *gi);
	for (int i = 0; i < n && !qstop; i++) {
		if (!out[i] || r[i].status != OB_PENDING) {
			continue;
		}
		int ng = 0, sent = 0;
		for (int j = i; j < n; j++) {
			if (out[j] && r[j].status == OB_PENDING && !strcmp(dom[i], dom[j]) &&
				!strcmp(via[i], via[j])) {
				gi[ng] = j;
				g[ng++].addr = r[j].addr;
			}
		}
		outbound_send(&e->m, dom[i], via[i], g, ng);
		for (int k = 0; k < ng; k++) {
			r[gi[k]] = g[k];
			sent += g[k].status == OB_SENT;
			keep[gi[k]] = g[k].status != OB_SENT;
		}
		if (sent) {
			env_save(e->m.qid, &e->env, keep);
		}
	}
	for (int i = 0; i < n; i++) {
		if (r[i].status == OB_PENDING) {
			r[i].status = OB_TEMP; /* stopped before its turn */
			rl_strlcpy(r[i].reply, "not tried: the server was stopping", sizeof r[i].reply);
		}
	}
	free(g);
	free(gi);
	free(out);
	free(via);
	free(dom);
}

/* The header block of the message, at most 64 KB, for the bounce. */
static void msg_header(struct spool *sp, struct buf *out)
{
	char in[65536];
	long n = spool_read(sp, 0, in, sizeof in);
	if (n <= 0) {
		return;
	}
	size_t len = (size_t)n;
	for (size_t i = 0; i + 3 < (size_t)n; i++) {
		if (!memcmp(in + i, "\r\n\r\n", 4)) {
			len = i + 2;
			break;
		}
	}
	buf_append(out, in, len);
}

/* Sends a DSN about the failed recipients fail[0..n) to e's sender;
 * 0 when it is durable (or must not be sent: a null sender). */
static int bounce(struct envelope *e, const struct ob_rcpt *fail, int n)
{
	if (!e->env.from[0]) {
		log_info("%016llx bounce not sent: the message is itself a bounce (null sender)",
			(unsigned long long)e->m.qid);
		return 0;
	}
	struct buf hdr, dsn;
	buf_init(&hdr);
	buf_init(&dsn);
	msg_header(&e->m.body, &hdr);
	outbound_dsn(&dsn, e->env.from, e->m.qid, e->env.date, os_time(), fail, n,
		hdr.data ? hdr.data : "", hdr.len);
	struct queue_msg *b = queue_msg_new("");
	queue_msg_add_rcpt(b, e->env.from);
	int rc = spool_write(&b->body, dsn.data, dsn.len);
	rc = rc == 0 ? queue_commit_wait(b) : -1;
	log_info("%016llx bounce %016llx to=<%s> status=%s", (unsigned long long)e->m.qid,
		(unsigned long long)b->qid, e->env.from, rc == 0 ? "queued" : "failed");
	queue_msg_free(b);
	buf_free(&hdr);
	buf_free(&dsn);
	return rc;
}

/* Deferred recipients that ran out of time become failures. */
static void expire(struct envelope *e, struct ob_rcpt *r)
{
	int64_t now = os_time();
	int too_old = now - e->env.date >= conf.queue_lifetime;
	int too_many = conf.delivery_attempts && e->env.attempts + 1 >= conf.delivery_attempts;
	for (int i = 0; i < e->env.n; i++) {
		if (r[i].status == OB_TEMP && (too_old || too_many)) {
			char why[OB_REPLY_MAX];
			snprintf(why, sizeof why, "gave up after %d attempts: %.200s", e->env.attempts + 1,
				r[i].reply);
			rl_strlcpy(r[i].reply, why, sizeof r[i].reply);
			r[i].status = OB_PERM;
		}
	}
}

/* Bounces the failures; what stays is kept with its reason. */
static void settle_entry(struct envelope *e, struct ob_rcpt *r, int *keep)
{
	int n = e->env.n, nfail = 0, nleft = 0;
	struct ob_rcpt *fail = xcalloc((size_t)n + 1, sizeof *fail);
	for (int i = 0; i < n; i++) {
		if (r[i].status == OB_PERM) {
			fail[nfail++] = r[i];
		}
	}
	int bounced = nfail == 0 || bounce(e, fail, nfail) == 0;
	for (int i = 0; i < n; i++) {
		keep[i] = r[i].status == OB_TEMP || (r[i].status == OB_PERM && !bounced);
		nleft += keep[i];
		if (keep[i]) {
			free(e->env.last[i]);
			e->env.last[i] = xstrdup(r[i].reply);
		}
	}
	free(fail);
	if (nleft == 0) {
		queue_remove(e->m.qid);
		return;
	}
	e->env.attempts++;
	e->env.next = os_time() + outbound_backoff(e->env.attempts);
	env_save(e->m.qid, &e->env, keep);
	log_info("%016llx deferred rcpts=%d attempts=%d next_in=%llds", (unsigned long long)e->m.qid,
		nleft, e->env.attempts, (long long)(e->env.next - os_time()));
	for (int i = 0; i < n; i++) {
		if (keep[i]) {
			log_info("%016llx deferred to=<%s> reason=\"%s\"",
			        (unsigned long long)e->m.qid, e->env.rcpts[i], e->env.last[i]);
		}
	}
}

/* One attempt at entry qid; returns its next attempt time (0: none). */
static int64_t deliver_one(uint64_t qid, struct fcache *fc)
{
	struct envelope e;
	int64_t next = 0;
	if (envelope_open(qid, &e) != 0) {
		log_warnx("queue: %016llx is damaged; left in place", (unsigned long long)qid);
	} else if (e.env.next > os_time()) {
		next = e.env.next;
	} else if (e.env.n == 0) {
		queue_remove(qid);
	} else {
		struct ob_rcpt *r = xcalloc((size_t)e.env.n, sizeof *r);
		int *keep = xcalloc((size_t)e.env.n, sizeof *keep);
		for (int i = 0; i < e.env.n; i++) {
			keep[i] = 1;
		}
		deliver_all(fc, &e, r, keep);
		if (!qstop) {
			expire(&e, r);
			settle_entry(&e, r, keep);
			next = e.env.next;
		}
		free(keep);
		free(r);
	}
	envelope_close(&e);
	return next;
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

static void note_next(int64_t next)
{
	if (next > 0 && (wake_at == 0 || next < wake_at)) {
		wake_at = next;
	}
}

/* Under qlock: is qid being worked on? */
static int slot_find(uint64_t qid)
{
	for (int i = 0; i < nslots; i++) {
		if (slots[i].qid == qid) {
			return i;
		}
	}
	return -1;
}

/* Hands qid to the outbound threads; 0 when they have no room now. */
static int dispatch(uint64_t qid)
{
	os_mutex_lock(qlock);
	int ok = nslots < SLOTS_MAX;
	if (ok) {
		slots[nslots].qid = qid;
		slots[nslots++].taken = 0;
		os_cond_signal(qwork);
	}
	os_mutex_unlock(qlock);
	return ok;
}

static int scan_entry(const char *name, int is_dir, void *arg)
{
	uint64_t qid;
	char path[1200];
	struct queue_env env;
	if (is_dir || !is_hex_name(name, "env", &qid)) {
		return qstop ? 1 : 0;
	}
	os_mutex_lock(qlock);
	int busy = slot_find(qid) >= 0;
	os_mutex_unlock(qlock);
	qpath(path, sizeof path, qid, "env");
	if (busy || env_load(path, &env) != 0) {
		return qstop ? 1 : 0; /* being worked on, or gone meanwhile */
	}
	if (env.next > os_time()) {
		os_mutex_lock(qlock);
		note_next(env.next);
		os_mutex_unlock(qlock);
	} else if (!needs_outbound(&env)) {
		int64_t next = deliver_one(qid, &deliver_cache);
		os_mutex_lock(qlock);
		note_next(next);
		os_mutex_unlock(qlock);
	} else {
		dispatch(qid); /* when full, a finishing thread makes us look again */
	}
	queue__env_free(&env);
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

/* Milliseconds until the earliest known next attempt, at most a minute
 * (new mail pokes us sooner). Under qlock. */
static int wait_ms(void)
{
	if (wake_at == 0) {
		return 60 * 1000;
	}
	int64_t ms = wake_at * 1000 - os_time() * 1000;
	return ms <= 0 ? 0 : ms > 60 * 1000 ? 60 * 1000 : (int)ms;
}

static void requests_apply(void);
static void deliverer_wait(int ms);

static void deliverer_main(void *arg)
{
	for (;;) {
		requests_apply();
		stats_tick(os_time());
		os_dir_walk(qdir, scan_entry, NULL);
		os_mutex_lock(qlock);
		if (wake_at && wake_at <= os_time()) {
			wake_at = 0; /* its entry was just looked at */
		}
		int ms = wait_ms();
		if (!qstop && !deliver_poke && ms > 0 && cache_any(&deliver_cache)) {
			os_mutex_unlock(qlock);
			cache_close_all(&deliver_cache); /* idle: see idle_wait */
			os_mutex_lock(qlock);
		}
		deliverer_wait(ms);
		if (wake_at && wake_at <= os_time()) {
			wake_at = 0;
		}
		deliver_poke = 0;
		int stop = qstop;
		os_mutex_unlock(qlock);
		if (stop) {
			cache_close_all(&deliver_cache);
			return;
		}
	}
}

/* An outbound thread: takes an entry from the slots, makes one attempt. */
static void outbound_main(void *arg)
{
	struct fcache *fc = xcalloc(1, sizeof *fc);
	os_mutex_lock(qlock);
	for (;;) {
		int i = 0;
		while (i < nslots && slots[i].taken) {
			i++;
		}
		if (qstop) {
			break;
		}
		if (i == nslots) {
			idle_wait(fc, qwork);
			continue;
		}
		slots[i].taken = 1;
		uint64_t qid = slots[i].qid;
		os_mutex_unlock(qlock);
		int64_t next = deliver_one(qid, fc);
		os_mutex_lock(qlock);
		int k = slot_find(qid);
		slots[k] = slots[--nslots];
		note_next(next);
		deliver_poke = 1; /* a slot is free, and a new next time may be known */
		os_cond_signal(qwake);
	}
	os_mutex_unlock(qlock);
	cache_close_all(fc);
	free(fc);
}

static int outbound_start(void)
{
	noutbound = conf.outbound_threads > 0 ? conf.outbound_threads : 1;
	outbound = xcalloc((size_t)noutbound, sizeof *outbound);
	for (int i = 0; i < noutbound; i++) {
		if (!(outbound[i] = os_thread_start(outbound_main, NULL))) {
			return -1;
		}
	}
	return 0;
}

/* ---- administration: flush, delete, bounce (the CLI, the web admin) ----
 *
 * The rule: an entry is changed only by the thread that holds it, an
 * outbound thread while the entry is in a slot, else the deliverer (only
 * the deliverer puts entries into slots, so an entry it finds in no slot
 * stays free while it works on it). A request is therefore never applied
 * by the one who asks: it is a file queue/requests/<qid>.<verb> (all.flush
 * for every entry) holding who asked, and the deliverer applies it between
 * its rounds; a request for an entry that an outbound thread is sending
 * waits until that attempt ends. The server in the same process (the web
 * admin) pokes the deliverer; the command line is another process, so the
 * deliverer also looks at the folder every second while it waits. The
 * running server holds queue/server.lock, which tells the command line
 * that someone will apply its request. */

#define REQ_BY_MAX 200

static FILE *server_lock; /* held from queue_start to queue_stop */

static void req_dir(char *out, size_t len)
{
	snprintf(out, len, "%s/requests", queue_dir());
}

static void req_path(char *out, size_t len, uint64_t qid, const char *verb)
{
	char id[20];
	snprintf(id, sizeof id, "%016llx", (unsigned long long)qid);
	snprintf(out, len, "%s/requests/%s.%s", queue_dir(), qid ? id : "all", verb);
}

/* see rumble.h */
int queue_parse_id(const char *s, uint64_t *qid)
{
	if (strlen(s) != 16 || strspn(s, "0123456789abcdefABCDEF") != 16) {
		return -1;
	}
	*qid = strtoull(s, NULL, 16);
	return *qid ? 0 : -1;
}

/* see rumble.h */
int queue_exists(uint64_t qid)
{
	char path[1200];
	struct os_stat st;
	qpath(path, sizeof path, qid, "env");
	return os_stat(path, &st) == 0;
}

/* see rumble.h */
int queue_request(uint64_t qid, const char *verb, const char *by, char *err, size_t errlen)
{
	char path[1200];
	if (strcmp(verb, "flush") && strcmp(verb, "delete") && strcmp(verb, "bounce")) {
		snprintf(err, errlen, "unknown action %.40s", verb);
		return -1;
	}
	if ((qid || strcmp(verb, "flush")) && (!qid || !queue_exists(qid))) {
		snprintf(err, errlen, "no such message in the queue: %016llx",
		        (unsigned long long)qid);
		return -1;
	}
	req_dir(path, sizeof path);
	os_mkdir_p(path);
	req_path(path, sizeof path, qid, verb);
	if (os_write_file_atomic(path, by, strnlen(by, REQ_BY_MAX)) != 0) {
		snprintf(err, errlen, "cannot write %.200s: %.100s", path, os_strerror());
		return -1;
	}
	if (qlock) {
		os_mutex_lock(qlock);
		deliver_poke = 1; /* this process runs the server: at once */
		os_cond_signal(qwake);
		os_mutex_unlock(qlock);
	}
	return 0;
}

/* see rumble.h */
int queue_request_pending(uint64_t qid, const char *verb)
{
	char path[1200];
	struct os_stat st;
	req_path(path, sizeof path, qid, verb);
	return os_stat(path, &st) == 0;
}

/* see rumble.h */
int queue_server_running(void)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/server.lock", queue_dir());
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return 0; /* no server ever ran here */
	}
	int r = os_trylock(f);
	fclose(f); /* releases what it got */
	return r == 1;
}

/* see rumble.h */
int queue_delete_offline(uint64_t qid)
{
	if (!queue_exists(qid)) {
		return -1;
	}
	queue_remove(qid);
	return queue_exists(qid) ? -1 : 0;
}

/* The enhanced status code (RFC 3463) of a reply kept as "451 4.3.0 ...",
 * else 4.4.7 (delivery time expired), as an expiry would report it. */
static void reply_status(const char *last, char *out, size_t len)
{
	const char *p = last ? last : "";
	if (strspn(p, "0123456789") == 3 && p[3] == ' ') {
		p += 4; /* the reply code */
	}
	size_t n = strspn(p, "0123456789.");
	if (n >= 5 && n < len && (p[0] == '4' || p[0] == '5') && p[1] == '.') {
		memcpy(out, p, n);
		out[n] = '\0';
	} else {
		rl_strlcpy(out, "4.4.7", len);
	}
}

/* Every recipient failed with its last reply, as an expiry would say. */
static int bounce_now(struct envelope *e)
{
	int n = e->env.n;
	struct ob_rcpt *r = xcalloc((size_t)n + 1, sizeof *r);
	for (int i = 0; i < n; i++) {
		r[i].addr = e->env.rcpts[i];
		r[i].status = OB_PERM;
		snprintf(r[i].reply, sizeof r[i].reply,
		        "returned by the postmaster after %d attempts: %.200s", e->env.attempts,
		        e->env.last[i] ? e->env.last[i] : "not tried yet");
		reply_status(e->env.last[i], r[i].status_code, sizeof r[i].status_code);
	}
	int rc = bounce(e, r, n);
	free(r);
	return rc;
}

/* Applies one request to an entry no thread holds; 0 done (the request
 * file can go), 1 leave it for later. */
static int request_one(uint64_t qid, const char *verb, const char *by)
{
	unsigned long long id = (unsigned long long)qid;
	struct envelope e;
	if (!queue_exists(qid)) {
		log_info("%016llx %s by=\"%s\": not in the queue (delivered meanwhile?)", id, verb,
		        by);
		return 0;
	}
	if (!strcmp(verb, "delete")) {
		queue_remove(qid);
		log_info("%016llx deleted by=\"%s\"", id, by);
		return 0;
	}
	if (envelope_open(qid, &e) != 0) {
		log_warnx("queue: %016llx %s by=\"%s\": the entry is damaged", id, verb, by);
		return 0;
	}
	int rc = 0;
	if (!strcmp(verb, "flush")) {
		e.env.next = 0;
		rc = env_save(qid, &e.env, NULL) == 0 ? 0 : 1;
		log_info("%016llx flush by=\"%s\"", id, by);
	} else if (bounce_now(&e) == 0) {
		queue_remove(qid);
		log_info("%016llx bounced by=\"%s\"", id, by);
	} else {
		rc = 1;
	}
	envelope_close(&e);
	return rc;
}

/* Under no lock: is qid in a slot? */
static int held(uint64_t qid)
{
	os_mutex_lock(qlock);
	int busy = slot_find(qid) >= 0;
	os_mutex_unlock(qlock);
	return busy;
}

static int flush_entry(const char *name, int is_dir, void *arg)
{
	uint64_t qid;
	if (!is_dir && is_hex_name(name, "env", &qid) && !held(qid)) {
		request_one(qid, "flush", arg);
	}
	return qstop ? 1 : 0;
}

static int request_entry(const char *name, int is_dir, void *arg)
{
	char path[1200], by[REQ_BY_MAX + 1] = "";
	const char *dot = strchr(name, '.');
	uint64_t qid = 0;
	if (is_dir || !dot || strstr(name, ".tmp.")) {
		return 0;
	}
	snprintf(path, sizeof path, "%s/requests/%s", queue_dir(), name);
	FILE *f = os_fopen(path, "rb");
	if (f) {
		by[fread(by, 1, REQ_BY_MAX, f)] = '\0';
		fclose(f);
	}
	by[strcspn(by, "\"\r\n")] = '\0';
	int all = !strcmp(name, "all.flush");
	int bad = !all && (dot - name != 16 || !is_hex_name(name, dot + 1, &qid) ||
	                          (strcmp(dot + 1, "flush") && strcmp(dot + 1, "delete") &&
	                                  strcmp(dot + 1, "bounce")));
	if (bad) {
		log_warnx("queue: request %s not understood; removed", name);
	} else if (all) {
		os_dir_walk(qdir, flush_entry, by);
	} else if (held(qid) || request_one(qid, dot + 1, by) != 0) {
		return qstop ? 1 : 0; /* being sent now: after the attempt */
	}
	os_remove(path);
	return qstop ? 1 : 0;
}

static void requests_apply(void)
{
	char dir[1200];
	req_dir(dir, sizeof dir);
	os_dir_walk(dir, request_entry, NULL);
}

static int any_file(const char *name, int is_dir, void *arg)
{
	return !is_dir && !strstr(name, ".tmp.");
}

/* Under qlock: waits up to ms for a poke, looking for requests of the
 * command line every second. */
static void deliverer_wait(int ms)
{
	char dir[1200];
	int64_t end = os_now_ms() + ms;
	req_dir(dir, sizeof dir);
	while (!qstop && !deliver_poke) {
		int64_t left = end - os_now_ms();
		if (left <= 0) {
			return;
		}
		os_cond_wait(qwake, qlock, left > 1000 ? 1000 : (int)left);
		os_mutex_unlock(qlock);
		int any = os_dir_walk(dir, any_file, NULL) == 1;
		os_mutex_lock(qlock);
		if (any) {
			return;
		}
	}
}

/* see rumble.h */
int queue_show(uint64_t qid, struct buf *out)
{
	struct envelope e;
	if (envelope_open(qid, &e) != 0) {
		return -1;
	}
	buf_printf(out, "id %016llx\nsize %llu\n", (unsigned long long)qid,
	        (unsigned long long)e.m.body.len);
	queue__env_text(out, &e.env, NULL);
	buf_printf(out, "\n");
	msg_header(&e.m.body, out);
	envelope_close(&e);
	return 0;
}

/* Held while the server runs (see queue_server_running); another server
 * on the same folder is warned about, not stopped. */
static void server_lock_take(void)
{
	char path[1200];
	snprintf(path, sizeof path, "%s/server.lock", qdir);
	server_lock = os_fopen_rw(path);
	for (int i = 0; server_lock && i < 50; i++) {
		int r = os_trylock(server_lock);
		if (r == 0) {
			return;
		}
		if (r < 0) {
			break;
		}
		os_sleep_ms(100); /* a command line deleting an entry */
	}
	log_warnx("queue: %s is held by another process (a second server?)", path);
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
	struct queue_env e;
	struct os_stat st;
	snprintf(path, sizeof path, "%s/%016llx.env", dir, (unsigned long long)qid);
	int r = 0;
	if (env_load(path, &e) == 0) {
		snprintf(path, sizeof path, "%s/%016llx.msg", dir, (unsigned long long)qid);
		const char *last = NULL;
		for (int i = 0; i < e.n && !last; i++) {
			last = e.last[i];
		}
		struct queue_info q = {qid, e.from, (const char *const *)e.rcpts, e.n, e.date,
		        e.next, e.attempts, os_stat(path, &st) == 0 ? st.size : 0,
		        last ? last : ""};
		r = fn(&q, arg);
		queue__env_free(&e);
	}
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
	qwork = os_cond_new();
	qstop = commit_stop = 0;
	nslots = 0;
	wake_at = 0;
	/* Half-written entries of a crash are removed before anything can be
	 * committed: a .msg whose .env is about to be renamed in must never
	 * look like one. */
	os_dir_walk(qdir, clean_entry, NULL);
	server_lock_take();
	committer = os_thread_start(committer_main, NULL);
	deliverer = os_thread_start(deliverer_main, NULL);
	return committer && deliverer && outbound_start() == 0 ? 0 : -1;
}

void queue_stop(void)
{
	if (!qlock) {
		return;
	}
	/* Delivery first: an outbound thread may still commit a bounce, so
	 * the committer stops last. */
	os_mutex_lock(qlock);
	qstop = 1;
	os_cond_broadcast(qwake);
	os_cond_broadcast(qwork);
	os_mutex_unlock(qlock);
	os_thread_join(deliverer);
	for (int i = 0; i < noutbound; i++) {
		if (outbound[i]) {
			os_thread_join(outbound[i]);
		}
	}
	xfree(outbound);
	noutbound = 0;
	os_mutex_lock(qlock);
	commit_stop = 1;
	os_cond_broadcast(qcond);
	os_mutex_unlock(qlock);
	os_thread_join(committer);
	os_cond_free(qwork);
	os_cond_free(qcond);
	os_cond_free(qdone);
	os_cond_free(qwake);
	os_mutex_free(qlock);
	qlock = NULL;
	if (server_lock) {
		fclose(server_lock);
		server_lock = NULL;
	}
}
