/*
 * dmarc.c - DMARC (RFC 7489) for inbound mail and the
 * Authentication-Results field (RFC 8601) that reports it with SPF and
 * DKIM; the organizational domain comes from the public suffix list,
 * compiled in at build time (tools/pslgen.c makes the table).
 *
 * smtp.c feeds the message to an authres as it arrives (dkim_verify.c
 * hashes the body, keeps the header), then at the end of DATA
 * authres_check_session runs on a helper thread: key and policy lookups,
 * then the message's spool is written again with our field at the top
 * and without any Authentication-Results field that claims our name
 * (ServerName), and the verdict goes back to smtp.c: deliver, deliver to
 * Junk, or refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "psl_table.h"

#define AUTHORS_MAX 4 /* From addresses looked at */

/* ---- the public suffix list ---- */

/* Labels of s (reversed, "uk.co.example") matching a rule r (reversed,
 * '*' a whole label): r's label count when each of them matches, else 0. */
static int rule_match(const char *r, const char *s)
{
	int labels = 1;
	for (;;) {
		size_t rl = strcspn(r, "."), sl = strcspn(s, ".");
		if (!sl || (!(rl == 1 && *r == '*') && (rl != sl || memcmp(r, s, rl) != 0))) {
			return 0;
		}
		if (!r[rl]) {
			return labels;
		}
		if (!s[sl]) {
			return 0;
		}
		r += rl + 1;
		s += sl + 1;
		labels++;
	}
}

/* Labels in the public suffix of the reversed name rev (RFC 7489 3.2,
 * publicsuffix.org's algorithm: exceptions first, else the longest rule,
 * else "*"). */
static int suffix_labels(const char *rev)
{
	for (int i = 0; psl_except[i]; i++) {
		int n = rule_match(psl_except[i], rev);
		if (n) {
			return n - 1;
		}
	}
	char rule[256];
	size_t len = 0;
	int best = 1, sym = 0, k = 0;
	unsigned w = 0;
	for (int i = 0; i < PSL_RULES; i++) {
		int first = 1;
		for (;;) {
			if (k == 0) {
				w = psl_packed[sym / 3];
			}
			int c = (int)(w % 40);
			w /= 40;
			k = (k + 1) % 3;
			sym++;
			if (first) {
				len = (size_t)c; /* shared with the rule before */
				first = 0;
			} else if (c == 0) {
				break;
			} else if (len + 1 < sizeof rule) {
				rule[len++] = PSL_ALPHABET[c - 1];
			}
		}
		rule[len] = '\0';
		int n = rule_match(rule, rev);
		best = n > best ? n : best;
	}
	return best;
}

/* see rumble.h */
int dmarc_org_domain(const char *domain, char *out, size_t len)
{
	char d[DNS_NAME_MAX], rev[DNS_NAME_MAX];
	size_t n = rl_strlcpy(d, domain, sizeof d);
	if (n >= sizeof d || !n) {
		return -1;
	}
	if (d[n - 1] == '.') {
		d[--n] = '\0';
	}
	if (!n || d[0] == '.' || d[n - 1] == '.' || strstr(d, "..")) {
		return -1; /* an empty label */
	}
	rl_lower(d);
	/* the labels turned around */
	size_t o = 0;
	int labels = 0;
	for (size_t end = n; end > 0;) {
		size_t start = end;
		while (start && d[start - 1] != '.') {
			start--;
		}
		if (o) {
			rev[o++] = '.';
		}
		memcpy(rev + o, d + start, end - start);
		o += end - start;
		labels++;
		end = start ? start - 1 : 0;
	}
	rev[o] = '\0';
	int keep = suffix_labels(rev) + 1;
	const char *p = d + n;
	for (int i = 0; i < keep && i < labels && p > d; i++) {
		do {
			p--;
		} while (p > d && p[-1] != '.');
	}
	return rl_strlcpy(out, keep > labels ? d : p, len) < len ? 0 : -1;
}

/* ---- records ---- */

static int policy_value(const char *v)
{
	return !strcmp(v, "none")         ? DMARC_NONE
	       : !strcmp(v, "quarantine") ? DMARC_QUARANTINE
	       : !strcmp(v, "reject")     ? DMARC_REJECT
	                                  : -1;
}

