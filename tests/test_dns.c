/* test_dns.c - the DNS client: the answer parser on hand-built packets
 * (and a few thousand mangled ones), then lookups against a fake server on
 * 127.0.0.1 that this file runs on a thread, UDP and TCP, counting the
 * queries it gets; see dns.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

/* ---- the parser, on known answers ---- */

/* example.org MX: three records, the names compressed, TTLs 3600 and 300 */
static const uint8_t mx_pkt[] = "\x12\x34\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00"
                                "\x07"
                                "example"
                                "\x03"
                                "org"
                                "\x00\x00\x0f\x00\x01"
                                /* mail.example.org, 10 */
                                "\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x09\x00\x0a\x04"
                                "mail"
                                "\xc0\x0c"
                                /* mx2.example.org, 5 */
                                "\xc0\x0c\x00\x0f\x00\x01\x00\x00\x01\x2c\x00\x08\x00\x05\x03"
                                "mx2"
                                "\xc0\x0c"
                                /* backup.net, 20, not compressed */
                                "\xc0\x0c\x00\x0f\x00\x01\x00\x00\x0e\x10\x00\x0e\x00\x14\x06"
                                "backup"
                                "\x03"
                                "net"
                                "\x00";

/* www.example.org A: the records in the wrong order, www -> web (TTL
 * 600) -> host.example.net (TTL 60) -> 192.0.2.7 (TTL 3600) */
static const uint8_t cname_pkt[] = "\xab\xcd\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00"
                                   "\x03"
                                   "www"
                                   "\x07"
                                   "example"
                                   "\x03"
                                   "org"
                                   "\x00\x00\x01\x00\x01"
                                   /* offset 33: host.example.net A 192.0.2.7 */
                                   "\x04"
                                   "host"
                                   "\x07"
                                   "example"
                                   "\x03"
                                   "net"
                                   "\x00\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x07"
                                   /* web.example.org CNAME host.example.net */
                                   "\x03"
                                   "web"
                                   "\xc0\x10\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x21"
                                   /* www.example.org CNAME web.example.org */
                                   "\xc0\x0c\x00\x05\x00\x01\x00\x00\x02\x58\x00\x06\x03"
                                   "web"
                                   "\xc0\x10";

/* nx.example.org A: NXDOMAIN, the SOA's TTL 3600 and MINIMUM 60 */
static const uint8_t nx_pkt[] = "\x00\x07\x81\x83\x00\x01\x00\x00\x00\x01\x00\x00"
                                "\x02"
                                "nx"
                                "\x07"
                                "example"
                                "\x03"
                                "org"
                                "\x00\x00\x01\x00\x01"
                                "\xc0\x0f\x00\x06\x00\x01\x00\x00\x0e\x10\x00\x20"
                                "\x02"
                                "ns"
                                "\xc0\x0f\x04"
                                "host"
                                "\xc0\x0f"
                                "\x00\x00\x00\x01\x00\x00\x0e\x10\x00\x00\x02\x58\x00\x09\x3a\x80"
                                "\x00\x00\x00\x3c";

/* example.org TXT: two strings that make one record, and an AAAA in the
 * answer that a TXT lookup ignores */
static const uint8_t txt_pkt[] = "\x00\x09\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00"
                                 "\x07"
                                 "example"
                                 "\x03"
                                 "org"
                                 "\x00\x00\x10\x00\x01"
                                 "\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10"
                                 "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                                 "\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x0d\x07"
                                 "v=spf1 "
                                 "\x04"
                                 "-all";

/* _imaps._tcp.example.org SRV: 0 1 993 mail.example.org (the target
 * compressed against the question), and 10 0 0 . (no service) */
static const uint8_t srv_pkt[] = "\x00\x21\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00"
                                 "\x06"
                                 "_imaps"
                                 "\x04"
                                 "_tcp"
                                 "\x07"
                                 "example"
                                 "\x03"
                                 "org"
                                 "\x00\x00\x21\x00\x01"
                                 "\xc0\x0c\x00\x21\x00\x01\x00\x00\x0e\x10\x00\x0d"
                                 "\x00\x00\x00\x01\x03\xe1\x04"
                                 "mail"
                                 "\xc0\x18"
                                 "\xc0\x0c\x00\x21\x00\x01\x00\x00\x0e\x10\x00\x07"
                                 "\x00\x0a\x00\x00\x00\x00\x00";

static struct dns_answer *answer_new(void)
{
	return xmalloc(sizeof(struct dns_answer));
}

static void mx_answer_with_compression_parses(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(mx_pkt, sizeof mx_pkt - 1, 0x1234, "Example.ORG.", DNS_T_MX, a);
	struct dns_answer got = *a;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.rcode, 0);
	ASSERT_EQ(got.tc, 0);
	ASSERT_EQ(got.n, 3);
	ASSERT_STR(got.rr[0].text, "mail.example.org");
	ASSERT_EQ(got.rr[0].pref, 10);
	ASSERT_STR(got.rr[1].text, "mx2.example.org");
	ASSERT_EQ(got.rr[1].pref, 5);
	ASSERT_STR(got.rr[2].text, "backup.net");
	ASSERT_EQ(got.rr[2].pref, 20);
	ASSERT_EQ(got.ttl, 300);
	ASSERT_STR(got.cname, "");
}

static void srv_answer_parses(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(srv_pkt, sizeof srv_pkt - 1, 0x21, "_IMAPS._tcp.example.org",
	        DNS_T_SRV, a);
	struct dns_answer got = *a;
	size_t n, bad = 0;
	for (n = 0; n < sizeof srv_pkt - 1; n++) {
		bad += dns_parse_answer(srv_pkt, n, 0x21, "_imaps._tcp.example.org", DNS_T_SRV, a) ==
		       -1;
	}
	uint8_t shrunk[sizeof srv_pkt];
	memcpy(shrunk, srv_pkt, sizeof srv_pkt);
	shrunk[sizeof srv_pkt - 1 - 7 - 1] = 3; /* the second RDATA: 3 bytes, no port */
	int r2 = dns_parse_answer(shrunk, sizeof srv_pkt - 1 - 4, 0x21, "_imaps._tcp.example.org",
	        DNS_T_SRV, a);
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.n, 2);
	ASSERT_STR(got.rr[0].text, "mail.example.org");
	ASSERT_EQ(got.rr[0].pref, 0);
	ASSERT_EQ(got.rr[0].weight, 1);
	ASSERT_EQ(got.rr[0].port, 993);
	ASSERT_STR(got.rr[1].text, "");
	ASSERT_EQ(got.rr[1].pref, 10);
	ASSERT_EQ(got.rr[1].port, 0);
	ASSERT_EQ(got.ttl, 3600);
	ASSERT_EQ(bad, sizeof srv_pkt - 1);
	ASSERT_EQ(r2, -1);
}

