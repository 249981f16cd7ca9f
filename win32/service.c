/*
 * win32/service.c - rumble.exe as a Windows service: running under the
 * service control manager (os_service_run, os_service_ready) and the
 * "rumble service install|uninstall|start|stop|reload|status" commands.
 * Split from win32/os.c, whose helpers it uses through win.h.
 */
#include "win.h"

/* ---- the service control manager (SCM) ----
 *
 * "rumble.exe -c CONF --service" started by the SCM: main calls
 * os_service_run, whose StartServiceCtrlDispatcher blocks the main thread
 * for the life of the service. The SCM runs svc_main on a thread of its
 * own, and that runs the server. Controls arrive on the main thread in
 * svc_control and set the same flags as console events, so the server's
 * loop stops and reloads as it does on Ctrl-C or SIGTERM/SIGHUP. Started
 * any other way, StartServiceCtrlDispatcher fails at once with
 * ERROR_FAILED_SERVICE_CONTROLLER_CONNECT and the server runs in the
 * foreground. Wine's does not fail: it waits on the control pipe of the
 * service started last. So the dispatcher is only called when the parent
 * process is services.exe, as .NET's and Go's IsWindowsService decide.
 */

#define SVC_START_HINT 60000 /* ms to RUNNING: a first start makes a TLS key */
#define SVC_STOP_HINT 30000  /* sessions get 5 s, then Lua and the queue stop */
#define SVC_WAIT_MS 30000    /* how long "service start|stop" waits */

#define SVC_PATH_MAX 4096 /* bytes of a UTF-8 path here */

static SERVICE_STATUS_HANDLE svc_handle;
static SERVICE_STATUS svc_status; /* guarded by svc_lock */
static CRITICAL_SECTION svc_lock;
static int (*svc_fn)(const char *conf);
static char svc_conf[SVC_PATH_MAX]; /* absolute; empty when none was given */
static int svc_rc;

/* path made absolute (GetFullPathNameW), in UTF-8. */
static int full_path(const char *path, char *out, size_t len)
{
	wchar_t *w = win_wide(path), *abs = w ? malloc(WPATH_MAX * sizeof *abs) : NULL;
	DWORD n = abs ? GetFullPathNameW(w, WPATH_MAX, abs, NULL) : 0;
	int r = -1;

	if (w && !abs) {
		win_fail(ERROR_NOT_ENOUGH_MEMORY);
	} else if (abs && (n == 0 || n >= WPATH_MAX)) {
		win_fail(n ? ERROR_FILENAME_EXCED_RANGE : GetLastError());
	} else if (abs) {
		r = win_utf8(abs, out, len);
	}
	free(abs);
	free(w);
	return r;
}

/* Tells the SCM the state; the exit code counts once STOPPED. */
static void svc_report(DWORD state, int exit_code, DWORD hint)
{
	EnterCriticalSection(&svc_lock);
	svc_status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	svc_status.dwCurrentState = state;
	svc_status.dwControlsAccepted =
	        state == SERVICE_RUNNING
	                ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
	        : state == SERVICE_START_PENDING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
	                                         : 0;
	svc_status.dwWin32ExitCode = exit_code ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
	svc_status.dwServiceSpecificExitCode = (DWORD)exit_code;
	svc_status.dwWaitHint = hint;
	if (state == SERVICE_RUNNING || state == SERVICE_STOPPED) {
		svc_status.dwCheckPoint = 0;
	} else {
		svc_status.dwCheckPoint++;
	}
	SetServiceStatus(svc_handle, &svc_status);
	LeaveCriticalSection(&svc_lock);
}

static DWORD WINAPI svc_control(DWORD ctl, DWORD type, LPVOID data, LPVOID ctx)
{
	(void)type;
	(void)data;
	(void)ctx;
	switch (ctl) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
		svc_report(SERVICE_STOP_PENDING, 0, SVC_STOP_HINT);
		win_signal(OS_SIG_STOP);
		return NO_ERROR;
	case SERVICE_CONTROL_PARAMCHANGE:
		win_signal(OS_SIG_RELOAD);
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	default:
		return ERROR_CALL_NOT_IMPLEMENTED;
	}
}

/* Services start in the system folder; relative paths in rumble.conf
 * mean the folder of rumble.conf (of rumble.exe without -c). */
