/*
 * os.h - the platform layer. posix/os.c and win32/os.c each implement all of
 * it; the build picks the directory. Nothing outside posix/ and win32/
 * includes an OS header or tests an OS macro.
 *
 * Conventions: functions return 0 (or a non-negative value) on success and
 * -1 on failure; os_strerror() describes the last failure of this thread.
 * Text is UTF-8 both ways: paths, names and messages (Windows converts at
 * its edge to and from the UTF-16 of its W functions). The core opens files
 * with os_fopen, never fopen: the C library's fopen takes the ANSI code page
 * on Windows.
 * Socket I/O is non-blocking: OS_AGAIN means "try again when the poller
 * says so".
 */
#ifndef RUMBLE_OS_H
#define RUMBLE_OS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Compiler annotations: the only place outside posix/ and win32/ that
 * names a compiler extension. */
#if defined(__MINGW_PRINTF_FORMAT)
#define OS_PRINTF(f, a) __attribute__((format(__MINGW_PRINTF_FORMAT, f, a)))
#define OS_NORETURN __attribute__((noreturn))
#elif defined(__GNUC__)
#define OS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define OS_NORETURN __attribute__((noreturn))
#else
#define OS_PRINTF(f, a)
#define OS_NORETURN
#endif

/* A socket or a file descriptor. On Windows a SOCKET fits an intptr_t and
 * INVALID_SOCKET is -1 once cast. */
typedef intptr_t os_fd;
#define OS_BADFD ((os_fd)-1)
#define OS_AGAIN (-2) /* os_read/os_write/os_accept: would block */

/* ---- start-up ---- */
/* First thing in main: the arguments in UTF-8. Windows hands main its
 * arguments in the ANSI code page; they are read again from the UTF-16
 * command line, and console output is switched to UTF-8. POSIX: as given. */
void os_args_utf8(int *argc, char ***argv);
int os_init(void);              /* WSAStartup, ignore SIGPIPE, ... */
const char *os_name(void);      /* "linux", "windows", "freebsd", ... */
const char *os_arch(void);      /* "x86_64", "arm", ... */
const char *os_strerror(void);  /* last error of this thread, as text */
int os_errno_is_exists(void);   /* last error was "already exists" */
int os_errno_is_noent(void);    /* last error was "no such file" */
/* The last error (errno, and Windows' GetLastError), kept across calls
 * that may change it (logging a failure before looking at its cause). */
struct os_err {
	int e;
	unsigned long w;
};
void os_error_save(struct os_err *s);
void os_error_restore(const struct os_err *s);
int os_errno_is_nospace(void);  /* last error was "disk full" or "over disk quota" */
int os_stderr_is_tty(void);     /* 1 when stderr is a terminal (progress bars) */
void os_stdio_binary(void);     /* stdin and stdout untranslated (Windows: no CRLF) */

/* ---- sockets ---- */
/* Listen on addr:port (addr NULL or "" = all; "::" or "0.0.0.0" as given).
 * ipv4_only limits a wildcard to IPv4. Returns a non-blocking socket. */
os_fd os_listen(const char *addr, int port, int ipv4_only, char *err, size_t errlen);
/* Accepts one connection; writes the peer's address ("127.0.0.1" or "::1")
 * into peer. Returns the non-blocking socket, OS_BADFD with errno-like
 * failure, or (os_fd)OS_AGAIN when there is nothing to accept. */
os_fd os_accept(os_fd lfd, char *peer, size_t peerlen);
/* The local address of a connected socket, as text. */
int os_local_addr(os_fd fd, char *addr, size_t len);
/* Connect (blocking, with a timeout in ms) to host:port; for tests and the
 * CLI. Returns a blocking socket or OS_BADFD. */
os_fd os_connect(const char *host, int port, int timeout_ms);
/* os_connect from the local address local (numeric, bound with port 0
 * before connecting; NULL or "" = the OS's choice): only host's addresses
 * of local's family are tried. */
os_fd os_connect_from(const char *host, int port, const char *local, int timeout_ms);
/* A blocking socket's writes give up (-1) after ms without progress. */
int os_set_send_timeout(os_fd fd, int ms);
/* ACK what came at once rather than after the delayed ACK's wait (Linux
 * TCP_QUICKACK); nothing where the system has no such switch. */
