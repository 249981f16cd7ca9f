/*
 * managesieve.c - ManageSieve (RFC 5804): users put, list, activate and
 * delete their Sieve scripts from a mail client (Thunderbird's Sieve
 * add-on, Roundcube's managesieve plugin, sieve-connect). A state machine
 * fed with lines by session.c, as pop3.c is; the scripts live where
 * sieve.c keeps them.
 *
 * A command is an atom and up to three arguments: quoted strings, literals
 * ("{n+}" or "{n}" ending a line, then n bytes through the session's tap)
 * and numbers. Both literal forms are taken without a continuation line:
 * ManageSieve has none (RFC 5804 4, literal-c2s), and a client sending
 * "{n}" sends the bytes at once. Bounds: a line MSV_LINE_MAX, a literal
 * SIEVE_SCRIPT_MAX after login and MSV_PRELOGIN_LITERAL before (a longer
 * one up to MSV_SKIP_MAX is read and dropped, answered NO (QUOTA/MAXSIZE);
 * longer still closes the session), MSV_PRELOGIN_MAX commands and
 * MSV_ERRORS_MAX failures before login.
 *
 * Login is AUTHENTICATE PLAIN or LOGIN through the shared SASL steps and
 * work_login, with session_login_failed's delay on failure, as in pop3.c;
 * in the clear only where AllowPlaintextAuth allows it (else NO
 * (ENCRYPT-NEEDED)). After STARTTLS the capabilities are sent again once
 * TLS is up (RFC 5804 2.2): the writable callback writes them when
 * session.c has switched to TLS, and they leave after the handshake.
 */
#include <string.h>

#include "sieve.h"

#define MSV_LINE_MAX 8192          /* a command line (a quoted script is no longer) */
#define MSV_PRELOGIN_LITERAL 2048  /* a literal before login: SASL responses */
#define MSV_SKIP_MAX (1024 * 1024) /* a too large literal still read and dropped */
#define MSV_PRELOGIN_MAX 30        /* commands before login */
#define MSV_ERRORS_MAX 10          /* NO before login, then closed */
#define MSV_TOKENS_MAX 4           /* the command and its arguments */
#define LOGIN_MAX (MM_USER_MAX + MM_DOMAIN_MAX + 2)

enum msv_state { M_AUTH, M_TRANS };
enum { T_ATOM, T_STRING, T_NUM };

struct msv_tok {
	int type;
	size_t off, len; /* in text */
};

struct msv {
	enum msv_state state;
	struct sasl sasl;
	int errors, commands;
	unsigned skip_line : 1, bad : 1, too_big : 1, caps_due : 1;
	char user[MM_USER_MAX + 1], domain[MM_DOMAIN_MAX + 1];
	char login[LOGIN_MAX];
	/* the command being read */
	struct buf text;
	struct msv_tok tok[MSV_TOKENS_MAX];
	int ntok;
	uint64_t lit_left;
};

/* ---- replies ---- */

/* s as a quoted string (RFC 5804 4: '"' and '\' escaped). */
static void put_quoted(struct session *s, const char *p)
{
	session_write(s, "\"", 1);
	for (; *p; p++) {
		if (*p == '"' || *p == '\\') {
			session_write(s, "\\", 1);
		}
		session_write(s, (*p == '\r' || *p == '\n') ? " " : p, 1);
	}
	session_write(s, "\"", 1);
}

/* OK, NO or BYE with an optional response code and a text. */
static void reply(struct session *s, const char *kind, const char *code, const char *fmt, ...)
        RL_PRINTF(4, 5);
static void reply(struct session *s, const char *kind, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	session_printf(s, "%s ", kind);
	if (code) {
		session_printf(s, "(%s) ", code);
	}
	put_quoted(s, text);
	session_write(s, "\r\n", 2);
}

