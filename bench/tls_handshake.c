/*
 * bench/tls_handshake.c - what crypto.c's TLS engine costs: full
 * handshakes per second on one core, and memory per idle session.
 * bench/tls.sh builds and runs it; Linux only (mallinfo2, /proc).
 *
 *   tls_handshake [SECONDS [SESSIONS [CERT KEY]]]
 *
 * Without CERT and KEY it makes a self-signed EC P-256 certificate (the
 * one Rumble makes on first start), so the handshakes are ECDHE-ECDSA.
 *
 * Handshakes: a fresh struct tls each time, against BearSSL's client in
 * the same thread (full X.509 validation of the chain, no resumption),
 * bytes shuttled in memory, then one line each way. Reported twice: the
 * pairs per second (both ends on this core) and the server's own rate
 * (the thread CPU time spent inside tls_* calls only), which is what a
 * Rumble worker would spend per incoming handshake.
 *
 * Memory: SESSIONS server engines, each past its handshake and idle,
 * held at once; the heap and RSS growth divided by SESSIONS.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

#include "rumble.h"

struct client {
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	br_x509_trust_anchor ta;
	unsigned char dn[1024], key[1024];
	size_t dnlen;
	unsigned char io[BR_SSL_BUFSIZE_BIDI];
};

static double server_cpu; /* seconds of thread CPU inside tls_* calls */

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void collect(void *ctx, const void *p, size_t n)
{
	buf_append(ctx, p, n);
}

static void dn_collect(void *ctx, const void *p, size_t n)
{
	struct client *c = ctx;
	if (c->dnlen + n <= sizeof c->dn) {
		memcpy(c->dn + c->dnlen, p, n);
	}
	c->dnlen += n;
}

/* The first certificate of a PEM file as the client's trust anchor. */
static int client_trust(struct client *c, const char *pem)
{
	FILE *f = fopen(pem, "rb");
	char text[65536];
	size_t len = f ? fread(text, 1, sizeof text, f) : 0;
	struct buf der;
	br_pem_decoder_context pc;
	int done = 0;
	if (f) {
		fclose(f);
	}
	buf_init(&der);
	br_pem_decoder_init(&pc);
	for (const char *p = text; len > 0 && !done;) {
		size_t k = br_pem_decoder_push(&pc, p, len);
		p += k;
		len -= k;
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			br_pem_decoder_setdest(&pc, collect, &der);
		} else if (ev == BR_PEM_END_OBJ) {
			done = 1;
		}
	}
	br_x509_decoder_context xd;
	br_x509_decoder_init(&xd, dn_collect, c);
	br_x509_decoder_push(&xd, der.data, der.len);
	buf_free(&der);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || c->dnlen > sizeof c->dn) {
		return -1;
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
	return 0;
}

/* Server calls, timed. */
static const void *s_pull(struct tls *s, size_t *n)
{
	double t = cpu_now();
	const void *p = tls_pull_out(s, n);
	server_cpu += cpu_now() - t;
	return p;
}

static void s_sent(struct tls *s, size_t n)
{
	double t = cpu_now();
	tls_sent(s, n);
	server_cpu += cpu_now() - t;
}

static size_t s_push(struct tls *s, const void *p, size_t n)
{
	double t = cpu_now();
	size_t k = tls_push_in(s, p, n);
	server_cpu += cpu_now() - t;
	return k;
}

static void shuttle(struct tls *s, br_ssl_engine_context *c)
{
	size_t moved;
	do {
		size_t n, room;
		moved = 0;
		const unsigned char *out = s_pull(s, &n);
		unsigned char *in = br_ssl_engine_recvrec_buf(c, &room);
		if (out && in) {
			size_t k = n < room ? n : room;
			memcpy(in, out, k);
			br_ssl_engine_recvrec_ack(c, k);
			s_sent(s, k);
			moved += k;
		}
		unsigned char *cout = br_ssl_engine_sendrec_buf(c, &n);
		if (cout) {
			size_t k = s_push(s, cout, n);
			if (k) {
				br_ssl_engine_sendrec_ack(c, k);
				moved += k;
			}
		}
	} while (moved);
}

/* One full handshake and a line each way; the server engine is left
 * connected and idle. NULL on failure. */
static int resume; /* connect_one offers the last session back */

static struct tls *connect_one(struct tls_ctx *ctx, struct client *c, const char *name)
{
	size_t len;
	unsigned char *b;
	char line[64];
	double t = cpu_now();
	struct tls *s = tls_new(ctx);
	server_cpu += cpu_now() - t;
	if (!s || !br_ssl_client_reset(&c->cc, name, resume)) {
		return NULL;
	}
	shuttle(s, &c->cc.eng);
	if (tls_handshaking(s) || !(b = br_ssl_engine_sendapp_buf(&c->cc.eng, &len))) {
		fprintf(stderr, "handshake failed: %s (client error %d)\n", tls_error(s),
		        br_ssl_engine_last_error(&c->cc.eng));
		tls_free(s);
		return NULL;
	}
	memcpy(b, "NOOP\r\n", 6);
	br_ssl_engine_sendapp_ack(&c->cc.eng, 6);
	br_ssl_engine_flush(&c->cc.eng, 0);
	shuttle(s, &c->cc.eng);
	t = cpu_now();
	size_t n = tls_read(s, line, sizeof line);
	tls_write(s, "250 OK\r\n", 8);
	tls_flush(s);
	server_cpu += cpu_now() - t;
	shuttle(s, &c->cc.eng);
	if (n != 6 || !(b = br_ssl_engine_recvapp_buf(&c->cc.eng, &len)) || len != 8) {
		fprintf(stderr, "no data after the handshake\n");
		tls_free(s);
		return NULL;
	}
	br_ssl_engine_recvapp_ack(&c->cc.eng, len);
	return s;
}

