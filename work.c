/*
 * work.c - blocking work (DNS lookups for scripts, password hashing, the
 * queue's commit wait) on a few helper threads, so that one slow call does
 * not stall the other sessions of its worker.
 *
 * The caller fills a struct work (usually the start of a bigger struct)
 * and queues it for its session: run() does the blocking part on a helper
 * thread and must not touch the session; back() then runs on the
 * session's worker, which kept the session alive meanwhile (it may be
 * closing by then). Threads start on first use, up to WORK_THREADS.
 */
#include "rumble.h"

#define WORK_THREADS 4

static os_mutex *mx;
static os_cond *cv;
static struct work *head, *tail;
static os_thread *threads[WORK_THREADS];
static int nthreads, stopping, started;

static void back(struct session *s, void *arg)
{
	struct work *w = arg;
	w->back(s, w);
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
		struct work *w = head;
		head = w->next;
		if (!head) {
			tail = NULL;
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
	os_mutex_lock(mx);
	while (nthreads < WORK_THREADS && !stopping) {
		os_thread *t = os_thread_start(helper_main, NULL);
		if (!t) {
			break;
		}
		threads[nthreads++] = t;
	}
	int ok = nthreads > 0 && !stopping;
	if (ok) {
		session_hold(s); /* before the post can come: it runs on this thread */
		w->s = s;
		w->next = NULL;
		if (tail) {
			tail->next = w;
		} else {
			head = w;
		}
		tail = w;
		os_cond_signal(cv);
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
	for (int i = 0; i < nthreads; i++) {
		os_thread_join(threads[i]);
	}
	nthreads = 0;
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