/* NO; before login every one counts, and the last allowed closes. */
static void no(struct session *s, struct msv *st, const char *code, const char *text)
{
	reply(s, "NO", code, "%s", text);
	if (st->state == M_AUTH && ++st->errors >= MSV_ERRORS_MAX) {
		reply(s, "BYE", NULL, "Too many errors");
		session_close(s, "too many errors");
	}
}

/* ---- capabilities ---- */

/* Extensions a script may require: those the compiler takes are listed
 * (it is asked, so the list follows sieve_parse.c). */
static const char *const extensions[] = {"fileinto", "reject", "ereject", "envelope",
        "encoded-character", "imap4flags", "variables", "relational", "subaddress", "copy", "body",
        "mailbox", "comparator-i;ascii-numeric", "vacation", "vacation-seconds", "date", "index",
        "editheader", "include", "regex", "enotify", "environment", "duplicate", "foreverypart",
        "mime", "extracttext", "spamtest", "virustest", "ihave", "imapflags", "enclose"};

static void put_extensions(struct session *s)
{
	char src[80], err[200];
	int n = 0;
	session_write(s, "\"SIEVE\" \"", 9);
	for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++) {
		struct sieve_script *sc = NULL;
		int len = snprintf(src, sizeof src, "require \"%s\";", extensions[i]);
		if (sieve_compile(src, (size_t)len, &sc, err, sizeof err) == 0) {
			session_printf(s, "%s%s", n++ ? " " : "", extensions[i]);
		}
		sieve_free(sc);
	}
	session_write(s, "\"\r\n", 3);
}

static int starttls_offered(const struct session *s, const struct msv *st)
{
	return st->state == M_AUTH && !session_secure(s) && server_has_tls();
}

static void capabilities(struct session *s, struct msv *st)
{
	session_printf(s, "\"IMPLEMENTATION\" \"Rumble\"\r\n");
	if (st->state == M_AUTH) {
		session_printf(
		        s, "\"SASL\" \"%s\"\r\n", session_auth_allowed(s) ? "PLAIN LOGIN" : "");
	}
	put_extensions(s);
	if (starttls_offered(s, st)) {
		session_printf(s, "\"STARTTLS\"\r\n");
	}
	session_printf(s, "\"MAXREDIRECTS\" \"%d\"\r\n", SIEVE_REDIRECTS_MAX);
	if (st->state == M_TRANS) {
		session_printf(s, "\"OWNER\" ");
		put_quoted(s, st->login);
		session_write(s, "\r\n", 2);
	}
	session_printf(s, "\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n");
}

/* ---- the command's arguments ---- */

static const char *arg(const struct msv *st, int i)
{
	return i < st->ntok ? st->text.data + st->tok[i].off : "";
}

static size_t arg_len(const struct msv *st, int i)
{
	return i < st->ntok ? st->tok[i].len : 0;
}

/* 1 when arguments 1.. have the types in want ("s" string, "n" number);
 * else answers NO. */
static int args_are(struct session *s, struct msv *st, const char *want)
{
	int n = (int)strlen(want), ok = st->ntok == n + 1;
	for (int i = 0; ok && i < n; i++) {
		int t = st->tok[i + 1].type;
		ok = want[i] == 's' ? t == T_STRING : t == T_NUM;
		ok = ok && (want[i] != 's' || !memchr(arg(st, i + 1), '\0', arg_len(st, i + 1)));
	}
	if (!ok) {
		no(s, st, NULL, "Wrong arguments");
	}
	return ok;
}

/* A script name argument; 1 when valid, else answers NO. */
static int name_ok(struct session *s, struct msv *st, const char *name)
{
	char stem[3 * SIEVE_NAME_MAX + 1];
	if (sieve_name_encode(name, stem, sizeof stem) != 0) {
		no(s, st, NULL, "Invalid script name");
		return 0;
	}
	return 1;
}

/* ---- login ---- */

static void login_failed(struct session *s, void *unused)
{
	struct msv *st = s->ps;
	(void)unused;
	if (st) {
		no(s, st, NULL, "Authentication failed");
		session_resume(s);
	}
}

