/*
 * config.c - rumble.conf: "Key value" lines, '#' comments, and the
 * original's conditional blocks:
 *
 *   <if compare(key = value)>   also !=, and <, >, <=, >= on numbers;
 *   <else-if ...>                defined(key), exists(path); a leading
 *   <else>                       '!' negates any of them
 *   </if>
 *
 * Conditions see the keys set above them plus the predefined "windows",
 * "unix", "linux", "cygwin", "x64", "x86" and "architecture" (set before
 * the file, as the original did). config_apply() then turns the text into
 * typed settings, reporting "file:line: reason" for a bad value. A key
 * given twice keeps its first value, as in the original (its dictionary
 * answered with the first match); list directives keep every line.
 */
#include <ctype.h>
#include <string.h>

#include "rumble.h"

#define IF_DEPTH 16

struct settings conf;

/* One open <if>: taken = some branch already ran; active = this one runs. */
struct cond {
	int taken, active, parent_active;
	int line; /* of the <if>, for "not closed" */
};

struct parser {
	struct config *c;
	const char *name;
	int line;
	struct cond stack[IF_DEPTH];
	int depth;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *msg)
{
	snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
	return -1;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s)) {
		s++;
	}
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1])) {
		*--e = '\0';
	}
	return s;
}

static void add_entry(struct config *c, const char *key, const char *value, const char *file,
	int line)
{
	struct config_entry *e = xcalloc(1, sizeof *e);
	e->key = xstrdup(key);
	e->value = xstrdup(value);
	e->file = xstrdup(file);
	e->line = line;
	if (c->tail) {
		c->tail->next = e;
	} else {
		c->head = e;
	}
	c->tail = e;
}

/* The original's platform keys; "" is set but not defined(). x64/x86
 * tell the build's word size, whatever the processor's name. */
static const char *predefined(const char *key)
{
	static const char *names[] = {
		"windows", "unix", "linux", "cygwin", "x64", "x86", "architecture"};
	int win = strcmp(os_name(), "windows") == 0, b64 = sizeof(void *) == 8;
	const char *values[] = {win ? "1" : "", win ? "" : "1",
		strcmp(os_name(), "linux") == 0 ? "1" : "", "", b64 ? "1" : "", b64 ? "" : "1",
		b64 ? "64" : "32"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (rl_strcasecmp(key, names[i]) == 0) {
			return values[i];
		}
	}
	return NULL;
}

/* Predefined keys first, then the first value in the file: first wins. */
static const char *lookup(struct parser *p, const char *key)
{
	const char *v = predefined(key);
	for (const struct config_entry *e = p->c->head; !v && e; e = e->next) {
		if (rl_strcasecmp(e->key, key) == 0) {
			v = e->value;
		}
	}
	return v;
}

/* A whole decimal number ("64", "-1", "2.5"); 0 when s is not one. */
static int number(const char *s, double *out)
{
	char *end;
	const char *d = *s == '-' || *s == '+' ? s + 1 : s;
	if (!isdigit((unsigned char)*d)) {
		return 0;
	}
	*out = strtod(s, &end);
	return *end == '\0';
}

/* compare(key OP value): OP = == != as text (as numbers when both are),
 * < > <= >= as numbers only; an unset key is only != anything. */
static int compare(struct parser *p, char *arg, int *r)
{
	static const char *ops[] = {"=", "==", "!=", "<", ">", "<=", ">="};
	size_t k = strcspn(arg, "=!<>"), n = strspn(arg + k, "=!<>"), op = 0;
	while (op < 7 && (strlen(ops[op]) != n || strncmp(arg + k, ops[op], n) != 0)) {
		op++;
	}
	const char *want = trim(arg + k + n);
	arg[k] = '\0';
	const char *key = trim(arg), *v = lookup(p, key);
	double a = 0, b = 0;
	int an = v && number(v, &a), bn = number(want, &b);
	if (op == 7 || !*key) {
		return perr(p, "compare() needs key OP value, OP one of = != < > <= >=");
	}
	if (op >= 3 && !bn) {
		return perr(p, "compare(): <, >, <= and >= need a number");
	}
	int cmp = an && bn ? (a > b) - (a < b) : v ? rl_strcasecmp(v, want) : 1;
	int ordered = an && bn;
	int res[] = {cmp == 0, cmp == 0, cmp != 0, ordered && cmp < 0, ordered && cmp > 0,
		ordered && cmp <= 0, ordered && cmp >= 0};
	*r = res[op];
	return 0;
}

