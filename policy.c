/*
 * policy.c - runs the SMTP policy chain (see policy.h for the interface).
 *
 * The table below is the order in which modules are asked at each step;
 * it keeps the order the checks had when smtp.c called them itself:
 * at connect DNSBL, then the Rumble "accept" hook, then the SMTPScript's
 * Start(); at MAIL SPF before DoMAILFROM (which gets SPF's result); at
 * RCPT DoRCPTTO, then greylisting, then the recipient's quota; at the
 * close the "close" hook before End(). DKIM/DMARC (authres) come before
 * the SMTPScript at EOM, so that ProcessMessage sees their results.
 *
 * One call runs at a time per session (a waiting module holds the
 * protocol: the session is paused or a hook reads its input), so the
 * waiting call is kept in the session's policy.
 */
#include <string.h>

#include "policy.h"

static const struct policy_module *const policy_modules[] = {
        &dnsbl_policy,
        &rl_hooks_policy,
        &spf_policy,
        &authres_policy,
        &rl_vp3_policy,
        &greylist_policy,
        &quota_policy,
};
#define NMOD (sizeof policy_modules / sizeof policy_modules[0])

struct policy {
	struct session *s;
	void *m[NMOD];
	unsigned char on[NMOD];
	struct policy_limits lim;
	struct policy_results res;
	/* The call a module is deciding: in a step (in_step), or after it
	 * said POLICY_WAIT. A module's callback that comes before its step
	 * returned (no helper thread) leaves its verdict in early. */
	struct policy_call *cur;
	int in_step, early;
};

/* see policy.h */
struct policy *policy_open(struct session *s, uint64_t max_size)
{
	struct policy *p = xcalloc(1, sizeof *p);
	p->s = s;
	p->lim.max_size = max_size;
	p->lim.valid = 1;
	p->lim.max_rcpt_local = p->lim.max_rcpt_in = conf.max_recipients;
	s->policy = p;
	for (size_t i = 0; i < NMOD; i++) {
		const struct policy_module *mod = policy_modules[i];
		p->on[i] = mod->open ? (unsigned char)mod->open(p, s, &p->m[i]) : 1;
	}
	return p;
}

/* see policy.h */
void policy_close(struct policy *p)
{
	if (!p) {
		return;
	}
	for (size_t i = 0; i < NMOD; i++) {
		if (p->on[i] && policy_modules[i]->close) {
			policy_modules[i]->close(p->s, p->m[i]);
		}
	}
	policy_call_free(p->in_step ? NULL : p->cur);
	p->s->policy = NULL;
	free(p);
}

/* see policy.h */
void policy_reset(struct policy *p)
{
	p->res.spf = NULL;
	for (size_t i = 0; i < NMOD; i++) {
		if (p->on[i] && policy_modules[i]->reset) {
			policy_modules[i]->reset(p->m[i]);
		}
	}
}

/* see policy.h */
struct policy_call *policy_call_new(struct policy *p, enum policy_step step)
{
	struct policy_call *c = xcalloc(1, sizeof *c);
	c->p = p;
	c->s = p->s;
	c->step = step;
	c->helo = c->user = "";
	buf_init(&c->above);
	buf_init(&c->below);
	buf_init(&c->caps);
	buf_init(&c->reply);
	return c;
}

/* see policy.h */
void policy_call_free(struct policy_call *c)
{
	if (c) {
		free(c->arg);
		buf_free(&c->above);
		buf_free(&c->below);
		buf_free(&c->caps);
		buf_free(&c->reply);
		free(c);
	}
}

