/*
 * import.c - rumble import USER@DOMAIN PATH and rumble export USER@DOMAIN
 * DIR: mail in from an mbox file, a Maildir or a Maildir++ tree, and out to
 * a Maildir++ tree, through the folder API IMAP's APPEND and FETCH use
 * (mm_folder_append, mm_reader): this file never names a store file.
 *
 * Import reads
 *  - an mbox file (mboxrd or mboxo), into INBOX or the folder named after
 *    it (made when missing): a message starts at a "From " line at
 *    the start of the file or after a blank line, and that blank line is
 *    the separator; ">From " lines lose one '>' (mboxrd). The From_ line's
 *    date is the internal date. Status (R: \Seen), X-Status (A \Answered,
 *    F \Flagged, T \Draft, D \Deleted) and Thunderbird's X-Mozilla-Status
 *    give the flags, Dovecot's X-Keywords the keywords; they and the other
 *    state fields of mbox stores are dropped (import_mbox_field): they were
 *    the old store's state, and a reader of our mbox (mutt -f) would trust
 *    a stale "Status: RO" over the flags the index holds once they change;
 *  - a Maildir: cur/ and new/, flags from the ":2,FLAGS" info and keywords
 *    from its letters (Dovecot's dovecot-keywords), new/ unseen;
 *    the internal date is the file's mtime (where Dovecot keeps it), else
 *    the name's leading time;
 *  - a Maildir++ tree: the Maildir at PATH is INBOX and each PATH/.NAME
 *    that is a Maildir is the folder NAME: "." is the hierarchy separator
 *    on both sides and names are modified UTF-7 on both, so they map as
 *    they are.
 * Lines become CRLF as the store serves them (a lone CR stays), so the size
 * counted here is RFC822.SIZE. A message whose key (its Message-ID without
 * blanks, or its whole header when it has none, and that size) is already
 * in the target folder is skipped: a second run adds nothing. The keys of
 * a folder's messages are read once, when the import first writes to it.
 * Quotas are not checked: an administrator is moving mail in (the summary
 * says when the account ends over its quota).
 *
 * Export writes a new or empty DIR as Maildir++: INBOX in DIR/cur, folder
 * NAME in DIR/.NAME/cur, a file per message with LF line ends, named
 * "DATE.U<uid>V<uidvalidity>.rumble:2,FLAGS" and with the internal date as
 * its mtime, keywords as Dovecot's letters; written in tmp/ and renamed
 * into cur/. A folder's messages
 * are listed once, after a refresh under its lock, and each is read whole
 * by UID while a running server goes on: one expunged and compacted away
 * in between is left out and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "import.h"
#include "mime.h"

#define PIECE_MAX (64 * 1024) /* a longer line is read in pieces */
#define HDR_MAX (256 * 1024)  /* header bytes the key is made of */
#define SYNC_EVERY 256        /* messages appended between two fsyncs */
#define SENDER_MAX 256

/* ---- flags ---- */

static const struct {
	char c;
	uint32_t bit;
} maildir_letters[] = {
        {'D', MM_DRAFT}, {'F', MM_FLAGGED}, {'R', MM_ANSWERED}, {'S', MM_SEEN}, {'T', MM_DELETED}};

static uint32_t letters(const char *v, size_t n, const char *set, const uint32_t *bits)
{
	uint32_t fl = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = v[i] ? strchr(set, v[i]) : NULL;
		fl |= p ? bits[p - set] : 0;
	}
	return fl;
}

/* Thunderbird's bits: 1 read, 2 replied, 4 marked, 8 deleted (expunged). */
static uint32_t mozilla_flags(const char *v, size_t n)
{
	char hex[9];
	size_t k = 0;
	while (k < n && k < 8 && strchr("0123456789abcdefABCDEF", v[k]) && v[k]) {
		hex[k] = v[k];
		k++;
	}
	hex[k] = '\0';
	unsigned long m = strtoul(hex, NULL, 16);
	return (m & 1 ? MM_SEEN : 0) | (m & 2 ? MM_ANSWERED : 0) | (m & 4 ? MM_FLAGGED : 0) |
	       (m & 8 ? MM_DELETED : 0);
}

/* see import.h */
int import_mbox_field(const char *line, size_t n, uint32_t *flags)
{
	static const char *const dropped[] = {"Status", "X-Status", "X-Mozilla-Status",
	        "X-Keywords", "X-UID", "X-IMAP", "X-IMAPbase", "X-Mozilla-Status2"};
	static const uint32_t status[] = {MM_SEEN},
	                      xstatus[] = {MM_ANSWERED, MM_FLAGGED, MM_DRAFT, MM_DELETED};
	const char *colon = memchr(line, ':', n);
	size_t k = colon ? (size_t)(colon - line) : 0, i;
	for (i = 0; i < sizeof dropped / sizeof dropped[0]; i++) {
		if (k && strlen(dropped[i]) == k && rl_strncasecmp(line, dropped[i], k) == 0) {
			break;
		}
	}
	if (i == sizeof dropped / sizeof dropped[0]) {
		return 0;
	}
	const char *v = colon + 1;
	size_t vn = n - k - 1;
	while (vn && (*v == ' ' || *v == '\t')) {
		v++, vn--;
	}
	*flags |= i == 0   ? letters(v, vn, "R", status)
	          : i == 1 ? letters(v, vn, "AFTD", xstatus)
	          : i == 2 ? mozilla_flags(v, vn)
	                   : 0;
	return 1;
}

