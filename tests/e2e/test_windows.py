"""The Windows build (mingw-w64), run under wine: it starts, takes mail and stores it, runs
as a service under wine's service manager (services.exe, sc, net), and takes UTF-8 paths
and names through to the W functions. Also: Makefile.msvc builds what the Makefile does."""
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

from harness import ROOT, TMP, folder_file, free_port, fs_name, wait_port

# RUMBLE_EXE: another build of rumble.exe to run (win32/msvc-check.sh makes one)
EXE = os.path.abspath(os.path.join(ROOT, os.environ.get("RUMBLE_EXE", "build/win/rumble.exe")))
WINE = "/usr/lib/wine/wine64"
WINESERVER = "/usr/lib/wine/wineserver"


def _wine_env(prefix):
    """wine's environment with its own prefix; the locale is UTF-8 whatever
    the caller's, as wine reads Unix argv and file names by it."""
    return dict(os.environ, WINEDEBUG="-all", WINEPREFIX=os.path.join(TMP, prefix),
                LANG="C.UTF-8", LC_ALL="C.UTF-8")


def _win(path):
    """A Linux path as wine's Z: drive shows it."""
    return "Z:" + path.replace("/", "\\")


def test_windows_build_takes_mail_under_wine():
    """windows: rumble.exe runs under wine, takes mail over SMTP and stores it"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="wine-")
    env = _wine_env("wineprefix")
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName win.test\nMinPasswordLength 0\nStorageFolder Z:%s\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nEnableWebAdmin 0\n<if defined(windows)>\nLogLevel debug\n</if>\n"
                % (os.path.join(d, "data").replace("/", "\\"), port))
    wconf = "Z:" + conf.replace("/", "\\")
    run = lambda *a, **k: subprocess.run([WINE, EXE, "-c", wconf] + list(a), env=env,
                                         capture_output=True, timeout=120, **k)
    assert run("domain", "add", "example.org").returncode == 0
    assert run("user", "add", "bob@example.org", input=b"pw\n").returncode == 0
    log = open(os.path.join(d, "stderr"), "wb")
    p = subprocess.Popen([WINE, EXE, "-c", wconf], env=env, stdout=log, stderr=log)
    try:
        assert wait_port(port, 60), open(os.path.join(d, "stderr"), "rb").read()
        msg = b"Subject: from wine\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("x@remote.test", ["bob@example.org"], msg)
    finally:
        p.kill()
        p.wait(30)
        log.close()
        subprocess.run(["/usr/lib/wine/wineserver", "-k"], env=env, timeout=30)
    mbox = open(os.path.join(d, "data", "mail", "example.org", "bob", "INBOX.mbox"), "rb").read()
    assert mbox.startswith(b"From x@remote.test ") and b"Subject: from wine\n\nhello\n" in mbox
    shutil.rmtree(d, ignore_errors=True)



def _port_closed(port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_windows_service_under_wines_service_manager():
    """windows: service install/start under wine's services.exe takes mail, net stop stops it gracefully, uninstall removes it (non-ASCII name and folder)"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    # the service's name, rumble.exe's folder and rumble.conf's are not ASCII:
    # they reach the service manager and come back through the W functions
    d = tempfile.mkdtemp(dir=TMP, prefix="winsvc-\u00fc-")
    exe = os.path.join(d, "rumble.exe")
    shutil.copy(EXE, exe)
    # A prefix of its own: its wineserver is kept alive with -p (wine ends
    # services.exe, and the service with it, when the last ordinary wine
    # process exits) and killed at the end without touching other prefixes.
    env = _wine_env("wineprefix-svc")
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    # StorageFolder is relative and LogFile unset: the service works in the
    # folder of rumble.conf and logs to data\rumble.log.
    with open(conf, "w") as f:
        f.write("ServerName win.test\nMinPasswordLength 0\nStorageFolder data\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nEnableWebAdmin 0\nEnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\n"
                "EnableIMAPS 0\nEnableManageSieve 0\nLogLevel debug\n" % port)
    wconf = "Z:" + conf.replace("/", "\\")
    name = "RumbleT\u00e4st"
    said = lambda what: ("%s %s" % (name, what)).encode()
    log = os.path.join(d, "data", "rumble.log")

    def wine(*a, **k):
        return subprocess.run([WINE] + list(a), env=env, cwd=d, capture_output=True, timeout=120,
                              **k)

    def rumble(*a, **k):
        return wine(exe, "-c", wconf, *a, **k)

    def log_text():
        return open(log, "rb").read().decode("utf-8", "replace") if os.path.exists(log) else ""

    os.makedirs(env["WINEPREFIX"], exist_ok=True)  # wineboot fills it
    subprocess.run([WINESERVER, "-p"], env=env, timeout=30)
    try:
        # services.exe starts here, with standard handles that are not the
        # pipes of a later command (it would hold them open).
        subprocess.run([WINE, "wineboot"], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        assert rumble("domain", "add", "example.org").returncode == 0
        assert rumble("user", "add", "bob@example.org", input=b"pw\n").returncode == 0
        rumble("service", "uninstall", name)  # left over from an interrupted run
        r = rumble("service", "install", name)
        assert r.returncode == 0, r.stderr
        r = rumble("service", "install", name)
        assert r.returncode == 1 and b"CreateService" in r.stderr, r.stderr
        r = wine("sc", "query", name)
        assert b"STOPPED" in r.stdout, r.stdout
        r = rumble("service", "status", name)
        assert r.returncode == 3 and r.stdout.strip() == said("stopped"), r.stdout

        # The port taken: the server cannot listen, the service stops with
        # exit code 1 and "service start" says so.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        try:
            r = rumble("service", "start", name)
        finally:
            blocker.close()
        assert r.returncode == 1 and b"exit code 1" in r.stderr, (r.stdout, r.stderr)
        assert "cannot listen on port %d" % port in log_text(), log_text()

        r = wine("net", "start", name)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert wait_port(port, 60), log_text()
        # the port opens before the service reports RUNNING (after the
        # scripts start): the manager may say "starting" for a moment
        end = time.time() + 30
        r = rumble("service", "status", name)
        while time.time() < end and r.stdout.strip() == said("starting"):
            time.sleep(0.5)
            r = rumble("service", "status", name)
        assert r.returncode == 0 and r.stdout.strip() == said("running"), r.stdout
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("x@remote.test", ["bob@example.org"], b"Subject: service\r\n\r\nhello\r\n")
        mbox = open(os.path.join(d, "data", "mail", "example.org", "bob", "INBOX.mbox"), "rb").read()
        assert mbox.startswith(b"From x@remote.test ") and b"Subject: service\n\nhello\n" in mbox

        # PARAMCHANGE is the SIGHUP of a service: a reload.
        assert "reload:" not in log_text()
        r = rumble("service", "reload", name)
        assert r.returncode == 0, r.stderr
        end = time.time() + 20
        while "reload: re-reading domains and accounts" not in log_text() and time.time() < end:
            time.sleep(0.1)
        assert "reload: re-reading domains and accounts" in log_text(), log_text()

        r = wine("net", "stop", name)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert _port_closed(port, 20)
        # wine's net stop returns once the stop is asked; wait for STOPPED
        end = time.time() + 30
        while rumble("service", "status", name).returncode != 3 and time.time() < end:
            time.sleep(0.2)
        # the graceful path of SIGTERM: server_run returned, everything shut
        lines = log_text().splitlines()
        stopping = [i for i, l in enumerate(lines) if "stopping: waiting for sessions" in l]
        assert len(stopping) == 1 and lines[-1].endswith("info  stopped"), lines[-5:]
        r = rumble("service", "status", name)
        assert r.returncode == 3 and r.stdout.strip() == said("stopped"), r.stdout

        # Rumble's own start waits for RUNNING; uninstall stops it first.
        r = rumble("service", "start", name)
        assert r.returncode == 0 and r.stdout.strip() == ("%s: start ok" % name).encode(), r.stderr
        r = rumble("service", "status", name)
        assert r.returncode == 0 and r.stdout.strip() == said("running"), r.stdout
        assert wait_port(port, 20)
        r = rumble("service", "uninstall", name)
        assert r.returncode == 0, r.stderr
        assert _port_closed(port, 20)
        lines = log_text().splitlines()
        stopping = [i for i, l in enumerate(lines) if "stopping: waiting for sessions" in l]
        assert len(stopping) == 2 and lines[-1].endswith("info  stopped"), lines[-5:]
        r = rumble("service", "status", name)
        assert r.returncode == 1 and b"OpenService" in r.stderr, r.stderr
    finally:
        try:
            rumble("service", "uninstall", name)
        except subprocess.TimeoutExpired:
            pass  # wineserver -k ends it all anyway
        subprocess.run([WINESERVER, "-k"], env=env, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def test_windows_service_flag_outside_the_service_manager_runs_in_the_foreground():
    """windows: rumble.exe --service started from a shell, not by services.exe, serves in the foreground"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="winfg-")
    env = _wine_env("wineprefix")
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName win.test\nMinPasswordLength 0\nStorageFolder data\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nEnableWebAdmin 0\nEnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\n"
                "EnableIMAPS 0\nEnableManageSieve 0\n" % port)
    wconf = "Z:" + conf.replace("/", "\\")
    errf = os.path.join(d, "stderr")
    out = open(errf, "wb")
    p = subprocess.Popen([WINE, EXE, "-c", wconf, "--service"], env=env, cwd=d, stdout=out,
                         stderr=out)
    try:
        assert wait_port(port, 60), open(errf, "rb").read()
        # still attached: the log (no LogFile) goes to standard error
        end = time.time() + 10
        while b"ready in" not in open(errf, "rb").read() and time.time() < end:
            time.sleep(0.1)
        assert b"ready in" in open(errf, "rb").read()
        assert p.poll() is None
        assert not os.path.exists(os.path.join(d, "data", "rumble.log"))
    finally:
        p.kill()
        p.wait(30)
        out.close()
        subprocess.run([WINESERVER, "-k"], env=env, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def test_windows_non_ascii_paths_and_names_under_wine():
    """windows: a UTF-8 StorageFolder, LogFile, LoadScript, -c path (BOM and all) and user name work under wine and land under those names"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    import imaplib
    import poplib
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="winutf8-")
    top = os.path.join(d, "Jos\u00e9")
    os.makedirs(top)
    env = _wine_env("wineprefix")
    smtp, pop, imap = free_port(), free_port(), free_port()
    store = os.path.join(top, "Daten-\u00fc")
    logf = os.path.join(top, "Protokoll-\u00e4.log")
    script = os.path.join(top, "Skript-\u00f6.lua")
    with open(script, "w", encoding="utf-8") as f:
        f.write('print("Skript gr\u00fc\u00dft")\n')
    conf = os.path.join(top, "rumble.conf")
    with open(conf, "w", encoding="utf-8-sig") as f:  # with a BOM, as Notepad saves UTF-8
        # StorageFolder first: the BOM must not hide it
        f.write("StorageFolder %s\nServerName win.test\nMinPasswordLength 0\nLogFile %s\nLoadScript %s\n"
                "BindToAddress 127.0.0.1\nSMTPPort %d\nPOP3Port %d\nIMAP4Port %d\n"
                "EnableWebAdmin 0\nEnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\n"
                "EnableIMAPS 0\nEnableManageSieve 0\nLogLevel debug\nWorkers 1\n"
                % (_win(store), _win(logf), _win(script), smtp, pop, imap))
    user = "jos\u00e9@example.org"
    run = lambda *a, **k: subprocess.run([WINE, EXE, "-c", _win(conf)] + list(a), env=env,
                                         capture_output=True, timeout=120, **k)
    r = run("domain", "add", "example.org")
    assert r.returncode == 0, r.stderr
    r = run("user", "add", user, input=b"pw\n")
    assert r.returncode == 0, r.stderr
    r = run("user", "list")
    assert r.returncode == 0 and user.encode() in r.stdout, (r.stdout, r.stderr)
    errf = os.path.join(d, "stderr")
    out = open(errf, "wb")
    p = subprocess.Popen([WINE, EXE, "-c", _win(conf)], env=env, stdout=out, stderr=out)
    try:
        assert wait_port(imap, 60), open(errf, "rb").read()
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as c:
            c.sendmail("x@remote.test", [user], b"Subject: gr\xc3\xbc\xc3\x9fe\r\n\r\nhallo\r\n",
                       mail_options=["SMTPUTF8"])
        c = poplib.POP3("127.0.0.1", pop, timeout=30)
        c.user(user)
        c.pass_("pw")
        assert b"hallo" in b"\n".join(c.retr(1)[1])
        c.quit()
        c = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
        c.authenticate("PLAIN", lambda _: ("\0%s\0pw" % user).encode())
        c.select("INBOX")
        folder = "Entw&APw-rfe"  # "Entwürfe" in modified UTF-7
        assert c.create(folder)[0] == "OK"
        assert c.copy("1", folder)[0] == "OK"
        assert any(folder.encode() in l for l in c.list()[1]), c.list()
        assert c.select(folder)[0] == "OK"
        typ, data = c.fetch("1", "(BODY[TEXT])")
        assert typ == "OK" and b"hallo" in data[0][1], data
        c.logout()
    finally:
        p.kill()
        p.wait(30)
        out.close()
        subprocess.run([WINESERVER, "-k"], env=env, timeout=30)
    # seen from Linux: the folders carry the names given, no mojibake beside them
    assert sorted(os.listdir(d)) == ["Jos\u00e9", "stderr"], os.listdir(d)
    assert sorted(os.listdir(top)) == sorted(["Daten-\u00fc", "Protokoll-\u00e4.log",
                                              "Skript-\u00f6.lua", "rumble.conf"]), os.listdir(top)
    home = os.path.join(store, "mail", "example.org", fs_name("jos\u00e9"))
    mbox = open(os.path.join(home, "INBOX.mbox"), "rb").read()
    assert mbox.startswith(b"From x@remote.test ") and b"\n\nhallo\n" in mbox
    assert b"hallo" in open(os.path.join(home, folder_file(folder) + ".mbox"), "rb").read()
    log = open(logf, "rb").read().decode("utf-8")
    assert "script: Skript gr\u00fc\u00dft" in log and "ready in" in log, log[-2000:]
    shutil.rmtree(d, ignore_errors=True)


def _make_vars(path):
    """The macros of a makefile (GNU make's or nmake's), continuation lines joined."""
    text = open(path).read().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().replace("_", "").isalnum() and not line.startswith("\t"):
            out[name.strip().rstrip("?+:").strip()] = value.split()
    return out


def test_makefile_msvc_builds_what_the_makefile_builds():
    """windows: Makefile.msvc compiles every source the Makefile does, with win32\\os.c, and uses tools/embed.c"""
    gnu = _make_vars(os.path.join(ROOT, "Makefile"))
    core = {s.replace("$(PLAT)", "win32")[:-2] for s in gnu["CORE"]}
    msvc_text = open(os.path.join(ROOT, "Makefile.msvc")).read()
    ms = _make_vars(os.path.join(ROOT, "Makefile.msvc"))
    objs = []
    for v in ms["OBJ"]:
        objs += ms[v[2:-1]] if v.startswith("$(") and v[2:-1] in ms else [v]
    names = {o.replace("$(OUT)\\", "")[:-4].replace("\\", "/") for o in objs}
    assert names == core | {"rumble"}, (sorted(names - core), sorted(core - names))
    for n in names:
        assert os.path.exists(os.path.join(ROOT, n + ".c")), n
    assert "embed.exe webadmin_lua lua\\webadmin.lua" in msvc_text
    assert "$(OUT)/embed webadmin_lua lua/webadmin.lua" in open(os.path.join(ROOT, "Makefile")).read()
    # every library the mingw build links, and the pragmas of win32/os.c name
    libs = set(re.findall(r"-l(\w+)", open(os.path.join(ROOT, "win32", "build.sh")).read()))
    pragmas = set(re.findall(r'#pragma comment\(lib, "(\w+)"\)',
                             open(os.path.join(ROOT, "win32", "os.c")).read()))
    assert libs == pragmas == {l[:-4] for l in ms["SYSLIBS"]}, (libs, pragmas, ms["SYSLIBS"])
