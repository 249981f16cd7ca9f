/*
 * password.c - what a new password must be: MinPasswordLength characters
 * (10 by default) and not one of the 10,000 most common passwords, in any
 * case. Checked where a password is set (rumble user add/passwd, the web
 * admin); logins with an existing password are never checked, so raising
 * the bar locks nobody out.
 *
 * The list is made at build time (tools/passwords.py, from Debian's
 * python3-zxcvbn) and compiled in by tools/embed.c as one blob: lower-case
 * lines sorted by byte, which a binary search reads in place (~79 KB, no
 * index, nothing allocated).
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

/* see rumble.h */
int password_in_list(const char *blob, size_t len, const char *key)
{
	size_t k = strlen(key), lo = 0, hi = len; /* [lo, hi) is whole lines */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		while (mid > lo && blob[mid - 1] != '\n') {
			mid--; /* the start of the line mid is in */
		}
		const char *end = memchr(blob + mid, '\n', hi - mid);
		size_t n = end ? (size_t)(end - (blob + mid)) : hi - mid;
		int c = line_cmp(key, k, blob + mid, n);
		if (c == 0) {
			return 1;
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + n + 1;
		}
	}
	return 0;
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
