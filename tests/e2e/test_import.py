"""rumble import (an mbox file, a Maildir, a Maildir++ tree, one Dovecot
wrote) and rumble export (Maildir++), checked through IMAP: folders, FLAGS,
INTERNALDATE and BODY[] of every message, and that a second import adds
nothing."""
import imaplib
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import TMP, Server, free_port

DOVECOT_IMAP = "/usr/lib/dovecot/imap"


def imap_server(users=("alice@example.org", "bob@example.org")):
    port = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\n" % port, users=users).start()
    s.imap_port = port
    return s


def scratch():
    os.makedirs(TMP, exist_ok=True)
    return tempfile.mkdtemp(dir=TMP, prefix="import-")


def login(s, user):
    m = imaplib.IMAP4("127.0.0.1", s.imap_port)
    m.login(user, "secret")
    return m


def folders(m):
    typ, data = m.list()
    assert typ == "OK", data
    return sorted(re.search(rb'"\." "?([^"]*)"?$', d).group(1).decode() for d in data)


def messages(m, folder):
    """[(flags, internaldate, body)] of folder in UID order, read-only."""
    typ, data = m.select('"%s"' % folder, readonly=True)
    assert typ == "OK", (folder, data)
    if int(data[0]) == 0:
        return []
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK", data
    out = []
    for item in data:
        if isinstance(item, tuple):
            head = item[0].decode()
            flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            out.append((sorted(flags), date, item[1]))
    return out


def cli(s, *args, check=True):
    r = s.cli(*args, check=check)
    return r.stdout.strip()


def idate(t):
    """INTERNALDATE as Rumble shows it for a UTC time t."""
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(t))


MBOX = (b"From alice@remote.test Wed Nov  5 09:24:05 2025\n"
        b"Status: RO\n"
        b"X-Status: AF\n"
        b"Message-ID: <one@remote.test>\n"
        b"Subject: one\n"
        b"\n"
        b"first body\n"
        b">From the mboxrd quoting\n"
        b">>From twice\n"
        b"\n"
        b"From bob@remote.test Thu Nov  6 10:00:00 2025\n"
        b"Status: O\n"
        b"X-Keywords: $Label1 work,later\n"
        b"Subject: two, no Message-ID\n"
        b"\n"
        b"second body\n"
        b"From the middle of a paragraph (mboxo): not a new message\n"
        b"\n"
        b"\n"
        b"From - Fri Nov  7 11:30:00 2025\n"
        b"X-Mozilla-Status: 0005\n"
        b"X-Mozilla-Status2: 00000000\n"
        b"Message-ID: <three@remote.test>\n"
        b"Subject: three, from Thunderbird\n"
        b"\n"
        b"third body, no blank line at the end\n")


def test_mbox_import_keeps_flags_dates_and_bodies_and_a_second_run_adds_nothing():
    """import: an mbox (mutt's Status/X-Status, Thunderbird's X-Mozilla-Status, Dovecot's X-Keywords, >From quoting) arrives with its flags and dates, in INBOX or a folder named; a second run skips every message"""
    s = imap_server()
    d = scratch()
    try:
        path = os.path.join(d, "mail.mbox")
        with open(path, "wb") as f:
            f.write(MBOX)
        assert cli(s, "import", "alice@example.org", path) == \
            "imported 3, skipped 0 duplicates, 1 folders"
        m = login(s, "alice@example.org")
        got = messages(m, "INBOX")
        assert [g[0] for g in got] == [["\\Answered", "\\Flagged", "\\Seen"],
                                       ["$Label1", "later", "work"], ["\\Flagged", "\\Seen"]], got
        assert [g[1] for g in got] == ["05-Nov-2025 09:24:05 +0000", "06-Nov-2025 10:00:00 +0000",
                                       "07-Nov-2025 11:30:00 +0000"], got
        assert got[0][2] == (b"Message-ID: <one@remote.test>\r\nSubject: one\r\n\r\nfirst body\r\n"
                             b"From the mboxrd quoting\r\n>From twice\r\n"), got[0][2]
        # the separator's blank line is not the message's, the one before it is
        assert got[1][2] == (b"Subject: two, no Message-ID\r\n\r\nsecond body\r\nFrom the middle of "
                             b"a paragraph (mboxo): not a new message\r\n\r\n"), got[1][2]
        assert got[2][2] == (b"Message-ID: <three@remote.test>\r\nSubject: three, from Thunderbird"
                             b"\r\n\r\nthird body, no blank line at the end\r\n"), got[2][2]
        m.logout()
        assert cli(s, "import", "alice@example.org", path) == \
            "imported 0, skipped 3 duplicates, 1 folders"
        # a new message at the end of the same file is the only one added
        with open(path, "ab") as f:
            f.write(b"\nFrom x Sat Nov  8 12:00:00 2025\nSubject: four\n\nfourth\n")
        assert cli(s, "import", "alice@example.org", path) == \
            "imported 1, skipped 3 duplicates, 1 folders"
        m = login(s, "alice@example.org")
        assert len(messages(m, "INBOX")) == 4
        m.logout()
        # our own mbox has no stale Status lines a mutt -f would believe
        assert b"Status:" not in open(s.mbox("alice@example.org"), "rb").read()
        # into another folder, made for it; again, nothing new
        for _ in range(2):
            r = cli(s, "import", "alice@example.org", path, "Saved.2025")
        assert r == "imported 0, skipped 4 duplicates, 1 folders", r
        m = login(s, "alice@example.org")
        assert "Saved.2025" in folders(m)
        assert [g[0] for g in messages(m, "Saved.2025")][:3] == [
            ["\\Answered", "\\Flagged", "\\Seen"], ["$Label1", "later", "work"],
            ["\\Flagged", "\\Seen"]]
        m.logout()
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def maildir(root, files):
    """files: {relative path: (content, mtime)}"""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for rel, (content, mtime) in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)
        os.utime(p, (mtime, mtime))


