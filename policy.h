/*
 * policy.h - the SMTP policy chain: checks and scripts that decide about
 * a connection or a message, as modules on one small interface.
 *
 * smtp.c is the protocol state machine; at each step of a session it
 * fills a struct policy_call and runs the chain (policy_run). Every
 * module in the table (policy.c, policy_modules[]) that has a function
 * for the step is called in table order; a module
 *
 *   - has no say: returns POLICY_NEXT, the next module is asked;
 *   - accepts with its own reply: returns the reply's code (2xx/3xx) with
 *     c->reply filled (whole CRLF lines "250 text\r\n"); the chain goes
 *     on, and smtp.c sends that reply instead of its own unless a later
 *     module refuses (a later reply replaces an earlier one);
 *   - refuses or defers: returns 4xx/5xx with c->reply filled (else a
 *     plain reply is sent); the chain stops there (at POLICY_CONNECT
 *     smtp.c then closes the session);
 *   - waits: returns POLICY_WAIT, and later (DNS, a helper thread, a Lua
 *     coroutine waiting for the client) calls policy_resume(s, verdict)
 *     exactly once on s's worker with what it would have returned; the
 *     chain goes on from the next module. A callback that comes before
 *     the step returned (no helper thread) is fine: its verdict counts.
 *     policy_waiting(s) gives the callback its call back. A module that
 *     waits pauses the session itself if the client's input must wait
 *     too (SPF, DNSBL; not a Lua hook, which reads that input; at
 *     POLICY_EOM smtp.c has paused it already);
 *   - closes the session (POLICY_DROP), or answered the client itself so
 *     smtp.c must not (POLICY_DONE), or at POLICY_EOM takes the message
 *     away without queueing it (POLICY_DISCARD, smtp.c says 250 queued).
 *
 * When the chain ends, c->then(s, c, verdict) runs: verdict is the
 * refusal, POLICY_DROP/DONE/DISCARD, or the last accepting code (0 when
 * no module had a say). c is valid during that call only; a new chain
 * may start inside it. Steps marked "no wait" below are run by
 * policy_ask, which returns the verdict at once: a module must not wait
 * there.
 *
 * Modules may add header fields to the received message: at POLICY_DATA
 * and POLICY_EOM, trace fields (Received-SPF, Authentication-Results) go
 * to c->above (they end up above our Received field) and others to
 * c->below (after it). At POLICY_EOM the body is already spooled;
 * policy.c writes the fields in front of it when the chain passes.
 * A module's body() sees every line after DATA as it streams (no wait,
 * no answer: remember a verdict and give it at POLICY_EOM), so it can
 * hash the body without keeping the message; one that files it into
 * another folder (DMARC's quarantine to Junk) sets c->msg->folder.
 *
 * A module keeps its per-session state in the pointer its open() sets;
 * open() returns 0 when the module does not apply to the session (no
 * script, check off): it is then never called for it. reset() starts a
 * new transaction (RSET, HELO, after a message); close() frees.
 *
 * Adding a module: write its functions and a `const struct policy_module`
 * in its own file, declare it below, and put it in policy_modules[] at
 * the place that gives the order wanted at each step.
 */
#ifndef RUMBLE_POLICY_H
#define RUMBLE_POLICY_H

#include "rumble.h"

enum policy_step {
	POLICY_CONNECT, /* a client connected: before the greeting */
	POLICY_COMMAND, /* a known command, before its action (verb, arg) */
	POLICY_HELO,    /* HELO/EHLO host: refuse in and out (no wait) */
	POLICY_CAPS,    /* EHLO's capabilities in caps, one per CRLF line (no wait) */
	POLICY_MAIL,    /* MAIL: addr (may be rewritten), params, arg */
	POLICY_RCPT,    /* RCPT: addr, acct (a local recipient's account, else NULL) */
	POLICY_DATA,    /* DATA: the message is about to start (above, below) */
	POLICY_EOM,     /* the end of the message: msg is whole (above) */
	POLICY_AUTH,    /* a login passed its password: addr is user@domain */
	POLICY_VERB,    /* NOOP RSET HELP VRFY EXPN QUIT, or verb NULL: an
	                   unknown command (arg: the line); ours is our reply
	                   line without CRLF (no wait) */
	POLICY_STEPS
};

/* Verdicts beside reply codes (see the top). */
#define POLICY_NEXT 0
#define POLICY_WAIT (-1)
#define POLICY_DROP (-2)
#define POLICY_DONE (-3)
#define POLICY_DISCARD (-4)

/* What the session allows now: the server's limits, lowered or changed
 * by modules (the SMTPScript's variables). */
struct policy_limits {
	uint64_t max_size;               /* MessageSizeLimit, or less */
	int valid;                       /* the client's address is a valid one */
	int relay;                       /* may relay without logging in */
	int auth_required;               /* no MAIL before AUTH */
	int max_rcpt_local, max_rcpt_in; /* per message, local senders / others */
	int max_msgs_local;              /* per session for local senders, 0: no limit */
};

