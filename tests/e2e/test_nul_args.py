"""A NUL inside an argument must not cut it short: IMAP literals (plain and
literal8), AUTHENTICATE PLAIN, POP3 USER/PASS and SMTP AUTH are refused
rather than read up to the NUL."""
import base64
import socket

from harness import SMTPRaw, wait_port
from test_imap import Raw, imap_server


def b64(b):
    return base64.b64encode(b)


def server():
    s = imap_server("AllowPlaintextAuth yes")
    assert wait_port(s.pop3_port)
    return s


def literal_login(c, tag, pw, mark=b""):
    """LOGIN alice with the password as a (mark-prefixed) synchronizing literal."""
    c.send(tag + b" LOGIN alice@example.org " + mark + b"{%d}\r\n" % len(pw))
    cont = c.line()
    if not cont.startswith(b"+"):
        return [cont]
    c.send(pw + b"\r\n")
    return c.until(tag)


def test_imap_login_with_nul_in_a_literal_password_fails():
    """nul: IMAP LOGIN alice "secret\\0junk" as a literal or literal8 is BAD, never logged in"""
    s = server()
    c = Raw(s.imap_port)
    out = literal_login(c, b"a1", b"secret\0junk")
    assert out[-1].startswith(b"a1 BAD"), out
    out = literal_login(c, b"a2", b"secret\0junk", mark=b"~")
    assert out[-1].startswith(b"a2 BAD"), out
    out = literal_login(c, b"a4", b"secret", mark=b"~")  # a literal8 is not an astring
    assert out[-1].startswith(b"a4 BAD"), out
    out = literal_login(c, b"a5", b"secret")
    assert out[-1].startswith(b"a5 OK"), out
    # APPEND's message may hold a NUL in a literal8 (RFC 3516)
    c.send(b"a6 APPEND INBOX ~{9}\r\n")
    assert c.line().startswith(b"+")
    c.send(b"Subject\0x\r\n")
    assert c.until(b"a6")[-1].startswith(b"a6 OK")
    # a SETMETADATA value may be a literal8, its mailbox and entry names may not
    c.send(b"a7 SETMETADATA INBOX (/private/comment ~{3}\r\n")
    assert c.line().startswith(b"+")
    c.send(b"a\0b)\r\n")
    assert c.until(b"a7")[-1].startswith(b"a7 OK")
    out = c.cmd(b"a8", b"SETMETADATA ~{7}")
    assert out[-1].startswith(b"a8 BAD"), out
    out = c.cmd(b"a9", b"SETMETADATA INBOX (~{18}")
    assert out[-1].startswith(b"a9 BAD"), out
    c.sock.close()
    assert s.stop() == 0


def test_imap_authenticate_plain_with_a_nul_in_a_field_fails():
    """nul: IMAP AUTHENTICATE PLAIN with "secret\\0junk" as the password is refused"""
    s = server()
    c = Raw(s.imap_port)
    out = c.cmd(b"a1", b"AUTHENTICATE PLAIN " + b64(b"\0alice@example.org\0secret\0junk"))
    assert not out[-1].startswith(b"a1 OK"), out
    out = c.cmd(b"a2", b"AUTHENTICATE PLAIN " + b64(b"\0alice@example.org\0secret"))
    assert out[-1].startswith(b"a2 OK"), out
    c.sock.close()
    assert s.stop() == 0


def pop3_cmd(sock, f, line):
    sock.sendall(line + b"\r\n")
    return f.readline()


def test_pop3_user_and_pass_with_a_nul_fail():
    """nul: POP3 PASS secret\\0junk and USER alice\\0junk are refused"""
    s = server()
    sock = socket.create_connection(("127.0.0.1", s.pop3_port), timeout=15)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    r = pop3_cmd(sock, f, b"USER alice@example.org")
    if r.startswith(b"+OK"):
        assert pop3_cmd(sock, f, b"PASS secret\0junk").startswith(b"-ERR")
    r = pop3_cmd(sock, f, b"USER alice@example.org\0junk")
    if r.startswith(b"+OK"):
        assert pop3_cmd(sock, f, b"PASS secret").startswith(b"-ERR")
    assert pop3_cmd(sock, f, b"USER alice@example.org").startswith(b"+OK")
    assert pop3_cmd(sock, f, b"PASS secret").startswith(b"+OK")
    f.close()
    sock.close()
    assert s.stop() == 0


def test_smtp_auth_with_a_nul_in_a_field_fails():
    """nul: SMTP AUTH PLAIN/LOGIN with "secret\\0junk" is refused, never 235"""
    s = server()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    code, _ = c.cmd("AUTH PLAIN " + b64(b"\0alice@example.org\0secret\0junk").decode())
    assert code != 235
    assert c.cmd("AUTH LOGIN")[0] == 334
    assert c.cmd(b64(b"alice@example.org").decode())[0] == 334
    assert c.cmd(b64(b"secret\0junk").decode())[0] != 235
    assert c.cmd("AUTH LOGIN")[0] == 334
    if c.cmd(b64(b"alice@example.org\0junk").decode())[0] == 334:
        assert c.cmd(b64(b"secret").decode())[0] != 235
    assert c.cmd("AUTH PLAIN " + b64(b"\0alice@example.org\0secret").decode())[0] == 235
    c.close()
    assert s.stop() == 0
