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

#define RL_PRINTF(f, a) OS_PRINTF(f, a)
#define RL_NORETURN OS_NORETURN

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
/* The mutex in *slot, made on first use by whichever thread comes first
 * (for a file's static lock). */
struct os_mutex *rl_mutex_once(struct os_mutex **slot);

/* ---- logging (log.c) ---- */
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
#define LOG_RING_LINES 200
int log_open(const char *path); /* NULL or "" = stderr; -1 if it cannot open */
int log_reopen(void); /* the file again under its name (logrotate); -1: old one kept */
/* Rotation by size: past max_size bytes (0 = never) rumble.log becomes
 * rumble.log.1, and .1 .2 and so on up to .keep. */
void log_rotate(uint64_t max_size, int keep);
/* Administration actions: at any LogLevel; to path when log_open_audit
 * opened one (a command-line process writing into the server's log). */
int log_open_audit(const char *path);
void log_audit(const char *fmt, ...) RL_PRINTF(1, 2);
/* A client's text for a log value: control characters (and spaces when
 * the value is not quoted) as '?', '"' as '\'', at most n - 1 bytes.
 * Returns out. */
char *log_value(char *out, size_t n, const char *v, int quoted);
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
/* Calls fn for each line of the in-memory ring, oldest first, under the
 * log's lock: fn must not log, nor leave by longjmp (a Lua error). */
void log_ring_each(void (*fn)(const char *line, void *arg), void *arg);
/* The last LOG_ERRORS warning and error lines (cut to LOG_ERROR_LEN - 1
 * bytes) into out, oldest first; returns how many (the dashboard's). */
#define LOG_ERRORS 10
#define LOG_ERROR_LEN 256
int log_errors(char out[][LOG_ERROR_LEN]);

/* stats.c (stats.h has the rest): mail counted per hour, any thread */
enum stats_kind { STATS_IN, STATS_OUT, STATS_REFUSED, STATS_KINDS };
void stats_count(enum stats_kind k);
void stats_reply(int code); /* an SMTP reply: 530 and 55x count as refused */
void stats_tick(int64_t now); /* saves when changed, at most once a minute */

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
#define SPOOL_NOSPACE 2 /* failed for lack of disk space (452) */
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
/* The last value or NULL (config_apply leaves one entry of each single-valued
 * key in settings.raw: the first, as the original Rumble did). */
const char *config_get(const struct config *c, const char *key);
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
	char ignore_mx_hosts[1024]; /* IgnoreMX as a list: MX hosts never used, lower case */
	char outbound_bind[64];     /* OutgoingBindToAddress: "" = the system's choice */
	/* outbound SMTP (outbound.c) */
	int retry_max;       /* MaxRetryInterval: the back-off stops growing here, s */
	int queue_lifetime;  /* QueueLifetime: bounce what is still queued after this, s */
	char relay_host[300]; /* RelayHost: "" = MX delivery; host[:port] = smarthost */
	char postmaster[320]; /* Postmaster: the local address "postmaster" goes to */
	int outbound_port;   /* OutboundPort: remote servers' SMTP port (25) */
	int outbound_timeout; /* OutboundTimeout: per reply, s (end of data: twice) */
	int outbound_threads; /* OutboundThreads: concurrent outbound deliveries */
	int outbound_tls;    /* OutboundTLS: use STARTTLS when offered */
	char tls_policy[2048]; /* TLSPolicy lines: "domain:mode ..." (mtasts.c) */
	int mta_sts;         /* MTASTS: honour destinations' MTA-STS policies */
	int mta_sts_port;    /* MTASTSPort: their policy hosts' HTTPS port (443) */
	char tls_ca_file[1024]; /* TLSCAFile: CAs for verify; "" = the system's */
	char **scripts;
	int nscripts;
	char smtp_script[1024]; /* SMTPScript: a VPOP3-style SMTPSVR.LUA, "" = none */
	char dnsbl[1024];       /* DNSBL: blocklist zones for the SMTP port, "" = none */
	int dkim_sign;          /* DKIMSign: sign mail that leaves (dkim.c) */
	int greylist;           /* Greylist: greylist.c on the SMTP port */
	int spf_check;          /* SPFCheck: check the sender (spf.c), add Received-SPF */
	int spf_reject;         /* SPFReject: refuse MAIL when SPF says fail */
	int dkim_verify;        /* DKIMVerify: check inbound DKIM (dkim_verify.c) */
	int dmarc;              /* DMARC: apply the From domain's policy (dmarc.c) */
	int dmarc_reject;       /* DMARCReject: p=reject refuses (else to Junk) */
	int greylist_delay;     /* GreylistDelay: s before a retry passes */
	char dkim_selector[64]; /* DKIMSelector */
	/* DraftsFolder, SentFolder, TrashFolder, JunkFolder, ArchiveFolder: the
	 * special-use folders (RFC 6154) every account gets, in SPECIAL_USE_*
	 * order; "" (configured as "none") = not made */
	char special_use[5][64];
	char log_file[1024];
	char pid_file[1024]; /* PidFile: "" = StorageFolder/rumble.pid, "none" = no file */
	int log_level;
	uint64_t log_max_size; /* LogMaxSize: rotate past this many bytes, 0 = never */
	int log_keep;          /* LogKeep: rotated files kept */
	int workers;
	int max_recipients;
	int max_errors;   /* SMTP errors before the session is dropped */
	int idle_timeout; /* seconds */
	int line_timeout;  /* LineTimeout: s to send one command line */
	int login_timeout; /* LoginTimeout: s a session may go without login */
	int compact_hour;  /* CompactHour: local hour of the daily compaction, -1 none */
	/* TLS, authentication, submission (issue 5) */
	char tls_cert[1024], tls_key[1024]; /* "" = self-signed, made on first start */
	int smtps_enable, smtps_port;
	int submission_enable, submission_port;
	int pop3s_enable, pop3s_port;
	int imaps_enable, imaps_port;
	int managesieve_enable, managesieve_port; /* RFC 5804, managesieve.c */
	int plaintext_auth; /* AUTH_PLAIN_NEVER, _LOOPBACK or _ALWAYS without TLS */
	int login_attempts, quarantine; /* failures before an IP is shut out, seconds */
	int account_login_attempts;    /* failures before a login name is shut out */
	int min_password_length;       /* MinPasswordLength: for new passwords, 0 = no checks */
	int auth_cache_time;            /* AuthCacheTime: s a login is remembered, 0 = never */
	int threads_per_ip;             /* concurrent connections per client address */
	int auth_sender_match;          /* MAIL FROM of an authenticated user is checked */
	char dns_server[512];           /* DNSServer: "" = the system's resolvers */
	uint64_t lua_memory_limit;      /* LuaMemoryLimit: bytes per Lua state */
	int lua_instruction_limit;      /* LuaInstructionLimit: per script call */
	int lua_time_limit;             /* LuaTimeLimit: seconds one run of a script may take */
	/* the web admin (lua/webadmin.c) */
	int webadmin_enable;        /* EnableWebAdmin */
	char webadmin_bind[256];    /* WebAdminBind: 127.0.0.1 unless set */
	int webadmin_port;          /* WebAdminPort */
	char webadmin_users[1024];  /* WebAdmin lines: addresses, space-separated */
	char metrics_from[512];     /* MetricsFrom: addresses /metrics answers without a token */
	char metrics_token[256];    /* MetricsToken: its bearer token; both "" = no /metrics */
	/* DefaultQuota: an account's limits when neither it nor its domain
	 * has its own (quota.c); KiB and messages, 0 = none */
	uint64_t quota_kib, quota_msgs;
	/* ACME (acme.c, wellknown.c) */
	int acme_enable;          /* ACME */
	char acme_directory[512]; /* ACMEDirectory: Let's Encrypt's unless set */
	char acme_email[256];     /* ACMEEmail: "" = no contact */
	char acme_names[1024];    /* ACMENames: more names than ServerName */
	char acme_ca[1024];       /* ACMECA: a CA file for the directory's HTTPS */
	int acme_http_port;       /* ACMEHTTPPort: the HTTP-01 responder, 80 */
	char acme_challenge[16];  /* ACMEChallenge: http-01 or tls-alpn-01 */
	char mta_sts_mode[16];    /* MTASTSMode: our policy's mode (testing) */
	int acme_tls_port;        /* ACMETLSPort: TLS-ALPN-01's listener, 443 */
	int acme_renew_days;      /* ACMERenewDays: renew this long before the end; 0 = at 2/3 */
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
/* Incremental SHA-256 (BearSSL's state, opaque here). */
typedef struct {
	uint64_t opaque[16];
} crypto_sha256_ctx;
void crypto_sha256_init(crypto_sha256_ctx *c);
void crypto_sha256_update(crypto_sha256_ctx *c, const void *p, size_t n);
void crypto_sha256_final(crypto_sha256_ctx *c, uint8_t out[32]);
/* RSA keys (for DKIM): crypto_rsa_create writes a new key of bits (2048
 * to 4096) to path as PKCS#1 PEM, private to the owner; load reads one
 * (PKCS#1 or PKCS#8 PEM); public_b64 gives its SubjectPublicKeyInfo in
 * base64 (a DKIM record's p=); sign_sha256 makes a PKCS#1 v1.5
 * signature of a SHA-256 hash into sig and returns its length (0 on
 * error). */
struct crypto_rsa;
int crypto_rsa_create(const char *path, unsigned bits, char *err, size_t errlen);
struct crypto_rsa *crypto_rsa_load(const char *path, char *err, size_t errlen);
void crypto_rsa_free(struct crypto_rsa *k);
int crypto_rsa_public_b64(const struct crypto_rsa *k, char *out, size_t outlen);
size_t crypto_rsa_sign_sha256(const struct crypto_rsa *k, const uint8_t hash[32], uint8_t *sig, size_t len);
/* Verifies a PKCS#1 v1.5 RSA signature of a SHA-256 hash with a public key
 * in DER (SubjectPublicKeyInfo or RSAPublicKey): 1 good, 0 bad, -1 an
 * unusable key, -2 a key of less than 1024 bits (RFC 8301). */
int crypto_rsa_verify_sha256(const uint8_t *der, size_t len, const uint8_t *sig, size_t siglen,
	const uint8_t hash[32]);
/* SHA-512 of data followed by data2 (either may be empty). */
void crypto_sha512(const void *data, size_t n, const void *data2, size_t n2, uint8_t out[64]);
/* Ed25519 (RFC 8032) verification (ed25519.c): 1 when sig is pub's
 * signature of msg. Only public values go in, so it need not be
 * constant-time. */
int crypto_ed25519_verify(const uint8_t pub[32], const uint8_t *msg, size_t n, const uint8_t sig[64]);
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
/* ---- password.c: what a new password must be ---- */
/* 0 when pw may be set: MinPasswordLength characters (0: no checks) and
 * not a common password; else -1 with a one-line reason in why. Only new
 * or changed passwords are checked, never a login. */
int password_check(const char *pw, char *why, size_t len);
/* 1 when pw, in any case, is one of the 10,000 most common passwords. */
int password_common(const char *pw);
/* 1 when key is one of the words of blob[0..len), tools/passwords.py's
 * format (sorted words front coded in blocks). Exposed for the unit tests. */
int password_in_list(const char *blob, size_t len, const char *key);
/* 1 when password matches stored, which is either the PBKDF2 form above
 * or a legacy 64-hex SHA-256 digest of the password. */
int crypto_password_verify(const char *stored, const char *password);
/* PBKDF2-HMAC-SHA256 (RFC 8018): derives outlen bytes from pw and salt
 * with iter iterations. 0, or -1 when iter or outlen is 0. Exposed for the
 * known-answer tests; passwords go through crypto_password_hash. */
int crypto_pbkdf2_sha256(const char *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
	uint32_t iter, uint8_t *out, size_t outlen);

/* SASL PLAIN (RFC 4616) and LOGIN on the server side, shared by SMTP
 * AUTH, POP3 AUTH and IMAP AUTHENTICATE: the mechanisms' steps and their
 * base64; the protocol adds its own continuation marker ("334 ", "+ ")
 * and replies. */
enum sasl_step { SASL_IDLE, SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS };
enum sasl_result {
	SASL_CHALLENGE, /* send *challenge (base64, may be "") and wait for a line */
	SASL_DONE,      /* x->login and x->password hold the credentials */
	SASL_MALFORMED, /* bad base64 or PLAIN layout; the exchange is over */
	SASL_CANCELLED, /* the client sent "*" */
	SASL_NOMECH     /* not PLAIN or LOGIN */
};
/* Zeroes n bytes at p in a way the compiler keeps (secrets). */
void crypto_wipe(void *p, size_t n);

/* ---- authcache.c: successful logins remembered (AuthCacheTime) ---- */
/* 1 when name ("user@domain") logged in with password while its stored
 * hash was stored, less than AuthCacheTime seconds ago. */
int auth_cache_hit(const char *name, const char *stored, const char *password);
/* Remembers a successful login; never call it for a failed one. */
void auth_cache_add(const char *name, const char *stored, const char *password);
void auth_cache_clear(void);
struct sasl {
	enum sasl_step step; /* SASL_IDLE when no exchange is under way */
	char login[320];
	char password[512];
};
/* Starts mech with the client's initial response (NULL or "" if none;
 * "=" is an empty one). */
enum sasl_result crypto_sasl_start(
        struct sasl *x, const char *mech, const char *initial, const char **challenge);
/* The client's next line. */
enum sasl_result crypto_sasl_step(struct sasl *x, const char *line, const char **challenge);
/* Ends the exchange and wipes the password; call after SASL_DONE too. */
void crypto_sasl_reset(struct sasl *x);

/* TLS: a server engine on BearSSL's, with no socket inside. Bytes go in
 * and out through the calls below; the caller owns the socket, the
 * poller and the timeouts. TLS 1.2 only, ECDHE with AES-GCM or
 * ChaCha20-Poly1305 only, the server's order, no renegotiation.
 *
 * The server's credentials (struct tls_ctx) are loaded once and shared
 * by every session on every thread; each session's engine (struct tls)
 * belongs to one thread. A tls_ctx lives as long as the last session
 * that uses it: tls_ctx_free drops the loader's reference, tls_free a
 * session's, so a reload may free the old one while sessions go on.
 *
 * Driving an engine from a non-blocking loop (what tls_state says):
 *  1. TLS_SENDREC: ciphertext waits for the socket. tls_pull_out gives a
 *     pointer and length; write it and call tls_sent with what went out.
 *     Watch for writability while anything is left.
 *  2. TLS_RECVAPP: plaintext arrived; tls_read it (until it returns 0).
 *  3. TLS_SENDAPP: plaintext may be written: tls_write (it may take
 *     less than given; keep the rest), then tls_flush once the replies
 *     of this round are written. Nothing leaves without tls_flush.
 *  4. TLS_RECVREC: the engine wants ciphertext: read the socket straight
 *     into tls_in_buf and tls_in_ack what came (or tls_push_in from a
 *     buffer of your own: it may take less; keep the rest). Watch for
 *     readability only in this state.
 *  5. TLS_CLOSED: tls_failed is 1; log tls_error and close the socket.
 * Repeat until no step makes progress. The record buffer is shared by
 * both directions ("mono", to keep an idle session small), so the
 * engine is half-duplex: written plaintext blocks reading until it is
 * flushed and sent, and a record being received blocks writing until it
 * is complete and read. So drain tls_read before answering (a record is
 * at most 16 KB), and hold input back by not reading the socket, never
 * by leaving plaintext in the engine. Request/response protocols never
 * notice otherwise. */
