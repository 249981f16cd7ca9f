"""TLS: STARTTLS and implicit TLS for SMTP, certificates, authentication over TLS."""
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

from harness import Server, SMTPRaw, free_port, strip_received


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def remote_smtp(port, **kw):
    """smtplib from 127.0.0.2: a client that is not this host."""
    return smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0), **kw)


def test_starttls_then_auth_from_a_remote_address():
    """tls: STARTTLS upgrades SMTP; AUTH refused before it and accepted after, from 127.0.0.2"""
    s = Server().start()
    with remote_smtp(s.smtp_port) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls") and not c.has_extn("auth")
        c.starttls(context=client_ctx())
        c.ehlo("client.test")
        assert c.has_extn("auth") and not c.has_extn("starttls")
        assert c.sock.version() == "TLSv1.2"
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["alice@example.org"], b"Subject: over tls\r\n\r\nx\r\n")
    got = s.messages("alice@example.org")
    assert len(got) == 1 and b"with ESMTPSA" in got[0]
    assert s.stop() == 0


def test_implicit_tls_port():
    """tls: the SMTPS port speaks TLS first and then SMTP"""
    port = free_port()
    s = Server(conf="EnableSMTPS 1\nSMTPSPort %d" % port).start()
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_ctx()) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
        c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: smtps\r\n\r\nx\r\n")
    assert b"with ESMTPS" in s.messages("alice@example.org")[0]
    assert s.stop() == 0


def test_pipelined_command_after_starttls_is_not_executed():
    """tls: a command pipelined with STARTTLS in the clear is thrown away"""
    s = Server().start()
    c = SMTPRaw(s.smtp_port)
    assert c.cmd("EHLO client.test")[0] == 250
    c.send(b"STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<injected@evil.test>\r\n")
    assert c.reply()[0] == 220
    assert c.buf == b""  # nothing answered the injected lines in the clear either
    c.sock.settimeout(0.3)
    try:
        extra = c.sock.recv(100, socket.MSG_PEEK)
    except socket.timeout:
        extra = b""
    assert extra == b"", extra
    c.sock.settimeout(10)
    tls = client_ctx().wrap_socket(c.sock)
    tls.sendall(b"EHLO client.test\r\nRCPT TO:<alice@example.org>\r\nQUIT\r\n")
    data = b""
    while True:
        chunk = tls.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"evil.test" not in data and b"2.1.0" not in data, data  # neither ran
    assert b"\r\n503 " in data and data.endswith(b"221 2.0.0 test.example closing connection\r\n"), data
    tls.close()
    assert s.stop() == 0


def test_certificate_is_made_once_and_reused():
    """tls: a self-signed certificate for ServerName is made on first start and reused"""
    s = Server().start()
    assert s.stop() == 0
    cert = os.path.join(s.storage, "tls", "cert.pem")
    key = os.path.join(s.storage, "tls", "key.pem")
    first = open(cert, "rb").read()
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    s.start()
    with remote_smtp(s.smtp_port) as c:
        c.starttls(context=client_ctx())
        der = c.sock.getpeercert(binary_form=True)
    assert s.stop() == 0
    assert open(cert, "rb").read() == first
    assert der == ssl.PEM_cert_to_DER_cert(first.decode())
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-ext",
                              "subjectAltName"], capture_output=True, text=True).stdout
        assert "test.example" in out and "DNS:test.example" in out, out


def make_cert(d, kind):
    key, crt = os.path.join(d, kind + ".key"), os.path.join(d, kind + ".crt")
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt",
                                                           "ec_paramgen_curve:P-384"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=mail.test",
                    "-keyout", key, "-out", crt] + newkey, check=True, capture_output=True)
    return crt, key


def test_configured_rsa_and_ecdsa_certificates():
    """tls: TLSCertificate/TLSKey with an RSA and with an ECDSA certificate"""
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    for kind in ("rsa", "ec"):
        s = Server()
        crt, key = make_cert(s.dir, kind)
        with open(s.conf, "a") as f:
            f.write("TLSCertificate %s\nTLSKey %s\n" % (crt, key))
        s.start()
        with remote_smtp(s.smtp_port) as c:
            c.starttls(context=client_ctx())
            cipher = c.sock.cipher()[0]
            assert ("RSA" in cipher) == (kind == "rsa") and "ECDHE" in cipher, cipher
            assert c.sock.getpeercert(True) == ssl.PEM_cert_to_DER_cert(open(crt).read())
        assert s.stop() == 0


