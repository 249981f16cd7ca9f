/*
 * smtp.c - the inbound SMTP server (RFC 5321), a state machine fed with
 * lines by session.c.
 *
 * Commands are rows of one table: the verb, the states in which the
 * command is allowed, whether it takes an argument, and its action. The
 * DATA body is routed before the table: only CRLF "." CRLF after a line
 * that itself ended in CRLF ends it, so a bare LF or CR cannot end a
 * message early and smuggle a second one. Bare LF line ends inside the
 * body are stored as CRLF; dots are unstuffed.
 *
 * At the end of DATA the message goes to queue_commit(); the session is
 * paused (pipelined commands wait in its buffer) until the commit posts
 * back, and only then is 250 sent: the message is on disk by then.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "rumble.h"

#define SMTP_LINE_MAX 4096 /* pieces of DATA lines; commands must fit */
#define SMTP_CMD_MAX 2048  /* RFC 5321 4.5.3.1.4 says 512; extensions add */
#define SMTP_JUNK_MAX 100  /* NOOP, RSET, VRFY, HELP without a message */
#define ADDR_MAX 320

enum smtp_state { S_START, S_HELO, S_MAIL, S_RCPT, S_DATA, S_COMMIT };
#define ANY ((1 << S_START) | (1 << S_HELO) | (1 << S_MAIL) | (1 << S_RCPT))
#define ST(x) (1 << (x))

struct smtp {
	enum smtp_state state;
	char helo[256];
	int esmtp;
	struct sasl sasl; /* an AUTH exchange; sasl.step != SASL_IDLE while under way */
	char user[MM_USER_MAX + MM_DOMAIN_MAX + 2]; /* authenticated as, or "" */
	int errors, junk;
	int skip_line; /* the rest of an over-long command line is dropped */
	struct queue_msg *msg;
	uint64_t data_len;
	int too_big, line_start, prev_crlf;
	int spf;         /* this transaction's SPF result (enum spf_result), -1: none */
	/* a MAIL command waiting for its SPF check: the command, its
	 * address, where its parameters start */
	char *spf_raw, *spf_from;
	size_t spf_params;
	/* a Lua hook waiting for the client (RL_WAIT): what it is about */
	const struct cmd *hook_cmd; /* NULL: the greeting */
	char *hook_arg;
	/* the SMTPScript instance (lua/vpop3.c), NULL without one */
	struct rl_vp3 *vp;
	struct buf vout;   /* a reply the script gave */
	uint64_t max_size; /* MessageSizeLimit, or less as the script says */
	int nmsgs;         /* messages accepted in this session */
	uint64_t line_len; /* of the body line being received */
	uint64_t declared; /* MAIL's SIZE= (RFC 1870), 0 when not given */
	int too_long;      /* a body line went past the script's MaxLineLength */
};

struct cmd {
	const char *verb;
	int states; /* where it is allowed */
	int arg;    /* 1 required, 0 forbidden, -1 optional */
	void (*run)(struct session *s, struct smtp *st, char *arg);
};

static const char *state_names[] = {"start", "helo", "mail", "rcpt", "data", "commit"};

static void enter_state(struct session *s, struct smtp *st, enum smtp_state next)
{
	if (st->state != next) {
		log_debug("%08x smtp %s -> %s", s->id, state_names[st->state], state_names[next]);
	}
	st->state = next;
}

static void count_error(struct session *s, struct smtp *st, int code)
{
	if (code >= 500 && ++st->errors >= conf.max_errors) {
		session_printf(s, "421 4.7.0 %s Error: too many errors\r\n", conf.server_name);
		session_close(s, "too many errors");
	}
}

static void reply(struct session *s, int code, const char *fmt, ...) RL_PRINTF(3, 4);
static void reply(struct session *s, int code, const char *fmt, ...)
{
	struct smtp *st = s->ps;
	session_printf(s, "%d ", code);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	session_write(s, "\r\n", 2);
	count_error(s, st, code);
}

/* Sends the reply an SMTPScript callback gave (code, st->vout) instead
 * of ours; 0 when it gave none. */
static int said(struct session *s, struct smtp *st, int code)
{
	if (code) {
		session_write(s, st->vout.data, st->vout.len);
		count_error(s, st, code);
	}
	return code;
}

/* DoNOOP and the like: the script's reply, or 0. */
static int vp_simple(struct smtp *st, const char *fn, const char *arg)
{
	return st->vp ? rl_vp3_simple(st->vp, fn, arg, &st->vout) : 0;
}

/* A local sender: authenticated, or let relay by the script; not when
 * the script says the client's address is not a valid one. */
static int sender_local(struct smtp *st)
{
	if (!st->vp) {
		return st->user[0] != '\0';
	}
	struct rl_vp3_vars *g = rl_vp3_vars(st->vp);
	return g->valid && (st->user[0] || g->local);
}

static void txn_reset(struct session *s, struct smtp *st)
{
	if (st->msg) {
		queue_msg_free(st->msg);
		st->msg = NULL;
	}
	st->too_big = 0;
	st->data_len = 0;
	st->declared = 0;
	st->spf = -1;
	enter_state(s, st, st->state == S_START ? S_START : S_HELO);
}

/* ---- addresses ---- */

