/* test_tls.c - the TLS server engine and the self-signed certificate of
 * crypto.c, against BearSSL's own client engine in memory: bytes are
 * shuttled between the two without a socket. The client validates the
 * server's chain and name (br_x509_minimal), so these tests also check
 * the certificates. OpenSSL, when installed, makes the RSA, SEC1 and
 * chain files and checks the self-signed certificate; without it those
 * tests say "skipped" and pass.
 *
 * The one file besides crypto.c that includes BearSSL: the peer must be
 * an independent TLS client, and BearSSL's is the one linked in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "rumble.h"
#include "tests/unit.h"

/* ---- helpers ---- */

static int have_openssl(void)
{
	static int known = -1;
	if (known < 0) {
		known = system("openssl version >/dev/null 2>&1") == 0;
	}
	return known;
}

#define SKIP_WITHOUT_OPENSSL()                                                                     \
	do {                                                                                       \
		if (!have_openssl()) {                                                             \
			printf("     (skipped: no openssl)\n");                                    \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Runs a shell command built like printf; returns its exit status. */
static int sh(const char *fmt, ...) RL_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* dir/name in a static ring of paths, so a test can hold a few. */
static const char *path_in(const char *dir, const char *name)
{
	static char ring[8][600];
	static int next;
	char *p = ring[next++ % 8];
	if ((size_t)snprintf(p, sizeof ring[0], "%s/%s", dir, name) >= sizeof ring[0]) {
		fatalx("path too long: %s/%s", dir, name);
	}
	return p;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;
	if (!f) {
		return NULL;
	}
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(&b, chunk, n);
	}
	fclose(f);
	*len = b.len;
	return b.data ? b.data : xstrdup("");
}

static int write_all(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		return -1;
	}
	fputs(text, f);
	return fclose(f);
}

static int contains(const void *hay, size_t n, const void *needle, size_t m)
{
	const unsigned char *h = hay;
	for (size_t i = 0; m <= n && i <= n - m; i++) {
		if (memcmp(h + i, needle, m) == 0) {
			return 1;
		}
	}
	return 0;
}

/* The DER of the first CERTIFICATE in a PEM file. */
static void pem_collect(void *ctx, const void *p, size_t n)
{
	buf_append(ctx, p, n);
}

static int first_cert_der(const char *path, struct buf *der)
{
	size_t len;
	char *text = read_all(path, &len);
	br_pem_decoder_context pc;
	int found = 0, inside = 0;
	if (!text) {
		return -1;
	}
	buf_init(der);
	br_pem_decoder_init(&pc);
	const char *p = text;
	while (len > 0 && !found) {
		size_t k = br_pem_decoder_push(&pc, p, len);
		p += k;
		len -= k;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			inside = !strcmp(br_pem_decoder_name(&pc), "CERTIFICATE");
			br_pem_decoder_setdest(&pc, inside ? pem_collect : NULL, der);
			break;
		case BR_PEM_END_OBJ:
			found = inside;
			break;
		case BR_PEM_ERROR:
			free(text);
			return -1;
		}
	}
	free(text);
	return found ? 0 : -1;
}

/* ---- a BearSSL client ---- */

struct client {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	br_x509_trust_anchor ta;
	unsigned char dn[1024], key[1024];
	size_t dnlen;
	unsigned char io[BR_SSL_BUFSIZE_BIDI];
};

static void dn_collect(void *ctx, const void *p, size_t n)
{
	struct client *c = ctx;
	if (c->dnlen + n <= sizeof c->dn) {
		memcpy(c->dn + c->dnlen, p, n);
	}
	c->dnlen += n;
}

/* A client trusting the first certificate of anchor_pem as a CA. */
static struct client *client_new(const char *anchor_pem)
{
	struct client *c = xcalloc(1, sizeof *c);
	br_x509_decoder_context xd;
	struct buf der;
	if (first_cert_der(anchor_pem, &der) != 0) {
		free(c);
		return NULL;
	}
	br_x509_decoder_init(&xd, dn_collect, c);
	br_x509_decoder_push(&xd, der.data, der.len);
	buf_free(&der);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || c->dnlen > sizeof c->dn) {
		free(c);
		return NULL;
	}
	c->ta.dn.data = c->dn;
	c->ta.dn.len = c->dnlen;
	c->ta.flags = BR_X509_TA_CA;
	c->ta.pkey = *pk;
	if (pk->key_type == BR_KEYTYPE_EC) {
		memcpy(c->key, pk->key.ec.q, pk->key.ec.qlen);
		c->ta.pkey.key.ec.q = c->key;
	} else {
		memcpy(c->key, pk->key.rsa.n, pk->key.rsa.nlen);
		memcpy(c->key + pk->key.rsa.nlen, pk->key.rsa.e, pk->key.rsa.elen);
		c->ta.pkey.key.rsa.n = c->key;
		c->ta.pkey.key.rsa.e = c->key + pk->key.rsa.nlen;
	}
	br_ssl_client_init_full(&c->cc, &c->xc, &c->ta, 1);
	br_ssl_engine_set_buffer(&c->cc.eng, c->io, sizeof c->io, 1);
	return c;
}

