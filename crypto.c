/*
 * crypto.c - SHA-256, base64, password hashing, TLS. The only file that includes
 * BearSSL, so the rest of Rumble never sees a br_ name.
 *
 * Passwords are stored as "pbkdf2-sha256$ITER$SALTHEX$HASHHEX" (PBKDF2 from
 * RFC 8018 over HMAC-SHA256, 16-byte random salt, 32-byte key). BearSSL has
 * HMAC but no PBKDF2, so PBKDF2 is written here on top of br_hmac_*. The
 * HMAC key context is set up once per password: BearSSL precomputes the
 * inner and outer padded key states, so each iteration costs two SHA-256
 * compressions and nothing else.
 *
 * Everything that held a password or a value derived from one is wiped
 * before it goes out of scope (crypto_wipe(), through a volatile pointer so that
 * the compiler cannot drop the stores as dead).
 *
 * TLS follows after the passwords; its notes open that part.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <bearssl.h>

#include "rumble.h"

/* Iterations for new hashes. Measured on the build machine (AMD EPYC
 * x86_64, Debian's BearSSL, -O2): 75,000 take about 36 ms per hash, and
 * 100,000 took 47 ms. A check runs on a worker's loop and stalls the other
 * sessions there for that long, and a router's CPU may be ten times slower,
 * so this sits mid-way in a 20-50 ms budget rather than at its top. Stored
 * hashes keep their own count, so raising this later breaks nothing. */
#define PBKDF2_ITER 75000
/* What a stored hash may ask for: below the minimum is too weak to accept,
 * above the maximum a hostile accounts line could stall a worker. */
#define PBKDF2_ITER_MIN 1000
#define PBKDF2_ITER_MAX 10000000
#define PBKDF2_SALT 16
/* Salt lengths accepted from stored hashes; 32 bytes still fits the
 * longest form in CRYPTO_HASH_MAX. */
#define PBKDF2_SALT_MIN 8
#define PBKDF2_SALT_MAX 32
#define PBKDF2_KEY 32
#define PBKDF2_PREFIX "pbkdf2-sha256$"

void crypto_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--) {
		*v++ = 0;
	}
}

/* ---- SHA-256 ---- */

