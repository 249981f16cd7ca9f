"""ACME (RFC 8555): the public HTTP responder (wellknown.c) and the client
(acme.c) against pebble, Let's Encrypt's test CA (Debian package), run
here with its own config, a CA made with openssl for its HTTPS, and a fake
DNS that sends every name to 127.0.0.1."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Server, free_port, wait_port, TMP
from test_outbound import FakeDNS

PEBBLE = "/usr/bin/pebble"
NAME = "mail.acme.test"
ZONE = """
mail.acme.test. 60 IN A 127.0.0.1
imap.acme.test. 60 IN A 127.0.0.1
mta-sts.example.org. 60 IN A 127.0.0.1
"""


def sh(*args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


class Pebble:
    """pebble on free ports: its HTTPS with a CA made here (ca.pem, for
    ACMECA), validations sent to http_port, names resolved by dns_port."""

    def __init__(self, http_port, dns_port, validity=None, nonce_reject=0, tls_port=None):
        os.makedirs(TMP, exist_ok=True)
        self.dir = tempfile.mkdtemp(dir=TMP, prefix="pebble-")
        d = self.dir
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pebble test CA",
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost", cwd=d)
        with open(os.path.join(d, "ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext", cwd=d)
        self.port, self.mgmt = free_port(), free_port()
        cfg = {"pebble": {"listenAddress": "127.0.0.1:%d" % self.port,
                          "managementListenAddress": "127.0.0.1:%d" % self.mgmt,
                          "certificate": os.path.join(d, "cert.pem"),
                          "privateKey": os.path.join(d, "key.pem"),
                          "httpPort": http_port, "tlsPort": tls_port or free_port(),
                          "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        if validity:
            cfg["pebble"]["certificateValidityPeriod"] = validity
        with open(os.path.join(d, "pebble.json"), "w") as f:
            json.dump(cfg, f)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT=str(nonce_reject),
                   PEBBLE_AUTHZREUSE="0")
        self.logf = open(os.path.join(d, "pebble.log"), "wb")
        self.proc = subprocess.Popen([PEBBLE, "-config", os.path.join(d, "pebble.json"),
                                      "-dnsserver", "127.0.0.1:%d" % dns_port],
                                     stdout=self.logf, stderr=self.logf, env=env)
        if not wait_port(self.port) or not wait_port(self.mgmt):
            self.stop()
            raise AssertionError("pebble did not start")
        self.ca = os.path.join(d, "ca.pem")
        self.directory = "https://localhost:%d/dir" % self.port

    def root(self):
        """The root that pebble issues under, as PEM (management /roots/0)."""
        pem = self.mgmt_get("/roots/0")
        path = os.path.join(self.dir, "root.pem")
        with open(path, "wb") as f:
            f.write(pem)
        return path

    def mgmt_get(self, path):
        ctx = ssl.create_default_context(cafile=self.ca)
        with socket.create_connection(("127.0.0.1", self.mgmt), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path.encode())
                data = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    data += b
        return data.split(b"\r\n\r\n", 1)[1]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        self.logf.close()


def wait_log(s, pattern, count=1, timeout=30):
    """Waits until pattern appears count times in the server's log; the log."""
    end = time.time() + timeout
    while time.time() < end:
        log = s.stderr()
        if len(re.findall(pattern, log)) >= count:
            return log
        time.sleep(0.2)
    raise AssertionError("no %r in the log:\n%s" % (pattern, s.stderr()[-3000:]))


def served_cert(port, cafile, name=NAME):
    """The certificate (DER) IMAPS serves, verified against cafile for name."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return s.getpeercert(binary_form=True)


def acme_server(pebble, http_port, extra=""):
    imaps = free_port()
    conf = ("ServerName %s\nEnableIMAPS 1\nIMAPSPort %d\nACME 1\nACMEDirectory %s\n"
            "ACMECA %s\nACMEHTTPPort %d\nACMEEmail admin@acme.test\n%s"
            % (NAME, imaps, pebble.directory, pebble.ca, http_port, extra))
    s = Server(conf=conf)
    s.imaps_port = imaps
    return s


def http(port, raw, timeout=5):
    """Sends raw bytes to 127.0.0.1:port; returns everything until the close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    finally:
        s.close()


