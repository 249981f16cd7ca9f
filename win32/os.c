/*
 * win32/os.c - the platform layer (see os.h) for Windows (Vista and later):
 * WinSock 2 with WSAPoll, Win32 threads with SRW locks and condition
 * variables, MoveFileEx for atomic replace, LockFileEx for file locks,
 * CreateProcess for helper programs.
 *
 * Errors: Win32 and WinSock failures are remembered per thread and also
 * mapped to an errno value, so os_errno_is_* work for both kinds and
 * os_strerror() gives the system's own message for the last Win32 error.
 *
 * Text: UTF-8 inside Rumble, UTF-16 at this edge. Every path, name and
 * command line given to Windows goes through win_wide() to a W function, and
 * what Windows gives back (file names, the exe path, messages, argv,
 * console input) through win_utf8(). No A function and no C library call that
 * takes a path is used here: those read the ANSI code page.
 *
 * Builds with mingw-w64 (links with -lws2_32 -liphlpapi -lshell32;
 * advapi32 is a default library there) and with MSVC (the pragmas below
 * name the libraries; see Makefile.msvc).
 */
#include "win.h"

#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <time.h>

#ifdef _MSC_VER
#pragma comment(lib, "ws2_32")
#pragma comment(lib, "advapi32")
#pragma comment(lib, "iphlpapi")
#pragma comment(lib, "shell32")
#define OS_TLS __declspec(thread)
#else
#define OS_TLS _Thread_local
#endif

#define LISTEN_BACKLOG SOMAXCONN
/* File locks sit on one byte far past any real data: LockFileEx locks are
 * mandatory for I/O in the locked range, and flock() on POSIX is advisory. */
#define LOCK_OFFSET_HIGH 0x7fffffffUL
#define EPOCH_DIFF_100NS 116444736000000000ULL /* 1601-01-01 to 1970-01-01 */

/* ---- start-up and errors ---- */

static OS_TLS DWORD tl_win; /* last Win32/WinSock error code seen here */
static OS_TLS int tl_errno; /* the errno it was mapped to */

static int map_error(DWORD e)
{
	switch (e) {
	case ERROR_FILE_NOT_FOUND:
	case ERROR_PATH_NOT_FOUND:
	case ERROR_INVALID_NAME:
		return ENOENT;
	case ERROR_FILE_EXISTS:
	case ERROR_ALREADY_EXISTS:
		return EEXIST;
	case ERROR_ACCESS_DENIED:
	case ERROR_SHARING_VIOLATION:
	case WSAEACCES:
		return EACCES;
	case ERROR_LOCK_VIOLATION:
	case WSAEWOULDBLOCK:
		return EWOULDBLOCK;
	case ERROR_NOT_ENOUGH_MEMORY:
	case ERROR_OUTOFMEMORY:
		return ENOMEM;
	case ERROR_DIR_NOT_EMPTY:
		return ENOTEMPTY;
	case ERROR_FILENAME_EXCED_RANGE:
	case ERROR_INSUFFICIENT_BUFFER:
		return ENAMETOOLONG;
	case WSAEADDRINUSE:
		return EADDRINUSE;
	case WSAECONNREFUSED:
		return ECONNREFUSED;
	case WSAECONNRESET:
		return ECONNRESET;
	case WSAETIMEDOUT:
		return ETIMEDOUT;
	case WSAEINTR:
		return EINTR;
	default:
		return EIO;
	}
}

/* Records a Win32/WinSock failure; always returns -1. */
int win_fail(DWORD e)
{
	tl_win = e;
	tl_errno = map_error(e);
	errno = tl_errno;
	return -1;
}

static int sock_fail(void)
{
	return win_fail((DWORD)WSAGetLastError());
}

/* ---- text at the edge: UTF-8 inside, UTF-16 for Windows ---- */

/* A malloc'ed UTF-16 copy of s, or NULL with the failure recorded. Text
 * that is not UTF-8 is taken in the ANSI code page, as the A functions
 * took it before, so that a rumble.conf saved as ANSI keeps working. */
wchar_t *win_wide(const char *s)
{
	UINT cp = CP_UTF8;
	DWORD flags = MB_ERR_INVALID_CHARS;
	int n = MultiByteToWideChar(cp, flags, s, -1, NULL, 0);
	wchar_t *w;

	if (n == 0 && GetLastError() == ERROR_NO_UNICODE_TRANSLATION) {
		cp = CP_ACP;
		flags = 0;
		n = MultiByteToWideChar(cp, flags, s, -1, NULL, 0);
	}
	if (n == 0) {
		win_fail(GetLastError());
		return NULL;
	}
	w = malloc((size_t)n * sizeof *w);
	if (!w) {
		win_fail(ERROR_NOT_ENOUGH_MEMORY);
		return NULL;
	}
	if (MultiByteToWideChar(cp, flags, s, -1, w, n) == 0) {
		win_fail(GetLastError());
		free(w);
		return NULL;
	}
	return w;
}

/* w (NUL-terminated) as UTF-8 in out; -1 (ENAMETOOLONG) when it does not
 * fit. An unpaired surrogate, which NTFS allows in names, becomes U+FFFD. */
int win_utf8(const wchar_t *w, char *out, size_t len)
{
	int cap = len > INT_MAX ? INT_MAX : (int)len;

	if (cap > 0 && WideCharToMultiByte(CP_UTF8, 0, w, -1, out, cap, NULL, NULL) > 0) {
		return 0;
	}
	if (cap > 0) {
		*out = '\0';
	}
	return win_fail(cap > 0 ? GetLastError() : ERROR_INSUFFICIENT_BUFFER);
}

/* A malloc'ed UTF-8 copy of w, or NULL with the failure recorded. */
static char *utf8_dup(const wchar_t *w)
{
	int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
	char *s = n > 0 ? malloc((size_t)n) : NULL;

	if (!s) {
		win_fail(n > 0 ? ERROR_NOT_ENOUGH_MEMORY : GetLastError());
		return NULL;
	}
	WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
	return s;
}

/* The end of a call on a path made wide: frees w, then 0 when ok, else -1
 * with the call's error recorded (win_wide() recorded its own when w is NULL). */
int win_wide_done(wchar_t *w, BOOL ok)
{
	DWORD e = GetLastError();

	if (!w) {
		return -1;
	}
	free(w);
	return ok ? 0 : win_fail(e);
}

int os_init(void)
{
	WSADATA wd;
	int r = WSAStartup(MAKEWORD(2, 2), &wd);

	return r == 0 ? 0 : win_fail((DWORD)r);
}

void os_memory_trim(void)
{
	HeapCompact(GetProcessHeap(), 0);
}

const char *os_name(void)
{
	return "windows";
}

const char *os_arch(void)
{
#if defined(_M_X64) || defined(__x86_64__)
	return "x86_64";
#elif defined(_M_ARM64) || defined(__aarch64__)
	return "arm64";
#elif defined(_M_IX86) || defined(__i386__)
	return "x86";
#else
	return "unknown";
#endif
}

#define MSG_MAX 256 /* UTF-16 units of a system message kept */

/* The system's message for e in UTF-8, without the final ".\r\n"; 0 when
 * there is none. */
static size_t win_message(DWORD e, char *buf, size_t len)
{
	wchar_t w[MSG_MAX];
	DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
	        e, 0, w, MSG_MAX, NULL);
	size_t k;

	/* not win_utf8(): that would record a failure over the one described */
	if (n == 0 || len > INT_MAX ||
	        WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)len, NULL, NULL) == 0) {
		return 0;
	}
	k = strlen(buf);
	while (k > 0 && (buf[k - 1] == '\r' || buf[k - 1] == '\n' || buf[k - 1] == '.')) {
		buf[--k] = '\0';
	}
	return k;
}

