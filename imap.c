/*
 * imap.c - the IMAP4rev1 server (RFC 3501), and IMAP4rev2 (RFC 9051) for
 * a session that does ENABLE IMAP4rev2, with IDLE (2177), NAMESPACE
 * (2342), UIDPLUS (4315), LITERAL+ (7888), ENABLE (5161), ID (2971),
 * MOVE (6851), SASL-IR (4959), BINARY (3516), ESEARCH (4731), STATUS=SIZE
 * (8438), SEARCHRES (5182, imap_esearch.c), SORT and THREAD (5256,
 * imap_sort.c), QUOTA (9208, imap_quota.c), LIST-EXTENDED (5258),
 * LIST-STATUS (5819) and SPECIAL-USE (6154, imap_list.c, imap_special.c):
 * a state machine fed with lines by session.c, over the mbox store of
 * mbox.c.
 *
 * A command arrives as lines and literals. The tokenizer (imap_cmd_line in
 * imap_parse.c, pure, unit-tested) turns each line into tokens in struct imap_cmd and
 * stops at a literal's "{n}": the protocol checks n against its limits
 * (then sends "+ " for a synchronising literal), counts the next n bytes
 * into the command (or, for APPEND's message, into a spool) and feeds the
 * rest of the line to the tokenizer again. Every size is bounded: line
 * (IMAP_LINE_MAX), tokens, nesting, command bytes, literals.
 *
 * Commands are rows of one table (verb, states, action); the action reads
 * its arguments through a cursor over the tokens. The selected mailbox is
 * an mm_view (mbox_read.c) over the folder's one in-memory index, which
 * every session with the folder open shares: the view is what the client
 * was told, and view_sync reports what changed since (deliveries, other
 * sessions, POP3): EXISTS, EXPUNGE and FETCH FLAGS, with EXPUNGE only
 * where RFC 3501 7.4.1 allows (never during FETCH, STORE or SEARCH).
 *
 * FETCH (imap_fetch.c) is a job that writes at most FILL_MAX bytes per
 * round, every section streamed from the mbox (imap_msg.c); input is
 * paused while it runs and resumed (as in pop3.c) when the tagged reply
 * is out. SEARCH reads messages the same way; COPY streams each message
 * into a spool and appends it.
 * IDLE is pushed, not polled: the view is watched while the session
 * idles, and whichever thread changes the folder (the committer's
 * delivery, another session, POP3) rings the session's bell.
 *
 * Hierarchy separator "." (mm_valid_folder refuses '/'); names are kept as
 * the client sends them (modified UTF-7 included), INBOX in any case is
 * INBOX. An IMAP4rev2 session's names are UTF-8, converted to and from
 * the stored modified UTF-7 at the edge (arg_box, imap_put_name); it is
 * told no \Recent and no RECENT, and SEARCH answers it with ESEARCH.
 */
#include <string.h>
#include <time.h>

#include "rumble.h"
#include "imap.h"

#define IMAP_LINE_MAX 65536       /* a command line, CRLF excluded */
#define IMAP_SPOOL_MIN 1024       /* APPEND messages above this go to a spool */
#define IMAP_PREAUTH_LITERAL 2048 /* a literal before login */
#define IMAP_ERRORS_MAX 20    /* BAD/NO before login, then closed */
#define IMAP_PRELOGIN_MAX 50  /* commands before login */
#define IMAP_PREAUTH_MS 60000 /* idle time before login */
#define IMAP_AUTH_MS 1800000  /* RFC 3501 5.4: at least 30 minutes */
#define FILL_MAX (64 * 1024)
#define COPY_CHUNK (16 * 1024)

/* ---- the session ---- */

#define ST(x) (1 << (x))
#define AUTHED (ST(I_AUTH) | ST(I_SELECTED))
#define ANY (ST(I_NOAUTH) | AUTHED)

/* A command's arguments: a cursor over the tokens after the verb. */
struct cmd {
	const char *verb;
	int states;
	void (*run)(struct session *s, struct imap *st, struct args *a);
};

static const char *state_names[] = {"not-authenticated", "authenticated", "selected", "logout"};

static void enter_state(struct session *s, struct imap *st, enum imap_state next)
{
	if (st->state != next) {
		log_debug("%08x imap %s -> %s", s->id, state_names[st->state], state_names[next]);
	}
	st->state = next;
	s->timeout_ms = next == I_NOAUTH ? IMAP_PREAUTH_MS : IMAP_AUTH_MS;
}

/* ---- replies ---- */

static void reply(struct session *s, struct imap *st, const char *what, const char *fmt, va_list ap)
{
	session_printf(s, "%s %s ", st->tag[0] ? st->tag : "*", what);
	buf_vprintf(&s->out, fmt, ap);
	session_write(s, "\r\n", 2);
}

/* see imap.h */
void imap__ok(struct session *s, struct imap *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(s, st, "OK", fmt, ap);
	va_end(ap);
}

/* NO and BAD; before login each counts, and too many close. */
/* see imap.h */
void imap__fail(struct session *s, struct imap *st, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(s, st, what, fmt, ap);
	va_end(ap);
	if (st->state == I_NOAUTH && ++st->errors >= IMAP_ERRORS_MAX) {
		session_printf(s, "* BYE Too many errors\r\n");
		session_close(s, "too many errors");
	}
}

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

/* ---- arguments ---- */

int imap__arg_end(const struct args *a)
{
	return a->i >= a->c->ntok;
}

int imap__arg_type(const struct args *a)
{
	return imap__arg_end(a) ? -1 : a->c->tok[a->i].type;
}

/* An astring (atom, quoted or literal); NULL when there is none. */
const char *imap__arg_astring(struct args *a)
{
	int t = imap__arg_type(a);
	return t == IMAP_ATOM || t == IMAP_STRING ? imap_tok_str(a->c, a->i++) : NULL;
}

const char *imap__arg_atom(struct args *a)
{
	return imap__arg_type(a) == IMAP_ATOM ? imap_tok_str(a->c, a->i++) : NULL;
}

int imap__arg_paren(struct args *a, int type)
{
	if (imap__arg_type(a) == type) {
		a->i++;
		return 1;
	}
	return 0;
}

/* ---- capabilities ---- */

static int starttls_offered(const struct session *s)
{
	return !session_secure(s) && server_has_tls();
}