static int client_start(struct client *c, const char *server_name)
{
	return br_ssl_client_reset(&c->cc, server_name, 0);
}

#define ENG(c) (&(c)->cc.eng)

/* Moves bytes between server and client until neither side moves;
 * returns how many moved. */
static size_t shuttle(struct tls *s, br_ssl_engine_context *c)
{
	size_t total = 0, moved;
	do {
		moved = 0;
		size_t n, room;
		const unsigned char *out = tls_pull_out(s, &n);
		unsigned char *in = br_ssl_engine_recvrec_buf(c, &room);
		if (out && in) {
			size_t k = n < room ? n : room;
			memcpy(in, out, k);
			br_ssl_engine_recvrec_ack(c, k);
			tls_sent(s, k);
			moved += k;
		}
		unsigned char *cout = br_ssl_engine_sendrec_buf(c, &n);
		if (cout) {
			size_t k = tls_push_in(s, cout, n);
			if (k) {
				br_ssl_engine_sendrec_ack(c, k);
				moved += k;
			}
		}
		total += moved;
	} while (moved);
	return total;
}

/* Throws away what the server sends, as a socket would take it. */
static void drain(struct tls *s)
{
	size_t n;
	while (tls_pull_out(s, &n) != NULL) {
		tls_sent(s, n);
	}
}

/* 1 when both sides finished the handshake. */
static int handshake(struct tls *s, struct client *c)
{
	shuttle(s, ENG(c));
	return !tls_handshaking(s) && !tls_failed(s) &&
	       (br_ssl_engine_current_state(ENG(c)) & BR_SSL_SENDAPP);
}

static size_t client_write(struct client *c, const void *p, size_t n)
{
	size_t done = 0, len;
	unsigned char *b;
	while (done < n && (b = br_ssl_engine_sendapp_buf(ENG(c), &len)) != NULL) {
		if (len > n - done) {
			len = n - done;
		}
		memcpy(b, (const char *)p + done, len);
		br_ssl_engine_sendapp_ack(ENG(c), len);
		done += len;
	}
	br_ssl_engine_flush(ENG(c), 0);
	return done;
}

static size_t client_read(struct client *c, void *p, size_t n)
{
	size_t done = 0, len;
	unsigned char *b;
	while (done < n && (b = br_ssl_engine_recvapp_buf(ENG(c), &len)) != NULL) {
		if (len > n - done) {
			len = n - done;
		}
		memcpy((char *)p + done, b, len);
		br_ssl_engine_recvapp_ack(ENG(c), len);
		done += len;
	}
	return done;
}

/* A self-signed certificate for name in a new folder; the context. */
static struct tls_ctx *selfsigned(const char *name, const char **dir_out)
{
	static char dir[600];
	char err[256];
	rl_strlcpy(dir, unit_tmpdir(), sizeof dir);
	if (dir_out) {
		*dir_out = dir;
	}
	if (tls_selfsigned_create(path_in(dir, "cert.pem"), path_in(dir, "key.pem"), name, err,
	            sizeof err) != 0) {
		printf("     %s\n", err);
		return NULL;
	}
	struct tls_ctx *c =
	        tls_ctx_load(path_in(dir, "cert.pem"), path_in(dir, "key.pem"), err, sizeof err);
	if (!c) {
		printf("     %s\n", err);
	}
	return c;
}

/* ---- the self-signed certificate ---- */

static void selfsigned_names_the_host_and_has_a_p256_key(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	struct buf der;
	ASSERT(first_cert_der(path_in(dir, "cert.pem"), &der) == 0);
	struct client dn;
	dn.dnlen = 0;
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, dn_collect, &dn);
	br_x509_decoder_push(&xd, der.data, der.len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	int has_san = contains(der.data, der.len, "\x82\x10mail.example.org", 18);
	buf_free(&der);
	ASSERT(pk != NULL);
	ASSERT_EQ(pk->key_type, BR_KEYTYPE_EC);
	ASSERT_EQ(pk->key.ec.curve, BR_EC_secp256r1);
	ASSERT_EQ(br_x509_decoder_get_signer_key_type(&xd), BR_KEYTYPE_EC);
	ASSERT_EQ(br_x509_decoder_get_signer_hash_id(&xd), br_sha256_ID);
	ASSERT(!br_x509_decoder_isCA(&xd));
	/* the subject: SEQUENCE { SET { SEQUENCE { CN, UTF8String } } } */
	ASSERT(contains(dn.dn, dn.dnlen, "\x06\x03\x55\x04\x03\x0c\x10mail.example.org", 23));
	ASSERT(has_san);
}