/* The system's message for the last Win32 error when errno still says
 * what that error set; the C library's otherwise. */
const char *os_strerror(void)
{
	static OS_TLS char buf[3 * MSG_MAX]; /* a UTF-16 unit is 3 UTF-8 bytes at most */
	int win = tl_win != 0 && errno == tl_errno;
	const char *s;

	if (win && win_message(tl_win, buf, sizeof buf) > 0) {
		return buf;
	}
	if (win) {
		snprintf(buf, sizeof buf, "Windows error %lu", (unsigned long)tl_win);
		return buf;
	}
	s = strerror(errno);
	snprintf(buf, sizeof buf, "%s", s ? s : "unknown error");
	return buf;
}

/* ---- the command line and the console in UTF-8 ---- */

static UINT console_cp; /* the console's output code page before ours */

static void console_restore(void)
{
	SetConsoleOutputCP(console_cp);
}

/* UTF-8 bytes written to the console show as what they are; the code
 * page it had comes back at exit (it belongs to the console, which
 * outlives us). No console (a service, a pipe): nothing to do. */
static void console_utf8(void)
{
	UINT cp = GetConsoleOutputCP();

	if (cp != 0 && cp != CP_UTF8 && SetConsoleOutputCP(CP_UTF8)) {
		console_cp = cp;
		atexit(console_restore);
	}
}

/* see os.h */
int os_stderr_is_tty(void)
{
	return _isatty(2);
}

void os_stdio_binary(void)
{
	_setmode(_fileno(stdin), _O_BINARY);
	_setmode(_fileno(stdout), _O_BINARY);
}

/* see os.h; the strings live as long as the process, as argv does */
void os_args_utf8(int *argc, char ***argv)
{
	int n = 0, i;
	wchar_t **w = CommandLineToArgvW(GetCommandLineW(), &n);
	char **v = w && n > 0 ? calloc((size_t)n + 1, sizeof *v) : NULL;

	console_utf8();
	for (i = 0; v && i < n; i++) {
		v[i] = utf8_dup(w[i]);
		if (!v[i]) { /* out of memory: keep the ANSI argv */
			while (i-- > 0) {
				free(v[i]);
			}
			free(v);
			v = NULL;
		}
	}
	if (w) {
		LocalFree(w);
	}
	if (v) {
		*argc = n;
		*argv = v;
	}
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
	s->w = GetLastError();
}

/* see os.h */
void os_error_restore(const struct os_err *s)
{
	errno = s->e;
	SetLastError((DWORD)s->w);
}

int os_errno_is_nospace(void)
{
	DWORD e = GetLastError(); /* the CRT sets errno; Win32 calls only this */
	return errno == ENOSPC || e == ERROR_DISK_FULL || e == ERROR_HANDLE_DISK_FULL;
}

/* ---- sockets ---- */

static int set_nonblock(SOCKET s, int on)
{
	u_long v = on ? 1 : 0;

	return ioctlsocket(s, FIONBIO, &v) == 0 ? 0 : sock_fail();
}

static void close_keep_error(SOCKET s)
{
	DWORD e = tl_win;
	int en = errno;

	closesocket(s);
	tl_win = e;
	errno = en;
}

/* Address text without the IPv4-mapped prefix: "::ffff:1.2.3.4" -> "1.2.3.4". */
static int addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	const void *a;
	int fam = ss->ss_family;

	if (fam == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		a = &s6->sin6_addr;
		if (memcmp(s6->sin6_addr.s6_addr, mapped, sizeof mapped) == 0) {
			fam = AF_INET;
			a = &s6->sin6_addr.s6_addr[12];
		}
	} else if (fam == AF_INET) {
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return inet_ntop(fam, (void *)a, out, len) ? 0 : sock_fail();
}

/* A listening socket bound to one resolved address. SO_EXCLUSIVEADDRUSE:
 * on Windows SO_REUSEADDR would let another program steal the port. */
static SOCKET listen_on(const struct sockaddr *sa, int salen, int v6only)
{
	int one = 1;
	SOCKET s = socket(sa->sa_family, SOCK_STREAM, IPPROTO_TCP);

	if (s == INVALID_SOCKET) {
		sock_fail();
		return INVALID_SOCKET;
	}
	setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
	if ((sa->sa_family == AF_INET6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY,
	                                          (const char *)&v6only, sizeof v6only) != 0) ||
	        bind(s, sa, salen) != 0 || listen(s, LISTEN_BACKLOG) != 0) {
		sock_fail();
		close_keep_error(s);
		return INVALID_SOCKET;
	}
	if (set_nonblock(s, 1) < 0) {
		close_keep_error(s);
		return INVALID_SOCKET;
	}
	return s;
}

/* Tries every address getaddrinfo gives for addr; an explicit IPv6
 * address is IPv6 only so that "0.0.0.0" and "::" can both be listened on. */
static SOCKET listen_resolved(const char *addr, int port, int v6only)
{
	struct addrinfo hints, *res, *ai;
	SOCKET s = INVALID_SOCKET;
	char ps[16];
	int r;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(ps, sizeof ps, "%d", port);
	r = getaddrinfo(addr, ps, &hints, &res);
	if (r != 0) {
		win_fail((DWORD)r);
		return INVALID_SOCKET;
	}
	for (ai = res; ai && s == INVALID_SOCKET; ai = ai->ai_next) {
		s = listen_on(ai->ai_addr, (int)ai->ai_addrlen, v6only);
	}
	freeaddrinfo(res);
	return s;
}

/* see os.h */
os_fd os_listen(const char *addr, int port, int ipv4_only, char *err, size_t errlen)
{
	int wild = !addr || !*addr;
	SOCKET s = INVALID_SOCKET;

	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "listen: bad port %d", port);
		return OS_BADFD;
	}
	if (wild && !ipv4_only) {
		s = listen_resolved("::", port, 0);
		if (s != INVALID_SOCKET || errno == EADDRINUSE || errno == EACCES) {
			goto done;
		}
	}
	s = listen_resolved(wild ? "0.0.0.0" : addr, port, 1);
done:
	if (s == INVALID_SOCKET) {
		snprintf(err, errlen, "listen on %s port %d: %s", wild ? "*" : addr, port,
		        os_strerror());
		return OS_BADFD;
	}
	return (os_fd)s;
}

/* see os.h */
/* see os.h: Windows has no switch for one ACK; nothing here */
void os_ack_now(os_fd fd)
{
	(void)fd;
}

os_fd os_accept(os_fd lfd, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss, e;
	SOCKET s = accept((SOCKET)lfd, (struct sockaddr *)&ss, &sl);

	if (s == INVALID_SOCKET) {
		e = WSAGetLastError();
		if (e == WSAEWOULDBLOCK || e == WSAECONNRESET || e == WSAEINTR) {
			return (os_fd)OS_AGAIN;
		}
		win_fail((DWORD)e);
		return OS_BADFD;
	}
	if (set_nonblock(s, 1) < 0) {
		close_keep_error(s);
		return OS_BADFD;
	}
	if (addr_text(&ss, peer, peerlen) < 0) {
		snprintf(peer, peerlen, "unknown");
	}
	BOOL one = TRUE; /* replies are gathered per round; see posix/os.c */
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
	return (os_fd)s;
}

int os_local_addr(os_fd fd, char *addr, size_t len)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss;

	if (getsockname((SOCKET)fd, (struct sockaddr *)&ss, &sl) != 0) {
		return sock_fail();
	}
	return addr_text(&ss, addr, len);
}

/* Waits for a non-blocking connect with select(): WSAPoll does not report
 * a refused connect on older Windows. 0 when connected. */
