/*
 * outbound.c - the SMTP client: mail for other domains (by MX, or through
 * a RelayHost smarthost) and for relay accounts (to the account's host).
 *
 * One call sends one message to the recipients of one domain in one SMTP
 * transaction (RFC 5321 3.3): the domain's MX hosts by preference (equal
 * ones shuffled by dns_mx), each host's addresses in turn, until a server
 * takes the transaction. A host that cannot be reached, or refuses before
 * any recipient is settled (greeting, EHLO, MAIL 4xx, a broken TLS
 * handshake), sends us on to the next; once RCPTs were answered the
 * result stands. Each recipient ends sent, deferred (4xx, no server) or
 * failed (5xx); queue.c turns those into removals, retries and bounces.
 *
 * The client: EHLO (HELO when EHLO is refused), STARTTLS when offered
 * (the certificate is not checked: Postfix's "may" level; if the
 * handshake fails the same address is tried once more without TLS, as
 * mail in clear beats mail not sent), SIZE, 8BITMIME and SMTPUTF8 honoured,
 * no pipelining. Replies are read a bounded line at a time; each waits at
 * most OutboundTimeout seconds (the end of data twice that, RFC 5321
 * 4.5.3.2 scaled down), and a stopping server aborts the wait.
 *
 * It runs on the queue's outbound threads, never an event-loop worker:
 * DNS and the sockets block.
 */
#include <string.h>

#include "rumble.h"

#define OB_LINE_MAX 1000   /* a reply line; RFC 5321 4.5.3.1.5 says 512 */
#define OB_REPLY_LINES 100 /* lines of one reply */
#define OB_HOSTS_MAX 10    /* MX hosts tried per domain */
#define OB_ADDRS_MAX 4     /* addresses tried per host */
#define OB_CONNECT_MS 30000
#define OB_SLICE_MS 500 /* how often a wait checks for a stopping server */

enum {
	EXT_STARTTLS = 1,
	EXT_SIZE = 2,
	EXT_8BITMIME = 4,
	EXT_SMTPUTF8 = 8,
	EXT_AUTH_PLAIN = 16,
	EXT_AUTH_LOGIN = 32,
};

struct ob_conn {
	os_fd fd;
	struct tls *tls;
	char host[DNS_NAME_MAX], addr[DNS_ADDR_MAX];
	uint64_t qid;
	char in[OB_LINE_MAX + 2];
	size_t inlen;
	int code;                /* of the last reply; -1 when none came */
	char text[OB_REPLY_MAX]; /* its lines, joined by spaces, printable */
	unsigned ext;            /* EXT_* from EHLO */
	uint64_t size_max;       /* SIZE n, 0 = none said */
	int tls_failed;          /* the handshake failed: retry in clear */
	const char *tls_source;  /* what asked for TLS: "TLSPolicy", "MTA-STS" */
	int tmo;                 /* ms to wait for each reply */
	int (*stopping)(void);   /* 1: give up waiting (the server stops) */
	int64_t deadline;        /* os_now_ms() to give up at; 0 none (ob_submit's) */
	const char *helo;        /* our name in EHLO/HELO */
	struct buf sig;          /* a DKIM-Signature field sent first, or empty */
};

/* ---- bytes in and out, in clear or through TLS ---- */

/* Waits for the socket to be readable, in slices so that a stopping
 * server is noticed; 1 readable, 0 timeout or stop, -1 error. */
static int ob_wait(struct ob_conn *c, int timeout_ms)
{
	int64_t end = os_now_ms() + timeout_ms;
	if (c->deadline && end > c->deadline) {
		end = c->deadline;
	}
	for (;;) {
		int64_t left = end - os_now_ms();
		if (left <= 0 || c->stopping()) {
			return 0;
		}
		int r = os_wait_readable(c->fd, left < OB_SLICE_MS ? (int)left : OB_SLICE_MS);
		if (r != 0) {
			return r;
		}
	}
}

static long ob_recv_raw(struct ob_conn *c, void *buf, size_t n, int timeout_ms)
{
	if (ob_wait(c, timeout_ms) <= 0) {
		return -1;
	}
	long got = os_read(c->fd, buf, n);
	return got > 0 ? got : -1;
}

static int ob_send_raw(struct ob_conn *c, const void *p, size_t n)
{
	const char *s = p;
	size_t done = 0;
	while (done < n) {
		long w = os_write(c->fd, s + done, n - done);
		if (w <= 0) {
			return -1; /* includes the send timeout */
		}
		done += (size_t)w;
	}
	return 0;
}

/* Sends every record the engine has ready. */
static int tls_push_out(struct ob_conn *c)
{
	size_t n;
	const void *p;
	while ((p = tls_pull_out(c->tls, &n)) != NULL) {
		long w = os_write(c->fd, p, n);
		if (w <= 0) {
			return -1;
		}
		tls_sent(c->tls, (size_t)w);
	}
	return 0;
}

/* One step of the engine that waits for the network: send what is ready,
 * else read ciphertext. -1 when closed or stuck. */
static int tls_step(struct ob_conn *c, int timeout_ms)
{
	unsigned st = tls_state(c->tls);
	if (st & TLS_SENDREC) {
		return tls_push_out(c);
	}
	if (st & TLS_RECVREC) {
		size_t room;
		void *b = tls_in_buf(c->tls, &room);
		long got = b ? ob_recv_raw(c, b, room, timeout_ms) : -1;
		if (got <= 0) {
			return -1;
		}
		tls_in_ack(c->tls, (size_t)got);
		return 0;
	}
	return -1;
}

