/*
 * mtasts.c - how much TLS outbound delivery demands of a destination:
 * `TLSPolicy` lines per domain, else the domain's MTA-STS policy
 * (RFC 8461), else OutboundTLS's "may".
 *
 * A policy is found on the outbound thread that delivers (blocking DNS
 * and HTTPS, both bounded in time): the `_mta-sts` TXT record's id, then
 * the policy file from https://mta-sts.<domain>/.well-known/mta-sts.txt,
 * verified against the CA bundle. Policies are kept on disk under
 * StorageFolder/mta-sts for their max_age, so a restart, a DNS failure or
 * an attacker who strips the TXT record leaves the last one in force
 * (RFC 8461 5.1); a TXT id that changed fetches again.
 */
#include "rumble.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STS_FILE_MAX 65536     /* RFC 8461 3.3: 64 KB at most */
#define STS_MAX_AGE 31557600L  /* one year, RFC 8461 3.2 */
#define STS_ID_MAX 33          /* 1*32 alphanumerics */

static const char *mode_names[] = {"none", "may", "encrypt", "verify"};

/* see rumble.h */
const char *tls_mode_name(enum tls_mode m)
{
	return m >= TLS_NONE && m <= TLS_VERIFY ? mode_names[m] : "?";
}

/* see rumble.h */
int tls_mode_parse(const char *word, size_t n)
{
	for (int i = TLS_NONE; i <= TLS_VERIFY; i++) {
		if (strlen(mode_names[i]) == n && rl_strncasecmp(word, mode_names[i], n) == 0) {
			return i;
		}
	}
	return -1;
}

/* Host names compare without case and without a trailing dot. */
static size_t name_len(const char *s, size_t n)
{
	return n && s[n - 1] == '.' ? n - 1 : n;
}

static int same_name(const char *a, size_t an, const char *b, size_t bn)
{
	an = name_len(a, an);
	bn = name_len(b, bn);
	return an == bn && an && rl_strncasecmp(a, b, an) == 0;
}

/* see rumble.h: "example.com:verify .example.net:encrypt *:may" */
int tls_policy_lookup(const char *list, const char *domain, int *star)
{
	size_t dl = name_len(domain, strlen(domain));
	int found = -1;
	*star = -1;
	for (const char *p = list; *p;) {
		p += strspn(p, " ");
		size_t n = strcspn(p, " ");
		const char *colon = memchr(p, ':', n);
		size_t kn = colon ? (size_t)(colon - p) : 0;
		int m = colon ? tls_mode_parse(colon + 1, n - kn - 1) : -1;
		if (kn == 1 && *p == '*') {
			*star = m;
		} else if (kn && found < 0 && same_name(p, kn, domain, dl)) {
			found = m;
		} else if (kn > 1 && found < 0 && *p == '.' && dl > kn - 1 && domain[dl - kn] == '.' &&
		           same_name(p + 1, kn - 1, domain + dl - kn + 1, kn - 1)) {
			found = m;
		}
		p += n;
	}
	return found;
}

/* see rumble.h */
int sts_txt_id(const char *txt, char *id, size_t idlen)
{
	if (strncmp(txt, "v=STSv1", 7) != 0 || (txt[7] && txt[7] != ';' && txt[7] != ' ')) {
		return -1;
	}
	*id = '\0';
	for (const char *p = txt + 7; *p;) {
		p += strspn(p, " \t;");
		size_t n = strcspn(p, ";");
		if (n > 3 && strncmp(p, "id=", 3) == 0) {
			size_t k = n - 3;
			while (k && (p[3 + k - 1] == ' ' || p[3 + k - 1] == '\t')) {
				k--;
			}
			if (k == 0 || k >= STS_ID_MAX || k >= idlen) {
				return -1;
			}
			for (size_t i = 0; i < k; i++) {
				char c = p[3 + i];
				if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
					return -1;
				}
			}
			memcpy(id, p + 3, k);
			id[k] = '\0';
		}
		p += n;
	}
	return *id ? 0 : -1;
}

