/*
 * embed.c - writes a file's bytes as a C array, for a source file that
 * carries another file inside the binary (lua/webadmin.c includes the web
 * admin's Lua this way). Makefile and Makefile.msvc both build it first,
 * with the compiler of the machine that builds, and run
 *
 *     embed NAME INPUT OUTPUT
 *
 * OUTPUT then holds "static const char NAME[] = { '\x2d', ..., '\0' };":
 * the bytes and a NUL, so sizeof NAME - 1 is the length and NAME is also
 * a C string when INPUT has no NUL. An array, not a string literal: MSVC
 * refuses a literal over about 64 KB, and no byte needs escaping.
 *
 * Plain C, no dependencies; the output is the same on every system.
 */
#include <stdio.h>
#include <string.h>

#define PER_LINE 12 /* bytes on a line of OUTPUT */

/* 1 when s is a C identifier. */
static int identifier(const char *s)
{
	const char *alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
	const char *digit = "0123456789";
	size_t i;

	if (!*s || !strchr(alpha, *s)) {
		return 0;
	}
	for (i = 1; s[i]; i++) {
		if (!strchr(alpha, s[i]) && !strchr(digit, s[i])) {
			return 0;
		}
	}
	return 1;
}

/* Writes the array; 0, or -1 when reading or writing failed. */
static int embed(FILE *in, FILE *out, const char *name)
{
	unsigned long n = 0;
	int c;

	fprintf(out, "/* made by tools/embed.c: do not edit */\n");
	fprintf(out, "static const char %s[] = {", name);
	while ((c = getc(in)) != EOF) {
		fprintf(out, "%s'\\x%02x',", n % PER_LINE ? " " : "\n\t", (unsigned)c);
		n++;
	}
	fprintf(out, "%s'\\0'\n};\n", n % PER_LINE ? " " : "\n\t");
	return ferror(in) || ferror(out) ? -1 : 0;
}

int main(int argc, char **argv)
{
	FILE *in, *out;
	int rc;

	if (argc != 4 || !identifier(argv[1])) {
		fprintf(stderr, "usage: embed NAME INPUT OUTPUT (NAME: a C identifier)\n");
		return 2;
	}
	in = fopen(argv[2], "rb");
	if (!in) {
		perror(argv[2]);
		return 1;
	}
	out = fopen(argv[3], "w");
	if (!out) {
		perror(argv[3]);
		fclose(in);
		return 1;
	}
	rc = embed(in, out, argv[1]);
	fclose(in);
	if (fclose(out) != 0 || rc != 0) {
		fprintf(stderr, "embed: cannot read %s or write %s\n", argv[2], argv[3]);
		remove(argv[3]); /* no half file for make to take as done */
		return 1;
	}
	return 0;
}
