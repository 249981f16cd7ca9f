/*
 * spf.c - Sender Policy Framework (RFC 7208): may this client send mail
 * for the domain of its envelope sender (or of its HELO name when the
 * sender is null)? check_host() with every mechanism (all, include, a,
 * mx, ptr, ip4, ip6, exists), the redirect modifier, macros, and the
 * limits of section 4.6.4: 10 terms that ask DNS, 2 void lookups.
 *
 * It blocks on DNS: smtp.c runs it on a helper thread (work.c).
 * Departures: "mx" also matches a domain's implicit MX (dns_mx gives the
 * domain itself when it has no MX record but an address); "exp=" is not
 * fetched (the reply says "SPF fail" without the domain's text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define SPF_LOOKUPS_MAX 10
#define SPF_VOIDS_MAX 2
#define SPF_RECORDS_MAX 8
#define SPF_MX_MAX 10
#define SPF_ADDRS_MAX 16
#define MATCH 1
#define NO_MATCH 0

struct spf {
	const char *ip, *helo, *sender; /* sender: never empty here */
	uint8_t addr[16];
	int alen; /* 4 or 16 */
	int lookups, voids;
};

static const char *const names[] = {
        "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"};

/* see rumble.h */
const char *spf_name(enum spf_result r)
{
	return names[r];
}

/* ---- macros (section 7) ---- */

/* The value of macro letter c. */
static void macro_value(const struct spf *c, const char *domain, char l, char *out, size_t len)
{
	const char *at = strrchr(c->sender, '@');
	switch (l) {
	case 's':
		snprintf(out, len, "%s", c->sender);
		break;
	case 'l':
		snprintf(out, len, "%.*s", at ? (int)(at - c->sender) : 0, c->sender);
		break;
	case 'o':
		snprintf(out, len, "%s", at ? at + 1 : c->sender);
		break;
	case 'd':
		snprintf(out, len, "%s", domain);
		break;
	case 'h':
		snprintf(out, len, "%s", c->helo);
		break;
	case 'v':
		snprintf(out, len, "%s", c->alen == 4 ? "in-addr" : "ip6");
		break;
	case 'i':
		out[0] = '\0';
		for (int i = 0; i < c->alen; i++) {
			size_t n = strlen(out);
			if (c->alen == 4) {
				snprintf(out + n, len - n, "%s%u", i ? "." : "", c->addr[i]);
			} else {
				snprintf(out + n, len - n, "%s%x.%x", i ? "." : "", c->addr[i] >> 4,
				        c->addr[i] & 15);
			}
		}
		break;
	default: /* p: not validated here, which the RFC allows as "unknown" */
		snprintf(out, len, "unknown");
	}
}

/* Splits s in place at any byte of delims into at most max parts (empty
 * ones skipped); their count. Reentrant, unlike strtok. */
static int split(char *s, const char *delims, char **parts, int max)
{
	int n = 0;
	while (*s && n < max) {
		s += strspn(s, delims);
		if (!*s) {
			break;
		}
		parts[n++] = s;
		s += strcspn(s, delims);
		if (*s) {
			*s++ = '\0';
		}
	}
	return n;
}

/* value split on delims, the rightmost keep parts, reversed if asked. */
static void transform(char *value, const char *delims, int keep, int rev, char *out, size_t len)
{
	char *parts[128];
	int n = split(value, delims, parts, 128);
	if (rev) {
		for (int i = 0; i < n / 2; i++) {
			char *t = parts[i];
			parts[i] = parts[n - 1 - i];
			parts[n - 1 - i] = t;
		}
	}
	int first = keep > 0 && keep < n ? n - keep : 0;
	out[0] = '\0';
	for (int i = first; i < n; i++) {
		size_t o = strlen(out);
		snprintf(out + o, len - o, "%s%s", i > first ? "." : "", parts[i]);
	}
}

