/* test_httpc.c - httpc.c's parsing (URLs, responses, chunked bodies,
 * header fields) without a socket, and x509.c's trust anchors: a
 * verified client engine (tls_client_new_verified) against Rumble's own
 * server engine in memory, trusting the server's certificate or not. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void url_parts_are_split(void)
{
	struct httpc_url u;
	ASSERT_EQ(httpc_url_parse("https://acme.example.org/dir", &u), 0);
	ASSERT_EQ(u.tls, 1);
	ASSERT_EQ(u.port, 443);
	ASSERT_STR(u.host, "acme.example.org");
	ASSERT_STR(u.path, "/dir");
	ASSERT_EQ(httpc_url_parse("http://[::1]:8080?x=1#frag", &u), 0);
	ASSERT_EQ(u.tls, 0);
	ASSERT_EQ(u.port, 8080);
	ASSERT_STR(u.host, "::1");
	ASSERT_STR(u.path, "/?x=1");
	ASSERT_EQ(httpc_url_parse("ftp://x/", &u), -1);
	ASSERT_EQ(httpc_url_parse("http://x:99999/", &u), -1);
	ASSERT_EQ(httpc_url_parse("http://x/a b", &u), -1);
	ASSERT_EQ(httpc_url_parse("http://x/a\r\nX: y", &u), -1);
	ASSERT_EQ(httpc_url_parse("http://user@x/", &u), -1);
}

static void a_chunked_body_is_joined(void)
{
	struct buf out;
	const char *b = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
	buf_init(&out);
	ASSERT_EQ(httpc_unchunk(b, strlen(b), &out, 100), 1);
	ASSERT_EQ(out.len, 12);
	ASSERT(memcmp(out.data, "hello, world", 12) == 0);
	/* every shorter prefix asks for more */
	for (size_t n = 0; n < strlen(b); n++) {
		if (httpc_unchunk(b, n, &out, 100) != 0) {
			printf("     prefix %zu\n", n);
			ASSERT(0);
		}
	}
	ASSERT_EQ(httpc_unchunk(b, strlen(b), &out, 11), -1); /* over max */
	ASSERT_EQ(httpc_unchunk("zz\r\n", 4, &out, 100), -1);
	ASSERT_EQ(httpc_unchunk("3\r\nabcX", 7, &out, 100), -1);
	ASSERT_EQ(httpc_unchunk("fffffffffffffffffffff\r\n", 23, &out, 100), -1);
	buf_free(&out);
}

static void a_response_is_parsed_by_its_framing(void)
{
	struct httpc_resp rs;
	char v[64];
	memset(&rs, 0, sizeof rs);
	const char *r1 = "HTTP/1.1 201 Created\r\nLocation: https://x/acct/1\r\n"
	                 "Replay-Nonce: abc\r\nLink: <https://x/a>;rel=\"up\"\r\n"
	                 "link: <https://x/b>;rel=\"alternate\"\r\nContent-Length: 4\r\n\r\nbody";
	ASSERT_EQ(httpc_parse(r1, strlen(r1) - 1, 0, 0, 100, &rs), 0);
	ASSERT_EQ(httpc_parse(r1, strlen(r1), 0, 0, 100, &rs), 1);
	ASSERT_EQ(rs.status, 201);
	ASSERT_STR(rs.body.data, "body");
	ASSERT_EQ(httpc_header(&rs, "replay-nonce", 0, v, sizeof v), 1);
	ASSERT_STR(v, "abc");
	ASSERT_EQ(httpc_header(&rs, "Link", 1, v, sizeof v), 1);
	ASSERT_STR(v, "<https://x/b>;rel=\"alternate\"");
	ASSERT_EQ(httpc_header(&rs, "Link", 2, v, sizeof v), 0);
	ASSERT_EQ(httpc_parse(r1, strlen(r1), 0, 0, 3, &rs), -1); /* body over max */

	const char *r2 = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
	                 "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
	ASSERT_EQ(httpc_parse(r2, strlen(r2), 0, 0, 100, &rs), 1);
	ASSERT_EQ(rs.status, 200);
	ASSERT_STR(rs.body.data, "ok");

	const char *r3 = "HTTP/1.0 200 OK\r\n\r\nuntil close";
	ASSERT_EQ(httpc_parse(r3, strlen(r3), 0, 0, 100, &rs), 0);
	ASSERT_EQ(httpc_parse(r3, strlen(r3), 1, 0, 100, &rs), 1);
	ASSERT_STR(rs.body.data, "until close");

	const char *r4 = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	ASSERT_EQ(httpc_parse(r4, strlen(r4), 0, 1, 100, &rs), 1); /* HEAD */
	ASSERT_EQ(rs.body.len, 0);
	ASSERT_EQ(httpc_parse(r4, strlen(r4), 1, 0, 100, &rs), -1); /* cut short */
	ASSERT_EQ(httpc_parse("SMTP 220 hi\r\n\r\n", 15, 0, 0, 100, &rs), -1);
	httpc_resp_free(&rs);
}