static int ob_send(struct ob_conn *c, const void *p, size_t n, int timeout_ms)
{
	if (!c->tls) {
		return ob_send_raw(c, p, n);
	}
	const char *s = p;
	size_t done = 0;
	while (done < n) {
		size_t w = tls_write(c->tls, s + done, n - done);
		done += w;
		if (w == 0) {
			tls_flush(c->tls);
			if ((tls_state(c->tls) & (TLS_SENDREC | TLS_SENDAPP)) == 0 ||
			        tls_step(c, timeout_ms) != 0) {
				return -1;
			}
		}
	}
	tls_flush(c->tls);
	return tls_push_out(c);
}

/* More reply bytes into c->in; -1 on error, timeout or end. */
static int ob_fill(struct ob_conn *c, int timeout_ms)
{
	size_t room = sizeof c->in - c->inlen;
	if (!c->tls) {
		long got = ob_recv_raw(c, c->in + c->inlen, room, timeout_ms);
		return got > 0 ? (c->inlen += (size_t)got, 0) : -1;
	}
	for (int i = 0; i < 64; i++) { /* each step moves a record or fails */
		size_t got = tls_read(c->tls, c->in + c->inlen, room);
		if (got > 0) {
			c->inlen += got;
			return 0;
		}
		if (tls_step(c, timeout_ms) != 0) {
			return -1;
		}
	}
	return -1;
}

/* ---- replies ---- */

/* The next line without its end, cut at OB_LINE_MAX (the rest of an
 * over-long line is dropped). -1 on error. */
static int ob_line(struct ob_conn *c, char *out, int timeout_ms)
{
	int cut = 0;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->inlen);
		if (nl) {
			size_t n = (size_t)(nl - c->in);
			if (!cut) {
				size_t keep = n < OB_LINE_MAX ? n : OB_LINE_MAX;
				memcpy(out, c->in, keep);
				out[keep] = '\0';
				out[strcspn(out, "\r")] = '\0';
			}
			memmove(c->in, nl + 1, c->inlen - n - 1);
			c->inlen -= n + 1;
			return 0;
		}
		if (c->inlen >= OB_LINE_MAX) {
			if (!cut) { /* keep the start, drop the rest of the line */
				memcpy(out, c->in, OB_LINE_MAX);
				out[OB_LINE_MAX] = '\0';
			}
			cut = 1;
			c->inlen = 0;
		}
		if (ob_fill(c, timeout_ms) != 0) {
			return -1;
		}
	}
}

static void reply_add(struct ob_conn *c, const char *line)
{
	size_t len = strlen(c->text);
	if (len && len + 1 < sizeof c->text) {
		c->text[len++] = ' ';
	}
	for (const char *p = line; *p && len + 1 < sizeof c->text; p++) {
		unsigned char ch = (unsigned char)*p;
		c->text[len++] = ch < 0x20 || ch == 0x7f || ch == '"' ? ' ' : (char)ch;
	}
	c->text[len] = '\0';
}

/* The mechanisms of an EHLO AUTH line we can use (smtp.send's AUTH). */
static void auth_mechs(struct ob_conn *c, const char *list)
{
	char tmp[OB_LINE_MAX + 1];
	rl_strlcpy(tmp, list, sizeof tmp);
	char *save = NULL;
	for (char *w = os_strtok(tmp, " ", &save); w; w = os_strtok(NULL, " ", &save)) {
		if (!rl_strcasecmp(w, "PLAIN")) {
			c->ext |= EXT_AUTH_PLAIN;
		} else if (!rl_strcasecmp(w, "LOGIN")) {
			c->ext |= EXT_AUTH_LOGIN;
		}
	}
}

/* What an EHLO reply line offers. */
static void ehlo_line(struct ob_conn *c, const char *kw)
{
	if (!rl_strcasecmp(kw, "STARTTLS")) {
		c->ext |= EXT_STARTTLS;
	} else if (!rl_strncasecmp(kw, "SIZE", 4) && (kw[4] == '\0' || kw[4] == ' ')) {
		c->ext |= EXT_SIZE;
		c->size_max = strtoull(kw + 4, NULL, 10);
	} else if (!rl_strcasecmp(kw, "8BITMIME")) {
		c->ext |= EXT_8BITMIME;
	} else if (!rl_strcasecmp(kw, "SMTPUTF8")) {
		c->ext |= EXT_SMTPUTF8;
	} else if (!rl_strncasecmp(kw, "AUTH", 4) && (kw[4] == ' ' || kw[4] == '=')) {
		auth_mechs(c, kw + 5);
	}
}

/* Reads one reply: c->code (-1 when none came) and c->text. */
static int ob_reply(struct ob_conn *c, int timeout_ms, int ehlo)
{
	char line[OB_LINE_MAX + 1];
	c->code = -1;
	c->text[0] = '\0';
	for (int i = 0; i < OB_REPLY_LINES; i++) {
		if (ob_line(c, line, timeout_ms) != 0) {
			rl_strlcpy(c->text, "connection lost or timed out", sizeof c->text);
			return -1;
		}
		int code = atoi(line);
		if (strlen(line) < 3 || code < 200 || code > 599) {
			rl_strlcpy(c->text, "malformed reply", sizeof c->text);
			return c->code = -1;
		}
		if (ehlo && i > 0) {
			ehlo_line(c, line + 4);
		}
		reply_add(c, line);
		if (line[3] != '-') {
			return c->code = code;
		}
	}
	rl_strlcpy(c->text, "reply too long", sizeof c->text);
	return c->code = -1;
}

