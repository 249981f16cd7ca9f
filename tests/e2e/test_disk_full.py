"""Disk full: a message that cannot be written for lack of space gets
SMTP's 452 4.3.1 (RFC 5321, RFC 3463 "mail system full") and IMAP's
NO [OVERQUOTA] (RFC 5530), not 451 4.3.0 / [SERVERBUG]. The mail folder
sits on a 1 MB tmpfs; skipped unless run as root (CI is)."""
import imaplib
import os
import shutil
import subprocess

from harness import SMTPRaw, Server, free_port, wait_port

ROOM = 24 * 1024  # what is left free once the filler is written


def small_disk(path):
    """Moves path onto a new 1 MB tmpfs (its files copied); False if that
    cannot be done here."""
    if os.geteuid() != 0:
        return False
    keep = path + ".keep"
    shutil.copytree(path, keep)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path],
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        shutil.rmtree(keep)
        return False
    shutil.copytree(keep, path, dirs_exist_ok=True)
    shutil.rmtree(keep)
    return True


def fill(path):
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(path, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - ROOM))


def message(size):
    line = b"y" * 76 + b"\r\n"
    return b"Subject: big\r\n\r\n" + line * (size // len(line))


def test_a_full_disk_answers_452_and_overquota():
    """Disk full: SMTP DATA gets 452 4.3.1, IMAP APPEND and COPY get NO [OVERQUOTA]"""
    imap_port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nAllowPlaintextAuth yes\n" % imap_port)
    mail = os.path.join(s.storage, "mail")
    os.makedirs(mail, exist_ok=True)
    if not small_disk(mail):
        raise Skip("needs root to mount a tmpfs")  # noqa: F821 (run.py sets Skip)
    try:
        s.start()
        assert wait_port(imap_port)
        im = imaplib.IMAP4("127.0.0.1", imap_port)
        im.login("alice@example.org", "secret")
        assert im.append("INBOX", None, None, message(60 * 1024))[0] == "OK"
        fill(mail)
        c = SMTPRaw(s.smtp_port)
        assert c.cmd("EHLO a.example")[0] == 250
        assert c.cmd("MAIL FROM:<x@a.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(100 * 1024))
        code, text = c.cmd(".")
        assert (code, text[:5]) == (452, "4.3.1"), (code, text)
        assert c.cmd("QUIT")[0] == 221
        typ, data = im.append("INBOX", None, None, message(100 * 1024))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        im.select("INBOX")
        im.create("Other")
        typ, data = im.copy("1", "Other")
        assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
        os.unlink(os.path.join(mail, "filler"))
        assert im.append("INBOX", None, None, message(100 * 1024))[0] == "OK"
        im.logout()
    finally:
        try:
            assert s.stop() == 0
        finally:
            subprocess.run(["umount", mail], timeout=30)
