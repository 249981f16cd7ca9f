/* fuzz_mime.c - libFuzzer target for mime.c and mime_text.c: parses the
 * input as a message, whole and streamed in pieces (the two trees must be
 * the same), and uses every reader on it (tree, headers, decoders and
 * their streamed forms, SEARCH's text search, addresses, dates,
 * BODYSTRUCTURE, ENVELOPE). Not part of build.sh:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -isystem /usr/include/lua5.1 \
 *       tests/fuzz_mime.c mime.c mime_text.c buf.c log.c posix/os.c -lpthread \
 *       -o build/fuzz_mime
 *   build/fuzz_mime -max_total_time=60 -max_len=65536
 */
#include <stdlib.h>
#include <string.h>

#include "rumble.h"

static void walk(const struct mime_msg *m, const struct mime_part *p, struct buf *b)
{
	static const char *const lists[] = {"from", "to", "cc", "sender", "reply-to"};
	struct mime_headers it;
	struct mime_header h;
	mime_headers_part(&it, m, p);
	while (mime_headers_next(&it, &h)) {
		buf_reset(b);
		mime_decode_words(h.value, h.value_len, b);
	}
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		for (int decode = 0; decode < 2; decode++) {
			if (mime_header_get(m, p, lists[i], b)) {
				mime_addr_free(mime_addr_parse(b->data, b->len, decode));
			}
		}
	}
	if (mime_header_get(m, p, "date", b)) {
		int64_t t;
		int zone;
		mime_date_parse(b->data, b->len, &t, &zone);
	}
	buf_reset(b);
	mime_body_text(m, p, b);
	mime_part_filename(p);
	for (const struct mime_part *c = p->child; c; c = c->next) {
		walk(m, c, b);
	}
}

/* Each leaf's body streamed through a decoder and a text search, in
 * pieces of 7 bytes. */
static void leaves(const struct mime_msg *m, const struct mime_part *p, struct buf *b)
{
	if (!p->child) {
		struct mime_decoder d;
		struct mime_find *f = mime_find_new(p, "ab", 2);
		mime_decoder_init(&d, p->encoding);
		for (size_t i = 0; i < p->body_len; i += 7) {
			size_t k = p->body_len - i < 7 ? p->body_len - i : 7;
			buf_reset(b);
			mime_decoder_feed(&d, m->buf + p->body_off + i, k, b);
			mime_find_feed(f, m->buf + p->body_off + i, k);
		}
		mime_decoder_end(&d, b);
		mime_find_end(f);
	}
	for (const struct mime_part *c = p->child; c; c = c->next) {
		leaves(m, c, b);
	}
}

/* The tree streamed in pieces ending at line ends (or 13 bytes): its
 * BODYSTRUCTURE must be the whole buffer's. */
static void streamed(const uint8_t *data, size_t size, const struct buf *whole)
{
	struct mime_msg m;
	struct buf b;
	struct mime_stream *s = mime_stream_new(&m);
	for (size_t i = 0; i < size;) {
		size_t k = size - i < 13 ? size - i : 13;
		const uint8_t *nl = memchr(data + i, '\n', k);
		k = nl ? (size_t)(nl - (data + i)) + 1 : k;
		mime_stream_feed(s, (const char *)data + i, k, i);
		i += k;
	}
	mime_stream_end(s);
	buf_init(&b);
	mime_bodystructure(&m, m.root, 1, &b);
	mime_envelope(&m, m.root, &b);
	if (b.len != whole->len || memcmp(b.data, whole->data, b.len) != 0) {
		abort();
	}
	buf_free(&b);
	mime_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_msg m;
	struct buf b;
	const char *rest;
	buf_init(&b);
	mime_parse(&m, (const char *)data, size);
	walk(&m, m.root, &b);
	leaves(&m, m.root, &b);
	buf_reset(&b);
	mime_bodystructure(&m, m.root, 1, &b);
	mime_envelope(&m, m.root, &b);
	streamed(data, size, &b);
	/* the input's first bytes as an IMAP section too */
	char spec[16];
	size_t n = size < sizeof spec - 1 ? size : sizeof spec - 1;
	memcpy(spec, data, n);
	spec[n] = '\0';
	mime_section(&m, spec, &rest);
	/* and as a date, an address list, encoded words, QP and base64 */
	int64_t t;
	mime_date_parse((const char *)data, size, &t, NULL);
	mime_addr_free(mime_addr_parse((const char *)data, size, 1));
	buf_reset(&b);
	mime_decode_words((const char *)data, size, &b);
	mime_decode_qp((const char *)data, size, &b);
	mime_decode_base64((const char *)data, size, &b);
	buf_free(&b);
	mime_free(&m);
	return 0;
}
