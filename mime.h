/*
 * mime.h - message parsing (mime.c, mime_text.c): the part of rumble.h
 * that is MIME, kept in its own file for size. Included by rumble.h;
 * definitions say "see rumble.h".
 */
#ifndef RUMBLE_MIME_H
#define RUMBLE_MIME_H

/* ---- mime.c: message parsing ---- */
/* A pure module: it reads a message from the caller's buffer, or as the
 * caller streams it (mime_stream_*), and does no I/O. The message is in
 * wire form (CRLF lines; bare LF is taken too). Parsing never fails:
 * malformed input gives leaf parts and default types, and the limits
 * below bound the work to one pass over the message whatever the input.
 * Strings in the tree are NUL-terminated and live until mime_free;
 * offsets are into the message (the buffer, which must outlive the tree
 * when there is one). */
#define MIME_DEPTH_MAX 32     /* nesting of multiparts and messages below the root */
#define MIME_PARTS_MAX 1000   /* parts in one message, the root included */
#define MIME_HEADERS_MAX 1000 /* header lines looked at in one header block */
#define MIME_PARAMS_MAX 64    /* parameters of one Content-Type/-Disposition */
#define MIME_BOUNDARY_MAX 200 /* longer boundaries are ignored (RFC 2046: 70) */
#define MIME_ADDR_MAX 5000    /* addresses taken from one header */

/* mime_msg.limits: which limit cut the parse short */
#define MIME_LIMIT_DEPTH 1
#define MIME_LIMIT_PARTS 2
#define MIME_LIMIT_HEADERS 4
#define MIME_LIMIT_CUT 8 /* mime_stream_cut: only the root's header was read */

/* mime_part.flags */
#define MIME_MULTIPART 1 /* children are the body parts of this multipart */
#define MIME_MESSAGE 2   /* message/rfc822 (or global): child is the message inside */

#define MIME_NO_MARK UINT64_MAX

/* ENVELOPE's header fields (RFC 3501 7.4.2), in its order. */
enum { MIME_ENV_DATE, MIME_ENV_SUBJECT, MIME_ENV_FROM, MIME_ENV_SENDER, MIME_ENV_REPLY_TO,
	MIME_ENV_TO, MIME_ENV_CC, MIME_ENV_BCC, MIME_ENV_IN_REPLY_TO, MIME_ENV_MESSAGE_ID,
	MIME_ENV_FIELDS };
struct mime_env {
	const char *f[MIME_ENV_FIELDS]; /* the first such field, unfolded; NULL if none */
};

struct mime_param {
	const char *name;  /* lower case, without RFC 2231 "*" and section numbers */
	const char *value; /* RFC 2231 sections joined and decoded, RFC 2047 words
	                      decoded (not for boundary); UTF-8 when the charset is
	                      known, else the bytes as they were */
};

struct mime_part {
	struct mime_part *parent, *child, *next; /* child: first body part, or the
	                                            message of a message/rfc822 part */
	unsigned nchild, depth, flags;
	/* The header block (with the empty line that ends it, when there is
	 * one) and the body, as offsets into the message. The delimiter before
	 * a boundary line belongs to the boundary (RFC 2046 5.1.1). */
	size_t hdr_off, hdr_len, body_off, body_len;
	/* The marks the feeder gave the lines starting at hdr_off and
	 * body_off (MIME_NO_MARK when no line starts there): where to resume
	 * reading the message to get at the part. */
	uint64_t hdr_mark, body_mark;
	size_t lines; /* text lines of the body: LFs, plus an unterminated last line */
	/* Lower case. No (or a bad) Content-Type gives text/plain with
	 * charset=us-ascii, or message/rfc822 inside multipart/digest. */
	const char *type, *subtype;
	const struct mime_param *params;
	unsigned nparams;
	const char *encoding;    /* Content-Transfer-Encoding, lower case; "7bit" if none */
	const char *disposition; /* lower case, NULL if none */
	const struct mime_param *disp_params;
	unsigned ndisp_params;
	/* Unfolded values as they were (RFC 2047 words not decoded: IMAP
	 * hands them on so); NULL when the header is missing. */
	const char *id, *description, *md5, *language, *location;
	/* The root and the message of a message/rfc822 part: the fields of
	 * their ENVELOPE; NULL for other parts. */
	struct mime_env *env;
};

/* A line start somewhere in the message and the feeder's mark for it. */
struct mime_mark {
	uint64_t off, mark;
};

struct mime_chunk;
struct mime_msg {
	const char *buf; /* borrowed; NULL for a tree parsed from a stream */
	size_t len;
	struct mime_part *root; /* the message itself; never NULL after mime_parse */
	unsigned nparts;
	unsigned limits; /* MIME_LIMIT_* that were hit */
	/* Marks of line starts about every 256 KB, ascending: for reading
	 * from the middle of a long part. */
	struct mime_mark *marks;
	unsigned nmarks;
	struct mime_chunk *arena;
};

