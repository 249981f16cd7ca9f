"""SMTP AUTH, relaying for authenticated users, submission, failed-login throttling."""
import base64
import os
import smtplib
import socket
import time

from harness import Server, SMTPRaw, free_port


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_auth_plain_and_login_then_relay():
    """auth: AUTH PLAIN and LOGIN work from loopback and an authenticated user may relay"""
    # a DNS server that does not answer: remote mail waits in the queue
    s = Server(conf="DNSServer 127.0.0.1:%d" % free_port()).start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.ehlo("client.test")
        assert "auth" in c.esmtp_features and "PLAIN" in c.esmtp_features["auth"]
        c.login("alice@example.org", "secret")  # smtplib picks PLAIN
        c.sendmail("alice@example.org", ["someone@remote.test"], b"Subject: out\r\n\r\nx\r\n")
        code, _ = c.docmd("AUTH PLAIN " + b64("\0alice@example.org\0secret"))
        assert code == 503
    raw = SMTPRaw(s.smtp_port)
    assert raw.cmd("EHLO client.test")[0] == 250
    assert raw.cmd("AUTH LOGIN")[0] == 334
    assert raw.cmd(b64("alice"))[0] == 334  # bare name: the server has one domain
    assert raw.cmd(b64("secret"))[0] == 235
    assert raw.cmd("MAIL FROM:<alice@example.org>")[0] == 250
    assert raw.cmd("RCPT TO:<bob@remote.test>")[0] == 250
    raw.close()
    import os
    queued = [n for n in os.listdir(os.path.join(s.storage, "queue")) if n.endswith(".env")]
    assert len(queued) == 1  # waits for the MX lookup to succeed
    assert s.stop() == 0


def test_wrong_passwords_are_refused_slowly_then_locked_out():
    """auth: a wrong password gets 535 after a delay; LoginAttempts failures lock the address out"""
    s = Server(conf="LoginAttempts 3\nQuarantine 60").start()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    t0 = time.time()
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0wrong"))[0] == 535
    assert time.time() - t0 >= 0.2
    assert c.cmd("AUTH PLAIN " + b64("\0nobody@example.org\0x"))[0] == 535
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0bad"))[0] == 535
    code, text = c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0secret"))
    assert code == 454, (code, text)  # right password, but the address is shut out
    c.close()
    assert s.stop() == 0


def test_auth_needs_tls_off_loopback_and_sender_must_match():
    """auth: from another address AUTH needs TLS (538); an authenticated sender must be the user's"""
    s = Server(users=("alice@example.org", "bob@example.org")).start()
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.connect(("127.0.0.1", s.smtp_port))
    f = sock.makefile("rb")
    assert f.readline().startswith(b"220")
    sock.sendall(b"EHLO client.test\r\n")
    ehlo = b""
    while True:
        line = f.readline()
        ehlo += line
        if line[3:4] == b" ":
            break
    assert b"AUTH" not in ehlo
    sock.sendall(("AUTH PLAIN %s\r\n" % b64("\0alice@example.org\0secret")).encode())
    assert f.readline().startswith(b"538 5.7.11")
    f.close()
    sock.close()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.login("alice@example.org", "secret")
        assert c.docmd("MAIL FROM:<bob@example.org>")[0] == 553
        assert c.docmd("MAIL FROM:<alice@example.org>")[0] == 250
        c.rset()
        assert c.docmd("MAIL FROM:<>")[0] == 250
    assert s.stop() == 0


def test_submission_port_requires_auth():
    """auth: the submission port refuses MAIL before AUTH and takes it after"""
    port = free_port()
    s = Server(conf="EnableSubmission 1\nSubmissionPort %d" % port).start()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.docmd("MAIL FROM:<alice@example.org>")[0] == 530
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["alice@example.org"], b"Subject: self\r\n\r\nx\r\n")
    assert len(s.messages("alice@example.org")) == 1
    assert s.stop() == 0


