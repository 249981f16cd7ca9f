/*
 * jobs.c - blocking calls of the Lua API (DNS lookups, the queue's
 * commit) run on a few helper threads while the calling session's
 * coroutine waits, so that one slow lookup does not stall the other
 * sessions of its worker.
 *
 * A job is a struct rl_job at the start of a bigger struct: run() does
 * the blocking part on a helper thread and touches no Lua state; push()
 * turns the result into return values on the session's worker. Outside
 * a session coroutine (top-level script code, the mailman feed hook, a
 * coroutine the script made itself) the job runs in place.
 */
#include <string.h>

#include "lua/rl.h"

#define JOB_THREADS 4

static os_mutex *mx;
static os_cond *cv;
static struct rl_job *head, *tail;
static os_thread *threads[JOB_THREADS];
static int nthreads, stopping;

static void job_free(struct rl_job *j)
{
	if (j->done) {
		j->done(j);
	}
	free(j);
}

/* On the session's worker: the results go to the waiting coroutine. */
static void job_back(struct session *s, void *arg)
{
	(void)s;
	struct rl_job *j = arg;
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

static void helper_main(void *arg)
{
	(void)arg;
	os_mutex_lock(mx);
	for (;;) {
		while (!head && !stopping) {
			os_cond_wait(cv, mx, -1);
		}
		if (!head) {
			break;
		}
		struct rl_job *j = head;
		head = j->next;
		if (!head) {
			tail = NULL;
		}
		os_mutex_unlock(mx);
		j->run(j);
		session_post(j->c->s, job_back, j);
		os_mutex_lock(mx);
	}
	os_mutex_unlock(mx);
}

/* Queues j for a helper thread; 0 when there is none to run it. */
static int enqueue(struct rl_job *j)
{
	os_mutex_lock(mx);
	while (nthreads < JOB_THREADS && !stopping) {
		os_thread *t = os_thread_start(helper_main, NULL);
		if (!t) {
			break;
		}
		threads[nthreads++] = t;
	}
	int ok = nthreads > 0 && !stopping;
	if (ok) {
		j->next = NULL;
		if (tail) {
			tail->next = j;
		} else {
			head = j;
		}
		tail = j;
		os_cond_signal(cv);
	}
	os_mutex_unlock(mx);
	return ok;
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
	struct rl_conn *c = mx ? rl_conn_here(L) : NULL;
	if (!c) {
		return in_place(L, j);
	}
	j->c = c;
	c->want = W_JOB;
	if (!enqueue(j)) {
		c->want = W_NONE;
		return in_place(L, j);
	}
	session_hold(c->s); /* before the post comes: it runs on this thread */
	return lua_yield(L, 0);
}

/* see rl.h */
void rl_jobs_start(void)
{
	if (!mx) {
		mx = os_mutex_new();
		cv = os_cond_new();
	}
	stopping = 0;
}

/* see rl.h */
void rl_jobs_stop(void)
{
	if (!mx) {
		return;
	}
	os_mutex_lock(mx);
	stopping = 1;
	os_cond_broadcast(cv);
	os_mutex_unlock(mx);
	for (int i = 0; i < nthreads; i++) {
		os_thread_join(threads[i]);
	}
	nthreads = 0;
}
