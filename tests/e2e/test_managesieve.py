"""ManageSieve (RFC 5804, managesieve.c): a small client written here drives
every command and response code, literals, STARTTLS then AUTHENTICATE, and
throttled bad logins; sieve-connect puts, lists, activates and gets a
script; a script put over ManageSieve filters mail that arrives by SMTP."""
import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

from harness import Server, free_port, imap_folder, wait_port

FILTER = 'require ["fileinto", "mailbox"];\r\nif header :contains "subject" "report" { fileinto :create "Reports"; }\r\n'


class Client:
    """A ManageSieve client on a raw socket: lines, quoted strings and {n}
    literals from the server; every read bounded by the socket timeout."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def take(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def response(self):
        """(the lines before the final one, the final OK/NO/BYE line); a
        literal's data is one item of the lines."""
        lines = []
        for _ in range(1000):
            l = self.line()
            m = re.match(rb"^\{(\d+)\}$", l)
            if m:
                lines.append(self.take(int(m.group(1))))
                assert self.line() == b"", "a literal ends its line"
                continue
            if re.match(rb"^(OK|NO|BYE)\b", l):
                return lines, l.decode()
            lines.append(l)
        raise AssertionError("no end of response")

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.response()

    def starttls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(4096)
                if not d:
                    return True
        except (OSError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()


def plain(user, pw="secret"):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode()


def literal(text):
    b = text.encode()
    return "{%d+}\r\n%s" % (len(b), text)


def server(conf=""):
    port = free_port()
    s = Server(conf="EnableManageSieve 1\nManageSievePort %d\n%s" % (port, conf),
               users=("alice@example.org", "bob@example.org"))
    s.start()
    s.msv = port
    assert wait_port(port), s.stderr()  # start() waits for the SMTP port only
    return s


def login(s, user="alice@example.org"):
    c = Client(s.msv)
    caps, ok = c.response()
    assert ok.startswith("OK"), ok
    lines, r = c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain(user))
    assert r.startswith("OK"), r
    return c


def test_managesieve_greeting_and_capabilities():
    """managesieve: the greeting lists IMPLEMENTATION, SASL PLAIN LOGIN, SIEVE with the compiler's extensions, STARTTLS, MAXREDIRECTS and VERSION 1.0"""
    s = server()
    try:
        c = Client(s.msv)
        caps, ok = c.response()
        text = b"\n".join(caps).decode()
        assert ok.startswith("OK"), ok
        assert '"IMPLEMENTATION" "Rumble"' in text, text
        assert '"SASL" "PLAIN LOGIN"' in text, text
        assert '"STARTTLS"' in text and '"VERSION" "1.0"' in text, text
        assert '"MAXREDIRECTS" "4"' in text, text
        sieve = re.search(r'"SIEVE" "([^"]*)"', text).group(1).split()
        for ext in ("fileinto", "reject", "envelope", "imap4flags", "variables", "vacation",
                    "comparator-i;ascii-numeric"):
            assert ext in sieve, sieve
        caps2, ok = c.cmd("CAPABILITY")
        assert caps2 == caps and ok.startswith("OK")
        lines, r = c.cmd('NOOP "tag1"')
        assert r == 'OK (TAG "tag1") "Done"', r
        lines, r = c.cmd("LISTSCRIPTS")
        assert r.startswith("NO"), r
        lines, r = c.cmd("FROBNICATE")
        assert r.startswith("NO"), r
        lines, r = c.cmd("LOGOUT")
        assert r.startswith("OK") and c.closed()
    finally:
        s.stop()