/* One "key: value" line of a policy file into p. */
static const char *sts_field(struct sts_policy *p, const char *k, size_t kn, const char *v, size_t vn)
{
	if (kn == 7 && memcmp(k, "version", 7) == 0) {
		return vn == 5 && memcmp(v, "STSv1", 5) == 0 ? NULL : "version is not STSv1";
	}
	if (kn == 4 && memcmp(k, "mode", 4) == 0) {
		p->mode = vn == 7 && memcmp(v, "enforce", 7) == 0   ? STS_ENFORCE
		        : vn == 7 && memcmp(v, "testing", 7) == 0 ? STS_TESTING
		        : vn == 4 && memcmp(v, "none", 4) == 0    ? STS_OFF
		                                                  : -1;
		return (int)p->mode < 0 ? "unknown mode" : NULL;
	}
	if (kn == 7 && memcmp(k, "max_age", 7) == 0) {
		long age = 0;
		for (size_t i = 0; i < vn && i < 10; i++) {
			if (v[i] < '0' || v[i] > '9') {
				return "bad max_age";
			}
			age = age * 10 + (v[i] - '0');
		}
		p->max_age = vn == 0 || vn > 10 || age > STS_MAX_AGE ? STS_MAX_AGE : age;
		return vn == 0 ? "bad max_age" : NULL;
	}
	if (kn == 2 && memcmp(k, "mx", 2) == 0) {
		if (vn == 0 || vn >= sizeof p->mx[0]) {
			return "bad mx";
		}
		if (p->nmx < STS_MX_MAX) {
			memcpy(p->mx[p->nmx], v, vn);
			p->mx[p->nmx++][vn] = '\0';
		}
		return NULL;
	}
	return NULL; /* unknown keys are ignored (RFC 8461 3.2) */
}

/* see rumble.h */
int sts_parse(const char *text, size_t len, struct sts_policy *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof *p);
	p->mode = -1;
	p->max_age = -1;
	int version = 0;
	for (size_t at = 0; at < len;) {
		const char *line = text + at;
		const char *nl = memchr(line, '\n', len - at);
		size_t n = nl ? (size_t)(nl - line) : len - at;
		at += n + (nl != NULL);
		if (n && line[n - 1] == '\r') {
			n--;
		}
		const char *colon = memchr(line, ':', n);
		if (!colon) {
			continue;
		}
		size_t kn = (size_t)(colon - line);
		const char *v = colon + 1;
		size_t vn = n - kn - 1;
		while (vn && (*v == ' ' || *v == '\t')) {
			v++, vn--;
		}
		while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
			vn--;
		}
		const char *why = sts_field(p, line, kn, v, vn);
		if (why) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
		version |= kn == 7 && memcmp(line, "version", 7) == 0;
	}
	const char *why = !version          ? "no version"
	                : (int)p->mode < 0  ? "no mode"
	                : p->max_age < 0    ? "no max_age"
	                : p->nmx == 0 && p->mode != STS_OFF ? "no mx"
	                                                    : NULL;
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

/* see rumble.h: "mx.example.com" exactly, "*.example.com" one label more */
int sts_mx_ok(const struct sts_policy *p, const char *host)
{
	size_t hl = name_len(host, strlen(host));
	for (int i = 0; i < p->nmx; i++) {
		const char *m = p->mx[i];
		size_t ml = name_len(m, strlen(m));
		if (ml > 2 && m[0] == '*' && m[1] == '.') {
			const char *dot = memchr(host, '.', hl);
			if (dot && dot != host && same_name(dot + 1, hl - (size_t)(dot + 1 - host), m + 2, ml - 2)) {
				return 1;
			}
		} else if (same_name(m, ml, host, hl)) {
			return 1;
		}
	}
	return 0;
}

/* ---- the policy of a destination, on an outbound thread ---- */

/* StorageFolder/mta-sts/<domain>; -1 for a name not fit for a file. */
static int cache_path(const char *domain, char *path, size_t len)
{
	size_t n = strlen(domain);
	if (n == 0 || n > 253 || domain[0] == '.' || strspn(domain,
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n) {
		return -1;
	}
	int w = snprintf(path, len, "%s/mta-sts/%s", conf.storage, domain);
	for (char *c = path + w - (int)n; *c; c++) {
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	}
	return w > 0 && (size_t)w < len ? 0 : -1;
}

/* A kept policy: 0 and p, id, fetched when there is one that parses. */
static int cache_load(const char *path, struct sts_policy *p, char *id, int64_t *fetched)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		return -1;
	}
	char *text = xmalloc(STS_FILE_MAX + 128);
	size_t n = fread(text, 1, STS_FILE_MAX + 127, f);
	fclose(f);
	text[n] = '\0';
	long long t = 0;
	char err[64], *body = strstr(text, "\n\n");
	int rc = body && sscanf(text, "id %32s fetched %lld", id, &t) == 2 &&
	                 sts_parse(body + 2, n - (size_t)(body + 2 - text), p, err, sizeof err) == 0
	        ? 0
	        : -1;
	*fetched = t;
	free(text);
	return rc;
}

static void cache_save(const char *path, const char *id, const char *text, size_t n)
{
	char dir[1100];
	snprintf(dir, sizeof dir, "%s/mta-sts", conf.storage);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "id %s fetched %lld\n\n", id, (long long)os_time());
	buf_append(&b, text, n);
	if (os_mkdir(dir) != 0 || os_write_file_atomic(path, b.data, b.len) != 0) {
		log_warnx("MTA-STS: cannot keep the policy in %s: %s", path, os_strerror());
	}
	buf_free(&b);
}

