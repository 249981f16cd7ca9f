/*
 * smtp_source.c - a load generator for bench/smtp.sh, in the spirit of
 * Postfix's smtp-source: -m messages of -l bytes over -s parallel sessions,
 * one connection per message (or -r messages per connection), to
 * 127.0.0.1:port. Prints messages/s. Every reply is checked.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port = 2525, sessions = 20, total = 1000, size = 4096, per_conn = 1;
static const char *rcpt = "bench@example.org";
static int next_msg, failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *body;

static int take(void)
{
	pthread_mutex_lock(&lock);
	int n = next_msg < total ? next_msg++ : -1;
	pthread_mutex_unlock(&lock);
	return n;
}

/* Reads one reply; returns its code or -1. */
static int reply(int fd, char *buf, size_t len, size_t *have)
{
	for (;;) {
		char *nl;
		while ((nl = memmem(buf, *have, "\r\n", 2)) != NULL) {
			size_t l = (size_t)(nl - buf) + 2;
			int last = l >= 4 && buf[3] == ' ';
			int code = atoi(buf);
			memmove(buf, buf + l, *have - l);
			*have -= l;
			if (last) {
				return code;
			}
		}
		ssize_t n = read(fd, buf + *have, len - *have);
		if (n <= 0) {
			return -1;
		}
		*have += (size_t)n;
	}
}

static int say(int fd, const char *s, size_t n)
{
	return write(fd, s, n) == (ssize_t)n ? 0 : -1;
}

static int one_connection(int first)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(0x7f000001);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char buf[8192], cmd[512];
	size_t have = 0;
	int ok = reply(fd, buf, sizeof buf, &have) == 220 && say(fd, "EHLO bench.test\r\n", 17) == 0 &&
		 reply(fd, buf, sizeof buf, &have) == 250;
	for (int i = 0, n = first; ok && n >= 0 && i < per_conn; i++) {
		int l = snprintf(cmd, sizeof cmd, "MAIL FROM:<src%d@bench.test>\r\n", n);
		ok = say(fd, cmd, (size_t)l) == 0 && reply(fd, buf, sizeof buf, &have) == 250;
		l = snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", rcpt);
		ok = ok && say(fd, cmd, (size_t)l) == 0 && reply(fd, buf, sizeof buf, &have) == 250;
		ok = ok && say(fd, "DATA\r\n", 6) == 0 && reply(fd, buf, sizeof buf, &have) == 354;
		ok = ok && say(fd, body, strlen(body)) == 0 && reply(fd, buf, sizeof buf, &have) == 250;
		if (!ok) {
			fprintf(stderr, "message %d failed\n", n);
			__atomic_add_fetch(&failed, 1, __ATOMIC_RELAXED);
		}
		if (i + 1 < per_conn) {
			n = take();
		}
	}
	say(fd, "QUIT\r\n", 6);
	reply(fd, buf, sizeof buf, &have);
	close(fd);
	return ok ? 0 : -1;
}

static void *worker(void *arg)
{
	int n;
	while ((n = take()) >= 0) {
		one_connection(n);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "p:s:m:l:r:t:")) != -1) {
		switch (c) {
		case 'p': port = atoi(optarg); break;
		case 's': sessions = atoi(optarg); break;
		case 'm': total = atoi(optarg); break;
		case 'l': size = atoi(optarg); break;
		case 'r': per_conn = atoi(optarg); break;
		case 't': rcpt = optarg; break;
		default:
			fprintf(stderr, "usage: smtp_source [-p port] [-s sessions] [-m messages] [-l size] [-r per-connection] [-t rcpt]\n");
			return 2;
		}
	}
	body = malloc((size_t)size + 256);
	int n = sprintf(body, "From: bench@bench.test\r\nSubject: bench\r\n\r\n");
	while (n < size - 2) {
		int l = size - 2 - n > 76 ? 76 : size - 2 - n;
		memset(body + n, 'x', (size_t)l);
		n += l;
		if (n < size - 2) {
			memcpy(body + n, "\r\n", 2);
			n += 2;
		}
	}
	strcpy(body + n, "\r\n.\r\n");
	pthread_t *t = calloc((size_t)sessions, sizeof *t);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < sessions; i++) {
		pthread_create(&t[i], NULL, worker, NULL);
	}
	for (int i = 0; i < sessions; i++) {
		pthread_join(t[i], NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("%d messages of %d bytes over %d sessions in %.2f s: %.0f msgs/s, %d failed\n", total,
		size, sessions, s, total / s, failed);
	return failed ? 1 : 0;
}