/* The flags after a Maildir name's last ":2," (NULL without one). */
static const char *maildir_info(const char *name)
{
	const char *info = NULL;
	for (const char *p = name; (p = strchr(p, '2')) != NULL; p++) {
		if (p > name && strchr(":;!", p[-1]) && p[1] == ',') {
			info = p + 2;
		}
	}
	return info;
}

/* see import.h */
uint32_t import_maildir_letters(const char *name)
{
	uint32_t kw = 0;
	for (const char *info = maildir_info(name); info && *info; info++) {
		kw |= *info >= 'a' && *info <= 'z' ? 1u << (*info - 'a') : 0;
	}
	return kw;
}

/* see import.h */
uint32_t import_maildir_flags(const char *name)
{
	const char *info = maildir_info(name);
	uint32_t fl = 0;
	for (; info && *info; info++) {
		for (size_t i = 0; i < sizeof maildir_letters / sizeof maildir_letters[0]; i++) {
			fl |= *info == maildir_letters[i].c ? maildir_letters[i].bit : 0;
		}
	}
	return fl;
}

/* see import.h */
void import_maildir_info(uint32_t flags, uint32_t letters, char sep, char out[40])
{
	size_t n = 0;
	out[n++] = sep;
	out[n++] = '2';
	out[n++] = ',';
	for (size_t i = 0; i < sizeof maildir_letters / sizeof maildir_letters[0]; i++) {
		if (flags & maildir_letters[i].bit) {
			out[n++] = maildir_letters[i].c;
		}
	}
	for (int i = 0; i < 26; i++) {
		if (letters & 1u << i) {
			out[n++] = (char)('a' + i);
		}
	}
	out[n] = '\0';
}

/* ---- the account and the progress of both commands ---- */

struct account {
	char domain[MM_DOMAIN_MAX + 1], user[MM_USER_MAX + 1];
};

static int account_arg(const char *arg, struct account *a)
{
	const char *at = strrchr(arg, '@');
	struct mm_account acc;
	int ok = at && (size_t)(at - arg) <= MM_USER_MAX && strlen(at + 1) <= MM_DOMAIN_MAX;
	if (ok) {
		memcpy(a->user, arg, (size_t)(at - arg));
		a->user[at - arg] = '\0';
		rl_strlcpy(a->domain, at + 1, sizeof a->domain);
		rl_lower(a->user);
		rl_lower(a->domain);
		ok = mm_account_get(a->domain, a->user, &acc) == 0 && acc.type == MM_MBOX;
	}
	if (!ok) {
		fprintf(stderr, "rumble: no such mailbox: %s\n", arg);
	}
	return ok ? 0 : -1;
}

/* A list of names, sorted by name_cmp. */
struct names {
	char **v;
	size_t n;
};

static void names_add(struct names *ns, const char *name)
{
	if ((ns->n & (ns->n - 1)) == 0) { /* 0, 1, 2, 4 ...: double */
		ns->v = xrealloc(ns->v, (ns->n ? ns->n * 2 : 1) * sizeof *ns->v);
	}
	ns->v[ns->n++] = xstrdup(name);
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		xfree(ns->v[i]);
	}
	xfree(ns->v);
	ns->v = NULL;
	ns->n = 0;
}

/* Maildir names start with their time: by it, then by the rest (after
 * "cur/" or "new/" in a folder's list of files). */
static int name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	x += strncmp(x, "cur/", 4) == 0 || strncmp(x, "new/", 4) == 0 ? 4 : 0;
	y += strncmp(y, "cur/", 4) == 0 || strncmp(y, "new/", 4) == 0 ? 4 : 0;
	long long tx = strtoll(x, NULL, 10), ty = strtoll(y, NULL, 10);
	return tx != ty ? (tx < ty ? -1 : 1) : strcmp(x, y);
}

static void names_sort(struct names *ns)
{
	if (ns->n > 1) {
		qsort(ns->v, ns->n, sizeof *ns->v, name_cmp);
	}
}

/* ---- the keys of a folder's messages ---- */

/* An open-addressing set of 64-bit keys (0 marks a free slot). */
struct keys {
	uint64_t *v;
	size_t cap, n;
};

static int keys_has(const struct keys *k, uint64_t key)
{
	for (size_t i = k->cap ? key & (k->cap - 1) : 0; k->cap && k->v[i];
	        i = (i + 1) & (k->cap - 1)) {
		if (k->v[i] == key) {
			return 1;
		}
	}
	return 0;
}

