/*
 * dkim_verify.c - DKIM verification of inbound mail (RFC 6376, RFC 8463
 * for ed25519-sha256, RFC 8301 for what is no longer accepted).
 *
 * The message is fed as it arrives: the header section is kept (up to
 * DKIMV_HEADER_MAX), and when it ends the DKIM-Signature fields (the
 * first DKIM_VERIFY_MAX) are read and the body goes through one hash per
 * body canonicalization they use, never kept. At the end each signature's
 * key is looked up (TXT <s>._domainkey.<d>, blocking: a helper thread
 * calls dkim_verify_end) and checked.
 *
 * Accepted: a=rsa-sha256 (keys of 1024 bits or more) and ed25519-sha256;
 * c= simple or relaxed for header and body. rsa-sha1 is refused (RFC
 * 8301). l= is ignored as if absent: the body hash always covers the
 * whole body, so a signature whose l= leaves text unsigned fails rather
 * than vouching for what was appended. h= must name From; x= in the past
 * fails; a key with t=s wants i= in d= itself; t=y (testing) is reported
 * but not taken as a pass by DMARC (dmarc.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

#define DKIMV_HEADER_MAX (128 * 1024) /* a longer header section is not checked */
#define DKIMV_FIELDS_MAX 1000
#define DKIMV_H_MAX 64 /* names in h= */
#define DKIMV_SIG_MAX 512

struct sig {
	struct dkim_field f; /* the DKIM-Signature field */
	char a[32], d[MM_DOMAIN_MAX + 1], s[64], i_dom[MM_DOMAIN_MAX + 1], h[1024];
	char bh[64], b[700];
	int hsimple, bsimple;
	int64_t x; /* 0: none */
	struct dkim_result *r;
};

struct dkim_verify {
	int sigs;        /* check signatures; 0: only keep the header (DMARC) */
	struct buf head; /* the header section, with the empty line */
	int state;       /* 0 header, 1 body, 2 header too big */
	struct dkim_field *f;
	int nf;
	struct sig sig[DKIM_VERIFY_MAX];
	int nsig;
	struct dkim_body body[2]; /* [bsimple] */
	struct dkim_result res[DKIM_VERIFY_MAX];
	int nres;
};

static const char *const result_names[] = {
        "none", "pass", "fail", "neutral", "temperror", "permerror", "policy"};

/* see rumble.h */
const char *dkim_result_name(enum dkim_status r)
{
	return result_names[r];
}

/* see rumble.h */
struct dkim_verify *dkim_verify_new(int sigs)
{
	struct dkim_verify *v = xcalloc(1, sizeof *v);
	v->sigs = sigs;
	buf_init(&v->head);
	return v;
}

/* see rumble.h */
void dkim_verify_free(struct dkim_verify *v)
{
	if (v) {
		buf_free(&v->head);
		free(v->f);
		free(v);
	}
}

/* ---- tag lists (RFC 6376 3.2) ---- */

/* The value of tag in the tag-list p[0..n) into out, white space
 * removed; 1 when present, 0 when not, -1 when it does not fit. */