/* see rumble.h */
int dmarc_parse(const char *text, struct dmarc_record *r)
{
	char buf[DNS_TEXT_MAX];
	memset(r, 0, sizeof *r);
	r->p = r->sp = -1;
	r->pct = 100;
	rl_strlcpy(buf, text, sizeof buf);
	int first = 1;
	for (char *t = buf, *next; t; t = next) {
		next = strchr(t, ';');
		if (next) {
			*next++ = '\0';
		}
		char *eq = strchr(t, '=');
		if (!eq) {
			continue; /* an empty part, as after a last ';' */
		}
		*eq = '\0';
		char *k = t + strspn(t, " \t"), *v = eq + 1 + strspn(eq + 1, " \t");
		k[strcspn(k, " \t")] = '\0';
		v[strcspn(v, " \t")] = '\0';
		if (first && (strcmp(k, "v") || strcmp(v, "DMARC1"))) {
			return -1; /* v=DMARC1 comes first (RFC 7489 6.4) */
		}
		first = 0;
		rl_lower(v);
		if (!strcmp(k, "p")) {
			r->p = policy_value(v);
		} else if (!strcmp(k, "sp")) {
			r->sp = policy_value(v);
		} else if (!strcmp(k, "pct")) {
			r->pct = atoi(v) < 0 ? 0 : atoi(v) > 100 ? 100 : atoi(v);
		} else if (!strcmp(k, "adkim")) {
			r->adkim_strict = !strcmp(v, "s");
		} else if (!strcmp(k, "aspf")) {
			r->aspf_strict = !strcmp(v, "s");
		}
	}
	if (first || r->p < 0) {
		return -1; /* 6.6.3: a record without a valid p= is none */
	}
	if (r->sp < 0) {
		r->sp = r->p;
	}
	return 0;
}

/* The policy record for domain (TXT _dmarc.domain): 0 found, 1 none, -1
 * a DNS failure. */
static int fetch_record(const char *domain, struct dmarc_record *r)
{
	char name[DNS_NAME_MAX], (*txt)[DNS_TEXT_MAX] = xcalloc(4, DNS_TEXT_MAX);
	int found = 0, rc = 1;
	if (snprintf(name, sizeof name, "_dmarc.%s", domain) >= (int)sizeof name) {
		free(txt);
		return 1;
	}
	int n = dns_txt(name, txt, 4);
	for (int i = 0; i < n; i++) {
		struct dmarc_record x;
		if (dmarc_parse(txt[i], &x) == 0) {
			*r = x;
			found++;
		}
	}
	free(txt);
	if (n == DNS_TEMPFAIL) {
		rc = -1;
	} else if (found == 1) {
		rc = 0; /* more than one record is none (6.6.3) */
	}
	return rc;
}

/* 1 when a and b are aligned: the same, or (relaxed) the same
 * organizational domain. */
static int aligned(const char *a, const char *b, int strict)
{
	char oa[DNS_NAME_MAX], ob[DNS_NAME_MAX];
	if (!rl_strcasecmp(a, b)) {
		return 1;
	}
	return !strict && dmarc_org_domain(a, oa, sizeof oa) == 0 &&
	       dmarc_org_domain(b, ob, sizeof ob) == 0 && !strcmp(oa, ob);
}

/* 0 to 99, for pct= */
static int random_pct(void)
{
	uint32_t x = 0;
	os_random(&x, sizeof x);
	return (int)(x % 100);
}

