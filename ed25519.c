/*
 * ed25519.c - Ed25519 signature verification (RFC 8032 5.1.7), for DKIM's
 * ed25519-sha256 (RFC 8463). BearSSL has no Ed25519; this is written from
 * the RFC, small rather than fast: field elements are 16 signed limbs of
 * 16 bits, points use extended coordinates and the one addition formula
 * of 5.1.4 (also for doubling), scalars are multiplied bit by bit.
 *
 * Everything it handles is public (key, message, signature), so nothing
 * here needs to run in constant time; a verification costs about two
 * 256-bit scalar multiplications, a few milliseconds.
 */
#include <string.h>

#include "rumble.h"

typedef int64_t fe[16]; /* value = sum of limb[i] * 2^(16 i), mod p = 2^255 - 19 */

struct point {
	fe x, y, z, t;
};

/* The group order L = 2^252 + 27742317777372353535851937790883648493,
 * little-endian. */
static const uint8_t order[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
        0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

/* The base point B's encoding (y = 4/5, x even). */
static const uint8_t base_enc[32] = {0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};

/* ---- the field GF(2^255 - 19) ---- */

static void fe_set(fe o, int64_t v)
{
	memset(o, 0, sizeof(fe));
	o[0] = v;
}

/* Brings each limb back into [0, 2^16); 2^256 = 38 (mod p). */
static void fe_carry(fe o)
{
	for (int i = 0; i < 16; i++) {
		int64_t c = o[i] >> 16; /* floor, also for negative limbs */
		o[i] -= c * 65536;
		if (i < 15) {
			o[i + 1] += c;
		} else {
			o[0] += 38 * c;
		}
	}
}

static void fe_add(fe o, const fe a, const fe b)
{
	for (int i = 0; i < 16; i++) {
		o[i] = a[i] + b[i];
	}
}

static void fe_sub(fe o, const fe a, const fe b)
{
	for (int i = 0; i < 16; i++) {
		o[i] = a[i] - b[i];
	}
}

static void fe_mul(fe o, const fe a, const fe b)
{
	int64_t t[31] = {0};
	for (int i = 0; i < 16; i++) {
		for (int j = 0; j < 16; j++) {
			t[i + j] += a[i] * b[j];
		}
	}
	for (int i = 0; i < 15; i++) {
		t[i] += 38 * t[i + 16];
	}
	memcpy(o, t, sizeof(fe));
	fe_carry(o);
	fe_carry(o);
}

/* o = a^e where e is 2^(top+1) - 1 less the bits in skip (at most two
 * positions; -1 for none): the exponents this file needs all look so. */
static void fe_pow(fe o, const fe a, int top, int skip1, int skip2)
{
	fe c;
	memcpy(c, a, sizeof(fe));
	for (int i = top - 1; i >= 0; i--) {
		fe_mul(c, c, c);
		if (i != skip1 && i != skip2) {
			fe_mul(c, c, a);
		}
	}
	memcpy(o, c, sizeof(fe));
}

/* a^(p-2) = 1/a: p - 2 = 2^255 - 21, every bit below 255 set but 2 and 4. */
static void fe_inv(fe o, const fe a)
{
	fe_pow(o, a, 254, 2, 4);
}

/* The canonical 32-byte encoding (value reduced below p). */
static void fe_pack(uint8_t out[32], const fe a)
{
	fe t, m;
	memcpy(t, a, sizeof(fe));
	fe_carry(t);
	fe_carry(t);
	fe_carry(t);
	for (int k = 0; k < 2; k++) { /* t < 2p + 38 here: subtract p up to twice */
		m[0] = t[0] - 0xffed;
		for (int i = 1; i < 15; i++) {
			m[i] = t[i] - 0xffff - ((m[i - 1] >> 16) & 1);
			m[i - 1] &= 0xffff;
		}
		m[15] = t[15] - 0x7fff - ((m[14] >> 16) & 1);
		m[14] &= 0xffff;
		if (!((m[15] >> 16) & 1)) { /* no borrow: t >= p */
			memcpy(t, m, sizeof(fe));
		}
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = (uint8_t)(t[i] & 0xff);
		out[2 * i + 1] = (uint8_t)(t[i] >> 8);
	}
}

static void fe_unpack(fe o, const uint8_t in[32])
{
	for (int i = 0; i < 16; i++) {
		o[i] = in[2 * i] | (int64_t)in[2 * i + 1] << 8;
	}
	o[15] &= 0x7fff;
}

static int fe_equal(const fe a, const fe b)
{
	uint8_t x[32], y[32];
	fe_pack(x, a);
	fe_pack(y, b);
	return memcmp(x, y, 32) == 0;
}

static int fe_odd(const fe a)
{
	uint8_t x[32];
	fe_pack(x, a);
	return x[0] & 1;
}

/* d = -121665 / 121666, the curve's constant. */
static void curve_d(fe d)
{
	fe n, den;
	fe_set(n, -121665);
	fe_set(den, 121666);
	fe_inv(den, den);
	fe_mul(d, n, den);
}

/* ---- points ---- */

/* RFC 8032 5.1.4, for a = -1; works for doubling too. */
static void pt_add(struct point *o, const struct point *p, const struct point *q, const fe d2)
{
	fe a, b, c, d, e, f, g, h, t;
	fe_sub(a, p->y, p->x);
	fe_sub(t, q->y, q->x);
	fe_mul(a, a, t);
	fe_add(b, p->y, p->x);
	fe_add(t, q->y, q->x);
	fe_mul(b, b, t);
	fe_mul(c, p->t, q->t);
	fe_mul(c, c, d2);
	fe_mul(d, p->z, q->z);
	fe_add(d, d, d);
	fe_sub(e, b, a);
	fe_sub(f, d, c);
	fe_add(g, d, c);
	fe_add(h, b, a);
	fe_mul(o->x, e, f);
	fe_mul(o->y, g, h);
	fe_mul(o->t, e, h);
	fe_mul(o->z, f, g);
}

/* o = s * p, s a 32-byte little-endian scalar. */
static void pt_mul(struct point *o, const uint8_t s[32], const struct point *p, const fe d2)
{
	struct point r;
	memset(&r, 0, sizeof r);
	fe_set(r.y, 1);
	fe_set(r.z, 1);
	for (int i = 255; i >= 0; i--) {
		pt_add(&r, &r, &r, d2);
		if ((s[i / 8] >> (i % 8)) & 1) {
			pt_add(&r, &r, p, d2);
		}
	}
	*o = r;
}

static void pt_pack(uint8_t out[32], const struct point *p)
{
	fe zi, x, y;
	fe_inv(zi, p->z);
	fe_mul(x, p->x, zi);
	fe_mul(y, p->y, zi);
	fe_pack(out, y);
	out[31] ^= (uint8_t)(fe_odd(x) << 7);
}

/* RFC 8032 5.1.3; -1 when in is not a point's canonical encoding. */
static int pt_unpack(struct point *o, const uint8_t in[32], const fe d)
{
	fe u, v, v3, x, t, chk;
	uint8_t y_enc[32];
	int sign = in[31] >> 7;
	fe_unpack(o->y, in);
	fe_pack(y_enc, o->y);
	y_enc[31] |= (uint8_t)(sign << 7);
	if (memcmp(y_enc, in, 32) != 0) {
		return -1; /* y >= p */
	}
	fe_set(o->z, 1);
	fe_mul(u, o->y, o->y);
	fe_mul(v, u, d);
	fe_sub(u, u, o->z); /* u = y^2 - 1 */
	fe_add(v, v, o->z); /* v = d y^2 + 1 */
	fe_mul(v3, v, v);
	fe_mul(v3, v3, v); /* v^3 */
	fe_mul(x, v3, v3);
	fe_mul(x, x, v);
	fe_mul(x, x, u);          /* u v^7 */
	fe_pow(x, x, 251, 1, -1); /* ^((p-5)/8) = 2^252 - 3 */
	fe_mul(x, x, v3);
	fe_mul(x, x, u); /* x = u v^3 (u v^7)^((p-5)/8) */
	fe_mul(chk, x, x);
	fe_mul(chk, chk, v);
	if (!fe_equal(chk, u)) {
		fe zero;
		fe_set(zero, 0);
		fe_sub(t, zero, u);
		if (!fe_equal(chk, t)) {
			return -1;
		}
		fe_set(t, 2);
		fe_pow(t, t, 252, 2, -1); /* sqrt(-1) = 2^((p-1)/4), (p-1)/4 = 2^253 - 5 */
		fe_mul(x, x, t);
	}
	fe zero;
	fe_set(zero, 0);
	if (fe_equal(x, zero) && sign) {
		return -1;
	}
	if (fe_odd(x) != sign) {
		fe_sub(x, zero, x);
	}
	memcpy(o->x, x, sizeof(fe));
	fe_mul(o->t, o->x, o->y);
	return 0;
}

/* ---- scalars mod L ---- */

/* 1 when the 32-byte little-endian s is below L. */
static int below_order(const uint8_t s[32])
{
	for (int i = 31; i >= 0; i--) {
		if (s[i] != order[i]) {
			return s[i] < order[i];
		}
	}
	return 0;
}

/* out = the 64-byte little-endian h mod L, bit by bit (r = 2r + bit,
 * less L when it reaches it). */
static void reduce_order(uint8_t out[32], const uint8_t h[64])
{
	uint8_t r[33] = {0};
	for (int bit = 511; bit >= 0; bit--) {
		int carry = (h[bit / 8] >> (bit % 8)) & 1;
		for (int i = 0; i < 33; i++) {
			int v = r[i] << 1 | carry;
			r[i] = (uint8_t)v;
			carry = v >> 8;
		}
		uint8_t t[33];
		int borrow = 0;
		for (int i = 0; i < 33; i++) {
			int v = r[i] - (i < 32 ? order[i] : 0) - borrow;
			t[i] = (uint8_t)v;
			borrow = v < 0;
		}
		if (!borrow) {
			memcpy(r, t, sizeof r);
		}
	}
	memcpy(out, r, 32);
}

/* see rumble.h */
int crypto_ed25519_verify(
        const uint8_t pub[32], const uint8_t *msg, size_t n, const uint8_t sig[64])
{
	fe d, d2;
	struct point a, b, sb, ka;
	uint8_t ra[64], h[64], k[32], check[32];
	curve_d(d);
	fe_add(d2, d, d);
	if (!below_order(sig + 32) || pt_unpack(&a, pub, d) != 0 ||
	        pt_unpack(&b, base_enc, d) != 0 ||
	        pt_unpack(&sb, sig, d) != 0) { /* R must be a point too */
		return 0;
	}
	memcpy(ra, sig, 32);
	memcpy(ra + 32, pub, 32);
	crypto_sha512(ra, 64, msg, n, h);
	reduce_order(k, h);
	/* [S]B - [k]A must be R */
	fe zero;
	fe_set(zero, 0);
	fe_sub(a.x, zero, a.x);
	fe_sub(a.t, zero, a.t);
	pt_mul(&ka, k, &a, d2);
	pt_mul(&sb, sig + 32, &b, d2);
	pt_add(&sb, &sb, &ka, d2);
	pt_pack(check, &sb);
	return memcmp(check, sig, 32) == 0;
}