static int valid_local(const char *p, size_t n)
{
	if (n == 0 || n > MM_USER_MAX + 2) {
		return 0;
	}
	if (p[0] == '"') {
		return n >= 2 && p[n - 1] == '"';
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= ' ' || c == 0x7f || strchr("()<>[]:;@\\,\"", c)) {
			return 0;
		}
	}
	return p[0] != '.' && p[n - 1] != '.' && !strstr(p, "..");
}

static int valid_domain_part(const char *d)
{
	if (d[0] == '[') {
		size_t n = strlen(d);
		return n > 2 && d[n - 1] == ']' &&
		       strspn(d + 1, "0123456789abcdefABCDEF.:IPv6") == n - 2;
	}
	for (const char *p = d; *p; p++) {
		if ((unsigned char)*p >= 0x80) {
			return 1; /* SMTPUTF8 domain: checked by the lookup, never a path */
		}
	}
	return mm_valid_domain(d);
}

/* see rumble.h */
int smtp_parse_path(char *arg, const char *prefix, char *addr, size_t addrlen, char **params)
{
	size_t plen = strlen(prefix);
	if (rl_strncasecmp(arg, prefix, plen) != 0) {
		return -1;
	}
	char *p = arg + plen;
	while (*p == ' ') {
		p++; /* "MAIL FROM: <a@b>" is common enough to accept */
	}
	char *end;
	if (*p == '<') {
		end = strchr(++p, '>');
		if (!end) {
			return -1;
		}
	} else {
		end = p + strcspn(p, " ");
	}
	size_t n = (size_t)(end - p);
	if (n >= addrlen || n > 256) {
		return -1;
	}
	memcpy(addr, p, n);
	addr[n] = '\0';
	if (*end == '>') {
		end++;
	}
	if (*end && *end != ' ') {
		return -1;
	}
	while (*end == ' ') {
		end++;
	}
	*params = end;
	if (n == 0) {
		return 0; /* the null path <> */
	}
	char *at = strrchr(addr, '@');
	if (addr[0] == '@') {
		char *colon = strchr(addr, ':'); /* source route: ignored (RFC 5321 4.1.2) */
		if (!colon) {
			return -1;
		}
		memmove(addr, colon + 1, strlen(colon));
		at = strrchr(addr, '@');
	}
	if (!at || !valid_local(addr, (size_t)(at - addr)) || !valid_domain_part(at + 1)) {
		return -1;
	}
	return 0;
}

/* ---- commands ---- */

static int helo_ok(const char *name)
{
	if (!conf.enforce_fqdn) {
		return 1;
	}
	if (name[0] == '[') {
		return valid_domain_part(name);
	}
	return strchr(name, '.') && mm_valid_domain(name);
}

/* The EHLO reply: the greeting line (the script's 2xx text when code
 * says so), then the capabilities, which the script may change. */
static void ehlo_reply(struct session *s, struct smtp *st, int code)
{
	struct buf caps;
	buf_init(&caps);
	buf_printf(&caps, "PIPELINING\r\nSIZE %llu\r\n8BITMIME\r\nENHANCEDSTATUSCODES\r\n",
	        (unsigned long long)st->max_size);
	if (server_has_tls() && !session_secure(s)) {
		buf_printf(&caps, "STARTTLS\r\n");
	}
	if (session_auth_allowed(s) && !st->user[0]) {
		buf_printf(&caps, "AUTH PLAIN LOGIN\r\n");
	}
	buf_printf(&caps, "SMTPUTF8\r\n");
	if (st->vp) {
		rl_vp3_caps(st->vp, st->helo, &caps);
	}
	if (code >= 200 && code < 300) {
		const char *g = st->vout.data + 4; /* "250 text\r\n..." */
		session_printf(s, "250%c%.*s\r\n", caps.len ? '-' : ' ', (int)strcspn(g, "\r"), g);
	} else {
		session_printf(s, "250%c%s Hello %s [%s]\r\n", caps.len ? '-' : ' ',
		        conf.server_name, st->helo, s->peer);
	}
	for (size_t i = 0; i < caps.len;) {
		size_t n = strcspn(caps.data + i, "\r");
		session_printf(s, "250%c%.*s\r\n", i + n + 2 < caps.len ? '-' : ' ', (int)n,
		        caps.data + i);
		i += n + 2;
	}
	buf_free(&caps);
}

static void greet_helo(struct session *s, struct smtp *st, char *arg, int esmtp)
{
	arg[strcspn(arg, " ")] = '\0';
	int too_long = strlen(arg) >= sizeof st->helo, refuse = too_long || !helo_ok(arg), code = 0;
	if (st->vp) {
		code = rl_vp3_helo(st->vp, arg, esmtp, &refuse, &st->max_size, &st->vout);
	}
	if (refuse || too_long) {
		if (code < 400 || !said(s, st, code)) {
			reply(s, 504,
			        "5.5.2 <%s>: Helo command rejected: need fully-qualified hostname",
			        arg);
		}
		return;
	}
	txn_reset(s, st);
	rl_strlcpy(st->helo, arg, sizeof st->helo);
	st->esmtp = esmtp;
	enter_state(s, st, S_HELO);
	if (esmtp) {
		ehlo_reply(s, st, code);
	} else if (code < 200 || code >= 300 || !said(s, st, code)) {
		reply(s, 250, "%s", conf.server_name);
	}
}

static void cmd_helo(struct session *s, struct smtp *st, char *arg)
{
	greet_helo(s, st, arg, 0);
}