/* Evaluates "compare(k OP v)", "defined(k)", "exists(path)", maybe "!"-ed. */
static int eval(struct parser *p, char *expr, int *result)
{
	expr = trim(expr);
	int neg = 0;
	while (*expr == '!') {
		neg = !neg;
		expr = trim(expr + 1);
	}
	char *open = strchr(expr, '('), *close = strrchr(expr, ')');
	if (!open || !close || close < open || *trim(close + 1)) {
		return perr(p, "bad condition, expected compare(key = value), defined(key) or exists(path)");
	}
	*open = '\0';
	*close = '\0';
	char *fn = trim(expr), *arg = trim(open + 1);
	int r = 0; /* -Os cannot tell compare() always sets it */
	if (rl_strcasecmp(fn, "defined") == 0) {
		const char *v = lookup(p, arg);
		r = v && *v;
	} else if (rl_strcasecmp(fn, "exists") == 0) {
		struct os_stat st;
		r = os_stat(arg, &st) == 0;
	} else if (rl_strcasecmp(fn, "compare") == 0) {
		if (compare(p, arg, &r) != 0) {
			return -1;
		}
	} else {
		return perr(p, "unknown condition (compare, defined or exists)");
	}
	*result = neg ? !r : r;
	return 0;
}

static int active(struct parser *p)
{
	return p->depth == 0 || p->stack[p->depth - 1].active;
}

/* A line that starts with '<': one of the block tags. */
static int block_tag(struct parser *p, char *s)
{
	size_t n = strlen(s);
	if (n < 3 || s[n - 1] != '>') {
		return perr(p, "tag must end with '>'");
	}
	s[n - 1] = '\0';
	s = trim(s + 1);
	int r = 0;
	if (rl_strncasecmp(s, "if", 2) == 0 && (isspace((unsigned char)s[2]) || s[2] == '(')) {
		if (p->depth == IF_DEPTH) {
			return perr(p, "<if> nested too deep");
		}
		int parent = active(p);
		if (parent && eval(p, s + 2, &r) != 0) {
			return -1;
		}
		p->stack[p->depth++] = (struct cond){r, parent && r, parent, p->line};
	} else if (rl_strncasecmp(s, "else-if", 7) == 0 || rl_strncasecmp(s, "elseif", 6) == 0) {
		if (p->depth == 0) {
			return perr(p, "<else-if> without <if>");
		}
		struct cond *c = &p->stack[p->depth - 1];
		if (c->parent_active && !c->taken && eval(p, s + (s[4] == '-' ? 7 : 6), &r) != 0) {
			return -1;
		}
		c->active = c->parent_active && !c->taken && r;
		c->taken |= c->active;
	} else if (rl_strcasecmp(s, "else") == 0) {
		if (p->depth == 0) {
			return perr(p, "<else> without <if>");
		}
		struct cond *c = &p->stack[p->depth - 1];
		c->active = c->parent_active && !c->taken;
		c->taken = 1;
	} else if (rl_strcasecmp(s, "/if") == 0) {
		if (p->depth == 0) {
			return perr(p, "</if> without <if>");
		}
		p->depth--;
	} else {
		return perr(p, "unknown tag (expected <if>, <else-if>, <else> or </if>)");
	}
	return 0;
}

static int parse_line(struct parser *p, char *s)
{
	s = trim(s);
	if (!*s || *s == '#') {
		return 0;
	}
	if (*s == '<') {
		return block_tag(p, s);
	}
	if (!active(p)) {
		return 0;
	}
	for (char *h = s; (h = strchr(h, '#')) != NULL; h++) {
		if (isspace((unsigned char)h[-1])) {
			*h = '\0'; /* a comment after the value */
			break;
		}
	}
	char *v = s;
	while (*v && !isspace((unsigned char)*v)) {
		v++;
	}
	if (*v) {
		*v++ = '\0';
	}
	add_entry(p->c, s, trim(v), p->name, p->line);
	return 0;
}

int config_parse(struct config *c, const char *text, const char *name, char *err, size_t errlen)
{
	struct parser p = {.c = c, .name = name, .err = err, .errlen = errlen};
	char *copy = xstrdup(text), *line = copy;
	int rc = 0;
	while (line && rc == 0) {
		char *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
		}
		p.line++;
		rc = parse_line(&p, line);
		line = nl ? nl + 1 : NULL;
	}
	if (rc == 0 && p.depth) {
		p.line = p.stack[p.depth - 1].line;
		rc = perr(&p, "<if> is not closed with </if>");
	}
	free(copy);
	return rc;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, os_strerror());
		return -1;
	}
	struct buf b;
	buf_init(&b);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 4 * 1024 * 1024) {
		buf_append(&b, chunk, n);
	}
	fclose(f);
	buf_append(&b, "", 0);
	if (strlen(b.data) != b.len) {
		snprintf(err, errlen, "%s: not a text file", path);
		buf_free(&b);
		return -1;
	}
	/* the byte order mark Windows' Notepad puts before UTF-8 is not text */
	size_t bom = b.len >= 3 && memcmp(b.data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	int rc = config_parse(c, b.data + bom, path, err, errlen);
	buf_free(&b);
	return rc;
}

static void entry_free(struct config_entry *e)
{
	free(e->key);
	free(e->value);
	free(e->file);
	free(e);
}

