"""Slow clients: a byte every so often does not keep a connection. A line
(or an IMAP literal's next 4 KB) must arrive within LineTimeout, a session
without login ends after LoginTimeout (on port 25: after it since the last
message taken), the web admin's request must be in within LineTimeout;
logged-in sessions, IDLE and literals sent at a fair pace are not hurt."""
import socket
import time

from harness import SMTPRaw, Server, free_port, wait_port

SHORT = "LineTimeout 2\nLoginTimeout 4\nIdleTimeout 60\n"


def server(extra=""):
    imap, pop, web = free_port(), free_port(), free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d\n"
               "EnableWebAdmin 1\nWebAdminPort %d\nWebAdmin alice@example.org\n"
               "AllowPlaintextAuth yes\n%s%s" % (imap, pop, web, SHORT, extra))
    s.start()
    s.ports = {"smtp": s.smtp_port, "imap": imap, "pop3": pop, "web": web}
    assert wait_port(imap) and wait_port(pop) and wait_port(web)
    return s


def connect(s, proto):
    sock = socket.create_connection(("127.0.0.1", s.ports[proto]), timeout=10)
    if proto != "web":
        sock.recv(4096)  # the greeting
    return sock


def trickle(sock, data, gap, limit):
    """Sends data a byte at a time, gap seconds apart, for at most limit
    seconds; returns the seconds until the server closed, None if it did not."""
    start = time.time()
    for b in data[: int(limit / gap)]:
        try:
            sock.sendall(bytes([b]))
        except OSError:
            return time.time() - start
        time.sleep(gap)
        if closed_now(sock):
            return time.time() - start
    return None


def closed_now(sock):
    sock.setblocking(False)
    try:
        while True:
            d = sock.recv(4096)
            if not d:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def chat(sock, line, gap, limit):
    """Sends whole lines every gap seconds for at most limit seconds; the
    seconds until the server closed, None if it did not."""
    start = time.time()
    while time.time() - start < limit:
        try:
            sock.sendall(line)
        except OSError:
            return time.time() - start
        time.sleep(gap)
        if closed_now(sock):
            return time.time() - start
    return None


def test_a_line_sent_a_byte_at_a_time_ends_the_session_on_every_port():
    """LineTimeout: one command line sent too slowly closes SMTP, POP3 and IMAP sessions"""
    s = server("LoginTimeout 600\n")
    try:
        for proto in ("smtp", "pop3", "imap"):
            sock = connect(s, proto)
            took = trickle(sock, b"a NOOP and some more text to send slowly" * 4, 0.4, 10)
            assert took is not None and took < 6, (proto, took)
            sock.close()
        assert "line timeout" in s.stderr()
    finally:
        assert s.stop() == 0


def test_sessions_without_login_end_after_login_timeout():
    """LoginTimeout: whole commands keep no session without login, on any port"""
    s = server()
    try:
        for proto, line in (("smtp", b"NOOP\r\n"), ("pop3", b"CAPA\r\n"), ("imap", b"a NOOP\r\n")):
            sock = connect(s, proto)
            took = chat(sock, line, 0.5, 12)
            assert took is not None and 3 < took < 9, (proto, took)
            sock.close()
        assert "login timeout" in s.stderr()
    finally:
        assert s.stop() == 0


def test_logged_in_sessions_and_idle_are_not_cut():
    """After login neither LoginTimeout nor LineTimeout cuts a quiet session or IDLE"""
    s = server()
    try:
        pop = connect(s, "pop3")
        pop.sendall(b"USER alice@example.org\r\nPASS secret\r\n")
        imap = connect(s, "imap")
        imap.sendall(b"a LOGIN alice@example.org secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
        smtp = SMTPRaw(s.smtp_port)
        assert smtp.cmd("EHLO a.example")[0] == 250
        assert smtp.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==")[0] == 235
        time.sleep(6)  # past LoginTimeout and LineTimeout
        imap.sendall(b"DONE\r\nd NOOP\r\n")
        pop.sendall(b"NOOP\r\n")
        assert smtp.cmd("NOOP")[0] == 250
        for sock, end in ((imap, b"d OK"), (pop, b"+OK")):
            data = b""
            for _ in range(50):
                chunk = sock.recv(4096)
                assert chunk, data
                data += chunk
                if end in data.split(b"\r\n")[-2]:
                    break
            assert b"c OK" in data or sock is pop, data
    finally:
        assert s.stop() == 0


def test_port_25_delivery_restarts_the_login_timeout():
    """On port 25 each message taken gives the session LoginTimeout again"""
    s = server()
    try:
        c = SMTPRaw(s.smtp_port)
        assert c.cmd("EHLO a.example")[0] == 250
        for i in range(3):  # 3 x 2.5 s: longer than LoginTimeout in all
            time.sleep(2.5)
            assert c.cmd("MAIL FROM:<x@a.example>")[0] == 250
            assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            assert c.cmd("Subject: %d\r\n\r\nhi\r\n." % i)[0] == 250
        assert c.cmd("QUIT")[0] == 221
    finally:
        assert s.stop() == 0


def test_a_literal_must_move_but_may_take_long():
    """An APPEND literal at a fair pace outlives LineTimeout; one trickled a byte at a time ends"""
    s = server()
    try:
        imap = connect(s, "imap")
        imap.sendall(b"a LOGIN alice@example.org secret\r\n")
        assert b"a OK" in imap.recv(4096)
        body = (b"Subject: slow\r\n\r\n" + b"x" * 70 + b"\r\n") * 300  # 21 KB
        imap.sendall(b"b APPEND INBOX {%d+}\r\n" % len(body))
        for i in range(0, len(body), 4096):  # 4 KB a second: 6 s in all
            imap.sendall(body[i:i + 4096])
            time.sleep(1)
        imap.sendall(b"\r\n")
        data = b""
        for _ in range(20):
            data += imap.recv(4096)
            if b"b " in data:
                break
        assert b"b OK" in data, data
        imap.sendall(b"c APPEND INBOX {100+}\r\n")
        took = trickle(imap, b"y" * 100, 0.3, 12)
        assert took is not None and took < 9, took
    finally:
        assert s.stop() == 0


def test_web_admin_request_must_arrive_in_time():
    """The web admin closes a request that trickles in; a whole one is answered"""
    s = server("IdleTimeout 300\n")
    try:
        sock = connect(s, "web")
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 30 + b"\r\n"
        took = trickle(sock, head, 0.2, 10)
        assert took is not None and took < 6, took
        sock = connect(s, "web")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 ")
    finally:
        assert s.stop() == 0