#define TLS_CLOSED 0x01  /* failed or closed; nothing more will happen */
#define TLS_SENDREC 0x02 /* ciphertext to send: tls_pull_out */
#define TLS_RECVREC 0x04 /* ciphertext wanted: tls_in_buf / tls_push_in */
#define TLS_SENDAPP 0x08 /* plaintext accepted: tls_write */
#define TLS_RECVAPP 0x10 /* plaintext ready: tls_read */
#define TLS_CHAIN_MAX 8  /* certificates in a chain file */

struct tls_ctx;
/* Loads a PEM certificate chain (leaf first) and a PEM private key (RSA
 * of 2048 bits or more, or EC P-256/384/521; PKCS#8 or the traditional
 * "RSA PRIVATE KEY" / "EC PRIVATE KEY"). key_path NULL or "" takes the
 * key from the certificate file. Checks that the key matches the leaf.
 * NULL with err filled on failure. */
struct tls_ctx *tls_ctx_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *c); /* drops the loader's reference */
/* One line for the log: "ECDSA P-256 certificate for CN=mail.example.org,
 * chain of 1, valid until 2035-11-23" (", EXPIRED" when it is). */
const char *tls_ctx_describe(const struct tls_ctx *c);
/* Creates a self-signed EC P-256 certificate for name (subject CN, and
 * subjectAltName dNSName, or iPAddress for a dotted IPv4 address), valid
 * for ten years from yesterday, and its key in PKCS#8 (mode 0600). Both
 * files are PEM and written atomically, the key first. 0, or -1 with err
 * filled. */
int tls_selfsigned_create(const char *cert_path, const char *key_path, const char *name,
	char *err, size_t errlen);

struct tls;
/* A server engine for one connection; NULL when the OS gives no
 * randomness. The handshake starts with the first ciphertext pushed. */
struct tls *tls_new(struct tls_ctx *c);
/* A client engine for outbound SMTP's STARTTLS (server_name: the host
 * connected to, for SNI unless it is an address). Any TLS version from
 * 1.0 and any suite BearSSL has; the server's certificate is NOT
 * verified (opportunistic TLS, as Postfix's "may" level). Driven like a
 * server engine, except that the client speaks first: start by pulling
 * out its hello. NULL when the OS gives no randomness. */
struct tls *tls_client_new(const char *server_name);
/* The same with the server's certificate verified (x509.c's anchors):
 * the chain must lead to one of anchors, be valid now and name
 * server_name (subjectAltName dNSName, wildcards as RFC 6125). NULL as
 * well for an IP address (BearSSL checks names only) or anchors NULL.
 * anchors must outlive the engine. A failed check closes the engine with
 * tls_error "handshake failed: certificate not trusted (unknown CA)" and
 * the like. */
struct tls_anchors;
struct tls *tls_client_new_verified(const char *server_name, const struct tls_anchors *anchors);
void tls_free(struct tls *t); /* wipes keys and buffered data; NULL is fine */
unsigned tls_state(struct tls *t); /* TLS_* bits, see above */
/* Where the socket's next bytes go: read at most *n bytes there, then
 * tls_in_ack the count read. NULL (and *n = 0) when no input is taken
 * now. Valid until the next call on t. */
void *tls_in_buf(struct tls *t, size_t *n);
void tls_in_ack(struct tls *t, size_t n);
/* The same from a caller's buffer: returns how much was taken, which is
 * less than n when the engine stops taking input (plaintext to tls_read
 * or records to send first): call again after those. */
size_t tls_push_in(struct tls *t, const void *data, size_t n);
/* Ciphertext for the socket: a pointer into the engine (valid until the
 * next call on t) and its length, NULL when there is none; then
 * tls_sent(t, n) with what was written. */
const void *tls_pull_out(struct tls *t, size_t *n);
void tls_sent(struct tls *t, size_t n);
/* Plaintext: tls_read returns what it copied (0 = none now); tls_write
 * returns what it took, less than n when the record buffer is full or
 * the handshake is not done: keep the rest. tls_flush makes a record of
 * what was written so that tls_pull_out has it. */
size_t tls_read(struct tls *t, void *buf, size_t n);
size_t tls_write(struct tls *t, const void *data, size_t n);
void tls_flush(struct tls *t);
/* Sends close_notify after what was written. Once tls_pull_out is empty
 * the socket may be closed without waiting for the peer's close_notify
 * (RFC 5246 section 7.2.1). */
void tls_close(struct tls *t);
/* 1 until the handshake is done (its last flight pulled out) */
int tls_handshaking(struct tls *t);
int tls_failed(struct tls *t);      /* 1 once closed or failed */
/* Why it ended, for the log: "closed", "handshake failed: client does not
 * offer TLS 1.2 (sent alert protocol_version)", "bad record mac", ...;
 * "" while nothing went wrong. Valid until tls_free. */
const char *tls_error(struct tls *t);
/* For Received: headers and logs, once the handshake is done: "TLSv1.2",
 * "ECDHE-ECDSA-AES128-GCM-SHA256" (OpenSSL's names), the cipher's key
 * bits, the name the client asked for (SNI, "" if none); "" and 0
 * before. */
const char *tls_version(struct tls *t);
const char *tls_cipher(struct tls *t);
int tls_cipher_bits(struct tls *t);
const char *tls_sni(struct tls *t);
/* Bytes one struct tls takes, record buffer included (one allocation). */
size_t tls_session_size(void);
/* TLS-ALPN-01: every server engine offers ALPN "acme-tls/1"; a client
 * that selects it is shown the challenge certificate set here for its SNI
 * name (crypto_alpn_cert's DER and private scalar), or refused when there
 * is none. Needs an EC server key (the ECDSA suites). Any thread;
 * tls_alpn_init once before (the table's lock). At most 8 at a time. */
void tls_alpn_init(void);
int tls_alpn_set(const char *name, const void *der, size_t len, const uint8_t x[32]);
void tls_alpn_clear(const char *name); /* NULL: all */

/* Writes data to path through a temporary file of mode 0600, fsynced and
 * renamed over it; 0, or -1 with err filled. */