void config_free(struct config *c)
{
	struct config_entry *e = c->head, *next;
	for (; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	c->head = c->tail = NULL;
}

const struct config_entry *config_find(const struct config *c, const char *key)
{
	const struct config_entry *found = NULL;
	for (const struct config_entry *e = c->head; e; e = e->next) {
		if (rl_strcasecmp(e->key, key) == 0) {
			found = e;
		}
	}
	return found;
}

const char *config_get(const struct config *c, const char *key)
{
	const struct config_entry *e = config_find(c, key);
	return e ? e->value : NULL;
}

/* ---- typed settings ---- */

/* K_LIST, K_WORDS, K_NOTE and K_UNUSED may be repeated (every line
 * counts); for the others the first line wins. */
enum kind {
	K_STR,
	K_BOOL,
	K_PORT,
	K_INT,
	K_SIZE,
	K_LEVEL,
	K_LIST,
	K_PLAIN,
	K_TIME,
	K_WORDS,
	K_MXLIST, /* yes/no, or the original's list of MX hosts to skip */
	K_ADDR,   /* a numeric address of this host; 0.0.0.0 or :: = none */
	K_NOTE,   /* the original's Comment: its text is logged */
	K_UNUSED, /* the original's, with no effect here (why says so once) */
	K_QUOTA,  /* DefaultQuota: "STORAGE [MESSAGES]" (quota.c) */
	K_TLSPOLICY, /* TLSPolicy: "DOMAIN MODE" per line (mtasts.c) */
};

struct directive {
	const char *key;
	enum kind kind;
	size_t off;  /* offset in struct settings */
	size_t size; /* of a string field */
	long min, max;
	const char *why; /* K_UNUSED: why it has no effect */
};

#define FIELD(k, kd, f) \
	{k, kd, offsetof(struct settings, f), sizeof(((struct settings *)0)->f), 0, 0, NULL}
#define STR(k, f) FIELD(k, K_STR, f)
#define NUM(k, kd, f, lo, hi) {k, kd, offsetof(struct settings, f), 0, lo, hi, NULL}
#define UNUSED(k, why) {k, K_UNUSED, 0, 0, 0, 0, why}
#define NO_DB "domains and accounts are flat files in StorageFolder"

static const struct directive directives[] = {
	STR("ServerName", server_name),
	STR("StorageFolder", storage),
	STR("BindToAddress", bind),
	NUM("ForceIPv4", K_BOOL, force_ipv4, 0, 1),
	NUM("EnableSMTP", K_BOOL, smtp_enable, 0, 1),
	NUM("SMTPPort", K_PORT, smtp_port, 1, 65535),
	NUM("EnablePOP3", K_BOOL, pop3_enable, 0, 1),
	NUM("POP3Port", K_PORT, pop3_port, 1, 65535),
	NUM("EnableIMAP4", K_BOOL, imap_enable, 0, 1),
	NUM("IMAP4Port", K_PORT, imap_port, 1, 65535),
	NUM("MessageSizeLimit", K_SIZE, message_size_limit, 1024, 0),
	NUM("EnforceFQDN", K_BOOL, enforce_fqdn, 0, 1),
	STR("RunAs", run_as),
	STR("RunAsGroup", run_as_group),
	NUM("BlockOutgoingMail", K_BOOL, block_outgoing, 0, 1),
	NUM("DeliveryAttempts", K_INT, delivery_attempts, 0, 1000),
	NUM("RetryInterval", K_TIME, retry_interval, 1, 7 * 86400),
	NUM("MaxRetryInterval", K_TIME, retry_max, 1, 7 * 86400),
	NUM("QueueLifetime", K_TIME, queue_lifetime, 0, 365 * 86400),
	FIELD("IgnoreMX", K_MXLIST, ignore_mx_hosts),
	FIELD("OutgoingBindToAddress", K_ADDR, outbound_bind),
	STR("RelayHost", relay_host),
	STR("Postmaster", postmaster),
	NUM("OutboundPort", K_PORT, outbound_port, 1, 65535),
	NUM("OutboundTimeout", K_TIME, outbound_timeout, 1, 3600),
	NUM("OutboundThreads", K_INT, outbound_threads, 1, 64),
	NUM("OutboundTLS", K_BOOL, outbound_tls, 0, 1),
	FIELD("TLSPolicy", K_TLSPOLICY, tls_policy),
	NUM("MTASTS", K_BOOL, mta_sts, 0, 1),
	NUM("MTASTSPort", K_PORT, mta_sts_port, 1, 65535),
	STR("TLSCAFile", tls_ca_file),
	{"LoadScript", K_LIST, 0, 0, 0, 0, NULL},
	STR("SMTPScript", smtp_script),
	STR("DNSBL", dnsbl),
	NUM("DKIMSign", K_BOOL, dkim_sign, 0, 1),
	NUM("Greylist", K_BOOL, greylist, 0, 1),
	NUM("SPFCheck", K_BOOL, spf_check, 0, 1),
	NUM("SPFReject", K_BOOL, spf_reject, 0, 1),
	NUM("DKIMVerify", K_BOOL, dkim_verify, 0, 1),
	NUM("DMARC", K_BOOL, dmarc, 0, 1),
	NUM("DMARCReject", K_BOOL, dmarc_reject, 0, 1),
	NUM("GreylistDelay", K_TIME, greylist_delay, 1, 86400),
	STR("DKIMSelector", dkim_selector),
	STR("DraftsFolder", special_use[SPECIAL_DRAFTS]),
	STR("SentFolder", special_use[SPECIAL_SENT]),
	STR("TrashFolder", special_use[SPECIAL_TRASH]),
	STR("JunkFolder", special_use[SPECIAL_JUNK]),
	STR("ArchiveFolder", special_use[SPECIAL_ARCHIVE]),
	STR("LogFile", log_file),
	STR("PidFile", pid_file),
	NUM("LogLevel", K_LEVEL, log_level, 0, 3),
	NUM("LogMaxSize", K_SIZE, log_max_size, 0, 0),
	NUM("LogKeep", K_INT, log_keep, 1, 100),
	NUM("Workers", K_INT, workers, 0, 256),
	NUM("MaxRecipients", K_INT, max_recipients, 1, 100000),
	NUM("MaxErrors", K_INT, max_errors, 1, 1000),
	NUM("IdleTimeout", K_INT, idle_timeout, 1, 86400),
	NUM("LineTimeout", K_TIME, line_timeout, 1, 3600),
	NUM("LoginTimeout", K_TIME, login_timeout, 1, 86400),
	NUM("CompactHour", K_INT, compact_hour, -1, 23),
	STR("TLSCertificate", tls_cert),
	STR("TLSKey", tls_key),
	NUM("EnableSMTPS", K_BOOL, smtps_enable, 0, 1),
	NUM("SMTPSPort", K_PORT, smtps_port, 1, 65535),
	NUM("EnableSubmission", K_BOOL, submission_enable, 0, 1),
	NUM("SubmissionPort", K_PORT, submission_port, 1, 65535),
	NUM("EnablePOP3S", K_BOOL, pop3s_enable, 0, 1),
	NUM("POP3SPort", K_PORT, pop3s_port, 1, 65535),
	NUM("EnableIMAPS", K_BOOL, imaps_enable, 0, 1),
	NUM("IMAPSPort", K_PORT, imaps_port, 1, 65535),
	NUM("EnableManageSieve", K_BOOL, managesieve_enable, 0, 1),
	NUM("ManageSievePort", K_PORT, managesieve_port, 1, 65535),
	NUM("AllowPlaintextAuth", K_PLAIN, plaintext_auth, 0, 2),
	NUM("LoginAttempts", K_INT, login_attempts, 1, 1000),
	NUM("AccountLoginAttempts", K_INT, account_login_attempts, 1, 100000),
	NUM("MinPasswordLength", K_INT, min_password_length, 0, 256),
	NUM("AuthCacheTime", K_TIME, auth_cache_time, 0, 86400),
	NUM("Quarantine", K_INT, quarantine, 0, 86400 * 7),
	NUM("ThreadsPerIP", K_INT, threads_per_ip, 1, 100000),
	NUM("AuthSenderMatch", K_BOOL, auth_sender_match, 0, 1),
	STR("DNSServer", dns_server),
	NUM("LuaMemoryLimit", K_SIZE, lua_memory_limit, 256 * 1024, 0),
	NUM("LuaInstructionLimit", K_INT, lua_instruction_limit, 1000, 2000000000),
	NUM("LuaTimeLimit", K_INT, lua_time_limit, 1, 3600),
	NUM("EnableWebAdmin", K_BOOL, webadmin_enable, 0, 1),
	STR("WebAdminBind", webadmin_bind),
	NUM("WebAdminPort", K_PORT, webadmin_port, 1, 65535),
	FIELD("WebAdmin", K_WORDS, webadmin_users),
	FIELD("MetricsFrom", K_WORDS, metrics_from),
	STR("MetricsToken", metrics_token),
	NUM("DefaultQuota", K_QUOTA, quota_kib, 0, 0),
	NUM("ACME", K_BOOL, acme_enable, 0, 1),
	STR("ACMEDirectory", acme_directory),
	STR("ACMEEmail", acme_email),
	FIELD("ACMENames", K_WORDS, acme_names),
	STR("ACMECA", acme_ca),
	NUM("ACMEHTTPPort", K_PORT, acme_http_port, 1, 65535),
	STR("ACMEChallenge", acme_challenge),
	STR("MTASTSMode", mta_sts_mode),
	NUM("ACMETLSPort", K_PORT, acme_tls_port, 1, 65535),
	NUM("ACMERenewDays", K_INT, acme_renew_days, 0, 3650),
	/* the rest of the original's rumble.conf */
	{"Comment", K_NOTE, 0, 0, 0, 0, NULL},
	UNUSED("DatabaseEngine", NO_DB),
	UNUSED("DataFolder", NO_DB),
	UNUSED("MySQLHost", NO_DB),
	UNUSED("MySQLPort", NO_DB),
	UNUSED("MySQLUser", NO_DB),
	UNUSED("MySQLPass", NO_DB),
	UNUSED("MySQLDB", NO_DB),
	UNUSED("MySQLConnections", NO_DB),
	UNUSED("LoadModule", "modules are built in (STARTTLS; the Greylist, DNSBL and SPFCheck "
			     "directives)"),
};

static int parse_bool(const char *v, int *out)
{
	static const char *yes[] = {"1", "yes", "true", "on", "enable", "enabled"};
	static const char *no[] = {"0", "no", "false", "off", "disable", "disabled"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (rl_strcasecmp(v, yes[i]) == 0) {
			return *out = 1, 0;
		}
		if (rl_strcasecmp(v, no[i]) == 0) {
			return *out = 0, 0;
		}
	}
	return -1;
}

/* Decimal with an optional K, M or G suffix (powers of 1024). */
static int parse_number(const char *v, int suffix, long long *out)
{
	if (!isdigit((unsigned char)*v)) {
		return -1;
	}
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned long long mul = 1;
	if (suffix && *end) {
		int c = toupper((unsigned char)*end);
		mul = c == 'K' ? 1024ULL : c == 'M' ? 1024ULL * 1024 : c == 'G' ? 1024ULL << 20 : 0;
		end += mul ? 1 : 0;
		if (mul && toupper((unsigned char)*end) == 'B') {
			end++;
		}
	}
	if (!mul || *end || n > (1ULL << 50) / mul) {
		return -1;
	}
	*out = (long long)(n * mul);
	return 0;
}

/* Seconds, with an optional s, m, h, d or w suffix: "300", "5m", "5d". */
static int parse_time(const char *v, long long *out)
{
	static const char units[] = "smhdw";
	static const long long mul[] = {1, 60, 3600, 86400, 7 * 86400};
	char num[32];
	size_t n = strlen(v);
	const char *u = n ? strchr(units, tolower((unsigned char)v[n - 1])) : NULL;
	if (!u || !*u) {
		return parse_number(v, 0, out);
	}
	if (n - 1 >= sizeof num) {
		return -1;
	}
	memcpy(num, v, n - 1);
	num[n - 1] = '\0';
	if (parse_number(num, 0, out) != 0 || *out > (1LL << 40)) {
		return -1;
	}
	*out *= mul[u - units];
	return 0;
}

/* IgnoreMX: yes/no (deliver to the domain's address, never its MX), or
 * the original's list of MX host names that are never used. */
static const char *ignore_mx(struct settings *s, char *list, size_t size, const char *v)
{
	static const char host[] = "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
	if (parse_bool(v, &s->ignore_mx) == 0) {
		return NULL;
	}
	size_t n = strlen(v);
	for (size_t i = strspn(v, host); i < n; i += 1 + strspn(v + i + 1, host)) {
		if (!strchr(" \t,", v[i])) {
			return "expected yes/no, or MX host names separated by spaces";
		}
	}
	if (rl_strlcpy(list, v, size) >= size) {
		return "value too long";
	}
	for (char *c = list; *c; c++) {
		*c = *c == ',' || *c == '\t' ? ' ' : (char)tolower((unsigned char)*c);
	}
	return NULL;
}

/* OutgoingBindToAddress: an address outbound connections can bind to. */
static const char *local_addr(char *field, size_t size, const char *v)
{
	static const uint8_t any[16];
	uint8_t ip[16];
	int n = os_ip_parse(v, ip);
	if (n < 0) {
		return "expected a numeric IPv4 or IPv6 address of this host";
	}
	if (memcmp(ip, any, (size_t)n) == 0) {
		*field = '\0'; /* the original's 0.0.0.0: the system chooses */
		return NULL;
	}
	os_fd fd = os_udp_bind(v, 0);
	if (fd == OS_BADFD) {
		return "cannot bind to it: not an address of this host";
	}
	os_close(fd);
	return rl_strlcpy(field, v, size) >= size ? "value too long" : NULL;
}

/* DefaultQuota: a storage size and an optional message count, each a
 * number or "none" (no limit; 0 is none too). */
static const char *default_quota(struct settings *s, const char *v)
{
	char kib[64] = "", msgs[64] = "none", extra[2];
	int n = sscanf(v, "%63s %63s %1s", kib, msgs, extra);
	if (n < 1 || n > 2 || quota_parse_kib(kib, &s->quota_kib) != 0 ||
	        quota_parse_msgs(msgs, &s->quota_msgs) != 0) {
		return "expected a size (K, M, G or T suffix allowed) or none, then optionally a "
		       "message count";
	}
	s->quota_kib = s->quota_kib == MM_QUOTA_NONE ? 0 : s->quota_kib;
	s->quota_msgs = s->quota_msgs == MM_QUOTA_NONE ? 0 : s->quota_msgs;
	return NULL;
}

/* TLSPolicy: "DOMAIN MODE" (".example.com" for the names below it, "*"
 * for every other), added to field as "domain:mode". */
static const char *tls_policy_line(char *field, size_t size, const char *v)
{
	char dom[256], mode[16], extra[2];
	if (sscanf(v, "%255s %15s %1s", dom, mode, extra) != 2 ||
	        tls_mode_parse(mode, strlen(mode)) < 0) {
		return "expected a domain (or .domain, or *) and none, may, encrypt or verify";
	}
	if (strspn(dom, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*") !=
	                strlen(dom) ||
	        (strchr(dom, '*') && strcmp(dom, "*") != 0)) {
		return "bad domain";
	}
	size_t n = strlen(field);
	if (n + strlen(dom) + strlen(mode) + 3 > size) {
		return "too many TLSPolicy lines";
	}
	snprintf(field + n, size - n, "%s%s:%s", n ? " " : "", dom, mode);
	return NULL;
}

/* An empty value is an error, except for strings, lists and notes. */
static int needs_value(enum kind k)
{
	return k != K_STR && k != K_LIST && k != K_WORDS && k != K_ADDR && k != K_NOTE &&
	       k != K_UNUSED;
}

static int apply_one(struct settings *s, const struct directive *d, const struct config_entry *e,
	char *err, size_t errlen)
{
	char *field = (char *)s + d->off;
	long long n = 0;
	const char *why = NULL;
	switch (d->kind) {
	case K_STR:
		if (rl_strlcpy(field, e->value, d->size) >= d->size) {
			why = "value too long";
		}
		break;
	case K_BOOL:
		if (parse_bool(e->value, (int *)field) != 0) {
			why = "expected 1/0, yes/no, true/false or on/off";
		}
		break;
	case K_LEVEL:
		n = log_level_parse(e->value);
		if (n < 0) {
			why = "expected error, warn, info or debug";
		}
		*(int *)field = (int)n;
		break;
	case K_SIZE:
		if (parse_number(e->value, 1, &n) != 0 || n < d->min || n > (1LL << 32)) {
			why = "expected a size in bytes (K, M or G suffix allowed), 1K to 4G";
		}
		*(uint64_t *)field = (uint64_t)n;
		break;
	case K_PORT:
	case K_INT:
		if (parse_number(e->value, 0, &n) != 0 || n < d->min || n > d->max) {
			why = d->kind == K_PORT ? "expected a port number, 1 to 65535" : "number out of range";
		}
		*(int *)field = (int)n;
		break;
	case K_TIME:
		if (parse_time(e->value, &n) != 0 || n < d->min || n > d->max) {
			why = "expected seconds, or a number with s, m, h, d or w, in range";
		}
		*(int *)field = (int)n;
		break;
	case K_PLAIN:
		n = rl_strcasecmp(e->value, "loopback") == 0 ? AUTH_PLAIN_LOOPBACK : -1;
		if (n < 0 && parse_bool(e->value, (int *)field) == 0) {
			n = *(int *)field ? AUTH_PLAIN_ALWAYS : AUTH_PLAIN_NEVER;
		}
		if (n < 0) {
			why = "expected loopback, yes or no";
		}
		*(int *)field = (int)n;
		break;
	case K_WORDS: /* each line adds its words */
		n = (long long)strlen(field);
		if ((size_t)n + strlen(e->value) + 2 > d->size || strpbrk(e->value, "<>\"&'")) {
			why = strpbrk(e->value, "<>\"&'") ? "bad characters" : "value too long";
		} else {
			snprintf(field + n, d->size - (size_t)n, "%s%s", n ? " " : "", e->value);
		}
		break;
	case K_LIST:
		s->scripts = xrealloc(s->scripts, (size_t)(s->nscripts + 1) * sizeof *s->scripts);
		s->scripts[s->nscripts++] = xstrdup(e->value);
		break;
	case K_MXLIST:
		why = ignore_mx(s, field, d->size, e->value);
		break;
	case K_ADDR:
		why = *e->value ? local_addr(field, d->size, e->value) : NULL;
		break;
	case K_QUOTA:
		why = default_quota(s, e->value);
		break;
	case K_TLSPOLICY:
		why = tls_policy_line(field, d->size, e->value);
		break;
	case K_NOTE:
	case K_UNUSED:
		break; /* see note() */
	}
	if (!why && !*e->value && needs_value(d->kind)) {
		why = "missing value";
	}
	if (why) {
		snprintf(err, errlen, "%s:%d: %s: %s", e->file, e->line, d->key, why);
		return -1;
	}
	return 0;
}

/* 0 when v is one of the space-separated words (any case), else -1 with
 * err naming them. */
static int check_word(const char *key, const char *v, const char *words, char *err, size_t errlen)
{
	size_t n = strlen(v);
	for (const char *w = words; *w;) {
		size_t k = strcspn(w, " ");
		if (k == n && rl_strncasecmp(w, v, n) == 0) {
			return 0;
		}
		w += k + (w[k] == ' ');
	}
	snprintf(err, errlen, "%s: expected one of: %s", key, words);
	return -1;
}

/* The special-use folder names: a folder name each ("none": not made),
 * not INBOX, no two the same. */
static int check_special_use(struct settings *s, char *err, size_t errlen)
{
	static const char *keys[SPECIAL_USES] = {
	        "DraftsFolder", "SentFolder", "TrashFolder", "JunkFolder", "ArchiveFolder"};
	for (int i = 0; i < SPECIAL_USES; i++) {
		char *n = s->special_use[i];
		size_t len = strlen(n);
		if (rl_strcasecmp(n, "none") == 0) {
			n[0] = '\0';
			continue;
		}
		if (!len || !mm_valid_folder(n) || rl_strcasecmp(n, "INBOX") == 0 || n[0] == '.' ||
		        n[len - 1] == '.' || strstr(n, "..") || strpbrk(n, "*%")) {
			snprintf(err, errlen, "%s: a folder name (not INBOX), or none", keys[i]);
			return -1;
		}
		for (int j = 0; j < i; j++) {
			if (strcmp(n, s->special_use[j]) == 0) {
				snprintf(err, errlen, "%s and %s name the same folder", keys[j], keys[i]);
				return -1;
			}
		}
	}
	return 0;
}

static void defaults(struct settings *s)
{
	int root = os_is_root();
	memset(s, 0, sizeof *s);
	rl_strlcpy(s->server_name, "localhost", sizeof s->server_name);
	rl_strlcpy(s->storage, "data", sizeof s->storage);
	s->smtp_enable = s->pop3_enable = s->imap_enable = 1;
	s->dkim_sign = 1;
	s->dkim_verify = s->dmarc = s->dmarc_reject = 1;
	s->greylist_delay = 300;
	s->auth_cache_time = 3600; /* Dovecot's auth_cache_ttl */
	rl_strlcpy(s->dkim_selector, "rumble", sizeof s->dkim_selector);
	static const char *uses[SPECIAL_USES] = {"Drafts", "Sent", "Trash", "Junk", "Archive"};
	for (int i = 0; i < SPECIAL_USES; i++) {
		rl_strlcpy(s->special_use[i], uses[i], sizeof s->special_use[i]);
	}
	s->smtp_port = root ? 25 : 2525;
	s->pop3_port = root ? 110 : 1110;
	s->imap_port = root ? 143 : 1143;
	s->message_size_limit = 25ULL * 1024 * 1024;
	s->delivery_attempts = 0; /* no limit: QueueLifetime decides */
	s->retry_interval = 300;  /* Postfix's minimal_backoff_time */
	s->retry_max = 3600;
	s->queue_lifetime = 5 * 86400;
	s->outbound_port = 25;
	s->outbound_timeout = 150;
	s->outbound_threads = 4;
	s->outbound_tls = 1;
	s->mta_sts = 1;
	s->mta_sts_port = 443;
	s->log_level = LOG_INFO;
	/* logrotate's work on POSIX; on Windows nothing else does it */
	s->log_max_size = strcmp(os_name(), "windows") == 0 ? 10ULL * 1024 * 1024 : 0;
	s->log_keep = 5;
	s->max_recipients = 100;
	s->max_errors = 10;
	s->idle_timeout = 300;
	s->line_timeout = 60;   /* RFC 5321 4.5.3.2 asks 5 minutes per command: see ARCHITECTURE */
	s->login_timeout = 300;
	s->compact_hour = 4;
	s->smtps_enable = s->submission_enable = s->pop3s_enable = s->imaps_enable = 1;
	s->smtps_port = root ? 465 : 4465;
	s->submission_port = root ? 587 : 1587;
	s->pop3s_port = root ? 995 : 1995;
	s->imaps_port = root ? 993 : 1993;
	s->managesieve_enable = 1; /* as with Dovecot's Pigeonhole */
	s->managesieve_port = root ? 4190 : 14190;
	s->plaintext_auth = AUTH_PLAIN_LOOPBACK;
	s->login_attempts = 5;
	s->account_login_attempts = 20;
	s->min_password_length = 10;
	s->quarantine = 300;
	s->threads_per_ip = 25;
	s->auth_sender_match = 1;
	s->lua_memory_limit = 16ULL * 1024 * 1024;
	s->lua_instruction_limit = 10000000;
	s->lua_time_limit = 10;
	s->webadmin_enable = 1;
	rl_strlcpy(s->webadmin_bind, "127.0.0.1", sizeof s->webadmin_bind);
	s->webadmin_port = 2580;
	rl_strlcpy(s->acme_directory, "https://acme-v02.api.letsencrypt.org/directory",
		sizeof s->acme_directory);
	s->acme_http_port = root ? 80 : 8080;
	s->acme_tls_port = root ? 443 : 8443;
	rl_strlcpy(s->acme_challenge, "http-01", sizeof s->acme_challenge);
	rl_strlcpy(s->mta_sts_mode, "testing", sizeof s->mta_sts_mode);
}

static const struct directive *directive_find(const char *key)
{
	for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++) {
		if (rl_strcasecmp(key, directives[i].key) == 0) {
			return &directives[i];
		}
	}
	return NULL;
}

/* Edit distance with transpositions (optimal string alignment), ignoring
 * case; 99 for names too long to bother. */
static int distance(const char *a, const char *b)
{
	int d[33][33];
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32) {
		return 99;
	}
	for (size_t i = 0; i <= la; i++) {
		for (size_t j = 0; j <= lb; j++) {
			int x = i && j ? tolower((unsigned char)a[i - 1]) : 0;
			int y = i && j ? tolower((unsigned char)b[j - 1]) : 0;
			int v = !i || !j ? (int)(i + j) : d[i - 1][j - 1] + (x != y);
			v = i && d[i - 1][j] + 1 < v ? d[i - 1][j] + 1 : v;
			v = j && d[i][j - 1] + 1 < v ? d[i][j - 1] + 1 : v;
			if (i > 1 && j > 1 && x == tolower((unsigned char)b[j - 2]) &&
				y == tolower((unsigned char)a[i - 2]) && d[i - 2][j - 2] + 1 < v) {
				v = d[i - 2][j - 2] + 1;
			}
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

/* The known name nearest to key, if it is near enough to be a typo. */
static const char *closest(const char *key)
{
	const char *best = NULL;
	int limit = 1 + (int)strlen(key) / 4, bd = (limit > 3 ? 3 : limit) + 1;
	for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++) {
		int dd = distance(key, directives[i].key);
		if (dd < bd) {
			bd = dd;
			best = directives[i].key;
		}
	}
	return best;
}

static void warn_unknown(const struct config_entry *e)
{
	const char *near = closest(e->key);
	if (near) {
		log_warnx("%s:%d: unknown directive '%s' (did you mean '%s'?)", e->file, e->line,
			e->key, near);
	} else {
		log_warnx("%s:%d: unknown directive '%s' (kept for scripts' Rumble.readConfig)",
			e->file, e->line, e->key);
	}
}

/* The original's Comment lines say where the file went; its unused
 * directives are noted once each. */
static void note(const struct directive *d, const struct config_entry *e, int again)
{
	if (d->kind == K_NOTE) {
		log_info("%s:%d: %s", e->file, e->line, e->value);
	} else if (d->kind == K_UNUSED && !again) {
		log_info("%s:%d: %s has no effect here: %s", e->file, e->line, d->key, d->why);
	}
}

/* The first entry before e with e's key, or NULL. */
static const struct config_entry *earlier(const struct config *c, const struct config_entry *e)
{
	for (const struct config_entry *x = c->head; x != e; x = x->next) {
		if (rl_strcasecmp(x->key, e->key) == 0) {
			return x;
		}
	}
	return NULL;
}

static int repeatable(const struct directive *d)
{
	return d && (d->kind == K_LIST || d->kind == K_WORDS || d->kind >= K_NOTE);
}

/* A later line of a single-valued directive must be valid too (it is
 * checked on scratch settings), but the first one counts. */
static int apply_again(const struct directive *d, const struct config_entry *e,
	const struct config_entry *first, char *err, size_t errlen)
{
	struct settings *scratch = xcalloc(1, sizeof *scratch);
	int rc = apply_one(scratch, d, e, err, errlen);
	free(scratch);
	if (rc == 0) {
		log_warnx("%s:%d: %s given again; the first value (line %d) is used", e->file,
			e->line, d->key, first->line);
	}
	return rc;
}

/* Applies each entry of s->raw in order; a later line of a single-valued
 * key is dropped from s->raw: the first wins. */
static int apply_all(struct settings *s, char *err, size_t errlen)
{
	struct config_entry **pp = &s->raw.head, *last = NULL;
	while (*pp) {
		struct config_entry *e = *pp;
		const struct directive *d = directive_find(e->key);
		const struct config_entry *first = earlier(&s->raw, e);
		if (!d) {
			warn_unknown(e);
		}
		int drop = first && !repeatable(d);
		if (drop && d && apply_again(d, e, first, err, errlen) != 0) {
			return -1;
		}
		if (drop) {
			*pp = e->next;
			entry_free(e);
			continue;
		}
		if (d && apply_one(s, d, e, err, errlen) != 0) {
			return -1;
		}
		if (d) {
			note(d, e, first != NULL);
		}
		last = e;
		pp = &e->next;
	}
	s->raw.tail = last;
	return 0;
}

int config_apply(struct settings *s, struct config *c, char *err, size_t errlen)
{
	defaults(s);
	s->raw = *c;
	c->head = c->tail = NULL;
	if (apply_all(s, err, errlen) != 0) {
		return -1;
	}
	if (!*s->storage) {
		snprintf(err, errlen, "StorageFolder must not be empty");
		return -1;
	}
	if (dnsbl_check_conf(s->dnsbl, err, errlen) != 0) {
		return -1;
	}
	if (!*s->dkim_selector || strspn(s->dkim_selector, "abcdefghijklmnopqrstuvwxyz"
	                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") !=
	                                  strlen(s->dkim_selector)) {
		snprintf(err, errlen, "DKIMSelector: letters, digits, '-' and '.' only");
		return -1;
	}
	if (check_word("ACMEChallenge", s->acme_challenge, "http-01 tls-alpn-01", err, errlen) ||
	        check_word("MTASTSMode", s->mta_sts_mode, "testing enforce none", err, errlen)) {
		return -1;
	}
	return check_special_use(s, err, errlen);
}

void settings_free(struct settings *s)
{
	for (int i = 0; i < s->nscripts; i++) {
		free(s->scripts[i]);
	}
	free(s->scripts);
	s->scripts = NULL;
	s->nscripts = 0;
	config_free(&s->raw);
}

const char config_default_text[] =
	"# Rumble's built-in configuration, used when no rumble.conf is given\n"
	"ServerName localhost\n"
	"StorageFolder data\n";
