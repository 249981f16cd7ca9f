/*
 * rumble.h - what the modules of Rumble share. One section per module, in
 * the order of the file list in docs/ARCHITECTURE.md. Contracts live here;
 * definitions say "see rumble.h".
 */
#ifndef RUMBLE_H
#define RUMBLE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "os.h"

#define RUMBLE_VERSION "0.1.0"

#if defined(__MINGW_PRINTF_FORMAT)
#define RL_PRINTF(f, a) __attribute__((format(__MINGW_PRINTF_FORMAT, f, a)))
#define RL_NORETURN __attribute__((noreturn))
#elif defined(__GNUC__)
#define RL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RL_NORETURN __attribute__((noreturn))
#else
#define RL_PRINTF(f, a)
#define RL_NORETURN
#endif

/* ---- memory (log.c): allocation failure logs and aborts ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
#define xfree(p) \
	do { \
		free(p); \
		(p) = NULL; \
	} while (0)
/* Copy src into dst of size n, always terminated; returns strlen(src) so
 * that a result >= n means it was cut. */
size_t rl_strlcpy(char *dst, const char *src, size_t n);
int rl_strcasecmp(const char *a, const char *b);
int rl_strncasecmp(const char *a, const char *b, size_t n);
void rl_lower(char *s);

/* ---- logging (log.c) ---- */
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
#define LOG_RING_LINES 200
int log_open(const char *path); /* NULL or "" = stderr; -1 if it cannot open */
void log_set_level(int level);
int log_level_parse(const char *name); /* "debug".."error", -1 if unknown */
void log_msg(int level, const char *fmt, ...) RL_PRINTF(2, 3);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warnx(...) log_msg(LOG_WARN, __VA_ARGS__)
/* Like log_warnx, with ": " and os_strerror() appended. */
void log_warn(const char *fmt, ...) RL_PRINTF(1, 2);
void fatal(const char *fmt, ...) RL_PRINTF(1, 2) RL_NORETURN;
void fatalx(const char *fmt, ...) RL_PRINTF(1, 2) RL_NORETURN;
/* Calls fn for each line of the in-memory ring, oldest first. */
void log_ring_each(void (*fn)(const char *line, void *arg), void *arg);

/* ---- buffers (buf.c) ---- */
/* A growable byte string, NUL-terminated whenever data is not NULL. */
struct buf {
	char *data;
	size_t len, cap;
};
void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) RL_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_consume(struct buf *b, size_t n); /* drop n bytes from the front */
void buf_reset(struct buf *b);             /* len = 0, keeps the memory */

/* A message being received: in memory up to SPOOL_MEM_MAX, then spilled
 * to a temporary file in the folder given to spool_init. */
#define SPOOL_MEM_MAX (256 * 1024)
struct spool {
	struct buf mem;
	FILE *f;
	char path[512];
	const char *tmpdir;
	uint64_t len;
	int failed; /* a write failed; the message must be refused (451) */
};
void spool_init(struct spool *sp, const char *tmpdir);
int spool_write(struct spool *sp, const void *p, size_t n); /* -1 on I/O error */
/* Reads up to n bytes at off; returns the count (0 at the end), -1 error. */
long spool_read(struct spool *sp, uint64_t off, void *buf, size_t n);
void spool_free(struct spool *sp); /* removes the file, if any */

/* ---- configuration (config.c) ---- */
/* rumble.conf as read: "Key value" lines after <if> blocks are resolved.
 * Keys compare case-insensitively; repeatable keys keep every value. */
struct config_entry {
	char *key, *value, *file;
	int line;
	struct config_entry *next;
};
struct config {
	struct config_entry *head, *tail;
};
/* Parses text (name is used in messages); on error fills err with
 * "name:line: reason" and returns -1. */
int config_parse(struct config *c, const char *text, const char *name, char *err, size_t errlen);
int config_load(struct config *c, const char *path, char *err, size_t errlen);
void config_free(struct config *c);
const char *config_get(const struct config *c, const char *key); /* last value or NULL */
const struct config_entry *config_find(const struct config *c, const char *key);

