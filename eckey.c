/*
 * eckey.c - ECDSA P-256 keys for ACME (acme.c): made, saved (PKCS#8 PEM,
 * mode 0600) and loaded; the public key as a JWK (RFC 7517/7518) and its
 * thumbprint (RFC 7638); ES256 signatures for JWS (RFC 7515: r and s,
 * 32 bytes each, not DER); a certificate signing request (PKCS#10, RFC
 * 2986) with every name in subjectAltName; and the validity of the first
 * certificate of a PEM file (when to renew). On BearSSL, like crypto.c;
 * the DER is built by der.c.
 */
#include <string.h>

#include <bearssl.h>

#include "rumble.h"

#define EC_FILE_MAX (64 * 1024)

struct crypto_ec {
	br_ec_private_key sk;
	br_ec_public_key pk;
	unsigned char kbuf[BR_EC_KBUF_PRIV_MAX_SIZE];
	unsigned char pbuf[BR_EC_KBUF_PUB_MAX_SIZE];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) RL_PRINTF(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void crypto_ec_free(struct crypto_ec *k)
{
	if (k) {
		crypto_wipe(k, sizeof *k);
		free(k);
	}
}

static int public_of(struct crypto_ec *k)
{
	return br_ec_compute_pub(br_ec_get_default(), &k->pk, k->pbuf, &k->sk) == 65 ? 0 : -1;
}

/* see rumble.h */
struct crypto_ec *crypto_ec_new(void)
{
	br_hmac_drbg_context rng;
	unsigned char seed[32];
	struct crypto_ec *k = xcalloc(1, sizeof *k);
	int ok = os_random(seed, sizeof seed) == 0;
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed);
	br_prng_seeder sd = br_prng_seeder_system(NULL);
	ok = (sd && sd(&rng.vtable)) || ok;
	if (!ok ||
	        br_ec_keygen(&rng.vtable, br_ec_get_default(), &k->sk, k->kbuf, BR_EC_secp256r1) ==
	                0 ||
	        public_of(k) != 0) {
		crypto_ec_free(k);
		k = NULL;
	}
	crypto_wipe(seed, sizeof seed);
	crypto_wipe(&rng, sizeof rng);
	return k;
}

/* see rumble.h */
int crypto_ec_save(const struct crypto_ec *k, const char *path, char *err, size_t errlen)
{
	unsigned char der[256];
	size_t n = br_encode_ec_pkcs8_der(NULL, &k->sk, &k->pk);
	if (n == 0 || n > sizeof der) {
		seterr(err, errlen, "cannot encode the key");
		return -1;
	}
	br_encode_ec_pkcs8_der(der, &k->sk, &k->pk);
	size_t pn = br_pem_encode(NULL, der, n, BR_ENCODE_PEM_PKCS8, BR_PEM_LINE64);
	char *pem = xmalloc(pn + 1);
	br_pem_encode(pem, der, n, BR_ENCODE_PEM_PKCS8, BR_PEM_LINE64);
	int rc = crypto_write_private(path, pem, pn, err, errlen);
	crypto_wipe(pem, pn);
	crypto_wipe(der, sizeof der);
	free(pem);
	return rc;
}

static void to_buf(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Reads a small file whole; -1 when missing, unreadable or too big. */
static int slurp(const char *path, struct buf *out)
{
	char chunk[4096];
	size_t n;
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && out->len <= EC_FILE_MAX) {
		buf_append(out, chunk, n);
	}
	int bad = ferror(f) || out->len > EC_FILE_MAX;
	fclose(f);
	crypto_wipe(chunk, sizeof chunk);
	return bad ? -1 : 0;
}

