/*
 * pop3.c - the POP3 server (RFC 1939; CAPA and response codes, RFC 2449;
 * SASL, RFC 5034), a state machine fed with lines by session.c.
 *
 * Commands are rows of one table: the verb, the states in which it is
 * allowed, how many arguments it takes, and its action. An AUTH
 * continuation line is routed before the table, as in smtp.c.
 *
 * AUTHORIZATION ends with a login through mm_login (USER/PASS, or AUTH
 * PLAIN/LOGIN), which takes as long for an unknown name as for a wrong
 * password. A failure is answered after session_login_failed's delay, the
 * session paused meanwhile and no thread sleeping. A success locks the
 * maildrop (the account's INBOX) against other POP3 sessions of this
 * process and takes a snapshot of its message list: mail arriving later
 * shows in the next session, and message numbers never move (RFC 1939
 * section 8). Message sizes are mm_msg.size, the wire form's size before
 * dot-stuffing, which is what RETR sends.
 *
 * DELE only marks, in the session. QUIT in TRANSACTION runs UPDATE: the
 * marked messages are expunged by UID in one locked step (none at all if
 * the mbox was re-indexed meanwhile, as the UIDs would name other
 * messages) and fsynced before +OK; a dropped connection deletes nothing.
 * The mbox is compacted
 * right then when expunged messages take at least half of it, so that
 * the rewrite never copies more than it frees (the usual POP3 client
 * deletes everything it fetched, which makes compaction nearly free).
 *
 * RETR and TOP stream the message from the mbox through an mm_reader, at
 * most FILL_MAX bytes at a time (the first with the +OK line, the rest
 * from the writable callback), dot-stuffed on the way; nothing holds the
 * whole message. Input is paused meanwhile, so
 * a pipelined command is answered only after the message's final ".".
 * session.c calls writable only when the output has drained and watches
 * for writability only while output is pending: when the socket took
 * everything at once, a kick (a task posted to our own worker) brings the
 * stream back on the next round of the loop, after other sessions' events.
 *
 * UIDL is "<uidvalidity>-<uid>" of the folder's index: stable across
 * sessions, restarts and compactions, the UIDs IMAP shows. A rebuilt index
 * (crash recovery) has a new UIDVALIDITY, and clients fetch again rather
 * than miss a message.
 */
#include <string.h>

#include "rumble.h"

#define POP3_CMD_MAX 255       /* RFC 2449 section 4, without the CRLF */
#define POP3_AUTH_MAX 2048     /* AUTH lines: SASL responses are longer */
#define POP3_ERRORS_MAX 10     /* -ERR replies before login, then closed */
#define POP3_PRELOGIN_MAX 30   /* commands before login */
#define POP3_TIMEOUT_MS 600000 /* RFC 1939 section 3: at least 10 minutes */
#define FILL_MAX (64 * 1024)   /* message bytes added per writable call */
#define FILL_CHUNK (16 * 1024)
#define LOGIN_MAX (MM_USER_MAX + MM_DOMAIN_MAX + 2)

enum pop3_state { P_AUTH, P_TRANS };
#define ST(x) (1 << (x))
#define ANY (ST(P_AUTH) | ST(P_TRANS))

struct pop3_msg {
	uint32_t uid, size;
	uint8_t deleted;
};

struct pop3 {
	enum pop3_state state;
	struct sasl sasl; /* an AUTH exchange; sasl.step != SASL_IDLE while under way */
	unsigned user_given : 1, skip_line : 1, locked : 1, kicking : 1, resume : 1;
	int errors, commands;
	/* USER's or AUTH LOGIN's name; once logged in, the maildrop's
	 * user@domain, which is also its key in the list of locked ones */
	char user[LOGIN_MAX];
	struct pop3 *lock_next;
	/* TRANSACTION: the maildrop and its snapshot */
	struct mm_folder *f;
	struct pop3_msg *msgs;
	uint32_t nmsg, ndel, uidvalidity;
	uint64_t bytes, del_bytes;
	/* a RETR or TOP being sent */
	struct mm_reader *rd;
	unsigned bol : 1, top : 1, in_body : 1, top_done : 1;
	uint32_t top_lines, body_lines;
	uint32_t line_len; /* TOP: bytes of the current line so far */
	char line_first;
	/* a Lua hook waiting for the client (RL_WAIT): what it is about */
	const struct cmd *hook_cmd; /* NULL: the greeting */
	char *hook_arg;
};