static void every_cut_of_an_answer_is_refused(void)
{
	struct dns_answer *a = answer_new();
	size_t n, bad = 0;
	for (n = 0; n < sizeof mx_pkt - 1; n++) {
		bad += dns_parse_answer(mx_pkt, n, 0x1234, "example.org", DNS_T_MX, a) == -1;
	}
	free(a);
	ASSERT_EQ(bad, sizeof mx_pkt - 1);
}

static void cname_chain_is_followed_in_any_order(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(
	        cname_pkt, sizeof cname_pkt - 1, 0xabcd, "www.example.org", DNS_T_A, a);
	struct dns_answer got = *a;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.n, 1);
	ASSERT_STR(got.rr[0].text, "192.0.2.7");
	ASSERT_EQ(got.ttl, 60);
}

/* www.example.org A: www -> web.example.org (TTL 600) -> host.example.net
 * (TTL 60), and no more: the server stopped at a CNAME */
static const uint8_t chain_pkt[] = "\xab\xcd\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00"
                                   "\x03"
                                   "www"
                                   "\x07"
                                   "example"
                                   "\x03"
                                   "org"
                                   "\x00\x00\x01\x00\x01"
                                   /* offset 33; "web" at 45 */
                                   "\xc0\x0c\x00\x05\x00\x01\x00\x00\x02\x58\x00\x06\x03"
                                   "web"
                                   "\xc0\x10"
                                   "\xc0\x2d\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x12\x04"
                                   "host"
                                   "\x07"
                                   "example"
                                   "\x03"
                                   "net"
                                   "\x00";

static void a_chain_cut_short_asks_for_its_end(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(
	        chain_pkt, sizeof chain_pkt - 1, 0xabcd, "www.example.org", DNS_T_A, a);
	struct dns_answer got = *a;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.rcode, 0);
	ASSERT_EQ(got.n, 0);
	ASSERT_STR(got.cname, "host.example.net");
	ASSERT_EQ(got.ttl, 60);
}

static void a_cname_loop_is_refused(void)
{
	/* a.b CNAME x.a.b, x.a.b CNAME a.b */
	static const uint8_t loop[] = "\x00\x02\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00"
	                              "\x01"
	                              "a"
	                              "\x01"
	                              "b"
	                              "\x00\x00\x01\x00\x01"
	                              /* offset 21: a.b CNAME x.a.b ("x" at 33) */
	                              "\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x04\x01"
	                              "x"
	                              "\xc0\x0c"
	                              "\xc0\x21\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xc0\x0c";
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(loop, sizeof loop - 1, 2, "a.b", DNS_T_A, a);
	free(a);
	ASSERT_EQ(r, -1);
}

static void nxdomain_is_kept_for_the_soa_minimum(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(nx_pkt, sizeof nx_pkt - 1, 7, "nx.example.org", DNS_T_A, a);
	struct dns_answer got = *a;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.rcode, 3);
	ASSERT_EQ(got.n, 0);
	ASSERT_EQ(got.ttl, 60);
}

static void negative_ttl_is_capped_at_five_minutes(void)
{
	uint8_t p[sizeof nx_pkt];
	struct dns_answer *a = answer_new();
	memcpy(p, nx_pkt, sizeof nx_pkt);
	p[sizeof nx_pkt - 3] = 0x01; /* MINIMUM 316 s */
	int r = dns_parse_answer(p, sizeof nx_pkt - 1, 7, "nx.example.org", DNS_T_A, a);
	uint32_t ttl = a->ttl;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(ttl, 300);
}

static void txt_strings_are_joined(void)
{
	struct dns_answer *a = answer_new();
	int r = dns_parse_answer(txt_pkt, sizeof txt_pkt - 1, 9, "example.org", DNS_T_TXT, a);
	struct dns_answer got = *a;
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.n, 1);
	ASSERT_STR(got.rr[0].text, "v=spf1 -all");
	r = dns_parse_answer(txt_pkt, sizeof txt_pkt - 1, 9, "example.org", DNS_T_AAAA, a);
	ASSERT_EQ(r, -1); /* the question was TXT */
	free(a);
}

static void truncated_answer_says_so(void)
{
	uint8_t p[sizeof mx_pkt];
	struct dns_answer *a = answer_new();
	memcpy(p, mx_pkt, sizeof mx_pkt);
	p[2] |= 0x02; /* TC */
	/* only the header and question need to be there */
	int r = dns_parse_answer(p, 29, 0x1234, "example.org", DNS_T_MX, a);
	struct dns_answer got = *a;
	free(a);
	ASSERT_EQ(r, 0);
	ASSERT_EQ(got.tc, 1);
	ASSERT_EQ(got.n, 0);
}

static void wrong_id_question_or_direction_is_refused(void)
{
	uint8_t p[sizeof mx_pkt];
	struct dns_answer *a = answer_new();
	int r1 = dns_parse_answer(mx_pkt, sizeof mx_pkt - 1, 0x1235, "example.org", DNS_T_MX, a);
	int r2 = dns_parse_answer(mx_pkt, sizeof mx_pkt - 1, 0x1234, "example.com", DNS_T_MX, a);
	int r3 = dns_parse_answer(mx_pkt, sizeof mx_pkt - 1, 0x1234, "example.org", DNS_T_A, a);
	memcpy(p, mx_pkt, sizeof mx_pkt);
	p[2] &= 0x7f; /* a query, not a response */
	int r4 = dns_parse_answer(p, sizeof mx_pkt - 1, 0x1234, "example.org", DNS_T_MX, a);
	free(a);
	ASSERT_EQ(r1, -1);
	ASSERT_EQ(r2, -1);
	ASSERT_EQ(r3, -1);
	ASSERT_EQ(r4, -1);
}

/* A one-record MX answer for a.b whose RDATA is given. */
static size_t mx_with_rdata(uint8_t *p, const uint8_t *rdata, size_t n)
{
	static const uint8_t head[] = "\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
	                              "\x01"
	                              "a"
	                              "\x01"
	                              "b"
	                              "\x00\x00\x0f\x00\x01"
	                              "\xc0\x0c\x00\x0f\x00\x01\x00\x00\x00\x3c";
	size_t h = sizeof head - 1;
	memcpy(p, head, h);
	p[h] = (uint8_t)(n >> 8);
	p[h + 1] = (uint8_t)n;
	memcpy(p + h + 2, rdata, n);
	return h + 2 + n;
}

#define MX_RDATA_AT 33 /* where mx_with_rdata puts the RDATA */

static int parse_mx_rdata(const uint8_t *rdata, size_t n, struct dns_answer *a)
{
	uint8_t p[1024];
	size_t len = mx_with_rdata(p, rdata, n);
	return dns_parse_answer(p, len, 1, "a.b", DNS_T_MX, a);
}

