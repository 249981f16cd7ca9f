/*
 * posix/os.c - the platform layer (see os.h) for Linux and other POSIX
 * systems: BSD sockets, epoll on Linux and poll() elsewhere, pthreads,
 * flock() file locks, fork/exec for helper programs.
 *
 * Every descriptor made here is close-on-exec, so the programs started by
 * os_run_with_stdin inherit only their standard input/output.
 */
#define _GNU_SOURCE /* MSG_NOSIGNAL, tm_gmtoff, flock, syscall, setgroups */

#include "os.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- feature knobs: 0/1, chosen here from the platform, overridable ---- */
#ifndef OS_POLLER_EPOLL /* epoll instead of poll() */
#ifdef __linux__
#define OS_POLLER_EPOLL 1
#else
#define OS_POLLER_EPOLL 0
#endif
#endif
#ifndef OS_HAVE_FDATASYNC /* fdatasync() exists and is enough */
#ifdef __linux__
#define OS_HAVE_FDATASYNC 1
#else
#define OS_HAVE_FDATASYNC 0
#endif
#endif
#ifndef OS_COND_MONOTONIC /* pthread_condattr_setclock(CLOCK_MONOTONIC) */
#ifdef __APPLE__
#define OS_COND_MONOTONIC 0
#else
#define OS_COND_MONOTONIC 1
#endif
#endif

#if OS_POLLER_EPOLL
#include <sys/epoll.h>
#endif
#ifdef __linux__
#include <sched.h>
#include <sys/syscall.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored by os_init instead */
#endif

#define LISTEN_BACKLOG 511
/* Every thread's stack, set rather than inherited: musl's 128 KiB is too
 * small for Lua (200 nested C calls, an 8 KB luaL_Buffer in some), and
 * glibc's 8 MB (RLIMIT_STACK) each counts against a router that does not
 * overcommit. The sanitizers' frames are several times larger. */
#if defined(__SANITIZE_ADDRESS__)
#define THREAD_STACK_SIZE (8 * 1024 * 1024)
#else
#define THREAD_STACK_SIZE (2 * 1024 * 1024)
#endif

/* ---- start-up and errors ---- */

/* see os.h; POSIX arguments are bytes, UTF-8 under a UTF-8 locale */
void os_args_utf8(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
}

/* see os.h */
int os_stderr_is_tty(void)
{
	return isatty(2);
}

void os_stdio_binary(void)
{
}

int os_init(void)
{
	struct sigaction sa;

#ifdef __GLIBC__
	/* an arena per thread reserves 64 MB of address space each (VmSize
	 * near 800 MB); two are enough for a few workers */
	mallopt(M_ARENA_MAX, 2);
#endif
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGPIPE, &sa, NULL);
}

void os_memory_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0); /* glibc keeps freed memory; musl returns it itself */
#endif
}

const char *os_name(void)
{
#if defined(__linux__)
	return "linux";
#elif defined(__FreeBSD__)
	return "freebsd";
#elif defined(__OpenBSD__)
	return "openbsd";
#elif defined(__NetBSD__)
	return "netbsd";
#elif defined(__APPLE__)
	return "macos";
#else
	return "unix";
#endif
}

const char *os_arch(void)
{
#if defined(__x86_64__)
	return "x86_64";
#elif defined(__i386__)
	return "x86";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
	return "armhf"; /* floating point arguments in VFP registers */
#elif defined(__arm__)
	return "armel"; /* soft-float calling convention */
#elif defined(__mips__) && __mips == 64 && defined(__MIPSEL__)
	return "mips64el";
#elif defined(__mips__) && __mips == 64
	return "mips64";
#elif defined(__mips__) && defined(__MIPSEL__)
	return "mipsel";
#elif defined(__mips__)
	return "mips";
#elif defined(__powerpc64__)
	return "ppc64";
#elif defined(__powerpc__)
	return "ppc";
#elif defined(__riscv)
	return "riscv";
#else
	return "unknown";
#endif
}

/* strerror_r is the XSI one (int) or the GNU one (char *) depending on the
 * C library; _Generic picks the matching reader. */
static const char *strerror_xsi(int r, char *buf)
{
	return r == 0 ? buf : "unknown error";
}

static const char *strerror_gnu(char *s, char *buf)
{
	(void)buf;
	return s;
}

const char *os_strerror(void)
{
	static _Thread_local char buf[128];
	int e = errno;

	buf[0] = '\0';
	return _Generic(strerror_r(e, buf, sizeof buf), int: strerror_xsi, char *: strerror_gnu)(
		strerror_r(e, buf, sizeof buf), buf);
}

int os_errno_is_exists(void)
{
	return errno == EEXIST;
}

int os_errno_is_noent(void)
{
	return errno == ENOENT;
}

/* see os.h */
void os_error_save(struct os_err *s)
{
	s->e = errno;
	s->w = 0;
}

/* see os.h */
void os_error_restore(const struct os_err *s)
{
	errno = s->e;
}

int os_errno_is_nospace(void)
{
	return errno == ENOSPC || errno == EDQUOT;
}

/* ---- sockets ---- */

static int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0) {
		return -1;
	}
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

static int set_cloexec(int fd)
{
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Address text without the IPv4-mapped prefix: "::ffff:1.2.3.4" -> "1.2.3.4". */
static int addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	const void *a;
	int fam = ss->ss_family;

	if (fam == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		a = &s6->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			fam = AF_INET;
			a = &s6->sin6_addr.s6_addr[12];
		}
	} else if (fam == AF_INET) {
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return inet_ntop(fam, a, out, (socklen_t)len) ? 0 : -1;
}