int crypto_write_private(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* ---- json.c: a bounded JSON reader (ACME's answers) ----
 * A value is a span of the text (valid while the text is); lookups walk
 * it, nesting past 32 levels fails. */
struct json {
	const char *p;
	size_t n; /* 0: no value (malformed or missing) */
};
struct json json_of(const char *text, size_t n); /* the one value of text */
int json_get(struct json obj, const char *key, struct json *out); /* member: 0, or -1 */
int json_at(struct json arr, int i, struct json *out);            /* element i: 0, or -1 */
/* A string's value unescaped (\u past ASCII becomes '?'); -1 when v is
 * not a string or does not fit outlen. */
int json_str(struct json v, char *out, size_t outlen);

/* ---- eckey.c: ECDSA P-256 keys for ACME ---- */
struct crypto_ec;
struct crypto_ec *crypto_ec_new(void); /* a fresh key; NULL without randomness */
/* Loads a PEM key (PKCS#8 or "EC PRIVATE KEY"), P-256 only; NULL with err. */
struct crypto_ec *crypto_ec_load(const char *path, char *err, size_t errlen);
/* Saves it as PKCS#8 PEM, mode 0600, atomically; 0 or -1 with err. */
int crypto_ec_save(const struct crypto_ec *k, const char *path, char *err, size_t errlen);
void crypto_ec_free(struct crypto_ec *k); /* wipes; NULL is fine */
#define CRYPTO_JWK_MAX 160
/* The public key as a JWK in RFC 7638's canonical form (sorted members,
 * no spaces), and the base64url SHA-256 thumbprint of that (43 chars). */
void crypto_ec_jwk(const struct crypto_ec *k, char out[CRYPTO_JWK_MAX]);
void crypto_ec_thumbprint(const struct crypto_ec *k, char out[44]);
/* ES256 (RFC 7518 3.4): SHA-256 of data signed, r and s as 32 bytes each. */
int crypto_ec_sign_es256(const struct crypto_ec *k, const void *data, size_t n, uint8_t sig[64]);
/* A PKCS#10 request (DER) for names (CN = the first, every one in
 * subjectAltName) signed by k; -1 when it does not fit. */
int crypto_ec_csr(const struct crypto_ec *k, const char *const *names, int n, struct buf *out);
/* base64url without padding (RFC 4648 5) of n bytes into out, which
 * needs room for the padded form: 4 * ((n + 2) / 3) + 1; returns the
 * length. */
size_t crypto_base64url(const void *in, size_t n, char *out);
/* TLS-ALPN-01 (RFC 8737): a self-signed certificate (DER) for name with
 * the critical acmeIdentifier extension holding SHA-256(keyauth), and
 * its fresh P-256 private scalar in x. 0, or -1. */
int crypto_alpn_cert(const char *name, const char *keyauth, struct buf *out, uint8_t x[32]);
/* The DER of the first certificate in a PEM file; -1 if none. */
int crypto_cert_file_der(const char *path, struct buf *der);
/* notBefore and notAfter of the first certificate in a PEM file; -1 if none. */
int crypto_cert_file_dates(const char *path, int64_t *not_before, int64_t *not_after);

/* ---- der.c: DER for certificates and requests ---- */
#define DER_MAX 4096 /* one element being built; a certificate or CSR fits */
/* An element being built; nested ones are built apart and wrapped. A
 * piece that does not fit sets bad, which every wrap carries up. */
struct der {
	size_t len;
	int bad;
	unsigned char b[DER_MAX];
};
void der_init(struct der *d);
void der_raw(struct der *d, const void *p, size_t n);             /* bytes as they are */
void der_add(struct der *d, unsigned tag, const void *v, size_t n); /* tag, length, value */
void der_wrap(struct der *d, unsigned tag, const struct der *inner);
void der_name(struct der *d, const char *cn); /* a Name with one CN */
void der_time_add(struct der *d, int64_t t);  /* UTCTime, GeneralizedTime from 2050 */
/* object identifiers, tag and length included */
extern const unsigned char der_oid_ecdsa_sha256[10], der_oid_ec_public_key[9], der_oid_p256[10],
	der_oid_cn[5], der_oid_san[5], der_oid_basic[5];
/* Reading: the next element of d (its tag and contents); -1 when d is
 * empty or the element is malformed. */
struct der_in {
	const unsigned char *p;
	size_t n; /* bytes left */
};
int der_next(struct der_in *d, unsigned *tag, struct der_in *val);
/* A UTCTime (0x17) or GeneralizedTime (0x18) in seconds; -1 if malformed. */
int64_t der_time(unsigned tag, struct der_in v);
/* A certificate's subject CN (printable ASCII), notBefore (when not NULL)
 * and notAfter; -1 if unreadable. */
int der_cert_info(const void *cert_der, size_t len, char *cn, size_t cnlen, int64_t *not_before,
	int64_t *not_after);

/* ---- x509.c: trust anchors for verified TLS clients ----
 * A set of CA certificates from PEM. Built by one thread, then read-only
 * (shared by any number of engines). */
struct tls_anchors *tls_anchors_new(void);
void tls_anchors_free(struct tls_anchors *a); /* NULL is fine */
/* Adds every CERTIFICATE in the PEM text; returns how many, -1 when the
 * PEM is malformed. Certificates BearSSL cannot read are skipped. */
int tls_anchors_add_pem(struct tls_anchors *a, const char *text, size_t len);
/* The same from a file (at most 4 MB); -1 with err filled when it cannot
 * be read or holds no certificate. */
int tls_anchors_add_file(struct tls_anchors *a, const char *path, char *err, size_t errlen);
size_t tls_anchors_count(const struct tls_anchors *a);
/* Adds the first system bundle found (paths below); count or -1 with err. */
int tls_anchors_add_system(struct tls_anchors *a, char *err, size_t errlen);
/* The system's CA bundle (path, or when NULL/"" the first of
 * /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt,
 * /etc/ssl/cert.pem ...), loaded on the first call that succeeds and kept
 * for the life of the process; later calls return the same set whatever
 * path they give. Any thread. NULL with err filled when none loads
 * (Windows has no such file: give one). */
const struct tls_anchors *tls_anchors_system(const char *path, char *err, size_t errlen);
/* crypto.c's view: the br_x509_trust_anchor array and its length. */
const void *tls__anchors_raw(const struct tls_anchors *a, size_t *n);

/* ---- httpc.c: a small blocking HTTP/1.1 client (ACME, MTA-STS) ----
 * One request per connection. https:// verifies the server's certificate
 * against anchors (the system's CA bundle when NULL) and the URL's host
 * name; an address in an https URL is refused (BearSSL checks names).
 * BLOCKING: call it from a thread that may wait (acme.c's own thread, the
 * queue's delivery threads, a work.c job's run()), never a worker's loop.
 * Everything is bounded: timeout_ms covers connect to last byte, the
 * header block is at most HTTPC_HEAD_MAX, the body at most body_max.
 * Content-Length, chunked and close-delimited bodies are read; 1xx interim
 * responses are skipped; redirects are NOT followed (the caller decides:
 * status and Location are in the response). */
#define HTTPC_HEAD_MAX (16 * 1024)
struct httpc_req {
	const char *method;  /* "GET", "POST", "HEAD" */
	const char *url;     /* http://host[:port]/path?query or https://... */
	const char *headers; /* more header lines, each ending in CRLF; NULL */
	const char *ctype;   /* the body's Content-Type, or NULL */
	const void *body;    /* NULL: none (POST still sends Content-Length: 0) */
	size_t bodylen;
	int timeout_ms;      /* the whole exchange; 0 = 30 s */
	size_t body_max;     /* a longer response body fails; 0 = 1 MB */
	const struct tls_anchors *anchors; /* https: trusted CAs; NULL = system */
	int (*stopping)(void); /* optional: returns 1 to give up now */
};
struct httpc_resp {
	int status;       /* 200, 404, ... (the final one, 1xx skipped) */
	struct buf head;  /* the header lines after the status line, NUL-ended */
	struct buf body;  /* the body, de-chunked, NUL-ended (len excludes it) */
	char err[256];    /* why httpc_request returned -1 */
};
/* 0 when a response came (whatever its status), -1 with rs->err filled
 * (no connection, TLS or certificate failure, timeout, over a limit,
 * malformed). Either way free rs with httpc_resp_free. */
int httpc_request(const struct httpc_req *rq, struct httpc_resp *rs);
void httpc_resp_free(struct httpc_resp *rs);
/* The nth (0 = first) field called name (any case), trimmed and cut to
 * outlen - 1 bytes, into out: 1, or 0 when there is no such field. For
 * Location, Replay-Nonce, Link (one field per link), Retry-After. */
int httpc_header(const struct httpc_resp *rs, const char *name, int nth, char *out, size_t outlen);
/* The parts, for tests and for callers with bytes of their own: */
struct httpc_url {
	int tls, port;
	char host[256];  /* no brackets around an IPv6 address */
	char path[2048]; /* "/..." with the query, without a #fragment */
};
int httpc_url_parse(const char *url, struct httpc_url *u); /* 0 or -1 */
/* A whole response from raw[0..n) (eof: nothing more will come; no_body:
 * the answer to HEAD): 1 complete (rs filled), 0 more bytes needed, -1
 * malformed or over a limit (rs->err). */
int httpc_parse(const char *raw, size_t n, int eof, int no_body, size_t body_max,
	struct httpc_resp *rs);
/* De-chunks a chunked body (RFC 9112 7.1) from p[0..n) into out: 1 done
 * (the last chunk and the trailer read), 0 more needed, -1 malformed or
 * more than max bytes of data. */
int httpc_unchunk(const char *p, size_t n, struct buf *out, size_t max);

/* ---- mailman.c: domains, accounts, address matching, the mbox store ---- */
enum mm_type { MM_MBOX, MM_ALIAS, MM_FEED, MM_RELAY, MM_MOD };
#define MM_USER_MAX 64     /* RFC 5321 local part */
#define MM_DOMAIN_MAX 253  /* RFC 1035 */
#define MM_FOLDER_MAX 200
/* An escaped folder name (mm__fs_name) plus ".mbox.damaged-TIME" must fit
 * the usual 255-byte file name limit. */
#define MM_FOLDER_FS_MAX 230
/* The special uses of settings.special_use, in order (imap_special.c). */
enum { SPECIAL_DRAFTS, SPECIAL_SENT, SPECIAL_TRASH, SPECIAL_JUNK, SPECIAL_ARCHIVE, SPECIAL_USES };
#define MM_ARGS_MAX 1024

/* A quota as set on an account or a domain (quota.c): storage in KiB and
 * a message count, each 0 when not set there (the domain's, then
 * DefaultQuota apply) or MM_QUOTA_NONE for "no limit". */
#define MM_QUOTA_NONE UINT64_MAX
struct mm_quota {
	uint64_t kib, msgs;
};
struct mm_domain {
	uint32_t id;
	char name[MM_DOMAIN_MAX + 1];
	char path[512]; /* storage path override, "" = default */
	uint32_t flags;
	struct mm_quota quota; /* the default of its accounts */
};
struct mm_account {
	uint32_t id; /* assigned on first save, never reused */
	char domain[MM_DOMAIN_MAX + 1];
	char user[MM_USER_MAX + 1]; /* may be a GLOB pattern: *, j*, sales-? */
	enum mm_type type;
	char password[CRYPTO_HASH_MAX];
	char args[MM_ARGS_MAX]; /* alias targets, feed command, relay host */
	struct mm_quota quota; /* a mailbox's own limits */
};

/* Sets the storage folder, creates what is missing, loads the lists. */
int mm_open(const char *storage, char *err, size_t errlen);
void mm_close(void);
/* Renames folder files named the old way ("%53ent.mbox") as they are
 * named now, each under its lock and logged (names.c); at start. */
void mm_upgrade_names(void);
const char *mm_storage(void);
/* Every lookup sees changes other processes (the CLI) made: it re-reads
 * the files when their stamps changed. mm_reload forces it. */
void mm_reload(void);

int mm_valid_domain(const char *d);
int mm_valid_user(const char *u, int allow_glob);
/* A folder name we keep: UTF-8 or modified UTF-7 text, no control byte,
 * '/' or '\\', at most MM_FOLDER_MAX bytes and MM_FOLDER_FS_MAX escaped. */
int mm_valid_folder(const char *f);
int mm_glob_match(const char *pattern, const char *s); /* case-insensitive */
const char *mm_type_name(enum mm_type t);
int mm_type_parse(const char *name); /* -1 if unknown */

int mm_domain_exists(const char *name);
int mm_domain_count(void);
/* Said by the CLI and the web admin when a second domain is added: the
 * bare-name login (mm_login) needs exactly one domain. */
#define MM_SECOND_DOMAIN_WARNING \
	"two domains now: logins by bare user name (alice) no longer work, " \
	"clients must log in with the full address (alice@example.org)"
int mm_domain_add(const char *name, char *err, size_t errlen);
int mm_domain_del(const char *name, char *err, size_t errlen);
int mm_domain_list(int (*fn)(const struct mm_domain *d, void *arg), void *arg);
int mm_domain_get(const char *name, struct mm_domain *out); /* 0, or -1 when none */
int mm_domain_set_quota(const char *name, const struct mm_quota *q, char *err, size_t errlen);

int mm_account_get(const char *domain, const char *user, struct mm_account *out);
int mm_account_get_id(uint32_t id, struct mm_account *out);
/* The account that takes mail for user@domain: the exact name, else the
 * longest matching GLOB pattern. 0 found, -1 none. */
int mm_account_match(const char *domain, const char *user, struct mm_account *out);
/* The account that takes mail for "postmaster" (RFC 5321 4.5.1): the
 * Postmaster directive's address, else the first WebAdmin address, else
 * the first mailbox or alias of the first domain. 0 found, -1 none. */
int mm_postmaster(struct mm_account *out);
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
#define MM_RECENT 0x40000000u /* never stored: \Recent as IMAP shows it */

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
	int64_t savedate; /* when it was put in this folder (RFC 8514) */
};

/* What the folder calls return besides 0 and counts. */
/* no such folder (a bad name; deleted or renamed since) */
#define MM_NOFOLDER (-1)
/* it cannot be opened or read now: no descriptor, no memory, an I/O error */
#define MM_UNAVAILABLE (-2)
/* mm_view_sync: UIDVALIDITY changed, the view is void */
#define MM_REINDEXED (-3)
#define MM_NO_MARK UINT64_MAX

/* An open folder: a handle on the folder's one in-memory index and open
 * mbox file (a "box"), which every handle on the folder shares, from any
 * thread, and which the last close frees. Changes made through one
 * handle are seen at once through the others; other processes' changes
 * at the next call that refreshes (they take the file lock: append,
 * store, expunge, compact, refresh, views' syncs). The box holds one file
 * descriptor (its mbox); an operation opens the index and the lock file
 * for its duration. Message numbers (i) count the live messages of the
 * box now: another thread may change them between two calls. */
struct mm_folder;
/* Opens mail/<domain>/<user>/<folder> (user and domain lower-case,
 * folder "INBOX" or a validated name); create makes it when missing.
 * 0, MM_NOFOLDER, or MM_UNAVAILABLE. */
int mm_folder_open(const char *domain, const char *user, const char *folder, int create,
	struct mm_folder **out);
void mm_folder_close(struct mm_folder *f);
/* A name for the folder in caches (the same for every handle on it). */
uint64_t mm_folder_key(struct mm_folder *f);
uint32_t mm_folder_count(struct mm_folder *f);
/* A copy of message i, kept in the handle: valid until the next
 * mm_folder_msg on f. NULL when there is no message i. */
const struct mm_msg *mm_folder_msg(struct mm_folder *f, uint32_t i);
/* A copy of the live message with uid; 0, or -1 when there is none. */
int mm_folder_get(struct mm_folder *f, uint32_t uid, struct mm_msg *out);
uint32_t mm_folder_uidvalidity(struct mm_folder *f);
uint32_t mm_folder_uidnext(struct mm_folder *f);
/* Appends the message in sp (wire form: CRLF lines) with an mbox From_
 * line naming from; writes, does not fsync. 0 and *uid on success. */
int mm_folder_append(struct mm_folder *f, struct spool *sp, const char *from, int64_t date,
	uint32_t flags, uint64_t qid, uint32_t *uid);
int mm_folder_sync(struct mm_folder *f); /* fsync the mbox, then the index */
/* The date at the end of an mbox From_ line (without its LF), or -1. */
int64_t mm_from_line_date(const char *line, size_t n);
/* 1 when one of the last messages came from queue id qid (exactly-once
 * redelivery after a crash). */
int mm_folder_has_qid(struct mm_folder *f, uint64_t qid);
/* Reads message i in wire form (CRLF, unquoted) into out. */
int mm_msg_read(struct mm_folder *f, uint32_t i, struct buf *out);
int mm_msg_set_flags(struct mm_folder *f, uint32_t i, uint32_t flags);
/* Marks every message flagged MM_DELETED as expunged. */
int mm_folder_expunge(struct mm_folder *f);
/* Marks the messages with these UIDs deleted and expunged, in one locked
 * step, whatever the folder looked like when they were chosen (POP3's
 * UPDATE); UIDs already gone are skipped. Returns the count; -1 on error
 * or when UIDVALIDITY is no longer uidvalidity (nothing is expunged). */
int mm_folder_expunge_uids(
	struct mm_folder *f, uint32_t uidvalidity, const uint32_t *uids, uint32_t n);
/* Bytes of the mbox taken by expunged messages, and all of it: whether a
 * compaction is worth its copying. As last loaded, no refresh. */
void mm_folder_usage(struct mm_folder *f, uint64_t *expunged, uint64_t *total);
/* Rewrites the mbox without expunged messages, atomically; UIDs stay. */
int mm_folder_compact(struct mm_folder *f);
/* Re-reads the index if another process changed it; 0, MM_NOFOLDER when
 * the folder was deleted or renamed, MM_UNAVAILABLE. */
int mm_folder_refresh(struct mm_folder *f);
/* Message i (as mm_folder_msg numbers it; no refresh) in wire form, a
 * buffer at a time, read from the mbox by offset: no more than 16 KB of it
 * is held. The reader survives appends, and a reload of f (compaction by
 * any process) finds the message again by its UID. Use it on one thread
 * at a time; f must stay open until mm_reader_close. NULL if no such
 * message. */
struct mm_reader;
struct mm_reader *mm_reader_open(struct mm_folder *f, uint32_t i);
/* The message with uid, also when it was expunged since and its bytes
 * are still in the mbox (until a compaction): a POP3 session's snapshot
 * holds it. */
struct mm_reader *mm_reader_open_uid(struct mm_folder *f, uint32_t uid);
/* Fills out (n >= 1) with the next bytes; returns the count, 0 at the
 * end, -1 when the message is gone, unreadable, or not mm_msg.size bytes. */
long mm_reader_read(struct mm_reader *r, char *out, size_t n);
/* The same, but stops after a line end (CRLF as served). */
long mm_reader_read_line(struct mm_reader *r, char *out, size_t n);
/* Where the next byte is in the store's own terms, when it starts a line
 * (after a read_line that ended one, or at the start): a mark for
 * mm_reader_seek; MM_NO_MARK elsewhere. */
uint64_t mm_reader_mark(const struct mm_reader *r);
/* Goes on from the line start whose mark is mark and whose offset in the
 * message as served is wire (a pair mm_reader_mark gave at that point).
 * -1 when they cannot be. */
int mm_reader_seek(struct mm_reader *r, uint64_t wire, uint64_t mark);
void mm_reader_close(struct mm_reader *r);
int mm_folder_list(const char *domain, const char *user,
	int (*fn)(const char *name, void *arg), void *arg);
/* For IMAP. The live index of the message with uid (as mm_folder_msg
 * numbers them; no refresh), -1 when there is none. */
long mm_folder_find(struct mm_folder *f, uint32_t uid);
/* Keywords: bit i of mm_msg.keywords is the folder's keyword i (at most
 * 32 per folder, names of printable ASCII without spaces, compared
 * case-insensitively). The slot of name, -1 when it has none; create 1
 * takes a free slot (-1 when all 32 are used). */
int mm_folder_keyword(struct mm_folder *f, const char *name, int create);
/* Keyword i's name, NULL for a free slot; a copy in the handle, valid
 * until the next mm_folder_keyword_name on f. */
const char *mm_folder_keyword_name(struct mm_folder *f, int i);
/* The slots in use: bit i set when keyword i has a name. */
uint32_t mm_folder_keyword_mask(struct mm_folder *f);
/* Sets, adds or removes flags and keywords of the messages with these
 * UIDs in one locked step (UIDs already gone are skipped); changed ones
 * get a new modseq. The number changed, or -1. */
enum { MM_STORE_SET, MM_STORE_ADD, MM_STORE_DEL };
int mm_folder_store(struct mm_folder *f, const uint32_t *uids, uint32_t n, int op,
	uint32_t flags, uint32_t keywords);

/* A client's view of a folder (IMAP's selected mailbox): the messages it
 * was told of, by sequence number 1..count. It costs a few words plus a
 * word per message expunged and not yet told, not a copy of the index,
 * and numbers never move under it: a message expunged elsewhere keeps its
 * number (mm_view_msg says 1) until mm_view_sync reports it. Any thread,
 * one at a time per view; close it before its folder. */
struct mm_view;
/* Every live message now; 0, or MM_NOFOLDER / MM_UNAVAILABLE. */
int mm_view_open(struct mm_folder *f, struct mm_view **out);
void mm_view_close(struct mm_view *v);
uint32_t mm_view_count(struct mm_view *v);
/* Message seq: 0 with a copy in *out; 1 when it was expunged (out->uid
 * set, and the rest as it was while the index still holds the message:
 * until a compaction; else offset 0); -1 when there is no such number. */
int mm_view_msg(struct mm_view *v, uint32_t seq, struct mm_msg *out);
/* The sequence number of uid, 0 when the view has none. */
uint32_t mm_view_seq(struct mm_view *v, uint32_t uid);
/* How many of the view's messages have a UID up to uid: the sequence
 * number of the last one (UID sets to sequence ranges, no walk). */
uint32_t mm_view_rank(struct mm_view *v, uint32_t uid);
/* What the client was not told yet. flags: changes since it was last
 * told, numbered before the expunges; expunged: EXPUNGE numbers in the
 * order to send them (only when expunge is 1: IMAP forbids them during
 * FETCH, STORE and SEARCH); exists: the new count when messages were
 * added (new mail waits while expunges do, so that numbers stay right). */
struct mm_change {
	uint32_t seq, uid, flags, keywords;
	uint64_t modseq;
};
struct mm_changes {
	struct mm_change *flags;
	uint32_t nflags;
	uint32_t *expunged, *vanished; /* numbers, and their UIDs (ascending) */
	uint32_t nexpunged, exists, recent; /* recent: of the new ones, to this view */
};
/* Fills c (free it with mm_changes_free); looks at the files first,
 * unless poll is set and someone did less than a second ago (IDLE woken
 * by mm_view_watch: the change is in memory already). 0,
 * MM_NOFOLDER (deleted or renamed), MM_REINDEXED, MM_UNAVAILABLE. */
int mm_view_sync(struct mm_view *v, int expunge, int poll, struct mm_changes *c);
void mm_changes_free(struct mm_changes *c);
/* mm_folder_store through a view: the client is the one telling itself
 * of these changes (STORE's FETCH answers), so a later sync leaves them
 * out when nothing else changed meanwhile. */
int mm_view_store(struct mm_view *v, const uint32_t *uids, uint32_t n, int op, uint32_t flags,
	uint32_t keywords);
/* The same, leaving out (in one locked step) the messages whose modseq
 * is above unchanged (CONDSTORE's UNCHANGEDSINCE; UINT64_MAX: none):
 * their UIDs go to failed (room for n), their count to *nfailed. */
int mm_view_store_if(struct mm_view *v, const uint32_t *uids, uint32_t n, int op,
	uint32_t flags, uint32_t keywords, uint64_t unchanged, uint32_t *failed, uint32_t *nfailed);
/* The folder's highest modseq (CONDSTORE's HIGHESTMODSEQ), as loaded. */
uint64_t mm_folder_modseq(struct mm_folder *f);
/* The first UID no session was told of as \Recent (STATUS RECENT). */
uint32_t mm_folder_first_recent(struct mm_folder *f);
/* QRESYNC: the UIDs below UIDNEXT that are not live messages and were
 * expunged after modseq since, as ascending ranges in *out (free it;
 * *n of them). When a compaction dropped expunges after since, every
 * UID below UIDNEXT that is not live is in them (RFC 7162 lets VANISHED
 * name UIDs the client never saw). 0, or MM_UNAVAILABLE. */
struct mm_range {
	uint32_t lo, hi;
};
int mm_folder_vanished(struct mm_folder *f, uint64_t since, struct mm_range **out, uint32_t *n);
/* \Recent (RFC 3501 2.3.2): a view opened with claim takes the messages
 * no session took yet, and later the new ones it is told of first. 1
 * when the message with uid is recent to v. */
int mm_view_claim(struct mm_view *v);
int mm_view_recent(struct mm_view *v, uint32_t uid);
/* Push (IMAP IDLE): while watched, wake(arg) is called whenever the folder
 * may have changed for the view: a message added, flags or keywords
 * changed, expunged, the folder reloaded, deleted or renamed, through any
 * handle in this process (at once, from the thread that changed it) or by
 * another process (seen within MM_WATCH_LOOK_MS, when one thread per
 * process looks at the files of folders with watchers). wake runs on that
 * thread under the folder's locks: it must only take note (a
 * session_bell_ring), then the owner calls mm_view_sync on its own
 * thread. wake NULL stops it; after the call returns, wake is not
 * running and will not be called. mm_view_close stops it too. */
#define MM_WATCH_LOOK_MS 30000
void mm_view_watch(struct mm_view *v, void (*wake)(void *arg), void *arg);
/* Folder management (names as mm_folder_open takes them). create: 0 made,
 * 1 exists already, -1 error. delete: 0, or -1 (INBOX, missing, error).
 * rename: 0, 1 when to exists, -1 (to INBOX, from missing, error);
 * UIDVALIDITY and UIDs go with the folder; INBOX renamed leaves an empty
 * INBOX with a greater UIDVALIDITY. */
int mm_folder_create(const char *domain, const char *user, const char *folder);
int mm_folder_delete(const char *domain, const char *user, const char *folder);
int mm_folder_rename(const char *domain, const char *user, const char *from, const char *to);
/* IMAP subscriptions: names in the order subscribed; fn's non-zero return
 * stops the walk and is returned. set: on 1 adds, 0 removes; 0 or -1. */
int mm_subscription_list(const char *domain, const char *user,
	int (*fn)(const char *name, void *arg), void *arg);
int mm_subscription_set(const char *domain, const char *user, const char *name, int on);

/* The path of a file of the user's own (name: a fixed file name) in the
 * user's folder, which is made when missing; 0 or -1. */
int mm_user_file(const char *domain, const char *user, const char *name, char *out, size_t len);

/* ---- mbox internals: shared by mbox.c and mbox_read.c only ---- */
#define MM__IDX_LINE 160 /* an index line */
struct mm__rec {
	struct mm_msg m;
	uint32_t fromlen; /* bytes of the From_ line before m.offset, LF included */
};

struct mm__hdr {
	uint32_t uidvalidity, uidnext, gen;
	uint64_t modseq;
	int stale;
	uint64_t floor;  /* expunges up to this modseq may be gone (compacted) */
	uint32_t recent; /* UIDs from here on are \Recent to the next session */
};

/* An index as loaded: header values (uidnext and modseq raised to what the
 * lines say) and every line, expunged ones included. */
struct mm__index {
	struct mm__hdr h;
	uint64_t hdr_modseq; /* modseq as the header line says it */
	int format;          /* as read: 2, or 1 (upgraded at load) */
	char (*kw)[MM__IDX_LINE]; /* keyword names, NUL-terminated; NULL when none */
	struct mm__rec *rec;
	uint32_t nrec, cap;
};

/* A folder as this process has it open: one per mbox file, shared by
 * every mm_folder_open of it (the table in mbox.c), whatever thread. */
struct mm__box {
	os_mutex *mu; /* everything below; taken before the file lock */
	char label[MM_USER_MAX + MM_DOMAIN_MAX + MM_FOLDER_MAX + 4]; /* for logs */
	char dir[1024];
	char base[1400]; /* dir/NAME */
	char domain[MM_DOMAIN_MAX + 1], user[MM_USER_MAX + 1]; /* the owner, lower case */
	uint64_t key;    /* names the folder in caches: a hash of base */
	FILE *mbox;      /* open as long as the box */
	FILE *idx;       /* open during an operation only */
	FILE *lk;        /* the lock file, open while an operation holds it */
	struct mm__index x;
	int loaded;     /* x describes the files (else the next operation loads) */
	uint64_t end;   /* end of the last indexed message, its blank line included */
	uint32_t *live; /* indexes into x.rec of messages not expunged */
	uint32_t nlive;
	uint32_t loads; /* bumped whenever offsets may change (reload, compaction) */
	uint64_t last_expunge; /* the highest modseq of an expunged message in x */
	uint64_t last_flags;   /* the highest modseq of a flag change (or of the index
	                          when another process changed it): not of new mail or
	                          keyword names, which move x.h.modseq too */
	int64_t refreshed;     /* os_now_ms() of the last look at the files */
	int refs;              /* mm_folder handles; the table's entry while > 0 */
	int listed;            /* in the table (not once deleted or renamed) */
	struct mm_view *views; /* the clients' views of it */
	struct mm__box *next;  /* the table */
	/* what watchers were last woken for (mm__ring_changed) */
	uint64_t told_modseq;
	uint32_t told_uidvalidity, told_nlive;
	int told_gone;
	volatile int forgotten; /* mm__forget: the next view sync looks at the files */
	struct mm_view *watchers; /* views with a wake; the watch lock's, not mu's */
};

/* What mm_folder_open hands out: the box, and room for what the
 * pointer-returning calls return (valid until the next such call). */
struct mm_folder {
	struct mm__box *b;
	struct mm_msg msg;
	char kwname[MM__IDX_LINE];
};

/* A client's picture of a box (see rumble.h): the live messages up to
 * last, and gone, those expunged since that the client was not told of.
 * Every field is the box's mutex's. */
struct mm_view {
	struct mm__box *b;
	uint32_t uidvalidity;
	uint32_t last;         /* the highest UID the client was told of */
	uint64_t exp_seen;     /* expunges up to this modseq are in gone or told */
	uint64_t flags_seen;   /* flag changes up to this modseq were told */
	uint32_t recent, recent_hi; /* UIDs recent..recent_hi are \Recent to it; 0: none */
	int claims;            /* it takes new mail as \Recent (SELECT, not EXAMINE) */
	uint32_t *gone, ngone, gcap; /* ascending UIDs */
	struct mm_view *next;
	void (*wake)(void *arg); /* these three are the watch lock's */
	void *wake_arg;
	struct mm_view *wnext; /* the box's watchers */
};

/* The live message with uid: its index in x.rec, -1 if none. */
long mm__find_uid(const struct mm__box *f, uint32_t uid);
int mm__read_at(FILE *fp, uint64_t off, void *p, size_t n); /* 0 or -1 */
/* Takes f's mutex and file lock and brings x up to date with the files;
 * the index file is open until mm__end. 0, MM_NOFOLDER or
 * MM_UNAVAILABLE (nothing held). */
int mm__begin(struct mm__box *f, FILE **lk);
void mm__end(struct mm__box *f, FILE *lk);
/* Writes x's header line into the open index (the file lock held). */
int mm__write_header(struct mm__box *f);
/* x is about to lose its expunged messages (compaction, reload): every
 * view takes those it still shows into its gone list. */
void mm__views_keep(struct mm__box *f);
/* x was reloaded; old: the records before. Messages a view showed that
 * x no longer has (another process expunged and compacted them between
 * two looks) go into its gone list. */
void mm__views_lost(struct mm__box *f, const struct mm__rec *old, uint32_t n);
/* Wakes f's watchers (mm_view_watch): mm__ring always (f found in the
 * table or held; f->mu need not be held), mm__ring_changed when what a
 * client sees of f changed since the last wake (f->mu held). The watch
 * lock they take is the last of all: box table, box, file lock, watch
 * lock, then a session worker's inbox lock. */
void mm__ring(struct mm__box *f);
void mm__ring_changed(struct mm__box *f, int gone);
int mm__watched(struct mm__box *f);
/* The thread that looks at watched folders' files for other processes'
 * changes: started by the first watch, stopped by mm_close. */
void mm__watch_start(void);
void mm__watch_stop(void);
/* The look's interval, MM_WATCH_LOOK_MS unless a test sets it (before
 * the thread starts). */
void mm__watch_interval(int ms);

/* ---- metadata.c: per-user and per-folder metadata (RFC 5464 names) ---- */
#define MD_KEY_MAX 255
#define MD_VALUE_MAX (64 * 1024)
#define MD_FILE_MAX (1024 * 1024) /* all of one user's entries */
/* A key is "/private/..." or "/shared/...", printable ASCII, no "//",
 * no "*" or "%", at most MD_KEY_MAX bytes. */
int md_valid_key(const char *key);
/* folder "" is the user's own metadata. md_get: 1 with a malloc'd copy in
 * *value (and its length), 0 when unset, -1 on a bad key or an error. */
int md_get(const char *domain, const char *user, const char *folder, const char *key,
        char **value, size_t *len);
/* value NULL unsets; -1 on a bad key, a value over MD_VALUE_MAX, a file
 * that would pass MD_FILE_MAX, or an I/O error. */
int md_set(const char *domain, const char *user, const char *folder, const char *key,
        const char *value, size_t len);
/* Calls fn for each key at or under prefix (a key, or one ending in '/'),
 * in the order stored; stops at fn's non-zero return, which it returns. */
int md_list(const char *domain, const char *user, const char *folder, const char *prefix,
        int (*fn)(const char *key, void *arg), void *arg);
/* Calls fn for every folder's entry key (the user's own, folder "", too),
 * one read of the file; stops at fn's non-zero return, which it returns. */
int md_each_folder(const char *domain, const char *user, const char *key,
        int (*fn)(const char *folder, const char *value, size_t len, void *arg), void *arg);

/* ---- quota.c: storage and message quotas (RFC 9208) ---- */
/* What a mailbox account may hold and holds: limits as they apply (the
 * account's own, else its domain's, else DefaultQuota; 0 = no limit) and
 * the usage of all its folders, expunged messages not counted. */
struct quota_state {
	uint64_t kib_limit, msgs_limit;
	uint64_t bytes, msgs;
};
/* "100M", "1G", "512K", bytes without a suffix (rounded up to KiB), or
 * "none" (MM_QUOTA_NONE) or "default" (0: inherited). -1 when malformed. */
int quota_parse_kib(const char *s, uint64_t *kib);
/* A count, "none" or "default"; -1 when malformed. */
int quota_parse_msgs(const char *s, uint64_t *msgs);
/* The limits of domain/user (the account's name) as they apply. */
void quota_limits(const char *domain, const char *user, struct quota_state *q);
/* Limits and usage; the usage is read from the user's "quota" file, or
 * summed from the folders' indexes (and written) when it has none. 0, or
 * -1 when it cannot be known (then no limit is enforced). */
int quota_get(const char *domain, const char *user, struct quota_state *q);
/* 1 when n more messages of size bytes in all do not fit. */
int quota_over(const struct quota_state *q, uint64_t n, uint64_t size);
/* quota_get, then quota_over for n messages of size bytes in all: 1
 * when they do not fit; an account with no limits never reads usage. */
int quota_exceeded(const char *domain, const char *user, uint32_t n, uint64_t size);
/* Sums the folders' indexes again and writes the figure. 0, or -1. */
int quota_recalc(const char *domain, const char *user, struct quota_state *q);
/* After mail was added for domain/user: when its usage passed 90% of a
 * limit since the last warning, the user gets a warning message in the
 * INBOX (once per crossing). Any thread; no lock held. */
void quota_notify(const char *domain, const char *user);
/* For mbox.c: n messages of bytes were added (n > 0) or expunged (n < 0)
 * in a folder of the user whose folder is dir. Call with no lock held. */
void quota__charge(const char *dir, const char *domain, const char *user, int64_t n,
        int64_t bytes);
/* The figure of the user whose folder is dir is not to be trusted (an
 * index rebuilt, a folder deleted): the next quota_get sums it again.
 * Takes no lock: safe under a box's. */
void quota__forget(const char *dir);

/* Shared by mailman.c and mbox.c only (the mbox store lives in mbox.c). */
/* A name as a file name: bytes outside [a-z0-9._-] (upper case too, for
 * case-insensitive file systems), a leading or trailing '.' and the first
 * byte of a Windows device name (con, nul, com1, ...) become "%XX". -1
 * when it does not fit outlen. Users' and domains' directories (names.c). */
int mm__fs_name(const char *name, char *out, size_t outlen);
/* A folder's NAME in dir (names.c: readable, or its collision form when
 * another folder's name differs only in case), and back: the folder of
 * the file name name[0..n), -1 when it names none. */
int mm__folder_file(const char *dir, const char *folder, char *out, size_t len);
int mm__file_folder(const char *name, size_t n, char *out, size_t len);
int mm__folder_fits(const char *folder); /* both forms fit MM_FOLDER_FS_MAX */
/* The folder holding a domain's users: the domain's path override or
 * <storage>/mail/<domain>. */
int mm__domain_dir(const char *domain, char *out, size_t outlen);
/* A folder's directory (the user's) and its files' common start,
 * dir/NAME (NAME.mbox, NAME.idx, NAME.lock); -1 for a bad name. */
int mm__folder_base(const char *domain, const char *user, const char *folder, char *dir,
	size_t dlen, char *base, size_t blen);
/* The folder at base was deleted or renamed: the next open of the name
 * makes a new box, while holders of the old one find it gone. */
void mm__forget(const char *base);
/* Writes the UIDVALIDITY of the index at ipath into the locked lock file
 * lk, unless it remembers a greater one: a folder made again under the
 * name gets a greater one (RFC 3501 2.3.1.1). */
void mm__remember_uidvalidity(FILE *lk, const char *ipath);

/* ---- sessions and the event loop (session.c) ---- */
struct session;

/* What a protocol tells Lua hooks about a session (session.helo, ...):
 * pointers into its state, valid until the protocol runs again; NULL or
 * 0 when there is none. */
struct proto_info {
	const char *helo, *sender, *user;
	/* the last message's inbound authentication (dmarc.c), NULL: none */
	const char *spf, *dkim, *dmarc, *authres;
	char *const *rcpts;
	int nrcpt;
};

/* What a Lua hook decided (rl_hook, lua/hooks.c). DROP: close the
 * session (the script may have said why); IGNORE: the script answered,
 * skip the server's handling; WAIT: not decided yet. */
enum rl_verdict { RL_CONTINUE, RL_DROP, RL_IGNORE, RL_WAIT };

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
	/* 1 when closing now loses nothing (no transaction under way): such
	 * sessions end at once when the server stops. NULL = wait for them. */
	int (*can_stop)(struct session *s);
	void (*shutdown)(struct session *s); /* a last line as the server stops */
	void (*info)(struct session *s, struct proto_info *out); /* NULL = nothing */
	/* A Lua hook that waited for the client (rl_hook said RL_WAIT) has
	 * returned: what it decided, never RL_WAIT. Not called once the
	 * session is closing. NULL when the protocol calls no hooks. */
	void (*hooked)(struct session *s, enum rl_verdict v);
};

