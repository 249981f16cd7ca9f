/*
 * session.c - listeners, worker threads and the sessions they carry.
 *
 * The main thread polls the listeners and hands each accepted socket to a
 * worker (the one with the fewest sessions). A worker owns a poller, a
 * wake-up channel and an inbox of tasks other threads post to it; every
 * session lives on one worker for its whole life, so protocol code never
 * needs a lock for its own state.
 *
 * Input is cut into lines and handed to the protocol; a line longer than
 * proto->line_max is handed over in pieces. While a Lua script waits for
 * the client (s->tap), input goes to it instead, uncut. Output is collected in s->out
 * and written when the protocol returns, so pipelined replies leave in one
 * write. A session whose output piles up past OUT_HIGH stops being read
 * until the peer catches up.
 *
 * The two I/O functions (session_fill and session_flush) are where TLS
 * plugs in.
 */
#include <string.h>

#include "rumble.h"

#define READ_CHUNK 16384
#define OUT_HIGH (256 * 1024)
#define MAX_EVENTS 128
#define TICK_MS 1000
#define CLOSE_LINGER_MS 10000 /* a closing session's output gets this long */
/* The walk of a worker's sessions for timeouts waits until the first one
 * can be due, at most this long: a protocol that lowers s->timeout_ms
 * without I/O (IMAP's IDLE) sees it late by up to that. */
#define WALK_MAX_MS 30000

struct task {
	void (*fn)(struct session *s, void *arg);
	struct session *s;
	void *arg;
	int release; /* drops one of s->holds after fn */
	struct task *next;
};

struct timer {
	int64_t due;
	struct session *s;
	void (*fn)(struct session *s, void *arg);
	void *arg;
	struct timer *next;
};

struct worker {
	int index;
	struct timer *timers; /* sorted by due */
	os_thread *thread;
	struct os_poller *poller;
	struct os_wakeup wake;
	os_mutex *lock; /* guards the inbox */
	struct task *inbox, *inbox_tail;
	struct session *sessions;
	struct session *dead; /* freed after the current batch of events */
	int held;             /* holds of its sessions: posts still to come */
	volatile long nsessions;
	volatile int stop; /* 1: close idle sessions and leave when empty */
	int64_t next_tick;
	int64_t walk_at;       /* worker_tick has nothing to do before (0: walk) */
	volatile int walk_now; /* another thread asks for a walk (server_unlisten) */
	int mem;               /* an in-memory session's: no thread, no wake-up */
};

static struct worker *workers;
static int nworkers;
static int halting; /* server_stop began (server_stopping) */
static struct service *services[16];
static int nservices;
static struct os_poller *accept_poller;
static volatile long session_count;
static os_mutex *gate_lock; /* guards gates[], at the end */
enum gate_op { G_FAIL, G_PEEK, G_OPEN, G_CLOSE };
static int gate_update(const char *ip, enum gate_op op, int64_t *last);
static uint32_t next_id;

static long counter_add(volatile long *c, long n)
{
	return os_atomic_add_long(c, n);
}

/* ---- tasks posted between threads ---- */

static void worker_post(struct worker *w, void (*fn)(struct session *, void *), struct session *s,
        void *arg, int release)
{
	struct task *t = xmalloc(sizeof *t);
	*t = (struct task){fn, s, arg, release, NULL};
	os_mutex_lock(w->lock);
	int was_empty = w->inbox == NULL;
	if (w->inbox_tail) {
		w->inbox_tail->next = t;
	} else {
		w->inbox = t;
	}
	w->inbox_tail = t;
	os_mutex_unlock(w->lock);
	if (was_empty && !w->mem) {
		os_wakeup_poke(&w->wake);
	}
}

static void session_free(struct session *s);
static void session_service(struct session *s);
static void session_release(struct session *s);

static void run_inbox(struct worker *w)
{
	os_wakeup_drain(&w->wake);
	os_mutex_lock(w->lock);
	struct task *t = w->inbox;
	w->inbox = w->inbox_tail = NULL;
	os_mutex_unlock(w->lock);
	while (t) {
		struct task *next = t->next;
		struct session *s = t->s;
		t->fn(s, t->arg);
		if (t->release) {
			session_release(s);
		}
		free(t);
		if (s) {
			session_service(s); /* a bell's task has none: it serves its own */
		}
		t = next;
	}
}

/* ---- session API (see rumble.h) ---- */

void session_write(struct session *s, const void *p, size_t n)
{
	if (s->fd != OS_BADFD || s->worker->mem) {
		buf_append(&s->out, p, n);
	}
}

void session_printf(struct session *s, const char *fmt, ...)
{
	if (s->fd == OS_BADFD && !s->worker->mem) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
}

void session_close(struct session *s, const char *reason)
{
	if (!s->closing) {
		s->closing = 1;
		rl_strlcpy(s->reason, reason, sizeof s->reason);
		s->worker->walk_at = 0; /* its linger is counted from now */
	}
}

void session_pause(struct session *s)
{
	s->paused = 1;
}

void session_resume(struct session *s)
{
	s->paused = 0;
}

void session_discard_input(struct session *s)
{
	s->discard_in = 1;
}

void session_hold(struct session *s)
{
	s->holds++;
	s->worker->held++;
}

static void session_release(struct session *s)
{
	s->holds--;
	s->worker->held--;
	if (!s->holds) {
		s->worker->walk_at = 0; /* its timeout counts again */
	}
}

void session_post(struct session *s, void (*fn)(struct session *, void *), void *arg)
{
	worker_post(s->worker, fn, s, arg, 1);
}

/* ---- bells: a wake-up for a session from any thread ----
 *
 * A ring posts one task to the session's worker unless one is on its
 * way already (rung), so any number of rings cost one run of fn. The
 * session does not know how many rings are out, and may end before
 * they arrive: the bell outlives it then, holding one reference per
 * task on its way plus the session's own, and the task finds s NULL. */