/* see rumble.h */
void dmarc_check(struct dmarc_result *out, const char *from_domain, const struct dkim_result *dk,
        int ndk, int spf_pass, const char *spf_domain)
{
	struct dmarc_record r;
	char org[DNS_NAME_MAX];
	int sub = 0;
	memset(out, 0, sizeof *out);
	rl_strlcpy(out->domain, from_domain, sizeof out->domain);
	int rc = fetch_record(from_domain, &r);
	if (rc == 1 && dmarc_org_domain(from_domain, org, sizeof org) == 0 &&
	        strcmp(org, from_domain)) {
		rc = fetch_record(org, &r); /* 6.6.3: the organizational domain's */
		sub = 1;
	}
	if (rc != 0) {
		out->status = rc < 0 ? DMARC_TEMPERROR : DMARC_ABSENT;
		return;
	}
	int pass = spf_pass && spf_domain && aligned(spf_domain, from_domain, r.aspf_strict);
	for (int i = 0; i < ndk && !pass; i++) {
		pass = dk[i].status == DKIM_PASS && !dk[i].testing &&
		       aligned(dk[i].d, from_domain, r.adkim_strict);
	}
	out->status = pass ? DMARC_PASS : DMARC_FAILED;
	out->policy = sub ? r.sp : r.p;
	if (!pass && out->policy > DMARC_NONE && random_pct() >= r.pct) {
		out->policy--; /* 6.6.4: outside pct, the next policy down */
		out->sampled_out = 1;
	}
}

/* ---- From: the author domains ---- */

/* The domains of the From field's addresses (lower case, at most max);
 * their count. */
static int from_domains(const struct dkim_field *f, char (*out)[MM_DOMAIN_MAX + 1], int max)
{
	const char *p = memchr(f->p, ':', f->n), *end = f->p + f->n;
	int n = 0, quoted = 0, comment = 0;
	const char *at = NULL;
	for (p = p ? p + 1 : end; p <= end; p++) {
		char c = p < end ? *p : ',';
		if (quoted) {
			quoted = c != '"';
		} else if (comment) {
			comment -= c == ')';
		} else if (c == '"' || c == '(') {
			quoted = c == '"';
			comment += c == '(';
		} else if (c == '@') {
			at = p;
		} else if ((c == ',' || c == '>') && at) {
			size_t k = 0;
			const char *q = at + 1;
			while (q < end && !strchr(" \t\r\n>,;()", *q) && k < MM_DOMAIN_MAX) {
				q++, k++;
			}
			if (n < max && k) {
				snprintf(out[n], MM_DOMAIN_MAX + 1, "%.*s", (int)k, at + 1);
				rl_lower(out[n++]);
			}
			at = NULL;
		}
	}
	return n;
}

/* The distinct author domains of the header fields (at most
 * AUTHORS_MAX) into d: their count, 0 when there is no From, -1 when
 * there are several From fields (RFC 7489 6.6.1: typically refused). */
static int author_domains(const struct dkim_field *f, int nf, char (*d)[MM_DOMAIN_MAX + 1])
{
	char all[AUTHORS_MAX][MM_DOMAIN_MAX + 1];
	int n = 0, fields = 0, distinct = 0;
	for (int i = 0; i < nf; i++) {
		if (dkim_field_is(&f[i], "from")) {
			fields++;
			n += from_domains(&f[i], all + n, AUTHORS_MAX - n);
		}
	}
	if (fields > 1) {
		return -1;
	}
	for (int i = 0; i < n; i++) {
		int seen = 0;
		for (int j = 0; j < distinct; j++) {
			seen |= !strcmp(d[j], all[i]);
		}
		if (!seen) {
			memcpy(d[distinct++], all[i], sizeof all[i]);
		}
	}
	return distinct;
}

/* ---- Authentication-Results (RFC 8601) ---- */

enum authres_action { AUTHRES_DELIVER, AUTHRES_JUNK, AUTHRES_REJECT };

/* One message's checks: fed while it arrives, checked at its end. */
struct authres {
	struct dkim_verify *v;
	uint64_t fed; /* bytes of the message spooled (after what Rumble put before it) */
	/* the configuration as it was at DATA (a reload may change conf) */
	int dkim_on, dmarc_on, dmarc_reject;
	char authserv[256];
	/* for the helper thread, which touches nothing else */
	struct work w;
	int spf; /* enum spf_result, -1: not checked */
	char spf_domain[MM_DOMAIN_MAX + 1];
	int busy;   /* on a helper thread */
	int orphan; /* the session ended meanwhile: check_back frees it */
	/* results */
	struct dkim_result dk[DKIM_VERIFY_MAX];
	int ndk;
	struct dmarc_result dm;
	enum authres_action action;
	struct buf field; /* our Authentication-Results field, CRLF; empty before the check */
};

