"""`rumble dns DOMAIN [--check]`: the records a mail domain needs, as
zone-file lines; --check looks them up (here in a fake DNS, python3-dnslib,
serving what the command printed) and marks each ok, MISSING or WRONG."""
import re

from harness import Server, free_port


def serve_zone(text, port):
    """A DNS server on 127.0.0.1:port answering from zone text."""
    from dnslib.server import DNSLogger, DNSServer
    from dnslib.zoneresolver import ZoneResolver
    quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", False)
    srv = DNSServer(ZoneResolver(text), port=port, address="127.0.0.1", logger=quiet)
    srv.start_thread()
    return srv


def zone_of(advice, drop=(), swap=None):
    """The zone the advice asks for: the address placeholder filled in,
    parentheses of multi-string TXT records taken away (dnslib reads the
    strings on one line), lines naming anything in drop left out."""
    out = []
    for l in advice.splitlines():
        l = re.sub(r"^(ok|WRONG|MISSING|-)\s+", "", l)
        if not l or l.startswith(";") or any(d in l for d in drop):
            continue
        l = l.split(" ;")[0].replace("<this server's IPv4 address>", "192.0.2.25")
        l = l.replace("( ", "").replace(" )", "")
        if swap and swap[0] in l:
            l = l.replace(swap[1], swap[2])
        out.append(l)
    return "\n".join(out) + "\n"


