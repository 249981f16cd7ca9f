/*
 * acme.c - certificates from an ACME CA (RFC 8555; Let's Encrypt by
 * default) for ServerName and ACMENames, with the HTTP-01 challenge that
 * wellknown.c answers on port 80.
 *
 * One thread of its own: it sleeps until the certificate is due (2/3 of
 * its lifetime, or ACMERenewDays before its end; at once when there is
 * none from ACME or the names changed), then runs one issuance from
 * start to end with blocking HTTPS calls (httpc.c) and writes key.pem
 * and cert.pem where the server loads them; server_request_reload makes
 * new connections use them (open sessions keep theirs). A failure at
 * any step keeps the certificate in use and tries again after a back-off
 * (1 minute, doubling up to a day). Each step logs one line.
 *
 * The account key (acme-account.pem) and acme-names (the names the
 * current certificate was issued for) live in StorageFolder/tls. The
 * account is looked up by its key (newAccount) on every issuance rather
 * than remembered: one more request every two months, no state to lose.
 * JWS (RFC 7515) with ES256: the jwk for newAccount, the account URL
 * (kid) after; a badNonce answer is retried with the fresh nonce.
 */
#include <string.h>
#include <time.h>

#include "rumble.h"

#define ACME_NAMES_MAX 20
#define ACME_BACKOFF_MIN 60
#define ACME_BACKOFF_MAX 86400
#define ACME_AFTER_ISSUE 3600 /* no new order sooner after a success */
#define ACME_POLL_MS 60000    /* a challenge or an order gets this long */
#define ACME_HTTP_MS 30000    /* one request */
#define ACME_BODY_MAX (256 * 1024)
#define ACME_URL 512

struct acme {
	char new_nonce[ACME_URL], new_account[ACME_URL], new_order[ACME_URL], revoke[ACME_URL];
	char nonce[128];
	char kid[ACME_URL];
	struct crypto_ec *akey;
	char jwk[CRYPTO_JWK_MAX], thumb[44];
	struct tls_anchors *anchors; /* ACMECA and the system's; NULL = the system's */
	int alpn;                    /* ACMEChallenge tls-alpn-01 rather than http-01 */
	char names[ACME_NAMES_MAX][256];
	int nnames;
	char err[512]; /* why the last step failed */
};

static struct {
	os_thread *thread;
	os_mutex *mx;
	os_cond *cv;
	volatile int stop;
	int kicked; /* under mx: acme_kick asked for a look now */
	char cert[1100], key[1100], dir[1100];
} A;

static int stopping(void)
{
	return os_atomic_load_int((volatile int *)&A.stop);
}

static void fail(struct acme *a, const char *fmt, ...) RL_PRINTF(2, 3);
static void fail(struct acme *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof a->err, fmt, ap);
	va_end(ap);
}

/* ---- names ---- */

static int valid_name(const char *n)
{
	size_t len = strlen(n);
	uint8_t ip[16];
	if (len == 0 || len > 253 || os_ip_parse(n, ip) >= 0 || !strchr(n, '.')) {
		return 0; /* an address or a bare host name is never issued */
	}
	return strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789.-") == len && n[0] != '.' &&
	       n[0] != '-';
}

static void add_name(struct acme *a, const char *n)
{
	char low[256];
	size_t i = 0;
	for (; n[i] && i + 1 < sizeof low; i++) {
		low[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]);
	}
	low[i] = '\0';
	if (!valid_name(low)) {
		log_warnx("ACME: \"%s\" is not a public host name; left out", n);
		return;
	}
	for (int k = 0; k < a->nnames; k++) {
		if (!strcmp(a->names[k], low)) {
			return;
		}
	}
	if (a->nnames == ACME_NAMES_MAX) {
		log_warnx("ACME: more than %d names; %s left out", ACME_NAMES_MAX, low);
		return;
	}
	rl_strlcpy(a->names[a->nnames++], low, sizeof a->names[0]);
}