struct cmd {
	const char *verb;
	int states;   /* where it is allowed */
	int min, max; /* arguments; max -1: the rest of the line is one */
	void (*run)(struct session *s, struct pop3 *st, char *arg);
};

static const char *state_names[] = {"authorization", "transaction"};

static void enter_state(struct session *s, struct pop3 *st, enum pop3_state next)
{
	if (st->state != next) {
		log_debug("%08x pop3 %s -> %s", s->id, state_names[st->state], state_names[next]);
	}
	st->state = next;
}

/* ---- replies ---- */

static void ok(struct session *s, const char *fmt, ...) RL_PRINTF(2, 3);
static void ok(struct session *s, const char *fmt, ...)
{
	va_list ap;
	session_write(s, "+OK ", 4);
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	session_write(s, "\r\n", 2);
}

/* -ERR; before login every one counts, and the last allowed closes. */
static void err(struct session *s, struct pop3 *st, const char *fmt, ...) RL_PRINTF(3, 4);
static void err(struct session *s, struct pop3 *st, const char *fmt, ...)
{
	va_list ap;
	session_write(s, "-ERR ", 5);
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	session_write(s, "\r\n", 2);
	if (st->state == P_AUTH && ++st->errors >= POP3_ERRORS_MAX) {
		session_printf(s, "-ERR too many errors, closing connection\r\n");
		session_close(s, "too many errors");
	}
}

/* A name from the client, fit for a log line. */
static const char *printable(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (; *in && o + 1 < len; in++) {
		unsigned char c = (unsigned char)*in;
		out[o++] = c > ' ' && c < 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
	return out;
}

/* ---- the maildrop lock: one POP3 session per maildrop (RFC 1939 8) ---- */

static os_mutex *drops_mu; /* guards drops; made on first use */
static struct pop3 *drops; /* sessions holding a maildrop */

static os_mutex *drops_mutex(void)
{
	return rl_mutex_once(&drops_mu);
}

/* Locks the maildrop named st->user; 0, or -1 when another holds it. */
static int drop_lock(struct pop3 *st)
{
	os_mutex *mu = drops_mutex();
	os_mutex_lock(mu);
	struct pop3 *p = drops;
	while (p && strcmp(p->user, st->user) != 0) {
		p = p->lock_next;
	}
	if (!p) {
		st->lock_next = drops;
		drops = st;
		st->locked = 1;
	}
	os_mutex_unlock(mu);
	return p ? -1 : 0;
}

static void drop_unlock(struct pop3 *st)
{
	if (!st->locked) {
		return;
	}
	os_mutex *mu = drops_mutex();
	os_mutex_lock(mu);
	struct pop3 **pp = &drops;
	while (*pp && *pp != st) {
		pp = &(*pp)->lock_next;
	}
	if (*pp) {
		*pp = st->lock_next;
	}
	os_mutex_unlock(mu);
	st->locked = 0;
}

/* ---- login ---- */

/* STLS (RFC 2595) is offered in the clear when a certificate is loaded. */
static int stls_offered(const struct session *s)
{
	return !session_secure(s) && server_has_tls();
}

/* May a password be sent now? Over TLS always; in the clear as
 * AllowPlaintextAuth says (RFC 2595: not offered where not allowed). */
static int auth_offered(const struct session *s)
{
	return session_auth_allowed(s);
}

/* Takes the snapshot of the maildrop (RFC 1939 section 8). Another
 * thread may expunge meanwhile: the count is an upper bound. */
static void snapshot(struct pop3 *st)
{
	uint32_t n = mm_folder_count(st->f);
	st->uidvalidity = mm_folder_uidvalidity(st->f);
	st->msgs = xcalloc(n ? n : 1, sizeof *st->msgs);
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *m = mm_folder_msg(st->f, i);
		if (!m) {
			break;
		}
		st->msgs[i].uid = m->uid;
		st->msgs[i].size = m->size;
		st->bytes += m->size;
		st->nmsg++;
	}
}