static void selfsigned_key_file_is_private(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	struct os_stat st;
	ASSERT(os_stat(path_in(dir, "key.pem"), &st) == 0);
	if (strcmp(os_name(), "windows") != 0) {
		ASSERT_EQ(st.mode & 0777, 0600);
	}
	size_t len;
	char *key = read_all(path_in(dir, "key.pem"), &len);
	ASSERT(key != NULL);
	int pkcs8 = strncmp(key, "-----BEGIN PRIVATE KEY-----\n", 28) == 0;
	free(key);
	ASSERT(pkcs8);
}

static void selfsigned_passes_openssl_checks(void)
{
	SKIP_WITHOUT_OPENSSL();
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	const char *cert = path_in(dir, "cert.pem"), *key = path_in(dir, "key.pem");
	const char *text = path_in(dir, "text");
	ASSERT_EQ(sh("openssl x509 -in %s -noout -text >%s 2>&1", cert, text), 0);
	size_t len;
	char *t = read_all(text, &len);
	ASSERT(t != NULL);
	int ok = strstr(t, "Subject: CN = mail.example.org") &&
	         strstr(t, "Issuer: CN = mail.example.org") && strstr(t, "DNS:mail.example.org") &&
	         strstr(t, "ecdsa-with-SHA256") && strstr(t, "prime256v1") &&
	         strstr(t, "CA:FALSE") && strstr(t, "Version: 3");
	if (!ok) {
		printf("%s", t);
	}
	free(t);
	ASSERT(ok);
	ASSERT_EQ(sh("openssl verify -CAfile %s %s >/dev/null 2>&1", cert, cert), 0);
	/* the key is the certificate's */
	ASSERT_EQ(sh("test \"$(openssl pkey -in %s -pubout 2>/dev/null)\" = "
	             "\"$(openssl x509 -in %s -noout -pubkey)\"",
	                  key, cert),
	        0);
	/* valid for about ten years */
	ASSERT_EQ(
	        sh("openssl x509 -in %s -noout -checkend %d >/dev/null", cert, 9 * 365 * 86400), 0);
	ASSERT(sh("openssl x509 -in %s -noout -checkend %d >/dev/null", cert, 11 * 365 * 86400) !=
	        0);
}

static void selfsigned_ip_address_goes_in_ip_san(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("192.0.2.7", &dir);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	struct buf der;
	ASSERT(first_cert_der(path_in(dir, "cert.pem"), &der) == 0);
	int ip = contains(der.data, der.len, "\x87\x04\xc0\x00\x02\x07", 6);
	buf_free(&der);
	ASSERT(ip);
}

static void selfsigned_refuses_a_bad_name(void)
{
	const char *dir = unit_tmpdir();
	char err[256] = "";
	ASSERT_EQ(tls_selfsigned_create(
	                  path_in(dir, "c"), path_in(dir, "k"), "bad name!", err, sizeof err),
	        -1);
	ASSERT(strstr(err, "bad name!") != NULL);
	ASSERT_EQ(tls_selfsigned_create(path_in(dir, "c"), path_in(dir, "k"), "", err, sizeof err),
	        -1);
}

static void describe_names_key_subject_and_expiry(void)
{
	struct tls_ctx *ctx = selfsigned("mail.example.org", NULL);
	ASSERT(ctx != NULL);
	const char *d = tls_ctx_describe(ctx);
	int ok = strstr(d, "ECDSA P-256 certificate for CN=mail.example.org, chain of 1, valid "
	                   "until 20") != NULL &&
	         !strstr(d, "EXPIRED");
	if (!ok) {
		printf("     %s\n", d);
	}
	tls_ctx_free(ctx);
	ASSERT(ok);
}

/* ---- handshakes and data ---- */