static void login_checked(struct session *s, int rc, const struct mm_account *a, const char *name)
{
	struct msv *st = s->ps;
	if (rc != 0 || a->type != MM_MBOX) {
		log_info("%08x managesieve result=refused client=%s cmd=login "
		         "reason=\"authentication "
		         "failed\"",
		        s->id, s->peer);
		session_after(s, session_login_failed(s->peer, name), login_failed, NULL);
		return;
	}
	session_login_ok(s->peer, name);
	rl_strlcpy(st->user, a->user, sizeof st->user);
	rl_strlcpy(st->domain, a->domain, sizeof st->domain);
	snprintf(st->login, sizeof st->login, "%s@%s", a->user, a->domain);
	st->state = M_TRANS;
	session_cap(s, 0); /* LoginTimeout is for sessions without login */
	log_info("%08x managesieve result=login client=%s user=%s", s->id, s->peer, st->login);
	reply(s, "OK", NULL, "Logged in");
	session_resume(s);
}

static void auth_result(struct session *s, struct msv *st, enum sasl_result r, const char *chal)
{
	switch (r) {
	case SASL_CHALLENGE:
		session_printf(s, "\"%s\"\r\n", chal);
		return;
	case SASL_DONE:
		if (session_login_blocked(s->peer, st->sasl.login)) {
			no(s, st, "TRYLATER", "Too many failed logins, try again later");
			break;
		}
		session_pause(s);
		work_login(s, st->sasl.login, st->sasl.password, login_checked);
		break;
	case SASL_MALFORMED:
		no(s, st, NULL, "Malformed authentication response");
		break;
	case SASL_CANCELLED:
		no(s, st, NULL, "Authentication cancelled");
		break;
	case SASL_NOMECH:
		no(s, st, NULL, "Unsupported authentication mechanism");
		break;
	}
	crypto_sasl_reset(&st->sasl);
}

static void cmd_authenticate(struct session *s, struct msv *st)
{
	if (st->ntok < 2 || st->ntok > 3 || st->tok[1].type != T_STRING ||
	        (st->ntok == 3 && st->tok[2].type != T_STRING)) {
		no(s, st, NULL, "Wrong arguments");
		return;
	}
	if (!session_auth_allowed(s)) {
		no(s, st, "ENCRYPT-NEEDED", "Plaintext authentication disallowed without TLS");
		return;
	}
	/* an initial response "" is an empty one (sasl: "=") */
	const char *initial = st->ntok == 3 ? (arg_len(st, 2) ? arg(st, 2) : "=") : NULL;
	const char *chal = "";
	enum sasl_result r = crypto_sasl_start(&st->sasl, arg(st, 1), initial, &chal);
	auth_result(s, st, r, chal);
}

/* A SASL response: one string (RFC 5804 2.1), "*" cancels. */
static void sasl_response(struct session *s, struct msv *st)
{
	const char *chal = "";
	if (st->ntok != 1 || st->tok[0].type != T_STRING) {
		crypto_sasl_reset(&st->sasl);
		no(s, st, NULL, "Malformed authentication response");
		return;
	}
	enum sasl_result r = crypto_sasl_step(&st->sasl, arg(st, 0), &chal);
	auth_result(s, st, r, chal);
}

/* ---- commands in any state ---- */

static void cmd_capability(struct session *s, struct msv *st)
{
	if (args_are(s, st, "")) {
		capabilities(s, st);
		reply(s, "OK", NULL, "Capability completed");
	}
}

static void cmd_noop(struct session *s, struct msv *st)
{
	if (st->ntok == 2 && st->tok[1].type == T_STRING) {
		session_printf(s, "OK (TAG ");
		put_quoted(s, arg(st, 1));
		session_printf(s, ") \"Done\"\r\n");
	} else if (args_are(s, st, "")) {
		reply(s, "OK", NULL, "Done");
	}
}