/* The DER of the first PEM object of text whose name satisfies want. */
static int pem_first(const struct buf *text, int (*want)(const char *), struct buf *der)
{
	br_pem_decoder_context pc;
	const char *p = text->data ? text->data : "";
	size_t len = text->len;
	int found = 0, inside = 0, tail = 0;
	br_pem_decoder_init(&pc);
	while (!found) {
		if (len == 0) {
			if (tail) {
				break;
			}
			p = "\n"; /* an END line counts once a newline follows */
			len = 1;
			tail = 1;
		}
		size_t k = br_pem_decoder_push(&pc, p, len);
		p += k;
		len -= k;
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ) {
			buf_reset(der);
			inside = want(br_pem_decoder_name(&pc));
			br_pem_decoder_setdest(&pc, inside ? to_buf : NULL, der);
		} else if (ev == BR_PEM_END_OBJ && inside) {
			found = 1;
		} else if (ev == BR_PEM_ERROR) {
			break;
		}
	}
	crypto_wipe(&pc, sizeof pc);
	return found ? 0 : -1;
}

static int is_key(const char *name)
{
	return !strcmp(name, "PRIVATE KEY") || !strcmp(name, "EC PRIVATE KEY");
}

static int is_cert(const char *name)
{
	return !strcmp(name, "CERTIFICATE");
}

/* see rumble.h */
struct crypto_ec *crypto_ec_load(const char *path, char *err, size_t errlen)
{
	struct buf text, der;
	br_skey_decoder_context kd;
	struct crypto_ec *k = NULL;
	buf_init(&text);
	buf_init(&der);
	br_skey_decoder_init(&kd);
	if (slurp(path, &text) != 0 || pem_first(&text, is_key, &der) != 0) {
		seterr(err, errlen, "%s: no readable private key", path);
		goto out;
	}
	br_skey_decoder_push(&kd, der.data, der.len);
	const br_ec_private_key *sk = br_skey_decoder_get_ec(&kd);
	if (br_skey_decoder_last_error(&kd) != 0 || !sk || sk->curve != BR_EC_secp256r1 ||
	        sk->xlen > sizeof k->kbuf) {
		seterr(err, errlen, "%s: not an EC P-256 private key", path);
		goto out;
	}
	k = xcalloc(1, sizeof *k);
	memcpy(k->kbuf, sk->x, sk->xlen);
	k->sk.curve = sk->curve;
	k->sk.x = k->kbuf;
	k->sk.xlen = sk->xlen;
	if (public_of(k) != 0) {
		seterr(err, errlen, "%s: a bad EC key", path);
		crypto_ec_free(k);
		k = NULL;
	}
out:
	crypto_wipe(&kd, sizeof kd);
	if (text.data) {
		crypto_wipe(text.data, text.cap);
	}
	if (der.data) {
		crypto_wipe(der.data, der.cap);
	}
	buf_free(&text);
	buf_free(&der);
	return k;
}

/* see rumble.h */
size_t crypto_base64url(const void *in, size_t n, char *out)
{
	size_t len = crypto_base64_encode(in, n, out);
	while (len > 0 && out[len - 1] == '=') {
		len--;
	}
	out[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	}
	return len;
}