struct policy;

struct policy_call {
	struct policy *p;
	struct session *s;
	enum policy_step step;
	void *m;            /* the module's state (set for each module) */
	const char *verb;   /* COMMAND, VERB */
	char *arg;          /* the argument as sent (MAIL: "FROM:<a> SIZE=9") */
	char addr[320];     /* MAIL, RCPT, AUTH */
	const char *params; /* MAIL, RCPT: what follows the address */
	const char *helo;   /* the client's HELO/EHLO name, "" before */
	int esmtp;
	int refuse;                    /* HELO: 1 when the name is to be refused */
	const char *user;              /* logged in as, "" when not */
	const char *ours;              /* VERB: our reply line */
	int nmsgs;                     /* messages accepted in this session so far */
	uint64_t size;                 /* MAIL's SIZE= (RFC 1870), 0 when not given */
	struct queue_msg *msg;         /* the transaction's (MAIL on) */
	int kind;                      /* RCPT: what addr is here (enum rcpt_kind) */
	const struct mm_account *acct; /* RCPT: &account for a local one, else NULL */
	struct mm_account account;
	struct buf above, below, caps;
	struct buf reply; /* a module's answer: whole CRLF lines */
	const char *why;  /* a refusal at CONNECT: the log's close reason */
	/* the chain's own */
	int code, next;
	void (*then)(struct session *s, struct policy_call *c, int verdict);
};

struct policy_module {
	const char *name;
	int (*open)(struct policy *p, struct session *s, void **m);
	void (*reset)(void *m);
	void (*close)(struct session *s, void *m);
	int (*step[POLICY_STEPS])(struct policy_call *c);
	/* Each line after DATA (the client's header section first, then
	 * the body: the module finds the empty line), or a piece of a long
	 * one (start: it begins a line), as it came (raw, dot-stuffed) and
	 * unstuffed (line); both with their line end, which the store writes
	 * as CRLF even when it is a bare LF. Not the final ".". Valid during
	 * the call only. */
	void (*body)(
	        void *m, const char *raw, size_t rawlen, const char *line, size_t len, int start);
	/* Lowers or changes l as the module's state says (asked often). */
	void (*limits)(void *m, struct policy_limits *l);
};

/* The results modules share, for later modules and scripts. */
struct policy_results {
	const char *spf; /* this transaction's SPF result ("pass"...), NULL: none */
	/* the last message's DKIM (the best signature's), DMARC results and
	 * Authentication-Results field (authres_policy), kept until the next
	 * DATA; NULL: none */
	const char *dkim, *dmarc, *authres;
};

/* ---- policy.c ---- */
/* The session's chain: every module's open(), in order. max_size starts
 * the limits. Sets s->policy. */
struct policy *policy_open(struct session *s, uint64_t max_size);
void policy_close(struct policy *p); /* every module's close(); s->policy = NULL */
void policy_reset(struct policy *p); /* a new transaction */
/* A call for step, blank but for the session's (user, helo, ...): fill in
 * the step's fields, then policy_run or policy_ask. */
struct policy_call *policy_call_new(struct policy *p, enum policy_step step);
/* Runs the chain for c (which it owns from here) and calls then at its end. */
void policy_run(
        struct policy_call *c, void (*then)(struct session *s, struct policy_call *c, int verdict));
/* Runs a no-wait step; the verdict. Free c with policy_call_free. */
int policy_ask(struct policy_call *c);
void policy_call_free(struct policy_call *c);
/* A module that said POLICY_WAIT has decided (on s's worker). */
void policy_resume(struct session *s, int verdict);
/* The call waiting for a module (NULL when none), for its callback. */
struct policy_call *policy_waiting(struct session *s);
/* proto->hooked for SMTP: a Lua hook that waited has decided. */
void policy_hooked(struct session *s, enum rl_verdict v);
/* Hands a body line to every module's body(). */
void policy_body(
        struct policy *p, const char *raw, size_t rawlen, const char *line, size_t len, int start);
/* The limits now, as the modules say. */
const struct policy_limits *policy_limits(struct policy *p);
void policy_set_max_size(struct policy *p, uint64_t n);
/* 1 when the sender counts as local: logged in or let relay, from a
 * valid address. */
int policy_local(struct policy *p, const char *user);
struct policy_results *policy_results(struct policy *p);
/* Writes h in front of the message in sp (EOM header fields); -1 on I/O error. */
int policy_prepend(struct spool *sp, const struct buf *h);

/* ---- the modules, in their own files ---- */
extern const struct policy_module dnsbl_policy;    /* dnsbl.c */
extern const struct policy_module rl_hooks_policy; /* lua/hooks.c */
extern const struct policy_module spf_policy;      /* spf.c */
extern const struct policy_module authres_policy;  /* dmarc.c */
extern const struct policy_module rl_vp3_policy;   /* lua/vpop3.c */
extern const struct policy_module greylist_policy; /* greylist.c */
extern const struct policy_module quota_policy;    /* quota.c */

#endif
