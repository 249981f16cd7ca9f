/*
 * dnsadvice.c - "rumble dns DOMAIN [--check]": every DNS record a domain
 * needs for mail that other servers accept and clients find, as zone-file
 * lines ready to paste (MX, the host's address, SPF, DKIM, DMARC,
 * MTA-STS, TLS-RPT, autoconfig and RFC 6186 SRV records); with --check,
 * each looked up and marked ok, MISSING or WRONG.
 *
 * The mail host is ServerName. The SPF record allows the domain's MX
 * hosts only and fails the rest ("-all"); DMARC starts at p=none with
 * reports to postmaster, the step every guide gives before quarantine.
 * SRV records name the ports this configuration listens on and say "."
 * for the services that are off, so that clients do not guess them.
 */
#include <string.h>
#include <time.h>

#include "rumble.h"

#define TXT_CHUNK 255 /* the longest character-string in a TXT record */

/* What --check found: required records missing or wrong, and how many
 * records there were. */
struct advice {
	const char *domain, *host;
	int check, problems, wrong; /* wrong: optional ones among problems */
	struct buf *out;
};

/* see rumble.h */
void dns_put_txt(struct buf *out, const char *text)
{
	size_t n = strlen(text);
	if (n > TXT_CHUNK) {
		buf_puts(out, "( ");
	}
	for (size_t i = 0; i < n || i == 0; i += TXT_CHUNK) {
		size_t k = n - i < TXT_CHUNK ? n - i : TXT_CHUNK;
		buf_printf(out, "%s\"%.*s\"", i ? " " : "", (int)k, text + i);
	}
	if (n > TXT_CHUNK) {
		buf_puts(out, " )");
	}
}

/* The mark --check puts before a record: ok, MISSING or WRONG. Optional
 * ones are "-" when missing and then no problem; published wrong (an SRV
 * record to another port) they are one, as they mislead clients. */
static void mark(struct advice *a, int found, int right, int required)
{
	if (!a->check) {
		return;
	}
	const char *m = found && right ? "ok      " : found ? "WRONG   " : required ? "MISSING " : "-       ";
	a->problems += required ? !(found && right) : found && !right;
	a->wrong += !required && found && !right;
	buf_puts(a->out, m);
}

/* 1 when a TXT record of name starts with prefix; *right when one holds
 * want too (NULL: any). */
static int txt_found(const char *name, const char *prefix, const char *want, int *right)
{
	char txt[8][DNS_TEXT_MAX];
	int n = dns_txt(name, txt, 8), found = 0;
	*right = 0;
	for (int i = 0; i < n; i++) {
		if (rl_strncasecmp(txt[i], prefix, strlen(prefix)) == 0) {
			found = 1;
			*right |= !want || strstr(txt[i], want) != NULL;
		}
	}
	return found;
}

static void txt_record(struct advice *a, const char *name, const char *text, const char *prefix,
        const char *want, int required)
{
	int right = 0;
	if (a->check) {
		int found = txt_found(name, prefix, want, &right);
		mark(a, found, right, required);
	}
	buf_printf(a->out, "%s. 3600 IN TXT ", name);
	dns_put_txt(a->out, text);
	buf_puts(a->out, "\n");
}

static void mx_record(struct advice *a)
{
	struct dns_mx mx[8];
	int n = a->check ? dns_mx(a->domain, mx, 8) : 0, right = 0;
	for (int i = 0; i < n; i++) {
		right |= rl_strcasecmp(mx[i].host, a->host) == 0;
	}
	mark(a, n > 0, right, 1);
	buf_printf(a->out, "%s. 3600 IN MX 10 %s.\n", a->domain, a->host);
}

static void host_records(struct advice *a)
{
	char addr[4][DNS_ADDR_MAX];
	int n = a->check ? dns_addrs(a->host, addr, 4) : 0;
	mark(a, n > 0, 1, 1);
	buf_printf(a->out, "%s. 3600 IN A <this server's IPv4 address>", a->host);
	for (int i = 0; i < n; i++) {
		buf_printf(a->out, "%s%s", i ? ", " : " ; now: ", addr[i]);
	}
	buf_puts(a->out, "\n");
	if (a->check) {
		buf_puts(a->out, "        ");
	}
	buf_printf(a->out, "; and %s. AAAA when it has IPv6; its PTR should name %s\n", a->host,
	        a->host);
}

static void dkim_records(struct advice *a)
{
	char p[1200], name[DNS_NAME_MAX + 80], text[1300], err[256];
	if (dkim_public(a->domain, p, sizeof p, err, sizeof err) != 0) {
		buf_printf(a->out, "; DKIM: %s\n", err);
		a->problems++;
		return;
	}
	snprintf(name, sizeof name, "%s._domainkey.%s", conf.dkim_selector, a->domain);
	snprintf(text, sizeof text, "v=DKIM1; k=rsa; p=%s", p);
	txt_record(a, name, text, "v=DKIM1", p, 1);
}

