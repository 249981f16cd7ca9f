/*
 * admin.c - what the administration commands share: the progress bar of
 * the long ones (backup, restore, import, export, compact), and the log
 * line of each command that changes something.
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"

#define BAR_WIDTH 30

static void amount(char *out, size_t len, uint64_t n, int bytes)
{
	if (!bytes) {
		snprintf(out, len, "%llu", (unsigned long long)n);
	} else if (n >= 1024 * 1024) {
		snprintf(out, len, "%.1f MB", (double)n / (1024.0 * 1024.0));
	} else {
		snprintf(out, len, "%.1f KB", (double)n / 1024.0);
	}
}

static void draw(struct progress *p)
{
	char done[32], total[32], bar[BAR_WIDTH + 1];
	amount(done, sizeof done, p->done, p->bytes);
	if (!p->total) {
		fprintf(stderr, "\r%s %s\033[K", p->what, done);
		return;
	}
	uint64_t d = p->done < p->total ? p->done : p->total;
	int fill = (int)(d * BAR_WIDTH / p->total);
	memset(bar, '=', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(BAR_WIDTH - fill));
	bar[BAR_WIDTH] = '\0';
	amount(total, sizeof total, p->total, p->bytes);
	fprintf(stderr, "\r%s [%s] %3d%% %s/%s\033[K", p->what, bar, (int)(d * 100 / p->total),
	        done, total);
}

/* see admin.h */
void progress_start(struct progress *p, const char *what, uint64_t total, int bytes)
{
	memset(p, 0, sizeof *p);
	p->what = what;
	p->total = total;
	p->bytes = bytes;
	p->tty = os_stderr_is_tty();
	if (p->tty) {
		p->drawn_ms = os_now_ms();
		draw(p);
	}
}

/* see admin.h */
void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	int64_t now = p->tty ? os_now_ms() : 0;
	if (p->tty && now - p->drawn_ms >= 100) {
		p->drawn_ms = now;
		draw(p);
	}
}

/* see admin.h */
void progress_end(struct progress *p)
{
	if (p->tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

static const char *settings_file;

/* see admin.h */
void admin_settings_set(const char *path)
{
	settings_file = path;
}

/* see admin.h */
const char *admin_settings_path(void)
{
	return settings_file;
}

/* ---- the log of administration actions ---- */

static int audit_on;

/* 1 when the command changes something: its verb says so, or the whole
 * command does. */
static int changes(int argc, char **argv)
{
	static const char *const verbs[] = {
	        "add", "del", "passwd", "delete", "flush", "bounce", "revoke"};
	static const char *const whole[] = {"restore", "import", "compact"};
	for (size_t i = 0; argc >= 1 && i < sizeof whole / sizeof whole[0]; i++) {
		if (!strcmp(argv[0], whole[i])) {
			return 1;
		}
	}
	for (size_t i = 0; argc >= 2 && i < sizeof verbs / sizeof verbs[0]; i++) {
		if (!strcmp(argv[1], verbs[i])) {
			return 1;
		}
	}
	/* domain quota NAME LIMIT, user quota ADDR LIMIT: not a look, not --recalc */
	return argc >= 4 && !strcmp(argv[1], "quota") && strncmp(argv[3], "--", 2) != 0;
}

/* see admin.h */
void admin_audit_open(int argc, char **argv)
{
	char path[1100];
	struct os_stat st;
	if (!changes(argc, argv)) {
		return;
	}
	if (*conf.log_file) {
		rl_strlcpy(path, conf.log_file, sizeof path);
	} else if (snprintf(path, sizeof path, "%s/rumble.log", conf.storage) >= (int)sizeof path ||
	           os_stat(path, &st) != 0) {
		return; /* the server logs to its standard error: nowhere to write */
	}
	if (log_open_audit(path) != 0) {
		log_warn("LogFile %s: this change is not logged", path);
		return;
	}
	audit_on = 1;
}

/* see admin.h */
void admin_audit(int argc, char **argv, int rc)
{
	char action[300] = "", arg[128], who[96], name[128];
	size_t n = 0;
	if (!audit_on) {
		return;
	}
	for (int i = 0; i < argc; i++) {
		log_value(arg, sizeof arg, argv[i], 1);
		if (n + strlen(arg) + 2 > sizeof action) {
			break;
		}
		n += (size_t)snprintf(action + n, sizeof action - n, "%s%s", i ? " " : "", arg);
	}
	os_user_name(name, sizeof name);
	log_audit("admin via=cli by=%s client=local action=\"%s\" result=%s detail=\"pid %ld, "
	          "exit %d\"",
	        log_value(who, sizeof who, name, 0), action, rc == 0 ? "ok" : "failed", os_getpid(),
	        rc);
}
