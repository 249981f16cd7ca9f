/*
 * wellknown.c - the public HTTP responder (port 80, ACMEHTTPPort): a tiny
 * service on the session loop that answers GET (and HEAD) for a few
 * /.well-known/ paths and 404 for everything else. It exists for ACME's
 * HTTP-01 challenge (RFC 8555 8.3); other well-known documents (the
 * MTA-STS policy, ...) are one row each in routes[] below. The client
 * autoconfiguration documents (autoconf.c: Thunderbird's autoconfig,
 * Outlook's autodiscover, which is a POST) have their own table and are
 * tried first.
 *
 * Not a web server: one request per connection, a body only for POST
 * (WK_BODY_MAX), the request head at most WK_HEAD_MAX bytes, all within
 * WK_DEADLINE_MS of the connection's start (the deadline holds against a
 * client that trickles a byte at a time: input comes through s->tap,
 * which sees every read and shortens the idle timeout to what is left).
 * Then the answer and the close.
 */
#include <string.h>

#include "rumble.h"

#define WK_HEAD_MAX 8192
#define WK_BODY_MAX 8192 /* Outlook's autodiscover POST is a few hundred bytes */
#define WK_DEADLINE_MS 10000
#define WK_TOKENS 8        /* challenges served at once */
#define WK_TOKEN_MAX 128   /* RFC 8555 8.1: base64url, 128 bits at least */
#define WK_KEYAUTH_MAX 256 /* token "." base64url(SHA-256 thumbprint) */

/* ---- what ACME asked us to answer (any thread sets, workers read) ---- */

static struct {
	char token[WK_TOKEN_MAX + 1];
	char keyauth[WK_KEYAUTH_MAX + 1];
} tokens[WK_TOKENS];
static os_mutex *tokens_mx;

/* see rumble.h */
void wellknown_init(void)
{
	if (!tokens_mx) {
		tokens_mx = os_mutex_new();
	}
}

static int is_b64url(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max) {
		return 0;
	}
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* see rumble.h */
int wellknown_token_set(const char *token, const char *keyauth)
{
	int done = -1;
	if (!is_b64url(token, WK_TOKEN_MAX) || strlen(keyauth) > WK_KEYAUTH_MAX) {
		return -1;
	}
	os_mutex_lock(tokens_mx);
	for (int i = 0; i < WK_TOKENS && done < 0; i++) {
		if (!tokens[i].token[0] || !strcmp(tokens[i].token, token)) {
			rl_strlcpy(tokens[i].token, token, sizeof tokens[i].token);
			rl_strlcpy(tokens[i].keyauth, keyauth, sizeof tokens[i].keyauth);
			done = 0;
		}
	}
	os_mutex_unlock(tokens_mx);
	return done;
}

/* see rumble.h */
void wellknown_token_clear(const char *token)
{
	os_mutex_lock(tokens_mx);
	for (int i = 0; i < WK_TOKENS; i++) {
		if (!token || !strcmp(tokens[i].token, token)) {
			tokens[i].token[0] = '\0';
		}
	}
	os_mutex_unlock(tokens_mx);
}

/* GET /.well-known/acme-challenge/TOKEN: the key authorization. */
static int acme_challenge(const char *host, const char *rest, struct buf *body, const char **ctype)
{
	int status = 404;
	(void)host;
	if (!is_b64url(rest, WK_TOKEN_MAX)) {
		return 404;
	}
	os_mutex_lock(tokens_mx);
	for (int i = 0; i < WK_TOKENS; i++) {
		if (tokens[i].token[0] && !strcmp(tokens[i].token, rest)) {
			buf_puts(body, tokens[i].keyauth);
			status = 200;
		}
	}
	os_mutex_unlock(tokens_mx);
	*ctype = "application/octet-stream";
	return status;
}

/* GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 3.2): our
 * policy, for a domain we receive mail for, naming ServerName as the MX.
 * "testing": senders report but still deliver when TLS fails, the safe
 * start (as DMARC's p=none); served over HTTPS only, as the RFC wants. */
