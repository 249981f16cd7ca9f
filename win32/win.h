/*
 * win32/win.h - what the files of the Windows platform layer share: the
 * Windows headers in the order they need, and the helpers of win32/os.c
 * that win32/service.c uses. Nothing outside win32/ includes this.
 */
#ifndef RUMBLE_WIN_H
#define RUMBLE_WIN_H

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* WSAPoll, SRW locks, condition variables */
#endif
#define WIN32_LEAN_AND_MEAN

#include "os.h"

/* Order matters: winsock2.h before windows.h, ntsecapi.h after it. */
#include <winsock2.h>

#include <ws2tcpip.h>

#include <windows.h>

#include <iphlpapi.h>
#include <ntsecapi.h>
#include <shellapi.h>
#include <tlhelp32.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define WPATH_MAX 32768 /* UTF-16 units in the longest path Windows takes */

/* Records a Win32/WinSock failure for os_strerror and os_errno_is_*;
 * always returns -1. */
int win_fail(DWORD e);

/* A malloc'ed UTF-16 copy of UTF-8 s (ANSI when it is not UTF-8), or NULL
 * with the failure recorded. */
wchar_t *win_wide(const char *s);

/* w as UTF-8 in out; -1 (ENAMETOOLONG) when it does not fit. */
int win_utf8(const wchar_t *w, char *out, size_t len);

/* Frees w, then 0 when ok, else -1 with the call's error recorded. */
int win_wide_done(wchar_t *w, BOOL ok);

/* Raises OS_SIG_STOP or OS_SIG_RELOAD for os_signal_take, as a console
 * event does; safe from any thread. */
void win_signal(int sig);

#endif