/* Expands the macros of a domain-spec; -1 when malformed or too long. */
static int spf_expand(const struct spf *c, const char *domain, const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		char piece[DNS_NAME_MAX] = "";
		if (*p != '%') {
			piece[0] = *p;
			piece[1] = '\0';
		} else if (p[1] == '%' || p[1] == '_' || p[1] == '-') {
			snprintf(piece, sizeof piece, "%s", p[1] == '%' ? "%" : p[1] == '_' ? " " : "%20");
			p++;
		} else if (p[1] == '{' && strchr(p, '}')) {
			const char *q = p + 2, *end = strchr(p, '}');
			char l = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q), value[DNS_NAME_MAX];
			if (!strchr("slodiphv", l)) {
				return -1;
			}
			int keep = (int)strtol(q + 1, (char **)&q, 10);
			int rev = *q == 'r' || *q == 'R';
			char delims[16] = ".";
			if (end - (q + rev) > 0 && end - (q + rev) < (long)sizeof delims) {
				snprintf(delims, sizeof delims, "%.*s", (int)(end - (q + rev)), q + rev);
			}
			macro_value(c, domain, l, value, sizeof value);
			transform(value, delims, keep, rev, piece, sizeof piece);
			p = end;
		} else {
			return -1; /* a lone '%' */
		}
		size_t n = strlen(piece);
		if (o + n >= len) {
			return -1;
		}
		memcpy(out + o, piece, n + 1);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

/* ---- matching ---- */

/* 1 when a and b share their first bits bits. */
static int same_prefix(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0) {
		return 0;
	}
	return !rest || ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

/* Does one of host's addresses (of the client's family) match under the
 * prefix lengths? MATCH, NO_MATCH or an SPF_ error (negated). */
static int host_matches(struct spf *c, const char *host, int c4, int c6, int count_void)
{
	char addrs[SPF_ADDRS_MAX][DNS_ADDR_MAX];
	int n = dns_addrs(host, addrs, SPF_ADDRS_MAX);
	if (n == DNS_TEMPFAIL) {
		return -SPF_TEMPERROR;
	}
	if (n <= 0 && count_void && ++c->voids > SPF_VOIDS_MAX) {
		return -SPF_PERMERROR;
	}
	for (int i = 0; i < n; i++) {
		uint8_t a[16];
		if (os_ip_parse(addrs[i], a) == c->alen &&
		        same_prefix(a, c->addr, c->alen == 4 ? c4 : c6)) {
			return MATCH;
		}
	}
	return NO_MATCH;
}

/* "name[:domain][/c4][//c6]": the domain (expanded, or current) and the
 * prefix lengths; -1 when malformed. */
static int split_arg(struct spf *c, const char *domain, const char *arg, char *out, size_t len,
        int *c4, int *c6)
{
	char spec[DNS_NAME_MAX];
	*c4 = 32;
	*c6 = 128;
	rl_strlcpy(spec, arg ? arg : "", sizeof spec);
	char *slash = strchr(spec, '/');
	if (slash) {
		*slash = '\0';
		char *v6 = strstr(slash + 1, "/");
		if (slash[1] != '/') {
			*c4 = atoi(slash + 1);
		}
		if (v6) {
			*c6 = atoi(v6 + 1);
		}
		if (*c4 < 0 || *c4 > 32 || *c6 < 0 || *c6 > 128) {
			return -1;
		}
	}
	if (!*spec) {
		rl_strlcpy(out, domain, len);
		return arg && *arg == ':' ? -1 : 0;
	}
	return spf_expand(c, domain, spec, out, len);
}

static int count_lookup(struct spf *c)
{
	return ++c->lookups > SPF_LOOKUPS_MAX ? -SPF_PERMERROR : 0;
}

static enum spf_result check_host(struct spf *c, const char *domain, int depth);

static int mech_include(struct spf *c, const char *domain, const char *arg, int depth)
{
	char target[DNS_NAME_MAX];
	if (!arg || spf_expand(c, domain, arg, target, sizeof target) != 0) {
		return -SPF_PERMERROR;
	}
	enum spf_result r = check_host(c, target, depth + 1);
	return r == SPF_PASS ? MATCH
	       : r == SPF_TEMPERROR ? -SPF_TEMPERROR
	       : r == SPF_PERMERROR || r == SPF_NONE ? -SPF_PERMERROR
	                                             : NO_MATCH;
}