static void compression_loops_are_refused(void)
{
	struct dns_answer *a = answer_new();
	/* a pointer to itself */
	uint8_t self[] = {0, 10, 0xc0, MX_RDATA_AT + 2};
	/* a pointer forwards, to a pointer back to it */
	uint8_t ahead[] = {0, 10, 0xc0, MX_RDATA_AT + 4, 0xc0, MX_RDATA_AT + 2};
	/* a label, then a pointer back to it: x.x.x.x... */
	uint8_t ring[] = {0, 10, 1, 'x', 0xc0, MX_RDATA_AT + 2};
	/* a good one, to be sure the frame is right: x.a.b */
	uint8_t good[] = {0, 10, 1, 'x', 0xc0, 0x0c};
	int r1 = parse_mx_rdata(self, sizeof self, a);
	int r2 = parse_mx_rdata(ahead, sizeof ahead, a);
	int r3 = parse_mx_rdata(ring, sizeof ring, a);
	int r4 = parse_mx_rdata(good, sizeof good, a);
	char host[DNS_NAME_MAX];
	rl_strlcpy(host, a->rr[0].text, sizeof host);
	free(a);
	ASSERT_EQ(r1, -1);
	ASSERT_EQ(r2, -1);
	ASSERT_EQ(r3, -1);
	ASSERT_EQ(r4, 0);
	ASSERT_STR(host, "x.a.b");
}

static void overlong_labels_and_names_are_refused(void)
{
	struct dns_answer *a = answer_new();
	uint8_t rd[600];
	size_t i, n;
	/* a label of 64 bytes (its length byte reads as label type 01) */
	rd[0] = 0;
	rd[1] = 10;
	rd[2] = 64;
	memset(rd + 3, 'a', 64);
	rd[67] = 0;
	int r1 = parse_mx_rdata(rd, 68, a);
	/* 63 is fine */
	rd[2] = 63;
	rd[66] = 0;
	int r2 = parse_mx_rdata(rd, 67, a);
	/* 128 labels "a": 256 bytes with the root, one too many */
	for (i = 0, n = 2; i < 128; i++) {
		rd[n++] = 1;
		rd[n++] = 'a';
	}
	rd[n++] = 0;
	int r3 = parse_mx_rdata(rd, n, a);
	/* 127 labels: 255 bytes */
	rd[2 + 2 * 127] = 0;
	int r4 = parse_mx_rdata(rd, 2 + 2 * 127 + 1, a);
	size_t len = strlen(a->rr[0].text);
	free(a);
	ASSERT_EQ(r1, -1);
	ASSERT_EQ(r2, 0);
	ASSERT_EQ(r3, -1);
	ASSERT_EQ(r4, 0);
	ASSERT_EQ(len, 253);
}

static void rdata_must_be_exactly_its_length(void)
{
	struct dns_answer *a = answer_new();
	uint8_t longer[] = {0, 10, 1, 'x', 0, 0xff}; /* a byte after the name */
	uint8_t shorter[] = {0, 10, 5, 'x'};         /* the name runs past */
	int r1 = parse_mx_rdata(longer, sizeof longer, a);
	int r2 = parse_mx_rdata(shorter, sizeof shorter, a);
	free(a);
	ASSERT_EQ(r1, -1);
	ASSERT_EQ(r2, -1);
}

static void names_that_are_not_plain_text_are_skipped(void)
{
	struct dns_answer *a = answer_new();
	uint8_t crlf[] = {0, 10, 4, 'x', '\r', '\n', 'y', 0};
	uint8_t dot[] = {0, 10, 3, 'x', '.', 'y', 0};
	uint8_t null_mx[] = {0, 0, 0};
	int r1 = parse_mx_rdata(crlf, sizeof crlf, a);
	int n1 = a->n;
	int r2 = parse_mx_rdata(dot, sizeof dot, a);
	int n2 = a->n;
	int r3 = parse_mx_rdata(null_mx, sizeof null_mx, a);
	int n3 = a->n;
	char t3 = a->rr[0].text[0];
	free(a);
	ASSERT_EQ(r1, 0);
	ASSERT_EQ(n1, 0);
	ASSERT_EQ(r2, 0);
	ASSERT_EQ(n2, 0);
	ASSERT_EQ(r3, 0);
	ASSERT_EQ(n3, 1);
	ASSERT_EQ(t3, '\0');
}

/* xorshift32: the same mangled packets on every run */
static uint32_t rnd_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void mangled_answers_never_break_the_parser(void)
{
	static const struct {
		const uint8_t *p;
		size_t len;
		uint16_t id;
		const char *name;
		int type;
	} seed[] = {
	        {mx_pkt, sizeof mx_pkt - 1, 0x1234, "example.org", DNS_T_MX},
	        {cname_pkt, sizeof cname_pkt - 1, 0xabcd, "www.example.org", DNS_T_A},
	        {nx_pkt, sizeof nx_pkt - 1, 7, "nx.example.org", DNS_T_A},
	        {txt_pkt, sizeof txt_pkt - 1, 9, "example.org", DNS_T_TXT},
	};
	struct dns_answer *a = answer_new();
	uint32_t s = 0x2545f491;
	uint8_t p[512];
	int i, k, ok = 0;
	for (i = 0; i < 40000; i++) {
		size_t w = (size_t)i % 4, len = seed[w].len;
		memcpy(p, seed[w].p, len);
		for (k = (int)(rnd_next(&s) % 4); k >= 0; k--) {
			size_t at = 12 + rnd_next(&s) % (len - 12); /* keep the id */
			uint32_t v = rnd_next(&s);
			/* compression-pointer bytes and small lengths find the
			 * interesting paths sooner than uniform bytes */
			p[at] = (uint8_t)(v & 0x100 ? 0xc0 | (v & 0x3f) : v & 0x200 ? v & 0x3f : v);
		}
		if (rnd_next(&s) % 8 == 0) {
			len = rnd_next(&s) % (len + 1);
		}
		if (dns_parse_answer(p, len, seed[w].id, seed[w].name, seed[w].type, a) == 0) {
			ok++;
			for (k = 0; k < a->n; k++) {
				if (strlen(a->rr[k].text) >= DNS_TEXT_MAX) {
					ok = -1000000;
				}
			}
		}
	}
	free(a);
	ASSERT(ok > 0);
}

/* ---- a fake DNS server on 127.0.0.1 ---- */

/* A response under construction. */
struct pb {
	uint8_t p[4096];
	size_t n;
};

static void pb_u16(struct pb *b, unsigned v)
{
	b->p[b->n++] = (uint8_t)(v >> 8);
	b->p[b->n++] = (uint8_t)v;
}

static void pb_u32(struct pb *b, uint32_t v)
{
	pb_u16(b, v >> 16);
	pb_u16(b, v & 0xffff);
}

static void pb_name(struct pb *b, const char *name)
{
	while (*name) {
		size_t l = strcspn(name, ".");
		b->p[b->n++] = (uint8_t)l;
		memcpy(b->p + b->n, name, l);
		b->n += l;
		name += l + (name[l] == '.');
	}
	b->p[b->n++] = 0;
}

