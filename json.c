/*
 * json.c - a small bounded reader of JSON (RFC 8259) for what ACME
 * servers answer: find a member of an object, an element of an array, a
 * string's value. No tree is built: a value is a span of the text, and
 * each lookup walks it again (the documents are a few KB). Nesting
 * deeper than JSON_DEPTH is refused, so hostile input costs a bounded
 * stack; every walk ends at the span's end.
 */
#include <string.h>

#include "rumble.h"

#define JSON_DEPTH 32

static const char *ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
	}
	return p;
}

/* After the string that starts at p (its opening quote); NULL if unended. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			p++;
		} else if (*p == '"') {
			return p + 1;
		} else if ((unsigned char)*p < 0x20) {
			return NULL;
		}
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth);

/* After the object or array that starts at p. */
static const char *skip_container(const char *p, const char *end, int depth)
{
	char close = *p == '{' ? '}' : ']';
	int object = *p == '{';
	p = ws(p + 1, end);
	if (p < end && *p == close) {
		return p + 1;
	}
	while (p < end) {
		if (object) {
			if (*p != '"' || !(p = skip_string(p, end))) {
				return NULL;
			}
			p = ws(p, end);
			if (p >= end || *p != ':') {
				return NULL;
			}
			p = ws(p + 1, end);
		}
		if (!(p = skip_value(p, end, depth + 1))) {
			return NULL;
		}
		p = ws(p, end);
		if (p < end && *p == close) {
			return p + 1;
		}
		if (p >= end || *p != ',') {
			return NULL;
		}
		p = ws(p + 1, end);
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth)
{
	if (p >= end || depth > JSON_DEPTH) {
		return NULL;
	}
	if (*p == '{' || *p == '[') {
		return skip_container(p, end, depth);
	}
	if (*p == '"') {
		return skip_string(p, end);
	}
	const char *q = p; /* number, true, false, null */
	while (q < end && strchr("+-.0123456789eEtrufalsn", *q)) {
		q++;
	}
	return q > p ? q : NULL;
}

/* see rumble.h */
struct json json_of(const char *text, size_t n)
{
	const char *end = text + n;
	const char *p = ws(text, end);
	const char *e = skip_value(p, end, 0);
	struct json v = {p, e ? (size_t)(e - p) : 0};
	return v;
}

/* After a member or element ending at p: where the next one starts (past
 * the comma), or NULL when no comma follows. */
static const char *next_member(const char *p, const char *end)
{
	p = ws(p, end);
	return p < end && *p == ',' ? ws(p + 1, end) : NULL;
}

/* see rumble.h */
int json_get(struct json obj, const char *key, struct json *out)
{
	const char *p = obj.p, *end = obj.p + obj.n;
	size_t kl = strlen(key);
	if (obj.n == 0 || *p != '{') {
		return -1;
	}
	p = ws(p + 1, end);
	while (p < end && *p == '"') {
		const char *k = p + 1, *ke = skip_string(p, end);
		if (!ke) {
			return -1;
		}
		p = ws(ke, end);
		if (p >= end || *p != ':') {
			return -1;
		}
		p = ws(p + 1, end);
		const char *ve = skip_value(p, end, 1);
		if (!ve) {
			return -1;
		}
		if ((size_t)(ke - 1 - k) == kl && !memcmp(k, key, kl)) {
			out->p = p;
			out->n = (size_t)(ve - p);
			return 0;
		}
		if (!(p = next_member(ve, end))) {
			return -1;
		}
	}
	return -1;
}

/* see rumble.h */
int json_at(struct json arr, int i, struct json *out)
{
	const char *p = arr.p, *end = arr.p + arr.n;
	if (arr.n == 0 || *p != '[') {
		return -1;
	}
	p = ws(p + 1, end);
	for (int k = 0; p < end && *p != ']'; k++) {
		const char *ve = skip_value(p, end, 1);
		if (!ve) {
			return -1;
		}
		if (k == i) {
			out->p = p;
			out->n = (size_t)(ve - p);
			return 0;
		}
		if (!(p = next_member(ve, end))) {
			return -1;
		}
	}
	return -1;
}

static int hex4(const char *p, const char *end, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p + i < end ? p[i] : 'x';
		int d = c >= '0' && c <= '9'                     ? c - '0'
		        : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
		                                                 : -1;
		if (d < 0) {
			return -1;
		}
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* see rumble.h */
int json_str(struct json v, char *out, size_t outlen)
{
	const char *p = v.p, *end = v.p + v.n - 1;
	size_t o = 0;
	if (v.n < 2 || *p != '"' || *end != '"') {
		return -1;
	}
	for (p++; p < end; p++) {
		char c = *p;
		if (c == '\\') {
			unsigned u;
			p++;
			c = *p == 'n'   ? '\n'
			    : *p == 't' ? '\t'
			    : *p == 'r' ? '\r'
			    : *p == 'b' ? '\b'
			    : *p == 'f' ? '\f'
			                : *p;
			if (*p == 'u') {
				if (hex4(p + 1, end, &u) != 0) {
					return -1;
				}
				p += 4;
				c = u < 0x80 ? (char)u : '?'; /* what ACME sends is ASCII */
			}
		}
		if (o + 1 >= outlen) {
			return -1;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}
