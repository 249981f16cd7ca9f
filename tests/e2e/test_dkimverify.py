"""Inbound authentication on the SMTP port (dkim_verify.c, dmarc.c): DKIM
signatures made by python3-dkim (rsa-sha256 and ed25519-sha256) checked
against keys in a fake DNS (python3-dnslib), DMARC policies applied
(reject, quarantine to Junk, none), one Authentication-Results field on
top, forged ones with our name removed; python3-dkim's own verify agrees
with each DKIM result. The client comes from 127.0.0.2 (not this host)."""
import base64
import os
import socket
import subprocess
import time

import dkim
import nacl.signing

from harness import Server, folder_file
from test_lua import connect
from test_outbound import FakeDNS

SEED = bytes(range(32))  # a fixed Ed25519 key
ED_PUB = base64.b64encode(nacl.signing.SigningKey(SEED).verify_key.encode()).decode()


def rsa_keys(tmp, bits=2048):
    key = os.path.join(tmp, "rsa%d.pem" % bits)
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", key, str(bits)], check=True,
                   capture_output=True)
    pub = subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return open(key, "rb").read(), base64.b64encode(pub).decode()


def txt(name, text):
    parts = " ".join('"%s"' % text[i:i + 250] for i in range(0, len(text), 250))
    return "%s. 60 IN TXT %s\n" % (name, parts)


def zone(rsa_pub, small_pub):
    return (txt("rsa._domainkey.signed.test", "v=DKIM1; k=rsa; p=" + rsa_pub)
            + txt("ed._domainkey.signed.test", "v=DKIM1; k=ed25519; p=" + ED_PUB)
            + txt("revoked._domainkey.signed.test", "v=DKIM1; k=rsa; p=")
            + txt("small._domainkey.signed.test", "v=DKIM1; k=rsa; p=" + small_pub)
            + txt("rsa._domainkey.other.test", "v=DKIM1; k=rsa; p=" + rsa_pub)
            + txt("testing._domainkey.signed.test", "v=DKIM1; k=rsa; t=y; p=" + rsa_pub)
            + txt("strict._domainkey.signed.test", "v=DKIM1; k=rsa; t=s; p=" + rsa_pub)
            + txt("_dmarc.signed.test", "v=DMARC1; p=reject")
            + txt("_dmarc.reject.test", "v=DMARC1; p=reject; sp=quarantine")
            + txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
            + txt("_dmarc.none.test", "v=DMARC1; p=none; rua=mailto:d@none.test")
            + txt("_dmarc.spf.test", "v=DMARC1; p=reject")
            + txt("spf.test", "v=spf1 ip4:127.0.0.2 -all"))


class World:
    """The fake DNS, the keys and a server pointed at them."""

    def __init__(self, conf="", files=()):
        self.s = Server(conf="DNSServer 127.0.0.1:%%d\n%s" % conf)
        self.rsa, rsa_pub = rsa_keys(self.s.dir)
        _, small_pub = rsa_keys(self.s.dir, 512)
        self.zone = zone(rsa_pub, small_pub)
        self.dns = FakeDNS(self.zone)
        with open(self.s.conf) as f:
            text = f.read().replace("DNSServer 127.0.0.1:%d", "DNSServer 127.0.0.1:%d" % self.dns.port)
        for name, body in files:  # scripts: @name@ in conf is their path
            path = os.path.join(self.s.dir, name)
            with open(path, "w") as f:
                f.write(body)
            text = text.replace("@%s@" % name, path)
        with open(self.s.conf, "w") as f:
            f.write(text)
        self.s.start()

    def dnsfunc(self, name, timeout=5):
        name = (name.decode() if isinstance(name, bytes) else name).rstrip(".")
        for rr in self.dns.rrs:
            if str(rr.rname).rstrip(".") == name:
                return b"".join(rr.rdata.data)
        return None

    def stop(self):
        try:
            self.s.stop()
        finally:
            self.dns.stop()


def message(frm="a@signed.test", body=b"Hello there.\r\n\r\nBye.\r\n", extra=b""):
    return (b"From: Someone <%s>\r\nTo: alice@example.org\r\nSubject: auth test\r\n"
            b"Message-ID: <1@x>\r\n%s\r\n" % (frm.encode(), extra)) + body


def sign(w, msg, selector=b"rsa", domain=b"signed.test", algo=b"rsa-sha256",
         canon=(b"relaxed", b"relaxed"), length=False, identity=None):
    key = base64.b64encode(SEED) if algo == b"ed25519-sha256" else w.rsa
    sig = dkim.sign(msg, selector, domain, key, canonicalize=canon, signature_algorithm=algo,
                    include_headers=[b"from", b"to", b"subject", b"message-id"], length=length,
                    identity=identity)
    return sig + msg


