/*
 * buf.c - growable byte strings and the message spool. No mail knowledge.
 */
#include <string.h>

#include "rumble.h"

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free(struct buf *b)
{
	xfree(b->data);
	b->len = b->cap = 0;
}

void buf_reserve(struct buf *b, size_t extra)
{
	if (extra > (size_t)-1 / 2 - b->len) {
		fatalx("buffer size overflow");
	}
	size_t need = b->len + extra + 1; /* + the terminating NUL */
	if (need <= b->cap) {
		return;
	}
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need) {
		cap *= 2;
	}
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n) {
		memcpy(b->data + b->len, p, n);
	}
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		return;
	}
	buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data) {
		b->data[b->len] = '\0';
	}
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data) {
		b->data[0] = '\0';
	}
}

/* ---- spool ---- */

static os_mutex *spool_lock;
static unsigned spool_seq;

void spool_init(struct spool *sp, const char *tmpdir)
{
	memset(sp, 0, sizeof *sp);
	buf_init(&sp->mem);
	sp->tmpdir = tmpdir;
}

/* Moves what is in memory to a new file in tmpdir. */
static int spool_spill(struct spool *sp)
{
	if (!spool_lock) {
		spool_lock = os_mutex_new(); /* first use is single-threaded start-up or a test */
	}
	os_mutex_lock(spool_lock);
	unsigned seq = ++spool_seq;
	os_mutex_unlock(spool_lock);
	snprintf(sp->path, sizeof sp->path, "%s/spool-%ld-%u", sp->tmpdir ? sp->tmpdir : ".",
		os_getpid(), seq);
	sp->f = os_fopen_private(sp->path, "w+b");
	if (!sp->f) {
		log_warn("spool: cannot create %s", sp->path);
		sp->path[0] = '\0';
		return -1;
	}
	if (sp->mem.len && fwrite(sp->mem.data, 1, sp->mem.len, sp->f) != sp->mem.len) {
		log_warn("spool: write %s", sp->path);
		return -1;
	}
	buf_free(&sp->mem);
	return 0;
}

int spool_write(struct spool *sp, const void *p, size_t n)
{
	if (sp->failed) {
		return -1;
	}
	if (!sp->f && sp->mem.len + n > SPOOL_MEM_MAX && spool_spill(sp) != 0) {
		sp->failed = os_errno_is_nospace() ? SPOOL_NOSPACE : 1;
		return -1;
	}
	if (sp->f) {
		if (fwrite(p, 1, n, sp->f) != n) {
			log_warn("spool: write %s", sp->path);
			sp->failed = os_errno_is_nospace() ? SPOOL_NOSPACE : 1;
			return -1;
		}
	} else {
		buf_append(&sp->mem, p, n);
	}
	sp->len += n;
	return 0;
}

long spool_read(struct spool *sp, uint64_t off, void *buf, size_t n)
{
	if (off >= sp->len) {
		return 0;
	}
	if (n > sp->len - off) {
		n = (size_t)(sp->len - off);
	}
	if (!sp->f) {
		memcpy(buf, sp->mem.data + off, n);
		return (long)n;
	}
	if (fflush(sp->f) != 0 || os_fseek(sp->f, (int64_t)off, SEEK_SET) != 0) {
		return -1;
	}
	size_t got = fread(buf, 1, n, sp->f);
	if (got == 0 && ferror(sp->f)) {
		return -1;
	}
	os_fseek(sp->f, 0, SEEK_END); /* further writes append */
	return (long)got;
}

void spool_free(struct spool *sp)
{
	if (sp->f) {
		fclose(sp->f);
		sp->f = NULL;
		os_remove(sp->path);
	}
	buf_free(&sp->mem);
	sp->len = 0;
}
