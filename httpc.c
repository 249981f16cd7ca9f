/*
 * httpc.c - a small blocking HTTP/1.1 client over plain TCP or verified
 * TLS, for ACME (acme.c) and MTA-STS policies. One request per
 * connection ("Connection: close"), so a response ends at its
 * Content-Length, at the last chunk, or when the server closes.
 *
 * Blocking: it runs on a thread that may wait (acme.c's, the queue's
 * delivery threads, a work.c helper), never on a worker's loop. Every
 * wait has the request's one deadline, and the response is bounded
 * (HTTPC_HEAD_MAX of header, the caller's body_max of body), so a slow
 * or endless server costs at most timeout_ms and that memory.
 *
 * The response is parsed from the bytes read so far each time more
 * arrive (httpc_parse, which the unit tests drive without a socket); the
 * sizes make the repeated parse cheap next to the network.
 */
#include <string.h>

#include "rumble.h"

#define HTTPC_SLICE_MS 250 /* a stopping server is noticed this often */
#define HTTPC_TIMEOUT_MS 30000
#define HTTPC_BODY_MAX (1024 * 1024)
#define HTTPC_CHUNK_SLACK (64 * 1024) /* chunk-size lines on top of the body */

static void seterr(struct httpc_resp *rs, const char *fmt, ...) RL_PRINTF(2, 3);
static void seterr(struct httpc_resp *rs, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rs->err, sizeof rs->err, fmt, ap);
	va_end(ap);
}

/* ---- URLs ---- */

/* see rumble.h */
int httpc_url_parse(const char *url, struct httpc_url *u)
{
	const char *p;
	memset(u, 0, sizeof *u);
	if (!rl_strncasecmp(url, "https://", 8)) {
		u->tls = 1;
		u->port = 443;
		p = url + 8;
	} else if (!rl_strncasecmp(url, "http://", 7)) {
		u->port = 80;
		p = url + 7;
	} else {
		return -1;
	}
	size_t hl;
	const char *after;
	if (*p == '[') { /* an IPv6 literal */
		const char *end = strchr(p, ']');
		if (!end) {
			return -1;
		}
		hl = (size_t)(end - p - 1);
		p++;
		after = end + 1;
	} else {
		hl = strcspn(p, ":/?#");
		after = p + hl;
	}
	if (hl == 0 || hl >= sizeof u->host) {
		return -1;
	}
	memcpy(u->host, p, hl);
	u->host[hl] = '\0';
	for (size_t i = 0; i < hl; i++) {
		if ((unsigned char)u->host[i] <= ' ' || u->host[i] == '@') {
			return -1;
		}
	}
	if (*after == ':') {
		char *end;
		long port = strtol(after + 1, &end, 10);
		if (end == after + 1 || port < 1 || port > 65535) {
			return -1;
		}
		u->port = (int)port;
		after = end;
	}
	if (*after != '\0' && *after != '/' && *after != '?') {
		return -1;
	}
	size_t pl = strcspn(after, "#");
	if (pl + 2 > sizeof u->path) {
		return -1;
	}
	for (size_t i = 0; i < pl; i++) {
		if ((unsigned char)after[i] <= ' ' || after[i] == 0x7f) {
			return -1; /* no way to smuggle a header line */
		}
	}
	size_t o = 0;
	if (*after != '/') {
		u->path[o++] = '/';
	}
	memcpy(u->path + o, after, pl);
	u->path[o + pl] = '\0';
	return 0;
}

/* ---- parsing a response ---- */

/* Where the header block ends (after its empty line), 0 when not yet. */
static size_t head_end(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n') {
			return i + 2;
		}
		if (p[i] == '\n' && p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n') {
			return i + 3;
		}
	}
	return 0;
}