/* The typed settings the server runs with. */
struct settings {
	char server_name[256];
	char storage[1024];
	char bind[256];
	int force_ipv4;
	int smtp_enable, smtp_port;
	int pop3_enable, pop3_port;
	int imap_enable, imap_port;
	uint64_t message_size_limit;
	int enforce_fqdn;
	char run_as[64], run_as_group[64];
	int block_outgoing;
	int delivery_attempts, retry_interval, ignore_mx;
	char **scripts;
	int nscripts;
	char log_file[1024];
	int log_level;
	int workers;
	int max_recipients;
	int max_errors;   /* SMTP errors before the session is dropped */
	int idle_timeout; /* seconds */
	/* TLS, authentication, submission (issue 5) */
	char tls_cert[1024], tls_key[1024]; /* "" = self-signed, made on first start */
	int smtps_enable, smtps_port;
	int submission_enable, submission_port;
	int pop3s_enable, pop3s_port;
	int imaps_enable, imaps_port;
	int plaintext_auth; /* AUTH_PLAIN_NEVER, _LOOPBACK or _ALWAYS without TLS */
	int login_attempts, quarantine; /* failures before an IP is shut out, seconds */
	int threads_per_ip;             /* concurrent connections per client address */
	int auth_sender_match;          /* MAIL FROM of an authenticated user is checked */
	struct config raw;
};
extern struct settings conf;
enum { AUTH_PLAIN_NEVER, AUTH_PLAIN_LOOPBACK, AUTH_PLAIN_ALWAYS };
/* Fills s from c (defaults for what is missing); -1 with "file:line:
 * reason" in err on a bad value. Takes ownership of c. */
int config_apply(struct settings *s, struct config *c, char *err, size_t errlen);
void settings_free(struct settings *s);
/* The configuration Rumble uses when no file is given or found. */
extern const char config_default_text[];

/* ---- crypto (crypto.c, the only file that includes BearSSL) ---- */
void crypto_sha256(const void *data, size_t n, uint8_t out[32]);
void crypto_sha256_hex(const void *data, size_t n, char out[65]);
/* out must hold 4 * ((n + 2) / 3) + 1 bytes; returns the length written. */
size_t crypto_base64_encode(const void *in, size_t n, char *out);
/* Decodes, skipping white space; returns the length or -1 on bad input or
 * when out (outlen bytes) is too small. */
long crypto_base64_decode(const char *in, size_t n, void *out, size_t outlen);
/* Constant-time comparison; 1 when equal. */
int crypto_equal(const void *a, const void *b, size_t n);
/* "pbkdf2-sha256$ITER$SALTHEX$HASHHEX" with a random salt. */
#define CRYPTO_HASH_MAX 160
/* 0 on success; -1 when out is too small or the OS gives no randomness. */
int crypto_password_hash(const char *password, char *out, size_t outlen);
/* 1 when password matches stored, which is either the PBKDF2 form above
 * or a legacy 64-hex SHA-256 digest of the password. */
int crypto_password_verify(const char *stored, const char *password);
/* PBKDF2-HMAC-SHA256 (RFC 8018): derives outlen bytes from pw and salt
 * with iter iterations. 0, or -1 when iter or outlen is 0. Exposed for the
 * known-answer tests; passwords go through crypto_password_hash. */
int crypto_pbkdf2_sha256(const char *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
	uint32_t iter, uint8_t *out, size_t outlen);

/* ---- mailman.c: domains, accounts, address matching, the mbox store ---- */
enum mm_type { MM_MBOX, MM_ALIAS, MM_FEED, MM_RELAY, MM_MOD };
#define MM_USER_MAX 64     /* RFC 5321 local part */
#define MM_DOMAIN_MAX 253  /* RFC 1035 */
#define MM_FOLDER_MAX 200
#define MM_ARGS_MAX 1024

struct mm_domain {
	uint32_t id;
	char name[MM_DOMAIN_MAX + 1];
	char path[512]; /* storage path override, "" = default */
	uint32_t flags;
};
struct mm_account {
	uint32_t id; /* assigned on first save, never reused */
	char domain[MM_DOMAIN_MAX + 1];
	char user[MM_USER_MAX + 1]; /* may be a GLOB pattern: *, j*, sales-? */
	enum mm_type type;
	char password[CRYPTO_HASH_MAX];
	char args[MM_ARGS_MAX]; /* alias targets, feed command, relay host */
};