void crypto_sha256(const void *data, size_t n, uint8_t out[32])
{
	br_sha256_context c;
	br_sha256_init(&c);
	br_sha256_update(&c, data, n);
	br_sha256_out(&c, out);
	/* the buffered block may be part of a password */
	crypto_wipe(&c, sizeof c);
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

/* Decodes exactly 2 * n hex digits (either case) into out; -1 on any
 * other character. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(s[2 * i]);
		int lo = hi < 0 ? -1 : hex_value(s[2 * i + 1]);
		if (lo < 0) {
			return -1;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void crypto_sha256_hex(const void *data, size_t n, char out[65])
{
	uint8_t h[32];
	crypto_sha256(data, n, h);
	hex_encode(h, sizeof h, out);
	crypto_wipe(h, sizeof h);
}

/* ---- base64 (RFC 4648 section 4: standard alphabet, padded) ---- */

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t crypto_base64_encode(const void *in, size_t n, char *out)
{
	const uint8_t *p = in;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		size_t left = n - i;
		uint32_t v = (uint32_t)p[i] << 16;
		if (left > 1) {
			v |= (uint32_t)p[i + 1] << 8;
		}
		if (left > 2) {
			v |= p[i + 2];
		}
		out[o++] = b64_digits[v >> 18 & 63];
		out[o++] = b64_digits[v >> 12 & 63];
		out[o++] = left > 1 ? b64_digits[v >> 6 & 63] : '=';
		out[o++] = left > 2 ? b64_digits[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

static int b64_space(unsigned char c)
{
	return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

/* The state of a decode: a quantum of up to four characters. */
struct b64_dec {
	uint32_t acc; /* 6 bits per character seen in this quantum */
	int nq;       /* characters in this quantum, padding included */
	int pad;      /* '=' seen in this quantum */
	int done;     /* a padded quantum ended the data */
};

/* Takes one non-space character; -1 when it cannot be there. */
static int b64_take(struct b64_dec *d, unsigned char c)
{
	if (d->done) {
		return -1; /* nothing may follow padding */
	}
	if (c == '=') {
		/* "x===" or "====" would be a quantum with under 8 bits */
		if (d->nq < 2) {
			return -1;
		}
		d->pad++;
	} else {
		int v = b64_value(c);
		if (v < 0 || d->pad) {
			return -1; /* a data character after '=' */
		}
		d->acc |= (uint32_t)v;
	}
	d->nq++;
	if (d->nq < 4) {
		d->acc <<= 6;
	}
	return 0;
}

/* Writes the bytes of a full quantum; -1 when they do not fit. Unused
 * low bits of a padded quantum are dropped, not checked, as most decoders
 * do: some encoders leave junk there. */
static int b64_flush(struct b64_dec *d, uint8_t *out, size_t outlen, size_t *len)
{
	size_t nbytes = (size_t)(3 - d->pad);
	if (nbytes > outlen - *len) {
		return -1;
	}
	for (size_t i = 0; i < nbytes; i++) {
		out[(*len)++] = (uint8_t)(d->acc >> (16 - 8 * i));
	}
	d->done = d->pad > 0;
	d->acc = 0;
	d->nq = d->pad = 0;
	return 0;
}

long crypto_base64_decode(const char *in, size_t n, void *out, size_t outlen)
{
	struct b64_dec d = {0, 0, 0, 0};
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (b64_space(c)) {
			continue;
		}
		if (b64_take(&d, c) < 0) {
			return -1;
		}
		if (d.nq == 4 && b64_flush(&d, out, outlen, &len) < 0) {
			return -1;
		}
	}
	/* padding is required, so a partial quantum is an error */
	if (d.nq != 0 || len > (size_t)LONG_MAX) {
		return -1;
	}
	return (long)len;
}

/* ---- comparison ---- */

int crypto_equal(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	uint32_t diff = 0;
	/* no early exit: the time taken must not tell where they differ */
	for (size_t i = 0; i < n; i++) {
		diff |= (uint32_t)(x[i] ^ y[i]);
	}
	/* diff is 0..255; diff - 1 wraps to all ones only when diff == 0 */
	return (int)(((diff - 1) >> 8) & 1);
}

/* ---- PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) ---- */

/* T_index = U_1 ^ U_2 ^ ... ^ U_iter, where U_1 = HMAC(P, S || INT(index))
 * and U_j = HMAC(P, U_{j-1}); kc holds the password as an HMAC key. */
static void pbkdf2_block(const br_hmac_key_context *kc, const uint8_t *salt, size_t saltlen,
        uint32_t iter, uint32_t index, uint8_t t[PBKDF2_KEY])
{
	br_hmac_context hc;
	uint8_t u[PBKDF2_KEY];
	uint8_t be[4] = {(uint8_t)(index >> 24), (uint8_t)(index >> 16), (uint8_t)(index >> 8),
	        (uint8_t)index};

	br_hmac_init(&hc, kc, 0);
	br_hmac_update(&hc, salt, saltlen);
	br_hmac_update(&hc, be, sizeof be);
	br_hmac_out(&hc, u);
	memcpy(t, u, sizeof u);
	for (uint32_t j = 1; j < iter; j++) {
		br_hmac_init(&hc, kc, 0);
		br_hmac_update(&hc, u, sizeof u);
		br_hmac_out(&hc, u);
		for (size_t k = 0; k < sizeof u; k++) {
			t[k] ^= u[k];
		}
	}
	crypto_wipe(&hc, sizeof hc);
	crypto_wipe(u, sizeof u);
}

/* see rumble.h */
int crypto_pbkdf2_sha256(const char *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
        uint32_t iter, uint8_t *out, size_t outlen)
{
	/* RFC 8018: at most 2^32 - 1 blocks */
	if (iter == 0 || outlen == 0 || (outlen - 1) / PBKDF2_KEY >= 0xffffffffu) {
		return -1;
	}
	br_hmac_key_context kc;
	uint8_t t[PBKDF2_KEY];
	br_hmac_key_init(&kc, &br_sha256_vtable, pw, pwlen);
	size_t done = 0;
	for (uint32_t index = 1; done < outlen; index++) {
		size_t n = outlen - done < PBKDF2_KEY ? outlen - done : PBKDF2_KEY;
		pbkdf2_block(&kc, salt, saltlen, iter, index, t);
		memcpy(out + done, t, n);
		done += n;
	}
	crypto_wipe(&kc, sizeof kc);
	crypto_wipe(t, sizeof t);
	return 0;
}

/* ---- passwords ---- */

int crypto_password_hash(const char *password, char *out, size_t outlen)
{
	uint8_t salt[PBKDF2_SALT], key[PBKDF2_KEY];
	char salthex[2 * PBKDF2_SALT + 1], keyhex[2 * PBKDF2_KEY + 1];
	int rc = -1;

	if (!password || os_random(salt, sizeof salt) != 0) {
		return -1;
	}
	if (crypto_pbkdf2_sha256(password, strlen(password), salt, sizeof salt, PBKDF2_ITER, key,
	            sizeof key) == 0) {
		hex_encode(salt, sizeof salt, salthex);
		hex_encode(key, sizeof key, keyhex);
		int n = snprintf(out, outlen, PBKDF2_PREFIX "%u$%s$%s", (unsigned)PBKDF2_ITER,
		        salthex, keyhex);
		rc = n > 0 && (size_t)n < outlen ? 0 : -1;
	}
	crypto_wipe(key, sizeof key);
	crypto_wipe(keyhex, sizeof keyhex);
	if (rc != 0 && outlen > 0) {
		out[0] = '\0'; /* never leave a cut hash that looks stored */
	}
	return rc;
}

/* Parses the decimal iteration count that ends at the next '$'; only
 * digits, no sign, no leading zero, within the accepted bounds. Returns
 * the count and sets *end to the '$', or 0 on any error. */
static uint32_t parse_iter(const char *s, const char **end)
{
	uint32_t v = 0;
	size_t i = 0;
	if (s[0] == '0') {
		return 0;
	}
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i >= 8) {
			return 0; /* 9 digits would pass PBKDF2_ITER_MAX anyway */
		}
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (s[i] != '$' || v < PBKDF2_ITER_MIN || v > PBKDF2_ITER_MAX) {
		return 0;
	}
	*end = s + i;
	return v;
}

/* Verifies "ITER$SALTHEX$HASHHEX" (the part after the prefix). */
static int verify_pbkdf2(const char *s, const char *password)
{
	const char *p;
	uint8_t salt[PBKDF2_SALT_MAX], want[PBKDF2_KEY], got[PBKDF2_KEY];
	uint32_t iter = parse_iter(s, &p);
	if (iter == 0) {
		return 0;
	}
	const char *salthex = p + 1;
	const char *keyhex = strchr(salthex, '$');
	if (!keyhex) {
		return 0;
	}
	size_t sl = (size_t)(keyhex - salthex);
	keyhex++;
	if (sl % 2 != 0 || sl < 2 * PBKDF2_SALT_MIN || sl > 2 * PBKDF2_SALT_MAX ||
	        strlen(keyhex) != 2 * PBKDF2_KEY || hex_decode(salthex, salt, sl / 2) < 0 ||
	        hex_decode(keyhex, want, sizeof want) < 0) {
		return 0;
	}
	size_t pwlen = strlen(password);
	int ok = crypto_pbkdf2_sha256(password, pwlen, salt, sl / 2, iter, got, sizeof got) == 0 &&
	         crypto_equal(got, want, sizeof got);
	crypto_wipe(got, sizeof got);
	crypto_wipe(want, sizeof want);
	return ok;
}

/* Verifies a bare 64-hex SHA-256 digest, what Rumble's Lua API hands
 * saveAccount. */
static int verify_legacy(const char *s, const char *password)
{
	uint8_t want[32], got[32];
	if (strlen(s) != 64 || hex_decode(s, want, sizeof want) < 0) {
		return 0;
	}
	crypto_sha256(password, strlen(password), got);
	int ok = crypto_equal(got, want, sizeof got);
	crypto_wipe(got, sizeof got);
	crypto_wipe(want, sizeof want);
	return ok;
}

int crypto_password_verify(const char *stored, const char *password)
{
	static const char prefix[] = PBKDF2_PREFIX;
	if (!stored || !password || stored[0] == '\0') {
		return 0;
	}
	if (strncmp(stored, prefix, sizeof prefix - 1) == 0) {
		return verify_pbkdf2(stored + sizeof prefix - 1, password);
	}
	return verify_legacy(stored, password);
}

/* ==== TLS ==== */

/*
 * TLS IMPLEMENTATION NOTES
 * ========================
 *
 * The server side of BearSSL's engine (ssl_engine.c) behind byte ports
 * and a state mask, so that the rest of Rumble sees nothing of BearSSL;
 * the contract and the loop that drives it are in rumble.h. The policy
 * is fixed here rather than configured:
 *
 * -- TLS 1.2 only: BearSSL has no 1.3, and RFC 8996 retired 1.0 and 1.1.
 * -- ECDHE with an AEAD only; the key type picks the ECDSA or the RSA
 *    suites. AES-GCM leads when the CPU has AES instructions (BearSSL's
 *    x86ni or pwr8 code), ChaCha20-Poly1305 otherwise: constant-time AES
 *    in software is several times slower than ChaCha20 on a router.
 * -- The server's order wins. Renegotiation is refused: a ClientHello
 *    after the handshake gets a no_renegotiation warning.
 * -- Signatures with SHA-256, SHA-384 or SHA-512; never SHA-1 or MD5.
 * -- ECDHE on X25519, else P-256, P-384, P-521 (BearSSL's order).
 *
 * Memory: one allocation per connection holds the server context (about
 * 4 KB) and one record buffer of BR_SSL_BUFSIZE_MONO (16709 bytes) that
 * both directions share: that is what makes the engine half-duplex. Two
 * buffers would cost 33 KB. The certificate chain and the key live once,
 * in struct tls_ctx, and every engine points at them; so a tls_ctx is
 * reference-counted and outlives a reload while old sessions run.
 *
 * Resumption: a cache of TLS_CACHE_SESSIONS sessions (100 bytes each)
 * shared by all workers behind a mutex: a mail client that polls every
 * few minutes skips the signature. BearSSL has no session tickets.
 *
 * Randomness: BearSSL seeds each engine itself (RDRAND where the CPU has
 * it, else /dev/urandom, or CryptGenRandom on Windows); os_random bytes
 * (getrandom, RtlGenRandom) are injected as well, so that either source
 * alone is enough.
 *
 * The self-signed certificate is DER written by hand (BearSSL encodes
 * keys but not certificates): a TBSCertificate with one CN, validity,
 * the P-256 key, subjectAltName and basicConstraints, signed with
 * ECDSA-SHA256 (RFC 6979 nonces, so no randomness is needed there).
 */

#define TLS_CACHE_SESSIONS 256
#define TLS_CACHE_ENTRY 100        /* bytes per session in BearSSL's LRU */
#define TLS_FILE_MAX (1024 * 1024) /* a certificate file is never this big */
#define TLS_RSA_MIN_BITS 2048
#define TLS_RSA_MAX_BITS 4096 /* BearSSL's limit */
#define TLS_DAYS 3650         /* validity of a self-signed certificate */

static void seterr(char *err, size_t errlen, const char *fmt, ...) RL_PRINTF(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- policy ---- */

static const struct tls_suite {
	uint16_t id;
	int key_type; /* BR_KEYTYPE_EC or BR_KEYTYPE_RSA */
	int aes;      /* 1 AES-GCM, 0 ChaCha20-Poly1305 */
	int bits;
	const char *name; /* OpenSSL's, as logs and Received: headers use */
} tls_suites[] = {
        {BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_KEYTYPE_EC, 1, 128,
                "ECDHE-ECDSA-AES128-GCM-SHA256"},
        {BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, BR_KEYTYPE_EC, 1, 256,
                "ECDHE-ECDSA-AES256-GCM-SHA384"},
        {BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_KEYTYPE_EC, 0, 256,
                "ECDHE-ECDSA-CHACHA20-POLY1305"},
        {BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, BR_KEYTYPE_RSA, 1, 128,
                "ECDHE-RSA-AES128-GCM-SHA256"},
        {BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, BR_KEYTYPE_RSA, 1, 256,
                "ECDHE-RSA-AES256-GCM-SHA384"},
        {BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, BR_KEYTYPE_RSA, 0, 256,
                "ECDHE-RSA-CHACHA20-POLY1305"},
};
#define NSUITES (sizeof tls_suites / sizeof tls_suites[0])

/* The suites for a key type in our order of preference; returns how many. */
static size_t pick_suites(int key_type, uint16_t *out)
{
	int aes_first =
	        br_aes_x86ni_ctr_get_vtable() != NULL || br_aes_pwr8_ctr_get_vtable() != NULL;
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		int want_aes = pass == 0 ? aes_first : !aes_first;
		for (size_t i = 0; i < NSUITES; i++) {
			if (tls_suites[i].key_type == key_type && tls_suites[i].aes == want_aes) {
				out[n++] = tls_suites[i].id;
			}
		}
	}
	return n;
}

static const struct tls_suite *find_suite(unsigned id)
{
	for (size_t i = 0; i < NSUITES; i++) {
		if (tls_suites[i].id == id) {
			return &tls_suites[i];
		}
	}
	return NULL;
}

/* Hash functions for signatures and the handshake transcript. */
static const struct {
	int id;
	const br_hash_class *vt;
} tls_hashes[] = {
        {br_sha256_ID, &br_sha256_vtable},
        {br_sha384_ID, &br_sha384_vtable},
        {br_sha512_ID, &br_sha512_vtable},
};

/* ---- credentials ---- */

/* BearSSL's LRU session cache, made safe for several workers. */
struct tls_cache {
	const br_ssl_session_cache_class *vtable; /* first: BearSSL passes &vtable */
	br_ssl_session_cache_lru lru;
	os_mutex *lock;
	unsigned char store[TLS_CACHE_SESSIONS * TLS_CACHE_ENTRY];
};

struct tls_ctx {
	long refs; /* the loader's and one per engine; atomic */
	br_x509_certificate chain[TLS_CHAIN_MAX];
	size_t nchain;
	int key_type; /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC, 0 before the key is read */
	br_rsa_private_key rsa;
	br_ec_private_key ec;
	unsigned char *key_data; /* the numbers rsa or ec point into */
	size_t key_len;
	uint16_t suites[NSUITES];
	size_t nsuites;
	char desc[256];
	struct tls_cache cache;
};

static void cache_save(const br_ssl_session_cache_class **vt, br_ssl_server_context *sc,
        const br_ssl_session_parameters *params)
{
	struct tls_cache *c = (struct tls_cache *)(void *)vt;
	os_mutex_lock(c->lock);
	c->lru.vtable->save(&c->lru.vtable, sc, params);
	os_mutex_unlock(c->lock);
}

static int cache_load(const br_ssl_session_cache_class **vt, br_ssl_server_context *sc,
        br_ssl_session_parameters *params)
{
	struct tls_cache *c = (struct tls_cache *)(void *)vt;
	os_mutex_lock(c->lock);
	int found = c->lru.vtable->load(&c->lru.vtable, sc, params);
	os_mutex_unlock(c->lock);
	return found;
}

static const br_ssl_session_cache_class cache_class = {
        sizeof(struct tls_cache),
        cache_save,
        cache_load,
};

static void ctx_destroy(struct tls_ctx *c)
{
	for (size_t i = 0; i < c->nchain; i++) {
		free(c->chain[i].data);
	}
	if (c->key_data) {
		crypto_wipe(c->key_data, c->key_len);
		free(c->key_data);
	}
	if (c->cache.lock) {
		os_mutex_free(c->cache.lock);
	}
	crypto_wipe(c, sizeof *c); /* the cache holds master secrets */
	free(c);
}

static void ctx_release(struct tls_ctx *c)
{
	if (c && os_atomic_add_long(&c->refs, -1) == 0) {
		ctx_destroy(c);
	}
}

void tls_ctx_free(struct tls_ctx *c)
{
	ctx_release(c);
}

const char *tls_ctx_describe(const struct tls_ctx *c)
{
	return c->desc;
}

/* Copies n bytes of src to *at and returns where they went. */
static unsigned char *take_bytes(unsigned char **at, const unsigned char *src, size_t n)
{
	unsigned char *p = *at;
	memcpy(p, src, n);
	*at += n;
	return p;
}

/* Keeps the key the decoder holds in memory of our own. */
static void take_key(struct tls_ctx *c, const br_skey_decoder_context *kd)
{
	unsigned char *at;
	c->key_type = br_skey_decoder_key_type(kd);
	if (c->key_type == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *k = br_skey_decoder_get_rsa(kd);
		c->key_len = k->plen + k->qlen + k->dplen + k->dqlen + k->iqlen;
		at = c->key_data = xmalloc(c->key_len);
		c->rsa = *k;
		c->rsa.p = take_bytes(&at, k->p, k->plen);
		c->rsa.q = take_bytes(&at, k->q, k->qlen);
		c->rsa.dp = take_bytes(&at, k->dp, k->dplen);
		c->rsa.dq = take_bytes(&at, k->dq, k->dqlen);
		c->rsa.iq = take_bytes(&at, k->iq, k->iqlen);
	} else {
		const br_ec_private_key *k = br_skey_decoder_get_ec(kd);
		c->key_len = k->xlen;
		at = c->key_data = xmalloc(c->key_len);
		c->ec = *k;
		c->ec.x = take_bytes(&at, k->x, k->xlen);
	}
}

/* What one PEM file gives: certificates, a key, or both. */
struct pem_load {
	struct tls_ctx *c;
	const char *path;
	int want_certs, want_key;
	char *err;
	size_t errlen;
};

static int is_key_name(const char *name)
{
	return !strcmp(name, "PRIVATE KEY") || !strcmp(name, "RSA PRIVATE KEY") ||
	       !strcmp(name, "EC PRIVATE KEY");
}

static int take_cert(struct pem_load *ld, const unsigned char *der, size_t n)
{
	struct tls_ctx *c = ld->c;
	br_x509_decoder_context xd;
	if (c->nchain == TLS_CHAIN_MAX) {
		seterr(ld->err, ld->errlen, "%s: more than %d certificates", ld->path,
		        TLS_CHAIN_MAX);
		return -1;
	}
	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, der, n);
	if (br_x509_decoder_last_error(&xd) != 0) {
		seterr(ld->err, ld->errlen,
		        "%s: certificate %u is not valid X.509 (BearSSL error %d)", ld->path,
		        (unsigned)c->nchain + 1, br_x509_decoder_last_error(&xd));
		return -1;
	}
	c->chain[c->nchain].data = xmalloc(n);
	memcpy(c->chain[c->nchain].data, der, n);
	c->chain[c->nchain].data_len = n;
	c->nchain++;
	return 0;
}

static int take_key_der(struct pem_load *ld, const unsigned char *der, size_t n)
{
	br_skey_decoder_context kd;
	int rc = 0;
	if (ld->c->key_type != 0) {
		seterr(ld->err, ld->errlen, "%s: more than one private key", ld->path);
		return -1;
	}
	br_skey_decoder_init(&kd);
	br_skey_decoder_push(&kd, der, n);
	if (br_skey_decoder_last_error(&kd) != 0) {
		seterr(ld->err, ld->errlen, "%s: cannot decode the private key (BearSSL error %d)",
		        ld->path, br_skey_decoder_last_error(&kd));
		rc = -1;
	} else {
		take_key(ld->c, &kd);
	}
	crypto_wipe(&kd, sizeof kd);
	return rc;
}

/* Takes one PEM object; other kinds ("EC PARAMETERS", ...) are skipped. */
static int take_object(struct pem_load *ld, const char *name, const unsigned char *der, size_t n)
{
	if (ld->want_certs && (!strcmp(name, "CERTIFICATE") || !strcmp(name, "X509 CERTIFICATE"))) {
		return take_cert(ld, der, n);
	}
	if (!ld->want_key) {
		return 0;
	}
	if (strstr(name, "ENCRYPTED")) {
		seterr(ld->err, ld->errlen,
		        "%s: the private key is encrypted; store it without a passphrase",
		        ld->path);
		return -1;
	}
	return is_key_name(name) ? take_key_der(ld, der, n) : 0;
}

static void pem_append(void *ctx, const void *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Feeds every PEM object of text to take_object. */
static int pem_parse(struct pem_load *ld, const char *text, size_t len)
{
	br_pem_decoder_context pc;
	struct buf der;
	int rc = 0, inside = 0, tail = 0;
	const char *p = text;

	buf_init(&der);
	br_pem_decoder_init(&pc);
	while (rc == 0) {
		if (len == 0) {
			if (tail) {
				break;
			}
			/* the decoder sees an END line only once a newline follows */
			p = "\n";
			len = 1;
			tail = 1;
		}
		size_t k = br_pem_decoder_push(&pc, p, len);
		p += k;
		len -= k;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			buf_reset(&der);
			br_pem_decoder_setdest(&pc, pem_append, &der);
			inside = 1;
			break;
		case BR_PEM_END_OBJ:
			inside = 0;
			rc = take_object(
			        ld, br_pem_decoder_name(&pc), (unsigned char *)der.data, der.len);
			crypto_wipe(der.data, der.len);
			break;
		case BR_PEM_ERROR:
			seterr(ld->err, ld->errlen, "%s: malformed PEM", ld->path);
			rc = -1;
			break;
		default:
			break;
		}
	}
	if (rc == 0 && inside) {
		seterr(ld->err, ld->errlen, "%s: a PEM object does not end", ld->path);
		rc = -1;
	}
	if (der.data) {
		crypto_wipe(der.data, der.cap);
	}
	buf_free(&der);
	crypto_wipe(&pc, sizeof pc);
	return rc;
}

static int pem_load_file(struct pem_load *ld)
{
	struct buf text;
	char chunk[4096];
	size_t n;
	int rc = 0;
	FILE *f = os_fopen(ld->path, "rb");
	if (!f) {
		seterr(ld->err, ld->errlen, "%s: %s", ld->path, os_strerror());
		return -1;
	}
	buf_init(&text);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= TLS_FILE_MAX) {
		buf_append(&text, chunk, n);
	}
	if (ferror(f) || text.len > TLS_FILE_MAX) {
		seterr(ld->err, ld->errlen, "%s: %s", ld->path,
		        ferror(f) ? "read error" : "too big");
		rc = -1;
	}
	fclose(f);
	if (rc == 0) {
		rc = pem_parse(ld, text.data ? text.data : "", text.len);
	}
	crypto_wipe(chunk, sizeof chunk);
	if (text.data) {
		crypto_wipe(text.data, text.cap);
	}
	buf_free(&text);
	return rc;
}