/* Starts a record; rr_end fills in its RDATA length. */
static size_t rr_start(struct pb *b, const char *owner, int type, uint32_t ttl)
{
	pb_name(b, owner);
	pb_u16(b, (unsigned)type);
	pb_u16(b, 1);
	pb_u32(b, ttl);
	pb_u16(b, 0);
	return b->n;
}

static void rr_end(struct pb *b, size_t at)
{
	size_t len = b->n - at;
	b->p[at - 2] = (uint8_t)(len >> 8);
	b->p[at - 1] = (uint8_t)len;
}

static void rr_mx(struct pb *b, const char *owner, int pref, const char *host)
{
	size_t at = rr_start(b, owner, DNS_T_MX, 300);
	pb_u16(b, (unsigned)pref);
	pb_name(b, host);
	rr_end(b, at);
}

static void rr_addr(struct pb *b, const char *owner, const char *ip, uint32_t ttl)
{
	uint8_t a[16];
	int len = os_ip_parse(ip, a);
	size_t at = rr_start(b, owner, len == 4 ? DNS_T_A : DNS_T_AAAA, ttl);
	memcpy(b->p + b->n, a, (size_t)len);
	b->n += (size_t)len;
	rr_end(b, at);
}

static void rr_name(struct pb *b, const char *owner, int type, const char *target)
{
	size_t at = rr_start(b, owner, type, 300);
	pb_name(b, target);
	rr_end(b, at);
}

static void rr_srv(struct pb *b, const char *owner, int prio, int weight, int port,
        const char *target)
{
	size_t at = rr_start(b, owner, DNS_T_SRV, 300);
	pb_u16(b, (unsigned)prio);
	pb_u16(b, (unsigned)weight);
	pb_u16(b, (unsigned)port);
	pb_name(b, target);
	rr_end(b, at);
}

static void rr_soa(struct pb *b, const char *zone)
{
	size_t at = rr_start(b, zone, DNS_T_SOA, 3600);
	pb_name(b, "ns.test");
	pb_name(b, "admin.test");
	pb_u32(b, 1);
	pb_u32(b, 3600);
	pb_u32(b, 600);
	pb_u32(b, 86400);
	pb_u32(b, 60); /* MINIMUM: NXDOMAIN and NODATA are kept a minute */
	rr_end(b, at);
}

static void rr_txt(struct pb *b, const char *owner, const char *s1, const char *s2)
{
	size_t at = rr_start(b, owner, DNS_T_TXT, 300);
	b->p[b->n++] = (uint8_t)strlen(s1);
	memcpy(b->p + b->n, s1, strlen(s1));
	b->n += strlen(s1);
	b->p[b->n++] = (uint8_t)strlen(s2);
	memcpy(b->p + b->n, s2, strlen(s2));
	b->n += strlen(s2);
	rr_end(b, at);
}

#define V6_REV "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
#define COUNTED_MAX 64

struct fake {
	os_fd udp, tcp, other; /* other: a second socket, to forge from */
	int port;
	os_thread *thread;
	os_mutex *mu; /* guards what follows */
	int stop;
	int udp_queries, tcp_queries;
	struct {
		char name[DNS_NAME_MAX];
		int type, count;
	} counted[COUNTED_MAX];
	int ncounted;
};

static void fake_count(struct fake *f, const char *name, int type)
{
	int i;
	os_mutex_lock(f->mu);
	for (i = 0; i < f->ncounted; i++) {
		if (f->counted[i].type == type && strcmp(f->counted[i].name, name) == 0) {
			break;
		}
	}
	if (i == f->ncounted && i < COUNTED_MAX && !strstr(name, ".many.test")) {
		rl_strlcpy(f->counted[i].name, name, sizeof f->counted[i].name);
		f->counted[i].type = type;
		f->counted[i].count = 0;
		f->ncounted++;
	}
	if (i < f->ncounted) {
		f->counted[i].count++;
	}
	os_mutex_unlock(f->mu);
}

static int fake_queries(struct fake *f, const char *name, int type)
{
	int i, n = 0;
	os_mutex_lock(f->mu);
	for (i = 0; i < f->ncounted; i++) {
		if (f->counted[i].type == type && strcmp(f->counted[i].name, name) == 0) {
			n = f->counted[i].count;
		}
	}
	os_mutex_unlock(f->mu);
	return n;
}

/* What a query asks: its id, name (lower case), type, end of question,
 * and whether it carries EDNS. -1 if it is no query. */
struct fq {
	unsigned id, type;
	char name[DNS_NAME_MAX];
	size_t qend;
	int edns;
};

static int fake_read_query(const uint8_t *q, size_t len, struct fq *fq)
{
	size_t pos = 12, n = 0;
	if (len < 17) {
		return -1;
	}
	fq->id = (unsigned)q[0] << 8 | q[1];
	fq->edns = q[11] > 0;
	while (pos < len && q[pos] != 0) {
		size_t l = q[pos++];
		if (l > 63 || pos + l > len || n + l + 2 > sizeof fq->name) {
			return -1;
		}
		if (n) {
			fq->name[n++] = '.';
		}
		for (; l > 0; l--) {
			fq->name[n++] =
			        (char)(q[pos] >= 'A' && q[pos] <= 'Z' ? q[pos] + 32 : q[pos]);
			pos++;
		}
	}
	fq->name[n] = '\0';
	if (pos + 5 > len) {
		return -1;
	}
	fq->type = (unsigned)q[pos + 1] << 8 | q[pos + 2];
	fq->qend = pos + 5;
	return 0;
}

/* Names of the zone that exist, with or without records of a type. */
static int fake_known(const char *name)
{
	static const char *const known[] = {"mx.test", "implicit.test", "noaddr.test",
	        "nullmx.test", "mixed.test", "big.test", "txt.test", "target.test", "spoof.test",
	        "edns.test", "ttl1.test"};
	size_t i;
	for (i = 0; i < sizeof known / sizeof known[0]; i++) {
		if (strcmp(name, known[i]) == 0) {
			return 1;
		}
	}
	return 0;
}