static void open_maildrop(struct session *s, struct pop3 *st, const struct mm_account *a)
{
	snprintf(st->user, sizeof st->user, "%s@%s", a->user, a->domain);
	if (drop_lock(st) != 0) {
		log_info("%08x pop3 maildrop in use user=%s", s->id, st->user);
		err(s, st, "[IN-USE] Maildrop is locked by another POP3 session");
		return;
	}
	if (mm_folder_open(a->domain, a->user, "INBOX", 1, &st->f) != 0) {
		/* out of descriptors or memory, or an I/O error: never "no such user" */
		log_warnx("%08x pop3 cannot open the maildrop of %s", s->id, st->user);
		drop_unlock(st);
		err(s, st, "[SYS/TEMP] Cannot open the maildrop, try again later");
		return;
	}
	snapshot(st);
	enter_state(s, st, P_TRANS);
	log_info("%08x pop3 result=login client=%s user=%s messages=%u", s->id, s->peer, st->user,
	        st->nmsg);
	rl_mail_user(s, st->user, 1);
	ok(s, "Logged in, %u messages (%llu octets)", st->nmsg, (unsigned long long)st->bytes);
}

/* Answers a failed login, after the delay. */
static void login_failed(struct session *s, void *arg)
{
	struct pop3 *st = s->ps;
	if (st) {
		err(s, st, "[AUTH] Invalid login");
		session_resume(s);
	}
}

/* The password was checked (work_login): open the maildrop, or fail
 * after a delay. */
static void login_checked(struct session *s, int rc, const struct mm_account *a, const char *name)
{
	char shown[80];
	if (rc == 0) {
		session_login_ok(s->peer, name);
		open_maildrop(s, s->ps, a);
		session_resume(s);
		return;
	}
	log_info("%08x pop3 result=refused client=%s cmd=login user=%s reason=\"authentication "
	         "failed\"",
	        s->id, s->peer,
	        printable(name, shown, sizeof shown));
	session_after(s, session_login_failed(s->peer, name), login_failed, NULL);
}

static void login(struct session *s, struct pop3 *st, const char *name, const char *pw)
{
	st->user_given = 0;
	if (session_login_blocked(s->peer, name)) {
		err(s, st, "[SYS/TEMP] Too many failed logins, try again later");
		return;
	}
	session_pause(s); /* pipelined commands wait for the answer */
	work_login(s, name, pw, login_checked);
}

/* ---- USER / PASS ---- */

static int refuse_plaintext(struct session *s, struct pop3 *st)
{
	if (auth_offered(s)) {
		return 0;
	}
	err(s, st, "[AUTH] Plaintext authentication disallowed on non-secure connections");
	return 1;
}

static void cmd_user(struct session *s, struct pop3 *st, char *arg)
{
	if (refuse_plaintext(s, st)) {
		return;
	}
	if (rl_strlcpy(st->user, arg, sizeof st->user) >= sizeof st->user) {
		st->user[0] = '\0'; /* cannot be an account: PASS fails as usual */
	}
	st->user_given = 1;
	ok(s, "Send your password");
}

/* RFC 1939 7: the password is the rest of the line, spaces and all. */
static void cmd_pass(struct session *s, struct pop3 *st, char *arg)
{
	if (!st->user_given) {
		err(s, st, "Send USER first");
		return;
	}
	login(s, st, st->user, arg);
}

/* ---- AUTH (RFC 5034) ---- */

/* What the SASL exchange said: a challenge, a login to check, or the end. */
static void auth_result(
        struct session *s, struct pop3 *st, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CHALLENGE:
		session_printf(s, "+ %s\r\n", challenge);
		return;
	case SASL_DONE:
		login(s, st, st->sasl.login, st->sasl.password);
		break;
	case SASL_MALFORMED:
		err(s, st, "Malformed authentication response");
		break;
	case SASL_CANCELLED:
		err(s, st, "Authentication cancelled");
		break;
	case SASL_NOMECH:
		err(s, st, "Unsupported authentication mechanism");
		break;
	}
	crypto_sasl_reset(&st->sasl);
}