/* ServerName first (the certificate's CN), then ACMENames. */
static void load_names(struct acme *a)
{
	char list[sizeof conf.acme_names], *save = NULL;
	a->nnames = 0;
	add_name(a, conf.server_name);
	rl_strlcpy(list, conf.acme_names, sizeof list);
	for (char *w = os_strtok(list, " \t,", &save); w; w = os_strtok(NULL, " \t,", &save)) {
		add_name(a, w);
	}
}

static void names_line(const struct acme *a, char *out, size_t len)
{
	out[0] = '\0';
	for (int i = 0; i < a->nnames; i++) {
		size_t o = strlen(out);
		snprintf(out + o, len - o, "%s%s", i ? " " : "", a->names[i]);
	}
}

/* ---- JWS requests ---- */

static void b64url_buf(struct buf *out, const void *p, size_t n)
{
	buf_reserve(out, 4 * ((n + 2) / 3) + 1);
	out->len += crypto_base64url(p, n, out->data + out->len);
}

static void take_nonce(struct acme *a, const struct httpc_resp *rs)
{
	char n[sizeof a->nonce];
	if (httpc_header(rs, "Replay-Nonce", 0, n, sizeof n) && n[0] &&
	        strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
	                strlen(n)) {
		rl_strlcpy(a->nonce, n, sizeof a->nonce);
	}
}

static int http(struct acme *a, const char *method, const char *url, const struct buf *body,
        struct httpc_resp *rs)
{
	struct httpc_req rq = {method, url, NULL, body ? "application/jose+json" : NULL,
	        body ? body->data : NULL, body ? body->len : 0, ACME_HTTP_MS, ACME_BODY_MAX,
	        a->anchors, stopping};
	if (httpc_request(&rq, rs) != 0) {
		fail(a, "%s %s: %s", method, url, rs->err);
		return -1;
	}
	take_nonce(a, rs);
	return 0;
}

static int get_nonce(struct acme *a)
{
	struct httpc_resp rs;
	int rc = http(a, "HEAD", a->new_nonce, NULL, &rs);
	httpc_resp_free(&rs);
	if (rc == 0 && !a->nonce[0]) {
		fail(a, "newNonce gave no Replay-Nonce");
		return -1;
	}
	return rc;
}

/* The flattened JWS of payload (NULL: POST-as-GET) for url. */
static int jws(struct acme *a, const char *url, const char *payload, struct buf *out)
{
	struct buf prot, input;
	uint8_t sig[64];
	buf_init(&prot);
	buf_init(&input);
	if (a->kid[0]) {
		buf_printf(&prot,
		        "{\"alg\":\"ES256\",\"kid\":\"%s\",\"nonce\":\"%s\",\"url\":\"%s\"}",
		        a->kid, a->nonce, url);
	} else {
		buf_printf(&prot, "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"%s\",\"url\":\"%s\"}",
		        a->jwk, a->nonce, url);
	}
	b64url_buf(&input, prot.data, prot.len);
	buf_puts(&input, ".");
	size_t plen = input.len;
	if (payload) {
		b64url_buf(&input, payload, strlen(payload));
	}
	int rc = crypto_ec_sign_es256(a->akey, input.data, input.len, sig);
	buf_reset(out);
	buf_puts(out, "{\"protected\":\"");
	buf_append(out, input.data, plen - 1);
	buf_puts(out, "\",\"payload\":\"");
	buf_append(out, input.data + plen, input.len - plen);
	buf_puts(out, "\",\"signature\":\"");
	b64url_buf(out, sig, sizeof sig);
	buf_puts(out, "\"}");
	buf_free(&prot);
	buf_free(&input);
	a->nonce[0] = '\0'; /* each nonce once */
	return rc;
}

