/*
 * work.c - blocking work (DNS lookups for scripts, password hashing, the
 * queue's commit wait) on a few helper threads, so that one slow call does
 * not stall the other sessions of its worker.
 *
 * The caller fills a struct work (usually the start of a bigger struct)
 * and queues it for its session: run() does the blocking part on a helper
 * thread and must not touch the session; back() then runs on the
 * session's worker, which kept the session alive meanwhile (it may be
 * closing by then).
 *
 * Two lanes, each with its own threads (started on first use, up to
 * LANE_THREADS): work that takes its own bounded time (logins, DNS, the
 * commit wait) and slow work whose length someone else decides (a
 * script's SMTP conversation with a server that may answer after its
 * timeout, minutes). A few scripts waiting on silent servers must not
 * hold up every login.
 */
#include "rumble.h"

#define LANE_THREADS 4

struct lane {
	struct work *head, *tail;
	os_thread *threads[LANE_THREADS];
	int nthreads;
};

static os_mutex *mx;
static os_cond *cv;
static struct lane lanes[2]; /* [w->slow] */
static int stopping, started;

static void back(struct session *s, void *arg)
{
	struct work *w = arg;
	w->back(s, w);
}

static void helper_main(void *arg)
{
	struct lane *l = arg;
	os_mutex_lock(mx);
	for (;;) {
		while (!l->head && !stopping) {
			os_cond_wait(cv, mx, -1);
		}
		if (!l->head) {
			break;
		}
		struct work *w = l->head;
		l->head = w->next;
		if (!l->head) {
			l->tail = NULL;
		}
		os_mutex_unlock(mx);
		w->run(w);
		session_post(w->s, back, w);
		os_mutex_lock(mx);
	}
	os_mutex_unlock(mx);
}

/* see rumble.h */
int work_queue(struct session *s, struct work *w)
{
	if (!os_atomic_load_int(&started)) {
		return -1;
	}
	struct lane *l = &lanes[w->slow != 0];
	os_mutex_lock(mx);
	while (l->nthreads < LANE_THREADS && !stopping) {
		os_thread *t = os_thread_start(helper_main, l);
		if (!t) {
			break;
		}
		l->threads[l->nthreads++] = t;
	}
	int ok = l->nthreads > 0 && !stopping;
	if (ok) {
		session_hold(s); /* before the post can come: it runs on this thread */
		w->s = s;
		w->next = NULL;
		if (l->tail) {
			l->tail->next = w;
		} else {
			l->head = w;
		}
		l->tail = w;
		os_cond_broadcast(cv); /* a thread of w's lane */
	}
	os_mutex_unlock(mx);
	return ok ? 0 : -1;
}

/* see rumble.h */
void work_start(void)
{
	if (!mx) {
		mx = os_mutex_new();
		cv = os_cond_new();
	}
	stopping = 0;
	os_atomic_store_int(&started, 1);
}

/* see rumble.h */
void work_stop(void)
{
	if (!mx) {
		return;
	}
	os_atomic_store_int(&started, 0);
	os_mutex_lock(mx);
	stopping = 1;
	os_cond_broadcast(cv);
	os_mutex_unlock(mx);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < lanes[k].nthreads; i++) {
			os_thread_join(lanes[k].threads[i]);
		}
		lanes[k].nthreads = 0;
	}
}

/* ---- logins: mm_login's password hashing takes tens of milliseconds ---- */

struct login_work {
	struct work w;
	char name[320], pw[1024];
	int rc;
	struct mm_account acct;
	void (*done)(struct session *s, int rc, const struct mm_account *a, const char *name);
};

static void login_free(struct login_work *l)
{
	crypto_wipe(l, sizeof *l); /* no password left in freed memory */
	free(l);
}

static void login_run(struct work *w)
{
	struct login_work *l = (struct login_work *)w;
	l->rc = mm_login(l->name, l->pw, &l->acct);
}

static void login_back(struct session *s, struct work *w)
{
	struct login_work *l = (struct login_work *)w;
	if (!session_closing(s)) {
		l->done(s, l->rc, &l->acct, l->name);
	}
	login_free(l);
}

/* see rumble.h */
void work_login(struct session *s, const char *name, const char *pw,
        void (*done)(struct session *s, int rc, const struct mm_account *a, const char *name))
{
	struct login_work *l = xcalloc(1, sizeof *l);
	l->w.run = login_run;
	l->w.back = login_back;
	l->done = done;
	l->rc = -1;
	if (rl_strlcpy(l->name, name, sizeof l->name) >= sizeof l->name ||
	        rl_strlcpy(l->pw, pw, sizeof l->pw) >= sizeof l->pw) {
		l->name[0] = '\0'; /* too long to be right: refused without hashing */
		l->w.run = NULL;
	}
	if (!l->w.run || work_queue(s, &l->w) != 0) {
		if (l->w.run) {
			login_run(&l->w);
		}
		done(s, l->rc, &l->acct, l->name);
		login_free(l);
	}
}