static void client_validates_selfsigned_and_data_flows(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(c != NULL && s != NULL);
	ASSERT(tls_handshaking(s));
	ASSERT_STR(tls_cipher(s), "");
	ASSERT_STR(tls_error(s), "");
	ASSERT(client_start(c, "mail.example.org"));
	ASSERT(handshake(s, c));
	ASSERT_STR(tls_version(s), "TLSv1.2");
	ASSERT(strncmp(tls_cipher(s), "ECDHE-ECDSA-", 12) == 0);
	ASSERT(tls_cipher_bits(s) >= 128);
	ASSERT_STR(tls_sni(s), "mail.example.org");

	char buf[64];
	ASSERT_EQ(client_write(c, "EHLO client\r\n", 13), 13);
	shuttle(s, ENG(c));
	ASSERT(tls_state(s) & TLS_RECVAPP);
	ASSERT_EQ(tls_read(s, buf, sizeof buf), 13);
	ASSERT(memcmp(buf, "EHLO client\r\n", 13) == 0);
	ASSERT_EQ(tls_read(s, buf, sizeof buf), 0);
	ASSERT_EQ(tls_write(s, "250 hello\r\n", 11), 11);
	tls_flush(s);
	shuttle(s, ENG(c));
	ASSERT_EQ(client_read(c, buf, sizeof buf), 11);
	ASSERT(memcmp(buf, "250 hello\r\n", 11) == 0);
	ASSERT(!tls_failed(s));
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void client_refuses_selfsigned_for_another_name(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "other.example.org"));
	ASSERT(!handshake(s, c));
	ASSERT_EQ(br_ssl_engine_last_error(ENG(c)), BR_ERR_X509_BAD_SERVER_NAME);
	/* BearSSL's client sends no alert for that: the server just waits
	 * (until the socket ends or the idle timeout) */
	ASSERT(tls_handshaking(s) && !tls_failed(s));
	ASSERT_STR(tls_error(s), "");
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void large_data_flows_both_ways(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));

	size_t total = 200000, sent = 0, got = 0;
	char *data = xmalloc(total), *back = xmalloc(total);
	for (size_t i = 0; i < total; i++) {
		data[i] = (char)(i * 7 + i / 251);
	}
	int partial = 0;
	/* server to client: tls_write takes what fits, the rest waits */
	while (got < total) {
		size_t n = tls_write(s, data + sent, total - sent);
		partial |= n < total - sent;
		sent += n;
		tls_flush(s);
		shuttle(s, ENG(c));
		size_t k = client_read(c, back + got, total - got);
		ASSERT(n > 0 || k > 0);
		got += k;
	}
	ASSERT(partial);
	ASSERT(memcmp(data, back, total) == 0);
	/* client to server */
	sent = got = 0;
	memset(back, 0, total);
	while (got < total) {
		sent += client_write(c, data + sent, total - sent);
		shuttle(s, ENG(c));
		size_t k = tls_read(s, back + got, total - got);
		shuttle(s, ENG(c));
		ASSERT(k > 0 || sent < total);
		got += k;
	}
	ASSERT(memcmp(data, back, total) == 0);
	ASSERT(!tls_failed(s));
	free(data);
	free(back);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

/* Two records pushed at once: the engine takes the first, stops while
 * its plaintext waits, and takes the second after tls_read. */
static void push_in_stops_while_plaintext_waits(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));

	unsigned char wire[1024];
	size_t wlen = 0, n;
	for (int i = 0; i < 2; i++) {
		client_write(c, i ? "NOOP\r\n" : "RSET\r\n", 6);
		const unsigned char *rec = br_ssl_engine_sendrec_buf(ENG(c), &n);
		ASSERT(rec != NULL && wlen + n <= sizeof wire);
		memcpy(wire + wlen, rec, n);
		wlen += n;
		br_ssl_engine_sendrec_ack(ENG(c), n);
	}
	size_t took = tls_push_in(s, wire, wlen);
	ASSERT(took > 0 && took < wlen);
	ASSERT_EQ(tls_push_in(s, wire + took, wlen - took), 0);
	char buf[16];
	ASSERT_EQ(tls_read(s, buf, sizeof buf), 6);
	ASSERT(memcmp(buf, "RSET\r\n", 6) == 0);
	ASSERT_EQ(tls_push_in(s, wire + took, wlen - took), wlen - took);
	ASSERT_EQ(tls_read(s, buf, sizeof buf), 6);
	ASSERT(memcmp(buf, "NOOP\r\n", 6) == 0);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

/* Half-duplex: plaintext written and not yet sent blocks input. */
static void written_plaintext_holds_input_until_sent(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));

	ASSERT_EQ(tls_write(s, "220 ready\r\n", 11), 11);
	client_write(c, "QUIT\r\n", 6);
	size_t n;
	const unsigned char *rec = br_ssl_engine_sendrec_buf(ENG(c), &n);
	ASSERT(rec != NULL);
	ASSERT(!(tls_state(s) & TLS_RECVREC));
	ASSERT_EQ(tls_push_in(s, rec, n), 0);
	tls_flush(s);
	ASSERT(tls_state(s) & TLS_SENDREC);
	shuttle(s, ENG(c));
	char buf[16];
	ASSERT_EQ(client_read(c, buf, sizeof buf), 11);
	ASSERT_EQ(tls_read(s, buf, sizeof buf), 6);
	ASSERT(memcmp(buf, "QUIT\r\n", 6) == 0);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