def test_openssl_swaks_and_curl_over_tls():
    """tls: openssl s_client -starttls smtp, swaks --tls --auth and curl --ssl-reqd work"""
    s = Server().start()
    if shutil.which("openssl"):
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "127.0.0.1:%d" % s.smtp_port, "-quiet"], input=b"EHLO x.test\r\nQUIT\r\n",
                           capture_output=True, timeout=20)
        assert b"250" in r.stdout and b"221" in r.stdout, r.stdout + r.stderr
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-tls1_1", "-connect",
                            "127.0.0.1:%d" % s.smtp_port], input=b"", capture_output=True, timeout=20)
        assert b"Cipher is (NONE)" in r.stdout or r.returncode != 0
    if shutil.which("swaks"):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.smtp_port), "--tls",
                            "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password",
                            "secret", "--from", "alice@example.org", "--to", "alice@example.org",
                            "--body", "swaks over tls"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout[-2000:]
    if shutil.which("curl"):
        r = subprocess.run(["curl", "-s", "-S", "-k", "--ssl-reqd",
                            "smtp://127.0.0.1:%d/client.test" % s.smtp_port, "-u",
                            "alice@example.org:secret", "--mail-from", "alice@example.org",
                            "--mail-rcpt", "alice@example.org", "-T", "-"],
                           input=b"Subject: curl tls\r\n\r\nx\r\n", capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    bodies = b"".join(s.messages("alice@example.org"))
    assert (b"swaks over tls" in bodies) == bool(shutil.which("swaks"))
    assert (b"curl tls" in bodies) == bool(shutil.which("curl"))
    assert s.stop() == 0


def test_a_stalled_handshake_holds_nothing():
    """tls: clients that stop mid-handshake do not hold up other sessions and time out"""
    port = free_port()
    s = Server(conf="EnableSMTPS 1\nSMTPSPort %d\nIdleTimeout 2" % port).start()
    stalled = []
    for i in range(20):
        k = socket.create_connection(("127.0.0.1", port))
        k.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello cut short
        stalled.append(k)
    t0 = time.time()
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_ctx()) as c:
        assert c.noop()[0] == 250
    assert time.time() - t0 < 2
    time.sleep(3.5)
    for k in stalled:
        k.settimeout(2)
        try:
            assert k.recv(100) == b""
        except ConnectionResetError:
            pass
        k.close()
    assert s.stop() == 0


def pop3_tls_server():
    from test_pop3 import pop3_server  # noqa: E402 (the POP3 tests' helper)
    port = free_port()
    s = pop3_server(conf="EnablePOP3S 1\nPOP3SPort %d" % port)
    s.pop3s_port = port
    assert wait_for_port(port)
    return s


def wait_for_port(port):
    from harness import wait_port
    return wait_port(port)


def test_pop3_stls_and_pop3s():
    """tls: POP3 STLS and the POP3S port work; USER/PASS off-loopback needs TLS"""
    import poplib
    s = pop3_tls_server()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=10) as c:
        c.sendmail("x@remote.test", ["alice@example.org"], b"Subject: pop over tls\r\n\r\nx\r\n")
    class RemotePOP3(poplib.POP3):  # poplib has no source_address
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout, ("127.0.0.2", 0))

    p = RemotePOP3("127.0.0.1", s.pop3_port, timeout=10)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
    p.stls(context=client_ctx())
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps, caps
    p.user("alice@example.org")
    p.pass_("secret")
    assert b"pop over tls" in b"\r\n".join(p.retr(1)[1])
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", s.pop3s_port, timeout=10, context=client_ctx())
    p.user("alice@example.org")
    p.pass_("secret")
    assert p.stat()[0] == 1
    p.quit()
    if shutil.which("openssl"):
        r = subprocess.run(["openssl", "s_client", "-starttls", "pop3", "-connect",
                            "127.0.0.1:%d" % s.pop3_port, "-quiet"], input=b"CAPA\r\nQUIT\r\n",
                           capture_output=True, timeout=20)
        assert b"+OK" in r.stdout and b"USER" in r.stdout, r.stdout + r.stderr
    if shutil.which("curl"):
        r = subprocess.run(["curl", "-s", "-S", "-k", "--ssl-reqd", "pop3://127.0.0.1:%d/1" % s.pop3_port,
                            "-u", "alice@example.org:secret"], capture_output=True, timeout=30)
        assert r.returncode == 0 and b"pop over tls" in r.stdout, r.stderr
        r = subprocess.run(["curl", "-s", "-S", "-k", "pop3s://127.0.0.1:%d/1" % s.pop3s_port,
                            "-u", "alice@example.org:secret"], capture_output=True, timeout=30)
        assert r.returncode == 0 and b"pop over tls" in r.stdout, r.stderr
    assert s.stop() == 0


def test_pop3_stls_drops_pipelined_plaintext():
    """tls: a POP3 command pipelined with STLS in the clear is not executed"""
    s = pop3_tls_server()
    k = socket.create_connection(("127.0.0.1", s.pop3_port), timeout=10)
    f = k.makefile("rb")
    assert f.readline().startswith(b"+OK")
    k.sendall(b"STLS\r\nUSER alice@example.org\r\n")
    assert f.readline().startswith(b"+OK")
    t = client_ctx().wrap_socket(k)
    t.sendall(b"PASS secret\r\n")
    reply = t.recv(200)
    assert reply.startswith(b"-ERR"), reply  # the USER before the handshake never counted
    t.close()
    f.close()
    assert s.stop() == 0