static void cmd_logout(struct session *s, struct msv *st)
{
	reply(s, "OK", NULL, "Logout completed");
	session_close(s, "logout");
}

static void cmd_starttls(struct session *s, struct msv *st)
{
	if (!args_are(s, st, "")) {
		return;
	}
	if (!starttls_offered(s, st)) {
		no(s, st, NULL, "TLS already active or not available");
		return;
	}
	reply(s, "OK", NULL, "Begin TLS negotiation now");
	crypto_sasl_reset(&st->sasl);
	st->caps_due = 1; /* RFC 5804 2.2: once TLS is up (msv_writable) */
	session_starttls(s);
}

static void cmd_unauthenticate(struct session *s, struct msv *st)
{
	if (args_are(s, st, "")) {
		st->state = M_AUTH;
		st->commands = st->errors = 0;
		st->login[0] = st->user[0] = st->domain[0] = '\0';
		reply(s, "OK", NULL, "Unauthenticated");
	}
}

/* ---- scripts ---- */

static void compile_check(struct session *s, struct msv *st, const char *text, size_t len)
{
	char err[300];
	struct sieve_script *sc;
	if (sieve_compile(text, len, &sc, err, sizeof err) != 0) {
		no(s, st, NULL, err);
		return;
	}
	sieve_free(sc);
	reply(s, "OK", NULL, "Script is valid");
}

/* May name get size bytes (RFC 5804 2.3)? Else answers NO (QUOTA/...). */
static int space_ok(struct session *s, struct msv *st, const char *name, uint64_t size)
{
	if (size > SIEVE_SCRIPT_MAX) {
		no(s, st, "QUOTA/MAXSIZE", "Script too large");
		return 0;
	}
	if (!sieve_script_exists(st->domain, st->user, name) &&
	        sieve_script_list(st->domain, st->user, NULL, NULL) >= SIEVE_SCRIPTS_MAX) {
		no(s, st, "QUOTA/MAXSCRIPTS", "Too many scripts");
		return 0;
	}
	return 1;
}

static void cmd_havespace(struct session *s, struct msv *st)
{
	if (args_are(s, st, "sn") && name_ok(s, st, arg(st, 1)) &&
	        space_ok(s, st, arg(st, 1), strtoull(arg(st, 2), NULL, 10))) {
		reply(s, "OK", NULL, "Putscript would succeed");
	}
}

static void cmd_putscript(struct session *s, struct msv *st)
{
	char err[300];
	if (!args_are(s, st, "ss") || !name_ok(s, st, arg(st, 1)) ||
	        !space_ok(s, st, arg(st, 1), arg_len(st, 2))) {
		return;
	}
	int rc = sieve_script_store(
	        st->domain, st->user, arg(st, 1), arg(st, 2), arg_len(st, 2), err, sizeof err);
	if (rc == 0) {
		reply(s, "OK", NULL, "Script stored");
	} else {
		no(s, st, rc == -2 ? "TRYLATER" : NULL, err);
	}
}

static void cmd_checkscript(struct session *s, struct msv *st)
{
	if (args_are(s, st, "s")) {
		compile_check(s, st, arg(st, 1), arg_len(st, 1));
	}
}

static void list_one(const char *name, int active, void *arg)
{
	struct session *s = arg;
	put_quoted(s, name);
	session_printf(s, "%s\r\n", active ? " ACTIVE" : "");
}

static void cmd_listscripts(struct session *s, struct msv *st)
{
	if (args_are(s, st, "")) {
		sieve_script_list(st->domain, st->user, list_one, s);
		reply(s, "OK", NULL, "Listscripts completed");
	}
}

static void cmd_setactive(struct session *s, struct msv *st)
{
	if (!args_are(s, st, "s") || (arg(st, 1)[0] && !name_ok(s, st, arg(st, 1)))) {
		return;
	}
	int rc = sieve_script_activate(st->domain, st->user, arg(st, 1));
	if (rc == 0) {
		reply(s, "OK", NULL, arg(st, 1)[0] ? "Script activated" : "No script active");
	} else {
		no(s, st, rc == -1 ? "NONEXISTENT" : "TRYLATER",
		        rc == -1 ? "No such script" : "Cannot activate the script");
	}
}