static int tag_value(const char *p, size_t n, const char *tag, char *out, size_t len)
{
	size_t i = 0, tl = strlen(tag);
	while (i < n) {
		size_t end = i;
		while (end < n && p[end] != ';') {
			end++;
		}
		size_t k = i;
		while (k < end && strchr(" \t\r\n", p[k])) {
			k++;
		}
		size_t name = k;
		while (k < end && p[k] != '=' && !strchr(" \t\r\n", p[k])) {
			k++;
		}
		size_t name_end = k;
		while (k < end && strchr(" \t\r\n", p[k])) {
			k++;
		}
		if (k < end && p[k] == '=' && name_end - name == tl && !memcmp(p + name, tag, tl)) {
			size_t o = 0;
			for (k++; k < end; k++) {
				if (!strchr(" \t\r\n", p[k])) {
					if (o + 1 >= len) {
						return -1;
					}
					out[o++] = p[k];
				}
			}
			out[o] = '\0';
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

/* The field's value: after the colon. */
static const char *field_value(const struct dkim_field *f, size_t *n)
{
	const char *c = memchr(f->p, ':', f->n);
	*n = c ? f->n - (size_t)(c + 1 - f->p) : 0;
	return c ? c + 1 : f->p + f->n;
}

static void set_result(struct sig *g, enum dkim_status r, const char *why)
{
	g->r->status = r;
	rl_strlcpy(g->r->why, why, sizeof g->r->why);
}

/* 1 when the colon-separated list has name (any case). */
static int list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		size_t k = strcspn(p, ":");
		if (k == n && !rl_strncasecmp(p, name, n)) {
			return 1;
		}
		p += k + (p[k] == ':');
	}
	return 0;
}

/* Reads a DKIM-Signature field; 0, or -1 with g->r set to permerror. */
static int sig_parse(struct sig *g)
{
	size_t n;
	const char *p = field_value(&g->f, &n);
	char v[8] = "", c[40] = "simple/simple", x[24] = "", i[400] = "";
	if (tag_value(p, n, "v", v, sizeof v) != 1 || strcmp(v, "1") != 0 ||
	        tag_value(p, n, "a", g->a, sizeof g->a) != 1 ||
	        tag_value(p, n, "d", g->d, sizeof g->d) != 1 ||
	        tag_value(p, n, "s", g->s, sizeof g->s) != 1 ||
	        tag_value(p, n, "h", g->h, sizeof g->h) != 1 ||
	        tag_value(p, n, "bh", g->bh, sizeof g->bh) != 1 ||
	        tag_value(p, n, "b", g->b, sizeof g->b) != 1 ||
	        tag_value(p, n, "c", c, sizeof c) < 0 || tag_value(p, n, "x", x, sizeof x) < 0 ||
	        tag_value(p, n, "i", i, sizeof i) < 0) {
		set_result(g, DKIM_PERMERROR, "malformed signature");
		return -1;
	}
	rl_lower(g->a);
	rl_lower(g->d);
	rl_lower(c);
	rl_strlcpy(g->r->d, g->d, sizeof g->r->d);
	rl_strlcpy(g->r->s, g->s, sizeof g->r->s);
	rl_strlcpy(g->r->b, g->b, sizeof g->r->b); /* header.b: the first 8 (RFC 6008) */
	rl_strlcpy(g->r->a, g->a, sizeof g->r->a);
	char *slash = strchr(c, '/');
	if (slash) {
		*slash++ = '\0';
	}
	int hs = !strcmp(c, "simple"), bs = !slash || !strcmp(slash, "simple");
	if ((!hs && strcmp(c, "relaxed")) || (!bs && strcmp(slash, "relaxed"))) {
		set_result(g, DKIM_PERMERROR, "unknown canonicalization");
		return -1;
	}
	g->hsimple = hs;
	g->bsimple = bs;
	if (strcmp(g->a, "rsa-sha256") && strcmp(g->a, "ed25519-sha256")) {
		set_result(g, DKIM_PERMERROR,
		        !strcmp(g->a, "rsa-sha1") ? "rsa-sha1 not accepted (RFC 8301)"
		                                  : "unknown algorithm");
		return -1;
	}
	if (!list_has(g->h, "from")) {
		set_result(g, DKIM_PERMERROR, "From not signed");
		return -1;
	}
	if (!mm_valid_domain(g->d) || strpbrk(g->s, "/\\") || !*g->s) {
		set_result(g, DKIM_PERMERROR, "bad d= or s=");
		return -1;
	}
	g->x = *x ? strtoll(x, NULL, 10) : 0;
	const char *at = strrchr(i, '@');
	rl_strlcpy(g->i_dom, at ? at + 1 : g->d, sizeof g->i_dom);
	rl_lower(g->i_dom);
	size_t il = strlen(g->i_dom), dl = strlen(g->d);
	if (il < dl || strcmp(g->i_dom + il - dl, g->d) ||
	        (il > dl && g->i_dom[il - dl - 1] != '.')) {
		set_result(g, DKIM_PERMERROR, "i= not within d=");
		return -1;
	}
	return 0;
}

/* ---- feeding ---- */

/* The header section is complete: split it, read the signatures. */
static void header_done(struct dkim_verify *v)
{
	size_t body_off;
	v->f = xcalloc(DKIMV_FIELDS_MAX, sizeof *v->f);
	v->nf = dkim_split_fields(v->head.data, v->head.len, v->f, DKIMV_FIELDS_MAX, &body_off);
	if (v->nf >= DKIMV_FIELDS_MAX) {
		v->state = 2; /* maybe more fields than kept: as a header too big */
		return;
	}
	dkim_body_init(&v->body[0]);
	dkim_body_init(&v->body[1]);
	dkim_body_simple(&v->body[1]);
	for (int i = 0; i < v->nf && v->sigs; i++) {
		if (!dkim_field_is(&v->f[i], "dkim-signature")) {
			continue;
		}
		if (v->nres == DKIM_VERIFY_MAX) {
			log_info("dkim: more than %d signatures, the rest not checked",
			        DKIM_VERIFY_MAX);
			break;
		}
		struct sig *g = &v->sig[v->nsig];
		memset(g, 0, sizeof *g);
		g->f = v->f[i];
		g->r = &v->res[v->nres++];
		if (sig_parse(g) == 0) {
			v->nsig++;
		}
	}
}

/* 1 when the header section in b is complete. */
static int header_complete(const struct buf *b)
{
	if (b->len >= 2 && b->data[0] == '\r' && b->data[1] == '\n') {
		return 1;
	}
	return b->len >= 4 && !memcmp(b->data + b->len - 4, "\r\n\r\n", 4);
}

/* see rumble.h */
void dkim_verify_feed(struct dkim_verify *v, const char *p, size_t n)
{
	while (n && v->state == 0) {
		/* the header byte by byte up to its end: headers are small */
		buf_append(&v->head, p, 1);
		p++;
		n--;
		if (header_complete(&v->head)) {
			v->state = 1;
			header_done(v);
		} else if (v->head.len >= DKIMV_HEADER_MAX) {
			v->state = 2;
		}
	}
	if (v->state == 1 && n && v->nsig) {
		dkim_body_feed(&v->body[0], p, n);
		dkim_body_feed(&v->body[1], p, n);
	}
}

/* ---- checking ---- */

/* The n-th (0 = last) field named name counting up from the bottom. */
static const struct dkim_field *nth_from_bottom(
        const struct dkim_verify *v, const char *name, int nth)
{
	for (int i = v->nf - 1; i >= 0; i--) {
		if (dkim_field_is(&v->f[i], name) && nth-- == 0) {
			return &v->f[i];
		}
	}
	return NULL;
}

static void canon_field(const struct sig *g, const char *p, size_t n, struct buf *out)
{
	if (g->hsimple) {
		buf_append(out, p, n);
		buf_append(out, "\r\n", 2);
	} else {
		dkim_header_relaxed(p, n, out);
	}
}

/* The signature field with b='s value taken out (RFC 6376 3.7). */
static void sig_without_b(const struct dkim_field *f, struct buf *out)
{
	size_t i = 0;
	while (i < f->n) {
		size_t end = i;
		while (end < f->n && f->p[end] != ';') {
			end++;
		}
		size_t k = i;
		while (k < end && strchr(" \t\r\n", f->p[k])) {
			k++;
		}
		/* in the field's text the first tag follows the colon */
		if (i == 0) {
			const char *c = memchr(f->p, ':', end);
			k = c ? (size_t)(c - f->p) + 1 : k;
			while (k < end && strchr(" \t\r\n", f->p[k])) {
				k++;
			}
		}
		size_t eq = k;
		while (eq < end && f->p[eq] != '=') {
			eq++;
		}
		size_t name_end = eq;
		while (name_end > k && strchr(" \t\r\n", f->p[name_end - 1])) {
			name_end--;
		}
		if (eq < end && name_end - k == 1 && f->p[k] == 'b') {
			buf_append(out, f->p + i, eq + 1 - i); /* up to "b=", then the ';' */
		} else {
			buf_append(out, f->p + i, end - i);
		}
		if (end < f->n) {
			buf_append(out, ";", 1);
		}
		i = end + 1;
	}
}

/* The SHA-256 of the signed header data (RFC 6376 3.7). */
static void header_hash(const struct dkim_verify *v, const struct sig *g, uint8_t hash[32])
{
	struct buf data, self;
	char names[DKIMV_H_MAX][80];
	int nn = 0;
	buf_init(&data);
	buf_init(&self);
	for (const char *p = g->h; *p && nn < DKIMV_H_MAX;) {
		size_t k = strcspn(p, ":");
		snprintf(names[nn], sizeof names[nn], "%.*s", (int)(k < 79 ? k : 79), p);
		int used = 0;
		for (int j = 0; j < nn; j++) {
			used += !rl_strcasecmp(names[j], names[nn]);
		}
		const struct dkim_field *f = nth_from_bottom(v, names[nn], used);
		if (f) {
			canon_field(g, f->p, f->n, &data);
		}
		nn++;
		p += k + (p[k] == ':');
	}
	sig_without_b(&g->f, &self);
	canon_field(g, self.data, self.len, &data);
	data.len -= 2; /* without its CRLF */
	crypto_sha256(data.data, data.len, hash);
	buf_free(&data);
	buf_free(&self);
}

/* The key record's p= (decoded) into key; its length, or a negative
 * status with g->r set. */
static long fetch_key(struct sig *g, uint8_t *key, size_t keylen, int *testing)
{
	char name[DNS_NAME_MAX], (*txt)[DNS_TEXT_MAX] = xcalloc(2, DNS_TEXT_MAX);
	char k[16] = "rsa", p[DNS_TEXT_MAX], t[32] = "", h[64] = "", s[64] = "", vv[16] = "";
	long rc = -1;
	int n = snprintf(name, sizeof name, "%s._domainkey.%s", g->s, g->d) < (int)sizeof name
	                ? dns_txt(name, txt, 2)
	                : DNS_NXDOMAIN;
	if (n == DNS_TEMPFAIL) {
		set_result(g, DKIM_TEMPERROR, "key lookup failed");
	} else if (n <= 0) {
		set_result(g, DKIM_PERMERROR, "no key");
	} else {
		const char *r = txt[0];
		size_t rl = strlen(r);
		if (tag_value(r, rl, "p", p, sizeof p) != 1 ||
		        tag_value(r, rl, "k", k, sizeof k) < 0 ||
		        tag_value(r, rl, "t", t, sizeof t) < 0 ||
		        tag_value(r, rl, "h", h, sizeof h) < 0 ||
		        tag_value(r, rl, "s", s, sizeof s) < 0 ||
		        tag_value(r, rl, "v", vv, sizeof vv) < 0 || (*vv && strcmp(vv, "DKIM1"))) {
			set_result(g, DKIM_PERMERROR, "bad key record");
		} else if (!*p) {
			set_result(g, DKIM_FAIL, "key revoked");
		} else if (strcmp(k, !strcmp(g->a, "rsa-sha256") ? "rsa" : "ed25519") != 0 ||
		           (*h && !list_has(h, "sha256")) ||
		           (*s && !list_has(s, "email") && !list_has(s, "*"))) {
			set_result(g, DKIM_PERMERROR, "key does not fit the signature");
		} else if (list_has(t, "s") && strcmp(g->i_dom, g->d) != 0) {
			set_result(g, DKIM_PERMERROR, "i= must be d= (t=s)");
		} else if ((rc = crypto_base64_decode(p, strlen(p), key, keylen)) < 0) {
			set_result(g, DKIM_PERMERROR, "bad key");
		}
		*testing = list_has(t, "y");
	}
	free(txt);
	return rc;
}

/* Checks one parsed signature; the result goes to g->r. */
static void sig_check(struct dkim_verify *v, struct sig *g, int64_t now)
{
	uint8_t bh[32], want[64], hash[32], key[DNS_TEXT_MAX], sig[DKIMV_SIG_MAX];
	int testing = 0;
	if (g->x && g->x < now) {
		set_result(g, DKIM_FAIL, "signature expired");
		return;
	}
	struct dkim_body b = v->body[g->bsimple]; /* a copy: another signature may need it */
	dkim_body_end(&b, bh);
	if (crypto_base64_decode(g->bh, strlen(g->bh), want, sizeof want) != 32 ||
	        memcmp(want, bh, 32) != 0) {
		set_result(g, DKIM_FAIL, "body hash did not verify");
		return;
	}
	long klen = fetch_key(g, key, sizeof key, &testing);
	long slen = crypto_base64_decode(g->b, strlen(g->b), sig, sizeof sig);
	g->r->testing = testing;
	if (klen < 0) {
		return;
	}
	header_hash(v, g, hash);
	int ok;
	if (!strcmp(g->a, "ed25519-sha256")) {
		ok = klen == 32 && slen == 64 ? crypto_ed25519_verify(key, hash, 32, sig) : 0;
	} else {
		ok = slen > 0 ? crypto_rsa_verify_sha256(key, (size_t)klen, sig, (size_t)slen, hash)
		              : 0;
	}
	if (ok == 1) {
		set_result(g, DKIM_PASS, testing ? "test mode" : "");
	} else if (ok == -2) {
		set_result(g, DKIM_PERMERROR, "key shorter than 1024 bits");
	} else if (ok < 0) {
		set_result(g, DKIM_PERMERROR, "bad key");
	} else {
		set_result(g, DKIM_FAIL, "signature did not verify");
	}
}

/* see rumble.h */
int dkim_verify_end(struct dkim_verify *v, struct dkim_result *out, int max)
{
	if (v->state == 0 && v->head.len) {
		/* a message that is all header */
		int crlf = v->head.len >= 2 && !memcmp(v->head.data + v->head.len - 2, "\r\n", 2);
		buf_append(&v->head, "\r\n\r\n", crlf ? 2 : 4);
		v->state = 1;
		header_done(v);
	}
	int64_t now = os_time();
	for (int i = 0; i < v->nsig; i++) {
		sig_check(v, &v->sig[i], now);
	}
	int n = v->nres < max ? v->nres : max;
	memcpy(out, v->res, (size_t)n * sizeof *out);
	return n;
}

/* see rumble.h */
const char *dkim_verify_header(const struct dkim_verify *v, size_t *len)
{
	*len = v->state == 1 ? v->head.len : 0;
	return v->state == 1 ? v->head.data : NULL;
}

/* see rumble.h */
int dkim_verify_fields(const struct dkim_verify *v, const struct dkim_field **f)
{
	*f = v->f;
	return v->state == 1 && v->nf > 0 ? v->nf : 0;
}
