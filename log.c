/*
 * log.c - logging with time and level to stderr or a file, a ring of the
 * last LOG_RING_LINES lines for Rumble.getLog(), and the allocation wrappers
 * (out of memory is fatal: per-session limits keep clients from getting
 * there).
 *
 * The file is opened in append mode and can be opened again under the
 * same name (log_reopen: SIGHUP, SIGUSR1, after logrotate moved it away)
 * or rotated by size (log_rotate: rumble.log -> rumble.log.1 ... .N), both
 * under the lock every line is written under, so no line is lost or split
 * between two files. Audit lines (administration actions) pass any
 * LogLevel and, in a command-line process, go to the server's LogFile
 * (log_open_audit) instead of the terminal.
 */
#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "rumble.h"

#define LOG_LINE_MAX 1024
#define LOG_PATH_MAX 1024

static FILE *log_fp, *audit_fp;
static int log_lvl = LOG_INFO;
static os_mutex *log_lock;
static char log_path[LOG_PATH_MAX]; /* "" while the log is stderr */
static uint64_t log_size, log_max; /* the file's size as written; LogMaxSize, 0 = off */
static int log_keep = 5;
/* The last lines, each a copy of its own length (a fixed 1 KB slot per
 * line kept 205 KB resident); NULL where a copy could not be made. */
static char *ring[LOG_RING_LINES];
static int ring_next, ring_count;
/* The last warnings and errors, apart: the 200 lines above are soon all
 * "info" on a busy server. */
static char errs[LOG_ERRORS][LOG_ERROR_LEN];
static int errs_next, errs_count;

static const char *level_names[] = {"error", "warn", "info", "debug"};

/* Opens path for appending, with its size in *size. */
static FILE *open_append(const char *path, uint64_t *size)
{
	FILE *f = os_fopen(path, "a");
	struct os_stat st;
	*size = f && os_fstat(f, &st) == 0 ? st.size : 0;
	return f;
}

int log_open(const char *path)
{
	uint64_t size = 0;
	FILE *f = NULL;
	if (!log_lock) {
		log_lock = os_mutex_new();
	}
	if (path && *path) {
		f = strlen(path) < sizeof log_path ? open_append(path, &size) : NULL;
		if (!f) {
			return -1;
		}
	}
	os_mutex_lock(log_lock);
	if (log_fp) {
		fclose(log_fp);
	}
	log_fp = f; /* NULL: stderr; flushed a line at a time by log_emit */
	log_size = size;
	rl_strlcpy(log_path, f ? path : "", sizeof log_path);
	os_mutex_unlock(log_lock);
	return 0;
}

/* Opens the file again under its name (caller holds log_lock); the old
 * one stays when that fails. */
static int reopen_locked(void)
{
	uint64_t size;
	FILE *f = log_path[0] ? open_append(log_path, &size) : NULL;
	if (!f) {
		return -1;
	}
	if (log_fp) {
		fclose(log_fp);
	}
	log_fp = f;
	log_size = size;
	return 0;
}

/* see rumble.h */
int log_reopen(void)
{
	if (!log_lock || !log_path[0]) {
		return 0; /* stderr: nothing to reopen */
	}
	os_mutex_lock(log_lock);
	int rc = reopen_locked();
	os_mutex_unlock(log_lock);
	if (rc != 0) {
		log_warn("LogFile %s: cannot open it again; still writing to the old file", log_path);
	} else {
		log_info("log file opened again");
	}
	return rc;
}

/* see rumble.h */
void log_rotate(uint64_t max_size, int keep)
{
	log_max = max_size;
	log_keep = keep < 1 ? 1 : keep;
}

/* The file passed LogMaxSize (caller holds log_lock): rumble.log.N-1 ->
 * .N ... rumble.log -> .1, and a new rumble.log. When a rename fails
 * (Windows: another program holds the file without sharing) writing goes
 * on in the same file and the next try is LogMaxSize later. */
static void rotate_locked(void)
{
	char from[LOG_PATH_MAX + 16], to[LOG_PATH_MAX + 16];
	fclose(log_fp);
	log_fp = NULL;
	for (int i = log_keep - 1; i >= 1; i--) {
		snprintf(from, sizeof from, "%s.%d", log_path, i);
		snprintf(to, sizeof to, "%s.%d", log_path, i + 1);
		os_rename_atomic(from, to); /* a missing one is no error */
	}
	snprintf(to, sizeof to, "%s.1", log_path);
	int moved = os_rename_atomic(log_path, to) == 0;
	if (reopen_locked() != 0) {
		log_fp = NULL; /* stderr, as when no LogFile is set */
	}
	if (!moved) {
		log_size = 0;
	}
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

/* Writes line to the log (caller holds log_lock); audit lines to the
 * audit file when one is open. */
static void write_locked(const char *line, int audit)
{
	FILE *f = audit && audit_fp ? audit_fp : log_fp ? log_fp : stderr;
	fprintf(f, "%s\n", line);
	/* not setvbuf(_IOLBF): MSVC's C library has no line buffering (it is
	 * full buffering there) and ends the process on its size 0 */
	fflush(f);
	if (f == log_fp) {
		log_size += strlen(line) + 1;
		if (log_max && log_size >= log_max) {
			rotate_locked();
		}
	}
}

static void log_emit_line(int level, const char *fmt, va_list ap, const char *suffix, int audit);

/* Writes a line; the OS error of the failure being logged is the same
 * after it (a caller logs, then asks os_errno_is_nospace). */
static void log_emit(int level, const char *fmt, va_list ap, const char *suffix, int audit)
{
	struct os_err e;
	os_error_save(&e);
	log_emit_line(level, fmt, ap, suffix, audit);
	os_error_restore(&e);
}

static void log_emit_line(int level, const char *fmt, va_list ap, const char *suffix, int audit)
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
	write_locked(line, audit);
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
	log_emit(level, fmt, ap, NULL, 0);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char err[256];
	rl_strlcpy(err, os_strerror(), sizeof err);
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_WARN, fmt, ap, err, 0);
	va_end(ap);
}

/* see rumble.h */
int log_open_audit(const char *path)
{
	if (!log_lock) {
		log_lock = os_mutex_new();
	}
	FILE *f = os_fopen(path, "a");
	if (!f) {
		return -1;
	}
	audit_fp = f;
	return 0;
}

/* see rumble.h */
void log_audit(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_INFO, fmt, ap, NULL, 1);
	va_end(ap);
}

/* see rumble.h */
char *log_value(char *out, size_t n, const char *v, int quoted)
{
	size_t i = 0;
	for (; n && v[i] && i < n - 1; i++) {
		unsigned char c = (unsigned char)v[i];
		int bad = c < 0x20 || c == 0x7f || (c == ' ' && !quoted);
		out[i] = bad ? '?' : c == '"' ? '\'' : (char)c;
	}
	if (n) {
		out[i] = '\0';
	}
	return out;
}

void fatal(const char *fmt, ...)
{
	char err[256];
	rl_strlcpy(err, os_strerror(), sizeof err);
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_ERROR, fmt, ap, err, 0);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_ERROR, fmt, ap, NULL, 0);
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