static void cmd_getscript(struct session *s, struct msv *st)
{
	struct buf b;
	if (!args_are(s, st, "s") || !name_ok(s, st, arg(st, 1))) {
		return;
	}
	buf_init(&b);
	if (sieve_script_read(st->domain, st->user, arg(st, 1), &b) != 0) {
		no(s, st, "NONEXISTENT", "No such script");
	} else {
		session_printf(s, "{%zu}\r\n", b.len);
		session_write(s, b.data ? b.data : "", b.len);
		session_write(s, "\r\n", 2);
		reply(s, "OK", NULL, "Getscript completed");
	}
	buf_free(&b);
}

static void cmd_deletescript(struct session *s, struct msv *st)
{
	if (!args_are(s, st, "s") || !name_ok(s, st, arg(st, 1))) {
		return;
	}
	int rc = sieve_script_delete(st->domain, st->user, arg(st, 1));
	if (rc == 0) {
		reply(s, "OK", NULL, "Script deleted");
	} else if (rc == -1) {
		no(s, st, "NONEXISTENT", "No such script");
	} else if (rc == -2) {
		no(s, st, "ACTIVE", "The active script cannot be deleted");
	} else {
		no(s, st, "TRYLATER", "Cannot delete the script");
	}
}

static void cmd_renamescript(struct session *s, struct msv *st)
{
	if (!args_are(s, st, "ss") || !name_ok(s, st, arg(st, 1)) || !name_ok(s, st, arg(st, 2))) {
		return;
	}
	int rc = sieve_script_rename(st->domain, st->user, arg(st, 1), arg(st, 2));
	if (rc == 0) {
		reply(s, "OK", NULL, "Script renamed");
	} else if (rc == -1) {
		no(s, st, "NONEXISTENT", "No such script");
	} else if (rc == -2) {
		no(s, st, "ALREADYEXISTS", "A script of that name exists");
	} else {
		no(s, st, "TRYLATER", "Cannot rename the script");
	}
}

/* ---- the command table ---- */

#define ST(x) (1 << (x))
#define ANY (ST(M_AUTH) | ST(M_TRANS))

static const struct {
	const char *verb;
	int states;
	void (*run)(struct session *s, struct msv *st);
} commands[] = {
        {"CAPABILITY", ANY, cmd_capability},
        {"LOGOUT", ANY, cmd_logout},
        {"NOOP", ANY, cmd_noop},
        {"STARTTLS", ST(M_AUTH), cmd_starttls},
        {"AUTHENTICATE", ST(M_AUTH), cmd_authenticate},
        {"UNAUTHENTICATE", ST(M_TRANS), cmd_unauthenticate},
        {"HAVESPACE", ST(M_TRANS), cmd_havespace},
        {"PUTSCRIPT", ST(M_TRANS), cmd_putscript},
        {"CHECKSCRIPT", ST(M_TRANS), cmd_checkscript},
        {"LISTSCRIPTS", ST(M_TRANS), cmd_listscripts},
        {"SETACTIVE", ST(M_TRANS), cmd_setactive},
        {"GETSCRIPT", ST(M_TRANS), cmd_getscript},
        {"DELETESCRIPT", ST(M_TRANS), cmd_deletescript},
        {"RENAMESCRIPT", ST(M_TRANS), cmd_renamescript},
};