def test_maildir_import_reads_flags_from_names_and_dates_from_mtimes():
    """import: a Maildir's cur/ flags (:2,DFRST) and new/ (unseen) arrive, dated by the files' mtimes; LF files are served CRLF"""
    s = imap_server()
    d = scratch()
    try:
        t = 1750000000
        maildir(d, {
            "cur/1700000001.M1P1.host,S=30:2,RS": (b"Subject: a\nMessage-ID: <a@x>\n\nA\n", t),
            "cur/1700000002.M2P1.host:2,DFT": (b"Subject: b\r\n\r\nB\r\n", t + 60),
            "cur/1700000003.M3P1.host:2,": (b"Subject: c\n\nC", t + 120),
            "new/1700000004.M4P1.host": (b"Subject: d\n\nD\n", t + 180),
        })
        assert cli(s, "import", "alice@example.org", d) == \
            "imported 4, skipped 0 duplicates, 1 folders"
        m = login(s, "alice@example.org")
        got = messages(m, "INBOX")
        assert got == [
            (["\\Answered", "\\Seen"], idate(t), b"Subject: a\r\nMessage-ID: <a@x>\r\n\r\nA\r\n"),
            (["\\Deleted", "\\Draft", "\\Flagged"], idate(t + 60), b"Subject: b\r\n\r\nB\r\n"),
            ([], idate(t + 120), b"Subject: c\r\n\r\nC\r\n"),
            ([], idate(t + 180), b"Subject: d\r\n\r\nD\r\n"),
        ], got
        m.logout()
        assert cli(s, "import", "alice@example.org", d) == \
            "imported 0, skipped 4 duplicates, 1 folders"
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_maildirpp_import_makes_nested_folders():
    """import: a Maildir++ tree's .Work, .Work.2026 and .Lists.rumble become the folders Work, Work.2026 and Lists.rumble ("." the separator) with their messages"""
    s = imap_server()
    d = scratch()
    try:
        t = 1760000000
        maildir(d, {"cur/1.a:2,S": (b"Subject: inbox\n\nI\n", t)})
        maildir(os.path.join(d, ".Work"), {"cur/1.b:2,F": (b"Subject: work\n\nW\n", t)})
        maildir(os.path.join(d, ".Work.2026"), {"new/1.c": (b"Subject: w26\n\nW26\n", t),
                                                "cur/2.d:2,RS": (b"Subject: w26b\n\nX\n", t + 1)})
        maildir(os.path.join(d, ".Lists.rumble"), {"cur/1.e:2,": (b"Subject: l\n\nL\n", t)})
        os.makedirs(os.path.join(d, ".NotAMaildir"))  # no cur/ or new/: not a folder
        assert cli(s, "import", "bob@example.org", d) == \
            "imported 5, skipped 0 duplicates, 4 folders"
        m = login(s, "bob@example.org")
        names = folders(m)
        for f in ("INBOX", "Work", "Work.2026", "Lists.rumble"):
            assert f in names, names
        assert "NotAMaildir" not in names, names
        assert [(g[0], g[2]) for g in messages(m, "Work.2026")] == [
            ([], b"Subject: w26\r\n\r\nW26\r\n"), (["\\Answered", "\\Seen"], b"Subject: w26b\r\n\r\nX\r\n")]
        assert [g[0] for g in messages(m, "Work")] == [["\\Flagged"]]
        assert [g[0] for g in messages(m, "INBOX")] == [["\\Seen"]]
        assert len(messages(m, "Lists.rumble")) == 1
        m.logout()
        assert cli(s, "import", "bob@example.org", d) == \
            "imported 0, skipped 5 duplicates, 4 folders"
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def short(want, got):
    """What differs, without the bodies in full."""
    def brief(state):
        return {n: [(fl, dt, b[:80], len(b)) for fl, dt, b in v] for n, v in state.items()}
    return "want %r\ngot  %r" % (brief(want), brief(got))