static void a_header_block_is_bounded(void)
{
	struct httpc_resp rs;
	struct buf b;
	memset(&rs, 0, sizeof rs);
	buf_init(&b);
	buf_puts(&b, "HTTP/1.1 200 OK\r\n");
	while (b.len <= HTTPC_HEAD_MAX) {
		buf_puts(&b, "X-Filler: 0123456789012345678901234567890123456789\r\n");
	}
	ASSERT_EQ(httpc_parse(b.data, b.len, 0, 0, 100, &rs), -1);
	buf_free(&b);
	httpc_resp_free(&rs);
}

/* ---- anchors and the verified client ---- */

/* Moves records between two engines until neither moves. */
static void shuttle(struct tls *a, struct tls *b)
{
	for (int moved = 1, guard = 0; moved && guard < 1000; guard++) {
		moved = 0;
		struct tls *from[2] = {a, b}, *to[2] = {b, a};
		for (int k = 0; k < 2; k++) {
			size_t n;
			const void *p = tls_pull_out(from[k], &n);
			if (p) {
				size_t took = tls_push_in(to[k], p, n);
				tls_sent(from[k], took);
				moved |= took > 0;
			}
		}
	}
}

/* The handshake of a verified client for name against a server with the
 * certificate of dir; 1 when it completes. */
static int handshake(const char *dir, const char *name, const struct tls_anchors *ta,
        char *why, size_t whylen)
{
	char cert[600], key[600], err[256];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	struct tls_ctx *ctx = tls_ctx_load(cert, key, err, sizeof err);
	if (!ctx) {
		return -1;
	}
	struct tls *s = tls_new(ctx), *c = tls_client_new_verified(name, ta);
	if (!c) {
		tls_free(s);
		tls_ctx_free(ctx);
		return -2;
	}
	shuttle(c, s);
	int ok = !tls_handshaking(c) && !tls_failed(c);
	snprintf(why, whylen, "%s", tls_error(c));
	tls_free(c);
	tls_free(s);
	tls_ctx_free(ctx);
	return ok;
}

static void anchors_from_pem_verify_a_server(void)
{
	const char *dir = unit_tmpdir();
	char cert[600], key[600], err[256], why[200];
	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	ASSERT_EQ(tls_selfsigned_create(cert, key, "mail.example.org", err, sizeof err), 0);
	struct tls_anchors *ta = tls_anchors_new(), *none = tls_anchors_new();
	ASSERT_EQ(tls_anchors_add_file(ta, cert, err, sizeof err), 1);
	ASSERT_EQ(tls_anchors_count(ta), 1);
	ASSERT_EQ(tls_anchors_add_file(none, key, err, sizeof err), -1); /* no certificate */
	ASSERT_EQ(tls_anchors_add_pem(none, "-----BEGIN CERTIFICATE-----\n!!\n", 32), -1);

	ASSERT_EQ(handshake(dir, "mail.example.org", ta, why, sizeof why), 1);
	ASSERT_EQ(handshake(dir, "other.example.org", ta, why, sizeof why), 0);
	ASSERT(strstr(why, "another name") != NULL);
	ASSERT_EQ(handshake(dir, "mail.example.org", none, why, sizeof why), 0);
	ASSERT(strstr(why, "not trusted") != NULL);
	ASSERT_EQ(handshake(dir, "127.0.0.1", ta, why, sizeof why), -2); /* no address */
	tls_anchors_free(ta);
	tls_anchors_free(none);
}