/* 1 when the two big-endian numbers are equal, leading zeros aside. */
static int same_number(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	while (alen > 0 && *a == 0) {
		a++;
		alen--;
	}
	while (blen > 0 && *b == 0) {
		b++;
		blen--;
	}
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* 1 when the private key belongs to the public key pk. */
static int key_matches(const struct tls_ctx *c, const br_x509_pkey *pk)
{
	if (c->key_type == BR_KEYTYPE_EC) {
		unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
		size_t n = br_ec_compute_pub(br_ec_get_default(), NULL, q, &c->ec);
		return pk->key_type == BR_KEYTYPE_EC && pk->key.ec.curve == c->ec.curve && n > 0 &&
		       same_number(q, n, pk->key.ec.q, pk->key.ec.qlen);
	}
	unsigned char n[TLS_RSA_MAX_BITS / 8];
	br_rsa_compute_modulus modulus = br_rsa_compute_modulus_get_default();
	size_t len = modulus(NULL, &c->rsa);
	if (pk->key_type != BR_KEYTYPE_RSA || len == 0 || len > sizeof n) {
		return 0;
	}
	modulus(n, &c->rsa);
	return same_number(n, len, pk->key.rsa.n, pk->key.rsa.nlen);
}

static const char *curve_name(int curve)
{
	switch (curve) {
	case BR_EC_secp256r1:
		return "P-256";
	case BR_EC_secp384r1:
		return "P-384";
	case BR_EC_secp521r1:
		return "P-521";
	default:
		return NULL;
	}
}

/* Checks the key on its own, then against the leaf certificate. */
static int check_pair(
        struct tls_ctx *c, const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	br_x509_decoder_context xd;
	if (c->nchain == 0) {
		seterr(err, errlen, "%s: no certificate (PEM \"CERTIFICATE\")", cert_path);
		return -1;
	}
	if (c->key_type == 0) {
		seterr(err, errlen, "%s: no private key (PEM \"PRIVATE KEY\")", key_path);
		return -1;
	}
	if (c->key_type == BR_KEYTYPE_RSA && c->rsa.n_bitlen < TLS_RSA_MIN_BITS) {
		seterr(err, errlen, "%s: an RSA key of %u bits is too weak (%d at least)", key_path,
		        (unsigned)c->rsa.n_bitlen, TLS_RSA_MIN_BITS);
		return -1;
	}
	if (c->key_type == BR_KEYTYPE_RSA && c->rsa.n_bitlen > TLS_RSA_MAX_BITS) {
		seterr(err, errlen, "%s: an RSA key of %u bits is too big (%d at most)", key_path,
		        (unsigned)c->rsa.n_bitlen, TLS_RSA_MAX_BITS);
		return -1;
	}
	if (c->key_type == BR_KEYTYPE_EC && !curve_name(c->ec.curve)) {
		seterr(err, errlen, "%s: EC curve %d is not supported (P-256, P-384, P-521 are)",
		        key_path, c->ec.curve);
		return -1;
	}
	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, c->chain[0].data, c->chain[0].data_len);
	const br_x509_pkey *pk = br_x509_decoder_get_pkey(&xd);
	if (!pk || !key_matches(c, pk)) {
		seterr(err, errlen,
		        "%s does not hold the key of the first certificate in %s (the server's own "
		        "certificate must come first)",
		        key_path, cert_path);
		return -1;
	}
	return 0;
}