/* The zero-copy port: the "socket" is read straight into the engine. */
static void in_buf_takes_socket_reads_directly(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org"));
	for (int rounds = 0; rounds < 100 && tls_handshaking(s); rounds++) {
		size_t n, room;
		const unsigned char *out;
		while ((out = tls_pull_out(s, &n)) != NULL) {
			unsigned char *in = br_ssl_engine_recvrec_buf(ENG(c), &room);
			ASSERT(in != NULL);
			n = n < room ? n : room;
			memcpy(in, out, n);
			br_ssl_engine_recvrec_ack(ENG(c), n);
			tls_sent(s, n);
		}
		const unsigned char *cout = br_ssl_engine_sendrec_buf(ENG(c), &n);
		/* one byte at a time, the worst a socket can do */
		for (size_t i = 0; cout && i < n; i++) {
			unsigned char *in = tls_in_buf(s, &room);
			ASSERT(in != NULL && room > 0);
			*in = cout[i];
			tls_in_ack(s, 1);
		}
		if (cout) {
			br_ssl_engine_sendrec_ack(ENG(c), n);
		}
	}
	ASSERT(!tls_handshaking(s) && !tls_failed(s));
	size_t room;
	ASSERT(tls_in_buf(s, &room) != NULL && room == 5); /* the next record header */
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void old_protocol_versions_are_refused(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	br_ssl_engine_set_versions(ENG(c), BR_TLS10, BR_TLS11);
	ASSERT(client_start(c, "mail.example.org"));
	ASSERT(!handshake(s, c));
	drain(s); /* the client gave up: the alert goes to a socket nobody reads */
	ASSERT(tls_failed(s));
	ASSERT_STR(tls_error(s),
	        "handshake failed: client does not offer TLS 1.2 (sent alert protocol_version)");
	ASSERT_EQ(br_ssl_engine_current_state(ENG(c)), BR_SSL_CLOSED);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void cbc_and_static_rsa_suites_are_refused(void)
{
	static const uint16_t weak[] = {
	        BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	        BR_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	        BR_TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
	        BR_TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256,
	        BR_TLS_RSA_WITH_AES_128_GCM_SHA256,
	        BR_TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA,
	};
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	br_ssl_engine_set_suites(ENG(c), weak, sizeof weak / sizeof weak[0]);
	ASSERT(client_start(c, "mail.example.org"));
	ASSERT(!handshake(s, c));
	ASSERT(strstr(tls_error(s), "no cipher suite") != NULL);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void server_cipher_order_wins(void)
{
	static const uint16_t orders[2][3] = {
	        {BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	                BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	                BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	        {BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	                BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	                BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
	};
	char chosen[2][64];
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	for (int i = 0; i < 2; i++) {
		struct client *c = client_new(path_in(dir, "cert.pem"));
		struct tls *s = tls_new(ctx);
		br_ssl_engine_set_suites(ENG(c), orders[i], 3);
		ASSERT(client_start(c, "mail.example.org") && handshake(s, c));
		rl_strlcpy(chosen[i], tls_cipher(s), sizeof chosen[i]);
		tls_free(s);
		free(c);
	}
	tls_ctx_free(ctx);
	ASSERT_STR(chosen[0], chosen[1]);
	ASSERT(strcmp(chosen[0], "ECDHE-ECDSA-AES256-GCM-SHA384") != 0);
}

static void renegotiation_is_refused_and_data_still_flows(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));
	ASSERT(br_ssl_engine_renegotiate(ENG(c)));
	shuttle(s, ENG(c));
	/* the server answers no_renegotiation (BearSSL's client then gives
	 * up) and stays in the first session */
	ASSERT_EQ(br_ssl_engine_last_error(ENG(c)), BR_ERR_RECV_FATAL_ALERT + 100);
	ASSERT(!tls_handshaking(s) && !tls_failed(s));
	ASSERT(tls_state(s) & TLS_SENDAPP);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void close_sends_close_notify(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));
	ASSERT_EQ(tls_write(s, "221 bye\r\n", 9), 9);
	tls_close(s);
	ASSERT(tls_state(s) & TLS_SENDREC);
	shuttle(s, ENG(c));
	char buf[16];
	ASSERT_EQ(client_read(c, buf, sizeof buf), 9); /* the data went before the alert */
	shuttle(s, ENG(c));
	ASSERT_EQ(br_ssl_engine_current_state(ENG(c)), BR_SSL_CLOSED);
	ASSERT_EQ(br_ssl_engine_last_error(ENG(c)), BR_ERR_OK);
	ASSERT(tls_failed(s)); /* the client answered with its close_notify */
	ASSERT_STR(tls_error(s), "closed");
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void a_closing_client_gets_close_notify_back(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));
	br_ssl_engine_close(ENG(c));
	shuttle(s, ENG(c));
	ASSERT(tls_failed(s));
	ASSERT_STR(tls_error(s), "closed");
	ASSERT_EQ(br_ssl_engine_current_state(ENG(c)), BR_SSL_CLOSED);
	ASSERT_EQ(br_ssl_engine_last_error(ENG(c)), BR_ERR_OK);
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void a_returning_client_resumes_its_session(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "mail.example.org"));
	size_t full = shuttle(s, ENG(c));
	ASSERT(!tls_handshaking(s));
	br_ssl_session_parameters sp, sp2;
	br_ssl_engine_get_session_parameters(ENG(c), &sp);
	tls_free(s);

	s = tls_new(ctx);
	br_ssl_engine_set_session_parameters(ENG(c), &sp);
	ASSERT(br_ssl_client_reset(&c->cc, "mail.example.org", 1));
	size_t resumed = shuttle(s, ENG(c));
	ASSERT(!tls_handshaking(s) && !tls_failed(s));
	br_ssl_engine_get_session_parameters(ENG(c), &sp2);
	ASSERT(memcmp(sp.session_id, sp2.session_id, 32) == 0);
	ASSERT(resumed < full / 2); /* no certificate, no key exchange */
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void garbage_fails_the_handshake(void)
{
	struct tls_ctx *ctx = selfsigned("mail.example.org", NULL);
	ASSERT(ctx != NULL);
	struct tls *s = tls_new(ctx);
	const char *http = "GET / HTTP/1.0\r\n\r\n";
	tls_push_in(s, http, strlen(http));
	ASSERT(tls_failed(s));
	ASSERT(strncmp(tls_error(s), "handshake failed: ", 18) == 0);
	size_t n;
	tls_pull_out(s, &n);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(tls_push_in(s, http, strlen(http)), 0);
	tls_free(s);

	/* a plaintext SMTP client on the implicit-TLS port */
	s = tls_new(ctx);
	tls_push_in(s, "EHLO x\r\n", 8);
	ASSERT(tls_failed(s));
	tls_free(s);
	tls_ctx_free(ctx);
}

static void context_outlives_its_loader(void)
{
	const char *dir;
	struct tls_ctx *ctx = selfsigned("mail.example.org", &dir);
	ASSERT(ctx != NULL);
	struct client *c = client_new(path_in(dir, "cert.pem"));
	struct tls *s = tls_new(ctx);
	tls_ctx_free(ctx); /* a reload: the session keeps the old one */
	ASSERT(client_start(c, "mail.example.org") && handshake(s, c));
	tls_free(s);
	free(c);
}

static void idle_session_fits_in_24k(void)
{
	ASSERT(tls_session_size() <= 24 * 1024);
	ASSERT(tls_session_size() >= BR_SSL_BUFSIZE_MONO);
}

/* ---- certificate and key files ---- */

/* Makes files with openssl in dir; 0 when it worked. */
static int openssl_rsa(const char *dir, const char *name)
{
	return sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem "
	          "-days 2 -subj /CN=%s -addext subjectAltName=DNS:%s >/dev/null 2>&1 && "
	          "openssl rsa -in rsa.key -out rsa-trad.key -traditional >/dev/null 2>&1",
	        dir, name, name);
}