static void svc_workdir(void)
{
	char dir[SVC_PATH_MAX];
	char *cut;
	wchar_t *w;

	if (*svc_conf) {
		memcpy(dir, svc_conf, sizeof dir);
	} else if (os_exe_path(dir, sizeof dir) != 0) {
		return;
	}
	cut = strrchr(dir, '\\');
	if (cut) {
		cut[cut > dir && cut[-1] == ':' ? 1 : 0] = '\0'; /* "C:\" stays a root */
		w = win_wide(dir);
		win_wide_done(w, w && SetCurrentDirectoryW(w));
	}
}

static void WINAPI svc_main(DWORD argc, LPWSTR *argv)
{
	/* own-process services get their name here, not from the table */
	svc_handle = RegisterServiceCtrlHandlerExW(argc > 0 ? argv[0] : L"", svc_control, NULL);
	if (!svc_handle) {
		svc_rc = 1;
		return;
	}
	svc_report(SERVICE_START_PENDING, 0, SVC_START_HINT);
	svc_workdir();
	svc_rc = svc_fn(*svc_conf ? svc_conf : NULL);
	svc_report(SERVICE_STOPPED, svc_rc, 0);
}

/* 1 when the parent process is services.exe (the SCM starts services). */
static int started_by_scm(void)
{
	HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
	PROCESSENTRY32W pe;
	DWORD self = GetCurrentProcessId(), parent = 0;
	int pass, found = 0;

	if (snap == INVALID_HANDLE_VALUE) {
		return 1; /* cannot tell: let the dispatcher decide */
	}
	for (pass = 0; pass < 2 && !found; pass++) { /* find self, then the parent */
		pe.dwSize = sizeof pe;
		for (BOOL ok = Process32FirstW(snap, &pe); ok && !found;
		        ok = Process32NextW(snap, &pe)) {
			if (pass == 0 && pe.th32ProcessID == self) {
				parent = pe.th32ParentProcessID;
				break;
			}
			if (pass == 1 && pe.th32ProcessID == parent) {
				found = _wcsicmp(pe.szExeFile, L"services.exe") == 0 ? 1 : -1;
			}
		}
	}
	CloseHandle(snap);
	return found == 1;
}

/* see os.h; -1 when the dispatcher fails for another reason */
int os_service_run(const char *conf, int (*fn)(const char *conf))
{
	static wchar_t noname[] = L""; /* own process: the name is not looked at */
	SERVICE_TABLE_ENTRYW table[] = {{noname, svc_main}, {NULL, NULL}};
	DWORD n;

	svc_fn = fn;
	*svc_conf = '\0';
	if (conf && full_path(conf, svc_conf, sizeof svc_conf) != 0) {
		return -1;
	}
	if (!started_by_scm()) {
		return OS_NOT_SERVICE;
	}
	InitializeCriticalSection(&svc_lock);
	if (!StartServiceCtrlDispatcherW(table)) {
		n = GetLastError();
		return n == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT ? OS_NOT_SERVICE : win_fail(n);
	}
	return svc_rc;
}

/* see os.h; a stop asked for meanwhile stays STOP_PENDING (critical
 * sections nest, so svc_report may take svc_lock again) */
void os_service_ready(void)
{
	if (!svc_handle) {
		return;
	}
	EnterCriticalSection(&svc_lock);
	if (svc_status.dwCurrentState == SERVICE_START_PENDING) {
		svc_report(SERVICE_RUNNING, 0, 0);
	}
	LeaveCriticalSection(&svc_lock);
}

/* Fills err with what failed and the system's reason; returns -1. */
static int svc_error(const char *what, char *err, size_t errlen)
{
	win_fail(GetLastError());
	snprintf(err, errlen, "%s: %s", what, os_strerror());
	return -1;
}

/* Opens the service name with the given rights; NULL with err filled. */
static SC_HANDLE svc_open(const char *name, DWORD access, char *err, size_t errlen)
{
	SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT), svc = NULL;
	wchar_t *w;

	if (!scm) {
		svc_error("cannot reach the service manager", err, errlen);
		return NULL;
	}
	w = win_wide(name);
	if (w) {
		svc = OpenServiceW(scm, w, access);
	}
	if (!svc) {
		svc_error("OpenService", err, errlen);
	}
	free(w);
	CloseServiceHandle(scm);
	return svc;
}

static const char *svc_state_name(DWORD state)
{
	switch (state) {
	case SERVICE_STOPPED:
		return "stopped";
	case SERVICE_START_PENDING:
		return "starting";
	case SERVICE_STOP_PENDING:
		return "stopping";
	case SERVICE_RUNNING:
		return "running";
	case SERVICE_PAUSED:
		return "paused";
	default:
		return "pending";
	}
}