static void put_caps(struct session *s, struct imap *st)
{
	session_printf(s,
	        "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE CONDSTORE "
	        "QRESYNC SAVEDATE UNSELECT CHILDREN METADATA BINARY SPECIAL-USE CREATE-SPECIAL-USE "
	        "LIST-EXTENDED LIST-STATUS STATUS=SIZE ESEARCH SEARCHRES SORT SORT=DISPLAY "
	        "THREAD=ORDEREDSUBJECT THREAD=REFERENCES QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE "
	        "APPENDLIMIT=%llu",
	        (unsigned long long)conf.message_size_limit);
	if (st->state == I_NOAUTH) {
		if (starttls_offered(s)) {
			session_printf(s, " STARTTLS");
		}
		session_printf(
		        s, session_auth_allowed(s) ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED");
	}
}

static void cmd_capability(struct session *s, struct imap *st, struct args *a)
{
	session_printf(s, "* CAPABILITY ");
	put_caps(s, st);
	session_printf(s, "\r\n");
	ok(s, st, "CAPABILITY completed");
}

/* ---- the view of the selected mailbox ---- */

static void close_box(struct imap *st)
{
	mm_view_close(st->v);
	st->v = NULL;
	mm_folder_close(st->f);
	st->f = NULL;
	st->box[0] = '\0';
	imap_set_free(&st->saved); /* "$" is empty in the next mailbox (RFC 5182 2.1) */
}

/* The selected mailbox went away (deleted or renamed elsewhere). */
static void box_gone(struct session *s, struct imap *st)
{
	session_printf(s, "* BYE The selected mailbox no longer exists\r\n");
	session_close(s, "mailbox gone");
}

static void put_all_flags(struct session *s, struct mm_folder *f, int perm)
{
	session_printf(s, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (int i = 0; i < 32; i++) {
		const char *n = mm_folder_keyword_name(f, i);
		if (n) {
			session_printf(s, " %s", n);
		}
	}
	if (perm) {
		session_printf(s, " \\*");
	}
}

/* FLAGS and PERMANENTFLAGS (RFC 3501 7.2.6, 7.1): at SELECT, and again
 * whenever the folder's keywords are not the ones the client was told
 * of, before any FETCH shows a new one (a STORE here or in another
 * session, an APPEND, a COPY into the folder). */
static void put_flag_lists(struct session *s, struct imap *st)
{
	st->kw_told = mm_folder_keyword_mask(st->f); /* before: a later one is told again */
	session_printf(s, "* FLAGS (");
	put_all_flags(s, st->f, 0);
	session_printf(s, ")\r\n* OK [PERMANENTFLAGS (");
	if (!st->readonly) {
		put_all_flags(s, st->f, 1);
	}
	session_printf(s, ")] Flags permitted\r\n");
}

void imap__tell_new_keywords(struct session *s, struct imap *st)
{
	if (mm_folder_keyword_mask(st->f) != st->kw_told) {
		put_flag_lists(s, st);
	}
}

/* "* seq FETCH (FLAGS ...)" for a change the client did not ask for; with
 * CONDSTORE on, its UID and MODSEQ too (RFC 7162 3.1.4, 3.2.4); the UID
 * always for IMAP4rev2 (RFC 9051 7.5.2). */
static void put_flags_fetch(struct session *s, struct imap *st, uint32_t seq, uint32_t uid,
        uint32_t flags, uint32_t kw, uint64_t modseq)
{
	session_printf(s, "* %u FETCH (", seq);
	if (st->condstore || st->rev2) {
		session_printf(s, "UID %u ", uid);
	}
	session_printf(s, "FLAGS ");
	imap_put_flags(&s->out, st->f, flags | (mm_view_recent(st->v, uid) ? MM_RECENT : 0), kw);
	if (st->condstore) {
		session_printf(s, " MODSEQ (%llu)", (unsigned long long)modseq);
	}
	session_printf(s, ")\r\n");
}

/* Reports what changed in the folder since the client was told: flag
 * changes, EXPUNGE (only when expunge is 1), EXISTS. poll: an IDLE tick,
 * which may skip looking at the files (other sessions' changes are in
 * the shared index at once). -1 when the folder is gone (the session is
 * closing then). */
int imap__view_sync(struct session *s, struct imap *st, int expunge, int poll)
{
	struct mm_changes c;
	int rc = mm_view_sync(st->v, expunge, poll, &c);
	if (rc == MM_NOFOLDER) {
		box_gone(s, st);
		return -1;
	}
	if (rc == MM_REINDEXED) {
		/* re-indexed behind our back: the UIDs mean nothing any more */
		session_printf(s, "* BYE The mailbox was re-indexed, please reconnect\r\n");
		session_close(s, "uidvalidity changed");
		return -1;
	}
	if (rc != 0) {
		return 0; /* cannot look now (descriptors, I/O): told next time */
	}
	imap__tell_new_keywords(s, st);
	for (uint32_t i = 0; i < c.nflags; i++) {
		const struct mm_change *x = &c.flags[i];
		put_flags_fetch(s, st, x->seq, x->uid, x->flags, x->keywords, x->modseq);
	}
	if (st->qresync && c.nexpunged) {
		session_printf(s, "* VANISHED ");
		imap_put_uids(&s->out, c.vanished, c.nexpunged);
		session_printf(s, "\r\n");
	}
	for (uint32_t i = 0; !st->qresync && i < c.nexpunged; i++) {
		session_printf(s, "* %u EXPUNGE\r\n", c.expunged[i]);
	}
	if (c.exists) {
		session_printf(s, "* %u EXISTS\r\n", c.exists);
	}
	if (c.exists && !st->rev2) {
		session_printf(s, "* %u RECENT\r\n", c.recent);
	}
	mm_changes_free(&c);
	return 0;
}

/* ---- login ---- */

static void login_failed(struct session *s, void *arg)
{
	struct imap *st = s->ps;
	if (st) {
		no(s, st, "[AUTHENTICATIONFAILED] Authentication failed");
		session_resume(s);
	}
}

/* The password was checked (work_login): answer, or fail after a delay. */
static void login_checked(struct session *s, int rc, const struct mm_account *acct, const char *name)
{
	struct imap *st = s->ps;
	char shown[80];
	if (rc == 0) {
		session_login_ok(s->peer, name);
		rl_strlcpy(st->user, acct->user, sizeof st->user);
		rl_strlcpy(st->domain, acct->domain, sizeof st->domain);
		snprintf(st->login, sizeof st->login, "%s@%s", acct->user, acct->domain);
		imap_special_make(st->domain, st->user);
		enter_state(s, st, I_AUTH);
		log_info("%08x imap result=login client=%s user=%s", s->id, s->peer, st->login);
		rl_mail_user(s, st->login, 1);
		session_printf(s, "%s OK [CAPABILITY ", st->tag);
		put_caps(s, st);
		session_printf(s, "] Logged in\r\n");
		session_resume(s);
		return;
	}
	log_info("%08x imap result=refused client=%s cmd=login user=%s reason=\"authentication "
	         "failed\"",
	        s->id, s->peer,
	        printable(name, shown, sizeof shown));
	session_after(s, session_login_failed(s->peer, name), login_failed, NULL);
}

static void login(struct session *s, struct imap *st, const char *name, const char *pw)
{
	if (session_login_blocked(s->peer, name)) {
		no(s, st, "[UNAVAILABLE] Too many failed logins, try again later");
		return;
	}
	session_pause(s); /* pipelined commands wait for the answer */
	work_login(s, name, pw, login_checked);
}

static int refuse_plaintext(struct session *s, struct imap *st)
{
	if (session_auth_allowed(s)) {
		return 0;
	}
	no(s, st, "[PRIVACYREQUIRED] Plaintext authentication is disallowed without TLS");
	return 1;
}

static void cmd_login(struct session *s, struct imap *st, struct args *a)
{
	const char *user = imap__arg_astring(a), *pw = imap__arg_astring(a);
	if (!user || !pw || !imap__arg_end(a)) {
		bad(s, st, "LOGIN needs a user name and a password");
	} else if (!refuse_plaintext(s, st)) {
		login(s, st, user, pw);
	}
}

/* Ends an AUTHENTICATE exchange: the password is wiped, its room freed. */
static void sasl_end(struct imap *st)
{
	if (st->sasl) {
		crypto_sasl_reset(st->sasl);
		xfree(st->sasl);
	}
}

static void auth_result(
        struct session *s, struct imap *st, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CHALLENGE:
		session_printf(s, "+ %s\r\n", challenge);
		return;
	case SASL_DONE:
		login(s, st, st->sasl->login, st->sasl->password); /* work_login copies them */
		break;
	case SASL_MALFORMED:
		bad(s, st, "Malformed authentication response");
		break;
	case SASL_CANCELLED:
		bad(s, st, "Authentication cancelled");
		break;
	case SASL_NOMECH:
		no(s, st, "Unsupported authentication mechanism");
		break;
	}
	sasl_end(st);
}

static void cmd_authenticate(struct session *s, struct imap *st, struct args *a)
{
	const char *mech = imap__arg_atom(a), *initial = imap__arg_astring(a);
	if (!mech || !imap__arg_end(a)) {
		bad(s, st, "AUTHENTICATE needs a mechanism");
		return;
	}
	if (refuse_plaintext(s, st)) {
		return;
	}
	const char *challenge = "";
	if (!st->sasl) {
		st->sasl = xcalloc(1, sizeof *st->sasl);
	}
	enum sasl_result r = crypto_sasl_start(st->sasl, mech, initial, &challenge);
	auth_result(s, st, r, challenge);
}

/* RFC 3501 6.2.1: what was pipelined after STARTTLS is dropped
 * (session.c), and the client asks for CAPABILITY again. */
static void cmd_starttls(struct session *s, struct imap *st, struct args *a)
{
	if (!starttls_offered(s)) {
		bad(s, st, "TLS already active or not available");
		return;
	}
	ok(s, st, "Begin TLS negotiation now");
	sasl_end(st);
	session_starttls(s);
}

static void cmd_noop(struct session *s, struct imap *st, struct args *a)
{
	if (st->state == I_SELECTED && imap__view_sync(s, st, 1, 0) != 0) {
		return;
	}
	ok(s, st, "%s completed", imap_tok_str(a->c, 1));
}

static void cmd_logout(struct session *s, struct imap *st, struct args *a)
{
	session_printf(s, "* BYE Rumble IMAP4rev1 server logging out\r\n");
	ok(s, st, "LOGOUT completed");
	enter_state(s, st, I_LOGOUT);
	session_close(s, "logout");
}

static void cmd_namespace(struct session *s, struct imap *st, struct args *a)
{
	session_printf(s, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
	ok(s, st, "NAMESPACE completed");
}

/* ENABLE (RFC 5161): CONDSTORE, QRESYNC (which turns CONDSTORE on too)
 * and IMAP4rev2 (RFC 9051 A); the answer names what this command turned
 * on. */
static void cmd_enable(struct session *s, struct imap *st, struct args *a)
{
	const char *ext;
	session_printf(s, "* ENABLED");
	while ((ext = imap__arg_astring(a)) != NULL) {
		int q = rl_strcasecmp(ext, "QRESYNC") == 0;
		int c = rl_strcasecmp(ext, "CONDSTORE") == 0;
		int r = rl_strcasecmp(ext, "IMAP4rev2") == 0;
		if ((q && !st->qresync) || (c && !st->condstore) || (r && !st->rev2)) {
			session_printf(s, " %s", q ? "QRESYNC" : c ? "CONDSTORE" : "IMAP4rev2");
		}
		st->qresync |= q;
		st->condstore |= q || c;
		st->rev2 |= r;
	}
	session_printf(s, "\r\n");
	ok(s, st, "ENABLE completed");
}

static void cmd_id(struct session *s, struct imap *st, struct args *a)
{
	session_printf(s, "* ID (\"name\" \"Rumble\" \"version\" \"%s\")\r\n", RUMBLE_VERSION);
	ok(s, st, "ID completed");
}

/* ---- mailbox names ---- */

/* The store's name for a client's mailbox name: INBOX in any case is
 * INBOX; others must be valid folder names without wildcards or empty
 * levels. -1 when it is not a name we keep. */
static int box_name(const char *in, char *out, size_t len)
{
	size_t n = strlen(in);
	if (rl_strcasecmp(in, "INBOX") == 0) {
		rl_strlcpy(out, "INBOX", len);
		return 0;
	}
	if (!mm_valid_folder(in) || n >= len || in[n - 1] == '.' || strstr(in, "..") ||
	        strpbrk(in, "*%")) {
		return -1;
	}
	memcpy(out, in, n + 1);
	return 0;
}

static const char *arg_box(
        struct session *s, struct imap *st, struct args *a, char *out, size_t len)
{
	const char *name = imap__arg_astring(a);
	char stored[MM_FOLDER_MAX + 1];
	if (!name) {
		bad(s, st, "Missing mailbox name");
		return NULL;
	}
	/* an IMAP4rev2 name is UTF-8: the store's is modified UTF-7 */
	if ((st->rev2 && imap_utf8_to_mutf7(name, stored, sizeof stored) != 0) ||
	        box_name(st->rev2 ? stored : name, out, len) != 0) {
		no(s, st, "[CANNOT] Invalid mailbox name");
		return NULL;
	}
	return out;
}

/* 0, MM_NOFOLDER, or MM_UNAVAILABLE (no descriptor or memory left). */
static int open_box(struct imap *st, const char *name, struct mm_folder **f)
{
	return mm_folder_open(st->domain, st->user, name, strcmp(name, "INBOX") == 0, f);
}

/* The NO for a mailbox that did not open: missing (code, e.g.
 * NONEXISTENT or TRYCREATE) or not openable now (UNAVAILABLE). */
static void no_box(struct session *s, struct imap *st, int rc, const char *code)
{
	if (rc == MM_NOFOLDER) {
		no(s, st, "[%s] No such mailbox", code);
	} else {
		log_warnx("%08x imap cannot open a mailbox of %s now", s->id, st->login);
		no(s, st, "[UNAVAILABLE] The mailbox cannot be opened now, try again later");
	}
}

/* ---- SELECT, EXAMINE, CLOSE, UNSELECT ---- */

/* The first message not \Seen, 0 if none. */
static uint32_t first_unseen(struct mm_view *v, uint32_t n)
{
	struct mm_msg m;
	for (uint32_t seq = 1; seq <= n; seq++) {
		if (mm_view_msg(v, seq, &m) == 0 && !(m.flags & MM_SEEN)) {
			return seq;
		}
	}
	return 0;
}

/* QRESYNC's resync at SELECT (RFC 7162 3.2.5): what vanished since the
 * client's modseq, then the flags of every message changed since. */
static void qresync_report(struct session *s, struct imap *st, const struct imap_qresync *q)
{
	struct mm_range *r;
	uint32_t nr, n = mm_view_count(st->v), star = mm_folder_uidnext(st->f) - 1;
	const struct imap_set *known = q->has_known ? &q->known : NULL;
	if (mm_folder_vanished(st->f, q->modseq, &r, &nr) == 0) {
		imap_put_vanished(&s->out, r, nr, known, star);
		xfree(r);
	}
	struct mm_msg m;
	for (uint32_t seq = 1; seq <= n; seq++) {
		if (mm_view_msg(st->v, seq, &m) == 0 && m.modseq > q->modseq &&
		        (!known || imap_set_has(known, m.uid, star))) {
			put_flags_fetch(s, st, seq, m.uid, m.flags, m.keywords, m.modseq);
		}
	}
}

/* SELECT and EXAMINE's name and parameters; 0, or -1 when answered. */
static int select_args(struct session *s, struct imap *st, struct args *a, int readonly,
        char *name, size_t len, const char **named, struct imap_qresync *q)
{
	memset(q, 0, sizeof *q);
	*named = arg_box(s, st, a, name, len); /* NO when invalid */
	if (*named && imap_select_params(a->c, &a->i, q) != 0) {
		bad(s, st, "%s takes a mailbox name and (CONDSTORE) or (QRESYNC (...))",
		        readonly ? "EXAMINE" : "SELECT");
		return -1; /* a BAD command changes nothing */
	}
	if (q->on && !st->qresync) {
		imap_qresync_free(q);
		bad(s, st, "QRESYNC is not enabled");
		return -1;
	}
	st->condstore |= q->condstore;
	return 0;
}

/* IMAP4rev2's LIST response at SELECT (RFC 9051 6.3.2): the mailbox's own
 * line, attributes and all (its name has no wildcards: box_name). */
static void select_list(struct session *s, struct imap *st)
{
	struct imap_list_req r;
	char shown[IMAP_NAME_UTF8_MAX];
	memset(&r, 0, sizeof r);
	r.ref = "";
	r.pat[0] = imap_name_shown(st->box, 1, shown, sizeof shown);
	r.npat = 1;
	r.utf8 = 1;
	imap_list_run(&r, st->domain, st->user, &s->out, NULL, NULL);
}

static void select_box(struct session *s, struct imap *st, struct args *a, int readonly)
{
	char name[MM_FOLDER_MAX + 1];
	const char *named;
	struct imap_qresync q;
	if (select_args(s, st, a, readonly, name, sizeof name, &named, &q) != 0) {
		return;
	}
	if (st->state == I_SELECTED) {
		close_box(st); /* RFC 3501 6.3.1: even when the new one fails */
		enter_state(s, st, I_AUTH);
		if (st->qresync || st->rev2) { /* RFC 7162 3.2.11, RFC 9051 6.3.2 */
			session_printf(s, "* OK [CLOSED] Previous mailbox closed\r\n");
		}
	}
	if (!named) {
		return;
	}
	int rc = open_box(st, name, &st->f);
	if (rc == 0 && (rc = mm_view_open(st->f, &st->v)) != 0) {
		close_box(st);
	}
	if (rc != 0) {
		imap_qresync_free(&q);
		no_box(s, st, rc, "NONEXISTENT");
		return;
	}
	rl_strlcpy(st->box, name, sizeof st->box);
	st->readonly = readonly;
	st->uidvalidity = mm_folder_uidvalidity(st->f);
	/* EXAMINE takes no \Recent (RFC 3501 6.3.2), nor does IMAP4rev2, which
	 * has none (RFC 9051 E.12): they stay for IMAP4rev1 sessions. UNSEEN is
	 * not IMAP4rev2's either (E.11). */
	uint32_t n = mm_view_count(st->v), unseen = st->rev2 ? 0 : first_unseen(st->v, n);
	int recent = readonly || st->rev2 ? 0 : mm_view_claim(st->v);
	put_flag_lists(s, st);
	session_printf(s, "* %u EXISTS\r\n", n);
	if (st->rev2) {
		select_list(s, st);
	} else {
		session_printf(s, "* %d RECENT\r\n", recent);
	}
	if (unseen) {
		session_printf(s, "* OK [UNSEEN %u] First unseen\r\n", unseen);
	}
	session_printf(s,
	        "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n"
	        "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
	        st->uidvalidity, mm_folder_uidnext(st->f),
	        (unsigned long long)mm_folder_modseq(st->f));
	if (q.on && q.uidvalidity == st->uidvalidity) {
		qresync_report(s, st, &q);
	}
	imap_qresync_free(&q);
	enter_state(s, st, I_SELECTED);
	ok(s, st, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
	        readonly ? "EXAMINE" : "SELECT");
}

static void cmd_select(struct session *s, struct imap *st, struct args *a)
{
	select_box(s, st, a, 0);
}

static void cmd_examine(struct session *s, struct imap *st, struct args *a)
{
	select_box(s, st, a, 1);
}

/* Compacts when expunged messages take at least half of the mbox. */
static void maybe_compact(struct session *s, struct imap *st)
{
	uint64_t dead, total;
	mm_folder_usage(st->f, &dead, &total);
	if (dead && dead * 2 >= total && mm_folder_compact(st->f) != 0) {
		log_warnx("%08x imap compaction of %s/%s failed", s->id, st->login, st->box);
	}
}

static void cmd_close(struct session *s, struct imap *st, struct args *a)
{
	int unselect = rl_strcasecmp(imap_tok_str(a->c, 1), "UNSELECT") == 0;
	if (!unselect && !st->readonly && mm_folder_expunge(st->f) > 0) {
		mm_folder_sync(st->f);
		maybe_compact(s, st);
	}
	close_box(st);
	enter_state(s, st, I_AUTH);
	ok(s, st, "%s completed", unselect ? "UNSELECT" : "CLOSE");
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE ---- */

static void cmd_create(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	const char *in = imap__arg_astring(a);
	if (!in) {
		bad(s, st, "Missing mailbox name");
		return;
	}
	/* as arg_box; a name too long is no name (not one cut short) */
	if (st->rev2 ? imap_utf8_to_mutf7(in, name, sizeof name) != 0
	             : rl_strlcpy(name, in, sizeof name) >= sizeof name) {
		name[0] = '\0';
	}
	size_t n = strlen(name);
	if (n && name[n - 1] == '.') {
		name[n - 1] = '\0'; /* RFC 3501 6.3.3: a trailing separator is dropped */
	}
	char use[IMAP_USES_MAX];
	int urc = imap_use_parse(a->c, &a->i, use, sizeof use);
	if (urc == -2) {
		no(s, st, "[USEATTR] Only \\Drafts, \\Sent, \\Trash, \\Junk and \\Archive");
	} else if (urc == -1 || !imap__arg_end(a)) {
		bad(s, st, "CREATE takes a name and (USE (attributes))");
	} else if (rl_strcasecmp(name, "INBOX") == 0) {
		no(s, st, "[ALREADYEXISTS] INBOX always exists");
	} else if (box_name(name, name, sizeof name) != 0) {
		no(s, st, "[CANNOT] Invalid mailbox name");
	} else {
		int rc = mm_folder_create(st->domain, st->user, name);
		if (rc == 0 && *use && imap_use_set(st->domain, st->user, name, use) != 0) {
			mm_folder_delete(st->domain, st->user, name);
			no(s, st, "[SERVERBUG] Cannot keep the mailbox's use");
		} else if (rc == 0) {
			ok(s, st, "CREATE completed");
		} else if (rc == 1) {
			no(s, st, "[ALREADYEXISTS] Mailbox exists");
		} else {
			no(s, st, "[SERVERBUG] Cannot create the mailbox");
		}
	}
}

static void cmd_delete(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	if (!arg_box(s, st, a, name, sizeof name)) {
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		no(s, st, "[CANNOT] INBOX cannot be deleted");
		return;
	}
	if (st->state == I_SELECTED && strcmp(name, st->box) == 0) {
		close_box(st);
		enter_state(s, st, I_AUTH);
	}
	if (mm_folder_delete(st->domain, st->user, name) == 0) {
		ok(s, st, "DELETE completed");
	} else {
		no(s, st, "[NONEXISTENT] No such mailbox");
	}
}

struct rename_ctx {
	const char *from;
	size_t flen;
	char **kids;
	size_t n;
};

static int collect_kids(const char *name, void *arg)
{
	struct rename_ctx *r = arg;
	if (strncmp(name, r->from, r->flen) == 0 && name[r->flen] == '.' && r->n < 10000) {
		r->kids = xrealloc(r->kids, (r->n + 1) * sizeof *r->kids);
		r->kids[r->n++] = xstrdup(name);
	}
	return 0;
}

/* Renames the folders below from along with it (RFC 3501 6.3.5). */
static void rename_kids(struct imap *st, const char *from, const char *to)
{
	struct rename_ctx r = {from, strlen(from), NULL, 0};
	mm_folder_list(st->domain, st->user, collect_kids, &r);
	for (size_t i = 0; i < r.n; i++) {
		char name[MM_FOLDER_MAX + 1];
		if ((size_t)snprintf(name, sizeof name, "%s%s", to, r.kids[i] + r.flen) <
		        sizeof name) {
			mm_folder_rename(st->domain, st->user, r.kids[i], name);
		}
		xfree(r.kids[i]);
	}
	xfree(r.kids);
}

static void cmd_rename(struct session *s, struct imap *st, struct args *a)
{
	char from[MM_FOLDER_MAX + 1], to[MM_FOLDER_MAX + 1];
	if (!arg_box(s, st, a, from, sizeof from) || !arg_box(s, st, a, to, sizeof to)) {
		return;
	}
	if (strcmp(to, "INBOX") == 0) {
		no(s, st, "[ALREADYEXISTS] INBOX exists");
		return;
	}
	int inbox = strcmp(from, "INBOX") == 0;
	int rc = mm_folder_rename(st->domain, st->user, from, to);
	if (rc == 0) {
		if (!inbox) {
			rename_kids(st, from, to); /* INBOX's stay where they are (6.3.5) */
		}
		ok(s, st, "RENAME completed");
	} else {
		no(s, st,
		        rc == 1 ? "[ALREADYEXISTS] Target mailbox exists"
		                : "[NONEXISTENT] No such mailbox");
	}
}

static void cmd_subscribe(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	int on = rl_strcasecmp(imap_tok_str(a->c, 1), "SUBSCRIBE") == 0;
	if (!arg_box(s, st, a, name, sizeof name)) {
		return;
	}
	if (mm_subscription_set(st->domain, st->user, name, on) == 0) {
		ok(s, st, "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	} else {
		no(s, st, "[SERVERBUG] Cannot change subscriptions");
	}
}

/* ---- LIST, LSUB, STATUS ---- */

#define PATTERN_MAX IMAP_PATTERN_MAX

/* DELETED is IMAP4rev2's (RFC 9051 6.3.11), taken from IMAP4rev1 clients
 * too; DELETED-STORAGE RFC 9208's. */
static const char *const status_names[] = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY",
        "UNSEEN", "SIZE", "HIGHESTMODSEQ", "DELETED", "DELETED-STORAGE", NULL};

static int status_item(const char *item)
{
	for (int k = 0; status_names[k]; k++) {
		if (rl_strcasecmp(item, status_names[k]) == 0) {
			return k;
		}
	}
	return -1;
}

/* 1 when the tokens from first to end are STATUS items. */
static int status_items_ok(const struct imap_cmd *c, uint32_t first, uint32_t end)
{
	for (uint32_t i = first; i < end; i++) {
		if (c->tok[i].type != IMAP_ATOM || status_item(imap_tok_str(c, i)) < 0) {
			return 0;
		}
	}
	return first < end;
}

/* "* STATUS name (...)" for the items from first to end (checked); 0, or
 * open_box's error. */
static int status_line(struct session *s, struct imap *st, const struct imap_cmd *c,
        const char *name, uint32_t first, uint32_t end)
{
	struct mm_folder *f;
	int rc = open_box(st, name, &f);
	if (rc != 0) {
		return rc;
	}
	uint32_t n = mm_folder_count(f), unseen = 0, recent = 0, deleted = 0;
	uint32_t rfirst = mm_folder_first_recent(f);
	uint64_t size = 0; /* STATUS=SIZE (RFC 8438): the messages' RFC822.SIZEs */
	uint64_t dsize = 0; /* RFC 9208 DELETED-STORAGE: what EXPUNGE frees, KiB */
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_msg *m = mm_folder_msg(f, i);
		unseen += m && !(m->flags & MM_SEEN);
		recent += m && m->uid >= rfirst;
		deleted += m && (m->flags & MM_DELETED);
		size += m ? m->size : 0;
		dsize += m && (m->flags & MM_DELETED) ? m->size : 0;
	}
	uint64_t v[] = {n, recent, mm_folder_uidnext(f), mm_folder_uidvalidity(f), unseen, size,
	        mm_folder_modseq(f), deleted, (dsize + 1023) / 1024};
	mm_folder_close(f);
	session_printf(s, "* STATUS ");
	imap_put_name(&s->out, name, st->rev2);
	session_printf(s, " (");
	for (uint32_t i = first; i < end; i++) {
		const char *item = imap_tok_str(c, i);
		int k = status_item(item);
		st->condstore |= k == 6; /* HIGHESTMODSEQ turns CONDSTORE on (RFC 7162 3.1) */
		session_printf(s, "%s%s %llu", i > first ? " " : "", status_names[k],
		        (unsigned long long)v[k]);
	}
	session_printf(s, ")\r\n");
	return 0;
}

/* imap_list_run's STATUS callback (LIST-STATUS): the items of the
 * command from status_first. */
struct list_status {
	struct session *s;
	struct imap *st;
	const struct imap_cmd *c;
	const struct imap_list_req *r;
};

static void list_status(const char *name, void *arg)
{
	struct list_status *l = arg;
	status_line(l->s, l->st, l->c, name, l->r->status_first, l->r->status_end);
}

static void cmd_list(struct session *s, struct imap *st, struct args *a)
{
	struct imap_list_req r;
	if (imap_list_parse(a->c, a->i, &r) != 0) {
		bad(s, st, "LIST needs a reference and a pattern; or bad options");
		return;
	}
	r.utf8 = st->rev2;
	if (r.npat == 1 && !*r.pat[0] && !r.extended) {
		session_printf(s, "* LIST (\\Noselect) \".\" \"\"\r\n");
		ok(s, st, "LIST completed");
		return;
	}
	if (r.opts & LIST_RET_STATUS && !status_items_ok(a->c, r.status_first, r.status_end)) {
		bad(s, st, "Unknown STATUS item");
		return;
	}
	struct list_status ls = {s, st, a->c, &r};
	imap_list_run(&r, st->domain, st->user, &s->out, list_status, &ls);
	ok(s, st, "LIST completed");
}

static void cmd_lsub(struct session *s, struct imap *st, struct args *a)
{
	const char *ref = imap__arg_astring(a), *pat = imap__arg_astring(a);
	char full[PATTERN_MAX + 1];
	if (!ref || !pat || !imap__arg_end(a)) {
		bad(s, st, "LSUB needs a reference and a pattern");
		return;
	}
	snprintf(full, sizeof full, "%s%s", ref, pat);
	imap_lsub_run(full, st->domain, st->user, st->rev2, &s->out);
	ok(s, st, "LSUB completed");
}

/* ---- GETMETADATA, SETMETADATA (RFC 5464; imap_meta.c) ---- */

/* The mailbox of a METADATA command: "" (the user's own) or one that
 * exists. */
static const char *meta_box(struct session *s, struct imap *st, struct args *a, char *out, size_t len)
{
	struct mm_folder *f;
	if (imap__arg_type(a) == IMAP_STRING && !*imap_tok_str(a->c, a->i)) {
		a->i++;
		out[0] = '\0';
		return out;
	}
	if (!arg_box(s, st, a, out, len)) {
		return NULL;
	}
	int rc = open_box(st, out, &f);
	if (rc != 0) {
		no_box(s, st, rc, "NONEXISTENT");
		return NULL;
	}
	mm_folder_close(f);
	return out;
}

static void cmd_getmetadata(struct session *s, struct imap *st, struct args *a)
{
	struct imap_meta_opts o;
	char box[MM_FOLDER_MAX + 1], resp[128];
	if (imap_meta_options(a->c, &a->i, &o) != 0) {
		bad(s, st, "Bad GETMETADATA options");
	} else if (meta_box(s, st, a, box, sizeof box)) {
		o.utf8 = st->rev2;
		if (imap_meta_get(a->c, a->i, &o, st->domain, st->user, box, &s->out, resp,
		            sizeof resp) != 0) {
			bad(s, st, "%s", resp);
		} else {
			ok(s, st, "%sGETMETADATA completed", resp);
		}
	}
}

static void cmd_setmetadata(struct session *s, struct imap *st, struct args *a)
{
	char box[MM_FOLDER_MAX + 1], resp[128];
	if (!meta_box(s, st, a, box, sizeof box)) {
		return;
	}
	int rc = imap_meta_set(a->c, a->i, st->domain, st->user, box, resp, sizeof resp);
	if (rc == -1) {
		bad(s, st, "%s", resp);
	} else if (rc == -2) {
		no(s, st, "%s", resp);
	} else {
		ok(s, st, "SETMETADATA completed");
	}
}

static void cmd_status(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	if (!arg_box(s, st, a, name, sizeof name)) {
		return;
	}
	if (!imap__arg_paren(a, IMAP_LPAREN)) {
		bad(s, st, "STATUS needs a list of items");
		return;
	}
	uint32_t first = a->i, end = a->i;
	while (end < a->c->ntok && a->c->tok[end].type == IMAP_ATOM) {
		end++;
	}
	a->i = end;
	if (!status_items_ok(a->c, first, end) || !imap__arg_paren(a, IMAP_RPAREN) || !imap__arg_end(a)) {
		bad(s, st, "Unknown STATUS item");
		return;
	}
	int rc = status_line(s, st, a->c, name, first, end);
	if (rc != 0) {
		no_box(s, st, rc, "NONEXISTENT");
	} else {
		ok(s, st, "STATUS completed");
	}
}

/* ---- flags in commands ---- */

/* One flag: a system flag's bit into *fl, a keyword's into *kw (its slot
 * made in f when create). -1 for an unknown system flag or a keyword that
 * does not fit. */
static int parse_flag(struct mm_folder *f, const char *name, uint32_t *fl, uint32_t *kw, int create)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {{"\\Seen", MM_SEEN}, {"\\Answered", MM_ANSWERED}, {"\\Flagged", MM_FLAGGED},
	        {"\\Deleted", MM_DELETED}, {"\\Draft", MM_DRAFT}, {"\\Recent", 0}};
	if (name[0] == '\\') {
		for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
			if (rl_strcasecmp(name, sys[i].name) == 0) {
				*fl |= sys[i].bit;
				return 0;
			}
		}
		return -1;
	}
	/* a flag-keyword is an atom: no list-wildcards (the tokenizer lets them
	 * into atoms for sets and LIST) and no "]" (it would end PERMANENTFLAGS'
	 * code); no "[" either, for clients that scan for brackets */
	if (strpbrk(name, "[]*%") || strlen(name) > 100) {
		return -1;
	}
	int k = mm_folder_keyword(f, name, create);
	if (k >= 0) {
		*kw |= 1u << k;
	}
	return k >= 0 || !create ? 0 : -1;
}

