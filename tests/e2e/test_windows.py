"""The Windows build (mingw-w64), run under wine: it starts, takes mail and stores it."""
import os
import shutil
import smtplib
import subprocess
import tempfile

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
                "EnablePOP3 0\nEnableIMAP4 0\n<if defined(windows)>\nLogLevel debug\n</if>\n"
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