/* Sets the storage folder, creates what is missing, loads the lists. */
int mm_open(const char *storage, char *err, size_t errlen);
void mm_close(void);
const char *mm_storage(void);
/* Every lookup sees changes other processes (the CLI) made: it re-reads
 * the files when their stamps changed. mm_reload forces it. */
void mm_reload(void);

int mm_valid_domain(const char *d);
int mm_valid_user(const char *u, int allow_glob);
int mm_valid_folder(const char *f);
int mm_glob_match(const char *pattern, const char *s); /* case-insensitive */
const char *mm_type_name(enum mm_type t);
int mm_type_parse(const char *name); /* -1 if unknown */

int mm_domain_exists(const char *name);
int mm_domain_count(void);
int mm_domain_add(const char *name, char *err, size_t errlen);
int mm_domain_del(const char *name, char *err, size_t errlen);
int mm_domain_list(int (*fn)(const struct mm_domain *d, void *arg), void *arg);

int mm_account_get(const char *domain, const char *user, struct mm_account *out);
int mm_account_get_id(uint32_t id, struct mm_account *out);
/* The account that takes mail for user@domain: the exact name, else the
 * longest matching GLOB pattern. 0 found, -1 none. */
int mm_account_match(const char *domain, const char *user, struct mm_account *out);
/* Adds, or updates the account with a->id (or domain+user when id is 0).
 * Names are stored lower-case. Sets a->id. */
int mm_account_save(struct mm_account *a, char *err, size_t errlen);
int mm_account_del(const char *domain, const char *user, char *err, size_t errlen);
/* Checks a login for POP3, IMAP and SMTP AUTH: "user@domain", or a bare
 * "user" when the server has exactly one domain; the account must be a
 * mailbox. Takes as long for an unknown name as for a wrong password.
 * 0 with *out filled on success, -1 otherwise. */
int mm_login(const char *login, const char *password, struct mm_account *out);
int mm_account_list(const char *domain, int (*fn)(const struct mm_account *a, void *arg), void *arg);

/* Message flags in the index */
#define MM_SEEN 0x01
#define MM_ANSWERED 0x02
#define MM_FLAGGED 0x04
#define MM_DELETED 0x08
#define MM_DRAFT 0x10
#define MM_EXPUNGED 0x80000000u

struct mm_msg {
	uint32_t uid;
	uint64_t offset; /* of the message in the mbox, after its From_ line */
	uint32_t length; /* bytes in the mbox (LF, mboxrd-quoted) */
	uint32_t size;   /* bytes as served: CRLF, unquoted (RFC822.SIZE) */
	uint32_t flags;
	uint32_t keywords; /* bit i = keyword i of the folder */
	int64_t date;      /* internal date, seconds since the epoch */
	uint64_t modseq;
	uint64_t qid; /* queue id it was delivered from, 0 if none */
};

struct mm_folder; /* an open folder: mbox + index, loaded in memory */
/* Opens mail/<domain>/<user>/<folder> (user and domain lower-case,
 * folder "INBOX" or a validated name); create makes it when missing. */
int mm_folder_open(const char *domain, const char *user, const char *folder, int create,
	struct mm_folder **out);
void mm_folder_close(struct mm_folder *f);
uint32_t mm_folder_count(struct mm_folder *f);
const struct mm_msg *mm_folder_msg(struct mm_folder *f, uint32_t i);
uint32_t mm_folder_uidvalidity(struct mm_folder *f);
uint32_t mm_folder_uidnext(struct mm_folder *f);
/* Appends the message in sp (wire form: CRLF lines) with an mbox From_
 * line naming from; writes, does not fsync. 0 and *uid on success. */
int mm_folder_append(struct mm_folder *f, struct spool *sp, const char *from, int64_t date,
	uint32_t flags, uint64_t qid, uint32_t *uid);
