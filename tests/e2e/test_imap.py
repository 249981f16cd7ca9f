"""End-to-end IMAP tests against the real binary (imaplib, raw sockets, curl, mbsync)."""
import imaplib
import os
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

from harness import Server, free_port, strip_received, wait_port

TRICKY = b".leading dot\r\nFrom the mbox\r\n>From quoted\r\n\r\nlast line\r\n"

MULTIPART = (b"From: Alice <alice@remote.test>\r\nTo: alice@example.org\r\n"
             b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= multipart\r\n"
             b"Date: Tue, 03 Feb 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
             b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             b"Hello multipart world\r\n--b1\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b1--\r\n")


def imap_server(conf="", **kw):
    """A Server with IMAP (and IMAPS) on free ports, started."""
    port, sport, pop = free_port(), free_port(), free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nEnableIMAPS 1\nIMAPSPort %d\n"
               "EnablePOP3 1\nPOP3Port %d\n%s" % (port, sport, pop, conf), **kw)
    s.imap_port, s.imaps_port, s.pop3_port = port, sport, pop
    s.start()
    assert wait_port(port) and wait_port(sport), "IMAP ports not open"
    return s


def deliver(s, msgs, rcpt="alice@example.org"):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
        for m in msgs:
            c.sendmail("sender@remote.test", [rcpt], m)


def login(s, user="alice@example.org", pw="secret"):
    m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=30)
    m.login(user, pw)
    return m


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch_one(m, num, item, uid=False):
    """The literal of one FETCH item (imaplib's tuple form)."""
    typ, data = m.uid("FETCH", num, item) if uid else m.fetch(num, item)
    assert typ == "OK", data
    parts = [d for d in data if isinstance(d, tuple)]
    assert parts, data
    return parts[0][1]


def meta(m, num, item):
    typ, data = m.fetch(num, item)
    assert typ == "OK", data
    return b"".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data)


class Raw:
    """A plain socket client for literals, pipelining and garbage."""

    def __init__(self, port, source=None, timeout=15):
        self.sock = socket.socket()
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed; had %r" % self.buf[:300])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, tag):
        """Lines up to and including the tagged reply."""
        out = []
        for _ in range(1000000):
            l = self.line()
            out.append(l)
            if l.startswith(tag + b" "):
                return out
        raise AssertionError("no tagged reply")

    def cmd(self, tag, text):
        self.send(tag + b" " + text + b"\r\n")
        return self.until(tag)

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                if self.sock.recv(65536) == b"":
                    return True
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.sock.close()


def test_login_ok_and_bad():
    """imap: LOGIN with the right password works; a wrong one gets NO after a delay"""
    s = imap_server()
    m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=30)
    assert "AUTH=PLAIN" in m.capabilities and "LOGINDISABLED" not in m.capabilities
    t0 = time.time()
    try:
        m.login("alice@example.org", "wrong")
        raise AssertionError("wrong password accepted")
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e), e
    assert time.time() - t0 >= 0.2
    m.login("alice@example.org", "secret")
    assert m.select("INBOX") == ("OK", [b"0"])
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=30)
    m.authenticate("PLAIN", lambda _: b"\0alice@example.org\0secret")
    assert m.state == "AUTH"
    m.logout()
    c = Raw(s.imap_port)
    r = c.cmd(b"a", b"AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==")  # SASL-IR
    assert r[-1].startswith(b"a OK"), r
    c.close()
    assert s.stop() == 0


def test_logindisabled_in_the_clear_from_remote():
    """imap: from a non-loopback address in the clear, LOGINDISABLED is advertised and LOGIN refused; STARTTLS enables it"""
    s = imap_server()
    try:
        c = Raw(s.imap_port, source="127.0.0.2")
    except OSError:
        raise Skip("cannot bind 127.0.0.2")
    assert b"LOGINDISABLED" in c.greeting and b"AUTH=PLAIN" not in c.greeting, c.greeting
    r = c.cmd(b"a", b"LOGIN alice@example.org secret")
    assert r[-1].startswith(b"a NO [PRIVACYREQUIRED]"), r
    r = c.cmd(b"b", b"AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==")
    assert r[-1].startswith(b"b NO"), r
    r = c.cmd(b"c", b"STARTTLS")
    assert r[-1].startswith(b"c OK"), r
    t = client_ctx().wrap_socket(c.sock)
    t.sendall(b"d CAPABILITY\r\n")
    data = b""
    while b"d OK" not in data:
        chunk = t.recv(4096)
        assert chunk, data
        data += chunk
    assert b"AUTH=PLAIN" in data and b"LOGINDISABLED" not in data and b"STARTTLS" not in data, data
    t.sendall(b"e LOGIN alice@example.org secret\r\n")
    data = b""
    while b"e " not in data:
        data += t.recv(4096)
    assert b"e OK" in data, data
    t.close()
    assert s.stop() == 0


def test_starttls_drops_pipelined_plaintext():
    """imap: a command pipelined after STARTTLS in the clear is not executed"""
    s = imap_server()
    k = socket.create_connection(("127.0.0.1", s.imap_port), timeout=10)
    f = k.makefile("rb")
    assert f.readline().startswith(b"* OK")
    k.sendall(b"a STARTTLS\r\nb LOGIN alice@example.org secret\r\n")
    assert f.readline().startswith(b"a OK")
    t = client_ctx().wrap_socket(k)
    t.sendall(b"c SELECT INBOX\r\n")
    reply = t.recv(4096)
    assert reply.startswith(b"c BAD"), reply  # b never ran: not logged in
    t.close()
    f.close()
    assert s.stop() == 0