static void cmd_auth(struct session *s, struct pop3 *st, char *arg)
{
	char *initial = arg + strcspn(arg, " ");
	if (*initial) {
		*initial++ = '\0';
	}
	if (!*arg) {
		/* bare AUTH lists the mechanisms, as older clients expect */
		session_printf(s, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	if (refuse_plaintext(s, st)) {
		return;
	}
	st->user_given = 0;
	const char *challenge = "";
	enum sasl_result r = crypto_sasl_start(&st->sasl, arg, initial, &challenge);
	auth_result(s, st, r, challenge); /* r first: it sets challenge */
}

/* ---- TRANSACTION: listing ---- */

/* Parses a message number or a count: digits only, at most 9 of them. */
static int parse_num(const char *arg, uint32_t *out)
{
	size_t n = strspn(arg, "0123456789");
	if (n == 0 || n > 9 || arg[n]) {
		return -1;
	}
	*out = (uint32_t)strtoul(arg, NULL, 10);
	return 0;
}

/* Message number arg as an index into msgs; answers -ERR and returns -1
 * when it is not a message of the snapshot or is deleted. */
static int msg_arg(struct session *s, struct pop3 *st, const char *arg, uint32_t *i)
{
	uint32_t n;
	if (parse_num(arg, &n) != 0) {
		err(s, st, "Invalid message number");
		return -1;
	}
	if (n == 0 || n > st->nmsg) {
		err(s, st, "No such message");
		return -1;
	}
	if (st->msgs[n - 1].deleted) {
		err(s, st, "Message %u already deleted", n);
		return -1;
	}
	*i = n - 1;
	return 0;
}

static void cmd_stat(struct session *s, struct pop3 *st, char *arg)
{
	ok(s, "%u %llu", st->nmsg - st->ndel, (unsigned long long)(st->bytes - st->del_bytes));
}

static void cmd_list(struct session *s, struct pop3 *st, char *arg)
{
	uint32_t i;
	if (*arg) {
		if (msg_arg(s, st, arg, &i) == 0) {
			ok(s, "%u %u", i + 1, st->msgs[i].size);
		}
		return;
	}
	ok(s, "%u messages (%llu octets)", st->nmsg - st->ndel,
	        (unsigned long long)(st->bytes - st->del_bytes));
	for (i = 0; i < st->nmsg; i++) {
		if (!st->msgs[i].deleted) {
			session_printf(s, "%u %u\r\n", i + 1, st->msgs[i].size);
		}
	}
	session_write(s, ".\r\n", 3);
}

static void cmd_uidl(struct session *s, struct pop3 *st, char *arg)
{
	uint32_t i, v = st->uidvalidity;
	if (*arg) {
		if (msg_arg(s, st, arg, &i) == 0) {
			ok(s, "%u %u-%u", i + 1, v, st->msgs[i].uid);
		}
		return;
	}
	ok(s, "Unique-ID listing follows");
	for (i = 0; i < st->nmsg; i++) {
		if (!st->msgs[i].deleted) {
			session_printf(s, "%u %u-%u\r\n", i + 1, v, st->msgs[i].uid);
		}
	}
	session_write(s, ".\r\n", 3);
}

/* ---- TRANSACTION: RETR and TOP, streamed ---- */

static void kicked(struct session *s, void *arg)
{
	struct pop3 *st = s->ps;
	if (!st) {
		return; /* the session ended meanwhile */
	}
	st->kicking = 0;
	if (st->resume) {
		st->resume = 0;
		session_resume(s);
	}
}

/* Brings s back on the next round of the worker's loop. */
static void kick(struct session *s, struct pop3 *st)
{
	if (!st->kicking) {
		st->kicking = 1;
		session_hold(s);
		session_post(s, kicked, NULL);
	}
}

/* Adds p[0..n) to the output dot-stuffed (RFC 1939 section 3): a line
 * that starts with '.' gets one more. */
static void put_stuffed(struct session *s, struct pop3 *st, const char *p, size_t n)
{
	while (n) {
		if (st->bol && p[0] == '.') {
			session_write(s, ".", 1);
		}
		/* up to the next line that starts with '.', in one piece */
		size_t run = 0;
		const char *nl;
		while ((nl = memchr(p + run, '\n', n - run)) != NULL) {
			run = (size_t)(nl - p) + 1;
			if (run < n && p[run] == '.') {
				break;
			}
		}
		if (!nl) {
			run = n;
		}
		session_write(s, p, run);
		st->bol = p[run - 1] == '\n';
		p += run;
		n -= run;
	}
}

/* How much of p[0..n) TOP sends: the header, the blank line after it,
 * then top_lines lines of the body; sets top_done when that is all. */
static size_t top_cut(struct pop3 *st, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && !st->top_done) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - p) + 1 : n;
		if (st->line_len == 0) {
			st->line_first = p[i];
		}
		st->line_len += (uint32_t)(end - i);
		i = end;
		if (!nl) {
			break;
		}
		if (st->in_body) {
			st->top_done = ++st->body_lines >= st->top_lines;
		} else if (st->line_len == 1 || (st->line_len == 2 && st->line_first == '\r')) {
			st->in_body = 1; /* the blank line that ends the header */
			st->top_done = st->top_lines == 0;
		}
		st->line_len = 0;
	}
	return i;
}