/* ---- reading DER (the leaf's name and end of validity, for the log) ---- */

struct der_in {
	const unsigned char *p;
	size_t n; /* bytes left */
};

/* Takes the next element off d: its tag and contents. -1 when d is empty
 * or the element is malformed. Lengths of up to 3 bytes, as in any
 * certificate. */
static int der_next(struct der_in *d, unsigned *tag, struct der_in *val)
{
	size_t len, hl = 2;
	if (d->n < 2) {
		return -1;
	}
	*tag = d->p[0];
	len = d->p[1];
	if (len & 0x80) {
		size_t k = len & 0x7f;
		if (k == 0 || k > 3 || d->n < 2 + k) {
			return -1;
		}
		len = 0;
		for (size_t i = 0; i < k; i++) {
			len = len << 8 | d->p[2 + i];
		}
		hl += k;
	}
	if (len > d->n - hl) {
		return -1;
	}
	val->p = d->p + hl;
	val->n = len;
	d->p += hl + len;
	d->n -= hl + len;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned digits(const unsigned char *p, size_t n)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v;
}

/* UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as
 * seconds since the epoch; -1 if malformed. */
static int64_t der_time(unsigned tag, struct der_in v)
{
	size_t ny = tag == 0x17 ? 2 : tag == 0x18 ? 4 : 0;
	if (ny == 0 || v.n != ny + 11 || v.p[v.n - 1] != 'Z') {
		return -1;
	}
	for (size_t i = 0; i < ny + 10; i++) {
		if (v.p[i] < '0' || v.p[i] > '9') {
			return -1;
		}
	}
	int64_t year = digits(v.p, ny);
	if (ny == 2) {
		year += year < 50 ? 2000 : 1900; /* RFC 5280 section 4.1.2.5.1 */
	}
	const unsigned char *q = v.p + ny;
	unsigned mon = digits(q, 2), day = digits(q + 2, 2);
	unsigned h = digits(q + 4, 2), mi = digits(q + 6, 2), s = digits(q + 8, 2);
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || mi > 59 || s > 60) {
		return -1;
	}
	return days_from_civil(year, mon, day) * 86400 + h * 3600 + mi * 60 + s;
}

/* Finds the subject's CN (printable ASCII kept) in a Name. */
static void der_cn(struct der_in name, char *cn, size_t cnlen)
{
	static const unsigned char oid_cn[] = {0x55, 0x04, 0x03};
	struct der_in rdn, atv, oid, val;
	unsigned tag;
	while (der_next(&name, &tag, &rdn) == 0) {
		while (der_next(&rdn, &tag, &atv) == 0) {
			if (der_next(&atv, &tag, &oid) != 0 || der_next(&atv, &tag, &val) != 0 ||
			        oid.n != sizeof oid_cn ||
			        memcmp(oid.p, oid_cn, sizeof oid_cn) != 0) {
				continue;
			}
			size_t o = 0;
			for (size_t i = 0; i < val.n && o + 1 < cnlen; i++) {
				cn[o++] =
				        val.p[i] >= 0x20 && val.p[i] < 0x7f ? (char)val.p[i] : '?';
			}
			cn[o] = '\0';
		}
	}
}

/* The CN and the end of validity of a certificate; -1 if unreadable. */
static int cert_info(const br_x509_certificate *xc, char *cn, size_t cnlen, int64_t *not_after)
{
	struct der_in d = {xc->data, xc->data_len}, cert, tbs, v, validity, subject;
	unsigned tag;
	cn[0] = '\0';
	if (der_next(&d, &tag, &cert) != 0 || der_next(&cert, &tag, &tbs) != 0 ||
	        der_next(&tbs, &tag, &v) != 0) {
		return -1;
	}
	if (tag == 0xa0 && der_next(&tbs, &tag, &v) != 0) { /* version, then the serial */
		return -1;
	}
	if (der_next(&tbs, &tag, &v) != 0 || der_next(&tbs, &tag, &v) != 0 || /* sig alg, issuer */
	        der_next(&tbs, &tag, &validity) != 0 || der_next(&tbs, &tag, &subject) != 0 ||
	        der_next(&validity, &tag, &v) != 0 || der_next(&validity, &tag, &v) != 0) {
		return -1;
	}
	*not_after = der_time(tag, v);
	der_cn(subject, cn, cnlen);
	return *not_after < 0 ? -1 : 0;
}

static void describe(struct tls_ctx *c)
{
	char key[32], cn[80], until[40] = "unknown";
	int64_t not_after = 0;
	if (c->key_type == BR_KEYTYPE_EC) {
		snprintf(key, sizeof key, "ECDSA %s", curve_name(c->ec.curve));
	} else {
		snprintf(key, sizeof key, "RSA %u-bit", (unsigned)c->rsa.n_bitlen);
	}
	if (cert_info(&c->chain[0], cn, sizeof cn, &not_after) == 0) {
		struct tm tm;
		os_gmtime(not_after, &tm);
		snprintf(until, sizeof until, "%04d-%02d-%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
		        tm.tm_mday, not_after < os_time() ? ", EXPIRED" : "");
	}
	snprintf(c->desc, sizeof c->desc, "%s certificate for CN=%s, chain of %u, valid until %s",
	        key, cn[0] ? cn : "(none)", (unsigned)c->nchain, until);
}

/* see rumble.h */
struct tls_ctx *tls_ctx_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct tls_ctx *c = xcalloc(1, sizeof *c);
	int one_file = !key_path || !key_path[0] || !strcmp(key_path, cert_path);
	struct pem_load ld = {c, cert_path, 1, one_file, err, errlen};

	c->refs = 1;
	c->cache.lock = os_mutex_new();
	if (pem_load_file(&ld) != 0) {
		ctx_destroy(c);
		return NULL;
	}
	if (!one_file) {
		ld = (struct pem_load){c, key_path, 0, 1, err, errlen};
		if (pem_load_file(&ld) != 0) {
			ctx_destroy(c);
			return NULL;
		}
	}
	if (check_pair(c, cert_path, one_file ? cert_path : key_path, err, errlen) != 0) {
		ctx_destroy(c);
		return NULL;
	}
	c->nsuites = pick_suites(c->key_type, c->suites);
	c->cache.vtable = &cache_class;
	br_ssl_session_cache_lru_init(&c->cache.lru, c->cache.store, sizeof c->cache.store);
	describe(c);
	return c;
}

/* ---- one connection ---- */

struct tls_anykey;

struct tls {
	/* A server's or a client's; both start with the engine, so t->sc.eng
	 * is the engine either way (common initial sequence). */
	union {
		br_ssl_server_context sc;
		br_ssl_client_context cc;
	};
	struct tls_ctx *ctx;      /* NULL for a client */
	struct tls_anykey *anykey; /* a client's certificate "check", else NULL */
	int done;      /* the handshake finished (for good: no renegotiation) */
	char err[128]; /* tls_error's text, made when first asked */
	char cipher[24]; /* tls_cipher's text for a suite not in tls_suites */
	unsigned char buf[BR_SSL_BUFSIZE_MONO];
};

/* Our state bits are BearSSL's, so that tls_state passes them on. */
_Static_assert(TLS_CLOSED == BR_SSL_CLOSED && TLS_SENDREC == BR_SSL_SENDREC &&
                       TLS_RECVREC == BR_SSL_RECVREC && TLS_SENDAPP == BR_SSL_SENDAPP &&
                       TLS_RECVAPP == BR_SSL_RECVAPP,
        "TLS_* state bits differ from BearSSL's");

size_t tls_session_size(void)
{
	return sizeof(struct tls);
}

/* see rumble.h */
struct tls *tls_new(struct tls_ctx *c)
{
	struct tls *t = xmalloc(sizeof *t);
	br_ssl_server_context *sc = &t->sc;
	br_ssl_engine_context *eng = &sc->eng;
	unsigned char seed[32];

	t->ctx = c;
	t->anykey = NULL;
	t->done = 0;
	t->err[0] = '\0';
	br_ssl_server_zero(sc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_set_suites(eng, c->suites, c->nsuites);
	br_ssl_engine_set_all_flags(
	        eng, BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION);
	for (size_t i = 0; i < sizeof tls_hashes / sizeof tls_hashes[0]; i++) {
		br_ssl_engine_set_hash(eng, tls_hashes[i].id, tls_hashes[i].vt);
	}
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_default_aes_gcm(eng);
	br_ssl_engine_set_default_chapol(eng);
	br_ssl_engine_set_default_ec(eng);
	if (c->key_type == BR_KEYTYPE_EC) {
		br_ssl_server_set_single_ec(sc, c->chain, c->nchain, &c->ec, BR_KEYTYPE_SIGN, 0,
		        br_ssl_engine_get_ec(eng), br_ecdsa_sign_asn1_get_default());
	} else {
		br_ssl_server_set_single_rsa(sc, c->chain, c->nchain, &c->rsa, BR_KEYTYPE_SIGN,
		        br_rsa_private_get_default(), br_rsa_pkcs1_sign_get_default());
	}
	br_ssl_server_set_cache(sc, &c->cache.vtable);
	br_ssl_engine_set_buffer(eng, t->buf, sizeof t->buf, 0);
	/* after the hashes: the engine's generator is HMAC_DRBG on SHA-256 */
	if (os_random(seed, sizeof seed) == 0) {
		br_ssl_engine_inject_entropy(eng, seed, sizeof seed);
	}
	crypto_wipe(seed, sizeof seed);
	if (!br_ssl_server_reset(sc)) {
		crypto_wipe(t, sizeof *t);
		free(t);
		return NULL;
	}
	os_atomic_add_long(&c->refs, 1);
	return t;
}

void tls_free(struct tls *t)
{
	if (!t) {
		return;
	}
	struct tls_ctx *c = t->ctx;
	free(t->anykey); /* the server's public key only: nothing to wipe */
	crypto_wipe(t, sizeof *t); /* keys, and the last records in clear */
	free(t);
	ctx_release(c);
}

/* ---- the client side: opportunistic STARTTLS for outbound SMTP ----
 *
 * Postfix's "may" level: the server's certificate is not checked (mail
 * between MTAs has no agreed trust anchors; encryption still defeats a
 * passive listener). BearSSL insists on an X.509 engine, so this one only
 * decodes the server's own certificate to get its public key for the key
 * exchange, and accepts any chain. */

struct tls_anykey {
	const br_x509_class *vtable; /* first: BearSSL passes &vtable */
	br_x509_decoder_context dc;
	int depth; /* certificates seen in this chain */
	br_x509_minimal_context unused; /* br_ssl_client_init_full wants one */
};

static void anykey_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct tls_anykey *k = (struct tls_anykey *)(void *)ctx;
	(void)server_name;
	k->depth = 0;
}