static int mech_mx(struct spf *c, const char *target, int c4, int c6)
{
	struct dns_mx mx[SPF_MX_MAX + 1];
	int n = dns_mx(target, mx, SPF_MX_MAX + 1);
	if (n == DNS_TEMPFAIL) {
		return -SPF_TEMPERROR;
	}
	if (n > SPF_MX_MAX) {
		return -SPF_PERMERROR;
	}
	if (n <= 0 && n != DNS_NOMAIL && ++c->voids > SPF_VOIDS_MAX) {
		return -SPF_PERMERROR;
	}
	for (int i = 0; i < n; i++) {
		int m = host_matches(c, mx[i].host, c4, c6, 0);
		if (m != NO_MATCH) {
			return m;
		}
	}
	return NO_MATCH;
}

static int mech_ptr(struct spf *c, const char *target)
{
	char name[DNS_NAME_MAX];
	if (dns_ptr(c->ip, name, sizeof name) != 1) {
		return NO_MATCH;
	}
	size_t n = strlen(name), t = strlen(target);
	int under = n == t ? rl_strcasecmp(name, target) == 0
	                   : n > t && name[n - t - 1] == '.' && rl_strcasecmp(name + n - t, target) == 0;
	return under ? host_matches(c, name, 32, 128, 0) : NO_MATCH;
}

static int mech_ip(struct spf *c, const char *arg, int v6)
{
	char spec[DNS_ADDR_MAX + 8];
	uint8_t a[16];
	rl_strlcpy(spec, arg ? arg : "", sizeof spec);
	char *slash = strchr(spec, '/');
	int bits = v6 ? 128 : 32;
	if (slash) {
		*slash = '\0';
		bits = atoi(slash + 1);
	}
	int alen = os_ip_parse(spec, a);
	if (alen != (v6 ? 16 : 4) || bits < 0 || bits > alen * 8) {
		return -SPF_PERMERROR;
	}
	return alen == c->alen && same_prefix(a, c->addr, bits) ? MATCH : NO_MATCH;
}

/* One mechanism: MATCH, NO_MATCH, or -SPF_TEMPERROR / -SPF_PERMERROR. */
static int mechanism(struct spf *c, const char *domain, const char *name, const char *arg, int depth)
{
	char target[DNS_NAME_MAX];
	int c4, c6, rc;
	if (!rl_strcasecmp(name, "all")) {
		return arg ? -SPF_PERMERROR : MATCH;
	}
	if (!rl_strcasecmp(name, "ip4") || !rl_strcasecmp(name, "ip6")) {
		return mech_ip(c, arg, name[2] == '6');
	}
	if ((rc = count_lookup(c)) != 0) {
		return rc;
	}
	if (!rl_strcasecmp(name, "include")) {
		return mech_include(c, domain, arg, depth);
	}
	if (split_arg(c, domain, arg, target, sizeof target, &c4, &c6) != 0) {
		return -SPF_PERMERROR;
	}
	if (!rl_strcasecmp(name, "a")) {
		return host_matches(c, target, c4, c6, 1);
	}
	if (!rl_strcasecmp(name, "mx")) {
		return mech_mx(c, target, c4, c6);
	}
	if (!rl_strcasecmp(name, "ptr")) {
		return mech_ptr(c, target);
	}
	if (!rl_strcasecmp(name, "exists")) {
		int saved = c->alen, m;
		uint8_t addr[16];
		memcpy(addr, c->addr, sizeof addr);
		c->alen = 4; /* any A record will do */
		m = host_matches(c, target, 0, 128, 1);
		c->alen = saved;
		memcpy(c->addr, addr, sizeof addr);
		return m;
	}
	return -SPF_PERMERROR;
}

/* The domain's one "v=spf1" record into rec; SPF_NONE when there is none. */
static enum spf_result find_record(struct spf *c, const char *domain, char *rec, size_t len)
{
	char txt[SPF_RECORDS_MAX][DNS_TEXT_MAX];
	int n = dns_txt(domain, txt, SPF_RECORDS_MAX), found = 0;
	(void)c;
	if (n == DNS_TEMPFAIL) {
		return SPF_TEMPERROR;
	}
	for (int i = 0; i < n; i++) {
		if (!rl_strncasecmp(txt[i], "v=spf1", 6) && (txt[i][6] == ' ' || !txt[i][6])) {
			rl_strlcpy(rec, txt[i] + 6, len);
			found++;
		}
	}
	return found == 1 ? SPF_PASS : found ? SPF_PERMERROR : SPF_NONE;
}