static int connect_wait(SOCKET s, int64_t deadline)
{
	fd_set wr, ex;
	struct timeval tv, *tp = NULL;
	int r, soerr = 0, sl = sizeof soerr;

	FD_ZERO(&wr);
	FD_ZERO(&ex);
	FD_SET(s, &wr);
	FD_SET(s, &ex);
	if (deadline >= 0) {
		int64_t left = deadline - os_now_ms();
		left = left < 0 ? 0 : left;
		tv.tv_sec = (long)(left / 1000);
		tv.tv_usec = (long)(left % 1000) * 1000;
		tp = &tv;
	}
	r = select(0, NULL, &wr, &ex, tp);
	if (r == 0) {
		return win_fail(WSAETIMEDOUT);
	}
	if (r < 0) {
		return sock_fail();
	}
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&soerr, &sl) != 0) {
		return sock_fail();
	}
	return soerr ? win_fail((DWORD)soerr) : 0;
}

static int numeric_addr(const char *addr, int port, struct addrinfo **res);

/* local: the address to bind to first, NULL for the OS's choice. */
static SOCKET connect_one(
	const struct addrinfo *ai, const struct addrinfo *local, int64_t deadline)
{
	SOCKET s = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);

	if (s == INVALID_SOCKET) {
		sock_fail();
		return INVALID_SOCKET;
	}
	if (set_nonblock(s, 1) < 0) {
		goto fail;
	}
	if (local && bind(s, local->ai_addr, (int)local->ai_addrlen) != 0) {
		sock_fail();
		goto fail;
	}
	if (connect(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
		if (WSAGetLastError() != WSAEWOULDBLOCK) {
			sock_fail();
			goto fail;
		}
		if (connect_wait(s, deadline) < 0) {
			goto fail;
		}
	}
	if (set_nonblock(s, 0) < 0) {
		goto fail;
	}
	return s;
fail:
	close_keep_error(s);
	return INVALID_SOCKET;
}

/* see os.h */
os_fd os_connect(const char *host, int port, int timeout_ms)
{
	return os_connect_from(host, port, NULL, timeout_ms);
}

/* see os.h */
os_fd os_connect_from(const char *host, int port, const char *local, int timeout_ms)
{
	struct addrinfo hints, *res = NULL, *ai, *la = NULL;
	int64_t deadline = timeout_ms < 0 ? -1 : os_now_ms() + timeout_ms;
	SOCKET s = INVALID_SOCKET;
	char ps[16];
	int r;

	if (local && *local && numeric_addr(local, 0, &la) < 0) {
		return OS_BADFD;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = la ? la->ai_family : AF_UNSPEC; /* only what local can reach */
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof ps, "%d", port);
	r = getaddrinfo(host, ps, &hints, &res);
	if (r != 0) {
		win_fail((DWORD)r);
		res = NULL;
	}
	for (ai = res; ai && s == INVALID_SOCKET; ai = ai->ai_next) {
		s = connect_one(ai, la, deadline);
	}
	if (res) {
		freeaddrinfo(res);
	}
	if (la) {
		freeaddrinfo(la);
	}
	return s == INVALID_SOCKET ? OS_BADFD : (os_fd)s;
}

int os_set_send_timeout(os_fd fd, int ms)
{
	DWORD v = (DWORD)ms;

	return setsockopt((SOCKET)fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&v, sizeof v) == 0
	        ? 0
	        : -1;
}

/* Maps a failed recv/send to the os.h result. */
static long io_result(void)
{
	int e = WSAGetLastError();

	if (e == WSAEWOULDBLOCK) {
		return OS_AGAIN;
	}
	win_fail((DWORD)e);
	return -1;
}

long os_read(os_fd fd, void *buf, size_t n)
{
	int r;

	do {
		r = recv((SOCKET)fd, buf, n > INT_MAX ? INT_MAX : (int)n, 0);
	} while (r == SOCKET_ERROR && WSAGetLastError() == WSAEINTR);
	return r == SOCKET_ERROR ? io_result() : (long)r;
}

long os_write(os_fd fd, const void *buf, size_t n)
{
	int r;

	do {
		r = send((SOCKET)fd, buf, n > INT_MAX ? INT_MAX : (int)n, 0);
	} while (r == SOCKET_ERROR && WSAGetLastError() == WSAEINTR);
	return r == SOCKET_ERROR ? io_result() : (long)r;
}

void os_close(os_fd fd)
{
	if (fd != OS_BADFD) {
		closesocket((SOCKET)fd);
	}
}

int os_sock_port(os_fd fd)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss;

	if (getsockname((SOCKET)fd, (struct sockaddr *)&ss, &sl) != 0) {
		return sock_fail();
	}
	if (ss.ss_family == AF_INET6) {
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- UDP, addresses, name servers ---- */

#define UDP_PORT_TRIES 8 /* random local ports tried before the OS picks one */
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif

/* getaddrinfo for a numeric address only: nothing is looked up. */
static int numeric_addr(const char *addr, int port, struct addrinfo **res)
{
	struct addrinfo hints;
	char ps[16];
	int r;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(ps, sizeof ps, "%d", port);
	if (!addr) {
		return win_fail(WSAEINVAL);
	}
	r = getaddrinfo(addr, ps, &hints, res);
	return r == 0 ? 0 : win_fail((DWORD)r);
}

static SOCKET new_udp(int family)
{
	SOCKET s = socket(family, SOCK_DGRAM, IPPROTO_UDP);

	if (s == INVALID_SOCKET) {
		sock_fail();
		return INVALID_SOCKET;
	}
	if (set_nonblock(s, 1) < 0) {
		close_keep_error(s);
		return INVALID_SOCKET;
	}
	return s;
}

/* see os.h; a bound socket ignores ICMP "port unreachable" for what it
 * sent: Windows would otherwise fail its next recvfrom (WSAECONNRESET). */
os_fd os_udp_bind(const char *addr, int port)
{
	struct addrinfo *ai;
	BOOL off = FALSE;
	DWORD got = 0;
	SOCKET s;

	if (numeric_addr(addr, port, &ai) < 0) {
		return OS_BADFD;
	}
	s = new_udp(ai->ai_family);
	if (s != INVALID_SOCKET && bind(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
		sock_fail();
		close_keep_error(s);
		s = INVALID_SOCKET;
	}
	freeaddrinfo(ai);
	if (s != INVALID_SOCKET) {
		WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &got, NULL, NULL);
	}
	return s == INVALID_SOCKET ? OS_BADFD : (os_fd)s;
}

/* Binds s to a random port of the wildcard address, so that a query's
 * source port is hard to guess (RFC 5452, section 9.2). When every try is
 * taken, connect() lets the OS pick one. */
static void bind_random_port(SOCKET s, int family)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	int i, e, sl = family == AF_INET6 ? (int)sizeof *s6 : (int)sizeof *s4;
	uint16_t r;

	for (i = 0; i < UDP_PORT_TRIES && os_random(&r, sizeof r) == 0; i++) {
		u_short port = htons((u_short)(1024 + r % (65536 - 1024)));
		memset(&ss, 0, sizeof ss); /* the wildcard address is all zeroes */
		if (family == AF_INET6) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = port;
		} else {
			s4->sin_family = AF_INET;
			s4->sin_port = port;
		}
		if (bind(s, (struct sockaddr *)&ss, sl) == 0) {
			return;
		}
		e = WSAGetLastError();
		if (e != WSAEADDRINUSE && e != WSAEACCES) {
			return;
		}
	}
}

