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
 *
 * What to accept is not decided here: at each step (connect, each
 * command, HELO, MAIL, RCPT, DATA, the end of the message, AUTH) the
 * policy chain (policy.h: DNSBL, SPF, greylisting, quotas, the SMTPScript
 * and Rumble hooks) is run, and its verdict continues the step.
 *
 * Every outcome is one log line in a fixed key=value form (README, "Logs"):
 * result=accepted when a message is queued, result=refused for every 4xx
 * or 5xx reply, whoever decided it (this file or a module of the chain),
 * logged where all replies go out (reply, said, greet), so no refusal
 * needs a line of its own.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "policy.h"

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
	struct policy *pol; /* the policy chain's state for this session */
	int nmsgs;          /* messages accepted in this session */
	uint64_t declared;  /* MAIL's SIZE= (RFC 1870), 0 when not given */
	/* for the log: the step under way (a command's verb, "connect",
	 * "eom"), the address of the RCPT under way, the login AUTH tried */
	char step[12];
	char rcpt[ADDR_MAX];
	char tried[MM_USER_MAX + MM_DOMAIN_MAX + 2];
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

/* ---- the log's outcome lines ---- */

/* "<a>,<b>" for the log: the transaction's recipients, or the one RCPT
 * under way; "none". Cut with ",..." past n. */
static const char *log_rcpts(struct smtp *st, int rcpt_step, char *out, size_t n)
{
	char v[ADDR_MAX];
	size_t len = 0;
	int count = rcpt_step ? 1 : st->msg ? st->msg->nrcpt : 0;
	rl_strlcpy(out, "none", n);
	for (int i = 0; i < count; i++) {
		log_value(v, sizeof v, rcpt_step ? st->rcpt : st->msg->rcpts[i], 0);
		if (len + strlen(v) + 8 > n) {
			snprintf(out + len, n - len, ",...");
			break;
		}
		len += (size_t)snprintf(out + len, n - len, "%s<%s>", i ? "," : "", v);
	}
	return out;
}

/* The transaction's sender for the log: "<a>", "<>", or none before MAIL. */
static const char *log_from(struct smtp *st, char *out, size_t n)
{
	char v[ADDR_MAX];
	if (!st->msg) {
		return "none";
	}
	snprintf(out, n, "<%s>", log_value(v, sizeof v, st->msg->from, 0));
	return out;
}

/* A 4xx/5xx reply: one result=refused line. text is the reply after its
 * code ("5.1.1 <a>: ..."), len bytes. Syntax, sequence and parameter
 * errors (X.5.Y codes, RFC 3463's protocol status; 500-504 without a
 * code) are a client's bugs, not decisions: at LogLevel debug. */
static void log_refused(struct session *s, struct smtp *st, int code, const char *text, size_t len)
{
	char status[16] = "none", reason[256], helo[64], user[80], from[ADDR_MAX + 2], to[600];
	size_t sn = strspn(text, "0123456789.");
	if (sn > 4 && sn < sizeof status && text[1] == '.' && (text[sn] == ' ' || sn == len)) {
		memcpy(status, text, sn); /* an enhanced status code, RFC 3463 */
		status[sn] = '\0';
		text += sn + (sn < len);
		len -= sn + (sn < len);
	}
	char raw[256];
	snprintf(raw, sizeof raw, "%.*s", (int)(len < sizeof raw ? len : sizeof raw - 1), text);
	raw[strcspn(raw, "\r\n")] = '\0';
	const char *who = st->user[0] ? st->user : !strcmp(st->step, "auth") ? st->tried : "";
	int protocol = status[0] != 'n' ? status[2] == '5' : code >= 500 && code <= 504;
	log_msg(protocol ? LOG_DEBUG : LOG_INFO,
	        "%08x smtp result=refused client=%s code=%d status=%s cmd=%s user=%s helo=%s "
	        "from=%s to=%s reason=\"%s\"",
	        s->id, s->peer, code, status, st->step,
	        *who ? log_value(user, sizeof user, who, 0) : "none",
	        st->helo[0] ? log_value(helo, sizeof helo, st->helo, 0) : "none",
	        log_from(st, from, sizeof from),
	        log_rcpts(st, !strcmp(st->step, "rcpt") && st->rcpt[0], to, sizeof to),
	        log_value(reason, sizeof reason, raw, 1));
}

