/* test_authres.c - inbound authentication: Ed25519 verification (RFC
 * 8032 7.1's vectors), RSA verification, the public suffix list,
 * DMARC records and DKIM verification of whole messages. */
#include <stdio.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

struct vec {
	const char *pub, *msg, *sig;
};

static const struct vec vecs[] = {
        /* RFC 8032 7.1, TEST 1, 2, 3 */
        {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
                "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
                "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
        {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290"
                "ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
        /* made by libsodium (python3-nacl): a 32-byte message, as DKIM signs */
        {"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
                "6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283",
                "0e6d264980051744d1e68c83a5c480a44aaf8178de36baa71b3c95eeaa825b1d5a435bbd6ea103d1"
                "e39a82d6b134f59f56c38c4d1496e64227847dba0552e80e"},
};

static void test_ed25519_vectors(void)
{
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
		uint8_t pub[32], msg[64], sig[64];
		size_t n = strlen(vecs[i].msg) / 2;
		unhex(vecs[i].pub, pub);
		unhex(vecs[i].msg, msg);
		unhex(vecs[i].sig, sig);
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 1);
		sig[5] ^= 1; /* R changed */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
		sig[5] ^= 1;
		sig[40] ^= 0x10; /* S changed */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
		sig[40] ^= 0x10;
		msg[n] = 1; /* one more byte */
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n + 1, sig), 0);
		pub[0] ^= 2;
		ASSERT_EQ(crypto_ed25519_verify(pub, msg, n, sig), 0);
	}
}

static void test_ed25519_malleable(void)
{
	/* S + L verifies as S would, mathematically: it must be refused */
	static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6,
	        0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	        0, 0x10};
	uint8_t pub[32], sig[64];
	unhex(vecs[0].pub, pub);
	unhex(vecs[0].sig, sig);
	int carry = 0;
	for (int i = 0; i < 32; i++) {
		int v = sig[32 + i] + order[i] + carry;
		sig[32 + i] = (uint8_t)v;
		carry = v >> 8;
	}
	ASSERT_EQ(crypto_ed25519_verify(pub, NULL, 0, sig), 0);
}

static const char *org(const char *d)
{
	static char out[256];
	if (dmarc_org_domain(d, out, sizeof out) != 0) {
		return "(error)";
	}
	return out;
}

static void test_org_domain(void)
{
	ASSERT_STR(org("a.b.example.co.uk"), "example.co.uk");
	ASSERT_STR(org("example.co.uk"), "example.co.uk");
	ASSERT_STR(org("Mail.Example.COM."), "example.com");
	ASSERT_STR(org("example.com"), "example.com");
	ASSERT_STR(org("co.uk"), "co.uk");                 /* a suffix itself */
	ASSERT_STR(org("x.y.unknowntld"), "y.unknowntld"); /* the "*" rule */
	/* *.ck with the exception !www.ck */
	ASSERT_STR(org("a.b.foo.ck"), "b.foo.ck");
	ASSERT_STR(org("a.www.ck"), "www.ck");
	/* *.kawasaki.jp, !city.kawasaki.jp */
	ASSERT_STR(org("x.y.kawasaki.jp"), "x.y.kawasaki.jp");
	ASSERT_STR(org("a.city.kawasaki.jp"), "city.kawasaki.jp");
	ASSERT_STR(org("www.bbc.co.uk"), "bbc.co.uk");
	ASSERT_STR(org("foo.github.io"), "foo.github.io"); /* the private section too */
	ASSERT_STR(org("a.."), "(error)"); /* empty labels (found by fuzz_authres) */
	ASSERT_STR(org(".a"), "(error)");
	ASSERT_STR(org(""), "(error)");
	/* IDN rules as A-labels: 個人.香港 */
	ASSERT_STR(org("a.b.xn--gmqw5a.xn--j6w193g"), "b.xn--gmqw5a.xn--j6w193g");
}

static void test_dmarc_parse(void)
{
	struct dmarc_record r;
	ASSERT_EQ(dmarc_parse("v=DMARC1; p=reject", &r), 0);
	ASSERT_EQ(r.p, DMARC_REJECT);
	ASSERT_EQ(r.sp, DMARC_REJECT);
	ASSERT_EQ(r.pct, 100);
	ASSERT_EQ(r.adkim_strict, 0);
	ASSERT_EQ(
	        dmarc_parse(
	                "v=DMARC1;p=quarantine; sp=none; pct=20; adkim=s; aspf=s; rua=mailto:x@y;",
	                &r),
	        0);
	ASSERT_EQ(r.p, DMARC_QUARANTINE);
	ASSERT_EQ(r.sp, DMARC_NONE);
	ASSERT_EQ(r.pct, 20);
	ASSERT_EQ(r.adkim_strict, 1);
	ASSERT_EQ(r.aspf_strict, 1);
	ASSERT_EQ(dmarc_parse("p=reject; v=DMARC1", &r), -1); /* v= first */
	ASSERT_EQ(dmarc_parse("v=DMARC1; p=bogus", &r), -1);
	ASSERT_EQ(dmarc_parse("v=DMARC1", &r), -1);
	ASSERT_EQ(dmarc_parse("v=spf1 -all", &r), -1);
	ASSERT_EQ(dmarc_parse("v=DMARC1; p=none; pct=500", &r), 0);
	ASSERT_EQ(r.pct, 100);
}