/* A flag list "(a b)" or, where allowed, bare flags to the end. */
int imap__parse_flags(struct args *a, struct mm_folder *f, uint32_t *fl, uint32_t *kw, int bare)
{
	int paren = imap__arg_paren(a, IMAP_LPAREN);
	const char *name;
	*fl = *kw = 0;
	if (!paren && !bare) {
		return -1;
	}
	while ((name = imap__arg_atom(a)) != NULL) {
		if (parse_flag(f, name, fl, kw, 1) != 0) {
			return -1;
		}
	}
	return paren && !imap__arg_paren(a, IMAP_RPAREN) ? -1 : 0;
}

/* ---- APPEND ---- */

static const char *spool_dir(struct imap *st)
{
	if (!st->spdir) {
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "%s/queue", mm_storage());
		st->spdir = b.data;
	}
	return st->spdir;
}

/* Appends the message in sp to f with flags and keywords, fsynced. */
static int append_to(struct imap *st, struct mm_folder *f, struct spool *sp, int64_t date,
        uint32_t fl, uint32_t kw, uint32_t *uid)
{
	if (mm_folder_append(f, sp, st->login, date, fl, 0, uid) != 0) {
		return -1;
	}
	if (kw && mm_folder_store(f, uid, 1, MM_STORE_ADD, 0, kw) < 0) {
		return -1;
	}
	return mm_folder_sync(f);
}