/* Asks the modules from c->next on; POLICY_WAIT when one waits. */
static int chain(struct policy_call *c)
{
	struct policy *p = c->p;
	while ((size_t)c->next < NMOD) {
		size_t i = (size_t)c->next++;
		int (*fn)(struct policy_call *) = policy_modules[i]->step[c->step];
		if (!p->on[i] || !fn) {
			continue;
		}
		c->m = p->m[i];
		p->cur = c;
		p->in_step = 1;
		p->early = POLICY_WAIT;
		int v = fn(c);
		p->in_step = 0;
		if (v == POLICY_WAIT) {
			v = p->early; /* its callback came already, or it still waits */
		}
		if (v == POLICY_WAIT) {
			return v;
		}
		p->cur = NULL;
		if (v >= 200 && v < 400) {
			c->code = v; /* an accepting reply: later modules still ask */
		} else if (v != POLICY_NEXT) {
			return v;
		}
	}
	return c->code;
}

/* The chain ended with v: smtp.c goes on, then c is freed. */
static void finish(struct policy_call *c, int v)
{
	c->then(c->s, c, v);
	policy_call_free(c);
}

/* see policy.h */
void policy_run(
        struct policy_call *c, void (*then)(struct session *s, struct policy_call *c, int verdict))
{
	c->then = then;
	int v = chain(c);
	if (v != POLICY_WAIT) {
		finish(c, v);
	}
}

/* see policy.h */
int policy_ask(struct policy_call *c)
{
	int v = chain(c);
	c->p->cur = NULL;
	return v == POLICY_WAIT ? POLICY_NEXT : v; /* a module broke the rule */
}

/* see policy.h */
struct policy_call *policy_waiting(struct session *s)
{
	return s->policy ? s->policy->cur : NULL;
}

/* see policy.h */
void policy_resume(struct session *s, int verdict)
{
	struct policy *p = s->policy;
	if (!p || !p->cur) {
		return;
	}
	if (p->in_step) {
		p->early = verdict;
		return;
	}
	struct policy_call *c = p->cur;
	p->cur = NULL;
	int v = verdict;
	if (v >= 200 && v < 400) {
		c->code = v;
		v = POLICY_NEXT;
	}
	if (v == POLICY_NEXT) {
		v = chain(c);
	}
	if (v != POLICY_WAIT) {
		finish(c, v);
	}
}

/* see policy.h */
void policy_hooked(struct session *s, enum rl_verdict v)
{
	static const int verdicts[] = {POLICY_NEXT, POLICY_DROP, POLICY_DONE, POLICY_NEXT};
	policy_resume(s, verdicts[v]);
}

/* see policy.h */
void policy_body(
        struct policy *p, const char *raw, size_t rawlen, const char *line, size_t len, int start)
{
	for (size_t i = 0; i < NMOD; i++) {
		if (p->on[i] && policy_modules[i]->body) {
			policy_modules[i]->body(p->m[i], raw, rawlen, line, len, start);
		}
	}
}

/* see policy.h */
const struct policy_limits *policy_limits(struct policy *p)
{
	for (size_t i = 0; i < NMOD; i++) {
		if (p->on[i] && policy_modules[i]->limits) {
			policy_modules[i]->limits(p->m[i], &p->lim);
		}
	}
	return &p->lim;
}

/* see policy.h */
void policy_set_max_size(struct policy *p, uint64_t n)
{
	p->lim.max_size = n;
}

/* see policy.h */
int policy_local(struct policy *p, const char *user)
{
	const struct policy_limits *l = policy_limits(p);
	return l->valid && (user[0] || l->relay);
}

/* see policy.h */
struct policy_results *policy_results(struct policy *p)
{
	return &p->res;
}

/* see policy.h */
int policy_prepend(struct spool *sp, const struct buf *h)
{
	if (!h->len) {
		return 0;
	}
	struct spool ns;
	char chunk[8192];
	long n = 0;
	uint64_t off = 0;
	spool_init(&ns, sp->tmpdir);
	int rc = spool_write(&ns, h->data, h->len);
	while (rc == 0 && (n = spool_read(sp, off, chunk, sizeof chunk)) > 0) {
		rc = spool_write(&ns, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	if (rc != 0 || n < 0) {
		spool_free(&ns);
		return -1;
	}
	spool_free(sp);
	*sp = ns;
	return 0;
}