static void anykey_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct tls_anykey *k = (struct tls_anykey *)(void *)ctx;
	(void)length;
	if (k->depth == 0) {
		br_x509_decoder_init(&k->dc, NULL, NULL);
	}
}

static void anykey_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct tls_anykey *k = (struct tls_anykey *)(void *)ctx;
	if (k->depth == 0) {
		br_x509_decoder_push(&k->dc, buf, len);
	}
}

static void anykey_end_cert(const br_x509_class **ctx)
{
	((struct tls_anykey *)(void *)ctx)->depth++;
}

static unsigned anykey_end_chain(const br_x509_class **ctx)
{
	struct tls_anykey *k = (struct tls_anykey *)(void *)ctx;
	if (k->depth == 0) {
		return BR_ERR_X509_EMPTY_CHAIN;
	}
	int e = br_x509_decoder_last_error(&k->dc);
	return e == 0 ? 0 : (unsigned)e;
}

static const br_x509_pkey *anykey_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	struct tls_anykey *k = (struct tls_anykey *)(void *)ctx;
	if (usages) {
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	}
	return br_x509_decoder_get_pkey(&k->dc);
}

static const br_x509_class anykey_class = {
        sizeof(struct tls_anykey),
        anykey_start_chain,
        anykey_start_cert,
        anykey_append,
        anykey_end_cert,
        anykey_end_chain,
        anykey_get_pkey,
};

/* A client engine; anchors NULL accepts any certificate, else the chain
 * must lead to one of them and name server_name. */
static struct tls *client_new(const char *server_name, const struct tls_anchors *anchors)
{
	struct tls *t = xcalloc(1, sizeof *t);
	br_ssl_client_context *cc = &t->cc;
	unsigned char seed[32];
	size_t nta = 0;
	const br_x509_trust_anchor *ta = tls__anchors_raw(anchors, &nta);