/* The problem document's type and detail (RFC 7807), for the log. */
static void problem(const struct httpc_resp *rs, char *out, size_t len)
{
	char type[128] = "", detail[240] = "";
	struct json doc = json_of(rs->body.data ? rs->body.data : "", rs->body.len), v;
	if (json_get(doc, "type", &v) == 0) {
		json_str(v, type, sizeof type);
	}
	if (json_get(doc, "detail", &v) == 0) {
		json_str(v, detail, sizeof detail);
	}
	const char *t = strncmp(type, "urn:ietf:params:acme:error:", 27) ? type : type + 27;
	snprintf(out, len, "%d %s%s%s", rs->status, t, *t && *detail ? ": " : "", detail);
}

/* POSTs a JWS to url; a badNonce answer is retried (RFC 8555 6.5). 0
 * with rs filled for a 2xx answer, else -1 with a->err naming what. */
static int post(struct acme *a, const char *what, const char *url, const char *payload,
        struct httpc_resp *rs)
{
	struct buf body;
	buf_init(&body);
	memset(rs, 0, sizeof *rs); /* the caller frees it whatever happens */
	int rc = -1;
	for (int tries = 0; tries < 5 && !stopping(); tries++) {
		if (!a->nonce[0] && get_nonce(a) != 0) {
			break;
		}
		if (jws(a, url, payload, &body) != 0) {
			fail(a, "%s: cannot sign", what);
			break;
		}
		if (http(a, "POST", url, &body, rs) != 0) {
			break;
		}
		if (rs->status >= 200 && rs->status < 300) {
			rc = 0;
			break;
		}
		char why[400];
		problem(rs, why, sizeof why);
		fail(a, "%s: %s", what, why);
		if (rs->status != 400 || !strstr(why, "badNonce") || tries == 4) {
			break;
		}
		log_info("ACME: %s: the CA refused the nonce (badNonce); again with a new one",
		        what);
		httpc_resp_free(rs);
	}
	buf_free(&body);
	return rc;
}

/* A member of a response's JSON as a string; "" when missing. */
static void member(const struct httpc_resp *rs, const char *key, char *out, size_t len)
{
	struct json v;
	out[0] = '\0';
	if (json_get(json_of(rs->body.data, rs->body.len), key, &v) != 0 ||
	        json_str(v, out, len) != 0) {
		out[0] = '\0';
	}
}

/* ---- the steps ---- */

static int directory(struct acme *a)
{
	struct httpc_resp rs;
	int rc = http(a, "GET", conf.acme_directory, NULL, &rs);
	if (rc == 0 && rs.status != 200) {
		fail(a, "directory %s: HTTP %d", conf.acme_directory, rs.status);
		rc = -1;
	}
	if (rc == 0) {
		member(&rs, "newNonce", a->new_nonce, sizeof a->new_nonce);
		member(&rs, "newAccount", a->new_account, sizeof a->new_account);
		member(&rs, "newOrder", a->new_order, sizeof a->new_order);
		member(&rs, "revokeCert", a->revoke, sizeof a->revoke);
		if (!a->new_nonce[0] || !a->new_account[0] || !a->new_order[0]) {
			fail(a, "directory %s: not an ACME directory", conf.acme_directory);
			rc = -1;
		}
	}
	httpc_resp_free(&rs);
	return rc;
}

static int account_key(struct acme *a)
{
	char path[1200], err[300];
	snprintf(path, sizeof path, "%s/acme-account.pem", A.dir);
	a->akey = crypto_ec_load(path, err, sizeof err);
	if (!a->akey) {
		struct os_stat st;
		if (os_stat(path, &st) == 0) {
			fail(a, "account key: %s", err);
			return -1;
		}
		if (!(a->akey = crypto_ec_new()) ||
		        crypto_ec_save(a->akey, path, err, sizeof err)) {
			fail(a, "account key: %s", a->akey ? err : "no randomness");
			return -1;
		}
		log_info("ACME: made an account key (ECDSA P-256) in %s", path);
	}
	crypto_ec_jwk(a->akey, a->jwk);
	crypto_ec_thumbprint(a->akey, a->thumb);
	return 0;
}

