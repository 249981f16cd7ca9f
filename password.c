/*
 * password.c - what a new password must be: MinPasswordLength characters
 * (10 by default) and not one of the 10,000 most common passwords, in any
 * case. Checked where a password is set (rumble user add/passwd, the web
 * admin); logins with an existing password are never checked, so raising
 * the bar locks nobody out.
 *
 * The list is made at build time (tools/passwords.py, from Debian's
 * python3-zxcvbn) and compiled in by tools/embed.c as one blob: lower-case
 * words sorted by byte, front coded in blocks of 16 (see tools/passwords.py;
 * 43 KB instead of 79 as plain lines); a binary search over the blocks'
 * first words, then one block read, in place, nothing allocated.
 */
#include <string.h>

#include "passwords_list.h" /* static const char common_passwords[] */
#include "rumble.h"

#define COMMON_MAX 64 /* no listed password is longer */

/* key against the line p[0..n): <0, 0, >0 as strcmp. */
static int line_cmp(const char *key, size_t k, const char *p, size_t n)
{
	int r = memcmp(key, p, k < n ? k : n);
	return r ? r : (k > n) - (k < n);
}

#define BLOCK_MARK 0xff /* starts a block; 0x80 + n starts a word sharing n bytes */

/* The first block at or after p and before end; end when there is none. */
static size_t next_block(const char *b, size_t p, size_t end)
{
	const char *m = p < end ? memchr(b + p, BLOCK_MARK, end - p) : NULL;
	return m ? (size_t)(m - b) : end;
}

/* Where the word's bytes from p end: at the next byte over 0x7f, or end. */
static size_t word_end(const char *b, size_t p, size_t end)
{
	while (p < end && !((unsigned char)b[p] & 0x80)) {
		p++;
	}
	return p;
}

/* key against the first word of the block at b[p]. */
static int head_cmp(const char *key, size_t k, const char *b, size_t p, size_t len)
{
	return line_cmp(key, k, b + p + 1, word_end(b, p + 1, len) - p - 1);
}

/* 1 when key is one of the words of the block b[p..end). */
static int in_block(const char *b, size_t p, size_t end, const char *key, size_t k)
{
	char word[COMMON_MAX];
	size_t n = 0;
	while (p < end) {
		unsigned c = (unsigned char)b[p++];
		size_t pre = c == BLOCK_MARK ? 0 : c - 0x80, e = word_end(b, p, end);
		if (c < 0x80 || pre > n || pre + (e - p) > sizeof word) {
			return 0; /* malformed: not found */
		}
		memcpy(word + pre, b + p, e - p);
		n = pre + (e - p);
		if (line_cmp(key, k, word, n) == 0) {
			return 1;
		}
		p = e;
	}
	return 0;
}

/* see rumble.h: binary search over the blocks' first words, then the
 * block read from its start */
int password_in_list(const char *blob, size_t len, const char *key)
{
	size_t k = strlen(key), lo = next_block(blob, 0, len), hi = len;
	if (lo >= len || head_cmp(key, k, blob, lo, len) < 0) {
		return 0;
	}
	for (;;) { /* lo's first word <= key < hi's (or hi = len) */
		size_t mid = next_block(blob, lo + (hi - lo) / 2, hi);
		if (mid == lo || mid >= hi) {
			mid = next_block(blob, lo + 1, hi);
		}
		if (mid >= hi) {
			return in_block(blob, lo, hi, key, k);
		}
		if (head_cmp(key, k, blob, mid, len) < 0) {
			hi = mid;
		} else {
			lo = mid;
		}
	}
}

/* see rumble.h */
int password_common(const char *pw)
{
	char low[COMMON_MAX + 1];
	if (rl_strlcpy(low, pw, sizeof low) >= sizeof low) {
		return 0;
	}
	rl_lower(low);
	return password_in_list(common_passwords, sizeof common_passwords - 1, low);
}

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		n += ((unsigned char)*s & 0xc0) != 0x80;
	}
	return n;
}

/* see rumble.h */
int password_check(const char *pw, char *why, size_t len)
{
	if (conf.min_password_length == 0) {
		return 0; /* MinPasswordLength 0: no checks (tests) */
	}
	if (chars(pw) < (size_t)conf.min_password_length) {
		snprintf(why, len, "the password is too short: at least %d characters",
		        conf.min_password_length);
		return -1;
	}
	if (password_common(pw)) {
		snprintf(why, len, "the password is one of the 10,000 most common: choose another");
		return -1;
	}
	return 0;
}