/* "stopped", "stopped (exit code 2)", "running", ... */
static void svc_describe(const SERVICE_STATUS *st, char *out, size_t len)
{
	if (st->dwCurrentState == SERVICE_STOPPED &&
	        st->dwWin32ExitCode == ERROR_SERVICE_SPECIFIC_ERROR) {
		snprintf(out, len, "stopped (exit code %lu)",
		        (unsigned long)st->dwServiceSpecificExitCode);
	} else if (st->dwCurrentState == SERVICE_STOPPED && st->dwWin32ExitCode != NO_ERROR &&
	           st->dwWin32ExitCode != ERROR_SERVICE_NEVER_STARTED) {
		snprintf(out, len, "stopped (Windows error %lu)",
		        (unsigned long)st->dwWin32ExitCode);
	} else {
		snprintf(out, len, "%s", svc_state_name(st->dwCurrentState));
	}
}

/* Polls until the service is in state want, leaves the pending state
 * (after a start, STOPPED counts as pending for a moment: the SCM may not
 * have switched yet) or SVC_WAIT_MS pass. */
static int svc_wait(SC_HANDLE svc, DWORD want, char *err, size_t errlen)
{
	SERVICE_STATUS st;
	int64_t t0 = os_now_ms();
	char state[64];

	for (;;) {
		if (!QueryServiceStatus(svc, &st)) {
			return svc_error("QueryServiceStatus", err, errlen);
		}
		if (st.dwCurrentState == want) {
			return 0;
		}
		int64_t waited = os_now_ms() - t0;
		int pending = st.dwCurrentState == SERVICE_START_PENDING ||
		              st.dwCurrentState == SERVICE_STOP_PENDING ||
		              (st.dwCurrentState == SERVICE_STOPPED && waited < 2000);
		if (!pending || waited > SVC_WAIT_MS) {
			break;
		}
		Sleep(100);
	}
	svc_describe(&st, state, sizeof state);
	snprintf(err, errlen, "the service is %s%s", state,
	        st.dwCurrentState == SERVICE_STOPPED ? "; see its log" : "");
	return -1;
}

/* A crash (the process ends without reporting STOPPED) restarts the
 * service after a minute, twice; a third within a day leaves it stopped.
 * A clean stop with an exit code is not a crash. Best effort. */
static void svc_restart_on_crash(SC_HANDLE svc)
{
	SC_ACTION act[3] = {{SC_ACTION_RESTART, 60000}, {SC_ACTION_RESTART, 60000},
	        {SC_ACTION_NONE, 0}};
	SERVICE_FAILURE_ACTIONSW fa;

	memset(&fa, 0, sizeof fa);
	fa.dwResetPeriod = 24 * 3600; /* seconds without a crash to count from 0 again */
	fa.cActions = 3;
	fa.lpsaActions = act;
	ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa);
}

/* The service's command line: "<rumble.exe>" -c "<conf made absolute>"
 * --service, in UTF-8. -1 with err filled. */
static int svc_command(const char *conf, char *cmd, size_t len, char *err, size_t errlen)
{
	char exe[SVC_PATH_MAX], abs[SVC_PATH_MAX];
	struct os_stat st;

	if (os_exe_path(exe, sizeof exe) != 0) {
		snprintf(err, errlen, "cannot find rumble.exe: %s", os_strerror());
		return -1;
	}
	if (full_path(conf, abs, sizeof abs) != 0 || os_stat(abs, &st) != 0) {
		snprintf(err, errlen, "%s: %s", conf, os_strerror());
		return -1;
	}
	if ((size_t)snprintf(cmd, len, "\"%s\" -c \"%s\" --service", exe, abs) >= len) {
		win_fail(ERROR_FILENAME_EXCED_RANGE);
		snprintf(err, errlen, "%s: %s", conf, os_strerror());
		return -1;
	}
	return 0;
}

/* CreateServiceW for name running cmd (both UTF-8); NULL with the error
 * left in GetLastError. */