static int account(struct acme *a)
{
	struct httpc_resp rs;
	char payload[600];
	if (*conf.acme_email && !strpbrk(conf.acme_email, "\"\\<> ")) {
		snprintf(payload, sizeof payload,
		        "{\"termsOfServiceAgreed\":true,\"contact\":[\"mailto:%s\"]}",
		        conf.acme_email);
	} else {
		snprintf(payload, sizeof payload, "{\"termsOfServiceAgreed\":true}");
	}
	a->kid[0] = '\0';
	int rc = post(a, "newAccount", a->new_account, payload, &rs);
	if (rc == 0 && !httpc_header(&rs, "Location", 0, a->kid, sizeof a->kid)) {
		fail(a, "newAccount: no Location");
		rc = -1;
	}
	if (rc == 0) {
		log_info("ACME: account %s (%s)", a->kid, rs.status == 201 ? "new" : "existing");
	}
	httpc_resp_free(&rs);
	return rc;
}

/* Seconds the CA asks us to wait (Retry-After), kept within 1..10. */
static int retry_after(const struct httpc_resp *rs)
{
	char v[32];
	int s = httpc_header(rs, "Retry-After", 0, v, sizeof v) ? atoi(v) : 1;
	return s < 1 ? 1 : s > 10 ? 10 : s;
}

static void pause_s(int s)
{
	for (int i = 0; i < s * 10 && !stopping(); i++) {
		os_sleep_ms(100);
	}
}

/* POST-as-GET url until its status is no longer one of pending
 * ("pending processing"); 0 with rs holding the last answer. */
static int poll(struct acme *a, const char *what, const char *url, const char *pending,
        struct httpc_resp *rs, char *status, size_t slen)
{
	int64_t end = os_now_ms() + ACME_POLL_MS;
	for (;;) {
		if (post(a, what, url, NULL, rs) != 0) {
			return -1;
		}
		member(rs, "status", status, slen);
		if (!*status || !strstr(pending, status) || stopping()) {
			return 0;
		}
		if (os_now_ms() + 1000 > end) {
			fail(a, "%s: still %s after %d s", what, status, ACME_POLL_MS / 1000);
			return -1;
		}
		int wait = retry_after(rs);
		httpc_resp_free(rs);
		pause_s(wait);
	}
}

/* The CA's error for a failed challenge, from the authorization. */
static void challenge_error(const struct httpc_resp *rs, char *out, size_t len)
{
	struct json doc = json_of(rs->body.data, rs->body.len), chs, ch, e, v;
	snprintf(out, len, "no detail given");
	if (json_get(doc, "challenges", &chs) != 0) {
		return;
	}
	for (int i = 0; json_at(chs, i, &ch) == 0; i++) {
		if (json_get(ch, "error", &e) == 0 && json_get(e, "detail", &v) == 0) {
			json_str(v, out, len);
			return;
		}
	}
}

/* The challenge of type of an authorization: its URL and token. */
static int find_challenge(
        const struct httpc_resp *rs, const char *want, char *url, char *token, size_t len)
{
	struct json doc = json_of(rs->body.data, rs->body.len), chs, ch, v;
	char type[32];
	if (json_get(doc, "challenges", &chs) != 0) {
		return -1;
	}
	for (int i = 0; json_at(chs, i, &ch) == 0; i++) {
		if (json_get(ch, "type", &v) == 0 && json_str(v, type, sizeof type) == 0 &&
		        !strcmp(type, want) && json_get(ch, "url", &v) == 0 &&
		        json_str(v, url, len) == 0 && json_get(ch, "token", &v) == 0 &&
		        json_str(v, token, len) == 0) {
			return 0;
		}
	}
	return -1;
}

