/* fuzz_sieve.c - libFuzzer target for the Sieve compiler and interpreter
 * (sieve_parse.c, sieve_run.c): the input up to its first NUL byte is a
 * script; what follows is the message it runs on (a fixed multipart
 * message when there is no NUL). Every script that compiles is run.
 * Built and run by ./build.sh fuzz (tests/fuzz_sieve.dict, seeds in
 * tests/fuzz/sieve/):
 *
 *   build/fuzz/fuzz_sieve -dict=tests/fuzz_sieve.dict -max_len=8192 \
 *       build/fuzz/corpus-sieve tests/fuzz/sieve
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sieve.h"

static const char fixed[] =
        "From: =?UTF-8?B?SsO2cmc=?= <j@example.de>, group: a@b.c, d@e.f;\r\n"
        "To: bob+work@example.org\r\nSubject: [list] hello\r\nX-Spam-Score: 7\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n--b\r\n"
        "Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b--\r\n";

static int exists(void *arg, const char *name)
{
	(void)arg;
	return name[0] == 'W';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	const char *nul = memchr(p, 0, size);
	size_t slen = nul ? (size_t)(nul - p) : size;
	struct sieve_input in = {.msg = fixed, .len = sizeof fixed - 1, .size = sizeof fixed - 1,
		.from = "sender@example.com", .to = "bob+work@example.org", .folder_exists = exists};
	if (nul) {
		in.msg = nul + 1;
		in.len = in.size = size - slen - 1;
	}
	char err[256];
	struct sieve_script *s;
	if (sieve_compile(p, slen, &s, err, sizeof err) != 0) {
		return 0;
	}
	struct sieve_result r;
	struct buf out;
	buf_init(&out);
	sieve_run(s, &in, &r);
	sieve_result_print(&r, &out);
	sieve_result_free(&r);
	buf_free(&out);
	sieve_free(s);
	return 0;
}