static void cmd_ehlo(struct session *s, struct smtp *st, char *arg)
{
	greet_helo(s, st, arg, 1);
}

/* MAIL parameters (RFC 1870, 6152, 6531); -1 after a reply. */
static int mail_params(struct session *s, char *params, uint64_t max_size, uint64_t *declared)
{
	for (char *p = params, *next; *p; p = next) {
		next = p + strcspn(p, " ");
		if (*next) {
			*next++ = '\0';
		}
		if (!*p) {
			continue;
		}
		if (rl_strncasecmp(p, "SIZE=", 5) == 0) {
			char *end;
			unsigned long long n = strtoull(p + 5, &end, 10);
			if (*end || !isdigit((unsigned char)p[5])) {
				reply(s, 501, "5.5.4 Bad SIZE parameter");
				return -1;
			}
			if (n > max_size) {
				reply(s, 552, "5.3.4 Message size exceeds fixed limit");
				return -1;
			}
			*declared = n;
		} else if (rl_strcasecmp(p, "BODY=8BITMIME") == 0 ||
		           rl_strcasecmp(p, "BODY=7BIT") == 0 ||
		           rl_strcasecmp(p, "SMTPUTF8") == 0) {
			/* accepted: the store is 8-bit clean */
		} else {
			reply(s, 555, "5.5.4 Unsupported parameter %.64s", p);
			return -1;
		}
	}
	return 0;
}

/* An authenticated user may send as itself, with the null sender, or as
 * an alias that forwards to it. */
static int sender_owned(const char *user, const char *from)
{
	struct mm_account a;
	if (!from[0] || !rl_strcasecmp(from, user)) {
		return 1;
	}
	if (queue_classify(from, &a) != RCPT_LOCAL || a.type != MM_ALIAS) {
		return 0;
	}
	for (char *p = a.args, *next; *p; p = next) {
		next = p + strcspn(p, " ,;\t");
		if (*next) {
			*next++ = '\0';
		}
		if (!rl_strcasecmp(p, user)) {
			return 1;
		}
	}
	return 0;
}

/* MaxMessagesPerLocalSession and DoMAILFROM, which may rewrite addr:
 * the script's reply code (0: none), or -1 when it is answered. */
static int mail_script(
        struct session *s, struct smtp *st, char *raw, char *addr, size_t addrlen, char *params)
{
	int most = rl_vp3_vars(st->vp)->max_msgs_local;
	if (sender_local(st) && most && st->nmsgs >= most) {
		reply(s, 452, "4.5.3 Error: too many messages in this session");
		return -1;
	}
	const char *spf = st->spf >= 0 ? spf_name((enum spf_result)st->spf) : "none";
	int code = rl_vp3_mail(st->vp, raw + 5, spf, addr, addrlen, params, st->user, &st->vout);
	if (code >= 400) {
		said(s, st, code);
		return -1;
	}
	return code;
}

/* MAIL's end: the SMTPScript's say, then the transaction starts. */
static void mail_accept(
        struct session *s, struct smtp *st, char *raw, char *addr, size_t addrlen, char *params)
{
	int code = st->vp ? mail_script(s, st, raw, addr, addrlen, params) : 0;
	if (code < 0) {
		return;
	}
	st->msg = queue_msg_new(addr);
	st->junk = 0;
	enter_state(s, st, S_MAIL);
	if (!said(s, st, code)) {
		reply(s, 250, "2.1.0 Ok");
	}
}

/* SPF (spf.c) on the SMTP port, for clients that are not this host and
 * did not log in. */
static int spf_wanted(struct session *s, struct smtp *st)
{
	return conf.spf_check && strcmp(s->svc->name, "smtp") == 0 && !session_is_local(s) &&
	       !sender_local(st);
}

/* The SPF check of a waiting MAIL is done: refuse a fail (SPFReject), or
 * go on with the command. */
static void spf_checked(struct session *s, enum spf_result r)
{
	struct smtp *st = s->ps;
	char *raw = st->spf_raw, addr[ADDR_MAX];
	rl_strlcpy(addr, st->spf_from, sizeof addr);
	xfree(st->spf_from);
	st->spf_raw = NULL;
	st->spf = (int)r;
	session_resume(s);
	log_info("%08x smtp spf=%s from=<%s> client=%s helo=%s", s->id, spf_name(r), addr, s->peer,
	        st->helo);
	if (r == SPF_FAIL && conf.spf_reject) {
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 550, "5.7.23 <%s>: SPF: %s is not allowed to send mail for this domain", addr,
		        s->peer);
	} else {
		mail_accept(s, st, raw, addr, sizeof addr, raw + st->spf_params);
	}
	free(raw);
}

