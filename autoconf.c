/*
 * autoconf.c - mail clients configure themselves: Thunderbird's autoconfig
 * (config-v1.1.xml), Outlook's POX autodiscover (autodiscover.xml) and an
 * Apple configuration profile (.mobileconfig), each made from the
 * listeners this configuration enables, and autoconf_route, which answers
 * the clients' HTTP requests for whichever HTTP server carries them (the
 * web admin's port, the public responder on port 80).
 *
 * The host clients are sent to is ServerName, the mail host the DNS advice
 * names. Implicit TLS comes first wherever there is a choice (RFC 8314
 * section 3: IMAPS before IMAP with STARTTLS, SMTPS before submission);
 * the plain ports are given with STARTTLS, never without TLS, as the
 * server always has a certificate (its own self-signed one at least).
 * Logins are the full address.
 *
 * Every value from a request (the address, the domain) goes into the
 * XML through xml_printf, whose %s escapes; what a client sends is read
 * bounded and checked before it is used.
 */
#include <stdarg.h>
#include <string.h>

#include "rumble.h"

#define AC_ADDR_MAX 320 /* an address: 64 + @ + 253, and some slack */
#define TB_PATH "/mail/config-v1.1.xml"
#define TB_WELLKNOWN "/.well-known/autoconfig/mail/config-v1.1.xml"
#define AD_PATH "/autodiscover/autodiscover.xml"
#define XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

/* ---- XML ---- */

/* s escaped for XML text and attribute values; bytes XML 1.0 cannot
 * carry and non-ASCII (the request was checked; this is the backstop)
 * become '?'. */
static void xml_put(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *e = c == '&'    ? "&amp;"
		                : c == '<'  ? "&lt;"
		                : c == '>'  ? "&gt;"
		                : c == '"'  ? "&quot;"
		                : c == '\'' ? "&apos;"
		                            : NULL;
		if (e) {
			buf_puts(out, e);
		} else {
			char ch = c < 0x20 || c > 0x7e ? '?' : (char)c;
			buf_append(out, &ch, 1);
		}
	}
}

/* A small printf for XML: %s is a string escaped by xml_put, %d an int,
 * %% a percent sign; nothing else. */
static void xml_printf(struct buf *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (const char *p = fmt; *p; p++) {
		size_t n = strcspn(p, "%");
		buf_append(out, p, n);
		p += n;
		if (!*p) {
			break;
		}
		p++;
		if (*p == 's') {
			xml_put(out, va_arg(ap, const char *));
		} else if (*p == 'd') {
			buf_printf(out, "%d", va_arg(ap, int));
		} else {
			buf_append(out, "%", 1);
			p -= *p != '%'; /* an unknown one stays as it is */
		}
	}
	va_end(ap);
}

/* ---- the services offered ---- */

/* see rumble.h */
void autoconf_ports(struct autoconf_ports *p)
{
	p->imaps = conf.imaps_enable ? conf.imaps_port : 0;
	p->imap = conf.imap_enable ? conf.imap_port : 0;
	p->pop3s = conf.pop3s_enable ? conf.pop3s_port : 0;
	p->pop3 = conf.pop3_enable ? conf.pop3_port : 0;
	p->smtps = conf.smtps_enable ? conf.smtps_port : 0;
	p->submission = conf.submission_enable ? conf.submission_port : 0;
}

/* One way in: a protocol on a port, with implicit TLS (ssl) or STARTTLS. */
struct way {
	const char *proto; /* "imap", "pop3", "smtp" */
	int port, ssl;
};

/* The ways in p, implicit TLS first within each protocol; their count. */
static int ways(const struct autoconf_ports *p, struct way w[6])
{
	const struct way all[6] = {{"imap", p->imaps, 1}, {"imap", p->imap, 0},
	        {"pop3", p->pop3s, 1}, {"pop3", p->pop3, 0}, {"smtp", p->smtps, 1},
	        {"smtp", p->submission, 0}};
	int n = 0;
	for (int i = 0; i < 6; i++) {
		if (all[i].port > 0) {
			w[n++] = all[i];
		}
	}
	return n;
}

/* The first way for proto (the preferred one), or NULL. */
static const struct way *first(const struct way *w, int n, const char *proto)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(w[i].proto, proto) == 0) {
			return &w[i];
		}
	}
	return NULL;
}

/* ---- Thunderbird ---- */

