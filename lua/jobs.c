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
	j->run(j);
	struct rl_state *st = rl_state_of(L); /* NULL in a bare state (tests) */
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

/* see rl.h */
int rl_job_call(lua_State *L, struct rl_job *j)
{
	struct rl_conn *c = rl_state_of(L) ? rl_conn_here(L) : NULL;
	if (!c) {
		return in_place(L, j);
	}
	j->c = c;
	j->w.run = job_run;
	j->w.back = job_back;
	c->want = W_JOB;
	if (work_queue(c->s, &j->w) != 0) {
		c->want = W_NONE;
		return in_place(L, j);
	}
	return lua_yield(L, 0);
}