static int ob_cmd(struct ob_conn *c, const char *cmd, int timeout_ms, int ehlo)
{
	/* AUTH's argument is a secret (smtp.send's AUTH PLAIN) */
	int shown = rl_strncasecmp(cmd, "AUTH ", 5) ? (int)strcspn(cmd, "\r") : 10;
	log_debug("%016llx host=%s >>> %.*s", (unsigned long long)c->qid, c->host, shown, cmd);
	if (ob_send(c, cmd, strlen(cmd), timeout_ms) != 0) {
		rl_strlcpy(c->text, "connection lost while sending", sizeof c->text);
		return c->code = -1;
	}
	return ob_reply(c, timeout_ms, ehlo);
}

/* ---- the transaction ---- */

/* STARTTLS required by the destination's policy but not to be had. */
static int tls_missing(struct ob_conn *c, const char *what)
{
	snprintf(c->text, sizeof c->text, "TLS required by %s, but %.100s %s", c->tls_source,
	        c->host, what);
	return -1;
}

/* The TLS handshake after STARTTLS's 220: 0 when it completed. */
static int ob_handshake(struct ob_conn *c, enum tls_mode mode)
{
	char err[200] = "no randomness";
	if (mode == TLS_VERIFY) {
		const struct tls_anchors *ta = tls_anchors_system(conf.tls_ca_file, err, sizeof err);
		c->tls = ta ? tls_client_new_verified(c->host, ta) : NULL;
	} else {
		c->tls = tls_client_new(c->host);
	}
	for (int i = 0; c->tls && tls_handshaking(c->tls) && i < 10000; i++) {
		if (tls_step(c, c->tmo) != 0) {
			break;
		}
	}
	if (c->tls && !tls_handshaking(c->tls) && !tls_failed(c->tls)) {
		log_info("%016llx host=%s[%s] tls=%s cipher=%s verified=%s",
		        (unsigned long long)c->qid, c->host, c->addr, tls_version(c->tls),
		        tls_cipher(c->tls), mode == TLS_VERIFY ? "yes" : "no");
		return 0;
	}
	if (mode == TLS_VERIFY) {
		snprintf(c->text, sizeof c->text, "TLS required by %s: certificate of %.100s not "
		        "verified: %.100s", c->tls_source, c->host, c->tls ? tls_error(c->tls) : err);
	} else {
		snprintf(c->text, sizeof c->text, "TLS handshake failed: %s",
		        c->tls ? tls_error(c->tls) : err);
	}
	c->tls_failed = mode == TLS_MAY;
	return -1;
}

/* EHLO again once TLS is up (RFC 3207 4.2). */
static int ob_ehlo_again(struct ob_conn *c)
{
	char cmd[300];
	c->ext = 0;
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", c->helo);
	return ob_cmd(c, cmd, c->tmo, 1) == 250 ? 0 : -1;
}

/* Greeting, EHLO (or HELO), STARTTLS and EHLO again. 0 ready for MAIL,
 * -1 try another host (c->text says why). */
static int ob_hello(struct ob_conn *c, enum tls_mode mode)
{
	char cmd[300];
	if (ob_reply(c, c->tmo, 0) != 220) {
		return -1;
	}
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", c->helo);
	if (ob_cmd(c, cmd, c->tmo, 1) != 250) {
		if (c->code < 500 || mode >= TLS_ENCRYPT) {
			return -1;
		}
		c->ext = 0;
		snprintf(cmd, sizeof cmd, "HELO %s\r\n", c->helo);
		return ob_cmd(c, cmd, c->tmo, 0) == 250 ? 0 : -1;
	}
	if (mode == TLS_NONE || !(c->ext & EXT_STARTTLS)) {
		return mode >= TLS_ENCRYPT ? tls_missing(c, "does not offer STARTTLS") : 0;
	}
	if (ob_cmd(c, "STARTTLS\r\n", c->tmo, 0) != 220) {
		if (mode >= TLS_ENCRYPT && c->code >= 0) {
			return tls_missing(c, "refused STARTTLS");
		}
		return c->code >= 0 ? 0 : -1; /* refused: go on in clear */
	}
	c->inlen = 0; /* nothing the server sent before TLS counts */
	return ob_handshake(c, mode) == 0 ? ob_ehlo_again(c) : -1;
}


/* Where ob_stuff is, across calls: at a line's start (BOL), after a CR
 * that may begin a CRLF (CR). */
enum { STUFF_BOL = 1, STUFF_CR = 2 };

/* Appends in[0..n) to out, dot-stuffed (RFC 5321 4.5.2), with a bare CR
 * or LF made a CRLF (RFC 5321 2.3.8: they appear only together; a bare
 * one from a sender would be taken differently by each server on the
 * way, the stuff of SMTP smuggling). *st: the STUFF_* state. */
static void ob_stuff(struct buf *out, const char *in, size_t n, int *st)
{
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (*st & STUFF_CR) {
			buf_append(out, "\n", 1); /* the CRLF's LF, given or not */
			*st = STUFF_BOL;
			if (c == '\n') {
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			buf_append(out, c == '\r' ? "\r" : "\r\n", c == '\r' ? 1 : 2);
			*st = c == '\r' ? STUFF_CR : STUFF_BOL;
			continue;
		}
		if ((*st & STUFF_BOL) && c == '.') {
			buf_append(out, ".", 1);
		}
		buf_append(out, &c, 1);
		*st = 0;
	}
}

/* The end of data after a message that ended a line, ended in a CR, or
 * neither. */