struct session_bell {
	struct worker *w;
	struct session *s; /* NULL once the session let it go; the worker's */
	void (*fn)(struct session *s);
	volatile int rung;  /* a task is on its way */
	volatile long refs; /* the session's, and the task's on its way */
};

static void bell_unref(struct session_bell *b)
{
	if (os_atomic_add_long(&b->refs, -1) == 0) {
		free(b);
	}
}

static void bell_run(struct session *unused, void *arg)
{
	(void)unused;
	struct session_bell *b = arg;
	struct session *s = b->s;
	os_atomic_store_int(&b->rung, 0); /* rings from now on post again */
	if (s && !s->closing) {
		b->fn(s);
		session_service(s);
	}
	bell_unref(b);
}

struct session_bell *session_bell_new(struct session *s, void (*fn)(struct session *s))
{
	struct session_bell *b = xcalloc(1, sizeof *b);
	b->w = s->worker;
	b->s = s;
	b->fn = fn;
	b->refs = 1;
	return b;
}

void session_bell_ring(void *bell)
{
	struct session_bell *b = bell;
	if (os_atomic_swap_int(&b->rung, 1) == 0) {
		os_atomic_add_long(&b->refs, 1); /* the task's, given back by bell_run */
		worker_post(b->w, bell_run, NULL, b, 0);
	}
}

void session_bell_free(struct session_bell *b)
{
	if (b) {
		b->s = NULL;
		bell_unref(b);
	}
}

int session_worker(const struct session *s)
{
	return s->worker->index;
}

int server_workers(void)
{
	return nworkers;
}

int server_sessions(void)
{
	return (int)os_atomic_load_long(&session_count);
}

/* ---- I/O ---- */

/* The server's certificate, for every TLS session. A reload swaps it
 * under tls_mu; sessions that took a reference to the old one keep it
 * (the last one frees it). */
static struct tls_ctx *tls_server;
static os_mutex *tls_mu;

void server_set_tls(struct tls_ctx *c)
{
	os_mutex *m = rl_mutex_once(&tls_mu);
	os_mutex_lock(m);
	struct tls_ctx *old = tls_server;
	tls_server = c;
	os_mutex_unlock(m);
	tls_ctx_free(old);
}

int server_has_tls(void)
{
	os_mutex *m = rl_mutex_once(&tls_mu);
	os_mutex_lock(m);
	int has = tls_server != NULL;
	os_mutex_unlock(m);
	return has;
}

/* A TLS engine on the current certificate, NULL without one. */
static struct tls *server_tls_new(void)
{
	os_mutex *m = rl_mutex_once(&tls_mu);
	os_mutex_lock(m);
	struct tls *t = tls_server ? tls_new(tls_server) : NULL;
	os_mutex_unlock(m);
	return t;
}

/* Room left for input before the protocol must catch up (backpressure). */
static int in_room(struct session *s)
{
	return s->in.len - s->in_off < s->svc->proto->line_max + READ_CHUNK;
}

/* Reads what the socket has; -1 when the session must end. */
static int plain_fill(struct session *s)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		buf_reserve(&s->in, READ_CHUNK);
		long n = os_read(s->fd, s->in.data + s->in.len, READ_CHUNK);
		if (n == OS_AGAIN) {
			return 0;
		}
		if (n == 0) {
			s->eof = 1; /* what came before the end is still served */
			return 0;
		}
		if (n < 0) {
			s->peer_gone = 1;
			session_close(s, "read error");
			return -1;
		}
		s->in.len += (size_t)n;
		s->in.data[s->in.len] = '\0';
		s->rx++;
		s->last_io = os_now_ms();
		counter_add(&s->svc->bytes_in, n);
		if ((size_t)n < READ_CHUNK || !in_room(s)) {
			return 0;
		}
	}
	return 0;
}

/* Writes what is pending; -1 when the peer is gone. */
static int plain_flush(struct session *s)
{
	size_t done = 0;
	int rc = 0;
	while (done < s->out.len) {
		long n = os_write(s->fd, s->out.data + done, s->out.len - done);
		if (n == OS_AGAIN) {
			break;
		}
		if (n <= 0) {
			rc = -1;
			break;
		}
		done += (size_t)n;
		s->last_io = os_now_ms();
		s->tx++;
	}
	counter_add(&s->svc->bytes_out, (long)done);
	buf_consume(&s->out, done);
	if (rc != 0) {
		buf_reset(&s->out);
		s->peer_gone = 1;
		session_close(s, "write error");
	}
	return rc;
}

/* ---- TLS: the engine sits between the socket and s->in / s->out ---- */

/* Sends the engine's ciphertext; -1 when the peer is gone. */
static int tls_send(struct session *s)
{
	size_t n;
	const void *p;
	while ((p = tls_pull_out(s->tls, &n)) != NULL) {
		long w = os_write(s->fd, p, n);
		if (w == OS_AGAIN) {
			return 0;
		}
		if (w <= 0) {
			return -1;
		}
		tls_sent(s->tls, (size_t)w);
		s->last_io = os_now_ms();
		s->tx++;
	}
	return 0;
}

/* Decrypted bytes into s->in, while there is room; 1 if any moved. */
static int tls_take(struct session *s)
{
	int moved = 0;
	while ((tls_state(s->tls) & TLS_RECVAPP) && in_room(s)) {
		buf_reserve(&s->in, READ_CHUNK);
		size_t n = tls_read(s->tls, s->in.data + s->in.len, READ_CHUNK);
		if (!n) {
			break;
		}
		s->in.len += n;
		s->in.data[s->in.len] = '\0';
		counter_add(&s->svc->bytes_in, (long)n);
		moved = 1;
	}
	return moved;
}

