/*
 * admin.c - what the administration commands share: the progress bar of
 * the long ones (backup, restore, import, export, compact).
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