static int ob_data_end(struct ob_conn *c, int st)
{
	const char *end = st & STUFF_CR ? "\n.\r\n" : st & STUFF_BOL ? ".\r\n" : "\r\n.\r\n";
	return ob_send(c, end, strlen(end), c->tmo);
}

/* The message, dot-stuffed (after the DKIM-Signature field, if any),
 * then the end of data. */
static int ob_body(struct ob_conn *c, struct spool *sp)
{
	char in[16384];
	struct buf out;
	buf_init(&out);
	uint64_t off = 0;
	int st = STUFF_BOL, rc = 0;
	long n;
	if (c->sig.len) {
		ob_stuff(&out, c->sig.data, c->sig.len, &st);
	}
	while (rc == 0 && (n = spool_read(sp, off, in, sizeof in)) > 0) {
		ob_stuff(&out, in, (size_t)n, &st);
		off += (uint64_t)n;
		rc = ob_send(c, out.data, out.len, c->tmo);
		buf_reset(&out);
	}
	buf_free(&out);
	if (rc != 0 || n < 0) {
		return -1;
	}
	return ob_data_end(c, st);
}

static int has_8bit(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80) {
			return 1;
		}
	}
	return 0;
}

static int body_8bit(struct spool *sp)
{
	char in[16384];
	uint64_t off = 0;
	long n;
	while ((n = spool_read(sp, off, in, sizeof in)) > 0) {
		for (long i = 0; i < n; i++) {
			if ((unsigned char)in[i] >= 0x80) {
				return 1;
			}
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* "5.1.1" from the start of text when it is an enhanced status code of
 * the reply's class (RFC 3463); else def. */
static void status_of(const char *text, int code, const char *def, char *out, size_t len)
{
	const char *p = text;
	if (strspn(p, "0123456789") == 3 && (p[3] == ' ' || p[3] == '-')) {
		p += 4; /* the reply code */
	}
	size_t n = strspn(p, "0123456789.");
	if (n >= 5 && n < len && p[0] - '0' == code / 100 && p[1] == '.') {
		memcpy(out, p, n);
		out[n] = '\0';
		return;
	}
	rl_strlcpy(out, def, len);
}

static void settle(struct ob_rcpt *r, enum ob_status st, const struct ob_conn *c, const char *text,
        const char *status)
{
	r->status = st;
	r->remote = c && c->code > 0;
	rl_strlcpy(r->host, c ? c->host : "", sizeof r->host);
	rl_strlcpy(r->reply, text, sizeof r->reply);
	if (c && c->code > 0) {
		status_of(text, c->code, status, r->status_code, sizeof r->status_code);
	} else {
		rl_strlcpy(r->status_code, status, sizeof r->status_code);
	}
}

/* Everything still open gets the connection's last answer. */
static void settle_open(struct ob_rcpt *r, int n, const struct ob_conn *c, int only_accepted)
{
	int perm = c->code >= 500;
	for (int i = 0; i < n; i++) {
		if (r[i].status == OB_PENDING || (only_accepted && r[i].status == OB_ACCEPTED)) {
			settle(&r[i], perm ? OB_PERM : OB_TEMP, c, c->text,
			        perm ? "5.0.0" : "4.0.0");
		}
	}
}

static void log_rcpts(const struct ob_conn *c, const struct ob_rcpt *r, int n)
{
	static const char *names[] = {"pending", "accepted", "sent", "deferred", "failed"};
	for (int i = 0; i < n; i++) {
		log_info("%016llx to=<%s> host=%s[%s] tls=%s status=%s reply=\"%s\"",
		        (unsigned long long)c->qid, r[i].addr, c->host, c->addr,
		        c->tls ? "yes" : "no", names[r[i].status], r[i].reply);
	}
}

/* MAIL, RCPTs, DATA on a greeted connection. */
static void ob_transaction(struct ob_conn *c, struct queue_msg *m, struct ob_rcpt *r, int n)
{
	char cmd[1200];
	int utf8 = has_8bit(m->from);
	for (int i = 0; i < n; i++) {
		utf8 |= has_8bit(r[i].addr);
	}
	if (utf8 && !(c->ext & EXT_SMTPUTF8)) {
		c->code = 553;
		rl_strlcpy(c->text,
		        "the server does not support SMTPUTF8, which the addresses need",
		        sizeof c->text);
		for (int i = 0; i < n; i++) {
			settle(&r[i], OB_PERM, NULL, c->text, "5.6.7");
			rl_strlcpy(r[i].host, c->host, sizeof r[i].host);
		}
		return;
	}
	uint64_t size = m->body.len + c->sig.len;
	if ((c->ext & EXT_SIZE) && c->size_max && size > c->size_max) {
		snprintf(c->text, sizeof c->text,
		        "message of %llu bytes exceeds the server's limit of %llu",
		        (unsigned long long)size, (unsigned long long)c->size_max);
		for (int i = 0; i < n; i++) {
			settle(&r[i], OB_PERM, NULL, c->text, "5.3.4");
			rl_strlcpy(r[i].host, c->host, sizeof r[i].host);
		}
		return;
	}
	int len = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", m->from);
	if (c->ext & EXT_SIZE) {
		len += snprintf(cmd + len, sizeof cmd - (size_t)len, " SIZE=%llu",
		        (unsigned long long)size);
	}
	if ((c->ext & EXT_8BITMIME) && body_8bit(&m->body)) {
		len += snprintf(cmd + len, sizeof cmd - (size_t)len, " BODY=8BITMIME");
	}
	snprintf(cmd + len, sizeof cmd - (size_t)len, "%s\r\n", utf8 ? " SMTPUTF8" : "");
	if (ob_cmd(c, cmd, c->tmo, 0) != 250) {
		settle_open(r, n, c, 0);
		return;
	}
	int accepted = 0;
	for (int i = 0; i < n; i++) {
		snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", r[i].addr);
		int code = ob_cmd(c, cmd, c->tmo, 0);
		if (code < 0) {
			settle_open(r, n, c, 1);
			return;
		}
		if (code / 100 == 2) {
			r[i].status = OB_ACCEPTED;
			accepted++;
		} else {
			settle(&r[i], code >= 500 ? OB_PERM : OB_TEMP, c, c->text,
			        code >= 500 ? "5.1.1" : "4.0.0");
		}
	}
	if (!accepted) {
		ob_cmd(c, "QUIT\r\n", c->tmo, 0);
		return;
	}
	if (ob_cmd(c, "DATA\r\n", c->tmo, 0) != 354) {
		settle_open(r, n, c, 1);
		return;
	}
	if (ob_body(c, &m->body) != 0) {
		c->code = -1;
		rl_strlcpy(c->text, "connection lost while sending the message", sizeof c->text);
	} else {
		ob_reply(c, 2 * c->tmo, 0);
	}
	if (c->code / 100 == 2) {
		stats_count(STATS_OUT);
		for (int i = 0; i < n; i++) {
			if (r[i].status == OB_ACCEPTED) {
				settle(&r[i], OB_SENT, c, c->text, "2.0.0");
			}
		}
	}
	settle_open(r, n, c, 1);
	ob_cmd(c, "QUIT\r\n", c->tmo, 0);
}

/* OutgoingBindToAddress when it is of addr's family (IPv4 or IPv6), else
 * NULL: the system picks the source address, as Postfix's smtp_bind_address. */
static const char *bind_for(const char *addr)
{
	uint8_t a[16], b[16];
	if (!*conf.outbound_bind || os_ip_parse(addr, a) != os_ip_parse(conf.outbound_bind, b)) {
		return NULL;
	}
	return conf.outbound_bind;
}

/* One connection to host at addr. 0 when the transaction ran (each
 * recipient settled, or left pending to the next host only if it
 * failed before any RCPT), -1 to try the next address or host. */
static int ob_try(
        struct ob_conn *c, struct queue_msg *m, struct ob_rcpt *r, int n, int port, enum tls_mode mode)
{
	/* Postfix's smtp_connect_timeout, or less: a stop waits for it */
	c->fd = os_connect_from(
	        c->addr, port, bind_for(c->addr), c->tmo < OB_CONNECT_MS ? c->tmo : OB_CONNECT_MS);
	if (c->fd == OS_BADFD) {
		snprintf(c->text, sizeof c->text, "connect to %.100s[%.60s]:%d failed: %.60s",
		        c->host, c->addr, port, os_strerror());
		log_info("%016llx host=%s[%s] status=deferred reply=\"%s\"",
		        (unsigned long long)m->qid, c->host, c->addr, c->text);
		return -1;
	}
	os_set_send_timeout(c->fd, c->tmo);
	int rc = ob_hello(c, mode);
	if (rc == 0) {
		ob_transaction(c, m, r, n);
		log_rcpts(c, r, n);
	} else {
		log_info("%016llx host=%s[%s] status=deferred reply=\"%s\"",
		        (unsigned long long)m->qid, c->host, c->addr, c->text);
		if (c->code >= 0) {
			ob_cmd(c, "QUIT\r\n", 2000, 0);
		}
	}
	tls_free(c->tls);
	c->tls = NULL;
	os_close(c->fd);
	return rc;
}

/* Tries each address of host; 0 once a transaction ran. */
static int ob_host(struct ob_conn *c, struct queue_msg *m, struct ob_rcpt *r, int n,
        const char *host, int port, const struct tls_want *w)
{
	char addrs[OB_ADDRS_MAX][DNS_ADDR_MAX];
	rl_strlcpy(c->host, host, sizeof c->host);
	if (w->has_sts && !sts_mx_ok(&w->sts, host)) {
		snprintf(c->text, sizeof c->text, "MTA-STS: %.180s is not a mail server the "
		        "domain's policy names", host);
		log_info("%016llx host=%s status=%s reply=\"%s\"", (unsigned long long)m->qid, host,
		        w->sts.mode == STS_ENFORCE ? "deferred" : "testing", c->text);
		if (w->sts.mode == STS_ENFORCE) {
			return -1;
		}
	}
	int na = dns_addrs(host, addrs, OB_ADDRS_MAX);
	if (na <= 0) {
		snprintf(c->text, sizeof c->text, "cannot find the address of %.180s: %.40s", host,
		        na == 0 ? "no address" : dns_strerror(na));
		log_info("%016llx host=%s status=deferred reply=\"%s\"", (unsigned long long)m->qid,
		        host, c->text);
		return -1;
	}
	c->tls_source = w->source;
	for (int i = 0; i < na && !queue__stopping(); i++) {
		rl_strlcpy(c->addr, addrs[i], sizeof c->addr);
		c->tls_failed = 0;
		if (ob_try(c, m, r, n, port, w->mode) == 0) {
			return 0;
		}
		if (c->tls_failed && ob_try(c, m, r, n, port, TLS_NONE) == 0) {
			return 0;
		}
	}
	return -1;
}

/* host[:port] or [host]:port as a relay account or RelayHost gives it. */
static int parse_via(const char *via, char *host, size_t len, int *port)
{
	char tmp[300];
	rl_strlcpy(tmp, via, sizeof tmp);
	tmp[strcspn(tmp, " \t,;")] = '\0';
	*port = 25;
	char *p = tmp, *colon;
	if (*p == '[') {
		char *end = strchr(p, ']');
		if (!end) {
			return -1;
		}
		*end = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
		p++;
	} else {
		colon = strrchr(p, ':');
		if (colon && strchr(p, ':') != colon) {
			colon = NULL; /* a bare IPv6 address */
		}
		if (colon) {
			*colon = '\0';
		}
	}
	if (colon) {
		*port = atoi(colon + 1);
	}
	if (!*p || *port <= 0 || *port > 65535 || rl_strlcpy(host, p, len) >= len) {
		return -1;
	}
	return 0;
}

/* 1 when host is in IgnoreMX's list (lower case; a trailing dot or not). */
static int mx_ignored(const char *host)
{
	size_t hl = strlen(host);
	for (const char *p = conf.ignore_mx_hosts; *p;) {
		p += strspn(p, " ");
		size_t n = strcspn(p, " "), m = n && p[n - 1] == '.' ? n - 1 : n;
		if (m && m == hl && strncmp(p, host, m) == 0) {
			return 1;
		}
		p += n;
	}
	return 0;
}

/* Drops the MX hosts IgnoreMX lists, as the original did: the count left. */
static int drop_ignored(const char *domain, struct dns_mx *mx, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (mx_ignored(mx[i].host)) {
			log_info("%s: MX %s skipped (IgnoreMX)", domain, mx[i].host);
		} else {
			mx[k++] = mx[i];
		}
	}
	return k;
}

/* The hosts for domain: its MX list; 0 when there is none (and r is
 * settled). */
static int ob_route(uint64_t qid, const char *domain, struct dns_mx *mx, struct ob_rcpt *r, int n)
{
	int nmx = conf.ignore_mx ? 1 : dns_mx(domain, mx, OB_HOSTS_MAX), had = nmx > 0;
	if (conf.ignore_mx) {
		rl_strlcpy(mx[0].host, domain, sizeof mx[0].host);
	}
	if (nmx > 0 && (nmx = drop_ignored(domain, mx, nmx)) > 0) {
		return nmx;
	}
	char why[OB_REPLY_MAX];
	enum ob_status st = nmx == DNS_TEMPFAIL ? OB_TEMP : OB_PERM;
	snprintf(why, sizeof why, "%s: %s", domain,
	        had                 ? "every mail server of the domain is in IgnoreMX"
	        : nmx == DNS_NOMAIL ? "the domain accepts no mail (null MX)"
	        : nmx == 0          ? "no mail server (no MX and no address)"
	                            : dns_strerror(nmx));
	log_info("%016llx domain=%s status=%s reply=\"%s\"", (unsigned long long)qid, domain,
	        st == OB_TEMP ? "deferred" : "failed", why);
	for (int i = 0; i < n; i++) {
		settle(&r[i], st, NULL, why,
		        st == OB_TEMP       ? "4.4.3"
		        : had               ? "5.4.4"
		        : nmx == DNS_NOMAIL ? "5.1.10"
		                            : "5.1.2");
	}
	return 0;
}

/* see rumble.h */
void outbound_send(
        struct queue_msg *m, const char *domain, const char *via, struct ob_rcpt *r, int n)
{
	struct dns_mx mx[OB_HOSTS_MAX];
	int nmx, port = conf.outbound_port;
	struct ob_conn *c = xcalloc(1, sizeof *c);
	c->qid = m->qid;
	c->tmo = conf.outbound_timeout * 1000;
	c->helo = conf.server_name;
	c->stopping = queue__stopping;
	buf_init(&c->sig);
	dkim_sign(&m->body, m->from, &c->sig);
	for (int i = 0; i < n; i++) {
		r[i].status = OB_PENDING;
	}
	if (via && *via) {
		nmx = 1;
		if (parse_via(via, mx[0].host, sizeof mx[0].host, &port) != 0) {
			log_info("%016llx via=%s status=deferred reply=\"bad relay host setting\"",
			        (unsigned long long)m->qid, via);
			for (int i = 0; i < n; i++) {
				settle(&r[i], OB_TEMP, NULL, "bad relay host setting", "4.3.5");
			}
			nmx = 0;
		}
	} else {
		nmx = ob_route(m->qid, domain, mx, r, n);
	}
	int done = -1;
	struct tls_want *w = xcalloc(1, sizeof *w);
	if (nmx > 0) {
		tls_want_for(via && *via ? mx[0].host : domain, !(via && *via), w);
	}
	rl_strlcpy(c->text, "no mail server could be reached", sizeof c->text);
	for (int i = 0; i < nmx && done != 0 && !queue__stopping(); i++) {
		done = ob_host(c, m, r, n, mx[i].host, port, w);
	}
	free(w);
	if (nmx > 0 && done != 0) {
		c->code = -1; /* the last host's reason, as a deferral */
		for (int i = 0; i < n; i++) {
			if (r[i].status == OB_PENDING) {
				settle(&r[i], OB_TEMP, NULL, c->text, "4.4.1");
				rl_strlcpy(r[i].host, c->host, sizeof r[i].host);
			}
		}
	}
	buf_free(&c->sig);
	free(c);
}

/* ---- submission: one message to one server (smtp.send of the Lua API) ---- */

/* AUTH PLAIN (RFC 4616) when offered, else AUTH LOGIN; 0 when accepted. */
static int sub_auth(struct ob_conn *c, const struct ob_submit *m)
{
	char raw[2 * OB_AUTH_MAX + 3], cmd[(2 * OB_AUTH_MAX + 3) * 4 / 3 + 32];
	size_t ul = strlen(m->user), pl = strlen(m->password);
	int rc = -1;
	if (c->ext & EXT_AUTH_PLAIN) {
		raw[0] = '\0';
		memcpy(raw + 1, m->user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, m->password, pl);
		memcpy(cmd, "AUTH PLAIN ", 11);
		size_t n = 11 + crypto_base64_encode(raw, ul + pl + 2, cmd + 11);
		memcpy(cmd + n, "\r\n", 3);
		rc = ob_cmd(c, cmd, c->tmo, 0) == 235 ? 0 : -1;
	} else if (c->ext & EXT_AUTH_LOGIN) {
		rc = ob_cmd(c, "AUTH LOGIN\r\n", c->tmo, 0) == 334 ? 0 : -1;
		for (int i = 0; i < 2 && rc == 0; i++) {
			const char *v = i == 0 ? m->user : m->password;
			size_t n = crypto_base64_encode(v, i == 0 ? ul : pl, cmd);
			memcpy(cmd + n, "\r\n", 3);
			if (ob_send(c, cmd, n + 2, c->tmo) != 0) {
				rl_strlcpy(
				        c->text, "connection lost while sending", sizeof c->text);
				rc = -1;
			} else {
				rc = ob_reply(c, c->tmo, 0) == (i == 0 ? 334 : 235) ? 0 : -1;
			}
		}
	} else {
		rl_strlcpy(c->text, "authentication not supported", sizeof c->text);
	}
	crypto_wipe(raw, sizeof raw);
	crypto_wipe(cmd, sizeof cmd);
	return rc;
}

/* The message from memory, dot-stuffed, and the end of data. */
static int sub_body(struct ob_conn *c, const char *p, size_t len)
{
	struct buf out;
	buf_init(&out);
	int st = STUFF_BOL, rc = 0;
	for (size_t off = 0; rc == 0 && off < len; off += 16384) {
		ob_stuff(&out, p + off, len - off < 16384 ? len - off : 16384, &st);
		rc = ob_send(c, out.data, out.len, c->tmo);
		buf_reset(&out);
	}
	buf_free(&out);
	return rc == 0 ? ob_data_end(c, st) : -1;
}

/* MAIL, each RCPT, DATA on a greeted (and authenticated) connection:
 * the first refusal ends it, as LuaSocket's smtp.send does. */
static int sub_transaction(struct ob_conn *c, const struct ob_submit *m)
{
	char cmd[OB_ADDR_MAX + 32];
	snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\n", m->from);
	if (ob_cmd(c, cmd, c->tmo, 0) / 100 != 2) {
		return -1;
	}
	for (int i = 0; i < m->nrcpt; i++) {
		snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", m->rcpt[i]);
		if (ob_cmd(c, cmd, c->tmo, 0) / 100 != 2) {
			return -1;
		}
	}
	if (ob_cmd(c, "DATA\r\n", c->tmo, 0) != 354) {
		return -1;
	}
	if (sub_body(c, m->data, m->len) != 0) {
		rl_strlcpy(c->text, "connection lost while sending the message", sizeof c->text);
		return -1;
	}
	return ob_reply(c, 2 * c->tmo, 0) / 100 == 2 ? 0 : -1;
}

/* One address of the server: the whole dialogue, QUIT included. 1 when
 * the connection failed (try the next address), else 0 or -1. */
static int sub_try(struct ob_conn *c, const struct ob_submit *m)
{
	c->fd = os_connect_from(c->addr, m->port, bind_for(c->addr),
	        c->tmo < OB_CONNECT_MS ? c->tmo : OB_CONNECT_MS);
	if (c->fd == OS_BADFD) {
		snprintf(c->text, sizeof c->text, "connect to %.100s[%.60s]:%d failed: %.60s",
		        c->host, c->addr, m->port, os_strerror());
		return 1;
	}
	os_set_send_timeout(c->fd, c->tmo);
	c->tls_source = "smtp.send";
	int rc = ob_hello(c, TLS_MAY);
	if (rc == 0 && m->user) {
		rc = sub_auth(c, m);
	}
	if (rc == 0) {
		rc = sub_transaction(c, m);
	}
	char why[sizeof c->text];
	rl_strlcpy(why, c->text, sizeof why);
	if (c->code >= 0) {
		ob_cmd(c, "QUIT\r\n", 2000, 0);
	}
	rl_strlcpy(c->text, why, sizeof c->text); /* the answer that counted */
	tls_free(c->tls);
	c->tls = NULL;
	os_close(c->fd);
	return rc;
}

/* see rumble.h */
int outbound_submit(const struct ob_submit *m, char *err, size_t errlen)
{
	char addrs[OB_ADDRS_MAX][DNS_ADDR_MAX];
	int na = 1;
	if (!rl_strcasecmp(m->host, "localhost")) {
		rl_strlcpy(addrs[0], "127.0.0.1", sizeof addrs[0]); /* RFC 6761 6.3 */
	} else if ((na = dns_addrs(m->host, addrs, OB_ADDRS_MAX)) <= 0) {
		snprintf(err, errlen, "%s: %s", m->host, na == 0 ? "no address" : dns_strerror(na));
		return -1;
	}
	struct ob_conn *c = xcalloc(1, sizeof *c);
	c->tmo = m->timeout_ms;
	c->deadline = m->deadline;
	if (m->deadline && c->tmo > m->deadline - os_now_ms()) {
		int64_t left = m->deadline - os_now_ms();
		c->tmo = left < 1 ? 1 : (int)left; /* connect and send waits too */
	}
	c->helo = m->helo;
	c->stopping = m->stopping ? m->stopping : queue__stopping;
	rl_strlcpy(c->host, m->host, sizeof c->host);
	int rc = 1;
	for (int i = 0; i < na && rc == 1 && !c->stopping(); i++) {
		rl_strlcpy(c->addr, addrs[i], sizeof c->addr);
		c->ext = 0;
		c->inlen = 0;
		rc = sub_try(c, m);
	}
	rl_strlcpy(err, c->text, errlen);
	log_info("submit host=%s[%s] from=<%s> rcpts=%d size=%lu status=%s reply=\"%s\"", c->host,
	        c->addr, m->from, m->nrcpt, (unsigned long)m->len, rc == 0 ? "sent" : "failed",
	        c->text);
	free(c);
	return rc == 0 ? 0 : -1;
}

/* ---- retries and bounces ---- */

/* see rumble.h */
int64_t outbound_backoff(int attempts)
{
	int64_t d = conf.retry_interval > 0 ? conf.retry_interval : 1;
	for (int i = 1; i < attempts && d < conf.retry_max; i++) {
		d *= 2;
	}
	return d < conf.retry_max ? d : conf.retry_max;
}

/* see rumble.h */
void outbound_date(int64_t t, char *out, size_t len)
{
	static const char *days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char *months[] = {
	        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int64_t days_since = t / 86400, secs = t % 86400;
	/* civil from days (H. Hinnant), UTC */
	int64_t z = days_since + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1, mo = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (mo <= 2);
	snprintf(out, len, "%s, %d %s %lld %02d:%02d:%02d +0000", days[days_since % 7], (int)d,
	        months[mo - 1], (long long)y, (int)(secs / 3600), (int)(secs / 60 % 60),
	        (int)(secs % 60));
}

static void dsn_human(struct buf *b, const struct ob_rcpt *r, int n)
{
	buf_printf(b,
	        "This is the mail system at host %s.\r\n\r\n"
	        "I'm sorry to have to inform you that your message could not\r\n"
	        "be delivered to one or more recipients. It's attached below.\r\n\r\n",
	        conf.server_name);
	for (int i = 0; i < n; i++) {
		buf_printf(b, "<%s>: %s%s%s\r\n", r[i].addr, r[i].host[0] ? "host " : "", r[i].host,
		        r[i].host[0] ? " said: " : "");
		buf_printf(b, "    %s\r\n", r[i].reply);
	}
}

static void dsn_status(struct buf *b, uint64_t qid, int64_t arrival, const struct ob_rcpt *r, int n)
{
	char date[64];
	outbound_date(arrival, date, sizeof date);
	buf_printf(b,
	        "Reporting-MTA: dns; %s\r\nX-Rumble-Queue-ID: %016llx\r\nArrival-Date: %s\r\n",
	        conf.server_name, (unsigned long long)qid, date);
	for (int i = 0; i < n; i++) {
		buf_printf(b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n",
		        r[i].addr, r[i].status_code[0] ? r[i].status_code : "5.0.0");
		if (r[i].host[0]) {
			buf_printf(b, "Remote-MTA: dns; %s\r\n", r[i].host);
		}
		buf_printf(b, "Diagnostic-Code: %s; %s\r\n", r[i].remote ? "smtp" : "x-rumble",
		        r[i].reply);
	}
}

/* see rumble.h */
void outbound_dsn(struct buf *b, const char *sender, uint64_t qid, int64_t arrival, int64_t now,
        const struct ob_rcpt *r, int n, const char *hdr, size_t hdrlen)
{
	char date[64], boundary[64];
	outbound_date(now, date, sizeof date);
	snprintf(boundary, sizeof boundary, "%016llx/%.40s", (unsigned long long)qid,
	        conf.server_name);
	buf_printf(b,
	        "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
	        "Subject: Undelivered Mail Returned to Sender\r\nDate: %s\r\n"
	        "Message-ID: <%016llx.dsn@%s>\r\nAuto-Submitted: auto-replied\r\n"
	        "MIME-Version: 1.0\r\n"
	        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	        "\tboundary=\"%s\"\r\n\r\n"
	        "This is a MIME-encapsulated message.\r\n\r\n",
	        conf.server_name, sender, date, (unsigned long long)qid, conf.server_name,
	        boundary);
	buf_printf(b,
	        "--%s\r\nContent-Description: Notification\r\n"
	        "Content-Type: text/plain; charset=utf-8\r\n\r\n",
	        boundary);
	dsn_human(b, r, n);
	buf_printf(b,
	        "\r\n--%s\r\nContent-Description: Delivery report\r\n"
	        "Content-Type: message/delivery-status\r\n\r\n",
	        boundary);
	dsn_status(b, qid, arrival, r, n);
	buf_printf(b,
	        "\r\n--%s\r\nContent-Description: Undelivered Message Headers\r\n"
	        "Content-Type: text/rfc822-headers\r\n\r\n",
	        boundary);
	buf_append(b, hdr, hdrlen);
	if (hdrlen < 2 || hdr[hdrlen - 1] != '\n') {
		buf_puts(b, "\r\n");
	}
	buf_printf(b, "\r\n--%s--\r\n", boundary);
}
