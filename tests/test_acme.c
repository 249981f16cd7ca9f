/* test_acme.c - the pieces of ACME that need no CA: json.c's reader on
 * what ACME servers send (and on hostile input), eckey.c's keys, JWK,
 * base64url and certificate request (checked by OpenSSL when installed),
 * the HTTP-01 token table of wellknown.c. The whole exchange runs against
 * pebble in tests/e2e/test_acme.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static void json_reads_an_acme_order(void)
{
	const char *t =
	        "{\n  \"status\": \"pending\",\n  \"expires\": \"2026-12-07T00:00:00Z\",\n"
	        "  \"identifiers\": [{\"type\": \"dns\", \"value\": \"a.example\"}],\n"
	        "  \"authorizations\": [\"https://ca/authz/1\", \"https://ca/authz/2\"],\n"
	        "  \"n\": -1.5e3, \"ok\": true, \"nil\": null,\n"
	        "  \"finalize\": \"https://ca/fin\\/1\", \"esc\": \"a\\\"b\\\\c\\u0041\\u00e9\"}";
	struct json doc = json_of(t, strlen(t)), v, e;
	char s[64];
	ASSERT(doc.n == strlen(t));
	ASSERT_EQ(json_get(doc, "status", &v), 0);
	ASSERT_EQ(json_str(v, s, sizeof s), 0);
	ASSERT_STR(s, "pending");
	ASSERT_EQ(json_get(doc, "authorizations", &v), 0);
	ASSERT_EQ(json_at(v, 1, &e), 0);
	ASSERT_EQ(json_str(e, s, sizeof s), 0);
	ASSERT_STR(s, "https://ca/authz/2");
	ASSERT_EQ(json_at(v, 2, &e), -1);
	ASSERT_EQ(json_get(doc, "finalize", &v), 0);
	ASSERT_EQ(json_str(v, s, sizeof s), 0);
	ASSERT_STR(s, "https://ca/fin/1");
	ASSERT_EQ(json_get(doc, "esc", &v), 0);
	ASSERT_EQ(json_str(v, s, sizeof s), 0);
	ASSERT_STR(s, "a\"b\\cA?");
	ASSERT_EQ(json_str(v, s, 4), -1); /* does not fit */
	ASSERT_EQ(json_get(doc, "identifiers", &v), 0);
	ASSERT_EQ(json_at(v, 0, &e), 0);
	ASSERT_EQ(json_get(e, "value", &v), 0);
	ASSERT_EQ(json_str(v, s, sizeof s), 0);
	ASSERT_STR(s, "a.example");
	ASSERT_EQ(json_get(doc, "missing", &v), -1);
	ASSERT_EQ(json_get(doc, "n", &v), 0);
	ASSERT_EQ(json_str(v, s, sizeof s), -1); /* not a string */
}

static void json_refuses_broken_and_deep_documents(void)
{
	struct json v;
	const char *bad[] = {
	        "{\"a\": }", "{\"a\" 1}", "{\"a\": \"x}", "[1, 2", "{\"a\": [1,]}", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct json d = json_of(bad[i], strlen(bad[i]));
		ASSERT_EQ(d.n, 0);
		ASSERT_EQ(json_get(d, "a", &v), -1);
	}
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	ASSERT_EQ(json_of(deep, 200).n, 0); /* 100 levels: over the bound */
	memset(deep, '[', 20);
	memset(deep + 20, ']', 20);
	ASSERT_EQ(json_of(deep, 40).n, 40);
	/* a document cut short: the span ends at its end, not beyond */
	const char *cut = "{\"status\": \"valid\", \"x\": [";
	ASSERT_EQ(json_of(cut, strlen(cut)).n, 0);
	struct json raw = {cut, strlen(cut)};
	ASSERT_EQ(json_get(raw, "status", &v), 0);
	ASSERT_EQ(json_get(raw, "x", &v), -1);
}

static void base64url_has_no_padding(void)
{
	char out[16];
	ASSERT_EQ(crypto_base64url("\xfb\xff", 2, out), 3);
	ASSERT_STR(out, "-_8");
	ASSERT_EQ(crypto_base64url("abc", 3, out), 4);
	ASSERT_STR(out, "YWJj");
}

static int have_openssl(void)
{
	return system("openssl version >/dev/null 2>&1") == 0;
}

static void a_key_is_saved_loaded_and_signs_a_request(void)
{
	const char *dir = unit_tmpdir();
	char path[600], csrpath[600], cmd[2000], err[256], jwk[CRYPTO_JWK_MAX],
	        jwk2[CRYPTO_JWK_MAX];
	char th[44];
	uint8_t sig[64];
	struct buf csr;
	snprintf(path, sizeof path, "%s/k.pem", dir);
	struct crypto_ec *k = crypto_ec_new();
	ASSERT(k != NULL);
	ASSERT_EQ(crypto_ec_save(k, path, err, sizeof err), 0);
	struct crypto_ec *l = crypto_ec_load(path, err, sizeof err);
	ASSERT(l != NULL);
	crypto_ec_jwk(k, jwk);
	crypto_ec_jwk(l, jwk2);
	ASSERT_STR(jwk, jwk2);
	const char *head = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"";
	ASSERT(strncmp(jwk, head, strlen(head)) == 0);
	crypto_ec_thumbprint(l, th);
	ASSERT_EQ(strlen(th), 43);
	ASSERT_EQ(crypto_ec_sign_es256(l, "abc", 3, sig), 0);
	buf_init(&csr);
	const char *names[] = {"mail.example.org", "imap.example.org"};
	ASSERT_EQ(crypto_ec_csr(l, names, 2, &csr), 0);
	snprintf(csrpath, sizeof csrpath, "%s/r.der", dir);
	ASSERT_EQ(os_write_file_atomic(csrpath, csr.data, csr.len), 0);
	buf_free(&csr);
	crypto_ec_free(k);
	crypto_ec_free(l);
	ASSERT(crypto_ec_load(csrpath, err, sizeof err) == NULL);
	if (!have_openssl()) {
		printf("     (openssl checks skipped: no openssl)\n");
		return;
	}
	snprintf(cmd, sizeof cmd,
	        "openssl req -inform DER -in %s -verify -noout -text 2>&1 | "
	        "grep -q 'DNS:mail.example.org, DNS:imap.example.org'",
	        csrpath);
	ASSERT_EQ(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "openssl req -inform DER -in %s -verify -noout 2>&1 | grep -q OK",
	        csrpath);
	ASSERT_EQ(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "openssl pkey -in %s -noout 2>/dev/null", path);
	ASSERT_EQ(system(cmd), 0);
}

static void the_token_table_takes_only_base64url(void)
{
	wellknown_init();
	ASSERT_EQ(wellknown_token_set("abc-_XYZ09", "abc-_XYZ09.thumb"), 0);
	ASSERT_EQ(wellknown_token_set("../etc", "x"), -1);
	ASSERT_EQ(wellknown_token_set("", "x"), -1);
	wellknown_token_clear(NULL);
}

void tests_acme(void)
{
	RUN(json_reads_an_acme_order, "json finds members, elements and unescaped strings");
	RUN(json_refuses_broken_and_deep_documents,
	        "json refuses malformed, cut and too deeply nested documents");
	RUN(base64url_has_no_padding, "base64url uses - and _ and no padding");
	RUN(a_key_is_saved_loaded_and_signs_a_request,
	        "an EC key is saved, loaded, and signs a request OpenSSL accepts with every name");
	RUN(the_token_table_takes_only_base64url, "the HTTP-01 token table takes only base64url");
}