/* Puts up the answer to a challenge (on == 1) or takes it down. */
static int answer(struct acme *a, const char *name, const char *token, const char *keyauth, int on)
{
	if (!a->alpn) {
		return on ? wellknown_token_set(token, keyauth) : (wellknown_token_clear(token), 0);
	}
	if (!on) {
		tls_alpn_clear(name);
		return 0;
	}
	struct buf der;
	uint8_t x[32];
	buf_init(&der);
	int rc = crypto_alpn_cert(name, keyauth, &der, x);
	rc = rc == 0 ? tls_alpn_set(name, der.data, der.len, x) : rc;
	crypto_wipe(x, sizeof x);
	buf_free(&der);
	return rc;
}

/* One authorization: answer its challenge and wait for the CA. */
static int authorize(struct acme *a, const char *authz)
{
	const char *type = a->alpn ? "tls-alpn-01" : "http-01";
	struct httpc_resp rs;
	char status[32], name[256] = "?", url[ACME_URL], token[200], keyauth[300];
	struct json v;
	if (post(a, "authorization", authz, NULL, &rs) != 0) {
		httpc_resp_free(&rs);
		return -1;
	}
	member(&rs, "status", status, sizeof status);
	if (json_get(json_of(rs.body.data, rs.body.len), "identifier", &v) == 0 &&
	        json_get(v, "value", &v) == 0) {
		json_str(v, name, sizeof name);
	}
	if (!strcmp(status, "valid")) {
		log_info("ACME: %s: already authorized", name);
		httpc_resp_free(&rs);
		return 0;
	}
	int rc = find_challenge(&rs, type, url, token, sizeof token);
	httpc_resp_free(&rs);
	if (rc != 0) {
		fail(a, "%s: the CA offers no %s challenge", name, type);
		return -1;
	}
	snprintf(keyauth, sizeof keyauth, "%s.%s", token, a->thumb);
	if (answer(a, name, token, keyauth, 1) != 0) {
		fail(a, "%s: cannot set up the %s answer", name, type);
		return -1;
	}
	log_info("ACME: %s: answering the %s challenge on port %d", name, type,
	        a->alpn ? conf.acme_tls_port : conf.acme_http_port);
	rc = post(a, "challenge", url, "{}", &rs);
	httpc_resp_free(&rs);
	if (rc == 0) {
		rc = poll(a, "authorization", authz, "pending processing", &rs, status,
		        sizeof status);
	}
	answer(a, name, token, keyauth, 0);
	if (rc == 0 && strcmp(status, "valid") != 0) {
		char why[300];
		challenge_error(&rs, why, sizeof why);
		fail(a, "%s: the %s challenge failed (%s): %s", name, type, status, why);
		rc = -1;
	} else if (rc == 0) {
		log_info("ACME: %s: validated", name);
	}
	httpc_resp_free(&rs);
	return rc;
}

/* newOrder for every name; fills the order's URL and body. */
static int order(struct acme *a, char *url, size_t len, struct httpc_resp *rs)
{
	struct buf p;
	buf_init(&p);
	buf_puts(&p, "{\"identifiers\":[");
	for (int i = 0; i < a->nnames; i++) {
		buf_printf(&p, "%s{\"type\":\"dns\",\"value\":\"%s\"}", i ? "," : "", a->names[i]);
	}
	buf_puts(&p, "]}");
	int rc = post(a, "newOrder", a->new_order, p.data, rs);
	buf_free(&p);
	if (rc == 0 && !httpc_header(rs, "Location", 0, url, len)) {
		fail(a, "newOrder: no Location");
		rc = -1;
	}
	return rc;
}