def test_imaps_and_imaplib_starttls():
    """imap: IMAPS (implicit TLS) and imaplib's STARTTLS both log in and fetch"""
    s = imap_server()
    deliver(s, [b"Subject: over tls\r\n\r\nsecret text\r\n"])
    m = imaplib.IMAP4_SSL("127.0.0.1", s.imaps_port, ssl_context=client_ctx(), timeout=30)
    assert "STARTTLS" not in m.capabilities
    m.login("alice@example.org", "secret")
    m.select()
    assert b"secret text" in fetch_one(m, "1", "(BODY.PEEK[TEXT])")
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=30)
    m.starttls(ssl_context=client_ctx())
    m.login("alice@example.org", "secret")
    assert m.select("INBOX")[1] == [b"1"]
    m.logout()
    assert s.stop() == 0


def test_delivered_mail_fetched_byte_exact():
    """imap: mail delivered over SMTP is fetched over IMAP byte for byte (small and 3 MB, streamed)"""
    s = imap_server()
    big = b"Subject: big\r\n\r\n" + b"".join(b"line %07d of a big message\r\n" % i for i in range(110000))
    deliver(s, [b"Subject: tricky\r\n\r\n" + TRICKY, big])
    stored = s.messages("alice@example.org")
    assert len(stored) == 2
    m = login(s)
    m.select("INBOX")
    for i in (1, 2):
        body = fetch_one(m, str(i), "(BODY.PEEK[])")
        assert body == stored[i - 1], (len(body), len(stored[i - 1]))
        assert meta(m, str(i), "(RFC822.SIZE)").endswith(b"RFC822.SIZE %d)" % len(stored[i - 1]))
    assert fetch_one(m, "1", "(RFC822)") == stored[0]
    assert strip_received(stored[0]).endswith(TRICKY)
    # pipelined after a big FETCH: answered after it, in order
    c = Raw(s.imap_port)
    c.cmd(b"a", b"LOGIN alice@example.org secret")
    c.cmd(b"b", b"SELECT INBOX")
    c.send(b"c FETCH 1:2 (BODY.PEEK[])\r\nd NOOP\r\n")
    out = c.until(b"d")
    assert any(l.startswith(b"c OK") for l in out) and out[-1].startswith(b"d OK"), out[-3:]
    c.close()
    m.logout()
    assert s.stop() == 0


def test_bodystructure_sections_and_partial():
    """imap: BODYSTRUCTURE of a multipart, BODY[n], BODY[n.MIME], HEADER.FIELDS and partial fetches"""
    s = imap_server()
    deliver(s, [MULTIPART])
    stored = s.messages("alice@example.org")[0]
    m = login(s)
    m.select("INBOX")
    bs = meta(m, "1", "(BODYSTRUCTURE)")
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 21 1' in bs, bs
    assert b'("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 8' in bs, bs
    assert b'"mixed" ("boundary" "b1")' in bs, bs
    assert fetch_one(m, "1", "(BODY.PEEK[1])") == b"Hello multipart world"
    assert fetch_one(m, "1", "(BODY.PEEK[2])") == b"AAECAwQF"
    assert fetch_one(m, "1", "(BODY.PEEK[2.MIME])").startswith(b"Content-Type: application/octet-stream")
    h = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS (Subject To)])")
    assert h == (b"To: alice@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= multipart\r\n\r\n"), h
    h = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS.NOT (Subject To Received)])")
    assert b"Subject" not in h and b"From: Alice" in h
    assert fetch_one(m, "1", "(BODY.PEEK[]<10.20>)") == stored[10:30]
    assert fetch_one(m, "1", "(BODY.PEEK[1]<0.5>)") == b"Hello"
    assert fetch_one(m, "1", "(BODY.PEEK[]<%d.100>)" % (len(stored) - 5)) == stored[-5:]
    env = meta(m, "1", "(ENVELOPE)")
    assert b'"Alice" NIL "alice" "remote.test"' in env, env
    assert b"\\Seen" not in meta(m, "1", "(FLAGS)")  # PEEK left it unseen
    assert fetch_one(m, "1", "(BODY[TEXT])").startswith(b"preamble")
    assert b"\\Seen" in meta(m, "1", "(FLAGS)")
    typ, data = m.fetch("1", "(BODY[9])")
    assert typ == "OK" and b"NIL" in data[0], data
    try:
        m.fetch("5", "(FLAGS)")
        raise AssertionError("a sequence number past the end was accepted")
    except imaplib.IMAP4.error as e:
        assert "Invalid message set" in str(e), e
    m.logout()
    assert s.stop() == 0