/* Pending output into the engine; 1 if any moved. */
static int tls_give(struct session *s)
{
	if (!s->out.len || !(tls_state(s->tls) & TLS_SENDAPP)) {
		return 0;
	}
	size_t n = tls_write(s->tls, s->out.data, s->out.len);
	counter_add(&s->svc->bytes_out, (long)n);
	buf_consume(&s->out, n);
	if (!s->out.len) {
		tls_flush(s->tls); /* the replies of this round leave together */
	}
	return n > 0;
}

/* Ciphertext from the socket straight into the engine; 1 if any came. */
static int tls_recv(struct session *s, int *again)
{
	size_t room;
	void *p = tls_in_buf(s->tls, &room);
	if (!p || *again) {
		return 0;
	}
	long n = os_read(s->fd, p, room);
	if (n == OS_AGAIN) {
		*again = 1;
		return 0;
	}
	if (n <= 0) {
		*again = 1;
		if (n == 0) {
			s->eof = 1;
		} else {
			s->peer_gone = 1;
			session_close(s, "read error");
		}
		return 0;
	}
	tls_in_ack(s->tls, (size_t)n);
	s->rx++;
	s->last_io = os_now_ms();
	return 1;
}

/* Moves everything that can move; reading the socket only when asked.
 * -1 when the session must end. */
static int tls_pump(struct session *s, int read)
{
	int again = !read;
	for (int rounds = 0; rounds < 64; rounds++) {
		if (tls_send(s) != 0) {
			s->peer_gone = 1;
			session_close(s, "write error");
			return -1;
		}
		if (tls_state(s->tls) & TLS_CLOSED) {
			const char *why = tls_error(s->tls);
			session_close(s, *why ? why : "tls closed");
			return -1;
		}
		if (!(tls_take(s) | tls_give(s) | tls_recv(s, &again))) {
			break;
		}
	}
	return s->closing && !s->out.len ? -1 : 0;
}

static int session_fill(struct session *s)
{
	return s->tls ? tls_pump(s, 1) : plain_fill(s);
}

static int session_flush(struct session *s)
{
	int rc = s->tls ? tls_pump(s, 0) : plain_flush(s);
	if (!s->out.len && s->out.cap > 4096) {
		buf_free(&s->out); /* an idle session keeps no big write buffer */
	}
	return rc;
}

/* Output that can go now: s->out (over TLS only once the engine takes
 * plaintext, i.e. after the handshake), or ciphertext in the engine. */
static int out_pending(struct session *s)
{
	if (s->peer_gone) {
		return 0; /* nowhere to send it */
	}
	if (!s->tls) {
		return s->out.len != 0;
	}
	unsigned st = tls_state(s->tls);
	return (st & TLS_SENDREC) || (s->out.len && (st & TLS_SENDAPP));
}

/* STARTTLS: the plaintext reply has gone; what the client sent after the
 * command is dropped (RFC 3207 5: no command injection), then TLS. */
static void tls_begin(struct session *s)
{
	s->starttls = 0;
	buf_free(&s->in);
	s->in_off = 0;
	s->tls = server_tls_new();
	if (!s->tls) {
		session_close(s, "tls setup");
	}
}

void session_starttls(struct session *s)
{
	s->starttls = 1;
	s->discard_in = 1;
}

/* Hands complete lines (or line_max pieces) to the protocol. */
static void session_dispatch(struct session *s)
{
	const struct proto *pr = s->svc->proto;
	while (!s->paused && !s->closing && s->out.len < OUT_HIGH) {
		size_t avail = s->in.len - s->in_off;
		if (!avail) {
			break;
		}
		char *start = s->in.data + s->in_off;
		if (s->tap || !pr->line) {
			size_t took = s->tap ? s->tap(s, start, avail) : 0;
			s->in_off += took;
			if (!took) {
				break; /* the tap wants nothing now */
			}
			continue;
		}
		char *nl = memchr(start, '\n', avail);
		size_t len = nl ? (size_t)(nl - start) + 1 : avail;
		if (!nl && avail < pr->line_max) {
			break;
		}
		if (len > pr->line_max) {
			len = pr->line_max;
		}
		char saved = start[len];
		start[len] = '\0';
		s->in_off += len;
		pr->line(s, start, len);
		if (s->discard_in) {
			s->discard_in = 0;
			s->in_off = s->in.len;
		} else {
			start[len] = saved;
		}
	}
	if (s->in_off == s->in.len) {
		buf_free(&s->in); /* an idle session keeps no read buffer */
		s->in_off = 0;
	} else if (s->in_off > READ_CHUNK) {
		buf_consume(&s->in, s->in_off);
		s->in_off = 0;
	}
}

static void kick(struct session *s, void *arg)
{
	(void)s;
	(void)arg; /* run_inbox calls session_service after this */
}

