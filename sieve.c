/*
 * sieve.c - Sieve in the server: `rumble sieve check|test`, which
 * compile a script and run it on a message as Pigeonhole's sieve-test
 * does (the differential tests compare the two).
 */
#include <string.h>

#include "admin.h"
#include "sieve.h"

#define SIEVE_MESSAGE_MAX (64 * 1024 * 1024) /* what `sieve test` reads */

/* The whole file into b; 0, or -1 with a message on stderr. */
static int read_file(const char *path, size_t max, struct buf *b)
{
	FILE *f = os_fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "rumble: sieve: %s: %s\n", path, os_strerror());
		return -1;
	}
	char chunk[16384];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b->len <= max) {
		buf_append(b, chunk, n);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad || b->len > max) {
		fprintf(stderr, "rumble: sieve: %s: %s\n", path, bad ? "cannot read" : "too large");
		return -1;
	}
	return 0;
}

static struct sieve_script *compile_file(const char *path)
{
	struct buf src;
	char err[300];
	struct sieve_script *s = NULL;
	buf_init(&src);
	if (read_file(path, SIEVE_SCRIPT_MAX, &src) == 0 &&
	        sieve_compile(src.data ? src.data : "", src.len, &s, err, sizeof err) != 0) {
		fprintf(stderr, "rumble: sieve: %s:%s\n", path, err);
	}
	buf_free(&src);
	return s;
}

/* sieve test SCRIPT MESSAGE [FROM [TO]] */
static int sieve_test(int argc, char **argv)
{
	struct sieve_script *s = compile_file(argv[0]);
	struct buf m, out;
	buf_init(&m);
	buf_init(&out);
	int rc = 1;
	if (s && read_file(argv[1], SIEVE_MESSAGE_MAX, &m) == 0) {
		struct sieve_input in = {.msg = m.data ? m.data : "", .len = m.len, .size = m.len,
			.from = argc > 2 ? argv[2] : "sender@example.com",
			.to = argc > 3 ? argv[3] : "recipient@example.com"};
		struct sieve_result r;
		rc = sieve_run(s, &in, &r) == 0 ? 0 : 1;
		if (rc) {
			fprintf(stderr, "rumble: sieve: %s: %s (the message is kept)\n", argv[0], r.error);
		}
		sieve_result_print(&r, &out);
		fwrite(out.data, 1, out.len, stdout);
		sieve_result_free(&r);
	}
	sieve_free(s);
	buf_free(&m);
	buf_free(&out);
	return rc;
}

/* see admin.h */
int cmd_sieve(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[0], "check")) {
		struct sieve_script *s = compile_file(argv[1]);
		if (s) {
			printf("%s: ok\n", argv[1]);
		}
		sieve_free(s);
		return s ? 0 : 1;
	}
	if (argc >= 3 && argc <= 5 && !strcmp(argv[0], "test")) {
		return sieve_test(argc - 1, argv + 1);
	}
	fprintf(stderr, "rumble: sieve: expected check SCRIPT, or test SCRIPT MESSAGE [FROM [TO]]\n");
	return 2;
}