static int new_socket(int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd >= 0 && set_cloexec(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A listening socket bound to one resolved address. */
static int listen_on(const struct sockaddr *sa, socklen_t salen, int v6only)
{
	int one = 1, fd = new_socket(sa->sa_family);

	if (fd < 0) {
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* A system without dual-stack sockets fails here and the caller
	 * falls back to IPv4. */
	if ((sa->sa_family == AF_INET6 &&
	            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) ||
	        bind(fd, sa, salen) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
	        set_nonblock(fd, 1) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Tries every address getaddrinfo gives for addr; an explicit IPv6
 * address is IPv6 only so that "0.0.0.0" and "::" can both be listened on. */
static int listen_resolved(const char *addr, int port, int v6only, int *gai)
{
	struct addrinfo hints, *res, *ai;
	char ps[16];
	int fd = -1;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(ps, sizeof ps, "%d", port);
	*gai = getaddrinfo(addr, ps, &hints, &res);
	if (*gai != 0) {
		return -1;
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = listen_on(ai->ai_addr, ai->ai_addrlen, v6only);
	}
	freeaddrinfo(res);
	return fd;
}

/* see os.h */
os_fd os_listen(const char *addr, int port, int ipv4_only, char *err, size_t errlen)
{
	int fd, gai = 0;
	int wild = !addr || !*addr;

	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "listen: bad port %d", port);
		return OS_BADFD;
	}
	if (wild && !ipv4_only) {
		errno = 0;
		fd = listen_resolved("::", port, 0, &gai);
		if (fd >= 0 || errno == EADDRINUSE || errno == EACCES) {
			goto done;
		}
	}
	fd = listen_resolved(wild ? "0.0.0.0" : addr, port, 1, &gai);
done:
	if (fd < 0) {
		snprintf(err, errlen, "listen on %s port %d: %s", wild ? "*" : addr, port,
		        gai ? gai_strerror(gai) : os_strerror());
		return OS_BADFD;
	}
	return fd;
}

/* see os.h */
os_fd os_accept(os_fd lfd, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	do {
		sl = sizeof ss;
		fd = accept((int)lfd, (struct sockaddr *)&ss, &sl);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) {
			return (os_fd)OS_AGAIN;
		}
		return OS_BADFD;
	}
	if (set_cloexec(fd) < 0 || set_nonblock(fd, 1) < 0) {
		close(fd);
		return OS_BADFD;
	}
	if (addr_text(&ss, peer, peerlen) < 0) {
		snprintf(peer, peerlen, "unknown");
	}
	/* the session layer gathers each round of replies into one write;
	 * Nagle would only hold the last one back for a delayed ACK */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* see os.h */
void os_ack_now(os_fd fd)
{
#ifdef TCP_QUICKACK
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
	(void)fd;
#endif
}

int os_local_addr(os_fd fd, char *addr, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getsockname((int)fd, (struct sockaddr *)&ss, &sl) < 0) {
		return -1;
	}
	return addr_text(&ss, addr, len);
}

/* Waits for a non-blocking connect to finish; 0 when connected. */
static int connect_wait(int fd, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int r, soerr = 0;
	socklen_t sl = sizeof soerr;

	do {
		int left = deadline < 0 ? -1 : (int)(deadline - os_now_ms());
		if (deadline >= 0 && left < 0) {
			left = 0;
		}
		r = poll(&pfd, 1, left);
	} while (r < 0 && errno == EINTR);
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
		return -1;
	}
	errno = soerr;
	return soerr ? -1 : 0;
}

static int numeric_addr(const char *addr, int port, struct addrinfo **res);

/* local: the address to bind to first, NULL for the OS's choice. */
static int connect_one(const struct addrinfo *ai, const struct addrinfo *local, int64_t deadline)
{
	int e, fd = new_socket(ai->ai_family);

	if (fd < 0) {
		return -1;
	}
	if (set_nonblock(fd, 1) < 0 || (local && bind(fd, local->ai_addr, local->ai_addrlen) < 0)) {
		goto fail;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	        (errno != EINPROGRESS || connect_wait(fd, deadline) < 0)) {
		goto fail;
	}
	if (set_nonblock(fd, 0) < 0) {
		goto fail;
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* see os.h */
os_fd os_connect(const char *host, int port, int timeout_ms)
{
	return os_connect_from(host, port, NULL, timeout_ms);
}

/* see os.h */
os_fd os_connect_from(const char *host, int port, const char *local, int timeout_ms)
{
	struct addrinfo hints, *res, *ai, *la = NULL;
	int64_t deadline = timeout_ms < 0 ? -1 : os_now_ms() + timeout_ms;
	char ps[16];
	int fd = -1;

	if (local && *local && numeric_addr(local, 0, &la) < 0) {
		return OS_BADFD;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = la ? la->ai_family : AF_UNSPEC; /* only what local can reach */
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0) {
		errno = la ? EAFNOSUPPORT : EHOSTUNREACH;
		res = NULL;
	}
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = connect_one(ai, la, deadline);
	}
	if (res) {
		freeaddrinfo(res);
	}
	if (la) {
		freeaddrinfo(la);
	}
	return fd < 0 ? OS_BADFD : fd;
}

int os_set_send_timeout(os_fd fd, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return setsockopt((int)fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Maps a failed read/write to the os.h result. */
static long io_result(void)
{
	return (errno == EAGAIN || errno == EWOULDBLOCK) ? OS_AGAIN : -1;
}

long os_read(os_fd fd, void *buf, size_t n)
{
	ssize_t r;

	do {
		r = recv((int)fd, buf, n, 0);
		if (r < 0 && errno == ENOTSOCK) {
			r = read((int)fd, buf, n);
		}
	} while (r < 0 && errno == EINTR);
	return r < 0 ? io_result() : (long)r;
}

long os_write(os_fd fd, const void *buf, size_t n)
{
	ssize_t r;

	do {
		r = send((int)fd, buf, n, MSG_NOSIGNAL);
		if (r < 0 && errno == ENOTSOCK) {
			r = write((int)fd, buf, n);
		}
	} while (r < 0 && errno == EINTR);
	return r < 0 ? io_result() : (long)r;
}

void os_close(os_fd fd)
{
	if (fd >= 0) {
		close((int)fd);
	}
}

int os_sock_port(os_fd fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getsockname((int)fd, (struct sockaddr *)&ss, &sl) < 0) {
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- UDP, addresses, name servers ---- */

#define UDP_PORT_TRIES 8 /* random local ports tried before the OS picks one */
#define RESOLV_CONF "/etc/resolv.conf"

/* getaddrinfo for a numeric address only: nothing is looked up. */
static int numeric_addr(const char *addr, int port, struct addrinfo **res)
{
	struct addrinfo hints;
	char ps[16];

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(ps, sizeof ps, "%d", port);
	if (!addr || getaddrinfo(addr, ps, &hints, res) != 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int new_udp(int family)
{
	int fd = socket(family, SOCK_DGRAM, 0);

	if (fd >= 0 && (set_cloexec(fd) < 0 || set_nonblock(fd, 1) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* see os.h */
os_fd os_udp_bind(const char *addr, int port)
{
	struct addrinfo *ai;
	int e, fd;

	if (numeric_addr(addr, port, &ai) < 0) {
		return OS_BADFD;
	}
	fd = new_udp(ai->ai_family);
	if (fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		e = errno;
		close(fd);
		errno = e;
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd < 0 ? OS_BADFD : fd;
}

/* Binds fd to a random port of the wildcard address, so that a query's
 * source port is hard to guess (RFC 5452, section 9.2). When every try is
 * taken, connect() lets the OS pick one. */
static void bind_random_port(int fd, int family)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = family == AF_INET6 ? sizeof *s6 : sizeof *s4;
	uint16_t r;
	int i;

	for (i = 0; i < UDP_PORT_TRIES && os_random(&r, sizeof r) == 0; i++) {
		uint16_t port = htons((uint16_t)(1024 + r % (65536 - 1024)));
		memset(&ss, 0, sizeof ss);
		if (family == AF_INET6) {
			s6->sin6_family = AF_INET6;
			s6->sin6_addr = in6addr_any;
			s6->sin6_port = port;
		} else {
			s4->sin_family = AF_INET;
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
			s4->sin_port = port;
		}
		if (bind(fd, (struct sockaddr *)&ss, sl) == 0 ||
		        (errno != EADDRINUSE && errno != EACCES)) {
			return;
		}
	}
}

/* see os.h */
os_fd os_udp_connect(const char *addr, int port)
{
	struct addrinfo *ai;
	int e, fd;

	if (numeric_addr(addr, port, &ai) < 0) {
		return OS_BADFD;
	}
	fd = new_udp(ai->ai_family);
	if (fd >= 0) {
		bind_random_port(fd, ai->ai_family);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			e = errno;
			close(fd);
			errno = e;
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd < 0 ? OS_BADFD : fd;
}

/* see os.h */
long os_udp_recvfrom(os_fd fd, void *buf, size_t n, char *from, size_t fromlen, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	ssize_t r;

	do {
		sl = sizeof ss;
		r = recvfrom((int)fd, buf, n, 0, (struct sockaddr *)&ss, &sl);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		return io_result();
	}
	if (addr_text(&ss, from, fromlen) < 0) {
		snprintf(from, fromlen, "unknown");
	}
	*port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return (long)r;
}

/* see os.h */
long os_udp_sendto(os_fd fd, const void *buf, size_t n, const char *addr, int port)
{
	struct addrinfo *ai;
	ssize_t r;

	if (numeric_addr(addr, port, &ai) < 0) {
		return -1;
	}
	do {
		r = sendto((int)fd, buf, n, 0, ai->ai_addr, ai->ai_addrlen);
	} while (r < 0 && errno == EINTR);
	freeaddrinfo(ai);
	return r < 0 ? io_result() : (long)r;
}

/* see os.h */
int os_wait_readable(os_fd fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = (int)fd, .events = POLLIN};
	int64_t deadline = os_now_ms() + timeout_ms;
	int r;

	for (;;) {
		int64_t left = timeout_ms < 0 ? -1 : deadline - os_now_ms();
		r = poll(&pfd, 1, timeout_ms >= 0 && left < 0 ? 0 : (int)left);
		if (r >= 0 || errno != EINTR) {
			break;
		}
	}
	return r < 0 ? -1 : r > 0;
}

int os_ip_parse(const char *s, uint8_t out[16])
{
	if (inet_pton(AF_INET, s, out) == 1) {
		return 4;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 16 : -1;
}

int os_ip_text(const uint8_t *addr, int len, char *out, size_t outlen)
{
	if (len != 4 && len != 16) {
		errno = EINVAL;
		return -1;
	}
	return inet_ntop(len == 4 ? AF_INET : AF_INET6, addr, out, (socklen_t)outlen) ? 0 : -1;
}

/* The address of a "nameserver ADDR" line, or NULL. Cuts line. */
static char *nameserver_of(char *line)
{
	char *p = line + strspn(line, " \t"), *end;

	if (strncmp(p, "nameserver", 10) != 0 || (p[10] != ' ' && p[10] != '\t')) {
		return NULL;
	}
	p += 10;
	p += strspn(p, " \t");
	end = p + strcspn(p, " \t\r\n#;");
	*end = '\0';
	return *p ? p : NULL;
}

/* see os.h; what the C library's resolver would use, without its
 * defaults: no file (or no nameserver line) gives 0 */
int os_dns_servers(char (*out)[64], int max)
{
	int n = 0, fd = open(RESOLV_CONF, O_RDONLY | O_CLOEXEC);
	char line[512], *a;
	FILE *f;

	if (fd < 0) {
		return 0;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return 0;
	}
	while (n < max && fgets(line, sizeof line, f)) {
		a = nameserver_of(line);
		if (a && strlen(a) < sizeof out[0]) {
			memcpy(out[n++], a, strlen(a) + 1);
		}
	}
	fclose(f);
	return n;
}

/* ---- poller ---- */

#if OS_POLLER_EPOLL

#define EPOLL_BATCH 128

struct os_poller {
	int epfd;
};

struct os_poller *os_poller_new(void)
{
	struct os_poller *p = malloc(sizeof *p);

	if (!p) {
		return NULL;
	}
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void os_poller_free(struct os_poller *p)
{
	if (p) {
		close(p->epfd);
		free(p);
	}
}

static int epoll_set(struct os_poller *p, int op, os_fd fd, int events, void *ptr)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = ((events & OS_EV_READ) ? EPOLLIN : 0) | ((events & OS_EV_WRITE) ? EPOLLOUT : 0);
	ev.data.ptr = ptr;
	return epoll_ctl(p->epfd, op, (int)fd, &ev);
}

int os_poller_add(struct os_poller *p, os_fd fd, int events, void *ptr)
{
	return epoll_set(p, EPOLL_CTL_ADD, fd, events, ptr);
}

int os_poller_mod(struct os_poller *p, os_fd fd, int events, void *ptr)
{
	return epoll_set(p, EPOLL_CTL_MOD, fd, events, ptr);
}

int os_poller_del(struct os_poller *p, os_fd fd)
{
	return epoll_set(p, EPOLL_CTL_DEL, fd, 0, NULL);
}

int os_poller_wait(struct os_poller *p, struct os_event *ev, int max, int timeout_ms)
{
	struct epoll_event ee[EPOLL_BATCH];
	int i, n;

	n = epoll_wait(p->epfd, ee, max < EPOLL_BATCH ? max : EPOLL_BATCH, timeout_ms);
	if (n < 0) {
		return errno == EINTR ? 0 : -1;
	}
	for (i = 0; i < n; i++) {
		uint32_t e = ee[i].events;
		ev[i].ptr = ee[i].data.ptr;
		ev[i].events =
		        ((e & EPOLLIN) ? OS_EV_READ : 0) | ((e & EPOLLOUT) ? OS_EV_WRITE : 0);
		if (e & (EPOLLERR | EPOLLHUP)) {
			ev[i].events |= OS_EV_ERROR | OS_EV_READ;
		}
	}
	return n;
}

#else /* poll() */

/* A pollfd array with the owner pointers beside it, and an index from
 * descriptor to slot so that mod and del do not search. */
struct os_poller {
	struct pollfd *fds;
	void **ptrs;
	int n, cap;
	int *slot; /* slot[fd] = index in fds, or -1 */
	int nslot;
	int next; /* where the next scan starts, for fairness */
};

struct os_poller *os_poller_new(void)
{
	return calloc(1, sizeof(struct os_poller));
}

void os_poller_free(struct os_poller *p)
{
	if (p) {
		free(p->fds);
		free(p->ptrs);
		free(p->slot);
		free(p);
	}
}

static short poll_events(int events)
{
	return (short)(((events & OS_EV_READ) ? POLLIN : 0) |
	               ((events & OS_EV_WRITE) ? POLLOUT : 0));
}

static int poll_grow(struct os_poller *p, int fd)
{
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 64;
		struct pollfd *f = realloc(p->fds, (size_t)cap * sizeof *f);
		void **q = f ? realloc(p->ptrs, (size_t)cap * sizeof *q) : NULL;
		if (f) {
			p->fds = f;
		}
		if (!q) {
			return -1;
		}
		p->ptrs = q;
		p->cap = cap;
	}
	if (fd >= p->nslot) {
		int i, ns = fd + 64;
		int *s = realloc(p->slot, (size_t)ns * sizeof *s);
		if (!s) {
			return -1;
		}
		for (i = p->nslot; i < ns; i++) {
			s[i] = -1;
		}
		p->slot = s;
		p->nslot = ns;
	}
	return 0;
}

int os_poller_add(struct os_poller *p, os_fd fd, int events, void *ptr)
{
	int i = (int)fd;

	if (fd < 0 || (i < p->nslot && p->slot[i] >= 0)) {
		errno = fd < 0 ? EBADF : EEXIST;
		return -1;
	}
	if (poll_grow(p, i) < 0) {
		errno = ENOMEM;
		return -1;
	}
	p->fds[p->n].fd = i;
	p->fds[p->n].events = poll_events(events);
	p->fds[p->n].revents = 0;
	p->ptrs[p->n] = ptr;
	p->slot[i] = p->n++;
	return 0;
}

static int poll_find(struct os_poller *p, os_fd fd)
{
	if (fd < 0 || fd >= p->nslot || p->slot[fd] < 0) {
		errno = ENOENT;
		return -1;
	}
	return p->slot[fd];
}

int os_poller_mod(struct os_poller *p, os_fd fd, int events, void *ptr)
{
	int k = poll_find(p, fd);

	if (k < 0) {
		return -1;
	}
	p->fds[k].events = poll_events(events);
	p->ptrs[k] = ptr;
	return 0;
}

int os_poller_del(struct os_poller *p, os_fd fd)
{
	int k = poll_find(p, fd), last = p->n - 1;

	if (k < 0) {
		return -1;
	}
	p->fds[k] = p->fds[last];
	p->ptrs[k] = p->ptrs[last];
	p->slot[p->fds[k].fd] = k;
	p->slot[fd] = -1;
	p->n--;
	return 0;
}

int os_poller_wait(struct os_poller *p, struct os_event *ev, int max, int timeout_ms)
{
	int i, k, got = 0, r = poll(p->fds, (nfds_t)p->n, timeout_ms);

	if (r < 0) {
		return errno == EINTR ? 0 : -1;
	}
	for (i = 0; i < p->n && got < max && r > 0; i++) {
		k = (p->next + i) % p->n;
		short re = p->fds[k].revents;
		if (!re) {
			continue;
		}
		ev[got].ptr = p->ptrs[k];
		ev[got].events =
		        ((re & POLLIN) ? OS_EV_READ : 0) | ((re & POLLOUT) ? OS_EV_WRITE : 0);
		if (re & (POLLERR | POLLHUP | POLLNVAL)) {
			ev[got].events |= OS_EV_ERROR | OS_EV_READ;
		}
		got++;
	}
	p->next = p->n ? (p->next + i) % p->n : 0;
	return got;
}

#endif

/* ---- wake-up pipe ---- */

int os_wakeup_open(struct os_wakeup *w)
{
	int fds[2];

	if (pipe(fds) < 0) {
		return -1;
	}
	if (set_cloexec(fds[0]) < 0 || set_cloexec(fds[1]) < 0 || set_nonblock(fds[0], 1) < 0 ||
	        set_nonblock(fds[1], 1) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	w->rfd = fds[0];
	w->wfd = fds[1];
	return 0;
}

void os_wakeup_poke(struct os_wakeup *w)
{
	ssize_t r;

	/* A full pipe (EAGAIN) is already readable: nothing more to do. */
	do {
		r = write((int)w->wfd, "", 1);
	} while (r < 0 && errno == EINTR);
}

void os_wakeup_drain(struct os_wakeup *w)
{
	char buf[256];
	ssize_t r;

	do {
		r = read((int)w->rfd, buf, sizeof buf);
	} while (r > 0 || (r < 0 && errno == EINTR));
}

void os_wakeup_close(struct os_wakeup *w)
{
	os_close(w->rfd);
	os_close(w->wfd);
	w->rfd = w->wfd = OS_BADFD;
}

/* ---- atomics (see os.h) ---- */

int os_atomic_load_int(volatile int *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void os_atomic_store_int(volatile int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int os_atomic_swap_int(volatile int *p, int v)
{
	return __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL);
}

uint32_t os_atomic_load_u32(volatile uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

uint32_t os_atomic_add_u32(volatile uint32_t *p, uint32_t n)
{
	return __atomic_add_fetch(p, n, __ATOMIC_ACQ_REL);
}

long os_atomic_load_long(volatile long *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

long os_atomic_add_long(volatile long *p, long n)
{
	return __atomic_add_fetch(p, n, __ATOMIC_ACQ_REL);
}

void *os_atomic_load_ptr(void *volatile *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void os_atomic_store_ptr(void *volatile *p, void *v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int os_atomic_cas_ptr(void *volatile *p, void *expect, void *v)
{
	return __atomic_compare_exchange_n(p, &expect, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* ---- C library differences (see os.h) ---- */

char *os_strtok(char *s, const char *delim, char **save)
{
	return strtok_r(s, delim, save);
}

int os_fseek(FILE *f, int64_t off, int whence)
{
	if ((int64_t)(off_t)off != off) {
		errno = EOVERFLOW;
		return -1;
	}
	return fseeko(f, (off_t)off, whence);
}

int64_t os_ftell(FILE *f)
{
	return (int64_t)ftello(f);
}

/* ---- threads and locks ---- */

struct os_thread {
	pthread_t t;
	void (*fn)(void *);
	void *arg;
};

struct os_mutex {
	pthread_mutex_t m;
};

struct os_cond {
	pthread_cond_t c;
};

static void *thread_main(void *arg)
{
	os_thread *t = arg;

	t->fn(t->arg);
	return NULL;
}

os_thread *os_thread_start(void (*fn)(void *), void *arg)
{
	os_thread *t = malloc(sizeof *t);
	pthread_attr_t at;
	int r;

	if (!t) {
		return NULL;
	}
	t->fn = fn;
	t->arg = arg;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, THREAD_STACK_SIZE);
	r = pthread_create(&t->t, &at, thread_main, t);
	pthread_attr_destroy(&at);
	if (r != 0) {
		free(t);
		errno = r;
		return NULL;
	}
	return t;
}

void os_thread_join(os_thread *t)
{
	if (t) {
		pthread_join(t->t, NULL);
		free(t);
	}
}

os_mutex *os_mutex_new(void)
{
	os_mutex *m = malloc(sizeof *m);

	if (m && pthread_mutex_init(&m->m, NULL) != 0) {
		free(m);
		return NULL;
	}
	return m;
}

void os_mutex_free(os_mutex *m)
{
	if (m) {
		pthread_mutex_destroy(&m->m);
		free(m);
	}
}

void os_mutex_lock(os_mutex *m)
{
	pthread_mutex_lock(&m->m);
}

void os_mutex_unlock(os_mutex *m)
{
	pthread_mutex_unlock(&m->m);
}

int os_mutex_trylock(os_mutex *m)
{
	return pthread_mutex_trylock(&m->m) == 0;
}

#if OS_COND_MONOTONIC
#define COND_CLOCK CLOCK_MONOTONIC
#else
#define COND_CLOCK CLOCK_REALTIME
#endif

os_cond *os_cond_new(void)
{
	os_cond *c = malloc(sizeof *c);
	pthread_condattr_t ca;
	int r;

	if (!c) {
		return NULL;
	}
	pthread_condattr_init(&ca);
#if OS_COND_MONOTONIC
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
	r = pthread_cond_init(&c->c, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0) {
		free(c);
		return NULL;
	}
	return c;
}

void os_cond_free(os_cond *c)
{
	if (c) {
		pthread_cond_destroy(&c->c);
		free(c);
	}
}

void os_cond_wait(os_cond *c, os_mutex *m, int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0) {
		pthread_cond_wait(&c->c, &m->m);
		return;
	}
	clock_gettime(COND_CLOCK, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&c->c, &m->m, &ts);
}

void os_cond_signal(os_cond *c)
{
	pthread_cond_signal(&c->c);
}

void os_cond_broadcast(os_cond *c)
{
	pthread_cond_broadcast(&c->c);
}

/* The CPUs this process may run on (a container's limit counts on Linux). */
int os_ncpu(void)
{
	long n;
#ifdef __linux__
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
		return CPU_COUNT(&set);
	}
#endif
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* ---- files ---- */

/* see os.h; folders are private to the server's user (mail lives there) */
int os_mkdir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0) {
		return 0;
	}
	if (errno == EEXIST && stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			return 0;
		}
		errno = EEXIST; /* a file is in the way */
	}
	return -1;
}

int os_mkdir_p(const char *path)
{
	char *p, *s = strdup(path);
	int r;

	if (!s) {
		return -1;
	}
	for (p = s; *p; p++) {
		if (p > s && *p == '/' && p[-1] != '/') {
			*p = '\0';
			r = os_mkdir(s);
			*p = '/';
			if (r < 0) {
				free(s);
				return -1;
			}
		}
	}
	r = *s ? os_mkdir(s) : 0;
	free(s);
	return r;
}

int os_rmdir(const char *path)
{
	return rmdir(path);
}

int os_remove(const char *path)
{
	return unlink(path);
}

int os_rename_atomic(const char *from, const char *to)
{
	return rename(from, to);
}

static int fd_sync(int fd)
{
	int r;

	do {
#if OS_HAVE_FDATASYNC
		r = fdatasync(fd);
#else
		r = fsync(fd);
#endif
	} while (r < 0 && errno == EINTR);
	return r;
}

int os_fsync(FILE *f)
{
	if (fflush(f) != 0) {
		return -1;
	}
	return fd_sync(fileno(f));
}

int os_fsync_dir(const char *dir)
{
	int r, fd = open(*dir ? dir : ".", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return -1;
	}
	do {
		r = fsync(fd);
	} while (r < 0 && errno == EINTR);
	/* Some file systems cannot sync a folder; the rename is as safe as it gets. */
	if (r < 0 && (errno == EINVAL || errno == EBADF)) {
		r = 0;
	}
	close(fd);
	return r;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t r = write(fd, p, len);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* The folder part of path ("." when there is none) into buf. */
static void dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (!slash) {
		snprintf(buf, len, ".");
	} else if (n == 0) {
		snprintf(buf, len, "/");
	} else {
		snprintf(buf, len, "%.*s", (int)n, path);
	}
}

/* Writes and syncs data into a new file tmp. */
static int write_tmp(const char *tmp, const void *data, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		return -1;
	}
	if (write_all(fd, data, len) < 0 || fd_sync(fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* see os.h */
int os_write_file_atomic(const char *path, const void *data, size_t len)
{
	static atomic_uint counter;
	size_t n = strlen(path) + 64;
	char *tmp = malloc(n), *dir = malloc(n);
	int r = -1;

	if (!tmp || !dir) {
		goto out;
	}
	snprintf(tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
	if (write_tmp(tmp, data, len) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		goto out;
	}
	dir_of(path, dir, n);
	r = os_fsync_dir(dir);
out:
	free(tmp);
	free(dir);
	return r;
}

int os_truncate(FILE *f, uint64_t size)
{
	if (size > (uint64_t)INT64_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (fflush(f) != 0) {
		return -1;
	}
	return ftruncate(fileno(f), (off_t)size);
}

/* see os.h */
int os_set_mtime(FILE *f, int64_t t)
{
	struct timespec ts[2] = {{(time_t)t, 0}, {(time_t)t, 0}};

	if (fflush(f) != 0) {
		return -1;
	}
	return futimens(fileno(f), ts);
}

static void stat_fill(const struct stat *s, struct os_stat *st)
{
	st->size = (uint64_t)s->st_size;
	st->mtime = (int64_t)s->st_mtime;
	st->ctime = (int64_t)s->st_ctime;
	st->atime = (int64_t)s->st_atime;
#ifdef __APPLE__
	st->mtime_ns = st->mtime * 1000000000LL + s->st_mtimespec.tv_nsec;
#else
	st->mtime_ns = st->mtime * 1000000000LL + s->st_mtim.tv_nsec;
#endif
	st->mode = (int)(s->st_mode & 07777);
	st->is_dir = S_ISDIR(s->st_mode) ? 1 : 0;
}

int os_stat(const char *path, struct os_stat *st)
{
	struct stat s;

	if (stat(path, &s) < 0) {
		return -1;
	}
	stat_fill(&s, st);
	return 0;
}

/* see os.h */
int os_disk_space(const char *path, uint64_t *avail, uint64_t *total)
{
	struct statvfs v;

	if (statvfs(path, &v) < 0) {
		return -1;
	}
	*avail = (uint64_t)v.f_bavail * v.f_frsize;
	*total = (uint64_t)v.f_blocks * v.f_frsize;
	return 0;
}

/* see os.h; the size is what reached the OS: fflush first after writing */
int os_fstat(FILE *f, struct os_stat *st)
{
	struct stat s;

	if (fstat(fileno(f), &s) < 0) {
		return -1;
	}
	stat_fill(&s, st);
	return 0;
}

/* see os.h; paths are bytes here */
FILE *os_fopen(const char *path, const char *mode)
{
	return fopen(path, mode);
}

FILE *os_fopen_rw(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0) {
		return NULL;
	}
	f = fdopen(fd, "r+b");
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

/* open(2) flags for an fopen mode; the mode for fdopen goes to fmode
 * without the "x" that fdopen does not take. */
static int mode_flags(const char *mode, char *fmode, size_t len)
{
	int fl, plus = strchr(mode, '+') != NULL;
	size_t n = 0;

	switch (mode[0]) {
	case 'w':
		fl = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
		break;
	case 'a':
		fl = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
		break;
	case 'r':
		fl = plus ? O_RDWR : O_RDONLY;
		break;
	default:
		return -1;
	}
	if (strchr(mode, 'x')) {
		fl |= O_EXCL;
	}
	for (; *mode && n + 1 < len; mode++) {
		if (*mode != 'x') {
			fmode[n++] = *mode;
		}
	}
	fmode[n] = '\0';
	return fl | O_CLOEXEC;
}

/* see os.h; a file written through here is made 0600 even if it existed */
FILE *os_fopen_private(const char *path, const char *mode)
{
	char fmode[8];
	int fd, fl = mode_flags(mode, fmode, sizeof fmode);
	FILE *f;

	if (fl < 0) {
		errno = EINVAL;
		return NULL;
	}
	fd = open(path, fl, 0600);
	if (fd < 0) {
		return NULL;
	}
	if ((fl & O_ACCMODE) != O_RDONLY) {
		(void)fchmod(fd, 0600);
	}
	f = fdopen(fd, fmode);
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

/* Whether dir/name is a folder, following links. */
static int entry_is_dir(const char *dir, const struct dirent *de)
{
	struct stat st;
	size_t n = strlen(dir) + strlen(de->d_name) + 2;
	char *p;
	int r;

#ifdef DT_DIR
	if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK) {
		return de->d_type == DT_DIR;
	}
#endif
	p = malloc(n);
	if (!p) {
		return 0;
	}
	snprintf(p, n, "%s/%s", dir, de->d_name);
	r = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return r;
}

/* see os.h */
int os_dir_walk(const char *dir, int (*fn)(const char *name, int is_dir, void *arg), void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d) {
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) {
			continue;
		}
		r = fn(n, entry_is_dir(dir, de), arg);
	}
	closedir(d);
	return r;
}

static int flock_retry(FILE *f, int op)
{
	int r;

	do {
		r = flock(fileno(f), op);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* flock() locks belong to the open file, so two FILEs on one path in one
 * process exclude each other (fcntl locks would not). */
int os_lock(FILE *f)
{
	return flock_retry(f, LOCK_EX);
}

/* Buffered writes reach the file before the next holder can read it. */
int os_unlock(FILE *f)
{
	fflush(f);
	return flock_retry(f, LOCK_UN);
}

int os_trylock(FILE *f)
{
	if (flock_retry(f, LOCK_EX | LOCK_NB) == 0) {
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -1;
}

int os_exe_path(char *buf, size_t len)
{
	static const char *const links[] = {
	        "/proc/self/exe", "/proc/curproc/exe", "/proc/curproc/file"};
	size_t i;

	for (i = 0; i < sizeof links / sizeof links[0]; i++) {
		ssize_t r = readlink(links[i], buf, len);
		if (r > 0 && (size_t)r < len) {
			buf[r] = '\0';
			return 0;
		}
		if (r > 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
	}
	return -1;
}

/* ---- time and randomness ---- */

int64_t os_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t os_time(void)
{
	return (int64_t)time(NULL);
}

int os_timezone_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm)) {
		return 0;
	}
	return (int)(tm.tm_gmtoff / 60);
}

void os_gmtime(int64_t t, struct tm *out)
{
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, out)) {
		memset(out, 0, sizeof *out);
	}
}

void os_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

static int random_urandom(unsigned char *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		return -1;
	}
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			close(fd);
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	close(fd);
	return 0;
}

/* getrandom(2) through syscall() so that any C library will do; an old
 * kernel without it falls back to /dev/urandom. */
int os_random(void *buf, size_t n)
{
	unsigned char *p = buf;
#if defined(__linux__) && defined(SYS_getrandom)
	while (n > 0) {
		long r = syscall(SYS_getrandom, p, n, 0);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		p += r;
		n -= (size_t)r;
	}
	if (n == 0) {
		return 0;
	}
#endif
	return random_urandom(p, n);
}

/* ---- process ---- */

/* A lock-free atomic is safe in a signal handler and lets os_signal_take
 * read and clear in one step, whichever thread the signal landed on. */
static atomic_int sig_pending;

static void on_signal(int sig)
{
	atomic_fetch_or(&sig_pending, sig == SIGHUP    ? OS_SIG_RELOAD
	                              : sig == SIGUSR1 ? OS_SIG_REOPEN
	                                               : OS_SIG_STOP);
}

void os_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int os_signal_take(void)
{
	return atomic_exchange(&sig_pending, 0);
}

/* Points fd at /dev/null. */
static void to_devnull(int fd, int flags)
{
	int n = open("/dev/null", flags);

	if (n >= 0 && n != fd) {
		dup2(n, fd);
		close(n);
	}
}

/* see os.h; call before any thread starts. The folder is kept: paths in
 * rumble.conf are relative to where the server was started. */
int os_daemonize(void)
{
	struct stat st;
	pid_t pid = fork();

	if (pid < 0) {
		return -1;
	}
	if (pid > 0) {
		_exit(0);
	}
	if (setsid() < 0) {
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid > 0) {
		_exit(0);
	}
	to_devnull(0, O_RDONLY);
	to_devnull(1, O_WRONLY);
	if (fstat(2, &st) < 0 || !S_ISREG(st.st_mode)) {
		to_devnull(2, O_WRONLY);
	}
	return 0;
}

/* see os.h */
int os_drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if (!user || !*user || geteuid() != 0) {
		return 0;
	}
	pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "RunAs: no such user \"%s\"", user);
		return -1;
	}
	gid = pw->pw_gid;
	if (group && *group) {
		gr = getgrnam(group);
		if (!gr) {
			snprintf(err, errlen, "RunAs: no such group \"%s\"", group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "RunAs %s: %s", user, os_strerror());
		return -1;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		snprintf(err, errlen, "RunAs %s: root could be regained", user);
		return -1;
	}
	return 0;
}

/* ---- giving the storage folder to the RunAs user (os_give_tree) ---- */

struct give {
	uid_t uid;
	gid_t gid;
	long given;
	const char *user, *top;
	char who[160];   /* "user:group", as chown wants it */
	char path[4096]; /* the entry at hand */
	char *err;
	size_t errlen;
};

static int give_fail(struct give *g, const char *why)
{
	snprintf(g->err, g->errlen, "%s cannot use %s (%s); run: chown -R %s %s", g->user, g->path,
	        why, g->who, g->top);
	return -1;
}

/* The ids and "user:group" of RunAs/RunAsGroup; 1 when the user is root. */
static int give_ids(struct give *g, const char *group)
{
	struct passwd *pw = getpwnam(g->user);
	struct group *gr;

	if (!pw) {
		snprintf(g->err, g->errlen, "no such user \"%s\"", g->user);
		return -1;
	}
	g->uid = pw->pw_uid;
	gr = group && *group ? getgrnam(group) : getgrgid(pw->pw_gid);
	if (group && *group && !gr) {
		snprintf(g->err, g->errlen, "no such group \"%s\"", group);
		return -1;
	}
	g->gid = gr ? gr->gr_gid : pw->pw_gid;
	if (gr) {
		snprintf(g->who, sizeof g->who, "%s:%s", g->user, gr->gr_name);
	} else {
		snprintf(g->who, sizeof g->who, "%s:%ld", g->user, (long)g->gid);
	}
	return g->uid == 0;
}

/* Whether the user can already read and write st (and search it, a folder)
 * with the one group os_drop_privileges leaves it. A file it owns counts
 * as usable: its mode is then the owner's choice. */
static int give_usable(const struct give *g, const struct stat *st)
{
	mode_t need = S_ISDIR(st->st_mode) ? 07 : 06;
	mode_t bits = st->st_gid == g->gid ? st->st_mode >> 3 : st->st_mode;
	return st->st_uid == g->uid || (bits & need) == need;
}

/* Gives the open entry fd to the user unless it can use it already. A file
 * with other hard links is also elsewhere: it stays as it is. */
static int give_entry(struct give *g, int fd, const struct stat *st)
{
	if (give_usable(g, st)) {
		return 0;
	}
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		return give_fail(g, "it has other hard links");
	}
	if (fchown(fd, g->uid, g->gid) != 0) {
		return give_fail(g, strerror(errno));
	}
	g->given++;
	return 0;
}

static int give_dir(struct give *g, int fd, int depth);

/* Opens the entry name of the folder dfd without following a symbolic
 * link, and only when it is still the folder or regular file that lstat
 * saw; -1 (errno 0) for anything else: it is left alone. */
static int give_open(int dfd, const char *name, struct stat *st)
{
	struct stat was;
	int fd;

	errno = 0;
	if (fstatat(dfd, name, &was, AT_SYMLINK_NOFOLLOW) != 0 ||
	        !(S_ISDIR(was.st_mode) || S_ISREG(was.st_mode))) {
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 &&
	        (fstat(fd, st) != 0 || st->st_dev != was.st_dev || st->st_ino != was.st_ino)) {
		close(fd);
		errno = 0;
		return -1;
	}
	return fd;
}

/* The entry name of the folder dfd: given, and walked if a folder. */
static int give_name(struct give *g, int dfd, const char *name, int depth)
{
	size_t len = strlen(g->path);
	struct stat st;
	int fd, rc;

	if (len + 1 + strlen(name) >= sizeof g->path) {
		return give_fail(g, "path too long");
	}
	snprintf(g->path + len, sizeof g->path - len, "/%s", name);
	fd = give_open(dfd, name, &st);
	if (fd < 0) {
		rc = errno == 0 || errno == ENOENT ? 0 : give_fail(g, strerror(errno));
	} else if ((rc = give_entry(g, fd, &st)) != 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
	} else {
		rc = give_dir(g, fd, depth + 1);
	}
	g->path[len] = '\0';
	return rc;
}

/* Walks the open folder fd (closed here). */
static int give_dir(struct give *g, int fd, int depth)
{
	DIR *d = depth > 32 ? NULL : fdopendir(fd);
	struct dirent *de;
	int rc = 0;

	if (!d) {
		close(fd);
		return give_fail(g, depth > 32 ? "folders nested too deep" : strerror(errno));
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			rc = give_name(g, dirfd(d), de->d_name, depth);
		}
	}
	closedir(d);
	return rc;
}

/* see os.h */
long os_give_tree(const char *dir, const char *user, const char *group, char *err, size_t errlen)
{
	struct give g = {.user = user, .top = dir, .err = err, .errlen = errlen};
	struct stat st;
	int fd, rc;

	if (!user || !*user || geteuid() != 0) {
		return 0;
	}
	rc = give_ids(&g, group);
	if (rc != 0) {
		return rc > 0 ? 0 : -1;
	}
	if (os_mkdir_p(dir) != 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(g.path, sizeof g.path, "%s", dir);
	/* the folder named in rumble.conf may itself be a link: it is followed */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = give_fail(&g, strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		return rc;
	}
	if (give_entry(&g, fd, &st) != 0) {
		close(fd);
		return -1;
	}
	return give_dir(&g, fd, 0) == 0 ? g.given : -1;
}

long os_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return -1;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			return -1;
		}
	}
	return (long)rl.rlim_cur;
}

int os_is_root(void)
{
	return geteuid() == 0;
}

long os_getpid(void)
{
	return (long)getpid();
}

void os_user_name(char *out, size_t len)
{
	uid_t uid = getuid();
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw = getpwuid(uid);
	if (uid == 0 && sudo && *sudo && strlen(sudo) < 64) {
		snprintf(out, len, "%s(sudo)", sudo);
	} else if (pw && pw->pw_name) {
		snprintf(out, len, "%s", pw->pw_name);
	} else {
		snprintf(out, len, "uid%ld", (long)uid);
	}
}

int os_process_alive(long pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int os_process_signal(long pid, int sig, char *err, size_t errlen)
{
	if (pid <= 0 || kill((pid_t)pid, sig == OS_SIG_RELOAD ? SIGHUP : SIGTERM) != 0) {
		snprintf(err, errlen, "cannot signal process %ld: %s", pid,
		        pid <= 0 ? "bad process id" : strerror(errno));
		return -1;
	}
	return 0;
}

/* The child of os_run_with_stdin: only async-signal-safe calls. It gets
 * back the default SIGPIPE and an empty signal mask for the program. */
static void run_child(const char *cmd, int in)
{
	sigset_t none;

	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in != 0 && dup2(in, 0) < 0) {
		_exit(127);
	}
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/* see os.h; a program killed by a signal gives 128 + the signal */
int os_run_with_stdin(const char *cmd, const char *path)
{
	int st, in = open(path, O_RDONLY | O_CLOEXEC);
	pid_t pid, r;

	if (in < 0) {
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		run_child(cmd, in);
	}
	close(in);
	if (pid < 0) {
		return -1;
	}
	do {
		r = waitpid(pid, &st, 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		return -1;
	}
	if (WIFEXITED(st)) {
		return WEXITSTATUS(st);
	}
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* Reads one line into buf without its end of line; the rest of an
 * over-long line is read and dropped. */
static int read_line(char *buf, size_t len)
{
	size_t n;
	int c;

	if (len == 0 || !fgets(buf, (int)len, stdin)) {
		return -1;
	}
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n') {
		buf[--n] = '\0';
	} else {
		while ((c = getchar()) != EOF && c != '\n') {
		}
	}
	if (n > 0 && buf[n - 1] == '\r') {
		buf[--n] = '\0';
	}
	return (int)n;
}

/* see os.h; returns the length read, -1 at end of input */
int os_read_secret(char *buf, size_t len)
{
	struct termios old, quiet;
	int tty = isatty(0) && tcgetattr(0, &old) == 0;
	int r;

	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	r = read_line(buf, len);
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &old);
	}
	return r;
}