static void keys_add(struct keys *k, uint64_t key)
{
	if ((k->n + 1) * 2 > k->cap) {
		struct keys big = {xcalloc(k->cap ? k->cap * 2 : 256, sizeof(uint64_t)),
		        k->cap ? k->cap * 2 : 256, 0};
		for (size_t i = 0; i < k->cap; i++) {
			if (k->v[i]) {
				keys_add(&big, k->v[i]);
			}
		}
		xfree(k->v);
		*k = big;
	}
	size_t i = key & (k->cap - 1);
	while (k->v[i] && k->v[i] != key) {
		i = (i + 1) & (k->cap - 1);
	}
	k->n += !k->v[i];
	k->v[i] = key;
}

/* The key of a message: its header (CRLF lines, up to and with the blank
 * line, at most HDR_MAX bytes and a line) and its size as served. */
static uint64_t key_of(const char *hdr, size_t n, uint64_t size)
{
	struct mime_headers it;
	struct mime_header h;
	char id[1000], sz[24];
	size_t k = 0;
	mime_headers_init(&it, hdr, n < HDR_MAX ? n : HDR_MAX);
	while (k == 0 && mime_headers_next(&it, &h)) {
		if (h.name_len == 10 && rl_strncasecmp(h.name, "Message-ID", 10) == 0) {
			for (size_t i = 0; i < h.value_len && k < sizeof id; i++) {
				if (!strchr(" \t\r\n", h.value[i])) {
					id[k++] = h.value[i];
				}
			}
		}
	}
	crypto_sha256_ctx c;
	uint8_t d[32];
	uint64_t key = 0;
	n = n < HDR_MAX ? n : HDR_MAX; /* what both sides have of a longer header */
	crypto_sha256_init(&c);
	crypto_sha256_update(&c, k ? id : hdr, k ? k : n);
	snprintf(sz, sizeof sz, "\n%llu", (unsigned long long)size);
	crypto_sha256_update(&c, sz, strlen(sz));
	crypto_sha256_final(&c, d);
	for (int i = 0; i < 8; i++) {
		key = key << 8 | d[i];
	}
	return key ? key : 1;
}

/* The key of message i of f, read through the store. */
static uint64_t key_of_stored(struct mm_folder *f, uint32_t i, struct buf *hdr)
{
	const struct mm_msg *m = mm_folder_msg(f, i);
	uint64_t size = m ? m->size : 0;
	struct mm_reader *r = m ? mm_reader_open(f, i) : NULL;
	char line[4096];
	long n;
	int start = 1;
	buf_reset(hdr);
	while (r && hdr->len < HDR_MAX && (n = mm_reader_read_line(r, line, sizeof line)) > 0) {
		buf_append(hdr, line, (size_t)n);
		if (start && n == 2 && line[0] == '\r') {
			break; /* the blank line */
		}
		start = line[n - 1] == '\n';
	}
	mm_reader_close(r);
	return r ? key_of(hdr->data, hdr->len, size) : 0;
}

/* ---- import: the target ---- */

struct import {
	struct account a;
	char spdir[1100];
	char folder[MM_FOLDER_MAX + 1];
	struct mm_folder *f; /* the folder written to now */
	struct keys keys;    /* the keys of its messages */
	char *letters[26];   /* the Maildir's dovecot-keywords: letter i's keyword */
	unsigned unsynced;
	struct progress pr;
	unsigned long imported, skipped, failed;
	int folders;
};

static void target_close(struct import *im)
{
	if (im->f) {
		if (im->unsynced && mm_folder_sync(im->f) != 0) {
			fprintf(stderr, "rumble: %s: cannot sync the folder\n", im->folder);
			im->failed += im->unsynced;
		}
		mm_folder_close(im->f);
		im->f = NULL;
	}
	xfree(im->keys.v);
	memset(&im->keys, 0, sizeof im->keys);
	im->unsynced = 0;
}

/* Makes folder the target (created when missing) and reads its keys. */
static int target_open(struct import *im, const char *folder)
{
	target_close(im);
	snprintf(im->folder, sizeof im->folder, "%s", folder);
	if (mm_folder_open(im->a.domain, im->a.user, folder, 1, &im->f) != 0) {
		im->f = NULL;
		fprintf(stderr, "rumble: cannot open the folder %s\n", folder);
		im->failed++;
		return -1;
	}
	struct buf hdr;
	buf_init(&hdr);
	mm_folder_refresh(im->f);
	uint32_t n = mm_folder_count(im->f);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t k = key_of_stored(im->f, i, &hdr);
		if (k) {
			keys_add(&im->keys, k);
		}
	}
	buf_free(&hdr);
	im->folders++;
	return 0;
}

/* ---- import: one message ---- */

/* A message being read: its header kept (for the key and the dropped
 * fields), everything spooled in the store's wire form. */
struct msg {
	struct spool sp;
	struct buf hdr;
	int in_hdr, drop, mbox, eol;
	uint32_t flags, keywords;
	int64_t date;
	char from[SENDER_MAX + 1];
	char xkeywords[1000]; /* an mbox's X-Keywords (Dovecot): names, first line */
};

