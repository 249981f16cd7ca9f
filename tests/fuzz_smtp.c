/* fuzz_smtp.c - libFuzzer target for smtp.c and its policy chain, driven
 * through an in-memory session (session_mem_*): the input is what a
 * client sends (commands, pipelined, AUTH exchanges, DATA), after one
 * byte that picks who the client is:
 *
 *   0  192.0.2.1, a remote client: no AUTH without TLS, no relay
 *   1  ::1, this host: AUTH allowed (a few failures block it for a while:
 *      each costs a password hash)
 *   2  127.0.0.1, logged in first as john@example.org
 *
 * Mail goes to sink@example.org, an alias to an address that does not
 * exist: the message is spooled and committed but stored nowhere, so the
 * run does not fill the disk; john's mailbox takes one message only (its
 * quota), and BlockOutgoingMail keeps everything off the network (and
 * DKIMVerify and DMARC are off: they ask DNS). Built
 * and run by ./build.sh fuzz (tests/fuzz_smtp.dict, seeds in
 * tests/fuzz/smtp/):
 *
 *   build/fuzz/fuzz_smtp -dict=tests/fuzz_smtp.dict -max_len=8192 \
 *       build/fuzz/corpus-smtp tests/fuzz/smtp
 */
#include "tests/fuzz.h"

static struct service svc = {.name = "smtp", .proto = &smtp_proto};

static int setup(void)
{
	/* no DKIM/DMARC: they ask DNS (tests/fuzz_authres.c fuzzes them) */
	fuzz_setup("BlockOutgoingMail 1\nMessageSizeLimit 65536\nMaxRecipients 20\nDKIMVerify 0\n"
	           "DMARC 0\n");
	fuzz_account("john", MM_MBOX, "", 1);
	fuzz_account("sink", MM_ALIAS, "nowhere@example.org", 0);
	fuzz_account("list", MM_ALIAS, "sink, john", 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready = -1;
	static const char *const peers[] = {"192.0.2.1", "::1", "127.0.0.1"};
	/* "\0john@example.org\0secret" */
	static const char login[] = "EHLO fuzz.test\r\nAUTH PLAIN "
	                            "AGpvaG5AZXhhbXBsZS5vcmcAc2VjcmV0\r\n";
	if (ready < 0) {
		ready = setup();
	}
	if (size == 0) {
		return 0;
	}
	int who = data[0] % 3;
	struct session *s = session_mem_open(&svc, peers[who]);
	if (who == 2) {
		session_mem_feed(s, login, sizeof login - 1);
		session_mem_run(s, 10000);
	}
	fuzz_feed(s, data + 1, size - 1);
	session_mem_close(s);
	return 0;
}