def test_managesieve_scripts():
    """managesieve: PUTSCRIPT (literal, non-synchronising and synchronising, and quoted), CHECKSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT, RENAMESCRIPT, DELETESCRIPT, HAVESPACE with their response codes, and UTF-8 names stored escaped"""
    s = server()
    try:
        c = login(s)
        lines, r = c.cmd("LISTSCRIPTS")
        assert lines == [] and r.startswith("OK"), (lines, r)
        lines, r = c.cmd('PUTSCRIPT "work" ' + literal(FILTER))
        assert r.startswith("OK"), r
        sync = 'keep;\r\n'
        lines, r = c.cmd('PUTSCRIPT "b" {%d}\r\n%s' % (len(sync), sync))
        assert r.startswith("OK"), r
        lines, r = c.cmd('PUTSCRIPT "quoted" "discard;"')
        assert r.startswith("OK"), r
        # a script that does not compile is not stored; the error says where
        lines, r = c.cmd('PUTSCRIPT "bad" ' + literal("keep;\r\nfrobnicate;\r\n"))
        assert r.startswith('NO "2:1: '), r
        lines, r = c.cmd('CHECKSCRIPT ' + literal("if true {"))
        assert r.startswith('NO "1:'), r
        lines, r = c.cmd('CHECKSCRIPT ' + literal(FILTER))
        assert r.startswith("OK"), r
        name = "Réglages \"été\""
        lines, r = c.cmd('PUTSCRIPT %s %s' % (literal(name), literal("keep;")))
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        got = sorted(lines)
        assert got == sorted([b'"work"', b'"b"', b'"quoted"', '"R\u00e9glages \\"\u00e9t\u00e9\\""'.encode()]), got
        files = sorted(os.listdir(os.path.join(s.storage, "mail", "example.org", "alice", "sieve")))
        assert "R%C3%A9glages%20%22%C3%A9t%C3%A9%22.sieve" in files, files
        assert "bad.sieve" not in files
        # SETACTIVE
        lines, r = c.cmd('SETACTIVE "nope"')
        assert r.startswith("NO (NONEXISTENT)"), r
        lines, r = c.cmd('SETACTIVE "work"')
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        assert b'"work" ACTIVE' in lines and b'"b"' in lines, lines
        assert "work" in s.cli("user", "sieve", "alice@example.org", "show").stdout
        # GETSCRIPT
        lines, r = c.cmd('GETSCRIPT "work"')
        assert r.startswith("OK") and lines == [FILTER.encode()], (lines, r)
        lines, r = c.cmd('GETSCRIPT "nope"')
        assert r.startswith("NO (NONEXISTENT)"), r
        # DELETESCRIPT: not the active one
        lines, r = c.cmd('DELETESCRIPT "work"')
        assert r.startswith("NO (ACTIVE)"), r
        lines, r = c.cmd('DELETESCRIPT "quoted"')
        assert r.startswith("OK"), r
        lines, r = c.cmd('DELETESCRIPT "quoted"')
        assert r.startswith("NO (NONEXISTENT)"), r
        # RENAMESCRIPT: the active one stays active
        lines, r = c.cmd('RENAMESCRIPT "work" "b"')
        assert r.startswith("NO (ALREADYEXISTS)"), r
        lines, r = c.cmd('RENAMESCRIPT "nope" "x"')
        assert r.startswith("NO (NONEXISTENT)"), r
        lines, r = c.cmd('RENAMESCRIPT "work" "filters"')
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        assert b'"filters" ACTIVE' in lines and b'"work"' not in lines, lines
        # invalid names
        lines, r = c.cmd('PUTSCRIPT "a\\\\b\x01" "keep;"')
        assert r.startswith("NO"), r
        lines, r = c.cmd('PUTSCRIPT "%s" "keep;"' % ("x" * 65))
        assert r.startswith("NO"), r
        # HAVESPACE and the quota on scripts
        lines, r = c.cmd('HAVESPACE "new" 1000')
        assert r.startswith("OK"), r
        lines, r = c.cmd('HAVESPACE "new" 300000')
        assert r.startswith("NO (QUOTA/MAXSIZE)"), r
        big = "#" + "x" * 270000 + "\r\nkeep;\r\n"
        lines, r = c.cmd('PUTSCRIPT "big" ' + literal(big))
        assert r.startswith("NO (QUOTA/MAXSIZE)"), r
        for i in range(17):  # 3 scripts so far: 20 in all
            lines, r = c.cmd('PUTSCRIPT "s%d" "keep;"' % i)
            assert r.startswith("OK"), (i, r)
        lines, r = c.cmd('PUTSCRIPT "one-too-many" "keep;"')
        assert r.startswith("NO (QUOTA/MAXSCRIPTS)"), r
        lines, r = c.cmd('HAVESPACE "one-too-many" 10')
        assert r.startswith("NO (QUOTA/MAXSCRIPTS)"), r
        lines, r = c.cmd('PUTSCRIPT "s1" "discard;"')
        assert r.startswith("OK"), r  # replacing one is no new script
        # SETACTIVE "" switches filtering off
        lines, r = c.cmd('SETACTIVE ""')
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        assert not [l for l in lines if l.endswith(b"ACTIVE")], lines
        lines, r = c.cmd("UNAUTHENTICATE")
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        assert r.startswith("NO"), r
        c.close()
    finally:
        s.stop()


def test_managesieve_authenticate():
    """managesieve: AUTHENTICATE PLAIN and LOGIN with continuations, "*" cancels, bad logins throttled until TRYLATER, commands before login bounded"""
    s = server("LoginAttempts 3\nQuarantine 60\n")
    try:
        c = Client(s.msv)
        c.response()
        c.send('AUTHENTICATE "PLAIN"\r\n')
        assert c.line() == b'""'
        c.send('"%s"\r\n' % plain("alice@example.org"))
        lines, r = c.response()
        assert r.startswith("OK"), r
        c.close()
        c = Client(s.msv)
        c.response()
        c.send('AUTHENTICATE "LOGIN"\r\n')
        assert base64.b64decode(c.line().strip(b'"')).lower().startswith(b"user")
        c.send("{%d+}\r\n%s\r\n" % (len(base64.b64encode(b"bob@example.org")),
                                   base64.b64encode(b"bob@example.org").decode()))
        assert base64.b64decode(c.line().strip(b'"')).lower().startswith(b"pass")
        c.send('"%s"\r\n' % base64.b64encode(b"secret").decode())
        lines, r = c.response()
        assert r.startswith("OK"), r
        lines, r = c.cmd("LISTSCRIPTS")
        assert r.startswith("OK"), r
        c.close()
        c = Client(s.msv)
        c.response()
        c.send('AUTHENTICATE "PLAIN"\r\n')
        c.line()
        lines, r = c.cmd('"*"')
        assert r.startswith("NO"), r
        # wrong passwords: each answered after a delay, then refused outright
        t0 = time.time()
        for i in range(3):
            lines, r = c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain("alice@example.org", "wrong"))
            assert r.startswith("NO"), r
        assert time.time() - t0 >= 1.0, time.time() - t0
        lines, r = c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain("alice@example.org"))
        assert r.startswith("NO (TRYLATER)"), r
        c.close()
        # commands before login are bounded
        c = Client(s.msv)
        c.response()
        r = ""
        for i in range(40):
            lines, r = c.cmd("CAPABILITY")
            if r.startswith("BYE"):
                break
        assert r.startswith("BYE") and c.closed(), r
        # a too large literal before login closes
        c = Client(s.msv)
        c.response()
        lines, r = c.cmd('AUTHENTICATE "PLAIN" {100000+}')
        assert r.startswith("BYE"), r
        c.close()
    finally:
        s.stop()