static void msg_start(struct msg *m, struct import *im, int mbox)
{
	spool_init(&m->sp, im->spdir);
	buf_reset(&m->hdr);
	m->in_hdr = 1;
	m->drop = 0;
	m->mbox = mbox;
	m->eol = 1;
	m->flags = m->keywords = 0;
	m->date = 0;
	m->from[0] = '\0';
	m->xkeywords[0] = '\0';
}

/* The bit of keyword name in folder f (made there when new), 0 for a name
 * IMAP would not take (an atom: no wildcards, brackets or backslash). */
static uint32_t keyword_bit(struct mm_folder *f, const char *name)
{
	int slot =
	        strpbrk(name, "[]*%\\") || strlen(name) > 100 ? -1 : mm_folder_keyword(f, name, 1);
	return slot >= 0 ? 1u << slot : 0;
}

/* The keywords of an X-Keywords value: names between blanks or commas. */
static uint32_t xkeywords_bits(struct mm_folder *f, char *list)
{
	uint32_t kw = 0;
	char *save = NULL;
	for (char *w = os_strtok(list, " \t,", &save); w; w = os_strtok(NULL, " \t,", &save)) {
		kw |= keyword_bit(f, w);
	}
	return kw;
}

/* Writes a piece of a line, its line end made CRLF, to the header or the
 * spool. */
static void msg_out(struct msg *m, const char *p, size_t n)
{
	m->eol = n && p[n - 1] == '\n';
	size_t k = n - (size_t)m->eol;
	k -= m->eol && k && p[k - 1] == '\r';
	if (m->in_hdr) {
		buf_append(&m->hdr, p, k);
		if (m->eol) {
			buf_append(&m->hdr, "\r\n", 2);
		}
	} else {
		spool_write(&m->sp, p, k);
		if (m->eol) {
			spool_write(&m->sp, "\r\n", 2);
		}
	}
}

static void header_end(struct msg *m)
{
	m->in_hdr = 0;
	spool_write(&m->sp, m->hdr.data, m->hdr.len);
}

/* Keeps an X-Keywords value (its first line, cut to the buffer). */
static void keep_xkeywords(struct msg *m, const char *v, size_t n)
{
	n = n < sizeof m->xkeywords - 1 ? n : sizeof m->xkeywords - 1;
	memcpy(m->xkeywords, v, n);
	m->xkeywords[n] = '\0';
	m->xkeywords[strcspn(m->xkeywords, "\r\n")] = '\0';
}

/* A piece of a line; start: it begins the line. */
static void msg_piece(struct msg *m, const char *p, size_t n, int start)
{
	if (!m->in_hdr) {
		msg_out(m, p, n);
		return;
	}
	int blank = start && ((n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n'));
	if (start && n && p[0] != ' ' && p[0] != '\t') {
		m->drop = m->mbox && import_mbox_field(p, n, &m->flags);
		if (m->drop && n > 11 && rl_strncasecmp(p, "X-Keywords:", 11) == 0) {
			keep_xkeywords(m, p + 11, n - 11);
		}
	}
	if (!m->drop || blank) {
		msg_out(m, p, n);
	}
	if (blank || m->hdr.len >= HDR_MAX) {
		header_end(m);
	}
}

/* Ends the message and appends it unless it is a duplicate. */
static void msg_end(struct msg *m, struct import *im)
{
	if (!m->eol) {
		msg_out(m, "\n", 1); /* the line end the store would add */
	}
	if (m->in_hdr) {
		header_end(m);
	}
	uint64_t key = key_of(m->hdr.data, m->hdr.len, m->sp.len);
	uint32_t uid;
	char from[MM_USER_MAX + MM_DOMAIN_MAX + 2];
	snprintf(from, sizeof from, "%s@%s", im->a.user, im->a.domain);
	if (m->sp.len <= 2 || !im->f) {
		spool_free(&m->sp); /* nothing in it, or no folder to put it in */
		return;
	}
	m->keywords |= m->xkeywords[0] ? xkeywords_bits(im->f, m->xkeywords) : 0;
	if (keys_has(&im->keys, key)) {
		im->skipped++;
	} else if (m->sp.failed || mm_folder_append(im->f, &m->sp, m->from[0] ? m->from : from,
	                                   m->date, m->flags, 0, &uid) != 0) {
		im->failed++;
	} else if (m->keywords &&
	           mm_folder_store(im->f, &uid, 1, MM_STORE_ADD, 0, m->keywords) < 0) {
		im->failed++; /* the message is in, without its keywords */
	} else {
		keys_add(&im->keys, key);
		im->imported++;
		if (++im->unsynced >= SYNC_EVERY) {
			im->failed += mm_folder_sync(im->f) != 0 ? im->unsynced : 0;
			im->unsynced = 0;
		}
	}
	spool_free(&m->sp);
}

/* ---- import: reading lines ---- */

/* Lines of a file, a piece at a time: a whole line with its LF, or
 * PIECE_MAX bytes of a longer one (never ending between a CR and its LF). */
struct reader {
	FILE *fp;
	char *buf;
	size_t len, pos;
	int eof;
};

static const char *rd_piece(struct reader *r, size_t *n)
{
	char *lf = memchr(r->buf + r->pos, '\n', r->len - r->pos);
	if (!lf && !r->eof) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
		size_t got = fread(r->buf + r->len, 1, PIECE_MAX - r->len, r->fp);
		r->eof = got == 0;
		r->len += got;
		lf = memchr(r->buf, '\n', r->len);
	}
	if (r->pos == r->len) {
		return NULL;
	}
	size_t k = lf ? (size_t)(lf - (r->buf + r->pos)) + 1 : r->len - r->pos;
	if (!lf && k > 1 && r->buf[r->pos + k - 1] == '\r') {
		k--; /* the CR goes with its LF in the next piece */
	}
	const char *p = r->buf + r->pos;
	r->pos += k;
	*n = k;
	return p;
}

static int is_blank(const char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
}

/* ^>+From : mboxrd quoted one level more. */
static int quoted_from(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] == '>') {
		i++;
	}
	return i > 0 && n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* The sender and date of a From_ line. */
