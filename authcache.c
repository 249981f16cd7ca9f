/*
 * authcache.c - successful logins remembered for AuthCacheTime seconds,
 * so that a mail client that logs in again (they do, all day, with
 * several connections each) is not checked with PBKDF2 every time: 75,000
 * rounds of HMAC-SHA-256 are ~35 ms of CPU on a PC and ten times that on
 * a router. As Dovecot's auth cache:
 *
 *  - only a success is kept; a failed login is never cached, so a wrong
 *    password always costs the full check;
 *  - an entry is SHA-256 of a secret made at start, the login name, the
 *    stored hash and the password: no use outside this process, and a
 *    changed password (a new salt, a new stored hash) no longer matches
 *    it, so the next login checks the new one;
 *  - a fixed table, one slot per login name (a name that lands on a taken
 *    slot replaces its entry): its memory never grows.
 */
#include <string.h>

#include "rumble.h"

#define AUTH_CACHE_SLOTS 1024

struct entry {
	uint8_t digest[32];
	int64_t expires; /* os_now_ms(); 0 = empty */
};

static struct entry slots[AUTH_CACHE_SLOTS];
static uint8_t secret[32];
static int have_secret;
static os_mutex *mu;

/* FNV-1a of the name: which slot it uses. */
static size_t slot_of(const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h = (h ^ *p) * 16777619u;
	}
	return h % AUTH_CACHE_SLOTS;
}

/* The entry's digest of name, stored and password; -1 without a secret. */
static int digest(const char *name, const char *stored, const char *password, uint8_t out[32])
{
	if (!have_secret) {
		if (os_random(secret, sizeof secret) != 0) {
			return -1;
		}
		have_secret = 1;
	}
	crypto_sha256_ctx c;
	crypto_sha256_init(&c);
	crypto_sha256_update(&c, secret, sizeof secret);
	crypto_sha256_update(&c, name, strlen(name) + 1); /* with its NUL: a separator */
	crypto_sha256_update(&c, stored, strlen(stored) + 1);
	crypto_sha256_update(&c, password, strlen(password));
	crypto_sha256_final(&c, out);
	return 0;
}

/* see rumble.h */
int auth_cache_hit(const char *name, const char *stored, const char *password)
{
	uint8_t d[32];
	int hit = 0;
	if (conf.auth_cache_time <= 0) {
		return 0;
	}
	os_mutex_lock(rl_mutex_once(&mu));
	struct entry *e = &slots[slot_of(name)];
	if (e->expires > os_now_ms() && digest(name, stored, password, d) == 0) {
		hit = crypto_equal(d, e->digest, sizeof d);
	}
	os_mutex_unlock(mu);
	crypto_wipe(d, sizeof d);
	return hit;
}

/* see rumble.h */
void auth_cache_add(const char *name, const char *stored, const char *password)
{
	if (conf.auth_cache_time <= 0) {
		return;
	}
	os_mutex_lock(rl_mutex_once(&mu));
	struct entry *e = &slots[slot_of(name)];
	if (digest(name, stored, password, e->digest) == 0) {
		e->expires = os_now_ms() + (int64_t)conf.auth_cache_time * 1000;
	}
	os_mutex_unlock(mu);
}

/* see rumble.h */
void auth_cache_clear(void)
{
	os_mutex_lock(rl_mutex_once(&mu));
	crypto_wipe(slots, sizeof slots);
	os_mutex_unlock(mu);
}