void mime_parse(struct mime_msg *m, const char *buf, size_t len);
void mime_free(struct mime_msg *m);
/* Bytes the tree takes (for caches). */
size_t mime_msg_size(const struct mime_msg *m);
/* The same parse as the message streams by, fed in pieces of any size:
 * the tree grows in m (which stays the caller's) and is complete after
 * mime_stream_end, which frees s. mark is the caller's name for the
 * position of p's first byte; a line that starts k bytes into p gets
 * mark + k, so feed a piece with at most one line end, at its end,
 * unless marks are offsets (as mime_parse's are). Header lines are kept
 * up to 64 KB and field values up to 64 KB: a longer one is judged by
 * what was kept. */
struct mime_stream;
struct mime_stream *mime_stream_new(struct mime_msg *m);
void mime_stream_feed(struct mime_stream *s, const char *p, size_t n, uint64_t mark);
void mime_stream_end(struct mime_stream *s);
/* 1 once the root's header block is complete (ENVELOPE and the root's
 * HEADER and TEXT are known). Then mime_stream_cut may end the parse
 * there: the root gets the body up to total, no children, no line count,
 * and MIME_LIMIT_CUT; it frees s. */
int mime_stream_header_done(const struct mime_stream *s);
void mime_stream_cut(struct mime_stream *s, uint64_t total);
/* Header lines one at a time, as mime_headers_next reads them (junk
 * skipped, continuation lines, MIME_HEADERS_MAX): p[0..n) is one line
 * of a header block, its line end included, never the empty line that
 * ends the block; colon_beyond says a ':' is in a part of the line the
 * caller did not keep. MH_FIELD: a field starts (name, and the value's
 * first bytes: the rest of the line); name_len 0 for a name longer than
 * what was kept. MH_MORE: the line continues the field. MH_JUNK: skipped.
 * MH_STOP: the limit was reached; nothing more is looked at. */
enum { MH_FIELD, MH_MORE, MH_JUNK, MH_STOP };
struct mime_header;
struct mime_hscan {
	unsigned count;
	int active, stopped;
};
int mime_hscan_line(struct mime_hscan *h, const char *p, size_t n, int colon_beyond,
	struct mime_header *out);
/* Value of a parameter (name lower case), NULL if absent. */
const char *mime_param(const struct mime_param *v, unsigned n, const char *name);
#define mime_part_param(p, name) mime_param((p)->params, (p)->nparams, (name))
#define mime_part_disp_param(p, name) mime_param((p)->disp_params, (p)->ndisp_params, (name))
/* The file name an attachment suggests: Content-Disposition's filename,
 * else Content-Type's name; NULL if neither. */
const char *mime_part_filename(const struct mime_part *p);
/* 1 when p is type/subtype (lower case; subtype NULL matches any). */
int mime_part_is(const struct mime_part *p, const char *type, const char *subtype);
/* The part an IMAP section names (RFC 3501 6.4.5): spec starts with
 * "1.2.3" (or is empty for the whole message); *rest is set to what
 * follows the numbers ("", ".MIME", ".HEADER", ...). For a part that is a
 * message/rfc822, HEADER and TEXT mean its child. NULL when no such part. */
const struct mime_part *mime_section(const struct mime_msg *m, const char *spec,
	const char **rest);

/* Header fields of one header block, in order, with their raw values
 * (folding kept; pointers into the buffer). Stops after
 * MIME_HEADERS_MAX lines. Lines without a colon are skipped. */
struct mime_header {
	const char *name, *value;
	size_t name_len, value_len; /* value: without the line end, leading blanks skipped */
};
struct mime_headers {
	const char *p;
	size_t len, pos;
	unsigned count;
};
void mime_headers_init(struct mime_headers *it, const char *hdr, size_t len);
/* The headers of part p (NULL = the root). */
void mime_headers_part(struct mime_headers *it, const struct mime_msg *m, const struct mime_part *p);
int mime_headers_next(struct mime_headers *it, struct mime_header *h); /* 1, or 0 at the end */
/* Unfolds (RFC 5322 2.2.3) the first header called name (any case) of p
 * (NULL = the root) into out (reset first): line ends removed, NUL bytes
 * made spaces, blanks trimmed. 1 if found, 0 if not (out untouched). */
int mime_header_get(const struct mime_msg *m, const struct mime_part *p, const char *name,
	struct buf *out);
/* The same, with RFC 2047 words decoded: what a person should read. */
int mime_header_text(const struct mime_msg *m, const struct mime_part *p, const char *name,
	struct buf *out);
/* Appends s with its RFC 2047 encoded words decoded to UTF-8; white space
 * between adjacent words is dropped. Words in charsets not known to
 * mime_charset_utf8 stay as they are; text outside words that is not
 * UTF-8 is taken as windows-1252. */
void mime_decode_words(const char *s, size_t n, struct buf *out);
/* Appends in converted to UTF-8 from charset (utf-8, us-ascii,
 * iso-8859-1, iso-8859-15, windows-1252 and their aliases; any case).
 * Bad UTF-8 becomes U+FFFD; "us-ascii" with 8-bit bytes is read as UTF-8
 * if valid, else as windows-1252. 0 done; -1 unknown charset, nothing
 * appended. */