/* The zone: fills b with the answer to fq (tcp: it came over TCP). */
static void fake_answer(const uint8_t *q, const struct fq *fq, int tcp, struct pb *b)
{
	const char *nm = fq->name;
	unsigned t = fq->type;
	int an = 0, ns = 0, rcode = 0, tc = 0;
	b->n = 12;
	memcpy(b->p + 12, q + 12, fq->qend - 12);
	b->n = fq->qend;
	if (strcmp(nm, "mx.test") == 0 && t == DNS_T_MX) {
		rr_mx(b, nm, 20, "mx20.mx.test");
		rr_mx(b, nm, 10, "a.mx.test");
		rr_mx(b, nm, 30, "mx30.mx.test");
		rr_mx(b, nm, 10, "b.mx.test");
		rr_mx(b, nm, 10, "c.mx.test");
		an = 5;
	} else if (strcmp(nm, "implicit.test") == 0 && t == DNS_T_A) {
		rr_addr(b, nm, "192.0.2.10", 300);
		an = 1;
	} else if (strcmp(nm, "implicit.test") == 0 && t == DNS_T_AAAA) {
		rr_addr(b, nm, "2001:db8::10", 300);
		an = 1;
	} else if (strcmp(nm, "implicit.test") == 0 || strcmp(nm, "noaddr.test") == 0) {
		rr_soa(b, "test");
		ns = 1;
	} else if (strcmp(nm, "nullmx.test") == 0 && t == DNS_T_MX) {
		rr_mx(b, nm, 0, "");
		an = 1;
	} else if (strcmp(nm, "mixed.test") == 0 && t == DNS_T_MX) {
		rr_mx(b, nm, 0, "");
		rr_mx(b, nm, 10, "mail.mixed.test");
		an = 2;
	} else if (strcmp(nm, "big.test") == 0 && t == DNS_T_MX && !tcp) {
		tc = 1;
	} else if (strcmp(nm, "big.test") == 0 && t == DNS_T_MX) {
		rr_mx(b, nm, 10, "one.big.test");
		rr_mx(b, nm, 20, "two.big.test");
		rr_mx(b, nm, 30, "three.big.test");
		an = 3;
	} else if (strcmp(nm, "txt.test") == 0 && t == DNS_T_TXT) {
		rr_txt(b, nm, "v=spf1 ", "-all");
		an = 1;
	} else if (strcmp(nm, "alias.test") == 0) {
		rr_name(b, nm, DNS_T_CNAME, "target.test"); /* and stop there */
		an = 1;
	} else if (strcmp(nm, "target.test") == 0 && t == DNS_T_A) {
		rr_addr(b, nm, "192.0.2.20", 300);
		an = 1;
	} else if (strcmp(nm, "10.2.0.192.in-addr.arpa") == 0 && t == DNS_T_PTR) {
		rr_name(b, nm, DNS_T_PTR, "host.test");
		an = 1;
	} else if (strcmp(nm, V6_REV) == 0 && t == DNS_T_PTR) {
		rr_name(b, nm, DNS_T_PTR, "v6host.test");
		an = 1;
	} else if (strcmp(nm, "_imaps._tcp.srv.test") == 0 && t == DNS_T_SRV) {
		rr_srv(b, nm, 5, 2, 993, "mail.srv.test");
		rr_srv(b, nm, 0, 0, 0, "");
		an = 2;
	} else if (strcmp(nm, "servfail.test") == 0) {
		rcode = 2;
	} else if (strcmp(nm, "spoof.test") == 0 && t == DNS_T_A) {
		rr_addr(b, nm, "192.0.2.30", 300);
		an = 1;
	} else if (strcmp(nm, "edns.test") == 0 && fq->edns) {
		rcode = 1; /* FORMERR: an old server */
	} else if (strcmp(nm, "edns.test") == 0 && t == DNS_T_A) {
		rr_addr(b, nm, "192.0.2.40", 300);
		an = 1;
	} else if (strcmp(nm, "ttl1.test") == 0 && t == DNS_T_A) {
		rr_addr(b, nm, "192.0.2.50", 1);
		an = 1;
	} else if (strlen(nm) > 10 && strcmp(nm + strlen(nm) - 10, ".many.test") == 0) {
		if (t == DNS_T_A) {
			rr_addr(b, nm, "192.0.2.60", 300);
			an = 1;
		}
	} else {
		rcode = fake_known(nm) ? 0 : 3; /* NODATA or NXDOMAIN */
		rr_soa(b, "test");
		ns = 1;
	}
	b->p[0] = (uint8_t)(fq->id >> 8);
	b->p[1] = (uint8_t)fq->id;
	b->p[2] = (uint8_t)(0x81 | (tc ? 0x02 : 0));
	b->p[3] = (uint8_t)(0x80 | rcode);
	b->p[4] = 0;
	b->p[5] = 1;
	b->p[6] = 0;
	b->p[7] = (uint8_t)an;
	b->p[8] = 0;
	b->p[9] = (uint8_t)ns;
	b->p[10] = b->p[11] = 0;
}

/* spoof.test: before the answer, one with a wrong id from the right
 * port, and one with the right id from another port. */
static void fake_forge(struct fake *f, struct pb *b, const char *to, int port)
{
	struct pb bad = *b;
	size_t rdata = bad.n - 4; /* the A record's address */
	bad.p[rdata + 3] = 6;
	bad.p[0] ^= 0x55;
	os_udp_sendto(f->udp, bad.p, bad.n, to, port);
	bad.p[0] ^= 0x55;
	bad.p[rdata + 3] = 7;
	os_udp_sendto(f->other, bad.p, bad.n, to, port);
}

static void fake_udp(struct fake *f)
{
	uint8_t q[1024];
	char from[64];
	int port;
	long n;
	struct fq fq;
	struct pb *b = xmalloc(sizeof *b);
	while ((n = os_udp_recvfrom(f->udp, q, sizeof q, from, sizeof from, &port)) > 0) {
		if (fake_read_query(q, (size_t)n, &fq) < 0) {
			continue;
		}
		os_mutex_lock(f->mu);
		f->udp_queries++;
		os_mutex_unlock(f->mu);
		fake_count(f, fq.name, (int)fq.type);
		fake_answer(q, &fq, 0, b);
		if (strcmp(fq.name, "spoof.test") == 0) {
			fake_forge(f, b, from, port);
		}
		os_udp_sendto(f->udp, b->p, b->n, from, port);
	}
	free(b);
}

