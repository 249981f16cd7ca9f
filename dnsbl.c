/*
 * dnsbl.c - DNS blocklists (RFC 5782) for mail coming in on the SMTP
 * port: the client's address, reversed, is looked up under each zone of
 * the DNSBL directive; an A record in 127.0.0.0/8 means listed.
 *
 * The lookups run on a helper thread (work.c) before the greeting. A list
 * that does not answer, or answers 127.255.255.x (Spamhaus's codes for a
 * refused query, e.g. through a public resolver), lists nobody: a broken
 * DNS must not stop the mail.
 */
#include <stdio.h>
#include <string.h>

#include "policy.h"

#define ZONES_MAX 8

/* see rumble.h */
int dnsbl_name(const char *ip, const char *zone, char *out, size_t len)
{
	uint8_t a[16];
	int n = os_ip_parse(ip, a);
	size_t used = 0;
	if (n != 4 && n != 16) {
		return -1;
	}
	for (int i = n - 1; i >= 0; i--) {
		int w = n == 4 ? snprintf(out + used, len - used, "%u.", a[i])
		               : snprintf(out + used, len - used, "%x.%x.", a[i] & 15, a[i] >> 4);
		if (w < 0 || (size_t)w >= len - used) {
			return -1;
		}
		used += (size_t)w;
	}
	return (size_t)snprintf(out + used, len - used, "%s", zone) < len - used ? 0 : -1;
}

/* see rumble.h */
int dnsbl_listed(const char *answer)
{
	return strncmp(answer, "127.", 4) == 0 && strncmp(answer, "127.255.255.", 12) != 0;
}

/* The zones of the DNSBL directive (space or comma separated), at most
 * max of them copied into out; their count. */
static int zones(char (*out)[DNS_NAME_MAX], int max)
{
	int n = 0;
	const char *p = conf.dnsbl;
	while (*p && n < max) {
		p += strspn(p, " ,\t");
		size_t len = strcspn(p, " ,\t");
		if (len && len < DNS_NAME_MAX) {
			memcpy(out[n], p, len);
			out[n++][len] = '\0';
		}
		p += len;
	}
	return n;
}

/* see rumble.h */
int dnsbl_check_conf(const char *value, char *err, size_t errlen)
{
	char copy[sizeof conf.dnsbl];
	rl_strlcpy(copy, value, sizeof copy);
	for (char *z = strtok(copy, " ,\t"); z; z = strtok(NULL, " ,\t")) {
		if (!mm_valid_domain(z)) {
			snprintf(err, errlen, "DNSBL: not a domain name: %.100s", z);
			return -1;
		}
	}
	return 0;
}

/* see rumble.h */
int dnsbl_wanted(const struct session *s)
{
	return conf.dnsbl[0] && !session_is_local(s);
}

struct dnsbl_work {
	struct work w;
	char ip[64];
	char zone[DNS_NAME_MAX]; /* the list naming the client; "" for none */
	void (*done)(struct session *s, const char *zone);
};

static void lookup(struct work *w)
{
	struct dnsbl_work *d = (struct dnsbl_work *)w;
	char z[ZONES_MAX][DNS_NAME_MAX], name[DNS_NAME_MAX], addrs[4][DNS_ADDR_MAX];
	int nz = zones(z, ZONES_MAX);
	for (int i = 0; i < nz && !d->zone[0]; i++) {
		if (dnsbl_name(d->ip, z[i], name, sizeof name) != 0) {
			continue;
		}
		int n = dns_addrs(name, addrs, 4);
		for (int k = 0; k < n; k++) {
			if (dnsbl_listed(addrs[k])) {
				rl_strlcpy(d->zone, z[i], sizeof d->zone);
				break;
			}
		}
	}
}

static void looked_up(struct session *s, struct work *w)
{
	struct dnsbl_work *d = (struct dnsbl_work *)w;
	if (!session_closing(s)) {
		d->done(s, d->zone[0] ? d->zone : NULL);
	}
	free(d);
}

/* see rumble.h */
void dnsbl_check(struct session *s, void (*done)(struct session *s, const char *zone))
{
	struct dnsbl_work *d = xcalloc(1, sizeof *d);
	d->w.run = lookup;
	d->w.back = looked_up;
	d->done = done;
	rl_strlcpy(d->ip, s->peer, sizeof d->ip);
	if (work_queue(s, &d->w) != 0) {
		lookup(&d->w);
		done(s, d->zone[0] ? d->zone : NULL);
		free(d);
	}
}

/* ---- the policy module (policy.h): a listed client is refused at the
 * connection, before the greeting; an early talker waits ---- */

static int dnsbl_open(struct policy *p, struct session *s, void **m)
{
	return strcmp(s->svc->name, "smtp") == 0 && dnsbl_wanted(s);
}

static void dnsbl_done(struct session *s, const char *zone)
{
	struct policy_call *c = policy_waiting(s);
	if (!zone || !c) {
		session_resume(s);
		policy_resume(s, POLICY_NEXT);
		return;
	}
	os_atomic_add_long(&s->svc->rejected, 1);
	buf_printf(&c->reply, "554 5.7.1 Service unavailable; client [%s] blocked using %s\r\n",
	        s->peer, zone);
	c->why = "listed by DNSBL";
	policy_resume(s, 554);
}

static int dnsbl_connect(struct policy_call *c)
{
	session_pause(c->s);
	dnsbl_check(c->s, dnsbl_done);
	return POLICY_WAIT;
}

const struct policy_module dnsbl_policy = {
        .name = "dnsbl",
        .open = dnsbl_open,
        .step = {[POLICY_CONNECT] = dnsbl_connect},
};
