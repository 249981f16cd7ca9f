/* fuzz_pop3.c - libFuzzer target for pop3.c, driven through an in-memory
 * session (session_mem_*): the input is what a client sends, after one
 * byte that picks how the session starts:
 *
 *   0  ::1, in AUTHORIZATION (USER/PASS, AUTH, APOP...; a few failed
 *      logins block it for a while: each costs a password hash)
 *   1  127.0.0.1, logged in first as john@example.org: TRANSACTION
 *
 * john's INBOX is filled up to three messages again before each run (a
 * QUIT after DELE empties it): one with dot lines and a long line, one
 * without a final line end, one with an empty header and body. Built and run by ./build.sh fuzz
 * (tests/fuzz_pop3.dict, seeds in tests/fuzz/pop3/):
 *
 *   build/fuzz/fuzz_pop3 -dict=tests/fuzz_pop3.dict -max_len=4096 \
 *       build/fuzz/corpus-pop3 tests/fuzz/pop3
 */
#include "tests/fuzz.h"

static struct service svc = {.name = "pop3", .proto = &pop3_proto};

static void deliver(const char *text)
{
	struct queue_msg *m = queue_msg_new("a@remote.test");
	queue_msg_add_rcpt(m, "john@example.org");
	spool_write(&m->body, text, strlen(text));
	queue_commit_wait(m);
	queue_msg_free(m);
}

/* Tops john's INBOX up to three messages. */
static void refill(void)
{
	static const char *const msgs[] = {
	        ("Subject: one\r\nFrom: a@remote.test\r\n\r\n.dot\r\n..two\r\n.\r\nend "
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	        "Subject: two\r\n\r\nno line end",
	        "\r\n",
	};
	struct mm_folder *f;
	uint32_t n = 0;
	if (mm_folder_open("example.org", "john", "INBOX", 1, &f) == 0) {
		n = mm_folder_count(f);
		mm_folder_close(f);
	}
	for (; n < 3; n++) {
		deliver(msgs[n]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static const char login[] = "USER john@example.org\r\nPASS secret\r\n";
	if (!ready) {
		fuzz_setup("");
		fuzz_account("john", MM_MBOX, "", 0);
		ready = 1;
	}
	if (size == 0) {
		return 0;
	}
	refill();
	fuzz_session(&svc, login, data, size);
	return 0;
}
