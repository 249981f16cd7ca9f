/* fuzz_autoconf.c - libFuzzer target for autoconf.c's pre-auth parsers:
 * the input as an autodiscover body (not NUL-terminated: ASan sees any
 * read past it), as a request target with a query, as a Host header, and
 * as the address the documents are made for, whose output must hold no
 * byte of the input unescaped ('<' and '&' only as the markup's own).
 * The store is a stub here: example.org is the one domain of ours, so
 * the routes make their documents too. Not part of build.sh:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -isystem /usr/include/lua5.1 \
 *       tests/fuzz_autoconf.c autoconf.c buf.c log.c crypto.c posix/os.c -lbearssl \
 *       -lpthread -o build/fuzz_autoconf
 *   build/fuzz_autoconf -max_total_time=60 -max_len=4096
 */
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

struct settings conf = {.server_name = "mail.example.org",
        .imaps_enable = 1,
        .imaps_port = 993,
        .submission_enable = 1,
        .submission_port = 587};

int mm_domain_exists(const char *name)
{
	return strcmp(name, "example.org") == 0;
}

/* Every '<' in doc starts a tag of ours: a letter, '/', '?' or '!'. */
static void check_markup(const struct buf *doc)
{
	for (size_t i = 0; i < doc->len; i++) {
		char c = i + 1 < doc->len ? doc->data[i + 1] : 0;
		if (doc->data[i] == '<' && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		                                   c == '/' || c == '?' || c == '!')) {
			abort();
		}
		if ((unsigned char)doc->data[i] >= 0x80) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct autoconf_ports p = {993, 143, 995, 110, 465, 587};
	char addr[320], *s = malloc(size + 1), *body = malloc(size ? size : 1);
	const char *ctype;
	struct buf out;
	buf_init(&out);
	memcpy(body, data, size);
	autoconf_pox_address(body, size, addr, sizeof addr);
	autoconf_route("POST", "/autodiscover/autodiscover.xml", NULL, body, size, &out, &ctype);
	memcpy(s, data, size);
	s[size] = '\0';
	autoconf_route("GET", s, s, NULL, 0, &out, &ctype);
	buf_reset(&out);
	autoconf_outlook(s, "mail.example.org", &p, &out);
	autoconf_apple(s, "mail.example.org", &p, &out);
	autoconf_thunderbird(s, "mail.example.org", &p, &out);
	check_markup(&out);
	buf_free(&out);
	free(s);
	free(body);
	return 0;
}