static void from_line(struct msg *m, const char *p, size_t n)
{
	size_t k = 0;
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) {
		n--;
	}
	for (size_t i = 5; i < n && p[i] != ' ' && k < SENDER_MAX; i++) {
		m->from[k++] = p[i];
	}
	m->from[k] = '\0';
	m->date = mm_from_line_date(p, n);
	m->date = m->date < 0 ? 0 : m->date;
}

/* ---- import: an mbox file ---- */

struct mbox_state {
	struct msg m;
	int have, held, prev_blank, start, skip;
};

static void mbox_line(struct mbox_state *s, struct import *im, const char *p, size_t n)
{
	int eol = p[n - 1] == '\n';
	if (s->start && s->prev_blank && n >= 5 && memcmp(p, "From ", 5) == 0) {
		if (s->have) {
			msg_end(&s->m, im); /* a held blank line was the separator */
		}
		msg_start(&s->m, im, 1);
		from_line(&s->m, p, n);
		s->have = 1;
		s->held = s->prev_blank = 0;
		s->skip = !eol;
	} else if (s->skip || !s->have) {
		s->skip = !eol && s->skip;
	} else if (s->start && is_blank(p, n) && !s->m.in_hdr) {
		if (s->held) {
			msg_piece(&s->m, "\n", 1, 1);
		}
		s->held = s->prev_blank = 1;
	} else {
		if (s->held) {
			msg_piece(&s->m, "\n", 1, 1);
			s->held = 0;
		}
		int q = s->start && quoted_from(p, n);
		msg_piece(&s->m, p + q, n - (size_t)q, s->start);
		s->prev_blank = s->start && is_blank(p, n);
	}
	s->start = eol;
}

static int import_mbox(struct import *im, FILE *fp, uint64_t size, const char *folder)
{
	struct reader rd = {fp, xmalloc(PIECE_MAX), 0, 0, 0};
	struct mbox_state s;
	const char *p;
	size_t n;
	memset(&s, 0, sizeof s);
	buf_init(&s.m.hdr);
	s.start = s.prev_blank = 1;
	progress_start(&im->pr, "importing", size, 1);
	int rc = target_open(im, folder);
	while (rc == 0 && (p = rd_piece(&rd, &n)) != NULL) {
		mbox_line(&s, im, p, n);
		progress_add(&im->pr, n);
	}
	if (s.have) {
		msg_end(&s.m, im);
	}
	if (ferror(fp)) {
		fprintf(stderr, "rumble: cannot read the mbox: %s\n", os_strerror());
		rc = -1;
	}
	progress_end(&im->pr);
	buf_free(&s.m.hdr);
	xfree(rd.buf);
	return rc;
}

/* ---- import: Maildir and Maildir++ ---- */

static int collect(const char *name, int is_dir, void *arg)
{
	(void)is_dir;
	if (name[0] != '.') {
		names_add(arg, name);
	}
	return 0;
}

static int collect_folders(const char *name, int is_dir, void *arg)
{
	if (is_dir && name[0] == '.' && name[1] && strcmp(name, "..") != 0) {
		names_add(arg, name);
	}
	return 0;
}

static int is_maildir(const char *dir)
{
	char path[1200];
	struct os_stat st;
	snprintf(path, sizeof path, "%s/cur", dir);
	if (os_stat(path, &st) == 0 && st.is_dir) {
		return 1;
	}
	snprintf(path, sizeof path, "%s/new", dir);
	return os_stat(path, &st) == 0 && st.is_dir;
}