def append(m, folder, flags, t, body):
    typ, data = m.append('"%s"' % folder, flags, imaplib.Time2Internaldate(t), body)
    assert typ == "OK", data


def mailbox_state(s, user, names):
    m = login(s, user)
    state = {n: messages(m, n) for n in names}
    m.logout()
    return state


def test_export_then_import_into_another_account_gives_the_same_folders_messages_and_flags():
    """export: alice's folders (while the server runs) become a Maildir++ tree with flags and keywords in the names and dates as mtimes; imported into bob, every folder has the same FLAGS, INTERNALDATE and BODY[]"""
    s = imap_server()
    d = scratch()
    out = os.path.join(d, "export")
    try:
        m = login(s, "alice@example.org")
        for f in ("Work", "Work.2026", "Caf&AOk-"):
            assert m.create('"%s"' % f)[0] == "OK"
        t = 1740000000
        append(m, "INBOX", r"(\Seen \Answered)", t, b"Subject: 1\r\nMessage-ID: <1@x>\r\n\r\none\r\n")
        append(m, "INBOX", None, t + 1, b"Subject: 2\r\n\r\nFrom here\r\n>From there\r\nbare\rCR\r\n")
        append(m, "Work", r"(\Flagged \Draft)", t + 2, b"Subject: 3\r\n\r\nthree\r\n")
        append(m, "Work", r"(\Seen $Label2 Later)", t + 5, b"Subject: 6\r\n\r\nsix\r\n")
        append(m, "Work.2026", r"(\Deleted \Seen)", t + 3, b"Subject: 4\r\n\r\nfour\r\n")
        append(m, "Caf&AOk-", r"(\Seen)", t + 4, b"Subject: 5\r\n\r\n" + b"x" * 300000 + b"\r\n")
        m.logout()
        names = ["INBOX", "Work", "Work.2026", "Caf&AOk-"]
        before = mailbox_state(s, "alice@example.org", names)
        r = cli(s, "export", "alice@example.org", out)
        assert re.match(r"exported 6, \d+ folders$", r), r
        cur = os.listdir(os.path.join(out, "cur"))
        assert sorted(n.rsplit(":", 1)[1] for n in cur) == ["2,", "2,RS"], cur
        work = sorted(os.listdir(os.path.join(out, ".Work", "cur")))
        assert len(work) == 2 and work[0].endswith(":2,DF") and work[1].endswith(":2,Sab"), work
        kw = open(os.path.join(out, ".Work", "dovecot-keywords")).read()
        assert kw == "0 $Label2\n1 Later\n", kw  # Dovecot's file for the letters
        assert os.path.exists(os.path.join(out, ".Work.2026", "maildirfolder"))
        p = os.path.join(out, ".Work", "cur", work[0])
        assert int(os.stat(p).st_mtime) == t + 2
        assert open(p, "rb").read() == b"Subject: 3\n\nthree\n"  # LF, as Maildir readers expect
        # into a folder that is not empty: refused
        r = s.cli("export", "alice@example.org", out, check=False)
        assert r.returncode != 0 and "not empty" in r.stderr, r.stderr
        r = cli(s, "import", "bob@example.org", out)
        assert r.startswith("imported 6, skipped 0 duplicates, "), r
        after = mailbox_state(s, "bob@example.org", names)
        assert after == before, short(before, after)
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bad_arguments_are_refused():
    """import/export: an unknown account, a missing path, a file that is no mbox, a folder that is no Maildir and a bad folder name are refused with a message"""
    s = Server()
    d = scratch()
    try:
        junk = os.path.join(d, "junk.txt")
        with open(junk, "wb") as f:
            f.write(b"hello\n")
        for args, what in [(("import", "nobody@example.org", d), "no such mailbox"),
                           (("import", "alice@example.org", os.path.join(d, "missing")), "missing"),
                           (("import", "alice@example.org", junk), "not an mbox"),
                           (("import", "alice@example.org", d), "not a Maildir"),
                           (("export", "nobody@example.org", d), "no such mailbox"),
                           (("import", "alice@example.org"), "usage"),
                           (("import", "alice@example.org", junk, "a/b"), "not a folder name"),
                           (("import", "alice@example.org", d, "Work"), "its own folders")]:
            r = s.cli(*args, check=False)
            assert r.returncode != 0 and what in r.stderr, (args, r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- a Maildir written by Dovecot ----

def dovecot_installed():
    if os.path.exists(DOVECOT_IMAP):
        return True
    if os.geteuid() != 0:
        return False
    subprocess.run(["apt-get", "install", "-y", "-qq", "dovecot-imapd", "dovecot-core"],
                   capture_output=True, timeout=600)
    return os.path.exists(DOVECOT_IMAP)


def dovecot(home):
    """Dovecot's imap binary on a pipe (pre-authenticated, no daemon) for
    the Maildir in home/Maildir; as root it runs as nobody."""
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(home, uid, gid)
    conf = os.path.join(home, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("mail_location = maildir:%s/Maildir\nssl = no\nlog_path = %s/dovecot.log\n"
                "base_dir = %s/run\nstate_dir = %s/state\nmail_uid = %d\nmail_gid = %d\n"
                "first_valid_uid = 0\nfirst_valid_gid = 0\n" % (home, home, home, home, uid, gid))
    env = dict(os.environ, USER="carol", HOME=home, TZ="UTC")
    old = dict(os.environ)
    os.environ.update(env)  # IMAP4_stream's child takes the environment
    try:
        return imaplib.IMAP4_stream("%s -c %s 2>>%s/dovecot.stderr" % (DOVECOT_IMAP, conf, home))
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_maildir_dovecot_wrote_imports_with_its_folders_messages_and_flags():
    """import: a Maildir++ Dovecot's imap wrote (folders Work and Work.2026, flags, keywords, dates, a message in new/) arrives the same in Rumble, as Dovecot's own FETCH shows it"""
    if not dovecot_installed():
        raise Skip("dovecot-imapd cannot be installed (not root)")
    d = scratch()
    s = imap_server()
    try:
        os.chmod(d, 0o755)
        dv = dovecot(d)
        for f in ("Work", "Work.2026"):
            assert dv.create(f)[0] == "OK"
        t = 1730000000
        append(dv, "INBOX", None, t, b"Subject: new one\r\nMessage-ID: <n@x>\r\n\r\nunseen\r\n")
        append(dv, "INBOX", r"(\Seen \Answered)", t + 10, b"Subject: old\r\n\r\nread\r\n")
        append(dv, "Work", r"(\Flagged $Label1 todo)", t + 20, b"Subject: w\r\n\r\nwork\r\n")
        append(dv, "Work.2026", r"(\Seen \Draft \Deleted)", t + 30,
               b"Subject: w26\r\n\r\nFrom a line\r\n")
        names = ["INBOX", "Work", "Work.2026"]
        want = {n: messages(dv, n) for n in names}
        dv.logout()
        assert os.listdir(os.path.join(d, "Maildir", "new")), "Dovecot put nothing in new/"
        # Dovecot's \Recent is its own session's: Rumble does not track it
        want = {n: [([f for f in fl if f != "\\Recent"], dt, b) for fl, dt, b in v]
                for n, v in want.items()}
        assert want["INBOX"][0][0] == [] and want["Work"][0][0] == ["$Label1", "\\Flagged", "todo"], want
        r = cli(s, "import", "alice@example.org", os.path.join(d, "Maildir"))
        assert r == "imported 4, skipped 0 duplicates, 3 folders", r
        got = mailbox_state(s, "alice@example.org", names)
        m = login(s, "alice@example.org")
        listed = folders(m)
        m.logout()
        assert all(n in listed for n in names), listed
        assert got == want, short(want, got)
        assert cli(s, "import", "alice@example.org", os.path.join(d, "Maildir")) == \
            "imported 0, skipped 4 duplicates, 3 folders"
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_windows_build_imports_and_exports_with_semicolon_names_under_wine():
    """import/export: rumble.exe under wine imports a Maildir++ tree and exports one whose names use ";2," (Windows has no ':' in names) with the dates as file times"""
    from test_windows import EXE, WINE, _wine_env, _win
    if not os.path.exists(EXE) or not os.path.exists(WINE):
        raise Skip("needs build/win/rumble.exe (./build.sh windows) and wine64")
    d = scratch()
    try:
        conf = os.path.join(d, "rumble.conf")
        with open(conf, "w") as f:
            f.write("ServerName win.test\nMinPasswordLength 0\nStorageFolder %s\nEnablePOP3 0\n"
                    "EnableIMAP4 0\nEnableWebAdmin 0\n" % _win(os.path.join(d, "data")))
        env = _wine_env("wineprefix")

        def run(*args, input=None):
            r = subprocess.run([WINE, EXE, "-c", _win(conf)] + list(args), env=env, input=input,
                               capture_output=True, timeout=120)
            assert r.returncode == 0, (args, r.stderr)
            return r.stdout.decode().strip()
        t = 1750000000
        src = os.path.join(d, "md")
        maildir(src, {"cur/1700000001.a;2,FS": (b"Subject: a\n\nA\n", t)})
        maildir(os.path.join(src, ".Work"), {"cur/1700000002.b:2,R": (b"Subject: b\n\nB\n", t + 1)})
        run("domain", "add", "example.org")
        run("user", "add", "bob@example.org", input=b"pw\n")
        assert run("import", "bob@example.org", _win(src)) == \
            "imported 2, skipped 0 duplicates, 2 folders"
        out = os.path.join(d, "out")
        assert run("export", "bob@example.org", _win(out)) == "exported 2, 2 folders"
        inbox = os.listdir(os.path.join(out, "cur"))
        work = os.listdir(os.path.join(out, ".Work", "cur"))
        assert len(inbox) == 1 and inbox[0].endswith(";2,FS"), inbox
        assert len(work) == 1 and work[0].endswith(";2,R"), work
        assert int(os.stat(os.path.join(out, "cur", inbox[0])).st_mtime) == t
        assert open(os.path.join(out, ".Work", "cur", work[0]), "rb").read() == b"Subject: b\n\nB\n"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_export_while_smtp_delivers_writes_whole_messages():
    """export: while SMTP delivers to the same INBOX, export writes every message there before it began, each whole, and nothing is left in tmp/"""
    import smtplib
    import threading
    s = imap_server()
    d = scratch()
    try:
        src = os.path.join(d, "src.mbox")
        with open(src, "wb") as f:
            for i in range(300):
                f.write(b"From a@b Wed Nov  5 09:24:05 2025\nMessage-ID: <%d@pre>\nSubject: pre %d\n\n"
                        % (i, i) + b"pre-existing line\n" * 50 + b"\n")
        assert cli(s, "import", "alice@example.org", src).startswith("imported 300,")
        sent = []

        def deliver():
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
                for i in range(40):
                    c.sendmail("x@remote.test", ["alice@example.org"],
                               b"Subject: live %d\r\n\r\n" % i + b"live line\r\n" * 200)
                    sent.append(i)
        t = threading.Thread(target=deliver)
        t.start()
        out = os.path.join(d, "out")
        try:
            r = cli(s, "export", "alice@example.org", out)
        finally:
            t.join(60)
        n = int(re.match(r"exported (\d+), ", r).group(1))
        assert 300 <= n <= 340, r
        files = os.listdir(os.path.join(out, "cur"))
        assert len(files) == n and os.listdir(os.path.join(out, "tmp")) == []
        for name in files:
            body = open(os.path.join(out, "cur", name), "rb").read()
            if b"Subject: pre " in body:
                assert body.endswith(b"\n\n" + b"pre-existing line\n" * 50), name
            else:
                assert body.endswith(b"\n\n" + b"live line\n" * 200), name
        assert len(sent) == 40
        assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)