/* Sends the CSR and waits for the certificate's URL. */
static int finalize(struct acme *a, const char *order_url, const char *fin,
        const struct crypto_ec *key, char *cert_url, size_t len)
{
	struct buf csr, p;
	struct httpc_resp rs;
	const char *names[ACME_NAMES_MAX];
	char status[32];
	for (int i = 0; i < a->nnames; i++) {
		names[i] = a->names[i];
	}
	buf_init(&csr);
	buf_init(&p);
	int rc = crypto_ec_csr(key, names, a->nnames, &csr);
	if (rc != 0) {
		fail(a, "cannot make the certificate request");
	} else {
		buf_puts(&p, "{\"csr\":\"");
		b64url_buf(&p, csr.data, csr.len);
		buf_puts(&p, "\"}");
		rc = post(a, "finalize", fin, p.data, &rs);
		httpc_resp_free(&rs);
	}
	buf_free(&csr);
	buf_free(&p);
	if (rc == 0) {
		rc = poll(a, "order", order_url, "pending processing ready", &rs, status,
		        sizeof status);
		member(&rs, "certificate", cert_url, len);
		if (rc == 0 && (strcmp(status, "valid") != 0 || !cert_url[0])) {
			char why[300];
			problem(&rs, why, sizeof why);
			fail(a, "order %s: %s", status, why);
			rc = -1;
		}
		httpc_resp_free(&rs);
	}
	return rc;
}

/* Writes the new key and chain where the server loads them, and the
 * names they are for. */
static int install(struct acme *a, const struct crypto_ec *key, const struct buf *chain)
{
	char err[300], path[1200], names[ACME_NAMES_MAX * 256];
	if (!chain->data || !strstr(chain->data, "-----BEGIN CERTIFICATE-----")) {
		fail(a, "the CA sent no PEM certificate chain");
		return -1;
	}
	if (crypto_ec_save(key, A.key, err, sizeof err) != 0) {
		fail(a, "%s", err);
		return -1;
	}
	if (os_write_file_atomic(A.cert, chain->data, chain->len) != 0) {
		fail(a, "cannot write %s: %s", A.cert, os_strerror());
		return -1;
	}
	names_line(a, names, sizeof names);
	snprintf(path, sizeof path, "%s/acme-names", A.dir);
	os_write_file_atomic(path, names, strlen(names));
	return 0;
}

/* One whole issuance; 0 when the new certificate is in place. */
static int issue(struct acme *a)
{
	char order_url[ACME_URL], fin[ACME_URL], cert_url[ACME_URL], names[2048];
	struct httpc_resp rs;
	struct json az, v;
	names_line(a, names, sizeof names);
	log_info("ACME: ordering a certificate for %s from %s", names, conf.acme_directory);
	if (directory(a) != 0 || account_key(a) != 0 || account(a) != 0) {
		return -1;
	}
	if (order(a, order_url, sizeof order_url, &rs) != 0) {
		httpc_resp_free(&rs);
		return -1;
	}
	member(&rs, "finalize", fin, sizeof fin);
	struct buf authz;
	buf_init(&authz); /* the URLs, NUL-separated: rs goes before they are used */
	if (json_get(json_of(rs.body.data, rs.body.len), "authorizations", &az) == 0) {
		char u[ACME_URL];
		for (int i = 0; i < ACME_NAMES_MAX && json_at(az, i, &v) == 0; i++) {
			if (json_str(v, u, sizeof u) == 0) {
				buf_append(&authz, u, strlen(u) + 1);
			}
		}
	}
	httpc_resp_free(&rs);
	log_info("ACME: order %s", order_url);
	int rc = fin[0] && authz.len ? 0 : (fail(a, "newOrder: no finalize or authorizations"), -1);
	for (size_t off = 0; rc == 0 && off < authz.len; off += strlen(authz.data + off) + 1) {
		rc = authorize(a, authz.data + off);
	}
	buf_free(&authz);
	struct crypto_ec *key = rc == 0 ? crypto_ec_new() : NULL;
	if (rc == 0 && !key) {
		fail(a, "cannot make a key: no randomness");
		rc = -1;
	}
	if (rc == 0) {
		rc = finalize(a, order_url, fin, key, cert_url, sizeof cert_url);
	}
	if (rc == 0) {
		rc = post(a, "certificate", cert_url, NULL, &rs);
		rc = rc == 0 ? install(a, key, &rs.body) : rc;
		httpc_resp_free(&rs);
	}
	crypto_ec_free(key);
	return rc;
}