static void stream_stop(struct pop3 *st)
{
	mm_reader_close(st->rd);
	st->rd = NULL;
}

static void stream_end(struct session *s, struct pop3 *st)
{
	if (!st->bol) {
		session_write(s, "\r\n", 2); /* cannot happen: the store ends lines */
	}
	session_write(s, ".\r\n", 3);
	stream_stop(st);
}

/* Adds up to FILL_MAX bytes of the message being sent to the output; 1
 * when the message is all out (or failed and the session is closing). */
static int stream_fill(struct session *s, struct pop3 *st)
{
	char chunk[FILL_CHUNK];
	for (size_t filled = 0; filled < FILL_MAX;) {
		long n = mm_reader_read(st->rd, chunk, sizeof chunk);
		if (n < 0) {
			/* +OK and part of the message are out: only closing tells */
			log_warnx("%08x pop3 cannot read a message of %s", s->id, st->user);
			stream_stop(st);
			session_close(s, "message read error");
			return 1;
		}
		size_t use = st->top ? top_cut(st, chunk, (size_t)n) : (size_t)n;
		put_stuffed(s, st, chunk, use);
		filled += use;
		if (n == 0 || st->top_done) {
			stream_end(s, st);
			return 1;
		}
	}
	return 0;
}

/* see struct proto: called when the output has drained. */
static void pop3_writable(struct session *s)
{
	struct pop3 *st = s->ps;
	if (!st || !st->rd) {
		return;
	}
	/* resumed from the kick, not here: session.c dispatches pipelined
	 * commands before it looks at the end of input only on that path */
	st->resume = stream_fill(s, st);
	kick(s, st); /* also in case the socket takes all of it at once */
}

/* Starts sending message i; top: only the header and top_lines lines. */
static void stream_start(struct session *s, struct pop3 *st, uint32_t i, int top, uint32_t lines)
{
	/* by UID: the folder's index is shared with other sessions, whose
	 * changes move its numbers; a message IMAP expunged meanwhile is
	 * still there until a compaction */
	if (!(st->rd = mm_reader_open_uid(st->f, st->msgs[i].uid))) {
		err(s, st, "[SYS/TEMP] Cannot read message %u", i + 1);
		return;
	}
	if (top) {
		ok(s, "Top of message %u follows", i + 1);
	} else {
		ok(s, "%u octets", st->msgs[i].size);
		os_atomic_add_long(&s->svc->sent, 1);
	}
	st->bol = 1;
	st->top = top != 0;
	st->top_lines = lines;
	st->in_body = st->top_done = 0;
	st->body_lines = st->line_len = 0;
	/* the first part goes out with the +OK line: one write for a small
	 * message, where a write of its own would wait for the client's
	 * delayed ACK (Nagle) */
	if (!stream_fill(s, st)) {
		session_pause(s); /* the next command waits for the final "." */
	}
}

