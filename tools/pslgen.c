/*
 * pslgen.c - the public suffix list (publicsuffix.org, Debian's
 * publicsuffix package) as a compact C table for dmarc.c, made at build
 * time (the list itself is never committed):
 *
 *     pslgen public_suffix_list.dat OUTPUT
 *
 * Each rule is turned around label by label ("*.kawasaki.jp" becomes
 * "jp.kawasaki.*"), the rules are sorted, and each is written as the
 * length of the prefix it shares with the one before (capped at 39) and
 * the rest of its bytes, then an end mark. Those symbols come from an
 * alphabet of 40 (end, a-z, 0-9, '-', '.', '*'), packed three to a 16-bit
 * word (40^3 = 64000): about 40 KB for the 9,000 rules, read from the
 * start at each look-up. Exception rules ("!www.ck", a handful) are a
 * plain list. Labels in Unicode (IDN rules, UTF-8 in the list) are
 * written as their A-labels (RFC 3492 Punycode, "xn--"), the form mail
 * domains reach us in.
 *
 * Plain C, no dependencies; Makefile and Makefile.msvc build it with the
 * compiler of the machine that builds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX 20000
#define RULE_MAX 256
#define PREFIX_MAX 39
#define ALPHABET "abcdefghijklmnopqrstuvwxyz0123456789-.*"

static char *rules[RULES_MAX], *except[RULES_MAX];
static int nrules, nexcept;
static unsigned char *syms;
static size_t nsyms, syms_cap;

static void put(int sym)
{
	if (nsyms == syms_cap) {
		syms_cap = syms_cap ? syms_cap * 2 : 65536;
		syms = realloc(syms, syms_cap);
		if (!syms) {
			exit(1);
		}
	}
	syms[nsyms++] = (unsigned char)sym;
}

/* s turned around label by label into out. */
static void reverse_labels(const char *s, char *out)
{
	size_t n = strlen(s), o = 0;
	while (n) {
		size_t start = n;
		while (start && s[start - 1] != '.') {
			start--;
		}
		if (o) {
			out[o++] = '.';
		}
		memcpy(out + o, s + start, n - start);
		o += n - start;
		n = start ? start - 1 : 0;
	}
	out[o] = '\0';
}

/* ---- Punycode (RFC 3492 6.3) ---- */

static unsigned adapt(unsigned delta, unsigned points, int first)
{
	unsigned k = 0;
	delta = first ? delta / 700 : delta / 2;
	delta += delta / points;
	while (delta > ((36 - 1) * 26) / 2) {
		delta /= 36 - 1;
		k += 36;
	}
	return k + (36 * delta) / (delta + 38);
}

static char digit(unsigned d)
{
	return (char)(d < 26 ? 'a' + d : '0' + d - 26);
}

/* The code points of UTF-8 s[0..n) into cp; their count, -1 if bad. */
static int utf8_decode(const unsigned char *s, size_t n, unsigned *cp, int max)
{
	int k = 0;
	for (size_t i = 0; i < n; k++) {
		unsigned c = s[i], len = c < 0x80    ? 1
		                         : c >= 0xf0 ? 4
		                         : c >= 0xe0 ? 3
		                         : c >= 0xc0 ? 2
		                                     : 0;
		if (!len || i + len > n || k == max) {
			return -1;
		}
		c = len == 1 ? c : c & (0xff >> (len + 1));
		for (unsigned j = 1; j < len; j++) {
			c = c << 6 | (s[i + j] & 0x3f);
		}
		cp[k] = c;
		i += len;
	}
	return k;
}

/* One label's A-label into out (at o); the new length, or 0. */
static size_t punycode(const char *label, size_t n, char *out, size_t o, size_t cap)
{
	unsigned cp[RULE_MAX], nb = 0, h, bias = 72, code = 128, delta = 0;
	int len = utf8_decode((const unsigned char *)label, n, cp, RULE_MAX);
	if (len < 0 || o + 4 >= cap) {
		return 0;
	}
	memcpy(out + o, "xn--", 4);
	o += 4;
	for (int i = 0; i < len; i++) {
		if (cp[i] < 0x80 && o < cap) {
			out[o++] = (char)cp[i];
			nb++;
		}
	}
	if (nb && o < cap) {
		out[o++] = '-';
	}
	for (h = nb; h < (unsigned)len; code++, delta++) {
		unsigned m = 0xffffffff;
		for (int i = 0; i < len; i++) {
			m = cp[i] >= code && cp[i] < m ? cp[i] : m;
		}
		delta += (m - code) * (h + 1);
		code = m;
		for (int i = 0; i < len; i++) {
			if (cp[i] < code) {
				delta++;
			} else if (cp[i] == code) {
				unsigned q = delta;
				for (unsigned k = 36;; k += 36) {
					unsigned t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
					if (q < t || o + 1 >= cap) {
						break;
					}
					out[o++] = digit(t + (q - t) % (36 - t));
					q = (q - t) / (36 - t);
				}
				if (o + 1 >= cap) {
					return 0;
				}
				out[o++] = digit(q);
				bias = adapt(delta, h + 1, h == nb);
				delta = 0;
				h++;
			}
		}
	}
	return o;
}