/* Decides what the poller should watch for s, after any activity. */
static void session_service(struct session *s)
{
	if (s->fd == OS_BADFD) {
		if (s->holds == 0) {
			session_free(s);
		}
		return;
	}
	/* Rounds of: lines to the protocol, output to the socket, and more
	 * output from a streaming protocol (writable) while the socket takes
	 * it; capped so that one session cannot hog its worker. */
	int round = 0;
	for (; round < 16; round++) {
		if (!s->closing && !s->starttls) {
			session_dispatch(s);
		}
		if (out_pending(s) && session_flush(s) != 0) {
			s->out.len = 0;
		}
		if (s->starttls && !out_pending(s) && !s->closing) {
			tls_begin(s);
		}
		if (out_pending(s) || !s->svc->proto->writable || s->closing || s->starttls) {
			break;
		}
		int was_paused = s->paused;
		s->svc->proto->writable(s);
		if (!s->out.len && (s->paused || !was_paused)) {
			break; /* nothing more to send, nothing newly allowed to read */
		}
	}
	if (round == 16 && !out_pending(s) && !s->closing) {
		session_hold(s); /* more to stream: come back after the others */
		worker_post(s->worker, kick, s, NULL, 1);
	}
	if (s->eof && !s->paused && !s->closing) {
		session_close(s, "disconnected");
	}
	if (s->closing && (!out_pending(s) || s->fd == OS_BADFD)) {
		/* what could not go (a handshake never finished) is dropped */
		session_free(s);
		return;
	}
	int want_read = !s->closing && !s->eof && !s->starttls && s->out.len < OUT_HIGH &&
	                in_room(s) &&
	                (!s->tls || (tls_state(s->tls) & TLS_RECVREC)); /* else epoll spins */
	int want_write = out_pending(s);
	int ev = (want_read ? OS_EV_READ : 0) | (want_write ? OS_EV_WRITE : 0);
	if (!ev && (s->eof || s->peer_gone)) {
		/* The peer is gone and nothing is wanted from the socket: stop
		 * watching it, or a hang-up would be reported over and over
		 * while the session waits for a commit or a timer. */
		if (!s->unwatched) {
			os_poller_del(s->worker->poller, s->fd);
			s->unwatched = 1;
		}
		return;
	}
	if (s->unwatched) {
		s->unwatched = 0;
		os_poller_add(s->worker->poller, s->fd, ev, s);
	} else if (ev != ((s->reading_off ? 0 : OS_EV_READ) | (s->write_on ? OS_EV_WRITE : 0))) {
		os_poller_mod(s->worker->poller, s->fd, ev, s);
	}
	s->reading_off = !want_read;
	s->write_on = want_write;
}

static void session_event(struct session *s, int events)
{
	uint32_t rx = s->rx, tx = s->tx;
	if (s->fd == OS_BADFD) {
		return; /* closed earlier in this batch */
	}
	if ((events & (OS_EV_READ | OS_EV_ERROR)) && !s->eof) {
		session_fill(s);
	}
	if ((events & OS_EV_ERROR) && s->tls && !(tls_state(s->tls) & TLS_RECVREC)) {
		/* hang-up reported while the engine takes no input: nothing will
		 * ever read it, and the poller would report it again and again */
		s->peer_gone = 1;
		session_close(s, "hang-up");
	}
	if ((events & OS_EV_WRITE) && out_pending(s)) {
		session_flush(s);
	}
	session_service(s);
	if (s->rx != rx && s->tx == tx && s->fd != OS_BADFD) {
		/* bytes came and no reply carried their ACK: a client whose next
		 * write waits for it (Nagle: a literal's last CRLF) goes on now,
		 * not after the delayed ACK's 40 ms */
		os_ack_now(s->fd);
	}
}

/* ---- life of a session ---- */

static void session_unlink(struct session *s)
{
	struct worker *w = s->worker;
	if (s->prev) {
		s->prev->next = s->next;
	} else if (w->sessions == s) {
		w->sessions = s->next;
	}
	if (s->next) {
		s->next->prev = s->prev;
	}
	s->prev = s->next = NULL;
}

/* The one destructor. With work still out on other threads the socket
 * closes now and the memory goes when the last post arrives. */
static void session_free(struct session *s)
{
	if (s->fd != OS_BADFD) {
		log_debug("%08x %s disconnected reason=%s", s->id, s->svc->name, s->reason);
		if (s->tls) {
			tls_close(s->tls); /* close_notify, if the socket takes it now */
			if (!s->peer_gone) {
				tls_send(s);
			}
			tls_free(s->tls);
			s->tls = NULL;
		}
		if (!s->unwatched) {
			os_poller_del(s->worker->poller, s->fd);
		}
		os_close(s->fd);
		s->fd = OS_BADFD;
		s->closing = 1;
		if (s->tap) {
			s->tap(s, NULL, 0); /* the end of input, for a waiting script */
			s->tap = NULL;
		}
		if (s->svc->proto->close) {
			s->svc->proto->close(s);
		}
		if (s->lua) {
			rl_session_end(s);
		}
		session_unlink(s);
		gate_update(s->peer, G_CLOSE, NULL);
		counter_add(&s->svc->sessions, -1);
		counter_add(&s->worker->nsessions, -1);
		counter_add(&session_count, -1);
	}
	if (s->holds > 0) {
		return;
	}
	/* A later event of the same poller batch may still name s. */
	s->next = s->worker->dead;
	s->worker->dead = s;
}

static void bury_dead(struct worker *w)
{
	while (w->dead) {
		struct session *s = w->dead;
		w->dead = s->next;
		buf_free(&s->in);
		buf_free(&s->out);
		free(s);
	}
}

static void session_adopt(struct session *s, void *arg)
{
	(void)arg;
	struct worker *w = s->worker;
	s->last_io = os_now_ms();
	w->walk_at = 0;
	s->next = w->sessions;
	if (w->sessions) {
		w->sessions->prev = s;
	}
	w->sessions = s;
	if (os_poller_add(w->poller, s->fd, OS_EV_READ, s) != 0) {
		log_warn("%08x poller add", s->id);
		session_close(s, "poller");
		return;
	}
	log_debug("%08x %s connected from %s", s->id, s->svc->name, s->peer);
	if (s->over_limit) {
		log_info("%08x %s refused %s: more than ThreadsPerIP=%d connections", s->id,
		        s->svc->name, s->peer, conf.threads_per_ip);
		if (s->svc->proto->busy) {
			s->svc->proto->busy(s);
		}
		session_close(s, "too many connections");
		return;
	}
	if ((s->svc->flags & SVC_TLS) && !(s->tls = server_tls_new())) {
		session_close(s, "tls setup");
		return;
	}
	s->svc->proto->open(s);
}

static struct worker *least_busy(void)
{
	struct worker *best = &workers[0];
	long least = os_atomic_load_long(&best->nsessions);
	for (int i = 1; i < nworkers; i++) {
		long n = os_atomic_load_long(&workers[i].nsessions); /* workers lower it */
		if (n < least) {
			best = &workers[i];
			least = n;
		}
	}
	return best;
}