static void cmd_retr(struct session *s, struct pop3 *st, char *arg)
{
	uint32_t i;
	if (msg_arg(s, st, arg, &i) == 0) {
		stream_start(s, st, i, 0, 0);
	}
}

static void cmd_top(struct session *s, struct pop3 *st, char *arg)
{
	char *lines = arg + strcspn(arg, " ");
	uint32_t i, n;
	*lines++ = '\0';
	if (msg_arg(s, st, arg, &i) != 0) {
		return;
	}
	if (parse_num(lines, &n) != 0) {
		err(s, st, "Invalid number of lines");
		return;
	}
	stream_start(s, st, i, 1, n);
}

/* ---- TRANSACTION: marks ---- */

static void cmd_dele(struct session *s, struct pop3 *st, char *arg)
{
	uint32_t i;
	if (msg_arg(s, st, arg, &i) != 0) {
		return;
	}
	st->msgs[i].deleted = 1;
	st->ndel++;
	st->del_bytes += st->msgs[i].size;
	ok(s, "Message %u deleted", i + 1);
}

static void cmd_rset(struct session *s, struct pop3 *st, char *arg)
{
	for (uint32_t i = 0; i < st->nmsg; i++) {
		st->msgs[i].deleted = 0;
	}
	st->ndel = 0;
	st->del_bytes = 0;
	ok(s, "Maildrop has %u messages (%llu octets)", st->nmsg, (unsigned long long)st->bytes);
}

static void cmd_noop(struct session *s, struct pop3 *st, char *arg)
{
	session_printf(s, "+OK\r\n");
}

/* ---- QUIT and UPDATE ---- */

/* Compacts when expunged messages take at least half of the mbox. */
static void maybe_compact(struct session *s, struct pop3 *st)
{
	uint64_t dead, total;
	mm_folder_usage(st->f, &dead, &total);
	if (dead && dead * 2 >= total) {
		if (mm_folder_compact(st->f) != 0) {
			log_warnx("%08x pop3 compaction of %s failed (tried again later)", s->id,
			        st->user);
		}
	}
}

/* RFC 1939 section 6: removes the messages marked deleted; -1 if some
 * may remain. */
static int update(struct session *s, struct pop3 *st)
{
	if (!st->ndel) {
		return 0;
	}
	uint32_t *uids = xmalloc(st->ndel * sizeof *uids), n = 0;
	for (uint32_t i = 0; i < st->nmsg; i++) {
		if (st->msgs[i].deleted) {
			uids[n++] = st->msgs[i].uid;
		}
	}
	/* by UID, and not at all if the mbox was re-indexed meanwhile (another
	 * program rewrote it): the UIDs would name other messages then */
	int rc = mm_folder_expunge_uids(st->f, st->uidvalidity, uids, n);
	xfree(uids);
	if (rc < 0 || mm_folder_sync(st->f) != 0) {
		log_warnx("%08x pop3 update of %s failed", s->id, st->user);
		return -1;
	}
	log_info("%08x pop3 update user=%s deleted=%u", s->id, st->user, n);
	maybe_compact(s, st);
	return 0;
}

static void cmd_quit(struct session *s, struct pop3 *st, char *arg)
{
	if (st->state != P_TRANS) {
		ok(s, "Rumble POP3 server signing off");
	} else if (update(s, st) == 0) {
		ok(s, "Rumble POP3 server signing off (%u messages left)", st->nmsg - st->ndel);
	} else {
		err(s, st, "[SYS/TEMP] Some deleted messages were not removed");
	}
	/* before the reply leaves: a client that logs in again as soon as
	 * it reads it must not find the maildrop still locked */
	drop_unlock(st);
	session_close(s, "quit");
}

/* ---- CAPA and the command table ---- */