/* see rumble.h */
int httpc_header(const struct httpc_resp *rs, const char *name, int nth, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = rs->head.data ? rs->head.data : "";
	while (*p) {
		size_t ll = strcspn(p, "\n");
		if (ll > nl && p[nl] == ':' && !rl_strncasecmp(p, name, nl) && nth-- == 0) {
			const char *v = p + nl + 1;
			size_t vl = ll - nl - 1;
			while (vl > 0 && (*v == ' ' || *v == '\t')) {
				v++;
				vl--;
			}
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t' || v[vl - 1] == '\r')) {
				vl--;
			}
			if (vl >= outlen) {
				vl = outlen - 1; /* cut: the caller's size is its limit */
			}
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 1;
		}
		p += ll + (p[ll] == '\n');
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* see rumble.h */
int httpc_unchunk(const char *p, size_t n, struct buf *out, size_t max)
{
	size_t i = 0;
	buf_reset(out);
	for (;;) {
		size_t size = 0;
		int digits = 0;
		for (; i < n && hexval(p[i]) >= 0; i++, digits++) {
			if (size > max) {
				return -1;
			}
			size = size * 16 + (size_t)hexval(p[i]);
		}
		const char *lf = i < n ? memchr(p + i, '\n', n - i) : NULL;
		if (!lf) {
			return n - i > 1024 ? -1 : 0; /* extensions are short */
		}
		if (digits == 0 || size > max - out->len) {
			return -1;
		}
		i = (size_t)(lf - p) + 1;
		if (size == 0) {
			/* trailer fields, then an empty line */
			for (;;) {
				const char *e = i < n ? memchr(p + i, '\n', n - i) : NULL;
				if (!e) {
					return 0;
				}
				size_t ll = (size_t)(e - (p + i));
				i = (size_t)(e - p) + 1;
				if (ll == 0 || (ll == 1 && p[i - 2] == '\r')) {
					return 1;
				}
			}
		}
		if (n - i < size + 1) {
			return 0;
		}
		buf_append(out, p + i, size);
		i += size;
		if (p[i] == '\r') {
			i++;
		}
		if (i >= n) {
			return 0;
		}
		if (p[i++] != '\n') {
			return -1;
		}
	}
}

static int is_chunked(const struct httpc_resp *rs)
{
	char te[128];
	for (int k = 0; k < 8 && httpc_header(rs, "Transfer-Encoding", k, te, sizeof te); k++) {
		for (char *q = te; *q; q++) {
			if (!rl_strncasecmp(q, "chunked", 7)) {
				return 1;
			}
		}
	}
	return 0;
}

/* Status line and header fields of the block p[0..hn); -1 if malformed. */
static int parse_head(const char *p, size_t hn, struct httpc_resp *rs)
{
	if (hn < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
		return -1;
	}
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9') {
			return -1;
		}
		st = st * 10 + (p[i] - '0');
	}
	rs->status = st;
	const char *nl = memchr(p, '\n', hn);
	size_t off = (size_t)(nl - p) + 1;
	buf_reset(&rs->head);
	buf_append(&rs->head, p + off, hn - off);
	buf_append(&rs->head, "", 1);
	rs->head.len--;
	if (memchr(rs->head.data, '\0', rs->head.len)) {
		return -1;
	}
	return 0;
}

/* see rumble.h */
int httpc_parse(const char *raw, size_t n, int eof, int no_body, size_t body_max,
        struct httpc_resp *rs)
{
	size_t hn;
	for (int skips = 0;; skips++) {
		hn = head_end(raw, n);
		if (hn == 0) {
			if (n > HTTPC_HEAD_MAX) {
				return seterr(rs, "response header over %d bytes", HTTPC_HEAD_MAX), -1;
			}
			return eof ? (seterr(rs, "connection closed before the response"), -1) : 0;
		}
		if (hn > HTTPC_HEAD_MAX || parse_head(raw, hn, rs) != 0) {
			return seterr(rs, "malformed response header"), -1;
		}
		if (rs->status >= 200 || skips == 4) {
			break;
		}
		raw += hn; /* 100 Continue and other interim responses */
		n -= hn;
	}
	const char *b = raw + hn;
	size_t bn = n - hn;
	char cl[32];
	buf_reset(&rs->body);
	if (no_body || rs->status == 204 || rs->status == 304) {
		buf_append(&rs->body, "", 1);
		rs->body.len = 0;
		return 1;
	}
	int r;
	if (is_chunked(rs)) {
		r = httpc_unchunk(b, bn, &rs->body, body_max);
	} else if (httpc_header(rs, "Content-Length", 0, cl, sizeof cl)) {
		char *end;
		unsigned long long want = strtoull(cl, &end, 10);
		if (end == cl || *end || want > body_max) {
			return seterr(rs, "Content-Length %s over the limit of %zu bytes", cl, body_max),
			       -1;
		}
		r = bn >= want ? 1 : 0;
		buf_append(&rs->body, b, r ? (size_t)want : bn);
	} else {
		r = bn > body_max ? -1 : eof ? 1 : 0;
		buf_append(&rs->body, b, bn);
	}
	if (r < 0) {
		return seterr(rs, "response body malformed or over %zu bytes", body_max), -1;
	}
	if (r == 0 && eof) {
		return seterr(rs, "connection closed in the response body"), -1;
	}
	buf_append(&rs->body, "", 1);
	rs->body.len--;
	return r;
}

void httpc_resp_free(struct httpc_resp *rs)
{
	buf_free(&rs->head);
	buf_free(&rs->body);
}

/* ---- the connection ---- */