/* The subject CN of the leaf, from the context's description. */
static void name_of(struct tls_ctx *ctx, char *name, size_t len)
{
	const char *d = strstr(tls_ctx_describe(ctx), "CN=");
	size_t n = d ? strcspn(d + 3, ",") : 0;
	snprintf(name, len, "%.*s", (int)n, d ? d + 3 : "");
}

static long rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
			resident = 0;
		}
		fclose(f);
	}
	return resident * 4;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	int nsess = argc > 2 ? atoi(argv[2]) : 2000;
	char dir[] = "/tmp/rumble-tls-bench.XXXXXX", cert[300], key[300], err[256], name[128];
	struct client *c = xcalloc(1, sizeof *c);

	os_init();
	if (argc > 4) {
		snprintf(cert, sizeof cert, "%s", argv[3]);
		snprintf(key, sizeof key, "%s", argv[4]);
	} else {
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(cert, sizeof cert, "%s/cert.pem", dir);
		snprintf(key, sizeof key, "%s/key.pem", dir);
		if (tls_selfsigned_create(cert, key, "bench.example", err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	struct tls_ctx *ctx = tls_ctx_load(cert, key, err, sizeof err);
	if (!ctx || client_trust(c, cert) != 0) {
		fprintf(stderr, "%s\n", ctx ? "cannot read the certificate" : err);
		return 1;
	}
	name_of(ctx, name, sizeof name);
	printf("%s\n", tls_ctx_describe(ctx));

	/* handshakes per second */
	struct tls *s = connect_one(ctx, c, name);
	if (!s) {
		return 1;
	}
	printf("suite %s %s\n", tls_version(s), tls_cipher(s));
	tls_free(s);
	long count = 0;
	server_cpu = 0;
	double w0 = wall_now(), c0 = cpu_now();
	while (wall_now() - w0 < seconds) {
		s = connect_one(ctx, c, name);
		if (!s) {
			return 1;
		}
		tls_free(s);
		count++;
	}
	double wall = wall_now() - w0, cpu = cpu_now() - c0;
	printf("handshakes: %ld in %.2f s: %.0f pairs/s (client and server on one core)\n", count,
	        wall, (double)count / wall);
	printf("server side: %.3f ms CPU per handshake = %.0f handshakes/s per core (%.0f%% of the "
	       "pair's CPU)\n",
	        server_cpu * 1000 / (double)count, (double)count / server_cpu,
	        100 * server_cpu / cpu);

	/* resumed handshakes: the session cache spares the key exchange */
	resume = 1;
	count = 0;
	server_cpu = 0;
	w0 = wall_now();
	while (wall_now() - w0 < seconds / 3) {
		s = connect_one(ctx, c, name);
		if (!s) {
			return 1;
		}
		tls_free(s);
		count++;
	}
	printf("resumed: %.3f ms server CPU per handshake = %.0f handshakes/s per core\n",
	        server_cpu * 1000 / (double)count, (double)count / server_cpu);
	resume = 0;

	/* memory per idle session */
	struct tls **all = xcalloc((size_t)nsess, sizeof *all);
	struct mallinfo2 m0 = mallinfo2();
	long r0 = rss_kb();
	for (int i = 0; i < nsess; i++) {
		all[i] = connect_one(ctx, c, name);
		if (!all[i]) {
			return 1;
		}
	}
	struct mallinfo2 m1 = mallinfo2();
	long r1 = rss_kb();
	double heap = (double)((m1.uordblks + m1.hblkhd) - (m0.uordblks + m0.hblkhd));
	printf("idle sessions: %d; sizeof struct tls %zu B, malloc block %zu B\n", nsess,
	        tls_session_size(), malloc_usable_size(all[0]) + sizeof(size_t));
	printf("per idle session: %.0f B of heap (%.1f KB), %.0f B of RSS (%.1f KB); target <= 24 "
	       "KB\n",
	        heap / nsess, heap / nsess / 1024, (double)(r1 - r0) * 1024 / nsess,
	        (double)(r1 - r0) / nsess);
	for (int i = 0; i < nsess; i++) {
		tls_free(all[i]);
	}
	free(all);
	tls_ctx_free(ctx);
	free(c);
	if (argc <= 4) {
		remove(cert);
		remove(key);
		rmdir(dir);
	}
	return 0;
}