	t->anykey = xcalloc(1, sizeof *t->anykey);
	/* every version and suite BearSSL has: a server that is not Rumble may
	 * know nothing better, and unencrypted is the alternative */
	br_ssl_client_init_full(cc, &t->anykey->unused, ta, nta);
	if (!anchors) {
		t->anykey->vtable = &anykey_class;
		br_ssl_engine_set_x509(&cc->eng, &t->anykey->vtable);
	}
	br_ssl_engine_set_all_flags(&cc->eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffer(&cc->eng, t->buf, sizeof t->buf, 0);
	if (os_random(seed, sizeof seed) == 0) {
		br_ssl_engine_inject_entropy(&cc->eng, seed, sizeof seed);
	}
	crypto_wipe(seed, sizeof seed);
	/* SNI only for a name: RFC 6066 3 forbids literal addresses */
	uint8_t ip[16];
	int is_ip = os_ip_parse(server_name, ip) >= 0;
	if ((is_ip && anchors) || !br_ssl_client_reset(cc, is_ip ? NULL : server_name, 0)) {
		tls_free(t); /* BearSSL checks names only: an address cannot be verified */
		return NULL;
	}
	return t;
}

/* see rumble.h */
struct tls *tls_client_new(const char *server_name)
{
	return client_new(server_name, NULL);
}

/* see rumble.h */
struct tls *tls_client_new_verified(const char *server_name, const struct tls_anchors *anchors)
{
	return anchors ? client_new(server_name, anchors) : NULL;
}

static int closed(struct tls *t)
{
	return br_ssl_engine_current_state(&t->sc.eng) == BR_SSL_CLOSED;
}

unsigned tls_state(struct tls *t)
{
	unsigned s = br_ssl_engine_current_state(&t->sc.eng);
	if (s & (BR_SSL_SENDAPP | BR_SSL_RECVAPP)) {
		t->done = 1; /* application data flows only after the handshake */
	}
	return s;
}

void *tls_in_buf(struct tls *t, size_t *n)
{
	return br_ssl_engine_recvrec_buf(&t->sc.eng, n);
}

void tls_in_ack(struct tls *t, size_t n)
{
	if (n > 0) {
		br_ssl_engine_recvrec_ack(&t->sc.eng, n);
		tls_state(t);
	}
}

size_t tls_push_in(struct tls *t, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t done = 0;
	while (done < n) {
		size_t room;
		unsigned char *b = br_ssl_engine_recvrec_buf(&t->sc.eng, &room);
		if (!b) {
			break;
		}
		if (room > n - done) {
			room = n - done;
		}
		memcpy(b, p + done, room);
		done += room;
		tls_in_ack(t, room);
	}
	return done;
}

const void *tls_pull_out(struct tls *t, size_t *n)
{
	return br_ssl_engine_sendrec_buf(&t->sc.eng, n);
}

void tls_sent(struct tls *t, size_t n)
{
	if (n > 0) {
		br_ssl_engine_sendrec_ack(&t->sc.eng, n);
		tls_state(t);
	}
}

size_t tls_read(struct tls *t, void *buf, size_t n)
{
	unsigned char *out = buf;
	size_t done = 0;
	while (done < n) {
		size_t len;
		unsigned char *b = br_ssl_engine_recvapp_buf(&t->sc.eng, &len);
		if (!b) {
			break;
		}
		if (len > n - done) {
			len = n - done;
		}
		memcpy(out + done, b, len);
		done += len;
		br_ssl_engine_recvapp_ack(&t->sc.eng, len);
	}
	return done;
}

size_t tls_write(struct tls *t, const void *data, size_t n)
{
	const unsigned char *in = data;
	size_t done = 0;
	while (done < n) {
		size_t len;
		unsigned char *b = br_ssl_engine_sendapp_buf(&t->sc.eng, &len);
		if (!b) {
			break;
		}
		if (len > n - done) {
			len = n - done;
		}
		memcpy(b, in + done, len);
		done += len;
		br_ssl_engine_sendapp_ack(&t->sc.eng, len);
	}
	return done;
}

void tls_flush(struct tls *t)
{
	br_ssl_engine_flush(&t->sc.eng, 0);
}

void tls_close(struct tls *t)
{
	br_ssl_engine_close(&t->sc.eng);
}

int tls_handshaking(struct tls *t)
{
	tls_state(t);
	return !t->done && !closed(t);
}

int tls_failed(struct tls *t)
{
	return closed(t);
}

/* ---- what went wrong, in words ---- */

static const struct {
	int code;
	const char *text;
} tls_errors[] = {
        {BR_ERR_BAD_PARAM, "bad parameter"},
        {BR_ERR_BAD_STATE, "bad state"},
        {BR_ERR_UNSUPPORTED_VERSION, "unsupported protocol version"},
        {BR_ERR_BAD_VERSION, "bad protocol version"},
        {BR_ERR_BAD_LENGTH, "bad record length"},
        {BR_ERR_TOO_LARGE, "record too large"},
        {BR_ERR_BAD_MAC, "bad record mac"},
        {BR_ERR_NO_RANDOM, "no randomness from the OS"},
        {BR_ERR_UNKNOWN_TYPE, "unknown record type"},
        {BR_ERR_UNEXPECTED, "unexpected message"},
        {BR_ERR_BAD_CCS, "bad ChangeCipherSpec"},
        {BR_ERR_BAD_ALERT, "bad alert"},
        {BR_ERR_BAD_HANDSHAKE, "bad handshake message"},
        {BR_ERR_OVERSIZED_ID, "oversized session id"},
        {BR_ERR_BAD_CIPHER_SUITE, "bad cipher suite"},
        {BR_ERR_BAD_COMPRESSION, "bad compression"},
        {BR_ERR_BAD_FRAGLEN, "bad fragment length"},
        {BR_ERR_BAD_SECRENEG, "bad secure renegotiation"},
        {BR_ERR_EXTRA_EXTENSION, "unexpected extension"},
        {BR_ERR_BAD_SNI, "bad server name"},
        {BR_ERR_BAD_HELLO_DONE, "bad ServerHelloDone"},
        {BR_ERR_LIMIT_EXCEEDED, "limit exceeded"},
        {BR_ERR_BAD_FINISHED, "bad Finished message"},
        {BR_ERR_RESUME_MISMATCH, "resumption mismatch"},
        {BR_ERR_INVALID_ALGORITHM, "unsupported algorithm"},
        {BR_ERR_BAD_SIGNATURE, "bad signature"},
        {BR_ERR_WRONG_KEY_USAGE, "wrong key usage"},
        {BR_ERR_NO_CLIENT_AUTH, "no client certificate"},
        {BR_ERR_IO, "I/O error"},
        {BR_ERR_X509_EXPIRED, "certificate expired or not yet valid"},
        {BR_ERR_X509_BAD_SERVER_NAME, "certificate is for another name"},
        {BR_ERR_X509_NOT_TRUSTED, "certificate not trusted (unknown CA)"},
        {BR_ERR_X509_NOT_CA, "certificate chain: an issuer is not a CA"},
        {BR_ERR_X509_BAD_SIGNATURE, "certificate chain: bad signature"},
};

/* RFC 5246 section 7.2 and later registrations */
static const struct {
	int code;
	const char *name;
} tls_alerts[] = {
        {0, "close_notify"},
        {10, "unexpected_message"},
        {20, "bad_record_mac"},
        {22, "record_overflow"},
        {30, "decompression_failure"},
        {40, "handshake_failure"},
        {42, "bad_certificate"},
        {43, "unsupported_certificate"},
        {44, "certificate_revoked"},
        {45, "certificate_expired"},
        {46, "certificate_unknown"},
        {47, "illegal_parameter"},
        {48, "unknown_ca"},
        {49, "access_denied"},
        {50, "decode_error"},
        {51, "decrypt_error"},
        {70, "protocol_version"},
        {71, "insufficient_security"},
        {80, "internal_error"},
        {86, "inappropriate_fallback"},
        {90, "user_canceled"},
        {100, "no_renegotiation"},
        {110, "unsupported_extension"},
        {112, "unrecognized_name"},
        {120, "no_application_protocol"},
};

static const char *alert_name(int a)
{
	for (size_t i = 0; i < sizeof tls_alerts / sizeof tls_alerts[0]; i++) {
		if (tls_alerts[i].code == a) {
			return tls_alerts[i].name;
		}
	}
	return "unknown";
}

/* Why we sent a fatal alert: the server code sends these three itself. */
static const char *sent_alert_reason(int a)
{
	switch (a) {
	case 70:
		return "client does not offer TLS 1.2";
	case 40:
		return "no cipher suite, curve or signature hash in common";
	case 86:
		return "client fell back to an older version";
	default:
		return "protocol error";
	}
}

const char *tls_error(struct tls *t)
{
	if (!closed(t)) {
		return "";
	}
	if (t->err[0]) {
		return t->err;
	}
	int e = br_ssl_engine_last_error(&t->sc.eng);
	const char *phase = t->done ? "" : "handshake failed: ";
	if (e == BR_ERR_OK) {
		snprintf(t->err, sizeof t->err, "closed");
	} else if (e >= BR_ERR_SEND_FATAL_ALERT) {
		int a = e - BR_ERR_SEND_FATAL_ALERT;
		snprintf(t->err, sizeof t->err, "%s%s (sent alert %s)", phase, sent_alert_reason(a),
		        alert_name(a));
	} else if (e >= BR_ERR_RECV_FATAL_ALERT) {
		snprintf(t->err, sizeof t->err, "%speer sent alert %s", phase,
		        alert_name(e - BR_ERR_RECV_FATAL_ALERT));
	} else {
		const char *text = NULL;
		for (size_t i = 0; i < sizeof tls_errors / sizeof tls_errors[0]; i++) {
			if (tls_errors[i].code == e) {
				text = tls_errors[i].text;
			}
		}
		if (text) {
			snprintf(t->err, sizeof t->err, "%s%s", phase, text);
		} else {
			snprintf(t->err, sizeof t->err, "%sBearSSL error %d", phase, e);
		}
	}
	return t->err;
}

static const struct tls_suite *current_suite(struct tls *t)
{
	br_ssl_session_parameters sp;
	if (!t->done) {
		return NULL;
	}
	br_ssl_engine_get_session_parameters(&t->sc.eng, &sp);
	unsigned id = sp.cipher_suite;
	crypto_wipe(&sp, sizeof sp); /* it holds the master secret */
	return find_suite(id);
}

const char *tls_version(struct tls *t)
{
	if (!t->done) {
		return "";
	}
	switch (br_ssl_engine_get_version(&t->sc.eng)) {
	case BR_TLS12:
		return "TLSv1.2";
	case BR_TLS11:
		return "TLSv1.1";
	case BR_TLS10:
		return "TLSv1";
	}
	return "TLS";
}

const char *tls_cipher(struct tls *t)
{
	const struct tls_suite *s = current_suite(t);
	if (!s && t->done) {
		/* a client may agree on a suite a Rumble server never offers */
		br_ssl_session_parameters sp;
		br_ssl_engine_get_session_parameters(&t->sc.eng, &sp);
		snprintf(t->cipher, sizeof t->cipher, "TLS-SUITE-0x%04X", (unsigned)sp.cipher_suite);
		crypto_wipe(&sp, sizeof sp);
		return t->cipher;
	}
	return s ? s->name : "";
}

int tls_cipher_bits(struct tls *t)
{
	const struct tls_suite *s = current_suite(t);
	return s ? s->bits : 0;
}

const char *tls_sni(struct tls *t)
{
	return t->done ? br_ssl_engine_get_server_name(&t->sc.eng) : "";
}

/* ---- a self-signed certificate ---- */

#define DER_MAX 1024 /* the whole certificate fits: the CN is at most 64 */

/* A DER element being built; nested ones are built apart and wrapped. */
struct der {
	size_t len;
	int bad; /* something did not fit */
	unsigned char b[DER_MAX];
};

static void der_init(struct der *d)
{
	d->len = 0;
	d->bad = 0;
}

static void der_raw(struct der *d, const void *p, size_t n)
{
	if (d->bad || n > DER_MAX - d->len) {
		d->bad = 1;
		return;
	}
	memcpy(d->b + d->len, p, n);
	d->len += n;
}

/* Appends tag, length, value. */
static void der_add(struct der *d, unsigned tag, const void *v, size_t n)
{
	unsigned char h[4];
	size_t hl = 0;
	h[hl++] = (unsigned char)tag;
	if (n >= 256) {
		h[hl++] = 0x82;
		h[hl++] = (unsigned char)(n >> 8);
	} else if (n >= 128) {
		h[hl++] = 0x81;
	}
	h[hl++] = (unsigned char)n;
	if (n >= DER_MAX) {
		d->bad = 1;
		return;
	}
	der_raw(d, h, hl);
	der_raw(d, v, n);
}

static void der_wrap(struct der *d, unsigned tag, const struct der *inner)
{
	if (inner->bad) {
		d->bad = 1;
		return;
	}
	der_add(d, tag, inner->b, inner->len);
}

/* DER of the object identifiers, tag and length included */
static const unsigned char oid_ecdsa_sha256[] = {
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const unsigned char oid_ec_public_key[] = {
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const unsigned char oid_p256[] = {
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_cn[] = {0x06, 0x03, 0x55, 0x04, 0x03};
static const unsigned char oid_san[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
static const unsigned char oid_basic[] = {0x06, 0x03, 0x55, 0x1d, 0x13};

/* Name: SEQUENCE OF SET OF SEQUENCE { type, value }, with one CN */
static void der_name(struct der *d, const char *cn)
{
	struct der atv, set, seq;
	der_init(&atv);
	der_init(&set);
	der_init(&seq);
	der_raw(&atv, oid_cn, sizeof oid_cn);
	der_add(&atv, 0x0c, cn, strlen(cn)); /* UTF8String */
	der_wrap(&set, 0x30, &atv);
	der_wrap(&seq, 0x31, &set);
	der_wrap(d, 0x30, &seq);
}

/* UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5) */
static void der_time_add(struct der *d, int64_t t)
{
	struct tm tm;
	char s[64];
	os_gmtime(t, &tm);
	int year = tm.tm_year + 1900;
	if (year >= 1950 && year < 2050) {
		snprintf(s, sizeof s, "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1,
		        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		der_add(d, 0x17, s, strlen(s));
	} else {
		snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday,
		        tm.tm_hour, tm.tm_min, tm.tm_sec);
		der_add(d, 0x18, s, strlen(s));
	}
}

/* A dotted IPv4 address into ip; 0, or -1 when s is something else. */
static int parse_ipv4(const char *s, unsigned char ip[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0;
		int nd = 0;
		for (; *s >= '0' && *s <= '9' && nd < 4; s++, nd++) {
			v = v * 10 + (unsigned)(*s - '0');
		}
		if (nd == 0 || nd > 3 || v > 255 || *s != (i < 3 ? '.' : '\0')) {
			return -1;
		}
		ip[i] = (unsigned char)v;
		s += i < 3;
	}
	return 0;
}

/* A host name we can put in a certificate: 1-253 characters of
 * [A-Za-z0-9.-_] (IA5String). */
static int valid_cert_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 253) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_')) {
			return 0;
		}
	}
	return 1;
}

/* extensions [3]: subjectAltName (the name), basicConstraints CA:FALSE */
static void der_extensions(struct der *d, const char *name)
{
	struct der gn, ext, exts, wrap;
	unsigned char ip[4];
	der_init(&gn);
	der_init(&exts);
	if (parse_ipv4(name, ip) == 0) {
		der_add(&gn, 0x87, ip, sizeof ip); /* [7] iPAddress */
	} else {
		der_add(&gn, 0x82, name, strlen(name)); /* [2] dNSName */
	}
	der_init(&wrap);
	der_wrap(&wrap, 0x30, &gn); /* GeneralNames */
	der_init(&ext);
	der_raw(&ext, oid_san, sizeof oid_san);
	der_wrap(&ext, 0x04, &wrap);
	der_wrap(&exts, 0x30, &ext);
	der_init(&ext);
	der_raw(&ext, oid_basic, sizeof oid_basic);
	der_add(&ext, 0x01, "\xff", 1);     /* critical */
	der_add(&ext, 0x04, "\x30\x00", 2); /* an empty SEQUENCE: cA FALSE */
	der_wrap(&exts, 0x30, &ext);
	der_init(&wrap);
	der_wrap(&wrap, 0x30, &exts);
	der_wrap(d, 0xa3, &wrap);
}

/* TBSCertificate, RFC 5280 section 4.1 */
static void der_tbs(struct der *tbs, const char *name, const unsigned char serial[16],
        const br_ec_public_key *pk, int64_t now)
{
	static const unsigned char v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
	const char *cn = strlen(name) <= 64 ? name : "Rumble self-signed"; /* ub-common-name */
	struct der seq, tmp, spki;
	unsigned char bits[1 + BR_EC_KBUF_PUB_MAX_SIZE];

	der_init(&seq);
	der_raw(&seq, v3, sizeof v3);
	der_add(&seq, 0x02, serial, 16);
	der_init(&tmp);
	der_raw(&tmp, oid_ecdsa_sha256, sizeof oid_ecdsa_sha256);
	der_wrap(&seq, 0x30, &tmp);
	der_name(&seq, cn); /* issuer */
	der_init(&tmp);
	der_time_add(&tmp, now - 86400); /* a client's clock a little behind */
	der_time_add(&tmp, now + (int64_t)TLS_DAYS * 86400);
	der_wrap(&seq, 0x30, &tmp);
	der_name(&seq, cn); /* subject */
	der_init(&tmp);
	der_raw(&tmp, oid_ec_public_key, sizeof oid_ec_public_key);
	der_raw(&tmp, oid_p256, sizeof oid_p256);
	der_init(&spki);
	der_wrap(&spki, 0x30, &tmp);
	bits[0] = 0; /* no unused bits */
	memcpy(bits + 1, pk->q, pk->qlen);
	der_add(&spki, 0x03, bits, 1 + pk->qlen);
	der_wrap(&seq, 0x30, &spki);
	der_extensions(&seq, name);
	der_init(tbs);
	der_wrap(tbs, 0x30, &seq);
}

/* Certificate: SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING } */
static int der_certificate(struct der *cert, const struct der *tbs, const br_ec_private_key *sk)
{
	unsigned char hash[32], sig[1 + 80];
	struct der body, alg;
	crypto_sha256(tbs->b, tbs->len, hash);
	size_t slen = br_ecdsa_sign_asn1_get_default()(
	        br_ec_get_default(), &br_sha256_vtable, hash, sk, sig + 1);
	if (slen == 0 || slen > sizeof sig - 1) {
		return -1;
	}
	sig[0] = 0; /* no unused bits */
	der_init(&body);
	der_raw(&body, tbs->b, tbs->len);
	der_init(&alg);
	der_raw(&alg, oid_ecdsa_sha256, sizeof oid_ecdsa_sha256);
	der_wrap(&body, 0x30, &alg);
	der_add(&body, 0x03, sig, 1 + slen);
	der_init(cert);
	der_wrap(cert, 0x30, &body);
	return cert->bad ? -1 : 0;
}

/* PEM of der under banner, in a new string (caller frees). */
static char *pem_of(const void *der, size_t len, const char *banner, size_t *outlen)
{
	size_t n = br_pem_encode(NULL, der, len, banner, BR_PEM_LINE64);
	char *s = xmalloc(n + 1);
	*outlen = br_pem_encode(s, der, len, banner, BR_PEM_LINE64);
	return s;
}

/* Writes the key to a private temporary file, then renames it. */
static int write_private(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
	char tmp[1100];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
		seterr(err, errlen, "%s: path too long", path);
		return -1;
	}
	os_remove(tmp); /* a leftover could have another mode */
	FILE *f = os_fopen_private(tmp, "wb");
	if (!f) {
		seterr(err, errlen, "cannot create %s: %s", tmp, os_strerror());
		return -1;
	}
	int ok = fwrite(data, 1, len, f) == len && os_fsync(f) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || os_rename_atomic(tmp, path) != 0) {
		seterr(err, errlen, "cannot write %s: %s", path, os_strerror());
		os_remove(tmp);
		return -1;
	}
	return 0;
}

