/*
 * compact.c - deleted mail leaves the disk.
 *
 * IMAP EXPUNGE and POP3's UPDATE only mark messages in the index; imap.c
 * and pop3.c rewrite a folder without them when they take half of its
 * mbox. The rest goes here: `rumble compact [USER@DOMAIN]` compacts every
 * folder (of one mailbox) that holds an expunged message, and the server
 * does the same once a day in the hour CompactHour (local time, 4 by
 * default: a quiet hour on most small servers), so that a deleted message
 * stays on the disk a day at most. Both run while the server serves:
 * mm_folder_compact takes the folder's lock, keeps UIDs and flags, and
 * sessions that have the folder open reload it (mbox.c); a session with
 * it selected notices nothing, so selected folders are not skipped.
 */
#include <string.h>

#include "admin.h"

#define COMPACT_WAKE_MS (10 * 60 * 1000) /* the clock is looked at this often */

struct tally {
	const char *domain, *user, *only; /* only: "user@domain" or NULL */
	uint32_t folders, failed, matched;
	uint64_t freed;
	volatile int *stop;
	struct progress *bar;
};

static int compact_one(const char *name, void *arg)
{
	struct tally *t = arg;
	struct mm_folder *f = NULL;
	uint64_t dead = 0, total = 0;
	if (t->stop && os_atomic_load_int(t->stop)) {
		return 1;
	}
	if (mm_folder_open(t->domain, t->user, name, 0, &f) != 0) {
		return 0; /* gone meanwhile */
	}
	mm_folder_usage(f, &dead, &total);
	if (dead && mm_folder_compact(f) == 0) {
		t->folders++;
		t->freed += dead;
		log_info("compact %s@%s/%s: %llu bytes freed", t->user, t->domain, name,
		        (unsigned long long)dead);
	} else if (dead) {
		t->failed++;
		log_warnx("compact %s@%s/%s failed", t->user, t->domain, name);
	}
	mm_folder_close(f);
	return 0;
}

static int compact_account(const struct mm_account *a, void *arg)
{
	struct tally *t = arg;
	char addr[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(addr, sizeof addr, "%s@%s", a->user, a->domain);
	if (a->type != MM_MBOX || (t->only && rl_strcasecmp(addr, t->only) != 0)) {
		return 0;
	}
	t->matched++;
	t->domain = a->domain;
	t->user = a->user;
	int r = mm_folder_list(a->domain, a->user, compact_one, t);
	if (t->bar) {
		progress_add(t->bar, 1);
	}
	return r > 0 ? r : 0;
}

/* see admin.h */
int cmd_compact(int argc, char **argv)
{
	struct tally t = {0};
	struct progress bar;
	if (argc > 1 || (argc == 1 && !strchr(argv[0], '@'))) {
		fprintf(stderr, "usage: rumble compact [USER@DOMAIN]\n");
		return 2;
	}
	t.only = argc ? argv[0] : NULL;
	t.bar = &bar;
	progress_start(&bar, "compact", 0, 0);
	mm_account_list(NULL, compact_account, &t);
	progress_end(&bar);
	if (t.only && !t.matched) {
		fprintf(stderr, "rumble: no mailbox %s\n", t.only);
		return 1;
	}
	printf("%u folder%s compacted, %llu bytes freed%s\n", t.folders, t.folders == 1 ? "" : "s",
	        (unsigned long long)t.freed, t.failed ? " (some failed: see the log)" : "");
	return t.failed ? 1 : 0;
}

/* ---- the server's daily pass ---- */

static struct {
	os_thread *thread;
	os_mutex *mx;
	os_cond *cv;
	volatile int stop;
} K;

/* The local day and hour of now. */
static void local_hour(int64_t *day, int *hour)
{
	int64_t now = os_time();
	int64_t local = now + (int64_t)os_timezone_offset(now) * 60;
	*day = local / 86400;
	*hour = (int)(local % 86400 / 3600);
}

static void compact_main(void *arg)
{
	(void)arg;
	int64_t done_day = -1, day;
	int hour;
	os_mutex_lock(K.mx);
	while (!os_atomic_load_int(&K.stop)) {
		local_hour(&day, &hour);
		if (hour == conf.compact_hour && day != done_day) {
			done_day = day;
			os_mutex_unlock(K.mx);
			struct tally t = {0};
			t.stop = &K.stop;
			mm_account_list(NULL, compact_account, &t);
			log_info("compact: %u folders compacted, %llu bytes freed", t.folders,
			        (unsigned long long)t.freed);
			os_mutex_lock(K.mx);
		}
		if (!os_atomic_load_int(&K.stop)) {
			os_cond_wait(K.cv, K.mx, COMPACT_WAKE_MS);
		}
	}
	os_mutex_unlock(K.mx);
}

/* see admin.h */
void compact_start(void)
{
	if (conf.compact_hour < 0 || K.thread) {
		return;
	}
	K.mx = os_mutex_new();
	K.cv = os_cond_new();
	K.stop = 0;
	K.thread = os_thread_start(compact_main, NULL);
	if (!K.thread) {
		log_warnx("compact: cannot start its thread");
	}
}

/* see admin.h */
void compact_stop(void)
{
	if (!K.thread) {
		return;
	}
	os_mutex_lock(K.mx);
	os_atomic_store_int(&K.stop, 1);
	os_cond_broadcast(K.cv);
	os_mutex_unlock(K.mx);
	os_thread_join(K.thread);
	K.thread = NULL;
	os_cond_free(K.cv);
	os_mutex_free(K.mx);
}