def test_responder_answers_only_acme_challenges():
    """wellknown: 404 for unknown tokens and other paths, 405 for POST, 400 for junk, 431 for a huge head"""
    port = free_port()
    s = Server(conf="ACME 1\nACMEHTTPPort %d\nACMEDirectory http://127.0.0.1:1/directory"
               % port).start()
    try:
        assert wait_port(port)
        r = http(port, b"GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"GET /.well-known/acme-challenge/../../etc/passwd HTTP/1.1\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"GET / HTTP/1.0\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.other.test\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r  # not a domain of ours
        r = http(port, b"POST /.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 405 "), r
        r = http(port, b"\x16\x03\x01junk\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 400 "), r
        r = http(port, b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 431 "), r
    finally:
        s.stop()


def test_acme_issues_serves_and_renews():
    """acme: pebble issues a certificate over HTTP-01, IMAPS serves it (chains to pebble's root), and it is renewed at 2/3 of its lifetime without a restart"""
    if not os.path.exists(PEBBLE):
        raise Skip("no pebble (build.sh installs it)")
    dns = FakeDNS(ZONE)
    http_port = free_port()
    pebble = Pebble(http_port, dns.port, validity=24, nonce_reject=10)
    s = acme_server(pebble, http_port, "ACMENames imap.acme.test\n").start()
    try:
        log = wait_log(s, r"ACME: certificate installed")
        assert "ACME: mail.acme.test: validated" in log, log
        assert "ACME: imap.acme.test: validated" in log, log
        root = pebble.root()
        wait_log(s, r"TLS: reloaded")
        first = served_cert(s.imaps_port, root)
        served_cert(s.imaps_port, root, "imap.acme.test")
        key = os.path.join(s.storage, "tls", "key.pem")
        assert os.stat(key).st_mode & 0o077 == 0
        assert os.stat(os.path.join(s.storage, "tls", "acme-account.pem")).st_mode & 0o077 == 0
        # 24 s of validity: renewed after 16
        wait_log(s, r"ACME: certificate installed", count=2, timeout=30)
        wait_log(s, r"TLS: reloaded", count=2)
        second = served_cert(s.imaps_port, root)
        assert first != second
        assert "ACME: account " in s.stderr() and "(existing)" in s.stderr()
    finally:
        s.stop()
        pebble.stop()
        dns.stop()


def test_acme_ca_down_keeps_the_certificate():
    """acme: with the CA unreachable the self-signed certificate stays and a retry is logged"""
    port = free_port()
    imaps = free_port()
    s = Server(conf="ServerName %s\nEnableIMAPS 1\nIMAPSPort %d\nACME 1\nACMEHTTPPort %d\n"
               "ACMEDirectory https://localhost:%d/dir" % (NAME, imaps, free_port(), port)).start()
    try:
        log = wait_log(s, r"ACME: .*cannot connect.*the certificate in use stays; next try in 60 s")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", imaps), timeout=5) as raw:
            with ctx.wrap_socket(raw) as t:
                assert t.recv(100).startswith(b"* OK")
        assert "TLS: reloaded" not in log
    finally:
        s.stop()


def test_acme_bad_challenge_is_logged_and_the_old_certificate_stays():
    """acme: validation against a port nobody answers fails with the CA's detail in one log line; the old certificate stays"""
    if not os.path.exists(PEBBLE):
        raise Skip("no pebble (build.sh installs it)")
    dns = FakeDNS(ZONE)
    pebble = Pebble(free_port(), dns.port)
    s = acme_server(pebble, free_port()).start()  # the responder is not where pebble looks
    try:
        log = wait_log(s, r"ACME: mail.acme.test: the http-01 challenge failed")
        line = [l for l in log.splitlines() if "http-01 challenge failed" in l][0]
        assert "connection refused" in line.lower() or "connect" in line.lower(), line
        assert "the certificate in use stays; next try in 60 s" in line, line
        assert "TLS: reloaded" not in log
    finally:
        s.stop()
        pebble.stop()
        dns.stop()


def test_responder_answers_client_autoconfiguration():
    """wellknown: the port 80 responder serves Thunderbird's autoconfig (GET) and Outlook's autodiscover (POST with its body); an oversize body is refused"""
    from test_autoconf import autodiscover_body
    port = free_port()
    s = Server(conf="ServerName mail.example.org\nACME 1\nACMEHTTPPort %d\n"
               "ACMEDirectory http://127.0.0.1:1/directory" % port).start()
    try:
        assert wait_port(port)
        r = http(port, b"GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress="
                       b"alice%40example.org HTTP/1.1\r\nHost: mail.example.org\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200 "), r
        assert b"<clientConfig" in r and b"<domain>example.org</domain>" in r, r
        r = http(port, b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.org:80"
                       b"\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 200 ") and b"<clientConfig" in r, r
        body = autodiscover_body("alice@example.org")
        r = http(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body))
        assert r.startswith(b"HTTP/1.1 200 ") and b"<Autodiscover" in r, r
        r = http(port, b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\n"
                       b"Content-Length: 100000\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 413 "), r
    finally:
        s.stop()


def test_responder_deadline_holds_against_a_trickle():
    """wellknown: a client sending its request a byte a second is cut off at the 10 s deadline, not kept by each byte"""
    port = free_port()
    s = Server(conf="ACME 1\nACMEHTTPPort %d\nACMEDirectory http://127.0.0.1:1/directory"
               % port).start()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.time()
        c.sendall(b"GET / HTTP/1.1\r\n")
        closed = None
        for _ in range(20):
            try:
                c.sendall(b"X")
                c.settimeout(1)
                if c.recv(4096) == b"":
                    closed = time.time() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = time.time() - t0
                break
        c.close()
        assert closed is not None and 9 <= closed <= 14, closed
    finally:
        s.stop()


def serial_of(der):
    """The serial number of a DER certificate, by openssl, as lower-case hex."""
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       capture_output=True, timeout=10, check=True)
    return r.stdout.decode().strip().split("=", 1)[1].lower()