def test_managesieve_starttls():
    """managesieve: with AllowPlaintextAuth no, SASL is empty and AUTHENTICATE is NO (ENCRYPT-NEEDED) in the clear; after STARTTLS the capabilities come again, without STARTTLS, and AUTHENTICATE PLAIN works"""
    s = server("AllowPlaintextAuth no\n")
    try:
        c = Client(s.msv)
        caps, ok = c.response()
        assert b'"SASL" ""' in caps and b'"STARTTLS"' in caps, caps
        lines, r = c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain("alice@example.org"))
        assert r.startswith("NO (ENCRYPT-NEEDED)"), r
        lines, r = c.cmd("STARTTLS")
        assert r.startswith("OK"), r
        c.starttls()
        caps, ok = c.response()
        assert ok.startswith("OK"), ok
        assert b'"SASL" "PLAIN LOGIN"' in caps and b'"STARTTLS"' not in caps, caps
        lines, r = c.cmd('AUTHENTICATE "PLAIN" "%s"' % plain("alice@example.org"))
        assert r.startswith("OK"), r
        lines, r = c.cmd('PUTSCRIPT "t" "keep;"')
        assert r.startswith("OK"), r
        c.close()
    finally:
        s.stop()


def test_managesieve_filters_delivered_mail():
    """managesieve: a script put and activated over ManageSieve files mail that arrives by SMTP (seen over IMAP)"""
    import smtplib
    from test_webadmin import wait_for
    imap = free_port()
    s = server("EnableIMAP4 1\nIMAP4Port %d\n" % imap)
    try:
        c = login(s, "bob@example.org")
        lines, r = c.cmd('PUTSCRIPT "mine" ' + literal(FILTER))
        assert r.startswith("OK"), r
        lines, r = c.cmd('SETACTIVE "mine"')
        assert r.startswith("OK"), r
        c.close()
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=20) as m:
            m.sendmail("x@example.net", ["bob@example.org"], "Subject: Q3 report\r\n\r\nbody\r\n")
            m.sendmail("x@example.net", ["bob@example.org"], "Subject: hello\r\n\r\nbody\r\n")
        assert wait_for(lambda: len(imap_folder(imap, "bob@example.org", "INBOX")) == 1)
        assert wait_for(lambda: len(imap_folder(imap, "bob@example.org", "Reports")) == 1)
        assert "hello" in imap_folder(imap, "bob@example.org", "INBOX")[0][1]
    finally:
        s.stop()


def test_managesieve_sieve_connect():
    """managesieve: sieve-connect uploads, lists, activates, downloads and deletes a script"""
    if not shutil.which("sieve-connect"):
        raise Skip("sieve-connect not installed")
    s = server()
    try:
        d = s.dir
        src = os.path.join(d, "up.sieve")
        with open(src, "w") as f:
            f.write(FILTER)
        base = ["sieve-connect", "--server", "127.0.0.1", "--port", str(s.msv), "--user",
                "alice@example.org", "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN"]

        def run(*args):
            return subprocess.run(base + list(args), capture_output=True, text=True,
                                  timeout=60, input="secret\n")
        r = run("--upload", "--localsieve", src, "--remotesieve", "mine")
        assert r.returncode == 0, r.stderr
        r = run("--activate", "--remotesieve", "mine")
        assert r.returncode == 0, r.stderr
        r = run("--list")
        assert r.returncode == 0 and "mine" in r.stdout, (r.stdout, r.stderr)
        assert "ACTIVE" in r.stdout or "*" in r.stdout or "active" in r.stdout.lower(), r.stdout
        out = os.path.join(d, "down.sieve")
        r = run("--download", "--remotesieve", "mine", "--localsieve", out)
        assert r.returncode == 0, r.stderr
        got = open(out, "rb").read()
        assert got.replace(b"\r\n", b"\n") == FILTER.replace("\r\n", "\n").encode(), got
        r = run("--deactivate")
        assert r.returncode == 0, r.stderr
        r = run("--delete", "--remotesieve", "mine")
        assert r.returncode == 0, r.stderr
        assert "mine" not in run("--list").stdout
    finally:
        s.stop()