static void loads_rsa_certificate_in_pkcs8_and_traditional_form(void)
{
	SKIP_WITHOUT_OPENSSL();
	const char *dir = unit_tmpdir();
	char err[256] = "";
	ASSERT_EQ(openssl_rsa(dir, "rsa.example"), 0);
	size_t len;
	char *k = read_all(path_in(dir, "rsa-trad.key"), &len);
	ASSERT(k != NULL);
	int trad = strstr(k, "BEGIN RSA PRIVATE KEY") != NULL;
	free(k);
	ASSERT(trad);
	for (int i = 0; i < 2; i++) {
		struct tls_ctx *ctx = tls_ctx_load(path_in(dir, "rsa.pem"),
		        path_in(dir, i ? "rsa-trad.key" : "rsa.key"), err, sizeof err);
		if (!ctx) {
			printf("     %s\n", err);
		}
		ASSERT(ctx != NULL);
		ASSERT(strncmp(tls_ctx_describe(ctx), "RSA 2048-bit certificate for CN=rsa.example",
		               43) == 0);
		struct client *c = client_new(path_in(dir, "rsa.pem"));
		struct tls *s = tls_new(ctx);
		ASSERT(client_start(c, "rsa.example") && handshake(s, c));
		ASSERT(strncmp(tls_cipher(s), "ECDHE-RSA-", 10) == 0);
		char buf[8];
		client_write(c, "NOOP\r\n", 6);
		shuttle(s, ENG(c));
		ASSERT_EQ(tls_read(s, buf, sizeof buf), 6);
		tls_free(s);
		tls_ctx_free(ctx);
		free(c);
	}
}