/* see os.h */
os_fd os_udp_connect(const char *addr, int port)
{
	struct addrinfo *ai;
	SOCKET s;

	if (numeric_addr(addr, port, &ai) < 0) {
		return OS_BADFD;
	}
	s = new_udp(ai->ai_family);
	if (s != INVALID_SOCKET) {
		bind_random_port(s, ai->ai_family);
		if (connect(s, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
			sock_fail();
			close_keep_error(s);
			s = INVALID_SOCKET;
		}
	}
	freeaddrinfo(ai);
	return s == INVALID_SOCKET ? OS_BADFD : (os_fd)s;
}

/* see os.h; a datagram longer than n is cut (WSAEMSGSIZE on Windows) */
long os_udp_recvfrom(os_fd fd, void *buf, size_t n, char *from, size_t fromlen, int *port)
{
	struct sockaddr_storage ss;
	int sl, r, e = 0;

	do {
		sl = sizeof ss;
		r = recvfrom((SOCKET)fd, buf, n > INT_MAX ? INT_MAX : (int)n, 0,
		        (struct sockaddr *)&ss, &sl);
		e = r == SOCKET_ERROR ? WSAGetLastError() : 0;
	} while (e == WSAEINTR);
	if (e == WSAEMSGSIZE) {
		r = n > INT_MAX ? INT_MAX : (int)n;
	} else if (e != 0) {
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
	int r;

	if (numeric_addr(addr, port, &ai) < 0) {
		return -1;
	}
	r = sendto((SOCKET)fd, buf, n > INT_MAX ? INT_MAX : (int)n, 0, ai->ai_addr,
	        (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	return r == SOCKET_ERROR ? io_result() : (long)r;
}

/* see os.h; select(), as for connect_wait */
int os_wait_readable(os_fd fd, int timeout_ms)
{
	fd_set rd, ex;
	struct timeval tv;
	int r;

	FD_ZERO(&rd);
	FD_ZERO(&ex);
	FD_SET((SOCKET)fd, &rd);
	FD_SET((SOCKET)fd, &ex);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	r = select(0, &rd, NULL, &ex, timeout_ms < 0 ? NULL : &tv);
	if (r == SOCKET_ERROR) {
		return sock_fail();
	}
	return r > 0;
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
		return win_fail(WSAEINVAL);
	}
	if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, (void *)addr, out, outlen)) {
		return sock_fail();
	}
	return 0;
}

/* see os.h; GetNetworkParams gives the IPv4 servers of every adapter */
int os_dns_servers(char (*out)[64], int max)
{
	ULONG len = 0;
	FIXED_INFO *fi;
	IP_ADDR_STRING *a;
	int n = 0;

	if (GetNetworkParams(NULL, &len) != ERROR_BUFFER_OVERFLOW || len == 0) {
		return 0;
	}
	fi = malloc(len);
	if (!fi) {
		return 0;
	}
	if (GetNetworkParams(fi, &len) == NO_ERROR) {
		for (a = &fi->DnsServerList; a && n < max; a = a->Next) {
			const char *s = a->IpAddress.String;
			size_t sl = strnlen(s, sizeof a->IpAddress.String);
			if (sl > 0 && sl < sizeof out[0]) {
				memcpy(out[n], s, sl);
				out[n++][sl] = '\0';
			}
		}
	}
	free(fi);
	return n;
}

/* ---- poller: WSAPoll over an array of WSAPOLLFD with owners beside ---- */

struct os_poller {
	WSAPOLLFD *fds;
	void **ptrs;
	int n, cap;
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
		free(p);
	}
}

static SHORT poll_events(int events)
{
	return (SHORT)(((events & OS_EV_READ) ? POLLRDNORM : 0) |
	               ((events & OS_EV_WRITE) ? POLLWRNORM : 0));
}

static int poll_find(struct os_poller *p, os_fd fd)
{
	int i;

	for (i = 0; i < p->n; i++) {
		if (p->fds[i].fd == (SOCKET)fd) {
			return i;
		}
	}
	errno = ENOENT;
	return -1;
}

static int poll_grow(struct os_poller *p)
{
	int cap = p->cap ? p->cap * 2 : 64;
	WSAPOLLFD *f;
	void **q;

	if (p->n < p->cap) {
		return 0;
	}
	f = realloc(p->fds, (size_t)cap * sizeof *f);
	if (!f) {
		return -1;
	}
	p->fds = f;
	q = realloc(p->ptrs, (size_t)cap * sizeof *q);
	if (!q) {
		return -1;
	}
	p->ptrs = q;
	p->cap = cap;
	return 0;
}

int os_poller_add(struct os_poller *p, os_fd fd, int events, void *ptr)
{
	if (poll_find(p, fd) >= 0) {
		errno = EEXIST;
		return -1;
	}
	if (poll_grow(p) < 0) {
		errno = ENOMEM;
		return -1;
	}
	p->fds[p->n].fd = (SOCKET)fd;
	p->fds[p->n].events = poll_events(events);
	p->fds[p->n].revents = 0;
	p->ptrs[p->n++] = ptr;
	return 0;
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
	int k = poll_find(p, fd);

	if (k < 0) {
		return -1;
	}
	p->n--;
	p->fds[k] = p->fds[p->n];
	p->ptrs[k] = p->ptrs[p->n];
	return 0;
}

static int poll_collect(struct os_poller *p, struct os_event *ev, int max)
{
	int i, k, got = 0;

	for (i = 0; i < p->n && got < max; i++) {
		SHORT re;
		k = (p->next + i) % p->n;
		re = p->fds[k].revents;
		if (!re) {
			continue;
		}
		ev[got].ptr = p->ptrs[k];
		ev[got].events = ((re & POLLRDNORM) ? OS_EV_READ : 0) |
		                 ((re & POLLWRNORM) ? OS_EV_WRITE : 0);
		if (re & (POLLERR | POLLHUP | POLLNVAL)) {
			ev[got].events |= OS_EV_ERROR | OS_EV_READ;
		}
		got++;
	}
	p->next = p->n ? (p->next + i) % p->n : 0;
	return got;
}

int os_poller_wait(struct os_poller *p, struct os_event *ev, int max, int timeout_ms)
{
	int r;

	if (p->n == 0) { /* WSAPoll refuses an empty set */
		Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
		return 0;
	}
	r = WSAPoll(p->fds, (ULONG)p->n, timeout_ms);
	if (r == SOCKET_ERROR) {
		return WSAGetLastError() == WSAEINTR ? 0 : sock_fail();
	}
	return r == 0 ? 0 : poll_collect(p, ev, max);
}

/* ---- wake-up: a loopback TCP pair (Windows has no pollable pipe) ---- */

/* Whether a's local address is b's peer: the accepted connection is ours
 * and not another local program's that raced us to the port. */
static int same_end(SOCKET a, SOCKET b)
{
	struct sockaddr_in x, y;
	int xl = sizeof x, yl = sizeof y;

	if (getsockname(a, (struct sockaddr *)&x, &xl) != 0 ||
	        getpeername(b, (struct sockaddr *)&y, &yl) != 0) {
		return 0;
	}
	return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
}

static int pair_connect(SOCKET l, SOCKET *rd, SOCKET *wr)
{
	struct sockaddr_in sa;
	int sl = sizeof sa, one = 1;
	SOCKET w = INVALID_SOCKET, r = INVALID_SOCKET;

	if (getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
		return sock_fail();
	}
	w = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	if (w == INVALID_SOCKET || connect(w, (struct sockaddr *)&sa, sizeof sa) != 0) {
		goto fail;
	}
	do {
		if (r != INVALID_SOCKET) {
			closesocket(r);
		}
		r = accept(l, NULL, NULL);
	} while (r != INVALID_SOCKET && !same_end(w, r));
	if (r == INVALID_SOCKET) {
		goto fail;
	}
	setsockopt(w, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
	*rd = r;
	*wr = w;
	return 0;
fail:
	sock_fail();
	if (w != INVALID_SOCKET) {
		close_keep_error(w);
	}
	return -1;
}

int os_wakeup_open(struct os_wakeup *w)
{
	struct sockaddr_in sa;
	SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	SOCKET rd = INVALID_SOCKET, wr = INVALID_SOCKET;
	int r = -1;

	if (l == INVALID_SOCKET) {
		return sock_fail();
	}
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0) {
		sock_fail();
	} else if (pair_connect(l, &rd, &wr) == 0) {
		if (set_nonblock(rd, 1) == 0 && set_nonblock(wr, 1) == 0) {
			w->rfd = (os_fd)rd;
			w->wfd = (os_fd)wr;
			r = 0;
		} else {
			closesocket(rd);
			closesocket(wr);
		}
	}
	close_keep_error(l);
	return r;
}