int mm_folder_sync(struct mm_folder *f); /* fsync the mbox, then the index */
/* 1 when one of the last messages came from queue id qid (exactly-once
 * redelivery after a crash). */
int mm_folder_has_qid(struct mm_folder *f, uint64_t qid);
/* Reads message i in wire form (CRLF, unquoted) into out. */
int mm_msg_read(struct mm_folder *f, uint32_t i, struct buf *out);
int mm_msg_set_flags(struct mm_folder *f, uint32_t i, uint32_t flags);
/* Marks every message flagged MM_DELETED as expunged. */
int mm_folder_expunge(struct mm_folder *f);
/* Rewrites the mbox without expunged messages, atomically; UIDs stay. */
int mm_folder_compact(struct mm_folder *f);
/* Re-reads the index if another process or thread changed it. */
int mm_folder_refresh(struct mm_folder *f);
int mm_folder_list(const char *domain, const char *user,
	int (*fn)(const char *name, void *arg), void *arg);

/* Shared by mailman.c and mbox.c only (the mbox store lives in mbox.c). */
/* A name as a file name: bytes outside [a-z0-9._-] (upper case too, for
 * case-insensitive file systems), a leading or trailing '.' and the first
 * byte of a Windows device name (con, nul, com1, ...) become "%XX". -1
 * when it does not fit outlen. */
int mm__fs_name(const char *name, char *out, size_t outlen);
/* The folder holding a domain's users: the domain's path override or
 * <storage>/mail/<domain>. */
int mm__domain_dir(const char *domain, char *out, size_t outlen);

/* ---- sessions and the event loop (session.c) ---- */
struct session;

/* A protocol: a state machine fed with lines. It never touches sockets;
 * it answers through session_write/session_printf. */
struct proto {
	const char *name;
	size_t line_max; /* a longer line arrives in pieces of line_max bytes */
	void (*open)(struct session *s); /* greet; s->ps is NULL before */
	/* A line with its terminator ("\n" or "\r\n"), NUL-terminated; or a
	 * piece of line_max bytes without one. Valid only during the call. */
	void (*line)(struct session *s, char *line, size_t len);
	void (*timeout)(struct session *s);  /* idle too long; NULL = close */
	void (*writable)(struct session *s); /* output drained; NULL = ignore */
	void (*close)(struct session *s);    /* free s->ps */
	/* Refused (ThreadsPerIP): one line saying so; open() is not called. */
	void (*busy)(struct session *s);
};

struct service {
	const char *name; /* "smtp", "pop3", "imap4" */
	const struct proto *proto;
	int enabled, port;
	os_fd lfd[4];
	int nlfd;
	int suspended; /* refuse new sessions, keep running ones */
	int flags;     /* SVC_* */
	/* counters for Rumble.serviceInfo(); updated atomically */
	volatile long sessions, total, received, sent, rejected;
};

#define SVC_TLS 1       /* implicit TLS: the handshake comes first (465, 993, 995) */
#define SVC_AUTH_FIRST 2 /* submission: no mail without AUTH (587) */

struct worker;
struct tls;
struct session {
	uint32_t id;
	struct service *svc;
	struct worker *worker;
	os_fd fd;
	char peer[64];  /* remote address as text */
	char local[64]; /* local address as text */
	struct buf in, out;
	size_t in_off; /* bytes of in already handed to the protocol */
	void *ps;      /* the protocol's state */
	struct tls *tls; /* the TLS engine once TLS is on, else NULL */
	int64_t last_io;
	int timeout_ms;
	int holds; /* work on other threads that will post back */
	unsigned paused : 1, closing : 1, eof : 1, reading_off : 1, discard_in : 1, write_on : 1,
	    over_limit : 1;
	char reason[64];
	struct session *prev, *next; /* the worker's list, for timeouts */
};

/* Listens for svc on bind (empty = all addresses); fills svc->lfd. */
int server_listen(struct service *svc, const char *bind, int ipv4_only, char *err, size_t errlen);
int server_start(int nworkers);
/* Runs until a stop signal; calls on_reload for SIGHUP. */
void server_run(void (*on_reload)(void));
/* Stops accepting, lets sessions end within grace_ms, closes the rest. */
void server_stop(int grace_ms);
int server_sessions(void);