/* Reads n bytes from a non-blocking socket within a second. */
static int fake_read_full(os_fd fd, uint8_t *p, size_t n)
{
	int64_t end = os_now_ms() + 1000;
	while (n > 0) {
		long r;
		if (os_wait_readable(fd, (int)(end - os_now_ms())) <= 0) {
			return -1;
		}
		r = os_read(fd, p, n);
		if (r == OS_AGAIN) {
			continue;
		}
		if (r <= 0) {
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void fake_tcp(struct fake *f)
{
	char peer[64];
	uint8_t q[1024], len[2];
	struct fq fq;
	struct pb *b;
	os_fd c = os_accept(f->tcp, peer, sizeof peer);
	if (c == OS_BADFD || c == (os_fd)OS_AGAIN) {
		return;
	}
	b = xmalloc(sizeof *b);
	if (fake_read_full(c, len, 2) == 0 && (size_t)(len[0] << 8 | len[1]) <= sizeof q &&
	        fake_read_full(c, q, (size_t)(len[0] << 8 | len[1])) == 0 &&
	        fake_read_query(q, (size_t)(len[0] << 8 | len[1]), &fq) == 0) {
		os_mutex_lock(f->mu);
		f->tcp_queries++;
		os_mutex_unlock(f->mu);
		fake_count(f, fq.name, (int)fq.type);
		fake_answer(q, &fq, 1, b);
		memmove(b->p + 2, b->p, b->n);
		b->p[0] = (uint8_t)(b->n >> 8);
		b->p[1] = (uint8_t)b->n;
		os_write(c, b->p, b->n + 2); /* small: fits the socket buffer */
	}
	free(b);
	os_close(c);
}

static void fake_main(void *arg)
{
	struct fake *f = arg;
	struct os_poller *p = os_poller_new();
	struct os_event ev[4];
	int i, n, stop = 0;
	os_poller_add(p, f->udp, OS_EV_READ, &f->udp);
	os_poller_add(p, f->tcp, OS_EV_READ, &f->tcp);
	while (!stop) {
		n = os_poller_wait(p, ev, 4, 20);
		for (i = 0; i < n; i++) {
			if (ev[i].ptr == &f->udp) {
				fake_udp(f);
			} else {
				fake_tcp(f);
			}
		}
		os_mutex_lock(f->mu);
		stop = f->stop;
		os_mutex_unlock(f->mu);
	}
	os_poller_free(p);
}

/* A server answering on UDP and TCP of one port of 127.0.0.1. */
static struct fake *fake_start(void)
{
	struct fake *f = xcalloc(1, sizeof *f);
	char err[256];
	int i;
	for (i = 0; i < 20; i++) {
		f->udp = os_udp_bind("127.0.0.1", 0);
		f->port = f->udp == OS_BADFD ? -1 : os_sock_port(f->udp);
		f->tcp = f->port > 0 ? os_listen("127.0.0.1", f->port, 1, err, sizeof err)
		                     : OS_BADFD;
		if (f->tcp != OS_BADFD) {
			break;
		}
		os_close(f->udp);
	}
	f->other = os_udp_bind("127.0.0.1", 0);
	f->mu = os_mutex_new();
	if (f->tcp == OS_BADFD || f->other == OS_BADFD) {
		fatalx("fake DNS server: no port");
	}
	f->thread = os_thread_start(fake_main, f);
	return f;
}

static void fake_stop(struct fake *f)
{
	os_mutex_lock(f->mu);
	f->stop = 1;
	os_mutex_unlock(f->mu);
	os_thread_join(f->thread);
	os_close(f->udp);
	os_close(f->tcp);
	os_close(f->other);
	os_mutex_free(f->mu);
	free(f);
}

/* ---- lookups against it ---- */

static struct fake *fake;
static os_fd silent = OS_BADFD; /* a bound UDP port that never answers */
static int closed_port;         /* a UDP port nobody listens on */

/* Points the client at servers (a printf format of ports). */
static int use_servers(const char *fmt, int a, int b)
{
	char list[128], err[256];
	snprintf(list, sizeof list, fmt, a, b);
	dns__cache_clear();
	dns__set_timeout(300, 2);
	return dns_init(list, err, sizeof err);
}

static int use_fake(void)
{
	return use_servers("127.0.0.1:%d", fake->port, 0);
}

static void lookups_before_init_fail_softly(void)
{
	struct dns_mx mx[4];
	char addr[2][DNS_ADDR_MAX];
	ASSERT_EQ(dns_mx("mx.test", mx, 4), DNS_TEMPFAIL);
	ASSERT_EQ(dns_addrs("implicit.test", addr, 2), DNS_TEMPFAIL);
	ASSERT_EQ(dns_addrs("192.0.2.1", addr, 2), 1); /* no lookup needed */
	ASSERT_STR(addr[0], "192.0.2.1");
}

static void server_lists_parse(void)
{
	char err[256] = "";
	ASSERT_EQ(
	        dns_init("192.0.2.1, [2001:db8::1]:5353 10.0.0.1:53;2001:db8::2", err, sizeof err),
	        0);
	ASSERT_EQ(dns_init("192.0.2.1 bogus", err, sizeof err), -1);
	ASSERT(strstr(err, "bogus") != NULL);
	ASSERT_EQ(dns_init("192.0.2.1:99999", err, sizeof err), -1);
	ASSERT_EQ(dns_init("192.0.2.1:", err, sizeof err), -1);
	ASSERT_EQ(dns_init("[2001:db8::1", err, sizeof err), -1);
	ASSERT_EQ(
	        dns_init("1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9",
	                err, sizeof err),
	        -1);
	ASSERT(strstr(err, "more than") != NULL);
	ASSERT_EQ(dns_init(" , ", err, sizeof err), -1); /* no server at all */
}

static void the_system_servers_are_read(void)
{
	char addr[DNS_SERVERS_MAX][64], err[256] = "";
	int i, n = os_dns_servers(addr, DNS_SERVERS_MAX);
	ASSERT(n >= 0 && n <= DNS_SERVERS_MAX);
	for (i = 0; i < n; i++) {
		ASSERT(addr[i][0] != '\0');
	}
	int r = dns_init(NULL, err, sizeof err);
	ASSERT(r == 0 || (r == -1 && err[0] != '\0'));
}

static void mx_hosts_come_by_preference_with_ties_shuffled(void)
{
	struct dns_mx mx[8];
	int i, n, firsts[3] = {0, 0, 0};
	ASSERT_EQ(use_fake(), 0);
	n = dns_mx("mx.test", mx, 8);
	ASSERT_EQ(n, 5);
	ASSERT_EQ(mx[0].pref, 10);
	ASSERT_EQ(mx[1].pref, 10);
	ASSERT_EQ(mx[2].pref, 10);
	ASSERT_STR(mx[3].host, "mx20.mx.test");
	ASSERT_STR(mx[4].host, "mx30.mx.test");
	for (i = 0; i < 60; i++) {
		ASSERT_EQ(dns_mx("mx.test", mx, 8), 5);
		ASSERT(mx[0].host[0] >= 'a' && mx[0].host[0] <= 'c' && mx[0].host[1] == '.');
		firsts[mx[0].host[0] - 'a']++;
	}
	ASSERT(firsts[0] > 0 && firsts[1] > 0 && firsts[2] > 0);
	ASSERT_EQ(dns_mx("mx.test", mx, 2), 2);
	ASSERT_EQ(mx[1].pref, 10);
}

static void answers_come_from_the_cache_until_they_expire(void)
{
	struct dns_mx mx[8];
	char addr[2][DNS_ADDR_MAX];
	ASSERT_EQ(use_fake(), 0);
	int before = fake_queries(fake, "mx.test", DNS_T_MX);
	ASSERT_EQ(dns_mx("MX.test.", mx, 8), 5);
	ASSERT_EQ(dns_mx("mx.test", mx, 8), 5);
	ASSERT_EQ(fake_queries(fake, "mx.test", DNS_T_MX), before + 1);
	ASSERT_EQ(dns_addrs("ttl1.test", addr, 2), 1);
	ASSERT_EQ(dns_addrs("ttl1.test", addr, 2), 1);
	ASSERT_EQ(fake_queries(fake, "ttl1.test", DNS_T_A), 1);
	os_sleep_ms(1100);
	ASSERT_EQ(dns_addrs("ttl1.test", addr, 2), 1);
	ASSERT_STR(addr[0], "192.0.2.50");
	ASSERT_EQ(fake_queries(fake, "ttl1.test", DNS_T_A), 2);
}

static void a_domain_without_mx_is_its_own_mail_host(void)
{
	struct dns_mx mx[4];
	char addr[4][DNS_ADDR_MAX];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_mx("Implicit.Test.", mx, 4), 1);
	ASSERT_STR(mx[0].host, "implicit.test");
	ASSERT_EQ(mx[0].pref, 0);
	ASSERT_EQ(dns_addrs("implicit.test", addr, 4), 2);
	ASSERT_STR(addr[0], "192.0.2.10");
	ASSERT_STR(addr[1], "2001:db8::10");
	ASSERT_EQ(dns_mx("noaddr.test", mx, 4), 0);
}

static void a_null_mx_means_no_mail(void)
{
	struct dns_mx mx[4];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_mx("nullmx.test", mx, 4), DNS_NOMAIL);
	ASSERT_EQ(dns_mx("mixed.test", mx, 4), 1);
	ASSERT_STR(mx[0].host, "mail.mixed.test");
}

static void nxdomain_is_reported_and_cached(void)
{
	struct dns_mx mx[4];
	char addr[2][DNS_ADDR_MAX], name[DNS_NAME_MAX];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_mx("nx.test", mx, 4), DNS_NXDOMAIN);
	ASSERT_EQ(dns_addrs("nx.test", addr, 2), DNS_NXDOMAIN);
	ASSERT_EQ(dns_addrs("nx.test", addr, 2), DNS_NXDOMAIN);
	ASSERT_EQ(fake_queries(fake, "nx.test", DNS_T_A), 1);
	ASSERT_EQ(fake_queries(fake, "nx.test", DNS_T_AAAA), 0); /* no name, no AAAA */
	ASSERT_EQ(dns_ptr("192.0.2.99", name, sizeof name), DNS_NXDOMAIN);
	/* names that cannot exist are not asked for */
	ASSERT_EQ(dns_addrs("bad..name", addr, 2), DNS_NXDOMAIN);
	ASSERT_EQ(dns_addrs("", addr, 2), DNS_NXDOMAIN);
	ASSERT_EQ(dns_addrs("sp ace.test", addr, 2), DNS_NXDOMAIN);
	ASSERT_EQ(dns_ptr("not-an-address", name, sizeof name), DNS_NXDOMAIN);
	ASSERT_STR(dns_strerror(DNS_NXDOMAIN), "no such domain");
}