/* The date-time and message arguments after the flags. */
static int append_args(struct args *a, int64_t *date)
{
	if (a->i + 2 == a->c->ntok) {
		if (imap__arg_type(a) != IMAP_STRING || mime_date_parse(imap_tok_str(a->c, a->i),
		                                          a->c->tok[a->i].len, date, NULL) != 0) {
			return -1;
		}
		a->i++;
	}
	return a->i + 1 == a->c->ntok && (imap__arg_type(a) == IMAP_STRING || imap__arg_type(a) == IMAP_SPOOL)
	               ? 0
	               : -1;
}

/* Appends the message token (inline or spooled) at a->i to f. */
static int append_msg(struct imap *st, struct args *a, struct mm_folder *f, int64_t date,
        uint32_t fl, uint32_t kw, uint32_t *uid)
{
	struct spool tmp, *sp = st->sp;
	if (imap__arg_type(a) == IMAP_SPOOL && !sp) {
		return -1;
	}
	if (imap__arg_type(a) != IMAP_SPOOL) {
		spool_init(&tmp, spool_dir(st));
		spool_write(&tmp, imap_tok_str(a->c, a->i), a->c->tok[a->i].len);
		sp = &tmp;
	}
	int rc = sp->failed ? -1 : append_to(st, f, sp, date, fl, kw, uid);
	if (sp == &tmp) {
		spool_free(&tmp);
	}
	return rc;
}

