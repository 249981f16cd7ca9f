/*
 * dns.c - a small blocking DNS client: MX, A, AAAA, TXT, PTR and SRV lookups
 * for outbound delivery, scripts and the DNS advice (see rumble.h).
 *
 * A lookup: the cache first (raw answers keyed by name and type, kept for
 * the smallest TTL in them; negative answers for their SOA's, RFC 2308),
 * else each server in turn, DNS_TRIES rounds. A query goes over UDP with
 * a random id from a random port (RFC 5452) and an EDNS0 record offering
 * DNS_UDP_SIZE bytes; the socket is connected, so only the server's
 * address and port can answer, and a datagram that is not the answer to
 * our id and question is dropped while the wait goes on. A truncated
 * answer is asked again over TCP (RFC 7766), FORMERR to an EDNS query
 * again without EDNS (RFC 6891 section 7). SERVFAIL, REFUSED, silence or
 * a refused port move on to the next server. CNAMEs are followed inside
 * an answer and, when a server stopped at one, by asking again.
 *
 * The parser reads untrusted bytes: every read goes through rd_take, which
 * checks against the end once and makes the failure sticky; a compression
 * pointer must point before itself and a name stops at 255 bytes or
 * DNS_PTR_HOPS jumps, so no packet can make it loop or read out of bounds.
 */
#include <string.h>

#include "rumble.h"

#define DNS_PORT 53
#define DNS_TIMEOUT_MS 2000
#define DNS_TRIES 2
#define DNS_UDP_SIZE 1232 /* no fragments on any path (DNS flag day 2020) */
#define DNS_PKT_MAX 65535 /* the largest TCP answer */
#define DNS_WIRE_MAX 255  /* a name in wire form (RFC 1035 section 3.1) */
#define DNS_LABEL_MAX 63
#define DNS_QUERY_MAX 512 /* header, the longest name, question, OPT: 282 */
#define DNS_CNAME_MAX 8   /* links followed in all */
#define DNS_PTR_HOPS 64   /* compression jumps in one name */
#define DNS_TTL_MAX 86400 /* a day: changes are seen by tomorrow */
#define DNS_NEG_TTL_MAX 300
#define CACHE_MAX 1024
#define CACHE_BYTES (1024 * 1024)
#define CACHE_BUCKETS 256

#define HDR_QR 0x8000
#define HDR_OPCODE 0x7800
#define HDR_TC 0x0200
#define HDR_RD 0x0100
#define RCODE_NOERROR 0
#define RCODE_FORMERR 1
#define RCODE_NXDOMAIN 3
#define TYPE_OPT 41
#define CLASS_IN 1

struct server {
	char addr[64];
	int port;
};

/* A cached answer, as the server sent it: a hit is parsed again. */
struct centry {
	struct centry *hnext;         /* the same bucket */
	struct centry *older, *newer; /* in the order of insertion */
	int64_t expires;              /* os_now_ms() */
	int type;
	size_t klen, len;
	uint8_t key[DNS_WIRE_MAX];
	uint8_t pkt[]; /* len bytes */
};

static struct {
	os_mutex *lock; /* guards all below */
	struct server srv[DNS_SERVERS_MAX];
	int nsrv, timeout_ms, tries;
	struct centry *bucket[CACHE_BUCKETS];
	struct centry *oldest, *newest;
	int count;
	size_t bytes;
} dns = {.timeout_ms = DNS_TIMEOUT_MS, .tries = DNS_TRIES};

/* ---- reading packets ---- */

/* A reader over a packet: p[0..size) is all of it (where compression
 * pointers may point), reads stop at end. The first read past end sets
 * bad and every later read gives zeroes: check once after a run of reads
 * (BearSSL's sticky error). */
struct rd {
	const uint8_t *p;
	size_t size, end, off;
	int bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
	const uint8_t *q;