void os_wakeup_poke(struct os_wakeup *w)
{
	/* A full buffer (would block) is already readable: nothing to do. */
	send((SOCKET)w->wfd, "", 1, 0);
}

void os_wakeup_drain(struct os_wakeup *w)
{
	char buf[256];

	while (recv((SOCKET)w->rfd, buf, sizeof buf, 0) > 0) {
	}
}

void os_wakeup_close(struct os_wakeup *w)
{
	os_close(w->rfd);
	os_close(w->wfd);
	w->rfd = w->wfd = OS_BADFD;
}

/* ---- atomics (see os.h): Interlocked* are full barriers; a load is a
 * compare-exchange that changes nothing, so it orders on ARM64 too. int and
 * long are both 32 bits here, as LONG is. ---- */

int os_atomic_load_int(volatile int *p)
{
	return (int)InterlockedCompareExchange((volatile LONG *)p, 0, 0);
}

void os_atomic_store_int(volatile int *p, int v)
{
	InterlockedExchange((volatile LONG *)p, (LONG)v);
}

int os_atomic_swap_int(volatile int *p, int v)
{
	return (int)InterlockedExchange((volatile LONG *)p, (LONG)v);
}

uint32_t os_atomic_load_u32(volatile uint32_t *p)
{
	return (uint32_t)InterlockedCompareExchange((volatile LONG *)p, 0, 0);
}

uint32_t os_atomic_add_u32(volatile uint32_t *p, uint32_t n)
{
	return (uint32_t)InterlockedExchangeAdd((volatile LONG *)p, (LONG)n) + n;
}

long os_atomic_load_long(volatile long *p)
{
	return InterlockedCompareExchange(p, 0, 0);
}

long os_atomic_add_long(volatile long *p, long n)
{
	return InterlockedExchangeAdd(p, n) + n;
}

void *os_atomic_load_ptr(void *volatile *p)
{
	return InterlockedCompareExchangePointer(p, NULL, NULL);
}

void os_atomic_store_ptr(void *volatile *p, void *v)
{
	InterlockedExchangePointer(p, v);
}

int os_atomic_cas_ptr(void *volatile *p, void *expect, void *v)
{
	return InterlockedCompareExchangePointer(p, v, expect) == expect;
}

/* ---- C library differences (see os.h) ---- */

char *os_strtok(char *s, const char *delim, char **save)
{
	return strtok_s(s, delim, save);
}

int os_fseek(FILE *f, int64_t off, int whence)
{
	return _fseeki64(f, off, whence);
}

int64_t os_ftell(FILE *f)
{
	return _ftelli64(f);
}

/* ---- threads and locks ---- */

struct os_thread {
	HANDLE h;
	void (*fn)(void *);
	void *arg;
};

struct os_mutex {
	SRWLOCK l;
};

struct os_cond {
	CONDITION_VARIABLE c;
};

static unsigned __stdcall thread_main(void *arg)
{
	os_thread *t = arg;

	t->fn(t->arg);
	return 0;
}

os_thread *os_thread_start(void (*fn)(void *), void *arg)
{
	os_thread *t = malloc(sizeof *t);
	uintptr_t h;

	if (!t) {
		return NULL;
	}
	t->fn = fn;
	t->arg = arg;
	/* _beginthreadex, not CreateThread: the C library sets itself up. */
	h = _beginthreadex(NULL, 0, thread_main, t, 0, NULL);
	if (h == 0) {
		free(t);
		return NULL;
	}
	t->h = (HANDLE)h;
	return t;
}

void os_thread_join(os_thread *t)
{
	if (t) {
		WaitForSingleObject(t->h, INFINITE);
		CloseHandle(t->h);
		free(t);
	}
}

os_mutex *os_mutex_new(void)
{
	os_mutex *m = malloc(sizeof *m);

	if (m) {
		InitializeSRWLock(&m->l);
	}
	return m;
}

void os_mutex_free(os_mutex *m)
{
	free(m); /* SRW locks need no clean-up */
}

void os_mutex_lock(os_mutex *m)
{
	AcquireSRWLockExclusive(&m->l);
}

void os_mutex_unlock(os_mutex *m)
{
	ReleaseSRWLockExclusive(&m->l);
}

int os_mutex_trylock(os_mutex *m)
{
	return TryAcquireSRWLockExclusive(&m->l) != 0;
}

os_cond *os_cond_new(void)
{
	os_cond *c = malloc(sizeof *c);

	if (c) {
		InitializeConditionVariable(&c->c);
	}
	return c;
}

void os_cond_free(os_cond *c)
{
	free(c);
}

void os_cond_wait(os_cond *c, os_mutex *m, int timeout_ms)
{
	SleepConditionVariableSRW(&c->c, &m->l, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms, 0);
}

void os_cond_signal(os_cond *c)
{
	WakeConditionVariable(&c->c);
}

void os_cond_broadcast(os_cond *c)
{
	WakeAllConditionVariable(&c->c);
}

int os_ncpu(void)
{
	SYSTEM_INFO si;

	GetSystemInfo(&si);
	return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 1;
}

/* ---- files ---- */

/* 0 when path is made or was a folder already. */
int os_mkdir(const char *path)
{
	wchar_t *w = win_wide(path);
	DWORD a, e;

	if (!w) {
		return -1;
	}
	if (CreateDirectoryW(w, NULL)) {
		free(w);
		return 0;
	}
	e = GetLastError();
	a = GetFileAttributesW(w);
	free(w);
	if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY)) {
		return 0;
	}
	return win_fail(e);
}

/* Makes every prefix; one that cannot be made (a drive "C:", a share
 * "\\host") may still exist, so only the last step decides. */
int os_mkdir_p(const char *path)
{
	char *p, *s = _strdup(path);
	int r;

	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	for (p = s; *p; p++) {
		if (p > s && (*p == '/' || *p == '\\') && p[-1] != '/' && p[-1] != '\\') {
			char c = *p;
			*p = '\0';
			os_mkdir(s);
			*p = c;
		}
	}
	r = os_mkdir(s);
	free(s);
	return r;
}

int os_rmdir(const char *path)
{
	wchar_t *w = win_wide(path);

	return win_wide_done(w, w && RemoveDirectoryW(w));
}

int os_remove(const char *path)
{
	wchar_t *w = win_wide(path);

	return win_wide_done(w, w && DeleteFileW(w));
}

int os_rename_atomic(const char *from, const char *to)
{
	wchar_t *wf = win_wide(from), *wt = wf ? win_wide(to) : NULL;
	BOOL ok = wt && MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
	int r = win_wide_done(wt, ok);

	free(wf);
	return r;
}

static HANDLE file_handle(FILE *f)
{
	return (HANDLE)_get_osfhandle(_fileno(f));
}

int os_fsync(FILE *f)
{
	if (fflush(f) != 0) {
		return -1;
	}
	return FlushFileBuffers(file_handle(f)) ? 0 : win_fail(GetLastError());
}

/* MOVEFILE_WRITE_THROUGH already made the rename durable. */
int os_fsync_dir(const char *dir)
{
	(void)dir;
	return 0;
}

static int write_handle(HANDLE h, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		DWORD chunk = len > 0x40000000 ? 0x40000000 : (DWORD)len, done = 0;
		if (!WriteFile(h, p, chunk, &done, NULL)) {
			return win_fail(GetLastError());
		}
		p += done;
		len -= done;
	}
	return 0;
}

