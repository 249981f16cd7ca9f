/* fuzz_authres.c - libFuzzer target for inbound authentication's parsers
 * of untrusted input (dkim_verify.c, dmarc.c): the input as a message fed
 * in pieces to the DKIM verifier (header kept, DKIM-Signature tag lists
 * read, both body canonicalizations, then each signature checked against
 * a key record the stub DNS makes from the input's first line), as a
 * DMARC record, and as a domain for the public suffix list. Not part of
 * build.sh (dmarc.o's table comes from the ASan build's build/asan/gen):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Ibuild/asan/gen \
 *       -isystem /usr/include/lua5.1 tests/fuzz_authres.c dkim_verify.c dkim.c \
 *       dmarc.c ed25519.c crypto.c buf.c log.c posix/os.c -lbearssl -lpthread \
 *       -o build/fuzz_authres
 *   build/fuzz_authres -max_total_time=300 -max_len=8192 CORPUS_DIR
 *
 * The rest of the server (the chain, sessions, the queue, SPF) is stubbed
 * below: the policy module's glue in dmarc.c is never called here.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"

struct settings conf = {.server_name = "mail.example.org", .dkim_selector = "rumble"};

static char key_record[DNS_TEXT_MAX];

/* The key of any selector: the input's first line. */
int dns_txt(const char *name, char (*out)[DNS_TEXT_MAX], int max)
{
	if (max < 1 || !key_record[0]) {
		return DNS_NXDOMAIN;
	}
	memcpy(out[0], key_record, sizeof key_record);
	return strstr(name, "_dmarc.") == name ? 0 : 1;
}

int mm_valid_domain(const char *d)
{
	return *d && strlen(d) <= MM_DOMAIN_MAX && !strpbrk(d, "/\\ ");
}

/* never called */
int mm_domain_exists(const char *name)
{
	return 0;
}
void dns_put_txt(struct buf *out, const char *text)
{
}
struct policy_results *policy_results(struct policy *p)
{
	return NULL;
}
void policy_resume(struct session *s, int verdict)
{
}
int policy_local(struct policy *p, const char *user)
{
	return 1;
}
struct policy_call *policy_waiting(struct session *s)
{
	return NULL;
}
enum rcpt_kind queue_classify(const char *addr, struct mm_account *acct)
{
	return RCPT_BAD;
}
int session_is_local(const struct session *s)
{
	return 1;
}
const char *spf_name(enum spf_result r)
{
	return "none";
}
int work_queue(struct session *s, struct work *w)
{
	return -1;
}
const void *tls__anchors_raw(const struct tls_anchors *a, size_t *n)
{
	*n = 0;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	size_t first = strcspn(text, "\n");
	snprintf(key_record, sizeof key_record, "%.*s", (int)(first < 1000 ? first : 1000), text);
	struct dkim_verify *v = dkim_verify_new(1);
	for (size_t i = 0; i < size;) {
		size_t n = (size - i) % 97 + 1; /* pieces of changing sizes */
		n = n < size - i ? n : size - i;
		dkim_verify_feed(v, (const char *)data + i, n);
		i += n;
	}
	struct dkim_result r[DKIM_VERIFY_MAX];
	const struct dkim_field *f;
	size_t hlen;
	dkim_verify_end(v, r, DKIM_VERIFY_MAX);
	dkim_verify_fields(v, &f);
	dkim_verify_header(v, &hlen);
	dkim_verify_free(v);
	struct dmarc_record rec;
	dmarc_parse(text, &rec);
	char org[DNS_NAME_MAX];
	dmarc_org_domain(text, org, sizeof org);
	free(text);
	return 0;
}