/* A DRBG seeded from the OS by both routes; -1 when neither gives anything. */
static int seed_rng(br_hmac_drbg_context *rng)
{
	unsigned char seed[32];
	int ok = os_random(seed, sizeof seed) == 0;
	if (!ok) {
		memset(seed, 0, sizeof seed);
	}
	br_hmac_drbg_init(rng, &br_sha256_vtable, seed, sizeof seed);
	br_prng_seeder sd = br_prng_seeder_system(NULL);
	if (sd && sd(&rng->vtable)) {
		ok = 1;
	}
	crypto_wipe(seed, sizeof seed);
	return ok ? 0 : -1;
}

/* see rumble.h */
int tls_selfsigned_create(
        const char *cert_path, const char *key_path, const char *name, char *err, size_t errlen)
{
	br_hmac_drbg_context rng;
	br_ec_private_key sk;
	br_ec_public_key pk;
	unsigned char kbuf[BR_EC_KBUF_PRIV_MAX_SIZE], pbuf[BR_EC_KBUF_PUB_MAX_SIZE], serial[16];
	unsigned char kder[256];
	struct der tbs, cert;
	char *kpem = NULL, *cpem = NULL;
	size_t klen = 0, clen = 0;
	int rc = -1;
	const br_ec_impl *ec = br_ec_get_default();

	if (!valid_cert_name(name)) {
		seterr(err, errlen, "\"%s\" is not a host name for a certificate", name);
		return -1;
	}
	if (seed_rng(&rng) != 0) {
		seterr(err, errlen, "no randomness from the OS");
		return -1;
	}
	size_t kdlen = 0;
	if (br_ec_keygen(&rng.vtable, ec, &sk, kbuf, BR_EC_secp256r1) == 0 ||
	        br_ec_compute_pub(ec, &pk, pbuf, &sk) == 0 ||
	        (kdlen = br_encode_ec_pkcs8_der(NULL, &sk, &pk)) == 0 || kdlen > sizeof kder) {
		seterr(err, errlen, "cannot make an EC P-256 key");
		goto out;
	}
	br_encode_ec_pkcs8_der(kder, &sk, &pk);
	br_hmac_drbg_generate(&rng, serial, sizeof serial);
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40); /* positive, 16 bytes exactly */
	der_tbs(&tbs, name, serial, &pk, os_time());
	if (tbs.bad || der_certificate(&cert, &tbs, &sk) != 0) {
		seterr(err, errlen, "cannot make the certificate");
		goto out;
	}
	kpem = pem_of(kder, kdlen, BR_ENCODE_PEM_PKCS8, &klen);
	cpem = pem_of(cert.b, cert.len, "CERTIFICATE", &clen);
	if (write_private(key_path, kpem, klen, err, errlen) != 0) {
		goto out;
	}
	if (os_write_file_atomic(cert_path, cpem, clen) != 0) {
		seterr(err, errlen, "cannot write %s: %s", cert_path, os_strerror());
		goto out;
	}
	rc = 0;
out:
	if (kpem) {
		crypto_wipe(kpem, klen);
		free(kpem);
	}
	free(cpem);
	crypto_wipe(kder, sizeof kder);
	crypto_wipe(kbuf, sizeof kbuf);
	crypto_wipe(&sk, sizeof sk);
	crypto_wipe(&rng, sizeof rng);
	return rc;
}

/* ---- RSA keys for DKIM (dkim.c) ---- */

struct crypto_rsa {
	br_rsa_private_key sk;
	unsigned char *data; /* the numbers sk points into */
	size_t len;
	unsigned char n[TLS_RSA_MAX_BITS / 8], e[4];
	size_t nlen, elen;
};

/* see rumble.h */
int crypto_rsa_create(const char *path, unsigned bits, char *err, size_t errlen)
{
	br_hmac_drbg_context rng;
	br_rsa_private_key sk;
	br_rsa_public_key pk;
	unsigned char *kbuf = xmalloc(BR_RSA_KBUF_PRIV_SIZE(TLS_RSA_MAX_BITS));
	unsigned char pbuf[BR_RSA_KBUF_PUB_SIZE(TLS_RSA_MAX_BITS)], d[TLS_RSA_MAX_BITS / 8];
	unsigned char *der = NULL;
	char *pem = NULL;
	size_t dlen = 0, derlen = 0, pemlen = 0;
	int rc = -1;
	if (bits < TLS_RSA_MIN_BITS || bits > TLS_RSA_MAX_BITS || seed_rng(&rng) != 0) {
		seterr(err, errlen, "cannot make an RSA key of %u bits", bits);
		goto out;
	}
	if (!br_rsa_keygen_get_default()(&rng.vtable, &sk, kbuf, &pk, pbuf, bits, 65537) ||
	        (dlen = br_rsa_compute_privexp_get_default()(d, &sk, 65537)) == 0 ||
	        (derlen = br_encode_rsa_raw_der(NULL, &sk, &pk, d, dlen)) == 0) {
		seterr(err, errlen, "cannot make an RSA key of %u bits", bits);
		goto out;
	}
	der = xmalloc(derlen);
	br_encode_rsa_raw_der(der, &sk, &pk, d, dlen);
	pem = pem_of(der, derlen, "RSA PRIVATE KEY", &pemlen);
	rc = write_private(path, pem, pemlen, err, errlen);
out:
	if (der) {
		crypto_wipe(der, derlen);
		free(der);
	}
	if (pem) {
		crypto_wipe(pem, pemlen);
		free(pem);
	}
	crypto_wipe(kbuf, BR_RSA_KBUF_PRIV_SIZE(TLS_RSA_MAX_BITS));
	free(kbuf);
	crypto_wipe(d, sizeof d);
	crypto_wipe(&rng, sizeof rng);
	return rc;
}

/* Big-endian e without leading zeros. */
static size_t exponent_bytes(uint32_t e, unsigned char out[4])
{
	size_t n = 0;
	for (int shift = 24; shift >= 0; shift -= 8) {
		if (n || (e >> shift) & 0xff) {
			out[n++] = (unsigned char)(e >> shift);
		}
	}
	return n;
}