static int write_tmp(const char *tmp, const void *data, size_t len)
{
	wchar_t *w = win_wide(tmp);
	HANDLE h =
	        w ? CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL)
	          : INVALID_HANDLE_VALUE;
	int r;

	if (h == INVALID_HANDLE_VALUE) {
		return win_wide_done(w, FALSE);
	}
	free(w);
	r = write_handle(h, data, len);
	if (r == 0 && !FlushFileBuffers(h)) {
		r = win_fail(GetLastError());
	}
	CloseHandle(h);
	return r;
}

/* see os.h */
int os_write_file_atomic(const char *path, const void *data, size_t len)
{
	static volatile LONG counter;
	size_t n = strlen(path) + 64;
	char *tmp = malloc(n);
	int r = -1;

	if (!tmp) {
		errno = ENOMEM;
		return -1;
	}
	snprintf(tmp, n, "%s.tmp.%lu.%ld", path, (unsigned long)GetCurrentProcessId(),
	        (long)InterlockedIncrement(&counter));
	r = write_tmp(tmp, data, len);
	if (r == 0) {
		r = os_rename_atomic(tmp, path);
	}
	if (r < 0) {
		DWORD e = tl_win;
		int te = tl_errno, en = errno;
		os_remove(tmp);
		tl_win = e;
		tl_errno = te;
		errno = en;
	}
	free(tmp);
	return r;
}

int os_truncate(FILE *f, uint64_t size)
{
	FILE_END_OF_FILE_INFO eof;

	if (size > (uint64_t)INT64_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (fflush(f) != 0) {
		return -1;
	}
	eof.EndOfFile.QuadPart = (LONGLONG)size;
	if (!SetFileInformationByHandle(file_handle(f), FileEndOfFileInfo, &eof, sizeof eof)) {
		return win_fail(GetLastError());
	}
	return 0;
}

/* 100 ns ticks since 1601 to nanoseconds since 1970. */
static int64_t filetime_ns(FILETIME ft)
{
	ULARGE_INTEGER u;

	u.LowPart = ft.dwLowDateTime;
	u.HighPart = ft.dwHighDateTime;
	return ((int64_t)u.QuadPart - (int64_t)EPOCH_DIFF_100NS) * 100;
}

/* Windows has no change time; the last write stands in for it. Mode is
 * made up from the read-only attribute. */
static void stat_fill(
        DWORD attr, FILETIME atime, FILETIME mtime, DWORD hi, DWORD lo, struct os_stat *st)
{
	int64_t mns = filetime_ns(mtime);

	st->size = ((uint64_t)hi << 32) | lo;
	st->mtime_ns = mns;
	st->mtime = mns / 1000000000LL;
	st->ctime = st->mtime;
	st->atime = filetime_ns(atime) / 1000000000LL;
	st->is_dir = (attr & FILE_ATTRIBUTE_DIRECTORY) ? 1 : 0;
	st->mode = (attr & FILE_ATTRIBUTE_READONLY) ? 0444 : 0644;
	if (st->is_dir) {
		st->mode |= 0111;
	}
}

/* see os.h */
int os_set_mtime(FILE *f, int64_t t)
{
	ULARGE_INTEGER u;
	FILETIME ft;

	if (fflush(f) != 0) {
		return -1;
	}
	u.QuadPart = (ULONGLONG)(t * 10000000LL) + EPOCH_DIFF_100NS;
	ft.dwLowDateTime = u.LowPart;
	ft.dwHighDateTime = u.HighPart;
	return SetFileTime(file_handle(f), NULL, &ft, &ft) ? 0 : win_fail(GetLastError());
}

int os_stat(const char *path, struct os_stat *st)
{
	WIN32_FILE_ATTRIBUTE_DATA d;
	wchar_t *w = win_wide(path);

	if (win_wide_done(w, w && GetFileAttributesExW(w, GetFileExInfoStandard, &d)) != 0) {
		return -1;
	}
	stat_fill(d.dwFileAttributes, d.ftLastAccessTime, d.ftLastWriteTime, d.nFileSizeHigh,
	        d.nFileSizeLow, st);
	return 0;
}

/* see os.h */
int os_disk_space(const char *path, uint64_t *avail, uint64_t *total)
{
	ULARGE_INTEGER a, t;
	wchar_t *w = win_wide(path);

	if (win_wide_done(w, w && GetDiskFreeSpaceExW(w, &a, &t, NULL)) != 0) {
		return -1;
	}
	*avail = a.QuadPart;
	*total = t.QuadPart;
	return 0;
}

/* see os.h; the size is what reached the OS: fflush first after writing */
int os_fstat(FILE *f, struct os_stat *st)
{
	BY_HANDLE_FILE_INFORMATION d;

	if (!GetFileInformationByHandle(file_handle(f), &d)) {
		return win_fail(GetLastError());
	}
	stat_fill(d.dwFileAttributes, d.ftLastAccessTime, d.ftLastWriteTime, d.nFileSizeHigh,
	        d.nFileSizeLow, st);
	return 0;
}

/* Opens with CreateFile so that other handles may read, write, rename and
 * delete the file meanwhile, as on POSIX; the handle is not inherited. */
static FILE *open_shared(
        const char *path, DWORD access, DWORD disp, int crtflags, const char *fmode)
{
	DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
	wchar_t *w = win_wide(path);
	HANDLE h = w ? CreateFileW(w, access, share, NULL, disp, FILE_ATTRIBUTE_NORMAL, NULL)
	             : INVALID_HANDLE_VALUE;
	int fd;
	FILE *f;

	if (win_wide_done(w, h != INVALID_HANDLE_VALUE) != 0) {
		return NULL;
	}
	/* text mode (CRLF) only when asked for, as fopen without "b" */
	fd = _open_osfhandle((intptr_t)h, crtflags | (strchr(fmode, 'b') ? _O_BINARY : _O_TEXT));
	if (fd < 0) {
		CloseHandle(h);
		return NULL;
	}
	f = _fdopen(fd, fmode);
	if (!f) {
		_close(fd);
	}
	return f;
}

FILE *os_fopen_rw(const char *path)
{
	return open_shared(path, GENERIC_READ | GENERIC_WRITE, OPEN_ALWAYS, 0, "r+b");
}

/* see os.h; Windows files take the folder's access list, which the
 * service's installer sets; the mode is not translated. */
FILE *os_fopen_private(const char *path, const char *mode)
{
	return os_fopen(path, mode);
}

/* see os.h; fopen's modes ("x" too), with CreateFileW: the file may be
 * renamed or deleted while open, as on POSIX */
FILE *os_fopen(const char *path, const char *mode)
{
	int plus = strchr(mode, '+') != NULL, excl = strchr(mode, 'x') != NULL;
	DWORD rw = GENERIC_READ | GENERIC_WRITE;
	char fmode[8];
	size_t n = 0;

	for (; *mode && n + 1 < sizeof fmode; mode++) {
		if (*mode != 'x') {
			fmode[n++] = *mode;
		}
	}
	fmode[n] = '\0';
	switch (fmode[0]) {
	case 'r':
		return open_shared(
		        path, plus ? rw : GENERIC_READ, OPEN_EXISTING, plus ? 0 : _O_RDONLY, fmode);
	case 'w':
		return open_shared(path, plus ? rw : GENERIC_WRITE,
		        excl ? CREATE_NEW : CREATE_ALWAYS, 0, fmode);
	case 'a':
		return open_shared(path, plus ? rw : GENERIC_WRITE, excl ? CREATE_NEW : OPEN_ALWAYS,
		        _O_APPEND, fmode);
	default:
		errno = EINVAL;
		return NULL;
	}
}

/* FindFirstFileW on "dir\\*"; INVALID_HANDLE_VALUE with the error recorded,
 * except ERROR_FILE_NOT_FOUND (an empty drive root) in *empty. */
static HANDLE find_first(const char *dir, WIN32_FIND_DATAW *fd, int *empty)
{
	size_t n = strlen(dir) + 3;
	char *pat = malloc(n);
	wchar_t *w;
	HANDLE h = INVALID_HANDLE_VALUE;

	*empty = 0;
	if (!pat) {
		win_fail(ERROR_NOT_ENOUGH_MEMORY);
		return h;
	}
	snprintf(pat, n, "%s\\*", dir);
	w = win_wide(pat);
	free(pat);
	if (w) {
		h = FindFirstFileW(w, fd);
		*empty = h == INVALID_HANDLE_VALUE && GetLastError() == ERROR_FILE_NOT_FOUND;
		win_wide_done(w, h != INVALID_HANDLE_VALUE || *empty);
	}
	return h;
}

/* see os.h; names are given in UTF-8 (a name longer than MAX_PATH UTF-16
 * units cannot be in a folder) */
int os_dir_walk(const char *dir, int (*fn)(const char *name, int is_dir, void *arg), void *arg)
{
	WIN32_FIND_DATAW fd;
	char name[3 * MAX_PATH];
	int r = 0, empty;
	HANDLE h = find_first(dir, &fd, &empty);

	if (h == INVALID_HANDLE_VALUE) {
		return empty ? 0 : -1;
	}
	do {
		if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0 ||
		        win_utf8(fd.cFileName, name, sizeof name) != 0) {
			continue;
		}
		r = fn(name, (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) ? 1 : 0, arg);
	} while (r == 0 && FindNextFileW(h, &fd));
	FindClose(h);
	return r;
}