/* see rumble.h */
void crypto_ec_jwk(const struct crypto_ec *k, char out[CRYPTO_JWK_MAX])
{
	char x[48], y[48];
	crypto_base64url(k->pk.q + 1, 32, x);
	crypto_base64url(k->pk.q + 33, 32, y);
	/* members in lexicographic order, no spaces: RFC 7638's form */
	snprintf(out, CRYPTO_JWK_MAX,
	        "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
}

/* see rumble.h */
void crypto_ec_thumbprint(const struct crypto_ec *k, char out[44])
{
	char jwk[CRYPTO_JWK_MAX], b64[48]; /* base64 with its padding first */
	uint8_t h[32];
	crypto_ec_jwk(k, jwk);
	crypto_sha256(jwk, strlen(jwk), h);
	crypto_base64url(h, sizeof h, b64);
	rl_strlcpy(out, b64, 44);
}

/* see rumble.h */
int crypto_ec_sign_es256(const struct crypto_ec *k, const void *data, size_t n, uint8_t sig[64])
{
	uint8_t h[32];
	crypto_sha256(data, n, h);
	size_t len = br_ecdsa_sign_raw_get_default()(
	        br_ec_get_default(), &br_sha256_vtable, h, &k->sk, sig);
	return len == 64 ? 0 : -1;
}

/* SubjectPublicKeyInfo of an EC P-256 key */
static void der_spki(struct der *d, const br_ec_public_key *pk)
{
	struct der alg, spki;
	unsigned char bits[1 + 65];
	der_init(&alg);
	der_raw(&alg, der_oid_ec_public_key, sizeof der_oid_ec_public_key);
	der_raw(&alg, der_oid_p256, sizeof der_oid_p256);
	der_init(&spki);
	der_wrap(&spki, 0x30, &alg);
	bits[0] = 0; /* no unused bits */
	memcpy(bits + 1, pk->q, pk->qlen);
	der_add(&spki, 0x03, bits, 1 + pk->qlen);
	der_wrap(d, 0x30, &spki);
}

/* [0] attributes: extensionRequest { subjectAltName: dNSName per name } */
static void der_san_request(struct der *d, const char *const *names, int n)
{
	static const unsigned char oid_ext_req[] = {
	        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e};
	struct der gn, seq, ext, exts, set, attr;
	der_init(&gn);
	for (int i = 0; i < n; i++) {
		der_add(&gn, 0x82, names[i], strlen(names[i]));
	}
	der_init(&seq);
	der_wrap(&seq, 0x30, &gn);
	der_init(&ext);
	der_raw(&ext, der_oid_san, sizeof der_oid_san);
	der_wrap(&ext, 0x04, &seq);
	der_init(&exts);
	der_wrap(&exts, 0x30, &ext);
	der_init(&set);
	der_wrap(&set, 0x30, &exts);
	der_init(&attr);
	der_raw(&attr, oid_ext_req, sizeof oid_ext_req);
	der_wrap(&attr, 0x31, &set);
	der_init(&set);
	der_wrap(&set, 0x30, &attr);
	der_wrap(d, 0xa0, &set);
}

/* see rumble.h */
int crypto_ec_csr(const struct crypto_ec *k, const char *const *names, int n, struct buf *out)
{
	struct der info, body, alg, csr;
	unsigned char sig[1 + 80];
	uint8_t h[32];
	if (n < 1 || strlen(names[0]) > 64) {
		return -1;
	}
	der_init(&body);
	der_add(&body, 0x02, "\0", 1); /* version 1 */
	der_name(&body, names[0]);
	der_spki(&body, &k->pk);
	der_san_request(&body, names, n);
	der_init(&info);
	der_wrap(&info, 0x30, &body);
	if (info.bad) {
		return -1;
	}
	crypto_sha256(info.b, info.len, h);
	size_t slen = br_ecdsa_sign_asn1_get_default()(
	        br_ec_get_default(), &br_sha256_vtable, h, &k->sk, sig + 1);
	if (slen == 0 || slen > sizeof sig - 1) {
		return -1;
	}
	sig[0] = 0;
	der_init(&body);
	der_raw(&body, info.b, info.len);
	der_init(&alg);
	der_raw(&alg, der_oid_ecdsa_sha256, sizeof der_oid_ecdsa_sha256);
	der_wrap(&body, 0x30, &alg);
	der_add(&body, 0x03, sig, 1 + slen);
	der_init(&csr);
	der_wrap(&csr, 0x30, &body);
	if (csr.bad) {
		return -1;
	}
	buf_reset(out);
	buf_append(out, csr.b, csr.len);
	return 0;
}

/* extensions [3]: subjectAltName dNSName, acmeIdentifier (critical) */
static void der_alpn_extensions(struct der *d, const char *name, const uint8_t digest[32])
{
	/* id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 */
	static const unsigned char oid_acme[] = {
	        0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f};
	struct der gn, w, ext, exts;
	der_init(&gn);
	der_add(&gn, 0x82, name, strlen(name));
	der_init(&w);
	der_wrap(&w, 0x30, &gn);
	der_init(&ext);
	der_raw(&ext, der_oid_san, sizeof der_oid_san);
	der_wrap(&ext, 0x04, &w);
	der_init(&exts);
	der_wrap(&exts, 0x30, &ext);
	der_init(&w);
	der_add(&w, 0x04, digest, 32); /* Authorization ::= OCTET STRING (SIZE (32)) */
	der_init(&ext);
	der_raw(&ext, oid_acme, sizeof oid_acme);
	der_add(&ext, 0x01, "\xff", 1); /* critical */
	der_wrap(&ext, 0x04, &w);
	der_wrap(&exts, 0x30, &ext);
	der_init(&w);
	der_wrap(&w, 0x30, &exts);
	der_wrap(d, 0xa3, &w);
}

/* see rumble.h */
int crypto_alpn_cert(const char *name, const char *keyauth, struct buf *out, uint8_t x[32])
{
	static const unsigned char v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
	struct crypto_ec *k = crypto_ec_new();
	struct der seq, tmp, tbs, body, cert;
	unsigned char serial[16], sig[1 + 80];
	uint8_t h[32];
	int64_t now = os_time();
	const char *cn = strlen(name) <= 64 ? name : "acme-tls-alpn-01";
	if (!k || k->sk.xlen != 32 || os_random(serial, sizeof serial) != 0) {
		crypto_ec_free(k);
		return -1;
	}
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	crypto_sha256(keyauth, strlen(keyauth), h);
	der_init(&seq);
	der_raw(&seq, v3, sizeof v3);
	der_add(&seq, 0x02, serial, sizeof serial);
	der_init(&tmp);
	der_raw(&tmp, der_oid_ecdsa_sha256, sizeof der_oid_ecdsa_sha256);
	der_wrap(&seq, 0x30, &tmp);
	der_name(&seq, cn);
	der_init(&tmp);
	der_time_add(&tmp, now - 86400);
	der_time_add(&tmp, now + 7 * 86400);
	der_wrap(&seq, 0x30, &tmp);
	der_name(&seq, cn);
	der_spki(&seq, &k->pk);
	der_alpn_extensions(&seq, name, h);
	der_init(&tbs);
	der_wrap(&tbs, 0x30, &seq);
	crypto_sha256(tbs.b, tbs.len, h);
	size_t slen = tbs.bad ? 0
	                      : br_ecdsa_sign_asn1_get_default()(
	                                br_ec_get_default(), &br_sha256_vtable, h, &k->sk, sig + 1);
	sig[0] = 0;
	der_init(&body);
	der_raw(&body, tbs.b, tbs.len);
	der_init(&tmp);
	der_raw(&tmp, der_oid_ecdsa_sha256, sizeof der_oid_ecdsa_sha256);
	der_wrap(&body, 0x30, &tmp);
	der_add(&body, 0x03, sig, 1 + slen);
	der_init(&cert);
	der_wrap(&cert, 0x30, &body);
	int rc = slen == 0 || cert.bad ? -1 : 0;
	if (rc == 0) {
		buf_reset(out);
		buf_append(out, cert.b, cert.len);
		memcpy(x, k->sk.x, 32);
	}
	crypto_ec_free(k);
	return rc;
}

/* see rumble.h */
int crypto_cert_file_der(const char *path, struct buf *der)
{
	struct buf text;
	buf_init(&text);
	int rc = slurp(path, &text) == 0 && pem_first(&text, is_cert, der) == 0 ? 0 : -1;
	buf_free(&text);
	return rc;
}

/* see rumble.h */
int crypto_cert_file_dates(const char *path, int64_t *not_before, int64_t *not_after)
{
	struct buf der;
	char cn[8];
	buf_init(&der);
	int rc = crypto_cert_file_der(path, &der) == 0 &&
	                         der_cert_info(der.data, der.len, cn, sizeof cn, not_before,
	                                 not_after) == 0
	                 ? 0
	                 : -1;
	buf_free(&der);
	return rc;
}
