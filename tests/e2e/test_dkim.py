"""DKIM: mail that leaves is signed (rsa-sha256, relaxed/relaxed) with the
key of the From: domain, and python3-dkim verifies it against the record
`rumble dkim DOMAIN` prints."""
import dkim

from test_outbound import MSG, Sink, log, send, setup, wait_for


def resolver(record):
    txt = "".join(record.split('"')[1::2]).encode()  # the strings of the TXT record, joined

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return txt if name.rstrip(".") == "rumble._domainkey.example.org" else None
    return dnsfunc


def test_outgoing_mail_is_signed_and_verifies():
    """dkim: mail sent on carries a DKIM-Signature for the From: domain that python3-dkim verifies; a changed body fails"""
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        record = s.cli("dkim", "example.org").stdout
        # a 2048-bit key is split into strings of at most 255 bytes, as zone files need
        assert record.startswith('rumble._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=MIIB'), record
        assert all(len(p) <= 255 for p in record.split('"')[1::2]), record
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        data = sink.got[0][2]
        assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=rumble;\r\n\tt="), data[:200]
        h = data.split(b"\r\n\r\n")[0]
        assert b"h=from:to:subject:message-id;" in h, h
        assert dkim.verify(data, dnsfunc=resolver(record))
        assert not dkim.verify(data.replace(b"last", b"lost"), dnsfunc=resolver(record))
        assert not dkim.verify(data.replace(b"Subject: outbound", b"Subject: forged"),
                               dnsfunc=resolver(record))
        # the From: of another domain: signed for the envelope sender's
        other = MSG.replace(b"From: alice@example.org", b"From: Someone <x@elsewhere.test>")
        send(s, ["bob@remote.test"], other)
        assert wait_for(lambda: len(sink.got) == 2), log(s)
        assert b"d=example.org;" in sink.got[1][2].split(b"\r\n\r\n")[0]
        assert dkim.verify(sink.got[1][2], dnsfunc=resolver(record))
    finally:
        s.stop()
        sink.stop()
        dns.stop()


def test_the_key_is_made_on_first_use_and_signing_can_be_off():
    """dkim: without a key the first message makes one (logged); DKIMSign 0 sends unsigned"""
    sink = Sink()
    dns, s = setup(sink.port)
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: sink.got), log(s)
        assert "dkim: made a key for example.org (selector rumble)" in log(s)
        record = s.cli("dkim", "example.org").stdout  # the same key
        assert dkim.verify(sink.got[0][2], dnsfunc=resolver(record))
    finally:
        s.stop()
        dns.stop()
    dns, s = setup(sink.port, "DKIMSign 0")
    try:
        send(s, ["bob@remote.test"], MSG)
        assert wait_for(lambda: len(sink.got) == 2), log(s)
        assert sink.got[1][2].startswith(b"Received: "), sink.got[1][2][:100]
    finally:
        s.stop()
        sink.stop()
        dns.stop()