static enum spf_result qualified(char q)
{
	return q == '-' ? SPF_FAIL : q == '~' ? SPF_SOFTFAIL : q == '?' ? SPF_NEUTRAL : SPF_PASS;
}

static enum spf_result check_host(struct spf *c, const char *domain, int depth)
{
	char rec[DNS_TEXT_MAX], redirect[DNS_NAME_MAX] = "";
	if (depth > SPF_LOOKUPS_MAX || !mm_valid_domain(domain)) {
		return depth ? SPF_PERMERROR : SPF_NONE;
	}
	enum spf_result r = find_record(c, domain, rec, sizeof rec);
	if (r != SPF_PASS) {
		return r;
	}
	char *terms[64];
	int nt = split(rec, " ", terms, 64);
	for (int i = 0; i < nt; i++) {
		char *t = terms[i];
		char q = strchr("+-~?", *t) ? *t++ : '+';
		char *eq = strchr(t, '='), *colon = strchr(t, ':'), *slash = strchr(t, '/');
		if (eq && (!colon || eq < colon) && (!slash || eq < slash)) {
			if (!rl_strncasecmp(t, "redirect=", 9)) {
				rl_strlcpy(redirect, eq + 1, sizeof redirect);
			}
			continue; /* exp= and unknown modifiers */
		}
		char *arg = colon ? colon + 1 : slash;
		char name[16];
		size_t nl = (size_t)((colon ? colon : slash ? slash : t + strlen(t)) - t);
		if (nl == 0 || nl >= sizeof name) {
			return SPF_PERMERROR;
		}
		memcpy(name, t, nl);
		name[nl] = '\0';
		int m = mechanism(c, domain, name, colon ? arg : slash ? slash : NULL, depth);
		if (m < 0) {
			return (enum spf_result)-m;
		}
		if (m == MATCH) {
			return qualified(q);
		}
	}
	if (*redirect) {
		char target[DNS_NAME_MAX];
		if (count_lookup(c) != 0 || spf_expand(c, domain, redirect, target, sizeof target) != 0) {
			return SPF_PERMERROR;
		}
		r = check_host(c, target, depth + 1);
		return r == SPF_NONE ? SPF_PERMERROR : r;
	}
	return SPF_NEUTRAL;
}

/* see rumble.h */
enum spf_result spf_check(const char *ip, const char *helo, const char *sender)
{
	char who[MM_USER_MAX + MM_DOMAIN_MAX + 16];
	struct spf c = {ip, helo ? helo : "", who, {0}, 0, 0, 0};
	c.alen = os_ip_parse(ip, c.addr);
	if (c.alen != 4 && c.alen != 16) {
		return SPF_NONE;
	}
	/* a null sender is checked as postmaster@ its HELO name (section 2.4) */
	const char *at = sender ? strrchr(sender, '@') : NULL;
	if (!at) {
		snprintf(who, sizeof who, "postmaster@%s", c.helo);
	} else if (at == sender) {
		snprintf(who, sizeof who, "postmaster%s", at);
	} else {
		rl_strlcpy(who, sender, sizeof who);
	}
	return check_host(&c, strrchr(who, '@') + 1, 0);
}

/* see rumble.h */
int spf_expand_for(const char *ip, const char *helo, const char *sender, const char *domain,
        const char *in, char *out, size_t len)
{
	struct spf c = {ip, helo, sender, {0}, 0, 0, 0};
	c.alen = os_ip_parse(ip, c.addr);
	return spf_expand(&c, domain, in, out, len);
}

/* ---- off the worker ---- */

