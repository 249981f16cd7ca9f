/*
 * dkim.c - DKIM signatures (RFC 6376) on mail that leaves for other
 * servers: rsa-sha256, relaxed/relaxed, for the domain of the From:
 * field when it is one of ours (else the envelope sender's).
 *
 * Each domain has its own 2048-bit key, made on first use, in
 * <StorageFolder>/dkim/<domain>.<selector>.pem (PKCS#1, readable by
 * openssl); `rumble dkim DOMAIN` prints the DNS record to publish. The
 * signature is made at each delivery attempt (a key read and one RSA
 * signature: about a millisecond) and sent before the message, so the
 * queued copy stays as it was received.
 */
#include <stdio.h>
#include <string.h>

#include "rumble.h"

#define HEADER_MAX (256 * 1024) /* a header section longer than this is not signed */
#define FIELDS_MAX 1000
#define SIG_MAX 512 /* a 4096-bit key's signature */

static os_mutex *key_mu; /* one key made at a time */

/* The fields signed when present, in this order (the last instance). */
static const char *const signed_fields[] = {"from", "to", "cc", "subject", "date",
        "message-id", "reply-to", "in-reply-to", "references", "mime-version", "content-type",
        "content-transfer-encoding"};

/* ---- canonicalization (RFC 6376 3.4.4 and 3.4.2) ---- */

static void emit(struct dkim_body *b, const char *p, size_t n)
{
	crypto_sha256_update(&b->h, p, n);
}

/* see rumble.h */
void dkim_body_init(struct dkim_body *b)
{
	memset(b, 0, sizeof *b);
	crypto_sha256_init(&b->h);
}

/* A byte of a line's content (not the CR LF that ends it). */
static void content(struct dkim_body *b, char c)
{
	if (c == ' ' || c == '\t') {
		b->wsp = 1; /* a run of white space: one space, unless the line ends */
		return;
	}
	for (; b->empty; b->empty--) {
		emit(b, "\r\n", 2); /* empty lines before this one were not the last */
	}
	if (b->wsp) {
		emit(b, " ", 1);
		b->wsp = 0;
	}
	emit(b, &c, 1);
	b->content = 1;
}

static void line_end(struct dkim_body *b)
{
	if (b->content) {
		emit(b, "\r\n", 2);
	} else {
		b->empty++;
	}
	b->content = b->wsp = 0;
}

/* see rumble.h */
void dkim_body_simple(struct dkim_body *b)
{
	b->simple = 1;
}

/* Simple (RFC 6376 3.4.3): the bytes as they are, less the empty lines at
 * the end. Inbound mail is CRLF already (smtp.c). */
static void simple_feed(struct dkim_body *b, char c)
{
	if (!b->content) { /* at the start of a line */
		if (c == '\r' && !b->cr) {
			b->cr = 1;
			return;
		}
		if (c == '\n' && b->cr) {
			b->cr = 0;
			b->empty++;
			return;
		}
		for (; b->empty; b->empty--) {
			emit(b, "\r\n", 2);
		}
		if (b->cr) {
			emit(b, "\r", 1);
			b->cr = 0;
		}
		b->content = 1;
	}
	emit(b, &c, 1);
	b->last = c;
	b->content = c != '\n';
}

static void simple_end(struct dkim_body *b, uint8_t hash[32])
{
	if (b->cr) { /* a lone CR at the end is content */
		for (; b->empty; b->empty--) {
			emit(b, "\r\n", 2);
		}
		emit(b, "\r", 1);
		b->last = '\r';
	}
	if (b->last != '\n') {
		emit(b, "\r\n", 2); /* no body, or no CRLF at its end */
	}
	crypto_sha256_final(&b->h, hash);
}

/* see rumble.h. A lone CR or LF ends a line, as it does in the message
 * that leaves (outbound.c sends each as CRLF). */
