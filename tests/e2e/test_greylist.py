"""Greylisting on the SMTP port: a new (network, sender, recipient) gets 451
until it retries after GreylistDelay; local and authenticated clients are
not greylisted; what passed is remembered across a restart."""
import re
import smtplib
import ssl
import time

from harness import Server, SMTPRaw


def raw_from(port, src):
    """An SMTPRaw whose connection comes from src (127.0.0.2 plays a remote client)."""
    import socket
    r = SMTPRaw.__new__(SMTPRaw)
    r.sock = socket.socket()
    r.sock.settimeout(15)
    r.sock.bind((src, 0))
    r.sock.connect(("127.0.0.1", port))
    r.buf = b""
    r.greeting = r.reply()
    return r


def attempt(s, src, sender="x@remote.test", rcpt="alice@example.org"):
    r = raw_from(s.smtp_port, src)
    assert r.cmd("EHLO client.test")[0] == 250
    assert r.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    code, text = r.cmd("RCPT TO:<%s>" % rcpt)
    if code == 250:
        assert r.cmd("DATA")[0] == 354
        r.send(b"Subject: grey\r\n\r\nhello\r\n.\r\n")
        assert r.reply()[0] == 250
    r.cmd("QUIT")
    r.close()
    return code, text


def test_greylisting_defers_new_triplets_once():
    """greylist: 451 first and when too early, 250 after GreylistDelay; another sender waits again; local and AUTH clients pass; kept across a restart"""
    s = Server(conf="Greylist 1\nGreylistDelay 2").start()
    code, text = attempt(s, "127.0.0.2")
    assert code == 451 and "Greylisted" in text, (code, text)
    assert attempt(s, "127.0.0.3")[0] == 451  # the same /24, too early
    time.sleep(2.2)
    assert attempt(s, "127.0.0.3")[0] == 250  # retried from the same network: passes
    assert attempt(s, "127.0.0.2")[0] == 250  # and is remembered
    assert attempt(s, "127.0.0.2", sender="y@remote.test")[0] == 451
    assert attempt(s, "127.0.0.1", sender="z@remote.test")[0] == 250  # this host
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP(timeout=15, source_address=("127.0.0.2", 0)) as c:  # logged in
        c.connect("127.0.0.1", s.smtp_port)
        c._host = "localhost"  # smtplib names the TLS server after connect()'s host
        c.starttls(context=ctx)
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["alice@example.org"], b"Subject: auth\r\n\r\nhi\r\n")
    assert len(s.messages("alice@example.org")) == 4
    assert re.search(r"smtp result=refused client=127\.0\.0\.2 code=451 status=4\.7\.1 cmd=rcpt "
                     r"user=none helo=client\.test from=<x@remote\.test> to=<alice@example\.org> "
                     r'reason="[^"]*Greylisted', s.stderr())
    assert s.stop() == 0
    s.start()  # what passed is still known
    assert attempt(s, "127.0.0.2")[0] == 250
    assert attempt(s, "127.0.0.2", sender="q@remote.test")[0] == 451
    assert s.stop() == 0


def test_greylisting_is_off_by_default():
    """greylist: without Greylist 1 a new remote sender is let in at once"""
    s = Server().start()
    assert attempt(s, "127.0.0.2")[0] == 250
    assert s.stop() == 0