void os_ack_now(os_fd fd);
/* > 0 bytes, 0 at end of stream, -1 error, OS_AGAIN would block. */
long os_read(os_fd fd, void *buf, size_t n);
long os_write(os_fd fd, const void *buf, size_t n);
void os_close(os_fd fd);
/* The bound port of a listening socket (for port 0). */
int os_sock_port(os_fd fd);

/* ---- UDP, addresses, the system's name servers (for dns.c) ---- */
/* Addresses here are numeric ("192.0.2.1", "2001:db8::1", "fe80::1%eth0");
 * no name is ever looked up. */
/* A non-blocking UDP socket bound to addr:port (port 0 = any free one). */
os_fd os_udp_bind(const char *addr, int port);
/* A non-blocking UDP socket connected to addr:port from a random local
 * port: the OS delivers only datagrams from addr:port to it, and a port
 * that refuses (ICMP) shows as an error on os_read. Use os_read/os_write. */
os_fd os_udp_connect(const char *addr, int port);
/* One datagram (cut to n bytes) and its sender's address and port. The
 * length, OS_AGAIN when none is waiting, -1 on error. */
long os_udp_recvfrom(os_fd fd, void *buf, size_t n, char *from, size_t fromlen, int *port);
long os_udp_sendto(os_fd fd, const void *buf, size_t n, const char *addr, int port);
/* Waits until fd can be read: 1 readable (or an error is pending), 0 when
 * timeout_ms passed first, -1 on error. */
int os_wait_readable(os_fd fd, int timeout_ms);
/* The binary form of an address: 4 (IPv4) or 16 (IPv6) bytes written to
 * out; -1 when s is not an address. */
int os_ip_parse(const char *s, uint8_t out[16]);
/* The text form of a 4- or 16-byte address (RFC 5952 for IPv6). */
int os_ip_text(const uint8_t *addr, int len, char *out, size_t outlen);
/* The name servers the system is set up with (/etc/resolv.conf; the
 * network settings on Windows), as numeric addresses, at most max.
 * Returns the count, 0 when there is none. */
int os_dns_servers(char (*out)[64], int max);

/* ---- poller: epoll on Linux, poll elsewhere, WSAPoll on Windows ---- */
#define OS_EV_READ 1
#define OS_EV_WRITE 2
#define OS_EV_ERROR 4 /* hang-up or error; reported with READ */

struct os_poller;
struct os_event {
	void *ptr;  /* what was given to os_poller_add */
	int events; /* OS_EV_* */
};
struct os_poller *os_poller_new(void);
void os_poller_free(struct os_poller *p);
int os_poller_add(struct os_poller *p, os_fd fd, int events, void *ptr);
int os_poller_mod(struct os_poller *p, os_fd fd, int events, void *ptr);
int os_poller_del(struct os_poller *p, os_fd fd);
/* Waits up to timeout_ms (-1 = forever); returns the number of events
 * written to ev (at most max), 0 on timeout, -1 on error (EINTR is 0). */
int os_poller_wait(struct os_poller *p, struct os_event *ev, int max, int timeout_ms);

/* A wake-up channel another thread can poke: rfd goes readable after
 * os_wakeup_poke. A pipe on POSIX, a loopback socket pair on Windows. */
struct os_wakeup {
	os_fd rfd, wfd;
};
int os_wakeup_open(struct os_wakeup *w);
void os_wakeup_poke(struct os_wakeup *w);
void os_wakeup_drain(struct os_wakeup *w);
void os_wakeup_close(struct os_wakeup *w);

/* ---- threads and locks ---- */
typedef struct os_thread os_thread;
typedef struct os_mutex os_mutex;
typedef struct os_cond os_cond;
os_thread *os_thread_start(void (*fn)(void *), void *arg);
void os_thread_join(os_thread *t);
os_mutex *os_mutex_new(void);
void os_mutex_free(os_mutex *m);
void os_mutex_lock(os_mutex *m);
void os_mutex_unlock(os_mutex *m);
int os_mutex_trylock(os_mutex *m); /* 1 when it took the lock, 0 when it is held */
os_cond *os_cond_new(void);
void os_cond_free(os_cond *c);
/* Waits until signalled or timeout_ms passed (-1 = forever). */
void os_cond_wait(os_cond *c, os_mutex *m, int timeout_ms);
void os_cond_signal(os_cond *c);
void os_cond_broadcast(os_cond *c);
int os_ncpu(void);

/* ---- atomics: GCC builtins on POSIX, Interlocked* on Windows ----
 * Loads acquire, stores release, read-modify-writes are full barriers.
 * Only 32-bit and word-sized (long, pointer) values: 32-bit MIPS and ARMv5
 * have no lock-free 64-bit operations. add returns the new value. */
