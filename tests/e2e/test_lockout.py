"""Failed-login lockout: failures are counted per client address and per
login name, independently, so a success on a known account resets neither."""
import base64
import socket

from harness import Server, free_port, wait_port

USERS = ("alice@example.org", "bob@example.org")


def server(conf=""):
    imap, pop = free_port(), free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d\n"
               "AllowPlaintextAuth yes\nLoginAttempts 3\nQuarantine 60\n%s" % (imap, pop, conf),
               users=USERS)
    s.start()
    s.ports = {"smtp": s.smtp_port, "imap": imap, "pop3": pop}
    assert wait_port(imap) and wait_port(pop)
    return s


def connect(port, source):
    sock = socket.socket()
    sock.settimeout(20)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock, sock.makefile("rb")


def reply(f, done):
    for _ in range(50):
        line = f.readline()
        assert line, "connection closed"
        if done(line):
            return line
    raise AssertionError("no final reply")


def login(s, proto, user, pw, source):
    """'ok', 'fail' or 'blocked' for one login over proto from source."""
    sock, f = connect(s.ports[proto], source)
    try:
        f.readline()
        if proto == "imap":
            sock.sendall(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), pw.encode()))
            line = reply(f, lambda l: l.startswith(b"a "))
            if line.startswith(b"a OK"):
                return "ok"
            return "blocked" if b"UNAVAILABLE" in line else "fail"
        if proto == "pop3":
            sock.sendall(b"USER %s\r\n" % user.encode())
            assert f.readline().startswith(b"+OK")
            sock.sendall(b"PASS %s\r\n" % pw.encode())
            line = f.readline()
            if line.startswith(b"+OK"):
                return "ok"
            return "blocked" if b"Too many" in line else "fail"
        sock.sendall(b"EHLO client.test\r\n")
        reply(f, lambda l: l[3:4] == b" ")
        token = base64.b64encode(b"\0%s\0%s" % (user.encode(), pw.encode()))
        sock.sendall(b"AUTH PLAIN %s\r\n" % token)
        code = reply(f, lambda l: l[3:4] == b" ")[:3]
        return {b"235": "ok", b"535": "fail", b"454": "blocked"}[code]
    finally:
        f.close()
        sock.close()


def alternate(proto, source):
    s = server()
    assert login(s, proto, "bob@example.org", "guess1", source) == "fail"
    assert login(s, proto, "bob@example.org", "guess2", source) == "fail"
    assert login(s, proto, "alice@example.org", "secret", source) == "ok"
    assert login(s, proto, "bob@example.org", "guess3", source) == "fail"
    # three failures from this address: alice's own success did not wipe them
    assert login(s, proto, "alice@example.org", "secret", source) == "blocked"
    # another address is not shut out
    assert login(s, proto, "alice@example.org", "secret", "127.0.0.1") == "ok"
    assert s.stop() == 0


def test_smtp_auth_success_does_not_reset_other_failures():
    """lockout: SMTP AUTH, a success on alice between guesses at bob leaves the address's count"""
    alternate("smtp", "127.0.0.2")


def test_pop3_success_does_not_reset_other_failures():
    """lockout: POP3, a success on alice between guesses at bob leaves the address's count"""
    alternate("pop3", "127.0.0.3")


def test_imap_success_does_not_reset_other_failures():
    """lockout: IMAP, a success on alice between guesses at bob leaves the address's count"""
    alternate("imap", "127.0.0.4")


def test_a_success_forgives_that_accounts_own_typos():
    """lockout: a user's mistyped passwords are forgiven by their own success, not the address's other failures"""
    s = server()
    src = "127.0.0.5"
    assert login(s, "imap", "bob@example.org", "guess", src) == "fail"
    assert login(s, "imap", "alice@example.org", "typo", src) == "fail"
    assert login(s, "imap", "alice@example.org", "secret", src) == "ok"
    assert login(s, "imap", "alice@example.org", "typo", src) == "fail"
    assert login(s, "imap", "alice@example.org", "secret", src) == "ok"  # 2 counted, not 3
    assert s.stop() == 0


def test_an_account_guessed_from_many_addresses_is_shut_out():
    """lockout: AccountLoginAttempts failures on one name from any addresses shut that name out"""
    s = server("AccountLoginAttempts 4")
    for src in ("127.0.0.6", "127.0.0.7"):
        assert login(s, "imap", "bob@example.org", "guess1", src) == "fail"
        assert login(s, "pop3", "bob@example.org", "guess2", src) == "fail"
    assert login(s, "smtp", "bob@example.org", "secret", "127.0.0.8") == "blocked"
    assert login(s, "imap", "bob@example.org", "secret", "127.0.0.8") == "blocked"
    assert login(s, "imap", "alice@example.org", "secret", "127.0.0.8") == "ok"
    assert s.stop() == 0