static void cmd_mail(struct session *s, struct smtp *st, char *arg)
{
	char addr[ADDR_MAX], *params, raw[SMTP_CMD_MAX + 1];
	if (st->state == S_START) {
		reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	}
	int auth_first =
	        (s->svc->flags & SVC_AUTH_FIRST) || (st->vp && rl_vp3_vars(st->vp)->auth_required);
	if (auth_first && !st->user[0]) {
		reply(s, 530, "5.7.0 Authentication required");
		return;
	}
	if (smtp_parse_path(arg, "FROM:", addr, sizeof addr, &params) != 0) {
		reply(s, 501, "5.1.7 Bad sender address syntax");
		return;
	}
	if (st->user[0] && conf.auth_sender_match && !sender_owned(st->user, addr)) {
		reply(s, 553, "5.7.1 <%s>: Sender address rejected: not owned by user %s", addr,
		        st->user);
		return;
	}
	rl_strlcpy(raw, arg, sizeof raw); /* mail_params cuts params up */
	st->declared = 0;
	if ((*params && !st->esmtp) || mail_params(s, params, st->max_size, &st->declared) != 0) {
		if (!st->esmtp && *params) {
			reply(s, 555, "5.5.4 Parameters need EHLO");
		}
		return;
	}
	if (spf_wanted(s, st)) {
		st->spf_raw = xstrdup(raw);
		st->spf_from = xstrdup(addr);
		st->spf_params = (size_t)(params - arg);
		session_pause(s); /* pipelined commands wait for the verdict */
		spf_check_session(s, st->helo, addr, spf_checked);
		return;
	}
	mail_accept(s, st, raw, addr, sizeof addr, raw + (params - arg));
}

static void rcpt_take(struct session *s, struct smtp *st, const char *addr, int code)
{
	queue_msg_add_rcpt(st->msg, addr);
	enter_state(s, st, S_RCPT);
	if (!said(s, st, code)) {
		reply(s, 250, "2.1.5 Ok");
	}
}

/* MaxRecipients, or less as the script's MaxRecipientsPer* say. */
static int rcpt_max(struct smtp *st)
{
	if (!st->vp) {
		return conf.max_recipients;
	}
	struct rl_vp3_vars *g = rl_vp3_vars(st->vp);
	return sender_local(st) ? g->max_rcpt_local : g->max_rcpt_in;
}

/* Greylisting (greylist.c) on the SMTP port, for clients that are not
 * this host and did not log in: 1 when it answered 451. */
static int greylisted(struct session *s, struct smtp *st, const char *rcpt)
{
	if (!conf.greylist || strcmp(s->svc->name, "smtp") != 0 || session_is_local(s) ||
	        sender_local(st)) {
		return 0;
	}
	int wait = greylist_check(greylist_key(s->peer, st->msg->from, rcpt), os_time());
	if (wait > 0) {
		log_info("%08x smtp greylisted from=<%s> to=<%s> client=%s wait=%ds", s->id,
		        st->msg->from, rcpt, s->peer, wait);
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 451, "4.7.1 <%s>: Recipient address rejected: Greylisted, try again later",
		        rcpt);
	}
	return wait > 0;
}

/* A mailbox known to be full (or too full for MAIL's SIZE) is refused
 * for now at RCPT (RFC 3463 4.2.2); 1 when it answered. Aliases are
 * checked when the message is delivered. */
static int mailbox_full(struct session *s, struct smtp *st, const struct mm_account *a,
        const char *rcpt)
{
	if (a->type != MM_MBOX ||
	        !quota_exceeded(a->domain, a->user, 1, st->declared ? st->declared : 1)) {
		return 0;
	}
	log_info("%08x smtp over quota from=<%s> to=<%s>", s->id, st->msg->from, rcpt);
	os_atomic_add_long(&s->svc->rejected, 1);
	reply(s, 452, "4.2.2 <%s>: Mailbox full", rcpt);
	return 1;
}

static void cmd_rcpt(struct session *s, struct smtp *st, char *arg)
{
	char addr[ADDR_MAX], *params;
	if (smtp_parse_path(arg, "TO:", addr, sizeof addr, &params) != 0 || !addr[0]) {
		reply(s, 501, "5.1.3 Bad recipient address syntax");
		return;
	}
	if (*params) {
		reply(s, 555, "5.5.4 Unsupported parameter %.64s", params);
		return;
	}
	if (st->msg->nrcpt >= rcpt_max(st)) {
		reply(s, 452, "4.5.3 Error: too many recipients");
		return;
	}
	int code = st->vp ? rl_vp3_rcpt(st->vp, arg + 3, addr, params, st->msg, &st->vout) : 0;
	if (code >= 400) {
		said(s, st, code);
		return;
	}
	struct mm_account acct;
	switch (queue_classify(addr, &acct)) {
	case RCPT_LOCAL:
		if (!greylisted(s, st, addr) && !mailbox_full(s, st, &acct, addr)) {
			rcpt_take(s, st, addr, code);
		}
		return;
	case RCPT_UNKNOWN:
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 550, "5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		return;
	case RCPT_REMOTE:
		if (sender_local(st) && !conf.block_outgoing) {
			rcpt_take(s, st, addr, code);
			return;
		}
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 554, "5.7.1 <%s>: Relay access denied", addr);
		return;
	case RCPT_BAD:
		break;
	}
	reply(s, 501, "5.1.3 Bad recipient address syntax");
}