/* ---- when ---- */

/* Seconds until the certificate should be renewed (<= 0: now). */
static int64_t due_in(const struct acme *a)
{
	char path[1200], want[ACME_NAMES_MAX * 256], had[ACME_NAMES_MAX * 256 + 1];
	int64_t nb, na;
	snprintf(path, sizeof path, "%s/acme-names", A.dir);
	names_line(a, want, sizeof want);
	FILE *f = os_fopen(path, "rb");
	size_t n = f ? fread(had, 1, sizeof had - 1, f) : 0;
	if (f) {
		fclose(f);
	}
	had[n] = '\0';
	if (strcmp(had, want) != 0) {
		log_info("ACME: the certificate in %s is not ACME's for %s", A.cert, want);
		return 0;
	}
	if (crypto_cert_file_dates(A.cert, &nb, &na) != 0) {
		log_info("ACME: cannot read the certificate in %s", A.cert);
		return 0;
	}
	int64_t at = conf.acme_renew_days ? na - (int64_t)conf.acme_renew_days * 86400
	                                  : nb + (na - nb) * 2 / 3;
	if (at <= os_time()) {
		log_info("ACME: the certificate is due for renewal (%s)",
		        conf.acme_renew_days ? "ACMERenewDays" : "2/3 of its lifetime");
	}
	return at - os_time();
}

static void wait_s(int64_t s)
{
	os_mutex_lock(A.mx);
	int64_t end = os_now_ms() + s * 1000;
	while (!A.stop && !A.kicked && os_now_ms() < end) {
		int64_t left = end - os_now_ms();
		os_cond_wait(A.cv, A.mx, left > 60000 ? 60000 : (int)left);
	}
	A.kicked = 0;
	os_mutex_unlock(A.mx);
}

/* ACMECA besides the system's CAs, or (NULL) the system's alone. */
static void trust(struct acme *a)
{
	char err[256];
	if (*conf.acme_ca) {
		a->anchors = tls_anchors_new();
		if (tls_anchors_add_file(a->anchors, conf.acme_ca, err, sizeof err) < 0) {
			log_warnx("ACME: ACMECA: %s", err);
		}
		tls_anchors_add_system(a->anchors, err, sizeof err);
	}
}

static void acme_main(void *arg)
{
	struct acme *a = xcalloc(1, sizeof *a);
	int64_t backoff = ACME_BACKOFF_MIN;
	(void)arg;
	load_names(a);
	trust(a);
	a->alpn = !rl_strcasecmp(conf.acme_challenge, "tls-alpn-01");
	if (!a->alpn && rl_strcasecmp(conf.acme_challenge, "http-01") != 0) {
		log_warnx(
		        "ACME: ACMEChallenge %s is neither http-01 nor tls-alpn-01; http-01 it is",
		        conf.acme_challenge);
	}
	while (!stopping() && a->nnames > 0) {
		int64_t due = due_in(a);
		if (due > 0) {
			log_info("ACME: the certificate is renewed in %lld s", (long long)due);
			wait_s(due > 86400 ? 86400 : due);
			continue;
		}

		a->nonce[0] = '\0';
		if (issue(a) == 0) {
			char until[64] = "?";
			int64_t nb, na;
			if (crypto_cert_file_dates(A.cert, &nb, &na) == 0) {
				struct tm tm;
				os_gmtime(na, &tm);
				strftime(until, sizeof until, "%Y-%m-%d %H:%M:%S UTC", &tm);
			}
			log_info("ACME: certificate installed in %s (valid until %s); new "
			         "connections "
			         "get it",
			        A.cert, until);
			server_request_reload();
			backoff = ACME_BACKOFF_MIN;
			if (due_in(a) <= 0) { /* no loop of orders */
				log_warnx("ACME: the new certificate is due for renewal already "
				          "(ACMERenewDays over its lifetime?); next try in %d s",
				        ACME_AFTER_ISSUE);
				wait_s(ACME_AFTER_ISSUE);
			}
		} else if (!stopping()) {
			log_warnx("ACME: %s; the certificate in use stays; next try in %lld s",
			        a->err, (long long)backoff);
			wait_s(backoff);
			backoff = backoff * 2 > ACME_BACKOFF_MAX ? ACME_BACKOFF_MAX : backoff * 2;
		}
		crypto_ec_free(a->akey);
		a->akey = NULL;
	}
	if (a->nnames == 0) {
		log_warnx("ACME: no name to ask a certificate for (ServerName, ACMENames)");
	}
	crypto_ec_free(a->akey);
	tls_anchors_free(a->anchors);
	free(a);
}

