/*
 * imap_utf8.c - mailbox names in UTF-8 for IMAP4rev2 (RFC 9051 5.1) over
 * a store that keeps them in modified UTF-7 (RFC 3501 5.1.3, RFC 9051
 * A.1), as IMAP4rev1 clients send them. The store's form stays the one
 * name; a session that did ENABLE IMAP4rev2 has its names converted at
 * the edge, in (imap_utf8_to_mutf7) and out (imap_name_shown).
 *
 * Modified UTF-7: printable ASCII but "&" stands for itself, "&" is
 * "&-", anything else is UTF-16 in base64 ("," for "/") between "&" and
 * "-". A name has exactly one form: no printable ASCII in base64, no
 * superfluous shifts, no bits left over; a decoding is checked by
 * encoding it again. Control characters are refused both ways.
 */
#include <string.h>

#include "rumble.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Output into a caller's buffer; full once something did not fit. */
struct out {
	char *p;
	size_t len, n;
	int full;
};

static void put(struct out *o, char c)
{
	if (o->n + 1 < o->len) {
		o->p[o->n++] = c;
	} else {
		o->full = 1;
	}
}

static int finish(struct out *o)
{
	if (o->len) {
		o->p[o->n] = '\0';
	}
	return o->full || !o->len ? -1 : 0;
}

/* One code point of UTF-8 at *s, which moves past it; -1 when it is
 * malformed (overlong, a surrogate, past U+10FFFF, cut short). */
static long utf8_next(const unsigned char **s)
{
	const unsigned char *p = *s;
	long c = p[0];
	int n = c < 0x80                 ? 0
	        : c >= 0xc2 && c <= 0xdf ? 1
	        : c >= 0xe0 && c <= 0xef ? 2
	        : c >= 0xf0 && c <= 0xf4 ? 3
	                                 : -1;
	if (n < 0) {
		return -1;
	}
	c &= n ? 0x3f >> n : 0x7f;
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			return -1; /* also the NUL of a string cut short */
		}
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10ffff)) ||
	        (c >= 0xd800 && c <= 0xdfff)) {
		return -1;
	}
	*s = p + n + 1;
	return c;
}

static void put_utf8(struct out *o, long c)
{
	if (c < 0x80) {
		put(o, (char)c);
		return;
	}
	static const unsigned char lead[] = {0, 0xc0, 0xe0, 0xf0};
	int n = c < 0x800 ? 1 : c < 0x10000 ? 2 : 3;
	put(o, (char)(lead[n] | (c >> (6 * n))));
	for (int i = n - 1; i >= 0; i--) {
		put(o, (char)(0x80 | ((c >> (6 * i)) & 0x3f)));
	}
}

static int control(long c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0);
}

/* A base64 run: 16-bit units in, 6-bit digits out. */
struct run {
	uint32_t bits;
	int nbits;
};

static void run_unit(struct out *o, struct run *r, uint32_t u)
{
	r->bits = r->bits << 16 | u;
	r->nbits += 16;
	while (r->nbits >= 6) {
		r->nbits -= 6;
		put(o, b64[(r->bits >> r->nbits) & 0x3f]);
	}
	r->bits &= (1u << r->nbits) - 1;
}

static void run_end(struct out *o, struct run *r)
{
	if (r->nbits) {
		put(o, b64[(r->bits << (6 - r->nbits)) & 0x3f]);
	}
	put(o, '-');
	r->bits = 0;
	r->nbits = 0;
}