int os_atomic_load_int(volatile int *p);
void os_atomic_store_int(volatile int *p, int v);
int os_atomic_swap_int(volatile int *p, int v); /* returns the old value */
uint32_t os_atomic_load_u32(volatile uint32_t *p);
uint32_t os_atomic_add_u32(volatile uint32_t *p, uint32_t n);
long os_atomic_load_long(volatile long *p);
long os_atomic_add_long(volatile long *p, long n);
void *os_atomic_load_ptr(void *volatile *p);
void os_atomic_store_ptr(void *volatile *p, void *v);
/* Sets *p to v when it holds expect: 1 done, 0 when *p held another. */
int os_atomic_cas_ptr(void *volatile *p, void *expect, void *v);

/* ---- C library differences ---- */
/* strtok_r (strtok_s on Windows). */
char *os_strtok(char *s, const char *delim, char **save);
/* fseek/ftell with 64-bit offsets (fseeko with a 64-bit off_t; _fseeki64). */
int os_fseek(FILE *f, int64_t off, int whence);
int64_t os_ftell(FILE *f);

/* ---- files ---- */
int os_mkdir(const char *path);   /* 0 also when it exists already */
int os_mkdir_p(const char *path); /* every missing parent too */
int os_rmdir(const char *path);
int os_remove(const char *path);
/* Replace to with from in one step (rename(2); MoveFileEx with
 * MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH). */
int os_rename_atomic(const char *from, const char *to);
int os_fsync(FILE *f);            /* fflush + fsync / FlushFileBuffers */
int os_fsync_dir(const char *dir); /* make a rename durable; no-op on Windows */
/* Write data to path atomically: temp file, fsync, rename, fsync dir. */
int os_write_file_atomic(const char *path, const void *data, size_t len);
int os_truncate(FILE *f, uint64_t size);
/* Sets the file's modification (and access) time to t, seconds since the
 * epoch, after flushing what was written (Maildir keeps a message's date
 * there). */
int os_set_mtime(FILE *f, int64_t t);
struct os_stat {
	uint64_t size;
	int64_t mtime, ctime, atime; /* seconds since the epoch */
	int64_t mtime_ns;            /* finer change stamp where the OS has one */
	int mode;                    /* permission bits */
	int is_dir;
};
int os_stat(const char *path, struct os_stat *st);
/* Bytes free (for this user) and in all on the file system that holds
 * path: 0, or -1. */
int os_disk_space(const char *path, uint64_t *avail, uint64_t *total);
int os_fstat(FILE *f, struct os_stat *st);
/* fopen, with a UTF-8 path everywhere; fopen's modes, "x" included. On
 * Windows the file may be renamed or deleted while open, as on POSIX. */
FILE *os_fopen(const char *path, const char *mode);
/* Opens for binary read/write, creating if missing ("r+b" that creates). */
FILE *os_fopen_rw(const char *path);
/* Open a file that only the owner can read (mode 0600). */
FILE *os_fopen_private(const char *path, const char *mode);
/* Calls fn for each entry of dir except "." and ".."; stops when fn returns
 * non-zero and returns that value. -1 if dir cannot be read. */
int os_dir_walk(const char *dir, int (*fn)(const char *name, int is_dir, void *arg), void *arg);
/* Whole-file advisory lock, held until os_unlock or fclose. Blocks. */
int os_lock(FILE *f);
int os_unlock(FILE *f);
/* Lock without blocking: 0 got it, 1 held by someone else, -1 error. */
int os_trylock(FILE *f);
/* Path of the running executable. */
int os_exe_path(char *buf, size_t len);

/* ---- time and randomness ---- */
int64_t os_now_ms(void);   /* monotonic milliseconds */
int64_t os_time(void);     /* wall clock, seconds since the epoch */
int os_timezone_offset(int64_t t); /* local offset from UTC in minutes */
struct tm;
void os_gmtime(int64_t t, struct tm *out); /* thread-safe gmtime */
void os_sleep_ms(int ms);
int os_random(void *buf, size_t n); /* from the OS's CSPRNG */

/* ---- process ---- */
/* Signals (or console events on Windows) set flags that the main loop
 * polls with os_signal_take(); each returns 1 once per delivery.
 * POSIX: SIGTERM/SIGINT stop, SIGHUP reloads, SIGUSR1 reopens the log. */
