/*
 * jobs.c - blocking calls of the Lua API (DNS lookups, the queue's
 * commit) run on the helper threads of work.c while the calling
 * session's coroutine waits, so that one slow lookup does not stall the
 * other sessions of its worker.
 *
 * A job is a struct rl_job at the start of a bigger struct: run() does
 * the blocking part on a helper thread and touches no Lua state; push()
 * turns the result into return values on the session's worker. Outside
 * a session coroutine (top-level script code, the mailman feed hook, a
 * coroutine the script made itself) the job runs in place.
 */
#include <stddef.h>
#include <string.h>

#include "lua/rl.h"

static void job_free(struct rl_job *j)
{
	if (j->done) {
		j->done(j);
	}
	free(j);
}

static struct rl_job *job_of(struct work *w)
{
	return (struct rl_job *)((char *)w - offsetof(struct rl_job, w));
}

static void job_run(struct work *w)
{
	struct rl_job *j = job_of(w);
	j->run(j);
}

/* On the session's worker: the results go to the waiting coroutine. */
static void job_back(struct session *s, struct work *w)
{
	(void)s;
	struct rl_job *j = job_of(w);
	struct rl_conn *c = j->c;
	if (c->closed) {
		job_free(j);
		c->finished(c, -1); /* the session ended meanwhile: its owner frees c */
		return;
	}
	c->want = W_NONE;
	c->st->capped = 0; /* small results; no error outside a pcall */
	int n = j->push(c->co, j);
	c->st->capped = 1;
	job_free(j);
	rl_conn_run(c, n);
}

static int in_place(lua_State *L, struct rl_job *j)
{
	struct rl_state *st = rl_state_of(L); /* NULL in a bare state (tests) */
	int64_t t0 = os_now_ms();
	if (st && j->slow && st->calls > 0) {
		j->deadline = st->deadline; /* a remote server's time counts: the limit holds */
	}
	j->run(j);
	if (st && !j->slow) {
		st->deadline += os_now_ms() - t0; /* a bounded wait: blocked, not running */
	}
	int capped = st ? st->capped : 0;
	if (st) {
		st->capped = 0; /* small results; no error that would leak j */
	}
	int n = j->push(L, j);
	if (st) {
		st->capped = capped;
	}
	job_free(j);
	return n;
}

/* Sources already warned about (rl_warn_in_place), process-wide. */
#define WARNED_MAX 32
static char *warned[WARNED_MAX];
static int nwarned;
static os_mutex *warned_mx;

/* 1 the first time src is seen (or when the list is full). */
static int first_warning(const char *src)
{
	os_mutex *mx = rl_mutex_once(&warned_mx);
	os_mutex_lock(mx);
	int first = 1;
	for (int i = 0; i < nwarned && first; i++) {
		first = strcmp(warned[i], src) != 0;
	}
	if (first && nwarned < WARNED_MAX) {
		warned[nwarned++] = xstrdup(src);
	}
	os_mutex_unlock(mx);
	return first;
}

/* see rl.h */
void rl_warn_in_place(lua_State *L, const char *fn)
{
	struct rl_state *st = rl_state_of(L);
	lua_Debug ar;
	if (!st->run_co || !lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Sl", &ar)) {
		return;
	}
	if (first_warning(ar.source)) {
		log_warnx(
		        "script: %s:%d: %s cannot wait here (a string.gsub callback, a table.sort "
		        "comparator, a metamethod, an iterator or a coroutine of the script's own "
		        "is "
		        "in between): it held worker %d until done (said once per script)",
		        ar.short_src, ar.currentline, fn, st->worker);
	}
}

/* The name of the C function running in L, for the log. */
static const char *fn_name(lua_State *L)
{
	lua_Debug ar;
	if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) {
		return ar.name;
	}
	return "a waiting call";
}

/* see rl.h */
int rl_job_call(lua_State *L, struct rl_job *j)
{
	int wait = 0;
	struct rl_state *st = rl_state_of(L);
	struct rl_conn *c = st ? rl_conn_here(L, &wait) : NULL;
	if (!c || !wait) {
		if (st && st->run_co && j->slow) {
			job_free(j);
			return rl_fail(L,
			        "%s cannot wait here (inside a C function such as string.gsub, "
			        "a metamethod or a coroutine of the script's own)",
			        fn_name(L));
		}
		if (st && st->worker >= 0 && j->slow) {
			job_free(j); /* it would hold every session of the worker */
			return rl_fail(L,
			        "%s cannot wait on a worker outside a Rumble hook or service "
			        "(an SMTPScript or Dovecot callback, or a worker's run of the "
			        "top-level code)",
			        fn_name(L));
		}
		if (st) {
			rl_warn_in_place(L, fn_name(L));
		}
		return in_place(L, j);
	}
	j->c = c;
	j->w.run = job_run;
	j->w.back = job_back;
	j->w.slow = j->slow;
	c->want = W_JOB;
	if (work_queue(c->s, &j->w) != 0) {
		c->want = W_NONE;
		return in_place(L, j);
	}
	return lua_yield(L, 0);
}