void dkim_body_feed(struct dkim_body *b, const char *p, size_t n)
{
	if (b->simple) {
		for (size_t i = 0; i < n; i++) {
			simple_feed(b, p[i]);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (b->cr) {
			b->cr = 0;
			line_end(b);
			if (p[i] == '\n') {
				continue;
			}
		}
		if (p[i] == '\r') {
			b->cr = 1;
		} else if (p[i] == '\n') {
			line_end(b);
		} else {
			content(b, p[i]);
		}
	}
}

/* see rumble.h */
void dkim_body_end(struct dkim_body *b, uint8_t hash[32])
{
	if (b->simple) {
		simple_end(b, hash);
		return;
	}
	if (b->cr) {
		line_end(b);
		b->cr = 0;
	}
	if (b->content) {
		emit(b, "\r\n", 2); /* a last line without CRLF gets one */
	}
	crypto_sha256_final(&b->h, hash);
}

/* see rumble.h */
void dkim_header_relaxed(const char *f, size_t n, struct buf *out)
{
	size_t colon = 0;
	while (colon < n && f[colon] != ':') {
		colon++;
	}
	size_t name_end = colon;
	while (name_end > 0 && (f[name_end - 1] == ' ' || f[name_end - 1] == '\t')) {
		name_end--;
	}
	for (size_t i = 0; i < name_end; i++) {
		char c = f[i] >= 'A' && f[i] <= 'Z' ? (char)(f[i] + 32) : f[i];
		buf_append(out, &c, 1);
	}
	buf_append(out, ":", 1);
	int wsp = 0, started = 0;
	for (size_t i = colon + 1; i < n; i++) {
		char c = f[i];
		if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
			wsp = started; /* unfolded; white space runs become one space */
			continue;
		}
		if (wsp) {
			buf_append(out, " ", 1);
			wsp = 0;
		}
		buf_append(out, &c, 1);
		started = 1;
	}
	buf_append(out, "\r\n", 2);
}

/* ---- the message's header fields ---- */

/* see rumble.h */
int dkim_split_fields(const char *h, size_t len, struct dkim_field *f, int max, size_t *body_off)
{
	int n = 0;
	size_t i = 0;
	while (i + 1 < len) {
		if (h[i] == '\r' && h[i + 1] == '\n') {
			*body_off = i + 2; /* the empty line */
			return n;
		}
		size_t start = i;
		for (;;) {
			const char *nl = memchr(h + i, '\n', len - i);
			if (!nl) {
				return -1;
			}
			i = (size_t)(nl - h) + 1;
			if (i >= len || (h[i] != ' ' && h[i] != '\t')) {
				break; /* no continuation line */
			}
		}
		if (n < max) {
			size_t e = i - start;
			e -= e >= 2 && h[i - 2] == '\r' ? 2 : 1;
			f[n++] = (struct dkim_field){h + start, e};
		}
	}
	return -1;
}

/* see rumble.h */
int dkim_field_is(const struct dkim_field *f, const char *name)
{
	size_t len = strlen(name);
	return f->n > len && rl_strncasecmp(f->p, name, len) == 0 &&
	       (f->p[len] == ':' || f->p[len] == ' ' || f->p[len] == '\t');
}

/* The last field named name, or NULL. */
static const struct dkim_field *find_field(const struct dkim_field *f, int n, const char *name)
{
	for (int i = n - 1; i >= 0; i--) {
		if (dkim_field_is(&f[i], name)) {
			return &f[i];
		}
	}
	return NULL;
}

/* The domain of the address in a From: field, lower case; 0 when found. */
static int from_domain(const struct dkim_field *from, char *out, size_t len)
{
	const char *v = memchr(from->p, ':', from->n), *end = from->p + from->n;
	const char *lt = v ? memchr(v, '<', (size_t)(end - v)) : NULL;
	const char *at = NULL;
	for (const char *p = lt ? lt : v; p && p < end && *p != '>'; p++) {
		at = *p == '@' ? p : at;
	}
	if (!at) {
		return -1;
	}
	size_t n = 0;
	for (const char *p = at + 1; p < end && n + 1 < len && !strchr(" \t\r\n>,;()", *p); p++) {
		out[n++] = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
	}
	out[n] = '\0';
	return n ? 0 : -1;
}

/* ---- keys ---- */