static const char *simple_hash(const char *body)
{
	static char out[64];
	struct dkim_body b;
	uint8_t h[32];
	dkim_body_init(&b);
	dkim_body_simple(&b);
	for (size_t i = 0; body[i]; i++) {
		dkim_body_feed(&b, body + i, 1);
	}
	dkim_body_end(&b, h);
	crypto_base64_encode(h, 32, out);
	return out;
}

static const char *sha_b64(const char *s)
{
	static char out[64];
	uint8_t h[32];
	crypto_sha256(s, strlen(s), h);
	crypto_base64_encode(h, 32, out);
	return out;
}

static void test_simple_body(void)
{
	char want[64];
	/* RFC 6376 3.4.5: " C \r\nD \t E\r\n\r\n\r\n" -> " C \r\nD \t E\r\n" */
	snprintf(want, sizeof want, "%s", sha_b64(" C \r\nD \t E\r\n"));
	ASSERT_STR(simple_hash(" C \r\nD \t E\r\n\r\n\r\n"), want);
	/* an empty body (or only empty lines) is one CRLF */
	snprintf(want, sizeof want, "%s", sha_b64("\r\n"));
	ASSERT_STR(simple_hash(""), want);
	ASSERT_STR(simple_hash("\r\n\r\n"), want);
	/* no CRLF at the end: one is added; inner empty lines stay */
	snprintf(want, sizeof want, "%s", sha_b64("a\r\n\r\nb\r\n"));
	ASSERT_STR(simple_hash("a\r\n\r\nb"), want);
	snprintf(want, sizeof want, "%s", sha_b64("a\r\n\r\n \r\n"));
	ASSERT_STR(simple_hash("a\r\n\r\n \r\n\r\n"), want);
}

/* A message with a signature whose key is not looked up: what fails
 * before DNS (body hash, algorithm, From not signed) and the field kept. */
static void test_verify_offline(void)
{
	const char *msg =
	        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; h=from:to;\r\n"
	        "\tbh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=; b=Zm9v\r\n"
	        "DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=x; h=from; bh=x; b=y\r\n"
	        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; h=to; bh=x; b=y\r\n"
	        "DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=x; h=From; x=1000;\r\n"
	        " bh=x; b=y\r\n"
	        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; h=from; "
	        "i=a@example.org;\r\n"
	        " bh=x; b=y\r\n"
	        "From: a@example.com\r\nTo: b@example.org\r\n\r\nbody\r\n";
	struct dkim_result r[DKIM_VERIFY_MAX];
	struct dkim_verify *v = dkim_verify_new(1);
	size_t len = strlen(msg);
	for (size_t i = 0; i < len; i += 7) {
		dkim_verify_feed(v, msg + i, len - i < 7 ? len - i : 7);
	}
	int n = dkim_verify_end(v, r, DKIM_VERIFY_MAX);
	const struct dkim_field *f;
	int nf = dkim_verify_fields(v, &f);
	dkim_verify_free(v);
	ASSERT_EQ(n, 5);
	ASSERT_EQ(nf, 7);
	ASSERT_EQ(r[0].status, DKIM_FAIL);
	ASSERT_STR(r[0].why, "body hash did not verify");
	ASSERT_STR(r[0].d, "example.com");
	ASSERT_EQ(r[1].status, DKIM_PERMERROR);
	ASSERT_STR(r[1].why, "rsa-sha1 not accepted (RFC 8301)");
	ASSERT_EQ(r[2].status, DKIM_PERMERROR);
	ASSERT_STR(r[2].why, "From not signed");
	ASSERT_EQ(r[3].status, DKIM_FAIL);
	ASSERT_STR(r[3].why, "signature expired");
	ASSERT_EQ(r[4].status, DKIM_PERMERROR);
	ASSERT_STR(r[4].why, "i= not within d=");
}

/* A header past the field limit is not taken apart (its rewrite would
 * lose the fields not kept): no fields, no signatures. */
static void test_verify_many_fields(void)
{
	struct dkim_verify *v = dkim_verify_new(1);
	const struct dkim_field *f;
	struct dkim_result r[DKIM_VERIFY_MAX];
	const char *sig =
	        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; h=to; bh=x; b=y\r\n";
	dkim_verify_feed(v, sig, strlen(sig));
	for (int i = 0; i < 1000; i++) {
		dkim_verify_feed(v, "X: y\r\n", 6);
	}
	dkim_verify_feed(v, "\r\nbody\r\n", 8);
	int nf = dkim_verify_fields(v, &f);
	size_t hlen;
	const char *h = dkim_verify_header(v, &hlen);
	int n = dkim_verify_end(v, r, DKIM_VERIFY_MAX);
	dkim_verify_free(v);
	ASSERT_EQ(nf, 0);
	ASSERT(h == NULL);
	ASSERT_EQ(n, 0);
}

void tests_authres(void)
{
	RUN(test_verify_many_fields, "DKIM verification leaves a header of too many fields alone");
	RUN(test_org_domain, "the organizational domain follows the public suffix list");
	RUN(test_dmarc_parse, "DMARC records are read with their defaults and bad ones refused");
	RUN(test_simple_body,
	        "DKIM's simple body canonicalization drops trailing empty lines only");
	RUN(test_verify_offline, "DKIM verification fails a wrong body hash, rsa-sha1, an unsigned "
	                         "From, x= past, i= outside d=");

	RUN(test_ed25519_vectors, "ed25519 verifies RFC 8032's vectors and refuses changed ones");
	RUN(test_ed25519_malleable, "ed25519 refuses S at or above the group order");
}
