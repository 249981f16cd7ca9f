"""Readable storage: a folder's mbox file is named as the folder is
(Sent.mbox, Work.2026.mbox, Entwürfe.mbox); a store whose files have the
old names (%53ent.mbox) is renamed when the server starts, with every
message and flag kept, and mutt -f reads every folder's file."""
import imaplib
import os
import shutil
import subprocess

from harness import folder_file, fs_name, wait_port
from run import Skip
from test_imap import Raw, deliver, imap_server

FOLDERS = {"Sent": 2, "Work.2026": 3, "Entw&APw-rfe": 1, "a:b": 1, "lists": 2}


def home(s):
    return os.path.join(s.storage, "mail", "example.org", "alice")


def fill(s):
    """Every folder of FOLDERS with its messages, the first of each \\Flagged."""
    c = imaplib.IMAP4("127.0.0.1", s.imap_port)
    c.login("alice@example.org", "secret")
    for name, n in FOLDERS.items():
        typ, data = c.create('"%s"' % name)
        assert typ == "OK" or b"ALREADYEXISTS" in data[0], (name, data)  # Sent: special use
        for i in range(n):
            flags = "(\\Seen \\Flagged)" if i == 0 else "(\\Seen)"
            msg = b"From: a@remote.test\r\nSubject: %s %d\r\n\r\nbody\r\n" % (name.encode(), i)
            assert c.append('"%s"' % name, flags, None, msg)[0] == "OK"
    c.logout()


def seen_by_imap(s):
    """{folder: [(subject, flagged)]} as IMAP shows them."""
    c = imaplib.IMAP4("127.0.0.1", s.imap_port)
    c.login("alice@example.org", "secret")
    out = {}
    for name in FOLDERS:
        typ, data = c.select('"%s"' % name, readonly=True)
        assert typ == "OK", (name, data)
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        msgs = [d for d in data if isinstance(d, tuple)]
        out[name] = [(d[1].strip().decode(), b"\\Flagged" in d[0]) for d in msgs]
    c.logout()
    return out


def side_facts(s):
    """What lives beside the folder files: Sent's metadata and the quota usage."""
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    meta = c.cmd(b"b", b'GETMETADATA "Sent" /private/comment')
    quota = c.cmd(b"c", b"GETQUOTAROOT INBOX")
    c.sock.close()
    assert meta[-1].startswith(b"b OK") and quota[-1].startswith(b"c OK"), (meta, quota)
    return meta, quota


def test_folder_files_are_named_as_the_folder_is():
    """storage names: a folder's files are named as the folder, only unsafe bytes escaped"""
    s = imap_server()
    fill(s)
    files = sorted(os.listdir(home(s)))
    for want in ("Sent.mbox", "Work.2026.mbox", "Entw\u00fcrfe.mbox", "a%3Ab.mbox",
                 "lists.mbox", "Sent.idx"):
        assert want in files, files
    assert not [f for f in files if f.startswith("%53")], files
    assert s.stop() == 0


def test_an_old_named_store_is_renamed_at_start():
    """storage names: old-named folder files are renamed at start, logged, messages and flags kept"""
    s = imap_server()
    fill(s)
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    assert c.cmd(b"b", b'SETMETADATA "Sent" (/private/comment "kept")')[-1].startswith(b"b OK")
    c.sock.close()
    before, facts = seen_by_imap(s), side_facts(s)
    assert b"kept" in b"".join(facts[0]), facts
    assert s.stop() == 0
    # as a Rumble of before named them: every byte outside [a-z0-9._-] escaped
    d = home(s)
    for name in FOLDERS:
        for ext in (".mbox", ".idx", ".lock"):
            os.rename(os.path.join(d, folder_file(name) + ext), os.path.join(d, fs_name(name) + ext))
    assert "%53ent.mbox" in os.listdir(d) and "Sent.mbox" not in os.listdir(d)
    s.start()
    assert wait_port(s.imap_port)  # start() waits for the SMTP port only
    assert seen_by_imap(s) == before  # served once the renaming is done
    assert side_facts(s) == facts  # metadata and quota usage as they were
    files = os.listdir(d)
    for name in FOLDERS:
        assert folder_file(name) + ".mbox" in files and folder_file(name) + ".idx" in files, files
    assert not [f for f in files if f.startswith("%")], files
    log = s.stderr()
    assert "%53ent.mbox renamed to Sent.mbox" in log, log[-2000:]
    assert log.count("renamed to") == 3, log  # lists and a:b kept their names
    assert s.stop() == 0
    # a second start has nothing left to do
    s.start()
    assert wait_port(s.imap_port)  # start() waits for the SMTP port only
    seen_by_imap(s)
    assert s.stop() == 0
    assert s.stderr().count("renamed to") == 3


def test_mutt_reads_every_folder_file():
    """storage names: mutt -f opens every folder's file by its readable name"""
    s = imap_server()
    fill(s)
    deliver(s, [b"From: x@remote.test\r\nSubject: inbox 0\r\n\r\nhi\r\n"])
    assert s.stop() == 0
    if not shutil.which("mutt") or not shutil.which("script"):
        raise Skip("mutt or script not installed")
    os.makedirs(os.path.join(s.dir, "Mail"), exist_ok=True)  # else mutt asks to create it
    for name, n in list(FOLDERS.items()) + [("INBOX", 1)]:
        path = os.path.join(home(s), folder_file(name) + ".mbox")
        out = os.path.join(s.dir, "mutt-%s.out" % fs_name(name))
        setup = 'set print=yes print_split=yes wait_key=no print_command="cat >> %s"' % out
        keys = 'push "<tag-pattern>~A<enter><tag-prefix><print-message><quit>"'
        cmd = "mutt -n -F /dev/null -R -f '%s' -e '%s' -e '%s'" % (path, setup, keys)
        subprocess.run(["script", "-qec", cmd, "/dev/null"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=30,
                       env=dict(os.environ, TERM="dumb", HOME=s.dir))
        data = open(out, "rb").read() if os.path.exists(out) else b""
        assert data.count(b"\nSubject: ") + data.startswith(b"Subject: ") == n, (name, data[:300])