def test_flags_persist_and_pop3_sees_expunge():
    """imap: flags and keywords persist across sessions; an IMAP expunge is what POP3 sees, a POP3 delete is an IMAP EXPUNGE"""
    s = imap_server()
    deliver(s, [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 5)])
    m = login(s)
    m.select("INBOX")
    typ, data = m.store("1:2", "+FLAGS", "(\\Flagged $Work)")
    assert typ == "OK" and b"\\Flagged $Work" in data[0], data
    m.store("2", "-FLAGS.SILENT", "($Work)")
    m.store("3", "FLAGS", "(\\Answered \\Draft)")
    m.store("4", "+FLAGS", "(\\Deleted)")
    m.logout()
    m = login(s)
    m.select("INBOX")
    flags = meta(m, "1:4", "(FLAGS)")
    assert b"1 (FLAGS (\\Flagged $Work))" in flags, flags
    assert b"2 (FLAGS (\\Flagged))" in flags and b"3 (FLAGS (\\Answered \\Draft))" in flags, flags
    assert m.expunge()[1] == [b"4"]
    m.logout()
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=30)
    p.user("alice@example.org")
    p.pass_("secret")
    assert p.stat()[0] == 3
    p.dele(1)
    p.quit()
    m = login(s)
    m.select("INBOX")
    assert meta(m, "1", "(UID)").endswith(b"UID 2)")
    m.logout()
    assert s.stop() == 0


def test_other_sessions_changes_are_reported():
    """imap: NOOP reports another session's flag change, expunge and new mail"""
    s = imap_server()
    deliver(s, [b"Subject: a\r\n\r\na\r\n", b"Subject: b\r\n\r\nb\r\n"])
    a, b = login(s), login(s)
    a.select("INBOX")
    b.select("INBOX")
    b.store("1", "+FLAGS", "(\\Deleted \\Seen)")
    b.expunge()
    deliver(s, [b"Subject: c\r\n\r\nc\r\n"])
    b.store("1", "+FLAGS", "(\\Flagged)")
    typ, data = a.noop()
    assert a.untagged_responses.get("EXPUNGE") == [b"1"], a.untagged_responses
    assert a.untagged_responses.get("EXISTS")[-1] == b"2", a.untagged_responses
    fetches = a.untagged_responses.get("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), fetches
    a.logout()
    b.logout()
    assert s.stop() == 0


def test_search():
    """imap: SEARCH by header, body, flags, size, dates, sets, OR/NOT and charset; UID SEARCH"""
    s = imap_server()
    deliver(s, [MULTIPART, b"From: bob@remote.test\r\nSubject: plain one\r\n\r\nNothing here\r\n",
                b"From: carol@remote.test\r\nSubject: Budget\r\n\r\n" + b"x" * 5000 + b"\r\n"])
    m = login(s)
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Seen)")
    cases = [
        (("FROM", "bob"), b"2"), (("SUBJECT", "BUDGET"), b"3"), (("BODY", '"multipart WORLD"'), b"1"),
        (("TEXT", "carol"), b"3"), (("SEEN",), b"2"), (("UNSEEN",), b"1 3"), (("LARGER", "3000"), b"3"),
        (("OR", "FROM", "bob", "FROM", "carol"), b"2 3"), (("NOT", "FROM", "bob"), b"1 3"),
        (("2:*",), b"2 3"), (("SENTON", "3-Feb-2026"), b"1"), (("HEADER", "Subject", "one"), b"2"),
        (("SINCE", "1-Jan-2000", "BEFORE", "1-Jan-2100"), b"1 2 3"),
    ]
    for keys, want in cases:
        try:
            typ, data = m.search(None, *keys)
        except imaplib.IMAP4.error as e:
            raise AssertionError((keys, e))
        assert typ == "OK" and data == [want], (keys, data)
    m.literal = "Grüße".encode()
    typ, data = m.search("UTF-8", "SUBJECT")
    assert data == [b"1"], data
    typ, data = m.search("UTF-8", "SUBJECT", "budget")
    assert data == [b"3"], data
    typ, data = m.uid("SEARCH", "UID", "2:*")
    assert data == [b"2 3"], data
    assert m.search("KOI8-R", "ALL")[0] == "NO"
    try:
        m.search(None, "BOGUS")
        raise AssertionError("bad key accepted")
    except imaplib.IMAP4.error:
        pass
    m.logout()
    assert s.stop() == 0


def test_append_copy_move_uidplus():
    """imap: APPEND and COPY answer APPENDUID/COPYUID, MOVE moves, UID EXPUNGE expunges only what it names"""
    s = imap_server()
    deliver(s, [b"Subject: 1\r\n\r\none\r\n", b"Subject: 2\r\n\r\ntwo\r\n", b"Subject: 3\r\n\r\nthree\r\n"])
    m = login(s)
    assert m.create("Saved")[0] == "OK"
    assert m.create("Saved")[0] == "NO"
    msg = b"From: me@example.org\r\nSubject: appended\r\n\r\n" + b"y" * 3000 + b"\r\n"
    typ, data = m.append("Saved", "(\\Seen $Done)", imaplib.Time2Internaldate(1700000000), msg)
    assert typ == "OK" and re.match(rb"\[APPENDUID (\d+) 1\]", data[0]), data
    v = int(re.match(rb"\[APPENDUID (\d+)", data[0]).group(1))
    assert m.append("Nope", None, None, b"x\r\n")[1][0].startswith(b"[TRYCREATE]")
    m.select("INBOX")
    typ, data = m.copy("1:2", "Saved")
    assert data == [b"[COPYUID %d 1:2 2:3] COPY completed" % v], data
    typ, data = m.uid("MOVE", "3", "Saved")
    assert typ == "OK", data
    assert m.untagged_responses.get("EXPUNGE")[-1] == b"3", m.untagged_responses
    m.store("1:2", "+FLAGS", "(\\Deleted)")
    assert m.uid("EXPUNGE", "2")[0] == "OK"
    assert m.untagged_responses.get("EXPUNGE")[-1] == b"2", m.untagged_responses
    assert m.select("INBOX")[1] == [b"1"]
    m.select("Saved", readonly=True)
    assert m.fetch("1:*", "(UID)")[1] == [b"1 (UID 1)", b"2 (UID 2)", b"3 (UID 3)", b"4 (UID 4)"]
    assert fetch_one(m, "1", "(BODY.PEEK[])", uid=True) == msg
    f = meta(m, "1", "(FLAGS INTERNALDATE)")
    assert b"\\Seen $Done" in f and b"14-Nov-2023" in f, f
    assert fetch_one(m, "4", "(BODY.PEEK[TEXT])", uid=True) == b"three\r\n"
    assert m.store("1", "+FLAGS", "(\\Flagged)")[0] == "NO"  # EXAMINE: read-only
    m.logout()
    assert s.stop() == 0


