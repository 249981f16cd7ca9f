"""Outbound delivery: MX lookup against a fake DNS server (dnslib), SMTP sinks
(aiosmtpd) on 127.0.0.1, retries, bounces (DSN), STARTTLS, RelayHost."""
import email
import logging
import os
import re
import smtplib
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller
from dnslib import RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from harness import TMP, Server, free_port, strip_received

logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's tracebacks on bad TLS


class FakeDNS:
    """Answers from zone text on 127.0.0.1 (UDP), NXDOMAIN for unknown names."""

    def __init__(self, zone):
        self.rrs = RR.fromZone(zone)
        self.port = free_port()
        outer = self

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                q = request.q
                known = False
                for rr in outer.rrs:
                    if rr.rname == q.qname:
                        known = True
                        if rr.rtype == q.qtype:
                            reply.add_answer(rr)
                if not known:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply

        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
        self.server = DNSServer(Resolver(), port=self.port, address="127.0.0.1", logger=quiet)
        self.server.start_thread()

    def stop(self):
        self.server.stop()


class Sink:
    """An aiosmtpd server on 127.0.0.1 keeping (mail_from, rcpts, data, tls)
    per transaction. rcpt_codes: address -> reply for RCPT; data_replies:
    replies given to DATA in turn before accepting; tls: an SSLContext to
    offer STARTTLS."""

    def __init__(self, rcpt_codes=None, data_replies=(), tls=None, port=None, utf8=True):
        self.got = []
        self.rcpt_codes = rcpt_codes or {}
        self.data_replies = list(data_replies)
        self.port = port or free_port()
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                code = sink.rcpt_codes.get(address)
                if code:
                    return code
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                if sink.data_replies:
                    return sink.data_replies.pop(0)
                sink.got.append((envelope.mail_from, list(envelope.rcpt_tos),
                                 envelope.original_content, session.ssl is not None))
                return "250 OK queued"

        kw = {"tls_context": tls, "require_starttls": False} if tls else {}
        kw["enable_SMTPUTF8"] = utf8
        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kw)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


def wait_for(cond, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


ZONE = """
remote.test. 60 IN MX 10 mx1.remote.test.
mx1.remote.test. 60 IN A 127.0.0.1
backup.test. 60 IN MX 10 dead.backup.test.
backup.test. 60 IN MX 20 alive.backup.test.
dead.backup.test. 60 IN A 127.0.0.3
alive.backup.test. 60 IN A 127.0.0.1
implicit.test. 60 IN A 127.0.0.1
nullmx.test. 60 IN MX 0 .
"""


def setup(sink_port, extra=""):
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 1\n"
                    "MaxRetryInterval 1\nOutboundTimeout 10\n%s" % (dns.port, sink_port, extra))
    return dns, s.start()


def send(s, rcpts, msg, sender="alice@example.org"):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.login("alice@example.org", "secret")
        return c.sendmail(sender, rcpts, msg)


def queue_empty(s):
    qdir = os.path.join(s.storage, "queue")
    return not [n for n in os.listdir(qdir) if n.endswith(".env")]


def log(s):
    return s.stderr()


def dsn_of(raw):
    """The parts of a bounce: (message, human text, delivery-status text, headers)."""
    m = email.message_from_bytes(raw)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "delivery-status"
    parts = m.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"], parts
    status = "".join(str(p) for p in parts[1].get_payload())
    return m, parts[0].get_payload(), status, parts[2].get_payload()


MSG = (b"From: alice@example.org\r\nTo: bob@remote.test\r\nSubject: outbound\r\n"
       b"Message-ID: <o1@example.org>\r\n\r\n.a line with a dot\r\n..two dots\r\n"
       b"caf\xc3\xa9 8-bit\r\n.\r\nlast\r\n")