	if (r->bad || n > r->end - r->off) {
		r->bad = 1;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static unsigned rd_u8(struct rd *r)
{
	const uint8_t *q = rd_take(r, 1);

	return q ? q[0] : 0;
}

static unsigned rd_u16(struct rd *r)
{
	const uint8_t *q = rd_take(r, 2);

	return q ? (unsigned)q[0] << 8 | q[1] : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	const uint8_t *q = rd_take(r, 4);

	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Reads the name at r's position into out (wire form, lower case) and
 * moves past it; the length, or 0 with r->bad set when it is malformed.
 * Labels are read up to r->end until the first compression pointer, then
 * anywhere in the packet. */
static size_t rd_name(struct rd *r, uint8_t out[DNS_WIRE_MAX])
{
	size_t pos = r->off, lim = r->end, n = 0, to;
	int hops = 0, jumped = 0;
	unsigned c;

	while (!r->bad && pos < lim) {
		c = r->p[pos];
		if (c == 0) {
			out[n++] = 0;
			r->off = jumped ? r->off : pos + 1;
			return n;
		}
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= lim || ++hops > DNS_PTR_HOPS) {
				break;
			}
			to = (size_t)(c & 0x3f) << 8 | r->p[pos + 1];
			if (to >= pos) { /* only backwards: no loop */
				break;
			}
			r->off = jumped ? r->off : pos + 2;
			jumped = 1;
			pos = to;
			lim = r->size;
			continue;
		}
		/* 0x40 and 0x80 are other label types (RFC 6891 retired them);
		 * the name with its final zero must fit 255 bytes */
		if (c > DNS_LABEL_MAX || c >= lim - pos || n + c + 2 > DNS_WIRE_MAX) {
			break;
		}
		out[n++] = (uint8_t)c;
		for (pos++; c > 0; c--) {
			out[n++] = lower(r->p[pos++]);
		}
	}
	r->bad = 1;
	return 0;
}

static int same_name(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* A byte that may stand in a name or TXT given out as text: printable
 * ASCII. Anything else is no host name; keeping it out keeps it out of
 * SMTP commands and log lines. */
static int plain(uint8_t c)
{
	return c > 0x20 && c < 0x7f;
}

/* The text of a wire name, "" for the root; -1 when a label holds a dot
 * or a byte that is not plain. */
static int wire_text(const uint8_t *w, char *out, size_t outlen)
{
	size_t i = 0, n = 0, c;

	while (w[i] != 0) {
		c = w[i++];
		if (n + c + 2 > outlen) {
			return -1;
		}
		if (n > 0) {
			out[n++] = '.';
		}
		for (; c > 0; c--, i++) {
			if (!plain(w[i]) || w[i] == '.') {
				return -1;
			}
			out[n++] = (char)w[i];
		}
	}
	out[n] = '\0';
	return 0;
}

/* The wire form of name ("example.org", a final dot allowed), lower
 * case; -1 when it cannot be a name: empty, an empty label, a label of
 * more than 63 bytes, more than 255 in all, or a byte that is not plain. */
static int text_wire(const char *name, uint8_t out[DNS_WIRE_MAX], size_t *len)
{
	const char *p = name;
	size_t n = 0, l;

	if (!*p || strcmp(p, ".") == 0) {
		return -1;
	}
	while (*p) {
		l = strcspn(p, ".");
		if (l == 0 || l > DNS_LABEL_MAX || n + l + 2 > DNS_WIRE_MAX) {
			return -1;
		}
		out[n++] = (uint8_t)l;
		for (; l > 0; l--, p++) {
			if (!plain((uint8_t)*p)) {
				return -1;
			}
			out[n++] = lower((uint8_t)*p);
		}
		p += *p == '.';
	}
	out[n++] = 0;
	*len = n;
	return 0;
}

/* ---- parsing answers ---- */

/* One resource record; data reads its RDATA only (names in it may still
 * point anywhere in the packet). */
struct rr {
	uint8_t owner[DNS_WIRE_MAX];
	size_t olen;
	unsigned type, cls;
	uint32_t ttl;
	struct rd data;
};

/* Reads the next record and moves past it; -1 when malformed. */
static int rd_rr(struct rd *r, struct rr *rr)
{
	size_t rdlen, start;

	rr->olen = rd_name(r, rr->owner);
	rr->type = rd_u16(r);
	rr->cls = rd_u16(r);
	rr->ttl = rd_u32(r);
	rdlen = rd_u16(r);
	start = r->off;
	if (!rd_take(r, rdlen)) {
		return -1;
	}
	rr->data = *r;
	rr->data.off = start;
	rr->data.end = start + rdlen;
	if (rr->ttl > 0x7fffffffu) { /* RFC 2181 section 8 */
		rr->ttl = 0;
	}
	return 0;
}

static int skip_rrs(struct rd *r, unsigned count)
{
	struct rr rr;

	while (count-- > 0) {
		if (rd_rr(r, &rr) < 0) {
			return -1;
		}
	}
	return 0;
}

static uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Reads the header and the question and checks that they answer ours:
 * our id, a response to a standard query, our one question. Fills
 * ans->rcode, ans->tc and the counts of the three other sections. */
static int read_head(struct rd *r, uint16_t id, const uint8_t *q, size_t qlen, int qtype,
        struct dns_answer *ans, unsigned counts[3])
{
	uint8_t w[DNS_WIRE_MAX];
	unsigned rid = rd_u16(r), flags = rd_u16(r), qd = rd_u16(r), type, cls;
	size_t wl;

	counts[0] = rd_u16(r);
	counts[1] = rd_u16(r);
	counts[2] = rd_u16(r);
	wl = qd == 1 ? rd_name(r, w) : 0;
	type = rd_u16(r);
	cls = rd_u16(r);
	if (r->bad || rid != id || !(flags & HDR_QR) || (flags & HDR_OPCODE) || qd != 1 ||
	        !same_name(w, wl, q, qlen) || type != (unsigned)qtype || cls != CLASS_IN) {
		return -1;
	}
	ans->rcode = (int)(flags & 0xf);
	ans->tc = (flags & HDR_TC) != 0;
	return 0;
}

/* Follows CNAMEs from target through the answer section (in any order),
 * taking each link's TTL into ttl. The links followed, or -1 when the
 * section is malformed or the chain longer than DNS_CNAME_MAX (a loop). */
static int follow_cnames(const struct rd *an, unsigned count, uint8_t target[DNS_WIRE_MAX],
        size_t *tlen, uint32_t *ttl)
{
	struct rd r;
	struct rr rr;
	unsigned i;
	int links, found;

	for (links = 0; links <= DNS_CNAME_MAX; links++) {
		r = *an;
		for (i = 0, found = 0; i < count && !found; i++) {
			if (rd_rr(&r, &rr) < 0) {
				return -1;
			}
			found = rr.type == DNS_T_CNAME && rr.cls == CLASS_IN &&
			        same_name(rr.owner, rr.olen, target, *tlen);
		}
		if (!found) {
			return links;
		}
		*tlen = rd_name(&rr.data, target);
		if (rr.data.bad || rr.data.off != rr.data.end) {
			return -1;
		}
		*ttl = min32(*ttl, rr.ttl);
	}
	return -1;
}

/* The character-strings of a TXT record joined without spaces (RFC 7208
 * section 3.3, RFC 6376 section 3.6.2.2). 1, 0 when it is too long or
 * not plain text (bar spaces), -1 when malformed. */
static int txt_text(struct rd *d, char *out, size_t outlen)
{
	const uint8_t *s;
	size_t n = 0, l, i;
	int ok = 1;

	while (d->off < d->end) {
		l = rd_u8(d);
		s = rd_take(d, l);
		if (!s) {
			return -1;
		}
		ok = ok && n + l < outlen;
		for (i = 0; ok && i < l; i++) {
			ok = plain(s[i]) || s[i] == ' ' || s[i] == '\t';
			out[n++] = (char)s[i];
		}
	}
	out[ok ? n : 0] = '\0';
	return ok;
}

/* A name that is all the rest of the RDATA, as text into o. */
static int rdata_name(struct rd *d, struct dns_rr *o)
{
	uint8_t w[DNS_WIRE_MAX];

	rd_name(d, w);
	if (d->bad || d->off != d->end) {
		return -1;
	}
	return wire_text(w, o->text, sizeof o->text) == 0;
}

/* The RDATA of a record of type into o: 1, 0 when it is to be skipped
 * (see dns_parse_answer), -1 when malformed. */
static int rdata_text(struct rd *d, unsigned type, struct dns_rr *o)
{
	const uint8_t *a;
	size_t len = d->end - d->off;

	o->pref = o->weight = o->port = 0;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		a = rd_take(d, len);
		if (!a || len != (type == DNS_T_A ? 4u : 16u)) {
			return -1;
		}
		return os_ip_text(a, (int)len, o->text, sizeof o->text) == 0 ? 1 : -1;
	case DNS_T_MX:
		o->pref = (int)rd_u16(d);
		return rdata_name(d, o);
	case DNS_T_SRV: /* priority, weight, port, target (RFC 2782) */
		o->pref = (int)rd_u16(d);
		o->weight = (int)rd_u16(d);
		o->port = (int)rd_u16(d);
		return rdata_name(d, o);
	case DNS_T_PTR:
	case DNS_T_CNAME:
		return rdata_name(d, o);
	case DNS_T_TXT:
		return txt_text(d, o->text, sizeof o->text);
	default:
		return 0;
	}
}

/* Adds the records of qtype that target owns to ans (DNS_RR_MAX at most),
 * taking their TTLs into ttl. */
static int collect(const struct rd *an, unsigned count, const uint8_t *target, size_t tlen,
        int qtype, struct dns_answer *ans, uint32_t *ttl)
{
	struct rd r = *an;
	struct rr rr;
	int got;

	while (count-- > 0 && ans->n < DNS_RR_MAX) {
		if (rd_rr(&r, &rr) < 0) {
			return -1;
		}
		if (rr.type != (unsigned)qtype || rr.cls != CLASS_IN ||
		        !same_name(rr.owner, rr.olen, target, tlen)) {
			continue;
		}
		got = rdata_text(&rr.data, rr.type, &ans->rr[ans->n]);
		if (got < 0) {
			return -1;
		}
		ans->n += got;
		*ttl = got ? min32(*ttl, rr.ttl) : *ttl;
	}
	return 0;
}

/* How long a negative answer may be kept: the smaller of its SOA's TTL
 * and MINIMUM (RFC 2308 section 5). 1 with *ttl set, 0 when there is no
 * SOA (the answer must not be cached), -1 when malformed. */
static int soa_ttl(struct rd *ns, unsigned count, uint32_t *ttl)
{
	uint8_t w[DNS_WIRE_MAX];
	struct rr rr;
	uint32_t minimum;

	while (count-- > 0) {
		if (rd_rr(ns, &rr) < 0) {
			return -1;
		}
		if (rr.type != DNS_T_SOA || rr.cls != CLASS_IN) {
			continue;
		}
		rd_name(&rr.data, w);  /* MNAME */
		rd_name(&rr.data, w);  /* RNAME */
		rd_take(&rr.data, 16); /* SERIAL, REFRESH, RETRY, EXPIRE */
		minimum = rd_u32(&rr.data);
		if (rr.data.bad || rr.data.off != rr.data.end) {
			return -1;
		}
		*ttl = min32(rr.ttl, minimum);
		return 1;
	}
	return 0;
}

/* see rumble.h */
int dns_parse_answer(const uint8_t *pkt, size_t len, uint16_t id, const char *qname, int qtype,
        struct dns_answer *ans)
{
	uint8_t q[DNS_WIRE_MAX], target[DNS_WIRE_MAX];
	struct rd r = {pkt, len, len, 0, 0}, an, ns;
	unsigned counts[3];
	uint32_t ttl = DNS_TTL_MAX, neg = 0;
	size_t qlen, tlen;
	int links, soa;

