/* fuzz_imap.c - libFuzzer target for imap_parse.c, the parser every
 * client reaches before login: the input is cut into lines and fed to the
 * tokenizer as imap.c does (a "{n}" literal takes the next n bytes), then
 * each command's arguments are tried as a sequence set and as SEARCH keys
 * matched against the input itself as a message. Not part of build.sh:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -isystem /usr/include/lua5.1 \
 *       tests/fuzz_imap.c imap_parse.c imap_msg.c mime.c mime_text.c buf.c log.c posix/os.c \
 *       -lpthread -o build/fuzz_imap
 *   build/fuzz_imap -max_total_time=60 -max_len=65536
 */
#include <string.h>

#include "rumble.h"

/* The message is a buffer (imap_src_buffer): the store is never asked. */
uint64_t mm_folder_key(struct mm_folder *f)
{
	return 0;
}
struct mm_reader *mm_reader_open_uid(struct mm_folder *f, uint32_t uid)
{
	return NULL;
}
long mm_reader_read(struct mm_reader *r, char *out, size_t n)
{
	return -1;
}
long mm_reader_read_line(struct mm_reader *r, char *out, size_t n)
{
	return -1;
}
uint64_t mm_reader_mark(const struct mm_reader *r)
{
	return MM_NO_MARK;
}
int mm_reader_seek(struct mm_reader *r, uint64_t wire, uint64_t mark)
{
	return -1;
}
void mm_reader_close(struct mm_reader *r)
{
}

static void try_command(const struct imap_cmd *c, const uint8_t *data, size_t size)
{
	struct imap_set set;
	struct imap_search *k;
	const char *error;
	for (uint32_t i = 0; i < c->ntok && i < 4; i++) {
		if (imap_set_parse(imap_tok_str(c, i), &set) == 0) {
			imap_set_has(&set, 5, 10);
			imap_set_free(&set);
		}
	}
	uint32_t pos = c->ntok > 2 ? 2 : c->ntok;
	if (imap_search_parse(c, &pos, NULL, NULL, &k, &error) == 0) {
		struct imap_search_msg m = {1, 1, 0, 0, (uint32_t)size, 1, 1, 0, 0,
		        imap_src_buffer((const char *)data, size)};
		imap_search_match(k, &m);
		imap_src_free(m.src);
		imap_search_free(k);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_cmd c;
	size_t i = 0;
	imap_cmd_init(&c);
	while (i < size) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t end = nl ? (size_t)(nl - data) : size, len = end - i;
		uint64_t lit;
		int nonsync;
		const char *error;
		if (len && data[end - 1] == '\r') {
			len--;
		}
		int rc = imap_cmd_line(&c, (const char *)data + i, len, &lit, &nonsync, &error);
		i = end + 1;
		if (rc == IMAP_PARSE_LITERAL && imap_cmd_literal_begin(&c, lit, lit > 1024) == 0) {
			size_t take = lit < size - (i < size ? i : size) ? (size_t)lit : size - (i < size ? i : size);
			imap_cmd_literal_data(&c, (const char *)data + (i < size ? i : size), take);
			imap_cmd_literal_end(&c);
			i += take;
			continue;
		}
		if (rc == IMAP_PARSE_DONE) {
			try_command(&c, data, size);
		}
		imap_cmd_reset(&c);
	}
	imap_cmd_free(&c);
	return 0;
}