def test_sslscan_finds_no_weak_protocol_or_cipher():
    """tls: sslscan sees TLS 1.2 only, AEAD ECDHE suites only, no renegotiation"""
    if not shutil.which("sslscan"):
        raise Skip("sslscan not installed")
    port = free_port()
    s = Server(conf="EnableSMTPS 1\nSMTPSPort %d" % port).start()
    out = subprocess.run(["sslscan", "--no-colour", "127.0.0.1:%d" % port], capture_output=True,
                         text=True, timeout=120).stdout
    assert s.stop() == 0
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert any(l.startswith(proto) and "disabled" in l for l in out.splitlines()), out
    assert any(l.startswith("TLSv1.2") and "enabled" in l for l in out.splitlines()), out
    ciphers = [l.split()[4] for l in out.splitlines() if l.startswith(("Preferred", "Accepted"))]
    assert ciphers, out
    for c in ciphers:
        assert c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c), c
    assert "renegotiation not supported" in out


def _peer_cert(port):
    """The DER certificate an implicit-TLS SMTP port presents now."""
    with socket.create_connection(("127.0.0.1", port), 10) as raw:
        with client_ctx().wrap_socket(raw) as t:
            return t.getpeercert(True)


def _wait_log(s, text, seconds=10):
    for _ in range(int(seconds * 20)):
        if text in open(s.log + ".stderr", errors="replace").read():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reloads_the_certificate():
    """tls: SIGHUP loads a changed certificate for new connections; a session under way keeps its own; a broken file leaves the old one in use"""
    import signal
    if not shutil.which("openssl"):
        raise Skip("openssl not installed")
    import tempfile
    from harness import TMP
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="certs-")
    crt, key = make_cert(d, "ec")
    sport = free_port()
    s = Server(conf="TLSCertificate %s\nTLSKey %s\nEnableSMTPS 1\nSMTPSPort %d\n"
               % (crt, key, sport))
    s.start()
    try:
        assert wait_for_port(sport)
        first = _peer_cert(sport)
        assert first == ssl.PEM_cert_to_DER_cert(open(crt).read())
        old = smtplib.SMTP_SSL("127.0.0.1", sport, timeout=10, context=client_ctx())
        old.ehlo("before.test")
        # a renewal: new files in place, then SIGHUP
        new_crt, new_key = make_cert(d, "rsa")
        shutil.copy(new_crt, crt)
        shutil.copy(new_key, key)
        s.proc.send_signal(signal.SIGHUP)
        assert _wait_log(s, "TLS: reloaded"), s.stderr()
        assert _peer_cert(sport) == ssl.PEM_cert_to_DER_cert(open(new_crt).read())
        assert old.noop()[0] == 250  # the session from before goes on with its own
        assert old.sock.getpeercert(True) == first
        old.quit()
        # STARTTLS on the plain port gets the new one too
        with remote_smtp(s.smtp_port) as c:
            c.starttls(context=client_ctx())
            assert c.sock.getpeercert(True) == ssl.PEM_cert_to_DER_cert(open(new_crt).read())
        # a broken file: the certificate in use stays
        with open(crt, "w") as f:
            f.write("not a certificate\n")
        s.proc.send_signal(signal.SIGHUP)
        assert _wait_log(s, "the certificate in use stays"), s.stderr()
        assert _peer_cert(sport) == ssl.PEM_cert_to_DER_cert(open(new_crt).read())
    finally:
        assert s.stop() == 0
        shutil.rmtree(d, ignore_errors=True)


def test_web_admin_is_https_with_a_configured_certificate():
    """tls: with TLSCertificate the web admin speaks HTTPS with that certificate (plain HTTP gets nothing); with the self-signed one it stays HTTP"""
    import tempfile
    import urllib.request
    from harness import TMP
    from test_webadmin import admin_server
    os.makedirs(TMP, exist_ok=True)
    d = tempfile.mkdtemp(dir=TMP, prefix="certs-")
    crt, key = make_cert(d, "ec")
    s = admin_server(conf="TLSCertificate %s\nTLSKey %s\n" % (crt, key))
    try:
        r = urllib.request.urlopen("https://127.0.0.1:%d/login" % s.web_port, timeout=10,
                                   context=client_ctx())
        assert r.status == 200 and b"Log in" in r.read()
        assert "; Secure" in r.headers["Set-Cookie"], r.headers["Set-Cookie"]
        with socket.create_connection(("127.0.0.1", s.web_port), 10) as raw:
            with client_ctx().wrap_socket(raw) as t:
                assert t.getpeercert(True) == ssl.PEM_cert_to_DER_cert(open(crt).read())
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/login" % s.web_port, timeout=5)
            assert False, "plain HTTP answered"
        except (OSError, http_client_errors()):
            pass
        assert "web admin: https://127.0.0.1:%d/" % s.web_port in s.stderr()
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)
    s = admin_server()
    try:
        r = urllib.request.urlopen("http://127.0.0.1:%d/login" % s.web_port, timeout=10)
        assert r.status == 200 and "Secure" not in r.headers["Set-Cookie"]
    finally:
        s.stop()


def http_client_errors():
    import http.client
    return http.client.HTTPException