void session_write(struct session *s, const void *p, size_t n);
void session_printf(struct session *s, const char *fmt, ...) RL_PRINTF(2, 3);
/* Ends the session once its output is written. */
void session_close(struct session *s, const char *reason);
/* Stop/restart handing lines to the protocol (e.g. while a message is
 * being committed); input stays buffered. */
void session_pause(struct session *s);
void session_resume(struct session *s);
/* Throw away input received but not yet handed over (STARTTLS). */
void session_discard_input(struct session *s);
/* Keep s alive for work on another thread, which must then call
 * session_post exactly once: fn(s, arg) runs on s's worker thread (even
 * when s is closing: fn must then only free arg). */
void session_hold(struct session *s);
void session_post(struct session *s, void (*fn)(struct session *s, void *arg), void *arg);
#define session_closing(s) ((s)->closing)
#define session_secure(s) ((s)->tls != NULL)
/* May the client send a password now? Over TLS always; in the clear as
 * AllowPlaintextAuth says. */
int session_auth_allowed(const struct session *s);
/* Runs fn(s, arg) on s's worker after ms milliseconds (even when s is
 * closing by then, as for session_post). Call on s's worker only. Use with
 * session_pause for a delayed answer that holds no thread. */
void session_after(struct session *s, int ms, void (*fn)(struct session *s, void *arg), void *arg);
/* Failed logins per client address, shared by every protocol: record a
 * failure and get the delay (ms) to wait before answering it; it grows
 * with the failures of the last ten minutes. A success clears them. */
int session_login_failed(const char *ip);
void session_login_ok(const char *ip);
int session_login_failures(const char *ip);
/* 1 when ip failed LoginAttempts times, the last within Quarantine s. */
int session_login_blocked(const char *ip);
/* The client is this host itself: 127.0.0.1 or ::1 (other 127/8
 * addresses count as remote, so tests can play a remote client). */
int session_is_local(const struct session *s);


/* ---- queue.c: committing received mail, delivery, the queue folder ---- */
/* A message with its envelope, as SMTP (or a script) hands it over. */
struct queue_msg {
	uint64_t qid;
	char *from;   /* envelope sender, "" for the null sender */
	char **rcpts; /* addresses as given, already checked */
	int nrcpt;
	struct spool body; /* wire form, CRLF, with the Received header */
	int64_t date;
	int status; /* set by the commit: 0 durable, -1 failed (reply 451) */
};
struct queue_msg *queue_msg_new(const char *from);
void queue_msg_add_rcpt(struct queue_msg *m, const char *rcpt);
void queue_msg_free(struct queue_msg *m);
uint64_t queue_new_id(void);

/* Starts the committer and delivery threads; delivers what a crash left
 * in the queue folder. */
int queue_start(void);
void queue_stop(void);
/* Makes m durable: local recipients are appended to their mailboxes, the
 * rest go to the queue folder; all fsynced together with other messages
 * committed at the same moment. Then done(s, m) runs on s's worker, which
 * owns m again. */
void queue_commit(struct session *s, struct queue_msg *m,
	void (*done)(struct session *s, void *m));
/* The same, blocking the calling thread (CLI, scripts). */
int queue_commit_wait(struct queue_msg *m);

/* What an address means here. */
enum rcpt_kind { RCPT_LOCAL, RCPT_REMOTE, RCPT_UNKNOWN, RCPT_BAD };
/* Classifies user@domain: a local domain with a matching account, a local
 * domain without one, another domain, or a malformed address. */
enum rcpt_kind queue_classify(const char *addr, struct mm_account *acct);

/* ---- smtp.c ---- */
extern const struct proto smtp_proto;
/* Parses "FROM:<addr> params" (prefix "FROM:" or "TO:") into addr; params
 * points at what follows. 0 ok ("" for <>), -1 bad syntax. */
int smtp_parse_path(char *arg, const char *prefix, char *addr, size_t addrlen, char **params);

#endif