/* see rumble.h */
void autoconf_thunderbird(
        const char *domain, const char *host, const struct autoconf_ports *p, struct buf *out)
{
	struct way w[6];
	int n = ways(p, w);
	xml_printf(out,
	        XML_HEAD "<clientConfig version=\"1.1\">\n <emailProvider id=\"%s\">\n"
	                 "  <domain>%s</domain>\n  <displayName>%s mail</displayName>\n"
	                 "  <displayShortName>%s</displayShortName>\n",
	        domain, domain, domain, domain);
	for (int i = 0; i < n; i++) {
		const char *el =
		        strcmp(w[i].proto, "smtp") == 0 ? "outgoingServer" : "incomingServer";
		xml_printf(out,
		        "  <%s type=\"%s\">\n   <hostname>%s</hostname>\n   <port>%d</port>\n"
		        "   <socketType>%s</socketType>\n"
		        "   <authentication>password-cleartext</authentication>\n"
		        "   <username>%%EMAILADDRESS%%</username>\n  </%s>\n",
		        el, w[i].proto, host, w[i].port, w[i].ssl ? "SSL" : "STARTTLS", el);
	}
	buf_puts(out, " </emailProvider>\n</clientConfig>\n");
}

/* ---- Outlook ---- */

static void pox_protocol(
        struct buf *out, const struct way *w, const char *type, const char *host, const char *addr)
{
	if (!w) {
		return;
	}
	xml_printf(out,
	        "   <Protocol>\n    <Type>%s</Type>\n    <Server>%s</Server>\n"
	        "    <Port>%d</Port>\n    <DomainRequired>off</DomainRequired>\n"
	        "    <LoginName>%s</LoginName>\n    <SPA>off</SPA>\n",
	        type, host, w->port, addr);
	/* Encryption (Outlook 2010 on) says STARTTLS; SSL on is implicit TLS */
	buf_puts(out, w->ssl ? "    <SSL>on</SSL>\n" : "    <Encryption>TLS</Encryption>\n");
	buf_puts(out, "    <AuthRequired>on</AuthRequired>\n   </Protocol>\n");
}

/* see rumble.h */
void autoconf_outlook(
        const char *addr, const char *host, const struct autoconf_ports *p, struct buf *out)
{
	struct way w[6];
	int n = ways(p, w);
	const struct way *in = first(w, n, "imap");
	xml_printf(out,
	        XML_HEAD "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
	                 "autodiscover/responseschema/2006\">\n <Response xmlns=\"http://"
	                 "schemas.microsoft.com/exchange/autodiscover/outlook/"
	                 "responseschema/2006a\">\n  <User>\n   <DisplayName>%s</DisplayName>\n"
	                 "  </User>\n  <Account>\n   <AccountType>email</AccountType>\n"
	                 "   <Action>settings</Action>\n",
	        addr);
	pox_protocol(out, in ? in : first(w, n, "pop3"), in ? "IMAP" : "POP3", host, addr);
	pox_protocol(out, first(w, n, "smtp"), "SMTP", host, addr);
	buf_puts(out, "  </Account>\n </Response>\n</Autodiscover>\n");
}

/* ---- Apple ---- */

/* A UUID made from the SHA-256 of what and addr: the same address gets
 * the same profile, so installing it again replaces the old one. Marked
 * as RFC 9562's version 8 (custom). */
static void uuid_of(const char *what, const char *addr, char out[37])
{
	static const char hex[] = "0123456789ABCDEF";
	crypto_sha256_ctx c;
	uint8_t h[32];
	crypto_sha256_init(&c);
	crypto_sha256_update(&c, what, strlen(what) + 1);
	crypto_sha256_update(&c, addr, strlen(addr));
	crypto_sha256_final(&c, h);
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x80);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	for (int i = 0, k = 0; i < 16; i++) {
		out[k++] = hex[h[i] >> 4];
		out[k++] = hex[h[i] & 15];
		if (i == 3 || i == 5 || i == 7 || i == 9) {
			out[k++] = '-';
		}
	}
	out[36] = '\0';
}

/* The mail server keys for one direction ("Incoming", "Outgoing"). */
static void plist_server(
        struct buf *out, const char *dir, const struct way *w, const char *host, const char *addr)
{
	xml_printf(out,
	        "   <key>%sMailServerAuthentication</key><string>EmailAuthPassword</string>\n"
	        "   <key>%sMailServerHostName</key><string>%s</string>\n"
	        "   <key>%sMailServerPortNumber</key><integer>%d</integer>\n"
	        "   <key>%sMailServerUseSSL</key><%s/>\n"
	        "   <key>%sMailServerUsername</key><string>%s</string>\n",
	        dir, dir, host, dir, w ? w->port : 0, dir, w && w->ssl ? "true" : "false", dir,
	        addr);
}