static void rfc5322_date(int64_t t, char *out, size_t len)
{
	struct tm tm;
	os_gmtime(t, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* RFC 3848 names for the Received: header's "with". */
static const char *with_protocol(struct session *s, struct smtp *st)
{
	static const char *names[] = {
	        "SMTP", "ESMTP", "ESMTPS", "ESMTPS", "SMTP", "ESMTPA", "ESMTPSA", "ESMTPSA"};
	return names[(st->esmtp ? 1 : 0) | (session_secure(s) ? 2 : 0) | (st->user[0] ? 4 : 0)];
}

/* RFC 7208 9.1: the result for the header section, above Received. */
static void received_spf(struct buf *h, struct session *s, struct smtp *st)
{
	static const char *const why[] = {"no SPF record for", "neither permits nor denies",
	        "designates", "does not designate", "does not designate (softfail)",
	        "could not be checked (temporary error) for", "has a broken SPF record for"};
	const char *from = st->msg->from;
	buf_printf(h,
	        "Received-SPF: %s (%s: domain of %s %s %s as permitted sender)\r\n"
	        "\tclient-ip=%s; envelope-from=<%s>; helo=%s;\r\n",
	        spf_name((enum spf_result)st->spf), conf.server_name, *from ? from : "<>",
	        why[st->spf], s->peer, s->peer, from, st->helo);
}

static void cmd_data(struct session *s, struct smtp *st, char *arg)
{
	if (st->state != S_RCPT) {
		reply(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	struct queue_msg *m = st->msg;
	char date[64], tls_note[160] = "";
	struct buf h, added;
	buf_init(&added);
	int code = st->vp ? rl_vp3_data(st->vp, m, &added, &st->vout) : 0;
	if (code >= 400) {
		said(s, st, code);
		buf_free(&added);
		return;
	}
	buf_init(&h);
	if (session_secure(s)) {
		snprintf(tls_note, sizeof tls_note, "\t(using %s with cipher %s (%d/%d bits))\r\n",
		        tls_version(s->tls), tls_cipher(s->tls), tls_cipher_bits(s->tls),
		        tls_cipher_bits(s->tls));
	}
	rfc5322_date(m->date, date, sizeof date);
	if (st->spf >= 0) {
		received_spf(&h, s, st);
	}
	buf_printf(&h,
	        "Received: from %s ([%s])\r\n%s\tby %s (Rumble) with %s id "
	        "%016llx%s%s%s;\r\n\t%s\r\n",
	        st->helo, s->peer, tls_note, conf.server_name, with_protocol(s, st),
	        (unsigned long long)m->qid, m->nrcpt == 1 ? "\r\n\tfor <" : "",
	        m->nrcpt == 1 ? m->rcpts[0] : "", m->nrcpt == 1 ? ">" : "", date);
	buf_append(&h, added.data ? added.data : "", added.len); /* DoDATAStart's headers */
	spool_write(&m->body, h.data, h.len);
	buf_free(&h);
	buf_free(&added);
	st->data_len = st->line_len = 0;
	st->too_long = 0;
	st->line_start = st->prev_crlf = 1;
	enter_state(s, st, S_DATA);
	if (code != 354 || !said(s, st, code)) {
		reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	}
	if (st->vp) {
		rl_vp3_line(st->vp, "StartMessage", NULL, 0);
	}
}

/* ---- AUTH (RFC 4954) ---- */

struct auth_try {
	char login[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	int ok;
};

/* Answers a finished login; runs after the failure delay. */
static void auth_answer(struct session *s, void *arg)
{
	struct auth_try *t = arg;
	struct smtp *st = s->ps;
	if (st) {
		if (t->ok && st->vp && !rl_vp3_user_allowed(st->vp, t->login)) {
			log_info("%08x smtp login user=%s not in AllowedUsers", s->id, t->login);
			t->ok = 0;
		}
		if (t->ok) {
			rl_strlcpy(st->user, t->login, sizeof st->user);
			log_info("%08x smtp login user=%s", s->id, st->user);
			reply(s, 235, "2.7.0 Authentication successful");
		} else {
			reply(s, 535, "5.7.8 Error: authentication failed");
		}
		session_resume(s);
	}
	free(t);
}

/* The password was checked (work_login): answer now, or after the
 * failure delay. */
static void auth_checked(struct session *s, int rc, const struct mm_account *a, const char *login)
{
	struct auth_try *t = xcalloc(1, sizeof *t);
	t->ok = rc == 0;
	if (t->ok) {
		snprintf(t->login, sizeof t->login, "%s@%s", a->user, a->domain);
		session_login_ok(s->peer);
		auth_answer(s, t);
		return;
	}
	rl_strlcpy(t->login, login, sizeof t->login);
	log_info("%08x smtp login failed user=%s from=%s", s->id, login, s->peer);
	session_after(s, session_login_failed(s->peer), auth_answer, t);
}

static void auth_check(struct session *s, struct smtp *st, const char *login, const char *pw)
{
	(void)st;
	session_pause(s); /* answer later, holding no thread */
	work_login(s, login, pw, auth_checked);
}

/* What the SASL exchange said: a challenge, a login to check, or the end. */
static void auth_result(
        struct session *s, struct smtp *st, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CHALLENGE:
		session_printf(s, "334 %s\r\n", challenge);
		return;
	case SASL_DONE:
		auth_check(s, st, st->sasl.login, st->sasl.password);
		break;
	case SASL_MALFORMED:
		reply(s, 501, "5.5.2 Error: malformed authentication response");
		break;
	case SASL_CANCELLED:
		reply(s, 501, "5.7.0 Authentication aborted");
		break;
	case SASL_NOMECH:
		reply(s, 504, "5.5.4 Unrecognized authentication type");
		break;
	}
	crypto_sasl_reset(&st->sasl);
}

static void cmd_auth(struct session *s, struct smtp *st, char *arg)
{
	char *initial = arg + strcspn(arg, " ");
	if (*initial) {
		*initial++ = '\0';
	}
	if (st->user[0]) {
		reply(s, 503, "5.5.1 Error: already authenticated");
	} else if (st->state == S_MAIL || st->state == S_RCPT) {
		reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
	} else if (!session_auth_allowed(s)) {
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	} else if (session_login_blocked(s->peer)) {
		reply(s, 454, "4.7.0 Too many failed logins, try again later");
	} else {
		const char *challenge = "";
		enum sasl_result r = crypto_sasl_start(&st->sasl, arg, initial, &challenge);
		auth_result(s, st, r, challenge); /* r first: it sets challenge */
	}
}

/* RFC 3207: after the handshake the session starts over, as if just
 * connected (no HELO, no AUTH, no transaction). */
static void cmd_starttls(struct session *s, struct smtp *st, char *arg)
{
	if (session_secure(s) || !server_has_tls()) {
		reply(s, 503, "5.5.1 Error: TLS already active or not available");
		return;
	}
	reply(s, 220, "2.0.0 Ready to start TLS");
	txn_reset(s, st);
	st->helo[0] = st->user[0] = '\0';
	st->esmtp = 0;
	enter_state(s, st, S_START);
	session_starttls(s);
}

static void cmd_rset(struct session *s, struct smtp *st, char *arg)
{
	txn_reset(s, st);
	if (!said(s, st, vp_simple(st, "DoRSET", NULL))) {
		reply(s, 250, "2.0.0 Ok");
	}
}

static void cmd_noop(struct session *s, struct smtp *st, char *arg)
{
	if (!said(s, st, vp_simple(st, "DoNOOP", NULL))) {
		reply(s, 250, "2.0.0 Ok");
	}
}

/* VRFY and EXPN: our reply, or the script's (DoVRFY, DoEXPN). */
static void verify(
        struct session *s, struct smtp *st, const char *fn, const char *arg, const char *ours)
{
	int code = st->vp ? rl_vp3_verify(st->vp, fn, arg, ours, &st->vout) : 0;
	if (!said(s, st, code)) {
		session_printf(s, "%s\r\n", ours);
		count_error(s, st, atoi(ours));
	}
}

static void cmd_vrfy(struct session *s, struct smtp *st, char *arg)
{
	/* Telling who exists helps address harvesters (RFC 5321 7.3). */
	verify(s, st, "DoVRFY", arg,
	        "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, struct smtp *st, char *arg)
{
	verify(s, st, "DoEXPN", arg, "502 5.5.1 Error: EXPN not available");
}

static void cmd_help(struct session *s, struct smtp *st, char *arg)
{
	static const char text[] =
	        "214 2.0.0 Commands: HELO EHLO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT";
	if (!said(s, st, vp_simple(st, "DoHELP", text))) {
		session_printf(s, "%s\r\n", text);
	}
}

static void cmd_quit(struct session *s, struct smtp *st, char *arg)
{
	if (!said(s, st, vp_simple(st, "DoQUIT", NULL))) {
		reply(s, 221, "2.0.0 %s closing connection", conf.server_name);
	}
	session_close(s, "quit");
}

static const struct cmd commands[] = {
        {"HELO", ANY, 1, cmd_helo},
        {"EHLO", ANY, 1, cmd_ehlo},
        {"MAIL", ST(S_START) | ST(S_HELO), 1, cmd_mail},
        {"RCPT", ST(S_MAIL) | ST(S_RCPT), 1, cmd_rcpt},
        {"DATA", ST(S_MAIL) | ST(S_RCPT), 0, cmd_data},
        {"RSET", ANY, 0, cmd_rset},
        {"NOOP", ANY, -1, cmd_noop},
        {"VRFY", ANY, 1, cmd_vrfy},
        {"EXPN", ANY, 1, cmd_expn},
        {"HELP", ANY, -1, cmd_help},
        {"QUIT", ANY, 0, cmd_quit},
        {"AUTH", ST(S_HELO) | ST(S_MAIL) | ST(S_RCPT), 1, cmd_auth},
        {"STARTTLS", ST(S_HELO), 0, cmd_starttls},
};

static void greet(struct session *s)
{
	struct smtp *st = s->ps;
	int code = st->vp ? rl_vp3_start(st->vp, &st->vout) : 0; /* VPOP3's Start() */
	if (!said(s, st, code)) {
		session_printf(s, "220 %s ESMTP Rumble\r\n", conf.server_name);
	}
	if (code >= 400) {
		session_close(s, "refused by SMTPScript Start");
	}
}

/* Goes on with the greeting (c NULL) or command c as the Lua hooks
 * decided; a hook that waits for the client decides later (smtp_hooked). */
static void after_hook(
        struct session *s, struct smtp *st, const struct cmd *c, char *arg, enum rl_verdict v)
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
			greet(s);
		}
	}
}

static void smtp_hooked(struct session *s, enum rl_verdict v)
{
	struct smtp *st = s->ps;
	char *arg = st->hook_arg;
	st->hook_arg = NULL;
	after_hook(s, st, st->hook_cmd, arg, v);
	free(arg);
}

static int is_junk(const struct cmd *c)
{
	return c->run == cmd_noop || c->run == cmd_rset || c->run == cmd_vrfy ||
	       c->run == cmd_help || c->run == cmd_expn;
}

/* A command we do not know: 500, or what DoUnrecognised says. */
static void unknown(struct session *s, struct smtp *st, char *line)
{
	if (st->vp && ++st->junk > SMTP_JUNK_MAX) {
		session_printf(s, "421 4.7.0 %s Error: too many commands\r\n", conf.server_name);
		session_close(s, "junk commands");
	} else if (!said(s, st, vp_simple(st, "DoUnrecognised", line))) {
		reply(s, 500, "5.5.2 Error: command not recognized");
	}
}

static void command(struct session *s, struct smtp *st, char *line)
{
	char *arg = line + strcspn(line, " ");
	char *space = *arg ? arg : NULL; /* to give DoUnrecognised the line whole */
	if (*arg) {
		*arg++ = '\0';
	}
	const struct cmd *c = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (rl_strcasecmp(line, commands[i].verb) == 0) {
			c = &commands[i];
		}
	}
	if (!c) {
		if (space) {
			*space = ' ';
		}
		unknown(s, st, line);
	} else if (c->arg == 1 && !*arg) {
		reply(s, 501, "5.5.4 Syntax: %s needs an argument", c->verb);
	} else if (c->arg == 0 && *arg) {
		reply(s, 501, "5.5.4 Syntax: %s takes no argument", c->verb);
	} else if (!(c->states & ST(st->state))) {
		reply(s, 503, "5.5.1 Error: bad sequence of commands");
	} else if (is_junk(c) && ++st->junk > SMTP_JUNK_MAX) {
		session_printf(s, "421 4.7.0 %s Error: too many commands\r\n", conf.server_name);
		session_close(s, "junk commands");
	} else {
		after_hook(s, st, c, arg, rl_hook(s, "command", c->verb, arg)); /* Rumble.setHook */
	}
}

/* ---- the message body ---- */

static void commit_done(struct session *s, void *arg)
{
	struct smtp *st = s->ps;
	struct queue_msg *m = arg;
	if (!st) {
		queue_msg_free(m); /* the session ended meanwhile */
		return;
	}
	if (m->status == 0) {
		st->nmsgs++;
		os_atomic_add_long(&s->svc->received, 1);
		reply(s, 250, "2.0.0 Ok: queued as %016llx", (unsigned long long)m->qid);
	} else if (m->status == QUEUE_FULL) {
		reply(s, 552, "5.2.2 Error: mailbox full, the message does not fit its quota");
	} else {
		reply(s, 451, "4.3.0 Error: could not store the message, try again later");
	}
	st->msg = m;
	txn_reset(s, st);
	session_resume(s);
}

/* EndMessage, CheckRecipients and ProcessMessage: 0 to queue m, else
 * answered (refused, or blackholed with a 250 as if queued). */
static int script_verdict(struct session *s, struct smtp *st, struct queue_msg *m)
{
	rl_vp3_line(st->vp, "EndMessage", NULL, 0);
	int rc = rl_vp3_message(st->vp, m, st->user, &st->vout);
	if (rc == 0 && m->body.failed) { /* written again for HeaderModifiers */
		reply(s, 451, "4.3.0 Error: could not spool the message, try again later");
		return 451;
	}
	if (rc == 2) {
		log_info("%08x smtp message %016llx discarded by SMTPScript", s->id,
		        (unsigned long long)m->qid);
		st->nmsgs++;
		reply(s, 250, "2.0.0 Ok: queued as %016llx", (unsigned long long)m->qid);
	} else if (rc) {
		log_info("%08x smtp message refused by SMTPScript", s->id);
		said(s, st, rc);
	}
	return rc;
}

static void end_data(struct session *s, struct smtp *st)
{
	struct queue_msg *m = st->msg;
	if (st->too_big) {
		reply(s, 552, "5.3.4 Error: message size exceeds fixed limit");
		txn_reset(s, st);
		return;
	}
	if (m->body.failed) {
		reply(s, 451, "4.3.0 Error: could not spool the message, try again later");
		txn_reset(s, st);
		return;
	}
	if (st->too_long) {
		reply(s, 552, "5.6.0 Error: line longer than MaxLineLength");
		txn_reset(s, st);
		return;
	}
	if (st->vp && script_verdict(s, st, m) != 0) {
		txn_reset(s, st);
		return;
	}
	st->msg = NULL;
	enter_state(s, st, S_COMMIT);
	session_pause(s);
	queue_commit(s, m, commit_done);
}

static void body_write(struct smtp *st, const char *p, size_t n)
{
	st->data_len += n;
	if (st->data_len > st->max_size) {
		st->too_big = 1; /* keep reading to the end, store nothing more */
		return;
	}
	spool_write(&st->msg->body, p, n);
}

/* A body line (or piece) for the script: MessageLineRaw and the
 * MaxLineLength count (eol: the bytes of the line end). */
static void script_line(struct smtp *st, const char *line, size_t len, int eol)
{
	int max = rl_vp3_vars(st->vp)->max_line;
	st->line_len = (st->line_start ? 0 : st->line_len) + len - (size_t)eol;
	if (max && st->line_len > (uint64_t)max) {
		st->too_long = 1;
	}
	rl_vp3_line(st->vp, "MessageLineRaw", line, len);
}

static void data_line(struct session *s, struct smtp *st, char *line, size_t len)
{
	int complete = line[len - 1] == '\n';
	int crlf = complete && len >= 2 && line[len - 2] == '\r';
	if (st->line_start && st->prev_crlf && len == 3 && memcmp(line, ".\r\n", 3) == 0) {
		end_data(s, st);
		return;
	}
	if (st->vp) {
		script_line(st, line, len, complete + crlf);
	}
	if (st->line_start && line[0] == '.') {
		line++; /* dot-stuffing, RFC 5321 4.5.2 */
		len--;
	}
	if (st->vp) {
		rl_vp3_line(st->vp, "MessageLine", line, len);
	}
	if (complete && !crlf) {
		body_write(st, line, len - 1); /* bare LF: stored as CRLF */
		body_write(st, "\r\n", 2);
	} else {
		body_write(st, line, len);
	}
	st->line_start = complete;
	st->prev_crlf = crlf;
}

/* ---- the protocol ---- */

/* The DNSBL lookups are done: refuse a listed client, else go on. */
static void dnsbl_done(struct session *s, const char *zone)
{
	struct smtp *st = s->ps;
	if (zone) {
		log_info("%08x smtp client %s listed by %s", s->id, s->peer, zone);
		os_atomic_add_long(&s->svc->rejected, 1);
		session_printf(s, "554 5.7.1 Service unavailable; client [%s] blocked using %s\r\n",
		        s->peer, zone);
		session_close(s, "listed by DNSBL");
		return;
	}
	session_resume(s);
	after_hook(s, st, NULL, NULL, rl_hook(s, "accept", NULL, NULL));
}

static void smtp_open(struct session *s)
{
	struct smtp *st = xcalloc(1, sizeof *st);
	s->ps = st;
	buf_init(&st->vout);
	st->max_size = conf.message_size_limit;
	st->vp = rl_vp3_open(s, &st->max_size); /* NULL without an SMTPScript */
	st->spf = -1;
	if (strcmp(s->svc->name, "smtp") == 0 && dnsbl_wanted(s)) {
		session_pause(s); /* an early talker waits for the verdict */
		dnsbl_check(s, dnsbl_done);
		return;
	}
	after_hook(s, st, NULL, NULL, rl_hook(s, "accept", NULL, NULL));
}

static void smtp_line(struct session *s, char *line, size_t len)
{
	struct smtp *st = s->ps;
	if (st->state == S_DATA) {
		data_line(s, st, line, len);
		return;
	}
	int complete = line[len - 1] == '\n';
	if (st->skip_line || !complete || len > SMTP_CMD_MAX) {
		if (!st->skip_line) {
			reply(s, 500, "5.5.2 Error: line too long");
		}
		st->skip_line = !complete;
		return;
	}
	line[--len] = '\0';
	if (len && line[len - 1] == '\r') {
		line[--len] = '\0';
	}
	if (memchr(line, '\0', len)) {
		reply(s, 500, "5.5.2 Error: NUL in command");
		return;
	}
	if (st->sasl.step != SASL_IDLE) {
		const char *challenge = ""; /* a continuation, not a command (not logged) */
		enum sasl_result r = crypto_sasl_step(&st->sasl, line, &challenge);
		auth_result(s, st, r, challenge);
		return;
	}
	command(s, st, line);
}

static void smtp_timeout(struct session *s)
{
	session_printf(s, "421 4.4.2 %s Error: timeout exceeded\r\n", conf.server_name);
}

static int smtp_can_stop(struct session *s)
{
	struct smtp *st = s->ps;
	return st->state <= S_HELO && st->sasl.step == SASL_IDLE;
}

static void smtp_shutdown(struct session *s)
{
	session_printf(s, "421 4.3.2 %s Service shutting down\r\n", conf.server_name);
}

static void smtp_busy(struct session *s)
{
	session_printf(s, "421 4.7.0 %s Error: too many connections from %s\r\n", conf.server_name,
	        s->peer);
}

static void smtp_close(struct session *s)
{
	struct smtp *st = s->ps;
	if (st) {
		rl_hook(s, "close", NULL, NULL);
		rl_vp3_close(st->vp); /* End() */
		buf_free(&st->vout);
		crypto_sasl_reset(&st->sasl); /* no password left in freed memory */
		free(st->hook_arg);
		free(st->spf_raw); /* a MAIL whose SPF check was under way */
		free(st->spf_from);
		if (st->msg) {
			queue_msg_free(st->msg);
		}
		free(st);
		s->ps = NULL;
	}
}

/* What Lua hooks see: session.helo, .sender, .recipients, .user */
static void smtp_info(struct session *s, struct proto_info *pi)
{
	struct smtp *st = s->ps;
	pi->helo = st->helo;
	pi->user = st->user;
	if (st->msg) {
		pi->sender = st->msg->from;
		pi->rcpts = st->msg->rcpts;
		pi->nrcpt = st->msg->nrcpt;
	}
}

const struct proto smtp_proto = {
        .name = "smtp",
        .line_max = SMTP_LINE_MAX,
        .open = smtp_open,
        .line = smtp_line,
        .timeout = smtp_timeout,
        .close = smtp_close,
        .busy = smtp_busy,
        .can_stop = smtp_can_stop,
        .shutdown = smtp_shutdown,
        .info = smtp_info,
        .hooked = smtp_hooked,
};