def send(s, msg, sender="a@signed.test", src="127.0.0.2", after=b"QUIT"):
    """One message; the reply to its end of data (and to after)."""
    sock = connect(s.smtp_port, src)
    f = sock.makefile("rb")
    try:
        f.readline()
        sock.sendall(b"HELO client.test\r\nMAIL FROM:<%s>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
                     % sender.encode())
        for _ in range(3):
            assert f.readline()[:1] == b"2"
        assert f.readline().startswith(b"354")
        sock.sendall(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        reply = f.readline().decode()
        sock.sendall(after + b"\r\n")
        return reply if after == b"QUIT" else (reply, f.readline().decode())
    finally:
        f.close()
        sock.close()


def authres(msg):
    """Our Authentication-Results field, unfolded; it must come first."""
    assert msg.startswith(b"Authentication-Results: test.example;"), msg[:300]
    head = msg.split(b"\r\n\r\n")[0].decode()
    field = head.split("\r\n")[0]
    for line in head.split("\r\n")[1:]:
        if line[:1] not in (" ", "\t"):
            break
        field += " " + line.strip()
    return field


def last(s, folder="INBOX"):
    """The last message of alice's folder (harness.messages reads INBOX)."""
    mbox = s.mbox
    s.mbox = lambda addr, _f=None: mbox(addr, folder if folder == "INBOX" else folder_file(folder))
    try:
        msgs = s.messages("alice@example.org")
    finally:
        s.mbox = mbox
    return msgs[-1] if msgs else None


def check(w, msg, want, sender="a@signed.test", folder="INBOX", reply="250"):
    got = send(w.s, msg, sender)
    assert got.startswith(reply), (got, w.s.stderr()[-2000:])
    if reply != "250":
        return None
    field = authres(last(w.s, folder))
    for piece in want:
        assert piece in field, (piece, field)
    return field


def test_dkim_results_agree_with_python_dkim():
    """dkimverify: rsa and ed25519 pass (relaxed and simple); forged body, broken signature, revoked, missing and short keys do not; python3-dkim agrees; t=y is not counted by DMARC, t=s refuses a subdomain i="""
    w = World("DMARCReject 0")
    try:
        cases = []
        m = sign(w, message())
        cases.append((m, "dkim=pass header.d=signed.test header.s=rsa header.a=rsa-sha256", True))
        m = sign(w, message(), canon=(b"simple", b"simple"))
        cases.append((m, "dkim=pass header.d=signed.test header.s=rsa", True))
        m = sign(w, message(), selector=b"ed", algo=b"ed25519-sha256", canon=(b"relaxed", b"simple"))
        cases.append((m, "dkim=pass header.d=signed.test header.s=ed header.a=ed25519-sha256", True))
        m = sign(w, message()).replace(b"Bye.", b"Buy.")
        cases.append((m, "dkim=fail (body hash did not verify)", False))
        m = sign(w, message()).replace(b"Subject: auth test", b"Subject: auth tost")
        cases.append((m, "dkim=fail (signature did not verify)", False))
        m = sign(w, message(), selector=b"ed", algo=b"ed25519-sha256")
        i = m.index(b" b=") + 3
        m = m[:i] + (b"A" if m[i:i + 1] != b"A" else b"B") + m[i + 1:]  # the signature changed
        cases.append((m, "dkim=fail (signature did not verify)", False))
        m = sign(w, message(), selector=b"revoked")
        cases.append((m, "dkim=fail (key revoked)", False))
        m = sign(w, message(), selector=b"missing")
        cases.append((m, "dkim=permerror (no key)", False))
        m = sign(w, message(), selector=b"small")
        cases.append((m, "dkim=permerror (key shorter than 1024 bits)", False))
        for m, want, ok in cases:
            # signed.test says p=reject; DMARCReject 0 keeps the failures, in Junk
            field = check(w, m, [want, "header.b="], folder="INBOX" if ok else "Junk")
            pol = "dmarc=%s (p=reject) header.from=signed.test" % ("pass" if ok else "fail")
            assert pol in field, field
            assert bool(dkim.verify(m, dnsfunc=w.dnsfunc)) == ok, want
        # a key in testing mode (t=y): reported, but DMARC does not count it
        m = sign(w, message(), selector=b"testing")
        check(w, m, ["dkim=pass (test mode) header.d=signed.test", "dmarc=fail (p=reject)"],
              folder="Junk")
        # t=s: i= must be d= itself, a subdomain is refused
        m = sign(w, message(), selector=b"strict", identity=b"@sub.signed.test")
        check(w, m, ["dkim=permerror (i= must be d= (t=s))"], folder="Junk")
        m = sign(w, message(), selector=b"strict", identity=b"@signed.test")
        check(w, m, ["dkim=pass header.d=signed.test header.s=strict", "dmarc=pass"])
    finally:
        w.stop()


def test_dmarc_policies():
    """dkimverify: DMARC reject refuses with 550 5.7.1, quarantine and a subdomain's sp= go to Junk, none is delivered with dmarc=fail, two From fields are refused, two authors get the stricter policy"""
    w = World()
    try:
        assert send(w.s, message("x@reject.test"), "x@reject.test").startswith("550 5.7.1")
        check(w, message("x@quarantine.test"), ["dkim=none", "dmarc=fail (p=quarantine) header.from=quarantine.test"],
              "x@quarantine.test", folder="Junk")
        # no record of its own: the organizational domain's, with sp=
        check(w, message("x@mail.reject.test"), ["dmarc=fail (p=quarantine) header.from=mail.reject.test"],
              "x@mail.reject.test", folder="Junk")
        check(w, message("x@none.test"), ["dmarc=fail (p=none) header.from=none.test"], "x@none.test")
        check(w, message("x@nopolicy.test"), ["dmarc=none header.from=nopolicy.test"], "x@nopolicy.test")
        # aligned DKIM of another domain does not count; of a subdomain it does (relaxed)
        m = sign(w, message("x@reject.test"), domain=b"other.test")
        assert send(w.s, m, "x@reject.test").startswith("550 5.7.1")
        # two From fields: refused (RFC 7489 6.6.1)
        two = message(extra=b"From: b@elsewhere.test\r\n")
        assert send(w.s, sign(w, two)).startswith("550 5.7.1")
        # one From, two domains: each checked, the strictest failure applies (6.6.1)
        both = sign(w, message("a@signed.test>, <b@quarantine.test"))
        check(w, both, ["dkim=pass", "dmarc=fail (p=quarantine) header.from=quarantine.test"], folder="Junk")
        assert "smtp auth spf=none dkim=none dmarc=fail action=junk" in w.s.stderr()
    finally:
        w.stop()


def test_dmarc_reject_off_quarantines():
    """dkimverify: DMARCReject 0 puts p=reject failures into Junk instead"""
    w = World("DMARCReject 0")
    try:
        check(w, message("x@reject.test"), ["dmarc=fail (p=reject) header.from=reject.test"],
              "x@reject.test", folder="Junk")
    finally:
        w.stop()


def test_aligned_spf_alone_passes():
    """dkimverify: an unsigned message passes DMARC on aligned SPF alone (SPFCheck 1)"""
    w = World("SPFCheck 1")
    try:
        check(w, message("x@spf.test"), ["spf=pass smtp.mailfrom=spf.test", "dkim=none",
                                         "dmarc=pass (p=reject) header.from=spf.test"], "x@spf.test")
        # SPF for another domain than From: not aligned
        assert send(w.s, message("x@reject.test"), "x@spf.test").startswith("550 5.7.1")
    finally:
        w.stop()


def test_forged_authentication_results_are_removed():
    """dkimverify: an inbound Authentication-Results field with our name is removed, others' stay, and the signature still passes"""
    w = World()
    try:
        forged = (b"Authentication-Results: test.example; dkim=pass header.d=paypal.com\r\n"
                  b"Authentication-Results: mx.elsewhere.test; spf=pass\r\n"
                  b"authentication-results:TEST.EXAMPLE;\r\n\tdmarc=pass\r\n")
        m = sign(w, forged + message())
        field = check(w, m, ["dkim=pass header.d=signed.test"])
        got = last(w.s)
        head = got.split(b"\r\n\r\n")[0]
        assert head.lower().count(b"authentication-results: test.example") == 1, head
        assert b"paypal.com" not in head and b"dmarc=pass\r\n" not in head, head
        assert b"Authentication-Results: mx.elsewhere.test; spf=pass" in head, head
        assert "dmarc=pass" in field
    finally:
        w.stop()


def test_local_clients_and_switches():
    """dkimverify: this host's own clients and those an SMTPScript calls local are not checked; DKIMVerify 0 and DMARC 0 leave the results out"""
    w = World("DKIMVerify 0\nDMARC 0")
    try:
        assert send(w.s, message("x@reject.test"), "x@reject.test").startswith("250")
        assert b"Authentication-Results" not in last(w.s)
    finally:
        w.stop()
    w = World()
    try:
        assert send(w.s, message("x@reject.test"), "x@reject.test", src="127.0.0.1").startswith("250")
        assert b"Authentication-Results" not in last(w.s)
    finally:
        w.stop()
    # a client an SMTPScript calls local (LocalClientAddress) is one of ours too
    trust = "function DoHELO(host, bRefuse, bEHLO)\n LocalClientAddress = true\n return bRefuse, \"\"\nend\n"
    w = World("SMTPScript @vp.lua@", files=(("vp.lua", trust),))
    try:
        assert send(w.s, message("x@reject.test"), "x@reject.test").startswith("250")
        assert b"Authentication-Results" not in last(w.s)
    finally:
        w.stop()


SCRIPT = """
function ProcessMessage(mailfrom, subject, list, actions)
    actions.Ignore = true
    actions.Delete = true
    actions.Reason = "550 5.7.0 " .. SPFResult .. "/" .. DKIMResult .. "/" .. DMARCResult
    return actions, ""
end
"""

HOOK = """
Rumble.setHook(function(session, cmd)
    session:send("250 " .. tostring(session.dkim) .. " " .. tostring(session.dmarc) .. " " ..
        tostring(session.authres ~= nil) .. "\\r\\n")
    return "ignore"
end, "smtp", "command", "rset")
"""


def test_scripts_and_hooks_see_the_results():
    """dkimverify: an SMTPScript's ProcessMessage sees SPFResult, DKIMResult, DMARCResult; a Lua hook sees session.dkim, .dmarc, .authres"""
    w = World("SMTPScript @vp.lua@\nLoadScript @hook.lua@", files=(("vp.lua", SCRIPT), ("hook.lua", HOOK)))
    try:
        got = send(w.s, sign(w, message()))
        assert got.startswith("550 5.7.0 none/pass/pass"), got
        got = send(w.s, message("x@none.test"), "x@none.test", after=b"RSET")
        assert got[0].startswith("550 5.7.0 none/none/fail"), got
        assert got[1].startswith("250 none fail true"), got
    finally:
        w.stop()


def test_body_length_is_ignored():
    """dkimverify: l= is ignored: a signature over the whole body passes, text appended after l= fails (python3-dkim, which honours l=, passes it)"""
    w = World("DMARCReject 0")
    try:
        m = sign(w, message(), length=True)
        assert b" l=" in m.split(b"\r\n\r\n")[0]
        check(w, m, ["dkim=pass header.d=signed.test"])
        m += b"Click here: http://phish.test/\r\n"
        check(w, m, ["dkim=fail (body hash did not verify)", "dmarc=fail"], folder="Junk")
        assert dkim.verify(m, dnsfunc=w.dnsfunc)
    finally:
        w.stop()


def start_message(s):
    sock = connect(s.smtp_port, "127.0.0.2")
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"HELO client.test\r\nMAIL FROM:<a@signed.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
    for _ in range(3):
        assert f.readline()[:1] == b"2"
    assert f.readline().startswith(b"354")
    sock.sendall(message() + b".\r\n")
    return sock, f


def test_a_client_gone_during_the_check():
    """dkimverify: lookups that time out give dmarc=temperror and deliver; a client gone meanwhile and a stop during the wait leave no sanitizer report"""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    s = Server(conf="DNSServer 127.0.0.1:%d" % silent.getsockname()[1]).start()
    try:
        sock, f = start_message(s)
        time.sleep(0.5)
        f.close()
        sock.close()  # gone while the DMARC lookup waits: the message was whole, it stays
        deadline = time.time() + 30
        while "smtp auth" not in s.stderr() and time.time() < deadline:
            time.sleep(0.2)
        assert "dmarc=temperror action=deliver" in s.stderr(), s.stderr()[-2000:]
        deadline = time.time() + 10
        while not s.messages("alice@example.org") and time.time() < deadline:
            time.sleep(0.2)
        assert b"dmarc=temperror header.from=signed.test" in s.messages("alice@example.org")[0]
        sock, f = start_message(s)
        time.sleep(0.5)
        s.stop()  # during the lookups: ends cleanly (stop() fails on a sanitizer report)
        f.close()
        sock.close()
    finally:
        s.stop()
        silent.close()


def test_a_20_mb_signed_message_is_checked_without_holding_it():
    """dkimverify: a 20 MB signed message is verified (body hashed as it streams) and written again with the field, raising the server's peak RSS by less than 8 MB"""
    from test_imap_memory import big_message, peak_growth
    asan = os.environ.get("ASAN_OPTIONS")  # no quarantine: RSS counts what is held
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    try:
        w = World("MessageSizeLimit 30M")
    finally:
        if asan is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = asan
    try:
        big = big_message(20).replace(b"From: big@remote.test", b"From: a@signed.test")
        m = sign(w, big)
        send(w.s, sign(w, message()))  # the first message's allocations are not counted
        grew = []
        grew.append(peak_growth(w.s, lambda: grew.append(send(w.s, m))))
        assert grew[0].startswith("250"), grew
        assert grew[1] < 8 * 1024, "peak RSS grew by %d KB" % grew[1]
        field = authres(last(w.s))
        assert "dkim=pass header.d=signed.test" in field and "dmarc=pass" in field, field
    finally:
        w.stop()