/* see rumble.h */
void autoconf_apple(
        const char *addr, const char *host, const struct autoconf_ports *p, struct buf *out)
{
	struct way w[6];
	char top[37], mail[37];
	int n = ways(p, w);
	const struct way *in = first(w, n, "imap");
	uuid_of("rumble profile", addr, top);
	uuid_of("rumble mail", addr, mail);
	xml_printf(out,
	        XML_HEAD "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	                 "<plist version=\"1.0\">\n<dict>\n <key>PayloadContent</key>\n"
	                 " <array>\n  <dict>\n"
	                 "   <key>EmailAccountDescription</key><string>%s</string>\n"
	                 "   <key>EmailAccountType</key><string>%s</string>\n"
	                 "   <key>EmailAddress</key><string>%s</string>\n",
	        addr, in ? "EmailTypeIMAP" : "EmailTypePOP", addr);
	plist_server(out, "Incoming", in ? in : first(w, n, "pop3"), host, addr);
	plist_server(out, "Outgoing", first(w, n, "smtp"), host, addr);
	xml_printf(out,
	        "   <key>OutgoingPasswordSameAsIncomingPassword</key><true/>\n"
	        "   <key>PayloadDescription</key><string>The mail account %s</string>\n"
	        "   <key>PayloadDisplayName</key><string>%s</string>\n"
	        "   <key>PayloadIdentifier</key><string>%s.mail.%s</string>\n"
	        "   <key>PayloadType</key><string>com.apple.mail.managed</string>\n"
	        "   <key>PayloadUUID</key><string>%s</string>\n"
	        "   <key>PayloadVersion</key><integer>1</integer>\n  </dict>\n </array>\n"
	        " <key>PayloadDescription</key><string>Mail settings for %s</string>\n"
	        " <key>PayloadDisplayName</key><string>Mail: %s</string>\n"
	        " <key>PayloadIdentifier</key><string>%s.profile.%s</string>\n"
	        " <key>PayloadRemovalDisallowed</key><false/>\n"
	        " <key>PayloadType</key><string>Configuration</string>\n"
	        " <key>PayloadUUID</key><string>%s</string>\n"
	        " <key>PayloadVersion</key><integer>1</integer>\n</dict>\n</plist>\n",
	        addr, addr, host, mail, mail, addr, addr, host, top, top);
}

/* ---- requests ---- */

/* 1 when d can be a domain of ours: 1 to 253 bytes of letters, digits,
 * dots and hyphens. */
static int plain_domain(const char *d)
{
	size_t n = strlen(d);
	return n > 0 && n <= 253 &&
	       strspn(d, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

/* 1 when a is user@domain with a domain of ours; its domain into dom.
 * The local part is any printable ASCII but spaces (it is escaped on
 * the way out). */
static int our_address(const char *a, char *dom, size_t len)
{
	const char *at = strrchr(a, '@');
	size_t n = strlen(a);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)a[i] <= 0x20 || (unsigned char)a[i] > 0x7e) {
			return 0;
		}
	}
	if (!at || at == a || at - a > 64 || rl_strlcpy(dom, at + 1, len) >= len) {
		return 0;
	}
	rl_lower(dom);
	return plain_domain(dom) && mm_domain_exists(dom);
}