struct service {
	const char *name; /* "smtp", "pop3", "imap4" */
	const struct proto *proto;
	int enabled, port;
	os_fd lfd[4];
	int nlfd;
	int suspended; /* refuse new sessions, keep running ones */
	int accept_paused; /* listeners out of the poller: accept failed (main thread) */
	volatile int stop_req; /* close the listeners and end the sessions (main thread) */
	int flags;     /* SVC_* */
	/* counters for Rumble.serviceInfo(); updated atomically */
	volatile long sessions, total, received, sent, rejected;
	volatile long bytes_in, bytes_out; /* traffic, TLS plaintext; Rumble.trafficInfo() */
};

#define SVC_TLS 1       /* implicit TLS: the handshake comes first (465, 993, 995) */
#define SVC_AUTH_FIRST 2 /* submission: no mail without AUTH (587) */

struct worker;
struct tls;
struct policy;
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
	uint32_t rx, tx; /* reads and writes that moved bytes (os_ack_now) */
	int timeout_ms;
	/* LineTimeout: when the input unit under way (a line, or a tap's
	 * SESSION_UNIT bytes) began, 0 = none; LoginTimeout: when the session
	 * ends unless a protocol lifts or moves it (session_cap), 0 = never */
	int64_t unit_at, cap_at;
	size_t unit_bytes;
	int holds; /* work on other threads that will post back */
	/* While set, input goes here instead of to proto->line, as it
	 * comes (no line cutting): it returns how many bytes it took, 0 to
	 * leave the rest for later. Called with p NULL when the session ends
	 * (before proto->close); it must then clear s->tap. A Lua script
	 * waiting in session:receive() sets it. */
	size_t (*tap)(struct session *s, const char *p, size_t n);
	void *tap_arg;
	void *lua; /* the scripts' session object (lua/handle.c), NULL if none */
	struct policy *policy; /* SMTP's policy chain (policy.c), NULL if none */
	unsigned paused : 1, closing : 1, eof : 1, reading_off : 1, discard_in : 1, write_on : 1,
	    over_limit : 1, starttls : 1, peer_gone : 1, unwatched : 1,
	    tap_raw : 1; /* the tap takes data, not lines: LineTimeout counts 4 KB units */
	char reason[64];
	struct session *prev, *next; /* the worker's list, for timeouts */
};