enum os_signal { OS_SIG_STOP = 1, OS_SIG_RELOAD = 2, OS_SIG_REOPEN = 4 };
void os_signals_install(void);
int os_signal_take(void); /* bit mask of OS_SIG_* that arrived */
int os_daemonize(void);   /* detach (POSIX); 0 on Windows (see os_service_run) */

/* ---- running as a system service (the Windows service manager) ---- */
#define OS_NOT_SERVICE (-2) /* os_service_run: not started by a service manager */
/* Under the Windows service control manager: registers the service, makes
 * the folder of conf (of the executable when conf is NULL) the working
 * folder, reports "start pending" and calls fn with conf made absolute on
 * the service's thread. Stop and shutdown requests arrive as OS_SIG_STOP,
 * "parameters changed" as OS_SIG_RELOAD (see os_signal_take). When fn
 * returns, reports "stopped" with fn's result as the exit code and returns
 * that result. OS_NOT_SERVICE at once when the process was not started by
 * the service manager (always on POSIX): run in the foreground then. */
int os_service_run(const char *conf, int (*fn)(const char *conf));
/* Reports "running" once the server listens; a no-op outside a service. */
void os_service_ready(void);
/* Service administration; on POSIX each fails with err saying so.
 * install: an automatically started service NAME that runs this executable
 * with "-c <conf made absolute> --service". uninstall stops it first. start
 * and stop wait (bounded) until it runs or stopped. reload sends "parameters
 * changed" (OS_SIG_RELOAD in the service). status: 1 running, 0 not
 * running, -1 error; state gets a word or two ("running", "stopped", ...). */
int os_service_install(const char *name, const char *conf, char *err, size_t errlen);
int os_service_uninstall(const char *name, char *err, size_t errlen);
int os_service_start(const char *name, char *err, size_t errlen);
int os_service_stop(const char *name, char *err, size_t errlen);
int os_service_reload(const char *name, char *err, size_t errlen);
int os_service_status(const char *name, char *state, size_t statelen, char *err, size_t errlen);

/* Switch to user/group after binding ports; no-op where unsupported.
 * Returns -1 with err filled when the user does not exist. */
int os_drop_privileges(const char *user, const char *group, char *err, size_t errlen);
/* Before os_drop_privileges, as root with RunAs set: makes the folder dir
 * (created when missing) and everything in it that the user could not read
 * and write (a folder: also search) with its owner, group or other bits
 * belong to user:group (group empty: the user's own), as Postfix's
 * "post-install set-permissions" does. Symbolic links inside are neither
 * followed nor changed; a file with other hard links is not given (it is
 * elsewhere too). Returns how many entries were given; 0 when not root,
 * user is empty or root, and on Windows; -1 with err when an entry stays
 * unusable ("nobody cannot use PATH (why); run: chown -R nobody:nogroup DIR")
 * or the user or group does not exist. */
long os_give_tree(const char *dir, const char *user, const char *group, char *err, size_t errlen);
int os_is_root(void);
/* Raises the open-files limit to what the OS allows (POSIX soft limit to
 * the hard one); returns the limit now, -1 if unknown. */
/* Gives memory freed by a burst of sessions back to the system where the
 * allocator keeps it (glibc); nothing elsewhere. */
void os_memory_trim(void);
long os_raise_fd_limit(void);
long os_getpid(void);
/* Who runs this process, for the log of administration actions: the login
 * name ("root"; POSIX: "alice(sudo)" when root through sudo; a uid when
 * the name is unknown), "unknown" when even that fails. */
void os_user_name(char *out, size_t len);
/* 1 when a process with this id exists (POSIX: also one of another user's),
 * 0 when none does. */
int os_process_alive(long pid);
/* Sends OS_SIG_STOP (SIGTERM) or OS_SIG_RELOAD (SIGHUP) to process pid:
 * 0 sent, -1 with err (on Windows always: a service is told through
 * os_service_stop and os_service_reload). */
int os_process_signal(long pid, int sig, char *err, size_t errlen);
/* Run cmd through the shell (sh -c / cmd.exe /c) with its standard input
 * read from the file at path; returns the program's exit status, -1 if it
 * could not be started. Blocks until the program ends. */
int os_run_with_stdin(const char *cmd, const char *path);
/* Read a line from stdin without echo when it is a terminal. */
int os_read_secret(char *buf, size_t len); /* length read, -1 at end of input */

#endif
