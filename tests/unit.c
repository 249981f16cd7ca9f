/* unit.c - runs every C unit test; see unit.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"
#include "tests/unit.h"

static int passed, failed, current_failed;
static const char *current;
static char tmproot[512];
static int ntmp;

void unit_fail(const char *file, int line, const char *what)
{
	current_failed = 1;
	printf("FAIL %s\n     %s:%d: %s\n", current, file, line, what);
}

void unit_run(const char *name, void (*fn)(void))
{
	current = name;
	current_failed = 0;
	fn();
	if (current_failed) {
		failed++;
	} else {
		passed++;
		printf("ok   %s\n", name);
	}
}

const char *unit_tmpdir(void)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/t%d", tmproot, ++ntmp);
	if (os_mkdir_p(path) != 0) {
		fatal("cannot make %s", path);
	}
	return path;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	os_init();
	log_set_level(LOG_ERROR);
	snprintf(tmproot, sizeof tmproot, "%s/unit-%ld",
		getenv("UNIT_TMP") ? getenv("UNIT_TMP") : "build/tmp", os_getpid());
	os_mkdir_p(tmproot);
	struct {
		const char *name;
		void (*fn)(void);
	} suites[] = {
		{"config", tests_config},
		{"buf", tests_buf},
		{"crypto", tests_crypto},
		{"mailman", tests_mailman},
		{"mbox", tests_mbox},
		{"names", tests_names},
		{"quota", tests_quota},
		{"smtp", tests_smtp},
		{"password", tests_password},
		{"import", tests_import},
		{"dns", tests_dns},
		{"tls", tests_tls},
		{"mime", tests_mime},
		{"lua", tests_lua},
		{"imap", tests_imap},
		{"outbound", tests_outbound},
		{"metadata", tests_metadata},
		{"dkim", tests_dkim},
		{"greylist", tests_greylist},
		{"stats", tests_stats},
		{"spf", tests_spf},
		{"authres", tests_authres},
		{"luasocket", tests_luasocket},
		{"pattern", tests_pattern},
		{"view", tests_view},
		{"sort", tests_sort},
		{"session", tests_session},
		{"log", tests_log},
		{"autoconf", tests_autoconf},
		{"httpc", tests_httpc},
		{"acme", tests_acme},
		{"sieve", tests_sieve},
		{"managesieve", tests_managesieve},
		{"backup", tests_backup},
	};
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
		if (!only || strcmp(only, suites[i].name) == 0) {
			suites[i].fn();
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

/* see unit.h */
void *unit_cap_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	struct unit_cap *c = ud;
	if (nsize == 0) {
		free(p);
		c->used -= osize;
		return NULL;
	}
	if (nsize > osize && c->used + (nsize - osize) > c->limit) {
		return NULL;
	}
	void *q = realloc(p, nsize);
	if (q) {
		c->used = c->used - osize + nsize;
	}
	return q;
}
