"""End-to-end tests of `rumble backup` and `rumble restore` (backup.c): a
round trip of accounts, folders with flags, a queued message and a DKIM
key; a backup taken while SMTP delivers; what restore refuses."""
import io
import mailbox
import os
import poplib
import pty
import re
import select
import smtplib
import subprocess
import tarfile
import threading
import time

from harness import BIN, Server, free_port, wait_port
from test_imap import login

# nothing answers on this DNS port: mail for remote.test stays queued
SLOW_QUEUE = "RetryInterval 3600\nMaxRetryInterval 3600\nDNSServer 127.0.0.1:%d\n"
# what an mbox.c repair says: none of it may happen on a restored store
REPAIRS = ("index rebuilt", "does not match", "without their message", "not a complete message")


def mail_server(users=("alice@example.org", "bob@example.org"), storage_from=None):
    """A Server with IMAP and POP3 on free ports; started unless storage_from
    names an archive to restore into its (empty) storage folder first."""
    imap, pop = free_port(), free_port()
    conf = ("EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d\n" % (imap, pop) +
            SLOW_QUEUE % free_port())
    s = Server(conf=conf, users=users, domains=("example.org",) if users else ())
    s.imap_port, s.pop3_port = imap, pop
    if storage_from:
        s.restored = s.cli("restore", storage_from)
    s.start()
    assert wait_port(imap) and wait_port(pop), "IMAP/POP3 ports not open"
    return s


def send(s, rcpts, msg, sender="sender@remote.test", auth=False):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
        if auth:
            c.login("alice@example.org", "secret")
        c.sendmail(sender, rcpts, msg)


def folders(m):
    names = []
    for line in m.list()[1]:
        name = re.match(rb'\(.*?\) (?:"[^"]*"|NIL) (.*)$', line).group(1)
        names.append(name.decode().strip('"'))
    return sorted(names)


def state(s, user):
    """{folder: (UIDVALIDITY, UIDNEXT, [uid flags size])} of user's folders over IMAP;
    \\Recent is left out (it belongs to sessions, not to the store)."""
    m = login(s, user)
    out = {}
    for name in folders(m):
        typ, _ = m.select('"%s"' % name, readonly=True)
        assert typ == "OK", name
        validity = m.response("UIDVALIDITY")[1][0]
        typ, st = m.status('"%s"' % name, "(UIDNEXT)")
        typ, data = m.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
        msgs = sorted(re.sub(rb" ?\\Recent", b"", d) for d in data if d)
        out[name] = (validity, st[0].split(b"UIDNEXT ")[1], msgs)
    m.logout()
    return out


def subjects(s, user, folder="INBOX"):
    """The Subject of every message in folder, and its message count (EXISTS)."""
    m = login(s, user)
    typ, data = m.select(folder, readonly=True)
    exists = int(data[0])
    got = []
    if exists:
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        got = [re.search(rb"Subject: (.*?)\r\n", d[1]).group(1).decode()
               for d in data if isinstance(d, tuple)]
    m.logout()
    return got, exists


def pop3_subjects(s, user):
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=30)
    p.user(user)
    p.pass_("secret")
    n = p.stat()[0]
    out = [re.search(rb"Subject: (.*)", b"\n".join(p.retr(i + 1)[1])).group(1).decode()
           for i in range(n)]
    p.quit()
    return out


def queue_ids(s):
    return sorted(l.split("\t")[0] for l in s.cli("queue", "list").stdout.splitlines()[1:])


def fill(s):
    """Folders with flags and keywords for alice, mail for bob, a queued message."""
    for i in range(3):
        send(s, ["alice@example.org"], b"Subject: inbox %d\r\n\r\nbody %d\r\n" % (i, i))
    send(s, ["bob@example.org"], b"Subject: for bob\r\n\r\nhello bob\r\n")
    m = login(s)
    for name, flags in (("Work", r"(\Seen \Flagged)"), ("Sent Items", r"(\Answered $Label1)")):
        m.create('"%s"' % name)
        for i in range(2):
            m.append('"%s"' % name, flags, None, b"Subject: %s %d\r\n\r\nx\r\n" % (name.encode(), i))
    m.select("INBOX")
    m.store("2", "+FLAGS", r"(\Deleted)")
    m.expunge()  # a gap in the UIDs: 1 and 3 are left
    m.store("1", "+FLAGS", r"(\Seen $Important)")
    m.logout()
    send(s, ["someone@remote.test"], b"Subject: queued\r\n\r\nwaits\r\n",
         sender="alice@example.org", auth=True)
    for _ in range(100):
        if queue_ids(s):
            break
        time.sleep(0.1)