struct spf_work {
	struct work w;
	char ip[64], helo[256], sender[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	enum spf_result r;
	void (*done)(struct session *s, enum spf_result r);
};

static void spf_run(struct work *w)
{
	struct spf_work *x = (struct spf_work *)w;
	x->r = spf_check(x->ip, x->helo, x->sender);
}

static void spf_back(struct session *s, struct work *w)
{
	struct spf_work *x = (struct spf_work *)w;
	if (!session_closing(s)) {
		x->done(s, x->r);
	}
	free(x);
}

/* see rumble.h */
void spf_check_session(struct session *s, const char *helo, const char *sender,
        void (*done)(struct session *s, enum spf_result r))
{
	struct spf_work *x = xcalloc(1, sizeof *x);
	x->w.run = spf_run;
	x->w.back = spf_back;
	x->done = done;
	rl_strlcpy(x->ip, s->peer, sizeof x->ip);
	rl_strlcpy(x->helo, helo, sizeof x->helo);
	rl_strlcpy(x->sender, sender, sizeof x->sender);
	if (work_queue(s, &x->w) != 0) {
		spf_run(&x->w);
		done(s, x->r);
		free(x);
	}
}

/* ---- the policy module (policy.h): SPF at MAIL on the SMTP port, for
 * clients that are not this host and did not log in; a fail is refused
 * with SPFReject, and the result goes into Received-SPF ---- */

static int spf_open(struct policy *p, struct session *s, void **m)
{
	if (strcmp(s->svc->name, "smtp") != 0 || session_is_local(s)) {
		return 0;
	}
	int *r = xmalloc(sizeof *r);
	*r = -1; /* this transaction's result (enum spf_result), -1: none */
	*m = r;
	return 1;
}

static void spf_reset(void *m)
{
	*(int *)m = -1;
}

static void spf_close(struct session *s, void *m)
{
	free(m);
}

/* The check of a waiting MAIL is done: refuse a fail (SPFReject), or
 * let the chain go on. */
static void spf_checked(struct session *s, enum spf_result r)
{
	struct policy_call *c = policy_waiting(s);
	session_resume(s);
	if (!c) {
		return;
	}
	*(int *)c->m = (int)r;
	policy_results(c->p)->spf = spf_name(r);
	log_info("%08x smtp spf=%s from=<%s> client=%s helo=%s", s->id, spf_name(r), c->addr,
	        s->peer, c->helo);
	if (r == SPF_FAIL && conf.spf_reject) {
		os_atomic_add_long(&s->svc->rejected, 1);
		buf_printf(&c->reply,
		        "550 5.7.23 <%s>: SPF: %s is not allowed to send mail for this domain\r\n",
		        c->addr, s->peer);
		policy_resume(s, 550);
	} else {
		policy_resume(s, POLICY_NEXT);
	}
}

static int spf_mail(struct policy_call *c)
{
	if (!conf.spf_check || policy_local(c->p, c->user)) {
		return POLICY_NEXT;
	}
	session_pause(c->s); /* pipelined commands wait for the verdict */
	spf_check_session(c->s, c->helo, c->addr, spf_checked);
	return POLICY_WAIT;
}

/* RFC 7208 9.1: the result for the header section, above Received. */
static int spf_data(struct policy_call *c)
{
	static const char *const why[] = {"no SPF record for", "neither permits nor denies",
	        "designates", "does not designate", "does not designate (softfail)",
	        "could not be checked (temporary error) for", "has a broken SPF record for"};
	int r = *(int *)c->m;
	if (r < 0) {
		return POLICY_NEXT;
	}
	const char *from = c->msg->from, *peer = c->s->peer;
	buf_printf(&c->above,
	        "Received-SPF: %s (%s: domain of %s %s %s as permitted sender)\r\n"
	        "\tclient-ip=%s; envelope-from=<%s>; helo=%s;\r\n",
	        spf_name((enum spf_result)r), conf.server_name, *from ? from : "<>", why[r], peer,
	        peer, from, c->helo);
	return POLICY_NEXT;
}

const struct policy_module spf_policy = {
        .name = "spf",
        .open = spf_open,
        .reset = spf_reset,
        .close = spf_close,
        .step = {[POLICY_MAIL] = spf_mail, [POLICY_DATA] = spf_data},
};
