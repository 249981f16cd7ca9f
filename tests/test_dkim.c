/* test_dkim.c - DKIM's relaxed canonicalization (RFC 6376 3.4.5's
 * examples and the edge cases around them) and a signature a fresh key
 * makes. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

/* base64 of the SHA-256 of the relaxed form of body, fed in pieces of step. */
static const char *body_hash(const char *body, size_t step)
{
	static char out[64];
	struct dkim_body b;
	uint8_t h[32];
	size_t n = strlen(body);
	dkim_body_init(&b);
	for (size_t i = 0; i < n; i += step) {
		dkim_body_feed(&b, body + i, n - i < step ? n - i : step);
	}
	dkim_body_end(&b, h);
	crypto_base64_encode(h, 32, out);
	return out;
}

static const char *hash_of(const char *canon)
{
	static char out[64];
	uint8_t h[32];
	crypto_sha256(canon, strlen(canon), h);
	crypto_base64_encode(h, 32, out);
	return out;
}

static void test_body(void)
{
	char want[64];
	/* RFC 6376 3.4.5: " C \r\nD \t E\r\n\r\n\r\n" -> " C\r\nD E\r\n" */
	snprintf(want, sizeof want, "%s", hash_of(" C\r\nD E\r\n"));
	for (size_t step = 1; step <= 4; step++) {
		ASSERT_STR(body_hash(" C \r\nD \t E\r\n\r\n\r\n", step), want);
	}
	/* an empty body is empty; only empty lines too */
	ASSERT_STR(body_hash("", 1), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	ASSERT_STR(body_hash("\r\n\r\n", 1), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	/* a last line without CRLF gets one; inner empty lines stay */
	snprintf(want, sizeof want, "%s", hash_of("a\r\n\r\nb\r\n"));
	ASSERT_STR(body_hash("a\r\n \t\r\nb", 1), want);
	/* a lone CR or LF ends a line, as the message leaves (outbound.c) */
	snprintf(want, sizeof want, "%s", hash_of("a\r\nb\r\nc\r\nd\r\n"));
	for (size_t step = 1; step <= 3; step++) {
		ASSERT_STR(body_hash("a\rb\nc\r\nd\r", step), want);
	}
}

static void hdr(const char *f, struct buf *b)
{
	dkim_header_relaxed(f, strlen(f), b);
}

static void test_headers(void)
{
	struct buf b;
	buf_init(&b);
	/* RFC 6376 3.4.5: "A: X" and "B : Y\t\r\n\tZ  " */
	hdr("A: X", &b);
	hdr("B : Y\t\r\n\tZ  ", &b);
	buf_append(&b, "", 1);
	ASSERT_STR(b.data, "a:X\r\nb:Y Z\r\n");
	buf_reset(&b);
	hdr("Subject:  two   spaces\r\n folded ", &b);
	buf_append(&b, "", 1);
	ASSERT_STR(b.data, "subject:two spaces folded\r\n");
	buf_free(&b);
}

static void test_key_signs(void)
{
	char path[600], err[200], p[1200];
	snprintf(path, sizeof path, "%s/k.pem", unit_tmpdir());
	ASSERT_EQ(crypto_rsa_create(path, 2048, err, sizeof err), 0);
	struct crypto_rsa *k = crypto_rsa_load(path, err, sizeof err);
	ASSERT(k);
	ASSERT_EQ(crypto_rsa_public_b64(k, p, sizeof p), 0);
	ASSERT(strncmp(p, "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 44) == 0);
	uint8_t h[32] = {1}, sig[512];
	ASSERT_EQ(crypto_rsa_sign_sha256(k, h, sig, sizeof sig), 256);
	ASSERT_EQ(crypto_rsa_sign_sha256(k, h, sig, 100), 0);
	crypto_rsa_free(k);
	ASSERT_EQ(crypto_rsa_create(path, 1024, err, sizeof err), -1); /* too weak */
	ASSERT(!crypto_rsa_load("/nonexistent/k.pem", err, sizeof err));
}

void tests_dkim(void)
{
	RUN(test_body, "dkim relaxed body: white space, trailing empty lines, pieces of any size");
	RUN(test_headers, "dkim relaxed headers: names lower-cased, unfolded, spaces squeezed");
	RUN(test_key_signs, "dkim keys: made, loaded, published as SPKI, 2048-bit signatures");
}