static void a_truncated_answer_is_asked_again_over_tcp(void)
{
	struct dns_mx mx[4];
	ASSERT_EQ(use_fake(), 0);
	os_mutex_lock(fake->mu);
	int tcp = fake->tcp_queries;
	os_mutex_unlock(fake->mu);
	ASSERT_EQ(dns_mx("big.test", mx, 4), 3);
	ASSERT_STR(mx[0].host, "one.big.test");
	ASSERT_STR(mx[2].host, "three.big.test");
	os_mutex_lock(fake->mu);
	tcp = fake->tcp_queries - tcp;
	os_mutex_unlock(fake->mu);
	ASSERT_EQ(tcp, 1);
}

static void a_silent_server_is_passed_over_after_the_timeout(void)
{
	char addr[2][DNS_ADDR_MAX];
	ASSERT_EQ(use_servers("127.0.0.1:%d 127.0.0.1:%d", os_sock_port(silent), fake->port), 0);
	int64_t t0 = os_now_ms();
	ASSERT_EQ(dns_addrs("target.test", addr, 2), 1);
	int64_t took = os_now_ms() - t0;
	ASSERT_STR(addr[0], "192.0.2.20");
	ASSERT(took >= 290);
	ASSERT(took < 2000);
}

static void a_refusing_server_is_passed_over_at_once(void)
{
	char addr[2][DNS_ADDR_MAX];
	ASSERT_EQ(use_servers("127.0.0.1:%d, 127.0.0.1:%d", closed_port, fake->port), 0);
	dns__set_timeout(1500, 2);
	int64_t t0 = os_now_ms();
	ASSERT_EQ(dns_addrs("target.test", addr, 2), 1);
	ASSERT(os_now_ms() - t0 < 1000); /* ICMP port unreachable, no timeout */
}

static void no_answer_at_all_is_a_temporary_failure(void)
{
	struct dns_mx mx[2];
	char addr[2][DNS_ADDR_MAX];
	ASSERT_EQ(use_servers("127.0.0.1:%d", os_sock_port(silent), 0), 0);
	dns__set_timeout(100, 2);
	int64_t t0 = os_now_ms();
	ASSERT_EQ(dns_mx("mx.test", mx, 2), DNS_TEMPFAIL);
	ASSERT(os_now_ms() - t0 >= 190); /* two rounds */
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_addrs("servfail.test", addr, 2), DNS_TEMPFAIL);
	ASSERT_EQ(fake_queries(fake, "servfail.test", DNS_T_A), 2); /* not cached, two rounds */
}

static void forged_answers_are_ignored(void)
{
	char addr[4][DNS_ADDR_MAX];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_addrs("spoof.test", addr, 4), 1);
	ASSERT_STR(addr[0], "192.0.2.30");
}

static void cnames_txt_ptr_and_old_servers_work(void)
{
	char addr[2][DNS_ADDR_MAX], txt[2][DNS_TEXT_MAX], name[DNS_NAME_MAX];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_addrs("alias.test", addr, 2), 1); /* asked again for target.test */
	ASSERT_STR(addr[0], "192.0.2.20");
	ASSERT_EQ(dns_txt("txt.test", txt, 2), 1);
	ASSERT_STR(txt[0], "v=spf1 -all");
	ASSERT_EQ(dns_ptr("192.0.2.10", name, sizeof name), 1);
	ASSERT_STR(name, "host.test");
	ASSERT_EQ(dns_ptr("::ffff:192.0.2.10", name, sizeof name), 1);
	ASSERT_STR(name, "host.test");
	ASSERT_EQ(dns_ptr("2001:db8::1", name, sizeof name), 1);
	ASSERT_STR(name, "v6host.test");
	ASSERT_EQ(dns_ptr("192.0.2.10", name, 4), 0);  /* does not fit */
	ASSERT_EQ(dns_addrs("edns.test", addr, 2), 1); /* FORMERR to EDNS: asked plainly */
	ASSERT_STR(addr[0], "192.0.2.40");
}

static void srv_records_are_looked_up_and_cached(void)
{
	struct dns_srv srv[4];
	ASSERT_EQ(use_fake(), 0);
	ASSERT_EQ(dns_srv("_imaps._tcp.srv.test", srv, 4), 2);
	ASSERT_STR(srv[0].host, "mail.srv.test");
	ASSERT_EQ(srv[0].prio, 5);
	ASSERT_EQ(srv[0].weight, 2);
	ASSERT_EQ(srv[0].port, 993);
	ASSERT_STR(srv[1].host, "");
	ASSERT_EQ(dns_srv("_imaps._tcp.srv.test", srv, 1), 1);
	ASSERT_EQ(fake_queries(fake, "_imaps._tcp.srv.test", DNS_T_SRV), 1);
	ASSERT_EQ(dns_srv("_imap._tcp.srv.test", srv, 4), DNS_NXDOMAIN);
}