static int lock_range(FILE *f, DWORD flags)
{
	OVERLAPPED ov;

	memset(&ov, 0, sizeof ov);
	ov.OffsetHigh = LOCK_OFFSET_HIGH;
	if (LockFileEx(file_handle(f), flags, 0, 1, 0, &ov)) {
		return 0;
	}
	return win_fail(GetLastError());
}

int os_lock(FILE *f)
{
	return lock_range(f, LOCKFILE_EXCLUSIVE_LOCK);
}

/* Buffered writes reach the file before the next holder can read it. */
int os_unlock(FILE *f)
{
	OVERLAPPED ov;

	fflush(f);
	memset(&ov, 0, sizeof ov);
	ov.OffsetHigh = LOCK_OFFSET_HIGH;
	if (UnlockFileEx(file_handle(f), 0, 1, 0, &ov)) {
		return 0;
	}
	return win_fail(GetLastError());
}

int os_trylock(FILE *f)
{
	if (lock_range(f, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY) == 0) {
		return 0;
	}
	return (tl_win == ERROR_LOCK_VIOLATION || tl_win == ERROR_IO_PENDING) ? 1 : -1;
}

/* see os.h; in UTF-8 */
int os_exe_path(char *buf, size_t len)
{
	wchar_t *w = malloc(WPATH_MAX * sizeof *w);
	DWORD n = w ? GetModuleFileNameW(NULL, w, WPATH_MAX) : 0;
	int r;

	if (!w) {
		r = win_fail(ERROR_NOT_ENOUGH_MEMORY);
	} else if (n == 0) {
		r = win_fail(GetLastError());
	} else if (n >= WPATH_MAX) {
		r = win_fail(ERROR_INSUFFICIENT_BUFFER);
	} else {
		r = win_utf8(w, buf, len);
	}
	free(w);
	return r;
}

/* ---- time and randomness ---- */

int64_t os_now_ms(void)
{
	static LARGE_INTEGER freq;
	LARGE_INTEGER c;

	if (freq.QuadPart == 0) {
		QueryPerformanceFrequency(&freq); /* fixed at boot; a race writes the same */
	}
	QueryPerformanceCounter(&c);
	return (c.QuadPart / freq.QuadPart) * 1000 +
	       (c.QuadPart % freq.QuadPart) * 1000 / freq.QuadPart;
}

int64_t os_time(void)
{
	FILETIME ft;

	GetSystemTimeAsFileTime(&ft);
	return filetime_ns(ft) / 1000000000LL;
}

static FILETIME unix_filetime(int64_t t)
{
	ULARGE_INTEGER u;
	FILETIME ft;

	u.QuadPart = (ULONGLONG)t * 10000000ULL + EPOCH_DIFF_100NS;
	ft.dwLowDateTime = u.LowPart;
	ft.dwHighDateTime = u.HighPart;
	return ft;
}

/* Local time minus UTC at t, by the current zone's rules. */
int os_timezone_offset(int64_t t)
{
	FILETIME utc, loc;
	SYSTEMTIME su, sl;

	if (t < 0) {
		t = 0;
	}
	utc = unix_filetime(t);
	if (!FileTimeToSystemTime(&utc, &su) || !SystemTimeToTzSpecificLocalTime(NULL, &su, &sl) ||
	        !SystemTimeToFileTime(&sl, &loc)) {
		return 0;
	}
	return (int)((filetime_ns(loc) - filetime_ns(utc)) / 60000000000LL);
}

void os_gmtime(int64_t t, struct tm *out)
{
	__time64_t tt = (__time64_t)t;

	if (_gmtime64_s(out, &tt) != 0) {
		memset(out, 0, sizeof *out);
	}
}

void os_sleep_ms(int ms)
{
	Sleep(ms > 0 ? (DWORD)ms : 0);
}

int os_random(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ULONG chunk = n > 0x10000000 ? 0x10000000 : (ULONG)n;
		if (!RtlGenRandom(p, chunk)) {
			return win_fail(GetLastError());
		}
		p += chunk;
		n -= chunk;
	}
	return 0;
}

/* ---- process ---- */

static volatile LONG sig_pending;

/* see win.h */
void win_signal(int sig)
{
	InterlockedOr(&sig_pending, sig);
}

/* Runs on a thread of its own. On close and shutdown Windows ends the
 * process when this returns, so it waits there for the main loop to stop
 * (ExitProcess ends this thread too). Log-off is for other users' sessions
 * when running as a service: ignored. */
static BOOL WINAPI on_console(DWORD ev)
{
	switch (ev) {
	case CTRL_C_EVENT:
	case CTRL_BREAK_EVENT:
		InterlockedOr(&sig_pending, OS_SIG_STOP);
		return TRUE;
	case CTRL_CLOSE_EVENT:
	case CTRL_SHUTDOWN_EVENT:
		InterlockedOr(&sig_pending, OS_SIG_STOP);
		Sleep(INFINITE);
		return TRUE;
	case CTRL_LOGOFF_EVENT:
		return TRUE;
	default:
		return FALSE;
	}
}

void os_signals_install(void)
{
	SetConsoleCtrlHandler(on_console, TRUE);
}

int os_signal_take(void)
{
	return (int)InterlockedExchange(&sig_pending, 0);
}

int os_daemonize(void)
{
	return 0; /* a service has no console to leave: see os_service_run */
}

int os_drop_privileges(const char *user, const char *group, char *err, size_t errlen)
{
	(void)user;
	(void)group;
	(void)err;
	(void)errlen;
	return 0; /* the service account decides on Windows */
}

long os_give_tree(const char *dir, const char *user, const char *group, char *err, size_t errlen)
{
	(void)dir;
	(void)user;
	(void)group;
	(void)err;
	(void)errlen;
	return 0; /* no RunAs on Windows */
}

long os_raise_fd_limit(void)
{
	return -1; /* WSAPoll and sockets have no such per-process limit to raise */
}

int os_is_root(void)
{
	return 0;
}

long os_getpid(void)
{
	return (long)GetCurrentProcessId();
}