def test_folders_list_rename_delete_subscribe():
    """imap: CREATE, LIST with wildcards and hierarchy, RENAME with children, DELETE, LSUB, STATUS"""
    s = imap_server()
    m = login(s)
    for name in ("Work", "Work.2026", "Work.2026.Q1", "Personal"):
        assert m.create(name)[0] == "OK", name
    assert m.create("Bad..Name")[0] == "NO" and m.create("a/b")[0] == "NO"
    names = lambda pat: sorted(re.sub(rb'^\(.*?\) "\." ', b"", l).strip(b'"') for l in m.list('""', pat)[1])
    special = [b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]  # made at login
    assert names("*") == sorted(special + [b"INBOX", b"Personal", b"Work", b"Work.2026",
                                           b"Work.2026.Q1"])
    assert names("%") == sorted(special + [b"INBOX", b"Personal", b"Work"])
    assert names("Work.%") == [b"Work.2026"]
    assert names("inbox") == [b"INBOX"]
    assert any(b"\\HasChildren" in l and l.endswith(b'"Work"') for l in m.list('""', "%")[1])
    assert m.list('""', '""')[1] == [b'(\\Noselect) "." ""']
    assert m.rename("Work", "Job")[0] == "OK"
    assert names("*") == sorted(special + [b"INBOX", b"Job", b"Job.2026", b"Job.2026.Q1",
                                           b"Personal"])
    assert m.delete("Job.2026")[0] == "OK"
    l = m.list('""', "Job*")[1]
    assert any(b"\\Noselect" in x and x.endswith(b'"Job.2026"') for x in l), l  # a level kept for Q1
    assert m.delete("INBOX")[0] == "NO"
    m.subscribe("Personal")
    m.subscribe("Job")
    m.unsubscribe("Job")
    assert m.lsub('""', "P*")[1] == [b'() "." "Personal"']
    assert not [x for x in m.lsub('""', "*")[1] if b"Job" in x]
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)")
    assert data == [b'"INBOX" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)'], data
    assert m.status("Nope", "(MESSAGES)")[0] == "NO"
    assert m.namespace()[1] == [b'(("" ".")) NIL NIL']
    m.logout()
    assert s.stop() == 0