/* see rumble.h */
struct crypto_rsa *crypto_rsa_load(const char *path, char *err, size_t errlen)
{
	struct tls_ctx *c = xcalloc(1, sizeof *c); /* the TLS key loader's */
	struct pem_load ld = {c, path, 0, 1, err, errlen};
	struct crypto_rsa *k = NULL;
	int rc = pem_load_file(&ld);
	if (rc == 0 && c->key_type != BR_KEYTYPE_RSA) {
		seterr(err, errlen, "%s: no RSA private key", path);
	} else if (rc == 0) {
		k = xcalloc(1, sizeof *k);
		k->sk = c->rsa;
		k->data = c->key_data;
		k->len = c->key_len;
		c->key_data = NULL;
		uint32_t e = br_rsa_compute_pubexp_get_default()(&k->sk);
		k->nlen = k->sk.n_bitlen <= TLS_RSA_MAX_BITS
		                  ? br_rsa_compute_modulus_get_default()(k->n, &k->sk)
		                  : 0;
		k->elen = exponent_bytes(e, k->e);
		if (!k->nlen || !k->elen) {
			seterr(err, errlen, "%s: unusable RSA key", path);
			crypto_rsa_free(k);
			k = NULL;
		}
	}
	ctx_destroy(c);
	return k;
}

void crypto_rsa_free(struct crypto_rsa *k)
{
	if (k) {
		crypto_wipe(k->data, k->len);
		free(k->data);
		crypto_wipe(k, sizeof *k);
		free(k);
	}
}

/* An INTEGER of the unsigned big-endian number p[0..n). */
static void der_uint(struct der *d, const unsigned char *p, size_t n)
{
	unsigned char v[TLS_RSA_MAX_BITS / 8 + 1];
	size_t len = 0;
	while (n > 1 && *p == 0) {
		p++;
		n--;
	}
	if (n && (*p & 0x80)) {
		v[len++] = 0; /* positive */
	}
	memcpy(v + len, p, n);
	der_add(d, 0x02, v, len + n);
}

static const unsigned char oid_rsa[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};

/* see rumble.h */
int crypto_rsa_public_b64(const struct crypto_rsa *k, char *out, size_t outlen)
{
	struct der ints, rsapub, bits, alg, spki;
	der_init(&ints);
	der_init(&rsapub);
	der_init(&bits);
	der_init(&alg);
	der_init(&spki);
	der_uint(&ints, k->n, k->nlen);
	der_uint(&ints, k->e, k->elen);
	der_wrap(&rsapub, 0x30, &ints);
	der_raw(&bits, "", 1); /* no unused bits */
	der_raw(&bits, rsapub.b, rsapub.len);
	der_raw(&alg, oid_rsa, sizeof oid_rsa); /* rsaEncryption, NULL */
	der_wrap(&spki, 0x30, &alg);
	der_wrap(&spki, 0x03, &bits);
	struct der all;
	der_init(&all);
	der_wrap(&all, 0x30, &spki);
	if (all.bad || rsapub.bad || bits.bad || outlen < 4 * ((all.len + 2) / 3) + 1) {
		return -1;
	}
	crypto_base64_encode(all.b, all.len, out);
	return 0;
}

/* see rumble.h */
size_t crypto_rsa_sign_sha256(const struct crypto_rsa *k, const uint8_t hash[32], uint8_t *sig, size_t len)
{
	size_t n = (k->sk.n_bitlen + 7) / 8;
	if (n > len || !br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, hash, 32, &k->sk, sig)) {
		return 0;
	}
	return n;
}

/* see rumble.h */
void crypto_sha256_init(crypto_sha256_ctx *c)
{
	typedef char fits[sizeof(br_sha256_context) <= sizeof *c ? 1 : -1];
	(void)sizeof(fits);
	br_sha256_init((br_sha256_context *)(void *)c);
}

void crypto_sha256_update(crypto_sha256_ctx *c, const void *p, size_t n)
{
	br_sha256_update((br_sha256_context *)(void *)c, p, n);
}

void crypto_sha256_final(crypto_sha256_ctx *c, uint8_t out[32])
{
	br_sha256_out((br_sha256_context *)(void *)c, out);
}

/* see rumble.h */
void crypto_sha512(const void *data, size_t n, const void *data2, size_t n2, uint8_t out[64])
{
	br_sha512_context c;
	br_sha512_init(&c);
	br_sha512_update(&c, data, n);
	br_sha512_update(&c, data2, n2);
	br_sha512_out(&c, out);
}

/* The modulus and exponent of an RSA public key in DER: a
 * SubjectPublicKeyInfo (what RFC 6376 3.6.1 asks for) or a bare PKCS#1
 * RSAPublicKey (what some publish). -1 when it is neither. */
static int rsa_public_der(const uint8_t *der, size_t len, br_rsa_public_key *pk)
{
	struct der_in d = {der, len}, seq, x, n, e;
	unsigned tag;
	if (der_next(&d, &tag, &seq) != 0 || tag != 0x30 || der_next(&seq, &tag, &x) != 0) {
		return -1;
	}
	if (tag == 0x30) { /* SPKI: AlgorithmIdentifier, then a BIT STRING */
		if (x.n < 11 || memcmp(x.p, oid_rsa, 11) != 0 || der_next(&seq, &tag, &x) != 0 ||
		        tag != 0x03 || x.n < 1 || x.p[0] != 0) {
			return -1;
		}
		d = (struct der_in){x.p + 1, x.n - 1};
		if (der_next(&d, &tag, &seq) != 0 || tag != 0x30 || der_next(&seq, &tag, &x) != 0) {
			return -1;
		}
	}
	n = x;
	if (tag != 0x02 || der_next(&seq, &tag, &e) != 0 || tag != 0x02) {
		return -1;
	}
	while (n.n > 1 && n.p[0] == 0) { /* the sign byte */
		n.p++;
		n.n--;
	}
	pk->n = (unsigned char *)n.p;
	pk->nlen = n.n;
	pk->e = (unsigned char *)e.p;
	pk->elen = e.n;
	return 0;
}

/* see rumble.h */
int crypto_rsa_verify_sha256(const uint8_t *der, size_t len, const uint8_t *sig, size_t siglen,
        const uint8_t hash[32])
{
	br_rsa_public_key pk;
	unsigned char got[32];
	if (rsa_public_der(der, len, &pk) != 0 || pk.nlen > TLS_RSA_MAX_BITS / 8) {
		return -1;
	}
	if (pk.nlen < 1024 / 8 || (pk.nlen == 1024 / 8 && pk.n[0] < 0x80)) {
		return -2; /* RFC 8301 3.2: keys under 1024 bits are not accepted */
	}
	if (siglen != pk.nlen ||
	        !br_rsa_pkcs1_vrfy_get_default()(sig, siglen, BR_HASH_OID_SHA256, 32, &pk, got)) {
		return 0;
	}
	return crypto_equal(got, hash, 32);
}

/* ---- SASL PLAIN and LOGIN (see rumble.h) ---- */

void crypto_sasl_reset(struct sasl *x)
{
	x->step = SASL_IDLE;
	crypto_wipe(x->login, sizeof x->login);
	crypto_wipe(x->password, sizeof x->password);
}

/* Decodes base64 into out as a NUL-terminated string; -1 if bad. */
static long sasl_decode(const char *in, char *out, size_t outlen)
{
	long n = crypto_base64_decode(in, strlen(in), out, outlen - 1);
	out[n >= 0 ? n : 0] = '\0';
	return n;
}

/* authzid NUL authcid NUL password; only authzid "" or = authcid. */
static enum sasl_result sasl_plain(struct sasl *x, const char *resp)
{
	char buf[1024];
	long n = sasl_decode(resp, buf, sizeof buf);
	char *authcid = n > 0 ? memchr(buf, '\0', (size_t)n) : NULL;
	char *pw = authcid ? memchr(authcid + 1, '\0', (size_t)(buf + n - authcid - 1)) : NULL;
	enum sasl_result r = SASL_MALFORMED;
	if (pw && (!buf[0] || !strcmp(buf, authcid + 1)) && strlen(authcid + 1) < sizeof x->login &&
	        strlen(pw + 1) < sizeof x->password) {
		strcpy(x->login, authcid + 1);
		strcpy(x->password, pw + 1);
		r = SASL_DONE;
	}
	crypto_wipe(buf, sizeof buf);
	return r;
}

enum sasl_result crypto_sasl_step(struct sasl *x, const char *line, const char **challenge)
{
	enum sasl_step step = x->step;
	enum sasl_result r = SASL_MALFORMED;
	x->step = SASL_IDLE;
	if (!strcmp(line, "*")) {
		r = SASL_CANCELLED;
	} else if (step == SASL_PLAIN) {
		r = sasl_plain(x, line);
	} else if (step == SASL_LOGIN_USER && sasl_decode(line, x->login, sizeof x->login) > 0) {
		x->step = SASL_LOGIN_PASS;
		*challenge = "UGFzc3dvcmQ6"; /* "Password:" */
		r = SASL_CHALLENGE;
	} else if (step == SASL_LOGIN_PASS &&
	           sasl_decode(line, x->password, sizeof x->password) >= 0) {
		r = SASL_DONE;
	}
	if (r != SASL_CHALLENGE && r != SASL_DONE) {
		crypto_sasl_reset(x);
	}
	return r;
}

enum sasl_result crypto_sasl_start(
        struct sasl *x, const char *mech, const char *initial, const char **challenge)
{
	crypto_sasl_reset(x);
	if (!rl_strcasecmp(mech, "PLAIN")) {
		x->step = SASL_PLAIN;
		*challenge = "";
	} else if (!rl_strcasecmp(mech, "LOGIN")) {
		x->step = SASL_LOGIN_USER;
		*challenge = "VXNlcm5hbWU6"; /* "Username:" */
	} else {
		return SASL_NOMECH;
	}
	if (initial && *initial) {
		return crypto_sasl_step(x, !strcmp(initial, "=") ? "" : initial, challenge);
	}
	return SASL_CHALLENGE;
}