void os_user_name(char *out, size_t len)
{
	wchar_t w[257];
	DWORD n = 257;
	if (!GetUserNameW(w, &n) || win_utf8(w, out, len) != 0) {
		snprintf(out, len, "unknown");
	}
}

int os_process_alive(long pid)
{
	DWORD code = 0;
	HANDLE h =
	        pid > 0 ? OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid) : NULL;
	if (!h) {
		return pid > 0 && GetLastError() == ERROR_ACCESS_DENIED; /* exists, not ours */
	}
	int alive = GetExitCodeProcess(h, &code) && code == STILL_ACTIVE;
	CloseHandle(h);
	return alive;
}

int os_process_signal(long pid, int sig, char *err, size_t errlen)
{
	(void)pid;
	(void)sig;
	snprintf(err, errlen, "Windows has no signals: use rumble service stop|reload");
	return -1;
}

/* An inheritable copy of a standard handle, or the NUL device. */
static HANDLE inheritable_std(DWORD which)
{
	SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
	HANDLE h = GetStdHandle(which), dup = NULL;

	if (h && h != INVALID_HANDLE_VALUE &&
	        DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &dup, 0, TRUE,
	                DUPLICATE_SAME_ACCESS)) {
		return dup;
	}
	return CreateFileW(L"NUL", GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
	        OPEN_EXISTING, 0, NULL);
}

/* The command interpreter's path in shell (len units): ComSpec, else
 * cmd.exe in the system folder. */
static int shell_path(wchar_t *shell, DWORD len)
{
	static const wchar_t cmd_exe[] = L"\\cmd.exe";
	DWORD k = GetEnvironmentVariableW(L"ComSpec", shell, len);

	if (k > 0 && k < len) {
		return 0;
	}
	k = GetSystemDirectoryW(shell, (UINT)len); /* ComSpec unset, or too long */
	if (k == 0 || k + sizeof cmd_exe / sizeof cmd_exe[0] > len) {
		return -1;
	}
	memcpy(shell + k, cmd_exe, sizeof cmd_exe);
	return 0;
}

/* "<shell>" /d /s /c "<cmd>" (malloc'ed): /s keeps cmd's quotes as
 * written. */
static wchar_t *shell_line(const char *cmd, const wchar_t *shell)
{
	static const wchar_t mid[] = L"\" /d /s /c \"";
	wchar_t *wc = win_wide(cmd), *line = NULL, *p;
	size_t ns = wcslen(shell), nm = wcslen(mid), nc = wc ? wcslen(wc) : 0;

	if (wc) {
		line = malloc((ns + nm + nc + 3) * sizeof *line);
	}
	if (line) {
		p = line;
		*p++ = L'"';
		memcpy(p, shell, ns * sizeof *p);
		p += ns;
		memcpy(p, mid, nm * sizeof *p);
		p += nm;
		memcpy(p, wc, nc * sizeof *p);
		p += nc;
		*p++ = L'"';
		*p = L'\0';
	}
	free(wc);
	return line;
}

/* Starts the shell with exactly the three given handles inherited. */
static int spawn(const wchar_t *shell, wchar_t *line, HANDLE std[3], PROCESS_INFORMATION *pi)
{
	STARTUPINFOEXW si;
	SIZE_T sz = 0;
	BOOL ok = FALSE;

	memset(&si, 0, sizeof si);
	si.StartupInfo.cb = sizeof si;
	si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
	si.StartupInfo.hStdInput = std[0];
	si.StartupInfo.hStdOutput = std[1];
	si.StartupInfo.hStdError = std[2];
	InitializeProcThreadAttributeList(NULL, 1, 0, &sz);
	si.lpAttributeList = malloc(sz);
	if (si.lpAttributeList &&
	        InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &sz)) {
		if (UpdateProcThreadAttribute(si.lpAttributeList, 0,
		            PROC_THREAD_ATTRIBUTE_HANDLE_LIST, std, 3 * sizeof(HANDLE), NULL,
		            NULL)) {
			ok = CreateProcessW(shell, line, NULL, NULL, TRUE,
			        EXTENDED_STARTUPINFO_PRESENT | CREATE_NO_WINDOW, NULL, NULL,
			        &si.StartupInfo, pi);
		}
		DeleteProcThreadAttributeList(si.lpAttributeList);
	}
	if (!ok) {
		win_fail(GetLastError());
	}
	free(si.lpAttributeList);
	return ok ? 0 : -1;
}

static int wait_exit(PROCESS_INFORMATION *pi)
{
	DWORD code = 0;

	WaitForSingleObject(pi->hProcess, INFINITE);
	if (!GetExitCodeProcess(pi->hProcess, &code)) {
		code = (DWORD)-1;
	}
	CloseHandle(pi->hThread);
	CloseHandle(pi->hProcess);
	return code == (DWORD)-1 ? -1 : (int)code;
}

/* see os.h */
int os_run_with_stdin(const char *cmd, const char *path)
{
	SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
	PROCESS_INFORMATION pi;
	HANDLE std[3];
	wchar_t shell[MAX_PATH], *line, *w = win_wide(path);
	int i, r = -1;

	std[0] = w ? CreateFileW(w, GENERIC_READ,
	                     FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, &sa,
	                     OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL)
	           : INVALID_HANDLE_VALUE;
	if (win_wide_done(w, std[0] != INVALID_HANDLE_VALUE) != 0) {
		return -1;
	}
	std[1] = inheritable_std(STD_OUTPUT_HANDLE);
	std[2] = inheritable_std(STD_ERROR_HANDLE);
	line = shell_path(shell, MAX_PATH) == 0 ? shell_line(cmd, shell) : NULL;
	if (line && std[1] != INVALID_HANDLE_VALUE && std[2] != INVALID_HANDLE_VALUE &&
	        spawn(shell, line, std, &pi) == 0) {
		r = wait_exit(&pi);
	}
	free(line);
	for (i = 0; i < 3; i++) {
		if (std[i] != INVALID_HANDLE_VALUE) {
			CloseHandle(std[i]);
		}
	}
	return r;
}

/* Reads one line into buf without its end of line; the rest of an
 * over-long line is read and dropped. */
static int read_line(char *buf, size_t len)
{
	size_t n;
	int c;

	if (len == 0 || len > INT_MAX || !fgets(buf, (int)len, stdin)) {
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

#define SECRET_MAX 1024 /* UTF-16 units of a line kept from the console */

/* One line typed at the console, in UTF-8: read as UTF-16 (the console's
 * input code page is not UTF-8), the rest of an over-long line dropped. */
static int console_line(HANDLE h, char *buf, size_t len)
{
	wchar_t w[SECRET_MAX + 1], c;
	DWORD n = 0, got = 0;
	int any = 0, r = -1;

	while (ReadConsoleW(h, &c, 1, &got, NULL) && got == 1) {
		any = 1;
		if (c == L'\n') {
			break;
		}
		if (c != L'\r' && n < SECRET_MAX) {
			w[n++] = c;
		}
	}
	w[n] = L'\0';
	if (any && win_utf8(w, buf, len) == 0) {
		r = (int)strlen(buf);
	}
	SecureZeroMemory(w, sizeof w);
	return r;
}

/* see os.h; returns the length read, -1 at end of input */
int os_read_secret(char *buf, size_t len)
{
	HANDLE h = GetStdHandle(STD_INPUT_HANDLE);
	DWORD mode = 0;
	int r;

	if (!GetConsoleMode(h, &mode)) {
		return read_line(buf, len); /* a pipe or a file: bytes as they are */
	}
	SetConsoleMode(h, mode & ~(DWORD)ENABLE_ECHO_INPUT);
	r = console_line(h, buf, len);
	SetConsoleMode(h, mode);
	fputs("\n", stderr);
	return r;
}
