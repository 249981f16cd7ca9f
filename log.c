/*
 * log.c - logging with time and level to stderr or a file, a ring of the
 * last LOG_RING_LINES lines for Rumble.getLog(), and the allocation wrappers
 * (out of memory is fatal: per-session limits keep clients from getting
 * there).
 */
#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "rumble.h"

#define LOG_LINE_MAX 1024

static FILE *log_fp;
static int log_lvl = LOG_INFO;
static os_mutex *log_lock;
/* The last lines, each a copy of its own length (a fixed 1 KB slot per
 * line kept 205 KB resident); NULL where a copy could not be made. */
static char *ring[LOG_RING_LINES];
static int ring_next, ring_count;
/* The last warnings and errors, apart: the 200 lines above are soon all
 * "info" on a busy server. */
static char errs[LOG_ERRORS][LOG_ERROR_LEN];
static int errs_next, errs_count;

static const char *level_names[] = {"error", "warn", "info", "debug"};

int log_open(const char *path)
{
	if (!log_lock) {
		log_lock = os_mutex_new();
	}
	if (!path || !*path) {
		log_fp = NULL;
		return 0;
	}
	FILE *f = os_fopen(path, "a");
	if (!f) {
		return -1;
	}
	log_fp = f; /* flushed a line at a time by log_emit */
	return 0;
}

void log_set_level(int level)
{
	log_lvl = level;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++) {
		if (rl_strcasecmp(name, level_names[i]) == 0) {
			return i;
		}
	}
	if (rl_strcasecmp(name, "warning") == 0) {
		return LOG_WARN;
	}
	return -1;
}

static void log_emit(int level, const char *fmt, va_list ap, const char *suffix)
{
	char line[LOG_LINE_MAX];
	struct tm tm;
	os_gmtime(os_time(), &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S ", &tm);
	n += snprintf(line + n, sizeof line - (size_t)n, "%-5s ", level_names[level]);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	if (suffix) {
		size_t len = strlen(line);
		snprintf(line + len, sizeof line - len, ": %s", suffix);
	}
	for (char *p = line; *p; p++) {
		if (*p == '\n' || *p == '\r') {
			*p = ' '; /* one event, one line */
		}
	}
	if (log_lock) {
		os_mutex_lock(log_lock);
	}
	size_t len = strlen(line) + 1;
	char *copy = realloc(ring[ring_next], len); /* malloc when NULL */
	if (copy) {
		memcpy(copy, line, len);
	} else {
		free(ring[ring_next]);
	}
	ring[ring_next] = copy;
	ring_next = (ring_next + 1) % LOG_RING_LINES;
	if (level <= LOG_WARN) {
		rl_strlcpy(errs[errs_next], line, LOG_ERROR_LEN);
		errs_next = (errs_next + 1) % LOG_ERRORS;
		errs_count += errs_count < LOG_ERRORS;
	}
	if (ring_count < LOG_RING_LINES) {
		ring_count++;
	}
	fprintf(log_fp ? log_fp : stderr, "%s\n", line);
	/* not setvbuf(_IOLBF): MSVC's C library has no line buffering (it is
	 * full buffering there) and ends the process on its size 0 */
	fflush(log_fp ? log_fp : stderr);
	if (log_lock) {
		os_mutex_unlock(log_lock);
	}
}

void log_msg(int level, const char *fmt, ...)
{
	if (level > log_lvl) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	log_emit(level, fmt, ap, NULL);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char err[256];
	rl_strlcpy(err, os_strerror(), sizeof err);
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_WARN, fmt, ap, err);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	char err[256];
	rl_strlcpy(err, os_strerror(), sizeof err);
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_ERROR, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

void log_ring_each(void (*fn)(const char *line, void *arg), void *arg)
{
	if (log_lock) {
		os_mutex_lock(log_lock);
	}
	int start = (ring_next - ring_count + LOG_RING_LINES) % LOG_RING_LINES;
	for (int i = 0; i < ring_count; i++) {
		const char *line = ring[(start + i) % LOG_RING_LINES];
		if (line) {
			fn(line, arg);
		}
	}
	if (log_lock) {
		os_mutex_unlock(log_lock);
	}
}

/* see rumble.h */
int log_errors(char out[][LOG_ERROR_LEN])
{
	if (log_lock) {
		os_mutex_lock(log_lock);
	}
	int n = errs_count;
	for (int i = 0; i < n; i++) {
		memcpy(out[i], errs[(errs_next - n + i + LOG_ERRORS) % LOG_ERRORS], LOG_ERROR_LEN);
	}
	if (log_lock) {
		os_mutex_unlock(log_lock);
	}
	return n;
}

/* ---- allocation ---- */

static void *check(void *p, size_t n)
{
	if (!p && n) {
		fatalx("out of memory (%zu bytes)", n);
	}
	return p;
}

void *xmalloc(size_t n)
{
	return check(malloc(n ? n : 1), n);
}

void *xcalloc(size_t n, size_t size)
{
	return check(calloc(n ? n : 1, size ? size : 1), n * size);
}

void *xrealloc(void *p, size_t n)
{
	return check(realloc(p, n ? n : 1), n);
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

/* ---- small string helpers ---- */

size_t rl_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);
	if (n) {
		size_t c = len < n - 1 ? len : n - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return len;
}

int rl_strncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);
		if (ca != cb || !ca) {
			return ca - cb;
		}
	}
	return 0;
}

int rl_strcasecmp(const char *a, const char *b)
{
	return rl_strncasecmp(a, b, (size_t)-1);
}

void rl_lower(char *s)
{
	for (; *s; s++) {
		*s = (char)tolower((unsigned char)*s);
	}
}

/* see rumble.h */
struct os_mutex *rl_mutex_once(struct os_mutex **slot)
{
	os_mutex *m = os_atomic_load_ptr((void *volatile *)slot);
	if (!m) {
		os_mutex *made = os_mutex_new();
		if (os_atomic_cas_ptr((void *volatile *)slot, NULL, made)) {
			m = made;
		} else {
			os_mutex_free(made); /* another thread was first: take its */
			m = os_atomic_load_ptr((void *volatile *)slot);
		}
	}
	return m;
}