def test_dns_advice_and_check():
    """dns: rumble dns prints MX, A, SPF, DKIM (255-byte strings), DMARC, TLS-RPT, MTA-STS, autoconfig and SRV; --check finds them all in a DNS serving them, and names a missing DMARC and a wrong DKIM key (exit 1)"""
    port = free_port()
    s = Server(conf="ServerName mail.example.org\nDNSServer 127.0.0.1:%d\nEnableSubmission 1\n"
               "EnableIMAPS 1\n" % port)
    advice = s.cli("dns", "example.org").stdout
    for want in ("example.org. 3600 IN MX 10 mail.example.org.",
                 'example.org. 3600 IN TXT "v=spf1 mx -all"',
                 'rumble._domainkey.example.org. 3600 IN TXT ( "v=DKIM1; k=rsa; p=MIIB',
                 '_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.org"',
                 '_smtp._tls.example.org. 3600 IN TXT "v=TLSRPTv1;',
                 '_mta-sts.example.org. 3600 IN TXT "v=STSv1; id=',
                 "autoconfig.example.org. 3600 IN CNAME mail.example.org.",
                 "_submission._tcp.example.org. 3600 IN SRV 10 1 ",
                 "_imaps._tcp.example.org. 3600 IN SRV 0 1 "):
        assert want in advice, (want, advice)
    assert all(len(p) <= 255 for p in advice.split('"')[1::2]), advice
    dkim = s.cli("dkim", "example.org").stdout
    assert dkim.split('"')[3] in advice  # the same key as `rumble dkim`
    srv = serve_zone(zone_of(advice), port)
    try:
        r = s.cli("dns", "example.org", "--check", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        marks = [l.split()[0] for l in r.stdout.splitlines() if l and not l.startswith((";", " "))]
        assert marks.count("ok") >= 7 and "MISSING" not in marks and "WRONG" not in marks, r.stdout
        assert "; 0 required records missing or wrong" in r.stdout, r.stdout
    finally:
        srv.stop()
    port2 = free_port()
    s2 = Server(conf="ServerName mail.example.org\nDNSServer 127.0.0.1:%d\nEnableSubmission 1\n"
                "EnableIMAPS 1\n" % port2)  # the SRV records of s's zone fit
    key = s2.cli("dkim", "example.org").stdout.split('"')[3]  # s2's own key: the zone has s's
    srv = serve_zone(zone_of(advice, drop=("_dmarc.",)), port2)
    try:
        r = s2.cli("dns", "example.org", "--check", check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert any(l.startswith("MISSING") and "_dmarc.example.org." in l for l in lines), r.stdout
        assert any(l.startswith("WRONG") and "_domainkey" in l for l in lines), r.stdout
        assert any(l.startswith("ok") and " MX " in l for l in lines), r.stdout
        assert "; 2 required records missing or wrong" in r.stdout, r.stdout
        assert key[:40] != advice.split('"')[3][:40]
    finally:
        srv.stop()
    r = s.cli("dns", "nosuch.example", check=False)
    assert r.returncode != 0 and "no such domain" in r.stderr, r.stderr


def test_web_admin_shows_the_records_with_marks():
    """dns: the web admin's DNS page of a domain lists its records, green where the DNS has them, red for a missing DMARC, with the count"""
    from test_webadmin import admin_server, logged_in
    port = free_port()
    s = admin_server(conf="ServerName mail.example.org\nDNSServer 127.0.0.1:%d\n" % port)
    try:
        advice = s.cli("dns", "example.org").stdout
        srv = serve_zone(zone_of(advice, drop=("_dmarc.",)), port)
        try:
            b = logged_in(s)
            assert "/dns?domain=example.org" in b.page("/domains")
            html = b.page("/dns?domain=example.org")
        finally:
            srv.stop()
        assert "1 record is missing or wrong (marked red)." in html, html
        assert re.search(r'class="msg err">MISSING</span></td><td><code>_dmarc\.example\.org\.', html), html
        assert re.search(r'class="msg ok">ok</span></td><td><code>example\.org\. 3600 IN MX 10 mail', html), html
        assert "v=DKIM1; k=rsa; p=MIIB" in html and "&quot;" in html  # escaped quotes
        st, _, _ = b.req("GET", "/dns?domain=nosuch.example")
        assert st == 404
    finally:
        s.stop()


def test_dns_check_marks_srv_records():
    """dns: --check looks up the SRV records: a missing one is optional (-), one to another port, or one for a service that is off, is WRONG and counted (exit 1), "0 0 0 ." for one that is off is ok; the web admin's DNS page marks them red"""
    from test_webadmin import admin_server, logged_in
    port = free_port()
    s = admin_server(conf="ServerName mail.example.org\nDNSServer 127.0.0.1:%d\nEnableSubmission 1\n"
                     "SubmissionPort 1587\nEnableIMAPS 1\nIMAPSPort 1993\n" % port)
    try:
        advice = s.cli("dns", "example.org").stdout
        for want in ("_submissions._tcp.example.org. 3600 IN SRV 0 0 0 .",
                     "_submission._tcp.example.org. 3600 IN SRV 10 1 1587 mail.example.org.",
                     "_imaps._tcp.example.org. 3600 IN SRV 0 1 1993 mail.example.org.",
                     "_imap._tcp.example.org. 3600 IN SRV 0 0 0 .",
                     "_pop3._tcp.example.org. 3600 IN SRV 30 1 %d mail.example.org." % s.pop3_port,
                     "autodiscover.example.org. 3600 IN CNAME mail.example.org.",
                     "mta-sts.example.org. 3600 IN CNAME mail.example.org."):
            assert want in advice, (want, advice)
        zone = zone_of(advice, drop=("_imaps.",), swap=("_submission.", " 1587 ", " 2587 "))
        zone = zone.replace("_submissions._tcp.example.org. 3600 IN SRV 0 0 0 .",
                            "_submissions._tcp.example.org. 3600 IN SRV 0 1 465 mail.example.org.")
        srv = serve_zone(zone, port)
        try:
            r = s.cli("dns", "example.org", "--check", check=False)
            html = logged_in(s).page("/dns?domain=example.org")
        finally:
            srv.stop()
        assert r.returncode == 1, r.stdout + r.stderr
        marks = {l.split()[1]: l.split()[0] for l in r.stdout.splitlines()
                 if " IN SRV " in l or " IN CNAME " in l}
        assert marks == {"_submissions._tcp.example.org.": "WRONG",
                         "_submission._tcp.example.org.": "WRONG",
                         "_imaps._tcp.example.org.": "-", "_imap._tcp.example.org.": "ok",
                         "_pop3s._tcp.example.org.": "ok", "_pop3._tcp.example.org.": "ok",
                         "autoconfig.example.org.": "ok", "autodiscover.example.org.": "ok",
                         "mta-sts.example.org.": "ok"}, r.stdout
        assert "; 0 required records missing or wrong" in r.stdout, r.stdout
        assert "; 2 optional records wrong: fix or remove" in r.stdout, r.stdout
        assert "2 records are missing or wrong (marked red)." in html, html
        assert re.search(r'class="msg err">WRONG</span></td><td><code>_submission\._tcp\.example'
                         r'\.org\. 3600 IN SRV 10 1 1587 ', html), html
        assert re.search(r'<td>optional</td><td><code>_imaps\._tcp', html), html
        assert re.search(r'class="msg ok">ok</span></td><td><code>_pop3\._tcp', html), html
    finally:
        s.stop()