def test_acme_revoke_and_reissue():
    """acme: the web admin speaks HTTPS with ACME's certificate, our MTA-STS policy is served at mta-sts.DOMAIN; rumble acme revoke revokes it at the CA; on SIGHUP the server orders a new one and serves it"""
    if not os.path.exists(PEBBLE):
        raise Skip("no pebble (build.sh installs it)")
    dns = FakeDNS(ZONE)
    http_port = free_port()
    pebble = Pebble(http_port, dns.port)
    admin, https = free_port(), free_port()
    s = acme_server(pebble, http_port, "EnableWebAdmin 1\nWebAdminPort %d\n"
                    "ACMENames mta-sts.example.org\nACMETLSPort %d\n" % (admin, https)).start()
    try:
        wait_log(s, r"TLS: reloaded")
        root = pebble.root()
        first = served_cert(s.imaps_port, root)
        assert served_cert(admin, root) == first  # the web admin speaks HTTPS with it
        # our MTA-STS policy, over HTTPS with that certificate
        ctx = ssl.create_default_context(cafile=root)
        with socket.create_connection(("127.0.0.1", https), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="mta-sts.example.org") as t:
                t.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
                          b"Host: mta-sts.example.org\r\n\r\n")
                got = b""
                while True:
                    b = t.recv(4096)
                    if not b:
                        break
                    got += b
        assert got.startswith(b"HTTP/1.1 200 "), got
        assert b"version: STSv1\r\nmode: testing\r\nmx: mail.acme.test\r\n" in got, got
        serial = serial_of(first)
        status = json.loads(pebble.mgmt_get("/cert-status-by-serial/" + serial))
        assert status["Status"] == "Valid", status
        r = s.cli("acme", "revoke")
        assert "revoked" in r.stdout, r.stdout + r.stderr
        status = json.loads(pebble.mgmt_get("/cert-status-by-serial/" + serial))
        assert status["Status"] == "Revoked", status
        s.proc.send_signal(signal.SIGHUP)
        wait_log(s, r"ACME: certificate installed", count=2)
        wait_log(s, r"TLS: reloaded", count=2)
        second = served_cert(s.imaps_port, root)
        assert serial_of(second) != serial
    finally:
        s.stop()
        pebble.stop()
        dns.stop()


def test_acme_tls_alpn_01():
    """acme: ACMEChallenge tls-alpn-01 is answered on ACMETLSPort with the acme-tls/1 certificate (RFC 8737); without a challenge acme-tls/1 is refused"""
    if not os.path.exists(PEBBLE):
        raise Skip("no pebble (build.sh installs it)")
    dns = FakeDNS(ZONE)
    tls_port = free_port()
    pebble = Pebble(free_port(), dns.port, tls_port=tls_port)  # nobody on its HTTP port
    s = acme_server(pebble, free_port(),
                    "ACMEChallenge tls-alpn-01\nACMETLSPort %d\n" % tls_port).start()
    try:
        log = wait_log(s, r"TLS: reloaded")
        assert "ACME: mail.acme.test: answering the tls-alpn-01 challenge" in log, log
        assert "ACME: mail.acme.test: validated" in log, log
        served_cert(s.imaps_port, pebble.root())
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["acme-tls/1"])
        try:
            with socket.create_connection(("127.0.0.1", s.imaps_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=NAME):
                    pass
            raise AssertionError("acme-tls/1 was accepted without a challenge")
        except ssl.SSLError:
            pass
    finally:
        s.stop()
        pebble.stop()
        dns.stop()


def test_acme_refuses_an_untrusted_directory():
    """acme: without ACMECA pebble's HTTPS certificate (a private CA) is refused: not trusted, logged, nothing ordered"""
    if not os.path.exists(PEBBLE):
        raise Skip("no pebble (build.sh installs it)")
    dns = FakeDNS(ZONE)
    http_port = free_port()
    pebble = Pebble(http_port, dns.port)
    s = Server(conf="ServerName %s\nACME 1\nACMEDirectory %s\nACMEHTTPPort %d"
               % (NAME, pebble.directory, http_port)).start()
    try:
        log = wait_log(s, r"ACME: GET https://localhost:\d+/dir: TLS with localhost: .*not trusted")
        assert "account" not in log and "the certificate in use stays" in log
    finally:
        s.stop()
        pebble.stop()
        dns.stop()