/* Listens for svc on bind (empty = all addresses); fills svc->lfd. */
int server_listen(struct service *svc, const char *bind, int ipv4_only, char *err, size_t errlen);
int server_start(int nworkers);
/* Runs until a stop signal; calls on_reload for SIGHUP and for
 * server_request_reload. */
void server_run(void (*on_reload)(void));
/* Asks the main thread to reload as on SIGHUP, from any thread (it does
 * within a quarter second). */
void server_request_reload(void);
/* Stops one service at run time, from any thread: its listeners close
 * (the main thread does it within a quarter second) and its sessions
 * end. server_listen starts it again. */
void server_unlisten(struct service *svc);
/* Starts svc again at run time, from any thread: calls off a stop not
 * yet carried out, or listens again (conf.bind) once it was. */
int server_relisten(struct service *svc, char *err, size_t errlen);
/* Stops accepting, lets sessions end within grace_ms, closes the rest. */
void server_stop(int grace_ms);
/* 1 from the start of server_stop: long waits (jobs of scripts) give up. */
int server_stopping(void);
int server_sessions(void);
int server_workers(void); /* worker threads, 0 before server_start */
int session_worker(const struct session *s); /* index of s's worker, 0.. */
/* The certificate every TLS session uses (set before server_start). */
void server_set_tls(struct tls_ctx *c);
int server_has_tls(void);

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
/* The session ends ms from now (0: at no set time), whatever comes: the
 * LoginTimeout cap that login lifts (see session.c); session_cap_add
 * moves a set cap by ms (data that arrives earns time). */
void session_cap(struct session *s, int64_t ms);
void session_cap_add(struct session *s, int64_t ms);
/* Keep s alive for work on another thread, which must then call
 * session_post exactly once: fn(s, arg) runs on s's worker thread (even
 * when s is closing: fn must then only free arg). */
void session_hold(struct session *s);
void session_post(struct session *s, void (*fn)(struct session *s, void *arg), void *arg);
/* A bell wakes s from any thread without a hold: session_bell_ring runs
 * fn(s) on s's worker soon after, once for any number of rings before fn
 * starts, and not at all once s is closing or the bell was freed. The
 * ringer may hold any lock (it takes only the worker's inbox lock and
 * allocates) but must know the bell is alive: found under a lock that
 * its owner takes to stop the rings before session_bell_free. new and
 * free on s's worker; free before s ends (proto->close). */
struct session_bell;
struct session_bell *session_bell_new(struct session *s, void (*fn)(struct session *s));
void session_bell_ring(void *bell); /* void *: an mm_view_watch callback as it is */
void session_bell_free(struct session_bell *b);

/* In-memory sessions, for unit tests and fuzzers: a protocol driven
 * without a socket, a worker thread or a poller. session_mem_open opens
 * one for svc (svc->proto, svc->name as a real one would) from peer and
 * calls proto->open; session_mem_feed hands the protocol input as a
 * socket would (cut into lines, held while the session is paused, TLS
 * never starts). Replies collect in s->out: read and buf_reset it. Work
 * that other threads post back (a commit, a helper thread) runs in
 * session_mem_feed and session_mem_run, which waits up to ms for it (0:
 * nothing is out any more, -1: still out); timers are due at once.
 * Single-threaded: one caller drives a session. session_mem_close calls
 * proto->close and frees s once nothing is out. */
struct session *session_mem_open(struct service *svc, const char *peer);
void session_mem_feed(struct session *s, const void *p, size_t n);
int session_mem_run(struct session *s, int ms);
void session_mem_close(struct session *s);

/* ---- wellknown.c: the public HTTP responder (/.well-known/ paths) ----
 * Listens on port (ACMEHTTPPort) of bind for GET/HEAD of the paths in its
 * route table; 404 for the rest. Before privileges are dropped (port 80).
 * 0, or -1 logged. */
int wellknown_listen(const char *bind, int port);
/* The same over TLS (for ACMEChallenge tls-alpn-01 on port 443; later
 * the MTA-STS policy): the server's certificate, or the TLS-ALPN-01 one. */
int wellknown_listen_tls(const char *bind, int port);
void wellknown_init(void); /* the token table's lock; wellknown_listen calls it */
/* What ACME's settings ask for: port 80 (HTTP-01), and over TLS on
 * ACMETLSPort for TLS-ALPN-01 or when an ACMENames entry is mta-sts.DOMAIN
 * (our MTA-STS policy, RFC 8461, is served there). Before privileges
 * are dropped. */
void wellknown_start(void);
/* An HTTP-01 challenge to answer (RFC 8555 8.3): GET
 * /.well-known/acme-challenge/token gives keyauth. -1 when the token is
 * not base64url or the table (8) is full. Any thread. */
int wellknown_token_set(const char *token, const char *keyauth);
void wellknown_token_clear(const char *token); /* NULL: all */

/* ---- acme.c: certificates from an ACME CA (RFC 8555) ----
 * With ACME 1: a thread that gets and renews the certificate for
 * ServerName and ACMENames and writes it to cert_path/key_path (where the
 * server loads it), then asks for a reload. acme_stop ends it (bounded by
 * one HTTP request's stop check, a quarter second). */
void acme_start(const char *cert_path, const char *key_path);
void acme_stop(void);
/* On a reload (SIGHUP): look again now whether an order is due, rather
 * than at the end of the current wait or back-off. */
void acme_kick(void);
/* rumble acme revoke: revokes the certificate in cert_path at the CA
 * (RFC 8555 7.6, signed by the account key) and marks it for a new order,
 * which the running server places on its next reload. Blocking; 0, or -1
 * with err filled. */
int acme_revoke(const char *cert_path, char *err, size_t errlen);

/* ---- dnsbl.c: DNS blocklists (RFC 5782) for the SMTP port ---- */
/* The name to look ip up by in zone ("2.0.0.127.zone", IPv6 by nibbles);
 * -1 when ip is not an address or the name does not fit len. */
int dnsbl_name(const char *ip, const char *zone, char *out, size_t len);
/* 1 when a list's answer means listed: 127.0.0.0/8 but not 127.255.255.x. */
int dnsbl_listed(const char *answer);
/* -1 with err filled when a zone in the DNSBL value is not a domain name. */
int dnsbl_check_conf(const char *value, char *err, size_t errlen);
/* 1 when s's client is to be checked: zones configured, not this host. */
int dnsbl_wanted(const struct session *s);
/* Looks s's client up in the lists on a helper thread, then calls done on
 * s's worker with the first zone listing it, or NULL (not if s closed
 * meanwhile). Without a helper thread done runs before it returns. */
void dnsbl_check(struct session *s, void (*done)(struct session *s, const char *zone));

/* ---- greylist.c: greylisting (RFC 6647) on the SMTP port ---- */
/* The triplet's key: the client's /24 or /64, sender and recipient. */
uint64_t greylist_key(const char *ip, const char *from, const char *rcpt);
/* 0 when the triplet may pass now; else the seconds still to wait (it is
 * remembered as seen now if it was not known). */
int greylist_check(uint64_t key, int64_t now);
int greylist_save(int64_t now); /* StorageFolder/greylist, at stop */
void greylist_load(int64_t now);
void greylist_free(void);

/* ---- spf.c: Sender Policy Framework (RFC 7208) ---- */
enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR
};
const char *spf_name(enum spf_result r); /* "pass", "fail", ... */
/* check_host() for a client ip, its HELO name and the envelope sender
 * ("" or NULL: the null sender, checked as postmaster@helo). Blocks on DNS. */
enum spf_result spf_check(const char *ip, const char *helo, const char *sender);
/* The macro expansion of section 7, for tests; -1 when malformed. */
int spf_expand_for(const char *ip, const char *helo, const char *sender, const char *domain,
        const char *in, char *out, size_t len);
/* spf_check for s's client on a helper thread, then done on s's worker
 * (not if s closed meanwhile; at once without a helper thread). */
void spf_check_session(struct session *s, const char *helo, const char *sender,
        void (*done)(struct session *s, enum spf_result r));

/* ---- dkim.c: DKIM signatures (RFC 6376) on outgoing mail ---- */
#define DKIM_BITS 2048
/* The body canonicalization (relaxed; simple after dkim_body_simple, for
 * verification), fed in pieces, into a SHA-256. */
struct dkim_body {
	crypto_sha256_ctx h;
	int cr, wsp, content; /* a CR held; white space held; the line has content */
	uint64_t empty;       /* empty lines held (dropped if nothing follows) */
	int simple;           /* RFC 6376 3.4.3 rather than 3.4.4 */
	char last;            /* simple: the last byte hashed, 0 before any */
};
void dkim_body_init(struct dkim_body *b);
void dkim_body_simple(struct dkim_body *b);
void dkim_body_feed(struct dkim_body *b, const char *p, size_t n);
void dkim_body_end(struct dkim_body *b, uint8_t hash[32]);
/* The relaxed form of one header field (f[0..n): "Name: value", folded
 * or not, without its final CRLF) appended to out, with CRLF. */
void dkim_header_relaxed(const char *f, size_t n, struct buf *out);
/* A header field as dkim_split_fields finds it: the name, colon, value
 * and any folding, without the CRLF that ends it. */
struct dkim_field {
	const char *p;
	size_t n;
};
/* Splits the header section h (up to the empty line) into at most max
 * fields (more are skipped); their count, with *body_off where the body
 * starts, or -1 when h has no end of header. */
int dkim_split_fields(const char *h, size_t len, struct dkim_field *f, int max, size_t *body_off);
/* 1 when f is a field named name (any case). */
int dkim_field_is(const struct dkim_field *f, const char *name);
/* <StorageFolder>/dkim/<domain>.<DKIMSelector>.pem; -1 for a bad domain. */
int dkim_key_path(const char *domain, char *out, size_t len);
/* The DNS TXT record of domain's key (made first if there is none). */
int dkim_record(const char *domain, struct buf *out, char *err, size_t errlen);
/* Its public key as a DKIM record's p= (base64), made first if missing. */
int dkim_public(const char *domain, char *p, size_t len, char *err, size_t errlen);

/* ---- autoconf.c: mail clients configure themselves ---- */
/* The ports clients are given, 0 for a service that is off: implicit TLS
 * (imaps, pop3s, smtps) and STARTTLS (imap, pop3, submission). */
struct autoconf_ports {
	int imaps, imap, pop3s, pop3, smtps, submission;
};
void autoconf_ports(struct autoconf_ports *p); /* from the configuration */
/* The documents, appended to out; every string argument is escaped.
 * Thunderbird's config-v1.1.xml for domain (logins %EMAILADDRESS%), an
 * Outlook POX autodiscover Response (responseschema/2006a) for addr, and
 * an unsigned Apple .mobileconfig (com.apple.mail.managed) for addr whose
 * PayloadUUIDs come from the SHA-256 of addr. host: the mail host. */
void autoconf_thunderbird(
	const char *domain, const char *host, const struct autoconf_ports *p, struct buf *out);
void autoconf_outlook(
	const char *addr, const char *host, const struct autoconf_ports *p, struct buf *out);
void autoconf_apple(
	const char *addr, const char *host, const struct autoconf_ports *p, struct buf *out);
/* The <EMailAddress> of an autodiscover request's body (untrusted, len
 * bytes, not NUL-terminated), XML's entities decoded: 0 with addr filled,
 * -1 when there is none or it does not fit addrlen. */
int autoconf_pox_address(const char *body, size_t len, char *addr, size_t addrlen);
/* 1 when target (a path, maybe with "?query") is one autoconf_route
 * answers: /.well-known/autoconfig/mail/config-v1.1.xml and
 * /mail/config-v1.1.xml (GET; the domain from emailaddress= or the Host
 * header, autoconfig. taken off) and /autodiscover/autodiscover.xml in
 * any case (POST). */
int autoconf_match(const char *target);
/* Answers an HTTP request for an HTTP server: the status (200 with the
 * document appended to out and *ctype set; 400, 404 for a domain not
 * ours, 405), or 0 when target is not one of ours. host: the Host
 * header (NULL if none), body: a POST's body. Needs mm_open. */
int autoconf_route(const char *method, const char *target, const char *host, const char *body,
	size_t bodylen, struct buf *out, const char **ctype);
/* ---- mtasts.c: how much TLS a destination gets (TLSPolicy, MTA-STS) ---- */
enum tls_mode {
	TLS_NONE,    /* no STARTTLS */
	TLS_MAY,     /* STARTTLS when offered, any certificate; clear if it fails */
	TLS_ENCRYPT, /* STARTTLS required, any certificate */
	TLS_VERIFY   /* STARTTLS required, a certificate for the host a CA signed */
};
const char *tls_mode_name(enum tls_mode m);
int tls_mode_parse(const char *word, size_t n); /* -1 when unknown */
/* The mode list (TLSPolicy's "domain:mode" words) gives domain: its
 * entry ("example.com", or ".example.com" for names below it), else -1;
 * *star is the "*" entry's mode or -1. */