static void maildir_file(
        struct import *im, struct msg *m, const char *path, const char *name, int is_new)
{
	struct os_stat st;
	FILE *fp = os_stat(path, &st) == 0 && !st.is_dir ? os_fopen(path, "rb") : NULL;
	if (!fp) {
		fprintf(stderr, "rumble: cannot read %s\n", path);
		im->failed++;
		return;
	}
	struct reader rd = {fp, xmalloc(PIECE_MAX), 0, 0, 0};
	const char *p;
	size_t n;
	int start = 1;
	msg_start(m, im, 0);
	m->flags = is_new ? 0 : import_maildir_flags(name);
	uint32_t letters = is_new ? 0 : import_maildir_letters(name);
	for (int i = 0; i < 26; i++) {
		m->keywords |= letters & 1u << i && im->letters[i]
		                       ? keyword_bit(im->f, im->letters[i])
		                       : 0;
	}
	m->date = st.mtime > 0 ? st.mtime : strtoll(name, NULL, 10);
	while ((p = rd_piece(&rd, &n)) != NULL) {
		msg_piece(m, p, n, start);
		start = p[n - 1] == '\n';
	}
	if (ferror(fp)) {
		fprintf(stderr, "rumble: cannot read %s\n", path);
		spool_free(&m->sp);
		im->failed++;
	} else {
		msg_end(m, im);
	}
	fclose(fp);
	xfree(rd.buf);
}

static void letters_free(struct import *im)
{
	for (int i = 0; i < 26; i++) {
		xfree(im->letters[i]);
	}
}

/* Dovecot's dir/dovecot-keywords: "N name" lines, N the letter 'a' + N. */
static void letters_read(struct import *im, const char *dir)
{
	char path[1300], line[256], name[128];
	int i;
	snprintf(path, sizeof path, "%s/dovecot-keywords", dir);
	FILE *fp = os_fopen(path, "rb");
	while (fp && fgets(line, sizeof line, fp)) {
		/* a keyword as IMAP takes it: an atom, no wildcards or brackets */
		if (sscanf(line, "%d %127s", &i, name) == 2 && i >= 0 && i < 26 &&
		        !im->letters[i]) {
			im->letters[i] = xstrdup(name);
		}
	}
	if (fp) {
		fclose(fp);
	}
}

/* The messages of the Maildir dir (cur/ and new/, in the order of their
 * names' times) into folder. */
static void maildir_folder(struct import *im, const char *dir, const char *folder)
{
	char sub[1200], path[1500];
	struct names files = {NULL, 0};
	struct msg m;
	if (target_open(im, folder) != 0) {
		return;
	}
	for (int s = 0; s < 2; s++) {
		struct names one = {NULL, 0};
		snprintf(sub, sizeof sub, "%s/%s", dir, s ? "new" : "cur");
		os_dir_walk(sub, collect, &one);
		for (size_t i = 0; i < one.n; i++) {
			snprintf(path, sizeof path, "%s/%s", s ? "new" : "cur", one.v[i]);
			names_add(&files, path);
		}
		names_free(&one);
	}
	names_sort(&files);
	letters_read(im, dir);
	buf_init(&m.hdr);
	for (size_t i = 0; i < files.n; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files.v[i]);
		maildir_file(im, &m, path, files.v[i] + 4, files.v[i][0] == 'n');
		progress_add(&im->pr, 1);
	}
	buf_free(&m.hdr);
	names_free(&files);
	letters_free(im);
}

static int count_files(const char *name, int is_dir, void *arg)
{
	*(uint64_t *)arg += name[0] != '.' && !is_dir;
	return 0;
}

static uint64_t maildir_count(const char *dir)
{
	char sub[1200];
	uint64_t n = 0;
	snprintf(sub, sizeof sub, "%s/cur", dir);
	os_dir_walk(sub, count_files, &n);
	snprintf(sub, sizeof sub, "%s/new", dir);
	os_dir_walk(sub, count_files, &n);
	return n;
}

/* The Maildir at root as INBOX, and its .NAME Maildirs as folders. */
static int import_maildirs(struct import *im, const char *root)
{
	struct names dirs = {NULL, 0};
	char path[1200];
	uint64_t total = is_maildir(root) ? maildir_count(root) : 0;
	int bad = 0;
	os_dir_walk(root, collect_folders, &dirs);
	names_sort(&dirs);
	for (size_t i = 0; i < dirs.n; i++) {
		snprintf(path, sizeof path, "%s/%s", root, dirs.v[i]);
		total += is_maildir(path) ? maildir_count(path) : 0;
	}
	progress_start(&im->pr, "importing", total, 0);
	if (is_maildir(root)) {
		maildir_folder(im, root, "INBOX");
	}
	for (size_t i = 0; i < dirs.n; i++) {
		const char *name = dirs.v[i] + 1;
		snprintf(path, sizeof path, "%s/%s", root, dirs.v[i]);
		if (!is_maildir(path)) {
			continue;
		}
		if (!mm_valid_folder(name)) {
			progress_end(&im->pr);
			fprintf(stderr, "rumble: %s: %s\n", name, "not a folder name Rumble takes");
			bad = 1;
			continue;
		}
		maildir_folder(im, path, rl_strcasecmp(name, "INBOX") == 0 ? "INBOX" : name);
	}
	progress_end(&im->pr);
	names_free(&dirs);
	return bad;
}

/* The mbox file at path (size bytes) into folder. */
static int import_file(struct import *im, const char *path, uint64_t size, const char *folder)
{
	FILE *fp = os_fopen(path, "rb");
	char head[5];
	if (!fp) {
		fprintf(stderr, "rumble: %s: %s\n", path, os_strerror());
		return -1;
	}
	int rc = fread(head, 1, 5, fp) == 5 && memcmp(head, "From ", 5) == 0 ? 0 : -1;
	if (rc != 0) {
		fprintf(stderr, "rumble: %s: %s\n", path, "not an mbox file");
	} else {
		rewind(fp);
		rc = import_mbox(im, fp, size, folder);
	}
	fclose(fp);
	return rc;
}

