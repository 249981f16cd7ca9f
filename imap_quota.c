/*
 * imap_quota.c - the answers of IMAP QUOTA (RFC 9208): GETQUOTAROOT,
 * GETQUOTA and SETQUOTA, over the limits and usage of quota.c.
 *
 * An account has one quota root, named "" as in the RFC's examples: it
 * governs every folder of the account (the limits are per account, a
 * domain's being its accounts' default). Its resources are STORAGE, in
 * KiB, and MESSAGE; one without a limit is left out, and an account with
 * no limit at all has no quota root (GETQUOTAROOT lists none, GETQUOTA ""
 * is NO [NONEXISTENT]), as the RFC's grammar wants at least one resource
 * in a QUOTA response. Limits are the administrator's (`rumble user
 * quota`, the web admin): SETQUOTA is refused, and QUOTASET not offered.
 */
#include <string.h>

#include "rumble.h"

#define QUOTA_ROOT ""

/* The QUOTA response for q into out; 0, or -1 when q has no limit. */
static int put_quota(const struct quota_state *q, struct buf *out)
{
	if (!q->kib_limit && !q->msgs_limit) {
		return -1;
	}
	buf_puts(out, "* QUOTA \"" QUOTA_ROOT "\" (");
	if (q->kib_limit) {
		buf_printf(out, "STORAGE %llu %llu", (unsigned long long)((q->bytes + 1023) / 1024),
		        (unsigned long long)q->kib_limit);
	}
	if (q->msgs_limit) {
		buf_printf(out, "%sMESSAGE %llu %llu", q->kib_limit ? " " : "",
		        (unsigned long long)q->msgs, (unsigned long long)q->msgs_limit);
	}
	buf_puts(out, ")\r\n");
	return 0;
}

/* see rumble.h */
int imap_quota_get(const char *domain, const char *user, const char *root, struct buf *out)
{
	struct quota_state q;
	if (strcmp(root, QUOTA_ROOT) != 0) {
		return -1;
	}
	memset(&q, 0, sizeof q);
	quota_limits(domain, user, &q);
	if (!q.kib_limit && !q.msgs_limit) {
		return -1;
	}
	return quota_get(domain, user, &q) == 0 ? put_quota(&q, out) : -2;
}

/* see rumble.h */
int imap_quota_root(const char *domain, const char *user, const char *box, struct buf *out)
{
	struct buf quota;
	buf_init(&quota);
	int rc = imap_quota_get(domain, user, QUOTA_ROOT, &quota);
	buf_puts(out, "* QUOTAROOT ");
	imap_put_string(out, box, strlen(box));
	buf_puts(out, rc == 0 ? " \"" QUOTA_ROOT "\"\r\n" : "\r\n");
	if (rc == 0) {
		buf_append(out, quota.data, quota.len);
	}
	buf_free(&quota);
	return rc == -2 ? -1 : 0;
}

/* see rumble.h */
int imap_quota_set_parse(const struct imap_cmd *c, uint32_t i)
{
	if (i >= c->ntok || (c->tok[i].type != IMAP_ATOM && c->tok[i].type != IMAP_STRING) ||
	        ++i >= c->ntok || c->tok[i].type != IMAP_LPAREN) {
		return -1;
	}
	/* (name limit name limit ...): pairs of an atom and a number */
	for (i++; i + 1 < c->ntok && c->tok[i].type == IMAP_ATOM; i += 2) {
		const char *v = imap_tok_str(c, i + 1);
		if (c->tok[i + 1].type != IMAP_ATOM || !*v || strspn(v, "0123456789") != strlen(v)) {
			return -1;
		}
	}
	return i + 1 == c->ntok && c->tok[i].type == IMAP_RPAREN ? 0 : -1;
}