/* A message is queued (or taken away by a script, result=discarded). */
static void log_accepted(struct session *s, struct smtp *st, struct queue_msg *m, const char *r)
{
	char helo[64], from[ADDR_MAX + 2], to[600];
	int tls = session_secure(s);
	struct queue_msg *keep = st->msg;
	st->msg = m;
	log_info("%08x smtp result=%s client=%s qid=%016llx size=%llu tls=%s cipher=%s user=%s "
	         "helo=%s from=%s rcpts=%d to=%s",
	        s->id, r, s->peer, (unsigned long long)m->qid, (unsigned long long)m->body.len,
	        tls ? tls_version(s->tls) : "none", tls ? tls_cipher(s->tls) : "none",
	        st->user[0] ? st->user : "none",
	        st->helo[0] ? log_value(helo, sizeof helo, st->helo, 0) : "none",
	        log_from(st, from, sizeof from), m->nrcpt, log_rcpts(st, 0, to, sizeof to));
	st->msg = keep;
}

static void count_error(struct session *s, struct smtp *st, int code)
{
	stats_reply(code);
	if (code >= 500 && ++st->errors >= conf.max_errors) {
		static const char why[] = "4.7.0 Error: too many errors";
		session_printf(s, "421 4.7.0 %s Error: too many errors\r\n", conf.server_name);
		log_refused(s, st, 421, why, sizeof why - 1);
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
	if (code >= 400) {
		char text[512];
		va_list copy;
		va_copy(copy, ap);
		int n = vsnprintf(text, sizeof text, fmt, copy);
		va_end(copy);
		size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
		log_refused(s, st, code, text, len);
	}
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	session_write(s, "\r\n", 2);
	count_error(s, st, code);
}

/* Sends the reply the policy chain gave (a reply code, in c->reply)
 * instead of ours; 0 when it gave none (or a code without its text). */
static int said(struct session *s, struct policy_call *c, int code)
{
	if (code <= 0 || !c->reply.len) {
		return 0;
	}
	if (code >= 400 && c->reply.len > 4) {
		log_refused(s, s->ps, code, c->reply.data + 4, c->reply.len - 4);
	}
	session_write(s, c->reply.data, c->reply.len);
	count_error(s, s->ps, code);
	return 1;
}

/* A refusal by the chain: its reply, or a plain one when the module
 * gave none. */
static void refused(struct session *s, struct policy_call *c, int code)
{
	if (!said(s, c, code)) {
		reply(s, code, "%d.7.1 Error: refused by policy", code / 100);
	}
}

/* The verdicts that end a step whatever it is: a module closed the
 * session, answered the client itself, or refused. 1 when v is one. */
static int stopped(struct session *s, struct policy_call *c, int v)
{
	if (v == POLICY_DROP) {
		session_close(s, "dropped by script");
	} else if (v >= 400) {
		refused(s, c, v);
	}
	return v == POLICY_DROP || v == POLICY_DONE || v >= 400;
}

/* A policy call for step with what every step sees. */
static struct policy_call *call(struct smtp *st, enum policy_step step)
{
	struct policy_call *c = policy_call_new(st->pol, step);
	c->helo = st->helo;
	c->esmtp = st->esmtp;
	c->user = st->user;
	c->nmsgs = st->nmsgs;
	c->size = st->declared;
	c->msg = st->msg;
	return c;
}

/* NOOP and the like: the chain's reply instead of ours (a line without
 * CRLF), else ours. */
static void answer(
        struct session *s, struct smtp *st, const char *verb, const char *arg, const char *ours)
{
	struct policy_call *c = call(st, POLICY_VERB);
	c->verb = verb;
	c->arg = xstrdup(arg ? arg : "");
	c->ours = ours;
	if (!said(s, c, policy_ask(c))) {
		session_printf(s, "%s\r\n", ours);
		count_error(s, st, atoi(ours));
	}
	policy_call_free(c);
}

/* A local sender: authenticated, or let relay by a script; not when a
 * script says the client's address is not a valid one. */
static int sender_local(struct smtp *st)
{
	return policy_local(st->pol, st->user);
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
	policy_reset(st->pol);
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
	if (!at && !rl_strcasecmp(prefix, "TO:") && !rl_strcasecmp(addr, "postmaster")) {
		return 0; /* RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>", no domain */
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

/* The EHLO reply: the greeting line (the chain's 2xx text when code
 * says so, in greeting), then the capabilities, which the chain may
 * change. */
static void ehlo_reply(struct session *s, struct smtp *st, int code, const struct buf *greeting)
{
	struct policy_call *c = call(st, POLICY_CAPS);
	struct buf *caps = &c->caps;
	buf_printf(caps, "PIPELINING\r\nSIZE %llu\r\n8BITMIME\r\nENHANCEDSTATUSCODES\r\n",
	        (unsigned long long)policy_limits(st->pol)->max_size);
	if (server_has_tls() && !session_secure(s)) {
		buf_printf(caps, "STARTTLS\r\n");
	}
	if (session_auth_allowed(s) && !st->user[0]) {
		buf_printf(caps, "AUTH PLAIN LOGIN\r\n");
	}
	buf_printf(caps, "SMTPUTF8\r\n");
	policy_ask(c);
	if (code >= 200 && code < 300) {
		const char *g = greeting->data + 4; /* "250 text\r\n..." */
		session_printf(s, "250%c%.*s\r\n", caps->len ? '-' : ' ', (int)strcspn(g, "\r"), g);
	} else {
		session_printf(s, "250%c%s Hello %s [%s]\r\n", caps->len ? '-' : ' ',
		        conf.server_name, st->helo, s->peer);
	}
	for (size_t i = 0; i < caps->len;) {
		size_t n = strcspn(caps->data + i, "\r");
		session_printf(s, "250%c%.*s\r\n", i + n + 2 < caps->len ? '-' : ' ', (int)n,
		        caps->data + i);
		i += n + 2;
	}
	policy_call_free(c);
}

/* HELO/EHLO: the chain may refuse the name (or let one we refuse) and
 * give its own greeting. */
static void greet_helo(struct session *s, struct smtp *st, char *arg, int esmtp)
{
	arg[strcspn(arg, " ")] = '\0';
	int too_long = strlen(arg) >= sizeof st->helo;
	struct policy_call *c = call(st, POLICY_HELO);
	c->arg = xstrdup(arg);
	c->esmtp = esmtp;
	c->refuse = too_long || !helo_ok(arg);
	int code = policy_ask(c);
	if (c->refuse || too_long) {
		if (code < 400 || !said(s, c, code)) {
			reply(s, 504,
			        "5.5.2 <%s>: Helo command rejected: need fully-qualified hostname",
			        arg);
		}
	} else {
		txn_reset(s, st);
		rl_strlcpy(st->helo, arg, sizeof st->helo);
		st->esmtp = esmtp;
		enter_state(s, st, S_HELO);
		if (esmtp) {
			ehlo_reply(s, st, code, &c->reply);
		} else if (code < 200 || code >= 300 || !said(s, c, code)) {
			reply(s, 250, "%s", conf.server_name);
		}
	}
	policy_call_free(c);
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

/* MAIL's verdict: refused, or the transaction starts (the chain may
 * have rewritten the address and given its own reply). */
static void mail_checked(struct session *s, struct policy_call *c, int v)
{
	struct smtp *st = s->ps;
	if (stopped(s, c, v)) {
		return;
	}
	st->msg = queue_msg_new(c->addr);
	st->junk = 0;
	enter_state(s, st, S_MAIL);
	if (!said(s, c, v)) {
		reply(s, 250, "2.1.0 Ok");
	}
}

static void cmd_mail(struct session *s, struct smtp *st, char *arg)
{
	char addr[ADDR_MAX], *params, raw[SMTP_CMD_MAX + 1];
	if (st->state == S_START) {
		reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	}
	int auth_first = (s->svc->flags & SVC_AUTH_FIRST) || policy_limits(st->pol)->auth_required;
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
	uint64_t max = policy_limits(st->pol)->max_size;
	if ((*params && !st->esmtp) || mail_params(s, params, max, &st->declared) != 0) {
		if (!st->esmtp && *params) {
			reply(s, 555, "5.5.4 Parameters need EHLO");
		}
		return;
	}
	struct policy_call *c = call(st, POLICY_MAIL);
	c->arg = xstrdup(raw);
	c->params = c->arg + (params - arg);
	rl_strlcpy(c->addr, addr, sizeof c->addr);
	policy_run(c, mail_checked);
}

/* MaxRecipients, or less as the chain's limits say. */
static int rcpt_max(struct smtp *st)
{
	const struct policy_limits *l = policy_limits(st->pol);
	return sender_local(st) ? l->max_rcpt_local : l->max_rcpt_in;
}

/* RCPT's verdict: refused by the chain, else by what the address is. */
static void rcpt_checked(struct session *s, struct policy_call *c, int v)
{
	struct smtp *st = s->ps;
	const char *addr = c->addr;
	if (stopped(s, c, v)) {
		return;
	}
	switch ((enum rcpt_kind)c->kind) {
	case RCPT_LOCAL:
		break;
	case RCPT_UNKNOWN:
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 550, "5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		return;
	case RCPT_REMOTE:
		if (sender_local(st) && !conf.block_outgoing) {
			break;
		}
		os_atomic_add_long(&s->svc->rejected, 1);
		reply(s, 554, "5.7.1 <%s>: Relay access denied", addr);
		return;
	case RCPT_BAD:
		reply(s, 501, "5.1.3 Bad recipient address syntax");
		return;
	}
	queue_msg_add_rcpt(st->msg, addr);
	enter_state(s, st, S_RCPT);
	if (!said(s, c, v)) {
		reply(s, 250, "2.1.5 Ok");
	}
}

static void cmd_rcpt(struct session *s, struct smtp *st, char *arg)
{
	char addr[ADDR_MAX], *params;
	if (smtp_parse_path(arg, "TO:", addr, sizeof addr, &params) != 0 || !addr[0]) {
		reply(s, 501, "5.1.3 Bad recipient address syntax");
		return;
	}
	rl_strlcpy(st->rcpt, addr, sizeof st->rcpt);
	if (*params) {
		reply(s, 555, "5.5.4 Unsupported parameter %.64s", params);
		return;
	}
	if (st->msg->nrcpt >= rcpt_max(st)) {
		reply(s, 452, "4.5.3 Error: too many recipients");
		return;
	}
	struct policy_call *c = call(st, POLICY_RCPT);
	c->arg = xstrdup(arg);
	c->params = c->arg + (params - arg);
	rl_strlcpy(c->addr, addr, sizeof c->addr);
	c->kind = (int)queue_classify(addr, &c->account);
	if (c->kind == RCPT_LOCAL) {
		c->acct = &c->account; /* greylisting and quotas are for local mailboxes */
	}
	policy_run(c, rcpt_checked);
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

/* DATA's verdict: refused, or the message starts with the chain's
 * trace fields, our Received field and the chain's other fields. */
static void data_checked(struct session *s, struct policy_call *c, int v)
{
	struct smtp *st = s->ps;
	struct queue_msg *m = st->msg;
	char date[64], tls_note[160] = "";
	if (stopped(s, c, v)) {
		return;
	}
	struct buf *h = &c->above;
	if (session_secure(s)) {
		snprintf(tls_note, sizeof tls_note, "\t(using %s with cipher %s (%d/%d bits))\r\n",
		        tls_version(s->tls), tls_cipher(s->tls), tls_cipher_bits(s->tls),
		        tls_cipher_bits(s->tls));
	}
	rfc5322_date(m->date, date, sizeof date);
	buf_printf(h,
	        "Received: from %s ([%s])\r\n%s\tby %s (Rumble) with %s id "
	        "%016llx%s%s%s;\r\n\t%s\r\n",
	        st->helo, s->peer, tls_note, conf.server_name, with_protocol(s, st),
	        (unsigned long long)m->qid, m->nrcpt == 1 ? "\r\n\tfor <" : "",
	        m->nrcpt == 1 ? m->rcpts[0] : "", m->nrcpt == 1 ? ">" : "", date);
	buf_append(h, c->below.data ? c->below.data : "", c->below.len);
	spool_write(&m->body, h->data, h->len);
	st->data_len = 0;
	st->line_start = st->prev_crlf = 1;
	enter_state(s, st, S_DATA);
	if (v != 354 || !said(s, c, v)) {
		reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	}
}

static void cmd_data(struct session *s, struct smtp *st, char *arg)
{
	if (st->state != S_RCPT) {
		reply(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	policy_run(call(st, POLICY_DATA), data_checked);
}

/* ---- AUTH (RFC 4954) ---- */

struct auth_try {
	char login[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	int ok;
};

/* A login the chain let in, or not. */
static void auth_allowed(struct session *s, struct policy_call *c, int v)
{
	struct smtp *st = s->ps;
	if (v == POLICY_DROP) {
		session_close(s, "dropped by script");
	} else if (v >= 400) {
		reply(s, 535, "5.7.8 Error: authentication failed"); /* ours: says nothing more */
	} else if (v != POLICY_DONE) {
		rl_strlcpy(st->user, c->addr, sizeof st->user);
		log_info("%08x smtp result=login client=%s user=%s", s->id, s->peer, st->user);
		reply(s, 235, "2.7.0 Authentication successful");
	}
	session_resume(s);
}

/* Answers a finished login; runs after the failure delay. */
static void auth_answer(struct session *s, void *arg)
{
	struct auth_try *t = arg;
	struct smtp *st = s->ps;
	if (st && t->ok) {
		struct policy_call *c = call(st, POLICY_AUTH);
		rl_strlcpy(c->addr, t->login, sizeof c->addr);
		policy_run(c, auth_allowed);
	} else if (st) {
		reply(s, 535, "5.7.8 Error: authentication failed");
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
		session_login_ok(s->peer, login);
		auth_answer(s, t);
		return;
	}
	rl_strlcpy(t->login, login, sizeof t->login);
	session_after(s, session_login_failed(s->peer, login), auth_answer, t);
}

static void auth_check(struct session *s, struct smtp *st, const char *login, const char *pw)
{
	rl_strlcpy(st->tried, login, sizeof st->tried); /* the user= of a refusal's log line */
	if (session_login_blocked(s->peer, login)) {
		reply(s, 454, "4.7.0 Too many failed logins, try again later");
		return;
	}
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
	st->tried[0] = '\0';
	if (st->user[0]) {
		reply(s, 503, "5.5.1 Error: already authenticated");
	} else if (st->state == S_MAIL || st->state == S_RCPT) {
		reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
	} else if (!session_auth_allowed(s)) {
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	} else if (session_login_blocked(s->peer, NULL)) {
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
	answer(s, st, "RSET", NULL, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, struct smtp *st, char *arg)
{
	answer(s, st, "NOOP", NULL, "250 2.0.0 Ok");
}

static void cmd_vrfy(struct session *s, struct smtp *st, char *arg)
{
	/* Telling who exists helps address harvesters (RFC 5321 7.3). */
	answer(s, st, "VRFY", arg,
	        "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, struct smtp *st, char *arg)
{
	answer(s, st, "EXPN", arg, "502 5.5.1 Error: EXPN not available");
}

static void cmd_help(struct session *s, struct smtp *st, char *arg)
{
	answer(s, st, "HELP", NULL,
	        "214 2.0.0 Commands: HELO EHLO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
}

static void cmd_quit(struct session *s, struct smtp *st, char *arg)
{
	char ours[320];
	snprintf(ours, sizeof ours, "221 2.0.0 %s closing connection", conf.server_name);
	answer(s, st, "QUIT", NULL, ours);
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

/* The connection's verdict: the greeting (ours, or the chain's), or a
 * refusal that ends the session. */
static void greet(struct session *s, struct policy_call *c, int v)
{
	if (v == POLICY_DROP) {
		session_close(s, "dropped by script");
	} else if (v >= 400) {
		stats_reply(v);
		log_refused(s, s->ps, v, c->reply.len > 4 ? c->reply.data + 4 : "", c->reply.len > 4 ? c->reply.len - 4 : 0);
		session_write(s, c->reply.data, c->reply.len);
		session_close(s, c->why ? c->why : "refused");
	} else if (v != POLICY_DONE && !said(s, c, v)) {
		session_printf(s, "220 %s ESMTP Rumble\r\n", conf.server_name);
	}
}

static const struct cmd *find_command(const char *verb)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (rl_strcasecmp(verb, commands[i].verb) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

/* The chain let the command go on (a Rumble hook may have waited for
 * the client, or answered it itself). */
static void command_checked(struct session *s, struct policy_call *c, int v)
{
	if (!stopped(s, c, v)) {
		find_command(c->verb)->run(s, s->ps, c->arg);
	}
}

static int is_junk(const struct cmd *c)
{
	return c->run == cmd_noop || c->run == cmd_rset || c->run == cmd_vrfy ||
	       c->run == cmd_help || c->run == cmd_expn;
}

static void too_many_commands(struct session *s, struct smtp *st)
{
	static const char why[] = "4.7.0 Error: too many commands";
	session_printf(s, "421 4.7.0 %s Error: too many commands\r\n", conf.server_name);
	log_refused(s, st, 421, why, sizeof why - 1);
	session_close(s, "junk commands");
}

/* A command we do not know: 500, or what the chain says (a script's
 * DoUnrecognised may accept it, so it counts as junk too). */
static void unknown(struct session *s, struct smtp *st, char *line)
{
	if (++st->junk > SMTP_JUNK_MAX) {
		too_many_commands(s, st);
	} else {
		answer(s, st, NULL, line, "500 5.5.2 Error: command not recognized");
	}
}

static void command(struct session *s, struct smtp *st, char *line)
{
	char *arg = line + strcspn(line, " ");
	char *space = *arg ? arg : NULL; /* to give DoUnrecognised the line whole */
	if (*arg) {
		*arg++ = '\0';
	}
	const struct cmd *c = find_command(line);
	rl_strlcpy(st->step, c ? c->verb : "unknown", sizeof st->step);
	rl_lower(st->step);
	st->rcpt[0] = '\0';
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
		too_many_commands(s, st);
	} else {
		struct policy_call *pc = call(st, POLICY_COMMAND);
		pc->verb = c->verb;
		pc->arg = xstrdup(arg);
		policy_run(pc, command_checked);
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
		stats_count(STATS_IN);
		log_accepted(s, st, m, "accepted");
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

/* The end of the message's verdict: refused, taken away by the chain
 * (answered as if queued), or committed with the chain's header fields
 * in front. */
static void eom_checked(struct session *s, struct policy_call *c, int v)
{
	struct smtp *st = s->ps;
	struct queue_msg *m = st->msg;
	if (v == POLICY_DISCARD) {
		st->nmsgs++;
		log_accepted(s, st, m, "discarded");
		reply(s, 250, "2.0.0 Ok: queued as %016llx", (unsigned long long)m->qid);
	} else if (stopped(s, c, v)) {
		/* refused */
	} else if (policy_prepend(&m->body, &c->above) != 0 || m->body.failed) {
		reply(s, 451, "4.3.0 Error: could not spool the message, try again later");
	} else {
		st->msg = NULL;
		queue_commit(s, m, commit_done); /* the session stays paused */
		return;
	}
	txn_reset(s, st);
	session_resume(s);
}

static void end_data(struct session *s, struct smtp *st)
{
	struct queue_msg *m = st->msg;
	rl_strlcpy(st->step, "eom", sizeof st->step);
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
	enter_state(s, st, S_COMMIT);
	session_pause(s); /* pipelined commands wait for the verdict and the commit */
	policy_run(call(st, POLICY_EOM), eom_checked);
}

static void body_write(struct smtp *st, const char *p, size_t n)
{
	st->data_len += n;
	if (st->data_len > policy_limits(st->pol)->max_size) {
		st->too_big = 1; /* keep reading to the end, store nothing more */
		return;
	}
	spool_write(&st->msg->body, p, n);
}

static void data_line(struct session *s, struct smtp *st, char *line, size_t len)
{
	int complete = line[len - 1] == '\n';
	int crlf = complete && len >= 2 && line[len - 2] == '\r';
	if (st->line_start && st->prev_crlf && len == 3 && memcmp(line, ".\r\n", 3) == 0) {
		end_data(s, st);
		return;
	}
	const char *raw = line;
	size_t rawlen = len;
	if (st->line_start && line[0] == '.') {
		line++; /* dot-stuffing, RFC 5321 4.5.2 */
		len--;
	}
	policy_body(st->pol, raw, rawlen, line, len, st->line_start);
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

static void smtp_open(struct session *s)
{
	struct smtp *st = xcalloc(1, sizeof *st);
	s->ps = st;
	st->pol = policy_open(s, conf.message_size_limit);
	rl_strlcpy(st->step, "connect", sizeof st->step);
	policy_run(call(st, POLICY_CONNECT), greet);
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
		policy_close(st->pol);        /* the "close" hook, End(), a check under way */
		crypto_sasl_reset(&st->sasl); /* no password left in freed memory */
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
	if (st->pol) { /* what the policy modules found */
		const struct policy_results *r = policy_results(st->pol);
		pi->spf = r->spf;
		pi->dkim = r->dkim;
		pi->dmarc = r->dmarc;
		pi->authres = r->authres;
	}
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
        .hooked = policy_hooked,
};
