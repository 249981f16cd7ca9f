/*
 * crypto.c - SHA-256, base64, password hashing. The only file that includes
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
 * before it goes out of scope (wipe(), through a volatile pointer so that
 * the compiler cannot drop the stores as dead).
 */
#include <limits.h>
#include <string.h>

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

static void wipe(void *p, size_t n)
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
	wipe(&c, sizeof c);
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
	wipe(h, sizeof h);
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
	wipe(&hc, sizeof hc);
	wipe(u, sizeof u);
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
	wipe(&kc, sizeof kc);
	wipe(t, sizeof t);
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
	wipe(key, sizeof key);
	wipe(keyhex, sizeof keyhex);
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
	wipe(got, sizeof got);
	wipe(want, sizeof want);
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
	wipe(got, sizeof got);
	wipe(want, sizeof want);
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