static void cmd_capa(struct session *s, struct pop3 *st, char *arg)
{
	ok(s, "Capability list follows");
	session_printf(s, "TOP\r\nUIDL\r\n");
	if (stls_offered(s)) {
		session_printf(s, "STLS\r\n");
	}
	/* RFC 2449 section 5: what AUTHORIZATION offers is listed in both states */
	if (auth_offered(s)) {
		session_printf(s, "USER\r\nSASL PLAIN LOGIN\r\n");
	}
	session_printf(s, "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	                  "IMPLEMENTATION Rumble\r\n.\r\n");
}

/* RFC 2595 4: plaintext pipelined after STLS is dropped (session.c);
 * the session stays in AUTHORIZATION with no user given. */
static void cmd_stls(struct session *s, struct pop3 *st, char *arg)
{
	if (!stls_offered(s)) {
		err(s, st, "TLS already active or not available");
		return;
	}
	ok(s, "Begin TLS negotiation");
	st->user_given = 0;
	st->user[0] = '\0';
	crypto_sasl_reset(&st->sasl);
	session_starttls(s);
}

static const struct cmd commands[] = {
        {"CAPA", ANY, 0, 0, cmd_capa},
        {"QUIT", ANY, 0, 0, cmd_quit},
        {"USER", ST(P_AUTH), 1, 1, cmd_user},
        {"PASS", ST(P_AUTH), 1, -1, cmd_pass},
        {"AUTH", ST(P_AUTH), 0, 2, cmd_auth},
        {"STLS", ST(P_AUTH), 0, 0, cmd_stls},
        {"STAT", ST(P_TRANS), 0, 0, cmd_stat},
        {"LIST", ST(P_TRANS), 0, 1, cmd_list},
        {"RETR", ST(P_TRANS), 1, 1, cmd_retr},
        {"DELE", ST(P_TRANS), 1, 1, cmd_dele},
        {"NOOP", ST(P_TRANS), 0, 0, cmd_noop},
        {"RSET", ST(P_TRANS), 0, 0, cmd_rset},
        {"TOP", ST(P_TRANS), 2, 2, cmd_top},
        {"UIDL", ST(P_TRANS), 0, 1, cmd_uidl},
};

/* Arguments separated by single spaces (RFC 1939 section 3); -1 when
 * an argument is empty (two spaces, a trailing one). */
static int count_args(const char *arg)
{
	int n = 0;
	if (!*arg) {
		return 0;
	}
	for (const char *p = arg;; p++) {
		const char *sp = strchr(p, ' ');
		if (sp == p || (!sp && !*p)) {
			return -1;
		}
		n++;
		if (!sp) {
			return n;
		}
		p = sp;
	}
}

/* Goes on with the greeting (c NULL) or command c as the Lua hooks
 * decided; a hook that waits for the client decides later (pop3_hooked). */
static void after_hook(
	struct session *s, struct pop3 *st, const struct cmd *c, char *arg, enum rl_verdict v)
{
	if (v == RL_WAIT) {
		st->hook_cmd = c;
		st->hook_arg = xstrdup(arg ? arg : "");
	} else if (v == RL_DROP) {
		session_close(s, "dropped by script");
	} else if (v == RL_CONTINUE) {
		if (c) {
			c->run(s, st, arg);
		} else {
			session_printf(s, "+OK Rumble POP3 server ready\r\n");
		}
	}
}

static void pop3_hooked(struct session *s, enum rl_verdict v)
{
	struct pop3 *st = s->ps;
	char *arg = st->hook_arg;
	st->hook_arg = NULL;
	after_hook(s, st, st->hook_cmd, arg, v);
	free(arg);
}

static void command(struct session *s, struct pop3 *st, char *line)
{
	char *arg = line + strcspn(line, " ");
	if (*arg) {
		*arg++ = '\0';
	}
	const struct cmd *c = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0] && !c; i++) {
		if (rl_strcasecmp(line, commands[i].verb) == 0) {
			c = &commands[i];
		}
	}
	int nargs = c && c->max >= 0 ? count_args(arg) : (*arg ? 1 : 0);
	if (st->state == P_AUTH && ++st->commands > POP3_PRELOGIN_MAX) {
		session_printf(s, "-ERR Too many commands without login, closing connection\r\n");
		session_close(s, "too many commands");
	} else if (!c) {
		err(s, st, "Unknown command");
	} else if (!(c->states & ST(st->state))) {
		err(s, st, "%s is not allowed %s", c->verb,
		        st->state == P_AUTH ? "before login" : "after login");
	} else if (nargs < c->min || (c->max >= 0 && nargs > c->max)) {
		err(s, st, "Wrong arguments for %s", c->verb);
	} else {
		after_hook(s, st, c, arg, rl_hook(s, "command", c->verb, arg)); /* Rumble.setHook */
	}
}

