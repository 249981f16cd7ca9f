/*
 * pop3_fetch.c - the POP3 client of bench/pop3.sh.
 *
 *   pop3_fetch -p PORT -u USER -w PASS [-n PASSES] [-d DEPTH]
 *       logs in, RETRs every message PASSES times with DEPTH commands in
 *       flight (pipelining), checks every reply, prints MB/s of message
 *       bytes (as received: dot-stuffed, CRLF) and messages/s.
 *   pop3_fetch -p PORT -i N [-u USER -w PASS]
 *       opens N sessions and leaves them idle (logged in when -u is given;
 *       a "%d" in USER is replaced by the session number), prints "ready"
 *       and waits for its standard input to close.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)

static int port = 1110, passes = 3, depth = 8, idle;
static const char *user, *pass = "pw";

struct conn {
	int fd;
	char *buf;
	size_t have, used;
};

static void die(const char *what)
{
	fprintf(stderr, "pop3_fetch: %s\n", what);
	exit(1);
}

static void conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		die("cannot connect");
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->buf = malloc(BUF_SIZE);
	c->have = c->used = 0;
}

/* Makes room and reads more; dies at the end of the stream. */
static void conn_fill(struct conn *c)
{
	if (c->used) {
		memmove(c->buf, c->buf + c->used, c->have - c->used);
		c->have -= c->used;
		c->used = 0;
	}
	if (c->have == BUF_SIZE) {
		die("reply too long");
	}
	ssize_t n = read(c->fd, c->buf + c->have, BUF_SIZE - c->have);
	if (n <= 0) {
		die("connection closed");
	}
	c->have += (size_t)n;
}

/* The next status line; the pointer is valid until the next call. */
static char *conn_line(struct conn *c)
{
	char *nl;
	while (!(nl = memmem(c->buf + c->used, c->have - c->used, "\r\n", 2))) {
		conn_fill(c);
	}
	char *line = c->buf + c->used;
	*nl = '\0';
	c->used = (size_t)(nl - c->buf) + 2;
	return line;
}

static void conn_say(struct conn *c, const char *s)
{
	size_t n = strlen(s);
	if (write(c->fd, s, n) != (ssize_t)n) {
		die("write failed");
	}
}

static void expect_ok(struct conn *c, const char *what)
{
	char *l = conn_line(c);
	if (strncmp(l, "+OK", 3) != 0) {
		fprintf(stderr, "pop3_fetch: %s: %s\n", what, l);
		exit(1);
	}
}

static void login(struct conn *c, const char *name)
{
	char cmd[512];
	expect_ok(c, "greeting");
	snprintf(cmd, sizeof cmd, "USER %s\r\nPASS %s\r\n", name, pass);
	conn_say(c, cmd);
	expect_ok(c, "USER");
	expect_ok(c, "PASS");
}

/* Reads one multi-line body up to its "\r\n.\r\n"; returns its bytes as
 * received. The search starts at the status line's CRLF, so that an
 * empty body ends at once. */
static size_t read_body(struct conn *c)
{
	size_t mark = c->used - 2, counted = 0;
	for (;;) {
		char *end = memmem(c->buf + mark, c->have - mark, "\r\n.\r\n", 5);
		if (end) {
			counted += (size_t)(end + 2 - (c->buf + mark));
			c->used = (size_t)(end - c->buf) + 5;
			return counted - 2;
		}
		/* all of it is body: keep only what may start the terminator */
		size_t keep = c->have - mark < 4 ? c->have - mark : 4;
		counted += c->have - mark - keep;
		memmove(c->buf, c->buf + c->have - keep, keep);
		c->have = keep;
		c->used = mark = 0;
		ssize_t r = read(c->fd, c->buf + c->have, BUF_SIZE - c->have);
		if (r <= 0) {
			die("connection closed in a message");
		}
		c->have += (size_t)r;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fetch_all(void)
{
	struct conn c;
	conn_open(&c);
	login(&c, user);
	conn_say(&c, "STAT\r\n");
	char *l = conn_line(&c);
	int count = 0;
	if (sscanf(l, "+OK %d", &count) != 1) {
		die("STAT failed");
	}
	double best = 0, bytes_total = 0, t_total = 0;
	for (int p = 0; p < passes; p++) {
		double t0 = now(), bytes = 0;
		int sent = 0, got = 0;
		char cmd[64];
		while (got < count) {
			while (sent < count && sent - got < depth) {
				snprintf(cmd, sizeof cmd, "RETR %d\r\n", ++sent);
				conn_say(&c, cmd);
			}
			expect_ok(&c, "RETR");
			bytes += (double)read_body(&c);
			got++;
		}
		double t = now() - t0, rate = bytes / t / 1e6;
		best = rate > best ? rate : best;
		bytes_total += bytes;
		t_total += t;
		printf("pass %d: %d messages, %.1f MB in %.3f s: %.0f MB/s, %.0f msgs/s\n", p + 1,
			count, bytes / 1e6, t, rate, count / t);
	}
	printf("RETR throughput: %.0f MB/s average, %.0f MB/s best\n", bytes_total / t_total / 1e6,
		best);
	conn_say(&c, "QUIT\r\n");
	expect_ok(&c, "QUIT");
	close(c.fd);
	return 0;
}

static int hold_idle(void)
{
	struct conn *c = calloc((size_t)idle, sizeof *c);
	char name[256];
	for (int i = 0; i < idle; i++) {
		conn_open(&c[i]);
		if (user) {
			snprintf(name, sizeof name, user, i);
			login(&c[i], name);
		} else {
			expect_ok(&c[i], "greeting");
		}
		free(c[i].buf); /* a megabyte per idle session would be silly */
		c[i].buf = NULL;
	}
	printf("ready\n");
	fflush(stdout);
	char b[64];
	while (read(0, b, sizeof b) > 0) {
	}
	for (int i = 0; i < idle; i++) {
		close(c[i].fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int ch;
	while ((ch = getopt(argc, argv, "p:u:w:n:d:i:")) != -1) {
		switch (ch) {
		case 'p': port = atoi(optarg); break;
		case 'u': user = optarg; break;
		case 'w': pass = optarg; break;
		case 'n': passes = atoi(optarg); break;
		case 'd': depth = atoi(optarg); break;
		case 'i': idle = atoi(optarg); break;
		default: die("usage: pop3_fetch -p PORT [-u USER -w PASS] [-n PASSES] [-d DEPTH] [-i N]");
		}
	}
	if (idle > 0) {
		return hold_idle();
	}
	if (!user) {
		die("-u USER is needed");
	}
	return fetch_all();
}