static struct authres *authres_new(void)
{
	struct authres *a = xcalloc(1, sizeof *a);
	a->dkim_on = conf.dkim_verify;
	a->dmarc_on = conf.dmarc;
	a->dmarc_reject = conf.dmarc_reject;
	rl_strlcpy(a->authserv, conf.server_name, sizeof a->authserv);
	a->v = dkim_verify_new(a->dkim_on);
	buf_init(&a->field);
	return a;
}

static void authres_free(struct authres *a)
{
	if (a) {
		dkim_verify_free(a->v);
		buf_free(&a->field);
		free(a);
	}
}

static void authres_feed(struct authres *a, const char *p, size_t n)
{
	a->fed += n;
	dkim_verify_feed(a->v, p, n);
}

static const char *const dmarc_names[] = {"none", "pass", "fail", "temperror", "permerror"};

static void make_field(struct authres *a)
{
	struct buf *b = &a->field;
	buf_printf(b, "Authentication-Results: %s", a->authserv);
	if (a->spf >= 0) {
		buf_printf(b, ";\r\n\tspf=%s smtp.mailfrom=%s", spf_name((enum spf_result)a->spf),
		        a->spf_domain);
	}
	if (!a->ndk) {
		buf_printf(b, ";\r\n\tdkim=none");
	}
	for (int i = 0; i < a->ndk; i++) {
		const struct dkim_result *r = &a->dk[i];
		buf_printf(b, ";\r\n\tdkim=%s", dkim_result_name(r->status));
		if (*r->why) {
			buf_printf(b, " (%s)", r->why);
		}
		if (*r->d) {
			buf_printf(b, " header.d=%s header.s=%s header.a=%s header.b=%s", r->d,
			        r->s, r->a, r->b);
		}
	}
	if (a->dm.status != DMARC_ABSENT || *a->dm.domain) {
		static const char *const pol[] = {"none", "quarantine", "reject"};
		buf_printf(b, ";\r\n\tdmarc=%s", dmarc_names[a->dm.status]);
		if (a->dm.status == DMARC_PASS || a->dm.status == DMARC_FAILED) {
			buf_printf(
			        b, " (p=%s%s)", pol[a->dm.policy], a->dm.sampled_out ? " pct" : "");
		}
		if (*a->dm.domain) {
			buf_printf(b, " header.from=%s", a->dm.domain);
		}
	}
	buf_puts(b, "\r\n");
}

/* 1 when f is an Authentication-Results field with our authserv-id. */
static int claims_us(const struct dkim_field *f, const char *us)
{
	if (!dkim_field_is(f, "authentication-results")) {
		return 0;
	}
	const char *p = memchr(f->p, ':', f->n), *end = f->p + f->n;
	while (++p < end && strchr(" \t\r\n", *p)) {
	}
	size_t n = 0;
	while (p + n < end && !strchr(" \t\r\n;", p[n])) {
		n++;
	}
	return n == strlen(us) && !rl_strncasecmp(p, us, n);
}

/* The spool written again (on the worker: the session owns it): our
 * field, what came before the message (our Received), the message's
 * header less fields claiming us, its body. */
