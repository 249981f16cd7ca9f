/*
 * unit.h - the C unit tests' little framework. Each tests/test_*.c defines
 * one tests_<module>() that calls RUN() for every test; tests are named as
 * sentences ("config rejects a bad port"). unit.c calls them all and prints
 * "N passed, N failed".
 */
#ifndef RUMBLE_UNIT_H
#define RUMBLE_UNIT_H

#include <string.h>

void unit_run(const char *name, void (*fn)(void));
void unit_fail(const char *file, int line, const char *what);
/* A new empty folder for this test, removed at exit. */
const char *unit_tmpdir(void);

/* A lua_Alloc that refuses to grow past limit bytes, for tests of
 * failing allocations (ud is a struct unit_cap). */
struct unit_cap {
	size_t used, limit;
};
void *unit_cap_alloc(void *ud, void *p, size_t osize, size_t nsize);

#define RUN(fn, name) unit_run(name, fn)
#define ASSERT(c) \
	do { \
		if (!(c)) { \
			unit_fail(__FILE__, __LINE__, #c); \
			return; \
		} \
	} while (0)
#define ASSERT_EQ(a, b) \
	do { \
		long long a_ = (long long)(a), b_ = (long long)(b); \
		if (a_ != b_) { \
			char m_[256]; \
			snprintf(m_, sizeof m_, "%s == %s (%lld != %lld)", #a, #b, a_, b_); \
			unit_fail(__FILE__, __LINE__, m_); \
			return; \
		} \
	} while (0)
#define ASSERT_STR(a, b) \
	do { \
		const char *a_ = (a), *b_ = (b); \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
			char m_[512]; \
			snprintf(m_, sizeof m_, "%s == \"%.200s\" (got \"%.200s\")", #a, b_ ? b_ : "(null)", \
				a_ ? a_ : "(null)"); \
			unit_fail(__FILE__, __LINE__, m_); \
			return; \
		} \
	} while (0)

void tests_config(void);
void tests_log(void);
void tests_authres(void);
void tests_buf(void);
void tests_crypto(void);
void tests_mailman(void);
void tests_mbox(void);
void tests_names(void);
void tests_quota(void);
void tests_smtp(void);
void tests_password(void);
void tests_import(void);
void tests_dns(void);
void tests_tls(void);
void tests_mime(void);
void tests_lua(void);
void tests_imap(void);
void tests_outbound(void);
void tests_metadata(void);
void tests_dkim(void);
void tests_greylist(void);
void tests_stats(void);
void tests_spf(void);
void tests_luasocket(void);
void tests_pattern(void);
void tests_view(void);
void tests_sort(void);
void tests_session(void);
void tests_autoconf(void);
void tests_httpc(void);
void tests_acme(void);
void tests_sieve(void);
void tests_managesieve(void);
void tests_backup(void);

#endif