static void execute(struct session *s, struct msv *st)
{
	if (st->sasl.step != SASL_IDLE) {
		sasl_response(s, st);
		return;
	}
	if (st->ntok == 0) {
		return; /* an empty line */
	}
	if (st->state == M_AUTH && ++st->commands > MSV_PRELOGIN_MAX) {
		reply(s, "BYE", NULL, "Too many commands without login");
		session_close(s, "too many commands");
		return;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (st->tok[0].type == T_ATOM && !rl_strcasecmp(arg(st, 0), commands[i].verb)) {
			if (!(commands[i].states & ST(st->state))) {
				no(s, st, NULL,
				        st->state == M_AUTH ? "Log in first" : "Already logged in");
			} else {
				commands[i].run(s, st);
			}
			return;
		}
	}
	no(s, st, NULL, "Unknown command");
}

/* ---- lines and literals ---- */

static int tok_push(struct msv *st, int type, const char *p, size_t n)
{
	if (st->ntok >= MSV_TOKENS_MAX) {
		return -1;
	}
	struct msv_tok *t = &st->tok[st->ntok++];
	t->type = type;
	t->off = st->text.len;
	t->len = n;
	buf_append(&st->text, p, n);
	buf_append(&st->text, "", 1);
	return 0;
}

/* A quoted string at p[0] == '"'; bytes consumed, 0 when bad. */
static size_t quoted(struct msv *st, const char *p, size_t n)
{
	struct buf v;
	size_t i = 1;
	buf_init(&v);
	for (; i < n && p[i] != '"'; i++) {
		if (p[i] == '\\' && i + 1 < n && (p[i + 1] == '"' || p[i + 1] == '\\')) {
			i++;
		} else if (p[i] == '\\') {
			break;
		}
		buf_append(&v, p + i, 1);
	}
	int ok = i < n && p[i] == '"' && tok_push(st, T_STRING, v.data ? v.data : "", v.len) == 0;
	buf_free(&v);
	return ok ? i + 1 : 0;
}

/* The tokens of p[0..n) (no literal in it); -1 on a syntax error. */
static int tokenize(struct msv *st, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t used;
		if (p[i] == ' ') {
			i++;
			continue;
		}
		if (p[i] == '"') {
			used = quoted(st, p + i, n - i);
		} else {
			used = strcspn(p + i, " \"{");
			used = used < n - i ? used : n - i;
			int num = strspn(p + i, "0123456789") == used && used <= 10;
			if (used == 0 || tok_push(st, num ? T_NUM : T_ATOM, p + i, used) != 0) {
				used = 0;
			}
		}
		if (used == 0) {
			return -1;
		}
		i += used;
	}
	return 0;
}

/* "{n}" or "{n+}" ending p[0..n): its offset, with the size; -1 if none. */
static long literal_at_end(const char *p, size_t n, uint64_t *size)
{
	const char *open = n ? memchr(p, '{', n) : NULL;
	while (open && memchr(open + 1, '{', n - (size_t)(open + 1 - p))) {
		open = memchr(open + 1, '{', n - (size_t)(open + 1 - p));
	}
	if (!open || p[n - 1] != '}') {
		return -1;
	}
	size_t i = (size_t)(open - p) + 1, digits = strspn(open + 1, "0123456789");
	if (digits == 0 || digits > 10) {
		return -1;
	}
	size_t end = i + digits + (open[1 + digits] == '+');
	if (end + 1 != n) {
		return -1;
	}
	*size = strtoull(open + 1, NULL, 10);
	return (long)(open - p);
}

static void command_reset(struct msv *st)
{
	buf_reset(&st->text);
	st->ntok = 0;
	st->bad = st->too_big = 0;
}

static void command_end(struct session *s, struct msv *st)
{
	if (st->too_big) {
		no(s, st, "QUOTA/MAXSIZE", "Literal too large");
	} else if (st->bad) {
		crypto_sasl_reset(&st->sasl);
		no(s, st, NULL, "Syntax error");
	} else {
		execute(s, st);
	}
	command_reset(st);
}