int mime_charset_utf8(const char *charset, const char *in, size_t n, struct buf *out);

/* Transfer encodings, lenient as mail readers are: base64 skips what is
 * not in its alphabet and restarts after "="; quoted-printable keeps a bad
 * "=" escape as it is and drops blanks at line ends. Both append to out. */
void mime_decode_base64(const char *in, size_t n, struct buf *out);
void mime_decode_qp(const char *in, size_t n, struct buf *out);
/* Appends the body of p decoded as its Content-Transfer-Encoding says
 * (7bit, 8bit, binary and unknown ones as they are). */
void mime_body_decode(const struct mime_msg *m, const struct mime_part *p, struct buf *out);
/* The same, then for text/ parts converted to UTF-8 from its charset
 * (default us-ascii). -1 when the charset is unknown (the bytes are
 * appended as they are). */
int mime_body_text(const struct mime_msg *m, const struct mime_part *p, struct buf *out);

/* Transfer decoding as the body streams by (mime_text.c): the same bytes
 * as mime_body_decode, fed in pieces of any size. */
struct mime_decoder {
	int kind;
	unsigned acc, bits;
	struct buf pend; /* quoted-printable bytes waiting for what follows */
};
void mime_decoder_init(struct mime_decoder *d, const char *encoding); /* NULL: as is */
void mime_decoder_feed(struct mime_decoder *d, const char *in, size_t n, struct buf *out);
void mime_decoder_end(struct mime_decoder *d, struct buf *out); /* the rest; frees */
/* 1 when nd[0..nn) is in h[0..hn), ASCII letters in any case ("" always). */
int mime_ci_find(const char *h, size_t hn, const char *nd, size_t nn);
/* IMAP's SEARCH BODY in one leaf part p, its body fed as stored, in
 * pieces: text parts are decoded and converted as mime_body_text does,
 * others searched as they are. feed says 1 once the answer is yes; end
 * gives the answer and frees f. */
struct mime_find;
struct mime_find *mime_find_new(const struct mime_part *p, const char *needle, size_t n);
int mime_find_feed(struct mime_find *f, const char *p, size_t n);
int mime_find_end(struct mime_find *f);

/* Shared by mime.c and mime_text.c only: charsets by name, and text in
 * one of them to UTF-8 (MIME_CS_ASCII: as UTF-8 when it all is, else as
 * windows-1252; iso-8859-1 is read as windows-1252). */
enum { MIME_CS_UNKNOWN = -1, MIME_CS_UTF8, MIME_CS_ASCII, MIME_CS_CP1252, MIME_CS_LATIN9 };
int mime__charset_id(const char *s, size_t n);
void mime__convert(int cs, const char *s, size_t n, struct buf *out);

/* Address lists (RFC 5322 3.4 with the obsolete forms): From, To, Cc, ...
 * A group gives a MIME_ADDR_GROUP entry (name = the group's name), its
 * members, then MIME_ADDR_GROUP_END, as IMAP's ENVELOPE lists them.
 * A comment names a mailbox that has no display name. */
enum mime_addr_kind { MIME_ADDR_MAILBOX, MIME_ADDR_GROUP, MIME_ADDR_GROUP_END };
struct mime_addr {
	struct mime_addr *next;
	enum mime_addr_kind kind;
	char *name;    /* display name, NULL if none */
	char *mailbox; /* local part ("" if missing; quoted if it must be); NULL for groups */
	char *host;    /* domain ("" if missing); NULL for groups */
	char *route;   /* obsolete source route as IMAP's adl, "@a.test,@b.test"; NULL if none */
};
/* Parses an unfolded header value. decode 1: names with RFC 2047 words
 * decoded to UTF-8; 0: names as written (quotes removed), for ENVELOPE.
 * NULL when there is no address. Free with mime_addr_free. */
struct mime_addr *mime_addr_parse(const char *s, size_t n, int decode);
void mime_addr_free(struct mime_addr *a);

/* RFC 5322 dates, with or without the day of the week, obsolete zones
 * (UT, GMT, EST..PDT, military letters as +0000), two-digit years,
 * comments, the asctime form and IMAP's "dd-Mon-yyyy hh:mm:ss +zzzz".
 * 0 with *t (seconds since the epoch, UTC) and *zone (minutes east of
 * UTC; may be NULL) set, or -1. */
int mime_date_parse(const char *s, size_t n, int64_t *t, int *zone);

/* IMAP (RFC 3501 7.4.2), appended to out: BODY (ext 0) or BODYSTRUCTURE
 * (ext 1) of part p, and ENVELOPE of the message whose header is part p's
 * (the root, or the child of a message/rfc822 part). Strings are quoted,
 * or literals when they hold 8-bit bytes or line ends; parameter values
 * that are not ASCII go out as RFC 2231 name*=utf-8''... */
void mime_bodystructure(const struct mime_msg *m, const struct mime_part *p, int ext,
	struct buf *out);
void mime_envelope(const struct mime_msg *m, const struct mime_part *p, struct buf *out);

#endif