def test_blocked_outgoing_mail_refuses_relay_even_when_authenticated():
    """auth: BlockOutgoingMail refuses remote recipients even for authenticated users"""
    s = Server(conf="BlockOutgoingMail 1").start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.login("alice@example.org", "secret")
        c.docmd("MAIL FROM:<alice@example.org>")
        assert c.docmd("RCPT TO:<x@remote.test>")[0] == 554
        assert c.docmd("RCPT TO:<alice@example.org>")[0] == 250
    assert s.stop() == 0


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_client_gone_during_the_failure_delay_costs_no_cpu():
    """auth: a client that hangs up while its failed login is delayed leaves the server idle"""
    s = Server(conf="LoginAttempts 100").start()
    for _ in range(3):  # the delay grows
        c = SMTPRaw(s.smtp_port)
        c.cmd("EHLO client.test")
        c.cmd("AUTH PLAIN " + b64("\0alice@example.org\0wrong"))
        c.close()
    c = SMTPRaw(s.smtp_port)
    c.cmd("EHLO client.test")
    c.send(("AUTH PLAIN %s\r\n" % b64("\0alice@example.org\0wrong")).encode())
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # reset: both directions gone while the answer waits
    t0 = cpu_seconds(s.proc.pid)
    time.sleep(1.5)
    used = cpu_seconds(s.proc.pid) - t0
    assert used < 0.3, "server burned %.2f s of CPU while waiting" % used
    assert s.stop() == 0


def test_smtp_auth_does_not_hold_up_the_worker():
    """auth: SMTP AUTH checks passwords off the worker: with one worker a NOOP is answered while 24 logins hash"""
    s = Server(conf="Workers 1").start()
    conns = []
    try:
        for _ in range(25):
            c = SMTPRaw(s.smtp_port, timeout=30)
            assert c.cmd("EHLO client.test")[0] == 250
            conns.append(c)
        quiet, logins = conns[0], conns[1:]
        t0 = time.time()
        for c in logins:
            c.send(("AUTH PLAIN " + b64("\0alice@example.org\0secret") + "\r\n").encode())
        assert quiet.cmd("NOOP")[0] == 250
        noop = time.time() - t0
        for c in logins:
            assert c.reply()[0] == 235
        total = time.time() - t0
        assert noop < total / 3, (noop, total)  # on the worker it waits for every hash
    finally:
        for c in conns:
            c.close()
    assert s.stop() == 0


def test_a_new_password_takes_effect_at_once_despite_the_login_cache():
    """AuthCacheTime: after logins with the old password are remembered, "rumble user passwd" makes it fail at once and the new one pass, on IMAP and POP3"""
    import imaplib
    import poplib
    port, pop = free_port(), free_port()
    s = Server(conf="EnableIMAP4 1\nIMAP4Port %d\nEnablePOP3 1\nPOP3Port %d\n" % (port, pop))
    s.start()
    try:
        def imap_ok(pw):
            m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            try:
                m.login("alice@example.org", pw)
                return True
            except imaplib.IMAP4.error:
                return False
            finally:
                m.shutdown()

        def pop_ok(pw):
            p = poplib.POP3("127.0.0.1", pop, timeout=30)
            try:
                p.user("alice@example.org")
                p.pass_(pw)
                return True
            except poplib.error_proto:
                return False
            finally:
                p.close()

        for _ in range(3):
            assert imap_ok("secret") and pop_ok("secret")  # remembered now
        s.cli("user", "passwd", "alice@example.org", input="changed\n")
        end = time.time() + 10  # the server sees the account file change
        while time.time() < end and imap_ok("secret"):
            time.sleep(0.2)
        assert not imap_ok("secret") and not pop_ok("secret"), "the old password still works"
        assert imap_ok("changed") and pop_ok("changed")
        assert not imap_ok("Changed")  # a wrong one is never cached as right
    finally:
        assert s.stop() == 0