static int mta_sts_policy(const char *host, const char *rest, struct buf *body,
        const char **ctype)
{
	if (*rest || strncmp(host, "mta-sts.", 8) != 0 || !mm_domain_exists(host + 8)) {
		return 404;
	}
	buf_printf(body, "version: STSv1\r\nmode: testing\r\nmx: %s\r\nmax_age: 604800\r\n",
	        conf.server_name);
	*ctype = "text/plain";
	return 200;
}

/* ---- the routes: add a well-known document with one line here ----
 * A handler gets the Host field (lower case, port cut; "" if none) and
 * the path after the prefix, fills body and *ctype, and returns the
 * status (404 when it has nothing). */
static const struct wk_route {
	const char *prefix;
	int (*fn)(const char *host, const char *rest, struct buf *body, const char **ctype);
} routes[] = {
        {"/.well-known/acme-challenge/", acme_challenge},
        {"/.well-known/mta-sts.txt", mta_sts_policy},
};

/* ---- the protocol ---- */

struct wk {
	struct buf head; /* the head, then a POST's body */
	size_t head_len; /* where the head ends; 0 until it has */
	size_t want;     /* head and body, once head_len is known */
	int64_t deadline;
};

static const char *reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Not Found";
	}
}

static void answer(
        struct session *s, int status, const struct buf *body, const char *ctype, int head_only)
{
	const char *text = reason_of(status);
	size_t n = status == 200 ? body->len : strlen(text) + 1;
	session_printf(s,
	        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	        "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	        status, text, status == 200 ? ctype : "text/plain", n);
	if (!head_only) {
		if (status == 200) {
			session_write(s, body->data, body->len);
		} else {
			session_printf(s, "%s\n", text);
		}
	}
	session_close(s, status == 200 ? "answered" : text);
}

/* The Host field of the head, lower case, without a port. */
static void host_of(const char *head, char *host, size_t len)
{
	host[0] = '\0';
	for (const char *p = strchr(head, '\n'); p; p = strchr(p, '\n')) {
		p++;
		if (!rl_strncasecmp(p, "Host:", 5)) {
			p += 5;
			p += strspn(p, " \t");
			size_t n = strcspn(p, ":\r\n \t");
			n = n < len ? n : len - 1;
			for (size_t i = 0; i < n; i++) {
				host[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
			}
			host[n] = '\0';
			return;
		}
	}
}

/* The request head is complete: route it. */
static void respond(struct session *s, struct wk *w)
{
	char method[8], target[1024], host[256];
	const char *ctype = "text/plain";
	struct buf body;
	int status = 404;
	if (sscanf(w->head.data, "%7s %1023s HTTP/1.", method, target) != 2) {
		answer(s, 400, NULL, NULL, 0);
		return;
	}
	int head_only = !strcmp(method, "HEAD");
	host_of(w->head.data, host, sizeof host);
	buf_init(&body);
	if (autoconf_match(target)) { /* client autoconfiguration: its own table */
		status = autoconf_route(method, target, *host ? host : NULL,
		        w->head.data + w->head_len, w->head.len - w->head_len, &body, &ctype);
		log_info("%u http %s %s from %s: %d", s->id, method, target, s->peer, status);
		answer(s, status, &body, ctype, head_only);
		buf_free(&body);
		return;
	}
	if (strcmp(method, "GET") != 0 && !head_only) {
		buf_free(&body);
		answer(s, 405, NULL, NULL, 0);
		return;
	}
	target[strcspn(target, "?#")] = '\0';
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		size_t pl = strlen(routes[i].prefix);
		if (!strncmp(target, routes[i].prefix, pl)) {
			status = routes[i].fn(host, target + pl, &body, &ctype);
			/* only these: port 80 draws scanners all day */
			log_info("%u http %s %s from %s: %d", s->id, method, target, s->peer,
			        status);
			break;
		}
	}
	answer(s, status, &body, ctype, head_only);
	buf_free(&body);
}

/* Looks for the end of the head; sets head_len and want (a POST's
 * Content-Length more, at most WK_BODY_MAX). An error status, or 0. */
static int head_done(struct wk *w)
{
	const char *h = w->head.data;
	const char *e = strstr(h, "\r\n\r\n");
	const char *f = strstr(h, "\n\n");
	if (!e && !f) {
		return w->head.len >= WK_HEAD_MAX ? 431 : 0;
	}
	size_t end = e && (!f || e < f) ? (size_t)(e - h) + 4 : (size_t)(f - h) + 2;
	if (end > WK_HEAD_MAX) {
		return 431;
	}
	w->head_len = w->want = end;
	if (!strncmp(h, "POST ", 5)) {
		for (const char *p = strchr(h, '\n'); p && p < h + end; p = strchr(p, '\n')) {
			p++;
			if (!rl_strncasecmp(p, "Content-Length:", 15)) {
				long cl = strtol(p + 15, NULL, 10);
				if (cl < 0 || cl > WK_BODY_MAX) {
					return 413;
				}
				w->want = end + (size_t)cl;
			}
		}
	}
	return 0;
}

/* Every read comes here: collect the head until its empty line, then a
 * POST's body. */
static size_t wk_tap(struct session *s, const char *p, size_t n)
{
	struct wk *w = s->ps;
	if (!p) {
		s->tap = NULL;
		return 0;
	}
	int64_t left = w->deadline - os_now_ms();
	if (left <= 0) {
		answer(s, 408, NULL, NULL, 0);
		return n;
	}
	s->timeout_ms = (int)left; /* from this read: the deadline, not the idle time */
	size_t room = WK_HEAD_MAX + WK_BODY_MAX - w->head.len;
	buf_append(&w->head, p, n < room ? n : room);
	buf_append(&w->head, "", 1);
	w->head.len--;
	if (!w->head_len) {
		int status = head_done(w);
		if (status) {
			answer(s, status, NULL, NULL, 0);
			return n;
		}
	}
	if (w->head_len && w->head.len >= w->want) {
		w->head.len = w->want; /* a pipelined request is dropped */
		respond(s, w);
	}
	return n;
}

static void wk_open(struct session *s)
{
	struct wk *w = xcalloc(1, sizeof *w);
	buf_init(&w->head);
	w->deadline = os_now_ms() + WK_DEADLINE_MS;
	s->ps = w;
	s->timeout_ms = WK_DEADLINE_MS;
	s->tap = wk_tap;
}

static void wk_close(struct session *s)
{
	struct wk *w = s->ps;
	if (w) {
		buf_free(&w->head);
		free(w);
		s->ps = NULL;
	}
}

static int wk_can_stop(struct session *s)
{
	return 1;
}

static const struct proto wk_proto = {
        .name = "http",
        .line_max = WK_HEAD_MAX,
        .open = wk_open,
        .close = wk_close,
        .can_stop = wk_can_stop,
};

static struct service wk_service = {.name = "http", .proto = &wk_proto};
static struct service wks_service = {.name = "https", .proto = &wk_proto, .flags = SVC_TLS};

static int listen_on(struct service *svc, const char *bind, int port)
{
	char err[256];
	wellknown_init();
	svc->port = port;
	svc->enabled = 1;
	if (server_listen(svc, bind, conf.force_ipv4, err, sizeof err) != 0) {
		log_warnx("%s (well-known): cannot listen on port %d: %s", svc->name, port, err);
		return -1;
	}
	log_info("%s (well-known) listening on %s:%d", svc->name, *bind ? bind : "*", port);
	return 0;
}

/* see rumble.h */
int wellknown_listen(const char *bind, int port)
{
	return listen_on(&wk_service, bind, port);
}

/* see rumble.h */
int wellknown_listen_tls(const char *bind, int port)
{
	return listen_on(&wks_service, bind, port);
}

/* see rumble.h */
void wellknown_start(void)
{
	char names[sizeof conf.acme_names + 2];
	wellknown_init();
	if (!conf.acme_enable) {
		return;
	}
	snprintf(names, sizeof names, " %s", conf.acme_names);
	int alpn = !rl_strcasecmp(conf.acme_challenge, "tls-alpn-01");
	if (alpn || strstr(names, " mta-sts.") || strstr(names, " MTA-STS.")) {
		wellknown_listen_tls(conf.bind, conf.acme_tls_port); /* TLS-ALPN-01, MTA-STS */
	}
	if (!alpn) {
		wellknown_listen(conf.bind, conf.acme_http_port); /* HTTP-01 fails if not */
	}
}