/* accept failed, out of descriptors most likely: the listener would stay
 * readable and the loop spin, so it leaves the poller for a second
 * (clients wait in the backlog) and the log says so once a minute. Main
 * thread only. */
#define ACCEPT_PAUSE_MS 1000
#define ACCEPT_LOG_MS 60000
static int64_t accept_logged, accept_resume;
static long accept_failures;

static void accept_starved(struct service *svc)
{
	int64_t now = os_now_ms();
	accept_failures++;
	if (!accept_logged || now - accept_logged >= ACCEPT_LOG_MS) {
		log_warn("%s: accept failed (%ld time%s in the last minute); accepting again in %d ms",
			svc->name, accept_failures, accept_failures == 1 ? "" : "s", ACCEPT_PAUSE_MS);
		accept_logged = now;
		accept_failures = 0;
	}
	for (int j = 0; j < svc->nlfd; j++) {
		os_poller_del(accept_poller, svc->lfd[j]);
	}
	svc->accept_paused = 1;
	accept_resume = now + ACCEPT_PAUSE_MS;
}

static void listen_lock(void);
static void listen_unlock(void);

/* The listeners accept_starved took out go back once the pause is over. */
static void accept_unpause(void)
{
	if (!accept_resume || os_now_ms() < accept_resume) {
		return;
	}
	accept_resume = 0;
	listen_lock();
	for (int i = 0; i < nservices; i++) {
		struct service *svc = services[i];
		for (int j = 0; svc->accept_paused && j < svc->nlfd; j++) {
			os_poller_add(accept_poller, svc->lfd[j], OS_EV_READ, svc);
		}
		svc->accept_paused = 0;
	}
	listen_unlock();
}

static void accept_one(struct service *svc, os_fd lfd)
{
	for (int i = 0; i < 64; i++) {
		struct session tmp;
		os_fd fd = os_accept(lfd, tmp.peer, sizeof tmp.peer);
		if (fd == (os_fd)OS_AGAIN || fd == OS_BADFD) {
			if (fd == OS_BADFD) {
				accept_starved(svc);
			}
			return;
		}
		if (svc->suspended) {
			os_close(fd);
			continue;
		}
		struct session *s = xcalloc(1, sizeof *s);
		/* ThreadsPerIP, as the original's gatekeeper; this host's own
		 * 127.0.0.1 and ::1 are exempt, as Postfix exempts mynetworks */
		int local = !strcmp(tmp.peer, "127.0.0.1") || !strcmp(tmp.peer, "::1");
		if (gate_update(tmp.peer, G_OPEN, NULL) > conf.threads_per_ip && !local) {
			s->over_limit = 1;
		}
		memcpy(s->peer, tmp.peer, sizeof s->peer);
		os_local_addr(fd, s->local, sizeof s->local);
		s->fd = fd;
		s->svc = svc;
		s->id = os_atomic_add_u32(&next_id, 1);
		s->worker = least_busy();
		s->timeout_ms = conf.idle_timeout * 1000;
		buf_init(&s->in);
		buf_init(&s->out);
		counter_add(&svc->sessions, 1);
		counter_add(&svc->total, 1);
		counter_add(&s->worker->nsessions, 1);
		counter_add(&session_count, 1);
		/* Adopted without the session_service that follows a post: the
		 * greeting goes out through it as any other output. */
		worker_post(s->worker, session_adopt, s, NULL, 0);
	}
}

/* ---- workers ---- */

/* When worker_tick may next have something to do for s. */
static int64_t session_due(const struct session *s)
{
	if (s->closing) {
		return s->last_io + CLOSE_LINGER_MS;
	}
	return s->holds ? INT64_MAX : s->last_io + s->timeout_ms; /* a release walks */
}

/* Ends the sessions that timed out, lingered too long or must go as the
 * server or their service stops; then sets when the next walk is due, so
 * that idle sessions cost nothing until then (last_io only moves later,
 * and what moves a deadline earlier sets walk_at to 0). */
static void worker_tick(struct worker *w, int64_t now)
{
	struct session *s = w->sessions, *next;
	int64_t walk_at = now + WALK_MAX_MS;
	for (; s; s = next) {
		next = s->next;
		if (s->closing && (w->stop == 2 || now - s->last_io > CLOSE_LINGER_MS)) {
			/* a peer that reads nothing cannot keep a closed session */
			buf_reset(&s->out);
			session_free(s);
			continue;
		}
		/* stop 1: sessions with nothing under way go now; 2: all go */
		int quiet = !s->paused && s->in_off == s->in.len && s->svc->proto->can_stop &&
		            s->svc->proto->can_stop(s);
		int stopping =
		        !s->holds && (w->stop == 2 || (w->stop == 1 && quiet) || s->svc->stop_req);
		if (!s->closing && (stopping || (!s->holds && now - s->last_io > s->timeout_ms))) {
			void (*bye)(struct session *) =
			        stopping ? s->svc->proto->shutdown : s->svc->proto->timeout;
			if (bye) {
				bye(s);
			}
			session_close(s, stopping ? "server stopping" : "idle timeout");
			session_service(s);
		}
		if (s->fd != OS_BADFD && session_due(s) < walk_at) {
			walk_at = session_due(s);
		}
	}
	w->walk_at = walk_at;
}

/* ---- in-memory sessions (see rumble.h) ----
 *
 * The session has a worker of its own that no thread runs: what other
 * threads post to it waits in its inbox until session_mem_feed or
 * session_mem_run takes it, and timers are due at once. Its fd is
 * OS_BADFD, so nothing here ever reaches a socket or the poller. */