	ans->rcode = ans->tc = ans->n = 0;
	ans->ttl = 0;
	ans->cname[0] = '\0';
	if (text_wire(qname, q, &qlen) < 0 || read_head(&r, id, q, qlen, qtype, ans, counts) < 0) {
		return -1;
	}
	if (ans->tc || (ans->rcode != RCODE_NOERROR && ans->rcode != RCODE_NXDOMAIN)) {
		return 0; /* nothing in it is used */
	}
	an = r;
	if (skip_rrs(&r, counts[0]) < 0) {
		return -1;
	}
	ns = r;
	memcpy(target, q, qlen);
	tlen = qlen;
	links = follow_cnames(&an, counts[0], target, &tlen, &ttl);
	if (links < 0 || collect(&an, counts[0], target, tlen, qtype, ans, &ttl) < 0) {
		return -1;
	}
	soa = soa_ttl(&ns, counts[1], &neg);
	if (soa < 0) {
		return -1;
	}
	if (ans->n > 0) {
		ans->ttl = ttl;
	} else if (ans->rcode == RCODE_NOERROR && links > 0 && !soa &&
	           wire_text(target, ans->cname, sizeof ans->cname) == 0) {
		ans->ttl = ttl; /* the server stopped at a CNAME */
	} else {
		ans->ttl = soa ? min32(min32(neg, ttl), DNS_NEG_TTL_MAX) : 0;
	}
	return 0;
}

/* ---- the cache ---- */

static unsigned cache_hash(const uint8_t *key, size_t klen, int type)
{
	uint32_t h = 2166136261u ^ (uint32_t)type; /* FNV-1a */
	size_t i;

	for (i = 0; i < klen; i++) {
		h = (h ^ key[i]) * 16777619u;
	}
	return h % CACHE_BUCKETS;
}

/* Called with dns.lock held. */
static struct centry **cache_slot(const uint8_t *key, size_t klen, int type)
{
	struct centry **e = &dns.bucket[cache_hash(key, klen, type)];