int tls_policy_lookup(const char *list, const char *domain, int *star);
#define STS_MX_MAX 16
enum sts_mode { STS_OFF, STS_TESTING, STS_ENFORCE };
struct sts_policy {
	enum sts_mode mode;
	long max_age; /* seconds */
	int nmx;
	char mx[STS_MX_MAX][256]; /* "mx.example.com", "*.example.com" */
};
/* An `_mta-sts` TXT record's id (v=STSv1; id=...): 0, or -1 if malformed. */
int sts_txt_id(const char *txt, char *id, size_t idlen);
/* A policy file (RFC 8461 3.2): 0, or -1 with err. */
int sts_parse(const char *text, size_t len, struct sts_policy *p, char *err, size_t errlen);
/* 1 when MX host is one the policy names. */
int sts_mx_ok(const struct sts_policy *p, const char *host);
struct tls_want {
	enum tls_mode mode;
	char source[16];        /* "TLSPolicy", "MTA-STS", "OutboundTLS" */
	int has_sts;            /* sts holds the destination's policy (testing or enforce) */
	struct sts_policy sts;
};
/* What delivery to domain needs; mta_sts 0 for a relay host (no MTA-STS).
 * Blocks for DNS and HTTPS (an outbound thread only). */
void tls_want_for(const char *domain, int mta_sts, struct tls_want *w);
/* ---- dkim_verify.c: DKIM verification of inbound mail (RFC 6376, 8463) ---- */
#define DKIM_VERIFY_MAX 5 /* signatures checked per message; more are ignored */
enum dkim_status { DKIM_NONE, DKIM_PASS, DKIM_FAIL, DKIM_NEUTRAL, DKIM_TEMPERROR, DKIM_PERMERROR };
struct dkim_result {
	enum dkim_status status;
	char d[MM_DOMAIN_MAX + 1], s[64], a[32];
	char b[9];   /* the first 8 characters of b= (header.b, RFC 6008) */
	char why[48]; /* a comment for Authentication-Results, "" for none */
	int testing; /* the key says t=y */
};
const char *dkim_result_name(enum dkim_status r); /* "pass", ... */
struct dkim_verify;
struct dkim_verify *dkim_verify_new(int sigs); /* sigs 0: keep the header only */
void dkim_verify_free(struct dkim_verify *v);
/* The message (CRLF, as received) in pieces of any size. Keeps its header
 * section (bounded), hashes the body, keeps nothing of it. */
void dkim_verify_feed(struct dkim_verify *v, const char *p, size_t n);
/* After the last piece: looks the keys up (blocks on DNS) and checks each
 * signature; at most max results into out, their count (0: unsigned, or
 * made with sigs 0). */
int dkim_verify_end(struct dkim_verify *v, struct dkim_result *out, int max);
/* The header section as received, with its empty line (NULL when it was
 * too big); its fields. Valid until dkim_verify_free. */
const char *dkim_verify_header(const struct dkim_verify *v, size_t *len);
int dkim_verify_fields(const struct dkim_verify *v, const struct dkim_field **f);

/* ---- dmarc.c: DMARC (RFC 7489) and Authentication-Results (RFC 8601) ---- */
enum { DMARC_NONE, DMARC_QUARANTINE, DMARC_REJECT }; /* policies */
struct dmarc_record {
	int p, sp, pct;
	int adkim_strict, aspf_strict;
};
/* A _dmarc TXT record's text: 0 with r filled, -1 when it is not a valid
 * DMARC1 record (no v=DMARC1 first, no valid p=). */
int dmarc_parse(const char *text, struct dmarc_record *r);
/* The organizational domain of domain (the public suffix list's suffix
 * and one label more; domain itself when it is a suffix): 0, or -1. */
int dmarc_org_domain(const char *domain, char *out, size_t len);
enum dmarc_status { DMARC_ABSENT, DMARC_PASS, DMARC_FAILED, DMARC_TEMPERROR, DMARC_PERMERROR };
struct dmarc_result {
	enum dmarc_status status;
	int policy;      /* DMARC_NONE, ... to apply (pct applied) */
	int sampled_out; /* pct= left this message to a lesser policy */
	char domain[MM_DOMAIN_MAX + 1]; /* the From domain */
};
/* Looks up from_domain's policy (blocks on DNS) and checks the alignment
 * of the DKIM results and of SPF (spf_pass for spf_domain). */
void dmarc_check(struct dmarc_result *out, const char *from_domain,
	const struct dkim_result *dk, int ndk, int spf_pass, const char *spf_domain);

/* The checks on received mail are a policy module: authres_policy (policy.h). */

/* ---- dnsadvice.c: the DNS records a mail domain needs ---- */
/* "rumble dns DOMAIN": every record to publish as zone-file lines in out;
 * with check, each looked up and marked ok / MISSING / WRONG. Returns the
 * number of required records missing or wrong and of optional ones
 * published wrong (0 without check). */
int dns_advice(const char *domain, int check, struct buf *out);
/* text as a TXT record's quoted strings of at most 255 bytes each. */
void dns_put_txt(struct buf *out, const char *text);
/* A DKIM-Signature field (CRLF-terminated) for the message in sp, for the
 * domain of its From: field if that is one of ours, else sender's: 0 with
 * it appended to out; 1 when the message is not to be signed (DKIMSign
 * off, no domain of ours); -1 on an error (logged). */
int dkim_sign(struct spool *sp, const char *sender, struct buf *out);

/* ---- work.c: blocking work on helper threads ---- */
struct work {
	void (*run)(struct work *w); /* on a helper thread: not a word to the session */
	/* then on the session's worker (s may be closing: then only free w) */
	void (*back)(struct session *s, struct work *w);
	struct session *s;
	struct work *next;
	int slow; /* set by the caller: its length is up to a remote server (lanes, work.c) */
};
/* Queues w for s (on s's worker; s is held until back runs); 0, or -1
 * when no helper thread can take it (before work_start, after
 * work_stop): the caller then does the work in place. */
int work_queue(struct session *s, struct work *w);
void work_start(void);
void work_stop(void);
/* Checks a login (mm_login: its password hashing takes tens of ms) on a
 * helper thread, then calls done on s's worker with mm_login's result,
 * the account and the name as given; not at all if s closed meanwhile.
 * Without a helper thread done runs before work_login returns. Pause s
 * first so that pipelined commands wait for the answer. */
void work_login(struct session *s, const char *name, const char *pw,
        void (*done)(struct session *s, int rc, const struct mm_account *a, const char *name)); /* after the server stopped: runs what is queued, joins */
#define session_closing(s) ((s)->closing)
#define session_secure(s) ((s)->tls != NULL)
/* Call after writing the plaintext "ready" reply to STARTTLS/STLS: input
 * already received is dropped, and TLS begins once the reply is sent. */
void session_starttls(struct session *s);
/* May the client send a password now? Over TLS always; in the clear as
 * AllowPlaintextAuth says. */
int session_auth_allowed(const struct session *s);
/* Runs fn(s, arg) on s's worker after ms milliseconds (even when s is
 * closing by then, as for session_post). Call on s's worker only. Use with
 * session_pause for a delayed answer that holds no thread. */
void session_after(struct session *s, int ms, void (*fn)(struct session *s, void *arg), void *arg);
/* Failed logins, shared by every protocol, counted per client address
 * and per login name (user as given), independently: record a failure
 * and get the delay (ms) to wait before answering it; it grows with the
 * address's failures of the last ten minutes. A success forgives only
 * that address's failures against that name. */
int session_login_failed(const char *ip, const char *user);
void session_login_ok(const char *ip, const char *user);
int session_login_failures(const char *ip);
/* 1 when ip failed LoginAttempts times, or user (NULL: not known yet)
 * AccountLoginAttempts times from anywhere, the last within Quarantine s. */
int session_login_blocked(const char *ip, const char *user);
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
	char *folder; /* NULL: INBOX; else (JunkFolder) for local mailboxes */
	int status; /* set by the commit: 0 durable, -1 failed (reply 451),
	               QUEUE_FULL: every recipient a mailbox over its quota (552),
	               QUEUE_NOSPACE: the disk is full (452) */
};
#define QUEUE_FULL (-2)
#define QUEUE_NOSPACE (-3)
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
 * domain without one, another domain, or a malformed address. "postmaster"
 * and postmaster@ a local domain without its own account are local: acct
 * is then mm_postmaster's. */
enum rcpt_kind queue_classify(const char *addr, struct mm_account *acct);

/* A message waiting in the queue folder, as its envelope says. */
struct queue_info {
	uint64_t qid;
	const char *from;         /* envelope sender, "" for the null sender */
	const char *const *rcpts; /* the addresses still to deliver */
	int nrcpt;
	int64_t date;   /* when it was committed, seconds since the epoch */
	int64_t next;   /* no attempt before this time; 0 = at once */
	int attempts;   /* delivery attempts so far */
	uint64_t size;  /* bytes of the message file */
	const char *last; /* the last deferral reason (of the first recipient that has one), or "" */
};
/* Calls fn for each message in <storage>/queue, oldest first, with q
 * valid during the call only; stops when fn returns non-zero and returns
 * that. Any thread, with or without the queue running: entries delivered
 * or removed meanwhile are skipped. 0 at the end (also when there is no
 * queue folder yet), -1 when it cannot be read or mailman is not open. */
int queue_list(int (*fn)(const struct queue_info *q, void *arg), void *arg);

/* Queue administration (rumble queue, the web admin); queue.c says who
 * applies what. An id as the log and queue_list print it (16 hex digits)
 * into *qid: 0, or -1 when s is not one. */
int queue_parse_id(const char *s, uint64_t *qid);
/* 1 when the entry is in the queue folder. */
int queue_exists(uint64_t qid);
/* Asks the server to "flush" (qid 0: every entry), "delete" or "bounce"
 * (a DSN with the last reply to the sender) entry qid; by says who asks,
 * for the log. 0 once the request is written, -1 with err (no such entry).
 * A server in this process applies it at once, one in another within a
 * second, after the attempt under way if the entry is being sent. */
int queue_request(uint64_t qid, const char *verb, const char *by, char *err, size_t errlen);
/* 1 while that request waits to be applied. */
int queue_request_pending(uint64_t qid, const char *verb);
/* 1 when a server runs on this storage folder (it holds queue/server.lock). */
int queue_server_running(void);
/* Removes an entry while no server runs; -1 when it is not there. */
int queue_delete_offline(uint64_t qid);
/* Appends entry qid's envelope and its message's header to out; -1 when
 * it is not in the queue. */
int queue_show(uint64_t qid, struct buf *out);

/* For queue.c and outbound.c: 1 once queue_stop began (long waits end). */
int queue__stopping(void);

/* The envelope file <qid>.env, exported for tests. Lines "key value":
 * from, date, attempts, next, then per recipient "rcpt ADDR", optionally
 * followed by "last TEXT", why its last attempt failed for now. */
struct queue_env {
	char *from;
	int64_t date, next;
	int attempts;
	char **rcpts, **last; /* last[i] NULL when there was no failure */
	int n;
};
/* 0, or -1 when the text has no "from" line. Free with queue__env_free. */
int queue__env_parse(const char *text, size_t len, struct queue_env *e);
/* The file's text for the recipients whose keep[i] is set (keep NULL:
 * all of them). */
void queue__env_text(struct buf *b, const struct queue_env *e, const int *keep);
void queue__env_free(struct queue_env *e);

/* ---- smtp.c ---- */
extern const struct proto smtp_proto;
/* Parses "FROM:<addr> params" (prefix "FROM:" or "TO:") into addr; params
 * points at what follows. 0 ok ("" for <>; after "TO:" a bare Postmaster
 * too), -1 bad syntax. */
int smtp_parse_path(char *arg, const char *prefix, char *addr, size_t addrlen, char **params);

/* ---- pop3.c ---- */
/* The POP3 server (RFC 1939, 2449, 5034) on the INBOX of each account. */
extern const struct proto pop3_proto;

/* ---- imap.c, imap_fetch.c, imap_msg.c, imap_parse.c, imap_meta.c ---- */
/* The IMAP4rev1 server (RFC 3501 with IDLE, UIDPLUS, LITERAL+, MOVE, ...). */
extern const struct proto imap_proto;

/* The command tokenizer, exported for tests. A command is lines and
 * literals; each line goes to imap_cmd_line, which appends its tokens to
 * c and says whether the command is complete or a literal follows. Tokens
 * live in c->text, NUL-terminated (quoted strings unescaped). */
enum imap_tok_type { IMAP_ATOM, IMAP_STRING, IMAP_LPAREN, IMAP_RPAREN, IMAP_SPOOL };
struct imap_token {
	int type;          /* IMAP_SPOOL: a literal the caller kept elsewhere */
	uint32_t off, len; /* in text */
};
struct imap_cmd {
	struct buf text;
	struct imap_token *tok;
	uint32_t ntok, cap;
	int depth;    /* open parentheses */
	int literal8; /* the literal just announced is "~{n}" (RFC 3516) */
	uint32_t nul; /* 1 + the token of a literal, not a literal8, that held a NUL
	                 (not a CHAR8); 0 if none */
};
enum { IMAP_PARSE_DONE, IMAP_PARSE_LITERAL, IMAP_PARSE_ERROR };
void imap_cmd_init(struct imap_cmd *c);
void imap_cmd_reset(struct imap_cmd *c);
void imap_cmd_free(struct imap_cmd *c);
/* One line without its CRLF. IMAP_PARSE_LITERAL: the line ended with
 * "{n}" (*nonsync 0) or "{n+}" (1), or "~{n}" (c->literal8 set),
 * *literal = n; the caller then calls
 * imap_cmd_literal_begin, _data (n bytes in all) and _end, and feeds the
 * rest of the line. IMAP_PARSE_ERROR with *error: the command is bad. */
int imap_cmd_line(struct imap_cmd *c, const char *line, size_t n, uint64_t *literal,
	int *nonsync, const char **error);
/* -1 when the literal does not fit the command's limits (spooled: the
 * bytes are not kept, the token is IMAP_SPOOL with their count). */
int imap_cmd_literal_begin(struct imap_cmd *c, uint64_t size, int spooled);
void imap_cmd_literal_data(struct imap_cmd *c, const char *p, size_t n);
void imap_cmd_literal_end(struct imap_cmd *c);
const char *imap_tok_str(const struct imap_cmd *c, uint32_t i); /* "" past the end */

/* Sequence sets: "1,3:5,7:*"; * is IMAP_STAR until imap_set_has gives it
 * its value (the highest number in use). 0, which no number can be: the
 * largest, 4294967295, is a number like any other and not "*". */
#define IMAP_STAR 0u
struct imap_range {
	uint32_t lo, hi;
};
struct imap_set {
	struct imap_range *r;
	uint32_t n;
};
int imap_set_parse(const char *s, struct imap_set *set); /* 0, or -1 (set empty) */
int imap_set_has(const struct imap_set *set, uint32_t v, uint32_t star);
void imap_set_free(struct imap_set *set);
/* A number 1..4294967295 at *p (advanced past it); 0, or -1. */
int imap__num(const char **p, uint32_t *out);
/* "1-Feb-1994" as days since 1970-01-01; -1 when malformed. */
int imap_date_parse(const char *s, int64_t *day);

/* LIST wildcards: '*' matches anything, '%' anything but the hierarchy
 * separator '.'; icase for INBOX. Patterns and names over
 * IMAP_PATTERN_MAX bytes match nothing. */
#define IMAP_PATTERN_MAX 512
/* METADATA (RFC 5464, imap_meta.c). GETMETADATA's options (MAXSIZE,
 * DEPTH) when the token at *pos opens a list; -1 when they are bad. */
