"""DNSBL: clients on the SMTP port listed by a blocklist (RFC 5782) are refused
before the greeting; a fake DNS server on 127.0.0.1 plays the lists."""
import smtplib
import subprocess
import time

from harness import BIN, Server, free_port, wait_port
from test_lua import connect, read_all
from test_outbound import FakeDNS

ZONE = """
2.0.0.127.bl.test. 60 IN A 127.0.0.2
3.0.0.127.bl.test. 60 IN A 127.255.255.254
1.0.0.127.bl.test. 60 IN A 127.0.0.2
5.0.0.127.other.test. 60 IN A 127.0.0.10
"""


def greeting(port, src, early=b""):
    sock = connect(port, src)
    if early:
        sock.sendall(early)
    line = sock.recv(4096)
    sock.close()
    return line


def test_listed_clients_are_refused_before_the_greeting():
    """dnsbl: a listed client gets 554 and is closed, early talk included; 127.255.255.x, unlisted and local clients are served; submission is not checked"""
    dns = FakeDNS(ZONE)
    sub = free_port()
    s = Server(conf="DNSServer 127.0.0.1:%d\nDNSBL other.test, bl.test\n"
                    "EnableSubmission 1\nSubmissionPort %d" % (dns.port, sub)).start()
    try:
        sock = connect(s.smtp_port, "127.0.0.2")
        sock.sendall(b"EHLO early.test\r\n")  # before the greeting: never answered
        got = read_all(sock)
        sock.close()
        assert got == b"554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test\r\n", got
        got = greeting(s.smtp_port, "127.0.0.5")
        assert got.startswith(b"554 ") and b"other.test" in got, got  # the second list
        for src in ("127.0.0.3", "127.0.0.4", "127.0.0.1"):
            assert greeting(s.smtp_port, src).startswith(b"220 "), src
        assert wait_port(sub)
        assert greeting(sub, "127.0.0.2").startswith(b"220 ")
        # an unlisted client goes on to deliver, early talk answered after the greeting
        sock = connect(s.smtp_port, "127.0.0.4")
        sock.sendall(b"EHLO early.test\r\n")
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        assert f.readline().startswith(b"250-")
        f.close()
        sock.close()
        with smtplib.SMTP(timeout=10, source_address=("127.0.0.3", 0)) as c:
            c.connect("127.0.0.1", s.smtp_port)
            c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: ok\r\n\r\nhi\r\n")
        assert len(s.messages("alice@example.org")) == 1
        log = s.stderr()
        assert ("smtp result=refused client=127.0.0.2 code=554 status=5.7.1 cmd=connect" in log
                and "blocked using bl.test" in log), log
    finally:
        s.stop()
        dns.stop()


def test_a_dead_dns_lists_nobody():
    """dnsbl: when the lists cannot be asked the client is served (fail open)"""
    s = Server(conf="DNSServer 127.0.0.1:%d\nDNSBL bl.test" % free_port()).start()
    t0 = time.time()
    assert greeting(s.smtp_port, "127.0.0.2").startswith(b"220 ")
    assert time.time() - t0 < 10
    assert s.stop() == 0


def test_a_bad_zone_is_a_configuration_error():
    """dnsbl: a DNSBL value that is not a list of domain names stops the start with a clear error"""
    s = Server()
    with open(s.conf, "a") as f:
        f.write("DNSBL good.test bl..test\n")
    r = subprocess.run([BIN, "-c", s.conf], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r
    assert "DNSBL: not a domain name: bl..test" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