/* see rumble.h */
void acme_start(const char *cert_path, const char *key_path)
{
	if (!conf.acme_enable || A.thread) {
		return;
	}
	rl_strlcpy(A.cert, cert_path, sizeof A.cert);
	rl_strlcpy(A.key, key_path, sizeof A.key);
	snprintf(A.dir, sizeof A.dir, "%s/tls", conf.storage);
	os_mkdir_p(A.dir);
	A.mx = os_mutex_new();
	A.cv = os_cond_new();
	A.stop = 0;
	A.thread = os_thread_start(acme_main, NULL);
	if (!A.thread) {
		log_warnx("ACME: cannot start its thread");
	}
}

/* see rumble.h */
void acme_stop(void)
{
	if (!A.thread) {
		return;
	}
	os_mutex_lock(A.mx);
	os_atomic_store_int((volatile int *)&A.stop, 1);
	os_cond_broadcast(A.cv);
	os_mutex_unlock(A.mx);
	os_thread_join(A.thread);
	A.thread = NULL;
	os_cond_free(A.cv);
	os_mutex_free(A.mx);
}

/* see rumble.h */
void acme_kick(void)
{
	if (A.thread) {
		os_mutex_lock(A.mx);
		A.kicked = 1;
		os_cond_broadcast(A.cv);
		os_mutex_unlock(A.mx);
	}
}

/* see rumble.h */
int acme_revoke(const char *cert_path, char *err, size_t errlen)
{
	struct acme *a = xcalloc(1, sizeof *a);
	struct buf der, p;
	struct httpc_resp rs;
	char path[1200];
	buf_init(&der);
	buf_init(&p);
	snprintf(A.dir, sizeof A.dir, "%s/tls", conf.storage);
	trust(a);
	int rc = crypto_cert_file_der(cert_path, &der);
	if (rc != 0) {
		fail(a, "%s: no certificate", cert_path);
	}
	if (rc == 0 && (rc = directory(a)) == 0 && !a->revoke[0]) {
		fail(a, "the directory has no revokeCert");
		rc = -1;
	}
	if (rc == 0 && (rc = account_key(a)) == 0 && (rc = account(a)) == 0) {
		buf_puts(&p, "{\"certificate\":\"");
		b64url_buf(&p, der.data, der.len);
		buf_puts(&p, "\"}");
		rc = post(a, "revokeCert", a->revoke, p.data, &rs);
		httpc_resp_free(&rs);
	}
	if (rc == 0) { /* the server orders anew on its next look */
		snprintf(path, sizeof path, "%s/acme-names", A.dir);
		os_remove(path);
		log_info("ACME: revoked the certificate in %s", cert_path);
	}
	snprintf(err, errlen, "%s", a->err);
	buf_free(&der);
	buf_free(&p);
	crypto_ec_free(a->akey);
	tls_anchors_free(a->anchors);
	free(a);
	return rc;
}