def test_mail_goes_to_the_mx_byte_exact():
    """outbound: mail for another domain goes to its MX, bytes and envelope intact"""
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        frm, rcpts, data, _ = sink.got[0]
        assert frm == "alice@example.org" and rcpts == ["bob@remote.test"], sink.got
        assert strip_received(data) == MSG
        assert wait_for(lambda: queue_empty(s))
        assert re.search(r"to=<bob@remote.test> host=mx1.remote.test\[127.0.0.1\] tls=no "
                         r"status=sent reply=\"250 OK queued\"", log(s)), log(s)
        assert len(sink.got) == 1
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_implicit_mx_and_second_mx_when_first_refuses():
    """outbound: the second MX is used when the first refuses connections; no MX means the A record"""
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        send(s, ["x@backup.test", "y@implicit.test"], b"Subject: fallback\r\n\r\nbody\r\n")
        assert wait_for(lambda: len(sink.got) == 2), log(s)
        assert sorted(r for g in sink.got for r in g[1]) == ["x@backup.test", "y@implicit.test"]
        assert wait_for(lambda: queue_empty(s))  # the sink has it before Rumble logs the 250
        text = log(s)
        assert re.search(r"host=dead.backup.test\[127.0.0.3\] status=deferred reply=\"connect",
                         text), text
        assert "to=<x@backup.test> host=alive.backup.test[127.0.0.1]" in text
        assert wait_for(lambda: queue_empty(s))
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_temporary_failure_is_retried():
    """outbound: a 4xx is retried after RetryInterval and then delivered once"""
    sink = Sink(data_replies=["451 4.3.0 try again later"])
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        text = log(s)
        assert "status=deferred reply=\"451 4.3.0 try again later\"" in text, text
        assert "deferred rcpts=1 attempts=1" in text
        assert wait_for(lambda: queue_empty(s))
        time.sleep(1.5)
        assert len(sink.got) == 1 and strip_received(sink.got[0][2]) == MSG
        assert s.messages("alice@example.org") == []  # no bounce
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_permanent_failure_bounces_to_the_sender():
    """outbound: a 5xx to RCPT sends a DSN (multipart/report) to the local sender"""
    sink = Sink(rcpt_codes={"bob@remote.test": "550 5.1.1 <bob@remote.test>: no such user"})
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: s.messages("alice@example.org")), log(s)
        assert wait_for(lambda: queue_empty(s))
        raw = s.messages("alice@example.org")[0]
        m, human, status, headers = dsn_of(raw)
        assert m["To"] == "<alice@example.org>" and "MAILER-DAEMON@test.example" in m["From"]
        assert "Reporting-MTA: dns; test.example" in status
        assert "Final-Recipient: rfc822; bob@remote.test" in status
        assert "Action: failed" in status and "Status: 5.1.1" in status
        assert "Remote-MTA: dns; mx1.remote.test" in status
        assert "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user" in status
        assert "Subject: outbound" in headers and "Message-ID: <o1@example.org>" in headers
        assert "bob@remote.test" in human and "no such user" in human
        # the bounce has a null sender: its From_ line says MAILER-DAEMON
        mbox = open(s.mbox("alice@example.org"), "rb").read()
        assert mbox.startswith(b"From MAILER-DAEMON "), mbox[:80]
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_null_mx_bounces_without_connecting():
    """outbound: a domain with a null MX (RFC 7505) bounces at once"""
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@nullmx.test"], b"Subject: nowhere\r\n\r\nx\r\n")
        assert wait_for(lambda: s.messages("alice@example.org")), log(s)
        _, _, status, _ = dsn_of(s.messages("alice@example.org")[0])
        assert "Final-Recipient: rfc822; bob@nullmx.test" in status
        assert "Status: 5.1.10" in status and "null MX" in status, status
        assert wait_for(lambda: queue_empty(s))
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_recipients_of_one_domain_share_one_transaction():
    """outbound: three recipients at one domain go in one transaction; the refused one bounces"""
    sink = Sink(rcpt_codes={"b@remote.test": "550 5.1.1 unknown"})
    dns, s = setup(sink.port)
    try:
        send(s, ["a@remote.test", "b@remote.test", "c@remote.test"], MSG)
        assert wait_for(lambda: sink.got and s.messages("alice@example.org")), log(s)
        assert wait_for(lambda: queue_empty(s))
        time.sleep(0.5)
        assert len(sink.got) == 1 and sink.got[0][1] == ["a@remote.test", "c@remote.test"]
        _, _, status, _ = dsn_of(s.messages("alice@example.org")[0])
        assert "Final-Recipient: rfc822; b@remote.test" in status
        assert "a@remote.test" not in status and "c@remote.test" not in status
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def make_cert(d):
    key, cert = os.path.join(d, "sink.key"), os.path.join(d, "sink.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=mx1.remote.test",
                    "-days", "2", "-keyout", key, "-out", cert], check=True,
                   capture_output=True, timeout=30)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_starttls_is_used_when_offered():
    """outbound: STARTTLS is used when the server offers it (certificate not checked), and logged"""
    os.makedirs(TMP, exist_ok=True)
    sink = Sink(tls=make_cert(TMP))
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is True  # the transaction ran over TLS
        assert strip_received(sink.got[0][2]) == MSG
        assert wait_for(lambda: queue_empty(s))  # the sink has it before Rumble logs the 250
        text = log(s)
        assert re.search(r"host=mx1.remote.test\[127.0.0.1\] tls=TLSv1.2 cipher=ECDHE-\S+", text), text
        assert "tls=yes status=sent" in text
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_outbound_tls_can_be_turned_off():
    """outbound: OutboundTLS 0 sends in clear even when STARTTLS is offered"""
    os.makedirs(TMP, exist_ok=True)
    sink = Sink(tls=make_cert(TMP))
    dns, s = setup(sink.port, "OutboundTLS 0")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is False
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_restart_with_a_pending_retry_delivers_exactly_once():
    """outbound: a message deferred before a restart is delivered after it, exactly once"""
    sink = Sink(data_replies=["421 4.3.2 shutting down"])
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 3\n"
                    "OutboundTimeout 10\n" % (dns.port, sink.port)).start()
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: "deferred rcpts=1 attempts=1" in log(s)), log(s)
        assert s.stop() == 0
        qdir = os.path.join(s.storage, "queue")
        envs = [n for n in os.listdir(qdir) if n.endswith(".env")]
        assert len(envs) == 1
        env = open(os.path.join(qdir, envs[0])).read()
        assert "rcpt bob@remote.test\nlast 421 4.3.2 shutting down\n" in env, env
        assert "attempts 1\n" in env
        assert sink.got == []
        s.start()
        assert wait_for(lambda: sink.got), log(s)
        assert wait_for(lambda: queue_empty(s))
        time.sleep(4)  # past another RetryInterval: nothing more is sent
        assert len(sink.got) == 1 and strip_received(sink.got[0][2]) == MSG
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_queue_lifetime_expiry_bounces():
    """outbound: what is still deferred after QueueLifetime is bounced with the last error"""
    sink = Sink(data_replies=["451 4.7.1 greylisted"] * 100)
    dns, s = setup(sink.port, "QueueLifetime 2s")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: s.messages("alice@example.org")), log(s)
        _, human, status, _ = dsn_of(s.messages("alice@example.org")[0])
        assert "Status: 4.7.1" in status and "Action: failed" in status, status
        assert "gave up after" in status and "451 4.7.1 greylisted" in status
        assert wait_for(lambda: queue_empty(s))
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_bounces_are_never_bounced():
    """outbound: a failing message with a null sender is dropped, not bounced"""
    sink = Sink(rcpt_codes={"bob@remote.test": "550 5.1.1 no"})
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], b"Subject: a bounce\r\n\r\nx\r\n", sender="")
        assert wait_for(lambda: queue_empty(s)), log(s)
        assert "bounce not sent: the message is itself a bounce" in log(s)
        time.sleep(0.5)
        assert s.messages("alice@example.org") == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_relay_host_sends_everything_through_the_smarthost():
    """outbound: RelayHost host:port sends remote mail there without any MX lookup"""
    sink = Sink()
    # the DNS server does not answer: only the smarthost can work
    s = Server(conf="DNSServer 127.0.0.1:%d\nRelayHost 127.0.0.1:%d\n" % (free_port(), sink.port))
    s.start()
    try:
        send(s, ["someone@anywhere.test", "other@else.test"], MSG)
        assert wait_for(lambda: len(sink.got) == 2), log(s)
        assert sorted(r for g in sink.got for r in g[1]) == ["other@else.test",
                                                             "someone@anywhere.test"]
        assert wait_for(lambda: queue_empty(s))
        assert s.stop() == 0
    finally:
        sink.stop()


