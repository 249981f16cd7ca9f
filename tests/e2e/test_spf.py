"""SPF (RFC 7208) on the SMTP port: a fake DNS on 127.0.0.1 publishes the
records; the client comes from 127.0.0.2; each message gets a Received-SPF
field with check_host()'s result, and SPFReject refuses a fail."""
from harness import Server
from test_lua import connect
from test_outbound import FakeDNS

ZONE = """
remote.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"
other.test. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
soft.test. 60 IN TXT "v=spf1 ~all"
inc.test. 60 IN TXT "v=spf1 include:remote.test -all"
a.test. 60 IN TXT "v=spf1 a/8 -all"
a.test. 60 IN A 127.9.9.9
mx.test. 60 IN TXT "v=spf1 mx -all"
mx.test. 60 IN MX 10 mail.mx.test.
mail.mx.test. 60 IN A 127.0.0.2
redir.test. 60 IN TXT "v=spf1 redirect=remote.test"
two.test. 60 IN TXT "v=spf1 -all"
two.test. 60 IN TXT "v=spf1 +all"
macro.test. 60 IN TXT "v=spf1 exists:%{i}.ok.%{d} -all"
127.0.0.2.ok.macro.test. 60 IN A 127.0.0.1
loop.test. 60 IN TXT "v=spf1 include:loop.test -all"
helo.test. 60 IN TXT "v=spf1 ip4:127.0.0.2 -all"
"""


def transaction(s, sender, helo="client.test"):
    """One message from 127.0.0.2; the MAIL reply and the Received-SPF line."""
    sock = connect(s.smtp_port, "127.0.0.2")
    f = sock.makefile("rb")
    try:
        f.readline()
        sock.sendall(b"HELO %s\r\nMAIL FROM:<%s>\r\n" % (helo.encode(), sender.encode()))
        f.readline()
        mail = f.readline().decode()
        if not mail.startswith("250"):
            return mail, None
        before = len(s.messages("alice@example.org"))
        sock.sendall(b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
        assert f.readline().startswith(b"250") and f.readline().startswith(b"354")
        sock.sendall(b"Subject: spf\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        assert f.readline().startswith(b"250")
        msgs = s.messages("alice@example.org")
        assert len(msgs) == before + 1
        got = [l for l in msgs[-1].decode().split("\n") if l.startswith("Received-SPF:")]
        return mail, got[0] if got else None
    finally:
        f.close()
        sock.close()


def test_received_spf_gives_check_host_results():
    """spf: pass, fail, softfail, include, a/cidr, mx, redirect, macros, two records, a loop, the null sender by HELO"""
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nSPFCheck 1" % dns.port).start()
    try:
        want = {"x@remote.test": "pass", "x@other.test": "fail", "x@soft.test": "softfail",
                "x@inc.test": "pass", "x@a.test": "pass", "x@mx.test": "pass",
                "x@redir.test": "pass", "x@two.test": "permerror", "x@macro.test": "pass",
                "x@loop.test": "permerror", "x@none.test": "none"}
        for sender, result in want.items():
            mail, spf = transaction(s, sender)
            assert mail.startswith("250"), (sender, mail)
            assert spf and spf.startswith("Received-SPF: %s (" % result), (sender, spf)
        mail, spf = transaction(s, "", helo="helo.test")  # a bounce: its HELO name
        assert spf.startswith("Received-SPF: pass ("), spf
        assert "client-ip=127.0.0.2" in s.messages("alice@example.org")[0].decode()
        assert "smtp spf=fail from=<x@other.test> client=127.0.0.2" in s.stderr()
    finally:
        s.stop()
        dns.stop()


def test_spf_reject_refuses_a_fail_only():
    """spf: SPFReject 1 answers MAIL with 550 5.7.23 on fail; softfail and pass go on"""
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nSPFCheck 1\nSPFReject 1" % dns.port).start()
    try:
        mail, _ = transaction(s, "x@other.test")
        assert mail.startswith("550 5.7.23"), mail
        assert transaction(s, "x@soft.test")[0].startswith("250")
        assert transaction(s, "x@remote.test")[0].startswith("250")
    finally:
        s.stop()
        dns.stop()


def test_spf_is_off_by_default():
    """spf: without SPFCheck no Received-SPF is added"""
    s = Server().start()
    mail, spf = transaction(s, "x@remote.test")
    assert mail.startswith("250") and spf is None
    assert s.stop() == 0


def test_vpop3_domailfrom_gets_the_spf_result():
    """spf: an SMTPScript's DoMAILFROM gets the result as its SPF Result argument"""
    import os
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nSPFCheck 1\nSMTPScript @SCRIPT@" % dns.port)
    path = os.path.join(s.dir, "SMTPSVR.LUA")
    with open(path, "w") as f:
        f.write('function DoMAILFROM(data, from, params, spf, auth)\n'
                '  if spf == "softfail" then return params, "550 5.7.1 spf said " .. spf end\n'
                '  return params, ""\nend\n')
    with open(s.conf) as f:
        c = f.read().replace("@SCRIPT@", path)
    with open(s.conf, "w") as f:
        f.write(c)
    s.start()
    try:
        assert transaction(s, "x@soft.test")[0].startswith("550 5.7.1 spf said softfail")
        assert transaction(s, "x@remote.test")[0].startswith("250")
    finally:
        s.stop()
        dns.stop()