/* The policy file of domain over HTTPS, verified; 0 and p when it parses. */
static int sts_fetch(const char *domain, struct sts_policy *p, struct buf *text, char *why,
        size_t whylen)
{
	char url[300], err[200];
	snprintf(url, sizeof url, "https://mta-sts.%s:%d/.well-known/mta-sts.txt", domain,
	        conf.mta_sts_port);
	const struct tls_anchors *ta = tls_anchors_system(conf.tls_ca_file, err, sizeof err);
	if (!ta) {
		snprintf(why, whylen, "no CA certificates to verify with: %.200s", err);
		return -1;
	}
	struct httpc_req rq = {.method = "GET", .url = url, .timeout_ms = 10000,
	        .body_max = STS_FILE_MAX, .anchors = ta};
	struct httpc_resp r;
	int rc = httpc_request(&rq, &r);
	if (rc != 0) {
		snprintf(why, whylen, "%.300s: %.200s", url, r.err);
	} else if (r.status != 200) {
		snprintf(why, whylen, "%.300s: HTTP status %d", url, r.status);
		rc = -1;
	} else if ((rc = sts_parse(r.body.data, r.body.len, p, err, sizeof err)) != 0) {
		snprintf(why, whylen, "%.300s: %.200s", url, err);
	} else {
		buf_append(text, r.body.data, r.body.len);
	}
	httpc_resp_free(&r);
	return rc;
}

/* The `_mta-sts` TXT record's id: 1 found, 0 none, -1 DNS failure. */
static int sts_lookup_id(const char *domain, char *id)
{
	char name[300], txt[8][DNS_TEXT_MAX];
	snprintf(name, sizeof name, "_mta-sts.%s", domain);
	int n = dns_txt(name, txt, 8), found = 0;
	if (n < 0) {
		return n == DNS_NXDOMAIN ? 0 : -1;
	}
	for (int i = 0; i < n; i++) {
		if (strncmp(txt[i], "v=STSv1", 7) == 0) {
			found = sts_txt_id(txt[i], id, STS_ID_MAX) == 0 && !found ? 1 : -2;
		}
	}
	return found == -2 ? 0 : found; /* two records: none (RFC 8461 3.1) */
}

/* The MTA-STS policy in force for domain: 0 and p when there is one. */
static int sts_for(const char *domain, struct sts_policy *p)
{
	char path[1100], id[STS_ID_MAX] = "", kept[STS_ID_MAX] = "", why[600];
	int64_t fetched = 0;
	if (cache_path(domain, path, sizeof path) != 0) {
		return -1;
	}
	int have = cache_load(path, p, kept, &fetched) == 0 && fetched + p->max_age > os_time();
	int found = sts_lookup_id(domain, id);
	if (found <= 0 || (have && strcmp(id, kept) == 0)) {
		return have ? 0 : -1; /* no record or DNS down: the kept one stands */
	}
	struct sts_policy fresh;
	struct buf text;
	buf_init(&text);
	int rc = sts_fetch(domain, &fresh, &text, why, sizeof why);
	if (rc == 0) {
		log_info("MTA-STS: %s: policy %s, mode %s, %d mx, max_age %ld", domain, id,
		        fresh.mode == STS_ENFORCE   ? "enforce"
		        : fresh.mode == STS_TESTING ? "testing"
		                                    : "none",
		        fresh.nmx, fresh.max_age);
		cache_save(path, id, text.data, text.len);
		*p = fresh;
	} else {
		log_warnx("MTA-STS: %s: %s%s", domain, why, have ? "; the kept policy stands" : "");
	}
	buf_free(&text);
	return rc == 0 || have ? 0 : -1;
}

/* see rumble.h */
void tls_want_for(const char *domain, int mta_sts, struct tls_want *w)
{
	memset(w, 0, sizeof *w);
	int star, m = tls_policy_lookup(conf.tls_policy, domain, &star);
	if (m >= 0) {
		w->mode = (enum tls_mode)m;
		snprintf(w->source, sizeof w->source, "TLSPolicy");
		return;
	}
	w->mode = star >= 0 ? (enum tls_mode)star : conf.outbound_tls ? TLS_MAY : TLS_NONE;
	snprintf(w->source, sizeof w->source, star >= 0 ? "TLSPolicy" : "OutboundTLS");
	if (mta_sts && conf.mta_sts && sts_for(domain, &w->sts) == 0 && w->sts.mode != STS_OFF) {
		w->has_sts = 1;
		if (w->sts.mode == STS_ENFORCE) {
			w->mode = TLS_VERIFY;
			snprintf(w->source, sizeof w->source, "MTA-STS");
		}
	}
}