/* The bytes of APPEND's message token at a->i (spooled or inline). */
static uint64_t append_size(struct imap *st, struct args *a)
{
	return imap__arg_type(a) == IMAP_SPOOL ? (st->sp ? st->sp->len : 0) : a->c->tok[a->i].len;
}

static void cmd_append(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	struct mm_folder *f;
	uint32_t fl = 0, kw = 0, uid = 0;
	int64_t date = 0;
	if (!arg_box(s, st, a, name, sizeof name)) {
		return;
	}
	int rc = open_box(st, name, &f);
	if (rc != 0) {
		no_box(s, st, rc, "TRYCREATE");
		return;
	}
	if (imap__arg_type(a) == IMAP_LPAREN && imap__parse_flags(a, f, &fl, &kw, 0) != 0) {
		bad(s, st, "Invalid flags");
	} else if (append_args(a, &date) != 0) {
		bad(s, st, "APPEND needs an optional date-time and a message literal");
	} else if (a->c->tok[a->i].len == 0) {
		no(s, st, "Empty message");
	} else if (quota_exceeded(st->domain, st->user, 1, append_size(st, a))) {
		no(s, st, "[OVERQUOTA] The message does not fit the mailbox's quota");
	} else if (append_msg(st, a, f, date, fl, kw, &uid) != 0) {
		no(s, st, "[SERVERBUG] Cannot store the message");
	} else {
		quota_notify(st->domain, st->user);
		uint32_t v = mm_folder_uidvalidity(f);
		if (st->state == I_SELECTED && strcmp(name, st->box) == 0 &&
		        imap__view_sync(s, st, 1, 0) != 0) {
			mm_folder_close(f);
			return;
		}
		ok(s, st, "[APPENDUID %u %u] APPEND completed", v, uid);
	}
	mm_folder_close(f);
}

/* ---- message sets ---- */

static int range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The sequence numbers of ranges r[0..n) (sorted here), once each, in
 * order, into *out. */
static void ranges_expand(struct imap_range *r, uint32_t n, uint32_t **out, uint32_t *count)
{
	uint64_t total = 0, top = 0;
	qsort(r, n, sizeof *r, range_cmp);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t lo = r[i].lo > top ? r[i].lo : top + 1;
		total += r[i].hi >= lo ? r[i].hi - lo + 1 : 0;
		top = r[i].hi > top ? r[i].hi : top;
	}
	*out = xmalloc((total ? total : 1) * sizeof **out);
	*count = 0;
	top = 0;
	for (uint32_t i = 0; i < n; i++) {
		for (uint64_t s = r[i].lo > top ? r[i].lo : top + 1; s <= r[i].hi; s++) {
			(*out)[(*count)++] = (uint32_t)s;
		}
		top = r[i].hi > top ? r[i].hi : top;
	}
}

/* A UID range as the sequence range of the view's messages in it (two
 * lookups, mm_view_rank); lo > hi when it has none. */
static struct imap_range uid_range(struct imap *st, uint32_t lo, uint32_t hi)
{
	struct imap_range r = {1, 0};
	if (hi > 0) {
		r.lo = lo > 1 ? mm_view_rank(st->v, lo - 1) + 1 : 1;
		r.hi = mm_view_rank(st->v, hi);
	}
	return r;
}

/* "$" (SEARCHRES): the sequence numbers of the saved result's messages
 * still here, for FETCH and UID FETCH alike (RFC 5182 2.1). */
static void saved_seqs(struct imap *st, uint32_t **out, uint32_t *n)
{
	const struct imap_set *sv = &st->saved;
	struct imap_range *r = xmalloc((sv->n ? sv->n : 1) * sizeof *r);
	uint32_t k = 0;
	for (uint32_t i = 0; i < sv->n; i++) {
		struct imap_range x = uid_range(st, sv->r[i].lo, sv->r[i].hi);
		if (x.lo >= 1 && x.lo <= x.hi) {
			r[k++] = x;
		}
	}
	ranges_expand(r, k, out, n);
	xfree(r);
}

/* The sequence numbers a sequence set (or a UID set) names, in order. -1
 * when it is malformed or names a sequence number that does not exist.
 * A UID range becomes a sequence range by two lookups (mm_view_rank):
 * the cost is the answer's size, not the folder's. */
static int set_seqs(struct imap *st, const char *spec, int uid, uint32_t **out, uint32_t *n)
{
	struct imap_set set;
	struct mm_msg m;
	uint32_t count = mm_view_count(st->v), star = count, k = 0;
	*out = NULL;
	*n = 0;
	if (spec && strcmp(spec, "$") == 0) {
		saved_seqs(st, out, n);
		return 0;
	}
	if (!spec || imap_set_parse(spec, &set) != 0) {
		return -1;
	}
	if (uid) {
		star = count && mm_view_msg(st->v, count, &m) >= 0 ? m.uid : 0;
	}
	struct imap_range *r = xmalloc((set.n ? set.n : 1) * sizeof *r);
	for (uint32_t i = 0; i < set.n; i++) {
		uint32_t lo = set.r[i].lo == IMAP_STAR ? star : set.r[i].lo;
		uint32_t hi = set.r[i].hi == IMAP_STAR ? star : set.r[i].hi;
		if (lo > hi) {
			uint32_t x = lo;
			lo = hi;
			hi = x;
		}
		if (!uid && hi > count) {
			imap_set_free(&set);
			xfree(r);
			return -1;
		}
		if (uid) {
			struct imap_range x = uid_range(st, lo, hi);
			lo = x.lo;
			hi = x.hi;
		}
		if (lo >= 1 && lo <= hi) {
			r[k++] = (struct imap_range){lo, hi};
		}
	}
	imap_set_free(&set);
	ranges_expand(r, k, out, n);
	xfree(r);
	return 0;
}

int imap__arg_set(struct session *s, struct imap *st, struct args *a, uint32_t **seqs, uint32_t *n)
{
	if (set_seqs(st, imap__arg_atom(a), a->uid, seqs, n) != 0) {
		bad(s, st, "Invalid message set");
		return -1;
	}
	return 0;
}

/* ---- EXPUNGE, UID EXPUNGE, CHECK ---- */

/* UID EXPUNGE: the UIDs of the messages in seqs flagged \Deleted. */
static uint32_t deleted_uids(struct imap *st, uint32_t *seqs, uint32_t n)
{
	uint32_t k = 0;
	struct mm_msg m;
	for (uint32_t i = 0; i < n; i++) {
		if (mm_view_msg(st->v, seqs[i], &m) == 0 && (m.flags & MM_DELETED)) {
			seqs[k++] = m.uid;
		}
	}
	return k;
}