static SC_HANDLE svc_create(SC_HANDLE scm, const char *name, const char *cmd)
{
	char display[300];
	wchar_t *wn, *wd, *wc;
	SC_HANDLE svc = NULL;
	DWORD e;

	if (strcmp(name, "Rumble") == 0) {
		snprintf(display, sizeof display, "Rumble mail server");
	} else {
		snprintf(display, sizeof display, "Rumble mail server (%s)", name);
	}
	wn = win_wide(name);
	wd = wn ? win_wide(display) : NULL;
	wc = wd ? win_wide(cmd) : NULL;
	if (wc) {
		svc = CreateServiceW(scm, wn, wd, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
		        SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, wc, NULL, NULL, NULL, NULL, NULL);
	}
	e = GetLastError();
	free(wc);
	free(wd);
	free(wn);
	SetLastError(e);
	return svc;
}

/* see os.h */
int os_service_install(const char *name, const char *conf, char *err, size_t errlen)
{
	static wchar_t about[] = L"Rumble mail server: SMTP, POP3 and IMAP with mbox storage";
	char cmd[2 * SVC_PATH_MAX + 32];
	SERVICE_DESCRIPTIONW desc;
	SC_HANDLE scm, svc;

	if (svc_command(conf, cmd, sizeof cmd, err, errlen) != 0) {
		return -1;
	}
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
	if (!scm) {
		return svc_error(
		        "cannot reach the service manager (run as Administrator)", err, errlen);
	}
	svc = svc_create(scm, name, cmd);
	if (!svc) {
		svc_error("CreateService", err, errlen);
		CloseServiceHandle(scm);
		return -1;
	}
	desc.lpDescription = about;
	ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc); /* cosmetic */
	svc_restart_on_crash(svc);
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return 0;
}

/* Asks a running service to stop and waits; 0 also when it was stopped. */
static int svc_stop(SC_HANDLE svc, char *err, size_t errlen)
{
	SERVICE_STATUS st;

	if (!ControlService(svc, SERVICE_CONTROL_STOP, &st)) {
		if (GetLastError() == ERROR_SERVICE_NOT_ACTIVE) {
			return 0;
		}
		return svc_error("stop", err, errlen);
	}
	return svc_wait(svc, SERVICE_STOPPED, err, errlen);
}

/* see os.h */
int os_service_uninstall(const char *name, char *err, size_t errlen)
{
	SC_HANDLE svc = svc_open(name, DELETE | SERVICE_STOP | SERVICE_QUERY_STATUS, err, errlen);
	int rc;

	if (!svc) {
		return -1;
	}
	rc = svc_stop(svc, err, errlen);
	if (rc == 0 && !DeleteService(svc)) {
		rc = svc_error("DeleteService", err, errlen);
	}
	CloseServiceHandle(svc);
	return rc;
}

/* see os.h */
int os_service_start(const char *name, char *err, size_t errlen)
{
	SC_HANDLE svc = svc_open(name, SERVICE_START | SERVICE_QUERY_STATUS, err, errlen);
	int rc;

	if (!svc) {
		return -1;
	}
	if (!StartServiceW(svc, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
		rc = svc_error("start", err, errlen);
	} else {
		rc = svc_wait(svc, SERVICE_RUNNING, err, errlen);
	}
	CloseServiceHandle(svc);
	return rc;
}

/* see os.h */
int os_service_stop(const char *name, char *err, size_t errlen)
{
	SC_HANDLE svc = svc_open(name, SERVICE_STOP | SERVICE_QUERY_STATUS, err, errlen);
	int rc;

	if (!svc) {
		return -1;
	}
	rc = svc_stop(svc, err, errlen);
	CloseServiceHandle(svc);
	return rc;
}

/* see os.h */
int os_service_reload(const char *name, char *err, size_t errlen)
{
	SC_HANDLE svc = svc_open(name, SERVICE_PAUSE_CONTINUE, err, errlen);
	SERVICE_STATUS st;
	int rc = 0;

	if (!svc) {
		return -1;
	}
	if (!ControlService(svc, SERVICE_CONTROL_PARAMCHANGE, &st)) {
		rc = svc_error("reload", err, errlen);
	}
	CloseServiceHandle(svc);
	return rc;
}

/* see os.h */
int os_service_status(const char *name, char *state, size_t statelen, char *err, size_t errlen)
{
	SC_HANDLE svc = svc_open(name, SERVICE_QUERY_STATUS, err, errlen);
	SERVICE_STATUS st;
	int rc;

	snprintf(state, statelen, "unknown");
	if (!svc) {
		return -1;
	}
	if (!QueryServiceStatus(svc, &st)) {
		rc = svc_error("QueryServiceStatus", err, errlen);
	} else {
		svc_describe(&st, state, statelen);
		rc = st.dwCurrentState == SERVICE_RUNNING;
	}
	CloseServiceHandle(svc);
	return rc;
}