static void loads_sec1_ec_key_after_ec_parameters(void)
{
	SKIP_WITHOUT_OPENSSL();
	const char *dir = unit_tmpdir();
	char err[256] = "";
	/* ecparam -genkey writes "EC PARAMETERS" and then "EC PRIVATE KEY" */
	ASSERT_EQ(sh("cd %s && openssl ecparam -name secp384r1 -genkey -out ec.key 2>/dev/null && "
	             "openssl req -x509 -new -key ec.key -out ec.pem -days 2 -subj /CN=ec.example "
	             "-addext subjectAltName=DNS:ec.example >/dev/null 2>&1",
	                  dir),
	        0);
	struct tls_ctx *ctx =
	        tls_ctx_load(path_in(dir, "ec.pem"), path_in(dir, "ec.key"), err, sizeof err);
	if (!ctx) {
		printf("     %s\n", err);
	}
	ASSERT(ctx != NULL);
	ASSERT(strncmp(tls_ctx_describe(ctx), "ECDSA P-384 certificate for CN=ec.example", 41) ==
	        0);
	struct client *c = client_new(path_in(dir, "ec.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "ec.example") && handshake(s, c));
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);
}

static void chain_file_is_sent_whole(void)
{
	SKIP_WITHOUT_OPENSSL();
	const char *dir = unit_tmpdir();
	char err[256] = "";
	int made =
	        sh("(cd %s && "
	           "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n' "
	           ">ca.ext && printf 'subjectAltName=DNS:chain.example\\n' >leaf.ext && "
	           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	           "-keyout root.key -out root.pem -days 2 -subj '/CN=Test Root' && "
	           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	           "-keyout int.key -out int.csr -subj '/CN=Test Intermediate' && "
	           "openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 2 "
	           "-days 2 -extfile ca.ext -out int.pem && "
	           "openssl req -new -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr "
	           "-subj /CN=chain.example && "
	           "openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -set_serial 3 "
	           "-days 2 -extfile leaf.ext -out leaf.pem && "
	           "cat leaf.pem int.pem >chain.pem && cat chain.pem leaf.key >both.pem"
	           ") >/dev/null 2>&1",
	                dir);
	ASSERT_EQ(made, 0);
	/* the client trusts only the root: the intermediate must come along */
	struct tls_ctx *ctx =
	        tls_ctx_load(path_in(dir, "chain.pem"), path_in(dir, "leaf.key"), err, sizeof err);
	if (!ctx) {
		printf("     %s\n", err);
	}
	ASSERT(ctx != NULL);
	ASSERT(strstr(tls_ctx_describe(ctx), "chain of 2") != NULL);
	struct client *c = client_new(path_in(dir, "root.pem"));
	struct tls *s = tls_new(ctx);
	ASSERT(client_start(c, "chain.example") && handshake(s, c));
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);

	/* the leaf alone does not validate */
	ctx = tls_ctx_load(path_in(dir, "leaf.pem"), path_in(dir, "leaf.key"), err, sizeof err);
	ASSERT(ctx != NULL);
	c = client_new(path_in(dir, "root.pem"));
	s = tls_new(ctx);
	ASSERT(client_start(c, "chain.example"));
	ASSERT(!handshake(s, c));
	tls_free(s);
	tls_ctx_free(ctx);
	free(c);

	/* certificates and key in one file, no key path */
	ctx = tls_ctx_load(path_in(dir, "both.pem"), NULL, err, sizeof err);
	ASSERT(ctx != NULL);
	ASSERT(strstr(tls_ctx_describe(ctx), "chain of 2") != NULL);
	tls_ctx_free(ctx);

	/* the leaf must come first */
	ASSERT_EQ(sh("cd %s && cat int.pem leaf.pem >wrong.pem", dir), 0);
	ASSERT(tls_ctx_load(path_in(dir, "wrong.pem"), path_in(dir, "leaf.key"), err, sizeof err) ==
	        NULL);
	ASSERT(strstr(err, "must come first") != NULL);
}

static void key_of_another_certificate_is_refused(void)
{
	const char *a, *b;
	char err[256] = "", bdir[600];
	struct tls_ctx *ctx = selfsigned("a.example", &a);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	char adir[600];
	rl_strlcpy(adir, a, sizeof adir);
	ctx = selfsigned("b.example", &b);
	ASSERT(ctx != NULL);
	tls_ctx_free(ctx);
	rl_strlcpy(bdir, b, sizeof bdir);
	ASSERT(tls_ctx_load(path_in(adir, "cert.pem"), path_in(bdir, "key.pem"), err, sizeof err) ==
	        NULL);
	ASSERT(strstr(err, "does not hold the key") != NULL);
}