static int hexval(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The value of name in a query string (a=1&b=2), percent-decoded into
 * out: 1, 0 when it is not there, -1 when it does not fit or decodes to
 * a NUL. */
static int query_value(const char *q, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	for (const char *p = q; *p; p += *p == '&') {
		size_t k = strcspn(p, "&"), n = 0;
		if (k > nl && p[nl] == '=' && rl_strncasecmp(p, name, nl) == 0) {
			for (size_t i = nl + 1; i < k; i++) {
				int c = (unsigned char)p[i], h = 0, l = 0;
				if (c == '%' && i + 2 < k && (h = hexval(p[i + 1])) >= 0 &&
				        (l = hexval(p[i + 2])) >= 0) {
					c = h * 16 + l;
					i += 2;
				} else if (c == '+') {
					c = ' ';
				}
				if (c == 0 || n + 1 >= len) {
					return -1;
				}
				out[n++] = (char)c;
			}
			out[n] = '\0';
			return 1;
		}
		p += k;
	}
	return 0;
}

/* The domain Thunderbird asks about: the emailaddress= of the query
 * (its version 60 on sends it), else the Host header without its port
 * and without "autoconfig." (the autoconfig.<domain> form). */
static int tb_domain(const char *query, const char *host, char *dom, size_t len)
{
	char addr[AC_ADDR_MAX];
	int r = query_value(query, "emailaddress", addr, sizeof addr);
	if (r != 0) {
		return r > 0 && our_address(addr, dom, len);
	}
	if (!host || rl_strncasecmp(host, "autoconfig.", 11) == 0) {
		host = host ? host + 11 : "";
	}
	size_t n = strcspn(host, ":");
	if (n >= len) {
		return 0;
	}
	memcpy(dom, host, n);
	dom[n] = '\0';
	rl_lower(dom);
	return plain_domain(dom) && mm_domain_exists(dom);
}

/* The first occurrence of the n bytes of s in p[0..len), or NULL. */
static const char *find(const char *p, size_t len, const char *s, size_t n)
{
	for (size_t i = 0; n <= len && i <= len - n; i++) {
		if (memcmp(p + i, s, n) == 0) {
			return p + i;
		}
	}
	return NULL;
}

/* XML's five predefined entities in s decoded in place; -1 for any other
 * '&' (a character reference has no place in an address). */
static int xml_unescape(char *s)
{
	static const char *const ent[5][2] = {
	        {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
	char *w = s;
	for (char *r = s; *r;) {
		int k = 0;
		while (*r == '&' && k < 5 && strncmp(r, ent[k][0], strlen(ent[k][0])) != 0) {
			k++;
		}
		if (*r == '&' && k == 5) {
			return -1;
		}
		size_t step = *r == '&' ? strlen(ent[k][0]) : 1;
		*w++ = *r == '&' ? ent[k][1][0] : *r; /* w <= r: may overwrite *r */
		r += step;
	}
	*w = '\0';
	return 0;
}

/* see rumble.h */
int autoconf_pox_address(const char *body, size_t len, char *addr, size_t addrlen)
{
	static const char tag[] = "EMailAddress";
	const char *p = body, *end = body + len;
	/* <EMailAddress> or <prefix:EMailAddress>, then the text up to '<' */
	while ((p = find(p, (size_t)(end - p), tag, sizeof tag - 1)) != NULL) {
		const char *t = p + sizeof tag - 1;
		int opens = p > body && (p[-1] == '<' || p[-1] == ':');
		p = t;
		if (opens && t < end && *t == '>') {
			const char *v = t + 1, *stop = memchr(v, '<', (size_t)(end - v));
			while (v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) {
				v++;
			}
			size_t n = stop ? (size_t)(stop - v) : 0;
			while (n > 0 && strchr(" \t\r\n", v[n - 1])) {
				n--;
			}
			if (!stop || n == 0 || n >= addrlen || memchr(v, 0, n)) {
				return -1;
			}
			memcpy(addr, v, n);
			addr[n] = '\0';
			return xml_unescape(addr);
		}
	}
	return -1;
}

/* see rumble.h */
int autoconf_match(const char *path)
{
	size_t n = strcspn(path, "?#");
	return (n == sizeof TB_PATH - 1 && strncmp(path, TB_PATH, n) == 0) ||
	       (n == sizeof TB_WELLKNOWN - 1 && strncmp(path, TB_WELLKNOWN, n) == 0) ||
	       (n == sizeof AD_PATH - 1 && rl_strncasecmp(path, AD_PATH, n) == 0);
}

static int autodiscover(
        const char *body, size_t bodylen, const struct autoconf_ports *p, struct buf *out)
{
	char addr[AC_ADDR_MAX], dom[MM_DOMAIN_MAX + 1];
	if (autoconf_pox_address(body ? body : "", body ? bodylen : 0, addr, sizeof addr) != 0) {
		return 400;
	}
	if (!our_address(addr, dom, sizeof dom)) {
		return 404; /* not ours: the client tries its next way */
	}
	log_debug("autoconf: autodiscover for %s", addr);
	autoconf_outlook(addr, conf.server_name, p, out);
	return 200;
}

/* see rumble.h */
int autoconf_route(const char *method, const char *target, const char *host, const char *body,
        size_t bodylen, struct buf *out, const char **ctype)
{
	struct autoconf_ports p;
	char dom[MM_DOMAIN_MAX + 1];
	if (!autoconf_match(target)) {
		return 0;
	}
	const char *q = strchr(target, '?');
	int post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
	autoconf_ports(&p);
	*ctype = "text/xml; charset=utf-8";
	if (rl_strncasecmp(target, AD_PATH, sizeof AD_PATH - 1) == 0) {
		return post ? autodiscover(body, bodylen, &p, out) : 405;
	}
	if (!get) {
		return 405;
	}
	if (!tb_domain(q ? q + 1 : "", host, dom, sizeof dom)) {
		return 404;
	}
	autoconf_thunderbird(dom, conf.server_name, &p, out);
	return 200;
}