/* see admin.h */
int cmd_import(int argc, char **argv)
{
	struct import im;
	struct os_stat st;
	int rc;
	memset(&im, 0, sizeof im);
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "rumble: usage: rumble import USER@DOMAIN MAILDIR|MBOX [FOLDER]\n");
		return 2;
	}
	if (account_arg(argv[0], &im.a) != 0) {
		return 1;
	}
	if (os_stat(argv[1], &st) != 0) {
		fprintf(stderr, "rumble: %s: %s\n", argv[1], os_strerror());
		return 1;
	}
	if (argc == 3 && (st.is_dir || !mm_valid_folder(argv[2]))) {
		fprintf(stderr, "rumble: %s: %s\n", argv[2],
		        st.is_dir ? "a Maildir brings its own folders"
		                  : "not a folder name Rumble takes");
		return 1;
	}
	snprintf(im.spdir, sizeof im.spdir, "%s/queue", mm_storage());
	if (!st.is_dir) {
		int inbox = argc == 2 || rl_strcasecmp(argv[2], "INBOX") == 0;
		rc = import_file(&im, argv[1], st.size, inbox ? "INBOX" : argv[2]);
	} else if ((rc = import_maildirs(&im, argv[1])) == 0 && im.folders == 0) {
		fprintf(stderr, "rumble: %s: %s\n", argv[1], "not a Maildir (no cur/ or new/)");
		return 1;
	}
	if (rc != 0 && im.imported + im.skipped == 0 && !im.f) {
		return 1;
	}
	target_close(&im);
	printf("imported %lu, skipped %lu duplicates, %d folders", im.imported, im.skipped,
	        im.folders);
	if (im.failed) {
		printf(", %lu failed", im.failed);
	}
	printf("\n");
	if (quota_exceeded(im.a.domain, im.a.user, 0, 0)) {
		printf("%s@%s is over its quota now\n", im.a.user, im.a.domain);
	}
	return rc != 0 || im.failed ? 1 : 0;
}

/* ---- export ---- */

struct exporting {
	struct account a;
	const char *dir;
	char sep;          /* the info separator: ':', or ';' where names cannot have ':' */
	int8_t letter[32]; /* the folder's keyword slot i: letter 'a' + letter[i], or -1 */
	struct progress pr;
	unsigned long exported, gone, failed;
	int folders;
};

/* CRLF to LF, a chunk at a time; *cr: a CR ended the last chunk. */
static size_t to_lf(char *p, size_t n, int *cr, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (*cr && p[i] != '\n') {
			out[k++] = '\r';
		}
		*cr = p[i] == '\r';
		if (!*cr) {
			out[k++] = p[i];
		}
	}
	return k;
}

/* Writes message m of f to dir/tmp, then moves it to dir/cur. */
static int export_msg(
        struct exporting *ex, struct mm_folder *f, const struct mm_msg *m, const char *dir)
{
	char name[128], info[40], tmp[1500], cur[1500], chunk[16384], out[16384];
	struct mm_reader *r = mm_reader_open_uid(f, m->uid);
	if (!r) {
		ex->gone++;
		return 0;
	}
	uint32_t letters = 0;
	for (int i = 0; i < 32; i++) {
		letters |= m->keywords & 1u << i && ex->letter[i] >= 0 ? 1u << ex->letter[i] : 0;
	}
	import_maildir_info(m->flags, letters, ex->sep, info);
	snprintf(name, sizeof name, "%lld.U%uV%u.rumble", (long long)m->date, m->uid,
	        mm_folder_uidvalidity(f));
	snprintf(tmp, sizeof tmp, "%s/tmp/%s", dir, name);
	snprintf(cur, sizeof cur, "%s/cur/%s%s", dir, name, info);
	FILE *fp = os_fopen(tmp, "wb");
	long n = 0;
	int cr = 0, rc = fp ? 0 : -1;
	while (rc == 0 && (n = mm_reader_read(r, chunk, sizeof chunk)) > 0) {
		size_t k = to_lf(chunk, (size_t)n, &cr, out);
		rc = fwrite(out, 1, k, fp) == k ? 0 : -1;
	}
	mm_reader_close(r);
	if (fp) {
		rc = rc == 0 && n == 0 && (!cr || fputc('\r', fp) != EOF) &&
		                     os_set_mtime(fp, m->date) == 0
		             ? 0
		             : -1;
		rc = fclose(fp) != 0 ? -1 : rc;
	}
	if (rc == 0 && os_rename_atomic(tmp, cur) == 0) {
		ex->exported++;
		return 0;
	}
	os_remove(tmp);
	ex->gone += n < 0; /* expunged and compacted away while read */
	ex->failed += n >= 0;
	return n < 0 ? 0 : -1;
}

