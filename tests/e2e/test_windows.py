"""The Windows build (mingw-w64), run under wine: it starts, takes mail and stores it, and
runs as a service under wine's service manager (services.exe, sc, net)."""
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

from harness import ROOT, TMP, free_port, wait_port

EXE = os.path.join(ROOT, "build", "win", "rumble.exe")
WINE = "/usr/lib/wine/wine64"


def test_windows_build_takes_mail_under_wine():
    """windows: rumble.exe runs under wine, takes mail over SMTP and stores it"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="wine-")
    env = dict(os.environ, WINEDEBUG="-all", WINEPREFIX=os.path.join(TMP, "wineprefix"))
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName win.test\nStorageFolder Z:%s\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
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


WINESERVER = "/usr/lib/wine/wineserver"


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
    """windows: service install/start under wine's services.exe takes mail, net stop stops it gracefully, uninstall removes it"""
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="winsvc-")
    # A prefix of its own: its wineserver is kept alive with -p (wine ends
    # services.exe, and the service with it, when the last ordinary wine
    # process exits) and killed at the end without touching other prefixes.
    env = dict(os.environ, WINEDEBUG="-all", WINEPREFIX=os.path.join(TMP, "wineprefix-svc"))
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    # StorageFolder is relative and LogFile unset: the service works in the
    # folder of rumble.conf and logs to data\rumble.log.
    with open(conf, "w") as f:
        f.write("ServerName win.test\nStorageFolder data\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nEnableWebAdmin 0\nEnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\n"
                "EnableIMAPS 0\nLogLevel debug\n" % port)
    wconf = "Z:" + conf.replace("/", "\\")
    name = "RumbleTest"
    log = os.path.join(d, "data", "rumble.log")

    def wine(*a, **k):
        return subprocess.run([WINE] + list(a), env=env, cwd=d, capture_output=True, timeout=120,
                              **k)

    def rumble(*a, **k):
        return wine(EXE, "-c", wconf, *a, **k)

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
        assert r.returncode == 3 and r.stdout.strip() == b"RumbleTest stopped", r.stdout

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
        r = rumble("service", "status", name)
        assert r.returncode == 0 and r.stdout.strip() == b"RumbleTest running", r.stdout
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
        assert r.returncode == 3 and r.stdout.strip() == b"RumbleTest stopped", r.stdout

        # Rumble's own start waits for RUNNING; uninstall stops it first.
        r = rumble("service", "start", name)
        assert r.returncode == 0 and r.stdout.strip() == b"RumbleTest: start ok", r.stderr
        r = rumble("service", "status", name)
        assert r.returncode == 0 and r.stdout.strip() == b"RumbleTest running", r.stdout
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
    env = dict(os.environ, WINEDEBUG="-all", WINEPREFIX=os.path.join(TMP, "wineprefix"))
    port = free_port()
    conf = os.path.join(d, "rumble.conf")
    with open(conf, "w") as f:
        f.write("ServerName win.test\nStorageFolder data\nBindToAddress 127.0.0.1\nSMTPPort %d\n"
                "EnablePOP3 0\nEnableIMAP4 0\nEnableWebAdmin 0\nEnableSubmission 0\nEnableSMTPS 0\nEnablePOP3S 0\n"
                "EnableIMAPS 0\n" % port)
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