def test_idle_sees_smtp_delivery():
    """imap: a client in IDLE is told EXISTS when mail arrives over SMTP"""
    s = imap_server()
    c = Raw(s.imap_port)
    c.cmd(b"a", b"LOGIN alice@example.org secret")
    assert any(l == b"* 0 EXISTS" for l in c.cmd(b"b", b"SELECT INBOX"))
    c.send(b"c IDLE\r\n")
    assert c.line().startswith(b"+ ")
    deliver(s, [b"Subject: while idle\r\n\r\nhi\r\n"])
    c.sock.settimeout(10)
    assert c.line() == b"* 1 EXISTS"
    assert c.line() == b"* 1 RECENT"  # this session is the first told of it
    c.send(b"DONE\r\n")
    assert c.line().startswith(b"c OK")
    r = c.cmd(b"d", b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"while idle" in b"\r\n".join(r), r
    c.close()
    assert s.stop() == 0


def test_literals_and_limits():
    """imap: a too-large literal gets NO/BAD without a continuation, LITERAL+ too large closes, a long line is refused"""
    s = imap_server("MessageSizeLimit 100000")
    c = Raw(s.imap_port)
    c.cmd(b"a", b"LOGIN alice@example.org secret")
    # a synchronising literal: the continuation comes, then the rest
    c.send(b"b LOGOUTX {3}\r\n")
    assert c.line().startswith(b"+ ")
    c.send(b"abc\r\n")
    assert c.line().startswith(b"b BAD")
    c.send(b"d APPEND INBOX {200000}\r\n")
    r = c.line()
    assert r.startswith(b"d NO [TOOBIG]"), r  # and no "+ "
    c.send(b"e SELECT {70000}\r\n")
    assert c.line().startswith(b"e BAD")
    r = c.cmd(b"f", b"NOOP")
    assert r[-1].startswith(b"f OK"), r
    c.send(b"g NOOP " + b"x" * 70000 + b"\r\n")
    assert c.line().startswith(b"* BAD")
    assert c.cmd(b"h", b"NOOP")[-1].startswith(b"h OK")
    # an APPEND with a literal in two pieces, LITERAL+
    msg = b"Subject: lit\r\n\r\n" + b"z" * 2000 + b"\r\n"
    c.send(b"i APPEND INBOX (\\Flagged) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert c.until(b"i")[-1].startswith(b"i OK [APPENDUID"), "append"
    c.send(b"j APPEND INBOX {200000+}\r\n")
    assert c.line().startswith(b"* BYE")
    assert c.closed()
    c.close()
    m = login(s)
    m.select()
    assert fetch_one(m, "1", "(BODY.PEEK[])") == msg
    m.logout()
    assert s.stop() == 0


def test_bad_input_and_prelogin_limits():
    """imap: garbage gets BAD, commands need the right state, too many errors before login close"""
    s = imap_server()
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"SELECT INBOX")[-1].startswith(b"a BAD")
    assert c.cmd(b"b", b"FROB")[-1].startswith(b"b BAD")
    assert c.cmd(b"c", b"LOGIN \"unterminated")[-1].startswith(b"c BAD")
    c.send(b"\r\n")
    assert c.cmd(b"d", b"UID NOOP")[-1].startswith(b"d BAD")
    c.send(b"e LOGIN {5000}\r\n")  # before login a literal is for a name or a password
    assert c.line().startswith(b"e BAD")
    gone = False
    for i in range(30):
        try:
            c.cmd(b"x%d" % i, b"FROB")
        except (EOFError, ConnectionResetError, BrokenPipeError):
            gone = True
            break
    assert gone or c.closed()
    assert s.stop() == 0


def test_uidvalidity_stable_across_restart():
    """imap: UIDVALIDITY and UIDs are the same after a restart"""
    s = imap_server()
    deliver(s, [b"Subject: a\r\n\r\na\r\n", b"Subject: b\r\n\r\nb\r\n"])
    m = login(s)
    m.select("INBOX")
    v1 = m.untagged_responses["UIDVALIDITY"]
    uids1 = m.uid("SEARCH", "ALL")[1]
    m.logout()
    assert s.stop() == 0
    s.start()
    assert wait_port(s.imap_port)
    m = login(s)
    m.select("INBOX")
    assert m.untagged_responses["UIDVALIDITY"] == v1
    assert m.uid("SEARCH", "ALL")[1] == uids1 == [b"1 2"]
    m.logout()
    assert s.stop() == 0


def test_shutdown_says_bye():
    """imap: a server stopping sends * BYE to logged-in clients, one of them in IDLE"""
    s = imap_server()
    c = Raw(s.imap_port)
    c.cmd(b"a", b"LOGIN alice@example.org secret")
    i = Raw(s.imap_port)
    i.cmd(b"a", b"LOGIN alice@example.org secret")
    i.cmd(b"b", b"SELECT INBOX")
    i.send(b"c IDLE\r\n")
    assert i.line().startswith(b"+ ")
    t0 = time.time()
    assert s.stop() == 0
    assert time.time() - t0 < 15
    assert c.line().startswith(b"* BYE")
    assert i.line().startswith(b"* BYE")  # also in IDLE, whose poll timer holds the session
    c.close()
    i.close()


def test_curl_list_fetch_append():
    """imap: curl lists mailboxes, fetches by UID and appends with -T"""
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    s = imap_server()
    deliver(s, [b"Subject: curl\r\n\r\n" + TRICKY])
    stored = s.messages("alice@example.org")[0]
    url = "imap://127.0.0.1:%d/" % s.imap_port
    auth = ["-u", "alice@example.org:secret"]
    r = subprocess.run(["curl", "-s", "-S", url] + auth, capture_output=True, timeout=30)
    assert r.returncode == 0 and b'"INBOX"' in r.stdout, (r.stdout, r.stderr)
    r = subprocess.run(["curl", "-s", "-S", url + "INBOX/;UID=1"] + auth, capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == stored, (r.stdout[:200], r.stderr)
    path = os.path.join(s.dir, "up.eml")
    with open(path, "wb") as f:
        f.write(b"Subject: uploaded\r\n\r\nby curl\r\n")
    r = subprocess.run(["curl", "-s", "-S", url + "INBOX", "-T", path] + auth, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["curl", "-s", "-S", url + "INBOX/;UID=2"] + auth, capture_output=True, timeout=30)
    assert r.stdout == b"Subject: uploaded\r\n\r\nby curl\r\n", r.stdout
    assert s.stop() == 0


def test_mbsync_mirrors_the_mailbox():
    """imap: mbsync (isync) pulls every folder into a Maildir and pushes a flag back"""
    if not shutil.which("mbsync"):
        raise Skip("mbsync not installed")
    s = imap_server()
    deliver(s, [b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(3)])
    m = login(s)
    m.create("Sent")
    m.logout()
    local = os.path.join(s.dir, "maildir") + "/"
    os.makedirs(local)
    rc = os.path.join(s.dir, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("IMAPAccount t\nHost 127.0.0.1\nPort %d\nUser alice@example.org\nPass secret\n"
                "SSLType None\nAuthMechs LOGIN\n\nIMAPStore remote\nAccount t\n\n"
                "MaildirStore local\nPath %s\nInbox %sINBOX\nSubFolders Verbatim\n\n"
                "Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync All\n"
                "SyncState *\n" % (s.imap_port, local, local))
    r = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    cur = os.path.join(local, "INBOX", "new")
    files = os.listdir(cur) + os.listdir(os.path.join(local, "INBOX", "cur"))
    assert len(files) == 3, files
    assert os.path.isdir(os.path.join(local, "Sent"))
    # mark one seen locally, sync again: the server has \Seen
    name = sorted(os.listdir(cur))[0]
    os.rename(os.path.join(cur, name), os.path.join(local, "INBOX", "cur", name + ":2,S"))
    r = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = login(s)
    m.select("INBOX")
    assert len(m.search(None, "SEEN")[1][0].split()) == 1
    m.logout()
    assert s.stop() == 0


def test_offlineimap_mirrors_the_mailbox():
    """imap: offlineimap pulls every folder into a Maildir, pushes a flag and a new message back, and syncs again cleanly"""
    if not shutil.which("offlineimap"):
        raise Skip("offlineimap not installed")
    s = imap_server()
    deliver(s, [b"Subject: o%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(3)])
    m = login(s)
    m.create("Work")
    m.logout()
    local, meta = os.path.join(s.dir, "oi"), os.path.join(s.dir, "oimeta")
    rc = os.path.join(s.dir, "offlineimaprc")
    with open(rc, "w") as f:
        f.write("[general]\naccounts = t\nmetadata = %s\n\n[Account t]\nlocalrepository = L\n"
                "remoterepository = R\n\n[Repository L]\ntype = Maildir\nlocalfolders = %s\n\n"
                "[Repository R]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = %d\n"
                "remoteuser = alice@example.org\nremotepass = secret\nssl = no\n"
                "starttls = no\n" % (meta, local, s.imap_port))

    def sync():
        r = subprocess.run(["offlineimap", "-c", rc, "-o", "-u", "basic"], capture_output=True,
                           timeout=120)
        assert r.returncode == 0 and b"ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr

    sync()
    inbox = os.path.join(local, "INBOX")
    files = os.listdir(os.path.join(inbox, "new")) + os.listdir(os.path.join(inbox, "cur"))
    assert len(files) == 3, files
    assert os.path.isdir(os.path.join(local, "Work")), os.listdir(local)
    # one marked seen locally, one new message written locally: both go up
    new = os.path.join(inbox, "new")
    name = sorted(os.listdir(new))[0]
    os.rename(os.path.join(new, name), os.path.join(inbox, "cur", name.split(":")[0] + ":2,S"))
    with open(os.path.join(local, "Work", "new", "1700000000.local.host"), "wb") as f:
        f.write(b"Subject: written locally\r\n\r\nup it goes\r\n")
    sync()
    sync()  # nothing left to do, no error
    m = login(s)
    m.select("INBOX")
    assert len(m.search(None, "SEEN")[1][0].split()) == 1
    m.select("Work")
    typ, data = m.search(None, "SUBJECT", "locally")
    assert len(data[0].split()) == 1, data
    m.logout()
    assert s.stop() == 0


def test_lua_hooks_see_imap4_commands():
    """imap: Rumble.setHook(fn, "imap4", "command", "login") runs with the user name and can refuse"""
    s0 = Server()
    script = os.path.join(s0.dir, "hooks.lua")
    with open(script, "w") as f:
        f.write('Rumble.setHook(function(session, arg)\n'
                '  if arg == "mallory@example.org" then\n'
                '    session:send("* BYE not you\\r\\n")\n'
                '    return false\n'
                '  end\n'
                'end, "imap4", "command", "login")\n')
    s = imap_server("LoadScript %s" % script)
    c = Raw(s.imap_port)
    assert c.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    c.close()
    c = Raw(s.imap_port)
    c.send(b"a LOGIN mallory@example.org secret\r\n")
    assert c.line() == b"* BYE not you"
    assert c.closed()
    c.close()
    assert s.stop() == 0


def test_concurrent_stores_and_deliveries_lose_nothing():
    """imap: two sessions changing flags while SMTP delivers lose no message and no flag"""
    import threading
    s = imap_server()
    deliver(s, [b"Subject: first %d\r\n\r\nx\r\n" % i for i in range(20)])
    errors = []

    def flagger(flag):
        try:
            m = login(s)
            m.select("INBOX")
            for _ in range(15):
                m.store("1:*", "+FLAGS", "(%s)" % flag)
                m.noop()
            m.logout()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=flagger, args=(f,)) for f in ("\\Flagged", "$Tag")]
    for t in threads:
        t.start()
    deliver(s, [b"Subject: more %d\r\n\r\ny\r\n" % i for i in range(30)])
    for t in threads:
        t.join(120)
    assert not errors, errors
    m = login(s)
    m.select("INBOX")
    assert m.search(None, "ALL")[1][0].split()[-1] == b"50"
    both = [int(x) for x in m.search(None, "FLAGGED", "KEYWORD", "$Tag")[1][0].split()]
    assert both[:20] == list(range(1, 21)), both  # neither session's update was lost
    m.logout()
    assert len(s.messages("alice@example.org")) == 50
    assert s.stop() == 0


def test_lua_imap4_hooks_wait_for_the_client():
    """imap: an imap4 accept hook and a SELECT hook wait in session:receive(); the pipelined commands after the answers run in order"""
    s0 = Server()
    script = os.path.join(s0.dir, "hooks.lua")
    with open(script, "w") as f:
        f.write('Rumble.setHook(function(session)\n'
                '  session:send("* OK say the word\\r\\n")\n'
                '  if session:receive() ~= "open sesame" then\n'
                '    session:send("* BYE wrong word\\r\\n")\n'
                '    return false\n'
                '  end\n'
                'end, "imap4", "accept")\n'
                'Rumble.setHook(function(session, box)\n'
                '  session:send("* OK really select " .. box .. "?\\r\\n")\n'
                '  if session:receive() ~= "yes" then\n'
                '    session:send("* NO not selecting\\r\\n")\n'
                '    return "ignore"\n'
                '  end\n'
                'end, "imap4", "command", "select")\n')
    s = imap_server("LoadScript %s" % script)
    deliver(s, [b"Subject: hooked\r\n\r\nbody\r\n"])
    c = Raw(s.imap_port)
    assert c.greeting == b"* OK say the word"
    c.send(b"open sesame\r\na LOGIN alice@example.org secret\r\nb SELECT INBOX\r\nyes\r\n"
           b"c FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\nd SELECT INBOX\r\nno\r\ne NOOP\r\n")
    assert c.line().startswith(b"* OK [CAPABILITY")
    assert c.until(b"a")[-1].startswith(b"a OK")
    lines = c.until(b"b")
    assert lines[0] == b"* OK really select INBOX?"
    assert b"* 1 EXISTS" in lines and lines[-1].startswith(b"b OK")
    lines = c.until(b"c")
    assert any(b"Subject: hooked" in l for l in lines) and lines[-1].startswith(b"c OK")
    assert c.line() == b"* OK really select INBOX?"
    assert c.line() == b"* NO not selecting"
    assert c.until(b"e")[-1].startswith(b"e OK")  # d got no tagged reply: the hook answered
    c.close()
    c = Raw(s.imap_port)
    c.send(b"open up\r\n")
    assert c.line() == b"* BYE wrong word"
    assert c.closed()
    c.close()
    assert s.stop() == 0


def test_password_checks_do_not_hold_up_the_worker():
    """imap: passwords are checked off the worker: with one worker a NOOP is answered while 24 logins hash"""
    s = imap_server("Workers 1")
    conns = []
    try:
        for _ in range(25):
            c = socket.create_connection(("127.0.0.1", s.imap_port), timeout=30)
            f = c.makefile("rb")
            assert f.readline().startswith(b"* OK")
            conns.append((c, f))
        quiet, logins = conns[0], conns[1:]
        t0 = time.time()
        for c, _ in logins:
            c.sendall(b"a LOGIN alice@example.org secret\r\n")
        quiet[0].sendall(b"n NOOP\r\n")
        assert quiet[1].readline().startswith(b"n OK")
        noop = time.time() - t0
        for _, f in logins:
            line = f.readline()
            while line.startswith(b"*"):
                line = f.readline()
            assert line.startswith(b"a OK"), line
        total = time.time() - t0
        # on the worker, the NOOP would wait for every hash before it
        assert noop < total / 3, (noop, total)
    finally:
        for c, f in conns:
            f.close()
            c.close()
    assert s.stop() == 0


class Tagged:
    """A raw IMAP connection: cmd() sends one command (literals given
    LITERAL+ style by the caller) and returns every byte up to its tagged
    reply."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.n = 0
        self.until(b"\r\n")

    def until(self, end):
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, self.buf
            self.buf += chunk
        out, self.buf = self.buf.split(end, 1)
        return out + end

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, self.buf
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def cmd(self, text):
        self.n += 1
        tag = b"m%d " % self.n
        self.sock.sendall(tag + text + b"\r\n")
        out = b""
        for _ in range(10000):
            line = self.until(b"\r\n")
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                out += self.take(int(m.group(1)))
            elif line.startswith(tag):
                return out
        raise AssertionError("no tagged reply: %r" % out[-300:])

    def close(self):
        self.sock.close()


def test_metadata_get_and_set():
    """imap: METADATA (RFC 5464): SETMETADATA/GETMETADATA on the server and a mailbox, NIL, literals, DEPTH, MAXSIZE, limits"""
    s = imap_server()
    r = Tagged(s.imap_port)
    assert b"METADATA" in r.cmd(b"CAPABILITY")
    assert b"OK" in r.cmd(b"LOGIN alice@example.org secret").split(b"\r\n")[-2]
    got = r.cmd(b'SETMETADATA "" (/private/comment "my notes" /shared/vendor/rumble/x "1")')
    assert got.startswith(b"m3 OK SETMETADATA"), got
    got = r.cmd(b'GETMETADATA "" (/private/comment /private/nothing)')
    assert b'* METADATA "" ("/private/comment" "my notes" "/private/nothing" NIL)\r\n' in got, got
    assert b'"my notes"' in r.cmd(b'GETMETADATA "" /PRIVATE/Comment')  # names ignore case
    # a mailbox's own entries, a literal value (LITERAL+), its answer a literal too
    got = r.cmd(b"SETMETADATA INBOX (/private/comment {12+}\r\nline1\r\nline2)")
    assert b"OK SETMETADATA" in got, got
    got = r.cmd(b"GETMETADATA INBOX /private/comment")
    assert b'* METADATA "INBOX" ("/private/comment" {12}\r\nline1\r\nline2)\r\n' in got, got
    assert b'"my notes"' in r.cmd(b'GETMETADATA "" /private/comment')  # apart from INBOX's
    # DEPTH and MAXSIZE
    r.cmd(b'SETMETADATA "" (/private/a "1" /private/a/b "22" /private/a/b/c "333333333")')
    got = r.cmd(b'GETMETADATA (DEPTH 1) "" /private/a')
    assert b'"/private/a" "1" "/private/a/b" "22")' in got and b"/a/b/c" not in got, got
    got = r.cmd(b'GETMETADATA (DEPTH infinity MAXSIZE 3) "" /private/a')
    assert b'"/private/a" "1" "/private/a/b" "22")' in got, got
    assert b"OK [METADATA LONGENTRIES 9] GETMETADATA" in got, got
    # NIL removes
    assert b"OK" in r.cmd(b'SETMETADATA "" (/private/comment NIL)')
    assert b'("/private/comment" NIL)' in r.cmd(b'GETMETADATA "" /private/comment')
    # bad names, a missing mailbox, a value over 64 KiB, a bad option
    assert b"BAD" in r.cmd(b'GETMETADATA "" /other/x')
    assert b"BAD" in r.cmd(b'SETMETADATA "" (/private/x)')
    assert b"NO [NONEXISTENT]" in r.cmd(b'GETMETADATA Nope /private/comment')
    got = r.cmd(b'SETMETADATA "" (/private/big {70000}')  # refused before it is sent
    assert b"NO [METADATA MAXSIZE 65536]" in got, got[-200:]
    big = b"x" * 65536  # the largest value fits
    got = r.cmd(b'SETMETADATA "" (/private/big {%d+}\r\n%s)' % (len(big), big))
    assert b"OK SETMETADATA" in got, got[-200:]
    got = r.cmd(b'GETMETADATA "" /private/big')
    assert b"{65536}\r\n" + big + b")" in got
    assert b"BAD" in r.cmd(b'GETMETADATA (DEPTH 2) "" /private/a')
    assert b"OK" in r.cmd(b"NOOP").split(b"\r\n")[-2]
    r.close()
    assert s.stop() == 0


def test_binary_fetch_decodes_and_append_takes_literal8():
    """imap: BINARY (RFC 3516): BINARY[n] and BINARY.SIZE decode base64 and quoted-printable (a literal8 when a NUL is in it), partials count decoded bytes, an unknown encoding is NO [UNKNOWN-CTE]; APPEND takes ~{n}; BODY[] sends a NUL as 0x80"""
    s = imap_server()
    qp = (b"Subject: qp\r\nContent-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak\r\n")
    uu = (b"Subject: uu\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n#86)C\r\n`\r\nend\r\n")
    deliver(s, [MULTIPART, qp, uu])
    r = Raw(s.imap_port)
    assert r.cmd(b"a", b"LOGIN alice@example.org secret")[-1].startswith(b"a OK")
    assert b" BINARY " in r.cmd(b"c", b"CAPABILITY")[0]
    assert r.cmd(b"s", b"EXAMINE INBOX")[-1].startswith(b"s OK")
    r.send(b"f1 FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1]<6.5>)\r\n")
    assert r.line() == b"* 1 FETCH (BINARY[2] ~{6}"
    data = r.buf[:6]
    r.buf = r.buf[6:]
    assert data == b"\x00\x01\x02\x03\x04\x05", data
    rest = r.until(b"f1")
    assert rest[0] == b" BINARY.SIZE[2] 6 BINARY[1]<6> {5}", rest
    assert rest[1] == b"multi)" and rest[2].startswith(b"f1 OK"), rest
    got = r.cmd(b"f2", b"FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert got[0] == b"* 2 FETCH (BINARY[1] {17}", got
    assert got[1] == b"caf\xc3\xa9 softbreak" and got[2] == b" BINARY.SIZE[1] 17)", got
    got = r.cmd(b"f3", b"FETCH 3 (UID BINARY.PEEK[1])")
    assert got[0] == b"* 3 FETCH (UID 3)" and got[-1].startswith(b"f3 NO [UNKNOWN-CTE]"), got
    got = r.cmd(b"f4", b"FETCH 1 (BINARY.PEEK[9] BINARY.PEEK[1.MIME])")
    assert got[-1].startswith(b"f4 BAD"), got
    got = r.cmd(b"f5", b"FETCH 1 (BINARY.PEEK[9])")
    assert got[0] == b"* 1 FETCH (BINARY[9] NIL)", got
    # APPEND with a binary literal: a NUL and all come back as sent
    msg = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
    r.send(b"ap APPEND INBOX ~{%d}\r\n" % len(msg))
    assert r.line().startswith(b"+")
    r.send(msg + b"\r\n")
    assert r.until(b"ap")[-1].startswith(b"ap OK")
    assert r.cmd(b"bl", b"FETCH 1 (BINARY.PEEK[1] ~{3}")[-1].startswith(b"bl BAD")
    r.cmd(b"n", b"NOOP")
    got = r.cmd(b"f6", b"FETCH 4 (BODY.PEEK[] BINARY.PEEK[])")
    assert got[0] == b"* 4 FETCH (BODY[] {%d}" % len(msg), got
    rest = b"".join(l + b"\r\n" for l in got[1:])
    assert rest[:len(msg)] == msg.replace(b"\0", b"\x80"), got  # a literal holds no NUL
    assert rest[len(msg):].startswith(b" BINARY[] ~{%d}\r\n%s)" % (len(msg), msg)), got
    assert r.cmd(b"lo", b"LOGOUT")[-1].startswith(b"lo OK")
    assert s.stop() == 0