/* see rumble.h */
struct session *session_mem_open(struct service *svc, const char *peer)
{
	if (!gate_lock) {
		gate_lock = os_mutex_new(); /* AUTH's failed-login throttle */
	}
	struct worker *w = xcalloc(1, sizeof *w);
	w->lock = os_mutex_new();
	w->mem = 1;
	struct session *s = xcalloc(1, sizeof *s);
	s->id = os_atomic_add_u32(&next_id, 1);
	s->svc = svc;
	s->worker = w;
	s->fd = OS_BADFD;
	rl_strlcpy(s->peer, peer, sizeof s->peer);
	rl_strlcpy(s->local, "127.0.0.1", sizeof s->local);
	buf_init(&s->in);
	buf_init(&s->out);
	s->last_io = os_now_ms();
	svc->proto->open(s);
	return s;
}

/* Hands s its input, and output from a streaming protocol (writable:
 * the output counts as drained at once); 1 when anything moved. */
static int mem_serve(struct session *s)
{
	const struct proto *pr = s->svc->proto;
	size_t avail = s->in.len - s->in_off, out = s->out.len;
	if (!s->closing && !s->starttls) {
		session_dispatch(s);
	}
	for (int round = 0; pr->writable && !s->closing && round < 64; round++) {
		size_t before = s->out.len;
		int was_paused = s->paused;
		pr->writable(s);
		if (s->out.len == before && (s->paused || !was_paused)) {
			break;
		}
	}
	return s->in.len - s->in_off != avail || s->out.len != out;
}

/* Runs what was posted to s and its timers, and serves s, until nothing
 * is left to do now. */
static void mem_pump(struct session *s)
{
	struct worker *w = s->worker;
	for (;;) {
		int moved = mem_serve(s);
		os_mutex_lock(w->lock);
		struct task *t = w->inbox;
		w->inbox = w->inbox_tail = NULL;
		os_mutex_unlock(w->lock);
		struct timer *due = w->timers;
		w->timers = NULL;
		if (!t && !due && !moved) {
			return;
		}
		while (t) {
			struct task *next = t->next;
			t->fn(s, t->arg);
			if (t->release) {
				session_release(s);
			}
			free(t);
			t = next;
		}
		while (due) {
			struct timer *next = due->next;
			due->fn(s, due->arg);
			session_release(s);
			free(due);
			due = next;
		}
	}
}

/* see rumble.h */
void session_mem_feed(struct session *s, const void *p, size_t n)
{
	buf_append(&s->in, p, n);
	mem_pump(s);
}

/* see rumble.h */
int session_mem_run(struct session *s, int ms)
{
	int64_t until = os_now_ms() + ms;
	for (;;) {
		mem_pump(s);
		if (!s->holds) {
			return 0;
		}
		if (os_now_ms() >= until) {
			return -1;
		}
		os_sleep_ms(1);
	}
}

/* see rumble.h */
void session_mem_close(struct session *s)
{
	s->closing = 1;
	if (s->tap) {
		s->tap(s, NULL, 0);
		s->tap = NULL;
	}
	if (s->svc->proto->close) {
		s->svc->proto->close(s);
	}
	if (s->lua) {
		rl_session_end(s);
	}
	if (session_mem_run(s, 30000) != 0) {
		log_warnx("%08x in-memory session: work still out, not freed", s->id);
		return; /* a post to come would find it freed */
	}
	os_mutex_free(s->worker->lock);
	free(s->worker);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s);
}

/* ---- timers ---- */

void session_after(struct session *s, int ms, void (*fn)(struct session *, void *), void *arg)
{
	struct worker *w = s->worker;
	struct timer *t = xmalloc(sizeof *t), **p = &w->timers;
	*t = (struct timer){os_now_ms() + ms, s, fn, arg, NULL};
	while (*p && (*p)->due <= t->due) {
		p = &(*p)->next;
	}
	t->next = *p;
	*p = t;
	session_hold(s);
}

/* Runs what is due; returns the ms until the next timer, at most TICK_MS. */
static int run_timers(struct worker *w)
{
	int64_t now = w->stop == 2 ? INT64_MAX : os_now_ms(); /* stopping: all due */
	while (w->timers && w->timers->due <= now) {
		struct timer *t = w->timers;
		w->timers = t->next;
		t->fn(t->s, t->arg);
		session_release(t->s);
		session_service(t->s);
		free(t);
	}
	if (!w->timers) {
		return TICK_MS;
	}
	int64_t wait = w->timers->due - now;
	return wait < TICK_MS ? (int)wait : TICK_MS;
}

static void worker_main(void *arg)
{
	struct worker *w = arg;
	struct os_event ev[MAX_EVENTS];
	for (;;) {
		int n = os_poller_wait(w->poller, ev, MAX_EVENTS, run_timers(w));
		for (int i = 0; i < n; i++) {
			if (ev[i].ptr == w) {
				run_inbox(w);
			} else {
				session_event(ev[i].ptr, ev[i].events);
			}
		}
		run_timers(w);
		bury_dead(w);
		int64_t now = os_now_ms();
		if (now >= w->next_tick || w->stop) {
			w->next_tick = now + TICK_MS;
			if (w->stop || now >= w->walk_at || os_atomic_swap_int(&w->walk_now, 0)) {
				worker_tick(w, now);
			}
		}
		if (w->stop == 2 && !w->sessions) {
			run_inbox(w);
			if (!w->sessions && !w->held) {
				bury_dead(w);
				return;
			}
		}
	}
}

int server_start(int n)
{
	os_atomic_store_int(&halting, 0);
	nworkers = n > 0 ? n : os_ncpu();
	if (nworkers < 1) {
		nworkers = 1;
	}
	workers = xcalloc((size_t)nworkers, sizeof *workers);
	if (!gate_lock) {
		gate_lock = os_mutex_new();
	}
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		w->index = i;
		w->poller = os_poller_new();
		w->lock = os_mutex_new();
		if (!w->poller || os_wakeup_open(&w->wake) != 0 ||
		        os_poller_add(w->poller, w->wake.rfd, OS_EV_READ, w) != 0) {
			log_warn("worker %d: poller", i);
			return -1;
		}
	}
	for (int i = 0; i < nworkers; i++) {
		workers[i].thread = os_thread_start(worker_main, &workers[i]);
		if (!workers[i].thread) {
			log_warn("worker %d: thread", i);
			return -1;
		}
	}
	return 0;
}