/* Literal bytes, as they arrive: kept, or dropped when too large. */
static size_t literal_tap(struct session *s, const char *p, size_t n)
{
	struct msv *st = s->ps;
	if (!p || !st) {
		s->tap = NULL;
		return 0;
	}
	size_t take = n < st->lit_left ? n : (size_t)st->lit_left;
	if (!st->too_big && !st->bad) {
		buf_append(&st->text, p, take);
		st->tok[st->ntok - 1].len += take;
	}
	st->lit_left -= take;
	if (st->lit_left == 0) {
		s->tap = NULL;
		if (!st->too_big && !st->bad) {
			buf_append(&st->text, "", 1);
		}
	}
	return take;
}

static void literal_start(struct session *s, struct msv *st, uint64_t n)
{
	uint64_t max = st->state == M_AUTH ? MSV_PRELOGIN_LITERAL : SIEVE_SCRIPT_MAX;
	if (n > MSV_SKIP_MAX || (st->state == M_AUTH && n > max)) {
		reply(s, "BYE", NULL, "Literal too large");
		session_close(s, "literal too large");
		return;
	}
	if (n > max) {
		st->too_big = 1;
	} else if (!st->bad && tok_push(st, T_STRING, "", 0) == 0) {
		st->text.len--; /* the NUL goes after the data */
	} else {
		st->bad = 1;
	}
	st->lit_left = n;
	if (n) {
		s->tap = literal_tap;
		s->tap_raw = 1;
	} else if (!st->too_big && !st->bad) {
		buf_append(&st->text, "", 1);
	}
}

static void msv_line(struct session *s, char *line, size_t len)
{
	struct msv *st = s->ps;
	int complete = line[len - 1] == '\n';
	if (st->skip_line || !complete) {
		if (!st->skip_line) {
			command_reset(st);
			crypto_sasl_reset(&st->sasl);
			no(s, st, NULL, "Line too long");
		}
		st->skip_line = !complete;
		return;
	}
	line[--len] = '\0';
	if (len && line[len - 1] == '\r') {
		line[--len] = '\0';
	}
	uint64_t lit = 0;
	long at = literal_at_end(line, len, &lit);
	size_t upto = at >= 0 ? (size_t)at : len;
	if (memchr(line, '\0', len) || (!st->bad && tokenize(st, line, upto) != 0)) {
		st->bad = 1;
	}
	if (at >= 0) {
		literal_start(s, st, lit);
	} else {
		command_end(s, st);
	}
}

/* ---- the protocol ---- */

static void greet(struct session *s, struct msv *st)
{
	capabilities(s, st);
	reply(s, "OK", NULL, "Rumble ManageSieve ready");
}

static void msv_open(struct session *s)
{
	struct msv *st = xcalloc(1, sizeof *st);
	buf_init(&st->text);
	s->ps = st;
	greet(s, st);
}

/* After STARTTLS: session.c has switched to TLS and calls this with the
 * output drained; what is written now leaves after the handshake. */
static void msv_writable(struct session *s)
{
	struct msv *st = s->ps;
	if (st && st->caps_due && session_secure(s)) {
		st->caps_due = 0;
		greet(s, st);
	}
}

static void msv_busy(struct session *s)
{
	session_printf(s, "BYE \"Too many connections from %s\"\r\n", s->peer);
}

static void msv_close(struct session *s)
{
	struct msv *st = s->ps;
	if (!st) {
		return;
	}
	s->tap = NULL;
	crypto_sasl_reset(&st->sasl);
	buf_free(&st->text);
	free(st);
	s->ps = NULL;
}

static int msv_can_stop(struct session *s)
{
	(void)s;
	return 1; /* every change is written before its OK */
}

static void msv_info(struct session *s, struct proto_info *pi)
{
	struct msv *st = s->ps;
	pi->user = st->state == M_TRANS ? st->login : NULL;
}

const struct proto managesieve_proto = {
        .name = "managesieve",
        .line_max = MSV_LINE_MAX + 2,
        .open = msv_open,
        .line = msv_line,
        .writable = msv_writable,
        .close = msv_close,
        .busy = msv_busy,
        .can_stop = msv_can_stop,
        .info = msv_info,
};