	while (*e && ((*e)->type != type || !same_name((*e)->key, (*e)->klen, key, klen))) {
		e = &(*e)->hnext;
	}
	return e;
}

/* Called with dns.lock held. */
static void cache_drop(struct centry *e)
{
	struct centry **slot = cache_slot(e->key, e->klen, e->type);

	*slot = e->hnext;
	*(e->older ? &e->older->newer : &dns.oldest) = e->newer;
	*(e->newer ? &e->newer->older : &dns.newest) = e->older;
	dns.count--;
	dns.bytes -= sizeof *e + e->len;
	free(e);
}

/* Copies the answer kept for key/type into pkt; its length, 0 if none. */
static size_t cache_get(const uint8_t *key, size_t klen, int type, uint8_t *pkt)
{
	struct centry *e;
	size_t len = 0;

	os_mutex_lock(dns.lock);
	e = *cache_slot(key, klen, type);
	if (e && e->expires <= os_now_ms()) {
		cache_drop(e);
	} else if (e) {
		memcpy(pkt, e->pkt, e->len);
		len = e->len;
	}
	os_mutex_unlock(dns.lock);
	return len;
}

/* Keeps an answer for ttl seconds, dropping the oldest entries to stay
 * within CACHE_MAX entries and CACHE_BYTES. */
static void cache_put(
        const uint8_t *key, size_t klen, int type, const uint8_t *pkt, size_t len, uint32_t ttl)
{
	struct centry *e, *old;

	if (ttl == 0 || sizeof *e + len > CACHE_BYTES / 8) {
		return;
	}
	e = xmalloc(sizeof *e + len);
	e->hnext = e->newer = NULL;
	e->expires = os_now_ms() + (int64_t)ttl * 1000;
	e->type = type;
	e->klen = klen;
	memcpy(e->key, key, klen);
	e->len = len;
	memcpy(e->pkt, pkt, len);
	os_mutex_lock(dns.lock);
	old = *cache_slot(key, klen, type);
	if (old) {
		cache_drop(old);
	}
	while (dns.oldest &&
	        (dns.count >= CACHE_MAX || dns.bytes + sizeof *e + len > CACHE_BYTES)) {
		cache_drop(dns.oldest);
	}
	*cache_slot(key, klen, type) = e;
	e->older = dns.newest;
	*(dns.newest ? &dns.newest->newer : &dns.oldest) = e;
	dns.newest = e;
	dns.count++;
	dns.bytes += sizeof *e + len;
	os_mutex_unlock(dns.lock);
}

/* see rumble.h */
int dns__cache_count(void)
{
	int n;

	if (!dns.lock) {
		return 0;
	}
	os_mutex_lock(dns.lock);
	n = dns.count;
	os_mutex_unlock(dns.lock);
	return n;
}

/* see rumble.h */
void dns__cache_clear(void)
{
	if (!dns.lock) {
		return;
	}
	os_mutex_lock(dns.lock);
	while (dns.oldest) {
		cache_drop(dns.oldest);
	}
	os_mutex_unlock(dns.lock);
}

/* ---- asking servers ---- */

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A query for q (wire form) with recursion desired and, when edns is set,
 * an OPT record (RFC 6891) offering DNS_UDP_SIZE bytes. Its length. */
static size_t build_query(
        uint8_t buf[DNS_QUERY_MAX], uint16_t id, const uint8_t *q, size_t qlen, int qtype, int edns)
{
	size_t n = 12;

	memset(buf, 0, 12);
	put16(buf, id);
	put16(buf + 2, HDR_RD);
	put16(buf + 4, 1);
	put16(buf + 10, edns ? 1 : 0);
	memcpy(buf + n, q, qlen);
	n += qlen;
	put16(buf + n, (unsigned)qtype);
	put16(buf + n + 2, CLASS_IN);
	n += 4;
	if (edns) {
		buf[n] = 0; /* the root, then type, size, TTL 0 (no flags), no data */
		put16(buf + n + 1, TYPE_OPT);
		put16(buf + n + 3, DNS_UDP_SIZE);
		memset(buf + n + 5, 0, 6);
		n += 11;
	}
	return n;
}

/* One query on its way: what an answer must match and where it goes. */
struct ask {
	const char *name;
	int qtype;
	uint16_t id;
	uint8_t query[DNS_QUERY_MAX];
	size_t qlen;
	uint8_t *pkt; /* DNS_PKT_MAX bytes */
	struct dns_answer *ans;
};

/* Waits for the answer on a UDP socket until deadline. A datagram that
 * is not the answer to ours (late, forged or broken) is dropped and the
 * wait goes on. The answer's length, 0 on timeout, -1 when the socket
 * failed (the port refused). */
static long udp_wait(os_fd fd, int64_t deadline, struct ask *a)
{
	int64_t left;
	long n;
	int w;

	for (;;) {
		left = deadline - os_now_ms();
		w = left > 0 ? os_wait_readable(fd, (int)left) : 0;
		if (w <= 0) {
			return w;
		}
		n = os_read(fd, a->pkt, DNS_PKT_MAX);
		if (n < 0 && n != OS_AGAIN) {
			return -1;
		}
		if (n > 0 && dns_parse_answer(
		                     a->pkt, (size_t)n, a->id, a->name, a->qtype, a->ans) == 0) {
			return n;
		}
	}
}

static long udp_ask(const struct server *s, struct ask *a, int timeout_ms)
{
	os_fd fd = os_udp_connect(s->addr, s->port);
	long n = -1;

	if (fd == OS_BADFD) {
		return -1;
	}
	if (os_write(fd, a->query, a->qlen) == (long)a->qlen) {
		n = udp_wait(fd, os_now_ms() + timeout_ms, a);
	}
	os_close(fd);
	return n;
}

/* Moves n bytes over a blocking stream before deadline; 0 or -1. */
static int tcp_io(os_fd fd, uint8_t *p, size_t n, int reading, int64_t deadline)
{
	int64_t left;
	long r;

	while (n > 0) {
		left = deadline - os_now_ms();
		if (reading && (left <= 0 || os_wait_readable(fd, (int)left) <= 0)) {
			return -1;
		}
		r = reading ? os_read(fd, p, n) : os_write(fd, p, n);
		if (r <= 0 && r != OS_AGAIN) {
			return -1;
		}
		p += r > 0 ? r : 0;
		n -= r > 0 ? (size_t)r : 0;
	}
	return 0;
}

/* The same query over TCP, each message after its 2-byte length (RFC
 * 1035 section 4.2.2). The answer's length, or -1. */
static long tcp_ask(const struct server *s, struct ask *a, int timeout_ms)
{
	int64_t deadline = os_now_ms() + timeout_ms;
	uint8_t msg[2 + DNS_QUERY_MAX], hdr[2];
	os_fd fd = os_connect(s->addr, s->port, timeout_ms);
	size_t len;
	long n = -1;

	if (fd == OS_BADFD) {
		return -1;
	}
	put16(msg, (unsigned)a->qlen);
	memcpy(msg + 2, a->query, a->qlen);
	if (tcp_io(fd, msg, a->qlen + 2, 0, deadline) == 0 &&
	        tcp_io(fd, hdr, 2, 1, deadline) == 0) {
		len = (size_t)hdr[0] << 8 | hdr[1];
		if (tcp_io(fd, a->pkt, len, 1, deadline) == 0 &&
		        dns_parse_answer(a->pkt, len, a->id, a->name, a->qtype, a->ans) == 0 &&
		        !a->ans->tc) {
			n = (long)len;
		}
	}
	os_close(fd);
	return n;
}

/* Asks server s: the answer's length with a->pkt and a->ans filled when
 * it is one to keep (NOERROR or NXDOMAIN), -1 to go on to the next one. */
static long ask_server(
        const struct server *s, struct ask *a, const uint8_t *q, size_t qlen, int timeout_ms)
{
	long n = -1;
	int edns;

	for (edns = 1; edns >= 0; edns--) {
		if (os_random(&a->id, sizeof a->id) < 0) {
			return -1;
		}
		a->qlen = build_query(a->query, a->id, q, qlen, a->qtype, edns);
		n = udp_ask(s, a, timeout_ms);
		if (n > 0 && a->ans->tc) {
			n = tcp_ask(s, a, 2 * timeout_ms); /* a connection, then the answer */
		}
		if (n <= 0) {
			log_debug("dns server=%s port=%d name=%s type=%d: %s", s->addr, s->port,
			        a->name, a->qtype, n == 0 ? "timeout" : "failed");
			return -1;
		}
		if (a->ans->rcode != RCODE_FORMERR) {
			break; /* FORMERR to EDNS: an old server; ask it plainly */
		}
	}
	if (a->ans->rcode != RCODE_NOERROR && a->ans->rcode != RCODE_NXDOMAIN) {
		log_debug("dns server=%s port=%d name=%s type=%d: rcode %d", s->addr, s->port,
		        a->name, a->qtype, a->ans->rcode);
		return -1;
	}
	return n;
}

/* Asks the servers in turn, dns.tries rounds. The answer's length, or -1. */
static long ask_servers(struct ask *a, const uint8_t *q, size_t qlen)
{
	struct server srv[DNS_SERVERS_MAX];
	int i, t, nsrv, tries, timeout;
	long n;

	os_mutex_lock(dns.lock);
	nsrv = dns.nsrv;
	memcpy(srv, dns.srv, sizeof srv);
	tries = dns.tries;
	timeout = dns.timeout_ms;
	os_mutex_unlock(dns.lock);
	for (t = 0; t < tries; t++) {
		for (i = 0; i < nsrv; i++) {
			n = ask_server(&srv[i], a, q, qlen, timeout);
			if (n > 0) {
				return n;
			}
		}
	}
	return -1;
}

/* ---- lookups ---- */

/* A lookup's buffers, on the heap: the lookup threads' stacks stay small. */
struct dns_work {
	struct dns_answer ans;
	uint8_t pkt[DNS_PKT_MAX];
};

/* The answer for name/qtype parsed into w->ans, from the cache or the
 * servers (and then cached). 0, DNS_NXDOMAIN for a malformed name, or
 * DNS_TEMPFAIL. */
static int query(const char *name, int qtype, struct dns_work *w)
{
	uint8_t q[DNS_WIRE_MAX];
	struct ask a = {name, qtype, 0, {0}, 0, w->pkt, &w->ans};
	size_t qlen, len;
	long n;

	if (text_wire(name, q, &qlen) < 0) {
		return DNS_NXDOMAIN;
	}
	len = cache_get(q, qlen, qtype, w->pkt);
	if (len > 0 && dns_parse_answer(w->pkt, len, (uint16_t)(w->pkt[0] << 8 | w->pkt[1]), name,
	                       qtype, &w->ans) == 0) {
		return 0;
	}
	n = ask_servers(&a, q, qlen);
	if (n <= 0) {
		return DNS_TEMPFAIL;
	}
	cache_put(q, qlen, qtype, w->pkt, (size_t)n, w->ans.ttl);
	return 0;
}

/* Looks name/qtype up into *wp (the caller frees it), asking again where a
 * server stopped at a CNAME. 0 (w->ans.n may be 0), DNS_NXDOMAIN or
 * DNS_TEMPFAIL. */
static int lookup(const char *name, int qtype, struct dns_work **wp)
{
	struct dns_work *w = xmalloc(sizeof *w);
	char cur[DNS_NAME_MAX];
	int i, r = DNS_TEMPFAIL;

	*wp = w;
	w->ans.n = 0;
	if (!dns.lock) {
		return DNS_TEMPFAIL; /* dns_init was not called */
	}
	if (rl_strlcpy(cur, name, sizeof cur) >= sizeof cur) {
		return DNS_NXDOMAIN;
	}
	for (i = 0; i <= DNS_CNAME_MAX; i++) {
		r = query(cur, qtype, w);
		if (r == 0 && w->ans.rcode == RCODE_NXDOMAIN) {
			r = DNS_NXDOMAIN;
		}
		if (r < 0 || w->ans.n > 0 || !w->ans.cname[0]) {
			break;
		}
		memcpy(cur, w->ans.cname, sizeof cur);
		r = DNS_TEMPFAIL; /* a chain too long, unless the loop ends */
	}
	if (r < 0) {
		w->ans.n = 0;
	}
	return r;
}

/* Shuffles p[0..n) (Fisher-Yates); left as it is without randomness. */
static void shuffle(struct dns_rr **p, int n)
{
	uint32_t rnd[DNS_RR_MAX];
	struct dns_rr *t;
	int i, j;

	if (n < 2 || os_random(rnd, sizeof rnd) < 0) {
		return;
	}
	for (i = n - 1; i > 0; i--) {
		j = (int)(rnd[i] % (uint32_t)(i + 1));
		t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
}

/* The MX records of ans into out by preference, equal ones in random
 * order: shuffled, then a stable sort. Null MX records are dropped
 * (another MX beside one is a mistake, RFC 7505 section 3); DNS_NOMAIL
 * when nothing else is left. */
static int mx_sort(struct dns_answer *ans, struct dns_mx *out, int max)
{
	struct dns_rr *p[DNS_RR_MAX], *t;
	int i, j, n = 0;

	for (i = 0; i < ans->n; i++) {
		if (ans->rr[i].text[0]) {
			p[n++] = &ans->rr[i];
		}
	}
	if (n == 0) {
		return DNS_NOMAIL;
	}
	shuffle(p, n);
	for (i = 1; i < n; i++) {
		for (j = i, t = p[i]; j > 0 && p[j - 1]->pref > t->pref; j--) {
			p[j] = p[j - 1];
		}
		p[j] = t;
	}
	for (i = 0; i < n && i < max; i++) {
		rl_strlcpy(out[i].host, p[i]->text, sizeof out[i].host);
		out[i].pref = p[i]->pref;
	}
	return i;
}

/* No MX records: a domain with an address is its own mail host (RFC 5321
 * section 5.1). */
static int implicit_mx(const char *domain, struct dns_mx *out, int max)
{
	char addr[1][DNS_ADDR_MAX];
	size_t n;
	int r = dns_addrs(domain, addr, 1);

	if (r <= 0 || max < 1) {
		return r < 0 ? r : 0;
	}
	n = rl_strlcpy(out[0].host, domain, sizeof out[0].host);
	if (n > 0 && n < sizeof out[0].host && out[0].host[n - 1] == '.') {
		out[0].host[n - 1] = '\0';
	}
	rl_lower(out[0].host);
	out[0].pref = 0;
	return 1;
}

/* see rumble.h */
int dns_mx(const char *domain, struct dns_mx *out, int max)
{
	struct dns_work *w;
	int r = lookup(domain, DNS_T_MX, &w), none = r == 0 && w->ans.n == 0;

	if (r == 0 && !none) {
		r = mx_sort(&w->ans, out, max);
	}
	free(w);
	return none ? implicit_mx(domain, out, max) : r;
}

/* Appends the addresses of type qtype (A or AAAA) to out[*n..max). */
static int add_addrs(const char *host, int qtype, char (*out)[DNS_ADDR_MAX], int max, int *n)
{
	struct dns_work *w;
	int i, r = lookup(host, qtype, &w);

	for (i = 0; i < w->ans.n && *n < max; i++) {
		rl_strlcpy(out[(*n)++], w->ans.rr[i].text, DNS_ADDR_MAX);
	}
	free(w);
	return r;
}

/* see rumble.h; addresses found are worth more than a failure of the
 * other type, and NXDOMAIN for A means there is no AAAA either */
int dns_addrs(const char *host, char (*out)[DNS_ADDR_MAX], int max)
{
	uint8_t ip[16];
	int len = os_ip_parse(host, ip), n = 0, r4, r6 = 0;

	if (len > 0) {
		return max > 0 && os_ip_text(ip, len, out[0], DNS_ADDR_MAX) == 0 ? 1 : 0;
	}
	r4 = add_addrs(host, DNS_T_A, out, max, &n);
	if (r4 == DNS_NXDOMAIN) {
		return r4;
	}
	if (n < max) {
		r6 = add_addrs(host, DNS_T_AAAA, out, max, &n);
	}
	if (n > 0) {
		return n;
	}
	if (r4 == DNS_TEMPFAIL || r6 == DNS_TEMPFAIL) {
		return DNS_TEMPFAIL;
	}
	return r6 < 0 ? r6 : 0;
}

/* see rumble.h */
int dns_txt(const char *name, char (*out)[DNS_TEXT_MAX], int max)
{
	struct dns_work *w;
	int i, r = lookup(name, DNS_T_TXT, &w);

	for (i = 0; r == 0 && i < w->ans.n && i < max; i++) {
		rl_strlcpy(out[i], w->ans.rr[i].text, DNS_TEXT_MAX);
	}
	free(w);
	return r < 0 ? r : i;
}

/* see rumble.h */
int dns_srv(const char *name, struct dns_srv *out, int max)
{
	struct dns_work *w;
	int i, r = lookup(name, DNS_T_SRV, &w);

	for (i = 0; r == 0 && i < w->ans.n && i < max; i++) {
		rl_strlcpy(out[i].host, w->ans.rr[i].text, sizeof out[i].host);
		out[i].prio = w->ans.rr[i].pref;
		out[i].weight = w->ans.rr[i].weight;
		out[i].port = w->ans.rr[i].port;
	}
	free(w);
	return r < 0 ? r : i;
}

/* The name a PTR lookup of ip asks for (RFC 1035 section 3.5, RFC 3596
 * section 2.5); an IPv4-mapped IPv6 address as the IPv4 one. */
static int reverse_name(const char *ip, char *out, size_t len)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const char hex[] = "0123456789abcdef";
	uint8_t a[16];
	int i, n = os_ip_parse(ip, a);
	size_t k = 0;

	if (n == 16 && memcmp(a, mapped, sizeof mapped) == 0) {
		memmove(a, a + 12, 4);
		n = 4;
	}
	if (n == 4) {
		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return 0;
	}
	if (n != 16 || len < 16 * 4 + sizeof "ip6.arpa") {
		return -1;
	}
	for (i = 15; i >= 0; i--) {
		out[k++] = hex[a[i] & 0xf];
		out[k++] = '.';
		out[k++] = hex[a[i] >> 4];
		out[k++] = '.';
	}
	memcpy(out + k, "ip6.arpa", sizeof "ip6.arpa");
	return 0;
}

/* see rumble.h */
int dns_ptr(const char *ip, char *name, size_t len)
{
	char rev[80];
	struct dns_work *w;
	int r;

	if (reverse_name(ip, rev, sizeof rev) < 0) {
		return DNS_NXDOMAIN;
	}
	r = lookup(rev, DNS_T_PTR, &w);
	if (r == 0) {
		r = w->ans.n > 0 && rl_strlcpy(name, w->ans.rr[0].text, len) < len;
	}
	free(w);
	return r;
}

/* see rumble.h */
const char *dns_strerror(int code)
{
	switch (code) {
	case DNS_NXDOMAIN:
		return "no such domain";
	case DNS_TEMPFAIL:
		return "DNS temporarily unavailable";
	case DNS_NOMAIL:
		return "the domain accepts no mail (null MX)";
	default:
		return code >= 0 ? "ok" : "DNS error";
	}
}

/* ---- servers ---- */

/* A decimal port, 1 to 65535; -1 otherwise. */
static int parse_port(const char *s)
{
	int port = 0;

	if (!*s) {
		return -1;
	}
	for (; *s >= '0' && *s <= '9' && port <= 65535; s++) {
		port = port * 10 + (*s - '0');
	}
	return *s || port < 1 || port > 65535 ? -1 : port;
}

/* An address, maybe with an IPv6 zone ("fe80::1%eth0"). */
static int valid_addr(const char *addr)
{
	char buf[64];
	uint8_t ip[16];

	if (rl_strlcpy(buf, addr, sizeof buf) >= sizeof buf) {
		return 0;
	}
	buf[strcspn(buf, "%")] = '\0';
	return os_ip_parse(buf, ip) > 0;
}

/* One server: "192.0.2.1", "192.0.2.1:5353", "2001:db8::1" or
 * "[2001:db8::1]:53". */
static int parse_server(const char *tok, size_t n, struct server *s)
{
	char buf[80], *addr = buf, *port = NULL, *end;

	if (n >= sizeof buf) {
		return -1;
	}
	memcpy(buf, tok, n);
	buf[n] = '\0';
	if (buf[0] == '[') {
		end = strchr(buf, ']');
		if (!end || (end[1] && end[1] != ':')) {
			return -1;
		}
		*end = '\0';
		addr = buf + 1;
		port = end[1] ? end + 2 : NULL;
	} else if ((end = strchr(buf, ':')) != NULL && !strchr(end + 1, ':')) {
		*end = '\0'; /* one colon: IPv4 and a port; more: IPv6 */
		port = end + 1;
	}
	s->port = port ? parse_port(port) : DNS_PORT;
	if (s->port < 0 || !valid_addr(addr)) {
		return -1;
	}
	rl_strlcpy(s->addr, addr, sizeof s->addr);
	return 0;
}

/* The servers of a DNSServer value into srv; the count or -1. */
static int parse_servers(const char *list, struct server *srv, char *err, size_t errlen)
{
	static const char sep[] = ", \t;";
	const char *p = list + strspn(list, sep);
	size_t n;
	int count = 0;

	for (; *p; p += n, p += strspn(p, sep)) {
		n = strcspn(p, sep);
		if (count == DNS_SERVERS_MAX) {
			snprintf(err, errlen, "DNSServer: more than %d servers", DNS_SERVERS_MAX);
			return -1;
		}
		if (parse_server(p, n, &srv[count]) < 0) {
			snprintf(err, errlen, "DNSServer: bad address \"%.*s\"",
			        (int)(n > 80 ? 80 : n), p);
			return -1;
		}
		count++;
	}
	return count;
}

/* The system's servers; those that are not addresses are left out. */
static int system_servers(struct server *srv)
{
	char addr[DNS_SERVERS_MAX][64];
	int i, n = os_dns_servers(addr, DNS_SERVERS_MAX), count = 0;

	for (i = 0; i < n; i++) {
		if (valid_addr(addr[i])) {
			rl_strlcpy(srv[count].addr, addr[i], sizeof srv[count].addr);
			srv[count++].port = DNS_PORT;
		}
	}
	return count;
}

/* see rumble.h */
int dns_init(const char *servers, char *err, size_t errlen)
{
	struct server srv[DNS_SERVERS_MAX];
	int n;

	memset(srv, 0, sizeof srv);
	if (!dns.lock && !(dns.lock = os_mutex_new())) {
		fatalx("out of memory (dns lock)");
	}
	n = servers && *servers ? parse_servers(servers, srv, err, errlen) : system_servers(srv);
	if (n < 0) {
		return -1;
	}
	os_mutex_lock(dns.lock);
	memcpy(dns.srv, srv, sizeof srv);
	dns.nsrv = n;
	os_mutex_unlock(dns.lock);
	if (n == 0) {
		snprintf(err, errlen, "no DNS server: %s",
		        servers && *servers ? "DNSServer is empty"
		                            : "the system names none; set DNSServer");
		return -1;
	}
	log_debug("dns servers=%d first=%s port=%d", n, srv[0].addr, srv[0].port);
	return 0;
}

/* see rumble.h */
void dns_shutdown(void)
{
	if (dns.lock) {
		dns__cache_clear();
		os_mutex_free(dns.lock);
		dns.lock = NULL;
	}
	dns.nsrv = 0;
}

/* see rumble.h */
void dns__set_timeout(int ms, int tries)
{
	if (dns.lock) {
		os_mutex_lock(dns.lock);
	}
	dns.timeout_ms = ms;
	dns.tries = tries;
	if (dns.lock) {
		os_mutex_unlock(dns.lock);
	}
}