/* ---- listeners and the main loop ---- */

/* Listeners open on workers (scripts) and close on the main thread:
 * this lock makes a start and a stop that cross each other come out
 * in one order or the other, never half of each. */
static os_mutex *listen_mx;

static void listen_lock(void)
{
	if (!listen_mx) {
		listen_mx = os_mutex_new(); /* first use: the main thread at start-up */
	}
	os_mutex_lock(listen_mx);
}

static void listen_unlock(void)
{
	os_mutex_unlock(listen_mx);
}

static int listen_locked(
        struct service *svc, const char *bind, int ipv4_only, char *err, size_t errlen);

int server_listen(struct service *svc, const char *bind, int ipv4_only, char *err, size_t errlen)
{
	listen_lock();
	int rc = listen_locked(svc, bind, ipv4_only, err, errlen);
	listen_unlock();
	return rc;
}

int server_relisten(struct service *svc, char *err, size_t errlen)
{
	listen_lock();
	svc->stop_req = 0; /* a stop not yet carried out is called off */
	int rc = svc->nlfd ? 0 : listen_locked(svc, conf.bind, conf.force_ipv4, err, errlen);
	listen_unlock();
	return rc;
}

static int listen_locked(
        struct service *svc, const char *bind, int ipv4_only, char *err, size_t errlen)
{
	if (!accept_poller && !(accept_poller = os_poller_new())) {
		snprintf(err, errlen, "cannot create a poller: %s", os_strerror());
		return -1;
	}
	if (nservices == (int)(sizeof services / sizeof services[0])) {
		snprintf(err, errlen, "too many services");
		return -1;
	}
	os_fd fd = os_listen(bind, svc->port, ipv4_only, err, errlen);
	if (fd == OS_BADFD) {
		return -1;
	}
	svc->lfd[svc->nlfd++] = fd;
	svc->stop_req = 0;
	int known = 0;
	for (int i = 0; i < nservices; i++) {
		known |= services[i] == svc;
	}
	if (!known) {
		services[nservices++] = svc;
	}
	svc->enabled = 1;
	if (svc->port == 0) {
		svc->port = os_sock_port(fd);
	}
	return os_poller_add(accept_poller, fd, OS_EV_READ, svc);
}

static void accept_ready(struct service *svc)
{
	for (int i = 0; i < svc->nlfd; i++) {
		accept_one(svc, svc->lfd[i]);
	}
}

void server_unlisten(struct service *svc)
{
	svc->stop_req = 1;
	for (int i = 0; i < nworkers; i++) {
		os_atomic_store_int(&workers[i].walk_now, 1); /* its sessions end */
	}
}

/* Closes svc's listening sockets; on the main thread only, which is the
 * one that accepts on them. */
static void close_service(struct service *svc)
{
	for (int j = 0; j < svc->nlfd; j++) {
		if (!svc->accept_paused) {
			os_poller_del(accept_poller, svc->lfd[j]);
		}
		os_close(svc->lfd[j]);
	}
	svc->nlfd = 0;
	svc->accept_paused = 0;
	svc->enabled = 0;
}

static void stop_requested(void)
{
	listen_lock();
	for (int i = 0; i < nservices; i++) {
		if (services[i]->stop_req && services[i]->nlfd) {
			log_info(
			        "%s stopped: port %d closed", services[i]->name, services[i]->port);
			close_service(services[i]);
		}
	}
	listen_unlock();
}

static int reload_req;

void server_request_reload(void)
{
	os_atomic_store_int(&reload_req, 1);
}

/* After a burst of sessions, what they held goes back to the system (the
 * allocator may keep it): when the count has fallen under half of its peak
 * (of at least TRIM_PEAK_MIN), looked at every TRIM_EVERY_MS. Main thread. */
#define TRIM_PEAK_MIN 32
#define TRIM_EVERY_MS 5000

static void trim_after_burst(void)
{
	static long peak;
	static int64_t last;
	long n = server_sessions();
	peak = n > peak ? n : peak;
	int64_t now = os_now_ms();
	if (now - last < TRIM_EVERY_MS) {
		return;
	}
	last = now;
	if (peak >= TRIM_PEAK_MIN && n < peak / 2) {
		os_memory_trim();
		peak = n;
	}
}

void server_run(void (*on_reload)(void))
{
	struct os_event ev[16];
	for (;;) {
		int n = os_poller_wait(accept_poller, ev, 16, 250);
		for (int i = 0; i < n; i++) {
			struct service *svc = ev[i].ptr;
			if (!svc->stop_req) {
				accept_ready(svc);
			}
		}
		stop_requested();
		accept_unpause();
		trim_after_burst();
		int sig = os_signal_take();
		if (os_atomic_swap_int(&reload_req, 0)) {
			sig |= OS_SIG_RELOAD;
		}
		if (sig & OS_SIG_STOP) {
			return;
		}
		if ((sig & OS_SIG_RELOAD) && on_reload) {
			on_reload(); /* it opens the log file again too */
		} else if (sig & OS_SIG_REOPEN) {
			log_reopen(); /* SIGUSR1: logrotate moved the file away */
		}
	}
}

static void close_listeners(void)
{
	listen_lock();
	for (int i = 0; i < nservices; i++) {
		close_service(services[i]);
	}
	listen_unlock();
}

static void stop_workers(int level)
{
	for (int i = 0; i < nworkers; i++) {
		workers[i].stop = level;
		os_wakeup_poke(&workers[i].wake);
	}
}

int server_stopping(void)
{
	return os_atomic_load_int(&halting);
}