static int rewrite(struct authres *a, struct spool *sp)
{
	struct spool ns;
	const struct dkim_field *f;
	size_t hlen;
	const char *head = dkim_verify_header(a->v, &hlen);
	int nf = dkim_verify_fields(a->v, &f);
	uint64_t start = sp->len - a->fed, off = 0;
	char chunk[16384];
	long n = 0;
	spool_init(&ns, sp->tmpdir);
	spool_write(&ns, a->field.data, a->field.len);
	uint64_t copy_to = head && nf ? start : sp->len;
	while (off < copy_to && (n = spool_read(sp, off, chunk,
	                                 copy_to - off < sizeof chunk ? (size_t)(copy_to - off)
	                                                              : sizeof chunk)) > 0) {
		spool_write(&ns, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	int bad = n < 0;
	if (head && nf && !bad) {
		for (int i = 0; i < nf; i++) {
			if (!claims_us(&f[i], a->authserv)) {
				spool_write(&ns, f[i].p, f[i].n);
				spool_write(&ns, "\r\n", 2);
			}
		}
		off = start + hlen - 2; /* the empty line and the body */
		while ((n = spool_read(sp, off, chunk, sizeof chunk)) > 0) {
			spool_write(&ns, chunk, (size_t)n);
			off += (uint64_t)n;
		}
		bad = n < 0;
	}
	if (bad || ns.failed) {
		spool_free(&ns);
		return -1;
	}
	spool_free(sp);
	*sp = ns;
	return 0;
}

/* How bad a result is: a failure under a stricter policy is worse. */
static int severity(const struct dmarc_result *r)
{
	return r->status == DMARC_FAILED ? 2 + r->policy : r->status == DMARC_PASS ? 0 : 1;
}

/* DMARC for each author domain; the strictest result is kept (RFC 7489
 * 6.6.1 for a From with several domains). */
static void dmarc_all(struct authres *a, char (*d)[MM_DOMAIN_MAX + 1], int n)
{
	for (int i = 0; i < n; i++) {
		struct dmarc_result r;
		dmarc_check(&r, d[i], a->dk, a->ndk, a->spf == SPF_PASS, a->spf_domain);
		if (i == 0 || severity(&r) > severity(&a->dm)) {
			a->dm = r;
		}
	}
	if (a->dm.status == DMARC_FAILED && a->dm.policy == DMARC_REJECT) {
		a->action = a->dmarc_reject ? AUTHRES_REJECT : AUTHRES_JUNK;
	} else if (a->dm.status == DMARC_FAILED && a->dm.policy == DMARC_QUARANTINE) {
		a->action = AUTHRES_JUNK;
	}
}

/* The checks, on a helper thread: the authres's own data only. */
static void check_run(struct work *w)
{
	struct authres *a = (struct authres *)((char *)w - offsetof(struct authres, w));
	const struct dkim_field *f;
	char authors[AUTHORS_MAX][MM_DOMAIN_MAX + 1];
	a->ndk = dkim_verify_end(a->v, a->dk, DKIM_VERIFY_MAX); /* 0 with DKIMVerify off */
	int nf = dkim_verify_fields(a->v, &f);
	int n = nf ? author_domains(f, nf, authors) : 0;
	a->action = AUTHRES_DELIVER;
	if (a->dmarc_on && n > 0) {
		dmarc_all(a, authors, n);
	} else if (a->dmarc_on && n < 0) {
		a->dm.status = DMARC_PERMERROR; /* several From fields: refused */
		a->action = AUTHRES_REJECT;
	}
	make_field(a);
}

/* ---- the policy module (policy.h): on the SMTP port, for clients that
 * are not this host and did not log in, for messages with a local
 * recipient; fed at DATA, checked at EOM ---- */

struct ar_mod {
	struct authres *a; /* this or the last message's, kept for scripts */
};

static const char *const actions[] = {"deliver", "junk", "reject"};

/* The results for later modules and scripts (policy_results). */
static void publish(struct policy *p, struct authres *a)
{
	struct policy_results *r = policy_results(p);
	enum dkim_status best = DKIM_NONE;
	for (int i = 0; i < a->ndk; i++) { /* pass beats fail beats the rest */
		enum dkim_status st = a->dk[i].status;
		if (st == DKIM_PASS || (st == DKIM_FAIL && best != DKIM_PASS) ||
		        best == DKIM_NONE) {
			best = st;
		}
	}
	r->spf = r->spf ? r->spf : "none"; /* as DoMAILFROM gets it when SPFCheck is off */
	r->dkim = dkim_result_name(best);
	r->dmarc = dmarc_names[a->dm.status];
	r->authres = a->field.data;
}

/* The check is back on the worker: refuse, or write the field in, pick
 * the folder and let the chain go on. */
static void check_back(struct session *s, struct work *w)
{
	struct authres *a = (struct authres *)((char *)w - offsetof(struct authres, w));
	struct policy_call *c = a->orphan ? NULL : policy_waiting(s);
	a->busy = 0;
	if (a->orphan || !c) {
		if (a->orphan) {
			authres_free(a);
		}
		return;
	}
	struct queue_msg *m = c->msg;
	publish(c->p, a);
	log_info("%08x smtp auth spf=%s dkim=%s dmarc=%s action=%s", s->id,
	        a->spf >= 0 ? spf_name((enum spf_result)a->spf) : "none",
	        policy_results(c->p)->dkim, policy_results(c->p)->dmarc, actions[a->action]);
	if (a->action == AUTHRES_REJECT) {
		os_atomic_add_long(&s->svc->rejected, 1);
		buf_puts(&c->reply, "550 5.7.1 Rejected by the From domain's DMARC policy\r\n");
		policy_resume(s, 550);
		return;
	}
	if (rewrite(a, &m->body) != 0) {
		m->body.failed = 1; /* smtp.c answers 451 */
	}
	if (a->action == AUTHRES_JUNK && conf.special_use[SPECIAL_JUNK][0] && !m->folder) {
		m->folder = xstrdup(conf.special_use[SPECIAL_JUNK]);
	}
	policy_resume(s, POLICY_NEXT);
}

static int ar_open(struct policy *p, struct session *s, void **m)
{
	if ((!conf.dkim_verify && !conf.dmarc) || strcmp(s->svc->name, "smtp") != 0 ||
	        session_is_local(s)) {
		return 0;
	}
	*m = xcalloc(1, sizeof(struct ar_mod));
	return 1;
}

static void ar_close(struct session *s, void *m)
{
	struct ar_mod *x = m;
	if (x->a && x->a->busy) {
		x->a->orphan = 1; /* freed when the helper thread is done */
	} else {
		authres_free(x->a);
	}
	free(x);
}

/* A new message: checked when it has a local recipient and the client
 * neither logged in nor may relay (an SMTPScript's LocalClientAddress:
 * our own machines, as SPF takes them). */
static int ar_data(struct policy_call *c)
{
	struct ar_mod *x = c->m;
	struct policy_results *r = policy_results(c->p);
	struct mm_account acct;
	int local = 0;
	authres_free(x->a);
	x->a = NULL;
	r->dkim = r->dmarc = r->authres = NULL;
	int trusted = policy_local(c->p, c->user); /* as for SPF */
	for (int i = 0; i < c->msg->nrcpt && !trusted; i++) {
		local |= queue_classify(c->msg->rcpts[i], &acct) == RCPT_LOCAL;
	}
	if (local && (conf.dkim_verify || conf.dmarc)) {
		x->a = authres_new();
	}
	return POLICY_NEXT;
}

/* Every line as it is spooled: a bare LF is stored as CRLF. */
static void ar_body(
        void *m, const char *raw, size_t rawlen, const char *line, size_t len, int start)
{
	struct ar_mod *x = m;
	if (!x->a || !len) {
		return;
	}
	if (line[len - 1] == '\n' && (len < 2 || line[len - 2] != '\r')) {
		authres_feed(x->a, line, len - 1);
		authres_feed(x->a, "\r\n", 2);
	} else {
		authres_feed(x->a, line, len);
	}
}

/* The end of the message: the checks on a helper thread (the session is
 * paused by smtp.c meanwhile). */
static int ar_eom(struct policy_call *c)
{
	struct ar_mod *x = c->m;
	struct authres *a = x->a;
	if (!a) {
		return POLICY_NEXT;
	}
	const char *spf = policy_results(c->p)->spf, *at = strrchr(c->msg->from, '@');
	a->spf = -1;
	for (int i = 0; spf && i <= SPF_PERMERROR; i++) {
		a->spf = !strcmp(spf, spf_name((enum spf_result)i)) ? i : a->spf;
	}
	rl_strlcpy(a->spf_domain, at ? at + 1 : c->helo, sizeof a->spf_domain);
	rl_lower(a->spf_domain);
	a->w.run = check_run;
	a->w.back = check_back;
	a->busy = 1;
	if (work_queue(c->s, &a->w) != 0) {
		check_run(&a->w);
		check_back(c->s, &a->w); /* resumes before we return: policy.c allows it */
	}
	return POLICY_WAIT;
}

const struct policy_module authres_policy = {
        .name = "authres",
        .open = ar_open,
        .close = ar_close,
        .step = {[POLICY_DATA] = ar_data, [POLICY_EOM] = ar_eom},
        .body = ar_body,
};
