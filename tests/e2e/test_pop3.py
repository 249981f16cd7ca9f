"""End-to-end POP3 tests against the real binary (poplib, raw sockets, fetchmail, curl)."""
import base64
import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time

from harness import Server, free_port, strip_received, wait_port


def pop3_server(conf="", **kw):
    """A Server with POP3 on a free port (s.pop3_port), started."""
    port = free_port()
    s = Server(conf="EnablePOP3 1\nPOP3Port %d\n%s" % (port, conf), **kw)
    s.pop3_port = port
    s.start()
    assert wait_port(port), "POP3 port not open"
    return s


def message(i, size=0, extra=b""):
    body = b"".join(b"line %d of message %d, some text to fill it up.\r\n" % (n, i)
                    for n in range(max(1, size // 48)))
    return (b"From: sender@remote.test\r\nTo: alice@example.org\r\nSubject: test %d\r\n"
            b"Message-ID: <m%d@remote.test>\r\n\r\n" % (i, i)) + extra + body


# lines POP3 must dot-stuff, and mbox lines that must come back unquoted
TRICKY = b".leading dot\r\n..two dots\r\n.\r\nFrom the mbox\r\n>From quoted\r\n"


def deliver(s, msgs, rcpt="alice@example.org", sessions=1):
    """Sends msgs over SMTP, spread over parallel sessions."""
    errors = []

    def sender(part):
        try:
            with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=60) as c:
                for m in part:
                    c.sendmail("sender@remote.test", [rcpt], m)
        except Exception as e:  # reported below
            errors.append(e)

    parts = [msgs[k::sessions] for k in range(sessions)]
    threads = [threading.Thread(target=sender, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors


def login(s, user="alice@example.org", pw="secret"):
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=30)
    p.user(user)
    p.pass_(pw)
    return p


def retr_bytes(p, n):
    """RETR n as the wire bytes before stuffing (poplib unstuffs lines)."""
    resp, lines, octets = p.retr(n)
    return b"".join(l + b"\r\n" for l in lines), resp


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class POPRaw:
    """A plain socket client for pipelining, garbage and AUTH."""

    def __init__(self, port, timeout=15, source=None):
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
                raise EOFError("connection closed; had %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.send((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.line()

    def multi(self):
        """The body of a multi-line reply, unstuffed, as wire bytes."""
        out = []
        while True:
            l = self.line()
            if l == b".":
                return b"".join(x + b"\r\n" for x in out)
            out.append(l[1:] if l.startswith(b".") else l)

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


def test_poplib_every_command():
    """pop3: poplib drives every command and gets the right replies and errors"""
    s = pop3_server()
    sent = [message(1, 300, TRICKY), message(2, 100), message(3, 2000, b"\r\n.\r\n")]
    deliver(s, sent)
    stored = s.messages("alice@example.org")
    assert [strip_received(m) for m in stored] == sent
    p = poplib.POP3("127.0.0.1", s.pop3_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    assert caps == {"TOP": [], "UIDL": [], "STLS": [], "USER": [], "SASL": ["PLAIN", "LOGIN"],
                    "RESP-CODES": [], "AUTH-RESP-CODE": [], "PIPELINING": [],
                    "IMPLEMENTATION": ["Rumble"]}, caps
    for bad in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "NOOP", "PASS x", "FOO"):
        try:
            p._shortcmd(bad)
            raise AssertionError("%s accepted before login" % bad)
        except poplib.error_proto as e:
            assert str(e).startswith("b'-ERR"), e
    assert p.user("alice@example.org").startswith(b"+OK")
    assert p.pass_("secret").startswith(b"+OK")
    assert p.capa() == caps  # RFC 2449: the same in both states
    assert p.stat() == (3, sum(len(m) for m in stored))
    resp, listing, _ = p.list()
    assert listing == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(stored)], listing
    assert p.list(2) == b"+OK 2 %d" % len(stored[1])
    for i, m in enumerate(stored):
        got, resp = retr_bytes(p, i + 1)
        assert got == m, (i, got[:200], m[:200])
        assert resp == b"+OK %d octets" % len(m)
    # on the wire, every line starting with '.' is stuffed
    raw = POPRaw(s.pop3_port)
    assert raw.cmd("USER alice@example.org").startswith(b"+OK")
    assert raw.cmd("PASS secret").startswith(b"-ERR [IN-USE]")
    raw.close()
    resp, uids, _ = p.uidl()
    assert len(set(u.split()[1] for u in uids)) == 3
    assert [u.split()[0] for u in uids] == [b"1", b"2", b"3"]
    assert all(re.match(rb"^\d+ \d+-\d+$", u) for u in uids), uids
    assert p.uidl(3) == b"+OK " + uids[2]
    head = stored[0].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    resp, lines, _ = p.top(1, 0)
    assert b"".join(l + b"\r\n" for l in lines) == head
    resp, lines, _ = p.top(1, 2)
    body = stored[0][len(head):].split(b"\r\n")
    assert b"".join(l + b"\r\n" for l in lines) == head + body[0] + b"\r\n" + body[1] + b"\r\n"
    resp, lines, _ = p.top(1, 100000)
    assert b"".join(l + b"\r\n" for l in lines) == stored[0]
    errors = ["LIST 4", "LIST 0", "LIST x", "LIST -1", "RETR 4", "RETR", "RETR 1 2", "TOP 1",
              "TOP 1 x", "TOP 9 1", "UIDL 4", "DELE 0", "USER bob", "PASS x", "AUTH PLAIN",
              "FOO", "LIST 99999999999999999999"]
    for bad in errors:
        try:
            p._shortcmd(bad)
            raise AssertionError("%s accepted" % bad)
        except poplib.error_proto as e:
            assert str(e).startswith("b'-ERR"), (bad, e)
    assert p.dele(1).startswith(b"+OK")
    for bad in ("DELE 1", "RETR 1", "LIST 1", "TOP 1 0", "UIDL 1"):
        try:
            p._shortcmd(bad)
            raise AssertionError("%s of a deleted message accepted" % bad)
        except poplib.error_proto as e:
            assert "deleted" in str(e), e
    assert p.stat() == (2, len(stored[1]) + len(stored[2]))
    assert [l.split()[0] for l in p.list()[1]] == [b"2", b"3"]
    assert [u.split()[0] for u in p.uidl()[1]] == [b"2", b"3"]
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3
    assert p.dele(2).startswith(b"+OK")
    assert p.noop().startswith(b"+OK")
    assert p.quit() == b"+OK Rumble POP3 server signing off (2 messages left)"
    # a new session numbers what is left from 1; the UIDLs stay
    p = login(s)
    assert p.stat() == (2, len(stored[0]) + len(stored[2]))
    assert p.uidl()[1] == [b"1 " + uids[0].split()[1], b"2 " + uids[2].split()[1]]
    assert retr_bytes(p, 1)[0] == stored[0]
    assert retr_bytes(p, 2)[0] == stored[2]
    p.quit()
    assert s.stop() == 0


def test_thousand_messages_fetched_intact():
    """pop3: a 1,000-message maildrop delivered over SMTP is listed and fetched byte for byte"""
    s = pop3_server()
    sent = [message(i, 200 + (i % 13) * 700, TRICKY if i % 10 == 0 else b"") for i in range(1000)]
    deliver(s, sent, sessions=8)
    p = login(s)
    count, total = p.stat()
    assert count == 1000, count
    resp, listing, _ = p.list()
    sizes = [int(l.split()[1]) for l in listing]
    assert len(sizes) == 1000 and sum(sizes) == total
    got = []
    for i in range(1000):
        m, resp = retr_bytes(p, i + 1)
        assert len(m) == sizes[i] and resp == b"+OK %d octets" % sizes[i]
        got.append(strip_received(m))
    assert sorted(got) == sorted(sent)
    uids = [u.split()[1] for u in p.uidl()[1]]
    assert len(set(uids)) == 1000
    p.quit()
    assert len(s.messages("alice@example.org")) == 1000  # nothing deleted
    assert s.stop() == 0


def fetchmail(s, home, out):
    """One fetchmail run (keep + UIDL) into the folder out; its exit code."""
    rc = os.path.join(home, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 protocol POP3 port %d user "alice@example.org" password "secret"\n'
                % s.pop3_port)
    os.chmod(rc, 0o600)
    mda = "cat > %s/$$.msg" % out
    r = subprocess.run(["fetchmail", "-f", rc, "--keep", "--uidl", "-p", "POP3", "--port",
                        str(s.pop3_port), "--idfile", os.path.join(home, "ids"), "--mda", mda,
                        "--invisible", "--nosslcertck", "127.0.0.1"],
                       env=dict(os.environ, HOME=home, FETCHMAILHOME=home),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return r


def test_fetchmail_keep_uidl_fetches_once():
    """pop3: fetchmail --keep --uidl run twice fetches each message once"""
    if not shutil.which("fetchmail"):
        raise Skip("fetchmail not installed")
    s = pop3_server()
    deliver(s, [message(i, 500, TRICKY) for i in range(20)])
    home = os.path.join(s.dir, "fm")
    out = os.path.join(home, "out")
    os.makedirs(out)
    r = fetchmail(s, home, out)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert len(os.listdir(out)) == 20, os.listdir(out)
    r = fetchmail(s, home, out)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)  # 1: no new mail
    assert len(os.listdir(out)) == 20
    deliver(s, [message(99, 100)])
    r = fetchmail(s, home, out)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert len(os.listdir(out)) == 21
    ids = []
    for name in os.listdir(out):
        data = open(os.path.join(out, name), "rb").read()
        ids += re.findall(rb"Message-ID: <(m\d+)@", data)
        assert b".leading dot\n..two dots\n.\nFrom the mbox\n>From quoted\n" in data or b"m99" in data
    assert sorted(ids) == sorted(b"m%d" % i for i in list(range(20)) + [99])
    assert len(s.messages("alice@example.org")) == 21  # --keep
    assert s.stop() == 0


def test_curl_lists_and_retrieves():
    """pop3: curl pop3:// lists the maildrop and retrieves a message"""
    if not shutil.which("curl"):
        raise Skip("curl not installed")
    s = pop3_server()
    deliver(s, [message(1, 300, TRICKY), message(2, 5000)])
    stored = s.messages("alice@example.org")
    url = "pop3://127.0.0.1:%d/" % s.pop3_port
    r = subprocess.run(["curl", "-s", "-S", url, "-u", "alice@example.org:secret"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"1 %d\r\n2 %d\r\n" % (len(stored[0]), len(stored[1])), r.stdout
    for i in (1, 2):
        r = subprocess.run(["curl", "-s", "-S", url + str(i), "-u", "alice@example.org:secret"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout == stored[i - 1], r.stdout[:300]
    assert s.stop() == 0


def test_dropped_connection_deletes_nothing():
    """pop3: a connection dropped after DELE loses nothing"""
    s = pop3_server()
    deliver(s, [message(i, 100) for i in range(3)])
    before = open(s.mbox("alice@example.org"), "rb").read()
    c = POPRaw(s.pop3_port)
    assert c.cmd("USER alice@example.org").startswith(b"+OK")
    assert c.cmd("PASS secret").startswith(b"+OK")
    assert c.cmd("DELE 1").startswith(b"+OK")
    assert c.cmd("DELE 2").startswith(b"+OK")
    c.close()  # no QUIT
    p = None
    for _ in range(50):  # the lock goes when the server notices the drop
        try:
            p = login(s)
            break
        except poplib.error_proto as e:
            assert b"IN-USE" in e.args[0], e
            time.sleep(0.05)
    assert p and p.stat()[0] == 3
    p.quit()
    assert open(s.mbox("alice@example.org"), "rb").read() == before
    assert s.stop() == 0


def test_reindexed_mbox_deletes_nothing():
    """pop3: QUIT deletes nothing when another program rewrote the mbox during the session"""
    s = pop3_server()
    deliver(s, [message(i, 100) for i in range(3)])
    p = login(s)
    p.dele(1)
    path = s.mbox("alice@example.org")
    data = open(path, "rb").read() + b"From x@y Wed Nov 18 10:00:00 2026\nSubject: added\n\nhi\n\n"
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)
    os.remove(path[:-5] + ".idx")  # the index goes with it: new UIDVALIDITY, UIDs from 1
    try:
        p.quit()
        raise AssertionError("QUIT claimed to delete after a re-index")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [SYS/TEMP]"), e
    p = login(s)
    assert p.stat()[0] == 4
    p.quit()
    assert s.stop() == 0


def test_in_use_lock():
    """pop3: a second session on the same maildrop gets -ERR [IN-USE] until the first ends"""
    s = pop3_server(users=("alice@example.org", "bob@example.org"))
    deliver(s, [message(1, 100)])
    a = login(s)
    b = poplib.POP3("127.0.0.1", s.pop3_port, timeout=10)
    b.user("alice")  # bare name: the server has one domain
    try:
        b.pass_("secret")
        raise AssertionError("second session got the maildrop")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [IN-USE]"), e
    bob = login(s, "bob@example.org")  # another maildrop is free
    assert bob.stat() == (0, 0)
    bob.quit()
    a.quit()
    b.user("alice@example.org")
    assert b.pass_("secret").startswith(b"+OK")
    assert b.stat()[0] == 1
    b.quit()
    assert s.stop() == 0


def test_pipelined_commands_in_one_write():
    """pop3: commands pipelined in one write are answered in order, big messages included"""
    s = pop3_server()
    sent = [message(1, 400000, TRICKY), message(2, 300), message(3, 700000)]
    deliver(s, sent)
    stored = s.messages("alice@example.org")
    c = POPRaw(s.pop3_port, timeout=30)
    c.send(b"CAPA\r\nUSER alice@example.org\r\nPASS wrong\r\nUSER alice@example.org\r\n"
           b"PASS secret\r\nSTAT\r\nRETR 1\r\nLIST\r\nRETR 3\r\nTOP 2 0\r\nRETR 2\r\nUIDL 2\r\n"
           b"DELE 2\r\nRETR 2\r\nNOOP\r\nQUIT\r\n")
    assert c.line() == b"+OK Capability list follows"
    assert b"PIPELINING\r\n" in c.multi()
    assert c.line().startswith(b"+OK")
    assert c.line() == b"-ERR [AUTH] Invalid login"
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"+OK Logged in, 3 messages")
    assert c.line() == b"+OK 3 %d" % sum(len(m) for m in stored)
    assert c.line() == b"+OK %d octets" % len(stored[0])
    assert c.multi() == stored[0]
    assert c.line().startswith(b"+OK 3 messages")
    assert c.multi() == b"".join(b"%d %d\r\n" % (i + 1, len(m)) for i, m in enumerate(stored))
    assert c.line() == b"+OK %d octets" % len(stored[2])
    assert c.multi() == stored[2]
    assert c.line().startswith(b"+OK")
    assert c.multi() == stored[1].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert c.line() == b"+OK %d octets" % len(stored[1])
    assert c.multi() == stored[1]
    assert re.match(rb"^\+OK 2 \d+-\d+$", c.line())
    assert c.line().startswith(b"+OK")
    assert c.line().startswith(b"-ERR")
    assert c.line() == b"+OK"
    assert c.line().startswith(b"+OK Rumble POP3 server signing off")
    assert c.closed()
    p = login(s)
    assert [retr_bytes(p, n)[0] for n in (1, 2)] == [stored[0], stored[2]]
    p.quit()
    # a client that half-closes after its last command still gets every answer
    c = POPRaw(s.pop3_port, timeout=30)
    c.send(b"USER alice@example.org\r\nPASS secret\r\nRETR 2\r\nSTAT\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.line().startswith(b"+OK") and c.line().startswith(b"+OK Logged in")
    assert c.line().startswith(b"+OK") and c.multi() == stored[2]
    assert c.line().startswith(b"+OK 2 ")
    assert c.line().startswith(b"+OK Rumble POP3 server signing off")
    assert s.stop() == 0


def test_bad_input_gets_errors_and_server_stays_up():
    """pop3: overlong lines, binary garbage and bad numbers get -ERR; the server stays up"""
    s = pop3_server()
    deliver(s, [message(1, 100)])
    c = POPRaw(s.pop3_port)
    assert c.cmd("USER alice@example.org").startswith(b"+OK")
    assert c.cmd("PASS secret").startswith(b"+OK")
    bad = [b"X" * 300, b"LIST " + b"9" * 250, b"A" * 100000, b"\x00\xff\xfe garbage \x01",
           os.urandom(3000).replace(b"\n", b"n"), b"RETR 99999999999", b"RETR -1", b"RETR abc",
           b"RETR 0", b"RETR 2", b"RETR 1x", b"RETR  1", b"LIST 1 2", b"TOP 1 -1", b"TOP 1",
           b"DELE 5", b"UIDL 0", b"\xc3\xa9T\xc3\xa0T", b"STAT\x00", b"", b"USER x", b"AUTH PLAIN"]
    for b in bad:
        r = c.cmd(b)
        assert r.startswith(b"-ERR"), (b[:40], r)
    c.send(b"NOOP\rNOOP\r\n")  # a lone CR does not end a line
    assert c.line().startswith(b"-ERR")
    c.send(b"NOOP\n")  # a bare LF does
    assert c.line() == b"+OK"
    assert c.cmd("STAT") == b"+OK 1 %d" % len(s.messages("alice@example.org")[0])
    c.cmd("QUIT")
    # before login every error counts: the tenth closes the session
    c = POPRaw(s.pop3_port)
    for i in range(9):
        assert c.cmd(b"\xff" * (i + 1)).startswith(b"-ERR")
    assert c.cmd(b"FOO").startswith(b"-ERR")
    assert c.line().startswith(b"-ERR too many errors")
    assert c.closed()
    # and so do too many commands without login
    c = POPRaw(s.pop3_port)
    c.send(b"CAPA\r\n" * 40)
    replies = 0
    try:
        while True:
            l = c.line()
            replies += l == b"+OK Capability list follows"
            if l.startswith(b"-ERR"):
                break
    except EOFError:
        pass
    assert replies == 30 and c.closed()
    assert login(s).stat()[0] == 1  # still serving
    assert s.stop() == 0


def test_wrong_password_gets_auth_error_after_delay():
    """pop3: a wrong password or unknown user gets -ERR [AUTH] after a delay that holds no thread"""
    s = pop3_server(conf="Workers 1")
    c = POPRaw(s.pop3_port)
    other = POPRaw(s.pop3_port)  # on the same (only) worker
    assert c.cmd("USER alice@example.org").startswith(b"+OK")
    t0 = time.time()
    c.send(b"PASS wrong\r\n")
    time.sleep(0.05)
    t1 = time.time()
    assert other.cmd("CAPA").startswith(b"+OK")  # answered while c waits
    other.multi()
    assert time.time() - t1 < 0.15
    assert c.line() == b"-ERR [AUTH] Invalid login"
    first = time.time() - t0
    assert first >= 0.2, first
    assert c.cmd("USER nobody@example.org").startswith(b"+OK")
    t0 = time.time()
    assert c.cmd("PASS secret") == b"-ERR [AUTH] Invalid login"  # unknown: the same reply
    assert time.time() - t0 >= 0.45  # the second failure waits longer
    assert c.cmd("PASS secret").startswith(b"-ERR")  # USER again first
    assert c.cmd("USER alice@example.org").startswith(b"+OK")
    assert c.cmd("PASS secret").startswith(b"+OK")
    c.cmd("QUIT")
    other.close()
    assert s.stop() == 0


def test_auth_plain_and_login():
    """pop3: AUTH PLAIN (with and without initial response) and AUTH LOGIN; '*' cancels"""
    s = pop3_server()
    deliver(s, [message(1, 100)])
    c = POPRaw(s.pop3_port)
    assert c.cmd("AUTH") == b"+OK"
    assert c.multi() == b"PLAIN\r\nLOGIN\r\n"
    assert c.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0secret")).startswith(b"+OK Logged in")
    assert c.cmd("STAT").startswith(b"+OK 1 ")
    assert c.cmd("AUTH PLAIN").startswith(b"-ERR")  # not after login
    c.cmd("QUIT")
    c = POPRaw(s.pop3_port)
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("*").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("not base64!").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(b64("alice@example.org\0alice@example.org\0secret")).startswith(b"+OK")
    c.cmd("QUIT")
    c = POPRaw(s.pop3_port)
    assert c.cmd("AUTH LOGIN") == b"+ " + b64("Username:").encode()
    assert c.cmd(b64("alice@example.org")) == b"+ " + b64("Password:").encode()
    assert c.cmd(b64("secret")).startswith(b"+OK")
    c.cmd("QUIT")
    c = POPRaw(s.pop3_port)
    assert c.cmd("AUTH LOGIN " + b64("alice")) == b"+ " + b64("Password:").encode()
    assert c.cmd("*").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0wrong")) == b"-ERR [AUTH] Invalid login"
    assert c.cmd("AUTH PLAIN " + b64("bob\0alice@example.org\0secret")).startswith(b"-ERR")
    assert c.cmd("AUTH LOGIN") == b"+ " + b64("Username:").encode()
    assert c.cmd(b64("alice@example.org")).startswith(b"+ ")
    assert c.cmd("A" * 1500).startswith(b"-ERR")  # a long continuation line is read whole
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0secret")).startswith(b"+OK")
    c.cmd("QUIT")
    assert s.stop() == 0


def test_plaintext_login_only_where_allowed():
    """pop3: from a non-loopback address without TLS, USER and SASL are neither offered nor accepted"""
    s = pop3_server()
    try:
        c = POPRaw(s.pop3_port, source="127.0.0.2")
    except OSError:
        raise Skip("cannot bind 127.0.0.2")
    assert c.cmd("CAPA").startswith(b"+OK")
    caps = c.multi()
    assert b"USER" not in caps and b"SASL" not in caps and b"UIDL" in caps
    assert c.cmd("USER alice@example.org").startswith(b"-ERR [AUTH]")
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0secret")).startswith(b"-ERR [AUTH]")
    c.close()
    assert s.stop() == 0


def test_top_sends_header_and_lines():
    """pop3: TOP sends the header, the blank line and as many body lines as asked"""
    s = pop3_server()
    body = b".one\r\ntwo\r\n\r\nfour\r\n.\r\n"
    deliver(s, [b"Subject: top\r\nX-A: b\r\n\r\n" + body, b"Subject: no body\r\n"])
    stored = s.messages("alice@example.org")
    head = stored[0][:stored[0].index(b"\r\n\r\n") + 4]
    c = POPRaw(s.pop3_port)
    c.cmd("USER alice@example.org")
    c.cmd("PASS secret")
    lines = body.split(b"\r\n")
    for n in range(7):
        assert c.cmd("TOP 1 %d" % n).startswith(b"+OK")
        want = head + b"".join(l + b"\r\n" for l in lines[:min(n, 5)])
        assert c.multi() == want, n
    assert c.cmd("TOP 2 5").startswith(b"+OK")
    assert c.multi() == stored[1]  # no blank line: all of it is header
    c.cmd("QUIT")
    assert s.stop() == 0


def test_top_is_dot_stuffed_on_the_wire():
    """pop3: RETR and TOP dot-stuff lines that start with '.' and end with a lone '.'"""
    s = pop3_server()
    deliver(s, [b"Subject: dots\r\n\r\n.a\r\n..b\r\n.\r\nc\r\n"])
    stored = s.messages("alice@example.org")[0]
    c = POPRaw(s.pop3_port)
    c.cmd("USER alice@example.org")
    c.cmd("PASS secret")
    c.send(b"RETR 1\r\nTOP 1 2\r\nNOOP\r\n")
    want_retr = b"+OK %d octets\r\n" % len(stored) + stored.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    want_top = b"+OK Top of message 1 follows\r\n" + stored.split(b"\r\n\r\n")[0] + \
        b"\r\n\r\n..a\r\n...b\r\n.\r\n"
    want = want_retr + want_top + b"+OK\r\n"
    raw = c.buf
    while len(raw) < len(want):
        raw += c.sock.recv(65536)
    assert raw == want, raw
    c.cmd("QUIT")
    assert s.stop() == 0


def test_uidl_stable_across_restart_and_deletions():
    """pop3: UIDLs stay the same across a restart and after other messages were deleted"""
    s = pop3_server()
    deliver(s, [message(i, 3000) for i in range(5)])
    p = login(s)
    uidl = {}
    for line in p.uidl()[1]:
        n, u = line.split()
        m, _ = retr_bytes(p, int(n))
        uidl[re.search(rb"Message-ID: <(m\d+)@", m).group(1)] = u
    assert len(set(uidl.values())) == 5
    p.quit()
    assert s.stop() == 0
    s.start()
    assert wait_port(s.pop3_port)
    p = login(s)
    for n in (1, 2, 4):  # 3 of 5: compacted on QUIT
        p.dele(n)
    p.quit()
    size_after = os.path.getsize(s.mbox("alice@example.org"))
    assert size_after < 2 * 3000 + 1000 * 2 + 2000, size_after  # the mbox was compacted
    deliver(s, [message(9, 100)])
    assert s.stop() == 0
    s.start()
    assert wait_port(s.pop3_port)
    p = login(s)
    now = {}
    for line in p.uidl()[1]:
        n, u = line.split()
        m, _ = retr_bytes(p, int(n))
        now[re.search(rb"Message-ID: <(m\d+)@", m).group(1)] = u
    assert now[b"m2"] == uidl[b"m2"] and now[b"m4"] == uidl[b"m4"], (now, uidl)
    assert len(now) == 3 and now[b"m9"] not in uidl.values()
    p.quit()
    assert s.stop() == 0


def test_snapshot_at_login():
    """pop3: mail arriving during a session shows in the next one, numbers never move"""
    s = pop3_server()
    deliver(s, [message(1, 100)])
    p = login(s)
    deliver(s, [message(2, 100)])
    assert p.stat()[0] == 1
    assert len(p.list()[1]) == 1
    p.dele(1)
    p.quit()
    p = login(s)
    assert p.stat()[0] == 1
    assert b"m2@" in retr_bytes(p, 1)[0]
    p.quit()
    # SIGTERM with a session logged in and one waiting out a failed login
    p = login(s)
    c = POPRaw(s.pop3_port)
    c.send(b"USER alice@example.org\r\nPASS wrong\r\n")
    assert s.stop() == 0