def test_round_trip_keeps_accounts_folders_flags_uidvalidity_the_queue_and_dkim_key():
    """backup/restore: accounts, folders with flags and UIDVALIDITY, the queue and the DKIM key come back"""
    s = mail_server()
    r = None
    try:
        s.cli("dkim", "example.org")
        fill(s)
        before = {u: state(s, u) for u in ("alice@example.org", "bob@example.org")}
        assert set(before["alice@example.org"]) >= {"INBOX", "Work", "Sent Items"}
        qids = queue_ids(s)
        assert len(qids) == 1, qids
        arch = os.path.join(s.dir, "backup.tar")
        out = s.cli("backup", arch).stdout
        assert re.match(r"backup: \d+ files, \d+ mailboxes", out), out
        with tarfile.open(arch) as t:  # python reads it: a standard tar
            members = {m.name: m for m in t.getmembers()}
            conf = t.extractfile("rumble.conf").read()
        assert conf == open(s.conf, "rb").read()
        assert "storage/dkim/example.org.rumble.pem" in members, sorted(members)
        assert "storage/queue/%s.env" % qids[0] in members
        assert "storage/queue/server.lock" not in members and "storage/rumble.pid" not in members
        assert not [n for n in members if "/requests" in n or ".tmp." in n]
        assert all(m.mode == (0o700 if m.isdir() else 0o600) for m in members.values())
        key = open(os.path.join(s.storage, "dkim", "example.org.rumble.pem"), "rb").read()
        assert s.stop() == 0

        r = mail_server(users=(), storage_from=arch)
        assert "restored" in r.restored.stdout, r.restored.stdout
        assert open(os.path.join(r.dir, "rumble.conf.restored"), "rb").read() == conf
        assert oct(os.stat(os.path.join(r.storage, "accounts")).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.join(r.storage, "mail")).st_mode & 0o777) == "0o700"
        for user, folders_then in before.items():
            assert state(r, user) == folders_then, user
        assert pop3_subjects(r, "bob@example.org") == ["for bob"]
        assert queue_ids(r) == qids
        assert open(os.path.join(r.storage, "dkim", "example.org.rumble.pem"), "rb").read() == key
        assert not [w for w in REPAIRS if w in r.stderr()], r.stderr()
        assert r.stop() == 0
    finally:
        s.stop()
        if r:
            r.stop()


def test_backup_under_load_has_every_acknowledged_message_and_no_half_written_mbox():
    """backup/restore under load: every message acknowledged before the backup is restored, no mbox half-written"""
    s = mail_server()
    r = None
    try:
        filler = b"Subject: filler %d\r\n\r\n" + (b"y" * 76 + b"\r\n") * 2500  # 195 KB
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
            for i in range(40):  # 8 MB each, so that copying an mbox takes a while
                c.sendmail("sender@remote.test", ["alice@example.org", "bob@example.org"],
                           filler % i)
        acked, stop = [], threading.Event()

        def load(user):
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
                for n in range(20000):
                    if stop.is_set():
                        break
                    subject = "%s %d" % (user, n)
                    c.sendmail("sender@remote.test", [user + "@example.org"],
                               b"Subject: " + subject.encode() + b"\r\n\r\n" + b"z" * 2000 + b"\r\n")
                    acked.append((subject, time.time()))

        threads = [threading.Thread(target=load, args=(u,)) for u in ("alice", "bob")]
        for t in threads:
            t.start()
        for _ in range(300):
            if len(acked) >= 20:
                break
            time.sleep(0.05)
        arch = os.path.join(s.dir, "backup.tar")
        t0 = time.time()
        s.cli("backup", arch)
        t1 = time.time()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        before = {subj for subj, at in acked if at < t0}
        during = [subj for subj, at in acked if t0 <= at < t1]
        assert len(before) >= 20 and during, (len(before), len(during), t1 - t0)
        assert s.stop() == 0

        r = mail_server(users=(), storage_from=arch)
        restored = set()
        for user in ("alice@example.org", "bob@example.org"):
            got, exists = subjects(r, user)
            path = os.path.join(r.storage, "mail", "example.org", user.split("@")[0], "INBOX.mbox")
            parsed = [m["Subject"] for m in mailbox.mbox(path)]
            assert exists == len(got) == len(parsed), (user, exists, len(got), len(parsed))
            assert sorted(got) == sorted(parsed), user
            restored |= set(got)
        missing = before - restored
        assert not missing, sorted(missing)[:10]
        assert not [w for w in REPAIRS if w in r.stderr()], r.stderr()
        assert r.stop() == 0
    finally:
        stop.set()
        s.stop()
        if r:
            r.stop()