/* An SRV record (RFC 6186; RFC 8314 section 5.1: implicit TLS at the
 * lower priority number, preferred) for a service on port, or the "no
 * such service here" record (target ".", RFC 2782) when port is 0. With
 * --check, right when one of the published records names this host and
 * port, or every one says "." for a service that is off. */
static void srv_record(struct advice *a, const char *svc, int port, int prio)
{
	char name[DNS_NAME_MAX + 16];
	struct dns_srv srv[8];
	snprintf(name, sizeof name, "_%s._tcp.%s", svc, a->domain);
	if (a->check) {
		int n = dns_srv(name, srv, 8), right = port == 0;
		for (int i = 0; i < n; i++) {
			int here = srv[i].port == port && rl_strcasecmp(srv[i].host, a->host) == 0;
			right = port ? right || here : right && !srv[i].host[0];
		}
		mark(a, n > 0, right, 0);
	}
	if (port) {
		buf_printf(a->out, "%s. 3600 IN SRV %d 1 %d %s.\n", name, prio, port, a->host);
	} else {
		buf_printf(a->out, "%s. 3600 IN SRV 0 0 0 .\n", name);
	}
}

/* name (autoconfig.<domain>, ...) as a CNAME to the mail host; checked
 * by its address, as a client reaches it. */
static void host_alias(struct advice *a, const char *prefix)
{
	char name[DNS_NAME_MAX + 16], addr[2][DNS_ADDR_MAX];
	snprintf(name, sizeof name, "%s.%s", prefix, a->domain);
	mark(a, a->check && dns_addrs(name, addr, 2) > 0, 1, 0);
	buf_printf(a->out, "%s. 3600 IN CNAME %s.\n", name, a->host);
}

/* What mail clients look up to configure themselves: the autoconfig and
 * autodiscover hosts (served by autoconf.c over HTTP) and SRV records
 * for every service, those that are off included. */
static void client_records(struct advice *a)
{
	struct autoconf_ports p;
	autoconf_ports(&p);
	buf_puts(a->out, "; for mail clients: the names their autoconfiguration asks (HTTP), and "
	                 "SRV records (RFC 6186):\n");
	host_alias(a, "autoconfig");
	host_alias(a, "autodiscover");
	srv_record(a, "submissions", p.smtps, 0);
	srv_record(a, "submission", p.submission, 10);
	srv_record(a, "imaps", p.imaps, 0);
	srv_record(a, "imap", p.imap, 10);
	srv_record(a, "pop3s", p.pop3s, 20);
	srv_record(a, "pop3", p.pop3, 30);
}

/* see rumble.h */
int dns_advice(const char *domain, int check, struct buf *out)
{
	char name[DNS_NAME_MAX + 16], text[600];
	struct advice a = {domain, conf.server_name, check, 0, 0, out};
	buf_printf(out, "; DNS records for mail at %s (mail host %s)\n", domain, a.host);
	mx_record(&a);
	host_records(&a);
	txt_record(&a, domain, "v=spf1 mx -all", "v=spf1", NULL, 1);
	dkim_records(&a);
	snprintf(name, sizeof name, "_dmarc.%s", domain);
	snprintf(text, sizeof text, "v=DMARC1; p=none; rua=mailto:postmaster@%s", domain);
	txt_record(&a, name, text, "v=DMARC1", NULL, 1);
	snprintf(name, sizeof name, "_smtp._tls.%s", domain);
	snprintf(text, sizeof text, "v=TLSRPTv1; rua=mailto:postmaster@%s", domain);
	txt_record(&a, name, text, "v=TLSRPTv1", NULL, 0);
	buf_puts(out, "; MTA-STS, once https://mta-sts.");
	buf_printf(out, "%s/.well-known/mta-sts.txt is served (a trusted certificate):\n", domain);
	snprintf(name, sizeof name, "_mta-sts.%s", domain);
	struct tm tm;
	os_gmtime(os_time(), &tm);
	snprintf(text, sizeof text, "v=STSv1; id=%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	        tm.tm_mday);
	txt_record(&a, name, text, "v=STSv1", NULL, 0);
	host_alias(&a, "mta-sts");
	client_records(&a);
	if (check) {
		int req = a.problems - a.wrong;
		buf_printf(out, "; %d required record%s missing or wrong\n", req, req == 1 ? "" : "s");
	}
	if (check && a.wrong) {
		buf_printf(out, "; %d optional record%s wrong: fix or remove\n", a.wrong,
		        a.wrong == 1 ? "" : "s");
	}
	return a.problems;
}