def test_utf8_addresses_bounce_when_the_server_lacks_smtputf8():
    """outbound: mail that needs SMTPUTF8 bounces (5.6.7) at a server that does not offer it"""
    sink = Sink(utf8=False)
    dns, s = setup(sink.port)
    try:
        with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
            c.login("alice@example.org", "secret")
            c.sendmail("alice@example.org", ["jos\u00e9@remote.test"], b"Subject: utf8\r\n\r\nx\r\n",
                       mail_options=["SMTPUTF8"])
        assert wait_for(lambda: s.messages("alice@example.org")), log(s)
        _, _, status, _ = dsn_of(s.messages("alice@example.org")[0])
        assert "Status: 5.6.7" in status and "SMTPUTF8" in status, status
        assert sink.got == []
        assert wait_for(lambda: queue_empty(s))
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


class Silent:
    """Accepts connections on 127.0.0.1 and never says a word (bounded: it
    holds at most 8 and closes them when stopped)."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running and len(self.conns) < 8:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                pass

    def stop(self):
        self.running = False
        self.thread.join(10)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_silent_server_times_out_and_is_retried():
    """outbound: a server that never answers is given up after OutboundTimeout and retried later"""
    silent = Silent()
    dns = FakeDNS(ZONE)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 60\n"
                    "OutboundTimeout 1\n" % (dns.port, silent.port)).start()
    try:
        t0 = time.time()
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: "deferred rcpts=1 attempts=1" in log(s), 10), log(s)
        assert time.time() - t0 < 5
        assert "reply=\"connection lost or timed out\"" in log(s)
        qdir = os.path.join(s.storage, "queue")
        env = [open(os.path.join(qdir, n)).read() for n in os.listdir(qdir) if n.endswith(".env")]
        assert len(env) == 1 and "last connection lost or timed out" in env[0], env
        t1 = time.time()
        assert s.stop() == 0
        assert time.time() - t1 < 5  # the pending retry does not hold up stopping
    finally:
        silent.stop()
        dns.stop()


def test_a_failed_tls_handshake_is_retried_in_clear():
    """outbound: when the STARTTLS handshake fails the same server is tried again without TLS"""
    os.makedirs(TMP, exist_ok=True)
    ctx = make_cert(TMP)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # BearSSL stops at TLS 1.2
    sink = Sink(tls=ctx)
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is False and strip_received(sink.got[0][2]) == MSG
        assert wait_for(lambda: queue_empty(s))  # the sink has it before Rumble logs the 250
        text = log(s)
        assert "reply=\"TLS handshake failed" in text, text
        assert "tls=no status=sent" in text
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


class RawSink:
    """A socket SMTP server on 127.0.0.1 for one connection, with an
    over-long greeting line and a multi-line EHLO reply; keeps the DATA."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(20)
        f = conn.makefile("rb")
        conn.sendall(b"220-" + b"x" * 5000 + b"\r\n220 ready\r\n")
        data = None
        for _ in range(1000):
            line = f.readline(100000)
            if not line:
                break
            if data is not None:
                if line == b".\r\n":
                    self.got.append(b"".join(data))
                    data = None
                    conn.sendall(b"250 ok\r\n")
                else:
                    data.append(line[1:] if line.startswith(b".") else line)
            elif line.upper().startswith(b"EHLO"):
                conn.sendall(b"250-sink\r\n250-" + b"y" * 3000 + b"\r\n250 8BITMIME\r\n")
            elif line.upper().startswith(b"DATA"):
                data = []
                conn.sendall(b"354 go\r\n")
            elif line.upper().startswith(b"QUIT"):
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()

    def stop(self):
        self.sock.close()
        self.thread.join(10)