void server_stop(int grace_ms)
{
	os_atomic_store_int(&halting, 1);
	close_listeners();
	stop_workers(1);
	int64_t until = os_now_ms() + grace_ms;
	while (server_sessions() > 0 && os_now_ms() < until) {
		os_sleep_ms(20);
	}
	stop_workers(2);
	for (int i = 0; i < nworkers; i++) {
		os_thread_join(workers[i].thread);
		os_poller_free(workers[i].poller);
		os_wakeup_close(&workers[i].wake);
		os_mutex_free(workers[i].lock);
	}
	xfree(workers);
	nworkers = 0;
}

/* ---- per client address: failed logins and open connections ---- */

#define GATE_SLOTS 4096
#define GATE_FORGET_S 600 /* failures older than this are forgotten */

struct gate {
	char ip[64];
	int failures;
	int64_t last; /* os_time() of the last failure */
	int conns;    /* sessions open now */
};
static struct gate gates[GATE_SLOTS];

#define GATE_PROBES 64

static unsigned gate_hash(const char *ip)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *ip; ip++) {
		h = (h ^ (unsigned char)*ip) * 16777619u;
	}
	return h;
}

/* The slot of ip, else a reusable one near its hash (no connections,
 * stalest failure), taken over for ip; NULL when all of those are busy.
 * Under gate_lock. */
static struct gate *gate_find(const char *ip, int64_t now)
{
	struct gate *old = NULL;
	unsigned h = gate_hash(ip);
	for (int i = 0; i < GATE_PROBES; i++) {
		struct gate *g = &gates[(h + (unsigned)i) % GATE_SLOTS];
		if (g->ip[0] && now - g->last > GATE_FORGET_S) {
			g->failures = 0;
		}
		if (!strcmp(g->ip, ip)) {
			return g;
		}
		if (!g->conns && (!old || g->last < old->last)) {
			old = g;
		}
	}
	if (old) {
		rl_strlcpy(old->ip, ip, sizeof old->ip);
		old->failures = old->conns = 0;
		old->last = 0;
	}
	return old;
}

/* Applies op for ip; returns the failures (G_FAIL, G_PEEK) or the open
 * connections (G_OPEN, G_CLOSE) after it. */
static int gate_update(const char *ip, enum gate_op op, int64_t *last)
{
	int64_t now = os_time();
	os_mutex_lock(gate_lock);
	struct gate *g = gate_find(ip, now);
	int n = 0;
	if (g) {
		switch (op) {
		case G_FAIL:
			g->failures++;
			g->last = now;
			break;
		case G_OPEN:
			g->conns++;
			break;
		case G_CLOSE:
			g->conns -= g->conns > 0;
			break;
		case G_PEEK:
			break;
		}
		n = op == G_OPEN || op == G_CLOSE ? g->conns : g->failures;
		if (last) {
			*last = g->last;
		}
	}
	os_mutex_unlock(gate_lock);
	return n;
}

/* The other keys in gates[]: failures from ip against one login name
 * ("ip/hash") and against the name from anywhere ("@hash"). The name is
 * hashed, lower-cased, to fit the key; a collision only shares a count. */
static void gate_key(char *key, size_t n, const char *ip, const char *user)
{
	unsigned h = 2166136261u;
	for (const char *p = user ? user : ""; *p; p++) {
		unsigned c = (unsigned char)*p;
		h = (h ^ (c - 'A' < 26 ? c + 32 : c)) * 16777619u;
	}
	snprintf(key, n, "%s%s%08x", ip ? ip : "", ip ? "/" : "@", h);
}

/* Takes n failures (all when n < 0) off key; returns how many it took. */
static int gate_take(const char *key, int n)
{
	os_mutex_lock(gate_lock);
	struct gate *g = gate_find(key, os_time());
	int took = 0;
	if (g) {
		took = n < 0 || n > g->failures ? g->failures : n;
		g->failures -= took;
	}
	os_mutex_unlock(gate_lock);
	return took;
}

int session_login_failed(const char *ip, const char *user)
{
	char key[64];
	gate_key(key, sizeof key, ip, user);
	gate_update(key, G_FAIL, NULL);
	gate_key(key, sizeof key, NULL, user);
	gate_update(key, G_FAIL, NULL);
	int n = gate_update(ip, G_FAIL, NULL);
	int shift = n > 6 ? 5 : n - 1;
	return 250 << shift; /* 250 ms, 500 ms, ... 8 s */
}

/* A success forgives only this address's failures against this name: its
 * failures against other names, and other addresses' against this one,
 * still count, so a known account cannot reset a brute force. */
void session_login_ok(const char *ip, const char *user)
{
	char key[64];
	gate_key(key, sizeof key, ip, user);
	int n = gate_take(key, -1);
	gate_take(ip, n);
	gate_key(key, sizeof key, NULL, user);
	gate_take(key, n);
}

int session_login_failures(const char *ip)
{
	return gate_update(ip, G_PEEK, NULL);
}

static int gate_blocked(const char *key, int limit)
{
	int64_t last = 0;
	int n = gate_update(key, G_PEEK, &last);
	return n >= limit && os_time() - last < conf.quarantine;
}

int session_login_blocked(const char *ip, const char *user)
{
	char key[64];
	if (gate_blocked(ip, conf.login_attempts)) {
		return 1;
	}
	gate_key(key, sizeof key, NULL, user);
	return user && gate_blocked(key, conf.account_login_attempts);
}

int session_auth_allowed(const struct session *s)
{
	return session_secure(s) || conf.plaintext_auth == AUTH_PLAIN_ALWAYS ||
	       (conf.plaintext_auth == AUTH_PLAIN_LOOPBACK && session_is_local(s));
}

int session_is_local(const struct session *s)
{
	return !strcmp(s->peer, "127.0.0.1") || !strcmp(s->peer, "::1");
}