/* see rumble.h */
int imap_utf8_to_mutf7(const char *in, char *out, size_t len)
{
	struct out o = {out, len, 0, 0};
	struct run r = {0, 0};
	const unsigned char *s = (const unsigned char *)in;
	int shifted = 0;
	while (*s) {
		long c = utf8_next(&s);
		if (c < 0 || control(c)) {
			finish(&o);
			return -1;
		}
		if (c < 0x7f) {
			if (shifted) {
				run_end(&o, &r);
				shifted = 0;
			}
			put(&o, (char)c);
			if (c == '&') {
				put(&o, '-');
			}
			continue;
		}
		if (!shifted) {
			put(&o, '&');
			shifted = 1;
		}
		if (c >= 0x10000) {
			run_unit(&o, &r, 0xd800 + (uint32_t)((c - 0x10000) >> 10));
			c = 0xdc00 + ((c - 0x10000) & 0x3ff);
		}
		run_unit(&o, &r, (uint32_t)c);
	}
	if (shifted) {
		run_end(&o, &r);
	}
	return finish(&o);
}

/* The base64 run at *p (after its "&") to its "-", decoded into o. */
static int decode_run(struct out *o, const char **p)
{
	uint32_t bits = 0, high = 0;
	int nbits = 0;
	for (; **p && **p != '-'; (*p)++) {
		const char *k = strchr(b64, **p);
		if (!k) {
			return -1;
		}
		bits = (bits << 6 | (uint32_t)(k - b64)) & 0xffffff;
		if ((nbits += 6) < 16) {
			continue;
		}
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		if (u >= 0xd800 && u < 0xdc00 && !high) {
			high = u;
		} else if (u >= 0xdc00 && u < 0xe000 && high) {
			put_utf8(o, 0x10000 + ((long)(high - 0xd800) << 10) + (long)(u - 0xdc00));
			high = 0;
		} else if (u < 0xd800 || u >= 0xe000) {
			if (high) {
				return -1;
			}
			put_utf8(o, (long)u);
		} else {
			return -1;
		}
	}
	if (**p != '-' || high) {
		return -1;
	}
	(*p)++;
	return 0;
}

/* see rumble.h */
int imap_mutf7_to_utf8(const char *in, char *out, size_t len)
{
	struct out o = {out, len, 0, 0};
	const char *p = in;
	while (*p) {
		if (*p != '&') {
			put(&o, *p++);
		} else if (*++p == '-') {
			put(&o, '&');
			p++;
		} else if (decode_run(&o, &p) != 0) {
			finish(&o);
			return -1;
		}
	}
	if (finish(&o) != 0) {
		return -1;
	}
	/* one form only: it must come back as it was (this also refuses
	 * controls, ASCII in base64, superfluous shifts, stray bits) */
	size_t n = strlen(in);
	char *again = xmalloc(n + 1);
	int same = imap_utf8_to_mutf7(out, again, n + 1) == 0 && strcmp(again, in) == 0;
	xfree(again);
	return same ? 0 : -1;
}

/* see rumble.h */
const char *imap_name_shown(const char *name, int utf8, char *buf, size_t len)
{
	if (!utf8 || !strchr(name, '&') || imap_mutf7_to_utf8(name, buf, len) != 0) {
		return name;
	}
	return buf;
}

/* 1 when p (n bytes) can be a quoted string of IMAP4rev2: UTF-8 without
 * controls (RFC 9051 9, QUOTED-CHAR), and short. */
static int quotable_utf8(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p, *end = s + n;
	if (n > 1024 || memchr(p, '\0', n)) {
		return 0;
	}
	while (s < end) {
		long c = utf8_next(&s);
		if (c < 0 || control(c)) {
			return 0;
		}
	}
	return 1;
}

/* see rumble.h */
void imap_put_name(struct buf *o, const char *name, int utf8)
{
	char buf[IMAP_NAME_UTF8_MAX];
	const char *p = imap_name_shown(name, utf8, buf, sizeof buf);
	size_t n = strlen(p);
	if (!utf8 || !quotable_utf8(p, n)) {
		imap_put_string(o, p, n);
		return;
	}
	buf_append(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\') {
			buf_append(o, "\\", 1);
		}
		buf_append(o, p + i, 1);
	}
	buf_append(o, "\"", 1);
}
