"""End-to-end tests of RunAs started as root with a storage folder made by
root (the command line run with sudo): the server gives what the RunAs user
cannot use to it, or stops with one line naming the path and the chown to
run. Skipped when not root or without a "nobody" user."""
import grp
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile

from harness import BIN, Server

MSG = b"From: a@example.net\r\nTo: alice@example.org\r\nSubject: runas\r\n\r\nhello\r\n"


def nobody():
    if os.geteuid() != 0:
        raise Skip("needs root")
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user nobody")
    return pw.pw_uid, "nobody:" + grp.getgrgid(pw.pw_gid).gr_name


def runas_server():
    """A Server whose storage folder root made (no RunAs yet), moved to a
    folder nobody can reach whatever the clone's path, then RunAs nobody.
    s.top is that folder (the caller removes it)."""
    s = Server()
    top = tempfile.mkdtemp(prefix="rumble-runas-", dir="/tmp")
    os.chmod(top, 0o755)
    new = os.path.join(top, "data")
    shutil.move(s.storage, new)
    with open(s.conf) as f:
        c = f.read().replace("StorageFolder %s\n" % s.storage, "StorageFolder %s\n" % new)
    with open(s.conf, "w") as f:
        f.write(c + "RunAs nobody\n")
    s.storage, s.top = new, top
    return s


def owners(top):
    """Every entry under top (top included) with its owner's uid."""
    out = {top: os.lstat(top).st_uid}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            out[os.path.join(d, n)] = os.lstat(os.path.join(d, n)).st_uid
    return out


def process_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def test_runas_gives_a_storage_folder_made_by_root_to_its_user():
    """RunAs nobody with a storage folder made by root: start-up gives it to nobody and mail is delivered"""
    uid, who = nobody()
    s = runas_server()
    try:
        assert os.stat(os.path.join(s.storage, "accounts")).st_uid == 0
        outside = os.path.join(s.top, "outside")
        with open(outside, "w") as f:
            f.write("root's\n")
        os.symlink(outside, os.path.join(s.storage, "link"))
        s.start()
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=15) as c:
            c.sendmail("a@example.net", ["alice@example.org"], MSG)
        assert "RunAs: gave" in s.stderr(), s.stderr()
        assert process_uid(s.proc.pid) == uid
        assert len(s.messages("alice@example.org")) == 1, s.stderr()
        assert s.stop() == 0
        got = owners(s.storage)
        assert all(u == uid for p, u in got.items() if not p.endswith("/link")), got
        # the link is not followed out of the storage folder, nor changed
        assert os.lstat(os.path.join(s.storage, "link")).st_uid == 0
        assert os.stat(outside).st_uid == 0
    finally:
        s.stop()
        shutil.rmtree(s.top)


def test_runas_command_line_as_root_keeps_the_storage_usable():
    """With RunAs, the command line run as root leaves the storage the server's: a user added while it runs gets mail"""
    uid, who = nobody()
    s = runas_server()
    try:
        for p in owners(s.top):  # as an administrator who ran the chown
            os.lchown(p, uid, -1)
        s.start()
        s.cli("user", "add", "bob@example.org", input="secret\n")
        assert os.stat(os.path.join(s.storage, "accounts")).st_uid == uid
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=15) as c:
            c.sendmail("a@example.net", ["bob@example.org"], MSG)
        assert len(s.messages("bob@example.org")) == 1, s.stderr()
        assert s.stop() == 0
    finally:
        s.stop()
        shutil.rmtree(s.top)


def test_runas_stops_with_one_line_when_a_file_cannot_be_given():
    """RunAs nobody and a root file in the storage that cannot be given (hard-linked elsewhere): one line with the path and the chown to run, exit 1"""
    uid, who = nobody()
    s = runas_server()
    try:
        accounts = os.path.join(s.storage, "accounts")
        os.link(accounts, os.path.join(s.top, "accounts.bak"))
        r = s.cli("domain", "list", check=False)
        want = "nobody cannot use %s (it has other hard links); run: chown -R %s %s" % (
            accounts, who, s.storage)
        assert r.returncode == 1 and want in r.stderr, r.stderr
        r = subprocess.run([BIN, "-c", s.conf], capture_output=True, text=True, timeout=30)
        err = r.stderr
        assert r.returncode == 1, err
        lines = [l for l in err.splitlines() if "chown" in l]
        assert len(lines) == 1 and lines[0].endswith("RunAs: " + want), err
        assert os.stat(accounts).st_uid == 0
    finally:
        shutil.rmtree(s.top)