/* ---- a request over a loopback socket ---- */

struct server {
	os_fd lfd;
	const char *reply;
	char got[2048];
};

/* Answers one connection with s->reply after reading the request head. */
static void serve_one(void *arg)
{
	struct server *sv = arg;
	char peer[64];
	os_fd fd = OS_BADFD;
	for (int i = 0; i < 200 && fd == OS_BADFD; i++) {
		if (os_wait_readable(sv->lfd, 50) > 0) {
			fd = os_accept(sv->lfd, peer, sizeof peer);
			fd = fd == (os_fd)OS_AGAIN ? OS_BADFD : fd;
		}
	}
	if (fd == OS_BADFD) {
		return;
	}
	size_t n = 0;
	while (n + 1 < sizeof sv->got && !strstr(sv->got, "\r\n\r\nx") &&
	        os_wait_readable(fd, 2000) > 0) {
		long r = os_read(fd, sv->got + n, sizeof sv->got - 1 - n);
		if (r <= 0 && r != OS_AGAIN) {
			break;
		}
		n += r > 0 ? (size_t)r : 0;
		sv->got[n] = '\0';
	}
	os_write(fd, sv->reply, strlen(sv->reply));
	os_close(fd);
}

static void a_request_goes_over_a_socket(void)
{
	char err[128];
	struct server sv = {OS_BADFD, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	                              "Retry-After: 3\r\n\r\n4\r\npong\r\n0\r\n\r\n",
	        ""};
	sv.lfd = os_listen("127.0.0.1", 0, 1, err, sizeof err);
	ASSERT(sv.lfd != OS_BADFD);
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ping?a=1", os_sock_port(sv.lfd));
	os_thread *t = os_thread_start(serve_one, &sv);
	struct httpc_req rq = {"POST", url, "X-Test: 1\r\n", "text/plain", "x", 1, 5000, 0, NULL,
	        NULL};
	struct httpc_resp rs;
	int rc = httpc_request(&rq, &rs);
	os_thread_join(t);
	os_close(sv.lfd);
	char v[16] = "";
	httpc_header(&rs, "Retry-After", 0, v, sizeof v);
	int status = rs.status;
	int body_ok = rs.body.data && strcmp(rs.body.data, "pong") == 0;
	httpc_resp_free(&rs);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(status, 200);
	ASSERT(body_ok);
	ASSERT_STR(v, "3");
	ASSERT(strstr(sv.got, "POST /ping?a=1 HTTP/1.1\r\n") == sv.got);
	ASSERT(strstr(sv.got, "\r\nContent-Length: 1\r\n") != NULL);
	ASSERT(strstr(sv.got, "\r\nX-Test: 1\r\n") != NULL);
	/* nobody listening: a clear error, not a hang */
	rq.timeout_ms = 2000;
	ASSERT_EQ(httpc_request(&rq, &rs), -1);
	ASSERT(strstr(rs.err, "cannot connect") != NULL);
	httpc_resp_free(&rs);
}

void tests_httpc(void)
{
	RUN(a_request_goes_over_a_socket, "httpc POSTs over a socket and reads a chunked answer");
	RUN(url_parts_are_split, "httpc splits a URL and refuses what could inject a header");
	RUN(a_chunked_body_is_joined, "httpc joins a chunked body, asks for more on any prefix");
	RUN(a_response_is_parsed_by_its_framing,
	        "httpc reads Content-Length, chunked and close-delimited responses");
	RUN(a_header_block_is_bounded, "httpc refuses a header block over HTTPC_HEAD_MAX");
	RUN(anchors_from_pem_verify_a_server,
	        "anchors from PEM verify a server's certificate and name; others are refused");
}