def test_over_long_reply_lines_are_cut_not_fatal():
    """outbound: reply lines longer than 1,000 bytes are cut, and the dialogue goes on"""
    sink = RawSink()
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert strip_received(sink.got[0]) == MSG
        assert wait_for(lambda: queue_empty(s))
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_bare_cr_and_lf_leave_as_crlf():
    """outbound: a bare CR or LF in a relayed message leaves as CRLF (RFC 5321 2.3.8; no SMTP smuggling through us), dot-stuffing still right after it"""
    import re
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        msg = (b"From: alice@example.org\r\nTo: bob@remote.test\r\nSubject: bare\r\n\r\n"
               b"one\rtwo\r\n.three\rfour\nfive\r.six\r\nend\r")
        send(s, ["bob@remote.test"], msg)
        assert wait_for(lambda: sink.got), log(s)
        data = sink.got[0][2]
        assert b"one\r\ntwo\r\n.three\r\nfour\r\nfive\r\n.six\r\nend\r\n" in data, data
        assert not re.search(rb"\r(?!\n)|(?<!\r)\n", data), data
        import dkim
        from test_dkim import resolver
        record = s.cli("dkim", "example.org").stdout  # signed as it left: it verifies
        assert dkim.verify(data, dnsfunc=resolver(record)), data[:300]
    finally:
        s.stop()
        dns.stop()
