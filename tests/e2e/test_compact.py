"""Compaction: expunged messages leave the mbox by `rumble compact`, run
while the server serves (a session with the folder selected goes on with
the same UIDs), and by the server's daily pass in the hour CompactHour."""
import imaplib
import time

from harness import SMTPRaw, Server, free_port, wait_port


def server(extra=""):
    imap = free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nAllowPlaintextAuth yes\n%s" % (imap, extra))
    s.imap_port = imap
    return s


def deliver(s, n):
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO a.example")[0] == 250
    for i in range(n):
        assert c.cmd("MAIL FROM:<x@a.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        assert c.cmd("Subject: m%d\r\n\r\n%s\r\n." % (i, "body %d " % i * 40))[0] == 250
    assert c.cmd("QUIT")[0] == 221


def from_lines(s):
    return open(s.mbox("alice@example.org"), "rb").read().count(b"\nFrom ") + 1


def expunge_first(im):
    im.select("INBOX")
    im.store("1", "+FLAGS", "(\\Deleted)")
    im.expunge()  # a quarter of the mbox: no compaction by the session


def test_rumble_compact_while_the_server_runs():
    """rumble compact USER@DOMAIN drops expunged messages; the selected session keeps its UIDs"""
    s = server()
    s.start()
    try:
        assert wait_port(s.imap_port)
        deliver(s, 4)
        im = imaplib.IMAP4("127.0.0.1", s.imap_port)
        im.login("alice@example.org", "secret")
        expunge_first(im)
        assert from_lines(s) == 4  # only marked
        r = s.cli("compact", "alice@example.org")
        assert "1 folder compacted" in r.stdout, r.stdout
        assert from_lines(s) == 3
        typ, data = im.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK" and [d.split()[2] for d in data] == [b"2", b"3", b"4"], data
        typ, data = im.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        assert b"m1" in data[0][1], data
        r = s.cli("compact")  # nothing left to do
        assert "0 folders compacted" in r.stdout, r.stdout
        r = s.cli("compact", "nobody@example.org", check=False)
        assert r.returncode != 0 and "no mailbox" in r.stderr, r.stderr
        im.logout()
    finally:
        assert s.stop() == 0


def test_the_daily_pass_compacts_in_compact_hour():
    """In the hour CompactHour the server compacts every folder that holds expunged mail"""
    hour = time.localtime().tm_hour
    if time.localtime(time.time() + 60).tm_hour != hour:
        time.sleep(61)  # not across the hour's end
        hour = time.localtime().tm_hour
    s = server("CompactHour %d\n" % ((hour + 12) % 24))
    s.start()
    try:
        assert wait_port(s.imap_port)
        deliver(s, 4)
        im = imaplib.IMAP4("127.0.0.1", s.imap_port)
        im.login("alice@example.org", "secret")
        expunge_first(im)
        im.logout()
    finally:
        assert s.stop() == 0
    assert from_lines(s) == 4  # another hour: nothing done
    with open(s.conf, "a") as f:
        f.write("CompactHour %d\n" % hour)
    text = open(s.conf).read().replace("CompactHour %d\n" % ((hour + 12) % 24), "")
    with open(s.conf, "w") as f:
        f.write(text)
    s.start()
    try:
        for _ in range(100):
            if from_lines(s) == 3:
                break
            time.sleep(0.1)
        assert from_lines(s) == 3
        assert "compact: 1 folders compacted" in s.stderr()
    finally:
        assert s.stop() == 0
