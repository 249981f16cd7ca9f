/*
 * der.c - DER (X.690) for certificates and requests: a builder (nested
 * elements built apart, then wrapped, each in a fixed buffer that marks
 * itself bad when something does not fit) and a reader of the few fields
 * the log and ACME's renewal need (the subject's CN, the validity).
 * No BearSSL here: crypto.c signs what this builds.
 */
#include <string.h>
#include <time.h>

#include "rumble.h"

/* ---- building ---- */

void der_init(struct der *d)
{
	d->len = 0;
	d->bad = 0;
}

void der_raw(struct der *d, const void *p, size_t n)
{
	if (d->bad || n > DER_MAX - d->len) {
		d->bad = 1;
		return;
	}
	memcpy(d->b + d->len, p, n);
	d->len += n;
}

/* Appends tag, length, value. */
void der_add(struct der *d, unsigned tag, const void *v, size_t n)
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

void der_wrap(struct der *d, unsigned tag, const struct der *inner)
{
	if (inner->bad) {
		d->bad = 1;
		return;
	}
	der_add(d, tag, inner->b, inner->len);
}

/* DER of the object identifiers, tag and length included */
const unsigned char der_oid_ecdsa_sha256[] = {
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
const unsigned char der_oid_ec_public_key[] = {
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
const unsigned char der_oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const unsigned char der_oid_cn[] = {0x06, 0x03, 0x55, 0x04, 0x03};
const unsigned char der_oid_san[] = {0x06, 0x03, 0x55, 0x1d, 0x11};
const unsigned char der_oid_basic[] = {0x06, 0x03, 0x55, 0x1d, 0x13};

/* Name: SEQUENCE OF SET OF SEQUENCE { type, value }, with one CN */
void der_name(struct der *d, const char *cn)
{
	struct der atv, set, seq;
	der_init(&atv);
	der_init(&set);
	der_init(&seq);
	der_raw(&atv, der_oid_cn, sizeof der_oid_cn);
	der_add(&atv, 0x0c, cn, strlen(cn)); /* UTF8String */
	der_wrap(&set, 0x30, &atv);
	der_wrap(&seq, 0x31, &set);
	der_wrap(d, 0x30, &seq);
}

/* UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5) */
void der_time_add(struct der *d, int64_t t)
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

/* ---- reading ---- */

/* Takes the next element off d: its tag and contents. -1 when d is empty
 * or the element is malformed. Lengths of up to 3 bytes, as in any
 * certificate. */
int der_next(struct der_in *d, unsigned *tag, struct der_in *val)
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
int64_t der_time(unsigned tag, struct der_in v)
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
	static const unsigned char cn_oid[] = {0x55, 0x04, 0x03};
	struct der_in rdn, atv, oid, val;
	unsigned tag;
	while (der_next(&name, &tag, &rdn) == 0) {
		while (der_next(&rdn, &tag, &atv) == 0) {
			if (der_next(&atv, &tag, &oid) != 0 || der_next(&atv, &tag, &val) != 0 ||
			        oid.n != sizeof cn_oid ||
			        memcmp(oid.p, cn_oid, sizeof cn_oid) != 0) {
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
int der_cert_info(const void *cert_der, size_t len, char *cn, size_t cnlen, int64_t *not_before,
        int64_t *not_after)
{
	struct der_in d = {cert_der, len}, cert, tbs, v, validity, subject;
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
	        der_next(&validity, &tag, &v) != 0) {
		return -1;
	}
	if (not_before) {
		*not_before = der_time(tag, v);
	}
	if (der_next(&validity, &tag, &v) != 0) {
		return -1;
	}
	*not_after = der_time(tag, v);
	der_cn(subject, cn, cnlen);
	return *not_after < 0 ? -1 : 0;
}