/* The Maildir of folder: DIR itself for INBOX, DIR/.NAME otherwise. */
static int export_dirs(struct exporting *ex, const char *folder, char *dir, size_t len)
{
	static const char *const subs[] = {"cur", "new", "tmp"};
	char sub[1500];
	int inbox = strcmp(folder, "INBOX") == 0;
	snprintf(dir, len, inbox ? "%s" : "%s/.%s", ex->dir, folder);
	for (int i = 0; i < 3; i++) {
		snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
		if (os_mkdir_p(sub) != 0) {
			fprintf(stderr, "rumble: cannot make %s: %s\n", sub, os_strerror());
			return -1;
		}
	}
	snprintf(sub, sizeof sub, "%s/maildirfolder", dir);
	FILE *fp = inbox ? NULL : os_fopen(sub, "wb"); /* Maildir++ marks a folder so */
	if (fp) {
		fclose(fp);
	}
	return 0;
}

/* dir/dovecot-keywords for f's keywords (the first 26: Dovecot's letters). */
static void export_letters(struct exporting *ex, struct mm_folder *f, const char *dir)
{
	char path[1400];
	int n = 0;
	FILE *fp = NULL;
	memset(ex->letter, -1, sizeof ex->letter);
	for (int i = 0; i < 32 && n < 26; i++) {
		const char *name = mm_folder_keyword_name(f, i);
		if (!name) {
			continue;
		}
		snprintf(path, sizeof path, "%s/dovecot-keywords", dir);
		fp = fp ? fp : os_fopen(path, "wb");
		if (fp) {
			fprintf(fp, "%d %s\n", n, name);
		}
		ex->letter[i] = (int8_t)n++;
	}
	if (fp) {
		fclose(fp);
	}
}

static void export_folder(struct exporting *ex, const char *folder)
{
	char dir[1300];
	struct mm_folder *f;
	if (mm_folder_open(ex->a.domain, ex->a.user, folder, !strcmp(folder, "INBOX"), &f) != 0) {
		fprintf(stderr, "rumble: cannot open the folder %s\n", folder);
		ex->failed++;
		return;
	}
	if (export_dirs(ex, folder, dir, sizeof dir) != 0) {
		ex->failed++;
		mm_folder_close(f);
		return;
	}
	mm_folder_refresh(f); /* the list as it is now, read under the folder's lock */
	export_letters(ex, f, dir);
	uint32_t n = mm_folder_count(f), k = 0;
	struct mm_msg *list = xcalloc(n ? n : 1, sizeof *list);
	for (const struct mm_msg *m; k < n && (m = mm_folder_msg(f, k)) != NULL; k++) {
		list[k] = *m;
	}
	for (uint32_t i = 0; i < k; i++) {
		export_msg(ex, f, &list[i], dir);
		progress_add(&ex->pr, 1);
	}
	xfree(list);
	ex->folders++;
	mm_folder_close(f);
}

static int list_folder(const char *name, void *arg)
{
	names_add(arg, name);
	return 0;
}

static int count_entry(const char *name, int is_dir, void *arg)
{
	(void)name, (void)is_dir;
	++*(int *)arg;
	return 0;
}

/* see admin.h */
int cmd_export(int argc, char **argv)
{
	struct exporting ex;
	struct names folders = {NULL, 0};
	int entries = 0;
	uint64_t total = 0;
	memset(&ex, 0, sizeof ex);
	if (argc != 2) {
		fprintf(stderr, "rumble: usage: rumble export USER@DOMAIN DIR\n");
		return 2;
	}
	if (account_arg(argv[0], &ex.a) != 0) {
		return 1;
	}
	ex.dir = argv[1];
	/* ':' is the Maildir info separator; Windows file names cannot hold
	 * it, and Maildir tools there (mbsync) use ';', which import reads */
	ex.sep = strcmp(os_name(), "windows") == 0 ? ';' : ':';
	if (os_mkdir_p(ex.dir) != 0 || os_dir_walk(ex.dir, count_entry, &entries) != 0 || entries) {
		fprintf(stderr, "rumble: %s: %s\n", ex.dir, entries ? "not empty" : os_strerror());
		return 1;
	}
	mm_folder_list(ex.a.domain, ex.a.user, list_folder, &folders);
	for (size_t i = 0; i < folders.n; i++) {
		struct mm_folder *f;
		if (mm_folder_open(ex.a.domain, ex.a.user, folders.v[i],
		            !strcmp(folders.v[i], "INBOX"), &f) == 0) {
			total += mm_folder_count(f);
			mm_folder_close(f);
		}
	}
	progress_start(&ex.pr, "exporting", total, 0);
	for (size_t i = 0; i < folders.n; i++) {
		export_folder(&ex, folders.v[i]);
	}
	progress_end(&ex.pr);
	names_free(&folders);
	printf("exported %lu, %d folders", ex.exported, ex.folders);
	if (ex.gone) {
		printf(", %lu expunged while exporting", ex.gone);
	}
	if (ex.failed) {
		printf(", %lu failed", ex.failed);
	}
	printf("\n");
	return ex.failed ? 1 : 0;
}
