/* fuzz.h - what the protocol fuzzers (fuzz_smtp.c, fuzz_pop3.c) share: a
 * storage folder made once per process, conf as rumble.conf would set
 * it, and the queue running, so that the protocol cores run for real
 * over in-memory sessions (session_mem_*). */
#ifndef RUMBLE_FUZZ_H
#define RUMBLE_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

/* Saves an account; type MM_ALIAS with args as its targets, or a mailbox
 * with password "secret" and at most msgs messages (0: no limit). */
static void fuzz_account(const char *user, enum mm_type type, const char *args, uint64_t msgs)
{
	char err[256];
	struct mm_account a = {.type = type};
	rl_strlcpy(a.domain, "example.org", sizeof a.domain);
	rl_strlcpy(a.user, user, sizeof a.user);
	rl_strlcpy(a.args, args, sizeof a.args);
	a.quota.msgs = msgs;
	if ((type == MM_MBOX && crypto_password_hash("secret", a.password, sizeof a.password)) ||
	        mm_account_save(&a, err, sizeof err) != 0) {
		fatal("fuzz: account %s: %s", user, err);
	}
}

/* The storage folder (under $TMPDIR, /dev/shm when there is one: fsync is
 * free there) with example.org, conf from text plus ServerName and
 * StorageFolder, and the queue started. */
static void fuzz_setup(const char *text)
{
	char dir[512], all[2048], err[256];
	const char *tmp = getenv("TMPDIR");
	FILE *probe = fopen("/dev/shm/.rumble-fuzz", "w");
	if (probe) {
		fclose(probe);
		remove("/dev/shm/.rumble-fuzz");
	}
	snprintf(dir, sizeof dir, "%s/rumble-fuzz-%ld",
	        tmp     ? tmp
	        : probe ? "/dev/shm"
	                : "/tmp",
	        os_getpid());
	struct config c = {0};
	os_init();
	snprintf(all, sizeof all, "ServerName mx.test\nStorageFolder %s\n%s", dir, text);
	if (os_mkdir_p(dir) != 0 || config_parse(&c, all, "fuzz", err, sizeof err) != 0 ||
	        config_apply(&conf, &c, err, sizeof err) != 0 ||
	        mm_open(dir, err, sizeof err) != 0 ||
	        mm_domain_add("example.org", err, sizeof err) != 0) {
		fatal("fuzz: setup in %s: %s", dir, err);
	}
	log_set_level(LOG_ERROR);
	if (queue_start() != 0) {
		fatal("fuzz: the queue does not start");
	}
}

/* Feeds the protocol in pieces cut where the input says (so that lines
 * arrive whole and split), throwing the replies away as they pile up. */
static void fuzz_feed(struct session *s, const uint8_t *data, size_t size)
{
	size_t i = 0;
	while (i < size && !s->closing) {
		size_t n = size - i;
		if (n > 1 && data[i] == 0xff) {
			n = data[i + 1] % 64 + 1; /* a cut: the next piece is short */
			i += 2;
			n = n < size - i ? n : size - i;
		}
		session_mem_feed(s, data + i, n);
		i += n;
		for (int round = 0; round < 64 && s->out.len; round++) {
			buf_reset(&s->out); /* room for what waits on output */
			session_mem_run(s, 10000);
		}
	}
	session_mem_run(s, 10000);
}

/* One session of svc: the input's first byte picks a client from ::1
 * (bit 0 clear) or one from 127.0.0.1 that first sends login; the rest
 * is what the client sends (fuzz_feed). */
static inline void fuzz_session(struct service *svc, const char *login, const uint8_t *data,
	size_t size)
{
	int logged = data[0] & 1;
	struct session *s = session_mem_open(svc, logged ? "127.0.0.1" : "::1");
	if (logged) {
		session_mem_feed(s, login, strlen(login));
		session_mem_run(s, 10000);
	}
	fuzz_feed(s, data + 1, size - 1);
	session_mem_close(s);
}

#endif