static void the_cache_stays_bounded(void)
{
	char addr[1][DNS_ADDR_MAX], name[64];
	int i, bad = 0;
	ASSERT_EQ(use_fake(), 0);
	for (i = 0; i < 1100; i++) {
		snprintf(name, sizeof name, "n%d.many.test", i);
		bad += dns_addrs(name, addr, 1) != 1;
	}
	ASSERT_EQ(bad, 0);
	ASSERT(dns__cache_count() <= 1024);
	ASSERT(dns__cache_count() >= 1000);
}

static void lookup_thread(void *arg)
{
	int *bad = arg, i;
	char addr[1][DNS_ADDR_MAX], name[64];
	struct dns_mx mx[8];
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "n%d.many.test", i % 37);
		*bad += dns_addrs(name, addr, 1) != 1;
		*bad += dns_mx("mx.test", mx, 8) != 5;
	}
}

static void lookups_run_on_many_threads_at_once(void)
{
	os_thread *t[4];
	int bad[4] = {0, 0, 0, 0}, i;
	ASSERT_EQ(use_fake(), 0);
	for (i = 0; i < 4; i++) {
		t[i] = os_thread_start(lookup_thread, &bad[i]);
	}
	for (i = 0; i < 4; i++) {
		os_thread_join(t[i]);
	}
	ASSERT_EQ(bad[0] + bad[1] + bad[2] + bad[3], 0);
}

static void dnsbl_names_reverse_the_address(void)
{
	char n[DNS_NAME_MAX];
	ASSERT_EQ(dnsbl_name("192.0.2.99", "bl.example", n, sizeof n), 0);
	ASSERT_STR(n, "99.2.0.192.bl.example");
	ASSERT_EQ(dnsbl_name("2001:db8:1:2:3:4:567:89ab", "bl.example", n, sizeof n), 0);
	ASSERT_STR(n, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example");
	ASSERT_EQ(dnsbl_name("not an address", "bl.example", n, sizeof n), -1);
	ASSERT_EQ(dnsbl_name("192.0.2.99", "bl.example", n, 12), -1);
	ASSERT(dnsbl_listed("127.0.0.2"));
	ASSERT(dnsbl_listed("127.0.0.11"));
	ASSERT(!dnsbl_listed("127.255.255.254")); /* a refused query, not a listing */
	ASSERT(!dnsbl_listed("192.0.2.1"));
	ASSERT(!dnsbl_listed("::1"));
	char err[200];
	ASSERT_EQ(dnsbl_check_conf("zen.spamhaus.org, bl.spamcop.net", err, sizeof err), 0);
	ASSERT_EQ(dnsbl_check_conf("", err, sizeof err), 0);
	ASSERT_EQ(dnsbl_check_conf("good.example bad..example", err, sizeof err), -1);
	ASSERT(strstr(err, "bad..example"));
}

void tests_dns(void)
{
	RUN(dnsbl_names_reverse_the_address,
	        "dnsbl names reverse IPv4 octets and IPv6 nibbles; only 127/8 but 127.255.255/24 lists");
	RUN(mx_answer_with_compression_parses,
	        "dns parser reads an MX answer with compressed names");
	RUN(every_cut_of_an_answer_is_refused, "dns parser refuses every cut of an answer");
	RUN(srv_answer_parses,
	        "dns parser reads SRV records (a root target too), refuses cut and short ones");
	RUN(cname_chain_is_followed_in_any_order, "dns parser follows a CNAME chain in any order");
	RUN(a_chain_cut_short_asks_for_its_end, "dns parser asks again where a CNAME chain stops");
	RUN(a_cname_loop_is_refused, "dns parser refuses a CNAME loop");
	RUN(nxdomain_is_kept_for_the_soa_minimum, "dns parser keeps NXDOMAIN for the SOA minimum");
	RUN(negative_ttl_is_capped_at_five_minutes, "dns parser caps a negative TTL at 5 minutes");
	RUN(txt_strings_are_joined, "dns parser joins the strings of a TXT record");
	RUN(truncated_answer_says_so, "dns parser reports a truncated answer");
	RUN(wrong_id_question_or_direction_is_refused,
	        "dns parser refuses a wrong id, question or direction");
	RUN(compression_loops_are_refused, "dns parser refuses compression loops");
	RUN(overlong_labels_and_names_are_refused,
	        "dns parser refuses labels over 63, names over 255");
	RUN(rdata_must_be_exactly_its_length, "dns parser wants a name to fill its RDATA exactly");
	RUN(names_that_are_not_plain_text_are_skipped,
	        "dns parser skips names with control bytes or dots");
	RUN(mangled_answers_never_break_the_parser, "dns parser survives 40,000 mangled answers");

	RUN(lookups_before_init_fail_softly, "dns lookups before dns_init fail softly");
	fake = fake_start();
	silent = os_udp_bind("127.0.0.1", 0);
	os_fd gone = os_udp_bind("127.0.0.1", 0);
	closed_port = os_sock_port(gone);
	os_close(gone);
	RUN(server_lists_parse, "dns DNSServer lists parse, bad ones are refused");
	RUN(the_system_servers_are_read, "dns reads the system's servers");
	RUN(mx_hosts_come_by_preference_with_ties_shuffled,
	        "dns MX hosts come by preference, ties shuffled");
	RUN(answers_come_from_the_cache_until_they_expire,
	        "dns answers come from the cache until their TTL ends");
	RUN(a_domain_without_mx_is_its_own_mail_host,
	        "dns a domain without MX is its own mail host");
	RUN(a_null_mx_means_no_mail, "dns a null MX means no mail");
	RUN(nxdomain_is_reported_and_cached, "dns NXDOMAIN is reported and cached");
	RUN(a_truncated_answer_is_asked_again_over_tcp, "dns a truncated answer is asked over TCP");
	RUN(a_silent_server_is_passed_over_after_the_timeout,
	        "dns a silent server is passed over after the timeout");
	RUN(a_refusing_server_is_passed_over_at_once,
	        "dns a refusing server is passed over at once");
	RUN(no_answer_at_all_is_a_temporary_failure, "dns no answer at all is a temporary failure");
	RUN(forged_answers_are_ignored, "dns answers with a wrong id or port are ignored");
	RUN(cnames_txt_ptr_and_old_servers_work, "dns CNAME, TXT, PTR and FORMERR fallback work");
	RUN(srv_records_are_looked_up_and_cached, "dns SRV records are looked up and cached");
	RUN(the_cache_stays_bounded, "dns the cache stays bounded");
	RUN(lookups_run_on_many_threads_at_once, "dns lookups run on many threads at once");
	dns_shutdown();
	fake_stop(fake);
	os_close(silent);
}