/* s with each label that is not ASCII as its A-label; -1 if it does
 * not fit. */
static int to_ascii(char *s, size_t cap)
{
	char out[RULE_MAX];
	size_t o = 0;
	for (char *p = s; *p;) {
		size_t n = strcspn(p, ".");
		int ascii = 1;
		for (size_t i = 0; i < n; i++) {
			ascii &= (unsigned char)p[i] < 0x80;
		}
		if (ascii) {
			if (o + n >= sizeof out) {
				return -1;
			}
			memcpy(out + o, p, n);
			o += n;
		} else if ((o = punycode(p, n, out, o, sizeof out)) == 0) {
			return -1;
		}
		p += n;
		if (*p == '.') {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	if (o >= cap) {
		return -1;
	}
	memcpy(s, out, o + 1);
	return 0;
}

/* A rule in lower case of the alphabet; 0 when it has other bytes. */
static int plain(char *s)
{
	for (char *p = s; *p; p++) {
		if (*p >= 'A' && *p <= 'Z') {
			*p = (char)(*p + 32);
		}
		if (!strchr(ALPHABET, *p)) {
			return 0;
		}
	}
	return *s != '\0';
}

static int by_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_list(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024], rev[RULE_MAX];
	if (!f) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *s = line + strspn(line, " \t");
		s[strcspn(s, " \t\r\n")] = '\0'; /* a rule ends at white space */
		int exc = *s == '!';
		if (!*s || !strncmp(s, "//", 2) || strlen(s) >= RULE_MAX ||
		        to_ascii(s + exc, RULE_MAX - 1) != 0 || !plain(s + exc)) {
			continue;
		}
		reverse_labels(s + exc, rev);
		char **to = exc ? except : rules;
		int *n = exc ? &nexcept : &nrules;
		if (*n < RULES_MAX && (to[(*n)++] = strdup(rev)) == NULL) {
			return -1;
		}
	}
	fclose(f);
	return nrules ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc != 3 || read_list(argv[1]) != 0) {
		fprintf(stderr,
		        "usage: pslgen public_suffix_list.dat OUTPUT (a list with rules)\n");
		return 2;
	}
	qsort(rules, (size_t)nrules, sizeof *rules, by_text);
	const char *prev = "";
	for (int i = 0; i < nrules; i++) {
		size_t p = 0;
		while (p < PREFIX_MAX && prev[p] && prev[p] == rules[i][p]) {
			p++;
		}
		put((int)p);
		for (const char *c = rules[i] + p; *c; c++) {
			put((int)(strchr(ALPHABET, *c) - ALPHABET) + 1);
		}
		put(0);
		prev = rules[i];
	}
	while (nsyms % 3) {
		put(0);
	}
	FILE *o = fopen(argv[2], "w");
	if (!o) {
		perror(argv[2]);
		return 1;
	}
	fprintf(o, "/* made by tools/pslgen.c from %s: do not edit */\n", argv[1]);
	fprintf(o, "#define PSL_ALPHABET \"%s\"\n#define PSL_RULES %d\n", ALPHABET, nrules);
	fprintf(o, "static const unsigned short psl_packed[] = {");
	for (size_t i = 0; i < nsyms; i += 3) {
		unsigned w = syms[i] + 40u * syms[i + 1] + 1600u * syms[i + 2];
		fprintf(o, "%s%u,", i % 48 ? "" : "\n", w);
	}
	fprintf(o, "\n};\nstatic const char *const psl_except[] = {");
	for (int i = 0; i < nexcept; i++) {
		fprintf(o, "\"%s\", ", except[i]);
	}
	fprintf(o, "NULL};\n");
	return fclose(o) == 0 ? 0 : 1;
}