/* ---- the protocol ---- */

static void pop3_open(struct session *s)
{
	struct pop3 *st = xcalloc(1, sizeof *st);
	s->ps = st;
	if (s->timeout_ms < POP3_TIMEOUT_MS) {
		s->timeout_ms = POP3_TIMEOUT_MS; /* IdleTimeout only lengthens it */
	}
	after_hook(s, st, NULL, NULL, rl_hook(s, "accept", NULL, NULL));
}

/* A command line may have POP3_CMD_MAX bytes; AUTH and its continuation
 * lines POP3_AUTH_MAX (longer lines come in pieces of that). */
static int too_long(struct pop3 *st, const char *line, size_t len)
{
	return len > POP3_CMD_MAX &&
	       (len > POP3_AUTH_MAX ||
	               (st->sasl.step == SASL_IDLE && rl_strncasecmp(line, "AUTH ", 5)));
}

static void pop3_line(struct session *s, char *line, size_t len)
{
	struct pop3 *st = s->ps;
	int complete = line[len - 1] == '\n';
	if (st->skip_line || !complete) {
		if (!st->skip_line) {
			crypto_sasl_reset(&st->sasl);
			err(s, st, "Line too long");
		}
		st->skip_line = !complete; /* the rest of it is dropped */
		return;
	}
	line[--len] = '\0';
	if (len && line[len - 1] == '\r') {
		line[--len] = '\0';
	}
	if (memchr(line, '\0', len)) {
		crypto_sasl_reset(&st->sasl);
		err(s, st, "NUL in command");
	} else if (too_long(st, line, len)) {
		crypto_sasl_reset(&st->sasl);
		err(s, st, "Line too long");
	} else if (st->sasl.step != SASL_IDLE) {
		const char *challenge = ""; /* a continuation: never logged, it has the password */
		enum sasl_result r = crypto_sasl_step(&st->sasl, line, &challenge);
		auth_result(s, st, r, challenge);
	} else {
		command(s, st, line);
	}
}

static void pop3_busy(struct session *s)
{
	session_printf(s, "-ERR [SYS/TEMP] Too many connections from %s\r\n", s->peer);
}

/* The session ends: a dropped connection deletes nothing. */
static void pop3_close(struct session *s)
{
	struct pop3 *st = s->ps;
	if (!st) {
		return;
	}
	if (st->state == P_TRANS) {
		rl_mail_user(s, st->user, 0);
	}
	rl_hook(s, "close", NULL, NULL);
	crypto_sasl_reset(&st->sasl); /* no password left in freed memory */
	free(st->hook_arg);
	stream_stop(st);
	drop_unlock(st);
	mm_folder_close(st->f);
	xfree(st->msgs);
	memset(st->user, 0, sizeof st->user);
	free(st);
	s->ps = NULL;
}

/* Deletions happen only on QUIT, so closing a session loses nothing. */
static int pop3_can_stop(struct session *s)
{
	(void)s;
	return 1;
}

/* What Lua hooks see: session.user once logged in */
static void pop3_info(struct session *s, struct proto_info *pi)
{
	struct pop3 *st = s->ps;
	pi->user = st->state == P_TRANS ? st->user : NULL;
}

const struct proto pop3_proto = {
        .name = "pop3",
        .line_max = POP3_AUTH_MAX + 2,
        .open = pop3_open,
        .line = pop3_line,
        .timeout = NULL, /* RFC 1939 section 3: the autologout timer closes without a word */
        .writable = pop3_writable,
        .close = pop3_close,
        .busy = pop3_busy,
        .can_stop = pop3_can_stop,
        .info = pop3_info,
        .hooked = pop3_hooked,
};
