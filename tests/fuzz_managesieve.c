/* fuzz_managesieve.c - libFuzzer target for managesieve.c, driven through
 * an in-memory session (session_mem_*): the input is what a client sends,
 * after one byte that picks how the session starts:
 *
 *   0  ::1, not logged in (AUTHENTICATE, STARTTLS, literals before login)
 *   1  127.0.0.1, logged in first as john@example.org: the script commands
 *
 * Built and run by ./build.sh fuzz (tests/fuzz_managesieve.dict, seeds in
 * tests/fuzz/managesieve/):
 *
 *   build/fuzz/fuzz_managesieve -dict=tests/fuzz_managesieve.dict \
 *       -max_len=8192 build/fuzz/corpus-managesieve tests/fuzz/managesieve
 */
#include "sieve.h"
#include "tests/fuzz.h"

static struct service svc = {.name = "managesieve", .proto = &managesieve_proto};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	/* "\0john@example.org\0secret" */
	static const char login[] =
	        "AUTHENTICATE \"PLAIN\" \"AGpvaG5AZXhhbXBsZS5vcmcAc2VjcmV0\"\r\n";
	if (!ready) {
		fuzz_setup("");
		fuzz_account("john", MM_MBOX, "", 0);
		ready = 1;
	}
	if (size == 0) {
		return 0;
	}
	fuzz_session(&svc, login, data, size);
	return 0;
}