/* see rumble.h */
int dkim_key_path(const char *domain, char *out, size_t len)
{
	return mm_valid_domain(domain) && (size_t)snprintf(out, len, "%s/dkim/%s.%s.pem", conf.storage,
	                                          domain, conf.dkim_selector) < len
	               ? 0
	               : -1;
}

/* The key of domain, made first when there is none. */
static struct crypto_rsa *domain_key(const char *domain, char *err, size_t errlen)
{
	char path[1500], dir[1100];
	if (dkim_key_path(domain, path, sizeof path) != 0) {
		snprintf(err, errlen, "bad domain for a key");
		return NULL;
	}
	os_mutex_lock(rl_mutex_once(&key_mu));
	int rc = 0;
	struct os_stat st;
	if (os_stat(path, &st) != 0) {
		snprintf(dir, sizeof dir, "%s/dkim", conf.storage);
		rc = os_mkdir_p(dir) == 0 ? crypto_rsa_create(path, DKIM_BITS, err, errlen) : -1;
		if (rc == 0) {
			log_info("dkim: made a key for %s (selector %s); publish it: rumble dkim %s",
			        domain, conf.dkim_selector, domain);
		}
	}
	os_mutex_unlock(rl_mutex_once(&key_mu));
	return rc == 0 ? crypto_rsa_load(path, err, errlen) : NULL;
}

/* see rumble.h */
int dkim_public(const char *domain, char *p, size_t len, char *err, size_t errlen)
{
	struct crypto_rsa *k = domain_key(domain, err, errlen);
	int rc = k && crypto_rsa_public_b64(k, p, len) == 0 ? 0 : -1;
	if (k && rc != 0) {
		snprintf(err, errlen, "the key of %s does not fit", domain);
	}
	crypto_rsa_free(k);
	return rc;
}

/* see rumble.h */
int dkim_record(const char *domain, struct buf *out, char *err, size_t errlen)
{
	char p[1200], text[1300];
	if (dkim_public(domain, p, sizeof p, err, errlen) != 0) {
		return -1;
	}
	snprintf(text, sizeof text, "v=DKIM1; k=rsa; p=%s", p);
	buf_printf(out, "%s._domainkey.%s. IN TXT ", conf.dkim_selector, domain);
	dns_put_txt(out, text); /* a 2048-bit key is more than one string's 255 bytes */
	buf_puts(out, "\n");
	return 0;
}

/* ---- signing ---- */

/* 1 when h holds the empty line that ends the header section. */
static int has_end(const struct buf *h)
{
	if (h->len >= 2 && h->data[0] == '\r' && h->data[1] == '\n') {
		return 1;
	}
	for (size_t i = 0; i + 3 < h->len; i++) {
		if (h->data[i] == '\r' && !memcmp(h->data + i, "\r\n\r\n", 4)) {
			return 1;
		}
	}
	return 0;
}

/* The header section of sp (up to HEADER_MAX) into h; -1 on a read error. */
static int read_header(struct spool *sp, struct buf *h)
{
	char chunk[8192];
	long n = 0;
	while (h->len < HEADER_MAX && (n = spool_read(sp, h->len, chunk, sizeof chunk)) > 0) {
		buf_append(h, chunk, (size_t)n);
		if (has_end(h)) {
			return 0;
		}
	}
	return n < 0 ? -1 : 0;
}

