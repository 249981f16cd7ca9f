"""Outbound TLS policy: TLSPolicy per destination (none, may, encrypt, verify)
and MTA-STS (RFC 8461) against a fake DNS, SMTP sinks with certificates from
a test CA, and an HTTPS policy host on 127.0.0.1."""
import http.server
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time

from harness import TMP, Server, free_port
from test_outbound import MSG, FakeDNS, Sink, log, send, wait_for


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


class CA:
    """A test CA in its own folder; leaf(name) gives an SSLContext for a server."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.key, self.cert = os.path.join(self.dir, "ca.key"), os.path.join(self.dir, "ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=Rumble Test CA", "-days", "2", "-keyout", self.key, "-out", self.cert,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(self, name):
        key, csr, cert = (os.path.join(self.dir, name + ext) for ext in (".key", ".csr", ".pem"))
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % name)
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class PolicyHost:
    """https://mta-sts.<domain>:port/.well-known/mta-sts.txt, answering text."""

    def __init__(self, ctx, text):
        self.text, self.hits = text, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                ok = self.path == "/.well-known/mta-sts.txt"
                body = outer.text.encode() if ok else b"no"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


ZONE = """
remote.test. 60 IN MX 10 mx1.remote.test.
mx1.remote.test. 60 IN A 127.0.0.1
mta-sts.remote.test. 60 IN A 127.0.0.1
"""
STS_TXT = '_mta-sts.remote.test. 60 IN TXT "v=STSv1; id=%s"\n'
POLICY = "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 86400\r\n"


def start(sink_port, extra, zone=ZONE, storage=None):
    dns = FakeDNS(zone)
    s = Server(conf="DNSServer 127.0.0.1:%d\nOutboundPort %d\nRetryInterval 1\n"
                    "MaxRetryInterval 1\nOutboundTimeout 10\n%s" % (dns.port, sink_port, extra))
    if storage:
        shutil.rmtree(s.storage)
        shutil.copytree(storage, s.storage)
    return dns, s.start()


def deferred_because(s, text, timeout=15):
    return wait_for(lambda: text in log(s) and "status=deferred" in log(s), timeout)


def test_encrypt_defers_when_starttls_is_missing():
    """TLSPolicy encrypt: a server without STARTTLS gets nothing, the deferral says why"""
    sink = Sink()
    dns, s = start(sink.port, "TLSPolicy remote.test encrypt")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert deferred_because(
            s, "TLS required by TLSPolicy, but mx1.remote.test does not offer STARTTLS"), log(s)
        time.sleep(1.5)  # a retry later: still nothing, and never in clear
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()


def test_none_sends_in_clear_and_may_uses_tls():
    """TLSPolicy none sends in clear though STARTTLS is offered; other domains still use TLS"""
    ca = CA()
    sink = Sink(tls=ca.leaf("mx1.remote.test"))
    dns, s = start(sink.port, "TLSPolicy remote.test none\nTLSPolicy other.test verify")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is False
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
        ca.remove()


def test_verify_needs_a_certificate_a_trusted_ca_signed_for_the_host():
    """TLSPolicy verify: an untrusted or misnamed certificate defers; TLSCAFile's CA passes"""
    ca, other = CA(), CA()
    sink = Sink(tls=other.leaf("mx1.remote.test"))
    dns, s = start(sink.port, "TLSPolicy remote.test verify\nTLSCAFile %s" % ca.cert)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert deferred_because(s, "certificate of mx1.remote.test not verified"), log(s)
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
    sink = Sink(tls=ca.leaf("wrong.remote.test"))
    dns, s = start(sink.port, "TLSPolicy remote.test verify\nTLSCAFile %s" % ca.cert)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert deferred_because(s, "certificate of mx1.remote.test not verified"), log(s)
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
    sink = Sink(tls=ca.leaf("mx1.remote.test"))
    dns, s = start(sink.port, "TLSPolicy remote.test verify\nTLSCAFile %s" % ca.cert)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is True
        assert "verified=yes" in log(s)
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
        ca.remove()
        other.remove()


def test_mta_sts_enforce_verifies_and_is_kept():
    """MTA-STS enforce: the policy is fetched over verified HTTPS, its MX gets verified TLS, and it is kept when the record goes"""
    ca = CA()
    web = PolicyHost(ca.leaf("mta-sts.remote.test"), POLICY % ("enforce", "mx1.remote.test"))
    sink = Sink(tls=ca.leaf("mx1.remote.test"))
    conf = "TLSCAFile %s\nMTASTSPort %d" % (ca.cert, web.port)
    dns, s = start(sink.port, conf, ZONE + STS_TXT % "one")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert sink.got[0][3] is True
        text = log(s)
        assert "MTA-STS: remote.test: policy one, mode enforce, 1 mx" in text, text
        assert "verified=yes" in text
        kept = os.path.join(s.storage, "mta-sts", "remote.test")
        assert os.path.exists(kept)
        assert s.stop() == 0
        storage = tempfile.mkdtemp(dir=TMP)
        shutil.rmtree(storage)
        shutil.copytree(s.storage, storage)
    finally:
        sink.stop()
        dns.stop()
    # the record is gone and the policy host down: the kept policy still
    # demands TLS, so a server without STARTTLS gets nothing
    web.stop()
    sink = Sink()
    dns, s = start(sink.port, conf, ZONE, storage=storage)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert deferred_because(s, "TLS required by MTA-STS, but mx1.remote.test does not "
                                   "offer STARTTLS"), log(s)
        assert sink.got == []
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
        ca.remove()
        shutil.rmtree(storage, ignore_errors=True)


def test_mta_sts_refuses_an_mx_the_policy_does_not_name():
    """MTA-STS enforce: an MX the policy does not list gets nothing; testing mode only logs"""
    ca = CA()
    web = PolicyHost(ca.leaf("mta-sts.remote.test"), POLICY % ("enforce", "*.elsewhere.test"))
    sink = Sink(tls=ca.leaf("mx1.remote.test"))
    conf = "TLSCAFile %s\nMTASTSPort %d" % (ca.cert, web.port)
    dns, s = start(sink.port, conf, ZONE + STS_TXT % "a1")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert deferred_because(s, "MTA-STS: mx1.remote.test is not a mail server the "
                                   "domain's policy names"), log(s)
        assert sink.got == []
        assert s.stop() == 0
    finally:
        dns.stop()
    web.text = POLICY % ("testing", "*.elsewhere.test")
    dns, s = start(sink.port, conf, ZONE + STS_TXT % "a2")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert "mode testing" in log(s) and "status=testing" in log(s)
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
        web.stop()
        ca.remove()


def test_mta_sts_policy_from_an_untrusted_host_is_not_used():
    """MTA-STS: a policy served with a certificate no trusted CA signed is ignored (logged); delivery goes on as before"""
    ca, rogue = CA(), CA()
    web = PolicyHost(rogue.leaf("mta-sts.remote.test"), POLICY % ("enforce", "nowhere.test"))
    sink = Sink()
    conf = "TLSCAFile %s\nMTASTSPort %d" % (ca.cert, web.port)
    dns, s = start(sink.port, conf, ZONE + STS_TXT % "x")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert "MTA-STS: remote.test: https://mta-sts.remote.test" in log(s)
        assert s.stop() == 0
    finally:
        sink.stop()
        dns.stop()
        web.stop()
        ca.remove()
        rogue.remove()