struct imap_meta_opts {
	long long maxsize; /* -1: none */
	int depth;         /* 0, 1, or a large number for "infinity" */
	int utf8;          /* the mailbox's name goes out in UTF-8 (IMAP4rev2) */
};
int imap_meta_options(const struct imap_cmd *c, uint32_t *pos, struct imap_meta_opts *o);
/* The entries from token pos on for box ("" for the user's own) as one
 * "* METADATA" response in out; resp gets a response code for the OK
 * ("" or "[METADATA LONGENTRIES n] "). 0, or -1 (BAD, resp says why). */
int imap_meta_get(const struct imap_cmd *c, uint32_t pos, const struct imap_meta_opts *o,
        const char *domain, const char *user, const char *box, struct buf *out, char *resp,
        size_t len);
/* SETMETADATA's list from token pos on, checked whole before any is set.
 * 0, -1 (BAD) or -2 (NO), resp saying why. */
int imap_meta_set(const struct imap_cmd *c, uint32_t pos, const char *domain, const char *user,
        const char *box, char *resp, size_t len);
/* Appends p as an IMAP quoted string, or as a literal when it must be. */
void imap_put_string(struct buf *o, const char *p, size_t n);
/* Mailbox names in UTF-8 for IMAP4rev2 sessions (imap_utf8.c): the store
 * keeps the modified UTF-7 of RFC 3501 5.1.3. Both conversions give 0, or
 * -1 when in is not valid in its form (malformed, not the one canonical
 * modified UTF-7, a control character) or the result does not fit in len
 * bytes (out is then cut, NUL-terminated when len > 0). */
#define IMAP_NAME_UTF8_MAX 1024
int imap_utf8_to_mutf7(const char *in, char *out, size_t len);
int imap_mutf7_to_utf8(const char *in, char *out, size_t len);
/* The name as a session sees it: decoded into buf when utf8 and it is
 * valid modified UTF-7 with a shift, else name itself. */
const char *imap_name_shown(const char *name, int utf8, char *buf, size_t len);
/* Appends a stored mailbox name as a string: as imap_put_string unless
 * utf8, then decoded and quoted with its UTF-8 (RFC 9051 9, QUOTED-CHAR). */
void imap_put_name(struct buf *o, const char *name, int utf8);
/* Special-use folders (RFC 6154, imap_special.c). imap_special_make makes
 * the configured ones (conf.special_use) the account lacks, subscribed:
 * at each login, so that accounts made before get them too. */
void imap_special_make(const char *domain, const char *user);
/* The uses of a user's folders: the configured names, replaced by the
 * folders' /private/specialuse metadata (CREATE (USE ...)). */
#define IMAP_USES_MAX 48 /* "\Drafts \Sent \Trash \Junk \Archive" and more */
struct imap_uses {
	struct imap_use {
		char folder[MM_FOLDER_MAX + 1];
		char attrs[IMAP_USES_MAX];
	} *v;
	size_t n;
};
void imap_uses_load(struct imap_uses *u, const char *domain, const char *user);
/* The folder's attributes ("\Sent"), or NULL when it has none. */
const char *imap_uses_of(const struct imap_uses *u, const char *folder);
void imap_uses_free(struct imap_uses *u);
/* CREATE's "(USE (attr...))" from token *pos into out (IMAP_USES_MAX),
 * *pos moved past it; out "" when there is none. -1 bad syntax, -2 an
 * attribute Rumble does not have (NO [USEATTR]). */
int imap_use_parse(const struct imap_cmd *c, uint32_t *pos, char *out, size_t len);
/* Gives folder the uses (as imap_use_parse made them); -1 on an error. */
int imap_use_set(const char *domain, const char *user, const char *folder, const char *uses);
/* QUOTA (RFC 9208, imap_quota.c): one root, "", per account. The QUOTA
 * response of root into out: 0; -1 no such root (the account has no
 * limit, or another name: NONEXISTENT); -2 the usage cannot be known. */
int imap_quota_get(const char *domain, const char *user, const char *root, struct buf *out);
/* GETQUOTAROOT's answer for box (which exists): QUOTAROOT, then the
 * root's QUOTA when there is one. 0, or -1 when the usage cannot be known. */
int imap_quota_root(const char *domain, const char *user, const char *box, struct buf *out);
/* SETQUOTA's arguments from token i: 0 when they are well formed (the
 * command is refused either way), -1 (BAD). */
int imap_quota_set_parse(const struct imap_cmd *c, uint32_t i);
/* LIST with LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154) and
 * LIST-STATUS (RFC 5819), imap_list.c. */
#define IMAP_LIST_PATS 16
enum {
	LIST_SEL_SUBSCRIBED = 1,
	LIST_SEL_RECURSIVE = 2,
	LIST_SEL_SPECIAL = 4,
	LIST_RET_SUBSCRIBED = 8,
	LIST_RET_STATUS = 16,
};
struct imap_list_req {
	unsigned opts;                    /* LIST_* */
	int extended;                     /* options or a list of patterns given */
	const char *ref;                  /* the reference */
	const char *pat[IMAP_LIST_PATS];  /* the patterns */
	int npat;
	uint32_t status_first, status_end; /* RETURN (STATUS (items)): their tokens */
	int utf8; /* IMAP4rev2: patterns and names in UTF-8 (the store's are modified UTF-7) */
};
/* The command's tokens from i (after "LIST") into r; -1 when they are not
 * a LIST command (BAD). r points into c. */
int imap_list_parse(const struct imap_cmd *c, uint32_t i, struct imap_list_req *r);
/* The LIST lines for r into out; for RETURN (STATUS) calls status after
 * each selectable folder's line (it adds the STATUS line). */
void imap_list_run(const struct imap_list_req *r, const char *domain, const char *user,
        struct buf *out, void (*status)(const char *name, void *arg), void *arg);
/* LSUB (RFC 3501 6.3.9) of the full pattern pat: the subscribed names
 * that match, and as \Noselect the levels above one that match when it
 * does not. utf8 as imap_list_req's. */
void imap_lsub_run(const char *pat, const char *domain, const char *user, int utf8, struct buf *out);
int imap_wild_match(const char *pat, const char *name, int icase);

/* How IMAP reads a message (imap_msg.c): from a folder by UID, or (tests)
 * from a buffer; streamed through fixed buffers, never held whole. */
struct imap_src;
struct imap_src *imap_src_folder(struct mm_folder *f, const struct mm_msg *m, uint32_t uidvalidity);
struct imap_src *imap_src_buffer(const char *p, size_t n); /* p must outlive it */
void imap_src_free(struct imap_src *s);
/* The MIME tree: whole (full 1), or at least the root's header (ENVELOPE,
 * HEADER, TEXT). From a cache shared by every session (a few hundred KB
 * in all), else parsed as the message streams by. The tree keeps no
 * text (m->buf is NULL for a folder's message). NULL when the message
 * cannot be read. Valid until the next imap_src_mime or imap_src_free. */
const struct mime_msg *imap_src_mime(struct imap_src *s, int full);
/* BODY[spec] (spec as the client wrote it between the brackets, "" for
 * the whole message): 0 with *size the section's bytes; -1 when there is
 * no such part (NIL); -2 when the message cannot be read. Then read it
 * in order (skip: past n bytes, for partial fetches); read gives 0 at the
 * end, -1 on a read error. HEADER.FIELDS reads the header twice (once to
 * count for the literal's size); other sections go straight to their
 * bytes from the nearest mark. */
struct imap_section;
int imap_section_open(struct imap_src *s, const char *spec, struct imap_section **out,
	uint64_t *size);
/* BINARY[part] (RFC 3516; part "" for the whole message, header and
 * decoded body): the same, for the section decoded as its
 * Content-Transfer-Encoding says (a part that is not a leaf as it is);
 * *nul says whether the decoded bytes hold a NUL (then a literal8). -3
 * when the encoding is one there is no decoding for (UNKNOWN-CTE). The
 * section is decoded once to count it, and again as it is read. */
int imap_section_open_binary(struct imap_src *s, const char *part, struct imap_section **out,
	uint64_t *size, int *nul);
long imap_section_read(struct imap_section *x, char *out, size_t n);
int imap_section_skip(struct imap_section *x, uint64_t n);
void imap_section_free(struct imap_section *x);
/* SEARCH HEADER (name NULL: any field; the root's header, unfolded, RFC
 * 2047 words decoded) and BODY (each leaf's text, decoded and converted as
 * mime_body_text does): 1 when str is in it, ASCII letters in any case.
 * imap_src_address_has (FROM, TO, CC, BCC) also looks in the field's
 * addresses as parsed, "Name <box@host>" or "box@host" each, so that
 * comments, blanks or a route inside an address hide nothing. */
int imap_src_header_has(struct imap_src *s, const char *name, const char *str);
int imap_src_address_has(struct imap_src *s, const char *name, const char *str);
int imap_src_body_has(struct imap_src *s, const char *str);
/* The root header's fields, streamed: fn(name, raw value with its
 * folding, without its last line end; kept up to 64 KB, arg) for each
 * in order until fn returns 1 (then 1; else 0). */
int imap_src_fields(struct imap_src *s,
	int (*fn)(const char *name, size_t nlen, const char *v, size_t vn, void *arg), void *arg);
/* The root's Date field, unfolded; NULL if none. Valid as imap_src_mime's. */
const char *imap_src_date(struct imap_src *s);
/* Empties the cache of trees (tests). */
void imap_cache_clear(void);

/* FETCH (imap_fetch.c): the items from token pos on (-1: they are bad),
 * then the answer for the messages with sequence numbers seqs[0..n) of
 * view v of f (seqs must outlive j), a part at a time: fill adds at
 * least max bytes to out unless it is done (1; the tagged reply is the
 * caller's), or -1 when a message could not be read in the middle of a
 * literal (the session must end). readonly: \Seen is not set. */
struct imap_fetch;
int imap_fetch_new(const struct imap_cmd *c, uint32_t pos, int uid, struct imap_fetch **out);
void imap_fetch_begin(struct imap_fetch *j, struct mm_folder *f, struct mm_view *v,
	const uint32_t *seqs, uint32_t n, int readonly);
int imap_fetch_fill(struct imap_fetch *j, struct buf *out, size_t max);
/* SELECT and EXAMINE's parameters (RFC 7162, imap_sync.c): "(CONDSTORE)"
 * or "(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))" from
 * token *pos to the end; 0 (also when there are none), -1 (BAD). Free
 * with imap_qresync_free. */
struct imap_qresync {
	int condstore, on; /* on: QRESYNC was given */
	uint32_t uidvalidity;
	uint64_t modseq;
	int has_known;
	struct imap_set known;
};
int imap_select_params(const struct imap_cmd *c, uint32_t *pos, struct imap_qresync *q);
void imap_qresync_free(struct imap_qresync *q);
/* "* VANISHED (EARLIER) ..." for the ranges r that are in within (NULL:
 * all of them; "*" in it is star), nothing when none is. */
void imap_put_vanished(struct buf *o, const struct mm_range *r, uint32_t n,
	const struct imap_set *within, uint32_t star);
/* Ascending UIDs as a sequence set: "1:3,7". */
void imap_put_uids(struct buf *o, const uint32_t *uids, uint32_t n);
/* CONDSTORE and QRESYNC (RFC 7162): condstore 1 when the session has it
 * on (implicit FLAGS then come with MODSEQ); *since and *vanished are
 * CHANGEDSINCE's modseq and VANISHED. 1 when the FETCH itself turns
 * CONDSTORE on (MODSEQ, CHANGEDSINCE). Call before imap_fetch_fill. */
int imap_fetch_sync(struct imap_fetch *j, int condstore, uint64_t *since, int *vanished);
/* A mod-sequence value (RFC 7162: 1..2^63-1; 0 allowed where a
 * mod-sequence-valzer is); -1 when s is not one. */
int imap_modseq_parse(const char *s, uint64_t *out);
/* 1 when a BINARY item was left out for an encoding there is no decoding
 * for: the tagged reply is then NO [UNKNOWN-CTE] (RFC 3516). */
int imap_fetch_unknown_cte(const struct imap_fetch *j);
void imap_fetch_free(struct imap_fetch *j);
/* "(\Seen $Work)": flags and keywords (f's names) as IMAP lists them. */
void imap_put_flags(struct buf *o, struct mm_folder *f, uint32_t fl, uint32_t kw);

/* SEARCH: keys parsed from the tokens at *pos to the end, then matched
 * against one message at a time. kw maps a keyword to its bit (-1: no
 * message has it). */
struct imap_search;
struct imap_search_msg {
	uint32_t seq, uid, flags, keywords, size;
	uint32_t max_seq, max_uid; /* what "*" means */
	int64_t date;              /* internal date */
	int zone;                  /* minutes east of UTC for date's day */
	struct imap_src *src;      /* the message, for keys that read it; NULL: they fail */
	uint64_t modseq;
	int64_t savedate; /* 0: not known */
	int recent;
	const struct imap_set *saved; /* "$" (SEARCHRES): the session's saved result */
};
int imap_search_parse(const struct imap_cmd *c, uint32_t *pos,
	int (*kw)(void *arg, const char *name), void *kwarg, struct imap_search **out,
	const char **error);
int imap_search_match(const struct imap_search *k, struct imap_search_msg *m);
void imap_search_free(struct imap_search *k);
/* 1 when a MODSEQ key is among k's (the answer then gives the highest). */
int imap_search_has_modseq(const struct imap_search *k);
/* ESEARCH (RFC 4731) and SEARCHRES (RFC 5182), imap_esearch.c. return
 * reads "RETURN (options)" at *pos when there (moving past it): *ret its
 * IMAP_RET_* (ALL for "()"), 0 without RETURN; -1 on a bad one. */
enum { IMAP_RET_MIN = 1, IMAP_RET_MAX = 2, IMAP_RET_ALL = 4, IMAP_RET_COUNT = 8, IMAP_RET_SAVE = 16 };
int imap_search_return(const struct imap_cmd *c, uint32_t *pos, unsigned *ret);
/* One SEARCH's answer: init, add each match in ascending order (v as the
 * answer counts, seq or UID, and the message's seq and uid), put the
 * "* ESEARCH" line (none for SAVE alone), end: the saved result (UID
 * ranges) replaces *saved when SAVE was asked (saved may be NULL); -1
 * when it was too big to keep (*saved is then empty: NO [NOTSAVED]). */
struct imap_esearch {
	unsigned ret;
	uint32_t min, max, count, run_lo, run_hi, min_uid, max_uid;
	struct buf all;
	struct imap_set save;
	uint32_t save_cap, save_seq;
	int too_big;
};
void imap_esearch_init(struct imap_esearch *e, unsigned ret);
void imap_esearch_add(struct imap_esearch *e, uint32_t v, uint32_t seq, uint32_t uid);
void imap_esearch_put(struct imap_esearch *e, struct buf *out, const char *tag, int uid,
	uint64_t modseq);
int imap_esearch_end(struct imap_esearch *e, struct imap_set *saved);
/* 1 when uid is in a saved result (binary search over its ranges). */
int imap_saved_has(const struct imap_set *saved, uint32_t uid);

/* SORT and THREAD (RFC 5256, with RFC 5957's DISPLAYFROM and DISPLAYTO;
 * imap_sort.c). parse reads SORT's criteria (thread 0) or THREAD's
 * algorithm (1) and the charset from token *pos, leaving *pos at the
 * search keys: 0, -1 (BAD) or -2 (a charset other than UTF-8 and
 * US-ASCII: NO [BADCHARSET]); *out is set in every case, for
 * imap_sort_free. Then add for each message the search matched, in
 * sequence order (its small keys are kept, never its header), and put
 * appends the "* SORT" or "* THREAD" line, with UIDs when uid is 1. */