static int body_hash(struct spool *sp, uint64_t off, uint8_t hash[32])
{
	struct dkim_body b;
	char chunk[16384];
	long n;
	dkim_body_init(&b);
	while ((n = spool_read(sp, off, chunk, sizeof chunk)) > 0) {
		dkim_body_feed(&b, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	dkim_body_end(&b, hash);
	return n < 0 ? -1 : 0;
}

/* The value of the DKIM-Signature field without b='s value, and the
 * signed data (the fields h= names, relaxed, then this field). */
static void sig_value(struct buf *v, struct buf *data, const char *domain, const struct dkim_field *f,
        int nf, const uint8_t bh[32])
{
	char b64[64];
	crypto_base64_encode(bh, 32, b64);
	buf_printf(v, "v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=%s; t=%lld; h=", domain,
	        conf.dkim_selector, (long long)os_time());
	int first = 1;
	for (size_t i = 0; i < sizeof signed_fields / sizeof signed_fields[0]; i++) {
		const struct dkim_field *x = find_field(f, nf, signed_fields[i]);
		if (x) {
			buf_printf(v, "%s%s", first ? "" : ":", signed_fields[i]);
			dkim_header_relaxed(x->p, x->n, data);
			first = 0;
		}
	}
	buf_printf(v, "; bh=%s; b=", b64);
	struct buf self;
	buf_init(&self);
	buf_printf(&self, "DKIM-Signature: %.*s", (int)v->len, v->data);
	dkim_header_relaxed(self.data, self.len, data);
	data->len -= 2; /* this field is signed without its CRLF */
	buf_free(&self);
}

/* The signing domain: From:'s if ours, else the envelope sender's. */
static int signing_domain(const struct dkim_field *f, int nf, const char *sender, char *out, size_t len)
{
	const struct dkim_field *from = find_field(f, nf, "from");
	if (!from) {
		return -1; /* RFC 6376 5.4: From must be signed */
	}
	if (from_domain(from, out, len) == 0 && mm_domain_exists(out)) {
		return 0;
	}
	const char *at = sender ? strrchr(sender, '@') : NULL;
	if (at && rl_strlcpy(out, at + 1, len) < len) {
		rl_lower(out);
		return mm_domain_exists(out) ? 0 : -1;
	}
	return -1;
}

/* Signs the data with domain's key into the field's text. */
static int sign_into(const char *domain, const struct buf *value, const struct buf *data,
        struct buf *out)
{
	char err[200];
	uint8_t hash[32], sig[SIG_MAX];
	char b64[4 * ((SIG_MAX + 2) / 3) + 1];
	struct crypto_rsa *k = domain_key(domain, err, sizeof err);
	if (!k) {
		log_warnx("dkim: no key for %s: %s", domain, err);
		return -1;
	}
	crypto_sha256(data->data, data->len, hash);
	size_t n = crypto_rsa_sign_sha256(k, hash, sig, sizeof sig);
	crypto_rsa_free(k);
	if (!n) {
		log_warnx("dkim: cannot sign for %s", domain);
		return -1;
	}
	crypto_base64_encode(sig, n, b64);
	/* folded before t=, bh= and b= (relaxed canonicalization undoes it) */
	buf_append(out, "DKIM-Signature: ", 16);
	for (size_t i = 0; i < value->len; i++) {
		const char *rest = value->data + i;
		if (!strncmp(rest, "; t=", 4) || !strncmp(rest, "; bh=", 5) || !strncmp(rest, "; b=", 4)) {
			buf_append(out, ";\r\n\t", 4);
			i++; /* the space */
		} else {
			buf_append(out, rest, 1);
		}
	}
	buf_printf(out, "%s\r\n", b64);
	return 0;
}

/* see rumble.h */
int dkim_sign(struct spool *sp, const char *sender, struct buf *out)
{
	struct buf h, value, data;
	struct dkim_field *f = xcalloc(FIELDS_MAX, sizeof *f);
	char domain[MM_DOMAIN_MAX + 1];
	uint8_t bh[32];
	size_t body_off = 0;
	int rc = 1;
	buf_init(&h);
	buf_init(&value);
	buf_init(&data);
	if (!conf.dkim_sign || read_header(sp, &h) != 0) {
		goto out;
	}
	int nf = h.data ? dkim_split_fields(h.data, h.len, f, FIELDS_MAX, &body_off) : -1;
	if (nf < 0 || signing_domain(f, nf, sender, domain, sizeof domain) != 0) {
		goto out;
	}
	if (body_hash(sp, body_off, bh) != 0) {
		rc = -1;
		goto out;
	}
	sig_value(&value, &data, domain, f, nf, bh);
	rc = sign_into(domain, &value, &data, out);
out:
	buf_free(&h);
	buf_free(&value);
	buf_free(&data);
	free(f);
	return rc;
}