def evil_tar(path, name, kind=tarfile.REGTYPE, link=""):
    """A tar with one good member, then one named name (of type kind)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for n, k in (("storage/domains", tarfile.REGTYPE), (name, kind)):
            info = tarfile.TarInfo(n)
            info.type, info.linkname = k, link
            data = b"x\n" if k == tarfile.REGTYPE else b""
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_restore_refuses_a_folder_in_use_or_not_empty_and_unsafe_archives():
    """restore: refuses a running server's folder, a non-empty one, and members with .., absolute paths or links"""
    s = mail_server()
    try:
        arch = os.path.join(s.dir, "backup.tar")
        s.cli("backup", arch)
        r = s.cli("restore", arch, check=False)
        assert r.returncode == 1 and "a server runs" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert s.stop() == 0
        listing = sorted(os.listdir(s.storage))
        r = s.cli("restore", arch, check=False)
        assert r.returncode == 1 and "not empty" in r.stderr, r.stderr
        assert sorted(os.listdir(s.storage)) == listing
        assert not os.path.exists(os.path.join(s.dir, "rumble.conf.restored"))
    finally:
        s.stop()
    for name, kind, link, why in (
            ("storage/../../evil", tarfile.REGTYPE, "", "unsafe member name"),
            ("storage/mail/../../../evil", tarfile.DIRTYPE, "", "unsafe member name"),
            ("/tmp/evil", tarfile.REGTYPE, "", "unsafe member name"),
            ("storage/" + "d/" * 60 + "../" * 62 + "evil", tarfile.REGTYPE, "", "unsafe"),
            ("storage/evil", tarfile.SYMTYPE, "/etc/passwd", "links"),
            ("storage/evil", tarfile.LNKTYPE, "storage/domains", "links"),
            ("elsewhere/evil", tarfile.REGTYPE, "", "not part of a rumble backup")):
        e = Server(domains=(), users=())
        path = os.path.join(e.dir, "evil.tar")
        evil_tar(path, name, kind, link)
        r = e.cli("restore", path, check=False)
        assert r.returncode == 1 and why in r.stderr, (name, r.stderr)
        assert "partly restored" in r.stderr
        for where in (e.dir, os.path.dirname(e.dir), "/tmp", e.storage):
            assert not os.path.lexists(os.path.join(where, "evil")), (name, where)


def test_backup_to_standard_output_restores_from_standard_input():
    """backup - / restore -: the archive through a pipe, and the settings to a path given"""
    s = mail_server(users=("alice@example.org",))
    try:
        send(s, ["alice@example.org"], b"Subject: piped\r\n\r\nthrough a pipe\r\n")
        out = subprocess.run([BIN, "-c", s.conf, "backup", "-"], capture_output=True, timeout=60)
        assert out.returncode == 0 and out.stderr.startswith(b"backup: "), out.stderr
        assert out.stdout[257:263] == b"ustar\0"
    finally:
        s.stop()
    r = Server(domains=(), users=())
    settings = os.path.join(r.dir, "old.conf")
    p = subprocess.run([BIN, "-c", r.conf, "restore", "-", settings], input=out.stdout,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert open(settings).read() == open(s.conf).read()
    assert not os.path.exists(os.path.join(r.dir, "rumble.conf.restored"))
    mbox = os.path.join(r.storage, "mail", "example.org", "alice", "INBOX.mbox")
    assert [m["Subject"] for m in mailbox.mbox(mbox)] == ["piped"]
    again = Server(domains=(), users=())
    p = subprocess.run([BIN, "-c", again.conf, "restore", "-", settings], input=out.stdout,
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"exists already" in p.stderr, p.stderr
    assert not os.path.exists(again.storage)
    deep = os.path.join(again.dir, "new", "sub", "data")  # its folder is made too
    far = Server(conf="StorageFolder %s\n" % deep, domains=(), users=())
    p = subprocess.run([BIN, "-c", far.conf, "restore", "-"], input=out.stdout,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(deep, "accounts"))
    assert open(os.path.join(again.dir, "new", "sub", "rumble.conf.restored")).read() == \
        open(s.conf).read()


def test_backup_draws_a_progress_bar_on_a_terminal_only():
    """backup: a progress bar on a terminal's stderr, none on a pipe; the summary on stdout"""
    s = mail_server(users=("alice@example.org",))
    try:
        send(s, ["alice@example.org"], b"Subject: one\r\n\r\nbody\r\n")
        arch = os.path.join(s.dir, "backup.tar")
        master, slave = pty.openpty()
        p = subprocess.run([BIN, "-c", s.conf, "backup", arch], stderr=slave,
                           stdout=subprocess.PIPE, timeout=60)
        os.close(slave)
        drawn = b""
        while select.select([master], [], [], 2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end is closed: all was read
                break
            if not chunk:
                break
            drawn += chunk
        os.close(master)
        assert p.returncode == 0 and p.stdout.startswith(b"backup: "), p.stdout
        assert b"\rbackup [" in drawn and b"%" in drawn, drawn
        piped = s.cli("backup", arch + "2")
        assert piped.stderr == "" and piped.stdout.startswith("backup: "), piped
    finally:
        s.stop()