static void bad_files_are_refused_with_reasons(void)
{
	const char *dir = unit_tmpdir();
	char err[256] = "";
	const char *cert = path_in(dir, "cert.pem"), *key = path_in(dir, "key.pem");
	ASSERT_EQ(tls_selfsigned_create(cert, key, "mail.example.org", err, sizeof err), 0);

	ASSERT(tls_ctx_load(path_in(dir, "missing.pem"), key, err, sizeof err) == NULL);
	ASSERT(strstr(err, "missing.pem") != NULL);

	const char *enc = path_in(dir, "enc.pem");
	ASSERT_EQ(write_all(enc, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0B\n"
	                         "-----END ENCRYPTED PRIVATE KEY-----\n"),
	        0);
	ASSERT(tls_ctx_load(cert, enc, err, sizeof err) == NULL);
	ASSERT(strstr(err, "encrypted") != NULL);

	const char *none = path_in(dir, "none.pem");
	ASSERT_EQ(write_all(none, "not a certificate\n"), 0);
	ASSERT(tls_ctx_load(none, key, err, sizeof err) == NULL);
	ASSERT(strstr(err, "no certificate") != NULL);
	ASSERT(tls_ctx_load(cert, none, err, sizeof err) == NULL);
	ASSERT(strstr(err, "no private key") != NULL);
	ASSERT(tls_ctx_load(cert, NULL, err, sizeof err) == NULL); /* no key in the cert file */

	const char *junk = path_in(dir, "junk.pem");
	ASSERT_EQ(write_all(junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
	        0);
	ASSERT(tls_ctx_load(junk, key, err, sizeof err) == NULL);
	ASSERT(strstr(err, "not valid X.509") != NULL);

	const char *cut = path_in(dir, "cut.pem");
	ASSERT_EQ(write_all(cut, "-----BEGIN CERTIFICATE-----\nMIIB\n"), 0);
	ASSERT(tls_ctx_load(cut, key, err, sizeof err) == NULL);
	ASSERT(strstr(err, "does not end") != NULL);

	/* two keys in one file */
	size_t klen;
	char *k = read_all(key, &klen);
	ASSERT(k != NULL);
	struct buf two;
	buf_init(&two);
	buf_append(&two, k, klen);
	buf_append(&two, k, klen);
	free(k);
	const char *twokeys = path_in(dir, "two.pem");
	ASSERT_EQ(write_all(twokeys, two.data), 0);
	buf_free(&two);
	ASSERT(tls_ctx_load(cert, twokeys, err, sizeof err) == NULL);
	ASSERT(strstr(err, "more than one private key") != NULL);
}

static void weak_rsa_keys_are_refused(void)
{
	SKIP_WITHOUT_OPENSSL();
	const char *dir = unit_tmpdir();
	char err[256] = "";
	if (sh("cd %s && openssl req -x509 -newkey rsa:1024 -nodes -keyout k -out c -days 2 "
	       "-subj /CN=weak.example >/dev/null 2>&1",
	            dir) != 0) {
		printf("     (skipped: this openssl makes no 1024-bit keys)\n");
		return;
	}
	ASSERT(tls_ctx_load(path_in(dir, "c"), path_in(dir, "k"), err, sizeof err) == NULL);
	ASSERT(strstr(err, "too weak") != NULL);
}

void tests_tls(void)
{
	RUN(selfsigned_names_the_host_and_has_a_p256_key,
	        "a self-signed certificate has the name in CN and subjectAltName, and a P-256 key");
	RUN(selfsigned_key_file_is_private, "the self-signed key is PKCS#8 in a file of mode 0600");
	RUN(selfsigned_passes_openssl_checks,
	        "openssl reads and verifies the self-signed certificate, valid ten years");
	RUN(selfsigned_ip_address_goes_in_ip_san,
	        "an IPv4 address as the name goes into subjectAltName as iPAddress");
	RUN(selfsigned_refuses_a_bad_name, "a self-signed certificate refuses a bad host name");
	RUN(describe_names_key_subject_and_expiry,
	        "the description names the key, the subject and the end of validity");
	RUN(client_validates_selfsigned_and_data_flows,
	        "a client trusting the self-signed certificate completes a handshake, data flows");
	RUN(client_refuses_selfsigned_for_another_name,
	        "a client asking for another name refuses the certificate");
	RUN(large_data_flows_both_ways, "200 KB flow each way through the half-duplex buffer");
	RUN(push_in_stops_while_plaintext_waits,
	        "push_in takes one record and stops while its plaintext waits");
	RUN(written_plaintext_holds_input_until_sent,
	        "written plaintext holds input back until it is flushed and sent");
	RUN(in_buf_takes_socket_reads_directly,
	        "in_buf/in_ack take the socket's bytes directly, one at a time if need be");
	RUN(old_protocol_versions_are_refused, "TLS 1.0 and 1.1 clients are refused");
	RUN(cbc_and_static_rsa_suites_are_refused,
	        "CBC, CCM, 3DES, static ECDH and static RSA suites are refused");
	RUN(server_cipher_order_wins, "the server's cipher order wins over the client's");
	RUN(renegotiation_is_refused_and_data_still_flows,
	        "a client's renegotiation gets no_renegotiation; the session goes on");
	RUN(close_sends_close_notify, "tls_close sends what was written, then close_notify");
	RUN(a_closing_client_gets_close_notify_back,
	        "a client's close_notify ends the session cleanly");
	RUN(a_returning_client_resumes_its_session,
	        "a returning client resumes its session without a full handshake");
	RUN(garbage_fails_the_handshake, "plaintext on a TLS port fails the handshake at once");
	RUN(context_outlives_its_loader, "a context freed by its loader lives on for its sessions");
	RUN(idle_session_fits_in_24k, "one TLS session takes at most 24 KB");
	RUN(loads_rsa_certificate_in_pkcs8_and_traditional_form,
	        "an RSA certificate loads with a PKCS#8 or a traditional key and uses ECDHE-RSA");
	RUN(loads_sec1_ec_key_after_ec_parameters,
	        "a P-384 key in SEC1 form after EC PARAMETERS loads and works");
	RUN(chain_file_is_sent_whole,
	        "a chain file is sent whole; leaf first; certificates and key in one file");
	RUN(key_of_another_certificate_is_refused,
	        "a key that is not the certificate's is refused");
	RUN(bad_files_are_refused_with_reasons,
	        "missing, encrypted, empty, cut and doubled files are refused with reasons");
	RUN(weak_rsa_keys_are_refused, "an RSA key under 2048 bits is refused");
}
