/*
 * stats.h - what the dashboard, `rumble status` and /metrics tell
 * (stats.c): mail counted per hour, and a summary of the server's state
 * (disk, mailboxes, queue, certificate, last errors).
 */
#ifndef RUMBLE_STATS_H
#define RUMBLE_STATS_H

#include "rumble.h"

#define STATS_HOURS 48    /* the window counted per hour */
#define STATS_LISTED 1000 /* domains and accounts a summary lists */

/* Counters: a ring of hours (slot hour % STATS_HOURS, holding its hour:
 * a slot of another hour counts as empty), totals since the file was
 * made, and the last warnings and errors as last saved. */
struct stats_hour {
	int64_t hour; /* seconds since the epoch / 3600 */
	uint32_t n[STATS_KINDS];
};
struct stats {
	struct stats_hour h[STATS_HOURS];
	uint64_t total[STATS_KINDS];
	char errors[LOG_ERRORS][LOG_ERROR_LEN];
	int nerrors;
};

/* ---- on a struct stats (no lock, no I/O) ---- */
void stats_add(struct stats *st, enum stats_kind k, int64_t now);
/* The count of kind k in the hour that holds t (0 outside the window). */
uint32_t stats_at(const struct stats *st, int64_t t, enum stats_kind k);
/* The file's text; stats_parse reads it back into a zeroed st (lines it
 * does not know are skipped). */
void stats_format(const struct stats *st, struct buf *out);
void stats_parse(struct stats *st, const char *text);

/* ---- the server's counters: StorageFolder/stats ---- */
void stats_start(void); /* loads the file; stats_count and stats_tick are in rumble.h */
void stats_stop(void);  /* saves */

/* ---- the summary ---- */
struct stats_box {
	char name[MM_USER_MAX + MM_DOMAIN_MAX + 2]; /* a domain, or user@domain */
	uint64_t bytes, msgs;
};
struct stats_summary {
	struct stats c; /* the server's counters, or the file's in another process */
	int live;       /* c is the running server's own */
	uint64_t disk_avail, disk_total; /* under StorageFolder; 0, 0 when unknown */
	int queued;
	uint64_t queue_bytes;
	int64_t queue_oldest;         /* when the oldest entry came; 0 = none */
	int64_t cert_until;           /* the TLS certificate's notAfter; 0 = none */
	struct stats_box *dom, *acct; /* by size, largest first */
	int ndom, nacct;
};
/* Gathers it all (reads files: not on a worker's loop). */
void stats_summary(struct stats_summary *s);
void stats_summary_free(struct stats_summary *s);
/* `rumble status`'s text and /metrics' Prometheus text of s at now. */
void stats_text(const struct stats_summary *s, int64_t now, struct buf *out);
void stats_metrics(const struct stats_summary *s, int64_t now, struct buf *out);

#endif
