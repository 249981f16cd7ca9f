"""RFC 5321 4.5.1: "postmaster" without a domain and postmaster@ every local
domain are accepted and delivered to the Postmaster account (by default the
first WebAdmin address, else the first account of the first domain)."""
import smtplib

from harness import Server

MSG = b"From: someone@remote.test\r\nSubject: to the postmaster\r\n\r\nhello\r\n"


def send(s, rcpts):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=15) as c:
        c.ehlo("client.test")
        assert c.docmd("MAIL FROM:<someone@remote.test>")[0] == 250
        for r in rcpts:
            code, text = c.docmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        code, text = c.data(MSG)
        assert code == 250, (code, text)


def test_postmaster_goes_to_the_first_account_by_default():
    """postmaster: <postmaster> and postmaster@ each local domain reach the first account of the first domain"""
    s = Server(domains=("example.org", "example.net"),
               users=("alice@example.org", "bob@example.org")).start()
    send(s, ["postmaster"])
    send(s, ["PostMaster@example.org"])
    send(s, ["postmaster@example.net"])
    assert len(s.messages("alice@example.org")) == 3
    assert len(s.messages("bob@example.org")) == 0
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=15) as c:
        c.ehlo("client.test")
        assert c.docmd("MAIL FROM:<postmaster>")[0] == 501  # only RCPT takes it bare
        assert c.docmd("MAIL FROM:<someone@remote.test>")[0] == 250
        assert c.docmd("RCPT TO:<nobody@example.org>")[0] == 550
        assert c.docmd("RCPT TO:<webmaster>")[0] == 501
    assert s.stop() == 0


def test_postmaster_goes_to_the_first_webadmin_or_the_directive():
    """postmaster: the first WebAdmin address takes it, and Postmaster ADDRESS overrides"""
    users = ("alice@example.org", "bob@example.org", "carol@example.org")
    s = Server(conf="WebAdmin bob@example.org alice@example.org", users=users).start()
    send(s, ["postmaster", "postmaster@example.org"])
    assert len(s.messages("bob@example.org")) == 1  # one copy per mailbox
    assert s.stop() == 0
    s = Server(conf="WebAdmin bob@example.org\nPostmaster carol@example.org", users=users).start()
    send(s, ["postmaster"])
    assert len(s.messages("carol@example.org")) == 1
    assert len(s.messages("bob@example.org")) == 0
    assert s.stop() == 0


def test_a_postmaster_account_of_its_own_keeps_its_mail():
    """postmaster: an account named postmaster receives its own domain's postmaster mail"""
    s = Server(users=("alice@example.org", "postmaster@example.org")).start()
    send(s, ["postmaster@example.org"])
    assert len(s.messages("postmaster@example.org")) == 1
    send(s, ["postmaster"])
    assert len(s.messages("alice@example.org")) == 1
    assert s.stop() == 0