struct conn {
	os_fd fd;
	struct tls *tls;
	int64_t deadline;
	int (*stopping)(void);
};

static int no_stop(void)
{
	return 0;
}

/* 1 readable, 0 timeout or stop, -1 error */
static int wait_in(struct conn *c)
{
	for (;;) {
		int64_t left = c->deadline - os_now_ms();
		if (left <= 0 || c->stopping()) {
			return 0;
		}
		int r = os_wait_readable(c->fd, left < HTTPC_SLICE_MS ? (int)left : HTTPC_SLICE_MS);
		if (r != 0) {
			return r;
		}
	}
}

/* Bytes from the socket: >0, 0 at its end, -1 on error or timeout. */
static long raw_recv(struct conn *c, void *buf, size_t n)
{
	if (wait_in(c) <= 0) {
		return -1;
	}
	long got = os_read(c->fd, buf, n);
	return got >= 0 ? got : -1;
}

static int raw_send(struct conn *c, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		long w = os_write(c->fd, s, n);
		if (w <= 0 || os_now_ms() > c->deadline) {
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One step of the engine: send what is ready, else take ciphertext in.
 * 0 moved, 1 the peer closed the socket, -1 failed or stuck. */
static int tls_step(struct conn *c)
{
	size_t n;
	const void *p;
	unsigned st = tls_state(c->tls);
	if (st & TLS_SENDREC) {
		p = tls_pull_out(c->tls, &n);
		if (!p || raw_send(c, p, n) != 0) {
			return -1;
		}
		tls_sent(c->tls, n);
		return 0;
	}
	if (st & TLS_RECVREC) {
		void *b = tls_in_buf(c->tls, &n);
		long got = b ? raw_recv(c, b, n) : -1;
		if (got <= 0) {
			return got == 0 ? 1 : -1;
		}
		tls_in_ack(c->tls, (size_t)got);
		return 0;
	}
	return -1;
}

static int conn_send(struct conn *c, const void *p, size_t n)
{
	if (!c->tls) {
		return raw_send(c, p, n);
	}
	const char *s = p;
	for (int guard = 0; n > 0 && guard < 100000; guard++) {
		size_t w = tls_write(c->tls, s, n);
		s += w;
		n -= w;
		if (w == 0) {
			tls_flush(c->tls);
			if (tls_step(c) != 0) {
				return -1;
			}
		}
	}
	tls_flush(c->tls);
	while (n == 0 && (tls_state(c->tls) & TLS_SENDREC)) {
		if (tls_step(c) != 0) {
			return -1;
		}
	}
	return n == 0 ? 0 : -1;
}

/* Plaintext: >0 bytes, 0 at the end of the stream, -1 on error. */
static long conn_recv(struct conn *c, void *buf, size_t n)
{
	if (!c->tls) {
		return raw_recv(c, buf, n);
	}
	for (int i = 0; i < 64; i++) { /* each step moves a record or fails */
		size_t got = tls_read(c->tls, buf, n);
		if (got > 0) {
			return (long)got;
		}
		if (tls_failed(c->tls)) {
			return tls_handshaking(c->tls) ? -1 : 0; /* close_notify */
		}
		int r = tls_step(c);
		if (r != 0) {
			return r > 0 ? 0 : -1; /* closed without close_notify: framing decides */
		}
	}
	return -1;
}

/* A connection to host: by DNSServer's answers (dns.c, as mail goes),
 * else by the system's resolver (localhost, /etc/hosts). */
static os_fd connect_host(const char *host, int port, int64_t deadline)
{
	char addrs[4][DNS_ADDR_MAX];
	uint8_t ip[16];
	int n = os_ip_parse(host, ip) < 0 && rl_strcasecmp(host, "localhost") != 0
	        ? dns_addrs(host, addrs, 4)
	        : 0;
	for (int i = 0; i < n; i++) {
		int64_t left = deadline - os_now_ms();
		os_fd fd = os_connect(addrs[i], port, left > 0 ? (int)left : 1);
		if (fd != OS_BADFD) {
			return fd;
		}
	}
	int64_t left = deadline - os_now_ms();
	return n > 0 ? OS_BADFD : os_connect(host, port, left > 0 ? (int)left : 1);
}

static int conn_open(struct conn *c, const struct httpc_url *u, const struct httpc_req *rq,
        struct httpc_resp *rs)
{
	char err[128];
	int64_t left = c->deadline - os_now_ms();
	c->fd = connect_host(u->host, u->port, c->deadline);
	if (c->fd == OS_BADFD) {
		return seterr(rs, "cannot connect to %s port %d: %s", u->host, u->port,
		               os_strerror()),
		       -1;
	}
	os_set_send_timeout(c->fd, left > 0 ? (int)left : 1);
	if (!u->tls) {
		return 0;
	}
	const struct tls_anchors *ta = rq->anchors;
	if (!ta && !(ta = tls_anchors_system(NULL, err, sizeof err))) {
		return seterr(rs, "https://%s: %s", u->host, err), -1;
	}
	c->tls = tls_client_new_verified(u->host, ta);
	if (!c->tls) {
		return seterr(rs, "https://%s: no TLS engine (an address cannot be verified: use "
		                  "a name)",
		               u->host),
		       -1;
	}
	for (int i = 0; tls_handshaking(c->tls) && !tls_failed(c->tls) && i < 10000; i++) {
		if (tls_step(c) != 0) {
			break;
		}
	}
	if (tls_handshaking(c->tls)) {
		return seterr(rs, "TLS with %s: %s", u->host,
		               tls_failed(c->tls) ? tls_error(c->tls) : "timed out"),
		       -1;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	tls_free(c->tls);
	if (c->fd != OS_BADFD) {
		os_close(c->fd);
	}
}

/* The request's header block and body. */
static void build_request(struct buf *out, const struct httpc_url *u, const struct httpc_req *rq)
{
	int dflt = u->port == (u->tls ? 443 : 80);
	int v6 = strchr(u->host, ':') != NULL;
	buf_printf(out, "%s %s HTTP/1.1\r\nHost: %s%s%s", rq->method, u->path, v6 ? "[" : "",
	        u->host, v6 ? "]" : "");
	if (!dflt) {
		buf_printf(out, ":%d", u->port);
	}
	buf_printf(out, "\r\nUser-Agent: Rumble/%s\r\nAccept: */*\r\nConnection: close\r\n",
	        RUMBLE_VERSION);
	if (rq->ctype) {
		buf_printf(out, "Content-Type: %s\r\n", rq->ctype);
	}
	if (rq->body || strcmp(rq->method, "POST") == 0) {
		buf_printf(out, "Content-Length: %zu\r\n", rq->bodylen);
	}
	if (rq->headers) {
		buf_puts(out, rq->headers);
	}
	buf_puts(out, "\r\n");
	if (rq->body) {
		buf_append(out, rq->body, rq->bodylen);
	}
}

/* Reads until httpc_parse has the whole response. */
static int read_response(struct conn *c, const struct httpc_req *rq, size_t body_max,
        struct httpc_resp *rs)
{
	struct buf raw;
	char chunk[16384];
	int r = 0, head = !strcmp(rq->method, "HEAD");
	buf_init(&raw);
	while (r == 0) {
		long got = conn_recv(c, chunk, sizeof chunk);
		if (got < 0) {
			seterr(rs, "%s", os_now_ms() >= c->deadline ? "timed out" :
			                 c->tls && tls_failed(c->tls) ? tls_error(c->tls) :
			                                                "connection failed");
			r = -1;
			break;
		}
		buf_append(&raw, chunk, (size_t)got);
		if (raw.len > HTTPC_HEAD_MAX + body_max + HTTPC_CHUNK_SLACK) {
			seterr(rs, "response over %zu bytes", body_max);
			r = -1;
			break;
		}
		r = httpc_parse(raw.data, raw.len, got == 0, head, body_max, rs);
	}
	buf_free(&raw);
	return r < 0 ? -1 : 0;
}

/* see rumble.h */
int httpc_request(const struct httpc_req *rq, struct httpc_resp *rs)
{
	struct httpc_url u;
	struct conn c = {OS_BADFD, NULL, 0, rq->stopping ? rq->stopping : no_stop};
	struct buf out;
	memset(rs, 0, sizeof *rs);
	buf_init(&rs->head);
	buf_init(&rs->body);
	if (httpc_url_parse(rq->url, &u) != 0) {
		return seterr(rs, "not an http(s) URL: %.200s", rq->url), -1;
	}
	c.deadline = os_now_ms() + (rq->timeout_ms > 0 ? rq->timeout_ms : HTTPC_TIMEOUT_MS);
	if (conn_open(&c, &u, rq, rs) != 0) {
		conn_close(&c);
		return -1;
	}
	buf_init(&out);
	build_request(&out, &u, rq);
	int rc = conn_send(&c, out.data, out.len);
	buf_free(&out);
	if (rc != 0) {
		seterr(rs, "cannot send the request to %s: %s", u.host,
		        c.tls && tls_failed(c.tls) ? tls_error(c.tls) : "connection failed");
	} else {
		rc = read_response(&c, rq, rq->body_max ? rq->body_max : HTTPC_BODY_MAX, rs);
	}
	conn_close(&c);
	return rc;
}