static void cmd_expunge(struct session *s, struct imap *st, struct args *a)
{
	int rc;
	if (st->readonly) {
		no(s, st, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (a->uid) {
		uint32_t *seqs, n;
		if (imap__arg_set(s, st, a, &seqs, &n) != 0) {
			return;
		}
		mm_folder_refresh(st->f);
		uint32_t k = deleted_uids(st, seqs, n);
		rc = k ? mm_folder_expunge_uids(st->f, st->uidvalidity, seqs, k) : 0;
		xfree(seqs);
	} else {
		rc = mm_folder_expunge(st->f);
	}
	if (rc < 0 || (rc > 0 && mm_folder_sync(st->f) != 0)) {
		no(s, st, "[SERVERBUG] Expunge failed");
		return;
	}
	if (imap__view_sync(s, st, 1, 0) == 0) {
		if (rc > 0) {
			maybe_compact(s, st);
		}
		ok(s, st, "EXPUNGE completed");
	}
}

/* ---- COPY, MOVE ---- */

/* Keywords of src's message (bits kw) as dst's bits. */
static uint32_t map_keywords(struct mm_folder *src, struct mm_folder *dst, uint32_t kw)
{
	uint32_t out = 0;
	for (int i = 0; i < 32; i++) {
		const char *name = (kw >> i) & 1 ? mm_folder_keyword_name(src, i) : NULL;
		int k = name ? mm_folder_keyword(dst, name, 1) : -1;
		if (k >= 0) {
			out |= 1u << k;
		}
	}
	return out;
}

/* Streams message m into a spool (a file past SPOOL_MEM_MAX): no copy
 * of a big message is held. 0, 1 when it is gone meanwhile, -1. */
static int copy_spool(struct imap *st, const struct mm_msg *m, struct spool *sp)
{
	struct mm_reader *r = mm_reader_open_uid(st->f, m->uid);
	char chunk[COPY_CHUNK];
	long n = 0;
	if (!r) {
		return 1; /* expunged meanwhile */
	}
	spool_init(sp, spool_dir(st));
	while ((n = mm_reader_read(r, chunk, sizeof chunk)) > 0) {
		spool_write(sp, chunk, (size_t)n);
	}
	mm_reader_close(r);
	return n < 0 || sp->failed ? -1 : 0;
}

/* Copies the messages to dst; fills uids (source) and nuids (new).
 * Returns the count copied, -1 on a failure. */
static int copy_msgs(struct imap *st, struct mm_folder *dst, const uint32_t *seqs, uint32_t n,
        uint32_t *uids, uint32_t *nuids)
{
	uint32_t k = 0;
	struct mm_msg m;
	for (uint32_t i = 0; i < n; i++) {
		struct spool sp;
		if (mm_view_msg(st->v, seqs[i], &m) != 0) {
			continue; /* expunged meanwhile */
		}
		int rc = copy_spool(st, &m, &sp);
		if (rc == 1) {
			continue;
		}
		uint32_t kw = rc == 0 ? map_keywords(st->f, dst, m.keywords) : 0;
		if (rc == 0) {
			rc = append_to(st, dst, &sp, m.date, m.flags, kw, &nuids[k]);
		}
		spool_free(&sp);
		if (rc != 0) {
			return -1;
		}
		uids[k++] = m.uid;
	}
	return (int)k;
}

/* 1 when copies of the messages seqs[0..n) do not fit the account's
 * quota. MOVE is not checked: within one account (one quota root) it
 * frees what it takes, and a full mailbox must still be able to move
 * mail to its Trash. */
static int copy_full(struct imap *st, const uint32_t *seqs, uint32_t n)
{
	struct mm_msg m;
	uint64_t size = 0;
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (mm_view_msg(st->v, seqs[i], &m) == 0) {
			size += m.size;
			k++;
		}
	}
	return k && quota_exceeded(st->domain, st->user, k, size);
}

static void copy_move(struct session *s, struct imap *st, struct args *a, int move)
{
	uint32_t *seqs, n;
	char name[MM_FOLDER_MAX + 1];
	struct mm_folder *dst;
	if (imap__arg_set(s, st, a, &seqs, &n) != 0) {
		return;
	}
	if (!arg_box(s, st, a, name, sizeof name)) {
		xfree(seqs);
		return;
	}
	int rc = open_box(st, name, &dst);
	if (rc != 0) {
		no_box(s, st, rc, "TRYCREATE");
		xfree(seqs);
		return;
	}
	if (move && st->readonly) {
		no(s, st, "[READ-ONLY] Mailbox is read-only");
		mm_folder_close(dst);
		xfree(seqs);
		return;
	}
	mm_folder_refresh(st->f);
	if (!move && copy_full(st, seqs, n)) {
		no(s, st, "[OVERQUOTA] The messages do not fit the mailbox's quota");
		mm_folder_close(dst);
		xfree(seqs);
		return;
	}
	uint32_t *uids = xmalloc((n ? n : 1) * sizeof *uids), *nuids = xmalloc((n ? n : 1) * 4);
	int k = copy_msgs(st, dst, seqs, n, uids, nuids);
	struct buf code;
	buf_init(&code);
	if (k > 0) {
		buf_printf(&code, "[COPYUID %u ", mm_folder_uidvalidity(dst));
		imap_put_uids(&code, uids, (uint32_t)k);
		buf_puts(&code, " ");
		imap_put_uids(&code, nuids, (uint32_t)k);
		buf_puts(&code, "] ");
	}
	mm_folder_close(dst);
	if (k < 0) {
		no(s, st, "[SERVERBUG] %s failed", move ? "MOVE" : "COPY");
	} else if (!move) {
		quota_notify(st->domain, st->user);
		ok(s, st, "%sCOPY completed", code.data ? code.data : "");
	} else {
		/* RFC 6851 3.3: COPYUID untagged, then the expunges; resp-text
		 * needs text after the code (code ends in a space) */
		if (k > 0) {
			session_printf(s, "* OK %sMoved\r\n", code.data);
			mm_folder_expunge_uids(st->f, st->uidvalidity, uids, (uint32_t)k);
			mm_folder_sync(st->f);
		}
		if (imap__view_sync(s, st, 1, 0) == 0) {
			ok(s, st, "MOVE completed");
		}
	}
	buf_free(&code);
	xfree(uids);
	xfree(nuids);
	xfree(seqs);
}

static void cmd_copy(struct session *s, struct imap *st, struct args *a)
{
	copy_move(s, st, a, 0);
}

static void cmd_move(struct session *s, struct imap *st, struct args *a)
{
	copy_move(s, st, a, 1);
}

/* ---- GETQUOTAROOT, GETQUOTA, SETQUOTA (RFC 9208; imap_quota.c) ---- */

static void cmd_getquotaroot(struct session *s, struct imap *st, struct args *a)
{
	char name[MM_FOLDER_MAX + 1];
	struct mm_folder *f;
	if (!arg_box(s, st, a, name, sizeof name)) {
		return;
	}
	if (!imap__arg_end(a)) {
		bad(s, st, "GETQUOTAROOT takes one mailbox name");
		return;
	}
	int rc = open_box(st, name, &f);
	if (rc != 0) {
		no_box(s, st, rc, "NONEXISTENT");
		return;
	}
	mm_folder_close(f);
	if (imap_quota_root(st->domain, st->user, name, &s->out) != 0) {
		no(s, st, "[UNAVAILABLE] The usage cannot be read now, try again later");
		return;
	}
	ok(s, st, "GETQUOTAROOT completed");
}

static void cmd_getquota(struct session *s, struct imap *st, struct args *a)
{
	const char *root = imap__arg_astring(a);
	if (!root || !imap__arg_end(a)) {
		bad(s, st, "GETQUOTA takes one quota root");
		return;
	}
	int rc = imap_quota_get(st->domain, st->user, root, &s->out);
	if (rc == -1) {
		no(s, st, "[NONEXISTENT] No such quota root");
	} else if (rc != 0) {
		no(s, st, "[UNAVAILABLE] The usage cannot be read now, try again later");
	} else {
		ok(s, st, "GETQUOTA completed");
	}
}

static void cmd_setquota(struct session *s, struct imap *st, struct args *a)
{
	if (imap_quota_set_parse(a->c, a->i) != 0) {
		bad(s, st, "SETQUOTA needs a quota root and a list of resource limits");
		return;
	}
	no(s, st, "[NOPERM] Quotas are set by the administrator");
}

/* ---- IDLE (RFC 2177) ----
 *
 * No timer: while a session idles its view is watched (mm_view_watch),
 * and a change to the folder, made on any thread, rings the session's
 * bell; view_sync then runs on the session's own worker. An idling
 * session is not held, so the worker's idle timeout and a graceful stop
 * see it as any other session. */

/* The idle timeout ends IDLE IMAP_AUTH_MS after it began, as when a
 * timer polled, though what the session was told since counts as I/O. */
static void idle_deadline(struct session *s, struct imap *st)
{
	int64_t left = st->idle_since + IMAP_AUTH_MS - os_now_ms();
	s->timeout_ms = left > 0 ? (int)left : 0;
}

/* The bell: the folder may have changed. */
static void idle_wake(struct session *s)
{
	struct imap *st = s->ps;
	if (st && st->idling && st->v && imap__view_sync(s, st, 1, 1) == 0) {
		idle_deadline(s, st);
	}
}

static void cmd_idle(struct session *s, struct imap *st, struct args *a)
{
	if (st->state == I_SELECTED) {
		if (!st->bell) {
			st->bell = session_bell_new(s, idle_wake);
		}
		/* watched before the sync: no change falls between the two */
		mm_view_watch(st->v, session_bell_ring, st->bell);
		if (imap__view_sync(s, st, 1, 0) != 0) {
			return;
		}
	}
	session_printf(s, "+ idling\r\n");
	st->idling = 1;
	st->idle_since = os_now_ms();
}

static void idle_done(struct session *s, struct imap *st, const char *line)
{
	st->idling = 0;
	if (st->v) {
		mm_view_watch(st->v, NULL, NULL);
	}
	s->timeout_ms = IMAP_AUTH_MS;
	if (rl_strcasecmp(line, "DONE") != 0) {
		bad(s, st, "Expected DONE");
	} else {
		ok(s, st, "IDLE terminated");
	}
}

/* ---- FETCH (imap_fetch.c) ---- */

/* Adds up to FILL_MAX bytes of the FETCH answer; 1 when it is done. */
static int fetch_run(struct session *s, struct imap *st)
{
	size_t room = s->out.len < FILL_MAX ? FILL_MAX - s->out.len : 0;
	int rc = imap_fetch_fill(st->job, &s->out, room);
	if (rc < 0) {
		/* a literal's length is out already: only closing tells */
		session_close(s, "message read error");
		return 1;
	}
	if (rc == 1 && imap__view_sync(s, st, 0, 0) == 0) {
		if (imap_fetch_unknown_cte(st->job)) {
			no(s, st, "[UNKNOWN-CTE] A part's Content-Transfer-Encoding cannot be decoded");
		} else {
			ok(s, st, "%sFETCH completed", st->job_uid ? "UID " : "");
		}
	}
	return rc == 1 || session_closing(s);
}

/* ---- FETCH as a job across writable rounds (as pop3.c's RETR) ---- */

static void kicked(struct session *s, void *arg)
{
	struct imap *st = s->ps;
	if (!st) {
		return;
	}
	st->kicking = 0;
	if (st->resume) {
		st->resume = 0;
		session_resume(s);
	}
}

static void kick(struct session *s, struct imap *st)
{
	if (!st->kicking) {
		st->kicking = 1;
		session_hold(s);
		session_post(s, kicked, NULL);
	}
}

static void job_done(struct imap *st)
{
	imap_fetch_free(st->job);
	st->job = NULL;
	xfree(st->job_seqs);
}

/* see struct proto: the output drained. */
static void imap_writable(struct session *s)
{
	struct imap *st = s->ps;
	if (!st || !st->job) {
		return;
	}
	if (fetch_run(s, st)) {
		job_done(st);
		st->resume = 1;
	}
	kick(s, st);
}

/* UID FETCH ... (CHANGEDSINCE m VANISHED): what of the set vanished since
 * m, before the FETCH answers (RFC 7162 3.2.6). */
static void fetch_vanished(struct session *s, struct imap *st, const char *spec, uint64_t since)
{
	struct imap_set set;
	struct mm_range *r;
	uint32_t nr;
	if (imap_set_parse(spec, &set) != 0) {
		return;
	}
	if (mm_folder_vanished(st->f, since, &r, &nr) == 0) {
		imap_put_vanished(&s->out, r, nr, &set, mm_folder_uidnext(st->f) - 1);
		xfree(r);
	}
	imap_set_free(&set);
}

static void cmd_fetch(struct session *s, struct imap *st, struct args *a)
{
	uint32_t *seqs, n;
	struct imap_fetch *j;
	uint64_t since;
	int vanished;
	const char *spec = imap__arg_type(a) == IMAP_ATOM ? imap_tok_str(a->c, a->i) : NULL;
	if (imap__arg_set(s, st, a, &seqs, &n) != 0) {
		return;
	}
	if (imap_fetch_new(a->c, a->i, a->uid, &j) != 0) {
		bad(s, st, "Invalid FETCH items");
		xfree(seqs);
		return;
	}
	st->condstore |= imap_fetch_sync(j, st->condstore, &since, &vanished);
	if (vanished && !st->qresync) {
		bad(s, st, "VANISHED needs QRESYNC enabled");
		imap_fetch_free(j);
		xfree(seqs);
		return;
	}
	mm_folder_refresh(st->f);
	if (vanished) {
		fetch_vanished(s, st, spec, since);
	}
	imap__tell_new_keywords(s, st); /* another session's, before FLAGS show it */
	imap_fetch_begin(j, st->f, st->v, seqs, n, st->readonly);
	st->job = j;
	st->job_seqs = seqs;
	st->job_uid = a->uid;
	if (fetch_run(s, st)) {
		job_done(st);
	} else {
		session_pause(s); /* the next command waits for this one's end */
	}
}

/* ---- the command table ---- */

static const struct cmd commands[] = {
        {"CAPABILITY", ANY, cmd_capability},
        {"NOOP", ANY, cmd_noop},
        {"LOGOUT", ANY, cmd_logout},
        {"ID", ANY, cmd_id},
        {"STARTTLS", ST(I_NOAUTH), cmd_starttls},
        {"LOGIN", ST(I_NOAUTH), cmd_login},
        {"AUTHENTICATE", ST(I_NOAUTH), cmd_authenticate},
        {"SELECT", AUTHED, cmd_select},
        {"EXAMINE", AUTHED, cmd_examine},
        {"CREATE", AUTHED, cmd_create},
        {"DELETE", AUTHED, cmd_delete},
        {"RENAME", AUTHED, cmd_rename},
        {"SUBSCRIBE", AUTHED, cmd_subscribe},
        {"UNSUBSCRIBE", AUTHED, cmd_subscribe},
        {"LIST", AUTHED, cmd_list},
        {"LSUB", AUTHED, cmd_lsub},
        {"STATUS", AUTHED, cmd_status},
        {"GETMETADATA", AUTHED, cmd_getmetadata},
        {"SETMETADATA", AUTHED, cmd_setmetadata},
        {"APPEND", AUTHED, cmd_append},
        {"GETQUOTAROOT", AUTHED, cmd_getquotaroot},
        {"GETQUOTA", AUTHED, cmd_getquota},
        {"SETQUOTA", AUTHED, cmd_setquota},
        {"NAMESPACE", AUTHED, cmd_namespace},
        {"ENABLE", AUTHED, cmd_enable},
        {"IDLE", AUTHED, cmd_idle},
        {"CHECK", ST(I_SELECTED), cmd_noop},
        {"CLOSE", ST(I_SELECTED), cmd_close},
        {"UNSELECT", ST(I_SELECTED), cmd_close},
        {"EXPUNGE", ST(I_SELECTED), cmd_expunge},
        {"SEARCH", ST(I_SELECTED), imap__cmd_search},
        {"SORT", ST(I_SELECTED), imap__cmd_sort},
        {"THREAD", ST(I_SELECTED), imap__cmd_thread},
        {"FETCH", ST(I_SELECTED), cmd_fetch},
        {"STORE", ST(I_SELECTED), imap__cmd_store},
        {"COPY", ST(I_SELECTED), cmd_copy},
        {"MOVE", ST(I_SELECTED), cmd_move},
};

/* Commands that take "UID" before them. */
static int uid_ok(const struct cmd *c)
{
	return c->run == cmd_fetch || c->run == imap__cmd_store || c->run == imap__cmd_search ||
	       c->run == imap__cmd_sort || c->run == imap__cmd_thread || c->run == cmd_copy ||
	       c->run == cmd_move || c->run == cmd_expunge;
}

static const struct cmd *find_cmd(const char *verb)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (rl_strcasecmp(verb, commands[i].verb) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

/* A tag: ASTRING-CHARs but '+' (RFC 3501 9), so "[" and "]" too; not
 * the wildcards and the backslash the tokenizer lets into atoms. */
static int valid_tag(const struct imap_cmd *c)
{
	const char *t = imap_tok_str(c, 0);
	return c->ntok && c->tok[0].type == IMAP_ATOM && c->tok[0].len <= IMAP_TAG_MAX &&
	       !strpbrk(t, "+*%\\");
}

/* What Lua's command hook gets: the first argument (LOGIN's user name,
 * the mailbox, ...), never a password. */
static const char *hook_arg(const struct args *a)
{
	int t = imap__arg_type(a);
	return t == IMAP_ATOM || t == IMAP_STRING ? imap_tok_str(a->c, a->i) : "";
}

static void greet(struct session *s, struct imap *st)
{
	session_printf(s, "* OK [CAPABILITY ");
	put_caps(s, st);
	session_printf(s, "] Rumble IMAP4rev1 server ready\r\n");
}

/* Goes on with the greeting (cmd NULL) or a command as the Lua hooks
 * decided; a hook that waits for the client decides later (imap_hooked),
 * and the parsed command stays in st->cmd until then. */
static void after_hook(struct session *s, struct imap *st, const struct cmd *cmd,
	const struct args *a, enum rl_verdict v)
{
	if (v == RL_WAIT) {
		st->hook_wait = 1;
		st->hook_cmd = cmd;
		if (a) {
			st->hook_args = *a;
		}
	} else if (v == RL_DROP) {
		session_close(s, "dropped by script");
	} else if (v == RL_CONTINUE) {
		if (cmd) {
			struct args copy = *a;
			cmd->run(s, st, &copy);
		} else {
			greet(s, st);
		}
	}
}

static void cmd_done(struct imap *st);

static void imap_hooked(struct session *s, enum rl_verdict v)
{
	struct imap *st = s->ps;
	st->hook_wait = 0;
	after_hook(s, st, st->hook_cmd, st->hook_cmd ? &st->hook_args : NULL, v);
	if (st->hook_cmd) {
		cmd_done(st);
	}
}

static void execute(struct session *s, struct imap *st)
{
	struct imap_cmd *c = &st->cmd;
	struct args a = {c, 2, 0};
	const char *verb = imap_tok_str(c, 1);
	if (c->ntok >= 2 && rl_strcasecmp(verb, "UID") == 0) {
		a.uid = 1;
		verb = imap_tok_str(c, a.i++);
	}
	const struct cmd *cmd = c->tok[a.i - 1].type == IMAP_ATOM ? find_cmd(verb) : NULL;
	if (st->state == I_NOAUTH && ++st->commands > IMAP_PRELOGIN_MAX) {
		session_printf(s, "* BYE Too many commands without login\r\n");
		session_close(s, "too many commands");
	} else if (!cmd || (a.uid && !uid_ok(cmd))) {
		bad(s, st, "Unknown command");
	} else if (!(cmd->states & ST(st->state))) {
		bad(s, st, "%s is not allowed %s", cmd->verb,
		        st->state == I_NOAUTH ? "before login" : "now");
	} else if (cmd->run == cmd_expunge && a.uid && imap__arg_end(&a)) {
		bad(s, st, "UID EXPUNGE needs a set");
	} else if (c->nul && !(cmd->run == cmd_append && c->nul == c->ntok)) {
		/* a string cut short at its NUL would name something else; APPEND's
		 * message is stored, not read as a string, and takes it (leniency) */
		bad(s, st, "A NUL in a literal: only a literal8 (~{n}) may hold one");
	} else {
		after_hook(s, st, cmd, &a,
		        rl_hook(s, "command", cmd->verb, hook_arg(&a))); /* Rumble.setHook */
	}
}

/* ---- lines and literals ---- */

static void cmd_done(struct imap *st)
{
	imap_cmd_reset(&st->cmd);
	if (st->sp) {
		spool_free(st->sp);
		xfree(st->sp);
	}
}

static void take_tag(struct imap *st)
{
	if (valid_tag(&st->cmd)) {
		rl_strlcpy(st->tag, imap_tok_str(&st->cmd, 0), sizeof st->tag);
	} else {
		rl_strlcpy(st->tag, "*", sizeof st->tag);
	}
}

/* Literal bytes; returns how many were taken. */
static size_t literal_bytes(struct imap *st, const char *p, size_t n)
{
	size_t take = n < st->lit_left ? n : (size_t)st->lit_left;
	imap_cmd_literal_data(&st->cmd, p, take);
	if (st->sp && st->cmd.tok[st->cmd.ntok - 1].type == IMAP_SPOOL) {
		spool_write(st->sp, p, take);
	}
	st->lit_left -= take;
	if (st->lit_left == 0) {
		imap_cmd_literal_end(&st->cmd);
	}
	return take;
}

/* A literal's bytes come through the session's tap, as they arrive, not
 * in line pieces: so its end never cuts the rest of its line. */
static size_t literal_tap(struct session *s, const char *p, size_t n)
{
	struct imap *st = s->ps;
	size_t took = p && st ? literal_bytes(st, p, n) : 0;
	if (!p || !st || st->lit_left == 0) {
		s->tap = NULL;
	}
	return took;
}

/* May the literal about to be the next token be a literal8 ("~{n}", whose
 * NULs are kept)? Only an APPEND message (RFC 3516: no astring comes after
 * the mailbox) and a SETMETADATA value, the second of each pair after "("
 * (RFC 5464); never a mailbox or an entry name. */
static int literal8_ok(const struct imap_cmd *c, int append, int setmeta)
{
	if (append) {
		return 1;
	}
	return setmeta && c->ntok >= 5 && c->tok[3].type == IMAP_LPAREN && (c->ntok - 4) % 2 == 1;
}

/* A literal announced: checks it against the limits, then waits for it. */
static void literal_start(struct session *s, struct imap *st, uint64_t n, int nonsync)
{
	struct imap_cmd *c = &st->cmd;
	int append = c->ntok >= 3 && rl_strcasecmp(imap_tok_str(c, 1), "APPEND") == 0 &&
	             st->state != I_NOAUTH;
	int setmeta = c->ntok >= 2 && rl_strcasecmp(imap_tok_str(c, 1), "SETMETADATA") == 0 &&
	              st->state != I_NOAUTH;
	int spooled = append && n > IMAP_SPOOL_MIN && !st->sp;
	int bin_ok = !c->literal8 || literal8_ok(c, append, setmeta);
	int rc = -1;
	take_tag(st);
	if (!valid_tag(c) || (st->state == I_NOAUTH && n > IMAP_PREAUTH_LITERAL) ||
	        !bin_ok) {
		rc = -1; /* before login, literals only for names and passwords; "~{n}" only
		            for APPEND's message (RFC 3516) and METADATA values (RFC 5464) */
	} else if (spooled && !nonsync && quota_exceeded(st->domain, st->user, 1, n)) {
		rc = -2; /* refused before the client sends it: no upload thrown away */
	} else if (spooled && n <= conf.message_size_limit) {
		st->sp = xmalloc(sizeof *st->sp);
		spool_init(st->sp, spool_dir(st));
		rc = imap_cmd_literal_begin(c, n, 1);
	} else if (!spooled) {
		rc = imap_cmd_literal_begin(c, n, 0);
	}
	if (rc != 0) {
		cmd_done(st);
		if (nonsync) {
			/* RFC 7888 4: the bytes are on their way; closing is what stops them */
			session_printf(s, "* BYE [TOOBIG] Literal too large\r\n");
			session_close(s, "literal too large");
		} else if (!bin_ok) {
			bad(s, st, "A binary literal is only for APPEND and METADATA values");
		} else if (rc == -2) {
			no(s, st, "[OVERQUOTA] The message does not fit the mailbox's quota");
		} else if (append) {
			no(s, st, "[TOOBIG] Message too large");
		} else if (setmeta) {
			no(s, st, "[METADATA MAXSIZE %d] Value too long", MD_VALUE_MAX);
		} else {
			bad(s, st, "Literal too large");
		}
		return;
	}
	st->lit_left = n;
	if (n) {
		s->tap = literal_tap;
	}
	if (!nonsync) {
		session_printf(s, "+ Ready for literal data\r\n");
	}
}

static void command_line(struct session *s, struct imap *st, const char *line, size_t len)
{
	uint64_t lit = 0;
	int nonsync = 0;
	const char *error;
	int rc = imap_cmd_line(&st->cmd, line, len, &lit, &nonsync, &error);
	if (rc == IMAP_PARSE_LITERAL) {
		literal_start(s, st, lit, nonsync);
		if (st->lit_left == 0 && st->cmd.ntok) {
			imap_cmd_literal_end(&st->cmd); /* {0} */
		}
		return;
	}
	take_tag(st);
	if (rc == IMAP_PARSE_ERROR || !valid_tag(&st->cmd) || st->cmd.ntok < 2) {
		if (st->cmd.ntok == 0 && rc == IMAP_PARSE_DONE) {
			cmd_done(st); /* an empty line */
			return;
		}
		bad(s, st, "%s", rc == IMAP_PARSE_ERROR ? error : "Missing tag or command");
	} else {
		execute(s, st);
	}
	if (!st->hook_wait) {
		cmd_done(st); /* else once the hook has decided */
	}
}

static void imap_line(struct session *s, char *line, size_t len)
{
	struct imap *st = s->ps;
	int complete = line[len - 1] == '\n';
	if (st->skip_line || !complete) {
		if (!st->skip_line) {
			cmd_done(st);
			sasl_end(st);
			rl_strlcpy(st->tag, "*", sizeof st->tag);
			bad(s, st, "Line too long");
		}
		st->skip_line = !complete;
		return;
	}
	line[--len] = '\0';
	if (len && line[len - 1] == '\r') {
		line[--len] = '\0';
	}
	if (st->sasl && st->sasl->step != SASL_IDLE) {
		const char *challenge = ""; /* never logged: it holds the password */
		enum sasl_result r = crypto_sasl_step(st->sasl, line, &challenge);
		auth_result(s, st, r, challenge);
	} else if (st->idling) {
		idle_done(s, st, line);
	} else {
		command_line(s, st, line, len);
	}
}

/* ---- the protocol ---- */

static void imap_open(struct session *s)
{
	struct imap *st = xcalloc(1, sizeof *st);
	s->ps = st;
	imap_cmd_init(&st->cmd);
	rl_strlcpy(st->tag, "*", sizeof st->tag);
	enter_state(s, st, I_NOAUTH);
	after_hook(s, st, NULL, NULL, rl_hook(s, "accept", NULL, NULL));
}

static void imap_busy(struct session *s)
{
	session_printf(s, "* BYE [UNAVAILABLE] Too many connections from %s\r\n", s->peer);
}

static void imap_timeout(struct session *s)
{
	session_printf(s, "* BYE Autologout; idle for too long\r\n");
}

static void imap_shutdown(struct session *s)
{
	session_printf(s, "* BYE Server shutting down\r\n");
}

/* Nothing is lost by closing between commands: every change is on disk
 * when its tagged OK goes out. */
static int imap_can_stop(struct session *s)
{
	struct imap *st = s->ps;
	return !st || (!st->job && !st->scan && !st->lit_left);
}

static void imap_close(struct session *s)
{
	struct imap *st = s->ps;
	if (!st) {
		return;
	}
	if (st->state != I_NOAUTH && st->login[0]) {
		rl_mail_user(s, st->login, 0);
	}
	rl_hook(s, "close", NULL, NULL);
	sasl_end(st); /* no password left in freed memory */
	job_done(st);
	imap__scan_free(st);
	close_box(st); /* no more rings: the view's watch ends with it */
	session_bell_free(st->bell);
	cmd_done(st);
	imap_cmd_free(&st->cmd);
	xfree(st->spdir);
	memset(st->login, 0, sizeof st->login);
	free(st);
	s->ps = NULL;
}

/* What Lua hooks see: session.user once logged in */
static void imap_info(struct session *s, struct proto_info *pi)
{
	struct imap *st = s->ps;
	pi->user = st->state != I_NOAUTH && st->login[0] ? st->login : NULL;
}

const struct proto imap_proto = {
        .name = "imap4",
        .line_max = IMAP_LINE_MAX + 2,
        .open = imap_open,
        .line = imap_line,
        .timeout = imap_timeout,
        .writable = imap_writable,
        .close = imap_close,
        .busy = imap_busy,
        .can_stop = imap_can_stop,
        .shutdown = imap_shutdown,
        .info = imap_info,
        .hooked = imap_hooked,
};