struct imap_sort;
int imap_sort_parse(const struct imap_cmd *c, uint32_t *pos, int thread, struct imap_sort **out);
void imap_sort_add(struct imap_sort *x, const struct imap_search_msg *m);
void imap_sort_put(struct imap_sort *x, int uid, struct buf *out);
void imap_sort_free(struct imap_sort *x);
/* The base subject (RFC 5256 2.1) of a Subject field's raw value into
 * out (reset first): words decoded, blanks squeezed, Re:/Fwd:/[blob]
 * leaders, "(fwd)" trailers and "[fwd: ...]" taken off; at most
 * IMAP_SUBJECT_MAX bytes (cut at a character's start). 1 when a reply
 * or forward marker was taken off (THREAD=REFERENCES asks). */
#define IMAP_SUBJECT_MAX 200
int imap_base_subject(const char *s, size_t n, struct buf *out);

/* ---- dns.c: a small blocking DNS client (MX, A, AAAA, TXT, PTR) ---- */
/* For the delivery thread and scripts, never an event-loop worker: a
 * lookup may block for seconds. Each server in turn, two rounds, 2 s
 * each: UDP with a random id and source port and EDNS0, TCP when the
 * answer is truncated. Answers, negative ones too, are cached by TTL.
 * Every call is thread-safe. Results are counts (>= 0) or one of: */
#define DNS_NXDOMAIN (-1) /* no such name (also a malformed name, without a query) */
#define DNS_TEMPFAIL (-2) /* no server gave an answer: try again later */
#define DNS_NOMAIL (-3)   /* the domain accepts no mail: null MX (RFC 7505) */
#define DNS_NAME_MAX 256  /* a name as text, NUL included */
#define DNS_ADDR_MAX 64   /* an address as text */
#define DNS_TEXT_MAX 1024 /* a TXT record, NUL included; longer ones are skipped */
#define DNS_SERVERS_MAX 8
enum dns_type {
	DNS_T_A = 1,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_SRV = 33
};

/* The servers to ask: servers is the DNSServer directive (addresses
 * separated by commas or spaces, each with an optional port:
 * "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:53"); NULL or "" means
 * the system's. Call before the threads that look names up start, and
 * again on reload (the cache stays). -1 with err filled when servers is
 * bad (the old list stays) or there is no server (lookups then give
 * DNS_TEMPFAIL). */
int dns_init(const char *servers, char *err, size_t errlen);
void dns_shutdown(void); /* frees the cache; once no thread looks up */
const char *dns_strerror(int code); /* "no such domain", ... */

struct dns_mx {
	char host[DNS_NAME_MAX]; /* lower case, no trailing dot */
	int pref;
};
/* The mail hosts of domain by preference, equal ones in random order
 * (RFC 5321 section 5.1). No MX but an address: {domain, 0} (implicit
 * MX); no MX and no address: 0; a null MX: DNS_NOMAIL. */
int dns_mx(const char *domain, struct dns_mx *out, int max);
/* host's addresses as text, IPv4 (A) first, then IPv6 (AAAA); an address
 * given as host is returned as it is. */
int dns_addrs(const char *host, char (*out)[DNS_ADDR_MAX], int max);
/* TXT records, each one's strings joined (as SPF and DKIM read them). */
int dns_txt(const char *name, char (*out)[DNS_TEXT_MAX], int max);
/* The name of ip (PTR): 1 with name filled, 0 when there is none or it
 * does not fit len (DNS_NAME_MAX always does). */
int dns_ptr(const char *ip, char *name, size_t len);
struct dns_srv {
	char host[DNS_NAME_MAX]; /* lower case, no trailing dot; "" = "." (no service) */
	int prio, weight, port;
};
/* The SRV records of name ("_imaps._tcp.example.org", RFC 2782) in the
 * order the answer gave them (callers compare, they do not connect). */
int dns_srv(const char *name, struct dns_srv *out, int max);

/* The parser, exported for tests and fuzzing: pkt is untrusted. */
#define DNS_RR_MAX 32 /* records kept from one answer */
struct dns_rr {
	int pref;         /* MX preference, SRV priority */
	int weight, port; /* SRV */
	char text[DNS_TEXT_MAX]; /* host name, address or TXT text; "" for a null MX */
};
struct dns_answer {
	int rcode; /* 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... */
	int tc;    /* truncated: ask again over TCP; nothing else was read */
	uint32_t ttl; /* seconds it may be cached; 0 = not at all */
	/* A CNAME chain ended at this name without records and without a
	 * SOA saying there are none: ask again for it. "" otherwise. */
	char cname[DNS_NAME_MAX];
	int n;
	struct dns_rr rr[DNS_RR_MAX]; /* of type qtype, CNAMEs followed */
};
/* Parses the answer to the query (id, qname, qtype). 0 with ans filled,
 * -1 when it is malformed or answers another question; then ans holds
 * nothing to use. Records whose names or text are not plain printable
 * ASCII are skipped. */
int dns_parse_answer(const uint8_t *pkt, size_t len, uint16_t id, const char *qname, int qtype,
	struct dns_answer *ans);
/* For tests: the per-try timeout and rounds, the cache's entry count, and
 * emptying it. */
void dns__set_timeout(int ms, int tries);
int dns__cache_count(void);
void dns__cache_clear(void);

/* ---- outbound.c: the SMTP client (MX delivery, RelayHost, relay accounts) ---- */
enum ob_status { OB_PENDING, OB_ACCEPTED, OB_SENT, OB_TEMP, OB_PERM };
#define OB_REPLY_MAX 256
struct ob_rcpt {
	const char *addr;
	enum ob_status status; /* after outbound_send: OB_SENT, OB_TEMP or OB_PERM */
	int remote;            /* reply is a server's answer (else our own words) */
	char reply[OB_REPLY_MAX];  /* what was said, printable, for logs and DSNs */
	char host[DNS_NAME_MAX];   /* the server that said it, "" if none */
	char status_code[12];      /* RFC 3463: "5.1.1" */
};
/* Sends m to n recipients of domain in one transaction: via NULL or ""
 * means the domain's MX hosts (OutboundPort), else "host[:port]" (a
 * relay account or RelayHost: that host only, no MX lookup). Blocks for
 * DNS and the network (OutboundTimeout per reply); every recipient comes
 * back settled. Logs every attempt. */
void outbound_send(struct queue_msg *m, const char *domain, const char *via, struct ob_rcpt *r,
	int n);
/* One message to one server, as a mail client submits it (smtp.send of
 * the Lua API): host ("localhost" is 127.0.0.1, else its addresses in
 * turn until one connects), EHLO helo (HELO if refused), STARTTLS when
 * offered (not verified, as outbound_send), AUTH PLAIN or LOGIN when user
 * is set, MAIL, each RCPT, DATA (data: the message, CRLF lines, not yet
 * dot-stuffed), QUIT. Blocks: helper threads only; each wait ends early
 * once stopping() says 1. 0 when the server
 * took the message; -1 with err set to the reply that refused it (code
 * and text) or what failed. */
#define OB_AUTH_MAX 255 /* bytes of user and of password */
#define OB_ADDR_MAX 512 /* bytes of an address, without the brackets */
struct ob_submit {
	const char *host, *helo;
	int port, timeout_ms; /* timeout: each reply (end of data: twice) */
	const char *user, *password; /* user NULL: no AUTH */
	const char *from;
	const char *const *rcpt;
	int nrcpt;
	const char *data;
	size_t len;
	int (*stopping)(void); /* 1: stop waiting (NULL: the queue's stop) */
	int64_t deadline;      /* os_now_ms() to give up at, whatever is under way; 0 none */
};
int outbound_submit(const struct ob_submit *m, char *err, size_t errlen);
/* Seconds to wait after the attempts-th failed attempt (1, 2, ...):
 * RetryInterval, doubling, at most MaxRetryInterval. */
int64_t outbound_backoff(int attempts);
/* t as an RFC 5322 date in UTC: "Thu, 1 Jan 2026 10:00:00 +0000". */
void outbound_date(int64_t t, char *out, size_t len);
/* A bounce (RFC 3464 multipart/report, CRLF lines) to sender about the n
 * failed recipients r of message qid that arrived at arrival; hdr is the
 * message's header block, quoted as text/rfc822-headers. Appends to b. */
void outbound_dsn(struct buf *b, const char *sender, uint64_t qid, int64_t arrival, int64_t now,
	const struct ob_rcpt *r, int n, const char *hdr, size_t hdrlen);

#include "mime.h"

/* ---- lua/ (scripts): Rumble's Lua API, see lua/rl.h and docs ---- */
/* The LoadScript files run in one Lua state per worker plus one for
 * start-up and mail hand-off (each state runs the scripts' top-level code
 * once). Scripts get a capped allocator (LuaMemoryLimit) and an
 * instruction budget per call (LuaInstructionLimit); an error is logged
 * as "script error: file:line: message" and the session goes on as if no
 * hook were set. */
/* A service the scripts can see and control by name (serviceInfo,
 * startService, ...); port is what startService listens on. Call before
 * rl_start. */
void rl_service_add(struct service *svc, int port);
/* After server_start: loads the scripts. A script that fails is logged,
 * not fatal; -1 (err filled) only when Lua cannot start at all. */
int rl_start(char *err, size_t errlen);
/* After server_stop (no session left): closes every state. */
void rl_stop(void);
/* Re-runs the scripts in new states: hooks and services registered by
 * the old scripts are dropped and registered again by the new ones. Each
 * worker swaps in its new state at its next Lua call. Any thread. */
void rl_reload(void);
/* Runs the hook set for s's protocol (proto->name) and when ("accept",
 * "close" or "command"; cmd is the verb, any case) with (session, arg).
 * On s's worker only. RL_CONTINUE when there is no hook or it failed.
 * RL_WAIT: the hook waits for the client (session:receive()); the
 * client's input goes to the script until it returns, and then
 * proto->hooked(s, verdict) says what it decided (the protocol keeps
 * what it needs to go on: arg is not valid after this call). Close
 * hooks never wait. */
enum rl_verdict rl_hook(struct session *s, const char *when, const char *cmd, const char *arg);
/* s ends: the scripts' session object is closed (s->lua set only). */
void rl_session_end(struct session *s);
/* 1 when a LoadScript or an SMTPScript is configured: hooks may exist. */
#define rl_configured() (conf.nscripts > 0 || conf.smtp_script[0] != '\0')
/* 1 when Lua states are made: scripts, or the web admin (EnableWebAdmin). */
#define rl_wanted() (rl_configured() || conf.webadmin_enable)

/* ---- lua/vpop3.c: the SMTPScript, VPOP3's SMTP server callbacks ---- */
/* One instance of the script's globals per SMTP session (its own
 * environment table over the worker state's globals). Every rl_vp3_*
 * below runs on s's worker. A callback the script does not define, or
 * one that fails (logged), leaves the server's default behaviour; a reply
 * a callback gives is written into out (CRLF lines, reset first) and its
 * code returned, 0 when there is none (or it was not a valid reply). */
struct rl_vp3;
/* What the script's IN/OUT globals say now, bounded by the server's own
 * limits (never above MaxRecipients, MessageSizeLimit). */
struct rl_vp3_vars {
	int valid, local, auth_required, force, batv, add_user;
	int max_rcpt_local, max_rcpt_in, max_msgs_local, max_line;
	char allowed[512]; /* AllowedUsers: space-separated, "" = anyone */
};
/* NULL when there is no SMTPScript (or Lua is not running). Runs the
 * chunk in the session's environment, then GetMaxMessageSize(peer). */
struct rl_vp3 *rl_vp3_open(struct session *s, uint64_t *max_size);
void rl_vp3_close(struct rl_vp3 *v); /* End(), then frees v */
struct rl_vp3_vars *rl_vp3_vars(struct rl_vp3 *v);
int rl_vp3_start(struct rl_vp3 *v, struct buf *out);
/* GetMaxMessageSize then DoHELO: *refuse in and out */
int rl_vp3_helo(struct rl_vp3 *v, const char *host, int esmtp, int *refuse, uint64_t *max_size,
	struct buf *out);
/* GetEHLOCapabilities: caps is one capability per CRLF line, replaced */
void rl_vp3_caps(struct rl_vp3 *v, const char *host, struct buf *caps);
/* DoQUIT, DoNOOP, DoRSET (no argument), DoHELP(text) (text may be NULL),
 * DoUnrecognised(line) */
int rl_vp3_simple(struct rl_vp3 *v, const char *fn, const char *arg, struct buf *out);
/* DoVRFY / DoEXPN(list, current): current is the server's reply line */
int rl_vp3_verify(struct rl_vp3 *v, const char *fn, const char *addr, const char *current,
	struct buf *out);
/* DoMAILFROM: from may be rewritten (the MAILFROM parameter) */
int rl_vp3_mail(struct rl_vp3 *v, const char *data, const char *spf, char *from, size_t fromlen,
	const char *params, const char *user, struct buf *out);
/* DoRCPTTO */
int rl_vp3_rcpt(struct rl_vp3 *v, const char *data, const char *rcpt, const char *params,
	const struct queue_msg *m, struct buf *out);
/* DoDATAStart: header lines to add are appended to hdrs (CRLF lines) */
int rl_vp3_data(struct rl_vp3 *v, const struct queue_msg *m, struct buf *hdrs, struct buf *out);
/* StartMessage, MessageLineRaw(raw), MessageLine(line), EndMessage: a
 * body line as it came (raw) and unstuffed, with its line end; NULL
 * arguments for the start and the end. */
void rl_vp3_line(struct rl_vp3 *v, const char *fn, const char *line, size_t len);
/* After the message: CheckRecipients, then ProcessMessage, applied to m
 * (recipients, header modifiers). 0 queue m; 2 accept without queueing
 * (blackhole); 4xx/5xx: refuse with the reply in out. */
int rl_vp3_message(struct rl_vp3 *v, struct queue_msg *m, const char *user, struct buf *out);
/* AllowedUsers: 1 when user (user@domain) may log in; by its full name
 * or local part; an empty list lets anyone. */
int rl_vp3_user_allowed(struct rl_vp3 *v, const char *user);

/* An account of type mod: hands the message in msgpath to the
 * Rumble.setHook(fn, "mailman", "feed") hook, fn(message, account, rcpt,
 * from). 0 delivered (fn returned true), 1 try again later. Any thread
 * (runs in the start-up state under its lock). */
/* A user logged in to IMAP or POP3 (created 1: the script's
 * mail_user_created(user)) or that session ends (0: its
 * mail_user_deinit_pre(user), then mail_user_deinit(user)); login is
 * "user@domain". Dovecot's names, lua/ldovecot.c. */
void rl_mail_user(struct session *s, const char *login, int created);
int rl_feed(const struct mm_account *a, const char *msgpath, const char *from, const char *rcpt);
/* The "mailman"/"delivery" hook (lua/hooks.c): sees msg[0..len) (the
 * header and the start of a message of size bytes) for rcpt with what
 * Sieve (or INBOX) decided in r, and may replace that. 1 when it did, 0
 * when r stands (no hook, or it failed: logged). */
struct sieve_result;
/* 1 when a script set the delivery hook: only then is the message read
 * for it. */
int rl_delivery_wanted(void);
int rl_delivery(const char *rcpt, const char *from, const char *msg, size_t len, uint64_t size,
	struct sieve_result *r);

#endif
