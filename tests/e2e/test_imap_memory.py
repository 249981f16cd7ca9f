"""End-to-end: what IMAP and POP3 cost the server in memory and descriptors
(issue 11): no command holds a whole message, sessions share a folder's
index and its one descriptor, and running out of descriptors is answered
as such (NO [UNAVAILABLE], -ERR [SYS/TEMP]), never as a missing mailbox."""
import imaplib
import os
import poplib
import resource
import smtplib
import time

from harness import Server, free_port, wait_port


def server(conf=""):
    port, pop = free_port(), free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d\n%s" % (port, pop, conf))
    s.imap_port, s.pop3_port = port, pop
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB) before
    # it is used again, so the RSS would count every buffer ever freed (the
    # session's write buffer goes after every round): no quarantine here, so
    # that it counts what is held, as with the release build.
    asan = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    try:
        s.start()
    finally:
        if asan is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = asan
    assert wait_port(port) and wait_port(pop)
    return s


def login(s):
    m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=120)
    m.login("alice@example.org", "secret")
    return m


def status(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise Skip("no /proc/PID/status")


def peak_growth(s, fn):
    """KB the server's peak RSS grew by while fn ran: the peak is reset
    through clear_refs where that is allowed, else the lifetime peak
    counts (which only makes the check easier to pass)."""
    pid = s.proc.pid
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
    except OSError:
        pass
    before = status(pid, "VmRSS")
    fn()
    return status(pid, "VmHWM") - before


def big_message(mb):
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    body = line * (mb * 1024 * 1024 // len(line))
    return (b"From: big@remote.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + body + b"--zz\r\nContent-Type: text/plain\r\n\r\nthe end\r\n--zz--\r\n")


def test_a_20_mb_message_is_read_without_holding_it():
    """imap: FETCH (structure, whole, a part, partial), SEARCH BODY, COPY and POP3 RETR of a 20 MB message each raise the server's RSS by less than 8 MB"""
    s = server("MessageSizeLimit 30M\n")
    msg = big_message(20)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=120) as c:
        c.sendmail("big@remote.test", ["alice@example.org"], msg)
    m = login(s)
    m.create("Copies")
    m.select("INBOX")
    size = None
    steps = [
        ("BODYSTRUCTURE", lambda: m.fetch("1", "(BODYSTRUCTURE)")),
        ("BODY.PEEK[]", lambda: m.fetch("1", "(BODY.PEEK[])")),
        ("BODY.PEEK[1]", lambda: m.fetch("1", "(BODY.PEEK[1])")),
        ("BODY.PEEK[TEXT]<0.100>", lambda: m.fetch("1", "(BODY.PEEK[TEXT]<0.100>)")),
        ("SEARCH BODY", lambda: m.search(None, "BODY", "needle-not-there")),
        ("COPY", lambda: m.copy("1", "Copies")),
    ]
    for name, fn in steps:
        kb = peak_growth(s, fn)
        assert kb < 8 * 1024, "%s raised the RSS by %d KB" % (name, kb)
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[2])")
    assert typ == "OK" and b"the end" in b"".join(x if isinstance(x, bytes) else x[1] for x in data)
    size = int(data[0][0].split(b"RFC822.SIZE ")[1].split()[0])
    m.logout()

    def retr():
        p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=120)
        p.user("alice@example.org")
        p.pass_("secret")
        resp, lines, octets = p.retr(1)
        assert octets >= size - 1000, (octets, size)
        p.quit()
    kb = peak_growth(s, retr)
    assert kb < 8 * 1024, "POP3 RETR raised the RSS by %d KB" % kb
    assert s.stop() == 0


def test_sessions_share_a_folder_and_its_descriptor():
    """imap: 20 sessions with the same INBOX selected hold one descriptor for it, not one or more each"""
    s = server()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
        for i in range(3):
            c.sendmail("a@remote.test", ["alice@example.org"], b"Subject: %d\r\n\r\nx\r\n" % i)
    fds = lambda: len(os.listdir("/proc/%d/fd" % s.proc.pid))
    sessions = [login(s) for _ in range(20)]
    time.sleep(0.2)
    before = fds()
    for m in sessions:
        assert m.select("INBOX")[1] == [b"3"]
    time.sleep(0.2)
    assert fds() - before <= 1, (before, fds())
    sessions[0].store("1", "+FLAGS", "(\\Flagged)")
    sessions[1].noop()
    assert any(b"\\Flagged" in x for x in sessions[1].untagged_responses.get("FETCH", [])), \
        sessions[1].untagged_responses
    for m in sessions:
        m.logout()
    assert s.stop() == 0


def test_running_out_of_descriptors_is_answered_as_such():
    """imap: with no descriptor to spare, SELECT, EXAMINE, STATUS, APPEND and COPY answer NO [UNAVAILABLE] and POP3 -ERR [SYS/TEMP], never "no such mailbox"; all works again once there are"""
    if not hasattr(resource, "prlimit"):
        raise Skip("no resource.prlimit")
    s = server()
    m = login(s)
    for name in ("F1", "F2", "F3", "F4"):
        assert m.create(name)[0] == "OK"
    assert m.append("F4", None, None, b"Subject: x\r\n\ny\r\n")[0] == "OK"
    m.logout()
    a, b = login(s), login(s)
    assert b.select("F4")[0] == "OK"  # open before: its descriptor is counted
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=30)
    time.sleep(0.3)
    pid = s.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    n = len(os.listdir("/proc/%d/fd" % pid))
    # opening a folder takes its mbox, its lock file and its index at once
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n + 2, hard))
    try:
        typ, data = a.select("F1")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        typ, data = a.select("F2", readonly=True)
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        typ, data = b.status("F3", "(MESSAGES)")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        typ, data = b.append("F3", None, None, b"Subject: x\r\n\r\ny\r\n")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        typ, data = b.copy("1", "F1")
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0], (typ, data)
        typ, data = a.select("Missing")
        assert typ == "NO" and b"[NONEXISTENT]" in data[0], (typ, data)
        p.user("alice@example.org")
        try:
            p.pass_("secret")
            raise AssertionError("POP3 login without a descriptor for the maildrop")
        except poplib.error_proto as e:
            assert b"[SYS/TEMP]" in e.args[0], e
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert a.select("F1")[0] == "OK"
    assert b.status("F3", "(MESSAGES)")[0] == "OK"
    assert b.append("F3", None, None, b"Subject: x\r\n\r\ny\r\n")[0] == "OK"
    assert b.copy("1", "F1")[0] == "OK"
    typ, data = b.select("F3")
    assert typ == "OK" and data == [b"1"], data
    a.logout()
    b.logout()
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=30)
    p.user("alice@example.org")
    p.pass_("secret")
    p.quit()
    assert s.stop() == 0
